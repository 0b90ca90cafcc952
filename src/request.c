/* request.c - nonblocking operations.
 *
 * A nonblocking call queues its operation; one worker thread per
 * communicator runs the queue in order, so the caller's thread is free to
 * compute meanwhile (real overlap, not progress-on-wait). A blocking call
 * with an empty queue runs inline on the caller's thread: no thread hand-off
 * (about 35 us to wake a sleeping thread here) on the latency-critical path.
 * Likewise, a wait on an operation the worker has not started yet (it is
 * next in line and the worker is still waking up, or had no core) runs it
 * on the waiting thread: waiting for the worker to get scheduled would only
 * add its wake-up time. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coll.h"
#include "comm.h"
#include "error.h"
#include "log.h"
#include "wait.h"
#include "watchdog.h"

struct chorus_request {
    struct coll_args args;
    chorus_comm_t comm;
    _Atomic int done;
    int started; /* taken by the worker or a waiter (under qlock) */
    chorus_result_t res;
    char error[512];
    struct chorus_request *next;
};

/* Runs the queue's head, which the caller has marked started, with qlock
 * released; returns with qlock held and the request done and unlinked. */
static void run_head(chorus_comm_t comm, struct chorus_request *req)
{
    pthread_mutex_unlock(&comm->qlock);
    chorus_error_clear();
    /* An operation queued earlier may have broken or aborted comm. */
    req->res = chorus_comm_check_usable(comm, coll_name(req->args.kind));
    if (req->res == CHORUS_SUCCESS)
        req->res = coll_run(comm, &req->args);
    chorus_error_save(req->error, sizeof req->error);

    pthread_mutex_lock(&comm->qlock);
    comm->qhead = req->next;
    if (!comm->qhead)
        comm->qtail = NULL;
    atomic_store(&req->done, 1);
    atomic_fetch_sub(&comm->pending, 1);
    pthread_cond_broadcast(&comm->donecond);
}

static void *worker_main(void *arg)
{
    chorus_comm_t comm = arg;
    pthread_mutex_lock(&comm->qlock);
    for (;;) {
        /* a head a waiter took is not ours; its end wakes us for the next */
        while ((!comm->qhead || comm->qhead->started) && !comm->worker_stop)
            pthread_cond_wait(&comm->qcond, &comm->qlock);
        if (!comm->qhead || comm->qhead->started)
            break;
        struct chorus_request *req = comm->qhead;
        req->started = 1;
        run_head(comm, req);
    }
    pthread_mutex_unlock(&comm->qlock);
    return NULL;
}

/* If req is next in line and nobody runs it yet, runs it on this thread
 * (and lets the worker go on with what follows). 1 if it did. */
static int run_if_next(struct chorus_request *req)
{
    chorus_comm_t comm = req->comm;
    pthread_mutex_lock(&comm->qlock);
    int mine = comm->qhead == req && !req->started;
    if (mine) {
        req->started = 1;
        run_head(comm, req);
        pthread_cond_signal(&comm->qcond);
    }
    pthread_mutex_unlock(&comm->qlock);
    return mine;
}

static chorus_result_t enqueue(chorus_comm_t comm, struct chorus_request *req)
{
    pthread_mutex_lock(&comm->qlock);
    if (!comm->worker_started) {
        int e = pthread_create(&comm->worker, NULL, worker_main, comm);
        if (e) {
            pthread_mutex_unlock(&comm->qlock);
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: cannot start the worker thread: %s",
                              comm->label, strerror(e));
        }
        comm->worker_started = 1;
    }
    req->next = NULL;
    if (comm->qtail)
        comm->qtail->next = req;
    else
        comm->qhead = req;
    comm->qtail = req;
    atomic_fetch_add(&comm->pending, 1);
    pthread_cond_signal(&comm->qcond);
    pthread_mutex_unlock(&comm->qlock);
    return CHORUS_SUCCESS;
}

/* Waits for req to finish. Bounded: the operation itself is bounded by the
 * communicator's timeout; this adds a margin for the queue ahead of it. */
