/*
 * failreaddir.so: an LD_PRELOAD module for test_persist, a directory that fails to read.
 * With $SESSD_FAILREADDIR set to N, readdir(3) returns N entries of each directory stream as
 * usual, then NULL with errno EIO, as getdents(2) does on a failing disk; without it, readdir
 * is the real one. Only for tests.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>

static struct dirent *(*real_readdir)(DIR *);
static const DIR *counted;
static long given;

struct dirent *readdir(DIR *d)
{
	const char *limit = getenv("SESSD_FAILREADDIR");
	void *sym;

	if (real_readdir == NULL) {
		/* POSIX guarantees that dlsym's object pointer converts to a function pointer. */
		sym = dlsym(RTLD_NEXT, "readdir");
		*(void **)&real_readdir = sym;
	}
	if (limit == NULL)
		return real_readdir(d);
	if (d != counted) {
		counted = d;
		given = 0;
	}
	if (given >= atol(limit)) {
		errno = EIO;
		return NULL;
	}
	given++;
	return real_readdir(d);
}
