/*
 * perf_options.c - the perf tools' command line: -h text, parsing and
 * checking of every option, and the tables of types and ops that -d and -o
 * name (and that the checks and the output read).
 *
 * Apart from the run because nothing here touches MPI or Chorus beyond
 * their type names: every rank parses the same argv to the same result.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, strtok_r */
#endif

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf_internal.h"

/* ---- types and ops --------------------------------------------------------- */

const perf_type_info_t perf_type_info[CHORUS_NUM_TYPES] = {
    [CHORUS_INT8] = {"int8", "i8 char", 0, 1, 127.0, 0, -0x1p7, 0x1p7 - 1},
    [CHORUS_UINT8] = {"uint8", "u8", 0, 0, 255.0, 0, 0, 0x1p8 - 1},
    [CHORUS_INT32] = {"int32", "i32 int", 0, 1, 2147483647.0, 0, -0x1p31, 0x1p31 - 1},
    [CHORUS_UINT32] = {"uint32", "u32", 0, 0, 4294967295.0, 0, 0, 0x1p32 - 1},
    [CHORUS_INT64] = {"int64", "i64", 0, 1, 0x1p52, 0, -0x1p63, 0x1p63},
    [CHORUS_UINT64] = {"uint64", "u64", 0, 0, 0x1p53, 0, 0, 0x1p64},
    [CHORUS_FLOAT16] = {"half", "float16 fp16 f16", 1, 1, 2048.0, 0x1p-10, 0, 0},
    [CHORUS_BFLOAT16] = {"bfloat16", "bf16", 1, 1, 256.0, 0x1p-7, 0, 0},
    [CHORUS_FLOAT32] = {"float", "float32 fp32 f32", 1, 1, 0x1p24, 0x1p-23, 0, 0},
    [CHORUS_FLOAT64] = {"double", "float64 fp64 f64", 1, 1, 0x1p52, 0x1p-52, 0, 0},
};

const char *const perf_op_names[CHORUS_NUM_OPS] = {
    [CHORUS_SUM] = "sum", [CHORUS_PROD] = "prod", [CHORUS_MIN] = "min",
    [CHORUS_MAX] = "max", [CHORUS_AVG] = "avg",
};

/* ---- options --------------------------------------------------------------- */

const char *const perf_agg_names[4] = {"rank0", "avg", "min", "max"};

static void usage(FILE *f, const char *prog, const perf_coll_t *coll)
{
    const char *base = strrchr(prog, '/') ? strrchr(prog, '/') + 1 : prog;
    fprintf(f,
        "Usage: mpirun -np N %s [options]\n"
        "Times %s, and %s on the same buffers, over a range\n"
        "of sizes, and checks the results. Sizes take K, M, G suffixes (powers of 1024).\n"
        "The size column S is %s.\n"
        "  -b, --minbytes <size>      smallest size (default 32M)\n"
        "  -e, --maxbytes <size>      largest size (default 32M)\n"
        "  -f, --stepfactor <x>       multiply the size by x (> 1) at each step (default 2)\n"
        "  -i, --stepbytes <size>     add this many bytes at each step instead\n"
        "  -n, --iters <n>            timed iterations per size (default 20)\n"
        "  -w, --warmup_iters <n>     untimed iterations per size and variant (default 5;\n"
        "                             repeated until 2 ms have passed; 0: no warm-up)\n"
        "  -c, --check <0|1>          check results and guard bytes (default 1)\n"
        "  -o, --op <op[,op]|all>     sum prod min max avg (default sum)%s\n"
        "  -d, --datatype <t[,t]|all> int8 uint8 int32 uint32 int64 uint64 half bfloat16\n"
        "                             float double; also float32 fp16 bf16 ... (default float)\n"
        "  -r, --root <rank>          root rank (default 0)%s\n"
        "  -a, --average <0|1|2|3>    combine the ranks' times: 0 rank 0's, 1 average,\n"
        "                             2 minimum, 3 maximum (default 1, as nccl-tests)\n"
        "  -m, --mpi <0|1>            time the MPI collective too, interleaved with Chorus\n"
        "                             (default 1); n/a for avg, and for half and bfloat16\n"
        "                             reductions, which MPI does not have\n"
        "  -p, --progress <0|1>       progress on stderr (default: on a terminal, or once\n"
        "                             a sweep has run %.0f s)\n"
        "  -J, --json <file>          write every row as JSON to file (rank 0)\n"
        "  -T, --timeout <s>          abort if one size takes longer than s seconds (0: never)\n"
        "  -B, --membw <size>         before and after the sweep, time every rank copying\n"
        "                             <size> bytes at once (memcpy), and print the busbw of\n"
        "                             sizes from <size>/4 up as a share of the ceiling that\n"
        "                             copy rate allows (docs/perf.md); e.g. -B 256M (0: off)\n"
        "  -R, --registered <0|1>     1: allocate the send and receive buffers with\n"
        "                             chorus_mem_alloc, so collectives on one node can read\n"
        "                             peers' buffers directly (zero copy; MPI runs on the\n"
        "                             same buffers); 0: posix_memalign (default)\n"
        "  -h, --help                 this text\n"
        "Exit status: 0 ok; 1 wrong or out-of-bounds values; 2 bad options; 3 a call\n"
        "failed; 4 timeout.\n",
        base, coll->chorus_call, coll->mpi_call,
        coll->whole_buffer ? "the whole buffer of all ranks (count per rank = S / typesize / N)"
                           : "count x typesize",
        coll->has_op ? "" : " (no op: ignored)", coll->has_root ? "" : " (no root: ignored)",
        PERF_PROGRESS_AFTER_S);
}

