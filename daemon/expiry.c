#include "expiry.h"

#include <stdbool.h>

/*
 * Invariants (pos = w->pos_ms):
 * - a node in slot s of level l > 0 has the same digits as pos above l and digit l == s >
 *   digit l of pos; a node in level 0 has the same digits as pos above 0 and at_ms >= pos.
 *   So every slot's start is >= pos, and moving pos to any instant below the earliest
 *   start keeps every node where it belongs.
 * - pending holds nodes of slots whose start pos has reached, or of every slot after a rebase;
 *   late holds nodes scheduled below pos (only when the caller's clock stepped back, by at
 *   most EXPIRY_STEP_BACK_MS since the last rebase).
 * - A postponed node keeps its place, so its at_ms may lie beyond its slot (or above
 *   late_min_ms): a slot's start, and late_min_ms, are lower bounds of its nodes' instants,
 *   and a node reached before its instant is placed again rather than popped.
 */

static void list_init(struct expiry_node *head)
{
	head->next = head;
	head->prev = head;
}

static bool list_empty(const struct expiry_node *head)
{
	return head->next == head;
}

static void list_append(struct expiry_node *head, struct expiry_node *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static void list_unlink(struct expiry_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = NULL;
	n->prev = NULL;
}

/* Move every node of ${from} to the end of ${to} in O(1). */
static void list_splice(struct expiry_node *to, struct expiry_node *from)
{
	if (list_empty(from))
		return;
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	list_init(from);
}

static unsigned level_shift(unsigned level)
{
	return 6 * level;
}

static unsigned digit(uint64_t t, unsigned level)
{
	return (unsigned)(t >> level_shift(level)) & (EXPIRY_SLOTS - 1);
}

/* The instant at which slot ${slot} of ${level} begins, given the wheel's position. */
static uint64_t slot_start(uint64_t pos, unsigned level, unsigned slot)
{
	unsigned above = level_shift(level + 1);
	uint64_t base = above >= 64 ? 0 : pos & ~((UINT64_C(1) << above) - 1);

	return base | ((uint64_t)slot << level_shift(level));
}

static void place(struct expiry_wheel *w, struct expiry_node *n)
{
	unsigned level, slot;

	if (n->at_ms < w->pos_ms) {
		if (n->at_ms < w->late_min_ms)
			w->late_min_ms = n->at_ms;
		list_append(&w->late, n);
		return;
	}
	level =
	    n->at_ms == w->pos_ms ? 0 : (unsigned)(63 - __builtin_clzll(n->at_ms ^ w->pos_ms)) / 6;
	slot = digit(n->at_ms, level);
	list_append(&w->slots[level][slot], n);
	w->occupied[level] |= UINT64_C(1) << slot;
}

/* The earliest non-empty slot of ${level}, or -1. Skips the stale bits of emptied slots. */
static int first_slot(const struct expiry_wheel *w, unsigned level)
{
	uint64_t mask = w->occupied[level] & (~UINT64_C(0) << digit(w->pos_ms, level));

	while (mask != 0) {
		int slot = __builtin_ctzll(mask);

		if (!list_empty(&w->slots[level][slot]))
			return slot;
		mask &= mask - 1;
	}
	return -1;
}

static uint64_t next_slot_start(const struct expiry_wheel *w)
{
	uint64_t best = UINT64_MAX;

	for (unsigned level = 0; level < EXPIRY_LEVELS; level++) {
		int slot = first_slot(w, level);

		if (slot >= 0) {
			uint64_t start = slot_start(w->pos_ms, level, (unsigned)slot);

			if (start < best)
				best = start;
		}
	}
	return best;
}

void expiry_init(struct expiry_wheel *w)
{
	w->pos_ms = 0;
	w->late_min_ms = UINT64_MAX;
	w->count = 0;
	list_init(&w->pending);
	list_init(&w->late);
	for (unsigned level = 0; level < EXPIRY_LEVELS; level++) {
		w->occupied[level] = 0;
		for (unsigned slot = 0; slot < EXPIRY_SLOTS; slot++)
			list_init(&w->slots[level][slot]);
	}
}

void expiry_schedule(struct expiry_wheel *w, struct expiry_node *n, uint64_t at_ms, uint64_t now_ms)
{
	/* An empty wheel may jump anywhere: start near the caller's clock so that nodes land
	 * in fine levels and cascade little. */
	if (w->count == 0 && list_empty(&w->pending) && list_empty(&w->late)) {
		w->pos_ms = now_ms;
		for (unsigned level = 0; level < EXPIRY_LEVELS; level++)
			w->occupied[level] = 0;
	}
	n->at_ms = at_ms;
	place(w, n);
	w->count++;
}

void expiry_cancel(struct expiry_wheel *w, struct expiry_node *n)
{
	if (n->next == NULL)
		return;
	list_unlink(n);
	w->count--;
}

void expiry_reschedule(struct expiry_wheel *w, struct expiry_node *n, uint64_t at_ms,
                       uint64_t now_ms)
{
	/* Postponing (every touch of a session does) leaves the node in its slot: when the
	 * wheel reaches that slot, the node is re-placed by its new instant like any cascading
	 * node. Moving it now would write to its two neighbours and a slot's tail, other
	 * sessions' memory that is rarely in cache. */
	if (n->next != NULL && at_ms >= n->at_ms) {
		n->at_ms = at_ms;
		return;
	}
	expiry_cancel(w, n);
	expiry_schedule(w, n, at_ms, now_ms);
}

/*
 * The caller's clock is more than EXPIRY_STEP_BACK_MS behind the position: it stepped back
 * (NTP, a restored VM). Instants scheduled from now on would mostly lie below the position, on
 * the late list, which goes back to pending whole each time its earliest comes due: with
 * sessions made at a steady rate that is the whole list walked every few milliseconds, and
 * pending never empty, which expiry_next reports as work due now. So the wheel starts again
 * at the caller's clock: every slot and the late list go to pending, one splice each, and
 * their nodes are placed again as the work credit allows.
 */
static void rebase(struct expiry_wheel *w, uint64_t now_ms)
{
	for (unsigned level = 0; level < EXPIRY_LEVELS; level++) {
		for (unsigned slot = 0; slot < EXPIRY_SLOTS; slot++)
			list_splice(&w->pending, &w->slots[level][slot]);
		w->occupied[level] = 0;
	}
	list_splice(&w->pending, &w->late);
	w->late_min_ms = UINT64_MAX;
	w->pos_ms = now_ms;
}

struct expiry_node *expiry_pop_due(struct expiry_wheel *w, uint64_t now_ms, size_t *work)
{
	if (w->pos_ms > now_ms && w->pos_ms - now_ms > EXPIRY_STEP_BACK_MS)
		rebase(w, now_ms);
	for (;;) {
		uint64_t next;

		if (!list_empty(&w->late) && w->late_min_ms <= now_ms) {
			w->late_min_ms = UINT64_MAX;
			list_splice(&w->pending, &w->late);
		}
		if (!list_empty(&w->pending)) {
			struct expiry_node *n = w->pending.next;

			if (*work == 0)
				return NULL;
			(*work)--;
			list_unlink(n);
			if (n->at_ms <= now_ms) {
				w->count--;
				return n;
			}
			place(w, n);
			continue;
		}
		if (w->count == 0)
			return NULL;
		next = next_slot_start(w);
		if (next > now_ms) {
			/* Below the earliest start, moving forward keeps every node valid. */
			if (now_ms > w->pos_ms && next != UINT64_MAX)
				w->pos_ms = now_ms;
			return NULL;
		}
		if (*work == 0)
			return NULL;
		(*work)--;
		for (unsigned level = 0; level < EXPIRY_LEVELS; level++) {
			int slot = first_slot(w, level);

			/* Clear stale bits below the slot found, and the slot itself when due. */
			if (slot < 0) {
				w->occupied[level] = 0;
				continue;
			}
			if (slot_start(w->pos_ms, level, (unsigned)slot) == next) {
				list_splice(&w->pending, &w->slots[level][slot]);
				w->occupied[level] &= ~(UINT64_C(1) << slot);
			}
		}
		w->pos_ms = next;
	}
}

uint64_t expiry_next(const struct expiry_wheel *w)
{
	uint64_t next;

	if (!list_empty(&w->pending))
		return 0;
	next = next_slot_start(w);
	if (!list_empty(&w->late) && w->late_min_ms < next)
		next = w->late_min_ms;
	return next;
}

size_t expiry_count(const struct expiry_wheel *w)
{
	return w->count;
}
