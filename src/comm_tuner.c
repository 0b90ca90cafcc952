/* comm_tuner.c - the communicator's decision table: the topology its
 * layout forms (hosts of ranks joined by the network transport), priced
 * with the figures of the transports in use, built once at init. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "error.h"
#include "log.h"
#include "tuner.h"

/* Default figures when no tuning file says otherwise: a 10-25 Gbit/s
 * Ethernet seen through kernel TCP, an InfiniBand/RoCE NIC, and a DDR4/5
 * memory system for shared memory and reductions. `chorus_tune
 * --calibrate` measures this machine's (docs/tuner.md). */
const struct tuner_figures tuner_default_figures = {
    .tcp = {25e-6, 1.25e9},
    .rdma = {4e-6, 12e9},
    .shm = {1e-6, 6e9},
    .reduce_bw = 4e9,
};

/* The runtime's topology: hosts of ppn ranks (when every host holds the
 * same number) on one network. Flat plans reach every peer, on the same
 * host too, through the network transport, so both levels carry its
 * figures; the node-aware composition prices shared memory separately. */
static chorus_result_t layout_topo(chorus_comm_t comm, const struct tuner_link *net,
                                   double reduce_bw, struct topo **out)
{
    const struct comm_layout *l = &comm->layout;
    struct topo *t = calloc(1, sizeof *t);
    int *pos = malloc(sizeof(int) * (size_t)comm->nranks);
    if (!t || !pos) {
        free(t);
        free(pos);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", comm->label);
    }
    snprintf(t->name, sizeof t->name, "runtime");
    snprintf(t->source, sizeof t->source, "layout of %s", comm->label);
    int two = l->ppn > 1 && l->nhosts > 1;
    snprintf(t->description, sizeof t->description, "%d hosts x %d ranks", l->nhosts,
             two ? l->ppn : comm->nranks / (l->nhosts > 0 ? l->nhosts : 1));
    struct topo_level *lv = t->levels;
    if (two) {
        t->nlevels = 2;
        lv[0] = (struct topo_level){.name = "host", .group = l->ppn, .bw = net->bw,
                                    .latency = net->alpha, .link = "net"};
        lv[1] = (struct topo_level){.name = "network", .group = l->nhosts, .bw = net->bw,
                                    .latency = net->alpha, .link = "net"};
        /* position of rank r: its host's block, then its index on the host */
        for (int r = 0; r < comm->nranks; r++)
            pos[r] = l->rank_host[r] * l->ppn + l->rank_local[r];
    } else {
        t->nlevels = 1;
        lv[0] = (struct topo_level){.name = "network", .group = comm->nranks, .bw = net->bw,
                                    .latency = net->alpha, .link = "net"};
        for (int r = 0; r < comm->nranks; r++)
            pos[r] = r;
    }
    t->reduce_bw = reduce_bw;
    t->rank_pos = pos;
    char err[256];
    if (topo_finish(t, err, sizeof err) != CHORUS_SUCCESS) {
        topo_free(t);
        return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "%s: layout topology: %s", comm->label, err);
    }
    *out = t;
    return CHORUS_SUCCESS;
}

chorus_result_t comm_tuner_setup(chorus_comm_t comm, int use_shm, int use_rdma)
{
    const struct tuner_figures *fig = &tuner_default_figures;
    const struct tuner_link *net = use_rdma ? &fig->rdma : &fig->tcp;
    CHORUS_CHECK(layout_topo(comm, net, fig->reduce_bw, &comm->topo));
    const struct comm_layout *l = &comm->layout;
    struct tuner_shm shm = {0};
    struct algo_config cfg = comm->algos;
    if (use_shm && l->nhosts > 1 && l->ppn > 1)
        shm = (struct tuner_shm){1, fig->shm.alpha, 1 / fig->shm.bw};
    else
        for (int k = 0; k < ALGO_NKINDS; k++) { /* the runtime composes only with shm */
            cfg.excluded[k] |= 1u << ALGO_HIER;
            if (cfg.forced[k] == ALGO_HIER)
                cfg.forced[k] = ALGO_AUTO; /* warned about in connect_ranks */
        }
    comm->tuner = malloc(sizeof *comm->tuner);
    if (!comm->tuner)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", comm->label);
    tuner_build(comm->tuner, comm->topo, &shm, &cfg, NULL, 0);
    comm->cross_level = comm->topo->nlevels - 1;
    if (CHORUS_LOG_DEBUG <= chorus_log_level()) {
        const struct tuner_choice *c = tuner_lookup(comm->tuner, COLL_ALLREDUCE, 8);
        const struct tuner_choice *d = tuner_lookup(comm->tuner, COLL_ALLREDUCE, 64u << 20);
        LOG_DEBUG("init", "%s: tuner on %s (%s): allreduce 8 B %s, 64 MiB %s", comm->label,
                  comm->topo->name, comm->topo->description, algo_name(c->algo),
                  algo_name(d->algo));
    }
    return CHORUS_SUCCESS;
}

void comm_tuner_free(chorus_comm_t comm)
{
    free(comm->tuner);
    comm->tuner = NULL;
    topo_free(comm->topo);
    comm->topo = NULL;
}
