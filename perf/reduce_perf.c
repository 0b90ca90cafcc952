/* reduce_perf - chorus_reduce vs MPI_Reduce.
 * The reduction of every rank's count elements lands in the root's receive
 * buffer; other ranks' receive buffers must stay untouched. S = count x
 * typesize. busbw = algbw: every byte must reach the root once. */
#include "perf_common.h"

static void layout(perf_case_t *c)
{
    c->send_elems = c->recv_elems = c->count;
    c->ip_send_off = c->ip_recv_off = 0; /* in place: sendbuf == recvbuf */
}

static chorus_result_t run_chorus(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return chorus_reduce(sendbuf, recvbuf, c->count, c->type, c->op, c->root, c->comm);
}

static int run_mpi(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return MPI_Reduce(sendbuf, recvbuf, (int)c->count, c->mpi_type, c->mpi_op, c->root,
                      c->mpi_comm);
}

static int expected(const perf_case_t *c, size_t i, double *value)
{
    if (c->rank != c->root)
        return 0; /* not written */
    *value = perf_reduce_value(c, i);
    return 1;
}

static double busbw_factor(int n) { (void)n; return 1.0; }

/* Ceiling (docs/perf.md): the root reduces its 1/n of S (reads n inputs,
 * writes one) and copies the other n-1 partial results in, as in allreduce:
 * (3n-1)/2n x S copied at copy_all, while the other ranks reduce theirs. */
static double busbw_ceiling(int n, double copy_all, double copy_one)
{
    (void)copy_one;
    return n < 2 ? 0 : 2.0 * n * copy_all / (3.0 * n - 1);
}

int main(int argc, char **argv)
{
    static const perf_coll_t coll = {
        .name = "reduce", .chorus_call = "chorus_reduce", .mpi_call = "MPI_Reduce",
        .has_op = 1, .has_root = 1, .has_in_place = 1, .reduces_values = 1, .whole_buffer = 0,
        .busbw_factor = busbw_factor, .busbw_ceiling = busbw_ceiling, .layout = layout, .run_chorus = run_chorus,
        .run_mpi = run_mpi, .expected = expected};
    return perf_main(argc, argv, &coll);
}
