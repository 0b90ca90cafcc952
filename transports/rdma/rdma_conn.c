/* rdma_conn.c - making the queue pairs of the RDMA transport.
 *
 * Every rank picks its device and address (rdma_dev.c), listens with
 * rdma_cm on that address and publishes a card {address, random token, QPs
 * per peer, piece size, eager size} through the setup allgather. Then the
 * lower rank of every needed pair connects each QP of the pair to the
 * higher one: resolve address, resolve route, create the QP, connect with
 * private data {magic, version, ranks, QP index, the acceptor's token, its
 * eager ring}. The acceptor checks the private data and rejects what is
 * wrong (a rejection carrying our magic stops the connector at once), else
 * creates its QP and accepts with its own ring in the reply.
 *
 * One event channel serves the whole setup, and all connects run at once
 * as a state machine: no rank waits for another while holding something
 * the other needs, and listening before the allgather means every connect
 * finds its listener. Address and route errors (a neighbour table still
 * warming up) are retried until the deadline; every wait is bounded and
 * checks the abort flag.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "rdma_impl.h"
#include "tunables.h"

#define ABORT_POLL_MS 100 /* setup waits in slices this long to see the abort flag */
#define RESOLVE_MS 2000   /* one address or route resolution */
#define PDATA_MAX 256

enum reject_reason {
    REJ_VERSION = 1,
    REJ_NOT_MINE,
    REJ_NOT_EXPECTED,
    REJ_TOKEN,
    REJ_QP_INDEX,
    REJ_DUPLICATE,
    REJ_DEVICE,
};

static const char *reject_text(uint32_t r)
{
    switch (r) {
    case REJ_VERSION: return "not a Chorus RDMA hello of this version";
    case REJ_NOT_MINE: return "addressed to another rank";
    case REJ_NOT_EXPECTED: return "from a rank that does not connect to this one";
    case REJ_TOKEN: return "wrong token";
    case REJ_QP_INDEX: return "queue pair index out of range";
    case REJ_DUPLICATE: return "duplicate connection";
    case REJ_DEVICE: return "arrived on another RDMA device";
    default: return "unknown reason";
    }
}

struct setup_state {
    struct rdma_transport *t;
    const struct transport_setup *setup;
    struct rdma_card mine;
    struct rdma_card *cards; /* [nranks] */
    int64_t deadline;        /* chorus_socket_now_ms() clock; -1: none */
    int left;                /* QPs not yet established */
};

/* A cm event, copied so that it can be acked before it is acted on. */
struct setup_event {
    enum rdma_cm_event_type type;
    struct rdma_cm_id *id, *listen_id;
    int status;
    uint8_t pdata[PDATA_MAX];
    size_t plen;
};

static int needed(const struct transport_setup *setup, int q)
{
    return q != setup->rank && (!setup->need_peer || setup->need_peer[q]);
}

static chorus_result_t check_abort(const struct setup_state *st)
{
    if (st->setup->abort_flag && atomic_load(st->setup->abort_flag))
        return CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: aborted during RDMA connection setup",
                          st->t->label);
    return CHORUS_SUCCESS;
}

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -1;
    int fd_fl = fcntl(fd, F_GETFD);
    return fd_fl < 0 || fcntl(fd, F_SETFD, fd_fl | FD_CLOEXEC) != 0 ? -1 : 0;
}

static chorus_result_t sys_fail(struct rdma_transport *t, const char *what)
{
    return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: %s failed: %s", t->label, what, strerror(errno));
}

static const char *ip_str(const struct chorus_sockaddr *a, char *buf, size_t cap)
{
    const void *src = a->u.sa.sa_family == AF_INET ? (const void *)&a->u.in4.sin_addr
                                                   : (const void *)&a->u.in6.sin6_addr;
    if (!inet_ntop(a->u.sa.sa_family, src, buf, (socklen_t)cap))
        snprintf(buf, cap, "?");
    return buf;
}

static size_t slot_bytes_of(uint32_t eager)
{
    return ((size_t)RDMA_EAGER_HDR + eager + 63) & ~(size_t)63;
}

/* ---- the device, the listener and the cards ---------------------------------------- */

