/* bootstrap.c - TCP bootstrap of a communicator (see bootstrap.h).
 *
 * The root is one detached thread running a poll() loop over its listening
 * socket and every connection, each a small state machine, so a slow, silent
 * or hostile client never blocks the ranks. Each rank:
 *   1. listens on its own ephemeral port (interface by CHORUS_SOCKET_IFNAME);
 *   2. connects to the root, answers its challenge (HELLO nonce -> PROOF),
 *      checks the root's answer to its own nonce (AUTH_OK), sends JOIN
 *      (rank, nranks, listening address) and waits for the TABLE of every
 *      rank's address, or an ERROR (e.g. ranks that never arrived);
 *   3. connects to its successor (rank + 1) % n and accepts its predecessor,
 *      both authenticated the same way (the connector then says PEER rank),
 *      again in one poll() loop so neither side can deadlock and a foreign
 *      client on the listening socket is dropped without breaking init.
 * The collectives then run over that ring.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "bootstrap.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bootstrap_msg.h"
#include "error.h"
#include "log.h"
#include "socket.h"
#include "tunables.h"

#define SUBSYS "bootstrap"
/* Bound on one unauthenticated connection's handshake. */
#define HANDSHAKE_MS 10000
/* Connections still in their handshake that a root or rank keeps at once. */
#define MAX_PENDING 1024
#define MAX_RING_CANDIDATES 64

struct chorus_bootstrap {
    int rank, nranks;
    int next_fd, prev_fd;
    int timeout_ms;
    uint64_t seq;
    int broken; /* a failure left a stream in an unknown state */
    char next_name[CHORUS_SOCKADDR_STRLEN + 24];
    char prev_name[CHORUS_SOCKADDR_STRLEN + 24];
};

static int init_timeout_default(void)
{
    long v = chorus_tunables()->INIT_TIMEOUT_MS;
    return v > 0x7fffffff ? 0x7fffffff : (int)v;
}

/* ---- a nonblocking message connection ---------------------------------------
 * Used by the root and by ring setup: queues small messages (and optionally a
 * shared large one) for sending, and assembles one incoming message at a time
 * without ever reading past it. */

struct pconn {
    int fd;
    int state;
    int rank;         /* root: the rank this connection joined as, else -1 */
    int64_t deadline; /* bound on the handshake, -1: none */
    char peer[CHORUS_SOCKADDR_STRLEN + 24];
    uint8_t nonce[CHORUS_BSMSG_NONCE_BYTES];
    uint8_t in[CHORUS_BSMSG_SMALL_MAX];
    size_t in_have;
    uint8_t out[2 * CHORUS_BSMSG_SMALL_MAX];
    size_t out_len, out_off;
    const uint8_t *big; /* not owned (the root's encoded table) */
    size_t big_len, big_off;
    int closed; /* the peer closed or reset the connection */
};

static struct pconn *pconn_new(int fd, const struct chorus_sockaddr *peer, int state,
                               int64_t deadline)
{
    struct pconn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    c->state = state;
    c->rank = -1;
    c->deadline = deadline;
    chorus_sockaddr_str(peer, c->peer, sizeof c->peer);
    return c;
}

static void pconn_free(struct pconn *c)
{
    if (c) {
        chorus_socket_close(&c->fd);
        free(c);
    }
}

static int pconn_pending(const struct pconn *c)
{
    return c->out_off < c->out_len || c->big_off < c->big_len;
}

static chorus_result_t pconn_queue(struct pconn *c, const void *msg, size_t len)
{
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (len > sizeof c->out - c->out_len)
        return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "send queue to %s overflows", c->peer);
    memcpy(c->out + c->out_len, msg, len);
    c->out_len += len;
    return CHORUS_SUCCESS;
}

/* Sends what it can without blocking. */
static chorus_result_t pconn_flush(struct pconn *c)
{
    while (pconn_pending(c)) {
        const uint8_t *p;
        size_t n;
        if (c->out_off < c->out_len) {
            p = c->out + c->out_off;
            n = c->out_len - c->out_off;
        } else {
            p = c->big + c->big_off;
            n = c->big_len - c->big_off;
        }
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return CHORUS_SUCCESS;
        if (w < 0)
            return CHORUS_ERR(CHORUS_REMOTE_ERROR, "sending to %s failed: %s", c->peer,
                              strerror(errno));
        if (c->out_off < c->out_len)
            c->out_off += (size_t)w;
        else
            c->big_off += (size_t)w;
    }
    return CHORUS_SUCCESS;
}

/* Reads toward one complete message; *len is its size once complete, else 0.
 * The caller handles the message and then sets in_have = 0. When the peer
 * closed or reset the connection, returns CHORUS_REMOTE_ERROR with c->closed
 * set and logs nothing (port scanners and health checks do that all day):
 * the caller decides whether it matters. */
