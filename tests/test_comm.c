/*
 * test_comm.c - communicators: count/rank, chorus_comm_split (colors, keys,
 * color < 0, nested), collectives on disjoint split communicators at the same
 * time, many communicators alive at once, create/destroy in a loop without
 * leaking file descriptors or /dev/shm entries, finalize with outstanding
 * operations, async error on a healthy comm, init_rank_config and init_env
 * (CHORUS_ROOT_ADDR/CHORUS_RANK/CHORUS_NRANKS and MASTER_ADDR/MASTER_PORT/
 * RANK/WORLD_SIZE), memory registration.
 *
 * Usage: mpirun -np N test_comm [-v]
 * Rank 0 ends with "ok test_comm np=N: K checks" or "FAIL ...".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mpi.h>
#include "chorus.h"
#include "chorus_mpi.h"
#include "test_util.h"

static int me, n;
static chorus_comm_t world;
static uint64_t g_seed = 0xc0ffee;

/* Runs allreduce (int32 sum and float16 avg), allgather and broadcast on c and
 * checks them with the reference for c's size and rank. */
static void exercise(chorus_comm_t c, const char *label, uint64_t salt)
{
    int cn = -1, cr = -1;
    if (!CHECK_OK(chorus_comm_count(c, &cn)) || !CHECK_OK(chorus_comm_rank(c, &cr)))
        return;
    uint64_t seed = tu_hash(g_seed, salt, 0); /* same on every member */
    size_t count = 1000 + salt % 77;
    static const struct { chorus_datatype_t t; int op; } rs[] = {
        {CHORUS_INT32, CHORUS_SUM}, {CHORUS_FLOAT16, CHORUS_AVG}, {CHORUS_UINT8, CHORUS_MAX}};
    for (size_t k = 0; k < sizeof rs / sizeof rs[0]; k++) {
        tu_set_case("%s: allreduce %s %s count %zu (comm of %d, rank %d)", label,
                    tu_type_name(rs[k].t), tu_op_name(rs[k].op), count, cn, cr);
        size_t ts = tu_type_size(rs[k].t);
        void *in = malloc(count * ts), *out = malloc(count * ts);
        tu_fill(rs[k].t, rs[k].op, cn, seed + k, cr, in, 0, count);
        if (CHECK_OK(chorus_allreduce(in, out, count, rs[k].t, (chorus_op_t)rs[k].op, c))) {
            size_t bad = count;
            for (size_t i = 0; i < count && bad == count; i++)
                if (!tu_elem_ok(rs[k].t, rs[k].op, tu_load(rs[k].t, out, i),
                                tu_ref_reduce(rs[k].t, rs[k].op, cn, seed + k, i)))
                    bad = i;
            CHECK(bad == count, "element %zu wrong", bad);
        }
        free(in);
        free(out);
    }
    tu_set_case("%s: allgather of ranks (comm of %d, rank %d)", label, cn, cr);
    int32_t mine[2] = {cr, me}, *all = malloc((size_t)cn * 2 * sizeof *all);
    if (CHECK_OK(chorus_allgather(mine, all, 2, CHORUS_INT32, c)))
        for (int i = 0; i < cn; i++)
            CHECK(all[2 * i] == i, "slot %d holds comm rank %d", i, all[2 * i]);
    free(all);
    tu_set_case("%s: broadcast from the last rank (comm of %d)", label, cn);
    uint64_t v[3] = {0, 0, 0};
    if (cr == cn - 1)
        v[0] = v[1] = v[2] = seed;
    if (CHECK_OK(chorus_broadcast(v, v, 3, CHORUS_UINT64, cn - 1, c)))
        CHECK(v[0] == seed && v[2] == seed, "broadcast value 0x%llx, expected 0x%llx",
              (unsigned long long)v[0], (unsigned long long)seed);
}

/* ---- split ------------------------------------------------------------------------------ */

/* chorus_comm_host against the grouping worked out here from every rank's
 * host id (CHORUS_HOSTID, else the host name), for comm c whose members are
 * the world ranks in members[0..cn) in comm rank order. */
