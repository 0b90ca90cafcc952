/* test_sim.c - the simulator (perf/sim) against what its model promises:
 *  - on one switch, the closed-form alpha-beta-gamma costs of ring and
 *    recursive halving/doubling allreduce, ring and Bruck allgather and
 *    pairwise alltoall, within 5%, for several rank counts and sizes;
 *  - contention: flows sharing a port or link share its bandwidth, a full
 *    mesh does not share, multi-hop torus and ring routes pay per hop;
 *  - rendezvous: a send waits for its receiver's step; a deadlocked, an
 *    unmatched and a mismatched plan are refused with a message;
 *  - 768 ranks: a ring allreduce of 1 GiB and a direct alltoall run.
 * No wall-clock assertion anywhere: only simulated time is checked. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "sim.h"
#include "topo.h"

static int failures;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            failures++;                                    \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);    \
            printf(__VA_ARGS__);                           \
            printf("\n");                                  \
        }                                                  \
    } while (0)

static const double BW = 10e9, LAT = 2e-6, RBW = 20e9; /* beta = 1/BW, gamma = 1/RBW */

static int near(double got, double want, double tol)
{
    return fabs(got - want) <= tol * want;
}

/* Simulated time of a collective on a uniform switch of p ranks; < 0 on error. */
static double sim_uniform(int p, coll_kind_t kind, algo_t algo, size_t count, int serial)
{
    struct topo *t;
    if (topo_uniform(p, BW, LAT, RBW, &t) != CHORUS_SUCCESS)
        return -1;
    struct sim_opts o;
    sim_opts_default(&o);
    o.copy_bw = -1; /* closed forms count no local copies */
    o.reduce_model = serial ? SIM_REDUCE_SERIAL : SIM_REDUCE_PIPELINED;
    struct sim_coll c = {.kind = kind, .algo = algo, .count = count, .type = CHORUS_FLOAT32};
    struct sim_result r = {0};
    chorus_result_t rc = sim_collective(t, &c, &o, &r);
    topo_free(t);
    if (rc != CHORUS_SUCCESS) {
        printf("  sim %s p=%d count=%zu: %s\n", algo_name(algo), p, count, r.error);
        return -1;
    }
    return r.time;
}

static void test_closed_forms(void)
{
    const double a = LAT, b = 1.0 / BW, g = 1.0 / RBW;
    const int ps[] = {2, 3, 4, 5, 8, 16, 24};
    const size_t sizes[] = {4096, 1 << 20, 64 << 20}; /* bytes per rank's vector */
    int checked = 0;
    for (size_t pi = 0; pi < sizeof ps / sizeof *ps; pi++) {
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            int p = ps[pi];
            /* whole elements in every block: n a multiple of 4 p */
            size_t n = sizes[si] / (4u * (size_t)p) * 4u * (size_t)p;
            double q = (double)(p - 1) / p, t, want;

            t = sim_uniform(p, COLL_ALLREDUCE, ALGO_RING, n / 4, 1);
            want = 2 * (p - 1) * a + 2 * q * n * b + q * n * g;
            CHECK(near(t, want, 0.05), "ring allreduce p=%d n=%zu: %g s, closed form %g s", p, n,
                  t, want);

            if ((p & (p - 1)) == 0) {
                int lg = 0;
                while ((1 << lg) < p)
                    lg++;
                t = sim_uniform(p, COLL_ALLREDUCE, ALGO_RHD, n / 4, 1);
                want = 2 * lg * a + 2 * q * n * b + q * n * g;
                CHECK(near(t, want, 0.05), "rhd allreduce p=%d n=%zu: %g s, closed form %g s", p,
                      n, t, want);
            }

            /* allgather, alltoall: n is the whole gathered buffer of a rank */
            size_t blk = n / (size_t)p;
            int clg = 0;
            while ((1 << clg) < p)
                clg++;
            t = sim_uniform(p, COLL_ALLGATHER, ALGO_BRUCK, blk / 4, 1);
            want = clg * a + q * n * b;
            CHECK(near(t, want, 0.05), "bruck allgather p=%d n=%zu: %g s, closed form %g s", p,
                  n, t, want);
            t = sim_uniform(p, COLL_ALLGATHER, ALGO_RING, blk / 4, 1);
            want = (p - 1) * a + q * n * b;
            CHECK(near(t, want, 0.05), "ring allgather p=%d n=%zu: %g s, closed form %g s", p, n,
                  t, want);
            t = sim_uniform(p, COLL_ALLTOALL, ALGO_PAIRWISE, blk / 4, 1);
            want = (p - 1) * (a + (double)blk * b);
            CHECK(near(t, want, 0.05), "pairwise alltoall p=%d n=%zu: %g s, closed form %g s",
                  p, n, t, want);
            checked += 4;
        }
    }
    printf("closed forms: %d cases\n", checked);
}

