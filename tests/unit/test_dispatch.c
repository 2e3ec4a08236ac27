/*
 * dispatch with a real store and the real codec, no sockets: request frames in, reply bytes
 * out, decoded and checked.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "auth.h"
#include "codec.h"
#include "dispatch.h"
#include "mp.h"
#include "store.h"
#include "leakcheck.h"

#define NOW 1700000000000ull

/* Milliseconds this test process's CLOCK_MONOTONIC reads ahead of the system's, so that the
 * periods of the rate-limited warnings (log.c, log_every) pass without a wait. */
static long long monotonic_ahead_ms;

/* The system's clocks, CLOCK_MONOTONIC moved ahead by monotonic_ahead_ms (the daemon's modules
 * linked in here read it through this definition). */
int clock_gettime(clockid_t id, struct timespec *ts)
{
	long long ns;

	if (syscall(SYS_clock_gettime, id, ts) == -1)
		return -1;
	if (id != CLOCK_MONOTONIC || monotonic_ahead_ms == 0)
		return 0;
	ns = (long long)ts->tv_nsec + monotonic_ahead_ms % 1000 * 1000000LL;
	ts->tv_sec += (time_t)(monotonic_ahead_ms / 1000 + ns / 1000000000LL);
	ts->tv_nsec = (long)(ns % 1000000000LL);
	return 0;
}

struct fx {
	struct store *st;
	struct dispatch *d;
	struct dispatch_server_stats stats;
	struct dispatch_peer peer;
	struct buf req;
	struct buf out;
	uint32_t max_frame;
};

static struct fx fx;

static void fx_open(uint32_t max_frame, size_t max_bytes)
{
	struct store_config scfg = {.max_bytes = max_bytes, .max_flash_bytes = max_frame / 2};
	struct dispatch_config dcfg = {.max_frame = max_frame, .max_bytes = max_bytes};

	cr_assert(sodium_init() >= 0);
	memset(&fx, 0, sizeof(fx));
	fx.max_frame = max_frame;
	fx.st = store_new(&scfg);
	cr_assert_not_null(fx.st);
	fx.stats.connections = 3;
	fx.stats.connections_total = 7;
	fx.d = dispatch_new(&dcfg, fx.st, NULL, &fx.stats);
	cr_assert_not_null(fx.d);
	buf_init(&fx.req);
	buf_init(&fx.out);
}

static void setup(void)
{
	fx_open(CODEC_DEFAULT_MAX_FRAME, 0);
}

static void teardown(void)
{
	buf_finish(&fx.req);
	buf_finish(&fx.out);
	dispatch_free(fx.d);
	store_free(fx.st);
}

/* fx.out holds exactly one reply frame: decode it into ${rep} (borrowing fx.out). */
static void take_reply(struct codec_reply *rep)
{
	uint32_t n;

	cr_assert_geq(fx.out.len, CODEC_HEADER_BYTES, "no reply written");
	n = codec_frame_length(fx.out.data);
	cr_assert_eq((size_t)n + CODEC_HEADER_BYTES, fx.out.len, "exactly one whole reply frame");
	cr_assert_leq(n, fx.max_frame, "a reply is never over max_frame");
	cr_assert_eq(codec_decode_reply(fx.out.data + CODEC_HEADER_BYTES, n, rep), 0,
	             "reply decodes");
}

/* Dispatch one raw body; the reply is decoded into ${rep} (borrowing fx.out). */
static enum dispatch_verdict call_raw(const uint8_t *body, size_t len, uint64_t now,
                                      struct codec_reply *rep)
{
	enum dispatch_verdict v;

	buf_reset(&fx.out);
	/* Each request its own loop turn, as for a client that waits for each reply: the turn's
	 * budget for heavy requests (LIST pages, key exchanges) is whole again. */
	dispatch_turn_begins(fx.d);
	v = dispatch_frame(fx.d, &fx.peer, body, len, now, &fx.out);
	take_reply(rep);
	return v;
}

static enum dispatch_verdict call_at(struct codec_request *req, uint64_t now,
                                     struct codec_reply *rep)
{
	buf_reset(&fx.req);
	cr_assert_eq(codec_encode_request(&fx.req, req), 0, "encode op %u", req->op);
	return call_raw(fx.req.data + CODEC_HEADER_BYTES, fx.req.len - CODEC_HEADER_BYTES, now,
	                rep);
}

static enum dispatch_verdict call(struct codec_request *req, struct codec_reply *rep)
{
	return call_at(req, NOW, rep);
}

static struct mp_bytes bytes(const char *s)
{
	struct mp_bytes b = {(const uint8_t *)s, s == NULL ? 0 : strlen(s)};

	return b;
}

static void hello(void)
{
	struct codec_request req = {.op = CODEC_OP_HELLO, .request_id = 1, .version = 1};
	struct codec_reply rep;

	req.client_name = bytes("test");
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
}

static uint32_t do_set(const char *ns, const char *id, const char *data, uint64_t ttl, uint64_t now)
{
	struct codec_request req = {.op = CODEC_OP_SET, .request_id = 2, .ttl_ms = ttl};
	struct codec_reply rep;

	req.ns = bytes(ns);
	req.id = bytes(id);
	req.data = bytes(data);
	cr_assert_eq(call_at(&req, now, &rep), DISPATCH_KEEP);
	return rep.status;
}

/* Set session "x" to "1" in each of the ${count} namespaces ns0000, ns0001, ... */
static void set_in_namespaces(int count)
{
	char ns[16];

	for (int i = 0; i < count; i++) {
		snprintf(ns, sizeof(ns), "ns%04d", i);
		cr_assert_eq(do_set(ns, "x", "1", 60000, NOW), CODEC_OK);
	}
}

static uint32_t do_get(const char *ns, const char *id, uint64_t now, char *data, size_t size)
{
	struct codec_request req = {.op = CODEC_OP_GET, .request_id = 3};
	struct codec_reply rep;
	struct mp_reader r;
	struct mp_bytes b;

	req.ns = bytes(ns);
	req.id = bytes(id);
	cr_assert_eq(call_at(&req, now, &rep), DISPATCH_KEEP);
	if (rep.status == CODEC_OK) {
		mp_reader_init(&r, rep.result.ptr, rep.result.len);
		cr_assert_eq(mp_read_bin(&r, &b), 0, "GET returns bin");
		cr_assert_lt(b.len, size);
		memcpy(data, b.ptr, b.len);
		data[b.len] = '\0';
	} else {
		cr_assert_eq(rep.status, CODEC_NOT_FOUND);
		cr_assert_eq(rep.result.len, 1);
		cr_assert_eq(rep.result.ptr[0], 0xc0, "NOT_FOUND carries nil");
	}
	return rep.status;
}

static uint64_t result_uint(const struct codec_reply *rep)
{
	struct mp_reader r;
	uint64_t v;

	mp_reader_init(&r, rep->result.ptr, rep->result.len);
	cr_assert_eq(mp_read_uint(&r, &v), 0, "result is a uint");
	return v;
}

/* Find ${key} in a result map; the value's reader is left in ${at}. Returns 0 or -1. */
static int map_find(const struct codec_reply *rep, const char *key, struct mp_reader *at)
{
	struct mp_reader r;
	struct mp_bytes k;
	uint32_t n;

	mp_reader_init(&r, rep->result.ptr, rep->result.len);
	cr_assert_eq(mp_read_map(&r, &n), 0, "result is a map");
	for (uint32_t i = 0; i < n; i++) {
		cr_assert_eq(mp_read_str(&r, &k), 0, "map keys are str");
		if (k.len == strlen(key) && memcmp(k.ptr, key, k.len) == 0) {
			*at = r;
			return 0;
		}
		cr_assert_eq(mp_skip(&r), 0);
	}
	return -1;
}

static uint64_t map_uint(const struct codec_reply *rep, const char *key)
{
	struct mp_reader r;
	uint64_t v;

	cr_assert_eq(map_find(rep, key, &r), 0, "key %s present", key);
	cr_assert_eq(mp_read_uint(&r, &v), 0, "key %s is a uint", key);
	return v;
}

TestSuite(dispatch, .init = setup, .fini = teardown);

LEAK_CHECKED_TEST(dispatch, hello_reply_announces_limits)
{
	struct codec_request req = {.op = CODEC_OP_HELLO, .request_id = 99, .version = 1};
	struct codec_reply rep;
	struct mp_reader r;
	struct mp_bytes s;

	req.client_name = bytes("unit");
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	cr_assert_eq(rep.request_id, 99);
	cr_assert_eq(map_uint(&rep, "version"), 1);
	cr_assert_eq(map_uint(&rep, "max_frame"), CODEC_DEFAULT_MAX_FRAME);
	cr_assert_eq(map_uint(&rep, "max_id"), 128);
	cr_assert_eq(map_uint(&rep, "max_namespace"), 64);
	cr_assert_eq(map_uint(&rep, "max_flash_type"), 64);
	cr_assert_eq(map_uint(&rep, "max_list"), 1000);
	cr_assert_eq(map_find(&rep, "server", &r), 0);
	cr_assert_eq(mp_read_str(&r, &s), 0);
	cr_assert_eq(s.len, strlen("sessd 0.1.0"));
	cr_assert_eq(memcmp(s.ptr, "sessd 0.1.0", s.len), 0);
	cr_assert_eq(map_find(&rep, "server_id", &r), 0);
	cr_assert_eq(mp_read_str(&r, &s), 0);
	cr_assert_eq(s.len, 32);
	for (size_t i = 0; i < s.len; i++)
		cr_assert(strchr("0123456789abcdef", s.ptr[i]) != NULL, "server_id is hex");
	cr_assert_eq(map_find(&rep, "auth", &r), 0);
	cr_assert_eq(mp_read_nil(&r), 0);
	cr_assert(fx.peer.ready);
}

/* The process a HELLO whose client_name is the ${len} bytes ${name} states (peer.process). */
static uint64_t process_of(const char *name, size_t len)
{
	struct codec_request req = {.op = CODEC_OP_HELLO, .request_id = 1, .version = 1};
	struct codec_reply rep;

	fx.peer.ready = false;
	fx.peer.process = 77;
	req.client_name.ptr = (const uint8_t *)name;
	req.client_name.len = len;
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	return fx.peer.process;
}

/* A string literal's bytes, NULs inside included ("\000" is a NUL: octal takes 3 digits). */
#define NAME(s) s, sizeof(s) - 1

/*
 * HELLO's process identity (PROTOCOL.md, HELLO): the bytes after client_name's first NUL, as a
 * keyed hash that is never 0; none without a NUL or with nothing after it; the same identity
 * the same process whatever the name, another identity another (a NUL inside it included).
 */
LEAK_CHECKED_TEST(dispatch, hello_states_a_process_identity)
{
	uint64_t a = process_of(NAME("web\0004242.9f3a61c0"));

	cr_assert_eq(process_of(NAME("web")), 0, "no NUL: no identity");
	cr_assert_eq(process_of(NAME("")), 0);
	cr_assert_eq(process_of(NAME("web\000")), 0, "nothing after the NUL: no identity");
	cr_assert_neq(a, 0);
	cr_assert_eq(process_of(NAME("other-name\0004242.9f3a61c0")), a, "the name does not count");
	cr_assert_eq(process_of(NAME("\0004242.9f3a61c0")), a);
	cr_assert_neq(process_of(NAME("web\0004243.9f3a61c0")), a);
	cr_assert_neq(process_of(NAME("web\0004242.9f3a61c0\000x")), a,
	              "all the bytes after count");
	cr_assert_neq(process_of(NAME("web\000\000")), 0, "a NUL is an identity too");
}

LEAK_CHECKED_TEST(dispatch, request_before_hello_is_not_ready_and_closes)
{
	struct codec_request req = {.op = CODEC_OP_PING, .request_id = 5};
	struct codec_reply rep;

	cr_assert_eq(call(&req, &rep), DISPATCH_CLOSE);
	cr_assert_eq(rep.status, CODEC_NOT_READY);
	cr_assert_eq(rep.request_id, 5);
	cr_assert_gt(rep.message.len, 0);
}

LEAK_CHECKED_TEST(dispatch, bad_version_closes)
{
	struct codec_request req = {.op = CODEC_OP_HELLO, .request_id = 1, .version = 2};
	struct codec_reply rep;

	req.client_name = bytes("x");
	cr_assert_eq(call(&req, &rep), DISPATCH_CLOSE);
	cr_assert_eq(rep.status, CODEC_BAD_VERSION);
	cr_assert_not(fx.peer.ready);
}

/* HELLO with the raw msgpack ${auth}; returns the verdict, the reply in ${rep}. */
static enum dispatch_verdict hello_with(const uint8_t *auth, size_t len, struct codec_reply *rep)
{
	struct codec_request req = {.op = CODEC_OP_HELLO, .request_id = 1, .version = 1};

	req.client_name = bytes("x");
	req.auth.ptr = auth;
	req.auth.len = len;
	return call(&req, rep);
}

/* The HELLO reply's "auth" value in ${rep}: 1 true, 0 nil, -1 anything else. */
static int reply_auth(const struct codec_reply *rep)
{
	struct mp_reader r;
	struct mp_bytes key;
	uint32_t n;
	bool v;

	mp_reader_init(&r, rep->result.ptr, rep->result.len);
	cr_assert_eq(mp_read_map(&r, &n), 0);
	while (n-- > 0) {
		cr_assert_eq(mp_read_str(&r, &key), 0);
		if (key.len == 4 && memcmp(key.ptr, "auth", 4) == 0)
			return mp_read_nil(&r) == 0 ? 0 : mp_read_bool(&r, &v) == 0 && v ? 1 : -1;
		cr_assert_eq(mp_skip(&r), 0);
	}
	return -1;
}