static void check_host(chorus_comm_t c, const char *label, const int *members, int cn)
{
    enum { ID = 256 };
    char mine[ID] = {0}, *all = calloc((size_t)n, ID);
    const char *env = getenv("CHORUS_HOSTID");
    if (env && *env)
        snprintf(mine, sizeof mine, "%s", env);
    else
        gethostname(mine, sizeof mine - 1);
    MPI_Allgather(mine, ID, MPI_CHAR, all, ID, MPI_CHAR, MPI_COMM_WORLD);
    int cr = -1;
    CHECK_OK(chorus_comm_rank(c, &cr));
    /* hosts numbered in order of their lowest comm rank */
    int want_host = -1, want_nhosts = 0, want_lr = 0, want_lc = 0;
    for (int r = 0; r < cn; r++) {
        const char *id = all + (size_t)members[r] * ID;
        int first = 1;
        for (int q = 0; q < r && first; q++)
            first = strcmp(all + (size_t)members[q] * ID, id) != 0;
        if (first && !strcmp(id, mine))
            want_host = want_nhosts;
        want_nhosts += first;
        if (!strcmp(id, mine)) {
            want_lc++;
            want_lr += r < cr;
        }
    }
    tu_set_case("%s: chorus_comm_host", label);
    int host = -1, nhosts = -1, lr = -1, lc = -1;
    if (CHECK_OK(chorus_comm_host(c, &host, &nhosts, &lr, &lc)))
        CHECK(host == want_host && nhosts == want_nhosts && lr == want_lr && lc == want_lc,
              "host %d of %d, local rank %d of %d; expected host %d of %d, local rank %d of %d "
              "(host id '%s')", host, nhosts, lr, lc, want_host, want_nhosts, want_lr, want_lc,
              mine);
    int only = -1;
    CHECK_OK(chorus_comm_host(c, NULL, NULL, &only, NULL)); /* NULL: not wanted */
    CHECK(only == want_lr, "local rank alone %d, expected %d", only, want_lr);
    CHECK(chorus_comm_host(NULL, &host, NULL, NULL, NULL) == CHORUS_INVALID_ARGUMENT,
          "chorus_comm_host(NULL comm) accepted");
    free(all);
}

