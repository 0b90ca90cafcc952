/* rdma_xfer.c - the RDMA transport's protocol: posting transfers, eager
 * messages, RTS/CTS rendezvous with pipelined RDMA writes, credits and size
 * checks (the design is described in rdma_impl.h).
 *
 * Each direction of a pair keeps its messages in a ring indexed by seq
 * (struct rdma_dir); the control messages name messages by seq, so they may
 * arrive before or after the local post. Cursors walk the ring in seq order:
 *   sender:   start  - the next send whose eager write or RTS is not posted;
 *             pcur   - the rendezvous send whose pieces are being posted;
 *             settle - the first rendezvous send not yet complete;
 *   receiver: start  - the next receive whose CTS is not posted;
 *             settle - the first rendezvous receive not yet complete.
 * A transfer is unlinked from the ring before it is marked complete (the
 * caller may reuse its memory at once).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "rdma_impl.h"

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* ---- message rings -------------------------------------------------------------------- */

/* Makes the entries up to seq exist. 0, or -1 when out of memory. */
static int dir_reserve(struct rdma_dir *d, uint64_t seq)
{
    if (seq < d->end)
        return 0;
    uint64_t need = seq + 1 - d->head;
    if (need > d->cap) {
        uint64_t cap = d->cap ? d->cap : 16;
        while (cap < need)
            cap *= 2;
        struct rdma_msg *ring = calloc(cap, sizeof *ring);
        if (!ring)
            return -1;
        for (uint64_t s = d->head; s < d->end; s++)
            ring[s & (cap - 1)] = d->ring[s & (d->cap - 1)];
        free(d->ring);
        d->ring = ring;
        d->cap = cap;
    }
    for (uint64_t s = d->end; s <= seq; s++)
        memset(rdma_msg_at(d, s), 0, sizeof(struct rdma_msg));
    d->end = seq + 1;
    return 0;
}

void rdma_dir_free(struct rdma_transport *t, struct rdma_dir *d)
{
    for (uint64_t s = d->head; d->ring && s < d->end; s++) {
        struct rdma_msg *m = rdma_msg_at(d, s);
        if (m->mr)
            rdma_mr_put(&t->mrc, m->mr);
        m->mr = NULL;
    }
    free(d->ring);
    memset(d, 0, sizeof *d);
}

static chorus_result_t corrupt(struct rdma_transport *t, struct rdma_peer *p, const char *fmt,
                               unsigned long long a, unsigned long long b)
{
    char what[160];
    snprintf(what, sizeof what, fmt, a, b);
    return rdma_breaks(t,
                       CHORUS_ERR(CHORUS_REMOTE_ERROR, "%s: %s broke the RDMA protocol: %s",
                                  t->label, t->names[p->rank], what),
                       p->rank, CHORUS_REMOTE_ERROR);
}

/* The entry of seq, which the peer named: it must not lie too far ahead. */
static chorus_result_t named(struct rdma_transport *t, struct rdma_peer *p, struct rdma_dir *d,
                             uint64_t seq, struct rdma_msg **out)
{
    if (seq - d->head >= RDMA_MAX_AHEAD)
        return corrupt(t, p, "message %llu named while message %llu is the oldest open one",
                       (unsigned long long)seq, (unsigned long long)d->head);
    if (dir_reserve(d, seq))
        return rdma_breaks(t, CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", t->label),
                           -1, CHORUS_SYSTEM_ERROR);
    *out = rdma_msg_at(d, seq);
    return CHORUS_SUCCESS;
}

/* Unlinks m's transfer and marks it complete. */
static void finish(struct rdma_transport *t, struct rdma_dir *d, struct rdma_msg *m)
{
    struct xfer *x = m->x;
    if (m->mr)
        rdma_mr_put(&t->mrc, m->mr);
    m->mr = NULL;
    m->x = NULL;
    m->done = 1;
    m->lbytes = x->bytes;
    d->pending--;
    while (d->head < d->posted && rdma_msg_at(d, d->head)->done)
        d->head++;
    x->done = x->bytes;
    x->chunks_done = m->npieces;
    x->next = NULL;
    x->complete = 1;
    t->completed++;
}

