#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "mp.h"
#include "seal.h"

/* Compact the input once this much has been parsed, so memmove stays rare and small. */
#define WIRE_SESSD_COMPACT_BYTES (64u * 1024u)
/* Replies are never longer than the server's max_frame; this bounds what a bad length costs. */
#define WIRE_SESSD_MAX_FRAME (64u * 1024u * 1024u)

struct wire_sessd_state {
	struct buf in; /* reply frames; sealed, what the records opened to */
	size_t pos;
	/*
	 * wire_sessd_sealed only. seal: the key exchange from open, and once the HELLO reply
	 * has proved the server (sealed), the connection's keys. raw: the start of a record
	 * whose end has not arrived. broken: why no record can be opened any more (a bad one
	 * came), reported by next after the replies of the records before it.
	 */
	struct seal *seal;
	bool sealed;
	struct buf raw;
	const char *broken;
	char why[160];
};

static void *wire_sessd_state_new(void)
{
	struct wire_sessd_state *st = calloc(1, sizeof(*st));

	if (st) {
		buf_init(&st->in);
		buf_init(&st->raw);
	}
	return st;
}

static void wire_sessd_state_free(void *p)
{
	struct wire_sessd_state *st = p;

	if (!st)
		return;
	buf_finish(&st->in);
	buf_finish(&st->raw);
	seal_free(st->seal);
	free(st);
}

/* Append a HELLO whose auth is the ${auth_len} bytes of MessagePack at ${auth} (0: nil). */
static int wire_sessd_hello(struct buf *out, uint64_t request_id, const uint8_t *auth,
                            size_t auth_len, unsigned *replies)
{
	struct codec_request req = {
	    .op = CODEC_OP_HELLO,
	    .request_id = request_id,
	    .version = CODEC_PROTOCOL_VERSION,
	    .client_name = {(const uint8_t *)"sessd-bench", 11},
	    .auth = {auth, auth_len},
	};

	*replies = 1;
	return codec_encode_request(out, &req);
}

static int wire_sessd_open(void *st, const struct wire_ctx *ctx, struct buf *out,
                           uint64_t request_id, unsigned *replies)
{
	return wire_sessd_hello(out, request_id, ctx->auth, ctx->auth_len, replies);
}

/* A sealed connection's HELLO: auth is {"kx": public key, "proof": proof of ctx->psk}. */
static int wire_sessd_sealed_open(void *p, const struct wire_ctx *ctx, struct buf *out,
                                  uint64_t request_id, unsigned *replies)
{
	struct wire_sessd_state *st = p;
	uint8_t public_key[SEAL_KEY_BYTES], proof[SEAL_PROOF_BYTES];
	struct buf auth;
	int rc = -1;

	if (st->seal != NULL) {
		errno = EINVAL;
		return -1;
	}
	st->seal = seal_client_new(ctx->psk, public_key, proof);
	if (st->seal == NULL)
		return -1;
	buf_init(&auth);
	if (mp_write_map(&auth, 2) == 0 && mp_write_str(&auth, "kx", 2) == 0 &&
	    mp_write_bin(&auth, public_key, SEAL_KEY_BYTES) == 0 &&
	    mp_write_str(&auth, "proof", 5) == 0 &&
	    mp_write_bin(&auth, proof, SEAL_PROOF_BYTES) == 0)
		rc = wire_sessd_hello(out, request_id, auth.data, auth.len, replies);
	buf_finish(&auth);
	return rc;
}