static chorus_result_t pconn_read(struct pconn *c, size_t *len)
{
    *len = 0;
    for (;;) {
        size_t need = CHORUS_BSMSG_HEADER_BYTES;
        if (c->in_have >= CHORUS_BSMSG_HEADER_BYTES) {
            struct chorus_bsmsg_header h;
            CHORUS_CHECK(chorus_bsmsg_decode_header(c->in, c->in_have, 0, &h));
            if (h.length > sizeof c->in - CHORUS_BSMSG_HEADER_BYTES)
                return CHORUS_ERR(CHORUS_REMOTE_ERROR, "unexpected %s message of %u bytes from %s",
                                  chorus_bsmsg_type_name(h.type), h.length, c->peer);
            need += h.length;
            if (c->in_have == need) {
                *len = need;
                return CHORUS_SUCCESS;
            }
        }
        ssize_t r = recv(c->fd, c->in + c->in_have, need - c->in_have, MSG_DONTWAIT);
        if (r > 0) {
            c->in_have += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return CHORUS_SUCCESS;
        if (r == 0 || errno == ECONNRESET) {
            c->closed = 1;
            return CHORUS_REMOTE_ERROR;
        }
        return CHORUS_ERR(CHORUS_REMOTE_ERROR, "receiving from %s failed: %s", c->peer,
                          strerror(errno));
    }
}

/* Queues an ERROR message for c (best effort). */
static void pconn_queue_error(struct pconn *c, chorus_result_t code, const char *text)
{
    uint8_t msg[CHORUS_BSMSG_SMALL_MAX];
    size_t len;
    if (chorus_bsmsg_encode_error(msg, sizeof msg, code, text, &len) == CHORUS_SUCCESS)
        (void)pconn_queue(c, msg, len);
}

/* Queues HELLO with a fresh nonce: the first step of the acceptor's side. */
static chorus_result_t pconn_send_hello(struct pconn *c)
{
    uint8_t msg[64];
    size_t len;
    CHORUS_CHECK(chorus_random_bytes(c->nonce, sizeof c->nonce));
    CHORUS_CHECK(chorus_bsmsg_encode_hello(msg, sizeof msg, c->nonce, &len));
    CHORUS_CHECK(pconn_queue(c, msg, len));
    return pconn_flush(c);
}

/* Acceptor side: checks a PROOF message and queues AUTH_OK. Returns
 * CHORUS_INVALID_ARGUMENT (nothing logged) when the proof is wrong. */
static chorus_result_t pconn_check_proof(struct pconn *c, const uint8_t *msg, size_t len,
                                         const uint8_t secret[16])
{
    uint8_t mac[CHORUS_BSMSG_MAC_BYTES], want[CHORUS_BSMSG_MAC_BYTES];
    uint8_t their_nonce[CHORUS_BSMSG_NONCE_BYTES], out[64];
    size_t olen;
    CHORUS_CHECK(chorus_bsmsg_decode_proof(msg, len, mac, their_nonce));
    chorus_bsmsg_mac(secret, 'C', c->nonce, want);
    if (!chorus_bsmsg_mac_equal(mac, want))
        return CHORUS_INVALID_ARGUMENT;
    chorus_bsmsg_mac(secret, 'S', their_nonce, mac);
    CHORUS_CHECK(chorus_bsmsg_encode_auth_ok(out, sizeof out, mac, &olen));
    CHORUS_CHECK(pconn_queue(c, out, olen));
    return pconn_flush(c);
}

/* Connector side: answers HELLO with PROOF (and a nonce of ours in c->nonce). */
static chorus_result_t pconn_answer_hello(struct pconn *c, const uint8_t *msg, size_t len,
                                          const uint8_t secret[16])
{
    uint8_t nonce[CHORUS_BSMSG_NONCE_BYTES], mac[CHORUS_BSMSG_MAC_BYTES], out[64];
    size_t olen;
    CHORUS_CHECK(chorus_bsmsg_decode_hello(msg, len, nonce));
    chorus_bsmsg_mac(secret, 'C', nonce, mac);
    CHORUS_CHECK(chorus_random_bytes(c->nonce, sizeof c->nonce));
    CHORUS_CHECK(chorus_bsmsg_encode_proof(out, sizeof out, mac, c->nonce, &olen));
    CHORUS_CHECK(pconn_queue(c, out, olen));
    return pconn_flush(c);
}

/* Connector side: checks the acceptor's AUTH_OK. */
static chorus_result_t check_auth_ok(const uint8_t *msg, size_t len, const uint8_t nonce[16],
                                     const uint8_t secret[16], const char *peer)
{
    uint8_t mac[CHORUS_BSMSG_MAC_BYTES], want[CHORUS_BSMSG_MAC_BYTES];
    CHORUS_CHECK(chorus_bsmsg_decode_auth_ok(msg, len, mac));
    chorus_bsmsg_mac(secret, 'S', nonce, want);
    if (!chorus_bsmsg_mac_equal(mac, want))
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "%s did not prove it knows the unique id's secret: it belongs to "
                          "another communicator or is not a Chorus process",
                          peer);
    return CHORUS_SUCCESS;
}

/* The calling thread's last error text without its "<result>: " prefix and
 * " (in function)" suffix, to quote it inside a wider message. */
static const char *inner_error(void)
{
    static _Thread_local char buf[1024];
    const char *e = chorus_get_last_error();
    const char *colon = strstr(e, ": ");
    snprintf(buf, sizeof buf, "%s", colon ? colon + 2 : e);
    char *in = strrchr(buf, '(');
    size_t n = strlen(buf);
    if (in && in > buf && in[-1] == ' ' && !strncmp(in, "(in ", 4) && buf[n - 1] == ')')
        in[-1] = '\0';
    return buf;
}

/* Turns a received ERROR message into this call's failure. */
static chorus_result_t remote_failure(const uint8_t *msg, size_t len, int rank, const char *peer)
{
    chorus_result_t code;
    char text[CHORUS_BSMSG_MAX_TEXT + 1];
    CHORUS_CHECK(chorus_bsmsg_decode_error(msg, len, &code, text, sizeof text));
    return CHORUS_ERR(code, "rank %d: %s reported: %s", rank, peer, text);
}

/* ---- the root ---------------------------------------------------------------- */

enum { RS_PROOF, RS_JOIN, RS_JOINED, RS_CLOSING };

struct root {
    int lfd;
    char name[CHORUS_SOCKADDR_STRLEN];
    uint8_t secret[CHORUS_BSMSG_SECRET_BYTES];
    int timeout_ms;
    int64_t deadline;
    struct pconn **conns;
    size_t nconns, cap;
    uint32_t nranks; /* 0 until the first JOIN */
    uint32_t joined;
    struct pconn **by_rank;
    struct chorus_sockaddr *addrs;
    uint8_t *table;
    size_t table_len;
};

static void root_free(struct root *rt)
{
    for (size_t i = 0; i < rt->nconns; i++)
        pconn_free(rt->conns[i]);
    free(rt->conns);
    chorus_socket_close(&rt->lfd);
    memset(rt->secret, 0, sizeof rt->secret);
    free(rt->by_rank);
    free(rt->addrs);
    free(rt->table);
    free(rt);
}

static void root_drop(struct root *rt, size_t i)
{
    struct pconn *c = rt->conns[i];
    if (c->rank >= 0 && rt->by_rank && rt->by_rank[c->rank] == c) {
        rt->by_rank[c->rank] = NULL;
        rt->joined--;
    }
    pconn_free(c);
    rt->conns[i] = rt->conns[--rt->nconns];
}

/* Queues a final ERROR for c; the connection closes once it is sent. */
static void root_reject(struct root *rt, struct pconn *c, chorus_result_t code, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));
static void root_reject(struct root *rt, struct pconn *c, chorus_result_t code, const char *fmt,
                        ...)
{
    char text[CHORUS_BSMSG_MAX_TEXT + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    LOG_WARN(SUBSYS, "root %s: rejected %s: %s", rt->name, c->peer, text);
    if (c->rank >= 0 && rt->by_rank && rt->by_rank[c->rank] == c) {
        rt->by_rank[c->rank] = NULL;
        rt->joined--;
    }
    c->rank = -1;
    pconn_queue_error(c, code, text);
    c->state = RS_CLOSING;
    int64_t soon = chorus_socket_now_ms() + 1000;
    if (c->deadline < 0 || c->deadline > soon)
        c->deadline = soon;
}

/* "2, 5-7, 9" (cut with "..." if long) of the ranks without a connection. */
static uint32_t format_missing(const struct root *rt, char *buf, size_t cap)
{
    uint32_t missing = 0;
    size_t n = 0;
    int cut = 0;
    buf[0] = '\0';
    for (uint32_t r = 0; r < rt->nranks; r++) {
        if (rt->by_rank[r])
            continue;
        uint32_t end = r;
        while (end + 1 < rt->nranks && !rt->by_rank[end + 1])
            end++;
        missing += end - r + 1;
        if (!cut) {
            char item[32];
            if (end == r)
                snprintf(item, sizeof item, "%s%u", n ? ", " : "", r);
            else
                snprintf(item, sizeof item, "%s%u-%u", n ? ", " : "", r, end);
            if (n + strlen(item) + 5 < cap) {
                memcpy(buf + n, item, strlen(item) + 1);
                n += strlen(item);
            } else {
                snprintf(buf + n, cap - n, ", ...");
                cut = 1;
            }
        }
        r = end;
    }
    return missing;
}

static void root_raise_fd_limit(uint32_t nranks)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)nranks + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        LOG_INFO(SUBSYS, "raised the open file limit from %llu to %llu for %u ranks",
                 (unsigned long long)old, (unsigned long long)rl.rlim_cur, nranks);
    if (rl.rlim_cur < want)
        LOG_WARN(SUBSYS, "the open file limit (%llu) is below the %u ranks the root must hold; "
                         "raise ulimit -n",
                 (unsigned long long)rl.rlim_cur, nranks);
}

