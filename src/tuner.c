/* tuner.c - the per-level cost model and the decision table (tuner.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "tuner.h"

#include "hier_plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Local copies (reordering blocks for Bruck and the compositions) run at
 * about memory speed, which the reduction speed stands for: 1.5 times it
 * (a copy reads one stream, a reduction two), as the simulator assumes. */
#define COPY_PER_REDUCE 1.5

/* Default figures when no tuning file says otherwise: a 10-25 Gbit/s
 * Ethernet seen through kernel TCP, an InfiniBand/RoCE NIC, and a DDR4/5
 * memory system for shared memory and reductions. `chorus_tune
 * --calibrate` measures this machine's (docs/tuner.md). */
const struct tuner_figures tuner_default_figures = {
    .tcp = {25e-6, 1.25e9},
    .rdma = {4e-6, 12e9},
    .shm = {1e-6, 6e9},
    .reduce_bw = 4e9,
};

/* The levels that carry traffic (group > 1), with their figures. */
struct view {
    int n;                             /* levels */
    int g[TOPO_MAX_LEVELS];            /* members */
    int topo_level[TOPO_MAX_LEVELS];   /* index in the topology */
    double a[TOPO_MAX_LEVELS];         /* seconds per message across the level */
    double a_far[TOPO_MAX_LEVELS];     /* ... to the farthest member (multi-hop levels) */
    double b[TOPO_MAX_LEVELS];         /* seconds per byte over one port or link */
    double links[TOPO_MAX_LEVELS];     /* links a rank drives at once (full mesh: g-1) */
    long stride[TOPO_MAX_LEVELS + 1];  /* positions per member group; stride[n] = p */
    int p;
    double gamma;                      /* seconds per byte reduced */
    double copy;                       /* seconds per byte copied locally */
    int soft[TOPO_MAX_LEVELS];         /* kernel network stack: posting cost, incast */
};

/* Hops to the farthest member of a torus / open mesh or ring level (1 on
 * the others): a step that talks to every member waits for that one. */
static double far_hops(const struct topo_level *l)
{
    double h = 0;
    if (l->shape == TOPO_SHAPE_RING)
        h = l->group / 2;
    else if (l->shape == TOPO_SHAPE_TORUS)
        for (int d = 0; d < 3; d++)
            h += l->dims[d] > 1 ? (l->wrap ? l->dims[d] / 2 : l->dims[d] - 1) : 0;
    return h < 1 ? 1 : h;
}

/* Average hops between two members of a torus / open mesh level. */
static double torus_hops(const struct topo_level *l)
{
    double h = 0;
    for (int d = 0; d < 3; d++) {
        double k = l->dims[d] > 0 ? l->dims[d] : 1;
        h += l->wrap ? k / 4 : (k * k - 1) / (3 * k);
    }
    return h < 1 ? 1 : h;
}

static double level_links(const struct topo_level *l)
{
    switch (l->shape) {
    case TOPO_SHAPE_FULL_MESH:
        return l->group - 1;
    case TOPO_SHAPE_RING:
        return l->group > 2 ? 2 : 1;
    case TOPO_SHAPE_TORUS: {
        int n = 0;
        for (int d = 0; d < 3; d++)
            n += l->dims[d] > 2 ? 2 : l->dims[d] == 2 ? 1 : 0;
        return n > 0 ? n : 1;
    }
    default:
        return 1;
    }
}

static void view_of(const struct topo *t, struct view *v)
{
    memset(v, 0, sizeof *v);
    long s = 1;
    for (int i = 0; i < t->nlevels; i++) {
        const struct topo_level *l = &t->levels[i];
        if (l->group <= 1)
            continue;
        int k = v->n++;
        v->g[k] = l->group;
        v->topo_level[k] = i;
        v->a[k] = l->latency * (l->shape == TOPO_SHAPE_TORUS ? torus_hops(l) : 1);
        v->a_far[k] = l->latency * far_hops(l);
        v->b[k] = (l->shape == TOPO_SHAPE_CLOS ? l->oversub : 1) / l->bw;
        v->links[k] = level_links(l);
        v->soft[k] = !strcmp(l->link, "net") || !strcmp(l->link, "tcp");
        v->stride[k] = s;
        s *= l->group;
    }
    v->stride[v->n] = s;
    v->p = (int)s;
    v->gamma = 1 / t->reduce_bw;
    v->copy = 1 / (COPY_PER_REDUCE * t->reduce_bw);
}

/* Level k of v alone (the phase of a hierarchical composition). */
static void view_level(const struct view *v, int k, struct view *out)
{
    memset(out, 0, sizeof *out);
    out->n = 1;
    out->g[0] = v->g[k];
    out->topo_level[0] = v->topo_level[k];
    out->a[0] = v->a[k];
    out->b[0] = v->b[k];
    out->links[0] = v->links[k];
    out->stride[0] = 1;
    out->stride[1] = out->p = v->g[k];
    out->gamma = v->gamma;
    out->copy = v->copy;
    out->soft[0] = v->soft[k];
}

/* The level a message between positions d apart crosses. */
static int level_of(const struct view *v, long d)
{
    int k = 0;
    while (k + 1 < v->n && v->stride[k + 1] <= d)
        k++;
    return k;
}

/* One message of x bytes to a neighbour on every level at once: the slowest
 * level sets the pace (a ring, a chain, a pairwise step). */
static double slowest(const struct view *v, double x)
{
    double t = 0;
    for (int k = 0; k < v->n; k++)
        t = fmax(t, v->a[k] + x * v->b[k]);
    return t;
}

/* The same with the receiver reducing what arrives: reduction overlaps the
 * arrival (the runtime reduces each piece as it lands), so the slower of
 * the two sets the pace. */
static double slowest_r(const struct view *v, double x)
{
    double t = 0;
    for (int k = 0; k < v->n; k++)
        t = fmax(t, v->a[k] + x * fmax(v->b[k], v->gamma));
    return t;
}

/* A message of x bytes to the partner d positions away (reduced on
 * arrival when reduce is set). */
static double hop_x(const struct view *v, long d, double x, int reduce)
{
    int k = level_of(v, d);
    return v->a[k] + x * (reduce ? fmax(v->b[k], v->gamma) : v->b[k]);
}

static double hop(const struct view *v, long d, double x) { return hop_x(v, d, x, 0); }

/* Direct exchanges start every message at once. Through a kernel network
 * stack (the runtime's TCP levels) each message costs the sender a share of
 * a latency to post, and n-1 flows converging on one port lose some
 * bandwidth to incast; fabrics that offload messages (every level a
 * topology file describes, as the simulator models them) pay neither. */
#define POST_SHARE 0.1
#define INCAST 1.25

/* Everyone sends x bytes to every other rank at once: each level's ports
 * carry the blocks for the peers behind it. */
static double all_at_once(const struct view *v, double x)
{
    double t = 0, lat = 0, post = 0;
    for (int k = 0; k < v->n; k++) {
        double peers = (double)(v->stride[k + 1] - v->stride[k]);
        double incast = v->soft[k] && v->links[k] <= 1 ? INCAST : 1;
        t = fmax(t, incast * peers * x * v->b[k] / v->links[k]);
        lat = fmax(lat, v->a[k]);
        if (v->soft[k])
            post += POST_SHARE * peers * v->a[k];
    }
    return lat + post + t;
}

