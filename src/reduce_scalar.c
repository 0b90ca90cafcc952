/* reduce_scalar.c - portable reduction kernels, one element at a time. They
 * are the reference the SIMD sets must match bit for bit, and the SIMD sets
 * call them for tails and for combinations they do not vectorise. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <string.h>

#include "reduce_impl.h"

/* Unaligned scalar loads and stores (memcpy compiles to a plain move). */
#define SC_LDST_(NAME, T)                                                              \
    static inline T sc_ld_##NAME(const unsigned char *p)                               \
    {                                                                                  \
        T v;                                                                           \
        memcpy(&v, p, sizeof v);                                                       \
        return v;                                                                      \
    }                                                                                  \
    static inline void sc_st_##NAME(unsigned char *p, T v) { memcpy(p, &v, sizeof v); }
SC_LDST_(i8, int8_t)
SC_LDST_(u8, uint8_t)
SC_LDST_(i32, int32_t)
SC_LDST_(u32, uint32_t)
SC_LDST_(i64, int64_t)
SC_LDST_(u64, uint64_t)
SC_LDST_(u16, uint16_t)
SC_LDST_(f32, float)
SC_LDST_(f64, double)

/* Integers: arithmetic in the unsigned type of the same width (wraps). */
#define SC_INT_(TY, T, UT, SFX, DT)                                                    \
    typedef T R_##TY##_A;                                                              \
    typedef T R_##TY##_V;                                                              \
    typedef DT R_##TY##_D;                                                             \
    enum { R_##TY##_SZ = sizeof(T), R_##TY##_N = 1 };                                  \
    static inline T sc_add_##SFX(T a, T b) { return (T)(UT)((UT)a + (UT)b); }          \
    static inline T sc_mul_##SFX(T a, T b) { return (T)(UT)((UT)a * (UT)b); }          \
    static inline T sc_min_##SFX(T a, T b) { return b < a ? b : a; }                   \
    static inline T sc_max_##SFX(T a, T b) { return b > a ? b : a; }                   \
    static inline T sc_div_##SFX(T a, DT d) { return (T)((DT)a / d); }

SC_INT_(INT8, int8_t, uint8_t, i8, int64_t)
SC_INT_(UINT8, uint8_t, uint8_t, u8, uint64_t)
SC_INT_(INT32, int32_t, uint32_t, i32, int64_t)
SC_INT_(UINT32, uint32_t, uint32_t, u32, uint64_t)
SC_INT_(INT64, int64_t, uint64_t, i64, int64_t)
SC_INT_(UINT64, uint64_t, uint64_t, u64, uint64_t)

#define R_INT8_LOAD(p) sc_ld_i8(p)
#define R_INT8_STORE(p, v) sc_st_i8(p, v)
#define R_INT8_SUM(a, x) sc_add_i8(a, x)
#define R_INT8_PROD(a, x) sc_mul_i8(a, x)
#define R_INT8_MIN(a, x) sc_min_i8(a, x)
#define R_INT8_MAX(a, x) sc_max_i8(a, x)
#define R_INT8_DIV(v, d) sc_div_i8(v, d)
#define R_UINT8_LOAD(p) sc_ld_u8(p)
#define R_UINT8_STORE(p, v) sc_st_u8(p, v)
#define R_UINT8_SUM(a, x) sc_add_u8(a, x)
#define R_UINT8_PROD(a, x) sc_mul_u8(a, x)
#define R_UINT8_MIN(a, x) sc_min_u8(a, x)
#define R_UINT8_MAX(a, x) sc_max_u8(a, x)
#define R_UINT8_DIV(v, d) sc_div_u8(v, d)
#define R_INT32_LOAD(p) sc_ld_i32(p)
#define R_INT32_STORE(p, v) sc_st_i32(p, v)
#define R_INT32_SUM(a, x) sc_add_i32(a, x)
#define R_INT32_PROD(a, x) sc_mul_i32(a, x)
#define R_INT32_MIN(a, x) sc_min_i32(a, x)
#define R_INT32_MAX(a, x) sc_max_i32(a, x)
#define R_INT32_DIV(v, d) sc_div_i32(v, d)
#define R_UINT32_LOAD(p) sc_ld_u32(p)
#define R_UINT32_STORE(p, v) sc_st_u32(p, v)
#define R_UINT32_SUM(a, x) sc_add_u32(a, x)
#define R_UINT32_PROD(a, x) sc_mul_u32(a, x)
#define R_UINT32_MIN(a, x) sc_min_u32(a, x)
#define R_UINT32_MAX(a, x) sc_max_u32(a, x)
#define R_UINT32_DIV(v, d) sc_div_u32(v, d)
#define R_INT64_LOAD(p) sc_ld_i64(p)
#define R_INT64_STORE(p, v) sc_st_i64(p, v)
#define R_INT64_SUM(a, x) sc_add_i64(a, x)
#define R_INT64_PROD(a, x) sc_mul_i64(a, x)
#define R_INT64_MIN(a, x) sc_min_i64(a, x)
#define R_INT64_MAX(a, x) sc_max_i64(a, x)
#define R_INT64_DIV(v, d) sc_div_i64(v, d)
#define R_UINT64_LOAD(p) sc_ld_u64(p)
#define R_UINT64_STORE(p, v) sc_st_u64(p, v)
#define R_UINT64_SUM(a, x) sc_add_u64(a, x)
#define R_UINT64_PROD(a, x) sc_mul_u64(a, x)
#define R_UINT64_MIN(a, x) sc_min_u64(a, x)
#define R_UINT64_MAX(a, x) sc_max_u64(a, x)
#define R_UINT64_DIV(v, d) sc_div_u64(v, d)
/* integer accumulators are the elements themselves */
#define R_INT8_ALOAD R_INT8_LOAD
#define R_INT8_ASTORE R_INT8_STORE
#define R_UINT8_ALOAD R_UINT8_LOAD
#define R_UINT8_ASTORE R_UINT8_STORE
#define R_INT32_ALOAD R_INT32_LOAD
#define R_INT32_ASTORE R_INT32_STORE
#define R_UINT32_ALOAD R_UINT32_LOAD
#define R_UINT32_ASTORE R_UINT32_STORE
#define R_INT64_ALOAD R_INT64_LOAD
#define R_INT64_ASTORE R_INT64_STORE
#define R_UINT64_ALOAD R_UINT64_LOAD
#define R_UINT64_ASTORE R_UINT64_STORE
#define R_INT8_CANON(v) (v)
#define R_UINT8_CANON(v) (v)
#define R_INT32_CANON(v) (v)
#define R_UINT32_CANON(v) (v)
#define R_INT64_CANON(v) (v)
#define R_UINT64_CANON(v) (v)
#define R_INT8_DPREP(n) ((int64_t)(n))
#define R_UINT8_DPREP(n) ((uint64_t)(n))
#define R_INT32_DPREP(n) ((int64_t)(n))
#define R_UINT32_DPREP(n) ((uint64_t)(n))
#define R_INT64_DPREP(n) ((int64_t)(n))
#define R_UINT64_DPREP(n) ((uint64_t)(n))

/* Floats. MIN/MAX: the running result a is kept unless x is smaller (larger)
 * or x is NaN; so a NaN anywhere gives NaN, and between -0.0 and +0.0 the
 * earlier source wins. SIMD sets implement exactly this rule. */
/* NaN -> the canonical quiet NaN (bit test: no float compare to fold away) */
static inline float sc_canonf(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        u = 0x7fc00000u;
    memcpy(&v, &u, sizeof u);
    return v;
}
static inline double sc_canond(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7fffffffffffffffull) > 0x7ff0000000000000ull)
        u = 0x7ff8000000000000ull;
    memcpy(&v, &u, sizeof u);
    return v;
}
static inline float sc_minf(float a, float x) { return (x < a || x != x) ? x : a; }
static inline float sc_maxf(float a, float x) { return (x > a || x != x) ? x : a; }
static inline double sc_mind(double a, double x) { return (x < a || x != x) ? x : a; }
static inline double sc_maxd(double a, double x) { return (x > a || x != x) ? x : a; }

