/* algos/hier_bcast_plan.c - the pipelined multi-level broadcast (direct on
 * every level; see hier_plan.h and docs/algorithms.md).
 *
 * A broadcast run level after level sends the whole vector over one port of
 * each rank on the root's path, so it moves at the slowest port's pace. Here
 * the vector reaches every member of a level through all its ranks' ports:
 * S(t) broadcasts a piece to the ranks sharing the root's coordinates above
 * level t (S(top): every rank), recursively:
 *  - S(0): the direct broadcast among the root's level-0 group (a scatter of
 *    g - 1 slices, then each slice to the other owners and back to the
 *    root, whose receive buffer so fills without a copy; in place too, as
 *    the runtime tells the other ranks they run in place whatever the
 *    root does);
 *  - S(t): S(t - 1) inside the root's level-t member; then, for each inner
 *    position j (coordinates below t), slice j of the piece (one of P_t)
 *    crosses level t from the root's member to the others, as a scatter of
 *    g_t - 1 sub-slices and an allgather of them (so each port carries about
 *    one slice, not g_t - 1); then the other members allgather their slices
 *    over levels t - 1 .. 0, outermost first, direct (every held slice one
 *    message to each member of the level).
 * Steps per piece: D(0) = 2, D(t) = D(t - 1) + 2 + t. Piece i runs its step
 * s in slot i + s, so all levels work at once on different pieces. Both
 * sides of a pair walk the pieces of a slot in the same order and the
 * slices of a step in the same order, and every message is matched in its
 * slot: deadlock-free. Pieces touch disjoint ranges; no scratch. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "hier_plan.h"

#include "error.h"

struct hb {
    struct plan *p;
    const struct plan_args *a;
    int n;                          /* active levels */
    int g[HIER_MAX_LEVELS];         /* members */
    long stride[HIER_MAX_LEVELS];   /* rank distance between neighbouring members = P_t */
    int c[HIER_MAX_LEVELS], rc[HIER_MAX_LEVELS]; /* our and the root's coordinates */
    int D[HIER_MAX_LEVELS];         /* steps of S(t) */
    plan_buf_t src;                 /* where the root reads the vector */
    uint64_t po, pl;                /* the current piece (bytes of the vector) */
};


static chorus_result_t send(struct hb *b, int peer, plan_buf_t buf, uint64_t off, uint64_t len)
{
    return len ? plan_send(b->p, peer, buf, off, len) : CHORUS_SUCCESS;
}

static chorus_result_t recv(struct hb *b, int peer, uint64_t off, uint64_t len)
{
    return len ? plan_recv(b->p, peer, PLAN_RECVBUF, off, len) : CHORUS_SUCCESS;
}

/* Our rank with coordinate t set to x. */
static int peer_at(const struct hb *b, int t, int x)
{
    return b->a->rank + (x - b->c[t]) * (int)b->stride[t];
}

/* Index of member x among the g - 1 that are not the root's coordinate. */
static int owner_index(int x, int root) { return x < root ? x : x - 1; }

/* Where we read the piece from: the root's input, or what we received. */
static plan_buf_t held_buf(const struct hb *b)
{
    return b->a->rank == b->a->root ? b->src : PLAN_RECVBUF;
}

/* Step s (0 or 1) of the direct broadcast among the root's level-0 group. */
static chorus_result_t direct_step(struct hb *b, int s)
{
    const int g = b->g[0], me = b->c[0], root = b->rc[0], m = g - 1;
    uint64_t so, sl;
    if (s == 0) {
        if (me != root) {
            plan_even_part(b->pl, (uint64_t)m, (uint64_t)owner_index(me, root), &so, &sl);
            return recv(b, peer_at(b, 0, root), b->po + so, sl);
        }
        for (int x = 0; x < g; x++) {
            if (x == root)
                continue;
            plan_even_part(b->pl, (uint64_t)m, (uint64_t)owner_index(x, root), &so, &sl);
            CHORUS_CHECK(send(b, peer_at(b, 0, x), b->src, b->po + so, sl));
        }
        return CHORUS_SUCCESS;
    }
    if (me == root) { /* we are the root: our slices come back (always: the others
                       * cannot tell whether the root runs in place, and in place
                       * the same bytes land on themselves) */
        for (int x = 0; x < g; x++) {
            if (x == root)
                continue;
            plan_even_part(b->pl, (uint64_t)m, (uint64_t)owner_index(x, root), &so, &sl);
            CHORUS_CHECK(recv(b, peer_at(b, 0, x), b->po + so, sl));
        }
        return CHORUS_SUCCESS;
    }
    uint64_t mo, ml;
    plan_even_part(b->pl, (uint64_t)m, (uint64_t)owner_index(me, root), &mo, &ml);
    for (int x = 0; x < g; x++) {
        if (x == root || x == me)
            continue;
        plan_even_part(b->pl, (uint64_t)m, (uint64_t)owner_index(x, root), &so, &sl);
        CHORUS_CHECK(send(b, peer_at(b, 0, x), PLAN_RECVBUF, b->po + mo, ml));
        CHORUS_CHECK(recv(b, peer_at(b, 0, x), b->po + so, sl));
    }
    return send(b, peer_at(b, 0, root), PLAN_RECVBUF, b->po + mo, ml);
}

/* Our inner position below level t (coordinates 0 .. t-1 as a rank offset). */
static long inner_pos(const struct hb *b, int t)
{
    return b->a->rank % b->stride[t];
}

/* Slice j of the piece, one of P_t. */
static void slice(const struct hb *b, int t, long j, uint64_t *off, uint64_t *len)
{
    plan_even_part(b->pl, (uint64_t)b->stride[t], (uint64_t)j, off, len);
    *off += b->po;
}

