/*
 * idset: an id is found again only when the caller confirms it (the real ids compared), so
 * ids whose hashes collide are never taken for one another; the set grows past its hint and
 * keeps what it held.
 */
#include <criterion/criterion.h>

#include "leakcheck.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "idset.h"

#define N_IDS 3000

/* The ids added, by locator: what a snapshot's records are to persist.c. */
struct ids_read {
	char ids[N_IDS][16];
	const char *asked;
	unsigned calls;
};

static int same_id(void *arg, uint64_t loc)
{
	struct ids_read *r = arg;

	r->calls++;
	cr_assert_lt(loc, N_IDS);
	return strcmp(r->ids[loc], r->asked) == 0;
}

static int add(struct idset *s, struct ids_read *r, uint64_t hash, uint64_t loc, bool *present)
{
	r->asked = r->ids[loc];
	return idset_add(s, hash, loc, same_id, r, present);
}

/* Every id with one hash (the worst collision there is): each is still told apart, and a
 * repeat is still found. */
LEAK_CHECKED_TEST(idset, colliding_hashes_are_confirmed)
{
	static struct ids_read r;
	struct idset *s = idset_new(0);
	bool present;

	cr_assert_not_null(s);
	for (int i = 0; i < 200; i++) {
		snprintf(r.ids[i], sizeof(r.ids[i]), "id%d", i);
		cr_assert_eq(add(s, &r, 42, (uint64_t)i, &present), 0);
		cr_assert(!present, "id%d taken for one read before: its hash is theirs", i);
	}
	cr_assert_eq(idset_count(s), 200);
	/* The same id again, at another place in the file. */
	strcpy(r.ids[500], "id137");
	r.calls = 0;
	cr_assert_eq(add(s, &r, 42, 500, &present), 0);
	cr_assert(present, "a repeat with a colliding hash is found");
	cr_assert_eq(idset_count(s), 200, "a repeat is not added");
	cr_assert_geq(r.calls, 1);
	/* Hash 0 is the empty slot's: such an id is still kept. */
	strcpy(r.ids[600], "zero");
	cr_assert_eq(add(s, &r, 0, 600, &present), 0);
	cr_assert(!present);
	strcpy(r.ids[601], "zero");
	cr_assert_eq(add(s, &r, 0, 601, &present), 0);
	cr_assert(present, "an id whose hash is 0 is found again");
	idset_free(s);
}

/* Real hashes: no confirmation is asked of an id whose hash differs; the set grows from a
 * small hint to thousands and finds each again; a failure of the confirmation is passed up. */
LEAK_CHECKED_TEST(idset, grows_and_finds_each)
{
	static struct ids_read r;
	struct idset *s = idset_new(10);
	bool present;

	cr_assert_not_null(s);
	for (int i = 0; i < N_IDS; i++) {
		struct store_key k = {.ns = (const uint8_t *)"app", .ns_len = 3};

		snprintf(r.ids[i], sizeof(r.ids[i]), "sess-%d", i);
		k.id = (const uint8_t *)r.ids[i];
		k.id_len = strlen(r.ids[i]);
		cr_assert_eq(add(s, &r, idset_hash(s, &k), (uint64_t)i, &present), 0);
		cr_assert(!present);
	}
	cr_assert_eq(idset_count(s), N_IDS);
	for (int i = 0; i < N_IDS; i += 97) {
		struct store_key k = {.ns = (const uint8_t *)"app",
		                      .ns_len = 3,
		                      .id = (const uint8_t *)r.ids[i],
		                      .id_len = strlen(r.ids[i])};

		cr_assert_eq(add(s, &r, idset_hash(s, &k), (uint64_t)i, &present), 0);
		cr_assert(present, "sess-%d lost as the set grew", i);
	}
	idset_free(s);
	idset_free(NULL);
}

/* The namespace is part of the id: the same id in two namespaces hashes apart (a collision
 * would only cost a confirmation, but then every namespace of a store would collide). */
LEAK_CHECKED_TEST(idset, namespace_is_hashed)
{
	struct idset *s = idset_new(0);
	struct store_key a = {
	    .ns = (const uint8_t *)"ab", .ns_len = 2, .id = (const uint8_t *)"c", .id_len = 1};
	struct store_key b = {
	    .ns = (const uint8_t *)"a", .ns_len = 1, .id = (const uint8_t *)"bc", .id_len = 2};
	struct store_key c = {
	    .ns = (const uint8_t *)"ab", .ns_len = 2, .id = (const uint8_t *)"c", .id_len = 1};

	cr_assert_not_null(s);
	cr_assert_neq(idset_hash(s, &a), idset_hash(s, &b));
	cr_assert_eq(idset_hash(s, &a), idset_hash(s, &c));
	idset_free(s);
}
