/* test_util.c - see test_util.h. Nothing here calls Chorus' reduce code. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int tu_rank = 0;
int tu_nranks = 1;
_Atomic long long tu_checks = 0; /* atomic: tests check from helper threads too */
_Atomic long long tu_fails = 0;
int tu_verbose = 0;

static char case_text[512] = "(no case)";
static char category[128];
static int prints_left = TU_MAX_PRINTS;

void tu_init(void)
{
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited) {
        MPI_Comm_rank(MPI_COMM_WORLD, &tu_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &tu_nranks);
    }
    const char *v = getenv("TEST_VERBOSE");
    if (v && *v && strcmp(v, "0") != 0)
        tu_verbose = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
}

void tu_set_case(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(case_text, sizeof case_text, fmt, ap);
    va_end(ap);
    category[0] = '\0';
    if (tu_verbose && tu_rank == 0) {
        printf("[rank 0] case: %s\n", case_text);
        fflush(stdout);
    }
}

const char *tu_case(void) { return case_text; }

/* Failures are counted per category (set by tu_set_category; "" if none):
 * the first TU_MAX_PRINTS of the default category and the first
 * TU_PRINTS_PER_CATEGORY of any other are printed in full. */
#define TU_MAX_CATEGORIES 64
#define TU_PRINTS_PER_CATEGORY 3
static struct {
    char name[128];
    long long fails;
} cats[TU_MAX_CATEGORIES];
static int ncats;
static int total_prints;

void tu_set_category(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(category, sizeof category, fmt, ap);
    va_end(ap);
}

void tu_fail_at(const char *file, int line, const char *fmt, ...)
{
    tu_fails++;
    int c;
    for (c = 0; c < ncats; c++)
        if (!strcmp(cats[c].name, category))
            break;
    if (c == ncats && ncats < TU_MAX_CATEGORIES) {
        snprintf(cats[c].name, sizeof cats[c].name, "%s", category);
        cats[c].fails = 0;
        ncats++;
    }
    long long nth = 0;
    if (c < ncats)
        nth = ++cats[c].fails;
    int limit = category[0] ? TU_PRINTS_PER_CATEGORY : TU_MAX_PRINTS;
    if (nth > limit || total_prints >= 4 * TU_MAX_PRINTS || prints_left <= 0)
        return;
    total_prints++;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *base = strrchr(file, '/');
    printf("[rank %d] FAIL %s: %s (%s:%d)\n", tu_rank, case_text, msg, base ? base + 1 : file,
           line);
    if (nth == limit)
        printf("[rank %d] further failures of category \"%s\" are counted, not printed\n",
               tu_rank, category);
    fflush(stdout);
}

static const char *res_name(chorus_result_t r)
{
    static const char *names[] = {"CHORUS_SUCCESS",        "CHORUS_INVALID_ARGUMENT",
                                  "CHORUS_INVALID_USAGE",  "CHORUS_SYSTEM_ERROR",
                                  "CHORUS_INTERNAL_ERROR", "CHORUS_REMOTE_ERROR",
                                  "CHORUS_TIMEOUT",        "CHORUS_IN_PROGRESS"};
    if ((int)r >= 0 && (int)r < (int)(sizeof names / sizeof names[0]))
        return names[r];
    return "(unknown code)";
}

int tu_check_res_at(const char *file, int line, const char *call, chorus_result_t got,
                    chorus_result_t want)
{
    tu_checks++;
    if (got == want)
        return 1;
    const char *le = chorus_get_last_error();
    tu_fail_at(file, line, "%s returned %d %s, expected %d %s; last error: \"%s\"", call,
               (int)got, res_name(got), (int)want, res_name(want), le ? le : "(NULL)");
    return 0;
}

void tu_log(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("[rank %d] %s\n", tu_rank, msg);
    fflush(stdout);
}

int tu_summary(const char *name)
{
    if (tu_fails) {
        for (int c = 0; c < ncats; c++)
            printf("[rank %d] %lld failures in %s\n", tu_rank, cats[c].fails,
                   cats[c].name[0] ? cats[c].name : "(other checks)");
        fflush(stdout);
    }
    long long v[2] = {tu_checks, tu_fails};
    tu_allreduce_ll(v, 2, MPI_SUM, MPI_COMM_WORLD);
    if (tu_rank == 0) {
        if (v[1] == 0)
            printf("ok %s np=%d: %lld checks\n", name, tu_nranks, v[0]);
        else
            printf("FAIL %s np=%d: %lld failures (of %lld checks)\n", name, tu_nranks, v[1],
                   v[0]);
        fflush(stdout);
    }
    return v[1] == 0 ? 0 : 1;
}

