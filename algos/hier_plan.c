/* algos/hier_plan.c - multi-level plans composed from the flat ones (see
 * hier_plan.h and docs/algorithms.md, "Hierarchical plans").
 *
 * Every phase is a flat plan built for one group of one level (g members,
 * our coordinate as rank) and appended with plan_append: peers renamed to
 * the big group's ranks, buffers placed at offsets. Phases run one after
 * the other; every member of a group builds the same sequence of phases for
 * that group (the sizes they depend on are shared by the group), so the
 * messages between two ranks match in order and the composition is as
 * deadlock-free as its parts.
 *
 * The compositions (n active levels, t = 0 innermost):
 *  - allreduce: reduce-scatter at t = 0 .. n-2 on the shard the level below
 *    left us, allreduce of the last shard at t = n-1, allgathers back down.
 *    A shard of len elements splits into g blocks of len / g; the len % g
 *    left over are reduced to (and later broadcast from) the last member,
 *    whose shard they extend (contiguous with its block).
 *  - allgather: outermost level first, so the slow links carry single
 *    blocks and the fast ones the big aggregates; the blocks gather in
 *    scratch with the level-0 coordinate slowest, then one copy step puts
 *    them in rank order.
 *  - reduce_scatter: the mirror, innermost level first in level order, the
 *    last phase into recvbuf; the first phase reads the input in rank order
 *    where it lies (plan_stride_input), no copy.
 *  - alltoall: one exchange per level, outermost first, each carrying to a
 *    member every block whose destination has that member's coordinate
 *    (one message per peer group); copy steps regroup blocks in between.
 *  - broadcast: outermost level first, among the ranks sharing the root's
 *    inner coordinates (with direct on every level, the pipelined broadcast
 *    of hier_bcast_plan.c); reduce: the mirror, innermost first (with
 *    direct on every level, the pipelined reduce of hier_reduce_plan.c).
 *  - barrier: one dissemination per level, innermost first (every rank
 *    takes part at every level, so no release phase is needed).
 *  - alltoallv: flat: a rank forwarding other ranks' blocks would need
 *    their counts, which no rank knows. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "hier_plan.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

/* A phase moving at least this much (the vector it works on) picks the
 * bandwidth-optimal ring under ALGO_AUTO; below, a log-step algorithm. */
#define HIER_RING_BYTES (64u << 10)

struct hier {
    struct plan *p;
    const struct hier_args *ha;
    const struct plan_args *a;
    uint64_t es;
    int n;                         /* active levels (group > 1) */
    int level[HIER_MAX_LEVELS];    /* active level t -> index into ha->group / ha->algo */
    int g[HIER_MAX_LEVELS];        /* members */
    int c[HIER_MAX_LEVELS];        /* our coordinate */
    int stride[HIER_MAX_LEVELS];   /* rank distance between neighbouring members */
    struct plan sub;               /* the phase being appended */
    int *peers;                    /* [largest g]: member -> rank */
    /* pipelined allreduce: the phases of one segment, recorded, not appended */
    int recording, lockstep;       /* lockstep: every recorded phase moves in lockstep */
    struct recorded *rec;
    int nrec, rec_cap;
    /* reduce_scatter: the phase being built reads its send buffer's level
     * order block b at stride_place[b] (plan_stride_input), when set */
    const uint64_t *stride_place;
    uint64_t stride_blk;
};

/* A phase of the pipelined allreduce, as built for segment 0. */
struct recorded {
    struct plan plan;
    int *peers;                    /* [g] */
    plan_buf_t map[PLAN_NBUFS];
    uint64_t base[PLAN_NBUFS];
    int steps;                     /* its lockstep length */
};

/* ---- algorithms per level --------------------------------------------------------- */

static algo_t auto_algo(coll_kind_t kind, uint64_t bytes)
{
    switch (kind) {
    case COLL_ALLREDUCE:
    case COLL_REDUCE_SCATTER:
    case COLL_ALLGATHER: return bytes >= HIER_RING_BYTES ? ALGO_RING : ALGO_RHD;
    case COLL_BROADCAST:
    case COLL_REDUCE: return bytes >= HIER_RING_BYTES ? ALGO_RING : ALGO_TREE;
    case COLL_ALLTOALL:
    case COLL_ALLTOALLV: return ALGO_PAIRWISE;
    case COLL_BARRIER: return ALGO_DISSEMINATION;
    default: break;
    }
    return ALGO_RING;
}

/* The algorithm active level t runs `kind` with (checked up front). */
static algo_t level_algo(const struct hier *h, int t, coll_kind_t kind, uint64_t bytes)
{
    algo_t want = h->ha->algo[h->level[t]];
    return want == ALGO_AUTO ? auto_algo(kind, bytes) : want;
}

static chorus_result_t check_algo(const struct hier *h, int t, coll_kind_t kind)
{
    const int lv = h->level[t];
    const algo_t want = h->ha->algo[lv];
    if ((unsigned)want >= ALGO_COUNT)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "hier: level %d: unknown algorithm %d", lv,
                          (int)want);
    if (want != ALGO_AUTO && !plan_supports(want, kind))
        return CHORUS_ERR(CHORUS_INVALID_USAGE, "hier: level %d (%d members): algorithm '%s' "
                          "does not implement %s, which %s runs there", lv, h->g[t],
                          algo_name(want), coll_name(kind), coll_name(h->a->kind));
    return CHORUS_SUCCESS;
}

/* Every active level's algorithm implements the phases it will run, for
 * any count: a refusal must not depend on the data size. */
static int all_direct(const struct hier *h);

