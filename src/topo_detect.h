/* topo_detect.h - what hwloc tells about this host beyond the levels of
 * struct topo: the network devices and where they attach, the caches, the
 * binding. topo_detect (topo.h) builds the levels; this is for printing
 * (chorus_topo) and for choosing the NIC nearest each rank (RDMA). */
#ifndef CHORUS_TOPO_DETECT_H
#define CHORUS_TOPO_DETECT_H

#include <stdio.h>

#include "chorus.h"

#define TOPO_NIC_NAMES 4

struct topo_nic {
    char pci[16];        /* PCI bus id "0000:3b:00.0"; "" for a device hwloc sees outside PCI */
    char model[64];      /* PCI vendor/device name when hwloc knows it, else "" */
    int nnames;
    char names[TOPO_NIC_NAMES][32]; /* OS devices on it: "eth0", "mlx5_0" ... */
    int rdma;            /* 1 if one of them is an OpenFabrics (RDMA) device */
    int numa;            /* OS index of the NUMA node it is local to; -1: all / unknown */
    int package;         /* OS index of the package it is local to; -1: all / unknown */
    double link_gbs;     /* PCI link speed in GB/s as hwloc reports it; 0 unknown */
};

/* The network devices of this host (PCI class network or InfiniBand, and
 * network/OpenFabrics OS devices) with their locality. *out is malloc'ed
 * (free it); *n may be 0. Without hwloc: none. */
chorus_result_t topo_detect_nics(struct topo_nic **out, int *n);

/* How far each named device (an OS device name: "mlx5_0", "eth0") is from
 * the CPUs this process may run on: 0 attached under a NUMA node or package
 * holding some of them, 1 attached to the machine as a whole (no locality
 * known), 2 attached to another NUMA node or package, 3 not found (or no
 * hwloc). dist[i] for names[i]. One hwloc load for all. */
void topo_device_distances(const char *const *names, int n, int *dist);

/* Prints this host like lstopo: packages, NUMA nodes with their cores (and
 * the shared caches), this process's binding, and the NICs where they
 * attach. One line without hwloc. */
void topo_print_host(FILE *f);

#endif
