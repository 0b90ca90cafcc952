/* test_rdma.c - the RDMA transport with real processes on a real (or
 * soft-RoCE) device.
 *
 * Built like test_tcp: every scenario runs in a process of its own (so each
 * can set its own CHORUS_RDMA_* variables, which are read once per process):
 * it forks its ranks first (they wait on a pipe for the unique id), then
 * starts the bootstrap root and hands the id out. Each rank joins the
 * bootstrap, creates its transport over the bootstrap's allgather and runs
 * the scenario's body. Ranks have an alarm() as a safety net; the top process
 * kills a scenario's whole process group when it outlives its bound.
 *
 * Devices: with CHORUS_RDMA_DEVICES set (tests/rdma-vm sets "rxe0,rxe1"),
 * rank r uses device r % n through CHORUS_RDMA_HCA, so with two devices
 * neighbouring ranks talk across them. A CHORUS_RDMA_HCA set by the user
 * wins. Without a usable device the test prints SKIP and exits 77; the
 * device check runs in a child, since verbs state must not cross a fork.
 *
 * Usage: test_rdma [--quick]   (--quick: smaller messages)
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
#include "plan.h"
#include "plan_exec.h"
#include "rdma/rdma_impl.h"
#include "socket.h"
#include "transport.h"
#include "tunables.h"

#define MAX_RANKS 4
#define RANK_TIMEOUT_MS 20000
#define DRIVE_LIMIT_MS 60000
#define CHILD_ALARM_S 100
#define SCENARIO_LIMIT_MS 120000
#define MIB ((size_t)1 << 20)
#define KIB ((size_t)1 << 10)

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

static struct rdma_transport *impl(struct transport *t) { return (struct rdma_transport *)t; }

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
    char device[64]; /* the device this rank was bound to ("" if none) */
    struct chorus_bootstrap *bs;
    struct transport *t;
    const struct scenario *sc;
    size_t chunk, eager; /* as the transport settled them with a peer */
    int strays_sent, strays_refused; /* rank 0 of the stray scenario */
    char stray_note[200];
};

typedef int (*body_fn)(struct rank_ctx *c);

struct scenario {
    const char *name;
    int nranks;
    const char *qps[MAX_RANKS]; /* CHORUS_RDMA_QPS_PER_PEER per rank; NULL: default */
    const char *chunk;          /* CHORUS_RDMA_CHUNK; NULL: default */
    const char *eager;          /* CHORUS_RDMA_EAGER; NULL: default */
    const char *mr_cache;       /* CHORUS_RDMA_MR_CACHE; NULL: default */
    body_fn body;
    int victim; /* rank that kills itself; -1: none */
    int strays; /* rank 0 sends stray rdma_cm connections during setup */
    const char *env[MAX_RANKS]; /* one more "NAME=VALUE" per rank; NULL: none */
};

static void send_strays(struct rank_ctx *c, const struct rdma_card *cards);

static chorus_result_t bs_allgather(void *ctx, const void *mine, void *all, size_t size)
{
    struct rank_ctx *c = (struct rank_ctx *)ctx;
    chorus_result_t res = chorus_bootstrap_allgather(c->bs, mine, all, size);
    /* Right after the exchange, before rank 0 connects for real: the others
     * are listening and must refuse strays. */
    if (res == CHORUS_SUCCESS && c->sc->strays && c->rank == 0 &&
        size == sizeof(struct rdma_card))
        send_strays(c, (const struct rdma_card *)all);
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
    chorus_result_t res = rdma_transport_create(&c->t, &setup);
    if (res == CHORUS_SUCCESS) {
        struct rdma_transport *r = impl(c->t);
        for (int q = 0; q < c->nranks; q++)
            if (r->peers[q]) {
                c->chunk = r->peers[q]->chunk;
                c->eager = r->peers[q]->eager;
                break;
            }
    }
    return res;
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
    else if (!j->x.is_send && d > j->seen_done &&
             pat_byte(j->seed, d - 1) != ((uint8_t *)j->x.buf)[d - 1])
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
 * eager limit and the piece size, then a large one, checked byte for byte. */
static int exchange_round(struct rank_ctx *c, int round, int with_big)
{
    struct transport *t = c->t;
    size_t ch = c->chunk, eg = c->eager;
    size_t big = quick ? 4 * MIB : 16 * MIB;
    const size_t sizes[] = {0, 1, 7, eg - 1, eg, eg + 1, ch - 1, ch + 1, 5 * ch + 3, big};
    enum { NSIZES = sizeof sizes / sizeof sizes[0] };
    int nm = with_big ? NSIZES : NSIZES - 1, np = c->nranks - 1;
    size_t njobs = (size_t)nm * (size_t)np * 2;
    struct job *jobs = calloc(njobs, sizeof *jobs);
    uint8_t *sendbuf[NSIZES];
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
    /* librdmacm opens every device once per process and keeps it: count
     * descriptors after that, around the transport's own. */
    char why[256];
    CCHECK(rdma_transport_available(why, sizeof why), "no device in a rank: %s", why);
    int fds = count_fds();
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
    struct transport *t = c->t;
    CCHECK(!strcmp(t->ops->name, "rdma"), "ops name '%s'", t->ops->name);
    CCHECK(t->blame == -1, "nobody is blamed yet (%d)", t->blame);
    if (c->device[0])
        CCHECK(!strncmp(impl(t)->dev.name, c->device, strlen(c->device)) &&
                   impl(t)->dev.name[strlen(c->device)] == ':',
               "bound to %s, the transport uses %s", c->device, impl(t)->dev.name);
    if (c->rank == 0)
        fprintf(stderr, "  [%s: rank 0 on %s, %s]\n", c->sc->name, impl(t)->dev.name,
                t->ops->peer_name(t, 0));
    for (int q = 0; q < c->nranks; q++) {
        char want[32];
        snprintf(want, sizeof want, "rank %d (", q);
        CCHECK(!strncmp(t->ops->peer_name(t, q), want, strlen(want)), "peer_name(%d) = '%s'",
               q, t->ops->peer_name(t, q));
    }
    CCHECK(!strcmp(t->ops->peer_name(t, 99), "rank 99"), "peer_name(99) = '%s'",
           t->ops->peer_name(t, 99));
    for (int round = 0; round < 2; round++)
        if (exchange_round(c, round, round == 1))
            return 1;
    CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
    t->ops->destroy(t);
    CCHECK(count_fds() == fds, "%d fds before create, %d after destroy", fds, count_fds());
    /* Everything came back: a second transport works the same. */
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "second create");
    if (exchange_round(c, 2, 0))
        return 1;
    CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
    c->t->ops->destroy(c->t);
    CCHECK(count_fds() == fds, "%d fds before create, %d after the second destroy", fds,
           count_fds());
    return 0;
}