/* ---- posting work requests ------------------------------------------------------------ */

static int can_send(const struct rdma_transport *t, const struct rdma_conn *c, int need)
{
    return c->credits >= need && c->sq_tail - c->sq_head < (uint64_t)t->send_depth;
}

/* Posts wr on c (a signaled send with a record of kind); 0 or an errno. */
static int post_send(struct rdma_transport *t, struct rdma_conn *c, struct ibv_send_wr *wr,
                     int kind)
{
    struct ibv_send_wr *bad = NULL;
    wr->wr_id = (uintptr_t)c->qph | RDMA_WR_SEND;
    wr->send_flags |= IBV_SEND_SIGNALED;
    int err = ibv_post_send(c->qp, wr, &bad);
    if (err)
        return err;
    c->sq[c->sq_tail % (uint64_t)t->send_depth].kind = (uint8_t)kind;
    c->sq_tail++;
    c->credits--;
    return 0;
}

static chorus_result_t post_failed(struct rdma_transport *t, struct rdma_peer *p, int err,
                                   const char *what)
{
    return rdma_breaks(t,
                       CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: posting %s to %s failed: %s",
                                  t->label, what, t->names[p->rank], strerror(err)),
                       -1, CHORUS_SYSTEM_ERROR);
}

int rdma_send_ctrl(struct rdma_transport *t, struct rdma_conn *c, int type, uint64_t seq,
                   uint64_t bytes, uint64_t addr, uint32_t rkey, int need)
{
    struct rdma_peer *p = c->peer;
    if (!can_send(t, c, need))
        return -1;
    struct rdma_ctrl m;
    memset(&m, 0, sizeof m);
    m.magic = RDMA_CTRL_MAGIC;
    m.type = (uint16_t)type;
    uint32_t give = c->owed > 0xffff ? 0xffff : c->owed;
    m.credits = (uint16_t)give;
    if (c->index == 0)
        m.eager_freed = p->eager_consumed;
    m.seq = seq;
    m.bytes = bytes;
    m.addr = addr;
    m.rkey = rkey;
    uint8_t *buf = c->sbufs + (c->sq_tail % (uint64_t)t->send_depth) * RDMA_CTRL_BYTES;
    memcpy(buf, &m, sizeof m);
    struct ibv_sge sge = {(uintptr_t)buf, sizeof m, t->local_mr->lkey};
    struct ibv_send_wr wr;
    memset(&wr, 0, sizeof wr);
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = (int)sizeof m <= c->max_inline ? IBV_SEND_INLINE : 0;
    int err = post_send(t, c, &wr, RDMA_REC_CTRL);
    if (err)
        return err;
    c->owed -= give;
    if (c->index == 0)
        p->eager_reported = p->eager_consumed;
    return 0;
}

/* ---- size mismatches ---------------------------------------------------------------------- */

/* Sizes of message seq disagree: tell the peer (best effort) and fail. */
static void size_text(char *buf, size_t cap, uint64_t bytes, size_t eager)
{
    if (bytes == UINT64_MAX)
        snprintf(buf, cap, "at most %zu", eager); /* a finished eager send */
    else
        snprintf(buf, cap, "%llu", (unsigned long long)bytes);
}

static chorus_result_t size_error(struct rdma_transport *t, struct rdma_peer *p, uint64_t seq,
                                  int we_receive, uint64_t ours, uint64_t theirs)
{
    char mine[48], other[48];
    size_text(mine, sizeof mine, ours, p->eager);
    size_text(other, sizeof other, theirs, p->eager);
    chorus_result_t res;
    if (we_receive)
        res = CHORUS_ERR(CHORUS_INVALID_USAGE,
                         "%s: %s sent %s bytes where this rank posted a %s-byte receive "
                         "(message %llu of the pair)",
                         t->label, t->names[p->rank], other, mine, (unsigned long long)seq);
    else
        res = CHORUS_ERR(CHORUS_INVALID_USAGE,
                         "%s: %s posted a %s-byte receive where this rank sent %s bytes "
                         "(message %llu of the pair)",
                         t->label, t->names[p->rank], other, mine, (unsigned long long)seq);
    return rdma_breaks(t, res, p->rank, CHORUS_INVALID_USAGE);
}

