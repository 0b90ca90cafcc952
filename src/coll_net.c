/* coll_net.c - operations on a communicator whose ranks span several hosts.
 *
 * Each collective runs either as one flat plan over all ranks (every pair
 * over the network transport), or node-aware ("hier"): shared memory among
 * the ranks of a host, a flat plan among the ranks with the same local index
 * on every host, shared memory again. The communicator's tuner table
 * decides (src/comm_tuner.c), honouring CHORUS_ALGO; an alltoallv first
 * agrees with its peers on the size it looks up (alltoallv_bytes).
 * Arguments were checked by coll_check(). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coll.h"
#include "comm.h"
#include "error.h"
#include "log.h"
#include "plan_exec.h"
#include "rdma/rdma.h"
#include "hier_plan.h"
#include "reduce.h"
#include "topo.h"
#include "tuner.h"
#include "shm_algos.h"
#include "transport.h"
#include "tunables.h"

/* How the executor runs a plan of this communicator over group (group rank
 * -> communicator rank) on the caller's buffers. */
static struct plan_exec exec_for(chorus_comm_t comm, const int *group, chorus_datatype_t type,
                                 chorus_op_t op, int avg_div, const void *sendbuf,
                                 void *recvbuf)
{
    return (struct plan_exec){
        .net = comm->net, .group_ranks = group, .type = type, .op = op, .avg_div = avg_div,
        .sendbuf = sendbuf, .recvbuf = recvbuf, .policy = &comm->net_policy,
        .abort_flag = &comm->aborted, .label = comm->label, .cache = &comm->exec_cache,
    };
}

/* Builds comm->plan (the one plan a communicator has at a time). */
static chorus_result_t build_plan(chorus_comm_t comm, const struct plan_args *pa, algo_t algo)
{
    plan_free(&comm->plan);
    CHORUS_CHECK(plan_build(&comm->plan, pa, algo));
    LOG_TRACE("coll", "%s: %s over %d ranks with %s (%d steps)", comm->label,
              coll_name(pa->kind), pa->nranks, algo_name(algo), comm->plan.nsteps);
    return CHORUS_SUCCESS;
}

/* A flat plan of algo over group, run to completion. */
static chorus_result_t run_plan(chorus_comm_t comm, const struct plan_args *pa, algo_t algo,
                                const int *group, const void *sendbuf, void *recvbuf,
                                chorus_datatype_t type, chorus_op_t op, int avg_div)
{
    CHORUS_CHECK(build_plan(comm, pa, algo));
    struct plan_exec x = exec_for(comm, group, type, op, avg_div, sendbuf, recvbuf);
    return plan_execute(&x, &comm->plan);
}

static chorus_result_t tmp_buffer(chorus_comm_t comm, size_t bytes, char **out)
{
    if (bytes > comm->hier_tmp_cap) {
        if (comm->hier_tmp) /* a cached RDMA registration must not outlive it */
            rdma_forget(comm->net, comm->hier_tmp, comm->hier_tmp_cap);
        void *p = realloc(comm->hier_tmp, bytes);
        if (!p)
            return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "%s: out of memory (%zu bytes of staging)",
                              comm->label, bytes);
        comm->hier_tmp = p;
        comm->hier_tmp_cap = bytes;
    }
    *out = comm->hier_tmp;
    return CHORUS_SUCCESS;
}

static int in_place(chorus_comm_t comm, const struct coll_args *a, size_t esize)
{
    const char *s = a->sendbuf, *r = a->recvbuf;
    size_t mine = (size_t)comm->rank * a->count * esize;
    switch (a->kind) {
    case COLL_ALLGATHER:
        return r && s == r + mine;
    case COLL_REDUCE_SCATTER:
        return s && r == s + mine;
    default:
        return s == r;
    }
}

/* Divides n elements at buf by div (the last step of AVG). */
static void divide(chorus_datatype_t type, void *buf, size_t n, int div)
{
    const void *src[1] = {buf};
    if (n)
        chorus_reduce_many(type, CHORUS_AVG, buf, src, 1, n, div);
}

/* ---- flat: one plan over every rank -------------------------------------- */

/* The plan arguments of a call over every rank, and the buffers the plan
 * runs on (a non-root's reduce result goes to staging; a non-root's
 * broadcast buffer is both). */
