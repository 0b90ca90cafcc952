/* tuner_file.c - reads a tuning file (docs/tuner.md): measured figures of
 * the transports, which replace the defaults, and rules that replace the
 * model's choice for a collective in a size range. `chorus_tune
 * --calibrate` writes one. YAML through libyaml's document loader; the
 * files are small and written by us or by hand, but every field is checked
 * and errors name file, line and field like topology files do. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "tuner_file.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "error.h"
#include "topo_units.h"
#include "tunables.h"

#define TUNING_FILE_MAX (256 * 1024)

struct rd {
    const char *path;
    yaml_document_t doc;
    char *err;
    size_t errlen;
};

static chorus_result_t bad(struct rd *r, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static chorus_result_t bad(struct rd *r, const yaml_node_t *n, const char *fmt, ...)
{
    int k = snprintf(r->err, r->errlen, "%s:%zu: ", r->path,
                     n ? (size_t)n->start_mark.line + 1 : (size_t)0);
    va_list ap;
    va_start(ap, fmt);
    if (k >= 0 && (size_t)k < r->errlen)
        vsnprintf(r->err + k, r->errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return CHORUS_INVALID_ARGUMENT;
}

static const char *text_of(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static chorus_result_t quantity(struct rd *r, const yaml_node_t *n, const char *field,
                                topo_unit_kind_t kind, double *out)
{
    char why[128];
    const char *s = text_of(n);
    if (!s)
        return bad(r, n, "%s: expected a value with a unit", field);
    if (topo_parse_quantity(s, kind, out, why, sizeof why) != 0)
        return bad(r, n, "%s: '%s': %s", field, s, why);
    if (!(*out > 0))
        return bad(r, n, "%s: must be > 0", field);
    return CHORUS_SUCCESS;
}

/* {latency: X us, bandwidth: Y GB/s} */
static chorus_result_t link_figures(struct rd *r, const yaml_node_t *n, const char *name,
                                    struct tuner_link *l)
{
    if (n->type != YAML_MAPPING_NODE)
        return bad(r, n, "figures.%s: expected a mapping of latency and bandwidth", name);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(&r->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(&r->doc, p->value);
        const char *key = text_of(k);
        char field[64];
        snprintf(field, sizeof field, "figures.%s.%s", name, key ? key : "?");
        if (key && !strcmp(key, "latency"))
            CHORUS_CHECK(quantity(r, v, field, TOPO_UNIT_LATENCY, &l->alpha));
        else if (key && !strcmp(key, "bandwidth"))
            CHORUS_CHECK(quantity(r, v, field, TOPO_UNIT_BANDWIDTH, &l->bw));
        else
            return bad(r, k, "%s: unknown key (latency, bandwidth)", field);
    }
    return CHORUS_SUCCESS;
}

static chorus_result_t figures(struct rd *r, const yaml_node_t *n, struct tuner_figures *f)
{
    if (n->type != YAML_MAPPING_NODE)
        return bad(r, n, "figures: expected a mapping");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(&r->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(&r->doc, p->value);
        const char *key = text_of(k);
        if (key && !strcmp(key, "tcp"))
            CHORUS_CHECK(link_figures(r, v, key, &f->tcp));
        else if (key && !strcmp(key, "rdma"))
            CHORUS_CHECK(link_figures(r, v, key, &f->rdma));
        else if (key && !strcmp(key, "shm"))
            CHORUS_CHECK(link_figures(r, v, key, &f->shm));
        else if (key && !strcmp(key, "reduce_bandwidth"))
            CHORUS_CHECK(quantity(r, v, "figures.reduce_bandwidth", TOPO_UNIT_BANDWIDTH,
                                  &f->reduce_bw));
        else
            return bad(r, k, "figures.%s: unknown key (shm, tcp, rdma, reduce_bandwidth)",
                       key ? key : "?");
    }
    return CHORUS_SUCCESS;
}

static chorus_result_t size_field(struct rd *r, const yaml_node_t *v, int i, const char *key,
                                  size_t *out)
{
    const char *s = text_of(v);
    if (!s || chorus_parse_size(s, out) != 0)
        return bad(r, v, "rules[%d].%s: expected a size in bytes (K, M, G suffixes)", i, key);
    return CHORUS_SUCCESS;
}

