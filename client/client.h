#ifndef SESSD_CLIENT_CLIENT_H
#define SESSD_CLIENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "codec.h"
#include "ids.h"
#include "seal.h"
#include "sessd.h"
#include "url.h"
#include "wire.h"

/*
 * The inside of a struct sessd_client, shared by the blocking calls (sessd.c) and the
 * batches (batch.c): the connection's life (connect, HELLO, drop, reconnect), request ids,
 * reply checking and error words. Not installed.
 */

#define CLIENT_DEFAULT_TIMEOUT_MS 5000
#define CLIENT_DEFAULT_NAME       "libsessd"
/* HELLO's client_name: at most 64 bytes (PROTOCOL.md), name, NUL and process identity. */
#define CLIENT_HELLO_NAME_BYTES 64
/* "PID.NONCE": a pid of up to 10 digits, a dot, 8 hex digits and the NUL snprintf needs. */
#define CLIENT_PROCESS_ID_BYTES 20
#define CLIENT_ERRMSG_SIZE      SESSD_ERRMSG_SIZE
/*
 * The largest frame body the client sends or reads, whatever HELLO announces: sessd's own
 * largest --max-frame (CONFIG_MAX_MAX_FRAME, daemon/config.h), so every sessd is taken at its
 * word. A reply is buffered whole before it is decoded: a server's say-so alone must not size
 * the client's memory (the protocol lets max_frame reach 4 GiB - 1).
 */
#define CLIENT_MAX_FRAME (1024u * 1024u * 1024u)
/*
 * The longest and the shortest secret: sessd's own limits for --auth-file (AUTH_MIN_SECRET,
 * AUTH_MAX_SECRET in daemon/auth.h), so one file serves the daemon and its clients, and a
 * secret no sessd can hold is refused before anything is sent rather than at every HELLO.
 */
#define CLIENT_MAX_SECRET 1024u
#define CLIENT_MIN_SECRET 16u

struct sessd_client {
	struct url url;
	int fd; /* -1 between a broken connection and the next call */
	/* The process that opened fd. In any other (a fork's child) fd and seal are the
	 * opener's, still in use there: client_ready leaves them to it and reconnects. */
	pid_t pid;
	/* What fd was when it was opened (fstat): a fork's child may since have put a file of
	 * its own at that number, which client_drop must then not close. */
	dev_t fd_dev;
	ino_t fd_ino;
	int timeout_ms;
	char ns[IDS_MAX_NAMESPACE_LEN + 1];
	size_t ns_len; /* 0: the default namespace, sent as nil */
	char client_name[65];
	uint32_t max_frame; /* from the last HELLO, at most CLIENT_MAX_FRAME */
	/* plain_auth: HELLO's auth field, the secret as msgpack bin, in read-only
	 * sodium_malloc'd memory (guarded, wiped when freed); NULL otherwise. */
	uint8_t *auth_field;
	size_t auth_field_len;
	/* Sealed (a secret without plain_auth): the key derived from the secret (seal_psk), in
	 * read-only sodium_malloc'd memory; the secret itself is not kept. NULL otherwise. */
	uint8_t *psk;
	bool plain_auth;   /* a secret given later is kept as auth_field, not as psk */
	bool require_auth; /* refuse a HELLO reply without auth: true */
	/* The live connection's key exchange (fd != -1 and psk set), made fresh for each
	 * connection; sealed once the server has proved the secret in its HELLO reply, from when
	 * every byte either way is records (PROTOCOL.md, "Sealed connections"). */
	struct seal *seal;
	bool sealed;
	/* Sealed: a record has gone out on this connection. Until one has, sessd may close it at
	 * its --hello-timeout (a recorded HELLO can be replayed), with SHUTTING_DOWN. */
	bool spoke;
	/* The last exchange was the first on a sealed connection and met SHUTTING_DOWN before
	 * any reply: sessd carried out none of it (see client_resend_ready). */
	bool resendable;
	/* Sealed: the server's key (s_pk) of the live connection's HELLO, by which a RETIRE names
	 * it (PROTOCOL.md, "RETIRE"). Public, not a secret. */
	uint8_t server_key[SEAL_KEY_BYTES];
	/* A call's sealed connection broke or timed out (what it sent may or may not be carried
	 * out, and a record of it held on the path could land later): its server key, retired
	 * before anything else goes out on the next connection (client_ready). */
	bool owes_retire;
	uint8_t owed_key[SEAL_KEY_BYTES];
	/* The last call failed with a change of its own sent whole and not answered: it may or
	 * may not have been carried out (sessd_outcome_unknown). Cleared as each call starts. */
	bool outcome_unknown;
	/* The last call failed SESSD_ERR_NOMEM after sessd answered a change of it: carried out,
	 * its result (a FLASH_POP's messages) not kept (sessd_result_lost). Cleared as each call
	 * starts. */
	bool result_lost;
	char server_id[33];
	uint64_t next_request_id;
	struct buf out;     /* the frame of a blocking call, reused */
	struct buf in;      /* replies being read, reused */
	struct buf records; /* sealed: what one exchange sends, as records */
	struct buf raw;     /* sealed: a record read whose end has not arrived */
	char errmsg[CLIENT_ERRMSG_SIZE];
};