static chorus_result_t open_device(struct setup_state *st, const struct chorus_tunables *tun)
{
    struct rdma_transport *t = st->t;
    int n = 0;
    errno = 0;
    t->devlist = rdma_get_devices(&n);
    if (!t->devlist || n <= 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: librdmacm found no RDMA device (%s)",
                          t->label, errno ? strerror(errno) : "none present");
    char why[256];
    if (rdma_pick_device(t->devlist, n, tun->RDMA_HCA, tun->RDMA_GID_INDEX, &t->dev, why,
                         sizeof why) != 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: no usable RDMA device: %s", t->label, why);
    if (!(t->pd = ibv_alloc_pd(t->dev.ctx)))
        return sys_fail(t, "ibv_alloc_pd");
    rdma_mr_cache_init(&t->mrc, t->pd, tun->RDMA_MR_CACHE, t->label);
    if (!(t->cm = rdma_create_event_channel()))
        return sys_fail(t, "rdma_create_event_channel");
    /* The device's event queue is read without blocking in progress(). */
    int fl = fcntl(t->dev.ctx->async_fd, F_GETFL);
    if (set_flags(t->cm->fd) != 0 || fl < 0 ||
        fcntl(t->dev.ctx->async_fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return sys_fail(t, "making RDMA event channels nonblocking");
    return CHORUS_SUCCESS;
}

static chorus_result_t listen_and_card(struct setup_state *st, const struct chorus_tunables *tun)
{
    struct rdma_transport *t = st->t;
    struct rdma_card *c = &st->mine;
    char ip[INET6_ADDRSTRLEN];
    ip_str(&t->dev.addr, ip, sizeof ip);
    if (rdma_create_id(t->cm, &t->listen_id, NULL, RDMA_PS_TCP) != 0)
        return sys_fail(t, "rdma_create_id");
    struct chorus_sockaddr a = t->dev.addr;
    if (rdma_bind_addr(t->listen_id, &a.u.sa) != 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: binding rdma_cm to %s (of %s) failed: %s",
                          t->label, ip, t->dev.name, strerror(errno));
    if (t->listen_id->verbs != t->dev.ctx || t->listen_id->port_num != t->dev.port)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR,
                          "%s: address %s belongs to RDMA device %s port %d, not to the chosen "
                          "%s (two devices with one address?)",
                          t->label, ip,
                          t->listen_id->verbs ? ibv_get_device_name(t->listen_id->verbs->device)
                                              : "none",
                          (int)t->listen_id->port_num, t->dev.name);
    if (rdma_listen(t->listen_id, 128) != 0)
        return sys_fail(t, "rdma_listen");
    chorus_sockaddr_set_port(&a, ntohs(rdma_get_src_port(t->listen_id)));
    memset(c, 0, sizeof *c); /* padding travels too: keep it defined */
    c->magic = RDMA_CARD_MAGIC;
    c->version = RDMA_VERSION;
    long nqp = tun->RDMA_QPS_PER_PEER;
    c->nqp = (uint32_t)(nqp < 1 ? 1 : nqp > RDMA_MAX_QPS ? RDMA_MAX_QPS : nqp);
    size_t chunk = tun->RDMA_CHUNK, max = RDMA_MAX_CHUNK;
    if (t->dev.max_msg_sz && t->dev.max_msg_sz < max)
        max = t->dev.max_msg_sz;
    c->chunk = (uint32_t)(chunk < RDMA_MIN_CHUNK ? RDMA_MIN_CHUNK : chunk > max ? max : chunk);
    size_t eager = tun->RDMA_EAGER;
    c->eager = (uint32_t)(eager > RDMA_MAX_EAGER ? RDMA_MAX_EAGER : eager);
    c->slots = RDMA_EAGER_SLOTS;
    snprintf(c->dev, sizeof c->dev, "%s", t->dev.name);
    c->addr = a;
    return chorus_random_bytes(c->token, sizeof c->token);
}

static int card_ok(const struct rdma_card *c)
{
    struct chorus_sockaddr check;
    return c->magic == RDMA_CARD_MAGIC && c->version == RDMA_VERSION && c->nqp >= 1 &&
           c->nqp <= RDMA_MAX_QPS && c->chunk >= RDMA_MIN_CHUNK && c->chunk <= RDMA_MAX_CHUNK &&
           c->eager <= RDMA_MAX_EAGER && c->slots == RDMA_EAGER_SLOTS &&
           c->addr.len <= sizeof c->addr.u &&
           chorus_sockaddr_set(&check, &c->addr.u.sa, c->addr.len) == CHORUS_SUCCESS &&
           check.len == c->addr.len && chorus_sockaddr_port(&check) != 0 &&
           memchr(c->dev, '\0', sizeof c->dev) != NULL;
}

static chorus_result_t exchange_cards(struct setup_state *st)
{
    const struct transport_setup *setup = st->setup;
    struct rdma_transport *t = st->t;
    st->cards = calloc((size_t)t->nranks, sizeof *st->cards);
    if (!st->cards)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory for %d RDMA setup cards",
                          t->label, t->nranks);
    CHORUS_CHECK(setup->allgather(setup->allgather_ctx, &st->mine, st->cards, sizeof st->mine));
    for (int q = 0; q < t->nranks; q++) {
        char ip[INET6_ADDRSTRLEN];
        int ok = card_ok(&st->cards[q]);
        if (ok)
            snprintf(t->names[q], RDMA_NAME_BYTES, "rank %d (%s)", q,
                     ip_str(&st->cards[q].addr, ip, sizeof ip));
        else
            snprintf(t->names[q], RDMA_NAME_BYTES, "rank %d", q);
        if (!ok && needed(setup, q))
            return CHORUS_ERR(CHORUS_INVALID_USAGE,
                              "%s: rank %d published an invalid RDMA setup card (a different "
                              "Chorus build or architecture?)",
                              t->label, q);
    }
    return CHORUS_SUCCESS;
}

/* ---- peers, buffers, completion queue ------------------------------------------------- */

static chorus_result_t add_peers(struct setup_state *st)
{
    struct rdma_transport *t = st->t;
    for (int q = 0; q < t->nranks; q++) {
        if (!needed(st->setup, q))
            continue;
        const struct rdma_card *c = &st->cards[q];
        struct rdma_peer *p = calloc(1, sizeof *p);
        int nqp = (int)(c->nqp < st->mine.nqp ? c->nqp : st->mine.nqp);
        if (p)
            p->conns = calloc((size_t)nqp, sizeof *p->conns);
        if (!p || !p->conns) {
            free(p);
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory for the RDMA state of %s",
                              t->label, t->names[q]);
        }
        t->peers[q] = p;
        p->rank = q;
        p->nqp = nqp;
        p->chunk = c->chunk < st->mine.chunk ? c->chunk : st->mine.chunk;
        p->eager = c->eager < st->mine.eager ? c->eager : st->mine.eager;
        p->rslot_bytes = slot_bytes_of(c->eager);
        for (int i = 0; i < nqp; i++) {
            struct rdma_conn *cn = &p->conns[i];
            cn->peer = p;
            cn->index = i;
            cn->active = q > t->rank;
            cn->rx_next = cn->tx_next = (uint64_t)i;
            cn->last_event = "no connection request yet";
            cn->sq = calloc((size_t)t->send_depth, sizeof *cn->sq);
            if (!cn->sq)
                return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", t->label);
        }
        st->left += nqp;
    }
    return CHORUS_SUCCESS;
}

