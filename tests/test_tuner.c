/* test_tuner.c - the tuner's model, table, overrides and tuning files
 * (src/tuner.h, src/tuner_file.h), without processes or MPI.
 *
 * The model against the closed forms it must reproduce on one uniform
 * level; the table's choice is the cheapest allowed candidate; CHORUS_ALGO
 * forcing and exclusion and tuning-file rules win where they apply and only
 * there; size lookups round to the nearest bucket; tuning files round-trip
 * and bad ones are refused with file, line and field. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "algo_select.h"
#include "hier_plan.h"
#include "tuner.h"
#include "tuner_file.h"

static int checks, fails;
#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            fails++;                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
        }                                                                 \
    } while (0)

static int near(double a, double b) { return fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)) + 1e-15; }

static void closed_forms(void)
{
    const double a = 5e-6, bw = 10e9, rbw = 4e9, b = 1 / bw, g = 1 / rbw;
    for (int p = 2; p <= 256; p *= 2) {
        struct topo *t;
        CHECK(topo_uniform(p, bw, a, rbw, &t) == CHORUS_SUCCESS, "uniform %d", p);
        for (double m = 8; m <= 1 << 30; m *= 64) {
            double P = p, L = log2(P);
            /* reduction overlaps arrival: the slower of b and g per byte */
            double rg = fmax(b, g);
            double ring = 2 * (P - 1) * a + (P - 1) / P * m * (b + rg);
            /* Rabenseifner; recursive doubling of the whole vector when short */
            double rhd = m <= RHD_DOUBLING_MAX ? L * (a + m * rg)
                                               : 2 * L * a + (P - 1) / P * m * (b + rg);
            double c = tuner_cost(t, NULL, COLL_ALLREDUCE, ALGO_RING, (size_t)m, NULL);
            CHECK(near(c, ring), "ring allreduce p=%d m=%g: %g vs %g", p, m, c, ring);
            c = tuner_cost(t, NULL, COLL_ALLREDUCE, ALGO_RHD, (size_t)m, NULL);
            CHECK(near(c, rhd), "rhd allreduce p=%d m=%g: %g vs %g", p, m, c, rhd);
            double ag = (P - 1) * (a + m * b); /* m: one rank's block */
            c = tuner_cost(t, NULL, COLL_ALLGATHER, ALGO_RING, (size_t)m, NULL);
            CHECK(near(c, ag), "ring allgather p=%d m=%g: %g vs %g", p, m, c, ag);
            double pw = (P - 1) * (a + m * b);
            c = tuner_cost(t, NULL, COLL_ALLTOALL, ALGO_PAIRWISE, (size_t)m, NULL);
            CHECK(near(c, pw), "pairwise alltoall p=%d m=%g: %g vs %g", p, m, c, pw);
            CHECK(tuner_cost(t, NULL, COLL_ALLREDUCE, ALGO_BRUCK, (size_t)m, NULL) < 0,
                  "bruck cannot allreduce");
            CHECK(tuner_cost(t, NULL, COLL_ALLREDUCE, ALGO_HIER, (size_t)m, NULL) < 0,
                  "no composition on one level");
        }
        topo_free(t);
    }
}

/* The table holds the cheapest candidate; small messages get a log-depth
 * algorithm, large ones a bandwidth-optimal one. */
static void table_is_cheapest(void)
{
    struct topo *t;
    CHECK(topo_uniform(64, 1.25e9, 25e-6, 4e9, &t) == CHORUS_SUCCESS, "uniform");
    struct tuner *tu = malloc(sizeof *tu);
    tuner_build(tu, t, NULL, NULL, NULL, 0);
    for (int k = 0; k < ALGO_NKINDS; k++) {
        for (int e = 0; e <= 30; e++) {
            size_t m = (size_t)1 << e;
            const struct tuner_choice *c = tuner_lookup(tu, (coll_kind_t)k, m);
            for (int a = ALGO_RING; a < ALGO_COUNT; a++) {
                double x = tuner_cost(t, NULL, (coll_kind_t)k, (algo_t)a, k == COLL_BARRIER ? 0 : m, NULL);
                CHECK(x < 0 || c->predicted <= x, "%s %zu: chose %s (%g) but %s costs %g",
                      coll_name((coll_kind_t)k), m, algo_name(c->algo), c->predicted,
                      algo_name((algo_t)a), x);
            }
        }
    }
    algo_t small = tuner_lookup(tu, COLL_ALLREDUCE, 8)->algo;
    CHECK(small == ALGO_RHD || small == ALGO_TREE, "8 B allreduce on 64 ranks: %s", algo_name(small));
    /* bandwidth-optimal (ring, Rabenseifner or direct, which the model
     * prices with the same bandwidth term and fewer latencies), never the
     * tree */
    algo_t big = tuner_lookup(tu, COLL_ALLREDUCE, 1u << 30)->algo;
    CHECK(big == ALGO_RING || big == ALGO_RHD || big == ALGO_DIRECT, "1 GiB allreduce: %s",
          algo_name(big));
    free(tu);
    topo_free(t);
}

