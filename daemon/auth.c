#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"
#include "seal.h"
#include "secretfile.h"

struct auth {
	char *path;
	/* The pre-shared keys derived from the secret (seal_psk): what the key exchange proves,
	 * and what a plain secret is checked against. sodium_malloc'd, read-only once written.
	 * previous: the one a reload replaced, accepted until previous_until_ms; NULL: none.
	 * Each secret keeps the generation it first came with, even when a reload puts it back
	 * (A, then B, then A again), so that the connections made with it stay open. */
	unsigned char *psk;
	unsigned char *previous;
	uint64_t previous_until_ms;
	uint64_t generation;
	uint64_t previous_generation;
	uint64_t last_generation; /* the highest given out */
	/* Sealed connections' keys, a chunk of sodium_malloc'd memory for many connections. */
	struct seal_pool *seals;
	/* The other secret (app or admin) a reload must not make this one equal to; borrowed. */
	const struct auth *apart_from;
};

/* How the log speaks of a secret file (secretfile.h). */
static const struct secretfile_kind auth_file_kind = {
    .what = "auth file",
    .secret = "secret",
    .shape = "a regular file holding the secret",
};

/* Fewer different byte values than this in a secret is a word or a pattern, or random
 * characters of a small alphabet: 16 random base64 characters hold 14 on average, and fewer
 * than 8 one time in 10^7 (16 hex digits one time in 90, 16 decimal ones one in 4). */
#define AUTH_FEW_DISTINCT 8u

/* How many different byte values the ${len} bytes at ${secret} hold. The table of them is
 * wiped: which bytes a secret holds is a part of it. */
static unsigned distinct_bytes(const unsigned char *secret, size_t len)
{
	bool seen[256] = {false};
	unsigned n = 0;

	for (size_t i = 0; i < len; i++) {
		n += !seen[secret[i]];
		seen[secret[i]] = true;
	}
	sodium_memzero(seen, sizeof(seen));
	return n;
}

/*
 * Read the secret in the file ${path} and derive its key: returns it, sodium_malloc'd and
 * read-only, for the caller to free with sodium_free; or NULL after logging why at ${level}
 * (an error at startup, a warning on a reload that keeps the old secret), with errno ENOKEY
 * when the file cannot serve as it is (missing, not ours to read, not a regular file, open to
 * other users, a secret of the wrong length): the operator's to mend, not a passing failure.
 */
static unsigned char *load_psk(const char *path, enum log_level level)
{
	/* Room for the longest secret, its "\r\n", and one byte to notice a longer file. */
	const size_t cap = AUTH_MAX_SECRET + 3;
	unsigned char *secret, *psk = NULL;
	size_t len;
	off_t size;
	int fd, err = ENOKEY;

	fd = secretfile_open(path, &auth_file_kind, level, &size);
	if (fd == -1) {
		err = errno;
		goto fail;
	}
	secret = secretfile_read(fd, path, &auth_file_kind, level, cap, &len);
	if (secret == NULL) {
		err = errno;
		goto fail_close;
	}
	if (len == cap) {
		log_msg(level, "auth file %s: longer than %u bytes", path, AUTH_MAX_SECRET);
		goto fail_free;
	}
	/* One trailing "\n" or "\r\n" (PROTOCOL.md): a "\r" alone is the secret's own byte, as
	 * in a binary secret from /dev/urandom, 1 time in 256. */
	if (len > 0 && secret[len - 1] == '\n') {
		len--;
		if (len > 0 && secret[len - 1] == '\r')
			len--;
	}
	if (len < AUTH_MIN_SECRET || len > AUTH_MAX_SECRET) {
		log_msg(level,
		        "auth file %s: the secret must be %u to %u bytes (it has %zu); "
		        "make one with: (umask 077; head -c 32 /dev/urandom | base64 > FILE)",
		        path, AUTH_MIN_SECRET, AUTH_MAX_SECRET, len);
		goto fail_free;
	}
	if (distinct_bytes(secret, len) < AUTH_FEW_DISTINCT)
		log_warn(
		    "auth file %s: the secret's %zu bytes hold fewer than %u different "
		    "values: a word or a pattern is what guessers try first, and nothing limits "
		    "how fast they may (sessd(8), --auth-file); random digits or hex want more "
		    "characters than this; make one with: "
		    "(umask 077; head -c 32 /dev/urandom | base64 > FILE)",
		    path, len, AUTH_FEW_DISTINCT);
	psk = sodium_malloc(SEAL_PSK_BYTES);
	if (psk == NULL) {
		log_msg(level, "auth file %s: out of memory", path);
		err = ENOMEM;
		goto fail_free;
	}
	seal_psk(psk, secret, len);
	sodium_mprotect_readonly(psk);
	sodium_free(secret);
	close(fd);
	return psk;

fail_free:
	sodium_free(secret);
fail_close:
	close(fd);
fail:
	errno = err;
	return NULL;
}

uint64_t auth_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct auth *auth_new(const char *path)
{
	struct auth *a = calloc(1, sizeof(*a));
	int err;

	if (a == NULL || (a->path = strdup(path)) == NULL || (a->seals = seal_pool_new()) == NULL) {
		log_error("auth file %s: out of memory", path);
		goto fail;
	}
	a->psk = load_psk(path, LOG_ERROR);
	if (a->psk == NULL)
		goto fail;
	a->generation = a->last_generation = 1;
	return a;

fail:
	err = a != NULL && a->seals != NULL ? errno : ENOMEM;
	auth_free(a);
	errno = err;
	return NULL;
}

