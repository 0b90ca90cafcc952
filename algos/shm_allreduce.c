/* shm_allreduce.c - allreduce, reduce and reduce-scatter on one node.
 *
 * Small allreduce ("one shot"): every rank copies its input to its
 * workspace, then every rank reduces all inputs in rank order, so all ranks
 * get bit-identical results after one synchronisation.
 * Large allreduce: per round, a shared-memory reduce-scatter (rank r reduces
 * slice r of every input, reading its own slice straight from its send
 * buffer) followed by an allgather of the reduced slices. Each rank reduces
 * 1/n of the data, so the reduction work is spread over all cores.
 * Large allreduce and reduce-scatter whose buffers every rank allocated with
 * chorus_mem_alloc read each other's buffers instead (algos/shm_zcopy.c). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "shm_algos.h"

#include "error.h"

#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "reduce.h"

#define MAX_STACK_SRCS 64

/* The srcs array: on the stack for ordinary rank counts. */
struct srcs {
    const void *stack[MAX_STACK_SRCS];
    const void **v;
};
static chorus_result_t srcs_init(struct srcs *x, int n)
{
    x->v = n <= MAX_STACK_SRCS ? x->stack : malloc((size_t)n * sizeof *x->v);
    return x->v ? CHORUS_SUCCESS : CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
}
static void srcs_fini(struct srcs *x)
{
    if (x->v != x->stack)
        free((void *)x->v);
}

static chorus_result_t one_shot(struct shm_comm *s, const char *send, char *recv, size_t count,
                                chorus_datatype_t type, chorus_op_t op, int root)
{
    const int n = s->nranks, me = s->rank;
    size_t bytes = count * chorus_type_size(type);
    uint32_t st = shm_next_step(s);
    struct srcs x;
    CHORUS_CHECK(srcs_init(&x, n));
    chorus_result_t res = CHORUS_SUCCESS;
    if (root < 0 || root != me) {
        res = shm_reserve(s, st);
        if (res == CHORUS_SUCCESS) {
            memcpy(shm_buf(s, me, st), send, bytes);
            shm_post(s, &s->ctrl[me]->ready, st);
        }
    }
    if (res == CHORUS_SUCCESS && (root < 0 || root == me)) {
        res = shm_wait_all(s, SHM_READY, st);
        if (res == CHORUS_SUCCESS) {
            shm_mark_synced(s, st);
            for (int q = 0; q < n; q++)
                x.v[q] = q == me ? (const void *)send : shm_buf(s, q, st);
            chorus_reduce_many(type, op, recv, x.v, n, count, n);
        }
    }
    if (res == CHORUS_SUCCESS)
        shm_post(s, &s->ctrl[me]->done, st);
    srcs_fini(&x);
    return res;
}

/* Small allreduce when ranks outnumber cores. Every rank stages its input
 * and counts itself in on one shared counter; the last to arrive reduces all
 * inputs and publishes the result; the others copy it. A rank that is
 * scheduled after the result is out finishes in that one run, instead of
 * every rank reading every other rank's flag and data, which with four or
 * more processes per core costs many more context switches. */
