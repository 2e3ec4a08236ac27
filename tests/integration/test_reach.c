/*
 * Paths users reach that no other suite went down (found by line coverage, stop 45): the
 * systemd notification, an IPv6 listener, every change refused on a full disk, startup
 * refusals of a secret file and a ready file, and the warning about open files. Each test
 * runs the real daemon and checks what sessd(8) and PROTOCOL.md promise there.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codec.h"
#include "harness.h"
#include "leakcheck.h"
#include "sessd.h"

#define TTL_MS 600000u

static struct harness_daemon dmn;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static struct mp_bytes bytes(const char *s)
{
	return (struct mp_bytes){(const uint8_t *)s, strlen(s)};
}

/* Whether the daemon's log comes to hold ${text} within 10 s. */
static bool log_comes_to_hold(const char *text)
{
	for (long started = harness_mono_ms(); harness_mono_ms() - started < 10000;
	     harness_sleep_ms(20)) {
		char *log = harness_log(&dmn);
		bool found = strstr(log, text) != NULL;

		free(log);
		if (found)
			return true;
	}
	return false;
}

/*
 * A datagram socket bound at ${name} ("/path", or "@name" for the abstract namespace, as
 * systemd's NOTIFY_SOCKET gives it), with a receive timeout of 10 s.
 */
static int notify_listen(const char *name)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 10};
	size_t len = strlen(name);
	int fd;

	cr_assert_lt(len, sizeof(sun.sun_path));
	memcpy(sun.sun_path, name, len);
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sun,
	                  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)),
	             0, "bind %s: %s", name, strerror(errno));
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	return fd;
}

/* The next datagram on ${fd}, which must come within its timeout, as a string. */
static void notify_expect(int fd, const char *want)
{
	char got[256];
	ssize_t n = recv(fd, got, sizeof(got) - 1, 0);

	cr_assert_gt(n, 0, "no notification (%s) came: %s", want, strerror(errno));
	got[n] = '\0';
	cr_assert_str_eq(got, want);
}

/* sessd started with NOTIFY_SOCKET=${name}: READY=1 once it serves, STOPPING=1 at SIGTERM. */
static void notify_round(const char *name)
{
	int fd = notify_listen(name), conn, status;

	cr_assert_eq(setenv("NOTIFY_SOCKET", name, 1), 0);
	cr_assert_eq(harness_start(&dmn, NULL), 0);
	unsetenv("NOTIFY_SOCKET");
	notify_expect(fd, "READY=1");
	/* Ready means serving: a client is answered. */
	conn = harness_open_ready(dmn.unix_url, "test_reach");
	cr_assert_eq(harness_set_get(conn, NULL, "notified", "x", TTL_MS), 0);
	close(conn);
	cr_assert_eq(kill(dmn.pid, SIGTERM), 0);
	notify_expect(fd, "STOPPING=1");
	/* Its SIGTERM is sent: wait for the exit status of that one stop. */
	cr_assert_eq(waitpid(dmn.pid, &status, 0), dmn.pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
	dmn.pid = 0;
	harness_cleanup(&dmn);
	close(fd);
}

/*
 * sessd(8), SYSTEMD: "When $NOTIFY_SOCKET is set, sessd sends READY=1 once it listens and
 * STOPPING=1 when it begins to stop, so it can run as a Type=notify service" (the shipped
 * unit is one: without READY=1 systemd fails its start at the timeout). systemd gives a
 * path, or an abstract name with '@'.
 */
LEAK_CHECKED_TEST_OPTS(reach, systemd_is_told_ready_and_stopping, .timeout = 60)
{
	char dir[64] = "/tmp/sessd-notify-XXXXXX", path[96], abstract[64];

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify", dir);
	notify_round(path);
	snprintf(abstract, sizeof(abstract), "@sessd-test-notify-%ld", (long)getpid());
	notify_round(abstract);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A NOTIFY_SOCKET that is no socket path is said once, and sessd serves all the same. */
LEAK_CHECKED_TEST_OPTS(reach, a_notify_socket_that_is_no_path_is_said_and_ignored, .timeout = 60)
{
	int conn;

	cr_assert_eq(setenv("NOTIFY_SOCKET", "relative/notify", 1), 0);
	cr_assert_eq(harness_start(&dmn, NULL), 0);
	unsetenv("NOTIFY_SOCKET");
	conn = harness_open_ready(dmn.unix_url, "test_reach");
	cr_assert_eq(harness_set_get(conn, NULL, "s", "x", TTL_MS), 0);
	close(conn);
	cr_assert(log_comes_to_hold("NOTIFY_SOCKET is not a socket path; not notifying"));
	cr_assert_eq(harness_stop(&dmn), 0);
}

/*
 * Whether this machine has an IPv6 loopback to bind (a container may have IPv6 off); errno
 * says why not.
 */
static bool ipv6_loopback_here(void)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), saved;
	bool bound;

	if (fd == -1)
		return false;
	bound = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	saved = errno;
	close(fd);
	errno = saved;
	return bound;
}

