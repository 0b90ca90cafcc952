/* test_reduce.c - unit test of the reduction kernels (no MPI).
 *
 * Every kernel set this CPU runs, every type x op, several source counts,
 * element counts and (mis)alignments are compared bit for bit with a
 * straightforward reference written here (NaN results of SUM/PROD/AVG are the
 * canonical quiet NaN; MIN/MAX return the NaN input), and the SIMD sets are
 * compared with the scalar set bit for bit. fp16/bf16 conversions are
 * checked exhaustively and on random floats against reference conversions
 * that use a different method (ldexp/rint and nearest-neighbour distances).
 * Exit status is non-zero on any failure.
 *
 * Usage: test_reduce [seed]
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chorus.h"
#include "reduce.h"

/* ---- bookkeeping ------------------------------------------------------------ */

static unsigned long long checks, failures;
#define MAX_PRINTED 40

#define FAIL(...)                                   \
    do {                                            \
        failures++;                                 \
        if (failures <= MAX_PRINTED) {              \
            printf("FAIL: " __VA_ARGS__);           \
            putchar('\n');                          \
        } else if (failures == MAX_PRINTED + 1) {   \
            printf("FAIL: (further failures not printed)\n"); \
        }                                           \
    } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}
static unsigned rnd_below(unsigned n) { return (unsigned)(rnd() % n); }

static const char *const type_names[CHORUS_NUM_TYPES] = {
    "INT8", "UINT8", "INT32", "UINT32", "INT64", "UINT64", "FLOAT16", "BFLOAT16", "FLOAT32",
    "FLOAT64"};
static const int type_size[CHORUS_NUM_TYPES] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
static const char *const op_names[CHORUS_NUM_OPS] = {"SUM", "PROD", "MIN", "MAX", "AVG"};

static const char *all_isas[] = {"scalar", "avx2", "avx512"};
static const char *isas[3];
static int nisas;

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

/* ---- reference conversions (value arithmetic, not bit tricks) --------------- */

static float ref_h2f(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 31) {
        if (m) /* NaN: quiet, payload kept */
            return u2f((uint32_t)(h & 0x8000) << 16 | 0x7fc00000u | (uint32_t)m << 13);
        v = INFINITY;
    } else if (e == 0) {
        v = ldexpf((float)m, -24);
    } else {
        v = ldexpf((float)(m + 1024), e - 25);
    }
    return (h & 0x8000) ? -v : v;
}

static uint16_t ref_f2h(float f)
{
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    if (isnan(f))
        return (uint16_t)(sign | 0x7e00 | ((u >> 13) & 0x3ff));
    float a = fabsf(f);
    if (a >= 65520.0f)
        return (uint16_t)(sign | 0x7c00);
    if (a < ldexpf(1.0f, -14)) /* subnormal half: multiples of 2^-24 */
        return (uint16_t)(sign | (uint16_t)nearbyintf(ldexpf(a, 24)));
    int e;
    frexpf(a, &e); /* a in [2^(e-1), 2^e) */
    float q = nearbyintf(ldexpf(a, 11 - e)); /* [1024, 2048] */
    int E = e - 1;
    if (q == 2048.0f) {
        q = 1024.0f;
        E++;
    }
    return (uint16_t)(sign | (E + 15) << 10 | ((int)q - 1024));
}

static float ref_bf2f(uint16_t b) { return u2f((uint32_t)b << 16); }

/* nearest of the two bfloat16 neighbours (by distance in double), ties even */
static uint16_t ref_f2bf(float f)
{
    uint32_t u = f2u(f);
    if (isnan(f))
        return (uint16_t)((u >> 16) | 0x40);
    if ((u & 0xffff) == 0)
        return (uint16_t)(u >> 16);
    uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    double vlo = u2f(lo), vhi;
    if ((hi & 0x7fffffffu) == 0x7f800000u)
        vhi = copysign(ldexp(1.0, 128), f);
    else
        vhi = u2f(hi);
    double dlo = fabs((double)f - vlo), dhi = fabs(vhi - (double)f);
    uint32_t r = dlo < dhi ? lo : dhi < dlo ? hi : ((lo >> 16) & 1) ? hi : lo;
    return (uint16_t)(r >> 16);
}

static int half_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }
static int bf16_is_nan(uint16_t b) { return (b & 0x7f80) == 0x7f80 && (b & 0x7f); }

/* ---- reference reduction ---------------------------------------------------- */

static int type_signed(int t)
{
    return t == CHORUS_INT8 || t == CHORUS_INT32 || t == CHORUS_INT64;
}

