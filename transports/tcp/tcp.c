/* tcp.c - moving data over the TCP transport's connections (the layout and
 * the wire format are described in tcp_impl.h; tcp_conn.c makes the
 * connections).
 *
 * Everything happens inside progress(): one epoll set holds every socket,
 * edge-triggered. A data socket's readiness is remembered in its flags until
 * a call returns EAGAIN, and a socket whose flags meet work (a piece to send,
 * or a posted receive owning its next piece) goes on the ready list, which
 * progress() drains. So a socket nobody is ready to read costs nothing, and
 * its bytes wait in the kernel.
 *
 * Completion is in post order per pair and direction: piece g is done when
 * every data socket has moved past it (the "frontier" is the smallest next
 * piece over the pair's sockets), so x->done is always a prefix and a
 * transfer is unlinked before it is marked complete (the caller may reuse
 * its memory at once).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "tcp_impl.h"
#include "wait.h"

/* Pieces one sendmsg may carry (many small messages in one call). */
#define SEND_BATCH 8
#define EPOLL_BATCH 64

static struct tcp_transport *tcp_of(struct transport *base) { return (struct tcp_transport *)base; }

/* ---- errors: the first one breaks the transport for good ------------------------ */

/* Records the error CHORUS_ERR just made as the transport's state, and
 * whom it blames (-1: nobody, e.g. a local system error) for the
 * communicator's own failure notices. */
static chorus_result_t breaks(struct tcp_transport *t, chorus_result_t res, int blame,
                              chorus_result_t blame_code)
{
    t->broken = res;
    chorus_error_save(t->broken_text, sizeof t->broken_text);
    t->base.blame = blame;
    t->base.blame_code = blame_code;
    return res;
}

static chorus_result_t still_broken(const struct tcp_transport *t)
{
    chorus_error_restore(t->broken_text);
    return t->broken;
}

static int connection_lost(int e)
{
    return e == ECONNRESET || e == EPIPE || e == ETIMEDOUT || e == EHOSTUNREACH ||
           e == ENETUNREACH || e == ECONNABORTED;
}

/* ---- pieces ------------------------------------------------------------------------ */

static uint64_t end_piece(const struct xfer *x, size_t chunk)
{
    return x->chunks_posted + tcp_pieces(x->bytes, chunk);
}

/* The transfer at or after x that holds piece g (NULL: not posted yet). */
static struct xfer *owner(struct xfer *x, uint64_t g, size_t chunk)
{
    while (x && g >= end_piece(x, chunk))
        x = x->next;
    return x;
}

static void piece_range(const struct xfer *x, uint64_t g, size_t chunk, size_t *off, size_t *len)
{
    *off = (size_t)(g - x->chunks_posted) * chunk;
    *len = x->bytes - *off < chunk ? x->bytes - *off : chunk;
}

static void put_hdr(uint8_t *out, uint32_t type, uint64_t seq, uint64_t off, uint64_t len,
                    uint64_t total)
{
    struct tcp_hdr h = {TCP_HDR_MAGIC, type, seq, off, len, total};
    memcpy(out, &h, sizeof h);
}

/* Moves a stream past its finished piece, to the next one of its socket. */
static void stream_advance(struct tcp_stream *st, const struct tcp_peer *p)
{
    st->next += (uint64_t)p->nsock;
    st->moved = 0;
    st->x = owner(st->x, st->next, p->chunk);
}

/* Marks the prefix of q that every socket has moved past; completes and
 * unlinks the transfers it covers. */
static void settle(struct tcp_transport *t, struct tcp_peer *p, int sends)
{
    struct tcp_queue *q = sends ? &p->sends : &p->recvs;
    uint64_t frontier = UINT64_MAX;
    for (int i = 0; i < p->nsock; i++) {
        uint64_t next = sends ? p->data[i].tx.next : p->data[i].rx.next;
        frontier = next < frontier ? next : frontier;
    }
    struct xfer *x;
    while ((x = q->head)) {
        uint64_t pieces = tcp_pieces(x->bytes, p->chunk);
        uint64_t got = frontier <= x->chunks_posted ? 0 : frontier - x->chunks_posted;
        if (got > pieces)
            got = pieces;
        x->chunks_done = (size_t)got;
        x->done = got == pieces ? x->bytes : (size_t)got * p->chunk;
        if (got < pieces)
            break;
        q->head = x->next;
        if (!q->head)
            q->tail = NULL;
        x->next = NULL;
        x->complete = 1;
        t->completed++;
    }
}

