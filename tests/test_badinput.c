/*
 * test_badinput.c - every public call with bad input returns the documented
 * code with a non-empty chorus_get_last_error(), without crashing or hanging.
 *
 * Every rank passes the same bad argument at the same time (argument checks
 * are local and return before communicating); checks only one rank could see
 * (root's NULL buffer) run on single-rank communicators made by comm_split.
 *
 * Usage: mpirun -np N test_badinput
 *        VAR=bad mpirun -np N test_badinput --env-check VAR
 *            (communicator creation must fail with CHORUS_INVALID_ARGUMENT
 *             and a last error naming VAR)
 * Rank 0 ends with "ok test_badinput np=N: K checks" or "FAIL ...".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>
#include "chorus.h"
#include "chorus_mpi.h"
#include "test_util.h"

static int me, n;
static chorus_comm_t comm;
static unsigned char sbuf[1 << 16], rbuf[1 << 16];
static size_t zc[64], zd[64]; /* zero counts and displacements */

#define IA CHORUS_INVALID_ARGUMENT

/* Checks the code and that a failure left a non-empty last error. */
static int expect_at(int line, const char *call, chorus_result_t got, chorus_result_t want)
{
    int ok = tu_check_res_at(__FILE__, line, call, got, want);
    if (want != CHORUS_SUCCESS && got != CHORUS_SUCCESS) {
        const char *le = chorus_get_last_error();
        tu_checks++;
        if (!le || !*le)
            tu_fail_at(__FILE__, line, "%s returned %d but chorus_get_last_error() is empty",
                       call, (int)got);
    }
    return ok;
}
#define EXPECT(call, want) expect_at(__LINE__, #call, (call), (want))

/* Any failure code is fine (not success, not "in progress"). */
static int expect_error_at(int line, const char *call, chorus_result_t got)
{
    tu_checks++;
    if (got == CHORUS_SUCCESS || got == CHORUS_IN_PROGRESS || (int)got < 0 ||
        got >= CHORUS_NUM_RESULTS) {
        tu_fail_at(__FILE__, line, "%s returned %d, expected an error code", call, (int)got);
        return 0;
    }
    const char *le = chorus_get_last_error();
    tu_checks++;
    if (!le || !*le)
        tu_fail_at(__FILE__, line, "%s returned %d but chorus_get_last_error() is empty", call,
                   (int)got);
    return 1;
}
#define EXPECT_ERROR(call) expect_error_at(__LINE__, #call, (call))

/* For nonblocking starts that unexpectedly succeed: complete them. */
static void drain(chorus_request_t *rq)
{
    if (*rq)
        chorus_wait(rq);
    *rq = NULL;
}

static void section(const char *name)
{
    tu_set_case("%s", name);
    if (me == 0 && tu_verbose)
        tu_log("section: %s", name);
}

/* ---- codes, names, sizes ------------------------------------------------------------- */

static void test_strings(void)
{
    section("chorus_get_error_string / type and op names");
    for (int r = -1; r <= CHORUS_NUM_RESULTS + 1; r++) {
        const char *s = chorus_get_error_string((chorus_result_t)r);
        CHECK(s && *s, "chorus_get_error_string(%d) is %s", r, s ? "empty" : "NULL");
    }
    const char *u = chorus_get_error_string((chorus_result_t)99);
    CHECK(u && *u, "chorus_get_error_string(99) is NULL or empty");
    u = chorus_get_error_string((chorus_result_t)123456);
    CHECK(u && *u, "chorus_get_error_string(123456) is NULL or empty");
    for (int a = 0; a < CHORUS_NUM_RESULTS; a++)
        for (int b = a + 1; b < CHORUS_NUM_RESULTS; b++) {
            const char *sa = chorus_get_error_string((chorus_result_t)a);
            const char *sb = chorus_get_error_string((chorus_result_t)b);
            CHECK(!sa || !sb || strcmp(sa, sb) != 0, "codes %d and %d have the same text \"%s\"",
                  a, b, sa);
        }
    CHECK(chorus_get_last_error() != NULL, "chorus_get_last_error() is NULL");
    for (int t = 0; t < CHORUS_NUM_TYPES; t++) {
        const char *s = chorus_type_name((chorus_datatype_t)t);
        CHECK(s && *s, "chorus_type_name(%d) is NULL or empty", t);
        CHECK(chorus_type_size((chorus_datatype_t)t) == tu_type_size((chorus_datatype_t)t),
              "chorus_type_size(%d) = %zu, expected %zu", t,
              chorus_type_size((chorus_datatype_t)t), tu_type_size((chorus_datatype_t)t));
    }
    static const int bad_types[] = {-1, CHORUS_NUM_TYPES, 99, 1 << 30};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        CHECK(chorus_type_size((chorus_datatype_t)bad_types[i]) == 0,
              "chorus_type_size(%d) = %zu, expected 0 for an invalid type", bad_types[i],
              chorus_type_size((chorus_datatype_t)bad_types[i]));
        (void)chorus_type_name((chorus_datatype_t)bad_types[i]); /* must not crash */
        (void)chorus_op_name((chorus_op_t)bad_types[i]);
    }
    for (int o = 0; o < CHORUS_NUM_OPS; o++) {
        const char *s = chorus_op_name((chorus_op_t)o);
        CHECK(s && *s, "chorus_op_name(%d) is NULL or empty", o);
    }
}

/* ---- creation --------------------------------------------------------------------------- */

