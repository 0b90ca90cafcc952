/* watchdog.c - the straggler watchdog (see watchdog.h).
 *
 * One thread per communicator of more than one rank. It sleeps in poll()
 * on its UDP socket and a wake-up descriptor, about every CHORUS_WATCHDOG_MS
 * / 4 (at most 1 s), and each time:
 *   - answers the peers' queries with this rank's counters (so a rank whose
 *     application thread computes still tells where it is);
 *   - looks at its own communicator: when the oldest unfinished collective
 *     (number done + 1) has run longer than CHORUS_WATCHDOG_MS, it queries
 *     the peers not yet known to have entered it, collects the replies for
 *     a bounded time (asking once more those that did not answer), and
 *     records which ranks are behind or silent. The first such report of a
 *     collective is logged as a warning; later ones only refresh it.
 * A peer's counters only grow, so a rank known to have entered the
 * collective is never asked again about it: after the first round only the
 * stragglers are queried.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "watchdog.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bootstrap_msg.h"
#include "byteorder.h"
#include "comm.h"
#include "error.h"
#include "log.h"
#include "socket.h"
#include "tunables.h"
#include "wait.h"

#define SUBSYS "watchdog"
/* How many positions ("rank 3 is at #16") a report quotes, and the length
 * of one of its rank lists before it is cut ("... (N in all)"). */
#define MAX_POSITIONS 4
#define LIST_CHARS 160
/* The report sentence (fits chorus_get_last_error's buffer). */
#define TEXT_CAP 800
/* A peer that has not answered for this many check periods is "silent". */
#define SILENT_PERIODS 4

enum peer_state { PEER_UNKNOWN, PEER_BEHIND, PEER_ENTERED };
enum { ASK_NONE, ASK_WAITING, ASK_ANSWERED };

struct peer {
    uint8_t addr[24];  /* its card's address; all zero: no watchdog there */
    uint64_t entered;  /* the highest count it reported for the watched collective */
    int64_t heard_ms;  /* its last reply about the watched collective; 0: none */
    int8_t state;      /* enum peer_state, about the watched collective */
    int8_t ask;        /* this round: ASK_* */
};

struct watchdog {
    chorus_comm_t comm;
    int fd, wake_fd;
    int watch_ms;  /* CHORUS_WATCHDOG_MS */
    int period_ms; /* between checks, and the poll timeout */
    int reply_ms;  /* how long one round collects replies */
    uint8_t key[16];
    uint8_t salt[8];
    uint64_t identity;
    struct peer *peers; /* [nranks] */
    int *targets;       /* [nranks] this round's queried ranks */
    uint64_t nonce;       /* the current round's */
    uint64_t first_nonce; /* the first round's of the watched collective */
    uint64_t watched;     /* the collective the peer states describe; 0: none */
    int rounds;           /* of queries about the watched collective */
    uint64_t noted;       /* last collective logged about */
    _Atomic uint64_t dropped;
    pthread_t thread;
    int started;
    pthread_mutex_t stop_lock;

    /* What the running collective is, for the report's text: written by the
     * calling thread with relaxed stores (no lock, no clock: a collective
     * must not pay for the watchdog), read by the thread. A read racing the
     * next collective's start may describe that one: text only. */
    _Atomic int cur_kind, cur_type;
    _Atomic size_t cur_count;
    /* The thread's own clock of the oldest unfinished collective: when it
     * first saw number seen_seq unfinished (so a stall is noticed between
     * WATCHDOG_MS and WATCHDOG_MS + one check period after it began). */
    uint64_t seen_seq;
    int64_t seen_ns;

    pthread_mutex_t lock; /* guards the report */
    uint64_t report_seq; /* 0: nothing stalled */
    int report_n;
    int *report_ranks; /* [nranks] */
    char report_text[TEXT_CAP];
};

static int64_t now_ms(void) { return chorus_now_ns() / 1000000; }