static void make_ready(struct tcp_transport *t, struct tcp_sock *s)
{
    if (s->on_ready)
        return;
    s->on_ready = 1;
    s->ready_next = t->ready;
    t->ready = s;
}

/* ---- the control connection ----------------------------------------------------- */

/* A FAIL notice from p: blames the rank it names (p itself if it names
 * none) with the code it carries. */
static chorus_result_t peer_failed(struct tcp_transport *t, const struct tcp_peer *p,
                                   const struct tcp_hdr *h)
{
    int64_t blame = (int64_t)h->seq;
    int known = h->total > 0 && h->total < CHORUS_NUM_RESULTS;
    chorus_result_t code = known ? (chorus_result_t)h->total : CHORUS_REMOTE_ERROR;
    const char *why = known ? chorus_get_error_string(code) : "unknown error";
    const char *reporter = t->names[p->rank];
    chorus_result_t res = CHORUS_SUCCESS;
    if (blame == t->rank) {
        /* It stopped waiting for us. If we wait for someone else, that
         * wait's own timeout names the real culprit; only transfers with
         * the reporter itself are lost from here on. */
        struct tcp_peer *pp = t->peers[p->rank];
        pp->gave_up = 1;
        pp->gave_up_code = code;
        if (!pp->sends.head && !pp->recvs.head) {
            LOG_INFO("tcp", "%s: %s gave up waiting for this rank (%s)", t->label, reporter,
                     why);
            return CHORUS_SUCCESS;
        }
        res = CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: %s gave up waiting for this rank (%s)",
                         t->label, reporter, why);
    }
    else if (blame >= 0 && blame < t->nranks)
        res = CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: rank %d failed (%s), reported by %s",
                         t->label, (int)blame, why, reporter);
    else
        res = CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: %s gave up (%s)", t->label, reporter, why);
    if (blame < 0 || blame >= t->nranks || blame == t->rank)
        blame = p->rank;
    return breaks(t, res, (int)blame, code);
}

/* Reads whatever control messages arrived from p. EOF is remembered, not an
 * error: a peer that finished may close while we still read its data. */
static chorus_result_t read_control(struct tcp_transport *t, struct tcp_peer *p)
{
    struct tcp_sock *s = &p->ctrl;
    struct tcp_stream *st = &s->rx;
    while (!p->ctrl_eof) {
        ssize_t n = recv(s->fd, st->hdr + st->moved, TCP_HDR_BYTES - st->moved, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return CHORUS_SUCCESS;
        if (n <= 0) {
            LOG_DEBUG("tcp", "%s: control connection to %s closed (%s)", t->label,
                      t->names[p->rank], n == 0 ? "EOF" : strerror(errno));
            p->ctrl_eof = 1;
            return CHORUS_SUCCESS;
        }
        st->moved += (size_t)n;
        if (st->moved < TCP_HDR_BYTES)
            continue;
        st->moved = 0;
        struct tcp_hdr h;
        memcpy(&h, st->hdr, sizeof h);
        if (h.magic == TCP_HDR_MAGIC && h.type == TCP_MSG_FAIL)
            return peer_failed(t, p, &h);
        return breaks(t,
                      CHORUS_ERR(CHORUS_REMOTE_ERROR,
                                 "%s: %s sent an invalid control message (magic 0x%08x, "
                                 "type %u)",
                                 t->label, t->names[p->rank], h.magic, h.type),
                      p->rank, CHORUS_REMOTE_ERROR);
    }
    return CHORUS_SUCCESS;
}

/* A data connection failed under a transfer. A FAIL notice the peer sent
 * before closing explains more than the closed connection does. */
static chorus_result_t data_lost(struct tcp_transport *t, struct tcp_peer *p, int err,
                                 const char *doing, size_t bytes)
{
    CHORUS_CHECK(read_control(t, p));
    if (err == 0 || connection_lost(err))
        return breaks(t,
                      CHORUS_ERR(CHORUS_REMOTE_ERROR,
                                 "%s: connection to %s closed while %s %zu bytes (rank %d "
                                 "died or gave up?)",
                                 t->label, t->names[p->rank], doing, bytes, p->rank),
                      p->rank, CHORUS_REMOTE_ERROR);
    return breaks(t,
                  CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: %s %zu bytes with %s failed: %s",
                             t->label, doing, bytes, t->names[p->rank], strerror(err)),
                  -1, CHORUS_SYSTEM_ERROR);
}

