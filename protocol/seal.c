/*
 * Sealed connections. See seal.h and PROTOCOL.md, "Sealed connections".
 */
#include "seal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define LABEL_PSK    "sessd-psk-v1"
#define LABEL_CLIENT "sessd-kx-v1 client"
#define LABEL_SERVER "sessd-kx-v1 server"
#define LABEL_KEYS   "sessd-kx-v1 keys"

#define HMAC_BYTES crypto_auth_hmacsha256_BYTES
#define AEAD_KEY   crypto_aead_chacha20poly1305_ietf_KEYBYTES
#define AEAD_NONCE crypto_aead_chacha20poly1305_ietf_NPUBBYTES

/* Seals a pool chunk holds: one sodium_malloc (four mappings, a locked page or so) serves
 * this many connections instead of one. */
#define POOL_CHUNK_SEALS 64

struct seal {
	struct seal_pool *pool; /* where it came from; NULL: its own sodium_malloc */
	struct seal *next_free; /* while on its pool's free list */
	/* Until the keys are derived (wiped then). */
	uint8_t psk[SEAL_PSK_BYTES];
	/* A client's ephemeral key pair, until seal_client_finish (the secret is wiped then). */
	uint8_t secret_key[SEAL_KEY_BYTES];
	uint8_t public_key[SEAL_KEY_BYTES];
	uint8_t send_key[AEAD_KEY];
	uint8_t recv_key[AEAD_KEY];
	uint64_t sent;     /* records sealed so far: the next one's number */
	uint64_t received; /* records opened so far */
	bool is_client;
	bool ready; /* keys derived */
	/* A client's exchange was finished, well or not: a failed one leaves its psk and secret
	 * key wiped to zeros, keys anyone could derive, so it must never be finished again. */
	bool finished;
};

struct seal_pool {
	struct seal **chunks; /* each POOL_CHUNK_SEALS seals, sodium_malloc'd */
	size_t n_chunks;
	struct seal *free_list;
};

struct seal_pool *seal_pool_new(void)
{
	struct seal_pool *pool = calloc(1, sizeof(*pool));

	if (pool == NULL)
		errno = ENOMEM;
	return pool;
}

void seal_pool_free(struct seal_pool *pool)
{
	if (pool == NULL)
		return;
	for (size_t i = 0; i < pool->n_chunks; i++)
		sodium_free(pool->chunks[i]);
	free(pool->chunks);
	free(pool);
}

/* A wiped seal from ${pool}, growing it by a chunk when none is free; NULL (ENOMEM). */
static struct seal *pool_take(struct seal_pool *pool)
{
	struct seal *chunk, **chunks, *s;

	if (pool->free_list == NULL) {
		chunks = realloc(pool->chunks, (pool->n_chunks + 1) * sizeof(*chunks));
		if (chunks == NULL)
			return NULL;
		pool->chunks = chunks;
		chunk = sodium_malloc(POOL_CHUNK_SEALS * sizeof(*chunk));
		if (chunk == NULL)
			return NULL;
		pool->chunks[pool->n_chunks++] = chunk;
		for (size_t i = 0; i < POOL_CHUNK_SEALS; i++) {
			chunk[i].next_free = pool->free_list;
			pool->free_list = &chunk[i];
		}
	}
	s = pool->free_list;
	pool->free_list = s->next_free;
	return s;
}

/* HMAC-SHA-256 of the concatenation of up to three parts (NULL ones skipped). */
static void hmac3(uint8_t out[HMAC_BYTES], const uint8_t *key, size_t key_len, const void *a,
                  size_t a_len, const void *b, size_t b_len, const void *c, size_t c_len)
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, key_len);
	if (a != NULL)
		crypto_auth_hmacsha256_update(&st, a, a_len);
	if (b != NULL)
		crypto_auth_hmacsha256_update(&st, b, b_len);
	if (c != NULL)
		crypto_auth_hmacsha256_update(&st, c, c_len);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

void seal_psk(uint8_t psk[SEAL_PSK_BYTES], const void *secret, size_t len)
{
	hmac3(psk, (const uint8_t *)LABEL_PSK, strlen(LABEL_PSK), secret, len, NULL, 0, NULL, 0);
}

