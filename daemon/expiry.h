#ifndef SESSD_EXPIRY_H
#define SESSD_EXPIRY_H

#include <stddef.h>
#include <stdint.h>

/*
 * A hierarchical timing wheel over absolute millisecond instants, with intrusive nodes.
 *
 * Level l has 64 slots of 2^(6l) ms; a node sits at the level of the highest 6-bit digit in
 * which its instant differs from the wheel's position, so 11 levels cover every uint64_t and
 * scheduling, rescheduling and cancelling are O(1). Occupancy bitmaps let the wheel jump over
 * empty time instead of ticking through it. When the position reaches a slot, the slot is
 * spliced whole (O(1)) onto a pending list that expiry_pop_due drains one node per unit of
 * work, so cascading millions of nodes between levels is spread over as many calls as the
 * caller likes: each call's work is bounded by the credit it is given.
 */

struct expiry_node {
	struct expiry_node *next; /* NULL when not scheduled */
	struct expiry_node *prev;
	uint64_t at_ms;
};

#define EXPIRY_LEVELS 11
#define EXPIRY_SLOTS  64
/* A caller's clock this far behind the wheel stepped back: the wheel starts again from it. */
#define EXPIRY_STEP_BACK_MS 1000

struct expiry_wheel {
	uint64_t pos_ms;      /* every slot holds instants >= its start, all starts >= pos_ms */
	uint64_t late_min_ms; /* lower bound of the instants on the late list */
	size_t count;
	uint64_t occupied[EXPIRY_LEVELS]; /* may have stale bits for emptied slots */
	struct expiry_node pending;       /* spliced slots waiting to be re-placed or popped */
	struct expiry_node late;          /* instants before pos_ms: the caller's clock went back */
	struct expiry_node slots[EXPIRY_LEVELS][EXPIRY_SLOTS];
};

/* expiry_init(w): an empty wheel; embedded, so there is nothing to finish. */
void expiry_init(struct expiry_wheel *w);

/*
 * expiry_schedule(w, n, at_ms, now_ms):
 * Schedule the unscheduled node ${n} (borrowed until popped or cancelled) at ${at_ms}.
 */
void expiry_schedule(struct expiry_wheel *w, struct expiry_node *n, uint64_t at_ms,
                     uint64_t now_ms);

/* expiry_cancel(w, n): unschedule ${n}; does nothing if it is not scheduled. O(1). */
void expiry_cancel(struct expiry_wheel *w, struct expiry_node *n);

/*
 * expiry_reschedule(w, n, at_ms, now_ms):
 * Make ${n} due at ${at_ms}, scheduled or not. O(1). Postponing a scheduled node writes only
 * to the node; the wheel re-places it when it reaches the node's old slot.
 */
void expiry_reschedule(struct expiry_wheel *w, struct expiry_node *n, uint64_t at_ms,
                       uint64_t now_ms);

/*
 * expiry_pop_due(w, now_ms, work):
 * Unschedule and return one node whose instant is <= ${now_ms}, or NULL when there is none or
 * the credit in ${work} ran out (each node moved between levels and each slot reached costs
 * one unit). Whether credit ran out shows as expiry_next <= now_ms afterwards. A ${now_ms}
 * more than EXPIRY_STEP_BACK_MS before the last call's moves every node to be placed again,
 * a unit each, over this and the next calls.
 */
struct expiry_node *expiry_pop_due(struct expiry_wheel *w, uint64_t now_ms, size_t *work);

/*
 * expiry_next(w):
 * A lower bound of the earliest instant at which expiry_pop_due may find a node (0 when work
 * is pending now), or UINT64_MAX when nothing is scheduled.
 */
uint64_t expiry_next(const struct expiry_wheel *w);

/* expiry_count(w): how many nodes are scheduled. */
size_t expiry_count(const struct expiry_wheel *w);

#endif
