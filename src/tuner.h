/* tuner.h - which algorithm runs each collective, decided once per
 * communicator (or per topology, for the tools and the simulator) into a
 * table, so a call pays only a lookup.
 *
 * The model is alpha-beta-gamma per level of a topology (src/topo.h): each
 * level has a latency per message (alpha), seconds per byte over one port
 * or link (beta) and the topology a reduction speed (gamma). Every flat
 * algorithm is priced by the levels its steps cross (a ring runs at the pace
 * of its slowest link; recursive halving's first step crosses the outermost
 * level with half the vector; a direct exchange loads every level's ports at
 * once), and the hierarchical compositions by one phase per level, each with
 * the best algorithm for that level alone. The runtime's node-aware
 * composition (shared memory inside a host) is priced with the shared-memory
 * figures when the caller has them. docs/tuner.md has the formulas. */
#ifndef CHORUS_TUNER_H
#define CHORUS_TUNER_H

#include <stddef.h>
#include <stdio.h>

#include "algo_select.h"
#include "coll.h"
#include "plan.h"
#include "topo.h"

/* Sizes 2^0 .. 2^(TUNER_NBUCKETS-1) bytes; calls round to the nearest. */
#define TUNER_NBUCKETS 41

struct tuner_choice {
    algo_t algo;                        /* a flat algorithm or ALGO_HIER */
    algo_t level_algo[TOPO_MAX_LEVELS]; /* ALGO_HIER: the algorithm of each level's phase */
    size_t segment;                     /* pipeline segment in bytes (0: not pipelined) */
    double predicted;                   /* seconds, from the model */
};

/* Figures of the shared-memory path the runtime's node-aware composition
 * uses inside a host (absent in the simulator, whose hierarchy is made of
 * plans over the topology's levels). */
struct tuner_shm {
    int present;
    double alpha, beta; /* seconds per message, seconds per byte */
};

/* A rule from a tuning file or the caller: for kind and sizes in
 * [min_bytes, max_bytes], use algo (overrides the model, not CHORUS_ALGO). */
struct tuner_rule {
    coll_kind_t kind;
    size_t min_bytes, max_bytes;
    algo_t algo;
};

/* Measured or default figures of the transports (chorus_tune --calibrate). */
struct tuner_link {
    double alpha; /* seconds per message */
    double bw;    /* bytes per second */
};
struct tuner_figures {
    struct tuner_link tcp, rdma, shm;
    double reduce_bw; /* bytes per second one rank reduces */
};
extern const struct tuner_figures tuner_default_figures;

/* The runtime's view of a layout: nhosts hosts of ppn ranks (ppn 0 or 1, or
 * one host: a single level) on one network with figures net, positions in
 * host order. Flat plans reach peers on the same host through the network
 * transport too, so both levels carry net's figures. */
chorus_result_t tuner_layout_topo(int nhosts, int ppn, int nranks, const struct tuner_link *net,
                                  double reduce_bw, struct topo **out);

struct tuner {
    struct tuner_choice table[ALGO_NKINDS][TUNER_NBUCKETS];
};

/* Fills tu for topology t. cfg (may be NULL) forces or excludes algorithms
 * (CHORUS_ALGO); rules (may be NULL) replace the model's choice in their
 * size ranges. The choice for each bucket is the cheapest allowed candidate. */
void tuner_build(struct tuner *tu, const struct topo *t, const struct tuner_shm *shm,
                 const struct algo_config *cfg, const struct tuner_rule *rules, int nrules);

/* The decision for a call moving bytes (as algo_select.h counts them). */
const struct tuner_choice *tuner_lookup(const struct tuner *tu, coll_kind_t kind, size_t bytes);

/* Predicted seconds of one candidate (flat algo, or ALGO_HIER with its
 * per-level choices filled into detail when not NULL); < 0 when algo cannot
 * run kind on t. */
double tuner_cost(const struct topo *t, const struct tuner_shm *shm, coll_kind_t kind, algo_t algo,
                  size_t bytes, struct tuner_choice *detail);

/* The cheapest flat algorithm for kind on level `level` of t alone (a phase
 * of a composition), honouring cfg's exclusions. */
algo_t tuner_level_best(const struct topo *t, int level, coll_kind_t kind, size_t bytes,
                        const struct algo_config *cfg);

/* What composed plans cannot do on t, as exclusions in cfg: they lay blocks
 * out in position order, so with a rank map other than the identity, hier is
 * no candidate for allgather, reduce_scatter and alltoall (a forced hier
 * there reverts to the model). The runtime, chorus_tune and the simulator
 * all apply it, so they agree. */
void tuner_topo_constraints(const struct topo *t, struct algo_config *cfg);

/* 1 if ALGO_HIER is a candidate for kind on t (with or without shm). */
int tuner_hier_possible(const struct topo *t, const struct tuner_shm *shm, coll_kind_t kind);

/* The bandwidth bound of kind on t (docs/tuner.md, "The bandwidth bound"):
 * the time of an ideal hierarchical algorithm that keeps every level busy
 * at once and moves over each level only the bytes it must, T = max over
 * levels of (bytes a rank moves across the level) / (the rank's bandwidth
 * there: all its links on a full-mesh, ring or torus level, its port on a
 * switch or Clos level), and of the reduction a rank must do. bytes as
 * tuner_lookup counts them (vector; one rank's block for allgather and
 * reduce_scatter; one peer's block for alltoall). Returns seconds (0 for
 * one rank, < 0 for a collective without a bound: barrier, send/recv);
 * *limit (may be NULL) gets the topology level that sets it, or -1 for the
 * reduction. */
double tuner_bound(const struct topo *t, coll_kind_t kind, size_t bytes, int *limit);

/* The busbw (nccl-tests' definition, GB/s) a run of kind moving bytes (as
 * tuner_bound counts them) in `seconds` shows. */
double tuner_busbw(const struct topo *t, coll_kind_t kind, size_t bytes, double seconds);

/* "allreduce: 1B-2K rhd, 4K-1G ring, ..." : the table of kind in one line,
 * as the runtime logs it and chorus_tune --summary prints it. */
void tuner_summary(const struct tuner *tu, coll_kind_t kind, char *buf, size_t len);

/* Prints one line per size bucket in [lo, hi]: size, choice, predicted time
 * and every candidate's time (the "see it" view of chorus_tune). */
void tuner_print(const struct topo *t, const struct tuner_shm *shm, const struct tuner *tu,
                 coll_kind_t kind, size_t lo, size_t hi, FILE *f);

#endif
