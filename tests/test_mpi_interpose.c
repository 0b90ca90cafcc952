/*
 * test_mpi_interpose.c - the MPI interposer (libchorus_mpi) against MPI itself.
 *
 * Every case calls an MPI collective the ordinary way (MPI_Allreduce, ...:
 * intercepted when the interposer is linked or preloaded) and the same
 * collective through PMPI_ (never intercepted) on the same inputs, and
 * compares the results byte for byte: the inputs are small integers, so every
 * reduction is exact in any order. It also checks which path each call took
 * (the interposer's counters, found with dlsym so that the same program runs
 * with and without it):
 *   - communicators: world, a dup, a split (odd sizes for odd np), one made
 *     by MPI_Comm_create from a group, MPI_COMM_SELF;
 *   - reductions (allreduce, reduce at two roots, reduce_scatter_block) over
 *     every mapped type and op, counts 0, 1, 7, 1000 (and 1M on the world),
 *     in place and not; data movement (allgather, alltoall, alltoallv with
 *     gaps and negative displacements, bcast at two roots) with several
 *     datatypes, mixed send/receive types, in place and not;
 *   - the nonblocking forms with MPI_Wait, MPI_Test polling, and several
 *     outstanding completed by MPI_Waitall, MPI_Waitany, MPI_Testall and
 *     MPI_Waitsome;
 *   - MPIX_C_FLOAT16 sums (which MPICH itself cannot do);
 *   - MPI keeps progressing while a collective waits (a large send started
 *     before it completes), blocking and nonblocking;
 *   - dense derived datatypes (contiguous, a packed struct) run on Chorus as
 *     bytes, also when ranks describe the same data with different types
 *     (a contiguous type on some ranks, MPI_INT on others; a zero-size type
 *     against a count of 0, in place too: MPICH's alltoallw_zeros);
 *   - fallbacks (non-dense derived datatypes, user ops, MPI_BAND, MPI_SHORT
 *     sums, a pair type with a hole, an inter-communicator) take the MPI
 *     path and stay right;
 *   - a Chorus failure (alltoallv counts that disagree) becomes an MPI error
 *     through the communicator's error handler, with Chorus' text;
 *   - communicators freed (one with an operation in flight) leave no file
 *     descriptor or /dev/shm entry behind; MPI_Finalize ends cleanly.
 *
 * Usage: mpirun -np N test_mpi_interpose [--expect-interposer] [--quick]
 *            [--tunables-check] [--seed S] [-v]
 *   --expect-interposer  fail unless the interposer is there (linked or
 *                        preloaded); without it, paths are not checked
 *   --tunables-check     only check the CHORUS_MPI_* selection; run it under
 *                        CHORUS_MPI_COLLS=allreduce,iallgather,bcast
 *                        CHORUS_MPI_MIN_BYTES=64 CHORUS_MPI_MAX_BYTES=64K
 * Rank 0 ends with "ok test_mpi_interpose np=N: K checks" or "FAIL ...".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>
#include "chorus_mpi_stats.h"
#include "test_util.h"

static int opt_quick;
static uint64_t g_seed = 0x1e7;
static uint64_t case_no;

/* ---- the interposer's counters, when it is there ---------------------------------- */

typedef int (*get_counts_fn)(int, unsigned long long *, unsigned long long *);
typedef void (*last_fallback_fn)(char *, size_t);
static get_counts_fn get_counts;
static last_fallback_fn last_fallback;

static const char *const coll_names[CHORUS_MPI_NUM_COLLS] = {
    "allreduce",  "allgather",  "alltoall",  "alltoallv",  "reduce_scatter_block",
    "bcast",      "reduce",     "barrier",   "iallreduce", "iallgather",
    "ialltoall",  "ialltoallv", "ireduce_scatter_block",   "ibcast",
    "ireduce",    "ibarrier"};

enum { PATH_CHORUS = 1, PATH_MPI = 2, PATH_ANY = 3 };

typedef struct {
    unsigned long long chorus[CHORUS_MPI_NUM_COLLS], mpi[CHORUS_MPI_NUM_COLLS];
} counts_t;

static void snap(counts_t *c)
{
    memset(c, 0, sizeof *c);
    if (!get_counts)
        return;
    for (int i = 0; i < CHORUS_MPI_NUM_COLLS; i++)
        get_counts(i, &c->chorus[i], &c->mpi[i]);
}

/* Checks that `calls` calls of coll took path since *before. */
static void check_path(const counts_t *before, int coll, int path, int calls)
{
    if (!get_counts || path == PATH_ANY)
        return;
    counts_t now;
    snap(&now);
    unsigned long long dc = now.chorus[coll] - before->chorus[coll];
    unsigned long long dm = now.mpi[coll] - before->mpi[coll];
    char why[256] = "";
    if (last_fallback)
        last_fallback(why, sizeof why);
    if (path == PATH_CHORUS)
        CHECK(dc == (unsigned long long)calls && dm == 0,
              "MPI_%s: expected %d call(s) on Chorus, got %llu on Chorus and %llu to MPI "
              "(last reason to go to MPI: %s)", coll_names[coll], calls, dc, dm, why);
    else
        CHECK(dm == (unsigned long long)calls && dc == 0,
              "MPI_%s: expected %d call(s) to MPI, got %llu on Chorus and %llu to MPI",
              coll_names[coll], calls, dc, dm);
}

/* The expected path of an ordinary call: Chorus whenever it is there. */
static int chorus_path(void) { return get_counts ? PATH_CHORUS : PATH_ANY; }

/* ---- MPI helpers ---------------------------------------------------------------- */

/* Waits for a PMPI request, sleeping: MPICH spins, which is slow when ranks
 * outnumber cores. */
static void ref_wait(MPI_Request *r)
{
    int done = 0;
    for (int spins = 0;; spins++) {
        PMPI_Test(r, &done, MPI_STATUS_IGNORE);
        if (done)
            return;
        if (spins < 20)
            sched_yield();
        else
            usleep(spins < 1000 ? 20 : 200);
    }
}

/* Completes a request of the tested (intercepted) call: mode 1 MPI_Wait,
 * mode 2 MPI_Test polling. */
static int test_complete(MPI_Request *r, int mode)
{
    if (mode == 1)
        return MPI_Wait(r, MPI_STATUS_IGNORE);
    int done = 0, rc = MPI_SUCCESS;
    while (!done && rc == MPI_SUCCESS) {
        rc = MPI_Test(r, &done, MPI_STATUS_IGNORE);
        if (!done)
            sched_yield();
    }
    return rc;
}

static void ref_barrier(MPI_Comm comm)
{
    MPI_Request r;
    PMPI_Ibarrier(comm, &r);
    ref_wait(&r);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_mpi_interpose: out of memory\n");
        PMPI_Abort(MPI_COMM_WORLD, 3);
    }
    return p;
}

static size_t type_extent(MPI_Datatype dt)
{
    MPI_Aint lb, ext;
    PMPI_Type_get_extent(dt, &lb, &ext);
    return (size_t)ext;
}

static void fill_bytes(void *buf, size_t n, int rank, uint64_t salt)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)tu_hash(g_seed ^ salt, (uint64_t)rank, i);
}

/* First differing byte of a and b, or -1. */
static long long first_diff(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return (long long)i;
    return -1;
}

#define CHECK_SAME(what, got, want, n)                                                   \
    do {                                                                                 \
        long long d_ = first_diff((got), (want), (n));                                   \
        CHECK(d_ < 0, "%s differs from MPI's result at byte %lld of %zu", (what), d_,    \
              (size_t)(n));                                                              \
    } while (0)

/* ---- reductions ------------------------------------------------------------------ */

enum { K_SINT, K_UINT, K_FLOAT, K_DOUBLE };
typedef struct {
    MPI_Datatype dt;
    const char *name;
    int kind;
    int size;
    int common; /* in the short list (nonblocking, small communicators, --quick) */
} rtype_t;

