#ifndef SESSD_H
#define SESSD_H

/*
 * libsessd: the C client of the sessd session store.
 *
 * One struct sessd_client is one connection to one daemon; it is not thread-safe (use one per
 * thread). Clients in different threads run at once (the library keeps no state outside them),
 * as do the calls that take no client (sessd_id_new, sessd_data_tag, sessd_strerror). The
 * library's descriptors (connections, an auth_file being read) are close-on-exec, and a
 * connection never takes 0, 1 or 2 (a process may have closed stdio). A client may be used in a
 * forked child: it reconnects there, leaving the parent's connection to the parent (closed in
 * the child, not shut down, unless the child has put a file of its own at that descriptor's
 * number; a sealed connection's keys wiped there), so a pre-fork server may connect before
 * fork(). Never use one client from two processes at once otherwise, nor in a child while the
 * parent is in a call on it.
 *
 * Every wait of a call is bounded by the client's timeout (sessd_options.timeout_ms), each on
 * its own: a call that must reconnect first waits up to the timeout for the connect, again
 * for the HELLO, and again for its reply, so up to three times the timeout (four for a sealed
 * client that owes a RETIRE; twice that for a first call sent again after --hello-timeout;
 * name resolution is not bounded at all). A batch's run is one wait: all its replies within the
 * timeout (sessd_batch_run). A signal caught during a wait (EINTR) does not end the call, which
 * waits on within its timeout. Writes
 * use MSG_NOSIGNAL: a closed peer is an error code, never a SIGPIPE in the application. Before it
 * sends, a call checks that the idle connection has not been closed by the server meanwhile
 * (a restart) and reconnects at once if it has, so most restarts cost no failed call.
 *
 * Calls return an int that is SESSD_OK (0), SESSD_NOT_FOUND (1), or one of the errors below;
 * sessd_errmsg() then says what went wrong in words (the server's message for server errors).
 * errno is set for every failure of sessd_connect and sessd_connect_errbuf, and of the calls
 * that queue a batch request (each says which value means what); after any other call, and
 * after SESSD_OK, its value is unspecified: the code and sessd_errmsg() say what happened.
 * SESSD_NOT_FOUND comes only from GET, LOAD, SET_IF, TOUCH, TOUCH_IF, DESTROY, TTL,
 * FLASH_POP, FLASH_PUSH_EXISTING and DESTROY_IF_FLASH; a server answering it to another
 * request is a protocol error. SESSD_CONFLICT (14) comes only from SET_IF, TOUCH_IF and
 * DESTROY_IF_FLASH (sessd_set_if, sessd_touch_if, sessd_destroy_if_flash, and
 * sessd_batch_status of a sessd_batch_set_if); to another request it is a protocol error too.
 * Results reach output arguments on SESSD_OK only: result pointers (and GET's length) are cleared
 * first and stay so on any other result; numbers are left untouched.
 *
 * After a broken connection (SESSD_ERR_CLOSED, SESSD_ERR_TIMEOUT, SESSD_ERR_PROTOCOL) the
 * call that saw it fails, and the next call reconnects (and repeats HELLO) before it sends.
 * A request whose reply was lost may or may not have been carried out: a FLASH_POP so lost
 * may have removed its messages, which are then gone.
 *
 * SESSD_ERR_SHUTTING_DOWN is the other way a connection ends: the server is stopping (sessd
 * on SIGTERM or SIGINT), and said so after the reply to every request it carried out. The
 * request that gets it (every request of a batch without a reply, see sessd_batch_run) was
 * NOT carried out, and may be sent again at once or later: the next call reconnects, to the
 * restarted server or failing with SESSD_ERR_CONNECT while none is up. One exception is sent
 * again by the call itself: sessd closes a sealed connection from which no request came
 * within its --hello-timeout with SHUTTING_DOWN, and a first call (or batch) that crossed
 * that close on the wire goes again, once, on a new connection; it fails with
 * SESSD_ERR_SHUTTING_DOWN only when that reconnection fails.
 *
 * What the server sends is checked before it is used: a reply frame longer than
 * sessd_max_frame() (at most 1 GiB, whatever the server announces) is refused from its
 * header, and the memory a reply takes grows with the bytes that arrive; counts and lengths
 * PROTOCOL.md bounds (LIST entries and ids, FLASH_POP types and messages) are checked, so the
 * result a reply decodes to is bounded by max_frame (sessd_flash_pop, sessd_stats). On a sealed
 * connection (sessd_options) each record's length is checked from its header and the record
 * authenticated before any of it is used. A reply that fails a check is SESSD_ERR_PROTOCOL,
 * and the connection is dropped.
 *
 * Ids are opaque bytes (1..128). The namespace is the client's (sessd_set_namespace).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The release (sessctl -V): meson.build's project version, which the build checks. */
#define SESSD_VERSION "0.1.0"
/*
 * This library's own version, which the build checks against the library's file name
 * (libsessd.so.0.MINOR.PATCH) and pkg-config's (pkg-config --modversion libsessd): MAJOR is the
 * soname's number; MINOR the newest symbol version, LIBSESSD_0.MINOR, raised with each call
 * added; PATCH a release that only mends. So a program can ask at build time for a call that
 * came later: sessd_result_lost came in 0.2 (#if SESSD_LIB_VERSION_MINOR >= 2, or pkg-config's
 * libsessd >= 0.2). It is not SESSD_VERSION, the whole project's release, which moves apart.
 */