/* Without --auth-file a secret is let in (clients can get it before the server needs it). */
LEAK_CHECKED_TEST(dispatch, auth_is_ignored_without_a_secret_but_must_be_bytes)
{
	static const uint8_t str_auth[] = {0xa3, 'k', 'e', 'y'}, map_auth[] = {0x80};
	struct codec_reply rep;

	cr_assert_eq(hello_with(str_auth, sizeof(str_auth), &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	cr_expect_eq(reply_auth(&rep), 0, "nil: nothing was checked");
	fx.peer.ready = false;
	cr_assert_eq(hello_with(map_auth, sizeof(map_auth), &rep), DISPATCH_CLOSE);
	cr_assert_eq(rep.status, CODEC_AUTH_FAILED);
	cr_assert_not(fx.peer.ready);
}

/* With --auth-file, HELLO must show exactly the secret, as str or bin. */
LEAK_CHECKED_TEST(dispatch, auth_file_secret_is_required)
{
	static const uint8_t nil_auth[] = {0xc0},
	                     wrong[] = {0xb0, 's', 'i', 'x', 't', 'e', 'e', 'n', ' ',
	                                'b',  'y', 't', 'e', 's', '!', '!', '?'},
	                     right_str[] = {0xb0, 's', 'i', 'x', 't', 'e', 'e', 'n', ' ',
	                                    'b',  'y', 't', 'e', 's', '!', '!', '!'},
	                     right_bin[] = {0xc4, 16,  's', 'i', 'x', 't', 'e', 'e', 'n',
	                                    ' ',  'b', 'y', 't', 'e', 's', '!', '!', '!'};
	struct dispatch_config dcfg = {.max_frame = CODEC_DEFAULT_MAX_FRAME};
	char dir[] = "/tmp/sessd-dauth-XXXXXX", path[64];
	struct codec_reply rep;
	struct auth *a;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("sixteen bytes!!!\n", f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, 0600), 0);
	a = auth_new(path);
	cr_assert_not_null(a);
	unlink(path);
	rmdir(dir);
	dispatch_free(fx.d);
	dcfg.auth = a;
	fx.d = dispatch_new(&dcfg, fx.st, NULL, &fx.stats);
	cr_assert_not_null(fx.d);

	cr_expect_eq(hello_with(nil_auth, sizeof(nil_auth), &rep), DISPATCH_CLOSE);
	cr_expect_eq(rep.status, CODEC_AUTH_FAILED);
	cr_expect_eq(hello_with(wrong, sizeof(wrong), &rep), DISPATCH_CLOSE);
	cr_expect_eq(rep.status, CODEC_AUTH_FAILED);
	cr_expect_not(fx.peer.ready);
	cr_expect_eq(hello_with(right_str, sizeof(right_str), &rep), DISPATCH_KEEP);
	cr_expect_eq(rep.status, CODEC_OK);
	cr_expect_eq(reply_auth(&rep), 1, "true: the secret was checked");
	cr_expect(fx.peer.ready);
	fx.peer.ready = false;
	cr_expect_eq(hello_with(right_bin, sizeof(right_bin), &rep), DISPATCH_KEEP);
	cr_expect_eq(rep.status, CODEC_OK);
	dispatch_free(fx.d);
	fx.d = NULL;
	auth_free(a);
}

LEAK_CHECKED_TEST(dispatch, second_hello_is_bad_request)
{
	struct codec_request req = {.op = CODEC_OP_HELLO, .request_id = 1, .version = 1};
	struct codec_reply rep;

	hello();
	req.client_name = bytes("again");
	cr_assert_eq(call(&req, &rep), DISPATCH_CLOSE);
	cr_assert_eq(rep.status, CODEC_BAD_REQUEST);
}

LEAK_CHECKED_TEST(dispatch, garbage_is_bad_request_with_id_zero)
{
	static const uint8_t junk[] = {0xc1, 0x00, 0x01};
	struct codec_reply rep;

	hello();
	cr_assert_eq(call_raw(junk, sizeof(junk), NOW, &rep), DISPATCH_CLOSE);
	cr_assert_eq(rep.status, CODEC_BAD_REQUEST);
	cr_assert_eq(rep.request_id, 0);
}

LEAK_CHECKED_TEST(dispatch, unknown_op_keeps_the_connection)
{
	struct buf b;
	struct codec_reply rep;

	hello();
	buf_init(&b);
	cr_assert_eq(mp_write_array(&b, 2), 0);
	cr_assert_eq(mp_write_uint(&b, 0x7f), 0);
	cr_assert_eq(mp_write_uint(&b, 42), 0);
	cr_assert_eq(call_raw(b.data, b.len, NOW, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_UNKNOWN_OP);
	cr_assert_eq(rep.request_id, 42);
	buf_finish(&b);
}

LEAK_CHECKED_TEST(dispatch, unknown_op_before_hello_is_not_ready)
{
	struct buf b;
	struct codec_reply rep;

	buf_init(&b);
	cr_assert_eq(mp_write_array(&b, 2), 0);
	cr_assert_eq(mp_write_uint(&b, 0x7f), 0);
	cr_assert_eq(mp_write_uint(&b, 42), 0);
	cr_assert_eq(call_raw(b.data, b.len, NOW, &rep), DISPATCH_CLOSE);
	cr_assert_eq(rep.status, CODEC_NOT_READY);
	buf_finish(&b);
}

LEAK_CHECKED_TEST(dispatch, set_get_touch_destroy)
{
	struct codec_request req = {.request_id = 9};
	struct codec_reply rep;
	char data[64];

	hello();
	cr_assert_eq(do_get(NULL, "s1", NOW, data, sizeof(data)), CODEC_NOT_FOUND);
	cr_assert_eq(do_set(NULL, "s1", "hello", 1000, NOW), CODEC_OK);
	cr_assert_eq(do_get(NULL, "s1", NOW + 1, data, sizeof(data)), CODEC_OK);
	cr_assert_str_eq(data, "hello");
	/* The same id in another namespace is another session. */
	cr_assert_eq(do_get("other", "s1", NOW, data, sizeof(data)), CODEC_NOT_FOUND);
	/* ttl counts from the request's now: gone at NOW + 1000. */
	cr_assert_eq(do_get(NULL, "s1", NOW + 999, data, sizeof(data)), CODEC_OK);
	cr_assert_eq(do_get(NULL, "s1", NOW + 1000, data, sizeof(data)), CODEC_NOT_FOUND);

	cr_assert_eq(do_set(NULL, "s1", "again", 1000, NOW), CODEC_OK);
	req.op = CODEC_OP_TOUCH;
	req.id = bytes("s1");
	req.ttl_ms = 5000;
	cr_assert_eq(call_at(&req, NOW + 500, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	cr_assert_eq(rep.request_id, 9);
	cr_assert_eq(do_get(NULL, "s1", NOW + 5499, data, sizeof(data)), CODEC_OK);
	cr_assert_str_eq(data, "again");

	req.op = CODEC_OP_DESTROY;
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_NOT_FOUND);
	req.op = CODEC_OP_TOUCH;
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_NOT_FOUND);
}

LEAK_CHECKED_TEST(dispatch, ping)
{
	struct codec_request req = {.op = CODEC_OP_PING, .request_id = 77};
	struct codec_reply rep;

	hello();
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	cr_assert_eq(rep.request_id, 77);
	cr_assert_eq(rep.result.len, 1);
	cr_assert_eq(rep.result.ptr[0], 0xc0);
}

LEAK_CHECKED_TEST(dispatch, ping_payload_is_answered_with_it)
{
	struct codec_request req = {.op = CODEC_OP_PING, .request_id = 78, .ping_payload = true};
	uint8_t payload[3000];
	struct codec_reply rep;
	struct mp_reader r;
	struct mp_bytes got;

	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)(i * 7);
	req.data.ptr = payload;
	req.data.len = sizeof payload;
	hello();
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	cr_assert_eq(rep.request_id, 78);
	mp_reader_init(&r, rep.result.ptr, rep.result.len);
	cr_assert_eq(mp_read_bin(&r, &got), 0);
	cr_assert_eq(mp_reader_left(&r), 0);
	cr_assert_eq(got.len, sizeof payload);
	cr_assert_eq(memcmp(got.ptr, payload, sizeof payload), 0);
	/* No frame of the reply is longer than the request's. */
	cr_assert_leq(fx.out.len, fx.req.len);
}

LEAK_CHECKED_TEST(dispatch, ping_with_a_nil_payload_is_bad_request)
{
	static const uint8_t body[] = {0x93, 0x02, 0x09, 0xc0};
	struct codec_reply rep;

	hello();
	cr_assert_eq(call_raw(body, sizeof body, NOW, &rep), DISPATCH_CLOSE);
	cr_assert_eq(rep.status, CODEC_BAD_REQUEST);
	cr_assert_eq(rep.request_id, 9);
}

static uint64_t push(const char *id, const char *type, const char *msg, bool is_bin)
{
	struct codec_request req = {.op = CODEC_OP_FLASH_PUSH, .request_id = 4, .ttl_ms = 60000};
	struct codec_reply rep;

	req.id = bytes(id);
	req.flash_type = bytes(type);
	req.flash_msg = bytes(msg);
	req.flash_msg_is_bin = is_bin;
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK, "push status %u", rep.status);
	return result_uint(&rep);
}

static void expect_msg(struct mp_reader *r, const char *text, bool is_bin)
{
	struct mp_bytes b;
	bool bin;

	cr_assert_eq(mp_read_bytes(r, &b, &bin), 0);
	cr_assert_eq(bin, is_bin, "message keeps its format");
	cr_assert_eq(b.len, strlen(text));
	cr_assert_eq(memcmp(b.ptr, text, b.len), 0);
}

/*
 * FLASH_PUSH_EXISTING ${msg} of ${type} to ${id} (default namespace) at ${now}; returns the
 * status, with the queue length in ${queued} (may be NULL) on OK. NOT_FOUND must carry nil.
 */
static uint32_t push_existing(const char *id, const char *type, const char *msg, bool is_bin,
                              uint64_t ttl_ms, uint64_t now, uint64_t *queued)
{
	struct codec_request req = {
	    .op = CODEC_OP_FLASH_PUSH_EXISTING, .request_id = 9, .ttl_ms = ttl_ms};
	struct codec_reply rep;

	req.id = bytes(id);
	req.flash_type = bytes(type);
	req.flash_msg = bytes(msg);
	req.flash_msg_is_bin = is_bin;
	cr_assert_eq(call_at(&req, now, &rep), DISPATCH_KEEP, "the connection stays open");
	cr_assert_eq(rep.request_id, 9);
	if (rep.status == CODEC_OK && queued != NULL)
		*queued = result_uint(&rep);
	if (rep.status == CODEC_NOT_FOUND) {
		cr_assert_eq(rep.result.len, 1);
		cr_assert_eq(rep.result.ptr[0], 0xc0, "NOT_FOUND carries nil");
	}
	return rep.status;
}

/* The number of sessions in the default namespace. */
static uint64_t count_default(void)
{
	struct codec_request req = {.op = CODEC_OP_COUNT, .request_id = 10};
	struct codec_reply rep;

	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	return result_uint(&rep);
}

LEAK_CHECKED_TEST(dispatch, flash_push_existing_pushes_only_to_a_session_with_data)
{
	struct codec_request pop = {.op = CODEC_OP_FLASH_POP, .request_id = 5};
	struct codec_reply rep;
	struct mp_reader r;
	uint64_t queued = 0;
	uint32_t n;
	char data[8];

	hello();
	cr_assert_eq(push_existing("nobody", "info", "m", false, 60000, NOW, NULL),
	             CODEC_NOT_FOUND);
	cr_assert_eq(count_default(), 0, "nothing was created");

	/* With data: a FLASH_PUSH; the expiry becomes the later one. */
	cr_assert_eq(do_set(NULL, "s", "d", 1000, NOW), CODEC_OK);
	cr_assert_eq(push_existing("s", "info", "one", false, 60000, NOW, &queued), CODEC_OK);
	cr_assert_eq(queued, 1);
	cr_assert_eq(push_existing("s", "info", "two", true, 10, NOW, &queued), CODEC_OK);
	cr_assert_eq(queued, 2);
	cr_assert_eq(do_get(NULL, "s", NOW + 59999, data, sizeof(data)), CODEC_OK,
	             "the expiry is now + the longer ttl");
	cr_assert_str_eq(data, "d", "the data is left alone");

	/* Flashes only: NOT_FOUND, and its queue stays as it was. */
	cr_assert_eq(push("f", "info", "kept", false), 1);
	cr_assert_eq(push_existing("f", "info", "late", false, 60000, NOW, NULL), CODEC_NOT_FOUND);

	/* Destroyed and expired: gone. */
	cr_assert_eq(do_set(NULL, "x", "d", 60000, NOW), CODEC_OK);
	{
		struct codec_request destroy = {.op = CODEC_OP_DESTROY, .request_id = 6};

		destroy.id = bytes("x");
		cr_assert_eq(call(&destroy, &rep), DISPATCH_KEEP);
		cr_assert_eq(rep.status, CODEC_OK);
	}
	cr_assert_eq(push_existing("x", "info", "late", false, 60000, NOW, NULL), CODEC_NOT_FOUND);
	cr_assert_eq(do_set(NULL, "e", "d", 10, NOW), CODEC_OK);
	cr_assert_eq(push_existing("e", "info", "late", false, 60000, NOW + 10, NULL),
	             CODEC_NOT_FOUND);
	cr_assert_eq(count_default(), 2, "s and the flash-only f");

	pop.id = bytes("f");
	pop.flash_type = bytes("info");
	cr_assert_eq(call(&pop, &rep), DISPATCH_KEEP);
	mp_reader_init(&r, rep.result.ptr, rep.result.len);
	cr_assert_eq(mp_read_array(&r, &n), 0);
	cr_assert_eq(n, 1, "the flash-only session's queue is unchanged");
	expect_msg(&r, "kept", false);
	pop.id = bytes("s");
	cr_assert_eq(call(&pop, &rep), DISPATCH_KEEP);
	mp_reader_init(&r, rep.result.ptr, rep.result.len);
	cr_assert_eq(mp_read_array(&r, &n), 0);
	cr_assert_eq(n, 2);
	expect_msg(&r, "one", false);
	expect_msg(&r, "two", true);
	cr_assert_eq(do_get(NULL, "s", NOW + 60000, data, sizeof(data)), CODEC_NOT_FOUND,
	             "and no later");
}

