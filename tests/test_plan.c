/* test_plan.c - every algorithm x collective pair, run on the model
 * executor (tests/plan_model.c) for many rank counts, counts, roots, types
 * and ops, in place and out of place, with every rank's output compared
 * against a reference computed directly from the inputs.
 *
 * Also: unsupported pairs and bad arguments are refused with the right
 * code, log-step algorithms take O(log n) steps and the ring O(n), and the
 * model itself catches broken plans (deadlock, mismatch, hazard, bounds).
 *
 * Usage: test_plan [-q]   (-q: fewer rank counts, for slow sanitizer builds)
 * Prints "test_plan: N checks passed"; exit status non-zero on any failure. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus.h"
#include "coll.h"
#include "plan.h"
#include "plan_model.h"

static unsigned long long checks, failures;
#define MAX_PRINTED 30

#define FAIL(...)                                               \
    do {                                                        \
        failures++;                                             \
        if (failures <= MAX_PRINTED) {                          \
            printf("FAIL: " __VA_ARGS__);                       \
            putchar('\n');                                      \
        } else if (failures == MAX_PRINTED + 1) {               \
            printf("FAIL: (further failures not printed)\n");   \
        }                                                       \
    } while (0)

#define FILL 0xee /* what output buffers hold before the run */
#define MAX_RANKS 17 /* the largest group tested */

/* ---- one test case ---------------------------------------------------------- */

struct tcase {
    algo_t algo;
    coll_kind_t kind;
    int n;
    size_t count;
    int root, in_place;
    chorus_datatype_t type;
    chorus_op_t op;
};

static char *case_name(const struct tcase *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s %s n=%d count=%zu root=%d %s %s/%s", algo_name(c->algo),
             coll_name(c->kind), c->n, c->count, c->root, c->in_place ? "in-place" : "out-of-place",
             chorus_type_name(c->type), chorus_op_name(c->op));
    return out;
}

static int is_reducing(coll_kind_t k)
{
    return k == COLL_ALLREDUCE || k == COLL_REDUCE || k == COLL_REDUCE_SCATTER;
}
static int is_rooted(coll_kind_t k) { return k == COLL_BROADCAST || k == COLL_REDUCE; }

/* ---- inputs and reference values ------------------------------------------- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* Element i of rank r's input: small integers, exact in float sums; PROD
 * gets tiny factors; int8 uses its whole range (wrapping is exact). */
static long long make_input(const struct tcase *c, int r, size_t i)
{
    uint64_t h = mix(((uint64_t)r << 40) ^ (uint64_t)i ^ ((uint64_t)c->op << 56));
    if (c->type == CHORUS_INT8)
        return (long long)(h % 256) - 128;
    if (c->op == CHORUS_PROD)
        return (long long)(h % 7) - 3;
    if (c->op == CHORUS_MIN || c->op == CHORUS_MAX)
        return (long long)(h % 2000001) - 1000000;
    return (long long)(h % 2001) - 1000;
}

static size_t esize_of(const struct tcase *c) { return chorus_type_size(c->type); }

/* make_input of every rank, computed once per case: hashing dominated. */
static long long *inputs[MAX_RANKS];
static long long input_of(int r, size_t i) { return inputs[r][i]; }

static void put(const struct tcase *c, unsigned char *buf, size_t i, long long v)
{
    if (c->type == CHORUS_INT8) {
        int8_t x = (int8_t)v;
        memcpy(buf + i, &x, 1);
    } else if (c->type == CHORUS_INT32) {
        int32_t x = (int32_t)v;
        memcpy(buf + i * 4, &x, 4);
    } else {
        float x = (float)v;
        memcpy(buf + i * 4, &x, 4);
    }
}

/* The reduction of element i over every rank's input, as the type stores it. */
static void reference_reduce(const struct tcase *c, size_t i, unsigned char *out)
{
    if (c->type == CHORUS_FLOAT32) { /* only SUM is run on floats; exact for these values */
        float acc = 0;
        for (int r = 0; r < c->n; r++)
            acc += (float)inputs[r][i];
        memcpy(out, &acc, 4);
        return;
    }
    uint32_t acc = (uint32_t)inputs[0][i];
    int32_t lo = (int32_t)acc, hi = (int32_t)acc;
    for (int r = 1; r < c->n; r++) {
        long long v = inputs[r][i];
        if (c->op == CHORUS_PROD)
            acc *= (uint32_t)v;
        else
            acc += (uint32_t)v;
        lo = v < lo ? (int32_t)v : lo;
        hi = v > hi ? (int32_t)v : hi;
    }
    int32_t res = (int32_t)acc; /* two's complement wrap, as the kernels do */
    if (c->op == CHORUS_MIN)
        res = lo;
    else if (c->op == CHORUS_MAX)
        res = hi;
    else if (c->op == CHORUS_AVG)
        res = res / c->n;
    if (c->type == CHORUS_INT8) {
        int8_t x = (int8_t)(uint8_t)(uint32_t)res;
        memcpy(out, &x, 1);
    } else {
        memcpy(out, &res, 4);
    }
}