/* Many back-to-back messages on every pair, eager and rendezvous mixed, the
 * receives posted late and a few at a time: each message must arrive whole
 * and in order, and the credits must keep flowing (far more messages than
 * eager slots or receive credits). */
static size_t order_size(int m, size_t chunk, size_t eager)
{
    if (m % 97 == 13)
        return 3 * chunk + (size_t)m;
    if (m % 7 == 3)
        return eager + 1 + (size_t)m;
    return (size_t)(m * 37) % 301;
}

struct order_peer {
    int q;
    uint8_t *sbuf, *rbuf;
    size_t *off;        /* [M] message offsets (the same on both sides) */
    struct job *sends;  /* [M] */
    struct job *recvs;  /* [M] */
    int posted, checked, sends_done;
};

static int body_order(struct rank_ctx *c)
{
    const int M = quick ? 300 : 1500, W = 8;
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
            p->off[m + 1] = p->off[m] + order_size(m, c->chunk, c->eager);
        p->sbuf = malloc(p->off[M] + 1);
        p->rbuf = malloc(p->off[M] + 1);
        CCHECK(p->sbuf && p->rbuf, "out of memory");
        for (int m = 0; m < M; m++) {
            size_t n = order_size(m, c->chunk, c->eager);
            fill(p->sbuf + p->off[m], n, seed_of(c->rank, q, m));
            job_set(&p->sends[m], q, 1, p->sbuf + p->off[m], n, 0);
            job_set(&p->recvs[m], q, 0, p->rbuf + p->off[m], n, seed_of(q, c->rank, m));
        }
        CCHECK(post_all(t, p->sends, (size_t)M) == CHORUS_SUCCESS, "post sends");
    }
    /* Let the eager sends fill the slots before any receive exists. */
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
            /* Sends complete out of order (eager ones at once, rendezvous
             * ones when their writes do): look at every one. */
            while (p->sends_done < M && p->sends[p->sends_done].x.complete)
                p->sends_done++;
            busy |= p->checked < M || p->sends_done < M;
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
    CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
    t->ops->destroy(t);
    return 0;
}

/* Sizes that disagree, in each combination of eager and rendezvous (eager
 * limit 8 KiB): rank 0 sends, rank 1 receives; both must fail with
 * CHORUS_INVALID_USAGE naming the other and both sizes. A good message goes
 * first each time. */
static int body_mismatch(struct rank_ctx *c)
{
    static const struct {
        size_t sent, posted;
        const char *what;
    } cases[] = {
        {4096, 8192, "eager into a smaller eager receive"},
        {100000, 4096, "rendezvous into an eager-sized receive"},
        {200000, 300000, "rendezvous into a larger rendezvous receive"},
        {100, 100000, "eager into a rendezvous-sized receive"},
    };
    static uint8_t good[100], buf[300000];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char w[160];
        snprintf(w, sizeof w, "%s (%s)", where, cases[i].what);
        const char *saved = where;
        where = w;
        CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
        struct transport *t = c->t;
        struct job j[2];
        char text[96];
        chorus_result_t res;
        if (c->rank == 0) {
            fill(good, sizeof good, seed_of(0, 1, (int)i));
            job_set(&j[0], 1, 1, good, sizeof good, 0);
            job_set(&j[1], 1, 1, buf, cases[i].sent, 0);
            CCHECK(post_all(t, j, 2) == CHORUS_SUCCESS, "post");
            res = drive(t, j, 2, DRIVE_LIMIT_MS);
            if (res == CHORUS_SUCCESS) /* an eager send completes before the check */
                res = wait_error(t, 10000);
            CCHECK(res == CHORUS_INVALID_USAGE, "sender got %d", res);
            snprintf(text, sizeof text, "posted a %zu-byte receive where this rank sent ",
                     cases[i].posted);
            CCHECK(has("rank 1 (") && has(text), "the text names the peer and the sizes");
            CCHECK(t->blame == 1 && t->blame_code == CHORUS_INVALID_USAGE, "blame %d code %d",
                   t->blame, t->blame_code);
        } else {
            job_set(&j[0], 0, 0, good, sizeof good, seed_of(0, 1, (int)i));
            CCHECK(post_all(t, j, 1) == CHORUS_SUCCESS, "post");
            CCHECK(drive(t, j, 1, DRIVE_LIMIT_MS) == CHORUS_SUCCESS &&
                       first_bad(good, sizeof good, j[0].seed) == SIZE_MAX,
                   "the matching message before the bad one arrives");
            job_set(&j[1], 0, 0, buf, cases[i].posted, 0);
            /* The post itself fails if what the sender said came first. */
            res = post_all(t, &j[1], 1);
            if (res == CHORUS_SUCCESS)
                res = drive(t, &j[1], 1, DRIVE_LIMIT_MS);
            CCHECK(res == CHORUS_INVALID_USAGE, "%zu-byte receive of %zu bytes returned %d",
                   cases[i].posted, cases[i].sent, res);
            snprintf(text, sizeof text, "sent %zu bytes where this rank posted a %zu-byte receive",
                     cases[i].sent, cases[i].posted);
            CCHECK(has("rank 0 (") && has(text), "the text names the peer and both sizes");
            CCHECK(t->blame == 0 && t->blame_code == CHORUS_INVALID_USAGE, "blame %d code %d",
                   t->blame, t->blame_code);
            CCHECK(t->ops->progress(t, 0) == CHORUS_INVALID_USAGE && has(text),
                   "the transport stays broken, with the same text");
            CCHECK(t->ops->post(t, &j[0].x) == CHORUS_INVALID_USAGE, "post after the error");
        }
        CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
        t->ops->destroy(t);
        where = saved;
    }
    return 0;
}

