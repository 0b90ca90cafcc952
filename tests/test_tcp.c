/* test_tcp.c - the TCP transport with real processes on loopback.
 *
 * Every scenario runs in a process of its own (so each can set its own
 * CHORUS_NET_* variables, which are read once per process): it forks its
 * ranks first (they wait on a pipe for the unique id), then starts the
 * bootstrap root and hands the id out, so no fork happens while a root
 * thread runs. Each rank joins the bootstrap, creates its transport over the
 * bootstrap's allgather and runs the scenario's body. Ranks have an alarm()
 * as a safety net; the top process kills a scenario's whole process group
 * when it outlives its bound, so a hang fails the test instead of hanging it.
 *
 * Usage: test_tcp [--quick]   (--quick: smaller messages, e.g. under valgrind)
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bootstrap.h"
#include "chorus.h"
#include "socket.h"
#include "tcp/tcp_impl.h"
#include "transport.h"
#include "tunables.h"

#define MAX_RANKS 4
#define RANK_TIMEOUT_MS 10000
#define DRIVE_LIMIT_MS 40000
#define CHILD_ALARM_S 60
#define SCENARIO_LIMIT_MS 90000
#define MIB ((size_t)1 << 20)

static int quick;
static int results_w = -1; /* every process reports its check count here */

/* ---- checks inside a rank ------------------------------------------------------ */

static int checks;
static const char *where = "";

#define CCHECK(cond, ...)                                                                \
    do {                                                                                 \
        checks++;                                                                        \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "FAIL %s %s:%d: ", where, __FILE__, __LINE__);               \
            fprintf(stderr, __VA_ARGS__);                                                \
            fprintf(stderr, " [last error: %s]\n", chorus_get_last_error());             \
            return 1;                                                                    \
        }                                                                                \
    } while (0)

static int64_t now_ms(void) { return chorus_socket_now_ms(); }

static void sleep_ms(int ms) { poll(NULL, 0, ms); }

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory itself */
}

static int has(const char *text) { return strstr(chorus_get_last_error(), text) != NULL; }

/* ---- patterns: every message has its own bytes ------------------------------------- */

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t seed_of(int src, int dst, int msg)
{
    return ((uint64_t)(src + 1) << 40) ^ ((uint64_t)(dst + 1) << 24) ^ (uint64_t)msg;
}

static uint8_t pat_byte(uint64_t seed, size_t i)
{
    return (uint8_t)(mix(seed ^ ((uint64_t)(i >> 3) * 0x100000001b3ull)) >> (8 * (i & 7)));
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t w = 0; w * 8 < n; w++) {
        uint64_t v = mix(seed ^ ((uint64_t)w * 0x100000001b3ull));
        for (size_t j = 0; j < 8 && w * 8 + j < n; j++)
            p[w * 8 + j] = (uint8_t)(v >> (8 * j));
    }
}

/* Index of the first wrong byte, or SIZE_MAX. */
static size_t first_bad(const uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t w = 0; w * 8 < n; w++) {
        uint64_t v = mix(seed ^ ((uint64_t)w * 0x100000001b3ull));
        for (size_t j = 0; j < 8 && w * 8 + j < n; j++)
            if (p[w * 8 + j] != (uint8_t)(v >> (8 * j)))
                return w * 8 + j;
    }
    return SIZE_MAX;
}

/* ---- a rank ----------------------------------------------------------------------- */

struct scenario;

struct rank_ctx {
    int rank, nranks;
    size_t chunk; /* NET_CHUNK in force, as the transport clamps it */
    struct chorus_bootstrap *bs;
    struct transport *t;
    const struct scenario *sc;
    int strays[32]; /* stray connections held open through setup */
    int nstrays;
};

typedef int (*body_fn)(struct rank_ctx *c);

struct scenario {
    const char *name;
    int nranks;
    const char *sockets[MAX_RANKS]; /* CHORUS_NET_SOCKETS per rank; NULL: default */
    const char *chunk;              /* CHORUS_NET_CHUNK; NULL: default */
    const char *sockbuf;            /* CHORUS_NET_SOCKBUF; NULL: default */
    body_fn body;
    int victim;  /* rank that kills itself; -1: none */
    int strays;  /* rank 0 throws stray connections at the others during setup */
};

static void send_strays(struct rank_ctx *c, const struct tcp_card *cards);

static chorus_result_t bs_allgather(void *ctx, const void *mine, void *all, size_t size)
{
    struct rank_ctx *c = (struct rank_ctx *)ctx;
    chorus_result_t res = chorus_bootstrap_allgather(c->bs, mine, all, size);
    /* Right after the exchange, before rank 0 connects for real: the others
     * are listening and must sort strays from ranks. */
    if (res == CHORUS_SUCCESS && c->sc->strays && c->rank == 0 && size == sizeof(struct tcp_card))
        send_strays(c, (const struct tcp_card *)all);
    return res;
}