/* Pipelined reduction hides the smaller of transfer and reduction. */
static void test_reduce_models(void)
{
    int p = 8;
    size_t n = 8u << 20;
    double serial = sim_uniform(p, COLL_ALLREDUCE, ALGO_RING, n / 4, 1);
    double piped = sim_uniform(p, COLL_ALLREDUCE, ALGO_RING, n / 4, 0);
    double q = (double)(p - 1) / p;
    double lower = 2 * (p - 1) * LAT + 2 * q * n / BW; /* reduction fully hidden (RBW > BW) */
    CHECK(piped < serial, "pipelined %g s not below serial %g s", piped, serial);
    CHECK(piped >= lower * 0.999 && near(piped, lower, 0.05), "pipelined %g s, expected about %g s",
          piped, lower);
}

/* ---- hand-made plans ------------------------------------------------------------ */

struct hand {
    int n;
    struct plan p[8];
};

static void hand_init(struct hand *h, int n)
{
    memset(h, 0, sizeof *h);
    h->n = n;
    for (int r = 0; r < n; r++)
        plan_reset(&h->p[r], ALGO_AUTO);
}

static void hand_free(struct hand *h)
{
    for (int r = 0; r < h->n; r++)
        plan_free(&h->p[r]);
}

static chorus_result_t hand_run(struct hand *h, const struct topo *t, struct sim_result *res)
{
    struct sim_opts o;
    sim_opts_default(&o);
    o.copy_bw = 1e9;
    memset(res, 0, sizeof *res);
    return sim_run(t, h->n, h->p, &o, res);
}

