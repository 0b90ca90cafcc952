/* test_sim.c - the simulator (perf/sim) against what its model promises:
 *  - on one switch, the closed-form alpha-beta-gamma costs of ring and
 *    recursive halving/doubling allreduce (powers of two and not: the
 *    fold), ring and Bruck allgather, Bruck and pairwise alltoall, within
 *    5%, for several rank counts and sizes;
 *  - issue 5's bar: on every shipped topology, the tuner's choice at
 *    256 MiB and 1 GiB reaches 85% of tuner_bound, or is a listed known
 *    shortfall (XFAIL, with its reason); --bounds runs only that,
 *    --bound-table prints it as the supernode report's table;
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
#include "tuner.h"

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

            {
                /* Rabenseifner over the largest power of two; the others fold
                 * into a partner first (a vector each way, one reduction) */
                int lg = 0, pof2 = 1;
                while (pof2 * 2 <= p) {
                    pof2 *= 2;
                    lg++;
                }
                double qq = (double)(pof2 - 1) / pof2;
                int fold = pof2 != p;
                t = sim_uniform(p, COLL_ALLREDUCE, ALGO_RHD, n / 4, 1);
                want = (2 * lg + 2 * fold) * a + (2 * qq + 2 * fold) * n * b + (qq + fold) * n * g;
                CHECK(near(t, want, 0.05), "rhd allreduce p=%d n=%zu: %g s, closed form %g s", p,
                      n, t, want);
                checked++;
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
            /* Bruck alltoall: step k sends the blocks whose index has bit k
             * set, (n / 2) lg p of the bytes for a power of two */
            {
                double bytes = 0;
                int steps = 0;
                for (int d = 1; d < p; d *= 2, steps++)
                    for (int j = 1; j < p; j++)
                        bytes += (j & d) ? (double)blk : 0;
                t = sim_uniform(p, COLL_ALLTOALL, ALGO_BRUCK, blk / 4, 1);
                want = steps * a + bytes * b;
                CHECK(near(t, want, 0.05), "bruck alltoall p=%d n=%zu: %g s, closed form %g s",
                      p, n, t, want);
                checked++;
            }
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

/* ---- issue 5's bar: the tuner's choice against the bandwidth bound ------------------ */

/* At large sizes the tuner's choice, simulated, must reach BOUND_SHARE of
 * the bandwidth bound (tuner_bound, docs/tuner.md). Cases known to fall
 * short are listed with the reason; they are reported as XFAIL and do not
 * fail the test, but one that starts passing (XPASS) does, so the list
 * stays true. */
#define BOUND_SHARE 0.85

