/* algos/hier_reduce_plan.c - the pipelined multi-level reduce (direct on
 * every level; see hier_plan.h and docs/algorithms.md).
 *
 * The broadcast of hier_bcast_plan.c run backwards, with one change: a
 * rank's incoming partial sums may not land on one range in one step, so
 * every reduce-scatter here is chunked as the direct reduce_scatter is (in
 * step s the peer at distance d delivers chunk (d - 1 + s) mod (m - 1) of
 * our range; above DIRECT_CHUNKED_MAX members one peer per step).
 *
 * The vector (one piece of it) is cut by a nested partition: N_0 is the
 * piece, N_(k+1)(c_0..c_k) is part c_k of N_k(c_0..c_(k-1)) in g_k parts.
 * R(t) reduces a piece over the ranks sharing the root's coordinates above
 * level t onto the root:
 *  - the members of level t other than the root's reduce-scatter inside
 *    over levels 0 .. t-1, innermost first, so that each rank holds its
 *    member's sum of N_t(its inner position j);
 *  - across level t, per position j, those g_t - 1 ranks reduce-scatter
 *    N_t(j) among themselves and send the sums to the root's member's
 *    rank j: owner x owns N_(t+1)(j, x) and a (g_t - 1)-th of
 *    N_(t+1)(j, root's coordinate), so the root's rank j takes in N_t(j)
 *    once and its ranges line up with what it already holds;
 *  - R(t - 1) inside the root's member.
 * A rank's partial sums live in acc (the root's receive buffer, scratch at
 * the vector's offsets elsewhere); a range not yet reduced into is read
 * from the send buffer. What a rank holds in acc is always one region of
 * the nested partition, so the first reduction into a range knows its
 * source; only the first step of a reduce-scatter at level 0 may straddle
 * that region, and its messages are split at its ends (both sides compute
 * the same split).
 * Steps per piece: D(t) = A(t) + (g_t - 1) + D(t - 1), A(t) = sum over
 * k < t of (g_k - 1), D(-1) = 0. Piece i runs its step s in slot i + s;
 * pieces touch disjoint ranges and every message is matched in its slot
 * (both sides walk pieces, peers and ranges in the same order). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "hier_plan.h"

#include "error.h"

struct hr {
    struct plan *p;
    const struct plan_args *a;
    int n;                                       /* active levels */
    int g[HIER_MAX_LEVELS];                      /* members */
    long stride[HIER_MAX_LEVELS];                /* P_t: ranks below level t */
    int c[HIER_MAX_LEVELS], rc[HIER_MAX_LEVELS]; /* our and the root's coordinates */
    int A[HIER_MAX_LEVELS], D[HIER_MAX_LEVELS];  /* steps of phase a and of R(t) */
    uint64_t es;                                 /* bytes per element */
    plan_buf_t fresh, acc;                       /* our input; our partial sums */
    uint64_t po, pl;                             /* the piece, in elements */
};

/* N_k of our coordinates, with coordinate `at` replaced by x (at < 0: none). */
static void region(const struct hr *h, int k, int at, int x, uint64_t *off, uint64_t *len)
{
    uint64_t o = h->po, l = h->pl;
    for (int u = 0; u < k; u++) {
        uint64_t so, sl;
        plan_even_part(l, (uint64_t)h->g[u], (uint64_t)(u == at ? x : h->c[u]), &so, &sl);
        o += so;
        l = sl;
    }
    *off = o;
    *len = l;
}

static int peer_at(const struct hr *h, int t, int x)
{
    return h->a->rank + (x - h->c[t]) * (int)h->stride[t];
}

static int with_root_above(const struct hr *h, int t)
{
    for (int u = t + 1; u < h->n; u++)
        if (h->c[u] != h->rc[u])
            return 0;
    return 1;
}

/* A reduce-scatter among m participants (index space 0..m-1, ours me):
 * participant x owns nr ranges; in step s (0 .. m-2) each receives from
 * every other participant one chunk of its ranges, the one at distance d
 * chunk (d - 1 + s) mod (m - 1), or, above DIRECT_CHUNKED_MAX, all of them
 * from the participant at distance s + 1. */
struct rs {
    int t, k;        /* R(t); phase a: level k, the cross: k = -1 */
    int m, me, nr;
    plan_buf_t send_src; /* where a sender reads the ranges it sends */
};

static int member_of(const struct hr *h, int t, int x) { return x < h->rc[t] ? x : x + 1; }

static int rs_rank(const struct hr *h, const struct rs *q, int x)
{
    return q->k >= 0 ? peer_at(h, q->k, x) : peer_at(h, q->t, member_of(h, q->t, x));
}

/* Range r of participant x. Phase a: N_(k+1) with coordinate k = x; the
 * cross: N_(t+1)(j, x's member), then its share of N_(t+1)(j, the root's). */
