/*
 * The client's side of a sealed connection (PROTOCOL.md, "Sealed connections"), spoken raw
 * over a real socket for the integration tests: the key exchange in HELLO, then requests and
 * replies in records. Every failure fails the test (Criterion's asserts).
 */
#ifndef SESSD_TEST_SEALED_H
#define SESSD_TEST_SEALED_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "codec.h"
#include "mp.h"
#include "seal.h"

/* One sealed connection, the client's side. */
struct sealed {
	int fd;
	struct seal *seal;
	struct buf plain; /* opened and not yet read as frames */
	size_t plain_at;
	uint8_t server_key[32]; /* s_pk of its HELLO, which a RETIRE names it by */
};

/* The auth map of a key exchange into ${out}: {"kx": public, "proof": proof}. */
void sealed_kx_map(struct buf *out, const uint8_t public[32], const uint8_t proof[32]);

/* Send HELLO with ${auth} (raw msgpack) on ${fd}; returns the reply (status, result into
 * *body, to free). */
struct codec_reply sealed_hello_with(int fd, const struct buf *auth, uint8_t **body);

/* Find the reply map's "kx" and read its key and proof; returns 0, or -1 if absent. */
int sealed_reply_kx(const struct codec_reply *rep, uint8_t public[32], uint8_t proof[32]);

/* Open a sealed connection to ${url} with ${key} as the secret (free with sealed_close). */
struct sealed sealed_open_with(const char *url, const char *key);

/* The same on ${fd}, connected already (its owner's now): the key exchange with ${key}, its HELLO
 * answered, no record sent yet. */
struct sealed sealed_on(int fd, const char *key);

void sealed_close(struct sealed *s);

/* Seal and send the frames in ${frames}. */
void sealed_send(struct sealed *s, const struct buf *frames);

/* Read one record and open it onto s->plain; returns 0, or -1 at the end of the stream. */
int sealed_read_record(struct sealed *s);

/* The next reply frame: decoded into ${rep}, its body copied into *${body} (to free). Fails
 * the test at the end of the stream. */
void sealed_reply(struct sealed *s, struct codec_reply *rep, uint8_t **body);

/* One request, sealed, and its reply's status (the result, when wanted, into *result, which
 * borrows *${body}: free it; ${body} NULL frees it here). */
uint32_t sealed_call(struct sealed *s, const struct codec_request *req, struct mp_bytes *result,
                     uint8_t **body);

#endif