/* The victim kills itself in the middle of receiving large messages from
 * everyone; the survivors also wait for a message it never sends, so no
 * survivor can finish before the death. The survivors move nothing among
 * themselves. */
static int body_kill(struct rank_ctx *c)
{
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
    struct transport *t = c->t;
    size_t big = quick ? 8 * MIB : 32 * MIB;
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
        int64_t end = now_ms() + 10000;
        for (;;) {
            CCHECK(t->ops->progress(t, 1) == CHORUS_SUCCESS, "victim's progress");
            int far = now_ms() > end;
            for (size_t i = 0; i < k; i++)
                far |= jobs[i].x.done >= 2 * MIB;
            if (far)
                kill(getpid(), SIGKILL); /* the transport is left as a crash leaves it */
        }
    }
    job_set(&jobs[k++], victim, 1, sbuf, big, 0);
    job_set(&jobs[k++], victim, 0, rbuf, big, 0);
    CCHECK(post_all(t, jobs, k) == CHORUS_SUCCESS, "post");
    char name[16];
    snprintf(name, sizeof name, "rank %d", victim);
    int64_t t0 = now_ms();
    chorus_result_t res = drive(t, jobs, k, 30000);
    int64_t took = now_ms() - t0;
    CCHECK(res == CHORUS_REMOTE_ERROR, "progress returned %d after the peer died", res);
    CCHECK(has(name), "the error names %s", name);
    CCHECK(t->blame == victim && t->blame_code == CHORUS_REMOTE_ERROR, "blame %d code %d",
           t->blame, t->blame_code);
    CCHECK(took < 20000, "the death was noticed after %lld ms", (long long)took);
    CCHECK(t->ops->progress(t, 0) == CHORUS_REMOTE_ERROR && has(name),
           "the transport stays broken");
    t->ops->destroy(t);
    free(sbuf);
    free(rbuf);
    free(jobs);
    return 0;
}

/* Rank 0 forces its queue pair to rank 1 into the error state while it
 * sends to rank 1 and waits for a message rank 1 sends only afterwards:
 * both sides fail naming the other, nobody hangs. */
static int body_qp_error(struct rank_ctx *c)
{
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
    struct transport *t = c->t;
    size_t big = quick ? 8 * MIB : 16 * MIB;
    int other = 1 - c->rank;
    uint8_t *sbuf = calloc(1, big), *rbuf = malloc(big);
    CCHECK(sbuf && rbuf, "out of memory");
    struct job j[2];
    job_set(&j[0], other, 0, rbuf, big, 0);
    job_set(&j[1], other, 1, sbuf, big, 0);
    int64_t t0 = now_ms();
    chorus_result_t res;
    if (c->rank == 0) {
        CCHECK(post_all(t, j, 2) == CHORUS_SUCCESS, "post");
        while (j[1].x.done < MIB && !j[1].x.complete && now_ms() - t0 < 20000)
            CCHECK(t->ops->progress(t, 1) == CHORUS_SUCCESS, "progress before the error");
        struct ibv_qp_attr a;
        memset(&a, 0, sizeof a);
        a.qp_state = IBV_QPS_ERR;
        CCHECK(ibv_modify_qp(impl(t)->peers[1]->conns[0].qp, &a, IBV_QP_STATE) == 0,
               "moving the QP to the error state");
        res = drive(t, j, 2, 30000);
    } else {
        /* The receive may still complete (if the data was all there); the
         * send after it cannot. */
        CCHECK(post_all(t, j, 1) == CHORUS_SUCCESS, "post");
        res = drive(t, j, 1, 30000);
        if (res == CHORUS_SUCCESS)
            res = post_all(t, &j[1], 1);
        if (res == CHORUS_SUCCESS)
            res = drive(t, &j[1], 1, 30000);
    }
    int64_t took = now_ms() - t0;
    char name[32];
    snprintf(name, sizeof name, "rank %d (", other);
    CCHECK(res == CHORUS_REMOTE_ERROR, "progress returned %d", res);
    CCHECK(has(name) && has("RDMA connection to"), "the error names %s", name);
    CCHECK(t->blame == other, "blame %d", t->blame);
    CCHECK(took < 25000, "the error came after %lld ms", (long long)took);
    t->ops->destroy(t); /* tells rank 1, if its own writes have not yet */
    free(sbuf);
    free(rbuf);
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
        CCHECK(has("rank 2 failed (timeout), reported by rank 1 ("),
               "the text names the blamed and the reporting rank");
        CCHECK(t->blame == 2 && t->blame_code == CHORUS_TIMEOUT, "blame %d code %d", t->blame,
               t->blame_code);
    } else {
        res = drive(t, &j, 1, 10000);
        CCHECK(res == CHORUS_REMOTE_ERROR, "waiting rank got %d", res);
        CCHECK(has("rank 1 (") && has("gave up waiting for this rank (timeout)"),
               "the blamed rank, waiting for the reporter, hears who gave up on it");
    }
    CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
    t->ops->destroy(t);
    return 0;
}