static chorus_result_t check_algos(const struct hier *h)
{
    if (h->a->kind == COLL_REDUCE && h->n > 1 && all_direct(h))
        return CHORUS_SUCCESS; /* no flat direct reduce: the composed one is its own */
    for (int t = 0; t < h->n; t++) {
        coll_kind_t k = h->a->kind;
        if (k == COLL_ALLREDUCE && t < h->n - 1) {
            CHORUS_CHECK(check_algo(h, t, COLL_REDUCE_SCATTER));
            k = COLL_ALLGATHER;
        }
        CHORUS_CHECK(check_algo(h, t, k));
    }
    return CHORUS_SUCCESS;
}

/* ---- lockstep and segments (hier_plan.h) ------------------------------------------------ */

int hier_lockstep_steps(algo_t algo, coll_kind_t kind, int g, uint64_t bytes, int in_place)
{
    int lg = 0;
    while ((1 << lg) < g)
        lg++;
    switch (algo) {
    case ALGO_RING:
        if (kind == COLL_ALLREDUCE)
            return 2 * (g - 1);
        return kind == COLL_REDUCE_SCATTER || kind == COLL_ALLGATHER ? g - 1 : -1;
    case ALGO_DIRECT:
        if (kind == COLL_ALLGATHER)
            return 1;
        if (kind == COLL_REDUCE_SCATTER)
            return g - 1;
        if (kind == COLL_ALLREDUCE)
            return g <= DIRECT_CHUNKED_MAX ? g : 2 * (g - 1);
        return -1;
    case ALGO_RHD:
        if (g & (g - 1)) { /* a non-power of two folds: its steps padded by role */
            lg--; /* the power of two below */
            if (kind == COLL_ALLREDUCE)
                return bytes <= RHD_DOUBLING_MAX ? lg + 2 : 2 * lg + 2;
            return kind == COLL_REDUCE_SCATTER || kind == COLL_ALLGATHER ? lg + 2 : -1;
        }
        if (kind == COLL_ALLREDUCE) /* doubling in place ends in scratch after odd steps */
            return bytes <= RHD_DOUBLING_MAX ? lg + (in_place && lg % 2) : 2 * lg;
        return kind == COLL_REDUCE_SCATTER || kind == COLL_ALLGATHER ? lg : -1;
    default:
        return -1;
    }
}

/* Segments must leave every block of every phase at least as many elements
 * as the largest group has members (no empty blocks: each member then
 * takes the full count of steps), and hold whole shards at every level. */
int hier_pipe_segments(const int *group, int nlevels, uint64_t count, uint64_t esize,
                       uint64_t min_bytes, uint64_t *seg_count)
{
    uint64_t inner = 1, top = 1, gmax = 1;
    int n = 0;
    *seg_count = count;
    for (int i = 0; i < nlevels; i++) {
        if (group[i] <= 1)
            continue;
        n++;
        inner *= top;
        top = (uint64_t)group[i];
        gmax = top > gmax ? top : gmax;
    }
    if (n < 2 || esize == 0)
        return 1;
    if (!min_bytes)
        min_bytes = HIER_PIPE_MIN_BYTES;
    uint64_t nseg = count * esize / min_bytes;
    if (nseg > HIER_PIPE_MAX_SEGS)
        nseg = HIER_PIPE_MAX_SEGS;
    const uint64_t least = inner * top * gmax;
    while (nseg >= 2 && count / nseg / inner * inner < least)
        nseg /= 2;
    if (nseg < 2)
        return 1;
    *seg_count = count / nseg / inner * inner;
    return (int)nseg;
}

/* ---- one phase ------------------------------------------------------------------------ */

/* rhd on a non-power of two (algos/rhd_plan.c) is lockstep once its steps
 * are placed by role: a pair head takes all `total` steps (fold,
 * the power-of-two part, unfold), a lone participant runs the middle ones
 * (its steps shift by one), a folded rank only the first and the last. The
 * plan gets empty steps where a role has none. */
static chorus_result_t pad_folded(struct plan *p, const struct plan_args *sa, int total)
{
    int pof2 = 1;
    while (pof2 * 2 <= sa->nranks)
        pof2 *= 2;
    const int rem = sa->nranks - pof2, c = sa->rank;
    const int folded = c < 2 * rem && c % 2 == 0, head = c < 2 * rem && c % 2 == 1;
    if (head)
        return CHORUS_SUCCESS;
    int map[2 * 32 + 2];
    if (p->nsteps > total || p->nsteps > (int)(sizeof map / sizeof *map))
        return CHORUS_SUCCESS; /* the caller's count check reports it */
    if (folded) {
        if (p->nsteps != 2)
            return CHORUS_SUCCESS;
        map[0] = 0;
        map[1] = total - 1;
    } else {
        if (p->nsteps > total - 1)
            return CHORUS_SUCCESS;
        for (int k = 0; k < p->nsteps; k++)
            map[k] = k + 1;
    }
    uint32_t *sf = malloc((size_t)(total + 1) * sizeof *sf);
    if (!sf)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "hier: out of memory");
    for (int j = 0, k = 0; j <= total; j++) {
        while (k < p->nsteps && map[k] < j)
            k++;
        sf[j] = k < p->nsteps ? p->step_first[k] : p->nops;
    }
    free(p->step_first);
    p->step_first = sf;
    p->nsteps = total;
    p->steps_cap = (uint32_t)total + 1;
    return CHORUS_SUCCESS;
}

