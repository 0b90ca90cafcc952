/* chorus_mpi_internal.h - the parts of the MPI interposer (libchorus_mpi).
 *
 * Flow of an intercepted call (MPI_Allreduce etc., chorus_mpi_colls.c and
 * chorus_mpi_icolls.c):
 *   1. config: is this collective selected (CHORUS_MPI_COLLS)?
 *   2. comm: the cached state of the MPI communicator (chorus_mpi_comm.c);
 *   3. args: can Chorus do exactly what MPI was asked (chorus_mpi_args.c,
 *      datatypes and ops in chorus_mpi_types.c)? Is the size in range?
 *   4. comm: create the Chorus communicator on first use (collective);
 *   5. run it blocking, or nonblocking behind an MPI generalized request
 *      (chorus_mpi_request.c); a Chorus failure becomes an MPI error through
 *      the communicator's error handler (chorus_mpi_error.c).
 * Any "no" on the way sends the call to the PMPI_ function unchanged and
 * records why (chorus_mpi_error.c: counters and debug log).
 *
 * Every decision to go to MPI must be the same on every rank of the
 * communicator (else some ranks would wait in Chorus, others in MPI): it may
 * depend only on what MPI requires to be the same everywhere (collective,
 * datatype, op, count, root, MPI_IN_PLACE, the tunables - which are compared
 * across ranks when a communicator is set up), never on a rank's own buffers
 * or counts (erroneous calls aside: those go to MPI, which reports them).
 *
 * All MPI calls made here go to PMPI_, never MPI_, so they are not
 * intercepted again. Internal names start with cmpi_; only MPI_* and
 * chorus_mpi_* are exported from the library. */
#ifndef CHORUS_MPI_INTERNAL_H
#define CHORUS_MPI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <mpi.h>

#include "chorus.h"
#include "chorus_mpi_stats.h"
#include "log.h"

#define CMPI_SUBSYS "mpi"

/* MPICH's extended generalized requests (MPIX_Grequest_start: MPI polls
 * them in MPI_Test/MPI_Wait) are what lets a Chorus request stand behind an
 * MPI request without another thread calling MPI. Elsewhere the nonblocking
 * forms go to MPI. */
#if defined(MPICH) && defined(MPICH_NUMVERSION)
#define CMPI_HAVE_GREQUEST_POLL 1
#else
#define CMPI_HAVE_GREQUEST_POLL 0
#endif

/* ---- configuration (chorus_mpi_config.c) ------------------------------------ */

struct cmpi_config {
    int usable;          /* 0: every call goes to MPI (bad environment) */
    const char *why;     /* when not usable */
    uint32_t colls;      /* bit (1 << chorus_mpi_coll_t) per intercepted collective */
    size_t min_bytes;
    size_t max_bytes;    /* 0: none */
    int timeout_ms;      /* for chorus_config_t: > 0 bound; INT_MAX: "none" */
    int64_t hash;        /* of the settings above, compared across ranks (62 bits) */
};

/* The settings in force, parsed once (thread-safe). Never NULL. */
const struct cmpi_config *cmpi_config(void);
/* Whether coll is selected; NULL if so, else the reason. */
const char *cmpi_config_check(int coll, size_t bytes);
#define CMPI_UNSIZED ((size_t)-1) /* bytes of a call that is never sized out */

/* ---- communicators (chorus_mpi_comm.c) ---------------------------------------- */

struct cmpi_nb;

/* The state of one MPI communicator. The lock guards disabled, why, chorus
 * (set to NULL before it is destroyed), inflight, refs and released. */
struct cmpi_comm {
    chorus_comm_t chorus;      /* NULL when disabled from the start or released */
    int rank, size;
    int disabled;              /* collectives on this communicator go to MPI */
    const char *why;           /* why disabled (static text) */
    struct cmpi_nb *inflight;  /* nonblocking operations not yet finished */
    int refs;                  /* the attribute + each nonblocking operation */
    int released;              /* the MPI communicator was freed (or MPI_Finalize) */
    struct cmpi_comm *prev, *next; /* every attached state, for MPI_Finalize */
};

/* Finds comm's state. Returns NULL and sets *c (NULL if none yet), *rank and
 * *size when it may be used; else the reason to go to MPI. Local. */
