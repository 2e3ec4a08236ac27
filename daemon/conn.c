/*
 * Client connections. See conn.h.
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "codec.h"
#include "log.h"
#include "seal.h"

/* Bytes asked of each read(2) at least. The rest of a frame whose header has been checked is
 * read in one go, but the room for it grows only as its bytes arrive (input_growth). */
#define CONN_READ_CHUNK (16u * 1024u)
/* A connection whose reads fill their room with fewer than CONN_GROW_FRAMES frames asks for
 * twice as much next time, up to CONN_READ_MOST (size_next_read). */
#define CONN_GROW_FRAMES 64u
#define CONN_READ_MOST   (4u * CONN_READ_CHUNK)
/* Buffers grown past these by a large frame or a burst of replies are given back once they
 * are empty again, so an idle connection does not keep a megabyte. */
#define CONN_INPUT_KEEP_BYTES  (4u * CONN_READ_CHUNK)
#define CONN_OUTPUT_KEEP_BYTES (256u * 1024u)
/* A sealed connection's plain replies and raw records are staging buffers, emptied every turn
 * into out and in_data, which keep their own room: kept no larger than a pipelined turn of
 * 1 KB replies needs, so that a sealed connection idles on little more than a plain one. */
#define CONN_STAGING_KEEP_BYTES (4u * CONN_READ_CHUNK)
/* What each buffer of a connection keeps without counting: up to it, a buffer counts in
 * client_bytes only for the bytes in it (but the room of a connection's empty ones together
 * counts past CONN_FREE_ROOM_BYTES, below). An input buffer grown past it counts its whole size
 * (counted_input); an empty output buffer grown past it counts its whole size until it is
 * given back, within a second (conn_set_tick) or at once when the total passes
 * max_client_bytes; without that, 10,000 connections that had each read one 250 KB session
 * kept 2.5 GB that no bound saw. Two read chunks: the input of a client sending small
 * requests (a chunk, plus the start of a frame carried over, see input_room) and the replies
 * to a pipelined turn of 16 1 KB sessions (about 17 KB, which doubling makes 32 KiB) stay
 * within it, so such clients neither count room nor reallocate. */
#define CONN_KEEP_BYTES (2u * CONN_READ_CHUNK)
/* Room of a connection's empty buffers, each under CONN_KEEP_BYTES, that counts nowhere: what
 * server.c reckons a connection's own state at (SERVER_CONNECTION_BYTES) holds a read chunk of
 * it. Past it, that room counts in client_bytes (idle_room) and is given back once the
 * connection read nothing for a whole tick, or at once when the total passes
 * max_client_bytes: one PING with a 30 KB payload, read back, left a connection's input and
 * output just under CONN_KEEP_BYTES each, kept for good and counted nowhere (65 KB resident
 * per idle connection, sealed 105 KB: 10,000 connections held 650 MB to 1 GB, client_bytes 8;
 * hostile review, stop 40). */
#define CONN_FREE_ROOM_BYTES CONN_READ_CHUNK
#define CONN_LINGER_S        2
/* What a lingering socket reads and discards at a time (each read wiped). */
#define CONN_DISCARD_BYTES 4096u
/* Bytes a socket lingering apart (struct conn_linger) reads, over its linger, before it is
 * closed at once: what a client may have sent before it reads the reply it is owed (a Unix
 * socket holds about 200 KB, loopback TCP's window about as much), so that a refused client's
 * first request, a pipeline of SETs or a sealed client's first records, is read whole. The
 * bound keeps a client that goes on sending from making sessd read for it: what sessd reads
 * for one refused socket is at most this, 64 reads, once. */
#define CONN_LINGER_BYTES (256u * 1024u)
/* How long a stopping server lingers after SHUTTING_DOWN (see finish_closing): a client that
 * reads it closes at once, and one that does not must not hold the stop up. */
#define CONN_GOODBYE_LINGER_MS 500
/* How far along the ungreeted connections, oldest first, a newcomer at --max-connections
 * looks for one of its own source's to displace. */
#define CONN_DISPLACE_SCAN 64
/* How long a newcomer let in on trial (conn_set_may_try) is kept from giving way to another
 * newcomer of its own source: enough for a client's HELLO, sent right after its connect, to
 * arrive and be handled under load, so that a web server opening its pool at a full daemon
 * does not close its own connections before their HELLO is read. Half the least
 * --hello-timeout (1 s). Nothing else is kept so: a grace for every connection let a flood
 * spread over a few source addresses keep every slot young and lock real clients out. */
#define CONN_HELLO_GRACE_MS 500
/* How long after its HELLO is answered a sealed connection whose client has sent no record yet
 * counts at --max-connections as one that showed the secret (give_way_rank): enough for the
 * first record a client sends right after the reply (a PING, or the request it connected for)
 * to arrive and be read under load, as CONN_HELLO_GRACE_MS is for a HELLO after the connect.
 * A HELLO replayed off the wire is answered too, and its replayer can never send that record:
 * credited until --hello-timeout, replays from many addresses held their slots above a web
 * server's newcomers, which gave way first. */
#define CONN_FIRST_RECORD_GRACE_MS 500
/* conn_set_tick calls (seconds) without a whole frame from its client after which a connection
 * past HELLO may give way at --max-connections: idle for two whole seconds at least. */
#define CONN_IDLE_DISPLACE_TICKS 3
/* A connection makes at most this fraction of a turn's replies (turn_output_bytes) before the
 * others have their turn, beyond the first frame it is handed. */
#define CONN_TURN_SHARES 16
/* Frames a turn handles, over all connections, before the rest wait for the next turn; a
 * connection handles at most a CONN_TURN_SHARES-th of it. The reply budget alone let a turn run
 * every frame read, as many as a read holds per connection: 50 connections pipelining PINGs
 * (whether they read their replies or not) made turns of 90,000 frames, and a PING from
 * another client waited 10 ms for each (p50 9.5 ms; 40 ms at worst while 50 non-readers
 * filled their 4 MiB of replies). 8,192 small frames take about a millisecond; a connection
 * held for it goes first in the next turn if it got nothing in this one (hold_over). */
#define CONN_TURN_FRAMES 8192u
/* Bytes of requests a turn handles, over all connections, before the rest wait for the next
 * turn (at least one frame is always handled); a connection handles at most
 * CONN_INPUT_SHARE_BYTES of them, beyond its first frame. Every byte of a change is copied
 * into the store, encoded into the log's batch and written by the turn's one commit before any
 * reply goes out, so the frame count alone let a burst of large SETs make one turn of them
 * all: 200 clients each SETting a 1 MB session at once, with --data-dir, held the loop for
 * about a second (the reads, the copies into the store and the batch, the batch's pwrite;
 * bench/README.md, "Large requests"). 2 MiB is twice a turn of the common load (50 connections
 * pipelining 16 SETs of 1 KB: 0.9 MB), and a connection's share holds 16 pipelined SETs of
 * 8 KB (130 KB), so that load runs and commits as before. */
#define CONN_TURN_INPUT_BYTES  (2u * 1024u * 1024u)
#define CONN_INPUT_SHARE_BYTES (256u * 1024u)
/* Past the byte budget, a frame of at most CONN_SMALL_FRAME_BYTES is handled still while the
 * turn's requests stay under a CONN_SPARE_PART-th more of it: a GET or a small SET that came
 * behind a burst of large SETs does not wait for the burst. */
#define CONN_SMALL_FRAME_BYTES (16u * 1024u)
/* Bytes a turn reads, over all connections, before the rest of the ready connections wait
 * for the next turn (conn_on_read). Handling is bounded by CONN_TURN_INPUT_BYTES, but reading
 * was not: every ready connection read what its socket held, up to the rest of its frame (a
 * Unix socket holds some 200 KB), and 200 clients sending 1 MB sessions at once made turns of
 * 40 MB of reads (up to 170 ms on the project's VM, most of it page faults on the input
 * buffers). The same as CONN_TURN_INPUT_BYTES, for the same reason. */
#define CONN_TURN_READ_BYTES (2u * 1024u * 1024u)
/* A sealed record opened counts as at least this many bytes of CONN_TURN_READ_BYTES. Opening
 * one has a fixed cost, about 0.5 us, which is what opening some 500-700 bytes more of a large
 * record costs (libsodium's ChaCha20-Poly1305 runs at about 1 GB/s here; bench/README.md,
 * "bench/sealed"). Counted by their bytes alone, 1-byte records (21 bytes on the wire) let a
 * turn open some 100,000 of them, 50 ms during which every other connection waited (hostile
 * review, stop 41); counted so, a turn opens at most about 4,000 more than the last read
 * brings, as long as a turn of large records takes. */
#define CONN_RECORD_READ_BYTES 512u
/* That alone bounds a turn, but not whom it serves: a turn read two connections' 64 KiB of
 * 1-byte records, and every other client, queued behind the rest of them for its read, waited
 * as long as before. So a sealed connection whose last read opened so many small records that
 * they counted CONN_READ_MOST or more past their bytes (128 records and more: a client's one
 * small record per request or batch never does) reads next only as much as would count
 * CONN_READ_MOST at that rate, and at least CONN_RECORD_READ_LEAST (about 200 1-byte records,
 * 0.1 ms): a turn then reads some twenty such connections, and the rest soon. The bound is
 * lifted by halves, a read that counted less doubling it: a client cannot alternate tiny
 * records with large ones to have every other read whole. A record longer than the room is
 * read in one go as ever. */
#define CONN_RECORD_READ_LEAST (4u * 1024u)
/* Past the turn's budget (or a connection's share of it), a request whose reply is at most
 * CONN_SMALL_REPLY_BYTES is handled still, while the turn's replies made so stay under a
 * CONN_SPARE_PART-th of turn_output_bytes, a connection's under a CONN_SPARE_SHARES-th
 * (small_may_pass). A session of a few kilobytes, a status, a count, STATS are small; a
 * large session, a LIST page, a pile of flash messages are not. */
#define CONN_SMALL_REPLY_BYTES (16u * 1024u)
#define CONN_SPARE_PART        4
#define CONN_SPARE_SHARES      64
#define CONN_BUSY_PENDING                                                                          \
	"the server is at its --max-connections and this connection had not completed HELLO; "     \
	"try again later"
/* SHUTTING_DOWN's messages to a sealed connection whose HELLO was answered and from which no
 * record came: at its --hello-timeout (say_goodbye), and closed for a newcomer at
 * --max-connections (drop_pending). */
#define CONN_GOODBYE_HELLO_TIMEOUT                                                                 \
	"sessd closed this sealed connection: no request came within --hello-timeout of "          \
	"connecting, and only a record from the client shows it holds the secret (a sealed HELLO " \
	"can be replayed); send a request or PING soon after HELLO"
#define CONN_GOODBYE_UNPROVEN                                                                      \
	"sessd closed this sealed connection for a newcomer at --max-connections: no record had "  \
	"come from it since its HELLO was answered, and only a record shows the secret (a sealed " \
	"HELLO can be replayed); requests without a reply were not carried out; "                  \
	"send a request or PING right after HELLO"
#define CONN_BUSY_AFTER_HELLO                                                                      \
	"the server is at its --max-connections and no connection could give way: a client "       \
	"holding more than this one's gives up one idle for 2 s, and one holding two or more "     \
	"gives up one not in use only to a client holding none; try again later"

/*
 * A socket closed before it was let in (conn_set_refuse, drop_pending, or a connection closing
 * before its HELLO was done or refused at it: hand_off), its last reply sent and its sending
 * side shut down, reading and discarding until its client closes, its time is up or it has read
 * CONN_LINGER_BYTES, so that what its client was still sending does not turn the close into a
 * reset that destroys the reply on its way. Not a connection: it holds no slot of
 * --max-connections, no one ranks below it, and it holds no buffer; at most CONN_LINGER_MOST
 * at once.
 */
struct conn_linger {
	TAILQ_ENTRY(conn_linger) link;
	struct conn_set *set;
	evutil_socket_t fd;
	struct event *ev; /* EV_READ, armed with the time left as its timeout */
	int64_t until_ms; /* CLOCK_MONOTONIC ms when it closes at the latest */
	size_t discarded; /* bytes read and dropped */
};

