/*
 * --when-full refuse in a busy daemon (reviewc-52, by hand): a namespace of PREFILL + 1
 * sessions of 16 bytes, whose table has just begun to double, then a limit of the store's bytes
 * and ROOM more, then AFTER new sessions, a loop turn (store_turn_begins) every K writes. It
 * prints the writes refused, how many of them before the last write kept (refused while the
 * old table's room was owed) and the longest turn (CPU time). With DROP=1 in the environment, under
 * drop-unread instead (the drops); with READ=1 too, every session is read as it is written.
 * store_turn_begins is weak: the program also builds against a store from before it (e016abf),
 * where it is never called.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "counting.h"
#include "store.h"

void store_turn_begins(struct store *st) __attribute__((weak));

int main(int argc, char **argv)
{
	unsigned long k = argc > 1 ? strtoul(argv[1], NULL, 0) : 1;
	unsigned long prefill = argc > 2 ? strtoul(argv[2], NULL, 0) : 1ul << 20;
	size_t room = argc > 3 ? strtoul(argv[3], NULL, 0) : 2u << 20;
	unsigned long after = argc > 4 ? strtoul(argv[4], NULL, 0) : 300000;
	struct store_config cfg = {.max_bytes = 0, .max_flash_bytes = 65536};
	struct store_key key = {.ns = (const uint8_t *)"b", .ns_len = 1};
	uint64_t now = 1700000000000ull;
	unsigned long i, refused = 0, refused_owed = 0, last_ok = 0;
	double t0, longest = 0;
	char id[32], data[16] = {0};
	struct store_stats s;
	bool read = getenv("READ") != NULL;
	const void *got;
	size_t got_len;
	struct store *st;

	if (k == 0 || sodium_init() < 0)
		return 2;
	st = store_new(&cfg);
	if (st == NULL)
		return 2;
	if (getenv("DROP") != NULL) {
		store_mark_unread(st);
		store_drop_unread(st, on_drop, NULL);
	}
	for (i = 0; i < prefill + 1; i++) {
		snprintf(id, sizeof(id), "s%012lu", i);
		key.id = (const uint8_t *)id;
		key.id_len = strlen(id);
		if (store_set(st, &key, data, sizeof(data), now + 3600000, now) != 0)
			return 3;
		if (read)
			(void)store_get(st, &key, now, &got, &got_len);
	}
	store_stats(st, NULL, 0, &s);
	store_set_max_bytes(st, s.bytes + room);
	t0 = cpu_us() / 1e3;
	for (unsigned long j = 0; j < after; j++, i++) {
		if (j % k == 0) {
			double t = cpu_us() / 1e3;

			if (j != 0 && t - t0 > longest)
				longest = t - t0;
			t0 = t;
			if (store_turn_begins != NULL)
				store_turn_begins(st);
		}
		snprintf(id, sizeof(id), "s%012lu", i);
		key.id = (const uint8_t *)id;
		key.id_len = strlen(id);
		if (store_set(st, &key, data, sizeof(data), now + 3600000, now) != 0) {
			refused++;
		} else {
			refused_owed = refused;
			last_ok = j + 1;
			if (read)
				(void)store_get(st, &key, now, &got, &got_len);
		}
	}
	store_stats(st, NULL, 0, &s);
	printf("%lu writes a turn: refused %lu of %lu, %lu before the last kept (write %lu); "
	       "sessions %llu, drops %lu; longest turn %.1f ms\n",
	       k, refused, after, refused_owed, last_ok, (unsigned long long)s.sessions, drops,
	       longest);
	store_free(st);
	return 0;
}
