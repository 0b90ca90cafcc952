/* topo_file.c - reads topology files (docs/topology.md) with libyaml and
 * resolves short names of shipped topologies.
 *
 * Two passes over the text: libyaml's event parser first, which refuses
 * aliases, more than one document and nesting deeper than any valid file
 * needs (the document loader has no such bounds, and hostile input must not
 * make it build huge graphs); then libyaml's document loader, whose nodes
 * carry the line and column every error names. Nothing here keeps state
 * between calls, so a fuzzer may call topo_parse in a loop. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "topo.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "error.h"
#include "topo_units.h"
#include "tunables.h"

#ifndef CHORUS_TOPO_DATADIR
#define CHORUS_TOPO_DATADIR "/usr/local/share/chorus/topo"
#endif

/* An explicit rank map of 100k ranks fits; nothing legitimate is larger. */
#define TOPO_FILE_MAX (1 << 20)
/* A valid file nests 3 deep (top mapping, levels, a level's dims). */
#define TOPO_MAX_DEPTH 4

struct ctx {
    const char *what;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
};

static chorus_result_t failv(struct ctx *c, const yaml_mark_t *m, const char *field,
                             const char *fmt, va_list ap)
{
    if (!c->err || !c->errlen)
        return CHORUS_INVALID_ARGUMENT;
    int n;
    if (m)
        n = snprintf(c->err, c->errlen, "%s:%zu:%zu: %s%s", c->what, (size_t)m->line + 1,
                     (size_t)m->column + 1, field ? field : "", field ? ": " : "");
    else
        n = snprintf(c->err, c->errlen, "%s: %s%s", c->what, field ? field : "",
                     field ? ": " : "");
    if (n >= 0 && (size_t)n < c->errlen)
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    return CHORUS_INVALID_ARGUMENT;
}

