#ifndef SESSD_DISPATCH_H
#define SESSD_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "buf.h"
#include "codec.h"
#include "persist.h"
#include "store.h"

struct seal;

/*
 * Dispatch: the one place that knows every operation. A frame body goes in, its reply frame
 * comes out in a buffer; in between, the store (and the persistence log) do the work. Knows
 * requests, replies and the store; never sockets.
 */

/* The release is meson.build's project version; the build checks that this says the same. */
#define DISPATCH_SERVER_NAME "sessd 0.1.0"

/* Figures only the server knows, filled in by the server and read by STATS. */
struct dispatch_server_stats {
	uint64_t connections;
	uint64_t connections_total;
	uint64_t started_mono_ms; /* CLOCK_MONOTONIC at start, for uptime_ms */
	/* Loop turns: the time from a turn's first callback to the end of its flush, i.e. the
	 * longest a ready client waited for the loop to look at it. */
	uint64_t loop_stall_max_us;
	uint64_t loop_stalls_over_1ms;
	uint64_t loop_stalls_over_2ms;
	uint64_t loop_stalls_over_10ms;
	/* Connections' buffers: input not handled yet and replies not sent yet, as of the end of
	 * the previous turn plus this turn's reads. */
	uint64_t client_bytes;
	/* Connections closed BUSY over --max-client-memory. */
	uint64_t client_evictions_total;
	/* The most client_bytes has been, replies being made in a turn included. */
	uint64_t client_bytes_peak;
	/* Connections closed for a frame or record refused unread (conn.c): over max_frame, of
	 * length 0, a sealed record that does not authenticate. */
	uint64_t frames_refused_total;
	/* Connections closed at --max-connections to let new ones in: idle ones past HELLO, and
	 * ones that had not said HELLO. */
	uint64_t connections_displaced_total;
	/* New connections refused BUSY at --max-connections (at accept, or after HELLO). */
	uint64_t connections_refused_total;
	/* Sealed HELLOs put off whose client had stopped sending by their turn: closed
	 * without the key exchange (conn_set_retry). */
	uint64_t hello_abandoned_total;
	/* Times a connection's requests were left for the next loop turn, the turn's budget
	 * spent (conn_set.held_over_total). */
	uint64_t held_over_total;
	/* Times a connection ready to be read was left for the next loop turn, the turn's budget
	 * for reading spent (conn_set.reads_deferred_total). */
	uint64_t reads_deferred_total;
};

struct auth;
struct dispatch_peer;

/*
 * RETIRE (PROTOCOL.md): close the sealed connection whose HELLO's server key is ${key}
 * (borrowed), discarding what it has read and not carried out, so that nothing more of it is;
 * ${asking} is the requesting connection's state. Returns 1 (it was open and is closed from
 * now on), 0 (no such connection), or -1 when ${key} names ${asking} itself (nothing done).
 */
typedef int (*dispatch_retire_fn)(void *arg, const struct dispatch_peer *asking,
                                  const uint8_t key[CODEC_RETIRE_KEY_BYTES]);

struct dispatch_config {
	uint32_t max_frame;
	uint64_t max_bytes; /* the store's limit, announced by STATS; 0: none */
	/* --when-full drop-unread: the store drops sessions never read back before it refuses a
	 * write for memory; dispatch logs each drop as a DESTROY (store_drop_unread). */
	bool drop_unread;
	/* The server's limits, announced by STATS for "how close to it" alerts. */
	uint64_t max_connections;
	uint64_t max_client_bytes;
	/* The secret HELLO must show (--auth-file); NULL: none. Borrowed for d's lifetime. */
	const struct auth *auth;
	/* The secret that makes a connection admin (--admin-auth-file), the only kind that may
	 * LIST, NAMESPACES and CLEAR; NULL: every connection is admin. Borrowed likewise. */
	const struct auth *admin_auth;
	/* With either: where a plain HELLO may show it (--auth-plain; see dispatch_peer.local). */
	enum auth_plain plain;
	/* The network layer's RETIRE, and its argument; NULL: no connection is ever found. */
	dispatch_retire_fn retire;
	void *retire_arg;
};

