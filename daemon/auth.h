/*
 * auth: the shared secret a client shows in HELLO when sessd runs with --auth-file.
 *
 * Only the key derived from the secret (seal_psk, an HMAC of it) is kept, in sodium_malloc'd
 * read-only memory; the secret's own bytes are wiped once hashed. Checking a plain secret
 * derives the same from what a client presents and compares the two in constant time, so
 * neither the secret's bytes nor its length leak through timing; a sealed client proves the
 * key without sending it (auth_seal).
 *
 * Each secret loaded has a generation, 1 for the first and one more for each new one a reload
 * takes (a reload that puts back the previous secret gives it back its own), which the
 * checks return: a connection records the one it showed, and is closed once
 * that secret is retired (auth_holds_generation). Times are ms on auth_clock_ms's clock.
 */
#ifndef SESSD_AUTH_H
#define SESSD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "seal.h"

/* A secret must hold at least this many bytes (a short one can be guessed) and at most this
 * many (it travels in HELLO, which must fit the 4 KiB allowed before it). */
#define AUTH_MIN_SECRET 16u
#define AUTH_MAX_SECRET 1024u

/* Where a plain HELLO, the secret itself in auth, is let in (--auth-plain). A plain secret
 * crosses the wire as it is: whoever reads it can connect, and pass for the server to sealed
 * clients too. Zero lets it in everywhere, as before the choice existed. */
enum auth_plain {
	AUTH_PLAIN_YES = 0,  /* on every connection */
	AUTH_PLAIN_LOOPBACK, /* on Unix sockets and TCP from a loopback address only */
	AUTH_PLAIN_NO,       /* nowhere: clients seal */
};

struct auth;

/* auth_clock_ms(): now in ms on CLOCK_MONOTONIC, which a step of the wall clock (NTP, an
 * operator's date) does not move: the clock of every now_ms below. */
uint64_t auth_clock_ms(void);

/*
 * auth_new(path):
 * Load the secret from the file ${path}: its bytes, less one trailing newline ("\n" or
 * "\r\n"), 16 to 1024 of them. The file must be a regular file that other users can neither
 * read nor write (as for --key-file). Returns a new auth to free with auth_free, or NULL after
 * logging why, with errno ENOKEY when the file cannot serve as it is (missing, not ours to
 * read, not a regular file, open to other users, a secret of the wrong length): a fault of the
 * configuration, which a restart repeats.
 */
struct auth *auth_new(const char *path);

/*
 * auth_same_secret(a, b):
 * Whether ${a} and ${b} hold the same current secret (compared in constant time): the app's
 * and the admin's (--admin-auth-file) must differ, or every app would be an admin.
 */
bool auth_same_secret(const struct auth *a, const struct auth *b);

/*
 * auth_keep_apart(a, other):
 * From now on, a reload of ${a} refuses a secret that ${other} holds, as its current one or
 * as the previous one it still lets in, keeping ${a}'s as it was (auth_same_secret at
 * startup, kept so by every SIGHUP). ${other} is borrowed for ${a}'s lifetime; NULL: no such
 * check.
 */
void auth_keep_apart(struct auth *a, const struct auth *other);

/* auth_free(a): wipe and free ${a}. auth_free(NULL) does nothing. */
void auth_free(struct auth *a);

/*
 * auth_reload(a, now_ms, grace_ms):
 * Read the file again (SIGHUP). A new secret takes over at once, with the next generation
 * (the previous secret, put back, with its own); the one it replaces still lets clients in for
 * ${grace_ms} after ${now_ms}, so that they can be given the new one in turn (0: not at all, and it
 * is wiped at once). A secret replaced earlier is wiped and forgotten. Returns 0, or -1 after
 * logging why the file cannot be used (or holds the secret auth_keep_apart keeps it from),
 * keeping the secrets as they were.
 */
int auth_reload(struct auth *a, uint64_t now_ms, uint64_t grace_ms);

/*
 * auth_expire(a, now_ms):
 * Wipe and free the previous secret when its grace is over at ${now_ms}, rather than keep it
 * in memory until the next reload. Returns true when it did (the connections that showed it
 * are no longer held: auth_holds_generation), false when there was nothing to do.
 */
bool auth_expire(struct auth *a, uint64_t now_ms);

/*
 * auth_holds_generation(a, generation):
 * Whether ${a} still holds the secret of ${generation}: the current one, or the previous one
 * until auth_expire drops it. A connection that showed any other showed a retired secret.
 */
bool auth_holds_generation(const struct auth *a, uint64_t generation);

/*
 * auth_check(a, presented, len, now_ms):
 * Whether the ${len} bytes at ${presented} are the secret, or the previous one while its
 * grace lasts at ${now_ms}: returns the generation of the one they are, or 0 for neither.
 * Takes the same time whatever they hold, for a given ${len}.
 */
uint64_t auth_check(const struct auth *a, const void *presented, size_t len, uint64_t now_ms);

/*
 * auth_seal(a, now_ms, client_public, client_proof, server_public, server_proof, generation):
 * Answer a sealed HELLO's key exchange (PROTOCOL.md, "Sealed connections") with the secret,
 * or the previous one while its grace lasts at ${now_ms}: see seal_server_new. Returns the
 * connection's seal, from ${a}'s pool, to free with seal_free before ${a} is freed, with the
 * generation of the secret the client proved in *${generation}; or NULL with errno EACCES
 * (the client holds neither), EDOM (its public key is of low order: see seal_server_new) or
 * ENOMEM.
 */
struct seal *auth_seal(const struct auth *a, uint64_t now_ms,
                       const uint8_t client_public[SEAL_KEY_BYTES],
                       const uint8_t client_proof[SEAL_PROOF_BYTES],
                       uint8_t server_public[SEAL_KEY_BYTES],
                       uint8_t server_proof[SEAL_PROOF_BYTES], uint64_t *generation);

#endif
