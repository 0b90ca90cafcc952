/* chorus_mpi_colls.c - the blocking MPI collectives, run on Chorus when it
 * can do exactly what MPI was asked, else by PMPI unchanged (see
 * chorus_mpi_internal.h for the steps and chorus_mpi_args.c for what
 * "exactly" means). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "chorus_mpi_internal.h"

int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op,
                  MPI_Comm comm)
{
    CMPI_INTERCEPT(CHORUS_MPI_ALLREDUCE, comm,
                   cmpi_args_allreduce(&a, sendbuf, recvbuf, count, datatype, op),
                   PMPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm),
                   cmpi_call_blocking(CHORUS_MPI_ALLREDUCE, c, comm, &a));
}

int MPI_Allgather(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf,
                  int recvcount, MPI_Datatype recvtype, MPI_Comm comm)
{
    CMPI_INTERCEPT(CHORUS_MPI_ALLGATHER, comm,
                   cmpi_args_allgather(&a, sendbuf, sendcount, sendtype, recvbuf, recvcount,
                                       recvtype, rank, size),
                   PMPI_Allgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype,
                                  comm),
                   cmpi_call_blocking(CHORUS_MPI_ALLGATHER, c, comm, &a));
}

int MPI_Alltoall(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf,
                 int recvcount, MPI_Datatype recvtype, MPI_Comm comm)
{
    CMPI_INTERCEPT(CHORUS_MPI_ALLTOALL, comm,
                   cmpi_args_alltoall(&a, sendbuf, sendcount, sendtype, recvbuf, recvcount,
                                      recvtype, size),
                   PMPI_Alltoall(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype,
                                 comm),
                   cmpi_call_blocking(CHORUS_MPI_ALLTOALL, c, comm, &a));
}

int MPI_Alltoallv(const void *sendbuf, const int sendcounts[], const int sdispls[],
                  MPI_Datatype sendtype, void *recvbuf, const int recvcounts[], const int rdispls[],
                  MPI_Datatype recvtype, MPI_Comm comm)
{
    CMPI_INTERCEPT(CHORUS_MPI_ALLTOALLV, comm,
                   cmpi_args_alltoallv(&a, sendbuf, sendcounts, sdispls, sendtype, recvbuf,
                                       recvcounts, rdispls, recvtype, size),
                   PMPI_Alltoallv(sendbuf, sendcounts, sdispls, sendtype, recvbuf, recvcounts,
                                  rdispls, recvtype, comm),
                   cmpi_call_blocking(CHORUS_MPI_ALLTOALLV, c, comm, &a));
}

int MPI_Reduce_scatter_block(const void *sendbuf, void *recvbuf, int recvcount,
                             MPI_Datatype datatype, MPI_Op op, MPI_Comm comm)
{
    CMPI_INTERCEPT(CHORUS_MPI_REDUCE_SCATTER_BLOCK, comm,
                   cmpi_args_reduce_scatter_block(&a, sendbuf, recvbuf, recvcount, datatype, op,
                                                  rank, size),
                   PMPI_Reduce_scatter_block(sendbuf, recvbuf, recvcount, datatype, op, comm),
                   cmpi_call_blocking(CHORUS_MPI_REDUCE_SCATTER_BLOCK, c, comm, &a));
}

int MPI_Bcast(void *buffer, int count, MPI_Datatype datatype, int root, MPI_Comm comm)
{
    CMPI_INTERCEPT(CHORUS_MPI_BCAST, comm,
                   cmpi_args_bcast(&a, buffer, count, datatype, root, size),
                   PMPI_Bcast(buffer, count, datatype, root, comm),
                   cmpi_call_blocking(CHORUS_MPI_BCAST, c, comm, &a));
}

int MPI_Reduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op,
               int root, MPI_Comm comm)
{
    CMPI_INTERCEPT(CHORUS_MPI_REDUCE, comm,
                   cmpi_args_reduce(&a, sendbuf, recvbuf, count, datatype, op, root, rank, size),
                   PMPI_Reduce(sendbuf, recvbuf, count, datatype, op, root, comm),
                   cmpi_call_blocking(CHORUS_MPI_REDUCE, c, comm, &a));
}

int MPI_Barrier(MPI_Comm comm)
{
    CMPI_INTERCEPT(CHORUS_MPI_BARRIER, comm, (cmpi_args_barrier(&a), (const char *)NULL),
                   PMPI_Barrier(comm), cmpi_call_blocking(CHORUS_MPI_BARRIER, c, comm, &a));
}
