#ifndef SESSD_MP_H
#define SESSD_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/*
 * A small MessagePack layer. Writing goes through msgpack-c's packer into a struct buf.
 * Reading is our own: a zero-copy cursor that never allocates and checks every declared
 * length and count against the bytes actually present, because msgpack-c 4.0's unpacker
 * allocates from declared array/map sizes before reading them (PROTOCOL.md, "Decoding rules").
 */

/* The deepest nesting mp_skip accepts; a value nested deeper is malformed. */
#define MP_MAX_DEPTH 16

/* A borrowed byte range inside a frame; valid as long as the frame's bytes are. */
struct mp_bytes {
	const uint8_t *ptr;
	size_t len;
};

enum mp_type {
	MP_NIL,
	MP_BOOL,
	MP_UINT,  /* any non-negative integer */
	MP_INT,   /* a negative integer */
	MP_FLOAT, /* float 32 or 64 */
	MP_STR,
	MP_BIN,
	MP_ARRAY,
	MP_MAP,
	MP_EXT,
	MP_INVALID /* a reserved byte (0xc1) or no bytes left */
};

/* A read cursor over [pos, end). Embedded by callers; no memory of its own. */
struct mp_reader {
	const uint8_t *pos;
	const uint8_t *end;
};

/* mp_reader_init(r, data, len): read the ${len} bytes at ${data}, which stay owned by the caller.
 */
void mp_reader_init(struct mp_reader *r, const void *data, size_t len);

/* mp_reader_left(r): the bytes not yet consumed. */
size_t mp_reader_left(const struct mp_reader *r);

/* mp_peek_type(r): the type of the next value, without consuming it. */
enum mp_type mp_peek_type(const struct mp_reader *r);

/*
 * The mp_read_* functions consume one value of the named type. Each returns 0, or -1 when the
 * next value has another type or is truncated; on -1 the cursor has not moved.
 */
int mp_read_nil(struct mp_reader *r);
int mp_read_bool(struct mp_reader *r, bool *out);
/* Any integer encoding whose value is >= 0 and fits in uint64_t. */
int mp_read_uint(struct mp_reader *r, uint64_t *out);
/* str only; ${out} points into the reader's bytes. */
int mp_read_str(struct mp_reader *r, struct mp_bytes *out);
/* bin only; ${out} points into the reader's bytes. */
int mp_read_bin(struct mp_reader *r, struct mp_bytes *out);
/* str or bin; ${is_bin} (may be NULL) says which. */
int mp_read_bytes(struct mp_reader *r, struct mp_bytes *out, bool *is_bin);
/*
 * An array or map header. The count is accepted only when at least that many bytes (map:
 * twice that many) remain, since every element takes at least one byte.
 */
int mp_read_array(struct mp_reader *r, uint32_t *count);
int mp_read_map(struct mp_reader *r, uint32_t *count);
/*
 * An array header and the count it claims, not checked against the bytes left: for what a
 * malformed message still says (codec_decode_request's request id). Never size anything by it.
 */
int mp_read_array_claimed(struct mp_reader *r, uint32_t *count);
/* Skip one whole value of any type, nested at most MP_MAX_DEPTH deep, without recursion. */
int mp_skip(struct mp_reader *r);

/*
 * The mp_write_* functions append one value to ${out} in the shortest encoding. Each returns
 * 0, or -1 with errno ENOMEM (out may then hold a partial value; callers discard the frame).
 */
int mp_write_nil(struct buf *out);
int mp_write_bool(struct buf *out, bool v);
int mp_write_uint(struct buf *out, uint64_t v);
int mp_write_str(struct buf *out, const void *p, size_t len);
int mp_write_bin(struct buf *out, const void *p, size_t len);
int mp_write_array(struct buf *out, uint32_t count);
int mp_write_map(struct buf *out, uint32_t count);

/*
 * mp_write_array_open(out, at) / mp_write_array_close(out, at, count):
 * Write an array32 header whose count is filled in later, for producers that learn the count
 * only while writing the elements. ${at} receives / names the header's offset in ${out}.
 * Open returns 0 or -1 (ENOMEM); close cannot fail. The map pair works the same way.
 */
int mp_write_array_open(struct buf *out, size_t *at);
void mp_write_array_close(struct buf *out, size_t at, uint32_t count);
int mp_write_map_open(struct buf *out, size_t *at);
void mp_write_map_close(struct buf *out, size_t at, uint32_t count);

#endif
