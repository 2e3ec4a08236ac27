#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* Compact the input once this much has been parsed, so memmove stays rare and small. */
#define WIRE_SESSD_COMPACT_BYTES (64u * 1024u)
/* Replies are never longer than the server's max_frame; this bounds what a bad length costs. */
#define WIRE_SESSD_MAX_FRAME (64u * 1024u * 1024u)

struct wire_sessd_state {
	struct buf in;
	size_t pos;
	char why[160];
};

static void *wire_sessd_state_new(void)
{
	struct wire_sessd_state *st = calloc(1, sizeof(*st));

	if (st)
		buf_init(&st->in);
	return st;
}

static void wire_sessd_state_free(void *p)
{
	struct wire_sessd_state *st = p;

	if (!st)
		return;
	buf_finish(&st->in);
	free(st);
}

static int wire_sessd_open(struct buf *out, uint64_t request_id, unsigned *replies)
{
	struct codec_request req = {
	    .op = CODEC_OP_HELLO,
	    .request_id = request_id,
	    .version = CODEC_PROTOCOL_VERSION,
	    .client_name = {(const uint8_t *)"sessd-bench", 11},
	};

	*replies = 1;
	return codec_encode_request(out, &req);
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
	};
	struct codec_request req = {
	    .op = op_codes[op->kind],
	    .request_id = request_id,
	};

	if (ctx->ns) {
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

static int wire_sessd_feed(void *p, const void *data, size_t len)
{
	struct wire_sessd_state *st = p;

	if (st->pos == st->in.len) {
		buf_reset(&st->in);
		st->pos = 0;
	} else if (st->pos >= WIRE_SESSD_COMPACT_BYTES) {
		buf_consume(&st->in, st->pos);
		st->pos = 0;
	}
	return buf_append(&st->in, data, len);
}

static int wire_sessd_next(void *p, enum wire_outcome *outcome, uint64_t *request_id,
                           const char **why)
{
	struct wire_sessd_state *st = p;
	struct codec_reply rep;
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
	if (codec_decode_reply(st->in.data + st->pos + CODEC_HEADER_BYTES, len, &rep) < 0) {
		*why = "malformed reply";
		return -1;
	}
	st->pos += CODEC_HEADER_BYTES + len;
	*request_id = rep.request_id;
	switch (rep.status) {
	case CODEC_OK:
		*outcome = WIRE_OK;
		break;
	case CODEC_NOT_FOUND:
		*outcome = WIRE_MISS;
		break;
	default:
		*outcome = WIRE_ERROR;
		snprintf(st->why, sizeof(st->why), "%s: %.*s", codec_status_name(rep.status),
		         (int)(rep.message.len > 120 ? 120 : rep.message.len),
		         rep.message.ptr ? (const char *)rep.message.ptr : "");
		*why = st->why;
		break;
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
