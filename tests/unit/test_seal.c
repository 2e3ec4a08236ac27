/*
 * seal: the sealed-connection key exchange and records, against protocol/seal-vectors.json
 * (computed independently with Python's cryptography) and against themselves: forged,
 * replayed and reordered records, wrong secrets, malformed lengths.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "leakcheck.h"
#include "seal.h"

static char *vectors;

static void setup(void)
{
	const char *root = getenv("SESSD_SOURCE_ROOT");
	char path[4096];
	FILE *f;
	long size;

	cr_assert(sodium_init() >= 0);
	cr_assert_not_null(root, "SESSD_SOURCE_ROOT is not set (run through meson test)");
	snprintf(path, sizeof(path), "%s/protocol/seal-vectors.json", root);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	cr_assert_gt(size, 0);
	rewind(f);
	vectors = malloc((size_t)size + 1);
	cr_assert_not_null(vectors);
	cr_assert_eq(fread(vectors, 1, (size_t)size, f), (size_t)size);
	vectors[size] = '\0';
	fclose(f);
}

static void teardown(void)
{
	free(vectors);
}

TestSuite(seal, .init = setup, .fini = teardown);

/*
 * The hex string of the first "${name}": "..." at or after ${from} in the vectors (the file
 * is flat but for its records array), decoded into ${out} (at most ${cap} bytes). Returns the
 * byte count; *${next} (when not NULL) is set past the value.
 */
static size_t hex_field(const char *from, const char *name, uint8_t *out, size_t cap,
                        const char **next)
{
	char key[64];
	const char *p, *end;
	size_t len;

	snprintf(key, sizeof(key), "\"%s\": \"", name);
	p = strstr(from, key);
	cr_assert_not_null(p, "no %s in seal-vectors.json", name);
	p += strlen(key);
	end = strchr(p, '"');
	cr_assert_not_null(end);
	cr_assert_eq(sodium_hex2bin(out, cap, p, (size_t)(end - p), NULL, &len, NULL), 0,
	             "%s does not fit in %zu bytes", name, cap);
	if (next != NULL)
		*next = end + 1;
	return len;
}

static void fixed(const char *name, uint8_t *out, size_t len)
{
	cr_assert_eq(hex_field(vectors, name, out, len, NULL), len, "%s is not %zu bytes", name,
	             len);
}

struct pair {
	struct seal *client, *server;
};

/* A client and a server sealed with each other by the vectors' fixed keys, checking each
 * value on the way. */
static struct pair vector_pair(void)
{
	uint8_t secret[64], psk[SEAL_PSK_BYTES], want_psk[SEAL_PSK_BYTES];
	uint8_t c_sk[32], c_pk[32], c_proof[32], s_sk[32], s_pk[32], s_proof[32];
	uint8_t want[32];
	size_t secret_len = hex_field(vectors, "secret_hex", secret, sizeof(secret), NULL);
	struct pair p;

	seal_psk(psk, secret, secret_len);
	fixed("psk_hex", want_psk, sizeof(want_psk));
	cr_assert_arr_eq(psk, want_psk, sizeof(psk), "psk");
	fixed("client_secret_hex", c_sk, sizeof(c_sk));
	p.client = seal_client_new_with_key(psk, c_sk, c_pk, c_proof);
	cr_assert_not_null(p.client);
	fixed("client_public_hex", want, 32);
	cr_assert_arr_eq(c_pk, want, 32, "client public key");
	fixed("client_proof_hex", want, 32);
	cr_assert_arr_eq(c_proof, want, 32, "client proof");
	fixed("server_secret_hex", s_sk, sizeof(s_sk));
	p.server = seal_server_new_with_key(psk, c_pk, c_proof, s_sk, s_pk, s_proof);
	cr_assert_not_null(p.server);
	fixed("server_public_hex", want, 32);
	cr_assert_arr_eq(s_pk, want, 32, "server public key");
	fixed("server_proof_hex", want, 32);
	cr_assert_arr_eq(s_proof, want, 32, "server proof");
	cr_assert_eq(seal_client_finish(p.client, s_pk, s_proof), 0);
	return p;
}

static void free_pair(struct pair *p)
{
	seal_free(p->client);
	seal_free(p->server);
}

