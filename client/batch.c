/*
 * libsessd's pipelined calls. Requests are encoded into one buffer as they are queued; a run
 * sends the whole buffer while reading replies (wire_run), matching them by position and
 * checking each request id. GET data is kept in one arena so a batch of thousands of GETs
 * costs no allocation per request once the batch's buffers have grown.
 */
#include "sessd.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "reply.h"

#define NO_TYPE SIZE_MAX

struct batch_item {
	uint64_t request_id;
	uint32_t op;
	int status;
	size_t body_len; /* its frame's body, checked again at each run (outgrown) */
	size_t type_at;  /* FLASH_POP: offset of the type in types, or NO_TYPE for all */
	size_t data_at;  /* GET: offset of the data in the data arena */
	size_t data_len;
	uint64_t ttl_ms;               /* TTL */
	struct sessd_flashes *flashes; /* FLASH_POP */
};

struct sessd_batch {
	struct sessd_client *c;
	struct buf out;   /* the encoded frames */
	struct buf types; /* NUL-terminated FLASH_POP types */
	struct buf data;  /* GET results, each followed by a NUL */
	struct batch_item *items;
	size_t count;
	size_t cap;
	size_t done;  /* replies handled in the current run */
	bool closing; /* a reply said the server will close */
};

struct sessd_batch *sessd_batch_new(struct sessd_client *c)
{
	struct sessd_batch *b;

	if (c == NULL)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->c = c;
	buf_init(&b->out);
	buf_init(&b->types);
	buf_init(&b->data);
	return b;
}

static void forget_results(struct sessd_batch *b)
{
	for (size_t i = 0; i < b->count; i++) {
		free(b->items[i].flashes);
		b->items[i].flashes = NULL;
		b->items[i].status = SESSD_ERR_USAGE;
	}
	buf_reset(&b->data);
	b->done = 0;
	b->closing = false;
}

void sessd_batch_reset(struct sessd_batch *b)
{
	if (b == NULL)
		return;
	forget_results(b);
	b->count = 0;
	buf_reset(&b->out);
	buf_reset(&b->types);
}

void sessd_batch_free(struct sessd_batch *b)
{
	if (b == NULL)
		return;
	sessd_batch_reset(b);
	buf_finish(&b->out);
	buf_finish(&b->types);
	buf_finish(&b->data);
	free(b->items);
	free(b);
}

/*
 * Encode ${req} and record it; on failure nothing is left queued. Returns its index, or -1
 * with errno and the client's errmsg saying why (sessd.h).
 */
static int queue(struct sessd_batch *b, struct codec_request *req, const char *flash_type)
{
	struct sessd_client *c = b->c;
	struct batch_item *item, *grown;
	size_t out_mark = b->out.len, types_mark = b->types.len, cap, body_len;

	/* Data or a message longer than max_frame cannot fit in a frame: refused before it is
	 * copied, so that one of any size leaves the batch's buffer as it was. */
	if (req->data.len > c->max_frame || req->flash_msg.len > c->max_frame) {
		client_error(
		    c, SESSD_ERR_TOO_LARGE, "%s of %zu bytes of %s is over the max_frame of %u",
		    codec_op_name(req->op), req->data.len > 0 ? req->data.len : req->flash_msg.len,
		    req->data.len > 0 ? "data" : "message", c->max_frame);
		errno = EMSGSIZE;
		goto fail_rewind;
	}
	if (b->count >= INT32_MAX) {
		client_error(c, SESSD_ERR_NOMEM, "a batch holds at most %d requests", INT32_MAX);
		errno = ENOMEM;
		goto fail_rewind;
	}
	if (b->count == b->cap) {
		cap = b->cap ? b->cap * 2 : 64;
		grown = realloc(b->items, cap * sizeof(*grown));
		if (grown == NULL)
			goto fail_nomem;
		b->items = grown;
		b->cap = cap;
	}
	item = &b->items[b->count];
	memset(item, 0, sizeof(*item));
	item->op = req->op;
	item->status = SESSD_ERR_USAGE;
	item->type_at = NO_TYPE;
	if (flash_type != NULL) {
		item->type_at = b->types.len;
		if (buf_append(&b->types, flash_type, strlen(flash_type) + 1) == -1)
			goto fail_nomem;
	}
	if (req->op != CODEC_OP_PING) {
		req->ns.ptr = (const uint8_t *)c->ns;
		req->ns.len = c->ns_len;
	}
	/* Ids are taken when a request is queued, so they rise within the batch. */
	req->request_id = item->request_id = client_next_id(c);
	if (codec_encode_request(&b->out, req) == -1) {
		if (errno == ENOMEM)
			goto fail_nomem;
		client_error(c, SESSD_ERR_USAGE, "%s: an argument is out of range",
		             codec_op_name(req->op));
		errno = EINVAL;
		goto fail_rewind;
	}
	/* A frame over the server's limit would make it close the connection mid-batch. */
	body_len = b->out.len - out_mark - CODEC_HEADER_BYTES;
	if (body_len > c->max_frame) {
		client_error(c, SESSD_ERR_TOO_LARGE, "%s of %zu bytes is over the max_frame of %u",
		             codec_op_name(req->op), body_len, c->max_frame);
		errno = EMSGSIZE;
		goto fail_rewind;
	}
	item->body_len = body_len;
	return (int)b->count++;

fail_nomem:
	client_error(c, SESSD_ERR_NOMEM, "out of memory for the batch");
	errno = ENOMEM;
fail_rewind:
	b->out.len = out_mark;
	b->types.len = types_mark;
	return -1;
}