/* Pipelined reduction reduces each arrived piece of this size (the
 * simulator's reduce_chunk, the runtime executor's receive piece). */
#define REDUCE_PIECE 65536.0

/* Direct reduce-scatter (algos/pairwise_plan.c) of blocks of x bytes: p - 1
 * steps, each sending every peer a chunk of x / (p - 1) at once and
 * reducing as many, one at a time: the chunks arrive together, so the last
 * piece of each is reduced after the transfers end. */
static double direct_reduce(const struct view *v, double x)
{
    double p = v->p, chunk = x / (p - 1);
    if (v->p > DIRECT_CHUNKED_MAX) /* one message per step, as pairwise */
        return (p - 1) * slowest_r(v, x);
    double tail = (p - 1) * fmin(chunk, REDUCE_PIECE) * v->gamma;
    return (p - 1) * fmax(all_at_once(v, chunk) + tail, v->a[0] + x * v->gamma);
}

static int pof2_below(int n)
{
    int p = 1;
    while (p * 2 <= n)
        p *= 2;
    return p;
}

/* Recursive halving (or doubling: the same steps in reverse) over the
 * pof2 participants, step bytes = part * dist of the total, with gamma when
 * reducing. Folding costs a full message each way on the first ranks. */
static double halving(const struct view *v, double total, int reduce, int fold_msgs)
{
    int pof2 = pof2_below(v->p), rem = v->p - pof2;
    double t = 0;
    for (long dist = pof2 / 2; dist >= 1; dist /= 2) {
        double x = total * (double)dist / pof2;
        t += hop_x(v, dist, x, reduce);
    }
    if (rem > 0)
        t += fold_msgs * hop_x(v, 1, total, reduce);
    return t;
}


/* Recursive doubling allreduce of a short vector: every step moves all of
 * it (reduced on arrival), plus the fold's two messages. */
static double doubling_whole(const struct view *v, double m)
{
    int pof2 = pof2_below(v->p);
    double t = 0;
    for (long dist = 1; dist < pof2; dist *= 2)
        t += hop_x(v, dist, m, 1);
    if (v->p > pof2)
        t += 2 * hop_x(v, 1, m, 1);
    return t;
}

/* Binomial tree: log2 p rounds, the round at distance 2^k crossing its level. */
static double tree_rounds(const struct view *v, double x, int reduce)
{
    double t = 0;
    for (long d = 1; d < v->p; d *= 2)
        t += hop_x(v, d, x, reduce);
    return t;
}

/* The dissemination barrier: in round k every rank r signals r + 2^k mod p.
 * A round lasts as long as its slowest signal, and the pairs that wrap
 * around (or straddle a group boundary) cross outer levels than the
 * distance alone suggests: at any distance short of p some pair crosses
 * the outermost level. So each round costs the largest latency among the
 * levels some pair of that round crosses. */
static double dissemination(const struct view *v)
{
    double t = 0;
    for (long d = 1; d < v->p; d *= 2) {
        double worst = 0;
        for (int k = 0; k < v->n; k++) {
            /* some pair differs at level k and agrees above it exactly
             * when it lies inside one level-(k+1) member: forwards (d) or
             * across the wrap (p - d) closer than that member's size */
            long outer = v->stride[k + 1];
            if (k == v->n - 1 || d < outer || v->p - d < outer)
                worst = fmax(worst, v->a[k]);
        }
        t += worst;
    }
    return t;
}

/* Chain broadcast segment of algos/ring_plan.c. */
#define CHAIN_SEGMENT (1u << 20)

static double flat_cost(const struct view *v, coll_kind_t kind, algo_t a, double m)
{
    if (!plan_supports(a, kind))
        return -1;
    if (v->p <= 1)
        return 0;
    double p = v->p;
    switch (kind) {
    case COLL_ALLREDUCE:
        switch (a) {
        case ALGO_RING:
            return (p - 1) * (slowest_r(v, m / p) + slowest(v, m / p));
        case ALGO_RHD:
            if (m <= RHD_DOUBLING_MAX) /* recursive doubling of the whole vector */
                return doubling_whole(v, m);
            return halving(v, m, 1, 1) + halving(v, m, 0, 1);
        case ALGO_TREE:
            return tree_rounds(v, m, 1) + tree_rounds(v, m, 0);
        case ALGO_DIRECT:
            return direct_reduce(v, m / p) + (v->p > DIRECT_CHUNKED_MAX
                                                  ? (p - 1) * slowest(v, m / p)
                                                  : all_at_once(v, m / p));
        default:
            return -1;
        }
    case COLL_ALLGATHER: /* m: one rank's block */
        switch (a) {
        case ALGO_RING:
            return (p - 1) * slowest(v, m);
        case ALGO_RHD:
            return halving(v, m * pof2_below(v->p), 0, 2);
        case ALGO_BRUCK: {
            double t = 0;
            for (long d = 1; d < v->p; d *= 2)
                t += hop(v, d, m * (double)(d * 2 <= v->p ? d : v->p - d));
            return t + p * m * v->copy;
        }
        case ALGO_DIRECT:
            return all_at_once(v, m);
        default:
            return -1;
        }
    case COLL_REDUCE_SCATTER: /* m: one rank's block */
        switch (a) {
        case ALGO_RING:
            return (p - 1) * slowest_r(v, m);
        case ALGO_RHD:
            return halving(v, m * pof2_below(v->p), 1, 2);
        case ALGO_DIRECT:
            return direct_reduce(v, m);
        default:
            return -1;
        }
    case COLL_ALLTOALL: /* m: the block for one peer */
    case COLL_ALLTOALLV:
        switch (a) {
        case ALGO_PAIRWISE:
            return (p - 1) * slowest(v, m);
        case ALGO_BRUCK: {
            if (kind == COLL_ALLTOALLV)
                return -1;
            double t = 0;
            for (long d = 1; d < v->p; d *= 2)
                t += hop(v, d, m * p / 2);
            return t + 2 * p * m * v->copy;
        }
        case ALGO_DIRECT:
            return all_at_once(v, m);
        default:
            return -1;
        }
    case COLL_BROADCAST:
        switch (a) {
        case ALGO_TREE:
            if (m >= TREE_DBT_MIN && v->p >= 3) {
                /* pipelined double binary tree: segments + depth steps, a
                 * rank's port carrying two segments each way per step */
                double seg = (double)TREE_DBT_SEGMENT, nseg = ceil((m - floor(m / 2)) / seg);
                double depth = floor(log2(p - 1)) + 1;
                return (nseg + depth) * slowest(v, 2 * fmin(seg, m / 2));
            }
            return tree_rounds(v, m, 0);
        case ALGO_DIRECT: {
            /* scatter and allgather among the others, pipelined: pieces +
             * 1 steps, each port carrying about one piece per step, spread
             * over the peers as a direct allgather's blocks */
            double pieces = direct_bcast_pieces(v->p, (uint64_t)m);
            return (pieces + 1) * all_at_once(v, m / pieces / (p - 1));
        }
        case ALGO_RING: {
            /* segments of m/p, at most CHAIN_SEGMENT: nseg + p - 2 steps */
            double seg = fmin(ceil(m / p), CHAIN_SEGMENT);
            double nseg = seg > 0 ? ceil(m / seg) : 1;
            return (p - 2 + nseg) * slowest(v, seg);
        }
        default:
            return -1;
        }
    case COLL_REDUCE:
        switch (a) {
        case ALGO_TREE:
            if (m >= TREE_DBT_MIN && v->p >= 3) {
                /* the double binary tree reversed: segments + twice the
                 * depth steps (the left child's sum one step before the
                 * right's), two segments each way per step, reduced */
                double seg = (double)TREE_DBT_SEGMENT, nseg = ceil((m - floor(m / 2)) / seg);
                double depth = floor(log2(p - 1)) + 1;
                return (nseg + 2 * (depth - 1)) * slowest_r(v, 2 * fmin(seg, m / 2));
            }
            return tree_rounds(v, m, 1);
        case ALGO_RING:
            return (p - 1) * (slowest_r(v, m / p) + slowest(v, m / p)) + slowest(v, 0);
        default:
            return -1;
        }
    case COLL_BARRIER:
        if (a != ALGO_DISSEMINATION)
            return -1;
        return dissemination(v);
    default:
        return -1;
    }
}

