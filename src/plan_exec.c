/* plan_exec.c - runs a plan over a network transport.
 *
 * Each step: local copies first, then every send and receive of the step is
 * posted at once and driven by the transport's progress until all are done.
 * A receive-and-reduce lands in staging memory and is reduced piece by piece
 * as its prefix arrives, so the reduction of a large block overlaps its
 * transfer instead of following it.
 *
 * Waiting: progress() is polled without blocking for the policy's spin time
 * (a step's answer often comes within microseconds), then it blocks in the
 * kernel (epoll) in slices of at most WAIT_SLICE_MS, so the abort flag is
 * seen quickly and an oversubscribed node does not burn the cores the peers
 * need. The timeout counts from the last byte that moved, and names the
 * peers still owing data.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "plan_exec.h"

#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rdma/rdma.h"
#include "reduce.h"
#include "transport.h"

#define WAIT_SLICE_MS 10
#define TIMEOUT_GRACE_MS 2000 /* at most; half the timeout when that is less */

/* One posted transfer and, for a receive-and-reduce, how far it is reduced. */
struct exec_slot {
    struct xfer x;
    const struct plan_op *op;
    size_t reduced;
};

/* Grows *mem to need bytes. The old block may have been registered for RDMA
 * (CHORUS_RDMA_MR_CACHE): the registration must go before the memory does. */
static chorus_result_t grow(struct transport *net, void **mem, size_t *cap, size_t need)
{
    if (need <= *cap)
        return CHORUS_SUCCESS;
    if (*mem)
        rdma_forget(net, *mem, *cap);
    size_t want = *cap ? *cap : 4096;
    while (want < need)
        want = want > SIZE_MAX / 2 ? need : want * 2;
    void *p = realloc(*mem, want);
    if (!p)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory (%zu bytes of plan staging)",
                          want);
    *mem = p;
    *cap = want;
    return CHORUS_SUCCESS;
}

void plan_exec_cache_free(struct plan_exec_cache *c)
{
    free(c->scratch);
    free(c->staging);
    free(c->xfers);
    memset(c, 0, sizeof *c);
}

/* Reduces whatever prefix of a receive-and-reduce has arrived since last time. */
static void reduce_arrived(const struct plan_exec *x, chorus_op_t op, char *const *bufs,
                           struct exec_slot *slot, size_t esize)
{
    size_t avail = slot->x.complete ? slot->x.bytes : slot->x.done - slot->x.done % esize;
    if (avail <= slot->reduced)
        return;
    const struct plan_op *o = slot->op;
    char *dst = bufs[o->dst_buf] + o->dst_off + slot->reduced;
    const void *srcs[2] = {bufs[o->src_buf] + o->src_off + slot->reduced,
                           (char *)slot->x.buf + slot->reduced};
    chorus_reduce_many(x->type, op, dst, srcs, 2, (avail - slot->reduced) / esize, 1);
    slot->reduced = avail;
}

static chorus_result_t stalled(const struct plan_exec *x, struct exec_slot *slots, int n,
                               int64_t idle_ms)
{
    char who[512];
    size_t len = 0;
    int blame = -1;
    who[0] = '\0';
    for (int i = 0; i < n && len < sizeof who - 64; i++) {
        if (slots[i].x.complete)
            continue;
        if (blame < 0)
            blame = slots[i].x.peer;
        char part[64];
        if (slots[i].x.bytes) /* "0 of 0 bytes" would puzzle: a barrier's messages are empty */
            snprintf(part, sizeof part, "%zu of %zu bytes", slots[i].x.done, slots[i].x.bytes);
        else
            snprintf(part, sizeof part, "an empty synchronisation message");
        int w = snprintf(who + len, sizeof who - len, "%s%s %s (%s)", len ? ", " : "",
                         slots[i].x.is_send ? "sending to" : "receiving from",
                         x->net->ops->peer_name(x->net, slots[i].x.peer), part);
        if (w > 0)
            len += (size_t)w;
    }
    x->net->blame = blame;
    x->net->blame_code = CHORUS_TIMEOUT;
    return CHORUS_ERR(CHORUS_TIMEOUT, "%s: no data moved for %lld ms while %s (CHORUS_TIMEOUT_MS)",
                      x->label, (long long)idle_ms, who);
}

static struct exec_slot *slots_of(const struct plan_run *r)
{
    return (struct exec_slot *)r->x->cache->xfers;
}

/* Runs the local copies of step s and posts its transfers; returns how
 * many transfers it posted. */
