/* sim_match.c - checks the ops of every plan and pairs each send with its
 * receive, as algos/plan.h defines it: the k-th send a -> b matches the k-th
 * receive at b from a, with equal byte counts.
 *
 * Each rank's sends and receives are sorted by (peer, op index) once; the
 * sends of a to b and the receives at b from a are then two runs read side
 * by side. That is O(ops log ops) with no nranks x nranks table, so 768 ranks
 * with a million messages match in well under a second. Buffer ranges and
 * in-step hazards are not checked here: tests/plan_model.c does that with
 * real memory; the simulator needs only who talks to whom and how much. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim_internal.h"

static const char *const kind_names[] = {"SEND", "RECV", "RECV_REDUCE", "COPY"};

const char *sim_describe(const struct plan_op *o, char *out, size_t cap)
{
    const char *k = o->kind <= PLAN_COPY ? kind_names[o->kind] : "BAD-KIND";
    unsigned long long b = (unsigned long long)o->bytes;
    if (o->kind == PLAN_SEND)
        snprintf(out, cap, "%s %llu B to %d", k, b, (int)o->peer);
    else if (o->kind == PLAN_RECV || o->kind == PLAN_RECV_REDUCE)
        snprintf(out, cap, "%s %llu B from %d", k, b, (int)o->peer);
    else
        snprintf(out, cap, "%s %llu B", k, b);
    return out;
}

int sim_step_of(const struct plan *p, uint32_t i)
{
    int lo = 0, hi = p->nsteps - 1; /* the step s with step_first[s] <= i < step_first[s+1] */
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (p->step_first[mid] <= i)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static int failf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int check_plan(const struct plan *p, int r, int n, size_t esize, char *err, size_t errlen)
{
    char d[96];
    if (p->nsteps < 0 || (p->nsteps > 0 && (!p->step_first || !p->ops)))
        return failf(err, errlen, "rank %d: malformed plan (%d steps)", r, p->nsteps);
    if (p->nsteps == 0)
        return p->nops == 0 ? 0 : failf(err, errlen, "rank %d: %u ops outside any step", r, p->nops);
    if (p->step_first[0] != 0 || p->step_first[p->nsteps] != p->nops)
        return failf(err, errlen, "rank %d: step bounds do not cover the ops", r);
    for (int s = 0; s < p->nsteps; s++) {
        if (p->step_first[s] > p->step_first[s + 1])
            return failf(err, errlen, "rank %d: step %d has a negative op count", r, s);
        for (uint32_t i = p->step_first[s]; i < p->step_first[s + 1]; i++) {
            const struct plan_op *o = &p->ops[i];
            if (o->kind > PLAN_COPY)
                return failf(err, errlen, "rank %d step %d op %u: bad kind %d", r, s, i, o->kind);
            if (o->kind != PLAN_COPY && (o->peer < 0 || o->peer >= n || o->peer == r))
                return failf(err, errlen, "rank %d step %d op %u: bad peer (%s)", r, s, i,
                             sim_describe(o, d, sizeof d));
            if (o->kind == PLAN_RECV_REDUCE && esize && o->bytes % esize)
                return failf(err, errlen, "rank %d step %d op %u: %llu B is not whole elements "
                             "of %zu B (%s)", r, s, i, (unsigned long long)o->bytes, esize,
                             sim_describe(o, d, sizeof d));
        }
    }
    return 0;
}

static int key_cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* First index in keys[lo, hi) whose peer (high 32 bits) is >= peer. */
static uint64_t lower_peer(const uint64_t *keys, uint64_t lo, uint64_t hi, uint32_t peer)
{
    uint64_t want = (uint64_t)peer << 32;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < want)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int unmatched(const struct sim_ops *s, int r, uint32_t i, char *err, size_t errlen)
{
    const struct plan *p = &s->plans[r];
    const struct plan_op *o = &p->ops[i];
    char d[96];
    return failf(err, errlen, "rank %d step %d op %u has no matching %s: %s", r,
                 sim_step_of(p, i), i, o->kind == PLAN_SEND ? "receive" : "send",
                 sim_describe(o, d, sizeof d));
}

