#ifndef SESSD_IDS_H
#define SESSD_IDS_H

#include <stddef.h>
#include <stdint.h>

/* A generated session ID: 32 random bytes as unpadded base64url, 43 characters. */
#define IDS_RANDOM_BYTES 32
#define IDS_TEXT_LEN     43

/* Limits on application-chosen IDs, namespaces and flash types (PROTOCOL.md, "Limits"). */
#define IDS_MAX_ID_LEN         128
#define IDS_MAX_NAMESPACE_LEN  64
#define IDS_MAX_FLASH_TYPE_LEN 64

/*
 * ids_base64url_encode(out, out_size, in, len):
 * Write ${len} bytes of ${in} as unpadded base64url and a NUL to ${out}.
 * Returns the number of characters written (without the NUL), or -1 when ${out_size} is too
 * small (nothing written beyond out_size).
 */
int ids_base64url_encode(char *out, size_t out_size, const void *in, size_t len);

/*
 * ids_base64url_decode(out, out_size, in, len):
 * Decode ${len} characters of unpadded base64url. Returns the number of bytes written, or -1
 * for a character outside the alphabet, a length that is 1 mod 4, non-zero trailing bits, or
 * too small an ${out}.
 */
int ids_base64url_decode(uint8_t *out, size_t out_size, const char *in, size_t len);

/*
 * ids_generate(out):
 * Fill ${out} (IDS_TEXT_LEN + 1 bytes) with a new session ID from libsodium's randombytes
 * and a NUL. sodium_init() must have succeeded. Returns 0.
 */
int ids_generate(char out[IDS_TEXT_LEN + 1]);

#define IDS_LOG_TAG_KEY_BYTES 32

/*
 * ids_secret_new(len):
 * ${len} random bytes in sodium_malloc'd memory, then made read-only: a per-process key that
 * a stray write cannot change and a core dump or swap is less likely to show. Returns it, or
 * NULL (errno ENOMEM); the caller frees it with sodium_free, which wipes it.
 */
uint8_t *ids_secret_new(size_t len);

/*
 * ids_log_tag(out, id, len, key):
 * A short tag for logs that names a session without revealing it: the first 6 bytes of the
 * BLAKE2b hash of the id keyed with the 32-byte ${key} (random per process), as 12 hex digits
 * and a NUL in ${out}. A full session ID never reaches a log.
 */
void ids_log_tag(char out[13], const void *id, size_t len,
                 const uint8_t key[IDS_LOG_TAG_KEY_BYTES]);

#endif
