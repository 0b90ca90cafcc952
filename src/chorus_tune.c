/* chorus_tune - shows and feeds the tuner (docs/tuner.md).
 *
 *   chorus_tune --topo NAME|FILE [--coll C|all] [-b MIN] [-e MAX] [--summary]
 *   chorus_tune --layout HOSTSxPPN [--transport tcp|rdma] [...]
 *   chorus_tune --calibrate [-o FILE]
 *
 * The first two print, for every size, the tuner's choice, its predicted
 * time and every candidate's (or, with --summary, the one-line table the
 * runtime logs at CHORUS_LOG_LEVEL=info). --layout prices a communicator of
 * HOSTS hosts with PPN ranks each the way the runtime does: network figures
 * for the plans, shared memory inside hosts for the node-aware composition.
 * --tuning FILE (or CHORUS_TUNING_FILE) applies a tuning file, --algo SPEC
 * (or CHORUS_ALGO) overrides, as the runtime reads them; the header says
 * which are in effect and how sizes are counted.
 *
 * --calibrate measures this machine: latency and bandwidth of shared memory,
 * of TCP between two ranks posing as two hosts, and of RDMA when a device
 * works, each between two worker processes this command starts (no MPI
 * needed), plus the reduction speed; it writes a tuning file. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chorus.h"
#include "reduce.h"
#include "tunables.h"
#include "tuner.h"
#include "tuner_file.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: chorus_tune --topo NAME|FILE [--coll NAME|all] [-b MIN] [-e MAX] [--summary]\n"
            "       chorus_tune --layout HOSTSxPPN [--transport tcp|rdma] [same options]\n"
            "       chorus_tune --calibrate [-o FILE]\n"
            "options: --tuning FILE  apply a tuning file (default: $CHORUS_TUNING_FILE)\n"
            "         --algo SPEC    overrides as CHORUS_ALGO takes them (allreduce:ring;^bruck)\n"
            "                        (default: $CHORUS_ALGO, as the runtime reads it)\n"
            "collectives: all (default), allreduce, allgather, alltoall, alltoallv,\n"
            "             reduce_scatter, broadcast, reduce, barrier\n"
            "sizes (-b, -e, the size column): bytes as a call counts them; chorus_sim and the\n"
            "perf tools count the whole buffer of allgather, reduce_scatter, alltoall(v)\n");
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- calibration: the worker side ------------------------------------------ */

