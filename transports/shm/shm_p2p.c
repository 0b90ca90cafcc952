/* shm_p2p.c - point-to-point messages between two ranks of one node.
 *
 * Rank a sends to rank b through SHM_P2P_SLOTS eager slots in a's segment;
 * a counts slots posted (head, in a's segment, and the seq in each slot's
 * header, which is what b polls), b counts slots consumed (tail, in b's
 * segment; a reads it only when the slots it last knew free are used up).
 * A message is one or more slots, each starting with a header carrying the
 * message's total size, so a receive of the wrong size is detected (and the
 * message drained) instead of corrupting the stream.
 * Large messages send one header with the buffer address and the receiver
 * pulls the data with process_vm_readv (single copy); the sender then waits
 * until the receiver has consumed it. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "shm_algos.h"

#include <sched.h>
#include <string.h>
#include <time.h>

#include "error.h"

struct send_op {
    const char *buf;
    size_t bytes, sent;
    int peer, single_copy, posted, done;
    uint32_t target; /* single copy: tail value that means "read" */
};

struct recv_op {
    char *buf;
    size_t bytes, got;
    uint64_t total;
    int peer, started, done;
    chorus_result_t res;
};

static char *slot_at(struct shm_comm *s, int from, int to, uint32_t index)
{
    return s->p2p[from] + ((size_t)to * SHM_P2P_SLOTS + index % SHM_P2P_SLOTS) * s->p2p_slot;
}

/* Pushes what fits; returns 1 if anything moved. */
static int try_send(struct shm_comm *s, struct send_op *op)
{
    struct shm_line *head = shm_p2p_head(s->ctrl[s->rank], op->peer);
    struct shm_line *tail = shm_p2p_tail(s->ctrl[op->peer], s->rank);
    uint32_t h = atomic_load_explicit(&head->value, memory_order_relaxed);
    uint32_t *seen = &s->p2p_tail_seen[op->peer];
    if (op->single_copy && op->posted) {
        *seen = atomic_load_explicit(&tail->value, memory_order_acquire);
        op->done = chorus_serial_geq(*seen, op->target);
        return op->done;
    }
    /* The receiver's tail line is read only when the slots known free are
     * used up: the common small message touches no line of the receiver's. */
    if (h - *seen >= SHM_P2P_SLOTS)
        *seen = atomic_load_explicit(&tail->value, memory_order_acquire);
    int moved = 0;
    const size_t cap = s->p2p_slot - sizeof(struct shm_p2p_hdr);
    while (!op->done && h - *seen < SHM_P2P_SLOTS) {
        char *slot = slot_at(s, s->rank, op->peer, h);
        struct shm_p2p_hdr *hdr = (struct shm_p2p_hdr *)slot;
        hdr->total = op->bytes;
        if (op->single_copy) {
            hdr->addr = (uint64_t)(uintptr_t)op->buf;
            hdr->len = 0;
            op->posted = 1;
            op->target = h + 1;
        } else {
            size_t len = op->bytes - op->sent < cap ? op->bytes - op->sent : cap;
            hdr->addr = 0;
            hdr->len = len;
            if (len) /* buf may be NULL for an empty message */
                memcpy(hdr + 1, op->buf + op->sent, len);
            op->sent += len;
            op->done = op->sent == op->bytes;
        }
        h++;
        atomic_store_explicit(&hdr->seq, h, memory_order_release);
        /* head is this rank's own count (read back above and by nobody
         * else's fast path); no sleeper waits on it, so no wake-up check. */
        atomic_store_explicit(&head->value, h, memory_order_relaxed);
        moved = 1;
        if (op->single_copy)
            break;
        if (h - *seen >= SHM_P2P_SLOTS)
            *seen = atomic_load_explicit(&tail->value, memory_order_acquire);
    }
    return moved;
}

