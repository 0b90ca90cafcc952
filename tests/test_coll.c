/*
 * test_coll.c - correctness of every collective of Chorus, under mpirun.
 *
 * Sweeps collective x type x op x count x in-place x root, with misaligned
 * buffers and guard bytes, checks each result against the host reference of
 * test_util (never Chorus' own reduce code), checks that out-of-place inputs
 * are left untouched, that allreduce results are bit-identical on all ranks,
 * then the nonblocking forms (wait, test polling, several outstanding and
 * completed in any order) and barrier semantics.
 *
 * Usage: mpirun -np N test_coll [--quick] [--no-large] [--large-mib M]
 *            [--coll NAME] [--max-count C] [--seed S] [--split] [-v]
 *   --quick        a smaller sweep (also TEST_COLL_QUICK=1), e.g. for np=8
 *   --no-large     skip the 64 MiB cases
 *   --coll NAME    only this collective (allreduce, allgather, alltoall,
 *                  alltoallv, reduce_scatter, broadcast, reduce, barrier)
 *   --max-count C  skip counts above C (e.g. for valgrind)
 *   --split        run on two communicators split from the world (even and
 *                  odd ranks, reversed order), both halves at the same time
 *   --mem chorus   every buffer from chorus_mem_alloc (zero-copy paths, with
 *                  CHORUS_ZCOPY_MIN at most the sizes run); checks that peers'
 *                  allocations were mapped (zero copy ran) and unmapped at
 *                  destroy, and chorus_mem_alloc/free's errors
 *   --mem mixed    the same on even ranks only: every rank must fall back to
 *                  the ordinary algorithms (checks that nothing was mapped)
 * Rank 0 ends with "ok test_coll np=N: K checks" or "FAIL test_coll ...".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>
#include "chorus.h"
#include "chorus_mpi.h"
#include "test_util.h"

enum { C_ALLREDUCE, C_ALLGATHER, C_ALLTOALL, C_ALLTOALLV, C_REDUCE_SCATTER, C_BCAST, C_REDUCE,
       C_BARRIER, C_NUM };
static const char *coll_names[C_NUM] = {"allreduce", "allgather",  "alltoall", "alltoallv",
                                        "reduce_scatter", "broadcast", "reduce", "barrier"};
enum { M_BLOCKING, M_WAIT, M_TEST };
static const char *mode_names[] = {"blocking", "wait", "test"};

static chorus_comm_t g_comm;
static int me, n;                /* rank and size of g_comm (and of g_mpi) */
static MPI_Comm g_mpi;           /* the MPI communicator with g_comm's ranks */
static chorus_comm_t g_parent;   /* --split: the world communicator split */
static int opt_split;
static int comm_broken;          /* a call failed: recreate the comm at the group end */
static uint64_t g_seed = 0x5eed;
static uint64_t case_no;
static int opt_quick, opt_large = 1, opt_coll = -1;
static size_t opt_max_count = (size_t)-1, opt_large_bytes = (size_t)64 << 20;
enum { MEM_MALLOC, MEM_CHORUS, MEM_MIXED };
static int opt_mem = MEM_MALLOC;

/* allreduce result hashes of the current group, compared across ranks */
static uint64_t *hashes;
static size_t nhashes, cap_hashes;

typedef struct {
    int coll;
    chorus_datatype_t type;
    int op; /* TU_OP_NONE for data movement */
    size_t count;
    int inplace, root, mode, null_recv;
    uint64_t seed;
    size_t ts;
    tu_buf_t sb, rb;
    int have_sb, have_rb;
    const void *send;
    void *recv;
    size_t sc[64], sd[64], rc[64], rd[64]; /* alltoallv, n <= 64 */
    chorus_request_t req;
    chorus_result_t res;
    char desc[256];
} op_t;

static int is_reduction(int coll)
{
    return coll == C_ALLREDUCE || coll == C_REDUCE || coll == C_REDUCE_SCATTER;
}

/* ---- alltoallv layout ------------------------------------------------------------ */

static size_t a2av_count(const op_t *o, int s, int d)
{
    size_t c = o->count;
    if (!c)
        return 0;
    int a = s, b = d;
    if (o->inplace) { /* symmetric, so in place is well defined */
        a = s < d ? s : d;
        b = s < d ? d : s;
    }
    if ((a + 2 * b) % 4 == 3)
        return 0; /* some empty blocks */
    return c / 2 + (size_t)((a * 7 + b * 3) % 5) * (c + 3) / 4;
}

/* Displacements (elements) of rank's send (side 0) or receive (side 1)
 * buffer; returns the total elements of that buffer. */
static size_t a2av_layout(const op_t *o, int rank, int side, size_t *counts, size_t *displs)
{
    size_t off = 0;
    for (int k = 0; k < n; k++) {
        int p, gap;
        if (o->inplace) {
            p = k;
            gap = p % 2;
        } else if (side == 0) {
            p = n - 1 - k; /* reversed order, with gaps */
            gap = 1 + p % 3;
        } else {
            p = k;
            gap = (p + 1) % 2;
        }
        counts[p] = side == 0 ? a2av_count(o, rank, p) : a2av_count(o, p, rank);
        displs[p] = off;
        off += counts[p] + (size_t)gap;
    }
    return off;
}

/* ---- expected values -------------------------------------------------------------- */

typedef struct {
    chorus_datatype_t t;
    int op;
    int n;
    uint64_t seed;
    int rank;
    size_t base;
} exp_ctx;

static uint64_t exp_gen(const void *c, size_t i)
{
    const exp_ctx *e = c;
    return tu_gen(e->t, e->op, e->n, e->seed, e->rank, e->base + i);
}

static uint64_t exp_red(const void *c, size_t i)
{
    const exp_ctx *e = c;
    return tu_ref_reduce(e->t, e->op, e->n, e->seed, e->base + i);
}

