/* coll_api.c - the public operations: argument checks, then the runner.
 *
 * Every check here is local (no communication), so a rank with a bad
 * argument returns at once with a clear code; ranks that passed good
 * arguments will wait for it and fail by timeout naming it, as NCCL's would
 * hang - so applications should pass the same arguments everywhere. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "coll.h"

#include <stdint.h>
#include <string.h>

#include "comm.h"
#include "error.h"
#include "shm_algos.h"
#include "watchdog.h"

static const char *const coll_names[] = {
    [COLL_ALLREDUCE] = "allreduce",   [COLL_ALLGATHER] = "allgather",
    [COLL_ALLTOALL] = "alltoall",     [COLL_ALLTOALLV] = "alltoallv",
    [COLL_REDUCE_SCATTER] = "reduce_scatter", [COLL_BROADCAST] = "broadcast",
    [COLL_REDUCE] = "reduce",         [COLL_BARRIER] = "barrier",
    [COLL_SEND] = "send",             [COLL_RECV] = "recv",
    [COLL_SENDRECV] = "sendrecv",
};

const char *coll_name(coll_kind_t kind) { return coll_names[kind]; }

static const char *const type_names[CHORUS_NUM_TYPES] = {
    "int8", "uint8", "int32", "uint32", "int64", "uint64",
    "float16", "bfloat16", "float32", "float64",
};
static const size_t type_sizes[CHORUS_NUM_TYPES] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
static const char *const op_names[CHORUS_NUM_OPS] = {"sum", "prod", "min", "max", "avg"};

size_t chorus_type_size(chorus_datatype_t type)
{
    return (unsigned)type < CHORUS_NUM_TYPES ? type_sizes[type] : 0;
}
const char *chorus_type_name(chorus_datatype_t type)
{
    return (unsigned)type < CHORUS_NUM_TYPES ? type_names[type] : "invalid";
}
const char *chorus_op_name(chorus_op_t op)
{
    return (unsigned)op < CHORUS_NUM_OPS ? op_names[op] : "invalid";
}

/* bytes = count * esize * mult, or an error if that overflows. */
static chorus_result_t checked_bytes(const char *what, size_t count, size_t esize, size_t mult,
                                     size_t *bytes)
{
    if (esize && count > SIZE_MAX / esize / (mult ? mult : 1))
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: count %zu is too large (the byte size "
                          "overflows)", what, count);
    *bytes = count * esize * mult;
    return CHORUS_SUCCESS;
}

static chorus_result_t need_buf(const char *what, const char *name, const void *p, size_t bytes)
{
    if (!p && bytes)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: %s is NULL with %zu bytes to move", what,
                          name, bytes);
    return CHORUS_SUCCESS;
}

/* Out of place, the buffers must not overlap; in place means the exact
 * position NCCL defines (inplace_at), nothing else. */
static chorus_result_t check_overlap(const char *what, const void *send, size_t sbytes,
                                     const void *recv, size_t rbytes, const void *inplace_at)
{
    if (!send || !recv || !sbytes || !rbytes || send == inplace_at)
        return CHORUS_SUCCESS;
    uintptr_t s = (uintptr_t)send, r = (uintptr_t)recv;
    if (s < r + rbytes && r < s + sbytes)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: sendbuf and recvbuf overlap but sendbuf "
                          "is not at the in-place position", what);
    return CHORUS_SUCCESS;
}

static chorus_result_t check_type(const char *what, chorus_datatype_t type)
{
    if ((unsigned)type >= CHORUS_NUM_TYPES)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: invalid datatype %d", what, (int)type);
    return CHORUS_SUCCESS;
}

static chorus_result_t check_op(const char *what, chorus_op_t op)
{
    if ((unsigned)op >= CHORUS_NUM_OPS)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: invalid reduction op %d", what, (int)op);
    return CHORUS_SUCCESS;
}

static chorus_result_t check_rank(const char *what, const char *name, int r, int n)
{
    if (r < 0 || r >= n)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: %s %d is outside 0..%d", what, name, r,
                          n - 1);
    return CHORUS_SUCCESS;
}

