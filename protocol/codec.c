#include "codec.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "ids.h"

static const char default_namespace[] = CODEC_DEFAULT_NAMESPACE;

const char *codec_status_name(uint32_t status)
{
	static const char *const names[] = {
	    [CODEC_OK] = "OK",
	    [CODEC_NOT_FOUND] = "NOT_FOUND",
	    [CODEC_BAD_REQUEST] = "BAD_REQUEST",
	    [CODEC_TOO_LARGE] = "TOO_LARGE",
	    [CODEC_NO_MEMORY] = "NO_MEMORY",
	    [CODEC_UNKNOWN_OP] = "UNKNOWN_OP",
	    [CODEC_BAD_VERSION] = "BAD_VERSION",
	    [CODEC_NOT_READY] = "NOT_READY",
	    [CODEC_IO_ERROR] = "IO_ERROR",
	    [CODEC_AUTH_FAILED] = "AUTH_FAILED",
	    [CODEC_INTERNAL] = "INTERNAL",
	    [CODEC_SHUTTING_DOWN] = "SHUTTING_DOWN",
	    [CODEC_LIMIT] = "LIMIT",
	    [CODEC_BUSY] = "BUSY",
	    [CODEC_CONFLICT] = "CONFLICT",
	    [CODEC_FORBIDDEN] = "FORBIDDEN",
	};

	if (status >= sizeof names / sizeof names[0])
		return "UNKNOWN";
	return names[status];
}

const char *codec_op_name(uint32_t op)
{
	switch (op) {
	case CODEC_OP_HELLO:
		return "HELLO";
	case CODEC_OP_PING:
		return "PING";
	case CODEC_OP_RETIRE:
		return "RETIRE";
	case CODEC_OP_GET:
		return "GET";
	case CODEC_OP_SET:
		return "SET";
	case CODEC_OP_TOUCH:
		return "TOUCH";
	case CODEC_OP_DESTROY:
		return "DESTROY";
	case CODEC_OP_SET_IF:
		return "SET_IF";
	case CODEC_OP_TTL:
		return "TTL";
	case CODEC_OP_LOAD:
		return "LOAD";
	case CODEC_OP_TOUCH_IF:
		return "TOUCH_IF";
	case CODEC_OP_FLASH_PUSH:
		return "FLASH_PUSH";
	case CODEC_OP_FLASH_POP:
		return "FLASH_POP";
	case CODEC_OP_FLASH_PUSH_EXISTING:
		return "FLASH_PUSH_EXISTING";
	case CODEC_OP_DESTROY_IF_FLASH:
		return "DESTROY_IF_FLASH";
	case CODEC_OP_COUNT:
		return "COUNT";
	case CODEC_OP_LIST:
		return "LIST";
	case CODEC_OP_CLEAR:
		return "CLEAR";
	case CODEC_OP_STATS:
		return "STATS";
	case CODEC_OP_NAMESPACES:
		return "NAMESPACES";
	default:
		return NULL;
	}
}

bool codec_op_changes(uint32_t op)
{
	switch (op) {
	case CODEC_OP_SET:
	case CODEC_OP_SET_IF:
	case CODEC_OP_TOUCH:
	case CODEC_OP_TOUCH_IF:
	case CODEC_OP_DESTROY:
	case CODEC_OP_FLASH_PUSH:
	case CODEC_OP_FLASH_PUSH_EXISTING:
	case CODEC_OP_FLASH_POP:
	case CODEC_OP_DESTROY_IF_FLASH:
	case CODEC_OP_CLEAR:
		return true;
	default:
		return false;
	}
}

/* The number of arguments after [opcode, request_id]; -1 for an opcode we do not know. */
static int op_argc(uint64_t op)
{
	switch (op) {
	case CODEC_OP_PING:
		return 0;
	case CODEC_OP_RETIRE:
	case CODEC_OP_COUNT:
	case CODEC_OP_CLEAR:
	case CODEC_OP_STATS:
		return 1;
	case CODEC_OP_GET:
	case CODEC_OP_DESTROY:
	case CODEC_OP_TTL:
	case CODEC_OP_LOAD:
	case CODEC_OP_NAMESPACES:
		return 2;
	case CODEC_OP_HELLO:
	case CODEC_OP_TOUCH:
	case CODEC_OP_FLASH_POP:
	case CODEC_OP_LIST:
		return 3;
	case CODEC_OP_SET:
	case CODEC_OP_TOUCH_IF:
	case CODEC_OP_DESTROY_IF_FLASH:
		return 4;
	case CODEC_OP_FLASH_PUSH:
	case CODEC_OP_FLASH_PUSH_EXISTING:
	case CODEC_OP_SET_IF:
		return 5;
	default:
		return -1;
	}
}

