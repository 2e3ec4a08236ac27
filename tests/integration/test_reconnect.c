/*
 * libsessd's connection against the real daemon where it must reconnect rather than go on:
 * a TCP connect that reached itself (nothing listens on the port, which the kernel chose as
 * the local one too), and a client inherited across fork(), used by the child and the parent
 * at once, plain and sealed.
 */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "leakcheck.h"
#include "sessd.h"

#define TTL_MS      60000u
#define AUTH_SECRET "reconnect-test-secret-0123456789"
/* Set and get of each process while the other does the same. */
#define FORK_ROUNDS 300

static struct harness_daemon daemon_;
static char auth_dir[64], auth_path[128];

/*
 * While nonzero, a connect() to 127.0.0.1 at this port (network order) first binds the socket
 * to that same address and port, so that the connection reaches itself: what the kernel does
 * now and then on its own when it picks the port as the local one (a port of the ephemeral
 * range nothing listens on), made certain. self_binds counts the sockets so bound.
 */
static in_port_t self_connect_port;
static int self_binds;

/*
 * connect(), interposed for libsessd: the test executable's definition comes before libc's
 * in the lookup of libsessd.so's symbols.
 */
__attribute__((used)) int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	static int (*real_connect)(int, __CONST_SOCKADDR_ARG, socklen_t);
	int reuse = 1, no_reuse = 0;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)addr.__sockaddr__;

	if (real_connect == NULL) {
		void *sym = dlsym(RTLD_NEXT, "connect");

		if (sym == NULL)
			abort();
		/* A data pointer to a function pointer: memcpy, as ISO C has no cast for it. */
		memcpy(&real_connect, &sym, sizeof(sym));
	}
	/* The test holds the port (harness_hold_port), so the bind sets SO_REUSEADDR as the holder
	 * has it, and clears it again: a socket given the port by the kernel has none, and a
	 * TIME_WAIT it left would keep sessd from binding there (what the test checks). */
	if (self_connect_port != 0 && sin->sin_family == AF_INET && len >= sizeof(*sin) &&
	    sin->sin_port == self_connect_port && sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse)) == 0 &&
	    bind(fd, addr.__sockaddr__, len) == 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &no_reuse, sizeof(no_reuse)) == 0)
		self_binds++;
	return real_connect(fd, addr, len);
}

/*
 * A loopback port nobody listens on, from the ephemeral range (the kernel's choice), held
 * (harness_hold_port) in *${fd} until the caller closes it: one merely found free could be
 * taken by another test stream's connection or listener before the test uses it.
 */
static in_port_t held_loopback_port(int *fd)
{
	int port = harness_hold_port(fd);

	cr_assert_neq(port, -1, "no loopback port to hold");
	return htons((uint16_t)port);
}

static void stop_daemon(void)
{
	if (daemon_.pid > 0)
		cr_expect_eq(harness_stop(&daemon_), 0, "the daemon did not stop cleanly");
	daemon_.pid = 0;
}

TestSuite(self_connect, .fini = stop_daemon, .timeout = 60);

/*
 * A connection that reaches itself is refused like a port nobody listens on, never taken for
 * a server (our own HELLO read back as its reply: SESSD_ERR_PROTOCOL), and leaves no
 * TIME_WAIT behind: the daemon then starts on that port at once. Deterministic: the
 * interposed connect() binds the client's socket to the port it connects to.
 */