static void test_split(void)
{
    /* even/odd with reversed keys: the highest world rank becomes rank 0 */
    tu_set_case("split even/odd, reversed keys");
    chorus_comm_t sub = NULL;
    if (CHECK_OK(chorus_comm_split(world, me % 2, n - me, &sub)) && sub) {
        int cn = -1, cr = -1, want_n = 0, want_r = 0;
        for (int r = 0; r < n; r++)
            if (r % 2 == me % 2) {
                want_n++;
                if (r > me)
                    want_r++;
            }
        CHECK_OK(chorus_comm_count(sub, &cn));
        CHECK_OK(chorus_comm_rank(sub, &cr));
        CHECK(cn == want_n && cr == want_r, "split: count/rank %d/%d, expected %d/%d", cn, cr,
              want_n, want_r);
        /* both halves at the same time, then interleaved with the parent */
        exercise(sub, "even/odd half", 10 + (uint64_t)(me % 2));
        int members[256], k = 0; /* by key n - r: the highest world rank first */
        for (int r = n - 1; r >= 0 && k < 256; r--)
            if (r % 2 == me % 2)
                members[k++] = r;
        check_host(sub, "even/odd half", members, k);
        exercise(world, "world between subcomm calls", 20);
        exercise(sub, "even/odd half again", 30 + (uint64_t)(me % 2));

        /* nested: split the half again by (rank / 2), keys equal -> by rank */
        tu_set_case("nested split");
        chorus_comm_t sub2 = NULL;
        if (CHECK_OK(chorus_comm_split(sub, cr / 2, 0, &sub2)) && sub2) {
            int n2 = -1, r2 = -1;
            CHECK_OK(chorus_comm_count(sub2, &n2));
            CHECK_OK(chorus_comm_rank(sub2, &r2));
            int wn = (cr / 2) * 2 + 2 <= cn ? 2 : 1;
            CHECK(n2 == wn && r2 == cr % 2, "nested split: count/rank %d/%d, expected %d/%d", n2,
                  r2, wn, cr % 2);
            exercise(sub2, "nested split", 40 + (uint64_t)(me % 2) * 10 + (uint64_t)(cr / 2));
            CHECK_OK(chorus_comm_destroy(sub2));
        }
        CHECK_OK(chorus_comm_finalize(sub));
        CHECK_OK(chorus_comm_destroy(sub));
    }

    tu_set_case("split with equal keys keeps the parent order");
    sub = NULL;
    if (CHECK_OK(chorus_comm_split(world, 3, 0, &sub)) && sub) {
        int cn = -1, cr = -1;
        CHECK_OK(chorus_comm_count(sub, &cn));
        CHECK_OK(chorus_comm_rank(sub, &cr));
        CHECK(cn == n && cr == me, "count/rank %d/%d, expected %d/%d", cn, cr, n, me);
        exercise(sub, "same color", 50);
        CHECK_OK(chorus_comm_destroy(sub));
    }

    tu_set_case("split: color < 0 gives NULL");
    sub = (chorus_comm_t)&sub; /* garbage that must be overwritten */
    int color = me == 0 ? -1 : 7;
    if (CHECK_OK(chorus_comm_split(world, color, me, &sub))) {
        if (me == 0) {
            CHECK(sub == NULL, "rank with color -1 got a communicator");
        } else {
            CHECK(sub != NULL && sub != (chorus_comm_t)&sub, "rank with color 7 got no comm");
            if (sub && sub != (chorus_comm_t)&sub) {
                int cn = -1, cr = -1;
                CHECK_OK(chorus_comm_count(sub, &cn));
                CHECK_OK(chorus_comm_rank(sub, &cr));
                CHECK(cn == n - 1 && cr == me - 1, "count/rank %d/%d, expected %d/%d", cn, cr,
                      n - 1, me - 1);
                exercise(sub, "all but rank 0", 60);
                CHECK_OK(chorus_comm_destroy(sub));
            }
        }
    }
    tu_set_case("split: every color < 0");
    sub = (chorus_comm_t)&sub;
    if (CHECK_OK(chorus_comm_split(world, -5, 0, &sub)))
        CHECK(sub == NULL, "color -5 gave a communicator");

    tu_set_case("split into singletons and into many colors");
    sub = NULL;
    if (CHECK_OK(chorus_comm_split(world, me, 0, &sub)) && sub) {
        exercise(sub, "singleton", 70 + (uint64_t)me);
        CHECK_OK(chorus_comm_destroy(sub));
    }
    sub = NULL;
    if (CHECK_OK(chorus_comm_split(world, me % 3, -me, &sub)) && sub) {
        exercise(sub, "three colors", 80 + (uint64_t)(me % 3));
        CHECK_OK(chorus_comm_destroy(sub));
    }
    exercise(world, "world after splits", 90);
}

/* ---- many communicators; leaks -------------------------------------------------------------- */

static void test_many_alive(void)
{
    enum { K = 4 };
    chorus_comm_t cs[K];
    int ok = 1;
    tu_set_case("%d communicators alive at once", K);
    for (int k = 0; k < K; k++) {
        cs[k] = NULL;
        chorus_result_t r = chorus_comm_init_mpi(&cs[k], MPI_COMM_WORLD);
        ok &= CHECK_OK(r);
    }
    if (tu_any(!ok, MPI_COMM_WORLD) == 0) {
        for (int round = 0; round < 2; round++)
            for (int k = K - 1; k >= 0; k--) {
                char label[64];
                snprintf(label, sizeof label, "comm %d of %d alive, round %d", k, K, round);
                exercise(cs[k], label, 100 + (uint64_t)(round * K + k));
            }
    }
    for (int k = 0; k < K; k++)
        if (cs[k])
            CHECK_OK(chorus_comm_destroy(cs[k]));
}