static chorus_result_t last_arriver(struct shm_comm *s, const char *send, char *recv,
                                    size_t count, chorus_datatype_t type, chorus_op_t op)
{
    const int n = s->nranks, me = s->rank;
    const size_t bytes = count * chorus_type_size(type);
    const size_t result_at = (bytes + 63) / 64 * 64;
    struct shm_ctrl *hub = s->ctrl[0];
    uint32_t st = shm_next_step(s);
    CHORUS_CHECK(shm_reserve(s, st));
    memcpy(shm_buf(s, me, st), send, bytes);
    /* "ready" is not needed by the algorithm; it lets a timeout name the
     * ranks that never arrived. */
    shm_post(s, &s->ctrl[me]->ready, st);
    /* The counter only moves in this algorithm, so it is compared with the
     * number of calls to it, not with the step number. */
    uint32_t call = ++s->arrivals;
    uint32_t arrived = atomic_fetch_add(&hub->arrivals.value, 1) + 1;
    if (arrived == call * (uint32_t)n) {
        /* Everyone has staged step st, so everyone is done with st - 1. */
        shm_mark_synced(s, st);
        struct srcs x;
        CHORUS_CHECK(srcs_init(&x, n));
        for (int q = 0; q < n; q++)
            x.v[q] = shm_buf(s, q, st);
        char *result = shm_buf(s, me, st) + result_at;
        chorus_reduce_many(type, op, result, x.v, n, count, n);
        srcs_fini(&x);
        memcpy(recv, result, bytes);
        atomic_store_explicit(&hub->result_owner[st & 1].value, (uint32_t)me,
                              memory_order_relaxed);
        chorus_flag_store(&hub->result.value, st, &hub->sleepers.value);
    } else {
        CHORUS_CHECK(shm_wait_shared(s, &hub->result, st, SHM_READY));
        shm_mark_synced(s, st);
        int owner = (int)atomic_load_explicit(&hub->result_owner[st & 1].value,
                                              memory_order_relaxed);
        memcpy(recv, shm_buf(s, owner, st) + result_at, bytes);
    }
    shm_post(s, &s->ctrl[me]->done, st);
    return CHORUS_SUCCESS;
}

/* Reduce-scatter + gather per round; root < 0: everyone gathers (allreduce),
 * else only root does (reduce). */
static chorus_result_t rounds(struct shm_comm *s, const char *send, char *recv, size_t count,
                              chorus_datatype_t type, chorus_op_t op, int root)
{
    const int n = s->nranks, me = s->rank;
    const size_t esize = chorus_type_size(type);
    const size_t piece_max = s->chunk / esize;
    /* In place, the output lines were just read and sit in cache: plain
     * stores are cheaper there than streaming ones. */
    const int stream = send != recv && chorus_copy_streaming(count * esize);
    struct srcs x;
    CHORUS_CHECK(srcs_init(&x, n));
    chorus_result_t res = CHORUS_SUCCESS;
    for (size_t off = 0; off < count && res == CHORUS_SUCCESS;) {
        size_t pe = count - off < piece_max ? count - off : piece_max;
        uint32_t st = shm_next_step(s);
        res = shm_reserve(s, st);
        if (res != CHORUS_SUCCESS)
            break;
        char *mine = shm_buf(s, me, st);
        for (int q = 0; q < n; q++) {
            size_t lo, len;
            shm_slice_of(pe, esize, q, n, &lo, &len);
            if (q != me && len)
                memcpy(mine + lo * esize, send + (off + lo) * esize, len * esize);
        }
        shm_post(s, &s->ctrl[me]->ready, st);
        res = shm_wait_all(s, SHM_READY, st);
        if (res != CHORUS_SUCCESS)
            break;
        shm_mark_synced(s, st);
        size_t mlo, mlen;
        shm_slice_of(pe, esize, me, n, &mlo, &mlen);
        for (int q = 0; q < n; q++)
            x.v[q] = q == me ? (const void *)(send + (off + mlo) * esize)
                             : shm_buf(s, q, st) + mlo * esize;
        if (mlen)
            chorus_reduce_many(type, op, mine + mlo * esize, x.v, n, mlen, n);
        shm_post(s, &s->ctrl[me]->ready2, st);
        if (root < 0 || root == me) {
            for (int i = 0; i < n && res == CHORUS_SUCCESS; i++) {
                int q = (me + i) % n;
                size_t lo, len;
                shm_slice_of(pe, esize, q, n, &lo, &len);
                if (q != me)
                    res = shm_wait(s, q, &s->ctrl[q]->ready2, st);
                if (res == CHORUS_SUCCESS && len)
                    chorus_copy(recv + (off + lo) * esize, shm_buf(s, q, st) + lo * esize,
                                len * esize, stream);
            }
        }
        if (res == CHORUS_SUCCESS)
            shm_post(s, &s->ctrl[me]->done, st);
        off += pe;
    }
    srcs_fini(&x);
    return res;
}