static void *alloc_pages(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, bytes ? bytes : 1) != 0)
        return NULL;
    memset(p, 0, bytes);
    return p;
}

/* One registered area for the control and bounce buffers of every peer,
 * one for the eager rings peers write into (only that one allows remote
 * writes). */
static chorus_result_t make_buffers(struct setup_state *st)
{
    struct rdma_transport *t = st->t;
    size_t per_conn = ((size_t)t->rq_depth + (size_t)t->send_depth) * RDMA_CTRL_BYTES;
    size_t ring = (size_t)t->slots * t->slot_bytes;
    size_t local = RDMA_CTRL_BYTES, rings = 0;
    for (int q = 0; q < t->nranks; q++)
        if (t->peers[q]) {
            local += (size_t)t->peers[q]->nqp * per_conn + ring;
            rings += ring;
        }
    t->local_mem = alloc_pages(local);
    t->ring_mem = alloc_pages(rings);
    if (!t->local_mem || !t->ring_mem)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory for %zu bytes of RDMA buffers",
                          t->label, local + rings);
    t->local_bytes = local;
    t->ring_bytes = rings;
    t->local_mr = ibv_reg_mr(t->pd, t->local_mem, local, IBV_ACCESS_LOCAL_WRITE);
    if (!t->local_mr)
        return sys_fail(t, "registering the RDMA control buffers");
    t->ring_mr = ibv_reg_mr(t->pd, t->ring_mem, rings ? rings : 1,
                            IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    if (!t->ring_mr)
        return sys_fail(t, "registering the RDMA eager rings");
    t->fail_msg = (struct rdma_ctrl *)t->local_mem;
    uint8_t *lp = t->local_mem + RDMA_CTRL_BYTES, *rp = t->ring_mem;
    for (int q = 0; q < t->nranks; q++) {
        struct rdma_peer *p = t->peers[q];
        if (!p)
            continue;
        for (int i = 0; i < p->nqp; i++) {
            p->conns[i].rbufs = lp;
            lp += (size_t)t->rq_depth * RDMA_CTRL_BYTES;
            p->conns[i].sbufs = lp;
            lp += (size_t)t->send_depth * RDMA_CTRL_BYTES;
        }
        p->bounce = lp;
        lp += ring;
        p->ring = rp;
        rp += ring;
    }
    return CHORUS_SUCCESS;
}

