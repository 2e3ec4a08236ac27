#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "store.h"
static unsigned long drops;
static int on_drop(void *a, const struct store_key *k, uint64_t t)
{
	(void)a;
	(void)k;
	(void)t;
	drops++;
	return 0;
}
int main(int argc, char **argv)
{
	size_t maxb = argc > 1 ? strtoul(argv[1], NULL, 0) : 4u << 20;
	size_t len = argc > 2 ? strtoul(argv[2], NULL, 0) : 10;
	struct store_config cfg = {.max_bytes = maxb, .max_flash_bytes = 65536};
	struct store *st;
	char id[32], data[4096] = {0};
	uint64_t now = 1700000000000ull;
	unsigned long refused = 0, first_full = 0, streak = 0, maxstreak = 0;
	if (sodium_init() < 0)
		return 2;
	st = store_new(&cfg);
	store_mark_unread(st);
	store_drop_unread(st, on_drop, NULL);
	for (unsigned long i = 0; i < 400000; i++) {
		struct store_key k = {.ns = (const uint8_t *)"app", .ns_len = 3};
		snprintf(id, sizeof(id), "bot%08lu", i);
		k.id = (const uint8_t *)id;
		k.id_len = strlen(id);
		size_t l = i < 20000 ? 1000 : len;
		if (store_set(st, &k, data, l, now + 3600000, now) != 0) {
			refused++;
			streak++;
			if (streak > maxstreak)
				maxstreak = streak;
			if (!first_full)
				first_full = i;
			if (refused == 1)
				printf("first refusal at %lu, drops %lu\n", i, drops);
		} else
			streak = 0;
		if (drops && !first_full)
			first_full = i;
	}
	{
		struct store_stats s;
		store_stats(st, NULL, 0, &s);
		printf("max %zu len %zu: full at %lu, refused %lu (longest run %lu), drops %lu, "
		       "sessions %llu bytes %llu\n",
		       maxb, len, first_full, refused, maxstreak, drops,
		       (unsigned long long)s.sessions, (unsigned long long)s.bytes);
	}
	store_free(st);
	return 0;
}
