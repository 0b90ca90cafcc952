/* transport.h - what the plan executor needs from a network transport.
 *
 * A transport joins the ranks of one communicator point to point. The
 * executor posts transfers (a send or a receive of a byte range to or from a
 * peer) and drives them with progress(); nothing happens in the background.
 * Each transport is an ops table behind struct transport (TCP today; RDMA
 * later), so the executor never knows which one it runs on.
 *
 * Rules every transport keeps:
 *  - Per ordered pair (a -> b), sends are matched to receives in post order;
 *    the byte counts must agree (a mismatch is CHORUS_INVALID_USAGE naming
 *    the peer). Zero-byte transfers are real messages.
 *  - A receive delivers straight into its buffer; x->done grows as a prefix
 *    of the range arrives (the executor reduces what has arrived while the
 *    rest is in flight).
 *  - Failures name the peer: a closed or reset connection the transfer
 *    needs is CHORUS_REMOTE_ERROR ("connection to rank 3 (10.0.0.2:4711)
 *    closed"); a failure notice from a peer (fail()) is CHORUS_REMOTE_ERROR
 *    naming the rank it blames. After an error the transport is unusable.
 *  - progress() never blocks longer than wait_ms, and returns early when a
 *    transfer completes or a failure is seen.
 */
#ifndef CHORUS_TRANSPORT_H
#define CHORUS_TRANSPORT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "chorus.h"

struct transport;

/* One posted send or receive. The caller owns the memory (it must stay put
 * until complete) and fills peer, buf, bytes, is_send before post(). */
struct xfer {
    int peer;      /* communicator rank */
    int is_send;
    void *buf;
    size_t bytes;
    /* set by the transport */
    size_t done;   /* bytes transferred so far (a prefix of buf) */
    int complete;  /* 1 once every byte moved (for a send: handed to the kernel) */
    /* private to the transport */
    struct xfer *next;
    uint64_t seq;      /* message number on its pair */
    size_t chunks_posted, chunks_done;
};

/* Exchange of setup data among the communicator's ranks: all[r * size ..]
 * receives rank r's mine (an allgather; the bootstrap provides it). */
typedef chorus_result_t (*transport_allgather_fn)(void *ctx, const void *mine, void *all,
                                                  size_t size);

struct transport_setup {
    int rank, nranks;
    const uint8_t *need_peer;  /* [nranks] 1: connect to this rank; NULL: all others */
    transport_allgather_fn allgather;
    void *allgather_ctx;
    int timeout_ms;            /* connection setup bound */
    const char *label;         /* "comm x rank r/n", first words of error texts */
    _Atomic int *abort_flag;   /* the communicator's abort flag */
};

struct transport_ops {
    const char *name;
    /* Queues x; it starts moving at the next progress(). */
    chorus_result_t (*post)(struct transport *t, struct xfer *x);
    /* Moves data on every connection for at most wait_ms (0: do what can be
     * done now and return). */
    chorus_result_t (*progress)(struct transport *t, int wait_ms);
    /* Best effort, never blocks: tells every connected peer that this rank
     * gave up, blaming rank blame with code. */
    void (*fail)(struct transport *t, int blame, chorus_result_t code);
    /* Describes peer for error texts ("rank 3 (10.0.0.2:4711)"). */
    const char *(*peer_name)(struct transport *t, int peer);
    /* Closes every connection and frees t. Pending transfers are dropped. */
    void (*destroy)(struct transport *t);
};

struct transport {
    const struct transport_ops *ops;
    /* After a failure: the rank held responsible (the peer whose connection
     * broke, or the rank a failure notice blamed) and the code; -1 if none.
     * The communicator passes it on in its own failure notices. */
    int blame;
    chorus_result_t blame_code;
};

/* transports/tcp: sockets per peer from CHORUS_NET_SOCKETS, interface from
 * CHORUS_SOCKET_IFNAME. Collective over setup->allgather. */
chorus_result_t tcp_transport_create(struct transport **out, const struct transport_setup *setup);

/* transports/rdma: RC queue pairs per peer over libibverbs, connected with
 * librdmacm; device from CHORUS_RDMA_HCA, QPs per peer from
 * CHORUS_RDMA_QPS_PER_PEER. Collective over setup->allgather. In a build
 * without verbs it fails with CHORUS_INVALID_USAGE saying so. */
chorus_result_t rdma_transport_create(struct transport **out, const struct transport_setup *setup);
/* 1 if this process can use an RDMA device (CHORUS_RDMA_HCA and
 * CHORUS_RDMA_GID_INDEX applied): why receives the device ("mlx5_0:1").
 * Else 0 and why says what is missing. Opens the devices, so a process
 * that forks children to use RDMA must not call it before fork. */
int rdma_transport_available(char *why, size_t cap);

#endif
