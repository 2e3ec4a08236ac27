/*
 * Model-based differential test of the daemon: long random sequences of operations sent to
 * the real sessd, every reply checked against a reference model of what PROTOCOL.md, sessd(8)
 * and the README promise. Four namespaces (one holding a NUL, one of 64 bytes) of six ids
 * each (1 and 128 bytes, a NUL, bytes that are not UTF-8), so that operations collide; data of
 * 0 bytes to past max_data and frames past max_frame; flash types enough to pass the 64-type
 * limit and messages enough to pass max_frame / 2. Requests go through libsessd on three
 * connections (Unix and TCP) taking turns, blocking and in batches; raw, in the forms
 * libsessd never sends (bin ids, the default namespace named, bin messages, request ids of
 * every width, frames over max_frame); and as two pipelines on two connections at once,
 * whose replies must be those of one interleaving the model can replay.
 *
 * Time: the daemon's wall clock is the system's plus a shift this test steps (clockshift.so,
 * as in test_clock). Every ttl is a whole number of STEP_MS (an hour) and every step of the
 * clock too, so that whether a session has expired is never a matter of the test's own speed:
 * a session set with n steps of ttl is live until the clock has been stepped n steps past the
 * instant it was set, whatever the real time between (under STEP_MS). Remaining lifetimes
 * (TTL, LIST) are checked against the interval the model keeps for each expiry. After a step
 * the test waits until the daemon has reclaimed what expired, so that STATS and NAMESPACES
 * (which count sessions not reclaimed yet) are exact again.
 *
 * What is checked exactly: every status (NO_MEMORY aside, which the docs let the daemon
 * answer to a write that grows the store: the model then checks that nothing changed, and
 * that a refused SET had no room by the STATS read just before it), every GET, LOAD and
 * FLASH_POP result byte for byte, COUNT, LIST and CLEAR, NAMESPACES, STATS' sessions,
 * flashes, namespaces, no_memory_total and malformed_total, and, with --data-dir, the whole
 * store after every restart: a SIGTERM, or a kill -9 under --fsync always (every
 * acknowledged write kept), some with a pipeline of changes in flight, each of which must be
 * found carried out whole or not at all; restarts with half or twice --max-frame (what no
 * longer fits is answered LIMIT and kept).
 *
 * Each case has a fixed seed and a few thousand steps (seconds). To run longer by hand, with
 * other seeds, run the binary itself (meson test would stop it at 600 s):
 *   SESSD_MODEL_SEED=N     the first seed (default: the case's own)
 *   SESSD_MODEL_SEEDS=K    run K seeds, N, N+1, ...
 *   SESSD_MODEL_OPS=M      steps a seed (a step is one request, a batch, a pipeline, ...)
 *   SESSD_MODEL_TRACE=1    print every request and reply (to find what led to a failure)
 * with SESSD_BIN, LD_LIBRARY_PATH and SESSD_CLOCKSHIFT_SO set as meson test sets them, e.g.
 *   SESSD_MODEL_SEED=1000 SESSD_MODEL_SEEDS=50 SESSD_MODEL_OPS=20000 \
 *     nice -n 10 build/tests/integration/test_model -j1 --filter 'model/in_memory'
 * A failure names its case, seed and step; the same seed replays the same run.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "codec.h"
#include "harness.h"
#include "leakcheck.h"
#include "sessd.h"

#define STEP_MS    3600000LL /* one step of every ttl and of the clock: an hour */
#define NNS        4
#define NID        6
#define NCONN      3
#define NTYPES     70
#define MAX_TTL_MS 316224000000ULL
/* More than a session's node and malloc's rounding add to its data (check_room). */
#define ROOM_SLACK 256

struct flash_msg {
	char type[16];
	size_t len;
	uint8_t *msg;
	bool is_bin; /* pushed as bin: popped as bin (PROTOCOL.md, Types) */
};

struct msess {
	bool live;
	bool has_data;
	uint8_t *data;
	size_t len;
	int64_t exp_lo, exp_hi; /* the expiry instant lies in [exp_lo, exp_hi], daemon clock */
	struct flash_msg *q;    /* every message queued, oldest first, all types */
	size_t nq, capq;
};

struct model_case {
	const char *name;
	uint64_t seed;
	int ops;
	uint32_t max_frame;
	const char *max_memory;        /* NULL: no --max-memory */
	const char *max_memory_alt[2]; /* others for restarts, or NULLs */
	bool data_dir;
	bool back_steps; /* steps of the clock back too (see step_clock) */
};

struct run {
	const struct model_case *mc;
	uint64_t seed, rng;
	int op_no;
	bool trace;
	struct harness_daemon d;
	char data_dir[64], shift_file[96];
	const char *args[16];
	struct sessd_client *conn[NCONN];
	struct msess s[NNS][NID];
	int64_t shift_ms;
	uint64_t no_memory_total; /* NO_MEMORY replies since the daemon started */
	uint64_t malformed_total; /* connections closed TOO_LARGE since it started */
	int raw_fd;               /* run_raw's connection, or -1 */
	uint64_t raw_rid;
	uint32_t max_frame; /* the daemon's --max-frame now: restarts change it */
	char max_frame_arg[16];
	int max_memory_at; /* where in args --max-memory's value is */
	uint64_t max_data;
	bool fsync_always;
	int restarts, kills, inflight_checked, refusals, steps;
	uint64_t requests; /* requests whose replies were checked */
	uint64_t limits, conflicts, room_checks;
	uint64_t dif[3]; /* DESTROY_IF_FLASH answered OK, CONFLICT, NOT_FOUND */
	/* Sessions ended by the clock since the last change acknowledged (or clean stop): the
	 * daemon's CLOCK record may not be on disk yet (step_clock). */
	bool clock_pending;
	int back_steps_taken, too_large, concurrent, over_limit_starts, concurrent_ambiguous;
	bool probe, diverged; /* run_concurrent's trial of one order */
};

static const char *const ns_name[NNS] = {
    "default", "n1", "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn", "z\0z"};
static const size_t ns_len[NNS] = {7, 2, 64, 3};
static char id_bytes[NID][129];
static size_t id_len[NID];

/* The pool of ids: 1 byte, a NUL inside, libsessd's 43, bytes that are not UTF-8, 128. */
static void make_ids(void)
{
	memcpy(id_bytes[0], "a", 1), id_len[0] = 1;
	memcpy(id_bytes[1], "b\0c", 3), id_len[1] = 3;
	memset(id_bytes[2], 'k', 43), id_len[2] = 43;
	memcpy(id_bytes[3], "\xff\xfe\x80", 3), id_len[3] = 3;
	memset(id_bytes[4], 'L', 128), id_len[4] = 128;
	memcpy(id_bytes[5], "sess-5", 6), id_len[5] = 6;
}

