/* all_reduce_perf - chorus_allreduce vs MPI_Allreduce.
 * Every rank gives count elements and receives their reduction over all ranks.
 * S = count x typesize. busbw = algbw x 2(n-1)/n: a ring allreduce sends and
 * receives 2(n-1)/n x S per rank, the least any algorithm moves per rank. */
#include "perf_common.h"

static void layout(perf_case_t *c)
{
    c->send_elems = c->recv_elems = c->count;
    c->ip_send_off = c->ip_recv_off = 0; /* in place: sendbuf == recvbuf */
}

static chorus_result_t run_chorus(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return chorus_allreduce(sendbuf, recvbuf, c->count, c->type, c->op, c->comm);
}

static int run_mpi(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return MPI_Allreduce(sendbuf, recvbuf, (int)c->count, c->mpi_type, c->mpi_op, c->mpi_comm);
}

static int expected(const perf_case_t *c, size_t i, double *value)
{
    *value = perf_reduce_value(c, i);
    return 1;
}

static double busbw_factor(int n) { return 2.0 * (n - 1) / n; }

/* Ceiling (docs/perf.md): each rank reduces its 1/n of S (reads n inputs,
 * writes one: (n+1)/n x S of traffic), then copies the other n-1 results
 * (2(n-1)/n x S): (3n-1)/n x S, i.e. (3n-1)/2n x S copied at copy_all. */
static double busbw_ceiling(int n, double copy_all, double copy_one)
{
    (void)copy_one;
    return n < 2 ? 0 : 4.0 * (n - 1) * copy_all / (3.0 * n - 1);
}

int main(int argc, char **argv)
{
    static const perf_coll_t coll = {
        .name = "all_reduce", .chorus_call = "chorus_allreduce", .mpi_call = "MPI_Allreduce",
        .has_op = 1, .has_root = 0, .has_in_place = 1, .reduces_values = 1, .whole_buffer = 0,
        .busbw_factor = busbw_factor, .busbw_ceiling = busbw_ceiling, .layout = layout, .run_chorus = run_chorus,
        .run_mpi = run_mpi, .expected = expected};
    return perf_main(argc, argv, &coll);
}
