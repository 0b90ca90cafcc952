/* plan_model.c - the model executor (see plan_model.h).
 *
 * First every plan is checked on its own (well-formed ops, ranges in
 * bounds, no in-step hazards) and the messages are matched: the k-th send
 * from a to b with the k-th receive at b from a. Then the ranks run as an
 * event loop: a rank starts its next step when every op of its current step
 * has completed; starting a step runs its copies, and a matched pair moves
 * its data the moment both of its steps have started (rendezvous). When no
 * rank can move and some have not finished, that is a deadlock. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "plan_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reduce.h"

struct rank_state {
    int cur;          /* step started last; -1 before the first */
    int pending;      /* comm ops of step cur not complete */
    uint64_t start;   /* time step cur started */
    uint64_t end;     /* time the last op of step cur completed */
    unsigned char *scratch;
    uint32_t *step_of; /* [nops] */
    int32_t *match_rank; /* [nops]: the other end of a message */
    uint32_t *match_op;
    unsigned char *done; /* [nops] */
};

struct model {
    const struct model_job *job;
    struct model_report *rep;
    struct rank_state *st;
    int *ready; /* ranks whose current step is complete */
    int nready;
    chorus_op_t op; /* AVG mapped to SUM */
    size_t esize;
};

static const char *const kind_names[] = {"SEND", "RECV", "RECV_REDUCE", "COPY"};
static const char *const buf_names[] = {"sendbuf", "recvbuf", "scratch"};

static int fail(struct model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct model *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->rep->error, sizeof m->rep->error, fmt, ap);
    va_end(ap);
    return -1;
}

/* "RECV_REDUCE 64 B from 3 (sendbuf+0 -> recvbuf+128)" */
static const char *describe(const struct plan_op *o, char *out, size_t cap)
{
    const char *k = o->kind <= PLAN_COPY ? kind_names[o->kind] : "BAD-KIND";
    const char *sb = o->src_buf < PLAN_NBUFS ? buf_names[o->src_buf] : "bad-buffer";
    const char *db = o->dst_buf < PLAN_NBUFS ? buf_names[o->dst_buf] : "bad-buffer";
    unsigned long long so = o->src_off, dof = o->dst_off, b = o->bytes;
    switch (o->kind) {
    case PLAN_SEND: snprintf(out, cap, "%s %llu B to %d from %s+%llu", k, b, o->peer, sb, so); break;
    case PLAN_RECV: snprintf(out, cap, "%s %llu B from %d into %s+%llu", k, b, o->peer, db, dof); break;
    case PLAN_RECV_REDUCE:
        snprintf(out, cap, "%s %llu B from %d (%s+%llu -> %s+%llu)", k, b, o->peer, sb, so, db, dof);
        break;
    default: snprintf(out, cap, "%s %llu B %s+%llu -> %s+%llu", k, b, sb, so, db, dof); break;
    }
    return out;
}

/* ---- addresses ------------------------------------------------------------------ */

static size_t buf_size(const struct model *m, int r, int buf)
{
    const struct model_rank *k = &m->job->ranks[r];
    return buf == PLAN_SENDBUF ? k->send_bytes : buf == PLAN_RECVBUF ? k->recv_bytes
                                                : m->job->plans[r].scratch_bytes;
}

static unsigned char *buf_base(const struct model *m, int r, int buf)
{
    const struct model_rank *k = &m->job->ranks[r];
    return buf == PLAN_SENDBUF ? k->send : buf == PLAN_RECVBUF ? k->recv : m->st[r].scratch;
}

/* Only for ranges already checked in bounds and not empty. */
static unsigned char *addr(const struct model *m, int r, int buf, uint64_t off)
{
    return buf_base(m, r, buf) + off;
}

struct span {
    uintptr_t lo, hi; /* empty when lo == hi */
};

static struct span span_of(const struct model *m, int r, int buf, uint64_t off, uint64_t bytes)
{
    uintptr_t base = (uintptr_t)buf_base(m, r, buf);
    if (bytes == 0)
        return (struct span){0, 0};
    return (struct span){base + (uintptr_t)off, base + (uintptr_t)off + (uintptr_t)bytes};
}

static int overlap(struct span a, struct span b) { return a.lo < b.hi && b.lo < a.hi; }

