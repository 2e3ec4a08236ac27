/*
 * libsessd's blocking calls: one request, one reply. Each call checks its arguments, makes
 * sure the connection is live (client_ready), sends one frame and decodes the one reply.
 */
#include "sessd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "client.h"
#include "reply.h"

/* What one blocking call expects back and where its result goes. */
struct call {
	struct sessd_client *c;
	uint32_t op;
	uint64_t request_id;
	const char *flash_type; /* FLASH_POP: the type asked for, or NULL for all */
	int status;
	void **data; /* GET, LOAD */
	size_t *data_len;
	uint64_t *number; /* FLASH_PUSH(_EXISTING), TTL, COUNT, CLEAR; LOAD's flashes */
	struct sessd_flashes **flashes;
	struct sessd_list **list;
	uint32_t list_limit; /* LIST, NAMESPACES: the most entries asked for */
	struct sessd_stats **stats;
	struct sessd_namespaces **namespaces; /* NAMESPACES; its limit is list_limit */
};

static int decode_get(struct call *k, const struct mp_bytes *result)
{
	struct mp_bytes data;
	uint8_t *copy;
	int rc;

	if (k->op == CODEC_OP_LOAD)
		rc = reply_load(result, &data, k->number);
	else
		rc = reply_data(result, &data);
	if (rc != SESSD_OK)
		return rc;
	copy = malloc(data.len + 1);
	if (copy == NULL)
		return SESSD_ERR_NOMEM;
	if (data.len > 0)
		memcpy(copy, data.ptr, data.len);
	copy[data.len] = '\0';
	*k->data = copy;
	*k->data_len = data.len;
	return SESSD_OK;
}

/*
 * NAMESPACES' result, [next_cursor, [[name, sessions], ...]], checked and then copied into
 * ${fill} (NULL: only checked) with its names after the entries, from ${text}: at most
 * ${limit} entries (what was asked for), each name a str of 1..64 bytes. Sets ${count} and
 * ${bytes} (the names' bytes and NULs). Returns 0, or -1 for a result of the wrong shape.
 * Here rather than in reply.c, whose other results it mirrors: only this file calls it.
 */
static int walk_namespaces(const struct mp_bytes *result, uint32_t limit,
                           struct sessd_namespaces *fill, char *text, uint64_t *cursor,
                           size_t *count, size_t *bytes)
{
	struct mp_reader r;
	struct mp_bytes name;
	uint32_t outer, n, pair;
	uint64_t sessions;

	*count = 0;
	*bytes = 0;
	mp_reader_init(&r, result->ptr, result->len);
	if (mp_read_array(&r, &outer) == -1 || outer != 2 || mp_read_uint(&r, cursor) == -1 ||
	    mp_read_array(&r, &n) == -1 || n > limit)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		if (mp_read_array(&r, &pair) == -1 || pair != 2 || mp_read_str(&r, &name) == -1 ||
		    name.len < 1 || name.len > IDS_MAX_NAMESPACE_LEN ||
		    mp_read_uint(&r, &sessions) == -1)
			return -1;
		*bytes += name.len + 1;
		if (fill != NULL) {
			memcpy(text, name.ptr, name.len);
			text[name.len] = '\0';
			fill->items[i].name = text;
			fill->items[i].name_len = name.len;
			fill->items[i].sessions = sessions;
			text += name.len + 1;
		}
	}
	*count = n;
	return mp_reader_left(&r) == 0 ? 0 : -1;
}

static int decode_namespaces(struct call *k, const struct mp_bytes *result)
{
	struct sessd_namespaces *l;
	size_t count, bytes, head;
	uint64_t cursor;

	if (walk_namespaces(result, k->list_limit, NULL, NULL, &cursor, &count, &bytes) == -1)
		return SESSD_ERR_PROTOCOL;
	/* count <= 1000 and bytes <= 65 * 1000: no overflow. */
	head = sizeof(*l) + count * sizeof(struct sessd_namespace);
	l = malloc(head + bytes + 1);
	if (l == NULL)
		return SESSD_ERR_NOMEM;
	l->next_cursor = cursor;
	l->count = count;
	l->items = (struct sessd_namespace *)(l + 1);
	(void)walk_namespaces(result, k->list_limit, l, (char *)l + head, &cursor, &count, &bytes);
	*k->namespaces = l;
	return SESSD_OK;
}

