/* tcp_conn.c - making the connections of the TCP transport.
 *
 * Every rank listens on an ephemeral port of the interface the bootstrap
 * would pick (CHORUS_SOCKET_IFNAME / CHORUS_SOCKET_FAMILY) and publishes a
 * card {address, random token, socket count, piece size} through the setup
 * allgather. Then the lower rank of every needed pair connects to the
 * higher one: a control connection and N data connections, each opening
 * with a hello that carries the acceptor's token. The acceptor keeps any
 * number of unproven connections waiting at once and closes those whose
 * hello is wrong, so a stray client neither blocks nor confuses setup.
 *
 * Connecting first and accepting afterwards cannot deadlock: every rank
 * listens before the allgather, and the kernel completes a connection to a
 * listening socket without the owner calling accept().
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "error.h"
#include "log.h"
#include "tcp_impl.h"
#include "tunables.h"

/* Connections accepted but not yet proven by a hello; beyond this the
 * oldest is dropped (only a flood of stray clients gets there). */
#define MAX_PENDING 64
/* Setup waits in slices this long to notice the abort flag. */
#define ABORT_POLL_MS 100

struct pending {
    int fd;
    size_t got;
    uint8_t buf[TCP_HELLO_BYTES];
    char from[CHORUS_SOCKADDR_STRLEN];
};

struct setup_state {
    struct tcp_transport *t;
    const struct transport_setup *setup;
    struct tcp_card mine;
    struct tcp_card *cards; /* [nranks] */
    int listen_fd;
    int64_t deadline;
    size_t sockbuf;
    struct pending pending[MAX_PENDING];
    int npending;
};

static int needed(const struct transport_setup *setup, int q)
{
    return q != setup->rank && (!setup->need_peer || setup->need_peer[q]);
}

static chorus_result_t check_abort(const struct setup_state *st)
{
    if (st->setup->abort_flag && atomic_load(st->setup->abort_flag))
        return CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: aborted during TCP connection setup",
                          st->t->label);
    return CHORUS_SUCCESS;
}

/* ---- cards ------------------------------------------------------------------- */

static chorus_result_t make_card(struct setup_state *st, const struct chorus_tunables *tun,
                                 char *ifname, size_t ifname_cap)
{
    struct tcp_card *c = &st->mine;
    struct chorus_sockaddr addr;
    memset(c, 0, sizeof *c); /* padding travels too: keep it defined */
    c->magic = TCP_CARD_MAGIC;
    c->version = TCP_VERSION;
    long n = tun->NET_SOCKETS;
    c->nsock = (uint32_t)(n < 1 ? 1 : n > TCP_MAX_SOCKETS ? TCP_MAX_SOCKETS : n);
    size_t chunk = tun->NET_CHUNK;
    c->chunk = (uint32_t)(chunk < TCP_MIN_CHUNK   ? TCP_MIN_CHUNK
                          : chunk > TCP_MAX_CHUNK ? TCP_MAX_CHUNK
                                                  : chunk);
    CHORUS_CHECK(chorus_random_bytes(c->token, sizeof c->token));
    CHORUS_CHECK(chorus_socket_pick_address(&addr, ifname, ifname_cap));
    return chorus_socket_listen(&addr, 0, &st->listen_fd, &c->addr);
}

static int card_ok(const struct tcp_card *c)
{
    struct chorus_sockaddr check;
    return c->magic == TCP_CARD_MAGIC && c->version == TCP_VERSION && c->nsock >= 1 &&
           c->nsock <= TCP_MAX_SOCKETS && c->chunk >= TCP_MIN_CHUNK &&
           c->chunk <= TCP_MAX_CHUNK && c->addr.len <= sizeof c->addr.u &&
           chorus_sockaddr_set(&check, &c->addr.u.sa, c->addr.len) == CHORUS_SUCCESS &&
           check.len == c->addr.len && chorus_sockaddr_port(&check) != 0;
}

static chorus_result_t exchange_cards(struct setup_state *st)
{
    const struct transport_setup *setup = st->setup;
    struct tcp_transport *t = st->t;
    st->cards = calloc((size_t)t->nranks, sizeof *st->cards);
    if (!st->cards)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory for %d TCP setup cards",
                          t->label, t->nranks);
    CHORUS_CHECK(setup->allgather(setup->allgather_ctx, &st->mine, st->cards, sizeof st->mine));
    for (int q = 0; q < t->nranks; q++) {
        char addr[CHORUS_SOCKADDR_STRLEN];
        int ok = card_ok(&st->cards[q]);
        if (ok)
            snprintf(t->names[q], TCP_NAME_BYTES, "rank %d (%s)", q,
                     chorus_sockaddr_str(&st->cards[q].addr, addr, sizeof addr));
        else
            snprintf(t->names[q], TCP_NAME_BYTES, "rank %d", q);
        if (!ok && needed(setup, q))
            return CHORUS_ERR(CHORUS_INVALID_USAGE,
                              "%s: rank %d published an invalid TCP setup card (a different "
                              "Chorus build or architecture?)",
                              t->label, q);
    }
    return CHORUS_SUCCESS;
}

