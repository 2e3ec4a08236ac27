/*
 * libFuzzer entry point for the connection layer (daemon/conn.c): real bytes over AF_UNIX
 * socketpairs, written in the sizes the input picks, at the moments it picks, into up to
 * three connections of a real conn_set, driven turn by turn as server.c drives it
 * (event_base_loop with EVLOOP_NONBLOCK, then conn_set_retry, conn_set_resume_held,
 * conn_set_handle_input, conn_set_flush), with the real dispatch and store behind it (plain,
 * no persistence). What it reaches that fuzz_dispatch does not: frame assembly across reads,
 * announced lengths (lying, zero, past max_frame), the input buffer's growth and compaction,
 * the turn's budgets and holds, output backpressure (a client that stops reading), half
 * close, close, the server's shutdown and linger, and the set's accounting of its buffers;
 * as the config chooses, loopback TCP, --max-connections's admission (server_on_accept's, in
 * admit), the connections' timers, and allocations that fail.
 *
 * An input is one config byte, then operations. Config: bit 0 makes max_frame 8192 instead
 * of 4096; bit 1 small budgets (turn_output_bytes 4 KiB, output_high_bytes 8 KiB,
 * max_client_bytes 3 max_frame), else the server's (256 KiB, 1 MiB, 64 MiB); bit 2 seals
 * (below); bit 3 connects clients 1 and 2 over loopback TCP (client 0 stays on a socketpair);
 * bit 4 makes --max-connections 2 (with bit 6, 1), so that a third client is let in on trial,
 * displaces one, or is refused BUSY; bit 5 makes clients 0 and 1 one process (a pool), else
 * each client is its own (over TCP, all are one host, told apart by HELLO's process
 * identity); bit 7 gives TICK its variants, TIMER and FAIL (below).
 *
 * Each operation is a byte a: a mod 8 picks it, (a >> 3) mod 3 the client (a client closed
 * is connected again by the next FRAME for it); then, by operation:
 *   0 FRAME k [...]: queue a frame in the client's outbox (connecting the client if it is
 *     not, with k bit 7 over sockets whose kernel buffers are the least the kernel allows on
 *     both ends, a few KiB, so that a few replies fill them), k mod 8 picking it: HELLO (with
 *     the process identity (k >> 3) mod 4, none for 0; sealed, with k bit 6 a client key of
 *     its own, as a real client draws one for each connection, else fuzz_auth.h's fixed one,
 *     which the server takes for a HELLO replayed from its second use on), PING
 *     with a payload of 64 b bytes, SET of 40 b bytes, GET, FLASH_PUSH, FLASH_POP, LIST
 *     (the session k >> 3 mod 4), or RAW: a length byte pair, then that many bytes mod 512
 *     of the input as the body, announced as its length, or (k bit 3) as the length the
 *     pair says (which may be 0, lie, or pass max_frame); with k bits 4-6 all set, not RAW
 *     but RETIRE t: of the connection of client t mod 3 (the server key its sealed HELLO's
 *     reply gave, or zeros: none), which the server closes mid-turn, its replies unsent
 *   1 SEND hi lo: write up to hi lo + 1 bytes of the outbox (what the socket takes)
 *   2 TURN: one loop turn
 *   3 READ b: read up to 64 (b + 1) bytes of replies and check them
 *   4 SHUT: shut the client's side down for writing (it still reads)
 *   5 CLOSE: close the client's socket (replies unread are lost)
 *   6 TICK: conn_set_tick, as the server's timer calls it each second, a second later on
 *     the monotonic clock sessd's code reads (linked with --wrap=clock_gettime: the clock
 *     moves on only here), so that the half-second graces of --max-connections's admission
 *     (a newcomer on trial, a sealed HELLO awaiting its first record) run out. With config bit 7,
 *     (a >> 3) / 3 mod 3 picks: 0 TICK; 1 TIMER b: a connection's timer (HELLO deadline,
 *     close timeout or linger) fires now, as if its time had passed: the (b mod n)-th of the
 *     n armed, soonest first, or (b bit 7) every one; then a turn; 2 FAIL b: the (b mod 64 +
 *     1)-th allocation the server makes from now (sessd's own, linked with --wrap, and
 *     libevent's) fails, and with b bit 7 every one after it until the next turn ends
 *   7 STOP: conn_set_shutdown, as a SIGTERM does (once; no new connection after it)
 *
 * Checks (abort on failure): every reply is one whole frame, within max_frame, that decodes;
 * replies come in request order, each carrying the id of the oldest request wholly sent and
 * not answered yet (a RAW frame's reply may carry any id; after a RAW that lies about its
 * length, ids are not checked); BAD_REQUEST answers only a RAW or a second HELLO (every
 * other frame the harness encodes is well formed: BAD_REQUEST for one means its bytes were
 * corrupted on the way in); after a reply that ends the connection (BAD_REQUEST,
 * TOO_LARGE, NOT_READY, BUSY, SHUTTING_DOWN, AUTH_FAILED, BAD_VERSION) nothing more comes.
 * At the end, each client still open sends the rest of its outbox and reads until every
 * request it sent before its first lying RAW is answered or a reply ended it; then every
 * client closes, and the set must close every connection, count no bytes held and no
 * newcomer on trial. Allocations never fail in that end, so its checks are exact.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <linux/sockios.h>
#include <sodium.h>

#include "buf.h"
#include "codec.h"
#include "conn.h"
#include "dispatch.h"
#include "fuzz_auth.h"
#include "fuzz_input.h"
#include "log.h"
#include "mp.h"
#include "reply.h"
#include "seal.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_CLIENTS 3
/* Bounds each input's time: operations, and the turns the end may take to drain. */
#define MAX_OPS          1000
#define MAX_DRAIN_TURNS  400
#define DRAIN_IDLE_TURNS 4
/* The end's waits for bytes the kernels of TCP clients still hold (tcp_may_move), and each
 * one's length: a zero window's probe comes after 200 ms, then later. At most 5 s: on a loaded
 * machine the probes and this process's wakeups come late (CI's grading machine kept sessd's
 * loop off the CPU for up to 359 ms at a time), and an input whose bytes move waits no longer
 * than they take (the committed corpus replays in the same time with 300 waits or 2500). */