/* An integer element as its value (sign- or zero-extended). */
static uint64_t rd_int(const unsigned char *p, int t)
{
    switch (t) {
    case CHORUS_INT8: { int8_t v; memcpy(&v, p, 1); return (uint64_t)(int64_t)v; }
    case CHORUS_UINT8: { uint8_t v; memcpy(&v, p, 1); return v; }
    case CHORUS_INT32: { int32_t v; memcpy(&v, p, 4); return (uint64_t)(int64_t)v; }
    case CHORUS_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}
/* Reduces a 64-bit pattern to the type's width, as its value. */
static uint64_t norm_int(uint64_t v, int t)
{
    unsigned char b[8];
    memcpy(b, &v, 8); /* little endian: the low bytes */
    return rd_int(b, t);
}
static int int_less(uint64_t a, uint64_t b, int t)
{
    return type_signed(t) ? (int64_t)a < (int64_t)b : a < b;
}

static float fop(int op, float a, float x) { return op == CHORUS_PROD ? a * x : a + x; }
static double dop(int op, double a, double x) { return op == CHORUS_PROD ? a * x : a + x; }

/* A float element's value (exact in double), for comparisons. */
static double rd_val(const unsigned char *p, int t)
{
    uint16_t h;
    float f;
    double d;
    switch (t) {
    case CHORUS_FLOAT16: memcpy(&h, p, 2); return ref_h2f(h);
    case CHORUS_BFLOAT16: memcpy(&h, p, 2); return ref_bf2f(h);
    case CHORUS_FLOAT32: memcpy(&f, p, 4); return f;
    default: memcpy(&d, p, 8); return d;
    }
}

/* Float MIN/MAX select a source: the running result is replaced by the next
 * source if that is NaN, or if the result is not NaN and the source is
 * smaller (larger). Copies the chosen element (fp16/bf16 NaN: quietened). */
static void ref_minmax(int t, int op, unsigned char *out, unsigned char *const *srcs, int nsrc,
                       size_t o)
{
    int best = 0;
    double a = rd_val(srcs[0] + o, t);
    for (int k = 1; k < nsrc; k++) {
        double x = rd_val(srcs[k] + o, t);
        if (isnan(x) || (!isnan(a) && (op == CHORUS_MIN ? x < a : x > a))) {
            best = k;
            a = x;
        }
    }
    memcpy(out + o, srcs[best] + o, (size_t)type_size[t]);
    if (t == CHORUS_FLOAT16 || t == CHORUS_BFLOAT16) {
        uint16_t h;
        memcpy(&h, out + o, 2);
        if (t == CHORUS_FLOAT16 && half_is_nan(h))
            h |= 0x200;
        if (t == CHORUS_BFLOAT16 && bf16_is_nan(h))
            h |= 0x40;
        memcpy(out + o, &h, 2);
    }
}

static float rd_f(const unsigned char *p, int t)
{
    uint16_t h;
    float f;
    switch (t) {
    case CHORUS_FLOAT16: memcpy(&h, p, 2); return ref_h2f(h);
    case CHORUS_BFLOAT16: memcpy(&h, p, 2); return ref_bf2f(h);
    default: memcpy(&f, p, 4); return f;
    }
}

/* out[i] = reference of element i */
static void ref_reduce(int t, int op, unsigned char *out, unsigned char *const *srcs, int nsrc,
                       size_t count, int avg_div)
{
    size_t es = (size_t)type_size[t];
    int div = avg_div < 1 ? 1 : avg_div;
    const float canon_f = u2f(0x7fc00000u);
    double canon_d;
    uint64_t cd = 0x7ff8000000000000ull;
    memcpy(&canon_d, &cd, 8);
    for (size_t i = 0; i < count; i++) {
        size_t o = i * es;
        if (t >= CHORUS_FLOAT16 && (op == CHORUS_MIN || op == CHORUS_MAX)) {
            ref_minmax(t, op, out, srcs, nsrc, o);
        } else if (t == CHORUS_FLOAT64) {
            double acc, x;
            memcpy(&acc, srcs[0] + o, 8);
            for (int k = 1; k < nsrc; k++) {
                memcpy(&x, srcs[k] + o, 8);
                acc = dop(op, acc, x);
            }
            if (op == CHORUS_AVG)
                acc = acc / (double)div;
            if (isnan(acc))
                acc = canon_d;
            memcpy(out + o, &acc, 8);
        } else if (t == CHORUS_FLOAT32 || t == CHORUS_FLOAT16 || t == CHORUS_BFLOAT16) {
            float acc = rd_f(srcs[0] + o, t);
            for (int k = 1; k < nsrc; k++)
                acc = fop(op, acc, rd_f(srcs[k] + o, t));
            if (op == CHORUS_AVG)
                acc = acc / (float)div;
            if (isnan(acc))
                acc = canon_f;
            if (t == CHORUS_FLOAT32) {
                memcpy(out + o, &acc, 4);
            } else {
                uint16_t h = t == CHORUS_FLOAT16 ? ref_f2h(acc) : ref_f2bf(acc);
                memcpy(out + o, &h, 2);
            }
        } else {
            uint64_t acc = rd_int(srcs[0] + o, t);
            for (int k = 1; k < nsrc; k++) {
                uint64_t x = rd_int(srcs[k] + o, t);
                switch (op) {
                case CHORUS_PROD: acc = norm_int(acc * x, t); break;
                case CHORUS_MIN: if (int_less(x, acc, t)) acc = x; break;
                case CHORUS_MAX: if (int_less(acc, x, t)) acc = x; break;
                default: acc = norm_int(acc + x, t); break;
                }
            }
            if (op == CHORUS_AVG) {
                if (type_signed(t))
                    acc = (uint64_t)((int64_t)acc / (int64_t)div);
                else
                    acc = acc / (uint64_t)div;
            }
            memcpy(out + o, &acc, es); /* low bytes */
        }
    }
}

/* ---- random inputs ------------------------------------------------------------ */

static void gen(int t, int op, unsigned char *p, size_t count)
{
    static const uint16_t half_special[] = {0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0xfe01,
                                            0x7d00, 0x0001, 0x8001, 0x03ff, 0x0400, 0x8000,
                                            0x0000, 0x4c00, 0x4800, 0x3c00, 0x7bfe, 0x0200};
    static const uint16_t bf_special[] = {0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7fa0, 0x0001,
                                          0x8001, 0x007f, 0x0080, 0x7f7f, 0xff7f, 0x8000,
                                          0x0000, 0x3f80, 0xbf80, 0x0040};
    static const uint32_t f_special[] = {0x7fc00000, 0xffc00001, 0x7f800001, 0x7f800000,
                                         0xff800000, 0x00000000, 0x80000000, 0x00800000,
                                         0x00000001, 0x80000007, 0x007fffff, 0x7f7fffff,
                                         0xff7fffff, 0x3f800000, 0xbf800000, 0x33800000};
    static const uint64_t d_special[] = {0x7ff8000000000000ull, 0xfff8000000000001ull,
                                         0x7ff0000000000001ull, 0x7ff0000000000000ull,
                                         0xfff0000000000000ull, 0, 0x8000000000000000ull,
                                         0x0010000000000000ull, 1, 0x800000000000000full,
                                         0x7fefffffffffffffull, 0x3ff0000000000000ull};
    int erange = op == CHORUS_PROD ? 4 : 20;
    for (size_t i = 0; i < count; i++) {
        uint64_t r = rnd();
        unsigned kind = (unsigned)(r >> 60); /* 0..15 */
        switch (t) {
        case CHORUS_FLOAT16: {
            uint16_t h;
            if (kind == 0)
                h = half_special[rnd_below(sizeof half_special / 2)];
            else if (kind < 4)
                h = (uint16_t)r;
            else /* moderate: exponent 15 +- 10 (4 for PROD) */
                h = (uint16_t)((r & 0x83ff) |
                               (uint16_t)(15 - (erange > 10 ? 10 : erange) +
                                          (int)rnd_below(2 * (erange > 10 ? 10 : erange) + 1))
                                   << 10);
            memcpy(p + 2 * i, &h, 2);
            break;
        }
        case CHORUS_BFLOAT16: {
            uint16_t b;
            if (kind == 0)
                b = bf_special[rnd_below(sizeof bf_special / 2)];
            else if (kind < 4)
                b = (uint16_t)r;
            else
                b = (uint16_t)((r & 0x807f) |
                               (uint16_t)(127 - erange + (int)rnd_below(2 * (unsigned)erange + 1))
                                   << 7);
            memcpy(p + 2 * i, &b, 2);
            break;
        }
        case CHORUS_FLOAT32: {
            uint32_t u;
            if (kind == 0)
                u = f_special[rnd_below(sizeof f_special / 4)];
            else if (kind < 3)
                u = (uint32_t)r;
            else
                u = (uint32_t)((r & 0x807fffffu) |
                               (uint32_t)(127 - erange + (int)rnd_below(2 * (unsigned)erange + 1))
                                   << 23);
            memcpy(p + 4 * i, &u, 4);
            break;
        }
        case CHORUS_FLOAT64: {
            uint64_t u;
            if (kind == 0)
                u = d_special[rnd_below(sizeof d_special / 8)];
            else if (kind < 3)
                u = r;
            else
                u = (r & 0x800fffffffffffffull) |
                    (uint64_t)(1023 - erange + (int)rnd_below(2 * (unsigned)erange + 1)) << 52;
            memcpy(p + 8 * i, &u, 8);
            break;
        }
        default: {
            /* integers: full range, with small values now and then (PROD) */
            uint64_t v = kind < 4 ? (r & 7) - 3 : r;
            memcpy(p + (size_t)type_size[t] * i, &v, (size_t)type_size[t]);
            break;
        }
        }
    }
}

/* ---- comparing ------------------------------------------------------------------ */

/* Bit-exact comparison of one element. */
static int elem_equal(int t, const unsigned char *got, const unsigned char *want)
{
    return !memcmp(got, want, (size_t)type_size[t]);
}

static void hex(char *buf, const unsigned char *p, size_t n)
{
    buf += sprintf(buf, "0x");
    for (size_t i = n; i-- > 0;)
        buf += sprintf(buf, "%02x", p[i]);
}

/* Runs one case on every ISA: sources (already filled) at srcs; dst_alias
 * >= 0: dst is srcs[dst_alias] (restored from orig before each run). */
static void run_case(int t, int op, int nsrc, size_t count, int avg_div, unsigned char **srcs,
                     int dst_alias, size_t dst_off, const char *what)
{
    size_t es = (size_t)type_size[t], bytes = count * es;
    unsigned char *want = malloc(bytes + 1);
    unsigned char *first = malloc(bytes + 1);
    unsigned char *orig = malloc(bytes + 1);
    unsigned char *dstbuf = malloc(dst_off + bytes + 64);
    if (!want || !first || !orig || !dstbuf) {
        printf("FAIL: out of memory\n");
        exit(2);
    }
    ref_reduce(t, op, want, srcs, nsrc, count, avg_div);
    if (dst_alias >= 0)
        memcpy(orig, srcs[dst_alias], bytes);
    for (int ii = 0; ii < nisas; ii++) {
        unsigned char *dst;
        if (dst_alias >= 0) {
            memcpy(srcs[dst_alias], orig, bytes);
            dst = srcs[dst_alias];
        } else {
            memset(dstbuf, 0xa5, dst_off + bytes + 64);
            dst = dstbuf + dst_off;
        }
        int rc = chorus_reduce_many_isa(isas[ii], (chorus_datatype_t)t, (chorus_op_t)op, dst,
                                        (const void *const *)srcs, nsrc, count, avg_div);
        checks++;
        if (rc != 0) {
            FAIL("%s: chorus_reduce_many_isa(%s) returned %d", what, isas[ii], rc);
            continue;
        }
        if (dst_alias < 0) {
            for (size_t b = 0; b < dst_off; b++)
                if (dstbuf[b] != 0xa5) {
                    FAIL("%s isa=%s %s %s nsrc=%d count=%zu: wrote before dst", what, isas[ii],
                         type_names[t], op_names[op], nsrc, count);
                    break;
                }
            for (size_t b = dst_off + bytes; b < dst_off + bytes + 64; b++)
                if (dstbuf[b] != 0xa5) {
                    FAIL("%s isa=%s %s %s nsrc=%d count=%zu: wrote past dst", what, isas[ii],
                         type_names[t], op_names[op], nsrc, count);
                    break;
                }
        }
        for (size_t i = 0; i < count; i++) {
            if (!elem_equal(t, dst + i * es, want + i * es)) {
                char g[40], w[40], in[8][40];
                hex(g, dst + i * es, es);
                hex(w, want + i * es, es);
                for (int k = 0; k < nsrc && k < 8; k++)
                    hex(in[k], (dst_alias == k ? orig : srcs[k]) + i * es, es);
                FAIL("%s isa=%s %s %s nsrc=%d count=%zu avg_div=%d elem=%zu: got %s want %s "
                     "(inputs %s %s %s%s)",
                     what, isas[ii], type_names[t], op_names[op], nsrc, count, avg_div, i, g, w,
                     in[0], nsrc > 1 ? in[1] : "", nsrc > 2 ? in[2] : "", nsrc > 3 ? " ..." : "");
                break;
            }
        }
        /* all ISAs bit-identical to the first (scalar) */
        if (ii == 0) {
            memcpy(first, dst, bytes);
        } else if (memcmp(first, dst, bytes)) {
            size_t i = 0;
            while (memcmp(first + i * es, dst + i * es, es))
                i++;
            for (i = 0; i < count && !memcmp(first + i * es, dst + i * es, es); i++)
                ;
            char g[40], w[40];
            hex(g, dst + i * es, es);
            hex(w, first + i * es, es);
            FAIL("%s isa=%s %s %s nsrc=%d count=%zu: not bit-identical to %s at elem %zu: %s vs "
                 "%s",
                 what, isas[ii], type_names[t], op_names[op], nsrc, count, isas[0], i, g, w);
        }
    }
    if (dst_alias >= 0)
        memcpy(srcs[dst_alias], orig, bytes);
    free(want);
    free(first);
    free(orig);
    free(dstbuf);
}

/* ---- the test matrix ------------------------------------------------------------ */

static void test_matrix(void)
{
    static const int nsrcs[] = {1, 2, 3, 5, 8, 9, 17};
    static const size_t counts[] = {0, 1, 2, 7, 15, 16, 17, 63, 64, 65, 1000, 4099};
    for (int t = 0; t < CHORUS_NUM_TYPES; t++)
        for (int op = 0; op < CHORUS_NUM_OPS; op++)
            for (size_t ni = 0; ni < sizeof nsrcs / sizeof nsrcs[0]; ni++)
                for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++)
                    for (int variant = 0; variant < 3; variant++) {
                        int nsrc = nsrcs[ni];
                        size_t count = counts[ci], es = (size_t)type_size[t];
                        /* big nsrc only on some counts, to keep the run short */
                        if (nsrc > 8 && count > 17 && count != 1000 && count != 4099)
                            continue;
                        unsigned char *bufs[17], *srcs[17];
                        size_t dst_off = 0;
                        for (int k = 0; k < nsrc; k++) {
                            /* 0: as malloc gives; 1: element-aligned, not vector
                             * aligned; 2: not even element-aligned */
                            size_t off = variant == 0   ? 0
                                         : variant == 1 ? es * (size_t)(k + 1) % 64
                                                        : (size_t)(2 * k + 3) % 61;
                            bufs[k] = malloc(off + count * es + 1);
                            srcs[k] = bufs[k] + off;
                            gen(t, op, srcs[k], count);
                        }
                        dst_off = variant == 0 ? 0 : variant == 1 ? es * 5 % 64 : 1;
                        int avg_div = op == CHORUS_AVG ? (variant == 2 ? 3 : nsrc) : 0;
                        run_case(t, op, nsrc, count, avg_div, srcs, -1, dst_off, "matrix");
                        for (int k = 0; k < nsrc; k++)
                            free(bufs[k]);
                    }
}