static chorus_result_t open_step(struct plan_run *r, int s, int *posted)
{
    const struct plan_exec *x = r->x;
    const struct plan *p = r->p;
    struct plan_exec_cache *c = x->cache;
    char *const *bufs = r->bufs;
    uint32_t first = p->step_first[s], last = p->step_first[s + 1];
    size_t nxfer = 0, staging = 0;
    *posted = 0;
    for (uint32_t i = first; i < last; i++) {
        const struct plan_op *o = &p->ops[i];
        if (o->kind == PLAN_COPY) {
            char *dst = bufs[o->dst_buf] + o->dst_off;
            const char *src = bufs[o->src_buf] + o->src_off;
            if (dst != src && o->bytes)
                memmove(dst, src, o->bytes);
            continue;
        }
        nxfer++;
        if (o->kind == PLAN_RECV_REDUCE)
            staging += o->bytes;
    }
    if (nxfer == 0)
        return CHORUS_SUCCESS;
    CHORUS_CHECK(grow(x->net, &c->staging, &c->staging_cap, staging));
    CHORUS_CHECK(grow(x->net, (void **)&c->xfers, &c->xfers_cap,
                      nxfer * sizeof(struct exec_slot)));
    struct exec_slot *slots = slots_of(r);
    size_t soff = 0;
    int n = 0;
    for (uint32_t i = first; i < last; i++) {
        const struct plan_op *o = &p->ops[i];
        if (o->kind == PLAN_COPY)
            continue;
        struct exec_slot *sl = &slots[n++];
        memset(sl, 0, sizeof *sl);
        sl->op = o;
        sl->x.peer = x->group_ranks[o->peer];
        sl->x.bytes = o->bytes;
        if (o->kind == PLAN_SEND) {
            sl->x.is_send = 1;
            sl->x.buf = bufs[o->src_buf] + o->src_off;
        } else if (o->kind == PLAN_RECV) {
            sl->x.buf = bufs[o->dst_buf] + o->dst_off;
        } else {
            sl->x.buf = (char *)c->staging + soff;
            soff += o->bytes;
        }
        *posted = n;
        CHORUS_CHECK(x->net->ops->post(x->net, &sl->x));
    }
    return CHORUS_SUCCESS;
}

/* From r->step on, opens steps until one has transfers in flight, or the
 * plan is finished (then AVG divides the result). */
static chorus_result_t advance(struct plan_run *r)
{
    while (r->step < r->p->nsteps) {
        CHORUS_CHECK(open_step(r, r->step, &r->nslots));
        if (r->nslots > 0) {
            r->left = r->nslots;
            r->moved = 0;
            r->step_start = r->last_moved = chorus_now_ns();
            return CHORUS_SUCCESS;
        }
        r->step++;
    }
    const struct plan_exec *x = r->x;
    const struct plan *p = r->p;
    if (x->op == CHORUS_AVG && p->result_bytes && x->avg_div > 1) {
        char *res = r->bufs[p->result_buf] + p->result_off;
        const void *src[1] = {res};
        chorus_reduce_many(x->type, CHORUS_AVG, res, src, 1, p->result_bytes / r->esize,
                           x->avg_div);
    }
    r->done = 1;
    return CHORUS_SUCCESS;
}

/* After a progress call: reduce what arrived, count what is left, and move
 * to the next step when this one is complete. */
static chorus_result_t account(struct plan_run *r)
{
    struct exec_slot *slots = slots_of(r);
    size_t moved = 0;
    r->left = 0;
    for (int i = 0; i < r->nslots; i++) {
        moved += slots[i].x.done;
        r->left += !slots[i].x.complete;
        if (slots[i].op->kind == PLAN_RECV_REDUCE)
            reduce_arrived(r->x, r->op, r->bufs, &slots[i], r->esize);
    }
    if (moved != r->moved) {
        r->moved = moved;
        r->last_moved = chorus_now_ns();
    }
    if (r->left > 0)
        return CHORUS_SUCCESS;
    r->step++;
    return advance(r);
}

static chorus_result_t check_abort(const struct plan_exec *x)
{
    if (x->abort_flag && atomic_load(x->abort_flag))
        return CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: aborted by the application", x->label);
    return CHORUS_SUCCESS;
}