static chorus_unique_id_t shared_id(void)
{
    chorus_unique_id_t id;
    memset(&id, 0, sizeof id);
    int ok = 1;
    if (me == 0)
        ok = CHECK_OK(chorus_get_unique_id(&id));
    tu_bcast(&ok, sizeof ok, 0, MPI_COMM_WORLD);
    tu_bcast(&id, sizeof id, 0, MPI_COMM_WORLD);
    return ok ? id : (chorus_unique_id_t){{0}};
}

static void test_init(void)
{
    section("chorus_get_unique_id(NULL)");
    EXPECT(chorus_get_unique_id(NULL), IA);

    section("init with bad arguments (then a good init with the same id)");
    chorus_unique_id_t id = shared_id();
    chorus_comm_t c = NULL;
    EXPECT(chorus_comm_init_rank(NULL, n, id, me), IA);
    EXPECT(chorus_comm_init_rank(&c, 0, id, 0), IA);
    EXPECT(chorus_comm_init_rank(&c, -1, id, 0), IA);
    EXPECT(chorus_comm_init_rank(&c, -5, id, me), IA);
    EXPECT(chorus_comm_init_rank(&c, n, id, n), IA);
    EXPECT(chorus_comm_init_rank(&c, n, id, n + 7), IA);
    EXPECT(chorus_comm_init_rank(&c, n, id, -1), IA);
    EXPECT(chorus_comm_init_rank(&c, 1, id, 1), IA);

    chorus_config_t good = CHORUS_CONFIG_INITIALIZER;
    chorus_config_t cfg = good;
    EXPECT(chorus_comm_init_rank_config(NULL, n, id, me, &good), IA);
    EXPECT(chorus_comm_init_rank_config(&c, 0, id, me, &good), IA);
    EXPECT(chorus_comm_init_rank_config(&c, n, id, n, &good), IA);
    cfg.magic = 0;
    EXPECT(chorus_comm_init_rank_config(&c, n, id, me, &cfg), IA);
    cfg = good;
    cfg.magic = CHORUS_CONFIG_MAGIC ^ 1u;
    EXPECT(chorus_comm_init_rank_config(&c, n, id, me, &cfg), IA);
    cfg = good;
    cfg.size = 0;
    EXPECT(chorus_comm_init_rank_config(&c, n, id, me, &cfg), IA);
    cfg = good;
    cfg.size = 4;
    EXPECT(chorus_comm_init_rank_config(&c, n, id, me, &cfg), IA);
    cfg = good;
    cfg.size = sizeof(chorus_config_t) - 1;
    EXPECT(chorus_comm_init_rank_config(&c, n, id, me, &cfg), IA);
    cfg = good;
    cfg.blocking = 0; /* reserved: must be 1 */
    EXPECT(chorus_comm_init_rank_config(&c, n, id, me, &cfg), IA);

    /* the rejected calls must not have used up the id */
    section("good init after rejected ones");
    chorus_result_t r = chorus_comm_init_rank_config(&comm, n, id, me, &good);
    CHECK_OK(r);
    if (tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD)) {
        tu_log("cannot create a communicator: stopping");
        tu_summary("test_badinput");
        MPI_Finalize();
        exit(1);
    }
    int cnt = -1, rk = -1;
    CHECK_OK(chorus_comm_count(comm, &cnt));
    CHECK_OK(chorus_comm_rank(comm, &rk));
    CHECK(cnt == n && rk == me, "count/rank %d/%d, expected %d/%d", cnt, rk, n, me);
}

static void test_comm_calls(void)
{
    section("communicator calls with NULL");
    int x;
    chorus_result_t e;
    chorus_comm_t nc = NULL;
    EXPECT(chorus_comm_count(NULL, &x), IA);
    EXPECT(chorus_comm_count(comm, NULL), IA);
    EXPECT(chorus_comm_rank(NULL, &x), IA);
    EXPECT(chorus_comm_rank(comm, NULL), IA);
    EXPECT(chorus_comm_get_async_error(NULL, &e), IA);
    EXPECT(chorus_comm_get_async_error(comm, NULL), IA);
    EXPECT(chorus_comm_finalize(NULL), IA);
    EXPECT(chorus_comm_destroy(NULL), IA);
    EXPECT(chorus_comm_abort(NULL), IA);
    EXPECT(chorus_comm_split(NULL, 0, 0, &nc), IA);
    EXPECT(chorus_comm_split(comm, 0, 0, NULL), IA);
    EXPECT(chorus_comm_init_env(NULL), IA);
    EXPECT(chorus_test(NULL), IA);
    EXPECT(chorus_wait(NULL), IA);
    /* a pointer to a NULL request: an error or "nothing to do", never a crash */
    chorus_request_t none = NULL;
    chorus_result_t r = chorus_test(&none);
    CHECK(r == CHORUS_SUCCESS || r == IA, "chorus_test(&NULL) returned %d", (int)r);
    none = NULL;
    r = chorus_wait(&none);
    CHECK(r == CHORUS_SUCCESS || r == IA, "chorus_wait(&NULL) returned %d", (int)r);
    e = CHORUS_INTERNAL_ERROR;
    CHECK_OK(chorus_comm_get_async_error(comm, &e));
    CHECK(e == CHORUS_SUCCESS, "async error %d on a healthy communicator", (int)e);
}

/* ---- collectives ------------------------------------------------------------------------ */