static chorus_result_t make_cq(struct setup_state *st)
{
    struct rdma_transport *t = st->t;
    struct ibv_device_attr da;
    if (ibv_query_device(t->dev.ctx, &da) != 0)
        return sys_fail(t, "ibv_query_device");
    if (da.max_qp_wr < t->send_depth + 2 || da.max_qp_wr < t->rq_depth)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR,
                          "%s: RDMA device %s allows %d work requests per queue, Chorus needs %d",
                          t->label, t->dev.name, da.max_qp_wr, t->send_depth + 2);
    long cqe = 16;
    for (int q = 0; q < t->nranks; q++)
        if (t->peers[q])
            cqe += (long)t->peers[q]->nqp * (t->rq_depth + t->send_depth + 2);
    if (cqe > da.max_cqe)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR,
                          "%s: %ld completion queue entries needed for %d peers, RDMA device %s "
                          "allows %d (fewer CHORUS_RDMA_QPS_PER_PEER?)",
                          t->label, cqe, t->nranks - 1, t->dev.name, da.max_cqe);
    if (!(t->comp = ibv_create_comp_channel(t->dev.ctx)))
        return sys_fail(t, "ibv_create_comp_channel");
    if (set_flags(t->comp->fd) != 0)
        return sys_fail(t, "making the completion channel nonblocking");
    if (!(t->cq = ibv_create_cq(t->dev.ctx, (int)cqe, NULL, t->comp, 0)))
        return sys_fail(t, "ibv_create_cq");
    t->cq_size = (int)cqe;
    return CHORUS_SUCCESS;
}

/* ---- queue pairs -------------------------------------------------------------------------- */

