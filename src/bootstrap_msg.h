/* bootstrap_msg.h - the bootstrap wire format and the unique id layout.
 *
 * Every message is a 12-byte header followed by a payload, all integers in
 * network byte order:
 *     u32 magic "CHBS" | u16 version | u16 type | u32 payload length
 * Payloads (sizes in bytes):
 *     HELLO    nonce[16]                         acceptor -> connector
 *     PROOF    mac[8] nonce[16]                  connector -> acceptor
 *     AUTH_OK  mac[8]                            acceptor -> connector
 *     JOIN     u32 rank, u32 nranks, addr[24]    rank -> root
 *     TABLE    u32 nranks, nranks * addr[24]     root -> rank
 *     ERROR    u32 result, u16 n, text[n<=512]   either way, then close
 *     PEER     u32 rank, u32 nranks              rank -> ring successor
 *     COLL     u64 sequence, u64 size            ring, before each collective
 * addr = u16 family (1 IPv4, 2 IPv6), u16 port, u32 IPv6 scope id,
 *        16 address bytes (IPv4: first 4, the rest zero).
 *
 * Authentication: the acceptor sends a random nonce; the connector answers
 * with MAC(secret, 'C', nonce) and a nonce of its own; the acceptor answers
 * with MAC(secret, 'S', that nonce). MAC is SipHash-2-4 keyed by the 16-byte
 * secret of the unique id; the secret itself never travels.
 *
 * Every decoder validates every field and never reads outside [buf, buf+len):
 * they are meant to be fed arbitrary bytes. Failures on wire data return
 * CHORUS_REMOTE_ERROR (CHORUS_INVALID_ARGUMENT for a bad unique id or a bad
 * argument of an encoder) with a text saying what was wrong.
 */
#ifndef CHORUS_BOOTSTRAP_MSG_H
#define CHORUS_BOOTSTRAP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "chorus.h"
#include "socket.h"

#define CHORUS_BSMSG_MAGIC 0x43484253u /* "CHBS" */
#define CHORUS_BSMSG_VERSION 1u
#define CHORUS_BSMSG_HEADER_BYTES 12u
#define CHORUS_BSMSG_MAX_NRANKS (1u << 20)
#define CHORUS_BSMSG_NONCE_BYTES 16u
#define CHORUS_BSMSG_MAC_BYTES 8u
#define CHORUS_BSMSG_SECRET_BYTES 16u
#define CHORUS_BSMSG_ADDR_BYTES 24u
#define CHORUS_BSMSG_MAX_TEXT 512u
/* The largest message other than TABLE (an ERROR with the longest text). */
#define CHORUS_BSMSG_SMALL_MAX (CHORUS_BSMSG_HEADER_BYTES + 6u + CHORUS_BSMSG_MAX_TEXT)

#define CHORUS_ID_MAGIC 0x43484944u /* "CHID" */
#define CHORUS_ID_VERSION 1u

enum chorus_bsmsg_type {
    CHORUS_BSMSG_HELLO = 1,
    CHORUS_BSMSG_PROOF = 2,
    CHORUS_BSMSG_AUTH_OK = 3,
    CHORUS_BSMSG_JOIN = 4,
    CHORUS_BSMSG_TABLE = 5,
    CHORUS_BSMSG_ERROR = 6,
    CHORUS_BSMSG_PEER = 7,
    CHORUS_BSMSG_COLL = 8,
    CHORUS_BSMSG_NUM_TYPES
};

struct chorus_bsmsg_header {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint32_t length; /* payload bytes after the header */
};

/* "HELLO", ..., or "unknown". */
const char *chorus_bsmsg_type_name(unsigned type);

/* Bytes of a whole TABLE message for nranks (0 if nranks is out of range). */
size_t chorus_bsmsg_table_bytes(uint32_t nranks);

/* Decodes and validates a header from the first len bytes of buf (len >= 12:
 * only the header is read). Checks magic, version, a known type and a payload
 * length allowed for that type; nranks != 0 additionally requires a TABLE to
 * hold exactly nranks addresses. */
chorus_result_t chorus_bsmsg_decode_header(const void *buf, size_t len, uint32_t nranks,
                                           struct chorus_bsmsg_header *h);

/* Encoders write a whole message (header + payload) into buf of cap bytes and
 * store its size in *len. */
chorus_result_t chorus_bsmsg_encode_hello(void *buf, size_t cap, const uint8_t nonce[16],
                                          size_t *len);
