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

void plan_exec_cache_free(struct plan_exec_cache *c);

#endif
