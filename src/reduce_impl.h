/* reduce_impl.h - private to the reduction kernels (reduce*.c): the kernel
 * signature, the per-ISA tables, the scalar fp16/bf16 conversions and the
 * generic loop driver every kernel set instantiates.
 *
 * A kernel set defines, for each type tag TY (the chorus_datatype_t suffix:
 * INT8 ... FLOAT64), these macros / types (R_ prefix to stay clear of
 * <stdint.h>'s INT8_MIN and friends):
 *   R_TY_SZ            element size in bytes
 *   R_TY_A             C type of one accumulator element (float for FLOAT16
 *                      and BFLOAT16, the element type otherwise)
 *   R_TY_V             accumulator "vector" type, R_TY_N elements wide
 *   R_TY_LOAD(p)       R_TY_N elements at byte pointer p -> R_TY_V (widened)
 *   R_TY_STORE(p, v)   R_TY_V -> R_TY_N elements at p (rounded for fp16/bf16)
 *   R_TY_ALOAD(p)      R_TY_N accumulator elements (R_TY_A) at p -> R_TY_V
 *   R_TY_ASTORE(p, v)  R_TY_V -> R_TY_N accumulator elements at p
 *   R_TY_D, R_TY_DPREP(n)  the divisor of AVG, prepared once from avg_div
 * and, for each op it implements, R_TY_SUM(a, x), R_TY_PROD, R_TY_MIN,
 * R_TY_MAX (a is the running result, x the next source), R_TY_DIV(v, d) and
 * R_TY_CANON(v), which replaces a NaN by the canonical quiet NaN (identity
 * for integers).
 *
 * NaN results: SUM, PROD and AVG return the canonical quiet NaN (positive,
 * payload 0: 0x7fc00000, 0x7ff8000000000000, fp16 0x7e00, bf16 0x7fc0),
 * because which input NaN an IEEE add or multiply passes on depends on the
 * operand order the compiler picks (it treats them as commutative), which
 * would make kernel sets differ. MIN and MAX select an input, so they return
 * that NaN (quietened by the fp16 conversion).
 * Loads and stores make no alignment assumption.
 */
#ifndef CHORUS_REDUCE_IMPL_H
#define CHORUS_REDUCE_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chorus.h"

/* Reduces elements [begin, end) of every buffer (the pointers are the buffer
 * starts). avg_div >= 1 (the dispatcher sanitises it). */
typedef void (*reduce_kernel_fn)(void *dst, const void *const *srcs, int nsrc, size_t begin,
                                 size_t end, int avg_div);

struct reduce_kernel_table {
    const char *name;
    reduce_kernel_fn fn[CHORUS_NUM_TYPES][CHORUS_NUM_OPS];
};

/* Not exported from the shared library (the export regex is ^chorus_[a-z]). */
extern const struct reduce_kernel_table reduce_kernels_scalar;
extern const struct reduce_kernel_table reduce_kernels_avx2;
extern const struct reduce_kernel_table reduce_kernels_avx512;

/* X-macros over the types and ops, in enum order. */
#define REDUCE_FOR_TYPES(X, A)                                                                     \
    X(INT8, A) X(UINT8, A) X(INT32, A) X(UINT32, A) X(INT64, A) X(UINT64, A) X(FLOAT16, A)         \
    X(BFLOAT16, A) X(FLOAT32, A) X(FLOAT64, A)
#define REDUCE_FOR_OPS(X, TY) X(TY, SUM) X(TY, PROD) X(TY, MIN) X(TY, MAX) X(TY, AVG)

/* The scalar kernels are named reduce_scalar_<TYPE>_<OP>; the SIMD sets call
 * them for tails and use them for the combinations they do not vectorise. */
#define REDUCE_DECL_SCALAR_(TY, OP)                                                                \
    void reduce_scalar_##TY##_##OP(void *dst, const void *const *srcs, int nsrc, size_t begin,     \
                                   size_t end, int avg_div);