/* ---- MPI helpers ----------------------------------------------------------- */

double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void tu_mpi_wait(MPI_Request *req)
{
    int done = 0;
    for (int spins = 0;; spins++) {
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done)
            return;
        if (spins < 20)
            sched_yield();
        else
            usleep(spins < 1000 ? 50 : 500);
    }
}

void tu_barrier(MPI_Comm comm)
{
    MPI_Request r;
    MPI_Ibarrier(comm, &r);
    tu_mpi_wait(&r);
}

void tu_allreduce_ll(long long *vals, int n, MPI_Op op, MPI_Comm comm)
{
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, vals, n, MPI_LONG_LONG, op, comm, &r);
    tu_mpi_wait(&r);
}

void tu_allgather_u64(uint64_t mine, uint64_t *all, MPI_Comm comm)
{
    MPI_Request r;
    MPI_Iallgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, comm, &r);
    tu_mpi_wait(&r);
}

void tu_bcast(void *buf, int bytes, int root, MPI_Comm comm)
{
    MPI_Request r;
    MPI_Ibcast(buf, bytes, MPI_BYTE, root, comm, &r);
    tu_mpi_wait(&r);
}

int tu_any(int flag, MPI_Comm comm)
{
    long long v = flag;
    tu_allreduce_ll(&v, 1, MPI_MAX, comm);
    return (int)v;
}

/* ---- types -------------------------------------------------------------------- */

size_t tu_type_size(chorus_datatype_t t)
{
    switch (t) {
    case CHORUS_INT8: case CHORUS_UINT8: return 1;
    case CHORUS_FLOAT16: case CHORUS_BFLOAT16: return 2;
    case CHORUS_INT32: case CHORUS_UINT32: case CHORUS_FLOAT32: return 4;
    case CHORUS_INT64: case CHORUS_UINT64: case CHORUS_FLOAT64: return 8;
    default: return 0;
    }
}

const char *tu_type_name(chorus_datatype_t t)
{
    static const char *names[] = {"int8",    "uint8",    "int32",   "uint32",  "int64",
                                  "uint64",  "float16",  "bfloat16", "float32", "float64"};
    return (int)t >= 0 && (int)t < TU_NUM_TYPES ? names[t] : "badtype";
}

const char *tu_op_name(int op)
{
    static const char *names[] = {"sum", "prod", "min", "max", "avg"};
    if (op == TU_OP_NONE)
        return "-";
    return op >= 0 && op < TU_NUM_OPS ? names[op] : "badop";
}

int tu_type_is_float(chorus_datatype_t t)
{
    return t == CHORUS_FLOAT16 || t == CHORUS_BFLOAT16 || t == CHORUS_FLOAT32 ||
           t == CHORUS_FLOAT64;
}

int tu_type_is_signed(chorus_datatype_t t)
{
    return t == CHORUS_INT8 || t == CHORUS_INT32 || t == CHORUS_INT64;
}

/* ---- fp16 / bf16 ---------------------------------------------------------------- */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t tu_float_to_half(float f)
{
    uint32_t x = f2u(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t mant = x & 0x7fffffu;
    if (exp == 0xffu) /* inf or NaN (keep it a NaN: set the quiet bit) */
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* half subnormal: value = m * 2^-24 */
        int shift = 14 - e;
        if (shift > 24)
            return (uint16_t)sign;
        uint32_t full = mant | 0x800000u;
        uint32_t m = full >> shift;
        uint32_t rem = full & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (m & 1)))
            m++;
        return (uint16_t)(sign | m);
    }
    uint32_t h = sign | ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++; /* a carry into the exponent is right, up to inf */
    return (uint16_t)h;
}

float tu_half_to_float(uint16_t h)
{
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        float v = (float)mant * (1.0f / 16777216.0f); /* exact */
        return sign ? -v : v;
    }
    if (exp == 31)
        return u2f(sign | 0x7f800000u | (mant << 13));
    return u2f(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t tu_float_to_bf16(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu))
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float tu_bf16_to_float(uint16_t b) { return u2f((uint32_t)b << 16); }

