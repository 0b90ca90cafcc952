/* chorus_topo - prints a topology: this host as detected, a topology file, a
 * shipped one by short name, or what the runtime's tuner prices for a
 * layout of hosts x ranks; as a tree (like lstopo), as YAML (a topology
 * file that reads back equal) or as levels, one a line. Every view but YAML
 * says whether the runtime's tuner prices those levels, because for this
 * host it does not: the tuner prices a communicator's layout, or a
 * topology file describing exactly its ranks (docs/tuner.md). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus.h"
#include "topo.h"
#include "topo_detect.h"
#include "topo_units.h"
#include "tunables.h"
#include "tuner.h"
#include "tuner_file.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: chorus_topo [--topo NAME|FILE | --detect | --layout HOSTSxRANKS] [--yaml | --levels]\n"
            "       chorus_topo --list\n"
            "  (no option)   CHORUS_TOPO_FILE when set, else this host as detected\n"
            "  --topo X      a topology file (a path, or a name ending in .yaml) or a shipped\n"
            "                topology by short name (see --list)\n"
            "  --detect      this host as detected, even when CHORUS_TOPO_FILE is set\n"
            "  --layout HxR  the levels the runtime's tuner prices for a communicator of H\n"
            "                hosts with R ranks each (host and network, with the network\n"
            "                transport's figures), as chorus_tune --layout HxR does\n"
            "  --transport T tcp (default) or rdma: whose figures --layout uses\n"
            "  --tuning FILE figures for --layout from a tuning file (default:\n"
            "                $CHORUS_TUNING_FILE, as the runtime)\n"
            "  --yaml        print it as a topology file (docs/topology.md)\n"
            "  --levels      print its levels, innermost first, one a line, and whether the\n"
            "                runtime's tuner prices them\n"
            "  --list        the shipped topologies (CHORUS_TOPO_DIR, then the installed ones)\n");
}

/* Where the topology came from, for what the tuner makes of it. */
enum origin { FROM_DETECTION, FROM_FILE, FROM_LAYOUT };

struct layout {
    int hosts, ranks;        /* ranks per host */
    const char *transport;
    const char *tuning;      /* a tuning file, or NULL */
};

/* What the runtime's tuner does with t, in a few lines with a prefix
 * (comment marks for --levels). Detection only describes this host: the
 * tuner never prices it. */
static void print_tuner_note(const struct topo *t, enum origin o, const struct layout *l,
                             const char *pfx, FILE *f)
{
    switch (o) {
    case FROM_DETECTION:
        fprintf(f, "%sthe runtime's tuner does not price these levels: ranks on one host run on\n"
                "%sshared memory without it; a communicator across hosts is priced as its layout\n"
                "%s(chorus_topo --layout HOSTSxRANKS, chorus_tune --layout HOSTSxRANKS shows the\n"
                "%schoices), or as CHORUS_TOPO_FILE when that describes exactly its ranks\n",
                pfx, pfx, pfx, pfx);
        break;
    case FROM_FILE:
        fprintf(f, "%sthe runtime's tuner prices these levels for a communicator of exactly %d\n"
                "%sranks with CHORUS_TOPO_FILE naming this file (chorus_tune --topo shows the\n"
                "%schoices); a communicator of another size is priced as its layout (--layout)\n",
                pfx, t->nranks, pfx, pfx);
        break;
    case FROM_LAYOUT:
        fprintf(f, "%sthe runtime's tuner prices these levels for a communicator of %d host%s x %d\n"
                "%srank%s (no CHORUS_TOPO_FILE of %d ranks), figures of %s from %s;\n"
                "%schorus_tune --layout %dx%d shows its choices\n",
                pfx, l->hosts, l->hosts == 1 ? "" : "s", l->ranks, pfx,
                l->ranks == 1 ? "" : "s", t->nranks, l->transport,
                l->tuning ? l->tuning : "the defaults", pfx, l->hosts, l->ranks);
        if (l->hosts == 1)
            fprintf(f, "%son one host only with CHORUS_TRANSPORT=tcp or rdma; without, the ranks\n"
                    "%srun on shared memory, without a tuner\n", pfx, pfx);
        if (t->nlevels == 2)
            fprintf(f, "%sits node-aware hier runs on shared memory inside a host, priced with the\n"
                    "%sshared-memory figures, not the host level's\n", pfx, pfx);
        break;
    }
}

