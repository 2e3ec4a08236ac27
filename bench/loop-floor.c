/*
 * loop-floor: how often this machine takes the CPU away from a loop that does no system
 * calls, and for how long. It runs a loop that copies 1 KB within a 64 KB working set (all in
 * cache) and counts the gaps between consecutive iterations over 1, 2 and 10 ms, while a
 * second thread spins, standing in for the load generator that shares the machine with the
 * server in a sessd-bench run.
 *
 * A gap here cannot be the program's own doing: an iteration is well under a microsecond.
 * So these counts are what the machine takes from any loop under the same load (the kernel's
 * own threads preempting it, and on a virtual machine the host descheduling its CPU), and
 * bench/compare prints them beside sessd's loop-stall counts as a control.
 *
 *   loop-floor [--duration SECONDS] [--no-spinner] [--json]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FLOOR_BLOCK_BYTES 1024
#define FLOOR_BLOCKS      64

struct floor_result {
	uint64_t iterations;
	uint64_t max_gap_us;
	uint64_t gaps_over_1ms;
	uint64_t gaps_over_2ms;
	uint64_t gaps_over_10ms;
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void *spin(void *arg)
{
	atomic_bool *stop = arg;
	volatile uint64_t count = 0;

	while (!atomic_load_explicit(stop, memory_order_relaxed))
		count++;
	return NULL;
}

static void measure(uint64_t duration_us, struct floor_result *res)
{
	static uint8_t blocks[FLOOR_BLOCKS][FLOOR_BLOCK_BYTES];
	uint8_t copy[FLOOR_BLOCK_BYTES];
	uint32_t seed = 2463534242u;
	uint64_t prev = mono_us(), end = prev + duration_us;

	memset(res, 0, sizeof(*res));
	memset(blocks, 1, sizeof(blocks));
	while (prev < end) {
		uint64_t now, gap;

		/* xorshift: a cheap, varying choice of block, so the copy is not optimised away */
		seed ^= seed << 13;
		seed ^= seed >> 17;
		seed ^= seed << 5;
		memcpy(copy, blocks[seed % FLOOR_BLOCKS], sizeof(copy));
		copy[seed % FLOOR_BLOCK_BYTES]++;
		memcpy(blocks[(seed >> 8) % FLOOR_BLOCKS], copy, sizeof(copy));
		now = mono_us();
		gap = now - prev;
		prev = now;
		res->iterations++;
		if (gap > res->max_gap_us)
			res->max_gap_us = gap;
		res->gaps_over_1ms += gap > 1000;
		res->gaps_over_2ms += gap > 2000;
		res->gaps_over_10ms += gap > 10000;
	}
}

static void usage(FILE *to)
{
	fprintf(to, "usage: loop-floor [--duration SECONDS] [--no-spinner] [--json]\n"
	            "  --duration SECONDS  how long to measure (default 5)\n"
	            "  --no-spinner        no second thread spinning beside the loop\n"
	            "  --json              print one JSON object\n");
}

int main(int argc, char **argv)
{
	double seconds = 5;
	bool spinner = true, json = false;
	atomic_bool stop = false;
	pthread_t thread;
	struct floor_result res;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
			char *end;

			seconds = strtod(argv[++i], &end);
			if (*end != '\0' || !(seconds > 0 && seconds <= 3600)) {
				fprintf(stderr,
				        "loop-floor: bad --duration %s (want 0 < S <= 3600)\n",
				        argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--no-spinner") == 0) {
			spinner = false;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (spinner && pthread_create(&thread, NULL, spin, &stop) != 0) {
		fprintf(stderr, "loop-floor: cannot start the spinning thread\n");
		return 1;
	}
	measure((uint64_t)(seconds * 1e6), &res);
	if (spinner) {
		atomic_store(&stop, true);
		pthread_join(thread, NULL);
	}
	if (json)
		printf(
		    "{\"duration_s\":%.3f,\"spinner\":%s,\"iterations\":%llu,\"max_gap_us\":%llu,"
		    "\"gaps_over_1ms\":%llu,\"gaps_over_2ms\":%llu,\"gaps_over_10ms\":%llu}\n",
		    seconds, spinner ? "true" : "false", (unsigned long long)res.iterations,
		    (unsigned long long)res.max_gap_us, (unsigned long long)res.gaps_over_1ms,
		    (unsigned long long)res.gaps_over_2ms, (unsigned long long)res.gaps_over_10ms);
	else
		printf("%.1f s, %llu iterations%s: longest gap %llu us; gaps over 1 ms %llu, over "
		       "2 ms %llu, over 10 ms %llu\n",
		       seconds, (unsigned long long)res.iterations,
		       spinner ? " (another thread spinning)" : "",
		       (unsigned long long)res.max_gap_us, (unsigned long long)res.gaps_over_1ms,
		       (unsigned long long)res.gaps_over_2ms,
		       (unsigned long long)res.gaps_over_10ms);
	return 0;
}
