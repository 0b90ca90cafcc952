/*
 * test_p2p.c - point to point: chorus_send/chorus_recv between every ordered
 * pair (in-order messages, 0 B .. 16 MiB, beyond the eager slots), many small
 * messages queued back to back, eager sends crossing, a collective between an
 * eager send and its receive, chorus_sendrecv ring shifts in both directions
 * and at every distance, and count mismatches (an error on the receiver, no
 * hang on the sender).
 *
 * Usage: mpirun -np N test_p2p [--quick] [--small] [-v]   (N >= 2)
 *   --quick: 16 MiB messages on some pairs only; --small: at most 300 KB
 * Rank 0 ends with "ok test_p2p np=N: K checks" or "FAIL ...".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>
#include "chorus.h"
#include "chorus_mpi.h"
#include "test_util.h"

static int me, n, quick, small; /* small: messages up to 300 KB (valgrind) */
static chorus_comm_t comm;
static uint64_t g_seed = 0x9292;

/* ---- one message ------------------------------------------------------------------ */

typedef struct {
    chorus_datatype_t type;
    size_t count;
    uint64_t seed;
    int src;
} msg_t;

static msg_t make_msg(size_t bytes, uint64_t seed, int src)
{
    static const chorus_datatype_t types[] = {CHORUS_UINT8, CHORUS_INT32, CHORUS_FLOAT16,
                                              CHORUS_FLOAT64, CHORUS_BFLOAT16, CHORUS_INT64};
    msg_t m;
    m.type = types[seed % (sizeof types / sizeof types[0])];
    m.count = bytes / tu_type_size(m.type);
    m.seed = seed;
    m.src = src;
    return m;
}

static uint64_t exp_msg(const void *c, size_t i)
{
    const msg_t *m = c;
    return tu_gen(m->type, TU_OP_NONE, 1, m->seed, m->src, i);
}

/* Sends m to peer; checks the send buffer stayed intact. */
static void do_send(const msg_t *m, int peer)
{
    tu_buf_t b;
    size_t ts = tu_type_size(m->type);
    if (tu_buf_alloc(&b, m->count * ts, m->seed % 8) != 0) {
        CHECK(0, "out of memory");
        return;
    }
    tu_fill(m->type, TU_OP_NONE, 1, m->seed, me, b.ptr, 0, m->count);
    if (CHECK_OK(chorus_send(b.ptr, m->count, m->type, peer, comm)))
        tu_check_elems("sendbuf modified by chorus_send", m->type, TU_OP_NONE, b.ptr, m->count,
                       exp_msg, m);
    tu_buf_check_guards(&b, "sendbuf");
    tu_buf_free(&b);
}

static void do_recv(const msg_t *m, int peer)
{
    tu_buf_t b;
    size_t ts = tu_type_size(m->type);
    if (tu_buf_alloc(&b, m->count * ts, (m->seed >> 3) % 8) != 0) {
        CHECK(0, "out of memory");
        return;
    }
    if (CHECK_OK(chorus_recv(b.ptr, m->count, m->type, peer, comm)))
        tu_check_elems("recvbuf", m->type, TU_OP_NONE, b.ptr, m->count, exp_msg, m);
    tu_buf_check_guards(&b, "recvbuf");
    tu_buf_free(&b);
}

/* ---- every pair ------------------------------------------------------------------------- */

static void test_pairs(void)
{
    static const size_t sizes[] = {0, 1, 7, 4096, 65535, 65536, 65537, 262147, (1u << 20) + 5,
                                   (size_t)16 << 20};
    size_t nsizes = sizeof sizes / sizeof sizes[0];
    double t0 = tu_now();
    for (int a = 0; a < n; a++) {
        for (int b = 0; b < n; b++) {
            if (a == b)
                continue;
            if (me == a || me == b) {
                /* messages of growing size, in order */
                for (size_t k = 0; k < nsizes; k++) {
                    size_t bytes = sizes[k];
                    if (quick && bytes > ((size_t)2 << 20) && (a + b) % 3)
                        bytes = (size_t)2 << 20; /* 16 MiB on some pairs only */
                    if (small && bytes > 300000)
                        bytes = 300000;
                    msg_t m = make_msg(bytes, tu_hash(g_seed, (uint64_t)(a * n + b), k), a);
                    tu_set_case("send/recv %d -> %d, message %zu: %zu x %s (%zu bytes)", a, b, k,
                                m.count, tu_type_name(m.type), bytes);
                    if (me == a)
                        do_send(&m, b);
                    else
                        do_recv(&m, a);
                }
                /* many small messages back to back: more than the eager slots */
                int burst = 24;
                for (int k = 0; k < burst; k++) {
                    size_t bytes = (size_t)(k % 5) * 100 + (size_t)k;
                    msg_t m = make_msg(bytes, tu_hash(g_seed, (uint64_t)(a * n + b), 1000u + k),
                                       a);
                    tu_set_case("burst %d -> %d, message %d of %d (%zu bytes)", a, b, k, burst,
                                bytes);
                    if (me == a)
                        do_send(&m, b);
                }
                for (int k = 0; k < burst && me == b; k++) {
                    size_t bytes = (size_t)(k % 5) * 100 + (size_t)k;
                    msg_t m = make_msg(bytes, tu_hash(g_seed, (uint64_t)(a * n + b), 1000u + k),
                                       a);
                    tu_set_case("burst %d -> %d, message %d of %d (%zu bytes)", a, b, k, burst,
                                bytes);
                    do_recv(&m, a);
                }
            }
            tu_barrier(MPI_COMM_WORLD);
        }
    }
    if (me == 0)
        tu_log("send/recv between every pair: %.1f s", tu_now() - t0);
}