/* "256M", "1G", "8", "64KiB" -> bytes. Returns 0 and sets *out, or -1. */
static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    default: break;
    }
    if (shift && *end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0' || (shift && v > (SIZE_MAX >> shift)))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int lookup_type(const char *name, chorus_datatype_t *t)
{
    for (int k = 0; k < CHORUS_NUM_TYPES; k++) {
        const char *a = perf_type_info[k].aliases;
        size_t n = strlen(name);
        if (strcmp(name, perf_type_info[k].name) == 0) {
            *t = (chorus_datatype_t)k;
            return 0;
        }
        while (*a) { /* the space-separated aliases */
            size_t w = strcspn(a, " ");
            if (w == n && strncmp(a, name, n) == 0) {
                *t = (chorus_datatype_t)k;
                return 0;
            }
            a += w + (a[w] == ' ');
        }
    }
    return -1;
}

/* "float,half" or "all" into o->types. */
static int parse_types(const char *arg, perf_opts_t *o)
{
    char buf[256], *save = NULL;
    o->ntypes = 0;
    if (strcmp(arg, "all") == 0) {
        for (int k = 0; k < CHORUS_NUM_TYPES; k++)
            o->types[o->ntypes++] = (chorus_datatype_t)k;
        return 0;
    }
    if (strlen(arg) >= sizeof buf)
        return -1;
    strcpy(buf, arg);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        chorus_datatype_t t;
        if (lookup_type(tok, &t) || o->ntypes == CHORUS_NUM_TYPES)
            return -1;
        o->types[o->ntypes++] = t;
    }
    return o->ntypes ? 0 : -1;
}

static int parse_ops(const char *arg, perf_opts_t *o)
{
    char buf[256], *save = NULL;
    o->nops = 0;
    if (strcmp(arg, "all") == 0) {
        for (int k = 0; k < CHORUS_NUM_OPS; k++)
            o->ops[o->nops++] = (chorus_op_t)k;
        return 0;
    }
    if (strlen(arg) >= sizeof buf)
        return -1;
    strcpy(buf, arg);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < CHORUS_NUM_OPS && strcmp(tok, perf_op_names[k]) != 0)
            k++;
        if (k == CHORUS_NUM_OPS || o->nops == CHORUS_NUM_OPS)
            return -1;
        o->ops[o->nops++] = (chorus_op_t)k;
    }
    return o->nops ? 0 : -1;
}

/* Returns -1 to go on, else the exit status (0 after -h, 2 after an error).
 * Every rank parses; only rank 0 prints. */
