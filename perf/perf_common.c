/*
 * perf_common.c - everything the perf tools share: options, the type and op
 * tables (Chorus and MPI names), input patterns and result checking, the size
 * sweep, timing with Chorus and MPI interleaved, the table and JSON output.
 *
 * A row of the table, for each size:
 *   1. check (-c 1): one out-of-place and one in-place Chorus call on freshly
 *      filled inputs, compared element by element with values computed here;
 *      guard bytes around the receive buffer catch out-of-bounds writes;
 *   2. warm-up: -w calls of each variant, more until 2 ms have passed;
 *   3. timing: the -n iterations are split into rounds; each round runs one
 *      block of Chorus out-of-place, Chorus in-place and the MPI collective
 *      (the starting variant rotates), each block starting from an
 *      MPI_Barrier, so slow phases of the machine hit every variant alike.
 *      Collectives shorter than 1 ms make one untimed call after the barrier,
 *      so the ranks' uneven exit from it does not weigh on the timed calls.
 *      A rank's time is its block times summed over rounds / iterations; ranks
 *      are then combined per -a (like nccl-tests: average by default).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getopt_long, gethostname, sched_getcpu, posix_memalign */
#endif

#include "perf_common.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chorus_mpi.h"

/* Not in the public API: libchorus exports it (src/reduce.h) and the header
 * shows it when present. Weak, so the tools still link against a library that
 * hides it. */
extern const char *chorus_reduce_isa(void) __attribute__((weak));

extern char **environ;

#define PERF_GUARD_BYTES 4096  /* checked before and after every receive buffer */
#define PERF_POISON 0xA5       /* fill of guards and of elements a call must not write */
#define PERF_MAX_ROUNDS 5      /* timing rounds per size (fewer if -n is smaller) */
#define PERF_SYNC_CALL_BELOW_S 0.001 /* collectives shorter: an untimed call starts each block */
#define PERF_WARMUP_MIN_S 0.002     /* warm-up goes on past -w calls until this long ... */
#define PERF_WARMUP_MAX_CALLS 10000 /* ... or this many calls */
#define PERF_PROGRESS_AFTER_S 10.0 /* auto progress off a tty: once a sweep runs this long */

/* ---- types and ops --------------------------------------------------------- */

typedef struct {
    const char *name;    /* printed; the nccl-tests name */
    const char *aliases; /* also accepted by -d, space separated */
    int is_float;
    int is_signed;
    /* Every integer of magnitude <= exact_max is held exactly (and is in range). */
    double exact_max;
    double eps;              /* floats: machine epsilon, scales the check tolerance */
    double min_val, max_val; /* integers: the range (beyond it values wrap) */
} perf_type_info_t;

static const perf_type_info_t type_info[CHORUS_NUM_TYPES] = {
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

static const char *const op_names[CHORUS_NUM_OPS] = {
    [CHORUS_SUM] = "sum", [CHORUS_PROD] = "prod", [CHORUS_MIN] = "min",
    [CHORUS_MAX] = "max", [CHORUS_AVG] = "avg",
};

/* MPI has no fp16/bf16: reductions on them have no MPI peer, but moving them
 * is moving 16-bit words, which MPI_UINT16_T does byte for byte. */
static MPI_Datatype mpi_type_of(chorus_datatype_t t, int reduces)
{
    switch (t) {
    case CHORUS_INT8: return MPI_INT8_T;
    case CHORUS_UINT8: return MPI_UINT8_T;
    case CHORUS_INT32: return MPI_INT32_T;
    case CHORUS_UINT32: return MPI_UINT32_T;
    case CHORUS_INT64: return MPI_INT64_T;
    case CHORUS_UINT64: return MPI_UINT64_T;
    case CHORUS_FLOAT16:
    case CHORUS_BFLOAT16: return reduces ? MPI_DATATYPE_NULL : MPI_UINT16_T;
    case CHORUS_FLOAT32: return MPI_FLOAT;
    case CHORUS_FLOAT64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;
    }
}

/* MPI has no average: MPI_SUM then a division is not the same operation. */
static MPI_Op mpi_op_of(chorus_op_t op)
{
    switch (op) {
    case CHORUS_SUM: return MPI_SUM;
    case CHORUS_PROD: return MPI_PROD;
    case CHORUS_MIN: return MPI_MIN;
    case CHORUS_MAX: return MPI_MAX;
    default: return MPI_OP_NULL;
    }
}

static size_t type_size_of(chorus_datatype_t t)
{
    static const size_t sizes[CHORUS_NUM_TYPES] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
    return sizes[t];
}

/* ---- element access (fp16 and bf16 rounded to nearest even) ---------------- */

static uint16_t float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf or NaN (kept quiet) */
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
    if (a >= 0x477ff000u) /* >= 65520 rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* below 2^-14: subnormal half; scaling by 2^24 is exact */
        float af;
        memcpy(&af, &a, sizeof af);
        return (uint16_t)(sign | (uint16_t)lrintf(af * 16777216.0f));
    }
    uint32_t h = ((((a >> 23) - 127u + 15u) << 10) | ((a & 0x7fffffu) >> 13));
    uint32_t rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
        h++; /* a carry into the exponent is the right result */
    return (uint16_t)(sign | h);
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        float v = ldexpf((float)m, -24);
        return sign ? -v : v;
    }
    x = sign | (e == 31 ? 0x7f800000u | (m << 13) : ((e - 15u + 127u) << 23) | (m << 13));
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static uint16_t float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static float bf16_to_float(uint16_t b)
{
    uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* Stores an integer-valued (or, for floats, any) double; integers wrap like
 * two's complement would. Always inlined: the block loops below call it with
 * a constant type, so the switch folds away. */
static inline __attribute__((always_inline)) void store_elem(chorus_datatype_t t, void *buf,
                                                             size_t i, double v)
{
    unsigned char *p = buf;
    switch (t) {
    case CHORUS_INT8:
    case CHORUS_UINT8: { uint8_t x = (uint8_t)(int64_t)v; p[i] = x; break; }
    case CHORUS_INT32:
    case CHORUS_UINT32: {
        uint32_t x = v < 0 ? (uint32_t)(int64_t)v : (uint32_t)(uint64_t)v;
        memcpy(p + i * 4, &x, 4);
        break;
    }
    case CHORUS_INT64: { int64_t x = (int64_t)v; memcpy(p + i * 8, &x, 8); break; }
    case CHORUS_UINT64: { uint64_t x = v < 0 ? (uint64_t)(int64_t)v : (uint64_t)v; memcpy(p + i * 8, &x, 8); break; }
    case CHORUS_FLOAT16: { uint16_t x = float_to_half((float)v); memcpy(p + i * 2, &x, 2); break; }
    case CHORUS_BFLOAT16: { uint16_t x = float_to_bf16((float)v); memcpy(p + i * 2, &x, 2); break; }
    case CHORUS_FLOAT32: { float x = (float)v; memcpy(p + i * 4, &x, 4); break; }
    case CHORUS_FLOAT64: memcpy(p + i * 8, &v, 8); break;
    default: break;
    }
}

static inline __attribute__((always_inline)) double load_elem(chorus_datatype_t t,
                                                              const void *buf, size_t i)
{
    const unsigned char *p = buf;
    switch (t) {
    case CHORUS_INT8: return (double)(int8_t)p[i];
    case CHORUS_UINT8: return (double)p[i];
    case CHORUS_INT32: { int32_t x; memcpy(&x, p + i * 4, 4); return (double)x; }
    case CHORUS_UINT32: { uint32_t x; memcpy(&x, p + i * 4, 4); return (double)x; }
    case CHORUS_INT64: { int64_t x; memcpy(&x, p + i * 8, 8); return (double)x; }
    case CHORUS_UINT64: { uint64_t x; memcpy(&x, p + i * 8, 8); return (double)x; }
    case CHORUS_FLOAT16: { uint16_t x; memcpy(&x, p + i * 2, 2); return (double)half_to_float(x); }
    case CHORUS_BFLOAT16: { uint16_t x; memcpy(&x, p + i * 2, 2); return (double)bf16_to_float(x); }
    case CHORUS_FLOAT32: { float x; memcpy(&x, p + i * 4, 4); return (double)x; }
    case CHORUS_FLOAT64: { double x; memcpy(&x, p + i * 8, 8); return x; }
    default: return 0.0;
    }
}

#define PERF_BLOCK 1024 /* elements converted per block when filling and checking */

#define PERF_EACH_TYPE(CASE)                                                              \
    CASE(CHORUS_INT8) CASE(CHORUS_UINT8) CASE(CHORUS_INT32) CASE(CHORUS_UINT32)           \
    CASE(CHORUS_INT64) CASE(CHORUS_UINT64) CASE(CHORUS_FLOAT16) CASE(CHORUS_BFLOAT16)     \
    CASE(CHORUS_FLOAT32) CASE(CHORUS_FLOAT64)

/* buf[first + k] = v[k] for k < n */
static void store_block(chorus_datatype_t t, void *buf, size_t first, const double *v, size_t n)
{
#define STORE_CASE(T)                           \
    case T:                                     \
        for (size_t k = 0; k < n; k++)          \
            store_elem(T, buf, first + k, v[k]); \
        break;
    switch (t) {
        PERF_EACH_TYPE(STORE_CASE)
    default: break;
    }
#undef STORE_CASE
}

/* v[k] = buf[first + k] for k < n */
static void load_block(chorus_datatype_t t, const void *buf, size_t first, double *v, size_t n)
{
#define LOAD_CASE(T)                           \
    case T:                                    \
        for (size_t k = 0; k < n; k++)         \
            v[k] = load_elem(T, buf, first + k); \
        break;
    switch (t) {
        PERF_EACH_TYPE(LOAD_CASE)
    default: break;
    }
#undef LOAD_CASE
}

/* ---- input patterns and expected values ------------------------------------ */

static inline uint64_t mix(int rank, size_t i)
{
    uint64_t x = ((uint64_t)i + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)rank + 1) * 0xC2B2AE3D27D4EB4Full;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    return x;
}

