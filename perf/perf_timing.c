/*
 * perf_timing.c - making the calls and timing them: one call of a variant
 * (Chorus out-of-place, in-place, or the MPI collective), the warm-up, the
 * interleaved timed rounds, and combining the ranks' times per -a.
 *
 * Apart from checking and output so the choices that make the numbers fair
 * (how long to warm up, when to add an untimed call after the barrier, the
 * rotation of variants) can be read and changed in one place.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_gettime */
#endif

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "perf_internal.h"

#define PERF_SYNC_CALL_BELOW_S 0.001 /* collectives shorter: untimed calls start each block */
#define PERF_SETTLE_S 0.01           /* ... about this long of them */
#define PERF_SETTLE_MAX_CALLS 5000
#define PERF_WARMUP_MIN_S 0.002     /* warm-up goes on past -w calls until this long ... */
#define PERF_WARMUP_MAX_CALLS 10000 /* ... or this many calls */

double perf_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *perf_error_text(chorus_result_t res)
{
    /* The last-error text starts with the result's name ("remote error: ..."). */
    const char *text = chorus_get_last_error();
    return text && *text ? text : chorus_get_error_string(res);
}

static void fail_call(const perf_ctx_t *x, const perf_case_t *c, const char *what,
                      chorus_result_t res)
{
    fprintf(stderr, "rank %d: %s(count %zu, %s%s%s) failed: %s\n", x->rank, what, c->count,
            perf_type_info[c->type].name, x->coll->has_op ? ", " : "",
            x->coll->has_op ? perf_op_names[c->op] : "", perf_error_text(res));
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 3);
}

/* ---- the sweep's own agreement between ranks ----------------------------- */
/* Warm-up length, times and error counts are agreed between sizes. With -m 1
 * through MPI, the referee both libraries are timed against. With -m 0
 * through Chorus: then a rank can only ever be inside Chorus when a peer
 * dies, and Chorus names the dead rank, where MPI (UCX) may wait for it for
 * good or end the job with its own error (tests/netns/kill_rank.sh). */
static void agree_failed(const perf_ctx_t *x, const char *what, chorus_result_t res)
{
    fprintf(stderr, "rank %d: %s (the sweep's bookkeeping) failed: %s\n", x->rank, what,
            perf_error_text(res));
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 3);
}

void perf_agree(const perf_ctx_t *x, void *buf, int n, chorus_datatype_t type, chorus_op_t op)
{
    if (x->opt.mpi) {
        MPI_Datatype mt = type == CHORUS_FLOAT64 ? MPI_DOUBLE
                          : type == CHORUS_UINT64 ? MPI_UNSIGNED_LONG_LONG : MPI_INT;
        MPI_Op mo = op == CHORUS_MAX ? MPI_MAX : op == CHORUS_MIN ? MPI_MIN : MPI_SUM;
        MPI_Allreduce(MPI_IN_PLACE, buf, n, mt, mo, MPI_COMM_WORLD);
        return;
    }
    chorus_result_t res = chorus_allreduce(buf, buf, (size_t)n, type, op, x->comm);
    if (res != CHORUS_SUCCESS)
        agree_failed(x, "chorus_allreduce", res);
}

static void agree_barrier(const perf_ctx_t *x)
{
    if (x->opt.mpi) {
        MPI_Barrier(MPI_COMM_WORLD);
        return;
    }
    chorus_result_t res = chorus_barrier(x->comm);
    if (res != CHORUS_SUCCESS)
        agree_failed(x, "chorus_barrier", res);
}

