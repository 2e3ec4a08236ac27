#include <criterion/criterion.h>

#include "leakcheck.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"

static void reader(struct mp_reader *r, const char *bytes, size_t len)
{
	mp_reader_init(r, bytes, len);
}

#define R(r, lit) reader((r), (lit), sizeof(lit) - 1)

/* Write v, check the exact encoding, and read it back. */
static void uint_case(uint64_t v, const char *want, size_t want_len)
{
	struct buf b;
	struct mp_reader r;
	uint64_t got;

	buf_init(&b);
	cr_assert_eq(mp_write_uint(&b, v), 0);
	cr_expect(b.len == want_len && memcmp(b.data, want, want_len) == 0, "encoding of %llu",
	          (unsigned long long)v);
	mp_reader_init(&r, b.data, b.len);
	cr_expect_eq(mp_peek_type(&r), MP_UINT);
	cr_expect_eq(mp_read_uint(&r, &got), 0);
	cr_expect_eq(got, v);
	cr_expect_eq(mp_reader_left(&r), 0);
	/* every shorter prefix is truncated and leaves the cursor put */
	for (size_t n = 0; n < want_len; n++) {
		mp_reader_init(&r, b.data, n);
		cr_expect_eq(mp_read_uint(&r, &got), -1);
		cr_expect_eq(mp_reader_left(&r), n);
	}
	buf_finish(&b);
}

LEAK_CHECKED_TEST(mp, uint_every_width_shortest)
{
	uint_case(0, "\x00", 1);
	uint_case(127, "\x7f", 1);
	uint_case(128, "\xcc\x80", 2);
	uint_case(255, "\xcc\xff", 2);
	uint_case(256, "\xcd\x01\x00", 3);
	uint_case(65535, "\xcd\xff\xff", 3);
	uint_case(65536, "\xce\x00\x01\x00\x00", 5);
	uint_case(UINT32_MAX, "\xce\xff\xff\xff\xff", 5);
	uint_case((uint64_t)UINT32_MAX + 1, "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9);
	uint_case(UINT64_MAX, "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
}

LEAK_CHECKED_TEST(mp, uint_accepts_non_negative_signed_encodings)
{
	struct mp_reader r;
	uint64_t v;

	R(&r, "\xd0\x7f");
	cr_expect_eq(mp_read_uint(&r, &v), 0);
	cr_expect_eq(v, 127);
	R(&r, "\xd1\x7f\xff");
	cr_expect_eq(mp_read_uint(&r, &v), 0);
	cr_expect_eq(v, 32767);
	R(&r, "\xd2\x7f\xff\xff\xff");
	cr_expect_eq(mp_read_uint(&r, &v), 0);
	cr_expect_eq(v, INT32_MAX);
	R(&r, "\xd3\x7f\xff\xff\xff\xff\xff\xff\xff");
	cr_expect_eq(mp_read_uint(&r, &v), 0);
	cr_expect_eq(v, INT64_MAX);
	R(&r, "\xd3\x00\x00\x00\x00\x00\x00\x00\x00");
	cr_expect_eq(mp_read_uint(&r, &v), 0);
	cr_expect_eq(v, 0);
	/* a non-shortest unsigned form is fine too */
	R(&r, "\xcf\x00\x00\x00\x00\x00\x00\x00\x05");
	cr_expect_eq(mp_read_uint(&r, &v), 0);
	cr_expect_eq(v, 5);
}

LEAK_CHECKED_TEST(mp, uint_rejects_negative_and_other_types)
{
	static const char *const bad[] = {"\xff",
	                                  "\xe0",
	                                  "\xd0\x80",
	                                  "\xd1\xff\xff",
	                                  "\xd2\x80\x00\x00\x00",
	                                  "\xd3\xff\xff\xff\xff\xff\xff\xff\xff",
	                                  "\xc0",
	                                  "\xc2",
	                                  "\xc3",
	                                  "\xca\x3f\x80\x00\x00",
	                                  "\xa1x",
	                                  "\xc4\x01x",
	                                  "\x90",
	                                  "\x80",
	                                  "\xc1",
	                                  "\xd4\x01\x00"};
	struct mp_reader r;
	uint64_t v = 12345;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len = bad[i][0] == '\xd3' || bad[i][0] == '\xca' ? 0 : strlen(bad[i]);

		if (len == 0) /* literals holding NULs */
			len = bad[i][0] == '\xd3' ? 9 : 5;
		mp_reader_init(&r, bad[i], len);
		cr_expect_eq(mp_read_uint(&r, &v), -1, "case %zu", i);
		cr_expect_eq(mp_reader_left(&r), len, "case %zu moved", i);
		cr_expect_eq(v, 12345);
	}
	R(&r, "\xff");
	cr_expect_eq(mp_peek_type(&r), MP_INT);
	R(&r, "\xd0\x80");
	cr_expect_eq(mp_peek_type(&r), MP_INT);
	R(&r, "\xd0\x01");
	cr_expect_eq(mp_peek_type(&r), MP_UINT);
}

LEAK_CHECKED_TEST(mp, peek_types)
{
	struct mp_reader r;

	R(&r, "");
	cr_expect_eq(mp_peek_type(&r), MP_INVALID);
	R(&r, "\xc1");
	cr_expect_eq(mp_peek_type(&r), MP_INVALID);
	R(&r, "\xc0");
	cr_expect_eq(mp_peek_type(&r), MP_NIL);
	R(&r, "\xc2");
	cr_expect_eq(mp_peek_type(&r), MP_BOOL);
	R(&r, "\xcb");
	cr_expect_eq(mp_peek_type(&r), MP_FLOAT);
	R(&r, "\xd9");
	cr_expect_eq(mp_peek_type(&r), MP_STR);
	R(&r, "\xc6");
	cr_expect_eq(mp_peek_type(&r), MP_BIN);
	R(&r, "\x9f");
	cr_expect_eq(mp_peek_type(&r), MP_ARRAY);
	R(&r, "\xde");
	cr_expect_eq(mp_peek_type(&r), MP_MAP);
	R(&r, "\xd8");
	cr_expect_eq(mp_peek_type(&r), MP_EXT);
	R(&r, "\xc7");
	cr_expect_eq(mp_peek_type(&r), MP_EXT);
}

/* mp.h: the type of the next value. Each first-byte range of the msgpack spec, at both ends. */
LEAK_CHECKED_TEST(mp, peek_types_at_each_ranges_ends)
{
	static const struct {
		uint8_t b;
		enum mp_type type;
	} edges[] = {
	    {0x00, MP_UINT},  {0x7f, MP_UINT}, {0x80, MP_MAP}, {0x8f, MP_MAP}, {0x90, MP_ARRAY},
	    {0x9f, MP_ARRAY}, {0xa0, MP_STR},  {0xbf, MP_STR}, {0xe0, MP_INT}, {0xff, MP_INT},
	};
	struct mp_reader r;

	for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
		mp_reader_init(&r, &edges[i].b, 1);
		cr_expect_eq(mp_peek_type(&r), edges[i].type, "first byte 0x%02x", edges[i].b);
	}
}

