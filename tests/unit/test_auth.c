/*
 * auth: loading --auth-file's secret (what counts as the secret, what is refused) and checking
 * what a client presents, with real files; and replays, the client keys of the sealed HELLOs
 * answered, by which one replayed is told (daemon/replays.h).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "auth.h"
#include "leakcheck.h"
#include "replays.h"
#include "seal.h"

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
	return auth_check(a, presented, strlen(presented), 0);
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
	cr_expect(auth_check(a, "\0\1\2\3\4\5\6\7\10\11\12\13\14\15\16\17 ", 17, 0));
	cr_expect_not(auth_check(a, "\0\1\2\3\4\5\6\7\10\11\12\13\14\15\16\17", 16, 0));
	auth_free(a);

	/* A "\r" with no "\n" after it is the secret's own last byte (a binary secret ends so
	 * one time in 256): PROTOCOL.md strips only "\n" or "\r\n". */
	write_secret("binary secret bytes\r", 20, 0600);
	a = auth_new(path);
	cr_assert_not_null(a);
	cr_expect(auth_check(a, "binary secret bytes\r", 20, 0));
	cr_expect_not(check(a, "binary secret bytes"));
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
	cr_expect(auth_check(a, longest, AUTH_MAX_SECRET, 0));
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

/*
 * A reload (SIGHUP) takes a new secret at once and lets the previous one in until its grace
 * ends; a file that cannot be used changes nothing; a secret replaced twice is gone.
 */
LEAK_CHECKED_TEST(auth, a_reload_takes_the_new_secret_and_lets_the_old_one_in_for_a_while)
{
	struct auth *a;

	write_secret("the first secret, for a while\n", 30, 0600);
	a = auth_new(path);
	cr_assert_not_null(a);
	write_secret("the second secret, from now on\n", 31, 0600);
	cr_assert_eq(auth_reload(a, 1000, 5000), 0);
	cr_expect(auth_check(a, "the second secret, from now on", 30, 1000));
	cr_expect(auth_check(a, "the first secret, for a while", 29, 5999), "within its grace");
	cr_expect_not(auth_check(a, "the first secret, for a while", 29, 6000), "after it");
	cr_expect(auth_check(a, "the second secret, from now on", 30, 6000));

	/* Unusable files keep everything as it was. */
	write_secret("short\n", 6, 0600);
	cr_expect_eq(auth_reload(a, 2000, 5000), -1);
	write_secret("a third secret that others can read\n", 36, 0644);
	cr_expect_eq(auth_reload(a, 2000, 5000), -1);
	cr_expect(auth_check(a, "the second secret, from now on", 30, 2000));
	cr_expect(auth_check(a, "the first secret, for a while", 29, 2000));

	/* The same secret again: nothing moves. */
	write_secret("the second secret, from now on\n", 31, 0600);
	cr_expect_eq(auth_reload(a, 3000, 5000), 0);
	cr_expect(auth_check(a, "the first secret, for a while", 29, 3000));

	/* A third: the second gets the grace, the first is forgotten. */
	write_secret("the third secret, and last one\n", 31, 0600);
	cr_assert_eq(auth_reload(a, 4000, 5000), 0);
	cr_expect(auth_check(a, "the third secret, and last one", 30, 4000));
	cr_expect(auth_check(a, "the second secret, from now on", 30, 8999));
	cr_expect_not(auth_check(a, "the first secret, for a while", 29, 4000));

	/* No grace: the replaced secret is refused at once. */
	write_secret("the fourth secret, straight in\n", 31, 0600);
	cr_assert_eq(auth_reload(a, 5000, 0), 0);
	cr_expect_not(auth_check(a, "the third secret, and last one", 30, 5000));
	cr_expect_not(auth_check(a, "the second secret, from now on", 30, 5000));
	cr_expect(auth_check(a, "the fourth secret, straight in", 30, 5000));
	auth_free(a);
}

