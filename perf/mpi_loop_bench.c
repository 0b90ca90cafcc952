/*
 * mpi_loop_bench.c - an ordinary MPI collective benchmark loop, in the style
 * of the OSU micro-benchmarks: only MPI calls, no Chorus. Run it plain, then
 * with LD_PRELOAD=.../libchorus_mpi.so, to see what the MPI interposer
 * changes for a program that does not know about Chorus.
 *
 * Usage: mpirun -np N mpi_loop_bench [-c COLL] [-b MIN] [-e MAX] [-f FACTOR]
 *                                    [-i ITERS] [-w WARMUP] [-W SECONDS]
 *                                    [-t float|double|int]
 *   COLL: allreduce (default), allgather, alltoall, bcast, reduce,
 *         reduce_scatter_block, barrier
 *   MIN, MAX: message sizes in bytes (K, M suffixes), default 8 .. 64M;
 *             the size is the largest buffer (as in nccl-tests)
 *   ITERS: iterations per size (default: 1000 for small, fewer for large),
 *   WARMUP: untimed ones before (default ITERS / 10 + 2); SECONDS: a warm-up
 *   phase of small allreduces before everything (default 0.5)
 * Prints one line per size: bytes, average time per call (us, the slowest
 * rank's average), algorithm bandwidth (bytes / time) and whether the last
 * result was right (every rank's input is known, so the result is too).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ALLREDUCE, ALLGATHER, ALLTOALL, BCAST, REDUCE, REDUCE_SCATTER_BLOCK, BARRIER, NCOLLS };
static const char *names[NCOLLS] = {"allreduce", "allgather", "alltoall", "bcast", "reduce",
                                    "reduce_scatter_block", "barrier"};

static size_t parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*end == 'K' || *end == 'k')
        v *= 1024;
    else if (*end == 'M' || *end == 'm')
        v *= 1024 * 1024;
    else if (*end == 'G' || *end == 'g')
        v *= 1024.0 * 1024 * 1024;
    return (size_t)v;
}

/* Element i of rank r's input: small integers, so every sum is exact. */
static double input(int r, size_t i) { return (double)((r + 1) * 3 + (int)(i % 7)); }

static void fill(MPI_Datatype dt, void *buf, size_t n, int r)
{
    for (size_t i = 0; i < n; i++) {
        double v = input(r, i);
        if (dt == MPI_FLOAT)
            ((float *)buf)[i] = (float)v;
        else if (dt == MPI_DOUBLE)
            ((double *)buf)[i] = v;
        else
            ((int *)buf)[i] = (int)v;
    }
}

static double get(MPI_Datatype dt, const void *buf, size_t i)
{
    if (dt == MPI_FLOAT)
        return ((const float *)buf)[i];
    if (dt == MPI_DOUBLE)
        return ((const double *)buf)[i];
    return ((const int *)buf)[i];
}

