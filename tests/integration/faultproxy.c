/*
 * The fault-injecting relay of faultproxy.h: one forked process, one poll() loop over its
 * listener, its control socket and every relayed connection. What a direction reads is queued
 * as chunks (stamped with their arrival, for FAULTPROXY_DELAY) and passed on as that
 * direction's fault allows. An end of stream is passed on (shutdown) once what came before it
 * has gone; an error, or a FAULTPROXY_CUT, resets both sides.
 */
#include "faultproxy.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define FP_MAX_PAIRS  64
#define FP_READ_BYTES 65536

enum { FP_OP_SET = 1, FP_OP_ACCEPTED = 2, FP_OP_HELD = 3 };

struct fp_chunk {
	struct fp_chunk *next;
	size_t len, off;
	int64_t at_ms;
	unsigned char data[];
};

struct fp_flow {
	int from, to;
	struct fp_chunk *head, *tail;
	uint64_t passed; /* bytes passed since this direction's fault was set */
	int64_t next_ms; /* FAULTPROXY_DRIBBLE: when the next byte may go */
	bool eof, shut;  /* the sender ended; the end was passed on */
};

struct fp_pair {
	bool used;
	long serial; /* its number among the accepted connections, from 1 */
	int fd[2];   /* the client's socket, sessd's */
	struct fp_flow flow[2];
};

struct fp_state {
	int listener, control;
	/* sessd's TCP port or Unix socket. */
	struct sockaddr_storage target;
	socklen_t target_len;
	enum faultproxy_mode mode[2];
	uint32_t arg[2];
	long accepted;
	long hold_upto; /* FAULTPROXY_HOLD: the connections it holds are those up to this one */
	struct fp_pair pairs[FP_MAX_PAIRS];
};

/* ${dir}'s fault on ${p}: FAULTPROXY_HOLD only on the connections open when it was set. */
static enum faultproxy_mode fp_mode(const struct fp_state *s, const struct fp_pair *p, int dir)
{
	if (s->mode[dir] == FAULTPROXY_HOLD && p->serial > s->hold_upto)
		return FAULTPROXY_PASS;
	return s->mode[dir];
}

static void fp_reset_close(int fd)
{
	struct linger reset = {.l_onoff = 1, .l_linger = 0};

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	close(fd);
}

static void fp_drop(struct fp_pair *p)
{
	for (int d = 0; d < 2; d++) {
		struct fp_chunk *c = p->flow[d].head, *next;

		for (; c != NULL; c = next) {
			next = c->next;
			free(c);
		}
		fp_reset_close(p->fd[d]);
	}
	memset(p, 0, sizeof(*p));
}

static void fp_pop(struct fp_flow *f)
{
	struct fp_chunk *c = f->head;

	f->head = c->next;
	if (f->head == NULL)
		f->tail = NULL;
	free(c);
}

/*
 * Pass what ${dir}'s fault lets through on ${p}. Returns 0, or -1 when the pair is to be
 * dropped (a peer gone, or FAULTPROXY_CUT reached).
 */
static int fp_pump(struct fp_state *s, struct fp_pair *p, int dir, int64_t now)
{
	struct fp_flow *f = &p->flow[dir];
	uint32_t arg = s->arg[dir];
	enum faultproxy_mode mode = fp_mode(s, p, dir);

	while (f->head != NULL) {
		struct fp_chunk *c = f->head;
		size_t left = c->len - c->off, n = left;

		if (f->to == -1) {
			/* The client has gone (fp_orphan): sessd's replies reach no one. */
			fp_pop(f);
			continue;
		}
		switch (mode) {
		case FAULTPROXY_STALL:
		case FAULTPROXY_HOLD:
			return 0;
		case FAULTPROXY_DRIBBLE:
			if (now < f->next_ms)
				return 0;
			n = 1;
			f->next_ms = now + 1;
			break;
		case FAULTPROXY_DELAY:
			if (now < c->at_ms + arg)
				return 0;
			break;
		case FAULTPROXY_BLACKHOLE:
		case FAULTPROXY_CUT:
			n = f->passed >= arg ? 0 : arg - f->passed < left ? arg - f->passed : left;
			break;
		case FAULTPROXY_PASS:
			break;
		}
		if (n > 0 && harness_send_all(f->to, c->data + c->off, n) == -1)
			return -1;
		f->passed += n;
		c->off += n;
		if (c->off < c->len && mode == FAULTPROXY_CUT)
			return -1;
		if (c->off < c->len && mode == FAULTPROXY_BLACKHOLE)
			c->off = c->len; /* swallowed */
		if (c->off == c->len)
			fp_pop(f);
		if (mode == FAULTPROXY_DRIBBLE)
			return 0;
	}
	if (f->eof && !f->shut) {
		if (f->to != -1)
			shutdown(f->to, SHUT_WR);
		f->shut = true;
	}
	return 0;
}

