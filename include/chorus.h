/*
 * chorus.h - the public C API of Chorus, a collective-communication library
 * for supernode clusters.
 *
 * The API is shaped like NCCL's so that its users already know it: a
 * communicator is created from a unique id that one rank makes and every rank
 * receives out of band (MPI_Bcast, a file, a launcher), then every rank calls
 * the same collectives in the same order.
 *
 * Every call returns a chorus_result_t. On failure, chorus_get_last_error()
 * returns a readable text saying what went wrong and where (per thread).
 * The library never exits or aborts the process.
 */
#ifndef CHORUS_H
#define CHORUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHORUS_VERSION_MAJOR 0
#define CHORUS_VERSION_MINOR 1
#define CHORUS_VERSION_PATCH 0
#define CHORUS_VERSION_CODE \
    (CHORUS_VERSION_MAJOR * 10000 + CHORUS_VERSION_MINOR * 100 + CHORUS_VERSION_PATCH)

typedef enum {
    CHORUS_SUCCESS = 0,
    CHORUS_INVALID_ARGUMENT = 1, /* a bad pointer, count, type, op, rank or root */
    CHORUS_INVALID_USAGE = 2,    /* a valid argument at the wrong time (e.g. after abort) */
    CHORUS_SYSTEM_ERROR = 3,     /* the OS refused something (memory, sockets, shm) */
    CHORUS_INTERNAL_ERROR = 4,   /* a bug in Chorus: please report it */
    CHORUS_REMOTE_ERROR = 5,     /* a peer died, disconnected or reported an error */
    CHORUS_TIMEOUT = 6,          /* a wait exceeded its bound (CHORUS_TIMEOUT_MS) */
    CHORUS_IN_PROGRESS = 7,      /* a nonblocking operation has not finished yet (or, as an
                                    async error, a collective waits for stragglers) */
    CHORUS_NUM_RESULTS
} chorus_result_t;

typedef enum {
    CHORUS_INT8 = 0,
    CHORUS_UINT8,
    CHORUS_INT32,
    CHORUS_UINT32,
    CHORUS_INT64,
    CHORUS_UINT64,
    CHORUS_FLOAT16,  /* IEEE 754 binary16 */
    CHORUS_BFLOAT16, /* bfloat16: the top half of a binary32 */
    CHORUS_FLOAT32,
    CHORUS_FLOAT64,
    CHORUS_NUM_TYPES
} chorus_datatype_t;

typedef enum {
    CHORUS_SUM = 0,
    CHORUS_PROD,
    CHORUS_MIN,
    CHORUS_MAX,
    CHORUS_AVG, /* sum divided by the number of ranks (integers: truncated) */
    CHORUS_NUM_OPS
} chorus_op_t;

typedef struct chorus_comm *chorus_comm_t;
typedef struct chorus_request *chorus_request_t;

/* Opaque: the root's address and a random secret. Copy it byte for byte. */
#define CHORUS_UNIQUE_ID_BYTES 128
typedef struct {
    char internal[CHORUS_UNIQUE_ID_BYTES];
} chorus_unique_id_t;

/* ---- errors -------------------------------------------------------------- */

/* A short, static name for a result code ("remote error"). */
const char *chorus_get_error_string(chorus_result_t result);
/* The detailed text of the last failure on the calling thread ("" if none). */
const char *chorus_get_last_error(void);

/* ---- communicators ------------------------------------------------------- */

/* Starts a bootstrap root in this process and describes it in *id. */
chorus_result_t chorus_get_unique_id(chorus_unique_id_t *id);

chorus_result_t chorus_comm_init_rank(chorus_comm_t *comm, int nranks, chorus_unique_id_t id,
                                      int rank);

/* Options for chorus_comm_init_rank_config. Start from CHORUS_CONFIG_INITIALIZER:
 * a field left at its initializer value takes the value of its environment
 * variable, or the built-in default. */
typedef struct {
    size_t size;        /* sizeof(chorus_config_t): lets the struct grow compatibly */
    unsigned magic;     /* set by the initializer */
    unsigned version;   /* CHORUS_VERSION_CODE of the header compiled against */
    int blocking;       /* reserved: must be 1 (calls block until done) */
    int timeout_ms;     /* bound on every wait of collectives; <= 0: default */
    int init_timeout_ms;/* bound on init (bootstrap, peer discovery); <= 0: default */
    const char *name;   /* a label used in log lines; NULL: none */
} chorus_config_t;

#define CHORUS_CONFIG_MAGIC 0xc40e05u
#define CHORUS_CONFIG_INITIALIZER \
    { sizeof(chorus_config_t), CHORUS_CONFIG_MAGIC, CHORUS_VERSION_CODE, 1, 0, 0, NULL }

chorus_result_t chorus_comm_init_rank_config(chorus_comm_t *comm, int nranks,
                                             chorus_unique_id_t id, int rank,
                                             const chorus_config_t *config);

