/* tuner_print.c - the tuner's table for people: chorus_tune's per-size view
 * and the one-line summary the runtime logs (tuner.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <stdio.h>
#include <string.h>

#include "tuner.h"

static void size_text(size_t b, char *buf, size_t len)
{
    const char *u = "KMGT";
    int i = -1;
    while (b >= 1024 && b % 1024 == 0 && i < 3) {
        b /= 1024;
        i++;
    }
    if (i < 0)
        snprintf(buf, len, "%zu", b);
    else
        snprintf(buf, len, "%zu%c", b, u[i]);
}

static int same_choice(const struct tuner_choice *a, const struct tuner_choice *b)
{
    return a->algo == b->algo && a->segment == b->segment &&
           !memcmp(a->level_algo, b->level_algo, sizeof a->level_algo);
}

/* What the size column counts for kind (tuner.h: as the call counts it). */
static const char *size_meaning(coll_kind_t kind)
{
    switch (kind) {
    case COLL_ALLGATHER:
    case COLL_REDUCE_SCATTER:
        return "one rank's block";
    case COLL_ALLTOALL:
        return "the block for one peer";
    case COLL_ALLTOALLV:
        return "the busiest rank's bytes / ranks";
    default:
        return "the vector";
    }
}

/* The choice as chorus_tune shows it: hier:ring/rhd/ring (each level's
 * algorithm, innermost first) and @512K (the pipeline segment). */
static void choice_name(const struct topo *t, const struct tuner_choice *c, char *name,
                        size_t cap)
{
    size_t len = (size_t)snprintf(name, cap, "%s", algo_name(c->algo));
    if (c->algo != ALGO_HIER)
        return;
    for (int i = 0; i < t->nlevels && len + 1 < cap; i++)
        if (c->level_algo[i] != ALGO_AUTO)
            len += (size_t)snprintf(name + len, cap - len, "%c%s", len == 4 ? ':' : '/',
                                    algo_name(c->level_algo[i]));
    if (c->segment && len + 1 < cap) {
        char seg[24];
        size_text(c->segment, seg, sizeof seg);
        snprintf(name + len, cap - len, "@%s", seg);
    }
}

static int candidate(const struct topo *t, const struct tuner_shm *shm, coll_kind_t kind, int a)
{
    return a == ALGO_HIER ? tuner_hier_possible(t, shm, kind) : plan_supports((algo_t)a, kind);
}

void tuner_print(const struct topo *t, const struct tuner_shm *shm, const struct tuner *tu,
                 coll_kind_t kind, size_t lo, size_t hi, FILE *f)
{
    /* the choice column fits the longest label in the range (a 6-level
     * composition with a segment is over 50 characters) */
    int width = 14;
    char name[128];
    for (size_t s = lo ? lo : 1; s <= hi && s > 0; s *= 2) {
        choice_name(t, tuner_lookup(tu, kind, s), name, sizeof name);
        width = (int)strlen(name) > width ? (int)strlen(name) : width;
    }
    fprintf(f, "# %s on %s (%d ranks): size = %s in bytes; predicted time in us per candidate; "
            "* = chosen\n", coll_name(kind), t->name, t->nranks, size_meaning(kind));
    fprintf(f, "%12s  %-*s %12s", "size", width, "choice", "time(us)");
    for (int a = ALGO_RING; a < ALGO_COUNT; a++)
        if (candidate(t, shm, kind, a))
            fprintf(f, " %13s", algo_name((algo_t)a));
    fprintf(f, "\n");
    for (size_t s = lo ? lo : 1; s <= hi && s > 0; s *= 2) {
        const struct tuner_choice *c = tuner_lookup(tu, kind, s);
        choice_name(t, c, name, sizeof name);
        fprintf(f, "%12zu  %-*s %12.2f", s, width, name,
                tuner_cost(t, shm, kind, c->algo, s, NULL) * 1e6);
        for (int a = ALGO_RING; a < ALGO_COUNT; a++) {
            if (!candidate(t, shm, kind, a))
                continue;
            double x = tuner_cost(t, shm, kind, (algo_t)a, s, NULL);
            if (x < 0)
                fprintf(f, " %13s", "-");
            else
                fprintf(f, " %12.2f%c", x * 1e6, (algo_t)a == c->algo ? '*' : ' ');
        }
        fprintf(f, "\n");
    }
}

void tuner_summary(const struct tuner *tu, coll_kind_t kind, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "%s:", coll_name(kind));
    int nb = kind == COLL_BARRIER ? 1 : TUNER_NBUCKETS;
    for (int b = 0; b < nb && n < len; b++) {
        const struct tuner_choice *c = &tu->table[kind][b];
        int e = b;
        while (e + 1 < nb && same_choice(&tu->table[kind][e + 1], c))
            e++;
        char lo[24], hi[24];
        size_text((size_t)1 << b, lo, sizeof lo);
        size_text((size_t)1 << e, hi, sizeof hi);
        n += (size_t)snprintf(buf + n, len - n, "%s %s-%s %s", b ? "," : "", lo, hi,
                              algo_name(c->algo));
        char sep = ':';
        for (int i = 0; c->algo == ALGO_HIER && i < TOPO_MAX_LEVELS && n < len; i++)
            if (c->level_algo[i] != ALGO_AUTO) {
                n += (size_t)snprintf(buf + n, len - n, "%c%s", sep,
                                      algo_name(c->level_algo[i]));
                sep = '/';
            }
        if (c->segment && n < len) {
            char seg[24];
            size_text(c->segment, seg, sizeof seg);
            n += (size_t)snprintf(buf + n, len - n, " in %s segments", seg);
        }
        b = e;
    }
}