static int wire_sessd_encode(struct buf *out, const struct wire_ctx *ctx,
                             const struct workload_op *op, uint64_t request_id, unsigned *replies)
{
	static const uint8_t op_codes[WORKLOAD_KINDS] = {
	    [WORKLOAD_GET] = CODEC_OP_GET,
	    [WORKLOAD_TOUCH] = CODEC_OP_TOUCH,
	    [WORKLOAD_SET] = CODEC_OP_SET,
	    [WORKLOAD_DESTROY] = CODEC_OP_DESTROY,
	    [WORKLOAD_FLASH_PUSH] = CODEC_OP_FLASH_PUSH,
	    [WORKLOAD_FLASH_POP] = CODEC_OP_FLASH_POP,
	    [WORKLOAD_PING] = CODEC_OP_PING,
	    [WORKLOAD_ECHO] = CODEC_OP_PING,
	};
	struct codec_request req = {
	    .op = op_codes[op->kind],
	    .request_id = request_id,
	    .ping_payload = op->kind == WORKLOAD_ECHO,
	};
	char own_ns[WORKLOAD_OWN_NS_MAX];

	if (op->own_namespace) {
		req.ns.ptr = (const uint8_t *)own_ns;
		req.ns.len =
		    (size_t)snprintf(own_ns, sizeof(own_ns), WORKLOAD_OWN_NS_FORMAT, op->key);
	} else if (ctx->ns) {
		req.ns.ptr = (const uint8_t *)ctx->ns;
		req.ns.len = strlen(ctx->ns);
	}
	req.id.ptr = workload_id(ctx->workload, op->key);
	req.id.len = WORKLOAD_ID_LEN;
	req.ttl_ms = op->ttl_ms;
	req.data.ptr = op->value;
	req.data.len = op->value_len;
	req.flash_type.ptr = (const uint8_t *)WORKLOAD_FLASH_TYPE;
	req.flash_type.len = strlen(WORKLOAD_FLASH_TYPE);
	req.flash_msg.ptr = (const uint8_t *)WORKLOAD_FLASH_MSG;
	req.flash_msg.len = strlen(WORKLOAD_FLASH_MSG);
	*replies = 1;
	return codec_encode_request(out, &req);
}

/* Make room before more input: drop what has been parsed when it is all, or a lot. */
static void wire_sessd_compact(struct wire_sessd_state *st)
{
	if (st->pos == st->in.len) {
		buf_reset(&st->in);
		st->pos = 0;
	} else if (st->pos >= WIRE_SESSD_COMPACT_BYTES) {
		buf_consume(&st->in, st->pos);
		st->pos = 0;
	}
}

static int wire_sessd_feed(void *p, const void *data, size_t len)
{
	struct wire_sessd_state *st = p;

	wire_sessd_compact(st);
	return buf_append(&st->in, data, len);
}

/*
 * The next whole reply frame of ${st}: 1 with it decoded into ${rep} (borrowing st->in), 0
 * when more bytes are needed, -1 when the stream is malformed (${why} says how).
 */
static int wire_sessd_take(struct wire_sessd_state *st, struct codec_reply *rep, const char **why)
{
	size_t left = st->in.len - st->pos;
	uint32_t len;

	if (left < CODEC_HEADER_BYTES)
		return 0;
	len = codec_frame_length(st->in.data + st->pos);
	if (len == 0 || len > WIRE_SESSD_MAX_FRAME) {
		*why = "reply frame length out of range";
		return -1;
	}
	if (left - CODEC_HEADER_BYTES < len)
		return 0;
	if (codec_decode_reply(st->in.data + st->pos + CODEC_HEADER_BYTES, len, rep) < 0) {
		*why = "malformed reply";
		return -1;
	}
	st->pos += CODEC_HEADER_BYTES + len;
	return 1;
}

/* What ${rep} means for the operation; ${why} for WIRE_ERROR (in st->why). */
static void wire_sessd_classify(struct wire_sessd_state *st, const struct codec_reply *rep,
                                enum wire_outcome *outcome, uint64_t *request_id, const char **why)
{
	*request_id = rep->request_id;
	switch (rep->status) {
	case CODEC_OK:
		*outcome = WIRE_OK;
		break;
	case CODEC_NOT_FOUND:
		*outcome = WIRE_MISS;
		break;
	default:
		*outcome = WIRE_ERROR;
		snprintf(st->why, sizeof(st->why), "%s: %.*s", codec_status_name(rep->status),
		         (int)(rep->message.len > 120 ? 120 : rep->message.len),
		         rep->message.ptr ? (const char *)rep->message.ptr : "");
		*why = st->why;
		break;
	}
}

static int wire_sessd_next(void *p, enum wire_outcome *outcome, uint64_t *request_id,
                           const char **why)
{
	struct wire_sessd_state *st = p;
	struct codec_reply rep;
	int r = wire_sessd_take(st, &rep, why);

	if (r == 1)
		wire_sessd_classify(st, &rep, outcome, request_id, why);
	return r;
}