/* The cheapest flat algorithm for kind on v (honouring exclusions). */
static algo_t best_flat(const struct view *v, coll_kind_t kind, double m,
                        const struct algo_config *cfg, double *cost)
{
    algo_t best = ALGO_COUNT;
    double bc = 0;
    for (int a = ALGO_RING; a < ALGO_HIER; a++) {
        if (cfg && kind < ALGO_NKINDS && (cfg->excluded[kind] >> a & 1))
            continue;
        double c = flat_cost(v, kind, (algo_t)a, m);
        if (c >= 0 && (best == ALGO_COUNT || c < bc)) {
            best = (algo_t)a;
            bc = c;
        }
    }
    if (best == ALGO_COUNT && cfg)
        return best_flat(v, kind, m, NULL, cost);
    *cost = best == ALGO_COUNT ? -1 : bc;
    return best;
}

/* A phase of a composition on level k alone; records its algorithm. */
static double phase(const struct view *v, int k, coll_kind_t kind, double m,
                    struct tuner_choice *d)
{
    struct view one;
    view_level(v, k, &one);
    double c;
    algo_t a = best_flat(&one, kind, m, NULL, &c);
    if (d && d->level_algo[v->topo_level[k]] == ALGO_AUTO)
        d->level_algo[v->topo_level[k]] = a;
    return c;
}

/* Reduce-scatter in and allgather out on level k with one algorithm (a
 * composition names one algorithm per level). */
static double phase_pair(const struct view *v, int k, double blk, struct tuner_choice *d)
{
    struct view one;
    view_level(v, k, &one);
    algo_t best = ALGO_COUNT;
    double bc = 0;
    for (int a = ALGO_RING; a < ALGO_HIER; a++) {
        double rs = flat_cost(&one, COLL_REDUCE_SCATTER, (algo_t)a, blk);
        double ag = flat_cost(&one, COLL_ALLGATHER, (algo_t)a, blk);
        if (rs >= 0 && ag >= 0 && (best == ALGO_COUNT || rs + ag < bc)) {
            best = (algo_t)a;
            bc = rs + ag;
        }
    }
    if (d)
        d->level_algo[v->topo_level[k]] = best;
    return bc;
}

/* ---- the pipelined allreduce (algos/hier_plan.c) ---------------------------- */

/* Least segment sizes the tuner tries for it (hier_args.pipe_min_bytes;
 * the smallest is the plan's default, HIER_PIPE_MIN_BYTES, stored as 0). */
#define PIPE_SEG_MIN_LOG2 20
#define PIPE_SEG_MAX_LOG2 26

static int is_lockstep(algo_t a, coll_kind_t kind, int g, double bytes)
{
    return hier_lockstep_steps(a, kind, g, (uint64_t)bytes, 1) >= 0;
}

/* The lockstep algorithm of each level for a pipelined allreduce: the
 * cheapest phase(s) of one segment. 0 when the vector makes no segments. */
static int pipe_choose(const struct view *v, double m, uint64_t min_bytes, algo_t *level_algo)
{
    uint64_t seg;
    int nseg = hier_pipe_segments(v->g, v->n, (uint64_t)m / 4, 4, min_bytes, &seg);
    if (nseg < 2)
        return 0;
    const int top = v->n - 1;
    double x = (double)seg * 4;
    for (int k = 0; k <= top; k++) {
        struct view one;
        view_level(v, k, &one);
        algo_t best = ALGO_COUNT;
        double bc = 0, blk = x / v->g[k];
        const algo_t cand[] = {ALGO_RING, ALGO_DIRECT, ALGO_RHD};
        for (size_t i = 0; i < sizeof cand / sizeof *cand; i++) {
            double c;
            if (k < top) {
                if (!is_lockstep(cand[i], COLL_REDUCE_SCATTER, v->g[k], blk) ||
                    !is_lockstep(cand[i], COLL_ALLGATHER, v->g[k], blk))
                    continue;
                c = flat_cost(&one, COLL_REDUCE_SCATTER, cand[i], blk) +
                    flat_cost(&one, COLL_ALLGATHER, cand[i], blk);
            } else {
                if (!is_lockstep(cand[i], COLL_ALLREDUCE, v->g[k], x))
                    continue;
                c = flat_cost(&one, COLL_ALLREDUCE, cand[i], x);
            }
            if (c >= 0 && (best == ALGO_COUNT || c < bc)) {
                best = cand[i];
                bc = c;
            }
        }
        if (best == ALGO_COUNT)
            return 0;
        level_algo[v->topo_level[k]] = best;
        if (k < top)
            x = blk;
    }
    return 1;
}

/* The pipelined allreduce with these level algorithms, or -1 when the plan
 * would not pipeline them (a level not in lockstep, or too short a vector).
 * Segment i runs position s - i of its T phase steps in slot s (one plan
 * step), so slot s holds the window of positions [s - nseg + 1, s]: it
 * lasts as long as the busiest level's bytes in the window take (or the
 * rank's reductions there), plus the slowest latency among the levels
 * present. Each phase's byte time is spread evenly over its steps. Then
 * the tail after the segments, unpipelined. */
