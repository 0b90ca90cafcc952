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

int main(int argc, char **argv)
{
    static const perf_coll_t coll = {
        .name = "all_reduce", .chorus_call = "chorus_allreduce", .mpi_call = "MPI_Allreduce",
        .has_op = 1, .has_root = 0, .has_in_place = 1, .reduces_values = 1, .whole_buffer = 0,
        .busbw_factor = busbw_factor, .layout = layout, .run_chorus = run_chorus,
        .run_mpi = run_mpi, .expected = expected};
    return perf_main(argc, argv, &coll);
}
