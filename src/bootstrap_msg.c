/* bootstrap_msg.c - encode/validate/decode the bootstrap messages and the
 * unique id (see bootstrap_msg.h). Pure functions: no I/O, no allocation. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "bootstrap_msg.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "byteorder.h"
#include "error.h"

/* ---- SipHash-2-4 ------------------------------------------------------------
 * Hand-written from the published algorithm because Chorus depends on no
 * crypto library. SipHash is a small keyed PRF designed for short inputs; it
 * is used here as a MAC so a rank proves it knows the unique id's secret
 * without sending it (a foreign or stale client cannot join), and as the
 * checksum of the unique id. It does not protect the rest of the stream
 * against an attacker on the path: the bootstrap is not encrypted. */

static uint64_t rotl64(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#define SIPROUND(v0, v1, v2, v3) \
    do {                         \
        v0 += v1;                \
        v1 = rotl64(v1, 13);     \
        v1 ^= v0;                \
        v0 = rotl64(v0, 32);     \
        v2 += v3;                \
        v3 = rotl64(v3, 16);     \
        v3 ^= v2;                \
        v0 += v3;                \
        v3 = rotl64(v3, 21);     \
        v3 ^= v0;                \
        v2 += v1;                \
        v1 = rotl64(v1, 17);     \
        v1 ^= v2;                \
        v2 = rotl64(v2, 32);     \
    } while (0)

uint64_t chorus_siphash24(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *in = (const uint8_t *)data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

#define MAC_LABEL "chorus-bootstrap"

void chorus_bsmsg_mac(const uint8_t secret[16], char domain, const uint8_t nonce[16],
                      uint8_t mac[8])
{
    uint8_t msg[sizeof MAC_LABEL - 1 + 1 + CHORUS_BSMSG_NONCE_BYTES];
    memcpy(msg, MAC_LABEL, sizeof MAC_LABEL - 1);
    msg[sizeof MAC_LABEL - 1] = (uint8_t)domain;
    memcpy(msg + sizeof MAC_LABEL, nonce, CHORUS_BSMSG_NONCE_BYTES);
    put64(mac, chorus_siphash24(secret, msg, sizeof msg));
}

int chorus_bsmsg_mac_equal(const uint8_t a[8], const uint8_t b[8])
{
    uint8_t diff = 0;
    for (unsigned i = 0; i < CHORUS_BSMSG_MAC_BYTES; i++)
        diff |= (uint8_t)(a[i] ^ b[i]);
    return diff == 0;
}

void chorus_bsmsg_secret_from_string(const char *text, uint8_t secret[16])
{
    /* Two fixed, distinct keys give two independent 64-bit halves. */
    static const uint8_t k1[16] = "chorus-secret-k1";
    static const uint8_t k2[16] = "chorus-secret-k2";
    if (!text) {
        memset(secret, 0, CHORUS_BSMSG_SECRET_BYTES);
        return;
    }
    size_t n = strlen(text);
    put64(secret, chorus_siphash24(k1, text, n));
    put64(secret + 8, chorus_siphash24(k2, text, n));
}

/* ---- header ---------------------------------------------------------------- */

const char *chorus_bsmsg_type_name(unsigned type)
{
    static const char *const names[CHORUS_BSMSG_NUM_TYPES] = {
        [CHORUS_BSMSG_HELLO] = "HELLO", [CHORUS_BSMSG_PROOF] = "PROOF",
        [CHORUS_BSMSG_AUTH_OK] = "AUTH_OK", [CHORUS_BSMSG_JOIN] = "JOIN",
        [CHORUS_BSMSG_TABLE] = "TABLE", [CHORUS_BSMSG_ERROR] = "ERROR",
        [CHORUS_BSMSG_PEER] = "PEER", [CHORUS_BSMSG_COLL] = "COLL",
    };
    if (type == 0 || type >= CHORUS_BSMSG_NUM_TYPES)
        return "unknown";
    return names[type];
}

/* Fixed payload size of a type, 0 for the variable ones. */
static uint32_t fixed_payload(unsigned type)
{
    switch (type) {
    case CHORUS_BSMSG_HELLO: return CHORUS_BSMSG_NONCE_BYTES;
    case CHORUS_BSMSG_PROOF: return CHORUS_BSMSG_MAC_BYTES + CHORUS_BSMSG_NONCE_BYTES;
    case CHORUS_BSMSG_AUTH_OK: return CHORUS_BSMSG_MAC_BYTES;
    case CHORUS_BSMSG_JOIN: return 8 + CHORUS_BSMSG_ADDR_BYTES;
    case CHORUS_BSMSG_PEER: return 8;
    case CHORUS_BSMSG_COLL: return 16;
    default: return 0;
    }
}

size_t chorus_bsmsg_table_bytes(uint32_t nranks)
{
    if (nranks == 0 || nranks > CHORUS_BSMSG_MAX_NRANKS)
        return 0;
    return CHORUS_BSMSG_HEADER_BYTES + 4 + (size_t)nranks * CHORUS_BSMSG_ADDR_BYTES;
}

chorus_result_t chorus_bsmsg_decode_header(const void *buf, size_t len, uint32_t nranks,
                                           struct chorus_bsmsg_header *h)
{
    const uint8_t *p = (const uint8_t *)buf;
    if (!h)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL header");
    memset(h, 0, sizeof *h);
    if (!p || len < CHORUS_BSMSG_HEADER_BYTES)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "bootstrap message truncated: %zu bytes, the header alone is %u", len,
                          CHORUS_BSMSG_HEADER_BYTES);
    uint32_t magic = get32(p);
    uint16_t version = get16(p + 4);
    uint16_t type = get16(p + 6);
    uint32_t length = get32(p + 8);
    if (magic != CHORUS_BSMSG_MAGIC)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "not a Chorus bootstrap message (magic 0x%08x, expected 0x%08x): a "
                          "foreign client?",
                          magic, CHORUS_BSMSG_MAGIC);
    if (version != CHORUS_BSMSG_VERSION)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "bootstrap protocol version %u, this library speaks %u (mixed Chorus "
                          "versions?)",
                          (unsigned)version, CHORUS_BSMSG_VERSION);
    if (type == 0 || type >= CHORUS_BSMSG_NUM_TYPES)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR, "unknown bootstrap message type %u",
                          (unsigned)type);
    uint32_t fixed = fixed_payload(type);
    if (fixed && length != fixed)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "bootstrap %s message with payload length %u, expected %u",
                          chorus_bsmsg_type_name(type), length, fixed);
    if (type == CHORUS_BSMSG_ERROR && (length < 6 || length > 6 + CHORUS_BSMSG_MAX_TEXT))
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "bootstrap ERROR message with payload length %u (allowed 6..%u)",
                          length, 6 + CHORUS_BSMSG_MAX_TEXT);
    if (type == CHORUS_BSMSG_TABLE) {
        uint64_t max = 4 + (uint64_t)CHORUS_BSMSG_MAX_NRANKS * CHORUS_BSMSG_ADDR_BYTES;
        if (length < 4 + CHORUS_BSMSG_ADDR_BYTES || length > max ||
            (length - 4) % CHORUS_BSMSG_ADDR_BYTES != 0)
            return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                              "bootstrap TABLE message with payload length %u (must be 4 + a "
                              "multiple of %u, at most %llu)",
                              length, CHORUS_BSMSG_ADDR_BYTES, (unsigned long long)max);
        if (nranks && (nranks > CHORUS_BSMSG_MAX_NRANKS ||
                       length != 4 + (uint64_t)nranks * CHORUS_BSMSG_ADDR_BYTES))
            return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                              "bootstrap TABLE message holds %u addresses, expected %u",
                              (length - 4) / CHORUS_BSMSG_ADDR_BYTES, nranks);
    }
    h->magic = magic;
    h->version = version;
    h->type = type;
    h->length = length;
    return CHORUS_SUCCESS;
}

