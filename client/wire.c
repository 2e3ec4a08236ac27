/*
 * The client's socket layer. One poll() loop does both directions at once: a batch of
 * 100,000 requests can fill the server's receive buffer and our own, and a client that only
 * wrote until it was done would deadlock with a server that stops reading while its replies
 * go unread.
 */
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "seal.h"
#include "sessd.h"

/* How much to ask the kernel for per read when no large frame is pending. */
#define WIRE_READ_CHUNK (64u * 1024u)

int64_t wire_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int poll_wait_ms(int64_t deadline_ms)
{
	int64_t left = deadline_ms - wire_now_ms();

	if (left <= 0)
		return 0;
	return left > 60000 ? 60000 : (int)left;
}

/* Wait for a non-blocking connect to finish. Returns 0, or -1 with errno. */
static int finish_connect(int fd, int64_t deadline_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	int n;

	for (;;) {
		n = poll(&pfd, 1, poll_wait_ms(deadline_ms));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0) {
			if (wire_now_ms() < deadline_ms)
				continue;
			errno = ETIMEDOUT;
			return -1;
		}
		break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		return -1;
	if (soerr != 0) {
		errno = soerr;
		return -1;
	}
	return 0;
}

/*
 * The lowest descriptor a connection may have. A process that closed its standard descriptors
 * (a daemon that did not point them at /dev/null) would have a socket given 0, 1 or 2, and
 * its own printf or perror, or a read of stdin, would then write requests or take replies.
 */
#define WIRE_MIN_FD 3

/* A non-blocking, close-on-exec socket at WIRE_MIN_FD or above; -1 with errno on failure. */
static int open_socket(int family, int type, int protocol)
{
	int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
	int moved, saved;

	if (fd == -1 || fd >= WIRE_MIN_FD)
		return fd;
	/* The copy shares O_NONBLOCK (a flag of the open socket); F_DUPFD_CLOEXEC sets its own
	 * close-on-exec. */
	moved = fcntl(fd, F_DUPFD_CLOEXEC, WIRE_MIN_FD);
	saved = errno;
	close(fd);
	errno = saved;
	return moved;
}

/* How long a connect to a Unix socket whose listen backlog is full waits before it tries again. */
#define WIRE_CONNECT_RETRY_MS 5
/* A TCP connection idle this long is probed (keep_alive); as sessd's --tcp-keepalive default. */
#define WIRE_KEEPALIVE_IDLE_S 60

static int connect_unix(const struct url *u, int64_t deadline_ms, char *err, size_t err_size)
{
	struct sockaddr_un sa;
	int fd, saved;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, u->path, strlen(u->path) + 1);
	fd = open_socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd == -1)
		goto fail;
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		if (errno == EINPROGRESS) {
			if (finish_connect(fd, deadline_ms) == -1)
				goto fail_close;
			break;
		}
		/* A full listen backlog (the daemon busy, or many clients reconnecting at once) is
		 * EAGAIN at once on a Unix socket, where over TCP the kernel sends the SYN again:
		 * try again, as TCP waits, until the deadline. */
		if (errno != EAGAIN)
			goto fail_close;
		if (wire_now_ms() >= deadline_ms) {
			errno = ETIMEDOUT;
			goto fail_close;
		}
		poll(NULL, 0, WIRE_CONNECT_RETRY_MS);
	}
	return fd;

fail_close:
	saved = errno;
	close(fd);
	errno = saved;
fail:
	snprintf(err, err_size, "%s", strerror(errno));
	return -1;
}

/*
 * Whether the connected TCP socket ${fd} reached itself. With nothing listening on a port of
 * the ephemeral range, the kernel may pick that very port as our local one, and the SYN then
 * meets itself: a simultaneous open that "connects" (RFC 793). Only our own bytes would ever
 * come back (our HELLO read as its reply: a protocol error), and the socket would hold the
 * port in TIME_WAIT for a minute after it is closed, so that the daemon restarting there
 * cannot bind it.
 */
