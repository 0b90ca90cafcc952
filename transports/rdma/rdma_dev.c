/* rdma_dev.c - choosing the RDMA device, port and address of this rank.
 *
 * Like NCCL: CHORUS_RDMA_HCA lists devices (name prefixes, optionally
 * ":port"; '=' makes them exact names, '^' excludes them); among the
 * selected ones the first active port wins, devices taken nearest first:
 * those hwloc attaches under a NUMA node or package holding this process's
 * CPUs, then those attached to the whole machine, then the others, each
 * group in name order (topo_device_distances). Binding each rank to its
 * socket (mpirun -bind-to socket) thus gives it its socket's NIC.
 *
 * rdma_cm connects by IP address, so a port is usable only with one:
 *  - RoCE: an address from the port's GID table. CHORUS_RDMA_GID_INDEX picks
 *    the entry; by default a RoCE v2 GID holding an IPv4 address is
 *    preferred (routable, what switches are configured for), then RoCE v1,
 *    then IPv6 GIDs (link-local last).
 *  - InfiniBand: the address of the port's IPoIB interface.
 * Binding rdma_cm to that address later selects the same device and port
 * (rdma_conn.c checks).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdma_impl.h"
#include "topo_detect.h"

const char *rdma_gid_type_str(int type)
{
    switch (type) {
    case IBV_GID_TYPE_IB: return "IB";
    case IBV_GID_TYPE_ROCE_V1: return "RoCE v1";
    case IBV_GID_TYPE_ROCE_V2: return "RoCE v2";
    default: return "GID type unknown";
    }
}

/* One entry "name[:port]" of spec[0..len) against name:port. */
static int entry_matches(const char *e, size_t len, int exact, const char *name, int port)
{
    while (len && (*e == ' ' || *e == '\t')) {
        e++;
        len--;
    }
    while (len && (e[len - 1] == ' ' || e[len - 1] == '\t'))
        len--;
    const char *colon = memchr(e, ':', len);
    size_t nlen = colon ? (size_t)(colon - e) : len;
    if (nlen == 0)
        return 0;
    if (colon) {
        char num[16];
        size_t plen = len - nlen - 1;
        if (plen == 0 || plen >= sizeof num)
            return 0;
        memcpy(num, colon + 1, plen);
        num[plen] = '\0';
        char *end;
        long want = strtol(num, &end, 10);
        if (*end || want != port)
            return 0;
    }
    if (exact)
        return strlen(name) == nlen && !strncmp(name, e, nlen);
    return !strncmp(name, e, nlen);
}

int rdma_hca_match(const char *spec, const char *name, int port)
{
    if (!spec)
        return 1;
    while (*spec == ' ')
        spec++;
    if (!*spec)
        return 1;
    int exclude = *spec == '^';
    if (exclude)
        spec++;
    int exact = *spec == '=';
    if (exact)
        spec++;
    int matched = 0;
    for (const char *p = spec; !matched;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        matched = entry_matches(p, len, exact, name, port);
        if (!comma)
            break;
        p = comma + 1;
    }
    return exclude ? !matched : matched;
}

/* ---- RoCE: an address from the GID table ----------------------------------------- */

static int is_v4_mapped(const uint8_t *g)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return !memcmp(g, prefix, sizeof prefix);
}

static int is_zero(const uint8_t *g)
{
    for (int i = 0; i < 16; i++)
        if (g[i])
            return 0;
    return 1;
}

static int gid_to_addr(const uint8_t *g, uint32_t ifindex, struct chorus_sockaddr *out)
{
    if (is_v4_mapped(g)) {
        struct sockaddr_in in4;
        memset(&in4, 0, sizeof in4);
        in4.sin_family = AF_INET;
        memcpy(&in4.sin_addr, g + 12, 4);
        return chorus_sockaddr_set(out, (struct sockaddr *)&in4, sizeof in4) == CHORUS_SUCCESS
                   ? 0
                   : -1;
    }
    struct sockaddr_in6 in6;
    memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    memcpy(&in6.sin6_addr, g, 16);
    if (g[0] == 0xfe && (g[1] & 0xc0) == 0x80)
        in6.sin6_scope_id = ifindex;
    return chorus_sockaddr_set(out, (struct sockaddr *)&in6, sizeof in6) == CHORUS_SUCCESS ? 0
                                                                                           : -1;
}

