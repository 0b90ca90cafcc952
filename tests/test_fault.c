/* test_fault.c - failure handling with real processes, without MPI.
 *
 * mpirun kills every rank as soon as one dies, so this test forks its ranks
 * itself. Each case runs in a fresh process (this program re-executed with
 * "--case NAME") because the tunables are read once per process and the
 * cases need different CHORUS_TIMEOUT_MS / CHORUS_INIT_TIMEOUT_MS values:
 *
 *   kill    a rank is killed with SIGKILL while every rank loops on a
 *           collective: the survivors return CHORUS_REMOTE_ERROR naming it
 *           within 3 s (CHORUS_TIMEOUT_MS is 20 s), the communicator stays
 *           broken (async error, later calls fail at once), destroy works;
 *   abort   chorus_comm_abort from a second thread while the main thread is
 *           blocked in a collective that cannot complete (one rank does not
 *           join): the call returns within 1 s, the peers fail fast too;
 *   noinit  a rank never joins: the others' init fails with CHORUS_TIMEOUT
 *           (CHORUS_INIT_TIMEOUT_MS=1500) naming it, within a few seconds;
 *   stuck   a rank is alive but stops calling: the others return
 *           CHORUS_TIMEOUT naming it (CHORUS_TIMEOUT_MS=1000) within 2 s.
 * Some scenarios of kill, abort and stuck use buffers from chorus_mem_alloc,
 * so the zero-copy collectives (peers reading each other's buffers) fail
 * as promptly and cleanly as the staged ones.
 *
 * After every scenario: no new /dev/shm/chorus* entry, the fd count of every
 * surviving rank is back to what it was before init, and the test process
 * itself (which ran the bootstrap root) is back to its fds and threads.
 *
 * In a case process, the ranks are forked first and wait on a pipe for the
 * unique id, then the parent starts the root (no fork while a root thread
 * runs). Ranks report to the parent through a pipe (one fixed-size record
 * each, written atomically) and through a shared anonymous mapping
 * (progress counters, release flags). All checks are made by the parent,
 * which kills (SIGKILL) whatever outlives its deadline and counts it as a
 * failure; every rank also has an alarm() as a last-resort safety net.
 *
 * Usage: test_fault [kill|abort|noinit|stuck ...]   (default: every case)
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
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chorus.h"

#define MAXR 8
#define CHILD_ALARM_S 60       /* last resort: no rank lives longer */
#define READY_MS 15000         /* bound on init + the first iterations */
#define KILL_BOUND_MS 3000     /* survivors must notice a death within this */
#define ABORT_BOUND_MS 1000    /* a blocked call returns this soon after abort */
#define ABORT_DELAY_MS 100     /* the abort thread fires this long after the call */
#define FAST_MS 200            /* "at once": later calls on a broken comm */
#define STUCK_TIMEOUT_MS 1000  /* CHORUS_TIMEOUT_MS of the stuck case */
#define STUCK_BOUND_MS 2000    /* ... and the bound on the timed-out call */
#define INIT_TIMEOUT_MS 1500   /* CHORUS_INIT_TIMEOUT_MS of the noinit case */
#define INIT_BOUND_MS 4000     /* ... and the bound on the failing init */
#define REPORT_MS 8000         /* after the trigger: every report is in */
/* One case process is killed after this many ms (a hang guard over all of a
 * case's scenarios; each scenario has its own bounds). TEST_FAULT_CASE_MS
 * raises it where everything is slower, as under emulation in the soft-RoCE
 * guest, whose kill case takes about 50 s of the default on an idle host. */
static int case_limit_ms(void)
{
    const char *v = getenv("TEST_FAULT_CASE_MS");
    int ms = v && *v ? atoi(v) : 0;
    return ms > 0 ? ms : 60000;
}

static int checks, failures;
static char scen_name[160] = "";

#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        checks++;                                                                    \
        if (!(cond)) {                                                               \
            failures++;                                                              \
            fprintf(stderr, "FAIL [%s] %s:%d: ", scen_name, __FILE__, __LINE__);     \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
        }                                                                            \
    } while (0)

/* ---- small helpers -------------------------------------------------------- */

/* CHORUS_TRANSPORT=tcp: the same scenarios over the network transport. */
/* A network transport forced (CHORUS_TRANSPORT=tcp or rdma): failure
 * notices travel between the ranks. */
static int over_net(void)
{
    const char *t = getenv("CHORUS_TRANSPORT");
    return t && (!strcmp(t, "tcp") || !strcmp(t, "rdma"));
}

/* Soft-RoCE moves tens of MB/s: the large cases shrink 16x over RDMA so a
 * rank reaches its loop within the harness' deadlines. */
static size_t scaled(size_t bytes)
{
    const char *t = getenv("CHORUS_TRANSPORT");
    return t && !strcmp(t, "rdma") && bytes > (64u << 10) ? bytes / 16 : bytes;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static int64_t ms_since(int64_t t0) { return (now_ns() - t0) / 1000000; }

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}
/* Open fds, not counting what libibverbs / librdmacm keep for the process's
 * lifetime once RDMA was used: the device files under /dev/infiniband and
 * one event fd (the async events) per device context they opened, which
 * rdma_get_devices caches until exit. A completion channel Chorus failed to
 * destroy would be one event fd more than contexts, and is counted. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0, uverbs = 0, events = 0;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0) {
            target[len] = 0;
            if (!strncmp(target, "/dev/infiniband/", 16)) {
                uverbs += !strncmp(target + 16, "uverbs", 6);
                continue;
            }
            if (!strcmp(target, "anon_inode:[infinibandevent]")) {
                events++;
                continue;
            }
        }
        n++;
    }
    closedir(d);
    return n - 1 /* the DIR itself */ + (events > uverbs ? events - uverbs : 0);
}
static int count_threads(void) { return count_dir("/proc/self/task"); }

/* Does text name rank r ("rank 3", not "rank 3/4" - our own label - nor "rank 31")? */
static int names_rank(const char *text, int r)
{
    char want[24];
    int len = snprintf(want, sizeof want, "rank %d", r);
    for (const char *p = text; (p = strstr(p, want)) != NULL; p++) {
        char next = p[len];
        if (!(next >= '0' && next <= '9') && next != '/')
            return 1;
    }
    return 0;
}

static const char *rc_name(int rc) { return chorus_get_error_string((chorus_result_t)rc); }