static void rs_owned(const struct hr *h, const struct rs *q, int x, int r, uint64_t *off,
                     uint64_t *len)
{
    if (q->k >= 0) {
        region(h, q->k + 1, q->k, x, off, len);
        return;
    }
    if (r == 0) {
        region(h, q->t + 1, q->t, member_of(h, q->t, x), off, len);
        return;
    }
    uint64_t ro, rl, so;
    region(h, q->t + 1, q->t, h->rc[q->t], &ro, &rl);
    plan_even_part(rl, (uint64_t)q->m, (uint64_t)x, &so, len);
    *off = ro + so;
}

/* The region [lo, hi) participant x holds in acc before the reduce-scatter
 * starts (lo == hi: none). A rank of R(t) outside the root's member took
 * in sums across the levels above t, which left N_(t+1)(its coordinates)
 * in acc; after the first step of a level its whole range is in acc. */
static void rs_held(const struct hr *h, const struct rs *q, int x, uint64_t *lo, uint64_t *hi)
{
    uint64_t off = 0, len = 0;
    if (q->k > 0)
        region(h, q->k, -1, 0, &off, &len); /* N_k(our coordinates), shared by the group */
    else if (q->k < 0 && q->t > 0)
        region(h, q->t, -1, 0, &off, &len);
    else if (q->t < h->n - 1) /* level 0 of phase a, or the cross at level 0 */
        region(h, q->t + 1, q->k < 0 ? q->t : 0, q->k < 0 ? member_of(h, q->t, x) : x, &off,
               &len);
    *lo = off;
    *hi = off + len;
}

/* One range of a transfer, cut at [lo, hi) when it is the receiver's first
 * reduction into it: the receiver reads its own contribution from acc
 * inside, from its input outside (the sender cuts alike). */
static chorus_result_t xfer(struct hr *h, int sending, int peer, plan_buf_t sbuf, uint64_t off,
                            uint64_t len, int first, uint64_t lo, uint64_t hi)
{
    uint64_t cut[4] = {off, off, off + len, off + len};
    if (first && lo < hi) {
        cut[1] = lo < off ? off : lo > off + len ? off + len : lo;
        cut[2] = hi < off ? off : hi > off + len ? off + len : hi;
    }
    for (int i = 0; i < 3; i++) {
        const uint64_t o = cut[i], l = cut[i + 1] - cut[i];
        if (!l)
            continue;
        if (sending) {
            CHORUS_CHECK(plan_send(h->p, peer, sbuf, o * h->es, l * h->es));
        } else {
            const plan_buf_t src = !first || (lo < hi && i == 1) ? h->acc : h->fresh;
            CHORUS_CHECK(plan_recv_reduce(h->p, peer, src, o * h->es, h->acc, o * h->es,
                                          l * h->es));
        }
    }
    return CHORUS_SUCCESS;
}

static chorus_result_t rs_step(struct hr *h, const struct rs *q, int s)
{
    const int m = q->m, me = q->me, chunked = m <= DIRECT_CHUNKED_MAX;
    for (int dir = 0; dir < 2; dir++) { /* 0: what we send, 1: what we receive */
        for (int d = 1; d < m; d++) {
            if (!chunked && d != s + 1)
                continue;
            const int x = dir ? (me - d + m) % m : (me + d) % m; /* the other participant */
            const int owner = dir ? me : x;
            uint64_t lo, hi;
            rs_held(h, q, owner, &lo, &hi);
            for (int r = 0; r < q->nr; r++) {
                uint64_t off, len, co = 0, cl;
                rs_owned(h, q, owner, r, &off, &len);
                cl = len;
                if (chunked)
                    plan_even_part(len, (uint64_t)(m - 1), (uint64_t)((d - 1 + s) % (m - 1)),
                                   &co, &cl);
                CHORUS_CHECK(xfer(h, !dir, rs_rank(h, q, x), q->send_src, off + co, cl, s == 0,
                                  lo, hi));
            }
        }
    }
    return CHORUS_SUCCESS;
}

/* The owners' sums go to the root's member's rank j (member rc_t), which
 * holds N_(t+1)(j, rc_t) in acc unless t is the top level. */