static chorus_result_t fail(struct ctx *c, const yaml_node_t *node, const char *field,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static chorus_result_t fail(struct ctx *c, const yaml_node_t *node, const char *field,
                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    chorus_result_t r = failv(c, node ? &node->start_mark : NULL, field, fmt, ap);
    va_end(ap);
    return r;
}

static chorus_result_t fail_mark(struct ctx *c, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static chorus_result_t fail_mark(struct ctx *c, const yaml_mark_t *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    chorus_result_t r = failv(c, m, NULL, fmt, ap);
    va_end(ap);
    return r;
}

static chorus_result_t parser_error(struct ctx *c, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return fail(c, NULL, NULL, "out of memory");
    if (p->context)
        return fail_mark(c, &p->problem_mark, "YAML syntax: %s %s", p->problem, p->context);
    return fail_mark(c, &p->problem_mark, "YAML syntax: %s",
                     p->problem ? p->problem : "malformed");
}

/* Pass 1: events only, to bound what pass 2 may build. */
static chorus_result_t prescan(struct ctx *c, const char *text, size_t len)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return fail(c, NULL, NULL, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    chorus_result_t rc = CHORUS_SUCCESS;
    int depth = 0, docs = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = parser_error(c, &p);
            break;
        }
        yaml_event_type_t type = ev.type;
        switch (type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                rc = fail_mark(c, &ev.start_mark, "more than one YAML document (one per file)");
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (++depth > TOPO_MAX_DEPTH)
                rc = fail_mark(c, &ev.start_mark, "nested deeper than a topology file goes");
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_ALIAS_EVENT:
            rc = fail_mark(c, &ev.start_mark, "aliases (*%.40s) are not supported",
                           (const char *)ev.data.alias.anchor);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (rc != CHORUS_SUCCESS || type == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&p);
    if (rc == CHORUS_SUCCESS && docs == 0)
        return fail(c, NULL, NULL, "empty file (no YAML document)");
    return rc;
}

/* ---- typed access to nodes ------------------------------------------------------------ */

static yaml_node_t *get(struct ctx *c, int id) { return yaml_document_get_node(c->doc, id); }

static const char *node_kind(const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE ? "a mapping (key: value ...)"
           : n->type == YAML_SEQUENCE_NODE ? "a list" : "a single value";
}

/* The scalar's text, NUL-terminated by libyaml; refuses lists, mappings and
 * embedded NULs (possible through "\0" escapes). */
static chorus_result_t scalar(struct ctx *c, const yaml_node_t *n, const char *field,
                              const char **out)
{
    if (n->type != YAML_SCALAR_NODE)
        return fail(c, n, field, "expected a single value, found %s", node_kind(n));
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length)
        return fail(c, n, field, "contains a NUL character");
    *out = s;
    return CHORUS_SUCCESS;
}

/* Names travel on command lines and in one-line listings: no spaces. */
static chorus_result_t get_name(struct ctx *c, const yaml_node_t *n, const char *field,
                                char *dst, size_t cap)
{
    const char *s = NULL;
    CHORUS_CHECK(scalar(c, n, field, &s));
    size_t len = strlen(s);
    if (len == 0 || len >= cap)
        return fail(c, n, field, "must have 1 to %zu characters", cap - 1);
    if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-") != len)
        return fail(c, n, field, "'%.40s': use letters, digits and . _ + - only", s);
    memcpy(dst, s, len + 1);
    return CHORUS_SUCCESS;
}

static chorus_result_t get_text(struct ctx *c, const yaml_node_t *n, const char *field,
                                char *dst, size_t cap)
{
    const char *s = NULL;
    CHORUS_CHECK(scalar(c, n, field, &s));
    size_t len = strlen(s);
    if (len >= cap)
        return fail(c, n, field, "longer than %zu bytes", cap - 1);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\t')
            return fail(c, n, field, "contains control character 0x%02x", (unsigned char)s[i]);
    memcpy(dst, s, len + 1);
    return CHORUS_SUCCESS;
}

static chorus_result_t get_int(struct ctx *c, const yaml_node_t *n, const char *field, long min,
                               long max, int *out)
{
    const char *s = NULL;
    CHORUS_CHECK(scalar(c, n, field, &s));
    const char *p = s + (s[0] == '-' || s[0] == '+');
    if (!*p || strspn(p, "0123456789") != strlen(p))
        return fail(c, n, field, "'%.40s' is not an integer", s);
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || v < min || v > max)
        return fail(c, n, field, "%.40s is out of range (%ld to %ld)", s, min, max);
    *out = (int)v;
    return CHORUS_SUCCESS;
}

static chorus_result_t get_quantity(struct ctx *c, const yaml_node_t *n, const char *field,
                                    topo_unit_kind_t kind, double *out)
{
    const char *s = NULL;
    CHORUS_CHECK(scalar(c, n, field, &s));
    char why[160];
    if (topo_parse_quantity(s, kind, out, why, sizeof why) != 0)
        return fail(c, n, field, "%s", why);
    return CHORUS_SUCCESS;
}

static chorus_result_t get_bool(struct ctx *c, const yaml_node_t *n, const char *field, int *out)
{
    const char *s = NULL;
    CHORUS_CHECK(scalar(c, n, field, &s));
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i]))
            return *out = 1, CHORUS_SUCCESS;
        if (!strcasecmp(s, no[i]))
            return *out = 0, CHORUS_SUCCESS;
    }
    return fail(c, n, field, "'%.40s' is not true or false", s);
}

/* Finds key in a fixed list; unknown and repeated keys are errors. The
 * lookup is against the short list, never against earlier keys, so a
 * hostile mapping of many keys costs linear time. */
