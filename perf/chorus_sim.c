/* chorus_sim - the perf tools' table for a modelled machine: runs the real
 * plans of a collective on a topology (a shipped short name or a topology
 * file) in the simulator (perf/sim) and prints size, count, type, redop,
 * root, time, algbw and busbw (nccl-tests' definitions) and the algorithm of
 * each row. No MPI, no network: one process, timing only.
 *
 *   chorus_sim --topo cloudmatrix384 --coll allreduce -b 8 -e 1G -f 4
 *   chorus_sim --topo metax-c550-128 --coll alltoall --algo all
 *
 * Without --algo each size runs the tuner's choice, built as the runtime
 * builds it for this topology (CHORUS_ALGO, the tuning file's rules: the
 * runtime, chorus_tune and this agree); --algo all prints one row per
 * candidate. docs/simulator.md describes the model. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "plan.h"
#include "sim.h"
#include "topo.h"
#include "tuner.h"
#include "tuner_file.h"

/* ---- collectives, types, ops ------------------------------------------------- */

struct coll_info {
    const char *name;
    coll_kind_t kind;
    int whole_buffer; /* size S is the whole buffer of all ranks (count = S / esize / n) */
    int has_op, has_root;
    int busbw_kind;   /* 0: x 2(n-1)/n, 1: x (n-1)/n, 2: x 1, 3: none (barrier) */
};

static const struct coll_info colls[] = {
    {"allreduce", COLL_ALLREDUCE, 0, 1, 0, 0},
    {"allgather", COLL_ALLGATHER, 1, 0, 0, 1},
    {"alltoall", COLL_ALLTOALL, 1, 0, 0, 1},
    {"alltoallv", COLL_ALLTOALLV, 1, 0, 0, 1},
    {"reduce_scatter", COLL_REDUCE_SCATTER, 1, 1, 0, 1},
    {"broadcast", COLL_BROADCAST, 0, 0, 1, 2},
    {"reduce", COLL_REDUCE, 0, 1, 1, 2},
    {"barrier", COLL_BARRIER, 0, 0, 0, 3},
};

static double busbw_factor(const struct coll_info *c, int n)
{
    switch (c->busbw_kind) {
    case 0: return 2.0 * (n - 1) / n;
    case 1: return (double)(n - 1) / n;
    case 2: return 1.0;
    default: return 0.0;
    }
}

static const struct {
    chorus_datatype_t type;
    const char *names; /* the printed name first, then aliases */
} types[] = {
    {CHORUS_INT8, "int8 i8 char"},     {CHORUS_UINT8, "uint8 u8"},
    {CHORUS_INT32, "int32 i32 int"},   {CHORUS_UINT32, "uint32 u32"},
    {CHORUS_INT64, "int64 i64"},       {CHORUS_UINT64, "uint64 u64"},
    {CHORUS_FLOAT16, "half float16 fp16 f16"}, {CHORUS_BFLOAT16, "bfloat16 bf16"},
    {CHORUS_FLOAT32, "float float32 fp32 f32"}, {CHORUS_FLOAT64, "double float64 fp64 f64"},
};
static const char *const op_names[CHORUS_NUM_OPS] = {
    [CHORUS_SUM] = "sum", [CHORUS_PROD] = "prod", [CHORUS_MIN] = "min",
    [CHORUS_MAX] = "max", [CHORUS_AVG] = "avg",
};

static void type_name(size_t i, char *out, size_t cap)
{
    size_t k = strcspn(types[i].names, " ");
    snprintf(out, cap, "%.*s", (int)k, types[i].names);
}

static int parse_type(const char *s, chorus_datatype_t *t)
{
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        const char *p = types[i].names;
        while (*p) {
            size_t k = strcspn(p, " ");
            if (strlen(s) == k && strncasecmp(s, p, k) == 0) {
                *t = types[i].type;
                return 0;
            }
            p += k + (p[k] == ' ');
        }
    }
    return -1;
}

