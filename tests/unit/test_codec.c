#include <criterion/criterion.h>

#include "leakcheck.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define BYTES(s) ((struct mp_bytes){(const uint8_t *)(s), sizeof(s) - 1})

static bool bytes_eq(struct mp_bytes a, struct mp_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void expect_same(const struct codec_request *a, const struct codec_request *b)
{
	cr_expect_eq(a->op, b->op);
	cr_expect_eq(a->request_id, b->request_id);
	cr_expect(bytes_eq(a->ns, b->ns), "ns");
	cr_expect_eq(a->ns_all, b->ns_all);
	cr_expect(bytes_eq(a->id, b->id), "id");
	cr_expect_eq(a->id_is_bin, b->id_is_bin);
	cr_expect(bytes_eq(a->data, b->data), "data");
	cr_expect_eq(a->ttl_ms, b->ttl_ms);
	cr_expect(bytes_eq(a->flash_type, b->flash_type), "type");
	cr_expect_eq(a->flash_all, b->flash_all);
	cr_expect(bytes_eq(a->flash_msg, b->flash_msg), "msg");
	cr_expect_eq(a->flash_msg_is_bin, b->flash_msg_is_bin);
	cr_expect_eq(a->cursor, b->cursor);
	cr_expect_eq(a->limit, b->limit);
	cr_expect_eq(a->version, b->version);
	cr_expect(bytes_eq(a->client_name, b->client_name), "client_name");
	cr_expect(bytes_eq(a->auth, b->auth), "auth");
	cr_expect(bytes_eq(a->expect, b->expect), "expect");
}

/* The most requests sample_requests writes. */
#define SAMPLE_MAX 24

/* One request of every opcode, with named namespaces so decode gives the same fields. */
static size_t sample_requests(struct codec_request *q)
{
	size_t n = 0;

	memset(q, 0, SAMPLE_MAX * sizeof *q);
	q[n].op = CODEC_OP_HELLO;
	q[n].request_id = 1;
	q[n].version = 1;
	q[n].client_name = BYTES("my-app");
	q[n++].auth = BYTES("\xc0");
	q[n].op = CODEC_OP_PING;
	q[n++].request_id = UINT64_MAX;
	q[n].op = CODEC_OP_GET;
	q[n].request_id = 3;
	q[n].ns = BYTES("app");
	q[n++].id = BYTES("abc");
	q[n].op = CODEC_OP_SET;
	q[n].request_id = 4;
	q[n].ns = BYTES("app");
	q[n].id = BYTES("\x00\x01\x02");
	q[n].id_is_bin = true;
	q[n].data = BYTES("{\"a\":1}");
	q[n++].ttl_ms = CODEC_MAX_TTL_MS;
	q[n].op = CODEC_OP_SET_IF;
	q[n].request_id = 15;
	q[n].ns = BYTES("app");
	q[n].id = BYTES("abc");
	q[n].data = BYTES("{\"a\":2}");
	q[n].ttl_ms = 60000;
	q[n++].expect = BYTES("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\xfe\xff");
	q[n].op = CODEC_OP_TOUCH;
	q[n].request_id = 5;
	q[n].ns = BYTES("app");
	q[n].id = BYTES("abc");
	q[n++].ttl_ms = 1;
	q[n].op = CODEC_OP_DESTROY;
	q[n].request_id = 6;
	q[n].ns = BYTES("app");
	q[n++].id = BYTES("abc");
	q[n].op = CODEC_OP_FLASH_PUSH;
	q[n].request_id = 7;
	q[n].ns = BYTES("app");
	q[n].id = BYTES("abc");
	q[n].flash_type = BYTES("info");
	q[n].flash_msg = BYTES("\x00\xff");
	q[n].flash_msg_is_bin = true;
	q[n++].ttl_ms = 60000;
	q[n].op = CODEC_OP_FLASH_POP;
	q[n].request_id = 8;
	q[n].ns = BYTES("app");
	q[n].id = BYTES("abc");
	q[n++].flash_type = BYTES("info");
	q[n].op = CODEC_OP_FLASH_POP;
	q[n].request_id = 9;
	q[n].ns = BYTES("app");
	q[n].id = BYTES("abc");
	q[n++].flash_all = true;
	q[n].op = CODEC_OP_COUNT;
	q[n].request_id = 10;
	q[n++].ns = BYTES("app");
	q[n].op = CODEC_OP_LIST;
	q[n].request_id = 11;
	q[n].ns = BYTES("app");
	q[n].cursor = (uint64_t)1 << 63;
	q[n++].limit = 1000;
	q[n].op = CODEC_OP_CLEAR;
	q[n].request_id = 12;
	q[n++].ns = BYTES("app");
	q[n].op = CODEC_OP_STATS;
	q[n].request_id = 13;
	q[n++].ns = BYTES("app");
	q[n].op = CODEC_OP_STATS;
	q[n].request_id = 14;
	q[n++].ns_all = true;
	q[n].op = CODEC_OP_FLASH_PUSH_EXISTING;
	q[n].request_id = 16;
	q[n].ns = BYTES("app");
	q[n].id = BYTES("\x01\x02");
	q[n].id_is_bin = true;
	q[n].flash_type = BYTES("error");
	q[n].flash_msg = BYTES("Saved!");
	q[n++].ttl_ms = CODEC_MAX_TTL_MS;
	q[n].op = CODEC_OP_NAMESPACES;
	q[n].request_id = 17;
	q[n].cursor = UINT64_MAX;
	q[n++].limit = 1;
	q[n].op = CODEC_OP_TTL;
	q[n].request_id = 18;
	q[n].ns = BYTES("app");
	q[n].id = BYTES("\x00\xff");
	q[n++].id_is_bin = true;
	q[n].op = CODEC_OP_LOAD;
	q[n].request_id = 19;
	q[n].ns = BYTES("shop");
	q[n++].id = BYTES("abc");
	q[n].op = CODEC_OP_TOUCH_IF;
	q[n].request_id = 20;
	q[n].ns = BYTES("shop");
	q[n].id = BYTES("abc");
	q[n].ttl_ms = 2592000000ull;
	q[n++].expect = BYTES("\xff\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\xfe\x00");
	q[n].op = CODEC_OP_DESTROY_IF_FLASH;
	q[n].request_id = 21;
	q[n].ns = BYTES("locks");
	q[n].id = BYTES("k");
	q[n].flash_type = BYTES("move");
	q[n].flash_msg = BYTES("\x00\x01tok");
	q[n++].flash_msg_is_bin = true;
	cr_assert_leq(n, SAMPLE_MAX);
	return n;
}

LEAK_CHECKED_TEST(codec, round_trip_every_op)
{
	struct codec_request q[SAMPLE_MAX], got;
	size_t n = sample_requests(q), i;
	struct buf b;
	uint32_t status;
	const char *why;

	for (i = 0; i < n; i++) {
		buf_init(&b);
		cr_assert_eq(codec_encode_request(&b, &q[i]), 0, "encode %s",
		             codec_op_name(q[i].op));
		cr_assert_eq(codec_frame_length(b.data), b.len - CODEC_HEADER_BYTES);
		cr_expect_eq(codec_decode_request(b.data + 4, b.len - 4, &got, &status, &why), 0,
		             "decode %s", codec_op_name(q[i].op));
		expect_same(&got, &q[i]);
		buf_finish(&b);
	}
}

/* Every strict prefix of every valid body is rejected as BAD_REQUEST. */
LEAK_CHECKED_TEST(codec, truncated_at_every_offset)
{
	struct codec_request q[SAMPLE_MAX], got;
	size_t n = sample_requests(q), i, cut;
	struct buf b;
	uint32_t status;
	const char *why;

	for (i = 0; i < n; i++) {
		buf_init(&b);
		cr_assert_eq(codec_encode_request(&b, &q[i]), 0);
		for (cut = 0; cut < b.len - 4; cut++) {
			/* a copy of exactly ${cut} bytes so ASan sees any read past it */
			uint8_t *body = malloc(cut + 1);

			cr_assert(body != NULL);
			memcpy(body, b.data + 4, cut);
			status = 99;
			cr_expect_eq(codec_decode_request(body, cut, &got, &status, &why), -1,
			             "%s cut at %zu", codec_op_name(q[i].op), cut);
			cr_expect_eq(status, CODEC_BAD_REQUEST);
			free(body);
		}
		buf_finish(&b);
	}
}

LEAK_CHECKED_TEST(codec, trailing_bytes_rejected)
{
	struct codec_request q[SAMPLE_MAX], got;
	size_t n = sample_requests(q), i;
	struct buf b;
	uint32_t status;
	const char *why;

	for (i = 0; i < n; i++) {
		buf_init(&b);
		cr_assert_eq(codec_encode_request(&b, &q[i]), 0);
		cr_assert_eq(mp_write_nil(&b), 0);
		cr_expect_eq(codec_decode_request(b.data + 4, b.len - 4, &got, &status, &why), -1);
		cr_expect_eq(status, CODEC_BAD_REQUEST);
		cr_expect_eq(got.request_id, q[i].request_id, "request id kept for the reply");
		buf_finish(&b);
	}
}

static int decode_lit(const char *body, size_t len, struct codec_request *req, uint32_t *status)
{
	const char *why = NULL;
	int rc = codec_decode_request((const uint8_t *)body, len, req, status, &why);

	if (rc == -1)
		cr_expect(why != NULL && why[0] != '\0');
	return rc;
}

#define DECODE(lit, req, st) decode_lit((lit), sizeof(lit) - 1, (req), (st))

LEAK_CHECKED_TEST(codec, nil_namespace_is_default)
{
	struct codec_request r;
	uint32_t st;

	cr_assert_eq(DECODE("\x94\x10\x07\xc0\xa3"
	                    "abc",
	                    &r, &st),
	             0);
	cr_expect(bytes_eq(r.ns, BYTES("default")));
	cr_expect(!r.ns_all);
	cr_assert_eq(DECODE("\x93\x33\x07\xc0", &r, &st), 0);
	cr_expect(r.ns_all);
	cr_expect_eq(r.ns.len, 0);
}

LEAK_CHECKED_TEST(codec, wrong_types_rejected)
{
	static const struct {
		const char *body;
		size_t len;
	} bad[] = {
#define B(s) {s, sizeof(s) - 1}
	    B("\xc0"),                                         /* not an array */
	    B("\x90"),                                         /* empty */
	    B("\x91\x02"),                                     /* no request id */
	    B("\x92\xa1x\x01"),                                /* op str */
	    B("\x92\x02\xff"),                                 /* negative rid */
	    B("\x92\x02\xcb\x00\x00\x00\x00\x00\x00\x00\x00"), /* float rid */
	    B("\x94\x10\x01\xc4\x01x\xa1x"),                   /* ns bin */
	    B("\x94\x10\x01\xa0\xa1x"),                        /* ns empty */
	    B("\x94\x10\x01\xc0\xc0"),                         /* id nil */
	    B("\x94\x10\x01\xc0\xa0"),                         /* id empty */
	    B("\x94\x10\x01\xc0\xc4\x00"),                     /* id empty bin */
	    B("\x94\x10\x01\xc0\x01"),                         /* id int */
	    B("\x95\x12\x01\xc0\xa1x\x00"),                    /* ttl 0 */
	    B("\x95\x12\x01\xc0\xa1x\xff"),                    /* ttl negative */
	    B("\x95\x12\x01\xc0\xa1x\xa1"
	      "1"),                                                         /* ttl str */
	    B("\x95\x12\x01\xc0\xa1x\xcf\x00\x00\x00\x49\xa0\x6b\x50\x01"), /* ttl max + 1 */
	    B("\x96\x11\x01\xc0\xa1x\xc0\x01"),                             /* data nil */
	    B("\x97\x20\x01\xc0\xa1x\xc0\xa1m\x01"),                        /* push type nil */
	    B("\x97\x20\x01\xc0\xa1x\xa1t\xc0\x01"),                        /* push msg nil */
	    B("\x97\x22\x01\xc0\xa1x\xc0\xa1m\x01"),      /* push existing type nil */
	    B("\x97\x22\x01\xc0\xa1x\xc4\x01t\xa1m\x01"), /* push existing type bin */
	    B("\x97\x22\x01\xc0\xa1x\xa1t\xc0\x01"),      /* push existing msg nil */
	    B("\x97\x22\x01\xc0\xa1x\xa1t\xa1m\x00"),     /* push existing ttl 0 */
	    B("\x96\x22\x01\xc0\xa1x\xa1t\xa1m"),         /* push existing no ttl */
	    B("\x98\x22\x01\xc0\xa1x\xa1t\xa1m\x01\x01"), /* push existing 6 args */
	    B("\x95\x21\x01\xc0\xa1x\xc4\x01t"),          /* pop type bin */
	    B("\x95\x21\x01\xc0\xa1x\xa0"),               /* pop type empty */
	    B("\x95\x01\x01\x01\xc4\x00\xc0"),            /* client name bin */
	    B("\x95\x01\x01\xc0\xa0\xc0"),                /* version nil */
	    B("\x95\x31\x01\xc0\xff\x01"),                /* cursor negative */
	    B("\x95\x31\x01\xc0\x00\xc2"),                /* limit bool */
	    B("\x93\x33\x01\xc4\x01x"),                   /* stats ns bin */
	    B("\x93\x02\x01\xc0"),                        /* ping with an argument */
	    B("\x93\x10\x01\xc0"),                        /* get missing id */
	    B("\x95\x10\x01\xc0\xa1x\xc0"),               /* get extra argument */
	    B("\x94\x10\x01\xc1\xa1x"),                   /* 0xc1 */
	    B("\x94\x10\x01\xd4\x00\x00\xa1x"),           /* ns ext */
#undef B
	};
	struct codec_request r;
	uint32_t st;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		st = 99;
		cr_expect_eq(decode_lit(bad[i].body, bad[i].len, &r, &st), -1, "case %zu", i);
		cr_expect_eq(st, CODEC_BAD_REQUEST, "case %zu", i);
	}
}

