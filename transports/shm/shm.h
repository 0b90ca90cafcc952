/* shm.h - the shared-memory transport: one segment per rank, mapped by every
 * rank of the node.
 *
 * Each rank owns a segment (created with mode 0600 under a random name,
 * unlinked as soon as every rank has mapped it) holding:
 *   - control lines: step counters ("ready", "ready2", "done"), each on its
 *     own cache line so writers do not disturb pollers of other counters;
 *   - a workspace of two rounds (double buffering: round s uses half s & 1,
 *     so back-to-back collectives need no extra barrier);
 *   - point-to-point channels: eager slots towards every other rank.
 * Only the owner writes its segment, except the "tail" counters of the
 * point-to-point channels, which receivers advance in their own segment.
 */
#ifndef CHORUS_SHM_H
#define CHORUS_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chorus.h"
#include "mem_alloc.h"
#include "wait.h"

#define SHM_LINE 64

/* One cache line holding one counter. */
struct shm_line {
    _Atomic uint32_t value;
    char pad[SHM_LINE - sizeof(uint32_t)];
};

/* Small per-round facts a rank publishes next to its data (e.g. the address
 * of its user buffer for single-copy reads), one set per workspace half. */
struct shm_meta {
    uint64_t addr; /* sender's buffer address in its own address space */
    uint64_t len;  /* a length the readers must agree on (broadcast: the root's share) */
    char pad[SHM_LINE - 2 * sizeof(uint64_t)];
};

/* Why a rank gave up, so the others report the root cause rather than "some
 * rank failed": blame = 1 + the communicator rank held responsible (the
 * dead or stuck one, on this node or another, or the aborting rank itself),
 * code = the failure seen. */
struct shm_abort {
    _Atomic uint32_t blame; /* 0: this rank is fine */
    _Atomic uint32_t code;  /* chorus_result_t */
    char pad[SHM_LINE - 2 * sizeof(uint32_t)];
};

/* Where a rank's buffers of a zero-copy attempt live (see shm_zcopy_begin),
 * one per workspace half like shm_meta. */
struct shm_zcopy_note {
    struct chorus_mem_span span[2]; /* SHM_ZC_SEND, SHM_ZC_RECV */
    uint32_t usable; /* every buffer the peers read lies in one Chorus allocation */
    uint32_t mapped; /* I mapped every peer's buffers I read */
    char pad[2 * SHM_LINE - 2 * sizeof(struct chorus_mem_span) - 2 * sizeof(uint32_t)];
};

struct shm_ctrl {
    struct shm_line ready;    /* step s: my contribution for s is readable */
    struct shm_line ready2;   /* step s: my second-phase result is readable */
    struct shm_line done;     /* step s: I have finished reading step s */
    struct shm_line sleepers; /* processes sleeping on a counter of this segment */
    struct shm_abort abort;   /* set when this rank failed or aborted */
    /* Used in rank 0's segment only, by every rank (the one exception to
     * "only the owner writes"): the arrival counter and result notice of the
     * oversubscribed small allreduce (see algos/shm_allreduce.c). */
    struct shm_line arrivals;
    struct shm_line result;   /* step whose result is published */
    struct shm_line result_owner[2]; /* per workspace half: who holds it */
    struct shm_meta meta[2];
    struct shm_zcopy_note zcopy[2];
    int32_t pid;
    uint32_t nranks;
    char pad[SHM_LINE - 2 * sizeof(uint32_t)];
    /* then: struct shm_line p2p_head[nranks] (messages I sent to rank q),
     *       struct shm_line p2p_tail[nranks] (slots I consumed from rank q) */
};

/* Header at the start of every point-to-point slot. The payload follows it
 * directly, so a message of up to 32 bytes shares the header's cache line,
 * and the receiver polls seq in that same line: a small message costs the
 * receiver one cache miss, not one for a counter, one for the header and
 * one for the payload. */
struct shm_p2p_hdr {
    _Atomic uint32_t seq; /* 1 + the sender's count of slots before this one: written last */
    uint32_t pad;
    uint64_t total; /* bytes of the whole message */
    uint64_t addr;  /* nonzero: single-copy; read total bytes from here */
    uint64_t len;   /* payload bytes in this slot */
};

#define SHM_P2P_SLOTS 4