/* ---- alltoallv layouts -------------------------------------------------------- */

struct vlayout {
    size_t *cnt;                      /* [n * n]: elements i sends to j */
    size_t *sdispl, *rdispl;          /* [n * n]: rank i's displacement for peer j */
    size_t *sext, *rext;              /* [n]: buffer extents, elements */
};

/* Irregular counts (about one in five zero), blocks stored in a rotated
 * order with small gaps. In place needs a symmetric matrix and equal
 * send / receive displacements. */
static void vlayout_make(const struct tcase *c, struct vlayout *v)
{
    const int n = c->n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int a = c->in_place && j < i ? j : i, b = c->in_place && j < i ? i : j;
            uint64_t h = mix(((uint64_t)a << 20) ^ (uint64_t)b ^ 0x5eedull);
            v->cnt[i * n + j] = h % 5 == 0 ? 0 : (size_t)(h % (c->count + 1));
        }
    for (int i = 0; i < n; i++) {
        size_t so = 0, ro = 0;
        for (int k = 0; k < n; k++) {
            int j = (k + i) % n; /* rotated order */
            size_t gap = (size_t)((i + j) % 3);
            v->sdispl[i * n + j] = so + gap;
            so += gap + v->cnt[i * n + j];
            v->rdispl[i * n + j] = ro + gap;
            ro += gap + v->cnt[j * n + i];
        }
        if (c->in_place)
            memcpy(&v->rdispl[i * n], &v->sdispl[i * n], (size_t)n * sizeof *v->rdispl);
        v->sext[i] = so;
        v->rext[i] = c->in_place ? so : ro;
    }
}

/* ---- running one case ----------------------------------------------------------- */

struct world {
    struct plan *plans;
    struct plan_args *args;
    struct model_rank *ranks;
    unsigned char **sbuf, **rbuf; /* allocations (rbuf NULL when in place) */
    struct model_stats *stats;
    struct vlayout v;
};

static const int max_ranks = MAX_RANKS;

static void world_init(struct world *w)
{
    const size_t n = (size_t)max_ranks;
    w->plans = calloc(n, sizeof *w->plans);
    w->args = calloc(n, sizeof *w->args);
    w->ranks = calloc(n, sizeof *w->ranks);
    w->sbuf = calloc(n, sizeof *w->sbuf);
    w->rbuf = calloc(n, sizeof *w->rbuf);
    w->stats = calloc(n, sizeof *w->stats);
    w->v.cnt = calloc(n * n, sizeof(size_t));
    w->v.sdispl = calloc(n * n, sizeof(size_t));
    w->v.rdispl = calloc(n * n, sizeof(size_t));
    w->v.sext = calloc(n, sizeof(size_t));
    w->v.rext = calloc(n, sizeof(size_t));
    if (!w->plans || !w->args || !w->ranks || !w->sbuf || !w->rbuf || !w->stats || !w->v.cnt ||
        !w->v.sdispl || !w->v.rdispl || !w->v.sext || !w->v.rext) {
        printf("test_plan: out of memory\n");
        exit(1);
    }
}

static void world_fini(struct world *w)
{
    free(w->plans);
    free(w->args);
    free(w->ranks);
    free(w->sbuf);
    free(w->rbuf);
    free(w->stats);
    free(w->v.cnt);
    free(w->v.sdispl);
    free(w->v.rdispl);
    free(w->v.sext);
    free(w->v.rext);
}

static unsigned char *xalloc(size_t bytes)
{
    unsigned char *p = malloc(bytes ? bytes : 1);
    if (!p) {
        printf("test_plan: out of memory\n");
        exit(1);
    }
    memset(p, FILL, bytes);
    return p;
}

/* Send side, receive side (elements) of rank r, as the collective defines them. */
static void sizes(const struct tcase *c, const struct world *w, int r, size_t *s, size_t *rv)
{
    const size_t n = (size_t)c->n, k = c->count;
    switch (c->kind) {
    case COLL_ALLREDUCE: *s = k; *rv = k; break;
    case COLL_REDUCE: *s = k; *rv = r == c->root ? k : 0; break;
    case COLL_BROADCAST: *s = r == c->root || c->in_place ? k : 0; *rv = k; break;
    case COLL_ALLGATHER: *s = k; *rv = n * k; break;
    case COLL_REDUCE_SCATTER: *s = n * k; *rv = k; break;
    case COLL_ALLTOALL: *s = n * k; *rv = n * k; break;
    case COLL_ALLTOALLV: *s = w->v.sext[r]; *rv = w->v.rext[r]; break;
    default: *s = *rv = 0; break;
    }
}

/* Allocates rank r's buffers (aliased in place as the public API defines)
 * and writes its input. */
