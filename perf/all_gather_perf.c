/* all_gather_perf - chorus_allgather vs MPI_Allgather.
 * Every rank gives count elements; every rank receives all n blocks in rank
 * order. S = count x typesize x n (the whole receive buffer, as nccl-tests).
 * busbw = algbw x (n-1)/n: each rank must receive the n-1 blocks it lacks. */
#include "perf_common.h"

static void layout(perf_case_t *c)
{
    c->send_elems = c->count;
    c->recv_elems = c->count * (size_t)c->nranks;
    c->ip_send_off = (size_t)c->rank * c->count; /* in place: the input is my block */
    c->ip_recv_off = 0;
}

static chorus_result_t run_chorus(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return chorus_allgather(sendbuf, recvbuf, c->count, c->type, c->comm);
}

static int run_mpi(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return MPI_Allgather(sendbuf, (int)c->count, c->mpi_type, recvbuf, (int)c->count,
                         c->mpi_type, c->mpi_comm);
}

/* Block p of the output is rank p's input. */
static int expected(const perf_case_t *c, size_t i, double *value)
{
    *value = perf_input_value(c, (int)(i / c->count), i % c->count);
    return 1;
}

static double busbw_factor(int n) { return (double)(n - 1) / n; }

/* Ceiling (docs/perf.md): each rank copies all S bytes of its output (the
 * n-1 peer blocks and, out of place, its own). */
static double busbw_ceiling(int n, double copy_all, double copy_one)
{
    (void)copy_one;
    return n < 2 ? 0 : (double)(n - 1) / n * copy_all;
}

int main(int argc, char **argv)
{
    static const perf_coll_t coll = {
        .name = "all_gather", .chorus_call = "chorus_allgather", .mpi_call = "MPI_Allgather",
        .has_op = 0, .has_root = 0, .has_in_place = 1, .reduces_values = 0, .whole_buffer = 1,
        .busbw_factor = busbw_factor, .busbw_ceiling = busbw_ceiling, .layout = layout, .run_chorus = run_chorus,
        .run_mpi = run_mpi, .expected = expected};
    return perf_main(argc, argv, &coll);
}