/* ---- sending ------------------------------------------------------------------------ */

/* Writes this socket's pieces until the kernel says EAGAIN or none is left;
 * *moved tells whether a piece finished. */
static chorus_result_t send_some(struct tcp_transport *t, struct tcp_sock *s, int *moved)
{
    struct tcp_peer *p = s->peer;
    struct tcp_stream *st = &s->tx;
    while (s->writable && st->x) {
        uint8_t hdrs[SEND_BATCH][TCP_HDR_BYTES];
        struct iovec iov[2 * SEND_BATCH];
        size_t niov = 0, skip = st->moved;
        struct xfer *x = st->x;
        for (uint64_t g = st->next, k = 0; x && k < SEND_BATCH; k++) {
            size_t off, len;
            piece_range(x, g, p->chunk, &off, &len);
            put_hdr(hdrs[k], TCP_MSG_DATA, x->seq, off, len, x->bytes);
            if (skip < TCP_HDR_BYTES)
                iov[niov++] = (struct iovec){hdrs[k] + skip, TCP_HDR_BYTES - skip};
            size_t done = skip > TCP_HDR_BYTES ? skip - TCP_HDR_BYTES : 0;
            if (len > done)
                iov[niov++] = (struct iovec){(char *)x->buf + off + done, len - done};
            skip = 0;
            g += (uint64_t)p->nsock;
            x = owner(x, g, p->chunk);
        }
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = iov;
        mh.msg_iovlen = niov;
        ssize_t n = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            s->writable = 0;
            break;
        }
        if (n < 0)
            return data_lost(t, p, errno, "sending", st->x->bytes);
        /* Account the bytes to the pieces they belong to. */
        size_t left = (size_t)n;
        while (left > 0) {
            size_t off, len;
            piece_range(st->x, st->next, p->chunk, &off, &len);
            size_t rest = TCP_HDR_BYTES + len - st->moved;
            if (left < rest) {
                st->moved += left;
                break;
            }
            left -= rest;
            stream_advance(st, p);
            *moved = 1;
        }
    }
    return CHORUS_SUCCESS;
}

/* ---- receiving ---------------------------------------------------------------------- */

/* The header of piece st->next arrived: is it the piece the receive expects? */
static chorus_result_t check_piece(struct tcp_transport *t, const struct tcp_peer *p,
                                   const struct tcp_stream *st)
{
    const struct xfer *x = st->x;
    struct tcp_hdr h;
    size_t off, len;
    memcpy(&h, st->hdr, sizeof h);
    piece_range(x, st->next, p->chunk, &off, &len);
    const char *who = t->names[p->rank];
    if (h.magic != TCP_HDR_MAGIC || h.type != TCP_MSG_DATA)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "%s: %s sent a corrupt piece header (magic 0x%08x, type %u)", t->label,
                          who, h.magic, h.type);
    if (h.seq == x->seq && h.total != x->bytes)
        return CHORUS_ERR(CHORUS_INVALID_USAGE,
                          "%s: %s sent %llu bytes where this rank posted a %zu-byte receive",
                          t->label, who, (unsigned long long)h.total, x->bytes);
    if (h.seq != x->seq)
        /* An earlier piece of this socket belonged to a message whose size
         * the two sides disagree on, so the piece counts drifted apart. */
        return CHORUS_ERR(CHORUS_INVALID_USAGE,
                          "%s: %s sent a message whose size differs from the %zu-byte receive "
                          "this rank posted (message %llu; the peer's piece belongs to its "
                          "message %llu of %llu bytes)",
                          t->label, who, x->bytes, (unsigned long long)x->seq,
                          (unsigned long long)h.seq, (unsigned long long)h.total);
    if (h.offset != off || h.len != len)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "%s: %s sent a piece at offset %llu of %llu bytes where this rank "
                          "expected offset %zu of %zu bytes (message %llu)",
                          t->label, who, (unsigned long long)h.offset,
                          (unsigned long long)h.len, off, len, (unsigned long long)x->seq);
    return CHORUS_SUCCESS;
}