/* ---- peers and their sockets ---------------------------------------------------- */

static void sock_init(struct tcp_sock *s, struct tcp_peer *p, int index)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->index = index;
    s->peer = p;
    s->readable = s->writable = 1; /* find out with the first attempt */
    if (index > 0) {
        s->tx.next = s->rx.next = (uint64_t)(index - 1);
    }
}

static chorus_result_t add_peer(struct setup_state *st, int q)
{
    struct tcp_transport *t = st->t;
    const struct tcp_card *c = &st->cards[q];
    struct tcp_peer *p = calloc(1, sizeof *p);
    int nsock = (int)(c->nsock < st->mine.nsock ? c->nsock : st->mine.nsock);
    if (p)
        p->data = calloc((size_t)nsock, sizeof *p->data);
    if (!p || !p->data) {
        free(p);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory for the TCP state of %s",
                          t->label, t->names[q]);
    }
    p->rank = q;
    p->nsock = nsock;
    p->chunk = c->chunk < st->mine.chunk ? c->chunk : st->mine.chunk;
    sock_init(&p->ctrl, p, 0);
    for (int i = 0; i < nsock; i++)
        sock_init(&p->data[i], p, i + 1);
    t->peers[q] = p;
    return CHORUS_SUCCESS;
}

static struct tcp_sock *slot(struct tcp_peer *p, unsigned index)
{
    return index == 0 ? &p->ctrl : &p->data[index - 1];
}

/* Large explicit buffers help long fat links; 0 leaves autotuning on. */
static void size_buffers(const struct setup_state *st, int fd)
{
    if (st->sockbuf == 0)
        return;
    int v = st->sockbuf > INT_MAX ? INT_MAX : (int)st->sockbuf;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) != 0)
        LOG_DEBUG("tcp", "%s: setting socket buffers to %d bytes failed: %s", st->t->label, v,
                  strerror(errno));
}

/* ---- connecting ------------------------------------------------------------------ */

static chorus_result_t connect_peer(struct setup_state *st, struct tcp_peer *p)
{
    struct tcp_transport *t = st->t;
    const struct tcp_card *c = &st->cards[p->rank];
    for (int i = 0; i <= p->nsock; i++) {
        CHORUS_CHECK(check_abort(st));
        struct tcp_sock *s = slot(p, (unsigned)i);
        struct tcp_hello h;
        memset(&h, 0, sizeof h);
        h.magic = TCP_HELLO_MAGIC;
        h.version = TCP_VERSION;
        h.index = (uint16_t)i;
        h.from = (uint32_t)t->rank;
        h.to = (uint32_t)p->rank;
        memcpy(h.token, c->token, sizeof h.token);
        CHORUS_CHECK(chorus_socket_connect(&c->addr, st->deadline, t->names[p->rank], &s->fd));
        if (i > 0)
            size_buffers(st, s->fd);
        CHORUS_CHECK(chorus_socket_send_all(s->fd, &h, sizeof h, st->deadline,
                                            t->names[p->rank]));
    }
    return CHORUS_SUCCESS;
}

/* ---- accepting ------------------------------------------------------------------- */

/* Why a hello is refused, or NULL if it fills a slot (*out). */
static const char *judge_hello(struct setup_state *st, const struct tcp_hello *h,
                               struct tcp_sock **out)
{
    struct tcp_transport *t = st->t;
    if (h->magic != TCP_HELLO_MAGIC || h->version != TCP_VERSION)
        return "not a Chorus TCP hello of this version";
    if (h->to != (uint32_t)t->rank)
        return "addressed to another rank";
    if (h->from >= (uint32_t)t->nranks || (int)h->from >= t->rank || !t->peers[h->from])
        return "from a rank that does not connect to this one";
    /* Not a secret compare: the token only proves the sender saw the setup. */
    if (memcmp(h->token, st->mine.token, sizeof h->token) != 0)
        return "wrong token";
    struct tcp_peer *p = t->peers[h->from];
    if (h->index > (unsigned)p->nsock)
        return "socket index out of range";
    struct tcp_sock *s = slot(p, h->index);
    if (s->fd >= 0)
        return "duplicate connection";
    *out = s;
    return NULL;
}