static chorus_result_t create_qp(struct setup_state *st, struct rdma_conn *c,
                                 struct rdma_cm_id *id)
{
    struct rdma_transport *t = st->t;
    const char *who = t->names[c->peer->rank];
    if (id->verbs != t->dev.ctx)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR,
                          "%s: the RDMA connection with %s goes through device %s, not the "
                          "chosen %s (check the routes, or CHORUS_RDMA_HCA)",
                          t->label, who,
                          id->verbs ? ibv_get_device_name(id->verbs->device) : "none",
                          t->dev.name);
    struct rdma_qph *h = calloc(1, sizeof *h);
    if (!h)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", t->label);
    h->conn = c;
    h->next = t->qphs;
    t->qphs = h;
    c->qph = h;
    static const int inline_tries[] = {256, 64, 0};
    int made = -1;
    struct ibv_qp_init_attr a;
    for (size_t i = 0; made != 0 && i < sizeof inline_tries / sizeof inline_tries[0]; i++) {
        memset(&a, 0, sizeof a);
        a.qp_context = c;
        a.send_cq = a.recv_cq = t->cq;
        a.qp_type = IBV_QPT_RC;
        a.cap.max_send_wr = (uint32_t)t->send_depth + 2; /* + the FAIL notice */
        a.cap.max_recv_wr = (uint32_t)t->rq_depth;
        a.cap.max_send_sge = a.cap.max_recv_sge = 1;
        a.cap.max_inline_data = (uint32_t)inline_tries[i];
        made = rdma_create_qp(id, t->pd, &a);
    }
    if (made != 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: creating an RDMA queue pair for %s failed: %s",
                          t->label, who, strerror(errno));
    c->qp = id->qp;
    c->max_inline = (int)a.cap.max_inline_data;
    c->credits = RDMA_RECV_CREDITS;
    for (int k = 0; k < t->rq_depth; k++) {
        int err = rdma_post_recv(t, c, (uint64_t)k);
        if (err)
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: posting receives for %s failed: %s",
                              t->label, who, strerror(err));
    }
    return CHORUS_SUCCESS;
}

static void drop_qp(struct rdma_conn *c)
{
    if (c->id) {
        if (c->qp)
            rdma_destroy_qp(c->id);
        rdma_destroy_id(c->id);
    }
    c->id = NULL;
    c->qp = NULL;
    if (c->qph)
        c->qph->dead = 1;
    c->qph = NULL;
}

static void fill_hello(struct setup_state *st, struct rdma_conn *c, struct rdma_hello *h)
{
    struct rdma_peer *p = c->peer;
    memset(h, 0, sizeof *h);
    h->magic = RDMA_HELLO_MAGIC;
    h->version = RDMA_VERSION;
    h->qp = (uint16_t)c->index;
    h->from = (uint32_t)st->t->rank;
    h->to = (uint32_t)p->rank;
    if (c->active)
        memcpy(h->token, st->cards[p->rank].token, sizeof h->token);
    h->ring_addr = (uintptr_t)p->ring;
    h->ring_rkey = st->t->ring_mr->rkey;
}

static void conn_param(struct rdma_conn_param *cp, const struct rdma_hello *h)
{
    memset(cp, 0, sizeof *cp);
    cp->private_data = h;
    cp->private_data_len = sizeof *h;
    cp->responder_resources = 1;
    cp->initiator_depth = 1;
    cp->retry_count = 7;
    cp->rnr_retry_count = 7; /* credits prevent RNR; never fail on one */
}

static int resolve_ms(const struct setup_state *st)
{
    if (st->deadline < 0)
        return RESOLVE_MS;
    int64_t left = st->deadline - chorus_socket_now_ms();
    return left <= 0 ? 1 : left < RESOLVE_MS ? (int)left : RESOLVE_MS;
}

static chorus_result_t start_connect(struct setup_state *st, struct rdma_conn *c)
{
    struct rdma_transport *t = st->t;
    struct chorus_sockaddr src = t->dev.addr, dst = st->cards[c->peer->rank].addr;
    c->retry_at = 0;
    c->attempts++;
    if (rdma_create_id(t->cm, &c->id, c, RDMA_PS_TCP) != 0)
        return sys_fail(t, "rdma_create_id");
    if (rdma_resolve_addr(c->id, &src.u.sa, &dst.u.sa, resolve_ms(st)) != 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: resolving the RDMA address of %s failed: %s",
                          t->label, t->names[c->peer->rank], strerror(errno));
    return CHORUS_SUCCESS;
}

/* A connect that failed for a reason that may pass: try again shortly. */
static void retry_later(struct setup_state *st, struct rdma_conn *c, const char *why)
{
    LOG_DEBUG("rdma", "%s: RDMA connect %d to %s: %s; retrying", st->t->label, c->index,
              st->t->names[c->peer->rank], why);
    c->last_event = why;
    drop_qp(c);
    int backoff = 50 * c->attempts;
    c->retry_at = chorus_socket_now_ms() + (backoff > 1000 ? 1000 : backoff);
}

