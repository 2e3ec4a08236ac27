/*
 * libFuzzer entry point for request semantics across a sequence of requests: the bytes pick
 * requests, built with the codec's encoders, that run through the real dispatch
 * (daemon/dispatch.c) against a real store (store.c, flash.c, expiry.c), plain, without
 * persistence. A model of the store, kept beside it, says what each reply must be.
 *
 * An input is one config byte, then operations. Config: bit 0 puts a 48 KiB max_bytes on the
 * store (writes may then be NO_MEMORY, which the model takes as "nothing changed"); bit 1
 * makes max_frame 8192 instead of 4096 (session data is at most max_frame - 16 bytes, a
 * session's flashes at most max_frame / 2, each message counting type + msg + 5); bit 2 runs
 * the requests as a client's pipelined frames reach dispatch in the server: each through
 * dispatch_prefetch, dispatch_reply_bound, dispatch_reply_only and dispatch_takes_for_client,
 * then dispatch_frame_hinted, many to a loop turn (a new turn at ADVANCE, EXPIRE and every
 * 256 requests), so that the turn's budget for heavy requests runs out. A request put off
 * (DISPATCH_LATER) must have changed nothing, and is handed again at the next turns, as
 * dispatch_retries says, until it runs.
 *
 * Each operation is a byte a (a mod 16 picks it; a's high bits are flags) and a byte k that
 * picks the session: namespace k mod 4 (mod 3 used: "default", "shop", 64 bytes of 'n'),
 * id (k >> 2) mod 4 ("a", "id-2", two raw bytes 00 ff, 128 bytes of 'i'), flash type
 * (k >> 4) mod 4 (mod 3: "info", "error", 64 bytes of 't'), the id sent as bin (k bit 6),
 * the message as bin (k bit 7). Then, by operation:
 *    0 GET (a bit 4: LOAD)       1 SET len fill ttl
 *    2 TOUCH ttl (a bit 4: TOUCH_IF; a bit 5: with the right tag)
 *    3 DESTROY (a bit 4: DESTROY_IF_FLASH of the type, its message: a bit 5, the oldest
 *      message of that type in the model, or the empty one when it holds none, and with a
 *      bit 6 that message one byte short, or one byte 0 longer when it is empty; a bit 6
 *      alone, the oldest message of the next type, k's type + 1 mod 3; neither: len fill)
 *                               4 SET_IF len fill ttl (a bit 4: the right tag)
 *    5 FLASH_PUSH len fill ttl  6 FLASH_PUSH_EXISTING len fill ttl
 *    7 FLASH_POP (a bit 4: every type)   8 COUNT (a bit 4: TTL of the session)
 *    9 LIST limit (the whole scan)
 *   10 CLEAR                   11 STATS (a bit 4: the whole server)
 *   12 NAMESPACES limit (as LIST's)                  13 ADVANCE t: the clock moves on
 *   14 EXPIRE budget: store_expire, then dispatch_log_due, as the server's timer runs them
 *      (the warnings held back and due, the NO_MEMORY line by namespace's next step); at
 *      the end of the input, dispatch_log_pending, as the server's stop calls it
 *   15 RAW n bytes: a frame body as it is, unless it decodes as a request other than PING
 *      (which would change the store behind the model's back); a new connection and HELLO
 *      after one that closes
 * limit (LIST, NAMESPACES): b, or 1000 for 0. len: b < 200 is b bytes, else
 * 200 + (b - 200) * 75; the bytes are (fill + 131 i) mod 256.
 * ttl: one of 1, 2, 10, 100 ms, 1 s, 1 min, 1 day, 10 years (b mod 8).
 * ADVANCE t: t < 128 is t ms, t < 200 is (t - 127) s, else (t - 199) min.
 *
 * Checks (abort on failure): every reply is one whole frame that decodes, carries the
 * request's id and a status the operation may answer; GET returns what the last write left
 * unless the session expired, was destroyed or cleared; SET_IF and TOUCH_IF hold exactly
 * when the session has data and the tag is right; DESTROY_IF_FLASH removes exactly when the
 * session is live and the oldest message of the type has the bytes sent (NOT_FOUND without a
 * session, CONFLICT otherwise, changing nothing); pushes count their queue and pops return each
 * message pushed, in order, exactly once, then the queue is empty; COUNT, TTL, LIST, NAMESPACES
 * and STATS agree with the model (STATS exactly once expiry has caught up); a session's expiry is
 * as PROTOCOL.md says (SET and TOUCH (TOUCH_IF) set it, a push only extends it).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "codec.h"
#include "dispatch.h"
#include "fuzz_input.h"
#include "log.h"
#include "mp.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_NS    3
#define N_IDS   4
#define N_TYPES 3
/* The most operations one input runs: keeps each input's time bounded. */
#define MAX_OPS 2000

static uint8_t long_ns[64], long_id[128], long_type[64];
static const uint8_t bin_id[2] = {0x00, 0xff};

