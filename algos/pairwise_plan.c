/* algos/pairwise_plan.c - the point-to-point patterns: pairwise exchange
 * (alltoall, alltoallv), direct / full mesh (alltoall, alltoallv, allgather,
 * reduce_scatter, allreduce, broadcast) and the dissemination barrier.
 *
 * Direct reduce_scatter keeps every link of a full mesh busy: each block is
 * cut into n - 1 chunks, and in step s every rank receives, from each peer
 * at distance d, chunk (d - 1 + s) mod (n - 1) of its block and reduces it
 * in place (up to DIRECT_CHUNKED_MAX ranks; beyond, one chunk per step). In every step the n - 1 incoming chunks are distinct (no two
 * reductions write one range) and over the n - 1 steps each peer delivers
 * every chunk once: n - 1 steps, each moving one block per rank spread over
 * all its links. Direct allreduce is that reduce-scatter of the vector's n
 * blocks followed by the direct allgather of the reduced blocks; every
 * element is reduced on one rank only, so the results stay bit-identical
 * everywhere (a rank reducing every input itself would not).
 *
 * Pairwise: in step k every rank sends to r + k and receives from r - k, so
 * each step is a permutation and no link or rank is oversubscribed.
 * Direct: one step in which every rank exchanges with every other; fewest
 * steps, but n - 1 messages in flight per rank.
 *
 * Direct broadcast: a pipelined scatter from the root and allgather among
 * the others, each slice also returned to the root (direct_broadcast).
 *
 * Scratch: alltoall/alltoallv in place stage every outgoing block first
 * (sum of sendcounts * esize), out of place none; allgather none; barrier
 * none. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "plan.h"

#include <stdlib.h>

#include "error.h"

/* ---- alltoall and alltoallv share one description of the blocks ---------- */

static uint64_t send_bytes(const struct plan_args *a, int q)
{
    return (uint64_t)(a->kind == COLL_ALLTOALLV ? a->sendcounts[q] : a->count) * a->esize;
}
static uint64_t send_off(const struct plan_args *a, int q)
{
    return (uint64_t)(a->kind == COLL_ALLTOALLV ? a->sdispls[q] : (size_t)q * a->count) *
           a->esize;
}
static uint64_t recv_bytes(const struct plan_args *a, int q)
{
    return (uint64_t)(a->kind == COLL_ALLTOALLV ? a->recvcounts[q] : a->count) * a->esize;
}
static uint64_t recv_off(const struct plan_args *a, int q)
{
    return (uint64_t)(a->kind == COLL_ALLTOALLV ? a->rdispls[q] : (size_t)q * a->count) *
           a->esize;
}

/* Where each outgoing block is read from. In place, receiving block q
 * would overwrite what we still have to send to q (or to another peer,
 * alltoallv), so a first step stages every outgoing block in scratch. */
static chorus_result_t stage_sources(struct plan *p, const struct plan_args *a, uint64_t *off,
                                     plan_buf_t *src)
{
    uint64_t pos = 0;
    *src = a->in_place ? PLAN_SCRATCH : PLAN_SENDBUF;
    CHORUS_CHECK(plan_step(p)); /* stays empty, hence dropped, out of place */
    for (int q = 0; q < a->nranks; q++) {
        off[q] = send_off(a, q);
        if (!a->in_place || q == a->rank || send_bytes(a, q) == 0)
            continue;
        CHORUS_CHECK(plan_copy(p, PLAN_SENDBUF, off[q], PLAN_SCRATCH, pos, send_bytes(a, q)));
        off[q] = pos;
        pos += send_bytes(a, q);
    }
    p->scratch_bytes = (size_t)pos;
    return CHORUS_SUCCESS;
}

/* Our own block, copied in a step whose other ops write only other blocks. */
static chorus_result_t copy_own(struct plan *p, const struct plan_args *a)
{
    uint64_t b = send_bytes(a, a->rank);
    if (a->in_place || b == 0)
        return CHORUS_SUCCESS;
    return plan_copy(p, PLAN_SENDBUF, send_off(a, a->rank), PLAN_RECVBUF, recv_off(a, a->rank), b);
}

