/* reduce.h - element-wise reduction kernels for every type x op, with SIMD
 * variants (AVX-512, AVX2, scalar) chosen once at run time. */
#ifndef CHORUS_REDUCE_H
#define CHORUS_REDUCE_H

#include <stddef.h>
#include "chorus.h"

/* Selects the kernel set (CHORUS_REDUCE_ISA, CPU support). Idempotent and
 * thread-safe; returns CHORUS_INVALID_ARGUMENT if the requested ISA is unknown
 * or unsupported by this CPU. Called from communicator init. */
chorus_result_t chorus_reduce_init(void);
/* "avx512", "avx2" or "scalar": the set in use. */
const char *chorus_reduce_isa(void);

/*
 * dst[i] = srcs[0][i] op srcs[1][i] op ... op srcs[nsrc-1][i], for i < count,
 * applied left to right in index order, so every caller passing the same
 * sources in the same order gets bit-identical results.
 * - CHORUS_AVG sums, then divides by avg_div (integers: truncating division;
 *   floats: multiply by nothing, a true division). Other ops ignore avg_div.
 * - FLOAT16 and BFLOAT16 accumulate in float32 across all sources and round
 *   once to nearest-even at the end (NaN stays NaN, overflow gives inf).
 * - Integers wrap on overflow (two's complement), never undefined behaviour.
 * - MIN/MAX on floats: if any input is NaN the result is that NaN (quieted).
 *   SUM/PROD/AVG producing NaN return the canonical quiet NaN of the type,
 *   so every kernel set (and every compiler) gives identical bits.
 * - avg_div < 1 is treated as 1.
 * - dst may be identical to any source (exact aliasing), but must not
 *   partially overlap one. Pointers need no particular alignment.
 * - nsrc >= 1; nsrc == 1 copies (and divides for AVG).
 */
void chorus_reduce_many(chorus_datatype_t type, chorus_op_t op, void *dst,
                        const void *const *srcs, int nsrc, size_t count, int avg_div);

/* The same with one kernel set forced (for tests comparing sets):
 * isa is "avx512", "avx2" or "scalar"; returns -1 if unsupported here. */
int chorus_reduce_many_isa(const char *isa, chorus_datatype_t type, chorus_op_t op, void *dst,
                           const void *const *srcs, int nsrc, size_t count, int avg_div);

/* Conversions used by kernels and tests (round to nearest even). */
float chorus_half_to_float(unsigned short h);
unsigned short chorus_float_to_half(float f);
float chorus_bf16_to_float(unsigned short b);
unsigned short chorus_float_to_bf16(float f);

#endif
