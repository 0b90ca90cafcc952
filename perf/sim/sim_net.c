/* sim_net.c - the network of the simulator: resources (ports and links),
 * the route and latency of a message, and how flows share bandwidth.
 *
 * Resources per level and position (topo.h positions; the resource of a
 * rank plane at a member is named by the position of that plane's rank):
 *   switch, Clos  2 per position: egress, ingress (Clos: bw / oversub, a
 *                 non-blocking switch with thinner uplinks; tiers are not
 *                 modelled), latency 1 x level latency (the level's
 *                 latency is its end-to-end figure);
 *   full mesh     group per position: the directed link to each member;
 *   ring          2 per position: links to the next and previous member,
 *                 shortest way round, latency hops x level latency;
 *   torus / mesh  6 per position: +-x, +-y, +-z; dimension-ordered routes
 *                 (x, then y, then z; shortest way round when it wraps),
 *                 latency hops x level latency.
 * A message between ranks a and b that cross level L travels in a's plane
 * (a's coordinates below L): the links of L are per rank, as in rail-style
 * wiring, and the hop from that plane to b inside the member is not
 * modelled (docs/simulator.md).
 *
 * Sharing: rate = min over the route of capacity / flows there. Rates
 * change only when flows start or end; those are collected per batch (one
 * event time) and only flows on resources touched in the batch get new
 * rates, so a thousand symmetric flows starting together cost one pass. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim_internal.h"

/* 32 bytes each: 1<<24 of them is half a gigabyte, far beyond any topology
 * file we ship (768 ranks need a few thousand). */
#define SIM_MAX_RES (1ull << 24)

