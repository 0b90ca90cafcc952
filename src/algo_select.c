/* algo_select.c - CHORUS_ALGO parsing and the cost model (see algo_select.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "algo_select.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"

/* Link constants of the model: latency per message (s), seconds per byte
 * moved, seconds per byte reduced. */
struct link_cost {
    double alpha, beta, gamma;
};
static const struct link_cost NET = {25e-6, 1.0 / 1.25e9, 1.0 / 4e9};
static const struct link_cost SHM = {1e-6, 1.0 / 6e9, 1.0 / 4e9};
/* Pipeline segment of the chain broadcast (algos/ring_plan.c). */
#define CHAIN_SEGMENT (1u << 20)

/* Direct (everyone to everyone at once) saves latency but n-1 flows converge
 * on each receiver; switches and TCP lose some bandwidth to that incast. */
#define INCAST 1.25

static int hier_supports(coll_kind_t kind)
{
    return kind == COLL_ALLREDUCE || kind == COLL_ALLGATHER || kind == COLL_REDUCE_SCATTER ||
           kind == COLL_ALLTOALL || kind == COLL_BROADCAST || kind == COLL_REDUCE ||
           kind == COLL_BARRIER;
}

static int supports(algo_t a, coll_kind_t kind)
{
    return a == ALGO_HIER ? hier_supports(kind) : plan_supports(a, kind);
}

static int kind_from_name(const char *name, size_t len)
{
    for (int k = 0; k < ALGO_NKINDS; k++) {
        const char *n = coll_name((coll_kind_t)k);
        if (strlen(n) == len && strncasecmp(n, name, len) == 0)
            return k;
    }
    return -1;
}

/* One "name" or "^name,name" applied to the collectives in [k0, k1). */
static chorus_result_t apply(struct algo_config *cfg, const char *entry, const char *spec,
                             int k0, int k1)
{
    int exclude = spec[0] == '^';
    char names[256];
    snprintf(names, sizeof names, "%s", spec + exclude);
    int single = k1 - k0 == 1;
    char *save = NULL;
    for (char *n = strtok_r(names, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
        algo_t a = algo_from_name(n);
        if (a == ALGO_COUNT || a == ALGO_AUTO)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "CHORUS_ALGO entry '%s': unknown "
                              "algorithm '%s' (ring, rhd, tree, bruck, pairwise, direct, "
                              "dissemination, hier)", entry, n);
        if (!exclude && strchr(spec, ','))
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "CHORUS_ALGO entry '%s': force one "
                              "algorithm, or exclude several with '^a,b'", entry);
        int any = 0;
        for (int k = k0; k < k1; k++) {
            if (!supports(a, (coll_kind_t)k))
                continue;
            any = 1;
            if (exclude)
                cfg->excluded[k] |= 1u << a;
            else
                cfg->forced[k] = a;
        }
        if (!any && single)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "CHORUS_ALGO entry '%s': algorithm '%s' "
                              "does not implement %s", entry, n, coll_name((coll_kind_t)k0));
        if (!any)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "CHORUS_ALGO entry '%s': algorithm '%s' "
                              "implements no collective", entry, n);
    }
    return CHORUS_SUCCESS;
}

chorus_result_t algo_config_parse(struct algo_config *cfg, const char *text)
{
    memset(cfg, 0, sizeof *cfg);
    if (!text)
        return CHORUS_SUCCESS;
    char buf[1024];
    if (strlen(text) >= sizeof buf)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "CHORUS_ALGO is longer than %zu characters",
                          sizeof buf - 1);
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *e = strtok_r(buf, ";", &save); e; e = strtok_r(NULL, ";", &save)) {
        while (*e == ' ')
            e++;
        if (!*e)
            continue;
        char *colon = strchr(e, ':');
        if (!colon) {
            CHORUS_CHECK(apply(cfg, e, e, 0, ALGO_NKINDS));
            continue;
        }
        int k = kind_from_name(e, (size_t)(colon - e));
        if (k < 0)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "CHORUS_ALGO entry '%s': unknown "
                              "collective (allreduce, allgather, alltoall, alltoallv, "
                              "reduce_scatter, broadcast, reduce, barrier)", e);
        if (!colon[1])
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "CHORUS_ALGO entry '%s': no algorithm "
                              "after ':'", e);
        CHORUS_CHECK(apply(cfg, e, colon + 1, k, k + 1));
    }
    for (int k = 0; k < ALGO_NKINDS; k++) {
        int total = 0, left = 0;
        for (int a = ALGO_RING; a < ALGO_HIER; a++) {
            total += plan_supports((algo_t)a, (coll_kind_t)k);
            left += plan_supports((algo_t)a, (coll_kind_t)k) && !(cfg->excluded[k] >> a & 1);
        }
        if (total > 0 && left == 0)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "CHORUS_ALGO '%s' excludes every "
                              "algorithm of %s", text, coll_name((coll_kind_t)k));
        if (cfg->forced[k] != ALGO_AUTO && (cfg->excluded[k] >> cfg->forced[k] & 1))
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "CHORUS_ALGO '%s' both forces and "
                              "excludes %s for %s", text, algo_name(cfg->forced[k]),
                              coll_name((coll_kind_t)k));
    }
    return CHORUS_SUCCESS;
}

