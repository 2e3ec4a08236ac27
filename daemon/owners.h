/*
 * How many connections each owner holds: the process over a Unix socket, the host over TCP
 * (see listener_accept_fn). conn.c keeps one for its set, so that a newcomer at
 * --max-connections can be told in constant time whether its owner holds a connection
 * already and whether any owner holds two or more (conn_set_may_try), however many
 * connections the set holds and however fast newcomers come.
 */
#ifndef SESSD_OWNERS_H
#define SESSD_OWNERS_H

#include <stddef.h>
#include <stdint.h>

struct owners_slot {
	uint64_t owner;
	uint32_t count; /* 0: a free slot */
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

#endif
