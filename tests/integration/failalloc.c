/*
 * failalloc.so: an LD_PRELOAD module for test_memory, failed allocations in a running daemon.
 * malloc, calloc, realloc, posix_memalign and aligned_alloc of the process's main thread (sessd's
 * event loop) read three counters from the file $SESSD_FAILALLOC_FILE, mapped shared so that
 * the test changes them while the daemon runs: word 0, allocations to let through; then word 1,
 * allocations to fail (ENOMEM); word 2 counts the allocations failed. The test writes word 0
 * and word 1 and reads word 2. Other threads (the file worker, the trimmer) and a process
 * without the file allocate as usual, so that what fails is the loop's, the same at every run.
 * Only for tests: a failed allocation is the only fault it makes.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);

/* dlsym may allocate before the real functions are known: from here, never freed. */
static _Alignas(max_align_t) char boot[4096];
static size_t boot_used;
static int looking_up;

/* The shared counters, or NULL before the constructor or without the file. */
static _Atomic int64_t *words;

/* The next definition of ${name} into the function pointer at ${fn} (ISO C has no cast of
 * dlsym's object pointer to a function pointer; POSIX guarantees the bytes convert). */
static void take(void *fn, const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	memcpy(fn, &p, sizeof(p));
}

static void look_up(void)
{
	if (real_malloc != NULL || looking_up)
		return;
	looking_up = 1;
	take(&real_malloc, "malloc");
	take(&real_calloc, "calloc");
	take(&real_realloc, "realloc");
	take(&real_free, "free");
	take(&real_posix_memalign, "posix_memalign");
	take(&real_aligned_alloc, "aligned_alloc");
	looking_up = 0;
}

__attribute__((constructor)) static void map_words(void)
{
	const char *path = getenv("SESSD_FAILALLOC_FILE");
	void *m;
	int fd;

	look_up();
	if (path == NULL || (fd = open(path, O_RDWR | O_CLOEXEC)) == -1)
		return;
	m = mmap(NULL, 3 * sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m != MAP_FAILED)
		words = m;
}

static void *from_boot(size_t n)
{
	void *p;

	n = (n + 15) & ~(size_t)15;
	if (n > sizeof(boot) - boot_used)
		return NULL;
	p = boot + boot_used;
	boot_used += n;
	return p;
}

static int in_boot(const void *p)
{
	return (const char *)p >= boot && (const char *)p < boot + sizeof(boot);
}

/* Whether this allocation fails: one of the main thread's, once word 0 is used up. */
static int fails(void)
{
	int64_t pass;

	if (words == NULL || syscall(SYS_gettid) != getpid())
		return 0;
	for (pass = atomic_load(&words[0]); pass > 0;)
		if (atomic_compare_exchange_weak(&words[0], &pass, pass - 1))
			return 0;
	for (int64_t left = atomic_load(&words[1]); left > 0;)
		if (atomic_compare_exchange_weak(&words[1], &left, left - 1)) {
			atomic_fetch_add(&words[2], 1);
			return 1;
		}
	return 0;
}

void *malloc(size_t n)
{
	look_up();
	if (real_malloc == NULL)
		return from_boot(n);
	if (fails()) {
		errno = ENOMEM;
		return NULL;
	}
	return real_malloc(n);
}

void *calloc(size_t count, size_t size)
{
	look_up();
	if (real_calloc == NULL) {
		void *p = size != 0 && count > SIZE_MAX / size ? NULL : from_boot(count * size);

		if (p != NULL)
			memset(p, 0, count * size);
		return p;
	}
	if (fails()) {
		errno = ENOMEM;
		return NULL;
	}
	return real_calloc(count, size);
}

void *realloc(void *p, size_t n)
{
	look_up();
	if (in_boot(p)) {
		void *q = malloc(n);

		/* A block from boot is never grown past what is left of boot. */
		if (q != NULL)
			memcpy(q, p,
			       n < (size_t)(boot + sizeof(boot) - (char *)p)
			           ? n
			           : (size_t)(boot + sizeof(boot) - (char *)p));
		return q;
	}
	if (fails()) {
		errno = ENOMEM;
		return NULL;
	}
	return real_realloc(p, n);
}

void free(void *p)
{
	if (p == NULL || in_boot(p))
		return;
	look_up();
	real_free(p);
}

int posix_memalign(void **out, size_t alignment, size_t n)
{
	look_up();
	if (fails())
		return ENOMEM;
	return real_posix_memalign(out, alignment, n);
}

void *aligned_alloc(size_t alignment, size_t n)
{
	look_up();
	if (fails()) {
		errno = ENOMEM;
		return NULL;
	}
	return real_aligned_alloc(alignment, n);
}