static void print_levels(const struct topo *t, enum origin o, const struct layout *lay)
{
    printf("# %s: %d ranks; level 0 is the innermost. span: ranks in one group of the level; "
           "groups: how many such groups\n", t->name, t->nranks);
    print_tuner_note(t, o, lay, "# ", stdout);
    printf("%-5s %-14s %6s  %-10s %12s %10s  %-10s %6s %7s\n", "level", "name", "group", "shape",
           "bandwidth", "latency", "link", "span", "groups");
    for (int i = 0; i < t->nlevels; i++) {
        const struct topo_level *l = &t->levels[i];
        char bw[32], lat[32];
        topo_human_quantity(l->bw, TOPO_UNIT_BANDWIDTH, bw, sizeof bw);
        topo_human_quantity(l->latency, TOPO_UNIT_LATENCY, lat, sizeof lat);
        int span = topo_stride(t, i + 1);
        printf("%-5d %-14s %6d  %-10s %12s %10s  %-10s %6d %7d\n", i, l->name, l->group,
               topo_shape_name(l->shape), bw, lat, l->link[0] ? l->link : "-", span,
               t->nranks / span);
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists NAME.yaml of each search directory; a name found in an earlier
 * directory hides the same name in later ones, as topo_load does. */
static int list_shipped(void)
{
    char *seen[256];
    int nseen = 0, bad = 0;
    const char *dir;
    for (int d = 0; (dir = topo_search_dir(d)); d++) {
        DIR *dh = opendir(dir);
        if (!dh) {
            printf("%s: (none: not installed or not readable)\n", dir);
            continue;
        }
        char *names[256];
        int n = 0;
        struct dirent *e;
        while ((e = readdir(dh)) && n < 256) {
            size_t len = strlen(e->d_name);
            if (len > 5 && !strcmp(e->d_name + len - 5, ".yaml") && e->d_name[0] != '.')
                names[n++] = strdup(e->d_name);
        }
        closedir(dh);
        qsort(names, (size_t)n, sizeof names[0], by_name);
        printf("%s:\n", dir);
        for (int i = 0; i < n; i++) {
            if (!names[i])
                continue;
            int hidden = 0;
            for (int k = 0; k < nseen; k++)
                hidden |= !strcmp(seen[k], names[i]);
            char path[4096], err[512];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            struct topo *t;
            if (hidden) {
                printf("  %-18s (hidden by the file of the same name above)\n", names[i]);
            } else if (topo_load(path, &t, err, sizeof err) != CHORUS_SUCCESS) {
                printf("  %-18s ERROR %s\n", names[i], err);
                bad = 1;
            } else {
                size_t dl = strcspn(t->description, "\n");
                printf("  %-18s %7d ranks, %d level%s: %.*s%s\n", t->name, t->nranks,
                       t->nlevels, t->nlevels == 1 ? " " : "s", (int)(dl > 72 ? 69 : dl),
                       t->description, dl > 72 ? "..." : "");
                topo_free(t);
            }
            if (nseen < 256)
                seen[nseen++] = names[i];
            else
                free(names[i]);
        }
    }
    for (int k = 0; k < nseen; k++)
        free(seen[k]);
    return bad;
}

/* The runtime's topology for a layout (tuner_layout_topo, the function
 * comm_tuner.c calls) with the figures it would use: 0, or the exit
 * status after saying what is wrong. */
static int layout_topo(const char *text, struct layout *l, struct topo **out)
{
    char tail, err[512];
    if (sscanf(text, "%dx%d%c", &l->hosts, &l->ranks, &tail) != 2 || l->hosts < 1 ||
        l->ranks < 1 || l->hosts > 65536 || l->ranks > 4096) {
        fprintf(stderr, "chorus_topo: --layout '%s': expected HOSTSxRANKS, e.g. 4x8\n", text);
        return 2;
    }
    if (strcmp(l->transport, "tcp") && strcmp(l->transport, "rdma")) {
        fprintf(stderr, "chorus_topo: --transport '%s': tcp or rdma\n", l->transport);
        return 2;
    }
    struct tuning *tn = calloc(1, sizeof *tn);
    if (!tn) {
        fprintf(stderr, "chorus_topo: out of memory\n");
        return 1;
    }
    tn->figures = tuner_default_figures;
    if (l->tuning && tuning_read(l->tuning, tn, err, sizeof err) != CHORUS_SUCCESS) {
        fprintf(stderr, "chorus_topo: tuning file: %s\n", err);
        free(tn);
        return 1;
    }
    const struct tuner_link *net = strcmp(l->transport, "rdma") ? &tn->figures.tcp
                                                                 : &tn->figures.rdma;
    chorus_result_t rc = tuner_layout_topo(l->hosts, l->ranks, l->hosts * l->ranks, net,
                                           tn->figures.reduce_bw, out);
    free(tn);
    if (rc != CHORUS_SUCCESS) {
        fprintf(stderr, "chorus_topo: out of memory\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *file = NULL, *layout = NULL, *tuning = getenv("CHORUS_TUNING_FILE");
    struct layout lay = {.transport = "tcp"};
    int detect = 0, yaml = 0, levels = 0, list = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        /* options taking a value: "--opt value" or "--opt=value" */
        const char *const valued[] = {"--topo", "--layout", "--transport", "--tuning"};
        const char **dst[] = {&file, &layout, &lay.transport, &tuning};
        size_t k = 0, n = 0;
        for (; k < sizeof valued / sizeof *valued; k++) {
            n = strlen(valued[k]);
            if (!strncmp(a, valued[k], n) && (a[n] == 0 || a[n] == '='))
                break;
        }
        if (k < sizeof valued / sizeof *valued) {
            if (a[n] == '=') {
                *dst[k] = a + n + 1;
            } else if (i + 1 < argc) {
                *dst[k] = argv[++i];
            } else {
                fprintf(stderr, "chorus_topo: %s needs a value\n", a);
                return 2;
            }
        } else if (!strcmp(a, "--detect")) {
            detect = 1;
        } else if (!strcmp(a, "--yaml")) {
            yaml = 1;
        } else if (!strcmp(a, "--levels")) {
            levels = 1;
        } else if (!strcmp(a, "--list")) {
            list = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "chorus_topo: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if ((file != NULL) + detect + (layout != NULL) > 1 || (yaml && levels)) {
        fprintf(stderr, "chorus_topo: --topo, --detect and --layout exclude each other, as do "
                        "--yaml and --levels\n");
        return 2;
    }
    if (list)
        return list_shipped();

    struct topo *t = NULL;
    char err[512] = "";
    chorus_result_t rc;
    enum origin o = FROM_FILE;
    if (layout) {
        lay.tuning = tuning && *tuning ? tuning : NULL;
        int st = layout_topo(layout, &lay, &t);
        if (st)
            return st;
        o = FROM_LAYOUT;
        rc = CHORUS_SUCCESS;
    } else if (file) {
        rc = topo_load(file, &t, err, sizeof err);
    } else if (detect) {
        rc = topo_detect(&t);
    } else {
        rc = topo_default(&t, err, sizeof err);
    }
    if (rc != CHORUS_SUCCESS) {
        fprintf(stderr, "chorus_topo: %s\n", err[0] ? err : chorus_get_error_string(rc));
        return 1;
    }
    int detected = !strcmp(t->source, "detected");
    if (detected)
        o = FROM_DETECTION;
    if (yaml) {
        topo_dump_yaml(t, stdout);
    } else if (levels) {
        print_levels(t, o, &lay);
    } else {
        topo_print_tree(t, stdout);
        printf("  tuner:\n");
        print_tuner_note(t, o, &lay, "    ", stdout);
        if (detected) {
            printf("\n");
            topo_print_host(stdout);
        }
    }
    topo_free(t);
    return 0;
}