/*
 * client_error(c, code, fmt, ...):
 * Put words for ${code} in c->errmsg. Returns ${code}, so callers can `return client_error()`.
 */
int client_error(struct sessd_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * client_put_printable(dst, size, at, src, len):
 * Write the ${len} bytes of ${src} (borrowed) at ${dst} + ${at}, as many as fit in ${size}
 * with a NUL after them, each byte outside printable ASCII (escapes, newlines, NULs) as '?':
 * for words that may reach a terminal. ${at} must be under ${size}. Returns the new end.
 */
size_t client_put_printable(char *dst, size_t size, size_t at, const void *src, size_t len);

/*
 * client_ready(c):
 * Make sure ${c} has a live connection that has said HELLO: reconnect when the last one broke,
 * the server has closed it since (nothing is pending on it between calls, so anything
 * readable means it is gone), or another process opened it (${c} was inherited across fork():
 * the inherited socket is closed, not shut down, and its seal wiped). With c->psk the new
 * connection is sealed. Returns SESSD_OK with c->fd live, SESSD_ERR_CONNECT (with errno from
 * the connect, or ETIMEDOUT or ECONNRESET from HELLO: ECONNRESET also for a SHUTTING_DOWN
 * right behind a HELLO reply), the
 * server's status if it refused the HELLO (SESSD_ERR_AUTH with errno EACCES: it refused the
 * secret or its absence), SESSD_ERR_AUTH with errno EPERM when c->require_auth is set and the
 * server did not check the secret, or when sealing and the server did not prove it holds the
 * secret (nothing more is sent to it), SESSD_ERR_PROTOCOL (errno EPROTO: a HELLO reply this
 * client cannot use, such as one without max_frame), or SESSD_ERR_NOMEM. On failure c->errmsg
 * says "cannot connect to URL: " and why.
 */
int client_ready(struct sessd_client *c);

/*
 * client_connect(c):
 * client_ready for sessd_connect, which opens a connection ahead of its use: on a sealed one,
 * also a PING at once, its first record (PROTOCOL.md, "Replayed HELLOs"). sessd counts a sealed
 * connection as one that showed the secret only once a record from it opens: until then it
 * gives way at --max-connections 0.5 s after its HELLO reply, is closed at --hello-timeout, and
 * is admitted (or turned away, BUSY) only with that record. A PING that crosses a close
 * (SHUTTING_DOWN before any reply) goes once more on a new connection (client_resend_ready).
 * Returns what client_ready returns, and for the PING: SESSD_ERR_BUSY (errno EAGAIN: no room,
 * as a plain HELLO's BUSY), SESSD_ERR_CONNECT (errno ETIMEDOUT, or ECONNRESET: the connection
 * broke or the server is stopping), SESSD_ERR_PROTOCOL (EPROTO), SESSD_ERR_NOMEM (ENOMEM), or
 * another status of the server's (ECONNREFUSED); c->errmsg says "cannot connect to URL: " and
 * why, and the connection is dropped.
 */
int client_connect(struct sessd_client *c);

/*
 * client_set_secret(c, secret, len):
 * Take the ${len} bytes of ${secret} (borrowed) for every HELLO, replacing any earlier secret:
 * with c->plain_auth a copy to show as it is (c->auth_field), else only the key derived from
 * it (c->psk) to seal connections with. Returns SESSD_OK, SESSD_ERR_USAGE (errno EINVAL:
 * ${len} is outside CLIENT_MIN_SECRET..CLIENT_MAX_SECRET) or SESSD_ERR_NOMEM (errno ENOMEM; also
 * when libsodium cannot start), with c->errmsg saying which (never the secret).
 */
int client_set_secret(struct sessd_client *c, const void *secret, size_t len);

/*
 * client_read_secret_file(c, path):
 * Read the secret from the file ${path} as sessd reads --auth-file: a regular file that other
 * users cannot access, its bytes less one trailing "\n" or "\r\n", CLIENT_MIN_SECRET to
 * CLIENT_MAX_SECRET of them; then as client_set_secret. The bytes read pass only through
 * sodium_malloc'd memory. Returns SESSD_OK, SESSD_ERR_USAGE with errno from open, fstat or
 * read, EPERM (other users can access the file) or EINVAL (not a regular file, or a secret of
 * the wrong length), or SESSD_ERR_NOMEM; on failure c->errmsg names ${path} and says why
 * (never a byte of the file).
 */
int client_read_secret_file(struct sessd_client *c, const char *path);

/* client_forget_secret(c): wipe and free c's secret or key, if it has one. */
void client_forget_secret(struct sessd_client *c);

/* client_has_secret(c): whether ${c} was given a secret (plain or sealed). */
bool client_has_secret(const struct sessd_client *c);

/*
 * client_drop(c): close the connection (close() alone, never shutdown(): a fork's parent may
 * still use it) and free its seal, wiped; the next call reconnects. In a process other than
 * the one that opened it, the descriptor is closed only while it is still that socket.
 */
void client_drop(struct sessd_client *c);

/*
 * client_trim(c): free those of c's reusable buffers (the frame of a blocking call, the
 * replies read) that a large request or reply has grown past what sessd's default max_frame
 * needs, so that a client holds what ordinary sessions need, not the most it ever sent or
 * read (client_exchange does the same for the records). For the end of a call: they are empty
 * between calls, and each grows again on use.
 */
void client_trim(struct sessd_client *c);

/* client_next_id(c): the request id for the next request (increasing from 1). */
uint64_t client_next_id(struct sessd_client *c);

/*
 * client_check_reply(c, body, len, op, request_id, rep):
 * Decode a reply frame body into ${rep} (borrowing ${body}) and check it answers
 * ${request_id}, an ${op} request. Returns SESSD_OK (read rep->result), SESSD_NOT_FOUND (only
 * for the ops that have it: GET, LOAD, SET_IF, TOUCH, TOUCH_IF, DESTROY, TTL, FLASH_POP,
 * FLASH_PUSH_EXISTING), the server's error status (CONFLICT only for SET_IF and TOUCH_IF) (its
 * message is then in c->errmsg, bytes outside printable ASCII shown as '?'), or SESSD_ERR_PROTOCOL.
 */
int client_check_reply(struct sessd_client *c, const uint8_t *body, size_t len, uint32_t op,
                       uint64_t request_id, struct codec_reply *rep);

/* client_status_closes(status): whether the server closes the connection after ${status}. */
bool client_status_closes(int status);

/*
 * client_exchange(c, out, out_len, replies, on_frame, ctx):
 * Send ${out_len} bytes of frames (borrowed) on c's connection and hand ${replies} reply
 * frames to ${on_frame} (wire_run). On a sealed connection the frames go as records, as few as
 * they fit in, and the replies are opened from records. On any failure the connection is
 * dropped and c->errmsg says why; c->outcome_unknown is set when a change among the frames
 * that got no reply had left whole (it is never cleared here). Returns what wire_run returned, or
 * SESSD_ERR_NOMEM (no memory to seal the frames in).
 */
int client_exchange(struct sessd_client *c, const uint8_t *out, size_t out_len, size_t replies,
                    wire_frame_fn on_frame, void *ctx);

/*
 * client_call_starts(c): for each public call that may send, before anything else: the results
 * of sessd_outcome_unknown and sessd_result_lost are the new call's from here on.
 */
void client_call_starts(struct sessd_client *c);

/*
 * client_resend_ready(c):
 * After an exchange that failed with SESSD_ERR_SHUTTING_DOWN, whether to send it again: when
 * it was the first on a sealed connection and nothing of it was answered, sessd closed the
 * connection at its --hello-timeout as the request crossed its SHUTTING_DOWN on the wire (it
 * carried out nothing, and is not stopping), so reconnect. Returns true with a new connection
 * (once per exchange); false when the exchange is not to be sent again or the reconnection
 * failed, c->errmsg and errno then as the SHUTTING_DOWN left them.
 */
bool client_resend_ready(struct sessd_client *c);

/*
 * client_retire_owed(c):
 * When ${c} owes a RETIRE (c->owes_retire), send it on c's live connection, just made by
 * client_ready, and wait for its reply: from then on nothing sent on the connection that broke
 * will be carried out. Returns SESSD_OK (retired, or nothing owed, or an older server that
 * answered UNKNOWN_OP: nothing can be retired there), or the failure (the connection dropped,
 * c->errmsg saying why; still owed).
 */
int client_retire_owed(struct sessd_client *c);

#endif
