#include <criterion/criterion.h>

#include "leakcheck.h"

#include <string.h>

#include <sodium.h>

#include "ids.h"

static void check_pair(const char *raw, size_t raw_len, const char *text)
{
	char enc[256];
	uint8_t dec[256];

	cr_expect_eq(ids_base64url_encode(enc, sizeof enc, raw, raw_len), (int)strlen(text));
	cr_expect_str_eq(enc, text);
	cr_expect_eq(ids_base64url_decode(dec, sizeof dec, text, strlen(text)), (int)raw_len);
	cr_expect_eq(memcmp(dec, raw, raw_len), 0);
}

/* RFC 4648 section 10 test vectors, without padding. */
LEAK_CHECKED_TEST(ids, rfc4648_vectors)
{
	check_pair("", 0, "");
	check_pair("f", 1, "Zg");
	check_pair("fo", 2, "Zm8");
	check_pair("foo", 3, "Zm9v");
	check_pair("foob", 4, "Zm9vYg");
	check_pair("fooba", 5, "Zm9vYmE");
	check_pair("foobar", 6, "Zm9vYmFy");
}

LEAK_CHECKED_TEST(ids, url_alphabet_for_62_and_63)
{
	check_pair("\xfb\xff", 2, "-_8");
	check_pair("\xff\xff\xff", 3, "____");
	check_pair("\xfb\xef\xbe", 3, "----");
	check_pair("\x00\x00\x00", 3, "AAAA");
}

LEAK_CHECKED_TEST(ids, every_byte_round_trips)
{
	uint8_t raw[256], back[256];
	char text[400];
	size_t n, i;

	for (i = 0; i < sizeof raw; i++)
		raw[i] = (uint8_t)(255 - i);
	for (n = 0; n <= sizeof raw; n++) {
		int len = ids_base64url_encode(text, sizeof text, raw, n);

		cr_assert_geq(len, 0);
		cr_assert_eq((size_t)len, (n * 4 + 2) / 3);
		cr_assert_eq(ids_base64url_decode(back, sizeof back, text, (size_t)len), (int)n);
		cr_assert_eq(memcmp(back, raw, n), 0);
	}
}

LEAK_CHECKED_TEST(ids, encode_needs_room_for_the_nul)
{
	char out[8];

	memset(out, 'x', sizeof out);
	cr_expect_eq(ids_base64url_encode(out, 4, "foo", 3), -1);
	cr_expect_eq(out[4], 'x');
	cr_expect_eq(ids_base64url_encode(out, 5, "foo", 3), 4);
	cr_expect_eq(ids_base64url_encode(out, 0, "", 0), -1);
	cr_expect_eq(ids_base64url_encode(out, 1, "", 0), 0);
	cr_expect_eq(out[0], '\0');
}

LEAK_CHECKED_TEST(ids, decode_rejects_bad_input)
{
	uint8_t out[64];

	cr_expect_eq(ids_base64url_decode(out, sizeof out, "Zm9vY", 5), -1); /* 1 mod 4 */
	cr_expect_eq(ids_base64url_decode(out, sizeof out, "Z", 1), -1);
	cr_expect_eq(ids_base64url_decode(out, sizeof out, "Zm9v+mFy", 8), -1); /* standard b64 */
	cr_expect_eq(ids_base64url_decode(out, sizeof out, "Zm9v/mFy", 8), -1);
	cr_expect_eq(ids_base64url_decode(out, sizeof out, "Zm9vYg==", 8), -1); /* padding */
	cr_expect_eq(ids_base64url_decode(out, sizeof out, "Zm9 v", 5), -1);
	cr_expect_eq(ids_base64url_decode(out, sizeof out, "Zm\0v", 4), -1);
	/* non-zero trailing bits: "Zh" and "Zm9" differ from "Zg"/"Zm8" only in unused bits */
	cr_expect_eq(ids_base64url_decode(out, sizeof out, "Zh", 2), -1);
	cr_expect_eq(ids_base64url_decode(out, sizeof out, "Zm9", 3), -1);
	/* out too small */
	cr_expect_eq(ids_base64url_decode(out, 5, "Zm9vYmFy", 8), -1);
	cr_expect_eq(ids_base64url_decode(out, 6, "Zm9vYmFy", 8), 6);
	cr_expect_eq(ids_base64url_decode(out, 0, "", 0), 0);
}

LEAK_CHECKED_TEST(ids, generate_makes_43_url_safe_distinct_ids)
{
	char a[IDS_TEXT_LEN + 1], b[IDS_TEXT_LEN + 1];
	uint8_t raw[IDS_RANDOM_BYTES + 1];

	cr_assert_geq(sodium_init(), 0);
	cr_expect_eq(ids_generate(a), 0);
	cr_expect_eq(ids_generate(b), 0);
	cr_expect_eq(strlen(a), IDS_TEXT_LEN);
	cr_expect_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
	             IDS_TEXT_LEN);
	cr_expect_str_neq(a, b);
	cr_expect_eq(ids_base64url_decode(raw, sizeof raw, a, IDS_TEXT_LEN), IDS_RANDOM_BYTES);
}

LEAK_CHECKED_TEST(ids, log_tag_is_keyed_short_hex)
{
	uint8_t key1[32] = {1}, key2[32] = {2};
	char t1[13], t2[13], t3[13], t4[13];
	uint8_t hash[16];
	char want[13];
	int i;

	cr_assert_geq(sodium_init(), 0);
	ids_log_tag(t1, "session-a", 9, key1);
	ids_log_tag(t2, "session-a", 9, key1);
	ids_log_tag(t3, "session-a", 9, key2);
	ids_log_tag(t4, "session-b", 9, key1);
	cr_expect_eq(strlen(t1), 12);
	cr_expect_eq(strspn(t1, "0123456789abcdef"), 12);
	cr_expect_str_eq(t1, t2);
	cr_expect_str_neq(t1, t3);
	cr_expect_str_neq(t1, t4);
	/* the documented construction: keyed BLAKE2b, first 6 bytes */
	crypto_generichash(hash, sizeof hash, (const uint8_t *)"session-a", 9, key1, 32);
	for (i = 0; i < 6; i++)
		snprintf(want + 2 * i, 3, "%02x", hash[i]);
	cr_expect_str_eq(t1, want);
	ids_log_tag(t1, "", 0, key1);
	cr_expect_eq(strlen(t1), 12);
}
