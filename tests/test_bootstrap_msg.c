/* test_bootstrap_msg.c - the bootstrap wire format and unique id, without any
 * network: round trips, every validation, truncation at every length, and
 * random garbage that must be rejected without crashing. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bootstrap_msg.h"
#include "chorus.h"
#include "socket.h"

static int checks, failures;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        checks++;                                                     \
        if (!(cond)) {                                                \
            failures++;                                               \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                             \
            fprintf(stderr, " [last error: %s]\n", chorus_get_last_error()); \
        }                                                             \
    } while (0)

/* The last error mentions word (case-sensitive). */
static int err_has(const char *word) { return strstr(chorus_get_last_error(), word) != NULL; }

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static struct chorus_sockaddr v4(const char *ip, uint16_t port)
{
    struct chorus_sockaddr a;
    memset(&a, 0, sizeof a);
    a.u.in4.sin_family = AF_INET;
    a.u.in4.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.u.in4.sin_addr);
    a.len = sizeof(struct sockaddr_in);
    return a;
}

static struct chorus_sockaddr v6(const char *ip, uint16_t port, uint32_t scope)
{
    struct chorus_sockaddr a;
    memset(&a, 0, sizeof a);
    a.u.in6.sin6_family = AF_INET6;
    a.u.in6.sin6_port = htons(port);
    a.u.in6.sin6_scope_id = scope;
    inet_pton(AF_INET6, ip, &a.u.in6.sin6_addr);
    a.len = sizeof(struct sockaddr_in6);
    return a;
}

static int same_addr(const struct chorus_sockaddr *a, const struct chorus_sockaddr *b)
{
    if (a->len != b->len || a->u.sa.sa_family != b->u.sa.sa_family)
        return 0;
    if (a->u.sa.sa_family == AF_INET)
        return a->u.in4.sin_port == b->u.in4.sin_port &&
               a->u.in4.sin_addr.s_addr == b->u.in4.sin_addr.s_addr;
    return a->u.in6.sin6_port == b->u.in6.sin6_port &&
           a->u.in6.sin6_scope_id == b->u.in6.sin6_scope_id &&
           !memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, 16);
}

/* Runs every decoder on buf; none may crash or read out of bounds (the
 * buffer is a heap copy of exactly len bytes so ASan sees overreads).
 * Returns how many accepted it. */
static int decode_all(const uint8_t *src, size_t len, uint32_t nranks)
{
    uint8_t *buf = malloc(len ? len : 1);
    if (len)
        memcpy(buf, src, len);
    int ok = 0;
    uint8_t nonce[16], mac[8];
    uint32_t r, n;
    uint64_t a, b;
    struct chorus_sockaddr addr, table[8];
    chorus_result_t code;
    char text[64];
    struct chorus_bsmsg_header h;
    ok += chorus_bsmsg_decode_header(buf, len, nranks, &h) == CHORUS_SUCCESS;
    ok += chorus_bsmsg_decode_hello(buf, len, nonce) == CHORUS_SUCCESS;
    ok += chorus_bsmsg_decode_proof(buf, len, mac, nonce) == CHORUS_SUCCESS;
    ok += chorus_bsmsg_decode_auth_ok(buf, len, mac) == CHORUS_SUCCESS;
    ok += chorus_bsmsg_decode_join(buf, len, &r, &n, &addr) == CHORUS_SUCCESS;
    ok += chorus_bsmsg_decode_table(buf, len, nranks ? nranks : 1, table) == CHORUS_SUCCESS;
    ok += chorus_bsmsg_decode_error(buf, len, &code, text, sizeof text) == CHORUS_SUCCESS;
    ok += chorus_bsmsg_decode_peer(buf, len, &r, &n) == CHORUS_SUCCESS;
    ok += chorus_bsmsg_decode_coll(buf, len, &a, &b) == CHORUS_SUCCESS;
    free(buf);
    return ok;
}

/* A valid message must be rejected when cut at every length or extended. */
static void check_truncation(const char *what, const uint8_t *msg, size_t len, uint32_t nranks)
{
    int bad = 0;
    for (size_t cut = 0; cut < len; cut++) {
        /* Only the header decoder may accept a prefix: one that holds a
         * whole header. Every message decoder must refuse it. */
        int ok = decode_all(msg, cut, nranks);
        struct chorus_bsmsg_header h;
        int hdr_ok = chorus_bsmsg_decode_header(msg, cut, nranks, &h) == CHORUS_SUCCESS;
        if (ok - hdr_ok != 0)
            bad++;
    }
    CHECK(bad == 0, "%s: %d truncated prefixes were accepted", what, bad);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, msg, len);
    longer[len] = 0;
    int ok = decode_all(longer, len + 1, nranks);
    struct chorus_bsmsg_header h;
    int hdr_ok = chorus_bsmsg_decode_header(longer, len + 1, nranks, &h) == CHORUS_SUCCESS;
    CHECK(ok - hdr_ok == 0, "%s: a trailing byte was accepted", what);
    free(longer);
}

