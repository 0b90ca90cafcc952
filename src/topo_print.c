/* topo_print.c - topologies for people: the levels as a tree, outermost
 * first, and for this host what hwloc sees (packages, NUMA nodes, caches,
 * the binding, NICs where they attach), like lstopo. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "topo.h"
#include "topo_detect.h"
#include "topo_units.h"

#include <stdlib.h>
#include <string.h>

#ifdef HAVE_HWLOC
#include <hwloc.h>
#endif

static void shape_text(const struct topo_level *l, char *buf, size_t len)
{
    switch (l->shape) {
    case TOPO_SHAPE_TORUS:
        snprintf(buf, len, "%s %dx%dx%d", l->wrap ? "torus" : "mesh (no wrap)", l->dims[0],
                 l->dims[1], l->dims[2]);
        break;
    case TOPO_SHAPE_CLOS:
        if (l->oversub == 1)
            snprintf(buf, len, "clos (non-blocking)");
        else
            snprintf(buf, len, "clos (%g:1 oversubscribed)", l->oversub);
        break;
    default:
        snprintf(buf, len, "%s", topo_shape_name(l->shape));
        break;
    }
}

static int per_link(const struct topo_level *l)
{
    return l->shape == TOPO_SHAPE_FULL_MESH || l->shape == TOPO_SHAPE_RING ||
           l->shape == TOPO_SHAPE_TORUS;
}

static int identity_map(const struct topo *t)
{
    for (int r = 0; r < t->nranks; r++)
        if (t->rank_pos[r] != r)
            return 0;
    return 1;
}

void topo_print_tree(const struct topo *t, FILE *f)
{
    char rbw[32];
    topo_human_quantity(t->reduce_bw, TOPO_UNIT_BANDWIDTH, rbw, sizeof rbw);
    fprintf(f, "%s: %d ranks in %d level%s, reduction %s per rank\n", t->name, t->nranks,
            t->nlevels, t->nlevels == 1 ? "" : "s", rbw);
    if (t->description[0]) {
        /* wrapped at spaces to about 96 columns, indented */
        const char *p = t->description;
        while (*p) {
            size_t n = strcspn(p, "\n");
            if (n > 94) {
                size_t cut = 94;
                while (cut > 40 && p[cut] != ' ')
                    cut--;
                if (p[cut] == ' ')
                    n = cut;
            }
            fprintf(f, "  %.*s\n", (int)n, p);
            p += n;
            while (*p == ' ' || *p == '\n')
                p++;
        }
    }
    if (t->source[0])
        fprintf(f, "  source: %s\n", t->source);
    for (int i = t->nlevels - 1; i >= 0; i--) {
        const struct topo_level *l = &t->levels[i];
        int depth = t->nlevels - 1 - i;
        int ranks = topo_stride(t, i + 1), count = t->nranks / ranks;
        char shape[64], bw[32], lat[32], members[96];
        shape_text(l, shape, sizeof shape);
        topo_human_quantity(l->bw, TOPO_UNIT_BANDWIDTH, bw, sizeof bw);
        topo_human_quantity(l->latency, TOPO_UNIT_LATENCY, lat, sizeof lat);
        if (i == 0)
            snprintf(members, sizeof members, "%d rank%s", l->group, l->group == 1 ? "" : "s");
        else
            snprintf(members, sizeof members, "%d x %s", l->group, t->levels[i - 1].name);
        fprintf(f, "  %*s%s x%d (%d ranks each): %s, %s, %s per %s, %s per hop%s%s\n", 2 * depth,
                "", l->name, count, ranks, members, shape, bw, per_link(l) ? "link" : "rank",
                lat, l->link[0] ? ", over " : "", l->link);
    }
    if (t->rank_pos && !identity_map(t)) {
        fprintf(f, "  ranks placed by an explicit map:");
        for (int r = 0; r < t->nranks && r < 8; r++)
            fprintf(f, " %d->%d", r, t->rank_pos[r]);
        fprintf(f, "%s\n", t->nranks > 8 ? " ..." : "");
    }
}

/* ---- this host -------------------------------------------------------------------------- */

static void print_nic(FILE *f, int indent, const struct topo_nic *nic)
{
    fprintf(f, "%*sNIC", indent, "");
    for (int i = 0; i < nic->nnames; i++)
        fprintf(f, "%s%s", i ? ", " : " ", nic->names[i]);
    if (!nic->nnames)
        fprintf(f, " (no OS device)");
    fprintf(f, "%s", nic->rdma ? " [RDMA]" : "");
    if (nic->pci[0]) {
        fprintf(f, " (PCI %s%s%s", nic->pci, nic->model[0] ? ", " : "", nic->model);
        if (nic->link_gbs > 0)
            fprintf(f, ", link %.4g GB/s", nic->link_gbs);
        fprintf(f, ")");
    }
    fprintf(f, "\n");
}

#ifdef HAVE_HWLOC
static void human_bytes(unsigned long long b, char *buf, size_t len)
{
    static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    double v = (double)b;
    while (v >= 1024 && i < 4)
        v /= 1024, i++;
    snprintf(buf, len, "%.4g %s", v, u[i]);
}

