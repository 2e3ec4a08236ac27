/*
 * store_lookups: the store's requests of the session mix with no daemon around them, for
 * valgrind's cache simulation (bench/ceiling-callgrind --store).
 *
 * Fills a store with N sessions of a 43-byte id (what connect-sessd sends) and 1 KB of data,
 * then runs OPS requests on sessions picked at random, in the session mix's proportions
 * without the ones that change which sessions exist: 60 GET (the data read, as a reply copies
 * it), 20 TOUCH, 14 SET of the same size (in place), 6 TTL. The requests run in store_mix_run
 * alone, so that `valgrind --tool=callgrind --toggle-collect=store_mix_run` counts them and
 * nothing of the load. The ids and the picks come from a fixed seed; only the store's hash
 * key is random, so the chains differ from run to run by their lengths' spread alone.
 * Usage: store_lookups [sessions] [ops]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define LOOKUPS_ID_BYTES   43u
#define LOOKUPS_DATA_BYTES 1024u
#define LOOKUPS_TTL_MS     (UINT64_C(1) << 40)

/* xorshift64: a fixed stream, so that two builds run the same requests. */
static uint64_t next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/* Session ${i}'s id: 43 characters of base64url drawn from ${i}. */
static void id_of(uint8_t *id, size_t i)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint64_t state = UINT64_C(0x9e3779b97f4a7c15) ^ (i + 1);

	for (size_t b = 0; b < LOOKUPS_ID_BYTES; b++)
		id[b] = (uint8_t)alphabet[next_random(&state) & 63];
}

/* Not inlined: callgrind counts from its entry to its return (--toggle-collect). */
__attribute__((noinline)) int store_mix_run(struct store *st, size_t sessions, size_t ops,
                                            uint8_t *reply, const uint8_t *data);

__attribute__((noinline)) int store_mix_run(struct store *st, size_t sessions, size_t ops,
                                            uint8_t *reply, const uint8_t *data)
{
	uint64_t state = UINT64_C(0x2545f4914f6cdd1d), at_ms;
	uint8_t id[LOOKUPS_ID_BYTES];
	struct store_key k = {.ns = (const uint8_t *)"default", .ns_len = 7, .id = id};
	const void *got;
	size_t len;

	k.id_len = sizeof(id);
	for (size_t op = 0; op < ops; op++) {
		uint64_t r = next_random(&state);
		unsigned kind = (unsigned)((r >> 32) % 100);
		int rc;

		id_of(id, (size_t)(r % sessions));
		if (kind < 60) {
			rc = store_get(st, &k, 1, &got, &len);
			if (rc == 0)
				memcpy(reply, got, len);
		} else if (kind < 80) {
			rc = store_touch(st, &k, LOOKUPS_TTL_MS + op, 1);
		} else if (kind < 94) {
			rc = store_set(st, &k, data, LOOKUPS_DATA_BYTES, LOOKUPS_TTL_MS + op, 1);
		} else {
			rc = store_expiry(st, &k, 1, &at_ms);
		}
		if (rc != 0) {
			fprintf(stderr, "store_lookups: request %zu failed\n", op);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	size_t sessions = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
	size_t ops = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
	struct store_config cfg = {.max_bytes = 0, .max_flash_bytes = 65536};
	static uint8_t data[LOOKUPS_DATA_BYTES], reply[LOOKUPS_DATA_BYTES];
	uint8_t id[LOOKUPS_ID_BYTES];
	struct store *st;
	int rc;

	if (sessions == 0) {
		fprintf(stderr, "usage: store_lookups [sessions] [ops]\n");
		return 2;
	}
	memset(data, 'd', sizeof(data));
	st = store_new(&cfg);
	if (st == NULL)
		return 1;
	for (size_t i = 0; i < sessions; i++) {
		struct store_key k = {
		    .ns = (const uint8_t *)"default", .ns_len = 7, .id = id, .id_len = sizeof(id)};

		id_of(id, i);
		if (store_set(st, &k, data, sizeof(data), LOOKUPS_TTL_MS, 0) != 0) {
			perror("store_set");
			store_free(st);
			return 1;
		}
	}
	rc = store_mix_run(st, sessions, ops, reply, data);
	printf("%zu sessions, %zu requests: %s\n", sessions, ops, rc == 0 ? "done" : "failed");
	store_free(st);
	return rc == 0 ? 0 : 1;
}