/* Sizes of message seq disagree: tell the peer (best effort, so that it
 * fails too instead of waiting) and fail. UINT64_MAX: size unknown. */
static chorus_result_t mismatch(struct rdma_transport *t, struct rdma_peer *p, uint64_t seq,
                                int we_receive, uint64_t ours, uint64_t theirs)
{
    (void)rdma_send_ctrl(t, &p->conns[0], RDMA_CTRL_MISMATCH, seq, ours, theirs,
                         (uint32_t)we_receive, 1);
    return size_error(t, p, seq, we_receive, ours, theirs);
}

/* The peer found that the sizes of message seq disagree. */
static chorus_result_t on_mismatch(struct rdma_transport *t, struct rdma_peer *p,
                                   const struct rdma_ctrl *c)
{
    int we_receive = c->rkey == 0;
    uint64_t ours = c->addr;
    struct rdma_dir *d = we_receive ? &p->recvs : &p->sends;
    if (ours == UINT64_MAX && c->seq >= d->head && c->seq < d->end) {
        struct rdma_msg *m = rdma_msg_at(d, c->seq);
        if (m->x)
            ours = m->x->bytes;
        else if (m->done)
            ours = m->lbytes;
    }
    return size_error(t, p, c->seq, we_receive, ours, c->bytes);
}

/* Sender: the CTS of a posted send arrived. */
static chorus_result_t check_cts(struct rdma_transport *t, struct rdma_peer *p,
                                 struct rdma_msg *m, uint64_t seq)
{
    if (m->eager || m->rbytes != m->x->bytes)
        return mismatch(t, p, seq, 0, m->x->bytes, m->rbytes);
    return CHORUS_SUCCESS;
}

/* Receiver: the RTS of a posted receive arrived. */
static chorus_result_t check_rts(struct rdma_transport *t, struct rdma_peer *p,
                                 struct rdma_msg *m, uint64_t seq)
{
    if (m->eager || m->rbytes != m->x->bytes)
        return mismatch(t, p, seq, 1, m->x->bytes, m->rbytes);
    return CHORUS_SUCCESS;
}

/* Receiver: a posted receive meets its eager data; copies it out and frees
 * the slot (slots are consumed in order: see rdma_impl.h). */
static chorus_result_t take_eager(struct rdma_transport *t, struct rdma_peer *p,
                                  struct rdma_msg *m, uint64_t seq)
{
    struct xfer *x = m->x;
    if (!m->eager || m->rbytes != x->bytes)
        return mismatch(t, p, seq, 1, x->bytes, m->rbytes);
    if (m->slot != p->eager_consumed % (uint64_t)t->slots)
        return corrupt(t, p, "eager slot %llu used out of turn (expected %llu)", m->slot,
                       p->eager_consumed % (uint64_t)t->slots);
    if (x->bytes)
        memcpy(x->buf, p->ring + (size_t)m->slot * t->slot_bytes + RDMA_EAGER_HDR, x->bytes);
    p->eager_consumed++;
    finish(t, &p->recvs, m);
    rdma_make_ready(t, p); /* the slot goes back to the sender */
    return CHORUS_SUCCESS;
}

/* ---- posting a transfer --------------------------------------------------------------- */

int rdma_recv_arrived(struct rdma_peer *p, const struct xfer *x)
{
    struct rdma_dir *d = &p->recvs;
    if (x->is_send || x->bytes > p->eager || d->posted >= d->end)
        return 0;
    const struct rdma_msg *m = rdma_msg_at(d, d->posted);
    return m->remote == RDMA_GOT_EAGER && !m->done;
}

