/* algos/tree_plan.c - binomial trees: broadcast, reduce (any root) and
 * allreduce (reduce to rank 0, then broadcast from it); long broadcasts and
 * reduces on a pipelined double binary tree.
 *
 * Ranks are numbered relative to the root (v = rank - root mod n). In a
 * binomial tree the parent of v is v with its lowest set bit cleared, so
 * every rank is reached in ceil(log2 n) rounds; the whole message moves in
 * each round (no pipelining), which suits latency-bound sizes.
 *
 * A broadcast of TREE_DBT_MIN bytes or more (plan.h) runs on two binary
 * trees over the n - 1 other ranks, each carrying half of the vector in
 * segments of TREE_DBT_SEGMENT: tree A a heap over index i = v - 1, tree B
 * the same heap over the reversed index, so the ranks interior in one tree
 * are leaves in the other and every rank sends and receives about the
 * vector once (a binomial tree sends it log2 n times from the root, a
 * single binary tree twice from every interior rank). A rank at depth d
 * receives segment j in step j + d - 1 and forwards it in step j + d: each
 * message is matched in the same step on both sides (deadlock-free), and
 * n - 1 + log2 n ranks move segments at once. A reduce as long runs on the
 * same two trees, time reversed (dbt_reduce).
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

static int depth_of(int label) /* heap depth of a label, the tree's top at 1 */
{
    int d = 1;
    while (label > 0) {
        label = (label - 1) / 2;
        d++;
    }
    return d;
}

/* One tree's ops for step `step`: receive segment step - d + 1 from the
 * parent, forward segment step - d to the children. Ranks are given as
 * tree indices (i = v - 1); -1 is the root. */
static chorus_result_t dbt_tree_step(struct tree *t, int root, int label, int m, int reversed,
                                     int step, int nseg, uint64_t base, uint64_t half,
                                     uint64_t seg, plan_buf_t src)
{
#define INDEX(l) ((reversed) ? m - 1 - (l) : (l))
    const int d = label < 0 ? 0 : depth_of(label);
    const int rj = step - d + 1, sj = step - d;
    /* with m odd, label (m - 1) / 2 is a leaf of both trees: its idle port
     * hands each segment back to the root, whose receive buffer fills so
     * without a copy (copies delay a step's messages; the root's would
     * delay every step) */
    const int back = m % 2 == 1 ? (m - 1) / 2 : -1;
    if (label >= 0 && rj >= 0 && rj < nseg) {
        const int parent = label == 0 ? -1 : INDEX((label - 1) / 2);
        const uint64_t o = (uint64_t)rj * seg, len = o + seg < half ? seg : half - o;
        CHORUS_CHECK(plan_recv(t->p, real_rank(t, root, parent + 1), PLAN_RECVBUF, base + o,
                               len));
    }
    if (label < 0 && back >= 0) { /* the root takes segment step - d back */
        const int j = step - depth_of(back);
        if (j >= 0 && j < nseg) {
            const uint64_t o = (uint64_t)j * seg, len = o + seg < half ? seg : half - o;
            CHORUS_CHECK(plan_recv(t->p, real_rank(t, root, INDEX(back) + 1), PLAN_RECVBUF,
                                   base + o, len));
        }
    }
    if (sj >= 0 && sj < nseg) {
        const uint64_t o = (uint64_t)sj * seg, len = o + seg < half ? seg : half - o;
        if (label < 0) { /* the root feeds the tree's top */
            CHORUS_CHECK(plan_send(t->p, real_rank(t, root, INDEX(0) + 1), src, base + o, len));
        } else if (label == back) {
            CHORUS_CHECK(plan_send(t->p, root, PLAN_RECVBUF, base + o, len));
        } else {
            for (int c = 2 * label + 1; c <= 2 * label + 2 && c < m; c++)
                CHORUS_CHECK(plan_send(t->p, real_rank(t, root, INDEX(c) + 1), PLAN_RECVBUF,
                                       base + o, len));
        }
    }
#undef INDEX
    return CHORUS_SUCCESS;
}

static chorus_result_t dbt_broadcast(struct tree *t, int root, plan_buf_t src)
{
    const int v = (t->r - root + t->n) % t->n, m = t->n - 1;
    const uint64_t half_a = t->bytes / 2, half_b = t->bytes - half_a, seg = TREE_DBT_SEGMENT;
    const int nseg = (int)((half_b + seg - 1) / seg), depth = depth_of(m - 1);
    const int la = v == 0 ? -1 : v - 1, lb = v == 0 ? -1 : m - v; /* labels in A and B */
    for (int step = 0; step < nseg + depth; step++) {
        CHORUS_CHECK(plan_step(t->p));
        if (step == 0 && v == 0 && src != PLAN_RECVBUF && m % 2 == 0) /* the sends read src */
            CHORUS_CHECK(plan_copy(t->p, src, 0, PLAN_RECVBUF, 0, t->bytes));
        int na = (int)((half_a + seg - 1) / seg);
        if (half_a)
            CHORUS_CHECK(dbt_tree_step(t, root, la, m, 0, step, na, 0, half_a, seg, src));
        CHORUS_CHECK(dbt_tree_step(t, root, lb, m, 1, step, nseg, half_a, half_b, seg, src));
    }
    return CHORUS_SUCCESS;
}

