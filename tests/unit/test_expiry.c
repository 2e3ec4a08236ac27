#include <criterion/criterion.h>

#include "leakcheck.h"

#include <stdint.h>
#include <stdlib.h>

#include "expiry.h"

/* A small deterministic generator, so failures replay. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

static struct expiry_wheel *wheel_new(void)
{
	struct expiry_wheel *w = malloc(sizeof(*w));

	cr_assert_not_null(w);
	expiry_init(w);
	return w;
}

/* Pop everything due with unlimited credit. */
static size_t drain(struct expiry_wheel *w, uint64_t now, struct expiry_node **out, size_t cap)
{
	size_t n = 0, work = SIZE_MAX;
	struct expiry_node *e;

	while ((e = expiry_pop_due(w, now, &work)) != NULL) {
		cr_assert_lt(n, cap);
		out[n++] = e;
	}
	return n;
}

LEAK_CHECKED_TEST(expiry, empty_wheel)
{
	struct expiry_wheel *w = wheel_new();
	size_t work = 10;

	cr_assert_eq(expiry_next(w), UINT64_MAX);
	cr_assert_null(expiry_pop_due(w, UINT64_MAX, &work));
	cr_assert_eq(expiry_count(w), 0);
	free(w);
}

LEAK_CHECKED_TEST(expiry, exact_instant)
{
	struct expiry_wheel *w = wheel_new();
	struct expiry_node n = {0}, *out[2];
	uint64_t t0 = UINT64_C(1700000000000);

	expiry_schedule(w, &n, t0 + 5000, t0);
	cr_assert_eq(expiry_count(w), 1);
	cr_assert_leq(expiry_next(w), t0 + 5000);
	cr_assert_eq(drain(w, t0 + 4999, out, 2), 0);
	cr_assert_eq(expiry_count(w), 1);
	cr_assert_leq(expiry_next(w), t0 + 5000);
	cr_assert_eq(drain(w, t0 + 5000, out, 2), 1);
	cr_assert_eq(out[0], &n);
	cr_assert_null(n.next);
	cr_assert_eq(expiry_count(w), 0);
	cr_assert_eq(expiry_next(w), UINT64_MAX);
	free(w);
}

LEAK_CHECKED_TEST(expiry, cancel_and_reschedule)
{
	struct expiry_wheel *w = wheel_new();
	struct expiry_node a = {0}, b = {0}, *out[4];

	expiry_schedule(w, &a, 100, 0);
	expiry_schedule(w, &b, 200, 0);
	expiry_cancel(w, &a);
	expiry_cancel(w, &a); /* twice is harmless */
	cr_assert_eq(expiry_count(w), 1);
	cr_assert_eq(drain(w, 150, out, 4), 0);
	expiry_reschedule(w, &b, 1000000, 150);
	cr_assert_eq(drain(w, 999999, out, 4), 0);
	cr_assert_eq(drain(w, 1000000, out, 4), 1);
	cr_assert_eq(out[0], &b);
	free(w);
}

/* A rolling session: touched again and again, each touch postponing it by a day. */
LEAK_CHECKED_TEST(expiry, postponed_node_pops_at_its_last_instant)
{
	struct expiry_wheel *w = wheel_new();
	struct expiry_node n = {0}, early = {0}, *out[4];
	uint64_t now = UINT64_C(1700000000000);
	uint64_t day = UINT64_C(86400000);

	expiry_schedule(w, &n, now + day, now);
	for (int touch = 0; touch < 200; touch++) {
		now += 997 * (uint64_t)(touch + 1);
		cr_assert_eq(drain(w, now, out, 4), 0, "popped before its instant at touch %d",
		             touch);
		expiry_reschedule(w, &n, now + day, now);
		cr_assert_eq(expiry_count(w), 1);
		cr_assert_leq(expiry_next(w), now + day);
	}
	/* Bringing a node forward moves it at once. */
	expiry_schedule(w, &early, now + day, now);
	expiry_reschedule(w, &early, now + 5, now);
	cr_assert_leq(expiry_next(w), now + 5);
	cr_assert_eq(drain(w, now + 5, out, 4), 1);
	cr_assert_eq(out[0], &early);
	cr_assert_eq(drain(w, now + day - 1, out, 4), 0);
	cr_assert_eq(drain(w, now + day, out, 4), 1);
	cr_assert_eq(out[0], &n);
	cr_assert_eq(expiry_count(w), 0);
	free(w);
}

