/* sim_engine.c - sim_run: every rank's progress through its plan as a
 * discrete-event simulation (the model is in sim.h and docs/simulator.md).
 *
 * Events: a rank begins the communication part of a step (after its
 * copies); a message becomes active (its latency paid) and starts a flow; a
 * flow ends; a receive-and-reduce finishes its reduction. Every event of one
 * time is processed as one batch, then the flows on ports and links touched
 * in the batch get new rates (sim_net_reshare). A message starts when the
 * second of its two ranks reaches the step holding it: that is the
 * rendezvous rule of plan.h, and a run that stops with ranks left waiting
 * is a deadlock. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

#define SIM_DEFAULT_REDUCE_CHUNK (64.0 * 1024)
/* Events closer than this (relative) count as simultaneous: symmetric flows
 * computed along different paths differ in the last bits. */
#define SIM_SAME_TIME 1e-12

struct rank_st {
    int cur;          /* step being run; nsteps when done */
    uint32_t pending; /* comm ops of step cur not complete */
    double rfree;     /* its reduction engine is busy until then */
    double finish;
};

struct eng {
    const struct topo *t;
    const struct sim_opts *o;
    struct sim_result *res;
    int n;
    const int *rank_of;
    double copy_bw, reduce_bw, chunk;
    struct sim_ops ops;
    struct sim_net net;
    struct sim_heap heap;
    struct rank_st *st;
    uint8_t *arrived; /* [total ops], for sends: ranks that reached the message (0..2) */
    chorus_result_t rc;
};

static chorus_result_t failf(struct eng *e, chorus_result_t rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static chorus_result_t failf(struct eng *e, chorus_result_t rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->res->error, sizeof e->res->error, fmt, ap);
    va_end(ap);
    if (e->rc == CHORUS_SUCCESS)
        e->rc = rc;
    return rc;
}

static void push(struct eng *e, double t, uint32_t kind, uint32_t id, uint32_t version)
{
    if (sim_heap_push(&e->heap, (struct sim_event){.t = t, .id = id, .version = version,
                                                   .kind = kind}))
        failf(e, CHORUS_SYSTEM_ERROR, "simulator: out of memory for events");
}

static int topo_rank(const struct eng *e, int r) { return e->rank_of ? e->rank_of[r] : r; }

static const struct plan_op *op_at(const struct eng *e, uint64_t g, int *rank)
{
    int r = sim_owner(&e->ops, g);
    if (rank)
        *rank = r;
    return &e->ops.plans[r].ops[g - e->ops.op_base[r]];
}

static void comm_start(struct eng *e, int r, double now);

/* Step cur of r is complete at now: run the next one (copy-only steps are
 * passed straight through). */
static void next_step(struct eng *e, int r, double now)
{
    const struct plan *p = &e->ops.plans[r];
    struct rank_st *s = &e->st[r];
    for (;;) {
        if (++s->cur >= p->nsteps) {
            s->cur = p->nsteps;
            s->finish = now;
            return;
        }
        uint64_t copied = 0;
        uint32_t comm = 0;
        for (uint32_t i = p->step_first[s->cur]; i < p->step_first[s->cur + 1]; i++) {
            if (p->ops[i].kind == PLAN_COPY)
                copied += p->ops[i].bytes;
            else
                comm++;
        }
        e->res->bytes_copied += copied;
        double c = e->copy_bw > 0 ? (double)copied / e->copy_bw : 0;
        if (comm == 0) {
            now += c;
            continue;
        }
        s->pending = comm;
        if (c > 0)
            push(e, now + c, EV_COMM_START, (uint32_t)r, 0);
        else
            comm_start(e, r, now);
        return;
    }
}

static void op_complete(struct eng *e, uint64_t g, double now)
{
    int r = sim_owner(&e->ops, g);
    if (--e->st[r].pending == 0)
        next_step(e, r, now);
}

/* Both ranks of message m (a send op) are in its steps: it pays its latency. */
static void msg_ready(struct eng *e, uint32_t m, double now)
{
    int s;
    const struct plan_op *o = op_at(e, m, &s);
    int level;
    double lat;
    uint32_t nres;
    chorus_result_t rc = sim_net_route(&e->net, topo_rank(e, s), topo_rank(e, o->peer), &level,
                                       &lat, &nres, e->res->error, sizeof e->res->error);
    if (rc != CHORUS_SUCCESS) {
        e->rc = rc; /* the message is in res->error */
        return;
    }
    e->res->level[level].msgs++;
    e->res->level[level].bytes += o->bytes;
    e->res->msgs++;
    e->res->bytes += o->bytes;
    push(e, now + lat, EV_MSG_ACTIVE, m, 0);
}