static double lg(int n) { return n > 1 ? ceil(log2((double)n)) : 0; }
static int is_pow2(int n) { return (n & (n - 1)) == 0; }

/* Flat algorithm over n ranks joined by link c; m = bytes as the call counts. */
static double flat_cost(algo_t a, coll_kind_t kind, int n, double m, const struct link_cost *c)
{
    if (n <= 1)
        return 0;
    double N = n, L = lg(n), fold = is_pow2(n) ? 0 : 1;
    switch (kind) {
    case COLL_ALLREDUCE:
        switch (a) {
        case ALGO_RING:
            return 2 * (N - 1) * c->alpha + 2 * (N - 1) / N * m * c->beta +
                   (N - 1) / N * m * c->gamma;
        case ALGO_RHD:
            return 2 * L * c->alpha + 2 * (N - 1) / N * m * c->beta + (N - 1) / N * m * c->gamma +
                   fold * (2 * c->alpha + 2 * m * c->beta + m * c->gamma);
        case ALGO_TREE:
            return 2 * L * (c->alpha + m * c->beta) + L * m * c->gamma;
        default:
            return -1;
        }
    case COLL_ALLGATHER:
        switch (a) {
        case ALGO_RING:
            return (N - 1) * (c->alpha + m * c->beta);
        case ALGO_RHD:
            return (L + 2 * fold) * c->alpha + (N - 1 + fold * N) * m * c->beta;
        case ALGO_BRUCK:
            return L * c->alpha + (N - 1) * m * c->beta + N * m * SHM.beta;
        case ALGO_DIRECT:
            return c->alpha * (1 + (N - 1) * 0.1) + INCAST * (N - 1) * m * c->beta;
        default:
            return -1;
        }
    case COLL_REDUCE_SCATTER:
        switch (a) {
        case ALGO_RING:
            return (N - 1) * (c->alpha + m * (c->beta + c->gamma));
        case ALGO_RHD:
            return (L + 2 * fold) * c->alpha + (N - 1 + fold * N) * m * (c->beta + c->gamma);
        default:
            return -1;
        }
    case COLL_ALLTOALL:
    case COLL_ALLTOALLV:
        switch (a) {
        case ALGO_PAIRWISE:
            return (N - 1) * (c->alpha + m * c->beta);
        case ALGO_BRUCK:
            return kind == COLL_ALLTOALL ? L * (c->alpha + N / 2 * m * c->beta) + 2 * N * m * SHM.beta
                                         : -1;
        case ALGO_DIRECT:
            return c->alpha * (1 + (N - 1) * 0.1) + INCAST * (N - 1) * m * c->beta;
        default:
            return -1;
        }
    case COLL_BROADCAST: {
        double seg = m < CHAIN_SEGMENT ? m : CHAIN_SEGMENT, S = m > seg && seg > 0 ? m / seg : 1;
        switch (a) {
        case ALGO_TREE:
            return L * (c->alpha + m * c->beta);
        case ALGO_RING:
            return (N - 1 + S - 1) * (c->alpha + seg * c->beta);
        default:
            return -1;
        }
    }
    case COLL_REDUCE:
        switch (a) {
        case ALGO_TREE:
            return L * (c->alpha + m * (c->beta + c->gamma));
        case ALGO_RING:
            return N * c->alpha + (N - 1) / N * m * (2 * c->beta + c->gamma);
        default:
            return -1;
        }
    case COLL_BARRIER:
        return a == ALGO_DISSEMINATION ? L * c->alpha : -1;
    default:
        return -1;
    }
}

