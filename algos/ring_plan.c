/* algos/ring_plan.c - ring algorithms: allreduce, allgather, reduce_scatter,
 * broadcast and reduce.
 *
 * Every rank talks only to its neighbours (rank + 1 and rank - 1), so each
 * step moves one block per link and bandwidth is optimal; latency grows
 * with n (n - 1 steps per phase). The vector is cut into n blocks (the
 * remainder spread over the first blocks); blocks of 0 bytes (count < n)
 * are skipped on both sides of a link, which agree on every block's size.
 *
 * Scratch: allreduce, allgather, broadcast none; reduce_scatter two blocks
 * (2 * count * esize); reduce two blocks of ceil(count / n) elements on
 * non-root ranks (they have no receive buffer to accumulate in). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "plan.h"

#include "error.h"

/* Broadcast segments are at most this big, so long messages pipeline. */
#define RING_BCAST_SEGMENT (1u << 20)

struct ring {
    struct plan *p;
    const struct plan_args *a;
    int n, r, next, prev;
    uint64_t total; /* elements of the vector cut into n blocks */
};

static int wrap(int x, int n) { return ((x % n) + n) % n; }

/* Bytes offset and length of block b of the n blocks. */
static void block(const struct ring *g, int b, uint64_t *off, uint64_t *len)
{
    uint64_t base = g->total / (uint64_t)g->n, extra = g->total % (uint64_t)g->n;
    uint64_t ub = (uint64_t)b;
    *off = (ub * base + (ub < extra ? ub : extra)) * g->a->esize;
    *len = (base + (ub < extra)) * g->a->esize;
}

static void need_scratch(struct plan *p, uint64_t end)
{
    if (end > p->scratch_bytes)
        p->scratch_bytes = (size_t)end;
}

/* Where a reduce-scatter keeps the partial sums it receives. */
enum acc_mode {
    ACC_RECVBUF,      /* at each block's own offset in recvbuf (allreduce, reduce root) */
    ACC_SLOTS,        /* two scratch slots, alternating (reduce on non-roots) */
    ACC_SLOTS_TO_RECV /* slots, the complete block into recvbuf[0] (reduce_scatter) */
};

/* Ring reduce-scatter: at step s rank r sends block (r + shift - s) and
 * reduces block (r + shift - s - 1) with its own contribution; after n - 1
 * steps it holds block (r + shift + 1) complete, at *buf / *off. A block
 * received at step s is sent at step s + 1, so two slots suffice. */
static chorus_result_t ring_reduce_scatter(struct ring *g, int shift, enum acc_mode mode,
                                           plan_buf_t *buf, uint64_t *off)
{
    struct plan *p = g->p;
    uint64_t slot, unused;
    block(g, 0, &unused, &slot); /* block 0 is a largest one */
    plan_buf_t held_buf = PLAN_SENDBUF;
    uint64_t held_off = 0;
    for (int s = 0; s < g->n - 1; s++) {
        uint64_t so, sl, ro, rl;
        block(g, wrap(g->r + shift - s, g->n), &so, &sl);
        block(g, wrap(g->r + shift - s - 1, g->n), &ro, &rl);
        if (s == 0)
            held_off = so; /* our own contribution, untouched so far */
        plan_buf_t dst_buf = PLAN_RECVBUF;
        uint64_t dst_off = ro;
        if (mode != ACC_RECVBUF) {
            dst_buf = PLAN_SCRATCH;
            dst_off = (uint64_t)(s % 2) * slot;
            if (mode == ACC_SLOTS_TO_RECV && s == g->n - 2) {
                dst_buf = PLAN_RECVBUF;
                dst_off = 0;
            }
        }
        CHORUS_CHECK(plan_step(p));
        if (sl)
            CHORUS_CHECK(plan_send(p, g->next, held_buf, held_off, sl));
        if (rl) {
            CHORUS_CHECK(plan_recv_reduce(p, g->prev, PLAN_SENDBUF, ro, dst_buf, dst_off, rl));
            if (dst_buf == PLAN_SCRATCH)
                need_scratch(p, dst_off + rl);
        }
        held_buf = dst_buf;
        held_off = dst_off;
    }
    *buf = held_buf;
    *off = held_off;
    return CHORUS_SUCCESS;
}

/* Ring allgather in recvbuf: at step s rank r sends block (r + shift - s)
 * and receives block (r + shift - s - 1). The first block sent is read from
 * first_buf / first_off; later ones are the blocks just received. With
 * copy_own, step 0 also copies our input into block r, which no other op of
 * that step touches. */
static chorus_result_t ring_allgather(struct ring *g, int shift, plan_buf_t first_buf,
                                      uint64_t first_off, int copy_own)
{
    for (int s = 0; s < g->n - 1; s++) {
        uint64_t so, sl, ro, rl;
        block(g, wrap(g->r + shift - s, g->n), &so, &sl);
        block(g, wrap(g->r + shift - s - 1, g->n), &ro, &rl);
        CHORUS_CHECK(plan_step(g->p));
        if (s == 0 && copy_own) {
            uint64_t oo, ol;
            block(g, g->r, &oo, &ol);
            CHORUS_CHECK(plan_copy(g->p, PLAN_SENDBUF, 0, PLAN_RECVBUF, oo, ol));
        }
        if (sl)
            CHORUS_CHECK(plan_send(g->p, g->next, s == 0 ? first_buf : PLAN_RECVBUF,
                                   s == 0 ? first_off : so, sl));
        if (rl)
            CHORUS_CHECK(plan_recv(g->p, g->prev, PLAN_RECVBUF, ro, rl));
    }
    return CHORUS_SUCCESS;
}