LEAK_CHECKED_TEST(mp, nil_and_bool)
{
	struct buf b;
	struct mp_reader r;
	bool v;

	buf_init(&b);
	cr_assert_eq(mp_write_nil(&b), 0);
	cr_assert_eq(mp_write_bool(&b, true), 0);
	cr_assert_eq(mp_write_bool(&b, false), 0);
	cr_expect(b.len == 3 && memcmp(b.data, "\xc0\xc3\xc2", 3) == 0);
	mp_reader_init(&r, b.data, b.len);
	cr_expect_eq(mp_read_bool(&r, &v), -1);
	cr_expect_eq(mp_read_nil(&r), 0);
	cr_expect_eq(mp_read_nil(&r), -1);
	cr_expect_eq(mp_read_bool(&r, &v), 0);
	cr_expect(v);
	cr_expect_eq(mp_read_bool(&r, &v), 0);
	cr_expect(!v);
	cr_expect_eq(mp_read_nil(&r), -1);
	cr_expect_eq(mp_read_bool(&r, &v), -1);
	buf_finish(&b);
}

/* Write a str or bin of ${len} bytes; check the header bytes and read it back. */
static void raw_case(bool bin, size_t len, const char *hdr, size_t hdr_len)
{
	struct buf b;
	struct mp_reader r;
	struct mp_bytes got;
	bool is_bin;
	char *payload = malloc(len + 1);

	cr_assert(payload != NULL);
	memset(payload, 'p', len);
	buf_init(&b);
	cr_assert_eq(bin ? mp_write_bin(&b, payload, len) : mp_write_str(&b, payload, len), 0);
	cr_assert_eq(b.len, hdr_len + len, "%s %zu", bin ? "bin" : "str", len);
	cr_expect_eq(memcmp(b.data, hdr, hdr_len), 0, "%s %zu header", bin ? "bin" : "str", len);
	mp_reader_init(&r, b.data, b.len);
	cr_expect_eq(mp_peek_type(&r), bin ? MP_BIN : MP_STR);
	cr_expect_eq(bin ? mp_read_str(&r, &got) : mp_read_bin(&r, &got), -1);
	cr_expect_eq(mp_reader_left(&r), b.len);
	cr_expect_eq(bin ? mp_read_bin(&r, &got) : mp_read_str(&r, &got), 0);
	cr_expect_eq(got.len, len);
	cr_expect_eq(got.ptr, b.data + hdr_len); /* zero copy */
	cr_expect_eq(mp_reader_left(&r), 0);
	mp_reader_init(&r, b.data, b.len);
	cr_expect_eq(mp_read_bytes(&r, &got, &is_bin), 0);
	cr_expect_eq(is_bin, bin);
	/* one byte short: truncated, cursor put */
	mp_reader_init(&r, b.data, b.len - 1);
	cr_expect_eq(mp_read_bytes(&r, &got, NULL), -1);
	cr_expect_eq(mp_reader_left(&r), b.len - 1);
	mp_reader_init(&r, b.data, b.len - 1);
	cr_expect_eq(mp_skip(&r), -1);
	buf_finish(&b);
	free(payload);
}