/* torchrun-style init without MPI: reads CHORUS_ROOT_ADDR (host:port) or
 * MASTER_ADDR + MASTER_PORT, and CHORUS_RANK/RANK, CHORUS_NRANKS/WORLD_SIZE.
 * Rank 0 listens on that address; the others connect to it. */
chorus_result_t chorus_comm_init_env(chorus_comm_t *comm);

/* Collective over comm: ranks passing the same color form a new communicator,
 * ordered by key, then by rank in comm. color < 0: this rank joins none and
 * *newcomm is set to NULL. */
chorus_result_t chorus_comm_split(chorus_comm_t comm, int color, int key,
                                  chorus_comm_t *newcomm);

/* Waits for this rank's outstanding operations on comm. */
chorus_result_t chorus_comm_finalize(chorus_comm_t comm);
/* Frees every resource of comm. Call after finalize or abort. */
chorus_result_t chorus_comm_destroy(chorus_comm_t comm);
/* Marks comm failed: in-flight and later operations on it (on every rank that
 * can see it) return an error. Safe from another thread. Then call destroy. */
chorus_result_t chorus_comm_abort(chorus_comm_t comm);
/* *async_error: CHORUS_SUCCESS, or the error that broke comm (e.g. a peer
 * died). While comm is healthy but the straggler watchdog (CHORUS_WATCHDOG_MS)
 * reports ranks holding up its oldest unfinished collective (see
 * chorus_comm_get_stragglers), *async_error is CHORUS_IN_PROGRESS and
 * chorus_get_last_error() gives the watchdog's sentence, e.g. "comm ... rank
 * 0/8: collective #17 (allreduce, 1048576 x float32) waiting 10.0 s: rank 3
 * has not entered it (it is at #16); 7 ranks have"; back to CHORUS_SUCCESS
 * once that collective finishes. The call itself returns CHORUS_SUCCESS
 * unless comm or async_error is invalid. Safe from any thread. */
chorus_result_t chorus_comm_get_async_error(chorus_comm_t comm, chorus_result_t *async_error);
/* The straggler watchdog's report (CHORUS_WATCHDOG_MS): when comm's oldest
 * unfinished collective has waited longer than that, *collective is its
 * number (1-based count of the collectives called on comm, barrier included,
 * point-to-point not) and ranks[0..] the ranks that had not entered it at
 * the watchdog's last check - or did not answer it (dead or stopped) - in
 * ascending order. *nranks_out is how many there are (it may exceed
 * max_ranks: only the first max_ranks are stored). Nothing stalled, the
 * watchdog off, or comm of one rank: *collective = 0, *nranks_out = 0. ranks
 * may be NULL only with max_ranks == 0. Safe from any thread, also while
 * another thread waits in that collective. */
chorus_result_t chorus_comm_get_stragglers(chorus_comm_t comm, uint64_t *collective, int *ranks,
                                           int max_ranks, int *nranks_out);

/* Advanced: while the calling thread waits inside a blocking Chorus call
 * (a collective, send/recv, chorus_wait), Chorus calls fn(arg) now and then
 * - after a short spin, then at least every millisecond - so another
 * library this process uses keeps moving: the MPI interposer turns MPI's
 * progress engine this way, so a transfer a peer needs before it can join
 * the collective completes. fn must be quick and must not call Chorus.
 * Per thread; fn = NULL removes it. Always CHORUS_SUCCESS. */
chorus_result_t chorus_set_progress_hook(void (*fn)(void *arg), void *arg);

/* Registers [buf, buf + bytes) with comm's network devices until deregistered,
 * so RDMA transfers from or into it skip registration (like ncclCommRegister).
 * Valid with every transport: without RDMA the handle simply records nothing.
 * Call between operations (not while another thread runs one on comm);
 * registrations belong to comm (a split communicator needs its own) and are
 * released by chorus_comm_destroy if still held. */
chorus_result_t chorus_comm_register(chorus_comm_t comm, void *buf, size_t bytes, void **handle);
/* Releases a handle of chorus_comm_register; afterwards the memory may be freed. */
chorus_result_t chorus_comm_deregister(chorus_comm_t comm, void *handle);

chorus_result_t chorus_comm_count(chorus_comm_t comm, int *count);
chorus_result_t chorus_comm_rank(chorus_comm_t comm, int *rank);
/* Where this rank runs, as comm grouped its ranks at init (by host id:
 * CHORUS_HOSTID, else the host name; ranks of a host share memory unless
 * CHORUS_TRANSPORT forces the network): the index of its host (hosts
 * numbered in order of their lowest rank), the number of hosts, its index
 * among its host's ranks (in rank order: torchrun's LOCAL_RANK) and how many
 * ranks its host has (LOCAL_WORLD_SIZE). Any pointer may be NULL. */
chorus_result_t chorus_comm_host(chorus_comm_t comm, int *host, int *nhosts, int *local_rank,
                                 int *local_count);

/* ---- collectives (blocking) ---------------------------------------------- */
/* In place: sendbuf == recvbuf; for allgather the rank's slice of recvbuf is
 * the input (sendbuf == recvbuf + rank * sendcount * size), for
 * reduce_scatter the rank's output slice of sendbuf is recvbuf. */