static size_t check_gen(const char *what, const op_t *o, const void *buf, size_t count, int rank,
                        size_t base)
{
    exp_ctx e = {o->type, o->op, n, o->seed, rank, base};
    return tu_check_elems(what, o->type, o->op, buf, count, exp_gen, &e);
}

static size_t check_red(const char *what, const op_t *o, const void *buf, size_t count,
                        size_t base)
{
    exp_ctx e = {o->type, o->op, n, o->seed, 0, base};
    return tu_check_elems(what, o->type, o->op, buf, count, exp_red, &e);
}

/* ---- one operation: prepare, start, complete, check ------------------------------------- */

static unsigned char *at(const tu_buf_t *b, size_t elems, size_t ts) { return b->ptr + elems * ts; }

static int op_alloc(op_t *o, tu_buf_t *b, size_t elems, size_t misalign)
{
    if (tu_buf_alloc(b, elems * o->ts, misalign) != 0) {
        CHECK(0, "out of memory allocating %zu bytes", elems * o->ts);
        return -1;
    }
    return 0;
}

/* Failures are reported with the case and counted by category. */
static void op_context(const op_t *o)
{
    tu_set_case("%s", o->desc);
    tu_set_category("%s inplace=%d mode=%s", coll_names[o->coll], o->inplace,
                    mode_names[o->mode]);
}

/* Returns 0 if ready to start. */
static int op_prepare(op_t *o)
{
    o->ts = tu_type_size(o->type);
    o->have_sb = o->have_rb = 0;
    o->send = NULL;
    o->recv = NULL;
    o->req = NULL;
    o->res = CHORUS_SUCCESS;
    uint64_t h = tu_hash(o->seed, (uint64_t)me, 77);
    size_t ms = (h & 8) ? (h & 7) : 0, mr = (h & 0x80) ? ((h >> 4) & 7) : 0;
    snprintf(o->desc, sizeof o->desc,
             "%s type=%s op=%s count=%zu inplace=%d root=%d mode=%s misalign=s%zu/r%zu%s "
             "np=%d case=%llu",
             coll_names[o->coll], tu_type_name(o->type), tu_op_name(o->op), o->count,
             o->inplace, o->root, mode_names[o->mode], ms, mr,
             o->null_recv ? " recvbuf=NULL(non-root)" : "", n, (unsigned long long)case_no);
    op_context(o);
    size_t c = o->count, N = (size_t)n;
    int op = o->op;
    switch (o->coll) {
    case C_ALLREDUCE:
    case C_REDUCE:
        if (o->inplace) {
            if (op_alloc(o, &o->rb, c, mr)) return -1;
            o->have_rb = 1;
            tu_fill(o->type, op, n, o->seed, me, o->rb.ptr, 0, c);
            o->send = o->recv = o->rb.ptr;
        } else {
            if (op_alloc(o, &o->sb, c, ms)) return -1;
            o->have_sb = 1;
            tu_fill(o->type, op, n, o->seed, me, o->sb.ptr, 0, c);
            o->send = o->sb.ptr;
            if (!(o->coll == C_REDUCE && o->null_recv && me != o->root)) {
                if (op_alloc(o, &o->rb, c, mr)) return -1;
                o->have_rb = 1;
                o->recv = o->rb.ptr;
            }
        }
        break;
    case C_ALLGATHER:
        if (op_alloc(o, &o->rb, N * c, mr)) return -1;
        o->have_rb = 1;
        o->recv = o->rb.ptr;
        if (o->inplace) {
            tu_fill(o->type, op, n, o->seed, me, at(&o->rb, (size_t)me * c, o->ts), 0, c);
            o->send = at(&o->rb, (size_t)me * c, o->ts);
        } else {
            if (op_alloc(o, &o->sb, c, ms)) return -1;
            o->have_sb = 1;
            tu_fill(o->type, op, n, o->seed, me, o->sb.ptr, 0, c);
            o->send = o->sb.ptr;
        }
        break;
    case C_ALLTOALL:
    case C_REDUCE_SCATTER: {
        size_t rcount = o->coll == C_ALLTOALL ? N * c : c;
        if (o->inplace) {
            if (op_alloc(o, &o->rb, N * c, mr)) return -1;
            o->have_rb = 1;
            tu_fill(o->type, op, n, o->seed, me, o->rb.ptr, 0, N * c);
            o->send = o->rb.ptr;
            o->recv = o->coll == C_ALLTOALL ? o->rb.ptr : at(&o->rb, (size_t)me * c, o->ts);
        } else {
            if (op_alloc(o, &o->sb, N * c, ms) || op_alloc(o, &o->rb, rcount, mr)) return -1;
            o->have_sb = o->have_rb = 1;
            tu_fill(o->type, op, n, o->seed, me, o->sb.ptr, 0, N * c);
            o->send = o->sb.ptr;
            o->recv = o->rb.ptr;
        }
        break;
    }
    case C_ALLTOALLV: {
        size_t stot = a2av_layout(o, me, 0, o->sc, o->sd);
        size_t rtot = a2av_layout(o, me, 1, o->rc, o->rd);
        if (op_alloc(o, &o->rb, rtot, mr)) return -1;
        o->have_rb = 1;
        o->recv = o->rb.ptr;
        if (o->inplace) {
            for (int p = 0; p < n; p++)
                tu_fill(o->type, op, n, o->seed, me, at(&o->rb, o->sd[p], o->ts), o->sd[p],
                        o->sc[p]);
            o->send = o->rb.ptr;
        } else {
            if (op_alloc(o, &o->sb, stot, ms)) return -1;
            o->have_sb = 1;
            tu_fill(o->type, op, n, o->seed, me, o->sb.ptr, 0, stot);
            o->send = o->sb.ptr;
        }
        break;
    }
    case C_BCAST:
        if (op_alloc(o, &o->rb, c, mr)) return -1;
        o->have_rb = 1;
        o->recv = o->rb.ptr;
        if (o->inplace) {
            if (me == o->root)
                tu_fill(o->type, op, n, o->seed, me, o->rb.ptr, 0, c);
            o->send = o->rb.ptr;
        } else {
            if (op_alloc(o, &o->sb, c, ms)) return -1;
            o->have_sb = 1;
            tu_fill(o->type, op, n, o->seed, me, o->sb.ptr, 0, c);
            o->send = o->sb.ptr;
        }
        break;
    default:
        break;
    }
    return 0;
}