#define DRAIN_WAITS 2500
/* The segment size (MSS) of a TCP client on the kernel's least buffers (client_connect). */
#define SMALL_TCP_SEGMENT 536
#define DRAIN_WAIT_US     2000
#define MAX_EXPECTED      4096
#define RAW_MOST          512
#define ID_ANY            UINT64_MAX
#define FUZZ_NOW_SESSION  "fuzz-conn-session-"
#define MAX_TIMERS        64
/* Sources and owners as the listener keys them (listener.c): one uid for every Unix client,
 * one host for every TCP one; a Unix client's owner is its process. */
#define SOURCE_UNIX      1
#define SOURCE_TCP       2
#define OWNER_PROCESS(n) (0x100u + (n))

/* The --auth-file secret of the sealed runs, known to both sides (the client's ephemeral key
 * is fuzz_auth.h's, the server's its own). */
static const char secret[] = "fuzz_conn: a secret of 32 bytes!";
static uint8_t psk[SEAL_PSK_BYTES];
static struct auth *server_auth;
/* The loopback listener TCP clients connect to, made once. */
static int listen_fd = -1;
static struct sockaddr_in listen_addr;

/*
 * Allocation failures (config bit 7, FAIL): sessd's code is linked with --wrap=malloc,
 * calloc, realloc and strdup, and libevent given these functions too, so that the
 * fail_countdown-th allocation made inside a server call (in_server: a turn, an accept, a
 * tick, a stop; never the harness's own) fails, and with fail_burst every one after it until
 * the turn ends.
 */
static bool in_server;
static unsigned fail_countdown; /* 0: none armed */
static bool fail_burst;
static unsigned allocations_failed; /* for FUZZ_CONN_DEBUG */
/* How far TICKs have moved sessd's monotonic clock on (ms), and the client keys of their own
 * the sealed HELLOs of this input drew (FRAME's HELLO, k bit 6). */
static int64_t mono_skew_ms;
static uint8_t fresh_keys;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

static bool alloc_fails(void)
{
	if (!in_server || fail_countdown == 0)
		return false;
	if (fail_countdown > 1) {
		fail_countdown--;
		return false;
	}
	if (!fail_burst)
		fail_countdown = 0;
	allocations_failed++;
	errno = ENOMEM;
	return true;
}

void *__wrap_malloc(size_t n)
{
	return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return alloc_fails() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return alloc_fails() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return alloc_fails() ? NULL : __real_strdup(s);
}

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);

/* sessd's monotonic clock, mono_skew_ms ahead of the kernel's (TICK). */
int __wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
	int r = __real_clock_gettime(id, ts);

	if (r == 0 && mono_skew_ms > 0 && (id == CLOCK_MONOTONIC || id == CLOCK_MONOTONIC_COARSE)) {
		ts->tv_sec += mono_skew_ms / 1000;
		ts->tv_nsec += (mono_skew_ms % 1000) * 1000000;
		if (ts->tv_nsec >= 1000000000) {
			ts->tv_sec++;
			ts->tv_nsec -= 1000000000;
		}
	}
	return r;
}

static void free_for_libevent(void *p)
{
	free(p);
}

struct client {
	int fd; /* -1: not connected */
	bool tcp;
	bool shut;      /* its side shut down for writing */
	bool ended;     /* a reply ended the connection, or it read the end of the stream */
	bool unchecked; /* a RAW lied about its length: the stream after it is not frames */
	bool lied;      /* its outbox holds (or held) a lying RAW: the rest may never be answered */
	bool sent_raw;  /* it queued a RAW frame: BAD_REQUEST with id 0 may be that frame's */
	bool said_hello; /* it queued a HELLO: another is BAD_REQUEST by design */
	uint64_t next_id;
	struct buf outbox; /* frames not written yet */
	size_t sent;       /* bytes of the outbox written; written bytes are dropped at each send */
	size_t sent_total; /* bytes written since it connected */
	struct buf inbox;  /* reply bytes read (sealed: opened), not a whole frame yet */
	/* Sealed: the client's side of the exchange its HELLO began (NULL: none, or plain);
	 * frames queued after that HELLO, sealed into one record at the next SEND once the
	 * HELLO's reply finished the exchange; records read, not opened yet. */
	struct seal *seal;
	bool sealed;     /* the exchange is finished: frames go, and replies come, as records */
	bool refused_kx; /* the HELLO's reply did not finish the exchange: nothing more is sent */
	/* The server's key of its sealed connection, which names it in a RETIRE (zeros: none). */
	uint8_t server_key[SEAL_KEY_BYTES];
	struct buf plain_out;
	struct buf records_in;
	/* Requests sent or queued, oldest first: their ids, and where each ends in the stream. */
	uint64_t expect_id[MAX_EXPECTED];
	size_t expect_end[MAX_EXPECTED];
	bool expect_lies[MAX_EXPECTED];
	/* BAD_REQUEST may answer it: a RAW, or a second HELLO. Any other frame the harness
	 * encodes is well formed, and a BAD_REQUEST for it means its bytes were corrupted. */
	bool expect_bad_ok[MAX_EXPECTED];
	size_t n_expect, expect_head;
	size_t queued_total; /* bytes queued since it connected */
};