/* What an op reads (locally) and writes. */
static void op_spans(const struct model *m, int r, const struct plan_op *o, struct span *rd,
                     struct span *wr)
{
    *rd = *wr = (struct span){0, 0};
    if (o->kind == PLAN_SEND || o->kind == PLAN_RECV_REDUCE || o->kind == PLAN_COPY)
        *rd = span_of(m, r, o->src_buf, o->src_off, o->bytes);
    if (o->kind == PLAN_RECV || o->kind == PLAN_RECV_REDUCE || o->kind == PLAN_COPY)
        *wr = span_of(m, r, o->dst_buf, o->dst_off, o->bytes);
}

/* ---- static checks ------------------------------------------------------------- */

static int in_bounds(const struct model *m, int r, int buf, uint64_t off, uint64_t bytes)
{
    uint64_t size = buf_size(m, r, buf);
    return off <= size && bytes <= size - off;
}

static int check_op(struct model *m, int r, int s, uint32_t i)
{
    const struct plan_op *o = &m->job->plans[r].ops[i];
    char d[160];
    const int n = m->job->nranks;
    if (o->kind > PLAN_COPY || o->src_buf >= PLAN_NBUFS || o->dst_buf >= PLAN_NBUFS)
        return fail(m, "rank %d step %d op %u: bad kind or buffer (%s)", r, s, i,
                    describe(o, d, sizeof d));
    int reads = o->kind != PLAN_RECV, writes = o->kind != PLAN_SEND;
    if (o->kind != PLAN_COPY && (o->peer < 0 || o->peer >= n || o->peer == r))
        return fail(m, "rank %d step %d op %u: bad peer (%s)", r, s, i, describe(o, d, sizeof d));
    if (reads && !in_bounds(m, r, o->src_buf, o->src_off, o->bytes))
        return fail(m, "rank %d step %d op %u: reads beyond %s (%zu B): %s", r, s, i,
                    buf_names[o->src_buf], buf_size(m, r, o->src_buf), describe(o, d, sizeof d));
    if (writes && !in_bounds(m, r, o->dst_buf, o->dst_off, o->bytes))
        return fail(m, "rank %d step %d op %u: writes beyond %s (%zu B): %s", r, s, i,
                    buf_names[o->dst_buf], buf_size(m, r, o->dst_buf), describe(o, d, sizeof d));
    if (writes && o->dst_buf == PLAN_SENDBUF)
        return fail(m, "rank %d step %d op %u: writes the send buffer: %s", r, s, i,
                    describe(o, d, sizeof d));
    if (o->kind == PLAN_RECV_REDUCE && o->bytes % m->esize)
        return fail(m, "rank %d step %d op %u: %llu B is not whole elements of %zu B: %s", r, s,
                    i, (unsigned long long)o->bytes, m->esize, describe(o, d, sizeof d));
    struct span rd, wr;
    op_spans(m, r, o, &rd, &wr);
    int exact = rd.lo == wr.lo && rd.hi == wr.hi;
    if (overlap(rd, wr) && !(o->kind == PLAN_RECV_REDUCE && exact))
        return fail(m, "rank %d step %d op %u: source and destination overlap: %s", r, s, i,
                    describe(o, d, sizeof d));
    return 0;
}

/* No op of a step writes bytes another op of the step reads or writes. */
static int check_hazards(struct model *m, int r, int s)
{
    const struct plan *p = &m->job->plans[r];
    char d1[160], d2[160];
    for (uint32_t i = p->step_first[s]; i < p->step_first[s + 1]; i++) {
        struct span ri, wi;
        op_spans(m, r, &p->ops[i], &ri, &wi);
        for (uint32_t j = i + 1; j < p->step_first[s + 1]; j++) {
            struct span rj, wj;
            op_spans(m, r, &p->ops[j], &rj, &wj);
            if (overlap(wi, rj) || overlap(wi, wj) || overlap(wj, ri))
                return fail(m, "rank %d step %d: ops %u and %u touch the same bytes, one "
                            "writing: [%s] [%s]", r, s, i, j, describe(&p->ops[i], d1, sizeof d1),
                            describe(&p->ops[j], d2, sizeof d2));
        }
    }
    return 0;
}