static rtype_t rtypes[] = {
    {MPI_INT8_T, "MPI_INT8_T", K_SINT, 1, 0},
    {MPI_SIGNED_CHAR, "MPI_SIGNED_CHAR", K_SINT, 1, 0},
    {MPI_UINT8_T, "MPI_UINT8_T", K_UINT, 1, 1},
    {MPI_UNSIGNED_CHAR, "MPI_UNSIGNED_CHAR", K_UINT, 1, 0},
    {MPI_INT, "MPI_INT", K_SINT, (int)sizeof(int), 1},
    {MPI_INT32_T, "MPI_INT32_T", K_SINT, 4, 0},
    {MPI_UNSIGNED, "MPI_UNSIGNED", K_UINT, (int)sizeof(unsigned), 0},
    {MPI_UINT32_T, "MPI_UINT32_T", K_UINT, 4, 0},
    {MPI_LONG, "MPI_LONG", K_SINT, (int)sizeof(long), 0},
    {MPI_LONG_LONG, "MPI_LONG_LONG", K_SINT, (int)sizeof(long long), 0},
    {MPI_INT64_T, "MPI_INT64_T", K_SINT, 8, 1},
    {MPI_UNSIGNED_LONG, "MPI_UNSIGNED_LONG", K_UINT, (int)sizeof(unsigned long), 0},
    {MPI_UNSIGNED_LONG_LONG, "MPI_UNSIGNED_LONG_LONG", K_UINT, 8, 0},
    {MPI_UINT64_T, "MPI_UINT64_T", K_UINT, 8, 0},
    {MPI_AINT, "MPI_AINT", K_SINT, (int)sizeof(MPI_Aint), 0},
    {MPI_FLOAT, "MPI_FLOAT", K_FLOAT, 4, 1},
    {MPI_DOUBLE, "MPI_DOUBLE", K_DOUBLE, 8, 1},
};
#define NRTYPES (int)(sizeof rtypes / sizeof rtypes[0])
enum { T_INT = 4, T_FLOAT = 15, T_DOUBLE = 16 }; /* indices in rtypes */

static const struct {
    MPI_Op op;
    const char *name;
} ops[] = {{MPI_SUM, "MPI_SUM"}, {MPI_PROD, "MPI_PROD"}, {MPI_MIN, "MPI_MIN"},
           {MPI_MAX, "MPI_MAX"}};
#define NOPS 4

static void put(const rtype_t *t, void *buf, size_t i, long long v)
{
    unsigned char *p = (unsigned char *)buf + i * (size_t)t->size;
    if (t->kind == K_FLOAT) {
        float f = (float)v;
        memcpy(p, &f, 4);
    } else if (t->kind == K_DOUBLE) {
        double d = (double)v;
        memcpy(p, &d, 8);
    } else if (t->size == 1) {
        int8_t x = (int8_t)v;
        memcpy(p, &x, 1);
    } else if (t->size == 4) {
        int32_t x = (int32_t)v;
        memcpy(p, &x, 4);
    } else {
        int64_t x = (int64_t)v;
        memcpy(p, &x, 8);
    }
}

/* Input element i of rank: small values whose reduction is exact in every
 * order and overflows no signed type. */
static long long gen(const rtype_t *t, int opi, int rank, size_t i)
{
    uint64_t h = tu_hash(g_seed + case_no, (uint64_t)rank, i);
    if (ops[opi].op == MPI_PROD) {
        if (t->kind == K_UINT)
            return 1 + (long long)(h % 2);
        if (t->size == 1)
            return h % 2 ? -1 : 1;
        static const long long p[] = {1, -1, 2, 1};
        return p[h % 4];
    }
    if (t->kind == K_UINT)
        return (long long)(h % 9);
    return (long long)(h % 9) - 4;
}

enum { R_ALLREDUCE, R_REDUCE, R_RSB };
static const int r_coll[] = {CHORUS_MPI_ALLREDUCE, CHORUS_MPI_REDUCE,
                             CHORUS_MPI_REDUCE_SCATTER_BLOCK};
static const char *const r_names[] = {"allreduce", "reduce", "reduce_scatter_block"};

/* The tested call (mode 0 blocking, else nonblocking completed by mode). */
static int call_reduction(int which, int mode, const void *sb, void *rb, int count,
                          MPI_Datatype dt, MPI_Op op, int root, MPI_Comm comm)
{
    MPI_Request r;
    int rc;
    switch (which) {
    case R_ALLREDUCE:
        if (!mode)
            return MPI_Allreduce(sb, rb, count, dt, op, comm);
        rc = MPI_Iallreduce(sb, rb, count, dt, op, comm, &r);
        break;
    case R_REDUCE:
        if (!mode)
            return MPI_Reduce(sb, rb, count, dt, op, root, comm);
        rc = MPI_Ireduce(sb, rb, count, dt, op, root, comm, &r);
        break;
    default:
        if (!mode)
            return MPI_Reduce_scatter_block(sb, rb, count, dt, op, comm);
        rc = MPI_Ireduce_scatter_block(sb, rb, count, dt, op, comm, &r);
        break;
    }
    return rc == MPI_SUCCESS ? test_complete(&r, mode) : rc;
}

static void ref_reduction(int which, const void *sb, void *rb, int count, MPI_Datatype dt,
                          MPI_Op op, int root, MPI_Comm comm)
{
    MPI_Request r;
    if (which == R_ALLREDUCE)
        PMPI_Iallreduce(sb, rb, count, dt, op, comm, &r);
    else if (which == R_REDUCE)
        PMPI_Ireduce(sb, rb, count, dt, op, root, comm, &r);
    else
        PMPI_Ireduce_scatter_block(sb, rb, count, dt, op, comm, &r);
    ref_wait(&r);
}

static void case_reduction(MPI_Comm comm, const char *cname, int which, const rtype_t *t,
                           int opi, int count, int inplace, int root, int mode, int path)
{
    int me, n;
    PMPI_Comm_rank(comm, &me);
    PMPI_Comm_size(comm, &n);
    case_no++;
    tu_set_case("%s MPI_%s%s %s %s count=%d inplace=%d root=%d", cname, mode ? "I" : "",
                r_names[which], t->name, ops[opi].name, count, inplace, root);
    size_t es = (size_t)t->size;
    size_t in_elems = which == R_RSB ? (size_t)count * (size_t)n : (size_t)count;
    size_t bytes = in_elems * es, out_bytes = (size_t)count * es;
    char *in = xmalloc(bytes), *copy = xmalloc(bytes), *out = xmalloc(bytes);
    char *ref = xmalloc(bytes);
    for (size_t i = 0; i < in_elems; i++)
        put(t, in, i, gen(t, opi, me, i));
    memcpy(copy, in, bytes);
    memset(out, 0xcd, bytes);
    memset(ref, 0xcd, bytes);
    ref_reduction(which, in, ref, count, t->dt, ops[opi].op, root, comm);

    int coll = r_coll[which] + (mode ? CHORUS_MPI_NUM_BLOCKING : 0);
    counts_t before;
    snap(&before);
    int rc;
    int use_in_place = inplace && (which != R_REDUCE || me == root);
    if (use_in_place) {
        memcpy(out, in, bytes);
        rc = call_reduction(which, mode, MPI_IN_PLACE, out, count, t->dt, ops[opi].op, root,
                            comm);
    } else {
        rc = call_reduction(which, mode, in, out, count, t->dt, ops[opi].op, root, comm);
        CHECK_SAME("the send buffer (must be left untouched)", in, copy, bytes);
    }
    CHECK(rc == MPI_SUCCESS, "returned %d", rc);
    if (which != R_REDUCE || me == root)
        CHECK_SAME("the result", out, ref, which == R_RSB ? out_bytes : bytes);
    check_path(&before, coll, path, 1);
    free(in);
    free(copy);
    free(out);
    free(ref);
}

