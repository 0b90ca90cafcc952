/* comm.h - the communicator: who is in it, how they reach each other, and
 * whether it is still usable. */
#ifndef CHORUS_COMM_H
#define CHORUS_COMM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "algo_select.h"
#include "chorus.h"
#include "plan.h"
#include "plan_exec.h"

#define CHORUS_COMM_MAGIC 0x43484f52u /* "CHOR" */

struct chorus_bootstrap;
struct shm_comm;
struct chorus_request;
struct transport;
struct coll_args;
struct chorus_registration;
struct topo;
struct tuner;
struct tuning;
struct watchdog;

/* Where the ranks are: grouped by host id, hosts numbered in order of their
 * lowest rank, ranks of a host numbered in rank order. */
struct comm_layout {
    int nhosts;
    int host;           /* my host's index */
    int local_rank, local_size;
    int *rank_host;     /* [nranks] host index of each rank */
    int *rank_local;    /* [nranks] index of each rank among its host's ranks */
    int *local_ranks;   /* [local_size] the communicator ranks on my host */
    int ppn;            /* ranks per host when equal on every host, else 0 */
    int *grid;          /* ppn > 0: [nhosts * ppn], grid[h * ppn + l] = rank */
    int *cross;         /* ppn > 0: [nhosts] the ranks with my local index, by host */
    int *identity;      /* [nranks] r -> r: the group map of flat plans */
    int *rank_package;  /* [nranks] package each rank is bound within (OS index; -1 several) */
    int *rank_numa;     /* [nranks] NUMA node each rank is bound within (-1 several) */
};

struct chorus_comm {
    uint32_t magic;
    int rank, nranks;
    char label[96]; /* "comm <name> rank r/n", first words of every error text */
    int timeout_ms, init_timeout_ms;
    struct chorus_bootstrap *bs;
    struct shm_comm *shm;     /* the ranks of my host (all ranks on one node) */
    struct transport *net;    /* between hosts; NULL when every rank is on one */
    struct comm_layout layout;
    struct chorus_wait_policy net_policy;
    struct algo_config algos; /* CHORUS_ALGO */
    struct topo *topo;        /* the layout as the tuner sees it (comm_tuner.c) */
    struct tuner *tuner;      /* decisions per collective and size, built at init */
    int cross_level;          /* topo level of the network between hosts */
    struct tuning *tuning;    /* CHORUS_TUNING_FILE, NULL when unset */
    struct topo *file_topo;   /* CHORUS_TOPO_FILE, NULL when unset */
    int *pos_rank;            /* topology file in use: position -> rank; else NULL */
    uint64_t tuning_hash;     /* of both files: ranks must agree */
    struct plan plan;         /* reused by every plan-based call */
    struct plan_exec_cache exec_cache;
    struct chorus_registration *registrations; /* comm_register.c */
    int check_calls;          /* CHORUS_CHECK_CALLS */
    uint64_t check_seq;       /* collectives checked so far */
    void *hier_tmp;           /* staging of the hierarchical algorithms */
    size_t hier_tmp_cap;
    _Atomic int aborted;
    _Atomic int async_error; /* chorus_result_t that broke the communicator */

    /* Collectives (not point-to-point) this rank has entered (submitted,
     * after the argument checks) and finished, and the straggler watchdog
     * that reports peers left behind (watchdog.c; NULL when off). */
    _Atomic uint64_t coll_entered, coll_done;
    struct watchdog *wd;

    /* Nonblocking operations run in order on a worker thread (request.c). */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;    /* worker: work arrived / stop */
    pthread_cond_t donecond; /* waiters: a request finished */
    struct chorus_request *qhead, *qtail;
    _Atomic int pending; /* submitted, not yet finished */
    int worker_started, worker_stop;
    pthread_t worker;
};

/* Checks comm is a live communicator that can take operations: not NULL,
 * not destroyed (best effort), not aborted or broken. */
chorus_result_t chorus_comm_check_usable(chorus_comm_t comm, const char *what);

/* Records a failure that leaves comm unusable (peer gone, timeout, ...) and
 * tells the peers through shared memory so they fail fast too. */
void chorus_comm_fail(chorus_comm_t comm, chorus_result_t res);

/* comm_register.c: releases every registration still held (at destroy,
 * before the transport goes). */
void comm_release_registrations(chorus_comm_t comm);

/* comm_tuner.c: the decision table of comm's layout (at init, once the
 * transports are known), and its release at destroy. */
chorus_result_t comm_tuner_setup(chorus_comm_t comm, int use_shm, int use_rdma);
/* Reads CHORUS_TUNING_FILE and CHORUS_TOPO_FILE (before ranks compare
 * settings: both change decisions, so their hash joins the comparison). */
chorus_result_t comm_tuning_load(chorus_comm_t comm);
uint64_t comm_tuning_hash(chorus_comm_t comm);
void comm_tuner_free(chorus_comm_t comm);

/* coll_checkmode.c: with CHORUS_CHECK_CALLS, compares every rank's call
 * before running it; CHORUS_INVALID_USAGE on every rank if they differ. */
chorus_result_t coll_check_match(chorus_comm_t comm, const struct coll_args *a);

/* coll_net.c: runs a checked operation on a communicator spanning hosts. */
chorus_result_t coll_net_run(chorus_comm_t comm, const struct coll_args *a);

/* request.c */
chorus_result_t chorus_requests_drain(chorus_comm_t comm);
void chorus_requests_stop(chorus_comm_t comm);

#endif