/* A body of ${n} bytes: "\x94\x10\x01\xc0" + str of ${len} bytes. */
static void id_of_len(size_t len, bool bin, int want_rc)
{
	struct buf b;
	struct codec_request r;
	uint32_t st;
	const char *why;
	char *id = malloc(len + 1);

	memset(id, 'i', len);
	buf_init(&b);
	cr_assert_eq(mp_write_array(&b, 4), 0);
	cr_assert_eq(mp_write_uint(&b, CODEC_OP_GET), 0);
	cr_assert_eq(mp_write_uint(&b, 1), 0);
	cr_assert_eq(mp_write_nil(&b), 0);
	cr_assert_eq(bin ? mp_write_bin(&b, id, len) : mp_write_str(&b, id, len), 0);
	cr_expect_eq(codec_decode_request(b.data, b.len, &r, &st, &why), want_rc, "id %zu", len);
	if (want_rc == 0)
		cr_expect_eq(r.id.len, len);
	buf_finish(&b);
	free(id);
}

LEAK_CHECKED_TEST(codec, id_length_limits)
{
	id_of_len(1, false, 0);
	id_of_len(128, false, 0);
	id_of_len(128, true, 0);
	id_of_len(129, false, -1);
	id_of_len(129, true, -1);
	id_of_len(70000, true, -1);
}

