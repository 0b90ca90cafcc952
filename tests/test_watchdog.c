/*
 * test_watchdog.c - the straggler watchdog (CHORUS_WATCHDOG_MS, issue 7).
 *
 * Default mode (run with a small CHORUS_WATCHDOG_MS, e.g. 300; N >= 2, the
 * two-straggler cases need N >= 3):
 *   1. rank N-1 enters an allreduce late while the others wait in it
 *      (nonblocking form, polled): every waiting rank must see, while
 *      chorus_test says in progress, chorus_comm_get_stragglers give exactly
 *      {N-1} with the right collective number and get_async_error give
 *      CHORUS_IN_PROGRESS with a text naming the rank; after the late rank
 *      joins, the result is right and the report is gone.
 *   2. two late ranks on the world communicator (blocking allreduce, the
 *      report read from a second thread), then two on a split communicator
 *      (reversed ranks: its own watchdog, its own numbering), while the idle
 *      world communicator reports nothing; a truncated read (max_ranks 1).
 *   3. bad arguments of chorus_comm_get_stragglers.
 *   5. foreign datagrams at this rank's watchdog port (garbage, truncated,
 *      oversized, wrong version/type/identity/sender, wrong MAC): each is
 *      dropped (the drop counter says so), the communicator works and
 *      reports nothing, and a straggler (rank 0 this time) is still found.
 *   6. the waiting ranks abort a split communicator while its watchdog
 *      reports a late rank: the waits return, the report is gone, destroy
 *      frees everything.
 *   Watchdog threads (named chorus-watchdog) exist once per communicator of
 *   more than one rank, none for a communicator of one, none after destroy.
 *   With CHORUS_LOG_FILE=...%p... and CHORUS_LOG_LEVEL=warn (or more), each
 *   rank's log must hold exactly one warning per collective it waited in.
 * --off (run with CHORUS_WATCHDOG_MS=0):
 *   4. no watchdog thread, no socket, and a late rank is never reported.
 *
 * A late rank enters at least a second (3 s in case 1) after the others and
 * not before every waiting rank has seen the report (an MPI message says
 * so; bounded): no test depends on how fast the watchdog is, and a report
 * that never comes fails after a generous bound.
 *
 * Usage: mpirun -np N test_watchdog [--off] [-v]
 * Rank 0 ends with "ok test_watchdog np=N: K checks" or "FAIL ...".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>
#include "byteorder.h"
#include "chorus.h"
#include "socket.h"
#include "test_util.h"
#include "watchdog.h"

#define REPORT_BOUND_S 30.0 /* a report must appear within this */
#define LATE_BOUND_S 60.0   /* a late rank waits at most this for "seen" */
#define COUNT 65536

static int me, n;
static int mpi_threads; /* MPI_Init_thread's provided level */
static int waited_in;   /* collectives this rank waited in for a late rank */

/* A communicator and the number of collectives called on it so far. */
struct tcomm {
    chorus_comm_t c;
    int rank, n;
    uint64_t ncoll;
    int *world; /* [n] world rank of each comm rank */
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int count_watchdog_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int count = 0;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], name[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(name, sizeof name, f))
            name[strcspn(name, "\n")] = '\0';
        fclose(f);
        count += !strcmp(name, "chorus-watchdog");
    }
    closedir(d);
    return count;
}

/* Fills t for c: its size, rank and every member's world rank (one
 * allgather, counted). */
static int tcomm_setup(struct tcomm *t, chorus_comm_t c)
{
    memset(t, 0, sizeof *t);
    t->c = c;
    if (!CHECK_OK(chorus_comm_count(c, &t->n)) || !CHECK_OK(chorus_comm_rank(c, &t->rank)))
        return -1;
    t->world = calloc((size_t)t->n, sizeof *t->world);
    int32_t mine = me;
    t->ncoll++;
    return CHECK_OK(chorus_allgather(&mine, t->world, 1, CHORUS_INT32, c)) ? 0 : -1;
}

/* A few collectives of every kind the count covers (barrier included;
 * send/recv are not counted). */
