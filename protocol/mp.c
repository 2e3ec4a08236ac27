#include "mp.h"

#include <errno.h>
#include <string.h>

#include <msgpack.h>

/*
 * Reading: every function decodes the header at r->pos into a local cursor and moves r->pos
 * only once the whole value is known to be present, so a failed read leaves the cursor where
 * it was. Declared lengths are compared with the bytes left before any pointer arithmetic
 * uses them, so a hostile length cannot step past the end.
 */

static inline uint16_t load_be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t load_be64(const uint8_t *p)
{
	return (uint64_t)load_be32(p) << 32 | load_be32(p + 4);
}

void mp_reader_init(struct mp_reader *r, const void *data, size_t len)
{
	r->pos = data;
	r->end = r->pos + len;
}

size_t mp_reader_left(const struct mp_reader *r)
{
	return (size_t)(r->end - r->pos);
}

enum mp_type mp_peek_type(const struct mp_reader *r)
{
	uint8_t b;

	if (r->pos >= r->end)
		return MP_INVALID;
	b = r->pos[0];
	if (b <= 0x7f)
		return MP_UINT;
	if (b <= 0x8f)
		return MP_MAP;
	if (b <= 0x9f)
		return MP_ARRAY;
	if (b <= 0xbf)
		return MP_STR;
	if (b >= 0xe0)
		return MP_INT;
	switch (b) {
	case 0xc0:
		return MP_NIL;
	case 0xc2:
	case 0xc3:
		return MP_BOOL;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		return MP_BIN;
	case 0xc7:
	case 0xc8:
	case 0xc9:
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		return MP_EXT;
	case 0xca:
	case 0xcb:
		return MP_FLOAT;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
		return MP_UINT;
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3: {
		/* A signed encoding of a non-negative value is still a uint (PROTOCOL.md,
		 * "Types used below"); its sign bit is the top bit of the first payload byte. */
		if (r->end - r->pos < 2)
			return MP_INVALID;
		return (r->pos[1] & 0x80) ? MP_INT : MP_UINT;
	}
	case 0xd9:
	case 0xda:
	case 0xdb:
		return MP_STR;
	case 0xdc:
	case 0xdd:
		return MP_ARRAY;
	case 0xde:
	case 0xdf:
		return MP_MAP;
	default:
		return MP_INVALID; /* 0xc1 */
	}
}

int mp_read_nil(struct mp_reader *r)
{
	if (r->pos >= r->end || r->pos[0] != 0xc0)
		return -1;
	r->pos++;
	return 0;
}

int mp_read_bool(struct mp_reader *r, bool *out)
{
	if (r->pos >= r->end || (r->pos[0] != 0xc2 && r->pos[0] != 0xc3))
		return -1;
	*out = r->pos[0] == 0xc3;
	r->pos++;
	return 0;
}

int mp_read_uint(struct mp_reader *r, uint64_t *out)
{
	const uint8_t *p = r->pos;
	size_t left = (size_t)(r->end - p);
	uint64_t v;
	size_t n;

	if (left == 0)
		return -1;
	if (p[0] <= 0x7f) {
		*out = p[0];
		r->pos++;
		return 0;
	}
	switch (p[0]) {
	case 0xcc:
	case 0xd0:
		n = 1;
		break;
	case 0xcd:
	case 0xd1:
		n = 2;
		break;
	case 0xce:
	case 0xd2:
		n = 4;
		break;
	case 0xcf:
	case 0xd3:
		n = 8;
		break;
	default:
		return -1;
	}
	if (left < 1 + n)
		return -1;
	/* int 8..64 share the uint layout; a set top bit there is a negative value. */
	if (p[0] >= 0xd0 && (p[1] & 0x80))
		return -1;
	switch (n) {
	case 1:
		v = p[1];
		break;
	case 2:
		v = load_be16(p + 1);
		break;
	case 4:
		v = load_be32(p + 1);
		break;
	default:
		v = load_be64(p + 1);
		break;
	}
	*out = v;
	r->pos = p + 1 + n;
	return 0;
}

/*
 * Decode a str or bin header at r->pos. Returns 0 with the payload range and kind, or -1
 * when the next value is neither or its payload runs past the end.
 */
