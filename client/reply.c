/*
 * Decoding of OK results. Results that become a public struct are walked twice: once to
 * check the shape and add up what is needed, once to fill a single allocation, so a caller
 * frees everything with one free() and a malformed reply never leaves half a struct behind.
 * Counts are checked against the bytes left (mp_read_*) and against what PROTOCOL.md allows,
 * since the memory a result takes is a multiple of the bytes that carry it: a public struct
 * per message or figure (32 or 16 bytes on LP64) from as little as 1 or 2 bytes of msgpack.
 * Bytes alone bound a result to 33 times its reply (a 1 GiB reply of empty messages: 33 GiB);
 * the counts below bound it by max_frame instead, whatever a server sends.
 */
#include "reply.h"

#include "codec.h"
#include "ids.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* reply_hello_kx reads the server's key and proof alike. */
_Static_assert(SEAL_KEY_BYTES == SEAL_PROOF_BYTES, "kx's key and proof have one length");

/* PROTOCOL.md, Flashes: a session holds at most 64 distinct types. */
#define REPLY_MAX_FLASH_TYPES 64
/*
 * The most figures a STATS result may hold. PROTOCOL.md bounds nothing ("keys may be added");
 * sessd sends under 20. A generous fixed bound keeps the structs (16 bytes each) from
 * growing with a hostile reply.
 */
#define REPLY_MAX_STATS 1024u

/* Copy ${n} bytes and a NUL to *${at}, advancing it; returns where the copy starts. */
static char *copy_out(char **at, const void *p, size_t n)
{
	char *start = *at;

	if (n > 0)
		memcpy(start, p, n);
	start[n] = '\0';
	*at = start + n + 1;
	return start;
}

static bool key_is(const struct mp_bytes *k, const char *name)
{
	size_t n = strlen(name);

	return k->len == n && memcmp(k->ptr, name, n) == 0;
}

static bool all_hex(const struct mp_bytes *s)
{
	for (size_t i = 0; i < s->len; i++)
		if (!((s->ptr[i] >= '0' && s->ptr[i] <= '9') ||
		      (s->ptr[i] >= 'a' && s->ptr[i] <= 'f') ||
		      (s->ptr[i] >= 'A' && s->ptr[i] <= 'F')))
			return false;
	return true;
}

int reply_hello(const struct mp_bytes *result, struct reply_hello *out, const char **why)
{
	struct mp_reader r;
	struct mp_bytes key, sid;
	uint64_t version = CODEC_PROTOCOL_VERSION;
	uint32_t pairs;
	bool have_sid = false;

	memset(out, 0, sizeof(*out));
	mp_reader_init(&r, result->ptr, result->len);
	*why = "it is not a map of str keys";
	if (mp_read_map(&r, &pairs) == -1)
		return SESSD_ERR_PROTOCOL;
	for (uint32_t i = 0; i < pairs; i++) {
		*why = "it is not a map of str keys";
		if (mp_read_str(&r, &key) == -1)
			return SESSD_ERR_PROTOCOL;
		if (key_is(&key, "max_frame")) {
			*why = "its max_frame is not a uint";
			if (mp_read_uint(&r, &out->max_frame) == -1)
				return SESSD_ERR_PROTOCOL;
			out->has_max_frame = true;
		} else if (key_is(&key, "auth")) {
			/* Only true says the secret was checked; a require_auth client needs it. */
			*why = "its auth is not true or nil";
			out->auth = false;
			if (mp_read_nil(&r) == -1 && mp_read_bool(&r, &out->auth) == -1)
				return SESSD_ERR_PROTOCOL;
		} else if (key_is(&key, "version")) {
			*why = "its version is not a uint";
			if (mp_read_uint(&r, &version) == -1)
				return SESSD_ERR_PROTOCOL;
		} else if (key_is(&key, "kx")) {
			/* Judged by the caller (reply_hello_kx), which alone knows whether it
			 * asked for a key exchange; a server names it once or is not trusted. */
			*why = "its kx is malformed or named twice";
			out->kx.ptr = r.pos;
			if (out->has_kx || mp_skip(&r) == -1)
				return SESSD_ERR_PROTOCOL;
			out->kx.len = (size_t)(r.pos - out->kx.ptr);
			out->has_kx = true;
		} else if (key_is(&key, "server_id")) {
			/* Shown to people and printed inside JSON by sessctl, unescaped. */
			*why = "its server_id is not 32 hex digits";
			if (mp_read_str(&r, &sid) == -1 || sid.len != 32 || !all_hex(&sid))
				return SESSD_ERR_PROTOCOL;
			have_sid = true;
		} else if (mp_skip(&r) == -1) {
			*why = "a value is malformed";
			return SESSD_ERR_PROTOCOL;
		}
	}
	*why = "it has bytes after the map";
	if (mp_reader_left(&r) != 0)
		return SESSD_ERR_PROTOCOL;
	*why = "it has no server_id";
	if (!have_sid)
		return SESSD_ERR_PROTOCOL;
	*why = "it speaks another protocol version";
	if (version != CODEC_PROTOCOL_VERSION)
		return SESSD_ERR_PROTOCOL;
	memcpy(out->server_id, sid.ptr, 32);
	out->server_id[32] = '\0';
	*why = NULL;
	return SESSD_OK;
}