struct conn {
	TAILQ_ENTRY(conn) link;
	TAILQ_ENTRY(conn) pending_link;
	TAILQ_ENTRY(conn) input_link;
	TAILQ_ENTRY(conn) unread_link;
	TAILQ_ENTRY(conn) waiting_link;
	TAILQ_ENTRY(conn) ungreeted_link; /* in set->ungreeted until greeted */
	TAILQ_ENTRY(conn) grown_link;     /* in set->grown while grown */
	TAILQ_ENTRY(conn) held_over_link; /* in set->held_over while held_over */
	struct conn_set *set;
	evutil_socket_t fd;
	uint64_t source;     /* where it came from (listener_accept_fn) */
	int64_t accepted_ms; /* CLOCK_MONOTONIC ms of the accept, for CONN_HELLO_GRACE_MS */
	uint64_t owner;      /* the process, where that can be told (listener_accept_fn) */
	/* Over TCP, once greeted: the process of the host (member_of), as counted in the set's
	 * members. */
	uint64_t member;
	struct event *read_ev;  /* EV_READ | EV_PERSIST */
	struct event *write_ev; /* EV_WRITE | EV_PERSIST, added only while the socket is full */
	/* HELLO deadline until HELLO is done, then the close timeout or linger once closing
	 * starts. */
	struct event *timer;
	/* Input: bytes [in_start, in_end) of in_data are received and not yet handled. */
	uint8_t *in_data;
	size_t in_start;
	size_t in_end;
	size_t in_cap;
	/* What of the buffers the set's client_bytes counts (unhandled input, unsent output and
	 * room kept past CONN_KEEP_BYTES; see counted), when last noted. */
	size_t held;
	/* The set's progress_seq when it last made progress (completed a frame, or the socket
	 * took all its replies) or, if later, when it started holding bytes. */
	uint64_t progress_at;
	/* The set's ticks when its client's last whole frame came (or it connected), for
	 * idle_enough: bytes alone do not count, or one byte a second into a frame never
	 * finished would keep a connection from ever giving way. */
	uint64_t active_tick;
	/* The set's ticks when a read last brought bytes (give_back_room). */
	uint64_t read_tick;
	/* Bytes the next read asks for at least: CONN_READ_CHUNK to CONN_READ_MOST. */
	size_t read_bytes;
	/* Sealed: the most the next read takes while its client sends many tiny records (0: no
	 * bound; CONN_RECORD_READ_LEAST). */
	size_t read_cap;
	bool holding; /* its buffers held bytes when last noted (room alone does not count) */
	bool grown;   /* on the set's grown list: a buffer was grown past CONN_KEEP_BYTES */
	/* Output: bytes [out_sent, out.len) are replies not yet taken by the socket. */
	struct buf out;
	size_t out_sent;
	/* Sealed connections (peer.seal set by HELLO) only: replies not sealed yet, which go to
	 * out as records when written; and records received whose end has not arrived. */
	struct buf plain;
	struct buf raw;
	/* Why a received record was refused: the frames opened before it are handled first,
	 * then this is the connection's last answer. NULL: none was. */
	const char *record_fault;
	struct dispatch_peer peer;
	bool pending; /* on the set's pending list */
	bool queued;  /* on the set's input list: read this turn, not handled yet */
	bool unread;  /* on the set's unread list: ready, its read put off (conn_on_read) */
	bool reading; /* read_ev is added */
	bool writing; /* write_ev is added */
	bool closing; /* reading is over: close once the output is sent */
	bool paused;  /* the client is not reading its replies: stop reading its requests */
	/* On the set's waiting list: its first unhandled frame was put off (DISPATCH_LATER);
	 * nothing of it is read or handled until conn_set_retry. */
	bool waiting;
	/* On one of the set's held lists: the turn's budget of replies or of frames, or its own
	 * share, ran out before its next frame; it goes on in the next turn, reading nothing
	 * meanwhile. held_starved: on held_starved, held before it was handed anything. */
	bool held_over;
	bool held_starved;
	/* Taken off a held list, and handed no frame since: peer_gone is asked first. */
	bool resumed;
	/* A Unix socket, watched with EV_CLOSED: epoll reports a client's hang-up with the read
	 * that brings what it sent last (EPOLLHUP | EPOLLRDHUP, which libevent gives as
	 * EV_CLOSED), so a small reply that would lose something asks peer_gone only once that
	 * was reported (hangup_told), or while reads are not watched (silence_means_here). Over TCP
	 * a reset comes as EPOLLERR, which libevent does not tell from a read, so the poll is asked
	 * every time. */
	bool hangup_watched;
	bool hangup_told;
	/* Its client has gone (a send failed, or poll(2) found the connection closed or reset):
	 * what it sent still runs, to the end of what the socket holds (read_left), replies go
	 * nowhere, and the connection closes once nothing is left (finish_broken). Neither
	 * event is watched meanwhile. */
	bool broken;
	/* What went out was consumed from the front of the output while a reply was part sent:
	 * the output may not start on a frame. */
	bool out_torn;
	bool peer_eof; /* the client shut its side down */
	/* HELLO is done and its deadline disarmed, and on a sealed connection a record from the
	 * client has opened: a sealed HELLO carries no challenge from us, so whoever recorded one
	 * can replay it and be answered; only a record under the agreed key shows the peer holds
	 * the secret. Until then the connection stays on the set's ungreeted list, displaceable. */
	bool greeted;
	bool hello_done;  /* HELLO is done */
	bool peer_proved; /* sealed: a record from the client has authenticated */
	/* The HELLO deadline is disarmed: plain, once HELLO is done; sealed, once peer_proved
	 * too. A replayed sealed HELLO is answered, so its answer cannot end the deadline: such
	 * connections, held open without the secret, were bounded only by --max-connections. */
	bool deadline_met;
	/* Its SHUTTING_DOWN is for a sealed connection from which no record came by the HELLO
	 * deadline. */
	bool unproven;
	/* Replies are out and our side is shut down; reading on (and discarding) until the
	 * client closes, so unread requests in the kernel cannot turn our close into a reset
	 * that destroys the replies still in flight. */
	bool lingering;
	/* The server began stopping while this connection was open and not closing for a reason
	 * of its own: once the replies to what it read are queued, SHUTTING_DOWN follows them. */
	bool owes_goodbye;
	/* That SHUTTING_DOWN is queued: once it is out, the connection lingers briefly. */
	bool said_goodbye;
	/* Its SHUTTING_DOWN is for giving way at --max-connections, not for a stopping server. */
	bool displaced;
	/* Let in past --max-connections to take an idle connection's place once its HELLO is done
	 * (conn_set_may_try); counted in the set's trials until then. */
	bool on_trial;
	/* Its SHUTTING_DOWN is for the secret its HELLO showed, retired since. */
	bool auth_retired;
	/* Refused at its HELLO (admit): never let in, it lingers apart (hand_off). */
	bool turned_away;
	/* Closed over --max-client-memory (evict): what the kernel still holds of it goes too. */
	bool evicted;
	/* Named by a RETIRE from another connection (conn_set_retire): nothing more of it is
	 * read or handled, and the flush at the end of the turn closes it, replies unsent. */
	bool retired;
	/* Over TCP (owner is the host): the processes of the host are told apart at HELLO. */
	bool tcp;
	/* Counted in the set's greeted (and, over TCP, members) tallies: greeted, not closing. */
	bool tallied;
	/* Sealed: CLOCK_MONOTONIC ms of its HELLO's reply, for CONN_FIRST_RECORD_GRACE_MS (here,
	 * away from what each frame reads, as peer_name is). */
	int64_t answered_ms;
	/* What peer.name points to; last, away from what each frame reads. */
	char peer_name[DISPATCH_PEER_NAME_BYTES];
};

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ${c}'s trial is over (admitted, refused or closed): the set counts one trial fewer, so an
 * idle connection it was counted against may be tried for again. */
static void end_trial(struct conn *c)
{
	if (!c->on_trial)
		return;
	c->on_trial = false;
	c->set->trials--;
	c->set->idle_counted_until = 0;
}

static size_t unsent(const struct conn *c)
{
	return c->out.len - c->out_sent + c->plain.len;
}

/* Where replies are written: out, or plain on a sealed connection. */
static struct buf *replies(struct conn *c)
{
	return c->peer.seal != NULL ? &c->plain : &c->out;
}

/*
 * What an output buffer holding ${used} bytes of its ${cap} counts in client_bytes: those
 * bytes, or, empty and grown past CONN_KEEP_BYTES, all of it. A buffer in use counts only its
 * bytes, as doubling leaves it at most twice that; one left nearly empty is given back within
 * a second (give_back_room).
 */
static size_t counted(size_t used, size_t cap)
{
	return used == 0 && cap > CONN_KEEP_BYTES ? cap : used;
}

/*
 * What an input buffer (the input, or a sealed connection's records) of ${cap} holding ${used}
 * bytes counts in client_bytes: all of its room once grown past CONN_KEEP_BYTES, else its
 * bytes. Its room is the client's doing: the rest of a frame or record whose header has come,
 * which input_growth keeps to about what has come; when only the bytes counted, no bound saw
 * it (200 clients that announced 64 MiB frames and sent 115 bytes of each held 12.5 GiB of
 * address space, 23 KB of it counted).
 */
static size_t counted_input(size_t used, size_t cap)
{
	return cap > CONN_KEEP_BYTES ? cap : used;
}

/*
 * The room of ${c}'s empty buffers that counted() and counted_input() leave out (each under
 * CONN_KEEP_BYTES), beyond CONN_FREE_ROOM_BYTES over all of them: it counts in client_bytes,
 * and give_back_room frees those buffers.
 */
static size_t idle_room(const struct conn *c)
{
	size_t room = 0;

	if (c->in_end == c->in_start && c->in_cap <= CONN_KEEP_BYTES)
		room += c->in_cap;
	if (c->raw.len == 0 && c->raw.cap <= CONN_KEEP_BYTES)
		room += c->raw.cap;
	if (c->out.len == c->out_sent && c->out.cap <= CONN_KEEP_BYTES)
		room += c->out.cap;
	if (c->plain.len == 0 && c->plain.cap <= CONN_KEEP_BYTES)
		room += c->plain.cap;
	return room > CONN_FREE_ROOM_BYTES ? room - CONN_FREE_ROOM_BYTES : 0;
}

static bool has_grown(const struct conn *c)
{
	return c->in_cap > CONN_KEEP_BYTES || c->raw.cap > CONN_KEEP_BYTES ||
	       c->out.cap > CONN_KEEP_BYTES || c->plain.cap > CONN_KEEP_BYTES || idle_room(c) > 0;
}

/*
 * Count ${c}'s buffers in the set's total, and note when it ${progressed} (completed a frame,
 * or the socket took all its replies) or starts holding bytes: shed_clients takes the one
 * that has gone longest without either first. A plain stamp per connection: a list kept in
 * that order cost more on every request than a sort when the limit is passed. A connection
 * whose buffers grew past CONN_KEEP_BYTES joins the set's grown list, for give_back_room.
 */
static void note_held(struct conn *c, bool progressed)
{
	struct conn_set *s = c->set;
	size_t in = c->in_end - c->in_start, out = c->out.len - c->out_sent;
	size_t held = counted_input(in, c->in_cap) + counted_input(c->raw.len, c->raw.cap) +
	              counted(out, c->out.cap) + counted(c->plain.len, c->plain.cap) + idle_room(c);
	bool holding = in + c->raw.len + out + c->plain.len > 0;

	if (progressed || !c->holding)
		c->progress_at = ++s->progress_seq;
	c->holding = holding;
	s->client_bytes = s->client_bytes - c->held + held;
	c->held = held;
	if (s->client_bytes > s->client_bytes_peak)
		s->client_bytes_peak = s->client_bytes;
	if (!c->grown && has_grown(c)) {
		c->grown = true;
		TAILQ_INSERT_TAIL(&s->grown, c, grown_link);
	}
}

/*
 * Wipe ${c}'s unread input where it is, before its buffer is freed or its bytes move: a frame
 * not read through may be a HELLO with a secret (the greeting, or one sent again past it,
 * which closes the connection once whole), and its bytes must outlive it nowhere, in memory
 * freed or left behind (sessd(8), --auth-file). A frame read through is wiped as it is handled
 * if it could hold one (process()). Before HELLO is done the whole buffer goes: it is small.
 */
static void wipe_unread_input(struct conn *c)
{
	if (c->in_data == NULL)
		return;
	if (!c->peer.ready)
		sodium_memzero(c->in_data, c->in_cap);
	else
		sodium_memzero(c->in_data + c->in_start, c->in_end - c->in_start);
}

/*
 * Wipe ${c}'s record buffer from ${at} to its end, never to be opened: a record that does not
 * authenticate, or one its client cut short, may be a plain HELLO sent where a record was
 * due, its secret in the clear (sessd(8), --auth-file). To the capacity, not the length: a
 * consume moved the unopened tail to the front and left its old place as it was.
 */
static void wipe_unopened(struct conn *c, size_t at)
{
	if (c->raw.cap > at)
		sodium_memzero(c->raw.data + at, c->raw.cap - at);
}

/* buf_finish for a buffer that may hold bytes never opened (a sealed connection's records:
 * wipe_unopened), wiped to its capacity first. */
static void finish_wiped(struct buf *b)
{
	if (b->data != NULL)
		sodium_memzero(b->data, b->cap);
	buf_finish(b);
}

/*
 * Drop what ${c} read and did not handle, wiped first: its unread frames (wipe_unread_input)
 * and its unopened records (wipe_unopened). Setting the counts back alone left them whole in
 * buffers that are then freed as they are, or reused (trim_input frees an empty record buffer
 * unwiped): the close at --max-client-memory (evict), a RETIRE, the start of a linger.
 */
static void drop_unread(struct conn *c)
{
	wipe_unread_input(c);
	c->in_start = c->in_end = 0;
	wipe_unopened(c, 0);
	buf_reset(&c->raw);
}

/*
 * buf_reserve for ${c}'s record buffer, by copy and wipe instead of realloc, which would free
 * the old block as it was (wipe_unopened's bytes in it). Returns 0, or -1 when memory ran out
 * (the buffer is unchanged).
 */
static int reserve_raw(struct conn *c, size_t want)
{
	struct buf grown;

	if (c->raw.cap - c->raw.len >= want)
		return 0;
	buf_init(&grown);
	if (c->raw.len > SIZE_MAX - want || buf_reserve(&grown, c->raw.len + want) == -1)
		return -1;
	if (c->raw.len > 0)
		memcpy(grown.data, c->raw.data, c->raw.len);
	grown.len = c->raw.len;
	finish_wiped(&c->raw);
	c->raw = grown;
	return 0;
}

/* Free ${c}'s memory and descriptor (-1 when hand_off took it); no list is touched. */
static void conn_destroy(struct conn *c)
{
	event_free(c->read_ev);
	event_free(c->write_ev);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->fd != -1)
		evutil_closesocket(c->fd);
	wipe_unread_input(c);
	free(c->in_data);
	buf_finish(&c->out);
	buf_finish(&c->plain);
	finish_wiped(&c->raw);
	seal_free(c->peer.seal);
	free(c);
}

/* Take ${c} off its held list, if it is on one. */
static void unhold(struct conn *c)
{
	struct conn_set *s = c->set;

	if (!c->held_over)
		return;
	TAILQ_REMOVE(c->held_starved ? &s->held_starved : &s->held_over, c, held_over_link);
	c->held_over = false;
	c->held_starved = false;
}

/*
 * Count ${c}, just greeted, in the set's greeted tally, and over TCP its process in the
 * members of its host. Returns 0, or -1 with errno ENOMEM (nothing counted).
 */
static int tally_greeted(struct conn *c)
{
	struct conn_set *s = c->set;

	if (owners_add(&s->greeted, c->owner) == -1)
		return -1;
	if (c->tcp && owners_add_member(&s->members, c->member, &s->greeted, c->owner) == -1) {
		owners_remove(&s->greeted, c->owner);
		return -1;
	}
	c->tallied = true;
	return 0;
}

/* Take ${c} out of the tallies tally_greeted counted it in, if it is. */
static void untally(struct conn *c)
{
	struct conn_set *s = c->set;

	if (!c->tallied)
		return;
	if (c->tcp)
		owners_remove_member(&s->members, c->member, &s->greeted);
	owners_remove(&s->greeted, c->owner);
	c->tallied = false;
}

/* ${c} is closing from now on: it no longer counts for find_victim. */
static void mark_closing(struct conn *c)
{
	untally(c);
	c->closing = true;
}

/* Take ${c} off every list of its set and out of its counts, then free it. */
static void conn_unlink_destroy(struct conn *c)
{
	struct conn_set *s = c->set;

	if (c->pending)
		TAILQ_REMOVE(&s->pending, c, pending_link);
	if (c->queued)
		TAILQ_REMOVE(&s->input, c, input_link);
	if (c->unread)
		TAILQ_REMOVE(&s->unread, c, unread_link);
	if (c->waiting) {
		TAILQ_REMOVE(&s->waiting, c, waiting_link);
		s->n_waiting--;
	}
	if (!c->greeted)
		TAILQ_REMOVE(&s->ungreeted, c, ungreeted_link);
	end_trial(c);
	if (c->grown)
		TAILQ_REMOVE(&s->grown, c, grown_link);
	unhold(c);
	s->client_bytes -= c->held;
	TAILQ_REMOVE(&s->all, c, link);
	s->count--;
	untally(c);
	owners_remove(&s->owners, c->owner);
	conn_destroy(c);
}

/* Free ${c} now, telling the owner first. ${c} is gone afterwards. */
static void conn_close(struct conn *c)
{
	struct conn_set *s = c->set;

	conn_unlink_destroy(c);
	/* Last, so the owner sees the set as it now is (a stopping server counts to zero). */
	if (s->cfg.on_closed != NULL)
		s->cfg.on_closed(s->cfg.arg);
}

/*
 * Read what ${fd}'s client sent, up to CONN_DISCARD_BYTES, and drop it, wiped: a HELLO sent
 * after the close may show a secret, which the stack would keep until something overwrote it.
 * Returns recv(2)'s result.
 */
static ssize_t discard_some(evutil_socket_t fd)
{
	uint8_t sink[CONN_DISCARD_BYTES];
	ssize_t got = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);

	if (got > 0)
		sodium_memzero(sink, (size_t)got);
	return got;
}

/* Close ${l} and free it. */
static void linger_end(struct conn_linger *l)
{
	struct conn_set *s = l->set;

	TAILQ_REMOVE(&s->lingering, l, link);
	s->n_lingering--;
	event_free(l->ev);
	evutil_closesocket(l->fd);
	free(l);
}

/* Arm ${l}'s event for what is left of its time, ${left_ms}. Returns 0, or -1. */
static int linger_arm(struct conn_linger *l, int64_t left_ms)
{
	struct timeval tv = {(time_t)(left_ms / 1000), (suseconds_t)(left_ms % 1000) * 1000};

	return event_add(l->ev, &tv);
}

