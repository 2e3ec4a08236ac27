#include "ids.h"

#include <errno.h>
#include <limits.h>

#include <sodium.h>

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int ids_base64url_encode(char *out, size_t out_size, const void *in, size_t len)
{
	const uint8_t *p = in;
	size_t need, i, o = 0;
	uint32_t v;

	/* 4 characters per 3 bytes, 2 or 3 for a final partial group, and the NUL. */
	if (len > (SIZE_MAX / 4 - 1) || len > (size_t)INT_MAX / 4 * 3)
		return -1;
	need = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
	if (out_size < need + 1)
		return -1;
	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
		out[o++] = b64url_alphabet[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)p[i] << 16;
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
	} else if (len - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return (int)o;
}

/* The 6-bit value of base64url character ${c}, or -1. */
static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int ids_base64url_decode(uint8_t *out, size_t out_size, const char *in, size_t len)
{
	size_t need, i, o = 0, tail = len % 4;
	uint32_t v = 0;
	int d;

	/* One leftover character carries only 6 bits: no whole byte, so no encoder makes it. */
	if (tail == 1 || len / 4 > (size_t)INT_MAX / 3)
		return -1;
	need = len / 4 * 3 + (tail ? tail - 1 : 0);
	if (out_size < need)
		return -1;
	for (i = 0; i < len; i++) {
		if ((d = b64url_value(in[i])) == -1)
			return -1;
		v = v << 6 | (uint32_t)d;
		if (i % 4 == 3) {
			out[o++] = (uint8_t)(v >> 16);
			out[o++] = (uint8_t)(v >> 8);
			out[o++] = (uint8_t)v;
			v = 0;
		}
	}
	/* Strict: the bits below the last whole byte must be zero, so each byte string has
	 * exactly one encoding. */
	if (tail == 2) {
		if (v & 0xf)
			return -1;
		out[o++] = (uint8_t)(v >> 4);
	} else if (tail == 3) {
		if (v & 0x3)
			return -1;
		out[o++] = (uint8_t)(v >> 10);
		out[o++] = (uint8_t)(v >> 2);
	}
	return (int)o;
}

int ids_generate(char out[IDS_TEXT_LEN + 1])
{
	uint8_t raw[IDS_RANDOM_BYTES];

	randombytes_buf(raw, sizeof raw);
	(void)ids_base64url_encode(out, IDS_TEXT_LEN + 1, raw, sizeof raw);
	sodium_memzero(raw, sizeof raw);
	return 0;
}

uint8_t *ids_secret_new(size_t len)
{
	uint8_t *key = sodium_malloc(len);

	if (key == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	randombytes_buf(key, len);
	sodium_mprotect_readonly(key);
	return key;
}

void ids_log_tag(char out[13], const void *id, size_t len, const uint8_t key[IDS_LOG_TAG_KEY_BYTES])
{
	/* crypto_generichash's shortest output is 16 bytes; the tag is its first 6. */
	uint8_t hash[crypto_generichash_BYTES_MIN];
	static const char hex[] = "0123456789abcdef";
	size_t i;

	crypto_generichash(hash, sizeof hash, id, len, key, 32);
	for (i = 0; i < 6; i++) {
		out[2 * i] = hex[hash[i] >> 4];
		out[2 * i + 1] = hex[hash[i] & 15];
	}
	out[12] = '\0';
}