static chorus_result_t key_index(struct ctx *c, const yaml_node_t *key, const char *where,
                                 const char *const *keys, int nkeys, unsigned *seen, int *idx)
{
    const char *k = NULL;
    CHORUS_CHECK(scalar(c, key, where, &k));
    for (int i = 0; i < nkeys; i++) {
        if (!strcmp(k, keys[i])) {
            if (*seen & (1u << i))
                return fail(c, key, where, "duplicate key '%s'", k);
            *seen |= 1u << i;
            *idx = i;
            return CHORUS_SUCCESS;
        }
    }
    char list[256] = "";
    for (int i = 0; i < nkeys; i++) {
        strncat(list, keys[i], sizeof list - strlen(list) - 1);
        if (i + 1 < nkeys)
            strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return fail(c, key, where, "unknown key '%.40s' (known: %s)", k, list);
}

/* ---- levels ----------------------------------------------------------------------------- */

enum { LK_NAME, LK_GROUP, LK_SHAPE, LK_BW, LK_LAT, LK_LINK, LK_DIMS, LK_WRAP, LK_OVERSUB, LK_N };
static const char *const level_keys[LK_N] = {
    "name", "group", "shape", "bandwidth", "latency", "link", "dims", "wrap", "oversubscription",
};

static chorus_result_t parse_dims(struct ctx *c, const yaml_node_t *n, const char *field,
                                  struct topo_level *l)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, field, "expected a list of 1 to 3 extents, found %s", node_kind(n));
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count < 1 || count > 3)
        return fail(c, n, field, "%d extents (1 to 3 allowed)", count);
    for (int d = 0; d < count; d++) {
        const yaml_node_t *item = get(c, n->data.sequence.items.start[d]);
        CHORUS_CHECK(get_int(c, item, field, 1, 1 << 20, &l->dims[d]));
    }
    for (int d = count; d < 3; d++)
        l->dims[d] = 1;
    return CHORUS_SUCCESS;
}

static chorus_result_t parse_level(struct ctx *c, const yaml_node_t *n, int i,
                                   struct topo_level *l)
{
    char where[96];
    snprintf(where, sizeof where, "levels[%d]", i);
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, where, "expected a mapping (name: ..., group: ...), found %s",
                    node_kind(n));
    unsigned seen = 0;
    const yaml_node_t *val[LK_N] = {0};
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
         pr++) {
        int k;
        CHORUS_CHECK(key_index(c, get(c, pr->key), where, level_keys, LK_N, &seen, &k));
        val[k] = get(c, pr->value);
    }
    static const int required[] = {LK_NAME, LK_GROUP, LK_SHAPE, LK_BW, LK_LAT};
    for (size_t r = 0; r < sizeof required / sizeof required[0]; r++)
        if (!val[required[r]])
            return fail(c, n, where, "missing '%s'", level_keys[required[r]]);

    char field[160];