static int decode_result(struct call *k, const struct mp_bytes *result)
{
	uint64_t unused;

	switch (k->op) {
	case CODEC_OP_GET:
	case CODEC_OP_LOAD:
		return decode_get(k, result);
	case CODEC_OP_FLASH_PUSH:
	case CODEC_OP_FLASH_PUSH_EXISTING:
	case CODEC_OP_COUNT:
	case CODEC_OP_CLEAR:
		return reply_uint(result, k->number != NULL ? k->number : &unused);
	case CODEC_OP_TTL:
		/* PROTOCOL.md: a live session has at least 1 ms left; 0 is no answer. */
		if (reply_uint(result, k->number) != SESSD_OK || *k->number == 0)
			return SESSD_ERR_PROTOCOL;
		return SESSD_OK;
	case CODEC_OP_FLASH_POP:
		return reply_flashes(result, k->flash_type, k->c->max_frame, k->flashes);
	case CODEC_OP_LIST:
		return reply_list(result, k->list_limit, k->list);
	case CODEC_OP_STATS:
		return reply_stats(result, k->stats);
	case CODEC_OP_NAMESPACES:
		return decode_namespaces(k, result);
	default:
		return reply_nil(result);
	}
}

static int call_on_frame(void *ctx, const uint8_t *body, size_t len)
{
	struct call *k = ctx;
	struct codec_reply rep;

	k->status = client_check_reply(k->c, body, len, k->op, k->request_id, &rep);
	if (k->status == SESSD_OK) {
		k->status = decode_result(k, &rep.result);
		if (k->status == SESSD_ERR_PROTOCOL)
			client_error(k->c, k->status, "the server's %s result has the wrong shape",
			             codec_op_name(k->op));
		else if (k->status == SESSD_ERR_NOMEM)
			client_error(k->c, k->status, "out of memory for the result");
	}
	/* A malformed reply means the stream can no longer be trusted: stop and drop. */
	return k->status == SESSD_ERR_PROTOCOL ? SESSD_ERR_PROTOCOL : SESSD_OK;
}

/*
 * The call failed after its result was decoded (bytes after the reply, say): the caller owns a
 * result only on SESSD_OK, so free it here and leave its pointer NULL. Numbers go to the
 * caller through a local (call_number), so they need nothing here.
 */
static void call_discard(struct call *k)
{
	if (k->status != SESSD_OK)
		return;
	switch (k->op) {
	case CODEC_OP_GET:
	case CODEC_OP_LOAD:
		free(*k->data);
		*k->data = NULL;
		*k->data_len = 0;
		break;
	case CODEC_OP_FLASH_POP:
		sessd_flashes_free(*k->flashes);
		*k->flashes = NULL;
		break;
	case CODEC_OP_LIST:
		sessd_list_free(*k->list);
		*k->list = NULL;
		break;
	case CODEC_OP_STATS:
		sessd_stats_free(*k->stats);
		*k->stats = NULL;
		break;
	case CODEC_OP_NAMESPACES:
		sessd_namespaces_free(*k->namespaces);
		*k->namespaces = NULL;
		break;
	default:
		break;
	}
}

/* Send ${req} (ns and request id filled in here) and wait for its reply into ${k}. */
static int call_once(struct sessd_client *c, struct codec_request *req, struct call *k)
{
	size_t body_len;
	int rc;

	c->errmsg[0] = '\0';
	client_call_starts(c);
	rc = client_ready(c);
	if (rc != SESSD_OK)
		return rc;
	/* STATS names its namespace itself; PING and NAMESPACES name none. */
	if (req->op != CODEC_OP_STATS && req->op != CODEC_OP_PING &&
	    req->op != CODEC_OP_NAMESPACES) {
		req->ns.ptr = (const uint8_t *)c->ns;
		req->ns.len = c->ns_len;
	}
	req->request_id = client_next_id(c);
	buf_reset(&c->out);
	if (codec_encode_request(&c->out, req) == -1) {
		rc = errno == ENOMEM
		         ? client_error(c, SESSD_ERR_NOMEM, "out of memory")
		         : client_error(c, SESSD_ERR_USAGE, "an argument is out of range");
		/* What the encoding grew before it failed is not kept either. */
		client_trim(c);
		return rc;
	}
	/* The server would refuse it unread and close the connection: say so without sending
	 * a body that can only be thrown away. */
	body_len = c->out.len - CODEC_HEADER_BYTES;
	if (body_len > c->max_frame) {
		if (req->data.len > 0)
			/* What the caller controls is the data: say how much of it would fit. */
			client_error(
			    c, SESSD_ERR_TOO_LARGE,
			    "%s of %zu bytes of data is over the server's limit: "
			    "%zu bytes fit in its max_frame of %u with this id and namespace",
			    codec_op_name(req->op), req->data.len,
			    req->data.len - (body_len - c->max_frame), c->max_frame);
		else
			client_error(c, SESSD_ERR_TOO_LARGE,
			             "request of %zu bytes is over the max_frame of %u", body_len,
			             c->max_frame);
		/* The frame is a copy of the caller's data, of any size: not kept. */
		client_trim(c);
		return SESSD_ERR_TOO_LARGE;
	}
	k->c = c;
	k->op = req->op;
	k->request_id = req->request_id;
	k->status = SESSD_ERR_PROTOCOL;
	rc = client_exchange(c, c->out.data, c->out.len, 1, call_on_frame, k);
	/* Carried out, its result lost (a FLASH_POP's messages): no less than may have been, and
	 * known to have been (sessd_result_lost). */
	if (rc == SESSD_OK && k->status == SESSD_ERR_NOMEM && codec_op_changes(k->op))
		c->outcome_unknown = c->result_lost = true;
	/* The frame sent and the reply read (the data is the caller's copy now): not kept. */
	client_trim(c);
	if (rc != SESSD_OK) {
		call_discard(k);
		return rc;
	}
	if (client_status_closes(k->status))
		client_drop(c);
	return k->status;
}

