/* heapahead: see heapahead.h. */
#include "heapahead.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "buf.h"

/* How many records pass between looks at the heap, and how little free memory left brings a
 * batch: a record is 1 KB or so, so the free chunk is not used up between two looks. */
#define HEAPAHEAD_LOOK_EVERY 32u
#define HEAPAHEAD_LOW_BYTES  (512u * 1024u)

void heapahead_init(struct heapahead *h, size_t budget)
{
	h->sentinel = NULL;
	h->budget = budget;
	h->populated = 0;
	h->countdown = 0;
	h->off = budget < (size_t)HEAPAHEAD_CHUNK_BYTES * HEAPAHEAD_BATCH_CHUNKS;
}

/* One batch: allocate, populate, free all but the last, which is held (see heapahead.h).
 * Returns false when this is not glibc's heap behaving as expected, or the kernel cannot
 * populate: nothing is held then. */
static bool batch(struct heapahead *h)
{
	void *chunk[HEAPAHEAD_BATCH_CHUNKS];
	size_t n = 0;
	bool ok = true;

	for (; n < HEAPAHEAD_BATCH_CHUNKS; n++) {
		chunk[n] = malloc(HEAPAHEAD_CHUNK_BYTES);
		if (chunk[n] == NULL)
			break;
	}
	for (size_t i = 0; i < n && ok; i++)
		ok = buf_populate(chunk[i], HEAPAHEAD_CHUNK_BYTES) == 0;
	for (size_t i = 0; i + 1 < n; i++)
		free(chunk[i]);
	free(h->sentinel);
	h->sentinel = n > 0 ? chunk[n - 1] : NULL;
	h->populated += (size_t)HEAPAHEAD_CHUNK_BYTES * HEAPAHEAD_BATCH_CHUNKS;
	/* The chunks freed must now be free heap memory, not handed back (mmap) or held apart
	 * (a sanitizer's quarantine, which mallinfo2 does not see). */
	if (!ok || n < HEAPAHEAD_BATCH_CHUNKS ||
	    mallinfo2().fordblks < (size_t)HEAPAHEAD_CHUNK_BYTES * (n - 1)) {
		free(h->sentinel);
		h->sentinel = NULL;
		return false;
	}
	return true;
}

void heapahead_step(struct heapahead *h)
{
	if (h->off || h->countdown-- > 0)
		return;
	h->countdown = HEAPAHEAD_LOOK_EVERY - 1;
	if (mallinfo2().fordblks >= HEAPAHEAD_LOW_BYTES)
		return;
	if (!batch(h) ||
	    h->budget - h->populated < (size_t)HEAPAHEAD_CHUNK_BYTES * HEAPAHEAD_BATCH_CHUNKS)
		h->off = true;
}

void heapahead_finish(struct heapahead *h)
{
	free(h->sentinel);
	h->sentinel = NULL;
	if (h->populated > 0)
		malloc_trim(0);
	h->off = true;
}
