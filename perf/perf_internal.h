/*
 * perf_internal.h - private to the perf engine (perf_*.c): what its pieces
 * share. The tools themselves see only perf_common.h.
 *
 * The engine is split by job:
 *   perf_options.c  the command line, and the type and op tables it names;
 *   perf_check.c    input patterns, expected values, result and guard checks;
 *   perf_timing.c   running a variant, warm-up, interleaved timing, combining
 *                   the ranks' times;
 *   perf_output.c   the header, the table rows, progress and the JSON file;
 *   perf_common.c   perf_main and the size sweep that drives the rest.
 */
#ifndef CHORUS_PERF_INTERNAL_H
#define CHORUS_PERF_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "perf_common.h"

#define PERF_GUARD_BYTES 4096  /* checked before and after every receive buffer */
#define PERF_POISON 0xA5       /* fill of guards and of elements a call must not write */
#define PERF_MAX_ROUNDS 5      /* timing rounds per size (fewer if -n is smaller) */
#define PERF_CEILING_MIN_BYTES (1u << 20) /* -B footer: rows from max(this, -B / 4) */
#define PERF_PROGRESS_AFTER_S 10.0 /* auto progress off a tty: once a sweep runs this long */

/* ---- types and ops (perf_options.c) ---------------------------------------- */

typedef struct {
    const char *name;    /* printed; the nccl-tests name */
    const char *aliases; /* also accepted by -d, space separated */
    int is_float;
    int is_signed;
    /* Every integer of magnitude <= exact_max is held exactly (and is in range). */
    double exact_max;
    double eps;              /* floats: machine epsilon, scales the check tolerance */
    double min_val, max_val; /* integers: the range (beyond it values wrap) */
} perf_type_info_t;

extern const perf_type_info_t perf_type_info[CHORUS_NUM_TYPES];
extern const char *const perf_op_names[CHORUS_NUM_OPS];

/* ---- options (perf_options.c) ---------------------------------------------- */

enum { AGG_RANK0 = 0, AGG_AVG = 1, AGG_MIN = 2, AGG_MAX = 3 };
extern const char *const perf_agg_names[4];

typedef struct {
    size_t min_bytes, max_bytes, step_bytes;
    double step_factor; /* > 1: multiply; else add step_bytes */
    int iters, warmup, check, agg, mpi, progress /* -1 auto */, root, timeout_s;
    size_t probe_bytes; /* -B: bytes each rank copies in the memory probe; 0: no probe */
    const char *json_path;
    const char *type_arg, *op_arg;
    chorus_datatype_t types[CHORUS_NUM_TYPES];
    int ntypes;
    chorus_op_t ops[CHORUS_NUM_OPS];
    int nops;
} perf_opts_t;

/* Returns -1 to go on, else the exit status (0 after -h, 2 after an error).
 * Every rank parses; only rank 0 prints. */
int perf_parse_options(int argc, char **argv, const perf_coll_t *coll, int rank,
                       perf_opts_t *o);

/* ---- the run --------------------------------------------------------------- */

enum { V_OOP, V_IP, V_MPI, V_COUNT }; /* the timed variants */

typedef struct {
    size_t size, count;
    chorus_datatype_t type;
    chorus_op_t op;
    int root;
    int has_ip, has_mpi;
    double time_us[V_COUNT], algbw[V_COUNT], busbw[V_COUNT];
    unsigned long long wrong[2]; /* out-of-place, in-place */
    double ratio;                /* chorus out-of-place busbw / MPI busbw; < 0: n/a */
} perf_row_t;

/* What the memory probe measured (perf_membw.c), in GB/s per rank. */
typedef struct {
    double copy_all; /* memcpy rate of each rank while every rank copies */
    double copy_one; /* memcpy rate of rank 0 copying alone */
    int probes;      /* probes run (before and after the sweep) */
} perf_membw_t;

typedef struct {
    const perf_coll_t *coll;
    perf_opts_t opt;
    perf_membw_t membw;
    int rank, nranks;
    chorus_comm_t comm;
    unsigned char *send, *recv;   /* receive side: in-place runs use recv */
    size_t send_cap, recv_cap;    /* bytes usable (guards excluded) */
    size_t *sizes;                /* the requested sizes of the sweep */
    size_t nsizes;
    /* totals for the footer */
    unsigned long long oob, wrong;
    double busbw_sum, ratio_logsum;
    int busbw_n, ratio_n;
    perf_row_t *rows; /* rank 0 */
    size_t nrows, rows_cap;
    /* progress */
    int progress_tty;
    double t_start, t_progress;
    int progress_shown;
    char *cmdline;
    FILE *json; /* rank 0, -J: opened before the sweep so a bad path fails early */
} perf_ctx_t;

/* ---- checking (perf_check.c) ----------------------------------------------- */

/* Sets c's input value range (the pat_* fields) for its type, op and ranks. */
void perf_set_pattern(perf_case_t *c, int reduces);
/* Bytes of the in-place buffer for this case. */
size_t perf_ip_extent(const perf_case_t *c);
/* Writes this rank's c->send_elems input elements to buf. */
void perf_fill_input(const perf_case_t *c, void *buf);
/* One checked out-of-place and one checked in-place call. */
void perf_check_case(const perf_ctx_t *x, const perf_case_t *c, unsigned long long wrong[2],
                     unsigned long long *oob);

/* ---- timing (perf_timing.c) ------------------------------------------------ */

double perf_now_s(void);
/* What a failed Chorus call says: its last-error text, else the result's name. */
const char *perf_error_text(chorus_result_t res);
/* One call of variant v; a failed call aborts every rank (exit status 3). */
void perf_run_variant(const perf_ctx_t *x, const perf_case_t *c, int v);
/* Per-iteration seconds of each variant on this rank (0 if not run). */
void perf_time_case(const perf_ctx_t *x, const perf_case_t *c, const int run[V_COUNT],
                    double secs[V_COUNT]);
/* Combines the ranks' secs per -a; every rank gets the result. */
void perf_aggregate_times(const perf_ctx_t *x, double secs[V_COUNT]);
/* In-place allreduce of the sweep's bookkeeping (int32, uint64 or float64;
 * sum, min or max): over MPI with -m 1, over Chorus with -m 0 (see
 * perf_timing.c). A failure aborts every rank (exit status 3). */
void perf_agree(const perf_ctx_t *x, void *buf, int n, chorus_datatype_t type, chorus_op_t op);

/* ---- the memory ceiling (perf_membw.c) ------------------------------------- */

/* Runs the copy probe on every rank (collective over MPI_COMM_WORLD) and
 * raises x->membw's rates to what it saw; -1 (on every rank) if a buffer
 * could not be allocated. */
int perf_membw_probe(const perf_ctx_t *x, perf_membw_t *m);
/* The busbw ceiling of this tool's collective from the probe, GB/s; 0 if
 * there is none (no probe, or no model for the collective). */
double perf_busbw_ceiling(const perf_ctx_t *x);

/* ---- output (perf_output.c) ------------------------------------------------ */

/* Gathers every rank's host, pid and cpu; rank 0 prints the header. */
void perf_print_header(perf_ctx_t *x, const char *argv0);
void perf_print_row(const perf_ctx_t *x, const perf_row_t *row);
void perf_progress(perf_ctx_t *x, size_t step, size_t total, const perf_case_t *c, size_t size);
void perf_progress_clear(perf_ctx_t *x);
/* Writes the run to f and closes it; returns -1 if that failed. */
int perf_write_json(const perf_ctx_t *x, FILE *f, double avg_busbw, double avg_ratio);

#endif
