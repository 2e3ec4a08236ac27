/* drop-unread: new namespaces (one a tenant) into a store full of one namespace's unread
 * sessions; prints the writes refused, the drops made by refused writes and the longest SET. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "counting.h"
#include "store.h"

int main(int argc, char **argv)
{
	size_t maxb = argc > 1 ? strtoul(argv[1], NULL, 0) : 4u << 20;
	unsigned long writes = argc > 2 ? strtoul(argv[2], NULL, 0) : 100000;
	size_t big = argc > 3 ? strtoul(argv[3], NULL, 0) : 1000;
	struct store_config cfg = {.max_bytes = maxb, .max_flash_bytes = 65536};
	unsigned long refused = 0, lost = 0, streak = 0, longest_run = 0;
	uint64_t now = 1700000000000ull;
	char id[32], ns[32], data[4096] = {0};
	struct store_stats s;
	struct store *st;
	double worst = 0;

	if (sodium_init() < 0 || big > sizeof(data))
		return 2;
	st = store_new(&cfg);
	store_mark_unread(st);
	store_drop_unread(st, on_drop, NULL);
	for (unsigned long i = 0; i < writes; i++) {
		bool fill = i < maxb / big;
		unsigned long before = drops;
		struct store_key k;
		double t0;
		int rc;

		snprintf(ns, sizeof(ns), fill ? "app" : "t%07lu", i);
		snprintf(id, sizeof(id), "s%08lu", i);
		k = (struct store_key){.ns = (const uint8_t *)ns,
		                       .ns_len = strlen(ns),
		                       .id = (const uint8_t *)id,
		                       .id_len = strlen(id)};
		t0 = cpu_us();
		rc = store_set(st, &k, data, fill ? big : 10, now + 3600000, now);
		if (cpu_us() - t0 > worst)
			worst = cpu_us() - t0;
		if (rc != 0) {
			refused++;
			lost += drops - before;
			if (++streak > longest_run)
				longest_run = streak;
		} else {
			streak = 0;
		}
	}
	store_stats(st, NULL, 0, &s);
	printf("max %zu: refused %lu (longest run %lu), drops %lu (%lu by refused writes), "
	       "sessions %llu, namespaces %llu, longest SET %.0f us\n",
	       maxb, refused, longest_run, drops, lost, (unsigned long long)s.sessions,
	       (unsigned long long)s.namespaces, worst);
	store_free(st);
	return 0;
}
