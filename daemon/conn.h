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
#include "log.h"
#include "owners.h"

/*
 * Client connections: bytes in, frames out. A connection reads with read(2) into its own
 * input buffer; once per loop turn the owner calls conn_set_handle_input, which checks each
 * 4-byte header against max_frame before it waits for any of the body and hands every
 * complete frame, where it lies, to the owner's frame callback, which appends the reply to
 * the connection's own output buffer (frames that arrived together are first offered to
 * on_prefetch, so their store lookups can start together). Replies are not written there:
 * the connection joins the set's pending list, and the owner calls
 * conn_set_flush once per loop turn (after its group commit), which writes each pending
 * output with one send(2) and watches for writability only when the socket would block (the
 * Redis model: no write event per reply, no extra loop round trip). Knows nothing of the
 * store.
 */

struct conn;
TAILQ_HEAD(conn_list, conn);
struct conn_linger;
TAILQ_HEAD(conn_linger_list, conn_linger);

/* At most this many sockets linger at once apart from the connections (conn_set_refuse). */
#define CONN_LINGER_MOST 32

/*
 * Turns one frame (borrowed; decoded already when the hint before it decoded it) into one
 * reply appended to ${out}, at wall-clock ${now_ms}. Returns whether the connection stays
 * open (dispatch_frame_hinted's contract).
 */
typedef enum dispatch_verdict (*conn_frame_fn)(void *arg, struct dispatch_peer *peer,
                                               const struct dispatch_frame_ref *frame,
                                               uint64_t now_ms, struct buf *out);
/*
 * A hint before ${count} frames (borrowed; the hint may keep each one's decoded request in
 * it) are handed to conn_frame_fn one by one; see dispatch_prefetch.
 */
typedef void (*conn_prefetch_fn)(void *arg, struct dispatch_frame_ref *frames, size_t count);
/*
 * About the most bytes the reply to one frame (borrowed; the callee may decode its request
 * into it, as a hint does, for conn_frame_fn to reuse) will take at wall-clock ${now_ms};
 * see dispatch_reply_bound. Asked only once the turn's budget of replies is spent.
 */
typedef size_t (*conn_reply_bound_fn)(void *arg, struct dispatch_frame_ref *frame, uint64_t now_ms);
/*
 * Whether ${frame} (borrowed) is asked only for its reply: it changes nothing, or only takes
 * something for the client (a FLASH_POP), so that for a client that has gone it is dropped
 * (see dispatch_reply_only).
 */
typedef bool (*conn_reply_only_fn)(void *arg, struct dispatch_frame_ref *frame);
/*
 * Whether ${frame} (borrowed) takes something for its client that is lost if the reply reaches
 * no one (a FLASH_POP: its messages), so that the socket is asked whether the client has gone
 * before it runs, however small its reply (see dispatch_takes_for_client).
 */
typedef bool (*conn_takes_for_client_fn)(void *arg, struct dispatch_frame_ref *frame);
/* A connection was closed and freed (the set no longer counts it). */
typedef void (*conn_closed_fn)(void *arg);
/* A connection's socket is read or written in a ready callback: the loop's turn has work. */
typedef void (*conn_io_fn)(void *arg);

struct conn_config {
	uint32_t max_frame;
	/* Stop reading from a client whose unsent replies pass this many bytes, until they drop
	 * to half of it. */
	size_t output_high_bytes;
	/* Seconds a closing connection may take to take its last replies. */
	int close_timeout_s;
	/* Seconds a new connection may take to complete HELLO before it is closed. */
	int hello_timeout_s;
	/* Connections' buffers (input received and not handled yet, replies not taken by the
	 * socket, room kept from a large frame or reply), over all connections, past which the
	 * connections that have gone longest without progress are answered BUSY and closed, until
	 * the total is an eighth under it. At least twice max_frame, so that a whole frame always
	 * fits. */
	size_t max_client_bytes;
	/* --max-connections: past it, a client that says HELLO takes an idle connection's place
	 * or is refused (conn_set_may_try). */
	unsigned max_connections;
	/* Descriptors past max_connections the owner keeps for sockets: connections let in on
	 * trial or giving way, and, in what those leave, sockets lingering apart
	 * (conn_set_refuse). */
	unsigned spare_sockets;
	/* Replies one loop turn may make, over all connections, before the rest of the input
	 * waits for the next turn (at least one frame is always handled): bounds both the loop's
	 * turn and what a burst from many connections at once adds to max_client_bytes. Past
	 * it, requests whose reply on_reply_bound finds small are still handled, up to a quarter
	 * of it more (conn.c, small_may_pass): so a burst of large replies cannot keep a small
	 * request waiting behind it for turns. */
	size_t turn_output_bytes;
	conn_frame_fn on_frame;
	conn_prefetch_fn on_prefetch;       /* NULL: no hints */
	conn_reply_bound_fn on_reply_bound; /* NULL: every request waits past the budget */
	conn_reply_only_fn on_reply_only;   /* NULL: a departed client's requests all run */
	conn_takes_for_client_fn on_takes_for_client; /* NULL: asked only for large replies */
	conn_closed_fn on_closed;
	conn_io_fn on_io; /* NULL: not told */
	void *arg;
};

