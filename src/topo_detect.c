/* topo_detect.c - this host as a topology: ranks are the cores this process
 * may run on (its binding), grouped by NUMA node, package and host, with
 * shared-memory figures. Built on hwloc; without it (or when hwloc cannot
 * read the machine) one level of sched_getaffinity's CPUs.
 *
 * The figures are rough constants, on purpose: shared memory between cores
 * of one NUMA node moves about 10 GB/s per rank and a flag round trip costs
 * 0.2-0.5 us (supernodes.md, "host shared memory"); crossing NUMA nodes and
 * packages costs some bandwidth and latency. The tuner's calibration
 * replaces them with measured ones. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "topo.h"
#include "topo_detect.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_HWLOC
#include <hwloc.h>
#endif

/* per-rank bandwidth (bytes/s) and latency (s) of each detected level */
#define SHM_NUMA_BW 10e9
#define SHM_NUMA_LAT 0.3e-6
#define SHM_PACKAGE_BW 8e9 /* between NUMA nodes of one package (sub-NUMA clusters) */
#define SHM_PACKAGE_LAT 0.4e-6
#define SHM_HOST_BW 6e9 /* between packages, over the socket interconnect */
#define SHM_HOST_LAT 0.6e-6
/* one core summing two float streams from memory (AVX2, memory-bound) */
#define SHM_REDUCE_BW 8e9

static int affinity_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Host names may hold anything; topology names keep to [A-Za-z0-9._+-]. */
static void host_name(char *dst, size_t cap)
{
    char h[256] = "";
    if (gethostname(h, sizeof h - 1) != 0 || !h[0])
        snprintf(h, sizeof h, "localhost");
    size_t j = 0;
    for (size_t i = 0; h[i] && j + 1 < cap; i++)
        dst[j++] = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-",
                          h[i]) ? h[i] : '-';
    dst[j] = '\0';
}

/* Levels numa / package / host of groups g[0..2]; levels of group 1 merge
 * into the one below (a one-NUMA package is that NUMA node), and that level
 * takes the outer name, keeping the figures of what its members cross. */
static void set_levels(struct topo *t, const int g[3])
{
    static const char *const names[3] = {"numa", "package", "host"};
    static const double bw[3] = {SHM_NUMA_BW, SHM_PACKAGE_BW, SHM_HOST_BW};
    static const double lat[3] = {SHM_NUMA_LAT, SHM_PACKAGE_LAT, SHM_HOST_LAT};
    t->nlevels = 0;
    for (int i = 0; i < 3; i++) {
        if (g[i] == 1 && !(i == 2 && t->nlevels == 0))
            continue;
        struct topo_level *l = &t->levels[t->nlevels++];
        snprintf(l->name, sizeof l->name, "%s", names[i]);
        l->group = g[i];
        l->shape = TOPO_SHAPE_SWITCH;
        l->bw = g[i] == 1 ? bw[0] : bw[i];
        l->latency = g[i] == 1 ? lat[0] : lat[i];
        snprintf(l->link, sizeof l->link, "shm");
        for (int j = i + 1; j < 3 && g[j] == 1; j++)
            snprintf(l->name, sizeof l->name, "%s", names[j]);
    }
}

#ifdef HAVE_HWLOC
static hwloc_topology_t load_hwloc(int with_io)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0)
        return NULL;
    if (with_io) {
        hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
        /* Linux sysfs gives the same PCI devices and their locality; the
         * libpciaccess plugin leaks on every load (LeakSanitizer, valgrind) */
        hwloc_topology_set_components(topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "pci");
    }
    if (hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        return NULL;
    }
    return topo;
}

/* The cpuset this process may run on: its binding, else what it is allowed. */
static hwloc_bitmap_t binding(hwloc_topology_t topo)
{
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (set && hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) != 0)
        hwloc_bitmap_copy(set, hwloc_topology_get_allowed_cpuset(topo));
    if (set)
        hwloc_bitmap_and(set, set, hwloc_topology_get_topology_cpuset(topo));
    return set;
}

/* Ranks per object of `type` inside `set`, when every object that has any
 * holds the same number; -1 when they differ. *nobj: how many have any. */
static int per_object(hwloc_topology_t topo, hwloc_const_bitmap_t set, hwloc_obj_type_t type,
                      hwloc_obj_type_t unit, int *nobj)
{
    int per = 0;
    *nobj = 0;
    hwloc_bitmap_t tmp = hwloc_bitmap_alloc();
    if (!tmp)
        return -1;
    for (hwloc_obj_t o = NULL; (o = hwloc_get_next_obj_by_type(topo, type, o));) {
        hwloc_bitmap_and(tmp, set, o->cpuset);
        int k = hwloc_get_nbobjs_inside_cpuset_by_type(topo, tmp, unit);
        if (k == 0)
            continue;
        (*nobj)++;
        if (per == 0)
            per = k;
        else if (per != k)
            per = -1;
    }
    hwloc_bitmap_free(tmp);
    return per;
}