LEAK_CHECKED_TEST(self_connect, is_refused_and_leaves_the_port_free)
{
	struct sessd_options opts = {.timeout_ms = 2000};
	char url[64], port_arg[64], errbuf[SESSD_ERRMSG_SIZE];
	const char *args[] = {"--listen", port_arg, NULL};
	struct sessd_client *c = NULL;
	int rc, err, held;
	in_port_t port = held_loopback_port(&held);

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ntohs(port));
	snprintf(port_arg, sizeof(port_arg), "%s", url);
	self_connect_port = port;
	rc = sessd_connect_errbuf(url, &opts, &c, errbuf, sizeof(errbuf));
	err = errno;
	self_connect_port = 0;
	cr_assert_geq(self_binds, 1, "the client's socket was not bound to its own port");
	cr_assert_eq(rc, SESSD_ERR_CONNECT, "%s: %s", sessd_strerror(rc), errbuf);
	cr_assert_null(c);
	cr_assert_eq(err, ECONNREFUSED, "errno %s", strerror(err));
	cr_assert(strstr(errbuf, "Connection refused") != NULL, "%s", errbuf);
	cr_assert(strstr(errbuf, "reached itself") != NULL, "%s", errbuf);

	/* A socket in TIME_WAIT without SO_REUSEADDR would keep sessd from binding. */
	cr_assert_eq(harness_start(&daemon_, args), 0, "the daemon could not take port %u",
	             ntohs(port));
	rc = sessd_connect_errbuf(url, &opts, &c, errbuf, sizeof(errbuf));
	cr_assert_eq(rc, SESSD_OK, "%s: %s", sessd_strerror(rc), errbuf);
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_close(c);
	close(held);
}

/* A port nobody listens on is refused as it always was, without the words of a self-connect. */
LEAK_CHECKED_TEST(self_connect, a_plain_refusal_says_only_that)
{
	struct sessd_options opts = {.timeout_ms = 2000};
	char url[64], errbuf[SESSD_ERRMSG_SIZE];
	struct sessd_client *c = NULL;
	int rc, held;

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ntohs(held_loopback_port(&held)));
	rc = sessd_connect_errbuf(url, &opts, &c, errbuf, sizeof(errbuf));
	cr_assert_eq(rc, SESSD_ERR_CONNECT, "%s: %s", sessd_strerror(rc), errbuf);
	cr_assert_eq(errno, ECONNREFUSED, "errno %s", strerror(errno));
	cr_assert(strstr(errbuf, "reached itself") == NULL, "%s", errbuf);
	close(held);
}

/* --- A client inherited across fork(). --- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The daemon with --auth-file, so that clients can connect sealed or plain. */
static void start_auth_daemon(void)
{
	const char *const args[] = {"--auth-file", auth_path, NULL};

	snprintf(auth_dir, sizeof(auth_dir), "/tmp/sessd-reconnect-XXXXXX");
	cr_assert_not_null(mkdtemp(auth_dir));
	snprintf(auth_path, sizeof(auth_path), "%s/secret", auth_dir);
	harness_write_secret(auth_path, AUTH_SECRET, 0600);
	cr_assert_eq(harness_start(&daemon_, args), 0, "the daemon did not start");
}

