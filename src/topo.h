/* topo.h - the machine as the tuner and the simulator see it: a stack of
 * levels from the rank outward (die pair, server, supernode, scale-out...),
 * each joining a number of groups of the level below with a shape, a
 * per-rank bandwidth and a per-hop latency.
 *
 * A topology comes from a topology file (docs/topology.md; YAML parsed with
 * libyaml), from a shipped file named by its short name (cloudmatrix384,
 * metax-c550-128, gb200-nvl72, 8gpu-roce400), or from detection of this host
 * with hwloc. Positions: ranks are placed on positions 0..nranks-1; position
 * p has coordinate (p / stride[i]) % levels[i].group at level i, where
 * stride[0] = 1 and stride[i+1] = stride[i] * levels[i].group (the innermost
 * level varies fastest). Two ranks talk over the outermost level at which
 * their coordinates differ. */
#ifndef CHORUS_TOPO_H
#define CHORUS_TOPO_H

#include <stddef.h>
#include <stdio.h>

#include "chorus.h"

#define TOPO_MAX_LEVELS 6
#define TOPO_NAME_MAX 64

typedef enum {
    TOPO_SHAPE_SWITCH = 0, /* every member reaches every other through a switch: one port per rank */
    TOPO_SHAPE_FULL_MESH,  /* a dedicated link between each pair of members (bw is per link) */
    TOPO_SHAPE_CLOS,       /* switched in tiers; oversub > 1 shares uplinks */
    TOPO_SHAPE_RING,       /* members in a ring, links to two neighbours (bw per link) */
    TOPO_SHAPE_TORUS,      /* dims[] torus / mesh, links to neighbours, multi-hop (bw per link) */
    TOPO_SHAPE_COUNT
} topo_shape_t;

struct topo_level {
    char name[TOPO_NAME_MAX]; /* "die-pair", "server", "supernode", "scale-out", "numa", ... */
    int group;          /* members joined at this level (level 0: ranks; above: groups below) */
    topo_shape_t shape;
    double bw;          /* bytes/s, one direction: per rank (switch, clos) or per link (mesh) */
    double latency;     /* seconds per hop, including the software floor of one message */
    int dims[3];        /* TORUS: extents (product = group); others: 0 */
    int wrap;           /* TORUS: 1 torus (wrap-around links), 0 open mesh */
    double oversub;     /* CLOS: uplink oversubscription (1 = non-blocking); others 1 */
    char link[TOPO_NAME_MAX]; /* what carries it: "shm", "tcp", "rdma", "ub", "nvlink", ... */
};

struct topo {
    char name[TOPO_NAME_MAX];
    char description[256];
    char source[256];   /* file path, "shipped:<name>" or "detected" */
    int nlevels;        /* 1..TOPO_MAX_LEVELS */
    struct topo_level levels[TOPO_MAX_LEVELS]; /* [0] innermost */
    int nranks;         /* product of the groups */
    double reduce_bw;   /* bytes/s one rank reduces (gamma = 1 / reduce_bw) */
    int *rank_pos;      /* [nranks]: rank -> position; a permutation (identity by default) */
    /* detected hosts only (source "detected"); 0 otherwise */
    int host_packages, host_numa, host_cores, host_pus;
};

/* Loads a topology file, or a shipped one by short name (no '/' and no
 * ".yaml": looked up in $CHORUS_TOPO_DIR, then $(datadir)/chorus/topo).
 * CHORUS_INVALID_ARGUMENT with a message naming file, line and field on bad
 * input (also in err when err is not NULL). */
chorus_result_t topo_load(const char *name_or_path, struct topo **out, char *err, size_t errlen);
/* Same, from a string in memory (tests, fuzzing). */
chorus_result_t topo_parse(const char *text, size_t len, const char *what, struct topo **out,
                           char *err, size_t errlen);
/* This host from hwloc (sysconf when built without it): levels core / numa /
 * package / host with shared-memory figures; nranks = cores this process may use. */
chorus_result_t topo_detect(struct topo **out);
/* A single-level switch of nranks ranks (tests, closed-form comparisons). */
chorus_result_t topo_uniform(int nranks, double bw, double latency, double reduce_bw,
                             struct topo **out);
void topo_free(struct topo *t);

/* For loaders: checks the levels (groups >= 1, bw and latency > 0, torus
 * dims matching the group, product of groups <= 1<<20), fills nranks,
 * defaults (oversub 1) and an identity rank_pos when it is NULL. On error,
 * a message naming the level and field in err. */
chorus_result_t topo_finish(struct topo *t, char *err, size_t errlen);
/* For builders of topologies in code: topo_finish, then *out = t, or t freed
 * (and *out NULL) with topo_finish's code when the built levels are wrong. */
chorus_result_t topo_hand_out(struct topo *t, struct topo **out);

/* The outermost level at which ranks a and b differ; -1 when a == b. */
int topo_level_between(const struct topo *t, int a, int b);
/* Coordinate of a rank at a level (0..group-1), and the product of the groups
 * below level (ranks per level-`level` member group). */
int topo_coord(const struct topo *t, int rank, int level);
int topo_stride(const struct topo *t, int level);

/* Writes t as a topology file that topo_parse reads back to an equal topo. */
void topo_dump_yaml(const struct topo *t, FILE *f);
/* Writes a readable tree, like lstopo, with the figures of each level. */
void topo_print_tree(const struct topo *t, FILE *f);

const char *topo_shape_name(topo_shape_t s);

/* Added with topo_file.c (topology files):
 * Whether two topologies describe the same machine: name, description,
 * levels, reduction speed and rank map (not source nor the host_* counts). */
int topo_equal(const struct topo *a, const struct topo *b);
/* The i-th directory searched for short names (i = 0, 1, ...; NULL past the
 * last): $CHORUS_TOPO_DIR when set, then $(datadir)/chorus/topo. */
const char *topo_search_dir(int i);
/* The topology the runtime uses: CHORUS_TOPO_FILE (a path or short name)
 * when set, else this host from topo_detect. */
chorus_result_t topo_default(struct topo **out, char *err, size_t errlen);

#endif