LEAK_CHECKED_TEST(mp, str_every_width)
{
	raw_case(false, 0, "\xa0", 1);
	raw_case(false, 31, "\xbf", 1);
	raw_case(false, 32, "\xd9\x20", 2);
	raw_case(false, 255, "\xd9\xff", 2);
	raw_case(false, 256, "\xda\x01\x00", 3);
	raw_case(false, 65535, "\xda\xff\xff", 3);
	raw_case(false, 65536, "\xdb\x00\x01\x00\x00", 5);
}

LEAK_CHECKED_TEST(mp, bin_every_width)
{
	raw_case(true, 0, "\xc4\x00", 2);
	raw_case(true, 255, "\xc4\xff", 2);
	raw_case(true, 256, "\xc5\x01\x00", 3);
	raw_case(true, 65535, "\xc5\xff\xff", 3);
	raw_case(true, 65536, "\xc6\x00\x01\x00\x00", 5);
}

LEAK_CHECKED_TEST(mp, huge_declared_lengths_are_rejected)
{
	struct mp_reader r;
	struct mp_bytes v;

	R(&r, "\xdb\xff\xff\xff\xff"
	      "abc");
	cr_expect_eq(mp_read_str(&r, &v), -1);
	cr_expect_eq(mp_skip(&r), -1);
	R(&r, "\xc6\xff\xff\xff\xff");
	cr_expect_eq(mp_read_bin(&r, &v), -1);
	R(&r, "\xc9\xff\xff\xff\xff\x01");
	cr_expect_eq(mp_skip(&r), -1);
	R(&r, "\xd9");
	cr_expect_eq(mp_read_str(&r, &v), -1);
	R(&r, "\xda\x00");
	cr_expect_eq(mp_read_str(&r, &v), -1);
	cr_expect_eq(mp_reader_left(&r), 2);
}

LEAK_CHECKED_TEST(mp, array_and_map_headers_every_width)
{
	struct buf b;
	struct mp_reader r;
	uint32_t n;
	static const uint32_t counts[] = {0, 15, 16, 65535, 65536};
	size_t i, k;

	for (i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		for (k = 0; k < 2; k++) {
			size_t hdr;

			buf_init(&b);
			cr_assert_eq(
			    k ? mp_write_map(&b, counts[i]) : mp_write_array(&b, counts[i]), 0);
			hdr = b.len;
			cr_expect_eq(hdr, counts[i] < 16 ? 1u : counts[i] < 65536 ? 3u : 5u);
			/* without elements behind it the header claims more than is there */
			mp_reader_init(&r, b.data, b.len);
			cr_expect_eq(k ? mp_read_map(&r, &n) : mp_read_array(&r, &n),
			             counts[i] == 0 ? 0 : -1);
			for (uint32_t e = 0; e < counts[i] * (k ? 2 : 1); e++)
				cr_assert_eq(mp_write_nil(&b), 0);
			mp_reader_init(&r, b.data, b.len);
			cr_expect_eq(k ? mp_read_array(&r, &n) : mp_read_map(&r, &n), -1);
			cr_expect_eq(k ? mp_read_map(&r, &n) : mp_read_array(&r, &n), 0);
			cr_expect_eq(n, counts[i]);
			cr_expect_eq(mp_reader_left(&r), b.len - hdr);
			mp_reader_init(&r, b.data, b.len);
			cr_expect_eq(mp_skip(&r), 0);
			cr_expect_eq(mp_reader_left(&r), 0);
			buf_finish(&b);
		}
	}
}

