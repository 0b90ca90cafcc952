/* watchdog.h - the straggler watchdog (CHORUS_WATCHDOG_MS).
 *
 * Every communicator counts the collectives its rank has entered and
 * finished. When the oldest unfinished one has run longer than
 * CHORUS_WATCHDOG_MS, a thread of the communicator asks every peer how far
 * it has got and reports the ranks that have not entered it yet: one
 * warning line per stalled collective, chorus_comm_get_stragglers and
 * chorus_comm_get_async_error. The question goes to the peer's own
 * watchdog thread, over UDP, so a rank that is computing (not inside
 * Chorus, the straggler case) answers too.
 *
 * Wire format: one 56-byte datagram, integers in network byte order:
 *     u32 magic "CHWD" | u16 version | u16 type (1 query, 2 reply)
 *     u64 communicator identity | u32 sender rank | u32 nranks
 *     u64 nonce (a reply echoes its query's) | u64 entered | u64 done
 *     u64 MAC: SipHash-2-4 of the 48 bytes before it, keyed from the
 *              unique id's secret
 * Anything else (size, magic, version, type, identity, rank, MAC) is
 * dropped without an answer. Replies go to the address the sender
 * registered at init, never to the datagram's source address.
 */
#ifndef CHORUS_WATCHDOG_H
#define CHORUS_WATCHDOG_H

#include <stdint.h>

#include "chorus.h"
#include "coll.h"

#define WATCHDOG_MAGIC 0x43485744u /* "CHWD" */
#define WATCHDOG_VERSION 1u
#define WATCHDOG_MSG_BYTES 56u
#define WATCHDOG_MAC_OFFSET 48u
enum { WATCHDOG_QUERY = 1, WATCHDOG_REPLY = 2 };

/* What a rank tells the others at init (it rides in comm.c's peer
 * exchange): the address of its watchdog socket (u16 family, u16 port, u32
 * IPv6 scope, 16 address bytes; all zero: no watchdog on that rank) and a
 * random salt, so two communicators made from equal unique ids (the env
 * init) still have different identities. */
struct watchdog_card {
    uint8_t addr[24];
    uint8_t salt[8];
};

/* Collectives are counted; point-to-point operations are not. */
static inline int watchdog_counts(coll_kind_t kind)
{
    return kind != COLL_SEND && kind != COLL_RECV && kind != COLL_SENDRECV;
}

/* Init, before the peers' exchange: opens this rank's socket when
 * CHORUS_WATCHDOG_MS > 0 and the communicator has more than one rank, and
 * fills mine. Never fails: without a socket (logged) the rank runs with no
 * watchdog and its card says so. */
void watchdog_prepare(chorus_comm_t comm, const chorus_unique_id_t *id,
                      struct watchdog_card *mine);
/* Init, after the exchange (all: every rank's card, in rank order): learns
 * the peers and fixes the communicator's identity. */
chorus_result_t watchdog_learn(chorus_comm_t comm, const struct watchdog_card *all);
/* End of init: starts the thread (nothing when prepare opened no socket). */
chorus_result_t watchdog_start(chorus_comm_t comm);
/* Stops and joins the thread: returns within a few milliseconds (the
 * thread also waits on a wake-up descriptor). Idempotent; abort and
 * destroy call it. */
void watchdog_stop(chorus_comm_t comm);
/* Stops the thread and frees everything (destroy, failed init). */
void watchdog_free(chorus_comm_t comm);

/* The collective bookkeeping: coll_submit counts a collective entered
 * (after its argument checks); coll_run marks the start and the end of
 * each. */
void watchdog_coll_entered(chorus_comm_t comm, coll_kind_t kind);
void watchdog_coll_begin(chorus_comm_t comm, const struct coll_args *a);
void watchdog_coll_end(chorus_comm_t comm, coll_kind_t kind);

/* The current report, if the oldest unfinished collective is stalled with
 * ranks holding it up: its number, the number of those ranks (all of them,
 * even beyond max_ranks), the first max_ranks of them and, if text is not
 * NULL, the sentence of the warning. 0 when nothing is reported. */
uint64_t watchdog_report(chorus_comm_t comm, int *ranks, int max_ranks, int *nranks_out,
                         char *text, size_t text_cap);

/* For tests: the watchdog socket's address (port 0: none), the
 * communicator's identity and the number of datagrams dropped so far. */
struct chorus_sockaddr;
int watchdog_debug_endpoint(chorus_comm_t comm, struct chorus_sockaddr *addr,
                            uint64_t *identity, uint64_t *dropped);

#endif
