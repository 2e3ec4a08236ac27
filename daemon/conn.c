/*
 * Client connections. See conn.h.
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "codec.h"
#include "log.h"

struct conn {
	TAILQ_ENTRY(conn) link;
	TAILQ_ENTRY(conn) held_link;
	struct conn_set *set;
	struct bufferevent *bev;
	struct dispatch_peer peer;
	bool held;     /* replies wait in the output with writing off, for the group commit */
	bool closing;  /* reading is over: close once the output is sent */
	bool paused;   /* the client is not reading its replies: stop reading its requests */
	bool peer_eof; /* the client shut its side down */
	/* Replies are out and our side is shut down; reading on (and discarding) until the
	 * client closes, so unread requests in the kernel cannot turn our close into a reset
	 * that destroys the replies still in flight. */
	bool lingering;
};

#define CONN_LINGER_S 2

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Free ${c} now, telling the owner first. ${c} is gone afterwards. */
static void conn_close(struct conn *c)
{
	struct conn_set *s = c->set;

	if (c->held)
		TAILQ_REMOVE(&s->held, c, held_link);
	TAILQ_REMOVE(&s->all, c, link);
	s->count--;
	bufferevent_free(c->bev);
	free(c);
	/* Last, so the owner sees the set as it now is (a stopping server counts to zero). */
	if (s->cfg.on_closed != NULL)
		s->cfg.on_closed(s->cfg.arg);
}

/* Read only while nothing stops it; see the flags in struct conn. */
static void update_reading(struct conn *c)
{
	if (c->closing || c->held || c->paused || c->set->stopping)
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

/*
 * The output is empty or waits: close now if it is out and the client is gone or the server
 * stops, else linger. Returns true when ${c} was freed.
 */
static bool finish_closing(struct conn *c)
{
	struct timeval close_tv = {c->set->cfg.close_timeout_s, 0};
	struct timeval linger_tv = {CONN_LINGER_S, 0};

	if (c->held)
		return false;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
		/* A client that never reads its last replies must not keep us forever. */
		bufferevent_set_timeouts(c->bev, NULL, &close_tv);
		return false;
	}
	if (c->peer_eof || c->set->stopping) {
		conn_close(c);
		return true;
	}
	if (!c->lingering) {
		c->lingering = true;
		shutdown(bufferevent_getfd(c->bev), SHUT_WR);
		evbuffer_drain(bufferevent_get_input(c->bev),
		               evbuffer_get_length(bufferevent_get_input(c->bev)));
		bufferevent_set_timeouts(c->bev, &linger_tv, NULL);
		bufferevent_enable(c->bev, EV_READ);
	}
	return false;
}

/* No more requests: close once the output is out. Returns true when ${c} was freed. */
static bool begin_closing(struct conn *c)
{
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	return finish_closing(c);
}

/*
 * Handle every complete frame in the input, replies into the shared scratch, then hand them to
 * the output in one append. Returns true when ${c} was freed.
 */
static bool process(struct conn *c)
{
	struct conn_set *s = c->set;
	struct evbuffer *input = bufferevent_get_input(c->bev);
	struct evbuffer *output = bufferevent_get_output(c->bev);
	struct buf *out = &s->reply_scratch;
	uint8_t header[CODEC_HEADER_BYTES];
	struct evbuffer_iovec vec;
	uint64_t now_ms = 0;
	const uint8_t *body;
	size_t avail, whole;
	uint32_t n;

	if (c->lingering) {
		evbuffer_drain(input, evbuffer_get_length(input));
		return false;
	}
	while (!c->closing && !c->paused) {
		avail = evbuffer_get_length(input);
		if (avail < CODEC_HEADER_BYTES)
			break;
		evbuffer_copyout(input, header, sizeof(header));
		n = codec_frame_length(header);
		/* Checked before a byte of the body is waited for (PROTOCOL.md, "Transport"). */
		if (n > s->cfg.max_frame) {
			if (codec_reply_error(out, 0, CODEC_TOO_LARGE,
			                      "the frame is longer than max_frame") == -1)
				log_warn("out of memory for an error reply");
			c->closing = true;
			break;
		}
		if (n == 0) {
			if (codec_reply_error(out, 0, CODEC_BAD_REQUEST, "a frame of length 0") ==
			    -1)
				log_warn("out of memory for an error reply");
			c->closing = true;
			break;
		}
		whole = CODEC_HEADER_BYTES + (size_t)n;
		if (avail < whole)
			break;
		/* Use the frame where it lies when it is contiguous; else copy it out once. */
		if (evbuffer_peek(input, (ev_ssize_t)whole, NULL, &vec, 1) >= 1 &&
		    vec.iov_len >= whole) {
			body = (const uint8_t *)vec.iov_base + CODEC_HEADER_BYTES;
		} else {
			buf_reset(&s->frame_scratch);
			if (buf_reserve(&s->frame_scratch, whole) == -1) {
				log_warn("out of memory for a %zu-byte frame; closing", whole);
				c->closing = true;
				break;
			}
			evbuffer_copyout(input, s->frame_scratch.data, whole);
			body = s->frame_scratch.data + CODEC_HEADER_BYTES;
		}
		/* The wall clock is read once per batch, and only when there is work. */
		if (now_ms == 0)
			now_ms = wall_ms();
		if (s->cfg.on_frame(s->cfg.arg, &c->peer, body, n, now_ms, out) == DISPATCH_CLOSE)
			c->closing = true;
		evbuffer_drain(input, whole);
		if (out->len + evbuffer_get_length(output) >= s->cfg.output_high_bytes)
			c->paused = true;
	}

	if (out->len > 0) {
		if (s->cfg.hold_replies && !c->held) {
			/* Writing off first, so that adding the replies does not send them. */
			bufferevent_disable(c->bev, EV_WRITE);
			c->held = true;
			TAILQ_INSERT_TAIL(&s->held, c, held_link);
			s->cfg.on_held(s->cfg.arg);
		}
		if (evbuffer_add(output, out->data, out->len) == -1) {
			buf_reset(out);
			log_warn("out of memory for replies; closing the connection");
			conn_close(c);
			return true;
		}
		buf_reset(out);
	}
	if (c->closing)
		return begin_closing(c);
	update_reading(c);
	return false;
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	process(arg);
}