static void warm_up(struct tcomm *t)
{
    int64_t v = t->rank + 1, sum = 0;
    t->ncoll++;
    if (CHECK_OK(chorus_allreduce(&v, &sum, 1, CHORUS_INT64, CHORUS_SUM, t->c)))
        CHECK(sum == (int64_t)t->n * (t->n + 1) / 2, "warm-up sum %lld", (long long)sum);
    t->ncoll++;
    CHECK_OK(chorus_barrier(t->c));
    chorus_request_t req = NULL;
    t->ncoll++;
    if (CHECK_OK(chorus_ibarrier(t->c, &req)))
        CHECK_OK(chorus_wait(&req));
    if (t->n >= 2) { /* point to point: not a collective, the numbers must not move */
        int32_t x = t->rank, y = -1;
        int to = (t->rank + 1) % t->n, from = (t->rank + t->n - 1) % t->n;
        CHECK_OK(chorus_sendrecv(&x, 1, to, &y, 1, from, CHORUS_INT32, t->c));
        CHECK(y == from, "sendrecv got %d, expected %d", y, from);
    }
}

/* ---- watching a late rank ------------------------------------------------------------- */

struct watch {
    struct tcomm *t;
    const int *late; /* comm ranks, ascending */
    int nlate;
    uint64_t want;        /* the collective's number */
    int count;            /* its float32 elements */
    chorus_comm_t idle;   /* another comm that must report nothing meanwhile (or NULL) */
    int tag;
    int seen;             /* the expected report was read */
    int tries;
    double t0;
    int last_n;
    uint64_t last_coll;
    int last[8];
    _Atomic int finished; /* blocking mode: the collective returned */
};

static int is_late(const struct watch *w, int r)
{
    for (int i = 0; i < w->nlate; i++)
        if (w->late[i] == r)
            return 1;
    return 0;
}

/* What a waiting rank checks once the report is there. */
static void check_seen(struct watch *w)
{
    chorus_comm_t c = w->t->c;
    chorus_result_t ae = CHORUS_INTERNAL_ERROR;
    if (CHECK_OK(chorus_comm_get_async_error(c, &ae))) {
        char text[1024];
        snprintf(text, sizeof text, "%s", chorus_get_last_error());
        /* the collective could only finish once we said "seen": still stalled */
        CHECK(ae == CHORUS_IN_PROGRESS, "get_async_error gave %s, expected in progress",
              chorus_get_error_string(ae));
        char want[64];
        snprintf(want, sizeof want, "collective #%llu (allreduce, %d x float32) waiting",
                 (unsigned long long)w->want, w->count);
        CHECK(strstr(text, want) != NULL, "async error text lacks \"%s\": %s", want, text);
        if (w->nlate == 1) {
            snprintf(want, sizeof want, "rank %d has not entered it (it is at #%llu)",
                     w->late[0], (unsigned long long)(w->want - 1));
            CHECK(strstr(text, want) != NULL, "async error text lacks \"%s\": %s", want, text);
        } else {
            CHECK(strstr(text, "have not entered it") != NULL, "text: %s", text);
            for (int i = 0; i < w->nlate; i++) {
                snprintf(want, sizeof want, "rank %d%s at #%llu", w->late[i], i ? "" : " is",
                         (unsigned long long)(w->want - 1));
                CHECK(strstr(text, want) != NULL, "async error text lacks \"%s\": %s", want,
                      text);
            }
        }
        char have[32];
        snprintf(have, sizeof have, "; %d rank%s ha", w->t->n - w->nlate,
                 w->t->n - w->nlate == 1 ? "" : "s");
        CHECK(strstr(text, have) != NULL, "async error text lacks \"%s\": %s", have, text);
        CHECK(strstr(text, "does not answer") == NULL && strstr(text, "do not answer") == NULL,
              "a rank is said not to answer: %s", text);
    }
    /* fewer slots than stragglers: the count is still all of them */
    uint64_t coll = 0;
    int one = -1, nr = -1;
    if (CHECK_OK(chorus_comm_get_stragglers(c, &coll, &one, 1, &nr)))
        CHECK(coll == w->want && nr == w->nlate && one == w->late[0],
              "max_ranks 1: collective %llu, %d ranks, first %d", (unsigned long long)coll, nr,
              one);
    if (CHECK_OK(chorus_comm_get_stragglers(c, &coll, NULL, 0, &nr)))
        CHECK(coll == w->want && nr == w->nlate, "ranks NULL: collective %llu, %d ranks",
              (unsigned long long)coll, nr);
}

/* One look (every ~20 ms) at the report of a waiting rank. 1 when done
 * looking (seen, or given up). */
