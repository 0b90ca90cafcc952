/* rdma_impl.h - internals of the RDMA transport (libibverbs + librdmacm),
 * shared by rdma_dev.c (device choice), rdma_conn.c (connection setup),
 * rdma.c (the ops, completions, errors), rdma_xfer.c (the protocol) and
 * rdma_mr.c (the registration cache).
 *
 * Per pair of ranks: N reliable-connected QPs (N = CHORUS_RDMA_QPS_PER_PEER,
 * the smaller of the two ranks' values), made by rdma_cm; the lower rank
 * connects. Every message of one direction of a pair has a sequence number
 * (post order); sender and receiver match by it.
 *
 *  - Eager (bytes <= RDMA_EAGER, zero bytes included): the sender copies the
 *    message behind a header into a bounce slot and RDMA-writes it, with
 *    immediate (EAGER bit | slot), into slot e % E of the receiver's eager
 *    ring for this peer (e = eager message number; inline when it fits). The
 *    receiver copies it out once the matching receive is posted and returns
 *    the slot. Eager traffic uses QP 0, so slots arrive and are freed in
 *    order and one counter (eager_freed) returns them.
 *  - Rendezvous (larger): posting the receive registers its buffer and sends
 *    CTS {seq, bytes, addr, rkey}; posting the send sends RTS {seq, bytes}
 *    (only to check sizes). Once it has the CTS, the sender writes the
 *    message straight into the destination in pieces of RDMA_CHUNK bytes
 *    with RDMA_WRITE_WITH_IMM (imm = pair piece number), piece g on QP g % N,
 *    in piece order, several in flight. Each QP delivers its pieces in order,
 *    so the receiver's completed prefix is everything below the smallest
 *    "next piece" of its QPs.
 *  - Every SEND and WRITE_WITH_IMM consumes a posted RECV at the peer. The
 *    sender spends one credit per message; the receiver reposts each RECV at
 *    once and returns credits in every control message it sends on that QP,
 *    or in a CREDIT message once half the window is owed. A normal message
 *    needs two credits (one stays for CREDIT messages), so the two sides can
 *    never both wait for credits. One extra RECV per QP is kept beyond the
 *    credits for the FAIL notice, which another thread may send at any time.
 *  - Control messages (SEND, QP 0 except CREDIT): CREDIT, RTS, CTS, FAIL
 *    {blame, code}, MISMATCH {seq, my bytes} (sizes disagree: the peer fails
 *    too, naming this rank).
 *
 * Wire formats are fixed-width, host byte order (every rank runs the same
 * build; the setup card's magic and version check), except the immediate,
 * which is big-endian as verbs require.
 */
#ifndef CHORUS_RDMA_IMPL_H
#define CHORUS_RDMA_IMPL_H

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus.h"
#include "rdma.h"
#include "socket.h"
#include "transport.h"

#define RDMA_VERSION 1u
#define RDMA_CARD_MAGIC 0x43524443u  /* "CRDC" */
#define RDMA_HELLO_MAGIC 0x43524848u /* "CRHH" */
#define RDMA_REJECT_MAGIC 0x4352524au /* "CRRJ" */
#define RDMA_CTRL_MAGIC 0x43524354u  /* "CRCT" */
#define RDMA_EAGER_MAGIC 0x43524541u /* "CREA" */
#define RDMA_TOKEN_BYTES 16
#define RDMA_MAX_QPS 8
#define RDMA_MIN_CHUNK 4096u
#define RDMA_MAX_CHUNK (1u << 30)
#define RDMA_MAX_EAGER (256u << 10)
#define RDMA_EAGER_SLOTS 8    /* eager ring slots per peer */
#define RDMA_RECV_CREDITS 64  /* RECVs per QP the peer may consume */
#define RDMA_SEND_DEPTH (RDMA_RECV_CREDITS + 8) /* send records per QP */
#define RDMA_CTRL_BYTES 64    /* a control buffer (struct rdma_ctrl fits) */
#define RDMA_EAGER_HDR 32     /* struct rdma_eager_hdr */
#define RDMA_IMM_EAGER 0x80000000u
#define RDMA_NAME_BYTES (CHORUS_SOCKADDR_STRLEN + 24)
/* A peer naming a message this far ahead of the oldest one is broken. */
#define RDMA_MAX_AHEAD (1u << 20)

enum rdma_ctrl_type {
    RDMA_CTRL_CREDIT = 1,
    RDMA_CTRL_RTS = 2,
    RDMA_CTRL_CTS = 3,
    RDMA_CTRL_FAIL = 4,
    RDMA_CTRL_MISMATCH = 5,
};

/* Kinds of work request, in the low bits of wr_id (the rest: the conn). */
enum rdma_wr_kind { RDMA_WR_SEND = 0, RDMA_WR_RECV = 1, RDMA_WR_FAIL = 2 };
#define RDMA_WR_KIND_MASK 7u

