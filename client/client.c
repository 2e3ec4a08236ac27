/*
 * The life of a libsessd connection. A connection is either live and past HELLO, or absent
 * (fd -1); every call starts with client_ready, so a broken connection costs the call that
 * saw it break and nothing more (sessd.h).
 */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "mp.h"
#include "reply.h"
#include "secretpath.h"

/*
 * The bytes of c->out a HELLO can take, wiped after each: PROTOCOL.md lets a HELLO be no
 * larger than the smallest max_frame, the secret included.
 */
#define CLIENT_HELLO_MAX_BYTES (CODEC_HEADER_BYTES + CODEC_MIN_MAX_FRAME)
/*
 * The most of each reusable buffer (c->out, c->in, c->records) kept between calls: what a
 * request or reply of sessd's default max_frame (1 MiB) grows one to.
 */
#define CLIENT_KEEP_BYTES (2u * 1024u * 1024u)
/*
 * A sealed HELLO's auth (PROTOCOL.md, "Sealed connections"): the map {"kx": bin 32,
 * "proof": bin 32}, written byte by byte as seal-vectors.json's auth_hex has it.
 */
#define CLIENT_KX_AUTH_BYTES (1 + 3 + 2 + SEAL_KEY_BYTES + 6 + 2 + SEAL_PROOF_BYTES)

int client_error(struct sessd_client *c, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	return code;
}

size_t client_put_printable(char *dst, size_t size, size_t at, const void *src, size_t len)
{
	const uint8_t *p = src;

	for (size_t i = 0; i < len && at + 1 < size; i++)
		dst[at++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	dst[at] = '\0';
	return at;
}

/* Keep only the key derived from the ${len} bytes of ${secret}, to seal connections with. */
static int keep_psk(struct sessd_client *c, const void *secret, size_t len)
{
	uint8_t *psk;

	if (sodium_init() < 0 || (psk = sodium_malloc(SEAL_PSK_BYTES)) == NULL) {
		errno = ENOMEM;
		return client_error(c, SESSD_ERR_NOMEM, "no memory for the secret's key");
	}
	seal_psk(psk, secret, len);
	sodium_mprotect_readonly(psk);
	client_forget_secret(c);
	c->psk = psk;
	return SESSD_OK;
}

int client_set_secret(struct sessd_client *c, const void *secret, size_t len)
{
	/* msgpack bin 8 or bin 16, written here rather than with mp_write_bin so the secret goes
	 * straight into guarded memory, never through a growable (reallocated) buffer. */
	size_t header = len <= 0xff ? 2 : 3;
	uint8_t *field;

	if (secret == NULL || len < CLIENT_MIN_SECRET || len > CLIENT_MAX_SECRET) {
		errno = EINVAL;
		return client_error(c, SESSD_ERR_USAGE,
		                    "a secret has %u to %u bytes, as sessd's --auth-file",
		                    CLIENT_MIN_SECRET, CLIENT_MAX_SECRET);
	}
	if (!c->plain_auth)
		return keep_psk(c, secret, len);
	if (sodium_init() < 0 || (field = sodium_malloc(header + len)) == NULL) {
		errno = ENOMEM;
		return client_error(c, SESSD_ERR_NOMEM, "no memory for the secret");
	}
	if (header == 2) {
		field[0] = 0xc4;
		field[1] = (uint8_t)len;
	} else {
		field[0] = 0xc5;
		field[1] = (uint8_t)(len >> 8);
		field[2] = (uint8_t)len;
	}
	memcpy(field + header, secret, len);
	sodium_mprotect_readonly(field);
	client_forget_secret(c);
	c->auth_field = field;
	c->auth_field_len = header + len;
	return SESSD_OK;
}

int client_read_secret_file(struct sessd_client *c, const char *path)
{
	/* Room for the longest secret, its "\r\n", and one byte to notice a longer file. */
	const size_t cap = CLIENT_MAX_SECRET + 3;
	unsigned char *secret = NULL;
	struct stat sb;
	size_t len = 0;
	ssize_t got;
	int fd, rc = SESSD_ERR_USAGE, err;

	/* O_NONBLOCK: a FIFO at ${path} is refused below instead of waiting for a writer. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		err = errno;
		if (!secretpath_shown(path, err))
			client_error(c, rc,
			             "auth file: the %zu-byte value given names no file (%s); not "
			             "shown, as it may be the secret itself: give the path of the "
			             "file that holds the secret",
			             strlen(path), strerror(err));
		else
			client_error(c, rc, "auth file %s: %s", path, strerror(err));
		goto fail;
	}
	if (fstat(fd, &sb) == -1) {
		err = errno;
		client_error(c, rc, "auth file %s: %s", path, strerror(err));
		goto fail_close;
	}
	err = EINVAL;
	if (!S_ISREG(sb.st_mode)) {
		client_error(c, rc, "auth file %s: not a regular file", path);
		goto fail_close;
	}
	/* The daemon refuses such a file too: a secret other users can read guards nothing. */
	err = EPERM;
	if ((sb.st_mode & 0007) != 0) {
		client_error(c, rc, "auth file %s: other users can access it, so it guards nothing",
		             path);
		goto fail_close;
	}
	if (sodium_init() < 0 || (secret = sodium_malloc(cap)) == NULL) {
		rc = SESSD_ERR_NOMEM;
		err = ENOMEM;
		client_error(c, rc, "auth file %s: no memory to read it into", path);
		goto fail_close;
	}
	for (;;) {
		got = read(fd, secret + len, cap - len);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			err = errno;
			client_error(c, rc, "auth file %s: %s", path, strerror(err));
			goto fail_free;
		}
		if (got == 0)
			break;
		len += (size_t)got;
		if (len == cap)
			goto fail_length;
	}
	/* One trailing newline, as daemon/auth.c strips it. */
	if (len > 0 && secret[len - 1] == '\n') {
		len--;
		if (len > 0 && secret[len - 1] == '\r')
			len--;
	}
	if (len < CLIENT_MIN_SECRET || len > CLIENT_MAX_SECRET)
		goto fail_length;
	rc = client_set_secret(c, secret, len);
	err = errno;
	if (rc != SESSD_OK)
		goto fail_free;
	sodium_free(secret);
	close(fd);
	return SESSD_OK;

fail_length:
	err = EINVAL;
	client_error(c, rc,
	             "auth file %s: the secret must be %u to %u bytes, less one trailing newline",
	             path, CLIENT_MIN_SECRET, CLIENT_MAX_SECRET);
fail_free:
	sodium_free(secret);
fail_close:
	close(fd);
fail:
	errno = err;
	return rc;
}