struct fuzz {
	struct event_base *base;
	struct store *st;
	struct dispatch *d;
	struct dispatch_server_stats stats;
	struct conn_set set;
	uint32_t max_frame;
	bool sealing;  /* the server has an --auth-file secret: HELLO is a key exchange */
	bool tcp;      /* clients 1 and 2 connect over loopback TCP */
	bool pool;     /* clients 0 and 1 are one process */
	bool variants; /* TICK's variants: TIMER and FAIL */
	unsigned max_connections;
	bool stopping;
	unsigned closed;  /* connections the set closed (on_closed) */
	unsigned replies; /* replies checked, for FUZZ_CONN_DEBUG */
	struct client cl[N_CLIENTS];
	struct buf frame;
};

static enum dispatch_verdict on_frame(void *arg, struct dispatch_peer *peer,
                                      const struct dispatch_frame_ref *frame, uint64_t now_ms,
                                      struct buf *out)
{
	struct fuzz *f = arg;

	return dispatch_frame_hinted(f->d, peer, frame, now_ms, out);
}

static void on_prefetch(void *arg, struct dispatch_frame_ref *frames, size_t count)
{
	struct fuzz *f = arg;

	dispatch_prefetch(f->d, frames, count);
}

static size_t on_reply_bound(void *arg, struct dispatch_frame_ref *frame, uint64_t now_ms)
{
	struct fuzz *f = arg;

	return dispatch_reply_bound(f->d, frame, now_ms);
}

static bool on_reply_only(void *arg, struct dispatch_frame_ref *frame)
{
	struct fuzz *f = arg;

	return dispatch_reply_only(f->d, frame);
}

static bool on_takes_for_client(void *arg, struct dispatch_frame_ref *frame)
{
	struct fuzz *f = arg;

	return dispatch_takes_for_client(f->d, frame);
}

/* RETIRE: the connections are conn.c's, as server_on_retire hands it on. */
static int on_retire(void *arg, const struct dispatch_peer *asking,
                     const uint8_t key[CODEC_RETIRE_KEY_BYTES])
{
	struct fuzz *f = arg;

	return conn_set_retire(&f->set, asking, key);
}

static void on_closed(void *arg)
{
	struct fuzz *f = arg;

	f->closed++;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * One loop turn, as server_run and server_after_turn make it (no persistence: commits hold):
 * one pass over the ready events, as server_run's EVLOOP_ONCE makes it, never blocking. With
 * EVLOOP_NONBLOCK alone libevent loops for as long as a callback ran, and the write event of a
 * connection whose replies wait for this turn's flush (pending), its socket writable, runs and
 * returns at once, pass after pass: the harness spun for good (stop 61's run, a timeout;
 * server_run leaves the loop after the pass and flushes).
 */
static void turn(struct fuzz *f)
{
	in_server = true;
	check(event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK) != -1);
	dispatch_turn_begins(f->d);
	if (conn_set_has_waiting(&f->set)) {
		size_t most = dispatch_retries(f->d, wall_ms());
		size_t waited = conn_set_waiting_count(&f->set);
		size_t left = conn_set_retry(&f->set, most);

		dispatch_retried(f->d, most < waited ? most : waited, left,
		                 conn_set_waiting_count(&f->set));
	}
	conn_set_resume_held(&f->set);
	conn_set_handle_input(&f->set);
	conn_set_flush(&f->set, true);
	in_server = false;
	if (fail_burst && fail_countdown == 1) {
		fail_countdown = 0;
		fail_burst = false;
	}
}

static void client_reset(struct client *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->tcp = false;
	buf_reset(&c->outbox);
	buf_reset(&c->inbox);
	buf_reset(&c->plain_out);
	buf_reset(&c->records_in);
	seal_free(c->seal);
	c->seal = NULL;
	c->sealed = c->refused_kx = false;
	memset(c->server_key, 0, sizeof(c->server_key));
	c->shut = c->ended = c->unchecked = c->lied = false;
	c->sent_raw = c->said_hello = false;
	c->sent = c->sent_total = c->queued_total = 0;
	c->n_expect = c->expect_head = 0;
	c->next_id = 1;
}

/*
 * The server's end of a new connection, as server_on_accept takes it (without its slack
 * past the limit, which three clients never reach): at --max-connections a connection that
 * has not said HELLO gives way, else the newcomer is let in on trial or refused BUSY.
 */
static void accept_conn(struct fuzz *f, int fd, uint64_t source, uint64_t owner)
{
	bool on_trial;

	in_server = true;
	if (f->set.count >= f->max_connections && !conn_set_drop_ungreeted(&f->set, source) &&
	    !conn_set_may_try(&f->set, owner)) {
		conn_set_refuse(&f->set, f->base, fd, "the server is at its --max-connections");
	} else {
		on_trial = f->set.count >= f->max_connections;
		/* On failure (an allocation) it has closed fd: the client reads the end. */
		conn_new(&f->set, f->base, fd, source, owner, true, "fuzz", on_trial);
	}
	in_server = false;
}

/*
 * Shrink the kernel's buffers of ${fd} to the least it allows (a few KiB; it rounds 1 up), as
 * a client that reads slowly over a slow link makes them: the server's sends then stop after a
 * few replies, not after the hundreds of KiB a Unix socket or loopback TCP holds, so that its
 * writes wait for the socket (conn_on_write), fail when the client has gone meanwhile, and a
 * closing connection's timer finds bytes still queued in the kernel (drop_kernel_queue),
 * within the few operations an input has.
 */
static void shrink_kernel_buffers(int fd)
{
	int least = 1;

	check(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &least, sizeof(least)) == 0);
	check(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &least, sizeof(least)) == 0);
}