static chorus_result_t wait_done(struct chorus_request *req)
{
    chorus_comm_t comm = req->comm;
    if (!atomic_load(&req->done) && run_if_next(req))
        return CHORUS_SUCCESS;
    for (int i = 0; i < 2000; i++) { /* a short spin catches quick operations */
        if (atomic_load(&req->done))
            return CHORUS_SUCCESS;
        chorus_cpu_relax();
    }
    int64_t limit = comm->timeout_ms > 0 ? (int64_t)comm->timeout_ms * 1000000 * 2 + 10000000000
                                         : 0;
    int64_t start = chorus_now_ns();
    pthread_mutex_lock(&comm->qlock);
    while (!atomic_load(&req->done)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&comm->donecond, &comm->qlock, &ts);
        if (limit && chorus_now_ns() - start > limit && !atomic_load(&req->done)) {
            pthread_mutex_unlock(&comm->qlock);
            return CHORUS_ERR(CHORUS_TIMEOUT, "%s: a queued %s did not finish in %lld ms; the "
                              "request stays valid", comm->label, coll_name(req->args.kind),
                              (long long)(limit / 1000000));
        }
    }
    pthread_mutex_unlock(&comm->qlock);
    return CHORUS_SUCCESS;
}

/* Hands a finished request's result to the caller and frees it. */
static chorus_result_t reap(chorus_request_t *reqp)
{
    struct chorus_request *req = *reqp;
    chorus_result_t res = req->res;
    if (res != CHORUS_SUCCESS)
        chorus_error_restore(req->error);
    free(req);
    *reqp = NULL;
    return res;
}

chorus_result_t coll_submit(chorus_comm_t comm, const struct coll_args *a, chorus_request_t *reqp)
{
    chorus_error_clear();
    CHORUS_CHECK(chorus_comm_check_usable(comm, coll_name(a->kind)));
    if (reqp)
        *reqp = NULL;
    CHORUS_CHECK(coll_check(comm, a));
    if (!reqp && atomic_load(&comm->pending) == 0) {
        watchdog_coll_entered(comm, a->kind);
        return coll_run(comm, a);
    }

    struct chorus_request *req = calloc(1, sizeof *req);
    if (!req)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    req->args = *a;
    req->comm = comm;
    watchdog_coll_entered(comm, a->kind); /* before the worker can run it */
    chorus_result_t res = enqueue(comm, req);
    if (res != CHORUS_SUCCESS) {
        if (watchdog_counts(a->kind)) /* it never entered */
            atomic_fetch_sub(&comm->coll_entered, 1);
        free(req);
        return res;
    }
    if (reqp) {
        *reqp = req;
        return CHORUS_SUCCESS;
    }
    /* Blocking call behind queued work: keep the order, wait for our turn. */
    CHORUS_CHECK(wait_done(req));
    return reap(&req);
}

chorus_result_t chorus_test(chorus_request_t *reqp)
{
    chorus_error_clear();
    if (!reqp || !*reqp)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_test: NULL request");
    if (!atomic_load(&(*reqp)->done))
        return CHORUS_IN_PROGRESS;
    return reap(reqp);
}

chorus_result_t chorus_wait(chorus_request_t *reqp)
{
    chorus_error_clear();
    if (!reqp || !*reqp)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "chorus_wait: NULL request");
    CHORUS_CHECK(wait_done(*reqp));
    return reap(reqp);
}

chorus_result_t chorus_requests_drain(chorus_comm_t comm)
{
    int64_t limit = comm->timeout_ms > 0 ? (int64_t)comm->timeout_ms * 1000000 * 2 + 10000000000
                                         : 0;
    int64_t start = chorus_now_ns();
    pthread_mutex_lock(&comm->qlock);
    while (atomic_load(&comm->pending) > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&comm->donecond, &comm->qlock, &ts);
        if (limit && chorus_now_ns() - start > limit) {
            pthread_mutex_unlock(&comm->qlock);
            return CHORUS_ERR(CHORUS_TIMEOUT, "%s: outstanding operations did not finish",
                              comm->label);
        }
    }
    pthread_mutex_unlock(&comm->qlock);
    int broken = atomic_load(&comm->async_error);
    return (chorus_result_t)broken;
}

void chorus_requests_stop(chorus_comm_t comm)
{
    pthread_mutex_lock(&comm->qlock);
    int started = comm->worker_started;
    comm->worker_stop = 1;
    pthread_cond_signal(&comm->qcond);
    pthread_mutex_unlock(&comm->qlock);
    if (started)
        pthread_join(comm->worker, NULL);
    comm->worker_started = 0;
}