/* A sealed client holding the previous secret gets in during its grace, and not after. */
LEAK_CHECKED_TEST(auth, a_sealed_client_with_the_previous_secret_during_its_grace)
{
	uint8_t old_psk[SEAL_PSK_BYTES], c_pk[32], c_proof[32], s_pk[32], s_proof[32];
	struct seal *client, *server;
	uint64_t generation = 0;
	struct auth *a;

	write_secret("the old secret, still in use\n", 29, 0600);
	a = auth_new(path);
	cr_assert_not_null(a);
	seal_psk(old_psk, "the old secret, still in use", 28);
	client = seal_client_new(old_psk, c_pk, c_proof);
	cr_assert_not_null(client);
	server = auth_seal(a, 0, c_pk, c_proof, s_pk, s_proof, &generation);
	cr_assert_not_null(server);
	cr_expect_eq(generation, 1);
	seal_free(server);
	write_secret("the new secret, handed around\n", 30, 0600);
	cr_assert_eq(auth_reload(a, 1000, 60000), 0);
	server = auth_seal(a, 60999, c_pk, c_proof, s_pk, s_proof, &generation);
	cr_assert_not_null(server, "within the grace");
	cr_expect_eq(generation, 1, "the previous secret's generation");
	cr_expect_eq(seal_client_finish(client, s_pk, s_proof), 0);
	seal_free(server);
	errno = 0;
	cr_expect_null(auth_seal(a, 61000, c_pk, c_proof, s_pk, s_proof, &generation), "after it");
	cr_expect_eq(errno, EACCES);
	seal_free(client);
	auth_free(a);
}

/*
 * Each secret taken has its generation, which the checks return, so that connections can be
 * closed when theirs is retired: at the grace's end (auth_expire, which also wipes it), when
 * a newer reload forgets it, or at once with no grace.
 */
LEAK_CHECKED_TEST(auth, generations_say_which_secret_a_client_showed_and_when_it_retires)
{
	static const char one[] = "generation one, at the start";
	static const char two[] = "generation two, after a reload";
	static const char three[] = "generation three, no grace";
	uint8_t psk[SEAL_PSK_BYTES], c_pk[32], c_proof[32], s_pk[32], s_proof[32];
	uint64_t generation = 0;
	struct seal *client, *server;
	struct auth *a;

	write_secret(one, sizeof(one) - 1, 0600);
	a = auth_new(path);
	cr_assert_not_null(a);
	cr_expect_eq(auth_check(a, one, sizeof(one) - 1, 0), 1);
	cr_expect_eq(auth_check(a, two, sizeof(two) - 1, 0), 0);
	cr_expect(auth_holds_generation(a, 1));
	cr_expect_not(auth_holds_generation(a, 2));
	cr_expect_not(auth_expire(a, UINT64_MAX), "nothing to retire");

	write_secret(two, sizeof(two) - 1, 0600);
	cr_assert_eq(auth_reload(a, 1000, 5000), 0);
	cr_expect_eq(auth_check(a, two, sizeof(two) - 1, 1000), 2);
	cr_expect_eq(auth_check(a, one, sizeof(one) - 1, 1000), 1, "the previous one, in grace");
	cr_expect(auth_holds_generation(a, 1), "kept for its grace");
	cr_expect(auth_holds_generation(a, 2));
	cr_expect_not(auth_expire(a, 5999), "its grace lasts");
	cr_expect(auth_holds_generation(a, 1));

	/* The same secret again: the generation does not move. */
	cr_assert_eq(auth_reload(a, 2000, 5000), 0);
	cr_expect_eq(auth_check(a, two, sizeof(two) - 1, 2000), 2);
	cr_expect(auth_holds_generation(a, 1));

	cr_expect(auth_expire(a, 6000), "the grace is over: retired");
	cr_expect_not(auth_holds_generation(a, 1));
	cr_expect(auth_holds_generation(a, 2));
	cr_expect_eq(auth_check(a, one, sizeof(one) - 1, 1000), 0,
	             "wiped: refused even at a time within the grace");
	cr_expect_not(auth_expire(a, 7000), "once only");

	/* No grace: retired at the reload itself. A sealed client shows its generation too. */
	write_secret(three, sizeof(three) - 1, 0600);
	cr_assert_eq(auth_reload(a, 8000, 0), 0);
	cr_expect_not(auth_holds_generation(a, 2));
	cr_expect(auth_holds_generation(a, 3));
	cr_expect_eq(auth_check(a, two, sizeof(two) - 1, 8000), 0);
	seal_psk(psk, three, sizeof(three) - 1);
	client = seal_client_new(psk, c_pk, c_proof);
	cr_assert_not_null(client);
	server = auth_seal(a, 8000, c_pk, c_proof, s_pk, s_proof, &generation);
	cr_assert_not_null(server);
	cr_expect_eq(generation, 3);
	seal_free(server);
	seal_free(client);

	/* A reload in a grace forgets the secret that had it. */
	write_secret(one, sizeof(one) - 1, 0600);
	cr_assert_eq(auth_reload(a, 9000, 5000), 0);
	cr_expect(auth_holds_generation(a, 3));
	cr_expect_eq(auth_check(a, one, sizeof(one) - 1, 9000), 4);
	write_secret(two, sizeof(two) - 1, 0600);
	cr_assert_eq(auth_reload(a, 9500, 5000), 0);
	cr_expect_not(auth_holds_generation(a, 3), "generation three is forgotten");
	cr_expect(auth_holds_generation(a, 4));
	cr_expect_eq(auth_check(a, two, sizeof(two) - 1, 9500), 5,
	             "a secret forgotten and back is a new one");
	cr_expect_eq(auth_check(a, three, sizeof(three) - 1, 9500), 0);

	/* The previous secret put back (a rollback, or SIGHUPs alternating two files) keeps its
	 * generation, so the connections made with it stay open. */
	write_secret(one, sizeof(one) - 1, 0600);
	cr_assert_eq(auth_reload(a, 9700, 5000), 0);
	cr_expect_eq(auth_check(a, one, sizeof(one) - 1, 9700), 4);
	cr_expect_eq(auth_check(a, two, sizeof(two) - 1, 9700), 5, "now the previous one");
	cr_expect(auth_holds_generation(a, 4));
	cr_expect(auth_holds_generation(a, 5));
	write_secret(three, sizeof(three) - 1, 0600);
	cr_assert_eq(auth_reload(a, 9800, 5000), 0);
	cr_expect_eq(auth_check(a, three, sizeof(three) - 1, 9800), 6);
	cr_expect(auth_holds_generation(a, 4));
	cr_expect_not(auth_holds_generation(a, 5));
	auth_free(a);
}