/*
 * Read what ${dir} of ${p} has. Returns 0, or -1 when the pair is to be dropped. A stalled
 * direction reads into its last chunk while that has room: what it holds then goes on in one
 * write once the stall is lifted, as a path that delivers late delivers (and a test can have
 * the end of one record and the start of the next arrive together).
 */
static int fp_read(const struct fp_state *s, struct fp_pair *p, int dir, int64_t now)
{
	struct fp_flow *f = &p->flow[dir];
	struct fp_chunk *c = f->tail;
	enum faultproxy_mode mode = fp_mode(s, p, dir);
	ssize_t n;

	if ((mode == FAULTPROXY_STALL || mode == FAULTPROXY_HOLD) && c != NULL &&
	    c->len < FP_READ_BYTES) {
		n = recv(f->from, c->data + c->len, FP_READ_BYTES - c->len, 0);
		if (n > 0)
			c->len += (size_t)n;
		else if (n == 0 && mode == FAULTPROXY_HOLD)
			return -1; /* the client has gone: fp_orphan */
		else if (n == 0)
			f->eof = true;
		return n >= 0 || errno == EINTR || errno == EAGAIN ? 0 : -1;
	}
	c = malloc(sizeof(*c) + FP_READ_BYTES);
	if (c == NULL)
		return -1;
	n = recv(f->from, c->data, FP_READ_BYTES, 0);
	if (n <= 0) {
		free(c);
		if (n == 0 && mode == FAULTPROXY_HOLD)
			return -1; /* the client has gone: fp_orphan */
		if (n == 0) {
			f->eof = true;
			return 0;
		}
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	}
	c->next = NULL;
	c->len = (size_t)n;
	c->off = 0;
	c->at_ms = now;
	if (f->tail != NULL)
		f->tail->next = c;
	else
		f->head = c;
	f->tail = c;
	return 0;
}

/*
 * FAULTPROXY_HOLD: ${p}'s client has gone (its read failed or ended); keep sessd's side open
 * with what is held for it, and drop what sessd sends. Returns 0.
 */
static int fp_orphan(struct fp_pair *p)
{
	struct fp_flow *down = &p->flow[FAULTPROXY_DOWN];

	fp_reset_close(p->fd[0]);
	p->fd[0] = -1;
	p->flow[FAULTPROXY_UP].from = -1;
	p->flow[FAULTPROXY_UP].eof = true;
	p->flow[FAULTPROXY_UP].shut = true; /* never passed on: sessd's side stays open */
	down->to = -1;
	while (down->head != NULL)
		fp_pop(down);
	return 0;
}

