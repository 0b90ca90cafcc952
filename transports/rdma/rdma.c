/* rdma.c - the RDMA transport's ops: completions, connection events,
 * asynchronous device events, errors and teardown (the protocol itself is
 * in rdma_xfer.c, the connection setup in rdma_conn.c; the layout is
 * described in rdma_impl.h).
 *
 * Everything happens inside progress(): it polls the one completion queue
 * of the transport, runs the peers that have work they may be able to do
 * (the ready list), and reads the rdma_cm and device event channels. It
 * returns once a transfer completed or a receive's prefix grew (so the
 * executor reduces pieces as they land); with time left and nothing done it
 * arms the completion channel and sleeps in poll() on the three
 * descriptors.
 *
 * A broken connection (a failed work completion, a QP error event, an
 * rdma_cm disconnect) breaks the transport only if a transfer with that
 * peer is pending or posted later: a peer that finished may close while
 * this rank still works with the others.
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
#include "wait.h"

#define WC_BATCH 32
#define CQ_ACK_BATCH 64

static struct rdma_transport *rdma_of(struct transport *base)
{
    return (struct rdma_transport *)base;
}

/* ---- errors: the first one breaks the transport for good ------------------------ */

chorus_result_t rdma_breaks(struct rdma_transport *t, chorus_result_t res, int blame,
                            chorus_result_t blame_code)
{
    t->broken = res;
    chorus_error_save(t->broken_text, sizeof t->broken_text);
    t->base.blame = blame;
    t->base.blame_code = blame_code;
    return res;
}

static chorus_result_t still_broken(const struct rdma_transport *t)
{
    chorus_error_restore(t->broken_text);
    return t->broken;
}

static int pending(const struct rdma_peer *p)
{
    return p->sends.pending > 0 || p->recvs.pending > 0;
}

static chorus_result_t break_lost(struct rdma_transport *t, struct rdma_peer *p)
{
    return rdma_breaks(t,
                       CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: RDMA connection to %s %s", t->label,
                                  t->names[p->rank], p->lost_why),
                       p->rank, CHORUS_REMOTE_ERROR);
}

/* p's connection broke (why completes "RDMA connection to rank 3 (..) ").
 * A flush only echoes an earlier failure, so a real reason replaces it. */
static chorus_result_t peer_lost(struct rdma_transport *t, struct rdma_peer *p, int flush,
                                 const char *why)
{
    if (!p->lost || (p->lost == 1 && !flush)) {
        p->lost = flush ? 1 : 2;
        snprintf(p->lost_why, sizeof p->lost_why, "%s", why);
    }
    if (pending(p))
        return break_lost(t, p);
    LOG_INFO("rdma", "%s: RDMA connection to %s %s (no transfer with it was pending)",
             t->label, t->names[p->rank], p->lost_why);
    return CHORUS_SUCCESS;
}

static chorus_result_t closed(struct rdma_transport *t, struct rdma_peer *p)
{
    char why[120];
    snprintf(why, sizeof why, "closed (rank %d died or gave up?)", p->rank);
    return peer_lost(t, p, 1, why);
}

/* A FAIL notice from p: blames the rank it names (p itself if it names
 * none) with the code it carries. */
static chorus_result_t peer_failed(struct rdma_transport *t, struct rdma_peer *p,
                                   const struct rdma_ctrl *m)
{
    int64_t blame = (int64_t)m->seq;
    int known = m->bytes > 0 && m->bytes < CHORUS_NUM_RESULTS;
    chorus_result_t code = known ? (chorus_result_t)m->bytes : CHORUS_REMOTE_ERROR;
    const char *why = known ? chorus_get_error_string(code) : "unknown error";
    const char *reporter = t->names[p->rank];
    chorus_result_t res;
    if (blame == t->rank) {
        /* It stopped waiting for us. If we wait for someone else, that
         * wait's own timeout names the real culprit; only transfers with
         * the reporter itself are lost from here on. */
        p->gave_up = 1;
        p->gave_up_code = code;
        if (!pending(p)) {
            LOG_INFO("rdma", "%s: %s gave up waiting for this rank (%s)", t->label, reporter,
                     why);
            return CHORUS_SUCCESS;
        }
        res = CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: %s gave up waiting for this rank (%s)",
                         t->label, reporter, why);
    } else if (blame >= 0 && blame < t->nranks) {
        res = CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: rank %d failed (%s), reported by %s",
                         t->label, (int)blame, why, reporter);
    } else {
        res = CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: %s gave up (%s)", t->label, reporter, why);
    }
    if (blame < 0 || blame >= t->nranks || blame == t->rank)
        blame = p->rank;
    return rdma_breaks(t, res, (int)blame, code);
}

