/* test_hier_plan.c - the multi-level plans of algos/hier_plan.c, every
 * rank's plan run on the model executor (tests/plan_model.c), which checks
 * matching, deadlock freedom, bounds and in-step hazards, with every rank's
 * output compared against a reference computed from the inputs.
 *
 * Covered: many level shapes (including groups of 1 and one active level),
 * every collective, counts 0, 1, small primes and larger ones (shards that
 * do not divide), int32 / float / double with SUM, MAX and AVG, in place and
 * not, roots drawn from a fixed-seed generator, every per-level algorithm
 * combination on small shapes (refused exactly when a level's algorithm
 * lacks the phase it would run), plan_append on its own, bad arguments, and
 * the point of the hierarchy: on 8 groups of 8, fewer messages cross the
 * outer level than with the flat ring / pairwise plans.
 *
 * Usage: test_hier_plan [-q] [-v]   (-q: smaller sweep, for sanitizer builds)
 * Prints "test_hier_plan: N checks passed"; exit status non-zero on failure. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chorus.h"
#include "coll.h"
#include "hier_plan.h"
#include "plan.h"
#include "plan_model.h"
#include "reduce.h"

static unsigned long long checks, failures;
static int verbose;
#define MAX_PRINTED 30

#define FAIL(...)                                             \
    do {                                                      \
        failures++;                                           \
        if (failures <= MAX_PRINTED) {                        \
            printf("FAIL: " __VA_ARGS__);                     \
            putchar('\n');                                    \
        } else if (failures == MAX_PRINTED + 1) {             \
            printf("FAIL: (further failures not printed)\n"); \
        }                                                     \
    } while (0)

#define FILL 0xee
#define MAX_RANKS 768

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        printf("test_hier_plan: out of memory\n");
        exit(1);
    }
    return p;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) { return mix(rng_state++); }

/* ---- one case ------------------------------------------------------------------------ */

struct tcase {
    coll_kind_t kind;
    int nlevels, group[HIER_MAX_LEVELS];
    algo_t algo[HIER_MAX_LEVELS];
    int n;
    size_t count;
    int root, in_place;
    chorus_datatype_t type;
    chorus_op_t op;
    uint64_t pipe_min; /* hier_args.pipe_min_bytes: small to pipeline small vectors */
};

static char *case_name(const struct tcase *c, char *out, size_t cap)
{
    int k = snprintf(out, cap, "%s groups=(", coll_name(c->kind));
    for (int i = 0; i < c->nlevels && k > 0 && (size_t)k < cap; i++)
        k += snprintf(out + k, cap - (size_t)k, "%s%d:%s", i ? "," : "", c->group[i],
                      algo_name(c->algo[i]));
    if (k > 0 && (size_t)k < cap)
        snprintf(out + k, cap - (size_t)k, ") count=%zu root=%d %s %s/%s", c->count, c->root,
                 c->in_place ? "in-place" : "out-of-place", chorus_type_name(c->type),
                 chorus_op_name(c->op));
    return out;
}

static int is_reducing(coll_kind_t k)
{
    return k == COLL_ALLREDUCE || k == COLL_REDUCE || k == COLL_REDUCE_SCATTER;
}
static int is_rooted(coll_kind_t k) { return k == COLL_BROADCAST || k == COLL_REDUCE; }

/* Element i of rank r's input: small integers, exact in float sums. */
static long long input_of(int r, size_t i)
{
    return (long long)(mix(((uint64_t)r << 40) ^ (uint64_t)i) % 2001) - 1000;
}

static void put(chorus_datatype_t type, unsigned char *buf, size_t i, long long v)
{
    if (type == CHORUS_INT32) {
        int32_t x = (int32_t)v;
        memcpy(buf + i * 4, &x, 4);
    } else if (type == CHORUS_FLOAT32) {
        float x = (float)v;
        memcpy(buf + i * 4, &x, 4);
    } else {
        double x = (double)v;
        memcpy(buf + i * 8, &x, 8);
    }
}

/* ---- the world: buffers and plans of every rank --------------------------------------- */

struct world {
    struct plan plans[MAX_RANKS];
    struct hier_args args[MAX_RANKS];
    struct model_rank ranks[MAX_RANKS];
    unsigned char *alloc[MAX_RANKS];
    size_t *vcnt, *vsd, *vrd; /* alltoallv: [n * n] counts i -> j and displacements */
};
static struct world W;

/* Elements of the send and receive side of rank r. */
static void sizes(const struct tcase *c, int r, size_t *s, size_t *rv)
{
    const size_t n = (size_t)c->n, k = c->count;
    switch (c->kind) {
    case COLL_ALLREDUCE: *s = k; *rv = k; break;
    case COLL_REDUCE: *s = k; *rv = r == c->root ? k : 0; break;
    case COLL_BROADCAST: *s = r == c->root || c->in_place ? k : 0; *rv = k; break;
    case COLL_ALLGATHER: *s = k; *rv = n * k; break;
    case COLL_REDUCE_SCATTER: *s = n * k; *rv = k; break;
    case COLL_ALLTOALL: *s = n * k; *rv = n * k; break;
    case COLL_ALLTOALLV: {
        size_t a = 0, b = 0;
        for (int q = 0; q < c->n; q++) {
            a += W.vcnt[(size_t)r * n + (size_t)q];
            b += W.vcnt[(size_t)q * n + (size_t)r];
        }
        *s = a;
        *rv = b;
        break;
    }
    default: *s = *rv = 0; break;
    }
}

static void setup_rank(const struct tcase *c, int r)
{
    const size_t es = chorus_type_size(c->type);
    size_t s, rv;
    sizes(c, r, &s, &rv);
    int ip = c->in_place && !(c->kind == COLL_REDUCE && r != c->root);
    struct model_rank *m = &W.ranks[r];
    if (!ip) {
        W.alloc[r] = xmalloc((s + rv) * es);
        memset(W.alloc[r], FILL, (s + rv) * es);
        *m = (struct model_rank){s ? W.alloc[r] : NULL, s * es, rv ? W.alloc[r] + s * es : NULL,
                                 rv * es};
    } else {
        size_t big = s > rv ? s : rv;
        W.alloc[r] = xmalloc(big * es);
        memset(W.alloc[r], FILL, big * es);
        if (c->kind == COLL_ALLGATHER)
            *m = (struct model_rank){W.alloc[r] + (size_t)r * s * es, s * es, W.alloc[r], rv * es};
        else if (c->kind == COLL_REDUCE_SCATTER)
            *m = (struct model_rank){W.alloc[r], s * es, W.alloc[r] + (size_t)r * rv * es, rv * es};
        else
            *m = (struct model_rank){W.alloc[r], s * es, W.alloc[r], rv * es};
    }
    struct hier_args *a = &W.args[r];
    memset(a, 0, sizeof *a);
    a->base = (struct plan_args){.kind = c->kind, .nranks = c->n, .rank = r, .count = c->count,
                                 .esize = es, .root = c->root, .in_place = ip};
    if (c->kind == COLL_BROADCAST && r != c->root)
        a->base.in_place = 1; /* as the runtime tells them (src/coll_net.c whole_call) */
    a->nlevels = c->nlevels;
    memcpy(a->group, c->group, sizeof a->group);
    memcpy(a->algo, c->algo, sizeof a->algo);
    a->pipe_min_bytes = c->pipe_min;
    if (c->kind == COLL_ALLTOALLV) {
        const size_t n = (size_t)c->n;
        a->base.sendcounts = &W.vcnt[(size_t)r * n];
        a->base.sdispls = &W.vsd[(size_t)r * n];
        a->base.rdispls = &W.vrd[(size_t)r * n];
        /* recvcounts: column r, kept in vrd's second half */
        a->base.recvcounts = &W.vrd[n * n + (size_t)r * n];
    }
    if (c->kind == COLL_BROADCAST && r != c->root)
        return;
    for (size_t i = 0; i < s; i++)
        put(c->type, m->send, i, input_of(r, i));
}