/* What is wrong with an id (and a ttl, when ${has_ttl}), or NULL when nothing is. */
static const char *args_problem(const void *id, size_t id_len, bool has_ttl, uint64_t ttl_ms)
{
	if (id == NULL || id_len < 1 || id_len > IDS_MAX_ID_LEN)
		return "an id has 1 to 128 bytes";
	if (has_ttl && (ttl_ms < 1 || ttl_ms > CODEC_MAX_TTL_MS))
		return "a ttl is 1 ms to 10 years";
	return NULL;
}

static bool type_ok(const char *type)
{
	size_t n = type != NULL ? strlen(type) : 0;

	return n >= 1 && n <= IDS_MAX_FLASH_TYPE_LEN;
}

/* Refuse a request for the bad argument ${why}: errno EINVAL, the client's errmsg ${why}. */
static int refuse(struct sessd_batch *b, const char *why)
{
	client_error(b->c, SESSD_ERR_USAGE, "%s", why);
	errno = EINVAL;
	return -1;
}

/* Queue a request of ${op} that names a session and carries ${ttl_ms} (0 for none). */
static int queue_for_id(struct sessd_batch *b, enum codec_op op, const void *id, size_t id_len,
                        uint64_t ttl_ms)
{
	struct codec_request req = {.op = op, .id = {id, id_len}, .ttl_ms = ttl_ms};
	const char *why;

	if (b == NULL)
		return -1;
	if ((why = args_problem(id, id_len, op == CODEC_OP_TOUCH, ttl_ms)) != NULL)
		return refuse(b, why);
	return queue(b, &req, NULL);
}

int sessd_batch_get(struct sessd_batch *b, const void *id, size_t id_len)
{
	return queue_for_id(b, CODEC_OP_GET, id, id_len, 0);
}

/* Queue a SET, or with ${expect} a SET_IF: the checks and the request both share. */
static int queue_set(struct sessd_batch *b, const void *id, size_t id_len, const void *data,
                     size_t data_len, uint64_t ttl_ms, const uint8_t *expect)
{
	struct codec_request req = {.op = expect != NULL ? CODEC_OP_SET_IF : CODEC_OP_SET,
	                            .id = {id, id_len},
	                            .ttl_ms = ttl_ms};
	const char *why;

	if ((why = args_problem(id, id_len, true, ttl_ms)) != NULL)
		return refuse(b, why);
	if (data == NULL && data_len > 0)
		return refuse(b, "no data");
	req.data.ptr = data_len > 0 ? data : (const uint8_t *)"";
	req.data.len = data_len;
	if (expect != NULL) {
		req.expect.ptr = expect;
		req.expect.len = SESSD_TAG_BYTES;
	}
	return queue(b, &req, NULL);
}

int sessd_batch_set(struct sessd_batch *b, const void *id, size_t id_len, const void *data,
                    size_t data_len, uint64_t ttl_ms)
{
	if (b == NULL)
		return -1;
	return queue_set(b, id, id_len, data, data_len, ttl_ms, NULL);
}

int sessd_batch_set_if(struct sessd_batch *b, const void *id, size_t id_len, const void *data,
                       size_t data_len, uint64_t ttl_ms, const uint8_t expect[SESSD_TAG_BYTES])
{
	if (b == NULL)
		return -1;
	if (expect == NULL)
		return refuse(b, "no tag to expect (expect is NULL)");
	return queue_set(b, id, id_len, data, data_len, ttl_ms, expect);
}

int sessd_batch_touch(struct sessd_batch *b, const void *id, size_t id_len, uint64_t ttl_ms)
{
	return queue_for_id(b, CODEC_OP_TOUCH, id, id_len, ttl_ms);
}