/* A lingering socket is readable, or its time is up: one read, then close once its client has
 * closed (or reset), its time is up or it read CONN_LINGER_BYTES, the rest unread (then a
 * reset, as for a socket that could not linger). */
static void linger_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn_linger *l = arg;
	struct conn_set *s = l->set;
	int64_t left_ms = l->until_ms - mono_ms();
	ssize_t got = 0;

	if (s->cfg.on_io != NULL)
		s->cfg.on_io(s->cfg.arg);
	if (!(what & EV_TIMEOUT)) {
		got = discard_some(fd);
		if (got > 0)
			l->discarded += (size_t)got;
		else if (got == -1 && (errno == EAGAIN || errno == EINTR))
			got = 1;
	}
	if (got <= 0 || left_ms <= 0 || l->discarded >= CONN_LINGER_BYTES ||
	    linger_arm(l, left_ms) == -1)
		linger_end(l);
}

/*
 * Whether one more socket may linger apart now, ${counted} of the set's connections being it (1:
 * a connection handed off, whose descriptor moves over): not while the server stops, at most
 * CONN_LINGER_MOST, and only in the descriptors the connections leave of max_connections and
 * spare_sockets (the owner's budget of open files), so that a connection let in on trial or
 * giving way is never refused for a socket lingering.
 */
static bool may_linger(const struct conn_set *s, size_t counted)
{
	size_t budget = (size_t)s->cfg.max_connections + s->cfg.spare_sockets;

	return !s->stopping && s->n_lingering < CONN_LINGER_MOST &&
	       s->count - counted + s->n_lingering < budget;
}

/*
 * Close ${fd} (the set's from now on), a socket of ${base} whose last reply has gone out or was
 * dropped: it lingers apart (struct conn_linger) for up to ${ms}, its sending side shut down, so
 * that the client reads that reply and then the end of the stream; or, when CONN_LINGER_MOST
 * linger already, the server stops or memory runs out, it is closed at once after one read of
 * what is waiting (a reset if more was).
 */
static void close_lingering(struct conn_set *s, struct event_base *base, evutil_socket_t fd,
                            long ms)
{
	struct conn_linger *l = NULL;

	if (!may_linger(s, 0))
		goto fail_close;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		goto fail_close;
	l->set = s;
	l->fd = fd;
	l->until_ms = mono_ms() + ms;
	l->ev = event_new(base, fd, EV_READ, linger_on_read, l);
	if (l->ev == NULL || linger_arm(l, ms) == -1)
		goto fail_free;
	shutdown(fd, SHUT_WR);
	TAILQ_INSERT_TAIL(&s->lingering, l, link);
	s->n_lingering++;
	return;

fail_free:
	if (l->ev != NULL)
		event_free(l->ev);
	free(l);
fail_close:
	(void)discard_some(fd);
	evutil_closesocket(fd);
}

/*
 * ${c}, closing, not let in (before its HELLO was done, or refused at it) and its replies out,
 * would linger now: it lingers apart instead (close_lingering) for ${ms}, freed at once, so that
 * it holds no slot of --max-connections (it did for up to 2 s, above every newcomer that had not
 * said HELLO yet, which were closed for a newcomer before it). Not while the server stops: its
 * SHUTTING_DOWN lingers as a connection, which the stop waits for. Returns true when ${c} was
 * freed.
 */
static bool hand_off(struct conn *c, long ms)
{
	struct conn_set *s = c->set;
	struct event_base *base = event_get_base(c->read_ev);
	evutil_socket_t fd = c->fd;

	if ((c->greeted && !c->turned_away) || !may_linger(s, 1))
		return false;
	c->fd = -1;
	conn_close(c);
	close_lingering(s, base, fd, ms);
	return true;
}

/* Watch for requests only while nothing stops it (see the flags in struct conn); the flags
 * spare epoll_ctl calls that would change nothing. */
static void update_reading(struct conn *c)
{
	bool want = c->lingering || !(c->closing || c->paused || c->waiting || c->held_over ||
	                              c->broken || c->set->stopping);

	if (want == c->reading)
		return;
	if ((want ? event_add(c->read_ev, NULL) : event_del(c->read_ev)) == -1)
		log_warn("cannot change a connection's read event");
	c->reading = want;
}

static void set_writing(struct conn *c, bool want)
{
	if (want == c->writing)
		return;
	if ((want ? event_add(c->write_ev, NULL) : event_del(c->write_ev)) == -1)
		log_warn("cannot change a connection's write event");
	c->writing = want;
}

static void conn_on_timer(evutil_socket_t fd, short what, void *arg);

/* Arm the connection's one timer (HELLO deadline, close timeout or linger) for ${ms}
 * milliseconds, making it on first use. Returns 0, or -1 when it cannot be made. */
static int arm_timer_ms(struct conn *c, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	if (c->timer == NULL) {
		c->timer = evtimer_new(event_get_base(c->read_ev), conn_on_timer, c);
		if (c->timer == NULL)
			return -1;
	}
	return evtimer_add(c->timer, &tv);
}

/* arm_timer_ms for ${seconds}. */
static int arm_timer(struct conn *c, int seconds)
{
	return arm_timer_ms(c, seconds * 1000L);
}

static bool conn_write(struct conn *c);
static void empty_output(struct conn *c);
static int make_room(struct conn *c);
static bool process(struct conn *c, const struct dispatch_frame_ref *first);

/*
 * Append the error reply ${status} ${message} (request id 0) that ends ${c}'s stream. Sealed,
 * only with the room to seal it kept in out (dispatch_peer.sealed_out), or the replies before
 * it would find none and be lost with it. Returns 0, or -1 (ENOMEM; nothing appended).
 */
static int reply_last(struct conn *c, uint32_t status, const char *message)
{
	struct buf *out = replies(c);
	size_t start = out->len;

	if (codec_reply_error(out, 0, status, message) == -1)
		return -1;
	if (out == &c->plain && seal_reserve(&c->out, out->len) == -1) {
		out->len = start;
		return -1;
	}
	return 0;
}

/*
 * A stopping server: after the replies to every request it handled, one SHUTTING_DOWN
 * (request id 0; PROTOCOL.md, "Statuses"), so that the client knows every request of its
 * without a reply was not carried out; a stream cut without it (the drain timeout) leaves
 * that open. Queued behind what is unsent: sent whole only after all of it.
 */
static void say_goodbye(struct conn *c)
{
	c->owes_goodbye = false;
	const char *why = "sessd is stopping; requests without a reply were not carried out";

	if (c->unproven)
		why = CONN_GOODBYE_HELLO_TIMEOUT;
	else if (c->displaced)
		why = "sessd closed this connection, nothing of it in flight, to make room at "
		      "--max-connections for a client holding fewer; connect again when needed";
	else if (c->auth_retired)
		/* The one it showed: an operator who rotated the admin secret looks there. */
		why =
		    c->peer.admin_generation != 0
		        ? "sessd no longer accepts the --admin-auth-file secret this connection "
		          "showed; requests without a reply were not carried out"
		        : "sessd no longer accepts the --auth-file secret this connection showed; "
		          "requests without a reply were not carried out";
	if (reply_last(c, CODEC_SHUTTING_DOWN, why) == -1) {
		log_warn("out of memory for a SHUTTING_DOWN reply");
		return;
	}
	c->said_goodbye = true;
	note_held(c, false);
}

/*
 * The output is empty or waits: close now if it is out and the client is gone or the server
 * stops, else linger. Returns true when ${c} was freed.
 */
static bool finish_closing(struct conn *c)
{
	if (c->owes_goodbye) {
		say_goodbye(c);
		/* Sent with the replies before it: by the flush, or by the write event when the
		 * socket is full; else now. */
		if (c->said_goodbye && !c->pending && !c->writing)
			return conn_write(c);
	}
	if (c->pending)
		return false; /* the flush comes back here */
	if (unsent(c) > 0) {
		/* A client that never reads its last replies must not keep us forever; a partial
		 * write does not restart the clock, or a trickling reader could. */
		if (c->timer != NULL && evtimer_pending(c->timer, NULL))
			return false;
		if (arm_timer(c, c->set->cfg.close_timeout_s) == -1) {
			conn_close(c);
			return true;
		}
		return false;
	}
	/* After SHUTTING_DOWN, requests a pipelining client sent before it read it may still
	 * arrive: linger, as below, so that they do not reset the connection under it (a client
	 * whose write fails may drop what it has not read, SHUTTING_DOWN included). */
	if (c->peer_eof || (c->set->stopping && !c->said_goodbye)) {
		conn_close(c);
		return true;
	}
	if (!c->lingering) {
		long linger_ms = c->said_goodbye ? CONN_GOODBYE_LINGER_MS : CONN_LINGER_S * 1000L;

		if (hand_off(c, linger_ms))
			return true;
		if (arm_timer_ms(c, linger_ms) == -1) {
			conn_close(c);
			return true;
		}
		c->lingering = true;
		shutdown(c->fd, SHUT_WR);
		drop_unread(c);
		note_held(c, false);
		update_reading(c);
	}
	return false;
}

/* No more requests: close once the output is out. Returns true when ${c} was freed. */
static bool begin_closing(struct conn *c)
{
	mark_closing(c);
	update_reading(c);
	return finish_closing(c);
}

/* Put ${c} on the pending list, for the flush at the end of the turn. */
static void mark_pending(struct conn *c)
{
	if (c->pending)
		return;
	c->pending = true;
	TAILQ_INSERT_TAIL(&c->set->pending, c, pending_link);
}

/* Queue a reply the connection closes after. Nothing of its input is read after it, so what
 * is unread is wiped: frames sent behind a header refused unread (refuse_frame) or behind a
 * HELLO refused BUSY may be a HELLO showing a secret, which stayed whole while the connection
 * lingered (2-10 s). */
static void reply_and_close(struct conn *c, uint32_t status, const char *message)
{
	wipe_unread_input(c);
	if (reply_last(c, status, message) == -1)
		log_warn("out of memory for an error reply");
	mark_closing(c);
}

static void say_refused_frames(const struct conn_set *s, uint64_t closed)
{
	log_warn("closed %llu connection(s) for a frame or record this server refuses, the last "
	         "from %s: %s (a client speaking something else, or an attack)",
	         (unsigned long long)closed,
	         s->refused_frame_peer[0] != '\0' ? s->refused_frame_peer : "an unnamed peer",
	         s->refused_frame_why);
}

/* reply_and_close for a frame or record refused unread (${why} is a literal): counted, and
 * warned of at most once a minute, so that a security team can see an attack in the log
 * while the attacker cannot fill it. */
static void refuse_frame(struct conn *c, uint32_t status, const char *why)
{
	struct conn_set *s = c->set;
	uint64_t closed;

	s->refused_frames++;
	snprintf(s->refused_frame_peer, sizeof(s->refused_frame_peer), "%s", c->peer_name);
	s->refused_frame_why = why;
	closed = log_every_due(&s->refused_frames_log, 1, 60);
	if (closed > 0)
		say_refused_frames(s, closed);
	reply_and_close(c, status, why);
}

/*
 * Whether ${c} is past HELLO and nothing of it is in flight (no reply unsent, no request
 * unhandled, no read put off by the turn's budget, which may hold a request that has waited
 * behind other clients' large frames): it may give way at --max-connections, to a newcomer
 * whose client holds no connection (find_victim). The start of a frame it has not finished
 * may be in its input, and requests its client sent since may be in its socket: the client
 * learns from SHUTTING_DOWN that they were not carried out.
 */
static bool not_in_use(const struct conn *c)
{
	return c->greeted && !c->closing && !c->pending && !c->queued && !c->unread &&
	       !c->waiting && !c->paused && !c->held_over && unsent(c) == 0;
}

/*
 * Whether ${c} is not_in_use and its client has sent no whole frame for two seconds or more:
 * it may give way at --max-connections to any newcomer whose client holds fewer. Bytes of a
 * frame not finished do not count (a client trickling a byte a second into frames it never
 * finished held every slot: newcomers were refused for as long as it went on).
 */
static bool idle_enough(const struct conn_set *s, const struct conn *c)
{
	return not_in_use(c) && s->ticks - c->active_tick >= CONN_IDLE_DISPLACE_TICKS;
}

/*
 * How many connections are idle_enough, counting up to ${most}. A scan, run only at
 * --max-connections (a list kept in order would cost every read); one that finds fewer is
 * not repeated within the same second (a connection becomes idle only at a tick, and a trial
 * ending clears what was found), so a flood of connections at the limit cannot make every
 * accept pay for it.
 */
static size_t count_idle(struct conn_set *s, size_t most)
{
	struct conn *c;
	size_t n = 0;

	if (s->idle_counted_until == s->ticks + 1)
		return s->idle_counted;
	TAILQ_FOREACH(c, &s->all, link)
	{
		if (idle_enough(s, c) && ++n >= most)
			return n;
	}
	s->idle_counted = n;
	s->idle_counted_until = s->ticks + 1;
	return n;
}

/*
 * The process of its host ${c} (TCP, just greeted) counts as: the identity its HELLO stated
 * (dispatch_peer.process), mixed with its host so that the same identity on two hosts is two
 * processes; or, with none stated, the host itself, all of whose connections without one are
 * one process. The identity's hash is keyed with a key of the daemon's, so a client cannot
 * make its key another host's process's (a chance one only merges two counts: see owners.h).
 */
static uint64_t member_of(const struct conn *c)
{
	if (c->peer.process == 0)
		return c->owner;
	return c->owner ^ c->peer.process;
}

/*
 * The connection not_in_use that has gone longest without a whole frame among those of the
 * owners holding the most in ${tally} (the set's greeted, by owner), if two or more; with
 * ${host}, among those of ${host}'s processes over TCP, by the set's members tally. NULL when
 * there is none.
 */
static struct conn *most_held_not_in_use(struct conn_set *s, const struct owners *tally,
                                         const struct conn *host)
{
	struct conn *each, *victim = NULL;
	uint32_t holds, victim_holds = 0;

	TAILQ_FOREACH(each, &s->all, link)
	{
		if (!not_in_use(each) ||
		    (host != NULL && (each->owner != host->owner || !each->tcp)))
			continue;
		holds = owners_count(tally, host != NULL ? each->member : each->owner);
		if (holds < 2 || holds < victim_holds)
			continue;
		if (victim == NULL || holds > victim_holds ||
		    each->active_tick < victim->active_tick) {
			victim = each;
			victim_holds = holds;
		}
	}
	return victim;
}

/*
 * The connection ${c} (just past HELLO, over --max-connections) may take the place of: the
 * one idle longest (idle_enough) among those of the owners (processes, or hosts over
 * TCP) holding the most connections past HELLO, if they hold more than ${c}'s owner does with
 * ${c}. Failing that, when ${c} is its owner's only one: the one not_in_use that has gone
 * longest without a whole frame among those of the owners holding two or more, the most
 * first. So a client that holds more connections than anyone cannot take another's place, one
 * whose pool leaks gives way to a web server starting up, and under steady load every client
 * gets one connection before any keeps two; among equals no one is displaced. Failing that,
 * over TCP, when ${c}'s host holds others but ${c}, stating a process identity, is its
 * process's only one (member_of): the
 * one not_in_use that has gone longest without a whole frame among those of the processes of
 * the same host holding two or more, the most first. So the processes of one host share its
 * part as hosts share the server, and a client that states many identities takes from its own
 * host's processes only, never more than its host could from the others. Each displacement
 * lowers the sum of the squares of the owners' counts, or leaves it and lowers that of the
 * processes of one host, so clients reconnecting what they lost cannot displace each other in
 * turn for ever. NULL when there is none. The counts are the set's greeted and members
 * tallies, kept as connections are greeted and close: one scan, no sort.
 */
