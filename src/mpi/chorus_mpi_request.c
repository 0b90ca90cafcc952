/* chorus_mpi_request.c - a nonblocking Chorus operation behind an MPI request.
 *
 * The operation runs on the Chorus communicator's worker thread. The MPI
 * request is an MPICH extended generalized request (MPIX_Grequest_start):
 * MPICH calls its poll function from MPI_Test, MPI_Wait and their
 * all/any/some forms, in the thread that waits, and the poll function calls
 * chorus_test and, once the operation has finished, MPI_Grequest_complete.
 * So no thread of ours ever calls MPI, and any thread level works. While the
 * operation runs, each poll also turns MPI's progress engine (MPICH's
 * MPI_Wait on a request with a poll function turns nothing else). The wait
 * function (MPI_Waitall and friends) polls the same way, backing off to
 * sched_yield and short sleeps so a waiting rank leaves the cores to the
 * worker threads when ranks outnumber them.
 *
 * When the MPI communicator is freed (or MPI finalized) with operations in
 * flight, the delete callback waits for them (cmpi_nb_detach_all) before the
 * Chorus communicator is destroyed; their MPI requests complete at the next
 * test or wait, and keep the communicator's state (not the Chorus
 * communicator) alive until then. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "chorus_mpi_internal.h"

#if CMPI_HAVE_GREQUEST_POLL

struct cmpi_nb {
    chorus_request_t creq;     /* until finished (lock) */
    struct cmpi_comm *comm;    /* holds a reference */
    MPI_Comm mpi_comm;         /* for the error handler while comm is not released */
    MPI_Request mreq;
    int coll;
    int finished;              /* the Chorus side is done: res, error (lock) */
    int completed;             /* MPI_Grequest_complete called (waiting thread only) */
    chorus_result_t res;
    int mpi_err;
    unsigned polls;
    struct cmpi_args args;     /* owns the alltoallv arrays; the move after success */
    struct cmpi_nb *prev, *next; /* in comm->inflight while not finished */
    char error[512];           /* Chorus' text of a failure */
};

/* Lock held: records the end of the Chorus operation. */
static void finish_locked(struct cmpi_nb *st, chorus_result_t res)
{
    st->finished = 1;
    st->res = res;
    if (res != CHORUS_SUCCESS)
        snprintf(st->error, sizeof st->error, "%s", chorus_get_last_error());
    if (st->prev)
        st->prev->next = st->next;
    else if (st->comm->inflight == st)
        st->comm->inflight = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = st->next = NULL;
}

void cmpi_nb_detach_all(struct cmpi_comm *c)
{
    cmpi_lock();
    while (c->inflight) {
        struct cmpi_nb *st = c->inflight;
        chorus_result_t res = chorus_test(&st->creq);
        if (res != CHORUS_IN_PROGRESS) {
            finish_locked(st, res);
            continue;
        }
        /* a peer may need this rank's MPI progress to reach the operation */
        cmpi_unlock();
        cmpi_progress_mpi();
        sched_yield();
        cmpi_lock();
    }
    cmpi_unlock();
}

/* Completes the MPI request of a finished operation (once). */
static void complete(struct cmpi_nb *st)
{
    if (st->res == CHORUS_SUCCESS) {
        cmpi_args_finish(&st->args);
        cmpi_note_chorus(st->coll);
        st->mpi_err = MPI_SUCCESS;
    } else {
        st->mpi_err = cmpi_error(st->coll, st->comm, st->mpi_comm, st->res, st->error);
    }
    st->completed = 1;
    PMPI_Grequest_complete(st->mreq);
}

static int nb_poll(void *extra, MPI_Status *status)
{
    (void)status;
    struct cmpi_nb *st = extra;
    if (st->completed)
        return MPI_SUCCESS;
    cmpi_lock();
    if (!st->finished) {
        chorus_result_t res = chorus_test(&st->creq);
        if (res != CHORUS_IN_PROGRESS)
            finish_locked(st, res);
    }
    int finished = st->finished;
    cmpi_unlock();
    if (finished) {
        complete(st);
        return MPI_SUCCESS;
    }
    /* MPICH's MPI_Wait on this request calls only this function: turn the
     * progress engine too, so the program's other transfers keep moving
     * (see chorus_mpi_call.c) */
    cmpi_progress_mpi();
    if (++st->polls % 64 == 0)
        sched_yield(); /* MPI_Wait polls in a tight loop: let the worker run */
    return MPI_SUCCESS;
}