/* Every connection of a server. Embedded by the server; conn.c alone changes it. */
struct conn_set {
	struct conn_config cfg;
	struct conn_list all;
	/* Connections with replies written since the last conn_set_flush: not sent yet, and
	 * not acknowledged until the owner's commit of this turn succeeded. */
	struct conn_list pending;
	/* Connections that read input this turn, not handled yet (conn_set_handle_input). */
	struct conn_list input;
	/* Connections ready to read whose read the turn's budget put off, oldest first. */
	struct conn_list unread;
	/* Connections whose next frame the owner put off (DISPATCH_LATER), for conn_set_retry. */
	struct conn_list waiting;
	size_t n_waiting;
	/* Connections that have not said HELLO yet (sealed: or sent no record yet), oldest first.
	 */
	struct conn_list ungreeted;
	/* Connections with frames left when the turn's budget of replies or frames (or their share
	 * of it) ran out, oldest first: they go on in the next turn (conn_set_resume_held).
	 * held_starved: those held before they were handed a frame in that turn. */
	struct conn_list held_over;
	struct conn_list held_starved;
	size_t turn_output; /* bytes of replies made this turn (turn_output_bytes) */
	size_t turn_frames; /* frames handled this turn (CONN_TURN_FRAMES, conn.c) */
	size_t turn_input;  /* bytes of those frames (CONN_TURN_INPUT_BYTES, conn.c) */
	size_t turn_read;   /* bytes read this turn (CONN_TURN_READ_BYTES, conn.c) */
	/* Times a connection's frames were left for the next turn, a budget of the turn (replies
	 * or frames) or the connection's share of it being spent: for STATS. */
	uint64_t held_over_total;
	/* Times a connection ready to be read was left unread for the next turn, turn_read having
	 * reached the turn's budget for reading: for STATS. */
	uint64_t reads_deferred_total;
	/* Of those, the bytes of small replies made past turn_output_bytes (small_may_pass). */
	size_t turn_spare;