/* ---- /dev/shm ----------------------------------------------------------- */

#define MAX_SHM 256
struct shm_list {
    int n;
    char names[MAX_SHM][256];
};

static void shm_snapshot(struct shm_list *l)
{
    l->n = 0;
    DIR *d = opendir("/dev/shm");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) && l->n < MAX_SHM)
        if (!strncmp(e->d_name, "chorus", 6))
            snprintf(l->names[l->n++], sizeof l->names[0], "%s", e->d_name);
    closedir(d);
}

static int shm_has(const struct shm_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->names[i], name))
            return 1;
    return 0;
}

/* New chorus* entries since before. Entries of other test runs on this
 * machine exist only for the moment of their init, so a new entry must
 * still be there after a grace period to count as ours. */
static void check_shm_left(const struct shm_list *before)
{
    struct shm_list now;
    int64_t t0 = now_ns();
    int fresh;
    do {
        fresh = 0;
        shm_snapshot(&now);
        for (int i = 0; i < now.n; i++)
            fresh += !shm_has(before, now.names[i]);
        if (fresh)
            sleep_ms(50);
    } while (fresh && ms_since(t0) < 1500);
    for (int i = 0; i < now.n; i++)
        CHECK(shm_has(before, now.names[i]), "/dev/shm/%s was left behind", now.names[i]);
    if (!fresh)
        checks++;
}

/* ---- scenarios ----------------------------------------------------------- */

enum kind {
    K_AR_SMALL,
    K_AR_LARGE,
    K_ALLGATHER,
    K_ALLTOALL,
    K_BCAST,
    K_RSCATTER,
    K_REDUCE,
    K_BARRIER,
    K_SENDRECV,
    K_SENDRECV_SMALL,
    K_P2P, /* rank 0 receives from rank 1 (2 ranks) */
    K_NUM
};

static const char *const kind_names[K_NUM] = {
    "allreduce 4 KiB",  "allreduce 16 MiB", "allgather 1 MiB/rank", "alltoall 256 KiB/peer",
    "broadcast 4 MiB",  "reduce_scatter 1 MiB/rank", "reduce 4 MiB",  "barrier",
    "sendrecv ring 1 MiB", "sendrecv ring 4 KiB", "recv 4 KiB",
};

enum mode { M_KILL, M_ABORT, M_NOINIT, M_STUCK };

struct scenario {
    enum mode mode;
    int n;
    enum kind kind;
    int victim;      /* kill: the killed rank; noinit: the missing one; stuck: the stuck one */
    int abort_mask;  /* abort: ranks whose second thread calls chorus_comm_abort */
    int sleeper;     /* abort: a rank that joins the collective only when released */
    int nonblocking; /* abort: the aborting ranks use the i-collective and chorus_wait */
    enum kind late_kind; /* the released rank's call */
    int zcopy;           /* buffers from chorus_mem_alloc (zero-copy collectives) */
};

/* Shared with the ranks (MAP_SHARED | MAP_ANONYMOUS, inherited by fork). */
struct shared {
    _Atomic int iters[MAXR];      /* completed collectives */
    _Atomic int release;          /* the sleeping / stuck rank may go on */
    _Atomic int64_t abort_ns[MAXR];
};
static struct shared *sh;

/* What a rank tells the parent at its end (< PIPE_BUF: written atomically). */
struct report {
    int rank;
    int init_rc;
    int64_t init_ms;
    int warm_rc;              /* stuck: the warm-up barriers */
    int coll_rc;              /* the failing collective */
    int64_t enter_ns, fail_ns;
    int iters;
    int abort_rc;
    int64_t abort_ns;
    int late_rc, late_calls;  /* the released rank's calls */
    int64_t late_ms;
    int async_call_rc, async_rc;
    int again_rc;
    int64_t again_ms;
    int destroy_rc;
    int fds_before, fds_after;
    char err[1200];
    char again_err[400];
};

struct bufs {
    void *send, *recv;
};

static size_t kind_bytes(enum kind k, int n, size_t *recv_bytes)
{
    size_t s = 0, r = 0;
    switch (k) {
    case K_AR_SMALL: s = r = 4096; break;
    case K_AR_LARGE: s = r = scaled(16u << 20); break;
    case K_ALLGATHER: s = scaled(1u << 20); r = s * (size_t)n; break;
    case K_ALLTOALL: s = r = (size_t)n << 18; break;
    case K_BCAST: s = r = scaled(4u << 20); break;
    case K_RSCATTER: r = scaled(1u << 20); s = r * (size_t)n; break;
    case K_REDUCE: s = r = scaled(4u << 20); break;
    case K_BARRIER: break;
    case K_SENDRECV: s = r = scaled(1u << 20); break;
    case K_SENDRECV_SMALL: s = r = 4096; break;
    case K_P2P: s = r = 4096; break;
    default: break;
    }
    *recv_bytes = r;
    return s;
}

static int chorus_mem_bufs; /* in a rank: the scenario's zcopy */

static void *buf_alloc(size_t bytes)
{
    void *p = NULL;
    if (!chorus_mem_bufs)
        return calloc(1, bytes);
    return chorus_mem_alloc(&p, bytes) == CHORUS_SUCCESS ? p : NULL; /* zero-filled */
}

static void buf_free(void *p)
{
    if (chorus_mem_bufs)
        chorus_mem_free(p);
    else
        free(p);
}

static void bufs_alloc(struct bufs *b, enum kind k, int n)
{
    size_t r, s = kind_bytes(k, n, &r);
    b->send = buf_alloc(s ? s : 1);
    b->recv = buf_alloc(r ? r : 1);
    if (!b->send || !b->recv) {
        fprintf(stderr, "out of memory\n");
        _exit(5);
    }
}
static void bufs_free(struct bufs *b)
{
    buf_free(b->send);
    buf_free(b->recv);
    b->send = b->recv = NULL;
}