/* Alltoallv: counts 0 .. count, blocks packed in rank order. */
static void vlayout(const struct tcase *c)
{
    const size_t n = (size_t)c->n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            W.vcnt[i * n + j] = (size_t)(mix(i * 977 + j + c->count) % (c->count + 1));
    for (size_t i = 0; i < n; i++) {
        size_t so = 0, ro = 0;
        for (size_t j = 0; j < n; j++) {
            W.vsd[i * n + j] = so;
            so += W.vcnt[i * n + j];
            W.vrd[i * n + j] = ro;
            ro += W.vcnt[j * n + i];
            W.vrd[n * n + i * n + j] = W.vcnt[j * n + i];
        }
    }
}

static int expect(const struct tcase *c, int r, const char *what, const unsigned char *got,
                  const unsigned char *want, size_t elems)
{
    const size_t es = chorus_type_size(c->type);
    checks++;
    if (elems == 0 || !memcmp(got, want, elems * es))
        return 0;
    size_t i = 0;
    while (!memcmp(got + i * es, want + i * es, es))
        i++;
    char name[300];
    FAIL("%s: rank %d: %s element %zu differs", case_name(c, name, sizeof name), r, what, i);
    return -1;
}

/* The reduction over every rank of element i of the (n * count) inputs. */
static unsigned char *make_reference(const struct tcase *c, size_t elems)
{
    const size_t es = chorus_type_size(c->type);
    unsigned char *ref = xmalloc(elems * es);
    for (size_t i = 0; i < elems; i++) {
        long long acc = input_of(0, i);
        for (int r = 1; r < c->n; r++) {
            long long v = input_of(r, i);
            acc = c->op == CHORUS_MAX ? (v > acc ? v : acc) : acc + v;
        }
        put(c->type, ref, i, acc);
    }
    if (c->op == CHORUS_AVG && elems) { /* the executor's division, as the model does it */
        const void *src[1] = {ref};
        chorus_reduce_many(c->type, CHORUS_AVG, ref, src, 1, elems, c->n);
    }
    return ref;
}

static void verify(const struct tcase *c)
{
    const size_t es = chorus_type_size(c->type), k = c->count, n = (size_t)c->n;
    unsigned char *ref = NULL;
    if (is_reducing(c->kind))
        ref = make_reference(c, c->kind == COLL_REDUCE_SCATTER ? n * k : k);
    for (int r = 0; r < c->n; r++) {
        const struct model_rank *m = &W.ranks[r];
        size_t s, rv;
        sizes(c, r, &s, &rv);
        unsigned char *want = xmalloc((s > rv ? s : rv) * es);
        switch (c->kind) {
        case COLL_ALLREDUCE: expect(c, r, "result", m->recv, ref, k); break;
        case COLL_REDUCE:
            if (r == c->root)
                expect(c, r, "result", m->recv, ref, k);
            break;
        case COLL_REDUCE_SCATTER:
            expect(c, r, "result", m->recv, ref + (size_t)r * k * es, k);
            break;
        case COLL_BROADCAST:
            for (size_t i = 0; i < k; i++)
                put(c->type, want, i, input_of(c->root, i));
            expect(c, r, "result", m->recv, want, k);
            break;
        case COLL_ALLGATHER:
            for (size_t q = 0; q < n; q++)
                for (size_t i = 0; i < k; i++)
                    put(c->type, want, q * k + i, input_of((int)q, i));
            expect(c, r, "result", m->recv, want, n * k);
            break;
        case COLL_ALLTOALL:
            for (size_t q = 0; q < n; q++)
                for (size_t i = 0; i < k; i++)
                    put(c->type, want, q * k + i, input_of((int)q, (size_t)r * k + i));
            expect(c, r, "result", m->recv, want, n * k);
            break;
        case COLL_ALLTOALLV:
            for (size_t q = 0; q < n; q++)
                for (size_t i = 0; i < W.vcnt[q * n + (size_t)r]; i++)
                    put(c->type, want, W.vrd[(size_t)r * n + q] + i,
                        input_of((int)q, W.vsd[q * n + (size_t)r] + i));
            expect(c, r, "result", m->recv, want, rv);
            break;
        default: break;
        }
        if (!W.args[r].base.in_place && s && !(c->kind == COLL_BROADCAST && r != c->root)) {
            for (size_t i = 0; i < s; i++)
                put(c->type, want, i, input_of(r, i));
            expect(c, r, "send buffer (must not change)", m->send, want, s);
        }
        free(want);
    }
    free(ref);
}

/* Builds every rank's plan. 0: built; 1: refused as unsupported (every
 * rank alike, with CHORUS_INVALID_USAGE); -1: failed. */
static int build_all(const struct tcase *c)
{
    char name[300];
    int refused = 0;
    for (int r = 0; r < c->n; r++) {
        setup_rank(c, r);
        chorus_result_t res = hier_plan(&W.plans[r], &W.args[r]);
        if (res == CHORUS_INVALID_USAGE && strstr(chorus_get_last_error(), "does not implement")) {
            refused++;
            continue;
        }
        if (res != CHORUS_SUCCESS) {
            FAIL("%s: rank %d: hier_plan returned %d: %s", case_name(c, name, sizeof name), r,
                 (int)res, chorus_get_last_error());
            return -1;
        }
        if (W.plans[r].algo != ALGO_HIER)
            FAIL("%s: rank %d: plan algo is %s", case_name(c, name, sizeof name), r,
                 algo_name(W.plans[r].algo));
    }
    checks++;
    if (refused && refused != c->n) {
        FAIL("%s: %d of %d ranks refused", case_name(c, name, sizeof name), refused, c->n);
        return -1;
    }
    return refused ? 1 : 0;
}

