/*
 * libsessd inside an application that is not a test: a threaded server with one client per
 * thread, a process whose SIGPIPE is left at its default (death) and whose calls are
 * interrupted by signals, one that execs other programs, and one that closed its standard
 * descriptors. Against the real daemon, but for a peer that dies mid-write, which a fake
 * server thread plays so that the moment is certain.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "leakcheck.h"
#include "sessd.h"

#define TTL_MS 60000u
/* Threads, each with its own client, and the rounds each makes. */
#define THREADS       8
#define THREAD_ROUNDS 200
#define THREAD_BATCH  64

static struct harness_daemon daemon_;

static void start_daemon(void)
{
	cr_assert_eq(harness_start(&daemon_, NULL), 0, "the daemon did not start");
}

static void stop_daemon(void)
{
	if (daemon_.pid > 0)
		cr_expect_eq(harness_stop(&daemon_), 0, "the daemon did not stop cleanly");
	daemon_.pid = 0;
}

static struct sessd_client *connect_to(const char *url)
{
	struct sessd_options opts = {.timeout_ms = 10000, .client_name = "embed-test"};
	struct sessd_client *c = NULL;
	int rc;

	rc = sessd_connect(url, &opts, &c);
	cr_assert_eq(rc, SESSD_OK, "connect %s: %s", url, sessd_strerror(rc));
	return c;
}

struct worker {
	pthread_t thread;
	const char *url;
	int number;
	char failure[SESSD_ERRMSG_SIZE + 64]; /* "" when every round went as it should */
};

/* Say what failed in ${w} (the first failure only) and return -1. */
static int worker_failed(struct worker *w, int round, const char *what, int rc,
                         struct sessd_client *c)
{
	snprintf(w->failure, sizeof(w->failure), "thread %d round %d: %s: %s: %s", w->number, round,
	         what, sessd_strerror(rc), c != NULL ? sessd_errmsg(c) : "");
	return -1;
}

/*
 * One web request's calls, as an application makes them: a new id, a save, a read and its
 * tag, a flash across a redirect, a conditional save, a logout. Returns 0 or -1.
 */
static int worker_round(struct worker *w, struct sessd_client *c, int round)
{
	char id[SESSD_ID_LEN + 1], data[64];
	uint8_t tag[SESSD_TAG_BYTES];
	struct sessd_flashes *f = NULL;
	uint64_t flashes = 0;
	void *got = NULL;
	size_t len = 0;
	int rc, same;

	if ((rc = sessd_id_new(id)) != SESSD_OK)
		return worker_failed(w, round, "id_new", rc, c);
	snprintf(data, sizeof(data), "{\"thread\":%d,\"round\":%d}", w->number, round);
	if ((rc = sessd_set(c, id, SESSD_ID_LEN, data, strlen(data), TTL_MS)) != SESSD_OK)
		return worker_failed(w, round, "set", rc, c);
	if ((rc = sessd_flash_push(c, id, SESSD_ID_LEN, "notice", data, strlen(data), TTL_MS,
	                           NULL)) != SESSD_OK)
		return worker_failed(w, round, "flash_push", rc, c);
	if ((rc = sessd_load(c, id, SESSD_ID_LEN, &got, &len, &flashes)) != SESSD_OK)
		return worker_failed(w, round, "load", rc, c);
	same = len == strlen(data) && memcmp(got, data, len) == 0 && flashes == 1;
	sessd_data_tag(got, len, tag);
	free(got);
	if (!same)
		return worker_failed(w, round, "load gave another session's data", SESSD_OK, c);
	if ((rc = sessd_flash_pop(c, id, SESSD_ID_LEN, "notice", &f)) != SESSD_OK)
		return worker_failed(w, round, "flash_pop", rc, c);
	same = f->count == 1 && f->items[0].msg_len == strlen(data) &&
	       memcmp(f->items[0].msg, data, strlen(data)) == 0;
	sessd_flashes_free(f);
	if (!same)
		return worker_failed(w, round, "flash_pop gave another message", SESSD_OK, c);
	if ((rc = sessd_set_if(c, id, SESSD_ID_LEN, "{}", 2, TTL_MS, tag)) != SESSD_OK)
		return worker_failed(w, round, "set_if", rc, c);
	if ((rc = sessd_destroy(c, id, SESSD_ID_LEN)) != SESSD_OK)
		return worker_failed(w, round, "destroy", rc, c);
	return 0;
}

