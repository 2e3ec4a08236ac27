#include "secretfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#include "secretpath.h"

/*
 * secretfile_open(path, kind, level, size):
 * Open the secret file ${path} for reading and check that it can hold a secret: a regular
 * file that no other user may read or replace. Returns its descriptor, for the caller to
 * close, with the file's size in ${*size}; or -1, logged at ${level}, with errno ENOKEY when
 * the file cannot serve as it is, or open(2)'s or fstat(2)'s for a passing failure.
 */
int secretfile_open(const char *path, const struct secretfile_kind *kind, enum log_level level,
                    off_t *size)
{
	struct stat sb;
	int fd, err;

	/* O_NONBLOCK: a FIFO is refused below rather than waited on, with no word, for ever
	 * (startup hung there until a writer came). */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		err = errno;
		/* Most likely a wrong path; a secret on a volume mounted after boot (an encrypted
		 * or network volume) comes back only once it is mounted, which restarts in a row
		 * do not wait for, and exit status 2 is not restarted at all: the unit waits,
		 * ordered after the mount. */
		if (secretpath_shown(path, err))
			log_msg(level, "%s %s: %s%s", kind->what, path, strerror(err),
			        err == ENOENT
			            ? " (if it is on a volume mounted after sessd starts, "
			              "order sessd after that mount: RequiresMountsFor= in "
			              "a drop-in of its unit)"
			            : "");
		else
			log_msg(level,
			        "%s: the %zu-byte value given names no file (%s); not shown, as it "
			        "may be the %s itself: give the path of the file that holds it",
			        kind->what, strlen(path), strerror(err), kind->secret);
		errno = config_path_fault(err) ? ENOKEY : err;
		goto fail;
	}
	/* An fstat that fails on an open file is the system's trouble, not the file's. */
	if (fstat(fd, &sb) == -1) {
		err = errno;
		log_msg(level, "%s %s: %s", kind->what, path, strerror(err));
		close(fd);
		errno = err;
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		log_msg(level, "%s %s: not a regular file; it must be %s", kind->what, path,
		        kind->shape);
		goto fail_close;
	}
	/* A secret other users can read guards nothing; refuse it as ssh refuses such keys. */
	if ((sb.st_mode & 0007) != 0) {
		log_msg(level,
		        "%s %s: mode %04o lets other users read or replace the %s; chmod o-rwx it",
		        kind->what, path, (unsigned)(sb.st_mode & 07777), kind->secret);
		goto fail_close;
	}
	*size = sb.st_size;
	return fd;

fail_close:
	close(fd);
	errno = ENOKEY;
fail:
	return -1;
}

/*
 * secretfile_read(fd, path, kind, level, cap, len):
 * Read ${fd} (the file ${path}, from secretfile_open) into guarded memory of ${cap} bytes,
 * at most ${cap} of them: *${len} == ${cap} says the file holds at least that many, which
 * the caller, who knows what length a secret may have, judges. Returns the buffer,
 * sodium_malloc'd (guard pages, kept out of swap and core dumps), for the caller to free with
 * sodium_free, which wipes it; or NULL, logged at ${level}, with errno ENOMEM or read(2)'s.
 */
unsigned char *secretfile_read(int fd, const char *path, const struct secretfile_kind *kind,
                               enum log_level level, size_t cap, size_t *len)
{
	unsigned char *buf;
	size_t got = 0;
	ssize_t r;
	int err;

	buf = sodium_malloc(cap);
	if (buf == NULL) {
		log_msg(level, "%s %s: out of memory", kind->what, path);
		errno = ENOMEM;
		goto fail;
	}
	while (got < cap) {
		r = read(fd, buf + got, cap - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			err = errno;
			log_msg(level, "%s %s: %s", kind->what, path, strerror(err));
			errno = err;
			goto fail_free;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	*len = got;
	return buf;

fail_free:
	sodium_free(buf);
	errno = err;
fail:
	return NULL;
}