LEAK_CHECKED_TEST(dispatch, flash_push_and_pop)
{
	struct codec_request req = {.op = CODEC_OP_FLASH_POP, .request_id = 5};
	struct codec_reply rep;
	struct mp_reader r;
	struct mp_bytes k;
	uint32_t n;
	char data[8];

	hello();
	cr_assert_eq(push("f", "info", "one", false), 1);
	cr_assert_eq(push("f", "error", "bad", true), 1);
	cr_assert_eq(push("f", "info", "two", false), 2);
	/* A flash-only session has no data. */
	cr_assert_eq(do_get(NULL, "f", NOW, data, sizeof(data)), CODEC_NOT_FOUND);
	/* SET keeps the flashes. */
	cr_assert_eq(do_set(NULL, "f", "d", 60000, NOW), CODEC_OK);

	req.id = bytes("f");
	req.flash_type = bytes("info");
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	mp_reader_init(&r, rep.result.ptr, rep.result.len);
	cr_assert_eq(mp_read_array(&r, &n), 0);
	cr_assert_eq(n, 2);
	expect_msg(&r, "one", false);
	expect_msg(&r, "two", false);

	/* Popped: now empty. */
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	mp_reader_init(&r, rep.result.ptr, rep.result.len);
	cr_assert_eq(mp_read_array(&r, &n), 0);
	cr_assert_eq(n, 0);

	cr_assert_eq(push("f", "info", "three", false), 1);
	req.flash_all = true;
	req.flash_type = bytes(NULL);
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	mp_reader_init(&r, rep.result.ptr, rep.result.len);
	cr_assert_eq(mp_read_map(&r, &n), 0);
	cr_assert_eq(n, 2);
	/* Types in the order of their oldest message: "error" was pushed before "three". */
	cr_assert_eq(mp_read_str(&r, &k), 0);
	cr_assert_eq(k.len, 5);
	cr_assert_eq(memcmp(k.ptr, "error", 5), 0);
	cr_assert_eq(mp_read_array(&r, &n), 0);
	cr_assert_eq(n, 1);
	expect_msg(&r, "bad", true);
	cr_assert_eq(mp_read_str(&r, &k), 0);
	cr_assert_eq(memcmp(k.ptr, "info", 4), 0);
	cr_assert_eq(mp_read_array(&r, &n), 0);
	cr_assert_eq(n, 1);
	expect_msg(&r, "three", false);

	/* Everything popped: an empty map. */
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	cr_assert_eq(rep.result.len, 1);
	cr_assert_eq(rep.result.ptr[0], 0x80);

	req.id = bytes("nobody");
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_NOT_FOUND);
}

LEAK_CHECKED_TEST(dispatch, flash_limit_is_limit_status)
{
	struct codec_request req = {.op = CODEC_OP_FLASH_PUSH, .request_id = 4, .ttl_ms = 60000};
	struct codec_reply rep;
	char *big;

	teardown();
	fx_open(CODEC_MIN_MAX_FRAME, 0);
	hello();
	big = malloc(3000);
	cr_assert_not_null(big);
	memset(big, 'x', 2999);
	big[2999] = '\0';
	req.id = bytes("f");
	req.flash_type = bytes("info");
	req.flash_msg = bytes(big);
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_LIMIT);
	cr_assert_gt(rep.message.len, 0);
	/* FLASH_PUSH_EXISTING to a session with data has the same limit. */
	cr_assert_eq(do_set(NULL, "s", "d", 60000, NOW), CODEC_OK);
	cr_assert_eq(push_existing("s", "info", big, false, 60000, NOW, NULL), CODEC_LIMIT);
	cr_assert_eq(push_existing("s", "info", "small", false, 60000, NOW, NULL), CODEC_OK);
	free(big);
}

/* The server-wide STATS figure ${key}. */
static uint64_t stats_uint(const char *key)
{
	struct codec_request req = {.op = CODEC_OP_STATS, .request_id = 12, .ns_all = true};
	struct codec_reply rep;

	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	return map_uint(&rep, key);
}

LEAK_CHECKED_TEST(dispatch, memory_limit_is_no_memory)
{
	char data[2048];
	uint32_t status = CODEC_OK;
	int i;

	teardown();
	fx_open(CODEC_DEFAULT_MAX_FRAME, 16 * 1024);
	hello();
	memset(data, 'y', sizeof(data) - 1);
	data[sizeof(data) - 1] = '\0';
	for (i = 0; i < 100 && status == CODEC_OK; i++) {
		char id[16];

		snprintf(id, sizeof(id), "s%d", i);
		status = do_set(NULL, id, data, 60000, NOW);
	}
	cr_assert_eq(status, CODEC_NO_MEMORY);
	cr_assert_lt(i, 100);
	cr_expect_eq(stats_uint("no_memory_total"), 1, "STATS counts the refusal");

	/* A FLASH_PUSH and a SET_IF that would grow the store are refused and counted too. */
	{
		struct codec_request req = {
		    .op = CODEC_OP_FLASH_PUSH, .request_id = 4, .ttl_ms = 60000};
		struct codec_reply rep;

		req.id = bytes("new-session");
		req.flash_type = bytes("info");
		req.flash_msg = bytes(data);
		cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
		cr_assert_eq(rep.status, CODEC_NO_MEMORY);
	}
	cr_assert_eq(do_set(NULL, "again", data, 60000, NOW), CODEC_NO_MEMORY);
	cr_expect_eq(stats_uint("no_memory_total"), 3);

	/* FLASH_PUSH_EXISTING: to a session with data, NO_MEMORY like FLASH_PUSH; to none, a
	 * full store is no reason to answer anything but NOT_FOUND. */
	cr_assert_eq(push_existing("s0", "info", data, false, 60000, NOW, NULL), CODEC_NO_MEMORY);
	cr_expect_eq(stats_uint("no_memory_total"), 4);
	cr_assert_eq(push_existing("new-session", "info", "x", false, 60000, NOW, NULL),
	             CODEC_NOT_FOUND);
	cr_expect_eq(stats_uint("no_memory_total"), 4);
}

LEAK_CHECKED_TEST(dispatch, count_list_clear)
{
	struct codec_request req = {.request_id = 11};
	struct codec_reply rep;
	struct mp_reader r;
	struct mp_bytes id;
	uint64_t cursor = 0, ttl;
	uint32_t n, pair;
	bool seen[2500] = {false};
	size_t total = 0;
	int pages = 0;

	hello();
	for (int i = 0; i < 2500; i++) {
		char name[16];

		snprintf(name, sizeof(name), "id-%d", i);
		cr_assert_eq(do_set("big", name, "x", 60000, NOW), CODEC_OK);
	}
	cr_assert_eq(do_set(NULL, "elsewhere", "x", 60000, NOW), CODEC_OK);

	req.op = CODEC_OP_COUNT;
	req.ns = bytes("big");
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(result_uint(&rep), 2500);

	req.op = CODEC_OP_LIST;
	req.limit = 1000;
	do {
		req.cursor = cursor;
		cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
		cr_assert_eq(rep.status, CODEC_OK);
		mp_reader_init(&r, rep.result.ptr, rep.result.len);
		cr_assert_eq(mp_read_array(&r, &pair), 0);
		cr_assert_eq(pair, 2);
		cr_assert_eq(mp_read_uint(&r, &cursor), 0);
		cr_assert_eq(mp_read_array(&r, &n), 0);
		cr_assert_leq(n, 1000);
		for (uint32_t i = 0; i < n; i++) {
			int k;

			cr_assert_eq(mp_read_array(&r, &pair), 0);
			cr_assert_eq(pair, 2);
			cr_assert_eq(mp_read_bin(&r, &id), 0, "ids come back as bin");
			cr_assert_eq(mp_read_uint(&r, &ttl), 0);
			cr_assert_leq(ttl, 60000);
			cr_assert_gt(id.len, 3);
			cr_assert_eq(memcmp(id.ptr, "id-", 3), 0);
			k = atoi((const char *)id.ptr + 3);
			cr_assert(k >= 0 && k < 2500);
			if (!seen[k])
				total++;
			seen[k] = true;
		}
		cr_assert_eq(mp_reader_left(&r), 0);
		pages++;
		cr_assert_lt(pages, 1000, "the scan ends");
	} while (cursor != 0);
	cr_assert_eq(total, 2500, "a full scan returns every session");

	req.op = CODEC_OP_CLEAR;
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(result_uint(&rep), 2500);
	req.op = CODEC_OP_COUNT;
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(result_uint(&rep), 0);
	req.ns = bytes(NULL);
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(result_uint(&rep), 1, "CLEAR touched one namespace only");
}

LEAK_CHECKED_TEST(dispatch, list_pages_fit_a_small_max_frame)
{
	struct codec_request req = {.op = CODEC_OP_LIST, .request_id = 1, .limit = 1000};
	struct codec_reply rep;
	char id[129];

	teardown();
	fx_open(CODEC_MIN_MAX_FRAME, 0);
	hello();
	memset(id, 'z', 128);
	id[128] = '\0';
	for (int i = 0; i < 100; i++) {
		snprintf(id, 12, "%011d", i);
		id[11] = 'z';
		cr_assert_eq(do_set(NULL, id, "x", 60000, NOW), CODEC_OK);
	}
	/* call_raw checks the reply is within max_frame. */
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
}

LEAK_CHECKED_TEST(dispatch, stats)
{
	struct codec_request req = {.op = CODEC_OP_STATS, .request_id = 12};
	struct codec_reply rep;

	hello();
	cr_assert_eq(do_set("a", "1", "xyz", 60000, NOW), CODEC_OK);
	cr_assert_eq(do_set("a", "2", "xyz", 60000, NOW), CODEC_OK);
	cr_assert_eq(do_set("b", "1", "xyz", 60000, NOW), CODEC_OK);
	push("1", "info", "m", false);

	req.ns = bytes("a");
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	cr_assert_eq(map_uint(&rep, "sessions"), 2);
	cr_assert_gt(map_uint(&rep, "bytes"), 0);
	cr_assert_eq(map_uint(&rep, "flashes"), 0);

	req.ns_all = true;
	req.ns = bytes(NULL);
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	cr_assert_eq(map_uint(&rep, "sessions"), 4);
	cr_assert_eq(map_uint(&rep, "namespaces"), 3);
	cr_assert_gt(map_uint(&rep, "bytes"), 0);
	cr_assert_eq(map_uint(&rep, "max_bytes"), 0);
	(void)map_uint(&rep, "expired_total");
	cr_assert_eq(map_uint(&rep, "connections"), 3);
	cr_assert_eq(map_uint(&rep, "connections_total"), 7);
	cr_assert_geq(map_uint(&rep, "requests_total"), 6);
	(void)map_uint(&rep, "uptime_ms");
	cr_assert_eq(map_uint(&rep, "no_memory_total"), 0, "nothing refused without a limit");
	cr_assert_eq(dispatch_requests_total(fx.d), map_uint(&rep, "requests_total"));
}

/* Encode ${req} as one more frame at the end of ${frames}; returns its body's offset. */
static size_t append_frame(struct buf *frames, const struct codec_request *req)
{
	size_t at = frames->len;

	cr_assert_eq(codec_encode_request(frames, req), 0, "encode op %u", req->op);
	return at + CODEC_HEADER_BYTES;
}

/* Run one hinted frame and check its reply's verdict, status and request id; the reply is
 * left decoded in ${rep} (borrowing fx.out). */
static void expect_hinted(const struct dispatch_frame_ref *frame, enum dispatch_verdict verdict,
                          uint32_t status, uint64_t request_id, struct codec_reply *rep)
{
	buf_reset(&fx.out);
	cr_assert_eq(dispatch_frame_hinted(fx.d, &fx.peer, frame, NOW, &fx.out), verdict);
	take_reply(rep);
	cr_assert_eq(rep->status, status, "status %u, not %u", rep->status, status);
	cr_assert_eq(rep->request_id, request_id);
}

