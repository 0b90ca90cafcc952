/* algos/pairwise_plan.c - the point-to-point patterns: pairwise exchange
 * (alltoall, alltoallv), direct / full mesh (alltoall, alltoallv, allgather)
 * and the dissemination barrier.
 *
 * There is no direct allreduce: with every rank reducing every input in its
 * own order, floating-point results would differ between ranks in the last
 * bits, and Chorus promises bit-identical allreduce results everywhere.
 *
 * Pairwise: in step k every rank sends to r + k and receives from r - k, so
 * each step is a permutation and no link or rank is oversubscribed.
 * Direct: one step in which every rank exchanges with every other; fewest
 * steps, but n - 1 messages in flight per rank.
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

chorus_result_t direct_plan(struct plan *p, const struct plan_args *a)
{
    switch (a->kind) {
    case COLL_ALLTOALL:
    case COLL_ALLTOALLV: return exchange(p, a, 1);
    case COLL_ALLGATHER: return direct_allgather(p, a);
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