static chorus_result_t record(struct hier *h, int t, const struct plan_args *sa, algo_t algo,
                              const plan_buf_t *map, const uint64_t *base)
{
    const int steps = hier_lockstep_steps(algo, sa->kind, sa->nranks,
                                          (uint64_t)sa->count * sa->esize, sa->in_place);
    if (steps < 0) {
        h->lockstep = 0;
        return CHORUS_SUCCESS;
    }
    if (h->nrec == h->rec_cap) {
        int cap = h->rec_cap ? 2 * h->rec_cap : 8;
        struct recorded *r = realloc(h->rec, (size_t)cap * sizeof *r);
        if (!r)
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "hier: out of memory");
        h->rec = r;
        h->rec_cap = cap;
    }
    struct recorded *r = &h->rec[h->nrec];
    memset(r, 0, sizeof *r);
    r->peers = malloc((size_t)h->g[t] * sizeof *r->peers);
    if (!r->peers)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "hier: out of memory");
    h->nrec++;
    memcpy(r->peers, h->peers, (size_t)h->g[t] * sizeof *r->peers);
    memcpy(r->map, map, sizeof r->map);
    memcpy(r->base, base, sizeof r->base);
    r->steps = steps;
    CHORUS_CHECK(plan_build(&r->plan, sa, algo));
    if (algo == ALGO_RHD && (sa->nranks & (sa->nranks - 1)))
        CHORUS_CHECK(pad_folded(&r->plan, sa, steps));
    if (r->plan.nsteps != steps) /* every member must take the same steps, or slots slip */
        return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "hier: %s %s among %d took %d steps, not the "
                          "%d of lockstep", algo_name(algo), coll_name(sa->kind), sa->nranks,
                          r->plan.nsteps, steps);
    if (h->stride_place)
        return plan_stride_input(&r->plan, h->stride_blk, (uint64_t)h->a->nranks,
                                 h->stride_place);
    return CHORUS_SUCCESS;
}

static void free_recorded(struct hier *h)
{
    for (int i = 0; i < h->nrec; i++) {
        plan_free(&h->rec[i].plan);
        free(h->rec[i].peers);
    }
    free(h->rec);
    h->rec = NULL;
    h->nrec = h->rec_cap = 0;
}

/* Appends the flat plan of algo for sa (kind, count, root, in_place) among
 * the members of our group at active level t; its send buffer, receive
 * buffer and scratch land at the given places. */
static chorus_result_t phase(struct hier *h, int t, struct plan_args sa, algo_t algo,
                             plan_buf_t sbuf, uint64_t soff, plan_buf_t rbuf, uint64_t roff,
                             uint64_t scratch_base)
{
    sa.nranks = h->g[t];
    sa.rank = h->c[t];
    sa.esize = (size_t)h->es;
    for (int j = 0; j < h->g[t]; j++)
        h->peers[j] = h->a->rank + (j - h->c[t]) * h->stride[t];
    const plan_buf_t map[PLAN_NBUFS] = {sbuf, rbuf, PLAN_SCRATCH};
    const uint64_t base[PLAN_NBUFS] = {soff, roff, scratch_base};
    if (h->recording)
        return record(h, t, &sa, algo, map, base);
    CHORUS_CHECK(plan_build(&h->sub, &sa, algo));
    if (h->stride_place)
        CHORUS_CHECK(plan_stride_input(&h->sub, h->stride_blk, (uint64_t)h->a->nranks,
                                       h->stride_place));
    return plan_append(h->p, &h->sub, h->peers, map, base);
}

/* One copy step moving every block (one per rank of the group, blk bytes):
 * block with active coordinates d[] is at sbase + sum d[t] * ws[t] and goes
 * to dbase + sum d[t] * wd[t]. Runs contiguous on both sides become one op. */
static chorus_result_t permute(struct hier *h, plan_buf_t sb, uint64_t sbase, const uint64_t *ws,
                               plan_buf_t db, uint64_t dbase, const uint64_t *wd, uint64_t blk)
{
    int d[HIER_MAX_LEVELS] = {0};
    uint64_t run_s = 0, run_d = 0, run = 0;
    CHORUS_CHECK(plan_step(h->p));
    for (int i = 0; i < h->a->nranks; i++) {
        uint64_t so = sbase, dof = dbase;
        for (int t = 0; t < h->n; t++) {
            so += (uint64_t)d[t] * ws[t];
            dof += (uint64_t)d[t] * wd[t];
        }
        if (run && run_s + run == so && run_d + run == dof) {
            run += blk;
        } else {
            if (run)
                CHORUS_CHECK(plan_copy(h->p, sb, run_s, db, run_d, run));
            run_s = so;
            run_d = dof;
            run = blk;
        }
        for (int t = 0; t < h->n && ++d[t] == h->g[t]; t++) /* level 0 fastest: rank order */
            d[t] = 0;
    }
    return run ? plan_copy(h->p, sb, run_s, db, run_d, run) : CHORUS_SUCCESS;
}

/* Byte weights of rank order: coordinate t of a block counts stride[t] blocks. */
static void rank_weights(const struct hier *h, uint64_t blk, uint64_t *w)
{
    for (int t = 0; t < h->n; t++)
        w[t] = (uint64_t)h->stride[t] * blk;
}

/* Weights of the gather layout (level-0 coordinate slowest, the outermost
 * fastest): w[n-1] = blk, w[t] = w[t+1] * g[t+1]; base[t] is where the
 * region of our coordinates below t starts. */
static void gather_layout(const struct hier *h, uint64_t blk, uint64_t *w, uint64_t *base)
{
    w[h->n - 1] = blk;
    for (int t = h->n - 2; t >= 0; t--)
        w[t] = w[t + 1] * (uint64_t)h->g[t + 1];
    base[0] = 0;
    for (int t = 1; t < h->n; t++)
        base[t] = base[t - 1] + (uint64_t)h->c[t - 1] * w[t - 1];
}

/* ---- the compositions --------------------------------------------------------------------- */

