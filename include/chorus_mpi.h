/* chorus_mpi.h - create a Chorus communicator from an MPI communicator.
 *
 * Header-only, so libchorus itself does not depend on MPI: include it after
 * <mpi.h> in a program that uses MPI. Collective over mpi_comm. */
#ifndef CHORUS_MPI_H
#define CHORUS_MPI_H

#include <mpi.h>

#include "chorus.h"

static inline chorus_result_t chorus_comm_init_mpi(chorus_comm_t *comm, MPI_Comm mpi_comm)
{
    int rank, size;
    chorus_unique_id_t id;
    chorus_result_t res = CHORUS_SUCCESS;
    if (MPI_Comm_rank(mpi_comm, &rank) != MPI_SUCCESS ||
        MPI_Comm_size(mpi_comm, &size) != MPI_SUCCESS)
        return CHORUS_INVALID_ARGUMENT;
    if (rank == 0)
        res = chorus_get_unique_id(&id);
    /* Every rank must learn whether the root could make an id. */
    int ok = res == CHORUS_SUCCESS;
    if (MPI_Bcast(&ok, 1, MPI_INT, 0, mpi_comm) != MPI_SUCCESS)
        return CHORUS_SYSTEM_ERROR;
    if (!ok)
        return rank == 0 ? res : CHORUS_REMOTE_ERROR;
    if (MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, mpi_comm) != MPI_SUCCESS)
        return CHORUS_SYSTEM_ERROR;
    return chorus_comm_init_rank(comm, size, id, rank);
}

#endif