/*
 * sessd(8), --listen: "tcp://[IPv6]:PORT ... An IPv6 address listens on IPv6 only"; and
 * --auth-plain's default (loopback) lets a plain secret in from loopback addresses: ::1 is
 * one. A client there is served plain and sealed, and a refused one is named by its address
 * in the log.
 */
LEAK_CHECKED_TEST_OPTS(reach, an_ipv6_loopback_listener_serves_and_counts_as_loopback,
                       .timeout = 60)
{
	char dir[64] = "/tmp/sessd-v6-XXXXXX", secret[96], wrong[96];
	const char *args[] = {"--listen", "tcp://[::1]:0", "--auth-file", secret, NULL};
	struct sessd_options o = {.auth_file = secret, .require_auth = true};
	struct sessd_client *c;
	char errbuf[SESSD_ERRMSG_SIZE];
	void *data;
	size_t len;

	if (!ipv6_loopback_here())
		cr_skip_test("no IPv6 loopback (::1) to bind on this machine: %s", strerror(errno));
	cr_assert_not_null(mkdtemp(dir));
	snprintf(secret, sizeof(secret), "%s/secret", dir);
	snprintf(wrong, sizeof(wrong), "%s/wrong", dir);
	harness_write_secret(secret, "0123456789abcdef0123456789abcdef", 0600);
	harness_write_secret(wrong, "not the secret, not the secret!!", 0600);
	cr_assert_eq(harness_start(&dmn, args), 0);
	cr_assert_eq(strncmp(dmn.tcp_url, "tcp://[::1]:", 12), 0, "listening on %s", dmn.tcp_url);

	for (int plain = 0; plain <= 1; plain++) {
		o.plain_auth = plain;
		cr_assert_eq(sessd_connect_errbuf(dmn.tcp_url, &o, &c, errbuf, sizeof(errbuf)),
		             SESSD_OK, "%s auth over %s: %s", plain ? "plain" : "sealed",
		             dmn.tcp_url, errbuf);
		cr_assert_eq(sessd_set(c, "v6", 2, "over ::1", 8, TTL_MS), SESSD_OK);
		cr_assert_eq(sessd_get(c, "v6", 2, &data, &len), SESSD_OK);
		cr_assert_eq(len, 8);
		cr_assert_eq(memcmp(data, "over ::1", 8), 0);
		free(data);
		sessd_close(c);
	}
	o.auth_file = wrong;
	o.plain_auth = true;
	cr_assert_eq(sessd_connect_errbuf(dmn.tcp_url, &o, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_AUTH, "%s", errbuf);
	cr_assert(log_comes_to_hold("secret: 1 from [::1] ("));
	cr_assert_eq(harness_stop(&dmn), 0);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Send ${req} over ${fd} and return the reply's status; its result (malloc'd) in *${result}
 * when ${result} is not NULL. */
static int call(int fd, struct codec_request *req, uint8_t **result, size_t *result_len)
{
	int status = harness_request(fd, req, result, result_len);

	cr_assert_geq(status, 0, "the connection failed");
	return status;
}

static int set_in(int fd, const char *id, const void *data, size_t len)
{
	struct codec_request req = {.op = CODEC_OP_SET, .ttl_ms = TTL_MS};

	req.id = bytes(id);
	req.data = (struct mp_bytes){data, len};
	return harness_request(fd, &req, NULL, NULL);
}

/*
 * PROTOCOL.md, IO_ERROR: while the disk takes no more (writable 0), every change is refused
 * with nothing changed. Before, only SET and FLASH_PUSH(_EXISTING) were checked there: here
 * TOUCH, TOUCH_IF, SET_IF, DESTROY (a logout), FLASH_POP and CLEAR are, and once there is
 * room each goes through. A file-size limit stands in for a full disk, as test_daemon's
 * full-disk test makes one.
 */
LEAK_CHECKED_TEST_OPTS(reach, every_change_on_a_full_disk_is_refused_and_changes_nothing,
                       .timeout = 60)
{
	char data_dir[64] = "/tmp/sessd-data-XXXXXX";
	const char *args[] = {"--data-dir", data_dir, "--fsync", "always", NULL};
	struct codec_request touch = {.op = CODEC_OP_TOUCH, .ttl_ms = 1000};
	struct codec_request touch_if = {.op = CODEC_OP_TOUCH_IF, .ttl_ms = 1000};
	struct codec_request set_if = {.op = CODEC_OP_SET_IF, .ttl_ms = 1000};
	struct codec_request destroy = {.op = CODEC_OP_DESTROY};
	struct codec_request pop = {.op = CODEC_OP_FLASH_POP};
	struct codec_request push = {.op = CODEC_OP_FLASH_PUSH, .ttl_ms = TTL_MS};
	struct codec_request clear = {.op = CODEC_OP_CLEAR};
	struct codec_request load = {.op = CODEC_OP_LOAD};
	struct codec_request ttl = {.op = CODEC_OP_TTL};
	struct codec_request *refused[] = {&touch, &touch_if, &set_if, &destroy, &pop, &clear};
	uint8_t tag[CODEC_TAG_BYTES], *result;
	size_t result_len;
	struct rlimit saved;
	int fd, status = CODEC_OK;
	uint64_t before;
	long started;

	signal(SIGPIPE, SIG_IGN);
	cr_assert_not_null(mkdtemp(data_dir));
	cr_assert_eq(harness_start_file_limited(&dmn, args, 256 * 1024, &saved), 0);
	fd = harness_open_ready(dmn.unix_url, "test_reach");
	codec_data_tag("logged in", 9, tag);
	touch.id = touch_if.id = set_if.id = destroy.id = pop.id = push.id = load.id = ttl.id =
	    bytes("s");
	touch_if.expect = set_if.expect = (struct mp_bytes){tag, sizeof(tag)};
	set_if.data = bytes("changed");
	push.flash_type = pop.flash_type = bytes("info");
	push.flash_msg = bytes("hello");
	cr_assert_eq(set_in(fd, "s", "logged in", 9), CODEC_OK);
	cr_assert_eq(call(fd, &push, NULL, NULL), CODEC_OK);
	fd = harness_fill_disk(&dmn, fd, NULL, "test_reach");
	cr_assert_eq(set_in(fd, "refused", "x", 1), CODEC_IO_ERROR, "the disk is full");
	cr_assert_eq(harness_server_stat(fd, "writable"), 0);

	before = harness_server_stat(fd, "io_errors_total");
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		cr_expect_eq(call(fd, refused[i], NULL, NULL), CODEC_IO_ERROR, "%s on a full disk",
		             codec_op_name(refused[i]->op));
	cr_expect_eq(harness_server_stat(fd, "io_errors_total"), before + 6);
	/* Nothing changed: the data, its lifetime (not 1 s), the flash, the other sessions. */
	cr_assert_eq(call(fd, &load, &result, &result_len), CODEC_OK);
	cr_expect(result_len > 9 && memmem(result, result_len, "logged in", 9) != NULL);
	free(result);
	{
		struct codec_reply rep;
		uint8_t *body;

		ttl.request_id = 77;
		cr_assert_eq(harness_call(fd, &ttl, &rep, &body), 0);
		cr_assert_eq(rep.status, CODEC_OK);
		cr_expect_gt(harness_result_uint(&rep), 60000,
		             "TOUCH or TOUCH_IF took the lifetime");
		free(body);
	}
	cr_expect_gt(harness_server_stat(fd, "sessions"), 1, "CLEAR removed sessions");

	/* Room again: each change goes through. */
	cr_assert_eq(prlimit(dmn.pid, RLIMIT_FSIZE, &saved, NULL), 0);
	started = harness_mono_ms();
	while ((status = call(fd, &touch, NULL, NULL)) == CODEC_IO_ERROR &&
	       harness_mono_ms() - started < 15000)
		harness_sleep_ms(50);
	cr_assert_eq(status, CODEC_OK, "changes never resumed");
	cr_expect_eq(call(fd, &touch_if, NULL, NULL), CODEC_OK);
	cr_expect_eq(call(fd, &pop, NULL, NULL), CODEC_OK);
	cr_expect_eq(call(fd, &set_if, NULL, NULL), CODEC_OK);
	cr_expect_eq(call(fd, &destroy, NULL, NULL), CODEC_OK);
	cr_expect_eq(call(fd, &load, NULL, NULL), CODEC_NOT_FOUND, "the logout did not hold");
	cr_expect_eq(call(fd, &clear, NULL, NULL), CODEC_OK);
	cr_expect_eq(harness_server_stat(fd, "sessions"), 0);
	close(fd);
	cr_assert_eq(harness_stop(&dmn), 0);
	nftw(data_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Run sessd with ${args} (a --listen is added) to its exit; its output, malloc'd, in *${out}.
 * Returns its exit status. */
static int run_to_exit(const char *dir, const char *const *args, char **out)
{
	const char *argv[16];
	char listen[128], log[128];
	int argc = 0, status;

	snprintf(listen, sizeof(listen), "unix:%s/sessd.sock", dir);
	snprintf(log, sizeof(log), "%s/sessd.log", dir);
	argv[argc++] = "--listen";
	argv[argc++] = listen;
	for (size_t i = 0; args[i] != NULL && argc < 15; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	cr_assert_eq(harness_run(argv, log, false, &status), 0, "sessd did not exit");
	cr_assert(WIFEXITED(status), "sessd died from signal %d", WTERMSIG(status));
	*out = harness_read_text(log);
	return WEXITSTATUS(status);
}

/*
 * sessd(8), EXIT STATUS: an --auth-file holding "a secret of the wrong length" exits 2 (not
 * restarted by the unit). A file longer than the longest secret (1024 bytes and a line end)
 * is one, said as such; and the startup fails as a whole (no socket left behind).
 */
LEAK_CHECKED_TEST_OPTS(reach, an_auth_file_longer_than_any_secret_exits_2, .timeout = 60)
{
	char dir[64] = "/tmp/sessd-long-XXXXXX", secret[96], sock[96], *out, *text;
	const char *args[] = {"--auth-file", secret, NULL};

	cr_assert_not_null(mkdtemp(dir));
	snprintf(secret, sizeof(secret), "%s/secret", dir);
	snprintf(sock, sizeof(sock), "%s/sessd.sock", dir);
	text = malloc(2000);
	cr_assert_not_null(text);
	memset(text, 'k', 1999);
	text[1999] = '\0';
	harness_write_secret(secret, text, 0600);
	cr_expect_eq(run_to_exit(dir, args, &out), 2, "%s", out);
	cr_expect_not_null(strstr(out, "longer than 1024 bytes"), "%s", out);
	cr_expect_eq(access(sock, F_OK), -1, "the socket was left behind");
	free(out);
	free(text);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * A --ready-file that cannot be written (its directory missing) fails the startup (exit 1,
 * sessd(8): "1 when startup ... fails"), says which file, and leaves no socket behind: a
 * script waiting for the file must not wait on a daemon that serves without it.
 */
LEAK_CHECKED_TEST_OPTS(reach, a_ready_file_that_cannot_be_written_fails_the_start, .timeout = 60)
{
	char dir[64] = "/tmp/sessd-ready-XXXXXX", ready[96], sock[96], *out;
	const char *args[] = {"--ready-file", ready, NULL};

	cr_assert_not_null(mkdtemp(dir));
	snprintf(ready, sizeof(ready), "%s/missing/ready", dir);
	snprintf(sock, sizeof(sock), "%s/sessd.sock", dir);
	cr_expect_eq(run_to_exit(dir, args, &out), 1, "%s", out);
	cr_expect_not_null(strstr(out, "cannot write"), "%s", out);
	cr_expect_not_null(strstr(out, "missing/ready.tmp."), "%s", out);
	cr_expect_eq(access(sock, F_OK), -1, "the socket was left behind");
	free(out);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * sessd raises its open-file limit to what --max-connections needs, and says once at startup
 * when the hard limit does not let it (past that, accepts would wait), naming the numbers and
 * the remedies; it serves all the same.
 */
LEAK_CHECKED_TEST_OPTS(reach, too_few_open_files_for_max_connections_is_said, .timeout = 60)
{
	const char *args[] = {"--max-connections", "1000", NULL};
	/* Criterion runs each test in a process of its own: this one keeps the low limit (it
	 * may not raise its hard limit again). */
	struct rlimit low = {.rlim_cur = 200, .rlim_max = 256};
	int conn;

	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	cr_assert_eq(harness_start(&dmn, args), 0);
	conn = harness_open_ready(dmn.unix_url, "test_reach");
	cr_assert_eq(harness_set_get(conn, NULL, "s", "x", TTL_MS), 0);
	close(conn);
	cr_assert(log_comes_to_hold("--max-connections 1000 needs about 1064 open files but the "
	                            "limit is 256"));
	cr_assert_eq(harness_stop(&dmn), 0);
}

/*
 * A secret may have up to 1024 bytes (sessd(8), --auth-file; libsessd(3)): one of 256 bytes
 * or more goes in a plain HELLO as msgpack bin 16, never used before. A 300-byte and a
 * 1024-byte secret work plain and sealed; a file longer than any secret is refused by the
 * client itself (SESSD_ERR_USAGE, saying so), as by the daemon.
 */
LEAK_CHECKED_TEST_OPTS(reach, secrets_of_256_to_1024_bytes_work_plain_and_sealed, .timeout = 60)
{
	static const size_t lengths[] = {300, 1024};
	char dir[64] = "/tmp/sessd-longsecret-XXXXXX", secret_path[96], too_long[96];
	const char *args[] = {"--auth-file", secret_path, NULL};
	struct sessd_options o = {.auth_file = secret_path, .require_auth = true};
	char errbuf[SESSD_ERRMSG_SIZE], text[2001];
	struct sessd_client *c;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(secret_path, sizeof(secret_path), "%s/secret", dir);
	snprintf(too_long, sizeof(too_long), "%s/too-long", dir);
	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		/* Printable and varied, so that a cut or shifted secret cannot match. */
		for (size_t k = 0; k < lengths[i]; k++)
			text[k] = (char)('!' + (k * 7 + i) % 90);
		text[lengths[i]] = '\0';
		harness_write_secret(secret_path, text, 0600);
		cr_assert_eq(harness_start(&dmn, args), 0);
		for (int plain = 0; plain <= 1; plain++) {
			const char *url = plain ? dmn.unix_url : dmn.tcp_url;

			o.plain_auth = plain;
			cr_assert_eq(sessd_connect_errbuf(url, &o, &c, errbuf, sizeof(errbuf)),
			             SESSD_OK, "%zu bytes, %s: %s", lengths[i],
			             plain ? "plain" : "sealed", errbuf);
			cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
			sessd_close(c);
		}
		cr_assert_eq(harness_stop(&dmn), 0);
	}
	memset(text, 'k', 2000);
	text[2000] = '\0';
	harness_write_secret(too_long, text, 0600);
	o.auth_file = too_long;
	cr_assert_eq(harness_start(&dmn, args), 0);
	errno = 0;
	cr_assert_eq(sessd_connect_errbuf(dmn.unix_url, &o, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_USAGE, "%s", errbuf);
	cr_assert_eq(errno, EINVAL);
	cr_assert_not_null(strstr(errbuf, "the secret must be 16 to 1024 bytes"), "%s", errbuf);
	cr_assert_eq(harness_stop(&dmn), 0);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * A connection closed for a bad frame lingers after its TOO_LARGE reply (its write side shut,
 * reading what the client still sends, so that it is not reset under the reply). A SIGTERM
 * meanwhile closes it at once and sessd stops cleanly; the client has had its reply.
 */
LEAK_CHECKED_TEST_OPTS(reach, a_stop_closes_a_lingering_connection, .timeout = 60)
{
	static const uint8_t too_large[4] = {0x7f, 0xff, 0xff, 0xff};
	struct codec_reply rep;
	uint8_t *body, byte;
	size_t len;
	int fd;

	cr_assert_eq(harness_start(&dmn, NULL), 0);
	fd = harness_connect(dmn.unix_url);
	cr_assert_geq(fd, 0);
	cr_assert_eq(harness_send_all(fd, too_large, sizeof(too_large)), 0);
	cr_assert_eq(harness_recv_frame(fd, &body, &len), 0);
	cr_assert_eq(codec_decode_reply(body, len, &rep), 0);
	cr_assert_eq(rep.status, CODEC_TOO_LARGE);
	free(body);
	/* The write side is shut: the reply was all; the connection lingers, unclosed here. */
	cr_assert_eq(recv(fd, &byte, 1, 0), 0);
	cr_assert_eq(harness_stop(&dmn), 0);
	close(fd);
}

/*
 * PROTOCOL.md, HELLO: auth is nil, the secret (str or bin), or a key exchange map. Anything
 * else (a number here) is refused with AUTH_FAILED saying what it must be, and the
 * connection is closed; the daemon serves on.
 */
LEAK_CHECKED_TEST_OPTS(reach, a_hello_whose_auth_has_no_allowed_shape_is_refused, .timeout = 60)
{
	static const uint8_t five = 0x05;
	struct codec_request hello = {.op = CODEC_OP_HELLO, .request_id = 1, .version = 1};
	struct codec_reply rep;
	uint8_t *body;
	int fd;

	cr_assert_eq(harness_start(&dmn, NULL), 0);
	fd = harness_connect(dmn.unix_url);
	cr_assert_geq(fd, 0);
	hello.client_name = bytes("test_reach");
	hello.auth = (struct mp_bytes){&five, 1};
	cr_assert_eq(harness_call(fd, &hello, &rep, &body), 0);
	cr_expect_eq(rep.status, CODEC_AUTH_FAILED, "%s", codec_status_name(rep.status));
	cr_expect(rep.message.len > 0 &&
	              memmem(rep.message.ptr, rep.message.len, "auth must be nil", 16) != NULL,
	          "%.*s", (int)rep.message.len, (const char *)rep.message.ptr);
	free(body);
	harness_expect_closed(fd);
	close(fd);
	fd = harness_open_ready(dmn.unix_url, "test_reach");
	cr_assert_eq(harness_set_get(fd, NULL, "s", "x", TTL_MS), 0);
	close(fd);
	cr_assert_eq(harness_stop(&dmn), 0);
}

/*
 * sessd(8), --auth-plain: yes on a listener beyond loopback is warned of at startup (whoever
 * reads the secret there can connect, and pass for this server to sealed clients).
 */
LEAK_CHECKED_TEST_OPTS(reach, auth_plain_yes_beyond_loopback_is_warned_of, .timeout = 60)
{
	char dir[64] = "/tmp/sessd-plainyes-XXXXXX", secret[96];
	const char *args[] = {
	    "--listen", "tcp://0.0.0.0:0", "--auth-file", secret, "--auth-plain", "yes", NULL};

	cr_assert_not_null(mkdtemp(dir));
	snprintf(secret, sizeof(secret), "%s/secret", dir);
	harness_write_secret(secret, "0123456789abcdef0123456789abcdef", 0600);
	cr_assert_eq(harness_start(&dmn, args), 0);
	cr_assert(log_comes_to_hold("is not a loopback address and --auth-plain yes lets clients "
	                            "there show the secret unsealed"));
	cr_assert_eq(harness_stop(&dmn), 0);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A Unix socket path under a file cannot be looked at: the start fails (exit 1), saying why. */
LEAK_CHECKED_TEST_OPTS(reach, a_socket_path_under_a_file_fails_the_start, .timeout = 60)
{
	char dir[64] = "/tmp/sessd-underfile-XXXXXX", file[96], listen[128], *out;
	const char *args[] = {"--listen", listen, NULL};
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/file", dir);
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(listen, sizeof(listen), "unix:%s/sessd.sock", file);
	cr_expect_eq(run_to_exit(dir, args, &out), 1, "%s", out);
	cr_expect_not_null(strstr(out, "cannot inspect"), "%s", out);
	cr_expect_not_null(strstr(out, strerror(ENOTDIR)), "%s", out);
	free(out);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