static uint64_t rnd(struct run *r)
{
	/* splitmix64: a stream fixed by the seed alone */
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t below(struct run *r, uint64_t n)
{
	return n == 0 ? 0 : rnd(r) % n;
}

static int64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct run;
static void diverge(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A reply the model does not accept: fails the test, naming the case, seed and op. */
#define DIVERGE(...) diverge(__VA_ARGS__)

static void trace(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->trace)
		return;
	fprintf(stderr, "[%d] ", r->op_no);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void diverge(struct run *r, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	/* Trying an order of concurrent requests (run_concurrent): only note it. */
	if (r->probe) {
		if (!r->diverged && r->trace) {
			va_start(ap, fmt);
			vsnprintf(text, sizeof(text), fmt, ap);
			va_end(ap);
			fprintf(stderr, "  (this order: %s)\n", text);
		}
		r->diverged = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	cr_assert_fail("case %s seed %llu op %d: %s", r->mc->name, (unsigned long long)r->seed,
	               r->op_no, text);
}

/* --- The model's sessions. --- */

static void sess_clear(struct msess *m)
{
	free(m->data);
	for (size_t i = 0; i < m->nq; i++)
		free(m->q[i].msg);
	free(m->q);
	memset(m, 0, sizeof(*m));
}

static void sess_copy(struct msess *dst, const struct msess *src)
{
	*dst = *src;
	dst->data = NULL;
	dst->q = NULL;
	dst->capq = dst->nq;
	if (src->data != NULL) {
		dst->data = malloc(src->len + 1);
		cr_assert_not_null(dst->data);
		memcpy(dst->data, src->data, src->len);
	}
	if (src->nq > 0) {
		dst->q = calloc(src->nq, sizeof(*dst->q));
		cr_assert_not_null(dst->q);
		for (size_t i = 0; i < src->nq; i++) {
			dst->q[i] = src->q[i];
			dst->q[i].msg = malloc(src->q[i].len + 1);
			cr_assert_not_null(dst->q[i].msg);
			memcpy(dst->q[i].msg, src->q[i].msg, src->q[i].len);
		}
	}
}

/*
 * The session at (ns, id) as the daemon sees it at an instant in [now_lo, now_hi]: a session
 * whose expiry has surely passed is dropped from the model; one that may or may not have
 * expired is a mistake of the test's design (STEP_MS), reported as such.
 */
static struct msess *sess_at(struct run *r, int ns, int id, int64_t now_lo, int64_t now_hi)
{
	struct msess *m = &r->s[ns][id];

	if (!m->live)
		return m;
	if (m->exp_hi <= now_lo) {
		sess_clear(m);
		return m;
	}
	if (m->exp_lo <= now_hi)
		DIVERGE(r, "model: the expiry of %s/%d is too close to now to tell", ns_name[ns],
		        id);
	return m;
}

static void settle_all(struct run *r, int64_t lo, int64_t hi)
{
	for (int n = 0; n < NNS; n++)
		for (int i = 0; i < NID; i++)
			sess_at(r, n, i, lo, hi);
}

static uint64_t live_in(struct run *r, int ns)
{
	uint64_t n = 0;

	for (int i = 0; i < NID; i++)
		n += r->s[ns][i].live;
	return n;
}

static uint64_t flashes_in(struct run *r, int ns)
{
	uint64_t n = 0;

	for (int i = 0; i < NID; i++)
		n += r->s[ns][i].live ? r->s[ns][i].nq : 0;
	return n;
}

static size_t flash_bytes(const struct msess *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->nq; i++)
		n += strlen(m->q[i].type) + m->q[i].len + 5;
	return n;
}

static bool has_type(const struct msess *m, const char *type)
{
	for (size_t i = 0; i < m->nq; i++)
		if (strcmp(m->q[i].type, type) == 0)
			return true;
	return false;
}

static size_t type_count(const struct msess *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->nq; i++) {
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(m->q[j].type, m->q[i].type) == 0;
		n += !seen;
	}
	return n;
}

static size_t queue_len(const struct msess *m, const char *type)
{
	size_t n = 0;

	for (size_t i = 0; i < m->nq; i++)
		n += strcmp(m->q[i].type, type) == 0;
	return n;
}

static void set_expiry(struct msess *m, int64_t lo, int64_t hi, uint64_t ttl_ms)
{
	m->exp_lo = lo + (int64_t)ttl_ms;
	m->exp_hi = hi + (int64_t)ttl_ms;
}

static void set_data(struct msess *m, const uint8_t *data, size_t len)
{
	free(m->data);
	m->data = malloc(len + 1);
	cr_assert_not_null(m->data);
	if (len > 0)
		memcpy(m->data, data, len);
	m->len = len;
	m->has_data = true;
	m->live = true;
}

static void push_msg(struct msess *m, const char *type, const uint8_t *msg, size_t len, bool is_bin)
{
	if (m->nq == m->capq) {
		m->capq = m->capq ? 2 * m->capq : 8;
		m->q = realloc(m->q, m->capq * sizeof(*m->q));
		cr_assert_not_null(m->q);
	}
	snprintf(m->q[m->nq].type, sizeof(m->q[m->nq].type), "%s", type);
	m->q[m->nq].msg = malloc(len + 1);
	cr_assert_not_null(m->q[m->nq].msg);
	if (len > 0)
		memcpy(m->q[m->nq].msg, msg, len);
	m->q[m->nq].len = len;
	m->q[m->nq].is_bin = is_bin;
	m->nq++;
}

/*
 * Whether ${got}, a FLASH_POP's result, is what the model pops from ${m} (all types when
 * ${type} is NULL: types in the order of their oldest message, each oldest first); ${why}
 * says how it differs.
 */
static bool pop_matches(const struct msess *m, const char *type, const struct sessd_flashes *got,
                        char *why, size_t why_len)
{
	size_t k = 0;
	char order[NTYPES + 2][16];
	size_t norder = 0;

	if (type == NULL) {
		for (size_t i = 0; i < m->nq; i++) {
			bool seen = false;

			for (size_t j = 0; j < norder && !seen; j++)
				seen = strcmp(order[j], m->q[i].type) == 0;
			if (!seen)
				snprintf(order[norder++], sizeof(order[0]), "%s", m->q[i].type);
		}
	} else {
		snprintf(order[norder++], sizeof(order[0]), "%s", type);
	}
	for (size_t t = 0; t < norder; t++)
		for (size_t i = 0; i < m->nq; i++) {
			if (strcmp(m->q[i].type, order[t]) != 0)
				continue;
			if (k >= got->count) {
				snprintf(why, why_len, "%zu messages, the model more", got->count);
				return false;
			}
			if (strcmp(got->items[k].type, order[t]) != 0 ||
			    got->items[k].msg_len != m->q[i].len ||
			    (got->items[k].is_bin != 0) != m->q[i].is_bin ||
			    memcmp(got->items[k].msg, m->q[i].msg, m->q[i].len) != 0) {
				snprintf(why, why_len,
				         "message %zu: type %s of %zu bytes, model %s of %zu", k,
				         got->items[k].type, got->items[k].msg_len, order[t],
				         m->q[i].len);
				return false;
			}
			k++;
		}
	if (k != got->count) {
		snprintf(why, why_len, "%zu messages, the model %zu", got->count, k);
		return false;
	}
	return true;
}

/* Remove from the model what a FLASH_POP of ${type} (NULL: every type) removes. */
static void pop_model(struct msess *m, const char *type)
{
	size_t keep = 0;

	for (size_t i = 0; i < m->nq; i++) {
		if (type == NULL || strcmp(m->q[i].type, type) == 0) {
			free(m->q[i].msg);
			continue;
		}
		m->q[keep++] = m->q[i];
	}
	m->nq = keep;
}

static void check_pop(struct run *r, struct msess *m, const char *type,
                      const struct sessd_flashes *got)
{
	char why[256];

	if (!pop_matches(m, type, got, why, sizeof(why)))
		DIVERGE(r, "FLASH_POP: %s", why);
	pop_model(m, type);
}

/* The bytes MessagePack takes for the header of a str of ${n} bytes, or of an array or map
 * of ${n} elements. */
static size_t str_header(size_t n)
{
	return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
}

static size_t array_header(size_t n)
{
	return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

enum pop_fit { POP_FITS, POP_LIMIT, POP_EITHER };

/*
 * Whether a FLASH_POP of ${type} (NULL: every type) from ${m} fits in the daemon's max_frame
 * now (PROTOCOL.md, Limits: a reply over max_frame, or of more than max_frame / 12 messages,
 * is LIMIT; only sessions flashed under a larger --max-frame have such). The reply's request
 * id is libsessd's, of 1 to 5 bytes: in between, either answer is right.
 */
static enum pop_fit pop_fits(const struct run *r, const struct msess *m, const char *type)
{
	size_t body = 2, n = 0, types = 0; /* the array's header and the status */

	for (size_t i = 0; i < m->nq; i++) {
		bool first = true;

		if (type != NULL && strcmp(m->q[i].type, type) != 0)
			continue;
		for (size_t j = 0; j < i && first; j++)
			first = strcmp(m->q[j].type, m->q[i].type) != 0;
		if (first && type == NULL) {
			size_t tn = queue_len(m, m->q[i].type), tl = strlen(m->q[i].type);

			types++;
			body += str_header(tl) + tl + array_header(tn);
		}
		n++;
		body += str_header(m->q[i].len) + m->q[i].len;
	}
	body += type == NULL ? array_header(types) : array_header(n);
	if (n > r->max_frame / 12 || body + 1 > r->max_frame)
		return POP_LIMIT;
	return body + 5 > r->max_frame ? POP_EITHER : POP_FITS;
}

/* --- Operations: each is predicted from the model, then checked against the reply. --- */

struct op;
static int destroy_if_flash_status(const struct msess *m, const struct op *o);

enum op_kind {
	OP_GET,
	OP_LOAD,
	OP_SET,
	OP_SET_IF,
	OP_TOUCH,
	OP_TOUCH_IF,
	OP_DESTROY,
	OP_TTL,
	OP_PUSH,
	OP_PUSH_EXISTING,
	OP_POP,
	OP_DESTROY_IF_FLASH,
	OP_KINDS
};

static const char *const op_name[OP_KINDS] = {"GET",        "LOAD",
                                              "SET",        "SET_IF",
                                              "TOUCH",      "TOUCH_IF",
                                              "DESTROY",    "TTL",
                                              "FLASH_PUSH", "FLASH_PUSH_EXISTING",
                                              "FLASH_POP",  "DESTROY_IF_FLASH"};

struct op {
	enum op_kind kind;
	int ns, id;
	uint8_t *data; /* SET, SET_IF: the data; FLASH_PUSH(_EXISTING), DESTROY_IF_FLASH: the
	                * message */
	size_t len;
	uint64_t ttl_ms;
	uint8_t expect[SESSD_TAG_BYTES];
	char type[16]; /* "" for a FLASH_POP of every type */
	/* Sent raw (run_raw) only, as libsessd never does: the id as bin, the default
	 * namespace as its name, the message as bin. */
	bool id_bin, ns_named, msg_bin;
};

/* What came back for an op. */
struct outcome {
	int status;
	const uint8_t *data; /* GET, LOAD */
	size_t len;
	uint64_t num; /* TTL's ms, LOAD's flashes, a push's queue length */
	bool has_num; /* num was returned (a push through a batch returns none) */
	const struct sessd_flashes *flashes; /* FLASH_POP */
	/* STATS bytes and max_bytes read just before the request (has_room_check): the
	 * store's bytes only shrink until it runs (the background freeing), so a NO_MEMORY for
	 * a write that adds less than max_bytes - bytes had room. */
	bool has_room_check;
	uint64_t bytes_before, max_bytes;
};

/* The body length of a SET or SET_IF as libsessd encodes it, with a request id of ${rid}. */
static size_t set_body_len(const struct op *o, uint64_t rid)
{
	struct codec_request req = {.op = o->kind == OP_SET ? CODEC_OP_SET : CODEC_OP_SET_IF,
	                            .request_id = rid,
	                            .ttl_ms = o->ttl_ms};
	struct buf b;
	size_t n;

	/* libsessd sends the default namespace as nil, PROTOCOL.md's short form. */
	req.ns.ptr = (const uint8_t *)ns_name[o->ns];
	req.ns.len = o->ns == 0 ? 0 : ns_len[o->ns];
	req.id.ptr = (const uint8_t *)id_bytes[o->id];
	req.id.len = id_len[o->id];
	req.data.ptr = o->data;
	req.data.len = o->len;
	req.expect.ptr = o->expect;
	req.expect.len = SESSD_TAG_BYTES;
	buf_init(&b);
	cr_assert_eq(codec_encode_request(&b, &req), 0);
	n = b.len - CODEC_HEADER_BYTES;
	buf_finish(&b);
	return n;
}

/*
 * sessd(8), --max-memory: "A write is refused only when what it adds does not fit." A SET
 * refused NO_MEMORY that adds at most ${adds_at_most} bytes must not have fitted under
 * max_bytes with the bytes the store held just before it (which only shrink until it runs).
 */
static uint64_t stat_value(struct run *r, const struct sessd_stats *s, const char *name);

static void check_room(struct run *r, const struct op *o, const struct outcome *out,
                       size_t adds_at_most)
{
	if (!out->has_room_check)
		return;
	r->room_checks++;
	if (out->bytes_before + adds_at_most <= out->max_bytes)
		DIVERGE(
		    r,
		    "%s adding at most %zu bytes refused NO_MEMORY with %llu of %llu bytes held "
		    "just before",
		    op_name[o->kind], adds_at_most, (unsigned long long)out->bytes_before,
		    (unsigned long long)out->max_bytes);
}

/*
 * check_op(r, o, out, lo, hi): check the outcome ${out} of ${o}, handled by the daemon at an
 * instant in [lo, hi] (its clock), against the model, and apply it to the model.
 */
static void check_op(struct run *r, const struct op *o, const struct outcome *out, int64_t lo,
                     int64_t hi)
{
	struct msess *m = sess_at(r, o->ns, o->id, lo, hi);
	uint32_t max_frame = r->max_frame;
	int st = out->status;
	uint8_t tag[SESSD_TAG_BYTES];
	bool tag_ok = false;

	if (r->probe && r->diverged)
		return;
	r->requests++;
	if (st == SESSD_OK && o->kind != OP_GET && o->kind != OP_LOAD && o->kind != OP_TTL &&
	    (o->kind != OP_POP || (out->flashes != NULL && out->flashes->count > 0)))
		r->clock_pending = false;
	r->limits += st == SESSD_ERR_LIMIT;
	r->conflicts += st == SESSD_CONFLICT;
	trace(r, "%s %s/%d len %zu ttl %llu type %s -> %d (live %d data %d len %zu nq %zu)",
	      op_name[o->kind], ns_name[o->ns], o->id, o->len,
	      (unsigned long long)(o->ttl_ms / STEP_MS), o->type, st, m->live, m->has_data, m->len,
	      m->nq);
	if (m->live && m->has_data) {
		sessd_data_tag(m->len ? m->data : NULL, m->len, tag);
		tag_ok = memcmp(tag, o->expect, SESSD_TAG_BYTES) == 0;
	}
	switch (o->kind) {
	case OP_GET:
	case OP_LOAD:
		if (!m->live || !m->has_data) {
			if (st != SESSD_NOT_FOUND)
				DIVERGE(r, "%s: %d, model NOT_FOUND", op_name[o->kind], st);
			return;
		}
		/* Data stored under a larger --max-frame, whose reply would not fit now. */
		if (m->len > r->max_data) {
			if (st != SESSD_ERR_LIMIT)
				DIVERGE(r, "%s of %zu bytes over max_data %llu: %d, model LIMIT",
				        op_name[o->kind], m->len, (unsigned long long)r->max_data,
				        st);
			return;
		}
		if (o->kind == OP_LOAD && m->len > r->max_data - 10) {
			if (st != SESSD_ERR_LIMIT)
				DIVERGE(r, "LOAD of %zu bytes: %d, model LIMIT", m->len, st);
			return;
		}
		if (st != SESSD_OK)
			DIVERGE(r, "%s: %d, model OK", op_name[o->kind], st);
		if (out->len != m->len || (m->len > 0 && memcmp(out->data, m->data, m->len) != 0))
			DIVERGE(r, "%s: %zu bytes, model %zu other bytes", op_name[o->kind],
			        out->len, m->len);
		if (o->kind == OP_LOAD && out->num != m->nq)
			DIVERGE(r, "LOAD: %llu flashes, model %zu", (unsigned long long)out->num,
			        m->nq);
		return;
	case OP_SET:
	case OP_SET_IF: {
		size_t shortest = set_body_len(o, 1), longest = set_body_len(o, UINT32_MAX);

		/* libsessd refuses a frame over max_frame unsent; whether one near it is over
		 * depends on the request id's width, which the model does not follow. */
		if (st == SESSD_ERR_TOO_LARGE && longest > max_frame)
			return;
		if (shortest > max_frame)
			DIVERGE(r, "%s of a %zu-byte body: %d, model TOO_LARGE", op_name[o->kind],
			        shortest, st);
		if (o->kind == OP_SET_IF && (!m->live || !m->has_data)) {
			if (st != SESSD_NOT_FOUND)
				DIVERGE(r, "SET_IF: %d, model NOT_FOUND", st);
			return;
		}
		if (o->kind == OP_SET_IF && !tag_ok) {
			if (st != SESSD_CONFLICT)
				DIVERGE(r, "SET_IF: %d, model CONFLICT", st);
			return;
		}
		if (o->len > r->max_data) {
			if (st != SESSD_ERR_LIMIT)
				DIVERGE(r, "%s of %zu bytes: %d, model LIMIT", op_name[o->kind],
				        o->len, st);
			return;
		}
		if (st == SESSD_ERR_NO_MEMORY && r->mc->max_memory != NULL) {
			/* sessd(8): a write that shrinks a session or keeps its size goes on. */
			if (m->live && m->has_data && o->len <= m->len)
				DIVERGE(
				    r,
				    "%s of %zu bytes over %zu: NO_MEMORY for a write that does not "
				    "grow the session",
				    op_name[o->kind], o->len, m->len);
			/* What it adds, at most: store.c counts malloc_usable_size, so the new data
			 * and a node's header (README: 82 bytes a session, its table's share
			 * included) less the old data, and malloc's rounding of both. Not judged
			 * for a namespace's first session (its record and table). */
			if (m->live)
				check_room(r, o, out,
				           o->len - (m->has_data ? m->len : 0) + ROOM_SLACK);
			else if (live_in(r, o->ns) > 0)
				check_room(r, o, out, o->len + id_len[o->id] + ROOM_SLACK);
			r->no_memory_total++;
			r->refusals++;
			return;
		}
		if (st != SESSD_OK)
			DIVERGE(r, "%s of %zu bytes: %d, model OK", op_name[o->kind], o->len, st);
		set_data(m, o->data, o->len);
		set_expiry(m, lo, hi, o->ttl_ms);
		return;
	}
	case OP_TOUCH:
	case OP_TOUCH_IF:
		if (!m->live || (o->kind == OP_TOUCH_IF && !m->has_data)) {
			if (st != SESSD_NOT_FOUND)
				DIVERGE(r, "%s: %d, model NOT_FOUND", op_name[o->kind], st);
			return;
		}
		if (o->kind == OP_TOUCH_IF && !tag_ok) {
			if (st != SESSD_CONFLICT)
				DIVERGE(r, "TOUCH_IF: %d, model CONFLICT", st);
			return;
		}
		if (st != SESSD_OK)
			DIVERGE(r, "%s: %d, model OK", op_name[o->kind], st);
		set_expiry(m, lo, hi, o->ttl_ms);
		return;
	case OP_DESTROY:
		if (!m->live) {
			if (st != SESSD_NOT_FOUND)
				DIVERGE(r, "DESTROY: %d, model NOT_FOUND", st);
			return;
		}
		if (st != SESSD_OK)
			DIVERGE(r, "DESTROY: %d, model OK", st);
		sess_clear(m);
		return;
	case OP_TTL:
		if (!m->live) {
			if (st != SESSD_NOT_FOUND)
				DIVERGE(r, "TTL: %d, model NOT_FOUND", st);
			return;
		}
		if (st != SESSD_OK)
			DIVERGE(r, "TTL: %d, model OK", st);
		if (out->num < 1 || (int64_t)out->num < m->exp_lo - hi ||
		    (int64_t)out->num > m->exp_hi - lo)
			DIVERGE(r, "TTL: %llu ms, model in [%lld, %lld]",
			        (unsigned long long)out->num, (long long)(m->exp_lo - hi),
			        (long long)(m->exp_hi - lo));
		return;
	case OP_PUSH:
	case OP_PUSH_EXISTING: {
		size_t tlen = strlen(o->type);
		bool new_type = !m->live || !has_type(m, o->type);

		if (o->kind == OP_PUSH_EXISTING && (!m->live || !m->has_data)) {
			if (st != SESSD_NOT_FOUND)
				DIVERGE(r, "FLASH_PUSH_EXISTING: %d, model NOT_FOUND", st);
			return;
		}
		if ((m->live ? flash_bytes(m) : 0) + tlen + o->len + 5 > max_frame / 2 ||
		    (new_type && m->live && type_count(m) >= 64)) {
			/* PROTOCOL.md orders NOT_FOUND before both, not LIMIT and NO_MEMORY: sessd
			 * answers NO_MEMORY first while its store is over --max-memory (a restart
			 * under a lower one; seed 10003 of the run's 8th version). */
			if (st == SESSD_ERR_NO_MEMORY && r->mc->max_memory != NULL) {
				r->no_memory_total++;
				r->refusals++;
				return;
			}
			if (st != SESSD_ERR_LIMIT)
				DIVERGE(r,
				        "%s of %zu bytes (%zu queued, %zu types): %d, model LIMIT",
				        op_name[o->kind], o->len, m->live ? flash_bytes(m) : 0,
				        m->live ? type_count(m) : 0, st);
			return;
		}
		if (st == SESSD_ERR_NO_MEMORY && r->mc->max_memory != NULL) {
			r->no_memory_total++;
			r->refusals++;
			return;
		}
		if (st != SESSD_OK)
			DIVERGE(r, "%s: %d, model OK", op_name[o->kind], st);
		if (!m->live) {
			m->live = true;
			set_expiry(m, lo, hi, o->ttl_ms);
		} else {
			/* the later of the current expiry and now + ttl */
			if (lo + (int64_t)o->ttl_ms > m->exp_lo)
				m->exp_lo = lo + (int64_t)o->ttl_ms;
			if (hi + (int64_t)o->ttl_ms > m->exp_hi)
				m->exp_hi = hi + (int64_t)o->ttl_ms;
		}
		push_msg(m, o->type, o->data, o->len, o->msg_bin);
		if (out->has_num && out->num != queue_len(m, o->type))
			DIVERGE(r, "%s: queue of %llu, model %zu", op_name[o->kind],
			        (unsigned long long)out->num, queue_len(m, o->type));
		return;
	}
	case OP_DESTROY_IF_FLASH: {
		int want = destroy_if_flash_status(m, o);

		if (st != want)
			DIVERGE(r,
			        "DESTROY_IF_FLASH of %zu bytes (type %s, %zu queued): %d, model %d",
			        o->len, o->type, m->live ? queue_len(m, o->type) : 0, st, want);
		r->dif[want == SESSD_OK ? 0 : want == SESSD_CONFLICT ? 1 : 2]++;
		if (st == SESSD_OK)
			sess_clear(m);
		return;
	}
	case OP_POP:
		if (!m->live) {
			if (st != SESSD_NOT_FOUND)
				DIVERGE(r, "FLASH_POP: %d, model NOT_FOUND", st);
			return;
		}
		switch (pop_fits(r, m, o->type[0] ? o->type : NULL)) {
		case POP_LIMIT:
			if (st != SESSD_ERR_LIMIT)
				DIVERGE(r, "FLASH_POP: %d, model LIMIT", st);
			return;
		case POP_EITHER:
			if (st == SESSD_ERR_LIMIT)
				return;
			break;
		default:
			break;
		}
		if (st != SESSD_OK)
			DIVERGE(r, "FLASH_POP: %d, model OK", st);
		if (out->flashes == NULL)
			return; /* a trial that diverged already */
		check_pop(r, m, o->type[0] ? o->type : NULL, out->flashes);
		return;
	default:
		cr_assert_fail("unknown op");
	}
}

/* The oldest message of ${type} in ${m}, or NULL when it has none. */
static const struct flash_msg *oldest_of(const struct msess *m, const char *type)
{
	for (size_t i = 0; i < m->nq; i++)
		if (strcmp(m->q[i].type, type) == 0)
			return &m->q[i];
	return NULL;
}

/*
 * What DESTROY_IF_FLASH ${o} answers over ${m} (PROTOCOL.md, "Locks on a flash queue"): OK
 * (the session is removed) only while it is live and the oldest message of the type has the
 * bytes of ${o}'s (str and bin alike); NOT_FOUND without a live session; CONFLICT when that
 * queue is empty or missing or its oldest message is another. Neither of those changes
 * anything, no expiry either: the model keeps its interval, which TTL and LIST check later.
 */
static int destroy_if_flash_status(const struct msess *m, const struct op *o)
{
	const struct flash_msg *first;

	if (!m->live)
		return SESSD_NOT_FOUND;
	first = oldest_of(m, o->type);
	if (first == NULL || first->len != o->len ||
	    (o->len > 0 && memcmp(first->msg, o->data, o->len) != 0))
		return SESSD_CONFLICT;
	return SESSD_OK;
}

static void op_free(struct op *o)
{
	free(o->data);
	o->data = NULL;
}

static void random_bytes(struct run *r, uint8_t *p, size_t n)
{
	/* Data the model tells apart: a random start, then a pattern from it. */
	uint64_t x = rnd(r);

	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0)
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		p[i] = (uint8_t)(x >> (8 * (i % 8)));
	}
}