int sessd_batch_destroy(struct sessd_batch *b, const void *id, size_t id_len)
{
	return queue_for_id(b, CODEC_OP_DESTROY, id, id_len, 0);
}

/* Queue a FLASH_PUSH, or with ${existing} a FLASH_PUSH_EXISTING: the checks and the request
 * both share. */
static int queue_flash_push(struct sessd_batch *b, bool existing, const void *id, size_t id_len,
                            const char *type, const void *msg, size_t msg_len, uint64_t ttl_ms)
{
	struct codec_request req = {.op = existing ? CODEC_OP_FLASH_PUSH_EXISTING
	                                           : CODEC_OP_FLASH_PUSH,
	                            .id = {id, id_len},
	                            .ttl_ms = ttl_ms};
	const char *why;

	if (b == NULL)
		return -1;
	if ((why = args_problem(id, id_len, true, ttl_ms)) != NULL)
		return refuse(b, why);
	if (!type_ok(type))
		return refuse(b, "a flash type has 1 to 64 bytes");
	if (msg == NULL && msg_len > 0)
		return refuse(b, "no message");
	req.flash_type.ptr = (const uint8_t *)type;
	req.flash_type.len = strlen(type);
	req.flash_msg.ptr = msg_len > 0 ? msg : (const uint8_t *)"";
	req.flash_msg.len = msg_len;
	return queue(b, &req, NULL);
}

int sessd_batch_flash_push(struct sessd_batch *b, const void *id, size_t id_len, const char *type,
                           const void *msg, size_t msg_len, uint64_t ttl_ms)
{
	return queue_flash_push(b, false, id, id_len, type, msg, msg_len, ttl_ms);
}

int sessd_batch_flash_push_existing(struct sessd_batch *b, const void *id, size_t id_len,
                                    const char *type, const void *msg, size_t msg_len,
                                    uint64_t ttl_ms)
{
	return queue_flash_push(b, true, id, id_len, type, msg, msg_len, ttl_ms);
}

int sessd_batch_flash_pop(struct sessd_batch *b, const void *id, size_t id_len, const char *type)
{
	struct codec_request req = {.op = CODEC_OP_FLASH_POP, .id = {id, id_len}};
	const char *why;

	if (b == NULL)
		return -1;
	if ((why = args_problem(id, id_len, false, 0)) != NULL)
		return refuse(b, why);
	if (type != NULL && !type_ok(type))
		return refuse(b, "a flash type has 1 to 64 bytes");
	if (type != NULL) {
		req.flash_type.ptr = (const uint8_t *)type;
		req.flash_type.len = strlen(type);
	} else {
		req.flash_all = true;
	}
	return queue(b, &req, type);
}

int sessd_batch_ttl(struct sessd_batch *b, const void *id, size_t id_len)
{
	return queue_for_id(b, CODEC_OP_TTL, id, id_len, 0);
}

int sessd_batch_ping(struct sessd_batch *b)
{
	struct codec_request req = {.op = CODEC_OP_PING};

	if (b == NULL)
		return -1;
	return queue(b, &req, NULL);
}

/* Decode an OK result of ${item}. Returns a result code for the item. */
static int decode_item(struct sessd_batch *b, struct batch_item *item,
                       const struct mp_bytes *result)
{
	struct mp_bytes data;
	uint64_t unused;
	const char *type;
	int rc;

	switch (item->op) {
	case CODEC_OP_GET:
		rc = reply_data(result, &data);
		if (rc != SESSD_OK)
			return rc;
		item->data_at = b->data.len;
		item->data_len = data.len;
		if (buf_append(&b->data, data.ptr, data.len) == -1 ||
		    buf_append(&b->data, "", 1) == -1)
			return SESSD_ERR_NOMEM;
		return SESSD_OK;
	case CODEC_OP_FLASH_PUSH:
	case CODEC_OP_FLASH_PUSH_EXISTING:
		return reply_uint(result, &unused);
	case CODEC_OP_TTL:
		/* PROTOCOL.md: a live session has at least 1 ms left; 0 is no answer. */
		if (reply_uint(result, &item->ttl_ms) != SESSD_OK || item->ttl_ms == 0)
			return SESSD_ERR_PROTOCOL;
		return SESSD_OK;
	case CODEC_OP_FLASH_POP:
		type =
		    item->type_at == NO_TYPE ? NULL : (const char *)b->types.data + item->type_at;
		return reply_flashes(result, type, b->c->max_frame, &item->flashes);
	default:
		return reply_nil(result);
	}
}

