/*
 * auth: loading --auth-file's secret (what counts as the secret, what is refused) and checking
 * what a client presents, with real files.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "auth.h"
#include "leakcheck.h"

static char dir[64], path[128];

static void setup(void)
{
	cr_assert(sodium_init() >= 0);
	strcpy(dir, "/tmp/sessd-auth-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

/* Write ${len} bytes of ${content} to the secret file with ${mode}. */
static void write_secret(const void *content, size_t len, mode_t mode)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(content, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

static bool check(const struct auth *a, const char *presented)
{
	return auth_check(a, presented, strlen(presented));
}

TestSuite(auth, .init = setup, .fini = teardown);

LEAK_CHECKED_TEST(auth, the_secret_is_the_file_less_one_newline)
{
	struct auth *a;

	write_secret("correct horse battery staple\n", 29, 0600);
	a = auth_new(path);
	cr_assert_not_null(a);
	cr_expect(check(a, "correct horse battery staple"));
	cr_expect_not(check(a, "correct horse battery staple\n"));
	cr_expect_not(check(a, "correct horse battery stapl"));
	cr_expect_not(check(a, "correct horse battery staple!"));
	cr_expect_not(check(a, ""));
	auth_free(a);

	write_secret("correct horse battery staple\r\n", 30, 0640);
	a = auth_new(path);
	cr_assert_not_null(a);
	cr_expect(check(a, "correct horse battery staple"));
	auth_free(a);

	/* Without a newline the whole file is the secret, binary bytes included. */
	write_secret("\0\1\2\3\4\5\6\7\10\11\12\13\14\15\16\17 ", 17, 0400);
	a = auth_new(path);
	cr_assert_not_null(a);
	cr_expect(auth_check(a, "\0\1\2\3\4\5\6\7\10\11\12\13\14\15\16\17 ", 17));
	cr_expect_not(auth_check(a, "\0\1\2\3\4\5\6\7\10\11\12\13\14\15\16\17", 16));
	auth_free(a);
}

LEAK_CHECKED_TEST(auth, short_long_exposed_or_missing_files_are_refused)
{
	char *longest = malloc(AUTH_MAX_SECRET + 2);

	cr_assert_not_null(longest);
	write_secret("fifteen bytes!!\n", 16, 0600);
	cr_expect_null(auth_new(path), "15 bytes are too few");
	write_secret("sixteen bytes!!!\n", 17, 0600);
	struct auth *a = auth_new(path);
	cr_expect_not_null(a, "16 bytes are enough");
	auth_free(a);

	memset(longest, 'k', AUTH_MAX_SECRET + 1);
	longest[AUTH_MAX_SECRET] = '\n';
	write_secret(longest, AUTH_MAX_SECRET + 1, 0600);
	a = auth_new(path);
	cr_expect_not_null(a, "1024 bytes and a newline are allowed");
	cr_expect(auth_check(a, longest, AUTH_MAX_SECRET));
	auth_free(a);
	longest[AUTH_MAX_SECRET] = 'k';
	write_secret(longest, AUTH_MAX_SECRET + 1, 0600);
	cr_expect_null(auth_new(path), "1025 bytes are too many");
	memset(longest, 'k', AUTH_MAX_SECRET + 2);
	write_secret(longest, AUTH_MAX_SECRET + 2, 0600);
	cr_expect_null(auth_new(path), "a long file is not cut to size");
	free(longest);

	write_secret("a secret that others can read\n", 30, 0604);
	cr_expect_null(auth_new(path), "world-readable");
	write_secret("a secret that others can write\n", 31, 0602);
	cr_expect_null(auth_new(path), "world-writable");
	cr_expect_null(auth_new(dir), "a directory");
	unlink(path);
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_expect_null(auth_new(path), "a FIFO, refused rather than waited on");
	unlink(path);
	cr_expect_null(auth_new(path), "missing");
}