static void test_contention(void)
{
    struct topo *t;
    topo_uniform(4, BW, LAT, RBW, &t);
    const uint64_t B = 1 << 24;
    const double one = LAT + B / BW;
    struct hand h;
    struct sim_result r;

    /* one flow */
    hand_init(&h, 4);
    plan_send(&h.p[0], 2, PLAN_SENDBUF, 0, B);
    plan_recv(&h.p[2], 0, PLAN_RECVBUF, 0, B);
    CHECK(hand_run(&h, t, &r) == CHORUS_SUCCESS && near(r.time, one, 1e-6), "one flow: %g s, "
          "want %g s (%s)", r.time, one, r.error);
    CHECK(r.msgs == 1 && r.bytes == B && r.level[0].msgs == 1, "counts: %llu msgs %llu B",
          (unsigned long long)r.msgs, (unsigned long long)r.bytes);
    hand_free(&h);

    /* two flows into one ingress port */
    hand_init(&h, 4);
    plan_send(&h.p[0], 2, PLAN_SENDBUF, 0, B);
    plan_send(&h.p[1], 2, PLAN_SENDBUF, 0, B);
    plan_recv(&h.p[2], 0, PLAN_RECVBUF, 0, B);
    plan_recv(&h.p[2], 1, PLAN_RECVBUF, B, B);
    CHECK(hand_run(&h, t, &r) == CHORUS_SUCCESS && near(r.time, LAT + 2 * B / BW, 1e-6),
          "two flows into one port: %g s, want %g s (%s)", r.time, LAT + 2 * B / BW, r.error);
    CHECK(r.max_flows == 2, "max flows %llu", (unsigned long long)r.max_flows);
    hand_free(&h);

    /* two flows out of one egress port, one of them half the size: the
     * small one ends at 2 x its size, then the big one runs alone */
    hand_init(&h, 4);
    plan_send(&h.p[0], 1, PLAN_SENDBUF, 0, B / 2);
    plan_send(&h.p[0], 2, PLAN_SENDBUF, 0, B);
    plan_recv(&h.p[1], 0, PLAN_RECVBUF, 0, B / 2);
    plan_recv(&h.p[2], 0, PLAN_RECVBUF, 0, B);
    double fin[4] = {0};
    r.finish = fin;
    struct sim_opts o;
    sim_opts_default(&o);
    chorus_result_t rc = sim_run(t, 4, h.p, &o, &r);
    CHECK(rc == CHORUS_SUCCESS && near(fin[1], LAT + B / BW, 1e-6) &&
          near(fin[2], LAT + 1.5 * B / BW, 1e-6), "shared egress: finish %g %g, want %g %g (%s)",
          fin[1], fin[2], LAT + B / BW, LAT + 1.5 * B / BW, r.error);
    hand_free(&h);

    /* rendezvous: rank 1 receives from 3 first (one flow), then from 0; rank
     * 0's send may start only when rank 1 reaches its second step */
    hand_init(&h, 4);
    plan_send(&h.p[0], 1, PLAN_SENDBUF, 0, B);
    plan_recv(&h.p[1], 3, PLAN_RECVBUF, 0, B);
    plan_step(&h.p[1]);
    plan_recv(&h.p[1], 0, PLAN_RECVBUF, B, B);
    plan_send(&h.p[3], 1, PLAN_SENDBUF, 0, B);
    CHECK(hand_run(&h, t, &r) == CHORUS_SUCCESS && near(r.time, 2 * one, 1e-6),
          "rendezvous: %g s, want %g s (%s)", r.time, 2 * one, r.error);
    hand_free(&h);

    /* a copy delays the step's communication by bytes / copy_bw */
    hand_init(&h, 2);
    plan_copy(&h.p[0], PLAN_SENDBUF, 0, PLAN_RECVBUF, 0, 1000000);
    plan_send(&h.p[0], 1, PLAN_SENDBUF, 0, B);
    plan_recv(&h.p[1], 0, PLAN_RECVBUF, 0, B);
    CHECK(hand_run(&h, t, &r) == CHORUS_SUCCESS && near(r.time, 1e-3 + one, 1e-6),
          "copy then send: %g s, want %g s (%s)", r.time, 1e-3 + one, r.error);
    hand_free(&h);
    topo_free(t);
}

static struct topo *topo_one_level(int group, topo_shape_t shape, int dx, int wrap)
{
    struct topo *t = calloc(1, sizeof *t);
    snprintf(t->name, sizeof t->name, "test-%s", topo_shape_name(shape));
    t->nlevels = 1;
    t->levels[0] = (struct topo_level){.group = group, .shape = shape, .bw = BW, .latency = LAT,
                                       .dims = {dx, 1, 1}, .wrap = wrap};
    t->reduce_bw = RBW;
    char err[200];
    if (topo_finish(t, err, sizeof err) != CHORUS_SUCCESS) {
        printf("topo_finish: %s\n", err);
        topo_free(t);
        return NULL;
    }
    return t;
}