static void root_on_join(struct root *rt, struct pconn *c, const uint8_t *msg, size_t len)
{
    uint32_t rank, nranks;
    struct chorus_sockaddr addr;
    char s[CHORUS_SOCKADDR_STRLEN];
    if (chorus_bsmsg_decode_join(msg, len, &rank, &nranks, &addr) != CHORUS_SUCCESS) {
        root_reject(rt, c, CHORUS_REMOTE_ERROR, "malformed JOIN: %s", inner_error());
        return;
    }
    if (rt->nranks == 0) {
        rt->by_rank = calloc(nranks, sizeof *rt->by_rank);
        rt->addrs = calloc(nranks, sizeof *rt->addrs);
        if (!rt->by_rank || !rt->addrs) {
            free(rt->by_rank);
            free(rt->addrs);
            rt->by_rank = NULL;
            rt->addrs = NULL;
            root_reject(rt, c, CHORUS_SYSTEM_ERROR, "out of memory for %u ranks", nranks);
            return;
        }
        rt->nranks = nranks;
        root_raise_fd_limit(nranks);
    } else if (nranks != rt->nranks) {
        root_reject(rt, c, CHORUS_INVALID_ARGUMENT,
                    "rank %u says nranks is %u, but the ranks before it said %u", rank, nranks,
                    rt->nranks);
        return;
    }
    if (rt->by_rank[rank]) {
        root_reject(rt, c, CHORUS_INVALID_ARGUMENT,
                    "rank %u already joined from %s (two processes passed the same rank)", rank,
                    rt->by_rank[rank]->peer);
        return;
    }
    rt->by_rank[rank] = c;
    rt->addrs[rank] = addr;
    rt->joined++;
    c->rank = (int)rank;
    c->state = RS_JOINED;
    c->deadline = -1;
    LOG_DEBUG(SUBSYS, "root %s: rank %u of %u joined from %s, listening on %s (%u/%u)", rt->name,
              rank, nranks, c->peer, chorus_sockaddr_str(&addr, s, sizeof s), rt->joined,
              rt->nranks);
}