static void test_leaks(void)
{
    tu_barrier(MPI_COMM_WORLD);
    int fd0 = tu_count_fds();
    int shm0 = me == 0 ? tu_count_shm(NULL) : 0;
    tu_barrier(MPI_COMM_WORLD);
    for (int i = 0; i < 20; i++) {
        tu_set_case("create/destroy loop, communicator %d of 20", i);
        chorus_comm_t c = NULL;
        chorus_result_t r = chorus_comm_init_mpi(&c, MPI_COMM_WORLD);
        if (!CHECK_OK(r) || tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD))
            break;
        int32_t x = me, y = -1;
        if (CHECK_OK(chorus_allreduce(&x, &y, 1, CHORUS_INT32, CHORUS_MAX, c)))
            CHECK(y == n - 1, "max %d, expected %d", y, n - 1);
        if (i % 4 == 1) { /* and a split of it */
            chorus_comm_t s = NULL;
            if (CHECK_OK(chorus_comm_split(c, me % 2, 0, &s)) && s) {
                CHECK_OK(chorus_barrier(s));
                CHECK_OK(chorus_comm_destroy(s));
            }
        }
        if (i % 2)
            CHECK_OK(chorus_comm_finalize(c));
        CHECK_OK(chorus_comm_destroy(c));
    }
    tu_barrier(MPI_COMM_WORLD);
    /* closing may lag a little (bootstrap threads): wait up to 3 s */
    int fd1 = tu_count_fds();
    for (int k = 0; k < 30 && fd1 > fd0; k++) {
        usleep(100000);
        fd1 = tu_count_fds();
    }
    tu_set_case("create/destroy loop: file descriptors");
    CHECK(fd1 == fd0, "open file descriptors: %d before 20 create/destroy cycles, %d after", fd0,
          fd1);
    tu_barrier(MPI_COMM_WORLD);
    if (me == 0) {
        int shm1 = tu_count_shm(NULL);
        for (int k = 0; k < 30 && shm1 > shm0; k++) {
            usleep(100000);
            shm1 = tu_count_shm(NULL);
        }
        tu_set_case("create/destroy loop: /dev/shm");
        /* fewer is no leak of ours: another job on the host (a concurrent
         * test run) removed its own segment meanwhile */
        CHECK(shm1 <= shm0, "/dev/shm entries: %d before 20 create/destroy cycles, %d after",
              shm0, shm1);
    }
    tu_barrier(MPI_COMM_WORLD);
}

/* ---- finalize, async error, config, env ------------------------------------------------------- */

static void test_finalize(void)
{
    tu_set_case("finalize with outstanding nonblocking operations");
    chorus_comm_t c = NULL;
    chorus_result_t r = chorus_comm_init_mpi(&c, MPI_COMM_WORLD);
    if (!CHECK_OK(r) || tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD))
        return;
    chorus_result_t ae = CHORUS_INTERNAL_ERROR;
    CHECK_OK(chorus_comm_get_async_error(c, &ae));
    CHECK(ae == CHORUS_SUCCESS, "async error %d on a healthy comm", (int)ae);
    enum { R = 3, C = 50000 };
    int32_t *in = malloc(R * C * sizeof *in), *out = malloc(R * C * sizeof *out);
    chorus_request_t rq[R];
    for (int k = 0; k < R; k++) {
        rq[k] = NULL;
        for (int i = 0; i < C; i++) {
            in[k * C + i] = me + k + i % 100;
            out[k * C + i] = -1;
        }
        CHECK_OK(chorus_iallreduce(in + k * C, out + k * C, C, CHORUS_INT32, CHORUS_SUM, c,
                                   &rq[k]));
    }
    CHECK_OK(chorus_comm_finalize(c));
    /* finalize waited for them: the results are there */
    size_t bad = 0;
    for (int k = 0; k < R; k++)
        for (int i = 0; i < C; i++)
            if (out[k * C + i] != n * (n - 1) / 2 + n * (k + i % 100))
                bad++;
    CHECK(bad == 0, "%zu results missing or wrong after finalize", bad);
    for (int k = 0; k < R; k++) {
        if (!rq[k])
            continue;
        r = chorus_test(&rq[k]);
        CHECK(r == CHORUS_SUCCESS, "chorus_test after finalize returned %d", (int)r);
        if (r == CHORUS_IN_PROGRESS)
            chorus_wait(&rq[k]);
    }
    ae = CHORUS_INTERNAL_ERROR;
    CHECK_OK(chorus_comm_get_async_error(c, &ae));
    CHECK(ae == CHORUS_SUCCESS, "async error %d after finalize", (int)ae);
    CHECK_OK(chorus_comm_destroy(c));
    free(in);
    free(out);
}