/* The registration cache with CHORUS_RDMA_MR_CACHE=1M and 512 KiB pieces:
 * distinct buffers are registered and evicted to stay within the bound,
 * a reused buffer hits, explicit registrations stay until deregistered and
 * then leave no registration of their range behind. */
static int cache_has(struct rdma_mr_cache *mc, const void *buf, size_t len)
{
    uintptr_t a = (uintptr_t)buf, b = a + len;
    for (struct rdma_mr *m = mc->head; m; m = m->next)
        if (m->start < b && a < m->end)
            return 1;
    return 0;
}

static int transfer(struct rank_ctx *c, void *buf, size_t bytes, int msg)
{
    struct job j;
    int other = 1 - c->rank;
    if (c->rank == 0) {
        fill(buf, bytes, seed_of(0, 1, msg));
        job_set(&j, other, 1, buf, bytes, 0);
    } else {
        job_set(&j, other, 0, buf, bytes, seed_of(0, 1, msg));
    }
    CCHECK(post_all(c->t, &j, 1) == CHORUS_SUCCESS, "post");
    CCHECK(drive(c->t, &j, 1, DRIVE_LIMIT_MS) == CHORUS_SUCCESS, "transfer %d", msg);
    CCHECK(c->rank == 0 || first_bad(buf, bytes, j.seed) == SIZE_MAX, "data of transfer %d", msg);
    return 0;
}

static int body_cache(struct rank_ctx *c)
{
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
    struct transport *t = c->t;
    struct rdma_mr_cache *mc = &impl(t)->mrc;
    CCHECK(mc->cap == MIB, "cache bound %zu", mc->cap);
    const size_t n = 600 * KIB;
    enum { NBUF = 6 };
    uint8_t *bufs[NBUF];
    for (int i = 0; i < NBUF; i++) {
        bufs[i] = malloc(n);
        CCHECK(bufs[i], "out of memory");
        CCHECK(!transfer(c, bufs[i], n, i), "distinct buffer %d", i);
        CCHECK(mc->bytes <= mc->cap, "%zu bytes registered after transfer %d (bound %zu)",
               mc->bytes, i, mc->cap);
    }
    CCHECK(mc->misses >= NBUF && mc->evictions >= NBUF - 1,
           "%llu misses, %llu evictions for %d distinct buffers",
           (unsigned long long)mc->misses, (unsigned long long)mc->evictions, NBUF);
    uint64_t misses = mc->misses, hits = mc->hits;
    for (int k = 0; k < 4; k++)
        CCHECK(!transfer(c, bufs[NBUF - 1], n, 10 + k), "reused buffer");
    CCHECK(mc->misses == misses && mc->hits >= hits + 4,
           "reuse: misses %llu -> %llu, hits %llu -> %llu", (unsigned long long)misses,
           (unsigned long long)mc->misses, (unsigned long long)hits,
           (unsigned long long)mc->hits);
    CCHECK(cache_has(mc, bufs[NBUF - 1], n), "the reused buffer is cached");
    rdma_forget(t, bufs[NBUF - 1] + 4096, 10); /* any overlap drops it */
    CCHECK(!cache_has(mc, bufs[NBUF - 1], n), "rdma_forget left a registration");
    /* Explicit registration beyond the bound: kept, and used. */
    size_t big = 3 * MIB;
    uint8_t *reg = malloc(big);
    void *h = NULL;
    CCHECK(reg, "out of memory");
    CCHECK(rdma_register(t, reg, big, &h) == CHORUS_SUCCESS && h, "rdma_register");
    misses = mc->misses;
    for (int k = 0; k < 2; k++)
        CCHECK(!transfer(c, reg, big, 20 + k), "registered buffer");
    CCHECK(mc->misses == misses, "a registered buffer missed (%llu -> %llu)",
           (unsigned long long)misses, (unsigned long long)mc->misses);
    CCHECK(cache_has(mc, reg, big), "the registration is still there");
    void *bogus = &misses;
    CCHECK(rdma_deregister(t, bogus) == CHORUS_INVALID_ARGUMENT, "deregistering a bad handle");
    CCHECK(rdma_deregister(t, h) == CHORUS_SUCCESS, "rdma_deregister");
    CCHECK(!cache_has(mc, reg, big), "a registration of the range outlived deregistration");
    CCHECK(mc->bytes <= mc->cap, "%zu bytes registered after deregistration", mc->bytes);
    CCHECK(!transfer(c, reg, big, 30), "the buffer still works unregistered");
    CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
    t->ops->destroy(t);
    for (int i = 0; i < NBUF; i++)
        free(bufs[i]);
    free(reg);
    return 0;
}

