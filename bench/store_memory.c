/*
 * store_memory: what one session costs beyond its id and data.
 *
 * Fills a store with N sessions of a 32-byte id and 1 KB of data and reports, per session,
 * the overhead that malloc really spent (mallinfo2: headers, rounding, hash table buckets,
 * namespace records) and the overhead the store accounts (malloc_usable_size of nodes).
 * Usage: store_memory [sessions] [data_bytes] [id_bytes]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	size_t data_len = argc > 2 ? strtoul(argv[2], NULL, 10) : 1024;
	size_t id_len = argc > 3 ? strtoul(argv[3], NULL, 10) : 32;
	struct store_config cfg = {.max_bytes = 0, .max_flash_bytes = 65536};
	struct store *st;
	struct store_stats stats;
	struct mallinfo2 before, after;
	uint8_t id[128];
	char *data;

	if (n == 0 || id_len < 8 || id_len > 128) {
		fprintf(stderr, "usage: store_memory [sessions] [data_bytes] [id_bytes 8..128]\n");
		return 2;
	}
	data = malloc(data_len + 1);
	if (data == NULL)
		return 1;
	memset(data, 'd', data_len);
	memset(id, 'i', sizeof(id));
	st = store_new(&cfg);
	if (st == NULL)
		return 1;
	before = mallinfo2();
	for (size_t i = 0; i < n; i++) {
		struct store_key k = {
		    .ns = (const uint8_t *)"default", .ns_len = 7, .id = id, .id_len = id_len};

		memcpy(id, &i, sizeof(i));
		if (store_set(st, &k, data, data_len, UINT64_C(1) << 50, 0) != 0) {
			perror("store_set");
			return 1;
		}
	}
	after = mallinfo2();
	store_stats(st, NULL, 0, &stats);
	printf("sessions %zu, id %zu B, data %zu B\n", n, id_len, data_len);
	printf("real overhead per session (malloc + tables): %.1f B\n",
	       (double)(after.uordblks + after.hblkhd - before.uordblks - before.hblkhd) /
	               (double)n -
	           (double)(id_len + data_len));
	printf("accounted overhead per session (usable size): %.1f B\n",
	       (double)stats.bytes / (double)n - (double)(id_len + data_len));
	store_free(st);
	free(data);
	return 0;
}