static chorus_result_t put_header(uint8_t *p, size_t cap, unsigned type, size_t payload,
                                  size_t *len)
{
    if (!p || !len)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL buffer or length");
    if (payload > UINT32_MAX || cap < CHORUS_BSMSG_HEADER_BYTES + payload)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT,
                          "buffer of %zu bytes too small for a %s message of %zu bytes", cap,
                          chorus_bsmsg_type_name(type), CHORUS_BSMSG_HEADER_BYTES + payload);
    put32(p, CHORUS_BSMSG_MAGIC);
    put16(p + 4, (uint16_t)CHORUS_BSMSG_VERSION);
    put16(p + 6, (uint16_t)type);
    put32(p + 8, (uint32_t)payload);
    *len = CHORUS_BSMSG_HEADER_BYTES + payload;
    return CHORUS_SUCCESS;
}

/* Validates a whole message of the expected type; returns the payload. */
static chorus_result_t expect(const void *buf, size_t len, unsigned type, uint32_t nranks,
                              const uint8_t **payload, uint32_t *plen)
{
    struct chorus_bsmsg_header h;
    CHORUS_CHECK(chorus_bsmsg_decode_header(buf, len, nranks, &h));
    if (h.type != type)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR, "expected a bootstrap %s message, got %s",
                          chorus_bsmsg_type_name(type), chorus_bsmsg_type_name(h.type));
    if ((uint64_t)len - CHORUS_BSMSG_HEADER_BYTES != h.length)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "bootstrap %s message %s: header says %u payload bytes, %zu present",
                          chorus_bsmsg_type_name(type),
                          len - CHORUS_BSMSG_HEADER_BYTES < h.length ? "truncated"
                                                                     : "has trailing bytes",
                          h.length, len - CHORUS_BSMSG_HEADER_BYTES);
    *payload = (const uint8_t *)buf + CHORUS_BSMSG_HEADER_BYTES;
    *plen = h.length;
    return CHORUS_SUCCESS;
}