#define PIPE_MAX_POS 1024
static double pipelined_allreduce(const struct view *v, double m, uint64_t min_bytes,
                                  const algo_t *level_algo)
{
    uint64_t seg;
    int nseg = hier_pipe_segments(v->g, v->n, (uint64_t)m / 4, 4, min_bytes, &seg);
    if (nseg < 2)
        return -1;
    const int top = v->n - 1;
    static _Thread_local double pos_bytes[PIPE_MAX_POS], pos_red[PIPE_MAX_POS];
    static _Thread_local int pos_level[PIPE_MAX_POS];
    int T = 0;
    double x = (double)seg * 4, tail = 0, rest = m - nseg * x;
    double blks[TOPO_MAX_LEVELS];
    /* appends a phase of s steps on level k: c seconds, red bytes reduced */
    #define ADD_PHASE(k, s, c, red)                                              \
        do {                                                                     \
            if ((s) < 0 || (c) < 0 || T + (s) > PIPE_MAX_POS)                    \
                return -1;                                                       \
            for (int j_ = 0; j_ < (s); j_++, T++) {                              \
                pos_level[T] = (k);                                              \
                pos_bytes[T] = fmax(0, (c) - (s) * v->a[k]) / (s);               \
                pos_red[T] = (red) * v->gamma / (s);                             \
            }                                                                    \
        } while (0)
    for (int k = 0; k < top; k++) { /* reduce-scatters in */
        struct view one;
        view_level(v, k, &one);
        algo_t a = level_algo[v->topo_level[k]];
        double blk = x / v->g[k], g = v->g[k];
        blks[k] = blk;
        int s = hier_lockstep_steps(a, COLL_REDUCE_SCATTER, v->g[k], (uint64_t)blk, 1);
        ADD_PHASE(k, s, flat_cost(&one, COLL_REDUCE_SCATTER, a, blk), (g - 1) * blk);
        tail += flat_cost(&one, COLL_REDUCE_SCATTER, a, rest / g) +
                flat_cost(&one, COLL_ALLGATHER, a, rest / g);
        rest /= g;
        x = blk;
    }
    {
        struct view one;
        view_level(v, top, &one);
        algo_t a = level_algo[v->topo_level[top]];
        int s = hier_lockstep_steps(a, COLL_ALLREDUCE, v->g[top], (uint64_t)x, 1);
        ADD_PHASE(top, s, flat_cost(&one, COLL_ALLREDUCE, a, x), (v->g[top] - 1) / v->g[top] * x);
        if (rest >= 1)
            tail += flat_cost(&one, COLL_ALLREDUCE, a, rest);
    }
    for (int k = top - 1; k >= 0; k--) { /* allgathers out */
        struct view one;
        view_level(v, k, &one);
        algo_t a = level_algo[v->topo_level[k]];
        int s = hier_lockstep_steps(a, COLL_ALLGATHER, v->g[k], (uint64_t)blks[k], 1);
        ADD_PHASE(k, s, flat_cost(&one, COLL_ALLGATHER, a, blks[k]), 0);
    }
    #undef ADD_PHASE
    /* a segment size other than the plan's default only where the steady
     * state holds the whole sequence (nseg >= 2T): the byte time spread
     * evenly over a phase's steps is true on average only there (with
     * fewer, metax-c550-128's direct phases simulate 27% slower at 16 MiB
     * than priced, and the choice would lose) */
    if (min_bytes && nseg < 2 * T)
        return -1;
    double total = 0;
    for (int slot = 0; slot < nseg + T - 1; slot++) {
        int lo = slot - nseg + 1 > 0 ? slot - nseg + 1 : 0, hi = slot < T - 1 ? slot : T - 1;
        double load[TOPO_MAX_LEVELS] = {0}, red = 0, busiest = 0, lat = 0;
        for (int j = lo; j <= hi; j++) {
            load[pos_level[j]] += pos_bytes[j];
            red += pos_red[j];
            lat = fmax(lat, v->a[pos_level[j]]);
        }
        for (int k = 0; k <= top; k++)
            busiest = fmax(busiest, load[k]);
        total += fmax(busiest, red) + lat;
    }
    return total + (m - nseg * (double)seg * 4 >= 1 ? tail : 0);
}

/* Allgather with direct on every level (algos/hier_plan.c): outermost level
 * first, level k sending the blocks a rank holds (one per member of the
 * levels above) to each of its members; blocks cut into pieces that
 * pipeline, one level per slot and piece, no reordering copy. */
static double direct_allgather_levels(const struct view *v, double m)
{
    const int top = v->n - 1;
    int pieces = hier_ag_pieces(v->p, v->n, (uint64_t)m / 4, 4, 0);
    double piece = m / pieces, held = 1, total = 0;
    double bytes[TOPO_MAX_LEVELS];
    for (int k = top; k >= 0; k--) {
        struct view one;
        view_level(v, k, &one);
        bytes[k] = fmax(0, all_at_once(&one, held * piece) - v->a[k]);
        held *= v->g[k];
    }
    for (int slot = 0; slot < pieces + top; slot++) {
        double busiest = 0, lat = 0;
        for (int k = top; k >= 0; k--) {
            int pc = slot - (top - k);
            if (pc < 0 || pc >= pieces)
                continue;
            busiest = fmax(busiest, bytes[k]);
            lat = fmax(lat, v->a[k]);
        }
        total += busiest + lat;
    }
    return total;
}

/* The broadcast with direct on every level (algos/hier_bcast_plan.c),
 * slot by slot: piece i runs its step s in slot i + s. Ranks take different
 * roles (0 the root, 1 the rest of its level-0 group, t + 1 the ranks that
 * receive across level t and allgather below it), and each step loads some
 * roles' ports at one level, out and in apart; a slot lasts as long as the
 * busiest port of any role over the steps in flight, plus the slowest
 * latency among them. */
#define BCAST_MAX_STEPS 64
/* One step of a pipelined multi-level plan: its level and, per role,
 * seconds of its ports out and in and of its reductions (none in a
 * broadcast). */
struct slot_step {
    int level;
    double out[TOPO_MAX_LEVELS + 1], in[TOPO_MAX_LEVELS + 1], red[TOPO_MAX_LEVELS + 1];
};

/* Pieces x steps of D, piece i's step s in slot i + s: a slot lasts as long
 * as the busiest port or reducing role over the steps in flight, plus the
 * slowest of their levels' latencies lat[level]. */
static double price_slots(const struct view *v, const struct slot_step *st, int D, int pieces,
                          const double *lat_of)
{
    double total = 0;
    for (int slot = 0; slot < pieces + D - 1; slot++) {
        int lo = slot - pieces + 1 > 0 ? slot - pieces + 1 : 0, hi = slot < D - 1 ? slot : D - 1;
        double out[TOPO_MAX_LEVELS + 1][TOPO_MAX_LEVELS] = {{0}};
        double in[TOPO_MAX_LEVELS + 1][TOPO_MAX_LEVELS] = {{0}};
        double red[TOPO_MAX_LEVELS + 1] = {0};
        double busiest = 0, lat = 0;
        for (int s = lo; s <= hi; s++) {
            const int k = st[s].level;
            for (int r = 0; r <= v->n; r++) {
                out[r][k] += st[s].out[r];
                in[r][k] += st[s].in[r];
                red[r] += st[s].red[r];
                busiest = fmax(busiest, fmax(fmax(out[r][k], in[r][k]), red[r]));
            }
            lat = fmax(lat, lat_of[k]);
        }
        total += busiest + lat;
    }
    return total;
}

static int bcast_steps(const struct view *v, int t, double x, struct slot_step *st, int n)
{
    if (t == 0) {
        double g = v->g[0], all = x * v->b[0] / v->links[0];
        if (n + 2 > BCAST_MAX_STEPS)
            return -1;
        memset(&st[n], 0, 2 * sizeof *st);
        st[n].out[0] = all;                       /* the root scatters */
        st[n].in[1] = all / (g - 1); /* a port's (a full mesh's links') share */
        st[n + 1].in[0] = all;                    /* slices return to the root */
        st[n + 1].out[1] = all;
        st[n + 1].in[1] = (g - 2) / (g - 1) * all;
        return n + 2;
    }
    n = bcast_steps(v, t - 1, x, st, n);
    if (n < 0 || n + 2 + t > BCAST_MAX_STEPS)
        return -1;
    memset(&st[n], 0, (size_t)(2 + t) * sizeof *st);
    double g = v->g[t], slice = x / (double)v->stride[t], sb = slice * v->b[t] / v->links[t];
    st[n].level = st[n + 1].level = t;
    for (int r = 0; r <= t; r++) /* the root's member sends each slice across */
        st[n].out[r] = sb;
    st[n].in[t + 1] = sb / (g - 1);
    st[n + 1].out[t + 1] = st[n + 1].in[t + 1] = (g - 2) / (g - 1) * sb;
    n += 2;
    double held = 1;
    for (int k = t - 1; k >= 0; k--, n++) { /* the others allgather, outermost first */
        st[n].level = k;
        st[n].out[t + 1] = st[n].in[t + 1] = held * (v->g[k] - 1) * slice * v->b[k] / v->links[k];
        held *= v->g[k];
    }
    return n;
}

