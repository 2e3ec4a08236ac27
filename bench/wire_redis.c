#include "wire.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "ids.h"

/* Flash queues live in a list beside the session, as a Redis-backed connect-flash would keep
 * them if it did not store them inside the session JSON. */
#define WIRE_REDIS_FLASH_SUFFIX ":flash"

struct wire_redis_state {
	redisReader *reader;
	char why[160];
};

static void *wire_redis_state_new(void)
{
	struct wire_redis_state *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->reader = redisReaderCreate();
	if (!st->reader) {
		free(st);
		errno = ENOMEM;
		return NULL;
	}
	return st;
}

static void wire_redis_state_free(void *p)
{
	struct wire_redis_state *st = p;

	if (!st)
		return;
	redisReaderFree(st->reader);
	free(st);
}

static int wire_redis_open(void *st, const struct wire_ctx *ctx, struct buf *out,
                           uint64_t request_id, unsigned *replies)
{
	*replies = 0;
	return 0;
}

/* RESP by hand: formatting is a few appends, and hiredis's formatter allocates per command. */
static int wire_redis_header(struct buf *out, char type, size_t n)
{
	char tmp[32];
	int len = snprintf(tmp, sizeof(tmp), "%c%zu\r\n", type, n);

	return buf_append(out, tmp, (size_t)len);
}

static int wire_redis_arg(struct buf *out, const void *p, size_t len)
{
	if (wire_redis_header(out, '$', len) < 0 || buf_append(out, p, len) < 0 ||
	    buf_append(out, "\r\n", 2) < 0)
		return -1;
	return 0;
}

static int wire_redis_str(struct buf *out, const char *s)
{
	return wire_redis_arg(out, s, strlen(s));
}

static int wire_redis_uint(struct buf *out, uint64_t v)
{
	char tmp[24];
	int len = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);

	return wire_redis_arg(out, tmp, (size_t)len);
}

/* The session's key, "<ns>:<id>" or the bare id, and optionally the flash suffix. */
static int wire_redis_key(struct buf *out, const struct wire_ctx *ctx, const struct workload_op *op,
                          bool flash)
{
	char tmp[IDS_MAX_NAMESPACE_LEN + WORKLOAD_ID_LEN + sizeof(WIRE_REDIS_FLASH_SUFFIX) + 2];
	size_t len = 0;

	if (op->own_namespace) {
		len =
		    (size_t)snprintf(tmp, WORKLOAD_OWN_NS_MAX, WORKLOAD_OWN_NS_FORMAT ":", op->key);
	} else if (ctx->ns) {
		size_t ns_len = strlen(ctx->ns);

		if (ns_len > IDS_MAX_NAMESPACE_LEN) {
			errno = EINVAL;
			return -1;
		}
		memcpy(tmp, ctx->ns, ns_len);
		tmp[ns_len] = ':';
		len = ns_len + 1;
	}
	memcpy(tmp + len, workload_id(ctx->workload, op->key), WORKLOAD_ID_LEN);
	len += WORKLOAD_ID_LEN;
	if (flash) {
		memcpy(tmp + len, WIRE_REDIS_FLASH_SUFFIX, strlen(WIRE_REDIS_FLASH_SUFFIX));
		len += strlen(WIRE_REDIS_FLASH_SUFFIX);
	}
	return wire_redis_arg(out, tmp, len);
}

