/* socket.c - TCP helpers for the bootstrap (see socket.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "socket.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "tunables.h"

/* ---- time ------------------------------------------------------------------ */

int64_t chorus_socket_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t chorus_socket_deadline(int timeout_ms)
{
    if (timeout_ms <= 0)
        return -1;
    return chorus_socket_now_ms() + timeout_ms;
}

int chorus_socket_poll_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - chorus_socket_now_ms();
    if (left <= 0)
        return 0;
    return left > 1000000000 ? 1000000000 : (int)left;
}

static int expired(int64_t deadline) { return deadline >= 0 && chorus_socket_now_ms() >= deadline; }

/* ---- addresses ------------------------------------------------------------- */

const char *chorus_sockaddr_str(const struct chorus_sockaddr *addr, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    if (!buf || cap == 0)
        return "";
    buf[0] = '\0';
    if (!addr) {
        snprintf(buf, cap, "(null)");
    } else if (addr->u.sa.sa_family == AF_INET && addr->len >= sizeof(struct sockaddr_in)) {
        if (!inet_ntop(AF_INET, &addr->u.in4.sin_addr, host, sizeof host))
            snprintf(host, sizeof host, "?");
        snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(addr->u.in4.sin_port));
    } else if (addr->u.sa.sa_family == AF_INET6 && addr->len >= sizeof(struct sockaddr_in6)) {
        if (!inet_ntop(AF_INET6, &addr->u.in6.sin6_addr, host, sizeof host))
            snprintf(host, sizeof host, "?");
        if (addr->u.in6.sin6_scope_id)
            snprintf(buf, cap, "[%s%%%u]:%u", host, (unsigned)addr->u.in6.sin6_scope_id,
                     (unsigned)ntohs(addr->u.in6.sin6_port));
        else
            snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(addr->u.in6.sin6_port));
    } else {
        snprintf(buf, cap, "(no address)");
    }
    return buf;
}

chorus_result_t chorus_sockaddr_set(struct chorus_sockaddr *addr, const struct sockaddr *sa,
                                    socklen_t len)
{
    if (!addr || !sa)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL address");
    memset(addr, 0, sizeof *addr);
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        memcpy(&addr->u.in4, sa, sizeof(struct sockaddr_in));
        addr->len = sizeof(struct sockaddr_in);
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(&addr->u.in6, sa, sizeof(struct sockaddr_in6));
        addr->len = sizeof(struct sockaddr_in6);
    } else {
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT,
                          "address family %d (length %u) is neither IPv4 nor IPv6",
                          (int)sa->sa_family, (unsigned)len);
    }
    return CHORUS_SUCCESS;
}

uint16_t chorus_sockaddr_port(const struct chorus_sockaddr *addr)
{
    if (addr->u.sa.sa_family == AF_INET)
        return ntohs(addr->u.in4.sin_port);
    if (addr->u.sa.sa_family == AF_INET6)
        return ntohs(addr->u.in6.sin6_port);
    return 0;
}

void chorus_sockaddr_set_port(struct chorus_sockaddr *addr, uint16_t port)
{
    if (addr->u.sa.sa_family == AF_INET)
        addr->u.in4.sin_port = htons(port);
    else if (addr->u.sa.sa_family == AF_INET6)
        addr->u.in6.sin6_port = htons(port);
}

int chorus_socket_parse_family(const char *text, int *family)
{
    static const char *const v4[] = {"AF_INET", "inet", "ipv4", "4"};
    static const char *const v6[] = {"AF_INET6", "inet6", "ipv6", "6"};
    if (!text || !*text) {
        *family = AF_UNSPEC;
        return 0;
    }
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(text, v4[i])) {
            *family = AF_INET;
            return 0;
        }
        if (!strcasecmp(text, v6[i])) {
            *family = AF_INET6;
            return 0;
        }
    }
    return -1;
}

static chorus_result_t tunable_family(int *family)
{
    const struct chorus_tunables *t;
    CHORUS_CHECK(chorus_tunables_load(&t));
    if (chorus_socket_parse_family(t->SOCKET_FAMILY, family) != 0)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT,
                          "CHORUS_SOCKET_FAMILY='%s' is not AF_INET or AF_INET6",
                          t->SOCKET_FAMILY);
    return CHORUS_SUCCESS;
}

/* ---- interface selection --------------------------------------------------- */