/* What a rank sees of the node's shared memory. */
struct shm_comm {
    int rank, nranks;
    size_t chunk;     /* bytes per workspace half */
    size_t p2p_slot;  /* bytes per eager slot, header included */
    size_t small;     /* one-shot allreduce threshold */
    size_t cma_min;   /* single copy from this many bytes per peer */
    size_t cma_max;   /* allgather/alltoall/broadcast: single copy up to this whole buffer (0: any) */
    int cma;          /* every rank can process_vm_readv every other */
    int oversubscribed; /* more ranks than cores on this node */
    size_t zcopy_min; /* zero copy between Chorus allocations from this many bytes (0: off) */
    struct shm_zcopy_cache *zcopy; /* peers' allocations mapped here; NULL until needed */
    struct shm_ctrl **ctrl; /* [nranks], ctrl[rank] is mine */
    char **ws;              /* [nranks] workspace bases */
    char **p2p;             /* [nranks] p2p slot bases */
    void **maps;            /* [nranks] mappings, for munmap */
    size_t seg_bytes;
    pid_t *pids;
    int *pidfds;            /* [nranks] -1 where unavailable */
    uint32_t step;          /* last step number used */
    uint32_t arrivals;      /* last-arriver allreduces so far (all ranks agree) */
    uint32_t synced;        /* every peer is known done with this step */
    uint32_t *p2p_tail_seen; /* [nranks] last tail read from rank q: slots known free */
    struct chorus_wait_policy policy;
    _Atomic int *local_abort; /* the communicator's abort flag */
    /* [nranks] the communicator rank of each node rank, owned by the
     * communicator; NULL: the same numbers. Error texts and blames speak
     * communicator ranks: a node level of a node-aware algorithm has its
     * own numbering, which means nothing to the user. */
    const int *comm_ranks;
    /* communicator rank held responsible for the last failure, and its code;
     * atomic: chorus_comm_abort reads them from another thread (TSan) */
    _Atomic int blame;
    _Atomic int blame_code; /* chorus_result_t */
    const char *label;        /* for error texts */
    char err_text[256];
    /* Called at every health check of a wait (about every 100 us) while set:
     * the node-aware collectives drive their network phase from here, so
     * the network moves data while shared memory waits. An error ends the
     * wait. */
    chorus_result_t (*idle)(void *arg);
    void *idle_arg;
};

/* How the ranks of the node swap setup data: all[r * size ..] receives
 * node rank r's mine. */
struct shm_exchange {
    chorus_result_t (*allgather)(void *ctx, const void *mine, void *all, size_t size);
    void *ctx;
};

/* Creates, exchanges and maps the segments of nranks ranks that share this
 * node. Collective over the exchange. */
chorus_result_t shm_comm_create(struct shm_comm **out, const struct shm_exchange *xg, int rank,
                                int nranks, int oversubscribed, int timeout_ms,
                                _Atomic int *local_abort);
void shm_comm_destroy(struct shm_comm *s);
/* Marks this rank failed in its segment (with the blame and code of the last
 * failure it saw, else itself) and wakes every sleeper. */
void shm_comm_abort(struct shm_comm *s);

/* Whether allgather/alltoall/broadcast move blocks of `block` bytes (the whole buffer
 * `total`) by single copy; every rank decides alike from the same sizes. */
static inline int shm_single_copy(const struct shm_comm *s, size_t block, size_t total)
{
    return s->cma && block >= s->cma_min && (s->cma_max == 0 || total <= s->cma_max);
}

/* Node rank r as the user knows it: its communicator rank. */
static inline int shm_comm_rank(const struct shm_comm *s, int r)
{
    return s->comm_ranks && r >= 0 && r < s->nranks ? s->comm_ranks[r] : r;
}

/* ---- helpers for algorithms ---------------------------------------------- */
static inline struct shm_line *shm_p2p_head(struct shm_ctrl *c, int q)
{
    return (struct shm_line *)(c + 1) + q;
}
static inline struct shm_line *shm_p2p_tail(struct shm_ctrl *c, int q)
{
    return (struct shm_line *)(c + 1) + c->nranks + q;
}
static inline char *shm_buf(struct shm_comm *s, int q, uint32_t step)
{
    return s->ws[q] + (size_t)(step & 1) * s->chunk;
}

/* Starts a new step and returns its number. */
static inline uint32_t shm_next_step(struct shm_comm *s) { return ++s->step; }

