/* tests/netns/mpi_hello.c - a tiny MPI program to check that MPICH runs
 * across the network namespaces of tests/netns (see README.md there).
 *
 * Each rank reports where it runs: CHORUS_HOSTID, the IPv4 address of its
 * non-loopback interface (the namespace's eth0 address), MPI_Get_processor_name
 * and its pid. Rank 0 gathers the reports and prints one line per rank, in
 * rank order:
 *
 *   rank R/S hostid=node1 ip=10.77.0.2 if=eth0 proc=vm pid=1234
 *
 * then checks an MPI_Allreduce of the ranks (small message), an MPI_Allreduce
 * of ALLREDUCE_BYTES (argv[1], default 4 MiB) of doubles (so that megabytes
 * of MPI traffic cross the veths, visible in their byte counters), and an
 * MPI_Barrier, and prints
 *
 *   mpi_hello: OK size=S nodes=K bytes=B
 *
 * (nodes = the number of distinct CHORUS_HOSTID values). Exit status 0 on
 * success, 1 (on every rank, via MPI_Abort) on a wrong result.
 *
 * Build: mpicc -O2 -o mpi_hello mpi_hello.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <mpi.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINE 512

/* The first IPv4 address on an up, non-loopback interface. */
static void local_ipv4(char *ip, size_t ipcap, char *ifname, size_t ifcap)
{
    struct ifaddrs *ifs = NULL, *ifa;
    snprintf(ip, ipcap, "none");
    snprintf(ifname, ifcap, "none");
    if (getifaddrs(&ifs) != 0)
        return;
    for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
        if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET)
            continue;
        if ((ifa->ifa_flags & IFF_LOOPBACK) || !(ifa->ifa_flags & IFF_UP))
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)ifa->ifa_addr)->sin_addr, ip, (socklen_t)ipcap);
        snprintf(ifname, ifcap, "%s", ifa->ifa_name);
        break;
    }
    freeifaddrs(ifs);
}

int main(int argc, char **argv)
{
    int rank, size, namelen, i;
    char proc[MPI_MAX_PROCESSOR_NAME], ip[64], ifname[IF_NAMESIZE + 1], line[LINE];
    char *all = NULL;
    const char *hostid = getenv("CHORUS_HOSTID");
    long bytes = argc > 1 ? atol(argv[1]) : 4L << 20;
    long count = bytes / (long)sizeof(double), j;
    double *buf;
    int sum = 0, nodes = 0, bad = 0;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(proc, &namelen);
    local_ipv4(ip, sizeof ip, ifname, sizeof ifname);

    /* where each rank runs, printed by rank 0 in rank order */
    memset(line, 0, sizeof line);
    snprintf(line, sizeof line, "rank %d/%d hostid=%s ip=%s if=%s proc=%s pid=%ld", rank, size,
             hostid ? hostid : "(unset)", ip, ifname, proc, (long)getpid());
    if (rank == 0)
        all = calloc((size_t)size, LINE);
    MPI_Gather(line, LINE, MPI_CHAR, all, LINE, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        for (i = 0; i < size; i++) {
            char *l = all + (size_t)i * LINE;
            int seen = 0, k;
            printf("%s\n", l);
            /* count distinct hostids (the token after "hostid=") */
            for (k = 0; k < i; k++) {
                const char *a = strstr(all + (size_t)k * LINE, "hostid="), *b = strstr(l, "hostid=");
                size_t la = strcspn(a, " "), lb = strcspn(b, " ");
                if (la == lb && strncmp(a, b, la) == 0) {
                    seen = 1;
                    break;
                }
            }
            nodes += !seen;
        }
        fflush(stdout);
        free(all);
    }

    /* small allreduce: the sum of the ranks */
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (sum != size * (size - 1) / 2) {
        fprintf(stderr, "mpi_hello: rank %d: allreduce sum %d, want %d\n", rank, sum,
                size * (size - 1) / 2);
        bad = 1;
    }

    /* large allreduce: element j of rank r is r + j, so the sum is
     * size*(size-1)/2 + size*j (exact in doubles for these sizes) */
    if (count < 1)
        count = 1;
    buf = malloc((size_t)count * sizeof(double));
    if (!buf) {
        fprintf(stderr, "mpi_hello: rank %d: out of memory\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (j = 0; j < count; j++)
        buf[j] = (double)rank + (double)j;
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    for (j = 0; j < count; j++) {
        double want = (double)size * (size - 1) / 2 + (double)size * (double)j;
        if (buf[j] != want) {
            fprintf(stderr, "mpi_hello: rank %d: allreduce[%ld] = %g, want %g\n", rank, j, buf[j],
                    want);
            bad = 1;
            break;
        }
    }
    free(buf);

    MPI_Barrier(MPI_COMM_WORLD);
    if (bad)
        MPI_Abort(MPI_COMM_WORLD, 1);
    if (rank == 0) {
        printf("mpi_hello: OK size=%d nodes=%d bytes=%ld\n", size, nodes,
               count * (long)sizeof(double));
        fflush(stdout);
    }
    MPI_Finalize();
    return 0;
}