static int nb_wait(int count, void **states, double timeout, MPI_Status *status)
{
    (void)timeout;
    for (int i = 0; i < count; i++) {
        struct cmpi_nb *st = states[i];
        for (unsigned spins = 0; !st->completed; spins++) {
            nb_poll(st, status);
            if (st->completed || spins < 256)
                continue;
            if (spins < 4096) {
                sched_yield();
            } else {
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
            }
        }
    }
    return MPI_SUCCESS;
}

static int nb_query(void *extra, MPI_Status *status)
{
    struct cmpi_nb *st = extra;
    /* a collective's status is empty but for the error */
    PMPI_Status_set_elements(status, MPI_BYTE, 0);
    PMPI_Status_set_cancelled(status, 0);
    status->MPI_SOURCE = MPI_ANY_SOURCE;
    status->MPI_TAG = MPI_ANY_TAG;
    status->MPI_ERROR = st->mpi_err;
    return st->mpi_err;
}

static int nb_free(void *extra)
{
    struct cmpi_nb *st = extra;
    cmpi_args_free(&st->args);
    cmpi_comm_unref(st->comm);
    free(st);
    return MPI_SUCCESS;
}

static int nb_cancel(void *extra, int complete_)
{
    /* collectives cannot be cancelled (MPI calls it erroneous): nothing to do */
    (void)extra;
    (void)complete_;
    return MPI_SUCCESS;
}

int cmpi_call_nonblocking(int coll, struct cmpi_comm *c, MPI_Comm comm, struct cmpi_args *a,
                          MPI_Request *req)
{
    struct cmpi_nb *st = calloc(1, sizeof *st);
    if (!st) {
        cmpi_args_free(a);
        return cmpi_error(coll, c, comm, CHORUS_SYSTEM_ERROR, "out of memory");
    }
    st->args = *a;
    st->coll = coll;
    st->comm = c;
    st->mpi_comm = comm;
    chorus_result_t res = cmpi_args_run(&st->args, c->chorus, &st->creq);
    if (res != CHORUS_SUCCESS) {
        cmpi_args_free(&st->args);
        free(st);
        return cmpi_error(coll, c, comm, res, NULL);
    }
    if (PMPIX_Grequest_start(nb_query, nb_free, nb_cancel, nb_poll, nb_wait, st, &st->mreq) !=
        MPI_SUCCESS) {
        /* the peers have started it: finish it here */
        res = chorus_wait(&st->creq);
        if (res == CHORUS_SUCCESS)
            cmpi_args_finish(&st->args);
        cmpi_args_free(&st->args);
        free(st);
        return cmpi_error(coll, c, comm, res == CHORUS_SUCCESS ? CHORUS_SYSTEM_ERROR : res,
                          res == CHORUS_SUCCESS ? "MPIX_Grequest_start failed (the operation "
                          "itself completed)" : NULL);
    }
    cmpi_lock();
    cmpi_comm_ref_locked(c);
    st->next = c->inflight;
    if (c->inflight)
        c->inflight->prev = st;
    c->inflight = st;
    cmpi_unlock();
    *req = st->mreq;
    return MPI_SUCCESS;
}

#else /* no extended generalized requests: the nonblocking forms go to MPI */

void cmpi_nb_detach_all(struct cmpi_comm *c) { (void)c; }

int cmpi_call_nonblocking(int coll, struct cmpi_comm *c, MPI_Comm comm, struct cmpi_args *a,
                          MPI_Request *req)
{
    (void)req;
    cmpi_args_free(a);
    return cmpi_error(coll, c, comm, CHORUS_INTERNAL_ERROR, "nonblocking forms need MPICH");
}

#endif