static chorus_result_t op_start(op_t *o, int nonblocking)
{
    chorus_request_t *rq = &o->req;
    chorus_result_t r = CHORUS_INTERNAL_ERROR;
    size_t c = o->count;
    chorus_op_t op = (chorus_op_t)o->op;
    if (!nonblocking) {
        switch (o->coll) {
        case C_ALLREDUCE: r = chorus_allreduce(o->send, o->recv, c, o->type, op, g_comm); break;
        case C_ALLGATHER: r = chorus_allgather(o->send, o->recv, c, o->type, g_comm); break;
        case C_ALLTOALL: r = chorus_alltoall(o->send, o->recv, c, o->type, g_comm); break;
        case C_ALLTOALLV:
            r = chorus_alltoallv(o->send, o->sc, o->sd, o->recv, o->rc, o->rd, o->type, g_comm);
            break;
        case C_REDUCE_SCATTER:
            r = chorus_reduce_scatter(o->send, o->recv, c, o->type, op, g_comm);
            break;
        case C_BCAST: r = chorus_broadcast(o->send, o->recv, c, o->type, o->root, g_comm); break;
        case C_REDUCE:
            r = chorus_reduce(o->send, o->recv, c, o->type, op, o->root, g_comm);
            break;
        case C_BARRIER: r = chorus_barrier(g_comm); break;
        default: break;
        }
    } else {
        switch (o->coll) {
        case C_ALLREDUCE:
            r = chorus_iallreduce(o->send, o->recv, c, o->type, op, g_comm, rq);
            break;
        case C_ALLGATHER: r = chorus_iallgather(o->send, o->recv, c, o->type, g_comm, rq); break;
        case C_ALLTOALL: r = chorus_ialltoall(o->send, o->recv, c, o->type, g_comm, rq); break;
        case C_ALLTOALLV:
            r = chorus_ialltoallv(o->send, o->sc, o->sd, o->recv, o->rc, o->rd, o->type, g_comm,
                                  rq);
            break;
        case C_REDUCE_SCATTER:
            r = chorus_ireduce_scatter(o->send, o->recv, c, o->type, op, g_comm, rq);
            break;
        case C_BCAST:
            r = chorus_ibroadcast(o->send, o->recv, c, o->type, o->root, g_comm, rq);
            break;
        case C_REDUCE:
            r = chorus_ireduce(o->send, o->recv, c, o->type, op, o->root, g_comm, rq);
            break;
        case C_BARRIER: r = chorus_ibarrier(g_comm, rq); break;
        default: break;
        }
        if (r == CHORUS_SUCCESS)
            CHECK(o->req != NULL, "nonblocking start returned CHORUS_SUCCESS but *req is NULL");
    }
    return r;
}

static void note_error(op_t *o, const char *what, chorus_result_t r)
{
    op_context(o);
    tu_check_res_at(__FILE__, __LINE__, what, r, CHORUS_SUCCESS);
    comm_broken = 1;
}

/* Polls chorus_test until done (bounded). */
static chorus_result_t poll_until_done(chorus_request_t *req)
{
    double t0 = tu_now();
    for (long i = 0;; i++) {
        chorus_result_t r = chorus_test(req);
        if (r != CHORUS_IN_PROGRESS) {
            if (r == CHORUS_SUCCESS)
                CHECK(*req == NULL, "chorus_test returned CHORUS_SUCCESS but did not set *req "
                                    "to NULL");
            return r;
        }
        if ((i & 63) == 63 && tu_now() - t0 > 120.0) {
            CHECK(0, "chorus_test still CHORUS_IN_PROGRESS after 120 s of polling");
            return CHORUS_TIMEOUT;
        }
        sched_yield();
    }
}

static void op_check(op_t *o)
{
    op_context(o);
    size_t c = o->count, N = (size_t)n;
    char what[96];
    if (o->res != CHORUS_SUCCESS)
        goto guards; /* reported already */
    switch (o->coll) {
    case C_ALLREDUCE:
        check_red("recvbuf", o, o->recv, c, 0);
        if (hashes) {
            if (nhashes == cap_hashes) {
                cap_hashes = cap_hashes ? 2 * cap_hashes : 256;
                hashes = realloc(hashes, cap_hashes * sizeof *hashes);
            }
            hashes[nhashes++] = tu_fnv1a(o->recv, c * o->ts);
        }
        break;
    case C_REDUCE:
        if (me == o->root)
            check_red("recvbuf (root)", o, o->recv, c, 0);
        else if (o->inplace)
            check_gen("buffer of non-root (in place) changed", o, o->rb.ptr, c, me, 0);
        else if (o->have_rb)
            tu_check_bytes("recvbuf of non-root written", o->rb.ptr, o->rb.bytes, TU_SENTINEL);
        break;
    case C_ALLGATHER:
        for (int j = 0; j < n; j++) {
            snprintf(what, sizeof what, "recvbuf slice of rank %d", j);
            check_gen(what, o, at(&o->rb, (size_t)j * c, o->ts), c, j, 0);
        }
        break;
    case C_ALLTOALL:
        for (int j = 0; j < n; j++) {
            snprintf(what, sizeof what, "recvbuf block from rank %d", j);
            check_gen(what, o, at(&o->rb, (size_t)j * c, o->ts), c, j, (size_t)me * c);
        }
        break;
    case C_ALLTOALLV: {
        size_t cnt[64], dsp[64];
        size_t total = o->rb.bytes / o->ts;
        unsigned char *covered = calloc(total ? total : 1, 1);
        for (int s = 0; s < n; s++) {
            a2av_layout(o, s, 0, cnt, dsp); /* the sender's layout */
            CHECK(cnt[me] == o->rc[s], "test bug: alltoallv counts %zu != %zu", cnt[me],
                  o->rc[s]);
            snprintf(what, sizeof what, "recvbuf block from rank %d (%zu elements at %zu)", s,
                     o->rc[s], o->rd[s]);
            check_gen(what, o, at(&o->rb, o->rd[s], o->ts), o->rc[s], s, dsp[me]);
            if (covered)
                memset(covered + o->rd[s], 1, o->rc[s]);
        }
        /* the gaps between blocks must not be written */
        size_t bad = 0, first = 0;
        for (size_t i = 0; covered && i < total; i++) {
            if (covered[i])
                continue;
            for (size_t k = 0; k < o->ts; k++)
                if (o->rb.ptr[i * o->ts + k] != TU_SENTINEL && !bad++)
                    first = i;
        }
        CHECK(!bad, "alltoallv wrote %zu bytes outside the receive blocks; first in element %zu",
              bad, first);
        free(covered);
        break;
    }
    case C_REDUCE_SCATTER:
        check_red("recvbuf", o, o->recv, c, (size_t)me * c);
        break;
    case C_BCAST:
        check_gen("recvbuf", o, o->recv, c, o->root, 0);
        break;
    default:
        break;
    }
    /* out of place: the input must be untouched */
    if (o->have_sb && o->coll != C_BARRIER) {
        size_t se = o->sb.bytes / (o->ts ? o->ts : 1);
        check_gen("sendbuf modified", o, o->sb.ptr, se, me, 0);
    }
    (void)N;
guards:
    if (o->have_sb)
        tu_buf_check_guards(&o->sb, "sendbuf");
    if (o->have_rb)
        tu_buf_check_guards(&o->rb, "recvbuf");
}

