/* reduce_avx2.c - AVX2 + F16C reduction kernels (256-bit vectors).
 * Integer AVG and 64-bit PROD (no vector 64-bit multiply in AVX2) use the
 * scalar kernels; tails shorter than one vector do too. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>

#include "reduce_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* FMA deliberately not enabled: results must match the scalar set exactly. */
#define A2_ATTR __attribute__((target("avx2,f16c")))
#define A2_INL static inline __attribute__((target("avx2,f16c"), always_inline))

/* ---- float32 / float64 ------------------------------------------------------ */

/* min/max keep a unless x is smaller/larger or x is NaN (see reduce_scalar.c):
 * vminps(x, a) = x < a ? x : a, then NaN lanes of x are forced in. */
A2_INL __m256 a2_minf(__m256 a, __m256 x)
{
    return _mm256_blendv_ps(_mm256_min_ps(x, a), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}
A2_INL __m256 a2_maxf(__m256 a, __m256 x)
{
    return _mm256_blendv_ps(_mm256_max_ps(x, a), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}
A2_INL __m256d a2_mind(__m256d a, __m256d x)
{
    return _mm256_blendv_pd(_mm256_min_pd(x, a), x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q));
}
A2_INL __m256d a2_maxd(__m256d a, __m256d x)
{
    return _mm256_blendv_pd(_mm256_max_pd(x, a), x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q));
}

/* NaN lanes -> the canonical quiet NaN (see reduce_impl.h) */
A2_INL __m256 a2_canonf(__m256 v)
{
    return _mm256_blendv_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000)),
                            _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}
A2_INL __m256d a2_canond(__m256d v)
{
    return _mm256_blendv_pd(v, _mm256_castsi256_pd(_mm256_set1_epi64x(0x7ff8000000000000ll)),
                            _mm256_cmp_pd(v, v, _CMP_UNORD_Q));
}

typedef float R_FLOAT32_A;
typedef __m256 R_FLOAT32_V, R_FLOAT32_D;
enum { R_FLOAT32_SZ = 4, R_FLOAT32_N = 8 };
#define R_FLOAT32_LOAD(p) _mm256_loadu_ps((const float *)(const void *)(p))
#define R_FLOAT32_STORE(p, v) _mm256_storeu_ps((float *)(void *)(p), v)
#define R_FLOAT32_ALOAD R_FLOAT32_LOAD
#define R_FLOAT32_ASTORE R_FLOAT32_STORE
#define R_FLOAT32_SUM(a, x) _mm256_add_ps(a, x)
#define R_FLOAT32_PROD(a, x) _mm256_mul_ps(a, x)
#define R_FLOAT32_MIN(a, x) a2_minf(a, x)
#define R_FLOAT32_MAX(a, x) a2_maxf(a, x)
#define R_FLOAT32_DIV(v, d) _mm256_div_ps(v, d)
#define R_FLOAT32_CANON(v) a2_canonf(v)
#define R_FLOAT32_DPREP(n) _mm256_set1_ps((float)(n))

typedef double R_FLOAT64_A;
typedef __m256d R_FLOAT64_V, R_FLOAT64_D;
enum { R_FLOAT64_SZ = 8, R_FLOAT64_N = 4 };
#define R_FLOAT64_LOAD(p) _mm256_loadu_pd((const double *)(const void *)(p))
#define R_FLOAT64_STORE(p, v) _mm256_storeu_pd((double *)(void *)(p), v)
#define R_FLOAT64_ALOAD R_FLOAT64_LOAD
#define R_FLOAT64_ASTORE R_FLOAT64_STORE
#define R_FLOAT64_SUM(a, x) _mm256_add_pd(a, x)
#define R_FLOAT64_PROD(a, x) _mm256_mul_pd(a, x)
#define R_FLOAT64_MIN(a, x) a2_mind(a, x)
#define R_FLOAT64_MAX(a, x) a2_maxd(a, x)
#define R_FLOAT64_DIV(v, d) _mm256_div_pd(v, d)
#define R_FLOAT64_CANON(v) a2_canond(v)
#define R_FLOAT64_DPREP(n) _mm256_set1_pd((double)(n))

