#ifndef SESSD_FUZZ_AUTH_H
#define SESSD_FUZZ_AUTH_H

/*
 * The sealed targets' shared setup: the client's fixed ephemeral key (so that a corpus can
 * hold records sealed in advance), and the server's --auth-file auth made from a 0600 file,
 * as sessd loads it.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "fuzz_input.h"
#include "seal.h"

static const uint8_t fuzz_client_secret_key[SEAL_KEY_BYTES] = {
    0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66, 0x45,
    0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a};

/*
 * The psk of ${secret} into ${psk}, and the server's auth of it, read from a file written
 * in a directory made from ${dir_template} (mkdtemp's) and removed at once. Free with
 * auth_free (the targets keep it for the process's life).
 */
static inline struct auth *fuzz_server_auth(const char *secret, char *dir_template,
                                            uint8_t psk[SEAL_PSK_BYTES])
{
	char path[256];
	struct auth *a;
	FILE *file;

	seal_psk(psk, secret, strlen(secret));
	check(mkdtemp(dir_template) != NULL);
	snprintf(path, sizeof path, "%s/secret", dir_template);
	file = fopen(path, "w");
	check(file != NULL);
	check(fputs(secret, file) >= 0);
	check(fclose(file) == 0);
	check(chmod(path, 0600) == 0);
	a = auth_new(path);
	check(a != NULL);
	unlink(path);
	rmdir(dir_template);
	return a;
}

#endif