/* direct: every send and receive in one step; pairwise: one peer pair per step */
static chorus_result_t exchange(struct plan *p, const struct plan_args *a, int direct)
{
    const int n = a->nranks, r = a->rank;
    uint64_t *off = malloc((size_t)n * sizeof *off);
    if (!off)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "alltoall plan: out of memory for %d ranks", n);
    plan_buf_t src;
    chorus_result_t res = stage_sources(p, a, off, &src);
    if (res == CHORUS_SUCCESS) /* our block goes with the first exchange step */
        res = plan_step(p);
    if (res == CHORUS_SUCCESS)
        res = copy_own(p, a);
    for (int k = 1; k < n && res == CHORUS_SUCCESS; k++) {
        const int to = (r + k) % n, from = (r - k + n) % n;
        if (!direct && k > 1)
            res = plan_step(p);
        if (res == CHORUS_SUCCESS && send_bytes(a, to))
            res = plan_send(p, to, src, off[to], send_bytes(a, to));
        if (res == CHORUS_SUCCESS && recv_bytes(a, from))
            res = plan_recv(p, from, PLAN_RECVBUF, recv_off(a, from), recv_bytes(a, from));
    }
    free(off);
    return res;
}

chorus_result_t pairwise_plan(struct plan *p, const struct plan_args *a)
{
    if (a->kind == COLL_ALLTOALL || a->kind == COLL_ALLTOALLV)
        return exchange(p, a, 0);
    return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "pairwise: %s not implemented", coll_name(a->kind));
}

/* ---- direct ------------------------------------------------------------------- */

static chorus_result_t direct_allgather(struct plan *p, const struct plan_args *a)
{
    const uint64_t blk = (uint64_t)a->count * a->esize;
    if (blk == 0)
        return CHORUS_SUCCESS;
    CHORUS_CHECK(plan_step(p));
    if (!a->in_place)
        CHORUS_CHECK(plan_copy(p, PLAN_SENDBUF, 0, PLAN_RECVBUF, (uint64_t)a->rank * blk, blk));
    for (int q = 0; q < a->nranks; q++) {
        if (q == a->rank)
            continue;
        CHORUS_CHECK(plan_send(p, q, PLAN_SENDBUF, 0, blk));
        CHORUS_CHECK(plan_recv(p, q, PLAN_RECVBUF, (uint64_t)q * blk, blk));
    }
    return CHORUS_SUCCESS;
}

/* Block q of the vector: rank blocks (reduce_scatter: count each) or the
 * allreduce vector cut into n nearly equal blocks; in elements. */
static void block_of(const struct plan_args *a, int q, uint64_t *off, uint64_t *len)
{
    const uint64_t n = (uint64_t)a->nranks;
    if (a->kind == COLL_REDUCE_SCATTER) {
        *off = (uint64_t)q * a->count;
        *len = a->count;
        return;
    }
    plan_even_part(a->count, n, (uint64_t)q, off, len);
}

/* Chunk c of len units cut into k nearly equal chunks (plan.h). */
void plan_even_part(uint64_t len, uint64_t k, uint64_t c, uint64_t *off, uint64_t *clen)
{
    const uint64_t base = len / k, extra = len % k;
    *off = c * base + (c < extra ? c : extra);
    *clen = base + (c < extra);
}

static void chunk_of(uint64_t len, int k, int c, uint64_t *off, uint64_t *clen)
{
    plan_even_part(len, (uint64_t)k, (uint64_t)c, off, clen);
}

/* The reduce-scatter part; our reduced block lands in recvbuf at dst_base
 * (elements). Chunk c comes in step s from the peer at distance
 * d = (c - s) mod (n - 1) + 1: distinct chunks in a step, every chunk from
 * every peer once. Beyond DIRECT_CHUNKED_MAX ranks a block is one chunk
 * (one message per step, as pairwise): n - 1 messages in flight per step
 * over n - 1 steps would be n^2 messages per rank, and levels that large
 * are switches, where one port carries them all anyway. */
