#ifndef SESSD_LISTENER_H
#define SESSD_LISTENER_H

#include <event2/event.h>
#include <event2/util.h>

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/*
 * One listening socket (TCP or Unix) on an event base. Knows sockets and paths; hands each
 * accepted descriptor to its owner and knows nothing of what happens to it.
 */

struct listener;

/* Room for a peer's name: "pid 4194304 (uid 4294967295) on unix:" and a 107-byte path. */
#define LISTENER_PEER_NAME_BYTES 160

/*
 * Called with each accepted, non-blocking descriptor, which the callee then owns, and a key
 * naming where it came from: its IPv4 address, its IPv6 /64 prefix (one host's share of a
 * network), or for a Unix socket the peer's user id; 0 when that cannot be told. Connections
 * from one place share a key. ${owner}: the same finer where it can be, telling the
 * processes of one user apart: for a Unix socket the peer's process id, else ${source}. ${local}:
 * the peer is on this host (a Unix socket, or TCP from 127.0.0.0/8, ::1 or a v4-mapped
 * 127.0.0.0/8), so nothing it sends crosses a network.
 * ${name}: the peer for log lines (dispatch_peer.name), "ADDR:PORT", "[V6]:PORT" or
 * "pid P (uid U) on unix:PATH", shorter than LISTENER_PEER_NAME_BYTES; borrowed until the call
 * returns.
 */
typedef void (*listener_accept_fn)(void *arg, evutil_socket_t fd, uint64_t source, uint64_t owner,
                                   bool local, const char *name);

/*
 * listener_new(base, addr, tcp_keepalive_s, on_accept, arg):
 * Bind and listen on ${addr}. A TCP connection it accepts is probed by the kernel once idle
 * ${tcp_keepalive_s} seconds (0: never; --tcp-keepalive), and reset when the probes go
 * unanswered. A Unix socket gets mode 0660; a stale socket file left by a dead
 * daemon (connecting to it is refused) is replaced, but a live one or a file that is not a
 * socket is an error. The runtime directory addr->make_dir is created (0750) when missing.
 * Accepted descriptors go to ${on_accept} with ${arg}.
 * Returns the listener (free with listener_free, or listener_undo when the start fails), or
 * NULL after logging why, having removed what it created.
 */
struct listener *listener_new(struct event_base *base, const struct config_listen *addr,
                              int tcp_keepalive_s, listener_accept_fn on_accept, void *arg);

/*
 * listener_free(l): stop listening, close, and remove a Unix socket's file. NULL: nothing.
 * The runtime directory listener_new may have created stays, holding its name for the next
 * start (see config_runtime_dir: /tmp/sessd-UID is a name others could take).
 */
void listener_free(struct listener *l);

/*
 * listener_undo(l): listener_free, for a start that fails after ${l} was made, which leaves
 * nothing it created: the runtime directory listener_new created for the socket is removed
 * as well (when empty; one it found there stays). NULL: nothing.
 */
void listener_undo(struct listener *l);

/*
 * listener_log_due(l):
 * Write the count of ${l}'s failed accepts that the rate limit held back, once their period is
 * over; the server's tick calls it once a second, so that the rest of a burst (out of
 * descriptors) is said within about a second of the period's end, not only at the next
 * failure, which may never come, or at close (listener_free).
 */
void listener_log_due(struct listener *l);

/* listener_url(l): the URL actually bound (the port resolved), e.g. "tcp://127.0.0.1:41234".
 * Owned by the listener. */
const char *listener_url(const struct listener *l);

/* listener_is_open_to_network(l): whether ${l} is a TCP address other than loopback. */
bool listener_is_open_to_network(const struct listener *l);

#endif