/* Waits until rank q's counter line (in q's segment) reaches target. */
chorus_result_t shm_wait(struct shm_comm *s, int q, struct shm_line *line, uint32_t target);
/* Waits on a counter in rank 0's segment that every rank moves (the
 * last-arriver allreduce); on timeout, names the ranks whose counter at
 * group_offset is behind target. */
chorus_result_t shm_wait_shared(struct shm_comm *s, struct shm_line *line, uint32_t target,
                                size_t group_offset);
/* Publishes my counter line. */
static inline void shm_post(struct shm_comm *s, struct shm_line *line, uint32_t value)
{
    chorus_flag_store(&line->value, value, &s->ctrl[s->rank]->sleepers.value);
}
/* Waits until every other rank's line at offset (ready/ready2/done) reached target. */
chorus_result_t shm_wait_all(struct shm_comm *s, size_t line_offset, uint32_t target);
/* Before writing my workspace half for step: every reader must be done with
 * step - 2, which used the same half. */
chorus_result_t shm_reserve(struct shm_comm *s, uint32_t step);
/* Ends a step whose buffers peers read in place (single copy, zero copy):
 * posts done and waits for every rank's, so no rank returns (and reuses its
 * buffers) while a peer still reads them. */
chorus_result_t shm_finish_all(struct shm_comm *s, uint32_t step);
/* A full exchange at step proved every peer finished step - 1. */
static inline void shm_mark_synced(struct shm_comm *s, uint32_t step)
{
    if (chorus_serial_geq(step - 1, s->synced))
        s->synced = step - 1;
}

/* The periodic check of every wait: aborted? a rank gone? a rank gave up
 * (and whom did it blame)? deadline passed (timed_out)? q is the rank waited
 * for, or -1 for a group wait on the counter at line_offset of every rank.
 * Returns the error that ends the wait and remembers whom it blames. */
chorus_result_t shm_health(struct shm_comm *s, int q, size_t line_offset, uint32_t target,
                           int timed_out);

/* Single copy of len bytes between local and rank q's address remote: reads
 * into local, or with write set, writes local there. */
chorus_result_t shm_cma_copy(struct shm_comm *s, int q, void *local, uint64_t remote, size_t len,
                             int write);
static inline chorus_result_t shm_cma_read(struct shm_comm *s, int q, void *local,
                                           uint64_t remote, size_t len)
{
    return shm_cma_copy(s, q, local, remote, len, 0);
}

/* ---- zero copy between Chorus allocations (shm_zcopy.c) ------------------ */
enum { SHM_ZC_SEND = 0, SHM_ZC_RECV = 1 };
#define SHM_ZC_NEED_SEND (1u << SHM_ZC_SEND) /* peers read my send buffer */
#define SHM_ZC_NEED_RECV (1u << SHM_ZC_RECV) /* peers read my receive buffer */

/* A zero-copy call under way: every rank's buffers as this process sees
 * them (arrays owned by the communicator, valid until the next call). */
struct shm_zcopy_call {
    uint32_t step; /* the agreement step; the caller must post "done" for it */
    const char **send; /* [nranks] */
    const char **recv; /* [nranks] */
    const void **srcs; /* [nranks] scratch for the reduction's sources */
};

/* The agreement step that opens every zero-copy collective: each rank
 * publishes whether the buffers in need (peers will read them) lie in one
 * Chorus allocation each, then maps every peer's (cached per peer and
 * allocation). *go = 1 only if every rank's buffers qualify and every rank
 * mapped every peer's, so all ranks decide alike; with *go = 0 the step is
 * complete and the caller runs its ordinary algorithm. */
chorus_result_t shm_zcopy_begin(struct shm_comm *s, const void *send, size_t send_len,
                                const void *recv, size_t recv_len, unsigned need,
                                struct shm_zcopy_call *call, int *go);
/* Unmaps every cached peer allocation (communicator destroy). */
void shm_zcopy_release(struct shm_comm *s);

#define SHM_READY offsetof(struct shm_ctrl, ready)
#define SHM_READY2 offsetof(struct shm_ctrl, ready2)
#define SHM_DONE offsetof(struct shm_ctrl, done)
static inline struct shm_line *shm_line_at(struct shm_ctrl *c, size_t offset)
{
    return (struct shm_line *)((char *)c + offset);
}

#endif