/* call_once, and once more on a new connection when sessd closed a sealed one at its
 * --hello-timeout as the request crossed the close (client_resend_ready). */
static int call_run(struct sessd_client *c, struct codec_request *req, struct call *k)
{
	int rc = call_once(c, req, k);

	if (rc == SESSD_ERR_SHUTTING_DOWN && client_resend_ready(c))
		rc = call_once(c, req, k);
	return rc;
}

/* Run ${req}, whose result is a uint; *${out} (may be NULL) gets it on SESSD_OK only. */
static int call_number(struct sessd_client *c, struct codec_request *req, uint64_t *out)
{
	uint64_t value = 0;
	struct call k = {.number = &value};
	int rc;

	rc = call_run(c, req, &k);
	if (rc == SESSD_OK && out != NULL)
		*out = value;
	return rc;
}

static bool id_ok(const void *id, size_t id_len)
{
	return id != NULL && id_len >= 1 && id_len <= IDS_MAX_ID_LEN;
}

static bool ttl_ok(uint64_t ttl_ms)
{
	return ttl_ms >= 1 && ttl_ms <= CODEC_MAX_TTL_MS;
}

static bool type_ok(const char *type)
{
	size_t n;

	if (type == NULL)
		return false;
	n = strlen(type);
	return n >= 1 && n <= IDS_MAX_FLASH_TYPE_LEN;
}

static void set_id(struct codec_request *req, const void *id, size_t id_len)
{
	req->id.ptr = id;
	req->id.len = id_len;
}

/*
 * Take the secret options of ${opts} into ${c}. Returns SESSD_OK, or SESSD_ERR_USAGE or
 * SESSD_ERR_NOMEM with errno and c->errmsg saying why (sessd.h, sessd_connect).
 */
static int take_secret(struct sessd_client *c, const struct sessd_options *opts)
{
	int rc = SESSD_OK;

	errno = EINVAL;
	if (opts->auth != NULL && opts->auth_file != NULL)
		return client_error(c, SESSD_ERR_USAGE, "both auth and auth_file are set");
	if (opts->auth == NULL && opts->auth_len != 0)
		return client_error(c, SESSD_ERR_USAGE, "auth_len is set without auth");
	/* Read before the secret, which it says how to keep (client_set_secret). */
	c->plain_auth = opts->plain_auth;
	if (opts->auth != NULL)
		rc = client_set_secret(c, opts->auth, opts->auth_len);
	else if (opts->auth_file != NULL)
		rc = client_read_secret_file(c, opts->auth_file);
	if (rc != SESSD_OK)
		return rc;
	/* A server that checks would refuse the missing secret, one that does not would be
	 * refused: without a secret, require_auth can only fail; and plain_auth says how to
	 * show a secret that is not there. */
	errno = EINVAL;
	if ((opts->require_auth || opts->plain_auth) && !client_has_secret(c))
		return client_error(c, SESSD_ERR_USAGE, "%s needs a secret (auth or auth_file)",
		                    opts->require_auth ? "require_auth" : "plain_auth");
	c->require_auth = opts->require_auth;
	return SESSD_OK;
}

/*
 * Copy ${words} into the caller's ${errbuf} of ${errbuf_len} bytes, cut to fit; nothing when
 * there is no buffer. errno is left as it was.
 */