static bool connected_to_self(int fd)
{
	struct sockaddr_storage local, peer;
	socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
	const struct sockaddr_in *l4 = (const struct sockaddr_in *)&local;
	const struct sockaddr_in *p4 = (const struct sockaddr_in *)&peer;
	const struct sockaddr_in6 *l6 = (const struct sockaddr_in6 *)&local;
	const struct sockaddr_in6 *p6 = (const struct sockaddr_in6 *)&peer;

	if (getsockname(fd, (struct sockaddr *)&local, &local_len) == -1 ||
	    getpeername(fd, (struct sockaddr *)&peer, &peer_len) == -1 ||
	    local.ss_family != peer.ss_family)
		return false;
	if (local.ss_family == AF_INET)
		return l4->sin_port == p4->sin_port && l4->sin_addr.s_addr == p4->sin_addr.s_addr;
	if (local.ss_family == AF_INET6)
		return l6->sin6_port == p6->sin6_port &&
		       memcmp(&l6->sin6_addr, &p6->sin6_addr, sizeof(l6->sin6_addr)) == 0;
	return false;
}

/* Close ${fd} with a reset (SO_LINGER 0): it leaves no TIME_WAIT behind to hold its port. */
static void close_reset(int fd)
{
	struct linger abortive = {.l_onoff = 1, .l_linger = 0};

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive));
	close(fd);
}

/*
 * Have the kernel probe the connection ${fd} once idle WIRE_KEEPALIVE_IDLE_S, and reset it when
 * 3 probes go unanswered: a pooled connection that a NAT or load balancer dropped for being
 * quiet, or whose sessd's host vanished, is found while idle rather than by the next call
 * timing out. Best effort.
 */
