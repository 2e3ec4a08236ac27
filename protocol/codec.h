#ifndef SESSD_CODEC_H
#define SESSD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mp.h"

/*
 * The sessd wire codec: frames, requests and replies as PROTOCOL.md defines them. Pure: no
 * sockets, no event loop, no allocation while decoding (decoded fields borrow the frame).
 */

#define CODEC_PROTOCOL_VERSION  1
#define CODEC_HEADER_BYTES      4
#define CODEC_DEFAULT_MAX_FRAME (1024u * 1024u)
/* The smallest max frame a server may announce; below it a SET of a small session fails. */
#define CODEC_MIN_MAX_FRAME 4096u
/* PROTOCOL.md, Flashes: each message counts its type (1 byte or more), its message (0 or
 * more) and 5 against a session's max_frame / 2 bytes: so at most max_frame / 12 messages. */
#define CODEC_FLASH_LEAST_COST 6u
/* The largest frame a server reads before HELLO is done: HELLO's own are far smaller, and a
 * client that has not said hello yet should not have a megabyte read for it. */
#define CODEC_HELLO_MAX_FRAME   4096u
#define CODEC_DEFAULT_NAMESPACE "default"
/* The most a reply adds around data it returns (array, request id, status, bin header):
 * session data is at most max_frame minus this, so its GET reply fits in max_frame. */
#define CODEC_REPLY_DATA_OVERHEAD 16u
/* What a LOAD reply adds to a GET's (an array of two, the flash count as a uint): LOAD
 * answers LIMIT for data within this of max_data, whose reply would pass max_frame. */
#define CODEC_LOAD_EXTRA_OVERHEAD 10u
#define CODEC_LIST_MAX_LIMIT      1000u
/* The largest ttl a request may carry: 10 years, in milliseconds. */
#define CODEC_MAX_TTL_MS (10ull * 366 * 24 * 3600 * 1000)
/* SET_IF's and TOUCH_IF's expect: the first 16 bytes of the unkeyed 64-byte BLAKE2b of the
 * session's data (PROTOCOL.md, "Sessions"). */
#define CODEC_TAG_BYTES      16u
#define CODEC_TAG_HASH_BYTES 64u
/* RETIRE's key: the server's ephemeral X25519 key of a sealed HELLO (PROTOCOL.md, "RETIRE"). */
#define CODEC_RETIRE_KEY_BYTES 32u

enum codec_op {
	CODEC_OP_HELLO = 0x01,
	CODEC_OP_PING = 0x02,
	CODEC_OP_RETIRE = 0x03, /* close another sealed connection, named by its server key */
	CODEC_OP_GET = 0x10,
	CODEC_OP_SET = 0x11,
	CODEC_OP_TOUCH = 0x12,
	CODEC_OP_DESTROY = 0x13,
	CODEC_OP_SET_IF = 0x14,
	CODEC_OP_TTL = 0x15,      /* a session's remaining lifetime; changes nothing */
	CODEC_OP_LOAD = 0x16,     /* GET, and how many flash messages are queued */
	CODEC_OP_TOUCH_IF = 0x17, /* TOUCH that holds only over the data its tag names */
	CODEC_OP_FLASH_PUSH = 0x20,
	CODEC_OP_FLASH_POP = 0x21,
	CODEC_OP_FLASH_PUSH_EXISTING = 0x22, /* FLASH_PUSH that never creates a session */
	CODEC_OP_DESTROY_IF_FLASH = 0x23,    /* DESTROY while a type's oldest flash is a message */
	CODEC_OP_COUNT = 0x30,
	CODEC_OP_LIST = 0x31,
	CODEC_OP_CLEAR = 0x32,
	CODEC_OP_STATS = 0x33,
	CODEC_OP_NAMESPACES = 0x34, /* pages of [name, sessions], as LIST pages sessions */
};