/* A control message. FAIL: seq = rank blamed (-1: none), bytes = code.
 * MISMATCH: seq, bytes = the notifier's size of it, addr = the size the
 * notifier saw from this side (UINT64_MAX: either unknown), rkey = 1 if
 * the notifier posted the receive. */
struct rdma_ctrl {
    uint32_t magic;
    uint16_t type;
    uint16_t credits;     /* RECVs reposted on this QP since the last report */
    uint64_t eager_freed; /* QP 0: eager messages from the peer consumed so far */
    uint64_t seq, bytes, addr;
    uint32_t rkey, pad;
};
_Static_assert(sizeof(struct rdma_ctrl) == 48, "control message has no padding");
_Static_assert(sizeof(struct rdma_ctrl) <= RDMA_CTRL_BYTES, "control message fits its buffer");

/* Before the payload in an eager slot. */
struct rdma_eager_hdr {
    uint32_t magic, pad;
    uint64_t seq, bytes, eager_no;
};
_Static_assert(sizeof(struct rdma_eager_hdr) == RDMA_EAGER_HDR, "eager header has no padding");

/* rdma_connect private data (connector -> acceptor; at most 56 bytes for RC)
 * and rdma_accept private data (acceptor -> connector): the token proves a
 * connection comes from a rank that saw the setup exchange; ring is where
 * the peer may write its eager messages. */
struct rdma_hello {
    uint32_t magic;
    uint16_t version, qp;
    uint32_t from, to;
    uint8_t token[RDMA_TOKEN_BYTES];
    uint64_t ring_addr;
    uint32_t ring_rkey, pad;
};
_Static_assert(sizeof(struct rdma_hello) == 48, "hello has no padding");

/* Private data of a deliberate rejection: the connector stops at once. */
struct rdma_reject {
    uint32_t magic, reason;
};

/* What each rank publishes through the setup allgather. */
struct rdma_card {
    uint32_t magic, version;
    uint32_t nqp, chunk, eager, slots;
    uint8_t token[RDMA_TOKEN_BYTES];
    struct chorus_sockaddr addr; /* rdma_cm listen address (the device's IP) */
    char dev[40];                /* "mlx5_0:1", for messages */
};

/* ---- the chosen device (rdma_dev.c) ---------------------------------------------- */

struct rdma_device {
    struct ibv_context *ctx; /* librdmacm's context of the device */
    int port;
    int gid_index;
    int link_layer;          /* IBV_LINK_LAYER_* */
    int gid_type;            /* IBV_GID_TYPE_*; -1 unknown */
    uint32_t max_msg_sz;
    struct chorus_sockaddr addr; /* port 0 */
    char name[40];           /* "rxe0:1" */
    char locality[32];       /* how near this rank's CPUs (hwloc), for the log */
};

/* Picks the device, port and address by CHORUS_RDMA_HCA and
 * CHORUS_RDMA_GID_INDEX among list[0..n). 0 on success; -1 with why. */
int rdma_pick_device(struct ibv_context **list, int n, const char *hca, long gid_index,
                     struct rdma_device *out, char *why, size_t cap);
/* CHORUS_RDMA_HCA matching, exposed for tests: 1 if device name:port is
 * selected by spec (NULL or empty selects everything). */
int rdma_hca_match(const char *spec, const char *name, int port);
const char *rdma_gid_type_str(int type);

/* ---- the registration cache (rdma_mr.c) ---------------------------------------- */

struct rdma_mr {
    uintptr_t start, end; /* page aligned */
    struct ibv_mr *mr;
    int refs;     /* transfers using it, plus one while the user holds it */
    int user;     /* registered by rdma_register and not yet deregistered */
    int writable; /* remote write allowed (else local read only) */
    int doomed;   /* deregister as soon as unused, whatever the cache bound */
    struct rdma_mr *prev, *next; /* most recently used first */
};

struct rdma_mr_cache {
    struct ibv_pd *pd;
    size_t cap;        /* CHORUS_RDMA_MR_CACHE: bytes of registrations kept */
    size_t bytes;      /* bytes registered now */
    size_t count;
    struct rdma_mr *head, *tail;
    uint64_t hits, misses, evictions; /* for tests and debug logs */
    const char *label;
};

void rdma_mr_cache_init(struct rdma_mr_cache *c, struct ibv_pd *pd, size_t cap,
                        const char *label);
/* A registration covering [buf, buf + len), with remote write if write.
 * Takes a reference; give it back with rdma_mr_put. */
chorus_result_t rdma_mr_get(struct rdma_mr_cache *c, const void *buf, size_t len, int write,
                            struct rdma_mr **out);