static double pipelined_bcast(const struct view *v, double m)
{
    struct slot_step st[BCAST_MAX_STEPS];
    const int D = bcast_steps(v, v->n - 1, m / hier_bcast_pieces((uint64_t)m, 0), st, 0);
    const int pieces = hier_bcast_pieces((uint64_t)m, 0);
    if (D < 0 || D != hier_bcast_steps(v->n))
        return -1;
    return price_slots(v, st, D, pieces, v->a);
}

/* The reduce with direct on every level (algos/hier_reduce_plan.c), slot
 * by slot as the broadcast: piece i runs its step s in slot i + s. Roles:
 * t + 1 the ranks outside the root's level-t member (they reduce-scatter
 * inside it, then across level t), t the ranks that take in sums across
 * level t and above (0 the root); each step loads some roles' ports at one
 * level, out and in apart, and their reductions; a slot lasts as long as
 * the busiest port or reducing rank over the steps in flight, plus the
 * slowest latency among them (to a level's farthest member: a step's
 * chunks go to all its peers). */
/* Seconds for a rank to move x bytes at level k in one step of a
 * reduce-scatter among m: chunked over every link up to
 * DIRECT_CHUNKED_MAX participants, else to one peer. */
static double rs_port(const struct view *v, int k, int m, double x)
{
    return x * v->b[k] / (m <= DIRECT_CHUNKED_MAX ? fmin(v->links[k], m - 1) : 1);
}

static int reduce_steps(const struct view *v, int t, double x, struct slot_step *st, int n,
                        int max)
{
    for (int k = 0; k < t; k++) { /* the others reduce-scatter inside, innermost first */
        double own = x / (double)v->stride[k + 1];
        for (int s = 0; s < v->g[k] - 1; s++, n++) {
            if (n >= max)
                return -1;
            memset(&st[n], 0, sizeof *st);
            st[n].level = k;
            st[n].out[t + 1] = st[n].in[t + 1] = rs_port(v, k, v->g[k], own);
            st[n].red[t + 1] = own * v->gamma;
        }
    }
    const int m = v->g[t] - 1;
    const double whole = x / (double)v->stride[t], own = whole / m;
    for (int s = 0; s <= m - 1; s++, n++) { /* across: reduce-scatter, then the sums go in */
        if (n >= max)
            return -1;
        memset(&st[n], 0, sizeof *st);
        st[n].level = t;
        if (s < m - 1) {
            st[n].out[t + 1] = st[n].in[t + 1] = rs_port(v, t, m, own);
            st[n].red[t + 1] = own * v->gamma;
            continue;
        }
        st[n].out[t + 1] = own * v->b[t] / v->links[t]; /* the links the others' chunks left */
        for (int r = 0; r <= t; r++) {
            st[n].in[r] = whole * v->b[t] / fmin(v->links[t], m);
            st[n].red[r] = whole * v->gamma;
        }
    }
    return t > 0 ? reduce_steps(v, t - 1, x, st, n, max) : n;
}

static double pipelined_reduce(const struct view *v, double m, uint64_t min_bytes)
{
    int g[TOPO_MAX_LEVELS], D;
    if (v->n < 2) /* one level: hier builds the flat plan, and direct has no reduce */
        return -1;
    for (int k = 0; k < v->n; k++)
        g[k] = v->g[k];
    D = hier_reduce_steps(v->n, g);
    struct slot_step *st = malloc((size_t)D * sizeof *st);
    const int pieces = hier_reduce_pieces((uint64_t)m, min_bytes);
    if (!st || reduce_steps(v, v->n - 1, m / pieces, st, 0, D) != D) {
        free(st);
        return -1;
    }
    const double total = price_slots(v, st, D, pieces, v->a_far); /* a step reaches all its peers */
    free(st);
    return total;
}

/* The pipelined reduce_scatter (algos/hier_plan.c) with these level
 * algorithms, or -1 when the plan would not pipeline them. Piece i of every
 * block is reduce-scattered innermost level first, the first level reading
 * the input where it lies (no copy); slot s holds positions
 * [s - pieces + 1, s], priced as the allreduce's. m: one rank's block. */
static double pipelined_rs(const struct view *v, double m, uint64_t min_bytes,
                           const algo_t *level_algo)
{
    int pieces = hier_rs_pieces(v->g, v->n, (uint64_t)m / 4, 4, min_bytes);
    if (pieces < 2)
        return -1;
    const int top = v->n - 1;
    double piece = m / pieces, w = piece * v->p;
    int T = 0, first[TOPO_MAX_LEVELS + 1];
    double bytes[TOPO_MAX_LEVELS], red[TOPO_MAX_LEVELS];
    for (int k = 0; k <= top; k++) {
        struct view one;
        view_level(v, k, &one);
        w /= v->g[k]; /* one member's share at level k */
        algo_t a = level_algo[v->topo_level[k]];
        int s = hier_lockstep_steps(a, COLL_REDUCE_SCATTER, v->g[k], (uint64_t)w, 1);
        double c = flat_cost(&one, COLL_REDUCE_SCATTER, a, w);
        if (s <= 0 || c < 0)
            return -1;
        first[k] = T;
        T += s;
        bytes[k] = fmax(0, c - s * v->a[k]) / s;
        red[k] = (v->g[k] - 1) * w * v->gamma / s;
        /* the first level reads the input in rank order, one message per
         * rank block and piece: they land together, and the simulator
         * reduces a rank's messages one at a time, so its reductions
         * follow its transfers (direct's price has its chunks' tails) */
        if (k == 0 && a != ALGO_DIRECT)
            bytes[k] += red[k];
    }
    first[top + 1] = T;
    if (min_bytes && pieces < 2 * T) /* as the allreduce's segments: steady state only */
        return -1;
    double total = 0;
    for (int slot = 0; slot < pieces + T - 1; slot++) {
        int lo = slot - pieces + 1 > 0 ? slot - pieces + 1 : 0, hi = slot < T - 1 ? slot : T - 1;
        double load[TOPO_MAX_LEVELS] = {0}, r = 0, busiest = 0, lat = 0;
        for (int k = 0; k <= top; k++) {
            int a = first[k] > lo ? first[k] : lo;
            int b = first[k + 1] - 1 < hi ? first[k + 1] - 1 : hi;
            if (a > b)
                continue;
            load[k] = (b - a + 1) * bytes[k];
            r += (b - a + 1) * red[k];
            lat = fmax(lat, v->a[k]);
            busiest = fmax(busiest, load[k]);
        }
        total += fmax(busiest, r) + lat;
    }
    double rest = m - pieces * floor(piece);
    return total + (rest >= 1 ? rest / m * total / pieces : 0);
}