/* Closes pending connection i; compact_pending() then removes it. */
static void refuse(struct setup_state *st, int i, const char *why)
{
    struct pending *pd = &st->pending[i];
    LOG_WARN("tcp", "%s: refused a connection from %s: %s", st->t->label, pd->from, why);
    chorus_socket_close(&pd->fd);
}

/* Removes the entries whose fd is gone, keeping arrival order: hellos are
 * judged first come, first served. */
static void compact_pending(struct setup_state *st)
{
    int n = 0;
    for (int i = 0; i < st->npending; i++)
        if (st->pending[i].fd >= 0)
            st->pending[n++] = st->pending[i];
    st->npending = n;
}

static void accept_new(struct setup_state *st)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(st->listen_fd, (struct sockaddr *)&ss, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                LOG_WARN("tcp", "%s: accept failed: %s", st->t->label, strerror(errno));
            return; /* the caller's wait is bounded by the deadline anyway */
        }
        if (st->npending == MAX_PENDING) {
            refuse(st, 0, "too many connections waiting for their hello");
            compact_pending(st);
        }
        struct pending *pd = &st->pending[st->npending++];
        struct chorus_sockaddr from;
        memset(pd, 0, sizeof *pd);
        pd->fd = fd;
        if (chorus_sockaddr_set(&from, (struct sockaddr *)&ss, len) == CHORUS_SUCCESS)
            chorus_sockaddr_str(&from, pd->from, sizeof pd->from);
        else
            snprintf(pd->from, sizeof pd->from, "an unknown address");
    }
}

/* Reads what arrived of pending connection i's hello; once complete, the
 * connection fills its slot or is refused (either way pending[i].fd = -1). */
static void read_hello(struct setup_state *st, int i, int *left)
{
    struct pending *pd = &st->pending[i];
    ssize_t n = recv(pd->fd, pd->buf + pd->got, sizeof pd->buf - pd->got, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        refuse(st, i, n == 0 ? "closed before its hello" : strerror(errno));
        return;
    }
    pd->got += (size_t)n;
    if (pd->got < sizeof pd->buf)
        return;
    struct tcp_hello h;
    struct tcp_sock *s = NULL;
    memcpy(&h, pd->buf, sizeof h);
    const char *why = judge_hello(st, &h, &s);
    if (why) {
        refuse(st, i, why);
        return;
    }
    int one = 1;
    (void)setsockopt(pd->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* latency only */
    if (s->index > 0)
        size_buffers(st, pd->fd);
    s->fd = pd->fd;
    pd->fd = -1;
    (*left)--;
    LOG_DEBUG("tcp", "%s: accepted connection %d of %s from %s", st->t->label, s->index,
              st->t->names[s->peer->rank], pd->from);
}

static chorus_result_t missing_error(struct setup_state *st)
{
    struct tcp_transport *t = st->t;
    char who[512];
    size_t len = 0;
    who[0] = '\0';
    for (int q = 0; q < t->rank && len < sizeof who - 80; q++) {
        struct tcp_peer *p = t->peers[q];
        int miss = 0;
        for (int i = 0; p && i <= p->nsock; i++)
            miss += slot(p, (unsigned)i)->fd < 0;
        if (miss) {
            int w = snprintf(who + len, sizeof who - len, "%s%s (%d of %d connections missing)",
                             len ? ", " : "", t->names[q], miss, p->nsock + 1);
            if (w > 0)
                len += (size_t)w;
        }
    }
    return CHORUS_ERR(CHORUS_TIMEOUT,
                      "%s: timed out after %d ms waiting for TCP connections from %s",
                      t->label, st->setup->timeout_ms, who);
}

static chorus_result_t accept_all(struct setup_state *st)
{
    struct tcp_transport *t = st->t;
    int left = 0;
    for (int q = 0; q < t->rank; q++)
        if (t->peers[q])
            left += 1 + t->peers[q]->nsock;
    while (left > 0) {
        CHORUS_CHECK(check_abort(st));
        int wait_ms = chorus_socket_poll_ms(st->deadline);
        if (wait_ms == 0)
            return missing_error(st);
        if (wait_ms < 0 || wait_ms > ABORT_POLL_MS)
            wait_ms = ABORT_POLL_MS;
        struct pollfd pf[1 + MAX_PENDING];
        pf[0].fd = st->listen_fd;
        pf[0].events = POLLIN;
        for (int i = 0; i < st->npending; i++) {
            pf[1 + i].fd = st->pending[i].fd;
            pf[1 + i].events = POLLIN;
        }
        int np = st->npending;
        int rc = poll(pf, (nfds_t)(1 + np), wait_ms);
        if (rc < 0 && errno != EINTR)
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: poll failed in TCP setup: %s",
                              t->label, strerror(errno));
        if (rc <= 0)
            continue;
        for (int i = 0; i < np; i++)
            if (pf[1 + i].revents)
                read_hello(st, i, &left);
        compact_pending(st);
        if (pf[0].revents)
            accept_new(st);
    }
    return CHORUS_SUCCESS;
}