chorus_result_t rdma_on_fail(struct rdma_transport *t, struct rdma_peer *p,
                             const struct rdma_ctrl *m)
{
    return peer_failed(t, p, m);
}

/* ---- the ready list ---------------------------------------------------------------- */

void rdma_make_ready(struct rdma_transport *t, struct rdma_peer *p)
{
    if (p->on_ready)
        return;
    p->on_ready = 1;
    p->ready_next = t->ready;
    t->ready = p;
}

static chorus_result_t run_ready(struct rdma_transport *t)
{
    struct rdma_peer *p;
    while ((p = t->ready)) {
        t->ready = p->ready_next;
        p->on_ready = 0;
        if (!p->lost)
            CHORUS_CHECK(rdma_service(t, p));
    }
    return CHORUS_SUCCESS;
}

/* ---- completions ------------------------------------------------------------------- */

int rdma_post_recv(struct rdma_transport *t, struct rdma_conn *c, uint64_t k)
{
    struct ibv_sge sge = {(uintptr_t)(c->rbufs + k * RDMA_CTRL_BYTES), RDMA_CTRL_BYTES,
                          t->local_mr->lkey};
    struct ibv_recv_wr wr, *bad = NULL;
    memset(&wr, 0, sizeof wr);
    wr.wr_id = (uintptr_t)c->qph | RDMA_WR_RECV;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    return ibv_post_recv(c->qp, &wr, &bad);
}

static chorus_result_t corrupt(struct rdma_transport *t, struct rdma_peer *p, const char *what)
{
    return rdma_breaks(t,
                       CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: %s sent %s over RDMA", t->label,
                                  t->names[p->rank], what),
                       p->rank, CHORUS_REMOTE_ERROR);
}

static chorus_result_t on_recv(struct rdma_transport *t, struct rdma_conn *c,
                               const struct ibv_wc *wc)
{
    struct rdma_peer *p = c->peer;
    uint64_t k = c->rq_done % (uint64_t)t->rq_depth;
    c->rq_done++;
    struct rdma_ctrl m;
    uint32_t imm = 0;
    int is_ctrl = wc->opcode == IBV_WC_RECV;
    if (is_ctrl) {
        if (wc->byte_len < sizeof m)
            return corrupt(t, p, "a short control message");
        memcpy(&m, c->rbufs + k * RDMA_CTRL_BYTES, sizeof m);
    } else if (wc->opcode == IBV_WC_RECV_RDMA_WITH_IMM) {
        imm = ntohl(wc->imm_data);
    } else {
        return corrupt(t, p, "an unexpected kind of message");
    }
    /* Repost at once (the buffer was copied out): credits count RECVs. */
    int err = rdma_post_recv(t, c, k);
    if (err && !p->lost)
        return rdma_breaks(t,
                           CHORUS_ERR(CHORUS_SYSTEM_ERROR,
                                      "%s: reposting a receive for %s failed: %s", t->label,
                                      t->names[p->rank], strerror(err)),
                           -1, CHORUS_SYSTEM_ERROR);
    c->owed++;
    rdma_make_ready(t, p);
    if (is_ctrl)
        return rdma_on_ctrl(t, c, &m);
    if (imm & RDMA_IMM_EAGER) {
        if (c->index != 0)
            return corrupt(t, p, "eager data on a data-only queue pair");
        return rdma_on_eager(t, p, imm & ~RDMA_IMM_EAGER);
    }
    return rdma_on_piece(t, c, imm);
}

static chorus_result_t wc_failed(struct rdma_transport *t, struct rdma_conn *c,
                                 const struct ibv_wc *wc)
{
    struct rdma_peer *p = c->peer;
    if (wc->status == IBV_WC_WR_FLUSH_ERR)
        return closed(t, p);
    char why[160];
    snprintf(why, sizeof why, "failed: work completion status %d (%s)%s", (int)wc->status,
             ibv_wc_status_str(wc->status),
             wc->status == IBV_WC_RETRY_EXC_ERR || wc->status == IBV_WC_RNR_RETRY_EXC_ERR
                 ? " (the peer process or its node is gone?)"
                 : "");
    return peer_lost(t, p, 0, why);
}