static int watch_poll(struct watch *w)
{
    if (w->seen)
        return 1;
    uint64_t coll = 99;
    int ranks[8], nr = -1;
    if (!CHECK_OK(chorus_comm_get_stragglers(w->t->c, &coll, ranks, 8, &nr))) {
        w->seen = -1;
        return 1;
    }
    if (w->idle) {
        uint64_t ic = 99;
        int in = -1;
        if (CHECK_OK(chorus_comm_get_stragglers(w->idle, &ic, NULL, 0, &in)))
            CHECK(ic == 0 && in == 0, "an idle communicator reports collective %llu, %d ranks",
                  (unsigned long long)ic, in);
    }
    CHECK(nr == 0 ? coll == 0 : coll != 0, "get_stragglers: collective %llu with %d ranks",
          (unsigned long long)coll, nr);
    int match = nr == w->nlate && coll == w->want;
    for (int i = 0; match && i < nr; i++)
        match = ranks[i] == w->late[i];
    if (nr > 0) {
        w->last_n = nr;
        w->last_coll = coll;
        memcpy(w->last, ranks, sizeof ranks);
    }
    if (match) {
        w->seen = 1;
        check_seen(w);
        return 1;
    }
    if (tu_now() - w->t0 > REPORT_BOUND_S) {
        CHECK(0, "no report of ranks %d%s as stragglers of collective #%llu within %.0f s "
                 "(last report: collective %llu, %d ranks, first %d)",
              w->late[0], w->nlate > 1 ? ",..." : "", (unsigned long long)w->want,
              REPORT_BOUND_S, (unsigned long long)w->last_coll, w->last_n,
              w->last_n ? w->last[0] : -1);
        w->seen = -1;
        return 1;
    }
    return 0;
}

/* A waiting rank tells each late one it is done looking. */
static void tell_late(struct watch *w)
{
    int flag = w->seen > 0;
    for (int i = 0; i < w->nlate; i++)
        MPI_Send(&flag, 1, MPI_INT, w->t->world[w->late[i]], w->tag, MPI_COMM_WORLD);
}

static void *watch_thread(void *arg)
{
    struct watch *w = arg;
    while (!atomic_load(&w->finished) && !watch_poll(w))
        sleep_ms(20);
    if (!w->seen && !atomic_load(&w->finished))
        w->seen = -1;
    tell_late(w);
    return NULL;
}

/* A late rank: waits at least min_ms and until every waiting rank says it
 * looked (at most LATE_BOUND_S), checking that its own (idle) side reports
 * nothing meanwhile. */
static void be_late(struct watch *w, int min_ms)
{
    struct tcomm *t = w->t;
    int nw = t->n - w->nlate, k = 0;
    MPI_Request *rq = calloc((size_t)nw, sizeof *rq);
    int *flags = calloc((size_t)nw, sizeof *flags);
    MPI_Status *st = calloc((size_t)nw, sizeof *st);
    for (int r = 0; r < t->n; r++)
        if (!is_late(w, r)) {
            MPI_Irecv(&flags[k], 1, MPI_INT, t->world[r], w->tag, MPI_COMM_WORLD, &rq[k]);
            k++;
        }
    double t0 = tu_now();
    int all = 0;
    while (!all || (tu_now() - t0) * 1000 < min_ms) {
        if (!all)
            MPI_Testall(nw, rq, &all, st);
        if (tu_now() - t0 > LATE_BOUND_S) {
            CHECK(0, "late rank: the waiting ranks did not finish looking within %.0f s",
                  LATE_BOUND_S);
            for (int i = 0; i < nw; i++)
                if (rq[i] != MPI_REQUEST_NULL) {
                    MPI_Cancel(&rq[i]);
                    MPI_Request_free(&rq[i]);
                }
            break;
        }
        uint64_t coll = 99;
        int nr = -1;
        if (CHECK_OK(chorus_comm_get_stragglers(t->c, &coll, NULL, 0, &nr)))
            CHECK(coll == 0 && nr == 0, "a late rank, idle, reports collective %llu, %d ranks",
                  (unsigned long long)coll, nr);
        sleep_ms(20);
    }
    free(rq);
    free(st);
    free(flags);
}

/* The ranks in late[] (comm ranks, ascending) enter an allreduce of COUNT
 * float32 at least min_ms after the others, who must report them. */