int reply_hello_kx(const struct mp_bytes *kx, uint8_t server_public[SEAL_KEY_BYTES],
                   uint8_t server_proof[SEAL_PROOF_BYTES])
{
	struct mp_reader r;
	struct mp_bytes key, value;
	uint32_t pairs;
	bool have_key = false, have_proof = false, *have;
	uint8_t *into;

	mp_reader_init(&r, kx->ptr, kx->len);
	if (mp_read_map(&r, &pairs) == -1 || pairs != 2)
		return SESSD_ERR_PROTOCOL;
	for (uint32_t i = 0; i < pairs; i++) {
		if (mp_read_str(&r, &key) == -1)
			return SESSD_ERR_PROTOCOL;
		if (key_is(&key, "key")) {
			have = &have_key;
			into = server_public;
		} else if (key_is(&key, "proof")) {
			have = &have_proof;
			into = server_proof;
		} else {
			return SESSD_ERR_PROTOCOL;
		}
		/* Both are SEAL_KEY_BYTES (= SEAL_PROOF_BYTES) long. */
		if (*have || mp_read_bin(&r, &value) == -1 || value.len != SEAL_KEY_BYTES)
			return SESSD_ERR_PROTOCOL;
		memcpy(into, value.ptr, value.len);
		*have = true;
	}
	return mp_reader_left(&r) == 0 ? SESSD_OK : SESSD_ERR_PROTOCOL;
}

int reply_nil(const struct mp_bytes *result)
{
	struct mp_reader r;

	mp_reader_init(&r, result->ptr, result->len);
	if (mp_read_nil(&r) == -1 || mp_reader_left(&r) != 0)
		return SESSD_ERR_PROTOCOL;
	return SESSD_OK;
}

int reply_uint(const struct mp_bytes *result, uint64_t *value)
{
	struct mp_reader r;

	mp_reader_init(&r, result->ptr, result->len);
	if (mp_read_uint(&r, value) == -1 || mp_reader_left(&r) != 0)
		return SESSD_ERR_PROTOCOL;
	return SESSD_OK;
}

int reply_data(const struct mp_bytes *result, struct mp_bytes *data)
{
	struct mp_reader r;

	mp_reader_init(&r, result->ptr, result->len);
	if (mp_read_bytes(&r, data, NULL) == -1 || mp_reader_left(&r) != 0)
		return SESSD_ERR_PROTOCOL;
	return SESSD_OK;
}

int reply_load(const struct mp_bytes *result, struct mp_bytes *data, uint64_t *flashes)
{
	struct mp_reader r;
	uint32_t n;
	uint64_t count;

	mp_reader_init(&r, result->ptr, result->len);
	if (mp_read_array(&r, &n) == -1 || n != 2 || mp_read_bytes(&r, data, NULL) == -1 ||
	    mp_read_uint(&r, &count) == -1 || mp_reader_left(&r) != 0)
		return SESSD_ERR_PROTOCOL;
	*flashes = count;
	return SESSD_OK;
}

