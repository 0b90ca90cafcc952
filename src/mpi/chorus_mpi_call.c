/* chorus_mpi_call.c - the common steps of an intercepted call (see
 * chorus_mpi_internal.h): size range, Chorus communicator on first use, the
 * blocking run and its result.
 *
 * A blocking collective runs on the calling thread, with a progress hook
 * (chorus_set_progress_hook) that turns MPI's progress engine while Chorus
 * waits, as a blocking MPI collective would: a point-to-point transfer the
 * program started before the collective keeps moving. Without that, a
 * program where rank 0 does MPI_Isend(large) + MPI_Allreduce + MPI_Wait
 * while rank 1 does MPI_Recv + MPI_Allreduce would hang (rank 1 waits for
 * data that needs rank 0's progress; rank 0 waits in Chorus for rank 1).
 * The hook runs only once a wait has spun for a while, so a collective
 * whose peers are ready pays nothing for it. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
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

static void progress_hook(void *arg)
{
    (void)arg;
    cmpi_progress_mpi();
}

int cmpi_call_blocking(int coll, struct cmpi_comm *c, MPI_Comm comm, struct cmpi_args *a)
{
    chorus_set_progress_hook(progress_hook, NULL);
    chorus_result_t res = cmpi_args_run(a, c->chorus, NULL);
    chorus_set_progress_hook(NULL, NULL);
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