static void test_config(void)
{
    tu_set_case("chorus_comm_init_rank_config with CHORUS_CONFIG_INITIALIZER");
    chorus_unique_id_t id;
    memset(&id, 0, sizeof id);
    int ok = 1;
    if (me == 0)
        ok = CHECK_OK(chorus_get_unique_id(&id));
    tu_bcast(&ok, sizeof ok, 0, MPI_COMM_WORLD);
    if (!ok)
        return;
    tu_bcast(&id, sizeof id, 0, MPI_COMM_WORLD);
    chorus_config_t cfg = CHORUS_CONFIG_INITIALIZER;
    CHECK(cfg.size == sizeof cfg && cfg.magic == CHORUS_CONFIG_MAGIC && cfg.blocking == 1 &&
              cfg.version == CHORUS_VERSION_CODE,
          "CHORUS_CONFIG_INITIALIZER fields");
    cfg.name = "test_comm";
    cfg.timeout_ms = 60000;
    cfg.init_timeout_ms = 60000;
    chorus_comm_t c = NULL;
    chorus_result_t r = chorus_comm_init_rank_config(&c, n, id, me, &cfg);
    if (!CHECK_OK(r) || tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD)) {
        if (r == CHORUS_SUCCESS)
            chorus_comm_destroy(c);
        return;
    }
    exercise(c, "init_rank_config", 200);
    CHECK_OK(chorus_comm_finalize(c));
    CHECK_OK(chorus_comm_destroy(c));

    tu_set_case("chorus_comm_init_rank_config with an untouched initializer");
    chorus_config_t plain = CHORUS_CONFIG_INITIALIZER;
    memset(&id, 0, sizeof id);
    if (me == 0)
        ok = CHECK_OK(chorus_get_unique_id(&id));
    tu_bcast(&ok, sizeof ok, 0, MPI_COMM_WORLD);
    if (!ok)
        return;
    tu_bcast(&id, sizeof id, 0, MPI_COMM_WORLD);
    c = NULL;
    r = chorus_comm_init_rank_config(&c, n, id, me, &plain);
    if (CHECK_OK(r) && !tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD)) {
        exercise(c, "init_rank_config (defaults)", 210);
        CHECK_OK(chorus_comm_destroy(c));
    } else if (r == CHORUS_SUCCESS) {
        chorus_comm_destroy(c);
    }
}

/* A free TCP port on 127.0.0.1, chosen by rank 0 and shared. */
static int shared_port(void)
{
    int port = 0;
    if (me == 0) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(s, (struct sockaddr *)&a, &len) == 0)
            port = ntohs(a.sin_port);
        if (s >= 0)
            close(s);
    }
    tu_bcast(&port, sizeof port, 0, MPI_COMM_WORLD);
    return port;
}

static void env_init_and_run(const char *label, uint64_t salt)
{
    tu_set_case("%s", label);
    chorus_comm_t c = NULL;
    chorus_result_t r = chorus_comm_init_env(&c);
    if (CHECK_OK(r) && !tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD)) {
        int cn = -1, cr = -1;
        CHECK_OK(chorus_comm_count(c, &cn));
        CHECK_OK(chorus_comm_rank(c, &cr));
        CHECK(cn == n && cr == me, "count/rank %d/%d, expected %d/%d", cn, cr, n, me);
        exercise(c, label, salt);
        CHECK_OK(chorus_comm_destroy(c));
    } else if (r == CHORUS_SUCCESS) {
        chorus_comm_destroy(c);
    }
}

static void test_init_env(void)
{
    static const char *vars[] = {"CHORUS_ROOT_ADDR", "MASTER_ADDR", "MASTER_PORT", "CHORUS_RANK",
                                 "RANK", "CHORUS_NRANKS", "WORLD_SIZE"};
    char buf[64];
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    int port = shared_port();
    tu_set_case("init_env: port");
    CHECK(port > 0, "no free port on 127.0.0.1");
    if (port <= 0)
        return;
    snprintf(buf, sizeof buf, "127.0.0.1:%d", port);
    setenv("CHORUS_ROOT_ADDR", buf, 1);
    snprintf(buf, sizeof buf, "%d", me);
    setenv("CHORUS_RANK", buf, 1);
    snprintf(buf, sizeof buf, "%d", n);
    setenv("CHORUS_NRANKS", buf, 1);
    env_init_and_run("chorus_comm_init_env with CHORUS_ROOT_ADDR/CHORUS_RANK/CHORUS_NRANKS", 300);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    tu_barrier(MPI_COMM_WORLD);

    port = shared_port();
    if (port <= 0)
        return;
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    snprintf(buf, sizeof buf, "%d", port);
    setenv("MASTER_PORT", buf, 1);
    snprintf(buf, sizeof buf, "%d", me);
    setenv("RANK", buf, 1);
    snprintf(buf, sizeof buf, "%d", n);
    setenv("WORLD_SIZE", buf, 1);
    env_init_and_run("chorus_comm_init_env with MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE", 310);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    tu_barrier(MPI_COMM_WORLD);
}

