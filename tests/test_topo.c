/*
 * test_topo.c - topologies: the shipped files, the file format and its
 * errors, units, rank maps, positions, YAML round trips and detection of
 * this host (no MPI).
 *
 * Usage: test_topo        (CHORUS_TOPO_DIR must name the source tree's topo/)
 * Prints "ok test_topo: N checks" or "FAIL test_topo: N failures".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chorus.h"
#include "topo.h"
#include "topo_detect.h"
#include "topo_units.h"

static long checks, fails;

#define CHECK(cond, ...)                                        \
    do {                                                        \
        checks++;                                               \
        if (!(cond)) {                                          \
            fails++;                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);         \
            printf(__VA_ARGS__);                                \
            printf("\n");                                       \
        }                                                       \
    } while (0)

static struct topo *parse(const char *text, char *err, size_t errlen, chorus_result_t *rc)
{
    struct topo *t = NULL;
    *rc = topo_parse(text, strlen(text), "t.yaml", &t, err, errlen);
    return t;
}

/* dump -> parse gives an equal topology, and dumping that gives the same text */
static void round_trip(const struct topo *t)
{
    char *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    FILE *f = open_memstream(&buf, &len);
    topo_dump_yaml(t, f);
    fclose(f);
    struct topo *back = NULL;
    char err[512];
    chorus_result_t rc = topo_parse(buf, len, "dump", &back, err, sizeof err);
    CHECK(rc == CHORUS_SUCCESS, "%s: dump does not parse back: %s\n%s", t->name, err, buf);
    if (rc == CHORUS_SUCCESS) {
        CHECK(topo_equal(t, back), "%s: dump parses back different:\n%s", t->name, buf);
        strcpy(back->source, t->source); /* the comment line names the source */
        f = open_memstream(&buf2, &len2);
        topo_dump_yaml(back, f);
        fclose(f);
        CHECK(len == len2 && !memcmp(buf, buf2, len), "%s: second dump differs", t->name);
    }
    topo_free(back);
    free(buf);
    free(buf2);
}