static int default_name_ok(const char *name)
{
    static const char *const skip[] = {"docker", "veth", "virbr", "br-"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (!strncmp(name, skip[i], strlen(skip[i])))
            return 0;
    return 1;
}

int chorus_socket_ifname_match(const char *spec, const char *name)
{
    if (!name)
        return 0;
    if (!spec || !*spec)
        return default_name_ok(name);
    int exclude = 0, exact = 0;
    if (*spec == '^') {
        exclude = 1;
        spec++;
    }
    if (*spec == '=') {
        exact = 1;
        spec++;
    }
    int match = 0;
    const char *p = spec;
    while (*p && !match) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && isspace((unsigned char)end[-1]))
            end--;
        size_t n = (size_t)(end - start);
        if (n == 0)
            continue;
        if (exact)
            match = strlen(name) == n && !strncmp(name, start, n);
        else
            match = !strncmp(name, start, n);
    }
    return exclude ? !match : match;
}

/* Lower is better: IPv4, global IPv6, link-local. */
static int addr_class(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)(const void *)sa;
        uint32_t a = ntohl(in4->sin_addr.s_addr);
        return (a >> 16) == 0xa9fe ? 2 : 0; /* 169.254/16 */
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    return IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr) ? 3 : 1;
}

chorus_result_t chorus_socket_pick_address(struct chorus_sockaddr *addr, char *ifname,
                                           size_t ifname_cap)
{
    const struct chorus_tunables *t;
    int family;
    if (!addr)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL address");
    CHORUS_CHECK(chorus_tunables_load(&t));
    CHORUS_CHECK(tunable_family(&family));
    const char *spec = t->SOCKET_IFNAME ? t->SOCKET_IFNAME : "";
    int exclude_spec = spec[0] == '^';

    struct ifaddrs *list = NULL;
    if (getifaddrs(&list) != 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "getifaddrs failed: %s", strerror(errno));

    const struct ifaddrs *best = NULL;
    int best_key[4] = {0, 0, 0, 0};
    char seen[256] = "";
    size_t seen_len = 0;
    for (const struct ifaddrs *ifa = list; ifa; ifa = ifa->ifa_next) {
        if (!ifa->ifa_addr || !ifa->ifa_name)
            continue;
        int fam = ifa->ifa_addr->sa_family;
        if (fam != AF_INET && fam != AF_INET6)
            continue;
        if (!(ifa->ifa_flags & IFF_UP))
            continue;
        if (family != AF_UNSPEC && fam != family)
            continue;
        /* Remember names for the error message. */
        if (!strstr(seen, ifa->ifa_name) && seen_len + strlen(ifa->ifa_name) + 3 < sizeof seen) {
            seen_len += (size_t)snprintf(seen + seen_len, sizeof seen - seen_len, "%s%s",
                                         seen_len ? ", " : "", ifa->ifa_name);
        }
        int loop = (ifa->ifa_flags & IFF_LOOPBACK) != 0;
        int fallback;
        if (!spec[0] || exclude_spec) {
            if (!chorus_socket_ifname_match(spec, ifa->ifa_name))
                continue;
            fallback = loop;
        } else {
            if (!chorus_socket_ifname_match(spec, ifa->ifa_name))
                continue;
            fallback = 0;
        }
        /* Lexicographic: not a fallback, has a carrier, address class, index. */
        int key[4] = {fallback, !(ifa->ifa_flags & IFF_RUNNING), addr_class(ifa->ifa_addr),
                      (int)if_nametoindex(ifa->ifa_name)};
        int better = !best;
        for (int k = 0; k < 4 && !better; k++) {
            if (key[k] != best_key[k]) {
                better = key[k] < best_key[k];
                break;
            }
        }
        if (better) {
            best = ifa;
            memcpy(best_key, key, sizeof key);
        }
    }
    chorus_result_t res = CHORUS_SUCCESS;
    if (!best) {
        res = CHORUS_ERR(CHORUS_INVALID_ARGUMENT,
                         "no up network interface matches CHORUS_SOCKET_IFNAME='%s' "
                         "CHORUS_SOCKET_FAMILY='%s' (up interfaces: %s)",
                         spec, t->SOCKET_FAMILY, seen_len ? seen : "none");
    } else {
        socklen_t len = best->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                              : sizeof(struct sockaddr_in6);
        res = chorus_sockaddr_set(addr, best->ifa_addr, len);
        if (res == CHORUS_SUCCESS) {
            chorus_sockaddr_set_port(addr, 0);
            if (ifname && ifname_cap)
                snprintf(ifname, ifname_cap, "%s", best->ifa_name);
            char s[CHORUS_SOCKADDR_STRLEN];
            LOG_DEBUG("bootstrap", "using interface %s address %s", best->ifa_name,
                      chorus_sockaddr_str(addr, s, sizeof s));
        }
    }
    freeifaddrs(list);
    return res;
}