static void put_errbuf(char *errbuf, size_t errbuf_len, const char *words)
{
	size_t n;

	if (errbuf == NULL || errbuf_len == 0)
		return;
	n = strlen(words);
	if (n >= errbuf_len)
		n = errbuf_len - 1;
	memcpy(errbuf, words, n);
	errbuf[n] = '\0';
}

int sessd_connect(const char *url, const struct sessd_options *opts, struct sessd_client **client)
{
	return sessd_connect_errbuf(url, opts, client, NULL, 0);
}

int sessd_connect_errbuf(const char *url, const struct sessd_options *opts,
                         struct sessd_client **client, char *errbuf, size_t errbuf_len)
{
	struct sessd_client *c;
	const char *why;
	size_t at;
	int rc, saved, usage_errno = EINVAL;

	if (client == NULL) {
		put_errbuf(errbuf, errbuf_len, "no place for the client (client is NULL)");
		errno = EINVAL;
		return SESSD_ERR_USAGE;
	}
	*client = NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		put_errbuf(errbuf, errbuf_len, "out of memory");
		errno = ENOMEM;
		return SESSD_ERR_NOMEM;
	}
	c->fd = -1;
	c->next_request_id = 1;
	c->timeout_ms = CLIENT_DEFAULT_TIMEOUT_MS;
	buf_init(&c->out);
	buf_init(&c->in);
	buf_init(&c->records);
	buf_init(&c->raw);
	snprintf(c->client_name, sizeof(c->client_name), "%s", CLIENT_DEFAULT_NAME);
	rc = SESSD_ERR_USAGE;
	if (url_parse(url, &c->url, &why) == -1) {
		/* The caller's own string, shown as it is only where it is printable. */
		at = (size_t)snprintf(c->errmsg, sizeof(c->errmsg), "bad URL '");
		if (url != NULL)
			at = client_put_printable(c->errmsg, sizeof(c->errmsg), at, url,
			                          strnlen(url, URL_MAX_TEXT));
		snprintf(c->errmsg + at, sizeof(c->errmsg) - at, "': %s", why);
		goto fail;
	}
	if (opts != NULL) {
		if (opts->timeout_ms < 0) {
			client_error(c, rc, "timeout_ms is negative");
			goto fail;
		}
		if (opts->timeout_ms > 0)
			c->timeout_ms = opts->timeout_ms;
		if (opts->client_name != NULL) {
			if (strlen(opts->client_name) >= sizeof(c->client_name)) {
				client_error(c, rc, "client_name has more than %zu bytes",
				             sizeof(c->client_name) - 1);
				goto fail;
			}
			snprintf(c->client_name, sizeof(c->client_name), "%s", opts->client_name);
		}
		if (opts->ns != NULL && sessd_set_namespace(c, opts->ns) != SESSD_OK)
			goto fail;
		rc = take_secret(c, opts);
		if (rc != SESSD_OK) {
			usage_errno = errno;
			goto fail;
		}
	}
	rc = client_connect(c);
	if (rc != SESSD_OK)
		goto fail;
	put_errbuf(errbuf, errbuf_len, "");
	*client = c;
	return SESSD_OK;

fail:
	saved = errno;
	if (rc == SESSD_ERR_USAGE)
		saved = usage_errno;
	put_errbuf(errbuf, errbuf_len, c->errmsg);
	sessd_close(c);
	errno = saved;
	return rc;
}

void sessd_close(struct sessd_client *c)
{
	if (c == NULL)
		return;
	client_drop(c);
	client_forget_secret(c);
	buf_finish(&c->out);
	buf_finish(&c->in);
	buf_finish(&c->records);
	buf_finish(&c->raw);
	free(c);
}

const char *sessd_errmsg(const struct sessd_client *c)
{
	if (c == NULL)
		return "no client";
	return c->errmsg;
}