/* Room for a refused peer's name (dispatch_peer.name), as listener.h's LISTENER_PEER_NAME_BYTES. */
#define DISPATCH_PEER_NAME_BYTES 160

/* Per-connection protocol state, embedded in the connection; zero it to start. */
struct dispatch_peer {
	bool ready; /* HELLO done */
	/* Set by the connection's owner before the first frame: the peer is on this host (a Unix
	 * socket, or TCP from a loopback address), where AUTH_PLAIN_LOOPBACK lets a plain HELLO
	 * in. false (zero) is the safe side: plain refused. */
	bool local;
	/* Once HELLO is done: the generation of the secret it showed (auth_check), of
	 * --auth-file's or of --admin-auth-file's, so that the connection can be closed when that
	 * secret is retired; 0: not that one. At most one of the two is set. */
	uint64_t auth_generation;
	uint64_t admin_generation;
	/* Once HELLO is done: it may LIST, NAMESPACES and CLEAR (it showed the admin secret, or
	 * there is none). */
	bool admin;
	/* Once HELLO is done: a hash of the process identity its client_name stated (PROTOCOL.md,
	 * HELLO), 0 when it stated none. The connection's owner tells the processes of one host
	 * apart by it at --max-connections (over TCP only: a Unix socket's peer pid is better). */
	uint64_t process;
	/* Its HELLO was put off once already: hello_deferred_total counts HELLOs, not retries. */
	bool hello_put_off;
	/* Set by a sealed HELLO whose client key (c_pk) sessd answered before, or that looks so by
	 * chance (replays.h): it may be a HELLO recorded off the wire and replayed, whose sender
	 * can never send a record. The connection's owner gives it no credit for the HELLO
	 * (conn.c, give_way_rank); nothing else changes, as a real client may be taken for one. */
	bool replayed;
	/* Set by a sealed HELLO (PROTOCOL.md, "Sealed connections"): the frames after its reply
	 * go in records sealed with it, both ways. The connection owns it from then on and frees
	 * it with seal_free. */
	struct seal *seal;
	/* With seal: the server's ephemeral key of its HELLO (s_pk), by which a RETIRE from
	 * another connection names this one (PROTOCOL.md, "RETIRE"). Public, not a secret. */
	uint8_t seal_key[CODEC_RETIRE_KEY_BYTES];
	/* With seal: the connection's output, where the replies written to dispatch_frame's out
	 * go sealed when the turn's are written (seal_append_all). Dispatch keeps room there for
	 * all of them and an error reply more, so that none is lost for want of memory to seal
	 * it: a change is refused before it is made, a read answered INTERNAL (PROTOCOL.md,
	 * INTERNAL). Set by the connection's owner, which must not shrink it while replies wait
	 * to be sealed; NULL: no room kept. */
	struct buf *sealed_out;
	/* Who is connected, for warnings about refused clients: "ADDR:PORT" ("[V6]:PORT") over
	 * TCP; over a Unix socket, which has no address, "pid P (uid U) on unix:PATH" with the
	 * listener's path. Never a secret or a session id. Set by the connection's owner, which
	 * keeps the string for the connection's life; NULL (zero) when unknown. */
	const char *name;
};

enum dispatch_verdict {
	DISPATCH_KEEP = 0,  /* the connection stays open */
	DISPATCH_CLOSE = 1, /* an error that closes: send what is queued, then close */
	/* Not carried out, nothing written: answering now would stall the server (a COUNT or
	 * CLEAR of a large namespace while a mass expiry is behind), or the log cannot take a
	 * change yet (persist_must_wait). Hand the same frame again,
	 * with no later frame of that connection before it, when dispatch_retries says so. */
	DISPATCH_LATER = 2, /* also a sealed HELLO, LIST or NAMESPACES past its turn's budget: see
	                       dispatch_turn_begins */
};

struct dispatch;