/* The composed allreduce of elements [first, first + count) of the vector. */
static chorus_result_t allreduce_range(struct hier *h, uint64_t first, uint64_t count)
{
    const struct plan_args *a = h->a;
    const uint64_t es = h->es;
    const int top = h->n - 1;
    uint64_t off[HIER_MAX_LEVELS], q[HIER_MAX_LEVELS], rem[HIER_MAX_LEVELS];
    uint64_t o = first, len = count;
    plan_buf_t src = PLAN_SENDBUF;
    for (int t = 0; t < top; t++) {
        const uint64_t g = (uint64_t)h->g[t], c = (uint64_t)h->c[t];
        const int ip = t == 0 ? a->in_place : 1;
        off[t] = o;
        q[t] = len / g;
        rem[t] = len % g;
        if (q[t]) {
            struct plan_args sa = {.kind = COLL_REDUCE_SCATTER, .count = (size_t)q[t],
                                   .in_place = ip};
            CHORUS_CHECK(phase(h, t, sa, level_algo(h, t, COLL_REDUCE_SCATTER, len * es), src,
                               o * es, PLAN_RECVBUF, (o + c * q[t]) * es, 0));
        }
        if (rem[t]) { /* fewer than g elements: a tree, whatever the level runs */
            const uint64_t ro = (o + g * q[t]) * es;
            struct plan_args sa = {.kind = COLL_REDUCE, .count = (size_t)rem[t],
                                   .root = (int)g - 1, .in_place = c == g - 1 ? ip : 0};
            CHORUS_CHECK(phase(h, t, sa, ALGO_TREE, src, ro, PLAN_RECVBUF, ro, 0));
        }
        o += c * q[t];
        len = q[t] + (c == g - 1 ? rem[t] : 0);
        src = PLAN_RECVBUF;
    }
    if (len) {
        struct plan_args sa = {.kind = COLL_ALLREDUCE, .count = (size_t)len, .in_place = 1};
        CHORUS_CHECK(phase(h, top, sa, level_algo(h, top, COLL_ALLREDUCE, len * es),
                           PLAN_RECVBUF, o * es, PLAN_RECVBUF, o * es, 0));
    }
    for (int t = top - 1; t >= 0; t--) {
        const uint64_t g = (uint64_t)h->g[t], c = (uint64_t)h->c[t];
        if (q[t]) {
            struct plan_args sa = {.kind = COLL_ALLGATHER, .count = (size_t)q[t], .in_place = 1};
            CHORUS_CHECK(phase(h, t, sa, level_algo(h, t, COLL_ALLGATHER, (g * q[t] + rem[t]) * es),
                               PLAN_RECVBUF, (off[t] + c * q[t]) * es, PLAN_RECVBUF, off[t] * es,
                               0));
        }
        if (rem[t]) {
            const uint64_t ro = (off[t] + g * q[t]) * es;
            struct plan_args sa = {.kind = COLL_BROADCAST, .count = (size_t)rem[t],
                                   .root = (int)g - 1, .in_place = 1};
            CHORUS_CHECK(phase(h, t, sa, ALGO_TREE, PLAN_RECVBUF, ro, PLAN_RECVBUF, ro, 0));
        }
    }
    return CHORUS_SUCCESS;
}

/* The pipelined allreduce: the phases of one segment (recorded), then slot
 * by slot, segment i running position s - i of its sequence of phase
 * steps. Every member of a group runs a phase's k-th step in the same slot
 * (lockstep phases), so each slot's messages match within it and the slots
 * are deadlock-free as a whole; a slot holds one step of up to T segments
 * (T = the sequence's length), all levels at once. Segments touch disjoint
 * ranges of the vector; a phase's scratch gets one window per segment that
 * may run it at the same time (its step count). */
static chorus_result_t pipelined(struct hier *h, int nseg, uint64_t seg, int shared)
{
    const uint64_t seg_bytes = seg * h->es;
    uint64_t window = 0; /* shared: the scratch one segment's phases use together */
    for (int j = 0; j < h->nrec; j++) {
        uint64_t end = h->rec[j].base[PLAN_SCRATCH] + h->rec[j].plan.scratch_bytes;
        window = end > window ? end : window;
    }
    int total = 0, *start = malloc((size_t)h->nrec * sizeof *start);
    uint64_t *sbase = malloc((size_t)h->nrec * sizeof *sbase), soff = 0;
    if (!start || !sbase) {
        free(start);
        free(sbase);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "hier: out of memory");
    }
    for (int j = 0; j < h->nrec; j++) {
        start[j] = total;
        total += h->rec[j].steps;
        sbase[j] = soff;
        soff += (uint64_t)h->rec[j].steps * h->rec[j].plan.scratch_bytes;
    }
    if (shared) { /* phases pass data through scratch: one window per segment in flight */
        uint64_t need = window * (uint64_t)(total < nseg ? total : nseg);
        if (need > h->p->scratch_bytes)
            h->p->scratch_bytes = (size_t)need;
    }
    chorus_result_t res = CHORUS_SUCCESS;
    for (int slot = 0; slot < nseg + total - 1 && res == CHORUS_SUCCESS; slot++) {
        res = plan_step(h->p);
        int j = h->nrec - 1;
        for (int i = slot - total + 1 > 0 ? slot - total + 1 : 0; i < nseg && i <= slot &&
                                                                   res == CHORUS_SUCCESS; i++) {
            const int pos = slot - i;
            while (j > 0 && start[j] > pos)
                j--;
            while (j + 1 < h->nrec && start[j + 1] <= pos)
                j++;
            const struct recorded *r = &h->rec[j];
            const int k = pos - start[j];
            if (k >= r->plan.nsteps)
                continue;
            uint64_t base[PLAN_NBUFS];
            for (int b = 0; b < PLAN_NBUFS; b++) {
                uint64_t shift = (uint64_t)i * seg_bytes;
                if (r->map[b] == PLAN_SCRATCH)
                    shift = shared ? (uint64_t)(i % total) * window
                                   : sbase[j] + (uint64_t)(i % r->steps) * r->plan.scratch_bytes;
                base[b] = r->base[b] + shift;
            }
            res = plan_append_step(h->p, &r->plan, k, r->peers, r->map, base);
        }
    }
    free(start);
    free(sbase);
    return res;
}

