/* hier_plan.h - multi-level algorithms composed from the flat plans.
 *
 * A hierarchical collective runs one flat algorithm per level of a topology
 * (innermost first on the way in, outermost in the middle, back out): for
 * allreduce, reduce-scatter inside the innermost groups, the same one level
 * up on each shard, ..., allreduce across the outermost level, then
 * allgathers back down. The composition produces an ordinary plan (same
 * semantics as algos/plan.h), so every executor runs it unchanged: the
 * simulator on a modelled supernode, the runtime over a network transport.
 *
 * Group ranks are positions: rank r has coordinate (r / stride[i]) % group[i]
 * at level i, stride[0] = 1 (the innermost level varies fastest). Whoever
 * places ranks differently maps group ranks to its own ranks (as the
 * runtime already does for every plan). */
#ifndef CHORUS_HIER_PLAN_H
#define CHORUS_HIER_PLAN_H

#include "plan.h"

#define HIER_MAX_LEVELS 6

/* Pipelined allreduce (algos/hier_plan.c): when every level runs an
 * algorithm whose ranks move in lockstep (ring, direct, rhd on a power of
 * two) the vector is cut into segments of at least HIER_PIPE_MIN_BYTES
 * (HIER_PIPE_MAX_SEGS at most) and every step carries one step of each
 * segment in flight, so all levels work at once. */
#define HIER_PIPE_MIN_BYTES ((uint64_t)1 << 20)
#define HIER_PIPE_MAX_SEGS 64

/* Allgather with direct on every level (algos/hier_plan.c): outermost level
 * first, every block its own message straight into its place in recvbuf
 * (no reordering copy), each block cut into pieces that pipeline across the
 * levels; at most HIER_AG_OPS_BUDGET ops per rank (2 (n - 1) per piece). */
#define HIER_AG_OPS_BUDGET 16384
/* ... and pieces of at least this much of the whole buffer (each slot pays
 * a latency; about sqrt(S / (bandwidth x latency)) pieces is the best
 * trade for a few us and a few hundred GB/s) */
#define HIER_AG_MIN_BYTES ((uint64_t)16 << 20)

/* Pieces the direct allgather cuts each block of `count` elements into
 * (1: not pipelined); the tuner prices the same. */
int hier_ag_pieces(int nranks, int nactive, uint64_t count, uint64_t esize, uint64_t min_bytes);

/* Reduce_scatter pipelined when every level runs a lockstep algorithm: each
 * block cut into pieces (of at least HIER_AG_MIN_BYTES of the whole buffer,
 * at least as many elements as the largest group has members, and at most
 * HIER_AG_OPS_BUDGET / nranks of them, as the first level reads every
 * block of each piece with an op or more); piece i is reduce-scattered
 * level by level, the first level reading the input in rank order where it
 * lies, one step of it per slot. 1: not pipelined. The tuner prices the
 * same. */
int hier_rs_pieces(const int *group, int nlevels, uint64_t count, uint64_t esize,
                   uint64_t min_bytes);

/* Broadcast with direct on every level (algos/hier_bcast_plan.c): each
 * level's members take the vector in through all their ranks' ports (the
 * root's member broadcasts inside, then every inner position carries its
 * slice across, then the other members allgather), in pieces of at least
 * HIER_BCAST_MIN_PIECE bytes (at most HIER_PIPE_MAX_SEGS) that pipeline:
 * piece i runs its step s in plan step i + s. The tuner prices the same. */
#define HIER_BCAST_MIN_PIECE ((uint64_t)8 << 20)
int hier_bcast_pieces(uint64_t bytes, uint64_t min_bytes);
/* Steps of one piece over nactive levels (2 on one; D(t) = D(t - 1) + 2 + t). */
int hier_bcast_steps(int nactive);
/* Builds a->rank's plan into p (after what p holds): n active levels of
 * group[t] members, stride[t] ranks apart. */
chorus_result_t hier_bcast_pipelined(struct plan *p, const struct plan_args *a, int n,
                                     const int *group, const int *stride, uint64_t min_bytes);

/* Reduce with direct on every level (algos/hier_reduce_plan.c): the
 * broadcast above run backwards, its reduce-scatters chunked (a rank's
 * incoming sums never land on one range in one step), in the broadcast's
 * pieces. The tuner prices the same. */
/* Steps of one piece over nactive levels of group[t] members. */
int hier_reduce_steps(int nactive, const int *group);
/* Pieces of at least min_bytes (0: HIER_BCAST_MIN_PIECE), at most
 * HIER_REDUCE_MAX_PIECES: a piece takes D steps (dozens), and the fill and
 * drain cost about D slots, so more pieces pay off (each slot's latency
 * against D slots of fill and drain); the tuner chooses min_bytes. */