/* Connect client ${i}, with the kernel's least buffers on both ends when ${small}. */
static void client_connect(struct fuzz *f, unsigned i, bool small)
{
	struct client *c = &f->cl[i];
	int sv[2], one = 1;

	client_reset(c);
	if (f->tcp && i > 0) {
		sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		check(sv[0] != -1);
		/* Before connect: the window it offers is set at the handshake. */
		/* With loopback's 64 KiB segments against windows of a few KiB, a window that
		 * opens again is announced only by the sender's zero-window probe, 200 ms on and
		 * doubling: an input of a few large replies took seconds. Segments of a slow link's
		 * size keep the windows moving. */
		if (small) {
			shrink_kernel_buffers(sv[0]);
			check(setsockopt(sv[0], IPPROTO_TCP, TCP_MAXSEG, &(int){SMALL_TCP_SEGMENT},
			                 sizeof(int)) == 0);
		}
		check(connect(sv[0], (const struct sockaddr *)&listen_addr, sizeof(listen_addr)) ==
		      0);
		check(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
		/* As libsessd's: with Nagle a small write behind unacknowledged bytes waits for the
		 * server's delayed ACK, and the end's drain, finding nothing moving, would stop
		 * before it arrives. */
		check(setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0);
		sv[1] = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		check(sv[1] != -1);
		c->tcp = true;
	} else {
		check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
		if (small)
			shrink_kernel_buffers(sv[0]);
	}
	/* The server's end as sessd's listener would have bounded it, only smaller. */
	if (small)
		shrink_kernel_buffers(sv[1]);
	c->fd = sv[0];
	if (c->tcp)
		accept_conn(f, sv[1], SOURCE_TCP, SOURCE_TCP);
	else
		accept_conn(f, sv[1], SOURCE_UNIX, OWNER_PROCESS(f->pool && i < 2 ? 0 : i));
}

/* A client's close; over TCP with a reset when ${reset} (SO_LINGER 0), as a killed process's
 * with unread bytes would be. */
static void client_close(struct client *c, bool reset)
{
	struct linger abort_close = {.l_onoff = 1, .l_linger = 0};

	if (reset && c->tcp)
		check(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close)) ==
		      0);
	client_reset(c);
}

static void expect(struct client *c, uint64_t id, bool lies)
{
	if (c->n_expect == MAX_EXPECTED)
		return;
	c->expect_id[c->n_expect] = id;
	c->expect_end[c->n_expect] = c->queued_total;
	c->expect_lies[c->n_expect] = lies;
	c->expect_bad_ok[c->n_expect] = id == ID_ANY;
	c->n_expect++;
}

static void queue_request(struct fuzz *f, struct client *c, struct codec_request *req,
                          bool fresh_key)
{
	uint8_t pk[SEAL_KEY_BYTES], proof[SEAL_PROOF_BYTES];
	struct buf auth;
	size_t at = c->outbox.len;

	bool repeated_hello = req->op == CODEC_OP_HELLO && c->said_hello;

	req->request_id = c->next_id++;
	if (req->op == CODEC_OP_HELLO)
		c->said_hello = true;
	if (c->seal != NULL) {
		/* After a sealed HELLO: in the next record, its end known once sealed. */
		check(codec_encode_request(&c->plain_out, req) == 0);
		expect(c, req->request_id, false);
		c->expect_end[c->n_expect - 1] = SIZE_MAX;
		c->expect_bad_ok[c->n_expect - 1] = repeated_hello;
		return;
	}
	buf_init(&auth);
	if (f->sealing && req->op == CODEC_OP_HELLO) {
		uint8_t key[SEAL_KEY_BYTES];

		memcpy(key, fuzz_client_secret_key, sizeof(key));
		if (fresh_key)
			key[1] ^= ++fresh_keys;
		c->seal = seal_client_new_with_key(psk, key, pk, proof);
		check(c->seal != NULL);
		check(mp_write_map(&auth, 2) == 0 && mp_write_str(&auth, "kx", 2) == 0 &&
		      mp_write_bin(&auth, pk, SEAL_KEY_BYTES) == 0 &&
		      mp_write_str(&auth, "proof", 5) == 0 &&
		      mp_write_bin(&auth, proof, SEAL_PROOF_BYTES) == 0);
		req->auth = (struct mp_bytes){auth.data, auth.len};
	}
	check(codec_encode_request(&c->outbox, req) == 0);
	buf_finish(&auth);
	c->queued_total += c->outbox.len - at;
	expect(c, req->request_id, false);
	c->expect_bad_ok[c->n_expect - 1] = repeated_hello;
}

/* Seal what ${c} queued since its sealed HELLO into the outbox, once the exchange is done. */
static void seal_queued(struct client *c)
{
	size_t at = c->outbox.len;

	if (!c->sealed || c->plain_out.len == 0)
		return;
	check(seal_append_all(c->seal, &c->outbox, c->plain_out.data, c->plain_out.len) == 0);
	c->queued_total += c->outbox.len - at;
	buf_reset(&c->plain_out);
	for (size_t k = 0; k < c->n_expect; k++)
		if (c->expect_end[k] == SIZE_MAX)
			c->expect_end[k] = c->queued_total;
}

static void queue_raw(struct client *c, struct input *in, bool lying)
{
	uint32_t announced = take_be(in, 2);
	size_t n = announced % RAW_MOST;
	uint8_t header[CODEC_HEADER_BYTES];
	uint8_t body[RAW_MOST];
	uint32_t len = lying ? announced : (uint32_t)n;

	header[0] = (uint8_t)(len >> 24);
	header[1] = (uint8_t)(len >> 16);
	header[2] = (uint8_t)(len >> 8);
	header[3] = (uint8_t)len;
	take_bytes(in, body, n);
	c->sent_raw = true;
	/* Sealed: bytes on the wire between records, as a man in the middle puts them; the
	 * stream after them is not checked. */
	if (c->seal != NULL) {
		if (!c->sealed)
			return;
		seal_queued(c);
		lying = true;
	}
	check(buf_append(&c->outbox, header, sizeof(header)) == 0);
	if (n > 0)
		check(buf_append(&c->outbox, body, n) == 0);
	c->queued_total += sizeof(header) + n;
	lying = lying && (len != n || c->seal != NULL);
	if (lying)
		c->lied = true;
	expect(c, ID_ANY, lying);
}

