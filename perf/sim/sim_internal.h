/* sim_internal.h - what the simulator's pieces share:
 *   sim_match.c   checks each plan's ops and pairs sends with receives;
 *   sim_net.c     resources (ports, links), routes, latency, flow sharing;
 *   sim_heap.c    the event queue;
 *   sim_engine.c  the ranks' progress through their steps (sim_run).
 * Ops are numbered globally: op i of group rank r is op_base[r] + i. */
#ifndef CHORUS_SIM_INTERNAL_H
#define CHORUS_SIM_INTERNAL_H

#include <stdint.h>

#include "sim.h"

#define SIM_NONE UINT32_MAX

/* ---- events ---------------------------------------------------------------- */

enum { EV_COMM_START, EV_MSG_ACTIVE, EV_FLOW_END, EV_OP_DONE };

struct sim_event {
    double t;
    uint32_t id;      /* rank, send op, flow or op, by kind */
    uint32_t version; /* EV_FLOW_END: the flow's version when scheduled */
    uint32_t kind;
};

struct sim_heap {
    struct sim_event *v;
    size_t n, cap;
};

int sim_heap_push(struct sim_heap *h, struct sim_event e); /* -1: out of memory */
struct sim_event sim_heap_pop(struct sim_heap *h);          /* h->n > 0 */
void sim_heap_free(struct sim_heap *h);

/* ---- network --------------------------------------------------------------- */

#define SIM_ROUTE_INLINE 4

struct sim_res {
    double cap;      /* bytes/s */
    uint32_t n, cap_flows;
    uint32_t *flows; /* [n] ids of the flows on it */
    uint32_t stamp;  /* batch in which it was last marked dirty */
};

struct sim_flow {
    double remaining, rate, last, start; /* bytes left at `last` */
    uint32_t msg;        /* the send op */
    uint32_t version;    /* bumped on every reschedule; stale EV_FLOW_END are dropped */
    uint32_t stamp;      /* batch in which its rate was last recomputed */
    uint32_t nres;
    /* route: res[k] is a resource, slot[k] the flow's index in its list;
     * inline for short routes, else ext (2 x nres: resources, then slots),
     * never a pointer into the flow itself (the flow array moves). */
    uint32_t res_inl[SIM_ROUTE_INLINE], slot_inl[SIM_ROUTE_INLINE];
    uint32_t *ext;
};

struct sim_level_geo {
    int group, stride, shape;
    double lat, cap;
    uint64_t base;    /* first resource of the level */
    int dims[3], wrap;
};

struct sim_net {
    const struct topo *t;
    struct sim_level_geo lv[TOPO_MAX_LEVELS];
    struct sim_res *res;
    uint64_t nres;
    struct sim_flow *flows;
    uint32_t nflows_cap, nfree, nactive;
    uint32_t *free_ids;
    uint32_t *dirty; /* resources touched in this batch */
    uint64_t ndirty, dirty_cap;
    uint32_t batch;
    uint32_t *route_buf; /* scratch for routes */
    uint32_t route_cap;
};

/* Resources for t (positions 0..t->nranks-1). */
chorus_result_t sim_net_init(struct sim_net *n, const struct topo *t, char *err, size_t errlen);
void sim_net_free(struct sim_net *n);
/* Level crossed by a message between topology ranks a != b, its latency
 * (seconds), and its route into n->route_buf (*nres entries). */
chorus_result_t sim_net_route(struct sim_net *n, int a, int b, int *level, double *lat,
                              uint32_t *nres, char *err, size_t errlen);
/* Starts a flow of bytes for message msg along the route left in route_buf
 * by the last sim_net_route; *id receives the flow. */
chorus_result_t sim_net_flow_start(struct sim_net *n, uint32_t msg, double bytes, double now,
                                   uint32_t nres, uint32_t *id);
/* Takes a finished flow off its resources and frees it. */
chorus_result_t sim_net_flow_end(struct sim_net *n, uint32_t id);
/* After a batch: new rates for every flow on a resource touched in it;
 * pushes their new EV_FLOW_END. */
chorus_result_t sim_net_reshare(struct sim_net *n, double now, struct sim_heap *h);

/* ---- matching -------------------------------------------------------------- */

struct sim_ops {
    int nranks;
    const struct plan *plans;
    uint64_t *op_base; /* [nranks + 1] */
    uint32_t *match;   /* [total ops]: global id of the other end; SIM_NONE for copies */
    int32_t *owner;    /* [total ops]: group rank holding the op (a lookup per event) */
};

/* Checks every plan and matches messages; -1 with err on a rule break. */
int sim_match(struct sim_ops *s, size_t esize, char *err, size_t errlen);
void sim_ops_free(struct sim_ops *s);
/* Group rank owning global op g. */
static inline int sim_owner(const struct sim_ops *s, uint64_t g) { return s->owner[g]; }
/* Step of op i of rank r. */
int sim_step_of(const struct plan *p, uint32_t i);
/* "RECV 64 B from 3" */
const char *sim_describe(const struct plan_op *o, char *out, size_t cap);

#endif
