/*
 * perf_common.c - perf_main and the size sweep of the perf tools: checks the
 * options, sets up each case (its layout, MPI equivalents and input pattern),
 * allocates the buffers and runs every size, then prints the footer. The
 * pieces it drives are in perf_options.c, perf_check.c, perf_timing.c and
 * perf_output.c (see perf_internal.h).
 *
 * A row of the table, for each size:
 *   1. check (-c 1): one out-of-place and one in-place Chorus call on freshly
 *      filled inputs, compared element by element with values computed in
 *      perf_check.c; guard bytes around the receive buffer catch
 *      out-of-bounds writes;
 *   2. warm-up: -w calls of each variant, more until 2 ms have passed;
 *   3. timing: the -n iterations are split into rounds; each round runs one
 *      block of Chorus out-of-place, Chorus in-place and the MPI collective
 *      (the starting variant rotates), each block starting from an
 *      MPI_Barrier, so slow phases of the machine hit every variant alike.
 *      Collectives shorter than 1 ms make about 10 ms of untimed calls after
 *      the barrier, so the ranks' uneven exit from it (and the scheduler's
 *      after-effects of MPICH's busy-polling barrier when ranks outnumber
 *      cores) do not weigh on the timed calls; see perf_timing.c.
 *      A rank's time is its block times summed over rounds / iterations; ranks
 *      are then combined per -a (like nccl-tests: average by default).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* posix_memalign */
#endif

#include "perf_common.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chorus_mpi.h"
#include "perf_internal.h"

/* ---- one case: a type, an op and a size ------------------------------------ */

/* MPI has no fp16/bf16: reductions on them have no MPI peer, but moving them
 * is moving 16-bit words, which MPI_UINT16_T does byte for byte. */
static MPI_Datatype mpi_type_of(chorus_datatype_t t, int reduces)
{
    switch (t) {
    case CHORUS_INT8: return MPI_INT8_T;
    case CHORUS_UINT8: return MPI_UINT8_T;
    case CHORUS_INT32: return MPI_INT32_T;
    case CHORUS_UINT32: return MPI_UINT32_T;
    case CHORUS_INT64: return MPI_INT64_T;
    case CHORUS_UINT64: return MPI_UINT64_T;
    case CHORUS_FLOAT16:
    case CHORUS_BFLOAT16: return reduces ? MPI_DATATYPE_NULL : MPI_UINT16_T;
    case CHORUS_FLOAT32: return MPI_FLOAT;
    case CHORUS_FLOAT64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;
    }
}

/* MPI has no average: MPI_SUM then a division is not the same operation. */
static MPI_Op mpi_op_of(chorus_op_t op)
{
    switch (op) {
    case CHORUS_SUM: return MPI_SUM;
    case CHORUS_PROD: return MPI_PROD;
    case CHORUS_MIN: return MPI_MIN;
    case CHORUS_MAX: return MPI_MAX;
    default: return MPI_OP_NULL;
    }
}

static size_t type_size_of(chorus_datatype_t t)
{
    static const size_t sizes[CHORUS_NUM_TYPES] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
    return sizes[t];
}

/* Fills c for a requested size; returns the actual S, or 0 to skip it. */
static size_t setup_case(const perf_ctx_t *x, perf_case_t *c, chorus_datatype_t t, chorus_op_t op,
                         size_t req)
{
    const perf_coll_t *coll = x->coll;
    memset(c, 0, sizeof *c);
    c->rank = x->rank;
    c->nranks = x->nranks;
    c->root = coll->has_root ? x->opt.root : -1;
    c->comm = x->comm;
    c->mpi_comm = MPI_COMM_WORLD;
    c->type = t;
    c->op = coll->has_op ? op : CHORUS_SUM;
    c->type_size = type_size_of(t);
    c->mpi_type = mpi_type_of(t, coll->has_op);
    c->mpi_op = coll->has_op ? mpi_op_of(op) : MPI_OP_NULL;
    size_t per = c->type_size * (coll->whole_buffer ? (size_t)x->nranks : 1);
    c->count = req / per;
    if (c->count == 0)
        return 0;
    coll->layout(c);
    perf_set_pattern(c, coll->reduces_values);
    return c->count * per;
}