/* A card's address: u16 family (1 IPv4, 2 IPv6), u16 port, u32 scope, 16 bytes. */
static void addr_encode(const struct chorus_sockaddr *a, uint8_t out[24])
{
    memset(out, 0, 24);
    if (a->u.sa.sa_family == AF_INET) {
        put16(out, 1);
        put16(out + 2, ntohs(a->u.in4.sin_port));
        memcpy(out + 8, &a->u.in4.sin_addr, 4);
    } else if (a->u.sa.sa_family == AF_INET6) {
        put16(out, 2);
        put16(out + 2, ntohs(a->u.in6.sin6_port));
        put32(out + 4, a->u.in6.sin6_scope_id);
        memcpy(out + 8, &a->u.in6.sin6_addr, 16);
    }
}

/* 0 and *a filled, or -1 for "no watchdog there" (or an address we cannot use). */
static int addr_decode(const uint8_t in[24], struct chorus_sockaddr *a)
{
    memset(a, 0, sizeof *a);
    uint16_t family = get16(in), port = get16(in + 2);
    if (port == 0)
        return -1;
    if (family == 1) {
        a->u.in4.sin_family = AF_INET;
        a->u.in4.sin_port = htons(port);
        memcpy(&a->u.in4.sin_addr, in + 8, 4);
        a->len = sizeof a->u.in4;
        return 0;
    }
    if (family == 2) {
        a->u.in6.sin6_family = AF_INET6;
        a->u.in6.sin6_port = htons(port);
        a->u.in6.sin6_scope_id = get32(in + 4);
        memcpy(&a->u.in6.sin6_addr, in + 8, 16);
        a->len = sizeof a->u.in6;
        return 0;
    }
    return -1;
}

/* ---- datagrams ---------------------------------------------------------------- */

static void msg_encode(const struct watchdog *w, uint8_t m[WATCHDOG_MSG_BYTES], unsigned type,
                       uint64_t nonce)
{
    chorus_comm_t comm = w->comm;
    put32(m, WATCHDOG_MAGIC);
    put16(m + 4, WATCHDOG_VERSION);
    put16(m + 6, (uint16_t)type);
    put64(m + 8, w->identity);
    put32(m + 16, (uint32_t)comm->rank);
    put32(m + 20, (uint32_t)comm->nranks);
    put64(m + 24, nonce);
    put64(m + 32, atomic_load(&comm->coll_entered));
    put64(m + 40, atomic_load(&comm->coll_done));
    put64(m + WATCHDOG_MAC_OFFSET, chorus_siphash24(w->key, m, WATCHDOG_MAC_OFFSET));
}

/* NULL if m (len bytes as received) is a datagram of this communicator from
 * a peer, else why not. */
static const char *msg_check(const struct watchdog *w, const uint8_t *m, ssize_t len)
{
    if (len != (ssize_t)WATCHDOG_MSG_BYTES)
        return "wrong size";
    if (get32(m) != WATCHDOG_MAGIC || get16(m + 4) != WATCHDOG_VERSION)
        return "not a watchdog datagram of this version";
    unsigned type = get16(m + 6);
    if (type != WATCHDOG_QUERY && type != WATCHDOG_REPLY)
        return "unknown type";
    if (get64(m + 8) != w->identity || get32(m + 20) != (uint32_t)w->comm->nranks)
        return "another communicator's";
    uint32_t from = get32(m + 16);
    if (from >= (uint32_t)w->comm->nranks || from == (uint32_t)w->comm->rank)
        return "bad sender rank";
    uint8_t want[8];
    put64(want, chorus_siphash24(w->key, m, WATCHDOG_MAC_OFFSET));
    if (!chorus_bsmsg_mac_equal(want, m + WATCHDOG_MAC_OFFSET))
        return "bad MAC";
    return NULL;
}