chorus_result_t chorus_socket_resolve(const char *host, int port, int family,
                                      struct chorus_sockaddr *addr)
{
    if (!host || !*host || !addr)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "no host name to resolve");
    if (port < 0 || port > 65535)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "port %d is out of range 0..65535", port);
    /* Accept "[::1]" as well as "::1". */
    char name[256];
    size_t n = strlen(host);
    if (n >= sizeof name)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "host name '%.40s...' is too long", host);
    if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
        memcpy(name, host + 1, n - 2);
        name[n - 2] = '\0';
    } else {
        memcpy(name, host, n + 1);
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "cannot resolve host '%s': %s", name,
                          rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    const struct addrinfo *pick = NULL;
    for (int pass = 0; pass < 2 && !pick; pass++)
        for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
            if (ai->ai_family == (pass == 0 ? AF_INET : AF_INET6)) {
                pick = ai;
                break;
            }
    chorus_result_t r;
    if (!pick)
        r = CHORUS_ERR(CHORUS_SYSTEM_ERROR, "host '%s' has no IPv4 or IPv6 address", name);
    else
        r = chorus_sockaddr_set(addr, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(res);
    if (r == CHORUS_SUCCESS)
        chorus_sockaddr_set_port(addr, (uint16_t)port);
    return r;
}

/* ---- sockets --------------------------------------------------------------- */

void chorus_socket_close(int *fd)
{
    if (fd && *fd >= 0) {
        close(*fd); /* never retried on EINTR: Linux frees the fd anyway */
        *fd = -1;
    }
}

static void set_nodelay(int fd)
{
    int one = 1;
    /* Best effort: a failure only costs latency. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

chorus_result_t chorus_socket_listen(const struct chorus_sockaddr *addr, int reuseaddr, int *fd,
                                     struct chorus_sockaddr *bound)
{
    char s[CHORUS_SOCKADDR_STRLEN];
    if (!addr || !fd || addr->len == 0)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "no address to listen on");
    *fd = -1;
    int lfd = socket(addr->u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (lfd < 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "socket() for %s failed: %s",
                          chorus_sockaddr_str(addr, s, sizeof s), strerror(errno));
    if (reuseaddr) {
        int one = 1;
        if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
            int e = errno;
            close(lfd);
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "SO_REUSEADDR failed: %s", strerror(e));
        }
    }
    if (bind(lfd, &addr->u.sa, addr->len) != 0) {
        int e = errno;
        close(lfd);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "cannot bind to %s: %s",
                          chorus_sockaddr_str(addr, s, sizeof s), strerror(e));
    }
    if (listen(lfd, 4096) != 0) {
        int e = errno;
        close(lfd);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "cannot listen on %s: %s",
                          chorus_sockaddr_str(addr, s, sizeof s), strerror(e));
    }
    if (bound) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(lfd, (struct sockaddr *)&ss, &len) != 0) {
            int e = errno;
            close(lfd);
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "getsockname failed: %s", strerror(e));
        }
        chorus_result_t r = chorus_sockaddr_set(bound, (struct sockaddr *)&ss, len);
        if (r != CHORUS_SUCCESS) {
            close(lfd);
            return r;
        }
    }
    *fd = lfd;
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_socket_accept(int listen_fd, int64_t deadline, int *fd,
                                     struct chorus_sockaddr *peer)
{
    int64_t start = chorus_socket_now_ms();
    *fd = -1;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int cfd = accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd >= 0) {
            set_nodelay(cfd);
            if (peer && chorus_sockaddr_set(peer, (struct sockaddr *)&ss, len) != CHORUS_SUCCESS)
                memset(peer, 0, sizeof *peer);
            *fd = cfd;
            return CHORUS_SUCCESS;
        }
        int e = errno;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO)
            continue;
        if (e != EAGAIN && e != EWOULDBLOCK)
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "accept failed: %s%s", strerror(e),
                              e == EMFILE || e == ENFILE ? " (raise the open file limit, ulimit -n)"
                                                         : "");
        if (expired(deadline))
            return CHORUS_ERR(CHORUS_TIMEOUT, "no connection arrived within %lld ms",
                              (long long)(chorus_socket_now_ms() - start));
        struct pollfd p = {.fd = listen_fd, .events = POLLIN, .revents = 0};
        int rc = poll(&p, 1, chorus_socket_poll_ms(deadline));
        if (rc < 0 && errno != EINTR)
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "poll failed: %s", strerror(errno));
    }
}

static int connect_retryable(int e)
{
    return e == ECONNREFUSED || e == ECONNRESET || e == ETIMEDOUT || e == EHOSTUNREACH ||
           e == ENETUNREACH || e == EAGAIN || e == ECONNABORTED || e == EADDRNOTAVAIL ||
           e == EADDRINUSE;
}

/* A connect to a local port nobody listens on can, on Linux, connect the
 * socket to itself (TCP simultaneous open) when the port is in the ephemeral
 * range. Such a connection is useless: treat it as refused. */
static int self_connected(int fd)
{
    struct sockaddr_storage a, b;
    socklen_t la = sizeof a, lb = sizeof b;
    if (getsockname(fd, (struct sockaddr *)&a, &la) != 0 ||
        getpeername(fd, (struct sockaddr *)&b, &lb) != 0)
        return 0;
    return la == lb && memcmp(&a, &b, la) == 0;
}

chorus_result_t chorus_socket_connect(const struct chorus_sockaddr *addr, int64_t deadline,
                                      const char *what, int *fd)
{
    char s[CHORUS_SOCKADDR_STRLEN];
    if (!addr || !fd || addr->len == 0)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "no address to connect to");
    *fd = -1;
    chorus_sockaddr_str(addr, s, sizeof s);
    if (!what)
        what = s;
    int64_t start = chorus_socket_now_ms();
    int backoff = 10, attempts = 0, last = 0;
    for (;;) {
        attempts++;
        int cfd = socket(addr->u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (cfd < 0)
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "socket() to connect to %s failed: %s", what,
                              strerror(errno));
        int e = 0;
        if (connect(cfd, &addr->u.sa, addr->len) != 0) {
            e = errno;
            if (e == EINPROGRESS || e == EINTR) {
                /* Wait for the outcome, bounded by the deadline. */
                for (;;) {
                    struct pollfd p = {.fd = cfd, .events = POLLOUT, .revents = 0};
                    int rc = poll(&p, 1, chorus_socket_poll_ms(deadline));
                    if (rc < 0 && errno == EINTR)
                        continue;
                    if (rc < 0) {
                        e = errno;
                        break;
                    }
                    if (rc == 0) {
                        e = ETIMEDOUT;
                        break;
                    }
                    socklen_t el = sizeof e;
                    if (getsockopt(cfd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
                        e = errno;
                    break;
                }
            }
        }
        if (e == 0 && self_connected(cfd))
            e = ECONNREFUSED;
        if (e == 0) {
            set_nodelay(cfd);
            *fd = cfd;
            LOG_TRACE("bootstrap", "connected to %s after %d attempt(s)", what, attempts);
            return CHORUS_SUCCESS;
        }
        close(cfd);
        last = e;
        if (!connect_retryable(e))
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "cannot connect to %s: %s", what, strerror(e));
        if (expired(deadline))
            return CHORUS_ERR(CHORUS_TIMEOUT,
                              "could not connect to %s within %lld ms (%d attempts, last error: "
                              "%s)",
                              what, (long long)(chorus_socket_now_ms() - start), attempts,
                              strerror(last));
        int wait = backoff;
        int left = chorus_socket_poll_ms(deadline);
        if (left >= 0 && left < wait)
            wait = left;
        if (wait > 0)
            poll(NULL, 0, wait); /* an EINTR only shortens the pause */
        if (backoff < 1000)
            backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
    }
}

/* ---- data ------------------------------------------------------------------ */

/* One nonblocking send; returns bytes sent (0: would block) or -errno. */
static ssize_t send_some(int fd, const void *buf, size_t len)
{
    for (;;) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno;
    }
}

/* One nonblocking recv; returns bytes (0: would block), -errno, or RECV_EOF
 * when the peer closed the connection. */
#define RECV_EOF (-1000000)
static ssize_t recv_some(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n > 0)
            return n;
        if (n == 0)
            return RECV_EOF;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno;
    }
}

