/* bootstrap.c - a rank joining a communicator (see bootstrap.h).
 *
 * Each rank:
 *   1. listens on its own ephemeral port (interface by CHORUS_SOCKET_IFNAME);
 *   2. connects to the root, answers its challenge (HELLO nonce -> PROOF),
 *      checks the root's answer to its own nonce (AUTH_OK), sends JOIN
 *      (rank, nranks, listening address) and waits for the TABLE of every
 *      rank's address, or an ERROR (e.g. ranks that never arrived);
 *   3. connects to its successor (rank + 1) % n and accepts its predecessor,
 *      both authenticated the same way (the connector then says PEER rank),
 *      again in one poll() loop so neither side can deadlock and a foreign
 *      client on the listening socket is dropped without breaking init.
 * The root these ranks talk to is in bootstrap_root.c, the connection and
 * handshake pieces both sides share in bootstrap_conn.c and
 * bootstrap_auth.c, and the collectives over the finished ring in
 * bootstrap_coll.c.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "bootstrap.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bootstrap_impl.h"
#include "error.h"
#include "log.h"
#include "tunables.h"

/* Accepted connections still in their handshake while waiting for the
 * predecessor. */
#define MAX_RING_CANDIDATES 64

int bootstrap_init_timeout_default(void)
{
    long v = chorus_tunables()->INIT_TIMEOUT_MS;
    return v > 0x7fffffff ? 0x7fffffff : (int)v;
}

/* ---- joining the root ------------------------------------------------------ */

/* Turns a received ERROR message into this call's failure. */
static chorus_result_t remote_failure(const uint8_t *msg, size_t len, int rank, const char *peer)
{
    chorus_result_t code;
    char text[CHORUS_BSMSG_MAX_TEXT + 1];
    CHORUS_CHECK(chorus_bsmsg_decode_error(msg, len, &code, text, sizeof text));
    return CHORUS_ERR(code, "rank %d: %s reported: %s", rank, peer, text);
}

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
        res = bootstrap_check_auth_ok(msg, len, c.nonce, secret, peer);
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
                             nranks, bootstrap_inner_error());
    }
    if (res == CHORUS_SUCCESS)
        res = chorus_bsmsg_decode_table(msg, len, (uint32_t)nranks, table);
    free(msg);
    chorus_socket_close(&fd);
    return res;
}

/* ---- the ring -------------------------------------------------------------- */

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
                    res = bootstrap_check_auth_ok(out->in, len, out->nonce, secret, bs->next_name);
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
                                     me, bs->next_name, bootstrap_inner_error());
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
                snprintf(whybuf, sizeof whybuf, "%s", bootstrap_inner_error());
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

/* ---- init and teardown ----------------------------------------------------- */

/* How much longer a rank waits for the root than the root waits for ranks. */
#define BOOTSTRAP_RANK_GRACE_MS 2000

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
        timeout_ms = bootstrap_init_timeout_default();
    /* The root gives up at the same bound and then tells every connected
     * rank which ranks never arrived; ranks wait a little longer so that
     * message reaches them instead of each timing out on its own. */
    int64_t deadline = chorus_socket_deadline(timeout_ms + BOOTSTRAP_RANK_GRACE_MS);

    struct chorus_bootstrap *bs = calloc(1, sizeof *bs);
    if (!bs)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    bs->rank = rank;
    bs->nranks = nranks;
    bs->next_fd = bs->prev_fd = -1;
    /* The collectives of init (host ids, transport addresses) wait as long
     * as joining does: a rank may take seconds to open its devices, more on
     * a loaded host, and CHORUS_TIMEOUT_MS (1 s in test_fault's cases) then
     * failed a healthy init. The communicator lowers it to its collective
     * timeout once connected (chorus_bootstrap_set_timeout). */
    bs->timeout_ms = timeout_ms;

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

void chorus_bootstrap_destroy(struct chorus_bootstrap *bs)
{
    if (!bs)
        return;
    chorus_socket_close(&bs->next_fd);
    chorus_socket_close(&bs->prev_fd);
    free(bs);
}