/* 0 sent, 1 the socket is full (try later), -1 failed otherwise (logged). */
static int send_to(struct watchdog *w, int rank, unsigned type, uint64_t nonce)
{
    struct chorus_sockaddr to;
    if (addr_decode(w->peers[rank].addr, &to) != 0)
        return -1;
    uint8_t m[WATCHDOG_MSG_BYTES];
    msg_encode(w, m, type, nonce);
    for (;;) {
        if (sendto(w->fd, m, sizeof m, MSG_DONTWAIT | MSG_NOSIGNAL, &to.u.sa, to.len) ==
            (ssize_t)sizeof m)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 1;
        char s[CHORUS_SOCKADDR_STRLEN];
        LOG_DEBUG(SUBSYS, "%s: sending to rank %d (%s) failed: %s", w->comm->label, rank,
                  chorus_sockaddr_str(&to, s, sizeof s), strerror(errno));
        return -1;
    }
}

/* A reply about the watched collective (nonce of one of its rounds). */
static void note_reply(struct watchdog *w, const uint8_t *m)
{
    uint64_t nonce = get64(m + 24), entered = get64(m + 32);
    if (!w->watched || nonce < w->first_nonce || nonce > w->nonce)
        return; /* about an earlier collective, or not ours */
    struct peer *p = &w->peers[get32(m + 16)];
    if (entered > p->entered)
        p->entered = entered;
    p->heard_ms = now_ms();
    p->state = p->entered >= w->watched ? PEER_ENTERED : PEER_BEHIND;
    if (nonce == w->nonce && p->ask == ASK_WAITING)
        p->ask = ASK_ANSWERED;
}

/* Reads the datagrams waiting on the socket: answers queries, notes replies. */
static void drain(struct watchdog *w)
{
    /* bounded, so a flood cannot keep the thread from its own checks */
    for (int i = 0; i < 4 * w->comm->nranks + 64; i++) {
        uint8_t m[WATCHDOG_MSG_BYTES + 8];
        struct sockaddr_storage src;
        socklen_t sl = sizeof src;
        ssize_t len = recvfrom(w->fd, m, sizeof m, MSG_DONTWAIT | MSG_TRUNC,
                               (struct sockaddr *)&src, &sl);
        if (len < 0) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN: empty; anything else: try again at the next wake-up */
        }
        const char *why = msg_check(w, m, len);
        if (why) {
            atomic_fetch_add(&w->dropped, 1);
            if (chorus_log_level() >= CHORUS_LOG_DEBUG) {
                struct chorus_sockaddr from;
                char s[CHORUS_SOCKADDR_STRLEN] = "?";
                if (chorus_sockaddr_set(&from, (struct sockaddr *)&src, sl) == CHORUS_SUCCESS)
                    chorus_sockaddr_str(&from, s, sizeof s);
                LOG_DEBUG(SUBSYS, "%s: dropped a %zd-byte datagram from %s: %s", w->comm->label,
                          len, s, why);
            }
            continue;
        }
        if (get16(m + 6) == WATCHDOG_QUERY)
            (void)send_to(w, (int)get32(m + 16), WATCHDOG_REPLY, get64(m + 24));
        else
            note_reply(w, m);
    }
}

/* ---- a round of queries ------------------------------------------------------------- */

/* Sends this round's queries from target index i on; returns where it
 * stopped (nt when done, earlier when the socket is full). */
static int send_queries(struct watchdog *w, int nt, int i)
{
    for (; i < nt; i++) {
        if (w->peers[w->targets[i]].ask != ASK_WAITING)
            continue;
        if (send_to(w, w->targets[i], WATCHDOG_QUERY, w->nonce) == 1)
            break;
    }
    return i;
}

/* Asks the nt targets, collecting replies for up to reply_ms (asking the
 * silent ones once more halfway). -1 if told to stop meanwhile. */