static chorus_result_t whole_call(chorus_comm_t comm, const struct coll_args *a,
                                  struct plan_args *pa, const void **sendbuf, void **recvbuf)
{
    size_t esize = a->kind == COLL_BARRIER ? 1 : chorus_type_size(a->type);
    *sendbuf = a->sendbuf;
    *recvbuf = a->recvbuf;
    *pa = (struct plan_args){
        .kind = a->kind, .nranks = comm->nranks, .rank = comm->rank, .count = a->count,
        .esize = esize, .root = a->root, .sendcounts = a->sendcounts, .sdispls = a->sdispls,
        .recvcounts = a->recvcounts, .rdispls = a->rdispls,
    };
    pa->in_place = in_place(comm, a, esize);
    if (a->kind == COLL_REDUCE && comm->rank != a->root) {
        /* Only the root's recvbuf is the caller's to write. */
        char *tmp;
        CHORUS_CHECK(tmp_buffer(comm, a->count * esize, &tmp));
        *recvbuf = tmp;
        pa->in_place = 0;
    } else if (a->kind == COLL_BROADCAST && comm->rank != a->root) {
        *sendbuf = *recvbuf; /* not read off the root */
        pa->in_place = 1;
    }
    return CHORUS_SUCCESS;
}

/* ---- composed: one plan over the levels of a topology file ---------------- */

/* The multi-level plan of algos/hier_plan.h over the communicator's
 * topology (CHORUS_TOPO_FILE describing exactly its ranks): group ranks are
 * positions, so the executor maps position -> rank (comm->pos_rank); the
 * tuner allows this only where positions order the data as ranks do. */
static chorus_result_t composed_run(chorus_comm_t comm, const struct coll_args *a,
                                    const struct tuner_choice *c)
{
    struct hier_args h = {0};
    const void *sendbuf;
    void *recvbuf;
    CHORUS_CHECK(whole_call(comm, a, &h.base, &sendbuf, &recvbuf));
    const struct topo *t = comm->topo;
    h.base.rank = t->rank_pos[comm->rank];
    h.base.root = a->kind == COLL_BROADCAST || a->kind == COLL_REDUCE ? t->rank_pos[a->root] : 0;
    h.nlevels = t->nlevels;
    for (int i = 0; i < t->nlevels; i++) {
        h.group[i] = t->levels[i].group;
        h.algo[i] = c->level_algo[i];
    }
    /* the pipelined allreduce's segment or reduce's piece, as the tuner priced it */
    h.pipe_min_bytes = a->kind == COLL_ALLREDUCE || a->kind == COLL_REDUCE ? c->segment : 0;
    plan_free(&comm->plan);
    CHORUS_CHECK(hier_plan(&comm->plan, &h));
    LOG_TRACE("coll", "%s: %s composed over %d levels (%d steps)", comm->label,
              coll_name(a->kind), t->nlevels, comm->plan.nsteps);
    struct plan_exec x = exec_for(comm, comm->pos_rank, a->type, a->op, comm->nranks, sendbuf,
                                  recvbuf);
    return plan_execute(&x, &comm->plan);
}

static chorus_result_t flat_run(chorus_comm_t comm, const struct coll_args *a, algo_t algo)
{
    const void *sendbuf;
    void *recvbuf;
    struct plan_args pa;
    CHORUS_CHECK(whole_call(comm, a, &pa, &sendbuf, &recvbuf));
    return run_plan(comm, &pa, algo, comm->layout.identity, sendbuf, recvbuf, a->type, a->op,
                    comm->nranks);
}

/* Point to point: one step with the send and/or the receive. */
static chorus_result_t p2p_run(chorus_comm_t comm, const struct coll_args *a)
{
    size_t esize = chorus_type_size(a->type);
    struct plan *p = &comm->plan;
    plan_free(p);
    plan_reset(p, ALGO_DIRECT);
    CHORUS_CHECK(plan_step(p));
    if (a->kind == COLL_SEND || a->kind == COLL_SENDRECV)
        CHORUS_CHECK(plan_send(p, a->root, PLAN_SENDBUF, 0, a->count * esize));
    if (a->kind == COLL_RECV)
        CHORUS_CHECK(plan_recv(p, a->root, PLAN_RECVBUF, 0, a->count * esize));
    if (a->kind == COLL_SENDRECV)
        CHORUS_CHECK(plan_recv(p, a->source, PLAN_RECVBUF, 0, a->recvcount * esize));
    struct plan_exec x = exec_for(comm, comm->layout.identity, a->type, CHORUS_SUM, 1,
                                  a->sendbuf, a->recvbuf);
    return plan_execute(&x, p);
}