static struct conn *find_victim(struct conn_set *s, const struct conn *c)
{
	struct conn *each, *victim = NULL;
	size_t most = 0, mine, holds;

	TAILQ_FOREACH(each, &s->all, link)
	{
		if (each->tallied && (holds = owners_count(&s->greeted, each->owner)) > most)
			most = holds;
	}
	mine = owners_count(&s->greeted, c->owner);
	if (most > mine) {
		TAILQ_FOREACH(each, &s->all, link)
		{
			if (!idle_enough(s, each) || owners_count(&s->greeted, each->owner) != most)
				continue;
			if (victim == NULL || each->active_tick < victim->active_tick)
				victim = each;
		}
	}
	/* None idle (steady load): a client holding none still gets one, from a client that
	 * keeps two or more, but only a connection with nothing in flight, which gives way
	 * exactly as an idle one does. */
	if (victim == NULL && mine == 1 && most >= 2)
		victim = most_held_not_in_use(s, &s->greeted, NULL);
	/* Then within its host, a process holding none gets one likewise, from the host's
	 * process holding the most. One that states no identity is not told apart from its
	 * host's other connections (as before identities): it holds what its host does. */
	if (victim == NULL && c->tcp && c->peer.process != 0 && mine >= 2 &&
	    owners_count(&s->members, c->member) == 1)
		victim = most_held_not_in_use(s, &s->members, c);
	return victim;
}

/* The last one's peer, so that an operator facing a flood has an address to look at. */
static void say_dropped(const struct conn_set *s, uint64_t dropped)
{
	log_warn("--max-connections %u reached: closed %llu connection(s) that had not completed "
	         "HELLO to make room for new ones, the last from %s",
	         s->cfg.max_connections, (unsigned long long)dropped,
	         s->dropped_peer[0] != '\0' ? s->dropped_peer : "an unnamed peer");
}

static void say_admissions(const struct conn_set *s, uint64_t displaced, uint64_t refused)
{
	if (displaced > 0)
		log_warn(
		    "--max-connections %u reached: closed %llu connection(s) of the client(s) "
		    "holding the most, idle for 2 s or more (a pool that leaks connections?) or, "
		    "for clients holding none, not in use, for clients that said HELLO (size "
		    "--max-connections above the clients' pools)",
		    s->cfg.max_connections, (unsigned long long)displaced);
	if (refused > 0)
		log_warn("--max-connections %u reached: refused %llu client(s) after their HELLO, "
		         "no connection of a client holding more being idle (no whole request) for "
		         "2 s, nor, for a client holding none, one of a client holding two or more "
		         "being out of use",
		         s->cfg.max_connections, (unsigned long long)refused);
}

/*
 * ${c} has just said HELLO (sealed: its first record has opened): it leaves the ungreeted
 * list. Let in on trial past --max-connections (conn_set_may_try), and still past it, it
 * takes the place of an idle connection of a client holding more than its own (find_victim), which
 * is told SHUTTING_DOWN and lingers; with none, it is refused. Only a client that said HELLO
 * displaces one, so a client without the --auth-file secret cannot knock others off.
 * Returns false when ${c} is refused (the caller answers BUSY and closes it).
 */
static bool admit(struct conn *c)
{
	struct conn_set *s = c->set;
	struct conn *victim;
	bool trial = c->on_trial;

	c->greeted = true;
	TAILQ_REMOVE(&s->ungreeted, c, ungreeted_link);
	end_trial(c);
	if (c->tcp)
		c->member = member_of(c);
	/* Counted before find_victim, which counts ${c} with its owner and process. A tally
	 * that cannot grow refuses the newcomer: counts that missed it would let its owner
	 * take more than its part. */
	if (!c->closing && tally_greeted(c) == -1) {
		log_warn("out of memory for the tally of connections; refusing one");
		c->turned_away = true;
		return false;
	}
	/* Only a newcomer let in on trial is in excess: one let in within the limit (or for a
	 * connection that gave way) must not take the place a trial counted on. */
	if (!trial || s->count <= s->cfg.max_connections)
		return true;
	victim = find_victim(s, c);
	if (victim == NULL) {
		c->turned_away = true;
		s->refused_at_hello++;
		say_admissions(s, 0, log_every_due(&s->refused_at_hello_log, 1, 10));
		return false;
	}
	s->displaced++;
	victim->displaced = true;
	victim->owes_goodbye = true;
	/* Its SHUTTING_DOWN goes out with the flush that ends this turn, never from here: the
	 * caller may be handling a batch of the connections read this turn, the victim among
	 * them (it read part of a frame), and a send to a client that has reset fails and frees
	 * it (conn_set_handle_input then handled a freed connection). Pending, begin_closing
	 * only queues the goodbye, as evict leaves its close to the flush. */
	mark_pending(victim);
	begin_closing(victim);
	say_admissions(s, log_every_due(&s->displaced_log, 1, 10), 0);
	return true;
}

/*
 * Hold ${c}'s remaining frames over to the next turn (see process). One held before it was
 * handed a frame this turn, with no reply of its waiting to be read either (${starved}), goes
 * first then, before the connections that read in that turn; one that made its share, or
 * whose client has not read what it made, goes after them: connections take turns. A small
 * request is not held at all while the turn's spare lasts (small_may_pass): held starved, it
 * joined the end of the queue, behind every connection of a burst not served yet.
 */
static void hold_over(struct conn *c, bool starved)
{
	struct conn_set *s = c->set;

	c->held_over = true;
	c->held_starved = starved;
	s->held_over_total++;
	TAILQ_INSERT_TAIL(starved ? &s->held_starved : &s->held_over, c, held_over_link);
}

/*
 * Whether ${frame}, next on ${c} once the turn's budget or ${c}'s share of it is spent, is
 * handled in this turn all the same: its reply is small (on_reply_bound, at wall-clock
 * ${now_ms}), ${c} has made less than its spare share in this call (${made} bytes), and the
 * small replies made past the budget in this turn (turn_spare, and ${spare} more in this
 * call) are under the spare part of it. The budget is there to bound the memory and the
 * turn that a burst of large replies takes; a small request that came behind such a burst
 * does neither, and without this it waited behind every connection of the burst, one
 * budget a turn (700 connections of 900 KB GETs: 12 s). So a turn makes a quarter more
 * replies at most, in small ones that a burst of large ones cannot spend.
 */
static bool small_may_pass(const struct conn *c, size_t made, size_t spare,
                           struct dispatch_frame_ref *frame, uint64_t now_ms)
{
	const struct conn_set *s = c->set;
	size_t budget = s->cfg.turn_output_bytes;

	if (s->cfg.on_reply_bound == NULL || made >= budget / CONN_SPARE_SHARES ||
	    s->turn_spare + spare >= budget / CONN_SPARE_PART)
		return false;
	return s->cfg.on_reply_bound(s->cfg.arg, frame, now_ms) <= CONN_SMALL_REPLY_BYTES;
}

/*
 * Whether the next frame of ${c}, ${whole} bytes with its header, waits for the next turn:
 * the turn has handled CONN_TURN_INPUT_BYTES of requests, or ${c} its share of them (${taken}
 * bytes in this call), and the frame is not a small one that the spare lets pass. The first
 * frame of a call always passes its connection's share, and the first of a turn the turn's.
 */
static bool input_past_budget(const struct conn *c, size_t taken, size_t whole)
{
	size_t turn = c->set->turn_input + taken;

	if (turn < CONN_TURN_INPUT_BYTES && taken < CONN_INPUT_SHARE_BYTES)
		return false;
	return whole > CONN_SMALL_FRAME_BYTES ||
	       turn >= CONN_TURN_INPUT_BYTES + CONN_TURN_INPUT_BYTES / CONN_SPARE_PART;
}

/*
 * Whether the client of ${c} is gone: it reset the connection, or (a Unix socket) closed it.
 * Over TCP a close is seen as the client shutting its side only, which a client may do and
 * still read its replies, until the first reply sent draws a reset. Asked before the next
 * frame of a connection that made a large reply, of one that was held (it reads nothing
 * meanwhile, so it would not see it itself) when its turn comes, and before a frame that
 * takes something for its client (on_takes_for_client: a FLASH_POP, whose messages would be
 * lost), at most once a process() call. A departed client's requests would each make a reply
 * for nobody (a client sending 40 GETs of 500 KB and closing, over and over, had the daemon
 * build them all, turn after turn, while the connections piled up to --max-connections).
 */
static bool peer_gone(const struct conn *c)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLRDHUP};

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR)) != 0;
}

/*
 * Whether epoll's silence says that ${c}'s client is still there: it reports the hang-up
 * (hangup_told) of a Unix socket whose reads it watches. Not while it does not (update_reading): a
 * request put off (DISPATCH_LATER) is handed again by conn_set_retry with read_ev still off, and a
 * client that hung up meanwhile, a pool that timed out while its FLASH_POP waited for a
 * snapshot's switch to sync, had the pop made for nobody, its messages lost.
 */
static bool silence_means_here(const struct conn *c)
{
	return c->hangup_watched && !c->hangup_told && c->reading;
}

/* Whether process() would hand ${c}'s input on now; hints are for those frames only. */
static bool will_handle(const struct conn *c)
{
	return c->set->cfg.on_prefetch != NULL && c->hello_done && !c->closing && !c->paused &&
	       !c->waiting && !c->held_over;
}

/*
 * The complete frame at offset ${at} of ${c}'s input, its body into ${frame}: returns the
 * offset after it, or 0 when there is none there (too short yet, or a length process()
 * refuses and answers).
 */
static size_t frame_at(const struct conn *c, size_t at, struct dispatch_frame_ref *frame)
{
	uint32_t n;

	if (c->in_end - at < CODEC_HEADER_BYTES)
		return 0;
	n = codec_frame_length(c->in_data + at);
	if (n == 0 || n > c->set->cfg.max_frame || c->in_end - at - CODEC_HEADER_BYTES < n)
		return 0;
	frame->body = c->in_data + at + CODEC_HEADER_BYTES;
	frame->len = n;
	frame->decoded = false;
	return at + CODEC_HEADER_BYTES + (size_t)n;
}

/*
 * The bytes of the frame at the start of ${c}'s input that have not arrived yet: 0 when its
 * header has not come, or all of it has. Its length is the client's word, not checked here:
 * a bound on room, never a reason to reserve it.
 */
static size_t frame_rest(const struct conn *c)
{
	size_t avail = c->in_end - c->in_start, need;

	if (avail < CODEC_HEADER_BYTES)
		return 0;
	need = CODEC_HEADER_BYTES + (size_t)codec_frame_length(c->in_data + c->in_start);
	return need > avail ? need - avail : 0;
}

/*
 * How much room ${c}'s input grows by when ${n} more bytes do not fit: a chunk at least, and
 * while a frame longer than that is arriving, as much as the input holds of it already
 * (CONN_READ_MOST at least), up to the rest its header announced. So a long frame's buffer
 * doubles as its bytes come, in O(log n) reallocations, and never holds more than twice
 * what its client sent plus a read: it was reserved whole from the header, and clients that
 * announced --max-frame frames and sent a byte at a time could spend the daemon's address
 * space (under a LimitAS= or strict overcommit, honest clients' allocations then failed).
 */
static size_t input_growth(const struct conn *c, size_t n)
{
	size_t avail = c->in_end - c->in_start, rest = frame_rest(c), more;

	if (n < CONN_READ_CHUNK)
		n = CONN_READ_CHUNK;
	if (rest <= n)
		return n;
	more = avail > CONN_READ_MOST ? avail : CONN_READ_MOST;
	if (more > rest)
		more = rest;
	return more > n ? more : n;
}

/*
 * Whether ${c}'s unread input may hold a HELLO's bytes, so that wherever it moves from must
 * be wiped (wipe_unread_input): before HELLO is done, always; past it, unless it is the start
 * of a single frame whose body opens with a fixarray and a one-byte opcode other than HELLO's
 * (a HELLO written any other way is taken for one). So the large frames a connection's
 * buffer grows for, SETs and echoes, move with realloc, which mremap or room after the block
 * often spares a copy: a malloc, copy and wipe at each growth took a 256 KiB echo from
 * 276,000 sessd instructions to 1,112,000 (callgrind).
 */
static bool unread_may_hold_hello(const struct conn *c)
{
	size_t avail = c->in_end - c->in_start;
	const uint8_t *at;

	if (!c->peer.ready)
		return true;
	if (avail < CODEC_HEADER_BYTES + 2)
		return avail > 0;
	/* Only now: an empty input may have no buffer (free_empty_buffers), and NULL + 0 is
	 * undefined (clang's UBSan stops there). */
	at = c->in_data + c->in_start;
	if (CODEC_HEADER_BYTES + (size_t)codec_frame_length(at) < avail)
		return true;
	return (at[CODEC_HEADER_BYTES] & 0xf0) != 0x90 || at[CODEC_HEADER_BYTES + 1] > 0x7f ||
	       at[CODEC_HEADER_BYTES + 1] == CODEC_OP_HELLO;
}

/*
 * Room for ${n} more bytes at the end of ${c}'s input (input_growth's, if it must grow).
 * Moves what is unhandled to the front only when the tail is too short. Returns 0, or -1
 * (ENOMEM).
 */
static int input_room(struct conn *c, size_t n)
{
	size_t avail = c->in_end - c->in_start, left_from;
	bool wipe;
	uint8_t *data;

	if (c->in_cap - c->in_end >= n)
		return 0;
	wipe = unread_may_hold_hello(c);
	if (c->in_start > 0) {
		memmove(c->in_data, c->in_data + c->in_start, avail);
		/* What the move left behind of the unread bytes. */
		left_from = avail > c->in_start ? avail : c->in_start;
		if (wipe)
			sodium_memzero(c->in_data + left_from, c->in_end - left_from);
		c->in_start = 0;
		c->in_end = avail;
		if (c->in_cap - c->in_end >= n)
			return 0;
	}
	n = input_growth(c, n);
	if (wipe && c->in_data != NULL) {
		/* realloc would free the old block unwiped. */
		data = malloc(avail + n);
		if (data == NULL)
			return -1;
		memcpy(data, c->in_data, avail);
		wipe_unread_input(c);
		free(c->in_data);
	} else {
		data = realloc(c->in_data, avail + n);
		if (data == NULL)
			return -1;
	}
	c->in_data = data;
	c->in_cap = avail + n;
	/* Its reads then take no page fault each 4 KiB. Only room input_growth gave, which
	 * counts whole in client_bytes already (counted_input). */
	buf_prefault(data + avail, n);
	return 0;
}

/*
 * A sealed connection: open the records complete in raw, their plaintext onto the input. A
 * malformed or forged record ends the stream: it and all after it are dropped, and
 * record_fault says why, for process() to answer once the frames before it are handled. A
 * record shorter than CONN_RECORD_READ_BYTES counts what it lacks of them against the turn's
 * reading (its bytes counted where they were read). Returns 0, or -1 when out of memory
 * (closing is set; nothing will be answered).
 */