static chorus_result_t on_wc(struct rdma_transport *t, const struct ibv_wc *wc, int *work)
{
    struct rdma_qph *h = (struct rdma_qph *)(uintptr_t)(wc->wr_id & ~(uint64_t)RDMA_WR_KIND_MASK);
    int kind = (int)(wc->wr_id & RDMA_WR_KIND_MASK);
    if (kind == RDMA_WR_FAIL || h->dead)
        return CHORUS_SUCCESS; /* our FAIL notice, or a QP replaced during setup */
    struct rdma_conn *c = h->conn;
    (*work)++;
    if (wc->status != IBV_WC_SUCCESS) {
        if (kind == RDMA_WR_RECV)
            c->rq_done++;
        else
            c->sq_head++;
        return wc_failed(t, c, wc);
    }
    if (kind == RDMA_WR_RECV)
        return on_recv(t, c, wc);
    int rec = c->sq[c->sq_head % (uint64_t)t->send_depth].kind;
    c->sq_head++;
    rdma_make_ready(t, c->peer); /* a send slot (and maybe a bounce slot) is free */
    return rdma_on_send_done(t, c, rec);
}

/* Handles every completion waiting; *work counts them. */
static chorus_result_t poll_cq(struct rdma_transport *t, int *work)
{
    struct ibv_wc wc[WC_BATCH];
    for (;;) {
        int n = ibv_poll_cq(t->cq, WC_BATCH, wc);
        if (n < 0)
            return rdma_breaks(t,
                               CHORUS_ERR(CHORUS_SYSTEM_ERROR,
                                          "%s: polling the RDMA completion queue failed",
                                          t->label),
                               -1, CHORUS_SYSTEM_ERROR);
        for (int i = 0; i < n; i++)
            CHORUS_CHECK(on_wc(t, &wc[i], work));
        if (n < WC_BATCH)
            return CHORUS_SUCCESS;
    }
}

/* ---- rdma_cm and device events ------------------------------------------------------ */

static chorus_result_t poll_cm(struct rdma_transport *t)
{
    struct rdma_cm_event *ev;
    while (rdma_get_cm_event(t->cm, &ev) == 0) {
        enum rdma_cm_event_type type = ev->event;
        struct rdma_cm_id *id = ev->id;
        rdma_ack_cm_event(ev);
        struct rdma_conn *c = id ? (struct rdma_conn *)id->context : NULL;
        if (type == RDMA_CM_EVENT_DISCONNECTED && c) {
            /* A FAIL notice the peer sent before leaving explains more. */
            int work = 0;
            CHORUS_CHECK(poll_cq(t, &work));
            CHORUS_CHECK(closed(t, c->peer));
        } else if (type == RDMA_CM_EVENT_DEVICE_REMOVAL) {
            return rdma_breaks(t,
                               CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: RDMA device %s was removed",
                                          t->label, t->dev.name),
                               -1, CHORUS_SYSTEM_ERROR);
        } else {
            LOG_DEBUG("rdma", "%s: rdma_cm event %s for %s ignored", t->label,
                      rdma_event_str(type), c ? t->names[c->peer->rank] : "no connection");
        }
    }
    return CHORUS_SUCCESS;
}

static struct rdma_conn *conn_of_qp(struct rdma_transport *t, const struct ibv_qp *qp)
{
    for (int q = 0; q < t->nranks; q++) {
        struct rdma_peer *p = t->peers[q];
        for (int i = 0; p && i < p->nqp; i++)
            if (p->conns[i].qp == qp)
                return &p->conns[i];
    }
    return NULL;
}

/* The device's event queue is shared by every transport of the process on
 * it: an event for another transport's QP is only logged here (its own
 * failed completions still report it there). */