static int check_plan(struct model *m, int r)
{
    const struct plan *p = &m->job->plans[r];
    if (p->nsteps < 0 || (p->nsteps > 0 && !p->step_first))
        return fail(m, "rank %d: malformed plan (%d steps)", r, p->nsteps);
    if (p->nsteps == 0)
        return p->nops == 0 ? 0 : fail(m, "rank %d: %u ops outside any step", r, p->nops);
    if (p->step_first[0] != 0 || p->step_first[p->nsteps] != p->nops)
        return fail(m, "rank %d: step bounds do not cover the ops", r);
    for (int s = 0; s < p->nsteps; s++) {
        if (p->step_first[s] > p->step_first[s + 1])
            return fail(m, "rank %d: step %d has a negative op count", r, s);
        for (uint32_t i = p->step_first[s]; i < p->step_first[s + 1]; i++) {
            m->st[r].step_of[i] = (uint32_t)s;
            if (check_op(m, r, s, i))
                return -1;
        }
        if (check_hazards(m, r, s))
            return -1;
    }
    return 0;
}

/* ---- matching -------------------------------------------------------------------- */

struct msg {
    int from, to;
    uint32_t seq; /* k-th message from -> to */
    int is_recv;
    int rank;     /* whose op */
    uint32_t op;
};

static int msg_cmp(const void *x, const void *y)
{
    const struct msg *a = x, *b = y;
    if (a->from != b->from)
        return a->from < b->from ? -1 : 1;
    if (a->to != b->to)
        return a->to < b->to ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return a->is_recv - b->is_recv;
}

static int match_messages(struct model *m)
{
    const int n = m->job->nranks;
    size_t total = 0, k = 0;
    for (int r = 0; r < n; r++)
        total += m->job->plans[r].nops;
    struct msg *v = malloc((total ? total : 1) * sizeof *v);
    uint32_t *seq = calloc((size_t)n * (size_t)n * 2, sizeof *seq);
    if (!v || !seq) {
        free(v);
        free(seq);
        return fail(m, "model: out of memory");
    }
    for (int r = 0; r < n; r++) {
        const struct plan *p = &m->job->plans[r];
        for (uint32_t i = 0; i < p->nops; i++) {
            const struct plan_op *o = &p->ops[i];
            if (o->kind == PLAN_COPY)
                continue;
            int is_recv = o->kind != PLAN_SEND;
            int from = is_recv ? o->peer : r, to = is_recv ? r : o->peer;
            v[k++] = (struct msg){from, to, seq[((size_t)from * n + to) * 2 + is_recv]++, is_recv,
                                  r, i};
        }
    }
    qsort(v, k, sizeof *v, msg_cmp);
    int res = 0;
    char d[160];
    for (size_t i = 0; i < k && !res; i += 2) { /* a send, then its receive */
        int paired = i + 1 < k && !v[i].is_recv && v[i + 1].is_recv && v[i].from == v[i + 1].from &&
                     v[i].to == v[i + 1].to && v[i].seq == v[i + 1].seq;
        const struct plan_op *o = &m->job->plans[v[i].rank].ops[v[i].op];
        if (!paired) {
            res = fail(m, "rank %d step %u op %u has no matching %s (message %u from %d to %d): "
                       "%s", v[i].rank, m->st[v[i].rank].step_of[v[i].op], v[i].op,
                       v[i].is_recv ? "send" : "receive", v[i].seq, v[i].from, v[i].to,
                       describe(o, d, sizeof d));
            break;
        }
        const struct plan_op *q = &m->job->plans[v[i + 1].rank].ops[v[i + 1].op];
        if (o->bytes != q->bytes) {
            res = fail(m, "message %u from %d to %d: %llu B sent (step %u) but %llu B received "
                       "(step %u)", v[i].seq, v[i].from, v[i].to, (unsigned long long)o->bytes,
                       m->st[v[i].rank].step_of[v[i].op], (unsigned long long)q->bytes,
                       m->st[v[i + 1].rank].step_of[v[i + 1].op]);
            break;
        }
        m->st[v[i].rank].match_rank[v[i].op] = v[i + 1].rank;
        m->st[v[i].rank].match_op[v[i].op] = v[i + 1].op;
        m->st[v[i + 1].rank].match_rank[v[i + 1].op] = v[i].rank;
        m->st[v[i + 1].rank].match_op[v[i + 1].op] = v[i].op;
    }
    free(v);
    free(seq);
    return res;
}