static void test_collectives(void)
{
    const size_t big = SIZE_MAX / 2;                     /* * 4 overflows */
    const size_t bign = n > 1 ? SIZE_MAX / (size_t)n + 1 : 0; /* * nranks overflows */
    const chorus_datatype_t bt[] = {(chorus_datatype_t)99, (chorus_datatype_t)-1,
                                    CHORUS_NUM_TYPES};
    const chorus_op_t bo[] = {(chorus_op_t)99, (chorus_op_t)-1, CHORUS_NUM_OPS};
    const chorus_datatype_t I32 = CHORUS_INT32;
    chorus_request_t rq = NULL;

    section("NULL communicator");
    EXPECT(chorus_allreduce(sbuf, rbuf, 4, I32, CHORUS_SUM, NULL), IA);
    EXPECT(chorus_allgather(sbuf, rbuf, 4, I32, NULL), IA);
    EXPECT(chorus_alltoall(sbuf, rbuf, 4, I32, NULL), IA);
    EXPECT(chorus_alltoallv(sbuf, zc, zd, rbuf, zc, zd, I32, NULL), IA);
    EXPECT(chorus_reduce_scatter(sbuf, rbuf, 4, I32, CHORUS_SUM, NULL), IA);
    EXPECT(chorus_broadcast(sbuf, rbuf, 4, I32, 0, NULL), IA);
    EXPECT(chorus_reduce(sbuf, rbuf, 4, I32, CHORUS_SUM, 0, NULL), IA);
    EXPECT(chorus_barrier(NULL), IA);
    EXPECT(chorus_send(sbuf, 4, I32, 0, NULL), IA);
    EXPECT(chorus_recv(rbuf, 4, I32, 0, NULL), IA);
    EXPECT(chorus_sendrecv(sbuf, 4, 0, rbuf, 4, 0, I32, NULL), IA);
    EXPECT(chorus_iallreduce(sbuf, rbuf, 4, I32, CHORUS_SUM, NULL, &rq), IA);
    drain(&rq);
    EXPECT(chorus_iallgather(sbuf, rbuf, 4, I32, NULL, &rq), IA);
    drain(&rq);
    EXPECT(chorus_ialltoall(sbuf, rbuf, 4, I32, NULL, &rq), IA);
    drain(&rq);
    EXPECT(chorus_ialltoallv(sbuf, zc, zd, rbuf, zc, zd, I32, NULL, &rq), IA);
    drain(&rq);
    EXPECT(chorus_ireduce_scatter(sbuf, rbuf, 4, I32, CHORUS_SUM, NULL, &rq), IA);
    drain(&rq);
    EXPECT(chorus_ibroadcast(sbuf, rbuf, 4, I32, 0, NULL, &rq), IA);
    drain(&rq);
    EXPECT(chorus_ireduce(sbuf, rbuf, 4, I32, CHORUS_SUM, 0, NULL, &rq), IA);
    drain(&rq);
    EXPECT(chorus_ibarrier(NULL, &rq), IA);
    drain(&rq);

    section("NULL request pointer");
    EXPECT(chorus_iallreduce(sbuf, rbuf, 4, I32, CHORUS_SUM, comm, NULL), IA);
    EXPECT(chorus_iallgather(sbuf, rbuf, 4, I32, comm, NULL), IA);
    EXPECT(chorus_ialltoall(sbuf, rbuf, 4, I32, comm, NULL), IA);
    EXPECT(chorus_ialltoallv(sbuf, zc, zd, rbuf, zc, zd, I32, comm, NULL), IA);
    EXPECT(chorus_ireduce_scatter(sbuf, rbuf, 4, I32, CHORUS_SUM, comm, NULL), IA);
    EXPECT(chorus_ibroadcast(sbuf, rbuf, 4, I32, 0, comm, NULL), IA);
    EXPECT(chorus_ireduce(sbuf, rbuf, 4, I32, CHORUS_SUM, 0, comm, NULL), IA);
    EXPECT(chorus_ibarrier(comm, NULL), IA);

    section("NULL buffers with count > 0");
    EXPECT(chorus_allreduce(NULL, rbuf, 4, I32, CHORUS_SUM, comm), IA);
    EXPECT(chorus_allreduce(sbuf, NULL, 4, I32, CHORUS_SUM, comm), IA);
    EXPECT(chorus_allreduce(NULL, NULL, 1, I32, CHORUS_SUM, comm), IA);
    EXPECT(chorus_allgather(NULL, rbuf, 4, I32, comm), IA);
    EXPECT(chorus_allgather(sbuf, NULL, 4, I32, comm), IA);
    EXPECT(chorus_alltoall(NULL, rbuf, 4, I32, comm), IA);
    EXPECT(chorus_alltoall(sbuf, NULL, 4, I32, comm), IA);
    EXPECT(chorus_reduce_scatter(NULL, rbuf, 4, I32, CHORUS_SUM, comm), IA);
    EXPECT(chorus_reduce_scatter(sbuf, NULL, 4, I32, CHORUS_SUM, comm), IA);
    EXPECT(chorus_broadcast(sbuf, NULL, 4, I32, 0, comm), IA);
    EXPECT(chorus_reduce(NULL, rbuf, 4, I32, CHORUS_SUM, 0, comm), IA);
    EXPECT(chorus_iallreduce(NULL, rbuf, 4, I32, CHORUS_SUM, comm, &rq), IA);
    drain(&rq);
    EXPECT(chorus_iallgather(sbuf, NULL, 4, I32, comm, &rq), IA);
    drain(&rq);
    EXPECT(chorus_ialltoall(NULL, rbuf, 4, I32, comm, &rq), IA);
    drain(&rq);
    EXPECT(chorus_ireduce_scatter(sbuf, NULL, 4, I32, CHORUS_SUM, comm, &rq), IA);
    drain(&rq);
    EXPECT(chorus_ibroadcast(sbuf, NULL, 4, I32, 0, comm, &rq), IA);
    drain(&rq);
    EXPECT(chorus_ireduce(NULL, rbuf, 4, I32, CHORUS_SUM, 0, comm, &rq), IA);
    drain(&rq);
    {
        size_t ones[64], offs[64];
        for (int p = 0; p < n; p++) {
            ones[p] = 1;
            offs[p] = (size_t)p;
        }
        EXPECT(chorus_alltoallv(NULL, ones, offs, rbuf, ones, offs, I32, comm), IA);
        EXPECT(chorus_alltoallv(sbuf, ones, offs, NULL, ones, offs, I32, comm), IA);
        EXPECT(chorus_alltoallv(sbuf, NULL, offs, rbuf, ones, offs, I32, comm), IA);
        EXPECT(chorus_alltoallv(sbuf, ones, NULL, rbuf, ones, offs, I32, comm), IA);
        EXPECT(chorus_alltoallv(sbuf, ones, offs, rbuf, NULL, offs, I32, comm), IA);
        EXPECT(chorus_alltoallv(sbuf, ones, offs, rbuf, ones, NULL, I32, comm), IA);
    }

    section("invalid types");
    for (size_t i = 0; i < 3; i++) {
        chorus_datatype_t t = bt[i];
        tu_set_case("invalid type %d", (int)t);
        EXPECT(chorus_allreduce(sbuf, rbuf, 4, t, CHORUS_SUM, comm), IA);
        EXPECT(chorus_allgather(sbuf, rbuf, 4, t, comm), IA);
        EXPECT(chorus_alltoall(sbuf, rbuf, 4, t, comm), IA);
        EXPECT(chorus_alltoallv(sbuf, zc, zd, rbuf, zc, zd, t, comm), IA);
        EXPECT(chorus_reduce_scatter(sbuf, rbuf, 4, t, CHORUS_SUM, comm), IA);
        EXPECT(chorus_broadcast(sbuf, rbuf, 4, t, 0, comm), IA);
        EXPECT(chorus_reduce(sbuf, rbuf, 4, t, CHORUS_SUM, 0, comm), IA);
        EXPECT(chorus_send(sbuf, 4, t, (me + 1) % n, comm), IA);
        EXPECT(chorus_recv(rbuf, 4, t, (me + 1) % n, comm), IA);
        EXPECT(chorus_sendrecv(sbuf, 4, (me + 1) % n, rbuf, 4, (me + n - 1) % n, t, comm), IA);
        EXPECT(chorus_iallreduce(sbuf, rbuf, 4, t, CHORUS_SUM, comm, &rq), IA);
        drain(&rq);
        EXPECT(chorus_ibroadcast(sbuf, rbuf, 4, t, 0, comm, &rq), IA);
        drain(&rq);
        /* an invalid type is invalid even with count 0 */
        EXPECT(chorus_allreduce(sbuf, rbuf, 0, t, CHORUS_SUM, comm), IA);
    }

    section("invalid ops");
    for (size_t i = 0; i < 3; i++) {
        chorus_op_t o = bo[i];
        tu_set_case("invalid op %d", (int)o);
        EXPECT(chorus_allreduce(sbuf, rbuf, 4, I32, o, comm), IA);
        EXPECT(chorus_reduce_scatter(sbuf, rbuf, 4, I32, o, comm), IA);
        EXPECT(chorus_reduce(sbuf, rbuf, 4, I32, o, 0, comm), IA);
        EXPECT(chorus_iallreduce(sbuf, rbuf, 4, I32, o, comm, &rq), IA);
        drain(&rq);
        EXPECT(chorus_ireduce_scatter(sbuf, rbuf, 4, I32, o, comm, &rq), IA);
        drain(&rq);
        EXPECT(chorus_ireduce(sbuf, rbuf, 4, I32, o, 0, comm, &rq), IA);
        drain(&rq);
        EXPECT(chorus_allreduce(sbuf, rbuf, 0, CHORUS_FLOAT32, o, comm), IA);
    }

    section("root and peer out of range");
    const int bad_ranks[] = {-1, n, n + 100, -1000};
    for (size_t i = 0; i < sizeof bad_ranks / sizeof bad_ranks[0]; i++) {
        int b = bad_ranks[i];
        tu_set_case("root/peer %d out of range (nranks %d)", b, n);
        EXPECT(chorus_broadcast(sbuf, rbuf, 4, I32, b, comm), IA);
        EXPECT(chorus_reduce(sbuf, rbuf, 4, I32, CHORUS_SUM, b, comm), IA);
        EXPECT(chorus_ibroadcast(sbuf, rbuf, 4, I32, b, comm, &rq), IA);
        drain(&rq);
        EXPECT(chorus_ireduce(sbuf, rbuf, 4, I32, CHORUS_SUM, b, comm, &rq), IA);
        drain(&rq);
        EXPECT(chorus_send(sbuf, 4, I32, b, comm), IA);
        EXPECT(chorus_recv(rbuf, 4, I32, b, comm), IA);
        EXPECT(chorus_sendrecv(sbuf, 4, b, rbuf, 4, (me + n - 1) % n, I32, comm), IA);
        EXPECT(chorus_sendrecv(sbuf, 4, (me + 1) % n, rbuf, 4, b, I32, comm), IA);
        /* out of range even with count 0 */
        EXPECT(chorus_broadcast(sbuf, rbuf, 0, I32, b, comm), IA);
        EXPECT(chorus_send(sbuf, 0, I32, b, comm), IA);
    }

    section("p2p NULL buffers");
    EXPECT(chorus_send(NULL, 4, I32, (me + 1) % n, comm), IA);
    EXPECT(chorus_recv(NULL, 4, I32, (me + 1) % n, comm), IA);
    EXPECT(chorus_sendrecv(NULL, 4, (me + 1) % n, rbuf, 4, (me + n - 1) % n, I32, comm), IA);
    EXPECT(chorus_sendrecv(sbuf, 4, (me + 1) % n, NULL, 4, (me + n - 1) % n, I32, comm), IA);

    section("count overflow");
    EXPECT(chorus_allreduce(sbuf, rbuf, big, I32, CHORUS_SUM, comm), IA);
    EXPECT(chorus_allreduce(sbuf, rbuf, SIZE_MAX, CHORUS_FLOAT64, CHORUS_SUM, comm), IA);
    EXPECT(chorus_allgather(sbuf, rbuf, big, I32, comm), IA);
    EXPECT(chorus_alltoall(sbuf, rbuf, big, I32, comm), IA);
    EXPECT(chorus_reduce_scatter(sbuf, rbuf, big, I32, CHORUS_SUM, comm), IA);
    EXPECT(chorus_broadcast(sbuf, rbuf, big, I32, 0, comm), IA);
    EXPECT(chorus_reduce(sbuf, rbuf, big, I32, CHORUS_SUM, 0, comm), IA);
    EXPECT(chorus_send(sbuf, big, I32, (me + 1) % n, comm), IA);
    EXPECT(chorus_recv(rbuf, big, I32, (me + 1) % n, comm), IA);
    EXPECT(chorus_sendrecv(sbuf, big, (me + 1) % n, rbuf, 4, (me + n - 1) % n, I32, comm), IA);
    EXPECT(chorus_sendrecv(sbuf, 4, (me + 1) % n, rbuf, big, (me + n - 1) % n, I32, comm), IA);
    EXPECT(chorus_iallreduce(sbuf, rbuf, big, I32, CHORUS_SUM, comm, &rq), IA);
    drain(&rq);
    EXPECT(chorus_iallgather(sbuf, rbuf, big, I32, comm, &rq), IA);
    drain(&rq);
    if (n > 1) {
        /* count * typesize fits, count * nranks * typesize does not */
        tu_set_case("count overflow: count %zu * nranks %d", bign, n);
        EXPECT(chorus_allgather(sbuf, rbuf, bign, CHORUS_INT8, comm), IA);
        EXPECT(chorus_alltoall(sbuf, rbuf, bign, CHORUS_INT8, comm), IA);
        EXPECT(chorus_reduce_scatter(sbuf, rbuf, bign, CHORUS_INT8, CHORUS_SUM, comm), IA);
        EXPECT(chorus_ialltoall(sbuf, rbuf, bign, CHORUS_INT8, comm, &rq), IA);
        drain(&rq);
        EXPECT(chorus_ireduce_scatter(sbuf, rbuf, bign, CHORUS_UINT8, CHORUS_MAX, comm, &rq),
               IA);
        drain(&rq);
    }
    {
        section("alltoallv count/displacement overflow");
        size_t bc[64], bd[64], ones[64], offs[64];
        for (int p = 0; p < n; p++) {
            bc[p] = big;
            bd[p] = SIZE_MAX - 1;
            ones[p] = 1;
            offs[p] = (size_t)p;
        }
        EXPECT(chorus_alltoallv(sbuf, bc, offs, rbuf, ones, offs, I32, comm), IA);
        EXPECT(chorus_alltoallv(sbuf, ones, offs, rbuf, bc, offs, I32, comm), IA);
        EXPECT(chorus_alltoallv(sbuf, ones, bd, rbuf, ones, offs, I32, comm), IA);
        EXPECT(chorus_alltoallv(sbuf, ones, offs, rbuf, ones, bd, I32, comm), IA);
        EXPECT(chorus_ialltoallv(sbuf, ones, bd, rbuf, ones, offs, I32, comm, &rq), IA);
        drain(&rq);
    }

    section("NULL buffers with count 0 are fine");
    EXPECT(chorus_allreduce(NULL, NULL, 0, I32, CHORUS_SUM, comm), CHORUS_SUCCESS);
    EXPECT(chorus_allgather(NULL, NULL, 0, I32, comm), CHORUS_SUCCESS);
    EXPECT(chorus_alltoall(NULL, NULL, 0, I32, comm), CHORUS_SUCCESS);
    EXPECT(chorus_alltoallv(NULL, zc, zd, NULL, zc, zd, I32, comm), CHORUS_SUCCESS);
    EXPECT(chorus_reduce_scatter(NULL, NULL, 0, I32, CHORUS_SUM, comm), CHORUS_SUCCESS);
    EXPECT(chorus_broadcast(NULL, NULL, 0, I32, n - 1, comm), CHORUS_SUCCESS);
    EXPECT(chorus_reduce(NULL, NULL, 0, I32, CHORUS_MAX, 0, comm), CHORUS_SUCCESS);
    EXPECT(chorus_sendrecv(NULL, 0, (me + 1) % n, NULL, 0, (me + n - 1) % n, I32, comm),
           CHORUS_SUCCESS);
    rq = NULL;
    if (EXPECT(chorus_iallreduce(NULL, NULL, 0, CHORUS_FLOAT16, CHORUS_AVG, comm, &rq),
               CHORUS_SUCCESS))
        EXPECT(chorus_wait(&rq), CHORUS_SUCCESS);
    rq = NULL;
    if (EXPECT(chorus_ibroadcast(NULL, NULL, 0, I32, 0, comm, &rq), CHORUS_SUCCESS))
        EXPECT(chorus_wait(&rq), CHORUS_SUCCESS);

    section("the communicator still works after the rejected calls");
    int32_t in[5], out[5];
    for (int i = 0; i < 5; i++)
        in[i] = me + i;
    if (CHECK_OK(chorus_allreduce(in, out, 5, I32, CHORUS_SUM, comm)))
        for (int i = 0; i < 5; i++)
            CHECK(out[i] == n * (n - 1) / 2 + n * i, "allreduce[%d] = %d, expected %d", i,
                  out[i], n * (n - 1) / 2 + n * i);
    CHECK_OK(chorus_barrier(comm));
    chorus_result_t ae = CHORUS_INTERNAL_ERROR;
    CHECK_OK(chorus_comm_get_async_error(comm, &ae));
    CHECK(ae == CHORUS_SUCCESS, "async error %d after rejected calls", (int)ae);
}

