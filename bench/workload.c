#include "workload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"

/* Enough distinct values that a server cannot get lucky with one cache line of payload. */
#define WORKLOAD_VALUES 16

struct workload {
	uint64_t ids;
	size_t value_size;
	char *id_table;  /* ids * WORKLOAD_ID_LEN characters, no separators */
	uint8_t *values; /* WORKLOAD_VALUES * value_size bytes */
};

static const char *const workload_names[WORKLOAD_KINDS] = {
    "get", "touch", "set", "destroy", "flash_push", "flash_pop", "ping", "echo",
};

const char *workload_kind_name(enum workload_kind kind)
{
	return (unsigned)kind < WORKLOAD_KINDS ? workload_names[kind] : "?";
}

/* splitmix64: a fast, well-mixed stream; quality beyond uniform key choice is not needed. */
static uint64_t workload_mix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int workload_mix_parse(struct workload_mix *mix, const char *text)
{
	const char *p = text;

	memset(mix, 0, sizeof(*mix));
	while (*p) {
		const char *eq = strchr(p, '=');
		char *end;
		unsigned long v;
		size_t name_len;
		int kind = -1;

		if (!eq)
			return -1;
		name_len = (size_t)(eq - p);
		if (name_len == 5 && memcmp(p, "flash", 5) == 0)
			kind = WORKLOAD_FLASH_PUSH;
		for (int k = 0; k < WORKLOAD_KINDS && kind < 0; k++)
			if (k != WORKLOAD_FLASH_PUSH && k != WORKLOAD_FLASH_POP &&
			    strlen(workload_names[k]) == name_len &&
			    memcmp(p, workload_names[k], name_len) == 0)
				kind = k;
		if (kind < 0)
			return -1;
		errno = 0;
		v = strtoul(eq + 1, &end, 10);
		if (errno || end == eq + 1 || v > 1000000 || (*end && *end != ','))
			return -1;
		mix->weight[kind] += (unsigned)v;
		mix->total += (unsigned)v;
		p = *end ? end + 1 : end;
	}
	return mix->total ? 0 : -1;
}

/*
 * Write a session shaped like shared/data/express-sessions.jsonl (cookie, passport user, csrf
 * secret, a cart of items), then pad one string field so the JSON is exactly ${size} bytes.
 * Below the size of the bare shape the value is a JSON string of random characters.
 */
static void workload_make_value(uint8_t *out, size_t size, uint64_t *rng)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	static const char *const items[] = {"apple",        "notebook",    "headphones",
	                                    "coffee beans", "usb-c cable", "desk lamp",
	                                    "running shoes"};
	char token[2][25];
	char head[512];
	size_t len, tail;
	int n;

	for (int t = 0; t < 2; t++) {
		for (int i = 0; i < 24; i++)
			token[t][i] = alphabet[workload_mix64(rng) & 63];
		token[t][24] = '\0';
	}
	n = snprintf(
	    head, sizeof(head),
	    "{\"cookie\":{\"originalMaxAge\":86400000,\"expires\":\"2026-11-23T12:%02u:%02u."
	    "%03uZ\",\"secure\":true,\"httpOnly\":true,\"path\":\"/\",\"sameSite\":\"lax\"},"
	    "\"passport\":{\"user\":\"%s\"},\"csrfSecret\":\"%s\",\"cart\":[",
	    (unsigned)(workload_mix64(rng) % 60), (unsigned)(workload_mix64(rng) % 60),
	    (unsigned)(workload_mix64(rng) % 1000), token[0], token[1]);
	/* The tail is ],"flash":"<pad>"} : 14 bytes around the padding. */
	tail = 14;
	if (n < 0 || (size_t)n + tail > size) {
		for (size_t i = 0; i < size; i++)
			out[i] = (uint8_t)alphabet[workload_mix64(rng) & 63];
		if (size >= 2) {
			out[0] = '"';
			out[size - 1] = '"';
		}
		return;
	}
	memcpy(out, head, (size_t)n);
	len = (size_t)n;
	for (unsigned i = 0;; i++) {
		char item[96];
		int m = snprintf(item, sizeof(item), "%s{\"item\":\"%s\",\"qty\":%u,\"price\":%u}",
		                 i ? "," : "", items[workload_mix64(rng) % 7],
		                 (unsigned)(1 + workload_mix64(rng) % 5),
		                 (unsigned)(99 + workload_mix64(rng) % 9900));
		/* Cart items fill most of a large value; the padding takes the rest. */
		if (m < 0 || len + (size_t)m + tail + 32 > size)
			break;
		memcpy(out + len, item, (size_t)m);
		len += (size_t)m;
	}
	memcpy(out + len, "],\"flash\":\"", 11);
	len += 11;
	while (len < size - 2)
		out[len++] = (uint8_t)alphabet[workload_mix64(rng) & 63];
	out[len++] = '"';
	out[len++] = '}';
}