static void shipped(void)
{
    static const struct {
        const char *name;
        int nranks, nlevels;
        const char *outer;
    } want[] = {
        {"cloudmatrix384", 768, 3, "supernode"},
        {"metax-c550-128", 128, 3, "cabinet"},
        {"gb200-nvl72", 72, 1, "nvlink"},
        {"8gpu-roce400", 128, 2, "cluster"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct topo *t = NULL;
        char err[512];
        chorus_result_t rc = topo_load(want[i].name, &t, err, sizeof err);
        CHECK(rc == CHORUS_SUCCESS, "load %s: %s", want[i].name, err);
        if (rc != CHORUS_SUCCESS)
            continue;
        CHECK(!strcmp(t->name, want[i].name), "%s: name '%s'", want[i].name, t->name);
        CHECK(t->nranks == want[i].nranks, "%s: %d ranks, want %d", want[i].name, t->nranks,
              want[i].nranks);
        CHECK(t->nlevels == want[i].nlevels, "%s: %d levels", want[i].name, t->nlevels);
        CHECK(!strcmp(t->levels[t->nlevels - 1].name, want[i].outer), "%s: outer level '%s'",
              want[i].name, t->levels[t->nlevels - 1].name);
        CHECK(!strncmp(t->source, "shipped:", 8), "%s: source '%s'", want[i].name, t->source);
        CHECK(strstr(t->description, "supernodes.md") != NULL, "%s: description cites no source",
              want[i].name);
        for (int l = 0; l < t->nlevels; l++)
            CHECK(t->levels[l].bw >= 1e9 && t->levels[l].latency >= 1e-7 &&
                      t->levels[l].latency < 1e-5,
                  "%s level %d: %g B/s %g s", want[i].name, l, t->levels[l].bw,
                  t->levels[l].latency);
        round_trip(t);
        /* the same file by path */
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.yaml", topo_search_dir(0), want[i].name);
        struct topo *t2 = NULL;
        rc = topo_load(path, &t2, err, sizeof err);
        CHECK(rc == CHORUS_SUCCESS && topo_equal(t, t2), "load %s by path: %s", path, err);
        topo_free(t2);
        topo_free(t);
    }
    /* cloudmatrix384 figures from supernodes.md */
    struct topo *t = NULL;
    if (topo_load("cloudmatrix384", &t, NULL, 0) == CHORUS_SUCCESS) {
        CHECK(t->levels[0].group == 2 && t->levels[1].group == 8 && t->levels[2].group == 48,
              "cloudmatrix384 groups %d %d %d", t->levels[0].group, t->levels[1].group,
              t->levels[2].group);
        CHECK(t->levels[2].shape == TOPO_SHAPE_CLOS && t->levels[2].bw == 150e9 &&
                  t->levels[2].latency == 2.1e-6,
              "cloudmatrix384 supernode level");
        topo_free(t);
    }
    struct topo *m = NULL;
    if (topo_load("metax-c550-128", &m, NULL, 0) == CHORUS_SUCCESS) {
        const struct topo_level *d = &m->levels[1];
        CHECK(d->shape == TOPO_SHAPE_TORUS && d->dims[0] * d->dims[1] * d->dims[2] == 8,
              "metax domain: shape %d dims %dx%dx%d", d->shape, d->dims[0], d->dims[1],
              d->dims[2]);
        topo_free(m);
    }
}

static const char *const base =
    "name: t\n"                    /* line 1 */
    "reduce_bandwidth: 10 GB/s\n"  /* 2 */
    "levels:\n"                    /* 3 */
    "  - name: a\n"                /* 4 */
    "    group: 2\n"               /* 5 */
    "    shape: switch\n"          /* 6 */
    "    bandwidth: 100 GB/s\n"    /* 7 */
    "    latency: 1 us\n"          /* 8 */
    "  - name: b\n"                /* 9 */
    "    group: 3\n"               /* 10 */
    "    shape: clos\n"            /* 11 */
    "    bandwidth: 50 GB/s\n"     /* 12 */
    "    latency: 2 us\n"          /* 13 */
    "  - name: c\n"                /* 14 */
    "    group: 4\n"               /* 15 */
    "    shape: torus\n"           /* 16 */
    "    dims: [2, 2]\n"           /* 17 */
    "    bandwidth: 10 GB/s\n"     /* 18 */
    "    latency: 3 us\n";         /* 19 */

/* base with line `line` (1-based) replaced by repl ("" drops it) */
static char *edit(int line, const char *repl)
{
    size_t cap = strlen(base) + strlen(repl) + 2;
    char *out = malloc(cap);
    out[0] = '\0';
    const char *p = base;
    for (int l = 1; *p; l++) {
        size_t n = strcspn(p, "\n") + 1;
        if (l == line) {
            strcat(out, repl);
            if (*repl)
                strcat(out, "\n");
        } else {
            strncat(out, p, n);
        }
        p += n;
    }
    return out;
}

static void bad(const char *text, const char *where, const char *what)
{
    char err[512] = "";
    chorus_result_t rc;
    struct topo *t = parse(text, err, sizeof err, &rc);
    CHECK(rc == CHORUS_INVALID_ARGUMENT && !t, "accepted (rc %d):\n%s", rc, text);
    CHECK(strstr(err, where) && strstr(err, what), "error '%s' lacks '%s' or '%s'", err, where,
          what);
    topo_free(t);
}

static void bad_edit(int line, const char *repl, const char *where, const char *what)
{
    char *text = edit(line, repl);
    bad(text, where, what);
    free(text);
}

static void errors(void)
{
    chorus_result_t rc;
    char err[512];
    struct topo *t = parse(base, err, sizeof err, &rc);
    CHECK(rc == CHORUS_SUCCESS, "base: %s", err);
    if (t) {
        CHECK(t->nranks == 24 && t->levels[2].dims[2] == 1 && t->levels[2].wrap == 1,
              "base: %d ranks", t->nranks);
        round_trip(t);
        topo_free(t);
    }
    /* unknown keys, missing fields, wrong types, duplicates */
    bad_edit(8, "    latency: 1 us\n    colour: red", "t.yaml:9:", "unknown key 'colour'");
    bad_edit(2, "reduce_bw: 1 GB/s", "t.yaml:2:", "unknown key 'reduce_bw'");
    bad_edit(2, "", "t.yaml:1:", "missing 'reduce_bandwidth'");
    bad_edit(7, "", "t.yaml:4:", "missing 'bandwidth'");
    bad_edit(1, "", "t.yaml:", "missing 'name'");
    bad_edit(5, "    group: [2]", "t.yaml:5:", "levels[0] (a).group");
    bad_edit(5, "    group: two", "t.yaml:5:", "not an integer");
    bad_edit(5, "    group: -2", "t.yaml:5:", "out of range");
    bad_edit(5, "    group: 0", "t.yaml:5:", "out of range");
    bad_edit(5, "    group: 99999999999999999999", "t.yaml:5:", "out of range");
    bad_edit(6, "    shape: hypercube", "t.yaml:6:", "unknown shape 'hypercube'");
    bad_edit(8, "    latency: 1 us\n    group: 2", "t.yaml:9:", "duplicate key 'group'");
    bad_edit(2, "reduce_bandwidth: 10 GB/s\nname: u", "t.yaml:3:", "duplicate key 'name'");
    bad("name: t\nreduce_bandwidth: 1 GB/s\nlevels: 3\n", "t.yaml:3:", "expected a list of levels");
    bad_edit(4, "  - name: b", "t.yaml:9:", "used twice");
    bad_edit(4, "  - name: a b", "t.yaml:4:", "letters, digits");
    /* units and numbers */
    bad_edit(7, "    bandwidth: 100", "t.yaml:7:", "needs a unit");
    bad_edit(7, "    bandwidth: 100 GB", "t.yaml:7:", "unknown unit 'GB'");
    bad_edit(7, "    bandwidth: -100 GB/s", "t.yaml:7:", "negative");
    bad_edit(7, "    bandwidth: 0 GB/s", "t.yaml:7:", "must be > 0");
    bad_edit(7, "    bandwidth: 0x10 GB/s", "t.yaml:7:", "unknown unit");
    bad_edit(7, "    bandwidth: inf GB/s", "t.yaml:7:", "not a number");
    bad_edit(7, "    bandwidth: 1e999 GB/s", "t.yaml:7:", "not a number");
    bad_edit(8, "    latency: 1 GB/s", "t.yaml:8:", "unknown unit 'GB/s'");
    bad_edit(8, "    latency: -1 us", "t.yaml:8:", "negative");
    bad_edit(2, "reduce_bandwidth: 0 GB/s", "t.yaml:2:", "must be > 0");
    /* shape-specific keys */
    bad_edit(17, "", "t.yaml:14:", "needs 'dims'");
    bad_edit(17, "    dims: [2, 3]", "t.yaml:17:", "group is 4");
    bad_edit(17, "    dims: [1, 1, 2, 2]", "t.yaml:17:", "4 extents");
    bad_edit(17, "    dims: 4", "t.yaml:17:", "expected a list");
    bad_edit(6, "    shape: switch\n    dims: [2]", "t.yaml:7:", "only for shape torus");
    bad_edit(6, "    shape: switch\n    oversubscription: 2", "t.yaml:7:", "only for shape clos");
    bad_edit(11, "    shape: clos\n    oversubscription: 0.5", "t.yaml:12:", "below 1");
    bad_edit(11, "    shape: clos\n    oversubscription: 2 GB/s", "t.yaml:12:", "plain number");
    bad_edit(17, "    dims: [2, 2]\n    wrap: maybe", "t.yaml:18:", "not true or false");
    /* levels count, ranks limit */
    bad("name: t\nreduce_bandwidth: 1 GB/s\nlevels: []\n", "t.yaml:3:", "0 levels");
    bad_edit(5, "    group: 1048576", "t.yaml:3:", "more than");
    /* YAML-level problems */
    bad("name: t\n  bad: [\n", "t.yaml:", "YAML syntax");
    bad("[1, 2]\n", "t.yaml:1:", "expected a mapping");
    bad("", "t.yaml", "empty");
    bad("# only a comment\n", "t.yaml", "empty");
    bad("name: t\n---\nname: u\n", "t.yaml:2:", "more than one YAML document");
    bad("a: &x [1]\nb: *x\n", "t.yaml:2:", "aliases");
    bad("name: [[[[[[[[[[[[1]]]]]]]]]]]]\n", "t.yaml:1:", "nested deeper");
    bad("name: \"a\\0b\"\nreduce_bandwidth: 1 GB/s\nlevels: []\n", "t.yaml:1:", "NUL");
    bad("name: t\ndescription: \"bell\\a\"\nreduce_bandwidth: 1 GB/s\nlevels: []\n", "t.yaml:2:",
        "control character");
    bad("? [a, b]\n: 1\n", "t.yaml:1:", "expected a single value");
    /* oversized input */
    size_t big = (1 << 20) + 10;
    char *huge = malloc(big + 1);
    memset(huge, '#', big);
    huge[big] = '\0';
    struct topo *h = NULL;
    rc = topo_parse(huge, big, "huge.yaml", &h, err, sizeof err);
    CHECK(rc == CHORUS_INVALID_ARGUMENT && strstr(err, "huge.yaml") && strstr(err, "limit"),
          "oversized input: rc %d, '%s'", rc, err);
    free(huge);
    /* a NULL error buffer is fine */
    CHECK(topo_parse("x", 1, NULL, &h, NULL, 0) == CHORUS_INVALID_ARGUMENT && !h,
          "NULL err buffer");
}

static void units(void)
{
    static const struct {
        const char *text;
        topo_unit_kind_t kind;
        double want;
    } ok[] = {
        {"200 GB/s", TOPO_UNIT_BANDWIDTH, 200e9},  {"400 Gbit/s", TOPO_UNIT_BANDWIDTH, 50e9},
        {"400 Gb/s", TOPO_UNIT_BANDWIDTH, 50e9},   {"500 MB/s", TOPO_UNIT_BANDWIDTH, 500e6},
        {"1 GiB/s", TOPO_UNIT_BANDWIDTH, 1073741824.0},
        {"1.5TB/s", TOPO_UNIT_BANDWIDTH, 1.5e12},  {"8 bit/s", TOPO_UNIT_BANDWIDTH, 1},
        {"0.7 us", TOPO_UNIT_LATENCY, 0.7e-6},     {"700 ns", TOPO_UNIT_LATENCY, 700e-9},
        {"2 ms", TOPO_UNIT_LATENCY, 2e-3},         {"0 us", TOPO_UNIT_LATENCY, 0},
        {"1e-6 s", TOPO_UNIT_LATENCY, 1e-6},       {"3 \xc2\xb5s", TOPO_UNIT_LATENCY, 3e-6},
        {" 2.5 ", TOPO_UNIT_NONE, 2.5},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double v = -1;
        char why[128] = "";
        int r = topo_parse_quantity(ok[i].text, ok[i].kind, &v, why, sizeof why);
        CHECK(r == 0 && v > ok[i].want * (1 - 1e-12) - 1e-300 && v < ok[i].want * (1 + 1e-12) + 1e-300,
              "'%s' -> %d %g (%s), want %g", ok[i].text, r, v, why, ok[i].want);
    }
    static const struct {
        const char *text;
        topo_unit_kind_t kind;
    } no[] = {
        {"200", TOPO_UNIT_BANDWIDTH}, {"200 gb/s", TOPO_UNIT_BANDWIDTH},
        {"GB/s", TOPO_UNIT_BANDWIDTH}, {"-1 GB/s", TOPO_UNIT_BANDWIDTH},
        {"nan GB/s", TOPO_UNIT_BANDWIDTH}, {"1 us", TOPO_UNIT_BANDWIDTH},
        {"1 GB/s", TOPO_UNIT_LATENCY}, {"1.2.3 us", TOPO_UNIT_LATENCY}, {"", TOPO_UNIT_LATENCY},
        {"2 x", TOPO_UNIT_NONE},
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        double v = 0;
        char why[128] = "";
        CHECK(topo_parse_quantity(no[i].text, no[i].kind, &v, why, sizeof why) == -1 && why[0],
              "'%s' accepted as %g", no[i].text, v);
    }
    /* formatting reads back exactly, including awkward values */
    static const double vals[] = {210e9, 1.0 / 3.0 * 1e9, 123456789.123, 5e-324, 1e300};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        for (int k = 0; k < 2; k++) {
            char buf[64], why[64];
            double back = -1;
            topo_unit_kind_t kind = k ? TOPO_UNIT_LATENCY : TOPO_UNIT_BANDWIDTH;
            double v = k ? vals[i] * 1e-15 : vals[i];
            topo_format_quantity(v, kind, buf, sizeof buf);
            CHECK(topo_parse_quantity(buf, kind, &back, why, sizeof why) == 0 && back == v,
                  "format %.17g -> '%s' -> %.17g", v, buf, back);
        }
    }
    char buf[64];
    topo_format_quantity(150e9, TOPO_UNIT_BANDWIDTH, buf, sizeof buf);
    CHECK(!strcmp(buf, "150 GB/s"), "150e9 formatted as '%s'", buf);
    topo_format_quantity(2.1e-6, TOPO_UNIT_LATENCY, buf, sizeof buf);
    CHECK(!strcmp(buf, "2.1 us"), "2.1e-6 formatted as '%s'", buf);
}