/* auth_clock_ms is the monotonic clock, which a change of the wall clock does not move. */
LEAK_CHECKED_TEST(auth, the_clock_is_monotonic)
{
	struct timespec ts;
	uint64_t before, now, after;

	before = auth_clock_ms();
	cr_assert_eq(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	after = auth_clock_ms();
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	cr_expect_leq(before, now);
	cr_expect_leq(now, after);
}

/*
 * The apps' and the admin's secrets (--auth-file, --admin-auth-file) must differ:
 * auth_same_secret tells at startup, and auth_keep_apart keeps a reload from making them equal.
 */
LEAK_CHECKED_TEST(auth, two_secrets_are_told_apart_and_kept_so)
{
	char other_path[160];
	struct auth *app, *admin;
	FILE *f;

	snprintf(other_path, sizeof(other_path), "%s/admin", dir);
	f = fopen(other_path, "w");
	cr_assert_not_null(f);
	cr_assert_gt(fputs("the admin secret, not the apps'\n", f), 0);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(other_path, 0600), 0);
	write_secret("the apps' secret, for web apps\n", 31, 0600);
	app = auth_new(path);
	admin = auth_new(other_path);
	cr_assert_not_null(app);
	cr_assert_not_null(admin);
	cr_expect_not(auth_same_secret(app, admin));
	cr_expect(auth_same_secret(app, app));
	auth_keep_apart(app, admin);
	auth_keep_apart(admin, app);

	/* The apps' file given the admin secret: refused, the apps' secret stays. */
	write_secret("the admin secret, not the apps'\n", 32, 0600);
	cr_expect_eq(auth_reload(app, 0, 1000), -1);
	cr_expect(check(app, "the apps' secret, for web apps"));
	cr_expect_not(check(app, "the admin secret, not the apps'"));
	cr_expect_not(auth_same_secret(app, admin));
	/* Another secret is taken as ever. */
	write_secret("the apps' next secret, rotated\n", 31, 0600);
	cr_expect_eq(auth_reload(app, 0, 1000), 0);
	cr_expect(check(app, "the apps' next secret, rotated"));
	auth_free(admin);
	auth_free(app);
	unlink(other_path);
}