/* Consumes what has arrived; returns 1 if anything moved. */
static int try_recv(struct shm_comm *s, struct recv_op *op)
{
    struct shm_line *tail = shm_p2p_tail(s->ctrl[s->rank], op->peer);
    uint32_t t = atomic_load_explicit(&tail->value, memory_order_relaxed);
    int moved = 0;
    for (;;) {
        struct shm_p2p_hdr *hdr = (struct shm_p2p_hdr *)slot_at(s, op->peer, s->rank, t);
        if (op->done || atomic_load_explicit(&hdr->seq, memory_order_acquire) != t + 1)
            break;
        if (!op->started) {
            op->started = 1;
            op->total = hdr->total;
            if (op->total != op->bytes)
                op->res = CHORUS_ERR(CHORUS_INVALID_USAGE, "%s: rank %d sent %llu bytes but "
                                     "rank %d posted a receive of %zu bytes; message dropped",
                                     s->label, op->peer, (unsigned long long)op->total,
                                     s->rank, op->bytes);
        }
        if (hdr->addr) {
            if (op->res == CHORUS_SUCCESS)
                op->res = shm_cma_read(s, op->peer, op->buf, hdr->addr, op->total);
            op->got = op->total;
        } else {
            if (op->res == CHORUS_SUCCESS && hdr->len)
                memcpy(op->buf + op->got, hdr + 1, hdr->len);
            op->got += hdr->len;
        }
        op->done = op->got >= op->total;
        t++;
        shm_post(s, tail, t);
        moved = 1;
    }
    return moved;
}

/* Drives both operations (either may be NULL) to completion. With nothing
 * to do, spins, then yields, then naps briefly: a futex can watch only one
 * counter and either side may unblock us. */
static chorus_result_t progress(struct shm_comm *s, struct send_op *snd, struct recv_op *rcv)
{
    int64_t start = 0, next_check = 0, now = 0;
    for (unsigned polls = 0;; polls++) {
        int moved = 0;
        if (snd && !snd->done)
            moved |= try_send(s, snd);
        if (rcv && !rcv->done)
            moved |= try_recv(s, rcv);
        int snd_done = !snd || snd->done, rcv_done = !rcv || rcv->done;
        if (snd_done && rcv_done)
            return rcv ? rcv->res : CHORUS_SUCCESS;
        if (moved) {
            start = 0;
            continue;
        }
        /* Spinning: one pause per poll (a pause is ~50 ns here), the clock
         * only every 64 polls. */
        if (start && (polls & 63) != 0 && now - start < s->policy.spin_ns) {
            chorus_cpu_relax();
            continue;
        }
        now = chorus_now_ns();
        if (!start)
            start = next_check = now;
        int64_t waited = now - start;
        if (now >= next_check) {
            int timed_out = s->policy.timeout_ns > 0 && waited >= s->policy.timeout_ns;
            int q = !rcv_done ? rcv->peer : snd->peer;
            CHORUS_CHECK(shm_health(s, q, 0, 0, timed_out));
            next_check = now + 100000;
        }
        if (waited < s->policy.spin_ns) {
            chorus_cpu_relax();
        } else if (waited < s->policy.yield_ns) {
            sched_yield();
        } else {
            struct timespec nap = {0, 50000};
            nanosleep(&nap, NULL);
        }
    }
}

static void init_send(struct shm_comm *s, struct send_op *op, const void *buf, size_t bytes,
                      int peer)
{
    memset(op, 0, sizeof *op);
    op->buf = buf;
    op->bytes = bytes;
    op->peer = peer;
    op->single_copy = s->cma && bytes >= s->cma_min && bytes > 0;
}

static void init_recv(struct recv_op *op, void *buf, size_t bytes, int peer)
{
    memset(op, 0, sizeof *op);
    op->buf = buf;
    op->bytes = bytes;
    op->peer = peer;
    op->res = CHORUS_SUCCESS;
}

chorus_result_t shm_send(struct shm_comm *s, const void *buf, size_t bytes, int peer)
{
    struct send_op op;
    init_send(s, &op, buf, bytes, peer);
    return progress(s, &op, NULL);
}

chorus_result_t shm_recv(struct shm_comm *s, void *buf, size_t bytes, int peer)
{
    struct recv_op op;
    init_recv(&op, buf, bytes, peer);
    return progress(s, NULL, &op);
}

chorus_result_t shm_sendrecv(struct shm_comm *s, const void *sendbuf, size_t sendbytes, int dest,
                             void *recvbuf, size_t recvbytes, int source)
{
    struct send_op snd;
    struct recv_op rcv;
    init_send(s, &snd, sendbuf, sendbytes, dest);
    init_recv(&rcv, recvbuf, recvbytes, source);
    return progress(s, &snd, &rcv);
}