void client_forget_secret(struct sessd_client *c)
{
	sodium_free(c->auth_field);
	c->auth_field = NULL;
	c->auth_field_len = 0;
	sodium_free(c->psk);
	c->psk = NULL;
}

bool client_has_secret(const struct sessd_client *c)
{
	return c->auth_field != NULL || c->psk != NULL;
}

/*
 * Give up ${c}'s connection after a timeout: over TCP with a reset, not a close. A stalled
 * server that wakes carries out what a closed connection left in its socket (it cannot tell
 * a close from a client that only stopped sending), a FLASH_POP too, whose messages would go
 * with a reply nobody reads. A reset it sees: it finds the client gone and drops its reads
 * and pops (its changes still run: PROTOCOL.md, "A client that has gone"). A Unix socket's
 * close is seen as one; the option does nothing there.
 */
static void abandon(struct sessd_client *c)
{
	struct linger reset_on_close = {.l_onoff = 1, .l_linger = 0};

	if (c->fd != -1)
		(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &reset_on_close,
		                 sizeof(reset_on_close));
	client_drop(c);
}

/*
 * Whether c->fd is still the socket c opened. In the opening process it is (the application
 * must leave it alone); in a fork's child it is while the child has not closed that number or
 * put something else there.
 */
static bool fd_still_ours(const struct sessd_client *c)
{
	struct stat st;

	if (c->pid == getpid())
		return true;
	return fstat(c->fd, &st) == 0 && st.st_dev == c->fd_dev && st.st_ino == c->fd_ino;
}

void client_drop(struct sessd_client *c)
{
	if (c->fd != -1 && fd_still_ours(c))
		close(c->fd);
	c->fd = -1;
	/* A seal belongs to one connection: its keys and record numbers die with it. */
	seal_free(c->seal);
	c->seal = NULL;
	c->sealed = false;
	c->spoke = false;
}

void client_trim(struct sessd_client *c)
{
	/* The frame of a large SET is a copy of the caller's data, and a large reply is copied
	 * out to the caller: neither is of use past its call. (Not called within a HELLO, whose
	 * frame say_hello wipes first.) */
	if (c->out.cap > CLIENT_KEEP_BYTES)
		buf_finish(&c->out);
	if (c->in.cap > CLIENT_KEEP_BYTES)
		buf_finish(&c->in);
}

uint64_t client_next_id(struct sessd_client *c)
{
	return c->next_request_id++;
}

bool client_status_closes(int status)
{
	return status == SESSD_ERR_BAD_REQUEST || status == SESSD_ERR_TOO_LARGE ||
	       status == SESSD_ERR_NOT_READY || status == SESSD_ERR_BAD_VERSION ||
	       status == SESSD_ERR_AUTH || status == SESSD_ERR_BUSY ||
	       status == SESSD_ERR_SHUTTING_DOWN;
}

/* The ops PROTOCOL.md lets answer NOT_FOUND; to any other it is a server fault. */
static bool op_may_be_not_found(uint32_t op)
{
	return op == CODEC_OP_GET || op == CODEC_OP_SET_IF || op == CODEC_OP_TOUCH ||
	       op == CODEC_OP_TOUCH_IF || op == CODEC_OP_DESTROY || op == CODEC_OP_TTL ||
	       op == CODEC_OP_LOAD || op == CODEC_OP_FLASH_POP ||
	       op == CODEC_OP_FLASH_PUSH_EXISTING || op == CODEC_OP_DESTROY_IF_FLASH;
}

/*
 * Words for the server's error ${status}: its name and the start of its ${message}. The
 * message is for people and may reach a terminal (sessctl), so bytes outside printable ASCII
 * (escapes, newlines, NULs) become '?'. Returns ${status}.
 */
static int server_error(struct sessd_client *c, uint32_t status, const struct mp_bytes *message)
{
	size_t at, n = message->len > 200 ? 200 : message->len;

	at = (size_t)snprintf(c->errmsg, sizeof(c->errmsg), "%s: ", codec_status_name(status));
	client_put_printable(c->errmsg, sizeof(c->errmsg), at, message->ptr, n);
	return (int)status;
}