	/* The most its connections' buffers held at once, replies being made included. */
	size_t client_bytes_peak;
	/* Connections with a buffer grown past the size every connection may keep (conn.c), for
	 * conn_set_tick and shed_clients to give back. */
	struct conn_list grown;
	/* What connections' buffers hold, over all of them: the bytes in them, and the whole size
	 * of an empty buffer grown past the size every connection may keep. */
	size_t client_bytes;
	uint64_t progress_seq;     /* stamps connections' progress, in order (see conn.c) */
	uint64_t evictions;        /* connections closed BUSY over max_client_bytes */
	uint64_t displaced;        /* idle connections closed at the limit for newcomers */
	uint64_t refused_at_hello; /* newcomers refused after HELLO at the limit */
	struct log_every displaced_log;
	/* Newcomers refused after HELLO (none could give way), for the warning about them. */
	struct log_every refused_at_hello_log;
	/* Connections without HELLO closed for newcomers, and the last one's peer, for the
	 * warning about them (conn_set_drop_ungreeted). */
	struct log_every dropped_log;
	char dropped_peer[DISPATCH_PEER_NAME_BYTES];
	/* Idle connections a scan found too few of, and ticks + 1 then (conn_set_may_try). */
	size_t idle_counted;
	uint64_t idle_counted_until;
	/* Newcomers let in on trial whose HELLO is not done yet: each counts against one idle
	 * connection it may take the place of (conn_set_may_try). */
	size_t trials;
	/* The connections of each owner (conn_new's ${owner}), in any state, for
	 * conn_set_may_try. */
	struct owners owners;
	/* The connections past HELLO and not closing of each owner (find_victim's counts), and,
	 * over TCP, of each process of a host (conn.c's member_of) as members of their host in
	 * greeted: a host's crowded members let its newcomers in on trial (conn_set_may_try). */
	struct owners greeted;
	struct owners members;
	uint64_t ticks; /* conn_set_tick calls, a clock of seconds for idle times */
	struct log_every evictions_log;
	/* Connections closed for a frame over max_frame (or over 4 KiB before HELLO), of length
	 * 0, or a sealed record that does not authenticate or has a malformed length: what an
	 * attack or a client speaking something else looks like. Counted for STATS, warned of at
	 * most once a minute naming the last peer and why. */
	uint64_t refused_frames;
	/* Put-off sealed HELLOs closed at a retry: their client had stopped sending. */
	uint64_t hellos_abandoned;
	/* Connections without HELLO closed to make room for new ones (conn_set_drop_ungreeted). */
	uint64_t dropped_ungreeted;
	struct log_every refused_frames_log;
	char refused_frame_peer[DISPATCH_PEER_NAME_BYTES];
	const char *refused_frame_why;
	size_t count;
	/* Sockets refused or closed before they were let in, their last reply sent, reading on
	 * until their client closes (conn_set_refuse): not connections, counted nowhere else. */
	struct conn_linger_list lingering;
	size_t n_lingering;
	bool stopping;
};

/*
 * conn_set_has_held(s): whether connections wait for the next turn to go on with frames they
 * have read (the last turn's budget of replies or of frames ran out): the loop must not wait
 * for I/O then.
 */
bool conn_set_has_held(const struct conn_set *s);

/*
 * conn_set_resume_held(s): queue the held connections' input for this turn's
 * conn_set_handle_input: those held before they were handed a frame first, then the
 * connections that read this turn, then those that made their share of replies. One whose
 * client has gone (reset it, or closed a Unix socket; found by poll(2) or by a failed send)
 * has its requests asked only for their replies (on_reply_only) dropped unanswered when it
 * comes to be handed a frame; its changes still run, those still in a Unix socket too, and it
 * is closed after them. Requests with small replies are not held while the turn's
 * spare for them lasts (conn_config.turn_output_bytes), so a client sending them is answered
 * in the turn that reads them while a burst of large replies goes on.
 */
void conn_set_resume_held(struct conn_set *s);

/* conn_set_init(s, cfg): an empty set; ${cfg} is copied. */
void conn_set_init(struct conn_set *s, const struct conn_config *cfg);

/* conn_set_finish(s): free every connection at once (unsent replies are lost). No callbacks
 * run. */
void conn_set_finish(struct conn_set *s);

/*
 * conn_new(s, base, fd, source, owner, local, name, on_trial):
 * Serve the accepted non-blocking descriptor ${fd}, which the set then owns (closed on
 * failure too), from ${source} (see conn_set_drop_ungreeted) and ${owner} (the process where
 * that can be told, see conn_set_may_try; listener_accept_fn), on this host when ${local}
 * (dispatch_peer.local), the peer called ${name} in log lines (dispatch_peer.name; copied,
 * cut to DISPATCH_PEER_NAME_BYTES). ${on_trial}: let in past --max-connections, it must take
 * an idle connection's place once its HELLO is done, or is refused (conn_set_may_try).
 * Returns 0, or -1 (logged).
 */
int conn_new(struct conn_set *s, struct event_base *base, evutil_socket_t fd, uint64_t source,
             uint64_t owner, bool local, const char *name, bool on_trial);