static void free_all(const struct tcase *c)
{
    for (int r = 0; r < c->n; r++) {
        plan_free(&W.plans[r]);
        free(W.alloc[r]);
        W.alloc[r] = NULL;
    }
}

static void check_result_ranges(const struct tcase *c)
{
    char name[300];
    for (int r = 0; r < c->n; r++) {
        const struct plan *p = &W.plans[r];
        uint64_t want = is_reducing(c->kind) && (c->kind != COLL_REDUCE || r == c->root)
                            ? (uint64_t)c->count * chorus_type_size(c->type) : 0;
        checks++;
        if (p->result_bytes != want || (want && (p->result_buf != PLAN_RECVBUF || p->result_off)))
            FAIL("%s: rank %d: result range %llu B, expected recvbuf+0, %llu B",
                 case_name(c, name, sizeof name), r, (unsigned long long)p->result_bytes,
                 (unsigned long long)want);
    }
}

static struct model_stats stats[MAX_RANKS];

/* Runs one case; expect_refusal: the test's own judgement of support.
 * Returns the model's rounds (0 when not run). */
static uint64_t run_case(const struct tcase *c, int expect_refusal)
{
    char name[300];
    uint64_t rounds = 0;
    if (c->kind == COLL_ALLTOALLV)
        vlayout(c);
    int b = build_all(c);
    checks++;
    if (b >= 0 && b != expect_refusal)
        FAIL("%s: %s", case_name(c, name, sizeof name),
             b ? "refused, but every level's algorithm implements its phases"
               : "built, but a level's algorithm lacks its phase");
    if (b == 0) {
        struct model_job job = {c->n, W.plans, W.ranks, c->type, c->op};
        struct model_report rep = {.stats = stats};
        check_result_ranges(c);
        checks++;
        if (model_run(&job, &rep))
            FAIL("%s: %s", case_name(c, name, sizeof name), rep.error);
        else
            verify(c);
        rounds = rep.rounds;
    }
    free_all(c);
    return rounds;
}

/* ---- which combinations are supported (the test's own table) ------------------------------ */

static int supports(algo_t a, coll_kind_t k)
{
    switch (a) {
    case ALGO_AUTO: return 1;
    case ALGO_RING:
        return k == COLL_ALLREDUCE || k == COLL_ALLGATHER || k == COLL_REDUCE_SCATTER ||
               k == COLL_BROADCAST || k == COLL_REDUCE;
    case ALGO_RHD: return k == COLL_ALLREDUCE || k == COLL_ALLGATHER || k == COLL_REDUCE_SCATTER;
    case ALGO_TREE: return k == COLL_ALLREDUCE || k == COLL_BROADCAST || k == COLL_REDUCE;
    case ALGO_BRUCK: return k == COLL_ALLGATHER || k == COLL_ALLTOALL;
    case ALGO_PAIRWISE: return k == COLL_ALLTOALL || k == COLL_ALLTOALLV;
    case ALGO_DIRECT:
        return k == COLL_ALLTOALL || k == COLL_ALLTOALLV || k == COLL_ALLGATHER ||
               k == COLL_REDUCE_SCATTER || k == COLL_ALLREDUCE || k == COLL_BROADCAST;
    case ALGO_DISSEMINATION: return k == COLL_BARRIER;
    default: return 0;
    }
}

/* 1 if some active level's algorithm lacks a phase it runs there. */
static int should_refuse(const struct tcase *c)
{
    int top = -1, active = 0, direct = 0;
    for (int i = 0; i < c->nlevels; i++)
        if (c->group[i] > 1) {
            top = i;
            active++;
            direct += c->algo[i] == ALGO_DIRECT;
        }
    if (c->kind == COLL_REDUCE && active > 1 && direct == active)
        return 0; /* the composed direct reduce (algos/hier_reduce_plan.c) */
    for (int i = 0; i < c->nlevels; i++) {
        if (c->group[i] == 1)
            continue;
        if (c->kind == COLL_ALLREDUCE && i != top) {
            if (!supports(c->algo[i], COLL_REDUCE_SCATTER) || !supports(c->algo[i], COLL_ALLGATHER))
                return 1;
        } else if (!supports(c->algo[i], c->kind)) {
            return 1;
        }
    }
    return 0;
}

/* ---- the sweeps ------------------------------------------------------------------------------ */

struct shape {
    int nlevels, group[HIER_MAX_LEVELS];
};

static int shape_n(const struct shape *s)
{
    int n = 1;
    for (int i = 0; i < s->nlevels; i++)
        n *= s->group[i];
    return n;
}

static const coll_kind_t kinds[] = {COLL_ALLREDUCE, COLL_ALLGATHER, COLL_REDUCE_SCATTER,
                                    COLL_ALLTOALL,  COLL_ALLTOALLV, COLL_BROADCAST,
                                    COLL_REDUCE,    COLL_BARRIER};
#define NKINDS (int)(sizeof kinds / sizeof *kinds)

struct typeop {
    chorus_datatype_t type;
    chorus_op_t op;
};
static const struct typeop reducing[] = {
    {CHORUS_INT32, CHORUS_SUM},   {CHORUS_FLOAT32, CHORUS_SUM}, {CHORUS_FLOAT64, CHORUS_SUM},
    {CHORUS_INT32, CHORUS_MAX},   {CHORUS_FLOAT64, CHORUS_MAX}, {CHORUS_INT32, CHORUS_AVG},
    {CHORUS_FLOAT32, CHORUS_AVG}, {CHORUS_FLOAT64, CHORUS_AVG},
};
static const struct typeop moving[] = {{CHORUS_INT32, CHORUS_SUM}, {CHORUS_FLOAT64, CHORUS_SUM}};

/* Per-level algorithm profiles of the main sweep: AUTO everywhere, the
 * bandwidth algorithms, the latency algorithms. */
static algo_t profile_algo(int profile, coll_kind_t k, int is_top)
{
    if (profile == 0)
        return ALGO_AUTO;
    int bw = profile == 1;
    switch (k) {
    case COLL_ALLREDUCE: return bw ? ALGO_RING : (is_top ? ALGO_TREE : ALGO_RHD);
    case COLL_ALLGATHER: return bw ? ALGO_RING : ALGO_BRUCK;
    case COLL_REDUCE_SCATTER: return bw ? ALGO_RING : ALGO_RHD;
    case COLL_ALLTOALL: return bw ? ALGO_PAIRWISE : ALGO_BRUCK;
    case COLL_ALLTOALLV: return bw ? ALGO_PAIRWISE : ALGO_DIRECT;
    case COLL_BROADCAST:
    case COLL_REDUCE: return bw ? ALGO_RING : ALGO_TREE;
    default: return ALGO_DISSEMINATION;
    }
}