static chorus_result_t fail(char *err, size_t errlen, chorus_result_t rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static chorus_result_t fail(char *err, size_t errlen, chorus_result_t rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static int per_position(const struct sim_level_geo *g)
{
    switch (g->shape) {
    case TOPO_SHAPE_FULL_MESH: return g->group;
    case TOPO_SHAPE_TORUS: return 6;
    default: return 2;
    }
}

chorus_result_t sim_net_init(struct sim_net *n, const struct topo *t, char *err, size_t errlen)
{
    *n = (struct sim_net){.t = t, .batch = 1};
    uint64_t total = 0;
    for (int i = 0; i < t->nlevels; i++) {
        const struct topo_level *l = &t->levels[i];
        struct sim_level_geo *g = &n->lv[i];
        g->group = l->group;
        g->stride = topo_stride(t, i);
        g->shape = l->shape;
        g->lat = l->latency;
        g->cap = l->shape == TOPO_SHAPE_CLOS && l->oversub > 1 ? l->bw / l->oversub : l->bw;
        g->wrap = l->wrap;
        for (int d = 0; d < 3; d++)
            g->dims[d] = l->dims[d] > 0 ? l->dims[d] : 1;
        if (g->shape == TOPO_SHAPE_TORUS && g->dims[0] * g->dims[1] * g->dims[2] != g->group)
            return fail(err, errlen, CHORUS_INVALID_ARGUMENT, "level %d '%s': torus %dx%dx%d "
                        "does not have %d members", i, l->name, g->dims[0], g->dims[1],
                        g->dims[2], g->group);
        if (!(g->cap > 0))
            return fail(err, errlen, CHORUS_INVALID_ARGUMENT, "level %d '%s': bandwidth must be "
                        "> 0", i, l->name);
        g->base = total;
        total += (uint64_t)t->nranks * (uint64_t)per_position(g);
    }
    if (total > SIM_MAX_RES)
        return fail(err, errlen, CHORUS_INVALID_ARGUMENT, "topology '%s' needs %llu links and "
                    "ports; the simulator holds at most %llu", t->name, (unsigned long long)total,
                    (unsigned long long)SIM_MAX_RES);
    n->nres = total;
    n->res = calloc(total ? total : 1, sizeof *n->res);
    if (!n->res)
        return fail(err, errlen, CHORUS_SYSTEM_ERROR, "simulator: out of memory for %llu links",
                    (unsigned long long)total);
    for (int i = 0; i < t->nlevels; i++)
        for (uint64_t k = 0; k < (uint64_t)t->nranks * (uint64_t)per_position(&n->lv[i]); k++)
            n->res[n->lv[i].base + k].cap = n->lv[i].cap;
    return CHORUS_SUCCESS;
}

void sim_net_free(struct sim_net *n)
{
    for (uint64_t k = 0; n->res && k < n->nres; k++)
        free(n->res[k].flows);
    for (uint32_t f = 0; n->flows && f < n->nflows_cap; f++)
        free(n->flows[f].ext);
    free(n->res);
    free(n->flows);
    free(n->free_ids);
    free(n->dirty);
    free(n->route_buf);
    *n = (struct sim_net){0};
}

/* ---- routes ------------------------------------------------------------------ */

static int route_push(struct sim_net *n, uint32_t *len, uint64_t res)
{
    if (*len == n->route_cap) {
        uint32_t cap = n->route_cap ? n->route_cap * 2 : 64;
        uint32_t *b = realloc(n->route_buf, cap * sizeof *b);
        if (!b)
            return -1;
        n->route_buf = b;
        n->route_cap = cap;
    }
    n->route_buf[(*len)++] = (uint32_t)res;
    return 0;
}

/* Position of a's plane at member m of level g (a is at member cu). */
static int64_t plane_pos(const struct sim_level_geo *g, int64_t pa, int cu, int m)
{
    return pa + ((int64_t)m - cu) * g->stride;
}

/* Shortest step direction from c to target on a ring of k (wrap) or a line. */
static int step_dir(int c, int target, int k, int wrap)
{
    if (!wrap)
        return target > c ? 1 : -1;
    int fwd = ((target - c) % k + k) % k;
    return fwd <= k - fwd ? 1 : -1;
}

static int route_ring(struct sim_net *n, const struct sim_level_geo *g, int64_t pa, int cu,
                      int cv, uint32_t *len)
{
    int m = cu, dir = step_dir(cu, cv, g->group, 1);
    while (m != cv) {
        uint64_t r = g->base + (uint64_t)plane_pos(g, pa, cu, m) * 2 + (dir < 0);
        if (route_push(n, len, r))
            return -1;
        m = ((m + dir) % g->group + g->group) % g->group;
    }
    return 0;
}

static int route_torus(struct sim_net *n, const struct sim_level_geo *g, int64_t pa, int cu,
                       int cv, uint32_t *len)
{
    int c[3] = {cu % g->dims[0], cu / g->dims[0] % g->dims[1], cu / (g->dims[0] * g->dims[1])};
    int d[3] = {cv % g->dims[0], cv / g->dims[0] % g->dims[1], cv / (g->dims[0] * g->dims[1])};
    for (int k = 0; k < 3; k++) {
        while (c[k] != d[k]) {
            int dir = step_dir(c[k], d[k], g->dims[k], g->wrap);
            int m = c[0] + g->dims[0] * (c[1] + g->dims[1] * c[2]);
            uint64_t r = g->base + (uint64_t)plane_pos(g, pa, cu, m) * 6 + (uint64_t)k * 2 +
                         (dir < 0);
            if (route_push(n, len, r))
                return -1;
            c[k] = ((c[k] + dir) % g->dims[k] + g->dims[k]) % g->dims[k];
        }
    }
    return 0;
}

chorus_result_t sim_net_route(struct sim_net *n, int a, int b, int *level, double *lat,
                              uint32_t *nres, char *err, size_t errlen)
{
    const struct topo *t = n->t;
    int L = topo_level_between(t, a, b);
    *nres = 0;
    if (L < 0)
        return fail(err, errlen, CHORUS_INTERNAL_ERROR, "simulator: message from rank %d to "
                    "itself", a);
    const struct sim_level_geo *g = &n->lv[L];
    int64_t pa = t->rank_pos[a], pb = t->rank_pos[b];
    int cu = (int)(pa / g->stride % g->group), cv = (int)(pb / g->stride % g->group);
    int bad = 0;
    switch (g->shape) {
    case TOPO_SHAPE_FULL_MESH:
        bad = route_push(n, nres, g->base + (uint64_t)pa * (uint64_t)g->group + (uint64_t)cv);
        break;
    case TOPO_SHAPE_RING: bad = route_ring(n, g, pa, cu, cv, nres); break;
    case TOPO_SHAPE_TORUS: bad = route_torus(n, g, pa, cu, cv, nres); break;
    default: /* switch, Clos: the sender's egress and the receiver's ingress */
        bad = route_push(n, nres, g->base + (uint64_t)pa * 2) ||
              route_push(n, nres, g->base + (uint64_t)pb * 2 + 1);
        break;
    }
    if (bad)
        return fail(err, errlen, CHORUS_SYSTEM_ERROR, "simulator: out of memory for a route");
    *level = L;
    int hops = g->shape == TOPO_SHAPE_RING || g->shape == TOPO_SHAPE_TORUS ? (int)*nres : 1;
    *lat = hops * g->lat;
    return CHORUS_SUCCESS;
}

/* ---- flows ------------------------------------------------------------------- */

static uint32_t *flow_res(struct sim_flow *f) { return f->ext ? f->ext : f->res_inl; }
static uint32_t *flow_slot(struct sim_flow *f) { return f->ext ? f->ext + f->nres : f->slot_inl; }

static int mark_dirty(struct sim_net *n, uint32_t r)
{
    if (n->res[r].stamp == n->batch)
        return 0;
    if (n->ndirty == n->dirty_cap) {
        uint64_t cap = n->dirty_cap ? n->dirty_cap * 2 : 1024;
        uint32_t *d = realloc(n->dirty, cap * sizeof *d);
        if (!d)
            return -1;
        n->dirty = d;
        n->dirty_cap = cap;
    }
    n->res[r].stamp = n->batch;
    n->dirty[n->ndirty++] = r;
    return 0;
}

static int new_flow_id(struct sim_net *n, uint32_t *id)
{
    if (n->nfree == 0) {
        uint32_t cap = n->nflows_cap ? n->nflows_cap * 2 : 1024;
        struct sim_flow *f = realloc(n->flows, cap * sizeof *f);
        if (!f)
            return -1;
        n->flows = f;
        uint32_t *ids = realloc(n->free_ids, cap * sizeof *ids);
        if (!ids)
            return -1;
        n->free_ids = ids;
        for (uint32_t k = n->nflows_cap; k < cap; k++) {
            f[k] = (struct sim_flow){0};
            n->free_ids[n->nfree++] = cap - 1 - (k - n->nflows_cap); /* low ids first */
        }
        n->nflows_cap = cap;
    }
    *id = n->free_ids[--n->nfree];
    return 0;
}

chorus_result_t sim_net_flow_start(struct sim_net *n, uint32_t msg, double bytes, double now,
                                   uint32_t nres, uint32_t *id)
{
    if (new_flow_id(n, id))
        return CHORUS_SYSTEM_ERROR;
    struct sim_flow *f = &n->flows[*id];
    uint32_t version = f->version;
    free(f->ext);
    *f = (struct sim_flow){.remaining = bytes, .last = now, .start = now, .msg = msg,
                           .version = version + 1, .nres = nres};
    if (nres > SIM_ROUTE_INLINE) {
        f->ext = malloc(2 * (size_t)nres * sizeof *f->ext);
        if (!f->ext)
            return CHORUS_SYSTEM_ERROR;
    }
    uint32_t *rs = flow_res(f), *sl = flow_slot(f);
    for (uint32_t k = 0; k < nres; k++) {
        struct sim_res *r = &n->res[n->route_buf[k]];
        if (r->n == r->cap_flows) {
            uint32_t cap = r->cap_flows ? r->cap_flows * 2 : 4;
            uint32_t *fl = realloc(r->flows, cap * sizeof *fl);
            if (!fl)
                return CHORUS_SYSTEM_ERROR;
            r->flows = fl;
            r->cap_flows = cap;
        }
        rs[k] = n->route_buf[k];
        sl[k] = r->n;
        r->flows[r->n++] = *id;
        if (mark_dirty(n, rs[k]))
            return CHORUS_SYSTEM_ERROR;
    }
    n->nactive++;
    return CHORUS_SUCCESS;
}

chorus_result_t sim_net_flow_end(struct sim_net *n, uint32_t id)
{
    struct sim_flow *f = &n->flows[id];
    uint32_t *rs = flow_res(f), *sl = flow_slot(f);
    for (uint32_t k = 0; k < f->nres; k++) {
        struct sim_res *r = &n->res[rs[k]];
        uint32_t last = r->flows[--r->n];
        if (sl[k] != r->n) { /* move the last flow into the hole and tell it */
            r->flows[sl[k]] = last;
            struct sim_flow *g = &n->flows[last];
            uint32_t *grs = flow_res(g), *gsl = flow_slot(g);
            for (uint32_t j = 0; j < g->nres; j++)
                if (grs[j] == rs[k]) {
                    gsl[j] = sl[k];
                    break;
                }
        }
        if (mark_dirty(n, rs[k]))
            return CHORUS_SYSTEM_ERROR;
    }
    free(f->ext);
    f->ext = NULL;
    f->nres = 0;
    f->version++; /* its pending EV_FLOW_END, if any, is stale now */
    n->free_ids[n->nfree++] = id;
    n->nactive--;
    return CHORUS_SUCCESS;
}

chorus_result_t sim_net_reshare(struct sim_net *n, double now, struct sim_heap *h)
{
    for (uint64_t d = 0; d < n->ndirty; d++) {
        struct sim_res *r = &n->res[n->dirty[d]];
        for (uint32_t k = 0; k < r->n; k++) {
            struct sim_flow *f = &n->flows[r->flows[k]];
            if (f->stamp == n->batch)
                continue;
            f->stamp = n->batch;
            f->remaining -= f->rate * (now - f->last);
            if (f->remaining < 0)
                f->remaining = 0;
            f->last = now;
            double rate = INFINITY;
            const uint32_t *rs = flow_res(f);
            for (uint32_t j = 0; j < f->nres; j++) {
                const struct sim_res *q = &n->res[rs[j]];
                double share = q->cap / q->n;
                if (share < rate)
                    rate = share;
            }
            f->rate = rate;
            f->version++;
            struct sim_event e = {.t = now + f->remaining / rate, .id = r->flows[k],
                                  .version = f->version, .kind = EV_FLOW_END};
            if (sim_heap_push(h, e))
                return CHORUS_SYSTEM_ERROR;
        }
    }
    n->ndirty = 0;
    n->batch++;
    return CHORUS_SUCCESS;
}