static void test_shapes(void)
{
    const uint64_t B = 1 << 24;
    struct hand h;
    struct sim_result r;

    /* full mesh: rank 0 sends to 1 and 2 over separate links */
    struct topo *t = topo_one_level(3, TOPO_SHAPE_FULL_MESH, 0, 0);
    hand_init(&h, 3);
    plan_send(&h.p[0], 1, PLAN_SENDBUF, 0, B);
    plan_send(&h.p[0], 2, PLAN_SENDBUF, 0, B);
    plan_recv(&h.p[1], 0, PLAN_RECVBUF, 0, B);
    plan_recv(&h.p[2], 0, PLAN_RECVBUF, 0, B);
    CHECK(t && hand_run(&h, t, &r) == CHORUS_SUCCESS && near(r.time, LAT + B / BW, 1e-6),
          "full mesh: %g s, want %g s (%s)", r.time, LAT + B / BW, r.error);
    hand_free(&h);
    topo_free(t);

    /* open line of 4 (torus 4x1x1 without wrap): 0 -> 2 and 1 -> 3 share
     * link 1 -> 2; two hops of latency each */
    t = topo_one_level(4, TOPO_SHAPE_TORUS, 4, 0);
    hand_init(&h, 4);
    plan_send(&h.p[0], 2, PLAN_SENDBUF, 0, B);
    plan_send(&h.p[1], 3, PLAN_SENDBUF, 0, B);
    plan_recv(&h.p[2], 0, PLAN_RECVBUF, 0, B);
    plan_recv(&h.p[3], 1, PLAN_RECVBUF, 0, B);
    double want = 2 * LAT + 2 * B / BW;
    CHECK(t && hand_run(&h, t, &r) == CHORUS_SUCCESS && near(r.time, want, 1e-6),
          "mesh shared link: %g s, want %g s (%s)", r.time, want, r.error);
    hand_free(&h);
    /* 0 -> 3 on the open line: 3 hops */
    hand_init(&h, 4);
    plan_send(&h.p[0], 3, PLAN_SENDBUF, 0, 0);
    plan_recv(&h.p[3], 0, PLAN_RECVBUF, 0, 0);
    CHECK(t && hand_run(&h, t, &r) == CHORUS_SUCCESS && near(r.time, 3 * LAT, 1e-9),
          "mesh 3 hops: %g s, want %g s (%s)", r.time, 3 * LAT, r.error);
    topo_free(t);
    /* with wrap-around, 1 hop */
    t = topo_one_level(4, TOPO_SHAPE_TORUS, 4, 1);
    CHECK(t && hand_run(&h, t, &r) == CHORUS_SUCCESS && near(r.time, LAT, 1e-9),
          "torus wrap: %g s, want %g s (%s)", r.time, LAT, r.error);
    topo_free(t);
    /* a ring of 4 behaves the same */
    t = topo_one_level(4, TOPO_SHAPE_RING, 0, 0);
    CHECK(t && hand_run(&h, t, &r) == CHORUS_SUCCESS && near(r.time, LAT, 1e-9),
          "ring: %g s, want %g s (%s)", r.time, LAT, r.error);
    hand_free(&h);
    topo_free(t);
}

/* Two levels: 4 ranks per fast switch, 2 groups over a slow switch. */
static void test_levels(void)
{
    struct topo *t = calloc(1, sizeof *t);
    snprintf(t->name, sizeof t->name, "test-2level");
    t->nlevels = 2;
    t->levels[0] = (struct topo_level){.group = 4, .shape = TOPO_SHAPE_SWITCH, .bw = 4 * BW,
                                       .latency = LAT / 4};
    t->levels[1] = (struct topo_level){.group = 2, .shape = TOPO_SHAPE_CLOS, .bw = BW,
                                       .latency = LAT, .oversub = 2};
    t->reduce_bw = RBW;
    char err[200];
    CHECK(topo_finish(t, err, sizeof err) == CHORUS_SUCCESS, "topo_finish: %s", err);
    const uint64_t B = 1 << 24;
    struct hand h;
    struct sim_result r;
    double fin[8];
    hand_init(&h, 8);
    plan_send(&h.p[0], 1, PLAN_SENDBUF, 0, B); /* inside a group */
    plan_recv(&h.p[1], 0, PLAN_RECVBUF, 0, B);
    plan_send(&h.p[2], 6, PLAN_SENDBUF, 0, B); /* across: bw / oversub */
    plan_recv(&h.p[6], 2, PLAN_RECVBUF, 0, B);
    struct sim_opts o;
    sim_opts_default(&o);
    r.finish = fin;
    CHECK(sim_run(t, 8, h.p, &o, &r) == CHORUS_SUCCESS, "two levels: %s", r.error);
    CHECK(near(fin[1], LAT / 4 + B / (4 * BW), 1e-6), "level 0 message: %g s", fin[1]);
    CHECK(near(fin[6], LAT + 2 * B / BW, 1e-6), "level 1 message: %g s", fin[6]);
    CHECK(r.level[0].msgs == 1 && r.level[1].msgs == 1 && r.level[1].bytes == B,
          "per-level counts %llu %llu", (unsigned long long)r.level[0].msgs,
          (unsigned long long)r.level[1].msgs);
    hand_free(&h);

    /* flat ring allreduce over both levels: slower than on the fast level alone */
    struct sim_coll c = {.kind = COLL_ALLREDUCE, .algo = ALGO_RING, .count = 1 << 20,
                         .type = CHORUS_FLOAT32};
    r.finish = NULL;
    CHECK(sim_collective(t, &c, &o, &r) == CHORUS_SUCCESS && r.time > 0, "ring on 2 levels: %s",
          r.error);
    CHECK(r.level[1].msgs > 0 && r.level[0].msgs > r.level[1].msgs, "ring crosses level 1 "
          "%llu times, level 0 %llu times", (unsigned long long)r.level[1].msgs,
          (unsigned long long)r.level[0].msgs);
    topo_free(t);
}

