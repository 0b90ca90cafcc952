/* bootstrap_root.c - the bootstrap root (see bootstrap.h).
 *
 * The root is one detached thread running a poll() loop over its listening
 * socket and every connection, each a small state machine, so a slow, silent
 * or hostile client never blocks the ranks. It challenges each client for
 * the secret, collects one JOIN (rank, nranks, listening address) per rank,
 * and once all ranks joined sends each of them the TABLE of every rank's
 * address, then exits; if ranks are missing at the init timeout, it tells
 * the joined ones which. It runs in the process that created the unique id,
 * beside (not as part of) that process's own rank, hence a file of its own;
 * the two ways to start it are at the end.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

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

#include "bootstrap_impl.h"
#include "error.h"
#include "log.h"
#include "tunables.h"

/* Connections still in their handshake that the root keeps at once. */
#define MAX_PENDING 1024

/* A client connection: awaiting its PROOF, then its JOIN; joined (waiting for
 * the table); closing once its last message is sent. */
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
        root_reject(rt, c, CHORUS_REMOTE_ERROR, "malformed JOIN: %s", bootstrap_inner_error());
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
                         rt->name, c->peer, bootstrap_inner_error());
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
                root_reject(rt, c, res, "handshake failed: %s", bootstrap_inner_error());
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
                        LOG_WARN(SUBSYS, "root %s: %s", rt->name, bootstrap_inner_error());
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

/* ---- starting a root ------------------------------------------------------- */

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
    rt->timeout_ms = bootstrap_init_timeout_default();
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