static int mpi_usable(const perf_ctx_t *x, const perf_case_t *c)
{
    return x->opt.mpi && c->mpi_type != MPI_DATATYPE_NULL &&
           (!x->coll->has_op || c->mpi_op != MPI_OP_NULL) && c->count <= (size_t)INT_MAX;
}

/* ---- sweep ----------------------------------------------------------------- */

#define PERF_MAX_SIZES 100000

/* Returns -1 if the sweep has more than PERF_MAX_SIZES sizes (or no memory). */
static int plan_sizes(perf_ctx_t *x)
{
    size_t cap = 16, s = x->opt.min_bytes;
    x->sizes = malloc(cap * sizeof *x->sizes);
    x->nsizes = 0;
    while (x->sizes && s <= x->opt.max_bytes) {
        if (x->nsizes == cap)
            x->sizes = realloc(x->sizes, (cap *= 2) * sizeof *x->sizes);
        if (!x->sizes)
            break;
        x->sizes[x->nsizes++] = s;
        size_t next;
        if (x->opt.step_factor > 1) {
            double d = (double)s * x->opt.step_factor;
            next = d >= (double)SIZE_MAX ? SIZE_MAX : (size_t)d;
            if (next <= s)
                next = s + 1;
        } else {
            next = s + x->opt.step_bytes;
        }
        if (next <= s) /* wrapped */
            break;
        if (x->nsizes == PERF_MAX_SIZES)
            return -1;
        s = next;
    }
    return x->sizes ? 0 : -1;
}

/* Page-aligned, guard bytes on both sides; returns the usable start. */
static unsigned char *alloc_buffer(size_t bytes)
{
    void *p = NULL;
    if (bytes > SIZE_MAX - 2 * PERF_GUARD_BYTES ||
        posix_memalign(&p, 4096, bytes + 2 * PERF_GUARD_BYTES) != 0)
        return NULL;
    memset(p, 0, bytes + 2 * PERF_GUARD_BYTES); /* touch every page before timing */
    return (unsigned char *)p + PERF_GUARD_BYTES;
}

static int alloc_buffers(perf_ctx_t *x)
{
    size_t send = 0, recv = 0;
    perf_case_t c;
    for (int t = 0; t < x->opt.ntypes; t++)
        for (size_t k = 0; k < x->nsizes; k++) {
            if (!setup_case(x, &c, x->opt.types[t], x->opt.ops[0], x->sizes[k]))
                continue;
            size_t sb = c.send_elems * c.type_size, rb = c.recv_elems * c.type_size;
            size_t ib = x->coll->has_in_place ? perf_ip_extent(&c) : 0;
            send = sb > send ? sb : send;
            recv = rb > recv ? rb : recv;
            recv = ib > recv ? ib : recv;
        }
    x->send_cap = send;
    x->recv_cap = recv;
    x->send = alloc_buffer(send);
    x->recv = alloc_buffer(recv);
    int ok = x->send && x->recv, all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!ok)
        fprintf(stderr, "rank %d: cannot allocate %zu + %zu bytes of buffers\n", x->rank, send, recv);
    return all_ok ? 0 : -1;
}

static void free_buffers(perf_ctx_t *x)
{
    if (x->send)
        free(x->send - PERF_GUARD_BYTES);
    if (x->recv)
        free(x->recv - PERF_GUARD_BYTES);
}

static void add_row(perf_ctx_t *x, const perf_row_t *row)
{
    if (x->nrows == x->rows_cap) {
        size_t cap = x->rows_cap ? 2 * x->rows_cap : 64;
        perf_row_t *r = realloc(x->rows, cap * sizeof *r);
        if (!r)
            return; /* JSON loses rows; the table has them */
        x->rows = r;
        x->rows_cap = cap;
    }
    x->rows[x->nrows++] = *row;
}

