/* node.c - node detection through hwloc (sysconf fallback when built without). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "node.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_HWLOC
#include <hwloc.h>
#endif

#include "error.h"
#include "log.h"
#include "tunables.h"

static struct chorus_node_info info;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Also fills info.cpus; without an affinity mask, as if bound to CPUs
 * 0 .. n - 1 (every rank of the node the same: no union gained). */
static int affinity_pus(void)
{
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
        for (int c = 0; c < CHORUS_NODE_CPU_WORDS * 64 && c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set))
                info.cpus[c / 64] |= 1ull << (c % 64);
        return CPU_COUNT(&set);
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    n = online > 0 ? (int)online : 1;
    for (int c = 0; c < n && c < CHORUS_NODE_CPU_WORDS * 64; c++)
        info.cpus[c / 64] |= 1ull << (c % 64);
    return n;
}

static void detect(void)
{
    info.npus = affinity_pus();
    info.ncores = info.npus;
    info.nnuma = 1;
    info.package = info.numa = -1;
    info.source = "sysconf";
#ifdef HAVE_HWLOC
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) == 0) {
        if (hwloc_topology_load(topo) == 0) {
            /* Count only what this process is bound to, so a job that
             * pins ranks to a subset sees that subset. */
            hwloc_bitmap_t set = hwloc_bitmap_alloc();
            if (set && hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) == 0) {
                int pus = hwloc_get_nbobjs_inside_cpuset_by_type(topo, set, HWLOC_OBJ_PU);
                int cores = hwloc_get_nbobjs_inside_cpuset_by_type(topo, set, HWLOC_OBJ_CORE);
                if (pus > 0)
                    info.npus = pus;
                info.ncores = cores > 0 ? cores : info.npus;
                info.source = "hwloc";
            }
            int numa = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
            info.nnuma = numa > 0 ? numa : 1;
            if (set && info.source[0] == 'h') {
                /* the package / NUMA node the binding fits in, if one does */
                hwloc_obj_t o = hwloc_get_obj_covering_cpuset(topo, set);
                hwloc_obj_t pkg = o ? (o->type == HWLOC_OBJ_PACKAGE ? o
                                       : hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, o))
                                    : NULL;
                if (pkg)
                    info.package = (int)pkg->os_index;
                hwloc_bitmap_t nodes = hwloc_bitmap_alloc();
                if (nodes) {
                    hwloc_cpuset_to_nodeset(topo, set, nodes);
                    if (hwloc_bitmap_weight(nodes) == 1)
                        info.numa = hwloc_bitmap_first(nodes);
                    hwloc_bitmap_free(nodes);
                }
            }
            hwloc_bitmap_free(set);
        }
        hwloc_topology_destroy(topo);
    }
    if (strcmp(info.source, "hwloc") != 0)
        LOG_INFO("node", "hwloc could not read the topology; using sched_getaffinity");
#endif
    LOG_DEBUG("node", "%d cores, %d PUs, %d NUMA nodes (from %s); bound within package %d, "
              "NUMA node %d (-1: several)", info.ncores, info.npus, info.nnuma, info.source,
              info.package, info.numa);
}

const struct chorus_node_info *chorus_node_info(void)
{
    pthread_once(&once, detect);
    return &info;
}

/* FNV-1a: a stable hash of a short string; collisions between two host names
 * of one job are what matters, and 64 bits make them negligible. */
static uint64_t hash_string(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

chorus_result_t chorus_node_host_id(uint64_t *id)
{
    const char *override = chorus_tunables()->HOSTID;
    if (override && override[0]) {
        *id = hash_string(override);
        return CHORUS_SUCCESS;
    }
    char host[256];
    if (gethostname(host, sizeof host - 1) != 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "gethostname failed");
    host[sizeof host - 1] = '\0';
    *id = hash_string(host);
    return CHORUS_SUCCESS;
}