/* Called when the output dropped to the low watermark (half the high one) or below. */
static void conn_on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	size_t left = evbuffer_get_length(bufferevent_get_output(bev));

	if (c->held)
		return;
	if (c->closing) {
		if (left == 0)
			finish_closing(c);
		return;
	}
	if (c->paused) {
		c->paused = false;
		/* Frames may wait in the input already; the socket will not announce them. */
		process(c);
	}
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && !(what & BEV_EVENT_TIMEOUT) &&
	    !c->lingering) {
		/* The client is done sending; what it sent is answered before we close. */
		c->peer_eof = true;
		begin_closing(c);
		return;
	}
	conn_close(c);
}

void conn_set_init(struct conn_set *s, const struct conn_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	TAILQ_INIT(&s->all);
	TAILQ_INIT(&s->held);
	buf_init(&s->frame_scratch);
	buf_init(&s->reply_scratch);
}

void conn_set_finish(struct conn_set *s)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&s->all)) != NULL) {
		if (c->held)
			TAILQ_REMOVE(&s->held, c, held_link);
		TAILQ_REMOVE(&s->all, c, link);
		bufferevent_free(c->bev);
		free(c);
	}
	s->count = 0;
	buf_finish(&s->frame_scratch);
	buf_finish(&s->reply_scratch);
}

int conn_new(struct conn_set *s, struct event_base *base, evutil_socket_t fd)
{
	struct conn *c;
	int one = 1;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_warn("out of memory for a connection");
		goto fail_fd;
	}
	c->set = s;
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		log_warn("out of memory for a connection");
		goto fail_free;
	}
	/* Replies go out in batches already; Nagle would only delay them. Fails on Unix
	 * sockets, harmlessly. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bufferevent_setcb(c->bev, conn_on_read, conn_on_write, conn_on_event, c);
	/* At most one whole frame is buffered: the header is checked before the body is read. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, CODEC_HEADER_BYTES + (size_t)s->cfg.max_frame);
	bufferevent_setwatermark(c->bev, EV_WRITE, s->cfg.output_high_bytes / 2, 0);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) == -1) {
		log_warn("cannot watch a new connection");
		bufferevent_free(c->bev);
		free(c);
		return -1;
	}
	TAILQ_INSERT_TAIL(&s->all, c, link);
	s->count++;
	return 0;

fail_free:
	free(c);
fail_fd:
	evutil_closesocket(fd);
	return -1;
}

bool conn_set_has_held(const struct conn_set *s)
{
	return !TAILQ_EMPTY(&s->held);
}

void conn_set_release_held(struct conn_set *s, bool committed)
{
	struct conn_list batch;
	struct conn *c;

	/* Work on a detached list: releasing may let a connection hold again (next turn). */
	TAILQ_INIT(&batch);
	while ((c = TAILQ_FIRST(&s->held)) != NULL) {
		TAILQ_REMOVE(&s->held, c, held_link);
		TAILQ_INSERT_TAIL(&batch, c, held_link);
	}
	while ((c = TAILQ_FIRST(&batch)) != NULL) {
		TAILQ_REMOVE(&batch, c, held_link);
		c->held = false;
		if (!committed) {
			conn_close(c);
			continue;
		}
		bufferevent_enable(c->bev, EV_WRITE);
		if (!c->closing)
			update_reading(c);
	}
}

void conn_set_shutdown(struct conn_set *s)
{
	struct conn *c, *next;

	s->stopping = true;
	for (c = TAILQ_FIRST(&s->all); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->lingering)
			conn_close(c);
		else
			begin_closing(c);
	}
}