/* Independent of topo.c: coordinates from the header's formula. */
static void positions(void)
{
    char *text = edit(19, "    latency: 3 us\nrank_map: [23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, "
                          "12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]");
    chorus_result_t rc;
    char err[512];
    struct topo *id = parse(base, err, sizeof err, &rc);
    struct topo *rev = parse(text, err, sizeof err, &rc);
    CHECK(rc == CHORUS_SUCCESS && rev, "reversed map: %s", err);
    free(text);
    if (!id || !rev) {
        topo_free(id);
        topo_free(rev);
        return;
    }
    static const int group[3] = {2, 3, 4}, stride[3] = {1, 2, 6};
    for (int l = 0; l < 3; l++)
        CHECK(topo_stride(id, l) == stride[l], "stride(%d) = %d", l, topo_stride(id, l));
    CHECK(topo_stride(id, 3) == 24, "stride(3) = %d", topo_stride(id, 3));
    for (int a = 0; a < 24; a++) {
        for (int l = 0; l < 3; l++) {
            int want = a / stride[l] % group[l];
            CHECK(topo_coord(id, a, l) == want, "coord(%d, %d) = %d, want %d", a, l,
                  topo_coord(id, a, l), want);
            int pa = 23 - a;
            CHECK(topo_coord(rev, a, l) == pa / stride[l] % group[l], "reversed coord(%d, %d)",
                  a, l);
        }
        for (int b = 0; b < 24; b++) {
            int want = -1;
            for (int l = 2; l >= 0 && want < 0; l--)
                if (a / stride[l] % group[l] != b / stride[l] % group[l])
                    want = l;
            CHECK(topo_level_between(id, a, b) == want, "between(%d, %d) = %d, want %d", a, b,
                  topo_level_between(id, a, b), want);
            CHECK(topo_level_between(rev, a, b) == topo_level_between(id, 23 - a, 23 - b),
                  "reversed between(%d, %d)", a, b);
        }
    }
    /* a few by hand: 0 and 1 share a level-0 group; 0 and 2 differ at level 1 */
    CHECK(topo_level_between(id, 0, 1) == 0 && topo_level_between(id, 0, 2) == 1 &&
              topo_level_between(id, 0, 6) == 2 && topo_level_between(id, 3, 4) == 1 &&
              topo_level_between(id, 7, 7) == -1,
          "hand-picked pairs");
    round_trip(rev);
    topo_free(id);
    topo_free(rev);

    /* bad maps */
    static const struct {
        const char *map;
        const char *what;
    } maps[] = {
        {"rank_map: [0, 1, 2]", "3 positions for 24 ranks"},
        {"rank_map: [0, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, "
         "21, 22, 23]", "rank_map[1]: position 0 already given to rank 0"},
        {"rank_map: [24, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, "
         "21, 22, 23]", "rank_map[0]: 24 is out of range"},
        {"rank_map: [-1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, "
         "21, 22, 23]", "rank_map[0]: -1 is out of range"},
        {"rank_map: cyclic", "expected block or a list"},
        {"rank_map: {a: 1}", "expected block or a list"},
    };
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++) {
        char line[512];
        snprintf(line, sizeof line, "    latency: 3 us\n%s", maps[i].map);
        bad_edit(19, line, "t.yaml:20:", maps[i].what);
    }
    text = edit(19, "    latency: 3 us\nrank_map: block");
    struct topo *blk = parse(text, err, sizeof err, &rc);
    CHECK(rc == CHORUS_SUCCESS && blk && blk->rank_pos[5] == 5, "rank_map: block: %s", err);
    topo_free(blk);
    free(text);
}