static void lookup_rounds(void)
{
    struct topo *t;
    CHECK(topo_uniform(8, 1e9, 1e-5, 4e9, &t) == CHORUS_SUCCESS, "uniform");
    struct tuner *tu = malloc(sizeof *tu);
    tuner_build(tu, t, NULL, NULL, NULL, 0);
    const struct tuner_choice *row = tu->table[COLL_ALLREDUCE];
    CHECK(tuner_lookup(tu, COLL_ALLREDUCE, 0) == &row[0], "0 bytes -> bucket 0");
    CHECK(tuner_lookup(tu, COLL_ALLREDUCE, 3) == &row[2], "3 -> 4");
    CHECK(tuner_lookup(tu, COLL_ALLREDUCE, 5) == &row[2], "5 -> 4");
    CHECK(tuner_lookup(tu, COLL_ALLREDUCE, 6) == &row[3], "6 -> 8");
    CHECK(tuner_lookup(tu, COLL_ALLREDUCE, (size_t)1 << 50) == &row[TUNER_NBUCKETS - 1],
          "huge -> last bucket");
    CHECK(tuner_lookup(tu, COLL_BARRIER, 12345) == &tu->table[COLL_BARRIER][0], "barrier");
    free(tu);
    topo_free(t);
}

static void overrides(void)
{
    struct topo *t;
    CHECK(topo_uniform(16, 1.25e9, 25e-6, 4e9, &t) == CHORUS_SUCCESS, "uniform");
    struct tuner *tu = malloc(sizeof *tu);
    struct algo_config cfg;
    CHECK(algo_config_parse(&cfg, "allreduce:tree;alltoall:^direct,bruck") == CHORUS_SUCCESS,
          "parse");
    struct tuner_rule rules[] = {
        {COLL_ALLGATHER, 1024, 65536, ALGO_RING},
        {COLL_ALLREDUCE, 0, SIZE_MAX, ALGO_RING}, /* CHORUS_ALGO's forcing wins */
    };
    tuner_build(tu, t, NULL, &cfg, rules, 2);
    for (int e = 0; e <= 30; e++) {
        size_t m = (size_t)1 << e;
        CHECK(tuner_lookup(tu, COLL_ALLREDUCE, m)->algo == ALGO_TREE, "forced tree at %zu", m);
        algo_t a2a = tuner_lookup(tu, COLL_ALLTOALL, m)->algo;
        CHECK(a2a != ALGO_DIRECT && a2a != ALGO_BRUCK, "excluded alltoall %s at %zu",
              algo_name(a2a), m);
        algo_t ag = tuner_lookup(tu, COLL_ALLGATHER, m)->algo;
        if (m >= 1024 && m <= 65536)
            CHECK(ag == ALGO_RING, "rule: allgather %zu: %s", m, algo_name(ag));
    }
    /* outside the rule the model decides: at 8 B a log-depth algorithm */
    algo_t ag8 = tuner_lookup(tu, COLL_ALLGATHER, 8)->algo;
    CHECK(ag8 != ALGO_RING, "allgather 8 B outside the rule: %s", algo_name(ag8));
    free(tu);
    topo_free(t);
}