/* The lockstep algorithm of each level for a pipelined reduce_scatter: the
 * cheapest phase of one piece. 0 when the vector makes no pieces. */
static int rs_choose(const struct view *v, double m, uint64_t min_bytes, algo_t *level_algo)
{
    int pieces = hier_rs_pieces(v->g, v->n, (uint64_t)m / 4, 4, min_bytes);
    if (pieces < 2)
        return 0;
    double w = m / pieces * v->p;
    for (int k = 0; k < v->n; k++) {
        struct view one;
        view_level(v, k, &one);
        w /= v->g[k];
        algo_t best = ALGO_COUNT;
        double bc = 0;
        const algo_t cand[] = {ALGO_RING, ALGO_DIRECT, ALGO_RHD};
        for (size_t i = 0; i < sizeof cand / sizeof *cand; i++) {
            if (hier_lockstep_steps(cand[i], COLL_REDUCE_SCATTER, v->g[k], (uint64_t)w, 1) < 0)
                continue;
            double c = flat_cost(&one, COLL_REDUCE_SCATTER, cand[i], w);
            if (c >= 0 && (best == ALGO_COUNT || c < bc)) {
                best = cand[i];
                bc = c;
            }
        }
        if (best == ALGO_COUNT)
            return 0;
        level_algo[v->topo_level[k]] = best;
    }
    return 1;
}

static int hier_kind(coll_kind_t kind)
{
    return kind == COLL_ALLREDUCE || kind == COLL_ALLGATHER || kind == COLL_REDUCE_SCATTER ||
           kind == COLL_ALLTOALL || kind == COLL_BROADCAST || kind == COLL_REDUCE ||
           kind == COLL_BARRIER;
}

/* Records in d (when given) the per-level algorithms of choice from, for
 * the view's levels 0..top. */
static void keep_levels(const struct view *v, int top, const struct tuner_choice *from,
                        struct tuner_choice *d)
{
    if (d)
        for (int k = 0; k <= top; k++)
            d->level_algo[v->topo_level[k]] = from->level_algo[v->topo_level[k]];
}

/* Plans composed over the topology's levels (algos/hier_plan.h). */
static double plan_hier_cost(const struct view *v, coll_kind_t kind, double m,
                             struct tuner_choice *d)
{
    double t = 0, p = v->p;
    int top = v->n - 1;
    switch (kind) {
    case COLL_ALLREDUCE: {
        /* the best algorithm per level, phases one after another (priced
         * pipelined when they all move in lockstep: the plan then
         * pipelines them), against lockstep algorithms on every level,
         * pipelined */
        struct tuner_choice seq = {0}, pipe = {0};
        double x = m;
        for (int k = 0; k < top; k++) { /* reduce-scatter in, allgather out */
            double blk = x / v->g[k];
            t += phase_pair(v, k, blk, &seq);
            x = blk;
        }
        t += phase(v, top, COLL_ALLREDUCE, x, &seq);
        /* pipelined, the segment chosen too: each slot pays the slowest
         * latency, so more segments shorten the fill and drain but add
         * slots (8gpu-roce400 at 256 MiB: 8 MiB, 32 segments, is best) */
        uint64_t seg_min = 0;
        for (int lg = PIPE_SEG_MIN_LOG2; lg <= PIPE_SEG_MAX_LOG2; lg++) {
            uint64_t mb = lg == PIPE_SEG_MIN_LOG2 ? 0 : (uint64_t)1 << lg;
            double tp = pipelined_allreduce(v, m, mb, seq.level_algo);
            if (tp >= 0 && (mb == 0 || tp < t)) { /* the plan pipelines these by default */
                t = tp;
                seg_min = mb;
            }
            if (pipe_choose(v, m, mb, pipe.level_algo)) {
                double tq = pipelined_allreduce(v, m, mb, pipe.level_algo);
                if (tq >= 0 && tq < t) {
                    t = tq;
                    seg_min = mb;
                    seq = pipe;
                }
            }
        }
        keep_levels(v, top, &seq, d);
        if (d)
            d->segment = (size_t)seg_min;
        return t;
    }
    case COLL_ALLGATHER:
    case COLL_REDUCE_SCATTER: {
        /* allgather outermost level first (the slow links carry one block
         * per rank), blocks growing inward; reduce_scatter the mirror:
         * innermost first on the whole input, blocks shrinking outward */
        double blk = m;
        if (kind == COLL_ALLGATHER) {
            struct tuner_choice seq = {0};
            int all_direct = 1;
            for (int k = top; k >= 0; k--) {
                t += phase(v, k, kind, blk, &seq);
                all_direct &= seq.level_algo[v->topo_level[k]] == ALGO_DIRECT;
                blk *= v->g[k];
            }
            t += top > 0 ? p * m * v->copy : 0; /* into rank order */
            double td = direct_allgather_levels(v, m);
            if (all_direct || td < t) { /* direct everywhere is the rank-order plan */
                t = td;
                for (int k = 0; k <= top; k++)
                    seq.level_algo[v->topo_level[k]] = ALGO_DIRECT;
            }
            keep_levels(v, top, &seq, d);
            return t;
        }
        /* reduce_scatter: the best algorithm per level, phases in sequence
         * (priced pipelined when all happen to be lockstep: the plan then
         * pipelines them), against lockstep algorithms everywhere, pipelined */
        struct tuner_choice seq = {0}, pipe = {0};
        blk = m * p;
        for (int k = 0; k <= top; k++) {
            blk /= v->g[k];
            t += phase(v, k, kind, blk, &seq);
        }
        double tp = pipelined_rs(v, m, 0, seq.level_algo);
        if (tp >= 0)
            t = tp;
        if (rs_choose(v, m, 0, pipe.level_algo)) {
            double tq = pipelined_rs(v, m, 0, pipe.level_algo);
            if (tq >= 0 && tq < t) {
                t = tq;
                seq = pipe;
            }
        }
        keep_levels(v, top, &seq, d);
        return t;
    }
    case COLL_ALLTOALL:
        /* level k exchanges blocks for all positions behind each member */
        for (int k = 0; k <= top; k++)
            t += phase(v, k, COLL_ALLTOALL, m * p / v->g[k], d) + p * m * v->copy;
        return t;
    case COLL_BROADCAST: {
        /* level by level, against direct on every level (the plan then
         * runs the pipelined broadcast of algos/hier_bcast_plan.c) */
        struct tuner_choice seq = {0};
        int all_direct = 1;
        for (int k = top; k >= 0; k--) {
            t += phase(v, k, kind, m, &seq);
            all_direct &= seq.level_algo[v->topo_level[k]] == ALGO_DIRECT;
        }
        double tp = pipelined_bcast(v, m);
        if (tp >= 0 && (all_direct || tp < t)) {
            t = tp;
            for (int k = 0; k <= top; k++)
                seq.level_algo[v->topo_level[k]] = ALGO_DIRECT;
        }
        keep_levels(v, top, &seq, d);
        return t;
    }
    case COLL_REDUCE: {
        /* level by level, against direct on every level (the plan then
         * runs the pipelined reduce of algos/hier_reduce_plan.c) */
        struct tuner_choice seq = {0};
        for (int k = top; k >= 0; k--)
            t += phase(v, k, kind, m, &seq);
        /* the piece chosen too: more pieces shorten the fill and drain
         * (about one slot per step of a piece) but each slot pays a latency */
        uint64_t piece = 0;
        for (int lg = PIPE_SEG_MAX_LOG2; lg >= PIPE_SEG_MIN_LOG2; lg--) { /* ties: larger */
            double tp = pipelined_reduce(v, m, (uint64_t)1 << lg);
            if (tp >= 0 && tp < t) {
                t = tp;
                piece = (uint64_t)1 << lg;
            }
        }
        if (piece)
            for (int k = 0; k <= top; k++)
                seq.level_algo[v->topo_level[k]] = ALGO_DIRECT;
        keep_levels(v, top, &seq, d);
        if (d) /* named only where it differs from the plan's default */
            d->segment = hier_reduce_pieces((uint64_t)m, piece) ==
                                 hier_reduce_pieces((uint64_t)m, 0)
                             ? 0
                             : (size_t)piece;
        return t;
    }
    case COLL_BARRIER:
        for (int k = 0; k <= top; k++)
            t += phase(v, k, COLL_BARRIER, 0, d);
        return t;
    default:
        return -1;
    }
}

