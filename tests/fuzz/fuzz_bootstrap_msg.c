/* fuzz_bootstrap_msg.c - libFuzzer target for the bootstrap wire format
 * (src/bootstrap_msg.c): every byte string a foreign or broken client could
 * send is fed to the header decoder and to every message decoder, and the
 * unique id decoder gets the first 128 bytes.
 *
 * Besides "no crash, no out-of-bounds read, no leak, no undefined
 * behaviour" (the sanitizers), each accepted message is checked against the
 * real encoder: a message the decoder accepts must be exactly what the
 * encoder writes for the decoded values. That catches a decoder that
 * accepts trailing bytes, ignores a reserved field or misreads a length.
 * A violated oracle calls abort() (this is a test program, not the library)
 * so libFuzzer records the input as a crash.
 *
 * The same function is replayed over tests/fuzz/corpus/bootstrap_msg by
 * fuzz_replay.c in every build, so the corpus stays a regression test.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_msg.h"
#include "chorus.h"
#include "fuzz_target.h"

/* Table sizes beyond this are only fed to the header checks: a real table
 * of a million ranks is valid, but building one per input would make the
 * fuzzer crawl without reaching any new code. */
#define FUZZ_MAX_TABLE 4096u

static void oracle_failed(const char *what, size_t size)
{
    fprintf(stderr, "fuzz_bootstrap_msg: %s (input of %zu bytes)\n", what, size);
    abort();
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* A decoded message must re-encode to the same bytes (enc_len is read
 * after the encoder ran: callers store its result first). */
static void same_bytes(const uint8_t *data, size_t size, const uint8_t *enc, size_t enc_len,
                       chorus_result_t enc_res, const char *what)
{
    if (enc_res != CHORUS_SUCCESS || enc_len != size || memcmp(enc, data, size) != 0)
        oracle_failed(what, size);
}

static void fuzz_table(const uint8_t *data, size_t size, uint32_t nranks)
{
    if (nranks == 0 || nranks > CHORUS_BSMSG_MAX_NRANKS) {
        /* Out-of-range expectations must be refused before touching addrs. */
        struct chorus_sockaddr one;
        if (chorus_bsmsg_decode_table(data, size, nranks, &one) == CHORUS_SUCCESS)
            oracle_failed("TABLE accepted with nranks out of range", size);
        return;
    }
    if (nranks > FUZZ_MAX_TABLE) {
        struct chorus_bsmsg_header h;
        (void)chorus_bsmsg_decode_header(data, size, nranks, &h);
        return;
    }
    struct chorus_sockaddr *addrs = calloc(nranks, sizeof *addrs);
    if (!addrs)
        return;
    if (chorus_bsmsg_decode_table(data, size, nranks, addrs) == CHORUS_SUCCESS) {
        size_t cap = chorus_bsmsg_table_bytes(nranks), len = 0;
        uint8_t *enc = malloc(cap ? cap : 1);
        if (enc) {
            chorus_result_t r = chorus_bsmsg_encode_table(enc, cap, nranks, addrs, &len);
            same_bytes(data, size, enc, len, r, "TABLE does not re-encode to its bytes");
            free(enc);
        }
    }
    free(addrs);
}

static void fuzz_messages(const uint8_t *data, size_t size)
{
    uint8_t enc[CHORUS_BSMSG_SMALL_MAX + 64];
    size_t len = 0;
    struct chorus_bsmsg_header h;

    /* The header alone, as pconn_read and recv_msg use it (any nranks). */
    if (chorus_bsmsg_decode_header(data, size, 0, &h) == CHORUS_SUCCESS) {
        if (h.type == 0 || h.type >= CHORUS_BSMSG_NUM_TYPES)
            oracle_failed("header accepted with an unknown type", size);
        if (h.type != CHORUS_BSMSG_TABLE &&
            (uint64_t)h.length + CHORUS_BSMSG_HEADER_BYTES > CHORUS_BSMSG_SMALL_MAX)
            oracle_failed("header accepted an oversized small message", size);
    }
    (void)chorus_bsmsg_type_name(size >= 8 ? ((unsigned)data[6] << 8 | data[7]) : 0);

    uint8_t nonce[CHORUS_BSMSG_NONCE_BYTES], mac[CHORUS_BSMSG_MAC_BYTES];
    if (chorus_bsmsg_decode_hello(data, size, nonce) == CHORUS_SUCCESS) {
        chorus_result_t r = chorus_bsmsg_encode_hello(enc, sizeof enc, nonce, &len);
        same_bytes(data, size, enc, len, r, "HELLO does not re-encode to its bytes");
    }
    if (chorus_bsmsg_decode_proof(data, size, mac, nonce) == CHORUS_SUCCESS) {
        chorus_result_t r = chorus_bsmsg_encode_proof(enc, sizeof enc, mac, nonce, &len);
        same_bytes(data, size, enc, len, r, "PROOF does not re-encode to its bytes");
    }
    if (chorus_bsmsg_decode_auth_ok(data, size, mac) == CHORUS_SUCCESS) {
        chorus_result_t r = chorus_bsmsg_encode_auth_ok(enc, sizeof enc, mac, &len);
        same_bytes(data, size, enc, len, r, "AUTH_OK does not re-encode to its bytes");
    }

    uint32_t rank, nranks;
    struct chorus_sockaddr addr;
    if (chorus_bsmsg_decode_join(data, size, &rank, &nranks, &addr) == CHORUS_SUCCESS) {
        chorus_result_t r = chorus_bsmsg_encode_join(enc, sizeof enc, rank, nranks, &addr, &len);
        same_bytes(data, size, enc, len, r, "JOIN does not re-encode to its bytes");
    }
    if (chorus_bsmsg_decode_peer(data, size, &rank, &nranks) == CHORUS_SUCCESS) {
        chorus_result_t r = chorus_bsmsg_encode_peer(enc, sizeof enc, rank, nranks, &len);
        same_bytes(data, size, enc, len, r, "PEER does not re-encode to its bytes");
    }

    uint64_t seq, bytes;
    if (chorus_bsmsg_decode_coll(data, size, &seq, &bytes) == CHORUS_SUCCESS) {
        chorus_result_t r = chorus_bsmsg_encode_coll(enc, sizeof enc, seq, bytes, &len);
        same_bytes(data, size, enc, len, r, "COLL does not re-encode to its bytes");
    }

    /* ERROR: the text is sanitised, so check its shape instead of bytes;
     * the output capacity comes from the input to cover every cut. */
    chorus_result_t code;
    char text[CHORUS_BSMSG_MAX_TEXT + 1];
    size_t cap = size ? 1 + data[size - 1] % sizeof text : sizeof text;
    memset(text, 'X', sizeof text);
    if (chorus_bsmsg_decode_error(data, size, &code, text, cap) == CHORUS_SUCCESS) {
        size_t n = strnlen(text, cap);
        if (n == cap)
            oracle_failed("ERROR text not terminated within its capacity", size);
        for (size_t i = 0; i < n; i++)
            if (text[i] < 0x20 || text[i] >= 0x7f)
                oracle_failed("ERROR text holds an unprintable byte", size);
        if (code <= CHORUS_SUCCESS || code >= CHORUS_NUM_RESULTS || code == CHORUS_IN_PROGRESS)
            oracle_failed("ERROR accepted a code that is not a failure", size);
        if (n != (size - CHORUS_BSMSG_HEADER_BYTES - 6 < cap - 1
                      ? size - CHORUS_BSMSG_HEADER_BYTES - 6
                      : cap - 1))
            oracle_failed("ERROR text length differs from the payload", size);
    }

    /* TABLE: with the count the message claims, the count its length
     * implies, and a count that fits neither. */
    if (size >= 16) {
        fuzz_table(data, size, rd32(data + 12));
        fuzz_table(data, size, (uint32_t)((size - 16) / CHORUS_BSMSG_ADDR_BYTES));
        fuzz_table(data, size, rd32(data + 12) + 1);
    } else {
        fuzz_table(data, size, 1);
    }
}

/* The unique id arrives out of band (MPI, a file, an env var): the first
 * 128 bytes. When the last input byte is odd the checksum is recomputed with
 * the library's own SipHash so the field checks behind it are reached too. */
static void fuzz_unique_id(const uint8_t *data, size_t size)
{
    chorus_unique_id_t id, again;
    struct chorus_sockaddr root;
    uint8_t secret[CHORUS_BSMSG_SECRET_BYTES];
    if (size < sizeof id.internal)
        return;
    memcpy(id.internal, data, sizeof id.internal);
    if (data[size - 1] & 1) {
        static const uint8_t key[16] = "chorus-unique-id";
        uint8_t *p = (uint8_t *)id.internal;
        uint64_t sum = chorus_siphash24(key, p, sizeof id.internal - 8);
        for (int i = 0; i < 8; i++)
            p[sizeof id.internal - 8 + i] = (uint8_t)(sum >> (56 - 8 * i));
    }
    if (chorus_bsmsg_decode_id(&id, &root, secret) == CHORUS_SUCCESS) {
        if (chorus_bsmsg_encode_id(&again, &root, secret) != CHORUS_SUCCESS ||
            memcmp(again.internal, id.internal, sizeof id.internal) != 0)
            oracle_failed("unique id does not re-encode to its bytes", size);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet_logs();
    fuzz_messages(data, size);
    fuzz_unique_id(data, size);
    return 0;
}
