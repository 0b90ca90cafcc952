/* plan.h - an algorithm written once, as a plan of steps between ranks.
 *
 * A plan is what one rank does in one collective: a list of steps, each a
 * set of operations (send, receive, receive-and-reduce, local copy) over
 * byte ranges of three buffers (the caller's send and receive buffers and a
 * scratch buffer the executor provides). The runtime executor
 * (src/plan_exec.c) runs a plan over a network transport; the tests' model
 * executor (tests/plan_model.c) and the simulator run the same plans. No
 * plan knows which transport or executor runs it.
 *
 * Semantics every executor follows and every generator relies on:
 *  - Steps run in order. A step starts with its COPY ops (in op order), then
 *    all its SEND / RECV / RECV_REDUCE ops run concurrently; the step ends
 *    when all of them are complete.
 *  - Matching: between a pair of ranks (a -> b), the k-th SEND from a to b
 *    (in step order, then op order) matches the k-th RECV or RECV_REDUCE at
 *    b whose peer is a; both must carry the same byte count (0 is allowed: a
 *    pure synchronisation message).
 *  - Rendezvous: a SEND may not complete before its receiver has started the
 *    step holding the matching receive. Plans must be deadlock-free under
 *    this rule (in practice: matching send and receive sit in the steps both
 *    ranks reach without waiting on each other).
 *  - Within a step, no op writes a range another op of the step reads or
 *    writes (except RECV_REDUCE, whose local operand may be exactly its own
 *    destination).
 *  - RECV_REDUCE: dst = src OP incoming, element-wise over bytes / esize
 *    elements; src may be exactly dst (same buffer, same offset).
 *  - Peers are ranks of the plan's group (0..nranks-1); the executor maps
 *    them to communicator ranks.
 *  - In place: when the caller's buffers alias (the NCCL in-place forms),
 *    PLAN_SENDBUF and PLAN_RECVBUF resolve to the addresses the caller gave;
 *    generators are told (plan_args.in_place) and stay correct.
 *  - AVG is never seen by a plan: the executor runs SUM and divides the
 *    plan's result range (plan.result_*) afterwards.
 */
#ifndef CHORUS_PLAN_H
#define CHORUS_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "chorus.h"
#include "coll.h"

typedef enum {
    PLAN_SENDBUF = 0,
    PLAN_RECVBUF = 1,
    PLAN_SCRATCH = 2,
    PLAN_NBUFS
} plan_buf_t;

typedef enum {
    PLAN_SEND,        /* peer <- src range */
    PLAN_RECV,        /* dst range <- peer */
    PLAN_RECV_REDUCE, /* dst range <- src range OP what peer sends */
    PLAN_COPY,        /* dst range <- src range, locally */
} plan_op_kind_t;

struct plan_op {
    uint8_t kind;    /* plan_op_kind_t */
    uint8_t src_buf; /* plan_buf_t: SEND, RECV_REDUCE, COPY */
    uint8_t dst_buf; /* plan_buf_t: RECV, RECV_REDUCE, COPY */
    int32_t peer;    /* group rank for SEND / RECV / RECV_REDUCE; -1 for COPY */
    uint64_t src_off, dst_off, bytes;
};

/* The algorithms. AUTO lets the runtime choose; HIER is the node-aware
 * composition done by the runtime (src/coll_net.c), not a flat plan. */
typedef enum {
    ALGO_AUTO = 0,
    ALGO_RING,          /* ring: allreduce, allgather, reduce_scatter, broadcast, reduce */
    ALGO_RHD,           /* recursive halving/doubling (Rabenseifner; any rank count) */
    ALGO_TREE,          /* binomial trees: broadcast, reduce, allreduce (reduce+bcast) */
    ALGO_BRUCK,         /* Bruck: allgather, alltoall (log steps, small messages) */
    ALGO_PAIRWISE,      /* pairwise exchange: alltoall, alltoallv */
    ALGO_DIRECT,        /* everyone to everyone in one step (full mesh) */
    ALGO_DISSEMINATION, /* barrier */
    ALGO_HIER,          /* node-aware: shared memory inside, network across */
    ALGO_COUNT
} algo_t;

const char *algo_name(algo_t algo);
/* ALGO_COUNT if name is unknown. */
algo_t algo_from_name(const char *name);

/* rhd allreduce of at most this many bytes runs recursive doubling (log2 p
 * steps of the whole vector) instead of Rabenseifner's 2 log2 p steps; the
 * tuner prices it the same way. MPICH's default cut-over (2 KiB). */
#define RHD_DOUBLING_MAX 2048

/* Direct reduce_scatter / allreduce on at most this many ranks cut each
 * block into n - 1 chunks, one from every peer in every step (all links of
 * a full mesh busy), and allreduce sends its reduced block to all at once;
 * on more, one peer per step, as pairwise (n - 1 chunks in flight for
 * n - 1 steps would be n^2 messages per rank). */