/* -T: the message on_alarm writes is set before each size. */
static char alarm_msg[256];
static void on_alarm(int sig)
{
    (void)sig;
    ssize_t w = write(2, alarm_msg, strlen(alarm_msg));
    (void)w;
    _exit(4);
}

static void run_size(perf_ctx_t *x, perf_case_t *c, size_t size)
{
    const perf_coll_t *coll = x->coll;
    perf_row_t row;
    memset(&row, 0, sizeof row);
    row.size = size;
    row.count = c->count;
    row.type = c->type;
    row.op = c->op;
    row.root = c->root;
    row.has_ip = coll->has_in_place;
    row.has_mpi = mpi_usable(x, c);
    row.ratio = -1;

    if (x->opt.timeout_s > 0) {
        snprintf(alarm_msg, sizeof alarm_msg,
                 "rank %d: timeout: %s (%zu bytes, %s) took more than %d s\n", x->rank,
                 coll->chorus_call, size, perf_type_info[c->type].name, x->opt.timeout_s);
        alarm((unsigned)x->opt.timeout_s);
    }
    unsigned long long wrong[2] = {0, 0}, oob = 0, tot[3];
    if (x->opt.check)
        perf_check_case(x, c, wrong, &oob);
    int run[V_COUNT] = {1, coll->has_in_place, row.has_mpi};
    double secs[V_COUNT];
    perf_time_case(x, c, run, secs);
    if (x->opt.timeout_s > 0)
        alarm(0);

    perf_aggregate_times(x, secs);
    unsigned long long mine[3] = {wrong[0], wrong[1], oob};
    memcpy(tot, mine, sizeof mine);
    perf_agree(x, tot, 3, CHORUS_UINT64, CHORUS_SUM);
    row.wrong[0] = tot[0];
    row.wrong[1] = tot[1];
    x->oob += tot[2];
    x->wrong += tot[0] + tot[1];
    if (x->rank != 0)
        return;

    double factor = coll->busbw_factor(x->nranks);
    for (int v = 0; v < V_COUNT; v++) {
        if (!run[v])
            continue;
        row.time_us[v] = secs[v] * 1e6;
        row.algbw[v] = secs[v] > 0 ? (double)size / secs[v] / 1e9 : 0;
        row.busbw[v] = row.algbw[v] * factor;
    }
    x->busbw_sum += row.busbw[V_OOP] + (row.has_ip ? row.busbw[V_IP] : 0);
    x->busbw_n += 1 + row.has_ip;
    int cmp = x->coll->mpi_in_place && row.has_ip ? V_IP : V_OOP;
    if (row.has_mpi && row.busbw[V_MPI] > 0 && row.busbw[cmp] > 0) {
        row.ratio = row.busbw[cmp] / row.busbw[V_MPI];
        x->ratio_logsum += log(row.ratio);
        x->ratio_n++;
    }
    perf_progress_clear(x);
    perf_print_row(x, &row);
    if (x->opt.json_path || x->opt.probe_bytes) /* kept for the JSON and the -B footer */
        add_row(x, &row);
}

/* Without checking, inputs are filled once per type and op: sane numbers
 * (no NaN or denormals that would time differently). */
static void fill_for_timing(const perf_ctx_t *x, perf_case_t *c)
{
    size_t keep = c->send_elems;
    c->send_elems = x->send_cap / c->type_size;
    perf_fill_input(c, x->send);
    c->send_elems = x->recv_cap / c->type_size;
    perf_fill_input(c, x->recv);
    c->send_elems = keep;
}

static void sweep(perf_ctx_t *x)
{
    int nops = x->coll->has_op ? x->opt.nops : 1;
    size_t step = 0, total = (size_t)x->opt.ntypes * (size_t)nops * x->nsizes;
    for (int t = 0; t < x->opt.ntypes; t++)
        for (int o = 0; o < nops; o++) {
            size_t last = 0;
            int filled = 0;
            for (size_t k = 0; k < x->nsizes; k++, step++) {
                perf_case_t c;
                size_t size = setup_case(x, &c, x->opt.types[t], x->opt.ops[o], x->sizes[k]);
                if (size == 0 || size == last) /* too small for the type, or rounded to the same */
                    continue;
                last = size;
                if (!x->opt.check && !filled) {
                    fill_for_timing(x, &c);
                    filled = 1;
                }
                perf_progress(x, step, total, &c, size);
                run_size(x, &c, size);
            }
        }
    perf_progress_clear(x);
}