/* The reduce on the same two trees, time reversed: a node's partial sum of
 * segment j (its input, its left child's, its right child's) goes to its
 * parent in step off + j; the left child sends it two steps earlier, the
 * right child one step earlier, so the two arrive in different steps (one
 * RECV_REDUCE each, into the same accumulator). off of the tree's top is
 * 0, and grows more negative down the tree (-2 per left, -1 per right
 * edge): all offsets are shifted by twice the depth below the top. Each
 * step a rank interior in one tree takes in two segments (left j + 2,
 * right j + 1) and sends one up, and sends one as a leaf of the other. */
static int dbt_offset(int label) /* step of segment 0 at this label, the top's at 0 */
{
    int off = 0;
    while (label > 0) {
        off -= label % 2 ? 2 : 1; /* odd labels are left children */
        label = (label - 1) / 2;
    }
    return off;
}

/* One tree's ops for step `step` (labels and INDEX as dbt_tree_step); in:
 * what the root reduces its input from (PLAN_SENDBUF, or PLAN_RECVBUF in
 * place). */
static chorus_result_t dbt_reduce_step(struct tree *t, int root, int label, int m, int reversed,
                                       int step, int shift, int nseg, uint64_t base,
                                       uint64_t half, uint64_t seg, plan_buf_t in)
{
#define INDEX(l) ((reversed) ? m - 1 - (l) : (l))
#define RANGE(j) const uint64_t o = (uint64_t)(j) * seg, len = o + seg < half ? seg : half - o
    if (label < 0) { /* the plan's root: the top's sums into recvbuf */
        const int j = step - shift;
        if (j >= 0 && j < nseg) {
            RANGE(j);
            CHORUS_CHECK(plan_recv_reduce(t->p, real_rank(t, root, INDEX(0) + 1), in, base + o,
                                          PLAN_RECVBUF, base + o, len));
        }
        return CHORUS_SUCCESS;
    }
    const int off = dbt_offset(label) + shift, left = 2 * label + 1, right = left + 1;
    if (left < m) { /* children's sums of segment j, left in off - 2 + j, right in off - 1 + j */
        const int jl = step - (off - 2), jr = step - (off - 1);
        if (jl >= 0 && jl < nseg) {
            RANGE(jl);
            CHORUS_CHECK(plan_recv_reduce(t->p, real_rank(t, root, INDEX(left) + 1), PLAN_SENDBUF,
                                          base + o, PLAN_SCRATCH, base + o, len));
        }
        if (right < m && jr >= 0 && jr < nseg) {
            RANGE(jr);
            CHORUS_CHECK(plan_recv_reduce(t->p, real_rank(t, root, INDEX(right) + 1),
                                          PLAN_SCRATCH, base + o, PLAN_SCRATCH, base + o, len));
        }
    }
    const int js = step - off;
    if (js >= 0 && js < nseg) {
        RANGE(js);
        const int parent = label == 0 ? -1 : INDEX((label - 1) / 2);
        CHORUS_CHECK(plan_send(t->p, real_rank(t, root, parent + 1),
                               left < m ? PLAN_SCRATCH : PLAN_SENDBUF, base + o, len));
    }
#undef RANGE
#undef INDEX
    return CHORUS_SUCCESS;
}

static chorus_result_t dbt_reduce(struct tree *t, int root, int in_place, uint64_t esize)
{
    const int v = (t->r - root + t->n) % t->n, m = t->n - 1;
    /* halves of whole elements (segments are: esize divides TREE_DBT_SEGMENT) */
    const uint64_t half_a = t->bytes / esize / 2 * esize, half_b = t->bytes - half_a;
    const uint64_t seg = TREE_DBT_SEGMENT;
    const int nb = (int)((half_b + seg - 1) / seg), na = (int)((half_a + seg - 1) / seg);
    const int shift = 2 * (depth_of(m - 1) - 1); /* -dbt_offset of the deepest (leftmost) leaf */
    const int la = v == 0 ? -1 : v - 1, lb = v == 0 ? -1 : m - v;
    const plan_buf_t in = in_place ? PLAN_RECVBUF : PLAN_SENDBUF;
    if (v != 0 && (2 * la + 1 < m || 2 * lb + 1 < m) && t->p->scratch_bytes < t->bytes)
        t->p->scratch_bytes = (size_t)t->bytes; /* interior: sums at their own offsets */
    for (int step = 0; step < shift + nb; step++) {
        CHORUS_CHECK(plan_step(t->p));
        if (half_a)
            CHORUS_CHECK(dbt_reduce_step(t, root, la, m, 0, step, shift, na, 0, half_a, seg, in));
        CHORUS_CHECK(dbt_reduce_step(t, root, lb, m, 1, step, shift, nb, half_a, half_b, seg, in));
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
        if (t.bytes >= TREE_DBT_MIN && t.n >= 3)
            return dbt_broadcast(&t, a->root, a->in_place ? PLAN_RECVBUF : PLAN_SENDBUF);
        return broadcast(&t, a->root, a->in_place ? PLAN_RECVBUF : PLAN_SENDBUF);
    case COLL_REDUCE:
        if (t.bytes >= TREE_DBT_MIN && t.n >= 3)
            return dbt_reduce(&t, a->root, a->in_place, a->esize);
        return reduce(&t, a->root, a->rank == a->root ? PLAN_RECVBUF : PLAN_SCRATCH);
    case COLL_ALLREDUCE: /* every rank has a recvbuf to accumulate in */
        CHORUS_CHECK(reduce(&t, 0, PLAN_RECVBUF));
        return broadcast(&t, 0, PLAN_RECVBUF);
    default:
        break;
    }
    return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "tree: %s not implemented", coll_name(a->kind));
}