#define SESSD_LIB_VERSION "0.2.0"
/* Its numbers, for #if. */
#define SESSD_LIB_VERSION_MAJOR 0
#define SESSD_LIB_VERSION_MINOR 2
#define SESSD_LIB_VERSION_PATCH 0
/* Length of an id from sessd_id_new, without its NUL. */
#define SESSD_ID_LEN 43
/* Length of the tag of session data (sessd_data_tag, sessd_set_if, sessd_touch_if). */
#define SESSD_TAG_BYTES 16
/*
 * The size of the buffer a client keeps its words in (sessd_errmsg), NUL included: an errbuf
 * of this size (sessd_connect_errbuf) cuts nothing that sessd_errmsg would show.
 */
#define SESSD_ERRMSG_SIZE 512

enum sessd_result {
	SESSD_OK = 0,
	SESSD_NOT_FOUND = 1,
	/* Errors the server reports; the numbers are the wire statuses (PROTOCOL.md). */
	SESSD_ERR_BAD_REQUEST = 2,
	SESSD_ERR_TOO_LARGE = 3,
	SESSD_ERR_NO_MEMORY = 4,
	SESSD_ERR_UNKNOWN_OP = 5,
	SESSD_ERR_BAD_VERSION = 6,
	SESSD_ERR_NOT_READY = 7,
	SESSD_ERR_IO = 8,
	SESSD_ERR_AUTH = 9,
	SESSD_ERR_INTERNAL = 10,
	/* The server is stopping: the request was not carried out (see above); reconnect. */
	SESSD_ERR_SHUTTING_DOWN = 11,
	SESSD_ERR_LIMIT = 12,
	/* The server had no room: for this connection, at its --max-connections (from
	 * sessd_connect or a call's reconnection: sealed and let in on trial, in answer to the
	 * first record after the HELLO, sessd_connect's PING or the call's request), or for an
	 * unfinished request. The connection is dropped; try again later. */
	SESSD_ERR_BUSY = 13,
	/* An answer rather than an error, as SESSD_NOT_FOUND: sessd_set_if, sessd_touch_if (or
	 * a batch's SET_IF) found data other than what its tag names, or sessd_destroy_if_flash
	 * found another message (or none) first in its queue; nothing changed. The connection
	 * stays open. */
	SESSD_CONFLICT = 14,
	/* LIST, NAMESPACES or CLEAR (sessd_list, sessd_namespaces, sessd_clear) on a server with
	 * --admin-auth-file, from a client that did not show its admin secret: connect with that
	 * secret's file as auth_file. Nothing was done; the connection stays open. */
	SESSD_ERR_FORBIDDEN = 15,
	/* Errors found on the client side. */
	SESSD_ERR_USAGE = 100,    /* a bad argument: bad URL, id length, NULL pointer */
	SESSD_ERR_CONNECT = 101,  /* could not connect or complete HELLO */
	SESSD_ERR_TIMEOUT = 102,  /* no reply within the timeout; the connection is reset */
	SESSD_ERR_CLOSED = 103,   /* the server closed the connection or it broke */
	SESSD_ERR_PROTOCOL = 104, /* the server sent something this client cannot read */
	SESSD_ERR_NOMEM = 105     /* the client could not allocate */
};

struct sessd_client;

/*
 * Options of sessd_connect. Zero-initialise it and set what you need, so every option you do
 * not name keeps its default: in C `struct sessd_options o = {0};` (or designated
 * initialisers); in C++ `sessd_options o = {};` or `sessd_options o{};` (value-initialisation:
 * `= {0}` draws -Wmissing-field-initializers from g++ and clang++ with -Wall -Wextra).
 *
 * ABI: any change to the size or layout of a public struct (this one included, for a new
 * option) comes with a new soname (libsessd.so.0 now), never within one: the library reads
 * the whole struct, so an application built against an older, smaller one would have it read
 * past the end. One such change came within libsessd.so.0, before this rule: the fields from
 * auth on (commit 03c7163). An application built against a sessd.h whose sessd_options ends
 * at client_name must be rebuilt: this library reads 32 bytes past its struct (libsessd(3),
 * "Upgrading").
 *
 * The shared secret (PROTOCOL.md, HELLO; sessd --auth-file) is given either as bytes (auth,
 * auth_len) or as a file (auth_file), not both. auth_file is read as sessd reads its
 * --auth-file, so one file serves both: a regular file other users cannot access (mode &
 * 0007 == 0), its bytes less one trailing "\n" or "\r\n", 16 to 1024 of them.
 *
 * With a secret, every connection (reconnections included) is sealed (PROTOCOL.md, "Sealed
 * connections"): HELLO proves the client holds the secret without sending it, the server must
 * prove it holds it too, and everything after HELLO is encrypted and authenticated with keys
 * made for that connection. The client keeps only a key derived from the secret, in
 * sodium_malloc'd memory wiped by sessd_close. A server that cannot prove the secret (a wrong
 * secret, no --auth-file, an impostor) is SESSD_ERR_AUTH and is sent nothing more; a record
 * from the server that does not authenticate is SESSD_ERR_PROTOCOL and drops the connection.
 *
 * plain_auth sends the secret itself as bin in every HELLO instead, and nothing is sealed: for
 * servers that cannot seal (sessd before sealed connections). The client then keeps a copy of
 * the secret in sodium_malloc'd memory (wiped by sessd_close). The secret and the sessions
 * travel unencrypted, and a client cannot tell an impostor before it has given the secret
 * away: across an untrusted network use a tunnel. sessd takes a plain secret only over Unix
 * sockets and from loopback addresses unless started with --auth-plain yes (else
 * SESSD_ERR_AUTH, EACCES). No key or secret is put in an errmsg.
 */