static int wire_sessd_seal(void *p, struct buf *out, const uint8_t *plain, size_t len)
{
	struct wire_sessd_state *st = p;

	/* Nothing but HELLO may go out before its reply has proved the server. */
	if (!st->sealed) {
		errno = EINVAL;
		return -1;
	}
	return seal_append_all(st->seal, out, plain, len);
}

/*
 * Open the whole records at the front of the ${len} bytes at ${p}, appending what they carry
 * to st->in, and set ${used} to the bytes they took. A record of a malformed length, or one
 * that does not authenticate, stops it with st->broken set. Returns 0, or -1 (ENOMEM).
 */
static int wire_sessd_open_records(struct wire_sessd_state *st, const uint8_t *p, size_t len,
                                   size_t *used)
{
	size_t at = 0, size;

	while (st->broken == NULL && len - at >= SEAL_HEADER_BYTES) {
		size = seal_record_size(p + at);
		if (size == 0) {
			st->broken = "the server sent a record of a malformed length";
			break;
		}
		if (len - at < size)
			break;
		if (buf_reserve(&st->in, size - SEAL_OVERHEAD) == -1)
			return -1;
		if (seal_open(st->seal, p + at, size, st->in.data + st->in.len) == -1) {
			st->broken = "the server sent a record that does not authenticate";
			break;
		}
		st->in.len += size - SEAL_OVERHEAD;
		at += size;
	}
	*used = at;
	return 0;
}

/*
 * Before the HELLO reply, bytes as they come; after it, records. Whole records are opened
 * straight from the bytes read, so only a record cut by the end of a read is copied (to raw)
 * before it is opened.
 */
static int wire_sessd_sealed_feed(void *p, const void *data, size_t len)
{
	struct wire_sessd_state *st = p;
	const uint8_t *at = data;
	size_t take, size, used;

	if (!st->sealed)
		return wire_sessd_feed(p, data, len);
	/* Nothing after a bad record can be trusted: next reports it. */
	if (st->broken != NULL)
		return 0;
	wire_sessd_compact(st);
	if (st->raw.len > 0) {
		/* Finish the record the last read cut: its header first, then the rest. */
		if (st->raw.len < SEAL_HEADER_BYTES) {
			take = SEAL_HEADER_BYTES - st->raw.len < len
			           ? SEAL_HEADER_BYTES - st->raw.len
			           : len;
			if (buf_append(&st->raw, at, take) == -1)
				return -1;
			at += take;
			len -= take;
			if (st->raw.len < SEAL_HEADER_BYTES)
				return 0;
		}
		size = seal_record_size(st->raw.data);
		if (size == 0) {
			st->broken = "the server sent a record of a malformed length";
			return 0;
		}
		take = size - st->raw.len < len ? size - st->raw.len : len;
		if (buf_append(&st->raw, at, take) == -1)
			return -1;
		at += take;
		len -= take;
		if (st->raw.len < size)
			return 0;
		if (wire_sessd_open_records(st, st->raw.data, st->raw.len, &used) == -1)
			return -1;
		buf_reset(&st->raw);
		if (st->broken != NULL)
			return 0;
	}
	if (wire_sessd_open_records(st, at, len, &used) == -1)
		return -1;
	if (st->broken == NULL && used < len)
		return buf_append(&st->raw, at + used, len - used);
	return 0;
}

/*
 * Finish the key exchange with the HELLO reply's ${result} (PROTOCOL.md, "Sealed
 * connections", step 4): it must say auth: true and carry kx, a map of "key" and "proof", bin
 * of 32 bytes each, whose proof checks. Returns NULL, or why the server did not prove it holds
 * the secret.
 */
