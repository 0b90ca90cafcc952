/* algos/plan_append.c - appends one plan to another under a peer and buffer
 * remapping: the tool hierarchical compositions (algos/hier_plan.c) are
 * built from. A flat plan written for a group of g ranks becomes a phase of
 * a bigger plan: its peers are renamed to the big group's ranks, its three
 * buffers land at offsets of the big plan's buffers.
 *
 * Each step of src becomes one new step of dst, so the order of messages
 * between any two ranks (what matching relies on) is the order of src, and
 * dst's own steps before the append are never merged with src's (their ops
 * could touch the same bytes). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "hier_plan.h"

#include "error.h"

/* src range [off, off + bytes) of buffer b, placed in dst; 0 on overflow. */
static int place(uint64_t off, uint64_t bytes, uint64_t base, uint64_t *out)
{
    if (off > UINT64_MAX - base || off + base > UINT64_MAX - bytes)
        return 0;
    *out = off + base;
    return 1;
}

static void need_scratch(struct plan *p, uint64_t end)
{
    if (end > p->scratch_bytes)
        p->scratch_bytes = (size_t)end;
}

static chorus_result_t append_op(struct plan *dst, const struct plan_op *o, const int *peer_map,
                                 const plan_buf_t buf_map[PLAN_NBUFS],
                                 const uint64_t buf_base[PLAN_NBUFS])
{
    const plan_buf_t sb = buf_map[o->src_buf], db = buf_map[o->dst_buf];
    const int reads = o->kind != PLAN_RECV, writes = o->kind != PLAN_SEND;
    uint64_t so = 0, dof = 0;
    if ((reads && !place(o->src_off, o->bytes, buf_base[o->src_buf], &so)) ||
        (writes && !place(o->dst_off, o->bytes, buf_base[o->dst_buf], &dof)))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_append: a range overflows 64 bits");
    if (writes && db == PLAN_SENDBUF)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_append: buffer %d, which the plan "
                          "writes, is mapped to the send buffer", (int)o->dst_buf);
    if (reads && sb == PLAN_SCRATCH)
        need_scratch(dst, so + o->bytes);
    if (writes && db == PLAN_SCRATCH)
        need_scratch(dst, dof + o->bytes);
    int peer = -1;
    if (o->kind != PLAN_COPY) {
        if (!peer_map || o->peer < 0)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_append: no peer map for peer %d",
                              (int)o->peer);
        peer = peer_map[o->peer];
    }
    switch (o->kind) {
    case PLAN_SEND: return plan_send(dst, peer, sb, so, o->bytes);
    case PLAN_RECV: return plan_recv(dst, peer, db, dof, o->bytes);
    case PLAN_RECV_REDUCE: return plan_recv_reduce(dst, peer, sb, so, db, dof, o->bytes);
    case PLAN_COPY: return plan_copy(dst, sb, so, db, dof, o->bytes);
    default: break;
    }
    return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_append: bad op kind %d", (int)o->kind);
}

chorus_result_t plan_append(struct plan *dst, const struct plan *src, const int *peer_map,
                            const plan_buf_t buf_map[PLAN_NBUFS],
                            const uint64_t buf_base[PLAN_NBUFS])
{
    if (!dst || !src || !buf_map || !buf_base)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_append: NULL argument");
    for (int b = 0; b < PLAN_NBUFS; b++)
        if ((unsigned)buf_map[b] >= PLAN_NBUFS)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_append: buffer %d mapped to bad "
                              "buffer %d", b, (int)buf_map[b]);
    for (int s = 0; s < src->nsteps; s++) {
        if (src->step_first[s] == src->step_first[s + 1])
            continue; /* an empty step costs an executor a round for nothing */
        CHORUS_CHECK(plan_step(dst)); /* a fresh step (or dst's last one, if empty) */
        for (uint32_t i = src->step_first[s]; i < src->step_first[s + 1]; i++) {
            const struct plan_op *o = &src->ops[i];
            if (o->kind > PLAN_COPY || o->src_buf >= PLAN_NBUFS || o->dst_buf >= PLAN_NBUFS)
                return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_append: malformed op %u", i);
            CHORUS_CHECK(append_op(dst, o, peer_map, buf_map, buf_base));
        }
    }
    /* what src asks of scratch, even where no op of it reaches the end */
    if (src->scratch_bytes && buf_map[PLAN_SCRATCH] == PLAN_SCRATCH) {
        uint64_t end;
        if (!place(0, src->scratch_bytes, buf_base[PLAN_SCRATCH], &end))
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_append: scratch overflows");
        need_scratch(dst, end + src->scratch_bytes);
    }
    return CHORUS_SUCCESS;
}

chorus_result_t plan_append_step(struct plan *dst, const struct plan *src, int s,
                                 const int *peer_map, const plan_buf_t buf_map[PLAN_NBUFS],
                                 const uint64_t buf_base[PLAN_NBUFS])
{
    if (!dst || !src || !buf_map || !buf_base || s < 0 || s >= src->nsteps)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_append_step: bad argument");
    for (int b = 0; b < PLAN_NBUFS; b++)
        if ((unsigned)buf_map[b] >= PLAN_NBUFS)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_append_step: buffer %d mapped to "
                              "bad buffer %d", b, (int)buf_map[b]);
    for (uint32_t i = src->step_first[s]; i < src->step_first[s + 1]; i++) {
        const struct plan_op *o = &src->ops[i];
        if (o->kind > PLAN_COPY || o->src_buf >= PLAN_NBUFS || o->dst_buf >= PLAN_NBUFS)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_append_step: malformed op %u", i);
        CHORUS_CHECK(append_op(dst, o, peer_map, buf_map, buf_base));
    }
    return CHORUS_SUCCESS;
}