LEAK_CHECKED_TEST(expiry, far_future_and_extremes)
{
	struct expiry_wheel *w = wheel_new();
	struct expiry_node a = {0}, b = {0}, c = {0}, *out[4];
	uint64_t now = UINT64_C(1700000000000);
	uint64_t ten_years = UINT64_C(316224000000);

	expiry_schedule(w, &a, now + ten_years, now);
	expiry_schedule(w, &b, UINT64_MAX, now);
	expiry_schedule(w, &c, now + 1, now);
	cr_assert_eq(drain(w, now + 1, out, 4), 1);
	cr_assert_eq(out[0], &c);
	cr_assert_eq(drain(w, now + ten_years - 1, out, 4), 0);
	cr_assert_eq(drain(w, now + ten_years, out, 4), 1);
	cr_assert_eq(out[0], &a);
	cr_assert_eq(drain(w, UINT64_MAX - 1, out, 4), 0);
	cr_assert_eq(drain(w, UINT64_MAX, out, 4), 1);
	cr_assert_eq(out[0], &b);
	free(w);
}

LEAK_CHECKED_TEST(expiry, clock_steps_back)
{
	struct expiry_wheel *w = wheel_new();
	struct expiry_node a = {0}, b = {0}, *out[4];

	expiry_schedule(w, &a, 10000, 0);
	cr_assert_eq(drain(w, 5000, out, 4), 0);
	/* The caller's clock went back: an instant below the wheel's position still fires at
	 * its instant, not before. */
	expiry_schedule(w, &b, 3000, 2000);
	cr_assert_leq(expiry_next(w), 3000);
	cr_assert_eq(drain(w, 2999, out, 4), 0);
	cr_assert_eq(drain(w, 3000, out, 4), 1);
	cr_assert_eq(out[0], &b);
	cr_assert_eq(drain(w, 10000, out, 4), 1);
	cr_assert_eq(out[0], &a);
	free(w);
}

/*
 * The clock steps back a minute while sessions are made at a steady rate with short TTLs (the
 * acceptance review's case): each must still come out on time under a small credit per call,
 * and the wheel must not walk its late list again and again (which kept pending non-empty,
 * so that the store put off every COUNT until the clock was back where it had been).
 */
LEAK_CHECKED_TEST(expiry, steady_load_after_the_clock_steps_back)
{
	enum { OLD = 20000, NEW = 5000, STEP_MS = 10, CREDIT = 1024 };
	struct expiry_wheel *w = wheel_new();
	struct expiry_node *old = calloc(OLD, sizeof(*old)), *fresh = calloc(NEW, sizeof(*fresh));
	uint64_t before = UINT64_C(1700000000000) + 60000, now = UINT64_C(1700000000000);
	size_t used = 0, popped = 0, work;
	struct expiry_node *e;

	cr_assert_not_null(old);
	cr_assert_not_null(fresh);
	for (size_t i = 0; i < OLD; i++)
		expiry_schedule(w, &old[i], before + 3600 * 1000 + i, before - 1000);
	work = SIZE_MAX;
	cr_assert_null(expiry_pop_due(w, before, &work));
	for (size_t i = 0; i < NEW; i++)
		expiry_schedule(w, &fresh[i], now + 5000 + 9 * i, now);
	for (uint64_t t = now; t <= now + 50000; t += STEP_MS) {
		work = CREDIT;
		while ((e = expiry_pop_due(w, t, &work)) != NULL) {
			cr_assert(e >= fresh && e < fresh + NEW, "only the fresh nodes are due");
			cr_assert_leq(e->at_ms, t, "not before its instant");
			cr_assert_lt(t - e->at_ms, 2 * STEP_MS, "late by %llu ms",
			             (unsigned long long)(t - e->at_ms));
			popped++;
		}
		used += CREDIT - work;
	}
	cr_assert_eq(popped, NEW);
	cr_assert_eq(expiry_count(w), OLD);
	cr_assert_lt(used, 4 * (OLD + NEW), "%zu units of work", used);
	free(old);
	free(fresh);
	free(w);
}