int tu_selftest_conversions(void)
{
    int errors = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = tu_half_to_float((uint16_t)h);
        int is_nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
        if (is_nan) {
            errors += f == f; /* must be NaN */
            errors += (tu_float_to_half(f) & 0x7fffu) <= 0x7c00u;
        } else {
            errors += tu_float_to_half(f) != h;
        }
        float b = tu_bf16_to_float((uint16_t)h);
        int b_nan = (h & 0x7f80u) == 0x7f80u && (h & 0x7fu);
        if (b_nan)
            errors += b == b;
        else
            errors += tu_float_to_bf16(b) != h;
    }
    /* known values */
    errors += tu_float_to_half(1.0f) != 0x3c00u;
    errors += tu_float_to_half(-2.0f) != 0xc000u;
    errors += tu_float_to_half(65504.0f) != 0x7bffu;
    errors += tu_float_to_half(65520.0f) != 0x7c00u;      /* rounds up to inf */
    errors += tu_float_to_half(65519.0f) != 0x7bffu;
    errors += tu_float_to_half(1.0f + 0x1p-11f) != 0x3c00u; /* tie to even (down) */
    errors += tu_float_to_half(1.0f + 0x3p-11f) != 0x3c02u; /* tie to even (up) */
    errors += tu_float_to_half(0x1p-24f) != 0x0001u;        /* smallest subnormal */
    errors += tu_float_to_half(0x1p-25f) != 0x0000u;        /* tie to even: 0 */
    errors += tu_float_to_half(0x1.8p-25f) != 0x0001u;
    errors += tu_float_to_half(0x1p-14f) != 0x0400u; /* smallest normal */
    errors += tu_float_to_half(0x1.ff8p-15f) != 0x03ffu; /* largest subnormal */
    errors += tu_float_to_half(0x1.ffcp-15f) != 0x0400u; /* tie rounds into the normals */
    errors += tu_float_to_bf16(1.0f) != 0x3f80u;
    errors += tu_float_to_bf16(1.0f + 0x1p-8f) != 0x3f80u;  /* tie to even (down) */
    errors += tu_float_to_bf16(1.0f + 0x3p-8f) != 0x3f82u;  /* tie to even (up) */
    errors += tu_float_to_bf16(3.4e38f) != 0x7f80u;        /* rounds to inf */
    errors += tu_float_to_bf16(3.3895314e38f) != 0x7f7fu;  /* largest finite */
    return errors;
}

/* ---- elements -------------------------------------------------------------------- */

uint64_t tu_load(chorus_datatype_t t, const void *buf, size_t i)
{
    size_t ts = tu_type_size(t);
    uint64_t v = 0;
    const unsigned char *p = (const unsigned char *)buf + i * ts;
    switch (ts) {
    case 1: { uint8_t x; memcpy(&x, p, 1); v = x; break; }
    case 2: { uint16_t x; memcpy(&x, p, 2); v = x; break; }
    case 4: { uint32_t x; memcpy(&x, p, 4); v = x; break; }
    case 8: { memcpy(&v, p, 8); break; }
    default: break;
    }
    return v;
}

void tu_store(chorus_datatype_t t, void *buf, size_t i, uint64_t bits)
{
    size_t ts = tu_type_size(t);
    unsigned char *p = (unsigned char *)buf + i * ts;
    switch (ts) {
    case 1: { uint8_t x = (uint8_t)bits; memcpy(p, &x, 1); break; }
    case 2: { uint16_t x = (uint16_t)bits; memcpy(p, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t)bits; memcpy(p, &x, 4); break; }
    case 8: { memcpy(p, &bits, 8); break; }
    default: break;
    }
}

static uint64_t type_mask(chorus_datatype_t t)
{
    size_t ts = tu_type_size(t);
    return ts >= 8 ? ~(uint64_t)0 : (((uint64_t)1 << (ts * 8)) - 1);
}

static int64_t sign_extend(chorus_datatype_t t, uint64_t bits)
{
    switch (t) {
    case CHORUS_INT8: return (int8_t)(uint8_t)bits;
    case CHORUS_INT32: return (int32_t)(uint32_t)bits;
    case CHORUS_INT64: { int64_t v; memcpy(&v, &bits, 8); return v; }
    default: return (int64_t)bits;
    }
}