LEAK_CHECKED_TEST(mp, counts_are_checked_against_bytes_left)
{
	struct mp_reader r;
	uint32_t n;

	/* a 5-byte array32 header claiming 1,000,000 elements */
	R(&r, "\xdd\x00\x0f\x42\x40");
	cr_expect_eq(mp_read_array(&r, &n), -1);
	cr_expect_eq(mp_reader_left(&r), 5);
	cr_expect_eq(mp_skip(&r), -1);
	R(&r, "\xdf\xff\xff\xff\xff");
	cr_expect_eq(mp_read_map(&r, &n), -1);
	cr_expect_eq(mp_skip(&r), -1);
	/* array n needs n bytes; map n needs 2n */
	R(&r, "\x93\xc0\xc0");
	cr_expect_eq(mp_read_array(&r, &n), -1);
	R(&r, "\x93\xc0\xc0\xc0");
	cr_expect_eq(mp_read_array(&r, &n), 0);
	cr_expect_eq(n, 3);
	R(&r, "\x82\xc0\xc0\xc0");
	cr_expect_eq(mp_read_map(&r, &n), -1);
	R(&r, "\x82\xc0\xc0\xc0\xc0");
	cr_expect_eq(mp_read_map(&r, &n), 0);
	cr_expect_eq(n, 2);
	R(&r, "\xdc\x00");
	cr_expect_eq(mp_read_array(&r, &n), -1);
	R(&r, "\xdd\x00\x00\x00");
	cr_expect_eq(mp_read_array(&r, &n), -1);
}

LEAK_CHECKED_TEST(mp, skip_every_type)
{
	/* nil, true, fixint, negative fixint, every int/uint/float width, fixext 1..16,
	 * ext 8/16/32, str, bin, nested array and map */
	static const char value[] =
	    "\xdc\x00\x13"
	    "\xc0\xc3\x05\xff\xcc\x01\xcd\x00\x01\xce\x00\x00\x00\x01"
	    "\xcf\x00\x00\x00\x00\x00\x00\x00\x01\xd0\xff\xd1\xff\xff\xd2\xff\xff\xff\xff"
	    "\xd3\xff\xff\xff\xff\xff\xff\xff\xff\xca\x00\x00\x00\x00"
	    "\xcb\x00\x00\x00\x00\x00\x00\x00\x00"
	    "\x95\xd4\x01\x00\xd5\x01\x00\x00\xd6\x01\x00\x00\x00\x00"
	    "\xd7\x01\x00\x00\x00\x00\x00\x00\x00\x00"
	    "\xd8\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	    "\x93\xc7\x01\x05x\xc8\x00\x01\x05x\xc9\x00\x00\x00\x01\x05x"
	    "\xa3"
	    "abc\xc4\x02xy"
	    "\x82\xa1k\x91\x90\xc0\x80";
	struct mp_reader r;
	size_t len = sizeof value - 1, n;

	mp_reader_init(&r, value, len);
	cr_expect_eq(mp_skip(&r), 0);
	cr_expect_eq(mp_reader_left(&r), 0);
	/* every truncation fails and leaves the cursor put */
	for (n = 0; n < len; n++) {
		mp_reader_init(&r, value, n);
		cr_expect_eq(mp_skip(&r), -1, "prefix %zu", n);
		cr_expect_eq(mp_reader_left(&r), n);
	}
}

LEAK_CHECKED_TEST(mp, skip_rejects_reserved_byte)
{
	struct mp_reader r;

	R(&r, "\xc1");
	cr_expect_eq(mp_skip(&r), -1);
	R(&r, "\x92\xc0\xc1");
	cr_expect_eq(mp_skip(&r), -1);
	cr_expect_eq(mp_reader_left(&r), 3);
	R(&r, "\x81\xc1\xc0");
	cr_expect_eq(mp_skip(&r), -1);
}