static const uint64_t ttl_table[8] = {1, 2, 10, 100, 1000, 60000, 86400000ull, CODEC_MAX_TTL_MS};

static struct mp_bytes ns_of(unsigned i)
{
	switch (i) {
	case 0:
		return (struct mp_bytes){(const uint8_t *)"default", 7};
	case 1:
		return (struct mp_bytes){(const uint8_t *)"shop", 4};
	default:
		return (struct mp_bytes){long_ns, sizeof long_ns};
	}
}

static struct mp_bytes id_of(unsigned i)
{
	switch (i) {
	case 0:
		return (struct mp_bytes){(const uint8_t *)"a", 1};
	case 1:
		return (struct mp_bytes){(const uint8_t *)"id-2", 4};
	case 2:
		return (struct mp_bytes){bin_id, sizeof bin_id};
	default:
		return (struct mp_bytes){long_id, sizeof long_id};
	}
}

static struct mp_bytes type_of(unsigned i)
{
	switch (i) {
	case 0:
		return (struct mp_bytes){(const uint8_t *)"info", 4};
	case 1:
		return (struct mp_bytes){(const uint8_t *)"error", 5};
	default:
		return (struct mp_bytes){long_type, sizeof long_type};
	}
}

/* The model: what the store must hold. */
struct model_msg {
	unsigned type;
	bool is_bin;
	uint8_t *bytes;
	size_t len;
};

struct model_session {
	bool live;
	bool has_data;
	uint8_t *data;
	size_t len;
	uint64_t expires_at_ms;
	/* every queued message, oldest first; a queue's order is its messages' order here */
	struct model_msg *msgs;
	size_t n_msgs;
	size_t flash_bytes;
};

struct fuzz {
	struct store *st;
	struct dispatch *d;
	struct dispatch_peer peer;
	struct buf out;
	struct buf frame;
	uint64_t now_ms;
	uint64_t next_request_id;
	uint32_t max_frame;
	bool memory_limited;
	bool pipelined;
	unsigned turn_requests; /* pipelined: requests in this loop turn so far */
	struct model_session m[N_NS][N_IDS];
};

static void session_clear(struct model_session *s)
{
	for (size_t i = 0; i < s->n_msgs; i++)
		free(s->msgs[i].bytes);
	free(s->msgs);
	free(s->data);
	memset(s, 0, sizeof(*s));
}

/* Sessions at or past their expiry are absent for every operation (lazy expiry). */
static void model_expire(struct fuzz *f)
{
	for (unsigned n = 0; n < N_NS; n++)
		for (unsigned i = 0; i < N_IDS; i++)
			if (f->m[n][i].live && f->m[n][i].expires_at_ms <= f->now_ms)
				session_clear(&f->m[n][i]);
}

static uint8_t *fill_bytes(size_t len, uint8_t fill)
{
	uint8_t *p = malloc(len ? len : 1);

	check(p != NULL);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(fill + 131 * i);
	return p;
}

static size_t len_of(uint8_t b)
{
	return b < 200 ? b : 200 + (size_t)(b - 200) * 75;
}

/* LIST and NAMESPACES: 1 to 255, or the most a page may ask for */
static uint32_t limit_of(uint8_t b)
{
	return b == 0 ? CODEC_LIST_MAX_LIMIT : b;
}

static uint64_t expires_at(const struct fuzz *f, uint64_t ttl_ms)
{
	return f->now_ms + ttl_ms;
}

static void hello(struct fuzz *f);

/* The most loop turns a request put off may wait: the budget is whole again at each. */
#define MAX_RETRY_TURNS 64
/* Pipelined: the most requests a loop turn runs before the next begins. */
#define TURN_REQUESTS 256

/* A new loop turn, as server_after_turn begins it. */
static void new_turn(struct fuzz *f)
{
	dispatch_turn_begins(f->d);
	f->turn_requests = 0;
}

/*
 * Hand ${body} to dispatch as conn.c hands a frame of a client's pipelined input: its hints
 * first, then dispatch_frame_hinted, again at later turns while it is put off. Appends the
 * reply to f->out; returns the verdict.
 */
static enum dispatch_verdict send_pipelined(struct fuzz *f, const uint8_t *body, size_t len)
{
	struct dispatch_frame_ref ref = {.body = body, .len = len};
	enum dispatch_verdict v;
	unsigned turns = 0;
	bool reply_only, takes;