static char *join_command(int argc, char **argv)
{
    size_t n = 1;
    for (int k = 0; k < argc; k++)
        n += 4 * strlen(argv[k]) + 3;
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    for (int k = 0; k < argc; k++) {
        const char *a = argv[k];
        int plain = *a != '\0' && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789-_./=,:+@%") == strlen(a);
        if (k)
            *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (; *a; a++)
            p += *a == '\'' ? sprintf(p, "'\\''") : sprintf(p, "%c", *a);
        *p++ = '\'';
    }
    *p = '\0';
    return s;
}

/* -B: the copy probe (before and after the sweep: the ceiling is the better
 * of the two, so a noisy moment cannot lower it). */
static int probe_memory(perf_ctx_t *x, const char *when)
{
    if (perf_membw_probe(x, &x->membw) != 0) {
        if (x->rank == 0)
            fprintf(stderr, "-B %zu: cannot allocate the probe's buffers\n", x->opt.probe_bytes);
        return -1;
    }
    if (x->rank == 0) {
        printf("# Memory probe %-6s : memcpy of %zu bytes: %.2f GB/s per rank with all %d ranks "
               "copying, %.2f GB/s for rank 0 alone (best so far)\n", when, x->opt.probe_bytes,
               x->membw.copy_all, x->nranks, x->membw.copy_one);
        fflush(stdout);
    }
    return 0;
}

/* The footer of -B: the ceiling, and each large row's busbw as a share of it. */
static void print_ceiling(const perf_ctx_t *x)
{
    double ceil_bw = perf_busbw_ceiling(x);
    if (!x->opt.probe_bytes)
        return;
    if (ceil_bw <= 0) {
        printf("# Busbw ceiling        : no model for %s (docs/perf.md)\n", x->coll->chorus_call);
        return;
    }
    printf("# Busbw ceiling        : %.2f GB/s (from the probe; docs/perf.md derives it)\n",
           ceil_bw);
    /* Smaller calls can stay in the caches, where the probe's rate does not bound them. */
    size_t from = x->opt.probe_bytes / 4 > PERF_CEILING_MIN_BYTES ? x->opt.probe_bytes / 4
                                                                  : PERF_CEILING_MIN_BYTES;
    printf("# %12s %10s %7s %10s %7s   (sizes from -B / 4 = %zu bytes)\n", "size", "busbw",
           "%ceil", "mpi busbw", "%ceil", from);
    for (size_t k = 0; k < x->nrows; k++) {
        const perf_row_t *r = &x->rows[k];
        if (r->size < from)
            continue;
        char mpi_bw[16] = "n/a", mpi_pct[16] = "n/a";
        if (r->has_mpi) {
            snprintf(mpi_bw, sizeof mpi_bw, "%.2f", r->busbw[V_MPI]);
            snprintf(mpi_pct, sizeof mpi_pct, "%.0f%%", 100 * r->busbw[V_MPI] / ceil_bw);
        }
        printf("# %12zu %10.2f %6.0f%% %10s %7s\n", r->size, r->busbw[V_OOP],
               100 * r->busbw[V_OOP] / ceil_bw, mpi_bw, mpi_pct);
    }
}

/* Releases everything and ends MPI; every rank passes the same status. */
static int finish(perf_ctx_t *x, int status)
{
    if (x->comm) {
        chorus_comm_finalize(x->comm);
        chorus_comm_destroy(x->comm);
    }
    if (x->json)
        fclose(x->json);
    free_buffers(x);
    free(x->sizes);
    free(x->cmdline);
    MPI_Finalize();
    return status;
}