static void sweep_shape(const struct shape *s, int quick)
{
    const int n = shape_n(s);
    size_t counts[] = {0, 1, 2, 3, 5, 7, 13, 31, 97, 1000, 4099};
    const int ncounts = quick ? 8 : (int)(sizeof counts / sizeof *counts);
    int top = 0;
    for (int i = 0; i < s->nlevels; i++)
        if (s->group[i] > 1)
            top = i;
    for (int ki = 0; ki < NKINDS; ki++) {
        const coll_kind_t kind = kinds[ki];
        const struct typeop *tos = is_reducing(kind) ? reducing : moving;
        const int ntos = kind == COLL_BARRIER ? 1
                         : is_reducing(kind) ? (int)(sizeof reducing / sizeof *reducing)
                                             : (int)(sizeof moving / sizeof *moving);
        uint64_t most_rounds = 0;
        for (int profile = 0; profile < 3; profile++) {
            for (int ci = 0; ci < ncounts; ci++) {
                size_t count = counts[ci];
                if (kind == COLL_BARRIER && count)
                    continue;
                if (count > 1000 && (kind == COLL_ALLTOALL || kind == COLL_ALLTOALLV ||
                                     kind == COLL_ALLGATHER || kind == COLL_REDUCE_SCATTER))
                    continue; /* n blocks of it per rank: 1000 covers the same paths */
                for (int ip = 0; ip < 2; ip++) {
                    if (ip && (kind == COLL_BARRIER || kind == COLL_ALLTOALLV))
                        continue;
                    for (int t = 0; t < ntos; t++) {
                        /* big counts and the latency profiles: one type/op per case */
                        if ((count > 97 || profile == 2) && t % 3 != (int)(count % 3))
                            continue;
                        struct tcase c = {.kind = kind, .nlevels = s->nlevels, .n = n,
                                          .count = count, .in_place = ip, .type = tos[t].type,
                                          .op = tos[t].op};
                        memcpy(c.group, s->group, sizeof c.group);
                        for (int i = 0; i < s->nlevels; i++)
                            c.algo[i] = profile_algo(profile, kind, i == top);
                        int nroots = is_rooted(kind) ? (n < 3 ? n : 3) : 1;
                        for (int ri = 0; ri < nroots; ri++) {
                            c.root = !is_rooted(kind) ? 0
                                     : ri == 0         ? n - 1
                                                       : (int)(rnd() % (uint64_t)n);
                            uint64_t rounds = run_case(&c, should_refuse(&c));
                            most_rounds = rounds > most_rounds ? rounds : most_rounds;
                        }
                    }
                }
            }
        }
        if (verbose) {
            printf("%-14s groups=(", coll_name(kind));
            for (int i = 0; i < s->nlevels; i++)
                printf("%s%d", i ? "," : "", s->group[i]);
            printf(") n=%d: at most %llu message rounds\n", n, (unsigned long long)most_rounds);
        }
    }
}

/* The pipelined allreduce: lockstep algorithms on every level (ring,
 * direct, rhd on powers of two), segments small enough that the vectors of
 * the sweep make several; results right, in and out of place, with a tail
 * after the segments, and the plan really pipelined (fewer steps than the
 * segments run one after another). */
/* Broadcast or reduce with direct on every level (the pipelined multi-level
 * plans): every root (every 3rd when quick, every 7th on more than 24
 * ranks), in and out of place, odd counts; at least one case must be cut
 * into overlapping pieces, which take fewer steps than pieces x steps. */
static void sweep_rooted_pipelined(coll_kind_t kind, const struct shape *shapes, size_t nshapes,
                                   int quick)
{
    static const size_t counts[] = {1, 2, 7, 64, 301, 1001, 32768};
    const char *what = kind == COLL_BROADCAST ? "broadcast" : "reduce";
    int piped = 0;
    for (size_t si = 0; si < nshapes; si++) {
        const struct shape *s = &shapes[si];
        const int n = shape_n(s), big = n > 24;
        int active = 0, g[HIER_MAX_LEVELS];
        for (int i = 0; i < s->nlevels; i++)
            if (s->group[i] > 1)
                g[active++] = s->group[i];
        const int steps = kind == COLL_BROADCAST ? hier_bcast_steps(active)
                                                 : hier_reduce_steps(active, g);
        for (size_t ci = 0; ci < sizeof counts / sizeof *counts; ci++) {
            for (int ip = 0; ip < 2; ip++) {
                for (int root = 0; root < n; root++) {
                    if ((quick || big) && (root + (int)ci + ip) % (big ? 7 : 3))
                        continue;
                    struct tcase c = {.kind = kind, .nlevels = s->nlevels, .n = n,
                                      .count = counts[ci], .in_place = ip, .root = root,
                                      .type = moving[ci % 2].type, .op = moving[ci % 2].op,
                                      .pipe_min = 24};
                    memcpy(c.group, s->group, sizeof c.group);
                    for (int i = 0; i < s->nlevels; i++)
                        c.algo[i] = ALGO_DIRECT;
                    const uint64_t bytes = c.count * chorus_type_size(c.type);
                    const int np = kind == COLL_BROADCAST ? hier_bcast_pieces(bytes, c.pipe_min)
                                                          : hier_reduce_pieces(bytes, c.pipe_min);
                    if (np >= 4 && build_all(&c) == 0) { /* overlapping: fewer steps */
                        checks++;
                        if (W.plans[root].nsteps >= np * steps)
                            FAIL("%s on %d ranks: %d pieces in %d steps, not pipelined", what,
                                 n, np, W.plans[root].nsteps);
                        piped++;
                        free_all(&c);
                    }
                    run_case(&c, 0);
                }
            }
        }
    }
    checks++;
    if (piped == 0)
        FAIL("no %s was cut into overlapping pieces", what);
}