static void reductions(MPI_Comm comm, const char *cname, int full, int large)
{
    int n;
    PMPI_Comm_size(comm, &n);
    static const int counts[] = {0, 1, 7, 1000};
    for (int which = 0; which < 3; which++)
        for (int ti = 0; ti < NRTYPES; ti++) {
            if (!rtypes[ti].common && (!full || opt_quick))
                continue;
            for (int opi = 0; opi < NOPS; opi++)
                for (int ci = 0; ci < 4; ci++)
                    for (int inplace = 0; inplace < 2; inplace++) {
                        int roots[2] = {0, n - 1}, nroots = which == R_REDUCE && n > 1 ? 2 : 1;
                        for (int ri = 0; ri < nroots; ri++) {
                            /* MPICH 4.0.2 itself crashes in MPI_Reduce with
                             * MPI_IN_PLACE at a root other than 0 (1000 ints,
                             * 3 ranks): only through the interposer */
                            if (!get_counts && which == R_REDUCE && inplace && roots[ri])
                                continue;
                            case_reduction(comm, cname, which, &rtypes[ti], opi, counts[ci],
                                           inplace, roots[ri], 0, chorus_path());
                            /* nonblocking: the short list, two counts */
                            if (rtypes[ti].common && (ci == 1 || ci == 3) &&
                                (!opt_quick || opi == 0))
                                case_reduction(comm, cname, which, &rtypes[ti], opi,
                                               counts[ci], inplace, roots[ri], 1 + inplace,
                                               chorus_path());
                        }
                    }
        }
    if (large && !opt_quick) {
        const int big = 1 << 20;
        case_reduction(comm, cname, R_ALLREDUCE, &rtypes[T_FLOAT], 0, big, 0, 0, 0, chorus_path());
        case_reduction(comm, cname, R_ALLREDUCE, &rtypes[T_DOUBLE], 0, big, 1, 0, 0, chorus_path());
        case_reduction(comm, cname, R_ALLREDUCE, &rtypes[T_INT], 3, big, 0, 0, 1, chorus_path());
        int root = get_counts ? n - 1 : 0; /* (the MPICH bug above) */
        case_reduction(comm, cname, R_REDUCE, &rtypes[T_FLOAT], 0, big, 1, root, 0, chorus_path());
        case_reduction(comm, cname, R_RSB, &rtypes[T_DOUBLE], 0, big / n, 1, 0, 0, chorus_path());
    }
}

/* ---- data movement ----------------------------------------------------------------- */

enum { M_ALLGATHER, M_ALLTOALL, M_ALLTOALLV, M_BCAST };
static const int m_coll[] = {CHORUS_MPI_ALLGATHER, CHORUS_MPI_ALLTOALL, CHORUS_MPI_ALLTOALLV,
                             CHORUS_MPI_BCAST};
static const char *const m_names[] = {"allgather", "alltoall", "alltoallv", "bcast"};

typedef struct {
    int *sc, *sd, *rc, *rd; /* alltoallv counts and displacements */
    size_t sspan, rspan;    /* elements the send / receive buffer must hold */
    int shift;              /* negative displacements: elements the base moved up */
} vlayout_t;

/* Counts rank r sends to j: symmetric when in place (MPI then uses one
 * layout for both directions). Send blocks go in reverse order with gaps,
 * receive blocks in order with gaps; neg moves the send base up so every
 * send displacement is <= 0. */
static void make_vlayout(vlayout_t *v, int me, int n, int sunit, int runit, int inplace, int neg)
{
    v->sc = xmalloc((size_t)n * sizeof(int));
    v->sd = xmalloc((size_t)n * sizeof(int));
    v->rc = xmalloc((size_t)n * sizeof(int));
    v->rd = xmalloc((size_t)n * sizeof(int));
    for (int j = 0; j < n; j++) {
        int a = inplace ? (me < j ? me : j) : me, b = inplace ? (me < j ? j : me) : j;
        v->sc[j] = (int)((a * 3 + b * 5 + (int)(g_seed % 7)) % 4) * sunit;
        a = inplace ? a : j;
        b = inplace ? b : me;
        v->rc[j] = (int)((a * 3 + b * 5 + (int)(g_seed % 7)) % 4) * runit;
    }
    int off = 0;
    for (int j = 0; j < n; j++) {
        v->rd[j] = off;
        off += v->rc[j] + 2;
    }
    v->rspan = (size_t)off;
    if (inplace) {
        memcpy(v->sc, v->rc, (size_t)n * sizeof(int));
        memcpy(v->sd, v->rd, (size_t)n * sizeof(int));
        v->sspan = v->rspan;
    } else {
        off = 1;
        for (int j = n - 1; j >= 0; j--) {
            v->sd[j] = off;
            off += v->sc[j] + 1;
        }
        v->sspan = (size_t)off;
    }
    v->shift = 0;
    if (neg && !inplace) {
        v->shift = (int)v->sspan;
        for (int j = 0; j < n; j++)
            v->sd[j] -= v->shift;
    }
}

static void free_vlayout(vlayout_t *v)
{
    free(v->sc);
    free(v->sd);
    free(v->rc);
    free(v->rd);
}

static int call_move(int which, int mode, const void *sb, int scount, MPI_Datatype st, void *rb,
                     int rcount, MPI_Datatype rt, const vlayout_t *v, int root, MPI_Comm comm)
{
    MPI_Request r;
    int rc;
    switch (which) {
    case M_ALLGATHER:
        if (!mode)
            return MPI_Allgather(sb, scount, st, rb, rcount, rt, comm);
        rc = MPI_Iallgather(sb, scount, st, rb, rcount, rt, comm, &r);
        break;
    case M_ALLTOALL:
        if (!mode)
            return MPI_Alltoall(sb, scount, st, rb, rcount, rt, comm);
        rc = MPI_Ialltoall(sb, scount, st, rb, rcount, rt, comm, &r);
        break;
    case M_ALLTOALLV:
        if (!mode)
            return MPI_Alltoallv(sb, v->sc, v->sd, st, rb, v->rc, v->rd, rt, comm);
        rc = MPI_Ialltoallv(sb, v->sc, v->sd, st, rb, v->rc, v->rd, rt, comm, &r);
        break;
    default:
        if (!mode)
            return MPI_Bcast(rb, rcount, rt, root, comm);
        rc = MPI_Ibcast(rb, rcount, rt, root, comm, &r);
        break;
    }
    return rc == MPI_SUCCESS ? test_complete(&r, mode) : rc;
}

static void ref_move(int which, const void *sb, int scount, MPI_Datatype st, void *rb,
                     int rcount, MPI_Datatype rt, const vlayout_t *v, int root, MPI_Comm comm)
{
    MPI_Request r;
    switch (which) {
    case M_ALLGATHER:
        PMPI_Iallgather(sb, scount, st, rb, rcount, rt, comm, &r);
        break;
    case M_ALLTOALL:
        PMPI_Ialltoall(sb, scount, st, rb, rcount, rt, comm, &r);
        break;
    case M_ALLTOALLV:
        PMPI_Ialltoallv(sb, v->sc, v->sd, st, rb, v->rc, v->rd, rt, comm, &r);
        break;
    default:
        PMPI_Ibcast(rb, rcount, rt, root, comm, &r);
        break;
    }
    ref_wait(&r);
}

/* Set while ranks mix a zero-size type x k with a count of 0: MPICH 4.0.2's
 * own allgather (at least) hangs then (ranks with a count of 0 return at
 * once, the others wait for them), so case_move takes no PMPI reference:
 * nothing moves, the receive buffer must keep its bytes. */
static int no_empty_ref;

/* One data-movement case. count is per rank (per peer for alltoall, the
 * unit of the alltoallv counts, the whole message for bcast) in receive
 * elements; the send side uses scount elements of st (same bytes). */
