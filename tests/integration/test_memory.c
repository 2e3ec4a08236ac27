/*
 * The daemon out of memory: allocations of its event loop failed on purpose (failalloc.so,
 * preloaded) while it serves, one at a time at every point a workload reaches. What a request
 * is answered must say what was done: OK only when it was carried out, an error (INTERNAL,
 * NO_MEMORY) only when nothing changed; a dropped connection leaves it unsaid. Each test ends
 * by stopping the daemon, which must exit 0 (under ASan: no leak, no error report).
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sealed.h"
#include "sessd.h"

#define TTL_MS 600000u
/* Requests in the batch: their replies (about 10 bytes each) outgrow the connection's first
 * 256 bytes of output twice over, so that replies need memory too. */
#define BATCH 64
/* The batch's loop allocations are far fewer; a sweep that has not run out by then is wrong. */
#define MAX_POINTS 400

static struct harness_daemon daemon_;
static char words_path[64];
static char data_dir[64];
static _Atomic int64_t *words;

/* The counters file failalloc.so reads (see failalloc.c), made and mapped once. */
static void map_words(void)
{
	void *m;
	int fd;

	if (words != NULL)
		return;
	snprintf(words_path, sizeof(words_path), "/tmp/sessd-failalloc-XXXXXX");
	fd = mkstemp(words_path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 3 * sizeof(int64_t)), 0);
	m = mmap(NULL, 3 * sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(m, MAP_FAILED);
	close(fd);
	words = m;
}

/* The environment a process started next runs failalloc.so ${so} in: the counters file, and
 * the module preloaded (harness_preload), what it was kept in ${saved}. The module passes
 * every allocation it does not fail on to the runtime's. */
static void set_failing_env(const char *so, struct harness_preload *saved)
{
	harness_preload(saved, so, NULL);
	cr_assert_eq(setenv("SESSD_FAILALLOC_FILE", words_path, 1), 0);
}

/* Start the daemon with failalloc.so, a counters file of its own (see failalloc.c) and
 * ${args}. */
static void start_failing_with(const char *const *args)
{
	const char *so = getenv("SESSD_FAILALLOC_SO");
	struct harness_preload saved;

	cr_assert_not_null(so, "SESSD_FAILALLOC_SO is not set (meson test sets it to the build's "
	                       "tests/integration/failalloc.so)");
	map_words();
	set_failing_env(so, &saved);
	cr_assert_eq(harness_start(&daemon_, args), 0, "the daemon did not start");
	harness_preload_restore(&saved);
	unsetenv("SESSD_FAILALLOC_FILE");
}

static void start_failing(void)
{
	start_failing_with(NULL);
}

static const char *disk_args[] = {"--data-dir", data_dir, NULL};