/* ---- running --------------------------------------------------------------------- */

static struct model_stats *stats(struct model *m, int r)
{
    return m->rep->stats ? &m->rep->stats[r] : NULL;
}

/* Moves the data of a matched pair (both of its steps have started). */
static void transfer(struct model *m, int s, uint32_t si, int d, uint32_t di)
{
    const struct plan_op *so = &m->job->plans[s].ops[si], *dop = &m->job->plans[d].ops[di];
    struct rank_state *a = &m->st[s], *b = &m->st[d];
    uint64_t t = (a->start > b->start ? a->start : b->start) + 1;
    if (so->bytes) {
        const unsigned char *in = addr(m, s, so->src_buf, so->src_off);
        unsigned char *out = addr(m, d, dop->dst_buf, dop->dst_off);
        if (dop->kind == PLAN_RECV) {
            memcpy(out, in, so->bytes);
        } else {
            const void *srcs[2] = {addr(m, d, dop->src_buf, dop->src_off), in};
            chorus_reduce_many(m->job->type, m->op, out, srcs, 2, so->bytes / m->esize, 1);
        }
    }
    if (stats(m, s)) {
        stats(m, s)->msgs_sent++;
        stats(m, s)->bytes_sent += so->bytes;
        stats(m, d)->msgs_recv++;
        stats(m, d)->bytes_recv += so->bytes;
        if (dop->kind == PLAN_RECV_REDUCE)
            stats(m, d)->bytes_reduced += so->bytes;
    }
    a->done[si] = b->done[di] = 1;
    a->end = a->end > t ? a->end : t;
    b->end = b->end > t ? b->end : t;
    if (--a->pending == 0)
        m->ready[m->nready++] = s;
    if (--b->pending == 0)
        m->ready[m->nready++] = d;
}

/* Rank r's current step is complete: start the next one. */
static void start_next(struct model *m, int r)
{
    const struct plan *p = &m->job->plans[r];
    struct rank_state *x = &m->st[r];
    x->start = x->end;
    if (++x->cur >= p->nsteps) {
        if (stats(m, r))
            stats(m, r)->finish = x->end;
        return;
    }
    x->pending = 1; /* held while the step starts, so it is not declared ready twice */
    for (uint32_t i = p->step_first[x->cur]; i < p->step_first[x->cur + 1]; i++) {
        const struct plan_op *o = &p->ops[i];
        if (o->kind != PLAN_COPY)
            continue;
        if (o->bytes)
            memcpy(addr(m, r, o->dst_buf, o->dst_off), addr(m, r, o->src_buf, o->src_off), o->bytes);
        x->done[i] = 1;
        if (stats(m, r))
            stats(m, r)->bytes_copied += o->bytes;
    }
    for (uint32_t i = p->step_first[x->cur]; i < p->step_first[x->cur + 1]; i++)
        x->pending += p->ops[i].kind != PLAN_COPY;
    for (uint32_t i = p->step_first[x->cur]; i < p->step_first[x->cur + 1]; i++) {
        const struct plan_op *o = &p->ops[i];
        if (o->kind == PLAN_COPY || x->done[i])
            continue;
        int y = x->match_rank[i];
        uint32_t j = x->match_op[i];
        if (m->st[y].cur != (int)m->st[y].step_of[j])
            continue; /* the other end's step has not started: it will move the data */
        if (o->kind == PLAN_SEND)
            transfer(m, r, i, y, j);
        else
            transfer(m, y, j, r, i);
    }
    if (--x->pending == 0)
        m->ready[m->nready++] = r;
}

static int report_deadlock(struct model *m)
{
    char d[160];
    for (int r = 0; r < m->job->nranks; r++) {
        const struct plan *p = &m->job->plans[r];
        struct rank_state *x = &m->st[r];
        if (x->cur >= p->nsteps)
            continue;
        for (uint32_t i = p->step_first[x->cur]; i < p->step_first[x->cur + 1]; i++) {
            if (x->done[i])
                continue;
            int y = x->match_rank[i];
            return fail(m, "deadlock: rank %d waits in step %d on op %u (%s); rank %d is in "
                        "step %d, the matching op is in its step %u", r, x->cur, i,
                        describe(&p->ops[i], d, sizeof d), y, m->st[y].cur,
                        m->st[y].step_of[x->match_op[i]]);
        }
    }
    return fail(m, "deadlock (no waiting op found: model bug)");
}

