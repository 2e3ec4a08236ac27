/*
 * Connections per owner. See owners.h.
 */
#include "owners.h"

#include <errno.h>
#include <stdlib.h>

#define OWNERS_FIRST_CAP 64

/* Where ${owner} starts probing in a table of ${cap} slots. Owners are pids and addresses
 * under a tag in the high bits (listener.c): Fibonacci hashing spreads their low bits. */
static size_t home(uint64_t owner, size_t cap)
{
	return (size_t)((owner * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

/* The slot holding ${owner}, or the free slot where it would go. The table is never full
 * (owners_add keeps it at most half used), so the probe ends. */
static size_t find(const struct owners *o, uint64_t owner)
{
	size_t i = home(owner, o->cap);

	while (o->slots[i].count != 0 && o->slots[i].owner != owner)
		i = (i + 1) & (o->cap - 1);
	return i;
}

/*
 * Move ${o}'s owners into a table of ${cap} slots.
 * Returns 0, or -1 with errno ENOMEM (${o} unchanged).
 */
static int grow(struct owners *o, size_t cap)
{
	struct owners old = *o;

	o->slots = calloc(cap, sizeof(*o->slots));
	if (o->slots == NULL) {
		*o = old;
		errno = ENOMEM;
		return -1;
	}
	o->cap = cap;
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].count != 0)
			o->slots[find(o, old.slots[i].owner)] = old.slots[i];
	free(old.slots);
	return 0;
}

void owners_init(struct owners *o)
{
	o->slots = NULL;
	o->cap = o->used = o->crowded = 0;
}

void owners_finish(struct owners *o)
{
	free(o->slots);
	owners_init(o);
}

int owners_add(struct owners *o, uint64_t owner)
{
	size_t i;

	if ((o->used + 1) * 2 > o->cap &&
	    grow(o, o->cap == 0 ? OWNERS_FIRST_CAP : o->cap * 2) == -1)
		return -1;
	i = find(o, owner);
	if (o->slots[i].count == 0) {
		o->slots[i].owner = owner;
		o->slots[i].group = owner;
		o->slots[i].crowded_members = 0;
		o->used++;
	}
	if (++o->slots[i].count == 2)
		o->crowded++;
	return 0;
}

void owners_remove(struct owners *o, uint64_t owner)
{
	size_t i = find(o, owner), gap, j;

	if (o->slots[i].count == 2)
		o->crowded--;
	if (--o->slots[i].count != 0)
		return;
	o->used--;
	/* Backward-shift deletion: each owner further along the probe that could sit in the gap
	 * moves into it, so that no probe stops short of an owner at the freed slot. */
	gap = i;
	for (j = (i + 1) & (o->cap - 1); o->slots[j].count != 0; j = (j + 1) & (o->cap - 1)) {
		size_t want = home(o->slots[j].owner, o->cap);

		/* Whether ${want} lies cyclically in (gap, j]: then the owner stays. */
		if (gap <= j ? (gap < want && want <= j) : (gap < want || want <= j))
			continue;
		o->slots[gap] = o->slots[j];
		o->slots[j].count = 0;
		gap = j;
	}
}

uint32_t owners_count(const struct owners *o, uint64_t owner)
{
	return o->cap == 0 ? 0 : o->slots[find(o, owner)].count;
}

size_t owners_crowded(const struct owners *o)
{
	return o->crowded;
}

int owners_add_member(struct owners *members, uint64_t member, struct owners *groups,
                      uint64_t group)
{
	size_t i;

	if (owners_add(members, member) == -1)
		return -1;
	i = find(members, member);
	if (members->slots[i].count == 1)
		members->slots[i].group = group;
	if (members->slots[i].count == 2 && groups->cap != 0) {
		size_t g = find(groups, members->slots[i].group);

		/* The group holds this connection (owners_add first): it is in the table. */
		if (groups->slots[g].count != 0)
			groups->slots[g].crowded_members++;
	}
	return 0;
}

void owners_remove_member(struct owners *members, uint64_t member, struct owners *groups)
{
	size_t i = find(members, member);

	if (members->slots[i].count == 2 && groups->cap != 0) {
		size_t g = find(groups, members->slots[i].group);

		/* Only a shared key (see owners.h) can find its first group gone or changed. */
		if (groups->slots[g].count != 0 && groups->slots[g].crowded_members > 0)
			groups->slots[g].crowded_members--;
	}
	owners_remove(members, member);
}

uint32_t owners_crowded_members(const struct owners *groups, uint64_t group)
{
	return groups->cap == 0 ? 0 : groups->slots[find(groups, group)].crowded_members;
}