/* range builds the composition for elements [first, first + count). With
 * nseg >= 2 segments of seg elements, the first is recorded; if every level
 * ran in lockstep it is replayed pipelined over all nseg (shared: as in
 * pipelined()), and the elements past nseg * seg follow unpipelined.
 * Otherwise (or with fewer segments) the whole vector runs at once. */
static chorus_result_t pipelined_or_whole(struct hier *h, int nseg, uint64_t seg, int shared,
                                          chorus_result_t (*range)(struct hier *, uint64_t,
                                                                   uint64_t))
{
    if (nseg >= 2) {
        h->recording = 1;
        h->lockstep = 1;
        chorus_result_t res = range(h, 0, seg);
        h->recording = 0;
        if (res == CHORUS_SUCCESS && h->lockstep) {
            res = pipelined(h, nseg, seg, shared);
            free_recorded(h);
            const uint64_t done = (uint64_t)nseg * seg;
            if (res == CHORUS_SUCCESS && done < h->a->count)
                res = range(h, done, h->a->count - done);
            return res;
        }
        free_recorded(h);
        if (res != CHORUS_SUCCESS)
            return res;
    }
    return range(h, 0, h->a->count);
}

static chorus_result_t allreduce(struct hier *h)
{
    uint64_t seg = 0;
    const int nseg = hier_pipe_segments(h->ha->group, h->ha->nlevels, h->a->count, h->es,
                                        h->ha->pipe_min_bytes, &seg);
    return pipelined_or_whole(h, nseg, seg, 0, allreduce_range);
}

int hier_ag_pieces(int nranks, int nactive, uint64_t count, uint64_t esize, uint64_t min_bytes)
{
    if (nactive < 2 || nranks < 2 || !esize)
        return 1;
    if (!min_bytes)
        min_bytes = HIER_AG_MIN_BYTES;
    uint64_t k = count * esize * (uint64_t)nranks / min_bytes; /* segments of min_bytes */
    uint64_t by_ops = HIER_AG_OPS_BUDGET / (2 * (uint64_t)(nranks - 1));
    if (k > HIER_PIPE_MAX_SEGS)
        k = HIER_PIPE_MAX_SEGS;
    if (k > by_ops)
        k = by_ops;
    if (k > count)
        k = count;
    return k < 2 ? 1 : (int)k;
}

/* Direct on every level: level t (outermost first) sends every block we
 * hold (those of the ranks that share our coordinates up to t) to each
 * member of our level-t group, one message per block, into its place in
 * recvbuf; piece i of every block runs level t in slot i + (top - t), so
 * the levels work at once on different pieces. A pair of ranks talks at
 * one level only, both sides walk the blocks in the same order, and every
 * message of a slot is matched in that slot: deadlock-free. */
static chorus_result_t allgather_direct(struct hier *h)
{
    const struct plan_args *a = h->a;
    const uint64_t es = h->es, blk = (uint64_t)a->count * es;
    const int top = h->n - 1, r = a->rank;
    const int npieces = hier_ag_pieces(a->nranks, h->n, a->count, es, h->ha->pipe_min_bytes);
    const uint64_t own = (uint64_t)r * blk;
    if (!blk)
        return CHORUS_SUCCESS;
    for (int slot = 0; slot < npieces + top; slot++) {
        CHORUS_CHECK(plan_step(h->p));
        if (slot == 0 && !a->in_place)
            CHORUS_CHECK(plan_copy(h->p, PLAN_SENDBUF, 0, PLAN_RECVBUF, own, blk));
        for (int t = top; t >= 0; t--) {
            const int piece = slot - (top - t);
            if (piece < 0 || piece >= npieces)
                continue;
            const uint64_t base = a->count / (uint64_t)npieces, extra = a->count % (uint64_t)npieces;
            const uint64_t pb = (uint64_t)piece;
            const uint64_t po = (pb * base + (pb < extra ? pb : extra)) * es;
            const uint64_t pl = (base + (pb < extra)) * es;
            if (!pl)
                continue;
            /* the blocks we hold: our coordinates below and at t, any above */
            int held = 1;
            for (int u = t + 1; u <= top; u++)
                held *= h->g[u];
            for (int j = 0; j < h->g[t]; j++) {
                if (j == h->c[t])
                    continue;
                const int delta = (j - h->c[t]) * h->stride[t];
                for (int k = 0; k < held; k++) {
                    int q = r, x = k; /* k-th held block: outer coordinates from k */
                    for (int u = t + 1; u <= top; u++) {
                        q += ((x % h->g[u]) - h->c[u]) * h->stride[u];
                        x /= h->g[u];
                    }
                    if (q == r)
                        CHORUS_CHECK(plan_send(h->p, r + delta, PLAN_SENDBUF, po, pl));
                    else
                        CHORUS_CHECK(plan_send(h->p, r + delta, PLAN_RECVBUF,
                                               (uint64_t)q * blk + po, pl));
                    CHORUS_CHECK(plan_recv(h->p, r + delta, PLAN_RECVBUF,
                                           (uint64_t)(q + delta) * blk + po, pl));
                }
            }
        }
    }
    return CHORUS_SUCCESS;
}

static int all_direct(const struct hier *h)
{
    for (int t = 0; t < h->n; t++)
        if (h->ha->algo[h->level[t]] != ALGO_DIRECT)
            return 0;
    return 1;
}