/*
 * Whether ${a} lets ${psk} in: as its current secret, or as the previous one it keeps until
 * auth_expire. A secret in both the app's and the admin's would make every app that shows it
 * an admin (dispatch tries the admin secret first), during a grace as much as after it.
 */
static bool holds_psk(const struct auth *a, const unsigned char *psk)
{
	bool current = sodium_memcmp(psk, a->psk, SEAL_PSK_BYTES) == 0;
	bool previous = a->previous != NULL && sodium_memcmp(psk, a->previous, SEAL_PSK_BYTES) == 0;

	return current || previous;
}

int auth_reload(struct auth *a, uint64_t now_ms, uint64_t grace_ms)
{
	unsigned char *psk = load_psk(a->path, LOG_WARN);
	uint64_t generation;

	if (psk == NULL) {
		log_warn("auth file %s: not reloaded; the secret stays as it was", a->path);
		return -1;
	}
	if (a->apart_from != NULL && holds_psk(a->apart_from, psk)) {
		sodium_free(psk);
		log_warn(
		    "auth file %s: not reloaded: it holds the secret of %s (its current one, or "
		    "the previous one it still lets in: --auth-grace), and the app and admin "
		    "secrets must differ; the secret stays as it was",
		    a->path, a->apart_from->path);
		return -1;
	}
	if (sodium_memcmp(psk, a->psk, SEAL_PSK_BYTES) == 0) {
		sodium_free(psk);
		log_info("auth file %s: reloaded; the secret is unchanged", a->path);
		return 0;
	}
	if (a->previous != NULL && sodium_memcmp(psk, a->previous, SEAL_PSK_BYTES) == 0) {
		/* The secret put back: it keeps its generation, and so its connections. */
		sodium_free(psk);
		psk = a->previous;
		generation = a->previous_generation;
	} else {
		sodium_free(a->previous);
		generation = ++a->last_generation;
	}
	a->previous = NULL;
	if (grace_ms > 0) {
		a->previous = a->psk;
		a->previous_generation = a->generation;
		a->previous_until_ms = now_ms + grace_ms;
	} else {
		sodium_free(a->psk);
	}
	a->psk = psk;
	a->generation = generation;
	if (grace_ms > 0)
		log_info("auth file %s: reloaded a new secret; the previous one lets new "
		         "connections in for %llu s more, then its connections are closed "
		         "(--auth-grace)",
		         a->path, (unsigned long long)(grace_ms / 1000));
	else
		log_info(
		    "auth file %s: reloaded a new secret; the previous one is refused from now "
		    "on and its connections are closed (--auth-grace 0)",
		    a->path);
	return 0;
}

bool auth_expire(struct auth *a, uint64_t now_ms)
{
	if (a->previous == NULL || now_ms < a->previous_until_ms)
		return false;
	sodium_free(a->previous); /* wipes it */
	a->previous = NULL;
	/* A warning: an operator who watches only those would otherwise first see the refusals
	 * of the clients still holding that secret, with nothing saying why they began. */
	log_warn("auth file %s: the previous secret's grace is over; it is refused from now on "
	         "and its connections are closed",
	         a->path);
	return true;
}

bool auth_holds_generation(const struct auth *a, uint64_t generation)
{
	return generation == a->generation ||
	       (a->previous != NULL && generation == a->previous_generation);
}

bool auth_same_secret(const struct auth *a, const struct auth *b)
{
	return sodium_memcmp(a->psk, b->psk, SEAL_PSK_BYTES) == 0;
}

void auth_keep_apart(struct auth *a, const struct auth *other)
{
	a->apart_from = other;
}

void auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	sodium_free(a->psk);
	sodium_free(a->previous);
	seal_pool_free(a->seals);
	free(a->path);
	free(a);
}

/* The previous secret's key while its grace lasts, else NULL. */
static const unsigned char *previous_psk(const struct auth *a, uint64_t now_ms)
{
	return a->previous != NULL && now_ms < a->previous_until_ms ? a->previous : NULL;
}

uint64_t auth_check(const struct auth *a, const void *presented, size_t len, uint64_t now_ms)
{
	const unsigned char *previous = previous_psk(a, now_ms);
	unsigned char psk[SEAL_PSK_BYTES];
	bool same, same_previous = false;

	/* Both compared before either result is looked at: the time is the same either way. */
	seal_psk(psk, presented, len);
	same = sodium_memcmp(psk, a->psk, sizeof(psk)) == 0;
	if (previous != NULL)
		same_previous = sodium_memcmp(psk, previous, sizeof(psk)) == 0;
	sodium_memzero(psk, sizeof(psk));
	return same ? a->generation : same_previous ? a->previous_generation : 0;
}

struct seal *auth_seal(const struct auth *a, uint64_t now_ms,
                       const uint8_t client_public[SEAL_KEY_BYTES],
                       const uint8_t client_proof[SEAL_PROOF_BYTES],
                       uint8_t server_public[SEAL_KEY_BYTES],
                       uint8_t server_proof[SEAL_PROOF_BYTES], uint64_t *generation)
{
	const unsigned char *previous = previous_psk(a, now_ms);
	struct seal *seal;

	*generation = a->generation;
	seal = seal_server_new_in(a->seals, a->psk, client_public, client_proof, server_public,
	                          server_proof);
	if (seal == NULL && errno == EACCES && previous != NULL) {
		*generation = a->previous_generation;
		seal = seal_server_new_in(a->seals, previous, client_public, client_proof,
		                          server_public, server_proof);
	}
	return seal;
}