static chorus_result_t allreduce(struct ring *g)
{
    plan_buf_t buf;
    uint64_t off;
    CHORUS_CHECK(ring_reduce_scatter(g, 0, ACC_RECVBUF, &buf, &off));
    return ring_allgather(g, 1, buf, off, 0); /* starts with our complete block r + 1 */
}

static chorus_result_t allgather(struct ring *g)
{
    return ring_allgather(g, 0, PLAN_SENDBUF, 0, !g->a->in_place);
}

static chorus_result_t reduce_scatter(struct ring *g)
{
    plan_buf_t buf;
    uint64_t off;
    return ring_reduce_scatter(g, -1, ACC_SLOTS_TO_RECV, &buf, &off);
}

/* Reduce-scatter, then every rank sends its complete block to the root,
 * which receives them all in one step (each into its own range). */
static chorus_result_t reduce(struct ring *g)
{
    const int root = g->a->root;
    plan_buf_t buf;
    uint64_t off, len, unused;
    CHORUS_CHECK(ring_reduce_scatter(g, 0, g->r == root ? ACC_RECVBUF : ACC_SLOTS, &buf, &off));
    CHORUS_CHECK(plan_step(g->p));
    if (g->r != root) {
        block(g, wrap(g->r + 1, g->n), &unused, &len);
        return len ? plan_send(g->p, root, buf, off, len) : CHORUS_SUCCESS;
    }
    for (int q = 0; q < g->n; q++) {
        block(g, wrap(q + 1, g->n), &off, &len);
        if (q != root && len)
            CHORUS_CHECK(plan_recv(g->p, q, PLAN_RECVBUF, off, len));
    }
    return CHORUS_SUCCESS;
}

/* Pipelined chain root -> root+1 -> ... : segment k leaves position i at
 * step k + i, so once the pipe is full every link is busy. Each step of a
 * middle rank receives segment k and forwards segment k - 1. */
static chorus_result_t broadcast(struct ring *g)
{
    const struct plan_args *a = g->a;
    const int pos = wrap(g->r - a->root, g->n);
    const uint64_t count = a->count, esize = a->esize;
    uint64_t seg = (count + (uint64_t)g->n - 1) / (uint64_t)g->n;
    uint64_t cap = RING_BCAST_SEGMENT / esize ? RING_BCAST_SEGMENT / esize : 1;
    if (seg > cap)
        seg = cap;
    const uint64_t nseg = (count + seg - 1) / seg;
    const plan_buf_t src = pos == 0 ? PLAN_SENDBUF : PLAN_RECVBUF;
    for (uint64_t t = 0; t + 2 < nseg + (uint64_t)g->n; t++) {
        CHORUS_CHECK(plan_step(g->p));
        if (t == 0 && pos == 0 && !a->in_place) /* the sends read sendbuf: no conflict */
            CHORUS_CHECK(plan_copy(g->p, PLAN_SENDBUF, 0, PLAN_RECVBUF, 0, count * esize));
        /* receive segment t - pos + 1, send segment t - pos */
        if (pos > 0 && t + 1 >= (uint64_t)pos && t + 1 - (uint64_t)pos < nseg) {
            uint64_t k = t + 1 - (uint64_t)pos, len = (k + 1 == nseg ? count - k * seg : seg);
            CHORUS_CHECK(plan_recv(g->p, g->prev, PLAN_RECVBUF, k * seg * esize, len * esize));
        }
        if (pos < g->n - 1 && t >= (uint64_t)pos && t - (uint64_t)pos < nseg) {
            uint64_t k = t - (uint64_t)pos, len = (k + 1 == nseg ? count - k * seg : seg);
            CHORUS_CHECK(plan_send(g->p, g->next, src, k * seg * esize, len * esize));
        }
    }
    return CHORUS_SUCCESS;
}

chorus_result_t ring_plan(struct plan *p, const struct plan_args *a)
{
    const uint64_t bytes = (uint64_t)a->count * a->esize;
    struct ring g = {.p = p, .a = a, .n = a->nranks, .r = a->rank,
                     .next = (a->rank + 1) % a->nranks,
                     .prev = (a->rank + a->nranks - 1) % a->nranks,
                     .total = a->count};
    if (bytes == 0)
        return CHORUS_SUCCESS;
    if (g.n == 1) { /* alone: the result is the input */
        int root_or_all = a->kind != COLL_REDUCE || a->rank == a->root;
        if (a->in_place || !root_or_all)
            return CHORUS_SUCCESS;
        return plan_copy(p, PLAN_SENDBUF, 0, PLAN_RECVBUF, 0, bytes);
    }
    switch (a->kind) {
    case COLL_ALLREDUCE: return allreduce(&g);
    case COLL_ALLGATHER: g.total = (uint64_t)g.n * a->count; return allgather(&g);
    case COLL_REDUCE_SCATTER: g.total = (uint64_t)g.n * a->count; return reduce_scatter(&g);
    case COLL_BROADCAST: return broadcast(&g);
    case COLL_REDUCE: return reduce(&g);
    default: break;
    }
    return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "ring: %s not implemented", coll_name(a->kind));
}
