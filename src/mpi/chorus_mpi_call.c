/* chorus_mpi_call.c - the common steps of an intercepted call (see
 * chorus_mpi_internal.h): size range, Chorus communicator on first use, the
 * blocking run and its result.
 *
 * A blocking collective runs in one of two ways:
 *   - on the calling thread (chorus_allreduce etc.): the fastest, but while
 *     Chorus waits for the peers nothing turns MPI's progress engine;
 *   - on the Chorus communicator's worker thread (chorus_iallreduce etc.)
 *     while the calling thread polls it and MPI (PMPI_Iprobe), as a blocking
 *     MPI collective would: a point-to-point transfer the program started
 *     before the collective keeps moving. Without that, a program where rank
 *     0 does MPI_Isend(large) + MPI_Allreduce + MPI_Wait while rank 1 does
 *     MPI_Recv + MPI_Allreduce would hang (rank 1 waits for data that needs
 *     rank 0's progress; rank 0 waits in Chorus for rank 1).
 * CHORUS_MPI_PROGRESS_MIN picks the second way from that size on (default
 * 0: always); the hand-off to the worker costs some microseconds. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <sched.h>

#include "chorus_mpi_internal.h"

const char *cmpi_call_begin(int coll, MPI_Comm comm, struct cmpi_args *a, struct cmpi_comm **c)
{
    const char *why = cmpi_config_check(coll, a->bytes);
    if (!why && !*c)
        why = cmpi_comm_create(comm, c);
    if (why)
        cmpi_args_free(a);
    return why;
}

void cmpi_progress_mpi(void)
{
    /* An Iprobe on MPI_COMM_WORLD turns MPICH's progress engine (one on
     * MPI_COMM_SELF does not); it matches nothing away. */
    int flag;
    PMPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
}

/* Runs a on the worker thread, turning MPI's progress engine meanwhile. */
static chorus_result_t run_progressing(const struct cmpi_args *a, chorus_comm_t comm)
{
    chorus_request_t req;
    chorus_result_t res = cmpi_args_run(a, comm, &req);
    if (res != CHORUS_SUCCESS)
        return res;
    for (unsigned polls = 0;; polls++) {
        res = chorus_test(&req);
        if (res != CHORUS_IN_PROGRESS)
            return res;
        cmpi_progress_mpi();
        if (polls >= 64)
            sched_yield(); /* leave the core to the worker when ranks outnumber cores */
    }
}

int cmpi_call_blocking(int coll, struct cmpi_comm *c, MPI_Comm comm, struct cmpi_args *a)
{
    chorus_result_t res = a->local_bytes >= cmpi_config()->progress_min
                              ? run_progressing(a, c->chorus)
                              : cmpi_args_run(a, c->chorus, NULL);
    int rc = MPI_SUCCESS;
    if (res == CHORUS_SUCCESS) {
        cmpi_args_finish(a);
        cmpi_note_chorus(coll);
    } else {
        rc = cmpi_error(coll, c, comm, res, NULL);
    }
    cmpi_args_free(a);
    return rc;
}