struct sessd_options {
	int timeout_ms;          /* per call; 0 means the default, 5000 */
	const char *ns;          /* the namespace; NULL means "default" */
	const char *client_name; /* sent in HELLO, at most 64 bytes (more: SESSD_ERR_USAGE);
	                          * NULL means "libsessd" */
	const void *auth;        /* the secret, auth_len (16..1024) bytes, copied; NULL: none */
	size_t auth_len;
	const char *auth_file; /* a file holding the secret, read once by sessd_connect */
	/* Refuse (SESSD_ERR_AUTH) a server whose HELLO reply does not say it checked the
	 * secret (auth: true), such as one started without --auth-file; needs a secret. A
	 * sealed connection has it always. */
	bool require_auth;
	/* Send the secret as it is rather than seal the connection (see above); needs a
	 * secret. */
	bool plain_auth;
};

/*
 * sessd_connect(url, opts, client):
 * Connect to "unix:/path/to/socket" (or "unix:///path/to/socket", or the bare absolute path
 * "/path/to/socket"; "unix:relative/path" too) or "tcp://host:port" (a "/" may follow the port),
 * the forms connect-sessd takes, and say HELLO. ${opts} may be NULL
 * (defaults); it is copied. On SESSD_OK, *${client} is a new client to free with sessd_close.
 * On failure *${client} is NULL and the returned code says why; sessd_strerror names it.
 * SESSD_ERR_PROTOCOL (errno EPROTO): the server's HELLO reply is unusable (malformed, no
 * max_frame or one under 4096, a server_id that is not 32 hex digits), or not framed as
 * sessd's at all (an empty frame, one over the 4096 bytes a HELLO reply fits in, bytes after
 * it): most often another service on that port, whose first bytes the words then show.
 * SESSD_ERR_AUTH: errno EACCES, the server refused the secret (AUTH_FAILED: missing or
 * wrong; or it has no secret to seal with); errno EPERM, the client refused the server: when
 * sealing, it did not prove it holds the secret (no kx, auth not true, a malformed kx or a
 * wrong proof in its HELLO reply), or require_auth is set and it did not check the secret.
 * The same code comes from any later call whose reconnection fails so, with sessd_errmsg
 * saying which.
 * SESSD_ERR_BUSY (errno EAGAIN): the server is at its connection limit (sessd
 * --max-connections) and none of its connections may give way; try again later. A sealed
 * connection is admitted only with its first record, so on one sessd_connect sends a PING
 * right after the HELLO and returns its answer (this too); the PING also keeps the
 * connection, which sessd would otherwise close for a newcomer half a second after its HELLO
 * reply (at --max-connections) or at its --hello-timeout. A PING without an answer is a
 * HELLO's failure: SESSD_ERR_CONNECT with ETIMEDOUT or ECONNRESET, below.
 * SESSD_ERR_BAD_VERSION (errno EPROTONOSUPPORT): the server speaks another protocol version.
 * Any other status the server refuses the HELLO with is returned as it is, errno ECONNREFUSED.
 * SESSD_ERR_CONNECT: errno from the step that failed: the connect (ENOENT, ECONNREFUSED,
 * ETIMEDOUT, ...), a host name that does not resolve (EHOSTUNREACH, or the resolver's errno
 * when it failed on a system error; the words give its reason), or ETIMEDOUT for a HELLO
 * without a reply in time, ECONNRESET for one whose connection broke (or that the stopping
 * server answered SHUTTING_DOWN, or followed with it at once). A later call whose
 * reconnection fails so returns SESSD_ERR_CONNECT having sent nothing.
 * SESSD_ERR_NOMEM: errno ENOMEM, for the client's own want of memory at any step (the
 * resolver's, the HELLO reply's included).
 * SESSD_ERR_USAGE: a bad URL or option, errno EINVAL: both auth and auth_file, auth_len
 * outside 16..1024, auth_len without auth, require_auth or plain_auth without a secret. For
 * auth_file also errno from open or read (ENOENT, EACCES, ...); EPERM when other users can
 * access the file; EINVAL when it is not a regular file or its secret is not 16 to 1024
 * bytes.
 * With no client there is no sessd_errmsg: sessd_connect_errbuf gives the words as well.
 */
int sessd_connect(const char *url, const struct sessd_options *opts, struct sessd_client **client);

/*
 * sessd_connect_errbuf(url, opts, client, errbuf, errbuf_len):
 * sessd_connect, which also writes words for its result into ${errbuf}, the caller's buffer of
 * ${errbuf_len} bytes, written only during the call and not kept: on failure the words
 * sessd_errmsg would give, cut to errbuf_len - 1 bytes and a NUL (SESSD_ERRMSG_SIZE cuts
 * nothing); on SESSD_OK "". With ${errbuf} NULL or ${errbuf_len} 0 it writes nothing and is
 * sessd_connect. Returns what sessd_connect returns, with the same errno.
 * The words name the address ("cannot connect to unix:/run/sessd/sessd.sock: ...") for a failure to
 * connect or to complete HELLO, and say which: the connect's strerror; a HELLO that timed out
 * or whose connection broke; the server's refusal of the secret with its AUTH_FAILED message
 * (such as one without --auth-file refusing to seal); a server that did not prove the secret
 * and how; a HELLO reply that is unusable and how. Else the bad URL or option, or the auth_file
 * and why it cannot be used (an auth_file that names no file, its directory not there either,
 * by its length only: it may be the secret itself). No key or secret is ever in them; the
 * server's words are shown with bytes outside printable ASCII as '?'.
 */
