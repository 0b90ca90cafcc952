/* broadcast_perf - chorus_broadcast vs MPI_Bcast.
 * The root's count elements end up in every rank's receive buffer (the root's
 * too). S = count x typesize. busbw = algbw: every byte must leave the root
 * once, whatever the algorithm. */
#include "perf_common.h"

static void layout(perf_case_t *c)
{
    c->send_elems = c->recv_elems = c->count;
    c->ip_send_off = c->ip_recv_off = 0; /* in place: sendbuf == recvbuf */
}

static chorus_result_t run_chorus(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    return chorus_broadcast(sendbuf, recvbuf, c->count, c->type, c->root, c->comm);
}

/* MPI_Bcast has one buffer: the root sends from its send buffer. */
static int run_mpi(const perf_case_t *c, const void *sendbuf, void *recvbuf)
{
    void *buf = c->rank == c->root ? (void *)sendbuf : recvbuf;
    return MPI_Bcast(buf, (int)c->count, c->mpi_type, c->root, c->mpi_comm);
}

static int expected(const perf_case_t *c, size_t i, double *value)
{
    *value = perf_input_value(c, c->root, i);
    return 1;
}

static double busbw_factor(int n) { (void)n; return 1.0; }

/* Ceiling (docs/perf.md): every rank copies S into its receive buffer (the
 * root too, out of place), all at once. */
static double busbw_ceiling(int n, double copy_all, double copy_one)
{
    (void)copy_one;
    return n < 2 ? 0 : copy_all;
}

int main(int argc, char **argv)
{
    static const perf_coll_t coll = {
        .name = "broadcast", .chorus_call = "chorus_broadcast", .mpi_call = "MPI_Bcast",
        .has_op = 0, .has_root = 1, .has_in_place = 1, .mpi_in_place = 1, .reduces_values = 0, .whole_buffer = 0,
        .busbw_factor = busbw_factor, .busbw_ceiling = busbw_ceiling, .layout = layout, .run_chorus = run_chorus,
        .run_mpi = run_mpi, .expected = expected};
    return perf_main(argc, argv, &coll);
}
