/* bootstrap_conn.c - the nonblocking message connection of the bootstrap.
 *
 * The root thread and a rank's ring setup both drive many connections from
 * one poll() loop, so neither can block on a slow or hostile peer: a struct
 * pconn queues what is to be sent and assembles one incoming message at a
 * time. It lives apart from both loops because both use it, as does the
 * helper at the end that quotes a failure inside a wider message. The secret
 * handshake on top of a pconn is in bootstrap_auth.c.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bootstrap_impl.h"
#include "error.h"

struct pconn *pconn_new(int fd, const struct chorus_sockaddr *peer, int state, int64_t deadline)
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

void pconn_free(struct pconn *c)
{
    if (c) {
        chorus_socket_close(&c->fd);
        free(c);
    }
}

int pconn_pending(const struct pconn *c)
{
    return c->out_off < c->out_len || c->big_off < c->big_len;
}

chorus_result_t pconn_queue(struct pconn *c, const void *msg, size_t len)
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
chorus_result_t pconn_flush(struct pconn *c)
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
chorus_result_t pconn_read(struct pconn *c, size_t *len)
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
void pconn_queue_error(struct pconn *c, chorus_result_t code, const char *text)
{
    uint8_t msg[CHORUS_BSMSG_SMALL_MAX];
    size_t len;
    if (chorus_bsmsg_encode_error(msg, sizeof msg, code, text, &len) == CHORUS_SUCCESS)
        (void)pconn_queue(c, msg, len);
}

/* The calling thread's last error text without its "<result>: " prefix and
 * " (in function)" suffix, to quote it inside a wider message. */
const char *bootstrap_inner_error(void)
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