#define REDUCE_DECL_SCALAR_TYPE_(TY, unused) REDUCE_FOR_OPS(REDUCE_DECL_SCALAR_, TY)
REDUCE_FOR_TYPES(REDUCE_DECL_SCALAR_TYPE_, ~)

/* ---- scalar conversions (bit manipulation, round to nearest even) ---------- */

static inline uint32_t reduce_f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float reduce_u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* binary16 -> binary32: exact; a signalling NaN comes out quiet (as F16C). */
static inline float reduce_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf / NaN */
        return reduce_u2f(sign | 0x7f800000u | (man ? 0x00400000u | (man << 13) : 0));
    if (exp == 0) {
        if (man == 0)
            return reduce_u2f(sign);
        /* subnormal: normalise */
        exp = 113; /* 127 - 15 + 1 */
        while (!(man & 0x400u)) {
            man <<= 1;
            exp--;
        }
        return reduce_u2f(sign | (exp << 23) | ((man & 0x3ffu) << 13));
    }
    return reduce_u2f(sign | ((exp + 112) << 23) | (man << 13));
}

/* binary32 -> binary16, nearest even; overflow -> inf; NaN -> quiet NaN keeping
 * the top payload bits (as F16C's vcvtps2ph). */
static inline uint16_t reduce_float_to_half(float f)
{
    uint32_t u = reduce_f2u(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) /* >= 65520: rounds to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) { /* normal half */
        uint32_t r = ((a - 0x38000000u) >> 13); /* rebias exponent, truncate */
        uint32_t rem = a & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (r & 1u)))
            r++;
        return (uint16_t)(sign | r);
    }
    uint32_t e = a >> 23;
    if (e < 102) /* below 2^-25: rounds to zero */
        return (uint16_t)sign;
    uint32_t man = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14 .. 24 */
    uint32_t r = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1u)))
        r++;
    return (uint16_t)(sign | r);
}

static inline float reduce_bf16_to_float(uint16_t b) { return reduce_u2f((uint32_t)b << 16); }

