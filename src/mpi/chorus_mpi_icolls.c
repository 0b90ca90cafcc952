/* chorus_mpi_icolls.c - the nonblocking MPI collectives, run on Chorus behind
 * an MPI generalized request (chorus_mpi_request.c) when Chorus can do
 * exactly what MPI was asked, else by PMPI unchanged. Without MPICH's
 * extended generalized requests they always go to MPI. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "chorus_mpi_internal.h"

#if CMPI_HAVE_GREQUEST_POLL
#define NB_CHECK(prep) (prep)
#else
#define NB_CHECK(prep) \
    "the nonblocking forms need MPICH's extended generalized requests (MPIX_Grequest_start)"
#endif

int MPI_Iallreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype,
                   MPI_Op op, MPI_Comm comm, MPI_Request *request)
{
    CMPI_INTERCEPT(CHORUS_MPI_IALLREDUCE, comm,
                   NB_CHECK(cmpi_args_allreduce(&a, sendbuf, recvbuf, count, datatype, op)),
                   PMPI_Iallreduce(sendbuf, recvbuf, count, datatype, op, comm, request),
                   cmpi_call_nonblocking(CHORUS_MPI_IALLREDUCE, c, comm, &a, request));
}

int MPI_Iallgather(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf,
                   int recvcount, MPI_Datatype recvtype, MPI_Comm comm, MPI_Request *request)
{
    CMPI_INTERCEPT(CHORUS_MPI_IALLGATHER, comm,
                   NB_CHECK(cmpi_args_allgather(&a, sendbuf, sendcount, sendtype, recvbuf,
                                                recvcount, recvtype, rank, size)),
                   PMPI_Iallgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype,
                                   comm, request),
                   cmpi_call_nonblocking(CHORUS_MPI_IALLGATHER, c, comm, &a, request));
}

int MPI_Ialltoall(const void *sendbuf, int sendcount, MPI_Datatype sendtype, void *recvbuf,
                  int recvcount, MPI_Datatype recvtype, MPI_Comm comm, MPI_Request *request)
{
    CMPI_INTERCEPT(CHORUS_MPI_IALLTOALL, comm,
                   NB_CHECK(cmpi_args_alltoall(&a, sendbuf, sendcount, sendtype, recvbuf,
                                               recvcount, recvtype, size)),
                   PMPI_Ialltoall(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype,
                                  comm, request),
                   cmpi_call_nonblocking(CHORUS_MPI_IALLTOALL, c, comm, &a, request));
}

int MPI_Ialltoallv(const void *sendbuf, const int sendcounts[], const int sdispls[],
                   MPI_Datatype sendtype, void *recvbuf, const int recvcounts[],
                   const int rdispls[], MPI_Datatype recvtype, MPI_Comm comm,
                   MPI_Request *request)
{
    CMPI_INTERCEPT(CHORUS_MPI_IALLTOALLV, comm,
                   NB_CHECK(cmpi_args_alltoallv(&a, sendbuf, sendcounts, sdispls, sendtype,
                                                recvbuf, recvcounts, rdispls, recvtype, size)),
                   PMPI_Ialltoallv(sendbuf, sendcounts, sdispls, sendtype, recvbuf, recvcounts,
                                   rdispls, recvtype, comm, request),
                   cmpi_call_nonblocking(CHORUS_MPI_IALLTOALLV, c, comm, &a, request));
}

int MPI_Ireduce_scatter_block(const void *sendbuf, void *recvbuf, int recvcount,
                              MPI_Datatype datatype, MPI_Op op, MPI_Comm comm,
                              MPI_Request *request)
{
    CMPI_INTERCEPT(CHORUS_MPI_IREDUCE_SCATTER_BLOCK, comm,
                   NB_CHECK(cmpi_args_reduce_scatter_block(&a, sendbuf, recvbuf, recvcount,
                                                           datatype, op, rank, size)),
                   PMPI_Ireduce_scatter_block(sendbuf, recvbuf, recvcount, datatype, op, comm,
                                              request),
                   cmpi_call_nonblocking(CHORUS_MPI_IREDUCE_SCATTER_BLOCK, c, comm, &a,
                                         request));
}

int MPI_Ibcast(void *buffer, int count, MPI_Datatype datatype, int root, MPI_Comm comm,
               MPI_Request *request)
{
    CMPI_INTERCEPT(CHORUS_MPI_IBCAST, comm,
                   NB_CHECK(cmpi_args_bcast(&a, buffer, count, datatype, root, size)),
                   PMPI_Ibcast(buffer, count, datatype, root, comm, request),
                   cmpi_call_nonblocking(CHORUS_MPI_IBCAST, c, comm, &a, request));
}

int MPI_Ireduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op,
                int root, MPI_Comm comm, MPI_Request *request)
{
    CMPI_INTERCEPT(CHORUS_MPI_IREDUCE, comm,
                   NB_CHECK(cmpi_args_reduce(&a, sendbuf, recvbuf, count, datatype, op, root,
                                             rank, size)),
                   PMPI_Ireduce(sendbuf, recvbuf, count, datatype, op, root, comm, request),
                   cmpi_call_nonblocking(CHORUS_MPI_IREDUCE, c, comm, &a, request));
}

int MPI_Ibarrier(MPI_Comm comm, MPI_Request *request)
{
    CMPI_INTERCEPT(CHORUS_MPI_IBARRIER, comm,
                   NB_CHECK((cmpi_args_barrier(&a), (const char *)NULL)),
                   PMPI_Ibarrier(comm, request),
                   cmpi_call_nonblocking(CHORUS_MPI_IBARRIER, c, comm, &a, request));
}
