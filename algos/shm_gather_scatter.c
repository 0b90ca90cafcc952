/* shm_gather_scatter.c - allgather, broadcast and barrier on one node.
 *
 * Allgather: large blocks move with one copy (the owner publishes its buffer
 * address, readers pull with process_vm_readv, then everyone waits until all
 * reads are done, as the owner's buffer must stay valid); smaller ones, and
 * whole buffers beyond CHORUS_CMA_MAX, go through the owner's workspace in
 * rounds (two copies, pipelined, streaming stores). From CHORUS_ZCOPY_MIN,
 * when every rank's send buffer is Chorus memory, readers copy straight from
 * it (algos/shm_zcopy.c).
 * Broadcast: single copy shared with the root up to half CHORUS_CMA_MAX
 * unless ranks outnumber cores, else through the root's workspace (see
 * below). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "shm_algos.h"

#include "error.h"

#include <string.h>

#include "copy.h"

chorus_result_t shm_allgather(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                              size_t sendcount, chorus_datatype_t type)
{
    const int n = s->nranks, me = s->rank;
    const size_t block = sendcount * chorus_type_size(type);
    char *recv = recvbuf;
    const char *mine_src = sendbuf;
    if (block == 0)
        return CHORUS_SUCCESS;
    const int stream = mine_src != recv + (size_t)me * block &&
                       chorus_copy_streaming(block * (size_t)n);
    if (mine_src != recv + (size_t)me * block)
        chorus_copy(recv + (size_t)me * block, mine_src, block, stream);
    if (n == 1)
        return CHORUS_SUCCESS;
    {
        int done = 0;
        CHORUS_CHECK(shm_zcopy_allgather(s, sendbuf, recvbuf, sendcount, type, &done));
        if (done)
            return CHORUS_SUCCESS;
    }
    if (shm_single_copy(s, block, block * (size_t)n)) {
        uint32_t st = shm_next_step(s);
        CHORUS_CHECK(shm_reserve(s, st));
        s->ctrl[me]->meta[st & 1].addr = (uint64_t)(uintptr_t)mine_src;
        shm_post(s, &s->ctrl[me]->ready, st);
        for (int i = 1; i < n; i++) {
            int q = (me + i) % n;
            CHORUS_CHECK(shm_wait(s, q, &s->ctrl[q]->ready, st));
            CHORUS_CHECK(shm_cma_read(s, q, recv + (size_t)q * block,
                                      s->ctrl[q]->meta[st & 1].addr, block));
        }
        return shm_finish_all(s, st);
    }
    for (size_t off = 0; off < block;) {
        size_t len = block - off < s->chunk ? block - off : s->chunk;
        uint32_t st = shm_next_step(s);
        CHORUS_CHECK(shm_reserve(s, st));
        memcpy(shm_buf(s, me, st), mine_src + off, len);
        shm_post(s, &s->ctrl[me]->ready, st);
        for (int i = 1; i < n; i++) {
            int q = (me + i) % n;
            CHORUS_CHECK(shm_wait(s, q, &s->ctrl[q]->ready, st));
            chorus_copy(recv + (size_t)q * block + off, shm_buf(s, q, st), len, stream);
        }
        shm_mark_synced(s, st);
        shm_post(s, &s->ctrl[me]->done, st);
        off += len;
    }
    return CHORUS_SUCCESS;
}

/* Broadcast by single copy, the root's core sharing the work: each reader
 * reads the head of its buffer from the root's while the root writes the
 * tail into it (process_vm_writev). In place the root takes 1/n of every
 * reader's bytes, so its core and theirs copy about alike; out of place its
 * own copy is its share. Only the root knows which (the others are always
 * in place), so it publishes its share with its address. Everyone waits
 * for everyone (shm_finish_all): the root's buffer must stay valid until
 * read, and a reader's must not be returned before the root has written it. */