/* Higher is better; 0: unusable. */
static int gid_score(const uint8_t *g, int type)
{
    if (is_zero(g))
        return 0;
    int v2 = type == IBV_GID_TYPE_ROCE_V2;
    if (is_v4_mapped(g))
        return 10 + v2;
    if (g[0] == 0xfe && (g[1] & 0xc0) == 0x80)
        return 1 + v2;
    return 5 + v2;
}

static int roce_address(struct ibv_context *ctx, const char *name, int port, int tbl_len,
                        long want, struct rdma_device *out, char *why, size_t cap)
{
    int best = 0;
    for (int idx = 0; idx < tbl_len; idx++) {
        if (want >= 0 && idx != want)
            continue;
        struct ibv_gid_entry e;
        memset(&e, 0, sizeof e);
        int type = -1;
        uint32_t ifindex = 0;
        if (ibv_query_gid_ex(ctx, (uint32_t)port, (uint32_t)idx, &e, 0) == 0) {
            type = (int)e.gid_type;
            ifindex = e.ndev_ifindex;
        } else {
            /* Older kernels: the plain query, type unknown (treated as v1). */
            if (ibv_query_gid(ctx, (uint8_t)port, idx, &e.gid) != 0)
                continue;
        }
        int score = gid_score(e.gid.raw, type);
        if (score <= best)
            continue;
        struct chorus_sockaddr a;
        if (gid_to_addr(e.gid.raw, ifindex, &a) != 0)
            continue;
        best = score;
        out->gid_index = idx;
        out->gid_type = type;
        out->addr = a;
    }
    if (best > 0)
        return 0;
    if (want >= 0)
        snprintf(why, cap, "%s:%d has no IP address in GID %ld (CHORUS_RDMA_GID_INDEX)", name,
                 port, want);
    else
        snprintf(why, cap, "%s:%d has no GID with an IP address (is its netdev up with an "
                 "address?)", name, port);
    return -1;
}

/* ---- InfiniBand: the IPoIB interface's address ------------------------------------- */

static int read_long(const char *path, long *out, int base)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char buf[32];
    int ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    char *end;
    *out = strtol(buf, &end, base);
    return end == buf ? -1 : 0;
}

/* Is netdev ifname the one of port (dev_port, or dev_id on old kernels)? */
static int netdev_port_is(const char *ifname, int port)
{
    char path[300];
    long v;
    snprintf(path, sizeof path, "/sys/class/net/%s/dev_port", ifname);
    if (read_long(path, &v, 10) == 0 && v == port - 1)
        return 1;
    snprintf(path, sizeof path, "/sys/class/net/%s/dev_id", ifname);
    if (read_long(path, &v, 16) == 0 && v == port - 1)
        return 1;
    return 0;
}

static int ipoib_address(const char *name, int port, struct rdma_device *out, char *why,
                         size_t cap)
{
    char path[300];
    snprintf(path, sizeof path, "/sys/class/infiniband/%s/device/net", name);
    DIR *d = opendir(path);
    struct ifaddrs *ifs = NULL;
    int found = 0;
    if (d && getifaddrs(&ifs) == 0) {
        struct dirent *de;
        while (!found && (de = readdir(d))) {
            if (de->d_name[0] == '.' || !netdev_port_is(de->d_name, port))
                continue;
            /* IPv4 first, then a global IPv6 address. */
            for (int pass = 0; pass < 2 && !found; pass++)
                for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
                    if (!i->ifa_addr || strcmp(i->ifa_name, de->d_name) ||
                        !(i->ifa_flags & IFF_UP))
                        continue;
                    int fam = i->ifa_addr->sa_family;
                    if (pass == 0 && fam != AF_INET)
                        continue;
                    if (pass == 1 && (fam != AF_INET6 ||
                                      IN6_IS_ADDR_LINKLOCAL(
                                          &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr)))
                        continue;
                    socklen_t len = fam == AF_INET ? sizeof(struct sockaddr_in)
                                                   : sizeof(struct sockaddr_in6);
                    found = chorus_sockaddr_set(&out->addr, i->ifa_addr, len) ==
                            CHORUS_SUCCESS;
                }
        }
    }
    if (ifs)
        freeifaddrs(ifs);
    if (d)
        closedir(d);
    if (found) {
        out->gid_index = 0;
        out->gid_type = IBV_GID_TYPE_IB;
        return 0;
    }
    snprintf(why, cap, "%s:%d is InfiniBand without an IPoIB address (rdma_cm needs one)", name,
             port);
    return -1;
}