static int ask(struct watchdog *w, int nt)
{
    w->nonce++;
    for (int i = 0; i < nt; i++)
        w->peers[w->targets[i]].ask = ASK_WAITING;
    int64_t start = now_ms(), resend_at = start + w->reply_ms / 2,
            deadline = start + w->reply_ms;
    int cursor = 0, resent = 0;
    for (;;) {
        cursor = send_queries(w, nt, cursor);
        int waiting = 0;
        for (int i = 0; i < nt; i++)
            waiting += w->peers[w->targets[i]].ask == ASK_WAITING;
        int64_t now = now_ms();
        if (!waiting || now >= deadline)
            break;
        if (!resent && now >= resend_at) {
            resent = 1;
            cursor = 0;
            continue;
        }
        int64_t until = resent ? deadline : resend_at;
        struct pollfd p[2] = {{.fd = w->fd, .events = (short)(POLLIN | (cursor < nt ? POLLOUT : 0))},
                              {.fd = w->wake_fd, .events = POLLIN}};
        int rc = poll(p, 2, (int)(until - now));
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0 && p[1].revents)
            return -1;
        if (rc > 0 && (p[0].revents & POLLIN))
            drain(w);
    }
    for (int i = 0; i < nt; i++)
        w->peers[w->targets[i]].ask = ASK_NONE;
    return 0;
}

/* ---- the report ------------------------------------------------------------------------ */

/* Appends to buf (of cap, holding a string) like snprintf. */
static void append(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* "3,5,8-11" of the n ascending ranks, cut after about LIST_CHARS characters. */
static void append_ranks(char *buf, size_t cap, const int *ranks, int n)
{
    size_t start = strlen(buf);
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && ranks[j + 1] == ranks[j] + 1)
            j++;
        if (strlen(buf) - start > LIST_CHARS) {
            append(buf, cap, ",... (%d in all)", n);
            return;
        }
        const char *sep = i ? "," : "";
        if (j - i >= 2) {
            append(buf, cap, "%s%d-%d", sep, ranks[i], ranks[j]);
            i = j + 1;
        } else {
            append(buf, cap, "%s%d", sep, ranks[i]);
            i++;
        }
    }
}

/* Builds the report of the watched collective from the peers' states and
 * publishes it; logs the first one of each collective. */