chorus_result_t plan_run_start(struct plan_run *r, const struct plan_exec *x,
                               const struct plan *p)
{
    memset(r, 0, sizeof *r);
    r->x = x;
    r->p = p;
    r->esize = chorus_type_size(x->type);
    if (r->esize == 0)
        return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "%s: plan run with datatype %d", x->label,
                          (int)x->type);
    CHORUS_CHECK(grow(x->net, &x->cache->scratch, &x->cache->scratch_cap, p->scratch_bytes));
    r->bufs[PLAN_SENDBUF] = (char *)x->sendbuf;
    r->bufs[PLAN_RECVBUF] = (char *)x->recvbuf;
    r->bufs[PLAN_SCRATCH] = (char *)x->cache->scratch;
    r->op = x->op == CHORUS_AVG ? CHORUS_SUM : x->op;
    return advance(r);
}

chorus_result_t plan_run_poll(struct plan_run *r)
{
    if (r->done)
        return CHORUS_SUCCESS;
    CHORUS_CHECK(check_abort(r->x));
    CHORUS_CHECK(r->x->net->ops->progress(r->x->net, 0));
    return account(r);
}

/* The peer we wait for may itself be waiting for a stuck rank and time out
 * at about the same moment. Tell everyone whom we suspect at once, then
 * listen a little longer: a notice from a rank further down the chain names
 * the real culprit. */
static chorus_result_t timed_out(struct plan_run *r)
{
    const struct plan_exec *x = r->x;
    struct exec_slot *slots = slots_of(r);
    int suspect = -1;
    for (int i = 0; i < r->nslots && suspect < 0; i++)
        if (!slots[i].x.complete)
            suspect = slots[i].x.peer;
    x->net->ops->fail(x->net, suspect, CHORUS_TIMEOUT);
    int64_t grace = x->policy->timeout_ns / 2;
    if (grace > (int64_t)TIMEOUT_GRACE_MS * 1000000)
        grace = (int64_t)TIMEOUT_GRACE_MS * 1000000;
    int64_t grace_end = chorus_now_ns() + grace;
    while (chorus_now_ns() < grace_end) {
        chorus_result_t res = x->net->ops->progress(x->net, WAIT_SLICE_MS);
        if (res == CHORUS_SUCCESS)
            continue;
        /* A failure notice arrived. Naming the rank we suspect, it is only
         * our own report echoed by a peer that learned it from us: our
         * timeout stands. Naming another rank after a wait of its own timed
         * out, it is a better culprit, and ours is a timeout too. Either way
         * the code stays CHORUS_TIMEOUT: otherwise ranks that time out
         * together can all end with a remote error, and none with the
         * timeout that started it. Any other notice (a rank that died or
         * aborted) gives the real cause and is returned as it is. */
        if (res == CHORUS_REMOTE_ERROR && x->net->blame == suspect &&
            (x->net->blame_code == CHORUS_TIMEOUT || x->net->blame_code == CHORUS_REMOTE_ERROR))
            break;
        if (res == CHORUS_REMOTE_ERROR && x->net->blame_code == CHORUS_TIMEOUT &&
            x->net->blame >= 0)
            return CHORUS_ERR(CHORUS_TIMEOUT, "%s: no data moved within CHORUS_TIMEOUT_MS, and "
                              "a peer whose wait timed out too blames %s", x->label,
                              x->net->ops->peer_name(x->net, x->net->blame));
        return res;
    }
    return stalled(x, slots, r->nslots, (chorus_now_ns() - r->last_moved) / 1000000);
}

chorus_result_t plan_run_wait(struct plan_run *r)
{
    const struct plan_exec *x = r->x;
    while (!r->done) {
        CHORUS_CHECK(check_abort(x));
        int64_t now = chorus_now_ns();
        int wait_ms = now - r->step_start < x->policy->spin_ns ? 0 : WAIT_SLICE_MS;
        if (wait_ms > 0 && chorus_progress_set()) {
            chorus_progress_run();
            wait_ms = CHORUS_PROGRESS_SLICE_MS;
        }
        CHORUS_CHECK(x->net->ops->progress(x->net, wait_ms));
        CHORUS_CHECK(account(r));
        if (!r->done && x->policy->timeout_ns > 0 &&
            chorus_now_ns() - r->last_moved > x->policy->timeout_ns)
            return timed_out(r);
    }
    return CHORUS_SUCCESS;
}

chorus_result_t plan_execute(const struct plan_exec *x, const struct plan *p)
{
    struct plan_run r;
    CHORUS_CHECK(plan_run_start(&r, x, p));
    return plan_run_wait(&r);
}