static chorus_result_t direct_reduce_blocks(struct plan *p, const struct plan_args *a,
                                            uint64_t dst_base)
{
    const int n = a->nranks, r = a->rank, k = n - 1;
    const int nchunks = n <= DIRECT_CHUNKED_MAX ? k : 1;
    const uint64_t es = a->esize;
    uint64_t mo, ml;
    block_of(a, r, &mo, &ml);
    for (int s = 0; s < k; s++) {
        CHORUS_CHECK(plan_step(p));
        for (int c = 0; c < nchunks; c++) {
            const int d = ((c - s) % k + k) % k + 1;
            const int to = (r + d) % n, from = (r - d + n) % n;
            uint64_t bo, bl, co, cl;
            block_of(a, to, &bo, &bl);
            chunk_of(bl, nchunks, c, &co, &cl);
            if (cl)
                CHORUS_CHECK(plan_send(p, to, PLAN_SENDBUF, (bo + co) * es, cl * es));
            chunk_of(ml, nchunks, c, &co, &cl);
            if (!cl)
                continue;
            /* every chunk arrives in every step: step 0 starts from our input */
            plan_buf_t src = s == 0 ? PLAN_SENDBUF : PLAN_RECVBUF;
            uint64_t src_off = s == 0 ? (mo + co) * es : (dst_base + co) * es;
            CHORUS_CHECK(plan_recv_reduce(p, from, src, src_off, PLAN_RECVBUF,
                                          (dst_base + co) * es, cl * es));
        }
    }
    return CHORUS_SUCCESS;
}

static chorus_result_t direct_reduce_scatter(struct plan *p, const struct plan_args *a)
{
    const uint64_t blk = (uint64_t)a->count * a->esize;
    if (blk == 0)
        return CHORUS_SUCCESS;
    if (a->nranks == 1)
        return a->in_place ? CHORUS_SUCCESS : plan_copy(p, PLAN_SENDBUF, 0, PLAN_RECVBUF, 0, blk);
    return direct_reduce_blocks(p, a, 0);
}

static chorus_result_t direct_allreduce(struct plan *p, const struct plan_args *a)
{
    const uint64_t es = a->esize, bytes = (uint64_t)a->count * es;
    const int n = a->nranks, r = a->rank;
    if (bytes == 0)
        return CHORUS_SUCCESS;
    if (n == 1)
        return a->in_place ? CHORUS_SUCCESS : plan_copy(p, PLAN_SENDBUF, 0, PLAN_RECVBUF, 0, bytes);
    uint64_t mo, ml;
    block_of(a, r, &mo, &ml);
    CHORUS_CHECK(direct_reduce_blocks(p, a, mo));
    /* the allgather of the reduced blocks: all at once, or beyond
     * DIRECT_CHUNKED_MAX ranks one peer pair per step (n - 1 messages per
     * rank arriving at staggered times are slow to simulate and buy nothing
     * on the switch such a level is). Empty blocks of a vector shorter than
     * n elements carry no message on either side. */
    const int all_at_once = n <= DIRECT_CHUNKED_MAX;
    CHORUS_CHECK(plan_step(p));
    for (int d = 1; d < n; d++) {
        const int to = (r + d) % n, from = (r - d + n) % n;
        uint64_t qo, ql;
        block_of(a, from, &qo, &ql);
        if (!all_at_once && d > 1)
            CHORUS_CHECK(plan_step(p));
        if (ml)
            CHORUS_CHECK(plan_send(p, to, PLAN_RECVBUF, mo * es, ml * es));
        if (ql)
            CHORUS_CHECK(plan_recv(p, from, PLAN_RECVBUF, qo * es, ql * es));
    }
    return CHORUS_SUCCESS;
}

int direct_bcast_pieces(int nranks, uint64_t bytes)
{
    if (nranks < 2)
        return 1;
    uint64_t pieces = bytes / DIRECT_BCAST_MIN_PIECE, cap = DIRECT_OPS_BUDGET / (2 * (uint64_t)nranks);
    if (pieces > cap)
        pieces = cap;
    return pieces < 1 ? 1 : (int)pieces;
}

/* Broadcast as a pipelined scatter and allgather among the n - 1 other
 * ranks (owners): piece i is cut into n - 1 slices; in step i the root
 * sends slice k to owner k, and in step i + 1 owner k sends it to every
 * other owner and back to the root (whose receive buffer so fills without
 * a copy, and whose own port carries each piece once, not twice as a
 * scatter-allgather over all ranks would make it). Every port moves one
 * piece per step; n - 1 messages each way. Slices as chunk_of (bytes). */
