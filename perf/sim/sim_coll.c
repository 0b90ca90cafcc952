/* sim_coll.c - one collective in the simulator: builds every rank's plan
 * with the same builders the runtime calls (plan_build, hier_plan) and runs
 * them with sim_run. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "sim.h"
#ifdef CHORUS_SIM_HIER
#include "hier_plan.h"
#endif

int sim_algo_available(algo_t algo, coll_kind_t kind)
{
    if (algo == ALGO_HIER) {
#ifdef CHORUS_SIM_HIER
        return kind != COLL_SEND && kind != COLL_RECV && kind != COLL_SENDRECV;
#else
        return 0;
#endif
    }
    return plan_supports(algo, kind);
}

static chorus_result_t build_one(const struct topo *t, const struct sim_coll *c,
                                 const struct plan_args *a, struct plan *p)
{
    if (c->algo != ALGO_HIER)
        return plan_build(p, a, c->algo);
#ifdef CHORUS_SIM_HIER
    struct hier_args h = {.base = *a, .nlevels = t->nlevels};
    for (int i = 0; i < t->nlevels && i < HIER_MAX_LEVELS; i++) {
        h.group[i] = t->levels[i].group;
        h.algo[i] = c->level_algo[i];
    }
    h.pipe_min_bytes = c->kind == COLL_ALLREDUCE || c->kind == COLL_REDUCE ? c->segment : 0;
    return hier_plan(p, &h);
#else
    (void)t;
    (void)p;
    return CHORUS_ERR(CHORUS_INVALID_USAGE, "the simulator was built without hier_plan "
                      "(algos/hier_plan.c)");
#endif
}

chorus_result_t sim_collective(const struct topo *t, const struct sim_coll *c,
                               const struct sim_opts *o, struct sim_result *res)
{
    double *finish = res->finish;
    *res = (struct sim_result){.finish = finish};
    int n = c->nranks ? c->nranks : t->nranks;
    if (n < 1 || n > t->nranks) {
        snprintf(res->error, sizeof res->error, "%d ranks on topology '%s' of %d ranks", n,
                 t->name, t->nranks);
        return CHORUS_INVALID_ARGUMENT;
    }
    if (c->algo == ALGO_HIER && n != t->nranks) {
        snprintf(res->error, sizeof res->error, "hier needs every rank of the topology (%d, "
                 "not %d)", t->nranks, n);
        return CHORUS_INVALID_ARGUMENT;
    }
    size_t esize = chorus_type_size(c->type);
    struct plan *plans = calloc((size_t)n, sizeof *plans);
    size_t *cnt = calloc((size_t)n, sizeof *cnt), *dis = calloc((size_t)n, sizeof *dis);
    int *rank_of = NULL;
    chorus_result_t rc = CHORUS_SUCCESS;
    if (!plans || !cnt || !dis) {
        snprintf(res->error, sizeof res->error, "simulator: out of memory for %d plans", n);
        rc = CHORUS_SYSTEM_ERROR;
        goto out;
    }
    for (int q = 0; q < n; q++) {
        cnt[q] = c->count;
        dis[q] = (size_t)q * c->count;
    }
    if (c->algo == ALGO_HIER) {
        /* hier plans name positions; the topology places rank r at rank_pos[r] */
        rank_of = malloc((size_t)n * sizeof *rank_of);
        if (!rank_of) {
            rc = CHORUS_SYSTEM_ERROR;
            snprintf(res->error, sizeof res->error, "simulator: out of memory");
            goto out;
        }
        for (int r = 0; r < n; r++)
            rank_of[t->rank_pos[r]] = r;
    }
    for (int r = 0; r < n; r++) {
        struct plan_args a = {.kind = c->kind, .nranks = n, .rank = r, .count = c->count,
                              .esize = esize, .root = c->root, .in_place = c->in_place,
                              .sendcounts = cnt, .sdispls = dis, .recvcounts = cnt,
                              .rdispls = dis};
        rc = build_one(t, c, &a, &plans[r]);
        if (rc != CHORUS_SUCCESS) {
            char why[400];
            chorus_error_save(why, sizeof why);
            snprintf(res->error, sizeof res->error, "building the %s plan of rank %d: %s",
                     algo_name(c->algo), r, why);
            goto out;
        }
    }
    struct sim_opts opts;
    if (o)
        opts = *o;
    else
        sim_opts_default(&opts);
    opts.esize = esize;
    opts.rank_of = rank_of;
    rc = sim_run(t, n, plans, &opts, res);
out:
    for (int r = 0; plans && r < n; r++)
        plan_free(&plans[r]);
    free(plans);
    free(cnt);
    free(dis);
    free(rank_of);
    return rc;
}