/* A batch of GETs of this thread's own sessions: each answer is its own. */
static int worker_batch(struct worker *w, struct sessd_client *c)
{
	struct sessd_batch *b = sessd_batch_new(c);
	char id[32], data[32];
	const void *got;
	size_t len;
	int rc = 0;

	if (b == NULL)
		return worker_failed(w, -1, "batch_new", SESSD_ERR_NOMEM, c);
	for (int i = 0; i < THREAD_BATCH && rc == 0; i++) {
		snprintf(id, sizeof(id), "t%d-%d", w->number, i);
		snprintf(data, sizeof(data), "d%d-%d", w->number, i);
		if (sessd_batch_set(b, id, strlen(id), data, strlen(data), TTL_MS) == -1 ||
		    sessd_batch_get(b, id, strlen(id)) == -1)
			rc = worker_failed(w, i, "batch queue", SESSD_ERR_USAGE, c);
	}
	if (rc == 0 && (rc = sessd_batch_run(b)) != SESSD_OK)
		rc = worker_failed(w, -1, "batch_run", rc, c);
	for (int i = 0; i < THREAD_BATCH && rc == 0; i++) {
		snprintf(data, sizeof(data), "d%d-%d", w->number, i);
		got = sessd_batch_data(b, (size_t)(2 * i + 1), &len);
		if (got == NULL || len != strlen(data) || memcmp(got, data, len) != 0)
			rc = worker_failed(w, i, "batch GET gave another answer", SESSD_OK, c);
	}
	sessd_batch_free(b);
	return rc;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct sessd_options opts = {.timeout_ms = 20000, .client_name = "embed-thread"};
	struct sessd_client *c = NULL;
	int rc;

	rc = sessd_connect(w->url, &opts, &c);
	if (rc != SESSD_OK) {
		worker_failed(w, -1, "connect", rc, NULL);
		return NULL;
	}
	for (int round = 0; round < THREAD_ROUNDS; round++)
		if (worker_round(w, c, round) == -1)
			goto done;
	(void)worker_batch(w, c);
done:
	sessd_close(c);
	return NULL;
}

TestSuite(threads, .init = start_daemon, .fini = stop_daemon, .timeout = 240);

/*
 * sessd.h: a client is not thread-safe, so one per thread; clients in different threads, and
 * the calls that take no client (sessd_id_new, sessd_data_tag), run at once. Each thread's
 * answers must be its own: a shared buffer or id counter in the library would hand one
 * thread another's session, message or batch result.
 */