int sessd_connect_errbuf(const char *url, const struct sessd_options *opts,
                         struct sessd_client **client, char *errbuf, size_t errbuf_len);

/* sessd_close(c): close the connection and free ${c}. sessd_close(NULL) does nothing. */
void sessd_close(struct sessd_client *c);

/*
 * sessd_errmsg(c): words for the last error on ${c} (or on a batch of ${c}); owned by ${c},
 * valid until the next call on ${c} or its batch. For a server error, its status name and the
 * start of its message, bytes outside printable ASCII shown as '?' (the words may be printed on
 * a terminal). A reconnection that fails names the address, as sessd_connect_errbuf does.
 */
const char *sessd_errmsg(const struct sessd_client *c);

/* sessd_strerror(code): a static name for a result code, such as "not found". */
const char *sessd_strerror(int code);

/* sessd_set_namespace(c, ns): use namespace ${ns} (1..64 bytes, copied) from now on. */
int sessd_set_namespace(struct sessd_client *c, const char *ns);

/*
 * sessd_set_namespace_len(c, ns, ns_len): sessd_set_namespace for a name of ${ns_len} bytes
 * (1..64, copied), which may hold any byte, NUL included, as the protocol allows; for a
 * name sessd_namespaces listed. Returns SESSD_OK, or SESSD_ERR_USAGE (nothing changed).
 */
int sessd_set_namespace_len(struct sessd_client *c, const void *ns, size_t ns_len);

/*
 * sessd_set_timeout(c, timeout_ms): bound each wait of ${c}'s calls from now on (connect,
 * HELLO, replies, as sessd_options.timeout_ms does) by ${timeout_ms}; 0 means the default,
 * 5000. Lets a caller connect with a short timeout and then give one slow request a long one.
 * Returns SESSD_OK, or SESSD_ERR_USAGE for a negative ${timeout_ms} (nothing changed).
 */
int sessd_set_timeout(struct sessd_client *c, int timeout_ms);

/*
 * sessd_max_frame(c): the largest frame body ${c} sends or reads: the server's max_frame
 * from the last HELLO that succeeded, at most 1 GiB (sessd's own largest --max-frame)
 * whatever the server announces. A failed reconnection keeps the one before, so a batch
 * queued during an outage is sized against the server's limit.
 */
uint32_t sessd_max_frame(const struct sessd_client *c);

/*
 * sessd_server_id(c): the server id from the last HELLO that succeeded (32 hex digits, new at
 * each daemon start): a failed reconnection keeps the one before; "" for a NULL ${c}. Owned
 * by ${c}, which rewrites it when a reconnection's HELLO succeeds.
 */
const char *sessd_server_id(const struct sessd_client *c);

/*
 * sessd_id_new(out):
 * Write a new session id, 256 bits from libsodium as 43 characters of base64url, and a NUL.
 * Returns SESSD_OK, or SESSD_ERR_USAGE when libsodium cannot start.
 */
int sessd_id_new(char out[SESSD_ID_LEN + 1]);

/* --- Blocking calls: one request, one reply. --- */

int sessd_ping(struct sessd_client *c);

/*
 * sessd_retire_broken(c):
 * When a call of ${c} failed with its sealed connection broken or timed out
 * (SESSD_ERR_TIMEOUT, SESSD_ERR_CLOSED, SESSD_ERR_PROTOCOL) after a change of it had left whole,
 * that change may or may not have been carried out, and a party on the path holding its record
 * could have it carried out later (PROTOCOL.md, "What sealing does not protect against"); a
 * change cut short owes nothing (sessd opens whole records only). The next call of ${c}
 * reconnects and sends RETIRE of that connection before anything else; this does it now, for
 * a program about to exit (sessctl does). SESSD_OK once sessd has answered it (nothing sent
 * on that connection will be carried out from then on), when nothing was owed, or when the
 * server is older than RETIRE (UNKNOWN_OP: nothing can be retired there); else the failure
 * (still owed, sessd_errmsg says why).
 */
int sessd_retire_broken(struct sessd_client *c);

/*
 * sessd_outcome_unknown(c):
 * After a call of ${c} that failed with SESSD_ERR_TIMEOUT, SESSD_ERR_CLOSED,
 * SESSD_ERR_PROTOCOL, SESSD_ERR_NOMEM or SESSD_ERR_BUSY, whether it may have been carried out
 * all the same: 1 when a change of its own (SET, SET_IF, TOUCH, TOUCH_IF, DESTROY,
 * DESTROY_IF_FLASH, FLASH_PUSH, FLASH_PUSH_EXISTING, FLASH_POP, CLEAR; for a batch, any of its
 * requests left without a reply) had left whole for the server and no usable reply to it
 * came, or it was answered and its result could not be kept (SESSD_ERR_NOMEM: it was
 * carried out, a FLASH_POP's messages are gone); 0 when nothing of it can have been: it was a read
 * (GET, LOAD, TTL, COUNT, LIST, ..., which may be called again as it is), or the connection failed
 * before the last byte of the request left (a daemon that stopped or froze before reading it, a
 * socket that would take no more), or sessd turned the new sealed connection away (BUSY as the
 * reply to its first record; a plain one is turned away at its HELLO, and a BUSY to a request
 * of its is sessd dropping the connection's replies for memory: 1). The server acts on whole
 * requests only. "Left" is what this host's kernel took: over TCP a request that left may still
 * have been lost on the way, so 1 is "may have been", never "was". The value is the last such
 * call's (the blocking calls, sessd_batch_run; sessd_retire_broken leaves it as it was); after any
 * other result it is 0 or meaningless, since every other result says itself whether the request was
 * carried out (sessd_errmsg). Returns 0 for a NULL ${c}.
 */