/* Reply statuses; the numbers are on the wire (PROTOCOL.md, "Statuses"). */
enum codec_status {
	CODEC_OK = 0,
	CODEC_NOT_FOUND = 1,
	CODEC_BAD_REQUEST = 2,    /* malformed frame or arguments: the connection is closed */
	CODEC_TOO_LARGE = 3,      /* frame over max_frame: the connection is closed */
	CODEC_NO_MEMORY = 4,      /* the store's memory limit is reached; nothing changed */
	CODEC_UNKNOWN_OP = 5,     /* well-formed frame, opcode this server does not know */
	CODEC_BAD_VERSION = 6,    /* HELLO asked for a protocol version the server lacks */
	CODEC_NOT_READY = 7,      /* a request before HELLO: the connection is closed */
	CODEC_IO_ERROR = 8,       /* the change could not be persisted; nothing changed */
	CODEC_AUTH_FAILED = 9,    /* authentication required or rejected */
	CODEC_INTERNAL = 10,      /* a server fault */
	CODEC_SHUTTING_DOWN = 11, /* the server is stopping and takes no new work */
	CODEC_LIMIT = 12,         /* a per-session limit (flash bytes) would be exceeded */
	CODEC_BUSY = 13,          /* no room for an unfinished frame: the connection is closed */
	CODEC_CONFLICT = 14,      /* SET_IF, TOUCH_IF, DESTROY_IF_FLASH: not what was expected */
	CODEC_FORBIDDEN = 15      /* LIST, NAMESPACES, CLEAR without the admin secret; stays open */
};
/* The highest status this codec knows. */
#define CODEC_STATUS_MAX CODEC_FORBIDDEN

/* A human-readable name for ${status}, such as "NOT_FOUND"; "UNKNOWN" for other numbers. */
const char *codec_status_name(uint32_t status);

/* A name for ${op}, such as "FLASH_POP"; NULL for other numbers. */
const char *codec_op_name(uint32_t op);

/*
 * codec_op_changes(op): whether ${op} may change what the store holds (a FLASH_POP takes
 * messages; which one finds none is known only as it runs): the requests whose outcome matters
 * if one is carried out late or not at all (PROTOCOL.md, "RETIRE"), and that the daemon logs.
 */
bool codec_op_changes(uint32_t op);

/*
 * One decoded request. Byte fields borrow the frame they were decoded from. Fields an
 * opcode does not carry are zero. PROTOCOL.md gives each opcode's arguments.
 */
struct codec_request {
	uint32_t op;
	uint64_t request_id;
	/* Session operations and COUNT/LIST/CLEAR/STATS (not NAMESPACES, which names none):
	 * the namespace; nil on the wire
	 * decodes to CODEC_DEFAULT_NAMESPACE. STATS may send nil meaning the whole server:
	 * then ns_all is true. */
	struct mp_bytes ns;
	bool ns_all;
	/* GET SET SET_IF TOUCH TOUCH_IF DESTROY DESTROY_IF_FLASH TTL FLASH_PUSH(_EXISTING)
	 * FLASH_POP */
	struct mp_bytes id;
	bool id_is_bin;             /* the id was bin, not str (the same session either way) */
	struct mp_bytes data;       /* SET SET_IF; PING's payload when ping_payload */
	bool ping_payload;          /* PING: it carries a payload (data), answered with it */
	uint64_t ttl_ms;            /* SET SET_IF TOUCH TOUCH_IF FLASH_PUSH(_EXISTING) */
	struct mp_bytes expect;     /* SET_IF TOUCH_IF: bin of exactly CODEC_TAG_BYTES */
	struct mp_bytes retire_key; /* RETIRE: bin of exactly CODEC_RETIRE_KEY_BYTES */
	struct mp_bytes
	    flash_type; /* FLASH_PUSH(_EXISTING), DESTROY_IF_FLASH; FLASH_POP unless all */
	bool flash_all; /* FLASH_POP with a nil type: every type */
	struct mp_bytes flash_msg;   /* FLASH_PUSH(_EXISTING), DESTROY_IF_FLASH */
	bool flash_msg_is_bin;       /* the flash_msg was bin, not str */
	uint64_t cursor;             /* LIST NAMESPACES */
	uint32_t limit;              /* LIST NAMESPACES, clamped to 1..CODEC_LIST_MAX_LIMIT */
	uint32_t version;            /* HELLO */
	struct mp_bytes client_name; /* HELLO */
	/* HELLO: the raw msgpack of the auth field (nil today), for the authentication step
	 * a later version adds. */
	struct mp_bytes auth;
};