int client_check_reply(struct sessd_client *c, const uint8_t *body, size_t len, uint32_t op,
                       uint64_t request_id, struct codec_reply *rep)
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
	/* codec_decode_reply has checked that a NOT_FOUND's result is nil. */
	if (rep->status == CODEC_NOT_FOUND) {
		if (!op_may_be_not_found(op))
			return client_error(c, SESSD_ERR_PROTOCOL, "NOT_FOUND answer to %s",
			                    codec_op_name(op));
		snprintf(c->errmsg, sizeof(c->errmsg), "not found");
		return SESSD_NOT_FOUND;
	}
	if (rep->status > CODEC_STATUS_MAX)
		return client_error(c, SESSD_ERR_PROTOCOL, "unknown status %u from the server",
		                    rep->status);
	/* sessd.h promises CONFLICT from these only: a caller that retries on it must not spin
	 * on a faulty server's CONFLICT to a GET. */
	if (rep->status == CODEC_CONFLICT && op != CODEC_OP_SET_IF && op != CODEC_OP_TOUCH_IF &&
	    op != CODEC_OP_DESTROY_IF_FLASH)
		return client_error(c, SESSD_ERR_PROTOCOL, "CONFLICT answer to %s",
		                    codec_op_name(op));
	return server_error(c, rep->status, &rep->message);
}

/* An exchange's frame callback, seen through goodbye_on_frame. */
struct goodbye_watch {
	struct sessd_client *c;
	wire_frame_fn on_frame;
	void *ctx;
	size_t answered; /* replies handed to on_frame */
	size_t accepted; /* of them, those on_frame took (not a malformed one) */
	/* A BUSY with request id 0 came, as the reply to request busy_at: the server closes,
	 * and that request and those after it may or may not have been carried out (PROTOCOL.md,
	 * "Statuses"). */
	bool busy;
	size_t busy_at;
};

/*
 * The request id and status at the head of the reply ${body} (${len} bytes), read by value:
 * PROTOCOL.md lets a uint take any of msgpack's integer forms (a server should write the
 * shortest, and sessd does), and the decoder takes them all. Returns 0, or -1 when the body
 * does not begin as a reply does (client_check_reply then says what is wrong with it).
 */
static int reply_head(const uint8_t *body, size_t len, uint64_t *request_id, uint64_t *status)
{
	struct mp_reader r;
	uint32_t n;

	mp_reader_init(&r, body, len);
	if (mp_read_array(&r, &n) == -1 || n != 3 || mp_read_uint(&r, request_id) == -1 ||
	    mp_read_uint(&r, status) == -1)
		return -1;
	return 0;
}

/*
 * A stopping server's last frame, SHUTTING_DOWN with request id 0 (which libsessd never uses
 * for a request), answers none of the requests: it says that every one still without a reply
 * was not carried out. So it ends the exchange, and each of them fails with it, rather than
 * being taken as the reply of the oldest. A BUSY (request id 0 from sessd; any, from a server
 * that strays) leaves the requests without a reply "may or may not" (PROTOCOL.md, "Statuses"):
 * noted here, for client_exchange. Both are read by value: before, only sessd's own shortest
 * form (fixarray 3, 0, 13) was seen as BUSY, and a BUSY in a longer one reached the call as an
 * ordinary answer, which said a change was not carried out when it may have been.
 */
static int goodbye_on_frame(void *ctx, const uint8_t *body, size_t len)
{
	struct goodbye_watch *w = ctx;
	struct codec_reply rep;
	uint64_t request_id, status;
	int rc;

	if (reply_head(body, len, &request_id, &status) == 0) {
		if (request_id == 0 && status == CODEC_SHUTTING_DOWN &&
		    codec_decode_reply(body, len, &rep) == 0) {
			server_error(w->c, rep.status, &rep.message);
			return SESSD_ERR_SHUTTING_DOWN;
		}
		if (status == CODEC_BUSY && !w->busy) {
			w->busy = true;
			w->busy_at = w->answered;
		}
	}
	w->answered++;
	rc = w->on_frame(w->ctx, body, len);
	if (rc == SESSD_OK)
		w->accepted++;
	return rc;
}

/*
 * Whether one of the whole frames at ${out} (${len} bytes of our own requests), from the
 * ${from}th on, is a change whose last byte is among the first ${sent} bytes: a request whose
 * outcome matters if it is carried out unseen or late (PROTOCOL.md, "RETIRE").
 */
static bool change_among(const uint8_t *out, size_t len, size_t from, size_t sent)
{
	struct mp_reader r;
	uint32_t n, elements;
	uint64_t op;

	for (size_t at = 0, i = 0; len - at >= CODEC_HEADER_BYTES;
	     at += CODEC_HEADER_BYTES + n, i++) {
		n = codec_frame_length(out + at);
		if (n > len - at - CODEC_HEADER_BYTES || CODEC_HEADER_BYTES + n > sent - at)
			break;
		if (i < from)
			continue;
		mp_reader_init(&r, out + at + CODEC_HEADER_BYTES, n);
		if (mp_read_array(&r, &elements) == -1 || mp_read_uint(&r, &op) == -1)
			continue;
		if (op <= UINT32_MAX && codec_op_changes((uint32_t)op))
			return true;
	}
	return false;
}

/*
 * The bytes of plaintext that whole records among the first ${sent} bytes of c->records
 * carried: the server opens a record only once all of it has come.
 */
static size_t sealed_plain_sent(const struct sessd_client *c, size_t sent)
{
	size_t at = 0, plain = 0, size;

	while (sent - at >= SEAL_HEADER_BYTES && c->records.len - at >= SEAL_HEADER_BYTES) {
		size = seal_record_size(c->records.data + at);
		if (size == 0 || size > sent - at)
			break;
		plain += size - SEAL_OVERHEAD;
		at += size;
	}
	return plain;
}