static chorus_result_t poll_async(struct rdma_transport *t)
{
    struct ibv_async_event ev;
    while (ibv_get_async_event(t->dev.ctx, &ev) == 0) {
        enum ibv_event_type type = ev.event_type;
        struct ibv_qp *qp = NULL;
        struct ibv_cq *cq = NULL;
        int port = 0;
        if (type == IBV_EVENT_QP_FATAL || type == IBV_EVENT_QP_REQ_ERR ||
            type == IBV_EVENT_QP_ACCESS_ERR)
            qp = ev.element.qp;
        else if (type == IBV_EVENT_CQ_ERR)
            cq = ev.element.cq;
        else if (type == IBV_EVENT_PORT_ERR || type == IBV_EVENT_PORT_ACTIVE)
            port = ev.element.port_num;
        ibv_ack_async_event(&ev);
        struct rdma_conn *c = qp ? conn_of_qp(t, qp) : NULL;
        if (c) {
            char why[120];
            snprintf(why, sizeof why, "failed: queue pair error (%s)", ibv_event_type_str(type));
            CHORUS_CHECK(peer_lost(t, c->peer, 0, why));
        } else if (cq && cq == t->cq) {
            return rdma_breaks(t,
                               CHORUS_ERR(CHORUS_INTERNAL_ERROR,
                                          "%s: the RDMA completion queue overflowed", t->label),
                               -1, CHORUS_INTERNAL_ERROR);
        } else if (type == IBV_EVENT_DEVICE_FATAL) {
            return rdma_breaks(t,
                               CHORUS_ERR(CHORUS_SYSTEM_ERROR,
                                          "%s: RDMA device %s reported a fatal error", t->label,
                                          t->dev.name),
                               -1, CHORUS_SYSTEM_ERROR);
        } else if (port == t->dev.port && type == IBV_EVENT_PORT_ERR) {
            LOG_WARN("rdma", "%s: RDMA port %s went down", t->label, t->dev.name);
        } else {
            LOG_DEBUG("rdma", "%s: device event %s", t->label, ibv_event_type_str(type));
        }
    }
    return CHORUS_SUCCESS;
}

/* ---- waiting ------------------------------------------------------------------------ */

static void drain_cq_events(struct rdma_transport *t)
{
    struct ibv_cq *cq;
    void *ctx;
    while (ibv_get_cq_event(t->comp, &cq, &ctx) == 0)
        t->cq_unacked++;
    if (t->cq_unacked >= CQ_ACK_BATCH) {
        ibv_ack_cq_events(t->cq, t->cq_unacked);
        t->cq_unacked = 0;
    }
}

/* Sleeps until a completion or an event may be there, or ms passed. */
static chorus_result_t wait_events(struct rdma_transport *t, int ms)
{
    int err = ibv_req_notify_cq(t->cq, 0);
    if (err)
        return rdma_breaks(t,
                           CHORUS_ERR(CHORUS_SYSTEM_ERROR,
                                      "%s: arming the RDMA completion channel failed: %s",
                                      t->label, strerror(err)),
                           -1, CHORUS_SYSTEM_ERROR);
    /* Completions that came before the arming raise no event: look again. */
    int work = 0;
    CHORUS_CHECK(poll_cq(t, &work));
    if (work || t->ready)
        return CHORUS_SUCCESS;
    struct pollfd pf[3] = {{t->comp->fd, POLLIN, 0},
                           {t->cm->fd, POLLIN, 0},
                           {t->dev.ctx->async_fd, POLLIN, 0}};
    if (poll(pf, 3, ms) < 0 && errno != EINTR)
        return rdma_breaks(t,
                           CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: poll failed: %s", t->label,
                                      strerror(errno)),
                           -1, CHORUS_SYSTEM_ERROR);
    return CHORUS_SUCCESS;
}

/* ---- the ops ------------------------------------------------------------------------- */

static chorus_result_t rdma_progress(struct transport *base, int wait_ms)
{
    struct rdma_transport *t = rdma_of(base);
    if (t->broken)
        return still_broken(t);
    t->completed = 0;
    t->moved = 0;
    int64_t end = chorus_now_ns() + (int64_t)(wait_ms > 0 ? wait_ms : 0) * 1000000;
    for (;;) {
        int work = 0;
        drain_cq_events(t);
        CHORUS_CHECK(poll_cq(t, &work));
        CHORUS_CHECK(run_ready(t));
        CHORUS_CHECK(poll_cm(t));
        CHORUS_CHECK(poll_async(t));
        if (t->completed || t->moved)
            return CHORUS_SUCCESS;
        int64_t left_ms = (end - chorus_now_ns() + 999999) / 1000000;
        if (left_ms <= 0)
            return CHORUS_SUCCESS;
        CHORUS_CHECK(wait_events(t, (int)left_ms));
    }
}