/* Arguments only one rank can judge (root's buffers), on 1-rank communicators. */
static void test_local_args(void)
{
    section("root-only arguments on a single-rank communicator");
    chorus_comm_t solo = NULL;
    if (!CHECK_OK(chorus_comm_split(comm, me, 0, &solo)) || !solo)
        return;
    int cnt = -1;
    CHECK_OK(chorus_comm_count(solo, &cnt));
    CHECK(cnt == 1, "split by rank gave %d ranks", cnt);
    EXPECT(chorus_reduce(sbuf, NULL, 4, CHORUS_INT32, CHORUS_SUM, 0, solo), IA);
    EXPECT(chorus_broadcast(NULL, rbuf, 4, CHORUS_INT32, 0, solo), IA);
    EXPECT(chorus_broadcast(sbuf, rbuf, 4, CHORUS_INT32, 1, solo), IA);
    EXPECT(chorus_send(sbuf, 4, CHORUS_INT32, 1, solo), IA);
    int32_t in[3] = {7, -8, 9}, out[3] = {0, 0, 0};
    if (CHECK_OK(chorus_allreduce(in, out, 3, CHORUS_INT32, CHORUS_PROD, solo)))
        CHECK(out[0] == 7 && out[1] == -8 && out[2] == 9, "1-rank allreduce changed the data");
    CHECK_OK(chorus_comm_finalize(solo));
    CHECK_OK(chorus_comm_destroy(solo));
}