/*
 * One array of messages of one type. Counts them and their bytes (type and message copies
 * with NULs) into ${count} and ${bytes}, refusing more than ${max_count} messages in all;
 * fills items from ${fill} when it is not NULL.
 */
static int walk_messages(struct mp_reader *r, const void *type, size_t type_len, size_t max_count,
                         struct sessd_flashes *fill, char **text, size_t *count, size_t *bytes)
{
	struct mp_bytes msg;
	struct sessd_flash *item;
	uint32_t n;
	bool is_bin;
	const char *type_copy = NULL;

	/* Checked before the messages are walked: a count over the bound is refused at once. */
	if (mp_read_array(r, &n) == -1 || n > max_count - *count)
		return -1;
	if (n > 0) {
		*bytes += type_len + 1;
		if (fill != NULL)
			type_copy = copy_out(text, type, type_len);
	}
	for (uint32_t i = 0; i < n; i++) {
		if (mp_read_bytes(r, &msg, &is_bin) == -1)
			return -1;
		*bytes += msg.len + 1;
		if (fill != NULL) {
			item = &fill->items[*count];
			item->type = type_copy;
			item->msg = copy_out(text, msg.ptr, msg.len);
			item->msg_len = msg.len;
			item->is_bin = is_bin;
		}
		(*count)++;
	}
	return 0;
}

static int walk_flashes(const struct mp_bytes *result, const char *type, size_t max_count,
                        struct sessd_flashes *fill, char *text, size_t *count, size_t *bytes)
{
	struct mp_reader r;
	struct mp_bytes t, seen[REPLY_MAX_FLASH_TYPES];
	uint32_t pairs;

	*count = 0;
	*bytes = 0;
	mp_reader_init(&r, result->ptr, result->len);
	if (type != NULL) {
		if (walk_messages(&r, type, strlen(type), max_count, fill, &text, count, bytes) ==
		    -1)
			return -1;
	} else {
		if (mp_read_map(&r, &pairs) == -1 || pairs > REPLY_MAX_FLASH_TYPES)
			return -1;
		for (uint32_t i = 0; i < pairs; i++) {
			if (mp_read_str(&r, &t) == -1 || t.len == 0 ||
			    t.len > IDS_MAX_FLASH_TYPE_LEN)
				return -1;
			/* The server keeps one queue per type: a type named twice is a fault. */
			for (uint32_t j = 0; j < i; j++)
				if (seen[j].len == t.len && memcmp(seen[j].ptr, t.ptr, t.len) == 0)
					return -1;
			seen[i] = t;
			if (walk_messages(&r, t.ptr, t.len, max_count, fill, &text, count, bytes) ==
			    -1)
				return -1;
		}
	}
	return mp_reader_left(&r) == 0 ? 0 : -1;
}

/*
 * The size of one allocation holding a struct of ${head} bytes, ${count} items of ${item}
 * bytes and ${bytes} of copies and a NUL; 0 when that does not fit in a size_t.
 */
static size_t result_size(size_t head, size_t count, size_t item, size_t bytes)
{
	if (count > (SIZE_MAX - head - 1) / item || bytes > SIZE_MAX - head - 1 - count * item)
		return 0;
	return head + count * item + bytes + 1;
}

int reply_flashes(const struct mp_bytes *result, const char *type, uint32_t max_frame,
                  struct sessd_flashes **out)
{
	struct sessd_flashes *f;
	size_t count, bytes, head, size;

	*out = NULL;
	if (walk_flashes(result, type, max_frame / 2 / CODEC_FLASH_LEAST_COST, NULL, NULL, &count,
	                 &bytes) == -1)
		return SESSD_ERR_PROTOCOL;
	size = result_size(sizeof(*f), count, sizeof(struct sessd_flash), bytes);
	f = size != 0 ? malloc(size) : NULL;
	if (f == NULL)
		return SESSD_ERR_NOMEM;
	head = sizeof(*f) + count * sizeof(struct sessd_flash);
	f->count = count;
	f->items = (struct sessd_flash *)(f + 1);
	/* The shape was checked above; the second walk over the same bytes cannot fail. */
	(void)walk_flashes(result, type, count, f, (char *)f + head, &count, &bytes);
	*out = f;
	return SESSD_OK;
}