static void fp_accept(struct fp_state *s)
{
	int down = accept(s->listener, NULL, NULL), up, one = 1;
	struct fp_pair *p = NULL;

	if (down == -1)
		return;
	s->accepted++;
	for (int i = 0; i < FP_MAX_PAIRS && p == NULL; i++)
		if (!s->pairs[i].used)
			p = &s->pairs[i];
	up = socket(s->target.ss_family, SOCK_STREAM, 0);
	if (p == NULL || up == -1 ||
	    connect(up, (const struct sockaddr *)&s->target, s->target_len) == -1) {
		if (up != -1)
			close(up);
		fp_reset_close(down);
		return;
	}
	(void)setsockopt(down, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(p, 0, sizeof(*p));
	p->used = true;
	p->serial = s->accepted;
	p->fd[0] = down;
	p->fd[1] = up;
	p->flow[FAULTPROXY_UP].from = down;
	p->flow[FAULTPROXY_UP].to = up;
	p->flow[FAULTPROXY_DOWN].from = up;
	p->flow[FAULTPROXY_DOWN].to = down;
}

/* One control request from the parent. Returns 0, or -1 when the parent has gone. */
static int fp_control(struct fp_state *s)
{
	uint32_t msg[3];
	uint64_t answer = 0;

	if (recv(s->control, msg, sizeof(msg), MSG_WAITALL) != (ssize_t)sizeof(msg))
		return -1;
	if (msg[0] == FP_OP_SET && msg[1] < 2) {
		s->mode[msg[1]] = (enum faultproxy_mode)(msg[2] & 0xff);
		s->arg[msg[1]] = msg[2] >> 8;
		if (s->mode[msg[1]] == FAULTPROXY_HOLD)
			s->hold_upto = s->accepted;
		for (int i = 0; i < FP_MAX_PAIRS; i++)
			s->pairs[i].flow[msg[1]].passed = 0;
	} else if (msg[0] == FP_OP_ACCEPTED) {
		answer = (uint64_t)s->accepted;
	} else if (msg[0] == FP_OP_HELD && msg[1] < 2) {
		for (int i = 0; i < FP_MAX_PAIRS; i++)
			for (const struct fp_chunk *c = s->pairs[i].flow[msg[1]].head;
			     s->pairs[i].used && c != NULL; c = c->next)
				answer += c->len - c->off;
	}
	return harness_send_all(s->control, &answer, sizeof(answer));
}

static int fp_serve(struct fp_state *s)
{
	struct pollfd pfd[2 + 2 * FP_MAX_PAIRS];

	for (;;) {
		int64_t now = harness_mono_ms();
		int n = 0, wait_ms = 50;

		for (int i = 0; i < FP_MAX_PAIRS; i++) {
			struct fp_pair *p = &s->pairs[i];

			for (int d = 0; p->used && d < 2; d++) {
				if (fp_pump(s, p, d, now) == -1) {
					fp_drop(p);
					break;
				}
				if (p->flow[d].head != NULL && s->mode[d] == FAULTPROXY_DRIBBLE)
					wait_ms = 1;
				if (p->flow[d].head != NULL && s->mode[d] == FAULTPROXY_DELAY) {
					int64_t due = p->flow[d].head->at_ms + s->arg[d] - now;

					if (due < wait_ms)
						wait_ms = due < 1 ? 1 : (int)due;
				}
			}
			if (p->used && p->flow[0].shut && p->flow[1].shut)
				fp_drop(p);
		}
		pfd[n++] = (struct pollfd){.fd = s->listener, .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = s->control, .events = POLLIN};
		for (int i = 0; i < FP_MAX_PAIRS; i++)
			for (int d = 0; d < 2; d++)
				pfd[n++] = (struct pollfd){.fd = s->pairs[i].used &&
				                                         !s->pairs[i].flow[d].eof
				                                     ? s->pairs[i].flow[d].from
				                                     : -1,
				                           .events = POLLIN};
		if (poll(pfd, (nfds_t)n, wait_ms) == -1 && errno != EINTR)
			return 1;
		now = harness_mono_ms();
		if (pfd[1].revents != 0 && fp_control(s) == -1)
			return 0;
		if (pfd[0].revents & POLLIN)
			fp_accept(s);
		for (int i = 0; i < FP_MAX_PAIRS; i++)
			for (int d = 0; d < 2; d++)
				if (s->pairs[i].used && pfd[2 + 2 * i + d].revents != 0 &&
				    fp_read(s, &s->pairs[i], d, now) == -1) {
					if (d == FAULTPROXY_UP &&
					    fp_mode(s, &s->pairs[i], d) == FAULTPROXY_HOLD)
						fp_orphan(&s->pairs[i]);
					else
						fp_drop(&s->pairs[i]);
				}
	}
}

/*
 * Fork the relay of ${s}, whose listener and target are set, and fill ${p}'s pid and control.
 * Returns 0, or -1 (the listener closed, ${s} freed); frees ${s} in the parent either way.
 */
static int fp_fork(struct faultproxy *p, struct fp_state *s)
{
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		goto fail;
	fflush(NULL);
	p->pid = fork();
	if (p->pid == -1) {
		close(sv[0]);
		close(sv[1]);
		goto fail;
	}
	if (p->pid == 0) {
		close(sv[0]);
		s->control = sv[1];
		rc = fp_serve(s);
		_exit(rc);
	}
	close(sv[1]);
	close(s->listener);
	free(s);
	p->control = sv[0];
	return 0;

fail:
	close(s->listener);
	free(s);
	return -1;
}

int faultproxy_start(struct faultproxy *p, const char *target_tcp_url)
{
	struct fp_state *s;
	struct sockaddr_in addr = {.sin_family = AF_INET,
	                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(addr);
	unsigned port;

	p->path[0] = '\0';
	s = calloc(1, sizeof(*s));
	if (s == NULL || sscanf(target_tcp_url, "tcp://127.0.0.1:%u", &port) != 1)
		goto fail;
	addr.sin_port = htons((uint16_t)port);
	memcpy(&s->target, &addr, sizeof(addr));
	s->target_len = sizeof(addr);
	addr.sin_port = 0;
	s->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->listener == -1)
		goto fail;
	if (bind(s->listener, (const struct sockaddr *)&addr, sizeof(addr)) == -1 ||
	    listen(s->listener, 16) == -1 ||
	    getsockname(s->listener, (struct sockaddr *)&addr, &len) == -1)
		goto fail_listener;
	snprintf(p->url, sizeof(p->url), "tcp://127.0.0.1:%u", ntohs(addr.sin_port));
	return fp_fork(p, s);

fail_listener:
	close(s->listener);
fail:
	free(s);
	return -1;
}

/* Fill ${sun} with the Unix socket address ${path}. Returns 0, or -1 when it is too long. */
static int fp_unix_addr(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path))
		return -1;
	memcpy(sun->sun_path, path, strlen(path) + 1);
	return 0;
}

