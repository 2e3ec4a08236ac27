#ifndef SESSD_CLIENT_WIRE_H
#define SESSD_CLIENT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "seal.h"
#include "url.h"

/*
 * The client's socket layer: connecting with a deadline, and pumping frames both ways on a
 * non-blocking socket with poll(). It knows frames (a 4-byte length and a body) but not what
 * they carry. Results are libsessd codes (sessd.h).
 */

/* wire_now_ms(): a monotonic clock in milliseconds, for deadlines. */
int64_t wire_now_ms(void);

/*
 * wire_connect(u, deadline_ms, err, err_size):
 * Open a non-blocking, close-on-exec stream socket, never at descriptor 0, 1 or 2 (a process
 * may have closed its standard ones), to ${u} (trying each address getaddrinfo gives, with
 * TCP_NODELAY on TCP), waiting until ${deadline_ms} (wire_now_ms) at most. Name resolution
 * itself is not bounded by the deadline. A TCP connection that reached itself (its local
 * address and port are its peer's: nothing listens there) is closed with a reset, leaving no
 * TIME_WAIT to hold the port, and fails as a refused one. Returns the fd (the caller closes
 * it), or -1 with errno set (ECONNREFUSED for a connection that reached itself) and words in
 * ${err}: strerror of the failing step, or why the host did not resolve (errno ENOMEM when
 * the resolver had no memory). The words do not
 * repeat the URL; the caller names it.
 */
int wire_connect(const struct url *u, int64_t deadline_ms, char *err, size_t err_size);

/*
 * Called with each complete reply frame's body, which is borrowed until the call returns.
 * Returns SESSD_OK to go on, or another code to stop the exchange with that code.
 */
typedef int (*wire_frame_fn)(void *ctx, const uint8_t *body, size_t len);

struct wire_exchange {
	int fd;
	const uint8_t *out; /* whole frames to send; borrowed */
	size_t out_len;
	size_t replies;     /* frames to read before the exchange is done */
	uint32_t max_frame; /* a reply body longer than this is refused unread (the caller caps
	                     * it: the read buffer may grow to about twice this) */
	int timeout_ms;     /* the whole exchange must end within it, a batch's too */
	struct buf *in;     /* a reusable read buffer; left empty afterwards on success */
	/* A sealed connection (PROTOCOL.md, "Sealed connections"): what arrives is records, each
	 * opened with seal into in as soon as it is whole; raw, a reusable buffer, holds a record
	 * whose end has not arrived (at most one record and one read). out must be records
	 * already. NULL for a plain connection. */
	struct seal *seal;
	struct buf *raw;
	/* The exchange is a sealed connection's HELLO: after its reply the server sends records
	 * only (PROTOCOL.md, "Sealed connections"), under keys that reply completes, and sends
	 * any only as it ends the connection (a stopping sessd's SHUTTING_DOWN). So bytes after
	 * the last reply end the connection, not the exchange, as after_last says. */
	bool records_after;
	wire_frame_fn on_frame;
	void *ctx;
	char *err; /* words for a failure */
	size_t err_size;
	/* Out: every reply came, and after the last one the server's SHUTTING_DOWN (request id 0:
	 * it answers none of them), or the start of it, sent in the same breath when the server
	 * stopped right after answering. The exchange succeeded; the connection is over. */
	bool goodbye_after;
	/* Out, sealed: every reply came and authenticated, and after the last one came bytes
	 * that are none (a record that does not open, a frame that answers nothing: a record
	 * doubled on the path, either way). The exchange succeeded, as its replies say; the
	 * connection is over. */
	bool after_last;
	/* Out: the bytes of out the socket took, whatever the result. A frame whose last byte is
	 * not among them cannot have been carried out: the server acts on whole frames only. */
	size_t sent;
};

/*
 * wire_run(x):
 * Send ${x->out} while reading replies, so that neither side can block on a full socket
 * buffer, until ${x->replies} frames have been handed to ${x->on_frame}. A write refused
 * because the peer closed stops the sending but not the reading, so a reply the server sent
 * before closing (TOO_LARGE, NOT_READY) still arrives. Returns SESSD_OK, SESSD_ERR_TIMEOUT,
 * SESSD_ERR_CLOSED, SESSD_ERR_PROTOCOL (a frame length of 0 or over max_frame, bytes after
 * the last reply of a plain connection but a sealed one's HELLO; sealed, a record of a malformed
 * length or one that does not open, before the last reply), SESSD_ERR_NOMEM, or what on_frame
 * returned. After an error the connection is in an unknown state and must be closed.
 */
int wire_run(struct wire_exchange *x);

#endif
