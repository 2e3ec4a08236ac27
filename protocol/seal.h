/*
 * seal: sealed connections (PROTOCOL.md, "Sealed connections"): the key exchange carried in
 * HELLO, and the encrypted records that carry the frame stream after it. Pure: no sockets,
 * no clock; libsodium does the cryptography.
 *
 * A struct seal holds one connection's keys in sodium_malloc'd memory, wiped when freed:
 * its own allocation, or a slot of a struct seal_pool, for a server with many connections
 * (each sodium_malloc costs four mappings and a locked page).
 */
#ifndef SESSD_SEAL_H
#define SESSD_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SEAL_PSK_BYTES    32u
#define SEAL_KEY_BYTES    32u /* an X25519 public or secret key */
#define SEAL_PROOF_BYTES  32u
#define SEAL_HEADER_BYTES 4u
#define SEAL_TAG_BYTES    16u
/* The most plaintext one record carries. */
#define SEAL_MAX_PLAIN 65536u
/* What a record adds to its plaintext. */
#define SEAL_OVERHEAD (SEAL_HEADER_BYTES + SEAL_TAG_BYTES)

struct seal;
struct seal_pool;

/*
 * seal_pool_new():
 * An empty pool that seals are taken from in chunks of sodium_malloc'd memory. Returns it, or
 * NULL (errno ENOMEM). Free it with seal_pool_free once every seal taken from it is freed.
 */
struct seal_pool *seal_pool_new(void);

/* seal_pool_free(pool): free ${pool}'s memory (wiped). seal_pool_free(NULL) does nothing. */
void seal_pool_free(struct seal_pool *pool);

/*
 * seal_psk(psk, secret, len):
 * The pre-shared key both sides derive from the ${len}-byte shared secret:
 * HMAC-SHA-256(key "sessd-psk-v1", secret). Takes the same time for any secret of a length.
 */
void seal_psk(uint8_t psk[SEAL_PSK_BYTES], const void *secret, size_t len);

/*
 * seal_client_new(psk, client_public, client_proof):
 * Start a key exchange as a client: make an ephemeral key pair and write its public key and
 * the proof of ${psk} to send in HELLO. Returns the exchange, to finish with
 * seal_client_finish, or NULL (errno ENOMEM). The caller frees it with seal_free.
 */
struct seal *seal_client_new(const uint8_t psk[SEAL_PSK_BYTES],
                             uint8_t client_public[SEAL_KEY_BYTES],
                             uint8_t client_proof[SEAL_PROOF_BYTES]);

/*
 * seal_client_new_with_key(psk, client_secret, client_public, client_proof):
 * seal_client_new with the given ephemeral secret key instead of a random one: for test
 * vectors only (a key used twice breaks forward secrecy).
 */
struct seal *seal_client_new_with_key(const uint8_t psk[SEAL_PSK_BYTES],
                                      const uint8_t client_secret[SEAL_KEY_BYTES],
                                      uint8_t client_public[SEAL_KEY_BYTES],
                                      uint8_t client_proof[SEAL_PROOF_BYTES]);

/*
 * seal_client_finish(s, server_public, server_proof):
 * Finish the client's exchange with the server's HELLO reply: derive the keys and check the
 * server's proof in constant time. The ephemeral secret key is wiped either way. Returns 0,
 * after which ${s} seals and opens records; or -1 when the proof is wrong or the exchange
 * gives an all-zero key (the server does not hold the secret, or is not a sessd), when ${s}
 * was finished already (whether that call succeeded or failed: a failed exchange cannot be
 * tried again), or was a server's. ${s} is still the caller's to free.
 */
int seal_client_finish(struct seal *s, const uint8_t server_public[SEAL_KEY_BYTES],
                       const uint8_t server_proof[SEAL_PROOF_BYTES]);

/*
 * seal_server_new(psk, client_public, client_proof, server_public, server_proof):
 * Answer a client's key exchange: check its proof of ${psk} in constant time, make an
 * ephemeral key pair, derive the keys and write the public key and proof for the HELLO reply.
 * Returns the connection's seal, ready to seal and open records, for the caller to free with
 * seal_free; or NULL with errno EACCES (a wrong proof), EDOM (a right proof of a public key
 * of low order, which gives an all-zero shared key) or ENOMEM.
 */
