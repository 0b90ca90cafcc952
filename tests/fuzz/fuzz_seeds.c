/* fuzz_seeds.c - writes the seed inputs of the bootstrap fuzz targets, made
 * by the library's real encoders, so the fuzzers start from valid messages
 * and valid handshakes instead of having to discover the wire format.
 *
 * Usage: fuzz_seeds DIR
 * writes DIR/bootstrap_msg/seed-* (one message or unique id per file) and
 * DIR/bootstrap_root/seed-* (client sessions in the record format of
 * fuzz_bootstrap_root.c). The output is deterministic. The kept corpus in
 * tests/fuzz/corpus/ holds these seeds plus what fuzzing found; regenerate
 * with  build/tests/fuzz/fuzz_seeds tests/fuzz/corpus  (see docs/fuzzing.md).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "bootstrap_msg.h"
#include "chorus.h"
#include "fuzz_target.h"
#include "socket.h"

static const char *outdir;
static int failures;

static void check(chorus_result_t r, const char *what)
{
    if (r != CHORUS_SUCCESS) {
        fprintf(stderr, "fuzz_seeds: encoding %s failed: %s\n", what, chorus_get_last_error());
        failures++;
    }
}

static void write_seed(const char *sub, const char *name, const void *buf, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/seed-%s", outdir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "fuzz_seeds: cannot write %s: %s\n", path, strerror(errno));
        failures++;
        return;
    }
    printf("%s (%zu bytes)\n", path, len);
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

/* ---- single messages ------------------------------------------------------- */

static void msg_seeds(void)
{
    uint8_t buf[4096], nonce[16], mac[8];
    size_t len;
    for (int i = 0; i < 16; i++)
        nonce[i] = (uint8_t)(0x11 * i + 3);
    for (int i = 0; i < 8; i++)
        mac[i] = (uint8_t)(0xa5 ^ i);
    struct chorus_sockaddr a4 = v4("10.1.2.3", 40001), a6 = v6("fe80::1", 40002, 3);
    struct chorus_sockaddr t[5] = {v4("192.168.0.1", 1), a6, v4("127.0.0.1", 65535),
                                   v6("2001:db8::42", 5000, 0), a4};
    const char *M = "bootstrap_msg";

#define SEED(name, call)                 \
    do {                                 \
        chorus_result_t r_ = (call);     \
        check(r_, name);                 \
        if (r_ == CHORUS_SUCCESS)        \
            write_seed(M, name, buf, len); \
    } while (0)

    SEED("hello", chorus_bsmsg_encode_hello(buf, sizeof buf, nonce, &len));
    SEED("proof", chorus_bsmsg_encode_proof(buf, sizeof buf, mac, nonce, &len));
    SEED("auth_ok", chorus_bsmsg_encode_auth_ok(buf, sizeof buf, mac, &len));
    SEED("join-v4", chorus_bsmsg_encode_join(buf, sizeof buf, 2, 5, &a4, &len));
    SEED("join-v6", chorus_bsmsg_encode_join(buf, sizeof buf, 0, 1, &a6, &len));
    SEED("table-1", chorus_bsmsg_encode_table(buf, sizeof buf, 1, t, &len));
    SEED("table-5", chorus_bsmsg_encode_table(buf, sizeof buf, 5, t, &len));
    SEED("error-empty", chorus_bsmsg_encode_error(buf, sizeof buf, CHORUS_TIMEOUT, "", &len));
    SEED("error-text", chorus_bsmsg_encode_error(buf, sizeof buf, CHORUS_REMOTE_ERROR,
                                                 "2 of 4 ranks never arrived: ranks 1, 3",
                                                 &len));
    char longtext[CHORUS_BSMSG_MAX_TEXT + 1];
    memset(longtext, 'x', CHORUS_BSMSG_MAX_TEXT);
    longtext[CHORUS_BSMSG_MAX_TEXT] = '\0';
    SEED("error-max", chorus_bsmsg_encode_error(buf, sizeof buf, CHORUS_INVALID_USAGE, longtext,
                                                &len));
    SEED("peer", chorus_bsmsg_encode_peer(buf, sizeof buf, 3, 4, &len));
    SEED("coll", chorus_bsmsg_encode_coll(buf, sizeof buf, 7, 4096, &len));

    chorus_unique_id_t id;
    uint8_t secret[16];
    chorus_bsmsg_secret_from_string("fuzz", secret);
    check(chorus_bsmsg_encode_id(&id, &a4, secret), "id-v4");
    write_seed(M, "id-v4", id.internal, sizeof id.internal);
    check(chorus_bsmsg_encode_id(&id, &a6, secret), "id-v6");
    write_seed(M, "id-v6", id.internal, sizeof id.internal);
#undef SEED
}

/* ---- client sessions against the root ------------------------------------- */

struct session {
    uint8_t buf[8192];
    size_t len;
};

/* One record: op (connection and flags), then the bytes. */
static void rec(struct session *s, unsigned op, const void *bytes, size_t n)
{
    if (s->len + 3 + n > sizeof s->buf) {
        failures++;
        return;
    }
    s->buf[s->len++] = (uint8_t)op;
    s->buf[s->len++] = (uint8_t)(n >> 8);
    s->buf[s->len++] = (uint8_t)n;
    memcpy(s->buf + s->len, bytes, n);
    s->len += n;
}