double tu_bits_to_double(chorus_datatype_t t, uint64_t bits)
{
    switch (t) {
    case CHORUS_FLOAT16: return tu_half_to_float((uint16_t)bits);
    case CHORUS_BFLOAT16: return tu_bf16_to_float((uint16_t)bits);
    case CHORUS_FLOAT32: return u2f((uint32_t)bits);
    case CHORUS_FLOAT64: { double d; memcpy(&d, &bits, 8); return d; }
    default:
        if (tu_type_is_signed(t))
            return (double)sign_extend(t, bits);
        return (double)bits;
    }
}

static float bits_to_float(chorus_datatype_t t, uint64_t bits)
{
    switch (t) {
    case CHORUS_FLOAT16: return tu_half_to_float((uint16_t)bits);
    case CHORUS_BFLOAT16: return tu_bf16_to_float((uint16_t)bits);
    default: return u2f((uint32_t)bits);
    }
}

static uint64_t float_to_bits(chorus_datatype_t t, float f)
{
    switch (t) {
    case CHORUS_FLOAT16: return tu_float_to_half(f);
    case CHORUS_BFLOAT16: return tu_float_to_bf16(f);
    default: return f2u(f);
    }
}

uint64_t tu_float_bits(chorus_datatype_t t, double v)
{
    if (t == CHORUS_FLOAT64) {
        uint64_t b;
        memcpy(&b, &v, 8);
        return b;
    }
    /* double -> float is exact for every value the patterns make, then RNE */
    return float_to_bits(t, (float)v);
}

/* ---- patterns ---------------------------------------------------------------------- */

