/* bootstrap_coll.c - collectives over the bootstrap ring (see bootstrap.h).
 *
 * Once init has joined every rank to its ring neighbours, init itself, comm
 * split and the transports exchange their setup data with these. They only
 * move bytes around the ring, never touching how it was built, so they live
 * apart from the join in bootstrap.c.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "bootstrap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_impl.h"
#include "error.h"

chorus_result_t chorus_bootstrap_allgather(struct chorus_bootstrap *bs, const void *mine,
                                           void *all, size_t size)
{
    if (!bs)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL bootstrap");
    if (size && (!mine || !all))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL buffer for a %zu-byte allgather", size);
    size_t n = (size_t)bs->nranks, me = (size_t)bs->rank;
    if (size && n > SIZE_MAX / size)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "allgather of %zu bytes x %zu ranks overflows",
                          size, n);
    if (bs->broken)
        return CHORUS_ERR(CHORUS_INVALID_USAGE,
                          "rank %d: the bootstrap is unusable after an earlier failure", bs->rank);
    char *out = (char *)all;
    if (size && out + me * size != (const char *)mine)
        memmove(out + me * size, mine, size);
    if (n == 1)
        return CHORUS_SUCCESS;

    /* Both neighbours must be at the same call with the same size. */
    uint8_t hs[64], hr[64];
    size_t hl;
    uint64_t seq = ++bs->seq;
    CHORUS_CHECK(chorus_bsmsg_encode_coll(hs, sizeof hs, seq, size, &hl));
    chorus_result_t res =
        chorus_socket_sendrecv(bs->next_fd, hs, hl, bs->next_name, bs->prev_fd, hr, hl,
                               bs->prev_name, chorus_socket_deadline(bs->timeout_ms));
    uint64_t pseq = 0, psize = 0;
    if (res == CHORUS_SUCCESS)
        res = chorus_bsmsg_decode_coll(hr, hl, &pseq, &psize);
    if (res == CHORUS_SUCCESS && (pseq != seq || psize != size))
        res = CHORUS_ERR(CHORUS_INVALID_USAGE,
                         "rank %d: bootstrap collective #%llu of %zu bytes, but its predecessor "
                         "%s is at #%llu with %llu bytes (every rank must make the same calls "
                         "in the same order)",
                         bs->rank, (unsigned long long)seq, size, bs->prev_name,
                         (unsigned long long)pseq, (unsigned long long)psize);
    for (size_t step = 0; res == CHORUS_SUCCESS && size && step + 1 < n; step++) {
        size_t send_blk = (me + n - step) % n;
        size_t recv_blk = (me + n - step - 1) % n;
        res = chorus_socket_sendrecv(bs->next_fd, out + send_blk * size, size, bs->next_name,
                                     bs->prev_fd, out + recv_blk * size, size, bs->prev_name,
                                     chorus_socket_deadline(bs->timeout_ms));
    }
    if (res != CHORUS_SUCCESS)
        bs->broken = 1;
    return res;
}

chorus_result_t chorus_bootstrap_barrier(struct chorus_bootstrap *bs)
{
    if (!bs)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "NULL bootstrap");
    if (bs->nranks == 1)
        return bs->broken ? CHORUS_ERR(CHORUS_INVALID_USAGE, "the bootstrap is unusable after an "
                                                             "earlier failure")
                          : CHORUS_SUCCESS;
    char *all = malloc((size_t)bs->nranks);
    if (!all)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    char one = 1;
    chorus_result_t res = chorus_bootstrap_allgather(bs, &one, all, 1);
    free(all);
    return res;
}

void chorus_bootstrap_set_timeout(struct chorus_bootstrap *bs, int timeout_ms)
{
    if (bs)
        bs->timeout_ms = timeout_ms;
}
