#include "flash.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/*
 * A queue is one allocation: its header, its type, then its messages as records of
 * [uint32 length][uint8 is_bin][bytes] in push order. Queues are linked in creation order,
 * which is the order of their oldest message because a queue only ever loses all its
 * messages at once. Types are found by a linear walk: sessions use a handful of types, and
 * FLASH_MAX_TYPES keeps a hostile client from making every push walk thousands of queues.
 */

#define RECORD_HEADER 5u

struct flash_queue {
	struct flash_queue *next;
	uint32_t count;
	uint32_t used; /* bytes of records */
	uint8_t type_len;
	uint8_t bytes[]; /* type, then records */
};

struct flash_set {
	struct flash_queue *first;
	struct flash_queue *last;
	size_t queues;
	size_t messages;
	size_t flash_bytes;
	size_t memory; /* malloc_usable_size of the set and its queues */
};

/*
 * What a message counts against the session's flash budget: its type, its bytes and
 * RECORD_HEADER, which is at least the msgpack header a pop writes before it. Counting the
 * header keeps every accepted push poppable in one reply under max_frame, even for a
 * session full of empty messages.
 */
static size_t message_charge(size_t type_len, size_t msg_len)
{
	return type_len + RECORD_HEADER + msg_len;
}

static size_t queue_flash_bytes(const struct flash_queue *q)
{
	return (size_t)q->count * q->type_len + q->used;
}

static const uint8_t *queue_records(const struct flash_queue *q)
{
	return q->bytes + q->type_len;
}

static struct flash_queue *queue_find(struct flash_set *set, const uint8_t *type, size_t type_len,
                                      struct flash_queue **prev)
{
	struct flash_queue *p = NULL;

	if (set == NULL)
		return NULL;
	for (struct flash_queue *q = set->first; q != NULL; p = q, q = q->next) {
		if (q->type_len == type_len && memcmp(q->bytes, type, type_len) == 0) {
			*prev = p;
			return q;
		}
	}
	return NULL;
}

/* A block of ${size} bytes whose usable size keeps ${memory} - ${old_usable} + it within
 * ${max_memory}; NULL with ENOMEM otherwise. Nothing else is touched. */