/* A data length: 0, small, middling, or near max_data and the frame's limit. */
static size_t random_len(struct run *r)
{
	uint64_t k = below(r, 100);

	if (k < 8)
		return 0;
	if (k < 60)
		return 1 + below(r, 64);
	if (k < 85)
		return 64 + below(r, r->max_data / 4);
	if (k < 95)
		return (size_t)(r->max_data - below(r, 200));
	return (size_t)(r->max_data + below(r, 3));
}

static uint64_t random_ttl(struct run *r)
{
	if (below(r, 200) == 0)
		return MAX_TTL_MS; /* 10 years: never ends within a run */
	return (uint64_t)(1 + below(r, 6)) * STEP_MS;
}

static void random_type(struct run *r, char type[16])
{
	static const char *const common[] = {"info", "error", "warn", "t"};

	if (below(r, 10) < 8)
		snprintf(type, 16, "%s", common[below(r, 4)]);
	else
		snprintf(type, 16, "ty%02u", (unsigned)below(r, NTYPES));
}

/*
 * The type and message of a DESTROY_IF_FLASH ${o} over the model's session at its key: mostly
 * a lock holder's release (the oldest message of a type the session holds), else a near miss
 * (that message one byte short or with its last byte changed, the type's second message,
 * another type's oldest), or any type and message.
 */
static void pick_token(struct run *r, struct op *o)
{
	const struct msess *m = &r->s[o->ns][o->id];
	const struct flash_msg *first = NULL, *src = NULL;
	uint64_t k = below(r, 10);

	free(o->data);
	o->data = NULL;
	o->len = 0;
	random_type(r, o->type);
	if (m->live && m->nq > 0 && k < 8) {
		snprintf(o->type, sizeof(o->type), "%s", m->q[below(r, m->nq)].type);
		first = oldest_of(m, o->type);
		src = first;
		if (k == 7)
			src = &m->q[below(r, m->nq)]; /* any message, of its type or another */
	}
	o->len = src != NULL ? src->len : below(r, 10) == 0 ? 0 : below(r, 40);
	o->data = malloc(o->len + 1);
	cr_assert_not_null(o->data);
	if (src != NULL && o->len > 0)
		memcpy(o->data, src->msg, o->len);
	else
		random_bytes(r, o->data, o->len);
	if (src == first && src != NULL && o->len > 0 && k >= 5 && k < 7) {
		if (k == 5)
			o->len--;
		else
			o->data[o->len - 1] ^= 0x20;
	}
}

