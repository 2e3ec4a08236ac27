/*
 * auth: the shared secret a client shows in HELLO when sessd runs with --auth-file.
 *
 * Only a digest of the secret is kept, in sodium_malloc'd read-only memory; the secret's own
 * bytes are wiped once hashed. Checking hashes what a client presents and compares the two
 * digests in constant time, so neither the secret's bytes nor its length leak through timing.
 */
#ifndef SESSD_AUTH_H
#define SESSD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

/* A secret must hold at least this many bytes (a short one can be guessed) and at most this
 * many (it travels in HELLO, which must fit the 4 KiB allowed before it). */
#define AUTH_MIN_SECRET 16u
#define AUTH_MAX_SECRET 1024u

struct auth;

/*
 * auth_new(path):
 * Load the secret from the file ${path}: its bytes, less one trailing newline ("\n" or
 * "\r\n"), 16 to 1024 of them. The file must be a regular file that other users can neither
 * read nor write (as for --key-file). Returns a new auth to free with auth_free, or NULL after
 * logging why.
 */
struct auth *auth_new(const char *path);

/* auth_free(a): wipe and free ${a}. auth_free(NULL) does nothing. */
void auth_free(struct auth *a);

/*
 * auth_check(a, presented, len):
 * Whether the ${len} bytes at ${presented} are the secret. Takes the same time whatever they
 * hold, for a given ${len}.
 */
bool auth_check(const struct auth *a, const void *presented, size_t len);

#endif
