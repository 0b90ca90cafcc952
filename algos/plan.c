/* algos/plan.c - the plan container, its builder helpers, and plan_build,
 * which checks the arguments once and hands them to one generator.
 *
 * Generators never see bad arguments or an unsupported pair: plan_build
 * filters both, so each generator only has to be correct for every nranks,
 * count, root and in-place form. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "plan.h"

#include <stdint.h>
#include <stdlib.h>
#include <strings.h>

#include "error.h"

static const char *const algo_names[ALGO_COUNT] = {
    [ALGO_AUTO] = "auto",         [ALGO_RING] = "ring",     [ALGO_RHD] = "rhd",
    [ALGO_TREE] = "tree",         [ALGO_BRUCK] = "bruck",   [ALGO_PAIRWISE] = "pairwise",
    [ALGO_DIRECT] = "direct",     [ALGO_DISSEMINATION] = "dissemination",
    [ALGO_HIER] = "hier",
};

const char *algo_name(algo_t algo)
{
    return (unsigned)algo < ALGO_COUNT ? algo_names[algo] : "unknown";
}

/* Case-insensitive: the names come from environment variables users type. */
algo_t algo_from_name(const char *name)
{
    if (!name)
        return ALGO_COUNT;
    for (int i = 0; i < ALGO_COUNT; i++)
        if (!strcasecmp(name, algo_names[i]))
            return (algo_t)i;
    return ALGO_COUNT;
}

/* One bit per collective an algorithm implements as a flat plan. AUTO and
 * HIER have none: the runtime resolves them before a plan is built. */
#define BIT(k) (1u << (k))
static const unsigned supported[ALGO_COUNT] = {
    [ALGO_RING] = BIT(COLL_ALLREDUCE) | BIT(COLL_ALLGATHER) | BIT(COLL_REDUCE_SCATTER) |
                  BIT(COLL_BROADCAST) | BIT(COLL_REDUCE),
    [ALGO_RHD] = BIT(COLL_ALLREDUCE) | BIT(COLL_REDUCE_SCATTER) | BIT(COLL_ALLGATHER),
    [ALGO_TREE] = BIT(COLL_BROADCAST) | BIT(COLL_REDUCE) | BIT(COLL_ALLREDUCE),
    [ALGO_BRUCK] = BIT(COLL_ALLGATHER) | BIT(COLL_ALLTOALL),
    [ALGO_PAIRWISE] = BIT(COLL_ALLTOALL) | BIT(COLL_ALLTOALLV),
    [ALGO_DIRECT] = BIT(COLL_ALLTOALL) | BIT(COLL_ALLTOALLV) | BIT(COLL_ALLGATHER) |
                    BIT(COLL_REDUCE_SCATTER) | BIT(COLL_ALLREDUCE) | BIT(COLL_BROADCAST),
    [ALGO_DISSEMINATION] = BIT(COLL_BARRIER),
};

static int kind_valid(coll_kind_t kind) { return (unsigned)kind <= COLL_SENDRECV; }

int plan_supports(algo_t algo, coll_kind_t kind)
{
    if ((unsigned)algo >= ALGO_COUNT || !kind_valid(kind))
        return 0;
    return (supported[algo] & BIT(kind)) != 0;
}

/* ---- the growable arrays ---------------------------------------------------- */

void plan_reset(struct plan *p, algo_t algo)
{
    p->algo = algo;
    p->nsteps = 0;
    p->nops = 0;
    if (p->step_first)
        p->step_first[0] = 0;
    p->scratch_bytes = 0;
    p->result_buf = PLAN_RECVBUF;
    p->result_off = 0;
    p->result_bytes = 0;
}

void plan_free(struct plan *p)
{
    if (!p)
        return;
    free(p->step_first);
    free(p->ops);
    *p = (struct plan){0};
}

/* Makes room for `need` entries of `size` bytes in *arr (capacity *cap). */
static chorus_result_t grow(void **arr, uint32_t *cap, uint64_t need, size_t size)
{
    if (need <= *cap)
        return CHORUS_SUCCESS;
    if (need > UINT32_MAX)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: more than %u operations or steps",
                          (unsigned)UINT32_MAX);
    uint64_t cap2 = *cap ? (uint64_t)*cap * 2 : 16;
    if (cap2 < need)
        cap2 = need;
    if (cap2 > UINT32_MAX)
        cap2 = UINT32_MAX;
    void *q = realloc(*arr, (size_t)cap2 * size);
    if (!q)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "plan: out of memory for %llu entries",
                          (unsigned long long)cap2);
    *arr = q;
    *cap = (uint32_t)cap2;
    return CHORUS_SUCCESS;
}