	if (f->turn_requests++ >= TURN_REQUESTS)
		new_turn(f);
	/* conn.c asks for hints only past HELLO; before, the frame is decoded where it runs */
	if (f->peer.ready) {
		dispatch_prefetch(f->d, &ref, 1);
		(void)dispatch_reply_bound(f->d, &ref, f->now_ms);
		reply_only = dispatch_reply_only(f->d, &ref);
		takes = dispatch_takes_for_client(f->d, &ref);
		/* what is taken for the client is a reply's */
		check(!takes || reply_only);
	}
	v = dispatch_frame_hinted(f->d, &f->peer, &ref, f->now_ms, &f->out);
	while (v == DISPATCH_LATER) {
		size_t most;

		/* put off: nothing written, and the next turn must come without waiting for I/O
		 * (or for the expiry, which the fuzzer's clock drives) */
		check(f->out.len == 0);
		check(dispatch_wants_next_turn(f->d) || dispatch_waits_for_expiry(f->d));
		check(++turns <= MAX_RETRY_TURNS);
		new_turn(f);
		most = dispatch_retries(f->d, f->now_ms);
		if (most == 0) {
			/* only a COUNT or CLEAR waits for the expiry; the server's timer runs it */
			check(dispatch_waits_for_expiry(f->d));
			store_expire(f->st, f->now_ms, SIZE_MAX);
			continue;
		}
		v = dispatch_frame_hinted(f->d, &f->peer, &ref, f->now_ms, &f->out);
		dispatch_retried(f->d, 1, v != DISPATCH_LATER, v == DISPATCH_LATER);
	}
	return v;
}

/*
 * Send ${req} through dispatch and decode its reply into ${rep} (borrowing f->out). Returns
 * the verdict.
 */
static enum dispatch_verdict send_frame(struct fuzz *f, const uint8_t *body, size_t len,
                                        struct codec_reply *rep)
{
	enum dispatch_verdict v;

	buf_reset(&f->out);
	if (f->pipelined) {
		v = send_pipelined(f, body, len);
	} else {
		/* Each request its own loop turn: a LIST page, the first of its turn, is never put
		 * off for the turn's budget of heavy requests. */
		dispatch_turn_begins(f->d);
		v = dispatch_frame(f->d, &f->peer, body, len, f->now_ms, &f->out);
	}
	check(v == DISPATCH_KEEP || v == DISPATCH_CLOSE);
	check(f->out.len > CODEC_HEADER_BYTES);
	check(codec_frame_length(f->out.data) == f->out.len - CODEC_HEADER_BYTES);
	check(codec_decode_reply(f->out.data + CODEC_HEADER_BYTES, f->out.len - CODEC_HEADER_BYTES,
	                         rep) == 0);
	check(rep->status <= CODEC_STATUS_MAX);
	if (rep->status != CODEC_OK && rep->status != CODEC_NOT_FOUND)
		check(rep->message.ptr != NULL);
	return v;
}

static void send_request(struct fuzz *f, struct codec_request *req, struct codec_reply *rep)
{
	req->request_id = f->next_request_id++;
	buf_reset(&f->frame);
	check(codec_encode_request(&f->frame, req) == 0);
	check(send_frame(f, f->frame.data + CODEC_HEADER_BYTES, f->frame.len - CODEC_HEADER_BYTES,
	                 rep) == DISPATCH_KEEP);
	check(rep->request_id == req->request_id);
}

static void hello(struct fuzz *f)
{
	struct codec_request req = {.op = CODEC_OP_HELLO, .version = CODEC_PROTOCOL_VERSION};
	struct codec_reply rep;

	memset(&f->peer, 0, sizeof(f->peer));
	f->peer.local = true;
	req.client_name = (struct mp_bytes){(const uint8_t *)"fuzz_dispatch", 13};
	send_request(f, &req, &rep);
	check(rep.status == CODEC_OK && f->peer.ready);
}

static void reader_of(const struct codec_reply *rep, struct mp_reader *r)
{
	mp_reader_init(r, rep->result.ptr, rep->result.len);
}

static void expect_nil(const struct codec_reply *rep)
{
	struct mp_reader r;

	reader_of(rep, &r);
	check(mp_read_nil(&r) == 0 && mp_reader_left(&r) == 0);
}

static uint64_t expect_uint(const struct codec_reply *rep)
{
	struct mp_reader r;
	uint64_t v = 0;

	reader_of(rep, &r);
	check(mp_read_uint(&r, &v) == 0 && mp_reader_left(&r) == 0);
	return v;
}

static size_t live_in(const struct fuzz *f, unsigned n)
{
	size_t c = 0;

	for (unsigned i = 0; i < N_IDS; i++)
		c += f->m[n][i].live;
	return c;
}

static size_t msgs_in(const struct fuzz *f, unsigned n)
{
	size_t c = 0;

	for (unsigned i = 0; i < N_IDS; i++)
		c += f->m[n][i].n_msgs;
	return c;
}

/* Which model id an id from the store is; -1 for none. */
static int id_index(const uint8_t *id, size_t len)
{
	for (unsigned i = 0; i < N_IDS; i++) {
		struct mp_bytes b = id_of(i);

		if (b.len == len && memcmp(b.ptr, id, len) == 0)
			return (int)i;
	}
	return -1;
}

static int ns_index(const uint8_t *ns, size_t len)
{
	for (unsigned i = 0; i < N_NS; i++) {
		struct mp_bytes b = ns_of(i);

		if (b.len == len && memcmp(b.ptr, ns, len) == 0)
			return (int)i;
	}
	return -1;
}