static void client_proof_of(uint8_t out[SEAL_PROOF_BYTES], const uint8_t psk[SEAL_PSK_BYTES],
                            const uint8_t client_public[SEAL_KEY_BYTES])
{
	hmac3(out, psk, SEAL_PSK_BYTES, LABEL_CLIENT, strlen(LABEL_CLIENT), client_public,
	      SEAL_KEY_BYTES, NULL, 0);
}

/*
 * The keys of a connection from the X25519 ${shared} key (RFC 5869 HKDF-SHA-256, salt psk):
 * ${s}'s send and receive keys by its side, and the server's proof into ${server_proof}.
 */
static void derive(struct seal *s, const uint8_t shared[crypto_scalarmult_BYTES],
                   const uint8_t client_public[SEAL_KEY_BYTES],
                   const uint8_t server_public[SEAL_KEY_BYTES],
                   uint8_t server_proof[SEAL_PROOF_BYTES])
{
	uint8_t prk[HMAC_BYTES], okm[3 * HMAC_BYTES];
	uint8_t counter;

	hmac3(prk, s->psk, SEAL_PSK_BYTES, shared, crypto_scalarmult_BYTES, NULL, 0, NULL, 0);
	/* HKDF-Expand: T(i) = HMAC(prk, T(i-1) || info || i), info = label || c_pk || s_pk. */
	for (counter = 1; counter <= 3; counter++) {
		crypto_auth_hmacsha256_state st;
		uint8_t *t = okm + (size_t)(counter - 1) * HMAC_BYTES;

		crypto_auth_hmacsha256_init(&st, prk, sizeof prk);
		if (counter > 1)
			crypto_auth_hmacsha256_update(&st, t - HMAC_BYTES, HMAC_BYTES);
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)LABEL_KEYS, strlen(LABEL_KEYS));
		crypto_auth_hmacsha256_update(&st, client_public, SEAL_KEY_BYTES);
		crypto_auth_hmacsha256_update(&st, server_public, SEAL_KEY_BYTES);
		crypto_auth_hmacsha256_update(&st, &counter, 1);
		crypto_auth_hmacsha256_final(&st, t);
		sodium_memzero(&st, sizeof st);
	}
	memcpy(s->is_client ? s->send_key : s->recv_key, okm, AEAD_KEY);
	memcpy(s->is_client ? s->recv_key : s->send_key, okm + HMAC_BYTES, AEAD_KEY);
	hmac3(server_proof, okm + 2 * HMAC_BYTES, HMAC_BYTES, LABEL_SERVER, strlen(LABEL_SERVER),
	      client_public, SEAL_KEY_BYTES, server_public, SEAL_KEY_BYTES);
	s->ready = true;
	/* The keys are all a connection needs from here on. */
	sodium_memzero(s->psk, sizeof s->psk);
	sodium_memzero(prk, sizeof prk);
	sodium_memzero(okm, sizeof okm);
}