static void test_siphash(void)
{
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    /* Reference vectors of SipHash-2-4 (key 00..0f, message 00..len-1). */
    CHECK(chorus_siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ULL, "siphash of empty");
    CHECK(chorus_siphash24(key, msg, 1) == 0x74f839c593dc67fdULL, "siphash of 1 byte");
    CHECK(chorus_siphash24(key, msg, 8) == 0x93f5f5799a932462ULL, "siphash of 8 bytes");
    CHECK(chorus_siphash24(key, msg, 15) == 0xa129ca6149be45e5ULL, "siphash of 15 bytes");
    CHECK(chorus_siphash24(key, msg, 63) == 0x958a324ceb064572ULL, "siphash of 63 bytes");

    uint8_t secret[16], other[16], nonce[16], m1[8], m2[8], m3[8];
    chorus_bsmsg_secret_from_string("hello", secret);
    chorus_bsmsg_secret_from_string("hello", other);
    CHECK(!memcmp(secret, other, 16), "secret derivation is deterministic");
    chorus_bsmsg_secret_from_string("hellp", other);
    CHECK(memcmp(secret, other, 16) != 0, "different strings give different secrets");
    chorus_bsmsg_secret_from_string(NULL, other);
    static const uint8_t zero[16];
    CHECK(!memcmp(other, zero, 16), "NULL string gives the zero secret");
    chorus_bsmsg_secret_from_string("", other);
    CHECK(memcmp(other, zero, 16) != 0, "empty string is not the zero secret");

    memset(nonce, 7, sizeof nonce);
    chorus_bsmsg_mac(secret, 'C', nonce, m1);
    chorus_bsmsg_mac(secret, 'C', nonce, m2);
    CHECK(chorus_bsmsg_mac_equal(m1, m2), "mac is deterministic");
    chorus_bsmsg_mac(secret, 'S', nonce, m3);
    CHECK(!chorus_bsmsg_mac_equal(m1, m3), "mac domains differ");
    chorus_bsmsg_mac(zero, 'C', nonce, m3);
    CHECK(!chorus_bsmsg_mac_equal(m1, m3), "mac depends on the secret");
    nonce[15] ^= 1;
    chorus_bsmsg_mac(secret, 'C', nonce, m3);
    CHECK(!chorus_bsmsg_mac_equal(m1, m3), "mac depends on the nonce");
    for (int i = 0; i < 8; i++) {
        memcpy(m3, m1, 8);
        m3[i] ^= 0x80;
        CHECK(!chorus_bsmsg_mac_equal(m1, m3), "mac_equal sees byte %d", i);
    }
}