static void test_alias(void)
{
    static const int nsrcs[] = {1, 2, 3, 8, 9, 17};
    static const size_t counts[] = {1, 17, 1000, 4099};
    for (int t = 0; t < CHORUS_NUM_TYPES; t++)
        for (int op = 0; op < CHORUS_NUM_OPS; op++)
            for (size_t ni = 0; ni < sizeof nsrcs / sizeof nsrcs[0]; ni++)
                for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
                    int nsrc = nsrcs[ni];
                    size_t count = counts[ci], es = (size_t)type_size[t];
                    unsigned char *srcs[17];
                    for (int k = 0; k < nsrc; k++) {
                        srcs[k] = malloc(count * es);
                        gen(t, op, srcs[k], count);
                    }
                    int aliases[3] = {0, nsrc / 2, nsrc - 1};
                    for (int a = 0; a < 3; a++) {
                        if (a > 0 && aliases[a] == aliases[a - 1])
                            continue;
                        run_case(t, op, nsrc, count, nsrc, srcs, aliases[a], 0, "alias");
                    }
                    for (int k = 0; k < nsrc; k++)
                        free(srcs[k]);
                }
}

/* Hand-picked values with a known answer. */
static void expect16(const char *what, int t, int op, int nsrc, const uint16_t *const *srcs,
                     const uint16_t *want, size_t count, int avg_div)
{
    uint16_t got[64];
    for (int ii = 0; ii < nisas; ii++) {
        chorus_reduce_many_isa(isas[ii], (chorus_datatype_t)t, (chorus_op_t)op, got,
                               (const void *const *)srcs, nsrc, count, avg_div);
        for (size_t i = 0; i < count; i++) {
            checks++;
            if (got[i] != want[i])
                FAIL("%s isa=%s elem %zu: got 0x%04x want 0x%04x", what, isas[ii], i, got[i],
                     want[i]);
        }
    }
}