/*
 * dispatch_new(cfg, st, p, stats):
 * A dispatcher over the store ${st} and the persistence log ${p} (NULL: memory-only), both
 * borrowed for its lifetime, as is ${stats}. ${cfg} is copied. Draws a random server id and a
 * random key for log tags. Returns NULL (errno ENOMEM). Free with dispatch_free.
 */
struct dispatch *dispatch_new(const struct dispatch_config *cfg, struct store *st,
                              struct persist *p, const struct dispatch_server_stats *stats);

/* dispatch_free(d): free it; the store and the log stay the caller's. NULL: nothing. */
void dispatch_free(struct dispatch *d);

/* dispatch_server_id(d): the 32 hex digits HELLO announces; owned by ${d}. */
const char *dispatch_server_id(const struct dispatch *d);

/*
 * dispatch_retries(d, now_ms):
 * How many of the connections whose frame was answered DISPATCH_LATER to hand again now, the
 * longest waiting first: all of them (SIZE_MAX) once the expiry a COUNT or CLEAR waits for
 * has caught up at ${now_ms} (or dispatch_stop_deferring was called), or once the log that
 * changes waited for can take them (persist_must_wait); a few at the start of
 * the turn after a sealed HELLO, LIST or NAMESPACES page, SET_IF or TOUCH_IF was put off, and
 * of every turn after one that handed them again and moved one at least (dispatch_retried);
 * else 0.
 */
size_t dispatch_retries(struct dispatch *d, uint64_t now_ms);

/* dispatch_waits_for_expiry(d): whether a COUNT or CLEAR waits for the expiry to catch up. */
bool dispatch_waits_for_expiry(const struct dispatch *d);

/*
 * dispatch_turn_begins(d): a new loop turn begins: its budget for heavy requests (key
 * exchanges, LIST and NAMESPACES pages, the data hashes of SET_IF and TOUCH_IF, the messages
 * FLASH_POP takes) is whole again, and the store's for moving a table that resizes while full
 * (store_turn_begins), and
 * those put off in the last turn (DISPATCH_LATER) may be handed again (dispatch_retries hands a few
 * of them again).
 */
void dispatch_turn_begins(struct dispatch *d);

/*
 * dispatch_retried(d, handed, left, waiting): this turn handed ${handed} of the connections
 * waiting again (as many as dispatch_retries asked for, or fewer waited), ${left} of them left
 * the waiting list (conn_set_retry's count), and ${waiting} still wait.
 */
void dispatch_retried(struct dispatch *d, size_t handed, size_t left, size_t waiting);

/*
 * dispatch_wants_next_turn(d): whether heavy requests may still wait: one was put off in this
 * turn for want of its budget, or this turn handed some again and one left the waiting list
 * (more may be behind them), or the retries have not gone round the list once since one did. The
 * next turn must then come without waiting for I/O, and hands them again.
 */
bool dispatch_wants_next_turn(const struct dispatch *d);

/*
 * dispatch_stop_deferring(d): from now on carry every request out at once, however long it
 * takes (a stopping server answers what it owes rather than wait for expiry).
 */
void dispatch_stop_deferring(struct dispatch *d);

/*
 * dispatch_frame(d, peer, body, len, now_ms, out):
 * Decode one frame body (borrowed) and carry it out for the connection whose state is
 * ${peer}, at wall-clock time ${now_ms}, appending exactly one whole reply frame to ${out}.
 * Returns DISPATCH_KEEP, or DISPATCH_CLOSE when the reply is an error that closes the
 * connection (or no reply could be written at all for lack of memory; ${out} is then as it
 * was), or DISPATCH_LATER with nothing written and nothing done.
 */
enum dispatch_verdict dispatch_frame(struct dispatch *d, struct dispatch_peer *peer,
                                     const uint8_t *body, size_t len, uint64_t now_ms,
                                     struct buf *out);

/*
 * A frame body waiting in a connection's input (borrowed). dispatch_prefetch decodes it for
 * its hint and keeps the result here, so that dispatch_frame_hinted does not decode it again;
 * the request's fields point into ${body}, which must not change in between.
 */
