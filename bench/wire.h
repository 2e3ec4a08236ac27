#ifndef SESSD_BENCH_WIRE_H
#define SESSD_BENCH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "workload.h"

/*
 * How one kind of server is spoken to: requests are encoded into a connection's output
 * buffer, replies are parsed from the bytes it read. Only bytes go through here; the
 * connection, its socket and its timing belong to sessd-bench.c, so both targets share them.
 */

enum wire_outcome {
	WIRE_OK,
	WIRE_MISS,  /* a well-formed "no such session" (sessd NOT_FOUND, Redis nil or 0) */
	WIRE_ERROR, /* an error reply or a status the operation should not produce */
};

/* What every request of a run shares. */
struct wire_ctx {
	const struct workload *workload;
	const char *ns; /* NULL: sessd's default namespace, bare keys for Redis */
	/*
	 * sessd's HELLO (PROTOCOL.md, "HELLO"). wire_sessd: ${auth} is the raw MessagePack of
	 * its auth field (the secret as bin), NULL for nil. wire_sessd_sealed: ${psk} is the
	 * key derived from the secret (seal_psk), which every connection's key exchange proves.
	 * Both borrowed for the run.
	 */
	const uint8_t *auth;
	size_t auth_len;
	const uint8_t *psk;
};

struct wire_class {
	const char *name;
	/* Replies carry the request id, so the order can be checked. */
	bool request_ids;
	/* Per-connection parser state; NULL with errno on failure. */
	void *(*state_new)(void);
	void (*state_free)(void *st);
	/*
	 * Append the requests that open the connection of ${st} (sessd: HELLO). Sets ${replies}
	 * to the number of replies they produce (0: nothing to send). Returns 0 or -1 (ENOMEM).
	 */
	int (*open)(void *st, const struct wire_ctx *ctx, struct buf *out, uint64_t request_id,
	            unsigned *replies);
	/*
	 * Append the request(s) of ${op}. Sets ${replies} to the number of replies they
	 * produce; the operation is done when the last one arrives. Returns 0 or -1 (ENOMEM).
	 */
	int (*encode)(struct buf *out, const struct wire_ctx *ctx, const struct workload_op *op,
	              uint64_t request_id, unsigned *replies);
	/*
	 * NULL when requests go out as encoded. Otherwise, once the opening replies are in (and
	 * nothing but them is sent before), requests are encoded apart and what one write sends
	 * goes through this: append to ${out} the bytes that carry the ${len} at ${plain}.
	 * Returns 0, or -1 with errno (the connection cannot go on).
	 */
	int (*seal)(void *st, struct buf *out, const uint8_t *plain, size_t len);
	/* Give the parser ${len} bytes read from the socket (copied). Returns 0 or -1 (ENOMEM). */
	int (*feed)(void *st, const void *data, size_t len);
	/*
	 * Take the next whole reply: returns 1 and sets ${outcome}, ${request_id} (0 when the
	 * protocol has none) and, for WIRE_ERROR, ${why} (borrowed until the next call);
	 * 0 when more bytes are needed; -1 when the stream is malformed (${why} says how).
	 */
	int (*next)(void *st, enum wire_outcome *outcome, uint64_t *request_id, const char **why);
};

/* The sessd protocol, through the project's codec. */
extern const struct wire_class wire_sessd;

/*
 * The sessd protocol on sealed connections (PROTOCOL.md, "Sealed connections"): HELLO carries
 * a key exchange proving ctx->psk; its reply must prove the server holds the secret too (else
 * next fails: a connection error), and from then on requests go out in records (seal) and
 * the records that come back are opened before the frames in them are parsed.
 */
extern const struct wire_class wire_sessd_sealed;

#ifdef BENCH_HAVE_REDIS
/*
 * Redis through hiredis's reply parser, with the commands a Redis session store sends:
 * GET, SET PX, PEXPIRE (touch), DEL, RPUSH (flash push) and MULTI LRANGE DEL EXEC (flash pop).
 */
extern const struct wire_class wire_redis;
#endif

#endif
