/*
 * test_util.h - shared helpers of the Chorus multi-process tests.
 *
 * - an independent host reference: deterministic input patterns per
 *   (seed, rank, index) and the expected result of every reduction computed
 *   here, without Chorus' reduce code (own fp16/bf16 conversions, RNE);
 * - comparison rules: integers exact (two's complement wrap), floats exact
 *   (the patterns make sums and products exact), AVG on floats within a
 *   couple of ulps when the division is inexact;
 * - guarded buffers (guard bytes around every buffer, optional misalignment);
 * - reporting: CHECK() and friends print rank, the current case (collective,
 *   type, op, count, in-place...), first wrong index, got/expected;
 * - MPI helpers that poll with sleeps instead of spinning, because MPICH's
 *   blocking collectives spin and are very slow when ranks outnumber cores.
 */
#ifndef CHORUS_TEST_UTIL_H
#define CHORUS_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <mpi.h>

#include "chorus.h"

/* ---- state and reporting -------------------------------------------------- */

extern int tu_rank;         /* MPI_COMM_WORLD rank (0 before tu_init) */
extern int tu_nranks;       /* MPI_COMM_WORLD size */
extern _Atomic long long tu_checks; /* checks made by this rank (any thread) */
extern _Atomic long long tu_fails;  /* failed checks of this rank (any thread) */
extern int tu_verbose;      /* TEST_VERBOSE=1 or -v: trace cases */

/* Reads TEST_VERBOSE and the MPI rank/size. Call after MPI_Init. */
void tu_init(void);

/* Sets the description of the case being tested, printed with failures. */
void tu_set_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *tu_case(void);

/* A short class of the current case ("allreduce inplace=1 mode=wait"):
 * failures are counted per category, a few of each printed in full, and
 * tu_summary lists the counts. "" (the default): up to TU_MAX_PRINTS. */