const char *sessd_strerror(int code)
{
	switch (code) {
	case SESSD_OK:
		return "ok";
	case SESSD_NOT_FOUND:
		return "not found";
	case SESSD_ERR_BAD_REQUEST:
		return "bad request";
	case SESSD_ERR_TOO_LARGE:
		return "too large";
	case SESSD_ERR_NO_MEMORY:
		return "server out of memory";
	case SESSD_ERR_UNKNOWN_OP:
		return "unknown operation";
	case SESSD_ERR_BAD_VERSION:
		return "bad protocol version";
	case SESSD_ERR_NOT_READY:
		return "not ready";
	case SESSD_ERR_IO:
		return "server I/O error";
	case SESSD_ERR_AUTH:
		return "authentication failed";
	case SESSD_ERR_INTERNAL:
		return "internal server error";
	case SESSD_ERR_SHUTTING_DOWN:
		return "server shutting down";
	case SESSD_ERR_LIMIT:
		return "limit exceeded";
	case SESSD_ERR_BUSY:
		return "server busy";
	case SESSD_CONFLICT:
		return "data changed since it was read";
	case SESSD_ERR_FORBIDDEN:
		return "forbidden without the admin secret";
	case SESSD_ERR_USAGE:
		return "bad argument";
	case SESSD_ERR_CONNECT:
		return "cannot connect";
	case SESSD_ERR_TIMEOUT:
		return "timed out";
	case SESSD_ERR_CLOSED:
		return "connection closed";
	case SESSD_ERR_PROTOCOL:
		return "protocol error";
	case SESSD_ERR_NOMEM:
		return "out of memory";
	default:
		return "unknown error";
	}
}

int sessd_set_namespace(struct sessd_client *c, const char *ns)
{
	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (ns == NULL)
		return client_error(c, SESSD_ERR_USAGE, "no namespace");
	return sessd_set_namespace_len(c, ns, strlen(ns));
}

int sessd_set_namespace_len(struct sessd_client *c, const void *ns, size_t ns_len)
{
	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (ns == NULL)
		return client_error(c, SESSD_ERR_USAGE, "no namespace");
	if (ns_len < 1 || ns_len > IDS_MAX_NAMESPACE_LEN)
		return client_error(c, SESSD_ERR_USAGE, "a namespace has 1 to %d bytes",
		                    IDS_MAX_NAMESPACE_LEN);
	/* The default namespace goes as nil, the short form PROTOCOL.md gives it. */
	if (ns_len == strlen(CODEC_DEFAULT_NAMESPACE) &&
	    memcmp(ns, CODEC_DEFAULT_NAMESPACE, ns_len) == 0)
		ns_len = 0;
	memcpy(c->ns, ns, ns_len);
	c->ns[ns_len] = '\0';
	c->ns_len = ns_len;
	return SESSD_OK;
}

int sessd_set_timeout(struct sessd_client *c, int timeout_ms)
{
	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (timeout_ms < 0)
		return client_error(c, SESSD_ERR_USAGE, "timeout_ms is negative");
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;
	return SESSD_OK;
}

uint32_t sessd_max_frame(const struct sessd_client *c)
{
	return c == NULL ? 0 : c->max_frame;
}

const char *sessd_server_id(const struct sessd_client *c)
{
	return c == NULL ? "" : c->server_id;
}

int sessd_id_new(char out[SESSD_ID_LEN + 1])
{
	if (out == NULL || sodium_init() < 0)
		return SESSD_ERR_USAGE;
	ids_generate(out);
	return SESSD_OK;
}

int sessd_retire_broken(struct sessd_client *c)
{
	int rc;

	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (!c->owes_retire)
		return SESSD_OK;
	/* A new connection retires it before anything else (client_ready). */
	rc = client_ready(c);
	if (rc == SESSD_OK)
		rc = client_retire_owed(c);
	return rc;
}

int sessd_outcome_unknown(const struct sessd_client *c)
{
	return c != NULL && c->outcome_unknown;
}

int sessd_result_lost(const struct sessd_client *c)
{
	return c != NULL && c->result_lost;
}

int sessd_ping(struct sessd_client *c)
{
	struct codec_request req = {.op = CODEC_OP_PING};
	struct call k = {0};

	if (c == NULL)
		return SESSD_ERR_USAGE;
	return call_run(c, &req, &k);
}

/*
 * Clear GET's and LOAD's outputs (either may be NULL), before anything is checked: sessd.h
 * promises them cleared on any result but SESSD_OK, a NULL client's included.
 */
static void clear_data(void **data, size_t *data_len)
{
	if (data != NULL)
		*data = NULL;
	if (data_len != NULL)
		*data_len = 0;
}

/* GET, and LOAD with ${flashes}: the two differ only in the reply. */
static int get_or_load(struct sessd_client *c, const void *id, size_t id_len, void **data,
                       size_t *data_len, uint64_t *flashes)
{
	struct codec_request req = {.op = flashes != NULL ? CODEC_OP_LOAD : CODEC_OP_GET};
	/* LOAD's count goes through a local, as call_number's numbers do: on SESSD_OK only. */
	uint64_t count = 0;
	struct call k = {.data = data, .data_len = data_len, .number = flashes ? &count : NULL};
	int rc;

	clear_data(data, data_len);
	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (data == NULL || data_len == NULL)
		return client_error(c, SESSD_ERR_USAGE,
		                    "no place for the data (data or data_len is NULL)");
	if (!id_ok(id, id_len))
		return client_error(c, SESSD_ERR_USAGE, "an id has 1 to %d bytes", IDS_MAX_ID_LEN);
	set_id(&req, id, id_len);
	rc = call_run(c, &req, &k);
	if (rc == SESSD_OK && flashes != NULL)
		*flashes = count;
	return rc;
}