chorus_result_t rdma_xfer_post(struct rdma_transport *t, struct rdma_peer *p, struct xfer *x)
{
    struct rdma_dir *d = x->is_send ? &p->sends : &p->recvs;
    uint64_t seq = d->posted;
    if (dir_reserve(d, seq))
        return rdma_breaks(t, CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", t->label),
                           -1, CHORUS_SYSTEM_ERROR);
    struct rdma_msg *m = rdma_msg_at(d, seq);
    /* Register before taking the seq, so a failure posts nothing. */
    int eager = x->bytes <= p->eager;
    struct rdma_mr *mr = NULL;
    if (!eager) {
        chorus_result_t res = rdma_mr_get(&t->mrc, x->buf, x->bytes, !x->is_send, &mr);
        if (res != CHORUS_SUCCESS)
            return rdma_breaks(t, res, -1, CHORUS_SYSTEM_ERROR);
    }
    d->posted++;
    d->pending++;
    x->done = 0;
    x->complete = 0;
    x->next = NULL;
    x->seq = seq;
    x->chunks_done = 0;
    m->x = x;
    m->mr = mr;
    m->posted = 1;
    m->eager = (uint8_t)eager;
    if (!eager) {
        m->pbase = d->pieces;
        m->npieces = (uint32_t)rdma_pieces(x->bytes, p->chunk);
        d->pieces += m->npieces;
    }
    x->chunks_posted = (size_t)m->pbase;
    rdma_make_ready(t, p);
    if (x->is_send)
        return m->remote ? check_cts(t, p, m, seq) : CHORUS_SUCCESS;
    if (m->remote == RDMA_GOT_EAGER)
        return take_eager(t, p, m, seq);
    if (m->remote == RDMA_GOT_RTS)
        return check_rts(t, p, m, seq);
    return CHORUS_SUCCESS;
}

/* ---- control messages ------------------------------------------------------------------ */

static chorus_result_t on_rts(struct rdma_transport *t, struct rdma_peer *p, uint64_t seq,
                              uint64_t bytes)
{
    struct rdma_dir *d = &p->recvs;
    /* Pieces on other QPs may have completed the receive before its RTS
     * came (the sender checked the sizes on the CTS then). */
    if (seq < d->head)
        return CHORUS_SUCCESS;
    struct rdma_msg *m;
    CHORUS_CHECK(named(t, p, d, seq, &m));
    if (m->done)
        return CHORUS_SUCCESS;
    if (m->remote)
        return corrupt(t, p, "message %llu announced twice (%llu bytes)",
                       (unsigned long long)seq, (unsigned long long)bytes);
    m->remote = RDMA_GOT_RTS;
    m->rbytes = bytes;
    return m->posted ? check_rts(t, p, m, seq) : CHORUS_SUCCESS;
}

static chorus_result_t on_cts(struct rdma_transport *t, struct rdma_peer *p,
                              const struct rdma_ctrl *c)
{
    struct rdma_dir *d = &p->sends;
    /* A rendezvous send cannot finish without its CTS: a finished one was
     * sent eagerly, so the receiver expects more than it got. */
    if (c->seq < d->head)
        return mismatch(t, p, c->seq, 0, UINT64_MAX, c->bytes);
    struct rdma_msg *m;
    CHORUS_CHECK(named(t, p, d, c->seq, &m));
    if (m->done)
        return mismatch(t, p, c->seq, 0, m->lbytes, c->bytes);
    if (m->remote)
        return corrupt(t, p, "two clear-to-sends for message %llu (%llu bytes)",
                       (unsigned long long)c->seq, (unsigned long long)c->bytes);
    m->remote = 1;
    m->rbytes = c->bytes;
    m->raddr = c->addr;
    m->rkey = c->rkey;
    return m->posted ? check_cts(t, p, m, c->seq) : CHORUS_SUCCESS;
}