static void sweep_pipelined(int quick)
{
    static const struct shape shapes[] = {{2, {2, 2}}, {2, {4, 2}}, {3, {2, 2, 2}}, {2, {2, 4}},
                                          {2, {3, 4}}, {3, {2, 1, 3}}, {2, {5, 3}}};
    static const algo_t lock[] = {ALGO_RING, ALGO_DIRECT, ALGO_RHD};
    static const size_t counts[] = {64, 301, 1000, 4099, 20011};
    int pipelined = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const struct shape *s = &shapes[si];
        const int n = shape_n(s);
        int combos = 1;
        for (int i = 0; i < s->nlevels; i++)
            combos *= 3;
        for (int cmb = 0; cmb < combos; cmb++) {
            struct tcase c = {.kind = COLL_ALLREDUCE, .nlevels = s->nlevels, .n = n,
                              .pipe_min = 64};
            memcpy(c.group, s->group, sizeof c.group);
            for (int i = 0, x = cmb; i < s->nlevels; i++, x /= 3)
                c.algo[i] = lock[x % 3];
            for (size_t ci = 0; ci < sizeof counts / sizeof *counts; ci++) {
                if (quick && ci % 2)
                    continue;
                c.count = counts[ci];
                for (int ip = 0; ip < 2; ip++) {
                    const struct typeop *to = &reducing[(cmb + ci + (size_t)ip) % 8];
                    c.in_place = ip;
                    c.type = to->type;
                    c.op = to->op;
                    uint64_t seg;
                    int nseg = hier_pipe_segments(c.group, c.nlevels, c.count,
                                                  chorus_type_size(c.type), c.pipe_min, &seg);
                    if (build_all(&c) == 0) {
                        struct model_job job = {c.n, W.plans, W.ranks, c.type, c.op};
                        struct model_report rep = {.stats = stats};
                        char name[300];
                        checks++;
                        if (model_run(&job, &rep))
                            FAIL("pipelined %s: %s", case_name(&c, name, sizeof name), rep.error);
                        else
                            verify(&c);
                        /* pipelined: far fewer steps than nseg full sequences */
                        if (nseg >= 4) {
                            int steps = W.plans[n - 1].nsteps;
                            pipelined += steps < nseg * 4;
                        }
                    }
                    free_all(&c);
                }
            }
        }
    }
    /* allgather with direct on every level: blocks cut into pieces */
    int pieces = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const struct shape *s = &shapes[si];
        const int n = shape_n(s);
        static const size_t agcounts[] = {1, 2, 7, 64, 301};
        for (size_t ci = 0; ci < sizeof agcounts / sizeof *agcounts; ci++) {
            for (int ip = 0; ip < 2; ip++) {
                struct tcase c = {.kind = COLL_ALLGATHER, .nlevels = s->nlevels, .n = n,
                                  .count = agcounts[ci], .in_place = ip,
                                  .type = moving[ci % 2].type, .op = moving[ci % 2].op,
                                  .pipe_min = 16};
                memcpy(c.group, s->group, sizeof c.group);
                for (int i = 0; i < s->nlevels; i++)
                    c.algo[i] = ALGO_DIRECT;
                int active = 0;
                for (int i = 0; i < s->nlevels; i++)
                    active += s->group[i] > 1;
                pieces += hier_ag_pieces(n, active, c.count, chorus_type_size(c.type), 16) > 1;
                run_case(&c, 0);
            }
        }
    }
    /* reduce_scatter with lockstep levels: pieces copied into level order
     * and pipelined */
    int rs_piped = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const struct shape *s = &shapes[si];
        const int n = shape_n(s);
        int combos = 1;
        for (int i = 0; i < s->nlevels; i++)
            combos *= 3;
        static const size_t rscounts[] = {16, 64, 301};
        for (int cmb = 0; cmb < combos; cmb++) {
            for (size_t ci = 0; ci < sizeof rscounts / sizeof *rscounts; ci++) {
                if (quick && (cmb + (int)ci) % 2)
                    continue;
                for (int ip = 0; ip < 2; ip++) {
                    const struct typeop *to = &reducing[((size_t)cmb + ci + (size_t)ip) % 8];
                    struct tcase c = {.kind = COLL_REDUCE_SCATTER, .nlevels = s->nlevels,
                                      .n = n, .count = rscounts[ci], .in_place = ip,
                                      .type = to->type, .op = to->op, .pipe_min = 16};
                    memcpy(c.group, s->group, sizeof c.group);
                    for (int i = 0, x = cmb; i < s->nlevels; i++, x /= 3)
                        c.algo[i] = lock[x % 3];
                    rs_piped += hier_rs_pieces(c.group, c.nlevels, c.count,
                                               chorus_type_size(c.type), 16) > 1;
                    run_case(&c, 0);
                }
            }
        }
    }
    /* broadcast with direct on every level: the root's member broadcasts
     * inside, slices cross per position, the others allgather, in pieces
     * that overlap (every root, in and out of place, odd byte counts) */
    static const struct shape bshapes[] = {{2, {2, 2}}, {2, {3, 2}}, {2, {2, 3}},
                                           {3, {2, 3, 2}}, {3, {2, 1, 3}}, {3, {3, 2, 2}},
                                           {2, {5, 3}}, {4, {2, 2, 2, 2}}};
    sweep_rooted_pipelined(COLL_BROADCAST, bshapes, sizeof bshapes / sizeof *bshapes, quick);
    /* reduce with direct on every level: the broadcast backwards, its
     * reduce-scatters chunked; 18 members run the reduce-scatters one peer
     * per step (above DIRECT_CHUNKED_MAX), at level 0 and across */
    static const struct shape rshapes[] = {{2, {2, 2}}, {2, {3, 2}}, {2, {2, 3}},
                                           {3, {2, 3, 2}}, {3, {2, 1, 3}}, {3, {3, 2, 2}},
                                           {2, {5, 3}}, {4, {2, 2, 2, 2}}, {3, {2, 4, 3}},
                                           {2, {18, 2}}, {2, {2, 18}}};
    sweep_rooted_pipelined(COLL_REDUCE, rshapes, sizeof rshapes / sizeof *rshapes, quick);
    checks++;
    if (rs_piped == 0)
        FAIL("no reduce_scatter was cut into pieces");
    checks++;
    if (pieces == 0)
        FAIL("no allgather was cut into pieces");
    checks++;
    if (pipelined == 0)
        FAIL("no pipelined allreduce was built with overlapping segments");
    if (verbose)
        printf("pipelined allreduce: %d cases with 4 or more segments overlapping\n", pipelined);
}

/* Every combination of per-level algorithms on small shapes: each one is
 * refused exactly when a level's algorithm lacks its phase, and the others
 * give right results. */
static void sweep_combinations(const struct shape *s, int quick)
{
    static const algo_t algos[] = {ALGO_AUTO,  ALGO_RING,     ALGO_RHD,    ALGO_TREE,
                                   ALGO_BRUCK, ALGO_PAIRWISE, ALGO_DIRECT, ALGO_DISSEMINATION};
    const int na = (int)(sizeof algos / sizeof *algos), n = shape_n(s);
    int combos = 1;
    for (int i = 0; i < s->nlevels; i++)
        combos *= na;
    static const size_t counts[] = {0, 1, 5, 13, 40};
    const int ncounts = quick ? 3 : 5;
    for (int ki = 0; ki < NKINDS; ki++) {
        for (int combo = 0; combo < combos; combo++) {
            struct tcase c = {.kind = kinds[ki], .nlevels = s->nlevels, .n = n,
                              .type = CHORUS_INT32, .op = CHORUS_SUM};
            memcpy(c.group, s->group, sizeof c.group);
            for (int i = 0, x = combo; i < s->nlevels; i++, x /= na)
                c.algo[i] = algos[x % na];
            int refuse = should_refuse(&c);
            for (int ci = 0; ci < ncounts; ci++) {
                c.count = kinds[ki] == COLL_BARRIER ? 0 : counts[ci];
                c.in_place = ci % 2 && kinds[ki] != COLL_ALLTOALLV;
                c.type = ci == 3 ? CHORUS_FLOAT64 : CHORUS_INT32;
                c.root = (int)(rnd() % (uint64_t)n);
                run_case(&c, refuse);
                if (refuse || kinds[ki] == COLL_BARRIER)
                    break; /* one refusal per combination is enough */
            }
        }
    }
}