static void random_op(struct run *r, struct op *o, bool batchable)
{
	static const enum op_kind all[] = {
	    OP_GET,    OP_GET,           OP_LOAD,          OP_SET,     OP_SET, OP_SET,  OP_SET_IF,
	    OP_SET_IF, OP_TOUCH,         OP_TOUCH_IF,      OP_DESTROY, OP_TTL, OP_PUSH, OP_PUSH,
	    OP_PUSH,   OP_PUSH_EXISTING, OP_PUSH_EXISTING, OP_POP,     OP_POP};
	struct msess *m;

	memset(o, 0, sizeof(*o));
	do
		/* two in 21: as often as a SET_IF */
		o->kind = below(r, 21) < 2 ? OP_DESTROY_IF_FLASH
		                           : all[below(r, sizeof(all) / sizeof(all[0]))];
	while (batchable &&
	       (o->kind == OP_LOAD || o->kind == OP_TOUCH_IF || o->kind == OP_DESTROY_IF_FLASH));
	o->ns = (int)below(r, NNS);
	o->id = (int)below(r, NID);
	o->ttl_ms = random_ttl(r);
	m = &r->s[o->ns][o->id];
	switch (o->kind) {
	case OP_SET:
	case OP_SET_IF:
		o->len = random_len(r);
		o->data = malloc(o->len + 1);
		cr_assert_not_null(o->data);
		random_bytes(r, o->data, o->len);
		break;
	case OP_PUSH:
	case OP_PUSH_EXISTING:
		random_type(r, o->type);
		o->len = below(r, 10) == 0 ? below(r, r->max_frame / 4) : below(r, 40);
		o->data = malloc(o->len + 1);
		cr_assert_not_null(o->data);
		random_bytes(r, o->data, o->len);
		break;
	case OP_POP:
		if (below(r, 3) != 0)
			random_type(r, o->type);
		break;
	case OP_DESTROY_IF_FLASH:
		pick_token(r, o);
		break;
	default:
		break;
	}
	/* The tag of the data the model holds, mostly: a conditional write usually holds. */
	if (m->live && m->has_data && below(r, 10) < 7)
		sessd_data_tag(m->len ? m->data : NULL, m->len, o->expect);
	else
		random_bytes(r, o->expect, SESSD_TAG_BYTES);
}

/* Send ${o} on ${c} as a blocking call and check its reply. */
static void run_blocking(struct run *r, struct sessd_client *c, const struct op *o)
{
	struct outcome out = {0};
	void *data = NULL;
	size_t len = 0, qlen = 0;
	struct sessd_flashes *fl = NULL;
	uint64_t num = 0;
	int64_t lo, hi;
	const void *id = id_bytes[o->id];
	size_t il = id_len[o->id];

	if (r->mc->max_memory != NULL && (o->kind == OP_SET || o->kind == OP_SET_IF)) {
		struct sessd_stats *s = NULL;

		cr_assert_eq(sessd_stats(r->conn[0], 1, &s), SESSD_OK);
		out.bytes_before = stat_value(r, s, "bytes");
		out.max_bytes = stat_value(r, s, "max_bytes");
		out.has_room_check = true;
		sessd_stats_free(s);
	}
	cr_assert_eq(sessd_set_namespace_len(c, ns_name[o->ns], ns_len[o->ns]), SESSD_OK);
	lo = real_ms() + r->shift_ms;
	switch (o->kind) {
	case OP_GET:
		out.status = sessd_get(c, id, il, &data, &len);
		break;
	case OP_LOAD:
		out.status = sessd_load(c, id, il, &data, &len, &num);
		break;
	case OP_SET:
		out.status = sessd_set(c, id, il, o->data, o->len, o->ttl_ms);
		break;
	case OP_SET_IF:
		out.status = sessd_set_if(c, id, il, o->data, o->len, o->ttl_ms, o->expect);
		break;
	case OP_TOUCH:
		out.status = sessd_touch(c, id, il, o->ttl_ms);
		break;
	case OP_TOUCH_IF:
		out.status = sessd_touch_if(c, id, il, o->ttl_ms, o->expect);
		break;
	case OP_DESTROY:
		out.status = sessd_destroy(c, id, il);
		break;
	case OP_TTL:
		out.status = sessd_ttl(c, id, il, &num);
		break;
	case OP_PUSH:
		out.status =
		    sessd_flash_push(c, id, il, o->type, o->data, o->len, o->ttl_ms, &qlen);
		num = qlen, out.has_num = true;
		break;
	case OP_PUSH_EXISTING:
		out.status = sessd_flash_push_existing(c, id, il, o->type, o->data, o->len,
		                                       o->ttl_ms, &qlen);
		num = qlen, out.has_num = true;
		break;
	case OP_POP:
		out.status = sessd_flash_pop(c, id, il, o->type[0] ? o->type : NULL, &fl);
		break;
	case OP_DESTROY_IF_FLASH:
		out.status = sessd_destroy_if_flash(c, id, il, o->type, o->data, o->len);
		break;
	default:
		cr_assert_fail("unknown op");
	}
	hi = real_ms() + r->shift_ms;
	if (out.status >= SESSD_ERR_USAGE && out.status != SESSD_ERR_TOO_LARGE)
		DIVERGE(r, "%s: %s (%s)", op_name[o->kind], sessd_strerror(out.status),
		        sessd_errmsg(c));
	out.data = data;
	out.len = len;
	out.num = num;
	out.flashes = fl;
	check_op(r, o, &out, lo, hi);
	free(data);
	sessd_flashes_free(fl);
}

/* The raw connection (run_raw), opened on first use after each start. */
static int raw_connection(struct run *r)
{
	if (r->raw_fd < 0)
		r->raw_fd = harness_open_ready(below(r, 2) ? r->d.unix_url : r->d.tcp_url,
		                               "model-test-raw");
	return r->raw_fd;
}

static void raw_close(struct run *r)
{
	if (r->raw_fd >= 0)
		close(r->raw_fd);
	r->raw_fd = -1;
}

static const uint32_t raw_opcode[OP_KINDS] = {CODEC_OP_GET,        CODEC_OP_LOAD,
                                              CODEC_OP_SET,        CODEC_OP_SET_IF,
                                              CODEC_OP_TOUCH,      CODEC_OP_TOUCH_IF,
                                              CODEC_OP_DESTROY,    CODEC_OP_TTL,
                                              CODEC_OP_FLASH_PUSH, CODEC_OP_FLASH_PUSH_EXISTING,
                                              CODEC_OP_FLASH_POP,  CODEC_OP_DESTROY_IF_FLASH};

/* Append ${o}'s frame, with request id ${rid}, to ${out}; returns the body's length. */
static size_t raw_encode(const struct op *o, uint64_t rid, struct buf *out)
{
	struct codec_request req = {
	    .op = raw_opcode[o->kind], .request_id = rid, .ttl_ms = o->ttl_ms};
	size_t at = out->len;

	req.ns.ptr = (const uint8_t *)ns_name[o->ns];
	req.ns.len = o->ns == 0 && !o->ns_named ? 0 : ns_len[o->ns];
	req.id.ptr = (const uint8_t *)id_bytes[o->id];
	req.id.len = id_len[o->id];
	req.id_is_bin = o->id_bin;
	if (o->kind == OP_SET || o->kind == OP_SET_IF) {
		req.data.ptr = o->data;
		req.data.len = o->len;
	}
	req.expect.ptr = o->expect;
	req.expect.len = SESSD_TAG_BYTES;
	if (o->kind == OP_PUSH || o->kind == OP_PUSH_EXISTING || o->kind == OP_POP ||
	    o->kind == OP_DESTROY_IF_FLASH) {
		req.flash_type.ptr = (const uint8_t *)o->type;
		req.flash_type.len = strlen(o->type);
		req.flash_all = o->kind == OP_POP && o->type[0] == '\0';
		req.flash_msg.ptr = o->data;
		req.flash_msg.len = o->len;
		req.flash_msg_is_bin = o->msg_bin;
	}
	cr_assert_eq(codec_encode_request(out, &req), 0);
	return out->len - at - CODEC_HEADER_BYTES;
}

static void raw_flashes_free(struct sessd_flashes *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->count; i++) {
		free((void *)f->items[i].type);
		free((void *)f->items[i].msg);
	}
	free(f->items);
	free(f);
}

/* Read ${n} messages of ${type} from ${rd} into ${f}. */
static void raw_read_msgs(struct mp_reader *rd, const char *type, size_t type_len,
                          struct sessd_flashes *f)
{
	uint32_t n;

	cr_assert_eq(mp_read_array(rd, &n), 0);
	for (uint32_t i = 0; i < n; i++) {
		struct mp_bytes b;
		bool is_bin;
		struct sessd_flash *it;
		char *t, *m;

		cr_assert_eq(mp_read_bytes(rd, &b, &is_bin), 0);
		f->items = realloc(f->items, (f->count + 1) * sizeof(*f->items));
		cr_assert_not_null(f->items);
		t = malloc(type_len + 1);
		m = malloc(b.len + 1);
		cr_assert(t != NULL && m != NULL);
		memcpy(t, type, type_len);
		t[type_len] = '\0';
		if (b.len > 0)
			memcpy(m, b.ptr, b.len);
		it = &f->items[f->count++];
		it->type = t;
		it->msg = m;
		it->msg_len = b.len;
		it->is_bin = is_bin;
	}
}

/*
 * A pipeline of 1..6 random ops on a raw connection, in the forms libsessd never sends: ids
 * as bin, the default namespace named, messages as bin, request ids of every width. A frame
 * over max_frame is answered TOO_LARGE (request id 0) and closes the connection: what was
 * pipelined behind it is not carried out, and the model checks that nothing of it was.
 */
static void run_raw(struct run *r)
{
	struct op ops[6];
	uint64_t rids[6];
	size_t n = 1 + below(r, 6), too_large_at = SIZE_MAX;
	int fd = raw_connection(r);
	struct buf out;
	int64_t lo, hi;

	buf_init(&out);
	for (size_t i = 0; i < n; i++) {
		struct op *o = &ops[i];

		random_op(r, o, false);
		o->id_bin = below(r, 2);
		o->ns_named = below(r, 2);
		o->msg_bin = below(r, 2);
		rids[i] = below(r, 4) == 0 ? rnd(r) >> below(r, 64) : ++r->raw_rid;
		if (rids[i] == 0)
			rids[i] = 1; /* 0 is what a closing reply that names no request carries */
		if (raw_encode(o, rids[i], &out) > r->max_frame) {
			too_large_at = i;
			n = i + 1;
		}
	}
	lo = real_ms() + r->shift_ms;
	harness_send_buf(fd, &out);
	buf_finish(&out);
	for (size_t i = 0; i < n; i++) {
		struct codec_reply rep;
		uint8_t *body = NULL;
		struct outcome o2 = {0};
		struct sessd_flashes *fl = NULL;
		struct mp_reader rd;
		uint32_t cnt;
		struct mp_bytes b;

		harness_read_reply(fd, &rep, &body);
		hi = real_ms() + r->shift_ms;
		r->requests++;
		if (i == too_large_at) {
			if (rep.status != CODEC_TOO_LARGE || rep.request_id != 0)
				DIVERGE(r,
				        "raw %s over max_frame: status %u id %llu, model TOO_LARGE "
				        "id 0",
				        op_name[ops[i].kind], rep.status,
				        (unsigned long long)rep.request_id);
			harness_expect_closed(fd);
			raw_close(r);
			r->malformed_total++;
			r->too_large++;
			free(body);
			break;
		}
		if (rep.request_id != rids[i])
			DIVERGE(r, "raw %s: reply to request id %llu, sent %llu",
			        op_name[ops[i].kind], (unsigned long long)rep.request_id,
			        (unsigned long long)rids[i]);
		o2.status = (int)rep.status;
		mp_reader_init(&rd, rep.result.ptr, rep.result.len);
		if (rep.status == CODEC_OK) {
			switch (ops[i].kind) {
			case OP_GET:
				cr_assert_eq(mp_read_bin(&rd, &b), 0);
				o2.data = b.ptr, o2.len = b.len;
				break;
			case OP_LOAD:
				cr_assert(mp_read_array(&rd, &cnt) == 0 && cnt == 2);
				cr_assert_eq(mp_read_bin(&rd, &b), 0);
				o2.data = b.ptr, o2.len = b.len;
				cr_assert_eq(mp_read_uint(&rd, &o2.num), 0);
				break;
			case OP_TTL:
				cr_assert_eq(mp_read_uint(&rd, &o2.num), 0);
				break;
			case OP_PUSH:
			case OP_PUSH_EXISTING:
				cr_assert_eq(mp_read_uint(&rd, &o2.num), 0);
				o2.has_num = true;
				break;
			case OP_POP:
				fl = calloc(1, sizeof(*fl));
				cr_assert_not_null(fl);
				if (ops[i].type[0] != '\0') {
					raw_read_msgs(&rd, ops[i].type, strlen(ops[i].type), fl);
					break;
				}
				cr_assert_eq(mp_read_map(&rd, &cnt), 0);
				for (uint32_t t = 0; t < cnt; t++) {
					cr_assert_eq(mp_read_str(&rd, &b), 0);
					raw_read_msgs(&rd, (const char *)b.ptr, b.len, fl);
				}
				break;
			default:
				cr_assert_eq(mp_read_nil(&rd), 0);
				break;
			}
		}
		o2.flashes = fl;
		r->requests--; /* check_op counts it */
		check_op(r, &ops[i], &o2, lo, hi);
		raw_flashes_free(fl);
		free(body);
	}
	for (size_t i = 0; i < n; i++)
		op_free(&ops[i]);
}

