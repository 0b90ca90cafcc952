/* algos/tree_plan.c - binomial trees: broadcast, reduce (any root) and
 * allreduce (reduce to rank 0, then broadcast from it).
 *
 * Ranks are numbered relative to the root (v = rank - root mod n). In a
 * binomial tree the parent of v is v with its lowest set bit cleared, so
 * every rank is reached in ceil(log2 n) rounds; the whole message moves in
 * each round (no pipelining), which suits latency-bound sizes.
 *
 * Scratch: broadcast and allreduce none; reduce count * esize on non-root
 * ranks that have children (they accumulate without a receive buffer). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "plan.h"

#include "error.h"

struct tree {
    struct plan *p;
    int n, r;
    uint64_t bytes;
};

static int real_rank(const struct tree *t, int root, int v) { return (v + root) % t->n; }

/* Root's data at src (copied into recvbuf first unless src already is
 * recvbuf); others receive into recvbuf from their parent, then forward to
 * their children, largest subtree first, one per round. */
static chorus_result_t broadcast(struct tree *t, int root, plan_buf_t src)
{
    const int v = (t->r - root + t->n) % t->n;
    int top = 1, below;
    while (top < t->n)
        top <<= 1;
    if (v == 0) {
        below = top;
    } else {
        below = v & -v; /* we hang below parent v - below, reached in that round */
        CHORUS_CHECK(plan_step(t->p));
        CHORUS_CHECK(plan_recv(t->p, real_rank(t, root, v - below), PLAN_RECVBUF, 0, t->bytes));
        src = PLAN_RECVBUF;
    }
    int first = 1;
    for (int k = below / 2; k >= 1; k /= 2) {
        if (v + k >= t->n)
            continue;
        CHORUS_CHECK(plan_step(t->p));
        if (first && src != PLAN_RECVBUF) /* the sends read src: no conflict */
            CHORUS_CHECK(plan_copy(t->p, src, 0, PLAN_RECVBUF, 0, t->bytes));
        first = 0;
        CHORUS_CHECK(plan_send(t->p, real_rank(t, root, v + k), src, 0, t->bytes));
    }
    return CHORUS_SUCCESS;
}

/* Children first: in round m, ranks with bit m set send their partial
 * result up and are done; the others reduce what v + m sends into acc. */
static chorus_result_t reduce(struct tree *t, int root, plan_buf_t acc)
{
    const int v = (t->r - root + t->n) % t->n;
    plan_buf_t cur = PLAN_SENDBUF; /* our partial result: the input until we receive */
    for (int m = 1; m < t->n; m <<= 1) {
        if (v & m) {
            CHORUS_CHECK(plan_step(t->p));
            return plan_send(t->p, real_rank(t, root, v - m), cur, 0, t->bytes);
        }
        if (v + m < t->n) {
            CHORUS_CHECK(plan_step(t->p));
            CHORUS_CHECK(plan_recv_reduce(t->p, real_rank(t, root, v + m), cur, 0, acc, 0,
                                          t->bytes));
            cur = acc;
            if (acc == PLAN_SCRATCH && t->p->scratch_bytes < t->bytes)
                t->p->scratch_bytes = (size_t)t->bytes;
        }
    }
    return CHORUS_SUCCESS;
}

chorus_result_t tree_plan(struct plan *p, const struct plan_args *a)
{
    struct tree t = {.p = p, .n = a->nranks, .r = a->rank,
                     .bytes = (uint64_t)a->count * a->esize};
    if (t.bytes == 0)
        return CHORUS_SUCCESS;
    if (t.n == 1) {
        if (a->in_place || (a->kind == COLL_REDUCE && a->rank != a->root))
            return CHORUS_SUCCESS;
        return plan_copy(p, PLAN_SENDBUF, 0, PLAN_RECVBUF, 0, t.bytes);
    }
    switch (a->kind) {
    case COLL_BROADCAST:
        return broadcast(&t, a->root, a->in_place ? PLAN_RECVBUF : PLAN_SENDBUF);
    case COLL_REDUCE:
        return reduce(&t, a->root, a->rank == a->root ? PLAN_RECVBUF : PLAN_SCRATCH);
    case COLL_ALLREDUCE: /* every rank has a recvbuf to accumulate in */
        CHORUS_CHECK(reduce(&t, 0, PLAN_RECVBUF));
        return broadcast(&t, 0, PLAN_RECVBUF);
    default:
        break;
    }
    return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "tree: %s not implemented", coll_name(a->kind));
}