static void stop_auth_daemon(void)
{
	stop_daemon();
	nftw(auth_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(fork, .init = start_auth_daemon, .fini = stop_auth_daemon, .timeout = 120);

static struct sessd_client *connect_with_secret(const char *url, bool plain)
{
	struct sessd_options opts = {.timeout_ms = 10000,
	                             .client_name = "fork-test",
	                             .auth = AUTH_SECRET,
	                             .auth_len = strlen(AUTH_SECRET),
	                             .plain_auth = plain};
	struct sessd_client *c = NULL;
	int rc;

	rc = sessd_connect(url, &opts, &c);
	cr_assert_eq(rc, SESSD_OK, "connect %s: %s", url, sessd_strerror(rc));
	return c;
}

static uint64_t connections_total(struct sessd_client *c)
{
	struct sessd_stats *s = NULL;
	uint64_t total = UINT64_MAX;
	int rc;

	rc = sessd_stats(c, 1, &s);
	cr_assert_eq(rc, SESSD_OK, "stats: %s", sessd_errmsg(c));
	for (size_t i = 0; i < s->count; i++)
		if (strcmp(s->items[i].name, "connections_total") == 0)
			total = s->items[i].value;
	sessd_stats_free(s);
	cr_assert_neq(total, UINT64_MAX, "no connections_total in STATS");
	return total;
}

/*
 * FORK_ROUNDS sets and gets of ${who}'s own sessions on ${c}. Returns 0, or -1 after saying
 * on stderr what failed. It asserts nothing, so the child can use it.
 */
static int set_get_rounds(struct sessd_client *c, const char *who)
{
	char id[64], data[64];
	void *got;
	size_t len;
	int i, rc;

	for (i = 0; i < FORK_ROUNDS; i++) {
		snprintf(id, sizeof(id), "%s-%d", who, i);
		snprintf(data, sizeof(data), "data of %s round %d", who, i);
		rc = sessd_set(c, id, strlen(id), data, strlen(data), TTL_MS);
		if (rc != SESSD_OK)
			goto fail;
		got = NULL;
		rc = sessd_get(c, id, strlen(id), &got, &len);
		if (rc != SESSD_OK)
			goto fail;
		rc = len == strlen(data) && memcmp(got, data, len) == 0;
		free(got);
		if (!rc) {
			fprintf(stderr, "%s round %d: GET returned other data\n", who, i);
			return -1;
		}
	}
	return 0;

fail:
	fprintf(stderr, "%s round %d: %s: %s\n", who, i, sessd_strerror(rc), sessd_errmsg(c));
	return -1;
}

/*
 * A client connected before fork(), then used by the child and the parent at the same time:
 * each must get its own answers (the child reconnects; the parent keeps its connection).
 * Shared, the two would interleave frames on one stream, and sealed they would seal different
 * records under one key and record number: the daemon would find a record that does not
 * authenticate and close the connection (a reconnection, seen in connections_total).
 */
static void fork_and_both_go_on(const char *url, bool plain)
{
	struct sessd_client *c = connect_with_secret(url, plain);
	int go[2], status;
	uint64_t before;
	pid_t child;
	void *got = NULL;
	size_t len;
	char byte = 0;

	cr_assert_eq(sessd_set(c, "before-fork", 11, "x", 1, TTL_MS), SESSD_OK);
	before = connections_total(c);
	cr_assert_eq(pipe(go), 0);
	fflush(NULL);
	child = fork();
	cr_assert_neq(child, -1);
	if (child == 0) {
		close(go[1]);
		/* Both start together, so that their requests overlap. */
		if (read(go[0], &byte, 1) != 1)
			_exit(2);
		status = set_get_rounds(c, "child");
		sessd_close(c);
		_exit(status == 0 ? 0 : 1);
	}
	close(go[0]);
	cr_assert_eq(write(go[1], &byte, 1), 1);
	close(go[1]);
	status = set_get_rounds(c, "parent");
	cr_expect_eq(status, 0, "the parent's calls failed (see above)");
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child's calls failed");

	/* The child's sessions are there, and the parent never had to reconnect: one new
	 * connection, the child's. */
	cr_assert_eq(sessd_get(c, "child-0", 7, &got, &len), SESSD_OK, "%s", sessd_errmsg(c));
	free(got);
	cr_assert_eq(connections_total(c), before + 1, "the parent's connection broke");
	sessd_close(c);
}

LEAK_CHECKED_TEST(fork, plain_over_tcp)
{
	fork_and_both_go_on(daemon_.tcp_url, true);
}

LEAK_CHECKED_TEST(fork, plain_over_unix)
{
	fork_and_both_go_on(daemon_.unix_url, true);
}

LEAK_CHECKED_TEST(fork, sealed_over_tcp)
{
	fork_and_both_go_on(daemon_.tcp_url, false);
}

LEAK_CHECKED_TEST(fork, sealed_over_unix)
{
	fork_and_both_go_on(daemon_.unix_url, false);
}

/*
 * A child that only closes the client it inherited (a worker that exits) must not end the
 * parent's connection: sessd_close there closes its copy of the socket, sending nothing.
 */
LEAK_CHECKED_TEST(fork, a_child_closing_the_client_leaves_the_parent_connected)
{
	struct sessd_client *c = connect_with_secret(daemon_.tcp_url, false);
	uint64_t before = connections_total(c);
	int status;
	pid_t child;

	fflush(NULL);
	child = fork();
	cr_assert_neq(child, -1);
	if (child == 0) {
		sessd_close(c);
		_exit(0);
	}
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(connections_total(c), before, "the parent had to reconnect");
	sessd_close(c);
}

/* The descriptor a client connected since ${before} holds: the one socket opened since. */
static int client_fd(const bool before[1024])
{
	struct stat st;
	int found = -1;

	for (int fd = 3; fd < 1024; fd++)
		if (!before[fd] && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
			cr_assert_eq(found, -1, "more than one new socket");
			found = fd;
		}
	cr_assert_neq(found, -1, "no new socket");
	return found;
}

/* Which descriptors are open now, in ${open_fds}. */
static void open_fds_now(bool open_fds[1024])
{
	for (int fd = 0; fd < 1024; fd++)
		open_fds[fd] = fcntl(fd, F_GETFD) != -1;
}

/*
 * A worker may put its own file at the number of the descriptor it inherited from libsessd
 * (a worker that closes what it inherited, then opens its log, say). The child's first call
 * reconnects, leaving the inherited connection to the parent: it must then not close that
 * number, which is the worker's file now, but only a socket that is still the one it opened.
 */
LEAK_CHECKED_TEST(fork, a_child_s_own_file_at_the_inherited_number_is_left_open)
{
	struct sessd_client *c;
	static bool before[1024];
	struct stat null_st;
	int sock_fd, status;
	pid_t child;

	open_fds_now(before);
	c = connect_with_secret(daemon_.unix_url, false);
	sock_fd = client_fd(before);
	cr_assert_eq(stat("/dev/null", &null_st), 0);
	fflush(NULL);
	child = fork();
	cr_assert_neq(child, -1);
	if (child == 0) {
		struct stat st;
		int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC), ok;

		/* The number the client holds is the worker's /dev/null now. */
		if (null_fd == -1 || dup2(null_fd, sock_fd) == -1)
			_exit(2);
		close(null_fd);
		ok = sessd_ping(c) == SESSD_OK;
		ok &= fstat(sock_fd, &st) == 0 && st.st_rdev == null_st.st_rdev;
		sessd_close(c);
		ok &= fstat(sock_fd, &st) == 0 && st.st_rdev == null_st.st_rdev;
		_exit(ok ? 0 : 1);
	}
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "the child's own file at the inherited number was closed (status %d)",
	          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_close(c);
}

/* --- What a call that got no answer may have done: sessd_outcome_unknown. --- */

TestSuite(outcome, .init = start_auth_daemon, .fini = stop_auth_daemon, .timeout = 120);

/* The most sessd_set sends here: far more than a Unix socket takes from a peer that reads
 * nothing (about 200 KiB), within sessd's default max_frame of 1 MiB. */
#define OUTCOME_BIG_BYTES (900u * 1024u)

/* A client of ${url}, sealed unless ${plain}, whose calls give up after 300 ms. */
static struct sessd_client *connect_quick(const char *url, bool plain)
{
	struct sessd_client *c = connect_with_secret(url, plain);

	cr_assert_eq(sessd_set_timeout(c, 300), SESSD_OK);
	return c;
}

/*
 * With the daemon frozen after each client's HELLO (SIGSTOP: a paused VM, a stalled host),
 * every call times out, and sessd_outcome_unknown tells a change that left whole (a flash
 * push, which sessd then carries out once it runs: a second push would queue it twice) from a
 * read (nothing to undo) and from a change it never received whole (a large SET cut short by
 * the socket: sessd drops it). Before there was no way to tell them apart: every one was
 * SESSD_ERR_TIMEOUT, "may or may not have been carried out".
 */
static void frozen_daemon_outcomes(const char *url, bool plain)
{
	struct sessd_client *reader = connect_quick(url, plain),
	                    *pusher = connect_quick(url, plain);
	struct sessd_client *setter = connect_quick(url, plain),
	                    *batcher = connect_quick(url, plain);
	struct sessd_client *check;
	struct sessd_flashes *f = NULL;
	struct sessd_batch *b = sessd_batch_new(batcher);
	char *big = malloc(OUTCOME_BIG_BYTES);
	void *data = NULL;
	size_t len;
	uint64_t ttl = 0;
	long t0;
	int rc;

	cr_assert_not_null(big);
	cr_assert_not_null(b);
	memset(big, 'x', OUTCOME_BIG_BYTES);
	cr_assert_eq(sessd_batch_get(b, "frozen-read", 11), 0);
	cr_assert_eq(sessd_batch_flash_push(b, "frozen-batch", 12, "info", "b", 1, TTL_MS), 1);
	cr_assert_eq(harness_sigstop(daemon_.pid), 0);

	rc = sessd_get(reader, "frozen-read", 11, &data, &len);
	cr_expect_eq(rc, SESSD_ERR_TIMEOUT, "get: %s", sessd_errmsg(reader));
	cr_expect_eq(sessd_outcome_unknown(reader), 0, "a read changes nothing");
	rc = sessd_set(setter, "frozen-big", 10, big, OUTCOME_BIG_BYTES, TTL_MS);
	cr_expect_eq(rc, SESSD_ERR_TIMEOUT, "set: %s", sessd_errmsg(setter));
	cr_expect_eq(sessd_outcome_unknown(setter), 0, "a SET cut short cannot be carried out");
	rc = sessd_flash_push(pusher, "frozen-push", 11, "info", "once", 4, TTL_MS, NULL);
	cr_expect_eq(rc, SESSD_ERR_TIMEOUT, "push: %s", sessd_errmsg(pusher));
	cr_expect_eq(sessd_outcome_unknown(pusher), 1, "a push that left whole may have landed");
	rc = sessd_batch_run(b);
	cr_expect_eq(rc, SESSD_ERR_TIMEOUT, "batch: %s", sessd_errmsg(batcher));
	cr_expect_eq(sessd_outcome_unknown(batcher), 1, "the batch's push left whole");
	/* The next call's own outcome: a read again, on a connection it must make anew. */
	rc = sessd_get(pusher, "frozen-read", 11, &data, &len);
	cr_expect_neq(rc, SESSD_OK);
	cr_expect_eq(sessd_outcome_unknown(pusher), 0, "the value is the last call's");

	cr_assert_eq(kill(daemon_.pid, SIGCONT), 0);
	check = connect_with_secret(url, plain);
	/* The frozen connections are read once sessd runs again: the push lands meanwhile (the
	 * deadline only bounds a hang: a loaded machine's sessd catches up late). */
	t0 = harness_mono_ms();
	while (sessd_ttl(check, "frozen-push", 11, &ttl) == SESSD_NOT_FOUND &&
	       harness_mono_ms() - t0 < 30000)
		usleep(10000);
	cr_assert_eq(sessd_flash_pop(check, "frozen-push", 11, NULL, &f), SESSD_OK,
	             "the push that timed out was carried out: %s", sessd_errmsg(check));
	cr_expect_eq(f->count, 1);
	sessd_flashes_free(f);
	cr_expect_eq(sessd_get(check, "frozen-big", 10, &data, &len), SESSD_NOT_FOUND,
	             "the SET cut short was not carried out");
	sessd_batch_free(b);
	sessd_close(reader);
	sessd_close(pusher);
	sessd_close(setter);
	sessd_close(batcher);
	sessd_close(check);
	free(big);
}

LEAK_CHECKED_TEST(outcome, of_calls_to_a_frozen_daemon_plain)
{
	frozen_daemon_outcomes(daemon_.unix_url, true);
}

LEAK_CHECKED_TEST(outcome, of_calls_to_a_frozen_daemon_sealed)
{
	frozen_daemon_outcomes(daemon_.unix_url, false);
}