static chorus_result_t open_transport(struct rank_ctx *c, const uint8_t *need, int timeout_ms,
                                      _Atomic int *abort_flag)
{
    char label[64];
    snprintf(label, sizeof label, "test rank %d/%d", c->rank, c->nranks);
    struct transport_setup setup = {
        .rank = c->rank,
        .nranks = c->nranks,
        .need_peer = need,
        .allgather = bs_allgather,
        .allgather_ctx = c,
        .timeout_ms = timeout_ms,
        .label = label,
        .abort_flag = abort_flag,
    };
    c->t = NULL;
    return tcp_transport_create(&c->t, &setup);
}

/* A posted transfer and what the test knows about it. */
struct job {
    struct xfer x;
    uint64_t seed;    /* receives: the expected pattern */
    size_t seen_done; /* x.done at the last look */
    int bad;          /* done shrank, overshot, or its last byte was wrong */
};

static void job_set(struct job *j, int peer, int is_send, void *buf, size_t bytes, uint64_t seed)
{
    memset(j, 0, sizeof *j);
    j->x.peer = peer;
    j->x.is_send = is_send;
    j->x.buf = buf;
    j->x.bytes = bytes;
    j->seed = seed;
}

/* x.done must only grow, stay within bytes, and be a prefix: for a receive,
 * its last arrived byte must already hold the right value. */
static void job_look(struct job *j)
{
    size_t d = j->x.done;
    if (d < j->seen_done || d > j->x.bytes || (j->x.complete && d != j->x.bytes))
        j->bad = 1;
    else if (!j->x.is_send && d > j->seen_done && pat_byte(j->seed, d - 1) !=
                                                       ((uint8_t *)j->x.buf)[d - 1])
        j->bad = 2;
    j->seen_done = d;
}

static chorus_result_t post_all(struct transport *t, struct job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        chorus_result_t res = t->ops->post(t, &jobs[i].x);
        if (res != CHORUS_SUCCESS)
            return res;
    }
    return CHORUS_SUCCESS;
}

/* Progresses until every job completed, the transport fails, or limit_ms
 * (then CHORUS_TIMEOUT, as far as the test is concerned). */
static chorus_result_t drive(struct transport *t, struct job *jobs, size_t n, int limit_ms)
{
    int64_t end = now_ms() + limit_ms;
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++) {
            job_look(&jobs[i]);
            left += !jobs[i].x.complete;
        }
        if (left == 0)
            return CHORUS_SUCCESS;
        if (now_ms() > end) {
            fprintf(stderr, "%s: drive: %zu of %zu transfers still running after %d ms\n",
                    where, left, n, limit_ms);
            return CHORUS_TIMEOUT;
        }
        chorus_result_t res = t->ops->progress(t, 10);
        if (res != CHORUS_SUCCESS)
            return res;
    }
}

/* Progresses with nothing expected to complete until an error or limit_ms. */
static chorus_result_t wait_error(struct transport *t, int limit_ms)
{
    int64_t end = now_ms() + limit_ms;
    while (now_ms() < end) {
        chorus_result_t res = t->ops->progress(t, 10);
        if (res != CHORUS_SUCCESS)
            return res;
    }
    return CHORUS_SUCCESS;
}

/* ---- bodies --------------------------------------------------------------------------- */

/* Every pair at once, both directions: messages of awkward sizes around the
 * piece size, then a large one, checked byte for byte. */
static int exchange_round(struct rank_ctx *c, int round, int with_big)
{
    struct transport *t = c->t;
    size_t ch = c->chunk;
    size_t big = quick ? 8 * MIB : 64 * MIB;
    const size_t sizes[] = {0, 1, 7, 4096, ch - 1, ch + 1, 5 * ch + 3, big};
    int nm = with_big ? 8 : 7, np = c->nranks - 1;
    size_t njobs = (size_t)nm * (size_t)np * 2;
    struct job *jobs = calloc(njobs, sizeof *jobs);
    uint8_t *sendbuf[8];
    CCHECK(jobs, "out of memory");
    for (int m = 0; m < nm; m++) {
        sendbuf[m] = malloc(sizes[m] + 1);
        CCHECK(sendbuf[m], "out of memory");
        fill(sendbuf[m], sizes[m], seed_of(c->rank, -1, round * 16 + m));
    }
    /* Interleaved as an algorithm would post them: each size to every peer. */
    size_t k = 0;
    for (int m = 0; m < nm; m++)
        for (int q = 0; q < c->nranks; q++) {
            if (q == c->rank)
                continue;
            uint8_t *rbuf = malloc(sizes[m] + 1);
            CCHECK(rbuf, "out of memory");
            rbuf[sizes[m]] = 0xa5; /* guard */
            job_set(&jobs[k++], q, 1, sendbuf[m], sizes[m], 0);
            job_set(&jobs[k++], q, 0, rbuf, sizes[m], seed_of(q, -1, round * 16 + m));
        }
    CCHECK(post_all(t, jobs, njobs) == CHORUS_SUCCESS, "post");
    chorus_result_t res = drive(t, jobs, njobs, DRIVE_LIMIT_MS);
    CCHECK(res == CHORUS_SUCCESS, "round %d: drive returned %d", round, res);
    for (size_t i = 0; i < njobs; i++) {
        struct job *j = &jobs[i];
        CCHECK(j->x.complete && j->x.done == j->x.bytes && !j->bad,
               "round %d: %s %s %zu bytes: complete %d done %zu bad %d", round,
               j->x.is_send ? "send to" : "receive from", t->ops->peer_name(t, j->x.peer),
               j->x.bytes, j->x.complete, j->x.done, j->bad);
        if (j->x.is_send)
            continue;
        size_t bad = first_bad(j->x.buf, j->x.bytes, j->seed);
        CCHECK(bad == SIZE_MAX, "round %d: %zu bytes from rank %d: wrong byte at %zu", round,
               j->x.bytes, j->x.peer, bad);
        CCHECK(((uint8_t *)j->x.buf)[j->x.bytes] == 0xa5,
               "round %d: receive of %zu bytes from rank %d wrote past its end", round,
               j->x.bytes, j->x.peer);
        free(j->x.buf);
    }
    for (int m = 0; m < nm; m++)
        free(sendbuf[m]);
    free(jobs);
    return 0;
}