static void setup_rank(const struct tcase *c, struct world *w, int r)
{
    const size_t es = esize_of(c);
    size_t s, rv;
    sizes(c, w, r, &s, &rv);
    struct model_rank *m = &w->ranks[r];
    int in_place = c->in_place && !(c->kind == COLL_REDUCE && r != c->root);
    w->sbuf[r] = w->rbuf[r] = NULL;
    if (!in_place) {
        w->sbuf[r] = s ? xalloc(s * es) : NULL;
        w->rbuf[r] = rv ? xalloc(rv * es) : NULL;
        *m = (struct model_rank){w->sbuf[r], s * es, w->rbuf[r], rv * es};
    } else if (c->kind == COLL_ALLGATHER) {
        w->sbuf[r] = xalloc(rv * es);
        *m = (struct model_rank){w->sbuf[r] + (size_t)r * s * es, s * es, w->sbuf[r], rv * es};
    } else if (c->kind == COLL_REDUCE_SCATTER) {
        w->sbuf[r] = xalloc(s * es);
        *m = (struct model_rank){w->sbuf[r], s * es, w->sbuf[r] + (size_t)r * rv * es, rv * es};
    } else { /* sendbuf == recvbuf */
        size_t big = s > rv ? s : rv;
        w->sbuf[r] = big ? xalloc(big * es) : NULL;
        *m = (struct model_rank){w->sbuf[r], s * es, w->sbuf[r], rv * es};
    }
    struct plan_args *a = &w->args[r];
    *a = (struct plan_args){.kind = c->kind, .nranks = c->n, .rank = r, .count = c->count,
                            .esize = es, .root = c->root, .in_place = in_place};
    if (c->kind == COLL_ALLTOALLV) { /* recvcounts: set by the caller (a column) */
        a->sendcounts = &w->v.cnt[r * c->n];
        a->sdispls = &w->v.sdispl[r * c->n];
        a->rdispls = &w->v.rdispl[r * c->n];
        for (int q = 0; q < c->n; q++) /* only the blocks are input: gaps keep FILL */
            for (size_t k = 0; k < a->sendcounts[q]; k++)
                put(c, m->send, a->sdispls[q] + k, input_of(r, a->sdispls[q] + k));
        return;
    }
    if (c->kind == COLL_BROADCAST && r != c->root)
        return; /* no input */
    for (size_t i = 0; i < s; i++)
        put(c, m->send, i, input_of(r, i));
}

static size_t *column; /* recvcounts of every rank: [n * n], row r = what r receives */

/* Compares n elements at got with the expected values; reports the first
 * difference. */
static int expect(const struct tcase *c, int r, const char *what, const unsigned char *got,
                  const unsigned char *want, size_t elems)
{
    const size_t es = esize_of(c);
    checks++;
    if (elems == 0 || !memcmp(got, want, elems * es))
        return 0;
    for (size_t i = 0; i < elems; i++) {
        if (memcmp(got + i * es, want + i * es, es)) {
            char name[200];
            long long g = 0, x = 0;
            if (c->type == CHORUS_FLOAT32) {
                float gf, xf;
                memcpy(&gf, got + i * es, 4);
                memcpy(&xf, want + i * es, 4);
                g = (long long)gf;
                x = (long long)xf;
            } else if (c->type == CHORUS_INT32) {
                int32_t gi, xi;
                memcpy(&gi, got + i * es, 4);
                memcpy(&xi, want + i * es, 4);
                g = gi;
                x = xi;
            } else {
                g = (int8_t)got[i];
                x = (int8_t)want[i];
            }
            FAIL("%s: rank %d: %s element %zu is %lld, expected %lld", case_name(c, name, sizeof name),
                 r, what, i, g, x);
            return -1;
        }
    }
    return 0;
}

/* The reduction of all inputs, computed once per case (reducing kinds). */
static unsigned char *reference;