/* Segment sizes the node-aware allreduce may pipeline with (64 KiB .. 64 MiB). */
#define SEGMENT_MIN_LOG2 16
#define SEGMENT_MAX_LOG2 26

/* The runtime's node-aware allreduce (src/coll_net.c hier_allreduce): in
 * segments, the network allreduce of segment k runs while shared memory
 * reduce-scatters segment k+1 and allgathers segment k-1. Per segment of x
 * bytes: rs = shared-memory reduce-scatter, net = the allreduce of one
 * rank's slice across hosts, ag = shared-memory allgather; the pipeline
 * takes rs + ag + nseg * max(net, rs + ag). Chooses the segment (the chunk
 * size decision) that minimizes it, or none (one segment). */
static double shm_hier_allreduce(const struct view *v, const struct tuner_shm *s, double m,
                                 struct tuner_choice *d)
{
    double P = (double)v->stride[v->n - 1];
    double best = -1;
    size_t best_seg = 0;
    for (int e = SEGMENT_MIN_LOG2; e <= SEGMENT_MAX_LOG2 + 1; e++) {
        /* the last candidate is "no segments": the whole vector at once */
        double x = e <= SEGMENT_MAX_LOG2 ? fmin(m, (double)((size_t)1 << e)) : m;
        double nseg = x > 0 ? ceil(m / x) : 1;
        double rs = (P - 1) / P * x * fmax(s->beta, v->gamma) + s->alpha;
        double ag = (P - 1) / P * x * s->beta + s->alpha;
        double net = phase(v, v->n - 1, COLL_ALLREDUCE, x / P, NULL);
        double t = nseg > 1 ? rs + ag + nseg * fmax(net, rs + ag) : rs + net + ag;
        if (best < 0 || t < best) {
            best = t;
            best_seg = e <= SEGMENT_MAX_LOG2 && x < m ? (size_t)x : 0;
        }
        if (x >= m)
            break;
    }
    if (d) {
        d->segment = best_seg;
        phase(v, v->n - 1, COLL_ALLREDUCE, (best_seg ? (double)best_seg : m) / P, d);
    }
    return best;
}

/* The runtime's node-aware composition: shared memory among the ranks of a
 * host (all levels but the outermost), the network across hosts. */
static double shm_hier_cost(const struct view *v, const struct tuner_shm *s, coll_kind_t kind,
                            double m, struct tuner_choice *d)
{
    double P = (double)v->stride[v->n - 1], H = v->g[v->n - 1];
    double local;
    coll_kind_t across = kind;
    double x = m;
    switch (kind) {
    case COLL_ALLREDUCE:
        return shm_hier_allreduce(v, s, m, d);
    case COLL_ALLGATHER:
        local = P * H * m * s->beta * 2 + s->alpha;
        break;
    case COLL_REDUCE_SCATTER:
        local = P * H * m * (2 * s->beta + v->gamma) + s->alpha;
        break;
    case COLL_ALLTOALL:
        x = P * m;
        local = 4 * P * H * m * s->beta + s->alpha;
        break;
    case COLL_BROADCAST:
    case COLL_REDUCE:
        local = m * (s->beta + (kind == COLL_REDUCE ? v->gamma : 0)) + s->alpha;
        break;
    case COLL_BARRIER:
        local = 2 * s->alpha;
        break;
    default:
        return -1;
    }
    return local + phase(v, v->n - 1, across, x, d);
}

/* ---- the bandwidth bound ------------------------------------------------------ */

/* Mean hops from a member of level k to another member by a shortest route. */
static double mean_hops(const struct topo *t, const struct view *v, int k)
{
    const struct topo_level *l = &t->levels[v->topo_level[k]];
    double g = v->g[k];
    if (l->shape == TOPO_SHAPE_TORUS) /* torus_hops averages over all pairs, self included */
        return fmax(1, torus_hops(l) * g / (g - 1));
    if (l->shape == TOPO_SHAPE_RING) {
        double h = 0;
        for (int j = 1; j < v->g[k]; j++)
            h += j < v->g[k] - j ? j : v->g[k] - j;
        return h / (g - 1);
    }
    return 1;
}

double tuner_bound(const struct topo *t, coll_kind_t kind, size_t bytes, int *limit)
{
    struct view v;
    view_of(t, &v);
    if (limit)
        *limit = -1;
    if (v.n == 0 || v.p <= 1)
        return 0;
    const double p = v.p, m = (double)bytes;
    double whole; /* the vector an ideal allreduce, reduce-scatter, ... works on */
    switch (kind) {
    case COLL_ALLREDUCE:
    case COLL_BROADCAST:
    case COLL_REDUCE: whole = m; break;
    case COLL_ALLGATHER:
    case COLL_REDUCE_SCATTER: whole = m * p; break;
    case COLL_ALLTOALL:
    case COLL_ALLTOALLV: whole = m * p; break;
    default: return -1;
    }
    int reduces = kind == COLL_ALLREDUCE || kind == COLL_REDUCE_SCATTER || kind == COLL_REDUCE;
    double best = reduces ? (p - 1) / p * whole * v.gamma : 0;
    for (int k = 0; k < v.n; k++) {
        double g = v.g[k], below = (double)v.stride[k], vol;
        switch (kind) {
        case COLL_ALLREDUCE: /* reduce-scatter in, allgather out: the shard below */
            vol = 2 * (g - 1) / g * whole / below;
            break;
        case COLL_ALLGATHER:
        case COLL_REDUCE_SCATTER:
            vol = (g - 1) / g * whole / below;
            break;
        case COLL_ALLTOALL:
        case COLL_ALLTOALLV: /* the blocks for the members behind this level, hop by hop */
            vol = m * (double)(v.stride[k + 1] - v.stride[k]) * mean_hops(t, &v, k);
            break;
        default: /* broadcast, reduce: outermost, a pipeline of members each
                  * taking the vector through all its ranks' ports; inside,
                  * the allgather (reduce-scatter) of the pieces */
            vol = k == v.n - 1 ? whole / below : (g - 1) / g * whole / below;
            break;
        }
        double time = vol * v.b[k] / v.links[k];
        if (time > best) {
            best = time;
            if (limit)
                *limit = v.topo_level[k];
        }
    }
    return best;
}