const char *cmpi_comm_find(MPI_Comm comm, struct cmpi_comm **c, int *rank, int *size);
/* Creates comm's state and its Chorus communicator. Collective over comm:
 * call it at the same point on every rank. Returns NULL and sets *c, or the
 * reason to go to MPI (then the state is kept, disabled, so later calls
 * decide at once). */
const char *cmpi_comm_create(MPI_Comm comm, struct cmpi_comm **c);
/* Lock held: one more reference to c. */
void cmpi_comm_ref_locked(struct cmpi_comm *c);
/* Drops a reference to c, freeing it with the last one (takes the lock). */
void cmpi_comm_unref(struct cmpi_comm *c);

/* When c goes away: waits for c's in-flight nonblocking operations (turning
 * MPI's progress engine meanwhile) and detaches them from c
 * (chorus_mpi_request.c). Takes the lock. */
void cmpi_nb_detach_all(struct cmpi_comm *c);

/* The one lock of the interposer: comm states, in-flight lists, counters
 * of reasons. Never held across an MPI call. */
void cmpi_lock(void);
void cmpi_unlock(void);

/* ---- datatypes and ops (chorus_mpi_types.c) ----------------------------------- */

/* A predefined datatype Chorus can reduce: NULL and *out, or the reason. */
const char *cmpi_reduce_type(MPI_Datatype dt, chorus_datatype_t *out);
/* MPI_SUM/PROD/MIN/MAX: NULL and *out, or the reason. */
const char *cmpi_reduce_op(MPI_Op op, chorus_op_t *out);
/* A dense datatype, predefined or derived, for data movement: its elements
 * are contiguous bytes (lower bound and true lower bound 0, extent == true
 * extent == size) or its size is 0: NULL and *size (may be 0), or the
 * reason. Depends only on whether dt is dense, not on which type it is, so
 * ranks that pass different dense types for the same data agree. */
const char *cmpi_bytes_type(MPI_Datatype dt, size_t *size);

/* ---- arguments (chorus_mpi_args.c) -------------------------------------------- */

/* One Chorus call, as translated from an MPI call. */
struct cmpi_args {
    int kind;                  /* blocking chorus_mpi_coll_t (CHORUS_MPI_ALLREDUCE...) */
    const void *sendbuf;
    void *recvbuf;
    size_t count;
    chorus_datatype_t type;
    chorus_op_t op;
    int root;
    size_t *v;                 /* alltoallv: 4 x size: scounts, sdispls, rcounts, rdispls
                                * (malloc'ed; freed by cmpi_args_free) */
    /* after success: move_bytes bytes from move_src to move_dst (MPI's
     * in-place reduce_scatter_block wants the result at the start) */
    void *move_dst;
    const void *move_src;
    size_t move_bytes;
    size_t bytes;              /* the call's size for CHORUS_MPI_MIN/MAX_BYTES */
};

/* Each returns NULL when Chorus can do exactly what MPI was asked (a then
 * may own memory: cmpi_args_free), else the reason (a owns nothing). rank
 * and size are the caller's in comm. */
const char *cmpi_args_allreduce(struct cmpi_args *a, const void *sendbuf, void *recvbuf,
                                int count, MPI_Datatype dt, MPI_Op op);
const char *cmpi_args_allgather(struct cmpi_args *a, const void *sendbuf, int sendcount,
                                MPI_Datatype sendtype, void *recvbuf, int recvcount,
                                MPI_Datatype recvtype, int rank, int size);
const char *cmpi_args_alltoall(struct cmpi_args *a, const void *sendbuf, int sendcount,
                               MPI_Datatype sendtype, void *recvbuf, int recvcount,
                               MPI_Datatype recvtype, int size);
const char *cmpi_args_alltoallv(struct cmpi_args *a, const void *sendbuf, const int *sendcounts,
                                const int *sdispls, MPI_Datatype sendtype, void *recvbuf,
                                const int *recvcounts, const int *rdispls,
                                MPI_Datatype recvtype, int size);
const char *cmpi_args_reduce_scatter_block(struct cmpi_args *a, const void *sendbuf,
                                           void *recvbuf, int recvcount, MPI_Datatype dt,
                                           MPI_Op op, int rank, int size);