/* The expected output of rank r, element by element. */
static void verify_rank(const struct tcase *c, struct world *w, int r)
{
    const size_t es = esize_of(c), k = c->count, n = (size_t)c->n;
    const struct model_rank *m = &w->ranks[r];
    size_t s, rv;
    sizes(c, w, r, &s, &rv);
    unsigned char *want = xalloc((rv > s ? rv : s) * es + 1);
    switch (c->kind) {
    case COLL_ALLREDUCE:
    case COLL_REDUCE:
        if (c->kind == COLL_REDUCE && r != c->root)
            break;
        expect(c, r, "result", m->recv, reference, k);
        break;
    case COLL_REDUCE_SCATTER:
        expect(c, r, "result", m->recv, reference + (size_t)r * k * es, k);
        break;
    case COLL_BROADCAST:
        for (size_t i = 0; i < k; i++)
            put(c, want, i, input_of(c->root, i));
        expect(c, r, "result", m->recv, want, k);
        break;
    case COLL_ALLGATHER:
        for (size_t q = 0; q < n; q++)
            for (size_t i = 0; i < k; i++)
                put(c, want, q * k + i, input_of((int)q, i));
        expect(c, r, "result", m->recv, want, n * k);
        break;
    case COLL_ALLTOALL:
        for (size_t q = 0; q < n; q++)
            for (size_t i = 0; i < k; i++)
                put(c, want, q * k + i, input_of((int)q, (size_t)r * k + i));
        expect(c, r, "result", m->recv, want, n * k);
        break;
    case COLL_ALLTOALLV:
        memset(want, FILL, rv * es); /* gaps stay untouched */
        for (int q = 0; q < c->n; q++) {
            size_t from = w->v.sdispl[q * c->n + r], at = w->v.rdispl[r * c->n + q];
            for (size_t i = 0; i < w->v.cnt[q * c->n + r]; i++)
                put(c, want, at + i, input_of(q, from + i));
        }
        expect(c, r, "receive buffer", m->recv, want, rv);
        break;
    default:
        break;
    }
    /* out of place, the input must be left as it was */
    if (!w->args[r].in_place && s && !(c->kind == COLL_BROADCAST && r != c->root)) {
        for (size_t i = 0; i < s; i++)
            put(c, want, i, input_of(r, i));
        if (c->kind != COLL_ALLTOALLV)
            expect(c, r, "send buffer (must not change)", m->send, want, s);
    }
    free(want);
}

struct steps_seen {
    int max_steps;
    uint64_t max_rounds;
};