/* chorus_comm_register / deregister: bad arguments refused, collectives from
 * and into registered memory correct (over RDMA the registration is real),
 * stale handles refused, a handle still held at destroy released. */
static void test_register(void)
{
    tu_set_case("register");
    void *h = NULL, *h2 = NULL, *kept = NULL;
    CHECK_RES(chorus_comm_register(world, NULL, 16, &h), CHORUS_INVALID_ARGUMENT);
    CHECK_RES(chorus_comm_register(world, &h, 8, NULL), CHORUS_INVALID_ARGUMENT);
    CHECK_RES(chorus_comm_deregister(world, NULL), CHORUS_INVALID_ARGUMENT);
    const size_t count = (size_t)1 << 20; /* 4 MiB: the RDMA rendezvous path */
    int32_t *in = malloc(count * sizeof *in), *out = malloc(count * sizeof *out);
    if (!in || !out) {
        CHECK(0, "out of memory");
        free(in);
        free(out);
        return;
    }
    for (size_t i = 0; i < count; i++)
        in[i] = (int32_t)(i % 1000) + me;
    if (CHECK_OK(chorus_comm_register(world, in, count * sizeof *in, &h)) &&
        CHECK_OK(chorus_comm_register(world, out, count * sizeof *out, &h2))) {
        for (int round = 0; round < 2; round++) {
            memset(out, 0, count * sizeof *out);
            CHECK_OK(chorus_allreduce(in, out, count, CHORUS_INT32, CHORUS_SUM, world));
            size_t bad = 0;
            for (size_t i = 0; i < count; i++)
                bad += out[i] != (int32_t)(i % 1000) * n + n * (n - 1) / 2;
            CHECK(bad == 0, "allreduce over registered buffers: %zu wrong (round %d)", bad,
                  round);
        }
        CHECK_OK(chorus_comm_deregister(world, h));
        CHECK_RES(chorus_comm_deregister(world, h), CHORUS_INVALID_ARGUMENT); /* stale */
        CHECK_OK(chorus_comm_deregister(world, h2));
    }
    CHECK_OK(chorus_comm_register(world, NULL, 0, &h)); /* nothing to register: fine */
    CHECK_OK(chorus_comm_deregister(world, h));
    /* a handle left at destroy is released by destroy (ASan/valgrind watch) */
    chorus_comm_t c = NULL;
    if (CHECK_OK(chorus_comm_split(world, 0, me, &c)) && c) {
        CHECK_OK(chorus_comm_register(c, out, 4096, &kept));
        CHECK_RES(chorus_comm_deregister(world, kept), CHORUS_INVALID_ARGUMENT); /* foreign */
        CHECK_OK(chorus_comm_destroy(c));
    }
    free(in);
    free(out);
}

/* chorus_set_progress_hook: while rank 0 waits in a collective for a late
 * rank 1, its hook runs repeatedly (rank 1 joins once the hook has run five
 * times: no timing assumption, which a loaded host broke with "40 ms"); the
 * hook belongs to the thread that set it, and once removed it runs no more. */
#define HOOK_TAG 4711
#define HOOK_WAIT_S 30.0 /* rank 1's patience; reached only when the hook does not run */
static _Atomic int hook_calls;
static pthread_t hook_thread;
static _Atomic int hook_wrong_thread;
static void count_hook(void *arg)
{
    if (!pthread_equal(pthread_self(), hook_thread))
        hook_wrong_thread = 1;
    /* the fifth call tells rank 1 it may join: rank 0 has then waited inside
     * Chorus with its hook running, however slowly this host schedules it */
    if (++*(int *)arg == 5) {
        int go = 1;
        MPI_Send(&go, 1, MPI_INT, 1, HOOK_TAG, MPI_COMM_WORLD);
    }
    hook_calls++;
}