static void loading(void)
{
    char err[512];
    struct topo *t = NULL;
    chorus_result_t rc = topo_load("no-such-topology", &t, err, sizeof err);
    CHECK(rc == CHORUS_INVALID_ARGUMENT && !t && strstr(err, "no-such-topology") &&
              strstr(err, "not found"),
          "missing short name: %d '%s'", rc, err);
    rc = topo_load("/nonexistent/x.yaml", &t, err, sizeof err);
    CHECK(rc == CHORUS_INVALID_ARGUMENT && strstr(err, "/nonexistent/x.yaml"),
          "missing path: %d '%s'", rc, err);
    rc = topo_load(topo_search_dir(0), &t, err, sizeof err);
    CHECK(rc == CHORUS_INVALID_ARGUMENT, "a directory: %d '%s'", rc, err);
    rc = topo_load("", &t, err, sizeof err);
    CHECK(rc == CHORUS_INVALID_ARGUMENT, "empty name: %d", rc);
    /* a broken file names itself and the line */
    char path[] = "/tmp/test_topo_XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    CHECK(fd >= 0, "mkstemps");
    if (fd >= 0) {
        FILE *f = fdopen(fd, "w");
        fputs("name: x\nreduce_bandwidth: 1 GB/s\nlevels:\n  - name: a\n    group: 2\n"
              "    shape: ring\n    bandwidth: 3 furlongs\n    latency: 1 us\n", f);
        fclose(f);
        rc = topo_load(path, &t, err, sizeof err);
        char want[64];
        snprintf(want, sizeof want, "%s:7:", path);
        CHECK(rc == CHORUS_INVALID_ARGUMENT && strstr(err, want) && strstr(err, "bandwidth"),
              "broken file: %d '%s'", rc, err);
        unlink(path);
    }
    /* uniform topology round-trips too */
    struct topo *u = NULL;
    CHECK(topo_uniform(16, 12.5e9, 1.5e-6, 7e9, &u) == CHORUS_SUCCESS && u->nranks == 16,
          "topo_uniform");
    if (u)
        round_trip(u);
    topo_free(u);
}

