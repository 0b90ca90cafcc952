/* algos/rhd_plan.c - recursive halving and doubling: allreduce
 * (Rabenseifner: halving reduce-scatter + doubling allgather),
 * reduce_scatter (halving) and allgather (doubling); log2 steps.
 *
 * Any rank count: with pof2 the largest power of two <= n and rem = n - pof2,
 * the first 2 * rem ranks pair up (2i, 2i + 1). The even one folds: it hands
 * its input to its partner in a first step and gets its result back in a
 * last step; the pof2 remaining ranks ("participants", numbered nr = 0 ..
 * pof2 - 1 in rank order) run the power-of-two algorithm. This costs two
 * steps and, for allreduce, a full-vector message each way on folded pairs.
 *
 * Each participant owns a region of the vector; windows of consecutive
 * participants own consecutive regions, so every message is one range:
 *  - allreduce: the vector cut into pof2 blocks (remainder spread);
 *  - reduce_scatter / allgather: the blocks of the ranks it stands for
 *    (two for a folded pair, which are adjacent ranks, else its own).
 *
 * Short allreduce (at most RHD_DOUBLING_MAX bytes, plan.h) is recursive
 * doubling instead: log2 steps of the whole vector, each participant adding
 * its partner's partial sum (half the steps of Rabenseifner, whose bandwidth
 * saving is nothing at this size). Both partners compute a OP b and b OP a,
 * which are equal for every Chorus op, so the results stay bit-identical.
 *
 * Scratch: allreduce none (recursive doubling: the vector, to alternate
 * with recvbuf); allgather none; reduce_scatter up to the whole
 * input (nranks * count * esize) on participants, laid out like sendbuf,
 * since sendbuf is read-only and recvbuf holds one block. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "plan.h"

#include "error.h"

struct rhd {
    struct plan *p;
    const struct plan_args *a;
    int n, r, pof2, rem;
    int nr;       /* participant number; -1 if this rank folds */
    int by_rank;  /* regions are rank blocks (reduce_scatter, allgather) */
    uint64_t blk; /* bytes of one rank block (by_rank) */
};

static int real_rank(const struct rhd *h, int nr) { return nr < h->rem ? 2 * nr + 1 : nr + h->rem; }

/* Byte offset where participant nr's region starts; nr == pof2 gives the end. */
static uint64_t region(const struct rhd *h, int nr)
{
    if (h->by_rank) /* first rank stood for by nr */
        return (uint64_t)(nr < h->rem ? 2 * nr : nr + h->rem) * h->blk;
    uint64_t count = h->a->count, base = count / (uint64_t)h->pof2,
             extra = count % (uint64_t)h->pof2, b = (uint64_t)nr;
    return (b * base + (b < extra ? b : extra)) * h->a->esize;
}

static void need_scratch(struct plan *p, uint64_t end)
{
    if (end > p->scratch_bytes)
        p->scratch_bytes = (size_t)end;
}

/* Recursive halving: per stage the window of participants halves; we keep
 * the half holding us, send the other half to our partner in the mirror
 * half, and reduce what it sends for ours into acc. The partial vector is
 * read from cur (sendbuf at first, acc afterwards). Ends with our region
 * complete in acc, or in recvbuf[0] when last_to_recv. */
static chorus_result_t halving(struct rhd *h, plan_buf_t cur, plan_buf_t acc, int last_to_recv)
{
    for (int dist = h->pof2 / 2; dist >= 1; dist /= 2) {
        const int lo = h->nr & ~(2 * dist - 1), peer = real_rank(h, h->nr ^ dist);
        const int keep = (h->nr & dist) ? lo + dist : lo, give = (h->nr & dist) ? lo : lo + dist;
        const uint64_t ko = region(h, keep), kl = region(h, keep + dist) - ko;
        const uint64_t go = region(h, give), gl = region(h, give + dist) - go;
        plan_buf_t dst = acc;
        uint64_t dst_off = ko;
        if (dist == 1 && last_to_recv) {
            dst = PLAN_RECVBUF;
            dst_off = 0;
        }
        CHORUS_CHECK(plan_step(h->p));
        if (gl)
            CHORUS_CHECK(plan_send(h->p, peer, cur, go, gl));
        if (kl) {
            CHORUS_CHECK(plan_recv_reduce(h->p, peer, cur, ko, dst, dst_off, kl));
            if (dst == PLAN_SCRATCH)
                need_scratch(h->p, dst_off + kl);
        }
        cur = acc;
    }
    return CHORUS_SUCCESS;
}

/* Recursive doubling in recvbuf: per stage we swap our window's regions
 * with the partner's window, doubling what we hold. The first send may be
 * read from elsewhere (first_buf / first_off: sendbuf for allgather); with
 * copy_own, the first step also copies our own block into recvbuf (no other
 * op of that step touches it). */