static const char *wire_sessd_finish_kx(struct wire_sessd_state *st, const struct mp_bytes *result)
{
	struct mp_bytes key, value, server_public = {NULL, 0}, server_proof = {NULL, 0};
	struct mp_reader r;
	uint32_t pairs, kx_pairs;
	bool auth = false, has_kx = false;

	mp_reader_init(&r, result->ptr, result->len);
	if (mp_read_map(&r, &pairs) == -1)
		return "its HELLO reply is not a map";
	for (uint32_t i = 0; i < pairs; i++) {
		if (mp_read_str(&r, &key) == -1)
			return "its HELLO reply has a key that is not a str";
		if (key.len == 4 && memcmp(key.ptr, "auth", 4) == 0 &&
		    mp_peek_type(&r) == MP_BOOL) {
			if (mp_read_bool(&r, &auth) == -1)
				return "its HELLO reply is malformed";
		} else if (key.len == 2 && memcmp(key.ptr, "kx", 2) == 0 && !has_kx) {
			has_kx = true;
			if (mp_read_map(&r, &kx_pairs) == -1 || kx_pairs != 2)
				return "its kx is not a map of key and proof";
			for (uint32_t j = 0; j < kx_pairs; j++) {
				if (mp_read_str(&r, &key) == -1 || mp_read_bin(&r, &value) == -1 ||
				    value.len != SEAL_KEY_BYTES)
					return "its kx is not a map of key and proof, bin of 32 "
					       "bytes "
					       "each";
				if (key.len == 3 && memcmp(key.ptr, "key", 3) == 0)
					server_public = value;
				else if (key.len == 5 && memcmp(key.ptr, "proof", 5) == 0)
					server_proof = value;
			}
		} else if (mp_skip(&r) == -1) {
			return "its HELLO reply is malformed";
		}
	}
	if (!has_kx)
		return "its HELLO reply has no kx";
	if (!auth)
		return "its HELLO reply lacks auth: true";
	if (server_public.ptr == NULL || server_proof.ptr == NULL)
		return "its kx is not a map of key and proof";
	if (seal_client_finish(st->seal, server_public.ptr, server_proof.ptr) == -1)
		return "its proof is wrong";
	return NULL;
}

/*
 * The HELLO reply has proved the server: from the byte after it, what arrives is records. The
 * bytes already read past it (none, unless the server spoke unasked) are fed again as such.
 * Returns 0 or -1 (ENOMEM).
 */
static int wire_sessd_begin_sealed(struct wire_sessd_state *st)
{
	size_t rest = st->in.len - st->pos;
	uint8_t *copy;
	int rc;

	st->sealed = true;
	if (rest == 0)
		return 0;
	copy = malloc(rest);
	if (copy == NULL)
		return -1;
	memcpy(copy, st->in.data + st->pos, rest);
	buf_reset(&st->in);
	st->pos = 0;
	rc = wire_sessd_sealed_feed(st, copy, rest);
	free(copy);
	return rc;
}

static int wire_sessd_sealed_next(void *p, enum wire_outcome *outcome, uint64_t *request_id,
                                  const char **why)
{
	struct wire_sessd_state *st = p;
	struct codec_reply rep;
	const char *kx_why;
	int r;

	if (st->sealed) {
		/* The replies in the records before a bad one count, as a plain stream's would. */
		r = wire_sessd_next(p, outcome, request_id, why);
		if (r == 0 && st->broken != NULL) {
			*why = st->broken;
			return -1;
		}
		return r;
	}
	/* The first reply is HELLO's, in the clear. A refusal (AUTH_FAILED: the server holds
	 * another secret, or none) is an error reply for sessd-bench to report. */
	r = wire_sessd_take(st, &rep, why);
	if (r != 1)
		return r;
	wire_sessd_classify(st, &rep, outcome, request_id, why);
	if (rep.status != CODEC_OK)
		return 1;
	kx_why = wire_sessd_finish_kx(st, &rep.result);
	if (kx_why != NULL) {
		snprintf(st->why, sizeof(st->why),
		         "the server did not prove it holds the secret: %s", kx_why);
		*why = st->why;
		return -1;
	}
	if (wire_sessd_begin_sealed(st) == -1) {
		*why = "out of memory";
		return -1;
	}
	return 1;
}

const struct wire_class wire_sessd = {
    .name = "sessd",
    .request_ids = true,
    .state_new = wire_sessd_state_new,
    .state_free = wire_sessd_state_free,
    .open = wire_sessd_open,
    .encode = wire_sessd_encode,
    .feed = wire_sessd_feed,
    .next = wire_sessd_next,
};

const struct wire_class wire_sessd_sealed = {
    .name = "sessd",
    .request_ids = true,
    .state_new = wire_sessd_state_new,
    .state_free = wire_sessd_state_free,
    .open = wire_sessd_sealed_open,
    .encode = wire_sessd_encode,
    .seal = wire_sessd_seal,
    .feed = wire_sessd_sealed_feed,
    .next = wire_sessd_sealed_next,
};