static void layouts(void)
{
    struct tuner_link net = {25e-6, 1.25e9};
    struct topo *t;
    CHECK(tuner_layout_topo(4, 8, 32, &net, 4e9, &t) == CHORUS_SUCCESS, "4x8");
    CHECK(t->nlevels == 2 && t->levels[0].group == 8 && t->levels[1].group == 4 && t->nranks == 32,
          "4x8: %d levels", t->nlevels);
    struct tuner_shm shm = {1, 1e-6, 1 / 6e9};
    CHECK(tuner_hier_possible(t, &shm, COLL_ALLREDUCE), "hier on 4x8");
    struct tuner *tu = malloc(sizeof *tu);
    tuner_build(tu, t, &shm, NULL, NULL, 0);
    /* shared memory is much faster than the network: large allreduce composes */
    CHECK(tuner_lookup(tu, COLL_ALLREDUCE, 64u << 20)->algo == ALGO_HIER, "4x8 64 MiB: %s",
          algo_name(tuner_lookup(tu, COLL_ALLREDUCE, 64u << 20)->algo));
    char line[1024];
    tuner_summary(tu, COLL_ALLREDUCE, line, sizeof line);
    CHECK(!strncmp(line, "allreduce: 1-", 13) && strstr(line, "-1T "), "summary '%s'", line);
    topo_free(t);
    CHECK(tuner_layout_topo(3, 0, 7, &net, 4e9, &t) == CHORUS_SUCCESS, "uneven");
    CHECK(t->nlevels == 1 && t->nranks == 7, "uneven: one level of 7");
    CHECK(!tuner_hier_possible(t, &shm, COLL_ALLREDUCE), "no hier on one level");
    topo_free(t);
    free(tu);
}

static const char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/chorus-test-tuning-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        return NULL;
    close(fd);
    return path;
}