/* Reads this socket's pieces straight into the posted receives until the
 * kernel has no more or no posted receive owns the next piece. */
static chorus_result_t recv_some(struct tcp_transport *t, struct tcp_sock *s, int *moved)
{
    struct tcp_peer *p = s->peer;
    struct tcp_stream *st = &s->rx;
    while (s->readable && st->x) {
        size_t off, len;
        piece_range(st->x, st->next, p->chunk, &off, &len);
        int in_header = st->moved < TCP_HDR_BYTES;
        ssize_t n;
        if (in_header)
            n = recv(s->fd, st->hdr + st->moved, TCP_HDR_BYTES - st->moved, MSG_DONTWAIT);
        else
            n = recv(s->fd, (char *)st->x->buf + off + (st->moved - TCP_HDR_BYTES),
                     TCP_HDR_BYTES + len - st->moved, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            s->readable = 0;
            break;
        }
        if (n <= 0)
            return data_lost(t, p, n == 0 ? 0 : errno, "receiving", st->x->bytes);
        st->moved += (size_t)n;
        if (in_header && st->moved == TCP_HDR_BYTES) {
            chorus_result_t res = check_piece(t, p, st);
            if (res != CHORUS_SUCCESS)
                return breaks(t, res, p->rank, res);
        }
        if (st->moved == TCP_HDR_BYTES + len) {
            stream_advance(st, p);
            *moved = 1;
        }
    }
    return CHORUS_SUCCESS;
}

/* ---- the ops ---------------------------------------------------------------------- */

static chorus_result_t service(struct tcp_transport *t, struct tcp_sock *s)
{
    int sent = 0, received = 0;
    if (s->writable && s->tx.x)
        CHORUS_CHECK(send_some(t, s, &sent));
    if (s->readable && s->rx.x)
        CHORUS_CHECK(recv_some(t, s, &received));
    if (sent)
        settle(t, s->peer, 1);
    if (received)
        settle(t, s->peer, 0);
    return CHORUS_SUCCESS;
}

static chorus_result_t run_ready(struct tcp_transport *t)
{
    struct tcp_sock *s;
    while ((s = t->ready)) {
        t->ready = s->ready_next;
        s->on_ready = 0;
        CHORUS_CHECK(service(t, s));
    }
    return CHORUS_SUCCESS;
}

static chorus_result_t handle_event(struct tcp_transport *t, const struct epoll_event *ev)
{
    struct tcp_sock *s = (struct tcp_sock *)ev->data.ptr;
    if (s->index == 0)
        return read_control(t, s->peer);
    /* Hang-ups and errors count as readiness: the next call reports them,
     * if a transfer needs that socket at all. */
    if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s->readable = 1;
    if (ev->events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        s->writable = 1;
    make_ready(t, s);
    return CHORUS_SUCCESS;
}

static chorus_result_t tcp_progress(struct transport *base, int wait_ms)
{
    struct tcp_transport *t = tcp_of(base);
    if (t->broken)
        return still_broken(t);
    t->completed = 0;
    int64_t end = chorus_now_ns() + (int64_t)(wait_ms > 0 ? wait_ms : 0) * 1000000;
    for (int polled = 0;; polled = 1) {
        CHORUS_CHECK(run_ready(t));
        if (t->completed)
            return CHORUS_SUCCESS;
        int64_t left_ms = (end - chorus_now_ns()) / 1000000;
        if (polled && left_ms <= 0)
            return CHORUS_SUCCESS;
        struct epoll_event ev[EPOLL_BATCH];
        int n = epoll_wait(t->epfd, ev, EPOLL_BATCH, left_ms > 0 ? (int)left_ms : 0);
        if (n < 0 && errno != EINTR)
            return breaks(t,
                          CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: epoll_wait failed: %s",
                                     t->label, strerror(errno)),
                          -1, CHORUS_SYSTEM_ERROR);
        for (int i = 0; i < n; i++)
            CHORUS_CHECK(handle_event(t, &ev[i]));
    }
}