static chorus_result_t broadcast_single_copy(struct shm_comm *s, const char *send, char *recv,
                                             size_t bytes, int root, int root_copies, int stream)
{
    const int n = s->nranks, me = s->rank;
    uint32_t st = shm_next_step(s);
    CHORUS_CHECK(shm_reserve(s, st));
    struct shm_meta *mine = &s->ctrl[me]->meta[st & 1];
    mine->addr = (uint64_t)(uintptr_t)(me == root ? send : recv);
    if (me == root)
        mine->len = root_copies ? 0 : bytes / (size_t)n / 64 * 64;
    shm_post(s, &s->ctrl[me]->ready, st);
    if (me == root) {
        const size_t share = mine->len;
        if (root_copies)
            chorus_copy(recv, send, bytes, stream);
        for (int i = 1; share > 0 && i < n; i++) {
            int q = (me + i) % n;
            CHORUS_CHECK(shm_wait(s, q, &s->ctrl[q]->ready, st));
            CHORUS_CHECK(shm_cma_copy(s, q, (char *)send + (bytes - share),
                                      s->ctrl[q]->meta[st & 1].addr + (bytes - share), share,
                                      1));
        }
    } else {
        CHORUS_CHECK(shm_wait(s, root, &s->ctrl[root]->ready, st));
        const struct shm_meta *from = &s->ctrl[root]->meta[st & 1];
        CHORUS_CHECK(shm_cma_read(s, root, recv, from->addr, bytes - from->len));
    }
    return shm_finish_all(s, st);
}

chorus_result_t shm_broadcast(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                              size_t count, chorus_datatype_t type, int root)
{
    const int me = s->rank;
    const size_t bytes = count * chorus_type_size(type);
    char *recv = recvbuf;
    const char *send = sendbuf;
    if (bytes == 0)
        return CHORUS_SUCCESS;
    const int stream = chorus_copy_streaming(bytes);
    const int root_copies = me == root && send != recv;
    if (s->nranks == 1) {
        if (root_copies)
            chorus_copy(recv, send, bytes, stream);
        return CHORUS_SUCCESS;
    }
    /* Single copy with the root writing a share: on 2 ranks here 1.3-2.4x
     * faster than staged from 32 KiB to 16 MiB, in and out of place; from 32
     * MiB out of place up to 1.4x slower (past the caches the root's own
     * copy and the reader's read both go to memory). So the whole buffer it
     * is held against, as allgather's, counts the root's pass and the
     * readers' (CHORUS_CMA_MAX 32 MiB: single copy up to 16 MiB). With more
     * ranks than cores it gained nothing (4 ranks on 2 cores: level to 10%
     * slower), as each write waits for a reader to be scheduled; staged
     * rounds decouple them. */
    if (!s->oversubscribed && shm_single_copy(s, bytes, 2 * bytes))
        return broadcast_single_copy(s, send, recv, bytes, root, root_copies, stream);
    /* Staged: the root's core shares the work (it copies round k + 1 in
     * while the others copy round k out), and the readers read from cache
     * what the root has just written instead of from its buffer in memory.
     * (Cutting calls below a few chunks into smaller rounds, to overlap
     * copying in and out there too, gained nothing on 2 ranks at 8 KiB-2
     * MiB: the flags cost as much as the overlap gains.) */
    for (size_t off = 0; off < bytes;) {
        size_t len = bytes - off < s->chunk ? bytes - off : s->chunk;
        uint32_t st = shm_next_step(s);
        if (me == root) {
            CHORUS_CHECK(shm_reserve(s, st));
            memcpy(shm_buf(s, me, st), send + off, len);
            shm_post(s, &s->ctrl[me]->ready, st);
            /* out of place, the root's own copy reads the round just written
             * (in cache), not its send buffer in memory a second time */
            if (root_copies)
                chorus_copy(recv + off, shm_buf(s, me, st), len, stream);
        } else {
            CHORUS_CHECK(shm_wait(s, root, &s->ctrl[root]->ready, st));
            chorus_copy(recv + off, shm_buf(s, root, st), len, stream);
        }
        shm_post(s, &s->ctrl[me]->done, st);
        off += len;
    }
    return CHORUS_SUCCESS;
}

chorus_result_t shm_barrier(struct shm_comm *s)
{
    if (s->nranks == 1)
        return CHORUS_SUCCESS;
    uint32_t st = shm_next_step(s);
    shm_post(s, &s->ctrl[s->rank]->ready, st);
    CHORUS_CHECK(shm_wait_all(s, SHM_READY, st));
    shm_mark_synced(s, st);
    shm_post(s, &s->ctrl[s->rank]->done, st);
    return CHORUS_SUCCESS;
}