/* ---- the choice ------------------------------------------------------------------------ */

struct dev_order {
    struct ibv_context *ctx;
    int dist; /* topo_device_distances */
};

static int nearest_then_name(const void *a, const void *b)
{
    const struct dev_order *x = a, *y = b;
    if (x->dist != y->dist)
        return x->dist < y->dist ? -1 : 1;
    return strcmp(ibv_get_device_name(x->ctx->device), ibv_get_device_name(y->ctx->device));
}

int rdma_pick_device(struct ibv_context **list, int n, const char *hca, long gid_index,
                     struct rdma_device *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    snprintf(why, cap, "no RDMA device");
    if (!list || n <= 0)
        return -1;
    struct dev_order *sorted = malloc((size_t)n * sizeof *sorted);
    const char **names_of = malloc((size_t)n * sizeof *names_of);
    int *dist = malloc((size_t)n * sizeof *dist);
    if (!sorted || !names_of || !dist) {
        free(sorted);
        free(names_of);
        free(dist);
        snprintf(why, cap, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++)
        names_of[i] = ibv_get_device_name(list[i]->device);
    topo_device_distances(names_of, n, dist);
    for (int i = 0; i < n; i++)
        sorted[i] = (struct dev_order){list[i], dist[i]};
    free(names_of);
    free(dist);
    qsort(sorted, (size_t)n, sizeof *sorted, nearest_then_name);
    char names[200] = "";
    size_t nlen = 0;
    int selected = 0, rc = -1;
    for (int i = 0; i < n && rc != 0; i++) {
        struct ibv_context *ctx = sorted[i].ctx;
        const char *name = ibv_get_device_name(ctx->device);
        int w = snprintf(names + nlen, sizeof names - nlen, "%s%s", nlen ? ", " : "", name);
        if (w > 0 && (size_t)w < sizeof names - nlen)
            nlen += (size_t)w;
        struct ibv_device_attr da;
        if (ibv_query_device(ctx, &da) != 0) {
            snprintf(why, cap, "querying %s failed: %s", name, strerror(errno));
            continue;
        }
        for (int port = 1; port <= da.phys_port_cnt && rc != 0; port++) {
            if (!rdma_hca_match(hca, name, port))
                continue;
            selected = 1;
            struct ibv_port_attr pa;
            if (ibv_query_port(ctx, (uint8_t)port, &pa) != 0) {
                snprintf(why, cap, "querying %s:%d failed: %s", name, port, strerror(errno));
                continue;
            }
            if (pa.state != IBV_PORT_ACTIVE) {
                snprintf(why, cap, "%s:%d is not active (state %s)", name, port,
                         ibv_port_state_str(pa.state));
                continue;
            }
            out->ctx = ctx;
            out->port = port;
            out->link_layer = pa.link_layer;
            out->max_msg_sz = pa.max_msg_sz;
            snprintf(out->name, sizeof out->name, "%s:%d", name, port);
            static const char *const near[] = {"local to this rank's CPUs", "machine-wide",
                                               "on another socket", "locality unknown"};
            snprintf(out->locality, sizeof out->locality, "%s", near[sorted[i].dist]);
            if (pa.link_layer == IBV_LINK_LAYER_INFINIBAND)
                rc = ipoib_address(name, port, out, why, cap);
            else
                rc = roce_address(ctx, name, port, pa.gid_tbl_len, gid_index, out, why, cap);
        }
    }
    free(sorted);
    if (rc != 0 && !selected)
        snprintf(why, cap, "no RDMA device matches CHORUS_RDMA_HCA='%s' (devices: %s)",
                 hca ? hca : "", names);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}