static chorus_result_t allgather(struct hier *h)
{
    if (all_direct(h))
        return allgather_direct(h);
    const uint64_t blk = (uint64_t)h->a->count * h->es, area = (uint64_t)h->a->nranks * blk;
    uint64_t w[HIER_MAX_LEVELS], base[HIER_MAX_LEVELS], wr[HIER_MAX_LEVELS];
    if (!blk)
        return CHORUS_SUCCESS;
    gather_layout(h, blk, w, base);
    for (int t = h->n - 1; t >= 0; t--) {
        const int first = t == h->n - 1; /* our own block, from sendbuf */
        struct plan_args sa = {.kind = COLL_ALLGATHER, .count = (size_t)(w[t] / h->es),
                               .in_place = !first};
        algo_t algo = level_algo(h, t, COLL_ALLGATHER, (uint64_t)h->g[t] * w[t]);
        CHORUS_CHECK(phase(h, t, sa, algo, first ? PLAN_SENDBUF : PLAN_SCRATCH,
                           first ? 0 : base[t] + (uint64_t)h->c[t] * w[t], PLAN_SCRATCH, base[t],
                           area));
    }
    rank_weights(h, blk, wr);
    return permute(h, PLAN_SCRATCH, 0, w, PLAN_RECVBUF, 0, wr, blk);
}

int hier_rs_pieces(const int *group, int nlevels, uint64_t count, uint64_t esize,
                   uint64_t min_bytes)
{
    uint64_t n = 1, gmax = 1;
    int active = 0;
    for (int i = 0; i < nlevels; i++) {
        if (group[i] <= 1)
            continue;
        n *= (uint64_t)group[i];
        gmax = (uint64_t)group[i] > gmax ? (uint64_t)group[i] : gmax;
        active++;
    }
    if (active < 2 || !esize)
        return 1;
    if (!min_bytes)
        min_bytes = HIER_AG_MIN_BYTES;
    uint64_t k = count * esize * n / min_bytes;
    if (k > HIER_PIPE_MAX_SEGS)
        k = HIER_PIPE_MAX_SEGS;
    if (k > HIER_AG_OPS_BUDGET / n)
        k = HIER_AG_OPS_BUDGET / n;
    if (k > count / gmax)
        k = count / gmax;
    return k < 2 ? 1 : (int)k;
}

/* Where block b of the level order (level-0 coordinate slowest; w as
 * gather_layout gives it for blocks of blk) lies in the caller's input, in
 * rank order with rank blocks of `full` bytes. */
static void level_order_places(const struct hier *h, uint64_t blk, const uint64_t *w,
                               uint64_t full, uint64_t *place)
{
    for (int b = 0; b < h->a->nranks; b++) {
        uint64_t q = 0;
        for (int t = 0; t < h->n; t++)
            q += ((uint64_t)b * blk / w[t]) % (uint64_t)h->g[t] * (uint64_t)h->stride[t];
        place[b] = q * full;
    }
}

/* Piece [first, first + len) (elements) of every block, reduce-scattered
 * innermost level first, the last phase writing that piece of recvbuf.
 * The phases work in level order (the level-0 coordinate slowest, as
 * gather_layout); the first reads the caller's input where it lies, in
 * rank order (plan_stride_input), so the input is never copied: a copy
 * would cost the whole input at copy speed before its slot's messages. */
static chorus_result_t reduce_scatter_range(struct hier *h, uint64_t first, uint64_t len)
{
    const uint64_t full = (uint64_t)h->a->count * h->es, piece = len * h->es;
    const uint64_t area = (uint64_t)h->a->nranks * piece, off = first * h->es;
    uint64_t w[HIER_MAX_LEVELS], base[HIER_MAX_LEVELS];
    if (!piece)
        return CHORUS_SUCCESS;
    gather_layout(h, piece, w, base);
    uint64_t *place = malloc((size_t)h->a->nranks * sizeof *place);
    if (!place)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "hier: out of memory");
    level_order_places(h, piece, w, full, place);
    chorus_result_t res = CHORUS_SUCCESS;
    for (int t = 0; t < h->n && res == CHORUS_SUCCESS; t++) {
        const int last = t == h->n - 1; /* our block, into recvbuf */
        struct plan_args sa = {.kind = COLL_REDUCE_SCATTER, .count = (size_t)(w[t] / h->es),
                               .in_place = t > 0 && !last};
        algo_t algo = level_algo(h, t, COLL_REDUCE_SCATTER, (uint64_t)h->g[t] * w[t]);
        h->stride_place = t == 0 ? place : NULL;
        h->stride_blk = piece;
        res = phase(h, t, sa, algo, t == 0 ? PLAN_SENDBUF : PLAN_SCRATCH,
                    t == 0 ? off : base[t], last ? PLAN_RECVBUF : PLAN_SCRATCH,
                    last ? off : base[t] + (uint64_t)h->c[t] * w[t], area);
    }
    h->stride_place = NULL;
    free(place);
    return res;
}

static chorus_result_t reduce_scatter(struct hier *h)
{
    int groups[HIER_MAX_LEVELS];
    for (int t = 0; t < h->n; t++)
        groups[t] = h->g[t];
    const int npieces = hier_rs_pieces(groups, h->n, h->a->count, h->es, h->ha->pipe_min_bytes);
    const uint64_t seg = npieces >= 2 ? h->a->count / (uint64_t)npieces : 0;
    return pipelined_or_whole(h, npieces, seg, 1, reduce_scatter_range);
}

/* Byte weights of a layout given as levels from slowest to fastest. */
static void order_weights(const struct hier *h, const int *order, uint64_t blk, uint64_t *w)
{
    uint64_t x = blk;
    for (int i = h->n - 1; i >= 0; i--) {
        w[order[i]] = x;
        x *= (uint64_t)h->g[order[i]];
    }
}

