#ifndef SESSD_FLASH_H
#define SESSD_FLASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The most distinct flash types one session may hold (PROTOCOL.md, "Limits"). */
#define FLASH_MAX_TYPES 64

/*
 * The flash queues of one session: one FIFO queue per type, queues in the order of their
 * oldest message, each message remembering whether it was pushed as str or bin. A session
 * without flashes holds a NULL set, so only sessions that use flashes pay for them.
 *
 * "Flash bytes" (what max_flash_bytes limits) are the type and message bytes of every queued
 * message, the type counted once per message, so that empty messages still cost something
 * and a pop reply stays proportional to the limit. "Memory" is what the allocator really
 * holds (malloc_usable_size), which the store accounts against its max_bytes.
 */

struct flash_set;

/*
 * flash_push(setp, type, type_len, msg, msg_len, msg_is_bin, max_flash_bytes, max_memory,
 *            queue_len):
 * Append a message to the queue of ${type} in *${setp}, creating the set when *${setp} is
 * NULL. The set's memory may grow to at most ${max_memory} bytes. ${queue_len} (may be NULL)
 * receives the queue's length after the push. Returns 0, or -1 with errno ENOSPC (flash bytes
 * would exceed ${max_flash_bytes}), EMLINK (a new type beyond FLASH_MAX_TYPES) or ENOMEM
 * (memory); nothing changed on -1.
 */
int flash_push(struct flash_set **setp, const uint8_t *type, size_t type_len, const void *msg,
               size_t msg_len, bool msg_is_bin, size_t max_flash_bytes, size_t max_memory,
               size_t *queue_len);

/*
 * flash_pop(setp, type, type_len, queue_count, on_type, on_msg, arg, removed):
 * As store_flash_pop, on the set *${setp} (which may be NULL: no queues). After every callback
 * returned 0 the popped messages are freed, and so is the set when it becomes empty
 * (*${setp} = NULL); ${removed} receives how many messages went. Returns 0, or -1 with errno
 * ECANCELED (a callback returned -1; nothing removed).
 */
int flash_pop(struct flash_set **setp, const uint8_t *type, size_t type_len, size_t *queue_count,
              store_flash_type_fn on_type, store_flash_msg_fn on_msg, void *arg, size_t *removed);

/*
 * flash_foreach(set, on_type, on_msg, arg):
 * Show every queue and message of ${set} (may be NULL) without changing it. ${on_msg} may be
 * NULL. Returns 0, or -1 when a callback returned -1.
 */
int flash_foreach(const struct flash_set *set, store_flash_type_fn on_type,
                  store_flash_msg_fn on_msg, void *arg);

/* flash_messages(set): messages queued in ${set} (may be NULL). */
size_t flash_messages(const struct flash_set *set);

/* flash_bytes(set): the flash bytes of every message queued in ${set} (may be NULL): about
 * what popping them all writes. */
size_t flash_bytes(const struct flash_set *set);

/* flash_memory(set): bytes the allocator holds for ${set} (may be NULL). */
size_t flash_memory(const struct flash_set *set);

/* flash_free(set): free the set and its messages; flash_free(NULL) does nothing. */
void flash_free(struct flash_set *set);

#endif
