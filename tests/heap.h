#ifndef SESSD_TESTS_HEAP_H
#define SESSD_TESTS_HEAP_H

/* What a test's own process holds on the heap, for bounds on what the code under test keeps. */

#include <malloc.h>
#include <stddef.h>

#include "asan.h"

#ifdef TESTS_ASAN
/* ASan's runtime has it; gcc installs no sanitizer/allocator_interface.h to declare it. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/*
 * Bytes of heap this process has allocated and not freed: malloc's own figures, or ASan's
 * under ASan (whose allocator replaces malloc's).
 */
static inline size_t heap_in_use(void)
{
#ifdef TESTS_ASAN
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();

	/* hblkhd: the chunks malloc got from mmap, which uordblks leaves out. */
	return mi.uordblks + mi.hblkhd;
#endif
}

#endif