static chorus_result_t doubling(struct rhd *h, plan_buf_t first_buf, uint64_t first_off,
                                int copy_own)
{
    for (int dist = 1; dist < h->pof2; dist *= 2) {
        const int peer_nr = h->nr ^ dist;
        const int mine = h->nr & ~(dist - 1), theirs = peer_nr & ~(dist - 1);
        const uint64_t mo = region(h, mine), ml = region(h, mine + dist) - mo;
        const uint64_t to = region(h, theirs), tl = region(h, theirs + dist) - to;
        CHORUS_CHECK(plan_step(h->p));
        if (dist == 1 && copy_own)
            CHORUS_CHECK(plan_copy(h->p, PLAN_SENDBUF, 0, PLAN_RECVBUF, (uint64_t)h->r * h->blk,
                                   h->blk));
        if (ml)
            CHORUS_CHECK(plan_send(h->p, real_rank(h, peer_nr), dist == 1 ? first_buf : PLAN_RECVBUF,
                                   dist == 1 ? first_off : mo, ml));
        if (tl)
            CHORUS_CHECK(plan_recv(h->p, real_rank(h, peer_nr), PLAN_RECVBUF, to, tl));
    }
    return CHORUS_SUCCESS;
}

static int folds(const struct rhd *h) { return h->nr < 0; }
static int is_pair_head(const struct rhd *h) { return h->r < 2 * h->rem && h->nr >= 0; }

/* An allreduce's folded rank: hands its vector to its pair head, takes the
 * result back two steps later (the current step is already open). */
static chorus_result_t fold_away(struct rhd *h, uint64_t bytes)
{
    CHORUS_CHECK(plan_send(h->p, h->r + 1, PLAN_SENDBUF, 0, bytes));
    CHORUS_CHECK(plan_step(h->p));
    return plan_recv(h->p, h->r + 1, PLAN_RECVBUF, 0, bytes);
}

static chorus_result_t allreduce(struct rhd *h)
{
    const uint64_t bytes = (uint64_t)h->a->count * h->a->esize;
    struct plan *p = h->p;
    CHORUS_CHECK(plan_step(p));
    if (folds(h))
        return fold_away(h, bytes);
    plan_buf_t cur = PLAN_SENDBUF;
    if (is_pair_head(h)) {
        CHORUS_CHECK(plan_recv_reduce(p, h->r - 1, PLAN_SENDBUF, 0, PLAN_RECVBUF, 0, bytes));
        cur = PLAN_RECVBUF;
    }
    CHORUS_CHECK(halving(h, cur, PLAN_RECVBUF, 0));
    CHORUS_CHECK(doubling(h, PLAN_RECVBUF, region(h, h->nr), 0));
    if (!is_pair_head(h))
        return CHORUS_SUCCESS;
    CHORUS_CHECK(plan_step(p));
    return plan_send(p, h->r - 1, PLAN_RECVBUF, 0, bytes);
}

static int log2_of(int pof2)
{
    int lg = 0;
    while ((1 << lg) < pof2)
        lg++;
    return lg;
}

/* Recursive doubling over the participants: every step sends the partial
 * sum held in cur and reduces the partner's into the other buffer (a step
 * may not write what it sends). The buffers alternate so that the last
 * write lands in recvbuf; in place, a rank without a fold step would then
 * write recvbuf (= sendbuf) while sending it, so it ends in scratch and
 * copies out. */
static chorus_result_t doubling_allreduce(struct rhd *h, uint64_t bytes)
{
    struct plan *p = h->p;
    CHORUS_CHECK(plan_step(p));
    if (folds(h))
        return fold_away(h, bytes);
    const int head = is_pair_head(h), writes = head + log2_of(h->pof2);
    const int copy_out = h->a->in_place && !head && writes % 2 == 1;
    plan_buf_t cur = PLAN_SENDBUF;
    int w = 0;
    /* write w goes to recvbuf when an even number of writes follow it */
#define TARGET(w) ((((writes - 1 - (w)) + copy_out) % 2) == 0 ? PLAN_RECVBUF : PLAN_SCRATCH)
    if (head) {
        plan_buf_t dst = TARGET(w);
        CHORUS_CHECK(plan_recv_reduce(p, h->r - 1, cur, 0, dst, 0, bytes));
        cur = dst;
        w++;
    }
    for (int dist = 1; dist < h->pof2; dist *= 2, w++) {
        const int peer = real_rank(h, h->nr ^ dist);
        plan_buf_t dst = TARGET(w);
        if (w > 0 || head)
            CHORUS_CHECK(plan_step(p));
        CHORUS_CHECK(plan_send(p, peer, cur, 0, bytes));
        CHORUS_CHECK(plan_recv_reduce(p, peer, cur, 0, dst, 0, bytes));
        cur = dst;
    }
#undef TARGET
    need_scratch(p, bytes);
    if (copy_out) {
        CHORUS_CHECK(plan_step(p));
        CHORUS_CHECK(plan_copy(p, PLAN_SCRATCH, 0, PLAN_RECVBUF, 0, bytes));
    }
    if (!head)
        return CHORUS_SUCCESS;
    CHORUS_CHECK(plan_step(p));
    return plan_send(p, h->r - 1, PLAN_RECVBUF, 0, bytes);
}