/* Handles whatever arrived on c. */
static void root_on_readable(struct root *rt, struct pconn *c)
{
    if (c->state == RS_JOINED) {
        /* A joined rank sends nothing more: data or EOF means it is gone. */
        char b;
        ssize_t r = recv(c->fd, &b, 1, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        LOG_WARN(SUBSYS, "root %s: rank %d (%s) %s before all ranks joined; waiting for it to "
                         "join again",
                 rt->name, c->rank, c->peer, r == 0 ? "disconnected" : "sent unexpected data");
        if (rt->by_rank[c->rank] == c) {
            rt->by_rank[c->rank] = NULL;
            rt->joined--;
        }
        c->rank = -1;
        chorus_socket_close(&c->fd);
        return;
    }
    if (c->state != RS_PROOF && c->state != RS_JOIN)
        return;
    for (;;) {
        size_t len;
        if (pconn_read(c, &len) != CHORUS_SUCCESS) {
            if (!c->closed)
                LOG_WARN(SUBSYS, "root %s: dropped connection from %s during its handshake: %s",
                         rt->name, c->peer, inner_error());
            else if (c->state == RS_PROOF && c->in_have == 0)
                LOG_DEBUG(SUBSYS, "root %s: %s connected and left", rt->name, c->peer);
            else
                LOG_WARN(SUBSYS, "root %s: %s closed the connection in the middle of its "
                                 "handshake",
                         rt->name, c->peer);
            chorus_socket_close(&c->fd);
            return;
        }
        if (len == 0)
            return;
        unsigned type = ((unsigned)c->in[6] << 8) | c->in[7];
        if (c->state == RS_PROOF && type == CHORUS_BSMSG_PROOF) {
            chorus_result_t res = pconn_check_proof(c, c->in, len, rt->secret);
            c->in_have = 0;
            if (res == CHORUS_INVALID_ARGUMENT)
                root_reject(rt, c, CHORUS_INVALID_ARGUMENT,
                            "wrong secret: the client's unique id does not belong to this root "
                            "(a stale or forged id, or another communicator's)");
            else if (res != CHORUS_SUCCESS)
                root_reject(rt, c, res, "handshake failed: %s", inner_error());
            else
                c->state = RS_JOIN;
        } else if (c->state == RS_JOIN && type == CHORUS_BSMSG_JOIN) {
            root_on_join(rt, c, c->in, len);
            c->in_have = 0;
        } else {
            c->in_have = 0;
            root_reject(rt, c, CHORUS_REMOTE_ERROR, "unexpected %s message during the handshake",
                        chorus_bsmsg_type_name(type));
        }
        if (c->state == RS_CLOSING || c->state == RS_JOINED)
            return;
    }
}

static void root_accept(struct root *rt)
{
    for (int k = 0; k < 64; k++) {
        int fd;
        struct chorus_sockaddr peer;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        fd = accept4(rt->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                LOG_WARN(SUBSYS, "root %s: accept failed: %s%s", rt->name, strerror(errno),
                         errno == EMFILE || errno == ENFILE ? " (raise ulimit -n)" : "");
            return;
        }
        if (chorus_sockaddr_set(&peer, (struct sockaddr *)&ss, sl) != CHORUS_SUCCESS)
            memset(&peer, 0, sizeof peer);
        size_t pending = rt->nconns - rt->joined;
        if (pending >= MAX_PENDING) {
            char s[CHORUS_SOCKADDR_STRLEN];
            LOG_WARN(SUBSYS, "root %s: %zu connections in handshake; refusing %s", rt->name,
                     pending, chorus_sockaddr_str(&peer, s, sizeof s));
            close(fd);
            continue;
        }
        if (rt->nconns == rt->cap) {
            size_t ncap = rt->cap ? rt->cap * 2 : 16;
            struct pconn **n = realloc(rt->conns, ncap * sizeof *n);
            if (!n) {
                LOG_WARN(SUBSYS, "root %s: out of memory for connections", rt->name);
                close(fd);
                return;
            }
            rt->conns = n;
            rt->cap = ncap;
        }
        int64_t hs = chorus_socket_now_ms() + HANDSHAKE_MS;
        struct pconn *c = pconn_new(fd, &peer, RS_PROOF, hs);
        if (!c) {
            close(fd);
            return;
        }
        rt->conns[rt->nconns++] = c;
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (pconn_send_hello(c) != CHORUS_SUCCESS)
            chorus_socket_close(&c->fd);
        LOG_TRACE(SUBSYS, "root %s: connection from %s", rt->name, c->peer);
    }
}

/* All ranks joined: every joined connection gets the table, then closes. */
static int root_distribute(struct root *rt)
{
    size_t cap = chorus_bsmsg_table_bytes(rt->nranks);
    rt->table = malloc(cap);
    if (!rt->table ||
        chorus_bsmsg_encode_table(rt->table, cap, rt->nranks, rt->addrs, &rt->table_len) !=
            CHORUS_SUCCESS) {
        LOG_ERROR(SUBSYS, "root %s: cannot build the address table of %u ranks: %s", rt->name,
                  rt->nranks, rt->table ? chorus_get_last_error() : "out of memory");
        return -1;
    }
    for (size_t i = 0; i < rt->nconns; i++) {
        struct pconn *c = rt->conns[i];
        if (c->state == RS_JOINED) {
            c->big = rt->table;
            c->big_len = rt->table_len;
            c->state = RS_CLOSING;
        } else if (c->state != RS_CLOSING) {
            root_reject(rt, c, CHORUS_INVALID_USAGE,
                        "the communicator is already complete (all %u ranks joined)", rt->nranks);
        }
    }
    chorus_socket_close(&rt->lfd);
    LOG_DEBUG(SUBSYS, "root %s: all %u ranks joined; sending the address table", rt->name,
              rt->nranks);
    return 0;
}

static void root_timed_out(struct root *rt)
{
    char list[256], text[CHORUS_BSMSG_MAX_TEXT];
    if (rt->nranks == 0) {
        LOG_WARN(SUBSYS, "root %s: no rank joined within %d ms (CHORUS_INIT_TIMEOUT_MS); closing",
                 rt->name, rt->timeout_ms);
    } else {
        uint32_t missing = format_missing(rt, list, sizeof list);
        snprintf(text, sizeof text,
                 "%u of %u ranks never arrived within %d ms (CHORUS_INIT_TIMEOUT_MS): "
                 "rank%s %s",
                 missing, rt->nranks, rt->timeout_ms, missing == 1 ? "" : "s", list);
        LOG_WARN(SUBSYS, "root %s: %s", rt->name, text);
        for (size_t i = 0; i < rt->nconns; i++) {
            struct pconn *c = rt->conns[i];
            if (c->state == RS_JOINED) {
                pconn_queue_error(c, CHORUS_TIMEOUT, text);
                c->state = RS_CLOSING;
            }
        }
    }
    for (size_t i = 0; i < rt->nconns; i++)
        if (rt->conns[i]->state != RS_CLOSING)
            chorus_socket_close(&rt->conns[i]->fd);
    chorus_socket_close(&rt->lfd);
}

static void *root_main(void *arg)
{
    struct root *rt = (struct root *)arg;
    struct pollfd *pfd = NULL;
    size_t pfd_cap = 0;
    int gathering = 1;
    int64_t end = rt->deadline; /* end of the current phase, -1: none */

    LOG_DEBUG(SUBSYS, "root %s: waiting for ranks (timeout %d ms)", rt->name, rt->timeout_ms);
    for (;;) {
        /* Drop finished or failed connections. */
        int64_t now = chorus_socket_now_ms();
        for (size_t i = 0; i < rt->nconns;) {
            struct pconn *c = rt->conns[i];
            int done = c->fd < 0 || (c->state == RS_CLOSING && !pconn_pending(c));
            if (!done && c->deadline >= 0 && now >= c->deadline) {
                LOG_WARN(SUBSYS, "root %s: dropped %s: %s within %d ms", rt->name, c->peer,
                         c->state == RS_CLOSING ? "it did not read our answer"
                                                : "no complete handshake",
                         HANDSHAKE_MS);
                done = 1;
            }
            if (done)
                root_drop(rt, i);
            else
                i++;
        }
        if (gathering && rt->nranks && rt->joined == rt->nranks) {
            if (root_distribute(rt) != 0)
                break;
            gathering = 0;
            end = rt->deadline < 0 ? -1 : (rt->deadline > now + 5000 ? rt->deadline : now + 5000);
        }
        if (!gathering && rt->nconns == 0)
            break;
        if (end >= 0 && now >= end) {
            if (!gathering) {
                LOG_WARN(SUBSYS, "root %s: %zu rank(s) did not read the address table in time",
                         rt->name, rt->nconns);
                break;
            }
            root_timed_out(rt);
            gathering = 0;
            end = now + 1000; /* a short grace to deliver the error */
            continue;
        }

        size_t need = rt->nconns + 1;
        if (need > pfd_cap) {
            struct pollfd *n = realloc(pfd, need * 2 * sizeof *n);
            if (!n) {
                LOG_ERROR(SUBSYS, "root %s: out of memory", rt->name);
                break;
            }
            pfd = n;
            pfd_cap = need * 2;
        }
        nfds_t np = 0;
        int64_t wake = end;
        if (rt->lfd >= 0) {
            pfd[np].fd = rt->lfd;
            pfd[np].events = POLLIN;
            pfd[np].revents = 0;
            np++;
        }
        for (size_t i = 0; i < rt->nconns; i++) {
            struct pconn *c = rt->conns[i];
            pfd[np].fd = c->fd;
            pfd[np].events = (short)((c->state != RS_CLOSING ? POLLIN : 0) |
                                     (pconn_pending(c) ? POLLOUT : 0));
            pfd[np].revents = 0;
            np++;
            if (c->deadline >= 0 && (wake < 0 || c->deadline < wake))
                wake = c->deadline;
        }
        int rc = poll(pfd, np, chorus_socket_poll_ms(wake));
        if (rc < 0 && errno != EINTR) {
            LOG_ERROR(SUBSYS, "root %s: poll failed: %s", rt->name, strerror(errno));
            break;
        }
        if (rc <= 0)
            continue;
        size_t base = 0;
        int listen_ready = 0;
        if (rt->lfd >= 0) {
            listen_ready = pfd[0].revents != 0;
            base = 1;
        }
        /* conns[] is unchanged since pfd was built: new connections are
         * appended after, and nothing is removed until the next round. */
        size_t n = rt->nconns;
        for (size_t i = 0; i < n; i++) {
            struct pconn *c = rt->conns[i];
            short re = pfd[base + i].revents;
            if (!re || c->fd < 0)
                continue;
            if (pconn_pending(c) && (re & (POLLOUT | POLLERR | POLLHUP))) {
                if (pconn_flush(c) != CHORUS_SUCCESS) {
                    if (c->state != RS_CLOSING || c->big)
                        LOG_WARN(SUBSYS, "root %s: %s", rt->name, inner_error());
                    if (c->rank >= 0 && rt->by_rank && rt->by_rank[c->rank] == c) {
                        rt->by_rank[c->rank] = NULL;
                        rt->joined--;
                    }
                    c->rank = -1;
                    chorus_socket_close(&c->fd);
                    continue;
                }
            }
            if (c->state != RS_CLOSING && (re & (POLLIN | POLLERR | POLLHUP)))
                root_on_readable(rt, c);
        }
        if (listen_ready && rt->lfd >= 0 && gathering)
            root_accept(rt);
    }
    if (rt->nconns || rt->lfd >= 0)
        LOG_DEBUG(SUBSYS, "root %s: exiting", rt->name);
    free(pfd);
    root_free(rt);
    return NULL;
}

/* Starts the root thread; takes ownership of lfd in every case. */
static chorus_result_t root_start(int lfd, const struct chorus_sockaddr *addr,
                                  const uint8_t secret[16])
{
    struct root *rt = calloc(1, sizeof *rt);
    if (!rt) {
        close(lfd);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory for the bootstrap root");
    }
    rt->lfd = lfd;
    chorus_sockaddr_str(addr, rt->name, sizeof rt->name);
    memcpy(rt->secret, secret, CHORUS_BSMSG_SECRET_BYTES);
    rt->timeout_ms = init_timeout_default();
    rt->deadline = chorus_socket_deadline(rt->timeout_ms);

    pthread_attr_t attr;
    sigset_t all, old;
    pthread_t tid;
    if (pthread_attr_init(&attr) != 0) {
        root_free(rt);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "pthread_attr_init failed");
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* The root thread takes no signals: they belong to the application. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&tid, &attr, root_main, rt);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        root_free(rt);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "cannot start the bootstrap root thread: %s",
                          strerror(rc));
    }
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bootstrap_root_create(chorus_unique_id_t *id)
{
    struct chorus_sockaddr addr, bound;
    char ifname[64];
    uint8_t secret[CHORUS_BSMSG_SECRET_BYTES];
    int lfd;
    if (!id)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL unique id");
    CHORUS_CHECK(chorus_tunables_load(NULL));
    CHORUS_CHECK(chorus_socket_pick_address(&addr, ifname, sizeof ifname));
    CHORUS_CHECK(chorus_socket_listen(&addr, 0, &lfd, &bound));
    chorus_result_t res = chorus_random_bytes(secret, sizeof secret);
    if (res == CHORUS_SUCCESS)
        res = chorus_bsmsg_encode_id(id, &bound, secret);
    if (res != CHORUS_SUCCESS) {
        close(lfd);
        return res;
    }
    char s[CHORUS_SOCKADDR_STRLEN];
    LOG_INFO(SUBSYS, "bootstrap root on %s (interface %s)",
             chorus_sockaddr_str(&bound, s, sizeof s), ifname);
    return root_start(lfd, &bound, secret);
}