static chorus_result_t check_alltoallv(chorus_comm_t comm, const struct coll_args *a,
                                       size_t esize)
{
    const char *w = "alltoallv";
    if (!a->sendcounts || !a->sdispls || !a->recvcounts || !a->rdispls)
        return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: a count or displacement array is NULL",
                          w);
    size_t sbytes = 0, rbytes = 0, end = 0;
    for (int q = 0; q < comm->nranks; q++) {

        if (a->sdispls[q] > SIZE_MAX - a->sendcounts[q] ||
            checked_bytes(w, a->sdispls[q] + a->sendcounts[q], esize, 1, &end))
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: send block %d overflows", w, q);
        sbytes = end > sbytes ? end : sbytes;
        if (a->rdispls[q] > SIZE_MAX - a->recvcounts[q] ||
            checked_bytes(w, a->rdispls[q] + a->recvcounts[q], esize, 1, &end))
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: receive block %d overflows", w, q);
        rbytes = end > rbytes ? end : rbytes;
    }
    CHORUS_CHECK(need_buf(w, "sendbuf", a->sendbuf, sbytes));
    CHORUS_CHECK(need_buf(w, "recvbuf", a->recvbuf, rbytes));
    if (a->sendbuf && a->sendbuf == a->recvbuf) {
        /* In place (as MPI_IN_PLACE): each block is read and then overwritten
         * where it lies, so both layouts must be the same. */
        for (int q = 0; q < comm->nranks; q++)
            if (a->sendcounts[q] != a->recvcounts[q] || a->sdispls[q] != a->rdispls[q])
                return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: in place (sendbuf == recvbuf) "
                                  "needs sendcounts == recvcounts and sdispls == rdispls; they "
                                  "differ for rank %d", w, q);
        return CHORUS_SUCCESS;
    }
    return check_overlap(w, a->sendbuf, sbytes, a->recvbuf, rbytes, NULL);
}

chorus_result_t coll_check(chorus_comm_t comm, const struct coll_args *a)
{
    const char *w = coll_name(a->kind);
    const int n = comm->nranks, me = comm->rank;
    if (a->kind == COLL_BARRIER)
        return CHORUS_SUCCESS;
    CHORUS_CHECK(check_type(w, a->type));
    size_t esize = chorus_type_size(a->type), bytes = 0, total = 0;
    switch (a->kind) {
    case COLL_ALLREDUCE:
    case COLL_REDUCE:
        CHORUS_CHECK(check_op(w, a->op));
        CHORUS_CHECK(checked_bytes(w, a->count, esize, 1, &bytes));
        if (a->kind == COLL_REDUCE)
            CHORUS_CHECK(check_rank(w, "root", a->root, n));
        CHORUS_CHECK(need_buf(w, "sendbuf", a->sendbuf, bytes));
        if (a->kind == COLL_ALLREDUCE || a->root == me) {
            CHORUS_CHECK(need_buf(w, "recvbuf", a->recvbuf, bytes));
            CHORUS_CHECK(check_overlap(w, a->sendbuf, bytes, a->recvbuf, bytes, a->recvbuf));
        }
        return CHORUS_SUCCESS;
    case COLL_REDUCE_SCATTER:
        CHORUS_CHECK(check_op(w, a->op));
        CHORUS_CHECK(checked_bytes(w, a->count, esize, (size_t)n, &total));
        bytes = total / (size_t)n;
        CHORUS_CHECK(need_buf(w, "sendbuf", a->sendbuf, total));
        CHORUS_CHECK(need_buf(w, "recvbuf", a->recvbuf, bytes));
        return check_overlap(w, a->recvbuf, bytes, a->sendbuf, total,
                             a->sendbuf ? (const char *)a->sendbuf + (size_t)me * bytes : NULL);
    case COLL_ALLGATHER:
        CHORUS_CHECK(checked_bytes(w, a->count, esize, (size_t)n, &total));
        bytes = total / (size_t)n;
        CHORUS_CHECK(need_buf(w, "sendbuf", a->sendbuf, bytes));
        CHORUS_CHECK(need_buf(w, "recvbuf", a->recvbuf, total));
        return check_overlap(w, a->sendbuf, bytes, a->recvbuf, total,
                             a->recvbuf ? (char *)a->recvbuf + (size_t)me * bytes : NULL);
    case COLL_ALLTOALL:
        CHORUS_CHECK(checked_bytes(w, a->count, esize, (size_t)n, &total));
        CHORUS_CHECK(need_buf(w, "sendbuf", a->sendbuf, total));
        CHORUS_CHECK(need_buf(w, "recvbuf", a->recvbuf, total));
        return check_overlap(w, a->sendbuf, total, a->recvbuf, total, a->recvbuf);
    case COLL_ALLTOALLV:
        return check_alltoallv(comm, a, esize);
    case COLL_BROADCAST:
        CHORUS_CHECK(checked_bytes(w, a->count, esize, 1, &bytes));
        CHORUS_CHECK(check_rank(w, "root", a->root, n));
        if (a->root == me)
            CHORUS_CHECK(need_buf(w, "sendbuf", a->sendbuf, bytes));
        CHORUS_CHECK(need_buf(w, "recvbuf", a->recvbuf, bytes));
        if (a->root == me)
            CHORUS_CHECK(check_overlap(w, a->sendbuf, bytes, a->recvbuf, bytes, a->recvbuf));
        return CHORUS_SUCCESS;
    case COLL_SEND:
    case COLL_RECV:
        CHORUS_CHECK(checked_bytes(w, a->count, esize, 1, &bytes));
        CHORUS_CHECK(check_rank(w, "peer", a->root, n));
        if (a->root == me)
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: peer %d is this rank; use "
                              "chorus_sendrecv to send to yourself", w, me);
        return need_buf(w, a->kind == COLL_SEND ? "sendbuf" : "recvbuf",
                        a->kind == COLL_SEND ? a->sendbuf : a->recvbuf, bytes);
    case COLL_SENDRECV:
        CHORUS_CHECK(checked_bytes(w, a->count, esize, 1, &bytes));
        CHORUS_CHECK(check_rank(w, "dest", a->root, n));
        CHORUS_CHECK(check_rank(w, "source", a->source, n));
        CHORUS_CHECK(need_buf(w, "sendbuf", a->sendbuf, bytes));
        CHORUS_CHECK(checked_bytes(w, a->recvcount, esize, 1, &bytes));
        return need_buf(w, "recvbuf", a->recvbuf, bytes);
    default:
        return CHORUS_ERR(CHORUS_INTERNAL_ERROR, "unknown operation kind %d", (int)a->kind);
    }
}

