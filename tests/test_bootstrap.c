/* test_bootstrap.c - the TCP bootstrap with real processes on loopback.
 *
 * Each scenario forks its ranks first (they wait on a pipe for the unique
 * id), then the parent starts the root and hands the id out, so no fork
 * happens while a root thread runs. Every child has an alarm() as a safety
 * net and the parent kills and reaps whatever outlives its bound. Only
 * 127.0.0.1 and ::1 are used.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bootstrap.h"
#include "bootstrap_msg.h"
#include "chorus.h"
#include "socket.h"

#define INIT_TIMEOUT_MS 2000 /* CHORUS_INIT_TIMEOUT_MS: the root's lifetime */
#define RANK_TIMEOUT_MS 10000
#define CHILD_ALARM_S 30
#define REAP_MS 45000

static int checks, failures;
static int results_w = -1, results_r = -1; /* children report their check counts */
static int baseline_threads;
static const char *mode = "";

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        checks++;                                                              \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            fprintf(stderr, "FAIL %s%s:%d: ", mode, __FILE__, __LINE__);       \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, " [last error: %s]\n", chorus_get_last_error());   \
        }                                                                      \
    } while (0)

static int64_t now_ms(void) { return chorus_socket_now_ms(); }

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

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (!d)
        return 1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Waits until every root thread this process started has exited. */
static void wait_roots_gone(void)
{
    int64_t end = now_ms() + 10000;
    while (count_threads() > baseline_threads && now_ms() < end)
        poll(NULL, 0, 10);
    CHECK(count_threads() <= baseline_threads, "root threads exit (%d threads left)",
          count_threads());
}

/* ---- children ----------------------------------------------------------------- */

typedef int (*child_fn)(const chorus_unique_id_t *id, int rank, int nranks, const void *arg);

struct kid {
    pid_t pid;
    int idfd; /* write end: the id goes here */
    const char *what;
};