/* Each used NUMA node inside one package (not true on machines whose single
 * NUMA node spans packages). */
static int numa_nested(hwloc_topology_t topo, hwloc_const_bitmap_t set)
{
    for (hwloc_obj_t n = NULL; (n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n));) {
        if (!hwloc_bitmap_intersects(n->cpuset, set))
            continue;
        hwloc_obj_t p = hwloc_get_next_obj_covering_cpuset_by_type(topo, n->cpuset,
                                                                   HWLOC_OBJ_PACKAGE, NULL);
        if (!p && hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE) > 0)
            return 0;
    }
    return 1;
}

static int detect_hwloc(struct topo *t)
{
    hwloc_topology_t topo = load_hwloc(0);
    if (!topo)
        return -1;
    hwloc_bitmap_t set = binding(topo);
    int rc = -1;
    if (!set)
        goto out;
    /* bound to single hardware threads of SMT cores: count those */
    hwloc_obj_type_t unit = HWLOC_OBJ_CORE;
    int n = hwloc_get_nbobjs_inside_cpuset_by_type(topo, set, unit);
    if (n <= 0) {
        unit = HWLOC_OBJ_PU;
        n = hwloc_get_nbobjs_inside_cpuset_by_type(topo, set, unit);
    }
    if (n <= 0)
        goto out;
    int nnuma = 0, npkg = 0;
    int per_numa = per_object(topo, set, HWLOC_OBJ_NUMANODE, unit, &nnuma);
    int per_pkg = per_object(topo, set, HWLOC_OBJ_PACKAGE, unit, &npkg);
    if (npkg == 0) /* no package objects (some VMs): the host is one package */
        per_pkg = n, npkg = 1;
    int g[3] = {n, 1, 1};
    if (per_numa > 0 && per_pkg > 0 && per_pkg % per_numa == 0 && numa_nested(topo, set) &&
        per_numa * nnuma == n && per_pkg * npkg == n)
        g[0] = per_numa, g[1] = per_pkg / per_numa, g[2] = npkg;
    else if (per_pkg > 0 && per_pkg * npkg == n)
        g[0] = per_pkg, g[2] = npkg; /* NUMA nodes that do not nest, or differ in size */
    /* else: unequal packages; one flat level of all cores */
    set_levels(t, g);
    t->nranks = n;
    t->host_packages = npkg;
    t->host_numa = nnuma > 0 ? nnuma : 1;
    t->host_cores = n;
    t->host_pus = hwloc_get_nbobjs_inside_cpuset_by_type(topo, set, HWLOC_OBJ_PU);
    hwloc_obj_t pkg = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PACKAGE, NULL);
    const char *model = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModel") : NULL;
    char m[96] = "";
    for (size_t i = 0, j = 0; model && model[i] && j + 1 < sizeof m; i++)
        m[j++] = model[i] >= 0x20 && model[i] < 0x7f ? model[i] : '?';
    snprintf(t->description, sizeof t->description,
             "this host from hwloc: %d package(s), %d NUMA node(s), %d %s(s) this process may "
             "use%s%s; shared-memory figures are rough constants", t->host_packages,
             t->host_numa, n, unit == HWLOC_OBJ_CORE ? "core" : "hardware thread",
             m[0] ? ", " : "", m);
    rc = 0;
out:
    hwloc_bitmap_free(set);
    hwloc_topology_destroy(topo);
    return rc;
}
#endif

chorus_result_t topo_detect(struct topo **out)
{
    *out = NULL;
    struct topo *t = calloc(1, sizeof(*t));
    if (!t)
        return CHORUS_SYSTEM_ERROR;
    host_name(t->name, sizeof t->name);
    snprintf(t->source, sizeof t->source, "detected");
    int done = 0;
#ifdef HAVE_HWLOC
    done = detect_hwloc(t) == 0;
#endif
    if (!done) {
        int n = affinity_cpus();
        int g[3] = {1, 1, n};
        set_levels(t, g);
        t->levels[0].bw = SHM_NUMA_BW;
        t->levels[0].latency = SHM_NUMA_LAT;
        t->host_packages = t->host_numa = 1;
        t->host_cores = t->host_pus = n;
        snprintf(t->description, sizeof t->description,
                 "this host from sched_getaffinity: %d CPUs this process may use (no hwloc: no "
                 "packages or NUMA nodes); shared-memory figures are rough constants", n);
    }
    t->reduce_bw = SHM_REDUCE_BW;
    /* detection builds valid levels: a refusal here is a bug */
    return topo_hand_out(t, out) == CHORUS_SUCCESS ? CHORUS_SUCCESS : CHORUS_INTERNAL_ERROR;
}

/* ---- NICs ----------------------------------------------------------------------------- */

#ifdef HAVE_HWLOC
static int is_net_osdev(hwloc_obj_t o)
{
    return o->type == HWLOC_OBJ_OS_DEVICE && (o->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK ||
                                              o->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS);
}