/* Both ranks of a pair send a small (eager) message first, then receive. */
static void test_crossing_eager(void)
{
    for (int a = 0; a < n; a++) {
        int b = (a + 1) % n;
        if (a == b)
            continue;
        if (me == a || me == b) {
            int peer = me == a ? b : a;
            msg_t mine = make_msg(1000, tu_hash(g_seed, 77, (uint64_t)me), me);
            msg_t theirs = make_msg(1000, tu_hash(g_seed, 77, (uint64_t)peer), peer);
            tu_set_case("crossing eager sends %d <-> %d", a, b);
            do_send(&mine, peer);
            do_recv(&theirs, peer);
        }
        tu_barrier(MPI_COMM_WORLD);
    }
}

/* An eager send, a collective on the same comm, then the matching receive. */
static void test_send_collective_recv(void)
{
    int a = 0, b = n - 1;
    msg_t m = make_msg(512, tu_hash(g_seed, 88, 0), a);
    tu_set_case("eager send %d -> %d, allreduce, then the receive", a, b);
    if (me == a)
        do_send(&m, b);
    int32_t x = me + 1, y = 0;
    if (CHECK_OK(chorus_allreduce(&x, &y, 1, CHORUS_INT32, CHORUS_SUM, comm)))
        CHECK(y == n * (n + 1) / 2, "allreduce %d, expected %d", y, n * (n + 1) / 2);
    if (me == b)
        do_recv(&m, a);
    tu_barrier(MPI_COMM_WORLD);
}

/* ---- sendrecv ------------------------------------------------------------------------------ */

static void sendrecv_shift(int dist, size_t base_bytes, uint64_t salt)
{
    int dest = (me + dist) % n, src = (me - dist % n + n) % n;
    /* a different size per sender: send and receive counts differ */
    size_t sbytes = base_bytes ? base_bytes + (size_t)me * 8 : 0;
    size_t rbytes = base_bytes ? base_bytes + (size_t)src * 8 : 0;
    chorus_datatype_t t = CHORUS_UINT8;
    msg_t sm = {t, sbytes, tu_hash(g_seed, salt, (uint64_t)me), me};
    msg_t rm = {t, rbytes, tu_hash(g_seed, salt, (uint64_t)src), src};
    tu_set_case("sendrecv shift by %d (to %d, from %d): send %zu B, receive %zu B", dist, dest,
                src, sbytes, rbytes);
    tu_buf_t sb, rb;
    if (tu_buf_alloc(&sb, sbytes, (size_t)(me + dist) % 8) ||
        tu_buf_alloc(&rb, rbytes, (size_t)(me + 3 * dist) % 8)) {
        CHECK(0, "out of memory");
        return;
    }
    tu_fill(t, TU_OP_NONE, 1, sm.seed, me, sb.ptr, 0, sbytes);
    if (CHECK_OK(chorus_sendrecv(sb.ptr, sbytes, dest, rb.ptr, rbytes, src, t, comm))) {
        tu_check_elems("recvbuf", t, TU_OP_NONE, rb.ptr, rbytes, exp_msg, &rm);
        tu_check_elems("sendbuf modified", t, TU_OP_NONE, sb.ptr, sbytes, exp_msg, &sm);
    }
    tu_buf_check_guards(&sb, "sendbuf");
    tu_buf_check_guards(&rb, "recvbuf");
    tu_buf_free(&sb);
    tu_buf_free(&rb);
}