static void test_progress_hook(void)
{
    tu_set_case("progress hook");
    if (n < 2)
        return;
    int mine = 0;
    for (int round = 0; round < 2; round++) {
        hook_calls = 0;
        mine = 0;
        if (me == 0) {
            hook_thread = pthread_self();
            CHECK_OK(chorus_set_progress_hook(round == 0 ? count_hook : NULL, &mine));
        }
        if (me == 1 && round == 0) { /* until the hook's fifth call on rank 0 */
            int go = 0, done = 0;
            MPI_Request rq;
            MPI_Irecv(&go, 1, MPI_INT, 0, HOOK_TAG, MPI_COMM_WORLD, &rq);
            for (double t0 = tu_now(); !done && tu_now() - t0 < HOOK_WAIT_S; usleep(1000))
                MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
            if (!done) { /* rank 0's check reports it */
                MPI_Cancel(&rq);
                MPI_Wait(&rq, MPI_STATUS_IGNORE);
            }
        }
        if (me == 1 && round == 1)
            usleep(40000);
        int v = me + 1, sum = 0;
        CHECK_OK(chorus_allreduce(&v, &sum, 1, CHORUS_INT32, CHORUS_SUM, world));
        CHECK(sum == n * (n + 1) / 2, "sum %d", sum);
        if (me == 0 && round == 0)
            CHECK(mine >= 5, "the hook ran %d times while rank 0 waited for rank 1 (which "
                  "joins after the fifth call, or after %.0f s)", mine, HOOK_WAIT_S);
        if (me == 0 && round == 1)
            CHECK(mine == 0, "the removed hook ran %d times", mine);
        CHECK(!hook_wrong_thread, "the hook ran on another thread");
    }
    if (me == 0)
        CHECK_OK(chorus_set_progress_hook(NULL, NULL));
}

int main(int argc, char **argv)
{
    setenv("CHORUS_TIMEOUT_MS", "60000", 0);
    MPI_Init(&argc, &argv);
    tu_init();
    me = tu_rank;
    n = tu_nranks;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-v"))
            tu_verbose = 1;
    double t0 = tu_now();
    tu_set_case("init");
    chorus_result_t r = chorus_comm_init_mpi(&world, MPI_COMM_WORLD);
    if (!CHECK_OK(r) || tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD)) {
        int rc = tu_summary("test_comm");
        MPI_Finalize();
        return rc;
    }
    int cn = -1, cr = -1;
    tu_set_case("comm_count/comm_rank");
    CHECK_OK(chorus_comm_count(world, &cn));
    CHECK_OK(chorus_comm_rank(world, &cr));
    CHECK(cn == n && cr == me, "count/rank %d/%d, expected %d/%d", cn, cr, n, me);
    chorus_result_t ae = CHORUS_INTERNAL_ERROR;
    CHECK_OK(chorus_comm_get_async_error(world, &ae));
    CHECK(ae == CHORUS_SUCCESS, "async error %d on a healthy comm", (int)ae);
    exercise(world, "world", 1);
    int *everyone = malloc(sizeof(int) * (size_t)n);
    for (int q = 0; q < n; q++)
        everyone[q] = q;
    check_host(world, "world", everyone, n);
    free(everyone);

    test_split();
    test_many_alive();
    test_leaks();
    test_finalize();
    test_config();
    test_init_env();
    test_register();
    test_progress_hook();

    tu_set_case("destroy");
    ae = CHORUS_INTERNAL_ERROR;
    CHECK_OK(chorus_comm_get_async_error(world, &ae));
    CHECK(ae == CHORUS_SUCCESS, "async error %d at the end", (int)ae);
    CHECK_OK(chorus_comm_finalize(world));
    CHECK_OK(chorus_comm_destroy(world));
    if (me == 0)
        tu_log("total %.1f s", tu_now() - t0);
    int rc = tu_summary("test_comm");
    MPI_Finalize();
    return rc;
}