static inline int read_raw(const struct mp_reader *r, struct mp_bytes *out, bool *is_bin,
                           const uint8_t **next)
{
	const uint8_t *p = r->pos;
	size_t left = (size_t)(r->end - p);
	size_t hdr, len;
	bool bin = false;

	if (left == 0)
		return -1;
	if (p[0] >= 0xa0 && p[0] <= 0xbf) {
		hdr = 1;
		len = p[0] & 0x1f;
	} else {
		switch (p[0]) {
		case 0xc4:
			bin = true;
			/* fall through */
		case 0xd9:
			hdr = 2;
			break;
		case 0xc5:
			bin = true;
			/* fall through */
		case 0xda:
			hdr = 3;
			break;
		case 0xc6:
			bin = true;
			/* fall through */
		case 0xdb:
			hdr = 5;
			break;
		default:
			return -1;
		}
		if (left < hdr)
			return -1;
		len = hdr == 2 ? p[1] : hdr == 3 ? load_be16(p + 1) : load_be32(p + 1);
	}
	if (len > left - hdr)
		return -1;
	out->ptr = p + hdr;
	out->len = len;
	*is_bin = bin;
	*next = p + hdr + len;
	return 0;
}

int mp_read_str(struct mp_reader *r, struct mp_bytes *out)
{
	struct mp_bytes v;
	const uint8_t *next;
	bool bin;

	if (read_raw(r, &v, &bin, &next) == -1 || bin)
		return -1;
	*out = v;
	r->pos = next;
	return 0;
}

int mp_read_bin(struct mp_reader *r, struct mp_bytes *out)
{
	struct mp_bytes v;
	const uint8_t *next;
	bool bin;

	if (read_raw(r, &v, &bin, &next) == -1 || !bin)
		return -1;
	*out = v;
	r->pos = next;
	return 0;
}

int mp_read_bytes(struct mp_reader *r, struct mp_bytes *out, bool *is_bin)
{
	struct mp_bytes v;
	const uint8_t *next;
	bool bin;

	if (read_raw(r, &v, &bin, &next) == -1)
		return -1;
	*out = v;
	if (is_bin != NULL)
		*is_bin = bin;
	r->pos = next;
	return 0;
}

/*
 * Decode an array (fix_base 0x90, op16 0xdc) or map (0x80, 0xde) header. ${per} is the
 * minimum bytes each counted entry needs: 1 for an array, 2 for a map.
 */
static inline int read_container(struct mp_reader *r, uint32_t *count, uint8_t fix_base,
                                 uint8_t op16, size_t per, bool checked)
{
	const uint8_t *p = r->pos;
	size_t left = (size_t)(r->end - p);
	size_t hdr;
	uint32_t n;

	if (left == 0)
		return -1;
	if ((p[0] & 0xf0) == fix_base) {
		hdr = 1;
		n = p[0] & 0x0f;
	} else if (p[0] == op16) {
		if (left < 3)
			return -1;
		hdr = 3;
		n = load_be16(p + 1);
	} else if (p[0] == op16 + 1) {
		if (left < 5)
			return -1;
		hdr = 5;
		n = load_be32(p + 1);
	} else {
		return -1;
	}
	if (checked && (uint64_t)n * per > left - hdr)
		return -1;
	*count = n;
	r->pos = p + hdr;
	return 0;
}

int mp_read_array(struct mp_reader *r, uint32_t *count)
{
	return read_container(r, count, 0x90, 0xdc, 1, true);
}

int mp_read_array_claimed(struct mp_reader *r, uint32_t *count)
{
	return read_container(r, count, 0x90, 0xdc, 1, false);
}

int mp_read_map(struct mp_reader *r, uint32_t *count)
{
	return read_container(r, count, 0x80, 0xde, 2, true);
}

/* The header size and payload size of the scalar whose first byte is ${b}; -1 if not one. */
static int scalar_size(const uint8_t *p, size_t left, size_t *total)
{
	uint8_t b = p[0];
	size_t hdr, len;

	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
		*total = 1;
		return 0;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		*total = 1 + (size_t)(b & 0x1f);
		return 0;
	}
	switch (b) {
	case 0xcc:
	case 0xd0:
		*total = 2;
		return 0;
	case 0xcd:
	case 0xd1:
	case 0xd4: /* fixext 1: type byte + 1 */
		*total = 3;
		return 0;
	case 0xd5:
		*total = 4;
		return 0;
	case 0xca:
	case 0xce:
	case 0xd2:
		*total = 5;
		return 0;
	case 0xd6:
		*total = 6;
		return 0;
	case 0xcb:
	case 0xcf:
	case 0xd3:
		*total = 9;
		return 0;
	case 0xd7:
		*total = 10;
		return 0;
	case 0xd8:
		*total = 18;
		return 0;
	case 0xc4:
	case 0xd9:
		hdr = 2;
		break;
	case 0xc5:
	case 0xda:
		hdr = 3;
		break;
	case 0xc6:
	case 0xdb:
		hdr = 5;
		break;
	case 0xc7: /* ext 8/16/32: length, then a type byte, then the payload */
		hdr = 3;
		break;
	case 0xc8:
		hdr = 4;
		break;
	case 0xc9:
		hdr = 6;
		break;
	default:
		return -1; /* 0xc1, or a container */
	}
	if (left < hdr)
		return -1;
	switch (b) {
	case 0xc4:
	case 0xd9:
	case 0xc7:
		len = p[1];
		break;
	case 0xc5:
	case 0xda:
	case 0xc8:
		len = load_be16(p + 1);
		break;
	default:
		len = load_be32(p + 1);
		break;
	}
	if (len > SIZE_MAX - hdr)
		return -1;
	*total = hdr + len;
	return 0;
}