static void print_caches(FILE *f, hwloc_topology_t topo, hwloc_obj_t pkg)
{
    static const hwloc_obj_type_t types[] = {HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L2CACHE,
                                             HWLOC_OBJ_L1CACHE};
    int any = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        int n = hwloc_get_nbobjs_inside_cpuset_by_type(topo, pkg->cpuset, types[i]);
        hwloc_obj_t c = hwloc_get_next_obj_inside_cpuset_by_type(topo, pkg->cpuset, types[i],
                                                                 NULL);
        if (n <= 0 || !c)
            continue;
        char size[32];
        human_bytes(c->attr->cache.size, size, sizeof size);
        int cores = hwloc_get_nbobjs_inside_cpuset_by_type(topo, c->cpuset, HWLOC_OBJ_CORE);
        fprintf(f, "%s L%u%s %s x%d (%d core%s each)", any ? "," : "", c->attr->cache.depth, types[i] == HWLOC_OBJ_L1CACHE ? "d" : "", size, n, cores,
                cores == 1 ? "" : "s");
        any = 1;
    }
    fprintf(f, "%s\n", any ? "" : " (none reported)");
}

static void print_numa(FILE *f, hwloc_topology_t topo, hwloc_obj_t node, int indent,
                       const struct topo_nic *nics, int nnics, char *printed)
{
    char mem[32], *pus = NULL;
    human_bytes(node->attr->numanode.local_memory, mem, sizeof mem);
    hwloc_bitmap_list_asprintf(&pus, node->cpuset);
    int cores = hwloc_get_nbobjs_inside_cpuset_by_type(topo, node->cpuset, HWLOC_OBJ_CORE);
    fprintf(f, "%*sNUMA node %u: %s, %d core%s (PUs %s)\n", indent, "", node->os_index, mem,
            cores, cores == 1 ? "" : "s", pus ? pus : "?");
    free(pus);
    for (int i = 0; i < nnics; i++) {
        if (!printed[i] && nics[i].numa == (int)node->os_index) {
            print_nic(f, indent + 2, &nics[i]);
            printed[i] = 1;
        }
    }
}
#endif

void topo_print_host(FILE *f)
{
    struct topo *t = NULL;
    if (topo_detect(&t) != CHORUS_SUCCESS) {
        fprintf(f, "host: detection failed\n");
        return;
    }
    fprintf(f, "host %s: %d package%s, %d NUMA node%s, %d core%s, %d hardware thread%s usable\n",
            t->name, t->host_packages, t->host_packages == 1 ? "" : "s", t->host_numa,
            t->host_numa == 1 ? "" : "s", t->host_cores, t->host_cores == 1 ? "" : "s",
            t->host_pus, t->host_pus == 1 ? "" : "s");
    topo_free(t);
    struct topo_nic *nics = NULL;
    int nnics = 0;
    topo_detect_nics(&nics, &nnics);
    char *printed = calloc((size_t)nnics + 1, 1);
    if (!printed) {
        free(nics);
        return;
    }
#ifdef HAVE_HWLOC
    hwloc_topology_t topo;
    int have = hwloc_topology_init(&topo) == 0;
    if (have && hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        have = 0;
    }
    if (have) {
        hwloc_bitmap_t set = hwloc_bitmap_alloc();
        char *bind = NULL;
        if (set && hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) == 0 &&
            hwloc_bitmap_list_asprintf(&bind, set) >= 0)
            fprintf(f, "  this process is bound to PUs %s%s\n", bind,
                    hwloc_bitmap_isincluded(hwloc_topology_get_topology_cpuset(topo), set)
                        ? " (the whole machine)" : "");
        free(bind);
        hwloc_bitmap_free(set);
        int nnuma = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
        char *numa_done = calloc((size_t)nnuma + 1, 1);
        for (hwloc_obj_t p = NULL; (p = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PACKAGE, p));) {
            const char *model = hwloc_obj_get_info_by_name(p, "CPUModel");
            fprintf(f, "  package %u%s%s\n    caches:", p->os_index, model ? ": " : "",
                    model ? model : "");
            print_caches(f, topo, p);
            for (int k = 0; k < nnuma; k++) {
                hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)k);
                if (node && numa_done && !numa_done[k] &&
                    hwloc_bitmap_isincluded(node->cpuset, p->cpuset)) {
                    print_numa(f, topo, node, 4, nics, nnics, printed);
                    numa_done[k] = 1;
                }
            }
            for (int i = 0; i < nnics; i++)
                if (!printed[i] && nics[i].numa < 0 && nics[i].package == (int)p->os_index) {
                    print_nic(f, 4, &nics[i]);
                    printed[i] = 1;
                }
        }
        /* NUMA nodes spanning packages, or no packages at all */
        for (int k = 0; k < nnuma && numa_done; k++) {
            hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)k);
            if (node && !numa_done[k])
                print_numa(f, topo, node, 2, nics, nnics, printed);
        }
        free(numa_done);
        hwloc_topology_destroy(topo);
    } else {
        fprintf(f, "  (hwloc could not read this machine)\n");
    }
#else
    fprintf(f, "  (built without hwloc: no packages, NUMA nodes, caches nor NICs)\n");
#endif
    int header = 0;
    for (int i = 0; i < nnics; i++) {
        if (printed[i])
            continue;
        if (!header++)
            fprintf(f, "  NICs attached to the whole host (or of unknown locality):\n");
        print_nic(f, 4, &nics[i]);
    }
    if (nnics == 0)
        fprintf(f, "  no network devices seen\n");
    free(printed);
    free(nics);
}