static int walk_list(const struct mp_bytes *result, uint32_t limit, struct sessd_list *fill,
                     char *text, uint64_t *cursor, size_t *count, size_t *bytes)
{
	struct mp_reader r;
	struct mp_bytes id;
	uint32_t outer, n, pair;
	uint64_t ttl;

	*count = 0;
	*bytes = 0;
	mp_reader_init(&r, result->ptr, result->len);
	if (mp_read_array(&r, &outer) == -1 || outer != 2 || mp_read_uint(&r, cursor) == -1 ||
	    mp_read_array(&r, &n) == -1 || n > limit)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		if (mp_read_array(&r, &pair) == -1 || pair != 2 ||
		    mp_read_bytes(&r, &id, NULL) == -1 || id.len < 1 || id.len > IDS_MAX_ID_LEN ||
		    mp_read_uint(&r, &ttl) == -1)
			return -1;
		*bytes += id.len + 1;
		if (fill != NULL) {
			fill->items[i].id = copy_out(&text, id.ptr, id.len);
			fill->items[i].id_len = id.len;
			fill->items[i].ttl_ms = ttl;
		}
	}
	*count = n;
	return mp_reader_left(&r) == 0 ? 0 : -1;
}

int reply_list(const struct mp_bytes *result, uint32_t limit, struct sessd_list **out)
{
	struct sessd_list *l;
	size_t count, bytes, head, size;
	uint64_t cursor;

	*out = NULL;
	if (walk_list(result, limit, NULL, NULL, &cursor, &count, &bytes) == -1)
		return SESSD_ERR_PROTOCOL;
	size = result_size(sizeof(*l), count, sizeof(struct sessd_list_entry), bytes);
	l = size != 0 ? malloc(size) : NULL;
	if (l == NULL)
		return SESSD_ERR_NOMEM;
	head = sizeof(*l) + count * sizeof(struct sessd_list_entry);
	l->count = count;
	l->next_cursor = cursor;
	l->items = (struct sessd_list_entry *)(l + 1);
	(void)walk_list(result, limit, l, (char *)l + head, &cursor, &count, &bytes);
	*out = l;
	return SESSD_OK;
}

static int walk_stats(const struct mp_bytes *result, struct sessd_stats *fill, char *text,
                      size_t *count, size_t *bytes)
{
	struct mp_reader r;
	struct mp_bytes key;
	uint32_t pairs;
	uint64_t v;

	*count = 0;
	*bytes = 0;
	mp_reader_init(&r, result->ptr, result->len);
	if (mp_read_map(&r, &pairs) == -1)
		return -1;
	for (uint32_t i = 0; i < pairs; i++) {
		if (mp_read_str(&r, &key) == -1)
			return -1;
		/* PROTOCOL.md says values are uints and keys may be added: a newer server's
		 * figure of another type is skipped, not an error. */
		if (mp_peek_type(&r) != MP_UINT) {
			if (mp_skip(&r) == -1)
				return -1;
			continue;
		}
		if (mp_read_uint(&r, &v) == -1 || *count == REPLY_MAX_STATS)
			return -1;
		*bytes += key.len + 1;
		if (fill != NULL) {
			fill->items[*count].name = copy_out(&text, key.ptr, key.len);
			fill->items[*count].value = v;
		}
		(*count)++;
	}
	return mp_reader_left(&r) == 0 ? 0 : -1;
}

int reply_stats(const struct mp_bytes *result, struct sessd_stats **out)
{
	struct sessd_stats *s;
	size_t count, bytes, head, size;

	*out = NULL;
	if (walk_stats(result, NULL, NULL, &count, &bytes) == -1)
		return SESSD_ERR_PROTOCOL;
	size = result_size(sizeof(*s), count, sizeof(struct sessd_stat), bytes);
	s = size != 0 ? malloc(size) : NULL;
	if (s == NULL)
		return SESSD_ERR_NOMEM;
	head = sizeof(*s) + count * sizeof(struct sessd_stat);
	s->count = count;
	s->items = (struct sessd_stat *)(s + 1);
	(void)walk_stats(result, s, (char *)s + head, &count, &bytes);
	*out = s;
	return SESSD_OK;
}
