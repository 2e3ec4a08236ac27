/*
 * Decoding of OK results. Results that become a public struct are walked twice: once to
 * check the shape and add up what is needed, once to fill a single allocation, so a caller
 * frees everything with one free() and a malformed reply never leaves half a struct behind.
 */
#include "reply.h"

#include "codec.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

int reply_hello(const struct mp_bytes *result, uint32_t *max_frame, char server_id[33])
{
	struct mp_reader r;
	struct mp_bytes key, sid;
	uint64_t frame = 0, version = 1;
	uint32_t pairs;
	bool have_sid = false;

	mp_reader_init(&r, result->ptr, result->len);
	if (mp_read_map(&r, &pairs) == -1)
		return SESSD_ERR_PROTOCOL;
	for (uint32_t i = 0; i < pairs; i++) {
		if (mp_read_str(&r, &key) == -1)
			return SESSD_ERR_PROTOCOL;
		if (key_is(&key, "max_frame")) {
			if (mp_read_uint(&r, &frame) == -1)
				return SESSD_ERR_PROTOCOL;
		} else if (key_is(&key, "version")) {
			if (mp_read_uint(&r, &version) == -1)
				return SESSD_ERR_PROTOCOL;
		} else if (key_is(&key, "server_id")) {
			if (mp_read_str(&r, &sid) == -1 || sid.len != 32)
				return SESSD_ERR_PROTOCOL;
			have_sid = true;
		} else if (mp_skip(&r) == -1) {
			return SESSD_ERR_PROTOCOL;
		}
	}
	if (mp_reader_left(&r) != 0 || !have_sid || version != CODEC_PROTOCOL_VERSION ||
	    frame < CODEC_MIN_MAX_FRAME || frame > UINT32_MAX)
		return SESSD_ERR_PROTOCOL;
	*max_frame = (uint32_t)frame;
	memcpy(server_id, sid.ptr, 32);
	server_id[32] = '\0';
	return SESSD_OK;
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

/*
 * One array of messages of one type. Counts them and their bytes (type and message copies
 * with NULs) into ${count} and ${bytes}; fills items from ${fill} when it is not NULL.
 */
static int walk_messages(struct mp_reader *r, const void *type, size_t type_len,
                         struct sessd_flashes *fill, char **text, size_t *count, size_t *bytes)
{
	struct mp_bytes msg;
	struct sessd_flash *item;
	uint32_t n;
	bool is_bin;
	const char *type_copy = NULL;

	if (mp_read_array(r, &n) == -1)
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

static int walk_flashes(const struct mp_bytes *result, const char *type, struct sessd_flashes *fill,
                        char *text, size_t *count, size_t *bytes)
{
	struct mp_reader r;
	struct mp_bytes t;
	uint32_t pairs;

	*count = 0;
	*bytes = 0;
	mp_reader_init(&r, result->ptr, result->len);
	if (type != NULL) {
		if (walk_messages(&r, type, strlen(type), fill, &text, count, bytes) == -1)
			return -1;
	} else {
		if (mp_read_map(&r, &pairs) == -1)
			return -1;
		for (uint32_t i = 0; i < pairs; i++)
			if (mp_read_str(&r, &t) == -1 || t.len == 0 ||
			    walk_messages(&r, t.ptr, t.len, fill, &text, count, bytes) == -1)
				return -1;
	}
	return mp_reader_left(&r) == 0 ? 0 : -1;
}

int reply_flashes(const struct mp_bytes *result, const char *type, struct sessd_flashes **out)
{
	struct sessd_flashes *f;
	size_t count, bytes, head;

	*out = NULL;
	if (walk_flashes(result, type, NULL, NULL, &count, &bytes) == -1)
		return SESSD_ERR_PROTOCOL;
	head = sizeof(*f) + count * sizeof(struct sessd_flash);
	f = malloc(head + bytes + 1);
	if (f == NULL)
		return SESSD_ERR_NOMEM;
	f->count = count;
	f->items = (struct sessd_flash *)(f + 1);
	/* The shape was checked above; the second walk over the same bytes cannot fail. */
	(void)walk_flashes(result, type, f, (char *)f + head, &count, &bytes);
	*out = f;
	return SESSD_OK;
}

static int walk_list(const struct mp_bytes *result, struct sessd_list *fill, char *text,
                     uint64_t *cursor, size_t *count, size_t *bytes)
{
	struct mp_reader r;
	struct mp_bytes id;
	uint32_t outer, n, pair;
	uint64_t ttl;

	*count = 0;
	*bytes = 0;
	mp_reader_init(&r, result->ptr, result->len);
	if (mp_read_array(&r, &outer) == -1 || outer != 2 || mp_read_uint(&r, cursor) == -1 ||
	    mp_read_array(&r, &n) == -1)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		if (mp_read_array(&r, &pair) == -1 || pair != 2 ||
		    mp_read_bytes(&r, &id, NULL) == -1 || mp_read_uint(&r, &ttl) == -1)
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

int reply_list(const struct mp_bytes *result, struct sessd_list **out)
{
	struct sessd_list *l;
	size_t count, bytes, head;
	uint64_t cursor;

	*out = NULL;
	if (walk_list(result, NULL, NULL, &cursor, &count, &bytes) == -1)
		return SESSD_ERR_PROTOCOL;
	head = sizeof(*l) + count * sizeof(struct sessd_list_entry);
	l = malloc(head + bytes + 1);
	if (l == NULL)
		return SESSD_ERR_NOMEM;
	l->count = count;
	l->next_cursor = cursor;
	l->items = (struct sessd_list_entry *)(l + 1);
	(void)walk_list(result, l, (char *)l + head, &cursor, &count, &bytes);
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
		if (mp_read_uint(&r, &v) == -1)
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
	size_t count, bytes, head;

	*out = NULL;
	if (walk_stats(result, NULL, NULL, &count, &bytes) == -1)
		return SESSD_ERR_PROTOCOL;
	head = sizeof(*s) + count * sizeof(struct sessd_stat);
	s = malloc(head + bytes + 1);
	if (s == NULL)
		return SESSD_ERR_NOMEM;
	s->count = count;
	s->items = (struct sessd_stat *)(s + 1);
	(void)walk_stats(result, s, (char *)s + head, &count, &bytes);
	*out = s;
	return SESSD_OK;
}