/* ---- node-aware compositions ---------------------------------------------- */

/* The flat plan among the ranks with my local index, one per host. */
static chorus_result_t cross_run(chorus_comm_t comm, coll_kind_t kind, size_t count,
                                 chorus_datatype_t type, chorus_op_t op, int root_host,
                                 const void *sendbuf, void *recvbuf)
{
    const struct comm_layout *l = &comm->layout;
    size_t esize = chorus_type_size(type);
    struct plan_args pa = {.kind = kind, .nranks = l->nhosts, .rank = l->host,
                           .count = count, .esize = esize, .root = root_host};
    size_t mine = (size_t)l->host * count * esize;
    pa.in_place = kind == COLL_ALLGATHER        ? (const char *)sendbuf == (char *)recvbuf + mine
                  : kind == COLL_REDUCE_SCATTER ? (char *)recvbuf == (const char *)sendbuf + mine
                                                : sendbuf == recvbuf;
    size_t phase_bytes = count * esize;
    algo_t algo = tuner_level_best(comm->topo, comm->cross_level, kind, phase_bytes,
                                   &comm->algos);
    return run_plan(comm, &pa, algo, l->cross, sendbuf, recvbuf, type, op, 1);
}

/* The network phase of one node-aware allreduce segment, in flight while
 * shared memory works on its neighbours. */
struct cross_flight {
    chorus_comm_t comm;
    struct plan_exec x;
    struct plan_run run;
    int active;
};

static chorus_result_t cross_idle(void *arg)
{
    struct cross_flight *f = arg;
    return f->active ? plan_run_poll(&f->run) : CHORUS_SUCCESS;
}

static chorus_result_t cross_start(struct cross_flight *f, size_t count, chorus_datatype_t type,
                                   chorus_op_t op, void *buf)
{
    chorus_comm_t comm = f->comm;
    const struct comm_layout *l = &comm->layout;
    size_t esize = chorus_type_size(type);
    struct plan_args pa = {.kind = COLL_ALLREDUCE, .nranks = l->nhosts, .rank = l->host,
                           .count = count, .esize = esize, .in_place = 1};
    algo_t algo = tuner_level_best(comm->topo, comm->cross_level, COLL_ALLREDUCE,
                                   count * esize, &comm->algos);
    CHORUS_CHECK(build_plan(comm, &pa, algo));
    f->x = exec_for(comm, l->cross, type, op, 1, buf, buf);
    CHORUS_CHECK(plan_run_start(&f->run, &f->x, &comm->plan));
    f->active = 1;
    return CHORUS_SUCCESS;
}

static chorus_result_t cross_finish(struct cross_flight *f)
{
    f->active = 0; /* wait drives it from here; the shm hook must not */
    return plan_run_wait(&f->run);
}

/* Segments of the node-aware allreduce, each a multiple of ppn elements. */
/* Elements of one local rank's slice per segment: CHORUS_HIER_SEGMENT when
 * set, else the tuner's choice for this size (0: one segment). */
static size_t hier_segment_slice(chorus_comm_t comm, size_t q, size_t esize, size_t tuned)
{
    size_t seg = (size_t)chorus_tunables()->HIER_SEGMENT, L = (size_t)comm->layout.ppn;
    if (seg == 0)
        seg = tuned;
    if (seg == 0 || q * L * esize <= seg)
        return q;
    size_t slice = seg / (L * esize);
    return slice ? slice : 1;
}

/* Shared-memory reduce-scatter, the network allreduce of each local rank's
 * slice among the ranks with its local index, shared-memory allgather; in
 * segments, so that the network phase of segment k runs while shared memory
 * reduces segment k + 1 and gathers segment k - 1 (the shared-memory waits
 * drive the network plan through shm->idle). One network plan is in flight
 * at a time, so messages on a pair stay in one order on both sides. */