/* ${n} random client keys into ${keys}. */
static void random_keys(uint8_t (*keys)[REPLAYS_KEY_BYTES], size_t n)
{
	randombytes_buf(keys, n * REPLAYS_KEY_BYTES);
}

/* Note ${n} random keys in ${r}, none of them known; returns how many were taken for known. */
static size_t note_fresh(struct replays *r, size_t n)
{
	uint8_t key[REPLAYS_KEY_BYTES];
	size_t known = 0;

	for (size_t i = 0; i < n; i++) {
		randombytes_buf(key, sizeof(key));
		known += replays_note(r, key);
	}
	return known;
}

/*
 * A key answered is known when it comes again, however often, and one replayed on stays known
 * however many keys come between; a key never noted is taken for known rarely: within 0.5% or
 * so at the worst (both filters full), and 1.5% is a bound a sound filter passes with room
 * (a filter too small, or one never emptied, fails it: 10,000 of 40,000 keys noted without a
 * switch would leave a 2^17-bit filter 70% set, some 25% false positives).
 */
LEAK_CHECKED_TEST(auth, replays_tell_a_key_answered_before)
{
	enum { KEYS = 64, PROBES = 10000 };
	uint8_t keys[KEYS][REPLAYS_KEY_BYTES];
	struct replays *r = replays_new();
	size_t known;

	cr_assert_not_null(r);
	random_keys(keys, KEYS);
	for (size_t i = 0; i < KEYS; i++)
		cr_assert(!replays_note(r, keys[i]), "key %zu, never noted: unknown", i);
	for (size_t round = 0; round < 3; round++) {
		for (size_t i = 0; i < KEYS; i++)
			cr_assert(replays_note(r, keys[i]), "key %zu, round %zu: known", i, round);
	}
	/* Replayed on every few thousand keys, through six switches of the filters. */
	for (size_t round = 0; round < 12; round++) {
		(void)note_fresh(r, REPLAYS_GENERATION_KEYS / 2);
		for (size_t i = 0; i < KEYS; i++)
			cr_assert(replays_note(r, keys[i]), "key %zu still known after %zu keys", i,
			          (round + 1) * (REPLAYS_GENERATION_KEYS / 2));
	}
	/* Both filters about full: fresh keys are rarely taken for known. */
	(void)note_fresh(r, 2 * REPLAYS_GENERATION_KEYS - 1);
	known = note_fresh(r, PROBES);
	cr_expect_leq(known, PROBES * 15 / 1000, "%zu of %d fresh keys taken for known", known,
	              PROBES);
	replays_free(r);
	replays_free(NULL);
}

/*
 * The filters' space is fixed: a key not seen again for two switches is forgotten, so that a
 * flood of honest HELLOs leaves the false positives where they were. At least the last
 * REPLAYS_GENERATION_KEYS keys are remembered.
 */
LEAK_CHECKED_TEST(auth, replays_forget_keys_two_switches_old)
{
	enum { KEYS = 64 };
	uint8_t keys[KEYS][REPLAYS_KEY_BYTES];
	struct replays *r = replays_new();
	size_t known = 0;

	cr_assert_not_null(r);
	random_keys(keys, KEYS);
	for (size_t i = 0; i < KEYS; i++)
		(void)replays_note(r, keys[i]);
	/* Remembered for the next REPLAYS_GENERATION_KEYS keys at least. */
	(void)note_fresh(r, REPLAYS_GENERATION_KEYS - KEYS);
	for (size_t i = 0; i < KEYS; i++)
		cr_assert(replays_note(r, keys[i]), "key %zu forgotten too soon", i);
	/* Two whole filters later, forgotten but for a chance false positive or two. */
	(void)note_fresh(r, 2 * REPLAYS_GENERATION_KEYS + 1);
	for (size_t i = 0; i < KEYS; i++)
		known += replays_note(r, keys[i]);
	cr_expect_leq(known, 4, "%zu of %d keys two switches old still known", known, KEYS);
	replays_free(r);
}