static void keep_alive(int fd)
{
	int on = 1, idle = WIRE_KEEPALIVE_IDLE_S, interval = WIRE_KEEPALIVE_IDLE_S / 3, count = 3;

	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == 0) {
		(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
		(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
	}
}

static int connect_tcp(const struct url *u, int64_t deadline_ms, char *err, size_t err_size)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1, rc, one = 1, last_errno = ECONNREFUSED;
	bool self = false;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
	rc = getaddrinfo(u->host, u->port, &hints, &res);
	if (rc != 0) {
		/* EAI_SYSTEM's own words are "System error": the reason is in errno. A resolver
		 * out of memory is the client's want of memory, not a host that does not exist. */
		last_errno = rc == EAI_SYSTEM ? errno : rc == EAI_MEMORY ? ENOMEM : EHOSTUNREACH;
		snprintf(err, err_size, "cannot resolve %s: %s", u->host,
		         rc == EAI_SYSTEM ? strerror(last_errno) : gai_strerror(rc));
		errno = last_errno;
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = open_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd == -1) {
			last_errno = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && finish_connect(fd, deadline_ms) == 0)) {
			if (!connected_to_self(fd))
				break;
			/* Nobody listens there: as if the connection had been refused. */
			close_reset(fd);
			fd = -1;
			last_errno = ECONNREFUSED;
			self = true;
			continue;
		}
		last_errno = errno;
		close(fd);
		fd = -1;
		if (last_errno == ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (fd == -1) {
		snprintf(err, err_size, "%s%s", strerror(last_errno),
		         self && last_errno == ECONNREFUSED
		             ? " (the connection reached itself: nothing listens on that port)"
		             : "");
		errno = last_errno;
		return -1;
	}
	/* Requests are small and answered at once; Nagle would hold each one back. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	keep_alive(fd);
	return fd;
}

int wire_connect(const struct url *u, int64_t deadline_ms, char *err, size_t err_size)
{
	if (u->is_unix)
		return connect_unix(u, deadline_ms, err, err_size);
	return connect_tcp(u, deadline_ms, err, err_size);
}

/* The longest SHUTTING_DOWN taken for one (sessd's message is under 100 bytes). */
#define WIRE_GOODBYE_MAX_BYTES 1024

/*
 * Whether the bytes left in ${x->raw} after the last reply, nothing of them opened yet, are
 * the start of a record small enough to hold a SHUTTING_DOWN: sessd seals a goodbye that
 * follows the last reply a turn later in a record of its own, and the network may hand over
 * its first bytes with the reply. They cannot be opened, let alone read, before the rest
 * comes; the reply before them did authenticate, so the call stands and the connection is
 * not used again (which is all a goodbye would say).
 */
static bool is_sealed_goodbye_start(const struct wire_exchange *x)
{
	const uint8_t *data;
	size_t have, size;

	if (x->seal == NULL || x->in->len != 0 || x->raw->len == 0)
		return false;
	data = x->raw->data;
	have = x->raw->len;
	if (have < SEAL_HEADER_BYTES) {
		/* The length's high bytes: a goodbye's record is short. */
		return data[0] == 0 && (have < 2 || data[1] == 0);
	}
	size = seal_record_size(data);
	return size != 0 && size <= WIRE_GOODBYE_MAX_BYTES + SEAL_OVERHEAD && have < size;
}

/*
 * Whether what is left in ${x->in} after the last reply is one SHUTTING_DOWN with request id
 * 0, as sessd writes it (fixarray 3, 0, 11), whole or its start so far (the rest may come in
 * a later read: a read can end anywhere): a stopping server's last frame, which answers no
 * request (PROTOCOL.md, "Statuses"). Each byte present must fit; a frame's length must be a
 * goodbye's and cover every byte left. Sealed, the start of a record of its own counts too.
 */
static bool is_goodbye(const struct wire_exchange *x)
{
	static const uint8_t body_start[] = {0x93, 0x00, CODEC_SHUTTING_DOWN};
	size_t have = x->in->len, n;
	const uint8_t *data = x->in->data;

	if (is_sealed_goodbye_start(x))
		return true;
	if (have == 0 || (x->seal != NULL && x->raw->len != 0))
		return false;
	if (have < CODEC_HEADER_BYTES) {
		/* The length's high bytes: a goodbye is short. */
		return data[0] == 0 && (have < 2 || data[1] == 0);
	}
	n = codec_frame_length(data);
	if (n < sizeof(body_start) || n > WIRE_GOODBYE_MAX_BYTES || have - CODEC_HEADER_BYTES > n)
		return false;
	for (size_t i = 0; i < sizeof(body_start) && CODEC_HEADER_BYTES + i < have; i++)
		if (data[CODEC_HEADER_BYTES + i] != body_start[i])
			return false;
	return true;
}

/*
 * Hand every complete frame at the front of x->in to on_frame. Returns SESSD_OK (maybe with
 * a partial frame left), or the code that stops the exchange.
 */
static int deliver_frames(struct wire_exchange *x, size_t *done)
{
	size_t at = 0;
	uint32_t len;
	int rc = SESSD_OK;

	while (*done < x->replies && x->in->len - at >= CODEC_HEADER_BYTES) {
		len = codec_frame_length(x->in->data + at);
		/* Checked before the body is waited for, let alone buffered. */
		if (len == 0 || len > x->max_frame) {
			if (len == 0)
				snprintf(x->err, x->err_size, "the server sent an empty frame");
			else
				snprintf(
				    x->err, x->err_size,
				    "the server sent a frame of %u bytes, over the limit of %u",
				    len, x->max_frame);
			rc = SESSD_ERR_PROTOCOL;
			break;
		}
		if (x->in->len - at - CODEC_HEADER_BYTES < len)
			break;
		rc = x->on_frame(x->ctx, x->in->data + at + CODEC_HEADER_BYTES, len);
		at += CODEC_HEADER_BYTES + (size_t)len;
		(*done)++;
		if (rc != SESSD_OK)
			break;
	}
	buf_consume(x->in, at);
	if (rc == SESSD_OK && *done == x->replies && is_goodbye(x)) {
		x->goodbye_after = true;
		buf_reset(x->in);
		if (x->seal != NULL)
			buf_reset(x->raw);
	}
	/* Sealed, the start of a record after the last reply is such bytes too. */
	if (rc == SESSD_OK && *done == x->replies &&
	    (x->in->len != 0 || (x->seal != NULL && x->raw->len != 0))) {
		if (x->seal != NULL || x->records_after) {
			/* Every reply came, authenticated: what follows (sessd's BAD_REQUEST for a
			 * record of ours doubled on the path, or a sealed SHUTTING_DOWN right
			 * behind a HELLO reply) ends the connection, not the call, whose requests
			 * were all carried out and answered. */
			x->after_last = true;
			buf_reset(x->in);
			if (x->seal != NULL)
				buf_reset(x->raw);
		} else {
			snprintf(x->err, x->err_size, "the server sent bytes after the last reply");
			rc = SESSD_ERR_PROTOCOL;
		}
	}
	return rc;
}

/*
 * How many bytes to read next: a chunk, or of a pending large frame as much as is buffered
 * already (up to its end). The buffer then grows with the bytes that arrive, at most doubling
 * per read, never on the word of a header alone: 4 bytes announcing max_frame (up to 1 GiB)
 * would otherwise have the client reserve that much for a body that may never come.
 */
static size_t read_want(const struct wire_exchange *x)
{
	uint32_t len;
	size_t need, step;

	if (x->in->len >= CODEC_HEADER_BYTES) {
		len = codec_frame_length(x->in->data);
		need = CODEC_HEADER_BYTES + (size_t)len;
		if (len <= x->max_frame && need > x->in->len + WIRE_READ_CHUNK) {
			step = x->in->len > WIRE_READ_CHUNK ? x->in->len : WIRE_READ_CHUNK;
			return need - x->in->len < step ? need - x->in->len : step;
		}
	}
	return WIRE_READ_CHUNK;
}

/*
 * Open the records whole at the front of x->raw, appending their plaintext to x->in. The
 * header of each is checked (seal_record_size bounds it) before its end is waited for, and
 * x->in grows by what each record actually carried. Returns SESSD_OK (maybe with part of a
 * record left in x->raw); or SESSD_ERR_PROTOCOL or SESSD_ERR_NOMEM with *${why} saying what
 * went wrong and x->raw emptied, the records before the failing one opened.
 */
static int open_records(struct wire_exchange *x, const char **why)
{
	size_t at = 0, size;
	int rc = SESSD_OK;

	while (x->raw->len - at >= SEAL_HEADER_BYTES) {
		size = seal_record_size(x->raw->data + at);
		if (size == 0) {
			*why = "the server sent a record of a malformed length";
			rc = SESSD_ERR_PROTOCOL;
			break;
		}
		if (x->raw->len - at < size)
			break;
		if (buf_reserve(x->in, size - SEAL_OVERHEAD) == -1) {
			*why = "out of memory for a reply";
			rc = SESSD_ERR_NOMEM;
			break;
		}
		/* A forged, changed, replayed, reordered or missing record: nothing of it is
		 * used, and nothing after it can be trusted (PROTOCOL.md: a client just closes). */
		if (seal_open(x->seal, x->raw->data + at, size, x->in->data + x->in->len) == -1) {
			*why = "the server sent a record that does not authenticate";
			rc = SESSD_ERR_PROTOCOL;
			break;
		}
		x->in->len += size - SEAL_OVERHEAD;
		at += size;
	}
	buf_consume(x->raw, rc == SESSD_OK ? at : x->raw->len);
	return rc;
}

/* Read what is there. Returns 1 (bytes read), 0 (nothing now), or a SESSD_ERR_ code. */
static int read_some(struct wire_exchange *x)
{
	/* Sealed, a record is at most SEAL_MAX_PLAIN + SEAL_OVERHEAD bytes and is opened as soon
	 * as it is whole: a chunk at a time keeps x->raw small, and x->in grows only with what
	 * the records open to. */
	struct buf *into = x->seal != NULL ? x->raw : x->in;
	size_t want = x->seal != NULL ? WIRE_READ_CHUNK : read_want(x);
	ssize_t n;

	if (buf_reserve(into, want) == -1) {
		snprintf(x->err, x->err_size, "out of memory for a reply");
		return -SESSD_ERR_NOMEM;
	}
	n = recv(x->fd, into->data + into->len, want, 0);
	if (n > 0) {
		into->len += (size_t)n;
		return 1;
	}
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n == 0 && (x->in->len != 0 || (x->seal != NULL && x->raw->len != 0)))
		/* Part of a reply came: a cut path or a crash mid-write, not a close between
		 * replies (which a daemon that cannot write its changes makes, PROTOCOL.md
		 * IO_ERROR). */
		snprintf(x->err, x->err_size,
		         "the server closed the connection in the middle of a reply, %zu bytes "
		         "of it received",
		         x->in->len + (x->seal != NULL ? x->raw->len : 0));
	else if (n == 0)
		snprintf(x->err, x->err_size, "the server closed the connection");
	else
		snprintf(x->err, x->err_size, "reading from the server: %s", strerror(errno));
	return -SESSD_ERR_CLOSED;
}