/* Field by field: struct padding holds whatever the allocator left. */
static int same_ops(const struct plan *a, const struct plan *b)
{
    for (uint32_t i = 0; i < a->nops; i++) {
        const struct plan_op *x = &a->ops[i], *y = &b->ops[i];
        if (x->kind != y->kind || x->src_buf != y->src_buf || x->dst_buf != y->dst_buf ||
            x->peer != y->peer || x->src_off != y->src_off || x->dst_off != y->dst_off ||
            x->bytes != y->bytes)
            return 0;
    }
    return 1;
}

/* One active level (groups of 1 elsewhere): the very plan the flat
 * algorithm builds. */
static void test_flat_equivalence(void)
{
    static const struct {
        coll_kind_t kind;
        algo_t algo;
    } pairs[] = {{COLL_ALLREDUCE, ALGO_RING},     {COLL_ALLREDUCE, ALGO_RHD},
                 {COLL_ALLGATHER, ALGO_BRUCK},   {COLL_REDUCE_SCATTER, ALGO_RING},
                 {COLL_ALLTOALL, ALGO_PAIRWISE}, {COLL_BROADCAST, ALGO_TREE},
                 {COLL_REDUCE, ALGO_RING},       {COLL_BARRIER, ALGO_DISSEMINATION}};
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        for (int r = 0; r < 6; r++) {
            struct hier_args h = {.base = {.kind = pairs[i].kind, .nranks = 6, .rank = r,
                                           .count = 11, .esize = 4, .root = 4},
                                  .nlevels = 3, .group = {1, 6, 1},
                                  .algo = {ALGO_TREE, pairs[i].algo, ALGO_BRUCK}};
            struct plan a = {0}, b = {0};
            chorus_result_t ra = hier_plan(&a, &h), rb = plan_build(&b, &h.base, pairs[i].algo);
            checks++;
            if (ra || rb || a.nsteps != b.nsteps || a.nops != b.nops ||
                a.scratch_bytes != b.scratch_bytes ||
                !same_ops(&a, &b) ||
                memcmp(a.step_first, b.step_first, ((size_t)a.nsteps + 1) * sizeof *a.step_first))
                FAIL("%s with one active level (%s) differs from the flat plan on rank %d",
                     coll_name(pairs[i].kind), algo_name(pairs[i].algo), r);
            plan_free(&a);
            plan_free(&b);
        }
    }
}

/* Vectors of 64 KiB and more: ALGO_AUTO switches to the ring there. */
static void test_auto_large(void)
{
    const coll_kind_t ks[] = {COLL_ALLREDUCE, COLL_ALLGATHER, COLL_REDUCE_SCATTER, COLL_BROADCAST,
                              COLL_REDUCE};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
        const int per_rank = ks[i] == COLL_ALLGATHER || ks[i] == COLL_REDUCE_SCATTER;
        struct tcase c = {.kind = ks[i], .nlevels = 2, .group = {2, 3}, .n = 6,
                          .count = per_rank ? 3001 : 20011, .root = 3, .in_place = (int)i % 2,
                          .type = CHORUS_FLOAT64, .op = i % 2 ? CHORUS_AVG : CHORUS_SUM};
        run_case(&c, 0);
    }
}

/* ---- plan_append on its own ------------------------------------------------------------------ */

static void test_append(void)
{
    struct plan src = {0}, dst = {0};
    plan_reset(&src, ALGO_RING);
    plan_reset(&dst, ALGO_HIER);
    plan_step(&dst);
    plan_copy(&dst, PLAN_SENDBUF, 0, PLAN_RECVBUF, 0, 8);
    plan_step(&src);
    plan_send(&src, 1, PLAN_SENDBUF, 4, 8);
    plan_recv_reduce(&src, 0, PLAN_SENDBUF, 0, PLAN_SCRATCH, 16, 8);
    plan_step(&src);
    plan_recv(&src, 1, PLAN_RECVBUF, 8, 8);
    plan_copy(&src, PLAN_SCRATCH, 16, PLAN_RECVBUF, 0, 8);
    src.scratch_bytes = 40;
    const int peers[2] = {7, 3};
    const plan_buf_t map[PLAN_NBUFS] = {PLAN_RECVBUF, PLAN_SCRATCH, PLAN_SCRATCH};
    const uint64_t base[PLAN_NBUFS] = {100, 1000, 64};
    chorus_result_t res = plan_append(&dst, &src, peers, map, base);
    const struct plan_op *o = dst.ops;
    checks++;
    if (res || dst.nsteps != 3 || dst.nops != 5 || dst.step_first[1] != 1 ||
        dst.step_first[2] != 3 || o[1].kind != PLAN_SEND || o[1].peer != 3 ||
        o[1].src_buf != PLAN_RECVBUF || o[1].src_off != 104 || o[2].peer != 7 ||
        o[2].src_buf != PLAN_RECVBUF || o[2].src_off != 100 || o[2].dst_buf != PLAN_SCRATCH ||
        o[2].dst_off != 80 || o[3].dst_buf != PLAN_SCRATCH || o[3].dst_off != 1008 ||
        o[4].src_off != 80 || o[4].dst_off != 1000 || dst.scratch_bytes != 1016)
        FAIL("plan_append remaps wrongly (result %d, %d steps, %u ops, scratch %zu)", (int)res,
             dst.nsteps, dst.nops, dst.scratch_bytes);
    /* a range src writes may not land in the send buffer */
    const plan_buf_t bad[PLAN_NBUFS] = {PLAN_SENDBUF, PLAN_SENDBUF, PLAN_SCRATCH};
    res = plan_append(&dst, &src, peers, bad, base);
    checks++;
    if (res != CHORUS_INVALID_ARGUMENT)
        FAIL("plan_append maps written ranges into the send buffer (result %d)", (int)res);
    plan_free(&src);
    plan_free(&dst);
}

/* ---- plan_stride_input on its own ------------------------------------------------------------ */