/*
 * What a stock of recorded HELLOs buys a replayer (PROTOCOL.md, "Replayed HELLOs"). The filters
 * switch by count, and each replay of a key forgotten is noted as a new key: replayed in turn,
 * a stock of 2 * REPLAYS_GENERATION_KEYS + 1 pushes each of its own keys out before that key's
 * turn comes again, so none is known (but by chance), round after round, for as long as the
 * replayer goes on. A stock of REPLAYS_GENERATION_KEYS is known from its second round on. So
 * 16,385 recordings hold slots without end; PROTOCOL.md said a fresh recording was needed for
 * each slot every half second (48,000 for 40 slots and 10 minutes). A filter that switched by
 * time, or remembered more keys, would fail the second half of this test: the figure must then
 * be stated again.
 */
LEAK_CHECKED_TEST(auth, replays_forget_a_stock_replayed_in_turn)
{
	enum { ROUNDS = 3 };
	size_t stock = 2 * REPLAYS_GENERATION_KEYS + 1, known = 0;
	uint8_t(*keys)[REPLAYS_KEY_BYTES] = malloc(stock * REPLAYS_KEY_BYTES);
	struct replays *r = replays_new();

	cr_assert_not_null(keys);
	cr_assert_not_null(r);
	random_keys(keys, stock);
	/* REPLAYS_GENERATION_KEYS in turn: each known from the second round on. */
	for (size_t round = 0; round < ROUNDS; round++) {
		for (size_t i = 0; i < REPLAYS_GENERATION_KEYS; i++) {
			bool seen = replays_note(r, keys[i]);

			cr_assert(round == 0 || seen,
			          "key %zu of a small stock unknown in round %zu", i, round);
		}
	}
	replays_free(r);
	r = replays_new();
	cr_assert_not_null(r);
	/* One more than twice as many: none known after the first round, but by chance. */
	for (size_t i = 0; i < stock; i++)
		(void)replays_note(r, keys[i]);
	for (size_t round = 1; round < ROUNDS; round++)
		for (size_t i = 0; i < stock; i++)
			known += replays_note(r, keys[i]);
	cr_expect_leq(known, (ROUNDS - 1) * stock * 15 / 1000,
	              "%zu of %zu replays of a stock of %zu were known", known,
	              (ROUNDS - 1) * stock, stock);
	replays_free(r);
	free(keys);
}

/*
 * The bits a key lands on are drawn per start of sessd (replays_new's key): two filters given the
 * same keys take different fresh keys for known, so which keys a filter will take for known
 * cannot be found without its key. Unkeyed, both would err on the very same keys.
 */
LEAK_CHECKED_TEST(auth, replays_are_keyed_per_start)
{
	enum { PROBES = 20000 };
	struct replays *a = replays_new(), *b = replays_new();
	uint8_t key[REPLAYS_KEY_BYTES];
	size_t in_a = 0, in_both = 0;
	bool known_a, known_b;

	cr_assert_not_null(a);
	cr_assert_not_null(b);
	/* The same keys in both, filling both filters of each. */
	for (size_t i = 0; i < 2 * REPLAYS_GENERATION_KEYS - 1; i++) {
		randombytes_buf(key, sizeof(key));
		(void)replays_note(a, key);
		(void)replays_note(b, key);
	}
	for (size_t i = 0; i < PROBES; i++) {
		randombytes_buf(key, sizeof(key));
		known_a = replays_note(a, key);
		known_b = replays_note(b, key);
		in_a += known_a;
		in_both += known_a && known_b;
	}
	cr_assert_geq(in_a, 10, "only %zu false positives of %d: the test shows nothing", in_a,
	              PROBES);
	cr_expect_leq(in_both, in_a / 4,
	              "%zu of the %zu keys one filter took for known, the other did too", in_both,
	              in_a);
	replays_free(a);
	replays_free(b);
}