static int body_exchange(struct rank_ctx *c)
{
    int fds = count_fds();
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
    struct transport *t = c->t;
    CCHECK(!strcmp(t->ops->name, "tcp"), "ops name '%s'", t->ops->name);
    CCHECK(t->blame == -1, "nobody is blamed yet (%d)", t->blame);
    for (int q = 0; q < c->nranks; q++) {
        char want[32];
        snprintf(want, sizeof want, "rank %d (127.0.0.1:", q);
        CCHECK(!strncmp(t->ops->peer_name(t, q), want, strlen(want)), "peer_name(%d) = '%s'",
               q, t->ops->peer_name(t, q));
    }
    CCHECK(!strcmp(t->ops->peer_name(t, 99), "rank 99"), "peer_name(99) = '%s'",
           t->ops->peer_name(t, 99));
    for (int round = 0; round < 3; round++)
        if (exchange_round(c, round, round == 1))
            return 1;
    t->ops->destroy(t);
    CCHECK(count_fds() == fds, "%d fds before create, %d after destroy", fds, count_fds());
    return 0;
}

/* Many back-to-back messages on every pair, the receives posted late and a
 * few at a time: each message must arrive whole and in order. */
static size_t order_size(int m, size_t chunk)
{
    return m % 97 == 13 ? 3 * chunk + (size_t)m : (size_t)(m * 37) % 301;
}

struct order_peer {
    int q;
    uint8_t *sbuf, *rbuf;
    size_t *off;        /* [M] message offsets (the same on both sides) */
    struct job *sends;  /* [M] */
    struct job *recvs;  /* [M] */
    int posted, checked;
};

static int body_order(struct rank_ctx *c)
{
    const int M = quick ? 300 : 2000, W = 8;
    int np = c->nranks - 1;
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
    struct transport *t = c->t;
    struct order_peer *ps = calloc((size_t)np, sizeof *ps);
    CCHECK(ps, "out of memory");
    for (int i = 0, q = 0; q < c->nranks; q++) {
        if (q == c->rank)
            continue;
        struct order_peer *p = &ps[i++];
        p->q = q;
        p->off = calloc((size_t)M + 1, sizeof *p->off);
        p->sends = calloc((size_t)M, sizeof *p->sends);
        p->recvs = calloc((size_t)M, sizeof *p->recvs);
        CCHECK(p->off && p->sends && p->recvs, "out of memory");
        for (int m = 0; m < M; m++)
            p->off[m + 1] = p->off[m] + order_size(m, c->chunk);
        p->sbuf = malloc(p->off[M] + 1);
        p->rbuf = malloc(p->off[M] + 1);
        CCHECK(p->sbuf && p->rbuf, "out of memory");
        for (int m = 0; m < M; m++) {
            fill(p->sbuf + p->off[m], order_size(m, c->chunk), seed_of(c->rank, q, m));
            job_set(&p->sends[m], q, 1, p->sbuf + p->off[m], order_size(m, c->chunk), 0);
            job_set(&p->recvs[m], q, 0, p->rbuf + p->off[m], order_size(m, c->chunk),
                    seed_of(q, c->rank, m));
        }
        CCHECK(post_all(t, p->sends, (size_t)M) == CHORUS_SUCCESS, "post sends");
    }
    /* Let the sends fill the kernel buffers before any receive exists. */
    for (int64_t until = now_ms() + 100; now_ms() < until;)
        CCHECK(t->ops->progress(t, 5) == CHORUS_SUCCESS, "progress with sends only");
    int64_t end = now_ms() + DRIVE_LIMIT_MS;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < np; i++) {
            struct order_peer *p = &ps[i];
            for (; p->checked < p->posted && p->recvs[p->checked].x.complete; p->checked++) {
                struct job *j = &p->recvs[p->checked];
                job_look(j);
                size_t bad = first_bad(j->x.buf, j->x.bytes, j->seed);
                CCHECK(bad == SIZE_MAX && !j->bad,
                       "message %d (%zu bytes) from rank %d: wrong byte at %zu (bad %d)",
                       p->checked, j->x.bytes, p->q, bad, j->bad);
            }
            while (p->posted < M && p->posted - p->checked < W)
                CCHECK(t->ops->post(t, &p->recvs[p->posted++].x) == CHORUS_SUCCESS, "post");
            for (int m = p->checked; m < p->posted; m++)
                job_look(&p->recvs[m]);
            busy |= p->checked < M || !p->sends[M - 1].x.complete;
        }
        if (!busy)
            break;
        CCHECK(now_ms() < end, "ordered messages did not finish in %d ms", DRIVE_LIMIT_MS);
        chorus_result_t res = t->ops->progress(t, 10);
        CCHECK(res == CHORUS_SUCCESS, "progress returned %d", res);
    }
    for (int i = 0; i < np; i++) {
        for (int m = 0; m < M; m++)
            CCHECK(ps[i].sends[m].x.complete && ps[i].sends[m].x.done == ps[i].sends[m].x.bytes,
                   "send %d to rank %d incomplete", m, ps[i].q);
        free(ps[i].sbuf);
        free(ps[i].rbuf);
        free(ps[i].off);
        free(ps[i].sends);
        free(ps[i].recvs);
    }
    free(ps);
    t->ops->destroy(t);
    return 0;
}