/* CHORUS_RDMA_MR_CACHE=0 (the default): nothing stays registered after a
 * transfer. */
static int body_no_cache(struct rank_ctx *c)
{
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
    struct rdma_mr_cache *mc = &impl(c->t)->mrc;
    uint8_t *buf = malloc(MIB);
    CCHECK(buf, "out of memory");
    for (int k = 0; k < 3; k++) {
        CCHECK(!transfer(c, buf, MIB, k), "transfer");
        CCHECK(mc->bytes == 0 && mc->count == 0, "%zu bytes in %zu registrations kept",
               mc->bytes, mc->count);
    }
    CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
    c->t->ops->destroy(c->t);
    free(buf);
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
    char why[256];
    CCHECK(rdma_transport_available(why, sizeof why), "no device in a rank: %s", why);
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
        res = open_transport(c, need, 1500, NULL);
        int64_t took = now_ms() - t0;
        CCHECK(res == CHORUS_TIMEOUT && c->t == NULL, "create returned %d", res);
        CCHECK(has("rank 0 (") && has("missing"), "the timeout names rank 0");
        CCHECK(took >= 1400 && took < 10000, "timed out after %lld ms", (long long)took);
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

/* Device choices that cannot work fail at once, saying why (each rank
 * fails before the setup exchange, so nobody waits): rank 0 names no
 * existing device, rank 1 a GID index without an address. */
static int body_bad_device(struct rank_ctx *c)
{
    char why[256];
    CCHECK(!rdma_transport_available(why, sizeof why), "a device was found: %s", why);
    int fds = count_fds(); /* librdmacm has opened the devices now */
    const char *want = c->rank == 0 ? "no RDMA device matches CHORUS_RDMA_HCA='=nosuchdev'"
                                    : "has no IP address in GID 999";
    CCHECK(strstr(why, want), "availability says '%s'", why);
    CCHECK(open_transport(c, NULL, 5000, NULL) == CHORUS_SYSTEM_ERROR && c->t == NULL,
           "create with a bad device choice");
    CCHECK(has(want) && has("no usable RDMA device"), "the error says why");
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
    CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
    t->ops->destroy(t);
    return 0;
}

/* The plans of the network collectives, run by the real executor over RDMA:
 * allreduce (ring, recursive halving/doubling, trees), allgather (ring,
 * Bruck) and alltoall (pairwise), at sizes from one element to several
 * pieces, checked exactly (small integers in floats sum exactly). */
static chorus_result_t run_plan(struct rank_ctx *c, coll_kind_t kind, algo_t algo, size_t count,
                                chorus_datatype_t type, const void *sb, void *rb,
                                struct plan_exec_cache *cache)
{
    struct plan p;
    memset(&p, 0, sizeof p);
    struct plan_args a = {.kind = kind, .nranks = c->nranks, .rank = c->rank, .count = count,
                          .esize = 4};
    chorus_result_t res = plan_build(&p, &a, algo);
    if (res != CHORUS_SUCCESS)
        return res;
    int ranks[MAX_RANKS];
    for (int q = 0; q < c->nranks; q++)
        ranks[q] = q;
    struct chorus_wait_policy pol;
    chorus_wait_policy_init(&pol, 0, DRIVE_LIMIT_MS);
    struct plan_exec x = {.net = c->t, .group_ranks = ranks, .type = type, .op = CHORUS_SUM,
                          .avg_div = 1, .sendbuf = sb, .recvbuf = rb, .policy = &pol,
                          .label = where, .cache = cache};
    res = plan_execute(&x, &p);
    plan_free(&p);
    return res;
}

static int body_plans(struct rank_ctx *c)
{
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS, "create");
    int n = c->nranks, me = c->rank;
    const size_t counts[] = {1, 1000, quick ? 100000 : 400000};
    struct plan_exec_cache cache;
    memset(&cache, 0, sizeof cache);
    size_t maxc = counts[2] * (size_t)n;
    float *fs = malloc(maxc * 4), *fr = malloc(maxc * 4);
    uint32_t *us = malloc(maxc * 4), *ur = malloc(maxc * 4);
    CCHECK(fs && fr && us && ur, "out of memory");
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        size_t cnt = counts[k];
        static const algo_t ar_algos[] = {ALGO_RING, ALGO_RHD, ALGO_TREE};
        for (size_t a = 0; a < 3; a++) {
            for (size_t i = 0; i < cnt; i++)
                fs[i] = (float)((me + 1) * (int)(i % 100 + 1));
            memset(fr, 0, cnt * 4);
            chorus_result_t res = run_plan(c, COLL_ALLREDUCE, ar_algos[a], cnt, CHORUS_FLOAT32,
                                           fs, fr, &cache);
            CCHECK(res == CHORUS_SUCCESS, "allreduce %s of %zu floats: %d",
                   algo_name(ar_algos[a]), cnt, res);
            float sum = (float)(n * (n + 1) / 2);
            size_t bad = 0;
            while (bad < cnt && fr[bad] == sum * (float)(bad % 100 + 1))
                bad++;
            CCHECK(bad == cnt, "allreduce %s of %zu: [%zu] = %g", algo_name(ar_algos[a]), cnt,
                   bad, bad < cnt ? (double)fr[bad] : 0.0);
        }
        static const algo_t ag_algos[] = {ALGO_RING, ALGO_BRUCK};
        for (size_t a = 0; a < 2; a++) {
            for (size_t i = 0; i < cnt; i++)
                us[i] = (uint32_t)me << 24 | (uint32_t)(i & 0xffffff);
            memset(ur, 0, cnt * (size_t)n * 4);
            chorus_result_t res = run_plan(c, COLL_ALLGATHER, ag_algos[a], cnt, CHORUS_UINT32,
                                           us, ur, &cache);
            CCHECK(res == CHORUS_SUCCESS, "allgather %s of %zu: %d", algo_name(ag_algos[a]),
                   cnt, res);
            for (int q = 0; q < n; q++) {
                size_t i = 0;
                while (i < cnt && ur[(size_t)q * cnt + i] ==
                                      ((uint32_t)q << 24 | (uint32_t)(i & 0xffffff)))
                    i++;
                CCHECK(i == cnt, "allgather %s of %zu: block %d [%zu]", algo_name(ag_algos[a]),
                       cnt, q, i);
            }
        }
        for (int q = 0; q < n; q++)
            for (size_t i = 0; i < cnt; i++)
                us[(size_t)q * cnt + i] =
                    (uint32_t)me << 28 | (uint32_t)q << 24 | (uint32_t)(i & 0xffffff);
        memset(ur, 0, cnt * (size_t)n * 4);
        chorus_result_t res = run_plan(c, COLL_ALLTOALL, ALGO_PAIRWISE, cnt, CHORUS_UINT32, us, ur,
                                       &cache);
        CCHECK(res == CHORUS_SUCCESS, "alltoall pairwise of %zu: %d", cnt, res);
        for (int q = 0; q < n; q++) {
            size_t i = 0;
            while (i < cnt && ur[(size_t)q * cnt + i] == ((uint32_t)q << 28 | (uint32_t)me << 24 |
                                                          (uint32_t)(i & 0xffffff)))
                i++;
            CCHECK(i == cnt, "alltoall of %zu: block %d [%zu]", cnt, q, i);
        }
    }
    plan_exec_cache_free(&cache);
    free(fs);
    free(fr);
    free(us);
    free(ur);
    CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
    c->t->ops->destroy(c->t);
    return 0;
}