/* The model's state, to try an order of concurrent requests on and go back to. */
static void model_save(const struct run *r, struct run *saved)
{
	*saved = *r;
	for (int n = 0; n < NNS; n++)
		for (int i = 0; i < NID; i++)
			sess_copy(&saved->s[n][i], &r->s[n][i]);
}

static void model_drop(struct run *saved)
{
	for (int n = 0; n < NNS; n++)
		for (int i = 0; i < NID; i++)
			sess_clear(&saved->s[n][i]);
}

/* Decode the reply ${rep} to ${o} into ${out}, which borrows it; *${fl} is a FLASH_POP's. */
static void raw_decode(const struct op *o, const struct codec_reply *rep, struct outcome *out,
                       struct sessd_flashes **fl)
{
	struct mp_reader rd;
	struct mp_bytes b;
	uint32_t cnt;

	memset(out, 0, sizeof(*out));
	*fl = NULL;
	out->status = (int)rep->status;
	if (rep->status != CODEC_OK)
		return;
	mp_reader_init(&rd, rep->result.ptr, rep->result.len);
	switch (o->kind) {
	case OP_GET:
		cr_assert_eq(mp_read_bin(&rd, &b), 0);
		out->data = b.ptr, out->len = b.len;
		break;
	case OP_LOAD:
		cr_assert(mp_read_array(&rd, &cnt) == 0 && cnt == 2);
		cr_assert_eq(mp_read_bin(&rd, &b), 0);
		out->data = b.ptr, out->len = b.len;
		cr_assert_eq(mp_read_uint(&rd, &out->num), 0);
		break;
	case OP_TTL:
		cr_assert_eq(mp_read_uint(&rd, &out->num), 0);
		break;
	case OP_PUSH:
	case OP_PUSH_EXISTING:
		cr_assert_eq(mp_read_uint(&rd, &out->num), 0);
		out->has_num = true;
		break;
	case OP_POP:
		*fl = calloc(1, sizeof(**fl));
		cr_assert_not_null(*fl);
		if (o->type[0] != '\0') {
			raw_read_msgs(&rd, o->type, strlen(o->type), *fl);
			break;
		}
		cr_assert_eq(mp_read_map(&rd, &cnt), 0);
		for (uint32_t t = 0; t < cnt; t++) {
			cr_assert_eq(mp_read_str(&rd, &b), 0);
			raw_read_msgs(&rd, (const char *)b.ptr, b.len, *fl);
		}
		break;
	default:
		cr_assert_eq(mp_read_nil(&rd), 0);
		break;
	}
	out->flashes = *fl;
}

/* What the daemon holds at one key: GET, TTL and a pop of every type, at an instant in
 * [lo, hi]. */
struct key_obs {
	int gst, tst, pst;
	void *data;
	size_t len;
	uint64_t ttl;
	struct sessd_flashes *fl;
	int64_t lo, hi;
};

static void observe_key(struct run *r, int ns, int id, struct key_obs *ob)
{
	struct sessd_client *c = r->conn[0];

	memset(ob, 0, sizeof(*ob));
	cr_assert_eq(sessd_set_namespace_len(c, ns_name[ns], ns_len[ns]), SESSD_OK);
	ob->lo = real_ms() + r->shift_ms;
	ob->gst = sessd_get(c, id_bytes[id], id_len[id], &ob->data, &ob->len);
	ob->tst = sessd_ttl(c, id_bytes[id], id_len[id], &ob->ttl);
	ob->pst = sessd_flash_pop(c, id_bytes[id], id_len[id], NULL, &ob->fl);
	ob->hi = real_ms() + r->shift_ms;
}

static void key_obs_free(struct key_obs *ob)
{
	free(ob->data);
	sessd_flashes_free(ob->fl);
}

/* Whether the model ${r}'s session ${m} is what ${ob} saw (changes nothing). */
static bool key_fits(const struct run *r, const struct msess *m, const struct key_obs *ob)
{
	char why[256];

	if (!m->live || m->exp_hi <= ob->lo)
		return ob->gst == SESSD_NOT_FOUND && ob->tst == SESSD_NOT_FOUND &&
		       ob->pst == SESSD_NOT_FOUND;
	if (ob->tst != SESSD_OK || (int64_t)ob->ttl < m->exp_lo - ob->hi ||
	    (int64_t)ob->ttl > m->exp_hi - ob->lo)
		return false;
	if (m->has_data && m->len > r->max_data) {
		if (ob->gst != SESSD_ERR_LIMIT)
			return false;
	} else if (m->has_data) {
		if (ob->gst != SESSD_OK || ob->len != m->len ||
		    (m->len > 0 && memcmp(ob->data, m->data, m->len) != 0))
			return false;
	} else if (ob->gst != SESSD_NOT_FOUND) {
		return false;
	}
	if (ob->pst == SESSD_OK)
		return pop_matches(m, NULL, ob->fl, why, sizeof(why));
	return ob->pst == SESSD_ERR_LIMIT && pop_fits(r, m, NULL) != POP_FITS;
}

/*
 * Two pipelines of 1..3 ops each on two connections at once, over two keys, so that they
 * collide: the daemon runs each request in one step that no other comes between
 * (PROTOCOL.md), in each connection's order, so the replies must be those of one
 * interleaving of the two pipelines that the model can replay. Every interleaving is tried.
 */
static void run_concurrent(struct run *r)
{
	struct op ops[2][3];
	size_t n[2] = {1 + below(r, 3), 1 + below(r, 3)};
	int fd[2], keys[2][2];
	struct codec_reply rep[2][3];
	uint8_t *body[2][3];
	struct outcome out[2][3];
	struct sessd_flashes *fl[2][3];
	int64_t lo, hi;
	bool matched = false;
	struct run *saved = malloc(sizeof(*saved)), *found[20];
	size_t nfound = 0;

	cr_assert_not_null(saved);
	for (int k = 0; k < 2; k++)
		keys[k][0] = (int)below(r, NNS), keys[k][1] = (int)below(r, NID);
	lo = real_ms() + r->shift_ms;
	for (int c = 0; c < 2; c++) {
		struct buf b;

		fd[c] = harness_open_ready(c ? r->d.tcp_url : r->d.unix_url, "model-test-conc");
		buf_init(&b);
		for (size_t i = 0; i < n[c]; i++) {
			struct op *o = &ops[c][i];
			int k = (int)below(r, 2);

			random_op(r, o, false);
			o->ns = keys[k][0], o->id = keys[k][1];
			if (o->kind == OP_DESTROY_IF_FLASH)
				pick_token(r, o);
			o->msg_bin = below(r, 2);
			if (o->kind == OP_SET || o->kind == OP_SET_IF)
				o->len = o->len > 200 ? 200 : o->len;
			raw_encode(o, 1 + i, &b);
		}
		cr_assert_eq(harness_send_all(fd[c], b.data, b.len), 0);
		buf_finish(&b);
	}
	for (int c = 0; c < 2; c++)
		for (size_t i = 0; i < n[c]; i++) {
			harness_read_reply(fd[c], &rep[c][i], &body[c][i]);
			cr_assert_eq(rep[c][i].request_id, 1 + i);
			raw_decode(&ops[c][i], &rep[c][i], &out[c][i], &fl[c][i]);
		}
	hi = real_ms() + r->shift_ms;
	/* Each order: a mask of n[0] + n[1] bits, a 1 where the first connection's next goes.
	 * Every order the replies fit is kept: replies alone do not always tell them apart
	 * (two SETs of one key, two TOUCHes of different ttls), the state they leave does. */
	model_save(r, saved);
	for (unsigned mask = 0; mask < (1u << (n[0] + n[1])); mask++) {
		size_t at[2] = {0, 0};

		if ((size_t)__builtin_popcount(mask) != n[0])
			continue;
		r->probe = true;
		r->diverged = false;
		for (size_t j = 0; j < n[0] + n[1] && !r->diverged; j++) {
			int c = (mask >> j) & 1 ? 0 : 1;

			check_op(r, &ops[c][at[c]], &out[c][at[c]], lo, hi);
			at[c]++;
		}
		r->probe = false;
		if (!r->diverged) {
			found[nfound] = malloc(sizeof(*found[nfound]));
			cr_assert_not_null(found[nfound]);
			model_save(r, found[nfound++]);
		}
		model_drop(r);
		model_save(saved, r);
	}
	matched = nfound > 0;
	if (nfound > 1) {
		/* Look at both keys (a pop of every type included, which the model takes too)
		 * and keep the first order whose state is what the daemon holds. */
		struct key_obs ob[2];
		int chosen = -1;
		int nk = keys[0][0] == keys[1][0] && keys[0][1] == keys[1][1] ? 1 : 2;

		for (int k = 0; k < nk; k++)
			observe_key(r, keys[k][0], keys[k][1], &ob[k]);
		for (size_t f = 0; f < nfound && chosen < 0; f++) {
			bool ok = true;

			for (int k = 0; k < nk && ok; k++)
				ok = key_fits(found[f], &found[f]->s[keys[k][0]][keys[k][1]],
				              &ob[k]);
			if (ok)
				chosen = (int)f;
		}
		matched = chosen >= 0;
		if (matched) {
			struct run *tmp = found[0];

			found[0] = found[chosen];
			found[chosen] = tmp;
			for (int k = 0; k < nk; k++)
				if (ob[k].pst == SESSD_OK)
					pop_model(&found[0]->s[keys[k][0]][keys[k][1]], NULL);
		}
		for (int k = 0; k < nk; k++)
			key_obs_free(&ob[k]);
	}
	if (matched) {
		/* The model takes the order chosen (its sessions move over). */
		model_drop(r);
		*r = *found[0];
		free(found[0]);
		found[0] = NULL;
		r->concurrent_ambiguous += nfound > 1;
	}
	for (size_t f = 0; f < nfound; f++)
		if (found[f] != NULL) {
			model_drop(found[f]);
			free(found[f]);
		}
	model_drop(saved);
	if (!matched)
		for (int c = 0; c < 2; c++)
			for (size_t i = 0; i < n[c]; i++)
				fprintf(stderr, "concurrent %d.%zu: %s %s/%d -> %d\n", c, i,
				        op_name[ops[c][i].kind], ns_name[ops[c][i].ns],
				        ops[c][i].id, out[c][i].status);
	if (!matched)
		DIVERGE(r,
		        "%zu and %zu concurrent requests: no order of them gives these replies "
		        "(first statuses %d and %d)",
		        n[0], n[1], out[0][0].status, out[1][0].status);
	r->concurrent++;
	for (int c = 0; c < 2; c++) {
		for (size_t i = 0; i < n[c]; i++) {
			raw_flashes_free(fl[c][i]);
			free(body[c][i]);
			op_free(&ops[c][i]);
		}
		close(fd[c]);
	}
	free(saved);
}

