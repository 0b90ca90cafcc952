/* bootstrap_impl.h - private to the bootstrap (bootstrap*.c): what its
 * pieces share.
 *
 * The bootstrap is split by who runs the code:
 *   bootstrap_conn.c  a nonblocking message connection (struct pconn) that
 *                     the root and a rank's ring setup both poll;
 *   bootstrap_auth.c  the secret challenge-response on such a connection;
 *   bootstrap_root.c  the root: its thread (accept, handshake, address
 *                     table) and the two ways to start it;
 *   bootstrap.c       a rank joining (the root, then its ring neighbours)
 *                     and leaving;
 *   bootstrap_coll.c  the collectives over the finished ring.
 * None of the names below is exported from the shared library (the export
 * regex is ^chorus_[a-z]): they stay as internal as the static functions
 * they were before the split.
 */
#ifndef CHORUS_BOOTSTRAP_IMPL_H
#define CHORUS_BOOTSTRAP_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "bootstrap.h"
#include "bootstrap_msg.h"
#include "socket.h"

/* The log subsystem of every bootstrap file. */
#define SUBSYS "bootstrap"
/* Bound on one unauthenticated connection's handshake. */
#define HANDSHAKE_MS 10000

struct chorus_bootstrap {
    int rank, nranks;
    int next_fd, prev_fd;
    int timeout_ms;
    uint64_t seq;
    int broken; /* a failure left a stream in an unknown state */
    char next_name[CHORUS_SOCKADDR_STRLEN + 24];
    char prev_name[CHORUS_SOCKADDR_STRLEN + 24];
};

/* CHORUS_INIT_TIMEOUT_MS clamped to an int: the root's lifetime and a rank's
 * default bound on init (bootstrap.c). */
int bootstrap_init_timeout_default(void);

/* ---- a nonblocking message connection (bootstrap_conn.c) ----------------------
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

struct pconn *pconn_new(int fd, const struct chorus_sockaddr *peer, int state, int64_t deadline);
void pconn_free(struct pconn *c);
/* Whether queued bytes wait to be sent. */
int pconn_pending(const struct pconn *c);
chorus_result_t pconn_queue(struct pconn *c, const void *msg, size_t len);
/* Sends what it can without blocking. */
chorus_result_t pconn_flush(struct pconn *c);
/* Reads toward one complete message; *len is its size once complete, else 0.
 * The caller handles the message and then sets in_have = 0. When the peer
 * closed or reset the connection, returns CHORUS_REMOTE_ERROR with c->closed
 * set and logs nothing (port scanners and health checks do that all day):
 * the caller decides whether it matters. */
chorus_result_t pconn_read(struct pconn *c, size_t *len);
/* Queues an ERROR message for c (best effort). */
void pconn_queue_error(struct pconn *c, chorus_result_t code, const char *text);

/* The calling thread's last error text without its "<result>: " prefix and
 * " (in function)" suffix, to quote it inside a wider message. */
const char *bootstrap_inner_error(void);

/* ---- proving the secret (bootstrap_auth.c) --------------------------------------
 * The acceptor of a connection sends HELLO, the connector answers PROOF, the
 * acceptor answers AUTH_OK (see bootstrap_msg.h). */

/* Queues HELLO with a fresh nonce: the first step of the acceptor's side. */
chorus_result_t pconn_send_hello(struct pconn *c);
/* Acceptor side: checks a PROOF message and queues AUTH_OK. Returns
 * CHORUS_INVALID_ARGUMENT (nothing logged) when the proof is wrong. */
chorus_result_t pconn_check_proof(struct pconn *c, const uint8_t *msg, size_t len,
                                  const uint8_t secret[16]);
/* Connector side: answers HELLO with PROOF (and a nonce of ours in c->nonce). */
chorus_result_t pconn_answer_hello(struct pconn *c, const uint8_t *msg, size_t len,
                                   const uint8_t secret[16]);
/* Connector side: checks the acceptor's AUTH_OK. */
chorus_result_t bootstrap_check_auth_ok(const uint8_t *msg, size_t len, const uint8_t nonce[16],
                                        const uint8_t secret[16], const char *peer);

#endif