LEAK_CHECKED_TEST(dispatch, hinted_batch_runs_what_the_hint_decoded)
{
	static const uint8_t malformed[] = {0x93, 0x10, 0x07, 0xc3}; /* GET with a bool ns */
	struct codec_request set_a = {.op = CODEC_OP_SET, .request_id = 10, .ttl_ms = 60000};
	struct codec_request get_a = {.op = CODEC_OP_GET, .request_id = 11};
	struct codec_request del_a = {.op = CODEC_OP_DESTROY, .request_id = 12};
	struct codec_request ping = {.op = CODEC_OP_PING, .request_id = 13};
	struct dispatch_frame_ref refs[6];
	size_t at[5];
	struct codec_reply rep;
	struct mp_bytes data;
	struct mp_reader r;
	struct buf frames;
	uint64_t before;

	hello();
	before = dispatch_requests_total(fx.d);
	set_a.id = get_a.id = del_a.id = bytes("sess-a");
	set_a.data = bytes("{\"cart\":3}");
	buf_init(&frames);
	at[0] = append_frame(&frames, &set_a);
	at[1] = append_frame(&frames, &get_a);
	at[2] = append_frame(&frames, &del_a);
	at[3] = append_frame(&frames, &get_a);
	at[4] = append_frame(&frames, &ping);
	for (size_t i = 0; i < 5; i++) {
		refs[i].body = frames.data + at[i];
		refs[i].len = codec_frame_length(frames.data + at[i] - CODEC_HEADER_BYTES);
		refs[i].decoded = false;
	}
	refs[5] = (struct dispatch_frame_ref){.body = malformed, .len = sizeof(malformed)};

	dispatch_prefetch(fx.d, refs, 6);
	for (size_t i = 0; i < 5; i++)
		cr_assert(refs[i].decoded, "frame %zu decoded by the hint", i);
	cr_assert_not(refs[5].decoded, "a malformed frame is left for dispatch to answer");
	cr_assert_eq(refs[1].req.op, CODEC_OP_GET);
	cr_assert_eq(refs[1].req.request_id, 11);

	expect_hinted(&refs[0], DISPATCH_KEEP, CODEC_OK, 10, &rep);
	expect_hinted(&refs[1], DISPATCH_KEEP, CODEC_OK, 11, &rep);
	mp_reader_init(&r, rep.result.ptr, rep.result.len);
	cr_assert_eq(mp_read_bin(&r, &data), 0);
	cr_assert_eq(data.len, strlen("{\"cart\":3}"));
	cr_assert_eq(memcmp(data.ptr, "{\"cart\":3}", data.len), 0);
	expect_hinted(&refs[2], DISPATCH_KEEP, CODEC_OK, 12, &rep);
	expect_hinted(&refs[3], DISPATCH_KEEP, CODEC_NOT_FOUND, 11, &rep);
	expect_hinted(&refs[4], DISPATCH_KEEP, CODEC_OK, 13, &rep);
	expect_hinted(&refs[5], DISPATCH_CLOSE, CODEC_BAD_REQUEST, 7, &rep);
	cr_assert_eq(dispatch_requests_total(fx.d) - before, 6, "each frame counted once");
	buf_finish(&frames);
}

/* The ${n} frames of ${frames} whose bodies start at ${at}, as refs, hinted as one batch. */
static void hint_frames(const struct buf *frames, const size_t *at, struct dispatch_frame_ref *refs,
                        int n)
{
	for (int i = 0; i < n; i++) {
		refs[i] = (struct dispatch_frame_ref){
		    .body = frames->data + at[i],
		    .len = codec_frame_length(frames->data + at[i] - CODEC_HEADER_BYTES)};
	}
	dispatch_prefetch(fx.d, refs, (size_t)n);
}

/* Sets n sessions "sess-00", "sess-01", ... of "app", each holding its own id, writing the
 * ids to ${ids}. */
static void set_numbered(char (*ids)[16], int n)
{
	for (int i = 0; i < n; i++) {
		snprintf(ids[i], sizeof(ids[i]), "sess-%02d", i);
		cr_assert_eq(do_set("app", ids[i], ids[i], 60000, NOW), CODEC_OK);
	}
}

/* Asserts ${rep}'s result is the bin ${own}: frame ${i}'s read found its own session. */
static void expect_own_session(const struct codec_reply *rep, const char *own, int i)
{
	struct mp_bytes got;
	struct mp_reader r;

	mp_reader_init(&r, rep->result.ptr, rep->result.len);
	cr_assert_eq(mp_read_bin(&r, &got), 0);
	cr_assert(got.len == strlen(own) && memcmp(got.ptr, own, got.len) == 0,
	          "frame %d's read found its own session", i);
}

/*
 * A hinted batch over sessions that exist: the hint hashes each id once and the request's
 * lookup takes that hash, so every operation must find its own session. Checked through
 * their replies and afterwards by plain requests: an overwrite that missed its session
 * would leave two of it (COUNT), a destroy that missed would leave it readable.
 */
LEAK_CHECKED_TEST(dispatch, hinted_batch_finds_existing_sessions)
{
	enum { N = 20 };
	struct codec_request req[N], count = {.op = CODEC_OP_COUNT, .request_id = 99};
	struct dispatch_frame_ref refs[N];
	char ids[N][16], data[64];
	size_t at[N];
	struct codec_reply rep;
	struct buf frames;

	hello();
	set_numbered(ids, N);
	/* GET 0-9, TOUCH 10-14, DESTROY 15-17, SET 18-19 (overwrites). */
	buf_init(&frames);
	for (int i = 0; i < N; i++) {
		uint32_t op = i < 10   ? CODEC_OP_GET
		              : i < 15 ? CODEC_OP_TOUCH
		              : i < 18 ? CODEC_OP_DESTROY
		                       : CODEC_OP_SET;

		req[i] =
		    (struct codec_request){.op = op, .request_id = (uint64_t)i, .ttl_ms = 60000};
		req[i].ns = bytes("app");
		req[i].id = bytes(ids[i]);
		req[i].data = bytes("new");
		at[i] = append_frame(&frames, &req[i]);
	}
	hint_frames(&frames, at, refs, N);
	for (int i = 0; i < N; i++) {
		cr_assert(refs[i].decoded && refs[i].id_hashed, "frame %d hashed by its hint", i);
		expect_hinted(&refs[i], DISPATCH_KEEP, CODEC_OK, (uint64_t)i, &rep);
		if (i < 10)
			expect_own_session(&rep, ids[i], i);
	}
	buf_finish(&frames);

	count.ns = bytes("app");
	cr_assert_eq(call(&count, &rep), DISPATCH_KEEP);
	cr_assert_eq(result_uint(&rep), N - 3, "three destroyed, no session twice");
	for (int i = 15; i < 18; i++)
		cr_assert_eq(do_get("app", ids[i], NOW, data, sizeof(data)), CODEC_NOT_FOUND);
	for (int i = 18; i < N; i++) {
		cr_assert_eq(do_get("app", ids[i], NOW, data, sizeof(data)), CODEC_OK);
		cr_assert_str_eq(data, "new");
	}
}

/*
 * A hinted batch whose first requests change what the hints of later ones found: a destroy of
 * a session read again after it, and new sessions, some going to the head of a bucket whose
 * session a hint found there. The lookups take what a hint found only while the store is as
 * it was then, so each request must still find its own session, or none.
 */
LEAK_CHECKED_TEST(dispatch, hinted_batch_after_changes_within_it)
{
	enum { N = 20, ADDED = 10, FRAMES = 2 + ADDED + N - 1 };
	struct codec_request req[FRAMES], count = {.op = CODEC_OP_COUNT, .request_id = 99};
	struct dispatch_frame_ref refs[FRAMES];
	char ids[N][16], added[ADDED][16], data[64];
	size_t at[FRAMES];
	struct codec_reply rep;
	struct buf frames;
	int f = 0;

	hello();
	set_numbered(ids, N);
	/* DESTROY 0, GET 0, SET ADDED new sessions, GET 1..N-1. */
	req[f++] = (struct codec_request){.op = CODEC_OP_DESTROY, .id = bytes(ids[0])};
	req[f++] = (struct codec_request){.op = CODEC_OP_GET, .id = bytes(ids[0])};
	for (int i = 0; i < ADDED; i++) {
		snprintf(added[i], sizeof(added[i]), "added-%02d", i);
		req[f++] = (struct codec_request){.op = CODEC_OP_SET,
		                                  .id = bytes(added[i]),
		                                  .data = bytes("new"),
		                                  .ttl_ms = 60000};
	}
	for (int i = 1; i < N; i++)
		req[f++] = (struct codec_request){.op = CODEC_OP_GET, .id = bytes(ids[i])};
	cr_assert_eq(f, FRAMES);
	buf_init(&frames);
	for (int i = 0; i < FRAMES; i++) {
		req[i].request_id = (uint64_t)i;
		req[i].ns = bytes("app");
		at[i] = append_frame(&frames, &req[i]);
	}
	hint_frames(&frames, at, refs, FRAMES);
	for (int i = 0; i < FRAMES; i++) {
		int id = i - 2 - ADDED + 1;

		cr_assert(refs[i].decoded && refs[i].id_hashed, "frame %d hashed by its hint", i);
		expect_hinted(&refs[i], DISPATCH_KEEP, i == 1 ? CODEC_NOT_FOUND : CODEC_OK,
		              (uint64_t)i, &rep);
		if (id >= 1)
			expect_own_session(&rep, ids[id], i);
	}
	buf_finish(&frames);

	count.ns = bytes("app");
	cr_assert_eq(call(&count, &rep), DISPATCH_KEEP);
	cr_assert_eq(result_uint(&rep), N - 1 + ADDED);
	cr_assert_eq(do_get("app", ids[0], NOW, data, sizeof(data)), CODEC_NOT_FOUND);
	for (int i = 0; i < ADDED; i++) {
		cr_assert_eq(do_get("app", added[i], NOW, data, sizeof(data)), CODEC_OK);
		cr_assert_str_eq(data, "new");
	}
}

/*
 * A hinted batch whose earlier requests change the store in the other ways a later hint's find
 * can go stale: a lookup reclaims an expired session, a SET moves its session to a larger node,
 * a CLEAR frees a namespace whose sessions later hints found and a SET makes a namespace of that
 * name again, and new sessions make the table grow and move. Each request must find its own
 * session, or none; a stale find read freed memory (ASan) or another session's data.
 */
LEAK_CHECKED_TEST(dispatch, hinted_batch_after_reclaim_move_clear_and_resize)
{
	/* 31 live sessions and an expired one fill "app"'s 32 buckets: two more make it grow. */
	enum { LIVE = 31, FIRST_GET = 4, FRAMES = 32, BIG = 600 };
	struct codec_request req[FRAMES];
	struct dispatch_frame_ref refs[FRAMES];
	static const uint32_t want[] = {CODEC_NOT_FOUND, CODEC_OK, CODEC_OK,        CODEC_OK,
	                                CODEC_OK,        CODEC_OK, CODEC_NOT_FOUND, CODEC_OK,
	                                CODEC_NOT_FOUND, CODEC_OK, CODEC_OK};
	const int n_set_up = (int)(sizeof(want) / sizeof(want[0]));
	char ids[LIVE][16], big[BIG + 1];
	size_t at[FRAMES];
	struct codec_reply rep;
	struct buf frames;
	int f = 0;

	hello();
	set_numbered(ids, LIVE);
	cr_assert_eq(do_set("app", "old", "old", 50, NOW - 100), CODEC_OK);
	cr_assert_eq(do_set("tmp", "t-0", "t-0", 60000, NOW), CODEC_OK);
	cr_assert_eq(do_set("tmp", "t-1", "t-1", 60000, NOW), CODEC_OK);
	memset(big, 'B', BIG);
	big[BIG] = '\0';

	req[f++] =
	    (struct codec_request){.op = CODEC_OP_GET, .ns = bytes("app"), .id = bytes("old")};
	req[f++] =
	    (struct codec_request){.op = CODEC_OP_GET, .ns = bytes("app"), .id = bytes(ids[1])};
	req[f++] = (struct codec_request){.op = CODEC_OP_SET,
	                                  .ns = bytes("app"),
	                                  .id = bytes(ids[2]),
	                                  .data = bytes(big),
	                                  .ttl_ms = 60000};
	req[f++] =
	    (struct codec_request){.op = CODEC_OP_GET, .ns = bytes("app"), .id = bytes(ids[2])};
	req[f++] =
	    (struct codec_request){.op = CODEC_OP_GET, .ns = bytes("app"), .id = bytes(ids[3])};
	req[f++] = (struct codec_request){.op = CODEC_OP_CLEAR, .ns = bytes("tmp")};
	req[f++] =
	    (struct codec_request){.op = CODEC_OP_GET, .ns = bytes("tmp"), .id = bytes("t-0")};
	req[f++] = (struct codec_request){.op = CODEC_OP_SET,
	                                  .ns = bytes("tmp"),
	                                  .id = bytes("t-0"),
	                                  .data = bytes("again"),
	                                  .ttl_ms = 60000};
	req[f++] =
	    (struct codec_request){.op = CODEC_OP_GET, .ns = bytes("tmp"), .id = bytes("t-1")};
	req[f++] = (struct codec_request){.op = CODEC_OP_SET,
	                                  .ns = bytes("app"),
	                                  .id = bytes("new-0"),
	                                  .data = bytes("n"),
	                                  .ttl_ms = 60000};
	req[f++] = (struct codec_request){.op = CODEC_OP_SET,
	                                  .ns = bytes("app"),
	                                  .id = bytes("new-1"),
	                                  .data = bytes("n"),
	                                  .ttl_ms = 60000};
	cr_assert_eq(f, n_set_up);
	for (int i = FIRST_GET; f < FRAMES; i++)
		req[f++] = (struct codec_request){
		    .op = CODEC_OP_GET, .ns = bytes("app"), .id = bytes(ids[i])};
	buf_init(&frames);
	for (int i = 0; i < FRAMES; i++) {
		req[i].request_id = (uint64_t)i;
		at[i] = append_frame(&frames, &req[i]);
	}
	hint_frames(&frames, at, refs, FRAMES);
	for (int i = 0; i < FRAMES; i++) {
		const char *own = i == 1 ? ids[1] : i == 3 ? big : i == 4 ? ids[3] : NULL;

		if (req[i].op != CODEC_OP_CLEAR)
			cr_assert(refs[i].decoded && refs[i].id_hashed,
			          "frame %d hashed by its hint", i);
		expect_hinted(&refs[i], DISPATCH_KEEP, i < n_set_up ? want[i] : CODEC_OK,
		              (uint64_t)i, &rep);
		if (i == 5)
			cr_assert_eq(result_uint(&rep), 2, "CLEAR removed tmp's two sessions");
		if (i >= n_set_up)
			own = ids[FIRST_GET + i - n_set_up];
		if (own != NULL)
			expect_own_session(&rep, own, i);
	}
	buf_finish(&frames);
}