struct dispatch_frame_ref {
	const uint8_t *body;
	size_t len;
	bool decoded;   /* req holds ${body} decoded; false: not looked at (or malformed) */
	bool id_hashed; /* with decoded: the store's hint left req's id hash in id_hash */
	uint64_t id_hash;
	struct store_found found; /* with id_hashed: what the hint found, for the lookup */
	struct codec_request req;
};

/* The most frames one dispatch_prefetch call looks at. */
#define DISPATCH_PREFETCH_MAX 32

/*
 * dispatch_prefetch(d, frames, count):
 * A hint, before dispatch_frame runs for these ${count} (at most DISPATCH_PREFETCH_MAX)
 * frames: start loading what their store lookups will touch, so that their cache misses
 * overlap. Each frame's request is decoded into it (decoded set) for dispatch_frame_hinted.
 * Changes nothing and answers nothing; a malformed frame is skipped here and answered by
 * dispatch_frame_hinted.
 */
void dispatch_prefetch(struct dispatch *d, struct dispatch_frame_ref *frames, size_t count);

/*
 * dispatch_reply_bound(d, frame, now_ms):
 * About the most bytes the reply to ${frame} (borrowed) will take at wall-clock ${now_ms},
 * without carrying it out: for GET and LOAD the session's data, for FLASH_POP its flash
 * messages (a store lookup that changes nothing), for a PING its payload, for LIST and
 * NAMESPACES a whole page of the longest entries, and a kilobyte for the rest (statuses,
 * counts, STATS, errors). The connections' budget of reply bytes per loop turn
 * asks it only once that budget is spent, to let small requests through (conn.h). The
 * request is decoded into ${frame} as dispatch_prefetch does, unless it is already.
 */
size_t dispatch_reply_bound(struct dispatch *d, struct dispatch_frame_ref *frame, uint64_t now_ms);

/*
 * dispatch_reply_only(d, frame):
 * Whether ${frame} (borrowed) is asked only for its reply: PING, GET, LOAD, TTL, COUNT, LIST,
 * NAMESPACES, STATS, and FLASH_POP, which takes messages for the client (dropped, they stay
 * queued). For a client that has gone such a request would reach no one, and is dropped
 * (conn.c). False for the changes, and for a malformed frame (its error reply closes the
 * connection). The request is decoded into ${frame} as dispatch_prefetch does, unless it is.
 */
bool dispatch_reply_only(struct dispatch *d, struct dispatch_frame_ref *frame);

/*
 * dispatch_takes_for_client(d, frame):
 * Whether ${frame} (borrowed) takes something for its client that is lost if its reply
 * reaches no one: FLASH_POP, whose messages leave the queue. conn.c asks the socket whether
 * the client has gone before such a request, so that a pop a client gave up on (it timed
 * out and closed) is dropped and its messages stay queued. False for a malformed frame. The
 * request is decoded into ${frame} as dispatch_prefetch does, unless it is.
 */
bool dispatch_takes_for_client(struct dispatch *d, struct dispatch_frame_ref *frame);

/*
 * dispatch_frame_hinted(d, peer, frame, now_ms, out):
 * dispatch_frame for ${frame}'s body, reusing the request that dispatch_prefetch decoded
 * into ${frame} when there is one. Returns as dispatch_frame does.
 */
enum dispatch_verdict dispatch_frame_hinted(struct dispatch *d, struct dispatch_peer *peer,
                                            const struct dispatch_frame_ref *frame, uint64_t now_ms,
                                            struct buf *out);

/* dispatch_requests_total(d): the frames dispatched so far. */
uint64_t dispatch_requests_total(const struct dispatch *d);

/*
 * dispatch_log_pending(d):
 * Write the warnings whose counts still wait out their once-a-minute period (refused HELLOs,
 * writes refused with NO_MEMORY); for a stopping server, so that its log accounts for each.
 */
void dispatch_log_pending(struct dispatch *d);

/*
 * dispatch_log_due(d):
 * Write those of the same warnings whose period is over (the server's tick calls it once a
 * second), so that a burst's count is said a minute after its first line at the latest, not
 * only at the next occurrence, which may be much later.
 */
void dispatch_log_due(struct dispatch *d);

#endif