int sessd_get(struct sessd_client *c, const void *id, size_t id_len, void **data, size_t *data_len)
{
	return get_or_load(c, id, id_len, data, data_len, NULL);
}

int sessd_load(struct sessd_client *c, const void *id, size_t id_len, void **data, size_t *data_len,
               uint64_t *flashes)
{
	clear_data(data, data_len);
	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (flashes == NULL)
		return client_error(c, SESSD_ERR_USAGE,
		                    "no place for the flash count (flashes is NULL)");
	return get_or_load(c, id, id_len, data, data_len, flashes);
}

/* SET, or with ${expect} SET_IF: the checks and the call both share. */
static int set_data(struct sessd_client *c, const void *id, size_t id_len, const void *data,
                    size_t data_len, uint64_t ttl_ms, const uint8_t *expect)
{
	struct codec_request req = {.op = expect != NULL ? CODEC_OP_SET_IF : CODEC_OP_SET,
	                            .ttl_ms = ttl_ms};
	struct call k = {0};

	if (!id_ok(id, id_len))
		return client_error(c, SESSD_ERR_USAGE, "an id has 1 to %d bytes", IDS_MAX_ID_LEN);
	if (data == NULL && data_len > 0)
		return client_error(c, SESSD_ERR_USAGE, "no data");
	if (!ttl_ok(ttl_ms))
		return client_error(c, SESSD_ERR_USAGE, "a ttl is 1 ms to 10 years");
	set_id(&req, id, id_len);
	req.data.ptr = data_len > 0 ? data : (const uint8_t *)"";
	req.data.len = data_len;
	if (expect != NULL) {
		req.expect.ptr = expect;
		req.expect.len = SESSD_TAG_BYTES;
	}
	return call_run(c, &req, &k);
}

int sessd_set(struct sessd_client *c, const void *id, size_t id_len, const void *data,
              size_t data_len, uint64_t ttl_ms)
{
	if (c == NULL)
		return SESSD_ERR_USAGE;
	return set_data(c, id, id_len, data, data_len, ttl_ms, NULL);
}

void sessd_data_tag(const void *data, size_t len, uint8_t tag[SESSD_TAG_BYTES])
{
	if (tag == NULL)
		return;
	/* libsodium must be started before use; sodium_init may be called any number of times. */
	if ((data == NULL && len > 0) || sodium_init() < 0) {
		memset(tag, 0, SESSD_TAG_BYTES);
		return;
	}
	codec_data_tag(data, len, tag);
}

int sessd_set_if(struct sessd_client *c, const void *id, size_t id_len, const void *data,
                 size_t data_len, uint64_t ttl_ms, const uint8_t expect[SESSD_TAG_BYTES])
{
	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (expect == NULL)
		return client_error(c, SESSD_ERR_USAGE, "no tag to expect (expect is NULL)");
	return set_data(c, id, id_len, data, data_len, ttl_ms, expect);
}

/* TOUCH, or with ${expect} TOUCH_IF: the checks and the call both share. */
static int touch_session(struct sessd_client *c, const void *id, size_t id_len, uint64_t ttl_ms,
                         const uint8_t *expect)
{
	struct codec_request req = {.op = expect != NULL ? CODEC_OP_TOUCH_IF : CODEC_OP_TOUCH,
	                            .ttl_ms = ttl_ms};
	struct call k = {0};

	if (!id_ok(id, id_len))
		return client_error(c, SESSD_ERR_USAGE, "an id has 1 to %d bytes", IDS_MAX_ID_LEN);
	if (!ttl_ok(ttl_ms))
		return client_error(c, SESSD_ERR_USAGE, "a ttl is 1 ms to 10 years");
	set_id(&req, id, id_len);
	if (expect != NULL) {
		req.expect.ptr = expect;
		req.expect.len = SESSD_TAG_BYTES;
	}
	return call_run(c, &req, &k);
}

int sessd_touch(struct sessd_client *c, const void *id, size_t id_len, uint64_t ttl_ms)
{
	if (c == NULL)
		return SESSD_ERR_USAGE;
	return touch_session(c, id, id_len, ttl_ms, NULL);
}