int faultproxy_start_unix(struct faultproxy *p, const char *target_unix_url,
                          const char *listen_path)
{
	struct fp_state *s;
	struct sockaddr_un addr;

	p->path[0] = '\0';
	s = calloc(1, sizeof(*s));
	if (s == NULL || strncmp(target_unix_url, "unix:", 5) != 0 ||
	    strlen(listen_path) >= sizeof(p->path) ||
	    fp_unix_addr(&addr, target_unix_url + 5) == -1)
		goto fail;
	memcpy(&s->target, &addr, sizeof(addr));
	s->target_len = sizeof(addr);
	if (fp_unix_addr(&addr, listen_path) == -1)
		goto fail;
	s->listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->listener == -1)
		goto fail;
	(void)unlink(listen_path);
	if (bind(s->listener, (const struct sockaddr *)&addr, sizeof(addr)) == -1 ||
	    listen(s->listener, 16) == -1)
		goto fail_listener;
	memcpy(p->path, listen_path, strlen(listen_path) + 1);
	snprintf(p->url, sizeof(p->url), "unix:%s", listen_path);
	if (fp_fork(p, s) == -1)
		goto fail_unlink;
	return 0;

fail_unlink:
	(void)unlink(p->path);
	p->path[0] = '\0';
	return -1;
fail_listener:
	close(s->listener);
fail:
	free(s);
	return -1;
}

/* Ask the relay ${op} with ${a}, ${b}; its answer in *${answer}. Returns 0 or -1. */
static int fp_ask(struct faultproxy *p, uint32_t op, uint32_t a, uint32_t b, uint64_t *answer)
{
	uint32_t msg[3] = {op, a, b};

	if (harness_send_all(p->control, msg, sizeof(msg)) == -1)
		return -1;
	return recv(p->control, answer, sizeof(*answer), MSG_WAITALL) == (ssize_t)sizeof(*answer)
	           ? 0
	           : -1;
}

int faultproxy_set(struct faultproxy *p, enum faultproxy_dir dir, enum faultproxy_mode mode,
                   uint32_t arg)
{
	uint64_t ack;

	if (arg > 0xffffff)
		return -1;
	return fp_ask(p, FP_OP_SET, (uint32_t)dir, (uint32_t)mode | arg << 8, &ack);
}

long faultproxy_accepted(struct faultproxy *p)
{
	uint64_t n;

	return fp_ask(p, FP_OP_ACCEPTED, 0, 0, &n) == -1 ? -1 : (long)n;
}

long faultproxy_held(struct faultproxy *p, enum faultproxy_dir dir)
{
	uint64_t n;

	return fp_ask(p, FP_OP_HELD, (uint32_t)dir, 0, &n) == -1 ? -1 : (long)n;
}

int faultproxy_stop(struct faultproxy *p)
{
	int status;

	/* The relay's end of the control socket reads the end of stream and exits. */
	close(p->control);
	if (p->path[0] != '\0')
		(void)unlink(p->path);
	if (waitpid(p->pid, &status, 0) != p->pid)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
