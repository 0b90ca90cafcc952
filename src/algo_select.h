/* algo_select.h - which algorithm runs a collective across nodes: the
 * user's CHORUS_ALGO overrides, else a simple alpha-beta-gamma cost model.
 *
 * The model prices each candidate from the message size and the
 * communicator's layout (ranks, nodes, ranks per node) with one set of
 * constants per link kind (network, shared memory); the cheapest allowed
 * candidate wins. The constants are rough figures for a 10-25 Gbit/s
 * Ethernet and a DDR4/5 memory system; the topology-aware tuner replaces
 * them with measured ones (docs/algorithms.md). */
#ifndef CHORUS_ALGO_SELECT_H
#define CHORUS_ALGO_SELECT_H

#include <stddef.h>
#include <stdint.h>

#include "coll.h"
#include "plan.h"

#define ALGO_NKINDS (COLL_BARRIER + 1) /* collectives with algorithms */

struct algo_config {
    algo_t forced[ALGO_NKINDS];    /* ALGO_AUTO: the model decides */
    uint32_t excluded[ALGO_NKINDS]; /* bit a: algorithm a must not be used */
};

/* Parses a CHORUS_ALGO value ("allreduce:ring;alltoall:^bruck,direct;tree").
 * Unknown names, or forcing an algorithm on a collective that lacks it, are
 * CHORUS_INVALID_ARGUMENT with a text naming the entry. */
chorus_result_t algo_config_parse(struct algo_config *cfg, const char *text);

/* The layout the model prices. */
struct algo_layout {
    int nranks;
    int nhosts;
    int ppn;       /* ranks per host when equal on every host, else 0 */
    int have_shm;  /* ranks of a host reach each other through shared memory */
};

/* Picks the algorithm for a collective moving bytes (count x element size,
 * as the call counts them). HIER only when the layout allows it. */
algo_t algo_select(const struct algo_config *cfg, const struct algo_layout *l,
                   coll_kind_t kind, size_t bytes);

/* Picks the flat algorithm for the network level of a hierarchical
 * collective: nranks ranks (one per node), bytes as that phase counts them.
 * Honours exclusions but not the forced choice (which names the whole
 * collective's algorithm). */
algo_t algo_select_flat(const struct algo_config *cfg, coll_kind_t kind, int nranks,
                        size_t bytes);

/* Predicted seconds for algo on the layout (the model, for tools and tests;
 * < 0 when algo cannot run kind on it). */
double algo_cost(algo_t algo, const struct algo_layout *l, coll_kind_t kind, size_t bytes);

#endif