struct workload *workload_new(uint64_t ids, size_t value_size, uint64_t seed)
{
	struct workload *w;
	uint64_t rng = seed;

	if (ids > SIZE_MAX / WORKLOAD_ID_LEN || value_size > SIZE_MAX / WORKLOAD_VALUES) {
		errno = ENOMEM;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		goto fail;
	w->ids = ids;
	w->value_size = value_size;
	w->id_table = malloc(ids ? ids * WORKLOAD_ID_LEN : 1);
	w->values = malloc(value_size ? value_size * WORKLOAD_VALUES : 1);
	if (!w->id_table || !w->values)
		goto fail_free;
	for (uint64_t i = 0; i < ids; i++) {
		uint8_t raw[IDS_RANDOM_BYTES];
		char text[IDS_TEXT_LEN + 1];
		uint64_t s = seed ^ (i * 0xd1342543de82ef95ull);

		for (size_t j = 0; j < sizeof(raw); j += 8) {
			uint64_t r = workload_mix64(&s);
			memcpy(raw + j, &r, 8);
		}
		if (ids_base64url_encode(text, sizeof(text), raw, sizeof(raw)) != WORKLOAD_ID_LEN)
			goto fail_free;
		memcpy(w->id_table + i * WORKLOAD_ID_LEN, text, WORKLOAD_ID_LEN);
	}
	for (size_t v = 0; v < WORKLOAD_VALUES; v++)
		workload_make_value(w->values + v * value_size, value_size, &rng);
	return w;

fail_free:
	workload_free(w);
	errno = ENOMEM;
fail:
	return NULL;
}

void workload_free(struct workload *w)
{
	if (!w)
		return;
	free(w->id_table);
	free(w->values);
	free(w);
}

const uint8_t *workload_id(const struct workload *w, uint64_t key)
{
	return (const uint8_t *)w->id_table + key * WORKLOAD_ID_LEN;
}

const uint8_t *workload_value(const struct workload *w, uint64_t n)
{
	return w->values + (n % WORKLOAD_VALUES) * w->value_size;
}

size_t workload_value_size(const struct workload *w)
{
	return w->value_size;
}

void workload_gen_init(struct workload_gen *g, uint64_t seed)
{
	g->rng = seed;
	g->pending_pop = -1;
}

void workload_next(const struct workload *w, const struct workload_mix *mix, struct workload_gen *g,
                   uint64_t keys, uint64_t ttl_ms, struct workload_op *op)
{
	uint64_t r;
	unsigned pick;
	int kind = 0;

	memset(op, 0, sizeof(*op));
	op->ttl_ms = ttl_ms;
	if (g->pending_pop >= 0) {
		op->kind = WORKLOAD_FLASH_POP;
		op->key = (uint64_t)g->pending_pop;
		g->pending_pop = -1;
		return;
	}
	r = workload_mix64(&g->rng);
	pick = (unsigned)((r >> 32) % mix->total);
	while (pick >= mix->weight[kind]) {
		pick -= mix->weight[kind];
		kind++;
	}
	op->kind = (enum workload_kind)kind;
	/* The low half picks the key; the modulo bias over 2^32 is far below what matters here. */
	op->key = keys ? (r & 0xffffffffu) % keys : 0;
	if (kind == WORKLOAD_SET || kind == WORKLOAD_ECHO) {
		op->value = workload_value(w, r >> 40);
		op->value_len = w->value_size;
	} else if (kind == WORKLOAD_FLASH_PUSH) {
		g->pending_pop = (int64_t)op->key;
	}
}