/* Write what the socket takes. Returns 1 (progress), 0 (full), or -1 (peer gone). */
static int write_some(struct wire_exchange *x, size_t *sent)
{
	ssize_t n;

	/* MSG_NOSIGNAL: a closed peer is an error code for us, never a SIGPIPE for the app. */
	n = send(x->fd, x->out + *sent, x->out_len - *sent, MSG_NOSIGNAL);
	if (n >= 0) {
		*sent += (size_t)n;
		return n > 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return -1;
}

int wire_run(struct wire_exchange *x)
{
	struct pollfd pfd;
	size_t done = 0;
	bool can_write = true;
	int64_t deadline = wire_now_ms() + x->timeout_ms;
	const char *why = NULL;
	int n, rc, opened;

	x->sent = 0;
	buf_reset(x->in);
	if (x->seal != NULL)
		buf_reset(x->raw);
	while (done < x->replies) {
		/* Checked whatever poll says: a server that always has a byte ready must not
		 * hold the exchange past it either. */
		if (wire_now_ms() >= deadline) {
			snprintf(x->err, x->err_size, "no reply within %d ms", x->timeout_ms);
			return SESSD_ERR_TIMEOUT;
		}
		pfd.fd = x->fd;
		pfd.events = POLLIN;
		if (can_write && x->sent < x->out_len)
			pfd.events |= POLLOUT;
		pfd.revents = 0;
		n = poll(&pfd, 1, poll_wait_ms(deadline));
		if (n == -1 && errno != EINTR) {
			snprintf(x->err, x->err_size, "poll: %s", strerror(errno));
			return SESSD_ERR_CLOSED;
		}
		if (n <= 0)
			continue;
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			rc = read_some(x);
			if (rc < 0)
				return -rc;
			opened = x->seal != NULL ? open_records(x, &why) : SESSD_OK;
			/* The replies of the records before a bad one count: a batch keeps them. */
			rc = deliver_frames(x, &done);
			if (rc != SESSD_OK)
				return rc;
			/* A record after the last reply that does not open (one of the server's
			 * doubled on the path) ends the connection, not the call: see
			 * deliver_frames. */
			if (opened != SESSD_OK && done == x->replies) {
				x->after_last = true;
				buf_reset(x->in);
			} else if (opened != SESSD_OK) {
				snprintf(x->err, x->err_size, "%s", why);
				return opened;
			}
		}
		if ((pfd.revents & POLLOUT) && can_write && x->sent < x->out_len) {
			/* On an error, keep reading: an error reply may be on its way. */
			if (write_some(x, &x->sent) == -1)
				can_write = false;
		}
	}
	return SESSD_OK;
}