LEAK_CHECKED_TEST(seal, the_exchange_and_records_match_the_vectors)
{
	struct pair p = vector_pair();
	const char *at = strstr(vectors, "\"records\"");
	static uint8_t plain[SEAL_MAX_PLAIN], want[SEAL_MAX_PLAIN + SEAL_OVERHEAD],
	    opened[SEAL_MAX_PLAIN];
	int checked = 0;

	cr_assert_not_null(at);
	while (strstr(at, "\"direction\"") != NULL) {
		bool c2s = strstr(at, "\"direction\": \"c2s\"") == strstr(at, "\"direction\"");
		size_t plain_len = hex_field(at, "plain_hex", plain, sizeof(plain), &at);
		size_t record_len = hex_field(at, "record_hex", want, sizeof(want), &at);
		struct buf out;

		buf_init(&out);
		cr_assert_eq(seal_append(c2s ? p.client : p.server, &out, plain, plain_len), 0);
		cr_assert_eq(out.len, record_len);
		cr_assert_arr_eq(out.data, want, record_len, "record %d", checked);
		cr_assert_eq(seal_record_size(out.data), record_len);
		cr_assert_eq(seal_open(c2s ? p.server : p.client, out.data, out.len, opened), 0);
		cr_assert_arr_eq(opened, plain, plain_len);
		buf_finish(&out);
		checked++;
	}
	cr_assert_eq(checked, 4);
	free_pair(&p);
}

LEAK_CHECKED_TEST(seal, random_keys_agree)
{
	uint8_t psk[SEAL_PSK_BYTES], c_pk[32], c_proof[32], s_pk[32], s_proof[32], opened[5];
	struct seal *client, *server;
	struct buf out;

	seal_psk(psk, "sixteen or more bytes", 21);
	client = seal_client_new(psk, c_pk, c_proof);
	cr_assert_not_null(client);
	server = seal_server_new(psk, c_pk, c_proof, s_pk, s_proof);
	cr_assert_not_null(server);
	cr_assert_eq(seal_client_finish(client, s_pk, s_proof), 0);
	buf_init(&out);
	cr_assert_eq(seal_append(server, &out, (const uint8_t *)"hello", 5), 0);
	cr_assert_eq(seal_open(client, out.data, out.len, opened), 0);
	cr_assert_arr_eq(opened, "hello", 5);
	buf_finish(&out);
	seal_free(client);
	seal_free(server);
}

LEAK_CHECKED_TEST(seal, a_client_without_the_secret_is_refused)
{
	uint8_t right[SEAL_PSK_BYTES], wrong[SEAL_PSK_BYTES];
	uint8_t c_pk[32], c_proof[32], s_pk[32], s_proof[32];
	struct seal *client;

	seal_psk(right, "the server's own secret", 23);
	seal_psk(wrong, "the server's own secreT", 23);
	client = seal_client_new(wrong, c_pk, c_proof);
	cr_assert_not_null(client);
	errno = 0;
	cr_assert_null(seal_server_new(right, c_pk, c_proof, s_pk, s_proof));
	cr_assert_eq(errno, EACCES);
	/* Someone else's proof replayed with another key is no better. */
	c_pk[0] ^= 1;
	errno = 0;
	cr_assert_null(seal_server_new(right, c_pk, c_proof, s_pk, s_proof));
	cr_assert_eq(errno, EACCES);
	seal_free(client);
}

LEAK_CHECKED_TEST(seal, a_low_order_key_is_refused_even_with_its_proof)
{
	uint8_t psk[SEAL_PSK_BYTES], zero[32] = {0}, proof[32], s_pk[32], s_proof[32];
	crypto_auth_hmacsha256_state st;

	seal_psk(psk, "sixteen or more bytes", 21);
	/* What a client holding the secret would send with an all-zero public key. */
	crypto_auth_hmacsha256_init(&st, psk, sizeof(psk));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"sessd-kx-v1 client", 18);
	crypto_auth_hmacsha256_update(&st, zero, sizeof(zero));
	crypto_auth_hmacsha256_final(&st, proof);
	errno = 0;
	cr_assert_null(seal_server_new(psk, zero, proof, s_pk, s_proof));
	cr_assert_eq(errno, EDOM, "a right proof of a useless key is not a wrong proof");
}

