/* shm_alltoall.c - alltoall and alltoallv on one node.
 *
 * Large blocks: single copy (each rank pulls its block from every peer's send
 * buffer). Otherwise, per round, every rank stages a piece of each outgoing
 * block in its workspace (one slot per destination) and every rank copies
 * its pieces out of the others' workspaces. In place, a round stages piece k
 * of every block before any piece k is overwritten, so no input is lost.
 * From CHORUS_ZCOPY_MIN, out of place, when every rank's send buffer is
 * Chorus memory: each rank copies its blocks straight from the peers' send
 * buffers (algos/shm_zcopy.c). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "shm_algos.h"

#include "error.h"

#include <stdint.h>
#include <string.h>

#include "copy.h"

/* Bytes of one destination slot in a workspace half. */
static size_t slot_bytes(const struct shm_comm *s)
{
    return s->chunk / (size_t)s->nranks / 64 * 64;
}

chorus_result_t shm_alltoall(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                             size_t count, chorus_datatype_t type)
{
    const int n = s->nranks, me = s->rank;
    const size_t block = count * chorus_type_size(type);
    const char *send = sendbuf;
    char *recv = recvbuf;
    const int in_place = sendbuf == recvbuf;
    if (block == 0)
        return CHORUS_SUCCESS;
    const int stream = !in_place && chorus_copy_streaming(block * (size_t)n);
    if (!in_place)
        chorus_copy(recv + (size_t)me * block, send + (size_t)me * block, block, stream);
    if (n == 1)
        return CHORUS_SUCCESS;
    {
        int done = 0;
        CHORUS_CHECK(shm_zcopy_alltoall(s, sendbuf, recvbuf, count, type, &done));
        if (done)
            return CHORUS_SUCCESS;
    }
    /* In place, a peer would read blocks we are overwriting: stage instead. */
    if (shm_single_copy(s, block, block * (size_t)n) && !in_place) {
        uint32_t st = shm_next_step(s);
        CHORUS_CHECK(shm_reserve(s, st));
        s->ctrl[me]->meta[st & 1].addr = (uint64_t)(uintptr_t)send;
        shm_post(s, &s->ctrl[me]->ready, st);
        for (int i = 1; i < n; i++) {
            int q = (me + i) % n;
            CHORUS_CHECK(shm_wait(s, q, &s->ctrl[q]->ready, st));
            CHORUS_CHECK(shm_cma_read(s, q, recv + (size_t)q * block,
                                      s->ctrl[q]->meta[st & 1].addr + (uint64_t)me * block,
                                      block));
        }
        return shm_finish_all(s, st);
    }
    size_t slot = slot_bytes(s);
    if (slot == 0)
        return CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: CHORUS_SHM_CHUNK (%zu) is too small for "
                          "%d ranks", s->label, s->chunk, n);
    for (size_t off = 0; off < block;) {
        size_t len = block - off < slot ? block - off : slot;
        uint32_t st = shm_next_step(s);
        CHORUS_CHECK(shm_reserve(s, st));
        char *mine = shm_buf(s, me, st);
        for (int q = 0; q < n; q++)
            if (q != me)
                memcpy(mine + (size_t)q * slot, send + (size_t)q * block + off, len);
        shm_post(s, &s->ctrl[me]->ready, st);
        for (int i = 1; i < n; i++) {
            int q = (me + i) % n;
            CHORUS_CHECK(shm_wait(s, q, &s->ctrl[q]->ready, st));
            chorus_copy(recv + (size_t)q * block + off, shm_buf(s, q, st) + (size_t)me * slot, len,
                        stream);
        }
        shm_mark_synced(s, st);
        shm_post(s, &s->ctrl[me]->done, st);
        off += len;
    }
    return CHORUS_SUCCESS;
}

/* The counts exchange of alltoallv: every rank publishes its send and
 * receive counts; every rank checks the whole matrix (so all reach the same
 * verdict) and learns the largest block, which sets the number of rounds. */