void client_call_starts(struct sessd_client *c)
{
	c->outcome_unknown = false;
	c->result_lost = false;
}

int client_exchange(struct sessd_client *c, const uint8_t *out, size_t out_len, size_t replies,
                    wire_frame_fn on_frame, void *ctx)
{
	struct goodbye_watch watch = {.c = c, .on_frame = on_frame, .ctx = ctx};
	struct wire_exchange x = {
	    .fd = c->fd,
	    .out = out,
	    .out_len = out_len,
	    .replies = replies,
	    .max_frame = c->max_frame,
	    .timeout_ms = c->timeout_ms,
	    .in = &c->in,
	    .records_after = c->seal != NULL && !c->sealed,
	    .on_frame = goodbye_on_frame,
	    .ctx = &watch,
	    .err = c->errmsg,
	    .err_size = sizeof(c->errmsg),
	};
	bool first = c->sealed && !c->spoke, lost;
	size_t plain_sent;
	int rc;

	c->resendable = false;
	if (c->sealed) {
		/* Everything sent in one go is sealed in one go: a batch of small requests
		 * fills each record (SEAL_MAX_PLAIN) rather than costing one per request. */
		buf_reset(&c->records);
		if (seal_append_all(c->seal, &c->records, out, out_len) == -1) {
			/* Whole records may have used up numbers: the connection cannot go on. */
			rc = errno == ENOMEM ? SESSD_ERR_NOMEM : SESSD_ERR_CLOSED;
			client_error(c, rc, "cannot seal the request: %s", strerror(errno));
			client_drop(c);
			return rc;
		}
		x.out = c->records.data;
		x.out_len = c->records.len;
		x.seal = c->seal;
		x.raw = &c->raw;
		c->spoke = true;
	}
	rc = wire_run(&x);
	c->resendable = rc == SESSD_ERR_SHUTTING_DOWN && first && watch.answered == 0;
	/* A change that left whole and got no usable reply may have been carried out; one cut
	 * short (a full socket, a peer gone at once) cannot have been. A BUSY as the first reply
	 * to a sealed connection's first record (no RETIRE before it) is sessd turning a newcomer
	 * away as that record proves the secret: it carried out none. A plain newcomer is turned
	 * away in place of the HELLO's reply (say_hello), so a BUSY to a request on a plain
	 * connection, or after other replies, is the --max-client-memory eviction, which drops the
	 * replies of requests it carried out (PROTOCOL.md, "Errors that close"). */
	lost = rc == SESSD_ERR_TIMEOUT || rc == SESSD_ERR_CLOSED || rc == SESSD_ERR_PROTOCOL ||
	       rc == SESSD_ERR_NOMEM || (watch.busy && !(first && watch.busy_at == 0));
	plain_sent = c->sealed ? sealed_plain_sent(c, x.sent) : x.sent;
	if (lost &&
	    change_among(out, out_len, watch.busy ? watch.busy_at : watch.accepted, plain_sent))
		c->outcome_unknown = true;
	/* Broken or given up on with a change in flight: a record of it held on the path could
	 * still be carried out, after later calls. The connection is retired before the next
	 * call sends anything (client_ready). Reads (and a RETIRE) carried out late change
	 * nothing, nor does a change whose record never left whole: the rest of it will never
	 * come (the connection is dropped or reset below), and sessd opens whole records only. */
	if (c->sealed &&
	    (rc == SESSD_ERR_TIMEOUT || rc == SESSD_ERR_CLOSED || rc == SESSD_ERR_PROTOCOL) &&
	    change_among(out, out_len, 0, plain_sent)) {
		memcpy(c->owed_key, c->server_key, sizeof(c->owed_key));
		c->owes_retire = true;
	}
	/* After a goodbye the next call must reconnect, not wait on a closing stream. */
	if (rc == SESSD_ERR_TIMEOUT)
		abandon(c);
	else if (rc != SESSD_OK || x.goodbye_after || x.after_last)
		client_drop(c);
	/* The records of a large SET or batch are a copy of it: not kept past their use. */
	if (c->records.cap > CLIENT_KEEP_BYTES)
		buf_finish(&c->records);
	return rc;
}

bool client_resend_ready(struct sessd_client *c)
{
	char why[CLIENT_ERRMSG_SIZE];
	int saved = errno;

	if (!c->resendable)
		return false;
	c->resendable = false;
	memcpy(why, c->errmsg, sizeof(why));
	if (client_ready(c) == SESSD_OK)
		return true;
	/* sessd is stopping after all (or gone): the call fails as the SHUTTING_DOWN said. */
	memcpy(c->errmsg, why, sizeof(why));
	errno = saved;
	return false;
}

/* One request alone in its exchange (a RETIRE, sessd_connect's PING), for its on_frame: the
 * client, the request's id, and the status its reply gave. */
struct lone_request {
	struct sessd_client *c;
	uint64_t request_id;
	int status;
};

static int retire_on_frame(void *ctx, const uint8_t *body, size_t len)
{
	struct lone_request *r = ctx;
	struct codec_reply rep;
	struct mp_reader mr;
	bool closed;

	r->status = client_check_reply(r->c, body, len, CODEC_OP_RETIRE, r->request_id, &rep);
	if (r->status != SESSD_OK)
		return SESSD_OK;
	mp_reader_init(&mr, rep.result.ptr, rep.result.len);
	if (mp_read_bool(&mr, &closed) == -1 || mp_reader_left(&mr) != 0)
		r->status = client_error(r->c, SESSD_ERR_PROTOCOL, "RETIRE's result is not a bool");
	return SESSD_OK;
}