/*
 * conn_set_refuse(s, base, fd, why):
 * Turn away ${fd}, a newcomer accepted on ${base} and not served (the set takes it and closes
 * it): send BUSY with the message ${why} if the socket takes it at once, then close it so that
 * what its client sent, or is still sending, does not make the close a reset that may destroy
 * the BUSY on its way (TCP: an RST; a Unix socket: ECONNRESET at the client's read), as a
 * connection not past HELLO closed for a newcomer is closed: its sending side is shut down, and
 * it lingers apart from the connections (counted toward --max-connections nowhere), reading and
 * discarding what comes (wiped: it may hold a HELLO's secret), until its client closes, 2 s
 * pass or 256 KiB are read. At most CONN_LINGER_MOST linger at once, and only in the
 * descriptors that connections leave of max_connections and spare_sockets; past that, or once
 * the server stops, it is closed at once after one read of at most 4 KiB of what is waiting,
 * and conn_set_shutdown closes those lingering.
 */
void conn_set_refuse(struct conn_set *s, struct event_base *base, evutil_socket_t fd,
                     const char *why);

/*
 * conn_set_drop_ungreeted(s, source):
 * At --max-connections, close a connection that has not said HELLO (with --auth-file, one that
 * has not shown the secret; sealed, one whose client has not sent a record that authenticates
 * yet, as a recorded HELLO can be replayed without the secret) to make room for a newcomer
 * from ${source} (a listener_accept_fn key): of the oldest few, one from that same source
 * that has shown nothing, else one of another client that has shown nothing (no HELLO
 * answered, its client holding no connection past HELLO), else the oldest. So a source
 * opening connections faster than it says HELLO displaces its own, not a client elsewhere
 * that is about to say it, and an attacker posing as many hosts without the secret displaces
 * its own, not a web server's sealed connection awaiting its first record. A newcomer on trial
 * (conn_set_may_try) is kept from its own source's newcomers for half a second, so that a pool
 * opened at once does not close its own connections before their HELLO is read. The one
 * closed is told BUSY first if its socket takes it and its HELLO is not answered (sealed and
 * answered, SHUTTING_DOWN), and lingers as conn_set_refuse says, its slot free at once.
 * Returns false when none gives way: the newcomer is to be refused, or let in on trial.
 */
bool conn_set_drop_ungreeted(struct conn_set *s, uint64_t source);

/*
 * conn_set_may_try(s, owner):
 * Whether a newcomer of ${owner} (conn_new's) may be let in on trial (conn_new's on_trial)
 * past --max-connections: ${owner} holds no connection while another owner holds two or more,
 * or a process of ${owner} (a host, over TCP) holds two or more past HELLO (the newcomer may be
 * another process of that host: its HELLO says), or more connections past HELLO have gone two
 * seconds or more without a byte from their
 * client, with nothing of them in flight, than newcomers are on trial already. Once its HELLO
 * is done a newcomer on trial takes the place of one of those idle ones of the client holding
 * the most, if that client holds more than the newcomer's does, so a client holding
 * connections it does not use (a leaking pool) cannot lock others out, and a web server
 * opening its pool gets as many as that allows, not one. Failing that, a newcomer whose client
 * holds no other takes the place of a connection with nothing in flight of a client holding
 * two or more, the most first, so that under steady load every client gets one before any
 * keeps two; and over TCP, failing that, a newcomer stating a process identity that holds no
 * other, its host holding others, takes the place of one with nothing in flight of its host's
 * process holding the most, if two or more. The one giving way is told SHUTTING_DOWN first (nothing
 * of it was waiting, and its client may connect again). A newcomer that never says HELLO displaces
 * no one; one that finds none to displace when it says it is answered BUSY and closed.
 */
bool conn_set_may_try(struct conn_set *s, uint64_t owner);

/*
 * conn_set_handle_input(s):
 * Handle the requests every connection read in this loop turn, handing each frame to the
 * owner's on_frame; called once per turn, before the commit and conn_set_flush. Reads only
 * queue their connection, so that the store lookups of a turn's requests can start together
 * (on_prefetch) before any is carried out.
 */
void conn_set_handle_input(struct conn_set *s);

/* Whether reads were put off past a turn's budget, for the next turn (the loop must not wait). */
bool conn_set_has_unread(const struct conn_set *s);

/*
 * conn_set_flush(s, committed):
 * End of a loop turn: write the replies of every pending connection (what the socket does
 * not take now goes out when it becomes writable), or, when ${committed} is false (the
 * changes behind them are not durable), close those connections without sending them.
 * A connection that was paused for backpressure and resumes here may queue new replies;
 * conn_set_has_pending then says so, and the next turn must not block.
 */
void conn_set_flush(struct conn_set *s, bool committed);