static chorus_result_t hier_allreduce(chorus_comm_t comm, const struct coll_args *a,
                                      size_t tuned_segment)
{
    const struct comm_layout *l = &comm->layout;
    size_t es = chorus_type_size(a->type), L = (size_t)l->ppn, q = a->count / L;
    size_t r = a->count % L, lr = (size_t)l->local_rank;
    chorus_op_t op = a->op == CHORUS_AVG ? CHORUS_SUM : a->op;
    char *recv = a->recvbuf;
    const char *send = a->sendbuf;
    size_t slice = hier_segment_slice(comm, q, es, tuned_segment), nseg = q ? (q + slice - 1) / slice : 0;
    struct cross_flight f = {.comm = comm};
    chorus_result_t res = CHORUS_SUCCESS;
    /* segment k: elements [L*k*slice, L*(k*slice + len_k)), my part at + lr*len_k */
#define SEG_LEN(k) ((k) + 1 < nseg ? slice : q - (k) * slice)
#define SEG_BASE(k) (L * (k) * slice * es)
#define SEG_MINE(k) (recv + SEG_BASE(k) + lr * SEG_LEN(k) * es)
    if (nseg)
        res = shm_reduce_scatter(comm->shm, send + SEG_BASE(0), SEG_MINE(0), SEG_LEN(0),
                                 a->type, op);
    comm->shm->idle = cross_idle;
    comm->shm->idle_arg = &f;
    for (size_t k = 0; res == CHORUS_SUCCESS && k < nseg; k++) {
        res = cross_start(&f, SEG_LEN(k), a->type, op, SEG_MINE(k));
        if (res == CHORUS_SUCCESS && k + 1 < nseg)
            res = shm_reduce_scatter(comm->shm, send + SEG_BASE(k + 1), SEG_MINE(k + 1),
                                     SEG_LEN(k + 1), a->type, op);
        if (res == CHORUS_SUCCESS && k > 0)
            res = shm_allgather(comm->shm, SEG_MINE(k - 1), recv + SEG_BASE(k - 1),
                                SEG_LEN(k - 1), a->type);
        if (res == CHORUS_SUCCESS)
            res = cross_finish(&f);
        if (res == CHORUS_SUCCESS && a->op == CHORUS_AVG)
            divide(a->type, SEG_MINE(k), SEG_LEN(k), comm->nranks);
    }
    f.active = 0;
    comm->shm->idle = NULL;
    if (res == CHORUS_SUCCESS && nseg)
        res = shm_allgather(comm->shm, SEG_MINE(nseg - 1), recv + SEG_BASE(nseg - 1),
                            SEG_LEN(nseg - 1), a->type);
#undef SEG_LEN
#undef SEG_BASE
#undef SEG_MINE
    CHORUS_CHECK(res);
    if (r) {
        /* The last count % ppn elements: every local rank reduces them over
         * shared memory and across, which is cheap for so few elements. */
        char *tail = recv + L * q * es;
        CHORUS_CHECK(shm_allreduce(comm->shm, send + L * q * es, tail, r, a->type, op));
        CHORUS_CHECK(cross_run(comm, COLL_ALLREDUCE, r, a->type, op, 0, tail, tail));
        if (a->op == CHORUS_AVG)
            divide(a->type, tail, r, comm->nranks);
    }
    return CHORUS_SUCCESS;
}

/* Across first (each local rank gathers its local index's blocks from every
 * host, so all of a host's links work at once), then inside the host. */
static chorus_result_t hier_allgather(chorus_comm_t comm, const struct coll_args *a)
{
    const struct comm_layout *l = &comm->layout;
    size_t es = chorus_type_size(a->type), blk = a->count * es;
    size_t H = (size_t)l->nhosts, L = (size_t)l->ppn;
    if (blk == 0) /* nothing to move (and memcpy must not see NULL buffers) */
        return CHORUS_SUCCESS;
    char *tmp;
    CHORUS_CHECK(tmp_buffer(comm, (H + H * L) * blk, &tmp));
    char *across = tmp, *node = tmp + H * blk;
    CHORUS_CHECK(cross_run(comm, COLL_ALLGATHER, a->count, a->type, CHORUS_SUM, 0, a->sendbuf,
                           across));
    CHORUS_CHECK(shm_allgather(comm->shm, across, node, H * a->count, a->type));
    /* node holds [local index][host]; the output is in rank order. */
    for (size_t lr = 0; lr < L; lr++)
        for (size_t h = 0; h < H; h++)
            memcpy((char *)a->recvbuf + (size_t)l->grid[h * L + lr] * blk,
                   node + (lr * H + h) * blk, blk);
    return CHORUS_SUCCESS;
}