/* Value ranges: lo + (hash & mask), a power-of-two span within what the
 * type holds exactly (mask, not modulo: filling a 1 GB buffer stays fast).
 * Data movement and min/max: up to every integer the type holds exactly.
 * sum/avg: magnitudes up to exact_max / nranks, so the sum over all ranks is
 * exact in any order (floats too). prod: +-1 and +-2 with at most three 2s
 * per element across ranks, so products stay tiny and exact. */
static void set_pattern(perf_case_t *c, int reduces)
{
    const perf_type_info_t *ti = &type_info[c->type];
    double m = ti->exact_max;
    c->pat_prod = reduces && c->op == CHORUS_PROD;
    if (reduces && (c->op == CHORUS_SUM || c->op == CHORUS_AVG)) {
        m = floor(m / c->nranks);
        if (m < 1)
            m = 1;
    }
    double span = ti->is_signed ? 2 * m + 1 : m + 1, pow2 = 1;
    while (pow2 * 2 <= span)
        pow2 *= 2;
    c->pat_mask = (uint64_t)pow2 - 1;
    c->pat_lo = ti->is_signed ? -pow2 / 2 : 0;
}

static inline double input_value(const perf_case_t *c, int rank, size_t i)
{
    uint64_t h = mix(rank, i);
    if (c->pat_prod) {
        double v = (((size_t)rank + i) % (size_t)c->nranks < 3 && (h & 1)) ? 2.0 : 1.0;
        return (c->pat_lo < 0 && (h >> 1) % 5 == 0) ? -v : v;
    }
    return c->pat_lo + (double)(h & c->pat_mask);
}

double perf_input_value(const perf_case_t *c, int rank, size_t i)
{
    return input_value(c, rank, i);
}

double perf_reduce_value(const perf_case_t *c, size_t i)
{
    double acc = input_value(c, 0, i);
    for (int r = 1; r < c->nranks; r++) {
        double v = input_value(c, r, i);
        switch (c->op) {
        case CHORUS_PROD: acc *= v; break;
        case CHORUS_MIN: acc = v < acc ? v : acc; break;
        case CHORUS_MAX: acc = v > acc ? v : acc; break;
        default: acc += v; break;
        }
    }
    if (c->op == CHORUS_AVG) {
        if (type_info[c->type].is_float)
            acc /= c->nranks;
        else /* C division truncates toward zero, as the API says */
            acc = (double)((int64_t)acc / (int64_t)c->nranks);
    }
    return acc;
}

/* ---- options --------------------------------------------------------------- */

enum { AGG_RANK0 = 0, AGG_AVG = 1, AGG_MIN = 2, AGG_MAX = 3 };
static const char *const agg_names[] = {"rank0", "avg", "min", "max"};

typedef struct {
    size_t min_bytes, max_bytes, step_bytes;
    double step_factor; /* > 1: multiply; else add step_bytes */
    int iters, warmup, check, agg, mpi, progress /* -1 auto */, root, timeout_s;
    const char *json_path;
    const char *type_arg, *op_arg;
    chorus_datatype_t types[CHORUS_NUM_TYPES];
    int ntypes;
    chorus_op_t ops[CHORUS_NUM_OPS];
    int nops;
} perf_opts_t;

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
        const char *a = type_info[k].aliases;
        size_t n = strlen(name);
        if (strcmp(name, type_info[k].name) == 0) {
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
        while (k < CHORUS_NUM_OPS && strcmp(tok, op_names[k]) != 0)
            k++;
        if (k == CHORUS_NUM_OPS || o->nops == CHORUS_NUM_OPS)
            return -1;
        o->ops[o->nops++] = (chorus_op_t)k;
    }
    return o->nops ? 0 : -1;
}