static void run_case(const struct tcase *c, struct world *w, struct steps_seen *seen)
{
    char name[200];
    if (c->kind == COLL_ALLTOALLV) {
        vlayout_make(c, &w->v);
        for (int r = 0; r < c->n; r++)
            for (int q = 0; q < c->n; q++)
                column[r * c->n + q] = w->v.cnt[q * c->n + r];
    }
    for (int r = 0; r < c->n; r++) {
        size_t s, rv;
        sizes(c, w, r, &s, &rv);
        if (c->kind == COLL_BROADCAST || c->kind == COLL_REDUCE_SCATTER)
            s = c->kind == COLL_BROADCAST ? c->count : (size_t)c->n * c->count;
        inputs[r] = malloc((s ? s : 1) * sizeof **inputs);
        if (!inputs[r]) {
            printf("test_plan: out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < s; i++)
            inputs[r][i] = make_input(c, r, i);
    }
    for (int r = 0; r < c->n; r++) {
        setup_rank(c, w, r);
        if (c->kind == COLL_ALLTOALLV)
            w->args[r].recvcounts = &column[r * c->n];
    }
    int ok = 1;
    for (int r = 0; r < c->n && ok; r++) {
        chorus_result_t res = plan_build(&w->plans[r], &w->args[r], c->algo);
        checks++;
        if (res != CHORUS_SUCCESS) {
            FAIL("%s: rank %d: plan_build returned %d: %s", case_name(c, name, sizeof name), r,
                 (int)res, chorus_get_last_error());
            ok = 0;
        }
    }
    if (ok) {
        struct model_job job = {c->n, w->plans, w->ranks, c->type, c->op};
        struct model_report rep = {.stats = w->stats};
        checks++;
        for (int r = 0; r < c->n; r++) {
            const struct plan *p = &w->plans[r];
            uint64_t want = is_reducing(c->kind) && (c->kind != COLL_REDUCE || r == c->root)
                                ? (uint64_t)c->count * esize_of(c) : 0;
            checks++;
            if (p->result_bytes != want || (want && (p->result_buf != PLAN_RECVBUF ||
                                                     p->result_off != 0)))
                FAIL("%s: rank %d: result range %d+%llu, %llu B; expected recvbuf+0, %llu B",
                     case_name(c, name, sizeof name), r, (int)p->result_buf,
                     (unsigned long long)p->result_off, (unsigned long long)p->result_bytes,
                     (unsigned long long)want);
        }
        if (model_run(&job, &rep)) {
            FAIL("%s: %s", case_name(c, name, sizeof name), rep.error);
        } else {
            size_t elems = c->kind == COLL_REDUCE_SCATTER ? (size_t)c->n * c->count : c->count;
            if (is_reducing(c->kind)) {
                reference = xalloc(elems * esize_of(c));
                for (size_t i = 0; i < elems; i++)
                    reference_reduce(c, i, reference + i * esize_of(c));
            }
            for (int r = 0; r < c->n; r++)
                verify_rank(c, w, r);
            free(reference);
            reference = NULL;
            for (int r = 0; r < c->n; r++)
                if (w->plans[r].nsteps > seen->max_steps)
                    seen->max_steps = w->plans[r].nsteps;
            if (rep.rounds > seen->max_rounds)
                seen->max_rounds = rep.rounds;
        }
    }
    for (int r = 0; r < c->n; r++) {
        free(inputs[r]);
        inputs[r] = NULL;
        plan_free(&w->plans[r]);
        free(w->sbuf[r]);
        free(w->rbuf[r]);
        w->sbuf[r] = w->rbuf[r] = NULL;
    }
}

/* ---- the sweep ---------------------------------------------------------------- */

struct typeop {
    chorus_datatype_t type;
    chorus_op_t op;
};
static const struct typeop reducing[] = {
    {CHORUS_INT32, CHORUS_SUM}, {CHORUS_INT32, CHORUS_PROD}, {CHORUS_INT32, CHORUS_MAX},
    {CHORUS_INT32, CHORUS_MIN}, {CHORUS_INT32, CHORUS_AVG},  {CHORUS_FLOAT32, CHORUS_SUM},
    {CHORUS_INT8, CHORUS_SUM},
};
static const struct typeop moving[] = {{CHORUS_INT32, CHORUS_SUM}, {CHORUS_INT8, CHORUS_SUM}};

static int ceil_log2(int n)
{
    int k = 0;
    while ((1 << k) < n)
        k++;
    return k;
}

/* Steps (and message rounds) the algorithm may take at n ranks. */
static int verbose;

static void check_steps(algo_t algo, coll_kind_t kind, int n, const struct steps_seen *seen)
{
    int limit;
    const char *shape;
    if (algo == ALGO_RING || algo == ALGO_PAIRWISE || (algo == ALGO_DIRECT && (kind == COLL_ALLREDUCE || kind == COLL_REDUCE_SCATTER))) {
        limit = 2 * n + 2;
        shape = "O(n)";
    } else if (algo == ALGO_DIRECT) {
        limit = 2;
        shape = "O(1)";
    } else {
        limit = 2 * ceil_log2(n) + 2;
        shape = "O(log n)";
    }
    checks++;
    if (seen->max_steps > limit || seen->max_rounds > (uint64_t)limit)
        FAIL("%s %s n=%d: %d steps, %llu message rounds; %s allows %d", algo_name(algo),
             coll_name(kind), n, seen->max_steps, (unsigned long long)seen->max_rounds, shape,
             limit);
}

static void sweep_pair(algo_t algo, coll_kind_t kind, const int *ns, int nns, struct world *w)
{
    for (int ni = 0; ni < nns; ni++) {
        const int n = ns[ni];
        struct steps_seen seen = {0, 0};
        size_t counts[] = {0, 1, 2, 3, (size_t)n - 1, (size_t)n, (size_t)n + 1, 7, 64, 1000, 4099};
        const int ncounts = sizeof counts / sizeof *counts;
        const struct typeop *tos = is_reducing(kind) ? reducing : moving;
        int ntos = is_reducing(kind) ? (int)(sizeof reducing / sizeof *reducing)
                                     : (int)(sizeof moving / sizeof *moving);
        if (kind == COLL_BARRIER)
            ntos = 1;
        for (int ci = 0; ci < ncounts; ci++) {
            size_t count = counts[ci];
            int dup = 0;
            for (int cj = 0; cj < ci; cj++)
                dup |= counts[cj] == count;
            if (dup || (kind == COLL_BARRIER && count))
                continue;
            if (n > 9 && count > 1000 && (kind == COLL_ALLTOALL || kind == COLL_ALLTOALLV))
                continue; /* n^2 blocks of 16 KiB: slow, and 1000 covers the same paths */
            int roots[4] = {0, 1, n / 2, n - 1}, nroots = 1;
            if (is_rooted(kind))
                nroots = n <= 9 ? n : 4;
            for (int ri = 0; ri < nroots; ri++) {
                int root = n <= 9 ? ri : roots[ri];
                for (int ip = 0; ip < 2; ip++) {
                    if (kind == COLL_BARRIER && ip)
                        continue;
                    for (int t = 0; t < ntos; t++) {
                        /* the big counts once per type, not per op */
                        if (count > 64 && t > 0 && tos[t].type == CHORUS_INT32 && is_reducing(kind) &&
                            (n > 9 || is_rooted(kind)))
                            continue;
                        struct tcase c = {algo, kind, n, count, root, ip, tos[t].type, tos[t].op};
                        run_case(&c, w, &seen);
                    }
                }
            }
        }
        check_steps(algo, kind, n, &seen);
        if (verbose)
            printf("%-13s %-14s n=%-2d at most %3d steps, %3llu message rounds\n",
                   algo_name(algo), coll_name(kind), n, seen.max_steps,
                   (unsigned long long)seen.max_rounds);
    }
}

/* Long broadcasts are cut into segments of at most 1 MiB that pipeline
 * down the ring: a few cases large enough to need several. */
static void test_segments(struct world *w)
{
    const size_t mib = (size_t)1 << 20;
    const struct tcase cases[] = {
        {ALGO_RING, COLL_BROADCAST, 3, 3 * mib + 7, 1, 0, CHORUS_INT8, CHORUS_SUM},
        {ALGO_RING, COLL_BROADCAST, 4, mib + 3, 3, 1, CHORUS_INT32, CHORUS_SUM},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct steps_seen seen = {0, 0};
        run_case(&cases[i], w, &seen);
        /* int8: segments of 1 MiB, 4 of them; int32: 256 Ki elements, 5 */
        int nseg = i == 0 ? 4 : 5;
        checks++;
        /* a middle rank: one step per segment plus one; the pipe: nseg + n - 2 hops */
        if (seen.max_steps != nseg + 1 || seen.max_rounds != (uint64_t)(nseg + cases[i].n - 2))
            FAIL("ring broadcast of %zu elements on %d ranks: %d steps, %llu rounds; expected "
                 "%d segments of at most 1 MiB to pipeline", cases[i].count, cases[i].n,
                 seen.max_steps, (unsigned long long)seen.max_rounds, nseg);
    }
}

/* Long tree broadcasts and reduces run on a pipelined double binary tree:
 * sizes around the switch-over and several segments, odd counts (the halves
 * differ; for reduce, 4-byte elements whose halves stay whole), every root
 * on small groups, in and out of place; the steps stay near segments +
 * depth (broadcast) or + twice the depth (reduce). */
static void test_double_tree(struct world *w)
{
    const size_t mib = (size_t)1 << 20;
    const int ns[] = {3, 4, 5, 17};
    const size_t counts[] = {4 * mib, 5 * mib + 7};
    const coll_kind_t kinds[] = {COLL_BROADCAST, COLL_REDUCE};
    for (size_t ki = 0; ki < sizeof kinds / sizeof *kinds; ki++) {
        const int red = kinds[ki] == COLL_REDUCE;
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
            const int n = ns[ni];
            for (size_t ci = 0; ci < sizeof counts / sizeof *counts; ci++) {
                for (int root = 0; root < n; root += n > 5 ? n - 1 : 1) {
                    struct steps_seen seen = {0, 0};
                    size_t count = red ? counts[ci] / 4 + ci : counts[ci];
                    struct tcase c = {ALGO_TREE, kinds[ki], n, count, root,
                                      (root + (int)ci) % 2, red ? CHORUS_INT32 : CHORUS_INT8,
                                      CHORUS_SUM};
                    run_case(&c, w, &seen);
                    int depth = 0;
                    while ((1 << depth) < n)
                        depth++;
                    size_t bytes = count * (red ? 4 : 1);
                    int nseg = (int)((bytes - bytes / 2 + TREE_DBT_SEGMENT - 1) /
                                     TREE_DBT_SEGMENT);
                    checks++;
                    if (seen.max_steps > nseg + (red ? 2 : 1) * depth + 1)
                        FAIL("double tree %s of %zu B on %d ranks: %d steps, expected about "
                             "%d segments + %sdepth %d", coll_name(kinds[ki]), bytes, n,
                             seen.max_steps, nseg, red ? "twice the " : "", depth);
                }
            }
        }
    }
}

/* ---- refusals ----------------------------------------------------------------- */

static void test_names(void)
{
    for (int a = 0; a < ALGO_COUNT; a++) {
        checks++;
        if (algo_from_name(algo_name((algo_t)a)) != (algo_t)a)
            FAIL("algo_from_name(\"%s\") does not give %d back", algo_name((algo_t)a), a);
    }
    checks += 3;
    if (algo_from_name("RING") != ALGO_RING)
        FAIL("algo_from_name is case-sensitive");
    if (algo_from_name("nope") != ALGO_COUNT || algo_from_name(NULL) != ALGO_COUNT)
        FAIL("algo_from_name accepts an unknown name");
    if (strcmp(algo_name(ALGO_DISSEMINATION), "dissemination"))
        FAIL("algo_name(ALGO_DISSEMINATION) is \"%s\"", algo_name(ALGO_DISSEMINATION));
}

static void test_refusals(void)
{
    for (int a = 0; a < ALGO_COUNT; a++) {
        for (int k = 0; k <= COLL_SENDRECV; k++) {
            if (plan_supports((algo_t)a, (coll_kind_t)k))
                continue;
            struct plan p = {0};
            size_t zeros[4] = {1, 1, 1, 1}, displ[4] = {0, 1, 2, 3};
            struct plan_args args = {.kind = (coll_kind_t)k, .nranks = 4, .rank = 1, .count = 8,
                                     .esize = 4, .root = 0, .sendcounts = zeros,
                                     .sdispls = displ, .recvcounts = zeros, .rdispls = displ};
            chorus_result_t res = plan_build(&p, &args, (algo_t)a);
            checks++;
            if (res != CHORUS_INVALID_USAGE || p.nsteps != 0 ||
                !strstr(chorus_get_last_error(), "does not implement"))
                FAIL("plan_build(%s, %s) of an unsupported pair: result %d, %d steps, text \"%s\"",
                     algo_name((algo_t)a), coll_name((coll_kind_t)k), (int)res, p.nsteps,
                     chorus_get_last_error());
            plan_free(&p);
        }
    }
    checks += 2;
    if (plan_supports(ALGO_AUTO, COLL_ALLREDUCE) || plan_supports(ALGO_HIER, COLL_ALLREDUCE))
        FAIL("auto or hier claims a flat plan");
    if (!plan_supports(ALGO_BRUCK, COLL_ALLTOALL) || plan_supports(ALGO_BRUCK, COLL_ALLREDUCE))
        FAIL("plan_supports(bruck, ...) is wrong");

    struct {
        const char *what;
        struct plan_args args;
    } bad[] = {
        {"nranks 0", {.kind = COLL_ALLREDUCE, .nranks = 0, .rank = 0, .count = 1, .esize = 4}},
        {"rank -1", {.kind = COLL_ALLREDUCE, .nranks = 4, .rank = -1, .count = 1, .esize = 4}},
        {"rank == nranks", {.kind = COLL_ALLREDUCE, .nranks = 4, .rank = 4, .count = 1, .esize = 4}},
        {"root == nranks", {.kind = COLL_BROADCAST, .nranks = 4, .rank = 0, .count = 1, .esize = 4,
                            .root = 4}},
        {"root -1", {.kind = COLL_REDUCE, .nranks = 4, .rank = 0, .count = 1, .esize = 4,
                     .root = -1}},
        {"esize 0", {.kind = COLL_ALLREDUCE, .nranks = 4, .rank = 0, .count = 1, .esize = 0}},
        {"overflow", {.kind = COLL_ALLGATHER, .nranks = 4, .rank = 0, .count = SIZE_MAX / 2,
                      .esize = 4}},
        {"alltoallv without counts", {.kind = COLL_ALLTOALLV, .nranks = 2, .rank = 0, .esize = 4}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct plan p = {0};
        algo_t algo = bad[i].args.kind == COLL_ALLTOALLV ? ALGO_PAIRWISE
                    : bad[i].args.kind == COLL_ALLGATHER ? ALGO_RING : ALGO_TREE;
        if (bad[i].args.kind == COLL_ALLREDUCE)
            algo = ALGO_RING;
        chorus_result_t res = plan_build(&p, &bad[i].args, algo);
        checks++;
        if (res != CHORUS_INVALID_ARGUMENT)
            FAIL("plan_build with %s: result %d, expected CHORUS_INVALID_ARGUMENT", bad[i].what,
                 (int)res);
        plan_free(&p);
    }
}

/* ---- the model catches broken plans --------------------------------------------- */

/* Two ranks, 16-byte buffers; build(rank, plan) writes each rank's plan. */
static void expect_model_error(const char *what, const char *needle,
                               void (*build)(int rank, struct plan *p))
{
    struct plan plans[2] = {{0}, {0}};
    unsigned char s[2][16], r[2][16];
    struct model_rank ranks[2] = {{s[0], 16, r[0], 16}, {s[1], 16, r[1], 16}};
    memset(s, 1, sizeof s);
    memset(r, 0, sizeof r);
    for (int k = 0; k < 2; k++) {
        plan_reset(&plans[k], ALGO_RING);
        build(k, &plans[k]);
    }
    struct model_job job = {2, plans, ranks, CHORUS_INT32, CHORUS_SUM};
    struct model_report rep = {0};
    checks++;
    if (model_run(&job, &rep) == 0 || !strstr(rep.error, needle))
        FAIL("model does not catch %s (error: \"%s\")", what, rep.error);
    for (int k = 0; k < 2; k++)
        plan_free(&plans[k]);
}

static void build_deadlock(int rank, struct plan *p)
{
    plan_step(p); /* both receive first, then send */
    plan_recv(p, 1 - rank, PLAN_RECVBUF, 0, 4);
    plan_step(p);
    plan_send(p, 1 - rank, PLAN_SENDBUF, 0, 4);
}
static void build_mismatch(int rank, struct plan *p)
{
    plan_step(p);
    plan_send(p, 1 - rank, PLAN_SENDBUF, 0, rank ? 4 : 8);
    plan_recv(p, 1 - rank, PLAN_RECVBUF, 0, rank ? 4 : 8);
}
static void build_hazard(int rank, struct plan *p)
{
    plan_step(p); /* receive into bytes the same step sends */
    plan_send(p, 1 - rank, PLAN_RECVBUF, 4, 8);
    plan_recv(p, 1 - rank, PLAN_RECVBUF, 0, 8);
}
static void build_bounds(int rank, struct plan *p)
{
    plan_step(p);
    plan_send(p, 1 - rank, PLAN_SENDBUF, 0, 8);
    plan_recv(p, 1 - rank, PLAN_RECVBUF, 12, 8);
}
static void build_scratch(int rank, struct plan *p)
{
    plan_step(p);
    plan_copy(p, PLAN_SENDBUF, 0, PLAN_SCRATCH, 0, 4); /* scratch_bytes left at 0 */
    (void)rank;
}
static void build_sendbuf(int rank, struct plan *p)
{
    plan_step(p);
    plan_send(p, 1 - rank, PLAN_RECVBUF, 0, 4);
    plan_recv(p, 1 - rank, PLAN_SENDBUF, 0, 4);
}
static void build_unmatched(int rank, struct plan *p)
{
    plan_step(p);
    if (rank == 0)
        plan_send(p, 1, PLAN_SENDBUF, 0, 4);
}
static void build_reduce_hazard(int rank, struct plan *p)
{
    plan_step(p); /* two reductions into one range in one step */
    plan_send(p, 1 - rank, PLAN_SENDBUF, 0, 4);
    plan_send(p, 1 - rank, PLAN_SENDBUF, 4, 4);
    plan_recv_reduce(p, 1 - rank, PLAN_RECVBUF, 0, PLAN_RECVBUF, 0, 4);
    plan_recv_reduce(p, 1 - rank, PLAN_RECVBUF, 0, PLAN_RECVBUF, 0, 4);
}
static void build_fine(int rank, struct plan *p)
{
    plan_step(p); /* a correct exchange, with a reduction in place */
    plan_send(p, 1 - rank, PLAN_SENDBUF, 0, 8);
    plan_recv_reduce(p, 1 - rank, PLAN_SENDBUF, 0, PLAN_RECVBUF, 0, 8);
}

static void test_model(void)
{
    expect_model_error("a deadlock", "deadlock", build_deadlock);
    expect_model_error("a byte-count mismatch", "received", build_mismatch);
    expect_model_error("an in-step hazard", "same bytes", build_hazard);
    expect_model_error("two reductions into one range", "same bytes", build_reduce_hazard);
    expect_model_error("a range beyond recvbuf", "beyond recvbuf", build_bounds);
    expect_model_error("a range beyond scratch", "beyond scratch", build_scratch);
    expect_model_error("a write to sendbuf", "send buffer", build_sendbuf);
    expect_model_error("an unmatched send", "no matching receive", build_unmatched);

    struct plan plans[2] = {{0}, {0}};
    int32_t s[2][4] = {{1, 2, 3, 4}, {10, 20, 30, 40}}, r[2][4] = {{0}};
    struct model_rank ranks[2] = {{s[0], 16, r[0], 16}, {s[1], 16, r[1], 16}};
    struct model_stats st[2];
    for (int k = 0; k < 2; k++) {
        plan_reset(&plans[k], ALGO_RING);
        build_fine(k, &plans[k]);
    }
    struct model_job job = {2, plans, ranks, CHORUS_INT32, CHORUS_SUM};
    struct model_report rep = {.stats = st};
    checks++;
    if (model_run(&job, &rep) || r[0][0] != 11 || r[1][1] != 22 || r[0][2] != 0 ||
        st[0].msgs_sent != 1 || st[0].bytes_sent != 8 || rep.rounds != 1)
        FAIL("model runs a correct exchange wrongly (%s; r0 %d, msgs %llu, rounds %llu)",
             rep.error, r[0][0], (unsigned long long)st[0].msgs_sent,
             (unsigned long long)rep.rounds);
    for (int k = 0; k < 2; k++)
        plan_free(&plans[k]);
}

/* ---- main ----------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        quick |= !strcmp(argv[i], "-q");
        verbose |= !strcmp(argv[i], "-v");
    }
    setenv("CHORUS_LOG_LEVEL", "error", 0); /* the refusals would log warnings */
    static const int all_ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17};
    static const int quick_ns[] = {1, 2, 3, 5, 8, 17};
    const int *ns = quick ? quick_ns : all_ns;
    int nns = quick ? (int)(sizeof quick_ns / sizeof *quick_ns)
                    : (int)(sizeof all_ns / sizeof *all_ns);
    struct world w;
    world_init(&w);
    column = calloc((size_t)max_ranks * (size_t)max_ranks, sizeof *column);
    if (!column)
        return 1;

    test_names();
    test_refusals();
    test_model();
    for (int a = 0; a < ALGO_COUNT; a++)
        for (int k = 0; k <= COLL_SENDRECV; k++)
            if (plan_supports((algo_t)a, (coll_kind_t)k))
                sweep_pair((algo_t)a, (coll_kind_t)k, ns, nns, &w);
    test_segments(&w);
    test_double_tree(&w);

    free(column);
    world_fini(&w);
    if (failures) {
        printf("test_plan: %llu of %llu checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_plan: %llu checks passed\n", checks);
    return 0;
}