static struct seal *seal_alloc(struct seal_pool *pool, const uint8_t psk[SEAL_PSK_BYTES],
                               bool is_client)
{
	struct seal *s = pool != NULL ? pool_take(pool) : sodium_malloc(sizeof *s);

	if (s == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	memset(s, 0, sizeof *s);
	s->pool = pool;
	memcpy(s->psk, psk, SEAL_PSK_BYTES);
	s->is_client = is_client;
	return s;
}

struct seal *seal_client_new_with_key(const uint8_t psk[SEAL_PSK_BYTES],
                                      const uint8_t client_secret[SEAL_KEY_BYTES],
                                      uint8_t client_public[SEAL_KEY_BYTES],
                                      uint8_t client_proof[SEAL_PROOF_BYTES])
{
	struct seal *s = seal_alloc(NULL, psk, true);

	if (s == NULL)
		return NULL;
	memcpy(s->secret_key, client_secret, SEAL_KEY_BYTES);
	crypto_scalarmult_base(s->public_key, s->secret_key);
	memcpy(client_public, s->public_key, SEAL_KEY_BYTES);
	client_proof_of(client_proof, psk, client_public);
	return s;
}

struct seal *seal_client_new(const uint8_t psk[SEAL_PSK_BYTES],
                             uint8_t client_public[SEAL_KEY_BYTES],
                             uint8_t client_proof[SEAL_PROOF_BYTES])
{
	uint8_t secret[SEAL_KEY_BYTES];
	struct seal *s;

	randombytes_buf(secret, sizeof secret);
	s = seal_client_new_with_key(psk, secret, client_public, client_proof);
	sodium_memzero(secret, sizeof secret);
	return s;
}

int seal_client_finish(struct seal *s, const uint8_t server_public[SEAL_KEY_BYTES],
                       const uint8_t server_proof[SEAL_PROOF_BYTES])
{
	uint8_t shared[crypto_scalarmult_BYTES], expected[SEAL_PROOF_BYTES];
	int rc = -1;

	if (!s->is_client || s->finished)
		return -1;
	s->finished = true;
	if (crypto_scalarmult(shared, s->secret_key, server_public) == 0) {
		derive(s, shared, s->public_key, server_public, expected);
		if (sodium_memcmp(expected, server_proof, SEAL_PROOF_BYTES) == 0)
			rc = 0;
	}
	/* A failed exchange leaves nothing usable behind (derive wiped the psk, unless X25519
	 * failed first). */
	if (rc == -1) {
		sodium_memzero(s->psk, sizeof s->psk);
		sodium_memzero(s->send_key, sizeof s->send_key);
		sodium_memzero(s->recv_key, sizeof s->recv_key);
		s->ready = false;
	}
	sodium_memzero(s->secret_key, sizeof s->secret_key);
	sodium_memzero(shared, sizeof shared);
	return rc;
}

/* seal_server_new_with_key, the seal taken from ${pool} (NULL: its own sodium_malloc). */
static struct seal *server_new(struct seal_pool *pool, const uint8_t psk[SEAL_PSK_BYTES],
                               const uint8_t client_public[SEAL_KEY_BYTES],
                               const uint8_t client_proof[SEAL_PROOF_BYTES],
                               const uint8_t server_secret[SEAL_KEY_BYTES],
                               uint8_t server_public[SEAL_KEY_BYTES],
                               uint8_t server_proof[SEAL_PROOF_BYTES])
{
	uint8_t expected[SEAL_PROOF_BYTES], shared[crypto_scalarmult_BYTES];
	struct seal *s = NULL;

	/* The proof first: a client without the secret costs one HMAC, not an X25519. */
	client_proof_of(expected, psk, client_public);
	if (sodium_memcmp(expected, client_proof, SEAL_PROOF_BYTES) != 0)
		goto refused;
	/* The proof holds, so this is no stranger: say what is wrong with the key instead. */
	if (crypto_scalarmult(shared, server_secret, client_public) != 0) {
		errno = EDOM;
		goto done;
	}
	s = seal_alloc(pool, psk, false);
	if (s == NULL)
		goto done;
	crypto_scalarmult_base(server_public, server_secret);
	derive(s, shared, client_public, server_public, server_proof);
	goto done;

refused:
	errno = EACCES;
done:
	sodium_memzero(shared, sizeof shared);
	return s;
}

struct seal *seal_server_new_with_key(const uint8_t psk[SEAL_PSK_BYTES],
                                      const uint8_t client_public[SEAL_KEY_BYTES],
                                      const uint8_t client_proof[SEAL_PROOF_BYTES],
                                      const uint8_t server_secret[SEAL_KEY_BYTES],
                                      uint8_t server_public[SEAL_KEY_BYTES],
                                      uint8_t server_proof[SEAL_PROOF_BYTES])
{
	return server_new(NULL, psk, client_public, client_proof, server_secret, server_public,
	                  server_proof);
}

struct seal *seal_server_new_in(struct seal_pool *pool, const uint8_t psk[SEAL_PSK_BYTES],
                                const uint8_t client_public[SEAL_KEY_BYTES],
                                const uint8_t client_proof[SEAL_PROOF_BYTES],
                                uint8_t server_public[SEAL_KEY_BYTES],
                                uint8_t server_proof[SEAL_PROOF_BYTES])
{
	uint8_t secret[SEAL_KEY_BYTES];
	struct seal *s;

	randombytes_buf(secret, sizeof secret);
	s = server_new(pool, psk, client_public, client_proof, secret, server_public, server_proof);
	sodium_memzero(secret, sizeof secret);
	return s;
}

struct seal *seal_server_new(const uint8_t psk[SEAL_PSK_BYTES],
                             const uint8_t client_public[SEAL_KEY_BYTES],
                             const uint8_t client_proof[SEAL_PROOF_BYTES],
                             uint8_t server_public[SEAL_KEY_BYTES],
                             uint8_t server_proof[SEAL_PROOF_BYTES])
{
	return seal_server_new_in(NULL, psk, client_public, client_proof, server_public,
	                          server_proof);
}

void seal_free(struct seal *s)
{
	struct seal_pool *pool;

	if (s == NULL)
		return;
	pool = s->pool;
	if (pool == NULL) {
		/* sodium_free wipes the memory before it gives it back. */
		sodium_free(s);
		return;
	}
	sodium_memzero(s, sizeof *s);
	s->next_free = pool->free_list;
	pool->free_list = s;
}

static void nonce_of(uint8_t nonce[AEAD_NONCE], uint64_t number)
{
	memset(nonce, 0, AEAD_NONCE);
	for (size_t i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(number >> (8 * i));
}

int seal_append(struct seal *s, struct buf *out, const uint8_t *plain, size_t len)
{
	uint8_t nonce[AEAD_NONCE], *header;
	uint32_t sealed_len = (uint32_t)(len + SEAL_TAG_BYTES);

	if (!s->ready || len == 0 || len > SEAL_MAX_PLAIN) {
		errno = EINVAL;
		return -1;
	}
	if (s->sent == UINT64_MAX) {
		errno = EOVERFLOW;
		return -1;
	}
	if (buf_reserve(out, len + SEAL_OVERHEAD) == -1)
		return -1;
	header = out->data + out->len;
	header[0] = (uint8_t)(sealed_len >> 24);
	header[1] = (uint8_t)(sealed_len >> 16);
	header[2] = (uint8_t)(sealed_len >> 8);
	header[3] = (uint8_t)sealed_len;
	nonce_of(nonce, s->sent);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(
	    header + SEAL_HEADER_BYTES, header + SEAL_HEADER_BYTES + len, NULL, plain, len, header,
	    SEAL_HEADER_BYTES, NULL, nonce, s->send_key);
	out->len += len + SEAL_OVERHEAD;
	s->sent++;
	return 0;
}

int seal_reserve(struct buf *out, size_t len)
{
	size_t records = len / SEAL_MAX_PLAIN + (len % SEAL_MAX_PLAIN != 0);

	if (records == 0)
		return 0;
	if (len > SIZE_MAX - records * SEAL_OVERHEAD) {
		errno = ENOMEM;
		return -1;
	}
	return buf_reserve(out, len + records * SEAL_OVERHEAD);
}

int seal_append_all(struct seal *s, struct buf *out, const uint8_t *plain, size_t len)
{
	/* Room for every record at once: a large output is then one block, which glibc maps on
	 * its own past its mmap threshold and unmaps when it is freed. Grown record by record it
	 * was carved from the heap, whose pages stayed after the buffer had gone. */
	if (seal_reserve(out, len) == -1)
		return -1;
	while (len > 0) {
		size_t chunk = len < SEAL_MAX_PLAIN ? len : SEAL_MAX_PLAIN;

		if (seal_append(s, out, plain, chunk) == -1)
			return -1;
		plain += chunk;
		len -= chunk;
	}
	return 0;
}

size_t seal_record_size(const uint8_t header[SEAL_HEADER_BYTES])
{
	uint32_t n = (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 |
	             (uint32_t)header[2] << 8 | (uint32_t)header[3];

	if (n <= SEAL_TAG_BYTES || n > SEAL_MAX_PLAIN + SEAL_TAG_BYTES)
		return 0;
	return SEAL_HEADER_BYTES + (size_t)n;
}

int seal_open(struct seal *s, const uint8_t *record, size_t size, uint8_t *plain)
{
	uint8_t nonce[AEAD_NONCE];
	size_t len;

	/* seal_append never seals number UINT64_MAX: no record may open as it either. */
	if (!s->ready || s->received == UINT64_MAX || size < SEAL_OVERHEAD + 1 ||
	    seal_record_size(record) != size)
		return -1;
	len = size - SEAL_OVERHEAD;
	nonce_of(nonce, s->received);
	if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(
	        plain, NULL, record + SEAL_HEADER_BYTES, len, record + SEAL_HEADER_BYTES + len,
	        record, SEAL_HEADER_BYTES, nonce, s->recv_key) != 0)
		return -1;
	s->received++;
	return 0;
}