static void test_rule_breaks(void)
{
    struct topo *t;
    topo_uniform(2, BW, LAT, RBW, &t);
    struct hand h;
    struct sim_result r;

    /* both ranks receive first, then send: deadlock under rendezvous */
    hand_init(&h, 2);
    for (int k = 0; k < 2; k++) {
        plan_recv(&h.p[k], 1 - k, PLAN_RECVBUF, 0, 64);
        plan_step(&h.p[k]);
        plan_send(&h.p[k], 1 - k, PLAN_SENDBUF, 0, 64);
    }
    CHECK(hand_run(&h, t, &r) != CHORUS_SUCCESS && strstr(r.error, "deadlock"),
          "deadlock not reported: '%s'", r.error);
    printf("deadlock: %s\n", r.error);
    hand_free(&h);

    hand_init(&h, 2);
    plan_send(&h.p[0], 1, PLAN_SENDBUF, 0, 64);
    CHECK(hand_run(&h, t, &r) != CHORUS_SUCCESS && strstr(r.error, "no matching receive"),
          "unmatched send not reported: '%s'", r.error);
    printf("unmatched: %s\n", r.error);
    hand_free(&h);

    hand_init(&h, 2);
    plan_recv(&h.p[0], 1, PLAN_RECVBUF, 0, 64);
    CHECK(hand_run(&h, t, &r) != CHORUS_SUCCESS && strstr(r.error, "no matching send"),
          "unmatched receive not reported: '%s'", r.error);
    hand_free(&h);

    hand_init(&h, 2);
    plan_send(&h.p[0], 1, PLAN_SENDBUF, 0, 64);
    plan_recv(&h.p[1], 0, PLAN_RECVBUF, 0, 32);
    CHECK(hand_run(&h, t, &r) != CHORUS_SUCCESS && strstr(r.error, "64 B sent"),
          "byte mismatch not reported: '%s'", r.error);
    printf("mismatch: %s\n", r.error);
    hand_free(&h);

    hand_init(&h, 2);
    plan_send(&h.p[0], 0, PLAN_SENDBUF, 0, 64);
    CHECK(hand_run(&h, t, &r) != CHORUS_SUCCESS && strstr(r.error, "bad peer"),
          "send to self not reported: '%s'", r.error);
    hand_free(&h);
    topo_free(t);
}

/* 768 ranks: the size of a CloudMatrix384 supernode in dies. */
static void test_large(void)
{
    const int p = 768;
    size_t n = (size_t)1 << 30;
    n = n / (4u * p) * 4u * p;
    double t = sim_uniform(p, COLL_ALLREDUCE, ALGO_RING, n / 4, 0);
    double q = (double)(p - 1) / p;
    double want = 2 * (p - 1) * LAT + 2 * q * n / BW;
    CHECK(t > 0 && near(t, want, 0.05), "768-rank ring allreduce of 1 GiB: %g s, about %g s "
          "expected", t, want);
    printf("768 ranks ring allreduce 1 GiB: %.4f s (bandwidth bound %.4f s)\n", t, want);

    size_t blk = 4096;
    t = sim_uniform(p, COLL_ALLTOALL, ALGO_DIRECT, blk / 4, 0);
    want = LAT + (p - 1) * (double)blk / BW; /* every port carries p - 1 blocks at once */
    CHECK(t > 0 && near(t, want, 0.05), "768-rank direct alltoall of 4 KiB blocks: %g s, "
          "about %g s expected", t, want);
    printf("768 ranks direct alltoall 4 KiB blocks: %.6f s\n", t);
}

int main(void)
{
    test_closed_forms();
    test_reduce_models();
    test_contention();
    test_shapes();
    test_levels();
    test_rule_breaks();
    test_large();
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("all simulator tests passed\n");
    return 0;
}