int sessd_outcome_unknown(const struct sessd_client *c);

/*
 * sessd_result_lost(c):
 * After a call of ${c} that failed with SESSD_ERR_NOMEM, whether sessd had answered a change of
 * it and there was no memory to keep the result: 1 then (the change was carried out; a
 * FLASH_POP's messages are removed from the session and lost; sessd_outcome_unknown is 1 too);
 * 0 when no such answer was read: the call may have failed before anything was sent, or with
 * no memory for the reply's bytes, whose outcome sessd_outcome_unknown tells. For
 * sessd_batch_run, 1 when that befell any change of the batch, whatever the run returned (that
 * request's sessd_batch_status is SESSD_ERR_NOMEM). The
 * value is the last call's, as sessd_outcome_unknown's. Returns 0 for a NULL ${c}. Symbol
 * version LIBSESSD_0.2 (libsessd.so.0.2.0 and later).
 */
int sessd_result_lost(const struct sessd_client *c);

/*
 * sessd_get(c, id, id_len, data, data_len):
 * On SESSD_OK, *${data} is a malloc'd copy of the session's data (the caller frees it with
 * free(); one extra NUL byte follows the data, not counted in *${data_len}).
 * SESSD_NOT_FOUND when there is no such session, or it holds flash messages only (never set).
 */
int sessd_get(struct sessd_client *c, const void *id, size_t id_len, void **data, size_t *data_len);

/*
 * sessd_load(c, id, id_len, data, data_len, flashes):
 * sessd_get, and on SESSD_OK *${flashes} is the number of flash messages the session holds
 * (all types) at that instant, in the same step: a web application that pops flashes on each
 * page need not pop when it is 0. Other outcomes as sessd_get's, and SESSD_ERR_LIMIT also for
 * data within 10 bytes of the largest a server keeps (sessd_max_frame() - 16), whose reply
 * would not fit in max_frame: sessd_get it. SESSD_ERR_UNKNOWN_OP: the server is older than
 * LOAD (the connection stays open); sessd_get and sessd_flash_pop are what it offers.
 */
int sessd_load(struct sessd_client *c, const void *id, size_t id_len, void **data, size_t *data_len,
               uint64_t *flashes);

/*
 * sessd_set: store ${data_len} bytes of ${data} (borrowed) with a ttl in milliseconds. The
 * data may be at most sessd_max_frame() - 16 bytes (the server answers more with
 * SESSD_ERR_LIMIT), and the SET's whole frame must fit in max_frame as well (else
 * SESSD_ERR_TOO_LARGE, nothing sent): the SET's other fields take 2 + request id (1 to 9) +
 * namespace (1 for the default; else its length + 1, or + 2 from 32 bytes) + id (likewise,
 * its length + 1, or + 2 from 32 bytes) + data header (3; 5 from 64 KiB of data) + ttl (1 to
 * 9; 5 under 2^32 ms, about 49 days) bytes. So max_frame - 221 always fits, and
 * max_frame - 71 with the default namespace and a 43-byte id (sessd_id_new).
 */
int sessd_set(struct sessd_client *c, const void *id, size_t id_len, const void *data,
              size_t data_len, uint64_t ttl_ms);

/*
 * sessd_data_tag(data, len, tag):
 * Write the tag of ${len} bytes of session ${data} (NULL when ${len} is 0) to ${tag}: the
 * first SESSD_TAG_BYTES bytes of their unkeyed BLAKE2b-512 (PROTOCOL.md, "Sessions"), what
 * sessd_set_if compares with the session's data. Take it of the data sessd_get returned, or
 * of the data last stored. ${tag} is the caller's; with ${data} NULL and ${len} > 0 it is
 * all zeros, which no data has in practice.
 */
void sessd_data_tag(const void *data, size_t len, uint8_t tag[SESSD_TAG_BYTES]);

/*
 * sessd_set_if(c, id, id_len, data, data_len, ttl_ms, expect):
 * sessd_set, but only while the session's data is the data whose tag is ${expect}
 * (sessd_data_tag), checked and stored in one step on the server: a save that cannot drop
 * another client's save made since this one read the session, or bring back a session
 * destroyed meanwhile. SESSD_OK: stored, as sessd_set would (the expiry too; flashes kept).
 * SESSD_NOT_FOUND: there is no such session, or it has no data (flashes only); nothing was
 * created. Do not sessd_set it instead: it was destroyed (a logout) or expired. SESSD_CONFLICT:
 * the data changed since it was read; nothing changed. sessd_get it again, apply the change
 * to what comes back, and retry with its tag. SESSD_ERR_UNKNOWN_OP: the server is older than
 * SET_IF (the connection stays open); sessd_set is all it offers. ${expect} is borrowed.
 */
int sessd_set_if(struct sessd_client *c, const void *id, size_t id_len, const void *data,
                 size_t data_len, uint64_t ttl_ms, const uint8_t expect[SESSD_TAG_BYTES]);

/* sessd_touch: give an existing session a new ttl. SESSD_NOT_FOUND if there is none. */
int sessd_touch(struct sessd_client *c, const void *id, size_t id_len, uint64_t ttl_ms);

