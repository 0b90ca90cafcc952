/* fuzz_bootstrap_root.c - libFuzzer target for what the bootstrap root does
 * with bytes from clients: stream framing (pconn_read in bootstrap_conn.c),
 * the secret handshake (bootstrap_auth.c) and the handling of JOIN messages
 * from many connections (root_on_readable / root_on_join in
 * bootstrap_root.c), i.e. the code a port scanner or a foreign client
 * reaches first.
 *
 * The root's state machine is static in bootstrap_root.c and normally runs
 * in a thread around poll(). To drive it input by input, this file compiles
 * the real bootstrap_root.c into itself (#include below: the library's own
 * code, not a copy) and plays the poll loop: each connection is a
 * socketpair whose client end the fuzzer writes to, and after each write
 * the root handles "readable" exactly as root_main would. The archive
 * member bootstrap_root.o of the library is then never linked, since this
 * file defines all its symbols.
 *
 * Input: a sequence of records
 *     u8 op | u16 length (big endian) | length bytes
 * op bits 0-2: the connection (0..7; a dropped one is replaced by a new
 *              client on its next use), bit 3: the client shuts down its
 *              sending side after the bytes, bit 4: the client closes its
 *              end (reset/EOF), bit 5: the init timeout strikes first.
 * The root's secret and its nonce are fixed (fuzz_target.h), so seeds can
 * carry a valid PROOF (see fuzz_seeds.c) and the fuzzer reaches JOIN.
 *
 * Oracles besides the sanitizers: everything the root sends must be a
 * well-formed HELLO, AUTH_OK, ERROR or TABLE, and its bookkeeping (ranks joined
 * vs connections in state JOINED) must stay consistent.
 */
#include "bootstrap_root.c"

#include "fuzz_target.h"

#define FUZZ_CONNS 8
#define FUZZ_CLIENT_BUF 65536

struct client {
    struct pconn *c; /* the root's side; owned by rt->conns */
    int fd;          /* the client's end */
    uint8_t in[FUZZ_CLIENT_BUF];
    size_t have;
};