static void straggle(struct tcomm *t, const int *late, int nlate, int blocking, int min_ms,
                     chorus_comm_t idle, int tag, const char *what)
{
    tu_set_case("%s: late rank(s) %d%s of %d, %s", what, late[0], nlate > 1 ? ",..." : "", t->n,
                blocking ? "blocking allreduce, report read by a second thread"
                         : "iallreduce, report read while chorus_test says in progress");
    struct watch w;
    memset(&w, 0, sizeof w);
    w.t = t;
    w.late = late;
    w.nlate = nlate;
    w.idle = idle;
    w.tag = tag;
    w.want = ++t->ncoll;
    w.count = COUNT;
    w.t0 = tu_now();
    float *in = malloc(COUNT * sizeof *in), *out = malloc(COUNT * sizeof *out);
    for (int i = 0; i < COUNT; i++) {
        in[i] = (float)(t->rank + 1 + i % 7);
        out[i] = -1.0f;
    }
    int am_late = is_late(&w, t->rank);
    if (am_late) {
        be_late(&w, min_ms);
        CHECK_OK(chorus_allreduce(in, out, COUNT, CHORUS_FLOAT32, CHORUS_SUM, t->c));
    } else if (blocking && mpi_threads >= MPI_THREAD_SERIALIZED) {
        waited_in++;
        pthread_t th;
        int started = pthread_create(&th, NULL, watch_thread, &w) == 0;
        CHECK(started, "pthread_create failed");
        CHECK_OK(chorus_allreduce(in, out, COUNT, CHORUS_FLOAT32, CHORUS_SUM, t->c));
        atomic_store(&w.finished, 1);
        if (started)
            pthread_join(th, NULL);
        CHECK(w.seen > 0, "the collective finished before the report was seen");
    } else {
        waited_in++;
        chorus_request_t req = NULL;
        if (CHECK_OK(chorus_iallreduce(in, out, COUNT, CHORUS_FLOAT32, CHORUS_SUM, t->c,
                                       &req))) {
            int told = 0;
            chorus_result_t r;
            while ((r = chorus_test(&req)) == CHORUS_IN_PROGRESS) {
                if (!told && watch_poll(&w)) {
                    tell_late(&w);
                    told = 1;
                }
                sleep_ms(20);
            }
            CHECK_RES(r, CHORUS_SUCCESS);
            CHECK(told, "the collective finished before the report was seen");
            if (!told)
                tell_late(&w);
        } else {
            w.seen = -1;
            tell_late(&w);
        }
    }
    size_t bad = COUNT;
    float base = (float)t->n * (float)(t->n + 1) / 2.0f;
    for (int i = 0; i < COUNT && bad == COUNT; i++)
        if (out[i] != base + (float)(t->n * (i % 7)))
            bad = (size_t)i;
    CHECK(bad == COUNT, "allreduce element %zu is %g, expected %g", bad,
          bad < COUNT ? (double)out[bad] : 0.0,
          bad < COUNT ? (double)(base + (float)(t->n * ((int)bad % 7))) : 0.0);
    /* finished: the report is gone */
    chorus_result_t ae = CHORUS_INTERNAL_ERROR;
    if (CHECK_OK(chorus_comm_get_async_error(t->c, &ae)))
        CHECK(ae == CHORUS_SUCCESS, "after the collective, async error %s",
              chorus_get_error_string(ae));
    uint64_t coll = 99;
    int nr = -1, ranks[4];
    if (CHECK_OK(chorus_comm_get_stragglers(t->c, &coll, ranks, 4, &nr)))
        CHECK(coll == 0 && nr == 0, "after the collective: collective %llu, %d ranks",
              (unsigned long long)coll, nr);
    free(in);
    free(out);
}

/* ---- bad arguments ---------------------------------------------------------------------- */

static void test_bad_args(chorus_comm_t c)
{
    tu_set_case("chorus_comm_get_stragglers: bad arguments");
    uint64_t coll = 5;
    int ranks[2], nr = 5;
    CHECK_RES(chorus_comm_get_stragglers(NULL, &coll, ranks, 2, &nr), CHORUS_INVALID_ARGUMENT);
    CHECK(coll == 0 && nr == 0, "outputs not zeroed on a NULL comm");
    CHECK(strstr(chorus_get_last_error(), "comm") != NULL, "text: %s", chorus_get_last_error());
    CHECK_RES(chorus_comm_get_stragglers(c, NULL, ranks, 2, &nr), CHORUS_INVALID_ARGUMENT);
    CHECK(strstr(chorus_get_last_error(), "collective") != NULL, "text: %s",
          chorus_get_last_error());
    CHECK_RES(chorus_comm_get_stragglers(c, &coll, ranks, 2, NULL), CHORUS_INVALID_ARGUMENT);
    CHECK(strstr(chorus_get_last_error(), "nranks_out") != NULL, "text: %s",
          chorus_get_last_error());
    CHECK_RES(chorus_comm_get_stragglers(c, &coll, ranks, -1, &nr), CHORUS_INVALID_ARGUMENT);
    CHECK(strstr(chorus_get_last_error(), "max_ranks") != NULL, "text: %s",
          chorus_get_last_error());
    CHECK_RES(chorus_comm_get_stragglers(c, &coll, NULL, 1, &nr), CHORUS_INVALID_ARGUMENT);
    CHECK(strstr(chorus_get_last_error(), "ranks is NULL") != NULL, "text: %s",
          chorus_get_last_error());
    struct { uint32_t magic; } fake = {0x12345678u}; /* not a communicator */
    CHECK_RES(chorus_comm_get_stragglers((chorus_comm_t)(void *)&fake, &coll, ranks, 2, &nr),
              CHORUS_INVALID_ARGUMENT);
    coll = 5;
    nr = 5;
    CHECK_OK(chorus_comm_get_stragglers(c, &coll, NULL, 0, &nr));
    CHECK(coll == 0 && nr == 0, "idle comm: collective %llu, %d ranks", (unsigned long long)coll,
          nr);
    CHECK_OK(chorus_comm_get_stragglers(c, &coll, ranks, 2, &nr));
    CHECK(coll == 0 && nr == 0, "idle comm: collective %llu, %d ranks", (unsigned long long)coll,
          nr);
    chorus_result_t ae = CHORUS_INTERNAL_ERROR;
    CHECK_RES(chorus_comm_get_async_error(c, NULL), CHORUS_INVALID_ARGUMENT);
    CHECK_OK(chorus_comm_get_async_error(c, &ae));
    CHECK(ae == CHORUS_SUCCESS, "idle comm: async error %s", chorus_get_error_string(ae));
}

