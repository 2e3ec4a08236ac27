/*
 * Check the C codec against protocol/vectors.json, the file the Node codec checks itself
 * against too (PROTOCOL.md, "Test vectors"). The JSON is read with the small reader below:
 * the file has a plain regular shape, and the test must not depend on a JSON library.
 */
#include <criterion/criterion.h>

#include "leakcheck.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* ---- a small JSON reader: values into a tree, strings decoded to bytes ---- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	bool b;
	char *str; /* J_NUM: the number's text; J_STR: the decoded bytes, NUL-terminated */
	size_t len;
	size_t n;            /* J_ARR, J_OBJ: elements */
	char **keys;         /* J_OBJ */
	struct jval **items; /* J_ARR, J_OBJ */
};

struct jparser {
	const char *p;
	const char *end;
};

static void jskip_ws(struct jparser *jp)
{
	while (jp->p < jp->end && strchr(" \t\r\n", *jp->p) != NULL)
		jp->p++;
}

static struct jval *jparse(struct jparser *jp);

static int jparse_str(struct jparser *jp, char **out, size_t *len)
{
	size_t cap = 16, n = 0;
	char *s = malloc(cap);

	cr_assert(s != NULL);
	cr_assert(jp->p < jp->end && *jp->p == '"', "JSON: expected a string");
	jp->p++;
	while (jp->p < jp->end && *jp->p != '"') {
		char c = *jp->p++;

		if (c == '\\') {
			cr_assert(jp->p < jp->end);
			c = *jp->p++;
			switch (c) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'u': {
				unsigned v;

				cr_assert(jp->end - jp->p >= 4 && sscanf(jp->p, "%4x", &v) == 1);
				/* The vectors keep strings ASCII; bytes beyond use the _hex forms.
				 */
				cr_assert(v < 0x80, "JSON: non-ASCII \\u escape");
				c = (char)v;
				jp->p += 4;
				break;
			}
			default: /* \" \\ \/ */
				break;
			}
		}
		if (n + 2 > cap) {
			cap *= 2;
			s = realloc(s, cap);
			cr_assert(s != NULL);
		}
		s[n++] = c;
	}
	cr_assert(jp->p < jp->end, "JSON: unterminated string");
	jp->p++;
	s[n] = '\0';
	*out = s;
	*len = n;
	return 0;
}

static void jpush(struct jval *v, char *key, struct jval *item)
{
	v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
	cr_assert(v->items != NULL);
	v->items[v->n] = item;
	if (v->type == J_OBJ) {
		v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
		cr_assert(v->keys != NULL);
		v->keys[v->n] = key;
	}
	v->n++;
}

static struct jval *jparse(struct jparser *jp)
{
	struct jval *v = calloc(1, sizeof *v);

	cr_assert(v != NULL);
	jskip_ws(jp);
	cr_assert(jp->p < jp->end, "JSON: unexpected end");
	if (*jp->p == '{' || *jp->p == '[') {
		char close = *jp->p == '{' ? '}' : ']';

		v->type = close == '}' ? J_OBJ : J_ARR;
		jp->p++;
		jskip_ws(jp);
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			return v;
		}
		for (;;) {
			char *key = NULL;
			size_t klen;

			jskip_ws(jp);
			if (v->type == J_OBJ) {
				jparse_str(jp, &key, &klen);
				jskip_ws(jp);
				cr_assert(jp->p < jp->end && *jp->p == ':', "JSON: expected ':'");
				jp->p++;
			}
			jpush(v, key, jparse(jp));
			jskip_ws(jp);
			cr_assert(jp->p < jp->end, "JSON: unexpected end");
			if (*jp->p == ',') {
				jp->p++;
				continue;
			}
			cr_assert(*jp->p == close, "JSON: expected ',' or '%c'", close);
			jp->p++;
			return v;
		}
	}
	if (*jp->p == '"') {
		v->type = J_STR;
		jparse_str(jp, &v->str, &v->len);
	} else if (strncmp(jp->p, "null", 4) == 0) {
		v->type = J_NULL;
		jp->p += 4;
	} else if (strncmp(jp->p, "true", 4) == 0) {
		v->type = J_BOOL;
		v->b = true;
		jp->p += 4;
	} else if (strncmp(jp->p, "false", 5) == 0) {
		v->type = J_BOOL;
		jp->p += 5;
	} else {
		const char *start = jp->p;

		while (jp->p < jp->end && strchr("-+.eE0123456789", *jp->p) != NULL)
			jp->p++;
		cr_assert(jp->p > start, "JSON: unexpected character '%c'", *start);
		v->type = J_NUM;
		v->len = (size_t)(jp->p - start);
		v->str = strndup(start, v->len);
	}
	return v;
}