/* GET, or LOAD (${load}): the data, and LOAD also the number of messages queued. */
static void op_get(struct fuzz *f, struct codec_request *req, struct model_session *s, bool load)
{
	struct codec_reply rep;
	struct mp_reader r;
	struct mp_bytes got;
	uint32_t n;
	uint64_t flashes;
	size_t max_load = f->max_frame - CODEC_REPLY_DATA_OVERHEAD - CODEC_LOAD_EXTRA_OVERHEAD;

	req->op = load ? CODEC_OP_LOAD : CODEC_OP_GET;
	send_request(f, req, &rep);
	if (!s->live || !s->has_data) {
		check(rep.status == CODEC_NOT_FOUND);
		return;
	}
	if (load && s->len > max_load) {
		check(rep.status == CODEC_LIMIT);
		return;
	}
	check(rep.status == CODEC_OK);
	reader_of(&rep, &r);
	if (load)
		check(mp_read_array(&r, &n) == 0 && n == 2);
	check(mp_read_bin(&r, &got) == 0);
	if (load)
		check(mp_read_uint(&r, &flashes) == 0 && flashes == s->n_msgs);
	check(mp_reader_left(&r) == 0);
	check(got.len == s->len && (s->len == 0 || memcmp(got.ptr, s->data, s->len) == 0));
}

/* A PING is answered with nil, or with its payload; the reply no longer than the request but
 * for a short str payload's coming back as bin (one byte more). */
static void check_ping_reply(struct fuzz *f, const struct codec_request *req, size_t request_len,
                             const struct codec_reply *rep)
{
	struct mp_reader r;
	struct mp_bytes got;

	check(rep->status == CODEC_OK && rep->request_id == req->request_id);
	check(f->out.len - CODEC_HEADER_BYTES <= request_len + 1);
	reader_of(rep, &r);
	if (!req->ping_payload) {
		check(mp_read_nil(&r) == 0);
	} else {
		check(mp_read_bin(&r, &got) == 0);
		check(got.len == req->data.len &&
		      (got.len == 0 || memcmp(got.ptr, req->data.ptr, got.len) == 0));
	}
	check(mp_reader_left(&r) == 0);
}

/* The tag of ${s}'s data (of empty data when it has none), one bit off unless ${right_tag}. */
static void model_tag(const struct model_session *s, bool right_tag, uint8_t tag[CODEC_TAG_BYTES])
{
	if (s->live && s->has_data)
		codec_data_tag(s->data, s->len, tag);
	else
		codec_data_tag("", 0, tag);
	if (!right_tag)
		tag[0] ^= 1;
}

static void op_set(struct fuzz *f, struct codec_request *req, struct model_session *s,
                   bool conditional, bool right_tag)
{
	struct codec_reply rep;
	uint8_t tag[CODEC_TAG_BYTES];
	size_t max_data = f->max_frame - CODEC_REPLY_DATA_OVERHEAD;

	req->op = conditional ? CODEC_OP_SET_IF : CODEC_OP_SET;
	if (conditional) {
		model_tag(s, right_tag, tag);
		req->expect = (struct mp_bytes){tag, sizeof tag};
	}
	send_request(f, req, &rep);
	/* SET_IF looks at the session first, then does what SET does */
	if (conditional && !(s->live && s->has_data)) {
		check(rep.status == CODEC_NOT_FOUND);
		return;
	}
	if (conditional && !right_tag) {
		check(rep.status == CODEC_CONFLICT);
		return;
	}
	if (req->data.len > max_data) {
		check(rep.status == CODEC_LIMIT);
		return;
	}
	if (f->memory_limited && rep.status == CODEC_NO_MEMORY)
		return;
	check(rep.status == CODEC_OK);
	expect_nil(&rep);
	free(s->data);
	s->data = fill_bytes(req->data.len, req->data.len ? req->data.ptr[0] : 0);
	memcpy(s->data, req->data.ptr, req->data.len);
	s->len = req->data.len;
	s->has_data = true;
	s->live = true;
	s->expires_at_ms = expires_at(f, req->ttl_ms);
}

static void op_touch_destroy(struct fuzz *f, struct codec_request *req, struct model_session *s,
                             bool destroy)
{
	struct codec_reply rep;

	req->op = destroy ? CODEC_OP_DESTROY : CODEC_OP_TOUCH;
	send_request(f, req, &rep);
	if (!s->live) {
		check(rep.status == CODEC_NOT_FOUND);
		return;
	}
	check(rep.status == CODEC_OK);
	expect_nil(&rep);
	if (destroy)
		session_clear(s);
	else
		s->expires_at_ms = expires_at(f, req->ttl_ms);
}

/* The oldest message of ${type} in ${s}, or NULL when its queue is empty or missing. */
static const struct model_msg *oldest_of(const struct model_session *s, unsigned type)
{
	for (size_t i = 0; i < s->n_msgs; i++)
		if (s->msgs[i].type == type)
			return &s->msgs[i];
	return NULL;
}