#define FIELD(k) (snprintf(field, sizeof field, "%s.%s", where, level_keys[k]), field)
    CHORUS_CHECK(get_name(c, val[LK_NAME], FIELD(LK_NAME), l->name, sizeof l->name));
    /* from here on, errors name the level by its name too */
    snprintf(where, sizeof where, "levels[%d] (%s)", i, l->name);
    CHORUS_CHECK(get_int(c, val[LK_GROUP], FIELD(LK_GROUP), 1, 1 << 20, &l->group));
    const char *shape = NULL;
    CHORUS_CHECK(scalar(c, val[LK_SHAPE], FIELD(LK_SHAPE), &shape));
    l->shape = TOPO_SHAPE_COUNT;
    for (int s = 0; s < TOPO_SHAPE_COUNT; s++)
        if (!strcmp(shape, topo_shape_name((topo_shape_t)s)))
            l->shape = (topo_shape_t)s;
    if (l->shape == TOPO_SHAPE_COUNT)
        return fail(c, val[LK_SHAPE], FIELD(LK_SHAPE),
                    "unknown shape '%.40s' (switch, full-mesh, clos, ring, torus)", shape);
    CHORUS_CHECK(get_quantity(c, val[LK_BW], FIELD(LK_BW), TOPO_UNIT_BANDWIDTH, &l->bw));
    if (!(l->bw > 0))
        return fail(c, val[LK_BW], FIELD(LK_BW), "must be > 0");
    CHORUS_CHECK(get_quantity(c, val[LK_LAT], FIELD(LK_LAT), TOPO_UNIT_LATENCY, &l->latency));
    if (val[LK_LINK])
        CHORUS_CHECK(get_name(c, val[LK_LINK], FIELD(LK_LINK), l->link, sizeof l->link));

    /* shape-specific keys: refused on other shapes rather than ignored */
    int torus = l->shape == TOPO_SHAPE_TORUS;
    if ((val[LK_DIMS] || val[LK_WRAP]) && !torus)
        return fail(c, val[LK_DIMS] ? val[LK_DIMS] : val[LK_WRAP],
                    FIELD(val[LK_DIMS] ? LK_DIMS : LK_WRAP), "only for shape torus");
    if (val[LK_OVERSUB] && l->shape != TOPO_SHAPE_CLOS)
        return fail(c, val[LK_OVERSUB], FIELD(LK_OVERSUB), "only for shape clos");
    l->oversub = 1;
    if (val[LK_OVERSUB]) {
        CHORUS_CHECK(get_quantity(c, val[LK_OVERSUB], FIELD(LK_OVERSUB), TOPO_UNIT_NONE,
                                  &l->oversub));
        if (!(l->oversub >= 1))
            return fail(c, val[LK_OVERSUB], FIELD(LK_OVERSUB), "%g is below 1 (1 = non-blocking)",
                        l->oversub);
    }
    if (torus) {
        if (!val[LK_DIMS])
            return fail(c, n, where, "shape torus needs 'dims' (e.g. [2, 2, 2])");
        CHORUS_CHECK(parse_dims(c, val[LK_DIMS], FIELD(LK_DIMS), l));
        long long prod = (long long)l->dims[0] * l->dims[1] * l->dims[2];
        if (prod != l->group)
            return fail(c, val[LK_DIMS], FIELD(LK_DIMS), "%dx%dx%d = %lld members, group is %d",
                        l->dims[0], l->dims[1], l->dims[2], prod, l->group);
        l->wrap = 1;
        if (val[LK_WRAP])
            CHORUS_CHECK(get_bool(c, val[LK_WRAP], FIELD(LK_WRAP), &l->wrap));
    }
#undef FIELD
    return CHORUS_SUCCESS;
}

static chorus_result_t parse_levels(struct ctx *c, const yaml_node_t *n, struct topo *t)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, "levels", "expected a list of levels, found %s", node_kind(n));
    long count = (long)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count < 1 || count > TOPO_MAX_LEVELS)
        return fail(c, n, "levels", "%ld levels (1 to %d allowed)", count, TOPO_MAX_LEVELS);
    t->nlevels = (int)count;
    for (int i = 0; i < t->nlevels; i++) {
        const yaml_node_t *item = get(c, n->data.sequence.items.start[i]);
        CHORUS_CHECK(parse_level(c, item, i, &t->levels[i]));
        for (int j = 0; j < i; j++)
            if (!strcmp(t->levels[j].name, t->levels[i].name))
                return fail(c, item, "levels", "level name '%s' used twice (levels %d and %d)",
                            t->levels[i].name, j, i);
    }
    return CHORUS_SUCCESS;
}

/* "block" (rank r at position r) or one position per rank. */
static chorus_result_t parse_rank_map(struct ctx *c, const yaml_node_t *n, struct topo *t)
{
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = NULL;
        CHORUS_CHECK(scalar(c, n, "rank_map", &s));
        if (strcmp(s, "block") != 0)
            return fail(c, n, "rank_map", "'%.40s': expected block or a list of positions", s);
        return CHORUS_SUCCESS; /* topo_finish made the identity */
    }
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, "rank_map", "expected block or a list of positions, found %s",
                    node_kind(n));
    long count = (long)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count != t->nranks)
        return fail(c, n, "rank_map", "%ld positions for %d ranks", count, t->nranks);
    /* rank_pos holds the identity: refill it, marking taken positions by
     * a parallel array so the error can name both ranks */
    int *owner = malloc(sizeof(int) * (size_t)t->nranks);
    if (!owner)
        return fail(c, n, "rank_map", "out of memory");
    for (int r = 0; r < t->nranks; r++)
        owner[r] = -1;
    chorus_result_t rc = CHORUS_SUCCESS;
    for (int r = 0; r < t->nranks && rc == CHORUS_SUCCESS; r++) {
        const yaml_node_t *item = get(c, n->data.sequence.items.start[r]);
        char field[32];
        snprintf(field, sizeof field, "rank_map[%d]", r);
        int p;
        rc = get_int(c, item, field, 0, t->nranks - 1, &p);
        if (rc == CHORUS_SUCCESS && owner[p] >= 0)
            rc = fail(c, item, field, "position %d already given to rank %d", p, owner[p]);
        if (rc == CHORUS_SUCCESS) {
            owner[p] = r;
            t->rank_pos[r] = p;
        }
    }
    free(owner);
    return rc;
}

