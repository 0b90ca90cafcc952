/* comm.h - the communicator: who is in it, how they reach each other, and
 * whether it is still usable. */
#ifndef CHORUS_COMM_H
#define CHORUS_COMM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "chorus.h"

#define CHORUS_COMM_MAGIC 0x43484f52u /* "CHOR" */

struct chorus_bootstrap;
struct shm_comm;
struct chorus_request;

struct chorus_comm {
    uint32_t magic;
    int rank, nranks;
    char label[96]; /* "comm <name> rank r/n", first words of every error text */
    int timeout_ms, init_timeout_ms;
    struct chorus_bootstrap *bs;
    struct shm_comm *shm;
    _Atomic int aborted;
    _Atomic int async_error; /* chorus_result_t that broke the communicator */

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

/* request.c */
chorus_result_t chorus_requests_drain(chorus_comm_t comm);
void chorus_requests_stop(chorus_comm_t comm);

#endif