static void op_free(op_t *o)
{
    if (o->have_sb)
        tu_buf_free(&o->sb);
    if (o->have_rb)
        tu_buf_free(&o->rb);
    o->have_sb = o->have_rb = 0;
}

/* Runs one case to completion in the given mode. */
static void run_one(op_t *o)
{
    o->seed = tu_hash(g_seed, ++case_no, 1);
    if (op_prepare(o) != 0) {
        op_free(o);
        comm_broken = 1; /* the others will call: do not hang, resync at group end */
        return;
    }
    chorus_result_t r = op_start(o, o->mode != M_BLOCKING);
    if (r != CHORUS_SUCCESS) {
        o->res = r;
        note_error(o, o->mode == M_BLOCKING ? "collective" : "nonblocking start", r);
    } else if (o->mode == M_WAIT) {
        r = chorus_wait(&o->req);
        o->res = r;
        if (r != CHORUS_SUCCESS)
            note_error(o, "chorus_wait", r);
    } else if (o->mode == M_TEST) {
        r = poll_until_done(&o->req);
        o->res = r;
        if (r != CHORUS_SUCCESS)
            note_error(o, "chorus_test", r);
    }
    op_check(o);
    op_free(o);
}

/* ---- groups: cross-rank checks and recovery ---------------------------------------------- */

static void group_begin(void)
{
    nhashes = 0;
    if (!hashes) {
        cap_hashes = 256;
        hashes = malloc(cap_hashes * sizeof *hashes);
    }
}