static void test_round_trips(void)
{
    uint8_t buf[4096], nonce[16], nonce2[16], mac[8], mac2[8];
    size_t len;
    for (int i = 0; i < 16; i++)
        nonce[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < 8; i++)
        mac[i] = (uint8_t)(0x10 + i);

    CHECK(chorus_bsmsg_encode_hello(buf, sizeof buf, nonce, &len) == CHORUS_SUCCESS &&
              len == 28,
          "encode HELLO");
    CHECK(chorus_bsmsg_decode_hello(buf, len, nonce2) == CHORUS_SUCCESS &&
              !memcmp(nonce, nonce2, 16),
          "HELLO round trip");
    check_truncation("HELLO", buf, len, 0);
    CHECK(chorus_bsmsg_encode_hello(buf, 27, nonce, &len) == CHORUS_INVALID_ARGUMENT,
          "encode HELLO into a short buffer");

    CHECK(chorus_bsmsg_encode_proof(buf, sizeof buf, mac, nonce, &len) == CHORUS_SUCCESS &&
              len == 36,
          "encode PROOF");
    memset(mac2, 0, 8);
    memset(nonce2, 0, 16);
    CHECK(chorus_bsmsg_decode_proof(buf, len, mac2, nonce2) == CHORUS_SUCCESS &&
              !memcmp(mac, mac2, 8) && !memcmp(nonce, nonce2, 16),
          "PROOF round trip");
    check_truncation("PROOF", buf, len, 0);
    CHECK(chorus_bsmsg_decode_hello(buf, len, nonce2) == CHORUS_REMOTE_ERROR &&
              err_has("expected a bootstrap HELLO"),
          "PROOF is not a HELLO");

    CHECK(chorus_bsmsg_encode_auth_ok(buf, sizeof buf, mac, &len) == CHORUS_SUCCESS && len == 20,
          "encode AUTH_OK");
    memset(mac2, 0, 8);
    CHECK(chorus_bsmsg_decode_auth_ok(buf, len, mac2) == CHORUS_SUCCESS && !memcmp(mac, mac2, 8),
          "AUTH_OK round trip");
    check_truncation("AUTH_OK", buf, len, 0);

    struct chorus_sockaddr addrs[4] = {v4("10.1.2.3", 4242), v6("fd00::7", 65535, 0),
                                       v6("fe80::1", 1, 3), v4("127.0.0.1", 1)};
    for (int i = 0; i < 4; i++) {
        uint32_t r, n;
        struct chorus_sockaddr got;
        CHECK(chorus_bsmsg_encode_join(buf, sizeof buf, (uint32_t)i, 5, &addrs[i], &len) ==
                      CHORUS_SUCCESS &&
                  len == 44,
              "encode JOIN %d", i);
        CHECK(chorus_bsmsg_decode_join(buf, len, &r, &n, &got) == CHORUS_SUCCESS &&
                  r == (uint32_t)i && n == 5 && same_addr(&got, &addrs[i]),
              "JOIN round trip %d", i);
        check_truncation("JOIN", buf, len, 0);
    }
    uint32_t r, n;
    CHECK(chorus_bsmsg_encode_join(buf, sizeof buf, CHORUS_BSMSG_MAX_NRANKS - 1,
                                   CHORUS_BSMSG_MAX_NRANKS, &addrs[0], &len) == CHORUS_SUCCESS,
          "JOIN at the largest nranks");
    struct chorus_sockaddr got;
    CHECK(chorus_bsmsg_decode_join(buf, len, &r, &n, &got) == CHORUS_SUCCESS &&
              r == CHORUS_BSMSG_MAX_NRANKS - 1 && n == CHORUS_BSMSG_MAX_NRANKS,
          "JOIN at the largest nranks decodes");

    struct chorus_sockaddr table[4];
    CHECK(chorus_bsmsg_encode_table(buf, sizeof buf, 4, addrs, &len) == CHORUS_SUCCESS &&
              len == chorus_bsmsg_table_bytes(4) && len == 12 + 4 + 4 * 24,
          "encode TABLE");
    memset(table, 0, sizeof table);
    int same = 1;
    CHECK(chorus_bsmsg_decode_table(buf, len, 4, table) == CHORUS_SUCCESS, "TABLE decodes");
    for (int i = 0; i < 4; i++)
        same &= same_addr(&table[i], &addrs[i]);
    CHECK(same, "TABLE round trip");
    check_truncation("TABLE", buf, len, 4);
    CHECK(chorus_bsmsg_decode_table(buf, len, 3, table) == CHORUS_REMOTE_ERROR &&
              err_has("expected 3"),
          "TABLE of 4 when 3 expected");
    CHECK(chorus_bsmsg_decode_table(buf, len, 0, table) == CHORUS_INVALID_ARGUMENT,
          "TABLE with nranks 0");
    /* nranks field disagrees with the length */
    buf[15] = 5;
    CHECK(chorus_bsmsg_decode_table(buf, len, 4, table) == CHORUS_REMOTE_ERROR,
          "TABLE whose count field disagrees");
    buf[15] = 4;
    /* a bad entry is reported with its rank */
    buf[16 + 2 * 24 + 1] = 9; /* family of rank 2 */
    CHECK(chorus_bsmsg_decode_table(buf, len, 4, table) == CHORUS_REMOTE_ERROR &&
              err_has("rank 2"),
          "TABLE with a bad entry names its rank");
    CHECK(chorus_bsmsg_encode_table(buf, 50, 4, addrs, &len) == CHORUS_INVALID_ARGUMENT,
          "encode TABLE into a short buffer");
    CHECK(chorus_bsmsg_encode_table(buf, sizeof buf, 0, addrs, &len) == CHORUS_INVALID_ARGUMENT,
          "encode TABLE of 0 ranks");
    CHECK(chorus_bsmsg_table_bytes(0) == 0 && chorus_bsmsg_table_bytes(CHORUS_BSMSG_MAX_NRANKS + 1) == 0,
          "table_bytes out of range");

    chorus_result_t code;
    char text[600];
    CHECK(chorus_bsmsg_encode_error(buf, sizeof buf, CHORUS_TIMEOUT, "ranks 3, 4 missing", &len) ==
              CHORUS_SUCCESS,
          "encode ERROR");
    CHECK(chorus_bsmsg_decode_error(buf, len, &code, text, sizeof text) == CHORUS_SUCCESS &&
              code == CHORUS_TIMEOUT && !strcmp(text, "ranks 3, 4 missing"),
          "ERROR round trip");
    check_truncation("ERROR", buf, len, 0);
    CHECK(chorus_bsmsg_decode_error(buf, len, &code, text, 6) == CHORUS_SUCCESS &&
              !strcmp(text, "ranks"),
          "ERROR text cut to the buffer");
    CHECK(chorus_bsmsg_encode_error(buf, sizeof buf, CHORUS_REMOTE_ERROR, "a\x01\n\x7f\xff" "b",
                                    &len) == CHORUS_SUCCESS &&
              chorus_bsmsg_decode_error(buf, len, &code, text, sizeof text) == CHORUS_SUCCESS &&
              !strcmp(text, "a????b"),
          "ERROR text sanitized: '%s'", text);
    CHECK(chorus_bsmsg_encode_error(buf, sizeof buf, CHORUS_REMOTE_ERROR, NULL, &len) ==
                  CHORUS_SUCCESS &&
              chorus_bsmsg_decode_error(buf, len, &code, text, sizeof text) == CHORUS_SUCCESS &&
              text[0] == '\0',
          "ERROR without text");
    char longtext[2000];
    memset(longtext, 'x', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    CHECK(chorus_bsmsg_encode_error(buf, sizeof buf, CHORUS_REMOTE_ERROR, longtext, &len) ==
                  CHORUS_SUCCESS &&
              len == 12 + 6 + CHORUS_BSMSG_MAX_TEXT && len <= CHORUS_BSMSG_SMALL_MAX,
          "ERROR text cut to the maximum");
    CHECK(chorus_bsmsg_decode_error(buf, len, &code, text, sizeof text) == CHORUS_SUCCESS &&
              strlen(text) == CHORUS_BSMSG_MAX_TEXT,
          "longest ERROR decodes");
    CHECK(chorus_bsmsg_encode_error(buf, sizeof buf, CHORUS_SUCCESS, "x", &len) ==
              CHORUS_INVALID_ARGUMENT,
          "ERROR with code SUCCESS is not encoded");
    chorus_bsmsg_encode_error(buf, sizeof buf, CHORUS_TIMEOUT, "t", &len);
    const uint32_t bad_codes[] = {0, CHORUS_IN_PROGRESS, CHORUS_NUM_RESULTS, 0xffffffffu};
    for (size_t i = 0; i < 4; i++) {
        buf[12] = (uint8_t)(bad_codes[i] >> 24);
        buf[13] = (uint8_t)(bad_codes[i] >> 16);
        buf[14] = (uint8_t)(bad_codes[i] >> 8);
        buf[15] = (uint8_t)bad_codes[i];
        CHECK(chorus_bsmsg_decode_error(buf, len, &code, text, sizeof text) ==
                      CHORUS_REMOTE_ERROR &&
                  err_has("not a failure code"),
              "ERROR with code %u rejected", bad_codes[i]);
    }
    chorus_bsmsg_encode_error(buf, sizeof buf, CHORUS_TIMEOUT, "abc", &len);
    buf[17] = 4; /* text length says 4, payload has 3 */
    CHECK(chorus_bsmsg_decode_error(buf, len, &code, text, sizeof text) == CHORUS_REMOTE_ERROR &&
              err_has("text length"),
          "ERROR with an inconsistent text length");

    CHECK(chorus_bsmsg_encode_peer(buf, sizeof buf, 6, 7, &len) == CHORUS_SUCCESS && len == 20,
          "encode PEER");
    CHECK(chorus_bsmsg_decode_peer(buf, len, &r, &n) == CHORUS_SUCCESS && r == 6 && n == 7,
          "PEER round trip");
    check_truncation("PEER", buf, len, 0);

    uint64_t a, b;
    CHECK(chorus_bsmsg_encode_coll(buf, sizeof buf, 0x0102030405060708ULL, 1ULL << 40, &len) ==
                  CHORUS_SUCCESS &&
              len == 28,
          "encode COLL");
    CHECK(chorus_bsmsg_decode_coll(buf, len, &a, &b) == CHORUS_SUCCESS &&
              a == 0x0102030405060708ULL && b == 1ULL << 40,
          "COLL round trip");
    check_truncation("COLL", buf, len, 0);
    /* wire format is big endian */
    CHECK(buf[0] == 'C' && buf[1] == 'H' && buf[2] == 'B' && buf[3] == 'S' && buf[4] == 0 &&
              buf[5] == 1 && buf[6] == 0 && buf[7] == CHORUS_BSMSG_COLL && buf[11] == 16 &&
              buf[12] == 1 && buf[19] == 8,
          "COLL bytes are in network order");
}

static void test_rejects(void)
{
    uint8_t buf[256], good[256];
    size_t len;
    struct chorus_bsmsg_header h;
    struct chorus_sockaddr a = v4("192.168.1.1", 999), got;
    uint32_t r, n;

    CHECK(chorus_bsmsg_encode_join(good, sizeof good, 1, 4, &a, &len) == CHORUS_SUCCESS,
          "encode JOIN");
    CHECK(chorus_bsmsg_decode_header(good, len, 0, &h) == CHORUS_SUCCESS &&
              h.type == CHORUS_BSMSG_JOIN && h.length == 32 && h.version == 1,
          "header decodes");
    CHECK(chorus_bsmsg_decode_header(NULL, 0, 0, &h) == CHORUS_REMOTE_ERROR &&
              err_has("truncated"),
          "NULL buffer");

    memcpy(buf, good, len);
    buf[0] ^= 0x40;
    CHECK(chorus_bsmsg_decode_join(buf, len, &r, &n, &got) == CHORUS_REMOTE_ERROR &&
              err_has("magic"),
          "bad magic");
    memcpy(buf, good, len);
    buf[5] = 2;
    CHECK(chorus_bsmsg_decode_join(buf, len, &r, &n, &got) == CHORUS_REMOTE_ERROR &&
              err_has("version"),
          "bad version");
    const uint16_t bad_types[] = {0, CHORUS_BSMSG_NUM_TYPES, 0x100, 0xffff};
    for (size_t i = 0; i < 4; i++) {
        memcpy(buf, good, len);
        buf[6] = (uint8_t)(bad_types[i] >> 8);
        buf[7] = (uint8_t)bad_types[i];
        CHECK(chorus_bsmsg_decode_header(buf, len, 0, &h) == CHORUS_REMOTE_ERROR &&
                  err_has("unknown bootstrap message type"),
              "type %u rejected", bad_types[i]);
    }
    const uint32_t bad_lengths[] = {0, 31, 33, 0x7fffffffu, 0xffffffffu};
    for (size_t i = 0; i < 5; i++) {
        memcpy(buf, good, len);
        buf[8] = (uint8_t)(bad_lengths[i] >> 24);
        buf[9] = (uint8_t)(bad_lengths[i] >> 16);
        buf[10] = (uint8_t)(bad_lengths[i] >> 8);
        buf[11] = (uint8_t)bad_lengths[i];
        CHECK(chorus_bsmsg_decode_header(buf, len, 0, &h) == CHORUS_REMOTE_ERROR &&
                  err_has("payload length"),
              "JOIN with length %u rejected", bad_lengths[i]);
    }
    /* oversized ERROR and TABLE */
    chorus_bsmsg_encode_error(buf, sizeof buf, CHORUS_TIMEOUT, "x", &len);
    buf[10] = 0x10;
    CHECK(chorus_bsmsg_decode_header(buf, len, 0, &h) == CHORUS_REMOTE_ERROR,
          "oversized ERROR");
    buf[10] = 0;
    buf[11] = 5;
    CHECK(chorus_bsmsg_decode_header(buf, len, 0, &h) == CHORUS_REMOTE_ERROR,
          "undersized ERROR");
    struct chorus_sockaddr two[2] = {a, a};
    chorus_bsmsg_encode_table(buf, sizeof buf, 2, two, &len);
    CHECK(chorus_bsmsg_decode_header(buf, len, 2, &h) == CHORUS_SUCCESS, "TABLE header");
    CHECK(chorus_bsmsg_decode_header(buf, len, 3, &h) == CHORUS_REMOTE_ERROR,
          "TABLE header with the wrong nranks");
    const uint32_t bad_tlen[] = {0, 4, 27, 4 + 24 + 1, 4 + 24 * (CHORUS_BSMSG_MAX_NRANKS + 1),
                                 0xffffffffu};
    for (size_t i = 0; i < 6; i++) {
        buf[8] = (uint8_t)(bad_tlen[i] >> 24);
        buf[9] = (uint8_t)(bad_tlen[i] >> 16);
        buf[10] = (uint8_t)(bad_tlen[i] >> 8);
        buf[11] = (uint8_t)bad_tlen[i];
        CHECK(chorus_bsmsg_decode_header(buf, len, 0, &h) == CHORUS_REMOTE_ERROR,
              "TABLE with length %u rejected", bad_tlen[i]);
    }

    /* rank / nranks */
    struct {
        uint32_t rank, nranks;
    } bad_ranks[] = {{0, 0}, {4, 4}, {5, 4}, {0xffffffffu, 4}, {0, CHORUS_BSMSG_MAX_NRANKS + 1},
                     {0, 0xffffffffu}};
    for (size_t i = 0; i < sizeof bad_ranks / sizeof bad_ranks[0]; i++) {
        CHECK(chorus_bsmsg_encode_join(buf, sizeof buf, bad_ranks[i].rank, bad_ranks[i].nranks,
                                       &a, &len) == CHORUS_INVALID_ARGUMENT,
              "encode JOIN rank %u of %u rejected", bad_ranks[i].rank, bad_ranks[i].nranks);
        CHECK(chorus_bsmsg_encode_peer(buf, sizeof buf, bad_ranks[i].rank, bad_ranks[i].nranks,
                                       &len) == CHORUS_INVALID_ARGUMENT,
              "encode PEER rank %u of %u rejected", bad_ranks[i].rank, bad_ranks[i].nranks);
        /* forge them on the wire */
        memcpy(buf, good, 44);
        for (int k = 0; k < 4; k++) {
            buf[12 + k] = (uint8_t)(bad_ranks[i].rank >> (24 - 8 * k));
            buf[16 + k] = (uint8_t)(bad_ranks[i].nranks >> (24 - 8 * k));
        }
        CHECK(chorus_bsmsg_decode_join(buf, 44, &r, &n, &got) == CHORUS_REMOTE_ERROR &&
                  (err_has("rank") || err_has("nranks")),
              "JOIN rank %u of %u rejected", bad_ranks[i].rank, bad_ranks[i].nranks);
        chorus_bsmsg_encode_peer(buf, sizeof buf, 0, 1, &len);
        for (int k = 0; k < 4; k++) {
            buf[12 + k] = (uint8_t)(bad_ranks[i].rank >> (24 - 8 * k));
            buf[16 + k] = (uint8_t)(bad_ranks[i].nranks >> (24 - 8 * k));
        }
        CHECK(chorus_bsmsg_decode_peer(buf, len, &r, &n) == CHORUS_REMOTE_ERROR,
              "PEER rank %u of %u rejected", bad_ranks[i].rank, bad_ranks[i].nranks);
    }

    /* addresses in a JOIN (address at offset 20: family, port, scope, 16 bytes) */
    struct {
        const char *what;
        int off;
        uint8_t val;
    } bad_addr[] = {
        {"family 0", 21, 0},       {"family 3", 21, 3},        {"family 0x103", 20, 1},
        {"port 0", 22, 0},         {"IPv4 padding", 35, 1},    {"IPv4 scope", 27, 1},
        {"IPv4 multicast", 28, 224}, {"IPv4 broadcast", 28, 255},
    };
    for (size_t i = 0; i < sizeof bad_addr / sizeof bad_addr[0]; i++) {
        memcpy(buf, good, 44);
        buf[bad_addr[i].off] = bad_addr[i].val;
        if (bad_addr[i].off == 22)
            buf[23] = 0;
        CHECK(chorus_bsmsg_decode_join(buf, 44, &r, &n, &got) == CHORUS_REMOTE_ERROR,
              "JOIN with %s rejected", bad_addr[i].what);
    }
    memcpy(buf, good, 44);
    memset(buf + 28, 0, 4);
    CHECK(chorus_bsmsg_decode_join(buf, 44, &r, &n, &got) == CHORUS_REMOTE_ERROR,
          "JOIN with 0.0.0.0 rejected");
    struct chorus_sockaddr six = v6("::", 80, 0);
    CHECK(chorus_bsmsg_encode_join(buf, sizeof buf, 0, 1, &six, &len) == CHORUS_SUCCESS &&
              chorus_bsmsg_decode_join(buf, len, &r, &n, &got) == CHORUS_REMOTE_ERROR,
          "JOIN with :: rejected");
    six = v6("ff02::1", 80, 0);
    CHECK(chorus_bsmsg_encode_join(buf, sizeof buf, 0, 1, &six, &len) == CHORUS_SUCCESS &&
              chorus_bsmsg_decode_join(buf, len, &r, &n, &got) == CHORUS_REMOTE_ERROR,
          "JOIN with IPv6 multicast rejected");
    struct chorus_sockaddr noport = v4("10.0.0.1", 0);
    CHECK(chorus_bsmsg_encode_join(buf, sizeof buf, 0, 1, &noport, &len) ==
              CHORUS_INVALID_ARGUMENT,
          "encode JOIN with port 0 rejected");
    struct chorus_sockaddr empty;
    memset(&empty, 0, sizeof empty);
    CHECK(chorus_bsmsg_encode_join(buf, sizeof buf, 0, 1, &empty, &len) ==
              CHORUS_INVALID_ARGUMENT,
          "encode JOIN with no address rejected");
    CHECK(chorus_bsmsg_encode_join(buf, sizeof buf, 0, 1, NULL, &len) == CHORUS_INVALID_ARGUMENT,
          "encode JOIN with NULL address rejected");
    CHECK(chorus_bsmsg_decode_join(good, 44, NULL, &n, &got) == CHORUS_INVALID_ARGUMENT,
          "decode JOIN with NULL output");
}

static void test_garbage(int rounds)
{
    uint8_t buf[1024], valid[8][1024];
    size_t vlen[8];
    uint8_t nonce[16] = {1}, mac[8] = {2};
    struct chorus_sockaddr a[3] = {v4("10.0.0.1", 1), v6("fd00::1", 2, 0), v4("10.0.0.3", 3)};
    chorus_bsmsg_encode_hello(valid[0], sizeof valid[0], nonce, &vlen[0]);
    chorus_bsmsg_encode_proof(valid[1], sizeof valid[1], mac, nonce, &vlen[1]);
    chorus_bsmsg_encode_auth_ok(valid[2], sizeof valid[2], mac, &vlen[2]);
    chorus_bsmsg_encode_join(valid[3], sizeof valid[3], 2, 3, &a[1], &vlen[3]);
    chorus_bsmsg_encode_table(valid[4], sizeof valid[4], 3, a, &vlen[4]);
    chorus_bsmsg_encode_error(valid[5], sizeof valid[5], CHORUS_TIMEOUT, "boom", &vlen[5]);
    chorus_bsmsg_encode_peer(valid[6], sizeof valid[6], 1, 2, &vlen[6]);
    chorus_bsmsg_encode_coll(valid[7], sizeof valid[7], 9, 99, &vlen[7]);

    for (int i = 0; i < 8; i++)
        CHECK(decode_all(valid[i], vlen[i], i == 4 ? 3 : 0) == 2,
              "valid message %d accepted by exactly its decoder and the header decoder", i);

    int accepted_random = 0, survived = 0;
    for (int i = 0; i < rounds; i++) {
        size_t len = (size_t)(rnd() % 200);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)rnd();
        /* Half the time give it a valid header prefix so payload checks run. */
        if (len >= 12 && (i & 1)) {
            memcpy(buf, valid[rnd() % 8], 8);
        }
        accepted_random += decode_all(buf, len, (uint32_t)(rnd() % 4));
        survived++;
    }
    CHECK(survived == rounds, "random buffers decoded without crashing");
    (void)accepted_random;

    /* Mutations of valid messages: flip 1-3 random bytes, or cut them. */
    int accepted_mutants = 0;
    for (int i = 0; i < rounds; i++) {
        int which = (int)(rnd() % 8);
        size_t len = vlen[which];
        memcpy(buf, valid[which], len);
        int flips = 1 + (int)(rnd() % 3);
        for (int k = 0; k < flips; k++)
            buf[rnd() % len] ^= (uint8_t)(1 + rnd() % 255);
        if (rnd() % 4 == 0)
            len = (size_t)(rnd() % (len + 1));
        accepted_mutants += decode_all(buf, len, which == 4 ? 3 : 0) > 0;
    }
    CHECK(1, "mutated messages decoded without crashing (%d of %d still valid)", accepted_mutants,
          rounds);
}