int perf_parse_options(int argc, char **argv, const perf_coll_t *coll, int rank, perf_opts_t *o)
{
    static const struct option longopts[] = {
        {"minbytes", required_argument, NULL, 'b'}, {"maxbytes", required_argument, NULL, 'e'},
        {"stepbytes", required_argument, NULL, 'i'}, {"stepfactor", required_argument, NULL, 'f'},
        {"iters", required_argument, NULL, 'n'}, {"warmup_iters", required_argument, NULL, 'w'},
        {"check", required_argument, NULL, 'c'}, {"op", required_argument, NULL, 'o'},
        {"datatype", required_argument, NULL, 'd'}, {"root", required_argument, NULL, 'r'},
        {"average", required_argument, NULL, 'a'}, {"mpi", required_argument, NULL, 'm'},
        {"progress", required_argument, NULL, 'p'}, {"json", required_argument, NULL, 'J'},
        {"timeout", required_argument, NULL, 'T'}, {"membw", required_argument, NULL, 'B'},
        {"registered", required_argument, NULL, 'R'}, {"nthreads", required_argument, NULL, 't'},
        {"ngpus", required_argument, NULL, 'g'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *prog = argv[0];
    char msg[256] = "";
    int ch, one;

    *o = (perf_opts_t){.min_bytes = 32u << 20, .max_bytes = 32u << 20, .step_bytes = 1u << 20,
                       .step_factor = 2.0, .iters = 20, .warmup = 5, .check = 1,
                       .agg = AGG_AVG, .mpi = 1, .progress = -1, .root = 0,
                       .type_arg = "float", .op_arg = "sum"};
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":b:e:i:f:n:w:c:o:d:r:a:m:p:J:T:B:R:t:g:h", longopts,
                             NULL)) != -1) {
        const char *a = optarg;
        switch (ch) {
        case 'b':
            if (parse_size(a, &o->min_bytes))
                snprintf(msg, sizeof msg, "-b %s: not a size (e.g. 8, 64K, 256M, 1G)", a);
            break;
        case 'e':
            if (parse_size(a, &o->max_bytes))
                snprintf(msg, sizeof msg, "-e %s: not a size (e.g. 8, 64K, 256M, 1G)", a);
            break;
        case 'i':
            if (parse_size(a, &o->step_bytes) || o->step_bytes == 0)
                snprintf(msg, sizeof msg, "-i %s: not a positive size", a);
            o->step_factor = 0;
            break;
        case 'f': {
            char *end;
            errno = 0;
            o->step_factor = strtod(a, &end);
            if (errno || end == a || *end || !(o->step_factor > 1.0) || o->step_factor > 1e6)
                snprintf(msg, sizeof msg, "-f %s: the factor must be a number > 1", a);
            break;
        }
        case 'n':
            if (parse_int(a, 1, INT_MAX, &o->iters))
                snprintf(msg, sizeof msg, "-n %s: iterations must be an integer >= 1", a);
            break;
        case 'w':
            if (parse_int(a, 0, INT_MAX, &o->warmup))
                snprintf(msg, sizeof msg, "-w %s: warm-up iterations must be an integer >= 0", a);
            break;
        case 'c':
            if (parse_int(a, 0, 1, &o->check))
                snprintf(msg, sizeof msg, "-c %s: must be 0 or 1", a);
            break;
        case 'R':
            if (parse_int(a, 0, 1, &o->registered))
                snprintf(msg, sizeof msg, "-R %s: must be 0 or 1", a);
            break;
        case 'm':
            if (parse_int(a, 0, 1, &o->mpi))
                snprintf(msg, sizeof msg, "-m %s: must be 0 or 1", a);
            break;
        case 'p':
            if (parse_int(a, 0, 1, &o->progress))
                snprintf(msg, sizeof msg, "-p %s: must be 0 or 1", a);
            break;
        case 'o': o->op_arg = a; break;
        case 'd': o->type_arg = a; break;
        case 'r':
            if (parse_int(a, 0, INT_MAX, &o->root))
                snprintf(msg, sizeof msg, "-r %s: the root must be a rank number", a);
            break;
        case 'a':
            o->agg = -1;
            for (int k = 0; k < 4; k++)
                if (strcmp(a, perf_agg_names[k]) == 0)
                    o->agg = k;
            if (o->agg < 0 && parse_int(a, 0, 3, &o->agg))
                snprintf(msg, sizeof msg, "-a %s: must be 0 (rank0), 1 (avg), 2 (min) or 3 (max)", a);
            break;
        case 'J': o->json_path = a; break;
        case 'T':
            if (parse_int(a, 0, INT_MAX, &o->timeout_s))
                snprintf(msg, sizeof msg, "-T %s: seconds must be an integer >= 0", a);
            break;
        case 'B':
            if (parse_size(a, &o->probe_bytes) || (o->probe_bytes && o->probe_bytes < (1u << 20)))
                snprintf(msg, sizeof msg, "-B %s: the probe needs a size of at least 1M (or 0)", a);
            break;
        case 't':
        case 'g':
            if (parse_int(a, 1, 1, &one))
                snprintf(msg, sizeof msg,
                         "-%c %s: Chorus runs one rank per process; start more with mpirun -np",
                         ch, a);
            break;
        case 'h':
            if (rank == 0)
                usage(stdout, prog, coll);
            return 0;
        case ':':
            snprintf(msg, sizeof msg, "option %s needs a value", argv[optind - 1]);
            break;
        default:
            if (optopt)
                snprintf(msg, sizeof msg, "unknown option -%c", optopt);
            else
                snprintf(msg, sizeof msg, "unknown option %s", argv[optind - 1]);
            break;
        }
        if (msg[0])
            break;
    }
    if (!msg[0] && optind < argc)
        snprintf(msg, sizeof msg, "unexpected argument '%s'", argv[optind]);
    if (!msg[0] && parse_types(o->type_arg, o))
        snprintf(msg, sizeof msg, "-d %s: unknown type (see -h)", o->type_arg);
    if (!msg[0] && parse_ops(o->op_arg, o))
        snprintf(msg, sizeof msg, "-o %s: unknown op (sum, prod, min, max, avg or all)", o->op_arg);
    if (!msg[0] && o->max_bytes < o->min_bytes)
        snprintf(msg, sizeof msg, "-e %zu is smaller than -b %zu", o->max_bytes, o->min_bytes);
    if (!msg[0])
        return -1;
    if (rank == 0) {
        fprintf(stderr, "%s: %s\n\n", prog, msg);
        usage(stderr, prog, coll);
    }
    return 2;
}