static void comm_start(struct eng *e, int r, double now)
{
    const struct plan *p = &e->ops.plans[r];
    uint64_t base = e->ops.op_base[r];
    for (uint32_t i = p->step_first[e->st[r].cur]; i < p->step_first[e->st[r].cur + 1]; i++) {
        if (p->ops[i].kind == PLAN_COPY)
            continue;
        uint32_t m = p->ops[i].kind == PLAN_SEND ? (uint32_t)(base + i) : e->ops.match[base + i];
        if (++e->arrived[m] == 2)
            msg_ready(e, m, now);
    }
}

/* The data of the message whose receive is op g arrived completely at now;
 * the flow carrying it started at start. */
static void recv_arrived(struct eng *e, uint32_t g, double now, double start)
{
    int r;
    const struct plan_op *o = op_at(e, g, &r);
    if (o->kind != PLAN_RECV_REDUCE || o->bytes == 0) {
        op_complete(e, g, now);
        return;
    }
    struct rank_st *s = &e->st[r];
    double work = (double)o->bytes / e->reduce_bw, done;
    e->res->bytes_reduced += o->bytes;
    if (e->o->reduce_model == SIM_REDUCE_SERIAL) {
        done = fmax(now, s->rfree) + work;
    } else {
        double tail = fmin((double)o->bytes, e->chunk) / e->reduce_bw;
        done = fmax(now + tail, fmax(start, s->rfree) + work);
    }
    s->rfree = done;
    if (done > now)
        push(e, done, EV_OP_DONE, g, 0);
    else
        op_complete(e, g, now);
}

static void msg_active(struct eng *e, uint32_t m, double now)
{
    int s;
    const struct plan_op *o = op_at(e, m, &s);
    if (o->bytes == 0) {
        op_complete(e, m, now);
        recv_arrived(e, e->ops.match[m], now, now);
        return;
    }
    int level;
    double lat;
    uint32_t nres, id;
    chorus_result_t rc = sim_net_route(&e->net, topo_rank(e, s), topo_rank(e, o->peer), &level,
                                       &lat, &nres, e->res->error, sizeof e->res->error);
    if (rc != CHORUS_SUCCESS) {
        e->rc = rc;
        return;
    }
    if (sim_net_flow_start(&e->net, m, (double)o->bytes, now, nres, &id) != CHORUS_SUCCESS) {
        failf(e, CHORUS_SYSTEM_ERROR, "simulator: out of memory for flows");
        return;
    }
    if (e->net.nactive > e->res->max_flows)
        e->res->max_flows = e->net.nactive;
}

static void flow_end(struct eng *e, uint32_t id, uint32_t version, double now)
{
    struct sim_flow *f = &e->net.flows[id];
    if (f->version != version || f->nres == 0)
        return; /* rescheduled since */
    uint32_t m = f->msg;
    double start = f->start;
    if (sim_net_flow_end(&e->net, id) != CHORUS_SUCCESS) {
        failf(e, CHORUS_SYSTEM_ERROR, "simulator: out of memory");
        return;
    }
    op_complete(e, m, now);
    recv_arrived(e, e->ops.match[m], now, start);
}

static void process(struct eng *e, struct sim_event ev, double now)
{
    switch (ev.kind) {
    case EV_COMM_START: comm_start(e, (int)ev.id, now); break;
    case EV_MSG_ACTIVE: msg_active(e, ev.id, now); break;
    case EV_FLOW_END: flow_end(e, ev.id, ev.version, now); break;
    default: op_complete(e, ev.id, now); break;
    }
}

static chorus_result_t report_deadlock(struct eng *e)
{
    char d[96];
    for (int r = 0; r < e->n; r++) {
        const struct plan *p = &e->ops.plans[r];
        int cur = e->st[r].cur;
        if (cur >= p->nsteps)
            continue;
        uint64_t base = e->ops.op_base[r];
        for (uint32_t i = p->step_first[cur]; i < p->step_first[cur + 1]; i++) {
            const struct plan_op *o = &p->ops[i];
            if (o->kind == PLAN_COPY)
                continue;
            uint32_t m = o->kind == PLAN_SEND ? (uint32_t)(base + i) : e->ops.match[base + i];
            if (e->arrived[m] == 2)
                continue;
            int y;
            uint32_t other = e->ops.match[base + i];
            op_at(e, other, &y);
            return failf(e, CHORUS_INVALID_USAGE, "deadlock: rank %d waits in step %d on op %u "
                         "(%s); rank %d is in step %d, the matching op is in its step %d", r,
                         cur, i, sim_describe(o, d, sizeof d), y, e->st[y].cur,
                         sim_step_of(&e->ops.plans[y], (uint32_t)(other - e->ops.op_base[y])));
        }
    }
    return failf(e, CHORUS_INTERNAL_ERROR, "deadlock with no waiting op found (simulator bug)");
}