static int batch_on_frame(void *ctx, const uint8_t *body, size_t len)
{
	struct sessd_batch *b = ctx;
	struct batch_item *item = &b->items[b->done++];
	struct codec_reply rep;
	int rc;

	rc = client_check_reply(b->c, body, len, item->op, item->request_id, &rep);
	if (rc == SESSD_OK) {
		rc = decode_item(b, item, &rep.result);
		if (rc == SESSD_ERR_PROTOCOL)
			client_error(b->c, rc, "the server's %s result has the wrong shape",
			             codec_op_name(item->op));
		else if (rc == SESSD_ERR_NOMEM)
			client_error(b->c, rc, "out of memory for a result");
		/* Carried out, its result lost: sessd_outcome_unknown, sessd_result_lost. */
		if (rc == SESSD_ERR_NOMEM && codec_op_changes(item->op))
			b->c->outcome_unknown = b->c->result_lost = true;
	}
	item->status = rc;
	if (client_status_closes(rc))
		b->closing = true;
	return rc == SESSD_ERR_PROTOCOL ? rc : SESSD_OK;
}

/*
 * Whether a request of ${b} no longer fits in the max_frame of the server c is connected to: a
 * reconnection since it was queued may have met a server restarted with a smaller
 * --max-frame, which would refuse the frame unread and close the connection, mid-batch. Then
 * the client's errmsg names the first such request. Every item is looked at: a run walks them
 * all anyway (forget_results has just done so).
 */
static bool outgrown(struct sessd_batch *b)
{
	struct sessd_client *c = b->c;

	for (size_t i = 0; i < b->count; i++) {
		if (b->items[i].body_len <= c->max_frame)
			continue;
		client_error(c, SESSD_ERR_TOO_LARGE,
		             "request %zu of the batch (%s, %zu bytes) is over the max_frame of %u "
		             "the server announced since it was queued; nothing was sent",
		             i, codec_op_name(b->items[i].op), b->items[i].body_len, c->max_frame);
		return true;
	}
	return false;
}

int sessd_batch_run(struct sessd_batch *b)
{
	struct sessd_client *c;
	int rc;

	if (b == NULL)
		return SESSD_ERR_USAGE;
	c = b->c;
	forget_results(b);
	if (b->count == 0)
		return SESSD_OK;
	c->errmsg[0] = '\0';
	client_call_starts(c);
	rc = client_ready(c);
	if (rc == SESSD_OK && outgrown(b))
		rc = SESSD_ERR_TOO_LARGE;
	else if (rc == SESSD_OK)
		rc = client_exchange(c, b->out.data, b->out.len, b->count, batch_on_frame, b);
	/* Nothing was answered (client_resend_ready): the batch goes again as it is, its
	 * request ids new to the new connection. */
	if (rc == SESSD_ERR_SHUTTING_DOWN && client_resend_ready(c))
		rc = outgrown(b)
		         ? SESSD_ERR_TOO_LARGE
		         : client_exchange(c, b->out.data, b->out.len, b->count, batch_on_frame, b);
	/* The replies read are the batch's results now: c's read buffer is not kept large. */
	client_trim(c);
	if (rc != SESSD_OK) {
		/* The replies that arrived keep their status and results: each came whole and
		 * answered its own request, the batch owns the results (so nothing leaks), and a
		 * FLASH_POP's messages, gone from the server, are not thrown away. The rest
		 * share the failure. */
		for (size_t i = b->done; i < b->count; i++)
			b->items[i].status = rc;
		return rc;
	}
	if (b->closing)
		client_drop(c);
	return SESSD_OK;
}

int sessd_batch_status(const struct sessd_batch *b, size_t i)
{
	if (b == NULL || i >= b->count)
		return SESSD_ERR_USAGE;
	return b->items[i].status;
}

const void *sessd_batch_data(const struct sessd_batch *b, size_t i, size_t *len)
{
	const struct batch_item *item;

	if (b == NULL || i >= b->count)
		return NULL;
	item = &b->items[i];
	if (item->op != CODEC_OP_GET || item->status != SESSD_OK)
		return NULL;
	if (len != NULL)
		*len = item->data_len;
	return b->data.data + item->data_at;
}

const struct sessd_flashes *sessd_batch_flashes(const struct sessd_batch *b, size_t i)
{
	if (b == NULL || i >= b->count)
		return NULL;
	if (b->items[i].op != CODEC_OP_FLASH_POP || b->items[i].status != SESSD_OK)
		return NULL;
	return b->items[i].flashes;
}

uint64_t sessd_batch_ttl_ms(const struct sessd_batch *b, size_t i)
{
	if (b == NULL || i >= b->count)
		return 0;
	if (b->items[i].op != CODEC_OP_TTL || b->items[i].status != SESSD_OK)
		return 0;
	return b->items[i].ttl_ms;
}
