/* chorus_mpi_args.c - translates the arguments of an MPI collective into one
 * Chorus call, or says why Chorus cannot do exactly what MPI was asked.
 *
 * Data movement runs on bytes (CHORUS_UINT8): count elements of a dense
 * datatype (chorus_mpi_types.c) are count * size bytes, so a send type and a
 * receive type that differ but describe the same bytes work, and so do
 * ranks that pass different dense types (size 0 included) for the same data;
 * sizes for CHORUS_MPI_MIN/MAX_BYTES are in bytes too. MPI_IN_PLACE maps to
 * Chorus' in-place conventions (chorus.h); MPI's in-place
 * reduce_scatter_block wants the result at the start of recvbuf, where
 * Chorus leaves it in the rank's slice: a move after the operation fixes
 * that. Negative or erroneous arguments go to MPI, which reports them. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chorus_mpi_internal.h"

static const char *const bad_count = "negative count (MPI reports it)";
static const char *const too_big = "sizes overflow size_t";

static void args_init(struct cmpi_args *a, int kind)
{
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->type = CHORUS_UINT8;
    a->bytes = CMPI_UNSIZED;
}

/* The size of a sized call is this rank's too. */
static const char *sized(struct cmpi_args *a)
{
    return NULL;
}

void cmpi_args_free(struct cmpi_args *a)
{
    free(a->v);
    a->v = NULL;
}