static void test_unique_id(void)
{
    chorus_unique_id_t id, id2;
    struct chorus_sockaddr root = v4("127.0.0.1", 29500), got;
    struct chorus_sockaddr root6 = v6("fe80::1234", 1, 2);
    uint8_t secret[16], secret2[16];
    for (int i = 0; i < 16; i++)
        secret[i] = (uint8_t)(i * 17 + 3);

    CHECK(chorus_bsmsg_encode_id(&id, &root, secret) == CHORUS_SUCCESS, "encode id");
    CHECK(chorus_bsmsg_decode_id(&id, &got, secret2) == CHORUS_SUCCESS &&
              same_addr(&got, &root) && !memcmp(secret, secret2, 16),
          "id round trip (IPv4)");
    CHECK(chorus_bsmsg_encode_id(&id2, &root, secret) == CHORUS_SUCCESS &&
              !memcmp(&id, &id2, sizeof id),
          "id encoding is deterministic");
    CHECK(chorus_bsmsg_encode_id(&id2, &root6, secret) == CHORUS_SUCCESS &&
              chorus_bsmsg_decode_id(&id2, &got, secret2) == CHORUS_SUCCESS &&
              same_addr(&got, &root6),
          "id round trip (IPv6 with scope)");

    int undetected = 0;
    for (size_t i = 0; i < sizeof id.internal; i++) {
        for (int bit = 0; bit < 8; bit++) {
            id2 = id;
            id2.internal[i] = (char)(id2.internal[i] ^ (1 << bit));
            if (chorus_bsmsg_decode_id(&id2, &got, secret2) != CHORUS_INVALID_ARGUMENT)
                undetected++;
        }
    }
    CHECK(undetected == 0, "every single-bit corruption of the id is detected (%d missed)",
          undetected);
    id2 = id;
    id2.internal[40] ^= 1; /* inside the secret */
    CHECK(chorus_bsmsg_decode_id(&id2, &got, secret2) == CHORUS_INVALID_ARGUMENT &&
              err_has("corrupted"),
          "a corrupted secret is reported as corruption");
    id2 = id;
    memset(id2.internal + 64, 0, 64); /* truncated copy */
    CHECK(chorus_bsmsg_decode_id(&id2, &got, secret2) == CHORUS_INVALID_ARGUMENT &&
              err_has("corrupted"),
          "a half-copied id is rejected");
    memset(&id2, 0, sizeof id2);
    CHECK(chorus_bsmsg_decode_id(&id2, &got, secret2) == CHORUS_INVALID_ARGUMENT &&
              err_has("not a Chorus unique id"),
          "an all-zero id is rejected");
    id2 = id;
    id2.internal[5] = 9;
    CHECK(chorus_bsmsg_decode_id(&id2, &got, secret2) == CHORUS_INVALID_ARGUMENT &&
              err_has("version"),
          "an id of another version is rejected");
    int accepted = 0;
    for (int i = 0; i < 2000; i++) {
        for (size_t k = 0; k < sizeof id2.internal; k++)
            id2.internal[k] = (char)rnd();
        if (i & 1)
            memcpy(id2.internal, id.internal, 8);
        accepted += chorus_bsmsg_decode_id(&id2, &got, secret2) == CHORUS_SUCCESS;
    }
    CHECK(accepted == 0, "random ids rejected (%d accepted)", accepted);

    struct chorus_sockaddr noport = v4("127.0.0.1", 0);
    CHECK(chorus_bsmsg_encode_id(&id2, &noport, secret) == CHORUS_INVALID_ARGUMENT,
          "id with port 0 not encoded");
    CHECK(chorus_bsmsg_encode_id(NULL, &root, secret) == CHORUS_INVALID_ARGUMENT,
          "NULL id not encoded");
    CHECK(chorus_bsmsg_decode_id(NULL, &got, secret2) == CHORUS_INVALID_ARGUMENT,
          "NULL id not decoded");
}

