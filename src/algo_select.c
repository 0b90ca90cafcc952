/* algo_select.c - CHORUS_ALGO parsing (see algo_select.h); the cost model
 * that chooses among the allowed algorithms is src/tuner.c. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "algo_select.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"

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