static void case_move(MPI_Comm comm, const char *cname, int which, MPI_Datatype st, int scount,
                      MPI_Datatype rt, int rcount, int inplace, int neg, int root, int mode,
                      int path)
{
    int me, n;
    PMPI_Comm_rank(comm, &me);
    PMPI_Comm_size(comm, &n);
    case_no++;
    char sname[MPI_MAX_OBJECT_NAME], rname[MPI_MAX_OBJECT_NAME];
    int len;
    PMPI_Type_get_name(st, sname, &len);
    PMPI_Type_get_name(rt, rname, &len);
    tu_set_case("%s MPI_%s%s send %d x %s recv %d x %s inplace=%d neg=%d root=%d", cname,
                mode ? "I" : "", m_names[which], scount, sname[0] ? sname : "(derived)",
                rcount, rname[0] ? rname : "(derived)", inplace, neg, root);
    size_t sext = type_extent(st), rext = type_extent(rt);
    vlayout_t v = {0};
    size_t sbytes, rbytes;
    switch (which) {
    case M_ALLGATHER:
        sbytes = (size_t)scount * sext;
        rbytes = (size_t)n * (size_t)rcount * rext;
        break;
    case M_ALLTOALL:
        sbytes = (size_t)n * (size_t)scount * sext;
        rbytes = (size_t)n * (size_t)rcount * rext;
        break;
    case M_ALLTOALLV:
        make_vlayout(&v, me, n, scount, rcount, inplace, neg);
        sbytes = v.sspan * sext;
        rbytes = v.rspan * rext;
        break;
    default:
        sbytes = 0;
        rbytes = (size_t)rcount * rext;
        break;
    }
    char *sb = xmalloc(sbytes), *out = xmalloc(rbytes), *ref = xmalloc(rbytes);
    char *copy = xmalloc(sbytes);
    fill_bytes(sb, sbytes, me, case_no);
    memcpy(copy, sb, sbytes);
    memset(out, 0xcd, rbytes);
    memset(ref, 0xcd, rbytes);
    const char *ssend = sb + (ptrdiff_t)v.shift * (ptrdiff_t)sext; /* alltoallv neg */
    if (which == M_BCAST && me == root) {
        fill_bytes(out, rbytes, me, case_no);
        memcpy(ref, out, rbytes);
    }
    /* the reference: out of place, the same data (none when no_empty_ref is
     * set: nothing moves, so the receive buffer must keep its bytes) */
    if (no_empty_ref) {
        if (inplace && which == M_ALLGATHER) {
            memcpy(ref + (size_t)me * (size_t)rcount * rext, sb, sbytes);
        } else if (inplace && (which == M_ALLTOALL || which == M_ALLTOALLV)) {
            fill_bytes(out, rbytes, me, case_no + 77);
            memcpy(ref, out, rbytes);
        }
    } else if (inplace && which == M_ALLGATHER) {
        memcpy(ref + (size_t)me * (size_t)rcount * rext, sb, sbytes);
        ref_move(which, sb, scount, st, ref, rcount, rt, &v, root, comm);
    } else if (inplace && (which == M_ALLTOALL || which == M_ALLTOALLV)) {
        /* in place: the data goes out from the receive buffer */
        char *tmp = xmalloc(rbytes);
        fill_bytes(tmp, rbytes, me, case_no + 77);
        memcpy(out, tmp, rbytes);
        memcpy(ref, tmp, rbytes); /* the gaps between blocks keep their bytes */
        ref_move(which, tmp, rcount, rt, ref, rcount, rt, &v, root, comm);
        free(tmp);
    } else {
        ref_move(which, ssend, scount, st, ref, rcount, rt, &v, root, comm);
    }

    int coll = m_coll[which] + (mode ? CHORUS_MPI_NUM_BLOCKING : 0);
    counts_t before;
    snap(&before);
    int rc;
    if (inplace && which == M_ALLGATHER) {
        memcpy(out + (size_t)me * (size_t)rcount * rext, sb, sbytes);
        rc = call_move(which, mode, MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, out, rcount, rt, &v,
                       root, comm);
    } else if (inplace && which != M_BCAST) {
        rc = call_move(which, mode, MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, out, rcount, rt, &v,
                       root, comm);
    } else {
        rc = call_move(which, mode, ssend, scount, st, out, rcount, rt, &v, root, comm);
        CHECK_SAME("the send buffer (must be left untouched)", sb, copy, sbytes);
    }
    CHECK(rc == MPI_SUCCESS, "returned %d", rc);
    CHECK_SAME("the result", out, ref, rbytes);
    check_path(&before, coll, path, 1);
    if (which == M_ALLTOALLV)
        free_vlayout(&v);
    free(sb);
    free(out);
    free(ref);
    free(copy);
}

static void movements(MPI_Comm comm, const char *cname, int full, int large)
{
    int n;
    PMPI_Comm_size(comm, &n);
    static const int counts[] = {0, 1, 7, 1000};
    struct {
        MPI_Datatype st;
        int sfactor; /* send elements per receive element (same bytes) */
        MPI_Datatype rt;
        int rfactor;
    } pairs[] = {
        {MPI_BYTE, 1, MPI_BYTE, 1},     {MPI_INT, 1, MPI_INT, 1},
        {MPI_DOUBLE, 1, MPI_DOUBLE, 1}, {MPI_SHORT, 1, MPI_SHORT, 1},
        {MPI_CHAR, 1, MPI_CHAR, 1},     {MPI_2INT, 1, MPI_2INT, 1},
        {MPI_INT, 1, MPI_BYTE, 4}, /* four bytes per int: mixed types */
    };
    int npairs = (int)(sizeof pairs / sizeof pairs[0]);
    for (int which = 0; which < 4; which++)
        for (int p = 0; p < npairs; p++) {
            if ((!full || opt_quick) && p > 2 && p != 6)
                continue;
            for (int ci = 0; ci < 4; ci++)
                for (int inplace = 0; inplace < 2; inplace++) {
                    if (inplace && (which == M_BCAST || p == 6))
                        continue;
                    int c = counts[ci];
                    int roots[2] = {0, n - 1}, nroots = which == M_BCAST && n > 1 ? 2 : 1;
                    for (int ri = 0; ri < nroots; ri++)
                        for (int mode = 0; mode < 3; mode++) {
                            if (mode && (ci == 0 || ci == 2 || p > 2))
                                continue;
                            case_move(comm, cname, which, pairs[p].st, c * pairs[p].sfactor,
                                      pairs[p].rt, c * pairs[p].rfactor, inplace, 0,
                                      roots[ri], mode, chorus_path());
                        }
                }
        }
    /* alltoallv with negative send displacements */
    case_move(comm, cname, M_ALLTOALLV, MPI_INT, 5, MPI_INT, 5, 0, 1, 0, 0, chorus_path());
    case_move(comm, cname, M_ALLTOALLV, MPI_DOUBLE, 3, MPI_DOUBLE, 3, 0, 1, 0, 1, chorus_path());
    if (large && !opt_quick) {
        const int big = 1 << 20;
        case_move(comm, cname, M_ALLGATHER, MPI_BYTE, big, MPI_BYTE, big, 0, 0, 0, 0,
                  chorus_path());
        case_move(comm, cname, M_ALLTOALL, MPI_INT, big / 4 / n, MPI_INT, big / 4 / n, 1, 0, 0,
                  0, chorus_path());
        case_move(comm, cname, M_ALLTOALLV, MPI_BYTE, big / n, MPI_BYTE, big / n, 0, 0, 0, 1,
                  chorus_path());
        case_move(comm, cname, M_BCAST, MPI_INT, 0, MPI_INT, big, 0, 0, n - 1, 0,
                  chorus_path());
    }
}

static void barriers(MPI_Comm comm, const char *cname)
{
    tu_set_case("%s MPI_Barrier / MPI_Ibarrier", cname);
    counts_t before;
    snap(&before);
    for (int i = 0; i < 3; i++)
        CHECK(MPI_Barrier(comm) == MPI_SUCCESS, "MPI_Barrier failed");
    check_path(&before, CHORUS_MPI_BARRIER, chorus_path(), 3);
    snap(&before);
    MPI_Request r;
    CHECK(MPI_Ibarrier(comm, &r) == MPI_SUCCESS, "MPI_Ibarrier failed");
    CHECK(test_complete(&r, 2) == MPI_SUCCESS, "MPI_Test failed");
    check_path(&before, CHORUS_MPI_IBARRIER, chorus_path(), 1);
}

/* ---- several outstanding nonblocking operations ------------------------------------- */