/* ---- foreign datagrams ------------------------------------------------------------------ */

/* A well-formed query of this communicator, from rank `from`, with a MAC
 * nobody computed. */
static void forge(uint8_t m[WATCHDOG_MSG_BYTES], uint64_t identity, uint32_t from,
                  uint32_t nranks, uint64_t salt)
{
    put32(m, WATCHDOG_MAGIC);
    put16(m + 4, WATCHDOG_VERSION);
    put16(m + 6, WATCHDOG_QUERY);
    put64(m + 8, identity);
    put32(m + 16, from);
    put32(m + 20, nranks);
    put64(m + 24, tu_hash(salt, 1, from));
    put64(m + 32, 1000);
    put64(m + 40, 999);
    put64(m + 48, tu_hash(salt, 2, from)); /* not the MAC */
}

static void test_foreign(struct tcomm *t)
{
    tu_set_case("foreign datagrams at this rank's watchdog port");
    struct chorus_sockaddr addr;
    uint64_t identity = 0, dropped0 = 0, dropped = 0;
    int port = watchdog_debug_endpoint(t->c, &addr, &identity, &dropped0);
    CHECK(port > 0 && identity != 0, "no watchdog endpoint (port %d)", port);
    if (port <= 0)
        return;
    int fd = socket(addr.u.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    if (fd < 0)
        return;
    uint32_t other = (uint32_t)((t->rank + 1) % t->n), nr = (uint32_t)t->n;
    uint8_t big[2000], m[WATCHDOG_MSG_BYTES];
    int sent = 0;
#define SEND(buf_, len_)                                                                \
    do {                                                                                \
        int ok_ = sendto(fd, (buf_), (len_), 0, &addr.u.sa, addr.len) == (ssize_t)(len_); \
        CHECK(ok_, "sendto: %s", strerror(errno));                                      \
        sent += ok_;                                                                    \
    } while (0)
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)tu_hash(77, i, (uint64_t)me);
    SEND(big, 0);                  /* empty */
    SEND(big, 16);                 /* garbage */
    SEND(big, WATCHDOG_MSG_BYTES); /* garbage of the right size */
    SEND(big, sizeof big);         /* oversized */
    forge(m, identity, other, nr, 1);
    SEND(m, 40);                          /* truncated */
    memcpy(big, m, sizeof m);
    SEND(big, WATCHDOG_MSG_BYTES + 1);    /* one byte too many */
    SEND(m, WATCHDOG_MSG_BYTES);          /* wrong MAC */
    forge(m, identity, other, nr, 2);
    put16(m + 6, WATCHDOG_REPLY);
    SEND(m, WATCHDOG_MSG_BYTES);          /* a reply with a wrong MAC */
    forge(m, identity, other, nr, 3);
    put16(m + 4, WATCHDOG_VERSION + 1);
    SEND(m, WATCHDOG_MSG_BYTES);          /* another version */
    forge(m, identity, other, nr, 4);
    put16(m + 6, 9);
    SEND(m, WATCHDOG_MSG_BYTES);          /* unknown type */
    forge(m, identity ^ 1, other, nr, 5);
    SEND(m, WATCHDOG_MSG_BYTES);          /* another communicator */
    forge(m, identity, other, nr + 1, 6);
    SEND(m, WATCHDOG_MSG_BYTES);          /* wrong size of communicator */
    forge(m, identity, (uint32_t)t->rank, nr, 7);
    SEND(m, WATCHDOG_MSG_BYTES);          /* from itself */
    forge(m, identity, nr, nr, 8);
    SEND(m, WATCHDOG_MSG_BYTES);          /* from a rank out of range */
    for (int i = 0; i < 50; i++) {        /* a burst of wrong MACs */
        forge(m, identity, other, nr, 100 + (uint64_t)i);
        SEND(m, WATCHDOG_MSG_BYTES);
    }
#undef SEND
    /* no answer comes back to the sender, whatever it sent */
    sleep_ms(200);
    uint8_t back[128];
    ssize_t got = recv(fd, back, sizeof back, MSG_DONTWAIT);
    CHECK(got < 0, "the watchdog answered a foreign datagram (%zd bytes)", got);
    close(fd);
    /* every one arrived and was dropped */
    double t0 = tu_now();
    do {
        watchdog_debug_endpoint(t->c, &addr, &identity, &dropped);
        if (dropped - dropped0 >= (uint64_t)sent)
            break;
        sleep_ms(20);
    } while (tu_now() - t0 < REPORT_BOUND_S);
    CHECK(dropped - dropped0 == (uint64_t)sent, "%llu of %d foreign datagrams dropped",
          (unsigned long long)(dropped - dropped0), sent);
    /* the communicator works and reports nothing */
    tu_set_case("after foreign datagrams");
    warm_up(t);
    chorus_result_t ae = CHORUS_INTERNAL_ERROR;
    if (CHECK_OK(chorus_comm_get_async_error(t->c, &ae)))
        CHECK(ae == CHORUS_SUCCESS, "async error %s", chorus_get_error_string(ae));
    uint64_t coll = 99;
    int nrk = -1;
    if (CHECK_OK(chorus_comm_get_stragglers(t->c, &coll, NULL, 0, &nrk)))
        CHECK(coll == 0 && nrk == 0, "collective %llu, %d ranks", (unsigned long long)coll, nrk);
}