LEAK_CHECKED_TEST(threads, one_client_per_thread_under_load)
{
	struct worker w[THREADS];

	for (int i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].number = i;
		w[i].url = i % 2 == 0 ? daemon_.unix_url : daemon_.tcp_url;
		cr_assert_eq(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_join(w[i].thread, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		cr_expect_str_empty(w[i].failure, "%s", w[i].failure);
}

/* A fake server's listening Unix socket in a directory of its own. */
struct fake_listener {
	char dir[64];
	char path[128];
	char url[160];
	int fd;
};

static void fake_listen(struct fake_listener *l)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(l->dir, sizeof(l->dir), "/tmp/sessd-embed-XXXXXX");
	cr_assert_not_null(mkdtemp(l->dir));
	snprintf(l->path, sizeof(l->path), "%s/s", l->dir);
	snprintf(l->url, sizeof(l->url), "unix:%s", l->path);
	memcpy(sa.sun_path, l->path, strlen(l->path) + 1);
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_neq(l->fd, -1);
	cr_assert_eq(bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
	cr_assert_eq(listen(l->fd, 4), 0);
}

static void fake_unlisten(struct fake_listener *l)
{
	close(l->fd);
	unlink(l->path);
	rmdir(l->dir);
}

/*
 * A server that answers HELLO with a max_frame of 1 MiB, reads the first 4 bytes of the
 * request after it, and stops reading: shutdown(SHUT_RD) on a Unix socket makes the client's
 * next write fail with EPIPE (and SIGPIPE, unless it asks for none) while its poll() still
 * says writable and nothing readable, so that the client does write to a peer that is gone,
 * as when a daemon dies between two of its writes. It closes a while later. Returns NULL, or
 * a string saying what went wrong.
 */
static void *die_mid_write(void *arg)
{
	struct fake_listener *l = arg;
	struct codec_request req;
	struct buf out;
	uint8_t *body = NULL, header[4], sink[65536];
	uint32_t status;
	size_t len, at;
	const char *why, *failure = "the client's HELLO did not come";
	int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd == -1)
		return (void *)"accept failed";
	buf_init(&out);
	if (harness_recv_frame(fd, &body, &len) == -1 ||
	    codec_decode_request(body, len, &req, &status, &why) == -1)
		goto done;
	failure = "cannot answer the HELLO";
	if (codec_reply_open(&out, req.request_id, CODEC_OK, &at) == -1 ||
	    harness_write_hello_result(&out) == -1 || codec_frame_close(&out, at) == -1 ||
	    harness_send_all(fd, out.data, out.len) == -1)
		goto done;
	failure = "the request did not start";
	if (harness_recv_all(fd, header, sizeof(header)) == -1)
		goto done;
	failure = "shutdown failed";
	if (shutdown(fd, SHUT_RD) == -1)
		goto done;
	/* What the client had queued holds its send buffer full: take it, so that its poll()
	 * says writable again and its next write meets the shut socket. */
	while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	/* Time for the client to write into the shut socket (on a busy machine it may not
	 * have by then, and the test proves less: it cannot fail for that). */
	poll(NULL, 0, 300);
	failure = NULL;
done:
	free(body);
	buf_finish(&out);
	close(fd);
	return (void *)failure;
}

TestSuite(signals, .timeout = 120);

/*
 * libsessd(3), SIGNALS: a closed peer never raises SIGPIPE, and the application needs no
 * handler of it. An application that leaves SIGPIPE at its default (most do) would be killed
 * by a write to a peer that has gone; the call must fail instead, and the process go on.
 */
LEAK_CHECKED_TEST(signals, a_peer_gone_mid_write_raises_no_sigpipe)
{
	struct fake_listener l;
	struct sessd_client *c;
	struct sigaction dfl = {.sa_handler = SIG_DFL}, saved;
	size_t big = 1000 * 1000; /* well past both socket buffers, within max_frame */
	char *data = calloc(1, big);
	pthread_t server;
	void *failure = NULL;
	int rc;

	cr_assert_not_null(data);
	cr_assert_eq(sigaction(SIGPIPE, &dfl, &saved), 0);
	fake_listen(&l);
	cr_assert_eq(pthread_create(&server, NULL, die_mid_write, &l), 0);
	c = connect_to(l.url);
	rc = sessd_set(c, "big", 3, data, big, TTL_MS);
	cr_assert_eq(pthread_join(server, &failure), 0);
	cr_assert_null(failure, "fake server: %s", (const char *)failure);
	/* Still here: the write to the closed socket was an error code, not a signal. */
	cr_expect_eq(rc, SESSD_ERR_CLOSED, "%s: %s", sessd_strerror(rc), sessd_errmsg(c));
	sessd_close(c);
	fake_unlisten(&l);
	free(data);
	sigaction(SIGPIPE, &saved, NULL);
}

static volatile sig_atomic_t alarms;

static void count_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/*
 * Five connections (Unix and TCP), each with a 20,000-request batch and 200 GETs, while
 * SIGALRM comes. Returns "" when every call went as it should, else the first failure (in
 * ${why}). It asserts nothing: criterion's own writes to its runner could meet the signals.
 */
static void calls_under_alarms(char *why, size_t why_size)
{
	struct sessd_options opts = {.timeout_ms = 20000, .client_name = "embed-test"};
	struct sessd_client *c = NULL;
	struct sessd_batch *b = NULL;
	const char *what = "connect";
	char id[32];
	void *got = NULL;
	size_t len = 0;
	int rc = SESSD_OK;

	why[0] = '\0';
	for (int round = 0; round < 5; round++) {
		rc = sessd_connect(round % 2 == 0 ? daemon_.unix_url : daemon_.tcp_url, &opts, &c);
		if (rc != SESSD_OK)
			goto fail;
		what = "batch";
		if ((b = sessd_batch_new(c)) == NULL)
			goto fail;
		for (int i = 0; i < 20000; i++) {
			snprintf(id, sizeof(id), "s%d", i);
			if (sessd_batch_set(b, id, strlen(id), id, strlen(id), TTL_MS) == -1)
				goto fail;
		}
		if ((rc = sessd_batch_run(b)) != SESSD_OK)
			goto fail;
		sessd_batch_free(b);
		b = NULL;
		what = "get";
		for (int i = 0; i < 200; i++) {
			snprintf(id, sizeof(id), "s%d", i);
			if ((rc = sessd_get(c, id, strlen(id), &got, &len)) != SESSD_OK)
				goto fail;
			rc = len == strlen(id) && memcmp(got, id, len) == 0 ? SESSD_OK
			                                                    : SESSD_ERR_PROTOCOL;
			free(got);
			if (rc != SESSD_OK)
				goto fail;
		}
		sessd_close(c);
		c = NULL;
	}
	return;

fail:
	snprintf(why, why_size, "%s: %s: %s", what, sessd_strerror(rc), sessd_errmsg(c));
	sessd_batch_free(b);
	sessd_close(c);
}

/*
 * A web server's timers and child reapers interrupt whatever it is doing. A signal whose
 * handler has no SA_RESTART makes each wait inside a call (poll, connect) return EINTR; the
 * call must wait on within its timeout, not fail with the signal, nor lose its place in the
 * stream. A batch deep enough to take many interrupts, and ordinary calls between them.
 */
LEAK_CHECKED_TEST_OPTS(signals, interrupted_calls_go_on, .init = start_daemon, .fini = stop_daemon)
{
	struct sigaction on_alarm = {.sa_handler = count_alarm}, saved;
	struct itimerval every = {.it_interval = {.tv_usec = 200}, .it_value = {.tv_usec = 200}};
	struct itimerval off = {0};
	char why[SESSD_ERRMSG_SIZE + 64];

	sigemptyset(&on_alarm.sa_mask);
	on_alarm.sa_flags = 0; /* no SA_RESTART: every blocking wait sees EINTR */
	cr_assert_eq(sigaction(SIGALRM, &on_alarm, &saved), 0);
	cr_assert_eq(setitimer(ITIMER_REAL, &every, NULL), 0);
	calls_under_alarms(why, sizeof(why));
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &saved, NULL);
	cr_expect_str_empty(why, "%s", why);
	cr_expect_gt(alarms, 0, "no signal came: the test tested nothing");
}