/* conn_set_has_pending(s): true when some connection has replies waiting for a flush. */
bool conn_set_has_pending(const struct conn_set *s);

/*
 * conn_set_retry(s, most):
 * Hand the put-off frames (DISPATCH_LATER) of the first ${most} waiting connections (SIZE_MAX:
 * all), in the order they were put off, to on_frame again, and the frames after them, as
 * process would have; call it before conn_set_flush, which sends the replies. A connection
 * waits with its reading stopped, so its requests keep their order and a client cannot pile
 * up input meanwhile; one with a sealed HELLO whose client has stopped sending by the time it
 * comes up is closed instead, its HELLO not handled (counted in hellos_abandoned), and is not
 * one of the ${most}. Returns how many connections left the waiting list (their frames ran, or
 * they closed): 0 when every one handed was put off again.
 */
size_t conn_set_retry(struct conn_set *s, size_t most);

/*
 * conn_set_log_pending(s):
 * Write the warnings about connections closed over max_client_bytes, or for a frame or
 * record refused, whose count still waits out its once-a-minute period; for a stopping
 * server, so that its log accounts for each.
 */
void conn_set_log_pending(struct conn_set *s);

/*
 * conn_set_tick(s):
 * Once a second: count the second (for conn_set_may_try), and give back what each
 * connection's buffers grew to for a large frame or reply beyond what it holds now (conn.c,
 * give_back_room), so that connections that go quiet, or keep asking for small things, do not keep
 * a quarter megabyte each. At most one reallocation per buffer per call, and only for connections
 * that grew one. And write the rate-limited warnings whose period is over.
 */
void conn_set_tick(struct conn_set *s);

/* conn_set_has_waiting(s): true when some connection waits for conn_set_retry. */
bool conn_set_has_waiting(const struct conn_set *s);

/* conn_set_waiting_count(s): how many connections wait for conn_set_retry. */
size_t conn_set_waiting_count(const struct conn_set *s);

/*
 * conn_set_close_auth_retired(s, a, admin):
 * Close every connection whose HELLO showed a secret that ${a} (--auth-file) or ${admin}
 * (--admin-auth-file) no longer holds (dispatch_peer.auth_generation and admin_generation,
 * auth_holds_generation; 0, no such secret shown, is left open; either may be NULL): a retired
 * secret must not keep serving whoever holds it. Each stops reading and closes once the
 * replies it has queued are sent, then SHUTTING_DOWN, as in conn_set_shutdown: requests not
 * handled yet get no reply and are not carried out, and the client is told so.
 * Returns how many began closing.
 */
size_t conn_set_close_auth_retired(struct conn_set *s, const struct auth *a,
                                   const struct auth *admin);

/*
 * conn_set_shutdown(s):
 * Stop reading on every connection, once what each has read is handled as far as the turn's
 * output budget goes (the rest, like requests never read, is not carried out). Each that was not
 * closing already then queues SHUTTING_DOWN (request id 0) after its replies, so that its
 * client knows that every request without a reply was not carried out (PROTOCOL.md,
 * "Statuses"), and, once it is sent, lingers up to half a second, reading and discarding, so
 * that requests still on their way cannot reset the connection under it. Each closes once
 * its queued replies are sent (pending ones after conn_set_flush) and the client has closed or
 * the linger ended, or its close timeout passes (the owner's drain limit may come first: a
 * connection cut then gets no SHUTTING_DOWN). The sockets lingering apart (conn_set_refuse)
 * and the connections lingering already are closed at once.
 */
/*
 * conn_set_retire(s, asking, key):
 * RETIRE (PROTOCOL.md): the sealed connection whose HELLO's server key is ${key} (borrowed) is
 * closed from now on: what it read and did not hand on is dropped, nothing more of it is read
 * or handed on, and the next conn_set_flush frees it, its unsent replies dropped. ${asking} is
 * the requesting connection's dispatch state. Returns 1 (closed), 0 (none open, or retired
 * already), or -1 when ${key} names ${asking}'s own connection (nothing done).
 */
int conn_set_retire(struct conn_set *s, const struct dispatch_peer *asking,
                    const uint8_t key[CODEC_RETIRE_KEY_BYTES]);

void conn_set_shutdown(struct conn_set *s);

#endif