#define CAL_PINGS 2000
#define CAL_BIG (16u << 20)
#define CAL_BIG_REPS 8

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Rank 0 prints "alpha_seconds bandwidth_bytes_per_s" on success. */
static int calibrate_worker(int rank, const char *idhex)
{
    chorus_unique_id_t id;
    if (strlen(idhex) != 2 * sizeof id.internal)
        return 2;
    for (size_t i = 0; i < sizeof id.internal; i++) {
        int hi = hexval(idhex[2 * i]), lo = hexval(idhex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 2;
        id.internal[i] = (char)(hi << 4 | lo);
    }
    chorus_comm_t comm;
    if (chorus_comm_init_rank(&comm, 2, id, rank) != CHORUS_SUCCESS) {
        fprintf(stderr, "chorus_tune worker %d: init: %s\n", rank, chorus_get_last_error());
        return 1;
    }
    char *buf = malloc(CAL_BIG);
    int rc = buf ? 0 : 1;
    int peer = 1 - rank;
    if (buf)
        memset(buf, rank, CAL_BIG);
    /* latency: half a round trip of 8 bytes, after a warm-up */
    double t0 = 0;
    for (int i = -100; rc == 0 && i < CAL_PINGS; i++) {
        if (i == 0)
            t0 = now();
        chorus_result_t r = rank == 0 ? chorus_send(buf, 8, CHORUS_UINT8, peer, comm)
                                      : chorus_recv(buf, 8, CHORUS_UINT8, peer, comm);
        if (r == CHORUS_SUCCESS)
            r = rank == 0 ? chorus_recv(buf, 8, CHORUS_UINT8, peer, comm)
                          : chorus_send(buf, 8, CHORUS_UINT8, peer, comm);
        rc = r != CHORUS_SUCCESS;
    }
    double alpha = (now() - t0) / CAL_PINGS / 2;
    /* bandwidth: one-way large messages, then an 8-byte answer */
    for (int i = -1; rc == 0 && i < CAL_BIG_REPS; i++) {
        if (i == 0)
            t0 = now();
        chorus_result_t r = rank == 0 ? chorus_send(buf, CAL_BIG, CHORUS_UINT8, peer, comm)
                                      : chorus_recv(buf, CAL_BIG, CHORUS_UINT8, peer, comm);
        rc = r != CHORUS_SUCCESS;
    }
    if (rc == 0)
        rc = (rank == 0 ? chorus_recv(buf, 8, CHORUS_UINT8, peer, comm)
                        : chorus_send(buf, 8, CHORUS_UINT8, peer, comm)) != CHORUS_SUCCESS;
    double bw = (double)CAL_BIG * CAL_BIG_REPS / (now() - t0);
    if (rc)
        fprintf(stderr, "chorus_tune worker %d: %s\n", rank, chorus_get_last_error());
    else if (rank == 0)
        printf("%.9g %.9g\n", alpha, bw);
    chorus_comm_finalize(comm);
    chorus_comm_destroy(comm);
    free(buf);
    return rc;
}

/* ---- calibration: the parent side ------------------------------------------- */

/* Runs two workers with CHORUS_TRANSPORT=transport (and, for the network
 * transports, distinct host ids so they do not share memory). 0 and the
 * figures, or -1 with why. */
static int measure(const char *self, const char *transport, struct tuner_link *out, char *why,
                   size_t whylen)
{
    chorus_unique_id_t id;
    if (chorus_get_unique_id(&id) != CHORUS_SUCCESS) {
        snprintf(why, whylen, "unique id: %s", chorus_get_last_error());
        return -1;
    }
    char hex[2 * sizeof id.internal + 1];
    for (size_t i = 0; i < sizeof id.internal; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)id.internal[i]);
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pids[2] = {-1, -1};
    for (int r = 0; r < 2; r++) {
        pids[r] = fork();
        if (pids[r] == 0) {
            char rank[8], host[32];
            snprintf(rank, sizeof rank, "%d", r);
            snprintf(host, sizeof host, "chorus-calibrate-%d", r);
            setenv("CHORUS_TRANSPORT", transport, 1);
            setenv("CHORUS_TUNING_FILE", "", 1); /* the defaults: nothing to agree on */
            setenv("CHORUS_INIT_TIMEOUT_MS", "20000", 1);
            setenv("CHORUS_TIMEOUT_MS", "20000", 1);
            setenv("CHORUS_LOG_LEVEL", "error", 0); /* the worker reports failures itself */
            if (strcmp(transport, "shm"))
                setenv("CHORUS_HOSTID", host, 1);
            close(fds[0]);
            if (r == 0)
                dup2(fds[1], STDOUT_FILENO);
            close(fds[1]);
            execl(self, self, "--calibrate-worker", rank, hex, (char *)NULL);
            _exit(127);
        }
    }
    close(fds[1]);
    char line[128] = "";
    FILE *f = fdopen(fds[0], "r");
    if (!f || !fgets(line, sizeof line, f))
        line[0] = 0;
    if (f)
        fclose(f);
    else
        close(fds[0]);
    int bad = 0;
    for (int r = 0; r < 2; r++) {
        int st = 0;
        if (pids[r] < 0 || waitpid(pids[r], &st, 0) < 0 || !WIFEXITED(st) ||
            WEXITSTATUS(st) != 0)
            bad = 1;
    }
    if (bad || sscanf(line, "%lf %lf", &out->alpha, &out->bw) != 2 || !(out->alpha > 0) ||
        !(out->bw > 0)) {
        snprintf(why, whylen, "the workers failed (see their messages above)");
        return -1;
    }
    return 0;
}