/* Stray rdma_cm clients with wrong private data knock at the listening
 * ranks during setup: each must be rejected with our reason, and setup
 * must still complete with the real connections. */
static int wait_cm(struct rdma_event_channel *ch, enum rdma_cm_event_type *type, uint8_t *pdata,
                   size_t cap)
{
    struct pollfd pf = {ch->fd, POLLIN, 0};
    if (poll(&pf, 1, 5000) != 1)
        return -1;
    struct rdma_cm_event *ev;
    if (rdma_get_cm_event(ch, &ev) != 0)
        return -1;
    *type = ev->event;
    if (pdata && ev->param.conn.private_data)
        memcpy(pdata, ev->param.conn.private_data,
               ev->param.conn.private_data_len < cap ? ev->param.conn.private_data_len : cap);
    rdma_ack_cm_event(ev);
    return 0;
}

/* Connects to dst with private data; the reason of our rejection, or -1. */
static int stray_connect(const struct chorus_sockaddr *src, const struct chorus_sockaddr *dst,
                         const void *pdata, uint8_t plen)
{
    struct rdma_event_channel *ch = rdma_create_event_channel();
    struct rdma_cm_id *id = NULL;
    enum rdma_cm_event_type type;
    int reason = -1;
    struct chorus_sockaddr a = *src, b = *dst;
    if (!ch || rdma_create_id(ch, &id, NULL, RDMA_PS_TCP) != 0)
        goto out;
    if (rdma_resolve_addr(id, &a.u.sa, &b.u.sa, 2000) != 0 || wait_cm(ch, &type, NULL, 0) ||
        type != RDMA_CM_EVENT_ADDR_RESOLVED)
        goto out;
    if (rdma_resolve_route(id, 2000) != 0 || wait_cm(ch, &type, NULL, 0) ||
        type != RDMA_CM_EVENT_ROUTE_RESOLVED)
        goto out;
    struct ibv_qp_init_attr qa;
    memset(&qa, 0, sizeof qa);
    qa.qp_type = IBV_QPT_RC;
    qa.cap.max_send_wr = qa.cap.max_recv_wr = 1;
    qa.cap.max_send_sge = qa.cap.max_recv_sge = 1;
    if (rdma_create_qp(id, NULL, &qa) != 0) /* librdmacm's own PD and CQs */
        goto out;
    struct rdma_conn_param cp;
    memset(&cp, 0, sizeof cp);
    cp.private_data = pdata;
    cp.private_data_len = plen;
    cp.retry_count = 1;
    struct rdma_reject rj;
    memset(&rj, 0, sizeof rj);
    if (rdma_connect(id, &cp) == 0 && wait_cm(ch, &type, (uint8_t *)&rj, sizeof rj) == 0 &&
        type == RDMA_CM_EVENT_REJECTED && rj.magic == RDMA_REJECT_MAGIC)
        reason = (int)rj.reason;
out:
    if (id) {
        if (id->qp)
            rdma_destroy_qp(id);
        rdma_destroy_id(id);
    }
    if (ch)
        rdma_destroy_event_channel(ch);
    return reason;
}