chorus_result_t chorus_bootstrap_root_from_address(const char *host, int port, int is_root,
                                                   const char *secret, chorus_unique_id_t *id)
{
    struct chorus_sockaddr addr;
    uint8_t key[CHORUS_BSMSG_SECRET_BYTES];
    int family;
    if (!id)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL unique id");
    if (!host || !*host)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "no root host given");
    if (port <= 0 || port > 65535)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "root port %d is out of range 1..65535",
                          port);
    const struct chorus_tunables *t;
    CHORUS_CHECK(chorus_tunables_load(&t));
    if (chorus_socket_parse_family(t->SOCKET_FAMILY, &family) != 0)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT,
                          "CHORUS_SOCKET_FAMILY='%s' is not AF_INET or AF_INET6",
                          t->SOCKET_FAMILY);
    CHORUS_CHECK(chorus_socket_resolve(host, port, family, &addr));
    chorus_bsmsg_secret_from_string(secret, key);
    CHORUS_CHECK(chorus_bsmsg_encode_id(id, &addr, key));
    if (!is_root)
        return CHORUS_SUCCESS;

    /* Listen on that address; if it is not one of ours (a host name that
     * resolves elsewhere, NAT), on every address of its family. */
    struct chorus_sockaddr bind_addr = addr;
    int probe = socket(addr.u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
        int one = 1;
        (void)setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(probe, &addr.u.sa, addr.len) != 0 && errno == EADDRNOTAVAIL) {
            memset(&bind_addr, 0, sizeof bind_addr);
            bind_addr.u.sa.sa_family = addr.u.sa.sa_family;
            bind_addr.len = addr.len;
            chorus_sockaddr_set_port(&bind_addr, (uint16_t)port);
            LOG_INFO(SUBSYS, "%s is not a local address; the root listens on every address, "
                             "port %d",
                     host, port);
        }
        close(probe);
    }
    int lfd;
    CHORUS_CHECK(chorus_socket_listen(&bind_addr, 1, &lfd, NULL));
    char s[CHORUS_SOCKADDR_STRLEN];
    LOG_INFO(SUBSYS, "bootstrap root on %s (%s:%d)", chorus_sockaddr_str(&bind_addr, s, sizeof s),
             host, port);
    return root_start(lfd, &addr, key);
}

/* ---- a rank joining ------------------------------------------------------------ */

/* Receives one whole message (blocking, bounded) into a malloc'd buffer.
 * An ERROR message becomes this call's failure; another type than want is a
 * protocol error. */
static chorus_result_t recv_msg(int fd, int64_t deadline, const char *peer, int rank,
                                unsigned want, uint32_t nranks, uint8_t **out, size_t *out_len,
                                int *reported)
{
    uint8_t hdr[CHORUS_BSMSG_HEADER_BYTES];
    struct chorus_bsmsg_header h;
    *out = NULL;
    *out_len = 0;
    *reported = 0;
    CHORUS_CHECK(chorus_socket_recv_all(fd, hdr, sizeof hdr, deadline, peer));
    CHORUS_CHECK(chorus_bsmsg_decode_header(hdr, sizeof hdr, nranks, &h));
    if (h.type != want && h.type != CHORUS_BSMSG_ERROR)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR, "expected %s from %s, got %s",
                          chorus_bsmsg_type_name(want), peer, chorus_bsmsg_type_name(h.type));
    size_t len = sizeof hdr + (size_t)h.length;
    uint8_t *buf = malloc(len);
    if (!buf)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory for a %zu-byte message", len);
    memcpy(buf, hdr, sizeof hdr);
    chorus_result_t res = chorus_socket_recv_all(fd, buf + sizeof hdr, h.length, deadline, peer);
    if (res == CHORUS_SUCCESS && h.type == CHORUS_BSMSG_ERROR) {
        res = remote_failure(buf, len, rank, peer);
        *reported = 1;
    }
    if (res != CHORUS_SUCCESS) {
        free(buf);
        return res;
    }
    *out = buf;
    *out_len = len;
    return CHORUS_SUCCESS;
}