/* Sizes that disagree: rank 1 sends 4096 where rank 0 receives 8192, and
 * rank 0 sends 8192 where rank 2 receives 4096. */
static int body_mismatch(struct rank_ctx *c)
{
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
    struct transport *t = c->t;
    static uint8_t buf[2][8192];
    struct job j[2];
    chorus_result_t res;
    if (c->rank == 1) {
        fill(buf[0], 100, seed_of(1, 0, 0));
        job_set(&j[0], 0, 1, buf[0], 100, 0);
        job_set(&j[1], 0, 1, buf[1], 4096, 0);
        CCHECK(post_all(t, j, 2) == CHORUS_SUCCESS, "post");
        CCHECK(drive(t, j, 2, DRIVE_LIMIT_MS) == CHORUS_SUCCESS, "sends of 100 + 4096 bytes");
    } else if (c->rank == 0) {
        job_set(&j[0], 2, 1, buf[0], 8192, 0);
        CCHECK(post_all(t, j, 1) == CHORUS_SUCCESS, "post");
        CCHECK(drive(t, j, 1, DRIVE_LIMIT_MS) == CHORUS_SUCCESS, "send of 8192 bytes");
        /* One at a time: the bad message's header may come in on another
         * socket before the good one is complete, and fails at once. */
        job_set(&j[0], 1, 0, buf[0], 100, seed_of(1, 0, 0));
        CCHECK(post_all(t, j, 1) == CHORUS_SUCCESS, "post");
        CCHECK(drive(t, j, 1, DRIVE_LIMIT_MS) == CHORUS_SUCCESS &&
                   first_bad(buf[0], 100, j[0].seed) == SIZE_MAX,
               "the matching message before the bad one arrives");
        job_set(&j[1], 1, 0, buf[1], 8192, 0);
        CCHECK(post_all(t, &j[1], 1) == CHORUS_SUCCESS, "post");
        res = drive(t, &j[1], 1, DRIVE_LIMIT_MS);
        CCHECK(res == CHORUS_INVALID_USAGE, "8192-byte receive of 4096 bytes returned %d", res);
        CCHECK(has("rank 1 (127.0.0.1:") && has("sent 4096 bytes") &&
                   has("posted a 8192-byte receive"),
               "error text names the peer and both sizes");
        CCHECK(t->blame == 1 && t->blame_code == CHORUS_INVALID_USAGE, "blame %d code %d",
               t->blame, t->blame_code);
        CCHECK(t->ops->progress(t, 0) == CHORUS_INVALID_USAGE, "the transport stays broken");
        CCHECK(has("sent 4096 bytes"), "the same text comes back");
        CCHECK(t->ops->post(t, &j[0].x) == CHORUS_INVALID_USAGE, "post after the error");
    } else {
        job_set(&j[0], 0, 0, buf[0], 4096, 0);
        CCHECK(post_all(t, j, 1) == CHORUS_SUCCESS, "post");
        res = drive(t, j, 1, DRIVE_LIMIT_MS);
        CCHECK(res == CHORUS_INVALID_USAGE, "4096-byte receive of 8192 bytes returned %d", res);
        CCHECK(has("rank 0 (127.0.0.1:") && has("sent 8192 bytes") &&
                   has("posted a 4096-byte receive"),
               "error text names the peer and both sizes");
    }
    CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
    t->ops->destroy(t);
    return 0;
}