/*
 * DESTROY_IF_FLASH (PROTOCOL.md, "Locks on a flash queue"): removes the session only while the
 * oldest message of ${type} has the bytes of req->flash_msg (str and bin alike); NOT_FOUND
 * without a live session, CONFLICT otherwise, and neither changes anything (no expiry moves,
 * no message is popped: the ops after it check both).
 */
static void op_destroy_if_flash(struct fuzz *f, struct codec_request *req, struct model_session *s,
                                unsigned type)
{
	struct codec_reply rep;
	const struct model_msg *oldest = oldest_of(s, type);

	req->op = CODEC_OP_DESTROY_IF_FLASH;
	send_request(f, req, &rep);
	if (!s->live) {
		check(rep.status == CODEC_NOT_FOUND);
		return;
	}
	if (oldest == NULL || oldest->len != req->flash_msg.len ||
	    (oldest->len > 0 && memcmp(oldest->bytes, req->flash_msg.ptr, oldest->len) != 0)) {
		check(rep.status == CODEC_CONFLICT);
		return;
	}
	check(rep.status == CODEC_OK);
	expect_nil(&rep);
	session_clear(s);
}

/* TOUCH_IF: TOUCH, but only over data whose tag it names; never for flashes only. */
static void op_touch_if(struct fuzz *f, struct codec_request *req, struct model_session *s,
                        bool right_tag)
{
	struct codec_reply rep;
	uint8_t tag[CODEC_TAG_BYTES];

	req->op = CODEC_OP_TOUCH_IF;
	model_tag(s, right_tag, tag);
	req->expect = (struct mp_bytes){tag, sizeof tag};
	send_request(f, req, &rep);
	if (!(s->live && s->has_data)) {
		check(rep.status == CODEC_NOT_FOUND);
		return;
	}
	if (!right_tag) {
		check(rep.status == CODEC_CONFLICT);
		return;
	}
	check(rep.status == CODEC_OK);
	expect_nil(&rep);
	s->expires_at_ms = expires_at(f, req->ttl_ms);
}

static void op_push(struct fuzz *f, struct codec_request *req, struct model_session *s,
                    unsigned type, bool existing)
{
	struct codec_reply rep;
	size_t charge = req->flash_type.len + req->flash_msg.len + 5, queued = 0;
	struct model_msg *grown;

	req->op = existing ? CODEC_OP_FLASH_PUSH_EXISTING : CODEC_OP_FLASH_PUSH;
	send_request(f, req, &rep);
	if (existing && !(s->live && s->has_data)) {
		check(rep.status == CODEC_NOT_FOUND);
		return;
	}
	/* the memory limit may be met before the flash limit is looked at */
	if (f->memory_limited && rep.status == CODEC_NO_MEMORY)
		return;
	if (s->flash_bytes + charge > f->max_frame / 2) {
		check(rep.status == CODEC_LIMIT);
		return;
	}
	check(rep.status == CODEC_OK);
	for (size_t i = 0; i < s->n_msgs; i++)
		queued += s->msgs[i].type == type;
	check(expect_uint(&rep) == queued + 1);
	grown = realloc(s->msgs, (s->n_msgs + 1) * sizeof(*grown));
	check(grown != NULL);
	s->msgs = grown;
	s->msgs[s->n_msgs].type = type;
	s->msgs[s->n_msgs].is_bin = req->flash_msg_is_bin;
	s->msgs[s->n_msgs].len = req->flash_msg.len;
	s->msgs[s->n_msgs].bytes = fill_bytes(req->flash_msg.len, 0);
	memcpy(s->msgs[s->n_msgs].bytes, req->flash_msg.ptr, req->flash_msg.len);
	s->n_msgs++;
	s->flash_bytes += charge;
	if (!s->live) {
		s->live = true;
		s->expires_at_ms = expires_at(f, req->ttl_ms);
	} else if (expires_at(f, req->ttl_ms) > s->expires_at_ms) {
		s->expires_at_ms = expires_at(f, req->ttl_ms);
	}
}

/* Read one queue's array from ${r}: exactly the model's messages of ${type}, in order. */
static void expect_queue(struct mp_reader *r, const struct model_session *s, unsigned type)
{
	uint32_t count;
	size_t want = 0;

	check(mp_read_array(r, &count) == 0);
	for (size_t i = 0; i < s->n_msgs; i++) {
		const struct model_msg *m = &s->msgs[i];
		struct mp_bytes got;
		bool is_bin;

		if (m->type != type)
			continue;
		check(want < count);
		check(mp_read_bytes(r, &got, &is_bin) == 0);
		check(is_bin == m->is_bin && got.len == m->len &&
		      (m->len == 0 || memcmp(got.ptr, m->bytes, m->len) == 0));
		want++;
	}
	check(want == count);
}

