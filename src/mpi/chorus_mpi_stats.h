/* chorus_mpi_stats.h - what the MPI interposer (libchorus_mpi) did, per process.
 *
 * libchorus_mpi exports these next to its MPI_* wrappers so that tests and
 * curious users can see which calls ran on Chorus and which went to MPI
 * (PMPI) and why. A program that may run without the interposer should look
 * them up with dlsym(RTLD_DEFAULT, "chorus_mpi_get_counts"). */
#ifndef CHORUS_MPI_STATS_H
#define CHORUS_MPI_STATS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The intercepted collectives; the nonblocking forms follow the blocking ones
 * in the same order. */
typedef enum {
    CHORUS_MPI_ALLREDUCE = 0,
    CHORUS_MPI_ALLGATHER,
    CHORUS_MPI_ALLTOALL,
    CHORUS_MPI_ALLTOALLV,
    CHORUS_MPI_REDUCE_SCATTER_BLOCK,
    CHORUS_MPI_BCAST,
    CHORUS_MPI_REDUCE,
    CHORUS_MPI_BARRIER,
    CHORUS_MPI_IALLREDUCE,
    CHORUS_MPI_IALLGATHER,
    CHORUS_MPI_IALLTOALL,
    CHORUS_MPI_IALLTOALLV,
    CHORUS_MPI_IREDUCE_SCATTER_BLOCK,
    CHORUS_MPI_IBCAST,
    CHORUS_MPI_IREDUCE,
    CHORUS_MPI_IBARRIER,
    CHORUS_MPI_NUM_COLLS
} chorus_mpi_coll_t;

#define CHORUS_MPI_NUM_BLOCKING CHORUS_MPI_IALLREDUCE

/* Calls of coll so far that ran on Chorus and that went to PMPI. Returns 0,
 * or -1 for a bad coll. Either pointer may be NULL. */
int chorus_mpi_get_counts(int coll, unsigned long long *chorus_calls,
                          unsigned long long *mpi_calls);
/* "allreduce", "iallreduce", ...; NULL for a bad coll. */
const char *chorus_mpi_coll_name(int coll);
/* Copies the reason of the most recent call that went to PMPI ("" if none)
 * into buf, e.g. "allreduce: datatype is derived (not predefined)". */
void chorus_mpi_last_fallback(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