static void jfree(struct jval *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->n; i++) {
		if (v->keys != NULL)
			free(v->keys[i]);
		jfree(v->items[i]);
	}
	free(v->keys);
	free(v->items);
	free(v->str);
	free(v);
}

static struct jval *jget(const struct jval *obj, const char *key)
{
	size_t i;

	for (i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return obj->items[i];
	return NULL;
}

/* A uint: a JSON number, or a decimal string for values JavaScript cannot hold exactly. */
static uint64_t juint(const struct jval *v)
{
	char *end;
	uint64_t x;

	cr_assert(v->type == J_NUM || v->type == J_STR);
	cr_assert(v->str[0] >= '0' && v->str[0] <= '9', "not a uint: %s", v->str);
	errno = 0;
	x = strtoull(v->str, &end, 10);
	cr_assert(errno == 0 && *end == '\0', "not a uint: %s", v->str);
	return x;
}

/* Hex text to bytes in a fresh allocation (at least 1 byte, so empty is not NULL). */
static uint8_t *unhex(const char *hex, size_t *len)
{
	size_t n = strlen(hex), i;
	uint8_t *out = malloc(n / 2 + 1);

	cr_assert(out != NULL && n % 2 == 0, "bad hex");
	for (i = 0; i < n / 2; i++) {
		unsigned v;

		cr_assert(sscanf(hex + 2 * i, "%2x", &v) == 1, "bad hex");
		out[i] = (uint8_t)v;
	}
	*len = n / 2;
	return out;
}

/* ---- the checks ---- */

struct vectors {
	struct jval *root;
	char *text;
};

static void vectors_load(struct vectors *vs)
{
	const char *root = getenv("SESSD_SOURCE_ROOT");
	char path[4096];
	FILE *f;
	long size;
	struct jparser jp;

	cr_assert(root != NULL, "SESSD_SOURCE_ROOT is not set (run through meson test)");
	snprintf(path, sizeof path, "%s/protocol/vectors.json", root);
	f = fopen(path, "rb");
	cr_assert(f != NULL, "cannot open %s", path);
	cr_assert(fseek(f, 0, SEEK_END) == 0);
	size = ftell(f);
	cr_assert(size > 0);
	rewind(f);
	vs->text = malloc((size_t)size);
	cr_assert(vs->text != NULL);
	cr_assert(fread(vs->text, 1, (size_t)size, f) == (size_t)size);
	fclose(f);
	jp.p = vs->text;
	jp.end = vs->text + size;
	vs->root = jparse(&jp);
	jskip_ws(&jp);
	cr_assert(jp.p == jp.end, "JSON: trailing text");
	cr_assert(vs->root->type == J_ARR && vs->root->n > 0);
}

static void vectors_free(struct vectors *vs)
{
	jfree(vs->root);
	free(vs->text);
}

/* Bytes a request field names; hex fields are allocated and recorded in ${owned}. */
struct owned {
	uint8_t *p[8];
	int n;
};

static void set_bytes_field(const struct jval *r, const char *str_key, const char *hex_key,
                            struct mp_bytes *out, bool *is_bin, struct owned *own)
{
	const struct jval *v;

