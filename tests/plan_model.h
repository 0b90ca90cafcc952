/* plan_model.h - runs the plans of every rank of a group in one process,
 * over real memory, exactly as algos/plan.h defines their meaning, and
 * says what went wrong or what the plans cost.
 *
 * It checks what a real executor would only discover as a hang or as wrong
 * data: unmatched messages, byte-count mismatches, deadlock under the
 * rendezvous rule, ranges outside the collective's buffers or the plan's
 * scratch, writes to the send buffer, and two ops of one step touching the
 * same bytes (one of them writing; RECV_REDUCE may read exactly the range it
 * writes). Overlap is judged on real addresses, so in-place aliasing counts.
 *
 * Time is counted in message hops: a send / receive pair completes one unit
 * after the later of the two steps holding it starts; a step ends when its
 * last op completes (copy-only steps take no time). The simulator will
 * replace this clock with a cost model; the rest stays. */
#ifndef PLAN_MODEL_H
#define PLAN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "chorus.h"
#include "plan.h"

/* One rank's buffers, as its caller passes them to the collective. send may
 * alias recv (the in-place forms); a buffer the call does not use (e.g.
 * recvbuf on a non-root of reduce) is NULL with 0 bytes. */
struct model_rank {
    void *send;
    size_t send_bytes;
    void *recv;
    size_t recv_bytes;
};

struct model_job {
    int nranks;
    const struct plan *plans;       /* [nranks]: the plan of each group rank */
    const struct model_rank *ranks; /* [nranks] */
    chorus_datatype_t type;         /* of RECV_REDUCE elements */
    chorus_op_t op;                 /* AVG runs SUM, then divides each plan's result range */
};

struct model_stats {
    int steps;
    uint64_t msgs_sent, bytes_sent, msgs_recv, bytes_recv;
    uint64_t bytes_copied, bytes_reduced;
    uint64_t finish; /* message hops until this rank finished */
};

struct model_report {
    struct model_stats *stats; /* [nranks], filled when not NULL */
    uint64_t rounds;           /* the largest finish: the critical path */
    char error[512];           /* set when model_run fails */
};

/* 0 if every rank ran its plan to the end without breaking a rule, with the
 * buffers then holding the results; -1 with report->error otherwise
 * (buffers then hold whatever was done before the failure). */
int model_run(const struct model_job *job, struct model_report *report);

#endif
