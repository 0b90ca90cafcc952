/* node.h - facts about the node this process runs on (from hwloc when built
 * with it): how many cores and which CPUs this process may run on, used to
 * notice when ranks outnumber cores, and the host id used to group ranks
 * into nodes. */
#ifndef CHORUS_NODE_H
#define CHORUS_NODE_H

#include <stdint.h>
#include "chorus.h"

/* Words of the CPU mask below: OS CPU indexes 0-1023. */
#define CHORUS_NODE_CPU_WORDS 16

struct chorus_node_info {
    int ncores;  /* physical cores this process may run on (>= 1) */
    int npus;    /* hardware threads this process may run on (>= 1) */
    int nnuma;   /* NUMA nodes of the machine (>= 1) */
    int package; /* OS index of the package holding every CPU this process may run on; -1:
                    several, or unknown */
    int numa;    /* same for the NUMA node */
    const char *source; /* "hwloc" or "sysconf" */
    /* The CPUs this process may run on, one bit per OS index (those from 1024
     * on are left out): the ranks of a node share them at init, so a job
     * that binds each rank to its own core is not taken for oversubscribed. */
    uint64_t cpus[CHORUS_NODE_CPU_WORDS];
};

/* Detected once per process; later calls return the cached result. */
const struct chorus_node_info *chorus_node_info(void);

/* CHORUS_HOSTID if set (hashed), else a hash of the hostname. */
chorus_result_t chorus_node_host_id(uint64_t *id);

#endif