/* A single rank: the result is its input (AVG divides by 1). */
static chorus_result_t alone(const void *sendbuf, void *recvbuf, size_t count,
                             chorus_datatype_t type, chorus_op_t op)
{
    const void *src = sendbuf;
    chorus_reduce_many(type, op, recvbuf, &src, 1, count, 1);
    return CHORUS_SUCCESS;
}

/* root < 0: allreduce; else reduce to root. */
static chorus_result_t reduce_to(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                                 size_t count, chorus_datatype_t type, chorus_op_t op, int root)
{
    if (count == 0)
        return CHORUS_SUCCESS;
    if (s->nranks == 1)
        return alone(sendbuf, recvbuf, count, type, op);
    size_t bytes = count * chorus_type_size(type);
    if (root < 0 && s->oversubscribed && bytes <= s->small && bytes + 64 <= s->chunk / 2)
        return last_arriver(s, sendbuf, recvbuf, count, type, op);
    if (bytes <= s->small && bytes <= s->chunk)
        return one_shot(s, sendbuf, recvbuf, count, type, op, root);
    if (root < 0) {
        int done = 0;
        CHORUS_CHECK(shm_zcopy_allreduce(s, sendbuf, recvbuf, count, type, op, &done));
        if (done)
            return CHORUS_SUCCESS;
    }
    return rounds(s, sendbuf, recvbuf, count, type, op, root);
}

chorus_result_t shm_allreduce(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                              size_t count, chorus_datatype_t type, chorus_op_t op)
{
    return reduce_to(s, sendbuf, recvbuf, count, type, op, -1);
}

chorus_result_t shm_reduce(struct shm_comm *s, const void *sendbuf, void *recvbuf, size_t count,
                           chorus_datatype_t type, chorus_op_t op, int root)
{
    return reduce_to(s, sendbuf, recvbuf, count, type, op, root);
}

chorus_result_t shm_reduce_scatter(struct shm_comm *s, const void *sendbuf, void *recvbuf,
                                   size_t recvcount, chorus_datatype_t type, chorus_op_t op)
{
    const int n = s->nranks, me = s->rank;
    const size_t esize = chorus_type_size(type);
    const char *send = sendbuf;
    char *recv = recvbuf;
    if (recvcount == 0)
        return CHORUS_SUCCESS;
    if (n == 1)
        return alone(sendbuf, recvbuf, recvcount, type, op);
    {
        int done = 0;
        CHORUS_CHECK(shm_zcopy_reduce_scatter(s, sendbuf, recvbuf, recvcount, type, op, &done));
        if (done)
            return CHORUS_SUCCESS;
    }
    /* Each round moves a piece of every block: n pieces fill one half. */
    size_t piece_max = s->chunk / esize / (size_t)n;
    if (piece_max == 0)
        return CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: CHORUS_SHM_CHUNK (%zu) is too small for "
                          "%d ranks", s->label, s->chunk, n);
    struct srcs x;
    CHORUS_CHECK(srcs_init(&x, n));
    chorus_result_t res = CHORUS_SUCCESS;
    for (size_t off = 0; off < recvcount && res == CHORUS_SUCCESS;) {
        size_t pe = recvcount - off < piece_max ? recvcount - off : piece_max;
        uint32_t st = shm_next_step(s);
        res = shm_reserve(s, st);
        if (res != CHORUS_SUCCESS)
            break;
        char *mine = shm_buf(s, me, st);
        for (int q = 0; q < n; q++)
            if (q != me)
                memcpy(mine + (size_t)q * pe * esize, send + ((size_t)q * recvcount + off) * esize,
                       pe * esize);
        shm_post(s, &s->ctrl[me]->ready, st);
        res = shm_wait_all(s, SHM_READY, st);
        if (res != CHORUS_SUCCESS)
            break;
        shm_mark_synced(s, st);
        for (int q = 0; q < n; q++)
            x.v[q] = q == me ? (const void *)(send + ((size_t)me * recvcount + off) * esize)
                             : shm_buf(s, q, st) + (size_t)me * pe * esize;
        chorus_reduce_many(type, op, recv + off * esize, x.v, n, pe, n);
        shm_post(s, &s->ctrl[me]->done, st);
        off += pe;
    }
    srcs_fini(&x);
    return res;
}