static int open_records(struct conn *c)
{
	size_t at = 0, size;

	while (c->record_fault == NULL && c->raw.len - at >= SEAL_HEADER_BYTES) {
		size = seal_record_size(c->raw.data + at);
		if (size == 0) {
			c->record_fault = "a record of a malformed length";
			break;
		}
		if (c->raw.len - at < size)
			break;
		if (input_room(c, size - SEAL_OVERHEAD) == -1) {
			log_warn("out of memory for a connection's input; closing it");
			mark_closing(c);
			return -1;
		}
		if (seal_open(c->peer.seal, c->raw.data + at, size, c->in_data + c->in_end) == -1) {
			c->record_fault = "a record that does not authenticate";
			break;
		}
		c->in_end += size - SEAL_OVERHEAD;
		c->peer_proved = true;
		if (size < CONN_RECORD_READ_BYTES)
			c->set->turn_read += CONN_RECORD_READ_BYTES - size;
		at += size;
	}
	if (c->record_fault != NULL)
		wipe_unopened(c, at);
	buf_consume(&c->raw, c->record_fault == NULL ? at : c->raw.len);
	return 0;
}

/*
 * HELLO has just sealed ${c}: the input after the HELLO frame (at in_start) is records. Its
 * reply, in out, goes as it is; every reply after it goes to plain. Returns as open_records.
 */
static int begin_sealed(struct conn *c)
{
	size_t rest = c->in_end - c->in_start;

	if (rest > 0 && (reserve_raw(c, rest) == -1 ||
	                 buf_append(&c->raw, c->in_data + c->in_start, rest) == -1)) {
		log_warn("out of memory for a connection's input; closing it");
		mark_closing(c);
		return -1;
	}
	/* Nothing sent before the HELLO's reply can be a record (its keys come with the reply):
	 * these bytes are a client's plain frames, which may hold a secret, and the records' buffer
	 * is where they are now, if anywhere. */
	sodium_memzero(c->in_data + c->in_start, rest);
	c->in_start = c->in_end = 0;
	return open_records(c);
}

/*
 * Hint the frames already complete in the input to the owner before any is handled, all
 * but the first ${skip} (hinted already): with several (a pipelining client), their store
 * lookups' cache misses can overlap. The frames after the skipped ones go into ${frames}
 * (DISPATCH_PREFETCH_MAX of them at most), as the hint left them; returns how many.
 */
static size_t prefetch_frames(struct conn *c, size_t skip, struct dispatch_frame_ref *frames)
{
	struct conn_set *s = c->set;
	size_t count = 0, skipped = 0, at = c->in_start;

	while (skipped < skip && (at = frame_at(c, at, &frames[0])) != 0)
		skipped++;
	while (at != 0 && count < DISPATCH_PREFETCH_MAX &&
	       (at = frame_at(c, at, &frames[count])) != 0)
		count++;
	/* A lone frame handled at once gains nothing from a hint. */
	if (count > 0 && skipped + count >= 2)
		s->cfg.on_prefetch(s->cfg.arg, frames, count);
	return count;
}

/* ${c}'s client has gone: see conn.broken. */
static void go_broken(struct conn *c)
{
	c->broken = true;
	c->paused = false;
	set_writing(c, false);
}

/* Put ${c}'s read after those put off already, for conn_set_handle_input (see unread). */
static void put_off_read(struct conn *c)
{
	if (c->unread)
		return;
	c->unread = true;
	TAILQ_INSERT_TAIL(&c->set->unread, c, unread_link);
}

/*
 * Sealed ${c} read ${got} bytes, whose records opened counted ${counted} more than their bytes
 * in the turn's reading (CONN_RECORD_READ_BYTES): bound its next read while its client sends
 * many tiny records, or lift the bound by halves (CONN_RECORD_READ_LEAST).
 */
static void note_records_read(struct conn *c, size_t got, size_t counted)
{
	if (counted >= CONN_READ_MOST) {
		c->read_cap = (size_t)((uint64_t)got * CONN_READ_MOST / (got + counted));
		if (c->read_cap < CONN_RECORD_READ_LEAST)
			c->read_cap = CONN_RECORD_READ_LEAST;
	} else if (c->read_cap != 0) {
		c->read_cap *= 2;
		if (c->read_cap >= CONN_READ_MOST)
			c->read_cap = 0;
	}
}

/*
 * One read of sealed ${c}'s records into raw, of ${want} bytes or the room raw has beyond
 * them: a record longer than ${want} is read in one go as far as it has come, as a long frame
 * is; else the read takes no more than read_cap (tiny records). The records complete are
 * opened and the next read bounded (note_records_read). A live read (read_records) and a
 * departed client's (read_left_records) share it, so that both are bounded alike. ${room} is
 * set to what the read could take. Returns what recv returned (above 0: bytes came; 0: the
 * client shut its side down; -1: see errno), or -2 when memory ran out (logged; closing is set:
 * nothing more of ${c} is read).
 */
static ssize_t recv_records(struct conn *c, size_t want, size_t *room)
{
	struct conn_set *s = c->set;
	bool long_record = false;
	size_t size, counted;
	ssize_t got;

	if (c->raw.len >= SEAL_HEADER_BYTES &&
	    (size = seal_record_size(c->raw.data)) > c->raw.len && size - c->raw.len > want) {
		want = size - c->raw.len;
		long_record = true;
	}
	if (reserve_raw(c, want) == -1) {
		log_warn("out of memory for a connection's input; closing it");
		mark_closing(c);
		return -2;
	}
	*room = c->raw.cap - c->raw.len;
	if (!long_record && c->read_cap != 0 && *room > c->read_cap)
		*room = c->read_cap;
	got = recv(c->fd, c->raw.data + c->raw.len, *room, 0);
	if (got <= 0)
		return got;
	c->raw.len += (size_t)got;
	s->turn_read += (size_t)got;
	counted = s->turn_read;
	if (open_records(c) == -1)
		return -2;
	note_records_read(c, (size_t)got, s->turn_read - counted);
	return got;
}

/*
 * Read what the client of broken sealed connection ${c} left in its socket, as a live
 * connection's reads are bounded: each record counts at least CONN_RECORD_READ_BYTES of the
 * turn's reading, a read takes no more than read_cap, and once the turn's reading budget is
 * spent, connections put off already go first (unless ${its_place}: conn_set_handle_input
 * took ${c} off that list), or ${c}'s reads come one at a time (read_cap set: tiny records),
 * the rest waits for a later read on the unread list. Reading it all at once opened some
 * 10,000 1-byte records (5 ms) in one turn (stop 41). Returns true when bytes came; false when
 * none did, or on an error (closing is then set).
 */
static bool read_left_records(struct conn *c, bool its_place)
{
	struct conn_set *s = c->set;
	bool came = false;
	size_t room;
	ssize_t got;

	while (!c->unread) {
		if (s->turn_read >= CONN_TURN_READ_BYTES ||
		    (!its_place && !TAILQ_EMPTY(&s->unread))) {
			put_off_read(c);
			break;
		}
		got = recv_records(c, CONN_READ_MOST, &room);
		if (got == -2)
			return false;
		if (got <= 0)
			break;
		came = true;
		/* Tiny records: one read at a time, as a live connection reads once a turn. */
		if (c->read_cap != 0)
			put_off_read(c);
	}
	return came;
}

/*
 * What the client of broken connection ${c} sent before it left and is not read yet: the
 * socket keeps it for us (a TCP one after a reset too), and it holds no more than the
 * socket's buffers. Without this only the frames of the reads before the failed send ran
 * (40 SETs pipelined behind large GETs: 15 carried out); read a chunk a turn, they ran over
 * several turns, and one could land after a newer change the client had sent, and been
 * answered, on a new connection. So a plain connection's is read all at once (reading costs
 * little by the byte), a sealed one's as the turn's budgets allow (read_left_records).
 * ${its_place}: as there. Returns true when bytes came; false when none did, or on an error
 * (the connection is then closed: it has nothing more to run).
 */
static bool read_left(struct conn *c, bool its_place)
{
	bool came = false;
	ssize_t got;

	if (!c->hello_done)
		return false;
	if (c->peer.seal != NULL) {
		came = read_left_records(c, its_place);
	} else {
		for (;;) {
			/* process() refuses a frame this long: reading on for it would be wasted
			 * (it may have come with the read before the failed send). */
			if (c->in_end - c->in_start >= CODEC_HEADER_BYTES &&
			    codec_frame_length(c->in_data + c->in_start) > c->set->cfg.max_frame)
				break;
			if (make_room(c) == -1)
				break;
			got = recv(c->fd, c->in_data + c->in_end, c->in_cap - c->in_end, 0);
			if (got <= 0)
				break;
			c->in_end += (size_t)got;
			came = true;
		}
	}
	if (came)
		note_held(c, false);
	return came;
}

/*
 * A broken connection once process() ran its frames: their replies go nowhere. It goes on in
 * the next turn while frames are left (process() stopped at the turn's budget, or at the
 * output limit its replies reached before they were dropped) or waits for its put-off frame;
 * what the socket still holds runs now; else it is closed. Returns true when ${c} was freed.
 */
static bool finish_broken(struct conn *c)
{
	struct dispatch_frame_ref frame;

	empty_output(c);
	c->paused = false;
	note_held(c, false);
	if (!c->closing && (c->waiting || c->held_over)) {
		update_reading(c);
		return false;
	}
	if (!c->closing && frame_at(c, c->in_start, &frame) != 0) {
		hold_over(c, false);
		update_reading(c);
		return false;
	}
	/* Its read put off: it goes on when its place comes (conn_set_handle_input). */
	if (c->unread && !c->closing)
		return false;
	if (!c->closing && read_left(c, false))
		return process(c, NULL);
	if (c->unread && !c->closing)
		return false;
	conn_close(c);
	return true;
}

/*
 * Handle every complete frame in the input, where it lies, with replies appended to the
 * connection's output. ${first}: the first frame as a hint across connections left it, or
 * NULL when it was not hinted. Returns true when ${c} was freed.
 */
static bool process(struct conn *c, const struct dispatch_frame_ref *first)
{
	struct conn_set *s = c->set;
	/* The frames hinted before any is handled, in input order: ${first} leads when given. */
	struct dispatch_frame_ref hinted[DISPATCH_PREFETCH_MAX + 1];
	struct dispatch_frame_ref plain;
	struct dispatch_frame_ref *frame;
	enum dispatch_verdict verdict;
	size_t before = c->out.len + c->plain.len, n_hinted = 0, handled = 0, spare = 0, taken = 0;
	bool completed = false, greeting, past_budget, asked_gone = false, gone = false;
	uint64_t now_ms = 0;
	size_t avail, whole, made, out_at, made_at;
	uint32_t n;

	/* Retired in this turn, and closed at its flush: what it read is not carried out. */
	if (c->retired)
		return false;
	/* Gone already: no poll(2) needed to know it. */
	asked_gone = gone = c->broken;
	/* Sealed, the first record that opened shows the secret: admitted before its frames. */
	if (!c->greeted && c->peer.ready && c->peer.seal != NULL && c->peer_proved && !c->closing &&
	    !admit(c))
		reply_and_close(c, CODEC_BUSY, CONN_BUSY_AFTER_HELLO);
	if (first != NULL)
		hinted[n_hinted++] = *first;
	if (will_handle(c))
		n_hinted += prefetch_frames(c, n_hinted, hinted + n_hinted);
	while (!c->closing && !c->paused && !c->waiting && !c->held_over) {
		avail = c->in_end - c->in_start;
		if (avail < CODEC_HEADER_BYTES)
			break;
		n = codec_frame_length(c->in_data + c->in_start);
		/* Checked before a byte of the body is waited for (PROTOCOL.md, "Transport"). */
		if (n > s->cfg.max_frame) {
			refuse_frame(c, CODEC_TOO_LARGE, "the frame is longer than max_frame");
			break;
		}
		if (n > CODEC_HELLO_MAX_FRAME && !c->peer.ready) {
			refuse_frame(c, CODEC_TOO_LARGE,
			             "a frame before HELLO is done is longer than 4096 bytes");
			break;
		}
		if (n == 0) {
			refuse_frame(c, CODEC_BAD_REQUEST, "a frame of length 0");
			break;
		}
		whole = CODEC_HEADER_BYTES + (size_t)n;
		if (avail < whole)
			break;
		/* The wall clock is read once per batch, and only when there is work. */
		if (now_ms == 0)
			now_ms = wall_ms();
		/* The input has not moved since the hints (nothing is read in between), so the
		 * k-th frame handled is the k-th hinted; the check keeps a slip from running a
		 * request decoded from other bytes. */
		plain.body = c->in_data + c->in_start + CODEC_HEADER_BYTES;
		plain.len = n;
		plain.decoded = false;
		frame = handled < n_hinted ? &hinted[handled] : &plain;
		if (frame->body != plain.body || frame->len != plain.len)
			frame = &plain;
		/* The turn has made its replies, or this connection its share of them: the rest
		 * waits for the next turn, so that a burst of GETs of a large session from many
		 * connections at once can neither hold the loop nor pile up replies far past
		 * --max-client-memory before the flush, and the connections take turns. A small
		 * reply does neither, and goes on while the turn's spare for them lasts. */
		made = c->out.len + c->plain.len - before;
		/* Asked once a call, and only where a reply for nobody would cost: it adds a
		 * poll(2) to every large reply, and to a small one only where it would lose
		 * something (a FLASH_POP's messages: a pool that timed out on a stalled daemon
		 * and closed has its pops in the socket when the daemon wakes), and on a Unix
		 * socket only once epoll has reported a hang-up, or could not have: a system call
		 * here costs a pipeline-1 request about 1% more CPU on a machine whose system
		 * calls are slow. */
		if (!asked_gone && (c->resumed || made >= CONN_SMALL_REPLY_BYTES ||
		                    (!silence_means_here(c) && s->cfg.on_takes_for_client != NULL &&
		                     s->cfg.on_takes_for_client(s->cfg.arg, frame)))) {
			asked_gone = true;
			c->resumed = false;
			gone = peer_gone(c);
			/* Then it is broken as after a failed send: what it sent runs now, up to
			 * the end of its socket, not a read a turn behind what it may send on a
			 * new connection meanwhile (finish_broken). */
			if (gone)
				go_broken(c);
		}
		/* A reply for a client that is gone would reach nobody: a request asked only for
		 * its reply (a read, a list page; a flash pop, whose messages would be lost with
		 * the client) is dropped unanswered, before it can wait for a later turn. The
		 * changes the client sent before it left still run, as they would had it stayed,
		 * and sooner: nothing of it waits behind a put-off page or COUNT. */
		if (gone && s->cfg.on_reply_only != NULL &&
		    s->cfg.on_reply_only(s->cfg.arg, frame)) {
			handled++;
			c->in_start += whole;
			completed = true;
			continue;
		}
		/* Frames, whatever their replies: a turn of small requests is bounded too. */
		if (s->turn_frames + handled >= CONN_TURN_FRAMES ||
		    handled >= CONN_TURN_FRAMES / CONN_TURN_SHARES) {
			hold_over(c, made == 0 && unsent(c) == 0);
			break;
		}
		/* And their bytes: a turn of large requests is bounded too. */
		if (input_past_budget(c, taken, whole)) {
			hold_over(c, made == 0 && unsent(c) == 0);
			break;
		}
		past_budget = s->turn_output + made >= s->cfg.turn_output_bytes ||
		              made >= s->cfg.turn_output_bytes / CONN_TURN_SHARES;
		if (past_budget && !small_may_pass(c, made, spare, frame, now_ms)) {
			hold_over(c, made == 0 && unsent(c) == 0);
			break;
		}
		handled++;
		made_at = c->out.len + c->plain.len;
		greeting = !c->peer.ready;
		out_at = c->out.len;
		verdict = s->cfg.on_frame(s->cfg.arg, &c->peer, frame, now_ms, replies(c));
		/* A frame before HELLO is done may carry the --auth-file secret: it must not stay
		 * behind in the buffer, or in memory freed from it. So may one that closes the
		 * connection (a HELLO sent again, with a secret, is refused so), and the frames
		 * behind it, which are never read: all go. */
		if (verdict == DISPATCH_CLOSE)
			sodium_memzero(c->in_data + c->in_start, c->in_end - c->in_start);
		else if (greeting && verdict != DISPATCH_LATER)
			sodium_memzero(c->in_data + c->in_start, whole);
		if (verdict == DISPATCH_LATER) {
			/* The frame stays first in the input, for conn_set_retry. */
			c->waiting = true;
			TAILQ_INSERT_TAIL(&s->waiting, c, waiting_link);
			s->n_waiting++;
			break;
		}
		if (past_budget && c->out.len + c->plain.len > made_at)
			spare += c->out.len + c->plain.len - made_at;
		if (verdict == DISPATCH_CLOSE)
			mark_closing(c);
		c->in_start += whole;
		taken += whole;
		completed = true;
		/* Plain, HELLO is the greeting: refused, BUSY goes in place of its reply. */
		if (greeting && c->peer.ready && c->peer.seal == NULL && !admit(c)) {
			c->out.len = out_at;
			reply_and_close(c, CODEC_BUSY, CONN_BUSY_AFTER_HELLO);
			break;
		}
		if (greeting && c->peer.seal != NULL) {
			/* Hints taken before HELLO read bytes that were records, not frames. */
			n_hinted = handled;
			if (begin_sealed(c) == -1)
				break;
		}
		if (unsent(c) >= s->cfg.output_high_bytes)
			c->paused = true;
	}
	/* Every frame before a refused record is handled: now its answer, and the end. Not while
	 * frames wait for a later turn (held over past the turn's budget, or put off): answered
	 * here, those before the record were dropped unanswered (PROTOCOL.md, "Records"). */
	if (c->record_fault != NULL && !c->closing && !c->paused && !c->waiting && !c->held_over)
		refuse_frame(c, CODEC_BAD_REQUEST, c->record_fault);
	if (!c->hello_done && c->peer.ready) {
		c->hello_done = true;
		if (c->peer.seal != NULL)
			c->answered_ms = mono_ms();
	}
	if (c->hello_done && !c->deadline_met && (c->peer.seal == NULL || c->peer_proved)) {
		c->deadline_met = true;
		if (!c->closing)
			evtimer_del(c->timer);
	}
	/* Everything handled: start over at the front, so the buffer is rarely compacted. */
	if (c->in_start == c->in_end)
		c->in_start = c->in_end = 0;
	if (completed)
		c->active_tick = s->ticks;
	s->turn_frames += handled;
	s->turn_input += taken;
	note_held(c, completed);
	if (c->broken)
		return finish_broken(c);
	if (c->out.len + c->plain.len > before) {
		s->turn_output += c->out.len + c->plain.len - before;
		s->turn_spare += spare;
		mark_pending(c);
	}
	if (c->closing)
		return begin_closing(c);
	update_reading(c);
	return false;
}