static void drop_type(struct model_session *s, unsigned type, size_t type_len)
{
	size_t kept = 0;

	for (size_t i = 0; i < s->n_msgs; i++) {
		if (s->msgs[i].type == type) {
			s->flash_bytes -= type_len + s->msgs[i].len + 5;
			free(s->msgs[i].bytes);
		} else {
			s->msgs[kept++] = s->msgs[i];
		}
	}
	s->n_msgs = kept;
}

static void op_pop(struct fuzz *f, struct codec_request *req, struct model_session *s,
                   unsigned type, bool all)
{
	struct codec_reply rep;
	struct mp_reader r;

	req->op = CODEC_OP_FLASH_POP;
	req->flash_all = all;
	if (all)
		req->flash_type = (struct mp_bytes){NULL, 0};
	send_request(f, req, &rep);
	if (!s->live) {
		check(rep.status == CODEC_NOT_FOUND);
		return;
	}
	check(rep.status == CODEC_OK);
	reader_of(&rep, &r);
	if (!all) {
		expect_queue(&r, s, type);
		drop_type(s, type, type_of(type).len);
	} else {
		uint32_t count, want = 0;
		bool seen[N_TYPES] = {false};

		check(mp_read_map(&r, &count) == 0);
		/* queues in the order of their oldest message */
		for (size_t i = 0; i < s->n_msgs; i++) {
			unsigned t = s->msgs[i].type;
			struct mp_bytes name, expect = type_of(t);

			if (seen[t])
				continue;
			seen[t] = true;
			check(want < count);
			check(mp_read_str(&r, &name) == 0);
			check(name.len == expect.len &&
			      memcmp(name.ptr, expect.ptr, name.len) == 0);
			expect_queue(&r, s, t);
			want++;
		}
		check(want == count);
		for (unsigned t = 0; t < N_TYPES; t++)
			drop_type(s, t, type_of(t).len);
		check(s->n_msgs == 0 && s->flash_bytes == 0);
	}
	check(mp_reader_left(&r) == 0);
}

static void op_list(struct fuzz *f, struct codec_request *req, unsigned n, uint8_t limit)
{
	bool seen[N_IDS] = {false};
	uint64_t cursor = 0;
	unsigned pages = 0;

	req->op = CODEC_OP_LIST;
	req->limit = limit_of(limit);
	do {
		struct codec_reply rep;
		struct mp_reader r;
		uint32_t outer, entries;

		req->cursor = cursor;
		send_request(f, req, &rep);
		check(rep.status == CODEC_OK);
		reader_of(&rep, &r);
		check(mp_read_array(&r, &outer) == 0 && outer == 2);
		check(mp_read_uint(&r, &cursor) == 0);
		check(mp_read_array(&r, &entries) == 0);
		check(entries <= limit_of(limit));
		for (uint32_t e = 0; e < entries; e++) {
			struct mp_bytes id;
			uint64_t ttl;
			uint32_t pair;
			int i;

			check(mp_read_array(&r, &pair) == 0 && pair == 2);
			check(mp_read_bin(&r, &id) == 0 && mp_read_uint(&r, &ttl) == 0);
			i = id_index(id.ptr, id.len);
			check(i >= 0 && f->m[n][i].live);
			check(ttl == f->m[n][i].expires_at_ms - f->now_ms);
			seen[i] = true;
		}
		check(mp_reader_left(&r) == 0);
		check(++pages < 10000);
	} while (cursor != 0);
	for (unsigned i = 0; i < N_IDS; i++)
		check(seen[i] == f->m[n][i].live);
}

static void op_namespaces(struct fuzz *f, struct codec_request *req, uint8_t limit)
{
	bool seen[N_NS] = {false};
	uint64_t cursor = 0;
	unsigned pages = 0;

	req->op = CODEC_OP_NAMESPACES;
	req->ns = (struct mp_bytes){NULL, 0};
	req->limit = limit_of(limit);
	do {
		struct codec_reply rep;
		struct mp_reader r;
		uint32_t outer, entries;

		req->cursor = cursor;
		send_request(f, req, &rep);
		check(rep.status == CODEC_OK);
		reader_of(&rep, &r);
		check(mp_read_array(&r, &outer) == 0 && outer == 2);
		check(mp_read_uint(&r, &cursor) == 0);
		check(mp_read_array(&r, &entries) == 0);
		for (uint32_t e = 0; e < entries; e++) {
			struct mp_bytes name;
			uint64_t sessions;
			uint32_t pair;
			int n;

			check(mp_read_array(&r, &pair) == 0 && pair == 2);
			check(mp_read_str(&r, &name) == 0 && mp_read_uint(&r, &sessions) == 0);
			n = ns_index(name.ptr, name.len);
			check(n >= 0);
			/* expired sessions count until they are reclaimed */
			check(sessions >= 1 && sessions >= live_in(f, (unsigned)n));
			seen[n] = true;
		}
		check(mp_reader_left(&r) == 0);
		check(++pages < 10000);
	} while (cursor != 0);
	for (unsigned n = 0; n < N_NS; n++)
		if (live_in(f, n) > 0)
			check(seen[n]);
}