/* The descriptors this process has open, in ${open_fds} (true for each one). */
static void list_fds(bool open_fds[1024])
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n;

	memset(open_fds, 0, 1024 * sizeof(open_fds[0]));
	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		n = strtol(e->d_name, NULL, 10);
		if (e->d_name[0] != '.' && n >= 0 && n < 1024 && n != dirfd(d))
			open_fds[n] = true;
	}
	closedir(d);
}

TestSuite(exec, .init = start_daemon, .fini = stop_daemon, .timeout = 60);

/*
 * A web server that runs other programs (CGI, a mailer, a worker pool) must not hand them its
 * connection to sessd: a program that inherits it holds the socket open after the server has
 * closed it, and could read or write sessions. Every descriptor libsessd holds between
 * calls, Unix and TCP, is close-on-exec.
 */
LEAK_CHECKED_TEST(exec, the_connection_is_close_on_exec)
{
	static bool before[1024], after[1024];
	struct sessd_client *unix_c, *tcp_c;
	int added = 0, flags;

	list_fds(before);
	unix_c = connect_to(daemon_.unix_url);
	tcp_c = connect_to(daemon_.tcp_url);
	cr_assert_eq(sessd_ping(unix_c), SESSD_OK);
	cr_assert_eq(sessd_ping(tcp_c), SESSD_OK);
	list_fds(after);
	for (int fd = 0; fd < 1024; fd++) {
		if (!after[fd] || before[fd])
			continue;
		added++;
		flags = fcntl(fd, F_GETFD);
		cr_expect(flags != -1 && (flags & FD_CLOEXEC), "fd %d is inherited across exec",
		          fd);
	}
	cr_expect_eq(added, 2, "libsessd holds %d descriptors for two clients", added);
	sessd_close(unix_c);
	sessd_close(tcp_c);
}

/*
 * A daemon that closed its standard descriptors (rather than point them at /dev/null), and
 * then connects: a socket libsessd opened would be given descriptor 0, 1 or 2, and the
 * application's own printf, perror or a library's warning would be written into the session
 * store's connection (requests made of log lines; sealed, a broken connection), and a read of
 * stdin would take its replies. The connections must keep clear of them.
 */
LEAK_CHECKED_TEST(exec, the_connection_never_takes_a_standard_descriptor)
{
	struct sessd_client *c[2] = {NULL, NULL};
	int saved[3], rc[2], open_std = 0;
	void *got = NULL;
	size_t len = 0;

	fflush(NULL);
	for (int fd = 0; fd < 3; fd++) {
		saved[fd] = fcntl(fd, F_DUPFD_CLOEXEC, 10);
		cr_assert_neq(saved[fd], -1);
		close(fd);
	}
	/* No criterion call until they are back: its own output may use them. */
	rc[0] = sessd_connect(daemon_.unix_url, NULL, &c[0]);
	rc[1] = sessd_connect(daemon_.tcp_url, NULL, &c[1]);
	for (int i = 0; i < 2; i++)
		if (rc[i] == SESSD_OK &&
		    (rc[i] = sessd_set(c[i], "std", 3, "x", 1, TTL_MS)) == SESSD_OK) {
			rc[i] = sessd_get(c[i], "std", 3, &got, &len);
			free(got);
			got = NULL;
		}
	for (int fd = 0; fd < 3; fd++)
		open_std += fcntl(fd, F_GETFD) != -1;
	for (int fd = 0; fd < 3; fd++) {
		dup2(saved[fd], fd);
		close(saved[fd]);
	}
	cr_expect_eq(open_std, 0, "libsessd took %d of the standard descriptors", open_std);
	cr_expect_eq(rc[0], SESSD_OK, "unix: %s", sessd_strerror(rc[0]));
	cr_expect_eq(rc[1], SESSD_OK, "tcp: %s", sessd_strerror(rc[1]));
	sessd_close(c[0]);
	sessd_close(c[1]);
}