/*
 * Room for the next read: the read size, or the rest of a frame whose header is in, whole up
 * to CONN_READ_MOST; of a longer one, what the tail holds while that is a chunk, then what
 * input_growth gives (read_ready reads on while the reads fill it). Moves the partial frame to
 * the front only when the tail is too short. Returns 0, or -1 (ENOMEM).
 */
static int make_room(struct conn *c)
{
	size_t want = c->read_bytes, rest = frame_rest(c);

	if (rest > want)
		want = rest <= CONN_READ_MOST ? rest : CONN_READ_CHUNK;
	return input_room(c, want);
}

/* Empty ${c}'s output (all sent, or dropped), giving back a buffer a burst of replies grew. */
static void empty_output(struct conn *c)
{
	buf_reset(&c->out);
	buf_reset(&c->plain);
	c->out_sent = 0;
	c->out_torn = false;
	if (c->out.cap > CONN_OUTPUT_KEEP_BYTES)
		buf_finish(&c->out);
	if (c->plain.cap > CONN_STAGING_KEEP_BYTES)
		buf_finish(&c->plain);
}

/* Give back a buffer that a large frame grew, once nothing is in it. */
static void trim_input(struct conn *c)
{
	bool freed = false;

	if (c->in_end == 0 && c->in_cap > CONN_INPUT_KEEP_BYTES) {
		free(c->in_data);
		c->in_data = NULL;
		c->in_cap = 0;
		freed = true;
	}
	/* Not wiped (finish_wiped): emptied without a fault, every byte it held was a record that
	 * opened (a fault wipes the rest at once, drop_unread what it drops), and this runs after
	 * each large request. */
	if (c->raw.len == 0 && c->raw.cap > CONN_STAGING_KEEP_BYTES) {
		buf_finish(&c->raw);
		freed = true;
	}
	/* The room counted (an empty grown buffer counts its size) is gone. */
	if (freed)
		note_held(c, false);
}

/*
 * Move what ${b} holds from offset ${from} on to a buffer of its size (buf_reserve's), or
 * free it when that is nothing; the old one goes with ${finish} (buf_finish, or finish_wiped
 * for a sealed connection's records). Returns 0, or -1 (ENOMEM; nothing changed).
 */
static int shrink_buf(struct buf *b, size_t from, void (*finish)(struct buf *))
{
	struct buf fresh;

	buf_init(&fresh);
	if (buf_append(&fresh, b->data + from, b->len - from) == -1)
		return -1;
	finish(b);
	*b = fresh;
	return 0;
}

/* shrink_buf for ${c}'s input: at least a read chunk is kept while a byte is in it. */
static int shrink_input(struct conn *c)
{
	size_t avail = c->in_end - c->in_start, cap = 0;
	uint8_t *data = NULL;

	if (avail > 0) {
		cap = avail > CONN_READ_CHUNK ? avail : CONN_READ_CHUNK;
		data = malloc(cap);
		if (data == NULL)
			return -1;
		memcpy(data, c->in_data + c->in_start, avail);
	}
	wipe_unread_input(c);
	free(c->in_data);
	c->in_data = data;
	c->in_cap = cap;
	c->in_start = 0;
	c->in_end = avail;
	return 0;
}

/* Whether a buffer of ${cap} holding ${used} bytes keeps room to give back: grown past
 * CONN_KEEP_BYTES and less than a quarter full. */
static bool roomy(size_t used, size_t cap)
{
	return cap > CONN_KEEP_BYTES && used < cap / 4;
}

/*
 * Whether ${c}'s input holds the start of a frame that is still arriving and needs the room:
 * a read brought bytes since the tick before the last, and the frame's checked length fills
 * a quarter of the buffer at least. Moving it would copy what is in only for the next read
 * to grow the buffer back and copy it again: 200 clients in the middle of 1 MB SETs made the
 * once-a-second tick a loop turn of 70-150 ms, in copies and page faults.
 */
static bool frame_arriving(const struct conn *c)
{
	size_t avail = c->in_end - c->in_start, need;

	if (c->read_tick + 1 < c->set->ticks || avail < CODEC_HEADER_BYTES || !c->peer.ready)
		return false;
	need = CODEC_HEADER_BYTES + (size_t)codec_frame_length(c->in_data + c->in_start);
	return need > avail && !roomy(need, c->in_cap);
}

/* Free each of ${c}'s buffers that holds nothing: the next read or reply takes room anew. */
static void free_empty_buffers(struct conn *c)
{
	if (c->in_end == c->in_start && c->in_data != NULL) {
		wipe_unread_input(c);
		free(c->in_data);
		c->in_data = NULL;
		c->in_cap = 0;
		c->in_start = c->in_end = 0;
	}
	if (c->raw.len == 0)
		finish_wiped(&c->raw);
	if (c->out.len == c->out_sent && c->plain.len == 0) {
		buf_finish(&c->out);
		c->out_sent = 0;
		c->out_torn = false;
	}
	if (c->plain.len == 0)
		buf_finish(&c->plain);
}

/*
 * Give back what ${c}'s buffers grew to for a large frame or reply beyond what they hold
 * now: each grown past CONN_KEEP_BYTES and less than a quarter full moves what it holds to a
 * buffer of that size, or is freed when empty. So neither an idle connection nor a byte left
 * behind keeps a large frame's room. What they hold stays, in order; a buffer that cannot be
 * moved (out of memory) stays as it is. ${c} leaves the grown list once none is grown.
 * ${spare_arriving}: the input of a frame still arriving keeps its room (frame_arriving); a
 * client that sent nothing for a whole tick gives it back still.
 */
static void give_back_room(struct conn *c, bool spare_arriving)
{
	struct conn_set *s = c->set;
	size_t out = c->out.len - c->out_sent;

	if (roomy(c->in_end - c->in_start, c->in_cap) && !(spare_arriving && frame_arriving(c)))
		shrink_input(c);
	if (roomy(c->raw.len, c->raw.cap))
		shrink_buf(&c->raw, 0, finish_wiped);
	if (roomy(c->plain.len, c->plain.cap))
		shrink_buf(&c->plain, 0, buf_finish);
	/* Replies waiting to be sealed have their room kept in out (dispatch_peer.sealed_out). */
	if (c->plain.len == 0 && roomy(out, c->out.cap) &&
	    shrink_buf(&c->out, c->out_sent, buf_finish) == 0) {
		/* As when send_output consumes: what is left may start inside a reply. */
		if (c->out_sent > 0)
			c->out_torn = true;
		c->out_sent = 0;
	}
	/* A connection that read nothing for a whole tick keeps none of the room idle_room
	 * counts; over max_client_bytes, none keeps it. */
	if (idle_room(c) > 0 && (!spare_arriving || c->read_tick + 1 < s->ticks))
		free_empty_buffers(c);
	note_held(c, false);
	if (c->grown && !has_grown(c)) {
		c->grown = false;
		TAILQ_REMOVE(&s->grown, c, grown_link);
	}
}

/* give_back_room(c, ${spare_arriving}) for every connection that grew a buffer. */
static void give_back_all_room(struct conn_set *s, bool spare_arriving)
{
	struct conn *c, *next;

	/* give_back_room takes only ${c} off the list. */
	for (c = TAILQ_FIRST(&s->grown); c != NULL; c = next) {
		next = TAILQ_NEXT(c, grown_link);
		give_back_room(c, spare_arriving);
	}
}

/*
 * Drop what ${c} holds and close it, answering BUSY when a frame can still start and, sealed,
 * no reply is dropped: a sealed connection's replies all went out before its BUSY, so that
 * the requests it leaves unanswered were not carried out (PROTOCOL.md, "The bound on
 * connections' buffers"). libsessd reads a BUSY as the first reply to a sealed connection's
 * first record as a newcomer turned away with nothing done: evicted between that record's
 * handling and the flush that seals its replies (plain), its FLASH_PUSH was carried out and
 * its client, told it was not, pushed it again.
 */
static void evict(struct conn *c)
{
	/* Sealed records dropped unsent would leave a gap in the record numbers; replies not
	 * sealed yet are of requests carried out. */
	bool torn = c->out_torn || c->out_sent > 0 ||
	            (c->peer.seal != NULL && (c->out.len > 0 || c->plain.len > 0));

	drop_unread(c);
	trim_input(c);
	empty_output(c);
	give_back_room(c, false);
	if (c->closing)
		return;
	if (!torn)
		reply_and_close(
		    c, CODEC_BUSY,
		    "--max-client-memory is full and this connection had waited longest");
	mark_closing(c);
	update_reading(c);
	/* Closed by the flush, which may come at the end of this very turn: never here, so the
	 * caller's pointers stay good. */
	mark_pending(c);
	c->set->evictions++;
	c->evicted = true;
}

/* Longest without progress first; one held over starved (waiting on us, not stalled on its
 * own) after all the others. */
static int by_progress(const void *a, const void *b)
{
	const struct conn *ca = *(struct conn *const *)a, *cb = *(struct conn *const *)b;

	if (ca->held_starved != cb->held_starved)
		return ca->held_starved ? 1 : -1;
	return (ca->progress_at > cb->progress_at) - (ca->progress_at < cb->progress_at);
}

static void say_evictions(const struct conn_set *s, uint64_t closed)
{
	log_warn("connections' buffers passed --max-client-memory (%zu bytes): closed %llu "
	         "connection(s) that had gone longest without progress",
	         s->cfg.max_client_bytes, (unsigned long long)closed);
}

/* Say what the rate-limited warnings hold back and is due (all of it when ${stopping}). The
 * periods are the warnings' own: see refuse_frame, admit and shed_clients. */
static void say_held_back(struct conn_set *s, bool stopping)
{
	uint64_t closed = log_every_held(&s->evictions_log, 60, stopping);

	if (closed > 0)
		say_evictions(s, closed);
	say_admissions(s, log_every_held(&s->displaced_log, 10, stopping),
	               log_every_held(&s->refused_at_hello_log, 10, stopping));
	closed = log_every_held(&s->dropped_log, 10, stopping);
	if (closed > 0)
		say_dropped(s, closed);
	closed = log_every_held(&s->refused_frames_log, 60, stopping);
	if (closed > 0)
		say_refused_frames(s, closed);
}

void conn_set_log_pending(struct conn_set *s)
{
	say_held_back(s, true);
}

/*
 * Over max_client_bytes: close the connections that have gone longest without progress until
 * the total is an eighth under the limit, so that a client trickling bytes at the limit
 * cannot make every read pay for a sort. A client stalled in the middle of a frame, or one
 * that does not read its replies, comes first; one whose requests arrive whole and whose
 * replies go out makes progress every turn.
 */
static void shed_clients(struct conn_set *s)
{
	size_t target = s->cfg.max_client_bytes - s->cfg.max_client_bytes / 8, n = 0;
	uint64_t before = s->evictions, closed;
	struct conn **holders, *c;

	/* Room kept beyond what connections hold goes first: giving it back costs a later
	 * reallocation, not a connection. */
	give_back_all_room(s, false);
	if (s->client_bytes <= target)
		return;
	for (c = TAILQ_FIRST(&s->all); c != NULL; c = TAILQ_NEXT(c, link))
		n += c->held > 0;
	holders = malloc(n * sizeof(*holders));
	if (holders != NULL) {
		n = 0;
		for (c = TAILQ_FIRST(&s->all); c != NULL; c = TAILQ_NEXT(c, link))
			if (c->held > 0)
				holders[n++] = c;
		qsort(holders, n, sizeof(*holders), by_progress);
		for (size_t i = 0; i < n && s->client_bytes > target; i++)
			evict(holders[i]);
		free(holders);
	} else {
		/* Out of memory: the oldest connections first will do. */
		for (c = TAILQ_FIRST(&s->all); c != NULL && s->client_bytes > target;
		     c = TAILQ_NEXT(c, link))
			if (c->held > 0)
				evict(c);
	}
	/* At most one line a minute: an attacker must not be able to fill the log. */
	closed = log_every_due(&s->evictions_log, s->evictions - before, 60);
	if (closed > 0)
		say_evictions(s, closed);
}