static void tuning_files(void)
{
    struct tuning t = {.figures = tuner_default_figures};
    t.figures.tcp = (struct tuner_link){17.5e-6, 2.25e9};
    t.figures.shm = (struct tuner_link){0.75e-6, 5.5e9};
    t.figures.reduce_bw = 3.5e9;
    t.rules[0] = (struct tuner_rule){COLL_ALLREDUCE, 0, 4096, ALGO_RHD};
    t.rules[1] = (struct tuner_rule){COLL_ALLTOALL, 1 << 20, SIZE_MAX, ALGO_PAIRWISE};
    t.nrules = 2;
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    tuning_write(m, &t, "test");
    fclose(m);
    const char *path = write_tmp(text);
    struct tuning back;
    char err[512] = "";
    CHECK(path && tuning_read(path, &back, err, sizeof err) == CHORUS_SUCCESS, "read back: %s",
          err);
    CHECK(near(back.figures.tcp.alpha, 17.5e-6) && near(back.figures.tcp.bw, 2.25e9) &&
              near(back.figures.shm.alpha, 0.75e-6) && near(back.figures.reduce_bw, 3.5e9),
          "figures round trip");
    CHECK(near(back.figures.rdma.bw, tuner_default_figures.rdma.bw), "rdma default kept");
    CHECK(back.nrules == 2 && back.rules[0].kind == COLL_ALLREDUCE &&
              back.rules[0].max_bytes == 4096 && back.rules[0].algo == ALGO_RHD &&
              back.rules[1].max_bytes == SIZE_MAX && back.rules[1].algo == ALGO_PAIRWISE,
          "rules round trip");
    uint64_t h1 = back.hash;
    if (path)
        unlink(path);
    free(text);

    /* a changed file changes the hash ranks compare */
    path = write_tmp("figures:\n  tcp: {latency: 18 us, bandwidth: 2.25 GB/s}\n");
    CHECK(path && tuning_read(path, &back, err, sizeof err) == CHORUS_SUCCESS, "partial: %s", err);
    CHECK(back.hash != h1, "hash differs");
    CHECK(near(back.figures.shm.bw, tuner_default_figures.shm.bw), "unset figures default");
    if (path)
        unlink(path);

    static const struct {
        const char *text, *want;
    } bad[] = {
        {"figures:\n  tcp: {latency: 18 parsecs, bandwidth: 1 GB/s}\n", "figures.tcp.latency"},
        {"figures:\n  tcp: {latency: -1 us}\n", "figures.tcp.latency"},
        {"figures:\n  udp: {latency: 1 us}\n", "figures.udp: unknown key"},
        {"rules:\n  - {collective: allreduce, algorithm: bruck}\n", "does not implement"},
        {"rules:\n  - {collective: allreduce, min: 2K, max: 1K, algorithm: ring}\n", "min is larger"},
        {"rules:\n  - {collective: allsum, algorithm: ring}\n", "unknown collective"},
        {"rules:\n  - {collective: allreduce}\n", "needs collective and algorithm"},
        {"rules:\n  - {collective: allreduce, algorithm: ring, max: lots}\n", "rules[0].max"},
        {"speed: 3\n", "speed: unknown key"},
        {"figures: [1, 2\n", ":2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        path = write_tmp(bad[i].text);
        err[0] = 0;
        chorus_result_t rc = path ? tuning_read(path, &back, err, sizeof err) : CHORUS_SUCCESS;
        CHECK(rc == CHORUS_INVALID_ARGUMENT, "bad file %zu accepted", i);
        CHECK(strstr(err, bad[i].want) && path && strstr(err, path), "bad file %zu: '%s' lacks '%s'",
              i, err, bad[i].want);
        if (path)
            unlink(path);
    }
    CHECK(tuning_read("/nonexistent/chorus.yaml", &back, err, sizeof err) ==
              CHORUS_INVALID_ARGUMENT && strstr(err, "/nonexistent/chorus.yaml"),
          "missing file: '%s'", err);
}

/* On every shipped topology, the 8-byte choice of each collective needs no
 * more steps than a log-depth algorithm: building its plans (flat or
 * composed over the levels) and counting steps on the first and last rank. */
static void latency_depth(void)
{
    const char *names[] = {"cloudmatrix384", "metax-c550-128", "gb200-nvl72", "8gpu-roce400"};
    if (!getenv("CHORUS_TOPO_DIR")) {
        printf("test_tuner: CHORUS_TOPO_DIR unset: shipped topologies not checked\n");
        return;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct topo *t;
        char err[256];
        if (topo_load(names[i], &t, err, sizeof err) != CHORUS_SUCCESS) {
            CHECK(0, "%s: %s", names[i], err);
            continue;
        }
        struct algo_config cfg;
        memset(&cfg, 0, sizeof cfg);
        tuner_topo_constraints(t, &cfg);
        struct tuner *tu = malloc(sizeof *tu);
        tuner_build(tu, t, NULL, &cfg, NULL, 0);
        int p = t->nranks, lg = 0;
        while ((1 << lg) < p)
            lg++;
        /* issue 5: no more steps than a log-depth algorithm, i.e. recursive
         * doubling, Bruck, a binomial tree or dissemination: ceil(log2 p)
         * rounds, one more when p is not a power of two (recursive
         * doubling's fold: floor(log2 p) rounds and a step each way) */
        int bound = lg + ((p & (p - 1)) != 0);
        const coll_kind_t kinds[] = {COLL_ALLREDUCE, COLL_ALLGATHER, COLL_ALLTOALL,
                                     COLL_REDUCE_SCATTER, COLL_BROADCAST, COLL_REDUCE,
                                     COLL_BARRIER};
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            const struct tuner_choice *c = tuner_lookup(tu, kinds[k], 8);
            int ranks[2] = {0, p - 1};
            for (int j = 0; j < 2; j++) {
                struct plan pl;
                memset(&pl, 0, sizeof pl);
                struct plan_args pa = {.kind = kinds[k], .nranks = p, .rank = ranks[j],
                                       .count = kinds[k] == COLL_BARRIER ? 0 : 2, .esize = 4};
                chorus_result_t rc;
                if (c->algo == ALGO_HIER) {
                    struct hier_args h = {.base = pa, .nlevels = t->nlevels};
                    for (int l = 0; l < t->nlevels; l++) {
                        h.group[l] = t->levels[l].group;
                        h.algo[l] = c->level_algo[l];
                    }
                    h.pipe_min_bytes = kinds[k] == COLL_ALLREDUCE ? c->segment : 0;
                    rc = hier_plan(&pl, &h);
                } else {
                    rc = plan_build(&pl, &pa, c->algo);
                }
                CHECK(rc == CHORUS_SUCCESS, "%s %s: %s plan: %s", names[i],
                      coll_name(kinds[k]), algo_name(c->algo), chorus_get_last_error());
                CHECK(pl.nsteps <= bound, "%s %s 8 B: %s takes %d steps on rank %d (log-depth "
                      "bound %d)", names[i], coll_name(kinds[k]), algo_name(c->algo), pl.nsteps,
                      ranks[j], bound);
                plan_free(&pl);
            }
        }
        free(tu);
        topo_free(t);
    }
}

int main(void)
{
    closed_forms();
    table_is_cheapest();
    lookup_rounds();
    overrides();
    layouts();
    tuning_files();
    latency_depth();
    printf("test_tuner: %d checks, %d failed\n", checks, fails);
    return fails ? 1 : 0;
}