/* Queue 2..8 random ops in one batch on ${c}, run it, and check each reply in order. */
static void run_batch(struct run *r, struct sessd_client *c)
{
	struct sessd_batch *b = sessd_batch_new(c);
	struct op ops[80];
	/* One batch in eight is a storm of pushes to one session: past the 64 types and the
	 * max_frame / 2 bytes a session's flashes may hold. */
	bool storm = below(r, 8) == 0;
	size_t n = storm ? 20 + below(r, 60) : 2 + below(r, 7), queued = 0;
	int storm_ns = (int)below(r, NNS), storm_id = (int)below(r, NID);
	int64_t lo, hi;
	int rc;

	cr_assert_not_null(b);
	for (size_t i = 0; i < n; i++) {
		struct op *o = &ops[queued];
		const void *id;
		size_t il;
		int at = -1;

		random_op(r, o, true);
		if (storm) {
			op_free(o);
			o->kind = below(r, 2) ? OP_PUSH : OP_PUSH_EXISTING;
			o->ns = storm_ns, o->id = storm_id;
			snprintf(o->type, sizeof(o->type), "ty%02u", (unsigned)below(r, NTYPES));
			o->len = below(r, 4) == 0 ? below(r, r->max_frame / 16) : below(r, 20);
			o->data = malloc(o->len + 1);
			cr_assert_not_null(o->data);
			random_bytes(r, o->data, o->len);
		}
		id = id_bytes[o->id], il = id_len[o->id];
		cr_assert_eq(sessd_set_namespace_len(c, ns_name[o->ns], ns_len[o->ns]), SESSD_OK);
		switch (o->kind) {
		case OP_GET:
			at = sessd_batch_get(b, id, il);
			break;
		case OP_SET:
			at = sessd_batch_set(b, id, il, o->data, o->len, o->ttl_ms);
			break;
		case OP_SET_IF:
			at = sessd_batch_set_if(b, id, il, o->data, o->len, o->ttl_ms, o->expect);
			break;
		case OP_TOUCH:
			at = sessd_batch_touch(b, id, il, o->ttl_ms);
			break;
		case OP_DESTROY:
			at = sessd_batch_destroy(b, id, il);
			break;
		case OP_TTL:
			at = sessd_batch_ttl(b, id, il);
			break;
		case OP_PUSH:
			at = sessd_batch_flash_push(b, id, il, o->type, o->data, o->len, o->ttl_ms);
			break;
		case OP_PUSH_EXISTING:
			at = sessd_batch_flash_push_existing(b, id, il, o->type, o->data, o->len,
			                                     o->ttl_ms);
			break;
		case OP_POP:
			at = sessd_batch_flash_pop(b, id, il, o->type[0] ? o->type : NULL);
			break;
		default:
			cr_assert_fail("not batchable");
		}
		if (at == -1) {
			/* Only a frame over max_frame is refused when queued (EMSGSIZE). */
			if (errno != EMSGSIZE || (o->kind != OP_SET && o->kind != OP_SET_IF) ||
			    set_body_len(o, UINT32_MAX) <= r->max_frame)
				DIVERGE(r, "batch %s of %zu bytes refused: %s", op_name[o->kind],
				        o->len, strerror(errno));
			op_free(o);
			continue;
		}
		cr_assert_eq((size_t)at, queued);
		queued++;
	}
	lo = real_ms() + r->shift_ms;
	rc = sessd_batch_run(b);
	hi = real_ms() + r->shift_ms;
	if (rc != SESSD_OK)
		DIVERGE(r, "batch of %zu: %s (%s)", queued, sessd_strerror(rc), sessd_errmsg(c));
	for (size_t i = 0; i < queued; i++) {
		struct outcome out = {.status = sessd_batch_status(b, i)};

		out.data = sessd_batch_data(b, i, &out.len);
		out.flashes = sessd_batch_flashes(b, i);
		out.num = sessd_batch_ttl_ms(b, i);
		check_op(r, &ops[i], &out, lo, hi);
		op_free(&ops[i]);
	}
	sessd_batch_free(b);
}

/* --- Whole-namespace and whole-server requests. --- */

static uint64_t stat_value(struct run *r, const struct sessd_stats *s, const char *name)
{
	for (size_t i = 0; i < s->count; i++)
		if (strcmp(s->items[i].name, name) == 0)
			return s->items[i].value;
	DIVERGE(r, "STATS has no %s", name);
	return 0;
}

static uint64_t server_stat(struct run *r, const char *name)
{
	struct sessd_stats *s = NULL;
	uint64_t v;

	cr_assert_eq(sessd_stats(r->conn[0], 1, &s), SESSD_OK);
	v = stat_value(r, s, name);
	sessd_stats_free(s);
	return v;
}

static uint64_t model_total(struct run *r)
{
	uint64_t n = 0;

	for (int i = 0; i < NNS; i++)
		n += live_in(r, i);
	return n;
}

static void check_count(struct run *r, struct sessd_client *c, int ns)
{
	uint64_t n = UINT64_MAX;

	cr_assert_eq(sessd_set_namespace_len(c, ns_name[ns], ns_len[ns]), SESSD_OK);
	settle_all(r, real_ms() + r->shift_ms, real_ms() + r->shift_ms);
	if (sessd_count(c, &n) != SESSD_OK || n != live_in(r, ns))
		DIVERGE(r, "COUNT %s: %llu, model %llu", ns_name[ns], (unsigned long long)n,
		        (unsigned long long)live_in(r, ns));
}

static void check_list(struct run *r, struct sessd_client *c, int ns)
{
	bool seen[NID] = {false};
	uint64_t cursor = 0;
	int64_t lo, hi;

	cr_assert_eq(sessd_set_namespace_len(c, ns_name[ns], ns_len[ns]), SESSD_OK);
	do {
		struct sessd_list *l = NULL;
		int rc;

		/* A limit of 0 is taken as 1, one over 1000 as 1000 (PROTOCOL.md, LIST). */
		unsigned limit =
		    below(r, 8) == 0 ? (below(r, 2) ? 0 : 5000) : (unsigned)(1 + below(r, 4));

		lo = real_ms() + r->shift_ms;
		rc = sessd_list(c, cursor, limit, &l);
		hi = real_ms() + r->shift_ms;
		if (rc != SESSD_OK)
			DIVERGE(r, "LIST %s: %s", ns_name[ns], sessd_strerror(rc));
		if (l->count > (limit == 0 ? 1 : limit > 1000 ? 1000 : limit))
			DIVERGE(r, "LIST %s with limit %u: %zu entries", ns_name[ns], limit,
			        l->count);
		settle_all(r, lo, hi);
		for (size_t i = 0; i < l->count; i++) {
			int id = -1;

			for (int k = 0; k < NID; k++)
				if (l->items[i].id_len == id_len[k] &&
				    memcmp(l->items[i].id, id_bytes[k], id_len[k]) == 0)
					id = k;
			if (id < 0 || !r->s[ns][id].live || seen[id])
				DIVERGE(r, "LIST %s: an id the model has not (or twice): %d",
				        ns_name[ns], id);
			seen[id] = true;
			if ((int64_t)l->items[i].ttl_ms < r->s[ns][id].exp_lo - hi ||
			    (int64_t)l->items[i].ttl_ms > r->s[ns][id].exp_hi - lo)
				DIVERGE(r, "LIST %s/%d: ttl %llu out of the model's range",
				        ns_name[ns], id, (unsigned long long)l->items[i].ttl_ms);
		}
		cursor = l->next_cursor;
		sessd_list_free(l);
	} while (cursor != 0);
	for (int k = 0; k < NID; k++)
		if (r->s[ns][k].live && !seen[k])
			DIVERGE(r, "LIST %s: missed id %d", ns_name[ns], k);
}

static void check_namespaces(struct run *r, struct sessd_client *c)
{
	bool seen[NNS] = {false};
	uint64_t cursor = 0;

	settle_all(r, real_ms() + r->shift_ms, real_ms() + r->shift_ms);
	do {
		struct sessd_namespaces *l = NULL;
		int rc = sessd_namespaces(c, cursor, (unsigned)(1 + below(r, 3)), &l);

		if (rc != SESSD_OK)
			DIVERGE(r, "NAMESPACES: %s", sessd_strerror(rc));
		for (size_t i = 0; i < l->count; i++) {
			int ns = -1;

			for (int k = 0; k < NNS; k++)
				if (l->items[i].name_len == ns_len[k] &&
				    memcmp(l->items[i].name, ns_name[k], ns_len[k]) == 0)
					ns = k;
			if (ns < 0 || seen[ns] || l->items[i].sessions != live_in(r, ns))
				DIVERGE(r, "NAMESPACES: %.*s with %llu sessions, model %llu",
				        (int)l->items[i].name_len, l->items[i].name,
				        (unsigned long long)l->items[i].sessions,
				        (unsigned long long)(ns < 0 ? 0 : live_in(r, ns)));
			seen[ns] = true;
		}
		cursor = l->next_cursor;
		sessd_namespaces_free(l);
	} while (cursor != 0);
	for (int k = 0; k < NNS; k++)
		if (live_in(r, k) > 0 && !seen[k])
			DIVERGE(r, "NAMESPACES: missed %s", ns_name[k]);
}

static void check_stats(struct run *r, struct sessd_client *c, int ns)
{
	struct sessd_stats *s = NULL;
	uint64_t nss = 0;

	settle_all(r, real_ms() + r->shift_ms, real_ms() + r->shift_ms);
	cr_assert_eq(sessd_set_namespace_len(c, ns_name[ns], ns_len[ns]), SESSD_OK);
	cr_assert_eq(sessd_stats(c, 0, &s), SESSD_OK);
	if (stat_value(r, s, "sessions") != live_in(r, ns) ||
	    stat_value(r, s, "flashes") != flashes_in(r, ns))
		DIVERGE(r, "STATS %s: %llu sessions %llu flashes, model %llu and %llu", ns_name[ns],
		        (unsigned long long)stat_value(r, s, "sessions"),
		        (unsigned long long)stat_value(r, s, "flashes"),
		        (unsigned long long)live_in(r, ns), (unsigned long long)flashes_in(r, ns));
	if ((live_in(r, ns) == 0) != (stat_value(r, s, "bytes") == 0))
		DIVERGE(r, "STATS %s: %llu bytes for %llu sessions", ns_name[ns],
		        (unsigned long long)stat_value(r, s, "bytes"),
		        (unsigned long long)live_in(r, ns));
	sessd_stats_free(s);
	cr_assert_eq(sessd_stats(c, 1, &s), SESSD_OK);
	for (int k = 0; k < NNS; k++)
		nss += live_in(r, k) > 0;
	if (stat_value(r, s, "sessions") != model_total(r) ||
	    stat_value(r, s, "namespaces") != nss ||
	    stat_value(r, s, "no_memory_total") != r->no_memory_total ||
	    stat_value(r, s, "io_errors_total") != 0 ||
	    stat_value(r, s, "malformed_total") != r->malformed_total ||
	    stat_value(r, s, "writable") != 1)
		DIVERGE(
		    r,
		    "STATS: %llu sessions %llu namespaces %llu no_memory_total, model %llu %llu "
		    "%llu",
		    (unsigned long long)stat_value(r, s, "sessions"),
		    (unsigned long long)stat_value(r, s, "namespaces"),
		    (unsigned long long)stat_value(r, s, "no_memory_total"),
		    (unsigned long long)model_total(r), (unsigned long long)nss,
		    (unsigned long long)r->no_memory_total);
	sessd_stats_free(s);
}

static void do_clear(struct run *r, struct sessd_client *c, int ns)
{
	uint64_t removed = UINT64_MAX;
	int64_t lo, hi;
	int rc;

	cr_assert_eq(sessd_set_namespace_len(c, ns_name[ns], ns_len[ns]), SESSD_OK);
	lo = real_ms() + r->shift_ms;
	rc = sessd_clear(c, &removed);
	hi = real_ms() + r->shift_ms;
	settle_all(r, lo, hi);
	if (rc != SESSD_OK || removed != live_in(r, ns))
		DIVERGE(r, "CLEAR %s: %d, %llu removed, model %llu", ns_name[ns], rc,
		        (unsigned long long)removed, (unsigned long long)live_in(r, ns));
	if (removed > 0)
		r->clock_pending = false;
	for (int i = 0; i < NID; i++)
		sess_clear(&r->s[ns][i]);
}

