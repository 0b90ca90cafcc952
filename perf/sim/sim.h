/* sim.h - the simulator: runs the plans of every rank of a collective (the
 * same plans the runtime executes, algos/plan.h) on a discrete-event model of
 * a topology (src/topo.h) and predicts how long the collective takes.
 *
 * Timing only: no buffer is touched. The model (docs/simulator.md):
 *  - A rank runs its steps in order. A step's COPY ops go first and cost
 *    bytes / copy_bw; then its sends and receives run concurrently and the
 *    step ends when all of them are complete.
 *  - A message (matched as plan.h says: k-th send a->b with k-th receive at
 *    b from a) starts once both ranks have begun the communication part of
 *    the steps holding it (rendezvous). It first pays the latency of the
 *    level it crosses (hops x latency on ring and torus levels), then its
 *    bytes flow over the resources of its route at a rate shared with the
 *    other flows there.
 *  - Resources: switch and Clos levels give each rank one egress and one
 *    ingress port of the level's bandwidth (Clos: divided by oversub); full
 *    mesh, ring and torus levels have one directed link per neighbour pair
 *    and rank plane, multi-hop routes (shortest way round a ring, dimension
 *    order on a torus) load every link they cross. A message crossing level
 *    i uses resources of level i only.
 *  - Sharing: a flow's rate is the smallest fair share (capacity / flows) of
 *    the resources on its route, recomputed whenever a flow starts or ends
 *    on one of them ("bottleneck share"; not max-min fair: capacity a flow
 *    cannot use because it is limited elsewhere is not handed to others).
 *  - RECV_REDUCE: the receiver's reduction runs at topo->reduce_bw, one
 *    reduction at a time per rank; pipelined with the arrival of the data
 *    (default, as the runtime reduces arrived pieces) or after it (serial:
 *    the textbook alpha-beta-gamma sum).
 * Rule breaks (bad ops, unmatched messages, byte-count mismatches, deadlock
 * under rendezvous) end the run with a readable message. */
#ifndef CHORUS_SIM_H
#define CHORUS_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "chorus.h"
#include "plan.h"
#include "topo.h"

typedef enum {
    SIM_REDUCE_PIPELINED = 0, /* done = max(arrival + last chunk, start + bytes / reduce_bw) */
    SIM_REDUCE_SERIAL = 1,    /* done = arrival + bytes / reduce_bw */
} sim_reduce_model_t;

struct sim_opts {
    size_t esize;          /* element size: RECV_REDUCE bytes must be whole elements; 0: unchecked */
    double copy_bw;        /* bytes/s of COPY ops; 0: 1.5 x reduce_bw (a copy streams 2 operands,
                              a reduction 3); < 0: copies are free */
    sim_reduce_model_t reduce_model;
    double reduce_chunk;   /* pipelined: bytes left to reduce after the last byte arrives */
    const int *rank_of;    /* [nranks]: plan group rank -> topology rank; NULL: the same */
};

struct sim_level_stats {
    uint64_t msgs, bytes; /* messages (and their bytes) crossing this level */
};

struct sim_result {
    double time;    /* seconds until the last rank finished */
    double *finish; /* caller's array [nranks] (per group rank), filled when not NULL */
    struct sim_level_stats level[TOPO_MAX_LEVELS];
    uint64_t msgs, bytes, bytes_copied, bytes_reduced;
    uint64_t batches;   /* distinct event times processed */
    uint64_t max_flows; /* most flows sharing the network at once */
    char error[512];    /* why sim_run failed */
};

/* Defaults: pipelined reduction, 64 KiB reduce chunk, copy_bw 0 (derived),
 * esize 0. */
void sim_opts_default(struct sim_opts *o);

/* Runs plans[0..nranks-1] (group rank r on topology rank rank_of[r]) on t.
 * nranks <= t->nranks. CHORUS_INVALID_ARGUMENT / CHORUS_INVALID_USAGE with
 * res->error on a rule break, CHORUS_SYSTEM_ERROR when out of memory. */
chorus_result_t sim_run(const struct topo *t, int nranks, const struct plan *plans,
                        const struct sim_opts *o, struct sim_result *res);

/* ---- one collective, plans built here (sim_coll.c) ------------------------ */

struct sim_coll {
    coll_kind_t kind;
    algo_t algo;      /* a flat algorithm, or ALGO_HIER (levels of the topology) */
    size_t count;     /* as the public call takes it (per rank / per peer for alltoall) */
    chorus_datatype_t type;
    int root;
    int in_place;
    int nranks;       /* 0: every rank of the topology */
    algo_t level_algo[TOPO_MAX_LEVELS]; /* ALGO_HIER: per level, ALGO_AUTO (0) by default */
    size_t segment;   /* ALGO_HIER allreduce: least pipeline segment (tuner_choice.segment;
                         0: the plan's default) */
};

/* 1 when sim_collective can run algo for kind (ALGO_HIER only when built in). */
int sim_algo_available(algo_t algo, coll_kind_t kind);

/* Builds every rank's plan for c and runs them. alltoallv runs count
 * elements per peer everywhere. */
chorus_result_t sim_collective(const struct topo *t, const struct sim_coll *c,
                               const struct sim_opts *o, struct sim_result *res);

#endif