/* Steps 2: handshake with the root, JOIN, and the address table. */
static chorus_result_t join_root(const struct chorus_sockaddr *root_addr,
                                 const uint8_t secret[16], int rank, int nranks,
                                 const struct chorus_sockaddr *mine, int64_t deadline,
                                 int timeout_ms, struct chorus_sockaddr *table)
{
    char rs[CHORUS_SOCKADDR_STRLEN], peer[CHORUS_SOCKADDR_STRLEN + 32];
    snprintf(peer, sizeof peer, "the bootstrap root at %s",
             chorus_sockaddr_str(root_addr, rs, sizeof rs));
    int fd = -1, reported = 0;
    uint8_t *msg = NULL;
    size_t len;
    struct pconn c; /* only for its nonce and the shared handshake helpers */
    memset(&c, 0, sizeof c);
    c.fd = -1;
    snprintf(c.peer, sizeof c.peer, "%s", rs);

    chorus_result_t res = chorus_socket_connect(root_addr, deadline, peer, &fd);
    if (res != CHORUS_SUCCESS)
        return res;
    c.fd = fd;
    res = recv_msg(fd, deadline, peer, rank, CHORUS_BSMSG_HELLO, 0, &msg, &len, &reported);
    if (res == CHORUS_SUCCESS)
        res = pconn_answer_hello(&c, msg, len, secret);
    if (res == CHORUS_SUCCESS)
        res = chorus_socket_send_all(fd, c.out + c.out_off, c.out_len - c.out_off, deadline, peer);
    free(msg);
    msg = NULL;
    if (res == CHORUS_SUCCESS)
        res = recv_msg(fd, deadline, peer, rank, CHORUS_BSMSG_AUTH_OK, 0, &msg, &len, &reported);
    if (res == CHORUS_SUCCESS)
        res = check_auth_ok(msg, len, c.nonce, secret, peer);
    free(msg);
    msg = NULL;
    if (res == CHORUS_SUCCESS) {
        uint8_t join[64];
        res = chorus_bsmsg_encode_join(join, sizeof join, (uint32_t)rank, (uint32_t)nranks, mine,
                                       &len);
        if (res == CHORUS_SUCCESS)
            res = chorus_socket_send_all(fd, join, len, deadline, peer);
    }
    if (res == CHORUS_SUCCESS) {
        res = recv_msg(fd, deadline, peer, rank, CHORUS_BSMSG_TABLE, (uint32_t)nranks, &msg,
                       &len, &reported);
        if (res == CHORUS_SUCCESS || reported)
            ; /* a reported failure already says what the root knows */
        else if (res == CHORUS_TIMEOUT)
            res = CHORUS_ERR(CHORUS_TIMEOUT,
                             "rank %d of %d: not every rank joined within %d ms (init timeout); "
                             "%s did not say which are missing",
                             rank, nranks, timeout_ms, peer);
        else if (res == CHORUS_REMOTE_ERROR && strstr(chorus_get_last_error(), "closed the"))
            res = CHORUS_ERR(CHORUS_REMOTE_ERROR,
                             "rank %d of %d: %s closed the connection before sending the address "
                             "table (did the root process exit or time out?)",
                             rank, nranks, peer);
        else
            res = CHORUS_ERR(res, "rank %d of %d: waiting for the address table: %s", rank,
                             nranks, inner_error());
    }
    if (res == CHORUS_SUCCESS)
        res = chorus_bsmsg_decode_table(msg, len, (uint32_t)nranks, table);
    free(msg);
    chorus_socket_close(&fd);
    return res;
}

/* Step 3: the ring. Out: connection to the successor; candidates: accepted
 * connections, one of which will prove to be the predecessor. */
enum { OS_HELLO, OS_AUTH, OS_PEER, OS_DONE };
enum { CS_PROOF, CS_PEER };