/* ---- abort while a straggler is reported -------------------------------------------------- */

/* The waiting ranks abort a split communicator once each has seen its
 * watchdog report the late rank (which then never calls): the waits return,
 * the report is gone, destroy frees the watchdog (its thread is gone). */
static void test_abort_stalled(chorus_comm_t world)
{
    tu_set_case("6. abort while rank %d is reported late", n - 1);
    MPI_Comm waiting;
    MPI_Comm_split(MPI_COMM_WORLD, me == n - 1, me, &waiting);
    chorus_comm_t sub = NULL;
    if (CHECK_OK(chorus_comm_split(world, 0, me, &sub)) && sub) {
        struct tcomm s;
        if (tcomm_setup(&s, sub) == 0) {
            int late[1] = {n - 1};
            struct watch w;
            memset(&w, 0, sizeof w);
            w.t = &s;
            w.late = late;
            w.nlate = 1;
            w.tag = 106;
            w.want = ++s.ncoll;
            w.count = 4;
            w.t0 = tu_now();
            float in[4] = {1, 2, 3, 4}, out[4];
            chorus_request_t req = NULL;
            if (me == n - 1) {
                be_late(&w, 0); /* and never calls: the others abort */
            } else if (CHECK_OK(chorus_iallreduce(in, out, 4, CHORUS_FLOAT32, CHORUS_SUM, sub,
                                                  &req))) {
                waited_in++;
                while (!watch_poll(&w))
                    sleep_ms(20);
                tu_barrier(waiting); /* everyone has seen it (and logged it) */
                double t0 = tu_now();
                CHECK_OK(chorus_comm_abort(sub));
                chorus_result_t r = chorus_wait(&req);
                double took = tu_now() - t0;
                CHECK(r != CHORUS_SUCCESS, "an allreduce missing rank %d succeeded", n - 1);
                CHECK(took < 10.0, "the aborted allreduce returned after %.1f s", took);
                uint64_t coll = 99;
                int nr = -1;
                CHECK_OK(chorus_comm_get_stragglers(sub, &coll, NULL, 0, &nr));
                CHECK(coll == 0 && nr == 0, "aborted: collective %llu, %d ranks",
                      (unsigned long long)coll, nr);
                chorus_result_t ae = CHORUS_SUCCESS;
                CHECK_OK(chorus_comm_get_async_error(sub, &ae));
                CHECK(ae != CHORUS_SUCCESS, "aborted, yet no async error");
                tell_late(&w);
            } else {
                tu_barrier(waiting);
                tell_late(&w);
            }
            free(s.world);
        }
        CHECK_OK(chorus_comm_destroy(sub));
        CHECK(count_watchdog_threads() == 1, "%d watchdog threads after destroying the "
              "aborted communicator", count_watchdog_threads());
    }
    MPI_Comm_free(&waiting);
}