void codec_data_tag(const void *data, size_t len, uint8_t tag[CODEC_TAG_BYTES])
{
	uint8_t hash[CODEC_TAG_HASH_BYTES];

	crypto_generichash(hash, sizeof hash, data, len, NULL, 0);
	memcpy(tag, hash, CODEC_TAG_BYTES);
}

uint32_t codec_frame_length(const uint8_t header[CODEC_HEADER_BYTES])
{
	return (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 | (uint32_t)header[2] << 8 |
	       header[3];
}

int codec_frame_open(struct buf *out, size_t *at)
{
	static const uint8_t zero[CODEC_HEADER_BYTES];

	if (buf_append(out, zero, sizeof zero) == -1)
		return -1;
	*at = out->len - sizeof zero;
	return 0;
}

int codec_frame_close(struct buf *out, size_t at)
{
	size_t body = out->len - at - CODEC_HEADER_BYTES;
	uint8_t *p = out->data + at;

	if (body == 0 || body > UINT32_MAX)
		return -1;
	p[0] = (uint8_t)(body >> 24);
	p[1] = (uint8_t)(body >> 16);
	p[2] = (uint8_t)(body >> 8);
	p[3] = (uint8_t)body;
	return 0;
}

/*
 * Field readers for codec_decode_request. Each returns NULL, or the static reason the field
 * is BAD_REQUEST (PROTOCOL.md, "Types used below"). The namespace's, the id's and the ttl's
 * are inline: every session request reads them, and read_ns, having five callers, was a call
 * of its own that cost 19 instructions a request (callgrind, bench/README.md "Ceiling check",
 * stop 58).
 */

__attribute__((always_inline)) static inline const char *
read_ns(struct mp_reader *r, struct codec_request *req, bool nil_is_all)
{
	if (mp_read_nil(r) == 0) {
		if (nil_is_all) {
			req->ns_all = true;
		} else {
			req->ns.ptr = (const uint8_t *)default_namespace;
			req->ns.len = sizeof default_namespace - 1;
		}
		return NULL;
	}
	if (mp_read_str(r, &req->ns) == -1)
		return "namespace must be nil or a str";
	if (req->ns.len == 0 || req->ns.len > IDS_MAX_NAMESPACE_LEN)
		return "namespace must be 1..64 bytes";
	return NULL;
}

__attribute__((always_inline)) static inline const char *read_id(struct mp_reader *r,
                                                                 struct codec_request *req)
{
	if (mp_read_bytes(r, &req->id, &req->id_is_bin) == -1)
		return "id must be a str or bin";
	if (req->id.len == 0 || req->id.len > IDS_MAX_ID_LEN)
		return "id must be 1..128 bytes";
	return NULL;
}

__attribute__((always_inline)) static inline const char *read_ttl(struct mp_reader *r,
                                                                  struct codec_request *req)
{
	if (mp_read_uint(r, &req->ttl_ms) == -1)
		return "ttl must be a uint";
	if (req->ttl_ms == 0 || req->ttl_ms > CODEC_MAX_TTL_MS)
		return "ttl must be 1..316224000000 ms";
	return NULL;
}

/* SET_IF's and TOUCH_IF's expect: a tag, so exactly bin of CODEC_TAG_BYTES (a str is none). */
static const char *read_expect(struct mp_reader *r, struct codec_request *req)
{
	bool is_bin = false;

	if (mp_read_bytes(r, &req->expect, &is_bin) == -1 || !is_bin ||
	    req->expect.len != CODEC_TAG_BYTES)
		return "expect must be bin of 16 bytes";
	return NULL;
}

static const char *read_flash_type(struct mp_reader *r, struct codec_request *req, bool nil_is_all)
{
	if (nil_is_all && mp_read_nil(r) == 0) {
		req->flash_all = true;
		return NULL;
	}
	if (mp_read_str(r, &req->flash_type) == -1)
		return nil_is_all ? "flash type must be nil or a str" : "flash type must be a str";
	if (req->flash_type.len == 0 || req->flash_type.len > IDS_MAX_FLASH_TYPE_LEN)
		return "flash type must be 1..64 bytes";
	return NULL;
}

/* LIST's and NAMESPACES' cursor and limit; the limit is clamped, not refused. */
static const char *read_page(struct mp_reader *r, struct codec_request *req)
{
	uint64_t v;

	if (mp_read_uint(r, &req->cursor) == -1)
		return "cursor must be a uint";
	if (mp_read_uint(r, &v) == -1)
		return "limit must be a uint";
	req->limit = v == 0 ? 1 : v > CODEC_LIST_MAX_LIMIT ? CODEC_LIST_MAX_LIMIT : (uint32_t)v;
	return NULL;
}

/* The arguments of a known opcode ${op}, in PROTOCOL.md's order. */
static const char *read_args(struct mp_reader *r, uint32_t op, struct codec_request *req,
                             const uint8_t *body_end)
{
	const char *err = NULL;
	uint64_t v;

	switch (op) {
	case CODEC_OP_HELLO:
		if (mp_read_uint(r, &v) == -1)
			return "version must be a uint";
		/* A version too big for the field still reads as "not one we speak". */
		req->version = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
		if (mp_read_str(r, &req->client_name) == -1)
			return "client name must be a str";
		if (req->client_name.len > 64)
			return "client name must be 0..64 bytes";
		/* The whole body was checked with mp_skip already, so auth, the last element,
		 * is one well-formed value running to the end. */
		req->auth.ptr = r->pos;
		req->auth.len = (size_t)(body_end - r->pos);
		r->pos = body_end;
		return NULL;
	case CODEC_OP_PING:
		if (req->ping_payload && mp_read_bytes(r, &req->data, NULL) == -1)
			return "a PING's payload must be a bin or str";
		return NULL;
	case CODEC_OP_RETIRE:
		/* A str is none: the key is bytes, and any other length names no connection. */
		if (mp_read_bin(r, &req->retire_key) == -1 ||
		    req->retire_key.len != CODEC_RETIRE_KEY_BYTES)
			return "a RETIRE's key must be bin of 32 bytes";
		return NULL;
	case CODEC_OP_COUNT:
	case CODEC_OP_CLEAR:
		return read_ns(r, req, false);
	case CODEC_OP_STATS:
		return read_ns(r, req, true);
	case CODEC_OP_LIST:
		if ((err = read_ns(r, req, false)) != NULL)
			return err;
		return read_page(r, req);
	case CODEC_OP_NAMESPACES:
		return read_page(r, req);
	default:
		break;
	}
	/* Session operations: ns and id come first. */
	if ((err = read_ns(r, req, false)) != NULL || (err = read_id(r, req)) != NULL)
		return err;
	switch (op) {
	case CODEC_OP_SET:
		if (mp_read_bytes(r, &req->data, NULL) == -1)
			return "data must be a bin or str";
		return read_ttl(r, req);
	case CODEC_OP_SET_IF:
		if (mp_read_bytes(r, &req->data, NULL) == -1)
			return "data must be a bin or str";
		if ((err = read_ttl(r, req)) != NULL)
			return err;
		return read_expect(r, req);
	case CODEC_OP_TOUCH:
		return read_ttl(r, req);
	case CODEC_OP_TOUCH_IF:
		if ((err = read_ttl(r, req)) != NULL)
			return err;
		return read_expect(r, req);
	case CODEC_OP_FLASH_PUSH:
	case CODEC_OP_FLASH_PUSH_EXISTING:
		if ((err = read_flash_type(r, req, false)) != NULL)
			return err;
		if (mp_read_bytes(r, &req->flash_msg, &req->flash_msg_is_bin) == -1)
			return "flash message must be a str or bin";
		return read_ttl(r, req);
	case CODEC_OP_FLASH_POP:
		return read_flash_type(r, req, true);
	case CODEC_OP_DESTROY_IF_FLASH:
		if ((err = read_flash_type(r, req, false)) != NULL)
			return err;
		if (mp_read_bytes(r, &req->flash_msg, &req->flash_msg_is_bin) == -1)
			return "flash message must be a str or bin";
		return NULL;
	default: /* GET, DESTROY, TTL, LOAD */
		return NULL;
	}
}

/* mp_skip over the whole body: well formed, nested at most MP_MAX_DEPTH, used up exactly. */
static bool body_well_formed(const uint8_t *body, size_t len)
{
	struct mp_reader all;

	mp_reader_init(&all, body, len);
	return mp_skip(&all) == 0 && mp_reader_left(&all) == 0;
}

int codec_decode_request(const uint8_t *body, size_t len, struct codec_request *req,
                         uint32_t *status, const char **why)
{
	struct mp_reader r;
	uint32_t n;
	uint64_t op, rid;
	int argc;
	const char *err;

	memset(req, 0, sizeof *req);
	mp_reader_init(&r, body, len);
	if (mp_read_array(&r, &n) == -1) {
		mp_reader_init(&r, body, len);
		if (mp_read_array_claimed(&r, &n) == -1) {
			err = "a request must be an array";
			goto fail;
		}
		/* PROTOCOL.md: the error carries the request id whenever the second element is
		 * a uint, so a client can tell which request it answers. */
		if (mp_skip(&r) == 0 && mp_read_uint(&r, &rid) == 0)
			req->request_id = rid;
		err = "the request array claims more elements than the frame holds";
		goto fail;
	}
	if (n < 2) {
		err = "a request needs an opcode and a request id";
		goto fail;
	}
	if (mp_read_uint(&r, &op) == -1) {
		/* Still fetch the request id so the error reply can carry it. */
		if (mp_skip(&r) == 0 && mp_read_uint(&r, &rid) == 0)
			req->request_id = rid;
		err = "opcode must be a uint";
		goto fail;
	}
	if (mp_read_uint(&r, &rid) == -1) {
		err = "request id must be a uint";
		goto fail;
	}
	req->request_id = rid;
	req->op = op > UINT32_MAX ? UINT32_MAX : (uint32_t)op;
	argc = op_argc(op);
	if (argc == -1) {
		/* PROTOCOL.md: a well-formed request with an unknown opcode is UNKNOWN_OP and the
		 * connection stays open, so the rest must still be checked to be well formed. */
		if (!body_well_formed(body, len)) {
			err = "malformed request";
			goto fail;
		}
		*status = CODEC_UNKNOWN_OP;
		*why = "unknown opcode";
		return -1;
	}
	/* PING alone takes an optional argument: a payload to be answered with. */
	req->ping_payload = op == CODEC_OP_PING && n == 3;
	if (n - 2 != (uint32_t)argc && !req->ping_payload) {
		err = "wrong number of arguments for the opcode";
		goto fail;
	}
	/* Only HELLO carries a value of free shape (auth); check its nesting up front. */
	if (op == CODEC_OP_HELLO && !body_well_formed(body, len)) {
		err = "malformed request";
		goto fail;
	}
	if ((err = read_args(&r, (uint32_t)op, req, body + len)) != NULL)
		goto fail;
	if (mp_reader_left(&r) != 0) {
		err = "trailing bytes after the request";
		goto fail;
	}
	return 0;

fail:
	*status = CODEC_BAD_REQUEST;
	*why = err;
	return -1;
}

/* Check ${req}'s fields against the limits its opcode has, before anything is written. */
static bool request_valid(const struct codec_request *req)
{
	bool has_id = false, has_ttl = false;

	switch (req->op) {
	case CODEC_OP_HELLO:
		return req->client_name.len <= 64 && (req->auth.len == 0 || req->auth.ptr != NULL);
	case CODEC_OP_PING:
		return !req->ping_payload || req->data.len == 0 || req->data.ptr != NULL;
	case CODEC_OP_RETIRE:
		return req->retire_key.len == CODEC_RETIRE_KEY_BYTES && req->retire_key.ptr != NULL;
	case CODEC_OP_GET:
	case CODEC_OP_DESTROY:
	case CODEC_OP_TTL:
	case CODEC_OP_LOAD:
		has_id = true;
		break;
	case CODEC_OP_SET_IF:
	case CODEC_OP_TOUCH_IF:
		if (req->expect.len != CODEC_TAG_BYTES || req->expect.ptr == NULL)
			return false;
		has_id = has_ttl = true;
		break;
	case CODEC_OP_FLASH_PUSH:
	case CODEC_OP_FLASH_PUSH_EXISTING:
		if (req->flash_type.len == 0 || req->flash_type.len > IDS_MAX_FLASH_TYPE_LEN)
			return false;
		has_id = has_ttl = true;
		break;
	case CODEC_OP_DESTROY_IF_FLASH:
		if (req->flash_type.len == 0 || req->flash_type.len > IDS_MAX_FLASH_TYPE_LEN ||
		    (req->flash_msg.len > 0 && req->flash_msg.ptr == NULL))
			return false;
		has_id = true;
		break;
	case CODEC_OP_SET:
	case CODEC_OP_TOUCH:
		has_id = has_ttl = true;
		break;
	case CODEC_OP_FLASH_POP:
		has_id = true;
		if (!req->flash_all &&
		    (req->flash_type.len == 0 || req->flash_type.len > IDS_MAX_FLASH_TYPE_LEN))
			return false;
		break;
	case CODEC_OP_LIST:
		if (req->limit == 0 || req->limit > CODEC_LIST_MAX_LIMIT)
			return false;
		break;
	case CODEC_OP_NAMESPACES:
		/* It names no namespace: one given would be dropped without a word. */
		return req->limit >= 1 && req->limit <= CODEC_LIST_MAX_LIMIT && req->ns.len == 0;
	case CODEC_OP_COUNT:
	case CODEC_OP_CLEAR:
	case CODEC_OP_STATS:
		break;
	default:
		return false;
	}
	if (req->ns.len > IDS_MAX_NAMESPACE_LEN)
		return false;
	if (has_id && (req->id.len == 0 || req->id.len > IDS_MAX_ID_LEN))
		return false;
	if (has_ttl && (req->ttl_ms == 0 || req->ttl_ms > CODEC_MAX_TTL_MS))
		return false;
	return true;
}

static int write_ns(struct buf *out, const struct codec_request *req)
{
	if (req->ns.len == 0)
		return mp_write_nil(out);
	return mp_write_str(out, req->ns.ptr, req->ns.len);
}

static int write_id(struct buf *out, const struct codec_request *req)
{
	if (req->id_is_bin)
		return mp_write_bin(out, req->id.ptr, req->id.len);
	return mp_write_str(out, req->id.ptr, req->id.len);
}

static int write_args(struct buf *out, const struct codec_request *req)
{
	switch (req->op) {
	case CODEC_OP_HELLO:
		if (mp_write_uint(out, req->version) == -1 ||
		    mp_write_str(out, req->client_name.ptr, req->client_name.len) == -1)
			return -1;
		if (req->auth.len == 0)
			return mp_write_nil(out);
		return buf_append(out, req->auth.ptr, req->auth.len);
	case CODEC_OP_PING:
		return req->ping_payload ? mp_write_bin(out, req->data.ptr, req->data.len) : 0;
	case CODEC_OP_RETIRE:
		return mp_write_bin(out, req->retire_key.ptr, req->retire_key.len);
	case CODEC_OP_STATS:
		/* nil means the whole server here, so the default namespace must be named. */
		if (req->ns_all)
			return mp_write_nil(out);
		if (req->ns.len == 0)
			return mp_write_str(out, default_namespace, sizeof default_namespace - 1);
		return mp_write_str(out, req->ns.ptr, req->ns.len);
	case CODEC_OP_COUNT:
	case CODEC_OP_CLEAR:
		return write_ns(out, req);
	case CODEC_OP_LIST:
		if (write_ns(out, req) == -1 || mp_write_uint(out, req->cursor) == -1)
			return -1;
		return mp_write_uint(out, req->limit);
	case CODEC_OP_NAMESPACES:
		if (mp_write_uint(out, req->cursor) == -1)
			return -1;
		return mp_write_uint(out, req->limit);
	default:
		break;
	}
	if (write_ns(out, req) == -1 || write_id(out, req) == -1)
		return -1;
	switch (req->op) {
	case CODEC_OP_SET:
		if (mp_write_bin(out, req->data.ptr, req->data.len) == -1)
			return -1;
		return mp_write_uint(out, req->ttl_ms);
	case CODEC_OP_SET_IF:
		if (mp_write_bin(out, req->data.ptr, req->data.len) == -1 ||
		    mp_write_uint(out, req->ttl_ms) == -1)
			return -1;
		return mp_write_bin(out, req->expect.ptr, req->expect.len);
	case CODEC_OP_TOUCH:
		return mp_write_uint(out, req->ttl_ms);
	case CODEC_OP_TOUCH_IF:
		if (mp_write_uint(out, req->ttl_ms) == -1)
			return -1;
		return mp_write_bin(out, req->expect.ptr, req->expect.len);
	case CODEC_OP_FLASH_PUSH:
	case CODEC_OP_FLASH_PUSH_EXISTING:
		if (mp_write_str(out, req->flash_type.ptr, req->flash_type.len) == -1)
			return -1;
		if ((req->flash_msg_is_bin
		         ? mp_write_bin(out, req->flash_msg.ptr, req->flash_msg.len)
		         : mp_write_str(out, req->flash_msg.ptr, req->flash_msg.len)) == -1)
			return -1;
		return mp_write_uint(out, req->ttl_ms);
	case CODEC_OP_FLASH_POP:
		if (req->flash_all)
			return mp_write_nil(out);
		return mp_write_str(out, req->flash_type.ptr, req->flash_type.len);
	case CODEC_OP_DESTROY_IF_FLASH:
		if (mp_write_str(out, req->flash_type.ptr, req->flash_type.len) == -1)
			return -1;
		return req->flash_msg_is_bin
		           ? mp_write_bin(out, req->flash_msg.ptr, req->flash_msg.len)
		           : mp_write_str(out, req->flash_msg.ptr, req->flash_msg.len);
	default: /* GET, DESTROY, TTL, LOAD */
		return 0;
	}
}

int codec_encode_request(struct buf *out, const struct codec_request *req)
{
	size_t start = out->len, at;
	uint32_t elements;

	if (!request_valid(req)) {
		errno = EINVAL;
		return -1;
	}
	elements = 2 + (uint32_t)op_argc(req->op) + (req->ping_payload ? 1 : 0);
	if (codec_frame_open(out, &at) == -1 || mp_write_array(out, elements) == -1 ||
	    mp_write_uint(out, req->op) == -1 || mp_write_uint(out, req->request_id) == -1 ||
	    write_args(out, req) == -1)
		goto fail;
	if (codec_frame_close(out, at) == -1) {
		errno = EINVAL;
		goto fail;
	}
	return 0;

fail:
	/* Drop the partial frame so ${out} holds only whole frames. */
	out->len = start;
	return -1;
}

int codec_reply_open(struct buf *out, uint64_t request_id, uint32_t status, size_t *at)
{
	size_t start = out->len;

	if (codec_frame_open(out, at) == -1 || mp_write_array(out, 3) == -1 ||
	    mp_write_uint(out, request_id) == -1 || mp_write_uint(out, status) == -1) {
		out->len = start;
		return -1;
	}
	return 0;
}

int codec_reply_error(struct buf *out, uint64_t request_id, uint32_t status, const char *message)
{
	size_t start = out->len, at;

	if (codec_reply_open(out, request_id, status, &at) == -1 ||
	    mp_write_str(out, message, strlen(message)) == -1)
		goto fail;
	(void)codec_frame_close(out, at); /* the body holds at least the array header */
	return 0;

fail:
	out->len = start;
	return -1;
}

int codec_decode_reply(const uint8_t *body, size_t len, struct codec_reply *rep)
{
	struct mp_reader r;
	uint32_t n;
	uint64_t status;

	memset(rep, 0, sizeof *rep);
	/* One pass checks shape, depth and exact length; the result is then the last element
	 * and runs to the end of the body. */
	if (!body_well_formed(body, len))
		return -1;
	mp_reader_init(&r, body, len);
	if (mp_read_array(&r, &n) == -1 || n != 3 || mp_read_uint(&r, &rep->request_id) == -1 ||
	    mp_read_uint(&r, &status) == -1 || status > UINT32_MAX)
		return -1;
	rep->status = (uint32_t)status;
	rep->result.ptr = r.pos;
	rep->result.len = mp_reader_left(&r);
	if (status == CODEC_OK)
		return 0;
	if (status == CODEC_NOT_FOUND)
		return mp_read_nil(&r);
	return mp_read_str(&r, &rep->message);
}