static chorus_result_t io_error(ssize_t code, int sending, const char *peer, size_t done,
                                size_t len)
{
    if (code == RECV_EOF)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "%s closed the connection (%zu of %zu bytes received; did it exit or "
                          "fail?)",
                          peer, done, len);
    int e = (int)-code;
    if (e == EPIPE || e == ECONNRESET || e == ETIMEDOUT || e == EHOSTUNREACH || e == ENETUNREACH)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "connection to %s broke while %s (%zu of %zu bytes): %s", peer,
                          sending ? "sending" : "receiving", done, len, strerror(e));
    return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s %s failed: %s", sending ? "send to" : "recv from",
                      peer, strerror(e));
}

chorus_result_t chorus_socket_sendrecv(int sfd, const void *sbuf, size_t slen, const char *speer,
                                       int rfd, void *rbuf, size_t rlen, const char *rpeer,
                                       int64_t deadline)
{
    const char *sp = (const char *)sbuf;
    char *rp = (char *)rbuf;
    size_t sdone = 0, rdone = 0;
    int64_t start = chorus_socket_now_ms();
    if (!speer)
        speer = "peer";
    if (!rpeer)
        rpeer = "peer";
    if ((slen && (!sbuf || sfd < 0)) || (rlen && (!rbuf || rfd < 0)))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "bad buffer or socket");
    while (sdone < slen || rdone < rlen) {
        int progress = 0;
        if (sdone < slen) {
            ssize_t n = send_some(sfd, sp + sdone, slen - sdone);
            if (n < 0)
                return io_error(n, 1, speer, sdone, slen);
            sdone += (size_t)n;
            progress |= n > 0;
        }
        if (rdone < rlen) {
            ssize_t n = recv_some(rfd, rp + rdone, rlen - rdone);
            if (n < 0)
                return io_error(n, 0, rpeer, rdone, rlen);
            rdone += (size_t)n;
            progress |= n > 0;
        }
        if (progress)
            continue;
        if (sdone == slen && rdone == rlen)
            break;
        if (expired(deadline)) {
            if (rdone < rlen)
                return CHORUS_ERR(CHORUS_TIMEOUT,
                                  "timed out after %lld ms waiting for data from %s (%zu of %zu "
                                  "bytes received)",
                                  (long long)(chorus_socket_now_ms() - start), rpeer, rdone, rlen);
            return CHORUS_ERR(CHORUS_TIMEOUT,
                              "timed out after %lld ms sending to %s (%zu of %zu bytes sent; "
                              "it is not reading)",
                              (long long)(chorus_socket_now_ms() - start), speer, sdone, slen);
        }
        struct pollfd p[2];
        nfds_t np = 0;
        if (sdone < slen) {
            p[np].fd = sfd;
            p[np].events = POLLOUT;
            p[np].revents = 0;
            np++;
        }
        if (rdone < rlen) {
            if (np == 1 && p[0].fd == rfd) {
                p[0].events |= POLLIN;
            } else {
                p[np].fd = rfd;
                p[np].events = POLLIN;
                p[np].revents = 0;
                np++;
            }
        }
        int rc = poll(p, np, chorus_socket_poll_ms(deadline));
        if (rc < 0 && errno != EINTR)
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "poll failed: %s", strerror(errno));
        /* Readiness (including POLLERR/POLLHUP) is examined by the next send/recv. */
    }
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_socket_send_all(int fd, const void *buf, size_t len, int64_t deadline,
                                       const char *peer)
{
    return chorus_socket_sendrecv(fd, buf, len, peer, -1, NULL, 0, NULL, deadline);
}

chorus_result_t chorus_socket_recv_all(int fd, void *buf, size_t len, int64_t deadline,
                                       const char *peer)
{
    return chorus_socket_sendrecv(-1, NULL, 0, NULL, fd, buf, len, peer, deadline);
}

/* ---- randomness ------------------------------------------------------------ */

chorus_result_t chorus_random_bytes(void *buf, size_t len)
{
    unsigned char *p = (unsigned char *)buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = getrandom(p + done, len - done, 0);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        break; /* ENOSYS or similar: fall back to the device */
    }
    if (done == len)
        return CHORUS_SUCCESS;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "no random source (getrandom and /dev/urandom "
                                               "failed: %s)",
                          strerror(errno));
    while (done < len) {
        ssize_t n = read(fd, p + done, len - done);
        if (n > 0)
            done += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else
            break;
    }
    close(fd);
    if (done != len)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "short read from /dev/urandom");
    return CHORUS_SUCCESS;
}