typedef float R_FLOAT32_A, R_FLOAT32_V, R_FLOAT32_D;
enum { R_FLOAT32_SZ = 4, R_FLOAT32_N = 1 };
#define R_FLOAT32_LOAD(p) sc_ld_f32(p)
#define R_FLOAT32_STORE(p, v) sc_st_f32(p, v)
#define R_FLOAT32_ALOAD R_FLOAT32_LOAD
#define R_FLOAT32_ASTORE R_FLOAT32_STORE

typedef double R_FLOAT64_A, R_FLOAT64_V, R_FLOAT64_D;
enum { R_FLOAT64_SZ = 8, R_FLOAT64_N = 1 };
#define R_FLOAT64_LOAD(p) sc_ld_f64(p)
#define R_FLOAT64_STORE(p, v) sc_st_f64(p, v)
#define R_FLOAT64_ALOAD R_FLOAT64_LOAD
#define R_FLOAT64_ASTORE R_FLOAT64_STORE

/* fp16 / bf16 accumulate in float and round once when stored. */
typedef float R_FLOAT16_A, R_FLOAT16_V, R_FLOAT16_D;
enum { R_FLOAT16_SZ = 2, R_FLOAT16_N = 1 };
#define R_FLOAT16_LOAD(p) reduce_half_to_float(sc_ld_u16(p))
#define R_FLOAT16_STORE(p, v) sc_st_u16(p, reduce_float_to_half(v))
#define R_FLOAT16_ALOAD R_FLOAT32_LOAD
#define R_FLOAT16_ASTORE R_FLOAT32_STORE