double tuner_busbw(const struct topo *t, coll_kind_t kind, size_t bytes, double seconds)
{
    double p = t->nranks, s = (double)bytes, f = 1;
    switch (kind) {
    case COLL_ALLREDUCE: f = 2 * (p - 1) / p; break;
    case COLL_ALLGATHER:
    case COLL_REDUCE_SCATTER:
    case COLL_ALLTOALL:
    case COLL_ALLTOALLV: s *= p; f = (p - 1) / p; break;
    default: break;
    }
    return seconds > 0 ? s / seconds * f / 1e9 : 0;
}

algo_t tuner_level_best(const struct topo *t, int level, coll_kind_t kind, size_t bytes,
                        const struct algo_config *cfg)
{
    struct view v, one;
    view_of(t, &v);
    int k = 0;
    while (k + 1 < v.n && v.topo_level[k] < level)
        k++;
    view_level(&v, k, &one);
    double c;
    algo_t a = best_flat(&one, kind, (double)bytes, cfg, &c);
    return a == ALGO_COUNT ? ALGO_RING : a;
}

void tuner_topo_constraints(const struct topo *t, struct algo_config *cfg)
{
    int identity = 1;
    for (int r = 0; r < t->nranks; r++)
        identity &= t->rank_pos[r] == r;
    if (identity)
        return;
    const coll_kind_t blocks[] = {COLL_ALLGATHER, COLL_REDUCE_SCATTER, COLL_ALLTOALL};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        cfg->excluded[blocks[i]] |= 1u << ALGO_HIER;
        if (cfg->forced[blocks[i]] == ALGO_HIER)
            cfg->forced[blocks[i]] = ALGO_AUTO;
    }
}

int tuner_hier_possible(const struct topo *t, const struct tuner_shm *shm, coll_kind_t kind)
{
    struct view v;
    view_of(t, &v);
    (void)shm;
    return hier_kind(kind) && v.n >= 2;
}

double tuner_cost(const struct topo *t, const struct tuner_shm *shm, coll_kind_t kind, algo_t algo,
                  size_t bytes, struct tuner_choice *detail)
{
    struct view v;
    view_of(t, &v);
    if (detail) {
        memset(detail, 0, sizeof *detail);
        detail->algo = algo;
    }
    double c;
    if (algo == ALGO_HIER) {
        if (!tuner_hier_possible(t, shm, kind))
            return -1;
        c = shm && shm->present ? shm_hier_cost(&v, shm, kind, (double)bytes, detail)
                                : plan_hier_cost(&v, kind, (double)bytes, detail);
    } else {
        c = flat_cost(&v, kind, algo, (double)bytes);
    }
    if (detail)
        detail->predicted = c;
    return c;
}

#define HIER_MARGIN 1.02

static void choose(struct tuner_choice *out, const struct topo *t, const struct tuner_shm *shm,
                   const struct algo_config *cfg, const struct tuner_rule *rules, int nrules,
                   coll_kind_t kind, size_t bytes)
{
    algo_t want = cfg ? cfg->forced[kind] : ALGO_AUTO;
    for (int i = 0; want == ALGO_AUTO && i < nrules; i++)
        if (rules[i].kind == kind && bytes >= rules[i].min_bytes && bytes <= rules[i].max_bytes)
            want = rules[i].algo;
    if (want != ALGO_AUTO && tuner_cost(t, shm, kind, want, bytes, out) >= 0)
        return;
    /* the model: cheapest allowed candidate; a composition must beat the
     * best flat algorithm by HIER_MARGIN, so that near-ties (where the model
     * cannot tell them apart) keep the simpler one and the table does not
     * flip between the two from one size to the next */
    struct tuner_choice c, hier = {0};
    int have = 0, have_hier = 0;
    for (int a = ALGO_RING; a < ALGO_COUNT; a++) {
        if (cfg && (cfg->excluded[kind] >> a & 1))
            continue;
        if (tuner_cost(t, shm, kind, (algo_t)a, bytes, &c) < 0)
            continue;
        if (a == ALGO_HIER) {
            hier = c;
            have_hier = 1;
        } else if (!have || c.predicted < out->predicted) {
            *out = c;
            have = 1;
        }
    }
    if (have_hier && (!have || hier.predicted * HIER_MARGIN < out->predicted)) {
        *out = hier;
        have = 1;
    }
    if (!have) /* everything excluded that the topology allows: ignore exclusions */
        for (int a = ALGO_RING; a < ALGO_COUNT; a++)
            if (tuner_cost(t, shm, kind, (algo_t)a, bytes, &c) >= 0 &&
                (!have || c.predicted < out->predicted)) {
                *out = c;
                have = 1;
            }
}

void tuner_build(struct tuner *tu, const struct topo *t, const struct tuner_shm *shm,
                 const struct algo_config *cfg, const struct tuner_rule *rules, int nrules)
{
    memset(tu, 0, sizeof *tu);
    for (int k = 0; k < ALGO_NKINDS; k++)
        for (int b = 0; b < TUNER_NBUCKETS; b++)
            choose(&tu->table[k][b], t, shm, cfg, rules, nrules, (coll_kind_t)k,
                   k == COLL_BARRIER ? 0 : (size_t)1 << b);
}

static int bucket_of(size_t bytes)
{
    if (bytes <= 1)
        return 0;
    /* nearest power of two in log scale: round log2(bytes) */
    int b = 63 - __builtin_clzll((unsigned long long)bytes);
    if (b + 1 < 64 && bytes - ((size_t)1 << b) > ((size_t)1 << b) * 0.41421356)
        b++;
    return b < TUNER_NBUCKETS ? b : TUNER_NBUCKETS - 1;
}

const struct tuner_choice *tuner_lookup(const struct tuner *tu, coll_kind_t kind, size_t bytes)
{
    if (kind >= ALGO_NKINDS)
        kind = COLL_ALLREDUCE;
    return &tu->table[kind][kind == COLL_BARRIER ? 0 : bucket_of(bytes)];
}

chorus_result_t tuner_layout_topo(int nhosts, int ppn, int nranks, const struct tuner_link *net,
                                  double reduce_bw, struct topo **out)
{
    *out = NULL;
    struct topo *t = calloc(1, sizeof *t);
    if (!t)
        return CHORUS_SYSTEM_ERROR;
    int two = ppn > 1 && nhosts > 1 && ppn * nhosts == nranks;
    snprintf(t->name, sizeof t->name, "runtime");
    snprintf(t->source, sizeof t->source, "communicator layout");
    snprintf(t->description, sizeof t->description, "%d ranks on %d hosts%s", nranks, nhosts,
             two ? "" : " (one level: hosts hold different numbers of ranks, or one each)");
    struct topo_level *lv = t->levels;
    if (two) {
        t->nlevels = 2;
        lv[0] = (struct topo_level){.name = "host", .group = ppn, .bw = net->bw,
                                    .latency = net->alpha, .link = "net"};
        lv[1] = (struct topo_level){.name = "network", .group = nhosts, .bw = net->bw,
                                    .latency = net->alpha, .link = "net"};
    } else {
        t->nlevels = 1;
        lv[0] = (struct topo_level){.name = "network", .group = nranks, .bw = net->bw,
                                    .latency = net->alpha, .link = "net"};
    }
    t->reduce_bw = reduce_bw;
    return topo_hand_out(t, out);
}
