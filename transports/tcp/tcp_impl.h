/* tcp_impl.h - internals of the TCP transport, shared by tcp_conn.c (making
 * the connections) and tcp.c (moving data over them).
 *
 * Per pair of ranks: one control connection (always read; carries FAIL
 * notices) and N data connections (N = CHORUS_NET_SOCKETS, 1..16, the smaller
 * of the two ranks' values). A message of B bytes travels as pieces of at
 * most NET_CHUNK bytes (at least one, even for B = 0). The pair numbers its
 * pieces in post order, one counter per direction; piece g goes to data
 * connection g % N. Sender and receiver compute the same assignment, so each
 * data connection carries a FIFO of pieces whose order the receiver knows,
 * and the receiver reads a connection only when the receive owning its next
 * piece is posted: unread data stays in the kernel, and TCP flow control is
 * the backpressure.
 *
 * Wire format (fixed-width fields in host byte order: every rank runs the
 * same build, which the setup card's magic and version check):
 *   hello  connector -> acceptor, first bytes of every connection:
 *          u32 magic "CTCH" | u16 version | u16 index (0 control, 1..N data)
 *          | u32 from rank | u32 to rank | u8 token[16] (the acceptor's)
 *   header before every data piece, and alone as a control message:
 *          u32 magic "CTCP" | u32 type | u64 seq | u64 offset | u64 len
 *          | u64 total
 *          DATA: seq = message number on the pair, offset and len = the
 *                piece's range in the message, total = message bytes;
 *          FAIL: seq = the rank blamed (-1: none), total = its result code.
 *
 * The token proves that a connection comes from a rank that saw the
 * (authenticated) setup exchange, so a stray client cannot take a slot.
 */
#ifndef CHORUS_TCP_IMPL_H
#define CHORUS_TCP_IMPL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus.h"
#include "socket.h"
#include "transport.h"

#define TCP_MAX_SOCKETS 16
#define TCP_TOKEN_BYTES 16
#define TCP_VERSION 1u
#define TCP_HELLO_MAGIC 0x43544348u /* "CTCH" */
#define TCP_HDR_MAGIC 0x43544350u   /* "CTCP" */
#define TCP_CARD_MAGIC 0x43544343u  /* "CTCC" */
/* Pieces smaller than this would cost more in headers than they carry. */
#define TCP_MIN_CHUNK 1024u
#define TCP_MAX_CHUNK (1u << 30)
#define TCP_NAME_BYTES (CHORUS_SOCKADDR_STRLEN + 24)

enum tcp_msg_type { TCP_MSG_DATA = 1, TCP_MSG_FAIL = 2 };

struct tcp_hello {
    uint32_t magic;
    uint16_t version;
    uint16_t index;
    uint32_t from, to;
    uint8_t token[TCP_TOKEN_BYTES];
};
#define TCP_HELLO_BYTES 32
_Static_assert(sizeof(struct tcp_hello) == TCP_HELLO_BYTES, "hello has no padding");

struct tcp_hdr {
    uint32_t magic;
    uint32_t type;
    uint64_t seq, offset, len, total;
};
#define TCP_HDR_BYTES 40
_Static_assert(sizeof(struct tcp_hdr) == TCP_HDR_BYTES, "header has no padding");

/* What each rank publishes through the setup allgather. */
struct tcp_card {
    uint32_t magic, version;
    uint32_t nsock;  /* data connections this rank wants per peer */
    uint32_t chunk;  /* its NET_CHUNK (clamped) */
    uint8_t token[TCP_TOKEN_BYTES];
    struct chorus_sockaddr addr; /* where it listens */
};

/* One direction of one data connection: the piece it moves next. */
struct tcp_stream {
    uint64_t next;  /* pair piece number (== connection index mod N) */
    struct xfer *x; /* the posted transfer holding piece next; NULL: none yet */
    size_t moved;   /* bytes of that piece (header + payload) moved so far */
    uint8_t hdr[TCP_HDR_BYTES]; /* receive side: the header being read */
};

struct tcp_peer;

struct tcp_sock {
    int fd;
    int index; /* as in the hello: 0 control, i > 0 data connection i - 1 */
    struct tcp_peer *peer;
    int readable, writable; /* edge-triggered readiness not yet used up */
    int on_ready;           /* queued on the transport's ready list */
    struct tcp_sock *ready_next;
    struct tcp_stream tx, rx;
};

/* Posted transfers of one direction of a pair, in post order.
 * struct xfer's private fields as this transport uses them:
 *   seq           message number on the pair (this direction);
 *   chunks_posted pair piece number of the message's first piece;
 *   chunks_done   pieces of the message in the completed prefix. */
struct tcp_queue {
    struct xfer *head, *tail;
    uint64_t next_seq;   /* seq of the next transfer posted */
    uint64_t next_piece; /* first piece number of the next transfer posted */
};

struct tcp_peer {
    int rank;
    int nsock;    /* data connections of this pair */
    size_t chunk; /* piece size of this pair */
    struct tcp_sock ctrl;
    struct tcp_sock *data; /* [nsock] */
    struct tcp_queue sends, recvs;
    int ctrl_eof; /* the peer closed its control connection (not an error) */
    int gave_up;  /* it stopped waiting for this rank: later transfers with it fail */
    chorus_result_t gave_up_code;
};

struct tcp_transport {
    struct transport base;
    int rank, nranks;
    _Atomic int fail_sent;             /* tcp_fail ran (it tells peers only once) */
    char label[96];
    int epfd;
    struct tcp_peer **peers;           /* [nranks]; NULL: not connected */
    char (*names)[TCP_NAME_BYTES];     /* [nranks] "rank q (addr:port)" */
    char name_spare[TCP_NAME_BYTES];   /* peer_name of an out-of-range rank */
    struct tcp_sock *ready;            /* sockets with work they may be able to do */
    int completed;                     /* transfers completed in this progress call */
    chorus_result_t broken;            /* first error; CHORUS_SUCCESS while usable */
    char broken_text[512];
};

/* Pieces of a message of bytes (at least one). */
static inline uint64_t tcp_pieces(size_t bytes, size_t chunk)
{
    return bytes == 0 ? 1 : ((uint64_t)bytes + chunk - 1) / chunk;
}

extern const struct transport_ops tcp_transport_ops;

/* tcp.c: closes every socket of t and frees it (t may be half built). */
void tcp_destroy(struct transport *t);

#endif