/* The PROOF a client knowing the secret sends (or one with a wrong secret). */
static void rec_proof(struct session *s, unsigned op, int right_secret)
{
    static const uint8_t secret[16] = FUZZ_ROOT_SECRET, nonce[16] = FUZZ_ROOT_NONCE;
    uint8_t key[16], mac[8], mine[16], msg[64];
    size_t len;
    memcpy(key, secret, sizeof key);
    if (!right_secret)
        key[0] ^= 1;
    for (int i = 0; i < 16; i++)
        mine[i] = (uint8_t)(op * 16 + i);
    chorus_bsmsg_mac(key, 'C', nonce, mac);
    check(chorus_bsmsg_encode_proof(msg, sizeof msg, mac, mine, &len), "PROOF");
    rec(s, op, msg, len);
}

static void rec_join(struct session *s, unsigned op, uint32_t rank, uint32_t nranks)
{
    uint8_t msg[64];
    size_t len;
    struct chorus_sockaddr a = v4("10.0.0.1", (uint16_t)(30000 + rank));
    check(chorus_bsmsg_encode_join(msg, sizeof msg, rank, nranks, &a, &len), "JOIN");
    rec(s, op, msg, len);
}

static void root_seeds(void)
{
    const char *R = "bootstrap_root";
    struct session s;

    /* one rank: handshake, join, table */
    s.len = 0;
    rec_proof(&s, 0, 1);
    rec_join(&s, 0, 0, 1);
    write_seed(R, "one-rank", s.buf, s.len);

    /* three ranks on three connections, interleaved, then an empty round */
    s.len = 0;
    rec_proof(&s, 0, 1);
    rec_proof(&s, 1, 1);
    rec_join(&s, 1, 1, 3);
    rec_proof(&s, 2, 1);
    rec_join(&s, 0, 0, 3);
    rec_join(&s, 2, 2, 3);
    rec(&s, 3, "", 0);
    write_seed(R, "three-ranks", s.buf, s.len);

    /* handshake and JOIN in one segment: the two records' bytes merged */
    {
        struct session a;
        a.len = 0;
        rec_proof(&a, 0, 1);
        rec_join(&a, 0, 0, 1);
        /* a = [op len proof][op len join]: one record carrying both */
        size_t pl = ((size_t)a.buf[1] << 8) | a.buf[2];
        size_t jl = ((size_t)a.buf[3 + pl + 1] << 8) | a.buf[3 + pl + 2];
        uint8_t both[256];
        memcpy(both, a.buf + 3, pl);
        memcpy(both + pl, a.buf + 3 + pl + 3, jl);
        s.len = 0;
        rec(&s, 0, both, pl + jl);
        write_seed(R, "one-segment", s.buf, s.len);
    }

    /* a wrong secret, then a right one on another connection */
    s.len = 0;
    rec_proof(&s, 0, 0);
    rec_proof(&s, 1, 1);
    rec_join(&s, 1, 0, 2);
    write_seed(R, "wrong-secret", s.buf, s.len);

    /* two clients claim the same rank; nranks disagree */
    s.len = 0;
    rec_proof(&s, 0, 1);
    rec_join(&s, 0, 1, 4);
    rec_proof(&s, 1, 1);
    rec_join(&s, 1, 1, 4);
    rec_proof(&s, 2, 1);
    rec_join(&s, 2, 2, 5);
    write_seed(R, "duplicate-rank", s.buf, s.len);

    /* a joined rank leaves and another joins in its place */
    s.len = 0;
    rec_proof(&s, 0, 1);
    rec_join(&s, 0, 0, 2);
    rec(&s, 0x10, "", 0);
    rec_proof(&s, 1, 1);
    rec_join(&s, 1, 0, 2);
    write_seed(R, "rank-leaves", s.buf, s.len);

    /* one rank joined of two, then the init timeout */
    s.len = 0;
    rec_proof(&s, 0, 1);
    rec_join(&s, 0, 0, 2);
    rec_proof(&s, 1, 1);
    rec(&s, 0x21, "", 0);
    write_seed(R, "timeout", s.buf, s.len);

    /* a header announcing a huge message; then EOF mid-handshake */
    s.len = 0;
    {
        uint8_t hdr[12] = {0x43, 0x48, 0x42, 0x53, 0, 1, 0, 2, 0x7f, 0xff, 0xff, 0xff};
        rec(&s, 0, hdr, sizeof hdr);
        rec(&s, 0x09, hdr, 6);
    }
    write_seed(R, "oversized-eof", s.buf, s.len);

    /* a JOIN before the proof, garbage from an HTTP client */
    s.len = 0;
    rec_join(&s, 0, 0, 1);
    rec(&s, 1, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    write_seed(R, "out-of-order", s.buf, s.len);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR (writes OUTDIR/bootstrap_msg, OUTDIR/bootstrap_root)\n",
                argv[0]);
        return 2;
    }
    outdir = argv[1];
    const char *subs[] = {"bootstrap_msg", "bootstrap_root"};
    for (size_t i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", outdir, subs[i]);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "fuzz_seeds: cannot create %s: %s\n", path, strerror(errno));
            return 1;
        }
    }
    msg_seeds();
    root_seeds();
    return failures ? 1 : 0;
}