static chorus_result_t direct_broadcast(struct plan *p, const struct plan_args *a)
{
    const int n = a->nranks, m = n - 1;
    const int v = (a->rank - a->root + n) % n; /* 0: the root; owner v - 1 */
    const uint64_t bytes = (uint64_t)a->count * a->esize;
    if (bytes == 0)
        return CHORUS_SUCCESS;
    if (n == 1)
        return a->in_place ? CHORUS_SUCCESS
                           : plan_copy(p, PLAN_SENDBUF, 0, PLAN_RECVBUF, 0, bytes);
    const int pieces = direct_bcast_pieces(n, bytes);
    const plan_buf_t src = a->in_place ? PLAN_RECVBUF : PLAN_SENDBUF;
#define OWNER(k) ((a->root + 1 + (k)) % n)
    for (int step = 0; step <= pieces; step++) {
        CHORUS_CHECK(plan_step(p));
        uint64_t po, pl;
        if (step < pieces) { /* scatter of piece `step` */
            chunk_of(bytes, pieces, step, &po, &pl);
            if (v == 0) {
                for (int k = 0; k < m; k++) {
                    uint64_t so, sl;
                    chunk_of(pl, m, k, &so, &sl);
                    if (sl)
                        CHORUS_CHECK(plan_send(p, OWNER(k), src, po + so, sl));
                }
            } else {
                uint64_t so, sl;
                chunk_of(pl, m, v - 1, &so, &sl);
                if (sl)
                    CHORUS_CHECK(plan_recv(p, a->root, PLAN_RECVBUF, po + so, sl));
            }
        }
        if (step == 0)
            continue;
        chunk_of(bytes, pieces, step - 1, &po, &pl); /* allgather of the piece before */
        for (int k = 0; k < m; k++) {
            uint64_t so, sl;
            chunk_of(pl, m, k, &so, &sl);
            if (!sl)
                continue;
            if (v - 1 == k) { /* ours: to every other owner and the root */
                for (int j = 0; j < m; j++)
                    if (j != k)
                        CHORUS_CHECK(plan_send(p, OWNER(j), PLAN_RECVBUF, po + so, sl));
                CHORUS_CHECK(plan_send(p, a->root, PLAN_RECVBUF, po + so, sl));
            } else {
                CHORUS_CHECK(plan_recv(p, OWNER(k), PLAN_RECVBUF, po + so, sl));
            }
        }
    }
#undef OWNER
    return CHORUS_SUCCESS;
}

chorus_result_t direct_plan(struct plan *p, const struct plan_args *a)
{
    switch (a->kind) {
    case COLL_BROADCAST: return direct_broadcast(p, a);
    case COLL_ALLTOALL:
    case COLL_ALLTOALLV: return exchange(p, a, 1);
    case COLL_ALLGATHER: return direct_allgather(p, a);
    case COLL_REDUCE_SCATTER: return direct_reduce_scatter(p, a);
    case COLL_ALLREDUCE: return direct_allreduce(p, a);
    default: break;
    }
    return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "direct: %s not implemented", coll_name(a->kind));
}

/* ---- dissemination barrier ----------------------------------------------------- */

/* Round k: a 0-byte message to r + 2^k, one from r - 2^k. After
 * ceil(log2 n) rounds every rank has heard, directly or through others,
 * from every rank that entered the barrier. */
chorus_result_t dissemination_plan(struct plan *p, const struct plan_args *a)
{
    const int n = a->nranks, r = a->rank;
    if (a->kind != COLL_BARRIER)
        return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "dissemination: %s not implemented",
                          coll_name(a->kind));
    for (int d = 1; d < n; d *= 2) {
        CHORUS_CHECK(plan_step(p));
        CHORUS_CHECK(plan_send(p, (r + d) % n, PLAN_SENDBUF, 0, 0));
        CHORUS_CHECK(plan_recv(p, (r - d + n) % n, PLAN_RECVBUF, 0, 0));
    }
    return CHORUS_SUCCESS;
}