void tu_set_category(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Records one failure and prints it with the rank and the current case
 * (within the print limits of its category). */
void tu_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define TU_MAX_PRINTS 40

#define CHECK(cond, ...)                                   \
    do {                                                   \
        tu_checks++;                                       \
        if (!(cond))                                       \
            tu_fail_at(__FILE__, __LINE__, __VA_ARGS__);   \
    } while (0)

/* Checks that a Chorus call returned want; on failure prints the call, both
 * codes and chorus_get_last_error(). Evaluates to 1 if it matched. */
int tu_check_res_at(const char *file, int line, const char *call, chorus_result_t got,
                    chorus_result_t want);
#define CHECK_RES(expr, want) tu_check_res_at(__FILE__, __LINE__, #expr, (expr), (want))
#define CHECK_OK(expr) CHECK_RES(expr, CHORUS_SUCCESS)

/* Prints a line prefixed by the rank (flushes). */
void tu_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sums checks and failures over MPI_COMM_WORLD; rank 0 prints
 * "ok NAME np=N: K checks" or "FAIL NAME np=N: K failures (of K checks)".
 * Returns the exit code (0 iff no failure anywhere). */
int tu_summary(const char *name);

/* ---- MPI helpers that sleep while waiting ---------------------------------- */

void tu_mpi_wait(MPI_Request *req);
void tu_barrier(MPI_Comm comm);
void tu_allreduce_ll(long long *vals, int n, MPI_Op op, MPI_Comm comm); /* in place */
void tu_allgather_u64(uint64_t mine, uint64_t *all, MPI_Comm comm);
void tu_bcast(void *buf, int bytes, int root, MPI_Comm comm);
/* All ranks agree: returns the max of flag over comm. */
int tu_any(int flag, MPI_Comm comm);

double tu_now(void); /* seconds, monotonic */

/* ---- types ------------------------------------------------------------------- */

#define TU_NUM_TYPES 10
#define TU_NUM_OPS 5
#define TU_OP_NONE (-1) /* data movement: raw bit patterns */

size_t tu_type_size(chorus_datatype_t t);  /* independent of chorus_type_size */
const char *tu_type_name(chorus_datatype_t t);
const char *tu_op_name(int op);
int tu_type_is_float(chorus_datatype_t t);
int tu_type_is_signed(chorus_datatype_t t);

/* Own conversions, round to nearest even; NaN stays NaN, overflow -> inf. */
uint16_t tu_float_to_half(float f);
float tu_half_to_float(uint16_t h);
uint16_t tu_float_to_bf16(float f);
float tu_bf16_to_float(uint16_t b);
/* Exhaustive self test of the conversions; returns the number of errors. */
int tu_selftest_conversions(void);

/* Element access as raw bits (low bytes of the uint64). */
uint64_t tu_load(chorus_datatype_t t, const void *buf, size_t i);
void tu_store(chorus_datatype_t t, void *buf, size_t i, uint64_t bits);
/* Bits <-> values. */
double tu_bits_to_double(chorus_datatype_t t, uint64_t bits); /* floats and ints */
uint64_t tu_float_bits(chorus_datatype_t t, double v); /* rounds (RNE) into a float type */

/* ---- patterns and the reference -------------------------------------------------- */

uint64_t tu_hash(uint64_t seed, uint64_t a, uint64_t b);

/* The input element idx of rank (of nranks) for a case: bits in type t.
 * op TU_OP_NONE gives arbitrary bit patterns (for data movement); a reduction
 * op gives values whose reduction over nranks ranks is exact in type t. */
uint64_t tu_gen(chorus_datatype_t t, int op, int nranks, uint64_t seed, int rank, size_t idx);
/* Fills buf[0..count) with tu_gen(.., rank, first + i). */
void tu_fill(chorus_datatype_t t, int op, int nranks, uint64_t seed, int rank, void *buf,
             size_t first, size_t count);
/* Expected bits of element idx of the reduction with op over ranks
 * 0..nranks-1 of tu_gen(t, op, nranks, seed, r, idx), in rank order; floats
 * accumulate in float (double for FLOAT64) and round once. */
uint64_t tu_ref_reduce(chorus_datatype_t t, int op, int nranks, uint64_t seed, size_t idx);
/* Whether got is an acceptable result for exp: exact bits for integers and
 * data movement, numerically equal for floats, a few ulps for float AVG. */
int tu_elem_ok(chorus_datatype_t t, int op, uint64_t got, uint64_t exp);

/* Compares buf[0..count) with expect(ctx, i); reports the first wrong index
 * (what = "recvbuf", ...), got/expected and the number of wrong elements.
 * Counts as one check. Returns the number of wrong elements. */
typedef uint64_t (*tu_expect_fn)(const void *ctx, size_t i);
size_t tu_check_elems(const char *what, chorus_datatype_t t, int op, const void *buf,
                      size_t count, tu_expect_fn expect, const void *ctx);
/* Checks that bytes [0, n) of buf all equal byte b. One check. */
int tu_check_bytes(const char *what, const void *buf, size_t n, unsigned char b);

uint64_t tu_fnv1a(const void *buf, size_t n);

/* ---- guarded buffers --------------------------------------------------------------- */

#define TU_GUARD 64
#define TU_SENTINEL 0xCD

typedef struct {
    unsigned char *base; /* malloc'ed */
    unsigned char *ptr;  /* base + TU_GUARD + misalign: what the test uses */
    size_t bytes;
    size_t misalign;
} tu_buf_t;

/* Allocates bytes (+ guards), fills the data with TU_SENTINEL and the guards
 * with a known pattern. Returns 0, or -1 if out of memory. */
int tu_buf_alloc(tu_buf_t *b, size_t bytes, size_t misalign);
/* Checks the guards (one check; reports the first damaged guard byte). */
int tu_buf_check_guards(const tu_buf_t *b, const char *what);
void tu_buf_free(tu_buf_t *b);
/* Where tu_buf_alloc takes memory from (e.g. chorus_mem_alloc, so the
 * collectives' zero-copy paths run); NULL, NULL: malloc/free again. */
void tu_buf_set_allocator(void *(*alloc)(size_t bytes), void (*release)(void *p));

/* ---- misc -------------------------------------------------------------------------- */

/* Number of entries in /proc/self/fd, or -1. */
int tu_count_fds(void);
/* Number of entries in /dev/shm (prefix NULL: all; else names starting with
 * prefix), or -1. */
int tu_count_shm(const char *prefix);

#endif