/* The victim kills itself in the middle of receiving large messages from
 * everyone; the survivors also wait for a message it never sends, so no
 * survivor can finish before the death. The survivors move nothing among
 * themselves: a survivor that saw the death first and exited must not be
 * what the other one reports. */
static int body_kill(struct rank_ctx *c)
{
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
    struct transport *t = c->t;
    size_t big = quick ? 16 * MIB : 64 * MIB;
    int np = c->nranks - 1, victim = c->sc->victim;
    uint8_t *sbuf = calloc(1, big);
    uint8_t *rbuf = malloc(big * (size_t)np);
    struct job *jobs = calloc((size_t)np * 2, sizeof *jobs);
    CCHECK(sbuf && rbuf && jobs, "out of memory");
    size_t k = 0;
    if (c->rank == victim) {
        for (int q = 0; q < c->nranks; q++)
            if (q != victim) {
                job_set(&jobs[k], q, 0, rbuf + big * k, big, 0);
                k++;
            }
        CCHECK(post_all(t, jobs, k) == CHORUS_SUCCESS, "post");
        int64_t end = now_ms() + 5000;
        for (;;) {
            CCHECK(t->ops->progress(t, 1) == CHORUS_SUCCESS, "victim's progress");
            int far = now_ms() > end;
            for (size_t i = 0; i < k; i++)
                far |= jobs[i].x.done >= 2 * MIB;
            if (far) {
                /* valgrind checks for leaks even at a SIGKILL to oneself;
                 * the transport is left as a crash leaves it. */
                free(sbuf);
                free(rbuf);
                free(jobs);
                kill(getpid(), SIGKILL);
            }
        }
    }
    job_set(&jobs[k++], victim, 1, sbuf, big, 0);
    job_set(&jobs[k++], victim, 0, rbuf, big, 0);
    CCHECK(post_all(t, jobs, k) == CHORUS_SUCCESS, "post");
    char name[16];
    snprintf(name, sizeof name, "rank %d", victim);
    int64_t t0 = now_ms();
    chorus_result_t res = drive(t, jobs, k, 20000);
    int64_t took = now_ms() - t0;
    CCHECK(res == CHORUS_REMOTE_ERROR, "progress returned %d after the peer died", res);
    CCHECK(has(name), "the error names %s", name);
    CCHECK(t->blame == victim && t->blame_code == CHORUS_REMOTE_ERROR, "blame %d code %d",
           t->blame, t->blame_code);
    CCHECK(took < 15000, "the death was noticed after %lld ms", (long long)took);
    CCHECK(t->ops->progress(t, 0) == CHORUS_REMOTE_ERROR && has(name),
           "the transport stays broken");
    t->ops->destroy(t);
    free(sbuf);
    free(rbuf);
    free(jobs);
    return 0;
}

/* Rank 1 gives up blaming rank 2: rank 0 (idle) and rank 2 (waiting for rank
 * 1) hear it and name the blamed rank. */
static int body_fail(struct rank_ctx *c)
{
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
    struct transport *t = c->t;
    uint8_t buf[100];
    struct job j;
    chorus_result_t res;
    if (c->rank == 2) {
        job_set(&j, 1, 0, buf, sizeof buf, 0);
        CCHECK(post_all(t, &j, 1) == CHORUS_SUCCESS, "post");
    }
    CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
    if (c->rank == 1) {
        t->ops->fail(t, 2, CHORUS_TIMEOUT);
        t->ops->fail(t, 2, CHORUS_TIMEOUT); /* twice does no harm */
    } else if (c->rank == 0) {
        res = wait_error(t, 10000);
        CCHECK(res == CHORUS_REMOTE_ERROR, "idle rank got %d", res);
        CCHECK(has("rank 2 failed (timeout), reported by rank 1 (127.0.0.1:"),
               "the text names the blamed and the reporting rank");
        CCHECK(t->blame == 2 && t->blame_code == CHORUS_TIMEOUT, "blame %d code %d", t->blame,
               t->blame_code);
    } else {
        res = drive(t, &j, 1, 10000);
        CCHECK(res == CHORUS_REMOTE_ERROR, "waiting rank got %d", res);
        CCHECK(has("rank 1 (127.0.0.1:") && has("gave up waiting for this rank (timeout)"),
               "the blamed rank, waiting for the reporter, hears who gave up on it");
    }
    CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
    t->ops->destroy(t);
    return 0;
}

/* Stray clients talk to the listening ranks during setup; setup must still
 * complete with the real connections, and the transport must work. */