static chorus_result_t grow_steps(struct plan *p, uint64_t entries)
{
    int was_empty = p->step_first == NULL;
    CHORUS_CHECK(grow((void **)&p->step_first, &p->steps_cap, entries, sizeof *p->step_first));
    if (was_empty)
        p->step_first[0] = 0;
    return CHORUS_SUCCESS;
}

/* An empty step is never kept: opening a step while the current one has no
 * op reuses it, so generators may skip empty blocks (count < nranks) without
 * leaving hollow steps that an executor or simulator would pay for. */
chorus_result_t plan_step(struct plan *p)
{
    if (p->nsteps > 0 && p->step_first[p->nsteps - 1] == p->nops)
        return CHORUS_SUCCESS;
    if (p->nsteps >= INT32_MAX - 1)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: too many steps");
    CHORUS_CHECK(grow_steps(p, (uint64_t)p->nsteps + 2));
    p->nsteps++;
    p->step_first[p->nsteps] = p->nops;
    return CHORUS_SUCCESS;
}

static chorus_result_t add_op(struct plan *p, struct plan_op op)
{
    if (p->nsteps == 0)
        CHORUS_CHECK(plan_step(p)); /* ops before any plan_step open the first step */
    CHORUS_CHECK(grow((void **)&p->ops, &p->ops_cap, (uint64_t)p->nops + 1, sizeof *p->ops));
    p->ops[p->nops++] = op;
    p->step_first[p->nsteps] = p->nops;
    return CHORUS_SUCCESS;
}

chorus_result_t plan_send(struct plan *p, int peer, plan_buf_t src, uint64_t src_off,
                          uint64_t bytes)
{
    return add_op(p, (struct plan_op){.kind = PLAN_SEND, .src_buf = (uint8_t)src,
                                      .dst_buf = (uint8_t)src, .peer = peer,
                                      .src_off = src_off, .dst_off = 0, .bytes = bytes});
}

chorus_result_t plan_recv(struct plan *p, int peer, plan_buf_t dst, uint64_t dst_off,
                          uint64_t bytes)
{
    return add_op(p, (struct plan_op){.kind = PLAN_RECV, .src_buf = (uint8_t)dst,
                                      .dst_buf = (uint8_t)dst, .peer = peer, .src_off = 0,
                                      .dst_off = dst_off, .bytes = bytes});
}

chorus_result_t plan_recv_reduce(struct plan *p, int peer, plan_buf_t src, uint64_t src_off,
                                 plan_buf_t dst, uint64_t dst_off, uint64_t bytes)
{
    return add_op(p, (struct plan_op){.kind = PLAN_RECV_REDUCE, .src_buf = (uint8_t)src,
                                      .dst_buf = (uint8_t)dst, .peer = peer,
                                      .src_off = src_off, .dst_off = dst_off, .bytes = bytes});
}

chorus_result_t plan_copy(struct plan *p, plan_buf_t src, uint64_t src_off, plan_buf_t dst,
                          uint64_t dst_off, uint64_t bytes)
{
    return add_op(p, (struct plan_op){.kind = PLAN_COPY, .src_buf = (uint8_t)src,
                                      .dst_buf = (uint8_t)dst, .peer = -1, .src_off = src_off,
                                      .dst_off = dst_off, .bytes = bytes});
}

/* ---- plan_build -------------------------------------------------------------- */

/* x * y * z fits in 64 bits (and in size_t), so generators can compute
 * buffer sizes and offsets without further checks. */
static int product_fits(uint64_t x, uint64_t y, uint64_t z)
{
    uint64_t lim = SIZE_MAX < UINT64_MAX ? (uint64_t)SIZE_MAX : UINT64_MAX;
    if (x != 0 && y > lim / x)
        return 0;
    uint64_t xy = x * y;
    return xy == 0 || z <= lim / xy;
}