/* Read a STATS map into the figures it names that the model knows. */
static void read_stats(const struct codec_reply *rep, uint64_t *sessions, uint64_t *flashes,
                       uint64_t *namespaces)
{
	struct mp_reader r;
	uint32_t count;

	reader_of(rep, &r);
	check(mp_read_map(&r, &count) == 0);
	for (uint32_t i = 0; i < count; i++) {
		struct mp_bytes key;
		uint64_t v;

		check(mp_read_str(&r, &key) == 0 && mp_read_uint(&r, &v) == 0);
		if (key.len == 8 && memcmp(key.ptr, "sessions", 8) == 0)
			*sessions = v;
		else if (key.len == 7 && memcmp(key.ptr, "flashes", 7) == 0)
			*flashes = v;
		else if (key.len == 10 && memcmp(key.ptr, "namespaces", 10) == 0)
			*namespaces = v;
	}
	check(mp_reader_left(&r) == 0);
}

static void op_stats(struct fuzz *f, struct codec_request *req, unsigned n, bool all)
{
	struct codec_reply rep;
	uint64_t sessions = UINT64_MAX, flashes = UINT64_MAX, namespaces = UINT64_MAX;
	size_t want_sessions = 0, want_flashes = 0, want_ns = 0;
	bool exact = !store_expiry_behind(f->st, f->now_ms);

	req->op = CODEC_OP_STATS;
	req->ns_all = all;
	if (all)
		req->ns = (struct mp_bytes){NULL, 0};
	send_request(f, req, &rep);
	check(rep.status == CODEC_OK);
	read_stats(&rep, &sessions, &flashes, &namespaces);
	if (all) {
		for (unsigned i = 0; i < N_NS; i++) {
			want_sessions += live_in(f, i);
			want_flashes += msgs_in(f, i);
			want_ns += live_in(f, i) > 0;
		}
		check(namespaces != UINT64_MAX);
		check(namespaces >= want_ns);
		if (exact)
			check(namespaces == want_ns);
	} else {
		want_sessions = live_in(f, n);
		want_flashes = msgs_in(f, n);
		check(flashes != UINT64_MAX);
		check(flashes >= want_flashes);
		if (exact)
			check(flashes == want_flashes);
	}
	check(sessions != UINT64_MAX);
	check(sessions >= want_sessions);
	if (exact)
		check(sessions == want_sessions);
}

