/*
 * secretfile: the files that hold sessd's secrets (--key-file, --auth-file,
 * --admin-auth-file), opened, checked and read one way.
 *
 * A secret file that cannot serve as it is (missing, not ours to read, not a regular file,
 * open to other users) is a fault of the configuration: every function here says so with
 * errno ENOKEY, which the daemon turns into exit status 2 (the shipped unit does not restart
 * into the same refusal). Any other errno is a passing failure (EIO, EMFILE, ENOMEM): exit 1,
 * and a restart may mend it. Each failure is logged once, here, naming the file.
 */
#ifndef SESSD_SECRETFILE_H
#define SESSD_SECRETFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "log.h"

/* How the log speaks of one kind of secret file. Every string is borrowed and constant. */
struct secretfile_kind {
	const char *what;   /* the file, as a line of the log begins: "persist: key file" */
	const char *secret; /* what it holds: "key", "secret" */
	const char *shape;  /* what it must be: "a regular file of exactly 32 bytes" */
};

/*
 * secretfile_open(path, kind, level, size):
 * Open the secret file ${path} for reading and check that it can hold a secret: a regular
 * file that no other user may read or replace. Returns its descriptor, for the caller to
 * close, with the file's size in ${*size}; or -1, logged at ${level}, with errno ENOKEY when
 * the file cannot serve as it is, or open(2)'s or fstat(2)'s for a passing failure.
 */
int secretfile_open(const char *path, const struct secretfile_kind *kind, enum log_level level,
                    off_t *size);

/*
 * secretfile_read(fd, path, kind, level, cap, len):
 * Read ${fd} (the file ${path}, from secretfile_open) into guarded memory of ${cap} bytes,
 * at most ${cap} of them: *${len} == ${cap} says the file holds at least that many, which
 * the caller, who knows what length a secret may have, judges. Returns the buffer,
 * sodium_malloc'd (guard pages, kept out of swap and core dumps), for the caller to free with
 * sodium_free, which wipes it; or NULL, logged at ${level}, with errno ENOMEM or read(2)'s.
 */
unsigned char *secretfile_read(int fd, const char *path, const struct secretfile_kind *kind,
                               enum log_level level, size_t cap, size_t *len);

#endif