/* ---- addresses ------------------------------------------------------------- */

#define WIRE_INET 1
#define WIRE_INET6 2

static chorus_result_t addr_encode(uint8_t *p, const struct chorus_sockaddr *a, const char *what)
{
    memset(p, 0, CHORUS_BSMSG_ADDR_BYTES);
    if (!a)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: NULL address", what);
    if (a->u.sa.sa_family == AF_INET && a->len == sizeof(struct sockaddr_in)) {
        put16(p, WIRE_INET);
        put16(p + 2, ntohs(a->u.in4.sin_port));
        memcpy(p + 8, &a->u.in4.sin_addr, 4);
    } else if (a->u.sa.sa_family == AF_INET6 && a->len == sizeof(struct sockaddr_in6)) {
        put16(p, WIRE_INET6);
        put16(p + 2, ntohs(a->u.in6.sin6_port));
        put32(p + 4, a->u.in6.sin6_scope_id);
        memcpy(p + 8, &a->u.in6.sin6_addr, 16);
    } else {
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: address family %d is neither IPv4 nor IPv6",
                          what, (int)a->u.sa.sa_family);
    }
    if (get16(p + 2) == 0)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: address has port 0", what);
    return CHORUS_SUCCESS;
}

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

/* Validates a wire address; code is the result for garbage. */
static chorus_result_t addr_decode(const uint8_t *p, struct chorus_sockaddr *a,
                                   chorus_result_t code, const char *what)
{
    uint16_t fam = get16(p), port = get16(p + 2);
    uint32_t scope = get32(p + 4);
    const uint8_t *ip = p + 8;
    memset(a, 0, sizeof *a);
    if (fam == WIRE_INET) {
        if (scope != 0 || !all_zero(ip + 4, 12))
            return CHORUS_ERR(code, "%s: IPv4 address with nonzero padding", what);
        if (all_zero(ip, 4) || ip[0] >= 224)
            return CHORUS_ERR(code, "%s: IPv4 address %u.%u.%u.%u cannot be connected to", what,
                              ip[0], ip[1], ip[2], ip[3]);
        a->u.in4.sin_family = AF_INET;
        a->u.in4.sin_port = htons(port);
        memcpy(&a->u.in4.sin_addr, ip, 4);
        a->len = sizeof(struct sockaddr_in);
    } else if (fam == WIRE_INET6) {
        if (all_zero(ip, 16) || ip[0] == 0xff)
            return CHORUS_ERR(code, "%s: IPv6 address is unspecified or multicast", what);
        a->u.in6.sin6_family = AF_INET6;
        a->u.in6.sin6_port = htons(port);
        a->u.in6.sin6_scope_id = scope;
        memcpy(&a->u.in6.sin6_addr, ip, 16);
        a->len = sizeof(struct sockaddr_in6);
    } else {
        return CHORUS_ERR(code, "%s: unknown address family %u", what, (unsigned)fam);
    }
    if (port == 0) {
        memset(a, 0, sizeof *a);
        return CHORUS_ERR(code, "%s: address has port 0", what);
    }
    return CHORUS_SUCCESS;
}