static void group_end(const char *name)
{
    tu_set_case("end of group %s", name);
    /* allreduce results must be bit-identical on every rank */
    long long cnt[2] = {(long long)nhashes, -(long long)nhashes};
    tu_allreduce_ll(cnt, 2, MPI_MAX, g_mpi);
    CHECK(cnt[0] == -cnt[1], "ranks ran different numbers of allreduce cases");
    if (nhashes && cnt[0] == -cnt[1]) {
        uint64_t *all = malloc(nhashes * (size_t)n * sizeof *all);
        MPI_Request rq;
        MPI_Iallgather(hashes, (int)nhashes, MPI_UINT64_T, all, (int)nhashes, MPI_UINT64_T,
                       g_mpi, &rq);
        tu_mpi_wait(&rq);
        size_t bad = 0, first = 0;
        int bad_rank = -1;
        for (int r = 0; r < n; r++)
            for (size_t i = 0; i < nhashes; i++)
                if (all[(size_t)r * nhashes + i] != all[i] && !bad++) {
                    first = i;
                    bad_rank = r;
                }
        CHECK(!bad, "%zu allreduce results differ between ranks (not bit-identical); first: "
                    "case #%zu of this group, rank %d vs rank 0",
              bad, first, bad_rank);
        free(all);
    }
    nhashes = 0;
    if (tu_any(comm_broken, g_mpi)) {
        if (me == 0)
            tu_log("a call failed in group %s: recreating the communicator", name);
        chorus_comm_abort(g_comm);
        chorus_comm_destroy(g_comm);
        g_comm = NULL;
        chorus_result_t r = chorus_comm_init_mpi(&g_comm, g_mpi);
        if (r != CHORUS_SUCCESS) {
            tu_log("FATAL: cannot recreate the communicator: %s", chorus_get_last_error());
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        comm_broken = 0;
    }
}

/* ---- the sweeps ------------------------------------------------------------------------------ */

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Counts (elements) for type size ts; returns how many. */
static int make_counts(size_t ts, size_t *out)
{
    static const size_t base[] = {0, 1, 2, 3, 7, 13, 31, 127, 1023, 1024, 1025, 4095, 4096, 4097};
    static const size_t quick[] = {0, 1, 3, 13, 127, 1025, 4097};
    int k = 0;
    if (opt_quick) {
        for (size_t i = 0; i < sizeof quick / sizeof quick[0]; i++)
            out[k++] = quick[i];
        out[k++] = 16384 / ts + 1;
        out[k++] = ((1u << 20) + 3 + ts - 1) / ts; /* float32 and uint8 only, below */
    } else {
        for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
            out[k++] = base[i];
        out[k++] = 4096 / ts - 1; /* 4 KiB +- 1 element, in bytes */
        out[k++] = 4096 / ts;
        out[k++] = 4096 / ts + 1;
        out[k++] = 16384 / ts - 1; /* the one-shot / two-step allreduce boundary */
        out[k++] = 16384 / ts + 1;
        out[k++] = ((1u << 20) + 3 + ts - 1) / ts; /* 1 MiB + 3 bytes */
    }
    qsort(out, (size_t)k, sizeof *out, cmp_size);
    int m = 0;
    for (int i = 0; i < k; i++)
        if ((m == 0 || out[i] != out[m - 1]) && out[i] <= opt_max_count)
            out[m++] = out[i];
    return m;
}

static int want_coll(int coll) { return opt_coll < 0 || opt_coll == coll; }

static void sweep_blocking(void)
{
    static const chorus_datatype_t quick_types[] = {CHORUS_UINT8, CHORUS_INT32, CHORUS_INT64,
                                                    CHORUS_FLOAT16, CHORUS_BFLOAT16,
                                                    CHORUS_FLOAT32};
    for (int coll = 0; coll < C_BARRIER; coll++) {
        if (!want_coll(coll))
            continue;
        double t0 = tu_now();
        long long before = tu_checks;
        int ntypes = opt_quick ? (int)(sizeof quick_types / sizeof quick_types[0]) : TU_NUM_TYPES;
        for (int ti = 0; ti < ntypes; ti++) {
            chorus_datatype_t type = opt_quick ? quick_types[ti] : (chorus_datatype_t)ti;
            size_t ts = tu_type_size(type);
            size_t counts[32];
            int ncounts = make_counts(ts, counts);
            group_begin();
            int nops = is_reduction(coll) ? TU_NUM_OPS : 1;
            for (int op = 0; op < nops; op++) {
                for (int ci = 0; ci < ncounts; ci++) {
                    size_t count = counts[ci];
                    /* Heavy counts (> 64 KiB) cost most of the time: for them
                     * reductions run SUM out of place and one other op (by
                     * type) in place; data movement one type per element size. */
                    int heavy = count * ts > 65536;
                    int alt_op = 1 + (int)type % (TU_NUM_OPS - 1);
                    if (heavy && is_reduction(coll) && op != CHORUS_SUM && op != alt_op)
                        continue;
                    if (heavy && !is_reduction(coll) &&
                        !(type == CHORUS_INT8 || type == CHORUS_BFLOAT16 ||
                          type == CHORUS_FLOAT32 || type == CHORUS_UINT64))
                        continue;
                    if (opt_quick && heavy && !(type == CHORUS_FLOAT32 || type == CHORUS_UINT8))
                        continue;
                    for (int inplace = 0; inplace < 2; inplace++) {
                        if (heavy && is_reduction(coll) && inplace != (op != CHORUS_SUM))
                            continue;
                        int roots[64], nroots = 0;
                        if (coll == C_BCAST || coll == C_REDUCE) {
                            /* every root for small counts and 4097, else one
                             * root turning with the case */
                            if (!opt_quick && (count <= 31 || count == 4097)) {
                                for (int r = 0; r < n; r++)
                                    roots[nroots++] = r;
                            } else if (opt_quick && !heavy && ci % 3 == 0) {
                                roots[nroots++] = 0;
                                if (n > 2)
                                    roots[nroots++] = n / 2;
                                if (n > 1)
                                    roots[nroots++] = n - 1;
                            } else {
                                roots[nroots++] = (ci + op + inplace) % n;
                            }
                        } else {
                            roots[nroots++] = 0;
                        }
                        for (int ri = 0; ri < nroots; ri++) {
                            op_t o;
                            memset(&o, 0, sizeof o);
                            o.coll = coll;
                            o.type = type;
                            o.op = is_reduction(coll) ? op : TU_OP_NONE;
                            o.count = count;
                            o.inplace = inplace;
                            o.root = (coll == C_BCAST || coll == C_REDUCE) ? roots[ri] : -1;
                            o.mode = M_BLOCKING;
                            o.null_recv = coll == C_REDUCE && ((ci + ri) & 1);
                            run_one(&o);
                        }
                    }
                }
            }
            char g[64];
            snprintf(g, sizeof g, "%s/%s", coll_names[coll], tu_type_name(type));
            group_end(g);
        }
        if (me == 0)
            tu_log("%-15s blocking sweep: %lld checks on rank 0, %.1f s", coll_names[coll],
                   tu_checks - before, tu_now() - t0);
    }
}

static void sweep_large(void)
{
    size_t L = opt_large_bytes;
    struct { int coll; chorus_datatype_t type; int op; size_t count; int root; int inplace; } cs[] = {
        {C_ALLREDUCE, CHORUS_FLOAT32, CHORUS_SUM, L / 4, -1, 0},
        {C_ALLREDUCE, CHORUS_FLOAT32, CHORUS_SUM, L / 4 + 1, -1, 1},
        {C_ALLGATHER, CHORUS_FLOAT32, TU_OP_NONE, L / 4 / (size_t)n, -1, 0},
        {C_ALLTOALL, CHORUS_FLOAT32, TU_OP_NONE, L / 4 / (size_t)n, -1, 0},
        {C_BCAST, CHORUS_FLOAT32, TU_OP_NONE, L / 4, 0, 0},
        {C_BCAST, CHORUS_FLOAT32, TU_OP_NONE, L / 4 - 1, n - 1, 1},
        {C_REDUCE, CHORUS_FLOAT32, CHORUS_SUM, L / 4 + 1, n - 1, 0},
        {C_REDUCE, CHORUS_FLOAT32, CHORUS_SUM, L / 4, 0, 1},
    };
    double t0 = tu_now();
    group_begin();
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        if (!want_coll(cs[i].coll) || cs[i].count > opt_max_count)
            continue;
        op_t o;
        memset(&o, 0, sizeof o);
        o.coll = cs[i].coll;
        o.type = cs[i].type;
        o.op = cs[i].op;
        o.count = cs[i].count;
        o.inplace = cs[i].inplace;
        o.root = cs[i].root;
        o.mode = M_BLOCKING;
        double t1 = tu_now();
        run_one(&o);
        if (me == 0)
            tu_log("large: %s %zu MiB (received per rank): %.2f s", coll_names[o.coll],
                   (o.count * 4 * (o.coll == C_ALLGATHER || o.coll == C_ALLTOALL ? (size_t)n : 1))
                       >> 20,
                   tu_now() - t1);
    }
    group_end("large");
    if (me == 0)
        tu_log("large sweep: %.1f s", tu_now() - t0);
}