/* Dispatch ${req} at ${now} expecting it to be put off: nothing written, nothing counted. */
/*
 * Dispatch ${req} at ${now} within the loop turn under way (no dispatch_turn_begins, unlike
 * call): its reply, if any, is left in fx.out. Returns the verdict.
 */
static enum dispatch_verdict dispatch_in_turn(const struct codec_request *req, uint64_t now)
{
	buf_reset(&fx.req);
	buf_reset(&fx.out);
	cr_assert_eq(codec_encode_request(&fx.req, req), 0, "encode op %u", req->op);
	return dispatch_frame(fx.d, &fx.peer, fx.req.data + CODEC_HEADER_BYTES,
	                      fx.req.len - CODEC_HEADER_BYTES, now, &fx.out);
}

static void expect_later(struct codec_request *req, uint64_t now)
{
	uint64_t before = dispatch_requests_total(fx.d);

	cr_assert_eq(dispatch_in_turn(req, now), DISPATCH_LATER, "op %u put off", req->op);
	cr_assert_eq(fx.out.len, 0, "nothing written");
	cr_assert_eq(dispatch_requests_total(fx.d), before, "counted when carried out");
}

/* ${due} sessions of ${ns} that are due at NOW + 10, then ${live} that live on. */
static void fill(const char *ns, int due, int live)
{
	char name[16];

	for (int i = 0; i < due + live; i++) {
		snprintf(name, sizeof(name), "id-%d", i);
		cr_assert_eq(do_set(ns, name, "x", i < due ? 10 : 60000, NOW), CODEC_OK);
	}
}

/*
 * While a mass expiry is behind, the only exact COUNT of a namespace is a walk of it. A small
 * one is walked at once; a large one's COUNT and CLEAR are put off until the expiry has
 * caught up (dispatch_retries), and a stopping server carries them out at once.
 */
LEAK_CHECKED_TEST(dispatch, count_and_clear_wait_for_a_mass_expiry)
{
	enum { DUE = 20000, LIVE = 10 };
	struct codec_request req = {.request_id = 5};
	struct codec_reply rep;
	struct store_stats stats;

	hello();
	fill("big", DUE, LIVE);
	fill("small", 100, 3);
	cr_assert_eq(dispatch_retries(fx.d, NOW + 20), 0, "nothing was put off");

	req.op = CODEC_OP_COUNT;
	req.ns = bytes("small");
	cr_assert_eq(call_at(&req, NOW + 20, &rep), DISPATCH_KEEP);
	cr_assert_eq(result_uint(&rep), 3, "a small namespace is walked at once");
	/* A turn of its own: in the small COUNT's, a walk the machine stretched past the turn's
	 * budget for heavy requests (a loaded machine, a sanitizer build) put these off for the
	 * budget, not for the expiry. */
	dispatch_turn_begins(fx.d);
	req.ns = bytes("big");
	expect_later(&req, NOW + 20);
	req.op = CODEC_OP_CLEAR;
	expect_later(&req, NOW + 20);
	cr_assert_eq(dispatch_retries(fx.d, NOW + 20), 0, "not while the expiry is behind");
	cr_assert(dispatch_waits_for_expiry(fx.d));
	store_stats(fx.st, (const uint8_t *)"big", 3, &stats);
	cr_assert_gt(stats.sessions, LIVE, "the put-off CLEAR did nothing");

	dispatch_stop_deferring(fx.d);
	cr_assert_eq(dispatch_retries(fx.d, NOW + 20), SIZE_MAX, "a stopping server hands all");
	req.op = CODEC_OP_COUNT;
	cr_assert_eq(call_at(&req, NOW + 20, &rep), DISPATCH_KEEP);
	cr_assert_eq(result_uint(&rep), LIVE, "a stopping server counts at once");
	req.op = CODEC_OP_CLEAR;
	cr_assert_eq(call_at(&req, NOW + 20, &rep), DISPATCH_KEEP);
	cr_assert_eq(result_uint(&rep), LIVE);
}

/* Once the expiry has caught up, the put-off COUNT and CLEAR are answered from the counts. */
LEAK_CHECKED_TEST(dispatch, count_and_clear_answer_once_expiry_caught_up)
{
	enum { DUE = 20000, LIVE = 10 };
	struct codec_request req = {.request_id = 5, .ns = {(const uint8_t *)"big", 3}};
	struct codec_reply rep;

	hello();
	fill("big", DUE, LIVE);
	req.op = CODEC_OP_COUNT;
	expect_later(&req, NOW + 20);
	for (int slices = 0; dispatch_retries(fx.d, NOW + 20) != SIZE_MAX; slices++) {
		cr_assert_lt(slices, 10000, "the expiry catches up");
		store_expire(fx.st, NOW + 20, 32);
	}
	cr_assert_eq(call_at(&req, NOW + 20, &rep), DISPATCH_KEEP);
	cr_assert_eq(result_uint(&rep), LIVE);
	req.op = CODEC_OP_CLEAR;
	cr_assert_eq(call_at(&req, NOW + 20, &rep), DISPATCH_KEEP);
	cr_assert_eq(result_uint(&rep), LIVE);
}

/* --- SET_IF (PROTOCOL.md, "Sessions") --- */

/*
 * SET_IF (with ${data}) or TOUCH_IF (${op}) of ${id} at ${now}, expecting the tag of ${read};
 * returns the status. OK and NOT_FOUND carry nil, the others a message; none closes.
 */
static uint32_t do_if(uint32_t op, const char *id, const char *data, uint64_t ttl, const char *read,
                      uint64_t now)
{
	struct codec_request req = {.op = op, .request_id = 20, .ttl_ms = ttl};
	uint8_t tag[CODEC_TAG_BYTES];
	struct codec_reply rep;

	codec_data_tag(read, strlen(read), tag);
	req.id = bytes(id);
	req.data = bytes(data);
	req.expect = (struct mp_bytes){tag, sizeof(tag)};
	cr_assert_eq(call_at(&req, now, &rep), DISPATCH_KEEP, "%s keeps the connection",
	             codec_op_name(op));
	cr_assert_eq(rep.request_id, 20);
	if (rep.status == CODEC_OK || rep.status == CODEC_NOT_FOUND)
		cr_assert(rep.result.len == 1 && rep.result.ptr[0] == 0xc0, "%s carries nil",
		          codec_status_name(rep.status));
	else
		cr_assert_gt(rep.message.len, 0);
	return rep.status;
}

static uint32_t do_set_if(const char *id, const char *data, uint64_t ttl, const char *read,
                          uint64_t now)
{
	return do_if(CODEC_OP_SET_IF, id, data, ttl, read, now);
}

LEAK_CHECKED_TEST(dispatch, set_if_stores_over_the_tag_it_names)
{
	char data[64];

	hello();
	cr_assert_eq(do_set_if("s", "v1", 1000, "", NOW), CODEC_NOT_FOUND, "no session");
	cr_assert_eq(do_get(NULL, "s", NOW, data, sizeof(data)), CODEC_NOT_FOUND,
	             "and none was made");
	cr_assert_eq(do_set(NULL, "s", "v1", 1000, NOW), CODEC_OK);
	cr_assert_eq(do_set_if("s", "v2", 5000, "v0", NOW + 500), CODEC_CONFLICT);
	cr_assert_eq(do_get(NULL, "s", NOW + 999, data, sizeof(data)), CODEC_OK);
	cr_assert_str_eq(data, "v1", "a CONFLICT changes nothing");
	cr_assert_eq(do_get(NULL, "s", NOW + 1000, data, sizeof(data)), CODEC_NOT_FOUND,
	             "not even the expiry");

	cr_assert_eq(do_set(NULL, "s", "v1", 1000, NOW), CODEC_OK);
	cr_assert_eq(do_set_if("s", "v2", 5000, "v1", NOW + 500), CODEC_OK);
	cr_assert_eq(do_get(NULL, "s", NOW + 5499, data, sizeof(data)), CODEC_OK);
	cr_assert_str_eq(data, "v2");
	cr_assert_eq(do_get(NULL, "s", NOW + 5500, data, sizeof(data)), CODEC_NOT_FOUND,
	             "the expiry is the SET_IF's now + ttl");
	cr_assert_eq(do_set_if("s", "v3", 5000, "v2", NOW + 5500), CODEC_NOT_FOUND,
	             "an expired session is gone");
	cr_assert_eq(do_get(NULL, "s", NOW + 5500, data, sizeof(data)), CODEC_NOT_FOUND);
}

/* A SET_IF that matches meets SET's limits, with SET's answers; one that does not is a
 * CONFLICT whatever it carries. */
LEAK_CHECKED_TEST(dispatch, set_if_has_the_limits_of_set)
{
	static char big[20000];
	char data[64];

	teardown();
	fx_open(CODEC_MIN_MAX_FRAME, 16 * 1024);
	hello();
	memset(big, 'b', sizeof(big) - 1);
	cr_assert_eq(do_set(NULL, "s", "small", 60000, NOW), CODEC_OK);
	big[CODEC_MIN_MAX_FRAME - CODEC_REPLY_DATA_OVERHEAD + 1] = '\0';
	cr_assert_eq(do_set_if("s", big, 60000, "small", NOW), CODEC_LIMIT);
	cr_assert_eq(do_set_if("s", big, 60000, "other", NOW), CODEC_CONFLICT);
	cr_assert_eq(do_get(NULL, "s", NOW, data, sizeof(data)), CODEC_OK);
	cr_assert_str_eq(data, "small");

	teardown();
	fx_open(CODEC_DEFAULT_MAX_FRAME, 16 * 1024);
	hello();
	cr_assert_eq(do_set(NULL, "s", "small", 60000, NOW), CODEC_OK);
	memset(big, 'b', sizeof(big) - 1);
	cr_assert_eq(do_set_if("s", big, 60000, "small", NOW), CODEC_NO_MEMORY);
	cr_assert_eq(do_get(NULL, "s", NOW, data, sizeof(data)), CODEC_OK);
	cr_assert_str_eq(data, "small", "nothing changed");
}

/* A batch hinted ahead: each SET_IF sees the change of the request before it. */
LEAK_CHECKED_TEST(dispatch, hinted_set_if_sees_the_set_before_it)
{
	struct codec_request set = {.op = CODEC_OP_SET, .request_id = 30, .ttl_ms = 60000};
	struct codec_request set_if = {.op = CODEC_OP_SET_IF, .request_id = 31, .ttl_ms = 60000};
	uint8_t old[CODEC_TAG_BYTES], new[CODEC_TAG_BYTES];
	struct dispatch_frame_ref refs[3];
	struct codec_reply rep;
	struct buf frames;
	size_t at[3];
	char data[64];

	hello();
	cr_assert_eq(do_set(NULL, "h", "old", 60000, NOW), CODEC_OK);
	codec_data_tag("old", 3, old);
	codec_data_tag("new", 3, new);
	buf_init(&frames);
	set.id = set_if.id = bytes("h");
	set.data = bytes("new");
	at[0] = append_frame(&frames, &set);
	set_if.data = bytes("stale");
	set_if.expect = (struct mp_bytes){old, sizeof(old)};
	at[1] = append_frame(&frames, &set_if);
	set_if.request_id = 32;
	set_if.data = bytes("merged");
	set_if.expect = (struct mp_bytes){new, sizeof(new)};
	at[2] = append_frame(&frames, &set_if);
	for (size_t i = 0; i < 3; i++) {
		refs[i].body = frames.data + at[i];
		refs[i].len = codec_frame_length(frames.data + at[i] - CODEC_HEADER_BYTES);
		refs[i].decoded = false;
	}
	dispatch_prefetch(fx.d, refs, 3);
	cr_assert(refs[1].decoded && refs[1].req.op == CODEC_OP_SET_IF);
	expect_hinted(&refs[0], DISPATCH_KEEP, CODEC_OK, 30, &rep);
	expect_hinted(&refs[1], DISPATCH_KEEP, CODEC_CONFLICT, 31, &rep);
	/* A turn of its own, or a machine that preempts the first SET_IF's timed check for a
	 * millisecond spends the turn's budget for heavy requests, and this one is put off. */
	dispatch_turn_begins(fx.d);
	expect_hinted(&refs[2], DISPATCH_KEEP, CODEC_OK, 32, &rep);
	cr_assert_eq(do_get(NULL, "h", NOW, data, sizeof(data)), CODEC_OK);
	cr_assert_str_eq(data, "merged");
	buf_finish(&frames);
}

/* Data kept from a larger --max-frame, which GET refuses with LIMIT, is compared like any
 * other: a client that knows it (it stored it) may replace it. */