enum { TK_NAME, TK_DESC, TK_REDUCE, TK_LEVELS, TK_RANKMAP, TK_N };
static const char *const top_keys[TK_N] = {
    "name", "description", "reduce_bandwidth", "levels", "rank_map",
};

static chorus_result_t parse_doc(struct ctx *c, struct topo *t)
{
    const yaml_node_t *root = yaml_document_get_root_node(c->doc);
    if (!root)
        return fail(c, NULL, NULL, "empty file (no YAML document)");
    if (root->type != YAML_MAPPING_NODE)
        return fail(c, root, "top level", "expected a mapping (name: ..., levels: ...), found %s",
                    node_kind(root));
    unsigned seen = 0;
    const yaml_node_t *val[TK_N] = {0}, *key[TK_N] = {0};
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
         pr < root->data.mapping.pairs.top; pr++) {
        int k;
        CHORUS_CHECK(key_index(c, get(c, pr->key), "top level", top_keys, TK_N, &seen, &k));
        val[k] = get(c, pr->value);
        key[k] = get(c, pr->key);
    }
    static const int required[] = {TK_NAME, TK_REDUCE, TK_LEVELS};
    for (size_t r = 0; r < sizeof required / sizeof required[0]; r++)
        if (!val[required[r]])
            return fail(c, root, "top level", "missing '%s'", top_keys[required[r]]);
    CHORUS_CHECK(get_name(c, val[TK_NAME], "name", t->name, sizeof t->name));
    if (val[TK_DESC])
        CHORUS_CHECK(get_text(c, val[TK_DESC], "description", t->description,
                              sizeof t->description));
    CHORUS_CHECK(get_quantity(c, val[TK_REDUCE], "reduce_bandwidth", TOPO_UNIT_BANDWIDTH,
                              &t->reduce_bw));
    if (!(t->reduce_bw > 0))
        return fail(c, val[TK_REDUCE], "reduce_bandwidth", "must be > 0");
    CHORUS_CHECK(parse_levels(c, val[TK_LEVELS], t));
    /* the remaining checks (total ranks) and the identity map */
    char why[200];
    if (topo_finish(t, why, sizeof why) != CHORUS_SUCCESS)
        return fail(c, key[TK_LEVELS], "levels", "%s", why);
    if (val[TK_RANKMAP])
        CHORUS_CHECK(parse_rank_map(c, val[TK_RANKMAP], t));
    return CHORUS_SUCCESS;
}

chorus_result_t topo_parse(const char *text, size_t len, const char *what, struct topo **out,
                           char *err, size_t errlen)
{
    struct ctx c = {.what = what ? what : "<topology>", .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    *out = NULL;
    if (!text)
        return fail(&c, NULL, NULL, "no text");
    if (len > TOPO_FILE_MAX)
        return fail(&c, NULL, NULL, "%zu bytes: larger than the %d-byte limit of a topology file",
                    len, TOPO_FILE_MAX);
    CHORUS_CHECK(prescan(&c, text, len));

    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p))
        return fail(&c, NULL, NULL, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        chorus_result_t rc = parser_error(&c, &p);
        yaml_parser_delete(&p);
        return rc;
    }
    c.doc = &doc;
    struct topo *t = calloc(1, sizeof(*t));
    chorus_result_t rc = t ? parse_doc(&c, t) : fail(&c, NULL, NULL, "out of memory");
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    if (rc != CHORUS_SUCCESS) {
        topo_free(t);
        return rc;
    }
    snprintf(t->source, sizeof t->source, "%s", c.what);
    *out = t;
    return CHORUS_SUCCESS;
}

