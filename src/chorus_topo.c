/* chorus_topo - prints a topology: this host as detected, a topology file, or
 * a shipped one by short name; as a tree (like lstopo), as YAML (a topology
 * file that reads back equal) or as the levels the tuner sees. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chorus.h"
#include "topo.h"
#include "topo_units.h"
#include "tunables.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: chorus_topo [--topo NAME|FILE | --detect] [--yaml | --levels]\n"
            "       chorus_topo --list\n"
            "  (no option)   the topology the runtime uses: CHORUS_TOPO_FILE when set, else\n"
            "                this host as detected\n"
            "  --topo X      a topology file (a path, or a name ending in .yaml) or a shipped\n"
            "                topology by short name (see --list)\n"
            "  --detect      this host as detected, even when CHORUS_TOPO_FILE is set\n"
            "  --yaml        print it as a topology file (docs/topology.md)\n"
            "  --levels      print the levels the tuner sees, innermost first, one a line\n"
            "  --list        the shipped topologies (CHORUS_TOPO_DIR, then the installed ones)\n");
}

static void print_levels(const struct topo *t)
{
    printf("# %s: %d ranks; level 0 is the innermost. span: ranks in one group of the level; "
           "groups: how many such groups\n", t->name, t->nranks);
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

int main(int argc, char **argv)
{
    const char *file = NULL;
    int detect = 0, yaml = 0, levels = 0, list = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--topo") && i + 1 < argc) {
            file = argv[++i];
        } else if (!strncmp(argv[i], "--topo=", 7)) {
            file = argv[i] + 7;
        } else if (!strcmp(argv[i], "--detect")) {
            detect = 1;
        } else if (!strcmp(argv[i], "--yaml")) {
            yaml = 1;
        } else if (!strcmp(argv[i], "--levels")) {
            levels = 1;
        } else if (!strcmp(argv[i], "--list")) {
            list = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "chorus_topo: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if ((file && detect) || (yaml && levels)) {
        fprintf(stderr, "chorus_topo: --topo and --detect, or --yaml and --levels, exclude each "
                        "other\n");
        return 2;
    }
    if (list)
        return list_shipped();

    struct topo *t = NULL;
    char err[512] = "";
    chorus_result_t rc;
    if (file)
        rc = topo_load(file, &t, err, sizeof err);
    else if (detect)
        rc = topo_detect(&t);
    else
        rc = topo_default(&t, err, sizeof err);
    if (rc != CHORUS_SUCCESS) {
        fprintf(stderr, "chorus_topo: %s\n", err[0] ? err : chorus_get_error_string(rc));
        return 1;
    }
    if (yaml)
        topo_dump_yaml(t, stdout);
    else if (levels)
        print_levels(t);
    else
        topo_print_tree(t, stdout);
    topo_free(t);
    return 0;
}