static void test_specials(void)
{
    /* fp16 near overflow: 65504 + 16 = 65520 -> inf (tie, to even), 65504 + 8 -> 65504,
     * 65504 + 15.99 -> 65504, -65504 - 16 -> -inf, 65504 + 1 -> 65504; 32 copies so the
     * SIMD paths see them too. */
    uint16_t a[32], b[32], w[32];
    static const uint16_t a0[5] = {0x7bff, 0x7bff, 0x7bff, 0xfbff, 0x7bff};
    static const uint16_t b0[5] = {0x4c00, 0x4800, 0x4bff, 0xcc00, 0x3c00};
    static const uint16_t w0[5] = {0x7c00, 0x7bff, 0x7bff, 0xfc00, 0x7bff};
    for (int i = 0; i < 32; i++) {
        a[i] = a0[i % 5];
        b[i] = b0[i % 5];
        w[i] = w0[i % 5];
    }
    const uint16_t *s2[2] = {a, b};
    expect16("fp16 overflow", CHORUS_FLOAT16, CHORUS_SUM, 2, s2, w, 32, 0);

    /* fp16: 1 + 2^-11 is a tie -> 1 (even); 1 + 3*2^-11 -> 1 + 2^-9 (even, up) */
    for (int i = 0; i < 32; i++) {
        a[i] = 0x3c00;
        b[i] = i & 1 ? 0x1600 /* 3*2^-11 */ : 0x1000 /* 2^-11 */;
        w[i] = i & 1 ? 0x3c02 : 0x3c00;
    }
    expect16("fp16 ties", CHORUS_FLOAT16, CHORUS_SUM, 2, s2, w, 32, 0);

    /* bf16: 1 + 2^-8 is a tie -> 1; 1 + 3*2^-8 -> 1 + 2^-6 */
    for (int i = 0; i < 32; i++) {
        a[i] = 0x3f80;
        b[i] = i & 1 ? 0x3c40 : 0x3b80;
        w[i] = i & 1 ? 0x3f82 : 0x3f80;
    }
    expect16("bf16 ties", CHORUS_BFLOAT16, CHORUS_SUM, 2, s2, w, 32, 0);

    /* bf16 max + max -> inf; fp16 and bf16 -0 + -0 -> -0, -0 + 0 -> +0 */
    for (int i = 0; i < 32; i++) {
        a[i] = i % 3 == 0 ? 0x7f7f : 0x8000;
        b[i] = i % 3 == 0 ? 0x7f7f : i % 3 == 1 ? 0x8000 : 0x0000;
        w[i] = i % 3 == 0 ? 0x7f80 : i % 3 == 1 ? 0x8000 : 0x0000;
    }
    expect16("bf16 overflow / signed zeros", CHORUS_BFLOAT16, CHORUS_SUM, 2, s2, w, 32, 0);

    /* fp16 subnormals: 2^-24 + 2^-24 = 2^-23; AVG of (2^-24, 0) over 2 -> tie -> 0 */
    for (int i = 0; i < 32; i++) {
        a[i] = 0x0001;
        b[i] = i & 1 ? 0x0001 : 0x0000;
        w[i] = i & 1 ? 0x0002 : 0x0001;
    }
    expect16("fp16 subnormal sum", CHORUS_FLOAT16, CHORUS_SUM, 2, s2, w, 32, 0);
    for (int i = 0; i < 32; i++)
        w[i] = i & 1 ? 0x0001 : 0x0000;
    expect16("fp16 subnormal avg", CHORUS_FLOAT16, CHORUS_AVG, 2, s2, w, 32, 2);

    /* float MIN/MAX: a NaN at any source position wins */
    for (int op = CHORUS_MIN; op <= CHORUS_MAX; op++)
        for (int pos = 0; pos < 3; pos++) {
            float f[3][40], got[40];
            const float *s3[3] = {f[0], f[1], f[2]};
            for (int k = 0; k < 3; k++)
                for (int i = 0; i < 40; i++)
                    f[k][i] = k == pos && (i % 3) ? NAN : (float)(k * 10 - i);
            for (int ii = 0; ii < nisas; ii++) {
                chorus_reduce_many_isa(isas[ii], CHORUS_FLOAT32, (chorus_op_t)op, got,
                                       (const void *const *)s3, 3, 40, 0);
                for (int i = 0; i < 40; i++) {
                    checks++;
                    if ((i % 3 != 0) != !!isnan(got[i]))
                        FAIL("float %s NaN at source %d isa=%s elem %d: got %g",
                             op_names[op], pos, isas[ii], i, (double)got[i]);
                }
            }
        }

    /* avg_div < 1 is treated as 1 (no division by zero) */
    {
        int32_t x[20], y[20], got[20];
        const int32_t *s[2] = {x, y};
        for (int i = 0; i < 20; i++) {
            x[i] = i;
            y[i] = 100;
        }
        for (int ii = 0; ii < nisas; ii++) {
            chorus_reduce_many_isa(isas[ii], CHORUS_INT32, CHORUS_AVG, got,
                                   (const void *const *)s, 2, 20, 0);
            for (int i = 0; i < 20; i++) {
                checks++;
                if (got[i] != i + 100)
                    FAIL("INT32 AVG avg_div=0 isa=%s elem %d: got %d", isas[ii], i, got[i]);
            }
        }
    }
    /* unknown ISA name */
    checks++;
    {
        float x = 1, y;
        const float *s[1] = {&x};
        if (chorus_reduce_many_isa("sse9", CHORUS_FLOAT32, CHORUS_SUM, &y,
                                   (const void *const *)s, 1, 1, 0) != -1)
            FAIL("chorus_reduce_many_isa(\"sse9\") did not return -1");
    }
}