/* Inside first (local rank lr sums, over its host, the blocks of every
 * rank with local index lr), then across among those ranks. */
static chorus_result_t hier_reduce_scatter(chorus_comm_t comm, const struct coll_args *a)
{
    const struct comm_layout *l = &comm->layout;
    size_t es = chorus_type_size(a->type), blk = a->count * es;
    size_t H = (size_t)l->nhosts, L = (size_t)l->ppn;
    chorus_op_t op = a->op == CHORUS_AVG ? CHORUS_SUM : a->op;
    if (blk == 0) /* nothing to move (and memcpy must not see NULL buffers) */
        return CHORUS_SUCCESS;
    char *tmp;
    CHORUS_CHECK(tmp_buffer(comm, (H * L + H) * blk, &tmp));
    char *packed = tmp, *partial = tmp + H * L * blk;
    for (size_t lr = 0; lr < L; lr++)
        for (size_t h = 0; h < H; h++)
            memcpy(packed + (lr * H + h) * blk,
                   (const char *)a->sendbuf + (size_t)l->grid[h * L + lr] * blk, blk);
    CHORUS_CHECK(shm_reduce_scatter(comm->shm, packed, partial, H * a->count, a->type, op));
    CHORUS_CHECK(cross_run(comm, COLL_REDUCE_SCATTER, a->count, a->type, op, 0, partial,
                           a->recvbuf));
    if (a->op == CHORUS_AVG)
        divide(a->type, a->recvbuf, a->count, comm->nranks);
    return CHORUS_SUCCESS;
}

/* Aggregated per node: inside the node, local rank l collects every block
 * bound for local index l on any host; across, one message per host pair
 * carries a whole node's blocks (H - 1 messages per rank instead of n - 1). */
static chorus_result_t hier_alltoall(chorus_comm_t comm, const struct coll_args *a)
{
    const struct comm_layout *l = &comm->layout;
    size_t es = chorus_type_size(a->type), blk = a->count * es;
    size_t H = (size_t)l->nhosts, L = (size_t)l->ppn, n = H * L;
    if (blk == 0) /* nothing to move (and memcpy must not see NULL buffers) */
        return CHORUS_SUCCESS;
    char *tmp;
    CHORUS_CHECK(tmp_buffer(comm, 2 * n * blk, &tmp));
    char *x = tmp, *y = tmp + n * blk;
    /* x[l'][h] = my block for rank (h, l') */
    for (size_t lr = 0; lr < L; lr++)
        for (size_t h = 0; h < H; h++)
            memcpy(x + (lr * H + h) * blk,
                   (const char *)a->sendbuf + (size_t)l->grid[h * L + lr] * blk, blk);
    /* y[l][h] = local rank l's block for rank (h, my local index) */
    CHORUS_CHECK(shm_alltoall(comm->shm, x, y, H * a->count, a->type));
    /* x[h][l] = y[l][h]: what goes to host h, in local-rank order */
    for (size_t lr = 0; lr < L; lr++)
        for (size_t h = 0; h < H; h++)
            memcpy(x + (h * L + lr) * blk, y + (lr * H + h) * blk, blk);
    /* y[h][l] = rank (h, l)'s block for me */
    CHORUS_CHECK(cross_run(comm, COLL_ALLTOALL, L * a->count, a->type, CHORUS_SUM, 0, x, y));
    for (size_t h = 0; h < H; h++)
        for (size_t lr = 0; lr < L; lr++)
            memcpy((char *)a->recvbuf + (size_t)l->grid[h * L + lr] * blk,
                   y + (h * L + lr) * blk, blk);
    return CHORUS_SUCCESS;
}

static chorus_result_t hier_broadcast(chorus_comm_t comm, const struct coll_args *a)
{
    const struct comm_layout *l = &comm->layout;
    int root_local = l->rank_local[a->root], root_host = l->rank_host[a->root];
    if (l->local_rank == root_local) {
        const void *src = comm->rank == a->root ? a->sendbuf : a->recvbuf;
        CHORUS_CHECK(cross_run(comm, COLL_BROADCAST, a->count, a->type, CHORUS_SUM, root_host,
                               src, a->recvbuf));
    }
    return shm_broadcast(comm->shm, a->recvbuf, a->recvbuf, a->count, a->type, root_local);
}