void rdma_mr_put(struct rdma_mr_cache *c, struct rdma_mr *m);
/* Drops unused registrations overlapping [buf, buf + len) and dooms the
 * ones in use (the memory is about to go away). */
void rdma_mr_invalidate(struct rdma_mr_cache *c, const void *buf, size_t len);
void rdma_mr_cache_destroy(struct rdma_mr_cache *c);

/* ---- peers and their queue pairs -------------------------------------------------- */

struct rdma_peer;

/* A send record: what a signaled send work request was (they complete in
 * order on their QP). */
struct rdma_sendrec {
    uint8_t kind; /* enum rdma_rec_kind */
};
enum rdma_rec_kind { RDMA_REC_CTRL = 1, RDMA_REC_EAGER = 2, RDMA_REC_PIECE = 3 };

/* One incarnation of a QP: work requests carry it in wr_id, so completions
 * flushed from a QP replaced during setup (a connect retried) are known
 * and dropped. Freed with the transport. */
struct rdma_qph {
    struct rdma_conn *conn;
    int dead;
    struct rdma_qph *next; /* the transport's list of them */
};

struct rdma_conn {
    struct rdma_peer *peer;
    struct rdma_qph *qph;    /* the current QP's */
    int index;               /* QP index in the pair */
    struct rdma_cm_id *id;
    struct ibv_qp *qp;
    int established;
    int max_inline;
    /* setup */
    int active;              /* this rank connects (the peer's rank is higher) */
    int64_t retry_at;        /* ms: restart the connect then (0: not waiting) */
    int attempts;
    const char *last_event;  /* what setup last heard of it, for the timeout text */
    /* receive queue: RECVs complete in order, so slot = rq_done % rq_depth */
    uint8_t *rbufs;          /* [rq_depth][RDMA_CTRL_BYTES] */
    uint64_t rq_done;
    uint32_t owed;           /* RECVs reposted and not yet reported to the peer */
    uint64_t rx_next;        /* next rendezvous piece expected on this QP */
    /* send queue */
    int credits;             /* RECVs the peer posted for us and we did not use */
    struct rdma_sendrec *sq; /* [send_depth] */
    uint8_t *sbufs;          /* [send_depth][RDMA_CTRL_BYTES] */
    uint64_t sq_head, sq_tail;
    uint64_t tx_next;        /* next rendezvous piece whose write completes here */
};

/* One message of one direction of a pair, found by its seq. Entries exist
 * from the oldest unfinished message up to the newest the peer spoke of
 * (a CTS, an RTS or eager data may come before the local post). */
struct rdma_msg {
    struct xfer *x;     /* NULL until posted, and again once complete */
    struct rdma_mr *mr; /* rendezvous: the registration of x->buf */
    uint64_t pbase;     /* rendezvous: pair piece number of the first piece */
    uint32_t npieces;   /* rendezvous: pieces */
    uint32_t sent;      /* sender: pieces posted */
    uint8_t posted, eager, done;
    uint8_t started;    /* sender: eager write or RTS posted; receiver: CTS posted */
    uint8_t remote;     /* receiver: RDMA_GOT_RTS / RDMA_GOT_EAGER; sender: CTS */
    uint32_t slot;      /* receiver: the eager slot holding the data */
    uint64_t rbytes;    /* the peer's size (RTS, CTS or eager header) */
    uint64_t lbytes;    /* our size, kept once done (for error texts) */
    uint64_t raddr;     /* sender: CTS destination */
    uint32_t rkey;
};
#define RDMA_GOT_RTS 1
#define RDMA_GOT_EAGER 2

struct rdma_dir {
    struct rdma_msg *ring; /* [cap], cap a power of two; seq s at s & (cap - 1) */
    uint64_t cap;
    uint64_t head;   /* oldest message not done */
    uint64_t posted; /* seq of the next post */
    uint64_t end;    /* entries exist for seq < end (end >= posted) */
    uint64_t pieces; /* first piece number of the next rendezvous message */
    uint64_t start;  /* sender: next send to start; receiver: next CTS to send */
    uint64_t pcur;   /* sender: the message whose pieces are being posted */
    uint64_t settle; /* first rendezvous message not yet complete */
    int pending;     /* posted and not complete */
};

struct rdma_peer {
    int rank;
    int nqp;
    size_t chunk, eager;
    struct rdma_conn *conns; /* [nqp] */
    struct rdma_dir sends, recvs;
    /* eager */
    uint64_t ring_raddr;     /* the peer's ring for our messages */
    uint32_t ring_rkey;
    size_t rslot_bytes;      /* the peer's eager slot stride */
    int have_ring;
    uint8_t *ring;           /* our ring for its messages [slots][slot_bytes] */
    uint8_t *bounce;         /* our eager sends [slots][slot_bytes] */
    uint64_t eager_sent;     /* eager messages we wrote */
    uint64_t eager_credit;   /* of those, consumed by the peer (reported) */
    uint64_t bounce_done;    /* of those, whose write completed here */
    uint64_t eager_arrived;  /* eager messages from the peer arrived */
    uint64_t eager_consumed; /* of those, copied out */
    uint64_t eager_reported; /* eager_consumed as last told to the peer */
    /* failures */
    int lost;                /* a QP broke or was disconnected */
    char lost_why[200];
    int gave_up;             /* it sent FAIL blaming this rank */
    chorus_result_t gave_up_code;
    /* the transport's list of peers with work to try */
    int on_ready;
    struct rdma_peer *ready_next;
};