static chorus_result_t rdma_post(struct transport *base, struct xfer *x)
{
    struct rdma_transport *t = rdma_of(base);
    if (t->broken)
        return still_broken(t);
    if (!x)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: NULL transfer", t->label);
    if (x->peer < 0 || x->peer >= t->nranks || !t->peers[x->peer])
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: no RDMA connection to rank %d",
                          t->label, x->peer);
    if (!x->buf && x->bytes)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: NULL buffer for %zu bytes with %s",
                          t->label, x->bytes, t->names[x->peer]);
    struct rdma_peer *p = t->peers[x->peer];
    if (p->gave_up)
        return rdma_breaks(t,
                           CHORUS_ERR(CHORUS_REMOTE_ERROR,
                                      "%s: %s gave up waiting for this rank (%s) earlier",
                                      t->label, t->names[x->peer],
                                      chorus_get_error_string(p->gave_up_code)),
                           x->peer, CHORUS_REMOTE_ERROR);
    /* A peer that sent its last message and left is gone, but what it sent
     * is here: a receive of it still completes. */
    if (p->lost && !rdma_recv_arrived(p, x))
        return break_lost(t, p);
    return rdma_xfer_post(t, p, x);
}

static void rdma_fail(struct transport *base, int blame, chorus_result_t code)
{
    struct rdma_transport *t = rdma_of(base);
    /* Once: the communicator's thread and an aborting thread may both call. */
    if (atomic_exchange(&t->fail_sent, 1) || !t->fail_msg)
        return;
    struct rdma_ctrl *m = t->fail_msg;
    memset(m, 0, sizeof *m);
    m->magic = RDMA_CTRL_MAGIC;
    m->type = RDMA_CTRL_FAIL;
    m->seq = (uint64_t)(int64_t)blame;
    m->bytes = (uint64_t)code;
    /* Touches no state of progress(): an aborting thread may call this while
     * the communicator's thread is in it. The send is unsignaled (no send
     * record) and lands in the extra RECV every QP keeps beyond its credits;
     * the provider serializes posts on one QP. */
    for (int q = 0; q < t->nranks; q++) {
        struct rdma_peer *p = t->peers[q];
        if (!p || !p->conns[0].qp || !p->conns[0].established)
            continue;
        struct rdma_conn *c = &p->conns[0];
        struct ibv_sge sge = {(uintptr_t)m, sizeof *m, t->local_mr->lkey};
        struct ibv_send_wr wr, *bad = NULL;
        memset(&wr, 0, sizeof wr);
        wr.wr_id = (uintptr_t)c->qph | RDMA_WR_FAIL;
        wr.sg_list = &sge;
        wr.num_sge = 1;
        wr.opcode = IBV_WR_SEND;
        wr.send_flags = (int)sizeof *m <= c->max_inline ? IBV_SEND_INLINE : 0;
        int err = ibv_post_send(c->qp, &wr, &bad);
        if (err)
            LOG_DEBUG("rdma", "%s: could not tell %s of the failure (%s)", t->label, t->names[q],
                      strerror(err));
    }
}

static const char *rdma_peer_name(struct transport *base, int peer)
{
    struct rdma_transport *t = rdma_of(base);
    if (peer >= 0 && peer < t->nranks)
        return t->names[peer];
    snprintf(t->name_spare, sizeof t->name_spare, "rank %d", peer);
    return t->name_spare;
}

static void close_conn(struct rdma_conn *c)
{
    if (c->id) {
        if (c->qp)
            rdma_destroy_qp(c->id); /* its pending work requests vanish with it */
        rdma_destroy_id(c->id);     /* a connected id tells the peer (DREQ) */
    }
    c->id = NULL;
    c->qp = NULL;
    if (c->qph)
        c->qph->dead = 1;
}