LEAK_CHECKED_TEST(dispatch, set_if_compares_data_over_max_data)
{
	static char big[CODEC_MIN_MAX_FRAME + 100];
	struct store_key key = {.ns = (const uint8_t *)CODEC_DEFAULT_NAMESPACE,
	                        .ns_len = strlen(CODEC_DEFAULT_NAMESPACE),
	                        .id = (const uint8_t *)"old",
	                        .id_len = 3};
	struct codec_request get = {.op = CODEC_OP_GET, .request_id = 21};
	struct codec_reply rep;
	char data[64];

	teardown();
	fx_open(CODEC_MIN_MAX_FRAME, 0);
	hello();
	memset(big, 'o', sizeof(big) - 1);
	cr_assert_eq(store_set(fx.st, &key, big, sizeof(big) - 1, NOW + 60000, NOW), 0);
	get.id = bytes("old");
	cr_assert_eq(call(&get, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_LIMIT, "GET refuses it");
	cr_assert_eq(do_set_if("old", "small", 60000, "o", NOW), CODEC_CONFLICT);
	cr_assert_eq(do_set_if("old", "small", 60000, big, NOW), CODEC_OK);
	cr_assert_eq(do_get(NULL, "old", NOW, data, sizeof(data)), CODEC_OK);
	cr_assert_str_eq(data, "small");
}

/*
 * TTL of ${id} in ${ns} at ${now}: returns the status, with the remaining ms in ${ttl_ms} on
 * OK. NOT_FOUND must carry nil, and neither closes the connection.
 */
static uint32_t do_ttl(const char *ns, const char *id, uint64_t now, uint64_t *ttl_ms)
{
	struct codec_request req = {.op = CODEC_OP_TTL, .request_id = 21};
	struct codec_reply rep;

	req.ns = bytes(ns);
	req.id = bytes(id);
	cr_assert_eq(call_at(&req, now, &rep), DISPATCH_KEEP, "the connection stays open");
	cr_assert_eq(rep.request_id, 21);
	if (rep.status == CODEC_OK) {
		*ttl_ms = result_uint(&rep);
	} else {
		cr_assert_eq(rep.status, CODEC_NOT_FOUND, "TTL status %u", rep.status);
		cr_assert_eq(rep.result.len, 1);
		cr_assert_eq(rep.result.ptr[0], 0xc0, "NOT_FOUND carries nil");
	}
	return rep.status;
}

/* --- TOUCH_IF (PROTOCOL.md, "Sessions") --- */

static uint32_t do_touch_if(const char *id, uint64_t ttl, const char *read, uint64_t now)
{
	return do_if(CODEC_OP_TOUCH_IF, id, NULL, ttl, read, now);
}

/* The review's case: a slow request read the session before a "remember me" saved it with a
 * longer lifetime; its touch with the lifetime it read must not cut that back. */
LEAK_CHECKED_TEST(dispatch, touch_if_moves_the_expiry_only_over_the_tag_it_names)
{
	uint64_t ms = 0;
	char data[64];

	hello();
	cr_assert_eq(do_set(NULL, "s", "1h", 3600000, NOW), CODEC_OK);
	cr_assert_eq(do_touch_if("s", 7200000, "1h", NOW + 1000), CODEC_OK);
	cr_assert_eq(do_ttl(NULL, "s", NOW + 1000, &ms), CODEC_OK);
	cr_assert_eq(ms, 7200000, "OK: the expiry is the TOUCH_IF's now + ttl");
	cr_assert_eq(do_get(NULL, "s", NOW + 1000, data, sizeof(data)), CODEC_OK);
	cr_assert_str_eq(data, "1h", "the data is untouched");

	cr_assert_eq(do_set(NULL, "s", "30d", 2592000000ull, NOW + 2000), CODEC_OK);
	cr_assert_eq(do_touch_if("s", 3600000, "1h", NOW + 3000), CODEC_CONFLICT);
	cr_assert_eq(do_ttl(NULL, "s", NOW + 3000, &ms), CODEC_OK);
	cr_assert_eq(ms, 2592000000ull - 1000, "a CONFLICT leaves the expiry the save chose");
	cr_assert_eq(do_get(NULL, "s", NOW + 3000, data, sizeof(data)), CODEC_OK);
	cr_assert_str_eq(data, "30d");
	/* A shorter ttl over the current tag is taken as it is: TOUCH_IF sets, never merges. */
	cr_assert_eq(do_touch_if("s", 1000, "30d", NOW + 3000), CODEC_OK);
	cr_assert_eq(do_ttl(NULL, "s", NOW + 3000, &ms), CODEC_OK);
	cr_assert_eq(ms, 1000);
	cr_assert_eq(do_touch_if("s", 1000, "30d", NOW + 4000), CODEC_NOT_FOUND,
	             "an expired session is gone");
}

LEAK_CHECKED_TEST(dispatch, touch_if_never_makes_a_session)
{
	struct codec_request destroy = {.op = CODEC_OP_DESTROY, .request_id = 23};
	struct codec_reply rep;
	uint64_t ms = 0;
	char data[64];

	hello();
	cr_assert_eq(do_touch_if("none", 60000, "", NOW), CODEC_NOT_FOUND, "no session");
	cr_assert_eq(do_ttl(NULL, "none", NOW, &ms), CODEC_NOT_FOUND, "and none was made");
	cr_assert_eq(count_default(), 0);

	/* Flashes only (no data): NOT_FOUND, not even for the tag of empty data, and the
	 * flash-only session keeps its expiry. */
	push("flashy", "info", "hi", false);
	cr_assert_eq(do_ttl(NULL, "flashy", NOW, &ms), CODEC_OK);
	cr_assert_eq(ms, 60000);
	cr_assert_eq(do_touch_if("flashy", 3600000, "", NOW + 10), CODEC_NOT_FOUND);
	cr_assert_eq(do_ttl(NULL, "flashy", NOW + 10, &ms), CODEC_OK);
	cr_assert_eq(ms, 60000 - 10, "nothing changed");

	/* Destroyed (a logout) after the read: nothing comes back. */
	cr_assert_eq(do_set(NULL, "gone", "v", 60000, NOW), CODEC_OK);
	destroy.id = bytes("gone");
	cr_assert_eq(call(&destroy, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	cr_assert_eq(do_touch_if("gone", 60000, "v", NOW), CODEC_NOT_FOUND);
	cr_assert_eq(do_get(NULL, "gone", NOW, data, sizeof(data)), CODEC_NOT_FOUND);
	cr_assert_eq(count_default(), 1, "only the flash-only session");
}

/* TTL (PROTOCOL.md, "Sessions"): a session's expiry instant minus now, moving nothing. */
LEAK_CHECKED_TEST(dispatch, ttl_is_the_remaining_lifetime)
{
	struct codec_request req = {.op = CODEC_OP_TOUCH, .request_id = 9, .ttl_ms = 5000};
	struct codec_reply rep;
	uint64_t ms = 0, before;
	char data[64];

	hello();
	cr_assert_eq(do_ttl(NULL, "missing", NOW, &ms), CODEC_NOT_FOUND);

	/* Live: counts down with the server's now, at least 1 ms, then gone. */
	cr_assert_eq(do_set(NULL, "s1", "hello", 1000, NOW), CODEC_OK);
	cr_assert_eq(do_ttl(NULL, "s1", NOW, &ms), CODEC_OK);
	cr_assert_eq(ms, 1000);
	cr_assert_eq(do_ttl(NULL, "s1", NOW + 400, &ms), CODEC_OK);
	cr_assert_eq(ms, 600);
	cr_assert_eq(do_ttl(NULL, "s1", NOW + 999, &ms), CODEC_OK);
	cr_assert_eq(ms, 1, "the last live millisecond");
	/* The same id in another namespace is another session. */
	cr_assert_eq(do_ttl("other", "s1", NOW, &ms), CODEC_NOT_FOUND);
	/* Asking moved nothing: the session still ends at NOW + 1000. */
	cr_assert_eq(do_get(NULL, "s1", NOW + 999, data, sizeof(data)), CODEC_OK);
	cr_assert_eq(do_ttl(NULL, "s1", NOW + 1000, &ms), CODEC_NOT_FOUND, "expired");
	cr_assert_eq(do_get(NULL, "s1", NOW + 1000, data, sizeof(data)), CODEC_NOT_FOUND);

	/* Touched: the new expiry, counted from the TOUCH's now. */
	cr_assert_eq(do_set(NULL, "s2", "x", 1000, NOW), CODEC_OK);
	req.id = bytes("s2");
	cr_assert_eq(call_at(&req, NOW + 500, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	cr_assert_eq(do_ttl(NULL, "s2", NOW + 600, &ms), CODEC_OK);
	cr_assert_eq(ms, 4900);

	/* Flashes only: GET finds no data, but the session lives, and TTL says how long. */
	cr_assert_eq(push("f1", "info", "hi", false), 1);
	cr_assert_eq(do_get(NULL, "f1", NOW, data, sizeof(data)), CODEC_NOT_FOUND);
	cr_assert_eq(do_ttl(NULL, "f1", NOW + 1, &ms), CODEC_OK);
	cr_assert_eq(ms, 59999);
	cr_assert_eq(count_default(), 2, "s2 and f1");

	/* Destroyed: gone. A TTL is counted like any request. */
	req.op = CODEC_OP_DESTROY;
	req.id = bytes("f1");
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	before = dispatch_requests_total(fx.d);
	cr_assert_eq(do_ttl(NULL, "f1", NOW + 1, &ms), CODEC_NOT_FOUND);
	cr_assert_eq(dispatch_requests_total(fx.d), before + 1);
}

/* A TTL is answered at once during a mass expiry, when COUNT of a large namespace waits. */
LEAK_CHECKED_TEST(dispatch, ttl_is_never_put_off)
{
	enum { DUE = 20000, LIVE = 10 };
	uint64_t ms = 0;

	hello();
	fill("big", DUE, LIVE);
	cr_assert_eq(do_ttl("big", "id-0", NOW + 20, &ms), CODEC_NOT_FOUND, "due at NOW + 10");
	cr_assert_eq(do_ttl("big", "id-20000", NOW + 20, &ms), CODEC_OK);
	cr_assert_eq(ms, 60000 - 20);
	cr_assert(!dispatch_waits_for_expiry(fx.d));
}

/*
 * LOAD of ${id} (default namespace) at ${now} with request id ${request_id}: returns the
 * status, with the data in ${data} (NUL-terminated, at most ${size} - 1 bytes; may be NULL
 * when ${size} is 0) and the flash count in ${flashes} on OK. NOT_FOUND must carry nil.
 */
static uint32_t do_load(const char *id, uint64_t request_id, uint64_t now, char *data, size_t size,
                        uint64_t *flashes)
{
	struct codec_request req = {.op = CODEC_OP_LOAD, .request_id = request_id};
	struct codec_reply rep;
	struct mp_reader r;
	struct mp_bytes b;
	uint32_t n;

	req.id = bytes(id);
	cr_assert_eq(call_at(&req, now, &rep), DISPATCH_KEEP, "the connection stays open");
	cr_assert_eq(rep.request_id, request_id);
	if (rep.status == CODEC_OK) {
		mp_reader_init(&r, rep.result.ptr, rep.result.len);
		cr_assert_eq(mp_read_array(&r, &n), 0, "LOAD returns an array");
		cr_assert_eq(n, 2);
		cr_assert_eq(mp_read_bin(&r, &b), 0, "its data is bin");
		cr_assert_eq(mp_read_uint(&r, flashes), 0, "its flash count is a uint");
		cr_assert_eq(mp_reader_left(&r), 0);
		if (size > 0) {
			cr_assert_lt(b.len, size);
			memcpy(data, b.ptr, b.len);
			data[b.len] = '\0';
		}
	} else if (rep.status == CODEC_NOT_FOUND) {
		cr_assert_eq(rep.result.len, 1);
		cr_assert_eq(rep.result.ptr[0], 0xc0, "NOT_FOUND carries nil");
	}
	return rep.status;
}

/* LOAD (PROTOCOL.md, "Sessions"): GET's data, and how many flash messages are queued. */
LEAK_CHECKED_TEST(dispatch, load_counts_the_queued_flashes)
{
	struct codec_request pop = {.op = CODEC_OP_FLASH_POP, .request_id = 5, .flash_all = true};
	struct codec_reply rep;
	uint64_t flashes = 99;
	char data[64];

	hello();
	cr_assert_eq(do_load("missing", 3, NOW, data, sizeof(data), &flashes), CODEC_NOT_FOUND);
	cr_assert_eq(do_set(NULL, "s1", "cart=2", 60000, NOW), CODEC_OK);
	cr_assert_eq(do_load("s1", 3, NOW, data, sizeof(data), &flashes), CODEC_OK);
	cr_assert_str_eq(data, "cart=2");
	cr_assert_eq(flashes, 0);

	/* Every type counts, every message of each. */
	cr_assert_eq(push("s1", "info", "saved", false), 1);
	cr_assert_eq(push("s1", "info", "again", false), 2);
	cr_assert_eq(push("s1", "error", "\x01", true), 1);
	cr_assert_eq(do_load("s1", 3, NOW, data, sizeof(data), &flashes), CODEC_OK);
	cr_assert_eq(flashes, 3);
	/* A request id over 32 bits, as a client may send, changes nothing. */
	cr_assert_eq(do_load("s1", UINT64_MAX, NOW, data, sizeof(data), &flashes), CODEC_OK);
	cr_assert_eq(flashes, 3);

	/* LOAD pops nothing: the messages are still there for FLASH_POP, which empties them. */
	pop.id = bytes("s1");
	cr_assert_eq(call(&pop, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	cr_assert_gt(rep.result.len, 1, "the pop found the messages");
	cr_assert_eq(do_load("s1", 3, NOW, data, sizeof(data), &flashes), CODEC_OK);
	cr_assert_eq(flashes, 0);

	/* Flashes only: no data, so NOT_FOUND, as GET. Expired: NOT_FOUND. */
	cr_assert_eq(push("f1", "info", "hi", false), 1);
	cr_assert_eq(do_load("f1", 3, NOW, data, sizeof(data), &flashes), CODEC_NOT_FOUND);
	cr_assert_eq(do_load("s1", 3, NOW + 60000, data, sizeof(data), &flashes), CODEC_NOT_FOUND);
}

/* A LOAD reply holds 10 bytes more than a GET's: data within that of max_data, which GET
 * returns, is LIMIT for LOAD, so that no reply passes max_frame (take_reply checks). */
LEAK_CHECKED_TEST(dispatch, load_of_data_near_max_data_is_limit)
{
	static char big[CODEC_MIN_MAX_FRAME];
	const size_t max = CODEC_MIN_MAX_FRAME - CODEC_REPLY_DATA_OVERHEAD;
	uint64_t flashes;

	teardown();
	fx_open(CODEC_MIN_MAX_FRAME, 0);
	hello();
	memset(big, 'b', sizeof(big) - 1);
	big[max] = '\0';
	cr_assert_eq(do_set(NULL, "full", big, 60000, NOW), CODEC_OK, "max_data is stored");
	cr_assert_eq(do_get(NULL, "full", NOW, big, sizeof(big)), CODEC_OK);
	cr_assert_eq(do_load("full", UINT64_MAX, NOW, NULL, 0, &flashes), CODEC_LIMIT);
	memset(big, 'b', sizeof(big) - 1);
	big[max - CODEC_LOAD_EXTRA_OVERHEAD] = '\0';
	cr_assert_eq(do_set(NULL, "fits", big, 60000, NOW), CODEC_OK);
	cr_assert_eq(push("fits", "info", "x", false), 1);
	cr_assert_eq(do_load("fits", UINT64_MAX, NOW, NULL, 0, &flashes), CODEC_OK,
	             "the longest data LOAD returns, with the longest request id");
	cr_assert_eq(flashes, 1);
}

/*
 * During a mass expiry a COUNT of a small namespace is walked at once, after a slice of the
 * reclaim: up to a millisecond each, and a pipeline of thousands (10 bytes each, no admin
 * secret) held the loop for 0.3 s. They share the turn's budget for heavy requests: past it
 * the rest wait for the next turn, which hands them again; with the expiry caught up a COUNT
 * costs nothing and is not held back.
 */
LEAK_CHECKED_TEST(dispatch, counts_during_a_mass_expiry_share_the_turn)
{
	enum { DUE = 20000, SMALL = 16000, MOST = 5000 };
	struct codec_request req = {.op = CODEC_OP_COUNT, .request_id = 6};
	struct codec_reply rep;
	enum dispatch_verdict v = DISPATCH_KEEP;
	int ran = 0;

	hello();
	fill("due", DUE, 0);
	fill("small", 0, SMALL);
	req.ns = bytes("small");
	dispatch_turn_begins(fx.d);
	while (ran < MOST) {
		v = dispatch_in_turn(&req, NOW + 20);
		if (v == DISPATCH_LATER)
			break;
		cr_assert_eq(v, DISPATCH_KEEP);
		ran++;
	}
	cr_assert_eq(v, DISPATCH_LATER, "%d COUNTs walked %d sessions each in one turn", ran,
	             SMALL);
	cr_assert_geq(ran, 1, "the turn's first one runs");
	cr_assert(dispatch_wants_next_turn(fx.d));
	dispatch_turn_begins(fx.d);
	cr_assert_gt(dispatch_retries(fx.d, NOW + 20), 0, "handed again in the next turn");
	cr_assert_eq(call_at(&req, NOW + 20, &rep), DISPATCH_KEEP);
	cr_assert_eq(result_uint(&rep), SMALL);
	/* Once nothing is due, a COUNT is the namespace's figure: never held back. */
	dispatch_stop_deferring(fx.d);
	cr_assert_eq(call_at(&req, NOW + 20, &rep), DISPATCH_KEEP);
}

/*
 * Put-off requests are handed again a few a turn. COUNTs waiting for a mass expiry share the
 * list with those waiting for the turn's budget, and are put off again each time: the retries
 * go round the whole list before they give up, or 16 COUNTs at its head kept every SET_IF and
 * HELLO behind them waiting for the whole expiry.
 */
LEAK_CHECKED_TEST(dispatch, retries_go_round_the_waiting_list)
{
	struct codec_request list = {.op = CODEC_OP_LIST, .request_id = 30, .limit = 1000};

	hello();
	fill("big", 0, 20000);
	list.ns = bytes("big");
	dispatch_turn_begins(fx.d);
	while (dispatch_in_turn(&list, NOW) != DISPATCH_LATER)
		;
	/* 50 wait; each round hands 16, and all are put off again (COUNTs behind the expiry). */
	for (int round = 0; round < 3; round++) {
		dispatch_turn_begins(fx.d);
		cr_assert_eq(dispatch_retries(fx.d, NOW), 16, "round %d hands 16 again", round);
		dispatch_retried(fx.d, 16, 0, 50);
		cr_assert(dispatch_wants_next_turn(fx.d), "round %d: the list is not gone round",
		          round);
	}
	dispatch_turn_begins(fx.d);
	cr_assert_eq(dispatch_retries(fx.d, NOW), 16);
	dispatch_retried(fx.d, 16, 0, 50);
	cr_assert_not(dispatch_wants_next_turn(fx.d), "64 handed, none moved: the list went round");
	/* One moved: the rounds start over. */
	dispatch_turn_begins(fx.d);
	cr_assert_eq(dispatch_retries(fx.d, NOW), 0);
	while (dispatch_in_turn(&list, NOW) != DISPATCH_LATER)
		;
	dispatch_turn_begins(fx.d);
	dispatch_retried(fx.d, 16, 1, 49);
	dispatch_turn_begins(fx.d);
	dispatch_retried(fx.d, 16, 0, 49);
	cr_assert(dispatch_wants_next_turn(fx.d));
}

/*
 * LIST and NAMESPACES pages share the turn's budget for heavy requests with sealed HELLOs:
 * pages pipelined past it wait for a later turn (DISPATCH_LATER, nothing written, not
 * counted), so that they cannot hold the loop; the first page of a turn always runs, and a
 * put-off page runs in the next turn. (The hostile review: four connections pipelining 1000-
 * entry pages of 200,000 sessions held the loop up to 590 ms, other clients' p99 490 ms.)
 */
LEAK_CHECKED_TEST(dispatch, list_pages_past_the_turn_budget_wait_for_the_next_turn)
{
	enum { SESSIONS = 20000, MOST = 2000 };
	struct codec_request list = {.op = CODEC_OP_LIST, .request_id = 30, .limit = 1000};
	struct codec_request names = {.op = CODEC_OP_NAMESPACES, .request_id = 31, .limit = 1000};
	struct codec_request ping = {.op = CODEC_OP_PING, .request_id = 32};
	struct codec_reply rep;
	enum dispatch_verdict v = DISPATCH_KEEP;
	int ran = 0;

	hello();
	fill("big", 0, SESSIONS);
	list.ns = bytes("big");
	dispatch_turn_begins(fx.d);
	/* Each page walks a thousand sessions: the budget (1 ms) runs out long before MOST. */
	while (ran < MOST) {
		v = dispatch_in_turn(&list, NOW);
		if (v == DISPATCH_LATER)
			break;
		cr_assert_eq(v, DISPATCH_KEEP);
		ran++;
	}
	cr_assert_eq(v, DISPATCH_LATER, "%d pages ran in one turn", ran);
	cr_assert_geq(ran, 1, "the turn's first page runs");
	expect_later(&list, NOW);
	expect_later(&names, NOW);
	/* Other requests go on meanwhile, in the same turn. */
	cr_assert_eq(dispatch_in_turn(&ping, NOW), DISPATCH_KEEP);
	take_reply(&rep);
	cr_assert_eq(rep.status, CODEC_OK);
	/* The next turn says the put-off ones are to be handed again, and runs them. */
	dispatch_turn_begins(fx.d);
	cr_assert_gt(dispatch_retries(fx.d, NOW), 0);
	cr_assert_eq(dispatch_in_turn(&list, NOW), DISPATCH_KEEP);
	take_reply(&rep);
	cr_assert_eq(rep.status, CODEC_OK);
	/* More may wait behind those handed again, although none was put off this time (the
	 * handed ones ran within the budget): the turn after hands them again too, and comes
	 * without waiting for I/O. Once a turn that hands them again moves none off the
	 * waiting list (conn_set_retry's count), none waits for the budget. */
	dispatch_retried(fx.d, 1, 1, 1);
	cr_assert(dispatch_wants_next_turn(fx.d),
	          "a turn whose retries moved a connection on must be followed at once");
	dispatch_turn_begins(fx.d);
	cr_assert_gt(dispatch_retries(fx.d, NOW), 0, "the rest were left waiting");
	dispatch_retried(fx.d, 1, 0, 1);
	cr_assert_not(dispatch_wants_next_turn(fx.d));
	dispatch_turn_begins(fx.d);
	cr_assert_eq(dispatch_retries(fx.d, NOW), 0);
	cr_assert_eq(call(&list, &rep), DISPATCH_KEEP);
	cr_assert_eq(rep.status, CODEC_OK);
	/* A stopping server answers everything it handles (no deferring). */
	dispatch_stop_deferring(fx.d);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(call(&names, &rep), DISPATCH_KEEP);
		cr_assert_eq(rep.status, CODEC_OK);
	}
}

/*
 * dispatch_reply_bound for ${req} (encoded into fx.req), then the request carried out with
 * the frame the bound decoded: the reply is no longer than the bound. Returns the bound.
 */
static size_t bound_then_run(const struct codec_request *req)
{
	struct dispatch_frame_ref frame;
	size_t bound;

	buf_reset(&fx.req);
	cr_assert_eq(codec_encode_request(&fx.req, req), 0, "encode op %u", req->op);
	frame.body = fx.req.data + CODEC_HEADER_BYTES;
	frame.len = fx.req.len - CODEC_HEADER_BYTES;
	frame.decoded = false;
	bound = dispatch_reply_bound(fx.d, &frame, NOW);
	cr_assert(frame.decoded, "the bound decoded the request for the run to reuse");
	buf_reset(&fx.out);
	dispatch_turn_begins(fx.d);
	cr_assert_eq(dispatch_frame_hinted(fx.d, &fx.peer, &frame, NOW, &fx.out), DISPATCH_KEEP);
	cr_assert_leq(fx.out.len, bound, "op %u: a reply of %zu bytes over its bound of %zu",
	              req->op, fx.out.len, bound);
	return bound;
}

/*
 * The bound that lets small requests past a spent turn budget (conn.c) is the reply's size
 * near enough: at least the reply, and small only when the reply is (a large session's GET
 * and LOAD, a pile of flash messages, a LIST page are not).
 */
LEAK_CHECKED_TEST(dispatch, reply_bound_follows_the_reply)
{
	struct codec_request get = {.op = CODEC_OP_GET, .request_id = 5};
	struct codec_request pop = {.op = CODEC_OP_FLASH_POP, .request_id = 6, .flash_all = true};
	struct codec_request list = {.op = CODEC_OP_LIST, .request_id = 7, .limit = 1000};
	struct codec_request ping = {.op = CODEC_OP_PING, .request_id = 8, .ping_payload = true};
	struct codec_request stats = {.op = CODEC_OP_STATS, .request_id = 9, .ns_all = true};
	static char big[200 * 1000 + 1], msg[3000];

	hello();
	memset(big, 'b', sizeof(big) - 1);
	memset(msg, 'm', sizeof(msg) - 1);
	cr_assert_eq(do_set("", "small", "a few bytes", 60000, NOW), CODEC_OK);
	cr_assert_eq(do_set("", "big", big, 60000, NOW), CODEC_OK);
	get.id = bytes("small");
	cr_assert_lt(bound_then_run(&get), 1024);
	get.id = bytes("missing");
	cr_assert_lt(bound_then_run(&get), 2048);
	get.id = bytes("big");
	cr_assert_geq(bound_then_run(&get), sizeof(big) - 1);
	get.op = CODEC_OP_LOAD;
	cr_assert_geq(bound_then_run(&get), sizeof(big) - 1);
	for (int i = 0; i < 20; i++)
		push("small", "info", msg, false);
	pop.id = bytes("small");
	cr_assert_geq(bound_then_run(&pop), 20 * (sizeof(msg) - 1));
	/* Popped: nothing left to make a large reply of. */
	cr_assert_lt(bound_then_run(&pop), 2048);
	ping.data = bytes(big);
	cr_assert_geq(bound_then_run(&ping), sizeof(big) - 1);
	cr_assert_lt(bound_then_run(&stats), 16384);
	cr_assert_geq(bound_then_run(&list), 16384, "a whole LIST page counts as large");
}

/*
 * What a client that has gone loses (conn.c drops these unanswered): the requests asked only
 * for their replies, FLASH_POP among them (its messages stay queued). Never a change, nor a
 * malformed frame, whose error reply closes the connection.
 */
LEAK_CHECKED_TEST(dispatch, reply_only_requests_are_the_reads_and_the_pop)
{
	static const uint32_t reads[] = {CODEC_OP_PING,  CODEC_OP_GET,      CODEC_OP_LOAD,
	                                 CODEC_OP_TTL,   CODEC_OP_COUNT,    CODEC_OP_LIST,
	                                 CODEC_OP_STATS, CODEC_OP_FLASH_POP};
	static const uint32_t changes[] = {CODEC_OP_SET,
	                                   CODEC_OP_SET_IF,
	                                   CODEC_OP_TOUCH,
	                                   CODEC_OP_TOUCH_IF,
	                                   CODEC_OP_DESTROY,
	                                   CODEC_OP_FLASH_PUSH,
	                                   CODEC_OP_FLASH_PUSH_EXISTING,
	                                   CODEC_OP_CLEAR};
	static const uint8_t tag[CODEC_TAG_BYTES];
	struct dispatch_frame_ref frame;
	struct codec_request req;

	for (size_t i = 0;
	     i < sizeof(reads) / sizeof(reads[0]) + sizeof(changes) / sizeof(changes[0]); i++) {
		bool read = i < sizeof(reads) / sizeof(reads[0]);

		req = (struct codec_request){
		    .op = read ? reads[i] : changes[i - sizeof(reads) / sizeof(reads[0])],
		    .request_id = 7,
		    .ns = bytes("app"),
		    .id = bytes("s"),
		    .data = bytes("{}"),
		    .ttl_ms = 60000,
		    .expect = {tag, sizeof(tag)},
		    .flash_type = bytes("info"),
		    .flash_msg = bytes("hi"),
		    .limit = 10};
		if (req.op == CODEC_OP_STATS || req.op == CODEC_OP_COUNT ||
		    req.op == CODEC_OP_CLEAR || req.op == CODEC_OP_LIST)
			req.id = (struct mp_bytes){0};
		buf_reset(&fx.req);
		cr_assert_eq(codec_encode_request(&fx.req, &req), 0, "encode op %u", req.op);
		frame = (struct dispatch_frame_ref){.body = fx.req.data + CODEC_HEADER_BYTES,
		                                    .len = fx.req.len - CODEC_HEADER_BYTES};
		cr_assert_eq(dispatch_reply_only(fx.d, &frame), read, "op %u", req.op);
		cr_assert(frame.decoded, "op %u decoded for the run to reuse", req.op);
	}
	frame = (struct dispatch_frame_ref){.body = (const uint8_t *)"\xc1", .len = 1};
	cr_assert_not(dispatch_reply_only(fx.d, &frame), "a malformed frame runs, for its error");
}

/* DESTROY_IF_FLASH of ${id} (default namespace) while ${type}'s oldest message is ${msg}, at
 * ${now}; the status. NOT_FOUND and CONFLICT keep the connection open. */
static uint32_t destroy_if_flash_at(const char *id, const char *type, const char *msg, uint64_t now)
{
	struct codec_request req = {.op = CODEC_OP_DESTROY_IF_FLASH, .request_id = 23};
	struct codec_reply rep;

	req.id = bytes(id);
	req.flash_type = bytes(type);
	req.flash_msg = bytes(msg);
	cr_assert_eq(call_at(&req, now, &rep), DISPATCH_KEEP, "the connection stays open");
	cr_assert_eq(rep.request_id, 23);
	return rep.status;
}

/*
 * DESTROY_IF_FLASH (PROTOCOL.md, "Locks on a flash queue"): a look that finds another token,
 * or no queue of the type, moves no expiry and pops nothing; an expired lock is NOT_FOUND, and
 * its token, though still in memory until reclaimed, removes nothing.
 */
LEAK_CHECKED_TEST(dispatch, destroy_if_flash_refused_moves_no_expiry_and_an_expired_lock_is_gone)
{
	uint64_t ms = 0;

	hello();
	cr_assert_eq(push("lock", "move", "tokA", false), 1);
	cr_assert_eq(push("lock", "move", "tokB", true), 2);
	cr_assert_eq(destroy_if_flash_at("lock", "move", "tokB", NOW + 30000), CODEC_CONFLICT);
	cr_assert_eq(destroy_if_flash_at("lock", "other", "tokA", NOW + 30000), CODEC_CONFLICT);
	cr_assert_eq(destroy_if_flash_at("lock", "move", "", NOW + 30000), CODEC_CONFLICT);
	cr_assert_eq(do_ttl(NULL, "lock", NOW + 30000, &ms), CODEC_OK);
	cr_assert_eq(ms, 30000, "the looks moved the expiry: %llu ms left", (unsigned long long)ms);
	cr_assert_eq(push_existing("lock", "move", "x", false, 60000, NOW, NULL), CODEC_NOT_FOUND,
	             "still a flash-only session");
	cr_assert_eq(destroy_if_flash_at("lock", "move", "tokA", NOW + 60000), CODEC_NOT_FOUND,
	             "an expired lock");
	cr_assert_eq(destroy_if_flash_at("nobody", "move", "tokA", NOW), CODEC_NOT_FOUND);
	cr_assert_eq(do_ttl(NULL, "lock", NOW + 60000, &ms), CODEC_NOT_FOUND);
}

/* How many dispatch_log_due calls (the daemon's ticks, once a second) until the log in ${log}
 * holds ${lines} "NO_MEMORY by namespace" lines: at most ${most}. */
static int ticks_until_by_ns_lines(FILE *log, int lines, int most)
{
	char line[1200];
	int ticks = 0, seen;

	for (;;) {
		fflush(stderr);
		rewind(log);
		seen = 0;
		while (fgets(line, sizeof(line), log) != NULL)
			seen += strstr(line, "NO_MEMORY by namespace: ") != NULL;
		if (seen >= lines || ticks == most)
			return ticks;
		dispatch_log_due(fx.d);
		ticks++;
	}
}

/*
 * The NO_MEMORY warning's walk of the namespaces takes one step of DISPATCH_NS_WALK_STEP (1024)
 * namespaces a tick. When the tick said a warning held back by its minute, the warning started
 * the walk with a step, and the tick took its own right after: two steps in one turn, twice the
 * time the step is sized to hold the loop. The walk of 3,000 namespaces took 3 steps: started
 * by a refused write, its line came on the second tick after; started by a tick, on that tick's
 * next (the same number of ticks from the warning, one step fewer); it must take one more.
 */
LEAK_CHECKED_TEST(dispatch, the_no_memory_walk_takes_one_step_a_tick)
{
	enum { NAMESPACES = 3000 };
	char big[8192];
	struct store_stats s;
	FILE *log = tmpfile();
	int saved = dup(2), started_by_write, started_by_tick;

	cr_assert_not_null(log);
	cr_assert_geq(saved, 0);
	hello();
	set_in_namespaces(NAMESPACES);
	store_stats(fx.st, NULL, 0, &s);
	store_set_max_bytes(fx.st, s.bytes + 1024);
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(dup2(fileno(log), 2), 2);
	/* Said at once: the walk's first step, then one a tick. */
	cr_assert_eq(do_set("hog", "first", big, 60000, NOW), CODEC_NO_MEMORY);
	started_by_write = ticks_until_by_ns_lines(log, 1, 10);
	/* Within the minute: held back, said by the first tick after it. */
	cr_assert_eq(do_set("hog", "second", big, 60000, NOW), CODEC_NO_MEMORY);
	monotonic_ahead_ms = 61 * 1000;
	started_by_tick = ticks_until_by_ns_lines(log, 2, 10);
	monotonic_ahead_ms = 0;
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fclose(log);
	cr_assert_eq(started_by_write, 2, "3,000 namespaces: a step with the warning, two ticks");
	cr_expect_eq(started_by_tick, started_by_write + 1,
	             "a walk started by a tick's warning took its line in %d ticks (two steps in "
	             "one of them), one started by a write %d",
	             started_by_tick, started_by_write);
}

/*
 * Put stderr back (${saved}, its descriptor before it went to ${log}) and close ${log}: the last
 * "NO_MEMORY by namespace" line it holds, to free, or NULL when it holds none.
 */
static char *last_by_ns_line(FILE *log, int saved)
{
	char line[1200], *last = NULL;

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(log);
	while (fgets(line, sizeof(line), log) != NULL)
		if (strstr(line, "NO_MEMORY by namespace: ") != NULL) {
			free(last);
			last = strdup(line);
		}
	fclose(log);
	return last;
}

/* DESTROY of ${id} in ${ns}: its status. */
static uint32_t destroy_in(const char *ns, const char *id)
{
	struct codec_request req = {.op = CODEC_OP_DESTROY, .request_id = 31};
	struct codec_reply rep;

	req.ns = bytes(ns);
	req.id = bytes(id);
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	return rep.status;
}

/*
 * A guard for the NO_MEMORY walk (stop 64: a step a tick, each namespace's figures from the
 * scan) read as an attacker: namespaces dropped between its steps (a namespace's last session
 * destroyed frees its record) and made again, the largest among them, and a stop that comes
 * while the walk is under way. The line is said at the stop (dispatch_log_pending finishes the
 * walk while the store is alive), names the largest namespace that stayed, and names a dropped
 * one only by the copy of its name the walk keeps (a pointer into a freed record would be a
 * use after free, which the sanitizer build reports).
 */
LEAK_CHECKED_TEST(dispatch, the_no_memory_walk_through_dropped_namespaces_ends_at_the_stop)
{
	enum { NAMESPACES = 3000 };
	char ns[16], big[8192], mid[2048], *found;
	struct store_stats s;
	FILE *log = tmpfile();
	int saved = dup(2);

	cr_assert_not_null(log);
	cr_assert_geq(saved, 0);
	hello();
	set_in_namespaces(NAMESPACES);
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memset(mid, 'm', sizeof(mid) - 1);
	mid[sizeof(mid) - 1] = '\0';
	cr_assert_eq(do_set("stays", "x", mid, 60000, NOW), CODEC_OK);
	cr_assert_eq(do_set("dropped", "x", big, 60000, NOW), CODEC_OK);
	store_stats(fx.st, NULL, 0, &s);
	store_set_max_bytes(fx.st, s.bytes + 1024);
	cr_assert_eq(dup2(fileno(log), 2), 2);
	/* The walk's first step, with the warning. */
	cr_assert_eq(do_set("hog", "first", big, 60000, NOW), CODEC_NO_MEMORY);
	/* Between steps: the largest dropped, a thousand small ones dropped and some made again,
	 * which shrinks the table of names under the walk's cursor. */
	cr_assert_eq(destroy_in("dropped", "x"), CODEC_OK);
	for (int i = 0; i < 1000; i++) {
		snprintf(ns, sizeof(ns), "ns%04d", i);
		cr_assert_eq(destroy_in(ns, "x"), CODEC_OK);
	}
	set_in_namespaces(500);
	/* SIGTERM: the walk, two steps from its end or more (2,500 namespaces, 1,024 seen), ends
	 * now. */
	dispatch_log_pending(fx.d);
	found = last_by_ns_line(log, saved);
	cr_assert_not_null(found, "no line by namespace at the stop");
	cr_expect_not_null(strstr(found, "\"stays\" ("), "%s", found);
	free(found);
}

/* A SET of ${len} bytes of ${data} in the namespace of ${ns_len} bytes at ${ns} (any bytes). */
static uint32_t set_in_bytes(const uint8_t *ns, size_t ns_len, const char *data)
{
	struct codec_request req = {.op = CODEC_OP_SET, .request_id = 2, .ttl_ms = 60000};
	struct codec_reply rep;

	req.ns = (struct mp_bytes){ns, ns_len};
	req.id = bytes("x");
	req.data = bytes(data);
	cr_assert_eq(call(&req, &rep), DISPATCH_KEEP);
	return rep.status;
}

/*
 * A guard over the names a client chooses on the NO_MEMORY line by namespace (stop 63 bounded
 * each to 64 characters as the log writes them): quotes are doubled within that width, a NUL
 * ends what is shown but not the name ("victim\0..." is not shown as "victim"), bytes the log
 * escapes count four each, and the line stays whole to its last words.
 */
LEAK_CHECKED_TEST(dispatch, names_on_the_no_memory_line_are_shown_within_their_width)
{
	uint8_t quotes[64], high[64];
	const uint8_t nul_name[] = "victim\0attacker";
	char big[8192], expected[200], *last;
	struct store_stats s;
	FILE *log = tmpfile();
	int saved = dup(2);
	size_t at;

	cr_assert_not_null(log);
	cr_assert_geq(saved, 0);
	hello();
	memset(quotes, '"', sizeof(quotes));
	memset(high, 0xff, sizeof(high));
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(do_set("big", "x", big, 60000, NOW), CODEC_OK);
	store_stats(fx.st, NULL, 0, &s);
	store_set_max_bytes(fx.st, s.bytes + 1024);
	cr_assert_eq(dup2(fileno(log), 2), 2);
	/* Said at once, with its line; the next ones at the stop, on a line of their own. */
	cr_assert_eq(do_set("first", "x", big, 60000, NOW), CODEC_NO_MEMORY);
	cr_assert_eq(set_in_bytes(quotes, sizeof(quotes), big), CODEC_NO_MEMORY);
	cr_assert_eq(set_in_bytes(nul_name, sizeof(nul_name) - 1, big), CODEC_NO_MEMORY);
	cr_assert_eq(set_in_bytes(high, sizeof(high), big), CODEC_NO_MEMORY);
	cr_assert_eq(do_set("tail", "x", big, 60000, NOW), CODEC_NO_MEMORY);
	dispatch_log_pending(fx.d);
	last = last_by_ns_line(log, saved);
	cr_assert_not_null(last);
	at = (size_t)snprintf(expected, sizeof(expected),
	                      "writes refused since the last line: 1 in \"");
	for (int i = 0; i < 32; i++)
		at += (size_t)snprintf(expected + at, sizeof(expected) - at, "\"\"");
	snprintf(expected + at, sizeof(expected) - at, "...\", 1 in \"victim...\", 1 in \"");
	cr_expect_not_null(strstr(last, expected), "%s\nin:\n%s", expected, last);
	at = 0;
	for (int i = 0; i < 16; i++)
		at += (size_t)snprintf(expected + at, sizeof(expected) - at, "\\xff");
	snprintf(expected + at, sizeof(expected) - at, "...\", 1 in other namespaces\n");
	cr_expect_not_null(strstr(last, expected), "%s\nin:\n%s", expected, last);
	free(last);
}