/* ---- the whole setup --------------------------------------------------------------- */

static chorus_result_t watch_sockets(struct tcp_transport *t)
{
    for (int q = 0; q < t->nranks; q++) {
        struct tcp_peer *p = t->peers[q];
        for (int i = 0; p && i <= p->nsock; i++) {
            struct tcp_sock *s = slot(p, (unsigned)i);
            struct epoll_event ev;
            memset(&ev, 0, sizeof ev);
            /* Edge-triggered: readiness is remembered in s->readable and
             * s->writable until a call says EAGAIN, so a data connection
             * nobody is ready to read does not wake every epoll_wait. */
            ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (i > 0 ? EPOLLOUT : 0);
            ev.data.ptr = s;
            if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, s->fd, &ev) != 0)
                return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: epoll_ctl for %s failed: %s",
                                  t->label, t->names[q], strerror(errno));
        }
    }
    return CHORUS_SUCCESS;
}

static chorus_result_t connect_everything(struct setup_state *st)
{
    struct tcp_transport *t = st->t;
    const struct chorus_tunables *tun;
    char ifname[64] = "?";
    CHORUS_CHECK(chorus_tunables_load(&tun));
    st->sockbuf = tun->NET_SOCKBUF;
    st->deadline = chorus_socket_deadline(st->setup->timeout_ms);
    CHORUS_CHECK(make_card(st, tun, ifname, sizeof ifname));
    CHORUS_CHECK(exchange_cards(st));
    int npeers = 0;
    for (int q = 0; q < t->nranks; q++)
        if (needed(st->setup, q)) {
            CHORUS_CHECK(add_peer(st, q));
            npeers++;
        }
    for (int q = t->rank + 1; q < t->nranks; q++)
        if (t->peers[q])
            CHORUS_CHECK(connect_peer(st, t->peers[q]));
    CHORUS_CHECK(accept_all(st));
    CHORUS_CHECK(watch_sockets(t));
    LOG_INFO("tcp", "rank %d connected to %d peers over iface %s, %u data sockets each",
             t->rank, npeers, ifname, st->mine.nsock);
    return CHORUS_SUCCESS;
}

chorus_result_t tcp_transport_create(struct transport **out, const struct transport_setup *setup)
{
    if (!out || !setup || !setup->allgather || setup->nranks < 1 || setup->rank < 0 ||
        setup->rank >= setup->nranks)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT,
                          "tcp_transport_create: bad setup (rank %d of %d, allgather %s)",
                          setup ? setup->rank : -1, setup ? setup->nranks : -1,
                          setup && setup->allgather ? "set" : "missing");
    *out = NULL;
    struct tcp_transport *t = calloc(1, sizeof *t);
    if (t) {
        t->base.ops = &tcp_transport_ops;
        t->base.blame = -1;
        t->epfd = -1;
        t->peers = calloc((size_t)setup->nranks, sizeof *t->peers);
        t->names = calloc((size_t)setup->nranks, sizeof *t->names);
    }
    if (!t || !t->peers || !t->names) {
        if (t)
            tcp_destroy(&t->base);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory for a TCP transport of %d ranks",
                          setup->label ? setup->label : "tcp", setup->nranks);
    }
    t->rank = setup->rank;
    t->nranks = setup->nranks;
    snprintf(t->label, sizeof t->label, "%s", setup->label ? setup->label : "tcp");

    struct setup_state *st = calloc(1, sizeof *st);
    chorus_result_t res;
    if (!st) {
        res = CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory for TCP setup", t->label);
    } else {
        st->t = t;
        st->setup = setup;
        st->listen_fd = -1;
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        res = t->epfd < 0 ? CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: epoll_create1 failed: %s",
                                       t->label, strerror(errno))
                          : connect_everything(st);
        for (int i = 0; i < st->npending; i++)
            chorus_socket_close(&st->pending[i].fd);
        chorus_socket_close(&st->listen_fd);
        free(st->cards);
        free(st);
    }
    if (res != CHORUS_SUCCESS) {
        tcp_destroy(&t->base);
        return res;
    }
    *out = &t->base;
    return CHORUS_SUCCESS;
}