void perf_run_variant(const perf_ctx_t *x, const perf_case_t *c, int v)
{
    size_t ts = c->type_size;
    if (v == V_MPI) {
        int err = x->coll->run_mpi(c, x->send, x->recv);
        if (err != MPI_SUCCESS) {
            fprintf(stderr, "rank %d: %s failed with MPI error %d\n", x->rank, x->coll->mpi_call, err);
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
        return;
    }
    chorus_result_t res = v == V_OOP
        ? x->coll->run_chorus(c, x->send, x->recv)
        : x->coll->run_chorus(c, x->recv + c->ip_send_off * ts, x->recv + c->ip_recv_off * ts);
    if (res != CHORUS_SUCCESS)
        fail_call(x, c, x->coll->chorus_call, res);
}

/* How many untimed calls start each timed block of a variant. Ranks leave
 * the barrier before a block at different times; a first collective absorbs
 * that skew. When ranks outnumber cores, more is needed: MPICH's barrier
 * busy-polls, and the scheduler then favours the processes that did not spin
 * for the next ~10 ms, so whichever library runs right after an MPI_Barrier
 * runs slowly at first (measured: 200 calls of an 8 B allreduce on 8 ranks
 * take 8-17 ms after a barrier, 2 ms in steady state). Short collectives
 * therefore settle for about PERF_SETTLE_S, judged from the slowest rank's
 * warm-up of that variant so every rank makes the same number of calls. Long
 * collectives (>= PERF_SYNC_CALL_BELOW_S) need none. */
static int settle_calls(const perf_ctx_t *x, double warm_secs_per_iter)
{
    double t;
    if (x->opt.warmup == 0)
        return 1;
    t = warm_secs_per_iter;
    perf_agree(x, &t, 1, CHORUS_FLOAT64, CHORUS_MAX);
    if (t >= PERF_SYNC_CALL_BELOW_S)
        return 0;
    double calls = t > 0 ? PERF_SETTLE_S / t : PERF_SETTLE_MAX_CALLS;
    return calls < 1 ? 1 : calls > PERF_SETTLE_MAX_CALLS ? PERF_SETTLE_MAX_CALLS : (int)calls;
}

/* At least -w calls, repeated while under PERF_WARMUP_MIN_S: some libraries
 * (MPICH here) need far more than nccl-tests' 5 calls before a new size runs
 * at speed, and a short warm-up would slant the comparison. Ranks agree on
 * when to stop. Raises *secs_per_iter to the last round's time per call. */
static void warm_up(const perf_ctx_t *x, const perf_case_t *c, int v, double *secs_per_iter)
{
    int w = x->opt.warmup, more = w > 0, total = 0;
    double t0 = perf_now_s(), t = 0;
    agree_barrier(x);
    while (more) {
        double t1 = perf_now_s();
        for (int k = 0; k < w; k++)
            perf_run_variant(x, c, v);
        total += w;
        double t2 = perf_now_s();
        t = (t2 - t1) / w;
        int mine = t2 - t0 < PERF_WARMUP_MIN_S && total < PERF_WARMUP_MAX_CALLS;
        more = mine;
        perf_agree(x, &more, 1, CHORUS_INT32, CHORUS_MAX);
    }
    *secs_per_iter = t > *secs_per_iter ? t : *secs_per_iter;
}

/* Each library's block starts from that library's own barrier: MPICH's
 * busy-polls, and when ranks outnumber cores the processes that spun in it
 * are then held back by the scheduler for several milliseconds, which would
 * slow whatever runs next; Chorus' barrier yields and leaves no such trace. */
static void perf_block_barrier(const perf_ctx_t *x, const perf_case_t *c, int v)
{
    if (v == V_MPI) {
        MPI_Barrier(MPI_COMM_WORLD);
        return;
    }
    chorus_result_t res = chorus_barrier(c->comm);
    if (res != CHORUS_SUCCESS) /* a peer is gone: MPI_Barrier could wait for it for good */
        agree_failed(x, "chorus_barrier", res);
}

/* Per-iteration seconds of each variant on this rank (0 if not run). */
void perf_time_case(const perf_ctx_t *x, const perf_case_t *c, const int run[V_COUNT],
                    double secs[V_COUNT])
{
    int iters = x->opt.iters, rounds = iters < PERF_MAX_ROUNDS ? iters : PERF_MAX_ROUNDS;
    int settle[V_COUNT];
    for (int v = 0; v < V_COUNT; v++) {
        double warm = 0;
        secs[v] = 0;
        settle[v] = 0;
        if (run[v]) {
            warm_up(x, c, v, &warm);
            settle[v] = settle_calls(x, warm);
        }
    }
    for (int r = 0; r < rounds; r++) {
        int block = iters / rounds + (r < iters % rounds);
        for (int k = 0; k < V_COUNT; k++) {
            int v = (r + k) % V_COUNT; /* rotate who goes first */
            if (!run[v])
                continue;
            perf_block_barrier(x, c, v);
            for (int k2 = 0; k2 < settle[v]; k2++)
                perf_run_variant(x, c, v);
            double t0 = perf_now_s();
            for (int it = 0; it < block; it++)
                perf_run_variant(x, c, v);
            secs[v] += perf_now_s() - t0;
        }
    }
    for (int v = 0; v < V_COUNT; v++)
        secs[v] /= iters;
}

void perf_aggregate_times(const perf_ctx_t *x, double secs[V_COUNT])
{
    double out[V_COUNT];
    for (int v = 0; v < V_COUNT; v++) /* rank 0's: the others contribute 0 to a sum */
        out[v] = x->opt.agg == AGG_RANK0 ? (x->rank == 0 ? secs[v] : 0) : secs[v];
    switch (x->opt.agg) {
    case AGG_MIN: perf_agree(x, out, V_COUNT, CHORUS_FLOAT64, CHORUS_MIN); break;
    case AGG_MAX: perf_agree(x, out, V_COUNT, CHORUS_FLOAT64, CHORUS_MAX); break;
    case AGG_RANK0: perf_agree(x, out, V_COUNT, CHORUS_FLOAT64, CHORUS_SUM); break;
    default:
        perf_agree(x, out, V_COUNT, CHORUS_FLOAT64, CHORUS_SUM);
        for (int v = 0; v < V_COUNT; v++)
            out[v] /= x->nranks;
        break;
    }
    memcpy(secs, out, sizeof out);
}