static chorus_result_t reduce_scatter(struct rhd *h)
{
    const uint64_t whole = (uint64_t)h->n * h->blk;
    struct plan *p = h->p;
    CHORUS_CHECK(plan_step(p));
    if (folds(h)) {
        CHORUS_CHECK(plan_send(p, h->r + 1, PLAN_SENDBUF, 0, whole));
        CHORUS_CHECK(plan_step(p));
        return plan_recv(p, h->r + 1, PLAN_RECVBUF, 0, h->blk);
    }
    if (!is_pair_head(h)) /* a lone participant's region is exactly its block */
        return halving(h, PLAN_SENDBUF, PLAN_SCRATCH, 1);
    CHORUS_CHECK(plan_recv_reduce(p, h->r - 1, PLAN_SENDBUF, 0, PLAN_SCRATCH, 0, whole));
    need_scratch(p, whole);
    CHORUS_CHECK(halving(h, PLAN_SCRATCH, PLAN_SCRATCH, 0));
    /* our region is blocks r - 1 and r: hand the partner its block */
    CHORUS_CHECK(plan_step(p));
    CHORUS_CHECK(plan_send(p, h->r - 1, PLAN_SCRATCH, (uint64_t)(h->r - 1) * h->blk, h->blk));
    return plan_copy(p, PLAN_SCRATCH, (uint64_t)h->r * h->blk, PLAN_RECVBUF, 0, h->blk);
}

static chorus_result_t allgather(struct rhd *h)
{
    const uint64_t whole = (uint64_t)h->n * h->blk, own = (uint64_t)h->r * h->blk;
    struct plan *p = h->p;
    if (!is_pair_head(h) && !folds(h)) /* our first send reads sendbuf itself */
        return doubling(h, PLAN_SENDBUF, 0, !h->a->in_place);
    CHORUS_CHECK(plan_step(p));
    if (folds(h)) { /* the partner's final message brings every block, ours included */
        CHORUS_CHECK(plan_send(p, h->r + 1, PLAN_SENDBUF, 0, h->blk));
        CHORUS_CHECK(plan_step(p));
        return plan_recv(p, h->r + 1, PLAN_RECVBUF, 0, whole);
    }
    if (!h->a->in_place) /* the fold step writes only the partner's block besides */
        CHORUS_CHECK(plan_copy(p, PLAN_SENDBUF, 0, PLAN_RECVBUF, own, h->blk));
    CHORUS_CHECK(plan_recv(p, h->r - 1, PLAN_RECVBUF, own - h->blk, h->blk));
    CHORUS_CHECK(doubling(h, PLAN_RECVBUF, region(h, h->nr), 0));
    CHORUS_CHECK(plan_step(p));
    return plan_send(p, h->r - 1, PLAN_RECVBUF, 0, whole);
}

chorus_result_t rhd_plan(struct plan *p, const struct plan_args *a)
{
    const uint64_t bytes = (uint64_t)a->count * a->esize;
    struct rhd h = {.p = p, .a = a, .n = a->nranks, .r = a->rank, .pof2 = 1, .blk = bytes};
    if (bytes == 0)
        return CHORUS_SUCCESS;
    if (h.n == 1)
        return a->in_place ? CHORUS_SUCCESS : plan_copy(p, PLAN_SENDBUF, 0, PLAN_RECVBUF, 0, bytes);
    while (h.pof2 * 2 <= h.n)
        h.pof2 *= 2;
    h.rem = h.n - h.pof2;
    if (h.r < 2 * h.rem)
        h.nr = h.r % 2 ? h.r / 2 : -1;
    else
        h.nr = h.r - h.rem;
    switch (a->kind) {
    case COLL_ALLREDUCE:
        return bytes <= RHD_DOUBLING_MAX ? doubling_allreduce(&h, bytes) : allreduce(&h);
    case COLL_REDUCE_SCATTER: h.by_rank = 1; return reduce_scatter(&h);
    case COLL_ALLGATHER: h.by_rank = 1; return allgather(&h);
    default: break;
    }
    return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "rhd: %s not implemented", coll_name(a->kind));
}