static void outstanding(MPI_Comm comm, const char *cname)
{
    int me, n;
    PMPI_Comm_rank(comm, &me);
    PMPI_Comm_size(comm, &n);
    enum { K = 6, CNT = 999 };
    for (int how = 0; how < 4; how++) {
        static const char *const hows[] = {"MPI_Waitall", "MPI_Waitany", "MPI_Testall",
                                           "MPI_Waitsome"};
        tu_set_case("%s %d outstanding nonblocking operations, completed by %s", cname, K,
                    hows[how]);
        case_no++;
        double *in = xmalloc(CNT * sizeof(double));
        double *ar = xmalloc(CNT * sizeof(double)), *ar_ref = xmalloc(CNT * sizeof(double));
        int *ag = xmalloc((size_t)n * CNT * sizeof(int)), *ag_ref = xmalloc((size_t)n * CNT *
                                                                           sizeof(int));
        int *bc = xmalloc(CNT * sizeof(int)), *bc_ref = xmalloc(CNT * sizeof(int));
        int *a2a = xmalloc((size_t)n * 3 * sizeof(int)), *a2a_ref = xmalloc((size_t)n * 3 *
                                                                           sizeof(int));
        int *a2a_in = xmalloc((size_t)n * 3 * sizeof(int));
        double *rd = xmalloc(CNT * sizeof(double)), *rd_ref = xmalloc(CNT * sizeof(double));
        for (int i = 0; i < CNT; i++) {
            in[i] = (double)((me * 7 + i + how) % 11) - 5;
            bc[i] = bc_ref[i] = me == 0 ? i * 3 + how : -1;
        }
        for (int i = 0; i < n * 3; i++)
            a2a_in[i] = me * 1000 + i;
        int *ag_in = xmalloc(CNT * sizeof(int));
        for (int i = 0; i < CNT; i++)
            ag_in[i] = me * 100000 + i + how;
        MPI_Request rr;
        PMPI_Iallreduce(in, ar_ref, CNT, MPI_DOUBLE, MPI_SUM, comm, &rr);
        ref_wait(&rr);
        PMPI_Iallgather(ag_in, CNT, MPI_INT, ag_ref, CNT, MPI_INT, comm, &rr);
        ref_wait(&rr);
        PMPI_Ibcast(bc_ref, CNT, MPI_INT, 0, comm, &rr);
        ref_wait(&rr);
        PMPI_Ialltoall(a2a_in, 3, MPI_INT, a2a_ref, 3, MPI_INT, comm, &rr);
        ref_wait(&rr);
        PMPI_Ireduce(in, rd_ref, CNT, MPI_DOUBLE, MPI_MAX, n - 1, comm, &rr);
        ref_wait(&rr);

        counts_t before;
        snap(&before);
        MPI_Request reqs[K];
        MPI_Iallreduce(in, ar, CNT, MPI_DOUBLE, MPI_SUM, comm, &reqs[0]);
        MPI_Iallgather(ag_in, CNT, MPI_INT, ag, CNT, MPI_INT, comm, &reqs[1]);
        MPI_Ibcast(bc, CNT, MPI_INT, 0, comm, &reqs[2]);
        MPI_Ialltoall(a2a_in, 3, MPI_INT, a2a, 3, MPI_INT, comm, &reqs[3]);
        MPI_Ireduce(in, rd, CNT, MPI_DOUBLE, MPI_MAX, n - 1, comm, &reqs[4]);
        MPI_Ibarrier(comm, &reqs[5]);
        int rc = MPI_SUCCESS;
        MPI_Status sts[K]; /* (MPI_STATUSES_IGNORE upsets gcc's access checks) */
        if (how == 0) {
            rc = MPI_Waitall(K, reqs, sts);
        } else if (how == 1) {
            for (int done = 0; done < K && rc == MPI_SUCCESS; done++) {
                int idx;
                rc = MPI_Waitany(K, reqs, &idx, MPI_STATUS_IGNORE);
                CHECK(idx >= 0 && idx < K, "MPI_Waitany index %d", idx);
            }
        } else if (how == 2) {
            int flag = 0;
            while (!flag && rc == MPI_SUCCESS) {
                rc = MPI_Testall(K, reqs, &flag, sts);
                if (!flag)
                    sched_yield();
            }
        } else {
            int left = K;
            while (left > 0 && rc == MPI_SUCCESS) {
                int outc, idx[K];
                rc = MPI_Waitsome(K, reqs, &outc, idx, sts);
                if (outc == MPI_UNDEFINED)
                    break;
                left -= outc;
            }
        }
        CHECK(rc == MPI_SUCCESS, "%s returned %d", hows[how], rc);
        for (int i = 0; i < K; i++)
            CHECK(reqs[i] == MPI_REQUEST_NULL, "request %d not freed", i);
        CHECK_SAME("iallreduce", ar, ar_ref, CNT * sizeof(double));
        CHECK_SAME("iallgather", ag, ag_ref, (size_t)n * CNT * sizeof(int));
        CHECK_SAME("ibcast", bc, bc_ref, CNT * sizeof(int));
        CHECK_SAME("ialltoall", a2a, a2a_ref, (size_t)n * 3 * sizeof(int));
        if (me == n - 1)
            CHECK_SAME("ireduce", rd, rd_ref, CNT * sizeof(double));
        check_path(&before, CHORUS_MPI_IALLREDUCE, chorus_path(), 1);
        check_path(&before, CHORUS_MPI_IBARRIER, chorus_path(), 1);
        free(in);
        free(ar);
        free(ar_ref);
        free(ag);
        free(ag_ref);
        free(ag_in);
        free(bc);
        free(bc_ref);
        free(a2a);
        free(a2a_ref);
        free(a2a_in);
        free(rd);
        free(rd_ref);
    }
}

/* ---- MPI keeps progressing during a collective ------------------------------------------ */

/* One rank starts a large send to another, then enters a collective; the
 * other first receives, then enters it. The receive needs the sender's MPI
 * progress while the sender sits in the collective: MPI guarantees that this
 * completes (the sender is inside an MPI call), so the interposer must keep MPI turning
 * while it waits. A hang here is a failure (the runner's timeout). */
