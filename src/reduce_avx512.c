/* reduce_avx512.c - AVX-512 (F, BW, VL, DQ) reduction kernels (512-bit vectors).
 * fp16 uses the vcvtph2ps / vcvtps2ph conversions; bf16 uses integer tricks
 * (vcvtneps2bf16 flushes subnormals, so it would not match the scalar set).
 * Integer AVG and tails shorter than one vector use the scalar kernels. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>

#include "reduce_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* FMA deliberately not enabled: results must match the scalar set exactly. */
#define A5_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx2,f16c"
#define A5_ATTR __attribute__((target(A5_TARGET)))
#define A5_INL static inline __attribute__((target(A5_TARGET), always_inline))

/* ---- float32 / float64 ------------------------------------------------------ */

/* min/max keep a unless x is smaller/larger or x is NaN (see reduce_scalar.c):
 * vminps(x, a) = x < a ? x : a, then NaN lanes of x are forced in. */
A5_INL __m512 a5_minf(__m512 a, __m512 x)
{
    return _mm512_mask_mov_ps(_mm512_min_ps(x, a), _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}
A5_INL __m512 a5_maxf(__m512 a, __m512 x)
{
    return _mm512_mask_mov_ps(_mm512_max_ps(x, a), _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}
A5_INL __m512d a5_mind(__m512d a, __m512d x)
{
    return _mm512_mask_mov_pd(_mm512_min_pd(x, a), _mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q), x);
}
A5_INL __m512d a5_maxd(__m512d a, __m512d x)
{
    return _mm512_mask_mov_pd(_mm512_max_pd(x, a), _mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q), x);
}

/* NaN lanes -> the canonical quiet NaN (see reduce_impl.h) */
A5_INL __m512 a5_canonf(__m512 v)
{
    return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q),
                              _mm512_castsi512_ps(_mm512_set1_epi32(0x7fc00000)));
}
A5_INL __m512d a5_canond(__m512d v)
{
    return _mm512_mask_mov_pd(v, _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q),
                              _mm512_castsi512_pd(_mm512_set1_epi64(0x7ff8000000000000ll)));
}

typedef float R_FLOAT32_A;
typedef __m512 R_FLOAT32_V, R_FLOAT32_D;
enum { R_FLOAT32_SZ = 4, R_FLOAT32_N = 16 };
#define R_FLOAT32_LOAD(p) _mm512_loadu_ps((const void *)(p))
#define R_FLOAT32_STORE(p, v) _mm512_storeu_ps((void *)(p), v)
#define R_FLOAT32_ALOAD R_FLOAT32_LOAD
#define R_FLOAT32_ASTORE R_FLOAT32_STORE
#define R_FLOAT32_SUM(a, x) _mm512_add_ps(a, x)
#define R_FLOAT32_PROD(a, x) _mm512_mul_ps(a, x)
#define R_FLOAT32_MIN(a, x) a5_minf(a, x)
#define R_FLOAT32_MAX(a, x) a5_maxf(a, x)
#define R_FLOAT32_DIV(v, d) _mm512_div_ps(v, d)
#define R_FLOAT32_CANON(v) a5_canonf(v)
#define R_FLOAT32_DPREP(n) _mm512_set1_ps((float)(n))

typedef double R_FLOAT64_A;
typedef __m512d R_FLOAT64_V, R_FLOAT64_D;
enum { R_FLOAT64_SZ = 8, R_FLOAT64_N = 8 };
#define R_FLOAT64_LOAD(p) _mm512_loadu_pd((const void *)(p))
#define R_FLOAT64_STORE(p, v) _mm512_storeu_pd((void *)(p), v)
#define R_FLOAT64_ALOAD R_FLOAT64_LOAD
#define R_FLOAT64_ASTORE R_FLOAT64_STORE
#define R_FLOAT64_SUM(a, x) _mm512_add_pd(a, x)
#define R_FLOAT64_PROD(a, x) _mm512_mul_pd(a, x)
#define R_FLOAT64_MIN(a, x) a5_mind(a, x)
#define R_FLOAT64_MAX(a, x) a5_maxd(a, x)
#define R_FLOAT64_DIV(v, d) _mm512_div_pd(v, d)
#define R_FLOAT64_CANON(v) a5_canond(v)
#define R_FLOAT64_DPREP(n) _mm512_set1_pd((double)(n))

/* ---- float16 / bfloat16, computed in float32 -------------------------------- */