static chorus_result_t exchange_counts(struct shm_comm *s, const size_t *sendcounts,
                                       const size_t *recvcounts, size_t esize,
                                       size_t *max_block)
{
    const int n = s->nranks, me = s->rank;
    uint32_t st = shm_next_step(s);
    CHORUS_CHECK(shm_reserve(s, st));
    uint64_t *mine = (uint64_t *)shm_buf(s, me, st);
    for (int q = 0; q < n; q++) {
        mine[q] = sendcounts[q];
        mine[n + q] = recvcounts[q];
    }
    shm_post(s, &s->ctrl[me]->ready, st);
    CHORUS_CHECK(shm_wait_all(s, SHM_READY, st));
    shm_mark_synced(s, st);
    chorus_result_t res = CHORUS_SUCCESS;
    size_t mx = 0;
    for (int r = 0; r < n && res == CHORUS_SUCCESS; r++) {
        const uint64_t *row = (const uint64_t *)shm_buf(s, r, st);
        for (int q = 0; q < n; q++) {
            const uint64_t *col = (const uint64_t *)shm_buf(s, q, st);
            if (row[q] != col[n + r]) {
                res = CHORUS_ERR(CHORUS_INVALID_USAGE,
                                 "%s: alltoallv: rank %d sends %llu elements to rank %d, which "
                                 "expects %llu", s->label, r, (unsigned long long)row[q], q,
                                 (unsigned long long)col[n + r]);
                break;
            }
            if (row[q] > mx)
                mx = (size_t)row[q];
        }
    }
    shm_post(s, &s->ctrl[me]->done, st);
    *max_block = mx * esize;
    return res;
}

chorus_result_t shm_alltoallv(struct shm_comm *s, const void *sendbuf, const size_t *sendcounts,
                              const size_t *sdispls, void *recvbuf, const size_t *recvcounts,
                              const size_t *rdispls, chorus_datatype_t type)
{
    const int n = s->nranks, me = s->rank;
    const size_t esize = chorus_type_size(type);
    const char *send = sendbuf;
    char *recv = recvbuf;
    if (n > 1 && (size_t)n * 2 * sizeof(uint64_t) > s->chunk)
        return CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: CHORUS_SHM_CHUNK (%zu) is too small for "
                          "%d ranks", s->label, s->chunk, n);
    if (sendcounts[me] != recvcounts[me])
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "alltoallv: rank %d sends itself %zu elements "
                          "but expects %zu", me, sendcounts[me], recvcounts[me]);
    if (sendbuf != recvbuf)
        memcpy(recv + rdispls[me] * esize, send + sdispls[me] * esize, sendcounts[me] * esize);
    if (n == 1)
        return CHORUS_SUCCESS;
    size_t max_block;
    CHORUS_CHECK(exchange_counts(s, sendcounts, recvcounts, esize, &max_block));
    size_t slot = slot_bytes(s);
    for (size_t off = 0; off < max_block;) {
        uint32_t st = shm_next_step(s);
        CHORUS_CHECK(shm_reserve(s, st));
        char *mine = shm_buf(s, me, st);
        for (int q = 0; q < n; q++) {
            size_t bytes = sendcounts[q] * esize;
            if (q != me && off < bytes)
                memcpy(mine + (size_t)q * slot, send + sdispls[q] * esize + off,
                       bytes - off < slot ? bytes - off : slot);
        }
        shm_post(s, &s->ctrl[me]->ready, st);
        for (int i = 1; i < n; i++) {
            int q = (me + i) % n;
            size_t bytes = recvcounts[q] * esize;
            CHORUS_CHECK(shm_wait(s, q, &s->ctrl[q]->ready, st));
            if (off < bytes)
                memcpy(recv + rdispls[q] * esize + off, shm_buf(s, q, st) + (size_t)me * slot,
                       bytes - off < slot ? bytes - off : slot);
        }
        shm_mark_synced(s, st);
        shm_post(s, &s->ctrl[me]->done, st);
        off += slot;
    }
    return CHORUS_SUCCESS;
}