/*
 * sessd_touch_if(c, id, id_len, ttl_ms, expect):
 * sessd_touch, but only while the session's data is the data whose tag is ${expect}
 * (sessd_data_tag), checked and touched in one step on the server: a request that read the
 * session and changed nothing cannot undo the lifetime that another client's save, made
 * since this one read it, chose (a "remember me" that lengthened it, a "forget me" that
 * shortened it). SESSD_OK: the expiry is now + ${ttl_ms}, as sessd_touch would set it.
 * SESSD_NOT_FOUND: there is no such session, or it has no data (flashes only); nothing
 * changed. SESSD_CONFLICT: the data changed since it was read; nothing changed, not even the
 * expiry. sessd_get it again and touch with the ttl the new data calls for, with its tag.
 * SESSD_ERR_UNKNOWN_OP: the server is older than TOUCH_IF (the connection stays open);
 * sessd_touch is all it offers. ${expect} is borrowed.
 */
int sessd_touch_if(struct sessd_client *c, const void *id, size_t id_len, uint64_t ttl_ms,
                   const uint8_t expect[SESSD_TAG_BYTES]);

/* sessd_destroy: remove a session and its flashes. SESSD_NOT_FOUND if there was none. */
int sessd_destroy(struct sessd_client *c, const void *id, size_t id_len);

/*
 * sessd_ttl(c, id, id_len, ttl_ms):
 * The session's remaining lifetime: on SESSD_OK *${ttl_ms} is the milliseconds from the
 * server's now to its expiry instant, at least 1 (what sessd_list gives, for one session).
 * Changes nothing: no expiry moves. A session that holds flash messages only counts (it lives
 * until its expiry, and sessd_count and sessd_list show it). SESSD_NOT_FOUND: there is no
 * such session, or it has expired. SESSD_ERR_UNKNOWN_OP: the server is older than TTL (the
 * connection stays open). ${id} is borrowed.
 */
int sessd_ttl(struct sessd_client *c, const void *id, size_t id_len, uint64_t *ttl_ms);

/*
 * sessd_flash_push(c, id, id_len, type, msg, msg_len, ttl_ms, queue_len):
 * Queue a message (sent as str) of ${type} (NUL-terminated, 1..64 bytes). A missing session
 * is created with ${ttl_ms}. ${queue_len} (may be NULL) receives that type's queue length.
 */
int sessd_flash_push(struct sessd_client *c, const void *id, size_t id_len, const char *type,
                     const void *msg, size_t msg_len, uint64_t ttl_ms, size_t *queue_len);

/*
 * sessd_flash_push_existing(c, id, id_len, type, msg, msg_len, ttl_ms, queue_len):
 * sessd_flash_push, but never creating a session: for a session this client read with
 * sessd_get (or stored). Checked and pushed in one step on the server. SESSD_OK: queued, as
 * sessd_flash_push would (the expiry becomes the later of the session's and now + ${ttl_ms});
 * ${queue_len} (may be NULL) receives that type's queue length. SESSD_NOT_FOUND: there is no
 * such session, it has expired, or it has no data (flashes only); nothing was created or
 * changed. It was destroyed (a logout) or expired since it was read: drop the message, do not
 * sessd_flash_push it. SESSD_ERR_UNKNOWN_OP: the server is older than FLASH_PUSH_EXISTING
 * (the connection stays open); sessd_flash_push is all it offers. For a session not stored
 * yet (a first visit) use sessd_flash_push.
 */
int sessd_flash_push_existing(struct sessd_client *c, const void *id, size_t id_len,
                              const char *type, const void *msg, size_t msg_len, uint64_t ttl_ms,
                              size_t *queue_len);

/*
 * sessd_destroy_if_flash(c, id, id_len, type, msg, msg_len):
 * sessd_destroy, but only while the oldest message of ${type}'s queue holds exactly the
 * ${msg_len} bytes of ${msg}, in one step on the server: the release of a lock held as a flash
 * queue whose first message is its holder's token (PROTOCOL.md, "Locks on a flash queue"),
 * which, unlike a plain sessd_destroy, may be called again after a broken connection.
 * SESSD_OK: the session was removed, as sessd_destroy removes it. SESSD_NOT_FOUND: there is no
 * such session, or it has expired. SESSD_CONFLICT: that queue is empty, or its oldest message
 * is another (another holder's token); nothing changed. SESSD_ERR_UNKNOWN_OP: the server is
 * older than DESTROY_IF_FLASH (the connection stays open). ${id}, ${type} and ${msg} are
 * borrowed.
 */
int sessd_destroy_if_flash(struct sessd_client *c, const void *id, size_t id_len, const char *type,
                           const void *msg, size_t msg_len);

struct sessd_flash {
	/* NUL-terminated. PROTOCOL.md lets a type hold any bytes, a NUL too, and another client
	 * (connect-sessd, say) may push one: such a type reads here as its bytes up to the
	 * first NUL, so possibly "" or another type's name. */
	const char *type;
	const void *msg; /* msg_len bytes and a NUL after them */
	size_t msg_len;
	int is_bin; /* pushed as bin rather than str */
};

struct sessd_flashes {
	size_t count;
	struct sessd_flash *items; /* in type order, then oldest first */
};

/*
 * sessd_flash_pop(c, id, id_len, type, out):
 * Remove and return the messages of ${type}, or of every type when ${type} is NULL. On
 * SESSD_OK *${out} is owned by the caller: free it with sessd_flashes_free (count may be 0).
 * SESSD_NOT_FOUND when there is no such session (*${out} is NULL).
 * A reply of more than sessd_max_frame() / 12 messages, more than a session can hold under
 * that max_frame (PROTOCOL.md: flashes take max_frame / 2 bytes, each message counting at
 * least 6), is SESSD_ERR_PROTOCOL: each message takes a struct sessd_flash (32 bytes on LP64)
 * for as little as 1 byte of reply, and the bound keeps *${out} within 2.75 x max_frame plus
 * the messages' bytes and 5 KiB. The messages of such a reply are gone from the server: only
 * a sessd restarted with a smaller --max-frame than they were pushed under sends one.
 */