static void publish(struct watchdog *w, coll_kind_t kind, size_t count, chorus_datatype_t type,
                    int64_t waited_ms)
{
    chorus_comm_t comm = w->comm;
    const int n = comm->nranks;
    int64_t now = now_ms(), silent_after = (int64_t)SILENT_PERIODS * (w->period_ms + w->reply_ms);
    /* the round's target list is spent: it holds the ranks behind now */
    int *behind = w->targets, nb = 0, ns = 0, nu = 0, have = 1;
    int *silent = malloc((size_t)n * sizeof *silent), *unwatched = NULL;
    if (!silent)
        return;
    for (int r = 0; r < n; r++) {
        struct peer *p = &w->peers[r];
        struct chorus_sockaddr a;
        if (r == comm->rank)
            continue;
        if (p->state == PEER_ENTERED)
            have++;
        else if (addr_decode(p->addr, &a) != 0)
            nu++;
        else if (p->heard_ms == 0 || now - p->heard_ms > silent_after)
            silent[ns++] = r;
        else
            behind[nb++] = r;
    }
    if (nu && (unwatched = malloc((size_t)nu * sizeof *unwatched)) != NULL) {
        nu = 0;
        for (int r = 0; r < n; r++) {
            struct chorus_sockaddr a;
            if (r != comm->rank && w->peers[r].state != PEER_ENTERED &&
                addr_decode(w->peers[r].addr, &a) != 0)
                unwatched[nu++] = r;
        }
    }

    char text[TEXT_CAP] = "";
    append(text, sizeof text, "%s: collective #%llu (%s", comm->label,
           (unsigned long long)w->watched, coll_name(kind));
    if (kind == COLL_ALLTOALLV)
        append(text, sizeof text, ", %s", chorus_type_name(type));
    else if (kind != COLL_BARRIER)
        append(text, sizeof text, ", %zu x %s", count, chorus_type_name(type));
    append(text, sizeof text, ") waiting %.1f s: ", (double)waited_ms / 1000.0);
    if (nb == 1) {
        append(text, sizeof text, "rank %d has not entered it (it is at #%llu)", behind[0],
               (unsigned long long)w->peers[behind[0]].entered);
    } else if (nb > 1) {
        append(text, sizeof text, "ranks ");
        append_ranks(text, sizeof text, behind, nb);
        append(text, sizeof text, " have not entered it (");
        for (int i = 0; i < nb && i < MAX_POSITIONS; i++)
            append(text, sizeof text, "%srank %d%s at #%llu", i ? ", " : "", behind[i],
                   i ? "" : " is", (unsigned long long)w->peers[behind[i]].entered);
        append(text, sizeof text, "%s)", nb > MAX_POSITIONS ? ", ..." : "");
    }
    if (ns) {
        append(text, sizeof text, "%s%s ", nb ? "; " : "", ns == 1 ? "rank" : "ranks");
        append_ranks(text, sizeof text, silent, ns);
        append(text, sizeof text, " %s (dead or stopped?)", ns == 1 ? "does not answer"
                                                                    : "do not answer");
    }
    if (nb || ns)
        append(text, sizeof text, "; ");
    append(text, sizeof text, "%d %s%s", have, have == 1 ? "rank has" : "ranks have",
           nb ? "" : " entered it");
    if (nu && unwatched) {
        append(text, sizeof text, "; %s ", nu == 1 ? "rank" : "ranks");
        append_ranks(text, sizeof text, unwatched, nu);
        append(text, sizeof text, " %s no watchdog (CHORUS_WATCHDOG_MS)",
               nu == 1 ? "runs" : "run");
    }

    int held = nb + ns;
    /* One line per collective, written before the report is visible (a
     * program that reads the report finds the line in the log). A peer
     * silent in the first round may only have been slow to answer: the
     * line waits for a second round then. */
    if (w->noted != w->watched && (ns == 0 || w->rounds >= 2) &&
        atomic_load(&comm->coll_done) < w->watched) {
        w->noted = w->watched;
        if (held)
            LOG_WARN(SUBSYS, "%s", text);
        else /* everyone is in: slow data, or a rank stuck inside the collective */
            LOG_INFO(SUBSYS, "%s", text);
    }

    /* ranks holding the collective up, ascending: behind and silent merged */
    pthread_mutex_lock(&w->lock);
    for (int i = 0, j = 0, k = 0; i < nb || j < ns;)
        w->report_ranks[k++] = j >= ns || (i < nb && behind[i] < silent[j]) ? behind[i++]
                                                                               : silent[j++];
    w->report_n = held;
    w->report_seq = held ? w->watched : 0;
    snprintf(w->report_text, sizeof w->report_text, "%s", text);
    pthread_mutex_unlock(&w->lock);
    free(silent);
    free(unwatched);
}

static void clear_report(struct watchdog *w)
{
    pthread_mutex_lock(&w->lock);
    w->report_seq = 0;
    w->report_n = 0;
    pthread_mutex_unlock(&w->lock);
}

/* One look at the communicator; queries the peers if its oldest unfinished
 * collective is overdue. -1 if told to stop meanwhile. */