chorus_result_t rdma_on_ctrl(struct rdma_transport *t, struct rdma_conn *c,
                             const struct rdma_ctrl *m)
{
    struct rdma_peer *p = c->peer;
    if (m->magic != RDMA_CTRL_MAGIC)
        return corrupt(t, p, "a control message with magic 0x%08llx (type %llu)", m->magic,
                       m->type);
    c->credits += m->credits;
    if (c->index == 0 && m->eager_freed > p->eager_credit) {
        if (m->eager_freed > p->eager_sent)
            return corrupt(t, p, "credit for %llu eager messages of %llu sent", m->eager_freed,
                           p->eager_sent);
        p->eager_credit = m->eager_freed;
    }
    switch (m->type) {
    case RDMA_CTRL_CREDIT: return CHORUS_SUCCESS;
    case RDMA_CTRL_RTS: return on_rts(t, p, m->seq, m->bytes);
    case RDMA_CTRL_CTS: return on_cts(t, p, m);
    case RDMA_CTRL_FAIL: return rdma_on_fail(t, p, m);
    case RDMA_CTRL_MISMATCH: return on_mismatch(t, p, m);
    default: return corrupt(t, p, "a control message of type %llu (seq %llu)", m->type, m->seq);
    }
}

/* ---- arrivals -------------------------------------------------------------------------------- */

chorus_result_t rdma_on_eager(struct rdma_transport *t, struct rdma_peer *p, uint32_t slot)
{
    if (slot >= (uint32_t)t->slots)
        return corrupt(t, p, "eager data in slot %llu of %llu", slot, (unsigned)t->slots);
    struct rdma_eager_hdr h;
    memcpy(&h, p->ring + (size_t)slot * t->slot_bytes, sizeof h);
    if (h.magic != RDMA_EAGER_MAGIC || h.bytes > p->eager || h.eager_no != p->eager_arrived ||
        h.eager_no % (uint64_t)t->slots != slot)
        return corrupt(t, p, "a bad eager message (%llu bytes, number %llu)", h.bytes,
                       h.eager_no);
    p->eager_arrived++;
    struct rdma_dir *d = &p->recvs;
    if (h.seq < d->head)
        return corrupt(t, p, "eager data for message %llu, already received (oldest open: %llu)",
                       h.seq, d->head);
    struct rdma_msg *m;
    CHORUS_CHECK(named(t, p, d, h.seq, &m));
    if (m->done || m->remote)
        return corrupt(t, p, "message %llu twice (%llu bytes)", h.seq, h.bytes);
    m->remote = RDMA_GOT_EAGER;
    m->slot = slot;
    m->rbytes = h.bytes;
    return m->posted ? take_eager(t, p, m, h.seq) : CHORUS_SUCCESS;
}

/* Receiver: everything below the smallest next piece of the pair's QPs has
 * arrived; completes the rendezvous receives it covers. */
static void settle_recvs(struct rdma_transport *t, struct rdma_peer *p)
{
    uint64_t frontier = UINT64_MAX;
    for (int i = 0; i < p->nqp; i++)
        frontier = p->conns[i].rx_next < frontier ? p->conns[i].rx_next : frontier;
    struct rdma_dir *d = &p->recvs;
    uint64_t s;
    for (s = max_u64(d->settle, d->head); s < d->posted; s++) {
        if (s < d->head)
            continue;
        struct rdma_msg *m = rdma_msg_at(d, s);
        if (m->done || m->eager)
            continue;
        uint64_t got = frontier > m->pbase ? frontier - m->pbase : 0;
        if (got < m->npieces) {
            if ((size_t)got * p->chunk > m->x->done)
                t->moved++; /* the caller may reduce the new prefix now */
            m->x->done = (size_t)got * p->chunk;
            m->x->chunks_done = (size_t)got;
            break;
        }
        finish(t, d, m);
    }
    d->settle = s;
}

chorus_result_t rdma_on_piece(struct rdma_transport *t, struct rdma_conn *c, uint32_t imm)
{
    struct rdma_peer *p = c->peer;
    if (imm != (uint32_t)(c->rx_next & 0x7fffffffu))
        return corrupt(t, p, "RDMA write of piece %llu where piece %llu was due", imm,
                       c->rx_next & 0x7fffffffu);
    c->rx_next += (uint64_t)p->nqp;
    settle_recvs(t, p);
    return CHORUS_SUCCESS;
}