#define DIRECT_CHUNKED_MAX 16

/* A tree broadcast of at least TREE_DBT_MIN bytes (on 3 ranks or more) runs
 * on a pipelined double binary tree in segments of TREE_DBT_SEGMENT
 * (algos/tree_plan.c); the tuner prices the same. */
#define TREE_DBT_MIN ((uint64_t)1 << 22)
#define TREE_DBT_SEGMENT ((uint64_t)1 << 21)

/* Direct broadcast (algos/pairwise_plan.c): a scatter from the root and an
 * allgather among the others, pipelined in pieces of at least
 * DIRECT_BCAST_MIN_PIECE bytes, at most DIRECT_OPS_BUDGET / (2 n) of them
 * (each step posts about 2 (n - 1) ops per rank). The tuner prices the
 * same pieces. */
#define DIRECT_BCAST_MIN_PIECE ((uint64_t)4 << 20)
#define DIRECT_OPS_BUDGET 8192
int direct_bcast_pieces(int nranks, uint64_t bytes);
/* Part c of len units (bytes or elements) cut into k nearly equal parts, the
 * first len % k one unit longer: its offset and length. */
void plan_even_part(uint64_t len, uint64_t k, uint64_t c, uint64_t *off, uint64_t *clen);

/* What a generator needs to know. */
struct plan_args {
    coll_kind_t kind;
    int nranks, rank;          /* the group running the plan */
    size_t count;              /* elements, as the public call defines it */
    size_t esize;              /* bytes per element */
    int root;                  /* broadcast / reduce, group rank */
    int in_place;              /* the caller's buffers alias (NCCL in-place form) */
    /* alltoallv only (elements), indexed by group rank: */
    const size_t *sendcounts, *sdispls, *recvcounts, *rdispls;
};

struct plan {
    algo_t algo;
    int nsteps;
    uint32_t *step_first; /* [nsteps + 1]: ops of step s are [step_first[s], step_first[s+1]) */
    struct plan_op *ops;
    uint32_t nops;
    size_t scratch_bytes;         /* the executor provides this much scratch */
    plan_buf_t result_buf;        /* where this rank's reduced result lies (AVG divides it) */
    uint64_t result_off, result_bytes; /* result_bytes 0: none on this rank */
    /* private to plan.c: capacities */
    uint32_t ops_cap, steps_cap;
};

/* Builds rank a->rank's plan of algo for a->kind. CHORUS_INVALID_USAGE (with
 * error text) if algo does not implement that collective; p is then empty.
 * p must be zeroed or previously freed with plan_free. */
chorus_result_t plan_build(struct plan *p, const struct plan_args *a, algo_t algo);
/* The checks plan_build makes of a's fields (ranks, root, element size,
 * sizes that overflow, alltoallv counts); composers of plans reuse them. */
chorus_result_t plan_check_args(const struct plan_args *a);
/* 1 if algo implements kind (for any rank count), else 0. */
int plan_supports(algo_t algo, coll_kind_t kind);
void plan_free(struct plan *p);

/* ---- for generators (algos/plan.c) -------------------------------------- */
void plan_reset(struct plan *p, algo_t algo);
/* Opens a new step; ops added afterwards belong to it. */
chorus_result_t plan_step(struct plan *p);
chorus_result_t plan_send(struct plan *p, int peer, plan_buf_t src, uint64_t src_off,
                          uint64_t bytes);
chorus_result_t plan_recv(struct plan *p, int peer, plan_buf_t dst, uint64_t dst_off,
                          uint64_t bytes);
chorus_result_t plan_recv_reduce(struct plan *p, int peer, plan_buf_t src, uint64_t src_off,
                                 plan_buf_t dst, uint64_t dst_off, uint64_t bytes);
chorus_result_t plan_copy(struct plan *p, plan_buf_t src, uint64_t src_off, plan_buf_t dst,
                          uint64_t dst_off, uint64_t bytes);

/* The generators, one file each; plan_build calls them once the arguments are
 * checked and the pair is supported (plan_supports). pairwise_plan.c also
 * holds the direct (full mesh) and dissemination generators. */
chorus_result_t ring_plan(struct plan *p, const struct plan_args *a);
chorus_result_t rhd_plan(struct plan *p, const struct plan_args *a);
chorus_result_t tree_plan(struct plan *p, const struct plan_args *a);
chorus_result_t bruck_plan(struct plan *p, const struct plan_args *a);
chorus_result_t pairwise_plan(struct plan *p, const struct plan_args *a);
chorus_result_t direct_plan(struct plan *p, const struct plan_args *a);
chorus_result_t dissemination_plan(struct plan *p, const struct plan_args *a);

#endif