LEAK_CHECKED_TEST(expiry, work_credit_bounds_each_call)
{
	enum { N = 20000 };
	struct expiry_wheel *w = wheel_new();
	struct expiry_node *nodes = calloc(N, sizeof(*nodes));
	uint64_t now = UINT64_C(1700000000000), at = now + 3600 * 1000;
	size_t popped = 0, calls = 0;

	cr_assert_not_null(nodes);
	for (size_t i = 0; i < N; i++)
		expiry_schedule(w, &nodes[i], at, now);
	/* Cascading N nodes from a high level down costs one unit per move: with a credit of
	 * 10 per call no call does more than 10 units, and all of them come out in the end. */
	while (popped < N) {
		size_t work = 10;

		while (expiry_pop_due(w, at, &work) != NULL)
			popped++;
		if (popped < N)
			cr_assert_leq(expiry_next(w), at, "work left but not announced");
		calls++;
		cr_assert_lt(calls, (size_t)N * 10, "no progress");
	}
	cr_assert_eq(expiry_count(w), 0);
	cr_assert_eq(expiry_next(w), UINT64_MAX);
	cr_assert_gt(calls, N / 10, "credit was not enforced");
	free(nodes);
	free(w);
}

/* Against a model: after every step, exactly the nodes with at <= now have come out. */
LEAK_CHECKED_TEST(expiry, random_against_model)
{
	enum { N = 3000, STEPS = 4000 };
	struct expiry_wheel *w = wheel_new();
	struct expiry_node *nodes = calloc(N, sizeof(*nodes));
	struct expiry_node **out = calloc(N, sizeof(*out));
	bool *scheduled = calloc(N, sizeof(*scheduled));
	uint64_t rng = 0x9e3779b97f4a7c15u;
	uint64_t now = UINT64_C(1700000000000);

	cr_assert(nodes && out && scheduled);
	for (int step = 0; step < STEPS; step++) {
		uint64_t r = rng_next(&rng);
		size_t i = r % N;
		uint64_t spans[] = {1, 64, 4096, 300000, 86400000};
		uint64_t ahead = rng_next(&rng) % spans[(r >> 20) % 5];

		switch ((r >> 32) % 8) {
		case 0:
		case 1:
		case 2:
			if (scheduled[i])
				expiry_reschedule(w, &nodes[i], now + ahead, now);
			else
				expiry_schedule(w, &nodes[i], now + ahead, now);
			scheduled[i] = true;
			break;
		case 3:
			expiry_cancel(w, &nodes[i]);
			scheduled[i] = false;
			break;
		case 4:
			/* The clock steps back now and then. */
			now -= ahead % 1000 < now ? ahead % 1000 : 0;
			break;
		default:
			now += ahead;
			break;
		}
		{
			uint64_t earliest = UINT64_MAX;
			size_t due = 0, got;

			for (size_t k = 0; k < N; k++) {
				if (scheduled[k] && nodes[k].at_ms < earliest)
					earliest = nodes[k].at_ms;
			}
			cr_assert_leq(expiry_next(w), earliest, "next_expiry is late");
			for (size_t k = 0; k < N; k++)
				due += scheduled[k] && nodes[k].at_ms <= now;
			got = drain(w, now, out, N);
			cr_assert_eq(got, due, "step %d: popped %zu, due %zu", step, got, due);
			for (size_t k = 0; k < got; k++) {
				size_t idx = (size_t)(out[k] - nodes);

				cr_assert(scheduled[idx]);
				cr_assert_leq(nodes[idx].at_ms, now);
				scheduled[idx] = false;
			}
		}
		{
			size_t live = 0;

			for (size_t k = 0; k < N; k++)
				live += scheduled[k];
			cr_assert_eq(expiry_count(w), live);
		}
	}
	free(scheduled);
	free(out);
	free(nodes);
	free(w);
}