/* A GET in a namespace named by ${len} bytes: 1..64 are one, others BAD_REQUEST. */
static void ns_of_len(size_t len, int want_rc)
{
	struct buf b;
	struct codec_request r;
	uint32_t st = 99;
	const char *why;
	char name[80];

	memset(name, 'n', sizeof name);
	buf_init(&b);
	cr_assert_eq(mp_write_array(&b, 4), 0);
	cr_assert_eq(mp_write_uint(&b, CODEC_OP_GET), 0);
	cr_assert_eq(mp_write_uint(&b, 1), 0);
	cr_assert_eq(mp_write_str(&b, name, len), 0);
	cr_assert_eq(mp_write_str(&b, "id", 2), 0);
	cr_expect_eq(codec_decode_request(b.data, b.len, &r, &st, &why), want_rc, "ns %zu", len);
	if (want_rc == 0)
		cr_expect_eq(r.ns.len, len);
	else
		cr_expect_eq(st, CODEC_BAD_REQUEST, "ns %zu", len);
	buf_finish(&b);
}

LEAK_CHECKED_TEST(codec, namespace_length_limits)
{
	ns_of_len(0, -1);
	ns_of_len(1, 0);
	ns_of_len(64, 0);
	ns_of_len(65, -1);
}

LEAK_CHECKED_TEST(codec, huge_declared_counts_rejected_without_allocation)
{
	struct codec_request r;
	uint32_t st;

	cr_expect_eq(DECODE("\xdd\x00\x0f\x42\x40", &r, &st), -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	cr_expect_eq(DECODE("\xdd\xff\xff\xff\xff\x02\x01", &r, &st), -1);
	cr_expect_eq(DECODE("\x93\x7f\x01\xdf\xff\xff\xff\xff", &r, &st), -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	cr_expect_eq(r.request_id, 1);
	cr_expect_eq(DECODE("\x94\x10\x01\xc0\xdb\xff\xff\xff\xff", &r, &st), -1);
	cr_expect_eq(DECODE("\x96\x11\x01\xc0\xa1x\xc6\x7f\xff\xff\xff\x01", &r, &st), -1);
}

LEAK_CHECKED_TEST(codec, unknown_op_is_checked_and_keeps_request_id)
{
	struct codec_request r;
	uint32_t st;

	cr_expect_eq(DECODE("\x93\x7f\x09\xa1x", &r, &st), -1);
	cr_expect_eq(st, CODEC_UNKNOWN_OP);
	cr_expect_eq(r.request_id, 9);
	cr_expect_eq(r.op, 0x7f);
	cr_expect_eq(DECODE("\x92\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x05", &r, &st), -1);
	cr_expect_eq(st, CODEC_UNKNOWN_OP);
	cr_expect_eq(r.request_id, 5);
	/* still malformed: trailing bytes, 0xc1, truncation */
	cr_expect_eq(DECODE("\x92\x7f\x09\xc0", &r, &st), -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	cr_expect_eq(r.request_id, 9);
	cr_expect_eq(DECODE("\x93\x7f\x09\xc1", &r, &st), -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	cr_expect_eq(DECODE("\x93\x7f\x09\xa2x", &r, &st), -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
}

LEAK_CHECKED_TEST(codec, request_id_recovered_when_opcode_is_bad)
{
	struct codec_request r;
	uint32_t st;

	cr_expect_eq(DECODE("\x92\xa3GET\x2a", &r, &st), -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	cr_expect_eq(r.request_id, 42);
	cr_expect_eq(DECODE("\x92\x02\xc0", &r, &st), -1);
	cr_expect_eq(r.request_id, 0);
}

/* An array header that claims more elements than the frame holds: the request id, when the
 * second element is a uint, still comes back with the error (PROTOCOL.md). */
LEAK_CHECKED_TEST(codec, request_id_recovered_when_the_array_claims_too_much)
{
	static const uint8_t fix[] = {0x94, 0x10, 0x01, 0xc0};
	static const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x02, 0xcd, 0x01, 0x2c};
	static const uint8_t mid[] = {0xdc, 0x00, 0x09, 0xa1, 'x', 0x07};
	static const uint8_t cut[] = {0xdd, 0xff, 0xff};
	struct codec_request r;
	const char *why;
	uint32_t st;

	cr_expect_eq(codec_decode_request(fix, sizeof(fix), &r, &st, &why), -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	cr_expect_eq(r.request_id, 1);
	cr_expect_eq(codec_decode_request(huge, sizeof(huge), &r, &st, &why), -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	cr_expect_eq(r.request_id, 300);
	cr_expect_eq(codec_decode_request(mid, sizeof(mid), &r, &st, &why), -1);
	cr_expect_eq(r.request_id, 7, "the first element is skipped whatever it is");
	cr_expect_eq(codec_decode_request(cut, sizeof(cut), &r, &st, &why), -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	cr_expect_eq(r.request_id, 0, "a header cut short has no id");
}

/* ${levels} nested arrays as the last argument of a request [op, 1, ...]. */
static int nested_request(uint32_t op, int levels, uint32_t *st)
{
	struct buf b;
	struct codec_request r;
	const char *why;
	int i, rc;

	buf_init(&b);
	if (op == CODEC_OP_HELLO) {
		cr_assert_eq(mp_write_array(&b, 5), 0);
		cr_assert_eq(mp_write_uint(&b, op), 0);
		cr_assert_eq(mp_write_uint(&b, 1), 0);
		cr_assert_eq(mp_write_uint(&b, 1), 0);
		cr_assert_eq(mp_write_str(&b, "x", 1), 0);
	} else {
		cr_assert_eq(mp_write_array(&b, 3), 0);
		cr_assert_eq(mp_write_uint(&b, op), 0);
		cr_assert_eq(mp_write_uint(&b, 1), 0);
	}
	for (i = 0; i < levels - 1; i++)
		cr_assert_eq(mp_write_array(&b, 1), 0);
	cr_assert_eq(mp_write_array(&b, 0), 0);
	rc = codec_decode_request(b.data, b.len, &r, st, &why);
	buf_finish(&b);
	return rc;
}

LEAK_CHECKED_TEST(codec, nesting_counts_the_request_array)
{
	uint32_t st;

	cr_expect_eq(nested_request(CODEC_OP_HELLO, MP_MAX_DEPTH - 1, &st), 0);
	cr_expect_eq(nested_request(CODEC_OP_HELLO, MP_MAX_DEPTH, &st), -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	cr_expect_eq(nested_request(0x7f, MP_MAX_DEPTH - 1, &st), -1);
	cr_expect_eq(st, CODEC_UNKNOWN_OP);
	cr_expect_eq(nested_request(0x7f, MP_MAX_DEPTH, &st), -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
}

LEAK_CHECKED_TEST(codec, hello_keeps_auth_raw_and_saturates_version)
{
	struct codec_request r;
	uint32_t st;

	cr_assert_eq(DECODE("\x95\x01\x01\x01\xa0\x81\xa1k\xc4\x01z", &r, &st), 0);
	cr_expect(bytes_eq(r.auth, BYTES("\x81\xa1k\xc4\x01z")));
	cr_expect_eq(r.client_name.len, 0);
	cr_assert_eq(DECODE("\x95\x01\x01\xcf\x00\x00\x00\x01\x00\x00\x00\x01\xa0\xc0", &r, &st),
	             0);
	cr_expect_eq(r.version, UINT32_MAX);
}

LEAK_CHECKED_TEST(codec, list_limit_clamped)
{
	struct codec_request r;
	uint32_t st;

	cr_assert_eq(DECODE("\x95\x31\x01\xc0\x00\x00", &r, &st), 0);
	cr_expect_eq(r.limit, 1);
	cr_assert_eq(DECODE("\x95\x31\x01\xc0\x00\xcd\x03\xe9", &r, &st), 0);
	cr_expect_eq(r.limit, 1000);
	cr_assert_eq(DECODE("\x95\x31\x01\xc0\x00\xcd\x03\xe8", &r, &st), 0);
	cr_expect_eq(r.limit, 1000);
	cr_assert_eq(DECODE("\x95\x31\x01\xc0\x00\x05", &r, &st), 0);
	cr_expect_eq(r.limit, 5);
}

LEAK_CHECKED_TEST(codec, encode_rejects_out_of_range_fields)
{
	struct codec_request q[SAMPLE_MAX], bad;
	struct buf b;
	char big[200];

	memset(big, 'x', sizeof big);
	sample_requests(q);
	buf_init(&b);
	cr_assert_eq(mp_write_nil(&b), 0); /* existing content must survive a failure */

	bad = q[2];
	bad.id.len = 0;
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	cr_expect_eq(errno, EINVAL);
	bad.id = (struct mp_bytes){(const uint8_t *)big, 129};
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad = q[2];
	bad.ns = (struct mp_bytes){(const uint8_t *)big, 65};
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad = q[3];
	bad.ttl_ms = 0;
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad.ttl_ms = CODEC_MAX_TTL_MS + 1;
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad = q[7];
	bad.flash_type.len = 0;
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad = q[8];
	bad.flash_type = (struct mp_bytes){(const uint8_t *)big, 65};
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad = q[15];
	bad.flash_type.len = 0;
	cr_expect_eq(codec_encode_request(&b, &bad), -1, "FLASH_PUSH_EXISTING needs a type");
	bad.flash_type = (struct mp_bytes){(const uint8_t *)big, 65};
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad = q[15];
	bad.ttl_ms = 0;
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad = q[15];
	bad.id.len = 0;
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad = q[11];
	bad.limit = 0;
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad.limit = 1001;
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad = q[4];
	bad.expect.len = CODEC_TAG_BYTES - 1;
	cr_expect_eq(codec_encode_request(&b, &bad), -1, "SET_IF's expect is 16 bytes");
	bad.expect = (struct mp_bytes){(const uint8_t *)big, CODEC_TAG_BYTES + 1};
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad.expect = (struct mp_bytes){NULL, 0};
	cr_expect_eq(codec_encode_request(&b, &bad), -1, "a SET_IF needs an expect");
	bad = q[4];
	bad.ttl_ms = 0;
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad = q[19];
	cr_assert_eq(bad.op, CODEC_OP_TOUCH_IF);
	bad.expect = (struct mp_bytes){NULL, 0};
	cr_expect_eq(codec_encode_request(&b, &bad), -1, "a TOUCH_IF needs an expect");
	bad.expect = (struct mp_bytes){(const uint8_t *)big, CODEC_TAG_BYTES + 1};
	cr_expect_eq(codec_encode_request(&b, &bad), -1, "TOUCH_IF's expect is 16 bytes");
	bad = q[19];
	bad.ttl_ms = 0;
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad = q[0];
	bad.client_name = (struct mp_bytes){(const uint8_t *)big, 65};
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	bad = q[1];
	bad.op = 0x7f;
	cr_expect_eq(codec_encode_request(&b, &bad), -1);
	cr_expect_eq(b.len, 1);
	buf_finish(&b);
}

LEAK_CHECKED_TEST(codec, encode_nil_for_empty_ns_and_default_for_stats)
{
	struct codec_request q = {0}, r;
	struct buf b;
	uint32_t st;
	const char *why;

	q.op = CODEC_OP_GET;
	q.request_id = 7;
	q.id = BYTES("abc");
	buf_init(&b);
	cr_assert_eq(codec_encode_request(&b, &q), 0);
	cr_expect_eq(b.len, 4 + 8);
	cr_expect_eq(memcmp(b.data,
	                    "\x00\x00\x00\x08\x94\x10\x07\xc0\xa3"
	                    "abc",
	                    12),
	             0);
	buf_reset(&b);
	memset(&q, 0, sizeof q);
	q.op = CODEC_OP_STATS; /* not ns_all: the default namespace, named */
	cr_assert_eq(codec_encode_request(&b, &q), 0);
	cr_assert_eq(codec_decode_request(b.data + 4, b.len - 4, &r, &st, &why), 0);
	cr_expect(!r.ns_all);
	cr_expect(bytes_eq(r.ns, BYTES("default")));
	buf_finish(&b);
}

LEAK_CHECKED_TEST(codec, frame_open_close)
{
	struct buf b;
	size_t at, at2;

	buf_init(&b);
	cr_assert_eq(codec_frame_open(&b, &at), 0);
	cr_expect_eq(at, 0);
	cr_expect_eq(codec_frame_close(&b, at), -1); /* empty body */
	cr_assert_eq(mp_write_str(&b, "hello", 5), 0);
	cr_expect_eq(codec_frame_close(&b, at), 0);
	cr_expect_eq(codec_frame_length(b.data), 6);
	cr_assert_eq(codec_frame_open(&b, &at2), 0);
	cr_expect_eq(at2, 10);
	cr_assert_eq(buf_reserve(&b, 70000), 0);
	for (int i = 0; i < 70000; i++)
		cr_assert_eq(mp_write_nil(&b), 0);
	cr_expect_eq(codec_frame_close(&b, at2), 0);
	cr_expect_eq(codec_frame_length(b.data + at2), 70000);
	cr_expect_eq(memcmp(b.data + at2, "\x00\x01\x11\x70", 4), 0);
	buf_finish(&b);
}

LEAK_CHECKED_TEST(codec, frame_length_big_endian)
{
	static const uint8_t h1[4] = {0x00, 0x00, 0x00, 0x01}, h2[4] = {0xff, 0xff, 0xff, 0xff},
	                     h3[4] = {0x01, 0x02, 0x03, 0x04};

	cr_expect_eq(codec_frame_length(h1), 1);
	cr_expect_eq(codec_frame_length(h2), UINT32_MAX);
	cr_expect_eq(codec_frame_length(h3), 0x01020304);
}

LEAK_CHECKED_TEST(codec, replies_round_trip)
{
	struct buf b;
	struct codec_reply rep;
	size_t at;

	buf_init(&b);
	cr_assert_eq(codec_reply_open(&b, UINT64_MAX, CODEC_OK, &at), 0);
	cr_assert_eq(mp_write_bin(&b, "data", 4), 0);
	cr_assert_eq(codec_frame_close(&b, at), 0);
	cr_assert_eq(codec_decode_reply(b.data + 4, b.len - 4, &rep), 0);
	cr_expect_eq(rep.request_id, UINT64_MAX);
	cr_expect_eq(rep.status, CODEC_OK);
	cr_expect(bytes_eq(rep.result, BYTES("\xc4\x04"
	                                     "data")));
	cr_expect_eq(rep.message.len, 0);

	buf_reset(&b);
	cr_assert_eq(codec_reply_error(&b, 3, CODEC_BAD_REQUEST, "id must be 1..128 bytes"), 0);
	cr_assert_eq(codec_decode_reply(b.data + 4, b.len - 4, &rep), 0);
	cr_expect_eq(rep.status, CODEC_BAD_REQUEST);
	cr_expect(bytes_eq(rep.message, BYTES("id must be 1..128 bytes")));

	buf_reset(&b);
	cr_assert_eq(codec_reply_open(&b, 4, CODEC_NOT_FOUND, &at), 0);
	cr_assert_eq(mp_write_nil(&b), 0);
	cr_assert_eq(codec_frame_close(&b, at), 0);
	cr_assert_eq(codec_decode_reply(b.data + 4, b.len - 4, &rep), 0);
	cr_expect_eq(rep.status, CODEC_NOT_FOUND);
	/* every truncation of a reply is rejected */
	for (size_t cut = 0; cut < b.len - 4; cut++)
		cr_expect_eq(codec_decode_reply(b.data + 4, cut, &rep), -1);
	buf_finish(&b);
}

LEAK_CHECKED_TEST(codec, malformed_replies)
{
	struct codec_reply rep;

#define REP(lit) codec_decode_reply((const uint8_t *)(lit), sizeof(lit) - 1, &rep)
	cr_expect_eq(REP("\x92\x01\x00"), -1);
	cr_expect_eq(REP("\x94\x01\x00\xc0\xc0"), -1);
	cr_expect_eq(REP("\x93\x01\x00\xc0\xc0"), -1);
	cr_expect_eq(REP("\x93\x01\xff\xc0"), -1);
	cr_expect_eq(REP("\x93\x01\x01\xa0"), -1);
	cr_expect_eq(REP("\x93\x01\x02\xc0"), -1);
	cr_expect_eq(REP("\x93\x01\x02\xc4\x00"), -1);
	cr_expect_eq(REP("\x93\x01\x00\xc1"), -1);
	cr_expect_eq(REP("\x93\x01\x00\xdd\x00\x0f\x42\x40"), -1);
	cr_expect_eq(REP("\x93\x01\xce\x00\x00\x00\x63\xa0"), 0); /* unknown status, str: fine */
	cr_expect_eq(rep.status, 99);
#undef REP
}

LEAK_CHECKED_TEST(codec, names)
{
	cr_expect_str_eq(codec_status_name(CODEC_OK), "OK");
	cr_expect_str_eq(codec_status_name(CODEC_NOT_FOUND), "NOT_FOUND");
	cr_expect_str_eq(codec_status_name(CODEC_SHUTTING_DOWN), "SHUTTING_DOWN");
	cr_expect_str_eq(codec_status_name(CODEC_LIMIT), "LIMIT");
	cr_expect_str_eq(codec_status_name(CODEC_BUSY), "BUSY");
	cr_expect_str_eq(codec_status_name(14), "CONFLICT");
	cr_expect_str_eq(codec_status_name(CODEC_STATUS_MAX + 1), "UNKNOWN");
	cr_expect_str_eq(codec_status_name(UINT32_MAX), "UNKNOWN");
	for (uint32_t s = 0; s <= CODEC_STATUS_MAX; s++)
		cr_expect_str_neq(codec_status_name(s), "UNKNOWN");
	cr_expect_str_eq(codec_op_name(CODEC_OP_FLASH_POP), "FLASH_POP");
	cr_expect_str_eq(codec_op_name(CODEC_OP_HELLO), "HELLO");
	cr_expect_str_eq(codec_op_name(CODEC_OP_STATS), "STATS");
	cr_expect_str_eq(codec_op_name(0x14), "SET_IF");
	cr_expect_str_eq(codec_op_name(0x22), "FLASH_PUSH_EXISTING");
	cr_expect_str_eq(codec_op_name(0x34), "NAMESPACES");
	cr_expect_str_eq(codec_op_name(0x15), "TTL");
	cr_expect_str_eq(codec_op_name(0x16), "LOAD");
	cr_expect_null(codec_op_name(0));
	cr_expect_null(codec_op_name(0x7f));
}

/* SET_IF's expect is a tag: bin of exactly 16 bytes, nothing else (PROTOCOL.md, "Sessions"). */
LEAK_CHECKED_TEST(codec, set_if_expect_must_be_bin_of_16_bytes)
{
	static const char tag[] = "0123456789abcdef";
	struct codec_request r;
	struct buf b;
	uint32_t st;
	const char *why;

	buf_init(&b);
	/* [0x14, 9, nil, "x", bin "d", 1000, expect] with each expect in turn. */
	for (int i = 0; i < 7; i++) {
		buf_reset(&b);
		cr_assert_eq(mp_write_array(&b, 7), 0);
		cr_assert_eq(mp_write_uint(&b, CODEC_OP_SET_IF), 0);
		cr_assert_eq(mp_write_uint(&b, 9), 0);
		cr_assert_eq(mp_write_nil(&b), 0);
		cr_assert_eq(mp_write_str(&b, "x", 1), 0);
		cr_assert_eq(mp_write_bin(&b, "d", 1), 0);
		cr_assert_eq(mp_write_uint(&b, 1000), 0);
		switch (i) {
		case 0:
			cr_assert_eq(mp_write_bin(&b, tag, 16), 0);
			break;
		case 1:
			cr_assert_eq(mp_write_bin(&b, tag, 15), 0);
			break;
		case 2:
			cr_assert_eq(mp_write_bin(&b, tag, 17), 0); /* with the NUL */
			break;
		case 3:
			cr_assert_eq(mp_write_bin(&b, tag, 0), 0);
			break;
		case 4:
			cr_assert_eq(mp_write_str(&b, tag, 16), 0);
			break;
		case 5:
			cr_assert_eq(mp_write_nil(&b), 0);
			break;
		default:
			cr_assert_eq(mp_write_uint(&b, 16), 0);
			break;
		}
		st = 99;
		why = NULL;
		if (i == 0) {
			cr_assert_eq(codec_decode_request(b.data, b.len, &r, &st, &why), 0);
			cr_expect_eq(r.op, CODEC_OP_SET_IF);
			cr_expect(bytes_eq(r.expect, (struct mp_bytes){(const uint8_t *)tag, 16}));
			cr_expect(bytes_eq(r.data, BYTES("d")));
			cr_expect_eq(r.ttl_ms, 1000);
			cr_expect(bytes_eq(r.ns, BYTES("default")));
			continue;
		}
		cr_expect_eq(codec_decode_request(b.data, b.len, &r, &st, &why), -1, "expect %d",
		             i);
		cr_expect_eq(st, CODEC_BAD_REQUEST, "expect %d", i);
		cr_expect_eq(r.request_id, 9, "the request id is kept for the reply");
		cr_expect_str_eq(why, "expect must be bin of 16 bytes", "expect %d", i);
	}
	/* Without expect it is a SET_IF with the wrong number of arguments, not a SET. */
	cr_expect_eq(DECODE("\x96\x14\x01\xc0\xa1x\xc4\x01"
	                    "d\x01",
	                    &r, &st),
	             -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	buf_finish(&b);
}

/* The tag is BLAKE2b-512's first 16 bytes (known answers from Python's hashlib), not the
 * 16-byte BLAKE2b, whose bytes all differ. */
LEAK_CHECKED_TEST(codec, data_tag_known_answers)
{
	static const uint8_t empty[CODEC_TAG_BYTES] = {0x78, 0x6a, 0x02, 0xf7, 0x42, 0x01,
	                                               0x59, 0x03, 0xc6, 0xc6, 0xfd, 0x85,
	                                               0x25, 0x52, 0xd2, 0x72};
	static const uint8_t abc[CODEC_TAG_BYTES] = {0xba, 0x80, 0xa5, 0x3f, 0x98, 0x1c,
	                                             0x4d, 0x0d, 0x6a, 0x27, 0x97, 0xb6,
	                                             0x9f, 0x12, 0xf6, 0xe9};
	uint8_t tag[CODEC_TAG_BYTES];

	codec_data_tag("", 0, tag);
	cr_expect_arr_eq(tag, empty, CODEC_TAG_BYTES);
	codec_data_tag(NULL, 0, tag);
	cr_expect_arr_eq(tag, empty, CODEC_TAG_BYTES);
	codec_data_tag("abc", 3, tag);
	cr_expect_arr_eq(tag, abc, CODEC_TAG_BYTES);
}

/* NAMESPACES names no namespace: [op, id, cursor, limit], the limit clamped as LIST's. */
LEAK_CHECKED_TEST(codec, namespaces_request)
{
	struct codec_request q = {.op = CODEC_OP_NAMESPACES, .request_id = 44, .limit = 1000};
	struct codec_request r;
	struct buf b;
	uint32_t st = 99;
	const char *why = NULL;

	buf_init(&b);
	cr_assert_eq(codec_encode_request(&b, &q), 0);
	cr_assert_eq(b.len, 4 + 7);
	cr_expect_eq(memcmp(b.data, "\x00\x00\x00\x07\x94\x34\x2c\x00\xcd\x03\xe8", 11), 0);
	cr_assert_eq(codec_decode_request(b.data + 4, b.len - 4, &r, &st, &why), 0);
	cr_expect_eq(r.op, CODEC_OP_NAMESPACES);
	cr_expect_eq(r.ns.len, 0, "no namespace, not the default one");
	cr_expect_eq(r.limit, 1000);
	/* The encoder refuses a namespace it would have to drop, and a limit out of range. */
	buf_reset(&b);
	q.ns = BYTES("shop");
	cr_expect_eq(codec_encode_request(&b, &q), -1);
	q.ns = (struct mp_bytes){0};
	q.limit = 0;
	cr_expect_eq(codec_encode_request(&b, &q), -1);
	q.limit = CODEC_LIST_MAX_LIMIT + 1;
	cr_expect_eq(codec_encode_request(&b, &q), -1);
	cr_expect_eq(b.len, 0);
	/* LIST's shape, with a namespace, is the wrong number of arguments. */
	cr_expect_eq(
	    codec_decode_request((const uint8_t *)"\x95\x34\x01\xc0\x00\x0a", 6, &r, &st, &why),
	    -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	cr_expect_eq(r.request_id, 1);
	/* Limits are clamped, not refused. */
	cr_assert_eq(
	    codec_decode_request((const uint8_t *)"\x94\x34\x02\x05\x00", 5, &r, &st, &why), 0);
	cr_expect_eq(r.limit, 1);
	cr_expect_eq(r.cursor, 5);
	cr_assert_eq(
	    codec_decode_request((const uint8_t *)"\x94\x34\x02\x05\xcd\x13\x88", 7, &r, &st, &why),
	    0);
	cr_expect_eq(r.limit, CODEC_LIST_MAX_LIMIT);
	/* A str cursor is BAD_REQUEST. */
	cr_expect_eq(
	    codec_decode_request((const uint8_t *)"\x94\x34\x02\xa1\x30\x01", 6, &r, &st, &why),
	    -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	buf_finish(&b);
}

/* TTL (0x15): ns and id, as GET; the request carries no ttl of its own (PROTOCOL.md). */
LEAK_CHECKED_TEST(codec, ttl_request)
{
	struct codec_request q = {.op = CODEC_OP_TTL, .request_id = 45, .id = BYTES("abc")};
	struct codec_request r;
	struct buf b;
	uint32_t st = 99;
	const char *why = NULL;

	buf_init(&b);
	cr_assert_eq(codec_encode_request(&b, &q), 0);
	cr_assert_eq(b.len, 4 + 8);
	cr_expect_eq(memcmp(b.data, "\x00\x00\x00\x08\x94\x15\x2d\xc0\xa3\x61\x62\x63", 12), 0);
	cr_assert_eq(codec_decode_request(b.data + 4, b.len - 4, &r, &st, &why), 0);
	cr_expect_eq(r.op, CODEC_OP_TTL);
	cr_expect_eq(r.request_id, 45);
	cr_expect(bytes_eq(r.ns, BYTES(CODEC_DEFAULT_NAMESPACE)), "nil is the default namespace");
	cr_expect(bytes_eq(r.id, BYTES("abc")));
	cr_expect_eq(r.ttl_ms, 0);
	/* The encoder refuses a missing or over-long id. */
	buf_reset(&b);
	q.id = (struct mp_bytes){0};
	cr_expect_eq(codec_encode_request(&b, &q), -1);
	cr_expect_eq(b.len, 0);
	/* A ttl argument, as TOUCH has, is the wrong number of arguments. */
	cr_expect_eq(
	    codec_decode_request((const uint8_t *)"\x95\x15\x01\xc0\xa1x\x05", 7, &r, &st, &why),
	    -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	cr_expect_eq(r.request_id, 1);
	/* So is a TTL without an id, and an empty id is out of range. */
	cr_expect_eq(codec_decode_request((const uint8_t *)"\x93\x15\x01\xc0", 4, &r, &st, &why),
	             -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	cr_expect_eq(
	    codec_decode_request((const uint8_t *)"\x94\x15\x01\xc0\xa0", 5, &r, &st, &why), -1);
	cr_expect_eq(st, CODEC_BAD_REQUEST);
	buf_finish(&b);
}

/* DESTROY_IF_FLASH (0x23): ns, id, type, msg; PROTOCOL.md's example, and its bad arguments. */
LEAK_CHECKED_TEST(codec, destroy_if_flash_request)
{
	static const uint8_t token[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
	struct codec_request q = {.op = CODEC_OP_DESTROY_IF_FLASH,
	                          .request_id = 52,
	                          .ns = BYTES("locks"),
	                          .id = BYTES("k"),
	                          .flash_type = BYTES("move"),
	                          .flash_msg = {token, sizeof(token)},
	                          .flash_msg_is_bin = true};
	static const uint8_t wire[] =
	    "\x00\x00\x00\x22\x96\x23\x34\xa5locks\xa1k\xa4move\xc4\x10"
	    "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f";
	struct codec_request r;
	struct buf b;
	uint32_t st = 99;
	const char *why = NULL;

	buf_init(&b);
	cr_assert_eq(codec_encode_request(&b, &q), 0);
	cr_assert_eq(b.len, sizeof(wire) - 1);
	cr_expect_eq(memcmp(b.data, wire, b.len), 0);
	cr_assert_eq(codec_decode_request(b.data + 4, b.len - 4, &r, &st, &why), 0);
	expect_same(&r, &q);
	cr_expect(codec_op_changes(CODEC_OP_DESTROY_IF_FLASH), "logged, and owed a RETIRE");
	cr_expect_str_eq(codec_op_name(CODEC_OP_DESTROY_IF_FLASH), "DESTROY_IF_FLASH");
	/* The encoder refuses a missing type. */
	buf_reset(&b);
	q.flash_type = (struct mp_bytes){0};
	cr_expect_eq(codec_encode_request(&b, &q), -1);
	cr_expect_eq(b.len, 0);
	/* Without msg, with a ttl after it (FLASH_PUSH's arguments), msg nil, type nil or empty. */
	static const struct {
		const char *body;
		size_t len;
	} bad[] = {
	    {"\x95\x23\x01\xc0\xa1k\xa1t", 8},     {"\x97\x23\x01\xc0\xa1k\xa1t\xa1m\x05", 11},
	    {"\x96\x23\x01\xc0\xa1k\xa1t\xc0", 9}, {"\x96\x23\x01\xc0\xa1k\xc0\xa1m", 9},
	    {"\x96\x23\x01\xc0\xa1k\xa0\xa1m", 9},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		st = 99;
		cr_expect_eq(
		    codec_decode_request((const uint8_t *)bad[i].body, bad[i].len, &r, &st, &why),
		    -1, "bad body %zu", i);
		cr_expect_eq(st, CODEC_BAD_REQUEST, "bad body %zu", i);
		cr_expect_eq(r.request_id, 1, "bad body %zu", i);
	}
	/* An empty message is a message: a lock's may be "". */
	cr_expect_eq(codec_decode_request((const uint8_t *)"\x96\x23\x01\xc0\xa1k\xa1t\xa0", 9, &r,
	                                  &st, &why),
	             0);
	cr_expect_eq(r.flash_msg.len, 0);
	buf_finish(&b);
}
