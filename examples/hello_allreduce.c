/* hello_allreduce.c - the smallest Chorus program: every rank contributes
 * its rank number, and all ranks get the sum. Build against an installed
 * Chorus and run under MPICH's launcher:
 *
 *   mpicc hello_allreduce.c $(pkg-config --cflags --libs chorus) -o hello
 *   mpirun -np 4 ./hello
 */
#include <mpi.h>
#include <stdio.h>

#include <chorus.h>
#include <chorus_mpi.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    chorus_comm_t comm;
    chorus_result_t res = chorus_comm_init_mpi(&comm, MPI_COMM_WORLD);
    if (res != CHORUS_SUCCESS) {
        fprintf(stderr, "chorus init failed: %s\n", chorus_get_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int rank, nranks;
    chorus_comm_rank(comm, &rank);
    chorus_comm_count(comm, &nranks);

    double value = rank, sum = 0;
    res = chorus_allreduce(&value, &sum, 1, CHORUS_FLOAT64, CHORUS_SUM, comm);
    if (res != CHORUS_SUCCESS) {
        fprintf(stderr, "allreduce failed: %s\n", chorus_get_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int ok = sum == nranks * (nranks - 1) / 2.0;
    printf("rank %d of %d: sum of ranks = %g (%s)\n", rank, nranks, sum, ok ? "ok" : "WRONG");

    chorus_comm_destroy(comm);
    MPI_Finalize();
    return ok ? 0 : 1;
}