static int check(struct watchdog *w)
{
    chorus_comm_t comm = w->comm;
    if (atomic_load(&comm->aborted) || atomic_load(&comm->async_error) != CHORUS_SUCCESS) {
        w->watched = 0;
        clear_report(w);
        return 0;
    }
    uint64_t done = atomic_load(&comm->coll_done);
    uint64_t seq = done + 1;
    if (atomic_load(&comm->coll_entered) < seq) { /* nothing running or queued */
        w->watched = 0;
        w->seen_seq = 0;
        return 0;
    }
    int64_t now_ns = chorus_now_ns();
    if (w->seen_seq != seq) { /* a new one: its clock starts now */
        w->seen_seq = seq;
        w->seen_ns = now_ns;
    }
    int64_t waited_ms = (now_ns - w->seen_ns) / 1000000;
    if (waited_ms < w->watch_ms)
        return 0;
    coll_kind_t kind = (coll_kind_t)atomic_load_explicit(&w->cur_kind, memory_order_relaxed);
    size_t count = atomic_load_explicit(&w->cur_count, memory_order_relaxed);
    chorus_datatype_t type =
        (chorus_datatype_t)atomic_load_explicit(&w->cur_type, memory_order_relaxed);
    if (w->watched != seq) {
        w->watched = seq;
        w->first_nonce = w->nonce + 1;
        w->rounds = 0;
        for (int r = 0; r < comm->nranks; r++) {
            w->peers[r].state = PEER_UNKNOWN;
            w->peers[r].entered = 0;
            w->peers[r].heard_ms = 0;
        }
    }
    int nt = 0;
    for (int r = 0; r < comm->nranks; r++) {
        struct chorus_sockaddr a;
        if (r != comm->rank && w->peers[r].state != PEER_ENTERED &&
            addr_decode(w->peers[r].addr, &a) == 0)
            w->targets[nt++] = r;
    }
    if (nt && ask(w, nt) < 0)
        return -1;
    w->rounds++;
    if (atomic_load(&comm->coll_done) >= seq) { /* it finished meanwhile */
        w->watched = 0;
        return 0;
    }
    publish(w, kind, count, type, waited_ms);
    return 0;
}

static void *watchdog_main(void *arg)
{
    struct watchdog *w = arg;
    int64_t next_check = now_ms() + w->period_ms;
    for (;;) {
        int64_t now = now_ms();
        struct pollfd p[2] = {{.fd = w->fd, .events = POLLIN}, {.fd = w->wake_fd, .events = POLLIN}};
        int rc = poll(p, 2, next_check > now ? (int)(next_check - now) : 0);
        if (rc < 0 && errno != EINTR) {
            LOG_WARN(SUBSYS, "%s: poll failed (%s); the watchdog stops", w->comm->label,
                     strerror(errno));
            break;
        }
        if (rc > 0 && p[1].revents)
            break;
        if (rc > 0 && (p[0].revents & POLLIN))
            drain(w);
        now = now_ms();
        if (now >= next_check) {
            if (check(w) < 0)
                break;
            next_check = now_ms() + w->period_ms;
        }
    }
    return NULL;
}

/* ---- life cycle --------------------------------------------------------------------------- */

static int clamp(long v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }

/* Opens the UDP socket on the bootstrap's interface (ephemeral port). */
static chorus_result_t open_socket(struct watchdog *w, struct chorus_sockaddr *bound)
{
    struct chorus_sockaddr mine;
    CHORUS_CHECK(chorus_socket_pick_address(&mine, NULL, 0));
    chorus_sockaddr_set_port(&mine, 0);
    w->fd = socket(mine.u.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (w->fd < 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "UDP socket: %s", strerror(errno));
    /* every waiting rank may ask at once: room for a burst of queries */
    int rcvbuf = 1 << 20;
    (void)setsockopt(w->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    char s[CHORUS_SOCKADDR_STRLEN];
    if (bind(w->fd, &mine.u.sa, mine.len) != 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "binding a UDP socket to %s: %s",
                          chorus_sockaddr_str(&mine, s, sizeof s), strerror(errno));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(w->fd, (struct sockaddr *)&ss, &sl) != 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "getsockname: %s", strerror(errno));
    CHORUS_CHECK(chorus_sockaddr_set(bound, (struct sockaddr *)&ss, sl));
    w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->wake_fd < 0)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "eventfd: %s", strerror(errno));
    return CHORUS_SUCCESS;
}

static void release(struct watchdog *w)
{
    chorus_socket_close(&w->fd);
    chorus_socket_close(&w->wake_fd);
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->stop_lock);
    free(w->peers);
    free(w->targets);
    free(w->report_ranks);
    free(w);
}

