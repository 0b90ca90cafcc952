/* topo.c - the parts of a topology every source shares: checks, positions,
 * a uniform topology for tests. Files are read in topo_file.c, this host is
 * detected in topo_detect.c. */
#include "topo.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Positions are ints; 1<<20 ranks is far beyond any supernode and keeps
 * every product below overflow. */
#define TOPO_MAX_RANKS (1 << 20)

static const char *const shape_names[TOPO_SHAPE_COUNT] = {
    [TOPO_SHAPE_SWITCH] = "switch", [TOPO_SHAPE_FULL_MESH] = "full-mesh",
    [TOPO_SHAPE_CLOS] = "clos",     [TOPO_SHAPE_RING] = "ring",
    [TOPO_SHAPE_TORUS] = "torus",
};

const char *topo_shape_name(topo_shape_t s)
{
    return (unsigned)s < TOPO_SHAPE_COUNT ? shape_names[s] : "unknown";
}

static chorus_result_t fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return CHORUS_INVALID_ARGUMENT;
}

chorus_result_t topo_finish(struct topo *t, char *err, size_t errlen)
{
    if (t->nlevels < 1 || t->nlevels > TOPO_MAX_LEVELS)
        return fail(err, errlen, "topology '%s': %d levels (1..%d allowed)", t->name, t->nlevels,
                    TOPO_MAX_LEVELS);
    long long n = 1;
    for (int i = 0; i < t->nlevels; i++) {
        struct topo_level *l = &t->levels[i];
        const char *ln = l->name[0] ? l->name : "(unnamed)";
        if (l->group < 1)
            return fail(err, errlen, "level %d '%s': group %d (must be >= 1)", i, ln, l->group);
        if (!(l->bw > 0))
            return fail(err, errlen, "level %d '%s': bandwidth must be > 0", i, ln);
        if (!(l->latency >= 0))
            return fail(err, errlen, "level %d '%s': latency must be >= 0", i, ln);
        if ((unsigned)l->shape >= TOPO_SHAPE_COUNT)
            return fail(err, errlen, "level %d '%s': unknown shape", i, ln);
        if (l->oversub == 0)
            l->oversub = 1;
        if (l->oversub < 1)
            return fail(err, errlen, "level %d '%s': oversubscription %g (must be >= 1)", i, ln,
                        l->oversub);
        if (l->shape == TOPO_SHAPE_TORUS) {
            long long prod = 1;
            for (int d = 0; d < 3; d++) {
                if (l->dims[d] == 0)
                    l->dims[d] = 1;
                if (l->dims[d] < 1)
                    return fail(err, errlen, "level %d '%s': torus extent %d < 1", i, ln,
                                l->dims[d]);
                prod *= l->dims[d];
            }
            if (prod != l->group)
                return fail(err, errlen, "level %d '%s': torus %dx%dx%d has %lld members, group "
                            "says %d", i, ln, l->dims[0], l->dims[1], l->dims[2], prod, l->group);
        }
        n *= l->group;
        if (n > TOPO_MAX_RANKS)
            return fail(err, errlen, "topology '%s': more than %d ranks", t->name, TOPO_MAX_RANKS);
    }
    if (!(t->reduce_bw > 0))
        return fail(err, errlen, "topology '%s': reduce bandwidth must be > 0", t->name);
    t->nranks = (int)n;
    if (!t->rank_pos) {
        t->rank_pos = malloc(sizeof(int) * (size_t)n);
        if (!t->rank_pos)
            return fail(err, errlen, "topology '%s': out of memory", t->name);
        for (int r = 0; r < t->nranks; r++)
            t->rank_pos[r] = r;
        return CHORUS_SUCCESS;
    }
    /* a user-given mapping must be a permutation */
    char *seen = calloc((size_t)n, 1);
    if (!seen)
        return fail(err, errlen, "topology '%s': out of memory", t->name);
    for (int r = 0; r < t->nranks; r++) {
        int p = t->rank_pos[r];
        if (p < 0 || p >= t->nranks || seen[p]) {
            free(seen);
            return fail(err, errlen, "rank map: rank %d has position %d (%s)", r, p,
                        p < 0 || p >= t->nranks ? "out of range" : "taken twice");
        }
        seen[p] = 1;
    }
    free(seen);
    return CHORUS_SUCCESS;
}

chorus_result_t topo_uniform(int nranks, double bw, double latency, double reduce_bw,
                             struct topo **out)
{
    *out = NULL;
    struct topo *t = calloc(1, sizeof(*t));
    if (!t)
        return CHORUS_SYSTEM_ERROR;
    snprintf(t->name, sizeof(t->name), "uniform-%d", nranks);
    snprintf(t->description, sizeof(t->description), "%d ranks on one switch", nranks);
    snprintf(t->source, sizeof(t->source), "built-in");
    t->nlevels = 1;
    struct topo_level *l = &t->levels[0];
    snprintf(l->name, sizeof(l->name), "switch");
    l->group = nranks;
    l->shape = TOPO_SHAPE_SWITCH;
    l->bw = bw;
    l->latency = latency;
    t->reduce_bw = reduce_bw;
    return topo_hand_out(t, out);
}

chorus_result_t topo_hand_out(struct topo *t, struct topo **out)
{
    chorus_result_t rc = topo_finish(t, NULL, 0);
    if (rc != CHORUS_SUCCESS) {
        topo_free(t);
        *out = NULL;
        return rc;
    }
    *out = t;
    return CHORUS_SUCCESS;
}

void topo_free(struct topo *t)
{
    if (!t)
        return;
    free(t->rank_pos);
    free(t);
}

int topo_stride(const struct topo *t, int level)
{
    int s = 1;
    for (int i = 0; i < level && i < t->nlevels; i++)
        s *= t->levels[i].group;
    return s;
}

int topo_coord(const struct topo *t, int rank, int level)
{
    return t->rank_pos[rank] / topo_stride(t, level) % t->levels[level].group;
}

int topo_level_between(const struct topo *t, int a, int b)
{
    if (a == b)
        return -1;
    int pa = t->rank_pos[a], pb = t->rank_pos[b];
    for (int i = t->nlevels - 1; i >= 0; i--) {
        int s = topo_stride(t, i);
        if (pa / s % t->levels[i].group != pb / s % t->levels[i].group)
            return i;
    }
    return -1; /* unreachable for a permutation */
}