/* Step s (0: scatter, 1: allgather) of slice crossing level t. */
static chorus_result_t cross(struct hb *b, int t, int s)
{
    const int g = b->g[t], me = b->c[t], root = b->rc[t], m = g - 1;
    uint64_t so, sl, xo, xl;
    slice(b, t, inner_pos(b, t), &so, &sl);
    if (s == 0) {
        if (me != root) {
            plan_even_part(sl, (uint64_t)m, (uint64_t)owner_index(me, root), &xo, &xl);
            return recv(b, peer_at(b, t, root), so + xo, xl);
        }
        for (int x = 0; x < g; x++) {
            if (x == root)
                continue;
            plan_even_part(sl, (uint64_t)m, (uint64_t)owner_index(x, root), &xo, &xl);
            CHORUS_CHECK(send(b, peer_at(b, t, x), held_buf(b), so + xo, xl));
        }
        return CHORUS_SUCCESS;
    }
    if (me == root)
        return CHORUS_SUCCESS;
    uint64_t mo, ml;
    plan_even_part(sl, (uint64_t)m, (uint64_t)owner_index(me, root), &mo, &ml);
    for (int x = 0; x < g; x++) {
        if (x == root || x == me)
            continue;
        plan_even_part(sl, (uint64_t)m, (uint64_t)owner_index(x, root), &xo, &xl);
        CHORUS_CHECK(send(b, peer_at(b, t, x), PLAN_RECVBUF, so + mo, ml));
        CHORUS_CHECK(recv(b, peer_at(b, t, x), so + xo, xl));
    }
    return CHORUS_SUCCESS;
}

/* Level k of the allgather of level t's slices: we hold the slices whose
 * coordinates up to k are ours (those above k, below t, any) and send each
 * to every member of our level-k group, receiving theirs in the same order. */
static chorus_result_t inner_allgather(struct hb *b, int t, int k)
{
    long held = 1;
    for (int u = k + 1; u < t; u++)
        held *= b->g[u];
    const long mine = inner_pos(b, k + 1); /* coordinates 0 .. k */
    for (int x = 0; x < b->g[k]; x++) {
        if (x == b->c[k])
            continue;
        const int q = peer_at(b, k, x);
        const long shift = (long)(x - b->c[k]) * b->stride[k];
        for (long h = 0; h < held; h++) {
            long j = mine, rest = h;
            for (int u = k + 1; u < t; u++) {
                j += (rest % b->g[u]) * b->stride[u];
                rest /= b->g[u];
            }
            uint64_t so, sl, ro, rl;
            slice(b, t, j, &so, &sl);
            slice(b, t, j + shift, &ro, &rl);
            CHORUS_CHECK(send(b, q, PLAN_RECVBUF, so, sl));
            CHORUS_CHECK(recv(b, q, ro, rl));
        }
    }
    return CHORUS_SUCCESS;
}

/* We share the root's coordinates above level t. */
static int with_root_above(const struct hb *b, int t)
{
    for (int u = t + 1; u < b->n; u++)
        if (b->c[u] != b->rc[u])
            return 0;
    return 1;
}

/* Our ops of step s of S(t) for the current piece. */
static chorus_result_t emit(struct hb *b, int t, int s)
{
    if (!with_root_above(b, t))
        return CHORUS_SUCCESS;
    if (t == 0)
        return direct_step(b, s);
    if (s < b->D[t - 1])
        return b->c[t] == b->rc[t] ? emit(b, t - 1, s) : CHORUS_SUCCESS;
    s -= b->D[t - 1];
    if (s < 2)
        return cross(b, t, s);
    return b->c[t] == b->rc[t] ? CHORUS_SUCCESS : inner_allgather(b, t, t - 1 - (s - 2));
}

int hier_bcast_steps(int nactive)
{
    int d = 2;
    for (int t = 1; t < nactive; t++)
        d += 2 + t;
    return d;
}

int hier_bcast_pieces(uint64_t bytes, uint64_t min_bytes)
{
    if (!min_bytes)
        min_bytes = HIER_BCAST_MIN_PIECE;
    uint64_t k = bytes / min_bytes;
    if (k > HIER_PIPE_MAX_SEGS)
        k = HIER_PIPE_MAX_SEGS;
    return k < 1 ? 1 : (int)k;
}

chorus_result_t hier_bcast_pipelined(struct plan *p, const struct plan_args *a, int n,
                                     const int *group, const int *stride, uint64_t min_bytes)
{
    struct hb b = {.p = p, .a = a, .n = n,
                   .src = a->in_place ? PLAN_RECVBUF : PLAN_SENDBUF};
    const uint64_t bytes = (uint64_t)a->count * a->esize;
    if (!bytes)
        return CHORUS_SUCCESS;
    for (int t = 0; t < n; t++) {
        b.g[t] = group[t];
        b.stride[t] = stride[t];
        b.c[t] = (a->rank / stride[t]) % group[t];
        b.rc[t] = (a->root / stride[t]) % group[t];
        b.D[t] = hier_bcast_steps(t + 1);
    }
    const int pieces = hier_bcast_pieces(bytes, min_bytes), D = b.D[n - 1];
    for (int slot = 0; slot < pieces + D - 1; slot++) {
        CHORUS_CHECK(plan_step(p));
        for (int i = slot - D + 1 > 0 ? slot - D + 1 : 0; i < pieces && i <= slot; i++) {
            plan_even_part(bytes, (uint64_t)pieces, (uint64_t)i, &b.po, &b.pl);
            CHORUS_CHECK(emit(&b, n - 1, slot - i));
        }
    }
    return CHORUS_SUCCESS;
}
