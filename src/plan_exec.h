/* plan_exec.h - runs a plan (algos/plan.h) over a network transport.
 *
 * The executor owns nothing but staging memory: the communicator gives it
 * the transport, the group's rank map and the buffers of the call. */
#ifndef CHORUS_PLAN_EXEC_H
#define CHORUS_PLAN_EXEC_H

#include <stdatomic.h>
#include <stddef.h>

#include "chorus.h"
#include "plan.h"
#include "wait.h"

struct transport;

/* Memory the executor reuses from call to call (grown, never shrunk). */
struct plan_exec_cache {
    void *scratch;
    size_t scratch_cap;
    void *staging; /* where RECV_REDUCE data lands before it is reduced */
    size_t staging_cap;
    struct xfer *xfers;
    size_t xfers_cap;
};

struct plan_exec {
    struct transport *net;
    const int *group_ranks;   /* group rank -> communicator rank */
    chorus_datatype_t type;
    chorus_op_t op;           /* AVG runs as SUM and divides at the end */
    int avg_div;
    const void *sendbuf;
    void *recvbuf;
    const struct chorus_wait_policy *policy;
    _Atomic int *abort_flag;
    const char *label;        /* for error texts */
    struct plan_exec_cache *cache;
};

/* Runs p to completion. Errors name the peer responsible. */
chorus_result_t plan_execute(const struct plan_exec *x, const struct plan *p);

/* The same in pieces, so a plan can move data while the caller does other
 * work (the node-aware collectives overlap shared-memory phases with it):
 * start opens the first step, poll makes whatever progress is possible
 * without blocking, wait blocks until the plan is finished. x, p and the
 * buffers must stay put until done; one plan at a time per transport (the
 * transport matches messages per pair in post order). */
struct plan_run {
    const struct plan_exec *x;
    const struct plan *p;
    char *bufs[PLAN_NBUFS];
    chorus_op_t op;           /* AVG runs as SUM */
    size_t esize;
    int step;                 /* the step in flight, nsteps when finished */
    int nslots, left;         /* its transfers, and how many are not complete */
    size_t moved;             /* bytes its transfers moved so far */
    int64_t step_start, last_moved;
    int done;
};
chorus_result_t plan_run_start(struct plan_run *r, const struct plan_exec *x,
                               const struct plan *p);
chorus_result_t plan_run_poll(struct plan_run *r);
chorus_result_t plan_run_wait(struct plan_run *r);

void plan_exec_cache_free(struct plan_exec_cache *c);

#endif