/* ---- the log --------------------------------------------------------------------------- */

/* With CHORUS_LOG_FILE naming a per-process file (%p) and warnings on:
 * exactly one watchdog warning per collective this rank waited in. */
static void check_log(void)
{
    const char *pattern = getenv("CHORUS_LOG_FILE"), *level = getenv("CHORUS_LOG_LEVEL");
    if (!pattern || !strstr(pattern, "%p") || strstr(pattern, "%h") || !level ||
        !(strcmp(level, "warn") == 0 || strcmp(level, "info") == 0 ||
          strcmp(level, "debug") == 0))
        return;
    tu_set_case("one warning per stalled collective in the log");
    char path[512];
    size_t k = 0;
    for (const char *p = pattern; *p && k + 16 < sizeof path; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            k += (size_t)snprintf(path + k, sizeof path - k, "%d", (int)getpid());
            p++;
        } else {
            path[k++] = *p;
        }
    }
    path[k] = '\0';
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot read the log %s", path);
    if (!f)
        return;
    char line[2048];
    int warnings = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, " WARN watchdog ") && strstr(line, ": collective #"))
            warnings++;
    fclose(f);
    CHECK(warnings == waited_in, "%s holds %d watchdog warnings; this rank waited in %d "
                                 "stalled collectives", path, warnings, waited_in);
}

/* ---- main ---------------------------------------------------------------------------------- */

static chorus_comm_t make_comm(void)
{
    chorus_unique_id_t id;
    int ok = 1;
    if (me == 0)
        ok = CHECK_OK(chorus_get_unique_id(&id));
    tu_bcast(&ok, sizeof ok, 0, MPI_COMM_WORLD);
    if (!ok)
        return NULL;
    tu_bcast(&id, sizeof id, 0, MPI_COMM_WORLD);
    chorus_comm_t c = NULL;
    chorus_result_t r = chorus_comm_init_rank(&c, n, id, me);
    CHECK_OK(r);
    if (tu_any(r != CHORUS_SUCCESS, MPI_COMM_WORLD)) {
        if (c)
            chorus_comm_destroy(c);
        return NULL;
    }
    return c;
}

static void run_off(chorus_comm_t world)
{
    struct tcomm t;
    tu_set_case("watchdog off: setup");
    if (tcomm_setup(&t, world) != 0)
        return;
    struct chorus_sockaddr addr;
    uint64_t identity, dropped;
    CHECK(watchdog_debug_endpoint(world, &addr, &identity, &dropped) == 0,
          "CHORUS_WATCHDOG_MS=0, yet the communicator has a watchdog socket");
    CHECK(count_watchdog_threads() == 0, "%d watchdog threads with CHORUS_WATCHDOG_MS=0",
          count_watchdog_threads());
    warm_up(&t);
    test_bad_args(world);
    /* a late rank is never reported */
    tu_set_case("watchdog off: rank %d late by 1.5 s", n - 1);
    float in[4] = {1, 2, 3, 4}, out[4];
    if (me == n - 1) {
        sleep_ms(1500);
        CHECK_OK(chorus_allreduce(in, out, 4, CHORUS_FLOAT32, CHORUS_SUM, world));
    } else {
        chorus_request_t req = NULL;
        if (CHECK_OK(chorus_iallreduce(in, out, 4, CHORUS_FLOAT32, CHORUS_SUM, world, &req))) {
            chorus_result_t r;
            while ((r = chorus_test(&req)) == CHORUS_IN_PROGRESS) {
                uint64_t coll = 99;
                int nr = -1;
                chorus_result_t ae = CHORUS_INTERNAL_ERROR;
                if (CHECK_OK(chorus_comm_get_stragglers(world, &coll, NULL, 0, &nr)))
                    CHECK(coll == 0 && nr == 0, "watchdog off, yet collective %llu, %d ranks",
                          (unsigned long long)coll, nr);
                if (CHECK_OK(chorus_comm_get_async_error(world, &ae)))
                    CHECK(ae == CHORUS_SUCCESS, "watchdog off, yet async error %s",
                          chorus_get_error_string(ae));
                sleep_ms(50);
            }
            CHECK_RES(r, CHORUS_SUCCESS);
        }
    }
    CHECK(out[3] == 4.0f * (float)n, "allreduce gave %g, expected %g", (double)out[3],
          4.0 * n);
    free(t.world);
}