static chorus_result_t check_alltoallv(const struct plan_args *a)
{
    if (!a->sendcounts || !a->sdispls || !a->recvcounts || !a->rdispls)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: alltoallv needs counts and "
                          "displacements");
    for (int q = 0; q < a->nranks; q++) {
        if (!product_fits(a->sendcounts[q] + (uint64_t)a->sdispls[q], a->esize, 1) ||
            !product_fits(a->recvcounts[q] + (uint64_t)a->rdispls[q], a->esize, 1) ||
            a->sendcounts[q] + (uint64_t)a->sdispls[q] < a->sdispls[q] ||
            a->recvcounts[q] + (uint64_t)a->rdispls[q] < a->rdispls[q])
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: alltoallv block for peer %d "
                              "is too large", q);
        if (a->in_place && (a->sendcounts[q] != a->recvcounts[q] ||
                            a->sdispls[q] != a->rdispls[q]))
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: in-place alltoallv needs equal "
                              "send and receive counts and displacements (peer %d)", q);
    }
    if (a->sendcounts[a->rank] != a->recvcounts[a->rank])
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: alltoallv: rank %d sends itself %zu "
                          "elements but expects %zu", a->rank, a->sendcounts[a->rank],
                          a->recvcounts[a->rank]);
    return CHORUS_SUCCESS;
}

chorus_result_t plan_check_args(const struct plan_args *a)
{
    if (a->nranks < 1)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: nranks %d < 1", a->nranks);
    if (a->rank < 0 || a->rank >= a->nranks)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: rank %d out of range [0, %d)",
                          a->rank, a->nranks);
    if (!kind_valid(a->kind))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: unknown collective %d", (int)a->kind);
    if (a->kind == COLL_BARRIER)
        return CHORUS_SUCCESS;
    if (a->esize == 0)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: element size 0");
    if ((a->kind == COLL_BROADCAST || a->kind == COLL_REDUCE) &&
        (a->root < 0 || a->root >= a->nranks))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: root %d out of range [0, %d)",
                          a->root, a->nranks);
    if (a->kind == COLL_ALLTOALLV)
        return check_alltoallv(a);
    /* The largest buffer of any collective is nranks * count elements. */
    if (!product_fits(a->count, a->esize, (uint64_t)a->nranks))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: count %zu x %zu bytes x %d ranks "
                          "overflows", a->count, a->esize, a->nranks);
    return CHORUS_SUCCESS;
}

static chorus_result_t generate(struct plan *p, const struct plan_args *a, algo_t algo)
{
    switch (algo) {
    case ALGO_RING: return ring_plan(p, a);
    case ALGO_RHD: return rhd_plan(p, a);
    case ALGO_TREE: return tree_plan(p, a);
    case ALGO_BRUCK: return bruck_plan(p, a);
    case ALGO_PAIRWISE: return pairwise_plan(p, a);
    case ALGO_DIRECT: return direct_plan(p, a);
    case ALGO_DISSEMINATION: return dissemination_plan(p, a);
    default: break;
    }
    return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "plan: no generator for '%s'", algo_name(algo));
}

/* Where the reduced result lies, so the executor knows what AVG divides. */
static void set_result(struct plan *p, const struct plan_args *a)
{
    uint64_t bytes = (uint64_t)a->count * a->esize;
    p->result_buf = PLAN_RECVBUF;
    p->result_off = 0;
    p->result_bytes = 0;
    if (a->kind == COLL_ALLREDUCE || a->kind == COLL_REDUCE_SCATTER ||
        (a->kind == COLL_REDUCE && a->rank == a->root))
        p->result_bytes = bytes;
}

chorus_result_t plan_build(struct plan *p, const struct plan_args *a, algo_t algo)
{
    if (!p || !a)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan_build: NULL %s", p ? "args" : "plan");
    plan_reset(p, algo);
    CHORUS_CHECK(plan_check_args(a));
    if ((unsigned)algo >= ALGO_COUNT)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "plan: unknown algorithm %d", (int)algo);
    if (!plan_supports(algo, a->kind))
        return CHORUS_ERR(CHORUS_INVALID_USAGE, "algorithm '%s' does not implement %s%s",
                          algo_name(algo), coll_name(a->kind),
                          algo == ALGO_AUTO || algo == ALGO_HIER
                              ? " (the runtime resolves it before building a plan)" : "");
    chorus_result_t res = generate(p, a, algo);
    if (res == CHORUS_SUCCESS)
        res = grow_steps(p, 1); /* step_first[0] exists even for an empty plan */
    if (res != CHORUS_SUCCESS) {
        plan_reset(p, algo);
        return res;
    }
    if (p->nsteps > 0 && p->step_first[p->nsteps - 1] == p->nops)
        p->nsteps--; /* a trailing step opened but never filled */
    set_result(p, a);
    return CHORUS_SUCCESS;
}