static chorus_result_t gather(struct hr *h, int t, const struct rs *q)
{
    uint64_t lo = 0, hi = 0;
    if (t < h->n - 1) {
        uint64_t off, len;
        region(h, t + 1, t, h->rc[t], &off, &len);
        lo = off;
        hi = off + len;
    }
    const int root_side = h->c[t] == h->rc[t];
    /* in the chunks of the reduce-scatter's steps: flows of one size share
     * the senders' ports, which carry those steps of other pieces, evenly
     * (one whole range would get a 1/(m (m - 1)) share of its sender's port
     * while the receiver's port, shared by only m flows, idled) */
    const int chunks = q->m > 1 && q->m <= DIRECT_CHUNKED_MAX ? q->m - 1 : 1;
    for (int x = 0; x < q->m; x++) {
        if (!root_side && x != q->me)
            continue;
        uint64_t hlo, hhi;
        rs_held(h, q, x, &hlo, &hhi);
        for (int r = 0; r < q->nr; r++) {
            uint64_t off, len;
            rs_owned(h, q, x, r, &off, &len);
            /* a sum we reduced into, or (one owner) what we held or our input */
            const int in_acc = q->m > 1 || (off >= hlo && off + len <= hhi);
            for (int c = 0; c < chunks; c++) {
                uint64_t co, cl;
                plan_even_part(len, (uint64_t)chunks, (uint64_t)c, &co, &cl);
                if (root_side)
                    CHORUS_CHECK(xfer(h, 0, peer_at(h, t, member_of(h, t, x)), h->acc,
                                      off + co, cl, 1, lo, hi));
                else
                    CHORUS_CHECK(xfer(h, 1, peer_at(h, t, h->rc[t]),
                                      in_acc ? h->acc : h->fresh, off + co, cl, 1, lo, hi));
            }
        }
    }
    return CHORUS_SUCCESS;
}

/* Our ops of step s of R(t) for the current piece. */
static chorus_result_t emit(struct hr *h, int t, int s)
{
    if (!with_root_above(h, t))
        return CHORUS_SUCCESS;
    const int others = h->c[t] != h->rc[t], m = h->g[t] - 1;
    struct rs q = {.t = t, .k = -1, .m = m, .me = others ? h->c[t] - (h->c[t] > h->rc[t]) : -1,
                   .nr = 2, .send_src = t > 0 ? h->acc : h->fresh};
    if (s < h->A[t]) {
        if (!others)
            return CHORUS_SUCCESS;
        for (int k = 0; k < t; s -= h->g[k] - 1, k++) {
            if (s < h->g[k] - 1) {
                struct rs a = {.t = t, .k = k, .m = h->g[k], .me = h->c[k], .nr = 1,
                               .send_src = k > 0 ? h->acc : h->fresh};
                return rs_step(h, &a, s);
            }
        }
        return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "hier reduce: step %d of level %d's phase",
                          s, t);
    }
    s -= h->A[t];
    if (s < m - 1)
        return others ? rs_step(h, &q, s) : CHORUS_SUCCESS;
    if (s == m - 1)
        return gather(h, t, &q);
    s -= m;
    return !others && t > 0 ? emit(h, t - 1, s) : CHORUS_SUCCESS;
}

int hier_reduce_steps(int nactive, const int *group)
{
    int d = 0, a = 0;
    for (int t = 0; t < nactive; t++) {
        d += a + group[t] - 1;
        a += group[t] - 1;
    }
    return d;
}

int hier_reduce_pieces(uint64_t bytes, uint64_t min_bytes)
{
    if (!min_bytes)
        min_bytes = HIER_BCAST_MIN_PIECE;
    uint64_t k = bytes / min_bytes;
    if (k > HIER_REDUCE_MAX_PIECES)
        k = HIER_REDUCE_MAX_PIECES;
    return k < 1 ? 1 : (int)k;
}

chorus_result_t hier_reduce_pipelined(struct plan *p, const struct plan_args *a, int n,
                                      const int *group, const int *stride, uint64_t min_bytes)
{
    const int is_root = a->rank == a->root;
    struct hr h = {.p = p, .a = a, .n = n, .es = a->esize,
                   .fresh = is_root && a->in_place ? PLAN_RECVBUF : PLAN_SENDBUF,
                   .acc = is_root ? PLAN_RECVBUF : PLAN_SCRATCH};
    const uint64_t bytes = (uint64_t)a->count * a->esize;
    if (!bytes)
        return CHORUS_SUCCESS;
    int acc_steps = 0;
    for (int t = 0; t < n; t++) {
        h.g[t] = group[t];
        h.stride[t] = stride[t];
        h.c[t] = (a->rank / stride[t]) % group[t];
        h.rc[t] = (a->root / stride[t]) % group[t];
        h.A[t] = acc_steps;
        acc_steps += group[t] - 1;
        h.D[t] = hier_reduce_steps(t + 1, group);
    }
    if (!is_root && p->scratch_bytes < bytes)
        p->scratch_bytes = bytes; /* our partial sums, at the vector's offsets */
    const int pieces = hier_reduce_pieces(bytes, min_bytes), D = h.D[n - 1];
    for (int slot = 0; slot < pieces + D - 1; slot++) {
        CHORUS_CHECK(plan_step(p));
        for (int i = slot - D + 1 > 0 ? slot - D + 1 : 0; i < pieces && i <= slot; i++) {
            plan_even_part(a->count, (uint64_t)pieces, (uint64_t)i, &h.po, &h.pl);
            CHORUS_CHECK(emit(&h, n - 1, slot - i));
        }
    }
    return CHORUS_SUCCESS;
}
