/* bootstrap_auth.c - proving knowledge of the unique id's secret.
 *
 * Every bootstrap connection, to the root or to a ring neighbour, starts
 * with the same challenge-response (HELLO nonce -> PROOF -> AUTH_OK, see
 * bootstrap_msg.h), so that a stale id, another communicator's rank or a
 * port scanner is told apart from a real peer before it can join. The
 * steps are kept here, apart from the connection plumbing and from the
 * loops that drive them, so the protocol can be read in one place; the
 * MAC itself (SipHash) is in bootstrap_msg.c.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "bootstrap_impl.h"
#include "error.h"

/* Queues HELLO with a fresh nonce: the first step of the acceptor's side. */
chorus_result_t pconn_send_hello(struct pconn *c)
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
chorus_result_t pconn_check_proof(struct pconn *c, const uint8_t *msg, size_t len,
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
chorus_result_t pconn_answer_hello(struct pconn *c, const uint8_t *msg, size_t len,
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
chorus_result_t bootstrap_check_auth_ok(const uint8_t *msg, size_t len, const uint8_t nonce[16],
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