static int wire_redis_encode(struct buf *out, const struct wire_ctx *ctx,
                             const struct workload_op *op, uint64_t request_id, unsigned *replies)
{
	int rc = -1;

	*replies = 1;
	switch (op->kind) {
	case WORKLOAD_GET:
		rc = (wire_redis_header(out, '*', 2) || wire_redis_str(out, "GET") ||
		      wire_redis_key(out, ctx, op, false))
		         ? -1
		         : 0;
		break;
	case WORKLOAD_SET:
		rc = (wire_redis_header(out, '*', 5) || wire_redis_str(out, "SET") ||
		      wire_redis_key(out, ctx, op, false) ||
		      wire_redis_arg(out, op->value, op->value_len) || wire_redis_str(out, "PX") ||
		      wire_redis_uint(out, op->ttl_ms))
		         ? -1
		         : 0;
		break;
	case WORKLOAD_TOUCH:
		rc = (wire_redis_header(out, '*', 3) || wire_redis_str(out, "PEXPIRE") ||
		      wire_redis_key(out, ctx, op, false) || wire_redis_uint(out, op->ttl_ms))
		         ? -1
		         : 0;
		break;
	case WORKLOAD_DESTROY:
		rc = (wire_redis_header(out, '*', 2) || wire_redis_str(out, "DEL") ||
		      wire_redis_key(out, ctx, op, false))
		         ? -1
		         : 0;
		break;
	case WORKLOAD_FLASH_PUSH:
		rc = (wire_redis_header(out, '*', 3) || wire_redis_str(out, "RPUSH") ||
		      wire_redis_key(out, ctx, op, true) || wire_redis_str(out, WORKLOAD_FLASH_MSG))
		         ? -1
		         : 0;
		break;
	case WORKLOAD_FLASH_POP:
		/* Read and delete atomically, as FLASH_POP does: four replies, one operation. */
		*replies = 4;
		rc = (wire_redis_header(out, '*', 1) || wire_redis_str(out, "MULTI") ||
		      wire_redis_header(out, '*', 4) || wire_redis_str(out, "LRANGE") ||
		      wire_redis_key(out, ctx, op, true) || wire_redis_str(out, "0") ||
		      wire_redis_str(out, "-1") || wire_redis_header(out, '*', 2) ||
		      wire_redis_str(out, "DEL") || wire_redis_key(out, ctx, op, true) ||
		      wire_redis_header(out, '*', 1) || wire_redis_str(out, "EXEC"))
		         ? -1
		         : 0;
		break;
	case WORKLOAD_PING:
		rc = (wire_redis_header(out, '*', 1) || wire_redis_str(out, "PING")) ? -1 : 0;
		break;
	case WORKLOAD_ECHO:
		/* PING with a message answers with it, as sessd's PING with a payload does. */
		rc = (wire_redis_header(out, '*', 2) || wire_redis_str(out, "PING") ||
		      wire_redis_arg(out, op->value, op->value_len))
		         ? -1
		         : 0;
		break;
	default:
		errno = EINVAL;
		break;
	}
	return rc;
}

static int wire_redis_feed(void *p, const void *data, size_t len)
{
	struct wire_redis_state *st = p;

	if (redisReaderFeed(st->reader, data, len) != REDIS_OK) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static enum wire_outcome wire_redis_classify(const redisReply *r, struct wire_redis_state *st,
                                             const char **why)
{
	switch (r->type) {
	case REDIS_REPLY_ERROR:
		snprintf(st->why, sizeof(st->why), "%.*s", (int)(r->len > 150 ? 150 : r->len),
		         r->str);
		*why = st->why;
		return WIRE_ERROR;
	case REDIS_REPLY_NIL:
		return WIRE_MISS;
	case REDIS_REPLY_INTEGER:
		return r->integer == 0 ? WIRE_MISS : WIRE_OK;
	case REDIS_REPLY_ARRAY:
		/* EXEC: an error inside the transaction is an error of the operation; an empty
		 * LRANGE is a pop that found nothing. */
		for (size_t i = 0; i < r->elements; i++)
			if (r->element[i]->type == REDIS_REPLY_ERROR)
				return wire_redis_classify(r->element[i], st, why);
		if (r->elements == 2 && r->element[0]->type == REDIS_REPLY_ARRAY &&
		    r->element[0]->elements == 0)
			return WIRE_MISS;
		return WIRE_OK;
	default:
		return WIRE_OK;
	}
}

static int wire_redis_next(void *p, enum wire_outcome *outcome, uint64_t *request_id,
                           const char **why)
{
	struct wire_redis_state *st = p;
	void *reply = NULL;

	if (redisReaderGetReply(st->reader, &reply) != REDIS_OK) {
		snprintf(st->why, sizeof(st->why), "malformed reply: %s", st->reader->errstr);
		*why = st->why;
		return -1;
	}
	if (!reply)
		return 0;
	*request_id = 0;
	*outcome = wire_redis_classify(reply, st, why);
	freeReplyObject(reply);
	return 1;
}

const struct wire_class wire_redis = {
    .name = "redis",
    .request_ids = false,
    .state_new = wire_redis_state_new,
    .state_free = wire_redis_state_free,
    .open = wire_redis_open,
    .encode = wire_redis_encode,
    .feed = wire_redis_feed,
    .next = wire_redis_next,
};
