/*
 * The life of a libsessd connection. A connection is either live and past HELLO, or absent
 * (fd -1); every call starts with client_ready, so a broken connection costs the call that
 * saw it break and nothing more (sessd.h).
 */
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "reply.h"

int client_error(struct sessd_client *c, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return code;
}

void client_drop(struct sessd_client *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
}

uint64_t client_next_id(struct sessd_client *c)
{
	return c->next_request_id++;
}

bool client_status_closes(int status)
{
	return status == SESSD_ERR_BAD_REQUEST || status == SESSD_ERR_TOO_LARGE ||
	       status == SESSD_ERR_NOT_READY || status == SESSD_ERR_BAD_VERSION ||
	       status == SESSD_ERR_AUTH || status == SESSD_ERR_BUSY;
}

int client_check_reply(struct sessd_client *c, const uint8_t *body, size_t len, uint64_t request_id,
                       struct codec_reply *rep)
{
	if (codec_decode_reply(body, len, rep) == -1)
		return client_error(c, SESSD_ERR_PROTOCOL, "the server sent a malformed reply");
	/* Replies come in request order (PROTOCOL.md); the id is the check that they do. A
	 * frame refused unread (TOO_LARGE, or BAD_REQUEST without a readable id) is answered
	 * with id 0 before the server closes. */
	if (rep->request_id != request_id &&
	    !(rep->request_id == 0 && client_status_closes((int)rep->status)))
		return client_error(
		    c, SESSD_ERR_PROTOCOL, "reply for request %llu where %llu was expected",
		    (unsigned long long)rep->request_id, (unsigned long long)request_id);
	if (rep->status == CODEC_OK)
		return SESSD_OK;
	if (rep->status == CODEC_NOT_FOUND) {
		snprintf(c->errmsg, sizeof(c->errmsg), "not found");
		return SESSD_NOT_FOUND;
	}
	if (rep->status > CODEC_STATUS_MAX)
		return client_error(c, SESSD_ERR_PROTOCOL, "unknown status %u from the server",
		                    rep->status);
	return client_error(c, (int)rep->status, "%s: %.*s", codec_status_name(rep->status),
	                    (int)(rep->message.len > 200 ? 200 : rep->message.len),
	                    (const char *)rep->message.ptr);
}

int client_exchange(struct sessd_client *c, const uint8_t *out, size_t out_len, size_t replies,
                    bool idle_timeout, wire_frame_fn on_frame, void *ctx)
{
	struct wire_exchange x = {
	    .fd = c->fd,
	    .out = out,
	    .out_len = out_len,
	    .replies = replies,
	    .max_frame = c->max_frame,
	    .timeout_ms = c->timeout_ms,
	    .idle_timeout = idle_timeout,
	    .in = &c->in,
	    .on_frame = on_frame,
	    .ctx = ctx,
	    .err = c->errmsg,
	    .err_size = sizeof(c->errmsg),
	};
	int rc;

	rc = wire_run(&x);
	if (rc != SESSD_OK)
		client_drop(c);
	return rc;
}

struct hello {
	struct sessd_client *c;
	uint64_t request_id;
	int status;
};

static int hello_on_frame(void *ctx, const uint8_t *body, size_t len)
{
	struct hello *h = ctx;
	struct codec_reply rep;

	h->status = client_check_reply(h->c, body, len, h->request_id, &rep);
	if (h->status == SESSD_NOT_FOUND)
		h->status = client_error(h->c, SESSD_ERR_PROTOCOL, "NOT_FOUND answer to HELLO");
	if (h->status != SESSD_OK)
		return SESSD_OK;
	h->status = reply_hello(&rep.result, &h->c->max_frame, h->c->server_id);
	if (h->status == SESSD_ERR_PROTOCOL)
		client_error(h->c, h->status,
		             "the server's HELLO reply is not one this client reads");
	return SESSD_OK;
}

/* Say HELLO on the fresh connection c->fd. */
static int say_hello(struct sessd_client *c)
{
	struct codec_request req;
	struct hello h = {.c = c, .status = SESSD_ERR_PROTOCOL};
	int rc;

	memset(&req, 0, sizeof(req));
	req.op = CODEC_OP_HELLO;
	req.request_id = h.request_id = client_next_id(c);
	req.version = CODEC_PROTOCOL_VERSION;
	req.client_name.ptr = (const uint8_t *)c->client_name;
	req.client_name.len = strlen(c->client_name);
	buf_reset(&c->out);
	if (codec_encode_request(&c->out, &req) == -1)
		return client_error(c, SESSD_ERR_NOMEM, "out of memory");
	/* Until HELLO names the server's limit, the protocol's smallest max_frame applies;
	 * every reply, HELLO's included, fits in it. */
	c->max_frame = CODEC_MIN_MAX_FRAME;
	rc = client_exchange(c, c->out.data, c->out.len, 1, false, hello_on_frame, &h);
	if (rc != SESSD_OK) {
		/* errmsg already says what broke; say it happened while connecting. */
		char why[CLIENT_ERRMSG_SIZE];

		memcpy(why, c->errmsg, sizeof(why));
		client_error(c, SESSD_ERR_CONNECT, "HELLO failed: %s", why);
		errno = rc == SESSD_ERR_TIMEOUT ? ETIMEDOUT : ECONNRESET;
		return SESSD_ERR_CONNECT;
	}
	if (h.status != SESSD_OK)
		client_drop(c);
	return h.status;
}

/* Whether the idle connection is gone: between calls nothing may arrive on it. */
static bool connection_gone(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	return poll(&pfd, 1, 0) != 0;
}

int client_ready(struct sessd_client *c)
{
	int fd;

	if (c->fd != -1 && !connection_gone(c->fd))
		return SESSD_OK;
	client_drop(c);
	fd = wire_connect(&c->url, wire_now_ms() + c->timeout_ms, c->errmsg, sizeof(c->errmsg));
	if (fd == -1)
		return SESSD_ERR_CONNECT;
	c->fd = fd;
	return say_hello(c);
}