uint64_t tu_hash(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t z = seed ^ (a + 1) * 0x9E3779B97F4A7C15ull ^ b * 0xD1B54A32D192ED03ull;
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A value in [0, k) from hash h (k >= 1). */
static uint64_t pick(uint64_t h, uint64_t k)
{
    if (k <= 0xffffffffull)
        return ((h >> 32) * k) >> 32;
    return h % k;
}

uint64_t tu_gen(chorus_datatype_t t, int op, int nranks, uint64_t seed, int rank, size_t idx)
{
    uint64_t h = tu_hash(seed, (uint64_t)rank, (uint64_t)idx);
    uint64_t n = nranks > 0 ? (uint64_t)nranks : 1;
    if (op == TU_OP_NONE)
        return h & type_mask(t);
    if (!tu_type_is_float(t)) {
        uint64_t mask = type_mask(t);
        switch (op) {
        case CHORUS_SUM: case CHORUS_MIN: case CHORUS_MAX:
            return h & mask; /* any value: SUM wraps, well defined */
        case CHORUS_PROD:
            if (tu_type_is_signed(t)) {
                static const int64_t v[] = {1, 2, 3, -1};
                return (uint64_t)v[pick(h, 4)] & mask;
            }
            return (uint64_t)(1 + pick(h, 3));
        default: { /* AVG: the sum must not overflow */
            if (tu_type_is_signed(t)) {
                uint64_t r = (mask >> 1) / n; /* |v| <= max / n */
                return (pick(h, 2 * r + 1) - r) & mask; /* wraps: two's complement */
            }
            return pick(h, mask / n + (mask / n < mask ? 1 : 0));
        }
        }
    }
    double v;
    switch (op) {
    case CHORUS_SUM: case CHORUS_AVG: {
        /* integers (fp16, bf16) or eighths (fp32, fp64) whose partial sums
         * over nranks ranks are all exact */
        uint64_t k;
        double scale = 1.0;
        switch (t) {
        case CHORUS_FLOAT16: k = 2048 / n; break;
        case CHORUS_BFLOAT16: k = 256 / n; break;
        case CHORUS_FLOAT32: k = ((uint64_t)1 << 23) / n; scale = 0.125; break;
        default: k = ((uint64_t)1 << 50) / n; scale = 0.125; break;
        }
        if (k > 0)
            k--;
        v = (double)((int64_t)pick(h, 2 * k + 1) - (int64_t)k) * scale;
        break;
    }
    case CHORUS_PROD: {
        static const double pv[] = {1.0, 2.0, -1.0, 0.5, -2.0, -0.5};
        v = nranks <= 14 ? pv[pick(h, 6)] : (pick(h, 2) ? 1.0 : -1.0);
        break;
    }
    default: /* MIN, MAX: any finite value (rounded into the type) */
        v = ((double)pick(h, 20001) - 10000.0) / 16.0;
        break;
    }
    return tu_float_bits(t, v);
}

void tu_fill(chorus_datatype_t t, int op, int nranks, uint64_t seed, int rank, void *buf,
             size_t first, size_t count)
{
    for (size_t i = 0; i < count; i++)
        tu_store(t, buf, i, tu_gen(t, op, nranks, seed, rank, first + i));
}

uint64_t tu_ref_reduce(chorus_datatype_t t, int op, int nranks, uint64_t seed, size_t idx)
{
    if (!tu_type_is_float(t)) {
        uint64_t mask = type_mask(t);
        int sgn = tu_type_is_signed(t);
        uint64_t acc = tu_gen(t, op, nranks, seed, 0, idx);
        int64_t sacc = sign_extend(t, acc);
        for (int r = 1; r < nranks; r++) {
            uint64_t b = tu_gen(t, op, nranks, seed, r, idx);
            int64_t sb = sign_extend(t, b);
            switch (op) {
            case CHORUS_SUM: acc += b; break;
            case CHORUS_PROD: acc = sgn ? acc * (uint64_t)sb : acc * b; break;
            case CHORUS_MIN:
                if (sgn ? sb < sacc : b < acc) { acc = b; sacc = sb; }
                break;
            case CHORUS_MAX:
                if (sgn ? sb > sacc : b > acc) { acc = b; sacc = sb; }
                break;
            default: /* AVG: exact sum (the pattern keeps it in range) */
                if (sgn) sacc += sb; else acc += b;
                break;
            }
            if (op == CHORUS_SUM || op == CHORUS_PROD)
                acc &= mask;
        }
        if (op == CHORUS_AVG) {
            if (sgn)
                return (uint64_t)(sacc / (int64_t)nranks) & mask; /* truncates toward 0 */
            return (acc / (uint64_t)nranks) & mask;
        }
        return acc & mask;
    }
    if (t == CHORUS_FLOAT64) {
        double acc = tu_bits_to_double(t, tu_gen(t, op, nranks, seed, 0, idx));
        for (int r = 1; r < nranks; r++) {
            double v = tu_bits_to_double(t, tu_gen(t, op, nranks, seed, r, idx));
            switch (op) {
            case CHORUS_SUM: case CHORUS_AVG: acc += v; break;
            case CHORUS_PROD: acc *= v; break;
            case CHORUS_MIN: acc = v < acc ? v : acc; break;
            default: acc = v > acc ? v : acc; break;
            }
        }
        if (op == CHORUS_AVG)
            acc /= (double)nranks;
        return tu_float_bits(t, acc);
    }
    float acc = bits_to_float(t, tu_gen(t, op, nranks, seed, 0, idx));
    for (int r = 1; r < nranks; r++) {
        float v = bits_to_float(t, tu_gen(t, op, nranks, seed, r, idx));
        switch (op) {
        case CHORUS_SUM: case CHORUS_AVG: acc += v; break;
        case CHORUS_PROD: acc *= v; break;
        case CHORUS_MIN: acc = v < acc ? v : acc; break;
        default: acc = v > acc ? v : acc; break;
        }
    }
    if (op == CHORUS_AVG)
        acc /= (float)nranks;
    return float_to_bits(t, acc);
}

int tu_elem_ok(chorus_datatype_t t, int op, uint64_t got, uint64_t exp)
{
    if (got == exp)
        return 1;
    if (op == TU_OP_NONE || !tu_type_is_float(t))
        return 0;
    double g = tu_bits_to_double(t, got), e = tu_bits_to_double(t, exp);
    if (g == e)
        return 1; /* +0 and -0 */
    if (op != CHORUS_AVG || g != g || e != e)
        return 0;
    double eps;
    switch (t) {
    case CHORUS_FLOAT16: eps = 0x1p-10; break;
    case CHORUS_BFLOAT16: eps = 0x1p-7; break;
    case CHORUS_FLOAT32: eps = 0x1p-23; break;
    default: eps = 0x1p-52; break;
    }
    double mag = fabs(e) > 1e-30 ? fabs(e) : 1e-30;
    return fabs(g - e) <= 2.0 * eps * mag;
}

size_t tu_check_elems(const char *what, chorus_datatype_t t, int op, const void *buf,
                      size_t count, tu_expect_fn expect, const void *ctx)
{
    size_t wrong = 0, first = 0;
    uint64_t fg = 0, fe = 0;
    tu_checks++;
    for (size_t i = 0; i < count; i++) {
        uint64_t g = tu_load(t, buf, i);
        uint64_t e = expect(ctx, i);
        if (!tu_elem_ok(t, op, g, e)) {
            if (!wrong) {
                first = i;
                fg = g;
                fe = e;
            }
            wrong++;
        }
    }
    if (wrong) {
        tu_checks--; /* tu_fail_at via CHECK counts it again */
        unsigned w = (unsigned)tu_type_size(t) * 2;
        CHECK(0,
              "%s: %zu of %zu elements wrong; first wrong index %zu: got 0x%0*llx (%.17g) "
              "expected 0x%0*llx (%.17g)",
              what, wrong, count, first, (int)w, (unsigned long long)fg,
              tu_bits_to_double(t, fg), (int)w, (unsigned long long)fe,
              tu_bits_to_double(t, fe));
    }
    return wrong;
}

int tu_check_bytes(const char *what, const void *buf, size_t n, unsigned char b)
{
    const unsigned char *p = buf;
    size_t wrong = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] != b && !wrong++)
            first = i;
    CHECK(!wrong, "%s: %zu of %zu bytes changed; first at byte %zu: 0x%02x, expected 0x%02x",
          what, wrong, n, first, wrong ? p[first] : 0, b);
    return !wrong;
}