/* ---- ids and environment ------------------------------------------------------------------- */

static void test_bad_ids(void)
{
    section("init with a corrupted unique id");
    chorus_unique_id_t id;
    uint64_t h = tu_hash((uint64_t)time(NULL), (uint64_t)me, (uint64_t)getpid());
    for (size_t i = 0; i < sizeof id.internal; i++) {
        h = tu_hash(h, i, 3);
        id.internal[i] = (char)(h & 0xff);
    }
    chorus_config_t cfg = CHORUS_CONFIG_INITIALIZER;
    cfg.init_timeout_ms = 3000;
    chorus_comm_t c = NULL;
    double t0 = tu_now();
    chorus_result_t r = chorus_comm_init_rank_config(&c, 2, id, 1, &cfg);
    double dt = tu_now() - t0;
    EXPECT_ERROR(r);
    CHECK(dt < 30.0, "init with random id bytes took %.1f s (init timeout 3 s)", dt);
    if (r == CHORUS_SUCCESS && c)
        chorus_comm_destroy(c);

    section("init with an all-zero unique id");
    memset(&id, 0, sizeof id);
    c = NULL;
    t0 = tu_now();
    r = chorus_comm_init_rank_config(&c, 2, id, 1, &cfg);
    dt = tu_now() - t0;
    EXPECT_ERROR(r);
    CHECK(dt < 30.0, "init with a zero id took %.1f s (init timeout 3 s)", dt);
    if (r == CHORUS_SUCCESS && c)
        chorus_comm_destroy(c);

    section("init_env without variables");
    static const char *vars[] = {"CHORUS_ROOT_ADDR", "MASTER_ADDR", "MASTER_PORT", "CHORUS_RANK",
                                 "RANK", "CHORUS_NRANKS", "WORLD_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    c = NULL;
    EXPECT_ERROR(chorus_comm_init_env(&c));

    section("init_env with bad values");
    setenv("CHORUS_ROOT_ADDR", "127.0.0.1:1", 1);
    setenv("CHORUS_RANK", "5", 1);
    setenv("CHORUS_NRANKS", "2", 1);
    EXPECT(chorus_comm_init_env(&c), IA); /* rank >= nranks */
    setenv("CHORUS_RANK", "-1", 1);
    EXPECT(chorus_comm_init_env(&c), IA);
    setenv("CHORUS_RANK", "0", 1);
    setenv("CHORUS_NRANKS", "0", 1);
    EXPECT(chorus_comm_init_env(&c), IA);
    setenv("CHORUS_NRANKS", "abc", 1);
    EXPECT(chorus_comm_init_env(&c), IA);
    setenv("CHORUS_NRANKS", "2", 1);
    setenv("CHORUS_RANK", "1", 1);
    setenv("CHORUS_ROOT_ADDR", "no-port-here", 1);
    EXPECT(chorus_comm_init_env(&c), IA);
    setenv("CHORUS_ROOT_ADDR", "127.0.0.1:99999", 1);
    EXPECT(chorus_comm_init_env(&c), IA);
    /* well formed but nobody listens: an error within the init timeout */
    setenv("CHORUS_ROOT_ADDR", "127.0.0.1:1", 1);
    t0 = tu_now();
    EXPECT_ERROR(chorus_comm_init_env(&c));
    dt = tu_now() - t0;
    CHECK(dt < 60.0, "init_env to a closed port took %.1f s", dt);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

/* ---- abort ---------------------------------------------------------------------------------- */

static void test_abort(void)
{
    section("operations after chorus_comm_abort (all ranks abort)");
    chorus_comm_t c = NULL;
    chorus_result_t r = chorus_comm_init_mpi(&c, MPI_COMM_WORLD);
    if (!CHECK_OK(r) || tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD))
        return;
    CHECK_OK(chorus_comm_abort(c));
    int32_t in[4] = {1, 2, 3, 4}, out[4];
    chorus_request_t rq = NULL;
    EXPECT_ERROR(chorus_allreduce(in, out, 4, CHORUS_INT32, CHORUS_SUM, c));
    EXPECT_ERROR(chorus_barrier(c));
    EXPECT_ERROR(chorus_broadcast(in, out, 4, CHORUS_INT32, 0, c));
    EXPECT_ERROR(chorus_send(in, 4, CHORUS_INT32, (me + 1) % n, c));
    EXPECT_ERROR(chorus_recv(out, 4, CHORUS_INT32, (me + 1) % n, c));
    r = chorus_iallreduce(in, out, 4, CHORUS_INT32, CHORUS_SUM, c, &rq);
    if (r == CHORUS_SUCCESS)
        r = chorus_wait(&rq);
    EXPECT_ERROR(r);
    chorus_comm_t sub = NULL;
    r = chorus_comm_split(c, 0, 0, &sub);
    EXPECT_ERROR(r);
    if (r == CHORUS_SUCCESS && sub)
        chorus_comm_destroy(sub);
    chorus_result_t ae = CHORUS_SUCCESS;
    CHECK_OK(chorus_comm_get_async_error(c, &ae));
    CHECK(ae != CHORUS_SUCCESS, "get_async_error reports success on an aborted communicator");
    CHECK_OK(chorus_comm_destroy(c));
    tu_barrier(MPI_COMM_WORLD);

    if (n < 2)
        return;
    section("rank 0 aborts while the others are in an allreduce");
    c = NULL;
    r = chorus_comm_init_mpi(&c, MPI_COMM_WORLD);
    if (!CHECK_OK(r) || tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD))
        return;
    CHECK_OK(chorus_barrier(c));
    double t0 = tu_now();
    if (me == 0) {
        usleep(200000); /* let the others enter the allreduce */
        CHECK_OK(chorus_comm_abort(c));
        EXPECT_ERROR(chorus_allreduce(in, out, 4, CHORUS_INT32, CHORUS_SUM, c));
    } else {
        r = chorus_allreduce(in, out, 4, CHORUS_INT32, CHORUS_SUM, c);
        double dt = tu_now() - t0;
        EXPECT_ERROR(r);
        CHECK(r != CHORUS_TIMEOUT, "a peer's abort was not noticed: the allreduce only timed out "
                                   "after %.1f s",
              dt);
        if (tu_verbose)
            tu_log("allreduce returned %d after %.2f s when rank 0 aborted", (int)r, dt);
    }
    CHECK_OK(chorus_comm_destroy(c));
    tu_barrier(MPI_COMM_WORLD);
}

