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
#include "tunables.h"
#include "tuner.h"
#include "tuner_file.h"

/* The layout's topology with ranks at their places: host block, then
 * index on the host. */
static chorus_result_t layout_topo(chorus_comm_t comm, const struct tuner_link *net,
                                   double reduce_bw, struct topo **out)
{
    const struct comm_layout *l = &comm->layout;
    if (tuner_layout_topo(l->nhosts, l->ppn, comm->nranks, net, reduce_bw, out) !=
        CHORUS_SUCCESS)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", comm->label);
    if ((*out)->nlevels == 2)
        for (int r = 0; r < comm->nranks; r++)
            (*out)->rank_pos[r] = l->rank_host[r] * l->ppn + l->rank_local[r];
    return CHORUS_SUCCESS;
}

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

chorus_result_t comm_tuning_load(chorus_comm_t comm)
{
    const struct chorus_tunables *tun = chorus_tunables();
    char err[512];
    uint64_t h = 0;
    if (tun->TUNING_FILE[0]) {
        comm->tuning = malloc(sizeof *comm->tuning);
        if (!comm->tuning)
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", comm->label);
        chorus_result_t rc = tuning_read(tun->TUNING_FILE, comm->tuning, err, sizeof err);
        if (rc != CHORUS_SUCCESS)
            return CHORUS_ERR(rc, "%s: CHORUS_TUNING_FILE: %s", comm->label, err);
        h = comm->tuning->hash;
        LOG_INFO("init", "%s: tuning file %s: %d rules", comm->label, tun->TUNING_FILE,
                 comm->tuning->nrules);
    }
    if (tun->TOPO_FILE[0]) {
        chorus_result_t rc = topo_load(tun->TOPO_FILE, &comm->file_topo, err, sizeof err);
        if (rc != CHORUS_SUCCESS)
            return CHORUS_ERR(rc, "%s: CHORUS_TOPO_FILE: %s", comm->label, err);
        /* the parsed content, not the text: a short name and a path to the
         * same file agree */
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        if (!m)
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", comm->label);
        topo_dump_yaml(comm->file_topo, m);
        fclose(m);
        h = fnv(h ^ 0x70706f74ull, buf, len);
        free(buf);
    }
    comm->tuning_hash = h;
    return CHORUS_SUCCESS;
}

uint64_t comm_tuning_hash(chorus_comm_t comm) { return comm->tuning_hash; }

chorus_result_t comm_tuner_setup(chorus_comm_t comm, int use_shm, int use_rdma)
{
    const struct tuner_figures *fig =
        comm->tuning ? &comm->tuning->figures : &tuner_default_figures;
    const struct tuner_link *net = use_rdma ? &fig->rdma : &fig->tcp;
    const struct comm_layout *l = &comm->layout;
    struct algo_config cfg = comm->algos;
    struct tuner_shm shm = {0};
    if (comm->file_topo && comm->file_topo->nranks == comm->nranks) {
        /* The user's machine description, priced and composed as the
         * simulator does: hier is the plan composed over its levels, run
         * over the network transport with positions mapped to ranks. */
        struct topo *t = comm->topo = comm->file_topo;
        comm->file_topo = NULL;
        comm->pos_rank = malloc(sizeof(int) * (size_t)comm->nranks);
        if (!comm->pos_rank)
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", comm->label);
        for (int r = 0; r < comm->nranks; r++)
            comm->pos_rank[t->rank_pos[r]] = r;
        tuner_topo_constraints(t, &cfg);
        LOG_INFO("init", "%s: tuner uses topology %s (%s)", comm->label, t->name, t->source);
    } else {
        if (comm->file_topo)
            LOG_INFO("init", "%s: topology %s describes %d ranks, this communicator has %d: "
                     "the tuner prices the layout with the transport figures", comm->label,
                     comm->file_topo->name, comm->file_topo->nranks, comm->nranks);
        CHORUS_CHECK(layout_topo(comm, net, fig->reduce_bw, &comm->topo));
        if (use_shm && l->nhosts > 1 && l->ppn > 1 && comm->topo->nlevels >= 2)
            shm = (struct tuner_shm){1, fig->shm.alpha, 1 / fig->shm.bw};
        else
            for (int k = 0; k < ALGO_NKINDS; k++) { /* the layout composes only with shm */
                cfg.excluded[k] |= 1u << ALGO_HIER;
                if (cfg.forced[k] == ALGO_HIER)
                    cfg.forced[k] = ALGO_AUTO; /* warned about in connect_ranks */
            }
    }
    comm->tuner = malloc(sizeof *comm->tuner);
    if (!comm->tuner)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory", comm->label);
    tuner_build(comm->tuner, comm->topo, &shm, &cfg, comm->tuning ? comm->tuning->rules : NULL,
                comm->tuning ? comm->tuning->nrules : 0);
    comm->cross_level = comm->topo->nlevels - 1;
    if (CHORUS_LOG_INFO <= chorus_log_level() && comm->rank == 0)
        for (int k = 0; k < ALGO_NKINDS; k++) {
            char line[512];
            tuner_summary(comm->tuner, (coll_kind_t)k, line, sizeof line);
            LOG_INFO("tuner", "%s: %s", comm->label, line);
        }
    return CHORUS_SUCCESS;
}

void comm_tuner_free(chorus_comm_t comm)
{
    free(comm->pos_rank);
    comm->pos_rank = NULL;
    free(comm->tuning);
    comm->tuning = NULL;
    topo_free(comm->file_topo);
    comm->file_topo = NULL;
    free(comm->tuner);
    comm->tuner = NULL;
    topo_free(comm->topo);
    comm->topo = NULL;
}