static chorus_result_t tcp_post(struct transport *base, struct xfer *x)
{
    struct tcp_transport *t = tcp_of(base);
    if (t->broken)
        return still_broken(t);
    if (!x)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: NULL transfer", t->label);
    if (x->peer < 0 || x->peer >= t->nranks || !t->peers[x->peer])
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: no TCP connection to rank %d",
                          t->label, x->peer);
    if (!x->buf && x->bytes)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: NULL buffer for %zu bytes with %s",
                          t->label, x->bytes, t->names[x->peer]);
    struct tcp_peer *p = t->peers[x->peer];
    if (p->gave_up)
        return breaks(t,
                      CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: %s gave up waiting for this rank "
                                 "(%s) earlier", t->label, t->names[x->peer],
                                 chorus_get_error_string(p->gave_up_code)),
                      x->peer, CHORUS_REMOTE_ERROR);
    struct tcp_queue *q = x->is_send ? &p->sends : &p->recvs;
    x->done = 0;
    x->complete = 0;
    x->next = NULL;
    x->seq = q->next_seq++;
    x->chunks_posted = (size_t)q->next_piece;
    x->chunks_done = 0;
    q->next_piece += tcp_pieces(x->bytes, p->chunk);
    if (q->tail)
        q->tail->next = x;
    else
        q->head = x;
    q->tail = x;
    /* A socket with no posted piece left waits exactly for this one. */
    for (int i = 0; i < p->nsock; i++) {
        struct tcp_sock *s = &p->data[i];
        struct tcp_stream *st = x->is_send ? &s->tx : &s->rx;
        if (!st->x && st->next < q->next_piece) {
            st->x = x;
            make_ready(t, s);
        }
    }
    return CHORUS_SUCCESS;
}

static void tcp_fail(struct transport *base, int blame, chorus_result_t code)
{
    struct tcp_transport *t = tcp_of(base);
    /* Once: the communicator's thread and an aborting thread may both call. */
    if (atomic_exchange(&t->fail_sent, 1))
        return;
    uint8_t msg[TCP_HDR_BYTES];
    put_hdr(msg, TCP_MSG_FAIL, (uint64_t)(int64_t)blame, 0, 0, (uint64_t)code);
    /* Touches nothing but the control sockets' descriptors (read-only here):
     * an aborting thread may call this while the communicator's thread is
     * in progress(), which never writes control connections. */
    for (int q = 0; q < t->nranks; q++) {
        struct tcp_peer *p = t->peers[q];
        if (!p || p->ctrl.fd < 0)
            continue;
        ssize_t n = send(p->ctrl.fd, msg, sizeof msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == (ssize_t)sizeof msg)
            continue;
        LOG_DEBUG("tcp", "%s: could not tell %s of the failure (%s)", t->label, t->names[q],
                  n < 0 ? strerror(errno) : "socket buffer full");
        if (n > 0) /* an EOF rather than a torn message (nothing follows: we send once) */
            shutdown(p->ctrl.fd, SHUT_WR);
    }
}

static const char *tcp_peer_name(struct transport *base, int peer)
{
    struct tcp_transport *t = tcp_of(base);
    if (peer >= 0 && peer < t->nranks)
        return t->names[peer];
    snprintf(t->name_spare, sizeof t->name_spare, "rank %d", peer);
    return t->name_spare;
}

static void close_sock(struct tcp_sock *s)
{
    if (s->fd >= 0)
        shutdown(s->fd, SHUT_WR);
    chorus_socket_close(&s->fd);
}

void tcp_destroy(struct transport *base)
{
    struct tcp_transport *t = tcp_of(base);
    if (!t)
        return;
    for (int q = 0; t->peers && q < t->nranks; q++) {
        struct tcp_peer *p = t->peers[q];
        if (!p)
            continue;
        close_sock(&p->ctrl);
        for (int i = 0; i < p->nsock; i++)
            close_sock(&p->data[i]);
        free(p->data);
        free(p);
    }
    chorus_socket_close(&t->epfd);
    free(t->peers);
    free(t->names);
    free(t);
}

const struct transport_ops tcp_transport_ops = {
    .name = "tcp",
    .post = tcp_post,
    .progress = tcp_progress,
    .fail = tcp_fail,
    .peer_name = tcp_peer_name,
    .destroy = tcp_destroy,
};