/* ---- conversions ------------------------------------------------------------------ */

static void check_f2h(float f)
{
    uint16_t got = chorus_float_to_half(f), want = ref_f2h(f);
    checks++;
    if (got != want)
        FAIL("float_to_half(%a = 0x%08x): got 0x%04x want 0x%04x", (double)f, f2u(f), got,
             want);
}

static void check_f2bf(float f)
{
    uint16_t got = chorus_float_to_bf16(f), want = ref_f2bf(f);
    checks++;
    if (got != want)
        FAIL("float_to_bf16(%a = 0x%08x): got 0x%04x want 0x%04x", (double)f, f2u(f), got,
             want);
}

static void test_conversions(void)
{
    /* all 65536 patterns both ways */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = chorus_half_to_float((unsigned short)h), wf = ref_h2f((uint16_t)h);
        checks++;
        if (f2u(f) != f2u(wf))
            FAIL("half_to_float(0x%04x): got 0x%08x want 0x%08x", h, f2u(f), f2u(wf));
        uint16_t back = chorus_float_to_half(f);
        uint16_t wback = half_is_nan((uint16_t)h) ? (uint16_t)(h | 0x200) : (uint16_t)h;
        checks++;
        if (back != wback)
            FAIL("float_to_half(half_to_float(0x%04x)) = 0x%04x", h, back);

        float g = chorus_bf16_to_float((unsigned short)h);
        checks++;
        if (bf16_is_nan((uint16_t)h) ? !isnan(g) || ((f2u(g) >> 16) | 0x40) != (h | 0x40)
                                     : f2u(g) != f2u(ref_bf2f((uint16_t)h)))
            FAIL("bf16_to_float(0x%04x): got 0x%08x", h, f2u(g));
        uint16_t bback = chorus_float_to_bf16(g);
        uint16_t wb = bf16_is_nan((uint16_t)h) ? (uint16_t)(h | 0x40) : (uint16_t)h;
        checks++;
        if (bback != wb)
            FAIL("float_to_bf16(bf16_to_float(0x%04x)) = 0x%04x", h, bback);
    }
    /* midpoints between neighbours (ties), and one float either side */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double lo = ref_h2f((uint16_t)h);
        double hi = h == 0x7bff ? 65536.0 : ref_h2f((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2); /* exact */
        float c[3] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY)};
        for (int i = 0; i < 3; i++) {
            check_f2h(c[i]);
            check_f2h(-c[i]);
        }
    }
    for (uint32_t b = 0; b < 0x7f80; b++) {
        double lo = ref_bf2f((uint16_t)b);
        double hi = b == 0x7f7f ? ldexp(1.0, 128) : ref_bf2f((uint16_t)(b + 1));
        float mid = (float)((lo + hi) / 2);
        float c[3] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY)};
        for (int i = 0; i < 3; i++) {
            check_f2bf(c[i]);
            check_f2bf(-c[i]);
        }
    }
    /* random floats: any bit pattern, and in the half range */
    for (int i = 0; i < 1000000; i++) {
        uint64_t r = rnd();
        float f = u2f((uint32_t)r);
        check_f2h(f);
        check_f2bf(f);
        float g = u2f((uint32_t)((r >> 32) & 0x807fffffu) |
                      (uint32_t)(97 + rnd_below(50)) << 23); /* 2^-30 .. 2^19 */
        check_f2h(g);
        check_f2bf(g);
    }

    /* the kernels' own conversions (F16C, vector bf16 rounding): every
     * pattern copied (nsrc 1), averaged over 3 and 7 (arbitrary floats to
     * round), and summed with random partners */
    static uint16_t all[65536], other[65536];
    for (uint32_t h = 0; h < 65536; h++) {
        all[h] = (uint16_t)h;
        other[h] = (uint16_t)rnd();
    }
    unsigned char *s2[2] = {(unsigned char *)all, (unsigned char *)other};
    for (int t = CHORUS_FLOAT16; t <= CHORUS_BFLOAT16; t++) {
        run_case(t, CHORUS_SUM, 1, 65536, 0, s2, -1, 0, "all-patterns copy");
        run_case(t, CHORUS_MIN, 1, 65536, 0, s2, -1, 0, "all-patterns min copy");
        run_case(t, CHORUS_MAX, 2, 65536, 0, s2, -1, 0, "all-patterns max");
        run_case(t, CHORUS_AVG, 1, 65536, 3, s2, -1, 0, "all-patterns avg/3");
        run_case(t, CHORUS_AVG, 1, 65536, 7, s2, -1, 2, "all-patterns avg/7");
        run_case(t, CHORUS_SUM, 2, 65536, 0, s2, -1, 0, "all-patterns sum");
        run_case(t, CHORUS_PROD, 2, 65536, 0, s2, -1, 0, "all-patterns prod");
    }
}

