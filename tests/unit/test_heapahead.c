#include <criterion/criterion.h>

#include "leakcheck.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "heapahead.h"

#define BATCH_BYTES ((size_t)HEAPAHEAD_CHUNK_BYTES * HEAPAHEAD_BATCH_CHUNKS)

#ifndef TESTS_ASAN
/* Whether the page holding ${p} is in memory. */
static bool resident(const void *p)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char v = 0;

	cr_assert_eq(mincore((void *)((uintptr_t)p / page * page), page, &v), 0);
	return (v & 1) != 0;
}

/* A batch is faulted in before the load reaches it, and the load's mallocs come from it. */
LEAK_CHECKED_TEST(heapahead, populates_ahead_of_malloc)
{
	struct heapahead h;
	uint8_t *p;

	heapahead_init(&h, 4 * BATCH_BYTES);
	heapahead_step(&h);
	cr_assert_not_null(h.sentinel, "a batch is held");
	p = malloc(1100);
	cr_assert_not_null(p);
	cr_assert(p < (uint8_t *)h.sentinel &&
	              (size_t)((uint8_t *)h.sentinel - p) > BATCH_BYTES / 2,
	          "the malloc is carved from the batch, below the chunk held");
	cr_assert(resident(p + BATCH_BYTES / 2),
	          "a page half a batch ahead of the malloc is in memory already");
	free(p);
	heapahead_finish(&h);
	cr_assert_null(h.sentinel);
}

/* glibc's usable size of a fresh chunk for ${n} bytes, as carved from the top of the heap:
 * the request with its 8-byte header rounded up to 16, at least 32, less the header. */
static size_t fresh_usable(size_t n)
{
	size_t chunk = (n + 8 + 15) & ~(size_t)15;

	return (chunk < 32 ? 32 : chunk) - 8;
}

/* What malloc_usable_size says (STATS bytes, --max-memory) of a session's chunk from a batch
 * is what a chunk from the top would say. (A small request may take a small free chunk left
 * before the batch whole, a few bytes larger, as it would without one.) */
LEAK_CHECKED_TEST(heapahead, usable_sizes_unchanged)
{
	static const size_t sizes[] = {1100, 1190, 2000, 4096, 9000, 65536, 120000};
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	void *p[N];
	struct heapahead h;

	heapahead_init(&h, 4 * BATCH_BYTES);
	heapahead_step(&h);
	cr_assert_not_null(h.sentinel);
	for (size_t i = 0; i < N; i++)
		p[i] = malloc(sizes[i]);
	for (size_t i = 0; i < N; i++) {
		cr_assert_not_null(p[i]);
		cr_assert_eq(malloc_usable_size(p[i]), fresh_usable(sizes[i]), "size %zu: %zu",
		             sizes[i], malloc_usable_size(p[i]));
	}
	for (size_t i = 0; i < N; i++)
		free(p[i]);
	heapahead_finish(&h);
}

/* The load's end gives back what it left populated: the heap shrinks back. */
LEAK_CHECKED_TEST(heapahead, finish_gives_back)
{
	struct heapahead h;
	size_t held;

	heapahead_init(&h, 4 * BATCH_BYTES);
	heapahead_step(&h);
	held = mallinfo2().arena;
	cr_assert_geq(held, BATCH_BYTES);
	heapahead_finish(&h);
	cr_assert_lt(mallinfo2().arena, held - BATCH_BYTES / 2, "the heap went from %zu to %zu",
	             held, mallinfo2().arena);
}

/* Batches come as the free memory is used up, up to the budget and no further. */
LEAK_CHECKED_TEST(heapahead, batches_within_budget)
{
	enum { ALLOCS = (int)(4 * BATCH_BYTES / 1100) };
	struct heapahead h;
	void **p = calloc(ALLOCS, sizeof(*p));

	cr_assert_not_null(p);
	heapahead_init(&h, 2 * BATCH_BYTES);
	for (int i = 0; i < ALLOCS; i++) {
		heapahead_step(&h);
		cr_assert_not_null(p[i] = malloc(1100));
	}
	cr_assert_eq(h.populated, 2 * BATCH_BYTES);
	cr_assert(h.off);
	for (int i = 0; i < ALLOCS; i++)
		free(p[i]);
	free(p);
	heapahead_finish(&h);
}
#else
/* ASan's allocator is not glibc's heap: the first batch shows it, and nothing more is done. */
LEAK_CHECKED_TEST(heapahead, stops_where_malloc_is_not_glibcs)
{
	struct heapahead h;

	heapahead_init(&h, 4 * BATCH_BYTES);
	heapahead_step(&h);
	cr_assert(h.off);
	cr_assert_null(h.sentinel);
	heapahead_finish(&h);
}
#endif

/* A file smaller than a batch is loaded as before: no batch, no heap grown. */
LEAK_CHECKED_TEST(heapahead, small_load_left_alone)
{
	struct heapahead h;
	size_t arena = mallinfo2().arena;

	heapahead_init(&h, BATCH_BYTES - 1);
	for (int i = 0; i < 100; i++)
		heapahead_step(&h);
	cr_assert(h.off);
	cr_assert_null(h.sentinel);
	cr_assert_eq(h.populated, 0);
	cr_assert_eq(mallinfo2().arena, arena);
	heapahead_finish(&h);
}