static chorus_result_t do_coll(enum kind k, chorus_comm_t comm, int rank, int n,
                               const struct bufs *b)
{
    size_t r, s = kind_bytes(k, n, &r);
    const int next = (rank + 1) % n, prev = (rank + n - 1) % n;
    switch (k) {
    case K_AR_SMALL:
    case K_AR_LARGE:
        return chorus_allreduce(b->send, b->recv, s / 4, CHORUS_FLOAT32, CHORUS_SUM, comm);
    case K_ALLGATHER:
        return chorus_allgather(b->send, b->recv, s, CHORUS_UINT8, comm);
    case K_ALLTOALL:
        return chorus_alltoall(b->send, b->recv, s / (size_t)n, CHORUS_UINT8, comm);
    case K_BCAST:
        return chorus_broadcast(b->send, b->recv, s, CHORUS_UINT8, n - 1, comm);
    case K_RSCATTER:
        return chorus_reduce_scatter(b->send, b->recv, r / 4, CHORUS_FLOAT32, CHORUS_SUM, comm);
    case K_REDUCE:
        return chorus_reduce(b->send, b->recv, s / 4, CHORUS_FLOAT32, CHORUS_SUM, 0, comm);
    case K_BARRIER:
        return chorus_barrier(comm);
    case K_SENDRECV:
    case K_SENDRECV_SMALL:
        return chorus_sendrecv(b->send, s, next, b->recv, r, prev, CHORUS_UINT8, comm);
    case K_P2P:
        return rank == 0 ? chorus_recv(b->recv, r, CHORUS_UINT8, 1, comm)
                         : chorus_send(b->send, s, CHORUS_UINT8, 0, comm);
    default:
        return CHORUS_INVALID_ARGUMENT;
    }
}

/* The nonblocking form (abort while the worker thread runs it). */
static chorus_result_t do_coll_nb(enum kind k, chorus_comm_t comm, int rank, int n,
                                  const struct bufs *b)
{
    size_t r, s = kind_bytes(k, n, &r);
    chorus_request_t req = NULL;
    chorus_result_t rc;
    switch (k) {
    case K_AR_SMALL:
    case K_AR_LARGE:
        rc = chorus_iallreduce(b->send, b->recv, s / 4, CHORUS_FLOAT32, CHORUS_SUM, comm, &req);
        break;
    case K_BARRIER:
        rc = chorus_ibarrier(comm, &req);
        break;
    default:
        return do_coll(k, comm, rank, n, b);
    }
    if (rc != CHORUS_SUCCESS)
        return rc;
    return chorus_wait(&req);
}

/* ---- the ranks ------------------------------------------------------------- */

static void copy_err(char *dst, size_t cap) { snprintf(dst, cap, "%s", chorus_get_last_error()); }

/* After a failure: the communicator must stay broken, then be destroyed. */
static void after_failure(chorus_comm_t comm, enum kind k, int rank, int n, struct bufs *b,
                          struct report *rep)
{
    chorus_result_t ae = CHORUS_SUCCESS;
    rep->async_call_rc = chorus_comm_get_async_error(comm, &ae);
    rep->async_rc = ae;
    int64_t t = now_ns();
    rep->again_rc = do_coll(k, comm, rank, n, b);
    rep->again_ms = ms_since(t);
    copy_err(rep->again_err, sizeof rep->again_err);
    rep->destroy_rc = chorus_comm_destroy(comm);
    bufs_free(b);
    rep->fds_after = count_fds();
}

/* The released rank: up to 3 calls of its collective (a call may still
 * complete if every peer had already posted its part), the last one must fail. */
static void late_calls(chorus_comm_t comm, enum kind k, int rank, int n, struct bufs *b,
                       struct report *rep)
{
    int64_t t = now_ns();
    chorus_result_t rc = CHORUS_SUCCESS;
    for (rep->late_calls = 0; rep->late_calls < 3 && rc == CHORUS_SUCCESS;) {
        rc = do_coll(k, comm, rank, n, b);
        rep->late_calls++;
    }
    rep->late_ms = ms_since(t);
    rep->late_rc = rc;
    copy_err(rep->err, sizeof rep->err);
    after_failure(comm, k, rank, n, b, rep);
}

/* Waits (bounded) until the parent releases this rank. */
static void wait_release(void)
{
    int64_t t0 = now_ns();
    while (!atomic_load(&sh->release) && ms_since(t0) < 20000)
        sleep_ms(2);
}

struct aborter {
    chorus_comm_t comm;
    int rank;
    int rc;
    int64_t at_ns;
};

static void *abort_thread(void *arg)
{
    struct aborter *a = arg;
    sleep_ms(ABORT_DELAY_MS);
    a->at_ns = now_ns();
    atomic_store(&sh->abort_ns[a->rank], a->at_ns);
    a->rc = chorus_comm_abort(a->comm);
    return NULL;
}