const char *cmpi_args_bcast(struct cmpi_args *a, void *buffer, int count, MPI_Datatype dt,
                            int root, int size);
const char *cmpi_args_reduce(struct cmpi_args *a, const void *sendbuf, void *recvbuf, int count,
                             MPI_Datatype dt, MPI_Op op, int root, int rank, int size);
void cmpi_args_barrier(struct cmpi_args *a);
void cmpi_args_free(struct cmpi_args *a);

/* Starts a's operation on comm: blocking when req is NULL. */
chorus_result_t cmpi_args_run(const struct cmpi_args *a, chorus_comm_t comm,
                              chorus_request_t *req);
/* The work after success (see move_*). */
void cmpi_args_finish(const struct cmpi_args *a);

/* ---- calls (chorus_mpi_call.c) ------------------------------------------------ */

/* A wrapper runs, stopping at the first reason to go to MPI:
 *     why = cmpi_config_check(coll, CMPI_UNSIZED);
 *     if (!why) why = cmpi_comm_find(comm, &c, &rank, &size);
 *     if (!why) why = cmpi_args_xxx(&a, ..., rank, size);
 *     if (!why) why = cmpi_call_begin(coll, comm, &a, &c);
 *     if (why) { cmpi_note_fallback(coll, comm, why); return PMPI_Xxx(...); }
 *     return cmpi_call_blocking(coll, c, comm, &a);   (or _nonblocking)
 * cmpi_call_begin checks the size range, then creates the Chorus
 * communicator on first use; on a reason it frees a. */
const char *cmpi_call_begin(int coll, MPI_Comm comm, struct cmpi_args *a, struct cmpi_comm **c);
/* The body of a wrapper: comm names the MPI communicator, prep translates
 * the arguments into a (it may use rank and size), fallback is the PMPI_
 * call and run the Chorus one. */
#define CMPI_INTERCEPT(coll_, comm_, prep, fallback, run)                       \
    do {                                                                        \
        struct cmpi_comm *c = NULL;                                             \
        struct cmpi_args a;                                                     \
        int rank = 0, size = 0;                                                 \
        const char *why = cmpi_config_check((coll_), CMPI_UNSIZED);             \
        if (!why)                                                               \
            why = cmpi_comm_find((comm_), &c, &rank, &size);                    \
        if (!why)                                                               \
            why = (prep);                                                       \
        if (!why)                                                               \
            why = cmpi_call_begin((coll_), (comm_), &a, &c);                    \
        if (why) {                                                              \
            cmpi_note_fallback((coll_), (comm_), why);                          \
            return (fallback);                                                  \
        }                                                                       \
        return (run);                                                           \
    } while (0)

/* Runs the call on Chorus and frees a; returns the MPI result. */
int cmpi_call_blocking(int coll, struct cmpi_comm *c, MPI_Comm comm, struct cmpi_args *a);
/* Turns MPI's progress engine once (while a Chorus operation runs). */
void cmpi_progress_mpi(void);
/* Starts the call on Chorus behind an MPI request (chorus_mpi_request.c);
 * a's arrays then belong to the request. Returns the MPI result. */
int cmpi_call_nonblocking(int coll, struct cmpi_comm *c, MPI_Comm comm, struct cmpi_args *a,
                          MPI_Request *req);

/* ---- errors, counters, log (chorus_mpi_error.c) ------------------------------- */

/* Counts a call that ran on Chorus. */
void cmpi_note_chorus(int coll);
/* Counts a call that goes to MPI and logs why (debug the first time per
 * collective and reason, trace afterwards). */
void cmpi_note_fallback(int coll, MPI_Comm comm, const char *why);
/* Turns a Chorus failure of coll on comm into an MPI error code whose
 * string is Chorus' text (detail, or chorus_get_last_error() when NULL);
 * when the failure broke c's Chorus communicator, later collectives on c go
 * to MPI; calls comm's error handler unless c was released (comm freed).
 * Returns the code. */
int cmpi_error(int coll, struct cmpi_comm *c, MPI_Comm comm, chorus_result_t res,
               const char *detail);
/* A short name of coll ("allreduce"). */
const char *cmpi_coll_name(int coll);

#endif