/* Blocks live in one of two scratch areas (P at 0, Q at area) or, before
 * the first exchange, in sendbuf; each exchange reads one place and writes
 * the other area. */
static chorus_result_t alltoall(struct hier *h)
{
    const uint64_t blk = (uint64_t)h->a->count * h->es, area = (uint64_t)h->a->nranks * blk;
    int order[HIER_MAX_LEVELS];
    uint64_t w[HIER_MAX_LEVELS], w2[HIER_MAX_LEVELS];
    plan_buf_t cur = PLAN_SENDBUF;
    uint64_t cur_off = 0;
    if (!blk)
        return CHORUS_SUCCESS;
    for (int i = 0; i < h->n; i++) /* sendbuf: destination rank order, outermost slowest */
        order[i] = h->n - 1 - i;
    for (int t = h->n - 1; t >= 0; t--) {
        if (order[0] != t) { /* regroup: level t's coordinate slowest */
            int k = 0;
            while (order[k] != t)
                k++;
            order_weights(h, order, blk, w);
            for (; k > 0; k--)
                order[k] = order[k - 1];
            order[0] = t;
            order_weights(h, order, blk, w2);
            uint64_t to = cur == PLAN_SCRATCH && cur_off == 0 ? area : 0;
            CHORUS_CHECK(permute(h, cur, cur_off, w, PLAN_SCRATCH, to, w2, blk));
            cur = PLAN_SCRATCH;
            cur_off = to;
        }
        const uint64_t out = cur == PLAN_SCRATCH && cur_off == 0 ? area : 0;
        struct plan_args sa = {.kind = COLL_ALLTOALL,
                               .count = h->a->count * (size_t)(h->a->nranks / h->g[t])};
        CHORUS_CHECK(phase(h, t, sa, level_algo(h, t, COLL_ALLTOALL, area), cur, cur_off,
                           PLAN_SCRATCH, out, 2 * area));
        cur = PLAN_SCRATCH;
        cur_off = out;
    }
    order_weights(h, order, blk, w);
    rank_weights(h, blk, w2);
    return permute(h, PLAN_SCRATCH, cur_off, w, PLAN_RECVBUF, 0, w2, blk);
}

/* The root's coordinate at active level t. */
static int root_coord(const struct hier *h, int t)
{
    return (h->a->root / h->stride[t]) % h->g[t];
}

/* We take part at level t when our coordinates below t are the root's. */
static int with_root_below(const struct hier *h, int t)
{
    for (int u = 0; u < t; u++)
        if (h->c[u] != root_coord(h, u))
            return 0;
    return 1;
}

static chorus_result_t broadcast(struct hier *h)
{
    const struct plan_args *a = h->a;
    const uint64_t bytes = (uint64_t)a->count * h->es;
    if (!bytes)
        return CHORUS_SUCCESS;
    if (all_direct(h)) /* every level's ports carry the vector: algos/hier_bcast_plan.c */
        return hier_bcast_pipelined(h->p, a, h->n, h->g, h->stride, h->ha->pipe_min_bytes);
    for (int t = h->n - 1; t >= 0; t--) {
        if (!with_root_below(h, t))
            continue;
        const int from_user = a->rank == a->root && t == h->n - 1; /* the root's first phase */
        struct plan_args sa = {.kind = COLL_BROADCAST, .count = a->count,
                               .root = root_coord(h, t), .in_place = from_user ? a->in_place : 1};
        CHORUS_CHECK(phase(h, t, sa, level_algo(h, t, COLL_BROADCAST, bytes),
                           from_user ? PLAN_SENDBUF : PLAN_RECVBUF, 0, PLAN_RECVBUF, 0, 0));
    }
    return CHORUS_SUCCESS;
}

/* Partial results of a group root that is not the final root accumulate
 * in scratch [0, bytes); the phases' own scratch goes after it. */
static chorus_result_t reduce(struct hier *h)
{
    const struct plan_args *a = h->a;
    const uint64_t bytes = (uint64_t)a->count * h->es;
    const plan_buf_t acc = a->rank == a->root ? PLAN_RECVBUF : PLAN_SCRATCH;
    const uint64_t sbase = acc == PLAN_SCRATCH ? bytes : 0;
    plan_buf_t cur = PLAN_SENDBUF;
    if (!bytes)
        return CHORUS_SUCCESS;
    if (all_direct(h)) /* every level's ports carry the vector: algos/hier_reduce_plan.c */
        return hier_reduce_pipelined(h->p, a, h->n, h->g, h->stride, h->ha->pipe_min_bytes);
    for (int t = 0; t < h->n && with_root_below(h, t); t++) {
        const int rc = root_coord(h, t);
        const algo_t algo = level_algo(h, t, COLL_REDUCE, bytes);
        struct plan_args sa = {.kind = COLL_REDUCE, .count = a->count, .root = rc};
        if (h->c[t] != rc) /* we hand our partial result up and are done */
            return phase(h, t, sa, algo, cur, 0, cur, 0, sbase);
        sa.in_place = cur == PLAN_SENDBUF ? (acc == PLAN_RECVBUF && a->in_place) : 1;
        CHORUS_CHECK(phase(h, t, sa, algo, cur, 0, acc, 0, sbase));
        cur = acc;
    }
    return CHORUS_SUCCESS;
}

static chorus_result_t barrier(struct hier *h)
{
    struct plan_args sa = {.kind = COLL_BARRIER};
    for (int t = 0; t < h->n; t++)
        CHORUS_CHECK(phase(h, t, sa, level_algo(h, t, COLL_BARRIER, 0), PLAN_SENDBUF, 0,
                           PLAN_RECVBUF, 0, 0));
    return CHORUS_SUCCESS;
}