/* binary32 -> bfloat16, nearest even; NaN -> quiet NaN (top payload bits). */
static inline uint16_t reduce_float_to_bf16(float f)
{
    uint32_t u = reduce_f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* ---- the generic driver ---------------------------------------------------- */

/* Up to REDUCE_GROUP sources are combined per pass, in registers; with more
 * sources the work goes block by block (REDUCE_BLOCK elements) through an
 * accumulator buffer on the stack that stays in L1. */
#define REDUCE_GROUP 8
#define REDUCE_BLOCK 1024

#if defined(__GNUC__) || defined(__clang__)
#define REDUCE_INLINE static inline __attribute__((always_inline))
#else
#define REDUCE_INLINE static inline
#endif

/* One pass over [lo, hi) (hi - lo a multiple of TY_N):
 * in_acc: start from acc[] instead of srcs[0]; out_acc: write acc[] (no final
 * divide) instead of dst. SIMD sets go 4 vectors deep; all sources of a position
 * are read before dst is written, so exact aliasing of dst is safe. */
#define REDUCE_DEFINE_PASS_(ATTR, PFX, TY, NAME, OP, FIN)                                          \
    ATTR REDUCE_INLINE void PFX##_##TY##_##NAME##_pass(                                            \
        unsigned char *dst, R_##TY##_A *acc, const void *const *srcs, int n, size_t lo,            \
        size_t hi, int in_acc, int out_acc, R_##TY##_D dv)                                         \
    {                                                                                              \
        const unsigned char *p[REDUCE_GROUP];                                                      \
        for (int k = 0; k < n; k++)                                                                \
            p[k] = (const unsigned char *)srcs[k] + lo * R_##TY##_SZ;                              \
        unsigned char *d = dst + lo * R_##TY##_SZ;                                                 \
        unsigned char *ab = (unsigned char *)acc;                                                  \
        const size_t vb = (size_t)R_##TY##_N * R_##TY##_SZ;           /* bytes of one vector */    \
        const size_t va = (size_t)R_##TY##_N * sizeof(R_##TY##_A);    /* same, accumulator */      \
        size_t len = hi - lo, j = 0;                                                               \
        (void)dv;                                                                                  \
        /* (the scalar set, N == 1, leaves unrolling to the compiler) */                      \
        for (; R_##TY##_N > 1 && j + 4 * (size_t)R_##TY##_N <= len;                                \
             j += 4 * (size_t)R_##TY##_N) {                                                        \
            size_t o = j * R_##TY##_SZ, oa = j * sizeof(R_##TY##_A);                               \
            R_##TY##_V a0, a1, a2, a3;                                                             \
            int k = 0;                                                                             \
            if (in_acc) {                                                                          \
                a0 = R_##TY##_ALOAD(ab + oa);                                                      \
                a1 = R_##TY##_ALOAD(ab + oa + va);                                                 \
                a2 = R_##TY##_ALOAD(ab + oa + 2 * va);                                             \
                a3 = R_##TY##_ALOAD(ab + oa + 3 * va);                                             \
            } else {                                                                               \
                a0 = R_##TY##_LOAD(p[0] + o);                                                      \
                a1 = R_##TY##_LOAD(p[0] + o + vb);                                                 \
                a2 = R_##TY##_LOAD(p[0] + o + 2 * vb);                                             \
                a3 = R_##TY##_LOAD(p[0] + o + 3 * vb);                                             \
                k = 1;                                                                             \
            }                                                                                      \
            for (; k < n; k++) {                                                                   \
                const unsigned char *s = p[k] + o;                                                 \
                a0 = R_##TY##_##OP(a0, R_##TY##_LOAD(s));                                          \
                a1 = R_##TY##_##OP(a1, R_##TY##_LOAD(s + vb));                                     \
                a2 = R_##TY##_##OP(a2, R_##TY##_LOAD(s + 2 * vb));                                 \
                a3 = R_##TY##_##OP(a3, R_##TY##_LOAD(s + 3 * vb));                                 \
            }                                                                                      \
            if (out_acc) {                                                                         \
                R_##TY##_ASTORE(ab + oa, a0);                                                      \
                R_##TY##_ASTORE(ab + oa + va, a1);                                                 \
                R_##TY##_ASTORE(ab + oa + 2 * va, a2);                                             \
                R_##TY##_ASTORE(ab + oa + 3 * va, a3);                                             \
            } else {                                                                               \
                R_##TY##_STORE(d + o, FIN(TY, a0, dv));                                            \
                R_##TY##_STORE(d + o + vb, FIN(TY, a1, dv));                                       \
                R_##TY##_STORE(d + o + 2 * vb, FIN(TY, a2, dv));                                   \
                R_##TY##_STORE(d + o + 3 * vb, FIN(TY, a3, dv));                                   \
            }                                                                                      \
        }                                                                                          \
        for (; j < len; j += R_##TY##_N) {                                                         \
            size_t o = j * R_##TY##_SZ, oa = j * sizeof(R_##TY##_A);                               \
            R_##TY##_V a0;                                                                         \
            int k = 0;                                                                             \
            if (in_acc) {                                                                          \
                a0 = R_##TY##_ALOAD(ab + oa);                                                      \
            } else {                                                                               \
                a0 = R_##TY##_LOAD(p[0] + o);                                                      \
                k = 1;                                                                             \
            }                                                                                      \
            for (; k < n; k++)                                                                     \
                a0 = R_##TY##_##OP(a0, R_##TY##_LOAD(p[k] + o));                                   \
            if (out_acc)                                                                           \
                R_##TY##_ASTORE(ab + oa, a0);                                                      \
            else                                                                                   \
                R_##TY##_STORE(d + o, FIN(TY, a0, dv));                                            \
        }                                                                                          \
    }

#define REDUCE_FIN_NONE_(TY, v, dv) (v)
#define REDUCE_FIN_CANON_(TY, v, dv) R_##TY##_CANON(v)
#define REDUCE_FIN_DIV_(TY, v, dv) R_##TY##_CANON(R_##TY##_DIV(v, dv))

/* Defines the kernel PFX_TY_OP (storage class STORAGE) for op OP (SUM, PROD,
 * MIN, MAX; AVG is SUM then TY_DIV). Elements past the last whole vector go
 * to the scalar kernel, which gives bit-identical results. */
#define                                                                                            \
    REDUCE_DEFINE_KERNEL_(STORAGE, ATTR, PFX, TY, NAME, OP, FIN)                               \
    REDUCE_DEFINE_PASS_(ATTR, PFX, TY, NAME, OP, FIN)                                              \
    ATTR STORAGE void PFX##_##TY##_##NAME(void *dstv, const void *const *srcs, int nsrc,           \
                                          size_t begin, size_t end, int avg_div)                   \
    {                                                                                              \
        unsigned char *dst = (unsigned char *)dstv;                                                \
        R_##TY##_D dv = R_##TY##_DPREP(avg_div);                                                   \
        size_t main_end = begin + (end - begin) / R_##TY##_N * R_##TY##_N;                         \
        if (nsrc <= REDUCE_GROUP) {                                                                \
            PFX##_##TY##_##NAME##_pass(dst, NULL, srcs, nsrc, begin, main_end, 0, 0, dv);          \
        } else {                                                                                   \
            R_##TY##_A acc[REDUCE_BLOCK] __attribute__((aligned(64)));                             \
            for (size_t b = begin; b < main_end; b += REDUCE_BLOCK) {                              \
                size_t e = main_end - b > REDUCE_BLOCK ? b + REDUCE_BLOCK : main_end;              \
                PFX##_##TY##_##NAME##_pass(dst, acc, srcs, REDUCE_GROUP, b, e, 0, 1, dv);          \
                for (int g = REDUCE_GROUP; g < nsrc; g += REDUCE_GROUP) {                          \
                    int gn = nsrc - g < REDUCE_GROUP ? nsrc - g : REDUCE_GROUP;                    \
                    if (g + gn < nsrc)                                                             \
                        PFX##_##TY##_##NAME##_pass(dst, acc, srcs + g, gn, b, e, 1, 1, dv);        \
                    else                                                                           \
                        PFX##_##TY##_##NAME##_pass(dst, acc, srcs + g, gn, b, e, 1, 0, dv);        \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        if (R_##TY##_N > 1 && main_end < end)                                                      \
            reduce_scalar_##TY##_##NAME(dstv, srcs, nsrc, main_end, end, avg_div);                 \
    }

/* The five ops of a type, all vectorised. */
#define REDUCE_DEFINE_SUM(S, A, P, TY)                                                             \
    REDUCE_DEFINE_KERNEL_(S, A, P, TY, SUM, SUM, REDUCE_FIN_CANON_)
#define REDUCE_DEFINE_PROD(S, A, P, TY)                                                            \
    REDUCE_DEFINE_KERNEL_(S, A, P, TY, PROD, PROD, REDUCE_FIN_CANON_)
#define REDUCE_DEFINE_MIN(S, A, P, TY)                                                             \
    REDUCE_DEFINE_KERNEL_(S, A, P, TY, MIN, MIN, REDUCE_FIN_NONE_)
#define REDUCE_DEFINE_MAX(S, A, P, TY)                                                             \
    REDUCE_DEFINE_KERNEL_(S, A, P, TY, MAX, MAX, REDUCE_FIN_NONE_)
#define REDUCE_DEFINE_AVG(S, A, P, TY)                                                             \
    REDUCE_DEFINE_KERNEL_(S, A, P, TY, AVG, SUM, REDUCE_FIN_DIV_)

#endif