int client_retire_owed(struct sessd_client *c)
{
	struct codec_request req;
	struct lone_request r = {.c = c, .status = SESSD_ERR_PROTOCOL};
	char why[CLIENT_ERRMSG_SIZE];
	int rc;

	if (!c->owes_retire)
		return SESSD_OK;
	memset(&req, 0, sizeof(req));
	req.op = CODEC_OP_RETIRE;
	req.request_id = r.request_id = client_next_id(c);
	req.retire_key.ptr = c->owed_key;
	req.retire_key.len = sizeof(c->owed_key);
	buf_reset(&c->out);
	if (codec_encode_request(&c->out, &req) == -1) {
		client_drop(c);
		return client_error(c, SESSD_ERR_NOMEM, "out of memory");
	}
	rc = client_exchange(c, c->out.data, c->out.len, 1, retire_on_frame, &r);
	if (rc == SESSD_OK && r.status == SESSD_ERR_UNKNOWN_OP)
		r.status = SESSD_OK; /* an older sessd: nothing can be retired (PROTOCOL.md) */
	if (rc == SESSD_OK && r.status == SESSD_OK) {
		c->owes_retire = false;
		return SESSD_OK;
	}
	rc = rc != SESSD_OK ? rc : r.status;
	client_drop(c);
	memcpy(why, c->errmsg, sizeof(why));
	return client_error(c, rc,
	                    "cannot retire the connection that broke under an earlier call (what "
	                    "it sent may still be carried out): %s",
	                    why);
}

struct hello {
	struct sessd_client *c;
	uint64_t request_id;
	int status;
	int auth_errno; /* SESSD_ERR_AUTH: EACCES the server refused us, EPERM we refused it */
};

/*
 * Finish c's key exchange with the HELLO reply ${hello} (PROTOCOL.md, "Sealed connections",
 * step 4). Returns NULL when the server proved it holds the secret, else why it did not. No
 * key material reaches the words.
 */
static const char *finish_seal(struct sessd_client *c, const struct reply_hello *hello)
{
	uint8_t server_public[SEAL_KEY_BYTES], server_proof[SEAL_PROOF_BYTES];

	if (!hello->has_kx)
		return "its HELLO reply has no kx";
	if (!hello->auth)
		return "its HELLO reply lacks auth: true";
	if (reply_hello_kx(&hello->kx, server_public, server_proof) != SESSD_OK)
		return "its kx is not a map of key and proof, bin of 32 bytes each";
	if (seal_client_finish(c->seal, server_public, server_proof) == -1)
		return "its proof is wrong";
	memcpy(c->server_key, server_public, sizeof(c->server_key));
	return NULL;
}

static int hello_on_frame(void *ctx, const uint8_t *body, size_t len)
{
	struct hello *h = ctx;
	struct sessd_client *c = h->c;
	struct codec_reply rep;
	struct reply_hello hello;
	const char *why;

	h->status = client_check_reply(c, body, len, CODEC_OP_HELLO, h->request_id, &rep);
	if (h->status == SESSD_ERR_AUTH) {
		/* The server's own words follow ours; it never echoes the secret (PROTOCOL.md). */
		char said[CLIENT_ERRMSG_SIZE];

		memcpy(said, c->errmsg, sizeof(said));
		client_error(c, h->status, "%s (%s)",
		             client_has_secret(c)
		                 ? "the server refused the secret"
		                 : "the server requires a secret and none was given",
		             said);
		h->auth_errno = EACCES;
	}
	if (h->status != SESSD_OK)
		return SESSD_OK;
	h->status = reply_hello(&rep.result, &hello, &why);
	if (h->status != SESSD_OK) {
		client_error(c, h->status, "the server's HELLO reply is unusable: %s", why);
		return SESSD_OK;
	}
	/* An impostor's word on anything else is worth nothing: its proof comes first. */
	if (c->seal != NULL && (why = finish_seal(c, &hello)) != NULL) {
		h->status = SESSD_ERR_AUTH;
		h->auth_errno = EPERM;
		client_error(c, h->status, "the server did not prove it holds the secret: %s", why);
		return SESSD_OK;
	}
	/* Requests are sized by max_frame and replies checked against it: without it, or
	 * under the protocol's least, this client cannot work with the server. */
	h->status = SESSD_ERR_PROTOCOL;
	if (!hello.has_max_frame) {
		client_error(c, h->status, "the server's HELLO reply has no max_frame");
	} else if (hello.max_frame < CODEC_MIN_MAX_FRAME) {
		client_error(c, h->status,
		             "the server's HELLO announces max_frame %llu, under the protocol's "
		             "least of %u",
		             (unsigned long long)hello.max_frame, CODEC_MIN_MAX_FRAME);
	} else if (c->require_auth && !hello.auth) {
		/* A server that lets anyone in: the caller asked not to trust it with sessions.
		 * (A sealed one has said auth: true, and proved it, above.) */
		h->status = SESSD_ERR_AUTH;
		h->auth_errno = EPERM;
		client_error(
		    c, h->status,
		    "the server did not check the secret (its HELLO reply lacks auth: true) "
		    "and require_auth is set");
	} else {
		c->max_frame = hello.max_frame > CLIENT_MAX_FRAME ? CLIENT_MAX_FRAME
		                                                  : (uint32_t)hello.max_frame;
		memcpy(c->server_id, hello.server_id, sizeof(c->server_id));
		h->status = SESSD_OK;
	}
	return SESSD_OK;
}