static int stray(const struct chorus_sockaddr *to, const void *bytes, size_t n)
{
    int fd = -1;
    if (chorus_socket_connect(to, chorus_socket_deadline(3000), "stray", &fd) != CHORUS_SUCCESS)
        return -1;
    if (n && chorus_socket_send_all(fd, bytes, n, chorus_socket_deadline(3000), "stray") !=
                 CHORUS_SUCCESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_strays(struct rank_ctx *c, const struct tcp_card *cards)
{
    for (int r = 1; r < c->nranks; r++) {
        const struct tcp_card *card = &cards[r];
        uint8_t garbage[64];
        memset(garbage, 0xab, sizeof garbage);
        struct tcp_hello h[6];
        for (int i = 0; i < 6; i++) {
            memset(&h[i], 0, sizeof h[i]);
            h[i].magic = TCP_HELLO_MAGIC;
            h[i].version = TCP_VERSION;
            h[i].from = 0;
            h[i].to = (uint32_t)r;
            memcpy(h[i].token, card->token, sizeof h[i].token);
        }
        h[0].token[5] ^= 1;              /* wrong token, for a data slot: if */
        h[0].index = 1;                  /* taken, that connection breaks */
        h[1].from = 99;                  /* no such rank */
        h[2].index = 200;                /* no such socket */
        h[3].to = (uint32_t)r + 1;       /* meant for another rank */
        h[4].from = (uint32_t)r;         /* a rank that does not connect here */
        h[5].version = TCP_VERSION + 1;  /* another version */
        const struct {
            const void *p;
            size_t n;
            int keep;
        } tries[] = {
            {garbage, sizeof garbage, 1}, {&h[0], sizeof h[0], 1}, {&h[1], sizeof h[1], 0},
            {&h[2], sizeof h[2], 1},      {&h[3], sizeof h[3], 0}, {&h[4], sizeof h[4], 1},
            {&h[5], sizeof h[5], 0},      {&h[1], 10, 0},          {NULL, 0, 0},
            {NULL, 0, 1}, /* connects and says nothing */
        };
        for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
            int fd = stray(&card->addr, tries[i].p, tries[i].n);
            if (fd < 0)
                continue;
            if (tries[i].keep && c->nstrays < (int)(sizeof c->strays / sizeof c->strays[0]))
                c->strays[c->nstrays++] = fd;
            else
                close(fd);
        }
    }
}

static int body_strays(struct rank_ctx *c)
{
    int fds = count_fds();
    chorus_result_t res = open_transport(c, NULL, RANK_TIMEOUT_MS, NULL);
    for (int i = 0; i < c->nstrays; i++)
        close(c->strays[i]);
    CCHECK(res == CHORUS_SUCCESS, "create with strays about");
    CCHECK(c->rank != 0 || c->nstrays > 0, "strays were sent");
    if (exchange_round(c, 0, 0))
        return 1;
    c->t->ops->destroy(c->t);
    CCHECK(count_fds() == fds, "%d fds before create, %d after destroy", fds, count_fds());
    return 0;
}

/* Setup that cannot complete: rank 0 connects to nobody, rank 1 waits for
 * rank 0 until its timeout, rank 2 waits until it is aborted. */
static void *abort_soon(void *arg)
{
    sleep_ms(300);
    atomic_store((_Atomic int *)arg, 1);
    return NULL;
}

static int body_setup_failures(struct rank_ctx *c)
{
    int fds = count_fds();
    uint8_t need[MAX_RANKS] = {0};
    static _Atomic int aborted;
    pthread_t th;
    int64_t t0 = now_ms();
    chorus_result_t res;
    if (c->rank == 0) {
        CCHECK(open_transport(c, need, 20000, NULL) == CHORUS_SUCCESS, "create without peers");
        struct xfer x = {.peer = 1, .is_send = 1};
        CCHECK(c->t->ops->post(c->t, &x) == CHORUS_INVALID_ARGUMENT && has("rank 1"),
               "posting to a rank that is not connected");
        CCHECK(c->t->ops->progress(c->t, 0) == CHORUS_SUCCESS, "still usable");
        c->t->ops->destroy(c->t);
    } else if (c->rank == 1) {
        need[0] = 1;
        res = open_transport(c, need, 1000, NULL);
        int64_t took = now_ms() - t0;
        CCHECK(res == CHORUS_TIMEOUT && c->t == NULL, "create returned %d", res);
        CCHECK(has("rank 0 (127.0.0.1:") && has("missing"), "the timeout names rank 0");
        CCHECK(took >= 900 && took < 8000, "timed out after %lld ms", (long long)took);
    } else {
        need[0] = 1;
        CCHECK(pthread_create(&th, NULL, abort_soon, (void *)&aborted) == 0, "thread");
        res = open_transport(c, need, 20000, &aborted);
        int64_t took = now_ms() - t0;
        pthread_join(th, NULL);
        CCHECK(res == CHORUS_INVALID_USAGE && has("aborted"), "create returned %d", res);
        CCHECK(took < 5000, "abort noticed after %lld ms", (long long)took);
    }
    CCHECK(count_fds() == fds, "%d fds before create, %d after", fds, count_fds());
    return 0;
}

/* Only ring neighbours connect; other ranks are refused by post. */
static int body_ring(struct rank_ctx *c)
{
    int n = c->nranks, me = c->rank;
    int left = (me + n - 1) % n, right = (me + 1) % n;
    uint8_t need[MAX_RANKS] = {0};
    need[left] = need[right] = 1;
    CCHECK(open_transport(c, need, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
    struct transport *t = c->t;
    struct xfer x = {.peer = (me + 2) % n, .bytes = 1, .buf = &x};
    CCHECK(t->ops->post(t, &x) == CHORUS_INVALID_ARGUMENT, "post to the opposite rank");
    static uint8_t sbuf[2][70000], rbuf[2][70000];
    struct job j[4];
    const int nb[2] = {left, right};
    for (int i = 0; i < 2; i++) {
        fill(sbuf[i], sizeof sbuf[i], seed_of(me, nb[i], 0));
        job_set(&j[2 * i], nb[i], 1, sbuf[i], sizeof sbuf[i], 0);
        job_set(&j[2 * i + 1], nb[i], 0, rbuf[i], sizeof rbuf[i], seed_of(nb[i], me, 0));
    }
    CCHECK(post_all(t, j, 4) == CHORUS_SUCCESS, "post");
    CCHECK(drive(t, j, 4, DRIVE_LIMIT_MS) == CHORUS_SUCCESS, "exchange with the neighbours");
    for (int i = 0; i < 2; i++)
        CCHECK(first_bad(rbuf[i], sizeof rbuf[i], j[2 * i + 1].seed) == SIZE_MAX &&
                   !j[2 * i + 1].bad,
               "data from rank %d", nb[i]);
    t->ops->destroy(t);
    return 0;
}

/* ---- processes ------------------------------------------------------------------------ */

static const struct scenario scenarios[] = {
    {"exchange np=2, 1 data socket", 2, {"1", "1"}, NULL, NULL, body_exchange, -1, 0},
    {"exchange np=3, 3/3/2 data sockets, 4 KiB pieces", 3, {"3", "3", "2"}, "4096", NULL,
     body_exchange, -1, 0},
    {"exchange np=4, 1 data socket, 4 KiB pieces", 4, {"1", "1", "1", "1"}, "4096", NULL,
     body_exchange, -1, 0},
    {"exchange np=4, 3 data sockets, 64 KiB pieces, 256 KiB socket buffers", 4,
     {"3", "3", "3", "3"}, "64K", "256K", body_exchange, -1, 0},
    {"order np=3, 3 data sockets, 4 KiB pieces", 3, {"3", "3", "3"}, "4096", NULL, body_order,
     -1, 0},
    {"size mismatch np=3", 3, {"3", "3", "3"}, "4096", NULL, body_mismatch, -1, 0},
    {"kill -9 mid-transfer np=3", 3, {"2", "2", "2"}, NULL, NULL, body_kill, 1, 0},
    {"fail() np=3", 3, {NULL}, NULL, NULL, body_fail, -1, 0},
    {"stray clients during setup np=3", 3, {"2", "2", "2"}, NULL, NULL, body_strays, -1, 1},
    {"setup timeout and abort np=3", 3, {NULL}, NULL, NULL, body_setup_failures, -1, 0},
    {"ring neighbours only np=4", 4, {"1", "1", "1", "1"}, NULL, NULL, body_ring, -1, 0},
};

static void report_checks(int n)
{
    if (write(results_w, &n, sizeof n) != (ssize_t)sizeof n)
        perror("write check count");
}

static void rank_main(const struct scenario *sc, int rank, int idfd)
{
    alarm(CHILD_ALARM_S);
    signal(SIGPIPE, SIG_DFL); /* the library must never raise it */
    char w[96];
    snprintf(w, sizeof w, "[%s] rank %d:", sc->name, rank);
    where = w;
    if (sc->sockets[rank])
        setenv("CHORUS_NET_SOCKETS", sc->sockets[rank], 1);
    if (sc->chunk)
        setenv("CHORUS_NET_CHUNK", sc->chunk, 1);
    if (sc->sockbuf)
        setenv("CHORUS_NET_SOCKBUF", sc->sockbuf, 1);
    const struct chorus_tunables *tun;
    if (chorus_tunables_load(&tun) != CHORUS_SUCCESS) {
        fprintf(stderr, "FAIL %s tunables: %s\n", where, chorus_get_last_error());
        exit(5);
    }
    chorus_unique_id_t id;
    size_t got = 0;
    while (got < sizeof id) {
        ssize_t n = read(idfd, (char *)&id + got, sizeof id - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            exit(3); /* the scenario gave up */
        got += (size_t)n;
    }
    close(idfd);
    struct rank_ctx c;
    memset(&c, 0, sizeof c);
    c.rank = rank;
    c.nranks = sc->nranks;
    c.sc = sc;
    c.chunk = tun->NET_CHUNK < TCP_MIN_CHUNK   ? TCP_MIN_CHUNK
              : tun->NET_CHUNK > TCP_MAX_CHUNK ? TCP_MAX_CHUNK
                                               : tun->NET_CHUNK;
    int rc = 1;
    if (chorus_bootstrap_init(&c.bs, &id, rank, sc->nranks, RANK_TIMEOUT_MS) != CHORUS_SUCCESS)
        fprintf(stderr, "FAIL %s bootstrap: %s\n", where, chorus_get_last_error());
    else
        rc = sc->body(&c);
    chorus_bootstrap_destroy(c.bs);
    if (rc == 0)
        report_checks(checks);
    else
        fprintf(stderr, "FAIL %s failed\n", where);
    fflush(stderr);
    exit(rc);
}

/* Waits for pid until end_ms; kills it (SIGKILL) when it outlives that.
 * Returns its wait status, or -1 when it had to be killed. */
static int reap_by(pid_t pid, int64_t end_ms, const char *what)
{
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ms() > end_ms) {
            fprintf(stderr, "FAIL %s (pid %d) hung; killing it\n", what, (int)pid);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        sleep_ms(5);
    }
}

/* The scenario process: forks the ranks, starts the root, hands out the id. */
static int scenario_main(const struct scenario *sc)
{
    pid_t pids[MAX_RANKS];
    int idw[MAX_RANKS];
    for (int r = 0; r < sc->nranks; r++) {
        int p[2];
        pids[r] = -1;
        idw[r] = -1;
        if (pipe2(p, O_CLOEXEC) != 0) {
            perror("pipe");
            continue;
        }
        fflush(NULL);
        pids[r] = fork();
        if (pids[r] == 0) {
            close(p[1]);
            for (int k = 0; k < r; k++)
                if (idw[k] >= 0)
                    close(idw[k]);
            rank_main(sc, r, p[0]);
        }
        close(p[0]);
        idw[r] = p[1];
        if (pids[r] < 0)
            perror("fork");
    }
    chorus_unique_id_t id;
    chorus_result_t res = chorus_get_unique_id(&id);
    if (res != CHORUS_SUCCESS)
        fprintf(stderr, "FAIL [%s] chorus_get_unique_id: %s\n", sc->name,
                chorus_get_last_error());
    for (int r = 0; r < sc->nranks; r++) {
        if (res == CHORUS_SUCCESS && write(idw[r], &id, sizeof id) != (ssize_t)sizeof id)
            perror("write id");
        close(idw[r]);
    }
    int failed = res != CHORUS_SUCCESS, ok = 0;
    int64_t end = now_ms() + SCENARIO_LIMIT_MS - 5000;
    for (int r = 0; r < sc->nranks; r++) {
        char what[96];
        snprintf(what, sizeof what, "[%s] rank %d", sc->name, r);
        int st = pids[r] > 0 ? reap_by(pids[r], end, what) : -1;
        int want_kill = r == sc->victim;
        int good = st != -1 && (want_kill ? WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL
                                          : WIFEXITED(st) && WEXITSTATUS(st) == 0);
        if (!good && st != -1)
            fprintf(stderr, "FAIL %s %s %d\n", what,
                    WIFSIGNALED(st) ? "killed by signal" : "exited with",
                    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        ok += good;
        failed |= !good;
    }
    report_checks(ok);
    return failed;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    /* Loopback only; keep the expected failures' log lines out of the way. */
    setenv("CHORUS_SOCKET_IFNAME", "lo", 1);
    setenv("CHORUS_LOG_LEVEL", "none", 0);
    int rp[2];
    if (pipe2(rp, O_CLOEXEC) != 0) {
        perror("pipe");
        return 1;
    }
    results_w = rp[1];
    /* This process never calls into Chorus: every scenario starts afresh. */
    int failed = 0, nsc = (int)(sizeof scenarios / sizeof scenarios[0]);
    int64_t start = now_ms();
    for (int i = 0; i < nsc; i++) {
        const struct scenario *sc = &scenarios[i];
        int64_t t0 = now_ms();
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            setpgid(0, 0);
            close(rp[0]);
            exit(scenario_main(sc));
        }
        if (pid < 0) {
            perror("fork");
            failed++;
            continue;
        }
        setpgid(pid, pid);
        int st = reap_by(pid, now_ms() + SCENARIO_LIMIT_MS, sc->name);
        kill(-pid, SIGKILL); /* whatever it left behind */
        int good = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
        failed += !good;
        checks++;
        printf("  %-4s %-68s %6.1f s\n", good ? "ok" : "FAIL", sc->name,
               (double)(now_ms() - t0) / 1000.0);
        fflush(stdout);
    }
    close(rp[1]);
    int n;
    while (read(rp[0], &n, sizeof n) == (ssize_t)sizeof n)
        checks += n;
    close(rp[0]);
    if (failed) {
        printf("test_tcp: %d of %d scenarios failed (%d checks passed) in %.1f s\n", failed, nsc,
               checks, (double)(now_ms() - start) / 1000.0);
        return 1;
    }
    printf("test_tcp: %d checks passed in %.1f s\n", checks, (double)(now_ms() - start) / 1000.0);
    return 0;
}
