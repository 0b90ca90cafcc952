/* coll_checkmode.c - CHORUS_CHECK_CALLS: do all ranks call the same thing?
 *
 * A rank that calls allreduce while its peers call allgather, or passes
 * another count, type, op or root, makes the others wait for messages that
 * never come or read data of the wrong shape. In checking mode every
 * collective first exchanges a short description of the call over the
 * bootstrap (a ring allgather: slow, but this is a debugging mode) and every
 * rank compares all descriptions the same way, so all ranks return the same
 * CHORUS_INVALID_USAGE text and nothing is run; the communicator stays
 * usable. A rank that calls nothing at all is caught by the exchange's
 * timeout, which names it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "coll.h"
#include "comm.h"
#include "error.h"

struct call_desc {
    uint64_t seq; /* collectives called so far on this communicator */
    int32_t kind, type, op, root;
    uint64_t count;
};

static int reducing(coll_kind_t k)
{
    return k == COLL_ALLREDUCE || k == COLL_REDUCE || k == COLL_REDUCE_SCATTER;
}

static void describe(const struct call_desc *d, char *buf, size_t cap)
{
    coll_kind_t k = (coll_kind_t)d->kind;
    int n = snprintf(buf, cap, "%s", coll_name(k));
    if (k == COLL_BARRIER || n < 0 || (size_t)n >= cap)
        return;
    if (k == COLL_ALLTOALLV)
        n += snprintf(buf + n, cap - (size_t)n, " (%s", chorus_type_name((chorus_datatype_t)d->type));
    else
        n += snprintf(buf + n, cap - (size_t)n, " (count %" PRIu64 ", %s", d->count,
                      chorus_type_name((chorus_datatype_t)d->type));
    if (reducing(k) && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, ", %s", chorus_op_name((chorus_op_t)d->op));
    if ((k == COLL_BROADCAST || k == COLL_REDUCE) && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, ", root %d", d->root);
    if ((size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ")");
}

static int same(const struct call_desc *a, const struct call_desc *b)
{
    if (a->kind != b->kind)
        return 0;
    coll_kind_t k = (coll_kind_t)a->kind;
    if (k == COLL_BARRIER)
        return 1;
    if (a->type != b->type || (k != COLL_ALLTOALLV && a->count != b->count))
        return 0;
    if (reducing(k) && a->op != b->op)
        return 0;
    if ((k == COLL_BROADCAST || k == COLL_REDUCE) && a->root != b->root)
        return 0;
    return 1;
}

/* alltoallv: what rank r sends to q must be what q expects from r. */
static chorus_result_t check_matrix(chorus_comm_t comm, const struct coll_args *a,
                                    uint64_t seq)
{
    const size_t n = (size_t)comm->nranks;
    uint64_t *mine = malloc(2 * n * sizeof *mine), *all = malloc(2 * n * n * sizeof *all);
    chorus_result_t res = CHORUS_SUCCESS;
    if (!mine || !all)
        res = CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    for (size_t q = 0; res == CHORUS_SUCCESS && q < n; q++) {
        mine[q] = a->sendcounts[q];
        mine[n + q] = a->recvcounts[q];
    }
    if (res == CHORUS_SUCCESS)
        res = chorus_bootstrap_allgather(comm->bs, mine, all, 2 * n * sizeof *mine);
    for (size_t r = 0; res == CHORUS_SUCCESS && r < n; r++)
        for (size_t q = 0; q < n; q++) {
            uint64_t sent = all[r * 2 * n + q], expected = all[q * 2 * n + n + r];
            if (sent != expected) {
                res = CHORUS_ERR(CHORUS_INVALID_USAGE,
                                 "%s: collective #%" PRIu64 " (alltoallv): rank %zu sends %" PRIu64
                                 " elements to rank %zu, which expects %" PRIu64
                                 " (CHORUS_CHECK_CALLS)",
                                 comm->label, seq, r, sent, q, expected);
                break;
            }
        }
    free(mine);
    free(all);
    return res;
}

chorus_result_t coll_check_match(chorus_comm_t comm, const struct coll_args *a)
{
    struct call_desc mine = {++comm->check_seq, (int32_t)a->kind, (int32_t)a->type,
                             (int32_t)a->op, a->root, a->count};
    if (a->kind == COLL_BARRIER)
        mine.type = mine.op = mine.root = 0, mine.count = 0;
    struct call_desc *all = calloc((size_t)comm->nranks, sizeof *all);
    if (!all)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    chorus_result_t res = chorus_bootstrap_allgather(comm->bs, &mine, all, sizeof mine);
    if (res != CHORUS_SUCCESS) {
        free(all);
        return res;
    }
    for (int r = 1; r < comm->nranks; r++) {
        if (all[r].seq != all[0].seq) {
            res = CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: rank %d is at collective #%" PRIu64
                             " but rank 0 at #%" PRIu64 " (CHORUS_CHECK_CALLS)", comm->label, r,
                             all[r].seq, all[0].seq);
            break;
        }
        if (!same(&all[r], &all[0])) {
            char d0[128], dr[128];
            describe(&all[0], d0, sizeof d0);
            describe(&all[r], dr, sizeof dr);
            res = CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: collective #%" PRIu64 ": rank %d called "
                             "%s but rank 0 called %s (CHORUS_CHECK_CALLS)", comm->label,
                             all[0].seq, r, dr, d0);
            break;
        }
    }
    int all_v = res == CHORUS_SUCCESS && a->kind == COLL_ALLTOALLV;
    free(all);
    return all_v ? check_matrix(comm, a, mine.seq) : res;
}