static void detection(void)
{
    struct topo *t = NULL;
    chorus_result_t rc = topo_detect(&t);
    CHECK(rc == CHORUS_SUCCESS && t, "topo_detect: %d", rc);
    if (!t)
        return;
    CHECK(t->nranks >= 1 && t->host_cores == t->nranks, "%d ranks, %d cores", t->nranks,
          t->host_cores);
    CHECK(t->host_pus >= t->host_cores && t->host_packages >= 1 && t->host_numa >= 1,
          "%d PUs %d packages %d NUMA", t->host_pus, t->host_packages, t->host_numa);
    CHECK(!strcmp(t->source, "detected"), "source '%s'", t->source);
    CHECK(t->nlevels >= 1 && t->nlevels <= 3, "%d levels", t->nlevels);
    CHECK(!strcmp(t->levels[t->nlevels - 1].name, "host"), "outer level '%s'",
          t->levels[t->nlevels - 1].name);
    for (int l = 0; l < t->nlevels; l++) {
        const char *n = t->levels[l].name;
        CHECK(!strcmp(n, "numa") || !strcmp(n, "package") || !strcmp(n, "host"),
              "level %d '%s'", l, n);
        CHECK(t->levels[l].bw > 0 && t->levels[l].latency > 0 &&
                  !strcmp(t->levels[l].link, "shm") && t->levels[l].shape == TOPO_SHAPE_SWITCH,
              "level %d figures", l);
        /* outer levels are not faster than inner ones */
        if (l > 0)
            CHECK(t->levels[l].bw <= t->levels[l - 1].bw &&
                      t->levels[l].latency >= t->levels[l - 1].latency,
                  "level %d faster than level %d", l, l - 1);
    }
    round_trip(t);
    topo_free(t);
    struct topo_nic *nics = NULL;
    int n = -1;
    CHECK(topo_detect_nics(&nics, &n) == CHORUS_SUCCESS && n >= 0, "topo_detect_nics");
    for (int i = 0; i < n; i++)
        CHECK(nics[i].nnames >= 0 && nics[i].nnames <= TOPO_NIC_NAMES && nics[i].numa >= -1,
              "nic %d", i);
    /* the RDMA transport orders devices by these distances: every device
     * hwloc lists is found (0..2), an unknown name is not (3) */
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < nics[i].nnames; j++) {
            const char *name = nics[i].names[j];
            int d = -1;
            topo_device_distances(&name, 1, &d);
            CHECK(d >= 0 && d <= 2, "distance of %s: %d", name, d);
        }
    }
    const char *none = "no-such-device0";
    int dnone = -1;
    topo_device_distances(&none, 1, &dnone);
    CHECK(dnone == 3, "distance of an unknown device: %d", dnone);
    free(nics);
    /* printing does not crash and names the levels */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    topo_detect(&t);
    topo_print_tree(t, f);
    fclose(f);
    CHECK(buf && strstr(buf, "host"), "tree:\n%s", buf ? buf : "");
    topo_free(t);
    free(buf);
}

int main(void)
{
    if (!topo_search_dir(1)) {
        printf("FAIL test_topo: set CHORUS_TOPO_DIR to the source tree's topo/\n");
        return 1;
    }
    units();
    errors();
    positions();
    loading();
    shipped();
    detection();
    if (fails) {
        printf("FAIL test_topo: %ld failures of %ld checks\n", fails, checks);
        return 1;
    }
    printf("ok test_topo: %ld checks\n", checks);
    return 0;
}