/* Blocks of 4 bytes, block b read at place[b]: ops are cut where a block
 * ends (a 0-byte op and empty steps stay), only send-buffer ranges move,
 * and an op whose source and destination sit differently in a block is
 * refused. */
static void test_stride(void)
{
    struct plan p = {0};
    const uint64_t place[3] = {40, 0, 80};
    plan_reset(&p, ALGO_RING);
    plan_step(&p);
    plan_send(&p, 1, PLAN_SENDBUF, 2, 8);                       /* blocks 0 (2..3), 1, 2 (0..1) */
    plan_recv_reduce(&p, 1, PLAN_SENDBUF, 4, PLAN_SCRATCH, 12, 4); /* block 1, one op */
    plan_step(&p);
    plan_send(&p, 1, PLAN_SENDBUF, 0, 0);
    plan_recv(&p, 1, PLAN_RECVBUF, 6, 4);                       /* cut at 8, not moved */
    /* an empty third step, as padded rhd plans have */
    uint32_t *sf = realloc(p.step_first, 4 * sizeof *sf);
    if (!sf)
        abort();
    sf[3] = sf[2];
    p.step_first = sf;
    p.nsteps = 3;
    p.steps_cap = 4;
    chorus_result_t res = plan_stride_input(&p, 4, 3, place);
    const struct plan_op *o = p.ops;
    checks++;
    if (res || p.nsteps != 3 || p.nops != 7 || p.step_first[1] != 4 || p.step_first[2] != 7 ||
        p.step_first[3] != 7 || o[0].src_off != 42 || o[0].bytes != 2 || o[1].src_off != 0 ||
        o[1].bytes != 4 || o[2].src_off != 80 || o[2].bytes != 2 || o[3].src_off != 0 ||
        o[3].dst_off != 12 || o[3].bytes != 4 || o[4].bytes != 0 || o[5].dst_off != 6 ||
        o[5].bytes != 2 || o[6].dst_off != 8 || o[6].bytes != 2)
        FAIL("plan_stride_input cuts or moves wrongly (result %d, %d steps, %u ops)", (int)res,
             p.nsteps, p.nops);
    plan_reset(&p, ALGO_RING);
    plan_step(&p);
    plan_recv_reduce(&p, 1, PLAN_SENDBUF, 4, PLAN_SCRATCH, 2, 4);
    res = plan_stride_input(&p, 4, 3, place);
    checks++;
    if (res != CHORUS_INVALID_ARGUMENT)
        FAIL("plan_stride_input cuts an op whose ends sit differently in a block (result %d)",
             (int)res);
    plan_free(&p);
}

/* ---- refusals -------------------------------------------------------------------------------- */

static void test_refusals(void)
{
    struct {
        const char *what;
        struct hier_args h;
        chorus_result_t want;
    } bad[] = {
        {"product != nranks",
         {.base = {.kind = COLL_ALLREDUCE, .nranks = 6, .count = 1, .esize = 4}, .nlevels = 2,
          .group = {2, 2}}, CHORUS_INVALID_ARGUMENT},
        {"0 levels", {.base = {.kind = COLL_ALLREDUCE, .nranks = 1, .count = 1, .esize = 4},
                      .nlevels = 0}, CHORUS_INVALID_ARGUMENT},
        {"too many levels", {.base = {.kind = COLL_ALLREDUCE, .nranks = 1, .count = 1, .esize = 4},
                             .nlevels = HIER_MAX_LEVELS + 1}, CHORUS_INVALID_ARGUMENT},
        {"group 0", {.base = {.kind = COLL_ALLREDUCE, .nranks = 0, .count = 1, .esize = 4},
                     .nlevels = 2, .group = {0, 2}}, CHORUS_INVALID_ARGUMENT},
        {"rank out of range", {.base = {.kind = COLL_ALLGATHER, .nranks = 4, .rank = 4, .count = 1,
                                        .esize = 4}, .nlevels = 2, .group = {2, 2}},
         CHORUS_INVALID_ARGUMENT},
        {"root out of range", {.base = {.kind = COLL_BROADCAST, .nranks = 4, .count = 1, .esize = 4,
                                        .root = 9}, .nlevels = 2, .group = {2, 2}},
         CHORUS_INVALID_ARGUMENT},
        {"send", {.base = {.kind = COLL_SEND, .nranks = 4, .count = 1, .esize = 4}, .nlevels = 2,
                  .group = {2, 2}}, CHORUS_INVALID_ARGUMENT},
        {"overflow", {.base = {.kind = COLL_ALLGATHER, .nranks = 4, .count = SIZE_MAX / 8,
                               .esize = 4}, .nlevels = 2, .group = {2, 2}},
         CHORUS_INVALID_ARGUMENT},
        {"tree reduce-scatters", {.base = {.kind = COLL_ALLREDUCE, .nranks = 4, .count = 1,
                                           .esize = 4}, .nlevels = 2, .group = {2, 2},
                                  .algo = {ALGO_TREE, ALGO_RING}}, CHORUS_INVALID_USAGE},
        {"hier as a level", {.base = {.kind = COLL_ALLGATHER, .nranks = 4, .count = 1, .esize = 4},
                             .nlevels = 2, .group = {2, 2}, .algo = {ALGO_HIER, ALGO_RING}},
         CHORUS_INVALID_USAGE},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct plan p = {0};
        chorus_result_t res = hier_plan(&p, &bad[i].h);
        checks++;
        if (res != bad[i].want || p.nsteps != 0)
            FAIL("hier_plan with %s: result %d (%d steps), expected %d", bad[i].what, (int)res,
                 p.nsteps, (int)bad[i].want);
        plan_free(&p);
    }
    /* plan_build keeps refusing ALGO_HIER: it is the runtime's composition */
    struct plan p = {0};
    struct plan_args a = {.kind = COLL_ALLREDUCE, .nranks = 4, .count = 1, .esize = 4};
    checks++;
    if (plan_build(&p, &a, ALGO_HIER) != CHORUS_INVALID_USAGE)
        FAIL("plan_build accepts ALGO_HIER");
    plan_free(&p);
}

/* ---- the point of the hierarchy -------------------------------------------------------------- */

/* Messages rank r's plan sends to ranks in another outer group (inner size g). */
static uint64_t outer_msgs(const struct plan *p, int r, int g)
{
    uint64_t k = 0;
    for (uint32_t i = 0; i < p->nops; i++)
        k += p->ops[i].kind == PLAN_SEND && p->ops[i].peer / g != r / g;
    return k;
}

/* On 8 groups of 8: the composed plan sends fewer messages across the outer
 * level (per rank at most, and in all) and takes fewer message rounds than
 * the flat plan of the same algorithm. */