typedef float R_BFLOAT16_A, R_BFLOAT16_V, R_BFLOAT16_D;
enum { R_BFLOAT16_SZ = 2, R_BFLOAT16_N = 1 };
#define R_BFLOAT16_LOAD(p) reduce_bf16_to_float(sc_ld_u16(p))
#define R_BFLOAT16_STORE(p, v) sc_st_u16(p, reduce_float_to_bf16(v))
#define R_BFLOAT16_ALOAD R_FLOAT32_LOAD
#define R_BFLOAT16_ASTORE R_FLOAT32_STORE

#define R_FLOAT32_SUM(a, x) ((a) + (x))
#define R_FLOAT32_PROD(a, x) ((a) * (x))
#define R_FLOAT32_MIN(a, x) sc_minf(a, x)
#define R_FLOAT32_MAX(a, x) sc_maxf(a, x)
#define R_FLOAT32_DIV(v, d) ((v) / (d))
#define R_FLOAT32_DPREP(n) ((float)(n))
#define R_FLOAT32_CANON(v) sc_canonf(v)
#define R_FLOAT16_CANON R_FLOAT32_CANON
#define R_BFLOAT16_CANON R_FLOAT32_CANON
#define R_FLOAT16_SUM R_FLOAT32_SUM
#define R_FLOAT16_PROD R_FLOAT32_PROD
#define R_FLOAT16_MIN R_FLOAT32_MIN
#define R_FLOAT16_MAX R_FLOAT32_MAX
#define R_FLOAT16_DIV R_FLOAT32_DIV
#define R_FLOAT16_DPREP R_FLOAT32_DPREP
#define R_BFLOAT16_SUM R_FLOAT32_SUM
#define R_BFLOAT16_PROD R_FLOAT32_PROD
#define R_BFLOAT16_MIN R_FLOAT32_MIN
#define R_BFLOAT16_MAX R_FLOAT32_MAX
#define R_BFLOAT16_DIV R_FLOAT32_DIV
#define R_BFLOAT16_DPREP R_FLOAT32_DPREP
#define R_FLOAT64_SUM(a, x) ((a) + (x))
#define R_FLOAT64_PROD(a, x) ((a) * (x))
#define R_FLOAT64_MIN(a, x) sc_mind(a, x)
#define R_FLOAT64_MAX(a, x) sc_maxd(a, x)
#define R_FLOAT64_DIV(v, d) ((v) / (d))
#define R_FLOAT64_DPREP(n) ((double)(n))
#define R_FLOAT64_CANON(v) sc_canond(v)

/* All 50 kernels, extern (declared in reduce_impl.h). */
#define SC_DEFINE_(TY, OP) REDUCE_DEFINE_##OP(, , reduce_scalar, TY)
#define SC_DEFINE_TYPE_(TY, unused) REDUCE_FOR_OPS(SC_DEFINE_, TY)
REDUCE_FOR_TYPES(SC_DEFINE_TYPE_, ~)

#define SC_ENTRY_(TY, OP) [CHORUS_##OP] = reduce_scalar_##TY##_##OP,
#define SC_ROW_(TY, unused) [CHORUS_##TY] = {REDUCE_FOR_OPS(SC_ENTRY_, TY)},
const struct reduce_kernel_table reduce_kernels_scalar = {
    "scalar",
    {REDUCE_FOR_TYPES(SC_ROW_, ~)},
};