/* ---- float16 (F16C) / bfloat16 (integer tricks), computed in float32 -------- */

A2_INL __m256 a2_ld_half(const unsigned char *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}
A2_INL void a2_st_half(unsigned char *p, __m256 v)
{
    _mm_storeu_si128((__m128i *)(void *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}
A2_INL __m256 a2_ld_bf16(const unsigned char *p)
{
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
/* Round to nearest even by adding 0x7fff + lsb; NaN: set the quiet bit. */
A2_INL void a2_st_bf16(unsigned char *p, __m256 v)
{
    __m256i u = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    __m256i mag = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    __m256i nan = _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7f800000));
    __m256i q = _mm256_or_si256(u, _mm256_set1_epi32(0x00400000));
    r = _mm256_srli_epi32(_mm256_blendv_epi8(r, q, nan), 16);
    /* pack 8 x 32 -> 8 x 16: packus works per 128-bit lane, then gather qwords 0, 2 */
    __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128((__m128i *)(void *)p, _mm256_castsi256_si128(pk));
}

typedef float R_FLOAT16_A;
typedef __m256 R_FLOAT16_V, R_FLOAT16_D;
enum { R_FLOAT16_SZ = 2, R_FLOAT16_N = 8 };
#define R_FLOAT16_LOAD(p) a2_ld_half(p)
#define R_FLOAT16_STORE(p, v) a2_st_half(p, v)
#define R_FLOAT16_ALOAD R_FLOAT32_LOAD
#define R_FLOAT16_ASTORE R_FLOAT32_STORE
#define R_FLOAT16_SUM R_FLOAT32_SUM
#define R_FLOAT16_PROD R_FLOAT32_PROD
#define R_FLOAT16_MIN R_FLOAT32_MIN
#define R_FLOAT16_MAX R_FLOAT32_MAX
#define R_FLOAT16_DIV R_FLOAT32_DIV
#define R_FLOAT16_DPREP R_FLOAT32_DPREP
#define R_FLOAT16_CANON R_FLOAT32_CANON

typedef float R_BFLOAT16_A;
typedef __m256 R_BFLOAT16_V, R_BFLOAT16_D;
enum { R_BFLOAT16_SZ = 2, R_BFLOAT16_N = 8 };
#define R_BFLOAT16_LOAD(p) a2_ld_bf16(p)
#define R_BFLOAT16_STORE(p, v) a2_st_bf16(p, v)
#define R_BFLOAT16_ALOAD R_FLOAT32_LOAD
#define R_BFLOAT16_ASTORE R_FLOAT32_STORE
#define R_BFLOAT16_SUM R_FLOAT32_SUM
#define R_BFLOAT16_PROD R_FLOAT32_PROD
#define R_BFLOAT16_MIN R_FLOAT32_MIN
#define R_BFLOAT16_MAX R_FLOAT32_MAX
#define R_BFLOAT16_DIV R_FLOAT32_DIV
#define R_BFLOAT16_DPREP R_FLOAT32_DPREP
#define R_BFLOAT16_CANON R_FLOAT32_CANON

/* ---- integers ----------------------------------------------------------------- */

#define A2_LDI(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define A2_STI(p, v) _mm256_storeu_si256((__m256i *)(void *)(p), v)

/* 8-bit multiply (low 8 bits, same for signed and unsigned): 16-bit
 * multiplies of the even and the odd bytes. */
A2_INL __m256i a2_mul8(__m256i a, __m256i x)
{
    __m256i even = _mm256_mullo_epi16(a, x);
    __m256i odd = _mm256_mullo_epi16(_mm256_srli_epi16(a, 8), _mm256_srli_epi16(x, 8));
    return _mm256_or_si256(_mm256_and_si256(even, _mm256_set1_epi16(0x00ff)),
                           _mm256_slli_epi16(odd, 8));
}
A2_INL __m256i a2_min_i64(__m256i a, __m256i x)
{
    return _mm256_blendv_epi8(a, x, _mm256_cmpgt_epi64(a, x));
}
A2_INL __m256i a2_max_i64(__m256i a, __m256i x)
{
    return _mm256_blendv_epi8(a, x, _mm256_cmpgt_epi64(x, a));
}
A2_INL __m256i a2_min_u64(__m256i a, __m256i x)
{
    __m256i s = _mm256_set1_epi64x(INT64_MIN);
    __m256i gt = _mm256_cmpgt_epi64(_mm256_xor_si256(a, s), _mm256_xor_si256(x, s));
    return _mm256_blendv_epi8(a, x, gt);
}
A2_INL __m256i a2_max_u64(__m256i a, __m256i x)
{
    __m256i s = _mm256_set1_epi64x(INT64_MIN);
    __m256i gt = _mm256_cmpgt_epi64(_mm256_xor_si256(x, s), _mm256_xor_si256(a, s));
    return _mm256_blendv_epi8(a, x, gt);
}

#define A2_INT_TYPE_(TY, T, SZ)                \
    typedef T R_##TY##_A;                      \
    typedef __m256i R_##TY##_V;                \
    typedef int R_##TY##_D;                    \
    enum { R_##TY##_SZ = SZ, R_##TY##_N = 32 / SZ };
A2_INT_TYPE_(INT8, int8_t, 1)
A2_INT_TYPE_(UINT8, uint8_t, 1)
A2_INT_TYPE_(INT32, int32_t, 4)
A2_INT_TYPE_(UINT32, uint32_t, 4)
A2_INT_TYPE_(INT64, int64_t, 8)
A2_INT_TYPE_(UINT64, uint64_t, 8)

#define R_INT8_LOAD A2_LDI
#define R_INT8_STORE A2_STI
#define R_INT8_ALOAD A2_LDI
#define R_INT8_ASTORE A2_STI
#define R_INT8_DPREP(n) (n)
#define R_INT8_CANON(v) (v)
#define R_INT8_SUM(a, x) _mm256_add_epi8(a, x)
#define R_INT8_PROD(a, x) a2_mul8(a, x)
#define R_INT8_MIN(a, x) _mm256_min_epi8(a, x)
#define R_INT8_MAX(a, x) _mm256_max_epi8(a, x)
#define R_UINT8_LOAD A2_LDI
#define R_UINT8_STORE A2_STI
#define R_UINT8_ALOAD A2_LDI
#define R_UINT8_ASTORE A2_STI
#define R_UINT8_DPREP(n) (n)
#define R_UINT8_CANON(v) (v)
#define R_UINT8_SUM(a, x) _mm256_add_epi8(a, x)
#define R_UINT8_PROD(a, x) a2_mul8(a, x)
#define R_UINT8_MIN(a, x) _mm256_min_epu8(a, x)
#define R_UINT8_MAX(a, x) _mm256_max_epu8(a, x)
#define R_INT32_LOAD A2_LDI
#define R_INT32_STORE A2_STI
#define R_INT32_ALOAD A2_LDI
#define R_INT32_ASTORE A2_STI
#define R_INT32_DPREP(n) (n)
#define R_INT32_CANON(v) (v)
#define R_INT32_SUM(a, x) _mm256_add_epi32(a, x)
#define R_INT32_PROD(a, x) _mm256_mullo_epi32(a, x)
#define R_INT32_MIN(a, x) _mm256_min_epi32(a, x)
#define R_INT32_MAX(a, x) _mm256_max_epi32(a, x)
#define R_UINT32_LOAD A2_LDI
#define R_UINT32_STORE A2_STI
#define R_UINT32_ALOAD A2_LDI
#define R_UINT32_ASTORE A2_STI
#define R_UINT32_DPREP(n) (n)
#define R_UINT32_CANON(v) (v)
#define R_UINT32_SUM(a, x) _mm256_add_epi32(a, x)
#define R_UINT32_PROD(a, x) _mm256_mullo_epi32(a, x)
#define R_UINT32_MIN(a, x) _mm256_min_epu32(a, x)
#define R_UINT32_MAX(a, x) _mm256_max_epu32(a, x)
#define R_INT64_LOAD A2_LDI
#define R_INT64_STORE A2_STI
#define R_INT64_ALOAD A2_LDI
#define R_INT64_ASTORE A2_STI
#define R_INT64_DPREP(n) (n)
#define R_INT64_CANON(v) (v)
#define R_INT64_SUM(a, x) _mm256_add_epi64(a, x)
#define R_INT64_MIN(a, x) a2_min_i64(a, x)
#define R_INT64_MAX(a, x) a2_max_i64(a, x)
#define R_UINT64_LOAD A2_LDI
#define R_UINT64_STORE A2_STI
#define R_UINT64_ALOAD A2_LDI
#define R_UINT64_ASTORE A2_STI
#define R_UINT64_DPREP(n) (n)
#define R_UINT64_CANON(v) (v)
#define R_UINT64_SUM(a, x) _mm256_add_epi64(a, x)
#define R_UINT64_MIN(a, x) a2_min_u64(a, x)
#define R_UINT64_MAX(a, x) a2_max_u64(a, x)

/* ---- kernels -------------------------------------------------------------------- */

#define A2_FLOAT_(TY)                                 \
    REDUCE_DEFINE_SUM(static, A2_ATTR, avx2, TY)      \
    REDUCE_DEFINE_PROD(static, A2_ATTR, avx2, TY)     \
    REDUCE_DEFINE_MIN(static, A2_ATTR, avx2, TY)      \
    REDUCE_DEFINE_MAX(static, A2_ATTR, avx2, TY)      \
    REDUCE_DEFINE_AVG(static, A2_ATTR, avx2, TY)
A2_FLOAT_(FLOAT16)
A2_FLOAT_(BFLOAT16)
A2_FLOAT_(FLOAT32)
A2_FLOAT_(FLOAT64)

#define A2_INT_(TY)                                   \
    REDUCE_DEFINE_SUM(static, A2_ATTR, avx2, TY)      \
    REDUCE_DEFINE_MIN(static, A2_ATTR, avx2, TY)      \
    REDUCE_DEFINE_MAX(static, A2_ATTR, avx2, TY)
A2_INT_(INT8)
A2_INT_(UINT8)
A2_INT_(INT32)
A2_INT_(UINT32)
A2_INT_(INT64)
A2_INT_(UINT64)
REDUCE_DEFINE_PROD(static, A2_ATTR, avx2, INT8)
REDUCE_DEFINE_PROD(static, A2_ATTR, avx2, UINT8)
REDUCE_DEFINE_PROD(static, A2_ATTR, avx2, INT32)
REDUCE_DEFINE_PROD(static, A2_ATTR, avx2, UINT32)

#define A2_ROW_ALL_(TY)                                                              \
    [CHORUS_##TY] = {[CHORUS_SUM] = avx2_##TY##_SUM, [CHORUS_PROD] = avx2_##TY##_PROD, \
                     [CHORUS_MIN] = avx2_##TY##_MIN, [CHORUS_MAX] = avx2_##TY##_MAX,   \
                     [CHORUS_AVG] = avx2_##TY##_AVG}
#define A2_ROW_INT_(TY, PROD)                                                        \
    [CHORUS_##TY] = {[CHORUS_SUM] = avx2_##TY##_SUM, [CHORUS_PROD] = PROD,           \
                     [CHORUS_MIN] = avx2_##TY##_MIN, [CHORUS_MAX] = avx2_##TY##_MAX,   \
                     [CHORUS_AVG] = reduce_scalar_##TY##_AVG}

const struct reduce_kernel_table reduce_kernels_avx2 = {
    "avx2",
    {
        A2_ROW_INT_(INT8, avx2_INT8_PROD),
        A2_ROW_INT_(UINT8, avx2_UINT8_PROD),
        A2_ROW_INT_(INT32, avx2_INT32_PROD),
        A2_ROW_INT_(UINT32, avx2_UINT32_PROD),
        A2_ROW_INT_(INT64, reduce_scalar_INT64_PROD),
        A2_ROW_INT_(UINT64, reduce_scalar_UINT64_PROD),
        A2_ROW_ALL_(FLOAT16),
        A2_ROW_ALL_(BFLOAT16),
        A2_ROW_ALL_(FLOAT32),
        A2_ROW_ALL_(FLOAT64),
    },
};

#else /* not x86: never selected (reduce.c reports it unsupported) */
const struct reduce_kernel_table reduce_kernels_avx2 = {"avx2", {{0}}};
#endif