chorus_result_t chorus_bsmsg_encode_proof(void *buf, size_t cap, const uint8_t mac[8],
                                          const uint8_t nonce[16], size_t *len);
chorus_result_t chorus_bsmsg_encode_auth_ok(void *buf, size_t cap, const uint8_t mac[8],
                                            size_t *len);
chorus_result_t chorus_bsmsg_encode_join(void *buf, size_t cap, uint32_t rank, uint32_t nranks,
                                         const struct chorus_sockaddr *addr, size_t *len);
chorus_result_t chorus_bsmsg_encode_table(void *buf, size_t cap, uint32_t nranks,
                                          const struct chorus_sockaddr *addrs, size_t *len);
/* text is cut to CHORUS_BSMSG_MAX_TEXT bytes. */
chorus_result_t chorus_bsmsg_encode_error(void *buf, size_t cap, chorus_result_t code,
                                          const char *text, size_t *len);
chorus_result_t chorus_bsmsg_encode_peer(void *buf, size_t cap, uint32_t rank, uint32_t nranks,
                                         size_t *len);
chorus_result_t chorus_bsmsg_encode_coll(void *buf, size_t cap, uint64_t seq, uint64_t size,
                                         size_t *len);

/* Decoders take a whole message: exactly len bytes (header + payload). */
chorus_result_t chorus_bsmsg_decode_hello(const void *buf, size_t len, uint8_t nonce[16]);
chorus_result_t chorus_bsmsg_decode_proof(const void *buf, size_t len, uint8_t mac[8],
                                          uint8_t nonce[16]);
chorus_result_t chorus_bsmsg_decode_auth_ok(const void *buf, size_t len, uint8_t mac[8]);
/* Requires rank < nranks, nranks in 1..CHORUS_BSMSG_MAX_NRANKS, a usable address. */
chorus_result_t chorus_bsmsg_decode_join(const void *buf, size_t len, uint32_t *rank,
                                         uint32_t *nranks, struct chorus_sockaddr *addr);
/* Requires exactly nranks addresses; addrs holds nranks entries. */
chorus_result_t chorus_bsmsg_decode_table(const void *buf, size_t len, uint32_t nranks,
                                          struct chorus_sockaddr *addrs);
/* *code is a failure code (not SUCCESS or IN_PROGRESS); text receives the
 * message, with bytes outside printable ASCII replaced by '?', cut to
 * text_cap - 1 and NUL-terminated. */
chorus_result_t chorus_bsmsg_decode_error(const void *buf, size_t len, chorus_result_t *code,
                                          char *text, size_t text_cap);
chorus_result_t chorus_bsmsg_decode_peer(const void *buf, size_t len, uint32_t *rank,
                                         uint32_t *nranks);
chorus_result_t chorus_bsmsg_decode_coll(const void *buf, size_t len, uint64_t *seq,
                                         uint64_t *size);

/* ---- unique id --------------------------------------------------------------
 * 128 bytes: u32 magic "CHID", u16 version, u16 family, u16 port, u16 zero,
 * u32 scope id, address[16], secret[16], zeros up to byte 120, then a u64
 * SipHash checksum of bytes 0..119 so a corrupted or truncated copy is
 * rejected. */
chorus_result_t chorus_bsmsg_encode_id(chorus_unique_id_t *id, const struct chorus_sockaddr *root,
                                       const uint8_t secret[16]);
chorus_result_t chorus_bsmsg_decode_id(const chorus_unique_id_t *id, struct chorus_sockaddr *root,
                                       uint8_t secret[16]);

/* ---- keyed MAC --------------------------------------------------------------- */

/* SipHash-2-4 (Aumasson & Bernstein): 64-bit keyed PRF of data. */
uint64_t chorus_siphash24(const uint8_t key[16], const void *data, size_t len);

/* mac = SipHash-2-4(secret, "chorus-bootstrap" | domain | nonce), big endian. */
void chorus_bsmsg_mac(const uint8_t secret[16], char domain, const uint8_t nonce[16],
                      uint8_t mac[8]);
/* 1 if equal; compares in constant time. */
int chorus_bsmsg_mac_equal(const uint8_t a[8], const uint8_t b[8]);

/* The secret derived from a user string (NULL: all zero). Both sides of an
 * env-var init derive the same secret from the same string. */
void chorus_bsmsg_secret_from_string(const char *text, uint8_t secret[16]);

#endif