static chorus_result_t hier_reduce(chorus_comm_t comm, const struct coll_args *a)
{
    const struct comm_layout *l = &comm->layout;
    int root_local = l->rank_local[a->root], root_host = l->rank_host[a->root];
    size_t bytes = a->count * chorus_type_size(a->type);
    chorus_op_t op = a->op == CHORUS_AVG ? CHORUS_SUM : a->op;
    char *tmp;
    CHORUS_CHECK(tmp_buffer(comm, bytes ? bytes : 1, &tmp));
    CHORUS_CHECK(shm_reduce(comm->shm, a->sendbuf, tmp, a->count, a->type, op, root_local));
    if (l->local_rank != root_local)
        return CHORUS_SUCCESS;
    void *out = comm->rank == a->root ? a->recvbuf : tmp;
    CHORUS_CHECK(cross_run(comm, COLL_REDUCE, a->count, a->type, op, root_host, tmp, out));
    if (comm->rank == a->root && a->op == CHORUS_AVG)
        divide(a->type, out, a->count, comm->nranks);
    return CHORUS_SUCCESS;
}

static chorus_result_t hier_barrier(chorus_comm_t comm)
{
    CHORUS_CHECK(shm_barrier(comm->shm));
    if (comm->layout.local_rank == 0)
        CHORUS_CHECK(cross_run(comm, COLL_BARRIER, 0, CHORUS_UINT8, CHORUS_SUM, 0, NULL, NULL));
    return shm_barrier(comm->shm);
}

/* ---- which size a call looks up ------------------------------------------- */

/* The bytes one alltoallv rank moves: the larger of what it sends and what
 * it receives (saturating: the counts were checked one block at a time). */
static uint64_t a2av_load(chorus_comm_t comm, const struct coll_args *a)
{
    uint64_t es = chorus_type_size(a->type), sent = 0, got = 0;
    for (int q = 0; q < comm->nranks; q++) {
        uint64_t s = a->sendcounts[q] * es, r = a->recvcounts[q] * es;
        sent = sent > UINT64_MAX - s ? UINT64_MAX : sent + s;
        got = got > UINT64_MAX - r ? UINT64_MAX : got + r;
    }
    return sent > got ? sent : got;
}

/* 1 when the table names one algorithm for kind at every size, so the size
 * does not matter. Scanning the 41 entries costs nanoseconds, nothing next
 * to a message over the network. */
static int table_constant(const struct tuner *tu, coll_kind_t kind)
{
    for (int b = 1; b < TUNER_NBUCKETS; b++)
        if (tu->table[kind][b].algo != tu->table[kind][0].algo)
            return 0;
    return 1;
}

/* The size an alltoallv looks up: the largest load of any rank (a2av_load)
 * divided by the number of ranks, i.e. the average block of the busiest
 * rank, which sets the pace. For equal counts that is the block for one
 * peer, the figure the model prices for alltoall and what chorus_tune and
 * chorus_sim look up, so all three agree. Ranks' counts differ, and a rank
 * choosing by its own figure could run another plan than its peers and wait
 * for them for good; so when the choice depends on the size, the ranks first
 * agree on the largest load with an allreduce (MAX) of one uint64 through
 * this same path: the tuner's choice for 8 bytes, bounded by
 * CHORUS_TIMEOUT_MS like every wait. docs/tuner.md states the cost. */
static chorus_result_t alltoallv_bytes(chorus_comm_t comm, const struct coll_args *a,
                                       size_t *bytes)
{
    *bytes = 0;
    if (table_constant(comm->tuner, COLL_ALLTOALLV))
        return CHORUS_SUCCESS;
    uint64_t mine = a2av_load(comm, a), most = 0;
    struct coll_args agree = {.kind = COLL_ALLREDUCE, .sendbuf = &mine, .recvbuf = &most,
                              .count = 1, .type = CHORUS_UINT64, .op = CHORUS_MAX};
    CHORUS_CHECK(coll_net_run(comm, &agree));
    uint64_t per_peer = most / (uint64_t)comm->nranks;
    *bytes = per_peer > SIZE_MAX ? SIZE_MAX : (size_t)per_peer;
    LOG_DEBUG("tuner", "%s: alltoallv: largest load of any rank %" PRIu64 " B (this rank's %"
              PRIu64 " B): looks up %zu B per peer", comm->label, most, mine, *bytes);
    return CHORUS_SUCCESS;
}

