/*
 * perf_membw.c - the memory-bandwidth probe behind the "ceiling" of -B.
 *
 * On one node every collective is a set of memory copies and reductions, so
 * the machine's copy rate bounds its bus bandwidth. The probe measures that
 * rate with the ranks the sweep uses, in the same run: every rank copies its
 * own buffer with memcpy at the same moment (all ranks share the memory
 * system, as they do inside a collective), and, for the collectives where
 * only some ranks copy, rank 0 alone. Each tool turns the rate into a busbw
 * ceiling from the bytes each rank must move per byte of busbw
 * (perf_coll_t.busbw_ceiling; docs/perf.md derives each one).
 *
 * memcpy is glibc's: for buffers this large it streams with non-temporal
 * stores, the fastest copy this machine has, so the ceiling is one no
 * implementation can pass.
 */
#include <stdlib.h>
#include <string.h>

#include "perf_internal.h"

#define PROBE_ROUNDS 5

/* Seconds of the slowest rank's copy, with the ranks in `who` copying at once
 * (who < 0: all ranks, else that rank alone). Every rank returns the same. */
static double timed_copy(const perf_ctx_t *x, void *dst, const void *src, size_t bytes, int who)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t = 0;
    if (who < 0 || who == x->rank) {
        double t0 = perf_now_s();
        memcpy(dst, src, bytes);
        t = perf_now_s() - t0;
    }
    double slowest = 0;
    MPI_Allreduce(&t, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return slowest;
}

int perf_membw_probe(const perf_ctx_t *x, perf_membw_t *m)
{
    size_t bytes = x->opt.probe_bytes;
    unsigned char *src = malloc(bytes), *dst = malloc(bytes);
    int ok = src && dst, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        free(src);
        free(dst);
        return -1;
    }
    /* Touch every page first: the rounds must time copying, not page faults. */
    memset(src, 0x5a, bytes);
    memset(dst, 0, bytes);
    double best_all = 0, best_one = 0;
    for (int r = 0; r < PROBE_ROUNDS; r++) {
        double t = timed_copy(x, dst, src, bytes, -1);
        if (t > 0 && bytes / t / 1e9 > best_all)
            best_all = bytes / t / 1e9;
        t = timed_copy(x, dst, src, bytes, 0);
        if (t > 0 && bytes / t / 1e9 > best_one)
            best_one = bytes / t / 1e9;
    }
    free(src);
    free(dst);
    /* A second probe (after the sweep) can only raise the ceiling: keep the best. */
    if (best_all > m->copy_all)
        m->copy_all = best_all;
    if (best_one > m->copy_one)
        m->copy_one = best_one;
    m->probes++;
    return 0;
}

double perf_busbw_ceiling(const perf_ctx_t *x)
{
    if (!x->coll->busbw_ceiling || x->membw.probes == 0)
        return 0;
    return x->coll->busbw_ceiling(x->nranks, x->membw.copy_all, x->membw.copy_one);
}
