/* topo_dump.c - writes a topology as a topology file (libyaml's emitter does
 * the quoting), and compares two topologies, so that dump -> parse can be
 * checked to give back the same machine. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "topo.h"

#include <string.h>

#include <yaml.h>

#include "topo_units.h"

static int emit(yaml_emitter_t *e, yaml_event_t *ev, int ok)
{
    return ok && yaml_emitter_emit(e, ev);
}

static int scalar(yaml_emitter_t *e, const char *text)
{
    yaml_event_t ev;
    int ok = yaml_scalar_event_initialize(&ev, NULL, (yaml_char_t *)YAML_STR_TAG,
                                          (yaml_char_t *)text, (int)strlen(text), 1, 1,
                                          YAML_ANY_SCALAR_STYLE);
    return emit(e, &ev, ok);
}

static int pair(yaml_emitter_t *e, const char *key, const char *value)
{
    return scalar(e, key) && scalar(e, value);
}

static int pair_int(yaml_emitter_t *e, const char *key, long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    return pair(e, key, buf);
}

static int pair_quantity(yaml_emitter_t *e, const char *key, double v, topo_unit_kind_t kind)
{
    char buf[64];
    topo_format_quantity(v, kind, buf, sizeof buf);
    return pair(e, key, buf);
}

static int start(yaml_emitter_t *e, int mapping, int flow)
{
    yaml_event_t ev;
    int ok = mapping ? yaml_mapping_start_event_initialize(
                           &ev, NULL, (yaml_char_t *)YAML_MAP_TAG, 1,
                           flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE)
                     : yaml_sequence_start_event_initialize(
                           &ev, NULL, (yaml_char_t *)YAML_SEQ_TAG, 1,
                           flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    return emit(e, &ev, ok);
}

static int end(yaml_emitter_t *e, int mapping)
{
    yaml_event_t ev;
    int ok = mapping ? yaml_mapping_end_event_initialize(&ev)
                     : yaml_sequence_end_event_initialize(&ev);
    return emit(e, &ev, ok);
}

static int emit_level(yaml_emitter_t *e, const struct topo_level *l)
{
    int ok = start(e, 1, 0) && pair(e, "name", l->name) && pair_int(e, "group", l->group) &&
             pair(e, "shape", topo_shape_name(l->shape)) &&
             pair_quantity(e, "bandwidth", l->bw, TOPO_UNIT_BANDWIDTH) &&
             pair_quantity(e, "latency", l->latency, TOPO_UNIT_LATENCY);
    if (ok && l->link[0])
        ok = pair(e, "link", l->link);
    if (ok && l->shape == TOPO_SHAPE_TORUS) {
        ok = scalar(e, "dims") && start(e, 0, 1);
        for (int d = 0; d < 3 && ok; d++) {
            char buf[16];
            snprintf(buf, sizeof buf, "%d", l->dims[d]);
            ok = scalar(e, buf);
        }
        ok = ok && end(e, 0) && pair(e, "wrap", l->wrap ? "true" : "false");
    }
    if (ok && l->shape == TOPO_SHAPE_CLOS && l->oversub != 1)
        ok = pair_quantity(e, "oversubscription", l->oversub, TOPO_UNIT_NONE);
    return ok && end(e, 1);
}

static int identity(const struct topo *t)
{
    for (int r = 0; r < t->nranks; r++)
        if (t->rank_pos[r] != r)
            return 0;
    return 1;
}

static int emit_topo(yaml_emitter_t *e, const struct topo *t)
{
    yaml_event_t ev;
    int ok = emit(e, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING)) &&
             emit(e, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1)) &&
             start(e, 1, 0) && pair(e, "name", t->name);
    if (ok && t->description[0])
        ok = pair(e, "description", t->description);
    ok = ok && pair_quantity(e, "reduce_bandwidth", t->reduce_bw, TOPO_UNIT_BANDWIDTH) &&
         scalar(e, "levels") && start(e, 0, 0);
    for (int i = 0; i < t->nlevels && ok; i++)
        ok = emit_level(e, &t->levels[i]);
    ok = ok && end(e, 0);
    if (ok && t->rank_pos && !identity(t)) {
        ok = scalar(e, "rank_map") && start(e, 0, 1);
        for (int r = 0; r < t->nranks && ok; r++) {
            char buf[16];
            snprintf(buf, sizeof buf, "%d", t->rank_pos[r]);
            ok = scalar(e, buf);
        }
        ok = ok && end(e, 0);
    }
    return ok && end(e, 1) &&
           emit(e, &ev, yaml_document_end_event_initialize(&ev, 1)) &&
           emit(e, &ev, yaml_stream_end_event_initialize(&ev));
}

void topo_dump_yaml(const struct topo *t, FILE *f)
{
    fprintf(f, "# topology %s: %d ranks in %d level(s) (from %s)\n"
               "# format: docs/topology.md; levels from the rank outward\n",
            t->name, t->nranks, t->nlevels, t->source[0] ? t->source : "memory");
    fflush(f);
    yaml_emitter_t e;
    if (!yaml_emitter_initialize(&e)) {
        fprintf(f, "# error: out of memory\n");
        return;
    }
    yaml_emitter_set_output_file(&e, f);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, 100);
    if (!emit_topo(&e, t) || !yaml_emitter_flush(&e))
        fprintf(f, "\n# error: cannot write this topology as YAML: %s\n",
                e.problem ? e.problem : "emitter failed");
    yaml_emitter_delete(&e);
}

int topo_equal(const struct topo *a, const struct topo *b)
{
    if (strcmp(a->name, b->name) || strcmp(a->description, b->description) ||
        a->nlevels != b->nlevels || a->nranks != b->nranks || a->reduce_bw != b->reduce_bw)
        return 0;
    for (int i = 0; i < a->nlevels; i++) {
        const struct topo_level *x = &a->levels[i], *y = &b->levels[i];
        if (strcmp(x->name, y->name) || x->group != y->group || x->shape != y->shape ||
            x->bw != y->bw || x->latency != y->latency || strcmp(x->link, y->link) ||
            x->oversub != y->oversub)
            return 0;
        /* dims and wrap only mean something on a torus */
        if (x->shape == TOPO_SHAPE_TORUS &&
            (memcmp(x->dims, y->dims, sizeof x->dims) || x->wrap != y->wrap))
            return 0;
    }
    for (int r = 0; r < a->nranks; r++)
        if (a->rank_pos[r] != b->rank_pos[r])
            return 0;
    return 1;
}