static void op_frame(struct fuzz *f, unsigned i, struct input *in)
{
	static uint8_t payload[8192];
	struct client *c = &f->cl[i], *target;
	struct codec_request req = {0};
	uint8_t k = take_u8(in), b;
	char id[32], name[16] = "fuzz_conn";

	if (f->stopping && c->fd == -1)
		return;
	if (c->fd == -1)
		client_connect(f, i, k & 0x80);
	snprintf(id, sizeof(id), FUZZ_NOW_SESSION "%u", (k >> 3) % 4u);
	req.id = (struct mp_bytes){(const uint8_t *)id, strlen(id)};
	switch (k % 8) {
	case 0:
		req.op = CODEC_OP_HELLO;
		req.version = CODEC_PROTOCOL_VERSION;
		/* A process identity after a NUL (PROTOCOL.md, HELLO): over TCP, what tells the
		 * processes of a host apart at --max-connections. */
		req.client_name = (struct mp_bytes){(const uint8_t *)name, 9};
		if ((k >> 3) % 4u != 0) {
			name[10] = (char)('0' + (k >> 3) % 4u);
			req.client_name.len = 11;
		}
		req.id = (struct mp_bytes){0};
		break;
	case 1:
		b = take_u8(in);
		req.op = CODEC_OP_PING;
		req.id = (struct mp_bytes){0};
		req.ping_payload = b > 0;
		req.data = (struct mp_bytes){payload, ((size_t)b * 64) % (f->max_frame - 64)};
		break;
	case 2:
		b = take_u8(in);
		req.op = CODEC_OP_SET;
		req.data = (struct mp_bytes){payload, ((size_t)b * 40) % (f->max_frame - 64)};
		req.ttl_ms = 60000;
		break;
	case 3:
		req.op = CODEC_OP_GET;
		break;
	case 4:
		b = take_u8(in);
		req.op = CODEC_OP_FLASH_PUSH;
		req.flash_type = (struct mp_bytes){(const uint8_t *)"info", 4};
		req.flash_msg = (struct mp_bytes){payload, ((size_t)b * 8) % (f->max_frame / 4)};
		req.ttl_ms = 60000;
		break;
	case 5:
		req.op = CODEC_OP_FLASH_POP;
		req.flash_all = true;
		break;
	case 6:
		req.op = CODEC_OP_LIST;
		req.id = (struct mp_bytes){0};
		req.limit = 1 + k % 16u;
		break;
	default:
		if ((k & 0x70) != 0x70) {
			queue_raw(c, in, k & 8);
			return;
		}
		/* RETIRE of its own connection is BAD_REQUEST by design (it ends the connection);
		 * of another's, that connection closes at the flush with what it had not sent. */
		target = &f->cl[take_u8(in) % N_CLIENTS];
		req.op = CODEC_OP_RETIRE;
		req.id = (struct mp_bytes){0};
		req.retire_key = (struct mp_bytes){target->server_key, sizeof(target->server_key)};
		queue_request(f, c, &req, false);
		c->expect_bad_ok[c->n_expect - 1] = target == c;
		return;
	}
	queue_request(f, c, &req, req.op == CODEC_OP_HELLO && (k & 0x40));
}

/* Write up to ${want} bytes of ${c}'s outbox, what its socket takes of them. */
static void send_upto(struct client *c, size_t want)
{
	size_t left;
	ssize_t put;

	seal_queued(c);
	left = c->outbox.len - c->sent;
	if (c->fd == -1 || c->shut || left == 0)
		return;
	if (want > left)
		want = left;
	put = send(c->fd, c->outbox.data + c->sent, want, MSG_NOSIGNAL);
	if (put > 0) {
		c->sent += (size_t)put;
		c->sent_total += (size_t)put;
	}
	if (c->sent == c->outbox.len) {
		buf_reset(&c->outbox);
		c->sent = 0;
	}
}

/* A status after which the server says nothing more on the connection. */
static bool ends_connection(uint32_t status)
{
	return status == CODEC_BAD_REQUEST || status == CODEC_TOO_LARGE ||
	       status == CODEC_NOT_READY || status == CODEC_BUSY || status == CODEC_SHUTTING_DOWN ||
	       status == CODEC_AUTH_FAILED || status == CODEC_BAD_VERSION;
}

/* The reply to ${c}'s sealed HELLO: the server's key and proof finish the exchange. */
static void finish_exchange(struct client *c, const struct codec_reply *rep)
{
	uint8_t s_pk[SEAL_KEY_BYTES], s_proof[SEAL_PROOF_BYTES];
	struct reply_hello hello;
	const char *why;

	if (rep->status != CODEC_OK) {
		c->refused_kx = true;
		return;
	}
	check(reply_hello(&rep->result, &hello, &why) == SESSD_OK);
	check(hello.auth && hello.has_kx);
	check(reply_hello_kx(&hello.kx, s_pk, s_proof) == SESSD_OK);
	check(seal_client_finish(c->seal, s_pk, s_proof) == 0);
	memcpy(c->server_key, s_pk, sizeof(c->server_key));
	c->sealed = true;
}