static void *alloc_within(size_t size, size_t memory, size_t old_usable, size_t max_memory)
{
	void *p = malloc(size);

	if (p == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if (memory - old_usable + malloc_usable_size(p) > max_memory) {
		free(p);
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

static void record_append(struct flash_queue *q, const void *msg, size_t msg_len, bool is_bin)
{
	uint8_t *rec = q->bytes + q->type_len + q->used;
	uint32_t len = (uint32_t)msg_len;

	memcpy(rec, &len, sizeof(len));
	rec[4] = is_bin ? 1 : 0;
	if (msg_len > 0)
		memcpy(rec + RECORD_HEADER, msg, msg_len);
	q->used += (uint32_t)(RECORD_HEADER + msg_len);
	q->count++;
}

int flash_push(struct flash_set **setp, const uint8_t *type, size_t type_len, const void *msg,
               size_t msg_len, bool msg_is_bin, size_t max_flash_bytes, size_t max_memory,
               size_t *queue_len)
{
	struct flash_set *set = *setp;
	struct flash_set *new_set = NULL;
	struct flash_queue *q, *prev = NULL, *nq;
	size_t memory = set != NULL ? set->memory : 0;
	size_t flash_bytes = set != NULL ? set->flash_bytes : 0;
	size_t record = RECORD_HEADER + msg_len;

	if (msg_len > UINT32_MAX / 2 || message_charge(type_len, msg_len) > max_flash_bytes ||
	    flash_bytes + message_charge(type_len, msg_len) > max_flash_bytes) {
		errno = ENOSPC;
		goto fail;
	}
	if (set == NULL) {
		new_set = alloc_within(sizeof(*new_set), 0, 0, max_memory);
		if (new_set == NULL)
			goto fail;
		*new_set = (struct flash_set){.memory = malloc_usable_size(new_set)};
		memory = new_set->memory;
		set = new_set;
	}
	q = queue_find(set, type, type_len, &prev);
	if (q != NULL) {
		size_t need = sizeof(*q) + q->type_len + q->used + record;
		size_t old_usable = malloc_usable_size(q);

		if ((size_t)q->used + record > UINT32_MAX) {
			errno = ENOSPC;
			goto fail_set;
		}
		if (need > old_usable) {
			/* Grow geometrically so a long queue costs amortised O(1) per push, but
			 * settle for the exact size when the memory limit is near. */
			nq = alloc_within(need + need / 2, memory, old_usable, max_memory);
			if (nq == NULL)
				nq = alloc_within(need, memory, old_usable, max_memory);
			if (nq == NULL)
				goto fail_set;
			memcpy(nq, q, sizeof(*q) + q->type_len + q->used);
			if (prev != NULL)
				prev->next = nq;
			else
				set->first = nq;
			if (set->last == q)
				set->last = nq;
			set->memory += malloc_usable_size(nq) - old_usable;
			free(q);
			q = nq;
		}
	} else {
		if (set->queues >= FLASH_MAX_TYPES) {
			errno = EMLINK;
			goto fail_set;
		}
		q = alloc_within(sizeof(*q) + type_len + record, memory, 0, max_memory);
		if (q == NULL)
			goto fail_set;
		q->next = NULL;
		q->count = 0;
		q->used = 0;
		q->type_len = (uint8_t)type_len;
		memcpy(q->bytes, type, type_len);
		if (set->last != NULL)
			set->last->next = q;
		else
			set->first = q;
		set->last = q;
		set->queues++;
		set->memory += malloc_usable_size(q);
	}
	record_append(q, msg, msg_len, msg_is_bin);
	set->messages++;
	set->flash_bytes += message_charge(type_len, msg_len);
	*setp = set;
	if (queue_len != NULL)
		*queue_len = q->count;
	return 0;

fail_set:
	free(new_set);
fail:
	return -1;
}

/* Show one queue; 0, or -1 when a callback refused. */
static int queue_show(const struct flash_queue *q, store_flash_type_fn on_type,
                      store_flash_msg_fn on_msg, void *arg)
{
	const uint8_t *rec = queue_records(q);
	const uint8_t *end = rec + q->used;

	if (on_type != NULL && on_type(arg, q->bytes, q->type_len, q->count) != 0)
		return -1;
	while (rec < end) {
		uint32_t len;

		memcpy(&len, rec, sizeof(len));
		if (on_msg != NULL && on_msg(arg, rec + RECORD_HEADER, len, rec[4] != 0) != 0)
			return -1;
		rec += RECORD_HEADER + len;
	}
	return 0;
}

int flash_pop(struct flash_set **setp, const uint8_t *type, size_t type_len, size_t *queue_count,
              store_flash_type_fn on_type, store_flash_msg_fn on_msg, void *arg, size_t *removed)
{
	struct flash_set *set = *setp;
	struct flash_queue *q, *prev = NULL;

	*removed = 0;
	if (type != NULL) {
		q = queue_find(set, type, type_len, &prev);
		if (queue_count != NULL)
			*queue_count = 1;
		if (q == NULL) {
			if (on_type != NULL && on_type(arg, type, type_len, 0) != 0)
				goto fail_cancel;
			return 0;
		}
		if (queue_show(q, on_type, on_msg, arg) != 0)
			goto fail_cancel;
		if (prev != NULL)
			prev->next = q->next;
		else
			set->first = q->next;
		if (set->last == q)
			set->last = prev;
		set->queues--;
		set->messages -= q->count;
		set->flash_bytes -= queue_flash_bytes(q);
		set->memory -= malloc_usable_size(q);
		*removed = q->count;
		free(q);
		if (set->queues == 0) {
			flash_free(set);
			*setp = NULL;
		}
		return 0;
	}
	if (queue_count != NULL)
		*queue_count = set != NULL ? set->queues : 0;
	if (set == NULL)
		return 0;
	if (flash_foreach(set, on_type, on_msg, arg) != 0)
		goto fail_cancel;
	*removed = set->messages;
	flash_free(set);
	*setp = NULL;
	return 0;

fail_cancel:
	errno = ECANCELED;
	return -1;
}

int flash_foreach(const struct flash_set *set, store_flash_type_fn on_type,
                  store_flash_msg_fn on_msg, void *arg)
{
	if (set == NULL)
		return 0;
	for (const struct flash_queue *q = set->first; q != NULL; q = q->next) {
		if (queue_show(q, on_type, on_msg, arg) != 0)
			return -1;
	}
	return 0;
}

size_t flash_messages(const struct flash_set *set)
{
	return set != NULL ? set->messages : 0;
}

size_t flash_bytes(const struct flash_set *set)
{
	return set != NULL ? set->flash_bytes : 0;
}

size_t flash_memory(const struct flash_set *set)
{
	return set != NULL ? set->memory : 0;
}

void flash_free(struct flash_set *set)
{
	struct flash_queue *q, *next;

	if (set == NULL)
		return;
	for (q = set->first; q != NULL; q = next) {
		next = q->next;
		free(q);
	}
	free(set);
}