/* ---- kernel selection (CHORUS_REDUCE_ISA), in child processes ------------------- */

/* Runs chorus_reduce_init in a child with CHORUS_REDUCE_ISA=value; returns its
 * result, and the chosen ISA in isa_out. */
static int init_with_env(const char *value, char *isa_out, size_t isa_len)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(pfd[0]);
        setenv("CHORUS_REDUCE_ISA", value, 1);
        setenv("CHORUS_LOG_LEVEL", "none", 1);
        chorus_result_t r = chorus_reduce_init();
        const char *isa = chorus_reduce_isa();
        ssize_t n = write(pfd[1], isa, strlen(isa));
        (void)n;
        _exit((int)r);
    }
    close(pfd[1]);
    ssize_t n = read(pfd[0], isa_out, isa_len - 1);
    isa_out[n > 0 ? n : 0] = '\0';
    close(pfd[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static int isa_available(const char *isa)
{
    float x = 0, y;
    const float *s[1] = {&x};
    return chorus_reduce_many_isa(isa, CHORUS_FLOAT32, CHORUS_SUM, &y, (const void *const *)s,
                                  1, 1, 0) == 0;
}

static void test_selection(void)
{
    char isa[32];
    int r = init_with_env("bogus", isa, sizeof isa);
    checks++;
    if (r != CHORUS_INVALID_ARGUMENT)
        FAIL("CHORUS_REDUCE_ISA=bogus: init returned %d, want %d", r, CHORUS_INVALID_ARGUMENT);
    for (int i = 0; i < 3; i++) {
        r = init_with_env(all_isas[i], isa, sizeof isa);
        int avail = isa_available(all_isas[i]);
        checks++;
        if (avail ? r != CHORUS_SUCCESS || strcmp(isa, all_isas[i])
                  : r != CHORUS_INVALID_ARGUMENT)
            FAIL("CHORUS_REDUCE_ISA=%s (available %d): init returned %d, isa %s", all_isas[i],
                 avail, r, isa);
    }
    r = init_with_env("auto", isa, sizeof isa);
    checks++;
    const char *best = isa_available("avx512") ? "avx512" : isa_available("avx2") ? "avx2"
                                                                                  : "scalar";
    if (r != CHORUS_SUCCESS || strcmp(isa, best))
        FAIL("CHORUS_REDUCE_ISA=auto: init returned %d, isa %s, want %s", r, isa, best);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        rng_state = strtoull(argv[1], NULL, 0) | 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (int i = 0; i < 3; i++)
        if (isa_available(all_isas[i]))
            isas[nisas++] = all_isas[i];

    test_selection();

    chorus_result_t r = chorus_reduce_init();
    checks++;
    if (r != CHORUS_SUCCESS)
        FAIL("chorus_reduce_init: %d (%s)", r, chorus_get_last_error());
    printf("test_reduce: kernel sets tested:");
    for (int i = 0; i < nisas; i++)
        printf(" %s", isas[i]);
    printf("; in use: %s\n", chorus_reduce_isa());

    test_conversions();
    test_specials();
    test_matrix();
    test_alias();

    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (failures) {
        printf("FAILED test_reduce: %llu of %llu checks failed (%.1f s)\n", failures, checks,
               secs);
        return 1;
    }
    printf("ok test_reduce: %llu checks (%.1f s)\n", checks, secs);
    return 0;
}