static chorus_result_t run_op(chorus_comm_t comm, const struct coll_args *a)
{
    struct shm_comm *s = comm->shm;
    size_t esize = chorus_type_size(a->type);
    chorus_result_t res;
    if (comm->check_calls && a->kind != COLL_SEND && a->kind != COLL_RECV &&
        a->kind != COLL_SENDRECV) {
        res = coll_check_match(comm, a);
        if (res == CHORUS_INVALID_USAGE)
            return res; /* nothing ran: every rank stopped here, the comm is intact */
        if (res != CHORUS_SUCCESS)
            goto out;
    }
    if (comm->net) {
        res = coll_net_run(comm, a);
        goto out;
    }
    switch (a->kind) {
    case COLL_ALLREDUCE:
        res = shm_allreduce(s, a->sendbuf, a->recvbuf, a->count, a->type, a->op);
        break;
    case COLL_REDUCE:
        res = shm_reduce(s, a->sendbuf, a->recvbuf, a->count, a->type, a->op, a->root);
        break;
    case COLL_REDUCE_SCATTER:
        res = shm_reduce_scatter(s, a->sendbuf, a->recvbuf, a->count, a->type, a->op);
        break;
    case COLL_ALLGATHER:
        res = shm_allgather(s, a->sendbuf, a->recvbuf, a->count, a->type);
        break;
    case COLL_ALLTOALL:
        res = shm_alltoall(s, a->sendbuf, a->recvbuf, a->count, a->type);
        break;
    case COLL_ALLTOALLV:
        res = shm_alltoallv(s, a->sendbuf, a->sendcounts, a->sdispls, a->recvbuf, a->recvcounts,
                            a->rdispls, a->type);
        break;
    case COLL_BROADCAST:
        res = shm_broadcast(s, a->sendbuf, a->recvbuf, a->count, a->type, a->root);
        break;
    case COLL_BARRIER:
        res = shm_barrier(s);
        break;
    case COLL_SEND:
        res = shm_send(s, a->sendbuf, a->count * esize, a->root);
        break;
    case COLL_RECV:
        res = shm_recv(s, a->recvbuf, a->count * esize, a->root);
        break;
    case COLL_SENDRECV:
        res = shm_sendrecv(s, a->sendbuf, a->count * esize, a->root, a->recvbuf,
                           a->recvcount * esize, a->source);
        break;
    default:
        res = CHORUS_ERR(CHORUS_INTERNAL_ERROR, "unknown operation kind %d", (int)a->kind);
    }
out:
    /* A peer gone, a timeout or a system failure leave the step counters out
     * of step: the communicator cannot be trusted again. */
    if (res == CHORUS_REMOTE_ERROR || res == CHORUS_TIMEOUT || res == CHORUS_SYSTEM_ERROR ||
        res == CHORUS_INTERNAL_ERROR)
        chorus_comm_fail(comm, res);
    return res;
}