chorus_result_t chorus_allreduce(const void *sendbuf, void *recvbuf, size_t count,
                                 chorus_datatype_t type, chorus_op_t op, chorus_comm_t comm);
chorus_result_t chorus_allgather(const void *sendbuf, void *recvbuf, size_t sendcount,
                                 chorus_datatype_t type, chorus_comm_t comm);
chorus_result_t chorus_alltoall(const void *sendbuf, void *recvbuf, size_t count /* per peer */,
                                chorus_datatype_t type, chorus_comm_t comm);
/* counts and displacements in elements, one per peer. In place (sendbuf ==
 * recvbuf) needs sendcounts == recvcounts and sdispls == rdispls. Every rank's
 * counts are checked against its peers': a mismatch is CHORUS_INVALID_USAGE
 * on every rank. */
chorus_result_t chorus_alltoallv(const void *sendbuf, const size_t *sendcounts,
                                 const size_t *sdispls, void *recvbuf, const size_t *recvcounts,
                                 const size_t *rdispls, chorus_datatype_t type,
                                 chorus_comm_t comm);
chorus_result_t chorus_reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                      chorus_datatype_t type, chorus_op_t op, chorus_comm_t comm);
chorus_result_t chorus_broadcast(const void *sendbuf, void *recvbuf, size_t count,
                                 chorus_datatype_t type, int root, chorus_comm_t comm);
/* recvbuf is used on root only (may be NULL elsewhere) */
chorus_result_t chorus_reduce(const void *sendbuf, void *recvbuf, size_t count,
                              chorus_datatype_t type, chorus_op_t op, int root,
                              chorus_comm_t comm);
chorus_result_t chorus_barrier(chorus_comm_t comm);

/* Point to point. Messages between a pair arrive in order; counts must match.
 * A send larger than the eager buffer waits for the matching receive, so two
 * ranks exchanging data should use chorus_sendrecv. */
chorus_result_t chorus_send(const void *sendbuf, size_t count, chorus_datatype_t type, int peer,
                            chorus_comm_t comm);
chorus_result_t chorus_recv(void *recvbuf, size_t count, chorus_datatype_t type, int peer,
                            chorus_comm_t comm);
chorus_result_t chorus_sendrecv(const void *sendbuf, size_t sendcount, int dest, void *recvbuf,
                                size_t recvcount, int source, chorus_datatype_t type,
                                chorus_comm_t comm);

/* ---- collectives (nonblocking) ------------------------------------------- */
/* Each starts the operation and returns at once with a request. Operations
 * on one communicator complete in the order they were started, blocking and
 * nonblocking alike. Buffers must stay untouched until the request completes. */

chorus_result_t chorus_iallreduce(const void *sendbuf, void *recvbuf, size_t count,
                                  chorus_datatype_t type, chorus_op_t op, chorus_comm_t comm,
                                  chorus_request_t *req);
chorus_result_t chorus_iallgather(const void *sendbuf, void *recvbuf, size_t sendcount,
                                  chorus_datatype_t type, chorus_comm_t comm,
                                  chorus_request_t *req);
chorus_result_t chorus_ialltoall(const void *sendbuf, void *recvbuf, size_t count,
                                 chorus_datatype_t type, chorus_comm_t comm,
                                 chorus_request_t *req);
chorus_result_t chorus_ialltoallv(const void *sendbuf, const size_t *sendcounts,
                                  const size_t *sdispls, void *recvbuf,
                                  const size_t *recvcounts, const size_t *rdispls,
                                  chorus_datatype_t type, chorus_comm_t comm,
                                  chorus_request_t *req);
chorus_result_t chorus_ireduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                       chorus_datatype_t type, chorus_op_t op,
                                       chorus_comm_t comm, chorus_request_t *req);
chorus_result_t chorus_ibroadcast(const void *sendbuf, void *recvbuf, size_t count,
                                  chorus_datatype_t type, int root, chorus_comm_t comm,
                                  chorus_request_t *req);
chorus_result_t chorus_ireduce(const void *sendbuf, void *recvbuf, size_t count,
                               chorus_datatype_t type, chorus_op_t op, int root,
                               chorus_comm_t comm, chorus_request_t *req);
chorus_result_t chorus_ibarrier(chorus_comm_t comm, chorus_request_t *req);

/* CHORUS_SUCCESS and *req freed (set to NULL) when done; CHORUS_IN_PROGRESS
 * while running; another code (request freed) if the operation failed. */
chorus_result_t chorus_test(chorus_request_t *req);
/* Waits (bounded by the communicator's timeout), then frees *req. */
chorus_result_t chorus_wait(chorus_request_t *req);

/* ---- sizes --------------------------------------------------------------- */
/* Bytes per element of type, or 0 for an invalid type. */
size_t chorus_type_size(chorus_datatype_t type);
const char *chorus_type_name(chorus_datatype_t type);
const char *chorus_op_name(chorus_op_t op);

#ifdef __cplusplus
}
#endif

#endif /* CHORUS_H */
