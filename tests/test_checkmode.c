/*
 * test_checkmode.c - CHORUS_CHECK_CALLS=1: ranks that call different
 * collectives, or the same one with another count, type, op or root, or an
 * alltoallv whose counts do not pair up, all get CHORUS_INVALID_USAGE naming
 * the rank that differs, nothing runs, and the communicator stays usable
 * (a correct allreduce follows every case).
 *
 * Usage: CHORUS_CHECK_CALLS=1 mpirun -np N test_checkmode   (N >= 2)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>
#include "chorus.h"
#include "chorus_mpi.h"
#include "test_util.h"

static chorus_comm_t comm;
static int me, n;

#define LEN 64
static float sbuf[LEN * 16], rbuf[LEN * 16];

/* After each mismatch: the communicator still works. */
static void still_usable(void)
{
    for (int i = 0; i < LEN; i++)
        sbuf[i] = (float)(me + 1);
    if (!CHECK_OK(chorus_allreduce(sbuf, rbuf, LEN, CHORUS_FLOAT32, CHORUS_SUM, comm)))
        return;
    float want = (float)(n * (n + 1) / 2);
    CHECK(rbuf[0] == want && rbuf[LEN - 1] == want, "allreduce after the mismatch: %g, want %g",
          (double)rbuf[0], (double)want);
}

static void expect_mismatch(chorus_result_t got, int culprit, const char *what)
{
    CHECK_RES(got, CHORUS_INVALID_USAGE);
    const char *e = chorus_get_last_error();
    char who[32];
    snprintf(who, sizeof who, "rank %d ", culprit);
    CHECK(e && strstr(e, "CHORUS_CHECK_CALLS") && strstr(e, who),
          "%s: the error does not name rank %d: %s", what, culprit, e ? e : "(null)");
    still_usable();
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    tu_init();
    me = tu_rank;
    n = tu_nranks;
    const char *mode = getenv("CHORUS_CHECK_CALLS");
    if (n < 2 || !mode || strcmp(mode, "1")) {
        if (me == 0)
            fprintf(stderr, "test_checkmode: needs 2+ ranks and CHORUS_CHECK_CALLS=1\n");
        MPI_Finalize();
        return 2;
    }
    if (!CHECK_OK(chorus_comm_init_mpi(&comm, MPI_COMM_WORLD))) {
        MPI_Finalize();
        return 1;
    }
    int last = n - 1;
    still_usable(); /* matching calls pass */

    tu_set_case("allgather on the last rank, allreduce elsewhere");
    expect_mismatch(me == last ? chorus_allgather(sbuf, rbuf, 4, CHORUS_FLOAT32, comm)
                               : chorus_allreduce(sbuf, rbuf, 4, CHORUS_FLOAT32, CHORUS_SUM, comm),
                    last, tu_case());

    tu_set_case("count differs on the last rank");
    expect_mismatch(chorus_allreduce(sbuf, rbuf, me == last ? 5 : 4, CHORUS_FLOAT32, CHORUS_SUM,
                                     comm), last, tu_case());

    tu_set_case("type differs on rank 1");
    expect_mismatch(chorus_allreduce(sbuf, rbuf, 4, me == 1 ? CHORUS_INT32 : CHORUS_FLOAT32,
                                     CHORUS_SUM, comm), 1, tu_case());

    tu_set_case("op differs on the last rank");
    expect_mismatch(chorus_allreduce(sbuf, rbuf, 4, CHORUS_FLOAT32,
                                     me == last ? CHORUS_MAX : CHORUS_SUM, comm), last, tu_case());

    tu_set_case("broadcast root differs on rank 1");
    expect_mismatch(chorus_broadcast(sbuf, rbuf, 4, CHORUS_FLOAT32, me == 1 ? 1 : 0, comm), 1,
                    tu_case());

    tu_set_case("nonblocking: reduce root differs on the last rank");
    {
        chorus_request_t req = NULL;
        chorus_result_t r = chorus_ireduce(sbuf, rbuf, 4, CHORUS_FLOAT32, CHORUS_SUM,
                                           me == last ? last : 0, comm, &req);
        if (r == CHORUS_SUCCESS)
            r = chorus_wait(&req);
        expect_mismatch(r, last, tu_case());
    }

    tu_set_case("alltoallv: rank 0 sends 2 elements to rank 1, which expects 1");
    {
        size_t sc[16], sd[16], rc[16], rd[16];
        for (int q = 0; q < n; q++) {
            sc[q] = rc[q] = 1;
            sd[q] = rd[q] = (size_t)q * 2;
        }
        if (me == 0)
            sc[1] = 2;
        CHECK_RES(chorus_alltoallv(sbuf, sc, sd, rbuf, rc, rd, CHORUS_FLOAT32, comm),
                  CHORUS_INVALID_USAGE);
        const char *e = chorus_get_last_error();
        CHECK(e && strstr(e, "rank 0 sends 2 elements to rank 1, which expects 1"),
              "alltoallv: unexpected error text: %s", e ? e : "(null)");
        still_usable();
    }

    tu_set_case("barrier everywhere");
    CHECK_OK(chorus_barrier(comm));
    CHECK_OK(chorus_comm_destroy(comm));
    int rc = tu_summary("test_checkmode");
    MPI_Finalize();
    return rc;
}