/*
 * Start the key exchange of c's new connection: a fresh seal in c->seal (the last one's is
 * freed), and HELLO's auth for it in ${auth}: {"kx": public key, "proof": proof of the psk}.
 * Returns 0, or -1 with errno ENOMEM.
 */
static int start_seal(struct sessd_client *c, uint8_t auth[CLIENT_KX_AUTH_BYTES])
{
	static const uint8_t kx_key[] = {0x82, 0xa2, 'k', 'x', 0xc4, SEAL_KEY_BYTES};
	static const uint8_t proof_key[] = {0xa5, 'p', 'r', 'o', 'o', 'f', 0xc4, SEAL_PROOF_BYTES};
	uint8_t *public_at = auth + sizeof(kx_key);
	uint8_t *proof_at = public_at + SEAL_KEY_BYTES + sizeof(proof_key);

	_Static_assert(sizeof(kx_key) + SEAL_KEY_BYTES + sizeof(proof_key) + SEAL_PROOF_BYTES ==
	                   CLIENT_KX_AUTH_BYTES,
	               "the auth map's layout");
	seal_free(c->seal);
	c->seal = seal_client_new(c->psk, public_at, proof_at);
	if (c->seal == NULL)
		return -1;
	memcpy(auth, kx_key, sizeof(kx_key));
	memcpy(public_at + SEAL_KEY_BYTES, proof_key, sizeof(proof_key));
	return 0;
}

/*
 * The errno of a HELLO that ${h} failed (sessd.h, sessd_connect), for every code: what was
 * there before comes from some step inside the library and means nothing to the caller.
 */
static int hello_errno(const struct hello *h)
{
	switch (h->status) {
	case SESSD_ERR_PROTOCOL:
		return EPROTO;
	case SESSD_ERR_AUTH:
		return h->auth_errno;
	case SESSD_ERR_BUSY:
		return EAGAIN; /* the server is full for now: try again later */
	case SESSD_ERR_BAD_VERSION:
		return EPROTONOSUPPORT;
	default:
		return ECONNREFUSED; /* any other status the server refused the HELLO with */
	}
}

/* How many of the first bytes of a misframed HELLO reply the words show. */
#define CLIENT_MISFRAMED_SHOWN 16

/*
 * The HELLO exchange failed wire_run's framing checks (c->errmsg says which: an empty frame,
 * one over the protocol's least max_frame that a HELLO reply fits in, bytes after it): the
 * peer does not speak sessd's framing, most often another service on the port (a web server,
 * Redis). That is a reply this client cannot use, not a connection that broke. The exchange
 * dropped the connection; c->in still holds what arrived, the start of it shown when it is
 * what failed. Returns SESSD_ERR_PROTOCOL with errno EPROTO.
 */
static int hello_misframed(struct sessd_client *c)
{
	char why[CLIENT_ERRMSG_SIZE];
	size_t at;

	memcpy(why, c->errmsg, sizeof(why));
	at = (size_t)snprintf(c->errmsg, sizeof(c->errmsg),
	                      "the server's HELLO reply is unusable: %s", why);
	if (at < sizeof(c->errmsg) - 1 && c->in.len >= CODEC_HEADER_BYTES &&
	    codec_frame_length(c->in.data) > CODEC_MIN_MAX_FRAME) {
		at += (size_t)snprintf(c->errmsg + at, sizeof(c->errmsg) - at, "; it began \"");
		if (at < sizeof(c->errmsg) - 1)
			at = client_put_printable(c->errmsg, sizeof(c->errmsg), at, c->in.data,
			                          c->in.len < CLIENT_MISFRAMED_SHOWN
			                              ? c->in.len
			                              : CLIENT_MISFRAMED_SHOWN);
		if (at < sizeof(c->errmsg) - 1)
			snprintf(c->errmsg + at, sizeof(c->errmsg) - at,
			         "\" (another service on that port?)");
	}
	errno = EPROTO;
	return SESSD_ERR_PROTOCOL;
}

/*
 * This process's identity for HELLO (PROTOCOL.md, HELLO: the process identity), into ${out}:
 * "PID.NONCE", the pid and a random 32-bit value drawn once per process, so that a process
 * restarted under a reused pid, and a fork's child, which has a pid of its own, state another
 * identity. pid and nonce are kept in one atomic word: a fork's child that finds its parent's
 * pid there draws its own, threads of one process connecting at once agree on one nonce (the
 * first stored), and no lock is held across a fork. Returns the identity's length.
 */
static size_t process_identity(char out[CLIENT_PROCESS_ID_BYTES])
{
	static _Atomic uint64_t pid_and_nonce;
	uint64_t pid = (uint32_t)getpid(), seen = atomic_load(&pid_and_nonce), mine;
	int n;

	if (seen >> 32 != pid) {
		mine = pid << 32 | randombytes_random();
		if (atomic_compare_exchange_strong(&pid_and_nonce, &seen, mine))
			seen = mine;
		/* Lost the race: another thread of this process stored its nonce first. */
		else if (seen >> 32 != pid)
			seen = mine;
	}
	n = snprintf(out, CLIENT_PROCESS_ID_BYTES, "%u.%08x", (unsigned)pid,
	             (unsigned)(uint32_t)seen);
	return n > 0 ? (size_t)n : 0;
}