static void run_op(struct fuzz *f, struct input *in)
{
	uint8_t a = take_u8(in), k = take_u8(in);
	unsigned n = (k & 3) % N_NS, i = ((k >> 2) & 3) % N_IDS, t = ((k >> 4) & 3) % N_TYPES;
	struct model_session *s = &f->m[n][i];
	struct codec_request req = {0};
	struct codec_reply rep;
	uint8_t *bytes = NULL;
	size_t len;
	uint8_t fill, b;

	model_expire(f);
	req.ns = ns_of(n);
	req.id = id_of(i);
	req.id_is_bin = k & 0x40;
	req.flash_type = type_of(t);
	req.flash_msg_is_bin = k & 0x80;
	switch (a % 16) {
	case 0:
		op_get(f, &req, s, a & 0x10);
		break;
	case 1:
	case 4:
		len = len_of(take_u8(in));
		fill = take_u8(in);
		req.ttl_ms = ttl_table[take_u8(in) % 8];
		bytes = fill_bytes(len, fill);
		req.data = (struct mp_bytes){bytes, len};
		op_set(f, &req, s, a % 16 == 4, a & 0x10);
		break;
	case 2:
		req.ttl_ms = ttl_table[take_u8(in) % 8];
		if (a & 0x10)
			op_touch_if(f, &req, s, a & 0x20);
		else
			op_touch_destroy(f, &req, s, false);
		break;
	case 3: {
		const struct model_msg *m;

		if (!(a & 0x10)) {
			op_touch_destroy(f, &req, s, true);
			break;
		}
		if (a & 0x20) {
			/* the holder's token, or one byte off it */
			m = oldest_of(s, t);
			len = m != NULL ? m->len : 0;
			if (a & 0x40)
				len = len > 0 ? len - 1 : 1;
			bytes = calloc(len ? len : 1, 1);
			check(bytes != NULL);
			if (m != NULL && len > 0)
				memcpy(bytes, m->bytes, len < m->len ? len : m->len);
		} else if (a & 0x40) {
			/* another type's token: only that type's queue counts */
			m = oldest_of(s, (t + 1) % N_TYPES);
			len = m != NULL ? m->len : 0;
			bytes = fill_bytes(len, 0);
			if (len > 0)
				memcpy(bytes, m->bytes, len);
		} else {
			len = len_of(take_u8(in));
			bytes = fill_bytes(len, take_u8(in));
		}
		req.flash_msg = (struct mp_bytes){bytes, len};
		op_destroy_if_flash(f, &req, s, t);
		break;
	}
	case 5:
	case 6:
		len = len_of(take_u8(in));
		fill = take_u8(in);
		req.ttl_ms = ttl_table[take_u8(in) % 8];
		bytes = fill_bytes(len, fill);
		req.flash_msg = (struct mp_bytes){bytes, len};
		op_push(f, &req, s, t, a % 16 == 6);
		break;
	case 7:
		op_pop(f, &req, s, t, a & 0x10);
		break;
	case 8:
		if (a & 0x10) {
			/* a read: what a LIST entry says of the session; nothing moves */
			req.op = CODEC_OP_TTL;
			send_request(f, &req, &rep);
			if (!s->live) {
				check(rep.status == CODEC_NOT_FOUND);
				break;
			}
			check(rep.status == CODEC_OK);
			check(expect_uint(&rep) == s->expires_at_ms - f->now_ms);
			break;
		}
		req.op = CODEC_OP_COUNT;
		send_request(f, &req, &rep);
		check(rep.status == CODEC_OK);
		check(expect_uint(&rep) == live_in(f, n));
		break;
	case 9:
		op_list(f, &req, n, take_u8(in));
		break;
	case 10: {
		size_t live = live_in(f, n);

		req.op = CODEC_OP_CLEAR;
		send_request(f, &req, &rep);
		check(rep.status == CODEC_OK);
		check(expect_uint(&rep) == live);
		for (unsigned j = 0; j < N_IDS; j++)
			session_clear(&f->m[n][j]);
		break;
	}
	case 11:
		op_stats(f, &req, n, a & 0x10);
		break;
	case 12:
		op_namespaces(f, &req, take_u8(in));
		break;
	case 13:
		if (f->pipelined)
			new_turn(f);
		b = take_u8(in);
		f->now_ms += b < 128   ? b
		             : b < 200 ? (uint64_t)(b - 127) * 1000
		                       : (uint64_t)(b - 199) * 60000;
		break;
	case 14:
		if (f->pipelined)
			new_turn(f);
		store_expire(f->st, f->now_ms, (size_t)take_u8(in) + 1);
		dispatch_log_due(f->d);
		break;
	default: {
		/* a malformed frame: any reply that decodes; it may close */
		uint64_t before_id = f->next_request_id;
		uint32_t status;
		const char *why;

		len = take_u8(in);
		if (len > in->left)
			len = in->left;
		/* a well-formed request the model does not see would change the store behind its
		 * back: only frames that fail to decode, and PINGs, go as they are */
		if (len > 0 && (codec_decode_request(in->p, len, &req, &status, &why) == -1 ||
		                req.op == CODEC_OP_PING)) {
			bool ping = req.op == CODEC_OP_PING && f->peer.ready &&
			            codec_decode_request(in->p, len, &req, &status, &why) == 0;
			enum dispatch_verdict v = send_frame(f, in->p, len, &rep);

			if (ping)
				check_ping_reply(f, &req, len, &rep);
			in->p += len;
			in->left -= len;
			if (v == DISPATCH_CLOSE || !f->peer.ready)
				hello(f);
		}
		f->next_request_id = before_id;
		break;
	}
	}
	free(bytes);
}

static void init_once(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	check(sodium_init() >= 0);
	log_set_level((enum log_level)(LOG_ERROR + 1));
	memset(long_ns, 'n', sizeof long_ns);
	memset(long_id, 'i', sizeof long_id);
	memset(long_type, 't', sizeof long_type);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz f;
	struct input in = {data, size};
	struct store_config scfg = {0};
	struct dispatch_config dcfg = {0};
	struct dispatch_server_stats stats = {0};
	uint8_t cfg;
	unsigned ops = 0;

	init_once();
	memset(&f, 0, sizeof(f));
	cfg = take_u8(&in);
	f.memory_limited = cfg & 1;
	f.max_frame = cfg & 2 ? 8192 : 4096;
	f.pipelined = cfg & 4;
	f.now_ms = 1764547200000ull;
	f.next_request_id = 1;
	scfg.max_bytes = f.memory_limited ? 48 * 1024 : 0;
	scfg.max_flash_bytes = f.max_frame / 2;
	dcfg.max_frame = f.max_frame;
	dcfg.max_bytes = scfg.max_bytes;
	f.st = store_new(&scfg);
	check(f.st != NULL);
	f.d = dispatch_new(&dcfg, f.st, NULL, &stats);
	check(f.d != NULL);
	buf_init(&f.out);
	buf_init(&f.frame);
	hello(&f);
	while (in.left > 0 && ops++ < MAX_OPS)
		run_op(&f, &in);

	for (unsigned n = 0; n < N_NS; n++)
		for (unsigned i = 0; i < N_IDS; i++)
			session_clear(&f.m[n][i]);
	buf_finish(&f.out);
	buf_finish(&f.frame);
	dispatch_log_pending(f.d);
	dispatch_free(f.d);
	store_free(f.st);
	return 0;
}