static chorus_result_t run(struct eng *e)
{
    for (int r = 0; r < e->n && e->rc == CHORUS_SUCCESS; r++)
        next_step(e, r, 0.0);
    while (e->heap.n > 0 && e->rc == CHORUS_SUCCESS) {
        double now = e->heap.v[0].t, limit = now + fabs(now) * SIM_SAME_TIME;
        e->res->batches++;
        while (e->heap.n > 0 && e->heap.v[0].t <= limit && e->rc == CHORUS_SUCCESS)
            process(e, sim_heap_pop(&e->heap), now);
        if (e->rc == CHORUS_SUCCESS && sim_net_reshare(&e->net, now, &e->heap) != CHORUS_SUCCESS)
            failf(e, CHORUS_SYSTEM_ERROR, "simulator: out of memory for events");
    }
    if (e->rc != CHORUS_SUCCESS)
        return e->rc;
    for (int r = 0; r < e->n; r++)
        if (e->st[r].cur < e->ops.plans[r].nsteps)
            return report_deadlock(e);
    return CHORUS_SUCCESS;
}

void sim_opts_default(struct sim_opts *o)
{
    *o = (struct sim_opts){.reduce_model = SIM_REDUCE_PIPELINED,
                           .reduce_chunk = SIM_DEFAULT_REDUCE_CHUNK};
}

static chorus_result_t check_args(struct eng *e, const struct topo *t, int nranks,
                                  const struct plan *plans)
{
    if (!t || !plans)
        return failf(e, CHORUS_INVALID_ARGUMENT, "sim_run: NULL %s", t ? "plans" : "topology");
    if (nranks < 1 || nranks > t->nranks)
        return failf(e, CHORUS_INVALID_ARGUMENT, "sim_run: %d ranks on topology '%s' of %d",
                     nranks, t->name, t->nranks);
    if (!(t->reduce_bw > 0))
        return failf(e, CHORUS_INVALID_ARGUMENT, "sim_run: topology '%s' has no reduce "
                     "bandwidth", t->name);
    if (e->rank_of) {
        for (int r = 0; r < nranks; r++)
            if (e->rank_of[r] < 0 || e->rank_of[r] >= t->nranks)
                return failf(e, CHORUS_INVALID_ARGUMENT, "sim_run: group rank %d maps to "
                             "topology rank %d (out of range)", r, e->rank_of[r]);
    }
    return CHORUS_SUCCESS;
}

chorus_result_t sim_run(const struct topo *t, int nranks, const struct plan *plans,
                        const struct sim_opts *o, struct sim_result *res)
{
    struct sim_opts dflt;
    if (!o) {
        sim_opts_default(&dflt);
        o = &dflt;
    }
    double *finish = res->finish;
    *res = (struct sim_result){.finish = finish};
    struct eng e = {.t = t, .o = o, .res = res, .n = nranks, .rank_of = o->rank_of};
    if (check_args(&e, t, nranks, plans) != CHORUS_SUCCESS)
        return e.rc;
    e.reduce_bw = t->reduce_bw;
    e.copy_bw = o->copy_bw > 0 ? o->copy_bw : o->copy_bw < 0 ? 0 : 1.5 * t->reduce_bw;
    e.chunk = o->reduce_chunk > 0 ? o->reduce_chunk : SIM_DEFAULT_REDUCE_CHUNK;
    e.ops = (struct sim_ops){.nranks = nranks, .plans = plans};
    if (sim_match(&e.ops, o->esize, res->error, sizeof res->error)) {
        e.rc = CHORUS_INVALID_USAGE;
        goto out;
    }
    chorus_result_t rc = sim_net_init(&e.net, t, res->error, sizeof res->error);
    if (rc != CHORUS_SUCCESS) {
        e.rc = rc;
        goto out;
    }
    e.st = calloc((size_t)nranks, sizeof *e.st);
    e.arrived = calloc(e.ops.op_base[nranks] ? e.ops.op_base[nranks] : 1, 1);
    if (!e.st || !e.arrived) {
        failf(&e, CHORUS_SYSTEM_ERROR, "simulator: out of memory");
        goto out;
    }
    for (int r = 0; r < nranks; r++)
        e.st[r].cur = -1;
    if (run(&e) == CHORUS_SUCCESS) {
        for (int r = 0; r < nranks; r++) {
            if (e.st[r].finish > res->time)
                res->time = e.st[r].finish;
            if (res->finish)
                res->finish[r] = e.st[r].finish;
        }
    }
out:
    free(e.st);
    free(e.arrived);
    sim_heap_free(&e.heap);
    sim_net_free(&e.net);
    sim_ops_free(&e.ops);
    return e.rc;
}