/* Every collective in the nonblocking forms, completed by wait and by test. */
static void sweep_nonblocking(void)
{
    static const chorus_datatype_t types[] = {CHORUS_UINT8, CHORUS_INT32, CHORUS_FLOAT16,
                                              CHORUS_BFLOAT16, CHORUS_FLOAT32, CHORUS_FLOAT64};
    static const int ops[] = {CHORUS_SUM, CHORUS_MAX, CHORUS_AVG};
    double t0 = tu_now();
    for (int coll = 0; coll < C_NUM; coll++) {
        if (!want_coll(coll))
            continue;
        group_begin();
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            size_t ts = tu_type_size(types[ti]);
            size_t counts[] = {0, 1, 13, 1025, 4097, 16384 / ts + 1, ((1u << 20) + 3 + ts - 1) / ts};
            int ncounts = opt_quick ? 5 : 7;
            if (coll == C_BARRIER) {
                if (ti > 0)
                    break;
                ncounts = 1;
            }
            for (int oi = 0; oi < 1; oi++) { /* one op per case, turning */
                for (int ci = 0; ci < ncounts; ci++) {
                    if (counts[ci] > opt_max_count)
                        continue;
                    int heavy = counts[ci] * ts > 65536;
                    if (heavy && !(types[ti] == CHORUS_UINT8 || types[ti] == CHORUS_FLOAT32))
                        continue;
                    for (int mode = M_WAIT; mode <= M_TEST; mode++) {
                        for (int inplace = 0; inplace < 2; inplace++) {
                            if (coll == C_BARRIER && inplace)
                                continue;
                            if (heavy && inplace != (mode == M_TEST))
                                continue;
                            op_t o;
                            memset(&o, 0, sizeof o);
                            o.coll = coll;
                            o.type = types[ti];
                            o.op = is_reduction(coll) ? ops[(ti + (size_t)ci + (size_t)oi) % 3]
                                                      : TU_OP_NONE;
                            o.count = counts[ci];
                            o.inplace = inplace;
                            o.root = (coll == C_BCAST || coll == C_REDUCE)
                                         ? (ci + inplace + mode) % n : -1;
                            o.mode = mode;
                            o.null_recv = coll == C_REDUCE && (ci & 1);
                            run_one(&o);
                        }
                    }
                }
            }
        }
        char g[64];
        snprintf(g, sizeof g, "nonblocking %s", coll_names[coll]);
        group_end(g);
    }
    if (me == 0)
        tu_log("nonblocking sweep: %.1f s", tu_now() - t0);
}

/* Several operations outstanding at once, completed in different orders on
 * different ranks; a blocking call in the middle of the batch. */