static int child_checks;
#define CCHECK(cond, ...)                                                             \
    do {                                                                              \
        child_checks++;                                                               \
        if (!(cond)) {                                                                \
            fprintf(stderr, "FAIL %schild %s:%d: ", mode, __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                                             \
            fprintf(stderr, " [last error: %s]\n", chorus_get_last_error());          \
            return 1;                                                                 \
        }                                                                             \
    } while (0)

static struct kid spawn(const char *what, child_fn fn, int rank, int nranks, const void *arg)
{
    struct kid k = {-1, -1, what};
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        perror("pipe");
        return k;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        close(p[0]);
        close(p[1]);
        return k;
    }
    if (pid == 0) {
        close(p[1]);
        close(results_r);
        signal(SIGPIPE, SIG_DFL); /* the library must never raise it */
        alarm(CHILD_ALARM_S);
        chorus_unique_id_t id;
        size_t got = 0;
        while (got < sizeof id) {
            ssize_t n = read(p[0], (char *)&id + got, sizeof id - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                exit(3); /* the parent gave up on this scenario */
            got += (size_t)n;
        }
        close(p[0]);
        child_checks = 0;
        int rc = fn(&id, rank, nranks, arg);
        if (rc == 0) {
            int c = child_checks;
            if (write(results_w, &c, sizeof c) != (ssize_t)sizeof c)
                rc = 4;
        } else {
            fprintf(stderr, "FAIL %schild '%s' rank %d of %d failed\n", mode, what, rank,
                    nranks);
        }
        fflush(stderr);
        exit(rc);
    }
    close(p[0]);
    k.pid = pid;
    k.idfd = p[1];
    return k;
}

static void release(struct kid *k, const chorus_unique_id_t *id)
{
    if (k->idfd < 0)
        return;
    if (id && write(k->idfd, id, sizeof *id) != (ssize_t)sizeof *id)
        perror("write id");
    close(k->idfd);
    k->idfd = -1;
}

/* Reaps every kid (killing those still alive after REAP_MS); each kid that
 * exited 0 counts as a check. Returns the number that failed. */
static int reap(struct kid *kids, int n)
{
    int failed = 0, left = 0;
    for (int i = 0; i < n; i++) {
        release(&kids[i], NULL);
        left += kids[i].pid > 0;
    }
    int64_t end = now_ms() + REAP_MS;
    while (left > 0) {
        for (int i = 0; i < n; i++) {
            if (kids[i].pid <= 0)
                continue;
            int st;
            pid_t r = waitpid(kids[i].pid, &st, WNOHANG);
            if (r == 0 && now_ms() < end)
                continue;
            if (r == 0) {
                fprintf(stderr, "FAIL %schild '%s' (pid %d) hung; killing it\n", mode,
                        kids[i].what, (int)kids[i].pid);
                kill(kids[i].pid, SIGKILL);
                waitpid(kids[i].pid, &st, 0);
                st = -1;
            } else if (r < 0) {
                st = -1;
            }
            checks++;
            if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                failures++;
                failed++;
                if (st != -1)
                    fprintf(stderr, "FAIL %schild '%s' %s %d\n", mode, kids[i].what,
                            WIFSIGNALED(st) ? "killed by signal" : "exited with",
                            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            }
            kids[i].pid = -1;
            left--;
        }
        if (left > 0)
            poll(NULL, 0, 5);
    }
    /* Collect the children's own check counts. */
    int c;
    while (read(results_r, &c, sizeof c) == (ssize_t)sizeof c)
        checks += c;
    return failed;
}

static void fill(unsigned char *p, size_t size, int rank, int call)
{
    for (size_t i = 0; i < size; i++)
        p[i] = (unsigned char)((i * 131u) ^ (unsigned)(rank * 7 + call * 13) ^ (i >> 8));
}

static int verify(const unsigned char *all, size_t size, int nranks, int call)
{
    unsigned char *want = malloc(size ? size : 1);
    int bad = -1;
    for (int r = 0; r < nranks && bad < 0; r++) {
        fill(want, size, r, call);
        if (size && memcmp(all + (size_t)r * size, want, size) != 0)
            bad = r;
    }
    free(want);
    return bad;
}

/* The normal life of a rank: init, allgathers of several sizes, barriers. */
static int child_rank(const chorus_unique_id_t *id, int rank, int nranks, const void *arg)
{
    (void)arg;
    struct chorus_bootstrap *bs = NULL;
    int fds = count_fds();
    chorus_result_t res = chorus_bootstrap_init(&bs, id, rank, nranks, RANK_TIMEOUT_MS);
    CCHECK(res == CHORUS_SUCCESS && bs, "rank %d of %d: init returned %d", rank, nranks, res);
    static const size_t sizes[] = {1, 0, 7, 4096, 65537, 1 << 20, 3};
    for (int call = 0; call < (int)(sizeof sizes / sizeof sizes[0]); call++) {
        size_t size = sizes[call];
        unsigned char *mine = malloc(size ? size : 1);
        unsigned char *all = malloc(size * (size_t)nranks + 1);
        fill(mine, size, rank, call);
        memset(all, 0xee, size * (size_t)nranks + 1);
        res = chorus_bootstrap_allgather(bs, mine, all, size);
        int bad = res == CHORUS_SUCCESS ? verify(all, size, nranks, call) : -2;
        free(mine);
        free(all);
        CCHECK(res == CHORUS_SUCCESS && bad == -1,
               "rank %d of %d: allgather of %zu bytes: result %d, wrong block of rank %d", rank,
               nranks, size, res, bad);
    }
    /* In place: the rank's own slot is the input. */
    {
        size_t size = 1000;
        unsigned char *all = malloc(size * (size_t)nranks);
        memset(all, 0, size * (size_t)nranks);
        fill(all + (size_t)rank * size, size, rank, 99);
        res = chorus_bootstrap_allgather(bs, all + (size_t)rank * size, all, size);
        int bad = res == CHORUS_SUCCESS ? verify(all, size, nranks, 99) : -2;
        free(all);
        CCHECK(res == CHORUS_SUCCESS && bad == -1, "rank %d: in-place allgather (%d, rank %d)",
               rank, res, bad);
    }
    for (int i = 0; i < 3; i++)
        CCHECK(chorus_bootstrap_barrier(bs) == CHORUS_SUCCESS, "rank %d: barrier %d", rank, i);
    chorus_bootstrap_set_timeout(bs, 5000);
    int v = rank * 10, sum = 0;
    int *vals = malloc(sizeof(int) * (size_t)nranks);
    res = chorus_bootstrap_allgather(bs, &v, vals, sizeof v);
    for (int r = 0; r < nranks && res == CHORUS_SUCCESS; r++)
        sum += vals[r];
    free(vals);
    CCHECK(res == CHORUS_SUCCESS && sum == 10 * nranks * (nranks - 1) / 2,
           "rank %d: allgather of ints (sum %d)", rank, sum);
    chorus_bootstrap_destroy(bs);
    CCHECK(count_fds() == fds, "rank %d: %d fds before init, %d after destroy", rank, fds,
           count_fds());
    return 0;
}

/* A process that must be turned away: init fails with the expected code and
 * a text containing arg (a string) within RANK_TIMEOUT_MS. */
struct expect_fail {
    chorus_result_t code;
    const char *text;
    const char *text2;
    int timeout_ms;
    int64_t max_ms;
};

static int child_fails(const chorus_unique_id_t *id, int rank, int nranks, const void *arg)
{
    const struct expect_fail *e = (const struct expect_fail *)arg;
    struct chorus_bootstrap *bs = NULL;
    int fds = count_fds();
    int64_t t0 = now_ms();
    chorus_result_t res = chorus_bootstrap_init(&bs, id, rank, nranks, e->timeout_ms);
    int64_t took = now_ms() - t0;
    chorus_bootstrap_destroy(bs);
    CCHECK(count_fds() == fds, "rank %d: failed init leaks fds (%d before, %d after)", rank, fds,
           count_fds());
    CCHECK(res == e->code && bs == NULL, "rank %d of %d: init returned %d, expected %d", rank,
           nranks, res, e->code);
    CCHECK(!e->text || strstr(chorus_get_last_error(), e->text), "error text lacks '%s'",
           e->text);
    CCHECK(!e->text2 || strstr(chorus_get_last_error(), e->text2), "error text lacks '%s'",
           e->text2);
    CCHECK(took <= e->max_ms, "init took %lld ms, expected at most %lld", (long long)took,
           (long long)e->max_ms);
    return 0;
}

/* ---- scenarios ------------------------------------------------------------------- */

static void scenario_basic(int nranks)
{
    struct kid kids[8];
    chorus_unique_id_t id;
    for (int r = 0; r < nranks; r++)
        kids[r] = spawn("rank", child_rank, r, nranks, NULL);
    chorus_result_t res = chorus_bootstrap_root_create(&id);
    CHECK(res == CHORUS_SUCCESS, "root_create for %d ranks", nranks);
    for (int r = 0; r < nranks; r++)
        release(&kids[r], res == CHORUS_SUCCESS ? &id : NULL);
    int failed = reap(kids, nranks);
    if (!failed)
        printf("  %s%d rank(s): allgather and barrier ok\n", mode, nranks);
    wait_roots_gone();
}

static void forge_secret(chorus_unique_id_t *id)
{
    struct chorus_sockaddr addr;
    uint8_t secret[16];
    CHECK(chorus_bsmsg_decode_id(id, &addr, secret) == CHORUS_SUCCESS, "decode id");
    secret[3] ^= 0x5a;
    CHECK(chorus_bsmsg_encode_id(id, &addr, secret) == CHORUS_SUCCESS, "re-encode forged id");
}

static void scenario_wrong_secret(void)
{
    const int n = 3;
    struct kid kids[4];
    chorus_unique_id_t id, forged;
    static const struct expect_fail fail_secret = {CHORUS_INVALID_ARGUMENT, "wrong secret", NULL,
                                                   RANK_TIMEOUT_MS, 3000};
    for (int r = 0; r < n; r++)
        kids[r] = spawn("rank", child_rank, r, n, NULL);
    kids[n] = spawn("forger process", child_fails, 1, n, &fail_secret);
    CHECK(chorus_bootstrap_root_create(&id) == CHORUS_SUCCESS, "root_create");
    forged = id;
    forge_secret(&forged);

    /* First a forger in this process: rejected at once. */
    struct chorus_bootstrap *bs = NULL;
    int64_t t0 = now_ms();
    chorus_result_t res = chorus_bootstrap_init(&bs, &forged, 0, n, RANK_TIMEOUT_MS);
    CHECK(res == CHORUS_INVALID_ARGUMENT && bs == NULL, "forged id rejected (%d)", res);
    CHECK(strstr(chorus_get_last_error(), "wrong secret") != NULL, "rejection says wrong secret");
    CHECK(now_ms() - t0 < 3000, "rejection is quick");

    /* Then a forger in another process, and the real ranks right after it
     * (the root must still be waiting for them, so it goes first). */
    release(&kids[n], &forged);
    int bad = reap(&kids[n], 1);
    for (int r = 0; r < n; r++)
        release(&kids[r], &id);
    if (!reap(kids, n) && !bad)
        printf("  %sa client with the wrong secret is rejected; the ranks complete\n", mode);
    wait_roots_gone();
}

static void scenario_bad_joins(void)
{
    struct kid kids[4];
    chorus_unique_id_t id;
    static const struct expect_fail dup = {CHORUS_INVALID_ARGUMENT, "already joined", NULL,
                                           RANK_TIMEOUT_MS, 3000};
    static const struct expect_fail mismatch = {CHORUS_INVALID_ARGUMENT, "nranks", NULL,
                                                RANK_TIMEOUT_MS, 3000};
    kids[0] = spawn("rank", child_rank, 0, 2, NULL);
    kids[1] = spawn("duplicate rank 0", child_fails, 0, 2, &dup);
    kids[2] = spawn("rank 1 of 3", child_fails, 1, 3, &mismatch);
    kids[3] = spawn("rank", child_rank, 1, 2, NULL);
    CHECK(chorus_bootstrap_root_create(&id) == CHORUS_SUCCESS, "root_create");
    release(&kids[0], &id);
    poll(NULL, 0, 300); /* let rank 0 join first */
    release(&kids[1], &id);
    release(&kids[2], &id);
    poll(NULL, 0, 300);
    release(&kids[3], &id);
    if (!reap(kids, 4))
        printf("  %sa duplicate rank and an nranks mismatch are rejected\n", mode);
    wait_roots_gone();
}

/* Reads until EOF, an ERROR message, or timeout. 1 if the root hung up or
 * answered with ERROR. */
static int expect_hangup(int fd, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    uint8_t buf[4096];
    while (now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return 1;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return 1;
    }
    return 0;
}

static int connect_to(const struct chorus_sockaddr *a)
{
    int fd = -1;
    if (chorus_socket_connect(a, chorus_socket_deadline(2000), NULL, &fd) != CHORUS_SUCCESS)
        return -1;
    return fd;
}

/* Receives one whole message of up to cap bytes. */
static int recv_message(int fd, uint8_t *buf, size_t cap, size_t *len, unsigned *type)
{
    struct chorus_bsmsg_header h;
    int64_t dl = chorus_socket_deadline(3000);
    if (chorus_socket_recv_all(fd, buf, 12, dl, "test peer") != CHORUS_SUCCESS)
        return -1;
    if (chorus_bsmsg_decode_header(buf, 12, 0, &h) != CHORUS_SUCCESS || 12 + h.length > cap)
        return -1;
    if (chorus_socket_recv_all(fd, buf + 12, h.length, dl, "test peer") != CHORUS_SUCCESS)
        return -1;
    *len = 12 + h.length;
    *type = h.type;
    return 0;
}

static void scenario_garbage_to_root(void)
{
    const int n = 3;
    struct kid kids[3];
    chorus_unique_id_t id;
    struct chorus_sockaddr root;
    uint8_t secret[16], buf[4096];
    for (int r = 0; r < n; r++)
        kids[r] = spawn("rank", child_rank, r, n, NULL);
    CHECK(chorus_bootstrap_root_create(&id) == CHORUS_SUCCESS, "root_create");
    CHECK(chorus_bsmsg_decode_id(&id, &root, secret) == CHORUS_SUCCESS, "decode id");

    int silent = connect_to(&root); /* holds a connection open all along */
    CHECK(silent >= 0, "silent client connects");

    /* random bytes */
    int fd = connect_to(&root);
    for (size_t i = 0; i < 300; i++)
        buf[i] = (uint8_t)(rand() & 0xff);
    CHECK(fd >= 0 && send(fd, buf, 300, MSG_NOSIGNAL) == 300, "send garbage");
    CHECK(expect_hangup(fd, 1500), "root hangs up on garbage");
    close(fd);

    /* a valid header announcing a huge payload */
    fd = connect_to(&root);
    size_t len;
    chorus_bsmsg_encode_peer(buf, sizeof buf, 0, 1, &len);
    buf[6] = 0;
    buf[7] = CHORUS_BSMSG_PROOF;
    buf[8] = buf[9] = buf[10] = buf[11] = 0xff;
    CHECK(fd >= 0 && send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len, "send huge header");
    CHECK(expect_hangup(fd, 1500), "root hangs up on an oversized message");
    close(fd);

    /* an HTTP request */
    fd = connect_to(&root);
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(fd >= 0 && send(fd, http, strlen(http), MSG_NOSIGNAL) == (ssize_t)strlen(http),
          "send HTTP");
    CHECK(expect_hangup(fd, 1500), "root hangs up on HTTP");
    close(fd);

    /* connect and leave at once, a few times */
    for (int i = 0; i < 5; i++) {
        fd = connect_to(&root);
        CHECK(fd >= 0, "connect");
        close(fd);
    }

    /* a well-formed handshake with the wrong proof, and then one that skips
     * the proof and sends JOIN directly */
    fd = connect_to(&root);
    unsigned type = 0;
    CHECK(fd >= 0 && recv_message(fd, buf, sizeof buf, &len, &type) == 0 &&
              type == CHORUS_BSMSG_HELLO,
          "root greets with HELLO");
    uint8_t mac[8] = {0}, nonce[16] = {0};
    chorus_bsmsg_encode_proof(buf, sizeof buf, mac, nonce, &len);
    CHECK(send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len, "send wrong proof");
    CHECK(recv_message(fd, buf, sizeof buf, &len, &type) == 0 && type == CHORUS_BSMSG_ERROR,
          "root answers a wrong proof with ERROR");
    chorus_result_t code;
    char text[600];
    CHECK(chorus_bsmsg_decode_error(buf, len, &code, text, sizeof text) == CHORUS_SUCCESS &&
              code == CHORUS_INVALID_ARGUMENT && strstr(text, "wrong secret"),
          "ERROR says wrong secret: %s", text);
    CHECK(expect_hangup(fd, 1500), "root hangs up after a wrong proof");
    close(fd);

    fd = connect_to(&root);
    CHECK(fd >= 0 && recv_message(fd, buf, sizeof buf, &len, &type) == 0, "HELLO");
    struct chorus_sockaddr fake;
    chorus_socket_resolve("127.0.0.1", 9, AF_INET, &fake);
    chorus_bsmsg_encode_join(buf, sizeof buf, 0, n, &fake, &len);
    CHECK(send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len, "send JOIN without proof");
    CHECK(expect_hangup(fd, 1500), "root hangs up on a JOIN without proof");
    close(fd);

    for (int r = 0; r < n; r++)
        release(&kids[r], &id);
    if (!reap(kids, n))
        printf("  %sgarbage, HTTP, oversized and unproven clients do not disturb the root\n",
               mode);
    CHECK(expect_hangup(silent, 3000), "root drops the silent client when done");
    close(silent);
    wait_roots_gone();
}

static void scenario_missing_rank(void)
{
    const int n = 3;
    struct kid kids[2];
    chorus_unique_id_t id;
    static const struct expect_fail missing = {CHORUS_TIMEOUT, "never arrived", "rank 2",
                                               3 * INIT_TIMEOUT_MS, INIT_TIMEOUT_MS + 2000};
    for (int r = 0; r < 2; r++)
        kids[r] = spawn("rank expecting a timeout", child_fails, r, n, &missing);
    CHECK(chorus_bootstrap_root_create(&id) == CHORUS_SUCCESS, "root_create");
    int64_t t0 = now_ms();
    for (int r = 0; r < 2; r++)
        release(&kids[r], &id);
    if (!reap(kids, 2))
        printf("  %sa rank that never shows up: the others fail with CHORUS_TIMEOUT naming it "
               "(%lld ms)\n",
               mode, (long long)(now_ms() - t0));
    wait_roots_gone();
    /* The root is gone: its port refuses. */
    struct chorus_sockaddr root;
    uint8_t secret[16];
    chorus_bsmsg_decode_id(&id, &root, secret);
    int fd = -1;
    CHECK(chorus_socket_connect(&root, chorus_socket_deadline(300), NULL, &fd) == CHORUS_TIMEOUT,
          "the timed-out root no longer listens");
    if (fd >= 0)
        close(fd);
}

/* A port that nobody listens on. */
static int free_port(int family)
{
    struct chorus_sockaddr a;
    if (chorus_socket_resolve(family == AF_INET6 ? "::1" : "127.0.0.1", 0, family, &a) !=
        CHORUS_SUCCESS)
        return -1;
    int fd;
    struct chorus_sockaddr bound;
    if (chorus_socket_listen(&a, 1, &fd, &bound) != CHORUS_SUCCESS)
        return -1;
    int port = chorus_sockaddr_port(&bound);
    close(fd);
    return port;
}

static void scenario_no_root_and_bad_args(void)
{
    chorus_unique_id_t id;
    struct chorus_bootstrap *bs = (struct chorus_bootstrap *)&id; /* must be reset to NULL */
    int port = free_port(AF_INET);
    CHECK(port > 0, "free port");
    CHECK(chorus_bootstrap_root_from_address("127.0.0.1", port, 0, "x", &id) == CHORUS_SUCCESS,
          "id for a root that does not exist");
    int64_t t0 = now_ms();
    chorus_result_t res = chorus_bootstrap_init(&bs, &id, 0, 2, 700);
    int64_t took = now_ms() - t0;
    CHECK(res == CHORUS_TIMEOUT && bs == NULL, "no root: CHORUS_TIMEOUT (%d)", res);
    CHECK(took >= 600 && took < 3000, "no root: gave up after %lld ms", (long long)took);
    CHECK(strstr(chorus_get_last_error(), "bootstrap root") != NULL, "no root: names the root");

    CHECK(chorus_bootstrap_init(&bs, &id, 2, 2, 100) == CHORUS_INVALID_ARGUMENT, "rank == n");
    CHECK(chorus_bootstrap_init(&bs, &id, -1, 2, 100) == CHORUS_INVALID_ARGUMENT, "rank < 0");
    CHECK(chorus_bootstrap_init(&bs, &id, 0, 0, 100) == CHORUS_INVALID_ARGUMENT, "nranks 0");
    CHECK(chorus_bootstrap_init(&bs, NULL, 0, 1, 100) == CHORUS_INVALID_ARGUMENT, "NULL id");
    CHECK(chorus_bootstrap_init(NULL, &id, 0, 1, 100) == CHORUS_INVALID_ARGUMENT, "NULL bs");
    chorus_unique_id_t bad = id;
    bad.internal[20] ^= 4;
    CHECK(chorus_bootstrap_init(&bs, &bad, 0, 1, 100) == CHORUS_INVALID_ARGUMENT &&
              strstr(chorus_get_last_error(), "corrupted"),
          "corrupted id");
    CHECK(chorus_bootstrap_allgather(NULL, "a", bad.internal, 1) == CHORUS_INVALID_ARGUMENT,
          "allgather on NULL");
    CHECK(chorus_bootstrap_barrier(NULL) == CHORUS_INVALID_ARGUMENT, "barrier on NULL");
    chorus_bootstrap_set_timeout(NULL, 5);
    chorus_bootstrap_destroy(NULL);
    CHECK(chorus_bootstrap_root_create(NULL) == CHORUS_INVALID_ARGUMENT, "root_create(NULL)");
    CHECK(chorus_bootstrap_root_from_address(NULL, 1, 0, NULL, &id) == CHORUS_INVALID_ARGUMENT,
          "from_address without host");
    CHECK(chorus_bootstrap_root_from_address("127.0.0.1", 0, 0, NULL, &id) ==
              CHORUS_INVALID_ARGUMENT,
          "from_address with port 0");
    CHECK(chorus_bootstrap_root_from_address("127.0.0.1", 65536, 0, NULL, &id) ==
              CHORUS_INVALID_ARGUMENT,
          "from_address with port 65536");
    printf("  %sno root: CHORUS_TIMEOUT after %lld ms; bad arguments rejected\n", mode,
           (long long)took);
}

/* Env-var style: ranks build their own id and start connecting before the
 * root listens. */
struct addr_arg {
    const char *host;
    int port;
    const char *secret;
};

static int child_env_rank(const chorus_unique_id_t *given, int rank, int nranks, const void *arg)
{
    const struct addr_arg *a = (const struct addr_arg *)arg;
    chorus_unique_id_t id;
    CCHECK(chorus_bootstrap_root_from_address(a->host, a->port, 0, a->secret, &id) ==
               CHORUS_SUCCESS,
           "rank %d: id from address", rank);
    CCHECK(!memcmp(&id, given, sizeof id), "rank %d: id matches the root's", rank);
    return child_rank(&id, rank, nranks, NULL);
}

static int child_env_forger(const chorus_unique_id_t *given, int rank, int nranks,
                            const void *arg)
{
    (void)given;
    const struct addr_arg *a = (const struct addr_arg *)arg;
    chorus_unique_id_t id;
    CCHECK(chorus_bootstrap_root_from_address(a->host, a->port, 0, "not the secret", &id) ==
               CHORUS_SUCCESS,
           "forger id");
    struct expect_fail e = {CHORUS_INVALID_ARGUMENT, "wrong secret", NULL, RANK_TIMEOUT_MS,
                            5000};
    return child_fails(&id, rank, nranks, &e);
}

static void scenario_from_address(const char *host, int family, const char *secret, int n)
{
    struct kid kids[8];
    chorus_unique_id_t id;
    int port = free_port(family);
    CHECK(port > 0, "free port");
    static struct addr_arg a;
    a.host = host;
    a.port = port;
    a.secret = secret;
    for (int r = 0; r < n; r++)
        kids[r] = spawn("env rank", child_env_rank, r, n, &a);
    kids[n] = spawn("env forger", child_env_forger, 0, n, &a);
    CHECK(chorus_bootstrap_root_from_address(host, port, 0, secret, &id) == CHORUS_SUCCESS,
          "id from address");
    /* All ranks but the last start before the root listens: they retry. */
    for (int r = 0; r < n - 1; r++)
        release(&kids[r], &id);
    poll(NULL, 0, 300);
    chorus_unique_id_t id2;
    CHECK(chorus_bootstrap_root_from_address(host, port, 1, secret, &id2) == CHORUS_SUCCESS,
          "root from address");
    CHECK(!memcmp(&id, &id2, sizeof id), "root and ranks derive the same id");
    /* The forger, while the root still waits for the last rank. */
    release(&kids[n], &id);
    int bad = reap(&kids[n], 1);
    release(&kids[n - 1], &id);
    if (!reap(kids, n) && !bad)
        printf("  %sroot at %s:%d (secret %s): ranks that started first connect; a wrong "
               "secret is rejected\n",
               mode, host, port, secret ? "given" : "none");
    wait_roots_gone();
}

/* The parent plays the root by hand so it learns the ranks' listening
 * addresses, and attacks rank 1's listening socket before the ring forms. */
static void scenario_foreign_ring_clients(void)
{
    const int n = 2;
    struct kid kids[2];
    struct chorus_sockaddr any, root, addrs[2];
    uint8_t secret[16], buf[4096];
    chorus_unique_id_t id;
    int lfd = -1, conn[2] = {-1, -1};
    size_t len;
    unsigned type;

    for (int r = 0; r < n; r++)
        kids[r] = spawn("rank behind a hand-made root", child_rank, r, n, NULL);
    chorus_socket_resolve("127.0.0.1", 0, AF_INET, &any);
    CHECK(chorus_socket_listen(&any, 0, &lfd, &root) == CHORUS_SUCCESS, "listen");
    chorus_random_bytes(secret, sizeof secret);
    CHECK(chorus_bsmsg_encode_id(&id, &root, secret) == CHORUS_SUCCESS, "encode id");
    for (int r = 0; r < n; r++)
        release(&kids[r], &id);

    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        int fd;
        uint8_t nonce[16], mac[8], want[8], cnonce[16];
        ok = chorus_socket_accept(lfd, chorus_socket_deadline(5000), &fd, NULL) == CHORUS_SUCCESS;
        CHECK(ok, "a rank connects to the hand-made root");
        if (!ok)
            break;
        chorus_random_bytes(nonce, sizeof nonce);
        chorus_bsmsg_encode_hello(buf, sizeof buf, nonce, &len);
        ok = chorus_socket_send_all(fd, buf, len, chorus_socket_deadline(2000), "rank") ==
                 CHORUS_SUCCESS &&
             recv_message(fd, buf, sizeof buf, &len, &type) == 0 &&
             chorus_bsmsg_decode_proof(buf, len, mac, cnonce) == CHORUS_SUCCESS;
        chorus_bsmsg_mac(secret, 'C', nonce, want);
        CHECK(ok && chorus_bsmsg_mac_equal(mac, want), "the rank proves the secret");
        chorus_bsmsg_mac(secret, 'S', cnonce, mac);
        chorus_bsmsg_encode_auth_ok(buf, sizeof buf, mac, &len);
        uint32_t r = 0, nr = 0;
        struct chorus_sockaddr a;
        ok = ok &&
             chorus_socket_send_all(fd, buf, len, chorus_socket_deadline(2000), "rank") ==
                 CHORUS_SUCCESS &&
             recv_message(fd, buf, sizeof buf, &len, &type) == 0 &&
             chorus_bsmsg_decode_join(buf, len, &r, &nr, &a) == CHORUS_SUCCESS && nr == 2 &&
             conn[r] < 0;
        CHECK(ok, "the rank joins");
        if (ok) {
            conn[r] = fd;
            addrs[r] = a;
        } else {
            close(fd);
        }
    }
    if (ok) {
        /* Three foreign clients on rank 1's listening socket. */
        int garbage = connect_to(&addrs[1]);
        int wrong = connect_to(&addrs[1]);
        int liar = connect_to(&addrs[1]);
        CHECK(garbage >= 0 && wrong >= 0 && liar >= 0, "foreign clients connect to rank 1");
        memset(buf, 0x41, 100);
        CHECK(send(garbage, buf, 100, MSG_NOSIGNAL) == 100, "send garbage to rank 1");

        /* Rank 1 gets its table and starts forming the ring. */
        size_t cap = chorus_bsmsg_table_bytes(2);
        uint8_t *table = malloc(cap);
        CHECK(chorus_bsmsg_encode_table(table, cap, 2, addrs, &len) == CHORUS_SUCCESS,
              "encode table");
        CHECK(chorus_socket_send_all(conn[1], table, len, chorus_socket_deadline(2000), "rank 1") ==
                  CHORUS_SUCCESS,
              "send table to rank 1");
        CHECK(expect_hangup(garbage, 3000), "rank 1 drops the garbage client");

        uint8_t nonce[16], mac[8], want[8], cnonce[16];
        CHECK(recv_message(wrong, buf, sizeof buf, &len, &type) == 0 &&
                  chorus_bsmsg_decode_hello(buf, len, nonce) == CHORUS_SUCCESS,
              "rank 1 challenges a client");
        memset(mac, 0, sizeof mac);
        chorus_bsmsg_encode_proof(buf, sizeof buf, mac, nonce, &len);
        CHECK(send(wrong, buf, len, MSG_NOSIGNAL) == (ssize_t)len, "send a wrong proof");
        CHECK(expect_hangup(wrong, 3000), "rank 1 drops the wrong proof");

        CHECK(recv_message(liar, buf, sizeof buf, &len, &type) == 0 &&
                  chorus_bsmsg_decode_hello(buf, len, nonce) == CHORUS_SUCCESS,
              "rank 1 challenges the liar");
        chorus_bsmsg_mac(secret, 'C', nonce, mac);
        chorus_random_bytes(cnonce, sizeof cnonce);
        chorus_bsmsg_encode_proof(buf, sizeof buf, mac, cnonce, &len);
        CHECK(send(liar, buf, len, MSG_NOSIGNAL) == (ssize_t)len, "liar proves the secret");
        CHECK(recv_message(liar, buf, sizeof buf, &len, &type) == 0 &&
                  chorus_bsmsg_decode_auth_ok(buf, len, mac) == CHORUS_SUCCESS,
              "rank 1 answers with AUTH_OK");
        chorus_bsmsg_mac(secret, 'S', cnonce, want);
        CHECK(chorus_bsmsg_mac_equal(mac, want), "rank 1 proves the secret too");
        chorus_bsmsg_encode_peer(buf, sizeof buf, 1, 2, &len); /* not its predecessor */
        CHECK(send(liar, buf, len, MSG_NOSIGNAL) == (ssize_t)len, "liar claims rank 1");
        CHECK(expect_hangup(liar, 3000), "rank 1 drops a peer with the wrong rank");

        /* Now rank 0 gets its table; the ring must still form. */
        CHECK(chorus_socket_send_all(conn[0], table, len = chorus_bsmsg_table_bytes(2),
                                     chorus_socket_deadline(2000), "rank 0") == CHORUS_SUCCESS,
              "send table to rank 0");
        free(table);
        close(garbage);
        close(wrong);
        close(liar);
    }
    for (int r = 0; r < n; r++)
        if (conn[r] >= 0)
            close(conn[r]);
    close(lfd);
    if (!reap(kids, n) && ok)
        printf("  %sforeign clients on a rank's socket are rejected; the ring still forms\n",
               mode);
}