/* Returns -1 to go on, else the exit status (0 after -h, 2 after an error).
 * Every rank parses; only rank 0 prints. */
static int parse_options(int argc, char **argv, const perf_coll_t *coll, int rank, perf_opts_t *o)
{
    static const struct option longopts[] = {
        {"minbytes", required_argument, NULL, 'b'}, {"maxbytes", required_argument, NULL, 'e'},
        {"stepbytes", required_argument, NULL, 'i'}, {"stepfactor", required_argument, NULL, 'f'},
        {"iters", required_argument, NULL, 'n'}, {"warmup_iters", required_argument, NULL, 'w'},
        {"check", required_argument, NULL, 'c'}, {"op", required_argument, NULL, 'o'},
        {"datatype", required_argument, NULL, 'd'}, {"root", required_argument, NULL, 'r'},
        {"average", required_argument, NULL, 'a'}, {"mpi", required_argument, NULL, 'm'},
        {"progress", required_argument, NULL, 'p'}, {"json", required_argument, NULL, 'J'},
        {"timeout", required_argument, NULL, 'T'}, {"nthreads", required_argument, NULL, 't'},
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
    while ((ch = getopt_long(argc, argv, ":b:e:i:f:n:w:c:o:d:r:a:m:p:J:T:t:g:h", longopts,
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
                if (strcmp(a, agg_names[k]) == 0)
                    o->agg = k;
            if (o->agg < 0 && parse_int(a, 0, 3, &o->agg))
                snprintf(msg, sizeof msg, "-a %s: must be 0 (rank0), 1 (avg), 2 (min) or 3 (max)", a);
            break;
        case 'J': o->json_path = a; break;
        case 'T':
            if (parse_int(a, 0, INT_MAX, &o->timeout_s))
                snprintf(msg, sizeof msg, "-T %s: seconds must be an integer >= 0", a);
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

/* ---- the run --------------------------------------------------------------- */

enum { V_OOP, V_IP, V_MPI, V_COUNT }; /* the timed variants */

typedef struct {
    size_t size, count;
    chorus_datatype_t type;
    chorus_op_t op;
    int root;
    int has_ip, has_mpi;
    double time_us[V_COUNT], algbw[V_COUNT], busbw[V_COUNT];
    unsigned long long wrong[2]; /* out-of-place, in-place */
    double ratio;                /* chorus out-of-place busbw / MPI busbw; < 0: n/a */
} perf_row_t;

typedef struct {
    const perf_coll_t *coll;
    perf_opts_t opt;
    int rank, nranks;
    chorus_comm_t comm;
    unsigned char *send, *recv;   /* receive side: in-place runs use recv */
    size_t send_cap, recv_cap;    /* bytes usable (guards excluded) */
    size_t *sizes;                /* the requested sizes of the sweep */
    size_t nsizes;
    /* totals for the footer */
    unsigned long long oob, wrong;
    double busbw_sum, ratio_logsum;
    int busbw_n, ratio_n;
    perf_row_t *rows; /* rank 0 */
    size_t nrows, rows_cap;
    /* progress */
    int progress_tty;
    double t_start, t_progress;
    int progress_shown;
    char *cmdline;
    FILE *json; /* rank 0, -J: opened before the sweep so a bad path fails early */
} perf_ctx_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char alarm_msg[256];
static void on_alarm(int sig)
{
    (void)sig;
    ssize_t w = write(2, alarm_msg, strlen(alarm_msg));
    (void)w;
    _exit(4);
}

static void fail_call(const perf_ctx_t *x, const perf_case_t *c, const char *what,
                      chorus_result_t res)
{
    fprintf(stderr, "rank %d: %s(count %zu, %s%s%s) failed: %s: %s\n", x->rank, what, c->count,
            type_info[c->type].name, x->coll->has_op ? ", " : "",
            x->coll->has_op ? op_names[c->op] : "", chorus_get_error_string(res),
            chorus_get_last_error());
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 3);
}

static int mpi_usable(const perf_ctx_t *x, const perf_case_t *c)
{
    return x->opt.mpi && c->mpi_type != MPI_DATATYPE_NULL &&
           (!x->coll->has_op || c->mpi_op != MPI_OP_NULL) && c->count <= (size_t)INT_MAX;
}

static void run_variant(const perf_ctx_t *x, const perf_case_t *c, int v)
{
    size_t ts = c->type_size;
    if (v == V_MPI) {
        int err = x->coll->run_mpi(c, x->send, x->recv);
        if (err != MPI_SUCCESS) {
            fprintf(stderr, "rank %d: %s failed with MPI error %d\n", x->rank, x->coll->mpi_call, err);
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
        return;
    }
    chorus_result_t res = v == V_OOP
        ? x->coll->run_chorus(c, x->send, x->recv)
        : x->coll->run_chorus(c, x->recv + c->ip_send_off * ts, x->recv + c->ip_recv_off * ts);
    if (res != CHORUS_SUCCESS)
        fail_call(x, c, x->coll->chorus_call, res);
}

/* Bytes of the in-place buffer for this case. */
static size_t ip_extent(const perf_case_t *c)
{
    size_t a = c->send_elems + c->ip_send_off, b = c->recv_elems + c->ip_recv_off;
    return (a > b ? a : b) * c->type_size;
}

static void fill_input(const perf_case_t *c, void *buf)
{
    double v[PERF_BLOCK];
    for (size_t i = 0; i < c->send_elems; i += PERF_BLOCK) {
        size_t n = c->send_elems - i < PERF_BLOCK ? c->send_elems - i : PERF_BLOCK;
        for (size_t k = 0; k < n; k++)
            v[k] = input_value(c, c->rank, i + k);
        store_block(c->type, buf, i, v, n);
    }
}

static void poison_guards(unsigned char *buf, size_t extent)
{
    memset(buf - PERF_GUARD_BYTES, PERF_POISON, PERF_GUARD_BYTES);
    memset(buf + extent, PERF_POISON, PERF_GUARD_BYTES);
}

static unsigned long long count_guards(const unsigned char *buf, size_t extent)
{
    unsigned long long bad = 0;
    for (size_t k = 0; k < PERF_GUARD_BYTES; k++)
        bad += (buf[(ptrdiff_t)k - PERF_GUARD_BYTES] != PERF_POISON) + (buf[extent + k] != PERF_POISON);
    return bad;
}

static int is_poison(const unsigned char *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (p[k] != PERF_POISON)
            return 0;
    return 1;
}

/* Integers: equal once want wraps like the type; floats: within rel_tol. */
static inline int same_value(chorus_datatype_t t, double got, double want, double rel_tol)
{
    const perf_type_info_t *ti = &type_info[t];
    if (!ti->is_float) {
        if (want < ti->min_val || want > ti->max_val) {
            unsigned char tmp[8];
            store_elem(t, tmp, 0, want);
            want = load_elem(t, tmp, 0);
        }
        return got == want;
    }
    return got == want || fabs(got - want) <= rel_tol * fabs(want); /* NaN never matches */
}

/* Checks one call. The receive region starts at element out_off of buf; in
 * place, the input sits at in_off. Adds wrong elements to *wrong and writes
 * where the call had no business to *oob. */
static void check_output(const perf_ctx_t *x, const perf_case_t *c, const unsigned char *buf,
                         int in_place, unsigned long long *wrong, unsigned long long *oob)
{
    enum { WRITTEN, KEPT_INPUT, UNTOUCHED };
    size_t ts = c->type_size;
    size_t out_off = in_place ? c->ip_recv_off : 0, in_off = c->ip_send_off;
    /* Results are exact except for avg (one rounding) and, in general, the
     * summation order: allow a few ulps, more with more ranks. */
    double tol = x->coll->reduces_values ? type_info[c->type].eps * (c->nranks > 2 ? c->nranks : 2) : 0;
    double got[PERF_BLOCK], want[PERF_BLOCK];
    unsigned char kind[PERF_BLOCK];
    for (size_t i = 0; i < c->recv_elems; i += PERF_BLOCK) {
        size_t n = c->recv_elems - i < PERF_BLOCK ? c->recv_elems - i : PERF_BLOCK;
        load_block(c->type, buf, out_off + i, got, n);
        for (size_t k = 0; k < n; k++) {
            size_t j = out_off + i + k;
            if (x->coll->expected(c, i + k, &want[k])) {
                kind[k] = WRITTEN;
            } else if (in_place && j >= in_off && j < in_off + c->send_elems) {
                kind[k] = KEPT_INPUT;
                want[k] = input_value(c, c->rank, j - in_off);
            } else {
                kind[k] = UNTOUCHED;
            }
        }
        for (size_t k = 0; k < n; k++) {
            if (kind[k] == WRITTEN)
                *wrong += !same_value(c->type, got[k], want[k], tol);
            else if (kind[k] == KEPT_INPUT)
                *oob += !same_value(c->type, got[k], want[k], 0);
            else
                *oob += !is_poison(buf + (out_off + i + k) * ts, ts);
        }
    }
}

/* Elements of the (const) input that the call changed. */
static unsigned long long check_input_kept(const perf_case_t *c, const void *buf)
{
    double got[PERF_BLOCK];
    unsigned long long bad = 0;
    for (size_t i = 0; i < c->send_elems; i += PERF_BLOCK) {
        size_t n = c->send_elems - i < PERF_BLOCK ? c->send_elems - i : PERF_BLOCK;
        load_block(c->type, buf, i, got, n);
        for (size_t k = 0; k < n; k++)
            bad += !same_value(c->type, got[k], input_value(c, c->rank, i + k), 0);
    }
    return bad;
}

/* One checked out-of-place and one checked in-place call. */
static void check_case(const perf_ctx_t *x, const perf_case_t *c, unsigned long long wrong[2],
                       unsigned long long *oob)
{
    size_t ts = c->type_size, rbytes = c->recv_elems * ts;
    fill_input(c, x->send);
    memset(x->recv, PERF_POISON, rbytes);
    poison_guards(x->recv, rbytes);
    run_variant(x, c, V_OOP);
    check_output(x, c, x->recv, 0, &wrong[0], oob);
    *oob += count_guards(x->recv, rbytes);
    wrong[0] += check_input_kept(c, x->send);

    if (!x->coll->has_in_place)
        return;
    size_t ext = ip_extent(c);
    memset(x->recv, PERF_POISON, ext);
    fill_input(c, x->recv + c->ip_send_off * ts);
    poison_guards(x->recv, ext);
    run_variant(x, c, V_IP);
    check_output(x, c, x->recv, 1, &wrong[1], oob);
    *oob += count_guards(x->recv, ext);
}

/* Whether each timed block starts with one untimed call. Ranks leave the
 * barrier before a block at slightly different times (about a microsecond);
 * a first collective absorbs that skew, and for short collectives it would
 * otherwise weigh on the timed ones. Long collectives (judged from the
 * slowest warm-up of any variant on any rank, so every rank agrees) skip it. */
static int sync_call_needed(const perf_ctx_t *x, double warm_secs_per_iter)
{
    double t;
    if (x->opt.warmup == 0)
        return 1;
    MPI_Allreduce(&warm_secs_per_iter, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return t < PERF_SYNC_CALL_BELOW_S;
}

/* At least -w calls, repeated while under PERF_WARMUP_MIN_S: some libraries
 * (MPICH here) need far more than nccl-tests' 5 calls before a new size runs
 * at speed, and a short warm-up would slant the comparison. Ranks agree on
 * when to stop. Raises *secs_per_iter to the last round's time per call. */
static void warm_up(const perf_ctx_t *x, const perf_case_t *c, int v, double *secs_per_iter)
{
    int w = x->opt.warmup, more = w > 0, total = 0;
    double t0 = now_s(), t = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    while (more) {
        double t1 = now_s();
        for (int k = 0; k < w; k++)
            run_variant(x, c, v);
        total += w;
        double t2 = now_s();
        t = (t2 - t1) / w;
        int mine = t2 - t0 < PERF_WARMUP_MIN_S && total < PERF_WARMUP_MAX_CALLS;
        MPI_Allreduce(&mine, &more, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    }
    *secs_per_iter = t > *secs_per_iter ? t : *secs_per_iter;
}

/* Per-iteration seconds of each variant on this rank (0 if not run). */
static void time_case(const perf_ctx_t *x, const perf_case_t *c, const int run[V_COUNT],
                      double secs[V_COUNT])
{
    int iters = x->opt.iters, rounds = iters < PERF_MAX_ROUNDS ? iters : PERF_MAX_ROUNDS;
    double warm = 0;
    for (int v = 0; v < V_COUNT; v++) {
        secs[v] = 0;
        if (run[v])
            warm_up(x, c, v, &warm);
    }
    int sync_call = sync_call_needed(x, warm);
    for (int r = 0; r < rounds; r++) {
        int block = iters / rounds + (r < iters % rounds);
        for (int k = 0; k < V_COUNT; k++) {
            int v = (r + k) % V_COUNT; /* rotate who goes first */
            if (!run[v])
                continue;
            MPI_Barrier(MPI_COMM_WORLD);
            if (sync_call)
                run_variant(x, c, v);
            double t0 = now_s();
            for (int it = 0; it < block; it++)
                run_variant(x, c, v);
            secs[v] += now_s() - t0;
        }
    }
    for (int v = 0; v < V_COUNT; v++)
        secs[v] /= iters;
}

static void aggregate_times(const perf_ctx_t *x, double secs[V_COUNT])
{
    double out[V_COUNT];
    switch (x->opt.agg) {
    case AGG_RANK0:
        MPI_Bcast(secs, V_COUNT, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        return;
    case AGG_MIN: MPI_Allreduce(secs, out, V_COUNT, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD); break;
    case AGG_MAX: MPI_Allreduce(secs, out, V_COUNT, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD); break;
    default:
        MPI_Allreduce(secs, out, V_COUNT, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        for (int v = 0; v < V_COUNT; v++)
            out[v] /= x->nranks;
        break;
    }
    memcpy(secs, out, sizeof out);
}

/* ---- output ---------------------------------------------------------------- */

static const char *fmt_time(char *buf, size_t n, double us)
{
    snprintf(buf, n, us < 1e5 ? "%.2f" : us < 1e6 ? "%.1f" : "%.0f", us);
    return buf;
}

static const char *fmt_bytes(char *buf, size_t n, size_t b)
{
    if (b >= (1u << 30) && b % (1u << 30) == 0)
        snprintf(buf, n, "%zuG", b >> 30);
    else if (b >= (1u << 20) && b % (1u << 20) == 0)
        snprintf(buf, n, "%zuM", b >> 20);
    else if (b >= (1u << 10) && b % (1u << 10) == 0)
        snprintf(buf, n, "%zuK", b >> 10);
    else
        snprintf(buf, n, "%zu", b);
    return buf;
}

/* A header line built piece by piece, printed without trailing blanks. */
typedef struct {
    char s[512];
    size_t n;
} perf_line_t;

static void __attribute__((format(printf, 2, 3))) line_add(perf_line_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(l->s + l->n, sizeof l->s - l->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        l->n = l->n + (size_t)k < sizeof l->s ? l->n + (size_t)k : sizeof l->s - 1;
}

static void line_centered(perf_line_t *l, const char *text, int width)
{
    int len = (int)strlen(text), left = (width - len) / 2;
    if (left < 0)
        left = 0;
    line_add(l, "%*s%s%*s", left, "", text, width - len - left > 0 ? width - len - left : 0, "");
}

static void line_print(perf_line_t *l)
{
    while (l->n > 0 && l->s[l->n - 1] == ' ')
        l->n--;
    l->s[l->n] = '\0';
    puts(l->s);
    l->n = 0;
}

#define ROW_LEAD "%12s  %12s  %8s  %6s  %6s"
#define ROW_GROUP "  %8s  %6s  %6s  %6s"
#define ROW_MPI "  %8s  %6s  %6s"

static void print_header(perf_ctx_t *x, const char *argv0)
{
    const perf_coll_t *coll = x->coll;
    struct rankinfo { char host[120]; int pid, cpu; } me, *all = NULL;
    memset(&me, 0, sizeof me);
    gethostname(me.host, sizeof me.host - 1);
    me.pid = (int)getpid();
    me.cpu = sched_getcpu();
    if (x->rank == 0)
        all = calloc((size_t)x->nranks, sizeof *all);
    MPI_Gather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (x->rank != 0)
        return;

    char lib[MPI_MAX_LIBRARY_VERSION_STRING] = "";
    int len = 0;
    MPI_Get_library_version(lib, &len);
    lib[strcspn(lib, "\n")] = '\0';
    for (char *t = lib; *t; t++)
        if (*t == '\t')
            *t = ' ';
    const perf_opts_t *o = &x->opt;
    char b1[32], b2[32];

    printf("# %s: %s vs %s\n", strrchr(argv0, '/') ? strrchr(argv0, '/') + 1 : argv0,
           coll->chorus_call, o->mpi ? coll->mpi_call : "(no MPI comparison: -m 0)");
    printf("# Command: %s\n", x->cmdline);
    printf("# Chorus %d.%d.%d, reduce kernels %s | %s\n", CHORUS_VERSION_MAJOR,
           CHORUS_VERSION_MINOR, CHORUS_VERSION_PATCH,
           chorus_reduce_isa ? chorus_reduce_isa() : "(not reported)", lib);
    printf("# nRanks %d  minBytes %zu  maxBytes %zu  step: %s  warmup iters: %d  iters: %d"
           "  rounds: %d  validation: %d  time: %s over ranks\n",
           x->nranks, o->min_bytes, o->max_bytes,
           o->step_factor > 1 ? (snprintf(b1, sizeof b1, "%g(factor)", o->step_factor), b1)
                              : (snprintf(b1, sizeof b1, "%s(bytes)",
                                          fmt_bytes(b2, sizeof b2, o->step_bytes)), b1),
           o->warmup, o->iters, o->iters < PERF_MAX_ROUNDS ? o->iters : PERF_MAX_ROUNDS, o->check,
           agg_names[o->agg]);
    int env_shown = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "CHORUS_", 7) == 0) {
            printf("%s %s", env_shown++ ? "" : "# Environment:", *e);
        }
    if (env_shown)
        printf("\n");
    printf("#\n# Using ranks:\n");
    for (int r = 0; r < x->nranks; r++)
        printf("#  Rank %3d  Pid %7d  cpu %3d  on %s\n", r, all[r].pid, all[r].cpu, all[r].host);
    free(all);
    printf("#\n");
    printf("# size: S in bytes (%s); count: the count argument of %s;\n",
           coll->whole_buffer ? "the whole buffer of all ranks" : "count x typesize",
           coll->chorus_call);
    printf("# algbw = S / time; busbw = algbw x %s (GB = 1e9 B); #wrong: elements that differ\n",
           coll->busbw_factor(4) == 1.0 ? "1" : coll->busbw_factor(4) > 1.0 ? "2(n-1)/n" : "(n-1)/n");
    if (o->mpi)
        printf("# from the expected value; ratio = Chorus out-of-place busbw / MPI busbw.\n");
    else
        printf("# from the expected value.\n");
    perf_line_t l = {.n = 0};
    line_add(&l, "#%*s", 51, "");
    line_centered(&l, "out-of-place", 34);
    line_centered(&l, coll->has_in_place ? "in-place" : "in-place (n/a)", 34);
    if (o->mpi)
        line_centered(&l, coll->mpi_call, 26);
    line_print(&l);
    line_add(&l, "#" "%11s  %12s  %8s  %6s  %6s", "size", "count", "type", "redop", "root");
    line_add(&l, ROW_GROUP ROW_GROUP, "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw",
             "#wrong");
    if (o->mpi)
        line_add(&l, ROW_MPI, "time", "busbw", "ratio");
    line_print(&l);
    line_add(&l, "#" "%11s  %12s  %8s  %6s  %6s", "(B)", "(elements)", "", "", "");
    line_add(&l, ROW_GROUP ROW_GROUP, "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "");
    if (o->mpi)
        line_add(&l, ROW_MPI, "(us)", "(GB/s)", "");
    line_print(&l);
    fflush(stdout);
}

static void print_row(const perf_ctx_t *x, const perf_row_t *row)
{
    char s[5][32], g[4][32];
    snprintf(s[0], 32, "%zu", row->size);
    snprintf(s[1], 32, "%zu", row->count);
    snprintf(s[2], 32, "%d", row->root);
    printf(ROW_LEAD, s[0], s[1], type_info[row->type].name,
           x->coll->has_op ? op_names[row->op] : "none", s[2]);
    for (int v = V_OOP; v <= V_IP; v++) {
        if (v == V_IP && !row->has_ip) {
            printf(ROW_GROUP, "n/a", "n/a", "n/a", "n/a");
            continue;
        }
        fmt_time(g[0], 32, row->time_us[v]);
        snprintf(g[1], 32, "%.2f", row->algbw[v]);
        snprintf(g[2], 32, "%.2f", row->busbw[v]);
        if (x->opt.check)
            snprintf(g[3], 32, "%llu", row->wrong[v]);
        else
            snprintf(g[3], 32, "N/A");
        printf(ROW_GROUP, g[0], g[1], g[2], g[3]);
    }
    if (x->opt.mpi) {
        if (row->has_mpi) {
            fmt_time(g[0], 32, row->time_us[V_MPI]);
            snprintf(g[1], 32, "%.2f", row->busbw[V_MPI]);
            if (row->ratio >= 0)
                snprintf(g[2], 32, "%.2f", row->ratio);
            else
                snprintf(g[2], 32, "n/a");
            printf(ROW_MPI, g[0], g[1], g[2]);
        } else {
            printf(ROW_MPI, "n/a", "n/a", "n/a");
        }
    }
    printf("\n");
    fflush(stdout);
}

static void progress(perf_ctx_t *x, size_t step, size_t total, const perf_case_t *c, size_t size)
{
    if (x->rank != 0 || x->opt.progress == 0)
        return;
    double t = now_s(), el = t - x->t_start;
    if (!x->progress_tty) {
        /* Off a terminal each update is a line: only for long sweeps, and sparingly. */
        if ((x->opt.progress < 0 && el < PERF_PROGRESS_AFTER_S) ||
            (x->t_progress > 0 && t - x->t_progress < PERF_PROGRESS_AFTER_S))
            return;
    }
    x->t_progress = t;
    char b[32];
    fprintf(stderr, "%s# progress %zu/%zu: %s%s%s, %s bytes, %.0f s elapsed%s",
            x->progress_tty ? "\r\033[K" : "", step + 1, total, type_info[c->type].name,
            x->coll->has_op ? " " : "", x->coll->has_op ? op_names[c->op] : "",
            fmt_bytes(b, sizeof b, size), el, x->progress_tty ? "" : "\n");
    fflush(stderr);
    x->progress_shown = 1;
}

static void progress_clear(perf_ctx_t *x)
{
    if (x->rank == 0 && x->progress_tty && x->progress_shown) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
        x->progress_shown = 0;
    }
}

/* ---- JSON ------------------------------------------------------------------ */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_count(FILE *f, const char *key, unsigned long long v, int valid)
{
    if (valid)
        fprintf(f, "\"%s\": %llu", key, v);
    else
        fprintf(f, "\"%s\": null", key);
}

static void json_num(FILE *f, const char *key, double v, int valid)
{
    fprintf(f, "\"%s\": ", key);
    if (valid && isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fprintf(f, "null");
}

static int write_json(const perf_ctx_t *x, FILE *f, double avg_busbw, double avg_ratio)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    fprintf(f, "{\n  \"tool\": \"%s_perf\"", x->coll->name);
    fprintf(f, ",\n  \"collective\": ");
    json_string(f, x->coll->chorus_call);
    fprintf(f, ",\n  \"mpi_collective\": ");
    json_string(f, x->opt.mpi ? x->coll->mpi_call : "");
    fprintf(f, ",\n  \"command\": ");
    json_string(f, x->cmdline);
    fprintf(f, ",\n  \"hostname\": ");
    json_string(f, host);
    fprintf(f, ",\n  \"chorus_version\": \"%d.%d.%d\",\n  \"reduce_isa\": ", CHORUS_VERSION_MAJOR,
            CHORUS_VERSION_MINOR, CHORUS_VERSION_PATCH);
    json_string(f, chorus_reduce_isa ? chorus_reduce_isa() : "");
    fprintf(f, ",\n  \"nranks\": %d,\n  \"type\": ", x->nranks);
    json_string(f, x->opt.type_arg);
    fprintf(f, ",\n  \"op\": ");
    json_string(f, x->coll->has_op ? x->opt.op_arg : "none");
    fprintf(f, ",\n  \"root\": %d,\n  \"iters\": %d,\n  \"warmup\": %d,\n  \"check\": %d,\n"
               "  \"average\": \"%s\",\n  \"in_place\": %s,\n  \"rows\": [",
            x->coll->has_root ? x->opt.root : -1, x->opt.iters, x->opt.warmup, x->opt.check,
            agg_names[x->opt.agg], x->coll->has_in_place ? "true" : "false");
    for (size_t k = 0; k < x->nrows; k++) {
        const perf_row_t *r = &x->rows[k];
        fprintf(f, "%s\n    {\"size\": %zu, \"count\": %zu, \"type\": \"%s\", \"op\": \"%s\", "
                   "\"root\": %d,\n     ",
                k ? "," : "", r->size, r->count, type_info[r->type].name,
                x->coll->has_op ? op_names[r->op] : "none", r->root);
        json_num(f, "oop_time_us", r->time_us[V_OOP], 1);
        fprintf(f, ", ");
        json_num(f, "oop_algbw", r->algbw[V_OOP], 1);
        fprintf(f, ", ");
        json_num(f, "oop_busbw", r->busbw[V_OOP], 1);
        fprintf(f, ", ");
        json_count(f, "oop_wrong", r->wrong[0], x->opt.check);
        fprintf(f, ",\n     ");
        json_num(f, "ip_time_us", r->time_us[V_IP], r->has_ip);
        fprintf(f, ", ");
        json_num(f, "ip_algbw", r->algbw[V_IP], r->has_ip);
        fprintf(f, ", ");
        json_num(f, "ip_busbw", r->busbw[V_IP], r->has_ip);
        fprintf(f, ", ");
        json_count(f, "ip_wrong", r->wrong[1], r->has_ip && x->opt.check);
        fprintf(f, ",\n     ");
        json_num(f, "mpi_time_us", r->time_us[V_MPI], r->has_mpi);
        fprintf(f, ", ");
        json_num(f, "mpi_algbw", r->algbw[V_MPI], r->has_mpi);
        fprintf(f, ", ");
        json_num(f, "mpi_busbw", r->busbw[V_MPI], r->has_mpi);
        fprintf(f, ", ");
        json_num(f, "ratio", r->ratio, r->has_mpi && r->ratio >= 0);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ],\n  \"oob_values\": %llu,\n  \"wrong_values\": %llu,\n  ", x->oob, x->wrong);
    json_num(f, "avg_busbw", avg_busbw, x->busbw_n > 0);
    fprintf(f, ",\n  ");
    json_num(f, "avg_ratio", avg_ratio, x->ratio_n > 0);
    fprintf(f, ",\n  \"result\": \"%s\"\n}\n", x->oob || x->wrong ? "FAILED" : "OK");
    if (fclose(f) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", x->opt.json_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- sweep ----------------------------------------------------------------- */

/* Fills c for a requested size; returns the actual S, or 0 to skip it. */
static size_t setup_case(const perf_ctx_t *x, perf_case_t *c, chorus_datatype_t t, chorus_op_t op,
                         size_t req)
{
    const perf_coll_t *coll = x->coll;
    memset(c, 0, sizeof *c);
    c->rank = x->rank;
    c->nranks = x->nranks;
    c->root = coll->has_root ? x->opt.root : -1;
    c->comm = x->comm;
    c->mpi_comm = MPI_COMM_WORLD;
    c->type = t;
    c->op = coll->has_op ? op : CHORUS_SUM;
    c->type_size = type_size_of(t);
    c->mpi_type = mpi_type_of(t, coll->has_op);
    c->mpi_op = coll->has_op ? mpi_op_of(op) : MPI_OP_NULL;
    size_t per = c->type_size * (coll->whole_buffer ? (size_t)x->nranks : 1);
    c->count = req / per;
    if (c->count == 0)
        return 0;
    coll->layout(c);
    set_pattern(c, coll->reduces_values);
    return c->count * per;
}

#define PERF_MAX_SIZES 100000

/* Returns -1 if the sweep has more than PERF_MAX_SIZES sizes (or no memory). */
static int plan_sizes(perf_ctx_t *x)
{
    size_t cap = 16, s = x->opt.min_bytes;
    x->sizes = malloc(cap * sizeof *x->sizes);
    x->nsizes = 0;
    while (x->sizes && s <= x->opt.max_bytes) {
        if (x->nsizes == cap)
            x->sizes = realloc(x->sizes, (cap *= 2) * sizeof *x->sizes);
        if (!x->sizes)
            break;
        x->sizes[x->nsizes++] = s;
        size_t next;
        if (x->opt.step_factor > 1) {
            double d = (double)s * x->opt.step_factor;
            next = d >= (double)SIZE_MAX ? SIZE_MAX : (size_t)d;
            if (next <= s)
                next = s + 1;
        } else {
            next = s + x->opt.step_bytes;
        }
        if (next <= s) /* wrapped */
            break;
        if (x->nsizes == PERF_MAX_SIZES)
            return -1;
        s = next;
    }
    return x->sizes ? 0 : -1;
}

/* Page-aligned, guard bytes on both sides; returns the usable start. */
static unsigned char *alloc_buffer(size_t bytes)
{
    void *p = NULL;
    if (bytes > SIZE_MAX - 2 * PERF_GUARD_BYTES ||
        posix_memalign(&p, 4096, bytes + 2 * PERF_GUARD_BYTES) != 0)
        return NULL;
    memset(p, 0, bytes + 2 * PERF_GUARD_BYTES); /* touch every page before timing */
    return (unsigned char *)p + PERF_GUARD_BYTES;
}

static int alloc_buffers(perf_ctx_t *x)
{
    size_t send = 0, recv = 0;
    perf_case_t c;
    for (int t = 0; t < x->opt.ntypes; t++)
        for (size_t k = 0; k < x->nsizes; k++) {
            if (!setup_case(x, &c, x->opt.types[t], x->opt.ops[0], x->sizes[k]))
                continue;
            size_t sb = c.send_elems * c.type_size, rb = c.recv_elems * c.type_size;
            size_t ib = x->coll->has_in_place ? ip_extent(&c) : 0;
            send = sb > send ? sb : send;
            recv = rb > recv ? rb : recv;
            recv = ib > recv ? ib : recv;
        }
    x->send_cap = send;
    x->recv_cap = recv;
    x->send = alloc_buffer(send);
    x->recv = alloc_buffer(recv);
    int ok = x->send && x->recv, all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!ok)
        fprintf(stderr, "rank %d: cannot allocate %zu + %zu bytes of buffers\n", x->rank, send, recv);
    return all_ok ? 0 : -1;
}

static void free_buffers(perf_ctx_t *x)
{
    if (x->send)
        free(x->send - PERF_GUARD_BYTES);
    if (x->recv)
        free(x->recv - PERF_GUARD_BYTES);
}

static void add_row(perf_ctx_t *x, const perf_row_t *row)
{
    if (x->nrows == x->rows_cap) {
        size_t cap = x->rows_cap ? 2 * x->rows_cap : 64;
        perf_row_t *r = realloc(x->rows, cap * sizeof *r);
        if (!r)
            return; /* JSON loses rows; the table has them */
        x->rows = r;
        x->rows_cap = cap;
    }
    x->rows[x->nrows++] = *row;
}

static void run_size(perf_ctx_t *x, perf_case_t *c, size_t size)
{
    const perf_coll_t *coll = x->coll;
    perf_row_t row;
    memset(&row, 0, sizeof row);
    row.size = size;
    row.count = c->count;
    row.type = c->type;
    row.op = c->op;
    row.root = c->root;
    row.has_ip = coll->has_in_place;
    row.has_mpi = mpi_usable(x, c);
    row.ratio = -1;

    if (x->opt.timeout_s > 0) {
        snprintf(alarm_msg, sizeof alarm_msg,
                 "rank %d: timeout: %s (%zu bytes, %s) took more than %d s\n", x->rank,
                 coll->chorus_call, size, type_info[c->type].name, x->opt.timeout_s);
        alarm((unsigned)x->opt.timeout_s);
    }
    unsigned long long wrong[2] = {0, 0}, oob = 0, tot[3];
    if (x->opt.check)
        check_case(x, c, wrong, &oob);
    int run[V_COUNT] = {1, coll->has_in_place, row.has_mpi};
    double secs[V_COUNT];
    time_case(x, c, run, secs);
    if (x->opt.timeout_s > 0)
        alarm(0);

    aggregate_times(x, secs);
    unsigned long long mine[3] = {wrong[0], wrong[1], oob};
    MPI_Allreduce(mine, tot, 3, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    row.wrong[0] = tot[0];
    row.wrong[1] = tot[1];
    x->oob += tot[2];
    x->wrong += tot[0] + tot[1];
    if (x->rank != 0)
        return;

    double factor = coll->busbw_factor(x->nranks);
    for (int v = 0; v < V_COUNT; v++) {
        if (!run[v])
            continue;
        row.time_us[v] = secs[v] * 1e6;
        row.algbw[v] = secs[v] > 0 ? (double)size / secs[v] / 1e9 : 0;
        row.busbw[v] = row.algbw[v] * factor;
    }
    x->busbw_sum += row.busbw[V_OOP] + (row.has_ip ? row.busbw[V_IP] : 0);
    x->busbw_n += 1 + row.has_ip;
    if (row.has_mpi && row.busbw[V_MPI] > 0 && row.busbw[V_OOP] > 0) {
        row.ratio = row.busbw[V_OOP] / row.busbw[V_MPI];
        x->ratio_logsum += log(row.ratio);
        x->ratio_n++;
    }
    progress_clear(x);
    print_row(x, &row);
    if (x->opt.json_path)
        add_row(x, &row);
}

/* Without checking, inputs are filled once per type and op: sane numbers
 * (no NaN or denormals that would time differently). */
static void fill_for_timing(const perf_ctx_t *x, perf_case_t *c)
{
    size_t keep = c->send_elems;
    c->send_elems = x->send_cap / c->type_size;
    fill_input(c, x->send);
    c->send_elems = x->recv_cap / c->type_size;
    fill_input(c, x->recv);
    c->send_elems = keep;
}

static void sweep(perf_ctx_t *x)
{
    int nops = x->coll->has_op ? x->opt.nops : 1;
    size_t step = 0, total = (size_t)x->opt.ntypes * (size_t)nops * x->nsizes;
    for (int t = 0; t < x->opt.ntypes; t++)
        for (int o = 0; o < nops; o++) {
            size_t last = 0;
            int filled = 0;
            for (size_t k = 0; k < x->nsizes; k++, step++) {
                perf_case_t c;
                size_t size = setup_case(x, &c, x->opt.types[t], x->opt.ops[o], x->sizes[k]);
                if (size == 0 || size == last) /* too small for the type, or rounded to the same */
                    continue;
                last = size;
                if (!x->opt.check && !filled) {
                    fill_for_timing(x, &c);
                    filled = 1;
                }
                progress(x, step, total, &c, size);
                run_size(x, &c, size);
            }
        }
    progress_clear(x);
}

static char *join_command(int argc, char **argv)
{
    size_t n = 1;
    for (int k = 0; k < argc; k++)
        n += 4 * strlen(argv[k]) + 3;
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    for (int k = 0; k < argc; k++) {
        const char *a = argv[k];
        int plain = *a != '\0' && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789-_./=,:+@%") == strlen(a);
        if (k)
            *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (; *a; a++)
            p += *a == '\'' ? sprintf(p, "'\\''") : sprintf(p, "%c", *a);
        *p++ = '\'';
    }
    *p = '\0';
    return s;
}

/* Releases everything and ends MPI; every rank passes the same status. */
static int finish(perf_ctx_t *x, int status)
{
    if (x->comm) {
        chorus_comm_finalize(x->comm);
        chorus_comm_destroy(x->comm);
    }
    if (x->json)
        fclose(x->json);
    free_buffers(x);
    free(x->sizes);
    free(x->cmdline);
    MPI_Finalize();
    return status;
}

int perf_main(int argc, char **argv, const perf_coll_t *coll)
{
    perf_ctx_t x;
    memset(&x, 0, sizeof x);
    x.coll = coll;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &x.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &x.nranks);

    /* Options, sizes and the JSON path are checked before anything is created.
     * Every rank sees the same argv, so every rank takes the same decision. */
    int status = parse_options(argc, argv, coll, x.rank, &x.opt);
    if (status < 0 && coll->has_root && x.opt.root >= x.nranks) {
        if (x.rank == 0)
            fprintf(stderr, "%s: -r %d: the root must be below the number of ranks (%d)\n",
                    argv[0], x.opt.root, x.nranks);
        status = 2;
    }
    if (status < 0 && plan_sizes(&x) != 0) {
        if (x.rank == 0)
            fprintf(stderr, "%s: the sweep from -b %zu to -e %zu has more than %d sizes: use a "
                    "larger -i or -f\n", argv[0], x.opt.min_bytes, x.opt.max_bytes,
                    PERF_MAX_SIZES);
        status = 2;
    }
    if (status < 0 && x.rank == 0 && x.opt.json_path && !(x.json = fopen(x.opt.json_path, "w"))) {
        fprintf(stderr, "%s: -J %s: %s\n", argv[0], x.opt.json_path, strerror(errno));
        status = 2;
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (status >= 0)
        return finish(&x, status);

    x.cmdline = join_command(argc, argv);
    x.progress_tty = isatty(2);
    x.t_start = now_s();
    if (x.opt.timeout_s > 0)
        signal(SIGALRM, on_alarm);

    chorus_result_t res = chorus_comm_init_mpi(&x.comm, MPI_COMM_WORLD);
    int ok = res == CHORUS_SUCCESS, all_ok;
    if (!ok) {
        fprintf(stderr, "rank %d: chorus_comm_init_mpi failed: %s: %s\n", x.rank,
                chorus_get_error_string(res), chorus_get_last_error());
        x.comm = NULL;
    }
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok)
        return finish(&x, 3);
    if (alloc_buffers(&x) != 0)
        return finish(&x, 3);

    print_header(&x, argv[0]);
    sweep(&x);

    status = (x.oob || x.wrong) ? 1 : 0;
    if (x.rank == 0) {
        double avg_bw = x.busbw_n ? x.busbw_sum / x.busbw_n : 0;
        double avg_ratio = x.ratio_n ? exp(x.ratio_logsum / x.ratio_n) : 0;
        if (x.opt.check) {
            printf("# Out of bounds values : %llu %s\n", x.oob, x.oob ? "FAILED" : "OK");
            printf("# Wrong values         : %llu %s\n", x.wrong, x.wrong ? "FAILED" : "OK");
        } else {
            printf("# Out of bounds values : not checked (-c 0)\n");
        }
        printf("# Avg bus bandwidth    : %g \n", avg_bw);
        if (x.opt.mpi) {
            if (x.ratio_n)
                printf("# Avg Chorus/MPI ratio : %.3f (geometric mean of busbw ratios over %d "
                       "rows)\n", avg_ratio, x.ratio_n);
            else
                printf("# Avg Chorus/MPI ratio : n/a (no MPI equivalent for this type or op)\n");
        }
        printf("#\n");
        fflush(stdout);
        if (x.json) {
            if (write_json(&x, x.json, avg_bw, avg_ratio) != 0 && status == 0)
                status = 1;
            x.json = NULL; /* closed */
        }
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);

    res = chorus_comm_finalize(x.comm);
    if (res != CHORUS_SUCCESS) {
        fprintf(stderr, "rank %d: chorus_comm_finalize failed: %s: %s\n", x.rank,
                chorus_get_error_string(res), chorus_get_last_error());
        status = 3;
    }
    chorus_comm_destroy(x.comm);
    x.comm = NULL;
    free(x.rows);
    return finish(&x, status);
}