int sessd_touch_if(struct sessd_client *c, const void *id, size_t id_len, uint64_t ttl_ms,
                   const uint8_t expect[SESSD_TAG_BYTES])
{
	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (expect == NULL)
		return client_error(c, SESSD_ERR_USAGE, "no tag to expect (expect is NULL)");
	return touch_session(c, id, id_len, ttl_ms, expect);
}

int sessd_destroy(struct sessd_client *c, const void *id, size_t id_len)
{
	struct codec_request req = {.op = CODEC_OP_DESTROY};
	struct call k = {0};

	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (!id_ok(id, id_len))
		return client_error(c, SESSD_ERR_USAGE, "an id has 1 to %d bytes", IDS_MAX_ID_LEN);
	set_id(&req, id, id_len);
	return call_run(c, &req, &k);
}

int sessd_ttl(struct sessd_client *c, const void *id, size_t id_len, uint64_t *ttl_ms)
{
	struct codec_request req = {.op = CODEC_OP_TTL};

	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (ttl_ms == NULL)
		return client_error(c, SESSD_ERR_USAGE, "no place for the ttl (ttl_ms is NULL)");
	if (!id_ok(id, id_len))
		return client_error(c, SESSD_ERR_USAGE, "an id has 1 to %d bytes", IDS_MAX_ID_LEN);
	set_id(&req, id, id_len);
	return call_number(c, &req, ttl_ms);
}

/*
 * Check a flash request's ${id}, ${type} and ${msg} and set them in ${req} (borrowed, as the
 * caller's). Returns SESSD_OK, or SESSD_ERR_USAGE with c->errmsg saying which is wrong.
 */
static int set_flash_message(struct sessd_client *c, struct codec_request *req, const void *id,
                             size_t id_len, const char *type, const void *msg, size_t msg_len)
{
	if (!id_ok(id, id_len))
		return client_error(c, SESSD_ERR_USAGE, "an id has 1 to %d bytes", IDS_MAX_ID_LEN);
	if (!type_ok(type))
		return client_error(c, SESSD_ERR_USAGE, "a flash type has 1 to %d bytes",
		                    IDS_MAX_FLASH_TYPE_LEN);
	if (msg == NULL && msg_len > 0)
		return client_error(c, SESSD_ERR_USAGE, "no message");
	set_id(req, id, id_len);
	req->flash_type.ptr = (const uint8_t *)type;
	req->flash_type.len = strlen(type);
	req->flash_msg.ptr = msg_len > 0 ? msg : (const uint8_t *)"";
	req->flash_msg.len = msg_len;
	return SESSD_OK;
}

/* FLASH_PUSH, or with ${existing} FLASH_PUSH_EXISTING: the checks and the call both share. */
static int flash_push(struct sessd_client *c, bool existing, const void *id, size_t id_len,
                      const char *type, const void *msg, size_t msg_len, uint64_t ttl_ms,
                      size_t *queue_len)
{
	struct codec_request req = {
	    .op = existing ? CODEC_OP_FLASH_PUSH_EXISTING : CODEC_OP_FLASH_PUSH, .ttl_ms = ttl_ms};
	uint64_t queued = 0;
	int rc;

	if (c == NULL)
		return SESSD_ERR_USAGE;
	if ((rc = set_flash_message(c, &req, id, id_len, type, msg, msg_len)) != SESSD_OK)
		return rc;
	if (!ttl_ok(ttl_ms))
		return client_error(c, SESSD_ERR_USAGE, "a ttl is 1 ms to 10 years");
	rc = call_number(c, &req, &queued);
	if (rc == SESSD_OK && queue_len != NULL)
		*queue_len = (size_t)queued;
	return rc;
}

int sessd_flash_push(struct sessd_client *c, const void *id, size_t id_len, const char *type,
                     const void *msg, size_t msg_len, uint64_t ttl_ms, size_t *queue_len)
{
	return flash_push(c, false, id, id_len, type, msg, msg_len, ttl_ms, queue_len);
}

int sessd_flash_push_existing(struct sessd_client *c, const void *id, size_t id_len,
                              const char *type, const void *msg, size_t msg_len, uint64_t ttl_ms,
                              size_t *queue_len)
{
	return flash_push(c, true, id, id_len, type, msg, msg_len, ttl_ms, queue_len);
}

int sessd_destroy_if_flash(struct sessd_client *c, const void *id, size_t id_len, const char *type,
                           const void *msg, size_t msg_len)
{
	struct codec_request req = {.op = CODEC_OP_DESTROY_IF_FLASH};
	struct call k = {0};
	int rc;

	if (c == NULL)
		return SESSD_ERR_USAGE;
	if ((rc = set_flash_message(c, &req, id, id_len, type, msg, msg_len)) != SESSD_OK)
		return rc;
	return call_run(c, &req, &k);
}