/* A rank that never calls: the others get CHORUS_TIMEOUT after the bound. */
static void test_timeout(void)
{
    if (n < 2)
        return;
    section("a rank that never joins the collective: CHORUS_TIMEOUT, not a hang");
    chorus_unique_id_t id = shared_id();
    chorus_config_t cfg = CHORUS_CONFIG_INITIALIZER;
    cfg.timeout_ms = 1500;
    chorus_comm_t c = NULL;
    chorus_result_t r = chorus_comm_init_rank_config(&c, n, id, me, &cfg);
    if (!CHECK_OK(r) || tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD)) {
        if (r == CHORUS_SUCCESS)
            chorus_comm_destroy(c);
        return;
    }
    int timed_out = 0;
    if (me != 0) {
        int32_t in[4] = {1, 2, 3, 4}, out[4];
        double t0 = tu_now();
        r = chorus_allreduce(in, out, 4, CHORUS_INT32, CHORUS_SUM, c);
        double dt = tu_now() - t0;
        /* the first rank to time out may mark the comm failed: the others
         * then see CHORUS_REMOTE_ERROR */
        CHECK(r == CHORUS_TIMEOUT || r == CHORUS_REMOTE_ERROR,
              "allreduce without rank 0 returned %d (%s), expected CHORUS_TIMEOUT (or "
              "CHORUS_REMOTE_ERROR after another rank's timeout)",
              (int)r, chorus_get_last_error());
        CHECK(dt < 30.0, "the allreduce returned after %.1f s (timeout_ms 1500)", dt);
        CHECK(r != CHORUS_TIMEOUT || dt > 1.0,
              "CHORUS_TIMEOUT after %.2f s, before the 1.5 s bound", dt);
        timed_out = r == CHORUS_TIMEOUT;
        if (tu_verbose)
            tu_log("result %d after %.2f s: %s", (int)r, dt, chorus_get_last_error());
    }
    CHECK(tu_any(timed_out, MPI_COMM_WORLD), "no rank reported CHORUS_TIMEOUT");
    tu_barrier(MPI_COMM_WORLD);
    chorus_comm_abort(c);
    CHECK_OK(chorus_comm_destroy(c));
    tu_barrier(MPI_COMM_WORLD);
}

