#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"
#include "seal.h"

struct auth {
	/* The pre-shared key derived from the secret (seal_psk): what the key exchange proves,
	 * and what a plain secret is checked against. sodium_malloc'd, read-only once written. */
	unsigned char *psk;
};

/*
 * Read all of the open file ${fd} (${path} for messages) into ${buf} of ${cap} bytes. Returns
 * the byte count, or -1 after logging (also when the file holds more than ${cap} bytes).
 */
static ssize_t read_secret(int fd, const char *path, unsigned char *buf, size_t cap)
{
	size_t got = 0;
	ssize_t r;

	for (;;) {
		r = read(fd, buf + got, cap - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			log_error("auth file %s: %s", path, strerror(errno));
			return -1;
		}
		if (r == 0)
			return (ssize_t)got;
		got += (size_t)r;
		if (got == cap) {
			log_error("auth file %s: longer than %u bytes", path, AUTH_MAX_SECRET);
			return -1;
		}
	}
}

struct auth *auth_new(const char *path)
{
	/* Room for the longest secret, its "\r\n", and one byte to notice a longer file. */
	const size_t cap = AUTH_MAX_SECRET + 3;
	unsigned char *secret = NULL;
	struct auth *a = NULL;
	struct stat sb;
	ssize_t len;
	int fd;

	/* O_NONBLOCK: a FIFO is refused below rather than waited on, with no word, for ever. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1) {
		log_error("auth file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		log_error("auth file %s: not a regular file", path);
		goto fail_close;
	}
	/* A secret other users can read guards nothing; refuse it as ssh refuses such keys. */
	if ((sb.st_mode & 0007) != 0) {
		log_error("auth file %s: mode %04o lets other users read or replace the secret; "
		          "chmod o-rwx it",
		          path, (unsigned)(sb.st_mode & 07777));
		goto fail_close;
	}
	secret = sodium_malloc(cap);
	a = calloc(1, sizeof(*a));
	if (secret == NULL || a == NULL || (a->psk = sodium_malloc(SEAL_PSK_BYTES)) == NULL) {
		log_error("auth file %s: out of memory", path);
		goto fail_free;
	}
	len = read_secret(fd, path, secret, cap);
	if (len == -1)
		goto fail_free;
	if (len > 0 && secret[len - 1] == '\n')
		len--;
	if (len > 0 && secret[len - 1] == '\r')
		len--;
	if ((size_t)len < AUTH_MIN_SECRET || (size_t)len > AUTH_MAX_SECRET) {
		log_error("auth file %s: the secret must be %u to %u bytes (it has %zd); "
		          "make one with: head -c 32 /dev/urandom | base64 > FILE",
		          path, AUTH_MIN_SECRET, AUTH_MAX_SECRET, len);
		goto fail_free;
	}
	seal_psk(a->psk, secret, (size_t)len);
	sodium_mprotect_readonly(a->psk);
	sodium_free(secret);
	close(fd);
	return a;

fail_free:
	sodium_free(secret);
	auth_free(a);
fail_close:
	close(fd);
fail:
	return NULL;
}

void auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	sodium_free(a->psk);
	free(a);
}

bool auth_check(const struct auth *a, const void *presented, size_t len)
{
	unsigned char psk[SEAL_PSK_BYTES];
	bool same;

	seal_psk(psk, presented, len);
	same = sodium_memcmp(psk, a->psk, sizeof(psk)) == 0;
	sodium_memzero(psk, sizeof(psk));
	return same;
}

struct seal *auth_seal(const struct auth *a, const uint8_t client_public[SEAL_KEY_BYTES],
                       const uint8_t client_proof[SEAL_PROOF_BYTES],
                       uint8_t server_public[SEAL_KEY_BYTES],
                       uint8_t server_proof[SEAL_PROOF_BYTES])
{
	return seal_server_new(a->psk, client_public, client_proof, server_public, server_proof);
}