/* Runs this program again with CHORUS_SOCKET_FAMILY=AF_INET6. */
static void run_ipv6(void)
{
    struct chorus_sockaddr a;
    int fd;
    if (chorus_socket_resolve("::1", 0, AF_INET6, &a) != CHORUS_SUCCESS ||
        chorus_socket_listen(&a, 0, &fd, NULL) != CHORUS_SUCCESS) {
        printf("  skip IPv6: ::1 is not available\n");
        return;
    }
    close(fd);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("CHORUS_SOCKET_FAMILY", "AF_INET6", 1);
        char *argv[] = {(char *)"test_bootstrap", (char *)"--ipv6", NULL};
        execv("/proc/self/exe", argv);
        perror("execv");
        _exit(127);
    }
    int st = -1;
    int64_t end = now_ms() + 2 * REAP_MS;
    while (pid > 0 && waitpid(pid, &st, WNOHANG) == 0) {
        if (now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        poll(NULL, 0, 20);
    }
    CHECK(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the IPv6 run passes (status %d)",
          st);
}

int main(int argc, char **argv)
{
    /* Before anything reads the tunables (they are read once per process). */
    setenv("CHORUS_SOCKET_IFNAME", "lo", 1);
    char t[32];
    snprintf(t, sizeof t, "%d", INIT_TIMEOUT_MS);
    setenv("CHORUS_INIT_TIMEOUT_MS", t, 1);
    signal(SIGPIPE, SIG_IGN); /* this process writes ids into pipes of children */
    srand(12345);

    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
        perror("pipe");
        return 2;
    }
    results_r = p[0];
    results_w = p[1];
    baseline_threads = count_threads();

    if (argc > 1 && !strcmp(argv[1], "--ipv6")) {
        mode = "[ipv6] ";
        scenario_basic(3);
        scenario_from_address("::1", AF_INET6, NULL, 2);
        scenario_garbage_to_root();
        if (failures) {
            fprintf(stderr, "FAILED test_bootstrap [ipv6]: %d of %d checks failed\n", failures,
                    checks);
            return 1;
        }
        printf("  [ipv6] %d checks passed\n", checks);
        return 0;
    }

    int fds = count_fds();
    static const int sizes[] = {1, 2, 3, 5};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        scenario_basic(sizes[i]);
    scenario_wrong_secret();
    scenario_bad_joins();
    scenario_garbage_to_root();
    scenario_foreign_ring_clients();
    scenario_from_address("127.0.0.1", AF_INET, "s3cret", 3);
    scenario_no_root_and_bad_args();
    scenario_missing_rank();
    run_ipv6();
    wait_roots_gone();
    CHECK(count_fds() == fds, "no fd leaked in this process (%d at start, %d at the end)", fds,
          count_fds());

    if (failures) {
        fprintf(stderr, "FAILED test_bootstrap: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("ok test_bootstrap: %d checks\n", checks);
    return 0;
}