static void oracle_failed(const char *what)
{
    fprintf(stderr, "fuzz_bootstrap_root: %s (last error: %s)\n", what, chorus_get_last_error());
    abort();
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Reads what the root sent to a client and checks each complete message. */
static void drain_and_check(struct client *cl)
{
    if (cl->fd < 0)
        return;
    for (;;) {
        if (cl->have == sizeof cl->in)
            oracle_failed("the root sent more than a client can hold");
        ssize_t r = recv(cl->fd, cl->in + cl->have, sizeof cl->in - cl->have, MSG_DONTWAIT);
        if (r <= 0)
            break;
        cl->have += (size_t)r;
    }
    while (cl->have >= CHORUS_BSMSG_HEADER_BYTES) {
        struct chorus_bsmsg_header h;
        if (chorus_bsmsg_decode_header(cl->in, cl->have, 0, &h) != CHORUS_SUCCESS)
            oracle_failed("the root sent a malformed header");
        size_t len = CHORUS_BSMSG_HEADER_BYTES + (size_t)h.length;
        if (len > sizeof cl->in)
            oracle_failed("the root sent an oversized message");
        if (cl->have < len)
            break;
        chorus_result_t ok = CHORUS_INTERNAL_ERROR;
        if (h.type == CHORUS_BSMSG_HELLO) {
            uint8_t nonce[CHORUS_BSMSG_NONCE_BYTES];
            ok = chorus_bsmsg_decode_hello(cl->in, len, nonce);
        } else if (h.type == CHORUS_BSMSG_AUTH_OK) {
            uint8_t mac[CHORUS_BSMSG_MAC_BYTES];
            ok = chorus_bsmsg_decode_auth_ok(cl->in, len, mac);
        } else if (h.type == CHORUS_BSMSG_ERROR) {
            chorus_result_t code;
            char text[CHORUS_BSMSG_MAX_TEXT + 1];
            ok = chorus_bsmsg_decode_error(cl->in, len, &code, text, sizeof text);
        } else if (h.type == CHORUS_BSMSG_TABLE && h.length >= 4) {
            uint32_t n = rd32(cl->in + CHORUS_BSMSG_HEADER_BYTES);
            struct chorus_sockaddr *a = n && n <= 4096 ? calloc(n, sizeof *a) : NULL;
            if (a)
                ok = chorus_bsmsg_decode_table(cl->in, len, n, a);
            free(a);
        }
        if (ok != CHORUS_SUCCESS)
            oracle_failed("the root sent a message its peer cannot decode");
        memmove(cl->in, cl->in + len, cl->have - len);
        cl->have -= len;
    }
}

static void check_bookkeeping(const struct root *rt)
{
    uint32_t joined = 0;
    for (size_t i = 0; i < rt->nconns; i++) {
        const struct pconn *c = rt->conns[i];
        if (c->rank >= 0) {
            if (!rt->by_rank || (uint32_t)c->rank >= rt->nranks || rt->by_rank[c->rank] != c)
                oracle_failed("a connection holds a rank the root does not map to it");
            joined++;
        }
    }
    if (joined != rt->joined)
        oracle_failed("the root's count of joined ranks is off");
}

/* The start of a round of root_main: drop finished connections. */
static void drop_finished(struct root *rt, struct client *cls)
{
    for (size_t i = 0; i < rt->nconns;) {
        struct pconn *c = rt->conns[i];
        if (c->fd < 0 || (c->state == RS_CLOSING && !pconn_pending(c))) {
            for (int k = 0; k < FUZZ_CONNS; k++)
                if (cls[k].c == c) {
                    drain_and_check(&cls[k]);
                    cls[k].c = NULL;
                    chorus_socket_close(&cls[k].fd);
                    cls[k].have = 0;
                }
            root_drop(rt, i);
        } else {
            i++;
        }
    }
}

/* A new client connects: what root_accept does, minus accept() and the
 * random nonce. */
static int connect_client(struct root *rt, struct client *cl)
{
    static const uint8_t nonce[CHORUS_BSMSG_NONCE_BYTES] = FUZZ_ROOT_NONCE;
    int sv[2];
    if (rt->nconns - rt->joined >= MAX_PENDING)
        return -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    if (rt->nconns == rt->cap) {
        size_t ncap = rt->cap ? rt->cap * 2 : 16;
        struct pconn **n = realloc(rt->conns, ncap * sizeof *n);
        if (!n) {
            close(sv[0]);
            close(sv[1]);
            return -1;
        }
        rt->conns = n;
        rt->cap = ncap;
    }
    struct chorus_sockaddr peer;
    memset(&peer, 0, sizeof peer);
    struct pconn *c = pconn_new(sv[0], &peer, RS_PROOF, chorus_socket_now_ms() + HANDSHAKE_MS);
    if (!c) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    memcpy(c->nonce, nonce, sizeof nonce);
    uint8_t hello[64];
    size_t hl;
    if (chorus_bsmsg_encode_hello(hello, sizeof hello, c->nonce, &hl) == CHORUS_SUCCESS &&
        pconn_queue(c, hello, hl) == CHORUS_SUCCESS)
        (void)pconn_flush(c);
    rt->conns[rt->nconns++] = c;
    cl->c = c;
    cl->fd = sv[1];
    cl->have = 0;
    drain_and_check(cl); /* consumes the HELLO */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t secret[CHORUS_BSMSG_SECRET_BYTES] = FUZZ_ROOT_SECRET;
    fuzz_quiet_logs();
    struct root *rt = calloc(1, sizeof *rt);
    struct client *cls = calloc(FUZZ_CONNS, sizeof *cls);
    if (!rt || !cls) {
        free(rt);
        free(cls);
        return 0;
    }
    rt->lfd = -1;
    snprintf(rt->name, sizeof rt->name, "fuzz");
    memcpy(rt->secret, secret, sizeof secret);
    rt->timeout_ms = 1000;
    rt->deadline = -1;
    for (int k = 0; k < FUZZ_CONNS; k++)
        cls[k].fd = -1;

    int gathering = 1;
    size_t pos = 0;
    while (pos + 3 <= size) {
        unsigned op = data[pos];
        size_t len = ((size_t)data[pos + 1] << 8) | data[pos + 2];
        pos += 3;
        if (len > size - pos)
            len = size - pos;
        const uint8_t *bytes = data + pos;
        pos += len;

        drop_finished(rt, cls);
        if (gathering && rt->nranks && rt->joined == rt->nranks) {
            if (root_distribute(rt) != 0)
                break;
            gathering = 0;
        }
        if (gathering && (op & 0x20)) {
            root_timed_out(rt);
            gathering = 0;
        }
        struct client *cl = &cls[op & 7];
        if (!cl->c && (!gathering || connect_client(rt, cl) != 0))
            continue;
        if (cl->fd >= 0 && len) {
            ssize_t w = send(cl->fd, bytes, len, MSG_DONTWAIT | MSG_NOSIGNAL);
            (void)w; /* a full socket buffer just drops the rest, as a slow peer would */
        }
        if (cl->fd >= 0 && (op & 0x08))
            shutdown(cl->fd, SHUT_WR);
        if (op & 0x10)
            chorus_socket_close(&cl->fd);
        struct pconn *c = cl->c;
        if (c->fd >= 0 && pconn_pending(c) && pconn_flush(c) != CHORUS_SUCCESS) {
            if (c->rank >= 0 && rt->by_rank && rt->by_rank[c->rank] == c) {
                rt->by_rank[c->rank] = NULL;
                rt->joined--;
            }
            c->rank = -1;
            chorus_socket_close(&c->fd);
        }
        if (c->fd >= 0 && c->state != RS_CLOSING)
            root_on_readable(rt, c);
        drain_and_check(cl);
        check_bookkeeping(rt);
    }
    /* The last round: deliver what is queued, check it, free everything. */
    drop_finished(rt, cls);
    if (gathering && rt->nranks && rt->joined == rt->nranks)
        (void)root_distribute(rt);
    for (int k = 0; k < FUZZ_CONNS; k++) {
        if (cls[k].c && cls[k].c->fd >= 0)
            (void)pconn_flush(cls[k].c);
        drain_and_check(&cls[k]);
        chorus_socket_close(&cls[k].fd);
    }
    check_bookkeeping(rt);
    root_free(rt);
    free(cls);
    return 0;
}