static double measure_reduce(void)
{
    size_t n = (32u << 20) / sizeof(float);
    float *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return 0;
    }
    const void *srcs[2] = {a, b};
    chorus_reduce_many(CHORUS_FLOAT32, CHORUS_SUM, a, srcs, 2, n, 1); /* warm up, fault in */
    double t0 = now();
    int reps = 8;
    for (int i = 0; i < reps; i++)
        chorus_reduce_many(CHORUS_FLOAT32, CHORUS_SUM, a, srcs, 2, n, 1);
    double bw = (double)n * sizeof(float) * reps / (now() - t0);
    free(a);
    free(b);
    return bw;
}

static int calibrate(const char *self, const char *out)
{
    struct tuning t = {.figures = tuner_default_figures};
    char why[256];
    struct {
        const char *name;
        struct tuner_link *link;
    } kinds[] = {{"shm", &t.figures.shm}, {"tcp", &t.figures.tcp}, {"rdma", &t.figures.rdma}};
    char note[512];
    size_t nl = (size_t)snprintf(note, sizeof note, "measured by chorus_tune --calibrate;");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        struct tuner_link m;
        fprintf(stderr, "chorus_tune: measuring %s between two processes...\n", kinds[i].name);
        if (measure(self, kinds[i].name, &m, why, sizeof why) != 0) {
            if (strcmp(kinds[i].name, "rdma") == 0) {
                fprintf(stderr, "chorus_tune: rdma: not measured (%s); keeping the default\n",
                        why);
                nl += (size_t)snprintf(note + nl, sizeof note - nl, " rdma: default;");
                continue;
            }
            fprintf(stderr, "chorus_tune: %s: %s\n", kinds[i].name, why);
            return 1;
        }
        *kinds[i].link = m;
        fprintf(stderr, "chorus_tune: %-4s latency %.2f us, bandwidth %.3f GB/s\n",
                kinds[i].name, m.alpha * 1e6, m.bw / 1e9);
    }
    t.figures.reduce_bw = measure_reduce();
    if (!(t.figures.reduce_bw > 0)) {
        fprintf(stderr, "chorus_tune: reduction: out of memory\n");
        return 1;
    }
    fprintf(stderr, "chorus_tune: reduce float32 sum %.3f GB/s\n", t.figures.reduce_bw / 1e9);
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    snprintf(note + nl, sizeof note - nl, " host %s", host);
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        fprintf(stderr, "chorus_tune: %s: %s\n", out, strerror(errno));
        return 1;
    }
    tuning_write(f, &t, note);
    if (out) {
        if (fclose(f) != 0) {
            fprintf(stderr, "chorus_tune: %s: %s\n", out, strerror(errno));
            return 1;
        }
        fprintf(stderr, "chorus_tune: wrote %s; use it with CHORUS_TUNING_FILE=%s\n", out, out);
    }
    return 0;
}

/* ---- showing the tuner ------------------------------------------------------ */

static int parse_coll(const char *s, int *kind)
{
    if (!strcmp(s, "all")) {
        *kind = -1;
        return 0;
    }
    for (int k = 0; k < ALGO_NKINDS; k++)
        if (!strcmp(s, coll_name((coll_kind_t)k))) {
            *kind = k;
            return 0;
        }
    fprintf(stderr, "chorus_tune: unknown collective '%s' (valid: all", s);
    for (int k = 0; k < ALGO_NKINDS; k++)
        fprintf(stderr, ", %s", coll_name((coll_kind_t)k));
    fprintf(stderr, ")\n");
    return -1;
}

/* A setting the runtime reads from the environment, and where this run's
 * value came from: a flag wins over the variable, which the header then
 * names as ignored. */
struct setting {
    const char *env;     /* the variable */
    const char *value;   /* in force ("" or NULL: none) */
    const char *from;    /* the variable or the flag */
    const char *ignored; /* the variable's value when a flag won over it */
};