/* a * b (* c) without overflow: 0, or -1. */
static int mul(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

static const char *reduction(struct cmpi_args *a, int count, MPI_Datatype dt, MPI_Op op)
{
    if (count < 0)
        return bad_count;
    const char *why = cmpi_reduce_type(dt, &a->type);
    if (!why)
        why = cmpi_reduce_op(op, &a->op);
    if (why)
        return why;
    a->count = (size_t)count;
    return NULL;
}

const char *cmpi_args_allreduce(struct cmpi_args *a, const void *sendbuf, void *recvbuf,
                                int count, MPI_Datatype dt, MPI_Op op)
{
    args_init(a, CHORUS_MPI_ALLREDUCE);
    const char *why = reduction(a, count, dt, op);
    if (why)
        return why;
    a->sendbuf = sendbuf == MPI_IN_PLACE ? recvbuf : sendbuf;
    a->recvbuf = recvbuf;
    a->bytes = a->count * chorus_type_size(a->type);
    return sized(a);
}

const char *cmpi_args_reduce(struct cmpi_args *a, const void *sendbuf, void *recvbuf, int count,
                             MPI_Datatype dt, MPI_Op op, int root, int rank, int size)
{
    args_init(a, CHORUS_MPI_REDUCE);
    const char *why = reduction(a, count, dt, op);
    if (why)
        return why;
    if (root < 0 || root >= size)
        return "root out of range (MPI reports it)";
    if (sendbuf == MPI_IN_PLACE && rank != root)
        return "MPI_IN_PLACE on a rank that is not the root (MPI reports it)";
    a->root = root;
    a->sendbuf = sendbuf == MPI_IN_PLACE ? recvbuf : sendbuf;
    a->recvbuf = rank == root ? recvbuf : NULL; /* insignificant elsewhere */
    a->bytes = a->count * chorus_type_size(a->type);
    return sized(a);
}

const char *cmpi_args_reduce_scatter_block(struct cmpi_args *a, const void *sendbuf,
                                           void *recvbuf, int recvcount, MPI_Datatype dt,
                                           MPI_Op op, int rank, int size)
{
    args_init(a, CHORUS_MPI_REDUCE_SCATTER_BLOCK);
    const char *why = reduction(a, recvcount, dt, op);
    if (why)
        return why;
    size_t block = a->count * chorus_type_size(a->type);
    if (mul(block, (size_t)size, &a->bytes))
        return too_big;
    if (sendbuf == MPI_IN_PLACE) {
        /* input: all of recvbuf; Chorus puts this rank's block in its slice,
         * MPI wants it at the start */
        a->sendbuf = recvbuf;
        a->recvbuf = (char *)recvbuf + (size_t)rank * block;
        if (rank != 0) {
            a->move_dst = recvbuf;
            a->move_src = a->recvbuf;
            a->move_bytes = block;
        }
    } else {
        a->sendbuf = sendbuf;
        a->recvbuf = recvbuf;
    }
    return sized(a);
}

/* The block a data-movement call moves per rank, in bytes, from the receive
 * side; the send side (unless in place) must describe as many bytes. */
static const char *blocks(const void *sendbuf, int sendcount, MPI_Datatype sendtype,
                          int recvcount, MPI_Datatype recvtype, size_t *block)
{
    size_t rsize, ssize;
    if (recvcount < 0 || (sendbuf != MPI_IN_PLACE && sendcount < 0))
        return bad_count;
    const char *why = cmpi_bytes_type(recvtype, &rsize);
    if (why)
        return why;
    if (mul((size_t)recvcount, rsize, block))
        return too_big;
    if (sendbuf == MPI_IN_PLACE)
        return NULL;
    why = cmpi_bytes_type(sendtype, &ssize);
    if (why)
        return why;
    size_t sblock;
    if (mul((size_t)sendcount, ssize, &sblock))
        return too_big;
    if (sblock != *block)
        return "send and receive blocks differ in size (MPI reports it)";
    return NULL;
}

const char *cmpi_args_allgather(struct cmpi_args *a, const void *sendbuf, int sendcount,
                                MPI_Datatype sendtype, void *recvbuf, int recvcount,
                                MPI_Datatype recvtype, int rank, int size)
{
    args_init(a, CHORUS_MPI_ALLGATHER);
    size_t block;
    const char *why = blocks(sendbuf, sendcount, sendtype, recvcount, recvtype, &block);
    if (why)
        return why;
    if (mul(block, (size_t)size, &a->bytes))
        return too_big;
    a->count = block;
    a->recvbuf = recvbuf;
    a->sendbuf = sendbuf == MPI_IN_PLACE ? (char *)recvbuf + (size_t)rank * block : sendbuf;
    return sized(a);
}

const char *cmpi_args_alltoall(struct cmpi_args *a, const void *sendbuf, int sendcount,
                               MPI_Datatype sendtype, void *recvbuf, int recvcount,
                               MPI_Datatype recvtype, int size)
{
    args_init(a, CHORUS_MPI_ALLTOALL);
    size_t block;
    const char *why = blocks(sendbuf, sendcount, sendtype, recvcount, recvtype, &block);
    if (why)
        return why;
    if (mul(block, (size_t)size, &a->bytes))
        return too_big;
    a->count = block;
    a->recvbuf = recvbuf;
    a->sendbuf = sendbuf == MPI_IN_PLACE ? recvbuf : sendbuf;
    return sized(a);
}

/* One side of an alltoallv in bytes: counts[i] * esize and displs[i] * esize
 * relative to a base that is moved down to the lowest block when a
 * displacement is negative (MPI allows that; Chorus' displacements are
 * unsigned). esize is the dense datatype's size, which is also its extent
 * (the unit of MPI's displacements); when it is 0 every count and
 * displacement is 0 bytes (only multiplications here). Returns the base
 * offset in *shift (<= 0), or a reason. */
static const char *v_side(int size, const int *counts, const int *displs, size_t esize,
                          size_t *ocounts, size_t *odispls, ptrdiff_t *shift)
{
    long long lowest = 0;
    for (int i = 0; i < size; i++) {
        if (counts[i] < 0)
            return bad_count;
        if (displs[i] < lowest)
            lowest = displs[i];
    }
    for (int i = 0; i < size; i++)
        if (mul((size_t)counts[i], esize, &ocounts[i]) ||
            mul((size_t)((long long)displs[i] - lowest), esize, &odispls[i]))
            return too_big;
    size_t down;
    if (mul((size_t)-lowest, esize, &down) || down > PTRDIFF_MAX)
        return too_big;
    *shift = -(ptrdiff_t)down;
    return NULL;
}

const char *cmpi_args_alltoallv(struct cmpi_args *a, const void *sendbuf, const int *sendcounts,
                                const int *sdispls, MPI_Datatype sendtype, void *recvbuf,
                                const int *recvcounts, const int *rdispls,
                                MPI_Datatype recvtype, int size)
{
    args_init(a, CHORUS_MPI_ALLTOALLV);
    size_t rsize, ssize;
    const char *why = cmpi_bytes_type(recvtype, &rsize);
    if (!why && sendbuf != MPI_IN_PLACE)
        why = cmpi_bytes_type(sendtype, &ssize);
    if (why)
        return why;
    if (!recvcounts || !rdispls || (sendbuf != MPI_IN_PLACE && (!sendcounts || !sdispls)))
        return "NULL count or displacement array (MPI reports it)";
    a->v = malloc(4 * (size_t)size * sizeof *a->v);
    if (!a->v)
        return "out of memory for the count arrays";
    size_t *sc = a->v, *sd = sc + size, *rc = sd + size, *rd = rc + size;
    ptrdiff_t rshift, sshift;
    why = v_side(size, recvcounts, rdispls, rsize, rc, rd, &rshift);
    if (why) {
        cmpi_args_free(a);
        return why;
    }
    a->recvbuf = (char *)recvbuf + rshift;
    if (sendbuf == MPI_IN_PLACE) {
        /* Chorus' in place: the same buffer and layout on both sides */
        memcpy(sc, rc, (size_t)size * sizeof *sc);
        memcpy(sd, rd, (size_t)size * sizeof *sd);
        a->sendbuf = a->recvbuf;
    } else {
        why = v_side(size, sendcounts, sdispls, ssize, sc, sd, &sshift);
        if (why) {
            cmpi_args_free(a);
            return why;
        }
        a->sendbuf = (const char *)sendbuf + sshift;
    }
    a->count = (size_t)size;
    return NULL;
}

const char *cmpi_args_bcast(struct cmpi_args *a, void *buffer, int count, MPI_Datatype dt,
                            int root, int size)
{
    args_init(a, CHORUS_MPI_BCAST);
    size_t esize;
    if (count < 0)
        return bad_count;
    const char *why = cmpi_bytes_type(dt, &esize);
    if (why)
        return why;
    if (root < 0 || root >= size)
        return "root out of range (MPI reports it)";
    if (mul((size_t)count, esize, &a->count))
        return too_big;
    a->sendbuf = buffer;
    a->recvbuf = buffer;
    a->root = root;
    a->bytes = a->count;
    return sized(a);
}

void cmpi_args_barrier(struct cmpi_args *a) { args_init(a, CHORUS_MPI_BARRIER); }

chorus_result_t cmpi_args_run(const struct cmpi_args *a, chorus_comm_t comm,
                              chorus_request_t *req)
{
    size_t n = a->count;
    switch (a->kind) {
    case CHORUS_MPI_ALLREDUCE:
        return req ? chorus_iallreduce(a->sendbuf, a->recvbuf, n, a->type, a->op, comm, req)
                   : chorus_allreduce(a->sendbuf, a->recvbuf, n, a->type, a->op, comm);
    case CHORUS_MPI_ALLGATHER:
        return req ? chorus_iallgather(a->sendbuf, a->recvbuf, n, a->type, comm, req)
                   : chorus_allgather(a->sendbuf, a->recvbuf, n, a->type, comm);
    case CHORUS_MPI_ALLTOALL:
        return req ? chorus_ialltoall(a->sendbuf, a->recvbuf, n, a->type, comm, req)
                   : chorus_alltoall(a->sendbuf, a->recvbuf, n, a->type, comm);
    case CHORUS_MPI_ALLTOALLV: {
        const size_t *sc = a->v, *sd = sc + n, *rc = sd + n, *rd = rc + n;
        return req ? chorus_ialltoallv(a->sendbuf, sc, sd, a->recvbuf, rc, rd, a->type, comm, req)
                   : chorus_alltoallv(a->sendbuf, sc, sd, a->recvbuf, rc, rd, a->type, comm);
    }
    case CHORUS_MPI_REDUCE_SCATTER_BLOCK:
        return req ? chorus_ireduce_scatter(a->sendbuf, a->recvbuf, n, a->type, a->op, comm, req)
                   : chorus_reduce_scatter(a->sendbuf, a->recvbuf, n, a->type, a->op, comm);
    case CHORUS_MPI_BCAST:
        return req ? chorus_ibroadcast(a->sendbuf, a->recvbuf, n, a->type, a->root, comm, req)
                   : chorus_broadcast(a->sendbuf, a->recvbuf, n, a->type, a->root, comm);
    case CHORUS_MPI_REDUCE:
        return req ? chorus_ireduce(a->sendbuf, a->recvbuf, n, a->type, a->op, a->root, comm,
                                    req)
                   : chorus_reduce(a->sendbuf, a->recvbuf, n, a->type, a->op, a->root, comm);
    case CHORUS_MPI_BARRIER:
        return req ? chorus_ibarrier(comm, req) : chorus_barrier(comm);
    default:
        return CHORUS_INTERNAL_ERROR;
    }
}

void cmpi_args_finish(const struct cmpi_args *a)
{
    if (a->move_bytes)
        memmove(a->move_dst, a->move_src, a->move_bytes);
}