static void check_reply(struct fuzz *f, struct client *c, const uint8_t *body, size_t len)
{
	struct codec_reply rep;
	uint64_t want;

	check(!c->ended);
	check(len > 0 && len <= f->max_frame);
	check(codec_decode_reply(body, len, &rep) == 0);
	check(rep.status <= CODEC_STATUS_MAX);
	f->replies++;
	if (getenv("FUZZ_CONN_DEBUG") != NULL)
		fprintf(stderr, "reply id %llu status %u (%zu bytes)\n",
		        (unsigned long long)rep.request_id, rep.status, len);
	/* The connection's last word, not a request's: SHUTTING_DOWN and BUSY, or a frame
	 * refused before its body was read (TOO_LARGE, or BAD_REQUEST for a length of 0). */
	if (rep.request_id == 0 && ends_connection(rep.status)) {
		/* A frame refused by its header: only a RAW can have a length of 0. */
		check(rep.status != CODEC_BAD_REQUEST || c->sent_raw);
		c->ended = true;
		return;
	}
	if (ends_connection(rep.status))
		c->ended = true;
	if (c->unchecked)
		return;
	check(c->expect_head < c->n_expect);
	/* Not before the request was wholly sent. */
	check(c->expect_end[c->expect_head] <= c->sent_total);
	want = c->expect_id[c->expect_head];
	check(rep.status != CODEC_BAD_REQUEST || c->expect_bad_ok[c->expect_head]);
	if (c->expect_lies[c->expect_head])
		c->unchecked = true;
	c->expect_head++;
	if (want != ID_ANY)
		check(rep.request_id == want);
	if (c->seal != NULL && !c->sealed && !c->refused_kx)
		finish_exchange(c, &rep);
}

/* Check each whole reply in ${c}'s inbox. */
static void take_frames(struct fuzz *f, struct client *c)
{
	size_t at = 0, n;

	while (c->inbox.len - at >= CODEC_HEADER_BYTES) {
		n = codec_frame_length(c->inbox.data + at);
		check(n > 0 && n <= f->max_frame);
		if (c->inbox.len - at - CODEC_HEADER_BYTES < n)
			break;
		check_reply(f, c, c->inbox.data + at + CODEC_HEADER_BYTES, n);
		at += CODEC_HEADER_BYTES + n;
	}
	buf_consume(&c->inbox, at);
}

/*
 * The replies in what ${c} read: plain frames up to the reply that finishes a sealed HELLO's
 * exchange, records after it, each of which must open (the server seals nothing it cannot).
 */
static void take_wire(struct fuzz *f, struct client *c)
{
	size_t at = 0, n, size;

	for (;;) {
		if (c->sealed) {
			if (c->records_in.len - at < SEAL_HEADER_BYTES)
				break;
			size = seal_record_size(c->records_in.data + at);
			check(size > SEAL_OVERHEAD);
			if (c->records_in.len - at < size)
				break;
			check(buf_reserve(&c->inbox, size - SEAL_OVERHEAD) == 0);
			check(seal_open(c->seal, c->records_in.data + at, size,
			                c->inbox.data + c->inbox.len) == 0);
			c->inbox.len += size - SEAL_OVERHEAD;
			at += size;
		} else {
			/* Plain: one frame at a time, as a sealed HELLO's reply may end it. */
			if (c->records_in.len - at < CODEC_HEADER_BYTES)
				break;
			n = codec_frame_length(c->records_in.data + at);
			check(n > 0 && n <= f->max_frame);
			if (c->records_in.len - at - CODEC_HEADER_BYTES < n)
				break;
			check(buf_append(&c->inbox, c->records_in.data + at,
			                 CODEC_HEADER_BYTES + n) == 0);
			at += CODEC_HEADER_BYTES + n;
		}
		take_frames(f, c);
	}
	buf_consume(&c->records_in, at);
}

/* Read up to ${most} bytes; returns what was read, 0 at the end of the stream, -1 for none. */
static ssize_t client_read(struct fuzz *f, struct client *c, size_t most)
{
	uint8_t chunk[16384];
	ssize_t got;

	if (most > sizeof(chunk))
		most = sizeof(chunk);
	got = recv(c->fd, chunk, most, 0);
	if (got == 0) {
		if (getenv("FUZZ_CONN_DEBUG") != NULL)
			fprintf(stderr, "client %zu: the end of the stream\n", (size_t)(c - f->cl));
		c->ended = true;
		return 0;
	}
	if (got < 0) {
		check(errno == EAGAIN || errno == ECONNRESET);
		if (errno == ECONNRESET)
			c->ended = true;
		return -1;
	}
	check(buf_append(&c->records_in, chunk, (size_t)got) == 0);
	take_wire(f, c);
	return got;
}

struct timers {
	struct event *armed[MAX_TIMERS];
	struct timeval when[MAX_TIMERS];
	size_t n;
};

/* Collects the armed timers: the connections' (the harness adds no other event without a
 * descriptor). */
static int collect_timer(const struct event_base *base, const struct event *ev, void *arg)
{
	struct timers *t = arg;

	(void)base;
	if (event_get_fd(ev) != -1 || t->n == MAX_TIMERS ||
	    !event_pending(ev, EV_TIMEOUT, &t->when[t->n]))
		return 0;
	t->armed[t->n++] = (struct event *)(uintptr_t)ev;
	return 0;
}

/*
 * TIMER: fire the (${pick} mod n)-th armed timer, soonest first (the order they would fire
 * in; a timer's time is taken when it is armed, so the order does not depend on how fast
 * the input runs), or with ${pick} bit 7 every one, and run a turn. The foreach may not
 * change events, so they are activated after it.
 */