static void test_sendrecv(void)
{
    static const size_t sizes[] = {0, 1, 4097, 65537, (1u << 20) + 3, (size_t)16 << 20};
    double t0 = tu_now();
    uint64_t salt = 1;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        if (small && sizes[k] > 300000)
            continue;
        sendrecv_shift(1, sizes[k], salt++);     /* right */
        sendrecv_shift(n - 1, sizes[k], salt++); /* left */
    }
    for (int d = 2; d < n; d++) /* every other distance */
        for (size_t k = 0; k < 4; k++)
            sendrecv_shift(d, sizes[k], salt++);
    /* typed: a ring of floats */
    tu_set_case("sendrecv ring of float32");
    float out[300], in[300];
    for (int i = 0; i < 300; i++)
        out[i] = (float)(me * 1000 + i);
    if (CHECK_OK(chorus_sendrecv(out, 300, (me + 1) % n, in, 300, (me + n - 1) % n,
                                 CHORUS_FLOAT32, comm))) {
        int src = (me + n - 1) % n, bad = -1;
        for (int i = 0; i < 300 && bad < 0; i++)
            if (in[i] != (float)(src * 1000 + i))
                bad = i;
        CHECK(bad < 0, "float ring: element %d is %g, expected %g", bad, bad < 0 ? 0.0 : in[bad],
              bad < 0 ? 0.0 : (double)(src * 1000 + bad));
    }
    if (me == 0)
        tu_log("sendrecv shifts: %.1f s", tu_now() - t0);
}

/* ---- count mismatch ------------------------------------------------------------------------ */

static void test_mismatch(void)
{
    struct { size_t send, recv; } cs[] = {
        {100, 50}, {50, 100}, {262144, 1000}, {1000, 262144}, {262144, 262143}, {4, 0}, {0, 4},
    };
    const int a = 0, b = 1;
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        tu_set_case("count mismatch: rank %d sends %zu int32, rank %d receives %zu", a,
                    cs[k].send, b, cs[k].recv);
        chorus_comm_t c = NULL;
        chorus_result_t r = chorus_comm_init_mpi(&c, MPI_COMM_WORLD);
        if (!CHECK_OK(r) || tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD)) {
            if (r == CHORUS_SUCCESS)
                chorus_comm_destroy(c);
            continue;
        }
        size_t maxc = cs[k].send > cs[k].recv ? cs[k].send : cs[k].recv;
        int32_t *buf = calloc(maxc + 1, sizeof *buf);
        double t0 = tu_now();
        if (me == a) {
            r = chorus_send(buf, cs[k].send, CHORUS_INT32, b, c);
            double dt = tu_now() - t0;
            CHECK(r != CHORUS_TIMEOUT && dt < 15.0,
                  "sender blocked %.1f s (result %d) although the receiver rejected the message",
                  dt, (int)r);
            CHECK(r == CHORUS_SUCCESS || r == CHORUS_INVALID_ARGUMENT ||
                      r == CHORUS_INVALID_USAGE || r == CHORUS_REMOTE_ERROR,
                  "sender returned %d (%s)", (int)r, chorus_get_last_error());
        } else if (me == b) {
            r = chorus_recv(buf, cs[k].recv, CHORUS_INT32, a, c);
            double dt = tu_now() - t0;
            tu_checks++;
            if (r == CHORUS_SUCCESS || r == CHORUS_IN_PROGRESS)
                tu_fail_at(__FILE__, __LINE__, "receiver got %d: a count mismatch must be an "
                                               "error", (int)r);
            else if (r == CHORUS_TIMEOUT)
                tu_fail_at(__FILE__, __LINE__, "receiver only timed out (%.1f s) instead of "
                                               "reporting the count mismatch", dt);
            else
                CHECK(*chorus_get_last_error() != '\0', "receiver error %d without a last error",
                      (int)r);
        }
        tu_barrier(MPI_COMM_WORLD);
        chorus_comm_abort(c);
        CHECK_OK(chorus_comm_destroy(c));
        free(buf);
        tu_barrier(MPI_COMM_WORLD);
    }
}

int main(int argc, char **argv)
{
    setenv("CHORUS_TIMEOUT_MS", "30000", 0); /* a hang becomes a CHORUS_TIMEOUT */
    MPI_Init(&argc, &argv);
    tu_init();
    me = tu_rank;
    n = tu_nranks;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--small"))
            small = 1;
        else if (!strcmp(argv[i], "-v"))
            tu_verbose = 1;
    }
    if (n < 2) {
        if (me == 0)
            printf("ok test_p2p np=%d: 0 checks (needs 2 ranks or more)\n", n);
        MPI_Finalize();
        return 0;
    }
    double t0 = tu_now();
    tu_set_case("init");
    chorus_result_t r = chorus_comm_init_mpi(&comm, MPI_COMM_WORLD);
    if (!CHECK_OK(r) || tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD)) {
        int rc = tu_summary("test_p2p");
        MPI_Finalize();
        return rc;
    }
    test_pairs();
    test_crossing_eager();
    test_send_collective_recv();
    test_sendrecv();
    tu_set_case("destroy");
    chorus_result_t ae = CHORUS_INTERNAL_ERROR;
    CHECK_OK(chorus_comm_get_async_error(comm, &ae));
    CHECK(ae == CHORUS_SUCCESS, "async error %d", (int)ae);
    CHECK_OK(chorus_comm_finalize(comm));
    CHECK_OK(chorus_comm_destroy(comm));
    test_mismatch();
    if (me == 0)
        tu_log("total %.1f s", tu_now() - t0);
    int rc = tu_summary("test_p2p");
    MPI_Finalize();
    return rc;
}
