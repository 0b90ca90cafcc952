/* sendrecv_perf - chorus_sendrecv vs MPI_Sendrecv.
 * Rank r sends count elements to (r+1)%n and receives count from (r-1+n)%n: a
 * ring shift, every rank sending and receiving at once. S = count x typesize.
 * busbw = algbw. No in-place variant: sending from and receiving into one
 * buffer at once has no defined result (MPI forbids it too). */
#include "perf_common.h"

static void layout(perf_case_t *c)
{
    c->send_elems = c->recv_elems = c->count;
    c->ip_send_off = c->ip_recv_off = 0;
}

static int next_rank(const perf_case_t *c) { return (c->rank + 1) % c->nranks; }
static int prev_rank(const perf_case_t *c) { return (c->rank - 1 + c->nranks) % c->nranks; }

static chorus_result_t run_chorus(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return chorus_sendrecv(sendbuf, c->count, next_rank(c), recvbuf, c->count, prev_rank(c),
                           c->type, c->comm);
}

static int run_mpi(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return MPI_Sendrecv(sendbuf, (int)c->count, c->mpi_type, next_rank(c), 0, recvbuf,
                        (int)c->count, c->mpi_type, prev_rank(c), 0, c->mpi_comm,
                        MPI_STATUS_IGNORE);
}

static int expected(const perf_case_t *c, size_t i, double *value)
{
    *value = perf_input_value(c, prev_rank(c), i);
    return 1;
}

static double busbw_factor(int n) { (void)n; return 1.0; }

/* Ceiling (docs/perf.md): every rank copies S from its neighbour, all at once. */
static double busbw_ceiling(int n, double copy_all, double copy_one)
{
    (void)copy_one;
    return n < 2 ? 0 : copy_all;
}

int main(int argc, char **argv)
{
    static const perf_coll_t coll = {
        .name = "sendrecv", .chorus_call = "chorus_sendrecv", .mpi_call = "MPI_Sendrecv",
        .has_op = 0, .has_root = 0, .has_in_place = 0, .reduces_values = 0, .whole_buffer = 0,
        .busbw_factor = busbw_factor, .busbw_ceiling = busbw_ceiling, .layout = layout, .run_chorus = run_chorus,
        .run_mpi = run_mpi, .expected = expected};
    return perf_main(argc, argv, &coll);
}