/* ---- events ------------------------------------------------------------------------------ */

static enum reject_reason judge(struct setup_state *st, const struct setup_event *e,
                                struct rdma_conn **out)
{
    struct rdma_transport *t = st->t;
    struct rdma_hello h;
    memset(&h, 0, sizeof h);
    memcpy(&h, e->pdata, e->plen < sizeof h ? e->plen : sizeof h);
    if (e->plen < sizeof h || h.magic != RDMA_HELLO_MAGIC || h.version != RDMA_VERSION)
        return REJ_VERSION;
    if (h.to != (uint32_t)t->rank)
        return REJ_NOT_MINE;
    if (h.from >= (uint32_t)t->nranks || (int)h.from >= t->rank || !t->peers[h.from])
        return REJ_NOT_EXPECTED;
    /* Not a secret compare: the token only proves the sender saw the setup. */
    if (memcmp(h.token, st->mine.token, sizeof h.token) != 0)
        return REJ_TOKEN;
    struct rdma_peer *p = t->peers[h.from];
    if (h.qp >= p->nqp)
        return REJ_QP_INDEX;
    if (p->conns[h.qp].id)
        return REJ_DUPLICATE;
    if (e->id->verbs != t->dev.ctx)
        return REJ_DEVICE;
    p->ring_raddr = h.ring_addr;
    p->ring_rkey = h.ring_rkey;
    p->have_ring = 1;
    *out = &p->conns[h.qp];
    return 0;
}

static chorus_result_t on_request(struct setup_state *st, const struct setup_event *e)
{
    struct rdma_transport *t = st->t;
    struct rdma_conn *c = NULL;
    enum reject_reason why = judge(st, e, &c);
    if (why) {
        struct rdma_reject rj = {RDMA_REJECT_MAGIC, (uint32_t)why};
        LOG_WARN("rdma", "%s: refused an RDMA connection: %s", t->label, reject_text(why));
        rdma_reject(e->id, &rj, sizeof rj);
        rdma_destroy_id(e->id);
        return CHORUS_SUCCESS;
    }
    c->id = e->id;
    e->id->context = c;
    c->last_event = "connection request accepted";
    CHORUS_CHECK(create_qp(st, c, e->id));
    struct rdma_hello h;
    struct rdma_conn_param cp;
    fill_hello(st, c, &h);
    conn_param(&cp, &h);
    if (rdma_accept(e->id, &cp) != 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: accepting the RDMA connection of %s failed: %s",
                          t->label, t->names[c->peer->rank], strerror(errno));
    return CHORUS_SUCCESS;
}

static chorus_result_t on_established(struct setup_state *st, struct rdma_conn *c,
                                      const struct setup_event *e)
{
    struct rdma_transport *t = st->t;
    struct rdma_peer *p = c->peer;
    if (c->active) {
        struct rdma_hello h;
        memset(&h, 0, sizeof h);
        memcpy(&h, e->pdata, e->plen < sizeof h ? e->plen : sizeof h);
        if (e->plen < sizeof h || h.magic != RDMA_HELLO_MAGIC || h.version != RDMA_VERSION ||
            h.from != (uint32_t)p->rank || h.to != (uint32_t)t->rank || h.qp != c->index)
            return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                              "%s: %s accepted RDMA connection %d with a bad reply", t->label,
                              t->names[p->rank], c->index);
        p->ring_raddr = h.ring_addr;
        p->ring_rkey = h.ring_rkey;
        p->have_ring = 1;
    }
    c->established = 1;
    c->last_event = "established";
    st->left--;
    return CHORUS_SUCCESS;
}

