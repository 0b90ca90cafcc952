/* tests/netns/mpi_abort_hold.c - LD_PRELOAD shim for kill_rank.sh: holds
 * MPI_Abort back for a while so that every surviving rank gets to report.
 *
 * The perf tools call MPI_Abort as soon as a Chorus call fails. The first
 * survivor to see the failure then has Hydra kill every other rank, often
 * before they have noticed the death themselves, so a test could only
 * check that *some* rank reported it. With this shim, MPI_Abort first
 * prints one line with the time of the call,
 *
 *   mpi_abort_hold: rank 3 MPI_Abort(3) at 1795904653.612345 (holding 3000 ms)
 *
 * (wall clock, seconds since the epoch; "rank" is PMI_RANK), then sleeps
 * CHORUS_ABORT_HOLD_MS milliseconds (default 3000), then calls PMPI_Abort.
 * Nothing else changes: what the survivors print, and when, is the
 * library's and the tool's own behaviour.
 *
 * Build: mpicc -shared -fPIC -O2 -o mpi_abort_hold.so mpi_abort_hold.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_gettime, nanosleep */
#endif

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int MPI_Abort(MPI_Comm comm, int errorcode)
{
    const char *hold_env = getenv("CHORUS_ABORT_HOLD_MS");
    const char *rank = getenv("PMI_RANK");
    long hold_ms = hold_env ? strtol(hold_env, NULL, 10) : 3000;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    fprintf(stderr, "mpi_abort_hold: rank %s MPI_Abort(%d) at %lld.%06ld (holding %ld ms)\n",
            rank ? rank : "?", errorcode, (long long)now.tv_sec, now.tv_nsec / 1000,
            hold_ms);
    fflush(stderr);
    if (hold_ms > 0) {
        struct timespec d = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
        while (nanosleep(&d, &d) != 0) {
        }
    }
    return PMPI_Abort(comm, errorcode);
}