/*
 * The client_name HELLO carries, into ${out}: the name for people, a NUL, and this process's
 * identity (PROTOCOL.md, HELLO), the name cut short if the three would pass the 64 bytes the
 * field may hold (the identity is what sessd uses; the name it does not). A C string holds
 * no NUL, so the first one is the separator. Returns the length.
 */
static size_t hello_name(const struct sessd_client *c, uint8_t out[CLIENT_HELLO_NAME_BYTES])
{
	char id[CLIENT_PROCESS_ID_BYTES];
	size_t id_len = process_identity(id), name_len = strlen(c->client_name);

	if (name_len > CLIENT_HELLO_NAME_BYTES - 1 - id_len)
		name_len = CLIENT_HELLO_NAME_BYTES - 1 - id_len;
	memcpy(out, c->client_name, name_len);
	out[name_len] = '\0';
	memcpy(out + name_len + 1, id, id_len);
	return name_len + 1 + id_len;
}

/*
 * Say HELLO on the fresh connection c->fd: with c->psk a key exchange, after which the
 * connection is sealed; with c->auth_field the secret as it is. On any failure the connection
 * is dropped, so that no request can follow a HELLO that did not succeed.
 */
static int say_hello(struct sessd_client *c)
{
	uint8_t kx_auth[CLIENT_KX_AUTH_BYTES], name[CLIENT_HELLO_NAME_BYTES];
	struct codec_request req;
	struct hello h = {.c = c, .status = SESSD_ERR_PROTOCOL};
	/* What sessd_max_frame says and batches are sized by until a HELLO succeeds: a failed
	 * reconnection keeps the last server's limit, as it keeps its server_id (sessd.h). */
	uint32_t known_max_frame = c->max_frame;
	int rc;

	memset(&req, 0, sizeof(req));
	req.op = CODEC_OP_HELLO;
	req.request_id = h.request_id = client_next_id(c);
	req.version = CODEC_PROTOCOL_VERSION;
	req.client_name.ptr = name;
	req.client_name.len = hello_name(c, name);
	if (c->psk != NULL) {
		if (start_seal(c, kx_auth) == -1)
			goto fail_nomem;
		req.auth.ptr = kx_auth;
		req.auth.len = sizeof(kx_auth);
	} else if (c->auth_field != NULL) {
		req.auth.ptr = c->auth_field;
		req.auth.len = c->auth_field_len;
	}
	buf_reset(&c->out);
	rc = codec_encode_request(&c->out, &req);
	if (rc == 0) {
		/* Until HELLO names the server's limit, the protocol's smallest max_frame
		 * applies; every reply, HELLO's included, fits in it. */
		c->max_frame = CODEC_MIN_MAX_FRAME;
		rc = client_exchange(c, c->out.data, c->out.len, 1, hello_on_frame, &h);
		if (rc != SESSD_OK || h.status != SESSD_OK)
			c->max_frame = known_max_frame;
	}
	/* The frame held the secret (whole, or in part when encoding failed): wipe it, so a
	 * later realloc of c->out cannot leave a copy in freed memory. A sealed HELLO holds
	 * nothing secret (a public key and a proof, sent in the clear). */
	if (c->auth_field != NULL && c->out.cap > 0)
		sodium_memzero(c->out.data, c->out.cap < CLIENT_HELLO_MAX_BYTES
		                                ? c->out.cap
		                                : CLIENT_HELLO_MAX_BYTES);
	/* No memory for the reply is the client's want, not a HELLO the server failed. */
	if (rc == -1 || rc == SESSD_ERR_NOMEM)
		goto fail_nomem;
	if (rc == SESSD_ERR_PROTOCOL)
		return hello_misframed(c);
	if (rc != SESSD_OK) {
		/* errmsg already says what broke; say it happened while connecting. The
		 * exchange dropped the connection. */
		char why[CLIENT_ERRMSG_SIZE];

		memcpy(why, c->errmsg, sizeof(why));
		client_error(c, SESSD_ERR_CONNECT, "%s: %s",
		             rc == SESSD_ERR_TIMEOUT ? "HELLO timed out" : "HELLO failed", why);
		errno = rc == SESSD_ERR_TIMEOUT ? ETIMEDOUT : ECONNRESET;
		return SESSD_ERR_CONNECT;
	}
	if (h.status != SESSD_OK) {
		/* Nothing more goes to a server that refused the HELLO or failed its checks. */
		client_drop(c);
		errno = hello_errno(&h);
		return h.status;
	}
	if (c->fd == -1) {
		/* A server stopping just after it answered sends its SHUTTING_DOWN right behind
		 * the reply (on a sealed connection in a record, not opened: sessd sends one
		 * there only as it closes), and client_exchange has dropped the connection: no
		 * request can go, as after a HELLO answered SHUTTING_DOWN. (A caller that went on
		 * would send on no socket and wait out its timeout.) */
		errno = ECONNRESET;
		return client_error(c, SESSD_ERR_CONNECT,
		                    "HELLO failed: the server sent SHUTTING_DOWN right after its "
		                    "HELLO reply (it is stopping)");
	}
	/* From the byte after the HELLO reply, both ways are records. */
	c->sealed = c->seal != NULL;
	return SESSD_OK;

fail_nomem:
	client_drop(c);
	errno = ENOMEM;
	return client_error(c, SESSD_ERR_NOMEM, "out of memory");
}