/* Sender: the same frontier over the completed writes. */
static void settle_sends(struct rdma_transport *t, struct rdma_peer *p)
{
    uint64_t frontier = UINT64_MAX;
    for (int i = 0; i < p->nqp; i++)
        frontier = p->conns[i].tx_next < frontier ? p->conns[i].tx_next : frontier;
    struct rdma_dir *d = &p->sends;
    uint64_t s;
    for (s = max_u64(d->settle, d->head); s < d->posted; s++) {
        if (s < d->head)
            continue;
        struct rdma_msg *m = rdma_msg_at(d, s);
        if (m->done || m->eager)
            continue;
        uint64_t got = frontier > m->pbase ? frontier - m->pbase : 0;
        if (got < m->npieces) {
            m->x->done = (size_t)got * p->chunk;
            m->x->chunks_done = (size_t)got;
            break;
        }
        finish(t, d, m);
    }
    d->settle = s;
}

chorus_result_t rdma_on_send_done(struct rdma_transport *t, struct rdma_conn *c, int kind)
{
    struct rdma_peer *p = c->peer;
    if (kind == RDMA_REC_EAGER) {
        p->bounce_done++; /* eager writes complete in order on QP 0 */
    } else if (kind == RDMA_REC_PIECE) {
        c->tx_next += (uint64_t)p->nqp;
        settle_sends(t, p);
    }
    return CHORUS_SUCCESS;
}

/* ---- the work of a peer ----------------------------------------------------------------- */

/* Receiver: a CTS for every posted rendezvous receive, in order. */
static chorus_result_t send_cts(struct rdma_transport *t, struct rdma_peer *p)
{
    struct rdma_dir *d = &p->recvs;
    uint64_t s;
    for (s = max_u64(d->start, d->head); s < d->posted; s++) {
        struct rdma_msg *m = rdma_msg_at(d, s);
        if (s < d->head || m->done || m->eager || m->started)
            continue;
        int r = rdma_send_ctrl(t, &p->conns[0], RDMA_CTRL_CTS, s, m->x->bytes,
                               (uintptr_t)m->x->buf, m->mr->mr->rkey, 2);
        if (r < 0)
            break;
        if (r > 0)
            return post_failed(t, p, r, "a clear-to-send");
        m->started = 1;
    }
    d->start = s;
    return CHORUS_SUCCESS;
}

/* Sender: an eager write. 0 posted, -1 blocked, else an errno. */
static int post_eager(struct rdma_transport *t, struct rdma_peer *p, struct rdma_msg *m,
                      uint64_t seq)
{
    struct rdma_conn *c = &p->conns[0];
    uint64_t slots = (uint64_t)t->slots;
    if (!can_send(t, c, 2) || p->eager_sent >= p->eager_credit + slots ||
        p->eager_sent >= p->bounce_done + slots)
        return -1;
    struct xfer *x = m->x;
    uint64_t slot = p->eager_sent % slots;
    uint8_t *buf = p->bounce + slot * t->slot_bytes;
    struct rdma_eager_hdr h = {RDMA_EAGER_MAGIC, 0, seq, x->bytes, p->eager_sent};
    memcpy(buf, &h, sizeof h);
    if (x->bytes)
        memcpy(buf + RDMA_EAGER_HDR, x->buf, x->bytes);
    size_t len = RDMA_EAGER_HDR + x->bytes;
    struct ibv_sge sge = {(uintptr_t)buf, (uint32_t)len, t->local_mr->lkey};
    struct ibv_send_wr wr;
    memset(&wr, 0, sizeof wr);
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
    wr.imm_data = htonl(RDMA_IMM_EAGER | (uint32_t)slot);
    wr.send_flags = len <= (size_t)c->max_inline ? IBV_SEND_INLINE : 0;
    wr.wr.rdma.remote_addr = p->ring_raddr + slot * p->rslot_bytes;
    wr.wr.rdma.rkey = p->ring_rkey;
    int err = post_send(t, c, &wr, RDMA_REC_EAGER);
    if (err)
        return err;
    p->eager_sent++;
    m->started = 1;
    finish(t, &p->sends, m); /* the bytes are in the bounce slot */
    return 0;
}