LEAK_CHECKED_TEST(seal, a_server_without_the_secret_is_found_out)
{
	uint8_t psk[SEAL_PSK_BYTES], other[SEAL_PSK_BYTES], c_pk[32], c_proof[32], s_pk[32],
	    s_proof[32];
	uint8_t c_sk2[32], c_pk2[32], c_proof2[32];
	struct seal *client, *impostor, *client2;
	struct buf out;

	seal_psk(psk, "sixteen or more bytes", 21);
	seal_psk(other, "another sixteen bytes", 21);
	client = seal_client_new(psk, c_pk, c_proof);
	cr_assert_not_null(client);
	/* An impostor cannot check the client's proof; say it answers with its own secret. */
	randombytes_buf(c_sk2, sizeof(c_sk2));
	client2 = seal_client_new_with_key(other, c_sk2, c_pk2, c_proof2);
	impostor = seal_server_new(other, c_pk2, c_proof2, s_pk, s_proof);
	cr_assert_not_null(impostor);
	cr_assert_eq(seal_client_finish(client, s_pk, s_proof), -1);
	/* Nothing can be sealed after a failed exchange, and it cannot be retried. */
	buf_init(&out);
	errno = 0;
	cr_assert_eq(seal_append(client, &out, (const uint8_t *)"x", 1), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(out.len, 0);
	cr_assert_eq(seal_client_finish(client, s_pk, s_proof), -1);
	buf_finish(&out);
	seal_free(client);
	seal_free(client2);
	seal_free(impostor);
}

LEAK_CHECKED_TEST(seal, forged_replayed_and_reordered_records_do_not_open)
{
	struct pair p = vector_pair();
	uint8_t opened[64];
	struct buf first, second;

	buf_init(&first);
	buf_init(&second);
	cr_assert_eq(seal_append(p.client, &first, (const uint8_t *)"first record", 12), 0);
	cr_assert_eq(seal_append(p.client, &second, (const uint8_t *)"second record", 13), 0);
	/* Out of order. */
	cr_assert_eq(seal_open(p.server, second.data, second.len, opened), -1);
	/* Every byte of the first changed in turn: none opens, and none uses up its number. */
	for (size_t i = 0; i < first.len; i++) {
		first.data[i] ^= 0x20;
		cr_expect_eq(seal_open(p.server, first.data, first.len, opened), -1, "byte %zu", i);
		first.data[i] ^= 0x20;
	}
	cr_assert_eq(seal_open(p.server, first.data, first.len, opened), 0);
	cr_assert_arr_eq(opened, "first record", 12);
	/* Replayed. */
	cr_assert_eq(seal_open(p.server, first.data, first.len, opened), -1);
	/* A record sealed for the other direction. */
	cr_assert_eq(seal_open(p.client, second.data, second.len, opened), -1);
	cr_assert_eq(seal_open(p.server, second.data, second.len, opened), 0);
	cr_assert_arr_eq(opened, "second record", 13);
	buf_finish(&first);
	buf_finish(&second);
	free_pair(&p);
}

LEAK_CHECKED_TEST(seal, record_lengths_are_bounded)
{
	struct pair p = vector_pair();
	uint8_t header[4] = {0, 0, 0, 16};
	static uint8_t big[3 * SEAL_MAX_PLAIN + 7], opened[SEAL_MAX_PLAIN];
	struct buf out;
	size_t at = 0, total = 0, records = 0, size;

	cr_assert_eq(seal_record_size(header), 0);
	header[3] = 17;
	cr_assert_eq(seal_record_size(header), 21);
	header[1] = 1, header[3] = 16; /* 65552 */
	cr_assert_eq(seal_record_size(header), 65556);
	header[3] = 17;
	cr_assert_eq(seal_record_size(header), 0);
	memset(header, 0xff, sizeof(header));
	cr_assert_eq(seal_record_size(header), 0);

	buf_init(&out);
	errno = 0;
	cr_assert_eq(seal_append(p.client, &out, big, 0), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(seal_append(p.client, &out, big, SEAL_MAX_PLAIN + 1), -1);
	cr_assert_eq(out.len, 0);
	randombytes_buf(big, sizeof(big));
	cr_assert_eq(seal_append_all(p.client, &out, big, sizeof(big)), 0);
	while (at < out.len) {
		size = seal_record_size(out.data + at);
		cr_assert_neq(size, 0);
		cr_assert_leq(at + size, out.len);
		cr_assert_eq(seal_open(p.server, out.data + at, size, opened), 0);
		cr_assert_arr_eq(opened, big + total, size - SEAL_OVERHEAD);
		total += size - SEAL_OVERHEAD;
		at += size;
		records++;
	}
	cr_assert_eq(total, sizeof(big));
	cr_assert_eq(records, 4);
	buf_finish(&out);
	free_pair(&p);
	seal_free(NULL);
}

/* Seals from a pool: more than a chunk's worth at once, freed out of order and taken again,
 * each with working keys; freeing the pool frees all. */
LEAK_CHECKED_TEST(seal, seals_from_a_pool_work_and_are_reused)
{
	enum { N = 150 };
	uint8_t psk[SEAL_PSK_BYTES], c_pk[32], c_proof[32], s_pk[32], s_proof[32], opened[4];
	struct seal_pool *pool = seal_pool_new();
	struct seal *clients[N], *servers[N];
	struct buf out;

	cr_assert_not_null(pool);
	seal_psk(psk, "sixteen or more bytes", 21);
	buf_init(&out);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < N; i++) {
			clients[i] = seal_client_new(psk, c_pk, c_proof);
			servers[i] = seal_server_new_in(pool, psk, c_pk, c_proof, s_pk, s_proof);
			cr_assert_not_null(clients[i]);
			cr_assert_not_null(servers[i]);
			cr_assert_eq(seal_client_finish(clients[i], s_pk, s_proof), 0);
		}
		for (int i = 0; i < N; i++) {
			buf_reset(&out);
			cr_assert_eq(seal_append(servers[i], &out, (const uint8_t *)"abcd", 4), 0);
			cr_assert_eq(seal_open(clients[i], out.data, out.len, opened), 0, "seal %d",
			             i);
			cr_assert_arr_eq(opened, "abcd", 4);
		}
		/* Every other one first, then the rest. */
		for (int i = 0; i < N; i += 2)
			seal_free(servers[i]);
		for (int i = 1; i < N; i += 2)
			seal_free(servers[i]);
		for (int i = 0; i < N; i++)
			seal_free(clients[i]);
	}
	buf_finish(&out);
	seal_pool_free(pool);
	seal_pool_free(NULL);
}