int sessd_flash_pop(struct sessd_client *c, const void *id, size_t id_len, const char *type,
                    struct sessd_flashes **out)
{
	struct codec_request req = {.op = CODEC_OP_FLASH_POP};
	struct call k = {.flash_type = type, .flashes = out};

	if (out != NULL)
		*out = NULL;
	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (out == NULL)
		return client_error(c, SESSD_ERR_USAGE, "no place for the messages (out is NULL)");
	if (!id_ok(id, id_len))
		return client_error(c, SESSD_ERR_USAGE, "an id has 1 to %d bytes", IDS_MAX_ID_LEN);
	if (type != NULL && !type_ok(type))
		return client_error(c, SESSD_ERR_USAGE, "a flash type has 1 to %d bytes",
		                    IDS_MAX_FLASH_TYPE_LEN);
	set_id(&req, id, id_len);
	if (type != NULL) {
		req.flash_type.ptr = (const uint8_t *)type;
		req.flash_type.len = strlen(type);
	} else {
		req.flash_all = true;
	}
	return call_run(c, &req, &k);
}

void sessd_flashes_free(struct sessd_flashes *f)
{
	free(f);
}

int sessd_count(struct sessd_client *c, uint64_t *count)
{
	struct codec_request req = {.op = CODEC_OP_COUNT};

	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (count == NULL)
		return client_error(c, SESSD_ERR_USAGE, "no place for the count (count is NULL)");
	return call_number(c, &req, count);
}

/* One page of a paged scan (LIST, NAMESPACES) from ${cursor}; ${k} says where it goes. */
static int call_page(struct sessd_client *c, uint32_t op, uint64_t cursor, unsigned limit,
                     struct call *k)
{
	struct codec_request req = {.op = op, .cursor = cursor};

	/* The server clamps the limit itself; sending it clamped keeps the request valid. */
	req.limit = limit < 1 ? 1 : limit > CODEC_LIST_MAX_LIMIT ? CODEC_LIST_MAX_LIMIT : limit;
	k->list_limit = req.limit;
	return call_run(c, &req, k);
}

int sessd_list(struct sessd_client *c, uint64_t cursor, unsigned limit, struct sessd_list **out)
{
	struct call k = {.list = out};

	if (out != NULL)
		*out = NULL;
	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (out == NULL)
		return client_error(c, SESSD_ERR_USAGE, "no place for the page (out is NULL)");
	return call_page(c, CODEC_OP_LIST, cursor, limit, &k);
}

void sessd_list_free(struct sessd_list *l)
{
	free(l);
}

int sessd_namespaces(struct sessd_client *c, uint64_t cursor, unsigned limit,
                     struct sessd_namespaces **out)
{
	struct call k = {.namespaces = out};

	if (out != NULL)
		*out = NULL;
	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (out == NULL)
		return client_error(c, SESSD_ERR_USAGE, "no place for the page (out is NULL)");
	return call_page(c, CODEC_OP_NAMESPACES, cursor, limit, &k);
}

void sessd_namespaces_free(struct sessd_namespaces *l)
{
	free(l);
}

int sessd_clear(struct sessd_client *c, uint64_t *removed)
{
	struct codec_request req = {.op = CODEC_OP_CLEAR};

	if (c == NULL)
		return SESSD_ERR_USAGE;
	return call_number(c, &req, removed);
}

int sessd_stats(struct sessd_client *c, int whole_server, struct sessd_stats **out)
{
	struct codec_request req = {.op = CODEC_OP_STATS};
	struct call k = {.stats = out};

	if (out != NULL)
		*out = NULL;
	if (c == NULL)
		return SESSD_ERR_USAGE;
	if (out == NULL)
		return client_error(c, SESSD_ERR_USAGE, "no place for the figures (out is NULL)");
	if (whole_server) {
		req.ns_all = true;
	} else if (c->ns_len > 0) {
		req.ns.ptr = (const uint8_t *)c->ns;
		req.ns.len = c->ns_len;
	} else {
		/* For STATS nil means the whole server, so the default namespace is named. */
		req.ns.ptr = (const uint8_t *)CODEC_DEFAULT_NAMESPACE;
		req.ns.len = strlen(CODEC_DEFAULT_NAMESPACE);
	}
	return call_run(c, &req, &k);
}

void sessd_stats_free(struct sessd_stats *s)
{
	free(s);
}