int mp_skip(struct mp_reader *r)
{
	/* Elements still to read at each open container level; a map counts keys and values. */
	uint64_t pending[MP_MAX_DEPTH];
	unsigned depth = 0;
	struct mp_reader cur = *r;
	uint32_t n;
	uint64_t items;
	size_t total;

	for (;;) {
		if (cur.pos >= cur.end)
			return -1;
		if (mp_read_array(&cur, &n) == 0) {
			items = n;
		} else if (mp_read_map(&cur, &n) == 0) {
			items = 2 * (uint64_t)n;
		} else {
			uint8_t b = cur.pos[0];

			if ((b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf))
				return -1; /* a container whose count the bytes left cannot hold */
			if (scalar_size(cur.pos, mp_reader_left(&cur), &total) == -1 ||
			    total > mp_reader_left(&cur))
				return -1;
			cur.pos += total;
			goto value_done;
		}
		/* An empty container is a level too, so the depth limit does not depend on
		 * whether the innermost container has elements. */
		if (depth == MP_MAX_DEPTH)
			return -1;
		if (items > 0) {
			pending[depth++] = items;
			continue;
		}
	value_done:
		while (depth > 0 && --pending[depth - 1] == 0)
			depth--;
		if (depth == 0)
			break;
	}
	*r = cur;
	return 0;
}

/* Writing: msgpack-c's packer chooses the shortest encodings; it appends through this. */
static int packer_append(void *data, const char *p, size_t len)
{
	return buf_append(data, p, len);
}

#define WITH_PACKER(out, pk)                                                                       \
	msgpack_packer pk;                                                                         \
	msgpack_packer_init(&pk, (out), packer_append)

int mp_write_nil(struct buf *out)
{
	WITH_PACKER(out, pk);
	return msgpack_pack_nil(&pk) == 0 ? 0 : -1;
}

int mp_write_bool(struct buf *out, bool v)
{
	WITH_PACKER(out, pk);
	return (v ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) == 0 ? 0 : -1;
}

int mp_write_uint(struct buf *out, uint64_t v)
{
	WITH_PACKER(out, pk);
	return msgpack_pack_uint64(&pk, v) == 0 ? 0 : -1;
}

int mp_write_str(struct buf *out, const void *p, size_t len)
{
	WITH_PACKER(out, pk);
	if (len > UINT32_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (buf_reserve(out, len + 5) == -1)
		return -1;
	if (msgpack_pack_str(&pk, len) != 0 || msgpack_pack_str_body(&pk, p, len) != 0)
		return -1;
	return 0;
}

int mp_write_bin(struct buf *out, const void *p, size_t len)
{
	WITH_PACKER(out, pk);
	if (len > UINT32_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (buf_reserve(out, len + 5) == -1)
		return -1;
	if (msgpack_pack_bin(&pk, len) != 0 || msgpack_pack_bin_body(&pk, p, len) != 0)
		return -1;
	return 0;
}

int mp_write_array(struct buf *out, uint32_t count)
{
	WITH_PACKER(out, pk);
	return msgpack_pack_array(&pk, count) == 0 ? 0 : -1;
}

int mp_write_map(struct buf *out, uint32_t count)
{
	WITH_PACKER(out, pk);
	return msgpack_pack_map(&pk, count) == 0 ? 0 : -1;
}

static int write_open(struct buf *out, size_t *at, uint8_t op32)
{
	uint8_t hdr[5] = {op32, 0, 0, 0, 0};

	if (buf_append(out, hdr, sizeof hdr) == -1)
		return -1;
	*at = out->len - sizeof hdr;
	return 0;
}

static void write_close(struct buf *out, size_t at, uint32_t count)
{
	uint8_t *p = out->data + at + 1;

	p[0] = (uint8_t)(count >> 24);
	p[1] = (uint8_t)(count >> 16);
	p[2] = (uint8_t)(count >> 8);
	p[3] = (uint8_t)count;
}

int mp_write_array_open(struct buf *out, size_t *at)
{
	return write_open(out, at, 0xdd);
}

void mp_write_array_close(struct buf *out, size_t at, uint32_t count)
{
	write_close(out, at, count);
}

int mp_write_map_open(struct buf *out, size_t *at)
{
	return write_open(out, at, 0xdf);
}

void mp_write_map_close(struct buf *out, size_t at, uint32_t count)
{
	write_close(out, at, count);
}
