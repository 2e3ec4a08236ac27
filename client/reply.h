#ifndef SESSD_CLIENT_REPLY_H
#define SESSD_CLIENT_REPLY_H

#include <stdbool.h>
#include <stdint.h>

#include "mp.h"
#include "seal.h"
#include "sessd.h"

/*
 * Decoding of OK results into libsessd's public structs. Pure: no sockets. Each function
 * reads one result value (the raw msgpack of a reply's result), insists that it is consumed
 * exactly, and returns SESSD_OK, SESSD_ERR_PROTOCOL (the result has the wrong shape) or
 * SESSD_ERR_NOMEM. The structs they make are single allocations, freed with free(). A struct
 * takes 16 to 32 bytes an item for as little as 1 byte of msgpack: counts are bounded before
 * anything is allocated, by PROTOCOL.md's limits where it has them, so that what a result
 * takes is bounded by max_frame, not only by (a multiple of) the bytes of its reply.
 */

/* What a HELLO reply says that this client uses. */
struct reply_hello {
	bool has_max_frame;
	uint64_t max_frame; /* as announced: the caller judges it */
	char server_id[33]; /* 32 hex digits and a NUL */
	bool auth;          /* auth: true, the server checked the secret (nil or absent: no) */
	bool has_kx;
	struct mp_bytes kx; /* the raw value of kx, borrowing the result: for reply_hello_kx */
};

/*
 * reply_hello(result, out, why):
 * Read the HELLO map into ${out}: server_id is required and must be 32 hex digits, version
 * must be 1 when present, max_frame is read when present, auth must be a bool or nil when
 * present (PROTOCOL.md: true or nil), kx (any well-formed value, named once) is kept raw for
 * reply_hello_kx; unknown keys are skipped. On SESSD_ERR_PROTOCOL *${why} is a static phrase
 * saying what is wrong.
 */
int reply_hello(const struct mp_bytes *result, struct reply_hello *out, const char **why);

/*
 * reply_hello_kx(kx, server_public, server_proof):
 * Read a HELLO reply's kx (PROTOCOL.md, "Sealed connections"): a map of exactly "key" and
 * "proof", each bin of 32 bytes, copied out. Returns SESSD_OK, or SESSD_ERR_PROTOCOL when it
 * has any other shape (the caller decides what that means: for a sealing client, a server
 * that did not prove the secret).
 */
int reply_hello_kx(const struct mp_bytes *kx, uint8_t server_public[SEAL_KEY_BYTES],
                   uint8_t server_proof[SEAL_PROOF_BYTES]);

/* A nil result (PING, SET, TOUCH, DESTROY). */
int reply_nil(const struct mp_bytes *result);

/* A uint result (FLASH_PUSH(_EXISTING), COUNT, CLEAR). */
int reply_uint(const struct mp_bytes *result, uint64_t *value);

/* GET's data: bin, or str; ${data} borrows the result's bytes. */
int reply_data(const struct mp_bytes *result, struct mp_bytes *data);

/* LOAD's [data, flashes]: the data as reply_data's, and the flash messages queued
 * (${flashes} is set only on SESSD_OK). */
int reply_load(const struct mp_bytes *result, struct mp_bytes *data, uint64_t *flashes);

/*
 * FLASH_POP's result: an array of messages when ${type} (NUL-terminated, the type asked for)
 * is not NULL, else a map of type -> array, with at most 64 types of 1 to 64 bytes, each named
 * once, and at most ${max_frame} / 12 messages in all, the most a session holds under that
 * max_frame (PROTOCOL.md, Flashes: max_frame / 2 bytes, each message counting at least 6).
 * *${out} is malloc'd: at most 33 bytes a message (LP64), the messages' bytes and 5 KiB.
 */
int reply_flashes(const struct mp_bytes *result, const char *type, uint32_t max_frame,
                  struct sessd_flashes **out);

/*
 * LIST's result, a page of at most ${limit} entries (what was asked for), each id 1 to 128
 * bytes; *${out} is malloc'd.
 */
int reply_list(const struct mp_bytes *result, uint32_t limit, struct sessd_list **out);

/*
 * STATS' map of str -> uint (entries with other value types are skipped), at most 1024 of
 * them (PROTOCOL.md bounds nothing; sessd sends under 20); *${out} is malloc'd.
 */
int reply_stats(const struct mp_bytes *result, struct sessd_stats **out);

#endif