/* --- The daemon: clock, connections, restarts. --- */

static void write_shift(struct run *r)
{
	char tmp[128];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.new", r->shift_file);
	f = fopen(tmp, "w");
	cr_assert_not_null(f);
	cr_assert_gt(fprintf(f, "%lld\n", (long long)r->shift_ms), 0);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(rename(tmp, r->shift_file), 0);
}

/* Wait until the daemon has reclaimed every session the model holds expired: until then
 * STATS and NAMESPACES count them. */
static void wait_reclaimed(struct run *r)
{
	long until = harness_mono_ms() + 60000;

	settle_all(r, real_ms() + r->shift_ms, real_ms() + r->shift_ms);
	while (server_stat(r, "sessions") != model_total(r)) {
		if (harness_mono_ms() > until)
			DIVERGE(
			    r, "the daemon holds %llu sessions 60 s after a clock step, model %llu",
			    (unsigned long long)server_stat(r, "sessions"),
			    (unsigned long long)model_total(r));
		harness_sleep_ms(10);
	}
}

/*
 * Step the daemon's clock by whole steps: forward (sessions whose steps are up end), or back
 * (every remaining lifetime grows by the step; a session once gone stays gone, PROTOCOL.md,
 * also across restarts: DATA.md, CLOCK). A step back is taken only once every session that
 * ended is reclaimed (one not reclaimed yet may be served again), and only once a change
 * has been acknowledged since sessions last ended (clock_pending): sessd logs its CLOCK
 * record ahead of that change, and PROTOCOL.md lets a crash before it bring a session back
 * at a restart after the clock has stepped back.
 */
static void step_clock(struct run *r)
{
	int64_t k = 1 + (int64_t)below(r, 3);
	uint64_t before, expired_before;

	settle_all(r, real_ms() + r->shift_ms, real_ms() + r->shift_ms);
	before = model_total(r);
	expired_before = server_stat(r, "expired_total");
	if (r->mc->back_steps && below(r, 3) == 0 && !r->clock_pending) {
		wait_reclaimed(r);
		/* The model's expiries are instants of the daemon's clock: none moves. */
		r->shift_ms -= k * STEP_MS;
		r->back_steps_taken++;
	} else {
		r->shift_ms += k * STEP_MS;
	}
	trace(r, "clock step to %lld h", (long long)(r->shift_ms / STEP_MS));
	write_shift(r);
	r->steps++;
	wait_reclaimed(r);
	if (model_total(r) < before)
		r->clock_pending = true;
	/* What the step ended, reclaimed by the daemon's expiry (nothing else ran since). */
	if (server_stat(r, "expired_total") - expired_before != before - model_total(r))
		DIVERGE(r, "a clock step ended %llu sessions, expired_total grew by %llu",
		        (unsigned long long)(before - model_total(r)),
		        (unsigned long long)(server_stat(r, "expired_total") - expired_before));
}

static void connect_all(struct run *r)
{
	for (int i = 0; i < NCONN; i++) {
		struct sessd_options o = {.timeout_ms = 30000, .client_name = "model-test"};
		const char *url = i == 1 ? r->d.tcp_url : r->d.unix_url;

		sessd_close(r->conn[i]);
		r->conn[i] = NULL;
		cr_assert_eq(sessd_connect(url, &o, &r->conn[i]), SESSD_OK, "connect %s", url);
		cr_assert_eq(sessd_max_frame(r->conn[i]), r->max_frame);
	}
	if (r->mc->max_memory != NULL && server_stat(r, "bytes") > server_stat(r, "max_bytes"))
		r->over_limit_starts++; /* started on more than its --max-memory */
}

static void close_all(struct run *r)
{
	raw_close(r);
	for (int i = 0; i < NCONN; i++) {
		sessd_close(r->conn[i]);
		r->conn[i] = NULL;
	}
}

/*
 * Compare one key's whole state with the model, flashes included (popped: the model then
 * holds none either). With ${alt} (not NULL), the state may be either the model's or ${alt}:
 * a change in flight at a kill -9 was carried out whole or not at all. The model takes the
 * one found.
 */
static void check_key(struct run *r, int ns, int id, struct msess *alt)
{
	struct sessd_client *c = r->conn[0];
	struct msess *cand[2] = {&r->s[ns][id], alt};
	void *data = NULL;
	size_t len = 0;
	uint64_t ttl = 0;
	/* The pop of every type; when that is LIMIT, pops of each type either candidate holds
	 * (the two may differ by a message in flight, which the whole pop's LIMIT hides). */
	struct sessd_flashes *fl = NULL, *tfl[NTYPES + 8] = {NULL};
	int tst_pop[NTYPES + 8];
	char types[NTYPES + 8][16];
	size_t ntypes = 0;
	int64_t lo, hi;
	int gst, tst, pst, match = -1;
	char why[256] = "";

	cr_assert_eq(sessd_set_namespace_len(c, ns_name[ns], ns_len[ns]), SESSD_OK);
	lo = real_ms() + r->shift_ms;
	gst = sessd_get(c, id_bytes[id], id_len[id], &data, &len);
	tst = sessd_ttl(c, id_bytes[id], id_len[id], &ttl);
	pst = sessd_flash_pop(c, id_bytes[id], id_len[id], NULL, &fl);
	if (pst == SESSD_ERR_LIMIT) {
		for (int k = 0; k < (alt ? 2 : 1); k++)
			for (size_t i = 0; i < cand[k]->nq; i++) {
				bool seen = false;

				for (size_t t = 0; t < ntypes && !seen; t++)
					seen = strcmp(types[t], cand[k]->q[i].type) == 0;
				if (!seen && ntypes < NTYPES + 8)
					snprintf(types[ntypes++], sizeof(types[0]), "%s",
					         cand[k]->q[i].type);
			}
		for (size_t t = 0; t < ntypes; t++)
			tst_pop[t] =
			    sessd_flash_pop(c, id_bytes[id], id_len[id], types[t], &tfl[t]);
	}
	hi = real_ms() + r->shift_ms;
	for (int k = 0; k < (alt ? 2 : 1); k++) {
		struct msess *m = cand[k];
		bool ok = true;

		if (m->live && m->exp_hi <= lo)
			sess_clear(m);
		if (!m->live) {
			ok = gst == SESSD_NOT_FOUND && tst == SESSD_NOT_FOUND &&
			     pst == SESSD_NOT_FOUND;
		} else {
			ok = tst == SESSD_OK && (int64_t)ttl >= m->exp_lo - hi &&
			     (int64_t)ttl <= m->exp_hi - lo &&
			     (pst == SESSD_OK || pst == SESSD_ERR_LIMIT);
			if (m->has_data && m->len > r->max_data)
				ok = ok && gst == SESSD_ERR_LIMIT;
			else if (m->has_data)
				ok = ok && gst == SESSD_OK && len == m->len &&
				     (len == 0 || memcmp(data, m->data, len) == 0);
			else
				ok = ok && gst == SESSD_NOT_FOUND;
			if (ok && pst == SESSD_OK)
				ok = pop_matches(m, NULL, fl, why, sizeof(why));
			else if (ok && pst == SESSD_ERR_LIMIT)
				ok = pop_fits(r, m, NULL) != POP_FITS;
			for (size_t t = 0; ok && pst == SESSD_ERR_LIMIT && t < ntypes; t++)
				ok = tst_pop[t] == SESSD_OK
				         ? pop_matches(m, types[t], tfl[t], why, sizeof(why))
				         : tst_pop[t] == SESSD_ERR_LIMIT &&
				               pop_fits(r, m, types[t]) != POP_FITS;
		}
		if (ok && match >= 0) {
			/* Both fit what was seen: they differ at most in an expiry a TOUCH in
			 * flight moved by the milliseconds between, which the TTL's window cannot
			 * tell apart. The model keeps the data and flashes, and an expiry in both.
			 */
			if (m->exp_lo < cand[match]->exp_lo)
				cand[match]->exp_lo = m->exp_lo;
			if (m->exp_hi > cand[match]->exp_hi)
				cand[match]->exp_hi = m->exp_hi;
		} else if (ok) {
			match = k;
		}
	}
	if (match < 0)
		DIVERGE(r,
		        "after a restart %s/%d: GET %d (%zu bytes) TTL %d (%llu ms) POP %d (%zu), "
		        "model live %d data %d len %zu nq %zu%s %s",
		        ns_name[ns], id, gst, len, tst, (unsigned long long)ttl, pst,
		        fl ? fl->count : 0, r->s[ns][id].live, r->s[ns][id].has_data,
		        r->s[ns][id].len, r->s[ns][id].nq, alt ? " (or the change in flight)" : "",
		        why);
	if (match == 1) {
		sess_clear(&r->s[ns][id]);
		r->s[ns][id] = *alt;
		memset(alt, 0, sizeof(*alt));
	}
	if (pst == SESSD_OK)
		pop_model(&r->s[ns][id], NULL);
	for (size_t t = 0; t < ntypes; t++) {
		if (tst_pop[t] == SESSD_OK)
			pop_model(&r->s[ns][id], types[t]);
		sessd_flashes_free(tfl[t]);
	}
	free(data);
	sessd_flashes_free(fl);
}

static void check_everything(struct run *r)
{
	for (int n = 0; n < NNS; n++)
		for (int i = 0; i < NID; i++)
			check_key(r, n, i, NULL);
	for (int n = 0; n < NNS; n++) {
		check_count(r, r->conn[1], n);
		check_stats(r, r->conn[2], n);
	}
	check_namespaces(r, r->conn[0]);
}

/*
 * For the next start: the case's --max-frame, or half or twice it. Lowered, sessions stored
 * under the larger one stay, and their GET, LOAD and FLASH_POP answer LIMIT (PROTOCOL.md,
 * Limits).
 */
static void pick_max_frame(struct run *r)
{
	uint64_t k = below(r, 4);
	uint32_t f = r->mc->max_frame;

	if (k == 1 && f / 2 >= 4096)
		f /= 2;
	else if (k == 2)
		f *= 2;
	r->max_frame = f;
	r->max_data = f - 16;
	snprintf(r->max_frame_arg, sizeof(r->max_frame_arg), "%u", f);
	/* sessd(8), --max-memory: one given lower than what the data directory holds is kept,
	 * the daemon starts with every session, and while it is over, writes that would grow
	 * the store are refused and the others go on (check_op, check_room). */
	if (r->mc->max_memory_alt[0] != NULL)
		r->args[r->max_memory_at] =
		    below(r, 2) ? r->mc->max_memory : r->mc->max_memory_alt[below(r, 2)];
}

static void start_daemon(struct run *r)
{
	cr_assert_eq(harness_start(&r->d, r->args), 0);
	r->no_memory_total = 0;
	r->malformed_total = 0;
	connect_all(r);
}

/* A SIGTERM and a start on the same data directory: the whole store must be as it was. */
static void restart_clean(struct run *r)
{
	trace(r, "SIGTERM and restart");
	close_all(r);
	cr_assert_eq(harness_stop(&r->d), 0);
	r->clock_pending = false; /* a clean stop writes the CLOCK record */
	pick_max_frame(r);
	start_daemon(r);
	r->restarts++;
	check_everything(r);
}

/*
 * kill -9 under --fsync always, with a pipeline of changes to distinct keys in flight on a
 * connection of its own, of which some replies were read: those are acknowledged and must be
 * kept; each other change must be found carried out whole or not at all.
 */