struct rdma_transport {
    struct transport base;
    int rank, nranks;
    _Atomic int fail_sent; /* rdma_fail ran (it tells peers only once) */
    char label[96];
    struct ibv_context **devlist; /* rdma_get_devices */
    struct rdma_device dev;
    struct ibv_pd *pd;
    struct ibv_comp_channel *comp;
    struct ibv_cq *cq;
    int cq_size;
    unsigned cq_unacked;
    struct rdma_event_channel *cm;
    struct rdma_cm_id *listen_id; /* setup only */
    struct rdma_peer **peers;     /* [nranks]; NULL: not connected */
    struct rdma_qph *qphs;        /* every QP incarnation */
    char (*names)[RDMA_NAME_BYTES];
    char name_spare[RDMA_NAME_BYTES];
    struct rdma_peer *ready;
    int completed;                /* transfers completed in this progress call */
    int moved;                    /* receives whose prefix grew in it */
    chorus_result_t broken;       /* first error; CHORUS_SUCCESS while usable */
    char broken_text[512];
    struct rdma_mr_cache mrc;
    /* one registration each for every peer's control/bounce buffers and for
     * the eager rings the peers write into */
    uint8_t *local_mem, *ring_mem;
    size_t local_bytes, ring_bytes;
    struct ibv_mr *local_mr, *ring_mr;
    struct rdma_ctrl *fail_msg;   /* in local_mem */
    int rq_depth, send_depth, slots;
    size_t slot_bytes;
};

/* Pieces of a rendezvous message. */
static inline uint64_t rdma_pieces(size_t bytes, size_t chunk)
{
    return bytes == 0 ? 1 : ((uint64_t)bytes + chunk - 1) / chunk;
}

static inline struct rdma_msg *rdma_msg_at(struct rdma_dir *d, uint64_t seq)
{
    return &d->ring[seq & (d->cap - 1)];
}

/* rdma_xfer.c: 1 if the receive x would be the next one from p and its
 * data has already arrived whole in an eager slot (it completes at post,
 * even once the peer is gone: a peer that sent its last message and left). */
int rdma_recv_arrived(struct rdma_peer *p, const struct xfer *x);

extern const struct transport_ops rdma_transport_ops;

/* rdma.c */
void rdma_destroy(struct transport *t);
chorus_result_t rdma_breaks(struct rdma_transport *t, chorus_result_t res, int blame,
                            chorus_result_t blame_code);
void rdma_make_ready(struct rdma_transport *t, struct rdma_peer *p);
/* Posts the RECV of slot k on c; 0 or an errno. */
int rdma_post_recv(struct rdma_transport *t, struct rdma_conn *c, uint64_t k);
/* A FAIL notice from p. */
chorus_result_t rdma_on_fail(struct rdma_transport *t, struct rdma_peer *p,
                             const struct rdma_ctrl *m);

/* rdma_xfer.c: the protocol */
chorus_result_t rdma_xfer_post(struct rdma_transport *t, struct rdma_peer *p, struct xfer *x);
chorus_result_t rdma_service(struct rdma_transport *t, struct rdma_peer *p);
chorus_result_t rdma_on_ctrl(struct rdma_transport *t, struct rdma_conn *c,
                             const struct rdma_ctrl *m);
chorus_result_t rdma_on_eager(struct rdma_transport *t, struct rdma_peer *p, uint32_t slot);
chorus_result_t rdma_on_piece(struct rdma_transport *t, struct rdma_conn *c, uint32_t imm);
chorus_result_t rdma_on_send_done(struct rdma_transport *t, struct rdma_conn *c, int kind);
void rdma_dir_free(struct rdma_transport *t, struct rdma_dir *d);
/* Posts a control message on c if it has need credits and a send slot:
 * 0 posted, -1 blocked, else an errno. */
int rdma_send_ctrl(struct rdma_transport *t, struct rdma_conn *c, int type, uint64_t seq,
                   uint64_t bytes, uint64_t addr, uint32_t rkey, int need);

/* rdma_conn.c: every rank's QPs to its peers; 0 or an error (t half built). */
chorus_result_t rdma_connect_all(struct rdma_transport *t, const struct transport_setup *setup);

#endif
