/* reduce_scatter_perf - chorus_reduce_scatter vs MPI_Reduce_scatter_block.
 * Every rank gives n blocks of count elements; rank r receives the reduction
 * of block r over all ranks. S = count x typesize x n (the whole send buffer).
 * busbw = algbw x (n-1)/n: each rank must take in n-1 partial blocks. */
#include "perf_common.h"

static void layout(perf_case_t *c)
{
    c->send_elems = c->count * (size_t)c->nranks;
    c->recv_elems = c->count;
    c->ip_send_off = 0;
    c->ip_recv_off = (size_t)c->rank * c->count; /* in place: my block of the input */
}

static chorus_result_t run_chorus(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return chorus_reduce_scatter(sendbuf, recvbuf, c->count, c->type, c->op, c->comm);
}

static int run_mpi(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return MPI_Reduce_scatter_block(sendbuf, recvbuf, (int)c->count, c->mpi_type, c->mpi_op,
                                    c->mpi_comm);
}

static int expected(const perf_case_t *c, size_t i, double *value)
{
    *value = perf_reduce_value(c, (size_t)c->rank * c->count + i);
    return 1;
}

static double busbw_factor(int n) { return (double)(n - 1) / n; }

/* Ceiling (docs/perf.md): each rank reads n inputs of S/n and writes S/n:
 * (n+1)/n x S of traffic, (n+1)/2n x S copied at copy_all. */
static double busbw_ceiling(int n, double copy_all, double copy_one)
{
    (void)copy_one;
    return n < 2 ? 0 : 2.0 * (n - 1) * copy_all / (n + 1);
}

int main(int argc, char **argv)
{
    static const perf_coll_t coll = {
        .name = "reduce_scatter", .chorus_call = "chorus_reduce_scatter",
        .mpi_call = "MPI_Reduce_scatter_block", .has_op = 1, .has_root = 0, .has_in_place = 1,
        .reduces_values = 1, .whole_buffer = 1, .busbw_factor = busbw_factor, .busbw_ceiling = busbw_ceiling, .layout = layout,
        .run_chorus = run_chorus, .run_mpi = run_mpi, .expected = expected};
    return perf_main(argc, argv, &coll);
}
