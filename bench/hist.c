#include "hist.h"

#include <math.h>
#include <string.h>

static unsigned hist_index(uint64_t v)
{
	unsigned bits, shift;

	if (v >= (1ull << HIST_MAX_BITS))
		v = (1ull << HIST_MAX_BITS) - 1;
	if (v < HIST_SUB)
		return (unsigned)v;
	bits = 63u - (unsigned)__builtin_clzll(v); /* v >= HIST_SUB, so bits >= HIST_SUB_BITS */
	shift = bits - (HIST_SUB_BITS - 1);
	/* (v >> shift) lies in [HIST_HALF, HIST_SUB): each power of two after the first linear
	 * range adds HIST_HALF buckets. */
	return shift * HIST_HALF + (unsigned)(v >> shift);
}

static uint64_t hist_bucket_mid(unsigned idx)
{
	unsigned shift;
	uint64_t sub, low;

	if (idx < HIST_SUB)
		return idx;
	shift = idx / HIST_HALF - 1;
	sub = idx % HIST_HALF + HIST_HALF;
	low = sub << shift;
	return low + ((1ull << shift) >> 1);
}

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void hist_record(struct hist *h, uint64_t value)
{
	h->buckets[hist_index(value)]++;
	h->count++;
	h->sum += value;
	if (value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
}

void hist_add(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->buckets[i] += from->buckets[i];
	into->count += from->count;
	into->sum += from->sum;
	if (from->min < into->min)
		into->min = from->min;
	if (from->max > into->max)
		into->max = from->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0, v;

	if (h->count == 0)
		return 0;
	if (q <= 0)
		return h->min;
	if (q >= 1)
		return h->max;
	rank = (uint64_t)ceil(q * (double)h->count);
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			v = hist_bucket_mid(i);
			if (v < h->min)
				v = h->min;
			if (v > h->max)
				v = h->max;
			return v;
		}
	}
	return h->max;
}

double hist_mean(const struct hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}