/* Sender: eager writes and RTSs, in post order. */
static chorus_result_t start_sends(struct rdma_transport *t, struct rdma_peer *p)
{
    struct rdma_dir *d = &p->sends;
    uint64_t s;
    for (s = max_u64(d->start, d->head); s < d->posted; s++) {
        struct rdma_msg *m = rdma_msg_at(d, s);
        if (s < d->head || m->started)
            continue;
        int r;
        if (m->eager) {
            r = post_eager(t, p, m, s);
        } else {
            r = rdma_send_ctrl(t, &p->conns[0], RDMA_CTRL_RTS, s, m->x->bytes, 0, 0, 2);
            if (r == 0)
                m->started = 1;
        }
        if (r < 0)
            break;
        if (r > 0)
            return post_failed(t, p, r, m->eager ? "an eager message" : "a request-to-send");
    }
    d->start = s;
    return CHORUS_SUCCESS;
}

/* Sender: the pieces of rendezvous sends whose CTS came, in piece order. */
static chorus_result_t post_pieces(struct rdma_transport *t, struct rdma_peer *p)
{
    struct rdma_dir *d = &p->sends;
    for (;;) {
        uint64_t s = max_u64(d->pcur, d->head);
        for (; s < d->start; s++) {
            struct rdma_msg *m = rdma_msg_at(d, s);
            if (s >= d->head && !m->done && !m->eager && m->sent < m->npieces)
                break;
        }
        d->pcur = s;
        if (s >= d->start)
            return CHORUS_SUCCESS;
        struct rdma_msg *m = rdma_msg_at(d, s);
        if (!m->remote)
            return CHORUS_SUCCESS; /* waiting for its CTS */
        uint64_t g = m->pbase + m->sent;
        struct rdma_conn *c = &p->conns[g % (uint64_t)p->nqp];
        if (!can_send(t, c, 2))
            return CHORUS_SUCCESS;
        size_t off = (size_t)m->sent * p->chunk;
        size_t len = m->x->bytes - off < p->chunk ? m->x->bytes - off : p->chunk;
        struct ibv_sge sge = {(uintptr_t)m->x->buf + off, (uint32_t)len, m->mr->mr->lkey};
        struct ibv_send_wr wr;
        memset(&wr, 0, sizeof wr);
        wr.sg_list = &sge;
        wr.num_sge = 1;
        wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
        wr.imm_data = htonl((uint32_t)(g & 0x7fffffffu));
        wr.wr.rdma.remote_addr = m->raddr + off;
        wr.wr.rdma.rkey = m->rkey;
        int err = post_send(t, c, &wr, RDMA_REC_PIECE);
        if (err)
            return post_failed(t, p, err, "an RDMA write");
        m->sent++;
    }
}

/* Credits go back in every control message; without one going out soon, a
 * CREDIT message returns them once half the window is owed (it may spend
 * the reserved credit then), and eager slots as soon as they are free. */
static chorus_result_t return_credits(struct rdma_transport *t, struct rdma_peer *p)
{
    for (int i = 0; i < p->nqp; i++) {
        struct rdma_conn *c = &p->conns[i];
        int r = 0;
        if (c->owed >= RDMA_RECV_CREDITS / 2)
            r = rdma_send_ctrl(t, c, RDMA_CTRL_CREDIT, 0, 0, 0, 0, 1);
        else if (i == 0 && p->eager_consumed > p->eager_reported)
            r = rdma_send_ctrl(t, c, RDMA_CTRL_CREDIT, 0, 0, 0, 0, 2);
        if (r > 0)
            return post_failed(t, p, r, "a credit message");
    }
    return CHORUS_SUCCESS;
}

chorus_result_t rdma_service(struct rdma_transport *t, struct rdma_peer *p)
{
    CHORUS_CHECK(send_cts(t, p));
    CHORUS_CHECK(start_sends(t, p));
    CHORUS_CHECK(post_pieces(t, p));
    return return_credits(t, p);
}