int perf_main(int argc, char **argv, const perf_coll_t *coll)
{
    perf_ctx_t x;
    memset(&x, 0, sizeof x);
    x.coll = coll;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &x.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &x.nranks);

    /* Options, sizes and the JSON path are checked before anything is created.
     * Every rank sees the same argv, so every rank takes the same decision. */
    int status = perf_parse_options(argc, argv, coll, x.rank, &x.opt);
    if (status < 0 && coll->has_root && x.opt.root >= x.nranks) {
        if (x.rank == 0)
            fprintf(stderr, "%s: -r %d: the root must be below the number of ranks (%d)\n",
                    argv[0], x.opt.root, x.nranks);
        status = 2;
    }
    if (status < 0 && plan_sizes(&x) != 0) {
        if (x.rank == 0)
            fprintf(stderr, "%s: the sweep from -b %zu to -e %zu has more than %d sizes: use a "
                    "larger -i or -f\n", argv[0], x.opt.min_bytes, x.opt.max_bytes,
                    PERF_MAX_SIZES);
        status = 2;
    }
    if (status < 0 && x.rank == 0 && x.opt.json_path && !(x.json = fopen(x.opt.json_path, "w"))) {
        fprintf(stderr, "%s: -J %s: %s\n", argv[0], x.opt.json_path, strerror(errno));
        status = 2;
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (status >= 0)
        return finish(&x, status);

    x.cmdline = join_command(argc, argv);
    x.progress_tty = isatty(2);
    x.t_start = perf_now_s();
    if (x.opt.timeout_s > 0)
        signal(SIGALRM, on_alarm);

    chorus_result_t res = chorus_comm_init_mpi(&x.comm, MPI_COMM_WORLD);
    int ok = res == CHORUS_SUCCESS, all_ok;
    if (!ok) {
        fprintf(stderr, "rank %d: chorus_comm_init_mpi failed: %s\n", x.rank,
                perf_error_text(res));
        x.comm = NULL;
    }
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok)
        return finish(&x, 3);
    if (alloc_buffers(&x) != 0)
        return finish(&x, 3);

    perf_print_header(&x, argv[0]);
    if (x.opt.probe_bytes && probe_memory(&x, "before") != 0)
        return finish(&x, 3);
    sweep(&x);
    if (x.opt.probe_bytes && probe_memory(&x, "after") != 0)
        return finish(&x, 3);

    status = (x.oob || x.wrong) ? 1 : 0;
    if (x.rank == 0) {
        double avg_bw = x.busbw_n ? x.busbw_sum / x.busbw_n : 0;
        double avg_ratio = x.ratio_n ? exp(x.ratio_logsum / x.ratio_n) : 0;
        if (x.opt.check) {
            printf("# Out of bounds values : %llu %s\n", x.oob, x.oob ? "FAILED" : "OK");
            printf("# Wrong values         : %llu %s\n", x.wrong, x.wrong ? "FAILED" : "OK");
        } else {
            printf("# Out of bounds values : not checked (-c 0)\n");
        }
        printf("# Avg bus bandwidth    : %g \n", avg_bw);
        print_ceiling(&x);
        if (x.opt.mpi) {
            if (x.ratio_n)
                printf("# Avg Chorus/MPI ratio : %.3f (geometric mean of busbw ratios over %d "
                       "rows)\n", avg_ratio, x.ratio_n);
            else
                printf("# Avg Chorus/MPI ratio : n/a (no MPI equivalent for this type or op)\n");
        }
        printf("#\n");
        fflush(stdout);
        if (x.json) {
            if (perf_write_json(&x, x.json, avg_bw, avg_ratio) != 0 && status == 0)
                status = 1;
            x.json = NULL; /* closed */
        }
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);

    res = chorus_comm_finalize(x.comm);
    if (res != CHORUS_SUCCESS) {
        fprintf(stderr, "rank %d: chorus_comm_finalize failed: %s\n", x.rank,
                perf_error_text(res));
        status = 3;
    }
    chorus_comm_destroy(x.comm);
    x.comm = NULL;
    free(x.rows);
    return finish(&x, status);
}