static void nested(struct buf *b, int levels, bool maps)
{
	int i;

	buf_init(b);
	for (i = 0; i < levels - 1; i++)
		cr_assert_eq(maps ? mp_write_map(b, 1) : mp_write_array(b, 1), 0);
	cr_assert_eq(maps ? mp_write_map(b, 0) : mp_write_array(b, 0), 0);
	if (maps)
		for (i = 0; i < levels - 1; i++)
			cr_assert_eq(mp_write_nil(b), 0); /* keys go first: put them after */
}

LEAK_CHECKED_TEST(mp, skip_depth_limit)
{
	struct buf b;
	struct mp_reader r;
	int maps;

	for (maps = 0; maps < 2; maps++) {
		nested(&b, MP_MAX_DEPTH, maps);
		mp_reader_init(&r, b.data, b.len);
		cr_expect_eq(mp_skip(&r), 0, "%d levels (maps %d)", MP_MAX_DEPTH, maps);
		cr_expect_eq(mp_reader_left(&r), 0);
		buf_finish(&b);
		nested(&b, MP_MAX_DEPTH + 1, maps);
		mp_reader_init(&r, b.data, b.len);
		cr_expect_eq(mp_skip(&r), -1, "%d levels (maps %d)", MP_MAX_DEPTH + 1, maps);
		cr_expect_eq(mp_reader_left(&r), b.len);
		buf_finish(&b);
	}
}

LEAK_CHECKED_TEST(mp, skip_deep_input_without_recursion)
{
	/* 100000 nested arrays: rejected at level 17 with no stack growth */
	size_t n = 100000;
	uint8_t *deep = malloc(n);
	struct mp_reader r;

	cr_assert(deep != NULL);
	memset(deep, 0x91, n - 1);
	deep[n - 1] = 0x90;
	mp_reader_init(&r, deep, n);
	cr_expect_eq(mp_skip(&r), -1);
	free(deep);
}

LEAK_CHECKED_TEST(mp, skip_consumes_one_value_only)
{
	struct mp_reader r;

	R(&r, "\x92\x01\x02\x03");
	cr_expect_eq(mp_skip(&r), 0);
	cr_expect_eq(mp_reader_left(&r), 1);
	cr_expect_eq(mp_skip(&r), 0);
	cr_expect_eq(mp_reader_left(&r), 0);
	cr_expect_eq(mp_skip(&r), -1);
}

LEAK_CHECKED_TEST(mp, array_and_map_open_close)
{
	struct buf b;
	struct mp_reader r;
	size_t at, mat;
	uint32_t n;
	uint64_t v;

	buf_init(&b);
	cr_assert_eq(mp_write_array_open(&b, &at), 0);
	cr_assert_eq(mp_write_uint(&b, 1), 0);
	cr_assert_eq(mp_write_map_open(&b, &mat), 0);
	cr_assert_eq(mp_write_str(&b, "k", 1), 0);
	cr_assert_eq(mp_write_uint(&b, 2), 0);
	mp_write_map_close(&b, mat, 1);
	mp_write_array_close(&b, at, 2);
	cr_expect_eq(memcmp(b.data, "\xdd\x00\x00\x00\x02\x01\xdf\x00\x00\x00\x01", 11), 0);
	mp_reader_init(&r, b.data, b.len);
	cr_expect_eq(mp_read_array(&r, &n), 0);
	cr_expect_eq(n, 2);
	cr_expect_eq(mp_read_uint(&r, &v), 0);
	cr_expect_eq(mp_read_map(&r, &n), 0);
	cr_expect_eq(n, 1);
	mp_reader_init(&r, b.data, b.len);
	cr_expect_eq(mp_skip(&r), 0);
	cr_expect_eq(mp_reader_left(&r), 0);
	buf_finish(&b);
}

LEAK_CHECKED_TEST(mp, write_refuses_over_4gib)
{
	struct buf b;

	/* Where size_t is 32 bits no length is over 4 GiB: UINT32_MAX + 1 wraps to 0, and an
	 * empty string is rightly written. */
	if (SIZE_MAX <= UINT32_MAX)
		cr_skip_test("size_t is %zu bits: no length is over 4 GiB", sizeof(size_t) * 8);
	buf_init(&b);
	cr_expect_eq(mp_write_str(&b, "", (size_t)UINT32_MAX + 1), -1);
	cr_expect_eq(mp_write_bin(&b, "", (size_t)UINT32_MAX + 1), -1);
	cr_expect_eq(b.len, 0);
	buf_finish(&b);
}
