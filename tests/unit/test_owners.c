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

/*
 * Members of groups (the processes of a host): each group knows how many of its members hold
 * two or more, through growth of both tables and deletions that move slots, and a member key
 * two groups share (a hash collision) keeps the counts consistent: it is crowded for the
 * group it first joined only, and leaves nothing behind once its connections are gone.
 */
Test(owners, members_crowded_per_group)
{
	struct owners hosts, procs;

	owners_init(&hosts);
	owners_init(&procs);
	cr_assert_eq(owners_crowded_members(&hosts, 1), 0, "an empty tally has no group");
	/* Host 1: process 10 holds two, process 11 one; host 2: process 20 one. */
	for (int i = 0; i < 3; i++)
		cr_assert_eq(owners_add(&hosts, 1), 0);
	cr_assert_eq(owners_add_member(&procs, 10, &hosts, 1), 0);
	cr_assert_eq(owners_crowded_members(&hosts, 1), 0);
	cr_assert_eq(owners_add_member(&procs, 10, &hosts, 1), 0);
	cr_assert_eq(owners_add_member(&procs, 11, &hosts, 1), 0);
	cr_assert_eq(owners_add(&hosts, 2), 0);
	cr_assert_eq(owners_add_member(&procs, 20, &hosts, 2), 0);
	cr_assert_eq(owners_crowded_members(&hosts, 1), 1);
	cr_assert_eq(owners_crowded_members(&hosts, 2), 0);
	cr_assert_eq(owners_count(&procs, 10), 2);
	/* A third connection of process 10 leaves it crowded once, not twice. */
	cr_assert_eq(owners_add(&hosts, 1), 0);
	cr_assert_eq(owners_add_member(&procs, 10, &hosts, 1), 0);
	cr_assert_eq(owners_crowded_members(&hosts, 1), 1);
	owners_remove_member(&procs, 10, &hosts);
	owners_remove(&hosts, 1);
	owners_remove_member(&procs, 10, &hosts);
	owners_remove(&hosts, 1);
	cr_assert_eq(owners_crowded_members(&hosts, 1), 0, "process 10 holds one now");
	/* Key 20 shared by host 1: counted together, crowded for host 2, which it joined first. */
	cr_assert_eq(owners_add_member(&procs, 20, &hosts, 1), 0);
	cr_assert_eq(owners_crowded_members(&hosts, 2), 1);
	cr_assert_eq(owners_crowded_members(&hosts, 1), 0);
	owners_remove_member(&procs, 20, &hosts);
	cr_assert_eq(owners_crowded_members(&hosts, 2), 0);
	owners_remove_member(&procs, 20, &hosts);
	owners_remove(&hosts, 2);
	owners_remove_member(&procs, 10, &hosts);
	owners_remove_member(&procs, 11, &hosts);
	for (int i = 0; i < 2; i++)
		owners_remove(&hosts, 1);
	cr_assert_eq(procs.used, 0);
	cr_assert_eq(hosts.used, 0);
	owners_finish(&procs);
	owners_finish(&hosts);
}

/*
 * Random adds and removes of connections of a few hundred processes on a few dozen hosts,
 * the crowded members of every host checked against arrays after each step, while both
 * tables grow and empty.
 */
Test(owners, random_members_match_arrays)
{
	enum { HOSTS = 40, PROCS = 400, STEPS = 100000 };
	static uint32_t held[PROCS], crowded[HOSTS];
	struct owners hosts, procs;

	srandom(42);
	owners_init(&hosts);
	owners_init(&procs);
	for (int step = 0; step < STEPS; step++) {
		int p = (int)(random() % PROCS), h = p % HOSTS;
		uint64_t host = 0xff01000000000000ull + (uint64_t)h, proc = (uint64_t)p * 4099;

		if (held[p] == 0 || random() % 100 < (step < STEPS / 2 ? 60 : 35)) {
			cr_assert_eq(owners_add(&hosts, host), 0);
			cr_assert_eq(owners_add_member(&procs, proc, &hosts, host), 0);
			if (++held[p] == 2)
				crowded[h]++;
		} else {
			if (held[p]-- == 2)
				crowded[h]--;
			owners_remove_member(&procs, proc, &hosts);
			owners_remove(&hosts, host);
		}
		cr_assert_eq(owners_count(&procs, proc), held[p], "step %d", step);
		cr_assert_eq(owners_crowded_members(&hosts, host), crowded[h], "step %d", step);
	}
	for (int p = 0; p < PROCS; p++) {
		uint64_t host = 0xff01000000000000ull + (uint64_t)(p % HOSTS);

		for (; held[p] > 0; held[p]--) {
			owners_remove_member(&procs, (uint64_t)p * 4099, &hosts);
			owners_remove(&hosts, host);
		}
	}
	for (int h = 0; h < HOSTS; h++)
		cr_assert_eq(owners_crowded_members(&hosts, 0xff01000000000000ull + (uint64_t)h),
		             0);
	cr_assert_eq(procs.used, 0);
	cr_assert_eq(hosts.used, 0);
	owners_finish(&procs);
	owners_finish(&hosts);
}