/* ---- threads ------------------------------------------------------------------------------------- */

static void *thread_last_error(void *arg)
{
    char *out = arg;
    /* a new thread has no error yet, whatever the main thread did */
    const char *le = chorus_get_last_error();
    snprintf(out, 256, "%s", le ? le : "(NULL)");
    /* an error here must not show in the main thread */
    chorus_result_t r = chorus_comm_count(NULL, NULL);
    if (r == CHORUS_SUCCESS || !chorus_get_last_error()[0])
        snprintf(out, 256, "(no error recorded in the thread)");
    return NULL;
}

static void *thread_abort(void *arg)
{
    usleep(300000);
    chorus_comm_abort((chorus_comm_t)arg);
    return NULL;
}

static void test_threads(void)
{
    section("chorus_get_last_error is per thread");
    int x;
    EXPECT(chorus_comm_rank(NULL, &x), IA);
    char main_err[512], thr_err[256] = "";
    snprintf(main_err, sizeof main_err, "%s", chorus_get_last_error());
    pthread_t th;
    if (pthread_create(&th, NULL, thread_last_error, thr_err) == 0) {
        pthread_join(th, NULL);
        CHECK(thr_err[0] == '\0', "a new thread sees last error \"%s\"", thr_err);
        CHECK(strcmp(main_err, chorus_get_last_error()) == 0,
              "the main thread's last error changed from \"%s\" to \"%s\" by another thread's "
              "failure",
              main_err, chorus_get_last_error());
    }

    section("chorus_comm_abort from another thread ends a blocked receive");
    chorus_comm_t c = NULL;
    chorus_result_t r = chorus_comm_init_mpi(&c, MPI_COMM_WORLD);
    if (!CHECK_OK(r) || tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD))
        return;
    if (n >= 2 && pthread_create(&th, NULL, thread_abort, c) == 0) {
        int32_t buf[16];
        double t0 = tu_now();
        r = chorus_recv(buf, 16, CHORUS_INT32, (me + 1) % n, c); /* nobody sends */
        double dt = tu_now() - t0;
        pthread_join(th, NULL);
        EXPECT_ERROR(r);
        CHECK(r != CHORUS_TIMEOUT, "the receive only timed out (%.1f s): the abort from another "
                                   "thread was not noticed",
              dt);
    }
    tu_barrier(MPI_COMM_WORLD);
    CHECK_OK(chorus_comm_destroy(c));
    tu_barrier(MPI_COMM_WORLD);
}