	if ((v = jget(r, str_key)) != NULL && v->type == J_STR) {
		out->ptr = (const uint8_t *)v->str;
		out->len = v->len;
		if (is_bin != NULL)
			*is_bin = false;
	} else if (hex_key != NULL && (v = jget(r, hex_key)) != NULL) {
		cr_assert(v->type == J_STR);
		own->p[own->n] = unhex(v->str, &out->len);
		out->ptr = own->p[own->n++];
		if (is_bin != NULL)
			*is_bin = true;
	}
}

static void expected_request(const struct jval *r, struct codec_request *q, struct owned *own)
{
	const struct jval *v;

	memset(q, 0, sizeof *q);
	q->op = (uint32_t)juint(jget(r, "op"));
	q->request_id = juint(jget(r, "request_id"));
	if ((v = jget(r, "ns")) != NULL && v->type == J_NULL && q->op == CODEC_OP_STATS)
		q->ns_all = true;
	set_bytes_field(r, "ns", NULL, &q->ns, NULL, own);
	set_bytes_field(r, "id", "id_hex", &q->id, &q->id_is_bin, own);
	set_bytes_field(r, "data_hex", NULL, &q->data, NULL, own);
	if (q->data.ptr != NULL) {
		/* data_hex names bytes, not a str */
		own->p[own->n] = unhex((const char *)q->data.ptr, &q->data.len);
		q->data.ptr = own->p[own->n++];
	}
	if ((v = jget(r, "type")) != NULL) {
		if (v->type == J_NULL)
			q->flash_all = true;
		else
			set_bytes_field(r, "type", NULL, &q->flash_type, NULL, own);
	}
	set_bytes_field(r, "expect_hex", NULL, &q->expect, NULL, own);
	if (q->expect.ptr != NULL) {
		own->p[own->n] = unhex((const char *)q->expect.ptr, &q->expect.len);
		q->expect.ptr = own->p[own->n++];
	}
	set_bytes_field(r, "key_hex", NULL, &q->retire_key, NULL, own);
	if (q->retire_key.ptr != NULL) {
		own->p[own->n] = unhex((const char *)q->retire_key.ptr, &q->retire_key.len);
		q->retire_key.ptr = own->p[own->n++];
	}
	set_bytes_field(r, "msg", "msg_hex", &q->flash_msg, &q->flash_msg_is_bin, own);
	set_bytes_field(r, "client_name", NULL, &q->client_name, NULL, own);
	set_bytes_field(r, "auth_hex", NULL, &q->auth, NULL, own);
	if (q->auth.ptr != NULL) {
		own->p[own->n] = unhex((const char *)q->auth.ptr, &q->auth.len);
		q->auth.ptr = own->p[own->n++];
	}
	if ((v = jget(r, "ttl_ms")) != NULL)
		q->ttl_ms = juint(v);
	if ((v = jget(r, "cursor")) != NULL)
		q->cursor = juint(v);
	if ((v = jget(r, "limit")) != NULL)
		q->limit = (uint32_t)juint(v);
	if ((v = jget(r, "version")) != NULL)
		q->version = (uint32_t)juint(v);
	if ((v = jget(r, "ping_payload")) != NULL)
		q->ping_payload = v->type == J_BOOL && v->b;
}

static void owned_free(struct owned *own)
{
	while (own->n > 0)
		free(own->p[--own->n]);
}

static bool bytes_eq(struct mp_bytes a, struct mp_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void assert_request_eq(const char *name, const struct codec_request *got,
                              const struct codec_request *want)
{
	cr_expect_eq(got->op, want->op, "%s: op", name);
	cr_expect_eq(got->request_id, want->request_id, "%s: request_id", name);
	cr_expect(bytes_eq(got->ns, want->ns), "%s: ns '%.*s'", name, (int)got->ns.len,
	          (const char *)got->ns.ptr);
	cr_expect_eq(got->ns_all, want->ns_all, "%s: ns_all", name);
	cr_expect(bytes_eq(got->id, want->id), "%s: id", name);
	cr_expect_eq(got->id_is_bin, want->id_is_bin, "%s: id_is_bin", name);
	cr_expect(bytes_eq(got->data, want->data), "%s: data", name);
	cr_expect_eq(got->ping_payload, want->ping_payload, "%s: ping_payload", name);
	cr_expect_eq(got->ttl_ms, want->ttl_ms, "%s: ttl_ms", name);
	cr_expect(bytes_eq(got->flash_type, want->flash_type), "%s: type", name);
	cr_expect_eq(got->flash_all, want->flash_all, "%s: flash_all", name);
	cr_expect(bytes_eq(got->flash_msg, want->flash_msg), "%s: msg", name);
	cr_expect_eq(got->flash_msg_is_bin, want->flash_msg_is_bin, "%s: msg is bin", name);
	cr_expect_eq(got->cursor, want->cursor, "%s: cursor", name);
	cr_expect_eq(got->limit, want->limit, "%s: limit", name);
	cr_expect_eq(got->version, want->version, "%s: version", name);
	cr_expect(bytes_eq(got->client_name, want->client_name), "%s: client_name", name);
	cr_expect(bytes_eq(got->auth, want->auth), "%s: auth", name);
	cr_expect(bytes_eq(got->retire_key, want->retire_key), "%s: key", name);
	cr_expect(bytes_eq(got->expect, want->expect), "%s: expect", name);
}

static bool is_session_op(uint32_t op)
{
	return op != CODEC_OP_HELLO && op != CODEC_OP_PING && op != CODEC_OP_RETIRE &&
	       op != CODEC_OP_STATS && op != CODEC_OP_NAMESPACES;
}

/* SET_IF and TOUCH_IF vectors whose expect was checked to be the tag of the data they name. */
static size_t tags_checked;

static void check_valid_request(const char *name, const struct jval *vec, const uint8_t *frame,
                                size_t len)
{
	struct codec_request want, got;
	struct owned own = {0};
	const struct jval *canon = jget(vec, "canonical");
	const struct jval *tag_of = jget(vec, "expect_tag_of_hex");
	uint32_t status = 99;
	const char *why = NULL;
	struct buf out;

	expected_request(jget(vec, "request"), &want, &own);
	cr_assert(len >= CODEC_HEADER_BYTES, "%s: short", name);
	cr_assert_eq(codec_frame_length(frame), len - CODEC_HEADER_BYTES, "%s: header", name);
	cr_expect_eq(codec_decode_request(frame + CODEC_HEADER_BYTES, len - CODEC_HEADER_BYTES,
	                                  &got, &status, &why),
	             0, "%s: rejected (%s)", name, why ? why : "");
	{
		/* nil on the wire decodes to the default namespace (PROTOCOL.md, "ns") */
		struct codec_request decoded_want = want;

		if (is_session_op(want.op) && want.ns.len == 0) {
			decoded_want.ns.ptr = (const uint8_t *)CODEC_DEFAULT_NAMESPACE;
			decoded_want.ns.len = strlen(CODEC_DEFAULT_NAMESPACE);
		}
		assert_request_eq(name, &got, &decoded_want);
	}
	if (tag_of != NULL) {
		/* The generator computed expect with Python's hashlib: the codec's tag must agree.
		 */
		uint8_t tag[CODEC_TAG_BYTES], *data;
		size_t data_len;

		data = unhex(tag_of->str, &data_len);
		codec_data_tag(data, data_len, tag);
		cr_expect(want.expect.len == CODEC_TAG_BYTES &&
		              memcmp(tag, want.expect.ptr, CODEC_TAG_BYTES) == 0,
		          "%s: expect is not the tag of expect_tag_of_hex", name);
		free(data);
		tags_checked++;
	}
	if (canon == NULL || canon->b) {
		buf_init(&out);
		cr_expect_eq(codec_encode_request(&out, &want), 0, "%s: encode", name);
		cr_expect(out.len == len && memcmp(out.data, frame, len) == 0,
		          "%s: encoding differs from hex", name);
		buf_finish(&out);
	}
	owned_free(&own);
}

static void check_valid_reply(const char *name, const struct jval *vec, const uint8_t *frame,
                              size_t len)
{
	const struct jval *r = jget(vec, "reply"), *msg = jget(r, "message");
	struct codec_reply got;
	uint8_t *result;
	size_t result_len, at;
	uint64_t rid = juint(jget(r, "request_id"));
	uint32_t status = (uint32_t)juint(jget(r, "status"));
	struct buf out;

	result = unhex(jget(r, "result_hex")->str, &result_len);
	cr_assert_eq(codec_frame_length(frame), len - CODEC_HEADER_BYTES, "%s: header", name);
	cr_expect_eq(codec_decode_reply(frame + CODEC_HEADER_BYTES, len - CODEC_HEADER_BYTES, &got),
	             0, "%s: rejected", name);
	cr_expect_eq(got.request_id, rid, "%s: request_id", name);
	cr_expect_eq(got.status, status, "%s: status", name);
	cr_expect(got.result.len == result_len && memcmp(got.result.ptr, result, result_len) == 0,
	          "%s: result", name);
	if (msg != NULL)
		cr_expect(got.message.len == msg->len &&
		              memcmp(got.message.ptr, msg->str, msg->len) == 0,
		          "%s: message", name);

	buf_init(&out);
	if (msg != NULL) {
		cr_expect_eq(codec_reply_error(&out, rid, status, msg->str), 0);
	} else {
		cr_expect_eq(codec_reply_open(&out, rid, status, &at), 0);
		cr_expect_eq(buf_append(&out, result, result_len), 0);
		cr_expect_eq(codec_frame_close(&out, at), 0);
	}
	cr_expect(out.len == len && memcmp(out.data, frame, len) == 0,
	          "%s: encoding differs from hex", name);
	buf_finish(&out);
	free(result);
}

/* What a server (or, for replies, a client) does with the frame, as a status name. */
static void check_invalid(const char *name, const struct jval *vec, const uint8_t *frame,
                          size_t len)
{
	const char *want = jget(vec, "error")->str;
	const struct jval *mf = jget(vec, "max_frame"), *rid = jget(vec, "request_id");
	uint64_t max_frame = mf != NULL ? juint(mf) : CODEC_DEFAULT_MAX_FRAME;
	bool is_request = strcmp(jget(vec, "kind")->str, "request") == 0;
	uint32_t body_len, status = 99;
	struct codec_request req;
	struct codec_reply rep;
	const char *why = NULL;
	const char *got;

	cr_assert(len >= CODEC_HEADER_BYTES, "%s: no header", name);
	body_len = codec_frame_length(frame);
	if (body_len == 0) {
		got = "BAD_REQUEST";
	} else if (body_len > max_frame) {
		got = "TOO_LARGE";
	} else {
		cr_assert_eq(body_len, len - CODEC_HEADER_BYTES, "%s: header", name);
		if (is_request) {
			cr_expect_eq(codec_decode_request(frame + CODEC_HEADER_BYTES, body_len,
			                                  &req, &status, &why),
			             -1, "%s: accepted", name);
			got = codec_status_name(status);
			cr_expect(why != NULL, "%s: no reason", name);
			if (rid != NULL)
				cr_expect_eq(req.request_id, juint(rid), "%s: request_id", name);
		} else {
			cr_expect_eq(codec_decode_reply(frame + CODEC_HEADER_BYTES, body_len, &rep),
			             -1, "%s: accepted", name);
			got = "BAD_REQUEST";
		}
	}
	cr_expect_str_eq(got, want, "%s", name);
}

LEAK_CHECKED_TEST(vectors, every_vector)
{
	struct vectors vs;
	size_t i, requests = 0, replies = 0, invalid = 0;
	uint64_t ops_seen = 0, ops_all = 0;
	static const uint8_t ops[] = {0x01, 0x02, 0x03, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
	                              0x17, 0x20, 0x21, 0x22, 0x23, 0x30, 0x31, 0x32, 0x33, 0x34};

	vectors_load(&vs);
	for (i = 0; i < vs.root->n; i++) {
		const struct jval *vec = vs.root->items[i];
		const char *name = jget(vec, "name")->str;
		const char *kind = jget(vec, "kind")->str;
		size_t len;
		uint8_t *frame = unhex(jget(vec, "hex")->str, &len);

		if (jget(vec, "error") != NULL) {
			check_invalid(name, vec, frame, len);
			invalid++;
		} else if (strcmp(kind, "request") == 0) {
			check_valid_request(name, vec, frame, len);
			ops_seen |= 1ull << (juint(jget(jget(vec, "request"), "op")) % 64);
			requests++;
		} else {
			cr_assert_str_eq(kind, "reply", "%s: kind", name);
			check_valid_reply(name, vec, frame, len);
			replies++;
		}
		free(frame);
	}
	cr_log_info("%zu request, %zu reply, %zu invalid vectors", requests, replies, invalid);
	/* every opcode has at least one valid vector */
	for (i = 0; i < sizeof ops; i++)
		ops_all |= 1ull << ops[i];
	cr_expect_eq(ops_seen, ops_all);
	cr_expect(replies > 0 && invalid > 0);
	cr_expect_geq(tags_checked, 1, "a SET_IF vector says what its expect is the tag of");
	vectors_free(&vs);
}