static void start_failing_on_disk(void)
{
	snprintf(data_dir, sizeof(data_dir), "/tmp/sessd-failalloc-data-XXXXXX");
	cr_assert_not_null(mkdtemp(data_dir));
	start_failing_with(disk_args);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void stop_daemon(void)
{
	if (daemon_.pid > 0)
		cr_expect_eq(harness_stop(&daemon_), 0, "the daemon did not stop cleanly");
	if (words != NULL)
		munmap((void *)words, 3 * sizeof(int64_t));
	if (words_path[0] != '\0')
		unlink(words_path);
	if (data_dir[0] != '\0')
		nftw(data_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A client of ${url}, sealed with the secret in ${auth_file} (NULL: none). */
static struct sessd_client *connect_to(const char *url, const char *auth_file)
{
	struct sessd_options opts = {
	    .timeout_ms = 10000, .ns = "app", .client_name = "memory-test", .auth_file = auth_file};
	struct sessd_client *c = NULL;
	int rc = sessd_connect(url, &opts, &c);

	cr_assert_eq(rc, SESSD_OK, "connect %s: %s", url, sessd_strerror(rc));
	return c;
}

/* An answer that says the request was not carried out. */
static bool refused(int rc)
{
	return rc == SESSD_ERR_INTERNAL || rc == SESSD_ERR_NO_MEMORY;
}

/*
 * Whether what request ${i} of ${b} was answered holds in the daemon at ${url} (clients sealed
 * with ${auth_file}, or NULL): an OK change made, a refused one not made. A dropped connection
 * leaves it unsaid, but only for a change not carried out: one made lost its reply, and the
 * client cannot tell. Read without changing anything: GET for the DESTROYs, TTL for the
 * FLASH_PUSHes' sessions, which hold only the one message when it was pushed. Returns how
 * many requests were refused.
 */
static int check_answers(const char *url, const char *auth_file, struct sessd_batch *b,
                         int64_t point, const char *when)
{
	struct sessd_client *check = connect_to(url, auth_file);
	int refusals = 0;

	for (int i = 0; i < BATCH; i++) {
		int rc = sessd_batch_status(b, i), got;
		void *data = NULL;
		uint64_t ttl = 0;
		size_t len = 0;
		char id[32];

		snprintf(id, sizeof(id), i % 2 == 0 ? "s-%d" : "f-%d", i);
		if (i % 2 == 0)
			got = sessd_get(check, id, strlen(id), &data, &len);
		else
			got = sessd_ttl(check, id, strlen(id), &ttl);
		free(data);
		cr_assert(got == SESSD_OK || got == SESSD_NOT_FOUND, "%s: %s: %s", when, id,
		          sessd_strerror(got));
		/* DESTROY done: gone; FLASH_PUSH done: there. */
		cr_assert(rc != SESSD_OK || (got == SESSD_OK) == (i % 2 == 1),
		          "%s, point %lld: %s %s answered OK, not carried out", when,
		          (long long)point, i % 2 == 0 ? "DESTROY" : "FLASH_PUSH", id);
		cr_assert(!refused(rc) || (got == SESSD_OK) == (i % 2 == 0),
		          "%s, point %lld: %s %s answered %s, carried out", when, (long long)point,
		          i % 2 == 0 ? "DESTROY" : "FLASH_PUSH", id, sessd_strerror(rc));
		cr_assert(rc != SESSD_ERR_CLOSED || (got == SESSD_OK) == (i % 2 == 0),
		          "%s, point %lld: %s %s was carried out, and its connection closed "
		          "without the reply",
		          when, (long long)point, i % 2 == 0 ? "DESTROY" : "FLASH_PUSH", id);
		refusals += refused(rc);
	}
	sessd_close(check);
	return refusals;
}

/*
 * A batch of DESTROYs (of sessions there) and FLASH_PUSHes (to sessions not there), with the
 * loop's allocations failed one at a time: the first ${point} let through, the next failed, at
 * every point until the batch runs out of allocations. With ${restart}, each point has a
 * daemon of its own on ${data_dir} (its buffers for the log start small again), and what the
 * answers say is checked again once it has stopped and another has loaded the data. With
 * ${auth_file}, every connection is sealed with its secret.
 */
static void sweep_changes(const char *const *args, bool restart, const char *auth_file)
{
	int points = 0, failed_points = 0, refusals = 0;

	for (int64_t point = 0; point < MAX_POINTS; point++, points++) {
		struct sessd_client *setup, *c;
		struct sessd_batch *b;
		int64_t failed;
		char id[32];

		if (restart && point > 0)
			start_failing_with(args);
		setup = connect_to(daemon_.unix_url, auth_file);
		for (int i = 0; i < BATCH; i++) {
			snprintf(id, sizeof(id), i % 2 == 0 ? "s-%d" : "f-%d", i);
			cr_assert(i % 2 == 1 ||
			          sessd_set(setup, id, strlen(id), "data", 4, TTL_MS) == SESSD_OK);
			cr_assert(i % 2 == 0 ||
			          sessd_destroy(setup, id, strlen(id)) != SESSD_ERR_CLOSED);
		}
		sessd_close(setup);
		/* A new connection at each point: its output starts at 256 bytes again. */
		c = connect_to(daemon_.unix_url, auth_file);
		b = sessd_batch_new(c);
		cr_assert_not_null(b);
		for (int i = 0; i < BATCH; i++) {
			snprintf(id, sizeof(id), i % 2 == 0 ? "s-%d" : "f-%d", i);
			if (i % 2 == 0)
				cr_assert_geq(sessd_batch_destroy(b, id, strlen(id)), 0);
			else
				cr_assert_geq(sessd_batch_flash_push(b, id, strlen(id), "info", "m",
				                                     1, TTL_MS),
				              0);
		}
		atomic_store(&words[2], 0);
		atomic_store(&words[0], point);
		atomic_store(&words[1], 1);
		(void)sessd_batch_run(b);
		atomic_store(&words[1], 0);
		atomic_store(&words[0], 0);
		failed = atomic_load(&words[2]);
		refusals += check_answers(daemon_.unix_url, auth_file, b, point, "running");
		sessd_close(c);
		if (restart) {
			cr_assert_eq(harness_stop(&daemon_), 0,
			             "point %lld: the daemon did not stop cleanly",
			             (long long)point);
			cr_assert_eq(harness_start(&daemon_, args), 0, "the daemon did not start");
			(void)check_answers(daemon_.unix_url, auth_file, b, point, "restarted");
			cr_assert_eq(harness_stop(&daemon_), 0);
			daemon_.pid = 0;
		}
		sessd_batch_free(b);
		if (failed == 0)
			break;
		failed_points++;
	}
	cr_assert_lt(points, MAX_POINTS, "the batch never ran out of allocations to fail");
	cr_assert_gt(failed_points, 0, "no allocation of the batch was failed");
	cr_assert_gt(refusals, 0, "no request was refused for want of memory");
	cr_log_info("%d allocation points failed in turn, %d requests refused", failed_points,
	            refusals);
}

/* Before, a change was carried out and then its OK reply found no room: it was answered
 * INTERNAL "out of memory" though done (a destroyed session answered as if kept; a flash a
 * retry would push twice). */
Test(memory, a_change_is_answered_as_done_only_when_done_and_refused_only_when_not,
     .init = start_failing, .fini = stop_daemon, .timeout = 300)
{
	sweep_changes(NULL, false, NULL);
}

/* Before, with --data-dir, a change the store had made and whose log record then found no
 * memory was answered INTERNAL "the change was made but not logged": kept in memory, and
 * undone by a restart before the next snapshot (a logout undone). */
Test(memory, a_change_that_cannot_be_logged_is_not_made, .init = start_failing_on_disk,
     .fini = stop_daemon, .timeout = 300)
{
	sweep_changes(disk_args, true, NULL);
}

static char auth_dir[64], auth_path[128];
static const char *auth_args[] = {"--auth-file", auth_path, NULL};

/* A secret for --auth-file in a directory of its own. */
static void make_secret(void)
{
	snprintf(auth_dir, sizeof(auth_dir), "/tmp/sessd-nomem-XXXXXX");
	cr_assert_not_null(mkdtemp(auth_dir));
	snprintf(auth_path, sizeof(auth_path), "%s/secret", auth_dir);
	harness_write_secret(auth_path, "memory-test-secret-0123456789abc", 0600);
}

/* The daemon with --auth-file: connections sealed or showing the secret plain. */
static void start_with_secret(void)
{
	make_secret();
	cr_assert_eq(harness_start(&daemon_, auth_args), 0, "the daemon did not start");
}

/* start_with_secret, with failalloc.so. */
static void start_failing_with_secret(void)
{
	make_secret();
	start_failing_with(auth_args);
}

static void stop_with_secret(void)
{
	stop_daemon();
	unlink(auth_path);
	rmdir(auth_dir);
}

/* Before, a sealed connection sealed a turn's replies only as it wrote them, and when that
 * found no memory it was closed without them: a DESTROY or FLASH_PUSH among them was carried
 * out, and its client saw only the connection closed (PROTOCOL.md, INTERNAL). */
Test(memory, a_sealed_change_is_answered_or_not_made, .init = start_failing_with_secret,
     .fini = stop_with_secret, .timeout = 300)
{
	sweep_changes(auth_args, false, auth_path);
}

static char admin_path[128];
static const char app_secret[] = "memory-test-secret-0123456789abc";
static const char *admin_args[] = {"--auth-file", auth_path, "--admin-auth-file", admin_path, NULL};

/* The daemon with failalloc.so, an --auth-file and an --admin-auth-file: a connection sealed
 * with the first only is not an admin's. */
static void start_failing_with_admin_secret(void)
{
	make_secret();
	snprintf(admin_path, sizeof(admin_path), "%s/admin", auth_dir);
	harness_write_secret(admin_path, "memory-test-admin-secret-0123456789", 0600);
	start_failing_with(admin_args);
}

static void stop_with_admin_secret(void)
{
	unlink(admin_path);
	stop_with_secret();
}

/* CLEARs behind the DESTROY: their FORBIDDEN replies (about 60 bytes each) outgrow the room
 * the DESTROY kept for its own reply (1 KiB) several times over. */
#define CLEARS 100

/* Into ${frames}: a DESTROY of "app"'s s-0 (request id 1), then CLEARS CLEARs of "app". */
static void encode_refused_pipeline(struct buf *frames)
{
	struct codec_request req = {.op = CODEC_OP_DESTROY, .request_id = 1};

	req.ns = (struct mp_bytes){(const uint8_t *)"app", 3};
	req.id = (struct mp_bytes){(const uint8_t *)"s-0", 3};
	cr_assert_eq(codec_encode_request(frames, &req), 0);
	req.op = CODEC_OP_CLEAR;
	req.id = (struct mp_bytes){NULL, 0};
	for (int i = 0; i < CLEARS; i++) {
		req.request_id = 2 + (uint64_t)i;
		cr_assert_eq(codec_encode_request(frames, &req), 0);
	}
}

/* Before, a CLEAR from a connection without the admin secret, answered FORBIDDEN, kept no
 * room to seal its reply (a change keeps it before it is made; this one was refused before
 * that): a pipeline of them behind a DESTROY outgrew the room the DESTROY kept, and when the
 * turn's replies then found no memory to be sealed the connection was closed without any of
 * them: the DESTROY was carried out and its client saw only the connection closed. */
Test(memory, a_sealed_refusal_keeps_the_room_for_the_replies_before_it,
     .init = start_failing_with_admin_secret, .fini = stop_with_admin_secret, .timeout = 300)
{
	int points = 0, failed_points = 0, internal = 0;

	for (int64_t point = 0; point < MAX_POINTS; point++, points++) {
		struct sessd_client *check = connect_to(daemon_.unix_url, auth_path);
		struct sealed s = sealed_open_with(daemon_.unix_url, app_secret);
		uint32_t status[1 + CLEARS];
		int replies = 0, got;
		struct buf frames;
		void *data = NULL;
		size_t len = 0;
		int64_t failed;

		cr_assert_eq(sessd_set(check, "s-0", 3, "data", 4, TTL_MS), SESSD_OK);
		buf_init(&frames);
		encode_refused_pipeline(&frames);
		atomic_store(&words[2], 0);
		atomic_store(&words[0], point);
		atomic_store(&words[1], 1);
		sealed_send(&s, &frames);
		/* Every reply, or the end of the stream (a dropped connection). */
		while (replies < 1 + CLEARS) {
			size_t avail = s.plain.len - s.plain_at, n;
			struct codec_reply rep;

			if (avail < CODEC_HEADER_BYTES ||
			    avail - CODEC_HEADER_BYTES <
			        (n = codec_frame_length(s.plain.data + s.plain_at))) {
				if (sealed_read_record(&s) == -1)
					break;
				continue;
			}
			cr_assert_eq(codec_decode_reply(
			                 s.plain.data + s.plain_at + CODEC_HEADER_BYTES, n, &rep),
			             0);
			cr_assert_eq(rep.request_id, 1 + (uint64_t)replies);
			status[replies++] = rep.status;
			s.plain_at += CODEC_HEADER_BYTES + n;
		}
		atomic_store(&words[1], 0);
		atomic_store(&words[0], 0);
		failed = atomic_load(&words[2]);
		buf_finish(&frames);
		got = sessd_get(check, "s-0", 3, &data, &len);
		free(data);
		cr_assert(got == SESSD_OK || got == SESSD_NOT_FOUND, "point %lld: GET %s",
		          (long long)point, sessd_strerror(got));
		cr_assert(replies > 0 || got == SESSD_OK,
		          "point %lld: the DESTROY was carried out, and its connection closed "
		          "without the reply",
		          (long long)point);
		cr_assert(replies == 0 || status[0] == CODEC_OK || status[0] == CODEC_INTERNAL,
		          "point %lld: DESTROY answered %u", (long long)point, status[0]);
		cr_assert(replies == 0 || (status[0] == CODEC_OK) == (got == SESSD_NOT_FOUND),
		          "point %lld: DESTROY answered %u, GET then %s", (long long)point,
		          status[0], sessd_strerror(got));
		for (int i = 1; i < replies; i++) {
			cr_assert(status[i] == CODEC_FORBIDDEN || status[i] == CODEC_INTERNAL,
			          "point %lld: CLEAR %d answered %u", (long long)point, i,
			          status[i]);
			internal += status[i] == CODEC_INTERNAL;
		}
		/* What was answered of it, the DESTROY at least, arrived: a refusal costs its
		 * client no reply of the requests before it. */
		cr_assert(replies == 1 + CLEARS || got == SESSD_OK,
		          "point %lld: %d of %d replies, then the connection closed",
		          (long long)point, replies, 1 + CLEARS);
		sealed_close(&s);
		sessd_close(check);
		if (failed == 0)
			break;
		failed_points++;
	}
	cr_assert_lt(points, MAX_POINTS, "the pipeline never ran out of allocations to fail");
	cr_assert_gt(failed_points, 0, "no allocation of the pipeline was failed");
	cr_log_info("%d allocation points failed in turn, %d CLEARs answered INTERNAL",
	            failed_points, internal);
}

/* Run connect-nomem (connect_nomem.c) against ${url} with failalloc.so and the secret in
 * ${auth_file}, shown plain when ${plain}, its output into ${out_path}; returns its exit
 * status, or -1 when it did not exit. */
static int run_connect_nomem(const char *url, const char *auth_file, bool plain,
                             const char *out_path)
{
	const char *bin = getenv("SESSD_CONNECT_NOMEM_BIN"), *so = getenv("SESSD_FAILALLOC_SO");
	int status = -1;
	pid_t pid;

	cr_assert_not_null(bin, "SESSD_CONNECT_NOMEM_BIN is not set (meson test sets it)");
	cr_assert_not_null(so, "SESSD_FAILALLOC_SO is not set (meson test sets it)");
	map_words();
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct harness_preload unused;
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd == -1 || dup2(fd, 1) == -1 || dup2(fd, 2) == -1)
			_exit(127);
		set_failing_env(so, &unused);
		execl(bin, bin, url, auth_file, plain ? "plain" : (char *)NULL, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Before, a connect whose HELLO reply found no memory said SESSD_ERR_CONNECT, errno
 * ECONNRESET ("HELLO failed: out of memory for a reply"), where sessd.h promises
 * SESSD_ERR_NOMEM with ENOMEM for the client's own want of memory: an app would take it for
 * a daemon down or a broken network. */
Test(memory, a_connect_without_memory_says_so, .init = start_with_secret, .fini = stop_with_secret,
     .timeout = 120)
{
	/* Sealed over both transports, and the secret shown plain (loopback allows it). */
	const char *urls[] = {daemon_.unix_url, daemon_.tcp_url, daemon_.unix_url};
	const bool plain[] = {false, false, true};
	char out_path[] = "/tmp/sessd-connect-nomem-XXXXXX";

	close(mkstemp(out_path));
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		int status = run_connect_nomem(urls[i], auth_path, plain[i], out_path);
		char *output = harness_read_text(out_path);

		cr_expect_eq(status, 0, "%s%s: connect-nomem exited %d:\n%s", urls[i],
		             plain[i] ? " (plain)" : " (sealed)", status, output);
		free(output);
	}
	unlink(out_path);
}
