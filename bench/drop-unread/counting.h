/* What the drop-unread tools built by hand (README.md) share: a drop counter and CPU time. */
#ifndef SESSD_BENCH_DROP_UNREAD_COUNTING_H
#define SESSD_BENCH_DROP_UNREAD_COUNTING_H

#include <time.h>

#include "store.h"

static unsigned long drops;

/* store_drop_unread's callback: counts the drops, keeps none. */
static int on_drop(void *a, const struct store_key *k, uint64_t t)
{
	(void)a;
	(void)k;
	(void)t;
	drops++;
	return 0;
}

/* The thread's CPU time: the machine is shared, and another process's turn is not the store's. */
static double cpu_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

#endif