struct shortfall {
    const char *topo, *coll, *why;
};
static const struct shortfall known_short[] = {
    {"8gpu-roce400", "allreduce",
     "84% at 256 MiB (92% at 1 GiB) with the tuner's 8 MiB segments: each of the 45 slots "
     "pays the 3.5 us RoCE latency, and the fill and drain leave a level idle; no segment "
     "count or lockstep pair of level algorithms simulates above 84%"},
    {"cloudmatrix384", "reduce_scatter",
     "pipelined, 59-62%: the first level reads the input in rank order, one message per rank "
     "block and piece (384 per piece of 66 KiB at 1 GiB), and the simulator reduces messages "
     "that land together one after the other: the die pair's reductions follow its transfers"},
    {"metax-c550-128", "reduce_scatter",
     "pipelined, 57-68%: as cloudmatrix384 (the first level's messages split per rank block "
     "land together), and at 256 MiB 16 pieces for 15 steps of fill and drain"},
    {"8gpu-roce400", "reduce_scatter",
     "pipelined, 66-74%: as cloudmatrix384 (the server's split messages reduced one after the "
     "other) and the RoCE latency per step"},
    {"cloudmatrix384", "broadcast",
     "hier(direct,direct,direct), the pipelined multi-level broadcast, 47-50%: the root's die "
     "pair takes every piece over its one 210 GB/s link (the root's server then splits it by "
     "halves; a root sending half through its server port would allow about 87%, an "
     "estimate: not written), "
     "and 9 steps per piece leave 8 slots of fill and drain (32 pieces at 256 MiB)"},
    {"metax-c550-128", "broadcast",
     "hier(direct,direct,direct), 70-78%: the root's server takes every piece through the "
     "root's full mesh (315 GB/s of the bound's 360: 87% at best), and 9 steps per piece are "
     "8 slots of fill and drain, each paying the 3 us RoCE latency (32 pieces at 256 MiB)"},
    {"8gpu-roce400", "broadcast",
     "hier(direct,direct), 88% at 1 GiB but 78% at 256 MiB: each of 32 pieces takes 5 steps "
     "whose loads are all near the bound's (the root's NVSwitch port, the RoCE port, the "
     "allgather), so the 4 slots of fill and drain cost full slots, and each slot pays the "
     "3.5 us RoCE latency (16 MiB pieces simulate at 75%; 4 MiB ones are priced slower)"},
    {"cloudmatrix384", "reduce",
     "hier(direct,direct,direct), the pipelined multi-level reduce, 32-34%: in the root's die "
     "pair the partner, the one other member, sends every whole piece over the one 210 GB/s "
     "link (54% of the bound at most, as the broadcast), a piece takes 64 steps (46 of them the "
     "one-peer-per-step reduce-scatter among the 47 other servers' ranks) so the fill and drain "
     "cost about 63 slots against at most 128 pieces, and it simulates 7-16% slower than priced"},
    {"metax-c550-128", "reduce",
     "hier(direct,direct,direct), 38-47%: the root takes every piece in through its server's "
     "full mesh (315 GB/s of the bound's 360: 87% at most), a piece takes 36 steps, whose fill "
     "and drain cost nearly full slots against 64 (256 MiB) or 128 pieces, each slot paying the "
     "3 us RoCE latency, and it simulates 11-17% slower than priced"},
    {"8gpu-roce400", "reduce",
     "hier(direct,direct), 52-62%: every port carries at most its bound's share of a piece, but "
     "a piece takes 29 steps (7 reducing inside a server, 15 across RoCE, 7 in the root's "
     "server), each port busy in a few of them, so one port or another is near full in every "
     "fill and drain slot (28 more slots against 64 or 128 pieces, each paying 3.5 us RoCE "
     "latency); 256 pieces simulate at 65% at 1 GiB (not allowed: at 256 the 768-rank "
     "cloudmatrix384 simulation of 1 GiB takes 2.6 GB and a minute), "
     "and it simulates 7-15% slower than priced"},
    {"gb200-nvl72", "reduce",
     "pipelined double binary tree reversed, 68-77% (ring 48-50%): each of the ~270 steps "
     "pays 0.6 us, and an interior rank's two arriving sums are reduced one after the other "
     "(0.8 us more per step); no direct reduce yet (its many small reductions per step would "
     "queue the same way)"},
    {NULL, NULL, NULL},
};

static const char *shortfall_reason(const char *topo, const char *coll)
{
    for (const struct shortfall *k = known_short; k->topo; k++)
        if (!strcmp(k->topo, topo) && !strcmp(k->coll, coll))
            return k->why;
    return NULL;
}

static const char *const shipped[] = {"cloudmatrix384", "metax-c550-128", "gb200-nvl72",
                                      "8gpu-roce400"};
static const coll_kind_t bound_kinds[] = {COLL_ALLREDUCE, COLL_ALLGATHER, COLL_ALLTOALL,
                                          COLL_REDUCE_SCATTER, COLL_BROADCAST, COLL_REDUCE};

/* The tuner's choice for kind at size S (nccl-tests' S: the whole buffer of
 * all ranks for allgather, reduce_scatter, alltoall), simulated: its busbw
 * and the bound's; label gets the choice's name. */
static int choice_vs_bound(const struct topo *t, const struct tuner *tu, coll_kind_t kind,
                           size_t S, double *busbw, double *bound_busbw, char *label, size_t len)
{
    const size_t es = 4, p = (size_t)t->nranks;
    int whole = kind == COLL_ALLGATHER || kind == COLL_REDUCE_SCATTER || kind == COLL_ALLTOALL;
    size_t count = S / es / (whole ? p : 1), bytes = count * es;
    const struct tuner_choice *tc = tuner_lookup(tu, kind, bytes);
    struct sim_coll c = {.kind = kind, .algo = tc->algo, .count = count, .type = CHORUS_FLOAT32};
    size_t k = (size_t)snprintf(label, len, "%s", algo_name(tc->algo));
    for (int i = 0; i < TOPO_MAX_LEVELS; i++)
        c.level_algo[i] = tc->level_algo[i];
    c.segment = tc->segment;
    if (tc->algo == ALGO_HIER)
        for (int i = 0; i < t->nlevels && k < len; i++)
            k += (size_t)snprintf(label + k, len - k, "%s%s%s", i ? "," : "(",
                                  algo_name(tc->level_algo[i]), i == t->nlevels - 1 ? ")" : "");
    struct sim_result r = {0};
    if (sim_collective(t, &c, NULL, &r) != CHORUS_SUCCESS) {
        printf("  %s %s %zu B: %s\n", t->name, coll_name(kind), S, r.error);
        return -1;
    }
    *busbw = tuner_busbw(t, kind, bytes, r.time);
    *bound_busbw = tuner_busbw(t, kind, bytes, tuner_bound(t, kind, bytes, NULL));
    return 0;
}