static void rank_main(const struct scenario *sc, int rank, int idfd, int resfd)
{
    alarm(CHILD_ALARM_S);
    signal(SIGPIPE, SIG_DFL); /* the library must never raise it */
    chorus_unique_id_t id;
    size_t got = 0;
    while (got < sizeof id) {
        ssize_t r = read(idfd, (char *)&id + got, sizeof id - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            _exit(3); /* the parent gave up on this scenario */
        got += (size_t)r;
    }
    close(idfd);

    struct report rep;
    memset(&rep, 0, sizeof rep);
    rep.rank = rank;
    rep.coll_rc = rep.late_rc = rep.again_rc = rep.destroy_rc = -1;
    rep.fds_before = count_fds();
    chorus_comm_t comm = NULL;
    int64_t t0 = now_ns();
    rep.init_rc = chorus_comm_init_rank(&comm, sc->n, id, rank);
    rep.init_ms = ms_since(t0);
    if (rep.init_rc != CHORUS_SUCCESS) {
        copy_err(rep.err, sizeof rep.err);
        rep.fds_after = count_fds();
    } else {
        const int n = sc->n;
        struct bufs b;
        chorus_mem_bufs = sc->zcopy;
        bufs_alloc(&b, sc->kind, n);
        chorus_result_t rc = CHORUS_SUCCESS;
        switch (sc->mode) {
        case M_KILL:
            /* Loop until the collective fails (the parent kills a rank). */
            t0 = now_ns();
            while (rc == CHORUS_SUCCESS && ms_since(t0) < 25000) {
                rc = do_coll(sc->kind, comm, rank, n, &b);
                if (rc == CHORUS_SUCCESS)
                    atomic_fetch_add(&sh->iters[rank], 1);
            }
            rep.fail_ns = now_ns();
            rep.coll_rc = rc;
            copy_err(rep.err, sizeof rep.err);
            after_failure(comm, sc->kind, rank, n, &b, &rep);
            break;
        case M_STUCK:
            /* A few good barriers first: the communicator works. */
            for (int i = 0; i < 3 && rc == CHORUS_SUCCESS; i++)
                rc = chorus_barrier(comm);
            rep.warm_rc = rc;
            atomic_fetch_add(&sh->iters[rank], 1);
            /* fall through */
        case M_ABORT:
            if (rank == (sc->mode == M_STUCK ? sc->victim : sc->sleeper)) {
                wait_release();
                bufs_free(&b);
                bufs_alloc(&b, sc->late_kind, n);
                late_calls(comm, sc->late_kind, rank, n, &b, &rep);
                break;
            }
            if (rc != CHORUS_SUCCESS) { /* warm-up failed: nothing to test */
                copy_err(rep.err, sizeof rep.err);
                after_failure(comm, sc->kind, rank, n, &b, &rep);
                break;
            }
            {
                struct aborter ab = {comm, rank, -1, 0};
                pthread_t th;
                int thread = sc->mode == M_ABORT && (sc->abort_mask >> rank & 1);
                if (thread && pthread_create(&th, NULL, abort_thread, &ab) != 0) {
                    fprintf(stderr, "pthread_create failed\n");
                    _exit(6);
                }
                rep.enter_ns = now_ns();
                if (thread && sc->nonblocking)
                    rc = do_coll_nb(sc->kind, comm, rank, n, &b);
                else
                    rc = do_coll(sc->kind, comm, rank, n, &b);
                rep.fail_ns = now_ns();
                rep.coll_rc = rc;
                copy_err(rep.err, sizeof rep.err);
                if (thread) {
                    pthread_join(th, NULL);
                    rep.abort_rc = ab.rc;
                    rep.abort_ns = ab.at_ns;
                }
                after_failure(comm, sc->kind, rank, n, &b, &rep);
            }
            break;
        default:
            break;
        }
    }
    ssize_t w = write(resfd, &rep, sizeof rep);
    _exit(w == (ssize_t)sizeof rep ? 0 : 4);
}

/* ---- the parent of one scenario ------------------------------------------ */

struct kid {
    pid_t pid;
    int idfd;   /* write end: the id goes here */
    int status; /* from waitpid; -1: not reaped */
    int reported;
    struct report rep;
};

struct run {
    const struct scenario *sc;
    struct kid kids[MAXR];
    int resr; /* read end of the report pipe */
    int nreports;
    int hung;
};

static void spawn(struct run *run, int rank, int resw)
{
    struct kid *k = &run->kids[rank];
    int p[2];
    k->pid = -1;
    k->idfd = -1;
    k->status = -1;
    if (pipe2(p, O_CLOEXEC) != 0) {
        perror("pipe");
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        close(p[1]);
        close(run->resr);
        for (int q = 0; q < rank; q++)
            if (run->kids[q].idfd >= 0)
                close(run->kids[q].idfd);
        rank_main(run->sc, rank, p[0], resw);
    }
    close(p[0]);
    k->pid = pid;
    k->idfd = p[1];
}

/* Reads the reports that have arrived, waiting at most until deadline_ns
 * for the count to reach want. */
static void collect(struct run *run, int want, int64_t deadline_ns)
{
    while (run->nreports < want) {
        int64_t left = (deadline_ns - now_ns()) / 1000000;
        if (left < 0)
            left = 0;
        struct pollfd p = {run->resr, POLLIN, 0};
        int r = poll(&p, 1, (int)(left > 100 ? 100 : left));
        if (r > 0) {
            struct report rep;
            ssize_t got = read(run->resr, &rep, sizeof rep);
            if (got == (ssize_t)sizeof rep && rep.rank >= 0 && rep.rank < run->sc->n &&
                !run->kids[rep.rank].reported) {
                run->kids[rep.rank].rep = rep;
                run->kids[rep.rank].reported = 1;
                run->nreports++;
            } else if (got > 0) {
                CHECK(0, "a malformed report (%zd bytes)", got);
            }
        } else if (r < 0 && errno != EINTR) {
            perror("poll");
            return;
        }
        if (now_ns() >= deadline_ns)
            return;
    }
}

/* Kills what is still running (a hang: counted), then reaps every kid. */
static void reap_all(struct run *run)
{
    for (int r = 0; r < run->sc->n; r++) {
        struct kid *k = &run->kids[r];
        if (k->idfd >= 0) {
            close(k->idfd);
            k->idfd = -1;
        }
        if (k->pid <= 0 || k->status != -1)
            continue;
        int st;
        pid_t got = waitpid(k->pid, &st, WNOHANG);
        if (got == 0) {
            /* Give a rank that has reported a moment to exit. */
            int64_t t0 = now_ns();
            while (got == 0 && ms_since(t0) < (k->reported ? 3000 : 200)) {
                sleep_ms(5);
                got = waitpid(k->pid, &st, WNOHANG);
            }
        }
        if (got == 0) {
            CHECK(0, "rank %d (pid %d) hung; killed%s", r, (int)k->pid,
                  k->reported ? " (after reporting)" : "");
            run->hung++;
            kill(k->pid, SIGKILL);
            waitpid(k->pid, &st, 0);
            st = -1;
        } else if (got < 0) {
            st = -1;
        }
        k->status = st;
    }
}

static int exited_ok(const struct kid *k)
{
    return k->status != -1 && WIFEXITED(k->status) && WEXITSTATUS(k->status) == 0;
}

static void describe_status(const struct kid *k, char *buf, size_t cap)
{
    if (k->status == -1)
        snprintf(buf, cap, "hung or not reaped");
    else if (WIFSIGNALED(k->status))
        snprintf(buf, cap, "killed by signal %d", WTERMSIG(k->status));
    else
        snprintf(buf, cap, "exit code %d", WEXITSTATUS(k->status));
}

/* The checks every rank that ran to its end shares. */
static void check_common(const struct kid *k, int expect_init_ok)
{
    const struct report *p = &k->rep;
    char st[64];
    describe_status(k, st, sizeof st);
    CHECK(exited_ok(k), "rank %d: %s", p->rank, st);
    if (expect_init_ok)
        CHECK(p->init_rc == CHORUS_SUCCESS, "rank %d: init returned %s: %s", p->rank,
              rc_name(p->init_rc), p->err);
    CHECK(p->fds_after == p->fds_before, "rank %d: %d fds before init, %d after destroy", p->rank,
          p->fds_before, p->fds_after);
}

/* After the failing call: broken for good, destroy works. */
static void check_broken(const struct report *p, int want)
{
    CHECK(p->async_call_rc == CHORUS_SUCCESS && p->async_rc != CHORUS_SUCCESS &&
              (want < 0 || p->async_rc == want),
          "rank %d: chorus_comm_get_async_error returned %s, async error %s (expected %s)",
          p->rank, rc_name(p->async_call_rc), rc_name(p->async_rc),
          want < 0 ? "an error" : rc_name(want));
    CHECK(p->again_rc != CHORUS_SUCCESS && (want < 0 || p->again_rc == want) &&
              p->again_ms <= FAST_MS,
          "rank %d: a further collective returned %s after %lld ms (expected %s at once): %s",
          p->rank, rc_name(p->again_rc), (long long)p->again_ms,
          want < 0 ? "an error" : rc_name(want), p->again_err);
    CHECK(p->destroy_rc == CHORUS_SUCCESS, "rank %d: destroy returned %s", p->rank,
          rc_name(p->destroy_rc));
}

static int fds_base, threads_base;

/* ThreadSanitizer starts a background thread of its own at the first
 * pthread_create and keeps it: start it before the baseline is counted, so
 * a TSan build is held to the same "back to its threads" check. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifdef UNDER_TSAN
static void *noop_thread(void *arg) { return arg; }
#endif
static void start_sanitizer_threads(void)
{
#ifdef UNDER_TSAN
    pthread_t t;
    if (pthread_create(&t, NULL, noop_thread, NULL) == 0)
        pthread_join(t, NULL);
#endif
}

/* Starts a scenario: kids forked, then the root, then the id handed out. */
static int start(struct run *run, const struct scenario *sc, int skip_rank)
{
    memset(run, 0, sizeof *run);
    run->sc = sc;
    memset(sh, 0, sizeof *sh);
    for (int r = 0; r < MAXR; r++) {
        run->kids[r].pid = -1;
        run->kids[r].idfd = -1;
        run->kids[r].status = -1;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        perror("pipe");
        return -1;
    }
    run->resr = p[0];
    for (int r = 0; r < sc->n; r++)
        if (r != skip_rank)
            spawn(run, r, p[1]);
    close(p[1]);
    chorus_unique_id_t id;
    chorus_result_t res = chorus_get_unique_id(&id);
    CHECK(res == CHORUS_SUCCESS, "chorus_get_unique_id returned %s: %s", rc_name(res),
          chorus_get_last_error());
    for (int r = 0; r < sc->n; r++) {
        struct kid *k = &run->kids[r];
        if (k->idfd < 0)
            continue;
        if (res == CHORUS_SUCCESS && write(k->idfd, &id, sizeof id) != (ssize_t)sizeof id)
            perror("write id");
        close(k->idfd);
        k->idfd = -1;
    }
    return res == CHORUS_SUCCESS ? 0 : -1;
}

/* Ends a scenario: reap, then this process must be back to its baseline. */
static void finish(struct run *run, const struct shm_list *shm_before)
{
    reap_all(run);
    close(run->resr);
    /* The root thread exits once every rank joined or its init timeout passed. */
    int64_t t0 = now_ns();
    while ((count_threads() > threads_base || count_fds() != fds_base) && ms_since(t0) < 5000)
        sleep_ms(10);
    CHECK(count_threads() <= threads_base, "this process has %d threads, %d before",
          count_threads(), threads_base);
    CHECK(count_fds() == fds_base, "this process has %d fds, %d before", count_fds(), fds_base);
    check_shm_left(shm_before);
}

static void scenario_kill(const struct scenario *sc)
{
    struct run run;
    struct shm_list shm_before;
    const int n = sc->n, victim = sc->victim;
    snprintf(scen_name, sizeof scen_name, "kill rank %d of %d in %s%s", victim, n,
             kind_names[sc->kind], sc->zcopy ? " (chorus_mem_alloc buffers)" : "");
    shm_snapshot(&shm_before);
    int failed_before = failures;
    if (start(&run, sc, -1) == 0) {
        /* Every rank is looping (two collectives done), then ~200 ms more. */
        int64_t t0 = now_ns();
        int ready = 0;
        while (!ready && ms_since(t0) < READY_MS) {
            ready = 1;
            for (int r = 0; r < n; r++)
                ready &= atomic_load(&sh->iters[r]) >= 2;
            collect(&run, n, now_ns() + 5000000);
            if (run.nreports > 0)
                break; /* someone failed already */
        }
        CHECK(ready && run.nreports == 0, "the ranks did not all loop on %s (%d reports)",
              kind_names[sc->kind], run.nreports);
        collect(&run, n, now_ns() + 200 * 1000000LL);
        int64_t kill_ns = now_ns();
        if (run.kids[victim].pid > 0)
            kill(run.kids[victim].pid, SIGKILL);
        collect(&run, n - 1, kill_ns + REPORT_MS * 1000000LL);
        reap_all(&run);
        char st[64];
        describe_status(&run.kids[victim], st, sizeof st);
        CHECK(run.kids[victim].status != -1 && WIFSIGNALED(run.kids[victim].status) &&
                  WTERMSIG(run.kids[victim].status) == SIGKILL,
              "the victim rank %d: %s", victim, st);
        int64_t worst = 0;
        for (int r = 0; r < n; r++) {
            const struct kid *k = &run.kids[r];
            const struct report *p = &k->rep;
            if (r == victim)
                continue;
            CHECK(k->reported, "rank %d (survivor) did not report (%s)", r,
                  run.hung ? "hung" : "died");
            if (!k->reported)
                continue;
            check_common(k, 1);
            int64_t dt = (p->fail_ns - kill_ns) / 1000000;
            worst = dt > worst ? dt : worst;
            CHECK(p->coll_rc == CHORUS_REMOTE_ERROR, "rank %d: %s returned %s, expected "
                  "remote error: %s", r, kind_names[sc->kind], rc_name(p->coll_rc), p->err);
            CHECK(p->fail_ns >= kill_ns && dt <= KILL_BOUND_MS,
                  "rank %d: the call returned %lld ms after the kill (bound %d ms)", r,
                  (long long)dt, KILL_BOUND_MS);
            CHECK(names_rank(p->err, victim), "rank %d: the error text does not name the killed "
                  "rank %d: %s", r, victim, p->err);
            check_broken(p, p->coll_rc == CHORUS_REMOTE_ERROR ? CHORUS_REMOTE_ERROR : -1);
        }
        finish(&run, &shm_before);
        if (failures == failed_before)
            printf("  ok   %s: %d survivors failed with remote error in <= %lld ms\n", scen_name,
                   n - 1, (long long)worst);
    } else {
        finish(&run, &shm_before);
    }
    if (failures != failed_before)
        printf("  FAIL %s\n", scen_name);
    fflush(stdout);
}

static void scenario_abort(const struct scenario *sc)
{
    struct run run;
    struct shm_list shm_before;
    const int n = sc->n;
    char who[32] = "";
    for (int r = 0; r < n; r++)
        if (sc->abort_mask >> r & 1)
            snprintf(who + strlen(who), sizeof who - strlen(who), "%s%d", who[0] ? "," : "", r);
    snprintf(scen_name, sizeof scen_name, "abort on rank%s %s of %d in %s%s%s (rank %d absent)",
             strchr(who, ',') ? "s" : "", who, n, sc->nonblocking ? "i" : "",
             kind_names[sc->kind], sc->zcopy ? " (chorus_mem_alloc buffers)" : "", sc->sleeper);
    shm_snapshot(&shm_before);
    int failed_before = failures;
    if (start(&run, sc, -1) == 0) {
        /* Everyone but the sleeper reports; then the sleeper may call. */
        collect(&run, n - 1, now_ns() + (int64_t)READY_MS * 1000000);
        atomic_store(&sh->release, 1);
        collect(&run, n, now_ns() + REPORT_MS * 1000000LL);
        reap_all(&run);
        int64_t first_abort = INT64_MAX;
        for (int r = 0; r < n; r++)
            if (sc->abort_mask >> r & 1) {
                int64_t a = atomic_load(&sh->abort_ns[r]);
                if (a && a < first_abort)
                    first_abort = a;
            }
        CHECK(first_abort != INT64_MAX, "no abort thread ran");
        int64_t worst = 0;
        for (int r = 0; r < n; r++) {
            const struct kid *k = &run.kids[r];
            const struct report *p = &k->rep;
            CHECK(k->reported, "rank %d did not report", r);
            if (!k->reported)
                continue;
            check_common(k, 1);
            if (r == sc->sleeper) {
                /* Late call on a communicator every peer has given up. */
                int named = 0;
                for (int q = 0; q < n; q++)
                    named |= q != r && names_rank(p->err, q);
                CHECK(p->late_rc == CHORUS_REMOTE_ERROR && p->late_ms <= ABORT_BOUND_MS,
                      "rank %d (joined late): %d call(s) of %s returned %s after %lld ms "
                      "(expected remote error within %d ms): %s",
                      r, p->late_calls, kind_names[sc->late_kind], rc_name(p->late_rc),
                      (long long)p->late_ms, ABORT_BOUND_MS, p->err);
                CHECK(named, "rank %d (joined late): the error names no peer: %s", r, p->err);
                check_broken(p, p->late_rc == CHORUS_REMOTE_ERROR ? CHORUS_REMOTE_ERROR : -1);
                continue;
            }
            /* With several aborting ranks, the first abort may end the call
             * before this rank's own thread fires: measure from the first. */
            int aborter = sc->abort_mask >> r & 1;
            int64_t ref = first_abort != INT64_MAX ? first_abort : 0;
            int64_t dt = (p->fail_ns - ref) / 1000000;
            /* Over TCP, sends go into the kernel's socket buffers: a rank
             * whose part needs nothing from the absent rank finishes before
             * any abort. That is not a blocked call. */
            if (over_net() && p->coll_rc == CHORUS_SUCCESS && p->fail_ns < ref) {
                if (aborter)
                    CHECK(p->abort_rc == CHORUS_SUCCESS, "rank %d: chorus_comm_abort returned %s",
                          r, rc_name(p->abort_rc));
                continue;
            }
            worst = dt > worst ? dt : worst;
            if (aborter)
                CHECK(p->abort_rc == CHORUS_SUCCESS, "rank %d: chorus_comm_abort returned %s", r,
                      rc_name(p->abort_rc));
            CHECK(p->coll_rc == CHORUS_INVALID_USAGE || p->coll_rc == CHORUS_REMOTE_ERROR,
                  "rank %d%s: the blocked %s returned %s (expected invalid usage or remote "
                  "error): %s", r, aborter ? " (aborting)" : "", kind_names[sc->kind],
                  rc_name(p->coll_rc), p->err);
            CHECK(ref > 0 && p->fail_ns >= ref && dt <= ABORT_BOUND_MS,
                  "rank %d%s: the blocked call returned %lld ms after the first abort "
                  "(bound %d ms)", r, aborter ? " (aborting)" : "", (long long)dt,
                  ABORT_BOUND_MS);
            if (!aborter) {
                int named = 0;
                for (int q = 0; q < n; q++)
                    named |= (sc->abort_mask >> q & 1) && names_rank(p->err, q);
                CHECK(named, "rank %d: the error does not name the aborting rank: %s", r,
                      p->err);
            }
            check_broken(p, -1);
        }
        finish(&run, &shm_before);
        if (failures == failed_before)
            printf("  ok   %s: blocked calls returned <= %lld ms after the abort\n", scen_name,
                   (long long)worst);
    } else {
        finish(&run, &shm_before);
    }
    if (failures != failed_before)
        printf("  FAIL %s\n", scen_name);
    fflush(stdout);
}

static void scenario_noinit(const struct scenario *sc)
{
    struct run run;
    struct shm_list shm_before;
    const int n = sc->n, missing = sc->victim;
    snprintf(scen_name, sizeof scen_name, "rank %d of %d never joins init", missing, n);
    shm_snapshot(&shm_before);
    int failed_before = failures;
    int64_t worst = 0;
    if (start(&run, sc, missing) == 0) {
        collect(&run, n - 1, now_ns() + (INIT_BOUND_MS + REPORT_MS) * 1000000LL);
        reap_all(&run);
        for (int r = 0; r < n; r++) {
            const struct kid *k = &run.kids[r];
            const struct report *p = &k->rep;
            if (r == missing)
                continue;
            CHECK(k->reported, "rank %d did not report", r);
            if (!k->reported)
                continue;
            check_common(k, 0);
            worst = p->init_ms > worst ? p->init_ms : worst;
            CHECK(p->init_rc == CHORUS_TIMEOUT, "rank %d: init returned %s (expected timeout): %s",
                  r, rc_name(p->init_rc), p->err);
            CHECK(p->init_ms <= INIT_BOUND_MS, "rank %d: init failed after %lld ms (bound %d)", r,
                  (long long)p->init_ms, INIT_BOUND_MS);
            CHECK(names_rank(p->err, missing), "rank %d: the error does not name rank %d: %s", r,
                  missing, p->err);
        }
    }
    finish(&run, &shm_before);
    printf("  %s %s: init failed with timeout after <= %lld ms\n",
           failures == failed_before ? "ok  " : "FAIL", scen_name, (long long)worst);
    fflush(stdout);
}

static void scenario_stuck(const struct scenario *sc)
{
    struct run run;
    struct shm_list shm_before;
    const int n = sc->n, stuck = sc->victim;
    snprintf(scen_name, sizeof scen_name, "rank %d of %d stops calling (%s%s)", stuck, n,
             kind_names[sc->kind], sc->zcopy ? ", chorus_mem_alloc buffers" : "");
    shm_snapshot(&shm_before);
    int failed_before = failures;
    int64_t worst = 0;
    if (start(&run, sc, -1) == 0) {
        collect(&run, n - 1, now_ns() + (int64_t)(READY_MS + STUCK_BOUND_MS) * 1000000);
        atomic_store(&sh->release, 1);
        collect(&run, n, now_ns() + REPORT_MS * 1000000LL);
        reap_all(&run);
        for (int r = 0; r < n; r++) {
            const struct kid *k = &run.kids[r];
            const struct report *p = &k->rep;
            CHECK(k->reported, "rank %d did not report", r);
            if (!k->reported)
                continue;
            check_common(k, 1);
            CHECK(p->warm_rc == CHORUS_SUCCESS, "rank %d: the warm-up barriers returned %s: %s",
                  r, rc_name(p->warm_rc), p->err);
            if (r == stuck) {
                CHECK(p->late_rc == CHORUS_REMOTE_ERROR && p->late_ms <= ABORT_BOUND_MS,
                      "rank %d (stuck, then released): %d call(s) of %s returned %s after %lld "
                      "ms (expected remote error within %d ms): %s",
                      r, p->late_calls, kind_names[sc->late_kind], rc_name(p->late_rc),
                      (long long)p->late_ms, ABORT_BOUND_MS, p->err);
                check_broken(p, p->late_rc == CHORUS_REMOTE_ERROR ? CHORUS_REMOTE_ERROR : -1);
                continue;
            }
            int64_t dt = (p->fail_ns - p->enter_ns) / 1000000;
            worst = dt > worst ? dt : worst;
            /* Over TCP a rank waiting on a rank that waits on the stuck one
             * may learn the culprit from that rank's failure notice. */
            CHECK(p->coll_rc == CHORUS_TIMEOUT ||
                      (over_net() && p->coll_rc == CHORUS_REMOTE_ERROR),
                  "rank %d: %s returned %s (expected timeout): %s",
                  r, kind_names[sc->kind], rc_name(p->coll_rc), p->err);
            CHECK(dt >= STUCK_TIMEOUT_MS * 9 / 10 && dt <= STUCK_BOUND_MS,
                  "rank %d: the call returned after %lld ms (CHORUS_TIMEOUT_MS=%d, bound %d)", r,
                  (long long)dt, STUCK_TIMEOUT_MS, STUCK_BOUND_MS);
            CHECK(names_rank(p->err, stuck), "rank %d: the error does not name the stuck rank "
                  "%d: %s", r, stuck, p->err);
            check_broken(p, p->coll_rc == CHORUS_TIMEOUT || p->coll_rc == CHORUS_REMOTE_ERROR
                                ? p->coll_rc : -1);
        }
    }
    finish(&run, &shm_before);
    printf("  %s %s: timed out after <= %lld ms\n", failures == failed_before ? "ok  " : "FAIL",
           scen_name, (long long)worst);
    fflush(stdout);
}

/* ---- cases ----------------------------------------------------------------- */

static void case_kill(void)
{
    static const enum kind all[] = {K_AR_SMALL, K_AR_LARGE, K_ALLGATHER,    K_ALLTOALL,
                                    K_BCAST,    K_RSCATTER, K_REDUCE,       K_BARRIER,
                                    K_SENDRECV, K_SENDRECV_SMALL};
    static const enum kind eight[] = {K_AR_SMALL, K_ALLTOALL, K_BARRIER, K_SENDRECV_SMALL,
                                      K_BCAST};
    static const int sizes[] = {2, 4};
    int idx = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++, idx++) {
            struct scenario sc = {M_KILL, sizes[s], all[i], (idx * 3 + 1) % sizes[s], 0, -1, 0,
                                  all[i], 0};
            scenario_kill(&sc);
        }
    for (size_t i = 0; i < sizeof eight / sizeof eight[0]; i++, idx++) {
        struct scenario sc = {M_KILL, 8, eight[i], (idx * 3 + 1) % 8, 0, -1, 0, eight[i], 0};
        scenario_kill(&sc);
    }
    /* zero copy: the survivors read a dead peer's buffers through their own
     * mappings (which stay valid), so only the waits can notice */
    static const struct scenario zcopy[] = {
        {M_KILL, 3, K_AR_LARGE, 1, 0, -1, 0, K_AR_LARGE, 1},
        {M_KILL, 2, K_RSCATTER, 0, 0, -1, 0, K_RSCATTER, 1},
        {M_KILL, 3, K_ALLGATHER, 2, 0, -1, 0, K_ALLGATHER, 1},
        {M_KILL, 4, K_ALLTOALL, 3, 0, -1, 0, K_ALLTOALL, 1},
    };
    for (size_t i = 0; i < sizeof zcopy / sizeof zcopy[0]; i++)
        scenario_kill(&zcopy[i]);
}