#define HIER_REDUCE_MAX_PIECES 128
int hier_reduce_pieces(uint64_t bytes, uint64_t min_bytes);
chorus_result_t hier_reduce_pipelined(struct plan *p, const struct plan_args *a, int n,
                                      const int *group, const int *stride, uint64_t min_bytes);

struct hier_args {
    struct plan_args base; /* kind, nranks (= product of groups), rank, count, esize, root,
                              in_place; alltoallv counts as for flat plans */
    int nlevels;                   /* 1..HIER_MAX_LEVELS; 1 is the flat algorithm */
    int group[HIER_MAX_LEVELS];    /* members per level, innermost first */
    algo_t algo[HIER_MAX_LEVELS];  /* flat algorithm per level (ALGO_AUTO: a sensible default) */
    uint64_t pipe_min_bytes;       /* allreduce segments at least this big; 0: HIER_PIPE_MIN_BYTES
                                      (tests lower it to pipeline small vectors;
                                      the tuner raises it: tuner_choice.segment) */
};

/* How many segments the pipelined allreduce of `count` elements of esize
 * bytes cuts the vector into on these groups (1: not pipelined, by size;
 * the level algorithms decide the rest), and the elements of each (the
 * tail after nseg * seg_count runs unpipelined). The tuner prices the
 * same. */
int hier_pipe_segments(const int *group, int nlevels, uint64_t count, uint64_t esize,
                       uint64_t min_bytes, uint64_t *seg_count);

/* Steps of algo running kind (in place or not) among g members when every
 * member takes the same number (no empty blocks), -1 when its ranks do not move in lockstep
 * (a rank's k-th step may match a peer's other step). */
int hier_lockstep_steps(algo_t algo, coll_kind_t kind, int g, uint64_t bytes, int in_place);

/* Builds rank a->base.rank's composed plan (p->algo = ALGO_HIER). Levels of
 * group 1 are skipped (their algo is ignored); with one level left the plan
 * is the flat one. CHORUS_INVALID_USAGE with error text when a level's
 * algorithm does not implement the phase it would run there (whatever the
 * count); CHORUS_INVALID_ARGUMENT for bad shapes or arguments. p must be
 * zeroed or previously freed with plan_free; it is empty after a failure.
 * The compositions per collective: algos/hier_plan.c, docs/algorithms.md. */
chorus_result_t hier_plan(struct plan *p, const struct hier_args *a);

/* Appends src's steps to dst, one step of src becoming one new step of dst
 * (src's empty steps are dropped): peer k of src becomes peer_map[k] of dst;
 * a range in src buffer b becomes the range in buffer buf_map[b] of dst at
 * offset + buf_base[b]. dst's scratch_bytes grows to cover what src needs at
 * its new place (src->scratch_bytes from buf_base[PLAN_SCRATCH] when scratch
 * maps to scratch, and every range placed in scratch). Refuses
 * (CHORUS_INVALID_ARGUMENT) a written range mapped to the send buffer; after
 * a failure dst may hold part of src. The tool the composition is built
 * from (also useful for pipelined variants). */
chorus_result_t plan_append(struct plan *dst, const struct plan *src, const int *peer_map,
                            const plan_buf_t buf_map[PLAN_NBUFS],
                            const uint64_t buf_base[PLAN_NBUFS]);

/* Appends the ops of src's step s to dst's current step (no new step), mapped
 * as plan_append maps them: how the pipelined compositions merge steps. */
chorus_result_t plan_append_step(struct plan *dst, const struct plan *src, int s,
                                 const int *peer_map, const plan_buf_t buf_map[PLAN_NBUFS],
                                 const uint64_t buf_base[PLAN_NBUFS]);

/* Rewrites p (a plan built for a send buffer of nblocks blocks of blk bytes)
 * to read block b of its send buffer at offset place[b] instead, without a
 * copy: every op is cut where a block ends (both ends of a message cut
 * alike when the plan's ranges sit at the same offset in a block as the
 * data they hold: algos/plan_stride.c). Empty steps stay. The composed
 * reduce_scatter reads the caller's input in rank order with it.
 * CHORUS_INVALID_ARGUMENT for a plan that breaks that rule. */
chorus_result_t plan_stride_input(struct plan *p, uint64_t blk, uint64_t nblocks,
                                  const uint64_t *place);

#endif
