#ifndef SESSD_BENCH_HIST_H
#define SESSD_BENCH_HIST_H

#include <stdint.h>

/*
 * A log-linear latency histogram in the manner of HdrHistogram: 256 linear sub-buckets per
 * power of two, so a bucket is at most 1/128 of its value wide and a reported value (the
 * bucket's midpoint) is within 0.4% of the true one. Fixed size, so recording allocates
 * nothing and costs a count-leading-zeros and an increment.
 */

#define HIST_SUB_BITS 8
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_HALF     (HIST_SUB / 2)
/* Values are clamped to 2^40 ns (about 18 minutes). */
#define HIST_MAX_BITS 40
#define HIST_BUCKETS  ((HIST_MAX_BITS - HIST_SUB_BITS + 1) * HIST_HALF + HIST_HALF)

struct hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	uint64_t sum;
	uint64_t buckets[HIST_BUCKETS];
};

/* hist_init(h): make ${h} empty. */
void hist_init(struct hist *h);

/* hist_record(h, value): count one ${value} (nanoseconds, or any unit). */
void hist_record(struct hist *h, uint64_t value);

/* hist_add(into, from): add every count of ${from} to ${into}. */
void hist_add(struct hist *into, const struct hist *from);

/*
 * hist_quantile(h, q):
 * The value at quantile ${q} (0..1): the midpoint of the bucket holding the ceil(q * count)-th
 * smallest value, clamped to the exact min and max. Returns 0 for an empty histogram.
 */
uint64_t hist_quantile(const struct hist *h, double q);

/* hist_mean(h): the exact mean of the recorded values, 0 for an empty histogram. */
double hist_mean(const struct hist *h);

#endif