static void restart_killed(struct run *r)
{
	struct op ops[6];
	struct msess done[6];
	bool used[NNS][NID] = {{false}};
	size_t n = 1 + below(r, 6), acked;
	struct buf out;
	int fd;
	int64_t lo, hi;

	close_all(r);
	fd = harness_open_ready(r->d.unix_url, "model-test-raw");
	buf_init(&out);
	lo = real_ms() + r->shift_ms;
	for (size_t i = 0; i < n; i++) {
		struct op *o = &ops[i];
		struct codec_request req = {.request_id = 2 + i};
		static const enum op_kind kinds[] = {OP_SET, OP_DESTROY, OP_PUSH, OP_TOUCH,
		                                     OP_DESTROY_IF_FLASH};

		memset(o, 0, sizeof(*o));
		do {
			o->ns = (int)below(r, NNS);
			o->id = (int)below(r, NID);
		} while (used[o->ns][o->id]);
		used[o->ns][o->id] = true;
		o->kind = kinds[below(r, 5)];
		o->ttl_ms = random_ttl(r);
		sess_at(r, o->ns, o->id, lo, lo);
		req.ns.ptr = (const uint8_t *)ns_name[o->ns];
		req.ns.len = ns_len[o->ns];
		req.id.ptr = (const uint8_t *)id_bytes[o->id];
		req.id.len = id_len[o->id];
		req.ttl_ms = o->ttl_ms;
		switch (o->kind) {
		case OP_SET:
			o->len = below(r, 2) ? below(r, 100) : below(r, r->max_data / 2);
			o->data = malloc(o->len + 1);
			cr_assert_not_null(o->data);
			random_bytes(r, o->data, o->len);
			req.op = CODEC_OP_SET;
			req.data.ptr = o->data;
			req.data.len = o->len;
			break;
		case OP_DESTROY:
			req.op = CODEC_OP_DESTROY;
			break;
		case OP_PUSH:
			snprintf(o->type, sizeof(o->type), "info");
			o->len = below(r, 30);
			o->data = malloc(o->len + 1);
			cr_assert_not_null(o->data);
			random_bytes(r, o->data, o->len);
			req.op = CODEC_OP_FLASH_PUSH;
			break;
		case OP_DESTROY_IF_FLASH:
			/* a lock's release in flight: made durable as a DESTROY when it holds */
			pick_token(r, o);
			req.op = CODEC_OP_DESTROY_IF_FLASH;
			break;
		default:
			req.op = CODEC_OP_TOUCH;
			break;
		}
		req.flash_type.ptr = (const uint8_t *)o->type;
		req.flash_type.len = strlen(o->type);
		req.flash_msg.ptr = o->data;
		req.flash_msg.len = o->len;
		cr_assert_eq(codec_encode_request(&out, &req), 0);
	}
	harness_send_buf(fd, &out);
	buf_finish(&out);
	acked = below(r, n + 1);
	trace(r, "kill -9 with %zu changes in flight, %zu acknowledged", n, acked);
	for (size_t i = 0; i < acked; i++) {
		struct codec_reply rep;
		uint8_t *body = NULL;
		struct outcome o2 = {0};
		struct mp_reader rd;

		harness_read_reply(fd, &rep, &body);
		o2.status = (int)rep.status;
		if (ops[i].kind == OP_PUSH && rep.status == CODEC_OK) {
			mp_reader_init(&rd, rep.result.ptr, rep.result.len);
			cr_assert_eq(mp_read_uint(&rd, &o2.num), 0);
			o2.has_num = true;
		}
		check_op(r, &ops[i], &o2, lo, real_ms() + r->shift_ms);
		free(body);
	}
	cr_assert_eq(harness_kill(&r->d), 0);
	close(fd);
	hi = real_ms() + r->shift_ms;
	for (size_t i = acked; i < n; i++) {
		/* The change, had it been carried out: applied to a copy of the model's key as an
		 * acknowledged one would be, under the --max-frame of the daemon killed (a refused
		 * one leaves the model's state, also a candidate). */
		struct msess saved;
		struct outcome ok = {.status = SESSD_OK};
		bool pending;
		struct msess *m = &r->s[ops[i].ns][ops[i].id];

		sess_copy(&saved, m);
		if ((ops[i].kind == OP_TOUCH || ops[i].kind == OP_DESTROY) && !m->live)
			ok.status = SESSD_NOT_FOUND;
		if (ops[i].kind == OP_SET && ops[i].len > r->max_data)
			ok.status = SESSD_ERR_LIMIT;
		if (ops[i].kind == OP_PUSH &&
		    (m->live ? flash_bytes(m) : 0) + 4 + ops[i].len + 5 > r->max_frame / 2)
			ok.status = SESSD_ERR_LIMIT;
		if (ops[i].kind == OP_DESTROY_IF_FLASH)
			ok.status = destroy_if_flash_status(m, &ops[i]);
		pending = r->clock_pending;
		check_op(r, &ops[i], &ok, lo, hi);
		r->clock_pending = pending;
		done[i] = *m;
		*m = saved;
	}
	pick_max_frame(r);
	cr_assert_eq(harness_restart(&r->d, r->args), 0);
	r->no_memory_total = 0;
	r->malformed_total = 0;
	connect_all(r);
	r->kills++;
	for (size_t i = acked; i < n; i++) {
		check_key(r, ops[i].ns, ops[i].id, &done[i]);
		sess_clear(&done[i]);
		r->inflight_checked++;
	}
	for (size_t i = 0; i < n; i++)
		op_free(&ops[i]);
	check_everything(r);
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 10) : dflt;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void run_seed(const struct model_case *mc, uint64_t seed, int nops)
{
	struct run *r = calloc(1, sizeof(*r));
	char tmpl[] = "/tmp/sessd-model-XXXXXX";
	const char *so = getenv("SESSD_CLOCKSHIFT_SO");
	struct harness_preload preload;
	int na = 0;

	cr_assert_not_null(r);
	r->mc = mc;
	r->seed = seed;
	r->rng = seed;
	r->trace = getenv("SESSD_MODEL_TRACE") != NULL;
	r->raw_fd = -1;
	r->max_frame = mc->max_frame;
	r->max_data = mc->max_frame - 16;
	cr_assert_not_null(mkdtemp(tmpl));
	snprintf(r->data_dir, sizeof(r->data_dir), "%s/data", tmpl);
	snprintf(r->shift_file, sizeof(r->shift_file), "%s/shift", tmpl);
	write_shift(r);
	cr_assert_not_null(so, "SESSD_CLOCKSHIFT_SO is not set (meson test sets it)");
	harness_preload(&preload, so, NULL);
	cr_assert_eq(setenv("SESSD_CLOCKSHIFT_FILE", r->shift_file, 1), 0);
	snprintf(r->max_frame_arg, sizeof(r->max_frame_arg), "%u", mc->max_frame);
	r->args[na++] = "--max-frame";
	r->args[na++] = r->max_frame_arg;
	if (mc->max_memory != NULL) {
		r->args[na++] = "--max-memory";
		r->max_memory_at = na;
		r->args[na++] = mc->max_memory;
	}
	if (mc->data_dir) {
		r->args[na++] = "--data-dir";
		r->args[na++] = r->data_dir;
		r->args[na++] = "--fsync";
		r->args[na++] = "always";
		r->fsync_always = true;
	}
	r->args[na] = NULL;
	start_daemon(r);

	for (r->op_no = 0; r->op_no < nops; r->op_no++) {
		uint64_t k = below(r, 1000);
		struct op o;

		if (k < 8) {
			step_clock(r);
		} else if (k < 12 && mc->data_dir) {
			if (below(r, 2))
				restart_clean(r);
			else
				restart_killed(r);
		} else if (k < 14) {
			check_count(r, r->conn[below(r, NCONN)], (int)below(r, NNS));
		} else if (k < 18) {
			check_list(r, r->conn[below(r, NCONN)], (int)below(r, NNS));
		} else if (k < 20) {
			check_namespaces(r, r->conn[below(r, NCONN)]);
		} else if (k < 22) {
			do_clear(r, r->conn[below(r, NCONN)], (int)below(r, NNS));
		} else if (k < 26) {
			check_stats(r, r->conn[below(r, NCONN)], (int)below(r, NNS));
		} else if (k < 80) {
			run_concurrent(r);
		} else if (k < 140) {
			run_raw(r);
		} else if (k < 360) {
			run_batch(r, r->conn[below(r, NCONN)]);
		} else {
			random_op(r, &o, false);
			run_blocking(r, r->conn[below(r, NCONN)], &o);
			op_free(&o);
		}
	}

	/* The end: everything as the model says, then nothing left, down to the bytes. */
	check_everything(r);
	for (int n = 0; n < NNS; n++)
		do_clear(r, r->conn[0], n);
	{
		long until = harness_mono_ms() + 60000;

		while (server_stat(r, "bytes") != 0) {
			if (harness_mono_ms() > until)
				DIVERGE(
				    r,
				    "STATS bytes %llu a minute after every namespace was cleared",
				    (unsigned long long)server_stat(r, "bytes"));
			harness_sleep_ms(10);
		}
	}
	fprintf(
	    stderr,
	    "model %s seed %llu: %d steps of the run, %llu requests checked, %d clock steps (%d "
	    "back), "
	    "%d restarts, %d kills (%d changes "
	    "in flight checked), %d NO_MEMORY (%llu checked for room), %llu LIMIT, %llu CONFLICT, "
	    "%d TOO_LARGE, %d concurrent pairs (%d told apart by state), %d starts over "
	    "--max-memory, DESTROY_IF_FLASH %llu OK %llu CONFLICT %llu NOT_FOUND\n",
	    mc->name, (unsigned long long)seed, nops, (unsigned long long)r->requests, r->steps,
	    r->back_steps_taken, r->restarts, r->kills, r->inflight_checked, r->refusals,
	    (unsigned long long)r->room_checks, (unsigned long long)r->limits,
	    (unsigned long long)r->conflicts, r->too_large, r->concurrent, r->concurrent_ambiguous,
	    r->over_limit_starts, (unsigned long long)r->dif[0], (unsigned long long)r->dif[1],
	    (unsigned long long)r->dif[2]);
	close_all(r);
	cr_assert_eq(harness_stop(&r->d), 0);
	harness_preload_restore(&preload);
	unsetenv("SESSD_CLOCKSHIFT_FILE");
	for (int n = 0; n < NNS; n++)
		for (int i = 0; i < NID; i++)
			sess_clear(&r->s[n][i]);
	nftw(tmpl, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(r);
}

static void run_case(const struct model_case *mc)
{
	uint64_t first = env_u64("SESSD_MODEL_SEED", mc->seed);
	uint64_t seeds = env_u64("SESSD_MODEL_SEEDS", 1);
	int nops = (int)env_u64("SESSD_MODEL_OPS", (uint64_t)mc->ops);

	make_ids();
	for (uint64_t s = 0; s < seeds; s++)
		run_seed(mc, first + s, nops);
}

LEAK_CHECKED_TEST(model, in_memory)
{
	static const struct model_case mc = {
	    .name = "in_memory", .seed = 1, .ops = 3000, .max_frame = 65536, .back_steps = true};

	run_case(&mc);
}

LEAK_CHECKED_TEST(model, small_max_memory)
{
	static const struct model_case mc = {.name = "small_max_memory",
	                                     .seed = 2,
	                                     .ops = 3000,
	                                     .max_frame = 8192,
	                                     .max_memory = "28K",
	                                     .back_steps = true};

	run_case(&mc);
}

LEAK_CHECKED_TEST(model, data_dir_restarts)
{
	static const struct model_case mc = {.name = "data_dir_restarts",
	                                     .seed = 3,
	                                     .ops = 2000,
	                                     .max_frame = 16384,
	                                     .data_dir = true,
	                                     .back_steps = true};

	run_case(&mc);
}

LEAK_CHECKED_TEST(model, data_dir_small_max_memory)
{
	static const struct model_case mc = {.name = "data_dir_small_max_memory",
	                                     .seed = 4,
	                                     .ops = 2000,
	                                     .max_frame = 8192,
	                                     .max_memory = "28K",
	                                     .max_memory_alt = {"12K", "56K"},
	                                     .data_dir = true,
	                                     .back_steps = true};

	run_case(&mc);
}
