/* algos/plan_stride.c - lets a plan read its send buffer in another block
 * order than the one it was written for, without a copy.
 *
 * The composed reduce_scatter (algos/hier_plan.c) runs its first level's
 * flat plan on the input in level order (the level-0 coordinate slowest),
 * while the caller's input lies in rank order (the level-0 coordinate
 * fastest). Copying it over costs the whole input at copy speed before a
 * byte moves; instead, every op of that plan is cut where a block of the
 * level order ends, and each part of a send-buffer range is read where that
 * block really lies.
 *
 * Both ends of a message must cut it alike, or their byte counts differ.
 * They do when every range of the plan, in whatever buffer, starts at an
 * offset congruent (mod the block size) to the position in its rank block
 * of the data it holds: then each side cuts at the same positions. The flat
 * reduce-scatters (ring, rhd, direct) keep that when a rank block is a
 * whole number of blocks: their ranges are rank blocks, chunks of one at
 * its own offset, or scratch laid out like the input. An op whose source
 * and destination disagree mod the block is refused (it would be cut
 * wrongly), so a generator breaking the rule fails loudly, not silently. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "hier_plan.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Bytes of op o up to the next cut from byte k of it on. */
static uint64_t part(const struct plan_op *o, uint64_t grid_off, uint64_t k, uint64_t blk)
{
    const uint64_t left = o->bytes - k, to_cut = blk - (grid_off + k) % blk;
    return left < to_cut ? left : to_cut;
}

static int reads_src(const struct plan_op *o) { return o->kind != PLAN_RECV; }

/* The offset whose position in its block decides the cuts. */
static uint64_t grid_of(const struct plan_op *o)
{
    return reads_src(o) ? o->src_off : o->dst_off;
}

static uint64_t moved(uint64_t off, uint64_t blk, uint64_t nblocks, const uint64_t *place)
{
    const uint64_t b = off / blk;
    return b < nblocks ? place[b] + off % blk : off; /* past the end: a 0-byte op's offset */
}

chorus_result_t plan_stride_input(struct plan *p, uint64_t blk, uint64_t nblocks,
                                  const uint64_t *place)
{
    if (!blk)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_stride_input: blocks of 0 bytes");
    uint64_t nops = 0;
    for (uint32_t i = 0; i < p->nops; i++) {
        const struct plan_op *o = &p->ops[i];
        if (o->kind == PLAN_RECV_REDUCE || o->kind == PLAN_COPY) {
            if (o->src_off % blk != o->dst_off % blk)
                return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_stride_input: op %u reads at "
                                  "%llu and writes at %llu, not alike in blocks of %llu", i,
                                  (unsigned long long)o->src_off,
                                  (unsigned long long)o->dst_off, (unsigned long long)blk);
        }
        uint64_t k = 0;
        do {
            k += o->bytes ? part(o, grid_of(o), k, blk) : 0;
            nops++;
        } while (k < o->bytes);
    }
    if (nops > UINT32_MAX)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_stride_input: %llu ops",
                          (unsigned long long)nops);
    struct plan_op *ops = malloc((size_t)(nops ? nops : 1) * sizeof *ops);
    uint32_t *sf = malloc((size_t)(p->nsteps + 1) * sizeof *sf);
    if (!ops || !sf) {
        free(ops);
        free(sf);
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "plan_stride_input: out of memory");
    }
    uint32_t n = 0;
    for (int s = 0; s < p->nsteps; s++) {
        sf[s] = n;
        for (uint32_t i = p->step_first[s]; i < p->step_first[s + 1]; i++) {
            const struct plan_op *o = &p->ops[i];
            const uint64_t g = grid_of(o);
            uint64_t k = 0;
            do {
                struct plan_op x = *o;
                x.bytes = o->bytes ? part(o, g, k, blk) : 0;
                x.src_off = o->src_off + k;
                x.dst_off = o->dst_off + k;
                if (reads_src(o) && o->src_buf == PLAN_SENDBUF)
                    x.src_off = moved(x.src_off, blk, nblocks, place);
                if (o->kind != PLAN_SEND && o->dst_buf == PLAN_SENDBUF)
                    x.dst_off = moved(x.dst_off, blk, nblocks, place);
                ops[n++] = x;
                k += x.bytes;
            } while (k < o->bytes);
        }
    }
    sf[p->nsteps] = n;
    free(p->ops);
    free(p->step_first);
    p->ops = ops;
    p->nops = n;
    p->ops_cap = (uint32_t)(nops ? nops : 1);
    p->step_first = sf;
    p->steps_cap = (uint32_t)p->nsteps + 1;
    return CHORUS_SUCCESS;
}