/* The server proof for a client whose psk and ephemeral secret key are all zeros, which is
 * what a failed seal_client_finish leaves: anyone can compute it. */
static void wiped_proof(const uint8_t c_pk[32], const uint8_t s_pk[32], uint8_t proof[32])
{
	static const uint8_t zeros[32];
	uint8_t shared[32], prk[32], okm[96];
	crypto_auth_hmacsha256_state st;

	cr_assert_eq(crypto_scalarmult(shared, zeros, s_pk), 0);
	crypto_auth_hmacsha256(prk, shared, sizeof(shared), zeros);
	for (uint8_t i = 1; i <= 3; i++) {
		crypto_auth_hmacsha256_init(&st, prk, sizeof(prk));
		if (i > 1)
			crypto_auth_hmacsha256_update(&st, okm + 32 * (i - 2), 32);
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)"sessd-kx-v1 keys", 16);
		crypto_auth_hmacsha256_update(&st, c_pk, 32);
		crypto_auth_hmacsha256_update(&st, s_pk, 32);
		crypto_auth_hmacsha256_update(&st, &i, 1);
		crypto_auth_hmacsha256_final(&st, okm + 32 * (i - 1));
	}
	crypto_auth_hmacsha256_init(&st, okm + 64, 32);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"sessd-kx-v1 server", 18);
	crypto_auth_hmacsha256_update(&st, c_pk, 32);
	crypto_auth_hmacsha256_update(&st, s_pk, 32);
	crypto_auth_hmacsha256_final(&st, proof);
}

LEAK_CHECKED_TEST(seal, a_failed_exchange_cannot_be_finished_again)
{
	uint8_t psk[SEAL_PSK_BYTES], c_pk[32], c_proof[32], s_pk[32], s_proof[32], forged[32];
	struct seal *client, *server;

	seal_psk(psk, "sixteen or more bytes", 21);
	client = seal_client_new(psk, c_pk, c_proof);
	cr_assert_not_null(client);
	server = seal_server_new(psk, c_pk, c_proof, s_pk, s_proof);
	cr_assert_not_null(server);
	s_proof[0] ^= 1;
	cr_assert_eq(seal_client_finish(client, s_pk, s_proof), -1);
	/* The first try wiped the psk and the secret key: an impostor who knows that derives
	 * the keys of an all-zero psk and scalar, and must still be refused. */
	wiped_proof(c_pk, s_pk, forged);
	cr_expect_eq(seal_client_finish(client, s_pk, forged), -1);
	s_proof[0] ^= 1;
	cr_expect_eq(seal_client_finish(client, s_pk, s_proof), -1);
	seal_free(client);
	seal_free(server);
}
