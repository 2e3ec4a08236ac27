#ifndef SESSD_CONN_H
#define SESSD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/util.h>

#include "buf.h"
#include "dispatch.h"

/*
 * Client connections: bytes in, frames out. A connection reads with a libevent bufferevent,
 * checks each 4-byte header against max_frame before it buffers any of the body, hands every
 * complete frame to its owner's frame callback, and writes the replies of one read callback
 * with one append to its output. Knows nothing of the store.
 */

struct conn;
TAILQ_HEAD(conn_list, conn);

/*
 * Turns one frame body (borrowed) into one reply appended to ${out}, at wall-clock ${now_ms}.
 * Returns whether the connection stays open (dispatch_frame's contract).
 */
typedef enum dispatch_verdict (*conn_frame_fn)(void *arg, struct dispatch_peer *peer,
                                               const uint8_t *body, size_t len, uint64_t now_ms,
                                               struct buf *out);
/* Replies are being held for the end of the loop turn (conn_set_release_held). */
typedef void (*conn_held_fn)(void *arg);
/* A connection was closed and freed (the set no longer counts it). */
typedef void (*conn_closed_fn)(void *arg);

struct conn_config {
	uint32_t max_frame;
	/* Stop reading from a client whose unsent replies pass this many bytes, until they drop
	 * to half of it. */
	size_t output_high_bytes;
	/* Seconds a closing connection may take to take its last replies. */
	int close_timeout_s;
	/* Hold each read's replies until conn_set_release_held (group commit); false sends at
	 * once and costs nothing extra. */
	bool hold_replies;
	conn_frame_fn on_frame;
	conn_held_fn on_held;
	conn_closed_fn on_closed;
	void *arg;
};

/* Every connection of a server. Embedded by the server; conn.c alone changes it. */
struct conn_set {
	struct conn_config cfg;
	struct conn_list all;
	struct conn_list held;
	size_t count;
	bool stopping;
	/* Shared by all connections: the loop runs one callback at a time, and replies leave
	 * for the connection's own output before the callback returns. Reused, never shrunk. */
	struct buf frame_scratch;
	struct buf reply_scratch;
};

/* conn_set_init(s, cfg): an empty set; ${cfg} is copied. */
void conn_set_init(struct conn_set *s, const struct conn_config *cfg);

/* conn_set_finish(s): free every connection at once (unsent replies are lost) and the
 * scratch buffers. No callbacks run. */
void conn_set_finish(struct conn_set *s);

/*
 * conn_new(s, base, fd):
 * Serve the accepted non-blocking descriptor ${fd}, which the set then owns (closed on
 * failure too). Returns 0, or -1 (logged).
 */
int conn_new(struct conn_set *s, struct event_base *base, evutil_socket_t fd);

/*
 * conn_set_release_held(s, committed):
 * End of a loop turn under group commit: send the held replies of every connection, or, when
 * ${committed} is false, close those connections without sending them.
 */
void conn_set_release_held(struct conn_set *s, bool committed);

/* conn_set_has_held(s): true when some connection holds replies. */
bool conn_set_has_held(const struct conn_set *s);

/*
 * conn_set_shutdown(s):
 * Stop reading on every connection; each closes once its queued replies are sent (held ones
 * after conn_set_release_held) or its close timeout passes.
 */
void conn_set_shutdown(struct conn_set *s);

#endif