/* The bytes a call looks up in the table, as the tuner counts them
 * (algo_select.h): the vector, one rank's block, or the block for one peer. */
static chorus_result_t call_bytes(chorus_comm_t comm, const struct coll_args *a, size_t *bytes)
{
    if (a->kind == COLL_ALLTOALLV)
        return alltoallv_bytes(comm, a, bytes);
    *bytes = a->kind == COLL_BARRIER ? 0 : a->count * chorus_type_size(a->type);
    return CHORUS_SUCCESS;
}

/* The choice as a label: a composition over a topology file as chorus_sim
 * names it (hier(ring,rhd), every level, innermost first), the node-aware
 * one as chorus_tune names it (hier:ring@512K, the network phase), so that
 * a trace can be compared with the tool that shows the same decision. */
static void choice_label(chorus_comm_t comm, const struct tuner_choice *c, char *out, size_t cap)
{
    size_t k = (size_t)snprintf(out, cap, "%s", algo_name(c->algo));
    if (c->algo != ALGO_HIER)
        return;
    if (comm->pos_rank) {
        int any = 0;
        for (int i = 0; i < comm->topo->nlevels; i++)
            any |= c->level_algo[i] != ALGO_AUTO;
        for (int i = 0; any && i < comm->topo->nlevels && k < cap; i++)
            k += (size_t)snprintf(out + k, cap - k, "%c%s", i ? ',' : '(',
                                  algo_name(c->level_algo[i]));
        if (any && k < cap)
            snprintf(out + k, cap - k, ")");
        return;
    }
    char sep = ':';
    for (int i = 0; i < TOPO_MAX_LEVELS && k < cap; i++)
        if (c->level_algo[i] != ALGO_AUTO) {
            k += (size_t)snprintf(out + k, cap - k, "%c%s", sep, algo_name(c->level_algo[i]));
            sep = '/';
        }
    if (c->segment && k < cap) { /* 64K .. 64M, powers of two (tuner.c) */
        size_t kib = c->segment >> 10;
        if (kib % 1024)
            snprintf(out + k, cap - k, "@%zuK", kib);
        else
            snprintf(out + k, cap - k, "@%zuM", kib >> 10);
    }
}

chorus_result_t coll_net_run(chorus_comm_t comm, const struct coll_args *a)
{
    if (a->kind == COLL_SEND || a->kind == COLL_RECV || a->kind == COLL_SENDRECV)
        return p2p_run(comm, a);
    size_t bytes;
    CHORUS_CHECK(call_bytes(comm, a, &bytes));
    const struct tuner_choice *c = tuner_lookup(comm->tuner, a->kind, bytes);
    if (CHORUS_LOG_TRACE <= chorus_log_level()) {
        /* one line per call naming the decision (tests/tuner_match.sh,
         * tests/runtime_sim_match.sh read it) */
        char label[96];
        choice_label(comm, c, label, sizeof label);
        if (a->kind == COLL_ALLTOALLV)
            LOG_TRACE("coll", "%s: alltoallv (busiest rank's bytes / ranks) looks up %zu B: %s",
                      comm->label, bytes, label);
        else
            LOG_TRACE("coll", "%s: %s of %zu x %zu B looks up %zu B: %s", comm->label,
                      coll_name(a->kind), a->count,
                      a->kind == COLL_BARRIER ? (size_t)0 : chorus_type_size(a->type), bytes,
                      label);
    }
    if (c->algo != ALGO_HIER)
        return flat_run(comm, a, c->algo);
    if (comm->pos_rank)
        return composed_run(comm, a, c);
    switch (a->kind) {
    case COLL_ALLREDUCE:
        return hier_allreduce(comm, a, c->segment);
    case COLL_ALLGATHER:
        return hier_allgather(comm, a);
    case COLL_REDUCE_SCATTER:
        return hier_reduce_scatter(comm, a);
    case COLL_ALLTOALL:
        return hier_alltoall(comm, a);
    case COLL_BROADCAST:
        return hier_broadcast(comm, a);
    case COLL_REDUCE:
        return hier_reduce(comm, a);
    case COLL_BARRIER:
        return hier_barrier(comm);
    default:
        return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "%s: no node-aware %s", comm->label,
                          coll_name(a->kind));
    }
}