static chorus_result_t ring_connect(struct chorus_bootstrap *bs, int lfd,
                                    const struct chorus_sockaddr *table, const uint8_t secret[16],
                                    int64_t deadline, int timeout_ms)
{
    int n = bs->nranks, me = bs->rank;
    int next = (me + 1) % n, prev = (me - 1 + n) % n;
    char s[CHORUS_SOCKADDR_STRLEN];
    struct pconn *out = NULL, *cand[MAX_RING_CANDIDATES];
    size_t ncand = 0;
    chorus_result_t res = CHORUS_SUCCESS;
    int64_t start = chorus_socket_now_ms();

    snprintf(bs->next_name, sizeof bs->next_name, "rank %d (%s)", next,
             chorus_sockaddr_str(&table[next], s, sizeof s));
    snprintf(bs->prev_name, sizeof bs->prev_name, "rank %d (%s)", prev,
             chorus_sockaddr_str(&table[prev], s, sizeof s));

    int fd;
    res = chorus_socket_connect(&table[next], deadline, bs->next_name, &fd);
    if (res != CHORUS_SUCCESS)
        return res;
    out = pconn_new(fd, &table[next], OS_HELLO, -1);
    if (!out) {
        close(fd);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    }
    snprintf(out->peer, sizeof out->peer, "%s", bs->next_name);

    struct pollfd pfd[2 + MAX_RING_CANDIDATES];
    int reported = 0;
    while (res == CHORUS_SUCCESS && (out->state != OS_DONE || bs->prev_fd < 0)) {
        int64_t now = chorus_socket_now_ms();
        if (deadline >= 0 && now >= deadline) {
            if (out->state != OS_DONE)
                res = CHORUS_ERR(CHORUS_TIMEOUT,
                                 "rank %d: ring setup timed out after %d ms: no handshake with "
                                 "its successor %s",
                                 me, timeout_ms, bs->next_name);
            else
                res = CHORUS_ERR(CHORUS_TIMEOUT,
                                 "rank %d: ring setup timed out after %d ms: its predecessor %s "
                                 "never connected",
                                 me, timeout_ms, bs->prev_name);
            break;
        }
        /* Expire silent candidates. */
        for (size_t i = 0; i < ncand;) {
            if (cand[i]->fd < 0 || (cand[i]->deadline >= 0 && now >= cand[i]->deadline)) {
                if (cand[i]->fd >= 0)
                    LOG_WARN(SUBSYS, "rank %d: dropped connection from %s: no handshake within "
                                     "%d ms",
                             me, cand[i]->peer, HANDSHAKE_MS);
                pconn_free(cand[i]);
                cand[i] = cand[--ncand];
            } else {
                i++;
            }
        }
        nfds_t np = 0;
        int64_t wake = deadline;
        pfd[np].fd = lfd;
        pfd[np].events = (short)(bs->prev_fd < 0 ? POLLIN : 0);
        pfd[np].revents = 0;
        np++;
        pfd[np].fd = out->state != OS_DONE ? out->fd : -1;
        pfd[np].events = (short)((out->state != OS_DONE ? POLLIN : 0) |
                                 (pconn_pending(out) ? POLLOUT : 0));
        pfd[np].revents = 0;
        np++;
        for (size_t i = 0; i < ncand; i++) {
            pfd[np].fd = cand[i]->fd;
            pfd[np].events = (short)(POLLIN | (pconn_pending(cand[i]) ? POLLOUT : 0));
            pfd[np].revents = 0;
            np++;
            if (wake < 0 || cand[i]->deadline < wake)
                wake = cand[i]->deadline;
        }
        int rc = poll(pfd, np, chorus_socket_poll_ms(wake));
        if (rc < 0 && errno != EINTR) {
            res = CHORUS_ERR(CHORUS_SYSTEM_ERROR, "poll failed: %s", strerror(errno));
            break;
        }
        if (rc <= 0)
            continue;

        /* Our connection to the successor. */
        if (pfd[1].revents) {
            res = pconn_flush(out);
            while (res == CHORUS_SUCCESS && out->state != OS_DONE) {
                size_t len;
                if (out->state == OS_PEER) {
                    if (!pconn_pending(out))
                        out->state = OS_DONE;
                    break;
                }
                res = pconn_read(out, &len);
                if (res != CHORUS_SUCCESS && out->closed)
                    res = CHORUS_ERR(CHORUS_REMOTE_ERROR,
                                     "rank %d: its successor %s closed the connection during "
                                     "the handshake (did it exit or fail?)",
                                     me, bs->next_name);
                if (res != CHORUS_SUCCESS || len == 0)
                    break;
                unsigned type = ((unsigned)out->in[6] << 8) | out->in[7];
                if (type == CHORUS_BSMSG_ERROR) {
                    res = remote_failure(out->in, len, me, bs->next_name);
                    reported = 1;
                    out->in_have = 0;
                    break;
                } else if (out->state == OS_HELLO) {
                    res = pconn_answer_hello(out, out->in, len, secret);
                    if (res == CHORUS_SUCCESS)
                        out->state = OS_AUTH;
                } else {
                    res = check_auth_ok(out->in, len, out->nonce, secret, bs->next_name);
                    if (res == CHORUS_SUCCESS) {
                        uint8_t m[32];
                        size_t ml;
                        res = chorus_bsmsg_encode_peer(m, sizeof m, (uint32_t)me, (uint32_t)n,
                                                       &ml);
                        if (res == CHORUS_SUCCESS)
                            res = pconn_queue(out, m, ml);
                        if (res == CHORUS_SUCCESS)
                            res = pconn_flush(out);
                        if (res == CHORUS_SUCCESS)
                            out->state = OS_PEER;
                    }
                }
                out->in_have = 0;
            }
            if (res != CHORUS_SUCCESS) {
                if (!reported)
                    res = CHORUS_ERR(res, "rank %d: handshake with its successor %s failed: %s",
                                     me, bs->next_name, inner_error());
                break;
            }
        }
        if (out->state == OS_PEER && !pconn_pending(out))
            out->state = OS_DONE;

        /* Candidates for the predecessor. */
        for (size_t i = 0; i < ncand && bs->prev_fd < 0; i++) {
            struct pconn *c = cand[i];
            short re = pfd[2 + i].revents;
            if (!re || c->fd < 0)
                continue;
            chorus_result_t cr = pconn_flush(c);
            const char *why = NULL;
            char whybuf[CHORUS_BSMSG_MAX_TEXT];
            while (cr == CHORUS_SUCCESS && !why) {
                size_t len;
                cr = pconn_read(c, &len);
                if (cr != CHORUS_SUCCESS || len == 0)
                    break;
                unsigned type = ((unsigned)c->in[6] << 8) | c->in[7];
                if (c->state == CS_PROOF && type == CHORUS_BSMSG_PROOF) {
                    cr = pconn_check_proof(c, c->in, len, secret);
                    if (cr == CHORUS_INVALID_ARGUMENT) {
                        why = "wrong secret (a client of another communicator, or not Chorus)";
                        cr = CHORUS_SUCCESS;
                    } else if (cr == CHORUS_SUCCESS) {
                        c->state = CS_PEER;
                    }
                } else if (c->state == CS_PEER && type == CHORUS_BSMSG_PEER) {
                    uint32_t r, nr;
                    cr = chorus_bsmsg_decode_peer(c->in, len, &r, &nr);
                    if (cr == CHORUS_SUCCESS && (nr != (uint32_t)n || r != (uint32_t)prev)) {
                        snprintf(whybuf, sizeof whybuf,
                                 "it says it is rank %u of %u, expected the predecessor rank %d "
                                 "of %d",
                                 r, nr, prev, n);
                        why = whybuf;
                    } else if (cr == CHORUS_SUCCESS) {
                        bs->prev_fd = c->fd;
                        c->fd = -1;
                    }
                } else {
                    snprintf(whybuf, sizeof whybuf, "unexpected %s message",
                             chorus_bsmsg_type_name(type));
                    why = whybuf;
                }
                c->in_have = 0;
                if (bs->prev_fd >= 0)
                    break;
            }
            if (cr != CHORUS_SUCCESS && !why && c->closed) {
                LOG_DEBUG(SUBSYS, "rank %d: %s closed its connection during the handshake", me,
                          c->peer);
                chorus_socket_close(&c->fd);
                continue;
            }
            if (cr != CHORUS_SUCCESS && !why) {
                snprintf(whybuf, sizeof whybuf, "%s", inner_error());
                why = whybuf;
            }
            if (why) {
                LOG_WARN(SUBSYS, "rank %d: rejected connection from %s: %s", me, c->peer, why);
                pconn_queue_error(c, CHORUS_INVALID_ARGUMENT, why);
                (void)pconn_flush(c); /* best effort */
                chorus_socket_close(&c->fd);
            }
        }

        /* New connections. */
        if ((pfd[0].revents & POLLIN) && bs->prev_fd < 0) {
            for (int k = 0; k < 16; k++) {
                struct sockaddr_storage ss;
                socklen_t sl = sizeof ss;
                int cfd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (cfd < 0) {
                    if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                    break;
                }
                struct chorus_sockaddr peer;
                if (chorus_sockaddr_set(&peer, (struct sockaddr *)&ss, sl) != CHORUS_SUCCESS)
                    memset(&peer, 0, sizeof peer);
                if (ncand == MAX_RING_CANDIDATES) {
                    /* A real peer finishes its handshake in milliseconds: make room
                     * by dropping the oldest (silent) one, not the newcomer. */
                    size_t old = 0;
                    for (size_t j = 1; j < ncand; j++)
                        if (cand[j]->deadline < cand[old]->deadline)
                            old = j;
                    LOG_WARN(SUBSYS, "rank %d: %d connections in handshake; dropping the oldest, "
                                     "from %s",
                             me, MAX_RING_CANDIDATES, cand[old]->peer);
                    pconn_free(cand[old]);
                    cand[old] = cand[--ncand];
                }
                int64_t hs = chorus_socket_now_ms() + HANDSHAKE_MS;
                if (deadline >= 0 && hs > deadline)
                    hs = deadline;
                struct pconn *c = pconn_new(cfd, &peer, CS_PROOF, hs);
                if (!c) {
                    close(cfd);
                    break;
                }
                int one = 1;
                (void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                if (pconn_send_hello(c) != CHORUS_SUCCESS)
                    chorus_socket_close(&c->fd);
                cand[ncand++] = c;
            }
        }
    }
    for (size_t i = 0; i < ncand; i++)
        pconn_free(cand[i]);
    if (res == CHORUS_SUCCESS) {
        bs->next_fd = out->fd;
        out->fd = -1;
        LOG_DEBUG(SUBSYS, "rank %d of %d: ring ready in %lld ms (next %s, prev %s)", me, n,
                  (long long)(chorus_socket_now_ms() - start), bs->next_name, bs->prev_name);
    }
    pconn_free(out);
    return res;
}

chorus_result_t chorus_bootstrap_init(struct chorus_bootstrap **bsp, const chorus_unique_id_t *id,
                                      int rank, int nranks, int timeout_ms)
{
    struct chorus_sockaddr root_addr, mine, bound;
    uint8_t secret[CHORUS_BSMSG_SECRET_BYTES];
    if (!bsp)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL bootstrap pointer");
    *bsp = NULL;
    if (!id)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL unique id");
    if (nranks < 1 || (uint32_t)nranks > CHORUS_BSMSG_MAX_NRANKS)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "nranks %d is out of range 1..%u", nranks,
                          CHORUS_BSMSG_MAX_NRANKS);
    if (rank < 0 || rank >= nranks)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "rank %d is out of range 0..%d", rank,
                          nranks - 1);
    CHORUS_CHECK(chorus_tunables_load(NULL));
    CHORUS_CHECK(chorus_bsmsg_decode_id(id, &root_addr, secret));
    if (timeout_ms <= 0)
        timeout_ms = init_timeout_default();
    int64_t deadline = chorus_socket_deadline(timeout_ms);

    struct chorus_bootstrap *bs = calloc(1, sizeof *bs);
    if (!bs)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    bs->rank = rank;
    bs->nranks = nranks;
    bs->next_fd = bs->prev_fd = -1;
    {
        long t = chorus_tunables()->TIMEOUT_MS;
        bs->timeout_ms = t > 0x7fffffff ? 0x7fffffff : (int)t;
    }

    int lfd = -1;
    struct chorus_sockaddr *table = calloc((size_t)nranks, sizeof *table);
    chorus_result_t res = table ? CHORUS_SUCCESS
                                : CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory for %d addresses",
                                             nranks);
    if (res == CHORUS_SUCCESS)
        res = chorus_socket_pick_address(&mine, NULL, 0);
    if (res == CHORUS_SUCCESS)
        res = chorus_socket_listen(&mine, 0, &lfd, &bound);
    if (res == CHORUS_SUCCESS)
        res = join_root(&root_addr, secret, rank, nranks, &bound, deadline, timeout_ms, table);
    if (res == CHORUS_SUCCESS && nranks > 1)
        res = ring_connect(bs, lfd, table, secret, deadline, timeout_ms);
    chorus_socket_close(&lfd);
    free(table);
    if (res != CHORUS_SUCCESS) {
        chorus_bootstrap_destroy(bs);
        return res;
    }
    *bsp = bs;
    return CHORUS_SUCCESS;
}