/* Pairs the sorted sends of every rank with the receives of their peers. */
static int pair_up(struct sim_ops *s, const uint64_t *sk, const uint64_t *sb, const uint64_t *rk,
                   const uint64_t *rb, char *err, size_t errlen)
{
    for (int a = 0; a < s->nranks; a++) {
        uint64_t i = sb[a];
        while (i < sb[a + 1]) {
            uint32_t b = (uint32_t)(sk[i] >> 32);
            uint64_t j = lower_peer(rk, rb[b], rb[b + 1], (uint32_t)a);
            for (; i < sb[a + 1] && (uint32_t)(sk[i] >> 32) == b; i++, j++) {
                uint32_t si = (uint32_t)sk[i];
                if (j >= rb[b + 1] || (uint32_t)(rk[j] >> 32) != (uint32_t)a)
                    return unmatched(s, a, si, err, errlen);
                uint32_t ri = (uint32_t)rk[j];
                const struct plan_op *so = &s->plans[a].ops[si], *ro = &s->plans[b].ops[ri];
                if (so->bytes != ro->bytes)
                    return failf(err, errlen, "message from %d to %d: %llu B sent (step %d op "
                                 "%u) but %llu B received (step %d op %u)", a, (int)b,
                                 (unsigned long long)so->bytes, sim_step_of(&s->plans[a], si), si,
                                 (unsigned long long)ro->bytes, sim_step_of(&s->plans[b], ri), ri);
                s->match[s->op_base[a] + si] = (uint32_t)(s->op_base[b] + ri);
                s->match[s->op_base[b] + ri] = (uint32_t)(s->op_base[a] + si);
            }
        }
    }
    for (int b = 0; b < s->nranks; b++) /* receives no send reached */
        for (uint64_t j = rb[b]; j < rb[b + 1]; j++)
            if (s->match[s->op_base[b] + (uint32_t)rk[j]] == SIM_NONE)
                return unmatched(s, b, (uint32_t)rk[j], err, errlen);
    return 0;
}

int sim_match(struct sim_ops *s, size_t esize, char *err, size_t errlen)
{
    const int n = s->nranks;
    s->op_base = malloc(((size_t)n + 1) * sizeof *s->op_base);
    if (!s->op_base)
        return failf(err, errlen, "simulator: out of memory");
    uint64_t total = 0, nsend = 0, nrecv = 0;
    for (int r = 0; r < n; r++) {
        if (check_plan(&s->plans[r], r, n, esize, err, errlen))
            return -1;
        s->op_base[r] = total;
        total += s->plans[r].nops;
        for (uint32_t i = 0; i < s->plans[r].nops; i++) {
            unsigned k = s->plans[r].ops[i].kind;
            nsend += k == PLAN_SEND;
            nrecv += k == PLAN_RECV || k == PLAN_RECV_REDUCE;
        }
    }
    s->op_base[n] = total;
    if (total >= SIM_NONE)
        return failf(err, errlen, "simulator: %llu ops are more than it can hold",
                     (unsigned long long)total);
    s->match = malloc((total ? total : 1) * sizeof *s->match);
    s->owner = malloc((total ? total : 1) * sizeof *s->owner);
    uint64_t *sk = malloc((nsend ? nsend : 1) * sizeof *sk), *rk = malloc((nrecv ? nrecv : 1) * sizeof *rk);
    uint64_t *sb = malloc(((size_t)n + 1) * sizeof *sb), *rb = malloc(((size_t)n + 1) * sizeof *rb);
    int res = -1;
    if (!s->match || !s->owner || !sk || !rk || !sb || !rb) {
        failf(err, errlen, "simulator: out of memory");
        goto out;
    }
    uint64_t ns = 0, nr = 0;
    for (int r = 0; r < n; r++) {
        const struct plan *p = &s->plans[r];
        sb[r] = ns;
        rb[r] = nr;
        for (uint32_t i = 0; i < p->nops; i++) {
            const struct plan_op *o = &p->ops[i];
            s->match[s->op_base[r] + i] = SIM_NONE;
            s->owner[s->op_base[r] + i] = r;
            uint64_t key = (uint64_t)(uint32_t)o->peer << 32 | i;
            if (o->kind == PLAN_SEND)
                sk[ns++] = key;
            else if (o->kind != PLAN_COPY)
                rk[nr++] = key;
        }
        qsort(sk + sb[r], ns - sb[r], sizeof *sk, key_cmp);
        qsort(rk + rb[r], nr - rb[r], sizeof *rk, key_cmp);
    }
    sb[n] = ns;
    rb[n] = nr;
    res = pair_up(s, sk, sb, rk, rb, err, errlen);
out:
    free(sk);
    free(rk);
    free(sb);
    free(rb);
    return res;
}

void sim_ops_free(struct sim_ops *s)
{
    free(s->op_base);
    free(s->match);
    free(s->owner);
    s->op_base = NULL;
    s->match = NULL;
    s->owner = NULL;
}