/* Every shipped topology and collective at 256 MiB and 1 GiB. With table
 * set, prints one markdown row per case (the supernode report's table)
 * instead of checking. */
static void test_bounds(int table)
{
    const char *dir = getenv("CHORUS_TOPO_DIR");
    if (!dir || !*dir) {
        printf("bounds: CHORUS_TOPO_DIR unset: shipped topologies not checked\n");
        return;
    }
    const size_t sizes[] = {(size_t)256 << 20, (size_t)1 << 30};
    int pass = 0, xfail = 0;
    if (table)
        printf("| topology | collective | size | tuner's choice | busbw GB/s | bound GB/s | "
               "share | limiting level |\n|---|---|---:|---|---:|---:|---:|---|\n");
    for (size_t i = 0; i < sizeof shipped / sizeof *shipped; i++) {
        struct topo *t;
        char err[256];
        if (topo_load(shipped[i], &t, err, sizeof err) != CHORUS_SUCCESS) {
            CHECK(0, "%s: %s", shipped[i], err);
            continue;
        }
        struct algo_config cfg;
        memset(&cfg, 0, sizeof cfg);
        tuner_topo_constraints(t, &cfg);
        struct tuner *tu = malloc(sizeof *tu);
        tuner_build(tu, t, NULL, &cfg, NULL, 0);
        for (size_t k = 0; k < sizeof bound_kinds / sizeof *bound_kinds; k++) {
            const char *cn = coll_name(bound_kinds[k]);
            const char *why = shortfall_reason(shipped[i], cn);
            int all_ok = 1;
            for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
                double bw, bound;
                char lbl[96];
                if (choice_vs_bound(t, tu, bound_kinds[k], sizes[z], &bw, &bound, lbl,
                                    sizeof lbl)) {
                    CHECK(0, "%s %s: simulation failed", shipped[i], cn);
                    continue;
                }
                int ok = bw >= BOUND_SHARE * bound;
                all_ok &= ok;
                if (table) {
                    int lim;
                    int whole = bound_kinds[k] == COLL_ALLGATHER ||
                                bound_kinds[k] == COLL_REDUCE_SCATTER ||
                                bound_kinds[k] == COLL_ALLTOALL;
                    tuner_bound(t, bound_kinds[k], sizes[z] / 4 / (whole ? t->nranks : 1) * 4,
                                &lim);
                    printf("| %s | %s | %zu MiB | %s | %.1f | %.1f | %.0f%% | %s |\n", shipped[i],
                           cn, sizes[z] >> 20, lbl, bw, bound, 100 * bw / bound,
                           lim < 0 ? "reduction" : t->levels[lim].name);
                    continue;
                }
                printf("  %-15s %-15s %5zu MiB %-34s %7.1f of %7.1f GB/s busbw (%3.0f%%)%s\n",
                       shipped[i], cn, sizes[z] >> 20, lbl, bw, bound, 100 * bw / bound,
                       ok ? "" : why ? "  XFAIL" : "  FAIL");
                CHECK(ok || why, "%s %s %zu MiB: %s reaches %.1f of the %.1f GB/s bound (< %.0f%%)",
                      shipped[i], cn, sizes[z] >> 20, lbl, bw, bound, 100 * BOUND_SHARE);
            }
            if (table)
                continue;
            if (why && all_ok)
                CHECK(0, "%s %s: listed as short of the bound (%s) but reaches it: XPASS, "
                      "update known_short", shipped[i], cn, why);
            if (why && !all_ok) {
                printf("      XFAIL reason: %s\n", why);
                xfail++;
            } else if (all_ok) {
                pass++;
            }
        }
        free(tu);
        topo_free(t);
    }
    if (!table)
        printf("bounds: %d collective x topology cases reach %.0f%% of the bound, %d known short "
               "(XFAIL)\n", pass, 100 * BOUND_SHARE, xfail);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--bound-table")) {
        test_bounds(1);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--bounds")) {
        test_bounds(0);
        return failures ? 1 : 0;
    }
    test_closed_forms();
    test_reduce_models();
    test_contention();
    test_shapes();
    test_levels();
    test_rule_breaks();
    test_large();
    test_bounds(0);
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("all simulator tests passed\n");
    return 0;
}