/* "8", "64K", "1M", "1G" (binary multiples, as nccl-tests reads them) */
static int parse_size(const char *s, size_t *out)
{
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || (shift && v > (SIZE_MAX >> shift)))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

/* ---- options ---------------------------------------------------------------- */

/* A setting the runtime reads from the environment (CHORUS_ALGO,
 * CHORUS_TUNING_FILE), and where this run's value came from: the flag wins
 * over the variable, as for the runtime nothing else sets them. */
struct setting {
    const char *env, *value, *from;
    const char *ignored; /* the variable's value when a flag won over it */
};

struct cli {
    const char *topo, *algo_arg;
    struct setting algo_env, tuning;
    const struct coll_info *coll;
    size_t min_bytes, max_bytes, step_bytes;
    double factor;
    chorus_datatype_t type;
    chorus_op_t op;
    int root, nranks;
    struct sim_opts sim;
    int best;                  /* --algo best: simulate every candidate, keep the fastest */
    const struct tuner *tuner; /* otherwise rows run the tuner's choice */
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: chorus_sim --topo NAME|FILE --coll COLL [options]\n"
            "Simulates the real plans of a collective on a modelled topology and prints\n"
            "the perf tools' columns (docs/simulator.md).\n"
            "  --topo NAME|FILE   shipped topology (cloudmatrix384, metax-c550-128,\n"
            "                     gb200-nvl72, 8gpu-roce400; looked up in $CHORUS_TOPO_DIR,\n"
            "                     then the installed directory) or a topology file;\n"
            "                     uniform:N[:GB/s[:us]] is one switch of N ranks\n"
            "  --coll C           allreduce allgather alltoall alltoallv reduce_scatter\n"
            "                     broadcast reduce barrier\n"
            "  -b, --minbytes S   smallest size (default 8); K, M, G suffixes\n"
            "  -e, --maxbytes S   largest size (default 1G)\n"
            "  -f, --stepfactor F multiply the size by F (default 4)\n"
            "  -i, --stepbytes S  add S instead\n"
            "  -d, --datatype T   float (default), double, half, bfloat16, int8, ...\n"
            "  -o, --op OP        sum (default), prod, min, max, avg (printed; every op\n"
            "                     reduces at the topology's reduction speed)\n"
            "  -r, --root R       root of broadcast and reduce (default 0)\n"
            "  --algo NAME|all|best  force one algorithm (ring, rhd, tree, bruck, pairwise,\n"
            "                     direct, dissemination, hier); all: one row per candidate;\n"
            "                     best: the fastest simulated one. Default: the tuner's choice,\n"
            "                     with $CHORUS_ALGO's overrides as the runtime applies them\n"
            "                     (--algo wins over CHORUS_ALGO)\n"
            "  --tuning FILE      a tuning file's rules replace the tuner's choice in their\n"
            "                     size ranges (default: $CHORUS_TUNING_FILE, as the runtime)\n"
            "  --nranks N         run on the first N ranks of the topology (flat plans)\n"
            "  --reduce-model M   pipelined (default: reduction overlaps arrival) or serial\n"
            "  --copy-bw GB/s     speed of local copies (default 1.5 x reduction speed)\n"
            "  -h, --help\n");
}