static void test_socket_helpers(void)
{
    CHECK(chorus_socket_ifname_match(NULL, "eth0"), "default takes eth0");
    CHECK(chorus_socket_ifname_match("", "ib0"), "default takes ib0");
    CHECK(!chorus_socket_ifname_match("", "docker0"), "default skips docker0");
    CHECK(!chorus_socket_ifname_match("", "veth12ab"), "default skips veth");
    CHECK(!chorus_socket_ifname_match("", "virbr0"), "default skips virbr0");
    CHECK(!chorus_socket_ifname_match("", "br-5f3a"), "default skips br-");
    CHECK(chorus_socket_ifname_match("", "bridge0"), "default takes bridge0");
    CHECK(chorus_socket_ifname_match("eth", "eth0"), "prefix eth takes eth0");
    CHECK(!chorus_socket_ifname_match("eth", "ib0"), "prefix eth skips ib0");
    CHECK(chorus_socket_ifname_match("ib,eth", "eth1"), "list takes eth1");
    CHECK(chorus_socket_ifname_match(" ib , eth ", "ib0"), "list with spaces takes ib0");
    CHECK(chorus_socket_ifname_match("=eth0", "eth0"), "exact eth0");
    CHECK(!chorus_socket_ifname_match("=eth0", "eth01"), "exact eth0 skips eth01");
    CHECK(!chorus_socket_ifname_match("=eth", "eth0"), "exact eth skips eth0");
    CHECK(!chorus_socket_ifname_match("^docker,lo", "docker0"), "exclude docker");
    CHECK(!chorus_socket_ifname_match("^docker,lo", "lo"), "exclude lo");
    CHECK(chorus_socket_ifname_match("^docker,lo", "eth0"), "exclude keeps eth0");
    CHECK(chorus_socket_ifname_match("^=eth0", "eth01"), "exact exclude keeps eth01");
    CHECK(!chorus_socket_ifname_match("^=eth0", "eth0"), "exact exclude drops eth0");
    CHECK(!chorus_socket_ifname_match(",,", "eth0"), "empty list matches nothing");
    CHECK(!chorus_socket_ifname_match("eth", NULL), "NULL name");

    int fam = -1;
    CHECK(chorus_socket_parse_family("", &fam) == 0 && fam == AF_UNSPEC, "family any");
    CHECK(chorus_socket_parse_family("AF_INET", &fam) == 0 && fam == AF_INET, "AF_INET");
    CHECK(chorus_socket_parse_family("ipv6", &fam) == 0 && fam == AF_INET6, "ipv6");
    CHECK(chorus_socket_parse_family("af_inet6", &fam) == 0 && fam == AF_INET6, "af_inet6");
    CHECK(chorus_socket_parse_family("AF_UNIX", &fam) == -1, "AF_UNIX rejected");

    char s[CHORUS_SOCKADDR_STRLEN];
    struct chorus_sockaddr a = v4("10.1.2.3", 80);
    CHECK(!strcmp(chorus_sockaddr_str(&a, s, sizeof s), "10.1.2.3:80"), "IPv4 string: %s", s);
    a = v6("fe80::1", 8080, 3);
    CHECK(!strcmp(chorus_sockaddr_str(&a, s, sizeof s), "[fe80::1%3]:8080"), "IPv6 string: %s",
          s);
    CHECK(!strcmp(chorus_sockaddr_str(&a, s, 5), "[fe8"), "string cut: %s", s);
    struct chorus_sockaddr r;
    CHECK(chorus_socket_resolve("127.0.0.1", 1234, AF_UNSPEC, &r) == CHORUS_SUCCESS &&
              chorus_sockaddr_port(&r) == 1234 && r.u.sa.sa_family == AF_INET,
          "resolve 127.0.0.1");
    CHECK(chorus_socket_resolve("[::1]", 5, AF_UNSPEC, &r) == CHORUS_SUCCESS &&
              r.u.sa.sa_family == AF_INET6 && chorus_sockaddr_port(&r) == 5,
          "resolve [::1]");
    CHECK(chorus_socket_resolve("127.0.0.1", 70000, AF_UNSPEC, &r) == CHORUS_INVALID_ARGUMENT,
          "port out of range");
    CHECK(chorus_socket_resolve("", 1, AF_UNSPEC, &r) == CHORUS_INVALID_ARGUMENT, "empty host");

    /* CHORUS_SOCKET_IFNAME is "=lo" (set in main): local lookup only. */
    char ifname[32] = "";
    CHECK(chorus_socket_pick_address(&r, ifname, sizeof ifname) == CHORUS_SUCCESS &&
              !strcmp(ifname, "lo") && chorus_sockaddr_port(&r) == 0 &&
              r.u.sa.sa_family == AF_INET && ntohl(r.u.in4.sin_addr.s_addr) == 0x7f000001,
          "CHORUS_SOCKET_IFNAME==lo picks 127.0.0.1 (%s on %s)",
          chorus_sockaddr_str(&r, s, sizeof s), ifname);
}

int main(int argc, char **argv)
{
    /* Thousands of rejected buffers would each log a line. */
    setenv("CHORUS_LOG_LEVEL", "none", 0);
    setenv("CHORUS_SOCKET_IFNAME", "=lo", 1);
    int rounds = 5000;
    if (argc > 1)
        rng_state = strtoull(argv[1], NULL, 0) | 1;
    if (argc > 2)
        rounds = atoi(argv[2]);
    test_siphash();
    test_round_trips();
    test_rejects();
    test_garbage(rounds);
    test_unique_id();
    test_socket_helpers();
    if (failures) {
        fprintf(stderr, "FAILED test_bootstrap_msg: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("ok test_bootstrap_msg: %d checks\n", checks);
    return 0;
}