static chorus_result_t on_event(struct setup_state *st, const struct setup_event *e)
{
    struct rdma_transport *t = st->t;
    if (e->type == RDMA_CM_EVENT_CONNECT_REQUEST)
        return on_request(st, e);
    if (e->type == RDMA_CM_EVENT_DEVICE_REMOVAL)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: RDMA device %s was removed", t->label,
                          t->dev.name);
    struct rdma_conn *c = e->id ? (struct rdma_conn *)e->id->context : NULL;
    if (!c || c->id != e->id)
        return CHORUS_SUCCESS; /* the listener's, or a replaced id's */
    const char *who = t->names[c->peer->rank];
    struct rdma_reject rj;
    memset(&rj, 0, sizeof rj);
    memcpy(&rj, e->pdata, e->plen < sizeof rj ? e->plen : sizeof rj);
    if (e->type == RDMA_CM_EVENT_REJECTED && c->active && e->plen >= sizeof rj &&
        rj.magic == RDMA_REJECT_MAGIC) /* else rejected by the fabric: retried */
        return CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: %s refused RDMA connection %d: %s",
                          t->label, who, c->index, reject_text(rj.reason));
    switch (e->type) {
    case RDMA_CM_EVENT_ADDR_RESOLVED:
        if (rdma_resolve_route(c->id, resolve_ms(st)) != 0)
            retry_later(st, c, "route resolution refused");
        return CHORUS_SUCCESS;
    case RDMA_CM_EVENT_ROUTE_RESOLVED: {
        CHORUS_CHECK(create_qp(st, c, c->id));
        struct rdma_hello h;
        struct rdma_conn_param cp;
        fill_hello(st, c, &h);
        conn_param(&cp, &h);
        if (rdma_connect(c->id, &cp) != 0)
            retry_later(st, c, "rdma_connect failed");
        return CHORUS_SUCCESS;
    }
    case RDMA_CM_EVENT_ESTABLISHED:
        return on_established(st, c, e);
    case RDMA_CM_EVENT_REJECTED:
    case RDMA_CM_EVENT_ADDR_ERROR:
    case RDMA_CM_EVENT_ROUTE_ERROR:
    case RDMA_CM_EVENT_UNREACHABLE:
    case RDMA_CM_EVENT_CONNECT_ERROR:
        if (c->established)
            return CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: RDMA connection to %s failed during "
                              "setup (%s)", t->label, who, rdma_event_str(e->type));
        if (c->active) {
            retry_later(st, c, rdma_event_str(e->type));
        } else {
            /* The connector gave up on this try and will come again. */
            c->last_event = rdma_event_str(e->type);
            drop_qp(c);
        }
        return CHORUS_SUCCESS;
    case RDMA_CM_EVENT_DISCONNECTED:
        return CHORUS_ERR(CHORUS_REMOTE_ERROR,
                          "%s: RDMA connection to %s closed during setup (rank %d died or gave "
                          "up?)",
                          t->label, who, c->peer->rank);
    default:
        return CHORUS_SUCCESS;
    }
}

static chorus_result_t drain_events(struct setup_state *st)
{
    struct rdma_cm_event *ev;
    while (rdma_get_cm_event(st->t->cm, &ev) == 0) {
        struct setup_event e;
        e.type = ev->event;
        e.id = ev->id;
        e.listen_id = ev->listen_id;
        e.status = ev->status;
        e.plen = 0;
        if (ev->param.conn.private_data && ev->param.conn.private_data_len) {
            e.plen = ev->param.conn.private_data_len; /* a uint8_t: fits */
            memcpy(e.pdata, ev->param.conn.private_data, e.plen);
        }
        rdma_ack_cm_event(ev); /* before acting: an id may be destroyed */
        CHORUS_CHECK(on_event(st, &e));
    }
    return CHORUS_SUCCESS;
}

static chorus_result_t missing_error(struct setup_state *st)
{
    struct rdma_transport *t = st->t;
    char who[512];
    size_t len = 0;
    who[0] = '\0';
    for (int q = 0; q < t->nranks && len < sizeof who - 120; q++) {
        struct rdma_peer *p = t->peers[q];
        int miss = 0;
        const char *last = "";
        for (int i = 0; p && i < p->nqp; i++)
            if (!p->conns[i].established) {
                miss++;
                last = p->conns[i].last_event;
            }
        if (miss) {
            int w = snprintf(who + len, sizeof who - len,
                             "%s%s (%d of %d queue pairs missing; last: %s)", len ? ", " : "",
                             t->names[q], miss, p->nqp, last);
            if (w > 0)
                len += (size_t)w;
        }
    }
    return CHORUS_ERR(CHORUS_TIMEOUT,
                      "%s: timed out after %d ms waiting for RDMA connections with %s", t->label,
                      st->setup->timeout_ms, who);
}

