/* alltoall_perf - chorus_alltoall vs MPI_Alltoall.
 * Every rank sends block p (count elements) of its buffer to rank p and
 * receives rank p's block for it into block p. S = count x typesize x n (the
 * whole buffer). busbw = algbw x (n-1)/n: all but one's own block cross ranks. */
#include "perf_common.h"

static void layout(perf_case_t *c)
{
    c->send_elems = c->recv_elems = c->count * (size_t)c->nranks;
    c->ip_send_off = c->ip_recv_off = 0; /* in place: sendbuf == recvbuf */
}

static chorus_result_t run_chorus(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return chorus_alltoall(sendbuf, recvbuf, c->count, c->type, c->comm);
}

static int run_mpi(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return MPI_Alltoall(sendbuf, (int)c->count, c->mpi_type, recvbuf, (int)c->count,
                        c->mpi_type, c->mpi_comm);
}

/* Block p of the output is block <my rank> of rank p's input. */
static int expected(const perf_case_t *c, size_t i, double *value)
{
    size_t p = i / c->count, k = i % c->count;
    *value = perf_input_value(c, (int)p, (size_t)c->rank * c->count + k);
    return 1;
}

static double busbw_factor(int n) { return (double)(n - 1) / n; }

/* Ceiling (docs/perf.md): each rank copies all S bytes of its output (the
 * n-1 peer blocks and its own). */
static double busbw_ceiling(int n, double copy_all, double copy_one)
{
    (void)copy_one;
    return n < 2 ? 0 : (double)(n - 1) / n * copy_all;
}

int main(int argc, char **argv)
{
    static const perf_coll_t coll = {
        .name = "alltoall", .chorus_call = "chorus_alltoall", .mpi_call = "MPI_Alltoall",
        .has_op = 0, .has_root = 0, .has_in_place = 1, .reduces_values = 0, .whole_buffer = 1,
        .busbw_factor = busbw_factor, .busbw_ceiling = busbw_ceiling, .layout = layout, .run_chorus = run_chorus,
        .run_mpi = run_mpi, .expected = expected};
    return perf_main(argc, argv, &coll);
}