static void locality(hwloc_topology_t topo, hwloc_obj_t io, struct topo_nic *nic)
{
    hwloc_obj_t a = hwloc_get_non_io_ancestor_obj(topo, io);
    nic->numa = nic->package = -1;
    if (!a)
        return;
    if (a->nodeset && hwloc_bitmap_weight(a->nodeset) == 1)
        nic->numa = hwloc_bitmap_first(a->nodeset);
    hwloc_obj_t p = a->type == HWLOC_OBJ_PACKAGE ? a
                    : hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, a);
    if (!p && hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE) == 1)
        p = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, 0);
    if (p)
        nic->package = (int)p->os_index;
}

static void add_name(struct topo_nic *nic, hwloc_obj_t os)
{
    if (nic->nnames < TOPO_NIC_NAMES && os->name)
        snprintf(nic->names[nic->nnames++], sizeof nic->names[0], "%s", os->name);
    if (os->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS)
        nic->rdma = 1;
}

static hwloc_obj_t pci_parent(hwloc_obj_t o)
{
    for (o = o->parent; o; o = o->parent)
        if (o->type == HWLOC_OBJ_PCI_DEVICE)
            return o;
    return NULL;
}

static int is_net_pci(hwloc_obj_t o)
{
    return o && (o->attr->pcidev.class_id >> 8) == 0x02; /* network (Ethernet, InfiniBand...) */
}
#endif

chorus_result_t topo_detect_nics(struct topo_nic **out, int *n)
{
    *out = NULL;
    *n = 0;
#ifdef HAVE_HWLOC
    hwloc_topology_t topo = load_hwloc(1);
    if (!topo)
        return CHORUS_SUCCESS; /* nothing known is not an error */
    int cap = 0;
    for (hwloc_obj_t o = NULL; (o = hwloc_get_next_pcidev(topo, o));)
        cap += is_net_pci(o);
    for (hwloc_obj_t o = NULL; (o = hwloc_get_next_osdev(topo, o));)
        cap += is_net_osdev(o) && !is_net_pci(pci_parent(o));
    struct topo_nic *nics = cap ? calloc((size_t)cap, sizeof(*nics)) : NULL;
    if (cap && !nics) {
        hwloc_topology_destroy(topo);
        return CHORUS_SYSTEM_ERROR;
    }
    int k = 0;
    for (hwloc_obj_t o = NULL; (o = hwloc_get_next_pcidev(topo, o));) {
        if (!is_net_pci(o))
            continue;
        struct topo_nic *nic = &nics[k++];
        snprintf(nic->pci, sizeof nic->pci, "%04x:%02x:%02x.%01x", o->attr->pcidev.domain,
                 o->attr->pcidev.bus, o->attr->pcidev.dev, o->attr->pcidev.func);
        const char *model = hwloc_obj_get_info_by_name(o, "PCIDevice");
        if (model)
            snprintf(nic->model, sizeof nic->model, "%s", model);
        else /* sysfs gives no names: vendor:device ids, as lspci -n */
            snprintf(nic->model, sizeof nic->model, "%04x:%04x", o->attr->pcidev.vendor_id,
                     o->attr->pcidev.device_id);
        nic->link_gbs = o->attr->pcidev.linkspeed;
        for (hwloc_obj_t c = o->io_first_child; c; c = c->next_sibling)
            if (is_net_osdev(c))
                add_name(nic, c);
        locality(topo, o, nic);
    }
    for (hwloc_obj_t o = NULL; (o = hwloc_get_next_osdev(topo, o));) {
        if (!is_net_osdev(o) || is_net_pci(pci_parent(o)))
            continue;
        struct topo_nic *nic = &nics[k++];
        add_name(nic, o);
        locality(topo, o, nic);
    }
    hwloc_topology_destroy(topo);
    *out = nics;
    *n = k;
#endif
    return CHORUS_SUCCESS;
}

void topo_device_distances(const char *const *names, int n, int *dist)
{
    for (int i = 0; i < n; i++)
        dist[i] = 3;
#ifdef HAVE_HWLOC
    hwloc_topology_t topo = n > 0 ? load_hwloc(1) : NULL;
    if (!topo)
        return;
    hwloc_bitmap_t mine = binding(topo);
    hwloc_obj_t root = hwloc_get_root_obj(topo);
    for (hwloc_obj_t o = NULL; mine && (o = hwloc_get_next_osdev(topo, o));) {
        for (int i = 0; i < n; i++) {
            if (!o->name || strcmp(o->name, names[i]))
                continue;
            hwloc_obj_t a = hwloc_get_non_io_ancestor_obj(topo, o);
            if (!a || a == root || hwloc_bitmap_isequal(a->cpuset, root->cpuset))
                dist[i] = 1; /* the whole machine: as near to every CPU */
            else
                dist[i] = hwloc_bitmap_intersects(a->cpuset, mine) ? 0 : 2;
        }
    }
    hwloc_bitmap_free(mine);
    hwloc_topology_destroy(topo);
#endif
}
