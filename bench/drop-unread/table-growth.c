#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>
#include "counting.h"
#include "store.h"
#define WRITES 400000ul
static double took_us[WRITES];
static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}
int main(int argc, char **argv)
{
	size_t maxb = argc > 1 ? strtoul(argv[1], NULL, 0) : 4u << 20;
	size_t len = argc > 2 ? strtoul(argv[2], NULL, 0) : 10;
	struct store_config cfg = {.max_bytes = maxb, .max_flash_bytes = 65536};
	struct store *st;
	char id[32], data[4096] = {0};
	uint64_t now = 1700000000000ull;
	unsigned long refused = 0, first_full = 0, streak = 0, maxstreak = 0, most_drops = 0;
	if (sodium_init() < 0)
		return 2;
	st = store_new(&cfg);
	store_mark_unread(st);
	store_drop_unread(st, on_drop, NULL);
	for (unsigned long i = 0; i < WRITES; i++) {
		struct store_key k = {.ns = (const uint8_t *)"app", .ns_len = 3};
		size_t l = i < 20000 ? 1000 : len;
		unsigned long drops_before = drops;
		double t0;
		int rc;

		snprintf(id, sizeof(id), "bot%08lu", i);
		k.id = (const uint8_t *)id;
		k.id_len = strlen(id);
		t0 = cpu_us();
		rc = store_set(st, &k, data, l, now + 3600000, now);
		took_us[i] = cpu_us() - t0;
		if (drops - drops_before > most_drops)
			most_drops = drops - drops_before;
		if (rc != 0) {
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
		qsort(took_us, WRITES, sizeof(took_us[0]), by_value);
		printf("max %zu len %zu: full at %lu, refused %lu (longest run %lu), drops %lu (at "
		       "most %lu in one SET), sessions %llu bytes %llu; SET CPU us: median %.1f, "
		       "99.9%% %.1f, 99.99%% %.1f, max %.0f\n",
		       maxb, len, first_full, refused, maxstreak, drops, most_drops,
		       (unsigned long long)s.sessions, (unsigned long long)s.bytes,
		       took_us[WRITES / 2], took_us[WRITES - WRITES / 1000],
		       took_us[WRITES - WRITES / 10000], took_us[WRITES - 1]);
	}
	store_free(st);
	return 0;
}