/* ---- env-check mode --------------------------------------------------------------------------- */

/* --env-check VAR: VAR is malformed on every rank (invalid argument);
 * --env-mismatch VAR: VAR differs between ranks (invalid usage). */
static int env_check(const char *var, chorus_result_t want)
{
    char name[128];
    snprintf(name, sizeof name, "test_badinput --env-check %s", var);
    tu_set_case("%s='%s'", var, getenv(var) ? getenv(var) : "(unset)");
    chorus_unique_id_t id;
    memset(&id, 0, sizeof id);
    int failed_early = 0;
    if (me == 0) {
        chorus_result_t r = chorus_get_unique_id(&id);
        if (r != CHORUS_SUCCESS) { /* acceptable: the root refuses too */
            failed_early = 1;
            EXPECT(r, IA);
            const char *le = chorus_get_last_error();
            CHECK(le && strstr(le, var), "get_unique_id: last error \"%s\" does not name %s",
                  le ? le : "(NULL)", var);
        }
    }
    tu_bcast(&id, sizeof id, 0, MPI_COMM_WORLD);
    chorus_comm_t c = NULL;
    double t0 = tu_now();
    chorus_result_t r = chorus_comm_init_rank(&c, n, id, me);
    double dt = tu_now() - t0;
    EXPECT(r, want);
    const char *le = chorus_get_last_error();
    CHECK(r == CHORUS_SUCCESS || (le && strstr(le, var)),
          "init: last error \"%s\" does not name %s", le ? le : "(NULL)", var);
    CHECK(dt < 10.0, "init took %.1f s to reject the bad variable", dt);
    if (r == CHORUS_SUCCESS && c)
        chorus_comm_destroy(c);
    (void)failed_early;
    return tu_summary(name);
}

int main(int argc, char **argv)
{
    /* bound every wait so that a missed error is a failure, not a hang */
    int env_mode = argc == 3 && (!strcmp(argv[1], "--env-check") ||
                                 !strcmp(argv[1], "--env-mismatch"));
    if (!env_mode) {
        setenv("CHORUS_INIT_TIMEOUT_MS", "8000", 0);
        setenv("CHORUS_TIMEOUT_MS", "20000", 0);
    }
    MPI_Init(&argc, &argv);
    tu_init();
    me = tu_rank;
    n = tu_nranks;
    if (n > 64) {
        MPI_Finalize();
        return 2;
    }
    if (env_mode) {
        int rc = env_check(argv[2], !strcmp(argv[1], "--env-check") ? IA
                                                                    : CHORUS_INVALID_USAGE);
        MPI_Finalize();
        return rc;
    }
    if (argc != 1) {
        if (me == 0)
            fprintf(stderr, "usage: test_badinput [--env-check VAR | --env-mismatch VAR]\n");
        MPI_Finalize();
        return 2;
    }
    for (int i = 0; i < 64; i++)
        zc[i] = zd[i] = 0;
    test_strings();
    test_init();
    test_comm_calls();
    test_collectives();
    test_local_args();
    test_abort();
    test_threads();
    test_timeout();
    test_bad_ids(); /* last: it changes the environment */
    tu_set_case("destroy");
    CHECK_OK(chorus_comm_finalize(comm));
    CHECK_OK(chorus_comm_destroy(comm));
    int rc = tu_summary("test_badinput");
    MPI_Finalize();
    return rc;
}