static void case_abort(void)
{
    /* One rank aborts; a peer blocked in the same collective; one rank absent. */
    static const struct scenario list[] = {
        {M_ABORT, 2, K_AR_SMALL, -1, 1 << 0, 1, 0, K_AR_SMALL, 0},
        {M_ABORT, 3, K_AR_SMALL, -1, 1 << 0, 2, 0, K_AR_SMALL, 0},
        {M_ABORT, 3, K_AR_LARGE, -1, 1 << 1, 0, 0, K_AR_LARGE, 0},
        {M_ABORT, 3, K_AR_LARGE, -1, 1 << 1, 0, 0, K_AR_LARGE, 1}, /* zero copy */
        {M_ABORT, 3, K_SENDRECV, -1, 1 << 0, 2, 0, K_SENDRECV, 0},
        {M_ABORT, 3, K_BCAST, -1, 1 << 2, 0, 0, K_BCAST, 0},
        {M_ABORT, 3, K_AR_SMALL, -1, 1 << 0, 2, 1, K_AR_SMALL, 0},  /* iallreduce + wait */
        {M_ABORT, 4, K_BARRIER, -1, 0x7, 3, 0, K_BARRIER, 0},       /* every joined rank aborts */
        {M_ABORT, 4, K_BARRIER, -1, 0x5, 1, 1, K_BARRIER, 0},       /* ibarrier, two abort */
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        scenario_abort(&list[i]);
}

static void case_noinit(void)
{
    static const struct scenario list[] = {
        {M_NOINIT, 3, K_BARRIER, 2, 0, -1, 0, K_BARRIER, 0},
        {M_NOINIT, 3, K_BARRIER, 0, 0, -1, 0, K_BARRIER, 0},
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        scenario_noinit(&list[i]);
}

static void case_stuck(void)
{
    static const struct scenario list[] = {
        {M_STUCK, 2, K_AR_SMALL, 1, 0, -1, 0, K_AR_SMALL, 0},
        {M_STUCK, 3, K_AR_SMALL, 1, 0, -1, 0, K_AR_SMALL, 0},
        {M_STUCK, 3, K_AR_LARGE, 0, 0, -1, 0, K_AR_LARGE, 0},
        {M_STUCK, 3, K_AR_LARGE, 2, 0, -1, 0, K_AR_LARGE, 1}, /* zero copy */
        {M_STUCK, 2, K_P2P, 1, 0, -1, 0, K_BARRIER, 0},
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        scenario_stuck(&list[i]);
}

struct case_def {
    const char *name;
    void (*fn)(void);
    const char *timeout_ms, *init_timeout_ms;
};

static const struct case_def cases[] = {
    {"kill", case_kill, "20000", "10000"},
    {"abort", case_abort, "20000", "10000"},
    {"noinit", case_noinit, "20000", "1500"},
    {"stuck", case_stuck, "1000", "10000"},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* One case in this (fresh) process; writes its counts to fd resfd. */
static int run_case(const struct case_def *c, int resfd)
{
    /* Before anything reads the tunables (once per process); the ranks
     * forked below inherit them. */
    setenv("CHORUS_SOCKET_IFNAME", "lo", 1);
    setenv("CHORUS_TIMEOUT_MS", c->timeout_ms, 1);
    setenv("CHORUS_INIT_TIMEOUT_MS", c->init_timeout_ms, 1);
    signal(SIGPIPE, SIG_IGN); /* this process writes ids into pipes of ranks */
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    start_sanitizer_threads();
    fds_base = count_fds();
    threads_base = count_threads();
    printf("case %s (CHORUS_TIMEOUT_MS=%s, CHORUS_INIT_TIMEOUT_MS=%s)\n", c->name, c->timeout_ms,
           c->init_timeout_ms);
    fflush(stdout);
    c->fn();
    int counts[2] = {checks, failures};
    if (resfd >= 0 && write(resfd, counts, sizeof counts) != (ssize_t)sizeof counts)
        perror("write counts");
    return failures ? 1 : 0;
}

/* Runs one case in a fresh process: this program with --case NAME FD. */
static void spawn_case(const struct case_def *c)
{
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        failures++;
        return;
    }
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    struct shm_list shm_before;
    shm_snapshot(&shm_before);
    fflush(stdout);
    fflush(stderr);
    int64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        char fd[16];
        snprintf(fd, sizeof fd, "%d", p[1]);
        char *argv[] = {(char *)"test_fault", (char *)"--case", (char *)c->name, fd, NULL};
        setpgid(0, 0); /* its own group: a hang is killed with every rank */
        execv("/proc/self/exe", argv);
        perror("execv /proc/self/exe");
        _exit(127);
    }
    close(p[1]);
    int st = -1;
    if (pid < 0) {
        perror("fork");
    } else {
        setpgid(pid, pid);
        while (waitpid(pid, &st, WNOHANG) == 0) {
            if (ms_since(t0) > case_limit_ms()) {
                fprintf(stderr, "FAIL case %s: still running after %d ms; killing it\n", c->name,
                        case_limit_ms());
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                st = -1;
                break;
            }
            sleep_ms(20);
        }
    }
    int counts[2] = {0, 0};
    ssize_t got = read(p[0], counts, sizeof counts);
    close(p[0]);
    snprintf(scen_name, sizeof scen_name, "case %s", c->name);
    checks += counts[0];
    failures += counts[1];
    CHECK(got == (ssize_t)sizeof counts && st != -1 && WIFEXITED(st) &&
              (WEXITSTATUS(st) == 0 || (WEXITSTATUS(st) == 1 && counts[1] > 0)),
          "the case process ended with status %#x (reported %zd bytes)", st, got);
    check_shm_left(&shm_before);
    printf("case %s: %d checks, %d failed, %.1f s\n", c->name, counts[0], counts[1],
           (double)(now_ns() - t0) / 1e9);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--case")) {
        for (size_t i = 0; i < NCASES; i++)
            if (!strcmp(argv[2], cases[i].name))
                return run_case(&cases[i], atoi(argv[3]));
        fprintf(stderr, "test_fault: unknown case %s\n", argv[2]);
        return 2;
    }
    for (int a = 1; a < argc; a++) {
        int known = 0;
        for (size_t i = 0; i < NCASES; i++)
            known |= !strcmp(argv[a], cases[i].name);
        if (!known) {
            fprintf(stderr, "usage: test_fault [kill|abort|noinit|stuck ...]\n");
            return 2;
        }
    }
    int fds = count_fds();
    for (size_t i = 0; i < NCASES; i++) {
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted |= !strcmp(argv[a], cases[i].name);
        if (wanted)
            spawn_case(&cases[i]);
    }
    snprintf(scen_name, sizeof scen_name, "test_fault");
    CHECK(count_fds() == fds, "this process has %d fds, %d at start", count_fds(), fds);
    if (failures) {
        fprintf(stderr, "FAILED test_fault: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("ok test_fault: %d checks\n", checks);
    return 0;
}