static chorus_result_t check_rank(uint32_t rank, uint32_t nranks, chorus_result_t code,
                                  const char *what)
{
    if (nranks == 0 || nranks > CHORUS_BSMSG_MAX_NRANKS)
        return CHORUS_ERR(code, "%s: nranks %u is out of range 1..%u", what, nranks,
                          CHORUS_BSMSG_MAX_NRANKS);
    if (rank >= nranks)
        return CHORUS_ERR(code, "%s: rank %u is out of range 0..%u", what, rank, nranks - 1);
    return CHORUS_SUCCESS;
}

/* ---- encoders -------------------------------------------------------------- */

chorus_result_t chorus_bsmsg_encode_hello(void *buf, size_t cap, const uint8_t nonce[16],
                                          size_t *len)
{
    uint8_t *p = (uint8_t *)buf;
    if (!nonce)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL nonce");
    CHORUS_CHECK(put_header(p, cap, CHORUS_BSMSG_HELLO, CHORUS_BSMSG_NONCE_BYTES, len));
    memcpy(p + CHORUS_BSMSG_HEADER_BYTES, nonce, CHORUS_BSMSG_NONCE_BYTES);
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_encode_proof(void *buf, size_t cap, const uint8_t mac[8],
                                          const uint8_t nonce[16], size_t *len)
{
    uint8_t *p = (uint8_t *)buf;
    if (!mac || !nonce)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL mac or nonce");
    CHORUS_CHECK(put_header(p, cap, CHORUS_BSMSG_PROOF,
                            CHORUS_BSMSG_MAC_BYTES + CHORUS_BSMSG_NONCE_BYTES, len));
    memcpy(p + CHORUS_BSMSG_HEADER_BYTES, mac, CHORUS_BSMSG_MAC_BYTES);
    memcpy(p + CHORUS_BSMSG_HEADER_BYTES + CHORUS_BSMSG_MAC_BYTES, nonce,
           CHORUS_BSMSG_NONCE_BYTES);
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_encode_auth_ok(void *buf, size_t cap, const uint8_t mac[8],
                                            size_t *len)
{
    uint8_t *p = (uint8_t *)buf;
    if (!mac)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL mac");
    CHORUS_CHECK(put_header(p, cap, CHORUS_BSMSG_AUTH_OK, CHORUS_BSMSG_MAC_BYTES, len));
    memcpy(p + CHORUS_BSMSG_HEADER_BYTES, mac, CHORUS_BSMSG_MAC_BYTES);
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_encode_join(void *buf, size_t cap, uint32_t rank, uint32_t nranks,
                                         const struct chorus_sockaddr *addr, size_t *len)
{
    uint8_t *p = (uint8_t *)buf;
    CHORUS_CHECK(check_rank(rank, nranks, CHORUS_INVALID_ARGUMENT, "JOIN"));
    CHORUS_CHECK(put_header(p, cap, CHORUS_BSMSG_JOIN, 8 + CHORUS_BSMSG_ADDR_BYTES, len));
    put32(p + 12, rank);
    put32(p + 16, nranks);
    return addr_encode(p + 20, addr, "JOIN");
}

chorus_result_t chorus_bsmsg_encode_table(void *buf, size_t cap, uint32_t nranks,
                                          const struct chorus_sockaddr *addrs, size_t *len)
{
    uint8_t *p = (uint8_t *)buf;
    size_t total = chorus_bsmsg_table_bytes(nranks);
    if (total == 0)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "TABLE: nranks %u is out of range 1..%u",
                          nranks, CHORUS_BSMSG_MAX_NRANKS);
    if (!addrs)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "TABLE: NULL addresses");
    CHORUS_CHECK(put_header(p, cap, CHORUS_BSMSG_TABLE, total - CHORUS_BSMSG_HEADER_BYTES, len));
    put32(p + 12, nranks);
    for (uint32_t r = 0; r < nranks; r++)
        CHORUS_CHECK(addr_encode(p + 16 + (size_t)r * CHORUS_BSMSG_ADDR_BYTES, &addrs[r],
                                 "TABLE"));
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_encode_error(void *buf, size_t cap, chorus_result_t code,
                                          const char *text, size_t *len)
{
    uint8_t *p = (uint8_t *)buf;
    if (code <= CHORUS_SUCCESS || code >= CHORUS_NUM_RESULTS || code == CHORUS_IN_PROGRESS)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "ERROR: %d is not a failure code", (int)code);
    size_t n = text ? strlen(text) : 0;
    if (n > CHORUS_BSMSG_MAX_TEXT)
        n = CHORUS_BSMSG_MAX_TEXT;
    CHORUS_CHECK(put_header(p, cap, CHORUS_BSMSG_ERROR, 6 + n, len));
    put32(p + 12, (uint32_t)code);
    put16(p + 16, (uint16_t)n);
    if (n)
        memcpy(p + 18, text, n);
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_encode_peer(void *buf, size_t cap, uint32_t rank, uint32_t nranks,
                                         size_t *len)
{
    uint8_t *p = (uint8_t *)buf;
    CHORUS_CHECK(check_rank(rank, nranks, CHORUS_INVALID_ARGUMENT, "PEER"));
    CHORUS_CHECK(put_header(p, cap, CHORUS_BSMSG_PEER, 8, len));
    put32(p + 12, rank);
    put32(p + 16, nranks);
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_encode_coll(void *buf, size_t cap, uint64_t seq, uint64_t size,
                                         size_t *len)
{
    uint8_t *p = (uint8_t *)buf;
    CHORUS_CHECK(put_header(p, cap, CHORUS_BSMSG_COLL, 16, len));
    put64(p + 12, seq);
    put64(p + 20, size);
    return CHORUS_SUCCESS;
}

/* ---- decoders -------------------------------------------------------------- */

chorus_result_t chorus_bsmsg_decode_hello(const void *buf, size_t len, uint8_t nonce[16])
{
    const uint8_t *pl;
    uint32_t n;
    if (!nonce)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL output");
    CHORUS_CHECK(expect(buf, len, CHORUS_BSMSG_HELLO, 0, &pl, &n));
    memcpy(nonce, pl, CHORUS_BSMSG_NONCE_BYTES);
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_decode_proof(const void *buf, size_t len, uint8_t mac[8],
                                          uint8_t nonce[16])
{
    const uint8_t *pl;
    uint32_t n;
    if (!mac || !nonce)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL output");
    CHORUS_CHECK(expect(buf, len, CHORUS_BSMSG_PROOF, 0, &pl, &n));
    memcpy(mac, pl, CHORUS_BSMSG_MAC_BYTES);
    memcpy(nonce, pl + CHORUS_BSMSG_MAC_BYTES, CHORUS_BSMSG_NONCE_BYTES);
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_decode_auth_ok(const void *buf, size_t len, uint8_t mac[8])
{
    const uint8_t *pl;
    uint32_t n;
    if (!mac)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL output");
    CHORUS_CHECK(expect(buf, len, CHORUS_BSMSG_AUTH_OK, 0, &pl, &n));
    memcpy(mac, pl, CHORUS_BSMSG_MAC_BYTES);
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_decode_join(const void *buf, size_t len, uint32_t *rank,
                                         uint32_t *nranks, struct chorus_sockaddr *addr)
{
    const uint8_t *pl;
    uint32_t n;
    if (!rank || !nranks || !addr)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL output");
    CHORUS_CHECK(expect(buf, len, CHORUS_BSMSG_JOIN, 0, &pl, &n));
    uint32_t r = get32(pl), nr = get32(pl + 4);
    CHORUS_CHECK(check_rank(r, nr, CHORUS_REMOTE_ERROR, "JOIN"));
    CHORUS_CHECK(addr_decode(pl + 8, addr, CHORUS_REMOTE_ERROR, "JOIN"));
    *rank = r;
    *nranks = nr;
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_decode_table(const void *buf, size_t len, uint32_t nranks,
                                          struct chorus_sockaddr *addrs)
{
    const uint8_t *pl;
    uint32_t n;
    if (!addrs)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL output");
    if (nranks == 0 || nranks > CHORUS_BSMSG_MAX_NRANKS)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "TABLE: expected nranks %u is out of range",
                          nranks);
    CHORUS_CHECK(expect(buf, len, CHORUS_BSMSG_TABLE, nranks, &pl, &n));
    if (get32(pl) != nranks)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR, "TABLE: says nranks %u, expected %u", get32(pl),
                          nranks);
    for (uint32_t r = 0; r < nranks; r++) {
        char what[48];
        snprintf(what, sizeof what, "TABLE entry of rank %u", r);
        CHORUS_CHECK(addr_decode(pl + 4 + (size_t)r * CHORUS_BSMSG_ADDR_BYTES, &addrs[r],
                                 CHORUS_REMOTE_ERROR, what));
    }
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_decode_error(const void *buf, size_t len, chorus_result_t *code,
                                          char *text, size_t text_cap)
{
    const uint8_t *pl;
    uint32_t n;
    if (!code || !text || text_cap == 0)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL output");
    text[0] = '\0';
    CHORUS_CHECK(expect(buf, len, CHORUS_BSMSG_ERROR, 0, &pl, &n));
    uint32_t c = get32(pl);
    uint16_t tl = get16(pl + 4);
    if (c == CHORUS_SUCCESS || c >= CHORUS_NUM_RESULTS || c == CHORUS_IN_PROGRESS)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR, "ERROR: %u is not a failure code", c);
    if ((uint32_t)tl + 6 != n)
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "ERROR: text length %u does not match payload length %u", tl, n);
    size_t out = tl < text_cap - 1 ? tl : text_cap - 1;
    for (size_t i = 0; i < out; i++) {
        uint8_t ch = pl[6 + i];
        text[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    text[out] = '\0';
    *code = (chorus_result_t)c;
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_decode_peer(const void *buf, size_t len, uint32_t *rank,
                                         uint32_t *nranks)
{
    const uint8_t *pl;
    uint32_t n;
    if (!rank || !nranks)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL output");
    CHORUS_CHECK(expect(buf, len, CHORUS_BSMSG_PEER, 0, &pl, &n));
    uint32_t r = get32(pl), nr = get32(pl + 4);
    CHORUS_CHECK(check_rank(r, nr, CHORUS_REMOTE_ERROR, "PEER"));
    *rank = r;
    *nranks = nr;
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_decode_coll(const void *buf, size_t len, uint64_t *seq,
                                         uint64_t *size)
{
    const uint8_t *pl;
    uint32_t n;
    if (!seq || !size)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL output");
    CHORUS_CHECK(expect(buf, len, CHORUS_BSMSG_COLL, 0, &pl, &n));
    *seq = get64(pl);
    *size = get64(pl + 8);
    return CHORUS_SUCCESS;
}

/* ---- unique id ------------------------------------------------------------- */

#define ID_SUM_OFFSET (CHORUS_UNIQUE_ID_BYTES - 8)

_Static_assert(CHORUS_UNIQUE_ID_BYTES >= 56, "unique id too small for its layout");

static uint64_t id_checksum(const uint8_t *p)
{
    static const uint8_t key[16] = "chorus-unique-id";
    return chorus_siphash24(key, p, ID_SUM_OFFSET);
}

chorus_result_t chorus_bsmsg_encode_id(chorus_unique_id_t *id, const struct chorus_sockaddr *root,
                                       const uint8_t secret[16])
{
    uint8_t addr[CHORUS_BSMSG_ADDR_BYTES];
    if (!id || !secret)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL unique id or secret");
    CHORUS_CHECK(addr_encode(addr, root, "unique id"));
    uint8_t *p = (uint8_t *)id->internal;
    memset(p, 0, CHORUS_UNIQUE_ID_BYTES);
    put32(p, CHORUS_ID_MAGIC);
    put16(p + 4, (uint16_t)CHORUS_ID_VERSION);
    memcpy(p + 6, addr, 4); /* family, port */
    /* p[10..11] stay zero */
    memcpy(p + 12, addr + 4, 4 + 16); /* scope id, address */
    memcpy(p + 32, secret, CHORUS_BSMSG_SECRET_BYTES);
    put64(p + ID_SUM_OFFSET, id_checksum(p));
    return CHORUS_SUCCESS;
}

chorus_result_t chorus_bsmsg_decode_id(const chorus_unique_id_t *id, struct chorus_sockaddr *root,
                                       uint8_t secret[16])
{
    if (!id || !root || !secret)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL unique id or output");
    const uint8_t *p = (const uint8_t *)id->internal;
    uint32_t magic = get32(p);
    if (magic != CHORUS_ID_MAGIC)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT,
                          "not a Chorus unique id (magic 0x%08x, expected 0x%08x): was it made "
                          "by chorus_get_unique_id and copied byte for byte?",
                          magic, CHORUS_ID_MAGIC);
    if (get16(p + 4) != CHORUS_ID_VERSION)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT,
                          "unique id version %u, this library reads %u (mixed Chorus versions?)",
                          (unsigned)get16(p + 4), CHORUS_ID_VERSION);
    if (get64(p + ID_SUM_OFFSET) != id_checksum(p))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT,
                          "unique id is corrupted (checksum mismatch): it must be copied byte "
                          "for byte to every rank");
    if (get16(p + 10) != 0 || !all_zero(p + 48, ID_SUM_OFFSET - 48))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "unique id has nonzero reserved bytes");
    uint8_t addr[CHORUS_BSMSG_ADDR_BYTES];
    memcpy(addr, p + 6, 4);
    memcpy(addr + 4, p + 12, 20);
    CHORUS_CHECK(addr_decode(addr, root, CHORUS_INVALID_ARGUMENT, "unique id"));
    memcpy(secret, p + 32, CHORUS_BSMSG_SECRET_BYTES);
    return CHORUS_SUCCESS;
}