/* ---- collectives over the ring --------------------------------------------------- */

chorus_result_t chorus_bootstrap_allgather(struct chorus_bootstrap *bs, const void *mine,
                                           void *all, size_t size)
{
    if (!bs)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL bootstrap");
    if (size && (!mine || !all))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL buffer for a %zu-byte allgather", size);
    size_t n = (size_t)bs->nranks, me = (size_t)bs->rank;
    if (size && n > SIZE_MAX / size)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "allgather of %zu bytes x %zu ranks overflows",
                          size, n);
    if (bs->broken)
        return CHORUS_ERR(CHORUS_INVALID_USAGE,
                          "rank %d: the bootstrap is unusable after an earlier failure", bs->rank);
    char *out = (char *)all;
    if (size && out + me * size != (const char *)mine)
        memmove(out + me * size, mine, size);
    if (n == 1)
        return CHORUS_SUCCESS;

    /* Both neighbours must be at the same call with the same size. */
    uint8_t hs[64], hr[64];
    size_t hl;
    uint64_t seq = ++bs->seq;
    CHORUS_CHECK(chorus_bsmsg_encode_coll(hs, sizeof hs, seq, size, &hl));
    chorus_result_t res =
        chorus_socket_sendrecv(bs->next_fd, hs, hl, bs->next_name, bs->prev_fd, hr, hl,
                               bs->prev_name, chorus_socket_deadline(bs->timeout_ms));
    uint64_t pseq = 0, psize = 0;
    if (res == CHORUS_SUCCESS)
        res = chorus_bsmsg_decode_coll(hr, hl, &pseq, &psize);
    if (res == CHORUS_SUCCESS && (pseq != seq || psize != size))
        res = CHORUS_ERR(CHORUS_INVALID_USAGE,
                         "rank %d: bootstrap collective #%llu of %zu bytes, but its predecessor "
                         "%s is at #%llu with %llu bytes (every rank must make the same calls "
                         "in the same order)",
                         bs->rank, (unsigned long long)seq, size, bs->prev_name,
                         (unsigned long long)pseq, (unsigned long long)psize);
    for (size_t step = 0; res == CHORUS_SUCCESS && size && step + 1 < n; step++) {
        size_t send_blk = (me + n - step) % n;
        size_t recv_blk = (me + n - step - 1) % n;
        res = chorus_socket_sendrecv(bs->next_fd, out + send_blk * size, size, bs->next_name,
                                     bs->prev_fd, out + recv_blk * size, size, bs->prev_name,
                                     chorus_socket_deadline(bs->timeout_ms));
    }
    if (res != CHORUS_SUCCESS)
        bs->broken = 1;
    return res;
}

chorus_result_t chorus_bootstrap_barrier(struct chorus_bootstrap *bs)
{
    if (!bs)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL bootstrap");
    if (bs->nranks == 1)
        return bs->broken ? CHORUS_ERR(CHORUS_INVALID_USAGE, "the bootstrap is unusable after an "
                                                             "earlier failure")
                          : CHORUS_SUCCESS;
    char *all = malloc((size_t)bs->nranks);
    if (!all)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    char one = 1;
    chorus_result_t res = chorus_bootstrap_allgather(bs, &one, all, 1);
    free(all);
    return res;
}

void chorus_bootstrap_set_timeout(struct chorus_bootstrap *bs, int timeout_ms)
{
    if (bs)
        bs->timeout_ms = timeout_ms;
}

void chorus_bootstrap_destroy(struct chorus_bootstrap *bs)
{
    if (!bs)
        return;
    chorus_socket_close(&bs->next_fd);
    chorus_socket_close(&bs->prev_fd);
    free(bs);
}