/* Whether the idle connection is gone: between calls nothing may arrive on it. */
static bool connection_gone(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	return poll(&pfd, 1, 0) != 0;
}

/*
 * Put "cannot connect to URL: " before the words in c->errmsg: a connection that failed says
 * where it went, for sessd_connect and for a later call's reconnection alike. Returns ${rc},
 * errno untouched.
 */
static int connect_failed(struct sessd_client *c, int rc)
{
	char why[CLIENT_ERRMSG_SIZE], where[URL_MAX_TEXT];
	int saved = errno;

	memcpy(why, c->errmsg, sizeof(why));
	url_format(&c->url, where, sizeof(where));
	client_error(c, rc, "cannot connect to %s: %s", where, why);
	errno = saved;
	return rc;
}

int client_ready(struct sessd_client *c)
{
	pid_t pid = getpid();
	struct stat st;
	int fd, rc;

	if (c->fd != -1 && c->pid == pid && !connection_gone(c->fd))
		return SESSD_OK;
	/* In a fork's child the connection is the parent's, which goes on using it: two
	 * processes writing to one stream interleave their frames, and sealed they would seal
	 * different records under the same keys and record numbers (one nonce, two plaintexts).
	 * client_drop only closes this process's reference (close() sends nothing while the
	 * parent holds the socket; shutdown() would end it for both) and wipes this copy of the
	 * seal (seal_free), so the child starts afresh as after a connection the server closed. */
	client_drop(c);
	fd = wire_connect(&c->url, wire_now_ms() + c->timeout_ms, c->errmsg, sizeof(c->errmsg));
	if (fd == -1)
		return connect_failed(c, errno == ENOMEM ? SESSD_ERR_NOMEM : SESSD_ERR_CONNECT);
	c->fd = fd;
	c->pid = pid;
	if (fstat(fd, &st) == 0) {
		c->fd_dev = st.st_dev;
		c->fd_ino = st.st_ino;
	}
	rc = say_hello(c);
	if (rc == SESSD_OK)
		rc = client_retire_owed(c);
	if (rc != SESSD_OK)
		return connect_failed(c, rc);
	return SESSD_OK;
}

/* The reply to the PING by which sessd_connect's sealed connection shows the secret. */
static int first_ping_on_frame(void *ctx, const uint8_t *body, size_t len)
{
	struct lone_request *p = ctx;
	struct codec_reply rep;

	p->status = client_check_reply(p->c, body, len, CODEC_OP_PING, p->request_id, &rep);
	if (p->status == SESSD_OK && reply_nil(&rep.result) != SESSD_OK)
		p->status = client_error(p->c, SESSD_ERR_PROTOCOL, "PING's result is not nil");
	/* A malformed reply: the stream can no longer be trusted (call_on_frame). */
	return p->status == SESSD_ERR_PROTOCOL ? SESSD_ERR_PROTOCOL : SESSD_OK;
}

/* A PING on c's live connection, and its reply. Returns SESSD_OK, or why not. */
static int first_ping(struct sessd_client *c)
{
	struct codec_request req;
	struct lone_request p = {.c = c, .status = SESSD_ERR_PROTOCOL};
	int rc;

	memset(&req, 0, sizeof(req));
	req.op = CODEC_OP_PING;
	req.request_id = p.request_id = client_next_id(c);
	buf_reset(&c->out);
	if (codec_encode_request(&c->out, &req) == -1)
		return client_error(c, SESSD_ERR_NOMEM, "out of memory");
	rc = client_exchange(c, c->out.data, c->out.len, 1, first_ping_on_frame, &p);
	if (rc != SESSD_OK)
		return rc;
	if (client_status_closes(p.status))
		client_drop(c);
	return p.status;
}

int client_connect(struct sessd_client *c)
{
	char why[CLIENT_ERRMSG_SIZE];
	int rc = client_ready(c), err;

	/* A plain connection is admitted with its HELLO; a sealed one that said nothing more
	 * gave way to newcomers half a second later, at a full sessd, and was closed at its
	 * --hello-timeout: a program that connects at its start and calls later lost it. */
	if (rc != SESSD_OK || !c->sealed || c->spoke)
		return rc;
	rc = first_ping(c);
	if (rc == SESSD_ERR_SHUTTING_DOWN && client_resend_ready(c))
		rc = first_ping(c);
	switch (rc) {
	case SESSD_OK:
		return SESSD_OK;
	case SESSD_ERR_BUSY:
		err = EAGAIN; /* sessd has no room for it: as a plain HELLO answered BUSY */
		break;
	case SESSD_ERR_TIMEOUT:
	case SESSD_ERR_CLOSED:
	case SESSD_ERR_SHUTTING_DOWN:
		err = rc == SESSD_ERR_TIMEOUT ? ETIMEDOUT : ECONNRESET;
		memcpy(why, c->errmsg, sizeof(why));
		client_error(c, SESSD_ERR_CONNECT, "%s: %s",
		             rc == SESSD_ERR_TIMEOUT ? "the PING after HELLO timed out"
		                                     : "the PING after HELLO failed",
		             why);
		rc = SESSD_ERR_CONNECT;
		break;
	case SESSD_ERR_PROTOCOL:
		err = EPROTO;
		break;
	case SESSD_ERR_NOMEM:
		err = ENOMEM;
		break;
	default:
		err = ECONNREFUSED;
		break;
	}
	client_drop(c);
	errno = err;
	return connect_failed(c, rc);
}