A5_INL __m512 a5_ld_half(const unsigned char *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
}
A5_INL void a5_st_half(unsigned char *p, __m512 v)
{
    _mm256_storeu_si256((__m256i *)(void *)p, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}
A5_INL __m512 a5_ld_bf16(const unsigned char *p)
{
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
/* Round to nearest even by adding 0x7fff + lsb; NaN: set the quiet bit. */
A5_INL void a5_st_bf16(unsigned char *p, __m512 v)
{
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
    _mm256_storeu_si256((__m256i *)(void *)p, _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
}

typedef float R_FLOAT16_A;
typedef __m512 R_FLOAT16_V, R_FLOAT16_D;
enum { R_FLOAT16_SZ = 2, R_FLOAT16_N = 16 };
#define R_FLOAT16_LOAD(p) a5_ld_half(p)
#define R_FLOAT16_STORE(p, v) a5_st_half(p, v)
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
typedef __m512 R_BFLOAT16_V, R_BFLOAT16_D;
enum { R_BFLOAT16_SZ = 2, R_BFLOAT16_N = 16 };
#define R_BFLOAT16_LOAD(p) a5_ld_bf16(p)
#define R_BFLOAT16_STORE(p, v) a5_st_bf16(p, v)
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

#define A5_LDI(p) _mm512_loadu_si512((const void *)(p))
#define A5_STI(p, v) _mm512_storeu_si512((void *)(p), v)

/* 8-bit multiply (low 8 bits, same for signed and unsigned): 16-bit
 * multiplies of the even and the odd bytes, merged by a byte mask. */
A5_INL __m512i a5_mul8(__m512i a, __m512i x)
{
    __m512i even = _mm512_mullo_epi16(a, x);
    __m512i odd = _mm512_mullo_epi16(_mm512_srli_epi16(a, 8), _mm512_srli_epi16(x, 8));
    return _mm512_mask_blend_epi8((__mmask64)0xaaaaaaaaaaaaaaaaull, even,
                                  _mm512_slli_epi16(odd, 8));
}

#define A5_INT_TYPE_(TY, T, SZ)                \
    typedef T R_##TY##_A;                      \
    typedef __m512i R_##TY##_V;                \
    typedef int R_##TY##_D;                    \
    enum { R_##TY##_SZ = SZ, R_##TY##_N = 64 / SZ };
A5_INT_TYPE_(INT8, int8_t, 1)
A5_INT_TYPE_(UINT8, uint8_t, 1)
A5_INT_TYPE_(INT32, int32_t, 4)
A5_INT_TYPE_(UINT32, uint32_t, 4)
A5_INT_TYPE_(INT64, int64_t, 8)
A5_INT_TYPE_(UINT64, uint64_t, 8)

#define R_INT8_LOAD A5_LDI
#define R_INT8_STORE A5_STI
#define R_INT8_ALOAD A5_LDI
#define R_INT8_ASTORE A5_STI
#define R_INT8_DPREP(n) (n)
#define R_INT8_CANON(v) (v)
#define R_INT8_SUM(a, x) _mm512_add_epi8(a, x)
#define R_INT8_PROD(a, x) a5_mul8(a, x)
#define R_INT8_MIN(a, x) _mm512_min_epi8(a, x)
#define R_INT8_MAX(a, x) _mm512_max_epi8(a, x)
#define R_UINT8_LOAD A5_LDI
#define R_UINT8_STORE A5_STI
#define R_UINT8_ALOAD A5_LDI
#define R_UINT8_ASTORE A5_STI
#define R_UINT8_DPREP(n) (n)
#define R_UINT8_CANON(v) (v)
#define R_UINT8_SUM(a, x) _mm512_add_epi8(a, x)
#define R_UINT8_PROD(a, x) a5_mul8(a, x)
#define R_UINT8_MIN(a, x) _mm512_min_epu8(a, x)
#define R_UINT8_MAX(a, x) _mm512_max_epu8(a, x)
#define R_INT32_LOAD A5_LDI
#define R_INT32_STORE A5_STI
#define R_INT32_ALOAD A5_LDI
#define R_INT32_ASTORE A5_STI
#define R_INT32_DPREP(n) (n)
#define R_INT32_CANON(v) (v)
#define R_INT32_SUM(a, x) _mm512_add_epi32(a, x)
#define R_INT32_PROD(a, x) _mm512_mullo_epi32(a, x)
#define R_INT32_MIN(a, x) _mm512_min_epi32(a, x)
#define R_INT32_MAX(a, x) _mm512_max_epi32(a, x)
#define R_UINT32_LOAD A5_LDI
#define R_UINT32_STORE A5_STI
#define R_UINT32_ALOAD A5_LDI
#define R_UINT32_ASTORE A5_STI
#define R_UINT32_DPREP(n) (n)
#define R_UINT32_CANON(v) (v)
#define R_UINT32_SUM(a, x) _mm512_add_epi32(a, x)
#define R_UINT32_PROD(a, x) _mm512_mullo_epi32(a, x)
#define R_UINT32_MIN(a, x) _mm512_min_epu32(a, x)
#define R_UINT32_MAX(a, x) _mm512_max_epu32(a, x)
#define R_INT64_LOAD A5_LDI
#define R_INT64_STORE A5_STI
#define R_INT64_ALOAD A5_LDI
#define R_INT64_ASTORE A5_STI
#define R_INT64_DPREP(n) (n)
#define R_INT64_CANON(v) (v)
#define R_INT64_SUM(a, x) _mm512_add_epi64(a, x)
#define R_INT64_PROD(a, x) _mm512_mullo_epi64(a, x)
#define R_INT64_MIN(a, x) _mm512_min_epi64(a, x)
#define R_INT64_MAX(a, x) _mm512_max_epi64(a, x)
#define R_UINT64_LOAD A5_LDI
#define R_UINT64_STORE A5_STI
#define R_UINT64_ALOAD A5_LDI
#define R_UINT64_ASTORE A5_STI
#define R_UINT64_DPREP(n) (n)
#define R_UINT64_CANON(v) (v)
#define R_UINT64_SUM(a, x) _mm512_add_epi64(a, x)
#define R_UINT64_PROD(a, x) _mm512_mullo_epi64(a, x)
#define R_UINT64_MIN(a, x) _mm512_min_epu64(a, x)
#define R_UINT64_MAX(a, x) _mm512_max_epu64(a, x)

/* ---- kernels -------------------------------------------------------------------- */

#define A5_FLOAT_(TY)                                 \
    REDUCE_DEFINE_SUM(static, A5_ATTR, avx512, TY)    \
    REDUCE_DEFINE_PROD(static, A5_ATTR, avx512, TY)   \
    REDUCE_DEFINE_MIN(static, A5_ATTR, avx512, TY)    \
    REDUCE_DEFINE_MAX(static, A5_ATTR, avx512, TY)    \
    REDUCE_DEFINE_AVG(static, A5_ATTR, avx512, TY)
A5_FLOAT_(FLOAT16)
A5_FLOAT_(BFLOAT16)
A5_FLOAT_(FLOAT32)
A5_FLOAT_(FLOAT64)

#define A5_INT_(TY)                                   \
    REDUCE_DEFINE_SUM(static, A5_ATTR, avx512, TY)    \
    REDUCE_DEFINE_PROD(static, A5_ATTR, avx512, TY)   \
    REDUCE_DEFINE_MIN(static, A5_ATTR, avx512, TY)    \
    REDUCE_DEFINE_MAX(static, A5_ATTR, avx512, TY)
A5_INT_(INT8)
A5_INT_(UINT8)
A5_INT_(INT32)
A5_INT_(UINT32)
A5_INT_(INT64)
A5_INT_(UINT64)

#define A5_ROW_(TY, AVG)                                                                 \
    [CHORUS_##TY] = {[CHORUS_SUM] = avx512_##TY##_SUM, [CHORUS_PROD] = avx512_##TY##_PROD, \
                     [CHORUS_MIN] = avx512_##TY##_MIN, [CHORUS_MAX] = avx512_##TY##_MAX,   \
                     [CHORUS_AVG] = AVG}

const struct reduce_kernel_table reduce_kernels_avx512 = {
    "avx512",
    {
        A5_ROW_(INT8, reduce_scalar_INT8_AVG),
        A5_ROW_(UINT8, reduce_scalar_UINT8_AVG),
        A5_ROW_(INT32, reduce_scalar_INT32_AVG),
        A5_ROW_(UINT32, reduce_scalar_UINT32_AVG),
        A5_ROW_(INT64, reduce_scalar_INT64_AVG),
        A5_ROW_(UINT64, reduce_scalar_UINT64_AVG),
        A5_ROW_(FLOAT16, avx512_FLOAT16_AVG),
        A5_ROW_(BFLOAT16, avx512_BFLOAT16_AVG),
        A5_ROW_(FLOAT32, avx512_FLOAT32_AVG),
        A5_ROW_(FLOAT64, avx512_FLOAT64_AVG),
    },
};

#else /* not x86: never selected (reduce.c reports it unsupported) */
const struct reduce_kernel_table reduce_kernels_avx512 = {"avx512", {{0}}};
#endif