int sessd_flash_pop(struct sessd_client *c, const void *id, size_t id_len, const char *type,
                    struct sessd_flashes **out);

/* sessd_flashes_free(f): free what sessd_flash_pop returned; NULL does nothing. */
void sessd_flashes_free(struct sessd_flashes *f);

/* sessd_count: the number of sessions in the client's namespace (*${count}: on SESSD_OK). */
int sessd_count(struct sessd_client *c, uint64_t *count);

struct sessd_list_entry {
	const void *id; /* id_len bytes and a NUL after them */
	size_t id_len;
	uint64_t ttl_ms;
};

struct sessd_list {
	uint64_t next_cursor; /* 0 when the scan is complete */
	size_t count;
	struct sessd_list_entry *items;
};

/*
 * sessd_list(c, cursor, limit, out):
 * One page of a scan of the namespace (PROTOCOL.md, LIST) of at most ${limit} entries (taken
 * as 1..1000). On SESSD_OK *${out} is owned by the caller; free it with sessd_list_free. A
 * page of more entries than asked for, or with an id outside 1..128 bytes, is
 * SESSD_ERR_PROTOCOL. SESSD_ERR_FORBIDDEN: the server has --admin-auth-file and this client
 * did not show its secret (the connection stays open).
 */
int sessd_list(struct sessd_client *c, uint64_t cursor, unsigned limit, struct sessd_list **out);

/* sessd_list_free(l): free what sessd_list returned; NULL does nothing. */
void sessd_list_free(struct sessd_list *l);

struct sessd_namespace {
	const char *name; /* name_len bytes and a NUL after them (a name may hold a NUL too) */
	size_t name_len;
	uint64_t sessions; /* as the namespace's STATS counts them */
};

struct sessd_namespaces {
	uint64_t next_cursor; /* 0 when the scan is complete */
	size_t count;
	struct sessd_namespace *items;
};

/*
 * sessd_namespaces(c, cursor, limit, out):
 * One page of a scan of the server's namespaces (PROTOCOL.md, NAMESPACES) of at most
 * ${limit} entries (taken as 1..1000), paged as sessd_list pages sessions, whatever the
 * client's namespace: start at cursor 0 and go on with next_cursor until it is 0. A
 * namespace exists from the write that creates its first session until its last is gone
 * (destroyed, expired, cleared); an empty one is not listed. On SESSD_OK *${out} is owned by
 * the caller; free it with sessd_namespaces_free. A page of more entries than asked for, or
 * with a name outside 1..64 bytes, is SESSD_ERR_PROTOCOL. SESSD_ERR_UNKNOWN_OP: the server is
 * older than NAMESPACES (the connection stays open). SESSD_ERR_FORBIDDEN: as for sessd_list.
 */
int sessd_namespaces(struct sessd_client *c, uint64_t cursor, unsigned limit,
                     struct sessd_namespaces **out);

/* sessd_namespaces_free(l): free what sessd_namespaces returned; NULL does nothing. */
void sessd_namespaces_free(struct sessd_namespaces *l);

/*
 * sessd_clear: remove every session of the namespace; ${removed} (may be NULL) gets how many,
 * on SESSD_OK. SESSD_ERR_FORBIDDEN: as for sessd_list; nothing was removed.
 */
int sessd_clear(struct sessd_client *c, uint64_t *removed);

struct sessd_stat {
	const char *name;
	uint64_t value;
};

struct sessd_stats {
	size_t count;
	struct sessd_stat *items;
};

/*
 * sessd_stats(c, whole_server, out):
 * The server's figures (whole_server != 0) or the namespace's. On SESSD_OK *${out} is owned
 * by the caller; free it with sessd_stats_free. Figures that are not uints are skipped; more
 * than 1024 uint figures is SESSD_ERR_PROTOCOL (sessd sends about 35), so that a reply cannot
 * make *${out} several times its own size.
 */
int sessd_stats(struct sessd_client *c, int whole_server, struct sessd_stats **out);

/* sessd_stats_free(s): free what sessd_stats returned; NULL does nothing. */
void sessd_stats_free(struct sessd_stats *s);

/* --- Pipelined calls: queue many requests, send them at once, read every reply. --- */

struct sessd_batch;

/*
 * sessd_batch_new(c): an empty batch on ${c}, or NULL (out of memory, or ${c} NULL). The
 * batch borrows ${c}, which must outlive it. Free with sessd_batch_free.
 */
struct sessd_batch *sessd_batch_new(struct sessd_client *c);

/* sessd_batch_free(b): free the batch and its results. NULL does nothing. */
void sessd_batch_free(struct sessd_batch *b);

/*
 * Queue one request each; arguments are copied. Each returns the request's index in the
 * batch (0, 1, ...), or -1 with nothing queued: errno EINVAL (a bad argument), EMSGSIZE (a
 * frame over the server's max_frame) or ENOMEM, and sessd_errmsg of the batch's client saying
 * which (unless the batch is NULL). A request is encoded when it is queued: it takes the
 * client's namespace (sessd_set_namespace) and its request id then, not when the batch runs.
 */
int sessd_batch_get(struct sessd_batch *b, const void *id, size_t id_len);
int sessd_batch_set(struct sessd_batch *b, const void *id, size_t id_len, const void *data,
                    size_t data_len, uint64_t ttl_ms);
