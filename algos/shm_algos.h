/* shm_algos.h - collectives between the ranks of one node, written directly
 * against the shared-memory transport (the fast path of a single node).
 *
 * Each collective runs as numbered steps; in step s a rank writes its
 * workspace half s & 1, posts "ready", reads what it needs from the others
 * and posts "done". Large messages run as many steps ("rounds") of at most
 * one workspace half each, so the ranks form a pipeline. Every rank computes
 * the same number of steps from the arguments, so the counters stay in step.
 * Arguments are checked by the caller (src/coll_api.c). */
#ifndef CHORUS_SHM_ALGOS_H
#define CHORUS_SHM_ALGOS_H

#include "chorus.h"
#include "shm/shm.h"

chorus_result_t shm_allreduce(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                              size_t count, chorus_datatype_t type, chorus_op_t op);
chorus_result_t shm_reduce_scatter(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                                   size_t recvcount, chorus_datatype_t type, chorus_op_t op);
chorus_result_t shm_reduce(struct shm_comm *s, const void *sendbuf, void *recvbuf, size_t count,
                           chorus_datatype_t type, chorus_op_t op, int root);
chorus_result_t shm_allgather(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                              size_t sendcount, chorus_datatype_t type);
chorus_result_t shm_broadcast(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                              size_t count, chorus_datatype_t type, int root);
chorus_result_t shm_barrier(struct shm_comm *s);
chorus_result_t shm_alltoall(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                             size_t count, chorus_datatype_t type);
chorus_result_t shm_alltoallv(struct shm_comm *s, const void *sendbuf, const size_t *sendcounts,
                              const size_t *sdispls, void *recvbuf, const size_t *recvcounts,
                              const size_t *rdispls, chorus_datatype_t type);

/* Zero copy between Chorus allocations (algos/shm_zcopy.c): from
 * CHORUS_ZCOPY_MIN bytes, if every rank's buffers qualify (see
 * shm_zcopy_begin), run the collective reading peers' buffers directly and
 * set *done; else leave *done 0 for the caller's ordinary algorithm. */
chorus_result_t shm_zcopy_allreduce(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                                    size_t count, chorus_datatype_t type, chorus_op_t op,
                                    int *done);
chorus_result_t shm_zcopy_reduce_scatter(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                                         size_t recvcount, chorus_datatype_t type,
                                         chorus_op_t op, int *done);
chorus_result_t shm_zcopy_allgather(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                                    size_t sendcount, chorus_datatype_t type, int *done);
chorus_result_t shm_zcopy_alltoall(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                                   size_t count, chorus_datatype_t type, int *done);

/* Slice q of n of a piece of pe elements: boundaries on 64-byte multiples so
 * neighbouring slices do not share cache lines. */
static inline void shm_slice_of(size_t pe, size_t esize, int q, int n, size_t *lo, size_t *len)
{
    size_t unit = 64 / esize;
    size_t units = (pe + unit - 1) / unit;
    size_t a = units * (size_t)q / (size_t)n * unit;
    size_t b = units * (size_t)(q + 1) / (size_t)n * unit;
    if (a > pe)
        a = pe;
    if (b > pe)
        b = pe;
    *lo = a;
    *len = b - a;
}

/* Point to point over the eager slots (single copy for large messages). */
chorus_result_t shm_send(struct shm_comm *s, const void *buf, size_t bytes, int peer);
chorus_result_t shm_recv(struct shm_comm *s, void *buf, size_t bytes, int peer);
chorus_result_t shm_sendrecv(struct shm_comm *s, const void *sendbuf, size_t sendbytes, int dest,
                             void *recvbuf, size_t recvbytes, int source);

#endif