void watchdog_prepare(chorus_comm_t comm, const chorus_unique_id_t *id,
                      struct watchdog_card *mine)
{
    memset(mine, 0, sizeof *mine);
    comm->wd = NULL;
    long ms = chorus_tunables()->WATCHDOG_MS;
    if (ms <= 0 || comm->nranks < 2)
        return;
    struct watchdog *w = calloc(1, sizeof *w);
    if (!w)
        return;
    w->comm = comm;
    w->fd = w->wake_fd = -1;
    w->watch_ms = clamp(ms, 1, 0x7fffffff);
    w->period_ms = clamp(ms / 4, 10, 1000);
    w->reply_ms = clamp(ms / 2, 200, 1000);
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->stop_lock, NULL);
    w->peers = calloc((size_t)comm->nranks, sizeof *w->peers);
    w->targets = calloc((size_t)comm->nranks, sizeof *w->targets);
    w->report_ranks = calloc((size_t)comm->nranks, sizeof *w->report_ranks);
    struct chorus_sockaddr bound;
    uint8_t secret[CHORUS_BSMSG_SECRET_BYTES];
    struct chorus_sockaddr root;
    /* a rank without a watchdog still joins: the others see it in its card */
    chorus_result_t res = w->peers && w->targets && w->report_ranks
                              ? CHORUS_SUCCESS
                              : CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    if (res == CHORUS_SUCCESS)
        res = chorus_bsmsg_decode_id(id, &root, secret);
    if (res == CHORUS_SUCCESS)
        res = chorus_random_bytes(w->salt, sizeof w->salt);
    if (res == CHORUS_SUCCESS)
        res = chorus_random_bytes(&w->nonce, sizeof w->nonce);
    if (res == CHORUS_SUCCESS)
        res = open_socket(w, &bound);
    if (res != CHORUS_SUCCESS) {
        LOG_WARN(SUBSYS, "%s: no straggler watchdog on this rank: %s", comm->label,
                 chorus_get_last_error());
        chorus_error_clear();
        release(w);
        return;
    }
    w->nonce &= (UINT64_C(1) << 62) - 1; /* counts up from here without wrapping */
    static const char k1[] = "chorus-watchdog-key-1", k2[] = "chorus-watchdog-key-2";
    put64(w->key, chorus_siphash24(secret, k1, sizeof k1 - 1));
    put64(w->key + 8, chorus_siphash24(secret, k2, sizeof k2 - 1));
    memset(secret, 0, sizeof secret);
    addr_encode(&bound, mine->addr);
    memcpy(mine->salt, w->salt, sizeof mine->salt);
    comm->wd = w;
    char s[CHORUS_SOCKADDR_STRLEN];
    LOG_DEBUG(SUBSYS, "%s: watchdog on UDP %s (port %u), checks every %d ms, stalls after %d ms",
              comm->label, chorus_sockaddr_str(&bound, s, sizeof s),
              (unsigned)chorus_sockaddr_port(&bound), w->period_ms, w->watch_ms);
}

chorus_result_t watchdog_learn(chorus_comm_t comm, const struct watchdog_card *all)
{
    struct watchdog *w = comm->wd;
    if (!w)
        return CHORUS_SUCCESS;
    /* the identity: every card (addresses and salts), keyed: the same on
     * every rank, different for every communicator */
    size_t bytes = (size_t)comm->nranks * sizeof *all;
    uint8_t *buf = malloc(bytes);
    if (!buf)
        return CHORUS_ERR(CHORUS_SYSTEM_ERROR, "out of memory");
    for (int r = 0; r < comm->nranks; r++) {
        memcpy(buf + (size_t)r * sizeof *all, all[r].addr, sizeof all[r].addr);
        memcpy(buf + (size_t)r * sizeof *all + sizeof all[r].addr, all[r].salt,
               sizeof all[r].salt);
        memcpy(w->peers[r].addr, all[r].addr, sizeof w->peers[r].addr);
    }
    w->identity = chorus_siphash24(w->key, buf, bytes);
    free(buf);
    return CHORUS_SUCCESS;
}