static struct setting from_env(const char *env)
{
    return (struct setting){env, getenv(env), env, NULL};
}

static void set_by_flag(struct setting *s, const char *flag, const char *value)
{
    const char *e = getenv(s->env);
    *s = (struct setting){s->env, value, flag, e && *e ? e : NULL};
}

static void print_setting(const char *what, const struct setting *s, const char *none)
{
    if (s->value && s->value[0])
        printf("# %s: '%s' from %s", what, s->value, s->from);
    else
        printf("# %s: none (%s)", what, none);
    if (s->ignored)
        printf("; %s='%s' ignored: the flag wins", s->env, s->ignored);
    printf("\n");
}

/* The lines above every table: what is priced, what overrides the model
 * and how sizes are counted, so a reader can line the table up with the
 * runtime's (which reads the same environment) and chorus_sim's rows. */
static void print_header(const struct topo *t, const char *layout, const char *transport,
                         int shm, const struct setting *algo, const struct setting *tuning)
{
    if (layout)
        printf("# chorus_tune: the table the runtime builds for %s hosts x ranks (%d ranks): "
               "plans over %s%s\n", layout, t->nranks, transport,
               shm ? ", node-aware hier with shared memory inside a host" : "");
    else
        printf("# chorus_tune: the table for %s (%d ranks; %s), as the runtime builds it with "
               "CHORUS_TOPO_FILE for exactly these ranks and chorus_sim without --algo\n",
               t->name, t->nranks, t->source);
    print_setting("algorithm overrides (CHORUS_ALGO)", algo, "CHORUS_ALGO unset, no --algo");
    print_setting("tuning file", tuning, "default figures, no rules");
    if (!layout && tuning->value && tuning->value[0])
        printf("#   its rules apply; its figures price layouts, not topology files\n");
    printf("# size: bytes as a call counts them: the vector (allreduce, broadcast, reduce), one\n"
           "#   rank's block (allgather, reduce_scatter), the block for one peer (alltoall;\n"
           "#   alltoallv: the busiest rank's bytes / ranks). chorus_sim and the perf tools\n"
           "#   (nccl-tests) count the whole buffer for allgather, reduce_scatter and\n"
           "#   alltoall(v): their size is this one x %d\n", t->nranks);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--calibrate-worker"))
        return calibrate_worker(atoi(argv[2]), argv[3]);
    static const struct option opts[] = {
        {"topo", required_argument, NULL, 't'},  {"layout", required_argument, NULL, 'l'},
        {"transport", required_argument, NULL, 'T'}, {"coll", required_argument, NULL, 'c'},
        {"tuning", required_argument, NULL, 'u'}, {"algo", required_argument, NULL, 'a'},
        {"summary", no_argument, NULL, 's'},     {"calibrate", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    const char *topo_name = NULL, *layout = NULL, *transport = "tcp", *out = NULL;
    int kind = -1, summary = 0, cal = 0, c;
    size_t lo = 1, hi = (size_t)1 << 30;
    /* as the runtime reads them; the flags below win */
    struct setting tuning = from_env("CHORUS_TUNING_FILE"), algo = from_env("CHORUS_ALGO");
    while ((c = getopt_long(argc, argv, "b:e:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': topo_name = optarg; break;
        case 'l': layout = optarg; break;
        case 'T': transport = optarg; break;
        case 'u': set_by_flag(&tuning, "--tuning", optarg); break;
        case 'a': set_by_flag(&algo, "--algo", optarg); break;
        case 's': summary = 1; break;
        case 'C': cal = 1; break;
        case 'o': out = optarg; break;
        case 'c':
            if (parse_coll(optarg, &kind) != 0)
                return 1;
            break;
        case 'b':
        case 'e':
            if (chorus_parse_size(optarg, c == 'b' ? &lo : &hi) != 0) {
                fprintf(stderr, "chorus_tune: -%c: bad size '%s'\n", c, optarg);
                return 1;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "chorus_tune: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    if (cal)
        return calibrate("/proc/self/exe", out);
    if (lo == 0)
        lo = 1; /* a call of 0 bytes looks up the 1-byte entry */
    if (hi < lo) {
        fprintf(stderr, "chorus_tune: -e %zu is below -b %zu\n", hi, lo);
        return 1;
    }
    if (!topo_name == !layout) {
        fprintf(stderr, "chorus_tune: give exactly one of --topo and --layout\n");
        usage(stderr);
        return 1;
    }
    /* the tool reports bad settings itself; the library's own warning
     * would say it twice (an explicit CHORUS_LOG_LEVEL stays) */
    setenv("CHORUS_LOG_LEVEL", "error", 0);
    char err[512];
    struct tuning tn = {.figures = tuner_default_figures};
    if (tuning.value && *tuning.value &&
        tuning_read(tuning.value, &tn, err, sizeof err) != 0) {
        fprintf(stderr, "chorus_tune: %s: %s\n", tuning.from, err);
        return 1;
    }
    struct algo_config cfg;
    if (algo_config_parse(&cfg, algo.value ? algo.value : "") != CHORUS_SUCCESS) {
        fprintf(stderr, "chorus_tune: %s: %s\n", algo.from, chorus_get_last_error());
        return 1;
    }
    struct topo *t = NULL;
    struct tuner_shm shm = {0};
    if (topo_name) {
        if (topo_load(topo_name, &t, err, sizeof err) != CHORUS_SUCCESS) {
            fprintf(stderr, "chorus_tune: %s\n", err);
            return 1;
        }
    } else {
        int hosts = 0, ppn = 0;
        char tail;
        if (sscanf(layout, "%dx%d%c", &hosts, &ppn, &tail) != 2 || hosts < 1 || ppn < 1 ||
            hosts > 65536 || ppn > 4096) {
            fprintf(stderr, "chorus_tune: --layout '%s': expected HOSTSxPPN, e.g. 4x8\n", layout);
            return 1;
        }
        if (strcmp(transport, "tcp") && strcmp(transport, "rdma")) {
            fprintf(stderr, "chorus_tune: --transport '%s': tcp or rdma\n", transport);
            return 1;
        }
        const struct tuner_link *net = !strcmp(transport, "rdma") ? &tn.figures.rdma
                                                                  : &tn.figures.tcp;
        if (tuner_layout_topo(hosts, ppn, hosts * ppn, net, tn.figures.reduce_bw, &t) !=
            CHORUS_SUCCESS) {
            fprintf(stderr, "chorus_tune: out of memory\n");
            return 1;
        }
        if (hosts > 1 && ppn > 1)
            shm = (struct tuner_shm){1, tn.figures.shm.alpha, 1 / tn.figures.shm.bw};
    }
    if (topo_name)
        tuner_topo_constraints(t, &cfg);
    /* as the runtime: its composition needs shared memory */
    if (layout && !shm.present)
        for (int k = 0; k < ALGO_NKINDS; k++) {
            cfg.excluded[k] |= 1u << ALGO_HIER;
            if (cfg.forced[k] == ALGO_HIER)
                cfg.forced[k] = ALGO_AUTO;
        }
    struct tuner *tu = malloc(sizeof *tu);
    if (!tu) {
        topo_free(t);
        return 1;
    }
    tuner_build(tu, t, &shm, &cfg, tn.rules, tn.nrules);
    print_header(t, layout, transport, shm.present, &algo, &tuning);
    for (int k = 0; k < ALGO_NKINDS; k++) {
        if (kind >= 0 && k != kind)
            continue;
        if (summary) {
            char line[1024];
            tuner_summary(tu, (coll_kind_t)k, line, sizeof line);
            printf("%s\n", line);
        } else {
            tuner_print(t, &shm, tu, (coll_kind_t)k, k == COLL_BARRIER ? 1 : lo,
                        k == COLL_BARRIER ? 1 : hi, stdout);
            printf("\n");
        }
    }
    free(tu);
    topo_free(t);
    return 0;
}
