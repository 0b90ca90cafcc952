/* chorus_counts.c - preloaded after libchorus_mpi by tests/mpich_testsuite.sh:
 * at MPI_Finalize, writes what the interposer did in this process (its own
 * counters, chorus_mpi_get_counts) to $CHORUS_MPICH_COUNTS_DIR/counts.<pid>,
 * so that the script can prove that an unmodified MPICH test's collectives
 * really ran on Chorus. One line:
 *     rank R loaded 1 chorus N mpi M allreduce C/M bcast C/M ...
 * ("loaded 0" when libchorus_mpi is not in the process). Only collectives
 * with a nonzero count are listed. A file, not stderr: mpiexec may
 * interleave the ranks' lines, and MPICH's rule is that a passing test
 * prints nothing but "No Errors". */
#include <dlfcn.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef int (*get_counts_fn)(int, unsigned long long *, unsigned long long *);
typedef const char *(*coll_name_fn)(int);

static void write_counts(void)
{
    const char *dir = getenv("CHORUS_MPICH_COUNTS_DIR");
    if (!dir || !*dir)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/counts.%ld", dir, (long)getpid());
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    int rank = -1;
    PMPI_Comm_rank(MPI_COMM_WORLD, &rank);
    get_counts_fn get = (get_counts_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "chorus_mpi_get_counts");
    coll_name_fn name = (coll_name_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "chorus_mpi_coll_name");
    if (!get || !name) {
        fprintf(f, "rank %d loaded 0 chorus 0 mpi 0\n", rank);
        fclose(f);
        return;
    }
    unsigned long long on = 0, off = 0;
    char detail[2048] = "";
    size_t len = 0;
    for (int c = 0; name(c); c++) {
        unsigned long long a = 0, b = 0;
        get(c, &a, &b);
        on += a;
        off += b;
        if ((a || b) && len < sizeof detail)
            len += (size_t)snprintf(detail + len, sizeof detail - len, " %s %llu/%llu", name(c),
                                    a, b);
    }
    fprintf(f, "rank %d loaded 1 chorus %llu mpi %llu%s\n", rank, on, off, detail);
    fclose(f);
}

int MPI_Finalize(void)
{
    write_counts();
    return PMPI_Finalize();
}
