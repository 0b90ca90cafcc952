/* shm_zcopy.c - allreduce, allgather, alltoall and reduce-scatter on one
 * node when every rank's buffers come from chorus_mem_alloc: each rank reads
 * its peers' buffers where they are (zero copy), instead of staging them
 * through the shared workspaces (two copies) or process_vm_readv (a kernel
 * copy that pins pages and cannot stream its stores).
 *
 * Each starts with the agreement step (shm_zcopy_begin), which all ranks
 * take whatever their buffers, and ends only when every peer is done
 * reading this rank's buffers: the caller may reuse them on return. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "shm_algos.h"

#include "error.h"

#include "copy.h"
#include "reduce.h"

/* Every rank sees the same sizes, so every rank takes the agreement step
 * or none does. */
static int wanted(const struct shm_comm *s, size_t bytes)
{
    return s->nranks > 1 && s->zcopy_min > 0 && bytes >= s->zcopy_min;
}

/* In pieces of CHORUS_SHM_CHUNK bytes: rank r reduces slice r of the piece
 * from all n send buffers straight into its receive buffer and posts
 * "ready2"; then it copies the other slices of the piece from their owners'
 * receive buffers as each owner posts. Piece by piece, a reduced slice is
 * read while it is still in its owner's cache, not from memory. In place is
 * safe: a rank writes only its own slice while the others reduce theirs,
 * and overwrites slice q only after q has posted, i.e. finished reading it. */
chorus_result_t shm_zcopy_allreduce(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                                    size_t count, chorus_datatype_t type, chorus_op_t op,
                                    int *done)
{
    const int n = s->nranks, me = s->rank;
    const size_t esize = chorus_type_size(type), bytes = count * esize;
    char *recv = recvbuf;
    *done = 0;
    if (!wanted(s, bytes))
        return CHORUS_SUCCESS;
    struct shm_zcopy_call call;
    int go;
    CHORUS_CHECK(shm_zcopy_begin(s, sendbuf, bytes, recvbuf, bytes,
                                 SHM_ZC_NEED_SEND | SHM_ZC_NEED_RECV, &call, &go));
    if (!go)
        return CHORUS_SUCCESS;
    *done = 1;
    /* the publications are read; no workspace was used */
    shm_post(s, &s->ctrl[me]->done, call.step);
    const int stream = sendbuf != recvbuf && chorus_copy_streaming(bytes);
    const size_t piece_max = s->chunk / esize > 0 ? s->chunk / esize : 1;
    for (size_t off = 0; off < count;) {
        size_t pe = count - off < piece_max ? count - off : piece_max;
        uint32_t st = shm_next_step(s);
        size_t lo, len;
        shm_slice_of(pe, esize, me, n, &lo, &len);
        for (int q = 0; q < n; q++)
            call.srcs[q] = call.send[q] + (off + lo) * esize;
        if (len)
            chorus_reduce_many(type, op, recv + (off + lo) * esize, call.srcs, n, len, n);
        shm_post(s, &s->ctrl[me]->ready2, st);
        for (int i = 1; i < n; i++) {
            int q = (me + i) % n;
            shm_slice_of(pe, esize, q, n, &lo, &len);
            CHORUS_CHECK(shm_wait(s, q, &s->ctrl[q]->ready2, st));
            if (len)
                chorus_copy(recv + (off + lo) * esize, call.recv[q] + (off + lo) * esize,
                            len * esize, stream);
        }
        off += pe;
    }
    /* nobody returns while a peer still copies from its receive buffer */
    return shm_finish_all(s, shm_next_step(s));
}

/* Rank r reduces block r of every send buffer into its receive buffer. In
 * place (recvbuf is block r of sendbuf) the others read other blocks. */
chorus_result_t shm_zcopy_reduce_scatter(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                                         size_t recvcount, chorus_datatype_t type,
                                         chorus_op_t op, int *done)
{
    const int n = s->nranks, me = s->rank;
    const size_t block = recvcount * chorus_type_size(type);
    *done = 0;
    if (!wanted(s, block * (size_t)n))
        return CHORUS_SUCCESS;
    struct shm_zcopy_call call;
    int go;
    CHORUS_CHECK(shm_zcopy_begin(s, sendbuf, block * (size_t)n, NULL, 0, SHM_ZC_NEED_SEND,
                                 &call, &go));
    if (!go)
        return CHORUS_SUCCESS;
    *done = 1;
    for (int q = 0; q < n; q++)
        call.srcs[q] = call.send[q] + (size_t)me * block;
    chorus_reduce_many(type, op, recvbuf, call.srcs, n, recvcount, n);
    return shm_finish_all(s, call.step);
}

/* Copies block q of recv from rank q's published send buffer at offset
 * `from` (each peer's), for every peer q, once every rank agreed to zero
 * copy on `mine` (len bytes; NULL declines). The caller has copied this
 * rank's own block already. */
static chorus_result_t copy_peer_blocks(struct shm_comm *s, const void *mine, size_t len,
                                        char *recv, size_t block, size_t from, size_t total,
                                        int *done)
{
    const int n = s->nranks, me = s->rank;
    *done = 0;
    if (!wanted(s, total))
        return CHORUS_SUCCESS;
    struct shm_zcopy_call call;
    int go;
    CHORUS_CHECK(shm_zcopy_begin(s, mine, len, NULL, 0, SHM_ZC_NEED_SEND, &call, &go));
    if (!go)
        return CHORUS_SUCCESS;
    *done = 1;
    const int stream = chorus_copy_streaming(total);
    for (int i = 1; i < n; i++) {
        int q = (me + i) % n;
        chorus_copy(recv + (size_t)q * block, call.send[q] + from, block, stream);
    }
    return shm_finish_all(s, call.step);
}

/* Each rank copies every peer's block from the peer's send buffer. */
chorus_result_t shm_zcopy_allgather(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                                    size_t sendcount, chorus_datatype_t type, int *done)
{
    const size_t block = sendcount * chorus_type_size(type);
    return copy_peer_blocks(s, sendbuf, block, recvbuf, block, 0, block * (size_t)s->nranks,
                            done);
}

/* Each rank copies block r of every peer's send buffer. In place a peer
 * would read blocks this rank overwrites, so such a rank declines (and then
 * every rank takes the ordinary path). */
chorus_result_t shm_zcopy_alltoall(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                                   size_t count, chorus_datatype_t type, int *done)
{
    const size_t block = count * chorus_type_size(type), total = block * (size_t)s->nranks;
    return copy_peer_blocks(s, sendbuf == recvbuf ? NULL : sendbuf, total, recvbuf, block,
                            (size_t)s->rank * block, total, done);
}
