/*
 * perf_check.c - what every element must hold, and checking that it does:
 * the per-rank input patterns (chosen so that reductions stay exact), the
 * expected value of a reduction, filling inputs, and the checked calls with
 * guard bytes and poisoned "must not touch" elements around the output.
 *
 * Kept apart from timing and output because it is the part that decides
 * pass or fail, with its own element conversions (fp16 and bf16 included).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "perf_internal.h"

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
void perf_set_pattern(perf_case_t *c, int reduces)
{
    const perf_type_info_t *ti = &perf_type_info[c->type];
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
        if (perf_type_info[c->type].is_float)
            acc /= c->nranks;
        else /* C division truncates toward zero, as the API says */
            acc = (double)((int64_t)acc / (int64_t)c->nranks);
    }
    return acc;
}

/* ---- filling and checking buffers ------------------------------------------ */

/* Bytes of the in-place buffer for this case. */
size_t perf_ip_extent(const perf_case_t *c)
{
    size_t a = c->send_elems + c->ip_send_off, b = c->recv_elems + c->ip_recv_off;
    return (a > b ? a : b) * c->type_size;
}

void perf_fill_input(const perf_case_t *c, void *buf)
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
    const perf_type_info_t *ti = &perf_type_info[t];
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
    double tol = x->coll->reduces_values
                     ? perf_type_info[c->type].eps * (c->nranks > 2 ? c->nranks : 2)
                     : 0;
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
void perf_check_case(const perf_ctx_t *x, const perf_case_t *c, unsigned long long wrong[2],
                     unsigned long long *oob)
{
    size_t ts = c->type_size, rbytes = c->recv_elems * ts;
    perf_fill_input(c, x->send);
    memset(x->recv, PERF_POISON, rbytes);
    poison_guards(x->recv, rbytes);
    perf_run_variant(x, c, V_OOP);
    check_output(x, c, x->recv, 0, &wrong[0], oob);
    *oob += count_guards(x->recv, rbytes);
    wrong[0] += check_input_kept(c, x->send);

    if (!x->coll->has_in_place)
        return;
    size_t ext = perf_ip_extent(c);
    memset(x->recv, PERF_POISON, ext);
    perf_fill_input(c, x->recv + c->ip_send_off * ts);
    poison_guards(x->recv, ext);
    perf_run_variant(x, c, V_IP);
    check_output(x, c, x->recv, 1, &wrong[1], oob);
    *oob += count_guards(x->recv, ext);
}