uint64_t tu_fnv1a(const void *buf, size_t n)
{
    const unsigned char *p = buf;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- guarded buffers ----------------------------------------------------------------- */

static unsigned char guard_byte(size_t k) { return (unsigned char)(0xA5u ^ (k * 31u)); }

static void *(*buf_alloc)(size_t bytes) = malloc;
static void (*buf_release)(void *p) = free;

void tu_buf_set_allocator(void *(*alloc)(size_t bytes), void (*release)(void *p))
{
    buf_alloc = alloc ? alloc : malloc;
    buf_release = release ? release : free;
}

int tu_buf_alloc(tu_buf_t *b, size_t bytes, size_t misalign)
{
    size_t pre = TU_GUARD + misalign;
    b->base = buf_alloc(pre + bytes + TU_GUARD);
    if (!b->base) {
        b->ptr = NULL;
        return -1;
    }
    b->ptr = b->base + pre;
    b->bytes = bytes;
    b->misalign = misalign;
    for (size_t k = 0; k < pre; k++)
        b->base[k] = guard_byte(k);
    memset(b->ptr, TU_SENTINEL, bytes);
    for (size_t k = 0; k < TU_GUARD; k++)
        b->ptr[bytes + k] = guard_byte(k + 1000);
    return 0;
}

int tu_buf_check_guards(const tu_buf_t *b, const char *what)
{
    size_t pre = TU_GUARD + b->misalign;
    long bad = -1;
    for (size_t k = 0; k < pre && bad < 0; k++)
        if (b->base[k] != guard_byte(k))
            bad = (long)k - (long)pre;
    for (size_t k = 0; k < TU_GUARD && bad < 0; k++)
        if (b->ptr[b->bytes + k] != guard_byte(k + 1000))
            bad = (long)(b->bytes + k);
    CHECK(bad < 0, "%s: guard byte at offset %ld (buffer of %zu bytes, misaligned by %zu) was "
                   "overwritten: out-of-bounds write",
          what, bad, b->bytes, b->misalign);
    return bad < 0;
}

void tu_buf_free(tu_buf_t *b)
{
    if (b->base)
        buf_release(b->base);
    b->base = b->ptr = NULL;
}

/* ---- misc --------------------------------------------------------------------------- */

static int count_dir(const char *path, const char *prefix)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (prefix && strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        n++;
    }
    closedir(d);
    return n;
}

int tu_count_fds(void)
{
    int n = count_dir("/proc/self/fd", NULL);
    return n < 0 ? -1 : n - 1; /* the directory's own fd */
}

int tu_count_shm(const char *prefix) { return count_dir("/dev/shm", prefix); }