static void sweep_batches(void)
{
    enum { MAXB = 12 };
    int nbatches = opt_quick ? 6 : 16;
    double t0 = tu_now();
    group_begin();
    for (int b = 0; b < nbatches; b++) {
        op_t ops[MAXB];
        uint64_t bh = tu_hash(g_seed, 0xba7c4, (uint64_t)b); /* same on every rank */
        int nb = 2 + (int)(bh % (MAXB - 1));
        int style = b % 3; /* 0: wait in reverse, 1: wait in a per-rank order, 2: poll all */
        int blocking_at = (b % 4 == 1) ? nb / 2 : -1;
        memset(ops, 0, sizeof ops);
        for (int i = 0; i < nb; i++) {
            uint64_t h = tu_hash(bh, (uint64_t)i, 5);
            op_t *o = &ops[i];
            o->coll = opt_coll >= 0 ? opt_coll : (int)(h % C_NUM);
            o->type = (chorus_datatype_t)((h >> 8) % TU_NUM_TYPES);
            o->op = is_reduction(o->coll) ? (int)((h >> 16) % TU_NUM_OPS) : TU_OP_NONE;
            static const size_t cnts[] = {0, 1, 7, 100, 1023, 4097, 20000, 300001};
            o->count = cnts[(h >> 24) % (opt_quick ? 7 : 8)];
            if (o->count > opt_max_count)
                o->count = 1;
            o->inplace = (int)((h >> 32) & 1);
            o->root = (o->coll == C_BCAST || o->coll == C_REDUCE) ? (int)((h >> 40) % (uint64_t)n)
                                                                  : -1;
            o->mode = i == blocking_at ? M_BLOCKING : M_WAIT;
            o->seed = tu_hash(g_seed, ++case_no, 2);
            if (op_prepare(o) != 0) {
                comm_broken = 1;
                nb = i;
                break;
            }
            snprintf(o->desc + strlen(o->desc), sizeof o->desc - strlen(o->desc),
                     " batch=%d/%d style=%d", b, i, style);
        }
        for (int i = 0; i < nb; i++) {
            op_t *o = &ops[i];
            chorus_result_t r = op_start(o, o->mode != M_BLOCKING);
            o->res = r;
            if (r != CHORUS_SUCCESS) {
                note_error(o, o->mode == M_BLOCKING ? "blocking call inside a batch"
                                                    : "nonblocking start",
                           r);
                o->req = NULL;
            }
        }
        int order[MAXB];
        for (int i = 0; i < nb; i++)
            order[i] = style == 0 ? nb - 1 - i : i;
        if (style == 1) { /* a different permutation on every rank */
            for (int i = nb - 1; i > 0; i--) {
                int j = (int)(tu_hash(bh, (uint64_t)me, (uint64_t)i) % (uint64_t)(i + 1));
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
        if (style != 2) {
            for (int k = 0; k < nb; k++) {
                op_t *o = &ops[order[k]];
                if (!o->req)
                    continue;
                chorus_result_t r = chorus_wait(&o->req);
                if (r != CHORUS_SUCCESS) {
                    o->res = r;
                    note_error(o, "chorus_wait in a batch", r);
                }
            }
        } else {
            int left = 0;
            for (int i = 0; i < nb; i++)
                left += ops[i].req != NULL;
            double tp = tu_now();
            while (left > 0) {
                for (int i = nb - 1; i >= 0; i--) { /* newest first */
                    op_t *o = &ops[i];
                    if (!o->req)
                        continue;
                    chorus_result_t r = chorus_test(&o->req);
                    if (r == CHORUS_IN_PROGRESS)
                        continue;
                    left--;
                    if (r != CHORUS_SUCCESS) {
                        o->res = r;
                        o->req = NULL;
                        note_error(o, "chorus_test in a batch", r);
                    } else {
                        CHECK(o->req == NULL, "chorus_test: CHORUS_SUCCESS but *req not NULL");
                        o->req = NULL;
                    }
                }
                if (left && tu_now() - tp > 120.0) {
                    CHECK(0, "batch %d: %d requests still in progress after 120 s", b, left);
                    comm_broken = 1;
                    break;
                }
                sched_yield();
            }
        }
        for (int i = 0; i < nb; i++) {
            if (!ops[i].req) /* not leaked by a timeout above */
                op_check(&ops[i]);
            op_free(&ops[i]);
        }
    }
    group_end("batches");
    if (me == 0)
        tu_log("batches of outstanding operations: %.1f s", tu_now() - t0);
}

/* A barrier must hold every rank until the last one arrives. */
static void test_barrier_semantics(void)
{
    if (!want_coll(C_BARRIER) || n < 2)
        return;
    for (int nb = 0; nb < 2; nb++) {
        int late = nb ? n - 1 : 0;
        tu_set_case("barrier semantics (%s), late rank %d", nb ? "ibarrier+wait" : "barrier",
                    late);
        CHECK_OK(chorus_barrier(g_comm));
        double t0 = tu_now();
        if (me == late)
            usleep(300000);
        chorus_result_t r;
        if (nb) {
            chorus_request_t rq = NULL;
            r = chorus_ibarrier(g_comm, &rq);
            if (r == CHORUS_SUCCESS)
                r = chorus_wait(&rq);
        } else {
            r = chorus_barrier(g_comm);
        }
        double dt = tu_now() - t0;
        if (CHECK_OK(r) && me != late)
            CHECK(dt > 0.15, "left the barrier after %.3f s although rank %d arrived 0.3 s late",
                  dt, late);
    }
}

/* Sanity checks of the reference itself (cheap, every rank). */
/* ---- Chorus-allocated buffers (--mem) ----------------------------------------------- */

static void *chorus_mem_or_null(size_t bytes)
{
    void *p = NULL;
    return chorus_mem_alloc(&p, bytes) == CHORUS_SUCCESS ? p : NULL;
}

static void chorus_mem_release(void *p)
{
    CHECK_OK(chorus_mem_free(p));
}

/* Mappings of peers' Chorus allocations in this process: read-only shared
 * mappings of a "chorus-mem" memfd (this rank's own are read-write). */
static int peer_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        char perms[8] = "";
        if (sscanf(line, "%*s %7s", perms) == 1 && !strcmp(perms, "r--s") &&
            strstr(line, "/memfd:chorus-mem"))
            found++;
    }
    fclose(f);
    return found;
}

/* The allocator's contract: errors are result codes, never crashes. */
static void mem_api_checks(void)
{
    tu_set_case("chorus_mem_alloc/free errors");
    void *p = (void *)1;
    CHECK_RES(chorus_mem_alloc(NULL, 4096), CHORUS_INVALID_ARGUMENT);
    CHECK_RES(chorus_mem_alloc(&p, 0), CHORUS_INVALID_ARGUMENT);
    CHECK(p == NULL, "chorus_mem_alloc(&p, 0) left p = %p, expected NULL", p);
    CHECK_RES(chorus_mem_alloc(&p, (size_t)-1), CHORUS_INVALID_ARGUMENT);
    CHECK_OK(chorus_mem_free(NULL));
    int on_stack = 0;
    CHECK_RES(chorus_mem_free(&on_stack), CHORUS_INVALID_ARGUMENT);
    if (CHECK_OK(chorus_mem_alloc(&p, 5000))) {
        CHECK(((uintptr_t)p & 4095) == 0, "chorus_mem_alloc returned %p: not page aligned", p);
        memset(p, 0xAB, 5000); /* usable, also past the first page */
        CHECK_RES(chorus_mem_free((char *)p + 64), CHORUS_INVALID_ARGUMENT);
        CHECK_OK(chorus_mem_free(p));
        CHECK_RES(chorus_mem_free(p), CHORUS_INVALID_ARGUMENT); /* double free */
    }
}

static void selftest(void)
{
    tu_set_case("test_util self test");
    CHECK(tu_selftest_conversions() == 0, "fp16/bf16 conversions of test_util are wrong");
    for (int t = 0; t < TU_NUM_TYPES; t++)
        CHECK(chorus_type_size((chorus_datatype_t)t) == tu_type_size((chorus_datatype_t)t),
              "chorus_type_size(%s) = %zu, expected %zu", tu_type_name((chorus_datatype_t)t),
              chorus_type_size((chorus_datatype_t)t), tu_type_size((chorus_datatype_t)t));
}

