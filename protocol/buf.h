#ifndef SESSD_BUF_H
#define SESSD_BUF_H

#include <stddef.h>
#include <stdint.h>

/*
 * A growable byte buffer. The struct is public because callers embed it (connections keep one
 * for output, clients one per request batch); its fields are read freely but only changed
 * through buf_* so that len <= cap always holds.
 */
struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* buf_init(b): make ${b} empty without allocating. */
void buf_init(struct buf *b);

/* buf_finish(b): free the memory of ${b}; it is then empty and may be reused. */
void buf_finish(struct buf *b);

/*
 * buf_reserve(b, extra):
 * Make room for ${extra} more bytes after len. Returns 0, or -1 with errno ENOMEM (nothing
 * changed; also when len + extra overflows).
 */
int buf_reserve(struct buf *b, size_t extra);

/*
 * buf_populate(p, n):
 * Fault in the whole pages of the ${n} bytes at ${p}, the caller's to write, in one call
 * (MADV_POPULATE_WRITE). Returns 0, or -1 with errno (EINVAL on a kernel before 5.14).
 */
int buf_populate(void *p, size_t n);

/* Below this, buf_prefault does nothing: a few page faults cost less than the call. */
#define BUF_PREFAULT_MIN_BYTES (256u * 1024u)

/*
 * buf_prefault(p, n):
 * Fault in the whole pages of the ${n} bytes at ${p}, about to be written, at once, when they
 * are BUF_PREFAULT_MIN_BYTES or more: copying a large frame or session into fresh memory
 * otherwise takes a page fault each 4 KiB (65,536 for 256 MiB, a third of a SET's CPU on a
 * VM). The pages must be the caller's to write. Nothing on a kernel without
 * MADV_POPULATE_WRITE (before 5.14) or when it fails: the writes fault them in as before.
 */
void buf_prefault(void *p, size_t n);

/* buf_append(b, p, n): copy ${n} bytes of ${p} to the end. Returns 0, or -1 with errno ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);

/* buf_reset(b): forget the contents but keep the memory for reuse. */
void buf_reset(struct buf *b);

/* buf_consume(b, n): drop the first ${n} bytes (n <= len), moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);

#endif