int sessd_batch_touch(struct sessd_batch *b, const void *id, size_t id_len, uint64_t ttl_ms);
int sessd_batch_destroy(struct sessd_batch *b, const void *id, size_t id_len);
int sessd_batch_flash_push(struct sessd_batch *b, const void *id, size_t id_len, const char *type,
                           const void *msg, size_t msg_len, uint64_t ttl_ms);
int sessd_batch_flash_pop(struct sessd_batch *b, const void *id, size_t id_len, const char *type);
int sessd_batch_ping(struct sessd_batch *b);
/* A TTL (sessd_ttl): its status as sessd_ttl's, its result from sessd_batch_ttl_ms. */
int sessd_batch_ttl(struct sessd_batch *b, const void *id, size_t id_len);

/*
 * sessd_batch_set_if(b, id, id_len, data, data_len, ttl_ms, expect):
 * Queue sessd_set_if's request: a SET that holds only while the session's data is the data
 * whose tag is ${expect} (sessd_data_tag). Everything is copied, ${expect} too. Returns as
 * the calls above; errno EINVAL also when ${expect} is NULL. After sessd_batch_run its
 * sessd_batch_status is what sessd_set_if would return: SESSD_OK (stored), SESSD_CONFLICT
 * (the data changed since it was read; nothing changed), SESSD_NOT_FOUND (no such session,
 * or flashes only; nothing was created), or an error. The server checks each SET_IF when it
 * reaches it, after the batch's earlier requests: one that follows a SET or SET_IF of the
 * same session in the batch expects the tag of that request's data.
 */
int sessd_batch_set_if(struct sessd_batch *b, const void *id, size_t id_len, const void *data,
                       size_t data_len, uint64_t ttl_ms, const uint8_t expect[SESSD_TAG_BYTES]);

/*
 * sessd_batch_flash_push_existing(b, id, id_len, type, msg, msg_len, ttl_ms):
 * Queue sessd_flash_push_existing's request: a FLASH_PUSH that never creates a session.
 * Returns as the calls above. After sessd_batch_run its sessd_batch_status is what
 * sessd_flash_push_existing would return: SESSD_OK (queued), SESSD_NOT_FOUND (no session with
 * data: missing, expired or flashes only; nothing was created or changed), or an error. The
 * server checks it when it reaches it, after the batch's earlier requests: one that follows a
 * SET of the same session in the batch finds it.
 */
int sessd_batch_flash_push_existing(struct sessd_batch *b, const void *id, size_t id_len,
                                    const char *type, const void *msg, size_t msg_len,
                                    uint64_t ttl_ms);

/*
 * sessd_batch_run(b):
 * Send every queued request in as few writes as possible, then read all the replies. The
 * results of a previous run are freed first. Returns SESSD_OK when every reply arrived (each
 * may still be an error: see sessd_batch_status), or the error that cut the batch short
 * (the connection is then dropped, but for SESSD_ERR_TOO_LARGE below). After an error, each
 * request whose reply arrived whole and answered it keeps its own status and result. The
 * first request without such a reply (its reply malformed, of another request, of the wrong
 * shape, or cut off) and every one after it have the error (SESSD_ERR_PROTOCOL,
 * SESSD_ERR_CLOSED, ...) and no result.
 * SESSD_ERR_TIMEOUT: not every reply arrived within the client's timeout from the start of
 * the sending, however steadily they came (a reconnection's connect and HELLO have their own).
 * With SESSD_ERR_SHUTTING_DOWN (the server is stopping) none of those was carried out.
 * SESSD_ERR_PROTOCOL with every status its reply's means bytes followed the last reply: the
 * replies were good, the stream after them was not.
 * SESSD_ERR_TOO_LARGE: a queued request no longer fits in the max_frame of the server the run
 * (re)connected to (a daemon restarted with a smaller --max-frame since it was queued), which
 * would refuse it and close the connection mid-batch. Nothing was sent, every request has
 * that status, sessd_errmsg names the first such request, and the connection stays; reset
 * the batch and queue again (that request is then refused when queued, EMSGSIZE).
 */
int sessd_batch_run(struct sessd_batch *b);

/*
 * sessd_batch_status(b, i): the result code of request ${i} after sessd_batch_run;
 * SESSD_ERR_USAGE when ${i} is out of range (or ${b} is NULL, or the batch has not run).
 */
int sessd_batch_status(const struct sessd_batch *b, size_t i);

/*
 * sessd_batch_data(b, i, len):
 * GET's data, or NULL when request ${i} was not a successful GET; owned by ${b}, valid until
 * the next sessd_batch_run, sessd_batch_reset or sessd_batch_free.
 */
const void *sessd_batch_data(const struct sessd_batch *b, size_t i, size_t *len);

/*
 * sessd_batch_flashes(b, i): FLASH_POP's messages for request ${i} when its status is
 * SESSD_OK, else NULL; owned by ${b}, valid until the next sessd_batch_run, sessd_batch_reset
 * or sessd_batch_free.
 */
const struct sessd_flashes *sessd_batch_flashes(const struct sessd_batch *b, size_t i);

/*
 * sessd_batch_ttl_ms(b, i): the remaining lifetime in milliseconds (at least 1) that request
 * ${i}, a sessd_batch_ttl, got when its status is SESSD_OK; else 0.
 */
uint64_t sessd_batch_ttl_ms(const struct sessd_batch *b, size_t i);

/* sessd_batch_reset(b): forget the requests and results, keep the memory for the next batch. */
void sessd_batch_reset(struct sessd_batch *b);

#ifdef __cplusplus
}
#endif

#endif
