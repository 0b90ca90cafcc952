/* algos/bruck_plan.c - Bruck's algorithms: allgather and alltoall in
 * ceil(log2 n) communication steps for any n, for small messages where the
 * number of messages, not bytes, sets the time.
 *
 * Both work on blocks indexed relative to the rank (slot i concerns rank
 * r + i or r - i), which makes every phase the same shift by 2^k; local
 * rotations into and out of that order are COPY ops through scratch.
 *
 * Scratch: allgather n blocks (n * count * esize); alltoall n blocks plus
 * two packing areas of at most ceil(n / 2) blocks each (about 2n blocks). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "plan.h"

#include <stdlib.h>

#include "error.h"

/* Allgather. Slot i of scratch holds the block of rank r + i. In phase k
 * (d = 2^k) we already hold slots [0, d): we send the first min(d, n - d)
 * of them to r - d, which lacks exactly those, and receive slots
 * [d, d + cnt) from r + d. Finally slots are rotated into recvbuf. */
static chorus_result_t allgather(struct plan *p, const struct plan_args *a)
{
    const int n = a->nranks, r = a->rank;
    const uint64_t blk = (uint64_t)a->count * a->esize;
    p->scratch_bytes = (size_t)((uint64_t)n * blk);
    for (int d = 1; d < n; d *= 2) {
        const int cnt = d < n - d ? d : n - d;
        CHORUS_CHECK(plan_step(p));
        if (d == 1) /* slot 0 is our input: send it from sendbuf, keep a copy */
            CHORUS_CHECK(plan_copy(p, PLAN_SENDBUF, 0, PLAN_SCRATCH, 0, blk));
        CHORUS_CHECK(plan_send(p, (r - d + n) % n, d == 1 ? PLAN_SENDBUF : PLAN_SCRATCH, 0,
                               (uint64_t)cnt * blk));
        CHORUS_CHECK(plan_recv(p, (r + d) % n, PLAN_SCRATCH, (uint64_t)d * blk,
                               (uint64_t)cnt * blk));
    }
    /* slots [1, n - r) are ranks r + 1 .. n - 1; slots [n - r, n) ranks 0 .. r - 1 */
    CHORUS_CHECK(plan_step(p));
    if (n - r > 1)
        CHORUS_CHECK(plan_copy(p, PLAN_SCRATCH, blk, PLAN_RECVBUF, (uint64_t)(r + 1) * blk,
                               (uint64_t)(n - r - 1) * blk));
    if (r > 0)
        CHORUS_CHECK(plan_copy(p, PLAN_SCRATCH, (uint64_t)(n - r) * blk, PLAN_RECVBUF, 0,
                               (uint64_t)r * blk));
    if (!a->in_place)
        CHORUS_CHECK(plan_copy(p, PLAN_SENDBUF, 0, PLAN_RECVBUF, (uint64_t)r * blk, blk));
    return CHORUS_SUCCESS;
}

struct where {
    plan_buf_t buf;
    uint64_t off;
};

/* Alltoall. Slot i starts as our block for rank r + i. In phase k every
 * rank sends the slots with bit k set to r + 2^k and receives the same
 * slots from r - 2^k; after all phases slot i holds what rank r - i sent
 * us. Sends need one range, so a copy step before each phase packs those
 * slots into area P; they arrive packed in area Q. Steps stay hazard-free:
 *  - the copy step reads slots (wherever they are) and writes P, and moves
 *    slots received last phase that are not sent now out of Q into T[i];
 *    the slots it moves out and those it reads from T never coincide;
 *  - recvbuf is written only by the final copy step, so in place the
 *    inputs still read from sendbuf are intact until then (by then every
 *    slot but 0, which is already in place, has been replaced). */
static chorus_result_t alltoall_phases(struct plan *p, const struct plan_args *a,
                                       struct where *loc)
{
    const int n = a->nranks, r = a->rank;
    const uint64_t blk = (uint64_t)a->count * a->esize;
    int most = 0; /* packing area size, in blocks */
    for (int d = 1; d < n; d *= 2) {
        int c = 0;
        for (int i = 1; i < n; i++)
            c += (i & d) != 0;
        most = c > most ? c : most;
    }
    const uint64_t area_p = (uint64_t)n * blk, area_q = area_p + (uint64_t)most * blk;
    p->scratch_bytes = (size_t)(area_q + (uint64_t)most * blk);
    for (int i = 0; i < n; i++)
        loc[i] = (struct where){PLAN_SENDBUF, (uint64_t)((r + i) % n) * blk};
    for (int d = 1; d < n; d *= 2) {
        uint64_t packed = 0;
        CHORUS_CHECK(plan_step(p));
        for (int i = 1; i < n; i++) {
            if (i & d) {
                CHORUS_CHECK(plan_copy(p, loc[i].buf, loc[i].off, PLAN_SCRATCH,
                                       area_p + packed, blk));
                loc[i] = (struct where){PLAN_SCRATCH, area_q + packed}; /* after the receive */
                packed += blk;
            } else if (loc[i].buf == PLAN_SCRATCH && loc[i].off >= area_q) {
                CHORUS_CHECK(plan_copy(p, PLAN_SCRATCH, loc[i].off, PLAN_SCRATCH,
                                       (uint64_t)i * blk, blk));
                loc[i] = (struct where){PLAN_SCRATCH, (uint64_t)i * blk};
            }
        }
        CHORUS_CHECK(plan_step(p));
        CHORUS_CHECK(plan_send(p, (r + d) % n, PLAN_SCRATCH, area_p, packed));
        CHORUS_CHECK(plan_recv(p, (r - d + n) % n, PLAN_SCRATCH, area_q, packed));
    }
    CHORUS_CHECK(plan_step(p));
    for (int i = 1; i < n; i++)
        CHORUS_CHECK(plan_copy(p, loc[i].buf, loc[i].off, PLAN_RECVBUF,
                               (uint64_t)((r - i + n) % n) * blk, blk));
    if (!a->in_place)
        CHORUS_CHECK(plan_copy(p, PLAN_SENDBUF, (uint64_t)r * blk, PLAN_RECVBUF,
                               (uint64_t)r * blk, blk));
    return CHORUS_SUCCESS;
}

static chorus_result_t alltoall(struct plan *p, const struct plan_args *a)
{
    struct where *loc = malloc((size_t)a->nranks * sizeof *loc);
    if (!loc)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "bruck: out of memory for %d ranks", a->nranks);
    chorus_result_t res = alltoall_phases(p, a, loc);
    free(loc);
    return res;
}

chorus_result_t bruck_plan(struct plan *p, const struct plan_args *a)
{
    const uint64_t blk = (uint64_t)a->count * a->esize;
    if (blk == 0)
        return CHORUS_SUCCESS;
    if (a->nranks == 1) {
        if (a->in_place)
            return CHORUS_SUCCESS;
        return plan_copy(p, PLAN_SENDBUF, 0, PLAN_RECVBUF, 0, blk);
    }
    switch (a->kind) {
    case COLL_ALLGATHER: return allgather(p, a);
    case COLL_ALLTOALL: return alltoall(p, a);
    default: break;
    }
    return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "bruck: %s not implemented", coll_name(a->kind));
}