/* Node-aware composition: shared memory inside (priced as the shm
 * algorithms' pipelined reduce-scatter / allgather), the best flat
 * algorithm across the nodes. */
static double hier_cost(const struct algo_config *cfg, const struct algo_layout *l,
                        coll_kind_t kind, double m)
{
    double P = l->ppn, H = l->nhosts, shm_pass = (P - 1) / P * m * SHM.beta + SHM.alpha;
    coll_kind_t inner = kind;
    double inner_m = m, local = 0;
    switch (kind) {
    case COLL_ALLREDUCE:
        inner_m = m / P;
        local = 2 * shm_pass + (P - 1) / P * m * SHM.gamma;
        break;
    case COLL_ALLGATHER:
        local = P * H * m * SHM.beta * 2 + SHM.alpha; /* allgather of H blocks + reorder */
        break;
    case COLL_REDUCE_SCATTER:
        inner_m = m;
        local = P * H * m * (2 * SHM.beta + SHM.gamma) + SHM.alpha;
        break;
    case COLL_ALLTOALL:
        inner_m = P * m; /* a node's blocks travel together */
        local = 4 * P * H * m * SHM.beta + SHM.alpha; /* three packs and the shm exchange */
        break;
    case COLL_BROADCAST:
    case COLL_REDUCE:
        local = m * (SHM.beta + (kind == COLL_REDUCE ? SHM.gamma : 0)) + SHM.alpha;
        break;
    case COLL_BARRIER:
        local = 2 * SHM.alpha;
        break;
    default:
        return -1;
    }
    algo_t a = algo_select_flat(cfg, inner, (int)H, (size_t)inner_m);
    return local + flat_cost(a, inner, (int)H, inner_m, &NET);
}

static int hier_possible(const struct algo_layout *l, coll_kind_t kind)
{
    return hier_supports(kind) && l->have_shm && l->nhosts > 1 && l->ppn > 1;
}

double algo_cost(algo_t algo, const struct algo_layout *l, coll_kind_t kind, size_t bytes)
{
    if (algo == ALGO_HIER)
        return hier_possible(l, kind) ? hier_cost(NULL, l, kind, (double)bytes) : -1;
    if (!plan_supports(algo, kind))
        return -1;
    return flat_cost(algo, kind, l->nranks, (double)bytes, &NET);
}

static algo_t cheapest(const struct algo_config *cfg, coll_kind_t kind, int n, size_t bytes)
{
    algo_t best = ALGO_COUNT;
    double best_cost = 0;
    for (int a = ALGO_RING; a < ALGO_HIER; a++) {
        if (!plan_supports((algo_t)a, kind) || (cfg && (cfg->excluded[kind] >> a & 1)))
            continue;
        double c = flat_cost((algo_t)a, kind, n, (double)bytes, &NET);
        if (c >= 0 && (best == ALGO_COUNT || c < best_cost)) {
            best = (algo_t)a;
            best_cost = c;
        }
    }
    /* algo_config_parse refuses to exclude every algorithm of a collective,
     * so this only happens for kinds without flat algorithms. */
    return best != ALGO_COUNT ? best : cfg ? cheapest(NULL, kind, n, bytes) : ALGO_RING;
}

algo_t algo_select_flat(const struct algo_config *cfg, coll_kind_t kind, int nranks,
                        size_t bytes)
{
    return cheapest(cfg, kind, nranks, bytes);
}

algo_t algo_select(const struct algo_config *cfg, const struct algo_layout *l,
                   coll_kind_t kind, size_t bytes)
{
    if (kind >= ALGO_NKINDS)
        return ALGO_AUTO;
    algo_t f = cfg->forced[kind];
    if (f == ALGO_HIER && !hier_possible(l, kind))
        f = ALGO_AUTO; /* no nodes to compose (logged once by the caller) */
    if (f != ALGO_AUTO)
        return f;
    algo_t flat = cheapest(cfg, kind, l->nranks, bytes);
    if (hier_possible(l, kind) && !(cfg->excluded[kind] >> ALGO_HIER & 1) &&
        hier_cost(cfg, l, kind, (double)bytes) <= flat_cost(flat, kind, l->nranks,
                                                            (double)bytes, &NET))
        return ALGO_HIER;
    return flat;
}