static void compare_cost(coll_kind_t kind, algo_t algo, size_t count)
{
    const int n = 64, g = 8;
    uint64_t rounds[2] = {0, 0}, most[2] = {0, 0}, total[2] = {0, 0};
    struct tcase c = {.kind = kind, .nlevels = 2, .group = {g, n / g}, .algo = {algo, algo},
                      .n = n, .count = count, .type = CHORUS_INT32, .op = CHORUS_SUM};
    for (int hier = 0; hier < 2; hier++) {
        int ok = 1;
        for (int r = 0; r < n && ok; r++) {
            setup_rank(&c, r);
            chorus_result_t res = hier ? hier_plan(&W.plans[r], &W.args[r])
                                       : plan_build(&W.plans[r], &W.args[r].base, algo);
            ok = res == CHORUS_SUCCESS;
        }
        checks++;
        struct model_job job = {n, W.plans, W.ranks, c.type, c.op};
        struct model_report rep = {.stats = stats};
        if (!ok || model_run(&job, &rep)) {
            FAIL("cost comparison %s %s: %s", coll_name(kind), algo_name(algo),
                 ok ? rep.error : chorus_get_last_error());
        } else {
            verify(&c);
            rounds[hier] = rep.rounds;
            for (int r = 0; r < n; r++) {
                uint64_t m = outer_msgs(&W.plans[r], r, g);
                most[hier] = m > most[hier] ? m : most[hier];
                total[hier] += m;
            }
        }
        free_all(&c);
    }
    checks++;
    if (!(most[1] < most[0] && total[1] < total[0] && rounds[1] < rounds[0]))
        FAIL("%s %s on 8x8: hierarchy does not pay: outer messages per rank at most %llu (flat "
             "%llu), in all %llu (flat %llu), rounds %llu (flat %llu)", coll_name(kind),
             algo_name(algo), (unsigned long long)most[1], (unsigned long long)most[0],
             (unsigned long long)total[1], (unsigned long long)total[0],
             (unsigned long long)rounds[1], (unsigned long long)rounds[0]);
    if (verbose)
        printf("8x8 %-10s %-9s outer msgs/rank max %3llu (flat %3llu), total %5llu (flat %5llu), "
               "rounds %3llu (flat %3llu)\n", coll_name(kind), algo_name(algo),
               (unsigned long long)most[1], (unsigned long long)most[0],
               (unsigned long long)total[1], (unsigned long long)total[0],
               (unsigned long long)rounds[1], (unsigned long long)rounds[0]);
}

/* A 768-rank supernode shape (2, 8, 48), as the simulator will model it:
 * the model runs the collectives whose plans have few ops per step; for
 * allgather and alltoall (copy steps of up to 768 ops, which the model's
 * pairwise hazard check makes slow) every rank's plan is built and its
 * messages across the outer level counted, and the model runs a
 * (2, 4, 12) shape instead. */
static void test_supernode(int quick)
{
    const coll_kind_t big[] = {COLL_ALLREDUCE, COLL_BROADCAST, COLL_REDUCE, COLL_BARRIER,
                               COLL_ALLGATHER, COLL_ALLTOALL};
    for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
        const int many = big[i] == COLL_ALLTOALL || big[i] == COLL_ALLGATHER;
        struct tcase c = {.kind = big[i], .nlevels = 3, .group = {2, 8, 48}, .n = 768,
                          .count = many ? 3 : 1001, .root = 333, .type = CHORUS_FLOAT32,
                          .op = CHORUS_SUM};
        clock_t t0 = clock();
        if (!many) {
            run_case(&c, 0);
        } else {
            uint64_t most = 0;
            int ok = 1;
            for (int r = 0; r < c.n && ok; r++) {
                setup_rank(&c, r);
                ok = hier_plan(&W.plans[r], &W.args[r]) == CHORUS_SUCCESS;
                uint64_t m = ok ? outer_msgs(&W.plans[r], r, 16) : 0;
                most = m > most ? m : most;
            }
            checks++;
            /* alltoall (pairwise): one message to each of the 47 other groups of 16;
             * allgather (rhd, small): fewer */
            if (!ok || most == 0 || most > 47 || (big[i] == COLL_ALLTOALL && most != 47))
                FAIL("%s on (2,8,48): %s; at most %llu outer messages per rank (47 expected "
                     "for alltoall, at most 47 for allgather)",
                     coll_name(c.kind), ok ? "built" : chorus_get_last_error(),
                     (unsigned long long)most);
            free_all(&c);
            if (!quick) {
                struct tcase d = c;
                d.group[1] = 4;
                d.group[2] = 12;
                d.n = 96;
                d.root = 50;
                run_case(&d, 0);
            }
        }
        if (verbose)
            printf("768 ranks (2,8,48) %-10s count %zu: %s in %.2f s CPU\n", coll_name(c.kind),
                   c.count, many ? "built" : "built and run",
                   (double)(clock() - t0) / CLOCKS_PER_SEC);
    }
}

int main(int argc, char **argv)
{
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        quick |= !strcmp(argv[i], "-q");
        verbose |= !strcmp(argv[i], "-v");
    }
    setenv("CHORUS_LOG_LEVEL", "error", 0); /* the refusals would log warnings */
    W.vcnt = xmalloc(64 * 64 * sizeof *W.vcnt);
    W.vsd = xmalloc(64 * 64 * sizeof *W.vsd);
    W.vrd = xmalloc(2 * 64 * 64 * sizeof *W.vrd);

    test_append();
    test_stride();
    test_refusals();
    test_flat_equivalence();
    static const struct shape shapes[] = {
        {1, {2}},       {1, {5}},       {2, {2, 2}},    {2, {2, 3}},       {3, {3, 2, 2}},
        {2, {4, 2}},    {4, {2, 2, 2, 2}}, {2, {1, 4}}, {2, {5, 3}},       {3, {2, 1, 3}},
        {2, {3, 1}},    {2, {1, 1}},    {2, {3, 4}},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        if (!quick || i % 2 == 0 || shapes[i].nlevels > 2)
            sweep_shape(&shapes[i], quick);
    static const struct shape small[] = {{2, {2, 3}}, {3, {2, 1, 2}}, {3, {2, 2, 2}}};
    for (size_t i = 0; i < sizeof small / sizeof *small; i++)
        sweep_combinations(&small[i], quick);
    sweep_pipelined(quick);
    test_auto_large();
    compare_cost(COLL_ALLREDUCE, ALGO_RING, 4096);
    compare_cost(COLL_ALLTOALL, ALGO_PAIRWISE, 3);
    compare_cost(COLL_ALLGATHER, ALGO_RING, 5);
    test_supernode(quick);

    free(W.vcnt);
    free(W.vsd);
    free(W.vrd);
    if (failures) {
        printf("test_hier_plan: %llu of %llu checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_hier_plan: %llu checks passed\n", checks);
    return 0;
}