/*
 * codec_data_tag(data, len, tag):
 * SET_IF's tag of ${len} bytes of session ${data} (PROTOCOL.md, "Sessions"): the first
 * CODEC_TAG_BYTES of their unkeyed BLAKE2b hash of CODEC_TAG_HASH_BYTES (64) bytes. A
 * shorter hash would not do: BLAKE2b's output length changes every byte of it.
 */
void codec_data_tag(const void *data, size_t len, uint8_t tag[CODEC_TAG_BYTES]);

/*
 * codec_frame_length(header):
 * The body length a 4-byte frame header announces (big-endian).
 */
uint32_t codec_frame_length(const uint8_t header[CODEC_HEADER_BYTES]);

/*
 * codec_frame_open(out, at) / codec_frame_close(out, at):
 * Reserve a frame header in ${out} (its offset goes to ${at}), write the body after it with
 * mp_write_*, then close to fill in the length. Open returns 0 or -1 (ENOMEM). Close returns
 * 0, or -1 when the body is empty or over 4 GiB - 1 (the caller drops the frame).
 */
int codec_frame_open(struct buf *out, size_t *at);
int codec_frame_close(struct buf *out, size_t at);

/*
 * codec_decode_request(body, len, req, status, why):
 * Decode one frame body (without its header) into ${req}, consuming it exactly.
 * Returns 0, or -1 with ${status} set to CODEC_BAD_REQUEST or CODEC_UNKNOWN_OP and ${why}
 * to a static message. On -1, req->request_id holds the request id when it could be read
 * (else 0), so the error reply can carry it. Fields of ${req} borrow ${body}.
 */
int codec_decode_request(const uint8_t *body, size_t len, struct codec_request *req,
                         uint32_t *status, const char **why);

/*
 * codec_encode_request(out, req):
 * Append one whole frame (header and body) for ${req} to ${out}, writing the fields its
 * opcode carries. A zero-length ns is sent as nil (the default namespace).
 * Returns 0, or -1 with errno ENOMEM or EINVAL (unknown op, or a field over its limit).
 */
int codec_encode_request(struct buf *out, const struct codec_request *req);

/*
 * codec_reply_open(out, request_id, status, at):
 * Start a reply frame: header, the 3-element array, the request id and the status. The
 * caller then writes exactly one result value with mp_write_* and calls codec_frame_close.
 * Returns 0 or -1 (ENOMEM).
 */
int codec_reply_open(struct buf *out, uint64_t request_id, uint32_t status, size_t *at);

/*
 * codec_reply_error(out, request_id, status, message):
 * Append a whole error reply whose result is the str ${message}. Returns 0 or -1 (ENOMEM).
 */
int codec_reply_error(struct buf *out, uint64_t request_id, uint32_t status, const char *message);

/* One decoded reply; byte fields borrow the frame. */
struct codec_reply {
	uint64_t request_id;
	uint32_t status;
	/* The raw msgpack of the result value, to be read with an mp_reader. */
	struct mp_bytes result;
	/* For statuses other than OK and NOT_FOUND: the message (result must be a str). */
	struct mp_bytes message;
};

/*
 * codec_decode_reply(body, len, rep):
 * Decode one reply frame body, consuming it exactly and checking the result value is
 * well formed (mp_skip). Returns 0, or -1 for a malformed reply.
 */
int codec_decode_reply(const uint8_t *body, size_t len, struct codec_reply *rep);

#endif