static void send_strays(struct rank_ctx *c, const struct rdma_card *cards)
{
    struct chorus_sockaddr src = cards[0].addr;
    chorus_sockaddr_set_port(&src, 0);
    for (int r = 1; r < c->nranks; r++) {
        struct rdma_hello h[5];
        for (int i = 0; i < 5; i++) {
            memset(&h[i], 0, sizeof h[i]);
            h[i].magic = RDMA_HELLO_MAGIC;
            h[i].version = RDMA_VERSION;
            h[i].from = 0;
            h[i].to = (uint32_t)r;
            memcpy(h[i].token, cards[r].token, sizeof h[i].token);
        }
        h[0].token[3] ^= 1;             /* wrong token */
        h[1].to = (uint32_t)r + 7;      /* meant for another rank */
        h[2].from = 99;                 /* no such rank */
        h[3].qp = 50;                   /* no such queue pair */
        h[4].version = RDMA_VERSION + 1; /* another version */
        const struct {
            const void *p;
            uint8_t n;
            int want; /* the reason code of rdma_conn.c; 0: any */
        } tries[] = {
            {&h[0], sizeof h[0], 4}, {&h[1], sizeof h[1], 2}, {&h[2], sizeof h[2], 3},
            {&h[3], sizeof h[3], 5}, {&h[4], sizeof h[4], 1},
            {&h[0], 10, 0}, /* the CM pads it with zeros: refused, for whichever field */
        };
        for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
            int got = stray_connect(&src, &cards[r].addr, tries[i].p, tries[i].n);
            c->strays_sent++;
            if (got == tries[i].want || (tries[i].want == 0 && got > 0))
                c->strays_refused++;
            else
                snprintf(c->stray_note, sizeof c->stray_note,
                         "stray %zu to rank %d: reason %d, expected %d", i, r, got,
                         tries[i].want);
        }
    }
}

static int body_strays(struct rank_ctx *c)
{
    char why[256];
    CCHECK(rdma_transport_available(why, sizeof why), "no device in a rank: %s", why);
    int fds = count_fds();
    CCHECK(open_transport(c, NULL, RANK_TIMEOUT_MS, NULL) == CHORUS_SUCCESS,
           "create with strays about");
    CCHECK(c->rank != 0 || (c->strays_sent == 6 * (c->nranks - 1) &&
                            c->strays_refused == c->strays_sent),
           "%d strays sent, %d refused for the right reason (%s)", c->strays_sent,
           c->strays_refused, c->stray_note);
    if (exchange_round(c, 0, 0))
        return 1;
    CCHECK(chorus_bootstrap_barrier(c->bs) == CHORUS_SUCCESS, "barrier");
    c->t->ops->destroy(c->t);
    CCHECK(count_fds() == fds, "%d fds before create, %d after destroy", fds, count_fds());
    return 0;
}

/* ---- processes ------------------------------------------------------------------------ */

static const struct scenario scenarios[] = {
    {"exchange np=2, defaults", 2, {NULL}, NULL, NULL, NULL, body_exchange, -1, 0, {NULL}},
    {"exchange np=3, 2/2/3 QPs, 64 KiB pieces, 1 KiB eager", 3, {"2", "2", "3"}, "64K", "1K",
     NULL, body_exchange, -1, 0, {NULL}},
    {"order np=3, 2 QPs, 16 KiB pieces, 256 B eager", 3, {"2", "2", "2"}, "16K", "256", NULL,
     body_order, -1, 0, {NULL}},
    {"order np=2, 1 QP, 4 KiB pieces, defaults", 2, {NULL}, "4K", NULL, NULL, body_order, -1, 0,
     {NULL}},
    {"collective plans np=3, 64 KiB pieces", 3, {NULL}, "64K", NULL, NULL, body_plans, -1, 0,
     {NULL}},
    {"collective plans np=4, 2 QPs", 4, {"2", "2", "2", "2"}, NULL, NULL, NULL, body_plans, -1,
     0, {NULL}},
    {"size mismatch np=2", 2, {NULL}, NULL, NULL, NULL, body_mismatch, -1, 0, {NULL}},
    {"kill -9 mid-transfer np=3", 3, {"2", "2", "2"}, NULL, NULL, NULL, body_kill, 1, 0,
     {NULL}},
    {"QP forced into error np=2", 2, {NULL}, NULL, NULL, NULL, body_qp_error, -1, 0, {NULL}},
    {"fail() np=3", 3, {NULL}, NULL, NULL, NULL, body_fail, -1, 0, {NULL}},
    {"registration cache 1 MiB np=2", 2, {NULL}, NULL, NULL, "1M", body_cache, -1, 0, {NULL}},
    {"registration cache off (the default) np=2", 2, {NULL}, NULL, NULL, NULL, body_no_cache,
     -1, 0, {NULL}},
    {"stray rdma_cm clients during setup np=3", 3, {NULL}, NULL, NULL, NULL, body_strays, -1, 1,
     {NULL}},
    {"bad CHORUS_RDMA_HCA / CHORUS_RDMA_GID_INDEX np=2", 2, {NULL}, NULL, NULL, NULL,
     body_bad_device, -1, 0, {"CHORUS_RDMA_HCA==nosuchdev", "CHORUS_RDMA_GID_INDEX=999"}},
    {"setup timeout and abort np=3", 3, {NULL}, NULL, NULL, NULL, body_setup_failures, -1, 0,
     {NULL}},
    {"ring neighbours only np=4", 4, {NULL}, NULL, NULL, NULL, body_ring, -1, 0, {NULL}},
};


static void report_checks(int n)
{
    if (write(results_w, &n, sizeof n) != (ssize_t)sizeof n)
        perror("write check count");
}