/*
 * Size ${c}'s next read from this one, which asked for ${room} bytes and got ${got}. Input
 * is read once a turn, so a client whose pipelined requests are large sends more than a
 * chunk between two turns (16 requests, 2 or 3 of them 8 KB SETs), and read a chunk a turn,
 * the rest of its batch waited a turn more, and its replies with it (at pipeline 16 with 8
 * KB sessions over Unix, a p99 of 3.1 ms against 2.4 read this way, medians of 5). So a read
 * that fills its room with fewer than CONN_GROW_FRAMES frames doubles the next, up to
 * CONN_READ_MOST; one with as many or more asks for a chunk again: a turn's work goes with
 * the frames it handles, so a client of small requests is still read a chunk a turn (one
 * that turns from large requests to small ones gets one read of CONN_READ_MOST at most).
 * A read of less than a quarter of its asking halves it (the client sends less now), so
 * that a connection gone quiet does not grow its buffer back after each give_back_room.
 * Nothing grows before HELLO, whose frames are small and may carry the secret.
 */
static void size_next_read(struct conn *c, size_t room, size_t got)
{
	struct dispatch_frame_ref frame;
	size_t frames = 0, at = c->in_start;

	if (!c->peer.ready)
		return;
	if (got < room) {
		if (got < c->read_bytes / 4 && c->read_bytes > CONN_READ_CHUNK)
			c->read_bytes /= 2;
		return;
	}
	while (frames < CONN_GROW_FRAMES && (at = frame_at(c, at, &frame)) != 0)
		frames++;
	if (frames >= CONN_GROW_FRAMES)
		c->read_bytes = CONN_READ_CHUNK;
	else if (c->read_bytes < CONN_READ_MOST)
		c->read_bytes *= 2;
}

/*
 * The rest of a read once its bytes are in (plain: the input; sealed: raw). ${got}: what
 * recv returned; 0 when the client shut its side down.
 */
static void after_recv(struct conn *c, ssize_t got)
{
	if (got == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_close(c);
		return;
	}
	if (got == 0) {
		/* The client is done sending; what it sent is answered before we close. */
		c->peer_eof = true;
		begin_closing(c);
		return;
	}
	/* Handled at the end of the turn with the other connections' input
	 * (conn_set_handle_input), so that their store lookups can start together. */
	if (!c->queued) {
		c->queued = true;
		TAILQ_INSERT_TAIL(&c->set->input, c, input_link);
	}
	note_held(c, false);
	if (c->set->client_bytes > c->set->cfg.max_client_bytes)
		shed_clients(c->set);
}

/* conn_on_read for a sealed connection: read records into raw and open those complete. */
static void read_records(struct conn *c)
{
	size_t room;
	ssize_t got = recv_records(c, c->read_bytes, &room);

	if (got == -2) {
		/* What was opened before memory ran out is answered; nothing more is read. */
		note_held(c, false);
		begin_closing(c);
		return;
	}
	if (got > 0) {
		c->read_tick = c->set->ticks;
		size_next_read(c, room, (size_t)got);
	}
	after_recv(c, got);
}

/*
 * Whether a read that filled the room make_room gave ${c} is followed by another: the frame at
 * the start of its input is still arriving, and is one process() will take (after HELLO,
 * within max_frame), not one it will refuse before a byte more is read.
 */
static bool reads_on(const struct conn *c)
{
	return frame_rest(c) > 0 && c->peer.ready &&
	       codec_frame_length(c->in_data + c->in_start) <= c->set->cfg.max_frame;
}

/*
 * Read what ${c}'s socket holds, as much as its next frame or read size wants. A long frame's
 * room grows with what arrives (make_room), so a read that fills it while the frame is still
 * arriving is followed by another into the room grown: the frame is read in one go as far as
 * the socket holds it, as when its room was reserved whole.
 */
static void read_ready(struct conn *c)
{
	size_t room, total = 0;
	ssize_t got;

	if (c->peer.seal != NULL) {
		read_records(c);
		return;
	}
	for (;;) {
		if (make_room(c) == -1) {
			log_warn("out of memory for a connection's input; closing it");
			conn_close(c);
			return;
		}
		room = c->in_cap - c->in_end;
		got = recv(c->fd, c->in_data + c->in_end, room, 0);
		if (got <= 0)
			break;
		c->in_end += (size_t)got;
		total += (size_t)got;
		if ((size_t)got < room || !reads_on(c))
			break;
	}
	if (total > 0) {
		c->set->turn_read += total;
		c->read_tick = c->set->ticks;
		/* The last read: a failed or empty one after others is seen again next time. */
		if (got > 0)
			size_next_read(c, room, (size_t)got);
		got = (ssize_t)total;
	}
	after_recv(c, got);
}

static void conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct conn_set *s = c->set;
	ssize_t got;

	if (what & EV_CLOSED)
		c->hangup_told = true;
	if (s->cfg.on_io != NULL)
		s->cfg.on_io(s->cfg.arg);
	if (c->lingering) {
		got = discard_some(fd);
		if (got == 0 || (got == -1 && errno != EAGAIN && errno != EINTR))
			conn_close(c);
		return;
	}
	/* Past the turn's reading budget, or behind connections put off already, the read waits
	 * its place (conn_set_handle_input reads them in order): the callbacks come in the same
	 * order every turn, and the last ones would otherwise never read during a burst. */
	if (c->unread)
		return;
	if (!TAILQ_EMPTY(&s->unread) || s->turn_read >= CONN_TURN_READ_BYTES) {
		put_off_read(c);
		return;
	}
	read_ready(c);
}

/*
 * Send what the socket takes. Returns 0; 1 when the socket is full (write_ev now watches);
 * -1 when the connection is broken.
 */
static int send_output(struct conn *c)
{
	ssize_t put;

	while (c->out.len > c->out_sent) {
		put =
		    send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);
		if (put == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				set_writing(c, true);
				/* Keep what is sent from piling up at the front. */
				if (c->out_sent > c->out.len / 2) {
					buf_consume(&c->out, c->out_sent);
					c->out_sent = 0;
					c->out_torn = true;
				}
				note_held(c, false);
				return 1;
			}
			return -1;
		}
		c->out_sent += (size_t)put;
	}
	empty_output(c);
	note_held(c, true);
	set_writing(c, false);
	return 0;
}

/* Seal ${c}'s plain replies onto its output. Returns 0, or -1 after logging why. */
static int seal_output(struct conn *c)
{
	if (seal_append_all(c->peer.seal, &c->out, c->plain.data, c->plain.len) == -1) {
		log_warn("cannot seal a connection's replies (%s); closing it", strerror(errno));
		return -1;
	}
	buf_reset(&c->plain);
	if (c->plain.cap > CONN_STAGING_KEEP_BYTES)
		buf_finish(&c->plain);
	return 0;
}

/*
 * A send failed: the client closed or reset the connection. The frames it sent that were
 * read and are not handled yet (held behind the turn's reply budget, or its own share of it,
 * or behind replies the socket had not taken) still run, as PROTOCOL.md says of a client
 * that has gone: its changes are carried out, its reads dropped (process(), gone), and
 * replies go nowhere. Closing here dropped them all: a SET or a DESTROY pipelined behind
 * large GETs was lost when the client hung up once the first replies went out (hostile
 * review: 3 to 10 times in 10). Returns true when ${c} was freed.
 */
static bool write_failed(struct conn *c)
{
	if (c->closing || c->lingering) {
		conn_close(c);
		return true;
	}
	go_broken(c);
	empty_output(c);
	/* Now, not in a later turn: the client may be back on a new connection already, and
	 * what it sent on this one came first. A put-off frame waits for its retry. */
	if (c->waiting) {
		update_reading(c);
		return false;
	}
	unhold(c);
	return process(c, NULL);
}

/*
 * Write ${c}'s output, then resume reading if the client caught up, or finish closing.
 * Returns true when ${c} was freed.
 */
static bool conn_write(struct conn *c)
{
	if (c->broken) {
		/* Replies go nowhere; a stopping server closes it with what it has not run. */
		empty_output(c);
		if (!c->closing)
			return false;
		conn_close(c);
		return true;
	}
	if (c->plain.len > 0 && seal_output(c) == -1) {
		conn_close(c);
		return true;
	}
	if (send_output(c) == -1)
		return write_failed(c);
	if (c->closing)
		return finish_closing(c);
	if (c->paused && unsent(c) <= c->set->cfg.output_high_bytes / 2) {
		c->paused = false;
		/* Frames may wait in the input already; the socket will not announce them. */
		return process(c, NULL);
	}
	return false;
}

static void conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd, (void)what;
	/* Replies of this turn wait for the commit; the flush writes them all. */
	if (c->pending)
		return;
	if (c->set->cfg.on_io != NULL)
		c->set->cfg.on_io(c->set->cfg.arg);
	conn_write(c);
}

/*
 * Have the close of ${c} reset the connection when the kernel still holds bytes the client has
 * not taken: a plain close leaves them with the kernel, an orphan probing the client's zero
 * window for minutes (the 256 KiB of each evicted connection whose client went on reading
 * nothing were all still held 70 s on). Only for one evicted, whose replies sessd dropped
 * anyway, or whose client read nothing for the close timeout.
 */
static void drop_kernel_queue(struct conn *c)
{
	struct linger reset = {.l_onoff = 1, .l_linger = 0};
	int queued = 0;

	if (ioctl(c->fd, SIOCOUTQ, &queued) == 0 && queued > 0)
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
}

static void conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd, (void)what;
	if (!c->closing && c->hello_done && !c->deadline_met) {
		/* Sealed, answered, and no record from the client: it may be a replay, or a client
		 * that said HELLO and went idle, which SHUTTING_DOWN tells that nothing of it was
		 * lost. */
		log_debug("a sealed client sent no record within %d s; closing it",
		          c->set->cfg.hello_timeout_s);
		c->unproven = true;
		c->owes_goodbye = true;
		begin_closing(c);
		return;
	}
	if (!c->closing && !c->peer.ready)
		log_debug("a client sent no HELLO within %d s; closing it",
		          c->set->cfg.hello_timeout_s);
	if (c->closing && c->tcp && (c->evicted || unsent(c) > 0))
		drop_kernel_queue(c);
	conn_close(c);
}

void conn_set_init(struct conn_set *s, const struct conn_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	TAILQ_INIT(&s->all);
	TAILQ_INIT(&s->pending);
	TAILQ_INIT(&s->input);
	TAILQ_INIT(&s->unread);
	TAILQ_INIT(&s->waiting);
	TAILQ_INIT(&s->ungreeted);
	TAILQ_INIT(&s->held_over);
	TAILQ_INIT(&s->held_starved);
	TAILQ_INIT(&s->grown);
	TAILQ_INIT(&s->lingering);
	owners_init(&s->owners);
	owners_init(&s->greeted);
	owners_init(&s->members);
}

void conn_set_handle_input(struct conn_set *s)
{
	struct dispatch_frame_ref frames[DISPATCH_PREFETCH_MAX];
	struct conn *batch[DISPATCH_PREFETCH_MAX];
	/* The index in frames of each connection's first frame, or -1 when it has none. */
	int first_frame[DISPATCH_PREFETCH_MAX];
	size_t n_conns, n_frames;
	struct conn *c;

	/* The reads put off, oldest first, while the turn's budget lasts; one whose reading
	 * stopped meanwhile (held, paused, closing, lingering) is dropped from the list: its
	 * socket is ready still, and says so again once it is watched. */
	while (s->turn_read < CONN_TURN_READ_BYTES && (c = TAILQ_FIRST(&s->unread)) != NULL) {
		TAILQ_REMOVE(&s->unread, c, unread_link);
		c->unread = false;
		if (c->broken && !c->closing) {
			/* What a departed client left in its socket (finish_broken): its frames run
			 * with the others', or it closes there once nothing more came. */
			read_left(c, true);
			if (!c->queued) {
				c->queued = true;
				TAILQ_INSERT_TAIL(&s->input, c, input_link);
			}
		} else if (c->reading && !c->lingering) {
			read_ready(c);
		}
	}
	/* Those left wait for the next turn: counted each time, as held_over_total counts. */
	TAILQ_FOREACH(c, &s->unread, unread_link)
	{
		s->reads_deferred_total++;
	}
	while (!TAILQ_EMPTY(&s->input)) {
		/* A chunk at a time: hints run too far ahead would be evicted before use. */
		n_conns = n_frames = 0;
		while (n_conns < DISPATCH_PREFETCH_MAX && (c = TAILQ_FIRST(&s->input)) != NULL) {
			TAILQ_REMOVE(&s->input, c, input_link);
			c->queued = false;
			first_frame[n_conns] = -1;
			if (will_handle(c) && frame_at(c, c->in_start, &frames[n_frames]) != 0)
				first_frame[n_conns] = (int)n_frames++;
			batch[n_conns++] = c;
		}
		if (n_frames >= 2)
			s->cfg.on_prefetch(s->cfg.arg, frames, n_frames);
		for (size_t i = 0; i < n_conns; i++) {
			const struct dispatch_frame_ref *first =
			    n_frames >= 2 && first_frame[i] >= 0 ? &frames[first_frame[i]] : NULL;

			if (!process(batch[i], first))
				trim_input(batch[i]);
		}
	}
}

void conn_set_finish(struct conn_set *s)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&s->all)) != NULL)
		conn_unlink_destroy(c);
	while (!TAILQ_EMPTY(&s->lingering))
		linger_end(TAILQ_FIRST(&s->lingering));
	owners_finish(&s->owners);
	owners_finish(&s->greeted);
	owners_finish(&s->members);
}

/*
 * Whether ${c}, not past HELLO, may give way to a newcomer from ${source} at ${now_ms}: any
 * may, but a newcomer on trial whose own source's newcomer it would be, within
 * CONN_HELLO_GRACE_MS of its accept.
 */
static bool may_give_way(const struct conn *c, uint64_t source, int64_t now_ms)
{
	return !c->on_trial || c->source != source || c->peer.ready ||
	       now_ms - c->accepted_ms >= CONN_HELLO_GRACE_MS;
}

/* Send BUSY with the message ${why} on ${fd} if the socket takes it at once. */
static void send_busy(evutil_socket_t fd, const char *why)
{
	struct buf frame;
	ssize_t moved;

	buf_init(&frame);
	if (codec_reply_error(&frame, 0, CODEC_BUSY, why) == 0) {
		moved = send(fd, frame.data, frame.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)moved; /* best effort: the close tells the client in any case */
	}
	buf_finish(&frame);
}

void conn_set_refuse(struct conn_set *s, struct event_base *base, evutil_socket_t fd,
                     const char *why)
{
	send_busy(fd, why);
	close_lingering(s, base, fd, CONN_LINGER_S * 1000L);
}

/*
 * ${c}, sealed and not closing, is closed now for a newcomer: seal SHUTTING_DOWN behind what
 * its output holds (its HELLO's reply, when that has not gone yet) and send what the socket
 * takes of it at once, without waiting, as conn_set_refuse sends BUSY; its close then lingers
 * apart (drop_pending), so that the first request its client sent meanwhile does not reset the
 * connection under it. The slot must be free before the newcomer is let in, so this cannot
 * wait for the flush; if the socket takes it only in part, the client sees the end of the
 * stream as before.
 */
static void say_unproven_goodbye_now(struct conn *c)
{
	ssize_t put;

	if (reply_last(c, CODEC_SHUTTING_DOWN, CONN_GOODBYE_UNPROVEN) == 0 && seal_output(c) == 0) {
		while (c->out.len > c->out_sent) {
			put = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent,
			           MSG_NOSIGNAL | MSG_DONTWAIT);
			if (put == -1 && errno == EINTR)
				continue;
			if (put <= 0)
				break;
			c->out_sent += (size_t)put;
		}
	}
}

