/* drop-unread torture: random ops on a full store against a model. */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "store.h"

#define NNS 5
#define NID 3000
struct m {
	bool exists, read, data;
	uint64_t exp;
};
static struct m model[NNS][NID];
static uint64_t now = 1700000000000ull;
static uint64_t recent[128];
static size_t recent_at; /* ns*NID+id+1 */
static long cur_ns = -1, cur_id = -1;
static uint64_t drops, bad, refused;
static char nsname[NNS][8];

static bool live(int n, int i)
{
	return model[n][i].exists && model[n][i].exp > now;
}
static void created(int n, int i)
{
	model[n][i].exists = true;
	model[n][i].read = false;
	recent[recent_at] = (uint64_t)n * NID + i + 1;
	recent_at = (recent_at + 1) % 128;
}
static int parse(const struct store_key *k, int *n, int *i)
{
	char b[16];
	for (*n = 0; *n < NNS; (*n)++)
		if (k->ns_len == strlen(nsname[*n]) && memcmp(k->ns, nsname[*n], k->ns_len) == 0)
			break;
	if (*n == NNS || k->id_len > 10)
		return -1;
	memcpy(b, k->id, k->id_len);
	b[k->id_len] = 0;
	*i = atoi(b + 1);
	return 0;
}
static int on_drop(void *arg, const struct store_key *k, uint64_t t)
{
	int n, i;
	(void)arg;
	(void)t;
	if (parse(k, &n, &i) != 0) {
		printf("drop of unknown key\n");
		bad++;
		return 0;
	}
	if (!live(n, i)) {
		printf("drop of a dead session %d/%d\n", n, i);
		bad++;
	}
	if (model[n][i].read) {
		printf("drop of a READ session %d/%d\n", n, i);
		bad++;
	}
	if (n == cur_ns && i == cur_id) {
		printf("drop of the write's own\n");
		bad++;
	}
	for (int r = 0; r < 128; r++)
		if (recent[r] == (uint64_t)n * NID + i + 1) {
			printf("drop of a recent %d/%d\n", n, i);
			bad++;
		}
	model[n][i].exists = false;
	drops++;
	return 0;
}
static int on_type(void *a, const uint8_t *t, size_t l, size_t c)
{
	(void)a;
	(void)t;
	(void)l;
	(void)c;
	return 0;
}
static int on_msg(void *a, const void *m, size_t l, bool b)
{
	(void)a;
	(void)m;
	(void)l;
	(void)b;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned seed = argc > 1 ? (unsigned)atoi(argv[1]) : 1;
	long steps = argc > 2 ? atol(argv[2]) : 200000;
	struct store_config cfg = {.max_bytes = 1024 * 1024, .max_flash_bytes = 64 * 1024};
	static char data[40000];
	struct store *st;
	char id[16];
	if (sodium_init() < 0)
		return 2;
	srand(seed);
	memset(data, 'x', sizeof(data));
	for (int n = 0; n < NNS; n++)
		snprintf(nsname[n], sizeof(nsname[n]), "ns%d", n);
	st = store_new(&cfg);
	store_mark_unread(st);
	store_drop_unread(st, on_drop, NULL);
	for (long step = 0; step < steps; step++) {
		int n = rand() % NNS, i = rand() % NID, op = rand() % 100;
		struct store_key k = {.ns = (const uint8_t *)nsname[n],
		                      .ns_len = strlen(nsname[n])};
		uint64_t ttl = 1000 + (uint64_t)(rand() % 600000);
		size_t len = rand() % 8 == 0 ? (size_t)(rand() % 30000) : (size_t)(rand() % 60);
		snprintf(id, sizeof(id), "s%d", i);
		k.id = (const uint8_t *)id;
		k.id_len = strlen(id);
		cur_ns = n;
		cur_id = i;
		if (op < 45) { /* SET */
			bool was = live(n, i);
			if (store_set(st, &k, data, len, now + ttl, now) == 0) {
				if (!was)
					created(n, i);
				model[n][i].data = true;
				model[n][i].exp = now + ttl;
			} else if (errno != ENOMEM) {
				printf("set errno %d\n", errno);
				bad++;
			} else {
				refused++;
			}
		} else if (op < 65) { /* GET */
			const void *d;
			size_t l;
			int rc = store_get(st, &k, now, &d, &l);
			bool want = live(n, i) && model[n][i].data;
			if ((rc == 0) != want) {
				printf("get %d/%d: store %d model %d\n", n, i, rc, want);
				bad++;
			}
			if (rc == 0)
				model[n][i].read = true;
			if (!live(n, i))
				model[n][i].exists = false;
		} else if (op < 75) { /* FLASH_PUSH */
			bool was = live(n, i);
			size_t q;
			if (store_flash_push(st, &k, (const uint8_t *)"info", 4, data,
			                     len % 200 + 1, false, now + ttl, now, &q) == 0) {
				if (!was) {
					created(n, i);
					model[n][i].data = false;
					model[n][i].exp = now + ttl;
				} else if (now + ttl > model[n][i].exp)
					model[n][i].exp = now + ttl;
			} else if (errno == ENOMEM) {
				refused++;
			}
		} else if (op < 83) { /* FLASH_POP */
			size_t qc;
			int rc = store_flash_pop(st, &k, NULL, 0, now, &qc, on_type, on_msg, NULL);
			if ((rc == 0) != live(n, i)) {
				printf("pop %d/%d: store %d model %d\n", n, i, rc, live(n, i));
				bad++;
			}
			if (rc == 0)
				model[n][i].read = true;
			if (!live(n, i))
				model[n][i].exists = false;
		} else if (op < 88) { /* TOUCH */
			int rc = store_touch(st, &k, now + ttl, now);
			if (rc == 0) {
				model[n][i].read = true;
				model[n][i].exp = now + ttl;
			}
			if (rc != 0)
				model[n][i].exists = false;
		} else if (op < 93) { /* DESTROY */
			store_destroy(st, &k, now);
			model[n][i].exists = false;
		} else if (op < 94 && rand() % 20 == 0) { /* CLEAR */
			store_clear(st, k.ns, k.ns_len, now);
			for (int j = 0; j < NID; j++)
				model[n][j].exists = false;
		} else { /* time passes */
			now += (uint64_t)(rand() % 300);
			store_expire(st, now, 1000);
		}
		if (step % 997 == 0) {
			struct store_stats s;
			uint64_t ml = 0, mu = 0;
			store_expire(st, now, 1000000);
			store_stats(st, NULL, 0, &s);
			for (int a = 0; a < NNS; a++)
				for (int b = 0; b < NID; b++) {
					if (model[a][b].exists && model[a][b].exp <= now)
						model[a][b].exists = false;
					if (model[a][b].exists) {
						ml++;
						mu += !model[a][b].read;
					}
				}
			if (s.sessions != ml || s.unread != mu || s.evicted_total != drops) {
				printf("step %ld: store sessions %llu unread %llu evicted %llu; "
				       "model %llu %llu %llu\n",
				       step, (unsigned long long)s.sessions,
				       (unsigned long long)s.unread,
				       (unsigned long long)s.evicted_total, (unsigned long long)ml,
				       (unsigned long long)mu, (unsigned long long)drops);
				bad++;
			}
		}
		if (bad > 20)
			break;
	}
	{
		struct store_stats s;
		store_stats(st, NULL, 0, &s);
		printf("seed %u: drops %llu refused %llu bad %llu sessions %llu unread %llu bytes "
		       "%llu\n",
		       seed, (unsigned long long)drops, (unsigned long long)refused,
		       (unsigned long long)bad, (unsigned long long)s.sessions,
		       (unsigned long long)s.unread, (unsigned long long)s.bytes);
	}
	store_free(st);
	return bad != 0;
}