static void fire_timers(struct fuzz *f, uint8_t pick)
{
	struct timers t = {.n = 0};

	check(event_base_foreach_event(f->base, collect_timer, &t) == 0);
	if (t.n > 0) {
		size_t chosen = pick % t.n;

		for (size_t k = 0; k < t.n; k++) {
			size_t before = 0;

			for (size_t j = 0; j < t.n; j++)
				if (timercmp(&t.when[j], &t.when[k], <))
					before++;
			if ((pick & 0x80) || before == chosen)
				event_active(t.armed[k], EV_TIMEOUT, 1);
		}
	}
	turn(f);
}

/* TICK, or with config bit 7 one of its variants (TIMER, FAIL). */
static void run_tick(struct fuzz *f, unsigned variant, struct input *in)
{
	uint8_t b;

	switch (f->variants ? variant % 3 : 0) {
	case 0:
		mono_skew_ms += 1000;
		in_server = true;
		conn_set_tick(&f->set);
		in_server = false;
		break;
	case 1:
		fire_timers(f, take_u8(in));
		break;
	default:
		b = take_u8(in);
		fail_countdown = b % 64u + 1;
		fail_burst = b & 0x80;
		break;
	}
}

static void run_op(struct fuzz *f, struct input *in)
{
	uint8_t a = take_u8(in);
	unsigned i = (unsigned)(a >> 3) % N_CLIENTS, variant = (unsigned)(a >> 3) / N_CLIENTS;
	struct client *c = &f->cl[i];

	switch (a % 8) {
	case 0:
		op_frame(f, i, in);
		break;
	case 1:
		send_upto(c, (size_t)take_be(in, 2) + 1);
		break;
	case 2:
		turn(f);
		break;
	case 3: {
		size_t most = 64 * ((size_t)take_u8(in) + 1);

		if (c->fd != -1 && !c->ended)
			client_read(f, c, most);
		break;
	}
	case 4:
		if (c->fd != -1 && !c->shut) {
			/* Over TCP the server may have reset the connection already. */
			check(shutdown(c->fd, SHUT_WR) == 0 || (c->tcp && errno == ENOTCONN));
			c->shut = true;
		}
		break;
	case 5:
		client_close(c, variant % 2);
		break;
	case 6:
		run_tick(f, variant, in);
		break;
	default:
		if (!f->stopping) {
			f->stopping = true;
			in_server = true;
			dispatch_stop_deferring(f->d);
			conn_set_retry(&f->set, SIZE_MAX);
			conn_set_shutdown(&f->set);
			in_server = false;
		}
		break;
	}
}

/* Whether ${s} has work left for its next turn, whatever the sockets do. */
static bool set_busy(struct conn_set *s)
{
	return conn_set_has_pending(s) || conn_set_has_held(s) || conn_set_has_unread(s) ||
	       conn_set_has_waiting(s);
}

/* Whether ${c} still waits for a reply the server owes it. */
static bool owed(const struct client *c)
{
	if (c->fd == -1 || c->ended || c->unchecked)
		return false;
	if (c->expect_head == c->n_expect)
		return false;
	/* Requests behind a lying RAW may be swallowed by it. */
	for (size_t k = 0; k <= c->expect_head && k < c->n_expect; k++)
		if (c->expect_lies[k])
			return false;
	return c->expect_end[c->expect_head] <= c->sent_total;
}

/*
 * Whether a TCP client of ${f} may yet see bytes move that the kernels hold: its own kernel
 * holds bytes it wrote that the server's has not acknowledged, or a reply is owed to it, which
 * the server's kernel may hold. Over the kernel's least buffers (FRAME's k bit 7) a frame
 * larger than the receiving end's window goes in pieces, and once that end has read one, the
 * window often opens again only at the sender's zero-window probe, 200 ms on: the end's
 * turns, a few microseconds each, found nothing moving and stopped with a 4000-byte SET still
 * in the client's kernel (unanswered, or its connection still open at the end's check), or a
 * GET's 4006-byte reply in the server's. Small segments (SMALL_TCP_SEGMENT) keep it short,
 * but loopback's delivery still takes longer than those turns.
 */
static bool tcp_may_move(const struct fuzz *f)
{
	int queued;

	for (unsigned i = 0; i < N_CLIENTS; i++) {
		const struct client *c = &f->cl[i];

		if (c->fd == -1 || !c->tcp)
			continue;
		if (owed(c) || (ioctl(c->fd, SIOCOUTQ, &queued) == 0 && queued > 0))
			return true;
	}
	return false;
}

/*
 * Each open client sends the rest of its outbox and reads until nothing is owed to it. A
 * shut-down client's requests sent are answered too (PROTOCOL.md: what a client sent before
 * it shut its side down is answered).
 */
static void drain(struct fuzz *f)
{
	unsigned idle = 0, waits = 0;
	size_t moved, before;

	/* Until nothing is owed, or nothing moves for a few turns with nothing left to the set's
	 * next turn (a frame that lies about its length waits for good, and costs no more). */
	for (unsigned t = 0; t < MAX_DRAIN_TURNS && idle < DRAIN_IDLE_TURNS; t++) {
		bool waiting = false;

		moved = 0;
		for (unsigned i = 0; i < N_CLIENTS; i++) {
			struct client *c = &f->cl[i];

			if (c->fd == -1 || c->ended)
				continue;
			before = c->sent_total;
			if (!c->shut)
				send_upto(c, SIZE_MAX);
			moved += c->sent_total - before;
			while (client_read(f, c, SIZE_MAX) > 0)
				moved++;
			waiting = waiting || owed(c);
		}
		turn(f);
		if (!waiting)
			break;
		if (moved > 0 || set_busy(&f->set)) {
			idle = 0;
		} else if (waits < DRAIN_WAITS && tcp_may_move(f)) {
			/* The set has nothing to do: the wait is the kernels' (tcp_may_move), not a
			 * turn of the set's. */
			waits++;
			t--;
			usleep(DRAIN_WAIT_US);
		} else {
			idle++;
		}
	}
	for (unsigned i = 0; i < N_CLIENTS; i++) {
		if (owed(&f->cl[i]))
			fprintf(stderr, "client %u owed request %zu of %zu (id %llu), sent %zu\n",
			        i, f->cl[i].expect_head, f->cl[i].n_expect,
			        (unsigned long long)f->cl[i].expect_id[f->cl[i].expect_head],
			        f->cl[i].sent_total);
		check(!owed(&f->cl[i]));
	}
}