struct seal *seal_server_new(const uint8_t psk[SEAL_PSK_BYTES],
                             const uint8_t client_public[SEAL_KEY_BYTES],
                             const uint8_t client_proof[SEAL_PROOF_BYTES],
                             uint8_t server_public[SEAL_KEY_BYTES],
                             uint8_t server_proof[SEAL_PROOF_BYTES]);

/*
 * seal_server_new_in(pool, psk, client_public, client_proof, server_public, server_proof):
 * seal_server_new with the seal taken from ${pool}; seal_free gives it back there.
 */
struct seal *seal_server_new_in(struct seal_pool *pool, const uint8_t psk[SEAL_PSK_BYTES],
                                const uint8_t client_public[SEAL_KEY_BYTES],
                                const uint8_t client_proof[SEAL_PROOF_BYTES],
                                uint8_t server_public[SEAL_KEY_BYTES],
                                uint8_t server_proof[SEAL_PROOF_BYTES]);

/* seal_server_new with a given ephemeral secret key: for test vectors only. */
struct seal *seal_server_new_with_key(const uint8_t psk[SEAL_PSK_BYTES],
                                      const uint8_t client_public[SEAL_KEY_BYTES],
                                      const uint8_t client_proof[SEAL_PROOF_BYTES],
                                      const uint8_t server_secret[SEAL_KEY_BYTES],
                                      uint8_t server_public[SEAL_KEY_BYTES],
                                      uint8_t server_proof[SEAL_PROOF_BYTES]);

/* seal_free(s): wipe and free ${s} (back to its pool, if it came from one). seal_free(NULL)
 * does nothing. */
void seal_free(struct seal *s);

/*
 * seal_append(s, out, plain, len):
 * Append to ${out} the plaintext's ${len} bytes (1 to SEAL_MAX_PLAIN) sealed as the next
 * record this side sends: len + SEAL_OVERHEAD bytes. Returns 0, or -1 with errno ENOMEM (out
 * unchanged), EINVAL (a bad length, or ${s} is not ready) or EOVERFLOW (the record numbers are
 * spent); no record number is used up by a failure.
 */
int seal_append(struct seal *s, struct buf *out, const uint8_t *plain, size_t len);

/*
 * seal_append_all(s, out, plain, len):
 * seal_append over ${len} bytes (any number, 0 included) in records of SEAL_MAX_PLAIN at
 * most, with room for all of them reserved first. Returns 0, or -1 as seal_append; on failure
 * ${out} may have gained whole records.
 */
int seal_append_all(struct seal *s, struct buf *out, const uint8_t *plain, size_t len);

/*
 * seal_reserve(out, len):
 * Room in ${out} for ${len} bytes of plaintext sealed by seal_append_all, so that sealing
 * them then needs no memory. Returns 0, or -1 with errno ENOMEM (out unchanged).
 */
int seal_reserve(struct buf *out, size_t len);

/*
 * seal_record_size(header):
 * The whole size (header included) of the record whose first SEAL_HEADER_BYTES are at
 * ${header}, or 0 when its length is malformed.
 */
size_t seal_record_size(const uint8_t header[SEAL_HEADER_BYTES]);

/*
 * seal_open(s, record, size, plain):
 * Open the next record the other side sent: the ${size} bytes at ${record}, as
 * seal_record_size gave them. Writes its size - SEAL_OVERHEAD bytes of plaintext to
 * ${plain}, which must not overlap ${record}. Returns 0; or -1 when the record does not
 * authenticate (forged, changed, replayed, out of order), ${s} is not ready, or its record
 * numbers are spent (the sender stops before 2^64 - 1), with no record number used up
 * (those bytes at ${plain} may then have been overwritten, with zeros).
 */
int seal_open(struct seal *s, const uint8_t *record, size_t size, uint8_t *plain);

#endif