/* ---- arguments, levels, the flat case ------------------------------------------------------ */

static chorus_result_t check_args(const struct hier_args *ha)
{
    const struct plan_args *a = &ha->base;
    if (ha->nlevels < 1 || ha->nlevels > HIER_MAX_LEVELS)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "hier: %d levels (1..%d)", ha->nlevels,
                          HIER_MAX_LEVELS);
    int64_t prod = 1;
    for (int i = 0; i < ha->nlevels; i++) {
        if (ha->group[i] < 1)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "hier: level %d has %d members", i,
                              ha->group[i]);
        prod *= ha->group[i];
        if (prod > INT32_MAX)
            break;
    }
    if (prod != a->nranks)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "hier: the groups' product is %lld, not the "
                          "%d ranks", (long long)prod, a->nranks);
    if ((unsigned)a->kind > COLL_BARRIER)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "hier: %s is not a collective plans build",
                          coll_name(a->kind));
    CHORUS_CHECK(plan_check_args(a)); /* ranks, root, element size, alltoallv counts */
    if (a->kind == COLL_BARRIER || a->kind == COLL_ALLTOALLV)
        return CHORUS_SUCCESS;
    /* scratch holds up to two copies of nranks * count elements, plus a phase's own */
    uint64_t lim = (SIZE_MAX < UINT64_MAX ? (uint64_t)SIZE_MAX : UINT64_MAX) / 4;
    if (a->esize > lim || (a->count && (uint64_t)a->count > lim / a->esize) ||
        (a->count && (uint64_t)a->count * a->esize > lim / (uint64_t)a->nranks))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "hier: count %zu x %zu bytes x %d ranks "
                          "overflows", a->count, a->esize, a->nranks);
    return CHORUS_SUCCESS;
}

/* Builds the flat plan: one active level (or none), or alltoallv. */
static chorus_result_t flat(struct hier *h)
{
    const struct plan_args *a = h->a;
    const int whole = a->kind == COLL_ALLGATHER || a->kind == COLL_REDUCE_SCATTER ||
                      a->kind == COLL_ALLTOALL; /* the vector is nranks blocks */
    const uint64_t bytes = (uint64_t)a->count * h->es * (whole ? (uint64_t)a->nranks : 1);
    algo_t algo = h->n ? level_algo(h, h->n - 1, a->kind, bytes) : auto_algo(a->kind, bytes);
    return plan_build(h->p, a, algo);
}

static chorus_result_t compose(struct hier *h)
{
    switch (h->a->kind) {
    case COLL_ALLREDUCE: return allreduce(h);
    case COLL_ALLGATHER: return allgather(h);
    case COLL_REDUCE_SCATTER: return reduce_scatter(h);
    case COLL_ALLTOALL: return alltoall(h);
    case COLL_BROADCAST: return broadcast(h);
    case COLL_REDUCE: return reduce(h);
    case COLL_BARRIER: return barrier(h);
    default: break;
    }
    return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "hier: %s not composed", coll_name(h->a->kind));
}

static void set_result(struct plan *p, const struct plan_args *a)
{
    const uint64_t bytes = (uint64_t)a->count * a->esize;
    p->result_buf = PLAN_RECVBUF;
    p->result_off = 0;
    p->result_bytes = 0;
    if (a->kind == COLL_ALLREDUCE || a->kind == COLL_REDUCE_SCATTER ||
        (a->kind == COLL_REDUCE && a->rank == a->root))
        p->result_bytes = bytes;
}

static chorus_result_t build(struct hier *h)
{
    const struct hier_args *ha = h->ha;
    int stride = 1, largest = 1;
    for (int i = 0; i < ha->nlevels; i++) {
        if (ha->group[i] > 1) {
            const int t = h->n++;
            h->level[t] = i;
            h->g[t] = ha->group[i];
            h->stride[t] = stride;
            h->c[t] = (h->a->rank / stride) % ha->group[i];
            largest = ha->group[i] > largest ? ha->group[i] : largest;
        }
        stride *= ha->group[i];
    }
    if (h->a->kind == COLL_ALLTOALLV) { /* flat; every level must be able to run it */
        for (int t = 0; t < h->n; t++)
            CHORUS_CHECK(check_algo(h, t, COLL_ALLTOALLV));
        return flat(h);
    }
    CHORUS_CHECK(check_algos(h));
    if (h->n <= 1)
        return flat(h);
    h->peers = malloc((size_t)largest * sizeof *h->peers);
    if (!h->peers)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "hier: out of memory for %d peers", largest);
    CHORUS_CHECK(compose(h));
    /* step_first exists even for an empty plan; no trailing empty step */
    CHORUS_CHECK(plan_step(h->p));
    if (h->p->step_first[h->p->nsteps - 1] == h->p->nops)
        h->p->nsteps--;
    set_result(h->p, h->a);
    return CHORUS_SUCCESS;
}

chorus_result_t hier_plan(struct plan *p, const struct hier_args *a)
{
    if (!p || !a)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "hier_plan: NULL %s", p ? "args" : "plan");
    plan_reset(p, ALGO_HIER);
    struct hier h = {.p = p, .ha = a, .a = &a->base, .es = a->base.esize};
    chorus_result_t res = check_args(a);
    if (res == CHORUS_SUCCESS)
        res = build(&h);
    plan_free(&h.sub);
    free(h.peers);
    free_recorded(&h);
    if (res != CHORUS_SUCCESS) {
        plan_reset(p, ALGO_HIER);
        return res;
    }
    p->algo = ALGO_HIER;
    return CHORUS_SUCCESS;
}