/* Checks the result of one call; returns the number of wrong elements. */
static size_t check(int coll, MPI_Datatype dt, const void *recv, size_t n, int rank, int size)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double want;
        size_t gi = i;
        switch (coll) {
        case ALLREDUCE: case REDUCE:
            want = 0;
            for (int r = 0; r < size; r++)
                want += input(r, gi);
            break;
        case REDUCE_SCATTER_BLOCK:
            gi = (size_t)rank * n + i;
            want = 0;
            for (int r = 0; r < size; r++)
                want += input(r, gi);
            break;
        case ALLGATHER:
            want = input((int)(i / (n / (size_t)size)), i % (n / (size_t)size));
            break;
        case ALLTOALL: { /* block j came from rank j: its block for us */
            size_t blk = n / (size_t)size;
            want = input((int)(i / blk), (size_t)rank * blk + i % blk);
            break;
        }
        case BCAST:
            want = input(0, i);
            break;
        default:
            return 0;
        }
        if (get(dt, recv, i) != want)
            bad++;
    }
    return bad;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int coll = ALLREDUCE, iters = 0, warmup = -1;
    double warmup_s = 0.5;
    size_t minb = 8, maxb = (size_t)64 << 20;
    double factor = 2;
    MPI_Datatype dt = MPI_FLOAT;
    const char *tname = "float";
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "-c") && v) {
            coll = -1;
            for (int c = 0; c < NCOLLS; c++)
                if (!strcmp(v, names[c]))
                    coll = c;
        } else if (!strcmp(argv[i], "-b") && v) {
            minb = parse_size(v);
        } else if (!strcmp(argv[i], "-e") && v) {
            maxb = parse_size(v);
        } else if (!strcmp(argv[i], "-f") && v) {
            factor = atof(v);
        } else if (!strcmp(argv[i], "-i") && v) {
            iters = atoi(v);
        } else if (!strcmp(argv[i], "-w") && v) {
            warmup = atoi(v);
        } else if (!strcmp(argv[i], "-W") && v) {
            warmup_s = atof(v);
        } else if (!strcmp(argv[i], "-t") && v) {
            tname = v;
            dt = !strcmp(v, "double") ? MPI_DOUBLE : !strcmp(v, "int") ? MPI_INT : MPI_FLOAT;
        } else {
            coll = -1;
            v = NULL;
        }
        if (!v || coll < 0) {
            if (rank == 0)
                fprintf(stderr, "usage: mpi_loop_bench [-c COLL] [-b MIN] [-e MAX] [-f FACTOR] "
                        "[-i ITERS] [-w WARMUP] [-W SECONDS] [-t float|double|int]\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (factor <= 1)
        factor = 2;
    int esize;
    MPI_Type_size(dt, &esize);
    /* only to say what ran: the program itself does not depend on Chorus */
    int preloaded = dlsym(RTLD_DEFAULT, "chorus_mpi_get_counts") != NULL;
    if (rank == 0) {
        printf("# mpi_loop_bench: MPI_%s, %s, %d ranks, %s\n", names[coll], tname, size,
               preloaded ? "libchorus_mpi interposer loaded" : "plain MPI");
        printf("# %12s %12s %12s %6s\n", "bytes", "time_us", "algbw_GB/s", "check");
    }
    size_t cap = maxb + (size_t)size * (size_t)esize;
    char *sendbuf = malloc(cap), *recvbuf = malloc(cap);
    if (!sendbuf || !recvbuf) {
        fprintf(stderr, "mpi_loop_bench: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* warm up for WARMUP_S seconds first (rank 0's clock decides for all):
     * connections, caches, lazy setup of whatever runs the collectives */
    for (double t0 = MPI_Wtime();;) {
        for (int k = 0; k < 50; k++)
            MPI_Allreduce(sendbuf, recvbuf, 1, dt, MPI_SUM, MPI_COMM_WORLD);
        int more = MPI_Wtime() - t0 < warmup_s;
        MPI_Bcast(&more, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (!more)
            break;
    }
    long long total_bad = 0;
    for (double fb = (double)minb; fb <= (double)maxb; fb *= factor) {
        size_t bytes = (size_t)fb;
        size_t n = bytes / (size_t)esize; /* elements of the largest buffer */
        if (coll == ALLGATHER || coll == ALLTOALL || coll == REDUCE_SCATTER_BLOCK)
            n -= n % (size_t)size;
        if (coll == BARRIER)
            n = 0;
        else if (n == 0)
            continue;
        int blk = (int)(n / (size_t)size);
        int it = iters > 0 ? iters : bytes <= 65536 ? 1000 : bytes <= (1 << 20) ? 200 : 20;
        int wu = warmup >= 0 ? warmup : it / 10 + 2;
        double t = 0;
        for (int round = 0; round < 2; round++) { /* warmup, then timed */
            int count = round ? it : wu;
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (int k = 0; k < count; k++) {
                switch (coll) {
                case ALLREDUCE:
                    MPI_Allreduce(sendbuf, recvbuf, (int)n, dt, MPI_SUM, MPI_COMM_WORLD);
                    break;
                case ALLGATHER:
                    MPI_Allgather(sendbuf, blk, dt, recvbuf, blk, dt, MPI_COMM_WORLD);
                    break;
                case ALLTOALL:
                    MPI_Alltoall(sendbuf, blk, dt, recvbuf, blk, dt, MPI_COMM_WORLD);
                    break;
                case BCAST:
                    MPI_Bcast(rank == 0 ? sendbuf : recvbuf, (int)n, dt, 0, MPI_COMM_WORLD);
                    break;
                case REDUCE:
                    MPI_Reduce(sendbuf, recvbuf, (int)n, dt, MPI_SUM, 0, MPI_COMM_WORLD);
                    break;
                case REDUCE_SCATTER_BLOCK:
                    MPI_Reduce_scatter_block(sendbuf, recvbuf, blk, dt, MPI_SUM, MPI_COMM_WORLD);
                    break;
                default:
                    MPI_Barrier(MPI_COMM_WORLD);
                }
            }
            t = (MPI_Wtime() - t0) / (count ? count : 1);
            if (round == 0) { /* one checked call on known inputs */
                fill(dt, sendbuf, coll == ALLGATHER ? (size_t)blk : n, rank);
                memset(recvbuf, 0, n * (size_t)esize);
                switch (coll) {
                case ALLREDUCE:
                    MPI_Allreduce(sendbuf, recvbuf, (int)n, dt, MPI_SUM, MPI_COMM_WORLD);
                    break;
                case ALLGATHER:
                    MPI_Allgather(sendbuf, blk, dt, recvbuf, blk, dt, MPI_COMM_WORLD);
                    break;
                case ALLTOALL:
                    MPI_Alltoall(sendbuf, blk, dt, recvbuf, blk, dt, MPI_COMM_WORLD);
                    break;
                case BCAST:
                    if (rank == 0)
                        memcpy(recvbuf, sendbuf, n * (size_t)esize);
                    MPI_Bcast(recvbuf, (int)n, dt, 0, MPI_COMM_WORLD);
                    break;
                case REDUCE:
                    MPI_Reduce(sendbuf, recvbuf, (int)n, dt, MPI_SUM, 0, MPI_COMM_WORLD);
                    break;
                case REDUCE_SCATTER_BLOCK:
                    MPI_Reduce_scatter_block(sendbuf, recvbuf, blk, dt, MPI_SUM, MPI_COMM_WORLD);
                    break;
                default:
                    break;
                }
                size_t out = coll == REDUCE_SCATTER_BLOCK ? (size_t)blk : n;
                if (coll != REDUCE || rank == 0)
                    total_bad += (long long)check(coll, dt, recvbuf, out, rank, size);
            }
        }
        double tmax = 0;
        MPI_Reduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        long long bad = 0;
        MPI_Allreduce(&total_bad, &bad, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
        if (rank == 0)
            printf("  %12zu %12.2f %12.3f %6s\n", n * (size_t)esize, tmax * 1e6,
                   tmax > 0 ? (double)(n * (size_t)esize) / tmax / 1e9 : 0.0,
                   bad ? "WRONG" : "ok");
        if (coll == BARRIER)
            break;
    }
    long long bad = 0;
    MPI_Allreduce(&total_bad, &bad, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    free(sendbuf);
    free(recvbuf);
    MPI_Finalize();
    return bad ? 1 : 0;
}