static void usage(void)
{
    if (me == 0)
        fprintf(stderr, "usage: test_coll [--quick] [--no-large] [--large-mib M] [--coll NAME] "
                        "[--max-count C] [--seed S] [--split] [--mem chorus|mixed] [-v]\n");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    tu_init();
    me = tu_rank;
    n = tu_nranks;
    const char *q = getenv("TEST_COLL_QUICK");
    if (q && *q && strcmp(q, "0") != 0)
        opt_quick = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            opt_quick = 1;
        } else if (!strcmp(argv[i], "--full")) {
            opt_quick = 0;
        } else if (!strcmp(argv[i], "--no-large")) {
            opt_large = 0;
        } else if (!strcmp(argv[i], "--large-mib") && i + 1 < argc) {
            opt_large_bytes = (size_t)strtoull(argv[++i], NULL, 10) << 20;
        } else if (!strcmp(argv[i], "--max-count") && i + 1 < argc) {
            opt_max_count = (size_t)strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            g_seed = strtoull(argv[++i], NULL, 0);
        } else if (!strcmp(argv[i], "-v")) {
            tu_verbose = 1;
        } else if (!strcmp(argv[i], "--split")) {
            opt_split = 1;
        } else if (!strcmp(argv[i], "--mem") && i + 1 < argc) {
            i++;
            opt_mem = !strcmp(argv[i], "chorus") ? MEM_CHORUS
                      : !strcmp(argv[i], "mixed") ? MEM_MIXED : -1;
            if (opt_mem < 0) {
                usage();
                MPI_Finalize();
                return 2;
            }
        } else if (!strcmp(argv[i], "--coll") && i + 1 < argc) {
            i++;
            for (int c = 0; c < C_NUM; c++)
                if (!strcmp(argv[i], coll_names[c]))
                    opt_coll = c;
            if (opt_coll < 0) {
                usage();
                MPI_Finalize();
                return 2;
            }
        } else {
            usage();
            MPI_Finalize();
            return 2;
        }
    }
    if (n > 64) {
        if (me == 0)
            fprintf(stderr, "test_coll supports up to 64 ranks\n");
        MPI_Finalize();
        return 2;
    }
    double t0 = tu_now();
    selftest();
    if (opt_mem != MEM_MALLOC)
        mem_api_checks();
    /* mixed: world ranks 0, 2, ... (so both halves of --split mix too) */
    if (opt_mem == MEM_CHORUS || (opt_mem == MEM_MIXED && tu_rank % 2 == 0))
        tu_buf_set_allocator(chorus_mem_or_null, chorus_mem_release);
    g_mpi = MPI_COMM_WORLD;
    tu_set_case("chorus_comm_init_mpi");
    chorus_result_t r;
    if (!opt_split) {
        r = chorus_comm_init_mpi(&g_comm, MPI_COMM_WORLD);
    } else {
        /* two halves (even and odd world ranks, reversed order) run the
         * sweep at the same time on split communicators */
        int color = tu_rank % 2, key = -tu_rank;
        MPI_Comm_split(MPI_COMM_WORLD, color, key, &g_mpi);
        MPI_Comm_rank(g_mpi, &me);
        MPI_Comm_size(g_mpi, &n);
        r = chorus_comm_init_mpi(&g_parent, MPI_COMM_WORLD);
        if (r == CHORUS_SUCCESS) {
            tu_set_case("chorus_comm_split(color %d, key %d)", color, key);
            r = chorus_comm_split(g_parent, color, key, &g_comm);
        }
    }
    if (!CHECK_OK(r) || tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD)) {
        tu_summary("test_coll");
        MPI_Finalize();
        return 1;
    }
    int cnt = -1, rk = -1;
    tu_set_case("comm_count/comm_rank");
    CHECK_OK(chorus_comm_count(g_comm, &cnt));
    CHECK_OK(chorus_comm_rank(g_comm, &rk));
    CHECK(cnt == n && rk == me, "count/rank %d/%d, expected %d/%d", cnt, rk, n, me);
    if (me == 0)
        tu_log("test_coll np=%d %s%s%s seed=0x%llx", n, opt_quick ? "quick" : "full",
               opt_large ? "" : " no-large", opt_split ? " split" : "",
               (unsigned long long)g_seed);

    sweep_blocking();
    if (opt_large)
        sweep_large();
    sweep_nonblocking();
    sweep_batches();
    test_barrier_semantics();

    if (opt_mem != MEM_MALLOC && n > 1) {
        tu_set_case("--mem %s: peers' allocations mapped", opt_mem == MEM_CHORUS ? "chorus" : "mixed");
        int mapped = peer_mappings();
        if (opt_mem == MEM_CHORUS)
            CHECK(mapped > 0, "no peer allocation is mapped (%d): zero copy never ran", mapped);
        else
            CHECK(mapped == 0, "%d peer allocations mapped: zero copy ran although some ranks' "
                  "buffers are not Chorus memory", mapped);
    }

    tu_set_case("finalize/destroy");
    chorus_result_t ae = CHORUS_INTERNAL_ERROR;
    CHECK_OK(chorus_comm_get_async_error(g_comm, &ae));
    CHECK(ae == CHORUS_SUCCESS, "async error %d on the communicator at the end", (int)ae);
    CHECK_OK(chorus_comm_finalize(g_comm));
    CHECK_OK(chorus_comm_destroy(g_comm));
    if (g_parent) {
        CHECK_OK(chorus_comm_finalize(g_parent));
        CHECK_OK(chorus_comm_destroy(g_parent));
    }
    if (g_mpi != MPI_COMM_WORLD)
        MPI_Comm_free(&g_mpi);
    if (opt_mem != MEM_MALLOC) {
        tu_set_case("--mem: peers' allocations unmapped at destroy");
        int mapped = peer_mappings();
        CHECK(mapped == 0, "%d peer allocations still mapped after chorus_comm_destroy", mapped);
    }
    free(hashes);
    if (me == 0)
        tu_log("total %.1f s", tu_now() - t0);
    int rc = tu_summary("test_coll");
    MPI_Finalize();
    return rc;
}
