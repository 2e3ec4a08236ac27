/*
 * How many connections each owner holds: the process over a Unix socket, the host over TCP
 * (see listener_accept_fn), or, in a tally of members, the process of a host (PROTOCOL.md,
 * HELLO's process identity). conn.c keeps tallies for its set, so that a newcomer at
 * --max-connections can be told in constant time whether its owner holds a connection
 * already, whether any owner holds two or more, and whether a process of its host does
 * (conn_set_may_try), however many connections the set holds and however fast newcomers
 * come; and so that the connection a greeted newcomer takes the place of is found in one
 * scan, with no sort (find_victim).
 */
#ifndef SESSD_OWNERS_H
#define SESSD_OWNERS_H

#include <stddef.h>
#include <stdint.h>

struct owners_slot {
	uint64_t owner;
	uint64_t group; /* a tally of members: the group (host) the member belongs to */
	uint32_t count; /* 0: a free slot */
	/* A tally of groups: how many of the group's members (owners_add_member) hold two or
	 * more. */
	uint32_t crowded_members;
};

/* Embedded by its user; owners.c alone changes it. */
struct owners {
	struct owners_slot *slots; /* an open-addressing table, linear probing */
	size_t cap;                /* a power of two, or 0 before the first owners_add */
	size_t used;               /* slots with a count */
	size_t crowded;            /* owners holding 2 or more */
};

/* owners_init(o): an empty tally, holding no memory until owners_add. */
void owners_init(struct owners *o);

/* owners_finish(o): free what ${o} holds; it is empty (owners_init) afterwards. */
void owners_finish(struct owners *o);

/*
 * owners_add(o, owner):
 * Count one more connection of ${owner}.
 * Returns 0, or -1 with errno ENOMEM (the table could not grow; nothing changed).
 */
int owners_add(struct owners *o, uint64_t owner);

/*
 * owners_remove(o, owner):
 * Count one connection of ${owner} fewer. ${owner} must hold one (owners_add).
 */
void owners_remove(struct owners *o, uint64_t owner);

/* owners_count(o, owner): how many connections ${owner} holds. */
uint32_t owners_count(const struct owners *o, uint64_t owner);

/* owners_crowded(o): how many owners hold two connections or more. */
size_t owners_crowded(const struct owners *o);

/*
 * owners_add_member(members, member, groups, group):
 * Count one more connection of ${member} in ${members}, a member of ${group}, which ${groups}
 * counts the same connection of (owners_add first). While ${member} holds connections it stays
 * in the group it first joined: a member key two groups share (a hash collision) counts
 * for both and is told as crowded to the first one only, so the counts stay consistent.
 * Returns 0, or -1 with errno ENOMEM (nothing changed).
 */
int owners_add_member(struct owners *members, uint64_t member, struct owners *groups,
                      uint64_t group);

/*
 * owners_remove_member(members, member, groups):
 * Count one connection of ${member} fewer (before owners_remove of its group's). ${member}
 * must hold one (owners_add_member).
 */
void owners_remove_member(struct owners *members, uint64_t member, struct owners *groups);

/* owners_crowded_members(groups, group): how many members of ${group} hold two or more. */
uint32_t owners_crowded_members(const struct owners *groups, uint64_t group);

#endif
