/* socket.h - small TCP helpers for the bootstrap: interface selection,
 * listening, connecting with retry, and send/recv bounded by a deadline.
 *
 * Every socket made here is nonblocking and close-on-exec; connected sockets
 * have TCP_NODELAY. Deadlines are absolute times on CLOCK_MONOTONIC in
 * milliseconds (chorus_socket_now_ms()); a negative deadline means "no bound".
 * Peer names passed in (e.g. "rank 3 (10.0.0.7:41234)") only label messages.
 */
#ifndef CHORUS_SOCKET_H
#define CHORUS_SOCKET_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "chorus.h"

/* An IPv4 or IPv6 address with its port. */
struct chorus_sockaddr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } u;
    socklen_t len; /* sizeof the active member; 0: empty */
};

/* Enough for "[ipv6%scope]:port". */
#define CHORUS_SOCKADDR_STRLEN 80

/* Monotonic clock, milliseconds. */
int64_t chorus_socket_now_ms(void);
/* now + timeout_ms, or -1 (no bound) when timeout_ms <= 0. */
int64_t chorus_socket_deadline(int timeout_ms);
/* The poll() timeout until deadline (0 if passed, -1 if unbounded). */
int chorus_socket_poll_ms(int64_t deadline);

/* "1.2.3.4:5" or "[::1]:5" into buf (always NUL-terminated); returns buf. */
const char *chorus_sockaddr_str(const struct chorus_sockaddr *addr, char *buf, size_t cap);
/* Fills addr from a sockaddr of len bytes; CHORUS_INVALID_ARGUMENT unless it is
 * AF_INET or AF_INET6 of the right length. */
chorus_result_t chorus_sockaddr_set(struct chorus_sockaddr *addr, const struct sockaddr *sa,
                                    socklen_t len);
uint16_t chorus_sockaddr_port(const struct chorus_sockaddr *addr);
void chorus_sockaddr_set_port(struct chorus_sockaddr *addr, uint16_t port);

/* Parses a CHORUS_SOCKET_FAMILY value: "" -> AF_UNSPEC, AF_INET/inet/ipv4/4,
 * AF_INET6/inet6/ipv6/6 (any case). Returns 0 or -1 on an unknown text. */
int chorus_socket_parse_family(const char *text, int *family);

/* CHORUS_SOCKET_IFNAME matching, without the loopback fallback: 1 if the
 * interface name is selected by spec. spec is a comma list of name prefixes;
 * a leading '=' makes them exact names; a leading '^' (optionally followed by
 * '=') excludes them instead. An empty or NULL spec selects every name not
 * starting with docker, veth, virbr or br-. */
int chorus_socket_ifname_match(const char *spec, const char *name);

/* Picks the local address to listen on (port 0) from the up interfaces, by
 * CHORUS_SOCKET_IFNAME and CHORUS_SOCKET_FAMILY. Prefers interfaces with a
 * carrier, then IPv4, then global IPv6, then link-local; among equals the
 * lowest interface index. Without a spec (or with an exclude spec) loopback
 * is used only if nothing else is up. ifname (may be NULL) receives the
 * interface name. */
chorus_result_t chorus_socket_pick_address(struct chorus_sockaddr *addr, char *ifname,
                                           size_t ifname_cap);

/* Resolves host (name or numeric address) for family (AF_UNSPEC: any; IPv4
 * first) and sets port. */
chorus_result_t chorus_socket_resolve(const char *host, int port, int family,
                                      struct chorus_sockaddr *addr);

/* A listening socket bound to addr (port 0: ephemeral). bound receives the
 * actual address (may be NULL). reuseaddr sets SO_REUSEADDR. */
chorus_result_t chorus_socket_listen(const struct chorus_sockaddr *addr, int reuseaddr, int *fd,
                                     struct chorus_sockaddr *bound);

/* Waits until deadline for a connection on listen_fd. CHORUS_TIMEOUT if none
 * came; peer (may be NULL) receives its address. */
chorus_result_t chorus_socket_accept(int listen_fd, int64_t deadline, int *fd,
                                     struct chorus_sockaddr *peer);

/* Connects to addr, retrying refused/unreachable attempts with exponential
 * backoff (10 ms doubling to 1 s) until deadline: the peer may not listen yet.
 * what names the peer in messages (NULL: the address). */
chorus_result_t chorus_socket_connect(const struct chorus_sockaddr *addr, int64_t deadline,
                                      const char *what, int *fd);

/* Sends / receives exactly len bytes before deadline. EOF or a reset is
 * CHORUS_REMOTE_ERROR, the deadline CHORUS_TIMEOUT; both name peer. */
chorus_result_t chorus_socket_send_all(int fd, const void *buf, size_t len, int64_t deadline,
                                       const char *peer);
chorus_result_t chorus_socket_recv_all(int fd, void *buf, size_t len, int64_t deadline,
                                       const char *peer);

/* Sends slen bytes on sfd while receiving rlen bytes on rfd, both at once
 * (so two ranks exchanging large buffers cannot deadlock). sfd may equal rfd. */
chorus_result_t chorus_socket_sendrecv(int sfd, const void *sbuf, size_t slen, const char *speer,
                                       int rfd, void *rbuf, size_t rlen, const char *rpeer,
                                       int64_t deadline);

/* Closes *fd if >= 0 and sets it to -1. */
void chorus_socket_close(int *fd);

/* Fills buf with len random bytes (getrandom, else /dev/urandom). */
chorus_result_t chorus_random_bytes(void *buf, size_t len);

#endif
