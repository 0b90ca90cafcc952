/* reduce.c - chooses the reduction kernel set once (CHORUS_REDUCE_ISA, CPU
 * support) and dispatches to it; public fp16/bf16 conversions. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "reduce.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define REDUCE_X86 1
#endif
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "log.h"
#include "reduce_impl.h"
#include "tunables.h"

/* What this CPU (and OS: __builtin_cpu_supports checks that the vector state
 * is saved) can run, probed once. */
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static int have_avx2, have_avx512;

#ifdef REDUCE_X86
static int cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    return (c & bit_F16C) != 0;
}

static void detect(void)
{
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2") && cpu_has_f16c();
    have_avx512 = have_avx2 && __builtin_cpu_supports("avx512f") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512dq");
}
#else
static void detect(void) {}
#endif

/* The kernel set named isa if this CPU can run it, else NULL. */
static const struct reduce_kernel_table *table_by_name(const char *isa)
{
    pthread_once(&detect_once, detect);
    if (!strcasecmp(isa, "scalar"))
        return &reduce_kernels_scalar;
    if (!strcasecmp(isa, "avx2"))
        return have_avx2 ? &reduce_kernels_avx2 : NULL;
    if (!strcasecmp(isa, "avx512"))
        return have_avx512 ? &reduce_kernels_avx512 : NULL;
    return NULL;
}

static int known_isa(const char *isa)
{
    return !strcasecmp(isa, "scalar") || !strcasecmp(isa, "avx2") || !strcasecmp(isa, "avx512");
}

static const struct reduce_kernel_table *best_table(void)
{
    const struct reduce_kernel_table *t = table_by_name("avx512");
    if (!t)
        t = table_by_name("avx2");
    return t ? t : &reduce_kernels_scalar;
}

static pthread_once_t select_once = PTHREAD_ONCE_INIT;
static const struct reduce_kernel_table *active;
static chorus_result_t select_result = CHORUS_SUCCESS;
static char select_error[160];

static void select_kernels(void)
{
    const char *want = chorus_tunables()->REDUCE_ISA;
    if (!want || !*want || !strcasecmp(want, "auto")) {
        active = best_table();
    } else if (!known_isa(want)) {
        select_result = CHORUS_INVALID_ARGUMENT;
        snprintf(select_error, sizeof select_error,
                 "CHORUS_REDUCE_ISA='%s' is not one of auto, avx512, avx2, scalar", want);
        active = best_table();
    } else if (!(active = table_by_name(want))) {
        select_result = CHORUS_INVALID_ARGUMENT;
        snprintf(select_error, sizeof select_error,
                 "CHORUS_REDUCE_ISA='%s': this CPU does not support it", want);
        active = best_table();
    }
    LOG_DEBUG("reduce", "reduction kernels: %s", active->name);
}

static inline const struct reduce_kernel_table *kernels(void)
{
    pthread_once(&select_once, select_kernels);
    return active;
}

chorus_result_t chorus_reduce_init(void)
{
    kernels();
    if (select_result != CHORUS_SUCCESS)
        return CHORUS_ERR(select_result, "%s", select_error);
    return CHORUS_SUCCESS;
}

const char *chorus_reduce_isa(void) { return kernels()->name; }

static void run(const struct reduce_kernel_table *t, chorus_datatype_t type, chorus_op_t op,
                void *dst, const void *const *srcs, int nsrc, size_t count, int avg_div)
{
    if ((unsigned)type >= CHORUS_NUM_TYPES || (unsigned)op >= CHORUS_NUM_OPS || nsrc < 1 ||
        count == 0)
        return;
    /* A divisor below 1 is meaningless for an average; treat it as 1 rather
     * than divide by zero (callers pass the number of ranks). */
    if (avg_div < 1)
        avg_div = 1;
    t->fn[type][op](dst, srcs, nsrc, 0, count, avg_div);
}

void chorus_reduce_many(chorus_datatype_t type, chorus_op_t op, void *dst,
                        const void *const *srcs, int nsrc, size_t count, int avg_div)
{
    run(kernels(), type, op, dst, srcs, nsrc, count, avg_div);
}

int chorus_reduce_many_isa(const char *isa, chorus_datatype_t type, chorus_op_t op, void *dst,
                           const void *const *srcs, int nsrc, size_t count, int avg_div)
{
    const struct reduce_kernel_table *t = isa ? table_by_name(isa) : NULL;
    if (!t)
        return -1;
    run(t, type, op, dst, srcs, nsrc, count, avg_div);
    return 0;
}

float chorus_half_to_float(unsigned short h) { return reduce_half_to_float(h); }
unsigned short chorus_float_to_half(float f) { return reduce_float_to_half(f); }
float chorus_bf16_to_float(unsigned short b) { return reduce_bf16_to_float(b); }
unsigned short chorus_float_to_bf16(float f) { return reduce_float_to_bf16(f); }