chorus_result_t coll_run(chorus_comm_t comm, const struct coll_args *a)
{
    watchdog_coll_begin(comm, a);
    chorus_result_t res = run_op(comm, a);
    watchdog_coll_end(comm, a->kind);
    return res;
}

/* ---- the public calls ------------------------------------------------------ */

#define SUBMIT(req, ...)                                        \
    do {                                                        \
        struct coll_args args_ = {__VA_ARGS__};                 \
        return coll_submit(comm, &args_, req);                  \
    } while (0)

/* A nonblocking call must have somewhere to put its request. */
#define SUBMIT_NB(req, ...)                                                              \
    do {                                                                                 \
        if (!(req)) {                                                                    \
            chorus_error_clear();                                                        \
            return CHORUS_ERR(CHORUS_INVALID_ARGUMENT, "%s: req (the output request) is " \
                              "NULL", __func__);                                         \
        }                                                                                \
        SUBMIT(req, __VA_ARGS__);                                                           \
    } while (0)

chorus_result_t chorus_allreduce(const void *sendbuf, void *recvbuf, size_t count,
                                 chorus_datatype_t type, chorus_op_t op, chorus_comm_t comm)
{
    SUBMIT(NULL, .kind = COLL_ALLREDUCE, .sendbuf = sendbuf, .recvbuf = recvbuf, .count = count,
           .type = type, .op = op);
}
chorus_result_t chorus_iallreduce(const void *sendbuf, void *recvbuf, size_t count,
                                  chorus_datatype_t type, chorus_op_t op, chorus_comm_t comm,
                                  chorus_request_t *req)
{
    SUBMIT_NB(req, .kind = COLL_ALLREDUCE, .sendbuf = sendbuf, .recvbuf = recvbuf, .count = count,
           .type = type, .op = op);
}
chorus_result_t chorus_allgather(const void *sendbuf, void *recvbuf, size_t sendcount,
                                 chorus_datatype_t type, chorus_comm_t comm)
{
    SUBMIT(NULL, .kind = COLL_ALLGATHER, .sendbuf = sendbuf, .recvbuf = recvbuf,
           .count = sendcount, .type = type);
}
chorus_result_t chorus_iallgather(const void *sendbuf, void *recvbuf, size_t sendcount,
                                  chorus_datatype_t type, chorus_comm_t comm,
                                  chorus_request_t *req)
{
    SUBMIT_NB(req, .kind = COLL_ALLGATHER, .sendbuf = sendbuf, .recvbuf = recvbuf,
           .count = sendcount, .type = type);
}
chorus_result_t chorus_alltoall(const void *sendbuf, void *recvbuf, size_t count,
                                chorus_datatype_t type, chorus_comm_t comm)
{
    SUBMIT(NULL, .kind = COLL_ALLTOALL, .sendbuf = sendbuf, .recvbuf = recvbuf, .count = count,
           .type = type);
}
chorus_result_t chorus_ialltoall(const void *sendbuf, void *recvbuf, size_t count,
                                 chorus_datatype_t type, chorus_comm_t comm,
                                 chorus_request_t *req)
{
    SUBMIT_NB(req, .kind = COLL_ALLTOALL, .sendbuf = sendbuf, .recvbuf = recvbuf, .count = count,
           .type = type);
}
chorus_result_t chorus_alltoallv(const void *sendbuf, const size_t *sendcounts,
                                 const size_t *sdispls, void *recvbuf, const size_t *recvcounts,
                                 const size_t *rdispls, chorus_datatype_t type,
                                 chorus_comm_t comm)
{
    SUBMIT(NULL, .kind = COLL_ALLTOALLV, .sendbuf = sendbuf, .recvbuf = recvbuf, .type = type,
           .sendcounts = sendcounts, .sdispls = sdispls, .recvcounts = recvcounts,
           .rdispls = rdispls);
}
chorus_result_t chorus_ialltoallv(const void *sendbuf, const size_t *sendcounts,
                                  const size_t *sdispls, void *recvbuf,
                                  const size_t *recvcounts, const size_t *rdispls,
                                  chorus_datatype_t type, chorus_comm_t comm,
                                  chorus_request_t *req)
{
    SUBMIT_NB(req, .kind = COLL_ALLTOALLV, .sendbuf = sendbuf, .recvbuf = recvbuf, .type = type,
           .sendcounts = sendcounts, .sdispls = sdispls, .recvcounts = recvcounts,
           .rdispls = rdispls);
}
chorus_result_t chorus_reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                      chorus_datatype_t type, chorus_op_t op, chorus_comm_t comm)
{
    SUBMIT(NULL, .kind = COLL_REDUCE_SCATTER, .sendbuf = sendbuf, .recvbuf = recvbuf,
           .count = recvcount, .type = type, .op = op);
}
chorus_result_t chorus_ireduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                       chorus_datatype_t type, chorus_op_t op,
                                       chorus_comm_t comm, chorus_request_t *req)
{
    SUBMIT_NB(req, .kind = COLL_REDUCE_SCATTER, .sendbuf = sendbuf, .recvbuf = recvbuf,
           .count = recvcount, .type = type, .op = op);
}
chorus_result_t chorus_broadcast(const void *sendbuf, void *recvbuf, size_t count,
                                 chorus_datatype_t type, int root, chorus_comm_t comm)
{
    SUBMIT(NULL, .kind = COLL_BROADCAST, .sendbuf = sendbuf, .recvbuf = recvbuf, .count = count,
           .type = type, .root = root);
}
chorus_result_t chorus_ibroadcast(const void *sendbuf, void *recvbuf, size_t count,
                                  chorus_datatype_t type, int root, chorus_comm_t comm,
                                  chorus_request_t *req)
{
    SUBMIT_NB(req, .kind = COLL_BROADCAST, .sendbuf = sendbuf, .recvbuf = recvbuf, .count = count,
           .type = type, .root = root);
}
chorus_result_t chorus_reduce(const void *sendbuf, void *recvbuf, size_t count,
                              chorus_datatype_t type, chorus_op_t op, int root,
                              chorus_comm_t comm)
{
    SUBMIT(NULL, .kind = COLL_REDUCE, .sendbuf = sendbuf, .recvbuf = recvbuf, .count = count,
           .type = type, .op = op, .root = root);
}
chorus_result_t chorus_ireduce(const void *sendbuf, void *recvbuf, size_t count,
                               chorus_datatype_t type, chorus_op_t op, int root,
                               chorus_comm_t comm, chorus_request_t *req)
{
    SUBMIT_NB(req, .kind = COLL_REDUCE, .sendbuf = sendbuf, .recvbuf = recvbuf, .count = count,
           .type = type, .op = op, .root = root);
}
chorus_result_t chorus_barrier(chorus_comm_t comm) { SUBMIT(NULL, .kind = COLL_BARRIER); }
chorus_result_t chorus_ibarrier(chorus_comm_t comm, chorus_request_t *req)
{
    SUBMIT_NB(req, .kind = COLL_BARRIER);
}
chorus_result_t chorus_send(const void *sendbuf, size_t count, chorus_datatype_t type, int peer,
                            chorus_comm_t comm)
{
    SUBMIT(NULL, .kind = COLL_SEND, .sendbuf = sendbuf, .count = count, .type = type,
           .root = peer);
}
chorus_result_t chorus_recv(void *recvbuf, size_t count, chorus_datatype_t type, int peer,
                            chorus_comm_t comm)
{
    SUBMIT(NULL, .kind = COLL_RECV, .recvbuf = recvbuf, .count = count, .type = type,
           .root = peer);
}
chorus_result_t chorus_sendrecv(const void *sendbuf, size_t sendcount, int dest, void *recvbuf,
                                size_t recvcount, int source, chorus_datatype_t type,
                                chorus_comm_t comm)
{
    SUBMIT(NULL, .kind = COLL_SENDRECV, .sendbuf = sendbuf, .recvbuf = recvbuf,
           .count = sendcount, .recvcount = recvcount, .type = type, .root = dest,
           .source = source);
}