static int run(struct model *m)
{
    const int n = m->job->nranks;
    for (int r = 0; r < n; r++)
        m->ready[m->nready++] = r;
    while (m->nready > 0)
        start_next(m, m->ready[--m->nready]);
    for (int r = 0; r < n; r++)
        if (m->st[r].cur < m->job->plans[r].nsteps)
            return report_deadlock(m);
    return 0;
}

/* The executor's AVG: divide each rank's result range once, at the end. */
static int finish_avg(struct model *m)
{
    for (int r = 0; r < m->job->nranks; r++) {
        const struct plan *p = &m->job->plans[r];
        if (!p->result_bytes)
            continue;
        if (p->result_buf >= PLAN_NBUFS || p->result_buf == PLAN_SENDBUF ||
            !in_bounds(m, r, p->result_buf, p->result_off, p->result_bytes) ||
            p->result_bytes % m->esize)
            return fail(m, "rank %d: bad result range %s+%llu, %llu B", r,
                        p->result_buf < PLAN_NBUFS ? buf_names[p->result_buf] : "bad-buffer",
                        (unsigned long long)p->result_off, (unsigned long long)p->result_bytes);
        if (m->job->op == CHORUS_AVG) {
            void *dst = addr(m, r, p->result_buf, p->result_off);
            const void *src[1] = {dst};
            chorus_reduce_many(m->job->type, CHORUS_AVG, dst, src, 1, p->result_bytes / m->esize,
                               m->job->nranks);
        }
    }
    return 0;
}

static int alloc_state(struct model *m)
{
    const int n = m->job->nranks;
    m->st = calloc((size_t)n, sizeof *m->st);
    m->ready = malloc((size_t)n * 2 * sizeof *m->ready + 1);
    if (!m->st || !m->ready)
        return fail(m, "model: out of memory");
    for (int r = 0; r < n; r++) {
        const struct plan *p = &m->job->plans[r];
        size_t ops = p->nops ? p->nops : 1;
        struct rank_state *x = &m->st[r];
        x->cur = -1;
        x->scratch = malloc(p->scratch_bytes ? p->scratch_bytes : 1);
        x->step_of = calloc(ops, sizeof *x->step_of);
        x->match_rank = calloc(ops, sizeof *x->match_rank);
        x->match_op = calloc(ops, sizeof *x->match_op);
        x->done = calloc(ops, 1);
        if (!x->scratch || !x->step_of || !x->match_rank || !x->match_op || !x->done)
            return fail(m, "model: out of memory");
        memset(x->scratch, 0xcd, p->scratch_bytes); /* stale data shows in wrong results */
    }
    return 0;
}

static void free_state(struct model *m)
{
    for (int r = 0; m->st && r < m->job->nranks; r++) {
        free(m->st[r].scratch);
        free(m->st[r].step_of);
        free(m->st[r].match_rank);
        free(m->st[r].match_op);
        free(m->st[r].done);
    }
    free(m->st);
    free(m->ready);
}

int model_run(const struct model_job *job, struct model_report *rep)
{
    struct model m = {.job = job, .rep = rep, .op = job->op == CHORUS_AVG ? CHORUS_SUM : job->op,
                      .esize = chorus_type_size(job->type)};
    rep->error[0] = 0;
    rep->rounds = 0;
    if (job->nranks < 1 || m.esize == 0)
        return fail(&m, "model: bad job (%d ranks, type %d)", job->nranks, (int)job->type);
    if (rep->stats)
        memset(rep->stats, 0, (size_t)job->nranks * sizeof *rep->stats);
    int res = alloc_state(&m);
    for (int r = 0; r < job->nranks && !res; r++) {
        res = check_plan(&m, r);
        if (rep->stats)
            rep->stats[r].steps = job->plans[r].nsteps;
    }
    if (!res)
        res = match_messages(&m);
    if (!res)
        res = run(&m);
    if (!res)
        res = finish_avg(&m);
    for (int r = 0; r < job->nranks && !res; r++)
        if (m.st[r].end > rep->rounds)
            rep->rounds = m.st[r].end;
    free_state(&m);
    return res;
}