static chorus_result_t connect_loop(struct setup_state *st)
{
    struct rdma_transport *t = st->t;
    for (int q = t->rank + 1; q < t->nranks; q++)
        for (int i = 0; t->peers[q] && i < t->peers[q]->nqp; i++)
            CHORUS_CHECK(start_connect(st, &t->peers[q]->conns[i]));
    while (st->left > 0) {
        CHORUS_CHECK(check_abort(st));
        int64_t now = chorus_socket_now_ms();
        if (st->deadline >= 0 && now >= st->deadline)
            return missing_error(st);
        int64_t wait = ABORT_POLL_MS;
        if (st->deadline >= 0 && st->deadline - now < wait)
            wait = st->deadline - now;
        for (int q = t->rank + 1; q < t->nranks; q++)
            for (int i = 0; t->peers[q] && i < t->peers[q]->nqp; i++) {
                struct rdma_conn *c = &t->peers[q]->conns[i];
                if (!c->retry_at)
                    continue;
                if (now >= c->retry_at)
                    CHORUS_CHECK(start_connect(st, c));
                else if (c->retry_at - now < wait)
                    wait = c->retry_at - now;
            }
        struct pollfd pf = {t->cm->fd, POLLIN, 0};
        if (poll(&pf, 1, (int)(wait > 0 ? wait : 0)) < 0 && errno != EINTR)
            return sys_fail(t, "poll in RDMA setup");
        CHORUS_CHECK(drain_events(st));
    }
    return CHORUS_SUCCESS;
}

static chorus_result_t run_setup(struct setup_state *st)
{
    struct rdma_transport *t = st->t;
    const struct chorus_tunables *tun;
    CHORUS_CHECK(chorus_tunables_load(&tun));
    st->deadline = chorus_socket_deadline(st->setup->timeout_ms);
    t->rq_depth = RDMA_RECV_CREDITS + 1; /* + the FAIL notice's */
    t->send_depth = RDMA_SEND_DEPTH;
    t->slots = RDMA_EAGER_SLOTS;
    CHORUS_CHECK(check_abort(st));
    CHORUS_CHECK(open_device(st, tun));
    CHORUS_CHECK(listen_and_card(st, tun));
    t->slot_bytes = slot_bytes_of(st->mine.eager);
    CHORUS_CHECK(exchange_cards(st));
    CHORUS_CHECK(add_peers(st));
    CHORUS_CHECK(make_buffers(st));
    CHORUS_CHECK(make_cq(st));
    CHORUS_CHECK(connect_loop(st));
    rdma_destroy_id(t->listen_id); /* every expected connection came */
    t->listen_id = NULL;
    char ip[INET6_ADDRSTRLEN];
    int npeers = 0;
    for (int q = 0; q < t->nranks; q++)
        npeers += t->peers[q] != NULL;
    LOG_INFO("rdma",
             "%s: connected to %d peers over %s (%s, GID %d, %s), %u queue pairs per peer, "
             "%u-byte pieces, eager up to %u bytes",
             t->label, npeers, t->dev.name,
             ip_str(&t->dev.addr, ip, sizeof ip), t->dev.gid_index,
             t->dev.link_layer == IBV_LINK_LAYER_INFINIBAND ? "InfiniBand"
                                                             : rdma_gid_type_str(t->dev.gid_type),
             st->mine.nqp, st->mine.chunk, st->mine.eager);
    return CHORUS_SUCCESS;
}

chorus_result_t rdma_connect_all(struct rdma_transport *t, const struct transport_setup *setup)
{
    struct setup_state *st = calloc(1, sizeof *st);
    if (!st)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory for RDMA setup", t->label);
    st->t = t;
    st->setup = setup;
    chorus_result_t res = run_setup(st);
    free(st->cards);
    free(st);
    return res;
}
