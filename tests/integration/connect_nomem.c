/*
 * connect-nomem URL [AUTH_FILE [plain]]: sessd_connect with each of its allocations failed in turn,
 * for test_memory. Run with failalloc.so preloaded and $SESSD_FAILALLOC_FILE naming its counters
 * (failalloc.c): this process is the one whose allocations fail, which a test's own process cannot
 * be. With AUTH_FILE the connection is sealed with its secret, or shows it plain with "plain". For
 * point N it lets N allocations through and fails the next one, until a connect fails none.
 * A connect that met a failed allocation must succeed (the failure was absorbed) or return
 * SESSD_ERR_NOMEM with errno ENOMEM (sessd.h); anything else is printed, one line a point.
 * Exit 0 when every point kept to that, 1 when one did not, 2 on a usage or setup error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sessd.h"

/* sessd_connect makes far fewer allocations; a sweep that has not run out by then is wrong. */
#define MAX_POINTS 1000

int main(int argc, char **argv)
{
	const char *path = getenv("SESSD_FAILALLOC_FILE");
	struct sessd_options opts = {.timeout_ms = 10000, .client_name = "connect-nomem"};
	char errbuf[SESSD_ERRMSG_SIZE];
	_Atomic int64_t *words;
	int fd, bad = 0, point;
	void *m;

	if (argc < 2 || argc > 4 || path == NULL) {
		fprintf(stderr, "usage: SESSD_FAILALLOC_FILE=PATH LD_PRELOAD=failalloc.so "
		                "connect-nomem URL [AUTH_FILE [plain]]\n");
		return 2;
	}
	opts.auth_file = argc > 2 ? argv[2] : NULL;
	opts.plain_auth = argc > 3;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd == -1) {
		perror(path);
		return 2;
	}
	m = mmap(NULL, 3 * sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	words = m;
	for (point = 0; point < MAX_POINTS; point++) {
		struct sessd_client *c = NULL;
		int64_t failed;
		int rc, err;

		atomic_store(&words[2], 0);
		atomic_store(&words[0], point);
		atomic_store(&words[1], 1);
		rc = sessd_connect_errbuf(argv[1], &opts, &c, errbuf, sizeof(errbuf));
		err = errno;
		atomic_store(&words[1], 0);
		atomic_store(&words[0], 0);
		failed = atomic_load(&words[2]);
		sessd_close(c);
		if (failed == 0) {
			if (rc != SESSD_OK) {
				fprintf(stderr, "point %d: nothing failed, and the connect: %s\n",
				        point, errbuf);
				return 2;
			}
			printf("%d points\n", point);
			return bad ? 1 : 0;
		}
		if (rc != SESSD_OK && (rc != SESSD_ERR_NOMEM || err != ENOMEM)) {
			printf("point %d: result %d, errno %d: %s\n", point, rc, err, errbuf);
			bad = 1;
		}
	}
	fprintf(stderr, "still failing allocations after %d points\n", MAX_POINTS);
	return 2;
}
