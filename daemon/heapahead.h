/*
 * heapahead: the heap's pages faulted in ahead of a large load, a batch at a time, in one
 * system call each (MADV_POPULATE_WRITE), where the load would take a page fault on each of
 * them as malloc reached it.
 *
 * A start of a million sessions of 1 KB puts some 1.3 GB of new heap under the store, one
 * malloc per session (store.c), and on a virtual machine each 4 KB fault costs 10 to 20 us:
 * perf put two thirds of such a start in them (bench/README.md, "The start"). glibc takes
 * new memory from the top of its heap a page fault at a time and keeps at most 128 KB free
 * at the top unless its thresholds are set (mallopt, GLIBC_TUNABLES), which would also stop
 * its dynamic mmap threshold for good, changing what large sessions cost and what
 * malloc_usable_size (STATS bytes, --max-memory) says of them. So the batch is made of
 * ordinary chunks below that threshold: allocated, populated, then freed but the last, which
 * stays in use until the next batch so that the freed ones merge into one free chunk below it
 * instead of into the top, which glibc would trim. The load's mallocs are carved from that
 * chunk as they would be from the top, of the same sizes. (A small one may now come from the
 * batch where it would have taken an older small free chunk whole, a few bytes larger: STATS
 * bytes after a start of a million sessions were 4,040 of 1.34 GB fewer; bench/README.md.)
 *
 * Only glibc's allocator behaves so: heapahead_step checks that a batch left its bytes free
 * (mallinfo2) and otherwise stops for good (a sanitizer's allocator, another malloc, or a
 * kernel before 5.14 without MADV_POPULATE_WRITE). It never fails the load: at worst the
 * load takes its page faults as before.
 */
#ifndef SESSD_HEAPAHEAD_H
#define SESSD_HEAPAHEAD_H

#include <stdbool.h>
#include <stddef.h>

/* The chunks of one batch: 32 MiB in chunks below glibc's 128 KiB mmap threshold. */
#define HEAPAHEAD_CHUNK_BYTES  (120u * 1024u)
#define HEAPAHEAD_BATCH_CHUNKS 273u

struct heapahead {
	void *sentinel;     /* the last chunk of the last batch, held; NULL when none */
	size_t budget;      /* bytes that may still be populated */
	size_t populated;   /* bytes populated so far */
	unsigned countdown; /* calls of heapahead_step until the next look */
	bool off;           /* stopped: nothing more is done */
};

/*
 * heapahead_init(h, budget):
 * Make ${h} ready to populate up to ${budget} bytes of heap over a load (the size of the file
 * loaded: its sessions take about as much). A budget below a batch's size turns it off.
 */
void heapahead_init(struct heapahead *h, size_t budget);

/*
 * heapahead_step(h):
 * Called once per record loaded: now and then, when the heap has little free memory left
 * (mallinfo2), populate a batch for the next allocations.
 */
void heapahead_step(struct heapahead *h);

/*
 * heapahead_finish(h):
 * Free the chunk held and give back what the load left populated and unused (malloc_trim),
 * so the memory settled after the load is what it was without. ${h} may then be dropped.
 */
void heapahead_finish(struct heapahead *h);

#endif