chorus_result_t watchdog_start(chorus_comm_t comm)
{
    struct watchdog *w = comm->wd;
    if (!w)
        return CHORUS_SUCCESS;
    int e = pthread_create(&w->thread, NULL, watchdog_main, w);
    if (e) {
        LOG_WARN(SUBSYS, "%s: cannot start the watchdog thread (%s); running without it",
                 comm->label, strerror(e));
        comm->wd = NULL;
        release(w);
        return CHORUS_SUCCESS;
    }
    w->started = 1;
    (void)pthread_setname_np(w->thread, "chorus-watchdog"); /* for ps, gdb and the tests */
    return CHORUS_SUCCESS;
}

void watchdog_stop(chorus_comm_t comm)
{
    struct watchdog *w = comm->wd;
    if (!w)
        return;
    pthread_mutex_lock(&w->stop_lock);
    if (w->started) {
        uint64_t one = 1;
        ssize_t rc = write(w->wake_fd, &one, sizeof one);
        (void)rc; /* a full counter wakes the thread as well */
        pthread_join(w->thread, NULL);
        w->started = 0;
    }
    pthread_mutex_unlock(&w->stop_lock);
}

void watchdog_free(chorus_comm_t comm)
{
    if (!comm->wd)
        return;
    watchdog_stop(comm);
    release(comm->wd);
    comm->wd = NULL;
}

/* ---- bookkeeping and the report -------------------------------------------------------- */

void watchdog_coll_entered(chorus_comm_t comm, coll_kind_t kind)
{
    if (watchdog_counts(kind))
        atomic_fetch_add(&comm->coll_entered, 1);
}

void watchdog_coll_begin(chorus_comm_t comm, const struct coll_args *a)
{
    struct watchdog *w = comm->wd;
    if (!w || !watchdog_counts(a->kind))
        return;
    atomic_store_explicit(&w->cur_kind, (int)a->kind, memory_order_relaxed);
    atomic_store_explicit(&w->cur_count, a->count, memory_order_relaxed);
    atomic_store_explicit(&w->cur_type, (int)a->type, memory_order_relaxed);
}

void watchdog_coll_end(chorus_comm_t comm, coll_kind_t kind)
{
    if (watchdog_counts(kind))
        atomic_fetch_add(&comm->coll_done, 1);
}

uint64_t watchdog_report(chorus_comm_t comm, int *ranks, int max_ranks, int *nranks_out,
                         char *text, size_t text_cap)
{
    struct watchdog *w = comm->wd;
    *nranks_out = 0;
    if (text && text_cap)
        text[0] = '\0';
    if (!w)
        return 0;
    pthread_mutex_lock(&w->lock);
    uint64_t seq = w->report_seq;
    /* a report lasts while its collective is unfinished */
    if (seq == 0 || seq != atomic_load(&comm->coll_done) + 1 || w->report_n == 0) {
        pthread_mutex_unlock(&w->lock);
        return 0;
    }
    *nranks_out = w->report_n;
    for (int i = 0; ranks && i < max_ranks && i < w->report_n; i++)
        ranks[i] = w->report_ranks[i];
    if (text && text_cap)
        snprintf(text, text_cap, "%s", w->report_text);
    pthread_mutex_unlock(&w->lock);
    return seq;
}

int watchdog_debug_endpoint(chorus_comm_t comm, struct chorus_sockaddr *addr,
                            uint64_t *identity, uint64_t *dropped)
{
    struct watchdog *w = comm->wd;
    memset(addr, 0, sizeof *addr);
    *identity = 0;
    *dropped = 0;
    if (!w)
        return 0;
    (void)addr_decode(w->peers[comm->rank].addr, addr);
    *identity = w->identity;
    *dropped = atomic_load(&w->dropped);
    return chorus_sockaddr_port(addr);
}