/*
 * Close ${c}, not past HELLO, for a newcomer, its slot free at once. Its client is told BUSY
 * (send_busy) when no reply of it has been sent and its HELLO has not been answered: a sealed
 * client could not read it plain after that. A sealed one whose HELLO was answered is told
 * SHUTTING_DOWN, sealed, as at its --hello-timeout: its client may have sent its first request
 * meanwhile, which crosses the close, and a bare end of the stream left that "may or may not"
 * (a libsessd call so read "unknown"; told, it sends the request again on a new connection).
 * Then its socket lingers apart (close_lingering), as a refused newcomer's does: closed with
 * that request unread, the close reset the connection, and the reset could destroy the reply.
 */
static void drop_pending(struct conn *c, const char *why)
{
	struct conn_set *s = c->set;
	struct event_base *base = event_get_base(c->read_ev);
	evutil_socket_t fd = c->fd;
	long linger_ms = CONN_LINGER_S * 1000L;

	if (c->peer.seal != NULL && !c->closing && !c->broken) {
		say_unproven_goodbye_now(c);
		linger_ms = CONN_GOODBYE_LINGER_MS;
	} else if (!c->peer.ready && unsent(c) == 0) {
		send_busy(fd, why);
	}
	c->fd = -1;
	conn_close(c);
	close_lingering(s, base, fd, linger_ms);
}

/*
 * How readily ${c}, not past HELLO, gives way to a newcomer from ${source}, lowest first: one of
 * the newcomer's own source (a source flooding displaces its own) that has not shown the
 * secret; then one of another client that has not shown it and whose client holds no
 * connection past HELLO; then the newcomer's own that has; then the rest. A sealed connection
 * whose HELLO proved the secret (its first record not opened yet), or one whose client holds
 * connections past HELLO, is a web server opening its pool: an attacker posing as many hosts
 * (any of 127.0.0.0/8 over loopback, the /64s of an IPv6 /48) who cannot pass HELLO opened
 * newcomers from a new address each, so that the oldest not past HELLO, the one closed, was
 * that web server's connection in the moment between its HELLO reply and its first request
 * (at --max-connections 40, a restarted pool of 16 needed up to 1.1 s and 89 failed calls).
 * That moment is a round trip: a sealed HELLO answered longer ago than
 * CONN_FIRST_RECORD_GRACE_MS, with no record since, has shown nothing (a recorded HELLO
 * replayed is answered as well, and its replayer never sends a record). Nor has one whose
 * client key sessd had answered before (replays.h): re-replayed every half second, one
 * recorded HELLO held its slots above a web server's newcomers for as long as the replayer
 * went on; nor does its host's credit count for it. A real client taken for a replay by
 * chance (about 0.5% at most) loses only these credits: its first record counts as ever, and
 * closed, it is told so (drop_pending).
 * None is kept for good: with no other among those scanned, one that has shown the secret
 * gives way as before, so connections that cannot be displaced cannot fill the slots.
 */
static int give_way_rank(const struct conn_set *s, const struct conn *c, uint64_t source,
                         int64_t now_ms)
{
	/* Answered, sealed: until its first record opens, only for CONN_FIRST_RECORD_GRACE_MS,
	 * and not at all when its client key was answered before (dispatch_peer.replayed). */
	bool hello_shown =
	    c->hello_done &&
	    (c->peer.seal == NULL || c->peer_proved ||
	     (!c->peer.replayed && now_ms - c->answered_ms < CONN_FIRST_RECORD_GRACE_MS));
	/* Nor does its host's credit count for it: the HELLO was sent by whoever recorded it. */
	bool shown = hello_shown || (!c->peer.replayed && owners_count(&s->greeted, c->owner) > 0);

	if (c->source == source && !hello_shown)
		return 0;
	if (!shown)
		return 1;
	return c->source == source ? 2 : 3;
}

bool conn_set_drop_ungreeted(struct conn_set *s, uint64_t source)
{
	struct conn *c = TAILQ_FIRST(&s->ungreeted), *own = NULL;
	int own_rank = 4;
	uint64_t logged;
	int64_t now_ms;

	if (c == NULL)
		return false;
	now_ms = mono_ms();
	for (int looked = 0; c != NULL && looked < CONN_DISPLACE_SCAN && own_rank > 0; looked++) {
		int rank;

		if (may_give_way(c, source, now_ms) &&
		    (rank = give_way_rank(s, c, source, now_ms)) < own_rank) {
			own = c;
			own_rank = rank;
		}
		c = TAILQ_NEXT(c, ungreeted_link);
	}
	if (own == NULL)
		return false;
	snprintf(s->dropped_peer, sizeof(s->dropped_peer), "%s", own->peer_name);
	drop_pending(own, CONN_BUSY_PENDING);
	s->dropped_ungreeted++;
	logged = log_every_due(&s->dropped_log, 1, 10);
	if (logged > 0)
		say_dropped(s, logged);
	return true;
}

int conn_new(struct conn_set *s, struct event_base *base, evutil_socket_t fd, uint64_t source,
             uint64_t owner, bool local, const char *name, bool on_trial)
{
	struct conn *c;
	int one = 1, domain = 0;
	socklen_t domain_len = sizeof(domain);

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_warn("out of memory for a connection");
		goto fail_fd;
	}
	c->set = s;
	c->fd = fd;
	c->source = source;
	c->accepted_ms = mono_ms();
	c->owner = owner;
	c->active_tick = s->ticks;
	c->read_bytes = CONN_READ_CHUNK;
	c->peer.local = local;
	snprintf(c->peer_name, sizeof(c->peer_name), "%s", name);
	c->peer.name = c->peer_name;
	buf_init(&c->out);
	buf_init(&c->plain);
	buf_init(&c->raw);
	c->peer.sealed_out = &c->out;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &domain_len) == -1)
		domain = 0;
	c->hangup_watched =
	    (event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE) != 0 && domain == AF_UNIX;
	c->tcp = domain == AF_INET || domain == AF_INET6;
	c->read_ev = event_new(base, fd, EV_READ | EV_PERSIST | (c->hangup_watched ? EV_CLOSED : 0),
	                       conn_on_read, c);
	c->write_ev = event_new(base, fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
	if (c->read_ev == NULL || c->write_ev == NULL) {
		log_warn("out of memory for a connection");
		goto fail_events;
	}
	/* Replies go out in batches already; Nagle would only delay them. Fails on Unix
	 * sockets, harmlessly. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (event_add(c->read_ev, NULL) == -1) {
		log_warn("cannot watch a new connection");
		goto fail_events;
	}
	c->reading = true;
	/* A client that connects and says nothing must not hold a connection slot forever. */
	if (arm_timer(c, s->cfg.hello_timeout_s) == -1) {
		log_warn("cannot arm a new connection's HELLO deadline");
		goto fail_events;
	}
	if (owners_add(&s->owners, owner) == -1) {
		log_warn("out of memory for a connection");
		goto fail_events;
	}
	TAILQ_INSERT_TAIL(&s->all, c, link);
	TAILQ_INSERT_TAIL(&s->ungreeted, c, ungreeted_link);
	s->count++;
	c->on_trial = on_trial;
	s->trials += on_trial;
	return 0;

fail_events:
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->read_ev != NULL)
		event_free(c->read_ev);
	if (c->write_ev != NULL)
		event_free(c->write_ev);
	free(c);
fail_fd:
	evutil_closesocket(fd);
	return -1;
}

void conn_set_tick(struct conn_set *s)
{
	s->ticks++;
	give_back_all_room(s, true);
	/* A warning held back in a burst is said once its period is over, not at the next
	 * occurrence, which may come much later or never. */
	say_held_back(s, false);
}

bool conn_set_may_try(struct conn_set *s, uint64_t owner)
{
	/* A client holding no connection may take one from a client holding two or more, not
	 * in use or idle: its trial needs no idle one. The counts are kept as connections come
	 * and go, so a flood of newcomers costs no scan here; whether one gives way is decided
	 * at the newcomer's HELLO (find_victim), which only a client with the secret reaches. */
	if (owners_count(&s->owners, owner) == 0 && owners_crowded(&s->owners) > 0)
		return true;
	/* Likewise a newcomer of a host of which a process holds two or more (over TCP): it may
	 * be another process of that host, holding none. Which process it is, HELLO says. */
	if (owners_crowded_members(&s->greeted, owner) > 0)
		return true;
	return count_idle(s, s->trials + 1) > s->trials;
}

bool conn_set_has_held(const struct conn_set *s)
{
	return !TAILQ_EMPTY(&s->held_over) || !TAILQ_EMPTY(&s->held_starved);
}

/* Take ${c} off its held list and queue it at the end of ${order}, unless it is queued. */
static void resume(struct conn *c, struct conn_list *order)
{
	unhold(c);
	c->resumed = true;
	if (!c->queued) {
		c->queued = true;
		TAILQ_INSERT_TAIL(order, c, input_link);
	}
	update_reading(c);
}

void conn_set_resume_held(struct conn_set *s)
{
	struct conn_list order;
	struct conn *c;

	TAILQ_INIT(&order);
	while ((c = TAILQ_FIRST(&s->held_starved)) != NULL)
		resume(c, &order);
	TAILQ_CONCAT(&order, &s->input, input_link);
	while ((c = TAILQ_FIRST(&s->held_over)) != NULL)
		resume(c, &order);
	TAILQ_CONCAT(&s->input, &order, input_link);
}

bool conn_set_has_waiting(const struct conn_set *s)
{
	return !TAILQ_EMPTY(&s->waiting);
}

size_t conn_set_waiting_count(const struct conn_set *s)
{
	return s->n_waiting;
}

/*
 * Whether ${c} waits with a sealed HELLO put off (its HELLO is not done) and its client has
 * stopped sending: closed, reset, or shut down its side (POLLRDHUP sees that behind unread
 * bytes, which a peek would not). A sealed client cannot send a request before the HELLO
 * reply gives it the keys, so such a connection can never be used: the key exchange would
 * be for nobody. A connection past HELLO whose client shut down its side after sending its
 * requests (a COUNT or a LIST page put off) is answered, as any half-closed one is.
 */
static bool hello_abandoned(const struct conn *c)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLRDHUP};

	if (c->peer.ready || poll(&pfd, 1, 0) != 1)
		return false;
	return (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

size_t conn_set_retry(struct conn_set *s, size_t most)
{
	struct conn_list batch;
	struct conn *c;
	size_t left = 0;

	/* Detached, as in conn_set_flush: a frame put off again puts its connection back on the
	 * set's list, behind those not handed this time, for the next retry. Handling a
	 * connection frees none but itself. A sealed HELLO whose client has stopped sending
	 * (hello_abandoned) is closed without its key exchange, and does not count against
	 * ${most}: a flood of replayed sealed HELLOs, each connection closed at once, must not
	 * cost a key exchange each, nor keep a live client's HELLO queued behind them. */
	TAILQ_INIT(&batch);
	while (most > 0 && (c = TAILQ_FIRST(&s->waiting)) != NULL) {
		TAILQ_REMOVE(&s->waiting, c, waiting_link);
		s->n_waiting--;
		if (hello_abandoned(c)) {
			c->waiting = false;
			s->hellos_abandoned++;
			conn_close(c);
			left++;
			continue;
		}
		TAILQ_INSERT_TAIL(&batch, c, waiting_link);
		most--;
	}
	while ((c = TAILQ_FIRST(&batch)) != NULL) {
		TAILQ_REMOVE(&batch, c, waiting_link);
		c->waiting = false;
		if (process(c, NULL)) {
			left++;
			continue;
		}
		if (!c->waiting)
			left++;
		trim_input(c);
	}
	return left;
}

bool conn_set_has_pending(const struct conn_set *s)
{
	return !TAILQ_EMPTY(&s->pending);
}

void conn_set_flush(struct conn_set *s, bool committed)
{
	struct conn_list batch;
	struct conn *c;

	s->turn_output = 0;
	s->turn_spare = 0;
	s->turn_frames = 0;
	s->turn_input = 0;
	s->turn_read = 0;
	/* Work on a detached list: a connection that resumes reading here may queue replies
	 * again, for the next flush. */
	TAILQ_INIT(&batch);
	TAILQ_CONCAT(&batch, &s->pending, pending_link);
	while ((c = TAILQ_FIRST(&batch)) != NULL) {
		TAILQ_REMOVE(&batch, c, pending_link);
		c->pending = false;
		if (!committed || c->retired) {
			conn_close(c);
			continue;
		}
		conn_write(c);
	}
	/* What the sockets did not take is the clients' backlog. */
	if (s->client_bytes > s->cfg.max_client_bytes)
		shed_clients(s);
}

/* Whether ${generation} of ${a} is no longer held: 0 (not shown) and no ${a} never are. */
static bool retired(const struct auth *a, uint64_t generation)
{
	return a != NULL && generation != 0 && !auth_holds_generation(a, generation);
}

size_t conn_set_close_auth_retired(struct conn_set *s, const struct auth *a,
                                   const struct auth *admin)
{
	struct conn *c, *next;
	size_t closing = 0;

	for (c = TAILQ_FIRST(&s->all); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->closing || !c->peer.ready ||
		    (!retired(a, c->peer.auth_generation) &&
		     !retired(admin, c->peer.admin_generation)))
			continue;
		closing++;
		/* The client can then tell that what got no reply was not carried out, and send
		 * it again once it holds the current secret. */
		c->auth_retired = true;
		c->owes_goodbye = true;
		/* Frees only ${c}, whose successor is kept in next. */
		begin_closing(c);
	}
	return closing;
}

int conn_set_retire(struct conn_set *s, const struct dispatch_peer *asking,
                    const uint8_t key[CODEC_RETIRE_KEY_BYTES])
{
	struct conn *c;

	/* A linear walk: RETIRE is rare (a client's connection broke with a change in flight). */
	TAILQ_FOREACH(c, &s->all, link)
	{
		if (c->peer.seal == NULL ||
		    memcmp(c->peer.seal_key, key, CODEC_RETIRE_KEY_BYTES) != 0)
			continue;
		if (&c->peer == asking)
			return -1;
		if (c->retired)
			return 0;
		/* Not freed here: the caller may hold it in a batch of this turn (conn_set_retry,
		 * conn_set_handle_input). What it read and did not carry out is dropped, nothing
		 * more is read, process() hands nothing on, and the flush closes it. */
		c->retired = true;
		drop_unread(c);
		c->record_fault = NULL;
		unhold(c);
		mark_closing(c);
		c->lingering = false;
		update_reading(c);
		set_writing(c, false);
		note_held(c, false);
		mark_pending(c);
		return 1;
	}
	return 0;
}

void conn_set_shutdown(struct conn_set *s)
{
	struct conn *c, *next;

	/* Requests read before the stop are answered as far as this turn's output budget goes,
	 * those held over from the last turn first. What is left is not carried out, which the
	 * SHUTTING_DOWN says, as for requests still in the kernel: answering it all at once
	 * would hold the loop and pile up replies past --max-client-memory, and the connections
	 * shed for that would end without SHUTTING_DOWN. */
	conn_set_resume_held(s);
	conn_set_handle_input(s);
	s->stopping = true;
	/* Refused sockets are not connections: the stop waits for none of them. */
	while (!TAILQ_EMPTY(&s->lingering))
		linger_end(TAILQ_FIRST(&s->lingering));
	for (c = TAILQ_FIRST(&s->all); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->lingering) {
			conn_close(c);
			continue;
		}
		unhold(c);
		/* One closing for a reason of its own (an error reply, the client's end, BUSY)
		 * says so already. */
		c->owes_goodbye = !c->closing;
		begin_closing(c);
	}
}

bool conn_set_has_unread(const struct conn_set *s)
{
	return !TAILQ_EMPTY(&s->unread);
}