static void init_once(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	char dir[] = "/tmp/fuzz-conn-XXXXXX";
	socklen_t len = sizeof(listen_addr);

	/* Before libevent allocates anything. */
	event_set_mem_functions(__wrap_malloc, __wrap_realloc, free_for_libevent);
	check(sodium_init() >= 0);
	signal(SIGPIPE, SIG_IGN);
	/* FUZZ_CONN_DEBUG shows sessd's log too. */
	log_set_level(getenv("FUZZ_CONN_DEBUG") != NULL ? LOG_DEBUG
	                                                : (enum log_level)(LOG_ERROR + 1));
	server_auth = fuzz_server_auth(secret, dir, psk);
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	check(listen_fd != -1);
	listen_addr.sin_family = AF_INET;
	listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	check(bind(listen_fd, (const struct sockaddr *)&listen_addr, sizeof(listen_addr)) == 0);
	check(getsockname(listen_fd, (struct sockaddr *)&listen_addr, &len) == 0);
	check(listen(listen_fd, 16) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz f;
	struct input in = {data, size};
	struct store_config scfg = {0};
	struct dispatch_config dcfg = {0};
	struct conn_config ccfg = {0};
	uint8_t cfg;
	unsigned ops = 0;

	init_once();
	memset(&f, 0, sizeof(f));
	cfg = take_u8(&in);
	f.max_frame = cfg & 1 ? 8192 : 4096;
	f.sealing = cfg & 4;
	f.tcp = cfg & 8;
	f.max_connections = cfg & 16 ? (cfg & 64 ? 1 : 2) : 64;
	f.pool = cfg & 32;
	f.variants = cfg & 128;
	fail_countdown = 0;
	fail_burst = false;
	allocations_failed = 0;
	mono_skew_ms = 0;
	fresh_keys = 0;
	f.base = event_base_new();
	check(f.base != NULL);
	scfg.max_flash_bytes = f.max_frame / 2;
	f.st = store_new(&scfg);
	check(f.st != NULL);
	dcfg.max_frame = f.max_frame;
	dcfg.max_connections = f.max_connections;
	dcfg.auth = f.sealing ? server_auth : NULL;
	dcfg.retire = on_retire;
	dcfg.retire_arg = &f;
	f.d = dispatch_new(&dcfg, f.st, NULL, &f.stats);
	check(f.d != NULL);
	ccfg.max_frame = f.max_frame;
	ccfg.output_high_bytes = cfg & 2 ? 8 * 1024 : 1024 * 1024;
	ccfg.turn_output_bytes = cfg & 2 ? 4 * 1024 : 256 * 1024;
	ccfg.max_client_bytes = cfg & 2 ? 3 * (size_t)f.max_frame : 64 * 1024 * 1024;
	ccfg.close_timeout_s = 60;
	ccfg.hello_timeout_s = 60;
	ccfg.max_connections = f.max_connections;
	ccfg.on_frame = on_frame;
	ccfg.on_prefetch = on_prefetch;
	ccfg.on_reply_bound = on_reply_bound;
	ccfg.on_reply_only = on_reply_only;
	ccfg.on_takes_for_client = on_takes_for_client;
	ccfg.on_closed = on_closed;
	ccfg.arg = &f;
	conn_set_init(&f.set, &ccfg);
	for (unsigned i = 0; i < N_CLIENTS; i++) {
		f.cl[i].fd = -1;
		buf_init(&f.cl[i].outbox);
		buf_init(&f.cl[i].inbox);
		buf_init(&f.cl[i].plain_out);
		buf_init(&f.cl[i].records_in);
	}

	while (in.left > 0 && ops++ < MAX_OPS)
		run_op(&f, &in);
	fail_countdown = 0;
	fail_burst = false;
	drain(&f);
	for (unsigned i = 0; i < N_CLIENTS; i++)
		client_reset(&f.cl[i]);
	/* A closed TCP client's kernel still sends what it held, and its end after it
	 * (tcp_may_move): after the first few turns, the set having nothing to do, a wait. */
	for (unsigned t = 0; t < MAX_DRAIN_TURNS + DRAIN_WAITS && f.set.count > 0; t++) {
		if (t >= DRAIN_IDLE_TURNS && !set_busy(&f.set))
			usleep(DRAIN_WAIT_US);
		turn(&f);
	}
	if (getenv("FUZZ_CONN_DEBUG") != NULL)
		fprintf(
		    stderr,
		    "replies %u, connections closed %u, left %zu, bytes held %zu, on trial %zu, "
		    "allocations failed %u\n",
		    f.replies, f.closed, f.set.count, f.set.client_bytes, f.set.trials,
		    allocations_failed);
	check(f.set.count == 0);
	check(f.set.client_bytes == 0);
	check(f.set.trials == 0);

	conn_set_finish(&f.set);
	for (unsigned i = 0; i < N_CLIENTS; i++) {
		buf_finish(&f.cl[i].outbox);
		buf_finish(&f.cl[i].inbox);
		buf_finish(&f.cl[i].plain_out);
		buf_finish(&f.cl[i].records_in);
	}
	dispatch_free(f.d);
	store_free(f.st);
	event_base_free(f.base);
	return 0;
}