void rdma_destroy(struct transport *base)
{
    struct rdma_transport *t = rdma_of(base);
    if (!t)
        return;
    for (int q = 0; t->peers && q < t->nranks; q++) {
        struct rdma_peer *p = t->peers[q];
        for (int i = 0; p && p->conns && i < p->nqp; i++)
            close_conn(&p->conns[i]);
    }
    if (t->listen_id)
        rdma_destroy_id(t->listen_id);
    for (int q = 0; t->peers && q < t->nranks; q++) {
        struct rdma_peer *p = t->peers[q];
        if (!p)
            continue;
        rdma_dir_free(t, &p->sends);
        rdma_dir_free(t, &p->recvs);
        for (int i = 0; p->conns && i < p->nqp; i++)
            free(p->conns[i].sq);
        free(p->conns);
        free(p);
    }
    while (t->qphs) {
        struct rdma_qph *h = t->qphs;
        t->qphs = h->next;
        free(h);
    }
    if (t->pd)
        rdma_mr_cache_destroy(&t->mrc);
    if (t->local_mr)
        ibv_dereg_mr(t->local_mr);
    if (t->ring_mr)
        ibv_dereg_mr(t->ring_mr);
    free(t->local_mem);
    free(t->ring_mem);
    if (t->cq) {
        if (t->comp)
            drain_cq_events(t);
        if (t->cq_unacked)
            ibv_ack_cq_events(t->cq, t->cq_unacked);
        if (ibv_destroy_cq(t->cq) != 0)
            LOG_WARN("rdma", "%s: destroying the completion queue failed", t->label);
    }
    if (t->comp && ibv_destroy_comp_channel(t->comp) != 0)
        LOG_WARN("rdma", "%s: destroying the completion channel failed", t->label);
    /* Fails if anything registered or created on it is left: a leak. */
    if (t->pd && ibv_dealloc_pd(t->pd) != 0)
        LOG_WARN("rdma", "%s: freeing the protection domain failed (a leak)", t->label);
    if (t->cm)
        rdma_destroy_event_channel(t->cm);
    if (t->devlist)
        rdma_free_devices(t->devlist);
    free(t->peers);
    free(t->names);
    free(t);
}

const struct transport_ops rdma_transport_ops = {
    .name = "rdma",
    .post = rdma_post,
    .progress = rdma_progress,
    .fail = rdma_fail,
    .peer_name = rdma_peer_name,
    .destroy = rdma_destroy,
};

/* ---- creation and availability ---------------------------------------------------------- */

chorus_result_t rdma_transport_create(struct transport **out, const struct transport_setup *setup)
{
    if (!out || !setup || !setup->allgather || setup->nranks < 1 || setup->rank < 0 ||
        setup->rank >= setup->nranks)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT,
                          "rdma_transport_create: bad setup (rank %d of %d, allgather %s)",
                          setup ? setup->rank : -1, setup ? setup->nranks : -1,
                          setup && setup->allgather ? "set" : "missing");
    *out = NULL;
    struct rdma_transport *t = calloc(1, sizeof *t);
    if (t) {
        t->base.ops = &rdma_transport_ops;
        t->base.blame = -1;
        t->peers = calloc((size_t)setup->nranks, sizeof *t->peers);
        t->names = calloc((size_t)setup->nranks, sizeof *t->names);
    }
    if (!t || !t->peers || !t->names) {
        if (t)
            rdma_destroy(&t->base);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR,
                          "%s: out of memory for an RDMA transport of %d ranks",
                          setup->label ? setup->label : "rdma", setup->nranks);
    }
    t->rank = setup->rank;
    t->nranks = setup->nranks;
    snprintf(t->label, sizeof t->label, "%s", setup->label ? setup->label : "rdma");
    chorus_result_t res = rdma_connect_all(t, setup);
    if (res != CHORUS_SUCCESS) {
        rdma_destroy(&t->base);
        return res;
    }
    *out = &t->base;
    return CHORUS_SUCCESS;
}

int rdma_transport_available(char *why, size_t cap)
{
    char spare[8];
    if (!why || cap == 0) {
        why = spare;
        cap = sizeof spare;
    }
    const struct chorus_tunables *tun;
    if (chorus_tunables_load(&tun) != CHORUS_SUCCESS) {
        snprintf(why, cap, "%s", chorus_get_last_error());
        return 0;
    }
    int n = 0;
    errno = 0;
    struct ibv_context **list = rdma_get_devices(&n);
    if (!list || n <= 0) {
        snprintf(why, cap, "librdmacm found no RDMA device (%s)",
                 errno ? strerror(errno) : "none present");
        if (list)
            rdma_free_devices(list);
        return 0;
    }
    struct rdma_device dev;
    int ok = rdma_pick_device(list, n, tun->RDMA_HCA, tun->RDMA_GID_INDEX, &dev, why, cap) == 0;
    if (ok)
        snprintf(why, cap, "%s, %s", dev.name, dev.locality);
    rdma_free_devices(list);
    return ok;
}