static const char *next_arg(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "chorus_sim: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* -1: go on; else the exit status */
static int parse_cli(int argc, char **argv, struct cli *c)
{
    *c = (struct cli){.min_bytes = 8, .max_bytes = (size_t)1 << 30, .factor = 4,
                      .type = CHORUS_FLOAT32, .op = CHORUS_SUM,
                      .algo_env = {"CHORUS_ALGO", getenv("CHORUS_ALGO"), "CHORUS_ALGO", NULL},
                      .tuning = {"CHORUS_TUNING_FILE", getenv("CHORUS_TUNING_FILE"),
                                 "CHORUS_TUNING_FILE", NULL}};
    sim_opts_default(&c->sim);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
#define OPT(s, l) (!strcmp(a, s) || !strcmp(a, l))
        if (!(v = next_arg(argc, argv, &i)))
            return 2;
        if (OPT("-t", "--topo")) {
            c->topo = v;
        } else if (OPT("-c", "--coll")) {
            for (size_t k = 0; k < sizeof colls / sizeof *colls; k++)
                if (!strcasecmp(v, colls[k].name))
                    c->coll = &colls[k];
            if (!c->coll) {
                fprintf(stderr, "chorus_sim: unknown collective '%s' (valid:", v);
                for (size_t k = 0; k < sizeof colls / sizeof *colls; k++)
                    fprintf(stderr, " %s", colls[k].name);
                fprintf(stderr, ")\n");
                return 2;
            }
        } else if (OPT("-b", "--minbytes") || OPT("-e", "--maxbytes") ||
                   OPT("-i", "--stepbytes")) {
            size_t *dst = a[1] == 'b' || !strcmp(a, "--minbytes") ? &c->min_bytes
                          : a[1] == 'e' || !strcmp(a, "--maxbytes") ? &c->max_bytes
                                                                     : &c->step_bytes;
            if (parse_size(v, dst)) {
                fprintf(stderr, "chorus_sim: bad size '%s' for %s\n", v, a);
                return 2;
            }
            if (dst == &c->step_bytes)
                c->factor = 0;
        } else if (OPT("-f", "--stepfactor")) {
            c->factor = strtod(v, NULL);
            if (!(c->factor > 1)) {
                fprintf(stderr, "chorus_sim: step factor '%s' must be > 1\n", v);
                return 2;
            }
        } else if (OPT("-d", "--datatype")) {
            if (parse_type(v, &c->type)) {
                fprintf(stderr, "chorus_sim: unknown type '%s'\n", v);
                return 2;
            }
        } else if (OPT("-o", "--op")) {
            int k = 0;
            while (k < CHORUS_NUM_OPS && strcasecmp(v, op_names[k]))
                k++;
            if (k == CHORUS_NUM_OPS) {
                fprintf(stderr, "chorus_sim: unknown op '%s'\n", v);
                return 2;
            }
            c->op = (chorus_op_t)k;
        } else if (OPT("-r", "--root")) {
            c->root = atoi(v);
        } else if (!strcmp(a, "--algo")) {
            c->algo_arg = v;
        } else if (!strcmp(a, "--tuning")) {
            const char *e = getenv("CHORUS_TUNING_FILE");
            c->tuning = (struct setting){"CHORUS_TUNING_FILE", v, "--tuning",
                                         e && *e ? e : NULL};
        } else if (!strcmp(a, "--nranks")) {
            c->nranks = atoi(v);
            if (c->nranks < 1) {
                fprintf(stderr, "chorus_sim: --nranks %s: need at least 1\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--reduce-model")) {
            if (!strcmp(v, "serial"))
                c->sim.reduce_model = SIM_REDUCE_SERIAL;
            else if (!strcmp(v, "pipelined"))
                c->sim.reduce_model = SIM_REDUCE_PIPELINED;
            else {
                fprintf(stderr, "chorus_sim: --reduce-model is pipelined or serial\n");
                return 2;
            }
        } else if (!strcmp(a, "--copy-bw")) {
            c->sim.copy_bw = strtod(v, NULL) * 1e9;
            if (!(c->sim.copy_bw > 0)) {
                fprintf(stderr, "chorus_sim: --copy-bw '%s' must be > 0 (GB/s)\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "chorus_sim: unknown option '%s' (--help lists them)\n", a);
            return 2;
        }
#undef OPT
    }
    if (!c->topo || !c->coll) {
        fprintf(stderr, "chorus_sim: --topo and --coll are required\n");
        usage(stderr);
        return 2;
    }
    if (c->min_bytes > c->max_bytes || (c->factor == 0 && c->step_bytes == 0)) {
        fprintf(stderr, "chorus_sim: bad size range\n");
        return 2;
    }
    return -1;
}

/* ---- topology --------------------------------------------------------------- */

/* uniform:N[:GB/s[:us]] - a quick stand-in machine; otherwise topo_load. */
static struct topo *load_topo(const char *arg)
{
    struct topo *t = NULL;
    char err[512] = "";
    if (!strncmp(arg, "uniform:", 8)) {
        int n = 0;
        double gbs = 25, us = 2;
        if (sscanf(arg + 8, "%d:%lf:%lf", &n, &gbs, &us) < 1 || n < 1 || !(gbs > 0) || us < 0) {
            fprintf(stderr, "chorus_sim: bad '%s' (uniform:N[:GB/s[:us]])\n", arg);
            return NULL;
        }
        if (topo_uniform(n, gbs * 1e9, us * 1e-6, 10 * gbs * 1e9, &t) != CHORUS_SUCCESS) {
            fprintf(stderr, "chorus_sim: cannot build '%s'\n", arg);
            return NULL;
        }
        return t;
    }
    if (topo_load(arg, &t, err, sizeof err) != CHORUS_SUCCESS) {
        fprintf(stderr, "chorus_sim: %s\n", err[0] ? err : "cannot load the topology");
        return NULL;
    }
    return t;
}

/* ---- the tuner, as the runtime builds it -------------------------------------- */

static int set(const struct setting *s) { return s->value && s->value[0]; }

/* A flag that makes the setting irrelevant: it is not used, and the header
 * says so when the variable was set. */
static void ignore(struct setting *s, const char *flag)
{
    if (set(s))
        s->ignored = s->value;
    s->value = NULL;
    s->from = flag;
}

/* The table the runtime builds for t with CHORUS_TOPO_FILE describing its
 * ranks: CHORUS_ALGO's overrides, the tuning file's rules (its figures
 * price layouts, not topology files), and what composed plans cannot do
 * with t's rank map. 0, or the exit status after saying what is wrong. */
static int tuner_of(const struct cli *c, const struct topo *t, struct tuner **out)
{
    /* bad settings are reported here; the library's own warning would say
     * it twice (an explicit CHORUS_LOG_LEVEL stays) */
    setenv("CHORUS_LOG_LEVEL", "error", 0);
    struct algo_config cfg;
    if (algo_config_parse(&cfg, set(&c->algo_env) ? c->algo_env.value : "") != CHORUS_SUCCESS) {
        fprintf(stderr, "chorus_sim: CHORUS_ALGO: %s\n", chorus_get_last_error());
        return 2;
    }
    tuner_topo_constraints(t, &cfg);
    struct tuning *tn = calloc(1, sizeof *tn);
    *out = malloc(sizeof **out);
    char err[512];
    int rc = 0;
    if (!tn || !*out) {
        fprintf(stderr, "chorus_sim: out of memory\n");
        rc = 1;
    } else if (set(&c->tuning) &&
               tuning_read(c->tuning.value, tn, err, sizeof err) != CHORUS_SUCCESS) {
        fprintf(stderr, "chorus_sim: %s: %s\n", c->tuning.from, err);
        rc = 1;
    } else {
        tuner_build(*out, t, NULL, &cfg, tn->rules, tn->nrules);
    }
    free(tn);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- choosing --------------------------------------------------------------- */

/* The algorithms that can run kind here: every flat plan for it, and hier
 * when the simulator is built with it and all ranks take part. */
static int candidates(const struct topo *t, int nranks, coll_kind_t kind, algo_t *out)
{
    int k = 0;
    for (int a = ALGO_AUTO + 1; a < ALGO_COUNT; a++) {
        if (a == ALGO_HIER && (nranks != t->nranks || t->nlevels < 2))
            continue;
        if (sim_algo_available((algo_t)a, kind))
            out[k++] = (algo_t)a;
    }
    return k;
}

/* The algorithm a row runs when --algo is not given: the tuner's choice
 * (the same table the runtime builds for this topology), or with --algo
 * best the fastest simulated candidate. Fills *choice (with *best its
 * result); -1 when nothing runs. */
static int sim_choose(const struct cli *cl, const struct topo *t, const struct sim_coll *call,
                      struct sim_coll *choice, struct sim_result *best, int *runs)
{
    if (cl->tuner) {
        size_t bytes = call->kind == COLL_BARRIER ? 0 : call->count * chorus_type_size(call->type);
        const struct tuner_choice *tc = tuner_lookup(cl->tuner, call->kind, bytes);
        *choice = *call;
        choice->algo = tc->algo;
        for (int i = 0; i < TOPO_MAX_LEVELS; i++)
            choice->level_algo[i] = tc->level_algo[i];
        choice->segment = tc->segment;
        ++*runs;
        return sim_collective(t, choice, &cl->sim, best) == CHORUS_SUCCESS ? 0 : -1;
    }
    algo_t cand[ALGO_COUNT];
    int nc = candidates(t, call->nranks, call->kind, cand), found = 0;
    for (int i = 0; i < nc; i++) {
        struct sim_coll c = *call;
        c.algo = cand[i];
        struct sim_result r = {0};
        ++*runs;
        if (sim_collective(t, &c, &cl->sim, &r) != CHORUS_SUCCESS)
            continue;
        if (!found || r.time < best->time) {
            *choice = c;
            *best = r;
            found = 1;
        }
    }
    return found ? 0 : -1;
}

/* ---- output ----------------------------------------------------------------- */

#define ROW_FMT "%12s  %12s  %8s  %6s  %6s  %10s  %8s  %8s  %s\n"

static void print_setting(const char *what, const struct setting *s)
{
    if (set(s))
        printf("#   %s: '%s' from %s", what, s->value, s->from);
    else
        printf("#   %s: none", what);
    if (s->ignored)
        printf("; %s='%s' ignored: %s wins", s->env, s->ignored, s->from);
    printf("\n");
}

static void print_header(const struct cli *c, const struct topo *t, int n, int argc, char **argv)
{
    printf("# chorus_sim: %s on %s, simulated (docs/simulator.md)\n# Command:", c->coll->name,
           t->name);
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n# Topology: %s (%s), %d of its %d ranks\n", t->name, t->source, n, t->nranks);
    if (t->description[0])
        printf("#   %s\n", t->description);
    for (int i = 0; i < t->nlevels; i++) {
        const struct topo_level *l = &t->levels[i];
        printf("#   level %d %-12s group %4d  %-9s %8.1f GB/s  %6.2f us", i, l->name, l->group,
               topo_shape_name(l->shape), l->bw / 1e9, l->latency * 1e6);
        if (l->shape == TOPO_SHAPE_TORUS)
            printf("  %dx%dx%d%s", l->dims[0], l->dims[1], l->dims[2], l->wrap ? " torus" : " mesh");
        if (l->shape == TOPO_SHAPE_CLOS && l->oversub > 1)
            printf("  oversubscription %g", l->oversub);
        printf("\n");
    }
    double copy = c->sim.copy_bw > 0 ? c->sim.copy_bw : 1.5 * t->reduce_bw;
    printf("# Reduction %.1f GB/s (%s with arrival), copies %.1f GB/s\n", t->reduce_bw / 1e9,
           c->sim.reduce_model == SIM_REDUCE_SERIAL ? "after, not" : "pipelined", copy / 1e9);
    printf("# size: S in bytes (%s); algbw = S / time; busbw = algbw x %s (GB = 1e9 B)\n",
           c->coll->whole_buffer ? "the whole buffer of all ranks" : "count x typesize",
           (const char *[]){"2(n-1)/n", "(n-1)/n", "1", "0 (barrier)"}[c->coll->busbw_kind]);
    printf("# algo: %s\n", c->tuner    ? "the tuner's choice (docs/tuner.md; chorus_tune --topo "
                                           "prints its predictions)"
                           : c->best ? "the fastest simulated candidate (--algo best)"
                           : c->algo_arg && strcasecmp(c->algo_arg, "all")
                               ? "forced with --algo"
                               : "every candidate (--algo all)");
    print_setting("algorithm overrides (CHORUS_ALGO)", &c->algo_env);
    print_setting("tuning file", &c->tuning);
    printf("#" ROW_FMT, "size", "count", "type", "redop", "root", "time", "algbw", "busbw", "algo");
    printf("#" ROW_FMT, "(B)", "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "");
}

static void algo_label(const struct sim_coll *c, int nlevels, char *out, size_t cap)
{
    if (c->algo != ALGO_HIER) {
        snprintf(out, cap, "%s", algo_name(c->algo));
        return;
    }
    int any = 0;
    for (int i = 0; i < nlevels; i++)
        any |= c->level_algo[i] != ALGO_AUTO;
    if (!any) {
        snprintf(out, cap, "hier");
        return;
    }
    size_t k = (size_t)snprintf(out, cap, "hier(");
    for (int i = 0; i < nlevels && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? "," : "", algo_name(c->level_algo[i]));
    if (k < cap)
        snprintf(out + k, cap - k, ")");
}

struct totals {
    double busbw_sum;
    int rows, runs;
};

static void print_row(const struct cli *c, const struct topo *t, int n, size_t size,
                      const struct sim_coll *call, const struct sim_result *r, struct totals *tot)
{
    char s[5][32], g[3][32], lbl[96];
    snprintf(s[0], 32, "%zu", size);
    snprintf(s[1], 32, "%zu", call->count);
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (types[i].type == c->type)
            type_name(i, s[2], 32);
    snprintf(s[3], 32, "%s", c->coll->has_op ? op_names[c->op] : "none");
    snprintf(s[4], 32, "%d", c->coll->has_root ? c->root : -1);
    double us = r->time * 1e6;
    snprintf(g[0], 32, us < 1e5 ? "%.2f" : us < 1e6 ? "%.1f" : "%.0f", us);
    double algbw = r->time > 0 ? (double)size / r->time / 1e9 : 0;
    double busbw = algbw * busbw_factor(c->coll, n);
    snprintf(g[1], 32, "%.2f", algbw);
    snprintf(g[2], 32, "%.2f", busbw);
    algo_label(call, t->nlevels, lbl, sizeof lbl);
    printf(" " ROW_FMT, s[0], s[1], s[2], s[3], s[4], g[0], g[1], g[2], lbl);
    fflush(stdout);
    tot->busbw_sum += busbw;
    tot->rows++;
}

/* ---- the sweep -------------------------------------------------------------- */

static int run_size(const struct cli *c, const struct topo *t, int n, size_t req,
                    struct totals *tot)
{
    size_t esize = chorus_type_size(c->type);
    size_t per = esize * (c->coll->whole_buffer ? (size_t)n : 1);
    size_t count = c->coll->kind == COLL_BARRIER ? 0 : req / per;
    if (count == 0 && c->coll->kind != COLL_BARRIER)
        return 0; /* smaller than one element per rank: skipped, as the perf tools do */
    size_t size = count * per;
    struct sim_coll call = {.kind = c->coll->kind, .count = count, .type = c->type,
                            .root = c->root, .nranks = n};
    struct sim_result r = {0};
    if (!c->algo_arg || c->best) {
        struct sim_coll choice;
        if (sim_choose(c, t, &call, &choice, &r, &tot->runs)) {
            fprintf(stderr, "chorus_sim: no algorithm runs %s of %zu B on %s\n", c->coll->name,
                    size, t->name);
            return 1;
        }
        print_row(c, t, n, size, &choice, &r, tot);
        return 0;
    }
    algo_t cand[ALGO_COUNT];
    int nc;
    if (!strcasecmp(c->algo_arg, "all")) {
        nc = candidates(t, n, c->coll->kind, cand);
    } else {
        cand[0] = algo_from_name(c->algo_arg);
        nc = 1;
    }
    int bad = 0;
    for (int i = 0; i < nc; i++) {
        call.algo = cand[i];
        tot->runs++;
        if (sim_collective(t, &call, &c->sim, &r) != CHORUS_SUCCESS) {
            fprintf(stderr, "chorus_sim: %s of %zu B with %s: %s\n", c->coll->name, size,
                    algo_name(cand[i]), r.error);
            bad = 1;
            continue;
        }
        print_row(c, t, n, size, &call, &r, tot);
    }
    return bad && nc == 1; /* a forced algorithm that cannot run is an error */
}

int main(int argc, char **argv)
{
    struct cli c;
    int rc = parse_cli(argc, argv, &c);
    if (rc >= 0)
        return rc;
    rc = 0;
    c.best = c.algo_arg && !strcasecmp(c.algo_arg, "best");
    if (c.algo_arg) { /* the flag wins; the rows do not ask the tuner */
        ignore(&c.algo_env, "--algo");
        ignore(&c.tuning, "--algo");
    }
    if (c.algo_arg && strcasecmp(c.algo_arg, "all") && !c.best) {
        algo_t a = algo_from_name(c.algo_arg);
        if (a == ALGO_COUNT || a == ALGO_AUTO) {
            fprintf(stderr, "chorus_sim: unknown algorithm '%s'\n", c.algo_arg);
            return 2;
        }
        if (!sim_algo_available(a, c.coll->kind)) {
            fprintf(stderr, "chorus_sim: %s does not implement %s%s\n", c.algo_arg, c.coll->name,
                    a == ALGO_HIER ? " (or this build has no hier plans)" : "");
            return 2;
        }
    }
    struct topo *t = load_topo(c.topo);
    if (!t)
        return 1;
    int n = c.nranks ? c.nranks : t->nranks;
    if (n > t->nranks) {
        fprintf(stderr, "chorus_sim: --nranks %d but %s has %d ranks\n", n, t->name, t->nranks);
        topo_free(t);
        return 2;
    }
    if (c.coll->has_root && (c.root < 0 || c.root >= n)) {
        fprintf(stderr, "chorus_sim: root %d out of range [0, %d)\n", c.root, n);
        topo_free(t);
        return 2;
    }
    struct tuner *tu = NULL;
    if (!c.algo_arg) {
        if (n != t->nranks) {
            /* the tuner prices whole topologies */
            fprintf(stderr, "chorus_sim: --nranks %d of %d: rows show the fastest simulated "
                    "candidate, not the tuner's choice%s\n", n, t->nranks,
                    set(&c.algo_env) || set(&c.tuning) ? " (CHORUS_ALGO and the tuning file "
                                                         "do not apply)" : "");
            c.best = 1;
        } else {
            rc = tuner_of(&c, t, &tu);
            if (rc) {
                topo_free(t);
                return rc;
            }
            c.tuner = tu;
        }
        rc = 0;
    }
    print_header(&c, t, n, argc, argv);
    struct totals tot = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t s = c.min_bytes; s <= c.max_bytes;) {
        rc |= run_size(&c, t, n, s, &tot);
        if (c.coll->kind == COLL_BARRIER)
            break; /* one row: a barrier has no size */
        size_t next = c.factor > 1 ? (size_t)((double)s * c.factor) : s + c.step_bytes;
        if (next <= s)
            break;
        s = next;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("# Avg bus bandwidth    : %g\n", tot.rows ? tot.busbw_sum / tot.rows : 0.0);
    printf("# %d simulations in %.2f s\n", tot.runs,
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
    free(tu);
    topo_free(t);
    return rc;
}