/* ---- files and short names ----------------------------------------------------------------- */

const char *topo_search_dir(int i)
{
    const char *env = chorus_tunables()->TOPO_DIR;
    if (env && *env) {
        if (i == 0)
            return env;
        i--;
    }
    return i == 0 ? CHORUS_TOPO_DATADIR : NULL;
}

static int is_short_name(const char *s)
{
    size_t n = strlen(s);
    return !strchr(s, '/') && !(n >= 5 && !strcmp(s + n - 5, ".yaml"));
}

static chorus_result_t read_file(const char *path, char **text, size_t *len, char *err,
                                 size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return errno == ENOENT || errno == EACCES || errno == EISDIR ? CHORUS_INVALID_ARGUMENT
                                                                    : CHORUS_SYSTEM_ERROR;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
        fclose(f);
        snprintf(err, errlen, "%s: not a regular file", path);
        return CHORUS_INVALID_ARGUMENT;
    }
    /* read at most one byte past the limit: enough to tell it is too big */
    char *buf = malloc(TOPO_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return CHORUS_SYSTEM_ERROR;
    }
    size_t n = fread(buf, 1, TOPO_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, errlen, "%s: read error", path);
        return CHORUS_SYSTEM_ERROR;
    }
    if (n > TOPO_FILE_MAX) {
        free(buf);
        snprintf(err, errlen, "%s: larger than the %d-byte limit of a topology file", path,
                 TOPO_FILE_MAX);
        return CHORUS_INVALID_ARGUMENT;
    }
    *text = buf;
    *len = n;
    return CHORUS_SUCCESS;
}

chorus_result_t topo_load(const char *name_or_path, struct topo **out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    *out = NULL;
    if (!name_or_path || !*name_or_path) {
        snprintf(err, errlen, "no topology file given");
        return CHORUS_INVALID_ARGUMENT;
    }
    char path[4096];
    int shipped = is_short_name(name_or_path);
    if (shipped) {
        const char *dir;
        int found = 0;
        for (int i = 0; !found && (dir = topo_search_dir(i)); i++) {
            snprintf(path, sizeof path, "%s/%s.yaml", dir, name_or_path);
            found = access(path, F_OK) == 0;
        }
        if (!found) {
            const char *env = chorus_tunables()->TOPO_DIR;
            snprintf(err, errlen, "topology '%.64s' not found: no %.64s.yaml in %s%s%s%s (give a "
                     "path to load another file; chorus_topo --list shows the shipped ones)",
                     name_or_path, name_or_path, env && *env ? "CHORUS_TOPO_DIR=" : "",
                     env && *env ? env : "", env && *env ? " nor in " : "", CHORUS_TOPO_DATADIR);
            return CHORUS_INVALID_ARGUMENT;
        }
    } else {
        snprintf(path, sizeof path, "%s", name_or_path);
    }
    char *text = NULL;
    size_t len = 0;
    CHORUS_CHECK(read_file(path, &text, &len, err, errlen));
    chorus_result_t rc = topo_parse(text, len, path, out, err, errlen);
    free(text);
    if (rc == CHORUS_SUCCESS && shipped)
        snprintf((*out)->source, sizeof (*out)->source, "shipped:%.64s (%.180s)", name_or_path,
                 path);
    return rc;
}

chorus_result_t topo_default(struct topo **out, char *err, size_t errlen)
{
    const char *file = chorus_tunables()->TOPO_FILE;
    if (file && *file)
        return topo_load(file, out, err, errlen);
    chorus_result_t rc = topo_detect(out);
    if (rc != CHORUS_SUCCESS && err && errlen)
        snprintf(err, errlen, "detecting this host's topology failed");
    return rc;
}