/* - {collective: allreduce, min: 0, max: 4K, algorithm: rhd} */
static chorus_result_t rule(struct rd *r, const yaml_node_t *n, int i, struct tuner_rule *out)
{
    if (n->type != YAML_MAPPING_NODE)
        return bad(r, n, "rules[%d]: expected a mapping", i);
    int have_coll = 0, have_algo = 0;
    *out = (struct tuner_rule){.min_bytes = 0, .max_bytes = SIZE_MAX};
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(&r->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(&r->doc, p->value);
        const char *key = text_of(k), *val = text_of(v);
        if (key && !strcmp(key, "collective")) {
            int kind = -1;
            for (int c = 0; val && c < ALGO_NKINDS; c++)
                if (!strcasecmp(val, coll_name((coll_kind_t)c)))
                    kind = c;
            if (kind < 0)
                return bad(r, v, "rules[%d].collective: unknown collective '%s'", i,
                           val ? val : "?");
            out->kind = (coll_kind_t)kind;
            have_coll = 1;
        } else if (key && !strcmp(key, "algorithm")) {
            algo_t a = val ? algo_from_name(val) : ALGO_COUNT;
            if (a == ALGO_COUNT || a == ALGO_AUTO)
                return bad(r, v, "rules[%d].algorithm: unknown algorithm '%s'", i,
                           val ? val : "?");
            out->algo = a;
            have_algo = 1;
        } else if (key && !strcmp(key, "min")) {
            CHORUS_CHECK(size_field(r, v, i, key, &out->min_bytes));
        } else if (key && !strcmp(key, "max")) {
            CHORUS_CHECK(size_field(r, v, i, key, &out->max_bytes));
        } else {
            return bad(r, k, "rules[%d].%s: unknown key (collective, min, max, algorithm)", i,
                       key ? key : "?");
        }
    }
    if (!have_coll || !have_algo)
        return bad(r, n, "rules[%d]: needs collective and algorithm", i);
    if (out->min_bytes > out->max_bytes)
        return bad(r, n, "rules[%d]: min is larger than max", i);
    if (out->algo != ALGO_HIER && !plan_supports(out->algo, out->kind))
        return bad(r, n, "rules[%d]: %s does not implement %s", i, algo_name(out->algo),
                   coll_name(out->kind));
    return CHORUS_SUCCESS;
}

static chorus_result_t document(struct rd *r, struct tuning *t)
{
    const yaml_node_t *root = yaml_document_get_root_node(&r->doc);
    if (!root)
        return CHORUS_SUCCESS; /* an empty file changes nothing */
    if (root->type != YAML_MAPPING_NODE)
        return bad(r, root, "expected a mapping with figures and rules");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = yaml_document_get_node(&r->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(&r->doc, p->value);
        const char *key = text_of(k);
        if (key && !strcmp(key, "figures")) {
            CHORUS_CHECK(figures(r, v, &t->figures));
        } else if (key && !strcmp(key, "rules")) {
            if (v->type != YAML_SEQUENCE_NODE)
                return bad(r, v, "rules: expected a list");
            int n = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
            if (n > TUNING_MAX_RULES)
                return bad(r, v, "rules: %d entries (at most %d)", n, TUNING_MAX_RULES);
            for (int i = 0; i < n; i++)
                CHORUS_CHECK(rule(r, yaml_document_get_node(&r->doc,
                                                            v->data.sequence.items.start[i]),
                                  i, &t->rules[i]));
            t->nrules = n;
        } else {
            return bad(r, k, "%s: unknown key (figures, rules)", key ? key : "?");
        }
    }
    return CHORUS_SUCCESS;
}

chorus_result_t tuning_read(const char *path, struct tuning *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->figures = tuner_default_figures;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %m", path);
        return CHORUS_INVALID_ARGUMENT;
    }
    char *text = malloc(TUNING_FILE_MAX + 1);
    size_t len = text ? fread(text, 1, TUNING_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!text) {
        snprintf(err, errlen, "%s: out of memory", path);
        return CHORUS_SYSTEM_ERROR;
    }
    if (len > TUNING_FILE_MAX) {
        free(text);
        snprintf(err, errlen, "%s: larger than %d bytes", path, TUNING_FILE_MAX);
        return CHORUS_INVALID_ARGUMENT;
    }
    struct rd r = {.path = path, .err = err, .errlen = errlen};
    yaml_parser_t parser;
    chorus_result_t res = CHORUS_SUCCESS;
    if (!yaml_parser_initialize(&parser)) {
        free(text);
        snprintf(err, errlen, "%s: out of memory", path);
        return CHORUS_SYSTEM_ERROR;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &r.doc)) {
        snprintf(err, errlen, "%s:%zu: %s", path, (size_t)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "not valid YAML");
        res = CHORUS_INVALID_ARGUMENT;
    } else {
        res = document(&r, t);
        yaml_document_delete(&r.doc);
    }
    yaml_parser_delete(&parser);
    /* FNV-1a of the text: ranks check at init that they decide from the same file */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 1099511628211ull;
    t->hash = h;
    free(text);
    return res;
}

void tuning_write(FILE *f, const struct tuning *t, const char *comment)
{
    char a[64], b[64];
    fprintf(f, "# Chorus tuning file (docs/tuner.md)%s%s\n", comment ? ": " : "",
            comment ? comment : "");
    fprintf(f, "figures:\n");
    const struct tuner_link *links[] = {&t->figures.shm, &t->figures.tcp, &t->figures.rdma};
    const char *names[] = {"shm", "tcp", "rdma"};
    for (int i = 0; i < 3; i++) {
        topo_human_quantity(links[i]->alpha, TOPO_UNIT_LATENCY, a, sizeof a);
        topo_human_quantity(links[i]->bw, TOPO_UNIT_BANDWIDTH, b, sizeof b);
        fprintf(f, "  %s: {latency: %s, bandwidth: %s}\n", names[i], a, b);
    }
    topo_human_quantity(t->figures.reduce_bw, TOPO_UNIT_BANDWIDTH, b, sizeof b);
    fprintf(f, "  reduce_bandwidth: %s\n", b);
    if (t->nrules)
        fprintf(f, "rules:\n");
    for (int i = 0; i < t->nrules; i++) {
        const struct tuner_rule *r = &t->rules[i];
        fprintf(f, "  - {collective: %s, min: %zu, max: %zu, algorithm: %s}\n",
                coll_name(r->kind), r->min_bytes, r->max_bytes, algo_name(r->algo));
    }
}