static void run_on(chorus_comm_t world)
{
    struct tcomm t;
    tu_set_case("setup");
    if (tcomm_setup(&t, world) != 0)
        return;
    CHECK(count_watchdog_threads() == 1, "%d watchdog threads with one communicator",
          count_watchdog_threads());
    warm_up(&t);
    test_bad_args(world);

    /* 1. one late rank, nonblocking form, polled */
    int late1[1] = {n - 1};
    straggle(&t, late1, 1, 0, 3000, NULL, 101, "1. one straggler");
    warm_up(&t);

    if (n >= 3) {
        /* 2. two late ranks, blocking, report read by a second thread */
        int late2[2] = {n - 2, n - 1};
        straggle(&t, late2, 2, 1, 1000, NULL, 102, "2. two stragglers");

        /* ... and on a split communicator with reversed ranks */
        tu_set_case("split (reversed ranks)");
        chorus_comm_t sub = NULL;
        if (CHECK_OK(chorus_comm_split(world, 0, n - me, &sub)) && sub) {
            struct tcomm s;
            if (tcomm_setup(&s, sub) == 0) {
                CHECK(count_watchdog_threads() == 2, "%d watchdog threads with two "
                      "communicators", count_watchdog_threads());
                warm_up(&s);
                int late3[2] = {0, 1}; /* world ranks n-1 and n-2 */
                straggle(&s, late3, 2, 0, 1000, world, 103, "2. two stragglers, split");
                warm_up(&s);
                free(s.world);
            }
            CHECK_OK(chorus_comm_destroy(sub));
            CHECK(count_watchdog_threads() == 1, "%d watchdog threads after destroying the "
                  "split communicator", count_watchdog_threads());
        }
        /* a communicator of one rank has no watchdog */
        tu_set_case("split into single ranks");
        sub = NULL;
        if (CHECK_OK(chorus_comm_split(world, me, 0, &sub)) && sub) {
            CHECK(count_watchdog_threads() == 1, "%d watchdog threads with the world and a "
                  "communicator of one rank (which needs none)", count_watchdog_threads());
            CHECK_OK(chorus_barrier(sub));
            uint64_t coll = 99;
            int nr = -1;
            CHECK_OK(chorus_comm_get_stragglers(sub, &coll, NULL, 0, &nr));
            CHECK(coll == 0 && nr == 0, "one rank: collective %llu, %d ranks",
                  (unsigned long long)coll, nr);
            CHECK_OK(chorus_comm_destroy(sub));
        }
    }

    /* 5. foreign datagrams, then the watchdog still finds a straggler */
    test_foreign(&t);
    int late0[1] = {0};
    straggle(&t, late0, 1, 0, 1000, NULL, 105, "5. after foreign datagrams");
    free(t.world);
    test_abort_stalled(world);
}

int main(int argc, char **argv)
{
    setenv("CHORUS_TIMEOUT_MS", "120000", 0);
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &mpi_threads);
    tu_init();
    me = tu_rank;
    n = tu_nranks;
    int off = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v"))
            tu_verbose = 1;
        else if (!strcmp(argv[i], "--off"))
            off = 1;
    }
    double t0 = tu_now();
    tu_set_case("init");
    const char *ms = getenv("CHORUS_WATCHDOG_MS");
    if (n < 2 || (off && ms && atoi(ms) > 0) ||
        (!off && (!ms || atoi(ms) <= 0 || atoi(ms) > 2000))) {
        if (me == 0)
            tu_log("test_watchdog needs np >= 2 and CHORUS_WATCHDOG_MS in 1..2000 (or --off "
                   "with CHORUS_WATCHDOG_MS=0)");
        MPI_Finalize();
        return 77;
    }
    chorus_comm_t world = make_comm();
    if (!world) {
        int rc = tu_summary("test_watchdog");
        MPI_Finalize();
        return rc;
    }
    if (off)
        run_off(world);
    else
        run_on(world);
    tu_set_case("destroy");
    CHECK_OK(chorus_comm_destroy(world));
    CHECK(count_watchdog_threads() == 0, "%d watchdog threads after destroy",
          count_watchdog_threads());
    check_log();
    if (me == 0)
        tu_log("total %.1f s", tu_now() - t0);
    int rc = tu_summary(off ? "test_watchdog --off" : "test_watchdog");
    MPI_Finalize();
    return rc;
}