/* Rank r on device r % n of CHORUS_RDMA_DEVICES, unless the user chose. */
static void bind_device(int rank, char *dev, size_t cap)
{
    const char *list = getenv("CHORUS_RDMA_DEVICES");
    dev[0] = '\0';
    if (!list || !*list || getenv("CHORUS_RDMA_HCA"))
        return;
    int n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    const char *p = list;
    for (int k = rank % n; k > 0; k--)
        p = strchr(p, ',') + 1;
    size_t len = strcspn(p, ",");
    if (len == 0 || len >= cap)
        return;
    memcpy(dev, p, len);
    dev[len] = '\0';
    char spec[80];
    snprintf(spec, sizeof spec, "=%s", dev);
    setenv("CHORUS_RDMA_HCA", spec, 1);
}

static void rank_main(const struct scenario *sc, int rank, int idfd)
{
    alarm(CHILD_ALARM_S);
    signal(SIGPIPE, SIG_DFL); /* the library must never raise it */
    char w[96];
    snprintf(w, sizeof w, "[%s] rank %d:", sc->name, rank);
    where = w;
    struct rank_ctx c;
    memset(&c, 0, sizeof c);
    bind_device(rank, c.device, sizeof c.device);
    if (sc->qps[rank])
        setenv("CHORUS_RDMA_QPS_PER_PEER", sc->qps[rank], 1);
    if (sc->chunk)
        setenv("CHORUS_RDMA_CHUNK", sc->chunk, 1);
    if (sc->eager)
        setenv("CHORUS_RDMA_EAGER", sc->eager, 1);
    if (sc->mr_cache)
        setenv("CHORUS_RDMA_MR_CACHE", sc->mr_cache, 1);
    if (sc->env[rank]) {
        char name[64];
        const char *eq = strchr(sc->env[rank], '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - sc->env[rank]), sc->env[rank]);
        setenv(name, eq + 1, 1);
    }
    if (chorus_tunables_load(NULL) != CHORUS_SUCCESS) {
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
    c.rank = rank;
    c.nranks = sc->nranks;
    c.sc = sc;
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

/* CHORUS_RDMA_HCA matching, which needs no device. */
static int unit_hca_match(void)
{
    static const struct {
        const char *spec, *name;
        int port, want;
    } cases[] = {
        {NULL, "mlx5_0", 1, 1},       {"", "mlx5_0", 1, 1},
        {"mlx5", "mlx5_0", 1, 1},     {"mlx5", "mlx5_1", 2, 1},
        {"mlx5", "rxe0", 1, 0},       {"=mlx5", "mlx5_0", 1, 0},
        {"=mlx5_0", "mlx5_0", 1, 1},  {"=mlx5_0", "mlx5_01", 1, 0},
        {"mlx5_0:1", "mlx5_0", 1, 1}, {"mlx5_0:1", "mlx5_0", 2, 0},
        {"^mlx5_0", "mlx5_0", 2, 0},  {"^mlx5_0", "mlx5_1", 1, 1},
        {"^mlx5_0:2", "mlx5_0", 1, 1}, {"^=rxe", "rxe0", 1, 1},
        {"^", "rxe0", 1, 1},          {"rxe0, rxe1:1", "rxe1", 1, 1},
        {"rxe0, rxe1:1", "rxe1", 2, 0}, {"mlx5_0:x", "mlx5_0", 1, 0},
        {":1", "mlx5_0", 1, 0},       {"a,,b", "b0", 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = rdma_hca_match(cases[i].spec, cases[i].name, cases[i].port);
        CCHECK(got == cases[i].want, "CHORUS_RDMA_HCA='%s' on %s:%d gave %d",
               cases[i].spec ? cases[i].spec : "(unset)", cases[i].name, cases[i].port, got);
    }
    return 0;
}

/* Whether this machine has a usable device, asked in a child: the verbs
 * state librdmacm builds must not be inherited by the ranks. */
static int device_present(char *why, size_t cap)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(why, cap, "pipe: %s", strerror(errno));
        return 0;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        char buf[256];
        int ok = rdma_transport_available(buf, sizeof buf);
        if (write(p[1], &ok, sizeof ok) < 0 || write(p[1], buf, strlen(buf) + 1) < 0)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    int ok = 0;
    size_t got = 0;
    snprintf(why, cap, "the device check failed");
    if (pid > 0 && read(p[0], &ok, sizeof ok) == (ssize_t)sizeof ok) {
        ssize_t n;
        while (got + 1 < cap && (n = read(p[0], why + got, cap - 1 - got)) > 0)
            got += (size_t)n;
        why[got] = '\0';
    }
    close(p[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return ok;
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
    /* The bootstrap over loopback; keep the expected failures' log lines out
     * of the way. */
    setenv("CHORUS_SOCKET_IFNAME", "lo", 1);
    setenv("CHORUS_LOG_LEVEL", "none", 0);
    where = "[unit]";
    if (unit_hca_match()) {
        printf("test_rdma: unit checks failed\n");
        return 1;
    }
    char why[256];
    if (!device_present(why, sizeof why)) {
        printf("test_rdma: SKIP (no RDMA device: %s)\n", why);
        return 77;
    }
    printf("test_rdma: device %s%s%s\n", why,
           getenv("CHORUS_RDMA_DEVICES") ? ", ranks spread over " : "",
           getenv("CHORUS_RDMA_DEVICES") ? getenv("CHORUS_RDMA_DEVICES") : "");
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
        printf("test_rdma: %d of %d scenarios failed (%d checks passed) in %.1f s\n", failed,
               nsc, checks, (double)(now_ms() - start) / 1000.0);
        return 1;
    }
    printf("test_rdma: %d checks passed in %.1f s\n", checks, (double)(now_ms() - start) / 1000.0);
    return 0;
}
