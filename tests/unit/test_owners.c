/*
 * The per-owner connection tally: counts and crowded owners against a plain array, through
 * growth and deletions that shift probe runs back.
 */
#include <criterion/criterion.h>

#include <stdlib.h>

#include "owners.h"

Test(owners, counts_and_crowded_owners)
{
	struct owners o;

	owners_init(&o);
	cr_assert_eq(owners_count(&o, 7), 0, "an empty tally holds nothing");
	cr_assert_eq(owners_add(&o, 7), 0);
	cr_assert_eq(owners_crowded(&o), 0);
	cr_assert_eq(owners_add(&o, 7), 0);
	cr_assert_eq(owners_add(&o, 0), 0, "owner 0 (a peer of unknown family) is an owner too");
	cr_assert_eq(owners_count(&o, 7), 2);
	cr_assert_eq(owners_count(&o, 0), 1);
	cr_assert_eq(owners_crowded(&o), 1);
	owners_remove(&o, 7);
	cr_assert_eq(owners_crowded(&o), 0);
	owners_remove(&o, 7);
	owners_remove(&o, 0);
	cr_assert_eq(owners_count(&o, 7), 0);
	cr_assert_eq(o.used, 0);
	owners_finish(&o);
	owners_finish(&o);
}

/*
 * Random adds and removes over a few hundred owners, some spaced to share low bits as pids
 * and addresses under one tag do, checked after each step against counts kept in an array.
 */
Test(owners, random_operations_match_an_array)
{
	enum { OWNERS = 300, STEPS = 200000 };
	static uint32_t want[OWNERS];
	struct owners o;
	size_t crowded = 0;
	uint64_t key[OWNERS];

	srandom(41);
	for (int i = 0; i < OWNERS; i++)
		key[i] = (i % 2 == 0 ? 0xff03000000000000ull : 0xff01000000000000ull) +
		         (uint64_t)i * (i % 3 == 0 ? 1024 : 1);
	owners_init(&o);
	for (int step = 0; step < STEPS; step++) {
		int i = (int)(random() % OWNERS);

		/* Mostly adds early on, mostly removes later, so the table grows and empties. */
		if (want[i] == 0 || random() % 100 < (step < STEPS / 2 ? 60 : 35)) {
			cr_assert_eq(owners_add(&o, key[i]), 0);
			if (++want[i] == 2)
				crowded++;
		} else {
			if (want[i] == 2)
				crowded--;
			want[i]--;
			owners_remove(&o, key[i]);
		}
		cr_assert_eq(owners_count(&o, key[i]), want[i], "step %d", step);
		cr_assert_eq(owners_crowded(&o), crowded, "step %d", step);
	}
	for (int i = 0; i < OWNERS; i++) {
		cr_assert_eq(owners_count(&o, key[i]), want[i], "owner %d", i);
		while (want[i] > 0) {
			want[i]--;
			owners_remove(&o, key[i]);
		}
	}
	for (int i = 0; i < OWNERS; i++)
		cr_assert_eq(owners_count(&o, key[i]), 0);
	cr_assert_eq(owners_crowded(&o), 0);
	cr_assert_eq(o.used, 0);
	owners_finish(&o);
}
