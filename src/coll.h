/* coll.h - one description of every operation, so the blocking calls, the
 * nonblocking calls and the worker thread share one checker and one runner. */
#ifndef CHORUS_COLL_H
#define CHORUS_COLL_H

#include <stddef.h>

#include "chorus.h"

typedef enum {
    COLL_ALLREDUCE,
    COLL_ALLGATHER,
    COLL_ALLTOALL,
    COLL_ALLTOALLV,
    COLL_REDUCE_SCATTER,
    COLL_BROADCAST,
    COLL_REDUCE,
    COLL_BARRIER,
    COLL_SEND,
    COLL_RECV,
    COLL_SENDRECV,
} coll_kind_t;

struct coll_args {
    coll_kind_t kind;
    const void *sendbuf;
    void *recvbuf;
    size_t count;     /* elements: per rank / per peer / total, as the call defines */
    size_t recvcount; /* sendrecv: elements to receive */
    chorus_datatype_t type;
    chorus_op_t op;
    int root;         /* broadcast/reduce root; send/recv peer; sendrecv dest */
    int source;       /* sendrecv source */
    const size_t *sendcounts, *sdispls, *recvcounts, *rdispls;
};

const char *coll_name(coll_kind_t kind);

/* Validates arguments on this rank without communicating. */
chorus_result_t coll_check(chorus_comm_t comm, const struct coll_args *a);
/* Runs the operation now, on the calling thread. The caller has checked
 * that comm is usable (chorus_comm_check_usable). */
chorus_result_t coll_run(chorus_comm_t comm, const struct coll_args *a);

/* Blocking (req == NULL) or nonblocking submission in comm's order. */
chorus_result_t coll_submit(chorus_comm_t comm, const struct coll_args *a,
                            chorus_request_t *req);

#endif