static void progress(void)
{
    int me, n;
    PMPI_Comm_rank(MPI_COMM_WORLD, &me);
    PMPI_Comm_size(MPI_COMM_WORLD, &n);
    if (n < 2)
        return;
    enum { BIG = 1 << 20 };
    char *buf = xmalloc(BIG);
    int v0 = 1, s0 = 0; /* the Chorus communicator exists before the test */
    MPI_Allreduce(&v0, &s0, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    /* (MPICH moves some sizes without the sender's help, others not) */
    static const int sizes[] = {100000, 300000, BIG};
    for (int k = 0; k < 6; k++) {
        /* blocking from rank 0 to 1, then nonblocking from 2 to 3: the
         * first large transfers of a process are the ones that need it */
        int nb = k >= 3, bytes = sizes[k % 3], from = nb && n >= 4 ? 2 : 0, to = from + 1;
        tu_set_case("MPI progress during %s: rank %d MPI_Isend(%d bytes) then the collective, "
                    "rank %d MPI_Recv then the collective", nb ? "MPI_Iallreduce + MPI_Wait"
                    : "MPI_Allreduce", from, bytes, to);
        memset(buf, me == from ? 0x5a : 0, BIG);
        int v = me + 1, sum = 0;
        MPI_Request sreq = MPI_REQUEST_NULL, creq;
        if (me == from)
            PMPI_Isend(buf, bytes, MPI_BYTE, to, 99, MPI_COMM_WORLD, &sreq);
        else if (me == to)
            PMPI_Recv(buf, bytes, MPI_BYTE, from, 99, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        counts_t before;
        snap(&before);
        if (nb) {
            MPI_Iallreduce(&v, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD, &creq);
            MPI_Wait(&creq, MPI_STATUS_IGNORE);
        } else {
            MPI_Allreduce(&v, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        }
        check_path(&before, nb ? CHORUS_MPI_IALLREDUCE : CHORUS_MPI_ALLREDUCE, chorus_path(), 1);
        if (me == from)
            PMPI_Wait(&sreq, MPI_STATUS_IGNORE);
        CHECK(sum == n * (n + 1) / 2, "sum %d", sum);
        if (me == to) {
            int bad = 0;
            for (int i = 0; i < bytes; i++)
                bad += buf[i] != 0x5a;
            CHECK(bad == 0, "%d wrong bytes received", bad);
        }
    }
    free(buf);
}

/* ---- half precision ---------------------------------------------------------------------- */

/* MPIX_C_FLOAT16 (MPICH's half type): MPICH 4.0.2 itself cannot reduce it
 * (an assertion fails), Chorus can. Checked against sums computed here. */
static void half_precision(void)
{
#ifdef MPIX_C_FLOAT16
    if (!get_counts)
        return;
    int me, n;
    PMPI_Comm_rank(MPI_COMM_WORLD, &me);
    PMPI_Comm_size(MPI_COMM_WORLD, &n);
    enum { CNT = 1001 };
    uint16_t in[CNT], out[CNT];
    for (int inplace = 0; inplace < 2; inplace++) {
        tu_set_case("MPI_Allreduce MPIX_C_FLOAT16 MPI_SUM count=%d inplace=%d", CNT, inplace);
        for (int i = 0; i < CNT; i++)
            in[i] = tu_float_to_half((float)((me * 5 + i) % 9 - 4));
        memcpy(out, in, sizeof out);
        counts_t before;
        snap(&before);
        int rc = MPI_Allreduce(inplace ? MPI_IN_PLACE : (void *)in, out, CNT, MPIX_C_FLOAT16,
                               MPI_SUM, MPI_COMM_WORLD);
        CHECK(rc == MPI_SUCCESS, "returned %d", rc);
        int bad = 0, first = -1;
        for (int i = 0; i < CNT; i++) {
            float want = 0;
            for (int r = 0; r < n; r++)
                want += (float)((r * 5 + i) % 9 - 4);
            if (tu_half_to_float(out[i]) != want) {
                bad++;
                if (first < 0)
                    first = i;
            }
        }
        CHECK(bad == 0, "%d wrong elements, the first at %d", bad, first);
        check_path(&before, CHORUS_MPI_ALLREDUCE, PATH_CHORUS, 1);
    }
#endif
}

/* ---- dense derived datatypes ------------------------------------------------------------ */

/* Dense datatypes (lower bound 0, extent == true extent == size, or size 0)
 * move as bytes on Chorus whichever type a rank passes, so ranks that
 * describe the same data differently agree on the path: each rank picks its
 * send and receive types by its rank (same type signature everywhere). */
static void dense_types(MPI_Comm comm, const char *cname)
{
    if (comm == MPI_COMM_NULL)
        return;
    int me, n;
    PMPI_Comm_rank(comm, &me);
    PMPI_Comm_size(comm, &n);
    MPI_Datatype c3, zero, pair;
    PMPI_Type_contiguous(3, MPI_INT, &c3); /* 12 bytes */
    PMPI_Type_commit(&c3);
    PMPI_Type_contiguous(0, MPI_INT, &zero); /* 0 bytes */
    PMPI_Type_commit(&zero);
    int bl[2] = {1, 1};
    MPI_Aint disp[2] = {0, sizeof(int)};
    MPI_Datatype members[2] = {MPI_INT, MPI_INT};
    PMPI_Type_create_struct(2, bl, disp, members, &pair); /* 2 ints, no hole: dense */
    PMPI_Type_commit(&pair);
    const int cnt[] = {0, 1, 5};
    for (int which = 0; which < 4; which++)
        for (int ci = 0; ci < 3; ci++)
            for (int inplace = 0; inplace < 2; inplace++)
                for (int mode = 0; mode < 3; mode++) {
                    if (inplace && which == M_BCAST)
                        continue;
                    if (mode == 2 && ci != 2)
                        continue;
                    int c = cnt[ci], root = which == M_BCAST && ci % 2 ? n - 1 : 0;
                    int path = chorus_path();
                    /* the same derived type everywhere */
                    case_move(comm, cname, which, c3, c, c3, c, inplace, 0, root, mode, path);
                    /* 3c ints: c3 x c on even ranks, MPI_INT x 3c on odd ones;
                     * the send side the other way round (out of place) */
                    if (me % 2)
                        case_move(comm, cname, which, c3, c, MPI_INT, 3 * c, inplace, 0, root,
                                  mode, path);
                    else
                        case_move(comm, cname, which, MPI_INT, 3 * c, c3, c, inplace, 0, root,
                                  mode, path);
                    /* 2c ints: a packed struct of 2 ints x c on ranks 0, 3, 6...,
                     * MPI_INT x 2c elsewhere */
                    if (me % 3 == 0)
                        case_move(comm, cname, which, pair, c, pair, c, inplace, 0, root, mode,
                                  path);
                    else
                        case_move(comm, cname, which, MPI_INT, 2 * c, MPI_INT, 2 * c, inplace, 0,
                                  root, mode, path);
                    /* nothing at all: a zero-size type x (c + 2) on even ranks, MPI_INT
                     * x 0 on odd ones (MPICH's alltoallw_zeros, in place included).
                     * MPICH itself hangs on some of these (no_empty_ref): only with
                     * the interposer, which runs them on Chorus */
                    if (!get_counts)
                        continue;
                    no_empty_ref = 1;
                    if (me % 2 == 0)
                        case_move(comm, cname, which, zero, c + 2, zero, c + 2, inplace, 0,
                                  root, mode, path);
                    else
                        case_move(comm, cname, which, MPI_INT, 0, MPI_INT, 0, inplace, 0, root,
                                  mode, path);
                    no_empty_ref = 0;
                }
    /* alltoallv with negative displacements, mixed types */
    if (me % 2)
        case_move(comm, cname, M_ALLTOALLV, c3, 2, MPI_INT, 6, 0, 1, 0, 0, chorus_path());
    else
        case_move(comm, cname, M_ALLTOALLV, MPI_INT, 6, c3, 2, 0, 1, 0, 0, chorus_path());
    PMPI_Type_free(&c3);
    PMPI_Type_free(&zero);
    PMPI_Type_free(&pair);
}

/* ---- what goes to MPI ---------------------------------------------------------------- */

static void user_sum(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    (void)dt;
    for (int i = 0; i < *len; i++)
        ((int *)inout)[i] += ((int *)in)[i];
}

/* not commutative: keeps the left operand's value, i.e. rank 0's */
static void user_first(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    (void)dt;
    for (int i = 0; i < *len; i++)
        ((int *)inout)[i] = ((int *)in)[i];
}

static void fallbacks(void)
{
    MPI_Comm comm = MPI_COMM_WORLD;
    int me, n;
    PMPI_Comm_rank(comm, &me);
    PMPI_Comm_size(comm, &n);
    int path = get_counts ? PATH_MPI : PATH_ANY;
    MPI_Datatype resized, vec;
    PMPI_Type_create_resized(MPI_INT, 0, 8, &resized); /* an int, then a 4-byte hole */
    PMPI_Type_commit(&resized);
    PMPI_Type_vector(4, 1, 2, MPI_INT, &vec);
    PMPI_Type_commit(&vec);
    /* non-dense derived datatypes: vector, resized (dense ones: dense_types) */
    case_move(comm, "fallback", M_BCAST, resized, 0, resized, 10, 0, 0, n - 1, 0, path);
    case_move(comm, "fallback", M_ALLGATHER, vec, 3, vec, 3, 0, 0, 0, 0, path);
    case_move(comm, "fallback", M_ALLTOALL, resized, 2, resized, 2, 0, 0, 0, 1, path);
    case_move(comm, "fallback", M_ALLTOALLV, vec, 2, vec, 2, 0, 0, 0, 0, path);
    /* a pair type with a hole between its members (size 12, extent 16) */
    case_move(comm, "fallback", M_BCAST, MPI_DOUBLE_INT, 0, MPI_DOUBLE_INT, 9, 0, 0, 0, 0, path);
    case_move(comm, "fallback", M_ALLTOALLV, MPI_DOUBLE_INT, 2, MPI_DOUBLE_INT, 2, 0, 0, 0, 0,
              path);

    /* reductions MPI keeps: user ops (commutative or not), MPI_BAND, MPI_SHORT */
    MPI_Op usum, ufirst;
    PMPI_Op_create(user_sum, 1, &usum);
    PMPI_Op_create(user_first, 0, &ufirst);
    struct {
        MPI_Op op;
        MPI_Datatype dt;
        const char *what;
        int coll;
        int nb;
    } cases[] = {
        {usum, MPI_INT, "user-defined commutative op", CHORUS_MPI_ALLREDUCE, 0},
        {ufirst, MPI_INT, "user-defined non-commutative op", CHORUS_MPI_ALLREDUCE, 0},
        {usum, MPI_INT, "user-defined op, nonblocking", CHORUS_MPI_IALLREDUCE, 1},
        {MPI_BAND, MPI_INT, "MPI_BAND", CHORUS_MPI_ALLREDUCE, 0},
        {MPI_SUM, MPI_SHORT, "MPI_SHORT", CHORUS_MPI_ALLREDUCE, 0},
        {MPI_SUM, MPI_C_DOUBLE_COMPLEX, "MPI_C_DOUBLE_COMPLEX", CHORUS_MPI_ALLREDUCE, 0},
        {MPI_MAXLOC, MPI_2INT, "MPI_MAXLOC on MPI_2INT", CHORUS_MPI_ALLREDUCE, 0},
        {MPI_MAX, MPI_INT, "MPI_MAX, reduce_scatter_block of a user op", -1, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tu_set_case("fallback: allreduce with %s", cases[k].what);
        case_no++;
        int cnt = 37;
        size_t ext = type_extent(cases[k].dt);
        char *in = xmalloc(cnt * ext * (size_t)n), *out = xmalloc(cnt * ext * (size_t)n);
        char *ref = xmalloc(cnt * ext * (size_t)n);
        /* small integers in every int (and short, and the complex's doubles) */
        if (cases[k].dt == MPI_SHORT) {
            for (int i = 0; i < cnt * n; i++)
                ((short *)in)[i] = (short)((me + i) % 5);
        } else if (cases[k].dt == MPI_C_DOUBLE_COMPLEX) {
            for (int i = 0; i < 2 * cnt * n; i++)
                ((double *)in)[i] = (double)((me + i) % 5);
        } else {
            for (size_t i = 0; i < cnt * ext * (size_t)n / sizeof(int); i++)
                ((int *)in)[i] = (int)((me * 3 + (int)i) % 7);
        }
        memset(out, 0, cnt * ext * (size_t)n);
        memset(ref, 0, cnt * ext * (size_t)n);
        counts_t before;
        MPI_Request r;
        int rc;
        if (cases[k].coll < 0) { /* reduce_scatter_block with a user op */
            PMPI_Ireduce_scatter_block(in, ref, cnt, MPI_INT, usum, comm, &r);
            ref_wait(&r);
            snap(&before);
            rc = MPI_Reduce_scatter_block(in, out, cnt, MPI_INT, usum, comm);
            CHECK_SAME("the result", out, ref, cnt * sizeof(int));
            check_path(&before, CHORUS_MPI_REDUCE_SCATTER_BLOCK, path, 1);
        } else {
            PMPI_Iallreduce(in, ref, cnt, cases[k].dt, cases[k].op, comm, &r);
            ref_wait(&r);
            snap(&before);
            if (cases[k].nb) {
                rc = MPI_Iallreduce(in, out, cnt, cases[k].dt, cases[k].op, comm, &r);
                if (rc == MPI_SUCCESS)
                    ref_wait(&r);
            } else {
                rc = MPI_Allreduce(in, out, cnt, cases[k].dt, cases[k].op, comm);
            }
            CHECK_SAME("the result", out, ref, cnt * ext);
            check_path(&before, cases[k].coll, path, 1);
        }
        CHECK(rc == MPI_SUCCESS, "returned %d", rc);
        if (get_counts && last_fallback) {
            char why[256];
            last_fallback(why, sizeof why);
            if (tu_verbose && me == 0)
                tu_log("reason: %s", why);
            CHECK(why[0] != '\0', "no reason recorded for going to MPI");
        }
        free(in);
        free(out);
        free(ref);
    }
    PMPI_Op_free(&usum);
    PMPI_Op_free(&ufirst);
    PMPI_Type_free(&resized);
    PMPI_Type_free(&vec);

    /* an inter-communicator between the two halves of the world */
    if (n >= 2) {
        MPI_Comm half, inter;
        int color = me < n / 2;
        PMPI_Comm_split(comm, color, me, &half);
        PMPI_Intercomm_create(half, 0, comm, color ? n / 2 : 0, 7, &inter);
        tu_set_case("fallback: allreduce and bcast on an inter-communicator");
        int v = me + 1, got = 0, want = 0;
        MPI_Request r;
        PMPI_Iallreduce(&v, &want, 1, MPI_INT, MPI_SUM, inter, &r);
        ref_wait(&r);
        counts_t before;
        snap(&before);
        CHECK(MPI_Allreduce(&v, &got, 1, MPI_INT, MPI_SUM, inter) == MPI_SUCCESS,
              "MPI_Allreduce failed");
        CHECK(got == want, "got %d, expected %d", got, want);
        check_path(&before, CHORUS_MPI_ALLREDUCE, path, 1);
        PMPI_Comm_free(&inter);
        PMPI_Comm_free(&half);
    }
}

/* ---- errors --------------------------------------------------------------------------- */

static int handler_calls, handler_code;

static void count_errors(MPI_Comm *comm, int *code, ...)
{
    (void)comm;
    handler_calls++;
    handler_code = *code;
}

/* Alltoallv counts that disagree between ranks: erroneous in MPI (which may
 * misbehave), reported by Chorus on every rank. Only with the interposer. */
static void errors(void)
{
    int me, n;
    PMPI_Comm_rank(MPI_COMM_WORLD, &me);
    PMPI_Comm_size(MPI_COMM_WORLD, &n);
    if (!get_counts || n < 2)
        return;
    tu_set_case("a Chorus failure (alltoallv counts that disagree) through the error handler");
    MPI_Comm ec;
    PMPI_Comm_dup(MPI_COMM_WORLD, &ec);
    MPI_Errhandler eh;
    PMPI_Comm_create_errhandler(count_errors, &eh);
    PMPI_Comm_set_errhandler(ec, eh);
    int *sc = xmalloc((size_t)n * sizeof(int)), *sd = xmalloc((size_t)n * sizeof(int));
    int *rc = xmalloc((size_t)n * sizeof(int)), *rd = xmalloc((size_t)n * sizeof(int));
    for (int j = 0; j < n; j++) {
        sc[j] = rc[j] = 1;
        sd[j] = rd[j] = 2 * j;
    }
    if (me == 0)
        rc[1] = 2; /* rank 1 sends 1 */
    int sb[128] = {0}, rb[128] = {0};
    handler_calls = 0;
    int ret = MPI_Alltoallv(sb, sc, sd, MPI_INT, rb, rc, rd, MPI_INT, ec);
    CHECK(ret != MPI_SUCCESS, "MPI_Alltoallv with disagreeing counts returned MPI_SUCCESS");
    CHECK(handler_calls == 1, "the error handler was called %d times, expected once",
          handler_calls);
    CHECK(handler_code == ret, "the handler got code %d, the call returned %d", handler_code,
          ret);
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    PMPI_Error_string(ret, text, &len);
    CHECK(strstr(text, "Chorus") != NULL, "the error string does not name Chorus: \"%s\"", text);
    if (tu_verbose && me == 0)
        tu_log("MPI_Error_string: %s", text);
    int cls = -1;
    PMPI_Error_class(ret, &cls);
    CHECK(cls != MPI_SUCCESS, "error class %d", cls);
    /* a wrong call leaves the communicator usable */
    tu_set_case("allreduce after a failed call on the same communicator");
    int v = me, sum = -1;
    counts_t before;
    snap(&before);
    CHECK(MPI_Allreduce(&v, &sum, 1, MPI_INT, MPI_SUM, ec) == MPI_SUCCESS, "failed");
    CHECK(sum == n * (n - 1) / 2, "sum %d", sum);
    check_path(&before, CHORUS_MPI_ALLREDUCE, PATH_CHORUS, 1);
    PMPI_Errhandler_free(&eh);
    PMPI_Comm_free(&ec);
    free(sc);
    free(sd);
    free(rc);
    free(rd);
}

/* ---- communicators come and go ----------------------------------------------------------- */

static void lifecycle(void)
{
    int me, n;
    PMPI_Comm_rank(MPI_COMM_WORLD, &me);
    PMPI_Comm_size(MPI_COMM_WORLD, &n);
    ref_barrier(MPI_COMM_WORLD);
    int fds0 = tu_count_fds(), shm0 = tu_count_shm("chorus");
    counts_t before;
    snap(&before);
    int rounds = opt_quick ? 3 : 6;
    for (int i = 0; i < rounds; i++) {
        tu_set_case("lifecycle: dup, allreduce, free (round %d)", i);
        MPI_Comm d;
        PMPI_Comm_dup(MPI_COMM_WORLD, &d);
        long long v = me + i, s = 0;
        CHECK(MPI_Allreduce(&v, &s, 1, MPI_LONG_LONG, MPI_SUM, d) == MPI_SUCCESS, "failed");
        CHECK(s == (long long)n * (n - 1) / 2 + (long long)n * i, "sum %lld", s);
        PMPI_Comm_free(&d);
    }
    check_path(&before, CHORUS_MPI_ALLREDUCE, chorus_path(), rounds);
    for (int i = 0; i < rounds; i++) {
        tu_set_case("lifecycle: split, iallreduce, free before the wait (round %d)", i);
        MPI_Comm s;
        PMPI_Comm_split(MPI_COMM_WORLD, me % 2, -me, &s);
        int sn;
        PMPI_Comm_size(s, &sn);
        enum { CNT = 4096 };
        int *in = xmalloc(CNT * sizeof(int)), *out = xmalloc(CNT * sizeof(int));
        for (int k = 0; k < CNT; k++)
            in[k] = k + i;
        MPI_Request r;
        CHECK(MPI_Iallreduce(in, out, CNT, MPI_INT, MPI_SUM, s, &r) == MPI_SUCCESS, "failed");
        PMPI_Comm_free(&s);
        CHECK(MPI_Wait(&r, MPI_STATUS_IGNORE) == MPI_SUCCESS, "MPI_Wait failed");
        int bad = 0;
        for (int k = 0; k < CNT; k++)
            bad += out[k] != (k + i) * sn;
        CHECK(bad == 0, "%d wrong elements", bad);
        free(in);
        free(out);
    }
    ref_barrier(MPI_COMM_WORLD);
    /* the peers' bootstrap threads may take a moment to close their sockets */
    int fds1 = 0, shm1 = 0;
    for (int tries = 0; tries < 40; tries++) {
        fds1 = tu_count_fds();
        shm1 = tu_count_shm("chorus");
        if (fds1 <= fds0 && shm1 <= shm0)
            break;
        usleep(50000);
    }
    tu_set_case("lifecycle: resources after freeing the communicators");
    CHECK(fds1 <= fds0, "%d file descriptors open, %d before", fds1, fds0);
    CHECK(shm1 <= shm0, "%d chorus entries in /dev/shm, %d before", shm1, shm0);
}

/* ---- CHORUS_MPI_* ---------------------------------------------------------------------- */

static void tunables_check(void)
{
    const char *colls = getenv("CHORUS_MPI_COLLS"), *mn = getenv("CHORUS_MPI_MIN_BYTES");
    const char *mx = getenv("CHORUS_MPI_MAX_BYTES");
    tu_set_case("--tunables-check environment");
    CHECK(get_counts != NULL, "--tunables-check needs the interposer");
    CHECK(colls && !strcmp(colls, "allreduce,iallgather,bcast") && mn && !strcmp(mn, "64") &&
              mx && !strcmp(mx, "64K"),
          "run with CHORUS_MPI_COLLS=allreduce,iallgather,bcast CHORUS_MPI_MIN_BYTES=64 "
          "CHORUS_MPI_MAX_BYTES=64K");
    if (!get_counts)
        return;
    MPI_Comm comm = MPI_COMM_WORLD;
    /* allreduce: only between 64 bytes and 64 KiB */
    case_reduction(comm, "tunables", R_ALLREDUCE, &rtypes[T_INT], 0, 4, 0, 0, 0, PATH_MPI);
    case_reduction(comm, "tunables", R_ALLREDUCE, &rtypes[T_INT], 0, 16, 0, 0, 0, PATH_CHORUS);
    case_reduction(comm, "tunables", R_ALLREDUCE, &rtypes[T_INT], 0, 16384, 0, 0, 0, PATH_CHORUS);
    case_reduction(comm, "tunables", R_ALLREDUCE, &rtypes[T_INT], 0, 16385, 0, 0, 0, PATH_MPI);
    case_reduction(comm, "tunables", R_ALLREDUCE, &rtypes[T_INT], 0, 100, 0, 0, 1, PATH_CHORUS);
    /* allgather blocking not selected, nonblocking selected (size: the
     * receive buffer, n x 1000 bytes) */
    case_move(comm, "tunables", M_ALLGATHER, MPI_BYTE, 1000, MPI_BYTE, 1000, 0, 0, 0, 0,
              PATH_MPI);
    case_move(comm, "tunables", M_ALLGATHER, MPI_BYTE, 1000, MPI_BYTE, 1000, 0, 0, 0, 1,
              PATH_CHORUS);
    case_move(comm, "tunables", M_BCAST, MPI_INT, 0, MPI_INT, 100, 0, 0, 0, 0, PATH_CHORUS);
    case_move(comm, "tunables", M_BCAST, MPI_INT, 0, MPI_INT, 100, 0, 0, 0, 2, PATH_CHORUS);
    case_move(comm, "tunables", M_ALLTOALL, MPI_INT, 0, MPI_INT, 100, 0, 0, 0, 0, PATH_MPI);
    /* the size range counts bytes, whichever dense type a rank passes: a
     * contiguous type of 4 ints on even ranks, MPI_INT on odd ones */
    MPI_Datatype c4;
    PMPI_Type_contiguous(4, MPI_INT, &c4);
    PMPI_Type_commit(&c4);
    static const struct {
        int c4s, path; /* c4 elements (x 16 bytes) */
    } sized[] = {{3, PATH_MPI}, {4, PATH_CHORUS}, {4096, PATH_CHORUS}, {4097, PATH_MPI}};
    for (size_t k = 0; k < sizeof sized / sizeof sized[0]; k++)
        for (int mode = 0; mode < 3; mode += 2) {
            if (tu_rank % 2)
                case_move(comm, "tunables", M_BCAST, MPI_INT, 0, MPI_INT, 4 * sized[k].c4s, 0, 0,
                          0, mode, sized[k].path);
            else
                case_move(comm, "tunables", M_BCAST, c4, 0, c4, sized[k].c4s, 0, 0, 0, mode,
                          sized[k].path);
        }
    PMPI_Type_free(&c4);
    case_reduction(comm, "tunables", R_REDUCE, &rtypes[T_INT], 0, 100, 0, 0, 0, PATH_MPI);
    counts_t before;
    snap(&before);
    MPI_Barrier(comm);
    check_path(&before, CHORUS_MPI_BARRIER, PATH_MPI, 1);
}

/* ---- main -------------------------------------------------------------------------------- */

static void sweep(MPI_Comm comm, const char *cname, int full, int large)
{
    if (comm == MPI_COMM_NULL)
        return;
    double t0 = tu_now();
    reductions(comm, cname, full, large);
    movements(comm, cname, full, large);
    barriers(comm, cname);
    if (full)
        outstanding(comm, cname);
    if (tu_verbose)
        tu_log("%s: %.1f s", cname, tu_now() - t0);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    tu_init();
    int expect = 0, tunables = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--expect-interposer")) {
            expect = 1;
        } else if (!strcmp(argv[i], "--quick")) {
            opt_quick = 1;
        } else if (!strcmp(argv[i], "--tunables-check")) {
            tunables = 1;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            g_seed = strtoull(argv[++i], NULL, 0);
        } else if (!strcmp(argv[i], "-v")) {
            tu_verbose = 1;
        } else {
            if (tu_rank == 0)
                fprintf(stderr, "usage: test_mpi_interpose [--expect-interposer] [--quick] "
                        "[--tunables-check] [--seed S] [-v]\n");
            MPI_Finalize();
            return 2;
        }
    }
    get_counts = (get_counts_fn)dlsym(RTLD_DEFAULT, "chorus_mpi_get_counts");
    last_fallback = (last_fallback_fn)dlsym(RTLD_DEFAULT, "chorus_mpi_last_fallback");
    tu_set_case("is the interposer there?");
    if (expect)
        CHECK(get_counts != NULL && last_fallback != NULL,
              "libchorus_mpi is neither linked nor preloaded");
    if (tu_rank == 0)
        tu_log("interposer %s", get_counts ? "present" : "absent: checking results only");
    double t0 = tu_now();
    if (tunables) {
        tunables_check();
    } else {
        int me = tu_rank, n = tu_nranks;
        /* first: MPICH needs the sender's progress for a first large transfer */
        progress();
        sweep(MPI_COMM_WORLD, "world", 1, 1);
        dense_types(MPI_COMM_WORLD, "world dense types");
        MPI_Comm dup, split, created = MPI_COMM_NULL;
        PMPI_Comm_dup(MPI_COMM_WORLD, &dup);
        sweep(dup, "dup", 0, 0);
        /* even and odd ranks, reversed order: sizes n/2 rounded up and down */
        PMPI_Comm_split(MPI_COMM_WORLD, me % 2, -me, &split);
        sweep(split, "split", 0, 0);
        if (!opt_quick)
            dense_types(split, "split dense types");
        /* a group of the first n-1 ranks (n > 1) */
        MPI_Group wg, g;
        PMPI_Comm_group(MPI_COMM_WORLD, &wg);
        int range[1][3] = {{0, n > 1 ? n - 2 : 0, 1}};
        PMPI_Group_range_incl(wg, 1, range, &g);
        PMPI_Comm_create(MPI_COMM_WORLD, g, &created);
        sweep(created, "create", 0, 0);
        if (!opt_quick)
            sweep(MPI_COMM_SELF, "self", 0, 0);
        half_precision();
        fallbacks();
        errors();
        lifecycle();
        if (created != MPI_COMM_NULL)
            PMPI_Comm_free(&created);
        PMPI_Group_free(&g);
        PMPI_Group_free(&wg);
        PMPI_Comm_free(&split);
        PMPI_Comm_free(&dup);
    }
    if (tu_rank == 0)
        tu_log("%llu cases in %.1f s", (unsigned long long)case_no, tu_now() - t0);
    int rc = tu_summary(tunables ? "test_mpi_interpose --tunables-check" : "test_mpi_interpose");
    MPI_Finalize();
    return rc;
}
