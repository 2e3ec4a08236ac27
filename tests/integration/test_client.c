/*
 * libsessd against the real daemon: every call over Unix and TCP, the error paths, batches
 * deep enough to fill both socket buffers, several processes at once, reconnection after a
 * restart, timeouts against a stopped server, and URL and connect failures; the shared
 * secret of a daemon started with --auth-file, sealed (watched by a relay) and plain; and,
 * behind a relay or against a fake server, what a faulty or hostile server may send, sealed
 * servers that do not prove the secret and records that do not open included.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "heap.h"
#include "leakcheck.h"
#include "seal.h"
#include "sessd.h"

#define TTL_MS 60000u

static struct harness_daemon daemon_;

static void start_daemon(void)
{
	cr_assert_eq(harness_start(&daemon_, NULL), 0, "the daemon did not start");
}

static void start_small_frame_daemon(void)
{
	static const char *const args[] = {"--max-frame", "8192", NULL};

	cr_assert_eq(harness_start(&daemon_, args), 0, "the daemon did not start");
}

static void stop_daemon(void)
{
	if (daemon_.pid > 0)
		cr_expect_eq(harness_stop(&daemon_), 0, "the daemon did not stop cleanly");
}

static struct sessd_client *connect_ns(const char *url, const char *ns)
{
	struct sessd_options opts = {.timeout_ms = 10000, .ns = ns, .client_name = "test"};
	struct sessd_client *c = NULL;
	int rc;

	rc = sessd_connect(url, &opts, &c);
	cr_assert_eq(rc, SESSD_OK, "connect %s: %s", url, sessd_strerror(rc));
	cr_assert_not_null(c);
	return c;
}

static struct sessd_client *connect_to(const char *url)
{
	return connect_ns(url, NULL);
}

/* Assert GET returns exactly ${len} bytes of ${want}. */
static void expect_data(struct sessd_client *c, const void *id, size_t id_len, const void *want,
                        size_t len)
{
	void *data = NULL;
	size_t got = 0;
	int rc;

	rc = sessd_get(c, id, id_len, &data, &got);
	cr_assert_eq(rc, SESSD_OK, "get: %s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert_eq(got, len, "get returned %zu bytes, not %zu", got, len);
	cr_assert(len == 0 || memcmp(data, want, len) == 0, "get returned other bytes");
	cr_assert_eq(((const char *)data)[got], '\0', "no NUL after the data");
	free(data);
}

static void expect_missing(struct sessd_client *c, const void *id, size_t id_len)
{
	void *data = (void *)1;
	size_t len = 1;

	cr_assert_eq(sessd_get(c, id, id_len, &data, &len), SESSD_NOT_FOUND);
	cr_assert_null(data);
	cr_assert_eq(len, 0);
}

static void session_ops(const char *url)
{
	struct sessd_client *c = connect_to(url);
	const char *id = "sess-1";

	cr_assert_eq(sessd_ping(c), SESSD_OK);
	cr_assert_eq(strlen(sessd_server_id(c)), 32);
	cr_assert_eq(strspn(sessd_server_id(c), "0123456789abcdef"), 32);
	cr_assert_eq(sessd_max_frame(c), 1048576);

	expect_missing(c, id, strlen(id));
	cr_assert_eq(sessd_touch(c, id, strlen(id), TTL_MS), SESSD_NOT_FOUND);
	cr_assert_eq(sessd_destroy(c, id, strlen(id)), SESSD_NOT_FOUND);

	cr_assert_eq(sessd_set(c, id, strlen(id), "{\"n\":1}", 7, TTL_MS), SESSD_OK);
	expect_data(c, id, strlen(id), "{\"n\":1}", 7);
	cr_assert_eq(sessd_set(c, id, strlen(id), "{\"n\":2}", 7, TTL_MS), SESSD_OK);
	expect_data(c, id, strlen(id), "{\"n\":2}", 7);
	cr_assert_eq(sessd_touch(c, id, strlen(id), 2 * TTL_MS), SESSD_OK);
	expect_data(c, id, strlen(id), "{\"n\":2}", 7);
	cr_assert_eq(sessd_destroy(c, id, strlen(id)), SESSD_OK);
	expect_missing(c, id, strlen(id));
	cr_assert_eq(sessd_destroy(c, id, strlen(id)), SESSD_NOT_FOUND);
	cr_assert_str_eq(sessd_errmsg(c), "not found");
	sessd_close(c);
}

TestSuite(client, .init = start_daemon, .fini = stop_daemon, .timeout = 240);

LEAK_CHECKED_TEST(client, session_ops_over_unix)
{
	session_ops(daemon_.unix_url);
}

LEAK_CHECKED_TEST(client, session_ops_over_tcp)
{
	session_ops(daemon_.tcp_url);
}

LEAK_CHECKED_TEST(client, tcp_by_host_name)
{
	char url[128];
	const char *port = strrchr(daemon_.tcp_url, ':') + 1;
	struct sessd_client *c;

	snprintf(url, sizeof(url), "tcp://localhost:%s", port);
	/* localhost may resolve to ::1 first; the client tries each address in turn. */
	c = connect_to(url);
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	sessd_close(c);
}

/*
 * A pooled connection that a NAT or load balancer dropped for being quiet (Azure's forgets
 * one idle 4 minutes), or whose sessd's host vanished, was found only by the next call timing
 * out. libsessd has the kernel probe a TCP connection idle a minute.
 */
LEAK_CHECKED_TEST(client, a_tcp_connection_is_probed_once_idle)
{
	struct sessd_client *c = connect_to(daemon_.tcp_url);
	double seconds = 0;
	int timer = -1;

	cr_assert_eq(sessd_ping(c), SESSD_OK);
	cr_assert_eq(harness_tcp_timer(0, harness_url_port(daemon_.tcp_url), &timer, &seconds), 0,
	             "no connection to %s", daemon_.tcp_url);
	cr_expect_eq(timer, 2, "the client's side has timer %d, not keepalive's", timer);
	cr_expect(seconds > 7 && seconds <= 60, "the first probe comes in %.1f s, not 60", seconds);
	sessd_close(c);
}

LEAK_CHECKED_TEST(client, binary_data_and_ids)
{
	struct sessd_client *c = connect_to(daemon_.tcp_url);
	uint8_t data[1024], id[128];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	for (size_t i = 0; i < sizeof(id); i++)
		id[i] = (uint8_t)(255 - i);
	id[5] = 0;
	cr_assert_eq(sessd_set(c, id, sizeof(id), data, sizeof(data), TTL_MS), SESSD_OK);
	expect_data(c, id, sizeof(id), data, sizeof(data));
	/* An id with a NUL is not the id cut at the NUL. */
	expect_missing(c, id, 5);

	cr_assert_eq(sessd_set(c, "empty", 5, NULL, 0, TTL_MS), SESSD_OK);
	expect_data(c, "empty", 5, "", 0);
	sessd_close(c);
}

LEAK_CHECKED_TEST(client, bad_arguments_are_usage_errors)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	char long_id[129], long_type[66];
	struct sessd_flashes *f;
	void *data;
	size_t len;

	memset(long_id, 'x', sizeof(long_id));
	memset(long_type, 't', sizeof(long_type) - 1);
	long_type[sizeof(long_type) - 1] = '\0';
	cr_assert_eq(sessd_set(c, "", 0, "x", 1, TTL_MS), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_set(c, long_id, 129, "x", 1, TTL_MS), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_set(c, long_id, 128, "x", 1, TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_set(c, "a", 1, "x", 1, 0), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_set(c, "a", 1, "x", 1, 10ull * 366 * 24 * 3600 * 1000 + 1),
	             SESSD_ERR_USAGE);
	cr_assert_eq(sessd_set(c, "a", 1, NULL, 3, TTL_MS), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_touch(c, "a", 1, 0), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_get(c, NULL, 1, &data, &len), SESSD_ERR_USAGE);
	/* A refused argument says so, rather than leave the last call's words. */
	cr_assert_eq(sessd_get(c, "no-such", 7, &data, &len), SESSD_NOT_FOUND);
	cr_assert_eq(sessd_get(c, "a", 1, NULL, &len), SESSD_ERR_USAGE);
	cr_assert(strstr(sessd_errmsg(c), "no place for the data") != NULL, "errmsg: %s",
	          sessd_errmsg(c));
	cr_assert_eq(sessd_count(c, NULL), SESSD_ERR_USAGE);
	cr_assert(strstr(sessd_errmsg(c), "count is NULL") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_list(c, 0, 10, NULL), SESSD_ERR_USAGE);
	cr_assert(strstr(sessd_errmsg(c), "out is NULL") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_flash_push(c, "a", 1, "", "m", 1, TTL_MS, NULL), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_flash_push(c, "a", 1, long_type, "m", 1, TTL_MS, NULL), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_flash_pop(c, "a", 1, long_type, &f), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_set_namespace(c, ""), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_set_namespace(c, long_type), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_ping(NULL), SESSD_ERR_USAGE);
	cr_assert_neq(sessd_errmsg(c)[0], '\0');
	/* None of that cost the connection. */
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	sessd_close(c);
	sessd_close(NULL);
}

/*
 * sessd.h: result pointers (and GET's length) are cleared first and stay so on any result but
 * SESSD_OK, so an application may free them after any call. That holds for every usage error
 * too, a NULL client (a connect that failed, passed on) and a NULL flashes of sessd_load
 * included, not only for the errors found after the pointers were cleared.
 */
LEAK_CHECKED_TEST(client, result_pointers_are_cleared_on_every_usage_error)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	struct sessd_flashes *f;
	struct sessd_list *l;
	struct sessd_namespaces *ns;
	struct sessd_stats *st;
	void *data;
	size_t len;
	uint64_t flashes;

	data = (void *)&data;
	len = 7;
	cr_assert_eq(sessd_get(NULL, "a", 1, &data, &len), SESSD_ERR_USAGE);
	cr_assert_null(data);
	cr_assert_eq(len, 0);
	data = (void *)&data;
	len = 7;
	cr_assert_eq(sessd_load(NULL, "a", 1, &data, &len, &flashes), SESSD_ERR_USAGE);
	cr_assert_null(data);
	cr_assert_eq(len, 0);
	data = (void *)&data;
	len = 7;
	cr_assert_eq(sessd_load(c, "a", 1, &data, &len, NULL), SESSD_ERR_USAGE);
	cr_assert_null(data);
	cr_assert_eq(len, 0);
	len = 7;
	cr_assert_eq(sessd_get(c, "a", 1, NULL, &len), SESSD_ERR_USAGE);
	cr_assert_eq(len, 0);
	f = (void *)&f;
	cr_assert_eq(sessd_flash_pop(NULL, "a", 1, NULL, &f), SESSD_ERR_USAGE);
	cr_assert_null(f);
	l = (void *)&l;
	cr_assert_eq(sessd_list(NULL, 0, 10, &l), SESSD_ERR_USAGE);
	cr_assert_null(l);
	ns = (void *)&ns;
	cr_assert_eq(sessd_namespaces(NULL, 0, 10, &ns), SESSD_ERR_USAGE);
	cr_assert_null(ns);
	st = (void *)&st;
	cr_assert_eq(sessd_stats(NULL, 1, &st), SESSD_ERR_USAGE);
	cr_assert_null(st);
	/* And on the ordinary paths, as before. */
	data = (void *)&data;
	len = 7;
	cr_assert_eq(sessd_get(c, "no-such", 7, &data, &len), SESSD_NOT_FOUND);
	cr_assert_null(data);
	cr_assert_eq(len, 0);
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	sessd_close(c);
}

/*
 * sessd_ttl (PROTOCOL.md, TTL): the remaining lifetime of one session, a flash-only one too,
 * moving nothing; NOT_FOUND leaves the number alone. And the same in a batch.
 */
LEAK_CHECKED_TEST(client, ttl_gives_the_remaining_lifetime)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	struct sessd_batch *b;
	uint64_t ms = 77;
	size_t len;

	cr_assert_eq(sessd_ttl(c, "ttl-none", 8, &ms), SESSD_NOT_FOUND);
	cr_assert_eq(ms, 77, "numbers are left alone but on SESSD_OK");
	cr_assert_eq(sessd_set(c, "ttl-a", 5, "x", 1, TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_ttl(c, "ttl-a", 5, &ms), SESSD_OK);
	cr_assert(ms > TTL_MS - 5000 && ms <= TTL_MS, "%llu ms left of %u", (unsigned long long)ms,
	          TTL_MS);
	cr_assert_eq(sessd_touch(c, "ttl-a", 5, 2 * TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_ttl(c, "ttl-a", 5, &ms), SESSD_OK);
	cr_assert(ms > 2 * TTL_MS - 5000 && ms <= 2 * TTL_MS, "touched: %llu ms left",
	          (unsigned long long)ms);
	/* A session of flashes only lives, and has a ttl. */
	cr_assert_eq(sessd_flash_push(c, "ttl-f", 5, "info", "m", 1, 3000, NULL), SESSD_OK);
	cr_assert_eq(sessd_ttl(c, "ttl-f", 5, &ms), SESSD_OK);
	cr_assert(ms > 0 && ms <= 3000, "flashes only: %llu ms left", (unsigned long long)ms);
	cr_assert_eq(sessd_destroy(c, "ttl-a", 5), SESSD_OK);
	cr_assert_eq(sessd_ttl(c, "ttl-a", 5, &ms), SESSD_NOT_FOUND);
	/* Another namespace is another session. */
	cr_assert_eq(sessd_set_namespace(c, "ttl-other"), SESSD_OK);
	cr_assert_eq(sessd_ttl(c, "ttl-f", 5, &ms), SESSD_NOT_FOUND);
	cr_assert_eq(sessd_set_namespace(c, "default"), SESSD_OK);
	/* Bad arguments. */
	cr_assert_eq(sessd_ttl(c, "ttl-f", 5, NULL), SESSD_ERR_USAGE);
	cr_assert(strstr(sessd_errmsg(c), "ttl_ms is NULL") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_ttl(c, "", 0, &ms), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_ttl(NULL, "x", 1, &ms), SESSD_ERR_USAGE);

	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	errno = 0;
	cr_assert_eq(sessd_batch_ttl(b, "", 0), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(sessd_batch_set(b, "ttl-b", 5, "v", 1, TTL_MS), 0);
	cr_assert_eq(sessd_batch_ttl(b, "ttl-b", 5), 1);
	cr_assert_eq(sessd_batch_ttl(b, "ttl-none", 8), 2);
	cr_assert_eq(sessd_batch_get(b, "ttl-b", 5), 3);
	cr_assert_eq(sessd_batch_run(b), SESSD_OK);
	cr_assert_eq(sessd_batch_status(b, 1), SESSD_OK);
	ms = sessd_batch_ttl_ms(b, 1);
	cr_assert(ms > TTL_MS - 5000 && ms <= TTL_MS, "batch: %llu ms left",
	          (unsigned long long)ms);
	cr_assert_eq(sessd_batch_status(b, 2), SESSD_NOT_FOUND);
	cr_assert_eq(sessd_batch_ttl_ms(b, 2), 0);
	cr_assert_eq(sessd_batch_ttl_ms(b, 3), 0, "a GET has no ttl");
	cr_assert_eq(sessd_batch_ttl_ms(b, 9), 0);
	cr_assert_not_null(sessd_batch_data(b, 3, &len));
	cr_assert_null(sessd_batch_data(b, 1, &len), "a TTL has no data");
	sessd_batch_free(b);
	cr_assert_eq(sessd_batch_ttl_ms(NULL, 0), 0);
	sessd_close(c);
}

/*
 * sessd_load (PROTOCOL.md, LOAD): a GET that also says how many flash messages are queued,
 * popping none; NOT_FOUND as GET's (flashes only included), leaving the count alone.
 */
LEAK_CHECKED_TEST(client, destroy_if_flash_removes_only_while_its_message_is_first)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	struct sessd_client *other = connect_to(daemon_.unix_url);
	size_t queued = 0;
	uint64_t ms = 0;

	cr_assert_eq(sessd_destroy_if_flash(c, "lock-a", 6, "move", "tok-1", 5), SESSD_NOT_FOUND);
	/* A lock: the first push holds it; another holder's push queues behind. */
	cr_assert_eq(sessd_flash_push(c, "lock-a", 6, "move", "tok-1", 5, TTL_MS, &queued),
	             SESSD_OK);
	cr_assert_eq(queued, 1);
	cr_assert_eq(sessd_flash_push(other, "lock-a", 6, "move", "tok-2", 5, TTL_MS, &queued),
	             SESSD_OK);
	cr_assert_eq(queued, 2);
	cr_assert_eq(sessd_destroy_if_flash(other, "lock-a", 6, "move", "tok-2", 5), SESSD_CONFLICT,
	             "%s", sessd_errmsg(other));
	cr_assert_eq(sessd_destroy_if_flash(other, "lock-a", 6, "other", "tok-1", 5),
	             SESSD_CONFLICT, "another type's queue is empty");
	cr_assert_eq(sessd_destroy_if_flash(other, "lock-a", 6, "move", "tok-", 4), SESSD_CONFLICT,
	             "a prefix is another message");
	cr_assert_eq(sessd_ttl(c, "lock-a", 6, &ms), SESSD_OK, "a CONFLICT changes nothing");
	cr_assert_eq(sessd_destroy_if_flash(c, "lock-a", 6, "move", "tok-1", 5), SESSD_OK, "%s",
	             sessd_errmsg(c));
	cr_assert_eq(sessd_ttl(c, "lock-a", 6, &ms), SESSD_NOT_FOUND, "removed with its queue");
	/* Sent again (its reply lost), it removes nothing: not a lock another took since. */
	cr_assert_eq(sessd_flash_push(other, "lock-a", 6, "move", "tok-2", 5, TTL_MS, &queued),
	             SESSD_OK);
	cr_assert_eq(sessd_destroy_if_flash(c, "lock-a", 6, "move", "tok-1", 5), SESSD_CONFLICT);
	cr_assert_eq(sessd_ttl(other, "lock-a", 6, &ms), SESSD_OK);
	/* An empty message is a message; the connection stays open after each answer. */
	cr_assert_eq(sessd_flash_push(c, "lock-b", 6, "move", "", 0, TTL_MS, NULL), SESSD_OK);
	cr_assert_eq(sessd_destroy_if_flash(c, "lock-b", 6, "move", NULL, 0), SESSD_OK);
	cr_assert_eq(sessd_destroy_if_flash(c, "lock-a", 6, "move", "tok-2", 5), SESSD_OK);
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	/* Bad arguments. */
	cr_assert_eq(sessd_destroy_if_flash(c, "", 0, "move", "x", 1), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_destroy_if_flash(c, "x", 1, "", "x", 1), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_destroy_if_flash(c, "x", 1, NULL, "x", 1), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_destroy_if_flash(c, "x", 1, "move", NULL, 1), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_destroy_if_flash(NULL, "x", 1, "move", "x", 1), SESSD_ERR_USAGE);
	sessd_close(other);
	sessd_close(c);
}

LEAK_CHECKED_TEST(client, load_gives_the_data_and_the_queued_flashes)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	struct sessd_flashes *f = NULL;
	void *data = NULL;
	size_t len = 0;
	uint64_t flashes = 77;

	cr_assert_eq(sessd_load(c, "load-none", 9, &data, &len, &flashes), SESSD_NOT_FOUND);
	cr_assert_null(data);
	cr_assert_eq(flashes, 77, "numbers are left alone but on SESSD_OK");
	cr_assert_eq(sessd_set(c, "load-a", 6, "cart", 4, TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_load(c, "load-a", 6, &data, &len, &flashes), SESSD_OK);
	cr_assert_eq(len, 4);
	cr_assert_str_eq(data, "cart", "NUL-terminated as sessd_get's");
	cr_assert_eq(flashes, 0);
	free(data);
	cr_assert_eq(sessd_flash_push_existing(c, "load-a", 6, "info", "one", 3, TTL_MS, NULL),
	             SESSD_OK);
	cr_assert_eq(sessd_flash_push_existing(c, "load-a", 6, "error", "two", 3, TTL_MS, NULL),
	             SESSD_OK);
	cr_assert_eq(sessd_load(c, "load-a", 6, &data, &len, &flashes), SESSD_OK);
	cr_assert_eq(flashes, 2);
	free(data);
	/* It popped nothing. */
	cr_assert_eq(sessd_flash_pop(c, "load-a", 6, NULL, &f), SESSD_OK);
	cr_assert_eq(f->count, 2);
	sessd_flashes_free(f);
	cr_assert_eq(sessd_load(c, "load-a", 6, &data, &len, &flashes), SESSD_OK);
	cr_assert_eq(flashes, 0);
	free(data);
	/* A session of flashes only has no data: NOT_FOUND, as GET. */
	cr_assert_eq(sessd_flash_push(c, "load-f", 6, "info", "m", 1, TTL_MS, NULL), SESSD_OK);
	cr_assert_eq(sessd_load(c, "load-f", 6, &data, &len, &flashes), SESSD_NOT_FOUND);
	/* Bad arguments. */
	cr_assert_eq(sessd_load(c, "load-a", 6, &data, &len, NULL), SESSD_ERR_USAGE);
	cr_assert(strstr(sessd_errmsg(c), "flashes is NULL") != NULL, "errmsg: %s",
	          sessd_errmsg(c));
	cr_assert_eq(sessd_load(c, "load-a", 6, NULL, &len, &flashes), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_load(c, "", 0, &data, &len, &flashes), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_load(NULL, "x", 1, &data, &len, &flashes), SESSD_ERR_USAGE);
	sessd_close(c);
}

LEAK_CHECKED_TEST(client, large_values_up_to_max_frame)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	uint32_t max = sessd_max_frame(c);
	/* A SET frame adds at most 40 bytes around the data with this id and no namespace. */
	size_t big = max - 40;
	uint8_t *data = malloc(max + 1);

	cr_assert_not_null(data);
	for (size_t i = 0; i <= max; i++)
		data[i] = (uint8_t)(i % 251);
	cr_assert_eq(sessd_set(c, "big", 3, data, big, TTL_MS), SESSD_OK, "%s", sessd_errmsg(c));
	expect_data(c, "big", 3, data, big);

	cr_assert_eq(sessd_set(c, "big", 3, data, max + 1, TTL_MS), SESSD_ERR_TOO_LARGE);
	cr_assert(strstr(sessd_errmsg(c), "max_frame") != NULL, "errmsg: %s", sessd_errmsg(c));
	/* It says how much data would fit: exactly that much does. */
	{
		const char *msg = sessd_errmsg(c), *fit = strstr(msg, "limit: ");
		size_t fits;

		cr_assert_not_null(fit, "errmsg: %s", msg);
		fits = strtoul(fit + 7, NULL, 10);
		cr_assert(fits > big && fits <= max, "%zu fit, says %s", fits, msg);
		cr_assert_eq(sessd_set(c, "big", 3, data, fits, TTL_MS), SESSD_OK, "%s",
		             sessd_errmsg(c));
		cr_assert_eq(sessd_set(c, "big", 3, data, fits + 1, TTL_MS), SESSD_ERR_TOO_LARGE);
		cr_assert_eq(sessd_set(c, "big", 3, data, big, TTL_MS), SESSD_OK);
	}
	/* The old value is untouched and the client goes on. */
	expect_data(c, "big", 3, data, big);
	free(data);
	sessd_close(c);
}

/*
 * A batch queued against a 1 MiB limit runs after the daemon came back with 8 KiB: its 64 KiB
 * SET would be refused unread by the server, which then closes the connection, after it had
 * carried out the requests before it (the batch half done) and with the bytes sent for
 * nothing. The run re-checks each frame against the max_frame of the HELLO it reconnected with
 * and refuses the batch before sending any of it: SESSD_ERR_TOO_LARGE for every request,
 * words naming the one too large, the connection kept. Queued again, that request is refused
 * at once (EMSGSIZE).
 */
static void batch_outgrown_by_a_smaller_max_frame(const char *which)
{
	static const char *const small[] = {"--max-frame", "8192", NULL};
	struct sessd_client *c;
	struct sessd_batch *b;
	size_t len = 65536, got_len;
	uint8_t *data = calloc(1, len);
	void *got = NULL;
	const char *url;

	cr_assert_not_null(data);
	url = strcmp(which, "unix") == 0 ? daemon_.unix_url : daemon_.tcp_url;
	c = connect_to(url);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	cr_assert_eq(sessd_batch_set(b, "before", 6, "x", 1, TTL_MS), 0);
	cr_assert_eq(sessd_batch_set(b, "big", 3, data, len, TTL_MS), 1);
	cr_assert_eq(sessd_batch_ping(b), 2);
	cr_assert_eq(harness_kill(&daemon_), 0);
	cr_assert_eq(harness_restart(&daemon_, small), 0);

	cr_assert_eq(sessd_batch_run(b), SESSD_ERR_TOO_LARGE, "run: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_max_frame(c), 8192);
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(sessd_batch_status(b, i), SESSD_ERR_TOO_LARGE, "%zu", i);
	cr_assert(strstr(sessd_errmsg(c), "request 1 of the batch (SET, 65") != NULL &&
	              strstr(sessd_errmsg(c), "max_frame of 8192") != NULL &&
	              strstr(sessd_errmsg(c), "nothing was sent") != NULL,
	          "errmsg: %s", sessd_errmsg(c));
	/* Nothing of it was carried out, and the connection it reconnected with goes on. */
	cr_assert_eq(sessd_get(c, "before", 6, &got, &got_len), SESSD_NOT_FOUND, "%s",
	             sessd_errmsg(c));
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_batch_reset(b);
	errno = 0;
	cr_assert_eq(sessd_batch_set(b, "big", 3, data, len, TTL_MS), -1);
	cr_assert_eq(errno, EMSGSIZE);
	cr_assert_eq(sessd_set(c, "big", 3, data, 8192, TTL_MS), SESSD_ERR_TOO_LARGE);
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	sessd_batch_free(b);
	sessd_close(c);
	free(data);
}

LEAK_CHECKED_TEST(client, a_batch_outgrown_by_a_smaller_max_frame_is_not_sent_unix)
{
	batch_outgrown_by_a_smaller_max_frame("unix");
}

LEAK_CHECKED_TEST(client, a_batch_outgrown_by_a_smaller_max_frame_is_not_sent_tcp)
{
	batch_outgrown_by_a_smaller_max_frame("tcp");
}

LEAK_CHECKED_TEST(client, namespaces_isolate)
{
	struct sessd_client *a = connect_ns(daemon_.tcp_url, "app-a");
	struct sessd_client *b = connect_ns(daemon_.unix_url, "app-b");
	struct sessd_client *d = connect_to(daemon_.unix_url);
	uint64_t n, removed;

	cr_assert_eq(sessd_set(a, "same", 4, "from a", 6, TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_set(b, "same", 4, "from b", 6, TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_set(b, "other", 5, "b2", 2, TTL_MS), SESSD_OK);
	expect_data(a, "same", 4, "from a", 6);
	expect_data(b, "same", 4, "from b", 6);
	expect_missing(d, "same", 4);
	expect_missing(a, "other", 5);
	cr_assert_eq(sessd_count(a, &n), SESSD_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(sessd_count(b, &n), SESSD_OK);
	cr_assert_eq(n, 2);

	/* "default" by name is the default namespace. */
	cr_assert_eq(sessd_set(d, "dflt", 4, "d", 1, TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_set_namespace(a, "default"), SESSD_OK);
	expect_data(a, "dflt", 4, "d", 1);
	cr_assert_eq(sessd_set_namespace(a, "app-a"), SESSD_OK);

	cr_assert_eq(sessd_clear(b, &removed), SESSD_OK);
	cr_assert_eq(removed, 2);
	cr_assert_eq(sessd_count(b, &n), SESSD_OK);
	cr_assert_eq(n, 0);
	expect_data(a, "same", 4, "from a", 6);
	cr_assert_eq(sessd_clear(b, NULL), SESSD_OK);
	sessd_close(a);
	sessd_close(b);
	sessd_close(d);
}

/*
 * A namespace is any 1..64 bytes, NUL included (PROTOCOL.md), and sessd_namespaces lists such
 * a name; sessd_set_namespace, which takes a C string, could not name it back, so neither
 * could sessctl. sessd_set_namespace_len takes the bytes.
 */
LEAK_CHECKED_TEST(client, a_namespace_of_any_bytes_is_named_with_its_length)
{
	struct sessd_client *a = connect_to(daemon_.unix_url);
	struct sessd_client *b = connect_ns(daemon_.unix_url, "a");
	char long_ns[65];
	uint64_t n;

	cr_assert_eq(sessd_set_namespace_len(a, "a\0b", 3), SESSD_OK);
	cr_assert_eq(sessd_set(a, "s", 1, "nul", 3, TTL_MS), SESSD_OK);
	expect_data(a, "s", 1, "nul", 3);
	expect_missing(b, "s", 1);
	cr_assert_eq(sessd_count(a, &n), SESSD_OK);
	cr_assert_eq(n, 1);
	/* "default" by its bytes is the default namespace too. */
	cr_assert_eq(sessd_set(b, "d", 1, "x", 1, TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_set_namespace_len(b, "default", 7), SESSD_OK);
	expect_missing(b, "d", 1);
	memset(long_ns, 'n', sizeof(long_ns));
	cr_assert_eq(sessd_set_namespace_len(a, long_ns, 0), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_set_namespace_len(a, long_ns, 65), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_set_namespace_len(a, NULL, 1), SESSD_ERR_USAGE);
	/* A refused name changed nothing. */
	expect_data(a, "s", 1, "nul", 3);
	cr_assert_eq(sessd_clear(a, NULL), SESSD_OK);
	sessd_close(a);
	sessd_close(b);
}

LEAK_CHECKED_TEST(client, flash_push_and_pop)
{
	struct sessd_client *c = connect_to(daemon_.tcp_url);
	struct sessd_flashes *f = NULL;
	size_t queued = 0;
	uint64_t n;

	cr_assert_eq(sessd_flash_pop(c, "f", 1, NULL, &f), SESSD_NOT_FOUND);
	cr_assert_null(f);
	/* A flash before the session is saved creates it without data. */
	cr_assert_eq(sessd_flash_push(c, "f", 1, "info", "one", 3, TTL_MS, &queued), SESSD_OK);
	cr_assert_eq(queued, 1);
	expect_missing(c, "f", 1);
	cr_assert_eq(sessd_count(c, &n), SESSD_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(sessd_flash_push(c, "f", 1, "info", "two\0x", 5, TTL_MS, &queued), SESSD_OK);
	cr_assert_eq(queued, 2);
	cr_assert_eq(sessd_flash_push(c, "f", 1, "error", "bad", 3, TTL_MS, NULL), SESSD_OK);
	cr_assert_eq(sessd_flash_push(c, "f", 1, "info", "", 0, TTL_MS, &queued), SESSD_OK);
	cr_assert_eq(queued, 3);
	/* A whole-session SET leaves the flashes alone. */
	cr_assert_eq(sessd_set(c, "f", 1, "data", 4, TTL_MS), SESSD_OK);

	cr_assert_eq(sessd_flash_pop(c, "f", 1, "info", &f), SESSD_OK);
	cr_assert_eq(f->count, 3);
	cr_assert_str_eq(f->items[0].type, "info");
	cr_assert_eq(f->items[0].msg_len, 3);
	cr_assert_eq(memcmp(f->items[0].msg, "one", 4), 0);
	cr_assert_eq(f->items[1].msg_len, 5);
	cr_assert_eq(memcmp(f->items[1].msg, "two\0x", 6), 0);
	cr_assert_eq(f->items[2].msg_len, 0);
	cr_assert_eq(f->items[0].is_bin, 0);
	sessd_flashes_free(f);

	cr_assert_eq(sessd_flash_pop(c, "f", 1, "info", &f), SESSD_OK);
	cr_assert_eq(f->count, 0);
	sessd_flashes_free(f);

	cr_assert_eq(sessd_flash_push(c, "f", 1, "info", "again", 5, TTL_MS, NULL), SESSD_OK);
	cr_assert_eq(sessd_flash_pop(c, "f", 1, NULL, &f), SESSD_OK);
	cr_assert_eq(f->count, 2);
	/* Types in the order of their oldest message: error was queued first. */
	cr_assert_str_eq(f->items[0].type, "error");
	cr_assert_str_eq((const char *)f->items[0].msg, "bad");
	cr_assert_str_eq(f->items[1].type, "info");
	cr_assert_str_eq((const char *)f->items[1].msg, "again");
	sessd_flashes_free(f);

	cr_assert_eq(sessd_flash_pop(c, "f", 1, NULL, &f), SESSD_OK);
	cr_assert_eq(f->count, 0);
	sessd_flashes_free(f);
	expect_data(c, "f", 1, "data", 4);
	cr_assert_eq(sessd_destroy(c, "f", 1), SESSD_OK);
	cr_assert_eq(sessd_flash_pop(c, "f", 1, "info", &f), SESSD_NOT_FOUND);
	sessd_flashes_free(NULL);
	sessd_close(c);
}

LEAK_CHECKED_TEST(client, list_scans_every_session)
{
	struct sessd_client *c = connect_ns(daemon_.unix_url, "listing");
	struct sessd_batch *b = sessd_batch_new(c);
	struct sessd_list *page;
	uint8_t *seen = calloc(2500, 1);
	uint64_t cursor = 0, n;
	size_t total = 0, pages = 0;
	char id[32];
	unsigned k;

	cr_assert_not_null(b);
	cr_assert_not_null(seen);
	for (int i = 0; i < 2500; i++) {
		snprintf(id, sizeof(id), "list-%04d", i);
		cr_assert_eq(sessd_batch_set(b, id, strlen(id), "v", 1, TTL_MS), i);
	}
	cr_assert_eq(sessd_batch_run(b), SESSD_OK, "%s", sessd_errmsg(c));
	for (int i = 0; i < 2500; i++)
		cr_assert_eq(sessd_batch_status(b, (size_t)i), SESSD_OK);
	cr_assert_eq(sessd_count(c, &n), SESSD_OK);
	cr_assert_eq(n, 2500);

	do {
		cr_assert_eq(sessd_list(c, cursor, 333, &page), SESSD_OK, "%s", sessd_errmsg(c));
		cr_assert_leq(page->count, 333);
		for (size_t i = 0; i < page->count; i++) {
			cr_assert_eq(page->items[i].id_len, 9);
			cr_assert_eq(memcmp(page->items[i].id, "list-", 5), 0);
			cr_assert_eq(((const char *)page->items[i].id)[9], '\0');
			k = (unsigned)atoi((const char *)page->items[i].id + 5);
			cr_assert_lt(k, 2500);
			cr_assert_gt(page->items[i].ttl_ms, 0);
			cr_assert_leq(page->items[i].ttl_ms, TTL_MS);
			seen[k] = 1;
			total++;
		}
		cursor = page->next_cursor;
		sessd_list_free(page);
		cr_assert_lt(++pages, 10000, "the scan does not end");
	} while (cursor != 0);
	cr_assert_geq(total, 2500);
	for (int i = 0; i < 2500; i++)
		cr_assert_eq(seen[i], 1, "session %d was not listed", i);
	sessd_list_free(NULL);
	free(seen);
	sessd_batch_free(b);
	sessd_close(c);
}

static uint64_t stat_value(const struct sessd_stats *s, const char *name, int *found)
{
	for (size_t i = 0; i < s->count; i++)
		if (strcmp(s->items[i].name, name) == 0) {
			*found = 1;
			return s->items[i].value;
		}
	*found = 0;
	return 0;
}

LEAK_CHECKED_TEST(client, stats)
{
	struct sessd_client *c = connect_ns(daemon_.unix_url, "st");
	struct sessd_stats *s;
	int found;

	cr_assert_eq(sessd_set(c, "a", 1, "12345", 5, TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_set(c, "b", 1, "12345", 5, TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_flash_push(c, "b", 1, "info", "m", 1, TTL_MS, NULL), SESSD_OK);

	cr_assert_eq(sessd_stats(c, 0, &s), SESSD_OK);
	cr_assert_eq(stat_value(s, "sessions", &found), 2);
	cr_assert(found);
	cr_assert_eq(stat_value(s, "flashes", &found), 1);
	cr_assert(found);
	cr_assert_geq(stat_value(s, "bytes", &found), 10);
	cr_assert(found);
	sessd_stats_free(s);

	cr_assert_eq(sessd_stats(c, 1, &s), SESSD_OK);
	cr_assert_geq(stat_value(s, "sessions", &found), 2);
	cr_assert(found);
	cr_assert_geq(stat_value(s, "connections", &found), 1);
	cr_assert(found);
	cr_assert_gt(stat_value(s, "requests_total", &found), 0);
	cr_assert(found);
	stat_value(s, "uptime_ms", &found);
	cr_assert(found);
	sessd_stats_free(s);
	sessd_stats_free(NULL);
	sessd_close(c);
}

/*
 * A batch of ${n} requests in rounds of five per id: SET, GET, TOUCH, FLASH_PUSH, and then
 * FLASH_POP or DESTROY (which makes the next id's GET of it NOT_FOUND), all checked.
 */
static void mixed_batch(const char *url, int n)
{
	struct sessd_client *c = connect_ns(url, "batch");
	struct sessd_batch *b = sessd_batch_new(c);
	const struct sessd_flashes *f;
	const void *data;
	char id[32], value[64];
	size_t len;
	int rounds = n / 5, idx, rc;

	cr_assert_not_null(b);
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < rounds; i++) {
			snprintf(id, sizeof(id), "b-%d", i);
			snprintf(value, sizeof(value), "value %d pass %d", i, pass);
			idx = sessd_batch_set(b, id, strlen(id), value, strlen(value), TTL_MS);
			cr_assert_eq(idx, 5 * i);
			sessd_batch_get(b, id, strlen(id));
			sessd_batch_touch(b, id, strlen(id), TTL_MS);
			sessd_batch_flash_push(b, id, strlen(id), "info", value, strlen(value),
			                       TTL_MS);
			if (i % 2 == 0)
				sessd_batch_flash_pop(b, id, strlen(id),
				                      i % 4 == 0 ? "info" : NULL);
			else
				sessd_batch_destroy(b, id, strlen(id));
		}
		rc = sessd_batch_run(b);
		cr_assert_eq(rc, SESSD_OK, "batch of %d: %s (%s)", n, sessd_strerror(rc),
		             sessd_errmsg(c));
		for (int i = 0; i < rounds; i++) {
			snprintf(value, sizeof(value), "value %d pass %d", i, pass);
			for (int k = 0; k < 5; k++)
				cr_assert_eq(
				    sessd_batch_status(b, (size_t)(5 * i + k)), SESSD_OK,
				    "request %d: %s", 5 * i + k,
				    sessd_strerror(sessd_batch_status(b, (size_t)(5 * i + k))));
			data = sessd_batch_data(b, (size_t)(5 * i + 1), &len);
			cr_assert_not_null(data);
			cr_assert_eq(len, strlen(value));
			cr_assert_eq(memcmp(data, value, len + 1), 0);
			cr_assert_null(sessd_batch_data(b, (size_t)(5 * i), &len));
			if (i % 2 == 0) {
				f = sessd_batch_flashes(b, (size_t)(5 * i + 4));
				cr_assert_not_null(f);
				cr_assert_eq(f->count, 1);
				cr_assert_str_eq(f->items[0].type, "info");
				cr_assert_str_eq((const char *)f->items[0].msg, value);
			} else {
				cr_assert_null(sessd_batch_flashes(b, (size_t)(5 * i + 4)));
			}
		}
		cr_assert_eq(sessd_batch_status(b, (size_t)n + 7), SESSD_ERR_USAGE);
		sessd_batch_reset(b);
	}
	sessd_batch_free(b);
	sessd_close(c);
}

LEAK_CHECKED_TEST(client, batch_of_10000_over_unix)
{
	mixed_batch(daemon_.unix_url, 10000);
}

LEAK_CHECKED_TEST(client, batch_of_100000_over_tcp)
{
	mixed_batch(daemon_.tcp_url, 100000);
}

LEAK_CHECKED_TEST(client, batch_statuses_and_edges)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	struct sessd_batch *b = sessd_batch_new(c);
	size_t len;

	cr_assert_not_null(b);
	cr_assert_null(sessd_batch_new(NULL));
	cr_assert_eq(sessd_batch_run(b), SESSD_OK);
	/* Each refusal says which argument, in errno and in the client's words. */
	errno = 0;
	cr_assert_eq(sessd_batch_get(b, "", 0), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(sessd_errmsg(c), "an id has 1 to 128 bytes") != NULL, "errmsg: %s",
	          sessd_errmsg(c));
	cr_assert_eq(sessd_batch_set(b, "x", 1, "v", 1, 0), -1);
	cr_assert(strstr(sessd_errmsg(c), "a ttl is") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_set(b, "x", 1, NULL, 3, TTL_MS), -1);
	cr_assert(strstr(sessd_errmsg(c), "no data") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_flash_push(b, "x", 1, "", "m", 1, TTL_MS), -1);
	cr_assert(strstr(sessd_errmsg(c), "flash type") != NULL, "errmsg: %s", sessd_errmsg(c));
	{
		size_t big_len = sessd_max_frame(c);
		char *big = calloc(1, big_len);

		cr_assert_not_null(big);
		errno = 0;
		cr_assert_eq(sessd_batch_set(b, "x", 1, big, big_len, TTL_MS), -1);
		cr_assert_eq(errno, EMSGSIZE);
		cr_assert(strstr(sessd_errmsg(c), "over the max_frame") != NULL, "errmsg: %s",
		          sessd_errmsg(c));
		free(big);
	}
	cr_assert_eq(sessd_batch_get(b, "nope", 4), 0);
	cr_assert_eq(sessd_batch_touch(b, "nope", 4, TTL_MS), 1);
	cr_assert_eq(sessd_batch_destroy(b, "nope", 4), 2);
	cr_assert_eq(sessd_batch_flash_pop(b, "nope", 4, NULL), 3);
	cr_assert_eq(sessd_batch_ping(b), 4);
	cr_assert_eq(sessd_batch_set(b, "x", 1, NULL, 0, TTL_MS), 5);
	cr_assert_eq(sessd_batch_get(b, "x", 1), 6);
	cr_assert_eq(sessd_batch_run(b), SESSD_OK);
	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(sessd_batch_status(b, i), SESSD_NOT_FOUND, "request %zu", i);
	cr_assert_eq(sessd_batch_status(b, 4), SESSD_OK);
	cr_assert_null(sessd_batch_data(b, 0, &len));
	cr_assert_null(sessd_batch_flashes(b, 3));
	cr_assert_not_null(sessd_batch_data(b, 6, &len));
	cr_assert_eq(len, 0);
	/* Running again repeats the same requests. */
	cr_assert_eq(sessd_batch_run(b), SESSD_OK);
	cr_assert_eq(sessd_batch_status(b, 6), SESSD_OK);
	sessd_batch_reset(b);
	cr_assert_eq(sessd_batch_status(b, 0), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_batch_ping(b), 0);
	cr_assert_eq(sessd_batch_run(b), SESSD_OK);
	sessd_batch_free(b);
	sessd_batch_free(NULL);
	sessd_close(c);
}

/* One child's work: 500 operations on its own ids; returns 0 when all were right. */
static int child_work(const char *url, int child)
{
	struct sessd_options opts = {.timeout_ms = 20000};
	struct sessd_client *c;
	char id[32], value[32];
	void *data;
	size_t len;
	int bad = 0;

	if (sessd_connect(url, &opts, &c) != SESSD_OK)
		return 1;
	for (int i = 0; i < 125; i++) {
		snprintf(id, sizeof(id), "c%d-%d", child, i);
		snprintf(value, sizeof(value), "v%d-%d", child, i);
		bad |= sessd_set(c, id, strlen(id), value, strlen(value), TTL_MS) != SESSD_OK;
		if (sessd_get(c, id, strlen(id), &data, &len) != SESSD_OK) {
			bad = 1;
		} else {
			bad |= len != strlen(value) || memcmp(data, value, len) != 0;
			free(data);
		}
		bad |= sessd_destroy(c, id, strlen(id)) != SESSD_OK;
		bad |= sessd_get(c, id, strlen(id), &data, &len) != SESSD_NOT_FOUND;
	}
	sessd_close(c);
	return bad;
}

LEAK_CHECKED_TEST(client, eight_processes_at_once)
{
	pid_t pids[8];
	int status;

	for (int i = 0; i < 8; i++) {
		fflush(NULL);
		pids[i] = fork();
		cr_assert_neq(pids[i], -1);
		if (pids[i] == 0)
			_exit(child_work(i % 2 ? daemon_.unix_url : daemon_.tcp_url, i));
	}
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed", i);
	}
}

static void reconnect_after_restart(const char *which)
{
	const char *url = strcmp(which, "unix") == 0 ? daemon_.unix_url : daemon_.tcp_url;
	struct sessd_client *c = connect_to(url);
	char first_id[33];
	int rc;

	cr_assert_eq(sessd_set(c, "r", 1, "x", 1, TTL_MS), SESSD_OK);
	snprintf(first_id, sizeof(first_id), "%s", sessd_server_id(c));
	cr_assert_eq(harness_kill(&daemon_), 0);
	/* No daemon: the call fails, and the last HELLO's id stays, as sessd.h says. */
	cr_assert_neq(sessd_ping(c), SESSD_OK);
	cr_assert_str_eq(sessd_server_id(c), first_id, "a failed reconnection changed the id");
	cr_assert_eq(harness_restart(&daemon_, NULL), 0);
	rc = sessd_ping(c);
	cr_assert(rc == SESSD_OK || rc == SESSD_ERR_CLOSED, "first call: %s", sessd_strerror(rc));
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_str_neq(sessd_server_id(c), first_id, "the server id did not change");
	/* The new daemon started empty (no persistence asked for). */
	expect_missing(c, "r", 1);
	sessd_close(c);
}

LEAK_CHECKED_TEST(client, reconnects_after_restart_unix)
{
	reconnect_after_restart("unix");
}

LEAK_CHECKED_TEST(client, reconnects_after_restart_tcp)
{
	reconnect_after_restart("tcp");
}

LEAK_CHECKED_TEST(client, reconnects_when_the_server_dies_mid_call)
{
	struct sessd_client *c = connect_to(daemon_.tcp_url);
	struct sessd_batch *b = sessd_batch_new(c);

	cr_assert_not_null(b);
	cr_assert_eq(harness_kill(&daemon_), 0);
	/* Nobody listens: the call fails to connect, cleanly. */
	cr_assert_eq(sessd_ping(c), SESSD_ERR_CONNECT);
	cr_assert_eq(sessd_batch_ping(b), 0);
	cr_assert_eq(sessd_batch_run(b), SESSD_ERR_CONNECT);
	cr_assert_eq(sessd_batch_status(b, 0), SESSD_ERR_CONNECT);
	cr_assert_eq(harness_restart(&daemon_, NULL), 0);
	cr_assert_eq(sessd_batch_run(b), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_status(b, 0), SESSD_OK);
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	sessd_batch_free(b);
	sessd_close(c);
}

LEAK_CHECKED_TEST(client, timeout_against_a_stopped_server)
{
	struct sessd_options opts = {.timeout_ms = 200};
	char errbuf[SESSD_ERRMSG_SIZE], want[SESSD_ERRMSG_SIZE];
	struct sessd_client *c = NULL, *c2 = NULL;
	struct sessd_batch *b;
	int rc;

	cr_assert_eq(sessd_connect(daemon_.unix_url, &opts, &c), SESSD_OK);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	cr_assert_eq(harness_sigstop(daemon_.pid), 0);
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_TIMEOUT, "ping: %s", sessd_strerror(rc));
	cr_assert_neq(sessd_errmsg(c)[0], '\0');
	/* Connecting gets into the backlog, but HELLO gets no answer: the words say so. */
	errno = 0;
	rc = sessd_connect_errbuf(daemon_.tcp_url, &opts, &c2, errbuf, sizeof(errbuf));
	cr_assert_eq(rc, SESSD_ERR_CONNECT, "connect: %s", sessd_strerror(rc));
	cr_assert_null(c2);
	cr_assert_eq(errno, ETIMEDOUT, "errno %d", errno);
	snprintf(want, sizeof(want),
	         "cannot connect to %s: HELLO timed out: no reply within 200 ms", daemon_.tcp_url);
	cr_assert_str_eq(errbuf, want);
	cr_assert_eq(kill(daemon_.pid, SIGCONT), 0);
	/* Resumed, it works again: within the usual timeout, since 200 ms is no bound for a
	 * daemon catching up on a loaded machine. */
	cr_assert_eq(sessd_set_timeout(c, 10000), SESSD_OK);
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(sessd_set_timeout(c, 200), SESSD_OK);
	cr_assert_eq(harness_sigstop(daemon_.pid), 0);
	cr_assert_eq(sessd_batch_ping(b), 0);
	cr_assert_eq(sessd_batch_ping(b), 1);
	cr_assert_eq(sessd_batch_run(b), SESSD_ERR_TIMEOUT);
	cr_assert_eq(sessd_batch_status(b, 1), SESSD_ERR_TIMEOUT);
	cr_assert_eq(kill(daemon_.pid, SIGCONT), 0);
	cr_assert_eq(sessd_set_timeout(c, 10000), SESSD_OK);
	cr_assert_eq(sessd_batch_run(b), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_batch_free(b);
	sessd_close(c);
}

/*
 * A pop given up on a stalled server loses nothing, over TCP too: the timed-out connection
 * is reset, not closed. Closed, it looked to the server, once it ran again, like a client
 * that only stopped sending (a half-close), so it carried out the pop it found in the socket
 * and its messages went with a reply nobody read.
 */
LEAK_CHECKED_TEST(client, a_pop_that_timed_out_leaves_the_messages)
{
	struct sessd_options opts = {.timeout_ms = 200};
	struct sessd_flashes *f = NULL;
	struct sessd_client *c = NULL;
	int rc;

	cr_assert_eq(sessd_connect(daemon_.tcp_url, &opts, &c), SESSD_OK);
	cr_assert_eq(sessd_flash_push(c, "stalled", 7, "info", "kept", 4, TTL_MS, NULL), SESSD_OK);
	cr_assert_eq(harness_sigstop(daemon_.pid), 0);
	rc = sessd_flash_pop(c, "stalled", 7, "info", &f);
	cr_assert_eq(kill(daemon_.pid, SIGCONT), 0);
	cr_assert_eq(rc, SESSD_ERR_TIMEOUT, "pop: %s", sessd_strerror(rc));
	cr_assert_null(f);
	/* The PING's reply comes after the server has dealt with the old connection's socket. */
	cr_assert_eq(sessd_set_timeout(c, 10000), SESSD_OK);
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(sessd_flash_pop(c, "stalled", 7, "info", &f), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(f->count, 1, "the timed-out pop took the message");
	cr_assert_eq(memcmp(f->items[0].msg, "kept", 4), 0);
	sessd_flashes_free(f);
	sessd_close(c);
}

/*
 * A reconnection whose HELLO fails (here it times out against a stopped server, as during an
 * outage) keeps the max_frame of the last HELLO that succeeded, as it keeps the server id: a
 * batch queued meanwhile is sized against the server's limit, not against the protocol's
 * least (4096), which would refuse every request over 4 KiB with EMSGSIZE until some
 * blocking call happened to reconnect.
 */
LEAK_CHECKED_TEST(client, a_failed_reconnection_keeps_max_frame)
{
	struct sessd_options opts = {.timeout_ms = 200};
	static const uint8_t data[10000];
	struct sessd_client *c = NULL;
	struct sessd_batch *b;
	uint32_t max_frame;
	int rc, rc2, index;

	cr_assert_eq(sessd_connect(daemon_.unix_url, &opts, &c), SESSD_OK);
	max_frame = sessd_max_frame(c);
	cr_assert_gt(max_frame, sizeof(data) + 100);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	cr_assert_eq(harness_sigstop(daemon_.pid), 0);
	rc = sessd_ping(c);
	/* The connection was dropped; this call reconnects and its HELLO times out. */
	rc2 = sessd_ping(c);
	cr_assert_eq(kill(daemon_.pid, SIGCONT), 0);
	cr_assert_eq(rc, SESSD_ERR_TIMEOUT, "ping: %s", sessd_strerror(rc));
	cr_assert_eq(rc2, SESSD_ERR_CONNECT, "ping: %s", sessd_strerror(rc2));
	cr_assert(strstr(sessd_errmsg(c), "HELLO timed out") != NULL, "%s", sessd_errmsg(c));
	cr_assert_eq(sessd_max_frame(c), max_frame, "max_frame %u after a failed HELLO",
	             sessd_max_frame(c));
	/* The daemon runs again: the usual timeout, for a machine where it catches up slowly. */
	cr_assert_eq(sessd_set_timeout(c, 10000), SESSD_OK);
	errno = 0;
	index = sessd_batch_set(b, "big", 3, data, sizeof(data), TTL_MS);
	cr_assert_eq(index, 0, "queue: errno %s: %s", strerror(errno), sessd_errmsg(c));
	cr_assert_eq(sessd_batch_run(b), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_status(b, 0), SESSD_OK);
	expect_data(c, "big", 3, data, sizeof(data));
	sessd_batch_free(b);
	sessd_close(c);
}

/*
 * A loopback port nobody listens on, held (harness_hold_port) in *${fd} until the caller closes
 * it: a port merely found free could be given to another test stream's listener (a Node app's,
 * a sessd's) before the connect meant to be refused.
 */
static int closed_port(int *fd)
{
	int port = harness_hold_port(fd);

	cr_assert_neq(port, -1, "no loopback port to hold");
	return port;
}

LEAK_CHECKED_TEST(client, connect_errors)
{
	struct sessd_client *c = (struct sessd_client *)1;
	char url[400];
	int held, port = closed_port(&held);

	snprintf(url, sizeof(url), "unix:%s/no-such.sock", daemon_.dir);
	cr_assert_eq(sessd_connect(url, NULL, &c), SESSD_ERR_CONNECT);
	cr_assert_null(c);
	cr_assert_eq(errno, ENOENT);

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	cr_assert_eq(sessd_connect(url, NULL, &c), SESSD_ERR_CONNECT);
	cr_assert_null(c);
	cr_assert_eq(errno, ECONNREFUSED);

	/* Well-formed IPv6: parsed, then refused (the daemon listens on IPv4 only). */
	snprintf(url, sizeof(url), "tcp://[::1]:%d", port);
	cr_assert_eq(sessd_connect(url, NULL, &c), SESSD_ERR_CONNECT);
	cr_assert_eq(sessd_connect(daemon_.unix_url, NULL, NULL), SESSD_ERR_USAGE);

	/* A name that does not resolve (RFC 6761 keeps .invalid so): EHOSTUNREACH, as
	 * libsessd(3) says, which an application reading errno alone was not told. */
	errno = 0;
	cr_assert_eq(sessd_connect("tcp://sessd-test.invalid:7077", NULL, &c), SESSD_ERR_CONNECT);
	cr_assert_null(c);
	cr_assert_eq(errno, EHOSTUNREACH, "errno %d", errno);
	close(held);
}

/*
 * sessd_connect_errbuf says why a connect failed, naming the address: the connect's strerror
 * for a missing socket and for a closed port. It cuts the words to the buffer and writes
 * nothing past it, nothing without a buffer, and "" on success.
 */
LEAK_CHECKED_TEST(client, connect_errbuf_names_the_address_and_the_reason)
{
	struct sessd_client *c = (struct sessd_client *)1;
	char url[400], want[SESSD_ERRMSG_SIZE], errbuf[SESSD_ERRMSG_SIZE], small[12];
	int held, port = closed_port(&held);

	snprintf(url, sizeof(url), "unix:%s/no-such.sock", daemon_.dir);
	errno = 0;
	cr_assert_eq(sessd_connect_errbuf(url, NULL, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_CONNECT);
	cr_assert_null(c);
	cr_assert_eq(errno, ENOENT, "errno %d", errno);
	snprintf(want, sizeof(want), "cannot connect to %s: %s", url, strerror(ENOENT));
	cr_assert_str_eq(errbuf, want);

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	errno = 0;
	cr_assert_eq(sessd_connect_errbuf(url, NULL, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_CONNECT);
	cr_assert_eq(errno, ECONNREFUSED, "errno %d", errno);
	snprintf(want, sizeof(want), "cannot connect to %s: %s", url, strerror(ECONNREFUSED));
	cr_assert_str_eq(errbuf, want);

	/* An IPv6 host is named as the URL has it, in brackets. */
	snprintf(url, sizeof(url), "tcp://[::1]:%d", port);
	cr_assert_eq(sessd_connect_errbuf(url, NULL, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_CONNECT);
	snprintf(want, sizeof(want), "cannot connect to %s: ", url);
	cr_assert_eq(strncmp(errbuf, want, strlen(want)), 0, "errbuf: %s", errbuf);

	/* Cut to the buffer, NUL included; nothing after it touched. */
	memset(small, 'Z', sizeof(small));
	cr_assert_eq(sessd_connect_errbuf(url, NULL, &c, small, 8), SESSD_ERR_CONNECT);
	cr_assert_str_eq(small, "cannot ");
	cr_assert_eq(small[8], 'Z');
	memset(small, 'Z', sizeof(small));
	cr_assert_eq(sessd_connect_errbuf(url, NULL, &c, small, 0), SESSD_ERR_CONNECT);
	cr_assert_eq(small[0], 'Z');
	cr_assert_eq(sessd_connect_errbuf(url, NULL, &c, NULL, sizeof(small)), SESSD_ERR_CONNECT);
	cr_assert_null(c);

	snprintf(errbuf, sizeof(errbuf), "stale");
	cr_assert_eq(sessd_connect_errbuf(daemon_.unix_url, NULL, &c, errbuf, sizeof(errbuf)),
	             SESSD_OK);
	cr_assert_str_eq(errbuf, "");
	sessd_close(c);
	cr_assert_eq(sessd_connect_errbuf(daemon_.unix_url, NULL, NULL, errbuf, sizeof(errbuf)),
	             SESSD_ERR_USAGE);
	cr_assert(strstr(errbuf, "client is NULL") != NULL, "errbuf: %s", errbuf);
	close(held);
}

/*
 * A bad URL or option: the words say which, the caller's URL shown without its control
 * bytes.
 */
LEAK_CHECKED_TEST(client, connect_errbuf_says_which_argument_is_bad)
{
	char errbuf[SESSD_ERRMSG_SIZE], long_name[80];
	struct sessd_options opts = {.timeout_ms = -1};
	struct sessd_client *c = (struct sessd_client *)1;

	cr_assert_eq(
	    sessd_connect_errbuf("http://127.0.0.1:7077", NULL, &c, errbuf, sizeof(errbuf)),
	    SESSD_ERR_USAGE);
	cr_assert_null(c);
	cr_assert_str_eq(errbuf, "bad URL 'http://127.0.0.1:7077': the URL must be unix:PATH, an "
	                         "absolute socket path (/PATH) or tcp://HOST:PORT");
	cr_assert_eq(sessd_connect_errbuf("tcp://a\x1b[2Jb:1", NULL, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_USAGE);
	cr_assert(strstr(errbuf, "bad URL 'tcp://a?[2Jb:1': ") != NULL, "errbuf: %s", errbuf);
	cr_assert_eq(sessd_connect_errbuf(NULL, NULL, &c, errbuf, sizeof(errbuf)), SESSD_ERR_USAGE);
	cr_assert(strstr(errbuf, "empty URL") != NULL, "errbuf: %s", errbuf);

	cr_assert_eq(sessd_connect_errbuf(daemon_.unix_url, &opts, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_USAGE);
	cr_assert_str_eq(errbuf, "timeout_ms is negative");
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	opts = (struct sessd_options){.client_name = long_name};
	cr_assert_eq(sessd_connect_errbuf(daemon_.unix_url, &opts, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_USAGE);
	cr_assert(strstr(errbuf, "client_name") != NULL, "errbuf: %s", errbuf);
	opts = (struct sessd_options){.ns = long_name};
	cr_assert_eq(sessd_connect_errbuf(daemon_.unix_url, &opts, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_USAGE);
	cr_assert(strstr(errbuf, "namespace") != NULL, "errbuf: %s", errbuf);
	cr_assert_null(c);
}

LEAK_CHECKED_TEST(client, bad_urls)
{
	static const char *const bad[] = {
	    "",
	    "http://127.0.0.1:7077",
	    "tcp://",
	    "tcp://127.0.0.1",
	    "tcp://127.0.0.1:",
	    "tcp://127.0.0.1:0",
	    "tcp://127.0.0.1:65536",
	    "tcp://127.0.0.1:http",
	    "tcp://127.0.0.1:-1",
	    "tcp://:7077",
	    "tcp://::1:7077",
	    "tcp://[::1",
	    "tcp://[::1]7077",
	    "tcp://[]:7077",
	    "tcp://a b:1",
	    "tcp://127.0.0.1:7077//",
	    "tcp://127.0.0.1:/",
	    "unix:",
	    "unix",
	    "unix://",
	    "unix://tmp/sessd.sock",
	    "sessd.sock",
	    "127.0.0.1:7077",
	};
	struct sessd_options bad_timeout = {.timeout_ms = -1};
	char long_path[200];
	struct sessd_client *c = (struct sessd_client *)1;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(sessd_connect(bad[i], NULL, &c), SESSD_ERR_USAGE, "'%s'", bad[i]);
		cr_assert_null(c);
	}
	cr_assert_eq(sessd_connect(NULL, NULL, &c), SESSD_ERR_USAGE);
	memset(long_path, 'p', sizeof(long_path) - 1);
	long_path[sizeof(long_path) - 1] = '\0';
	memcpy(long_path, "unix:/", 6);
	cr_assert_eq(sessd_connect(long_path, NULL, &c), SESSD_ERR_USAGE);
	/* The same path without the scheme: as long once the scheme is gone. */
	cr_assert_eq(sessd_connect(long_path + strlen("unix:"), NULL, &c), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_connect(daemon_.unix_url, &bad_timeout, &c), SESSD_ERR_USAGE);
}

/*
 * The address forms connect-sessd takes too (client/node/lib/connection.js, parseUrl), so that
 * one copied from an app's configuration reaches the same daemon: a bare absolute socket path,
 * unix:///path, and a "/" after the port. A failure names the address as unix:PATH.
 */
LEAK_CHECKED_TEST(client, address_forms_shared_with_connect_sessd)
{
	const char *path = daemon_.unix_url + strlen("unix:");
	char triple[400], slashed[80], url[400], want[SESSD_ERRMSG_SIZE], errbuf[SESSD_ERRMSG_SIZE];
	struct sessd_client *c;

	snprintf(triple, sizeof(triple), "unix://%s", path);
	snprintf(slashed, sizeof(slashed), "%s/", daemon_.tcp_url);
	for (const char *const *u = (const char *const[]){path, triple, slashed, NULL}; *u != NULL;
	     u++) {
		cr_assert_eq(sessd_connect(*u, NULL, &c), SESSD_OK, "'%s'", *u);
		cr_assert_eq(sessd_ping(c), SESSD_OK, "'%s'", *u);
		sessd_close(c);
	}
	snprintf(url, sizeof(url), "%s/no-such.sock", daemon_.dir);
	cr_assert_eq(sessd_connect_errbuf(url, NULL, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_CONNECT);
	cr_assert_eq(errno, ENOENT, "errno %d", errno);
	snprintf(want, sizeof(want), "cannot connect to unix:%s: %s", url, strerror(ENOENT));
	cr_assert_str_eq(errbuf, want);
	/* "unix://x" was the absolute /x here and the relative x to connect-sessd: neither now. */
	cr_assert_eq(sessd_connect_errbuf("unix://tmp/s.sock", NULL, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_USAGE);
	cr_assert_str_eq(errbuf, "bad URL 'unix://tmp/s.sock': unix:// must be followed by an "
	                         "absolute path (unix:///path; a relative one is unix:path)");
}

LEAK_CHECKED_TEST(client, ids_and_strerror)
{
	char a[SESSD_ID_LEN + 1], b[SESSD_ID_LEN + 1];
	static const int codes[] = {0,  1,  2,  3,   4,   5,   6,   7,   8,  9,
	                            10, 11, 12, 100, 101, 102, 103, 104, 105};

	cr_assert_eq(sessd_id_new(a), SESSD_OK);
	cr_assert_eq(sessd_id_new(b), SESSD_OK);
	cr_assert_eq(strlen(a), SESSD_ID_LEN);
	cr_assert_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
	             SESSD_ID_LEN);
	cr_assert_str_neq(a, b);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		cr_assert_str_neq(sessd_strerror(codes[i]), "unknown error");
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(sessd_strerror(codes[i]), sessd_strerror(codes[j]));
	}
	cr_assert_str_eq(sessd_strerror(999), "unknown error");
}

/* --- The shared secret (PROTOCOL.md, HELLO; sessd --auth-file). --- */

#define AUTH_SECRET "k9Vq0VtJ3wq2b7mXw1eP8rTzL5sYcA4h"

/* Write ${len} bytes of ${data} to ${path}, then give it ${mode}. */
static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_neq(fd, -1, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(close(fd), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

/* A client of ${url} with the secret options of ${opts}; asserts it connects. */
static struct sessd_client *connect_with(const char *url, struct sessd_options opts)
{
	struct sessd_client *c = NULL;
	int rc;

	opts.timeout_ms = 10000;
	rc = sessd_connect(url, &opts, &c);
	cr_assert_eq(rc, SESSD_OK, "connect %s: %s", url, sessd_strerror(rc));
	cr_assert_not_null(c);
	return c;
}

/* SET then GET ${id} on ${c}. */
static void set_and_get(struct sessd_client *c, const char *id)
{
	int rc = sessd_set(c, id, strlen(id), "secret-kept", 11, TTL_MS);

	cr_assert_eq(rc, SESSD_OK, "set: %s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	expect_data(c, id, strlen(id), "secret-kept", 11);
}

/*
 * Against a daemon without --auth-file: a plain secret is ignored, require_auth refuses it
 * (the client refuses the server: EPERM).
 */
LEAK_CHECKED_TEST(client, require_auth_refuses_a_server_that_does_not_check)
{
	struct sessd_options opts = {.timeout_ms = 10000,
	                             .auth = AUTH_SECRET,
	                             .auth_len = strlen(AUTH_SECRET),
	                             .plain_auth = true};
	struct sessd_client *c = (struct sessd_client *)1;
	char errbuf[SESSD_ERRMSG_SIZE], want[SESSD_ERRMSG_SIZE];

	c = connect_with(daemon_.unix_url, opts);
	set_and_get(c, "given-early");
	sessd_close(c);
	opts.require_auth = true;
	for (int i = 0; i < 2; i++) {
		const char *url = i ? daemon_.tcp_url : daemon_.unix_url;

		c = (struct sessd_client *)1;
		errno = 0;
		cr_assert_eq(sessd_connect_errbuf(url, &opts, &c, errbuf, sizeof(errbuf)),
		             SESSD_ERR_AUTH);
		cr_assert_null(c);
		cr_assert_eq(errno, EPERM, "errno %d", errno);
		snprintf(want, sizeof(want), "cannot connect to %s: ", url);
		cr_assert_eq(strncmp(errbuf, want, strlen(want)), 0, "errbuf: %s", errbuf);
		cr_assert(strstr(errbuf, "did not check the secret") != NULL, "errbuf: %s", errbuf);
		cr_assert_null(strstr(errbuf, "k9Vq0"), "errbuf: %s", errbuf);
	}
}

/*
 * A daemon without --auth-file has no secret to prove: it refuses a sealed HELLO (PROTOCOL.md:
 * a client that asked to seal must not be given a plain connection), so a client with a
 * secret, sealing by default, gets SESSD_ERR_AUTH (the server refused: EACCES), over Unix and
 * TCP, with require_auth or without.
 */
LEAK_CHECKED_TEST(client, sealing_needs_a_server_with_the_secret)
{
	struct sessd_options opts = {
	    .timeout_ms = 10000, .auth = AUTH_SECRET, .auth_len = strlen(AUTH_SECRET)};
	struct sessd_client *c;
	char errbuf[SESSD_ERRMSG_SIZE], want[SESSD_ERRMSG_SIZE];
	const char *url;
	int rc;

	for (int i = 0; i < 4; i++) {
		opts.require_auth = i >= 2;
		url = i % 2 ? daemon_.tcp_url : daemon_.unix_url;
		c = (struct sessd_client *)1;
		errno = 0;
		rc = sessd_connect_errbuf(url, &opts, &c, errbuf, sizeof(errbuf));
		cr_assert_eq(rc, SESSD_ERR_AUTH, "%d: %s", i, sessd_strerror(rc));
		cr_assert_null(c);
		cr_assert_eq(errno, EACCES, "%d: errno %d", i, errno);
		/* The words: where, that the server refused, and its reason (no --auth-file). */
		snprintf(want, sizeof(want),
		         "cannot connect to %s: the server refused the secret (AUTH_FAILED: ", url);
		cr_assert_eq(strncmp(errbuf, want, strlen(want)), 0, "%d: errbuf: %s", i, errbuf);
		cr_assert(strstr(errbuf, "no --auth-file") != NULL, "%d: errbuf: %s", i, errbuf);
		cr_assert_null(strstr(errbuf, "k9Vq0"), "%d: errbuf: %s", i, errbuf);
	}
}

static char auth_dir[64], auth_path[128];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The daemon with --auth-file ${auth_path}, holding AUTH_SECRET and a newline. */
static void start_auth_daemon(void)
{
	const char *const args[] = {"--auth-file", auth_path, NULL};

	snprintf(auth_dir, sizeof(auth_dir), "/tmp/sessd-cauth-XXXXXX");
	cr_assert_not_null(mkdtemp(auth_dir));
	snprintf(auth_path, sizeof(auth_path), "%s/secret", auth_dir);
	write_file(auth_path, AUTH_SECRET "\n", strlen(AUTH_SECRET) + 1, 0600);
	cr_assert_eq(harness_start(&daemon_, args), 0, "the daemon did not start");
}

static void stop_auth_daemon(void)
{
	stop_daemon();
	nftw(auth_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(auth, .init = start_auth_daemon, .fini = stop_auth_daemon, .timeout = 120);

/* The secret as bytes or as a file (the daemon's own, or one with "\r\n"), with or without
 * require_auth, over Unix and TCP. */
LEAK_CHECKED_TEST(auth, the_right_secret_lets_the_client_in)
{
	const char *urls[] = {daemon_.unix_url, daemon_.tcp_url};
	char crlf[160];
	struct sessd_client *c;

	snprintf(crlf, sizeof(crlf), "%s/crlf", auth_dir);
	write_file(crlf, AUTH_SECRET "\r\n", strlen(AUTH_SECRET) + 2, 0640);
	for (int i = 0; i < 2; i++) {
		c = connect_with(urls[i], (struct sessd_options){.auth = AUTH_SECRET,
		                                                 .auth_len = strlen(AUTH_SECRET)});
		set_and_get(c, "bytes");
		sessd_close(c);
		c = connect_with(urls[i], (struct sessd_options){.auth_file = auth_path});
		set_and_get(c, "file");
		sessd_close(c);
		c = connect_with(urls[i], (struct sessd_options){.auth_file = crlf});
		set_and_get(c, "crlf");
		sessd_close(c);
		c = connect_with(
		    urls[i], (struct sessd_options){.auth_file = auth_path, .require_auth = true});
		set_and_get(c, "required");
		/* A batch says HELLO through the same path. */
		{
			struct sessd_batch *b = sessd_batch_new(c);

			cr_assert_not_null(b);
			cr_assert_eq(sessd_batch_ping(b), 0);
			cr_assert_eq(sessd_batch_run(b), SESSD_OK, "%s", sessd_errmsg(c));
			sessd_batch_free(b);
		}
		sessd_close(c);
	}
}

/* A wrong, short or missing secret: AUTH_FAILED, SESSD_ERR_AUTH from sessd_connect. */
LEAK_CHECKED_TEST(auth, a_wrong_or_missing_secret_is_refused)
{
	static const char wrong[] = "k9Vq0VtJ3wq2b7mXw1eP8rTzL5sYcA4H";
	const char *urls[] = {daemon_.unix_url, daemon_.tcp_url};
	struct sessd_options opts = {.timeout_ms = 10000};
	struct sessd_client *c;
	char other[160], errbuf[SESSD_ERRMSG_SIZE], want[SESSD_ERRMSG_SIZE];

	snprintf(other, sizeof(other), "%s/other", auth_dir);
	write_file(other, wrong, strlen(wrong), 0600);
	for (int i = 0; i < 2; i++) {
		opts = (struct sessd_options){.timeout_ms = 10000};
		c = (struct sessd_client *)1;
		cr_assert_eq(sessd_connect_errbuf(urls[i], &opts, &c, errbuf, sizeof(errbuf)),
		             SESSD_ERR_AUTH, "no secret");
		cr_assert_null(c);
		snprintf(want, sizeof(want),
		         "cannot connect to %s: the server requires a secret and none was given "
		         "(AUTH_FAILED: ",
		         urls[i]);
		cr_assert_eq(strncmp(errbuf, want, strlen(want)), 0, "errbuf: %s", errbuf);
		opts.auth = wrong;
		opts.auth_len = strlen(wrong);
		cr_assert_eq(sessd_connect_errbuf(urls[i], &opts, &c, errbuf, sizeof(errbuf)),
		             SESSD_ERR_AUTH, "a wrong secret");
		cr_assert_null(c);
		/* Sealed: the daemon says the proof is wrong; the secret is in no word. */
		snprintf(
		    want, sizeof(want),
		    "cannot connect to %s: the server refused the secret (AUTH_FAILED: ", urls[i]);
		cr_assert_eq(strncmp(errbuf, want, strlen(want)), 0, "errbuf: %s", errbuf);
		cr_assert(strstr(errbuf, "(AUTH_FAILED: wrong") != NULL, "errbuf: %s", errbuf);
		cr_assert_null(strstr(errbuf, "k9Vq0"), "errbuf: %s", errbuf);
		opts.plain_auth = true;
		cr_assert_eq(sessd_connect_errbuf(urls[i], &opts, &c, errbuf, sizeof(errbuf)),
		             SESSD_ERR_AUTH, "a wrong plain secret");
		cr_assert_eq(strncmp(errbuf, want, strlen(want)), 0, "errbuf: %s", errbuf);
		cr_assert(strstr(errbuf, "(AUTH_FAILED: wrong") != NULL, "errbuf: %s", errbuf);
		cr_assert_null(strstr(errbuf, "k9Vq0"), "errbuf: %s", errbuf);
		opts.plain_auth = false;
		/* The secret less its last byte, and its first 16: a prefix is not the secret. */
		opts.auth = AUTH_SECRET;
		opts.auth_len = strlen(AUTH_SECRET) - 1;
		cr_assert_eq(sessd_connect(urls[i], &opts, &c), SESSD_ERR_AUTH, "a prefix");
		opts.auth_len = 16;
		cr_assert_eq(sessd_connect(urls[i], &opts, &c), SESSD_ERR_AUTH, "16 bytes");
		opts = (struct sessd_options){.timeout_ms = 10000, .auth_file = other};
		cr_assert_eq(sessd_connect(urls[i], &opts, &c), SESSD_ERR_AUTH, "a wrong file");
		opts.require_auth = true;
		cr_assert_eq(sessd_connect(urls[i], &opts, &c), SESSD_ERR_AUTH);
		cr_assert_null(c);
	}
}

/*
 * A reconnection says HELLO with the secret again: after a restart with the same secret the
 * client carries on; after one with another secret its calls fail with SESSD_ERR_AUTH, in
 * words that never hold the secret; a 300-byte secret (bin 16) works too.
 */
LEAK_CHECKED_TEST(auth, reconnection_sends_the_secret_again)
{
	char long_path[160], long_secret[303], first_id[33];
	const char *const same[] = {"--auth-file", auth_path, NULL};
	const char *const other[] = {"--auth-file", long_path, NULL};
	struct sessd_client *c, *c2;
	int rc;

	snprintf(long_path, sizeof(long_path), "%s/long", auth_dir);
	for (size_t i = 0; i < 300; i++)
		long_secret[i] = (char)('a' + i % 26);
	memcpy(long_secret + 300, "\r\n", 3);
	write_file(long_path, long_secret, 302, 0600);

	c = connect_with(daemon_.tcp_url,
	                 (struct sessd_options){.auth_file = auth_path, .require_auth = true});
	set_and_get(c, "before");
	snprintf(first_id, sizeof(first_id), "%s", sessd_server_id(c));
	cr_assert_eq(harness_kill(&daemon_), 0);
	cr_assert_eq(harness_restart(&daemon_, same), 0);
	rc = sessd_ping(c);
	cr_assert(rc == SESSD_OK || rc == SESSD_ERR_CLOSED, "first call: %s (%s)",
	          sessd_strerror(rc), sessd_errmsg(c));
	set_and_get(c, "after");
	cr_assert_str_neq(sessd_server_id(c), first_id, "the server id did not change");

	cr_assert_eq(harness_kill(&daemon_), 0);
	cr_assert_eq(harness_restart(&daemon_, other), 0);
	rc = sessd_ping(c);
	if (rc == SESSD_ERR_CLOSED)
		rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_AUTH, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert(strstr(sessd_errmsg(c), "refused the secret") != NULL, "errmsg: %s",
	          sessd_errmsg(c));
	cr_assert(strstr(sessd_errmsg(c), "AUTH_FAILED") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_null(strstr(sessd_errmsg(c), "k9Vq0"), "errmsg: %s", sessd_errmsg(c));
	/* A failed reconnection names where it went, as sessd_connect_errbuf does. */
	cr_assert(strstr(sessd_errmsg(c), "cannot connect to ") != NULL, "errmsg: %s",
	          sessd_errmsg(c));
	cr_assert(strstr(sessd_errmsg(c), daemon_.tcp_url) != NULL, "errmsg: %s", sessd_errmsg(c));
	/* Each call tries again, and is refused again. */
	cr_assert_eq(sessd_ping(c), SESSD_ERR_AUTH);

	c2 = connect_with(daemon_.unix_url, (struct sessd_options){.auth_file = long_path});
	set_and_get(c2, "long");
	sessd_close(c2);
	c2 = connect_with(
	    daemon_.unix_url,
	    (struct sessd_options){.auth = long_secret, .auth_len = 300, .require_auth = true});
	set_and_get(c2, "long-bytes");
	sessd_close(c2);

	cr_assert_eq(harness_kill(&daemon_), 0);
	cr_assert_eq(harness_restart(&daemon_, same), 0);
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	sessd_close(c);
}

/*
 * A secret option value that can never work, the errno sessd_connect gives it, and words its
 * errbuf must hold.
 */
struct bad_secret {
	struct sessd_options opts;
	int err;
	const char *what;
	const char *words;
};

/* Option values that can never work: SESSD_ERR_USAGE before anything is sent. */
LEAK_CHECKED_TEST(auth, bad_secret_options_are_usage_errors)
{
	static char big[1100];
	char missing[160], exposed[160], short_file[160], long_file[160], empty[160], dir[160];
	const struct bad_secret cases[] = {
	    {{.auth = AUTH_SECRET, .auth_len = 32, .auth_file = auth_path},
	     EINVAL,
	     "both",
	     "both auth and auth_file"},
	    {{.auth = AUTH_SECRET, .auth_len = 0}, EINVAL, "auth_len 0", "16 to 1024 bytes"},
	    /* Shorter than any --auth-file: no sessd could hold it. */
	    {{.auth = AUTH_SECRET, .auth_len = 1}, EINVAL, "auth_len 1", "16 to 1024 bytes"},
	    {{.auth = AUTH_SECRET, .auth_len = 15}, EINVAL, "auth_len 15", "16 to 1024 bytes"},
	    {{.auth = big, .auth_len = 1025}, EINVAL, "auth_len 1025", "16 to 1024 bytes"},
	    {{.auth_len = 32}, EINVAL, "auth_len without auth", "auth_len is set without auth"},
	    {{.require_auth = true}, EINVAL, "require_auth without a secret", "require_auth needs"},
	    {{.plain_auth = true}, EINVAL, "plain_auth without a secret", "plain_auth needs"},
	    {{.plain_auth = true, .require_auth = true},
	     EINVAL,
	     "both without a secret",
	     "needs a secret"},
	    {{.auth_file = missing}, ENOENT, "a missing file", "No such file or directory"},
	    {{.auth_file = exposed}, EPERM, "mode 0604", "other users can access it"},
	    {{.auth_file = short_file}, EINVAL, "15 bytes and a newline", "16 to 1024 bytes"},
	    {{.auth_file = long_file}, EINVAL, "1025 bytes", "16 to 1024 bytes"},
	    {{.auth_file = empty}, EINVAL, "an empty file", "16 to 1024 bytes"},
	    {{.auth_file = dir}, EINVAL, "a directory", "not a regular file"},
	};
	struct sessd_options max = {.auth = big, .auth_len = 1024};
	struct sessd_client *c;
	char errbuf[SESSD_ERRMSG_SIZE], prefix[200];

	memset(big, 'x', sizeof(big));
	snprintf(missing, sizeof(missing), "%s/missing", auth_dir);
	snprintf(exposed, sizeof(exposed), "%s/exposed", auth_dir);
	snprintf(short_file, sizeof(short_file), "%s/short", auth_dir);
	snprintf(long_file, sizeof(long_file), "%s/long", auth_dir);
	snprintf(empty, sizeof(empty), "%s/empty", auth_dir);
	snprintf(dir, sizeof(dir), "%s/dir", auth_dir);
	write_file(exposed, AUTH_SECRET "\n", strlen(AUTH_SECRET) + 1, 0604);
	write_file(short_file, "0123456789abcde\n", 16, 0600);
	write_file(long_file, big, 1025, 0600);
	write_file(empty, "", 0, 0600);
	cr_assert_eq(mkdir(dir, 0700), 0);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = (struct sessd_client *)1;
		errno = 0;
		cr_assert_eq(sessd_connect_errbuf(daemon_.unix_url, &cases[i].opts, &c, errbuf,
		                                  sizeof(errbuf)),
		             SESSD_ERR_USAGE, "%s", cases[i].what);
		cr_assert_null(c, "%s", cases[i].what);
		cr_assert_eq(errno, cases[i].err, "%s: errno %d", cases[i].what, errno);
		cr_assert(strstr(errbuf, cases[i].words) != NULL, "%s: errbuf: %s", cases[i].what,
		          errbuf);
		/* A file that cannot be used is named; none of its bytes is shown. */
		if (cases[i].opts.auth_file != NULL && cases[i].opts.auth == NULL) {
			snprintf(prefix, sizeof(prefix), "auth file %s: ", cases[i].opts.auth_file);
			cr_assert_eq(strncmp(errbuf, prefix, strlen(prefix)), 0, "%s: errbuf: %s",
			             cases[i].what, errbuf);
		}
		cr_assert_null(strstr(errbuf, "k9Vq0"), "%s: errbuf: %s", cases[i].what, errbuf);
		cr_assert_null(strstr(errbuf, "xxxx"), "%s: errbuf: %s", cases[i].what, errbuf);
	}
	/* 1024 bytes is within the client's limit: this server refuses it as the wrong secret. */
	cr_assert_eq(sessd_connect(daemon_.unix_url, &max, &c), SESSD_ERR_AUTH);
	cr_assert_null(c);
}

/* --- A full daemon (sessd(8), --max-connections). --- */

TestSuite(connection_limit, .fini = stop_daemon, .timeout = 60);

/*
 * A daemon at its --max-connections whose connections may not give way (the one it holds is
 * this process's own, and busy) answers a plain HELLO with BUSY: sessd_connect returns
 * SESSD_ERR_BUSY (libsessd(3), CONNECTING), names the address, and the held connection goes
 * on. Once that one is closed a new one gets in.
 */
LEAK_CHECKED_TEST(connection_limit, a_full_daemon_answers_connect_with_busy)
{
	static const char *const args[] = {"--max-connections", "1", NULL};
	struct sessd_options opts = {.timeout_ms = 10000};
	char errbuf[SESSD_ERRMSG_SIZE], want[SESSD_ERRMSG_SIZE];
	struct sessd_client *held, *c = (struct sessd_client *)1;
	int rc = SESSD_ERR_BUSY;

	cr_assert_eq(harness_start(&daemon_, args), 0, "the daemon did not start");
	held = connect_to(daemon_.unix_url);
	cr_assert_eq(sessd_ping(held), SESSD_OK);
	errno = 0;
	rc = sessd_connect_errbuf(daemon_.unix_url, &opts, &c, errbuf, sizeof(errbuf));
	cr_assert_eq(rc, SESSD_ERR_BUSY, "%s: %s", sessd_strerror(rc), errbuf);
	cr_assert_null(c);
	/* libsessd(3): errno says it too, not what some step inside the library left there. */
	cr_assert_eq(errno, EAGAIN, "errno %d (%s)", errno, strerror(errno));
	snprintf(want, sizeof(want), "cannot connect to %s: BUSY: ", daemon_.unix_url);
	cr_assert(strncmp(errbuf, want, strlen(want)) == 0, "%s", errbuf);
	cr_assert_eq(sessd_ping(held), SESSD_OK, "%s", sessd_errmsg(held));
	sessd_close(held);
	/* The daemon frees the slot when it reads the end of the held connection. */
	for (int tries = 0; tries < 100 && rc == SESSD_ERR_BUSY; tries++) {
		rc = sessd_connect(daemon_.unix_url, &opts, &c);
		if (rc == SESSD_ERR_BUSY)
			poll(NULL, 0, 20);
	}
	cr_assert_eq(rc, SESSD_OK, "%s", sessd_strerror(rc));
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	sessd_close(c);
}

/* --- A stopping daemon (PROTOCOL.md, "Statuses", SHUTTING_DOWN). --- */

TestSuite(stopping, .fini = stop_daemon, .timeout = 120);

/*
 * A batch of SETs across a SIGTERM, ${sealed} or plain, with --data-dir: the daemon is stopped
 * (SIGSTOP) while the batch is written, and gets SIGTERM and SIGCONT together, so that it stops
 * having read a part of it at most. The batch returns SESSD_ERR_SHUTTING_DOWN: the requests
 * before some point have their replies, every one after it has SESSD_ERR_SHUTTING_DOWN, and a
 * restart on the same data directory shows that exactly the first were carried out. (Sealed,
 * the daemon's first read holds no whole 64 KiB record yet, so none is answered: the
 * SHUTTING_DOWN is then the first record after HELLO.)
 */
static void batch_across_sigterm(bool sealed)
{
	enum { SETS = 20000 };
	char dir[64] = "/tmp/sessd-cstop-XXXXXX", data_dir[96], secret[96], id[32];
	const char *plain_args[] = {"--data-dir", data_dir, NULL};
	const char *sealed_args[] = {"--data-dir", data_dir, "--auth-file", secret, NULL};
	const char *const *args = sealed ? sealed_args : plain_args;
	struct sessd_options opts = {.timeout_ms = 10000, .auth_file = sealed ? secret : NULL};
	struct sessd_client *c = NULL;
	struct sessd_batch *b;
	size_t answered = 0;
	int rc, status;
	pid_t signaller;

	signal(SIGPIPE, SIG_IGN);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(data_dir, sizeof(data_dir), "%s/data", dir);
	snprintf(secret, sizeof(secret), "%s/secret", dir);
	if (sealed)
		write_file(secret, AUTH_SECRET "\n", strlen(AUTH_SECRET) + 1, 0600);
	cr_assert_eq(harness_start(&daemon_, args), 0);
	cr_assert_eq(sessd_connect(daemon_.unix_url, &opts, &c), SESSD_OK);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	for (int i = 0; i < SETS; i++) {
		snprintf(id, sizeof(id), "k%d", i);
		cr_assert_eq(sessd_batch_set(b, id, strlen(id), "v", 1, TTL_MS), i);
	}
	cr_assert_eq(harness_sigstop(daemon_.pid), 0);
	fflush(NULL);
	signaller = fork();
	cr_assert_neq(signaller, -1);
	if (signaller == 0) {
		struct timespec ts = {0, 300 * 1000000L};

		nanosleep(&ts, NULL);
		kill(daemon_.pid, SIGTERM);
		kill(daemon_.pid, SIGCONT);
		_exit(0);
	}
	rc = sessd_batch_run(b);
	cr_assert_eq(waitpid(signaller, &status, 0), signaller);
	cr_assert_eq(rc, SESSD_ERR_SHUTTING_DOWN, "%s: %s", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert(strstr(sessd_errmsg(c), "SHUTTING_DOWN") != NULL, "%s", sessd_errmsg(c));
	while (answered < SETS && sessd_batch_status(b, answered) == SESSD_OK)
		answered++;
	cr_assert_lt(answered, SETS, "the daemon stopped before it read the whole batch");
	cr_log_info("%zu of %d requests answered before SHUTTING_DOWN", answered, (int)SETS);
	for (size_t i = answered; i < SETS; i++)
		cr_assert_eq(sessd_batch_status(b, i), SESSD_ERR_SHUTTING_DOWN, "request %zu: %d",
		             i, sessd_batch_status(b, i));
	cr_assert_eq(waitpid(daemon_.pid, &status, 0), daemon_.pid);
	daemon_.pid = 0;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* The next call reconnects, to the restarted daemon. */
	cr_assert_eq(harness_restart(&daemon_, args), 0);
	for (size_t i = 0; i < SETS; i++) {
		snprintf(id, sizeof(id), "k%zu", i);
		if (i < answered)
			expect_data(c, id, strlen(id), "v", 1);
		else
			expect_missing(c, id, strlen(id));
	}
	sessd_batch_free(b);
	sessd_close(c);
	cr_assert_eq(harness_stop(&daemon_), 0);
	nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

LEAK_CHECKED_TEST_OPTS(stopping, a_batch_across_sigterm_plain, .timeout = 120)
{
	batch_across_sigterm(false);
}

LEAK_CHECKED_TEST_OPTS(stopping, a_batch_across_sigterm_sealed, .timeout = 120)
{
	batch_across_sigterm(true);
}

/* Between calls, a stopped daemon's SHUTTING_DOWN waits on the idle connection: the next call
 * reconnects rather than take it for its reply. */
LEAK_CHECKED_TEST_OPTS(stopping, an_idle_client_reconnects_after_sigterm, .timeout = 60)
{
	struct sessd_client *c;
	int status;

	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(harness_start(&daemon_, NULL), 0);
	c = connect_to(daemon_.unix_url);
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	cr_assert_eq(kill(daemon_.pid, SIGTERM), 0);
	cr_assert_eq(waitpid(daemon_.pid, &status, 0), daemon_.pid);
	daemon_.pid = 0;
	cr_assert_eq(harness_restart(&daemon_, NULL), 0);
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_close(c);
	cr_assert_eq(harness_stop(&daemon_), 0);
}

TestSuite(small_frames, .init = start_small_frame_daemon, .fini = stop_daemon, .timeout = 120);

LEAK_CHECKED_TEST(small_frames, server_errors_carry_the_server_message)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	char msg[2000], *big;
	size_t queued;
	int rc;

	memset(msg, 'm', sizeof(msg));
	cr_assert_eq(sessd_max_frame(c), 8192);
	/* Flashes may hold max_frame / 2 = 4096 bytes: the third push is over. */
	cr_assert_eq(sessd_flash_push(c, "f", 1, "t", msg, sizeof(msg), TTL_MS, &queued), SESSD_OK);
	cr_assert_eq(sessd_flash_push(c, "f", 1, "t", msg, sizeof(msg), TTL_MS, &queued), SESSD_OK);
	rc = sessd_flash_push(c, "f", 1, "t", msg, sizeof(msg), TTL_MS, &queued);
	cr_assert_eq(rc, SESSD_ERR_LIMIT, "%s", sessd_strerror(rc));
	cr_assert(strstr(sessd_errmsg(c), "LIMIT") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_gt(strlen(sessd_errmsg(c)), strlen("LIMIT: "));
	/* LIMIT leaves the connection open. */
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	cr_assert_eq(sessd_set(c, "g", 1, msg, sizeof(msg), TTL_MS), SESSD_OK);
	big = calloc(1, 8192);
	cr_assert_not_null(big);
	cr_assert_eq(sessd_set(c, "g", 1, big, 8192, TTL_MS), SESSD_ERR_TOO_LARGE);
	free(big);
	sessd_close(c);
}

/*
 * The most messages a session holds, empty ones of a 1-byte type (each counting 6 bytes of
 * max_frame / 2), is exactly the most a FLASH_POP result may hold (sessd_max_frame() / 12):
 * the client's bound refuses nothing the daemon lets a session hold, all types or one.
 */
LEAK_CHECKED_TEST(small_frames, a_session_full_of_empty_flashes_pops_whole)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	struct sessd_batch *b = sessd_batch_new(c);
	struct sessd_flashes *f;
	size_t most = sessd_max_frame(c) / 12, accepted;
	int rc;

	cr_assert_not_null(b);
	for (int round = 0; round < 2; round++) {
		sessd_batch_reset(b);
		for (size_t i = 0; i < most + 8; i++)
			cr_assert_geq(sessd_batch_flash_push(b, "e", 1, "t", "", 0, TTL_MS), 0);
		cr_assert_eq(sessd_batch_run(b), SESSD_OK, "%s", sessd_errmsg(c));
		accepted = 0;
		while (accepted < most + 8 && sessd_batch_status(b, accepted) == SESSD_OK)
			accepted++;
		cr_assert_eq(accepted, most, "the daemon took %zu messages", accepted);
		cr_assert_eq(sessd_batch_status(b, most), SESSD_ERR_LIMIT);
		rc = sessd_flash_pop(c, "e", 1, round == 0 ? NULL : "t", &f);
		cr_assert_eq(rc, SESSD_OK, "round %d: %s (%s)", round, sessd_strerror(rc),
		             sessd_errmsg(c));
		cr_assert_eq(f->count, most);
		cr_assert_eq(f->items[most - 1].msg_len, 0);
		sessd_flashes_free(f);
	}
	sessd_batch_free(b);
	sessd_close(c);
}

/*
 * Pass one frame from ${from} to ${to}, ${copies} times over. The copies go in one write, so
 * that the client reads them together: bytes after a last reply are only seen when they come
 * with it (the client does not wait for bytes that may never come).
 */
static int relay_frame(int from, int to, int copies)
{
	uint8_t *body, header[4];
	struct buf out;
	size_t len;
	int rc = 0;

	if (harness_recv_frame(from, &body, &len) == -1)
		return -1;
	header[0] = (uint8_t)(len >> 24);
	header[1] = (uint8_t)(len >> 16);
	header[2] = (uint8_t)(len >> 8);
	header[3] = (uint8_t)len;
	buf_init(&out);
	for (int i = 0; i < copies && rc == 0; i++)
		if (buf_append(&out, header, 4) == -1 || buf_append(&out, body, len) == -1)
			rc = -1;
	if (rc == 0)
		rc = harness_send_all(to, out.data, out.len);
	buf_finish(&out);
	free(body);
	return rc;
}

/* A listening Unix socket in a new temporary directory: *${fd}, its URL in ${url}. */
struct tmp_listener {
	char dir[32];
	char path[64];
	char url[80];
	int fd;
};

static void tmp_listen(struct tmp_listener *l)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};

	snprintf(l->dir, sizeof(l->dir), "/tmp/sessd-peer-XXXXXX");
	cr_assert_not_null(mkdtemp(l->dir));
	snprintf(l->path, sizeof(l->path), "%s/peer.sock", l->dir);
	snprintf(l->url, sizeof(l->url), "unix:%s", l->path);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", l->path);
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(l->fd, 0);
	cr_assert_eq(bind(l->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	cr_assert_eq(listen(l->fd, 8), 0);
}

/*
 * Listen on ${l} (tmp_listen) and fork: returns 0 in the child, which serves l->fd and must
 * _exit; in the parent the child's pid (wait for it with tmp_finish), l->fd closed.
 */
static pid_t tmp_fork(struct tmp_listener *l)
{
	pid_t pid;

	tmp_listen(l);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid != 0)
		close(l->fd);
	return pid;
}

/* Wait for the child ${pid} serving ${l}, expect it to have exited 0, remove ${l}'s files. */
static void tmp_finish(struct tmp_listener *l, pid_t pid, const char *what)
{
	int status;

	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the %s ran", what);
	unlink(l->path);
	rmdir(l->dir);
}

/*
 * A relay in front of the real daemon, for one client connection: it passes the HELLO and its
 * reply, then ${requests} requests and their replies, the last reply ${last_copies} times.
 * Returns the child's pid; wait for it with tmp_finish.
 */
static pid_t relay_start(struct tmp_listener *l, int requests, int last_copies)
{
	pid_t pid;

	tmp_listen(l);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int cfd = accept(l->fd, NULL, NULL), dfd = harness_connect(daemon_.unix_url);

		if (cfd == -1 || dfd == -1 || relay_frame(cfd, dfd, 1) == -1 ||
		    relay_frame(dfd, cfd, 1) == -1)
			_exit(1);
		for (int i = 0; i < requests; i++)
			if (relay_frame(cfd, dfd, 1) == -1)
				_exit(1);
		for (int i = 0; i < requests; i++)
			if (relay_frame(dfd, cfd, i == requests - 1 ? last_copies : 1) == -1)
				_exit(1);
		_exit(0);
	}
	close(l->fd);
	return pid;
}

/*
 * A daemon that is not accepting for a moment (stopped here) with its listen backlog full: a
 * connect to its Unix socket gets EAGAIN at once, where over TCP the kernel retries the SYN.
 * sessd_connect waits for the timeout as it does over TCP (it failed at once, so a burst of
 * clients reconnecting after a restart failed while the daemon caught up).
 */
LEAK_CHECKED_TEST_OPTS(client, a_full_unix_backlog_is_waited_out, .init = start_daemon,
                       .fini = stop_daemon, .timeout = 60)
{
	struct sessd_options opts = {.timeout_ms = 5000, .client_name = "test"};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct rlimit nofile;
	struct sessd_client *c;
	char why[SESSD_ERRMSG_SIZE];
	int raw[3000], n = 0, rc;
	pid_t waker;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &nofile), 0);
	if (nofile.rlim_max < 2100)
		cr_skip_test("the descriptor limit (%llu) is too low to fill a listen backlog",
		             (unsigned long long)nofile.rlim_max);
	nofile.rlim_cur = nofile.rlim_max < 3100 ? nofile.rlim_max : 3100;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &nofile), 0);
	cr_assert_lt(strlen(daemon_.unix_path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, daemon_.unix_path, strlen(daemon_.unix_path) + 1);
	cr_assert_eq(harness_sigstop(daemon_.pid), 0);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		cr_assert_geq(fd, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
			cr_assert_eq(errno, EAGAIN, "connect: %s", strerror(errno));
			close(fd);
			break;
		}
		cr_assert_lt(n, 3000, "the backlog never filled");
		raw[n++] = fd;
	}
	waker = fork();
	cr_assert_geq(waker, 0);
	if (waker == 0) {
		struct timespec ts = {0, 300 * 1000000L};

		nanosleep(&ts, NULL);
		kill(daemon_.pid, SIGCONT);
		_exit(0);
	}
	rc = sessd_connect_errbuf(daemon_.unix_url, &opts, &c, why, sizeof(why));
	cr_assert_eq(waitpid(waker, NULL, 0), waker);
	kill(daemon_.pid, SIGCONT);
	for (int i = 0; i < n; i++)
		close(raw[i]);
	cr_assert_eq(rc, SESSD_OK, "connect with the backlog full: %s (%s)", sessd_strerror(rc),
	             why);
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	sessd_close(c);
}

/*
 * A server that sends bytes after a good reply: the call fails with SESSD_ERR_PROTOCOL, and
 * the result it had decoded is freed, not left to a caller who owns it only on SESSD_OK (it
 * leaked). The server is the real daemon behind a relay that sends the GET's reply twice.
 */
LEAK_CHECKED_TEST_OPTS(client, bytes_after_a_reply_leak_nothing, .init = start_daemon,
                       .fini = stop_daemon)
{
	struct tmp_listener l;
	struct sessd_client *c;
	void *data = (void *)1;
	size_t len = 7;
	uint64_t count = 77;
	pid_t pid;

	c = connect_to(daemon_.unix_url);
	cr_assert_eq(sessd_set(c, "twice", 5, "hello", 5, TTL_MS), SESSD_OK);
	sessd_close(c);
	pid = relay_start(&l, 1, 2);
	c = connect_to(l.url);
	cr_expect_eq(sessd_get(c, "twice", 5, &data, &len), SESSD_ERR_PROTOCOL);
	cr_expect_null(data, "no result is left to the caller");
	cr_expect_eq(len, 0);
	sessd_close(c);
	tmp_finish(&l, pid, "relay");

	/* A number out of a failed call is not written either. */
	pid = relay_start(&l, 1, 2);
	c = connect_to(l.url);
	cr_expect_eq(sessd_count(c, &count), SESSD_ERR_PROTOCOL);
	cr_expect_eq(count, 77, "count written by a failed call");
	sessd_close(c);
	tmp_finish(&l, pid, "relay");

	/* LOAD likewise: its data freed (it leaked), its flash count left as it was. */
	c = connect_to(daemon_.unix_url);
	cr_assert_eq(sessd_flash_push(c, "twice", 5, "t", "m", 1, TTL_MS, NULL), SESSD_OK);
	sessd_close(c);
	pid = relay_start(&l, 1, 2);
	c = connect_to(l.url);
	data = (void *)1;
	len = 7;
	cr_expect_eq(sessd_load(c, "twice", 5, &data, &len, &count), SESSD_ERR_PROTOCOL);
	cr_expect_null(data, "no result is left to the caller");
	cr_expect_eq(len, 0);
	cr_expect_eq(count, 77, "flashes written by a failed call");
	sessd_close(c);
	tmp_finish(&l, pid, "relay");
}

/*
 * The same for the calls whose result is a structure the caller frees (found by line
 * coverage: their discard was never run): FLASH_POP, LIST, STATS and NAMESPACES answered
 * and then followed by bytes fail with SESSD_ERR_PROTOCOL, leave *out NULL and leak
 * nothing. (FLASH_POP's messages were popped on the server: the reply that carried them came.)
 */
LEAK_CHECKED_TEST_OPTS(client, bytes_after_a_structured_reply_leak_nothing, .init = start_daemon,
                       .fini = stop_daemon)
{
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_flashes *f = (void *)1;
	struct sessd_list *page = (void *)1;
	struct sessd_stats *st = (void *)1;
	struct sessd_namespaces *names = (void *)1;
	pid_t pid;

	c = connect_to(daemon_.unix_url);
	cr_assert_eq(sessd_set(c, "twice", 5, "hello", 5, TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_flash_push(c, "twice", 5, "t", "m", 1, TTL_MS, NULL), SESSD_OK);
	sessd_close(c);

	for (int call = 0; call < 4; call++) {
		pid = relay_start(&l, 1, 2);
		c = connect_to(l.url);
		switch (call) {
		case 0:
			cr_expect_eq(sessd_flash_pop(c, "twice", 5, "t", &f), SESSD_ERR_PROTOCOL);
			cr_expect_null(f, "no flashes are left to the caller");
			break;
		case 1:
			cr_expect_eq(sessd_list(c, 0, 10, &page), SESSD_ERR_PROTOCOL);
			cr_expect_null(page, "no page is left to the caller");
			break;
		case 2:
			cr_expect_eq(sessd_stats(c, 1, &st), SESSD_ERR_PROTOCOL);
			cr_expect_null(st, "no figures are left to the caller");
			break;
		default:
			cr_expect_eq(sessd_namespaces(c, 0, 10, &names), SESSD_ERR_PROTOCOL);
			cr_expect_null(names, "no namespaces are left to the caller");
		}
		sessd_close(c);
		tmp_finish(&l, pid, "relay");
	}
}

/*
 * Bytes after the last reply of a batch: every reply arrived whole and answered its own
 * request, so each keeps its status and result (owned by the batch, freed with it); the run
 * says the stream went wrong after them, and the connection is dropped.
 */
LEAK_CHECKED_TEST_OPTS(client, batch_bytes_after_the_last_reply, .init = start_daemon,
                       .fini = stop_daemon)
{
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_batch *b;
	const struct sessd_flashes *f;
	const void *data;
	size_t len;
	pid_t pid;
	int rc;

	pid = relay_start(&l, 4, 2);
	c = connect_to(l.url);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	cr_assert_eq(sessd_batch_set(b, "bt", 2, "data", 4, TTL_MS), 0);
	cr_assert_eq(sessd_batch_flash_push(b, "bt", 2, "t", "m", 1, TTL_MS), 1);
	cr_assert_eq(sessd_batch_get(b, "bt", 2), 2);
	cr_assert_eq(sessd_batch_flash_pop(b, "bt", 2, "t"), 3);
	rc = sessd_batch_run(b);
	cr_expect_eq(rc, SESSD_ERR_PROTOCOL, "%s", sessd_strerror(rc));
	cr_expect(strstr(sessd_errmsg(c), "after the last reply") != NULL, "errmsg: %s",
	          sessd_errmsg(c));
	for (size_t i = 0; i < 4; i++)
		cr_expect_eq(sessd_batch_status(b, i), SESSD_OK, "request %zu", i);
	data = sessd_batch_data(b, 2, &len);
	cr_expect(data != NULL && len == 4 && memcmp(data, "data", 5) == 0);
	f = sessd_batch_flashes(b, 3);
	cr_expect(f != NULL && f->count == 1 && f->items[0].msg_len == 1);
	sessd_batch_free(b);
	sessd_close(c);
	tmp_finish(&l, pid, "relay");
}

/*
 * A fake server, for what the real daemon never sends: a child process that accepts ${conns}
 * connections one after another and hands each request, decoded, to a fake_answer_fn.
 */
#define FAKE_SERVER_ID "0123456789abcdef0123456789abcdef"
#define GIB            (1024ull * 1024ull * 1024ull)

/*
 * Answer request ${nth} (0: the HELLO) of connection ${conn} (0, 1, ...) by writing to ${fd}.
 * Returns 0 to go on, -1 to close the connection. Runs in the child: asserts nothing.
 */
typedef int (*fake_answer_fn)(int fd, const struct codec_request *req, int conn, int nth);

static int fake_serve(int lfd, int conns, fake_answer_fn answer)
{
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	struct timeval tv = {.tv_sec = 10};
	struct codec_request req;
	uint32_t status;
	const char *why;
	uint8_t *body;
	size_t len;
	int fd, rc;

	for (int conn = 0; conn < conns; conn++) {
		if (poll(&pfd, 1, 10000) != 1 || (fd = accept(lfd, NULL, NULL)) == -1)
			return 1;
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		rc = 0;
		for (int nth = 0; rc == 0 && harness_recv_frame(fd, &body, &len) == 0; nth++) {
			rc = -1;
			if (codec_decode_request(body, len, &req, &status, &why) == 0)
				rc = answer(fd, &req, conn, nth);
			free(body);
		}
		close(fd);
	}
	return 0;
}

static pid_t fake_start(struct tmp_listener *l, int conns, fake_answer_fn answer)
{
	pid_t pid = tmp_fork(l);

	if (pid == 0)
		_exit(fake_serve(l->fd, conns, answer));
	return pid;
}

/* Send and empty ${out}. Returns 0 or -1. */
static int fake_send(int fd, struct buf *out)
{
	int rc = harness_send_all(fd, out->data, out->len);

	buf_finish(out);
	return rc;
}

/* A reply to ${request_id} with ${status} and ${len} bytes of raw msgpack as its result. */
static int fake_reply(int fd, uint64_t request_id, uint32_t status, const void *result, size_t len)
{
	struct buf out;
	size_t at;

	buf_init(&out);
	if (codec_reply_open(&out, request_id, status, &at) == -1 ||
	    buf_append(&out, result, len) == -1 || codec_frame_close(&out, at) == -1) {
		buf_finish(&out);
		return -1;
	}
	return fake_send(fd, &out);
}

/* An OK reply whose result is the value written in ${result}, which is emptied. */
static int fake_reply_value(int fd, uint64_t request_id, struct buf *result)
{
	int rc = fake_reply(fd, request_id, CODEC_OK, result->data, result->len);

	buf_finish(result);
	return rc;
}

/* A reply to ${request_id} with ${status} and a nil result. */
static int fake_reply_nil(int fd, uint64_t request_id, uint32_t status)
{
	return fake_reply(fd, request_id, status, "\xc0", 1);
}

/* A HELLO reply with ${sid_len} bytes of ${sid}, and ${max_frame} unless it is 0 (no key). */
static int fake_hello_with(int fd, uint64_t request_id, const char *sid, size_t sid_len,
                           uint64_t max_frame)
{
	struct buf r;

	buf_init(&r);
	if (mp_write_map(&r, max_frame ? 3 : 2) == -1 || mp_write_str(&r, "version", 7) == -1 ||
	    mp_write_uint(&r, 1) == -1 || mp_write_str(&r, "server_id", 9) == -1 ||
	    mp_write_str(&r, sid, sid_len) == -1 ||
	    (max_frame &&
	     (mp_write_str(&r, "max_frame", 9) == -1 || mp_write_uint(&r, max_frame) == -1))) {
		buf_finish(&r);
		return -1;
	}
	return fake_reply_value(fd, request_id, &r);
}

static int fake_hello(int fd, uint64_t request_id, uint64_t max_frame)
{
	return fake_hello_with(fd, request_id, FAKE_SERVER_ID, 32, max_frame);
}

/* A bare frame header announcing ${len} bytes, and ${pad} bytes of zeros after it. */
static int fake_header(int fd, uint32_t len, size_t pad)
{
	uint8_t header[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
	                     (uint8_t)len};
	uint8_t *zeros = calloc(1, pad + 1);
	int rc = -1;

	if (zeros != NULL && harness_send_all(fd, header, 4) == 0 &&
	    harness_send_all(fd, zeros, pad) == 0)
		rc = 0;
	free(zeros);
	return rc;
}

static struct sessd_client *connect_fake(const char *url)
{
	struct sessd_options opts = {.timeout_ms = 3000, .client_name = "test"};
	struct sessd_client *c = NULL;
	int rc;

	rc = sessd_connect(url, &opts, &c);
	cr_assert_eq(rc, SESSD_OK, "connect %s: %s", url, sessd_strerror(rc));
	return c;
}

TestSuite(fake_server, .timeout = 120);

/* Four FLASH_POPs and a GET; how each connection answers them after the first reply. */
static int cut_short_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	struct buf r;

	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	buf_init(&r);
	if (nth == 1) {
		if (mp_write_array(&r, 2) == -1 || mp_write_str(&r, "m1", 2) == -1 ||
		    mp_write_bin(&r, "m2", 2) == -1)
			return -1;
		return fake_reply_value(fd, req->request_id, &r);
	}
	if (nth == 2 && conn == 0) {
		if (mp_write_array(&r, 1) == -1 || mp_write_str(&r, "m3", 2) == -1)
			return -1;
		(void)fake_reply_value(fd, req->request_id, &r);
		return -1; /* and close */
	}
	if (nth == 2 && conn == 1) /* malformed: an array of 2 with 3 elements' bytes */
		return fake_reply(fd, req->request_id, CODEC_OK, "\x92\xa1x", 3);
	if (nth == 2 && conn == 2) /* the reply of another request */
		return fake_reply(fd, req->request_id + 1, CODEC_OK, "\x90", 1);
	if (nth == 2 && conn == 3) /* a result of another op's shape */
		return fake_reply(fd, req->request_id, CODEC_OK, "\x05", 1);
	return -1;
}

/*
 * A batch cut short after results were decoded (the connection closed, a malformed reply, a
 * reply for another request or of another op's shape): the replies that arrived keep their
 * status and results, owned by the batch; the rest get the error. A later run and the batch's
 * free release every result once (the leak check, and ASan for a double free).
 */
LEAK_CHECKED_TEST(fake_server, batch_cut_short_keeps_what_arrived)
{
	static const int failures[] = {SESSD_ERR_CLOSED, SESSD_ERR_PROTOCOL, SESSD_ERR_PROTOCOL,
	                               SESSD_ERR_PROTOCOL};
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_batch *b;
	const struct sessd_flashes *f;
	pid_t pid = fake_start(&l, 4, cut_short_answer);
	int rc;

	c = connect_fake(l.url);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	cr_assert_eq(sessd_batch_flash_pop(b, "s", 1, "t"), 0);
	cr_assert_eq(sessd_batch_flash_pop(b, "s", 1, "t"), 1);
	cr_assert_eq(sessd_batch_flash_pop(b, "s", 1, NULL), 2);
	cr_assert_eq(sessd_batch_get(b, "s", 1), 3);
	for (int conn = 0; conn < 4; conn++) {
		rc = sessd_batch_run(b);
		cr_assert_eq(rc, failures[conn], "run %d: %s (%s)", conn, sessd_strerror(rc),
		             sessd_errmsg(c));
		cr_assert_eq(sessd_batch_status(b, 0), SESSD_OK);
		f = sessd_batch_flashes(b, 0);
		cr_assert(f != NULL && f->count == 2 && f->items[1].is_bin);
		cr_assert_str_eq((const char *)f->items[1].msg, "m2");
		cr_assert_eq(sessd_batch_status(b, 1), conn == 0 ? SESSD_OK : failures[conn]);
		cr_assert_eq(sessd_batch_flashes(b, 1) != NULL, conn == 0);
		for (size_t i = 2; i < 4; i++)
			cr_assert_eq(sessd_batch_status(b, i), failures[conn], "run %d request %zu",
			             conn, i);
		cr_assert_null(sessd_batch_flashes(b, 2));
		cr_assert_null(sessd_batch_data(b, 3, NULL));
	}
	tmp_finish(&l, pid, "fake server");
	/* Nobody listens now: the results of the last run are released, none are left. */
	rc = sessd_batch_run(b);
	cr_assert_eq(rc, SESSD_ERR_CONNECT, "%s", sessd_strerror(rc));
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(sessd_batch_status(b, i), SESSD_ERR_CONNECT);
		cr_assert_null(sessd_batch_flashes(b, i));
	}
	sessd_batch_free(b);
	sessd_close(c);
}

/* Each request after the HELLO answered 300 ms after it is read, one after another. */
static int slow_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	harness_sleep_ms(300);
	return fake_reply_nil(fd, req->request_id, CODEC_OK);
}

/*
 * A batch's timeout bounds its run: a server that answers each reply just inside the timeout
 * (300 ms of 500) fails the run at the timeout, the replies that came keeping their status.
 * The timeout was an idle one, restarted by each reply: this batch of 6 took 1.8 s, and one of
 * n requests took n times the timeout, holding the application's call all that while.
 */
LEAK_CHECKED_TEST(fake_server, a_batch_ends_at_its_timeout_however_steadily_replies_come)
{
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_batch *b;
	pid_t pid = fake_start(&l, 1, slow_answer);
	long started, took;
	int rc, answered = 0;

	c = connect_fake(l.url);
	cr_assert_eq(sessd_set_timeout(c, 500), SESSD_OK);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(sessd_batch_ping(b), i);
	started = harness_mono_ms();
	rc = sessd_batch_run(b);
	took = harness_mono_ms() - started;
	cr_expect_eq(rc, SESSD_ERR_TIMEOUT, "run: %s (%s) after %ld ms", sessd_strerror(rc),
	             sessd_errmsg(c), took);
	cr_expect(took >= 450 && took < 1000, "the run took %ld ms, its timeout 500", took);
	for (size_t i = 0; i < 6; i++) {
		rc = sessd_batch_status(b, i);
		if (rc == SESSD_OK && (size_t)answered == i)
			answered++;
		else
			cr_expect_eq(rc, SESSD_ERR_TIMEOUT, "request %zu: %s", i,
			             sessd_strerror(rc));
	}
	cr_expect(answered >= 1 && answered < 6, "%d replies kept", answered);
	sessd_batch_free(b);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/*
 * Connection 0 answers its GET with the first 7 bytes of a reply (header and 3 of its body),
 * connection 1 closes instead of answering its GET, connection 2 answers it. Each close is an
 * orderly one (a FIN), as a proxy or a crashed writer's kernel gives it.
 */
static int cut_then_close_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	struct buf out;
	size_t at;

	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	if (conn == 1)
		return -1;
	buf_init(&out);
	if (codec_reply_open(&out, req->request_id, CODEC_OK, &at) == -1 ||
	    mp_write_bin(&out, "alice's cart", 12) == -1 || codec_frame_close(&out, at) == -1) {
		buf_finish(&out);
		return -1;
	}
	if (conn == 0)
		out.len = 7;
	(void)fake_send(fd, &out);
	return conn == 0 ? -1 : 0;
}

/*
 * A reply cut short by an orderly close says so, and how much of it came: "the server closed
 * the connection" alone is what a close between replies says (a daemon that could not write
 * its changes closes so, PROTOCOL.md IO_ERROR), and sessctl sends its user to the daemon's
 * log for that. The next call reconnects.
 */
LEAK_CHECKED_TEST(fake_server, a_reply_cut_short_by_a_close_says_so)
{
	struct tmp_listener l;
	struct sessd_client *c;
	pid_t pid = fake_start(&l, 3, cut_then_close_answer);
	void *data = NULL;
	size_t len = 0;
	int rc;

	c = connect_fake(l.url);
	rc = sessd_get(c, "s", 1, &data, &len);
	cr_assert_eq(rc, SESSD_ERR_CLOSED, "%s", sessd_strerror(rc));
	cr_assert_str_eq(sessd_errmsg(c), "the server closed the connection in the middle of a "
	                                  "reply, 7 bytes of it received");
	rc = sessd_get(c, "s", 1, &data, &len);
	cr_assert_eq(rc, SESSD_ERR_CLOSED, "%s", sessd_strerror(rc));
	cr_assert_str_eq(sessd_errmsg(c), "the server closed the connection");
	rc = sessd_get(c, "s", 1, &data, &len);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert(len == 12 && memcmp(data, "alice's cart", 12) == 0);
	free(data);
	/* Closed first: the fake server reads on until its client has gone. */
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/*
 * Connection 0: the PING's reply and the SHUTTING_DOWN of a server that stopped right after
 * answering it, in one write, or with ${cut} the goodbye cut after its header and first body
 * byte and the rest a moment later (the client's read ends there); then the close.
 * Connection 1 answers as usual.
 */
static int reply_then_goodbye(int fd, const struct codec_request *req, int conn, int nth, bool cut)
{
	struct buf out;
	size_t at, upto;

	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	if (conn == 1)
		return fake_reply_nil(fd, req->request_id, CODEC_OK);
	buf_init(&out);
	if (codec_reply_open(&out, req->request_id, CODEC_OK, &at) == -1 ||
	    buf_append(&out, "\xc0", 1) == -1 || codec_frame_close(&out, at) == -1) {
		buf_finish(&out);
		return -1;
	}
	upto = cut ? out.len + CODEC_HEADER_BYTES + 1 : SIZE_MAX;
	if (codec_reply_error(&out, 0, CODEC_SHUTTING_DOWN, "stopping") == -1) {
		buf_finish(&out);
		return -1;
	}
	if (upto < out.len && harness_send_all(fd, out.data, upto) == 0) {
		usleep(100000);
		buf_consume(&out, upto);
	}
	(void)fake_send(fd, &out);
	return -1;
}

static int goodbye_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	return reply_then_goodbye(fd, req, conn, nth, false);
}

/*
 * A server that stops right after answering sends its SHUTTING_DOWN in the same breath as
 * the last reply: the call succeeded (it was answered), it is no "bytes after the last
 * reply", and the next call reconnects.
 */
LEAK_CHECKED_TEST(fake_server, shutting_down_after_the_last_reply_is_no_error)
{
	struct tmp_listener l;
	struct sessd_client *c;
	pid_t pid = fake_start(&l, 2, goodbye_answer);
	int rc;

	c = connect_fake(l.url);
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_OK, "%s: %s", sessd_strerror(rc), sessd_errmsg(c));
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_OK, "the next call reconnects: %s: %s", sessd_strerror(rc),
	             sessd_errmsg(c));
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

static int split_goodbye_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	return reply_then_goodbye(fd, req, conn, nth, true);
}

/* The SHUTTING_DOWN after the last reply may arrive split across reads: still no error, and
 * the next call reconnects (a partial one was "bytes after the last reply"). */
LEAK_CHECKED_TEST(fake_server, shutting_down_cut_after_the_last_reply_is_no_error)
{
	struct tmp_listener l;
	struct sessd_client *c;
	pid_t pid = fake_start(&l, 2, split_goodbye_answer);
	int rc;

	c = connect_fake(l.url);
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_OK, "%s: %s", sessd_strerror(rc), sessd_errmsg(c));
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_OK, "the next call reconnects: %s: %s", sessd_strerror(rc),
	             sessd_errmsg(c));
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/*
 * Connection 0 answers the first PING with NOT_READY (after which the client drops the
 * connection itself, so the next call reconnects with no race); connections 1 and 3 answer
 * HELLO and, in the same write, a stopping server's SHUTTING_DOWN, then close; connection 2
 * answers as usual.
 */
static int goodbye_after_hello_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	struct buf out;
	size_t at;

	if (nth == 0 && conn != 1 && conn != 3)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	buf_init(&out);
	if (nth == 0) {
		/* Both frames in one write, so that the client reads them together. */
		if (codec_reply_open(&out, req->request_id, CODEC_OK, &at) == 0 &&
		    mp_write_map(&out, 3) == 0 && mp_write_str(&out, "version", 7) == 0 &&
		    mp_write_uint(&out, 1) == 0 && mp_write_str(&out, "server_id", 9) == 0 &&
		    mp_write_str(&out, FAKE_SERVER_ID, 32) == 0 &&
		    mp_write_str(&out, "max_frame", 9) == 0 &&
		    mp_write_uint(&out, CODEC_DEFAULT_MAX_FRAME) == 0 &&
		    codec_frame_close(&out, at) == 0 &&
		    codec_reply_error(&out, 0, CODEC_SHUTTING_DOWN, "stopping") == 0)
			(void)fake_send(fd, &out);
	} else if (conn == 0) {
		if (codec_reply_error(&out, req->request_id, CODEC_NOT_READY, "loading") == 0)
			(void)fake_send(fd, &out);
	} else {
		return fake_reply_nil(fd, req->request_id, CODEC_OK);
	}
	buf_finish(&out);
	return -1;
}

/*
 * A server that stops just after answering a HELLO sends its SHUTTING_DOWN right behind the
 * reply. The HELLO succeeded, but the connection is over before any request: a call that was
 * reconnecting must not then send its request on no connection at all (it used to wait there
 * for its whole timeout and fail with SESSD_ERR_TIMEOUT, which says the request may have been
 * carried out); it fails as a HELLO the stopping server answered with SHUTTING_DOWN does,
 * SESSD_ERR_CONNECT (nothing was sent), and the next call reconnects. sessd_connect fails so
 * too, with errno ECONNRESET.
 */
LEAK_CHECKED_TEST(fake_server, shutting_down_right_after_hello_sends_nothing)
{
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_options opts = {.timeout_ms = 3000, .client_name = "test"};
	pid_t pid = fake_start(&l, 4, goodbye_after_hello_answer);
	int rc;

	c = connect_fake(l.url);
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_NOT_READY, "%s: %s", sessd_strerror(rc), sessd_errmsg(c));
	rc = sessd_ping(c);
	cr_expect_eq(rc, SESSD_ERR_CONNECT, "%s: %s", sessd_strerror(rc), sessd_errmsg(c));
	cr_expect(strstr(sessd_errmsg(c), "SHUTTING_DOWN") != NULL, "%s", sessd_errmsg(c));
	rc = sessd_ping(c);
	cr_expect_eq(rc, SESSD_OK, "the next call reconnects: %s: %s", sessd_strerror(rc),
	             sessd_errmsg(c));
	sessd_close(c);
	c = NULL;
	errno = 0;
	rc = sessd_connect(l.url, &opts, &c);
	cr_expect_eq(rc, SESSD_ERR_CONNECT, "connect: %s", sessd_strerror(rc));
	cr_expect_eq(errno, ECONNRESET, "connect: %s", strerror(errno));
	cr_expect_null(c);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* HELLO announces 4 GiB - 1; the PING's reply announces 2 GiB. */
static int huge_frame_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	(void)conn;
	if (nth == 0)
		return fake_hello(fd, req->request_id, UINT32_MAX);
	return fake_header(fd, 0x80000000u, 16);
}

/*
 * A server may announce any max_frame; the client takes it at its word only up to 1 GiB, the
 * largest sessd allows (--max-frame). A frame announced over that is a protocol error at
 * once: it used to be awaited in a buffer of the announced size.
 */
LEAK_CHECKED_TEST(fake_server, max_frame_is_capped)
{
	struct tmp_listener l;
	struct sessd_client *c;
	pid_t pid = fake_start(&l, 1, huge_frame_answer);
	int rc;

	c = connect_fake(l.url);
	cr_assert_eq(sessd_max_frame(c), GIB, "max_frame %u", sessd_max_frame(c));
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert(strstr(sessd_errmsg(c), "2147483648") != NULL, "errmsg: %s", sessd_errmsg(c));
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* --- SET_IF: sessd_set_if and sessd_data_tag (PROTOCOL.md, "Sessions"). --- */

/* The tag as PROTOCOL.md defines it, computed here with libsodium, not with libsessd. */
static void tag_by_hand(const void *data, size_t len, uint8_t tag[SESSD_TAG_BYTES])
{
	uint8_t hash[64];

	cr_assert_eq(crypto_generichash(hash, sizeof(hash), data, len, NULL, 0), 0);
	memcpy(tag, hash, SESSD_TAG_BYTES);
}

/* GET ${id} and the tag of what came back. */
static void read_tag(struct sessd_client *c, const char *id, uint8_t tag[SESSD_TAG_BYTES])
{
	uint8_t want[SESSD_TAG_BYTES];
	void *data = NULL;
	size_t len = 0;
	int rc;

	rc = sessd_get(c, id, strlen(id), &data, &len);
	cr_assert_eq(rc, SESSD_OK, "get: %s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	sessd_data_tag(data, len, tag);
	tag_by_hand(data, len, want);
	cr_assert_arr_eq(tag, want, SESSD_TAG_BYTES, "sessd_data_tag is PROTOCOL.md's tag");
	free(data);
}

LEAK_CHECKED_TEST(client, set_if_saves_only_over_what_was_read)
{
	static const char id[] = "cas";
	struct sessd_client *a = connect_to(daemon_.unix_url);
	struct sessd_client *b = connect_to(daemon_.tcp_url);
	uint8_t tag[SESSD_TAG_BYTES], empty[SESSD_TAG_BYTES];
	int rc;

	cr_assert_eq(sessd_set(a, id, 3, "{\"a\":1}", 7, TTL_MS), SESSD_OK);
	read_tag(a, id, tag);
	/* Another request saves first: a's save, computed from what it read, conflicts. */
	cr_assert_eq(sessd_set(b, id, 3, "{\"a\":1,\"b\":2}", 13, TTL_MS), SESSD_OK);
	rc = sessd_set_if(a, id, 3, "{\"a\":1,\"c\":3}", 13, TTL_MS, tag);
	cr_assert_eq(rc, SESSD_CONFLICT, "%s (%s)", sessd_strerror(rc), sessd_errmsg(a));
	cr_assert_eq(strncmp(sessd_errmsg(a), "CONFLICT: ", 10), 0, "errmsg: %s", sessd_errmsg(a));
	cr_assert_str_eq(sessd_strerror(SESSD_CONFLICT), "data changed since it was read");
	expect_data(a, id, 3, "{\"a\":1,\"b\":2}", 13);
	/* Read again, apply the change again, retry. */
	read_tag(a, id, tag);
	rc = sessd_set_if(a, id, 3, "{\"a\":1,\"b\":2,\"c\":3}", 19, TTL_MS, tag);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(a));
	expect_data(b, id, 3, "{\"a\":1,\"b\":2,\"c\":3}", 19);
	/* The tag of what a client stored is the tag to expect next. */
	sessd_data_tag("{\"a\":1,\"b\":2,\"c\":3}", 19, tag);
	cr_assert_eq(sessd_set_if(a, id, 3, NULL, 0, TTL_MS, tag), SESSD_OK, "%s", sessd_errmsg(a));
	sessd_data_tag(NULL, 0, empty);
	tag_by_hand("", 0, tag);
	cr_assert_arr_eq(empty, tag, SESSD_TAG_BYTES, "empty data has a tag too");
	cr_assert_eq(sessd_set_if(a, id, 3, "x", 1, TTL_MS, empty), SESSD_OK, "%s",
	             sessd_errmsg(a));
	expect_data(a, id, 3, "x", 1);

	/* A logout meanwhile: the late save must not bring the session back. */
	read_tag(a, id, tag);
	cr_assert_eq(sessd_destroy(b, id, 3), SESSD_OK);
	rc = sessd_set_if(a, id, 3, "late", 4, TTL_MS, tag);
	cr_assert_eq(rc, SESSD_NOT_FOUND, "%s (%s)", sessd_strerror(rc), sessd_errmsg(a));
	cr_assert_str_eq(sessd_errmsg(a), "not found");
	expect_missing(a, id, 3);
	sessd_close(a);
	sessd_close(b);
}

/* Assert ${id}'s remaining lifetime is ${want_ms}, less the few seconds the test took. */
static void expect_ttl_near(struct sessd_client *c, const char *id, uint64_t want_ms)
{
	uint64_t ms = 0;
	int rc;

	rc = sessd_ttl(c, id, strlen(id), &ms);
	cr_assert_eq(rc, SESSD_OK, "ttl: %s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert(ms > want_ms - 5000 && ms <= want_ms, "%llu ms left, not about %llu",
	          (unsigned long long)ms, (unsigned long long)want_ms);
}

/*
 * sessd_touch_if (PROTOCOL.md, "Sessions"): a request that read the session and changed
 * nothing touches it only while the data is what it read, so a "remember me" saved meanwhile
 * keeps the lifetime it chose.
 */
LEAK_CHECKED_TEST(client, touch_if_touches_only_over_what_was_read)
{
	static const char id[] = "tif";
	struct sessd_client *slow = connect_to(daemon_.unix_url);
	struct sessd_client *other = connect_to(daemon_.tcp_url);
	uint8_t tag[SESSD_TAG_BYTES];
	uint64_t ms = 0;
	int rc;

	cr_assert_eq(sessd_set(other, id, 3, "{\"u\":1}", 7, TTL_MS), SESSD_OK);
	read_tag(slow, id, tag);
	cr_assert_eq(sessd_touch_if(slow, id, 3, 2 * TTL_MS, tag), SESSD_OK, "%s",
	             sessd_errmsg(slow));
	expect_ttl_near(other, id, 2 * TTL_MS);

	/* "Remember me" saved by another request after this one read the session. */
	cr_assert_eq(sessd_set(other, id, 3, "{\"u\":1,\"r\":1}", 13, 100 * TTL_MS), SESSD_OK);
	rc = sessd_touch_if(slow, id, 3, TTL_MS, tag);
	cr_assert_eq(rc, SESSD_CONFLICT, "%s (%s)", sessd_strerror(rc), sessd_errmsg(slow));
	cr_assert_eq(strncmp(sessd_errmsg(slow), "CONFLICT: ", 10), 0, "errmsg: %s",
	             sessd_errmsg(slow));
	expect_ttl_near(other, id, 100 * TTL_MS); /* the save's lifetime stays */
	expect_data(slow, id, 3, "{\"u\":1,\"r\":1}", 13);
	/* Read again: the touch holds over the new tag. */
	read_tag(slow, id, tag);
	cr_assert_eq(sessd_touch_if(slow, id, 3, 99 * TTL_MS, tag), SESSD_OK, "%s",
	             sessd_errmsg(slow));
	expect_ttl_near(other, id, 99 * TTL_MS);

	/* A logout meanwhile: NOT_FOUND, and the session stays gone. */
	cr_assert_eq(sessd_destroy(other, id, 3), SESSD_OK);
	rc = sessd_touch_if(slow, id, 3, TTL_MS, tag);
	cr_assert_eq(rc, SESSD_NOT_FOUND, "%s (%s)", sessd_strerror(rc), sessd_errmsg(slow));
	expect_missing(slow, id, 3);
	cr_assert_eq(sessd_ttl(other, id, 3, &ms), SESSD_NOT_FOUND);
	/* Flashes only: no data, so NOT_FOUND, even with the tag of empty data. */
	cr_assert_eq(sessd_flash_push(other, id, 3, "info", "m", 1, 3000, NULL), SESSD_OK);
	sessd_data_tag(NULL, 0, tag);
	cr_assert_eq(sessd_touch_if(slow, id, 3, TTL_MS, tag), SESSD_NOT_FOUND);
	cr_assert_eq(sessd_ttl(other, id, 3, &ms), SESSD_OK);
	cr_assert(ms <= 3000, "the flashes' expiry did not move: %llu", (unsigned long long)ms);

	/* Bad arguments are the client's to refuse; the connection stays usable. */
	cr_assert_eq(sessd_touch_if(NULL, id, 3, TTL_MS, tag), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_touch_if(slow, id, 3, TTL_MS, NULL), SESSD_ERR_USAGE);
	cr_assert(strstr(sessd_errmsg(slow), "expect") != NULL, "%s", sessd_errmsg(slow));
	cr_assert_eq(sessd_touch_if(slow, id, 0, TTL_MS, tag), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_touch_if(slow, id, 3, 0, tag), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_ping(slow), SESSD_OK);
	sessd_close(slow);
	sessd_close(other);
}

LEAK_CHECKED_TEST(client, set_if_bad_arguments_are_usage_errors)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	uint8_t tag[SESSD_TAG_BYTES];
	char long_id[130];

	memset(long_id, 'i', sizeof(long_id));
	sessd_data_tag("x", 1, tag);
	cr_assert_eq(sessd_set_if(NULL, "s", 1, "x", 1, TTL_MS, tag), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_set_if(c, "s", 1, "x", 1, TTL_MS, NULL), SESSD_ERR_USAGE);
	cr_assert(strstr(sessd_errmsg(c), "expect") != NULL, "%s", sessd_errmsg(c));
	cr_assert_eq(sessd_set_if(c, "s", 0, "x", 1, TTL_MS, tag), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_set_if(c, long_id, 129, "x", 1, TTL_MS, tag), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_set_if(c, "s", 1, NULL, 1, TTL_MS, tag), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_set_if(c, "s", 1, "x", 1, 0, tag), SESSD_ERR_USAGE);
	sessd_data_tag(NULL, 1, tag);
	for (size_t i = 0; i < SESSD_TAG_BYTES; i++)
		cr_assert_eq(tag[i], 0, "no data: a tag no data has");
	sessd_data_tag("x", 1, NULL); /* nothing to write to: nothing happens */
	cr_assert_eq(sessd_ping(c), SESSD_OK, "the connection was not used");
	sessd_close(c);
}

/* sessd_batch_status of request ${i} is ${want}. */
static void expect_status(const struct sessd_batch *b, size_t i, int want)
{
	int got = sessd_batch_status(b, i);

	cr_assert_eq(got, want, "request %zu: %s, not %s", i, sessd_strerror(got),
	             sessd_strerror(want));
}

LEAK_CHECKED_TEST(client, batch_set_if_saves_only_over_what_was_read)
{
	static const char v1[] = "{\"n\":1}", mine[] = "{\"n\":1,\"a\":1}";
	static const char theirs[] = "{\"n\":2}", mine2[] = "{\"n\":1,\"a\":2}";
	struct sessd_client *a = connect_ns(daemon_.unix_url, "batch-cas");
	struct sessd_client *other = connect_ns(daemon_.tcp_url, "batch-cas");
	struct sessd_batch *b = sessd_batch_new(a);
	uint8_t tag_x[SESSD_TAG_BYTES], tag_y[SESSD_TAG_BYTES], tag_z[SESSD_TAG_BYTES];
	uint8_t tag_f[SESSD_TAG_BYTES], tag_mine[SESSD_TAG_BYTES];
	const void *data;
	size_t len;
	int rc;

	cr_assert_not_null(b);
	cr_assert_eq(sessd_set(a, "x", 1, v1, strlen(v1), TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_set(a, "y", 1, v1, strlen(v1), TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_set(a, "z", 1, v1, strlen(v1), TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_flash_push(a, "f", 1, "info", "m", 1, TTL_MS, NULL), SESSD_OK);
	read_tag(a, "x", tag_x);
	read_tag(a, "y", tag_y);
	read_tag(a, "z", tag_z);
	sessd_data_tag(v1, strlen(v1), tag_f);
	sessd_data_tag(mine, strlen(mine), tag_mine);
	/* Meanwhile another client saves x and logs z out. */
	cr_assert_eq(sessd_set(other, "x", 1, theirs, strlen(theirs), TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_destroy(other, "z", 1), SESSD_OK);

	cr_assert_eq(sessd_batch_set_if(b, "x", 1, mine, strlen(mine), TTL_MS, tag_x), 0);
	cr_assert_eq(sessd_batch_set_if(b, "y", 1, mine, strlen(mine), TTL_MS, tag_y), 1);
	cr_assert_eq(sessd_batch_set_if(b, "z", 1, "late", 4, TTL_MS, tag_z), 2);
	/* A session of flashes only has no data to compare: NOT_FOUND, and no data made. */
	cr_assert_eq(sessd_batch_set_if(b, "f", 1, mine, strlen(mine), TTL_MS, tag_f), 3);
	cr_assert_eq(sessd_batch_get(b, "y", 1), 4);
	/* Each SET_IF sees the batch's earlier requests: the tag of what request 1 stored. */
	cr_assert_eq(sessd_batch_set_if(b, "y", 1, mine2, strlen(mine2), TTL_MS, tag_mine), 5);
	cr_assert_eq(sessd_batch_set_if(b, "y", 1, "stale", 5, TTL_MS, tag_y), 6);
	cr_assert_eq(sessd_batch_ping(b), 7);
	rc = sessd_batch_run(b);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(a));
	expect_status(b, 0, SESSD_CONFLICT);
	expect_status(b, 1, SESSD_OK);
	expect_status(b, 2, SESSD_NOT_FOUND);
	expect_status(b, 3, SESSD_NOT_FOUND);
	expect_status(b, 4, SESSD_OK);
	expect_status(b, 5, SESSD_OK);
	expect_status(b, 6, SESSD_CONFLICT);
	expect_status(b, 7, SESSD_OK);
	cr_assert_null(sessd_batch_data(b, 1, &len), "a SET_IF has no data");
	data = sessd_batch_data(b, 4, &len);
	cr_assert_not_null(data);
	cr_assert_eq(len, strlen(mine));
	cr_assert_eq(memcmp(data, mine, len + 1), 0);

	/* What the other client sees: its save kept, the logout kept, y saved twice. */
	expect_data(other, "x", 1, theirs, strlen(theirs));
	expect_missing(other, "z", 1);
	expect_missing(other, "f", 1);
	expect_data(other, "y", 1, mine2, strlen(mine2));
	sessd_batch_free(b);
	sessd_close(a);
	sessd_close(other);
}

LEAK_CHECKED_TEST(client, batch_set_if_bad_arguments_queue_nothing)
{
	static const char id[] = "batch-cas-none";
	struct sessd_client *c = connect_to(daemon_.unix_url);
	struct sessd_batch *b = sessd_batch_new(c);
	uint8_t tag[SESSD_TAG_BYTES];
	size_t len = sessd_max_frame(c);
	char *big = calloc(1, len);

	cr_assert_not_null(b);
	cr_assert_not_null(big);
	sessd_data_tag("x", 1, tag);
	cr_assert_eq(sessd_batch_set_if(NULL, id, 1, "x", 1, TTL_MS, tag), -1);
	errno = 0;
	cr_assert_eq(sessd_batch_set_if(b, id, 1, "x", 1, TTL_MS, NULL), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(sessd_errmsg(c), "expect") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_set_if(b, id, 0, "x", 1, TTL_MS, tag), -1);
	cr_assert(strstr(sessd_errmsg(c), "an id has") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_set_if(b, id, 1, "x", 1, 0, tag), -1);
	cr_assert(strstr(sessd_errmsg(c), "a ttl is") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_set_if(b, id, 1, NULL, 1, TTL_MS, tag), -1);
	cr_assert(strstr(sessd_errmsg(c), "no data") != NULL, "errmsg: %s", sessd_errmsg(c));
	/* The most data a SET carries under max_frame: a SET_IF's expect takes 18 bytes more
	 * (PROTOCOL.md, max_data), and a frame over max_frame is refused before it is sent. */
	while (len > 0 && sessd_batch_set(b, id, strlen(id), big, len, TTL_MS) == -1)
		len--;
	cr_assert_gt(len, 0);
	sessd_batch_reset(b);
	errno = 0;
	cr_assert_eq(sessd_batch_set_if(b, id, strlen(id), big, len - 17, TTL_MS, tag), -1);
	cr_assert_eq(errno, EMSGSIZE);
	cr_assert(strstr(sessd_errmsg(c), "SET_IF of") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_set_if(b, id, strlen(id), big, len - 18, TTL_MS, tag), 0);
	sessd_batch_reset(b);
	free(big);
	/* Nothing was queued by the refusals: the next request is the first. */
	cr_assert_eq(sessd_batch_set_if(b, id, strlen(id), NULL, 0, TTL_MS, tag), 0);
	cr_assert_eq(sessd_batch_run(b), SESSD_OK);
	expect_status(b, 0, SESSD_NOT_FOUND);
	sessd_batch_free(b);
	sessd_close(c);
}

/* An older server does not know SET_IF (UNKNOWN_OP); a CONFLICT keeps the connection too. */
static int old_server_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	struct buf r;

	(void)conn;
	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	if ((nth == 1 || nth == 3) && req->op == CODEC_OP_SET_IF) {
		const char *msg = nth == 1 ? "unknown opcode" : "changed\x1b[2J";
		int rc;

		buf_init(&r);
		rc = mp_write_str(&r, msg, strlen(msg));
		if (rc == 0)
			rc =
			    fake_reply(fd, req->request_id,
			               nth == 1 ? CODEC_UNKNOWN_OP : CODEC_CONFLICT, r.data, r.len);
		buf_finish(&r);
		return rc;
	}
	if ((nth == 2 && req->op == CODEC_OP_SET) || (nth == 4 && req->op == CODEC_OP_PING))
		return fake_reply_nil(fd, req->request_id, CODEC_OK);
	return -1;
}

LEAK_CHECKED_TEST(fake_server, set_if_to_an_older_server_falls_back_to_set)
{
	struct tmp_listener l;
	struct sessd_client *c;
	uint8_t tag[SESSD_TAG_BYTES];
	pid_t pid = fake_start(&l, 1, old_server_answer);
	int rc;

	c = connect_fake(l.url);
	sessd_data_tag("old", 3, tag);
	rc = sessd_set_if(c, "s", 1, "new", 3, TTL_MS, tag);
	cr_assert_eq(rc, SESSD_ERR_UNKNOWN_OP, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	/* The fake serves one connection: these work only if it stayed open. */
	cr_assert_eq(sessd_set(c, "s", 1, "new", 3, TTL_MS), SESSD_OK, "%s", sessd_errmsg(c));
	rc = sessd_set_if(c, "s", 1, "newer", 5, TTL_MS, tag);
	cr_assert_eq(rc, SESSD_CONFLICT, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert_str_eq(sessd_errmsg(c), "CONFLICT: changed?[2J");
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* The peak virtual size of this process in KiB (VmPeak), or 0 when it cannot be read. */
static size_t vm_peak_kib(void)
{
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	size_t kib = 0;

	if (fp == NULL)
		return 0;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "VmPeak: %zu kB", &kib) == 1)
			break;
	fclose(fp);
	return kib;
}

/* HELLO announces 1 GiB; the PING's reply announces almost that, sends 256 KiB and ends. */
static int big_announce_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	(void)conn;
	if (nth == 0)
		return fake_hello(fd, req->request_id, GIB);
	(void)fake_header(fd, (uint32_t)(GIB - 100), 256 * 1024);
	return -1;
}

/*
 * The memory a reply takes grows with the bytes that arrive, not with the length its header
 * announces: a server could make the client reserve up to max_frame (1 GiB, 2 GiB with the
 * buffer's doubling) with 4 bytes.
 */
LEAK_CHECKED_TEST(fake_server, an_announced_length_reserves_nothing)
{
	struct tmp_listener l;
	struct sessd_client *c;
	pid_t pid = fake_start(&l, 1, big_announce_answer);
	size_t before, after;
	int rc;

	c = connect_fake(l.url);
	before = vm_peak_kib();
	cr_assert_gt(before, 0, "no VmPeak in /proc/self/status");
	rc = sessd_ping(c);
	after = vm_peak_kib();
	cr_assert_eq(rc, SESSD_ERR_CLOSED, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert_lt(after - before, 128 * 1024, "the peak grew by %zu KiB", after - before);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/*
 * HELLO replies with no max_frame or one under 4096: connection 0 none, 1 100, 2 a good one
 * that closes at the first request, 3 none, 4 good again, 5 100.
 */
static int bad_hello_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	static const uint64_t frames[] = {
	    0, 100, CODEC_DEFAULT_MAX_FRAME, 0, CODEC_DEFAULT_MAX_FRAME, 100};

	if (nth == 0)
		return fake_hello(fd, req->request_id, frames[conn]);
	return -1;
}

/*
 * Connection 0: the batch's first PING answered, its second refused unread as a frame over
 * max_frame (TOO_LARGE with request id 0, PROTOCOL.md), and the connection closed. Connection
 * 1: the PING of the next call.
 */
static int too_large_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	char drain[256];
	struct buf out;

	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	if (conn == 1 || nth == 1)
		return fake_reply_nil(fd, req->request_id, CODEC_OK);
	buf_init(&out);
	if (codec_reply_error(&out, 0, CODEC_TOO_LARGE, "the frame is longer than max_frame") == 0)
		fake_send(fd, &out);
	buf_finish(&out);
	/* As sessd lingers: closed with the client's last request unread, the socket would
	 * reset, and the reset could overtake the reply in the client's kernel. */
	shutdown(fd, SHUT_WR);
	while (read(fd, drain, sizeof(drain)) > 0)
		;
	return -1;
}

/*
 * A server that refuses a frame unread (a libsessd sized it by the max_frame it announced,
 * which its own check no longer matches) answers TOO_LARGE with request id 0 and closes: the
 * request gets SESSD_ERR_TOO_LARGE, those before it keep their replies, those after it the
 * closed connection (the run's own result), and the next call reconnects.
 */
LEAK_CHECKED_TEST(fake_server, a_frame_refused_unread_fails_its_request_and_reconnects)
{
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_batch *b;
	pid_t pid = fake_start(&l, 2, too_large_answer);

	c = connect_fake(l.url);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(sessd_batch_ping(b), i);
	cr_assert_eq(sessd_batch_run(b), SESSD_ERR_CLOSED, "%s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_status(b, 0), SESSD_OK);
	cr_assert_eq(sessd_batch_status(b, 1), SESSD_ERR_TOO_LARGE);
	cr_assert_eq(sessd_batch_status(b, 2), SESSD_ERR_CLOSED);
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_batch_free(b);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* The HELLO refusals of refused_hello_answer, one per connection, and the errno of each. */
static const struct {
	uint32_t status;
	int err;
} hello_refusals[] = {
    {CODEC_BUSY, EAGAIN},
    {CODEC_BAD_VERSION, EPROTONOSUPPORT},
    {CODEC_INTERNAL, ECONNREFUSED},
    {CODEC_NOT_READY, ECONNREFUSED},
    {CODEC_NO_MEMORY, ECONNREFUSED},
};

static int refused_hello_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	struct buf out;

	buf_init(&out);
	if (nth == 0 &&
	    codec_reply_error(&out, req->request_id, hello_refusals[conn].status, "refused") == 0)
		fake_send(fd, &out);
	buf_finish(&out);
	return -1;
}

/*
 * A HELLO the server refuses returns the server's status, and errno says it as well (sessd.h,
 * sessd_connect), whatever a step inside the library left in errno before.
 */
LEAK_CHECKED_TEST(fake_server, a_refused_hello_sets_errno_for_its_status)
{
	enum { N = sizeof(hello_refusals) / sizeof(hello_refusals[0]) };
	struct sessd_options opts = {.timeout_ms = 3000};
	struct tmp_listener l;
	struct sessd_client *c = (struct sessd_client *)1;
	pid_t pid = fake_start(&l, N, refused_hello_answer);
	int rc;

	for (size_t i = 0; i < N; i++) {
		errno = 0;
		rc = sessd_connect(l.url, &opts, &c);
		cr_assert_eq(rc, (int)hello_refusals[i].status, "%zu: %s", i, sessd_strerror(rc));
		cr_assert_null(c);
		cr_assert_eq(errno, hello_refusals[i].err, "%s: errno %d (%s)", sessd_strerror(rc),
		             errno, strerror(errno));
	}
	tmp_finish(&l, pid, "fake server");
}

/* What another service on the port answers a HELLO with, one per connection. */
static const char *const not_sessd_replies[] = {
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    "-ERR unknown command\r\n",
    "\0\0\0\0",
};

static int not_sessd_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	const char *reply = not_sessd_replies[conn];

	(void)req;
	(void)nth;
	(void)harness_send_all(fd, reply, conn == 2 ? 4 : strlen(reply));
	return -1;
}

/*
 * The commonest mistake when configuring a client: the URL names another service's port (a
 * web server's, Redis's). Its answer to the HELLO is not framed as sessd's (its first four
 * bytes, as a length, are far over the 4096 a HELLO reply fits in; or a frame is empty): a
 * HELLO reply this client cannot use, SESSD_ERR_PROTOCOL with errno EPROTO, and words that
 * show what answered. It was SESSD_ERR_CONNECT with errno ECONNRESET ("the connection broke",
 * which it did not), which an application retries as a daemon that is restarting.
 */
LEAK_CHECKED_TEST(fake_server, another_service_on_the_port_is_no_broken_connection)
{
	enum { N = sizeof(not_sessd_replies) / sizeof(not_sessd_replies[0]) };
	static const char *const shown[N] = {"HTTP/1.1 400 Bad", "-ERR unknown com",
	                                     "an empty frame"};
	struct sessd_options opts = {.timeout_ms = 3000};
	struct tmp_listener l;
	struct sessd_client *c = NULL;
	char why[SESSD_ERRMSG_SIZE];
	pid_t pid = fake_start(&l, N, not_sessd_answer);
	int rc;

	for (size_t i = 0; i < N; i++) {
		errno = 0;
		rc = sessd_connect_errbuf(l.url, &opts, &c, why, sizeof(why));
		cr_expect_eq(rc, SESSD_ERR_PROTOCOL, "%zu: %s: %s", i, sessd_strerror(rc), why);
		cr_expect_eq(errno, EPROTO, "%zu: errno %s", i, strerror(errno));
		cr_expect(strstr(why, "HELLO reply is unusable") != NULL, "%s", why);
		cr_expect(strstr(why, shown[i]) != NULL, "%s", why);
		cr_assert_null(c);
	}
	tmp_finish(&l, pid, "fake server");
}

/*
 * A HELLO reply without max_frame, or with one under the protocol's 4096, is a protocol error
 * at once, in words that say so (sessd_connect: the code; a reconnection: sessd_errmsg).
 */
LEAK_CHECKED_TEST(fake_server, hello_without_a_usable_max_frame)
{
	struct sessd_options opts = {.timeout_ms = 3000};
	struct tmp_listener l;
	struct sessd_client *c = (struct sessd_client *)1;
	pid_t pid = fake_start(&l, 6, bad_hello_answer);
	int64_t started = time(NULL);
	char errbuf[SESSD_ERRMSG_SIZE], want[SESSD_ERRMSG_SIZE];
	int rc;

	cr_assert_eq(sessd_connect_errbuf(l.url, &opts, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_PROTOCOL);
	cr_assert_null(c);
	cr_assert_eq(errno, EPROTO);
	snprintf(want, sizeof(want),
	         "cannot connect to %s: the server's HELLO reply has no max_frame", l.url);
	cr_assert_str_eq(errbuf, want);
	cr_assert_eq(sessd_connect_errbuf(l.url, &opts, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_PROTOCOL);
	cr_assert_null(c);
	cr_assert(strstr(errbuf, "announces max_frame 100, under the protocol's least") != NULL,
	          "errbuf: %s", errbuf);
	c = connect_fake(l.url);
	cr_assert_eq(sessd_ping(c), SESSD_ERR_CLOSED);
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "%s", sessd_strerror(rc));
	cr_assert(strstr(sessd_errmsg(c), "no max_frame") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_ping(c), SESSD_ERR_CLOSED);
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "%s", sessd_strerror(rc));
	cr_assert(strstr(sessd_errmsg(c), "max_frame 100") != NULL, "errmsg: %s", sessd_errmsg(c));
	/* No wait for a timeout anywhere. */
	cr_assert_lt(time(NULL) - started, 3);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* server_ids that are not 32 hex digits: with a quote and a newline, with a NUL. */
static int bad_server_id_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	static const char quoted[] = "0123456789abcdef0123456789abc\"\n}";
	static const char nul[] = "0123456789abcdef\0"
	                          "123456789abcdef";

	if (nth > 0)
		return -1;
	if (conn == 0)
		return fake_hello_with(fd, req->request_id, quoted, 32, CODEC_DEFAULT_MAX_FRAME);
	return fake_hello_with(fd, req->request_id, nul, 32, CODEC_DEFAULT_MAX_FRAME);
}

/* sessd_server_id promises 32 hex digits (sessctl prints it inside JSON unescaped). */
LEAK_CHECKED_TEST(fake_server, server_id_must_be_hex)
{
	struct tmp_listener l;
	struct sessd_client *c = NULL;
	pid_t pid = fake_start(&l, 2, bad_server_id_answer);

	cr_assert_eq(sessd_connect(l.url, NULL, &c), SESSD_ERR_PROTOCOL);
	cr_assert_null(c);
	cr_assert_eq(sessd_connect(l.url, NULL, &c), SESSD_ERR_PROTOCOL);
	cr_assert_null(c);
	tmp_finish(&l, pid, "fake server");
}

/* NOT_FOUND to everything after HELLO. */
static int not_found_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	(void)conn;
	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	return fake_reply_nil(fd, req->request_id, CODEC_NOT_FOUND);
}

/*
 * NOT_FOUND is an answer of GET, TOUCH, DESTROY and FLASH_POP only (PROTOCOL.md); to another
 * op it is a protocol error, not a result the caller reads as "no such session" with its
 * output unwritten.
 */
LEAK_CHECKED_TEST(fake_server, not_found_only_where_an_op_has_it)
{
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_batch *b;
	void *data;
	size_t len;
	uint64_t n = 77;
	pid_t pid = fake_start(&l, 4, not_found_answer);
	int rc;

	c = connect_fake(l.url);
	rc = sessd_count(c, &n);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "count: %s", sessd_strerror(rc));
	cr_assert(strstr(sessd_errmsg(c), "COUNT") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(n, 77);
	rc = sessd_set(c, "s", 1, "x", 1, TTL_MS);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "set: %s", sessd_strerror(rc));
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "ping: %s", sessd_strerror(rc));
	cr_assert_eq(sessd_get(c, "s", 1, &data, &len), SESSD_NOT_FOUND);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	sessd_batch_touch(b, "s", 1, TTL_MS);
	sessd_batch_destroy(b, "s", 1);
	sessd_batch_flash_pop(b, "s", 1, NULL);
	sessd_batch_flash_push(b, "s", 1, "t", "m", 1, TTL_MS);
	sessd_batch_ping(b);
	cr_assert_eq(sessd_batch_run(b), SESSD_ERR_PROTOCOL);
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(sessd_batch_status(b, i), SESSD_NOT_FOUND, "request %zu", i);
	cr_assert_eq(sessd_batch_status(b, 3), SESSD_ERR_PROTOCOL);
	cr_assert_eq(sessd_batch_status(b, 4), SESSD_ERR_PROTOCOL);
	sessd_batch_free(b);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

static int conflict_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	(void)conn;
	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	return fake_reply(fd, req->request_id, CODEC_CONFLICT, "\xa4oops", 5);
}

/*
 * CONFLICT is an answer of SET_IF and TOUCH_IF only (sessd.h): to a GET it is a protocol
 * error, not a status a caller told to retry on CONFLICT would loop on.
 */
LEAK_CHECKED_TEST(fake_server, conflict_only_where_an_op_has_it)
{
	struct tmp_listener l;
	struct sessd_client *c;
	uint8_t tag[SESSD_TAG_BYTES] = {0};
	void *data = NULL;
	size_t len = 0;
	pid_t pid = fake_start(&l, 3, conflict_answer);
	int rc;

	c = connect_fake(l.url);
	rc = sessd_get(c, "s", 1, &data, &len);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "get: %s", sessd_strerror(rc));
	cr_assert(strstr(sessd_errmsg(c), "CONFLICT answer to GET") != NULL, "errmsg: %s",
	          sessd_errmsg(c));
	cr_assert_null(data);
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "ping: %s", sessd_strerror(rc));
	rc = sessd_set_if(c, "s", 1, "x", 1, TTL_MS, tag);
	cr_assert_eq(rc, SESSD_CONFLICT, "set_if: %s", sessd_strerror(rc));
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* LIST pages: 0 more entries than asked, 1 an empty id, 2 a 129-byte id, 3 a good page. */
static int list_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	char id[129];
	struct buf r;
	uint32_t n = conn == 0 ? req->limit + 1 : 2;

	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	memset(id, 'i', sizeof(id));
	buf_init(&r);
	if (mp_write_array(&r, 2) == -1 || mp_write_uint(&r, 0) == -1 ||
	    mp_write_array(&r, n) == -1)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		size_t id_len = i == 0 ? 1 : conn == 1 ? 0 : conn == 2 ? 129 : 128;

		if (mp_write_array(&r, 2) == -1 || mp_write_bin(&r, id, id_len) == -1 ||
		    mp_write_uint(&r, 1000) == -1)
			return -1;
	}
	return fake_reply_value(fd, req->request_id, &r);
}

/* A LIST page holds at most the entries asked for, each id 1 to 128 bytes (PROTOCOL.md). */
LEAK_CHECKED_TEST(fake_server, list_pages_are_bounded)
{
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_list *page = (struct sessd_list *)1;
	pid_t pid = fake_start(&l, 4, list_answer);
	int rc;

	c = connect_fake(l.url);
	for (int conn = 0; conn < 3; conn++) {
		rc = sessd_list(c, 0, conn == 0 ? 5 : 1000, &page);
		cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "page %d: %s", conn, sessd_strerror(rc));
		cr_assert_null(page);
	}
	rc = sessd_list(c, 0, 1000, &page);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert_eq(page->count, 2);
	cr_assert_eq(page->items[1].id_len, 128);
	sessd_list_free(page);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/*
 * FLASH_POP of every type: 0 a 65-byte type, 1 an empty type, 2 65 types, 3 a type twice,
 * 4 64 types of 64 bytes (good).
 */
static int flash_types_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	char type[65];
	struct buf r;
	uint32_t pairs = conn == 0 || conn == 1 ? 1 : conn == 3 ? 2 : conn == 2 ? 65 : 64;

	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	buf_init(&r);
	if (mp_write_map(&r, pairs) == -1)
		return -1;
	for (uint32_t i = 0; i < pairs; i++) {
		size_t type_len = conn == 0 ? 65 : conn == 1 ? 0 : 64;

		memset(type, 'a', sizeof(type));
		if (conn != 3)
			snprintf(type, sizeof(type), "%02u", (unsigned)i);
		type[2] = 'a';
		if (mp_write_str(&r, type, type_len) == -1 || mp_write_array(&r, 1) == -1 ||
		    mp_write_str(&r, "m", 1) == -1)
			return -1;
	}
	return fake_reply_value(fd, req->request_id, &r);
}

/* A pop of every type holds at most 64 types of 1 to 64 bytes, each once (PROTOCOL.md). */
LEAK_CHECKED_TEST(fake_server, flash_types_are_bounded)
{
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_flashes *f = (struct sessd_flashes *)1;
	pid_t pid = fake_start(&l, 5, flash_types_answer);
	int rc;

	c = connect_fake(l.url);
	for (int conn = 0; conn < 4; conn++) {
		rc = sessd_flash_pop(c, "s", 1, NULL, &f);
		cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "reply %d: %s", conn, sessd_strerror(rc));
		cr_assert_null(f);
	}
	rc = sessd_flash_pop(c, "s", 1, NULL, &f);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert_eq(f->count, 64);
	cr_assert_eq(strlen(f->items[63].type), 64);
	sessd_flashes_free(f);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* An INTERNAL error whose message carries terminal escapes, a newline and a NUL. */
static int escape_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	static const char msg[] = "boom\x1b]0;owned\x07\x1b[2J\r\nmore\0after\x7f";
	struct buf r;
	int rc;

	(void)conn;
	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	buf_init(&r);
	if (mp_write_str(&r, msg, sizeof(msg) - 1) == -1) {
		buf_finish(&r);
		return -1;
	}
	rc = fake_reply(fd, req->request_id, CODEC_INTERNAL, r.data, r.len);
	buf_finish(&r);
	return rc;
}

/*
 * The server's message reaches sessd_errmsg (and sessctl's stderr, a terminal) without its
 * control bytes: a server could otherwise write escape sequences to the user's terminal.
 */
LEAK_CHECKED_TEST(fake_server, server_messages_lose_control_bytes)
{
	struct tmp_listener l;
	struct sessd_client *c;
	pid_t pid = fake_start(&l, 1, escape_answer);
	const char *msg;

	c = connect_fake(l.url);
	cr_assert_eq(sessd_ping(c), SESSD_ERR_INTERNAL);
	msg = sessd_errmsg(c);
	cr_assert(strstr(msg, "INTERNAL: boom") != NULL, "errmsg: %s", msg);
	cr_assert(strstr(msg, "after") != NULL, "the message stops at its NUL: %s", msg);
	for (const char *p = msg; *p != '\0'; p++)
		cr_assert((unsigned char)*p >= 0x20 && *p != 0x7f, "a control byte 0x%02x in %s",
		          (unsigned char)*p, msg);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* --- What a decoded result may cost (FLASH_POP, STATS, LIST). --- */

/*
 * The max_frame the heavy fake server announces; the data of its GET, almost that (the reply's
 * array, request id, status and bin header take at most 16 more); and the most result bytes
 * its other replies hold. Those stay 128 KiB (two read chunks) under the GET's, so the buffer
 * replies are read into, grown by the GET, does not grow while a result's cost is measured.
 */
#define HEAVY_MAX_FRAME (1024u * 1024u)
#define HEAVY_GET_DATA  (HEAVY_MAX_FRAME - 16u)
#define HEAVY_RESULT    (HEAVY_MAX_FRAME - 128u * 1024u)
/*
 * The most messages a session holds under HEAVY_MAX_FRAME (PROTOCOL.md, Flashes: max_frame / 2
 * bytes, each message counting at least a type of 1 byte and 5).
 */
#define HEAVY_MOST_FLASHES (HEAVY_MAX_FRAME / 12u)
/* The most figures a STATS result may hold (sessd.h). */
#define HEAVY_MOST_STATS 1024u
/* What a refused result may cost: nothing of its own (room for malloc's bookkeeping). */
#define HEAVY_REFUSED_COST (64u * 1024u)

/*
 * Write to ${r} one type's array of ${n} messages: ${n} - 1 of ${len} bytes, then one of
 * ${last_len} bytes (all 'x'). Returns 0 or -1.
 */
static int heavy_messages(struct buf *r, uint32_t n, size_t len, size_t last_len)
{
	static const char xs[HEAVY_MAX_FRAME];

	if (mp_write_array(r, n) == -1)
		return -1;
	for (uint32_t i = 0; i < n; i++)
		if (mp_write_str(r, xs, i + 1 < n ? len : last_len) == -1)
			return -1;
	return 0;
}

/*
 * Write to ${r} a STATS result of ${n} figures: with ${empty_names}, each named "" and 0, else
 * "s0" 0, "s1" 1, ... Returns 0 or -1.
 */
static int heavy_stats(struct buf *r, uint32_t n, bool empty_names)
{
	char name[16];

	if (mp_write_map(r, n) == -1)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		int len = empty_names ? 0 : snprintf(name, sizeof(name), "s%u", (unsigned)i);

		if (mp_write_str(r, name, (size_t)len) == -1 ||
		    mp_write_uint(r, empty_names ? 0 : i) == -1)
			return -1;
	}
	return 0;
}

/*
 * Heavy replies, each as large as it can be under HEAVY_MAX_FRAME and HEAVY_RESULT. GET: data
 * of HEAVY_GET_DATA bytes. FLASH_POPs in turn (counted across connections): 0 messages of 1
 * byte; 1 empty messages; 2 (every type) HEAVY_MOST_FLASHES empty messages of type "t"; 3 the
 * same and one more; 4 (every type) HEAVY_MOST_FLASHES messages, the last filling the frame.
 * STATS in turn: 0 figures named ""; 1 HEAVY_MOST_STATS figures; 2 one more.
 */
static int heavy_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	static int pops, stats;
	static const uint8_t data[HEAVY_GET_DATA];
	struct buf r;
	int rc = 0;

	(void)conn;
	(void)nth;
	if (req->op == CODEC_OP_HELLO)
		return fake_hello(fd, req->request_id, HEAVY_MAX_FRAME);
	buf_init(&r);
	if (req->op == CODEC_OP_GET) {
		rc = mp_write_bin(&r, data, sizeof(data));
	} else if (req->op == CODEC_OP_FLASH_POP) {
		switch (pops++) {
		case 0:
			rc = heavy_messages(&r, (HEAVY_RESULT - 5) / 2, 1, 1);
			break;
		case 1:
			rc = heavy_messages(&r, HEAVY_RESULT - 5, 0, 0);
			break;
		case 2:
		case 3:
			rc = mp_write_map(&r, 1) == -1 || mp_write_str(&r, "t", 1) == -1 ||
			     heavy_messages(&r, HEAVY_MOST_FLASHES + (pops == 4), 0, 0) == -1;
			break;
		default:
			rc = mp_write_map(&r, 1) == -1 || mp_write_str(&r, "t", 1) == -1 ||
			     heavy_messages(&r, HEAVY_MOST_FLASHES, 0,
			                    HEAVY_RESULT - 16 - HEAVY_MOST_FLASHES) == -1;
			break;
		}
	} else if (req->op == CODEC_OP_STATS) {
		stats++;
		rc = heavy_stats(
		    &r, stats == 1 ? (HEAVY_RESULT - 5) / 2 : HEAVY_MOST_STATS + (stats == 3),
		    stats == 1);
	} else {
		rc = mp_write_nil(&r);
	}
	if (rc != 0 || r.len > (req->op == CODEC_OP_GET ? HEAVY_GET_DATA + 5 : HEAVY_RESULT)) {
		buf_finish(&r);
		return -1;
	}
	return fake_reply_value(fd, req->request_id, &r);
}

/*
 * What a decoded FLASH_POP or STATS takes is bounded by the server's max_frame, not a
 * multiple of the reply: each message or figure is a struct (32 or 16 bytes) from as little as
 * 1 or 2 bytes of reply, so a server could make a client allocate 33 GiB with its 1 GiB reply
 * of empty messages (measured here: 33 x the reply for empty messages, 17 x for 1-byte ones,
 * 8.5 x for STATS). More messages than a session holds under the server's max_frame, or more
 * than HEAVY_MOST_STATS figures, are SESSD_ERR_PROTOCOL before anything is allocated; what is
 * accepted takes under 3 x max_frame and the messages' bytes.
 */
LEAK_CHECKED_TEST(fake_server, decoded_results_are_bounded_by_max_frame)
{
	static const char *const refused[] = {"1-byte messages", "empty messages"};
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_flashes *f;
	struct sessd_stats *s;
	void *data;
	size_t len, before, cost;
	pid_t pid = fake_start(&l, 5, heavy_answer);
	int rc;

	c = connect_fake(l.url);
	/* A GET as large as any reply below, so the buffer replies are read into has grown. */
	cr_assert_eq(sessd_get(c, "s", 1, &data, &len), SESSD_OK, "%s", sessd_errmsg(c));
	free(data);
	for (int i = 0; i < 2; i++) {
		f = (struct sessd_flashes *)1;
		before = heap_in_use();
		rc = sessd_flash_pop(c, "s", 1, "t", &f);
		cost = heap_in_use() - before;
		cr_expect_eq(rc, SESSD_ERR_PROTOCOL, "%s: %s", refused[i], sessd_strerror(rc));
		cr_expect_lt(cost, HEAVY_REFUSED_COST, "%s cost %zu bytes, %.1f x the reply",
		             refused[i], cost, (double)cost / HEAVY_RESULT);
		if (rc == SESSD_OK)
			sessd_flashes_free(f);
		cr_assert_eq(rc, SESSD_ERR_PROTOCOL);
		cr_assert_null(f);
	}
	/* The most a session can hold under that max_frame is read, for under 3 x max_frame. */
	before = heap_in_use();
	rc = sessd_flash_pop(c, "s", 1, NULL, &f);
	cost = heap_in_use() - before;
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert_eq(f->count, HEAVY_MOST_FLASHES);
	cr_assert_str_eq(f->items[HEAVY_MOST_FLASHES - 1].type, "t");
	cr_assert_lt(cost, 3 * HEAVY_MAX_FRAME, "cost %zu bytes", cost);
	sessd_flashes_free(f);
	rc = sessd_flash_pop(c, "s", 1, NULL, &f);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "one more: %s", sessd_strerror(rc));
	cr_assert_null(f);
	/* As many messages, the last filling the frame: the messages' bytes come on top. */
	before = heap_in_use();
	rc = sessd_flash_pop(c, "s", 1, NULL, &f);
	cost = heap_in_use() - before;
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert_gt(f->items[HEAVY_MOST_FLASHES - 1].msg_len, HEAVY_MAX_FRAME / 2);
	cr_assert_lt(cost, 3 * HEAVY_MAX_FRAME + HEAVY_RESULT, "cost %zu bytes", cost);
	sessd_flashes_free(f);

	s = (struct sessd_stats *)1;
	before = heap_in_use();
	rc = sessd_stats(c, 1, &s);
	cost = heap_in_use() - before;
	cr_expect_eq(rc, SESSD_ERR_PROTOCOL, "%s", sessd_strerror(rc));
	cr_expect_lt(cost, HEAVY_REFUSED_COST, "STATS cost %zu bytes, %.1f x the reply", cost,
	             (double)cost / HEAVY_RESULT);
	if (rc == SESSD_OK)
		sessd_stats_free(s);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL);
	cr_assert_null(s);
	rc = sessd_stats(c, 1, &s);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert_eq(s->count, HEAVY_MOST_STATS);
	cr_assert_str_eq(s->items[HEAVY_MOST_STATS - 1].name, "s1023");
	cr_assert_eq(s->items[HEAVY_MOST_STATS - 1].value, HEAVY_MOST_STATS - 1);
	sessd_stats_free(s);
	rc = sessd_stats(c, 1, &s);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "one more: %s", sessd_strerror(rc));
	cr_assert_null(s);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* A batch's FLASH_POP is bounded alike: 0 too many messages, 1 as many as a session holds. */
static int heavy_batch_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	struct buf r;

	if (nth == 0)
		return fake_hello(fd, req->request_id, HEAVY_MAX_FRAME);
	buf_init(&r);
	if (heavy_messages(&r, HEAVY_MOST_FLASHES + (conn == 0), 0, 0) == -1) {
		buf_finish(&r);
		return -1;
	}
	return fake_reply_value(fd, req->request_id, &r);
}

LEAK_CHECKED_TEST(fake_server, batch_flashes_are_bounded_by_max_frame)
{
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_batch *b;
	const struct sessd_flashes *f;
	pid_t pid = fake_start(&l, 2, heavy_batch_answer);
	int rc;

	c = connect_fake(l.url);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	cr_assert_eq(sessd_batch_flash_pop(b, "s", 1, "t"), 0);
	rc = sessd_batch_run(b);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "%s", sessd_strerror(rc));
	cr_assert_eq(sessd_batch_status(b, 0), SESSD_ERR_PROTOCOL);
	cr_assert(strstr(sessd_errmsg(c), "FLASH_POP") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_null(sessd_batch_flashes(b, 0));
	rc = sessd_batch_run(b);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	f = sessd_batch_flashes(b, 0);
	cr_assert_not_null(f);
	cr_assert_eq(f->count, HEAVY_MOST_FLASHES);
	sessd_batch_free(b);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/*
 * Results whose counts (array, map) say more than their bytes can hold, each the result of the
 * op asked (FLASH_POP of one type, of every type, STATS, LIST), on connections in turn.
 */
static int huge_count_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	static const struct {
		const char *bytes;
		size_t len;
	} results[] = {
	    /* An array 32 of 4 Gi - 1 empty messages, two of them there. */
	    {"\xdd\xff\xff\xff\xff\xa0\xa0", 7},
	    /* {"t": an array 32 of 2 Gi empty messages, one there}. */
	    {"\xdf\x00\x00\x00\x01\xa1t\xdd\x7f\xff\xff\xff\xa0", 13},
	    /* A map 32 of 4 Gi - 1 figures, one there. */
	    {"\xdf\xff\xff\xff\xff\xa1s\x00", 8},
	    /* [0, an array 16 of 1000 entries, one there]. */
	    {"\x92\x00\xdc\x03\xe8\x92\xc4\x01i\x00", 10},
	};

	if (nth == 0)
		return fake_hello(fd, req->request_id, HEAVY_MAX_FRAME);
	if (conn >= 4)
		return -1;
	return fake_reply(fd, req->request_id, CODEC_OK, results[conn].bytes, results[conn].len);
}

/*
 * A count is checked against the bytes that follow it (PROTOCOL.md, "Decoding rules") before
 * anything is allocated from it: a huge one is SESSD_ERR_PROTOCOL and costs nothing.
 */
LEAK_CHECKED_TEST(fake_server, huge_declared_counts_allocate_nothing)
{
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_flashes *f = (struct sessd_flashes *)1;
	struct sessd_stats *s = (struct sessd_stats *)1;
	struct sessd_list *page = (struct sessd_list *)1;
	size_t before, cost[4];
	pid_t pid = fake_start(&l, 4, huge_count_answer);
	int rc[4];

	c = connect_fake(l.url);
	before = heap_in_use();
	rc[0] = sessd_flash_pop(c, "s", 1, "t", &f);
	cost[0] = heap_in_use() - before;
	before = heap_in_use();
	rc[1] = sessd_flash_pop(c, "s", 1, NULL, &f);
	cost[1] = heap_in_use() - before;
	before = heap_in_use();
	rc[2] = sessd_stats(c, 1, &s);
	cost[2] = heap_in_use() - before;
	before = heap_in_use();
	rc[3] = sessd_list(c, 0, 1000, &page);
	cost[3] = heap_in_use() - before;
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(rc[i], SESSD_ERR_PROTOCOL, "result %d: %s", i, sessd_strerror(rc[i]));
		cr_assert_lt(cost[i], HEAVY_REFUSED_COST, "result %d cost %zu bytes", i, cost[i]);
	}
	cr_assert_null(f);
	cr_assert_null(s);
	cr_assert_null(page);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* --- Sealed connections (PROTOCOL.md, "Sealed connections"). --- */

/* Bytes that must never cross a sealed connection in the clear. */
#define SNIFF_MARKER "plaintext-marker-7f3a9c"

/* What a sniffing relay saw of the one connection it carried. */
struct sniff_report {
	bool secret_seen; /* AUTH_SECRET's bytes, either way */
	bool marker_seen; /* SNIFF_MARKER's bytes, either way */
	bool hello_kx;    /* the client's HELLO carried a key exchange */
	/* After the HELLO frame (each way), the stream as records: how many, and the plaintext
	 * they carry; SIZE_MAX when it is not a stream of whole, well-formed records. */
	size_t c2s_records;
	size_t c2s_plain;
	size_t s2c_records;
};

/* One direction of the relay: every byte that came from ${from}, and how much went on. */
struct relay_dir {
	int from, to;
	struct buf seen;
	size_t sent;
	bool eof;
};

static bool bytes_contain(const struct buf *b, const void *needle, size_t len)
{
	return b->len >= len && memmem(b->data, b->len, needle, len) != NULL;
}

/* Count the records after the first frame of ${b} (see struct sniff_report). */
static size_t count_records(const struct buf *b, size_t *plain)
{
	size_t at, size, n = 0;

	*plain = 0;
	if (b->len < CODEC_HEADER_BYTES)
		return SIZE_MAX;
	at = CODEC_HEADER_BYTES + (size_t)codec_frame_length(b->data);
	while (at < b->len) {
		if (b->len - at < SEAL_HEADER_BYTES ||
		    (size = seal_record_size(b->data + at)) == 0 || b->len - at < size)
			return SIZE_MAX;
		*plain += size - SEAL_OVERHEAD;
		at += size;
		n++;
	}
	return at == b->len ? n : SIZE_MAX;
}

static void relay_read(struct relay_dir *d)
{
	ssize_t n;

	if (buf_reserve(&d->seen, 65536) == -1) {
		d->eof = true;
		return;
	}
	n = recv(d->from, d->seen.data + d->seen.len, 65536, 0);
	if (n > 0)
		d->seen.len += (size_t)n;
	else if (n == 0 || (errno != EAGAIN && errno != EINTR))
		d->eof = true;
}

static void relay_write(struct relay_dir *d)
{
	ssize_t n = send(d->to, d->seen.data + d->sent, d->seen.len - d->sent, MSG_NOSIGNAL);

	if (n > 0)
		d->sent += (size_t)n;
	else if (n == -1 && errno != EAGAIN && errno != EINTR)
		d->sent = d->seen.len; /* the peer is gone: what it did not take is dropped */
}

/*
 * The sniffing relay, in a child: carry one connection from ${lfd} to the daemon both ways,
 * non-blocking so that neither direction can stall the other, until the client closes; then
 * write a struct sniff_report to ${report_fd}. Returns the child's exit status.
 */
static int sniff_serve(int lfd, int report_fd)
{
	struct pollfd pfd[2], lp = {.fd = lfd, .events = POLLIN};
	struct relay_dir up = {0}, down = {0};
	struct sniff_report rep = {0};
	bool shut = false;
	int cfd = -1, dfd = -1;

	if (poll(&lp, 1, 10000) != 1 || (cfd = accept(lfd, NULL, NULL)) == -1 ||
	    (dfd = harness_connect(daemon_.unix_url)) == -1)
		return 1;
	fcntl(cfd, F_SETFL, O_NONBLOCK);
	fcntl(dfd, F_SETFL, O_NONBLOCK);
	up = (struct relay_dir){.from = cfd, .to = dfd};
	down = (struct relay_dir){.from = dfd, .to = cfd};
	buf_init(&up.seen);
	buf_init(&down.seen);
	while (!up.eof) {
		pfd[0].fd = cfd;
		pfd[0].events = (short)(POLLIN | (down.sent < down.seen.len ? POLLOUT : 0));
		pfd[1].fd = down.eof && up.sent == up.seen.len ? -1 : dfd;
		pfd[1].events =
		    (short)((down.eof ? 0 : POLLIN) | (up.sent < up.seen.len ? POLLOUT : 0));
		pfd[0].revents = pfd[1].revents = 0;
		if (poll(pfd, 2, 20000) <= 0)
			return 1;
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
			relay_read(&up);
		if (!down.eof && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
			relay_read(&down);
		if (pfd[0].revents & POLLOUT)
			relay_write(&down);
		if (pfd[1].revents & POLLOUT)
			relay_write(&up);
		/* The daemon closed: pass that on once the client has had every byte. */
		if (down.eof && down.sent == down.seen.len && !shut) {
			shutdown(cfd, SHUT_WR);
			shut = true;
		}
	}
	rep.secret_seen = bytes_contain(&up.seen, AUTH_SECRET, strlen(AUTH_SECRET)) ||
	                  bytes_contain(&down.seen, AUTH_SECRET, strlen(AUTH_SECRET));
	rep.marker_seen = bytes_contain(&up.seen, SNIFF_MARKER, strlen(SNIFF_MARKER)) ||
	                  bytes_contain(&down.seen, SNIFF_MARKER, strlen(SNIFF_MARKER));
	rep.hello_kx = bytes_contain(&up.seen, "\x82\xa2kx\xc4\x20", 6);
	rep.c2s_records = count_records(&up.seen, &rep.c2s_plain);
	rep.s2c_records = count_records(&down.seen, &(size_t){0});
	if (write(report_fd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		return 1;
	buf_finish(&up.seen);
	buf_finish(&down.seen);
	close(cfd);
	close(dfd);
	return 0;
}

/* Start a sniffing relay in front of the daemon; its report comes through *${report_fd}. */
static pid_t sniff_start(struct tmp_listener *l, int *report_fd)
{
	int fds[2];
	pid_t pid;

	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	tmp_listen(l);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		_exit(sniff_serve(l->fd, fds[1]));
	}
	close(fds[1]);
	close(l->fd);
	*report_fd = fds[0];
	return pid;
}

/* Read the relay's report (after the client closed) and reap it. */
static void sniff_finish(struct tmp_listener *l, pid_t pid, int report_fd, struct sniff_report *rep)
{
	cr_assert_eq(read(report_fd, rep, sizeof(*rep)), (ssize_t)sizeof(*rep),
	             "the relay reported nothing");
	close(report_fd);
	tmp_finish(l, pid, "sniffing relay");
}

/* Every call of the API once over ${c}, the data and flash messages carrying SNIFF_MARKER. */
static void every_op(struct sessd_client *c)
{
	static const char data[] = "{\"user\":42,\"m\":\"" SNIFF_MARKER "\"}";
	struct sessd_flashes *f = NULL;
	struct sessd_list *page = NULL;
	struct sessd_stats *st = NULL;
	uint64_t n = 0;
	size_t queued = 0;
	int rc;

	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(sessd_clear(c, NULL), SESSD_OK, "%s", sessd_errmsg(c));
	expect_missing(c, "s1", 2);
	cr_assert_eq(sessd_set(c, "s1", 2, data, strlen(data), TTL_MS), SESSD_OK);
	expect_data(c, "s1", 2, data, strlen(data));
	cr_assert_eq(sessd_touch(c, "s1", 2, 2 * TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_touch(c, "nope", 4, TTL_MS), SESSD_NOT_FOUND);
	rc = sessd_flash_push(c, "s1", 2, "info", SNIFF_MARKER, strlen(SNIFF_MARKER), TTL_MS,
	                      &queued);
	cr_assert_eq(rc, SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(queued, 1);
	cr_assert_eq(sessd_flash_push(c, "s1", 2, "info", "two", 3, TTL_MS, &queued), SESSD_OK);
	cr_assert_eq(queued, 2);
	cr_assert_eq(sessd_flash_push(c, "s1", 2, "warn", "w", 1, TTL_MS, NULL), SESSD_OK);
	cr_assert_eq(sessd_flash_pop(c, "s1", 2, "info", &f), SESSD_OK);
	cr_assert(f->count == 2 && f->items[0].msg_len == strlen(SNIFF_MARKER) &&
	          memcmp(f->items[0].msg, SNIFF_MARKER, strlen(SNIFF_MARKER)) == 0);
	sessd_flashes_free(f);
	cr_assert_eq(sessd_flash_pop(c, "s1", 2, NULL, &f), SESSD_OK);
	cr_assert(f->count == 1 && strcmp(f->items[0].type, "warn") == 0);
	sessd_flashes_free(f);
	cr_assert_eq(sessd_set(c, "s2", 2, "x", 1, TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_count(c, &n), SESSD_OK);
	cr_assert_eq(n, 2);
	cr_assert_eq(sessd_list(c, 0, 10, &page), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(page->count, 2);
	sessd_list_free(page);
	cr_assert_eq(sessd_stats(c, 1, &st), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_gt(st->count, 0);
	sessd_stats_free(st);
	cr_assert_eq(sessd_stats(c, 0, &st), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_stats_free(st);
	cr_assert_eq(sessd_destroy(c, "s1", 2), SESSD_OK);
	expect_missing(c, "s1", 2);
	cr_assert_eq(sessd_destroy(c, "s1", 2), SESSD_NOT_FOUND);
	cr_assert_eq(sessd_clear(c, &n), SESSD_OK);
	cr_assert_eq(n, 1);
}

/*
 * Sealed by default: every call works over Unix and TCP, with the secret as bytes or as a
 * file; and a relay that watches the connection sees a key exchange in HELLO, then only
 * well-formed records both ways, and neither the secret nor the sessions' bytes.
 */
LEAK_CHECKED_TEST(auth, sealed_round_trips_of_every_op)
{
	struct sniff_report rep;
	struct tmp_listener l;
	struct sessd_client *c;
	int report_fd;
	pid_t pid;

	c = connect_with(daemon_.unix_url, (struct sessd_options){.auth_file = auth_path});
	every_op(c);
	sessd_close(c);
	c = connect_with(daemon_.tcp_url, (struct sessd_options){.auth = AUTH_SECRET,
	                                                         .auth_len = strlen(AUTH_SECRET),
	                                                         .require_auth = true});
	every_op(c);
	sessd_close(c);

	pid = sniff_start(&l, &report_fd);
	c = connect_with(l.url, (struct sessd_options){.auth_file = auth_path});
	every_op(c);
	sessd_close(c);
	sniff_finish(&l, pid, report_fd, &rep);
	cr_assert(rep.hello_kx, "the HELLO carried no key exchange");
	cr_assert_not(rep.secret_seen, "the secret crossed the wire");
	cr_assert_not(rep.marker_seen, "session bytes crossed the wire in the clear");
	cr_assert(rep.c2s_records != SIZE_MAX && rep.c2s_records > 10,
	          "the requests are not records (%zu)", rep.c2s_records);
	cr_assert(rep.s2c_records != SIZE_MAX && rep.s2c_records > 10,
	          "the replies are not records (%zu)", rep.s2c_records);
}

/*
 * The late relay, in a child: the client's first connection through ${lfd} passes its HELLO
 * and the reply, then waits for the daemon (--hello-timeout 1) to close the connection, which
 * sent no record, with its SHUTTING_DOWN; only then does it pass on the request the client sent
 * at once, and hand the client the SHUTTING_DOWN and the close. So the request crosses the
 * close on the wire, as one sent just when the deadline comes does. The next connection is
 * carried both ways (sniff_serve, its report thrown away). Returns the child's exit status.
 */
static int late_serve(int lfd)
{
	struct pollfd lp = {.fd = lfd, .events = POLLIN};
	struct buf held, request;
	int cfd = -1, dfd = -1, sink, rc = 1;
	ssize_t sent;

	buf_init(&held);
	buf_init(&request);
	if (poll(&lp, 1, 10000) != 1 || (cfd = accept(lfd, NULL, NULL)) == -1 ||
	    (dfd = harness_connect(daemon_.unix_url)) == -1 || relay_frame(cfd, dfd, 1) == -1 ||
	    relay_frame(dfd, cfd, 1) == -1)
		goto done;
	/* The daemon's goodbye, up to its close. */
	for (;;) {
		ssize_t n;

		if (buf_reserve(&held, 4096) == -1)
			goto done;
		n = recv(dfd, held.data + held.len, 4096, 0);
		if (n == 0)
			break;
		if (n == -1)
			goto done;
		held.len += (size_t)n;
	}
	if (held.len == 0 || buf_reserve(&request, 65536) == -1)
		goto done;
	/* The client's request, then the goodbye it crossed. */
	sent = recv(cfd, request.data, 65536, 0);
	if (sent <= 0)
		goto done;
	(void)send(dfd, request.data, (size_t)sent, MSG_NOSIGNAL);
	if (harness_send_all(cfd, held.data, held.len) == -1 || shutdown(cfd, SHUT_WR) == -1)
		goto done;
	while (recv(cfd, request.data, 65536, 0) > 0)
		;
	sink = open("/dev/null", O_WRONLY | O_CLOEXEC);
	rc = sink == -1 ? 1 : sniff_serve(lfd, sink);
done:
	if (cfd != -1)
		close(cfd);
	if (dfd != -1)
		close(dfd);
	buf_finish(&held);
	buf_finish(&request);
	return rc;
}

static pid_t late_start(struct tmp_listener *l)
{
	pid_t pid = tmp_fork(l);

	if (pid == 0)
		_exit(late_serve(l->fd));
	return pid;
}

/*
 * sessd closes a sealed connection from which no record came within --hello-timeout (a
 * recorded HELLO can be replayed), with SHUTTING_DOWN: nothing of it was carried out. A call
 * (or a batch) made just as that deadline comes crosses the close, and is sent again on a new
 * connection rather than failing: the daemon is not stopping. Found by hand: calls 2 s after
 * connecting to a daemon with --hello-timeout 2 failed with SESSD_ERR_SHUTTING_DOWN, 7 of 124.
 */
LEAK_CHECKED_TEST(auth, a_first_call_crossing_the_hello_timeout_close_is_sent_again)
{
	const char *const args[] = {"--auth-file", auth_path, "--hello-timeout", "1", NULL};
	struct sessd_batch *b;
	struct tmp_listener l;
	struct sessd_client *c;
	pid_t pid;
	int rc;

	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(harness_stop(&daemon_), 0);
	cr_assert_eq(harness_start(&daemon_, args), 0);

	pid = late_start(&l);
	c = connect_with(l.url, (struct sessd_options){.auth_file = auth_path});
	rc = sessd_set(c, "late", 4, "kept", 4, TTL_MS);
	cr_assert_eq(rc, SESSD_OK, "a SET that crossed the close: %s (%s)", sessd_strerror(rc),
	             sessd_errmsg(c));
	expect_data(c, "late", 4, "kept", 4);
	sessd_close(c);
	tmp_finish(&l, pid, "late relay");

	pid = late_start(&l);
	c = connect_with(l.url, (struct sessd_options){.auth_file = auth_path});
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	cr_assert_eq(sessd_batch_set(b, "late2", 5, "kept", 4, TTL_MS), 0);
	cr_assert_eq(sessd_batch_get(b, "late2", 5), 1);
	rc = sessd_batch_run(b);
	cr_assert_eq(rc, SESSD_OK, "a batch that crossed the close: %s (%s)", sessd_strerror(rc),
	             sessd_errmsg(c));
	cr_assert_eq(sessd_batch_status(b, 0), SESSD_OK);
	cr_assert_eq(sessd_batch_status(b, 1), SESSD_OK);
	sessd_batch_free(b);
	sessd_close(c);
	tmp_finish(&l, pid, "late relay");
}

/*
 * plain_auth shows the secret as it is: the server lets the client in, and a relay sees the
 * secret and the sessions, and no records. (So the relay above can see them.) A wrong secret
 * shown plainly is refused too.
 */
LEAK_CHECKED_TEST(auth, plain_auth_still_works)
{
	struct sessd_options wrong = {.timeout_ms = 10000,
	                              .auth = "k9Vq0VtJ3wq2b7mXw1eP8rTzL5sYcA4H",
	                              .auth_len = strlen(AUTH_SECRET),
	                              .plain_auth = true};
	struct sniff_report rep;
	struct tmp_listener l;
	struct sessd_client *c;
	int report_fd;
	pid_t pid;

	c = connect_with(daemon_.tcp_url, (struct sessd_options){.auth_file = auth_path,
	                                                         .plain_auth = true,
	                                                         .require_auth = true});
	every_op(c);
	sessd_close(c);
	pid = sniff_start(&l, &report_fd);
	c = connect_with(l.url, (struct sessd_options){.auth = AUTH_SECRET,
	                                               .auth_len = strlen(AUTH_SECRET),
	                                               .plain_auth = true});
	every_op(c);
	sessd_close(c);
	sniff_finish(&l, pid, report_fd, &rep);
	cr_assert(rep.secret_seen, "the relay did not see the plain secret");
	cr_assert(rep.marker_seen, "the relay did not see the plain sessions");
	cr_assert_not(rep.hello_kx);

	c = (struct sessd_client *)1;
	errno = 0;
	cr_assert_eq(sessd_connect(daemon_.unix_url, &wrong, &c), SESSD_ERR_AUTH);
	cr_assert_null(c);
	cr_assert_eq(errno, EACCES, "errno %d", errno);
}

/* A sealed wrong secret: the daemon refuses the proof (EACCES), over Unix and TCP. */
LEAK_CHECKED_TEST(auth, sealed_wrong_secret_is_refused)
{
	struct sessd_options opts = {.timeout_ms = 10000,
	                             .auth = "k9Vq0VtJ3wq2b7mXw1eP8rTzL5sYcA4H",
	                             .auth_len = strlen(AUTH_SECRET)};
	struct sessd_client *c;

	for (int i = 0; i < 2; i++) {
		c = (struct sessd_client *)1;
		errno = 0;
		cr_assert_eq(sessd_connect(i ? daemon_.tcp_url : daemon_.unix_url, &opts, &c),
		             SESSD_ERR_AUTH);
		cr_assert_null(c);
		cr_assert_eq(errno, EACCES, "errno %d", errno);
	}
}

/*
 * A value near max_data: its SET and its GET reply are frames of 16 records each, and the
 * records of a GET reply arrive in pieces. Then the largest SET the frame allows, and one
 * byte over, refused before anything is sent (the connection stays sealed and usable).
 */
LEAK_CHECKED_TEST(auth, sealed_value_near_max_data)
{
	struct sessd_client *c;
	size_t len = CODEC_DEFAULT_MAX_FRAME - 100;
	uint8_t *big = malloc(CODEC_DEFAULT_MAX_FRAME + 1);
	int rc;

	cr_assert_not_null(big);
	for (size_t i = 0; i < CODEC_DEFAULT_MAX_FRAME + 1; i++)
		big[i] = (uint8_t)(i * 7 + i / 65536);
	for (int i = 0; i < 2; i++) {
		c = connect_with(i ? daemon_.tcp_url : daemon_.unix_url,
		                 (struct sessd_options){.auth_file = auth_path});
		rc = sessd_set(c, "big", 3, big, len, TTL_MS);
		cr_assert_eq(rc, SESSD_OK, "set: %s (%s)", sessd_strerror(rc), sessd_errmsg(c));
		expect_data(c, "big", 3, big, len);
		rc = sessd_set(c, "big", 3, big, CODEC_DEFAULT_MAX_FRAME, TTL_MS);
		cr_assert_eq(rc, SESSD_ERR_TOO_LARGE, "%s", sessd_strerror(rc));
		expect_data(c, "big", 3, big, len);
		cr_assert_eq(sessd_destroy(c, "big", 3), SESSD_OK);
		sessd_close(c);
	}
	free(big);
}

/* The bytes of the PING frame sessd_connect sends on a sealed connection (client_connect). */
static size_t ping_frame_bytes(void)
{
	struct codec_request req = {.op = CODEC_OP_PING, .request_id = 2};
	struct buf frame;
	size_t len;

	buf_init(&frame);
	cr_assert_eq(codec_encode_request(&frame, &req), 0);
	len = frame.len;
	buf_finish(&frame);
	return len;
}

/*
 * A batch of pipelined requests goes sealed in as few records as it fits in (one per 64 KiB
 * of frames, not one per request), and its replies come back whole: watched by a relay on a
 * connection that says HELLO, sends sessd_connect's PING and runs the one batch. Then a deep
 * batch, to fill both socket buffers both ways, over TCP.
 */
LEAK_CHECKED_TEST(auth, sealed_batch)
{
	enum { N = 3000, DEEP = 40000 };
	char id[32], value[64];
	struct sniff_report rep;
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_batch *b;
	const void *data;
	size_t len;
	int report_fd, rc;
	pid_t pid;

	pid = sniff_start(&l, &report_fd);
	c = connect_with(l.url, (struct sessd_options){.auth_file = auth_path});
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "b%d", i);
		snprintf(value, sizeof(value), "%s-%d", SNIFF_MARKER, i);
		cr_assert_eq(sessd_batch_set(b, id, strlen(id), value, strlen(value), TTL_MS),
		             3 * i);
		cr_assert_eq(sessd_batch_get(b, id, strlen(id)), 3 * i + 1);
		cr_assert_eq(sessd_batch_flash_push(b, id, strlen(id), "t", "m", 1, TTL_MS),
		             3 * i + 2);
	}
	rc = sessd_batch_run(b);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	for (int i = 0; i < N; i++) {
		snprintf(value, sizeof(value), "%s-%d", SNIFF_MARKER, i);
		cr_assert_eq(sessd_batch_status(b, 3 * i), SESSD_OK);
		data = sessd_batch_data(b, 3 * i + 1, &len);
		cr_assert(data != NULL && len == strlen(value) && memcmp(data, value, len) == 0,
		          "request %d: status %d, %zu bytes: %.*s", 3 * i + 1,
		          sessd_batch_status(b, 3 * i + 1), data != NULL ? len : 0,
		          data != NULL ? (int)len : 0, data != NULL ? (const char *)data : "");
		cr_assert_eq(sessd_batch_status(b, 3 * i + 2), SESSD_OK);
	}
	sessd_batch_free(b);
	sessd_close(c);
	sniff_finish(&l, pid, report_fd, &rep);
	cr_assert_not(rep.marker_seen);
	cr_assert_gt(rep.c2s_plain, 3 * 65536, "the batch was only %zu bytes", rep.c2s_plain);
	/* Beside the batch's records, sessd_connect's PING went in one of its own. */
	cr_assert_eq(rep.c2s_records, 1 + (rep.c2s_plain - ping_frame_bytes() + 65535) / 65536,
	             "%zu bytes of requests went in %zu records", rep.c2s_plain, rep.c2s_records);

	c = connect_with(daemon_.tcp_url, (struct sessd_options){.auth_file = auth_path});
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	/* Each GET reads the id the SET before it wrote. */
	for (int i = 0; i < DEEP; i++) {
		snprintf(id, sizeof(id), "d%d", (i - i % 2) % 500);
		cr_assert_eq(i % 2 ? sessd_batch_get(b, id, strlen(id))
		                   : sessd_batch_set(b, id, strlen(id), id, strlen(id), TTL_MS),
		             i);
	}
	rc = sessd_batch_run(b);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	for (int i = 1; i < DEEP; i += 2) {
		snprintf(id, sizeof(id), "d%d", (i - 1) % 500);
		data = sessd_batch_data(b, (size_t)i, &len);
		cr_assert(data != NULL && len == strlen(id) && memcmp(data, id, len) == 0,
		          "request %d", i);
	}
	/* The same batch again on the same sealed connection: the record numbers go on. */
	cr_assert_eq(sessd_batch_run(b), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_batch_free(b);
	sessd_close(c);
}

/*
 * Each connection makes its own keys: after the daemon restarts with the same secret the
 * client reconnects sealed and carries on (calls and batches); after a restart without
 * --auth-file the daemon refuses the key exchange, and every call says so; after one with the
 * secret again, the client is back.
 */
LEAK_CHECKED_TEST(auth, sealed_reconnects_after_restart)
{
	const char *const same[] = {"--auth-file", auth_path, NULL};
	struct sessd_client *c;
	struct sessd_batch *b;
	char first_id[33];
	int rc;

	c = connect_with(daemon_.tcp_url, (struct sessd_options){.auth_file = auth_path});
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	cr_assert_eq(sessd_batch_ping(b), 0);
	cr_assert_eq(sessd_batch_get(b, "after", 5), 1);
	set_and_get(c, "before");
	snprintf(first_id, sizeof(first_id), "%s", sessd_server_id(c));
	cr_assert_eq(harness_kill(&daemon_), 0);
	cr_assert_eq(harness_restart(&daemon_, same), 0);
	rc = sessd_ping(c);
	cr_assert(rc == SESSD_OK || rc == SESSD_ERR_CLOSED, "first call: %s (%s)",
	          sessd_strerror(rc), sessd_errmsg(c));
	set_and_get(c, "after");
	cr_assert_str_neq(sessd_server_id(c), first_id, "the server id did not change");
	cr_assert_eq(sessd_batch_run(b), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_status(b, 1), SESSD_OK);

	cr_assert_eq(harness_kill(&daemon_), 0);
	cr_assert_eq(harness_restart(&daemon_, NULL), 0);
	rc = sessd_ping(c);
	if (rc == SESSD_ERR_CLOSED)
		rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_AUTH, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert(strstr(sessd_errmsg(c), "refused the secret") != NULL, "errmsg: %s",
	          sessd_errmsg(c));
	cr_assert(strstr(sessd_errmsg(c), "AUTH_FAILED") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_null(strstr(sessd_errmsg(c), "k9Vq0"), "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_run(b), SESSD_ERR_AUTH);

	cr_assert_eq(harness_kill(&daemon_), 0);
	cr_assert_eq(harness_restart(&daemon_, same), 0);
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_run(b), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_batch_free(b);
	sessd_close(c);
}

/*
 * Fake sealed servers, in a child process: they read the client's key exchange from its HELLO
 * and answer it (seal_server_new, with the psk of AUTH_SECRET), spoiled as a test needs.
 */

/* A secret other than AUTH_SECRET, of its length. */
#define OTHER_SECRET "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"

/* How a fake answers the key exchange in its HELLO reply. */
enum fake_kx {
	FAKE_KX_GOOD,
	FAKE_KX_WRONG_PROOF, /* the proof with one bit flipped */
	FAKE_KX_NONE,        /* auth: true and no kx */
	FAKE_KX_AUTH_NIL,    /* a good kx, but auth: nil */
	FAKE_KX_SHORT_KEY,   /* key of 31 bytes */
	FAKE_KX_EXTRA_KEY,   /* a third key in kx */
	FAKE_KX_NOT_MAP,     /* kx is a bin */
	FAKE_KX_OTHER_PSK,   /* a good exchange with another secret's psk: a wrong proof */
	FAKE_KX_GOODBYE,     /* a good exchange, and in the same write a stopping server's
	                      * SHUTTING_DOWN, sealed as sessd seals it */
};

/* One sealed connection of a fake. */
struct fake_peer {
	int fd;
	struct seal *seal;
	struct buf plain; /* opened bytes not taken as frames yet */
	struct buf frame; /* the last request's body */
};

/* Read HELLO's kx and proof from ${auth}. Returns 0, or -1 when it is not a key exchange. */
static int fake_read_kx(const struct mp_bytes *auth, const uint8_t **public_key,
                        const uint8_t **proof)
{
	struct mp_reader r;
	struct mp_bytes k, v;
	uint32_t pairs;

	*public_key = *proof = NULL;
	mp_reader_init(&r, auth->ptr, auth->len);
	if (mp_read_map(&r, &pairs) == -1 || pairs != 2)
		return -1;
	for (uint32_t i = 0; i < pairs; i++) {
		if (mp_read_str(&r, &k) == -1 || mp_read_bin(&r, &v) == -1 || v.len != 32)
			return -1;
		if (k.len == 2 && memcmp(k.ptr, "kx", 2) == 0)
			*public_key = v.ptr;
		else if (k.len == 5 && memcmp(k.ptr, "proof", 5) == 0)
			*proof = v.ptr;
		else
			return -1;
	}
	return *public_key != NULL && *proof != NULL && mp_reader_left(&r) == 0 ? 0 : -1;
}

/*
 * Send the HELLO reply whose result is ${result} and, in the same write, SHUTTING_DOWN sealed
 * in a record (the connection's first from the server), as a sessd that stops right after
 * answering sends them. Returns 0 or -1.
 */
static int fake_hello_goodbye(struct fake_peer *p, uint64_t request_id, const struct buf *result)
{
	struct buf out, bye;
	size_t at;
	int rc = -1;

	buf_init(&out);
	buf_init(&bye);
	if (codec_reply_open(&out, request_id, CODEC_OK, &at) == 0 &&
	    buf_append(&out, result->data, result->len) == 0 && codec_frame_close(&out, at) == 0 &&
	    codec_reply_error(&bye, 0, CODEC_SHUTTING_DOWN, "stopping") == 0 &&
	    seal_append(p->seal, &out, bye.data, bye.len) == 0)
		rc = harness_send_all(p->fd, out.data, out.len);
	buf_finish(&out);
	buf_finish(&bye);
	return rc;
}

/*
 * Read the client's HELLO on p->fd and answer its key exchange as ${how} says; p->seal gets
 * the connection's seal (NULL when the client's own exchange was wrong). Returns 0 or -1.
 */
static int fake_kx_hello(struct fake_peer *p, enum fake_kx how)
{
	uint8_t psk[SEAL_PSK_BYTES], server_public[32], server_proof[32];
	const uint8_t *client_public, *client_proof;
	struct codec_request req;
	struct buf m;
	uint32_t status;
	const char *why;
	uint8_t *body;
	size_t len;
	int rc = -1;

	if (harness_recv_frame(p->fd, &body, &len) == -1)
		return -1;
	buf_init(&m);
	if (codec_decode_request(body, len, &req, &status, &why) == -1 ||
	    req.op != CODEC_OP_HELLO ||
	    fake_read_kx(&req.auth, &client_public, &client_proof) == -1)
		goto done;
	seal_psk(psk, how == FAKE_KX_OTHER_PSK ? OTHER_SECRET : AUTH_SECRET, strlen(AUTH_SECRET));
	if (how == FAKE_KX_OTHER_PSK) {
		/* An impostor cannot check the client's proof: it goes on with a proof of its
		 * own psk in its place (PROTOCOL.md: HMAC(psk, "sessd-kx-v1 client" || c_pk)). */
		uint8_t own_proof[32];

		crypto_auth_hmacsha256_state st;
		crypto_auth_hmacsha256_init(&st, psk, sizeof(psk));
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)"sessd-kx-v1 client", 18);
		crypto_auth_hmacsha256_update(&st, client_public, 32);
		crypto_auth_hmacsha256_final(&st, own_proof);
		p->seal =
		    seal_server_new(psk, client_public, own_proof, server_public, server_proof);
	} else {
		p->seal =
		    seal_server_new(psk, client_public, client_proof, server_public, server_proof);
	}
	if (p->seal == NULL)
		goto done;
	if (how == FAKE_KX_WRONG_PROOF)
		server_proof[7] ^= 1;
	if (mp_write_map(&m, how == FAKE_KX_NONE ? 4 : 5) == -1 ||
	    mp_write_str(&m, "version", 7) == -1 || mp_write_uint(&m, 1) == -1 ||
	    mp_write_str(&m, "server_id", 9) == -1 || mp_write_str(&m, FAKE_SERVER_ID, 32) == -1 ||
	    mp_write_str(&m, "max_frame", 9) == -1 ||
	    mp_write_uint(&m, CODEC_DEFAULT_MAX_FRAME) == -1 || mp_write_str(&m, "auth", 4) == -1 ||
	    (how == FAKE_KX_AUTH_NIL ? mp_write_nil(&m) : mp_write_bool(&m, true)) == -1)
		goto done;
	if (how != FAKE_KX_NONE && mp_write_str(&m, "kx", 2) == -1)
		goto done;
	if (how == FAKE_KX_NOT_MAP) {
		if (mp_write_bin(&m, server_public, 32) == -1)
			goto done;
	} else if (how != FAKE_KX_NONE) {
		if (mp_write_map(&m, how == FAKE_KX_EXTRA_KEY ? 3 : 2) == -1 ||
		    mp_write_str(&m, "key", 3) == -1 ||
		    mp_write_bin(&m, server_public, how == FAKE_KX_SHORT_KEY ? 31 : 32) == -1 ||
		    mp_write_str(&m, "proof", 5) == -1 ||
		    mp_write_bin(&m, server_proof, 32) == -1 ||
		    (how == FAKE_KX_EXTRA_KEY &&
		     (mp_write_str(&m, "x", 1) == -1 || mp_write_uint(&m, 1) == -1)))
			goto done;
	}
	if (how == FAKE_KX_GOODBYE)
		rc = fake_hello_goodbye(p, req.request_id, &m);
	else
		rc = fake_reply_value(p->fd, req.request_id, &m);
done:
	buf_finish(&m);
	free(body);
	return rc;
}

/* Read the next request on the sealed connection ${p} into ${req} (borrowing p->frame). */
static int fake_recv_sealed(struct fake_peer *p, struct codec_request *req)
{
	uint8_t header[SEAL_HEADER_BYTES], *record = NULL;
	uint32_t status, len = 0;
	const char *why;
	size_t size = 0;
	int rc;

	for (;;) {
		if (p->plain.len >= CODEC_HEADER_BYTES &&
		    p->plain.len - CODEC_HEADER_BYTES >=
		        (len = codec_frame_length(p->plain.data))) {
			buf_reset(&p->frame);
			if (buf_append(&p->frame, p->plain.data + CODEC_HEADER_BYTES, len) == -1)
				return -1;
			buf_consume(&p->plain, CODEC_HEADER_BYTES + (size_t)len);
			return codec_decode_request(p->frame.data, p->frame.len, req, &status,
			                            &why);
		}
		if (harness_recv_all(p->fd, header, sizeof(header)) == -1 ||
		    (size = seal_record_size(header)) == 0 || (record = malloc(size)) == NULL)
			return -1;
		memcpy(record, header, sizeof(header));
		rc = harness_recv_all(p->fd, record + sizeof(header), size - sizeof(header));
		if (rc == 0 && buf_reserve(&p->plain, size - SEAL_OVERHEAD) == 0 &&
		    seal_open(p->seal, record, size, p->plain.data + p->plain.len) == 0)
			p->plain.len += size - SEAL_OVERHEAD;
		else
			rc = -1;
		free(record);
		if (rc == -1)
			return -1;
	}
}

/* Append a nil OK reply to ${request_id} to the frames in ${plain}. Returns 0 or -1. */
static int fake_nil_frame(struct buf *plain, uint64_t request_id)
{
	size_t at;

	if (codec_reply_open(plain, request_id, CODEC_OK, &at) == -1 || mp_write_nil(plain) == -1 ||
	    codec_frame_close(plain, at) == -1)
		return -1;
	return 0;
}

/* Append to ${records} a nil OK reply to ${request_id}, sealed as one record. */
static int fake_seal_nil(struct fake_peer *p, uint64_t request_id, struct buf *records)
{
	struct buf f;
	int rc = -1;

	buf_init(&f);
	if (fake_nil_frame(&f, request_id) == 0 &&
	    seal_append(p->seal, records, f.data, f.len) == 0)
		rc = 0;
	buf_finish(&f);
	return rc;
}

/* Read a request and answer it with a sealed nil. Returns 0 or -1. */
static int fake_answer_sealed(struct fake_peer *p)
{
	struct codec_request req;
	struct buf records;
	int rc;

	buf_init(&records);
	rc = fake_recv_sealed(p, &req) == 0 && fake_seal_nil(p, req.request_id, &records) == 0
	         ? harness_send_all(p->fd, records.data, records.len)
	         : -1;
	buf_finish(&records);
	return rc;
}

/* The client must send nothing more: the next thing on ${fd} is the end of the stream. */
static int fake_expect_silence(int fd)
{
	uint8_t byte;

	return recv(fd, &byte, 1, 0) == 0 ? 0 : -1;
}

static int fake_accept(int lfd)
{
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	struct timeval tv = {.tv_sec = 10};
	int fd;

	if (poll(&pfd, 1, 10000) != 1 || (fd = accept(lfd, NULL, NULL)) == -1)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void fake_peer_finish(struct fake_peer *p)
{
	if (p->fd != -1)
		close(p->fd);
	seal_free(p->seal);
	buf_finish(&p->plain);
	buf_finish(&p->frame);
	*p = (struct fake_peer){.fd = -1};
}

/* The HELLO replies of the refusing fake, connection by connection after the first. */
static const enum fake_kx refusals[] = {
    FAKE_KX_WRONG_PROOF, FAKE_KX_NONE,    FAKE_KX_AUTH_NIL,  FAKE_KX_SHORT_KEY,
    FAKE_KX_EXTRA_KEY,   FAKE_KX_NOT_MAP, FAKE_KX_OTHER_PSK, FAKE_KX_WRONG_PROOF,
};

/*
 * Connection 0: a good exchange, sessd_connect's PING and one more answered sealed, then
 * closed at the next request.
 * Then one connection per refusals[] entry, each expected to end with nothing more sent.
 * Returns the child's exit status: 0, or 2 + the connection that went wrong.
 */
static int refusing_fake(int lfd)
{
	struct fake_peer p = {.fd = -1};
	struct codec_request req;
	int n = (int)(sizeof(refusals) / sizeof(refusals[0]));

	for (int conn = 0; conn <= n; conn++) {
		buf_init(&p.plain);
		buf_init(&p.frame);
		if ((p.fd = fake_accept(lfd)) == -1)
			return 2 + conn;
		if (conn == 0) {
			if (fake_kx_hello(&p, FAKE_KX_GOOD) == -1 || fake_answer_sealed(&p) == -1 ||
			    fake_answer_sealed(&p) == -1 || fake_recv_sealed(&p, &req) == -1)
				return 2;
		} else if (fake_kx_hello(&p, refusals[conn - 1]) == -1 ||
		           fake_expect_silence(p.fd) == -1) {
			return 2 + conn;
		}
		fake_peer_finish(&p);
	}
	return 0;
}

static pid_t sealed_fake_start(struct tmp_listener *l, int (*serve)(int lfd))
{
	pid_t pid;

	tmp_listen(l);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(sodium_init() < 0 ? 1 : serve(l->fd));
	close(l->fd);
	return pid;
}

/*
 * Connection 0: a good exchange, sessd_connect's PING and another answered, the next request
 * read and the connection closed. Connection 1: the HELLO answered with a sealed SHUTTING_DOWN
 * right behind, then nothing more may come. Connection 2: a good exchange, a PING answered. Returns
 * the child's exit status: 0, or 2 + the connection that went wrong.
 */
static int goodbye_after_sealed_hello_fake(int lfd)
{
	struct fake_peer p = {.fd = -1};
	struct codec_request req;

	for (int conn = 0; conn < 3; conn++) {
		buf_init(&p.plain);
		buf_init(&p.frame);
		if ((p.fd = fake_accept(lfd)) == -1)
			return 2 + conn;
		if (conn == 1 ? fake_kx_hello(&p, FAKE_KX_GOODBYE) == -1 ||
		                    fake_expect_silence(p.fd) == -1
		              : fake_kx_hello(&p, FAKE_KX_GOOD) == -1 ||
		                    (conn == 0 && fake_answer_sealed(&p) == -1) ||
		                    fake_answer_sealed(&p) == -1 ||
		                    (conn == 0 && fake_recv_sealed(&p, &req) == -1))
			return 2 + conn;
		fake_peer_finish(&p);
	}
	return 0;
}

/*
 * A sealed connection's HELLO reply with a stopping sessd's SHUTTING_DOWN right behind it,
 * sealed (the connection's first record), read in one go: the reconnecting call sent nothing,
 * and fails with SESSD_ERR_CONNECT, as after a plain one (fake_server,
 * shutting_down_right_after_hello_sends_nothing); the next call reconnects. It used to fail
 * with SESSD_ERR_PROTOCOL, "the server sent bytes after the last reply": a server fault to the
 * application, which may take it for a change carried out, at every restart a sealed client's
 * reconnection meets (test_libfault found it).
 */
LEAK_CHECKED_TEST(fake_server, sealed_shutting_down_right_after_hello_sends_nothing)
{
	struct sessd_options opts = {
	    .timeout_ms = 3000, .auth = AUTH_SECRET, .auth_len = strlen(AUTH_SECRET)};
	struct tmp_listener l;
	struct sessd_client *c = NULL;
	pid_t pid = sealed_fake_start(&l, goodbye_after_sealed_hello_fake);
	int rc;

	rc = sessd_connect(l.url, &opts, &c);
	cr_assert_eq(rc, SESSD_OK, "%s", sessd_strerror(rc));
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_CLOSED, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	rc = sessd_ping(c);
	cr_expect_eq(rc, SESSD_ERR_CONNECT, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_expect(strstr(sessd_errmsg(c), "SHUTTING_DOWN") != NULL, "%s", sessd_errmsg(c));
	rc = sessd_ping(c);
	cr_expect_eq(rc, SESSD_OK, "the next call reconnects: %s (%s)", sessd_strerror(rc),
	             sessd_errmsg(c));
	sessd_close(c);
	tmp_finish(&l, pid, "sealed fake server");
}

/*
 * A server that does not prove it holds the secret (a wrong proof, no kx, auth not true, a
 * malformed kx, an impostor with another secret) is refused with SESSD_ERR_AUTH, in words that
 * say so, and the client sends it nothing more: the fake sees the stream end right after its
 * HELLO reply. Before that, a good exchange shows that the fake itself seals right.
 */
LEAK_CHECKED_TEST(fake_server, sealed_server_must_prove_the_secret)
{
	static const char *const words[] = {
	    "its proof is wrong",         "has no kx",
	    "lacks auth: true",           "not a map of key and proof",
	    "not a map of key and proof", "not a map of key and proof",
	    "its proof is wrong"};
	struct sessd_options opts = {
	    .timeout_ms = 3000, .auth = AUTH_SECRET, .auth_len = strlen(AUTH_SECRET)};
	struct tmp_listener l;
	struct sessd_client *c = NULL;
	pid_t pid = sealed_fake_start(&l, refusing_fake);
	char errbuf[SESSD_ERRMSG_SIZE];
	int rc;

	rc = sessd_connect(l.url, &opts, &c);
	cr_assert_eq(rc, SESSD_OK, "%s", sessd_strerror(rc));
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_CLOSED, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		rc = sessd_ping(c);
		cr_assert_eq(rc, SESSD_ERR_AUTH, "%zu: %s (%s)", i, sessd_strerror(rc),
		             sessd_errmsg(c));
		cr_assert(strstr(sessd_errmsg(c), "did not prove it holds the secret") != NULL,
		          "%zu: %s", i, sessd_errmsg(c));
		cr_assert(strstr(sessd_errmsg(c), words[i]) != NULL, "%zu: %s", i, sessd_errmsg(c));
		cr_assert_null(strstr(sessd_errmsg(c), "k9Vq0"));
	}
	sessd_close(c);
	/* Refused by sessd_connect itself: no client, errno EPERM (the client refused). */
	c = (struct sessd_client *)1;
	errno = 0;
	cr_assert_eq(sessd_connect_errbuf(l.url, &opts, &c, errbuf, sizeof(errbuf)),
	             SESSD_ERR_AUTH);
	cr_assert_null(c);
	cr_assert_eq(errno, EPERM, "errno %d", errno);
	cr_assert(strstr(errbuf, "did not prove it holds the secret: its proof is wrong") != NULL,
	          "errbuf: %s", errbuf);
	cr_assert(strstr(errbuf, l.url) != NULL, "errbuf: %s", errbuf);
	cr_assert_null(strstr(errbuf, "k9Vq0"), "errbuf: %s", errbuf);
	tmp_finish(&l, pid, "fake server");
}

/* Flip one bit of the last record in ${records} (in its tag): it no longer authenticates. */
static void spoil_last_byte(struct buf *records)
{
	records->data[records->len - 1] ^= 0x01;
}

/*
 * After a good exchange, records that must not be opened. Connection 0: sessd_connect's PING
 * and one more answered,
 * the next answered with a changed record. 1: a record of a malformed length (4 GiB - 1). 2:
 * one of 16 bytes (no plaintext). 3: one PING answered, the next with that same record again
 * (a replay). 4: a batch of three PINGs, the first answered in a good record, the other two
 * in a changed one, sent together. 5: a record cut short by the end of the stream.
 */
static int bad_records_fake(int lfd)
{
	static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
	static const uint8_t tiny[20] = {0, 0, 0, 16};
	struct fake_peer p = {.fd = -1};
	struct codec_request req;
	struct buf records, first;
	int rc = 0;

	buf_init(&records);
	buf_init(&first);
	for (int conn = 0; conn < 6 && rc == 0; conn++) {
		buf_init(&p.plain);
		buf_init(&p.frame);
		buf_reset(&records);
		buf_reset(&first);
		rc = 2 + conn;
		if ((p.fd = fake_accept(lfd)) == -1 || fake_kx_hello(&p, FAKE_KX_GOOD) == -1 ||
		    (conn == 0 && fake_answer_sealed(&p) == -1))
			break;
		if (conn == 0 || conn == 3) {
			if (fake_recv_sealed(&p, &req) == -1 ||
			    fake_seal_nil(&p, req.request_id, &first) == -1 ||
			    harness_send_all(p.fd, first.data, first.len) == -1 ||
			    fake_recv_sealed(&p, &req) == -1)
				break;
			if (conn == 0 && fake_seal_nil(&p, req.request_id, &records) == -1)
				break;
			if (conn == 0)
				spoil_last_byte(&records);
			else if (buf_append(&records, first.data, first.len) == -1)
				break;
		} else if (conn == 1 || conn == 2) {
			if (fake_recv_sealed(&p, &req) == -1 ||
			    buf_append(&records, conn == 1 ? huge : tiny,
			               conn == 1 ? sizeof(huge) : sizeof(tiny)) == -1)
				break;
		} else if (conn == 4) {
			/* first holds the plaintext of the last two replies, sealed as one. */
			for (int i = 0; i < 3; i++)
				if (fake_recv_sealed(&p, &req) == -1 ||
				    (i == 0 ? fake_seal_nil(&p, req.request_id, &records)
				            : fake_nil_frame(&first, req.request_id)) == -1)
					goto out;
			if (seal_append(p.seal, &records, first.data, first.len) == -1)
				break;
			spoil_last_byte(&records);
		} else {
			if (fake_recv_sealed(&p, &req) == -1 ||
			    fake_seal_nil(&p, req.request_id, &records) == -1)
				break;
			records.len -= 5;
		}
		if (harness_send_all(p.fd, records.data, records.len) == -1)
			break;
		/* The client closes without a word (PROTOCOL.md: a client just closes). */
		if (conn != 5 && fake_expect_silence(p.fd) == -1)
			break;
		rc = 0;
		fake_peer_finish(&p);
	}
out:
	fake_peer_finish(&p);
	buf_finish(&records);
	buf_finish(&first);
	return rc;
}

/*
 * A record from the server that does not open (changed, replayed, of a malformed length,
 * empty) is SESSD_ERR_PROTOCOL, and the connection is dropped; nothing of it is used, nothing
 * leaks (the leak check), and the next call reconnects with new keys. In a batch, the reply
 * that came in a good record before it keeps its status. A record cut short by the end of the
 * stream is a closed connection.
 */
LEAK_CHECKED_TEST(fake_server, sealed_records_that_do_not_open)
{
	struct sessd_options opts = {
	    .timeout_ms = 3000, .auth = AUTH_SECRET, .auth_len = strlen(AUTH_SECRET)};
	struct tmp_listener l;
	struct sessd_client *c = NULL;
	struct sessd_batch *b;
	pid_t pid = sealed_fake_start(&l, bad_records_fake);
	size_t before;
	int rc;

	cr_assert_eq(sessd_connect(l.url, &opts, &c), SESSD_OK);
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "changed: %s (%s)", sessd_strerror(rc),
	             sessd_errmsg(c));
	cr_assert(strstr(sessd_errmsg(c), "does not authenticate") != NULL, "%s", sessd_errmsg(c));

	before = vm_peak_kib();
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "huge: %s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert(strstr(sessd_errmsg(c), "malformed length") != NULL, "%s", sessd_errmsg(c));
	cr_assert_lt(vm_peak_kib() - before, 64 * 1024, "a record's length reserved memory");
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "tiny: %s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert(strstr(sessd_errmsg(c), "malformed length") != NULL, "%s", sessd_errmsg(c));

	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "replay: %s (%s)", sessd_strerror(rc),
	             sessd_errmsg(c));
	cr_assert(strstr(sessd_errmsg(c), "does not authenticate") != NULL, "%s", sessd_errmsg(c));

	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(sessd_batch_ping(b), i);
	rc = sessd_batch_run(b);
	cr_assert_eq(rc, SESSD_ERR_PROTOCOL, "batch: %s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert(strstr(sessd_errmsg(c), "does not authenticate") != NULL, "%s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_status(b, 0), SESSD_OK);
	cr_assert_eq(sessd_batch_status(b, 1), SESSD_ERR_PROTOCOL);
	cr_assert_eq(sessd_batch_status(b, 2), SESSD_ERR_PROTOCOL);
	sessd_batch_free(b);

	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_CLOSED, "cut: %s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/*
 * Connection 0: sessd_connect's PING answered, then a request answered with its reply's
 * record sent twice (doubled on the path:
 * the copy does not open). Connection 1: a request answered with its reply and, in the same
 * write, a sealed BAD_REQUEST of request id 0 (sessd's answer to a record of the client's
 * doubled on the path, before it closes). Connection 2: a request answered. Each time the
 * client must close without a word. Returns the child's exit status: 0, or 2 + the
 * connection that went wrong.
 */
static int doubled_records_fake(int lfd)
{
	struct fake_peer p = {.fd = -1};
	struct codec_request req;
	struct buf records, bad;
	size_t at;
	int rc = 0;

	buf_init(&records);
	buf_init(&bad);
	for (int conn = 0; conn < 3 && rc == 0; conn++) {
		buf_init(&p.plain);
		buf_init(&p.frame);
		buf_reset(&records);
		buf_reset(&bad);
		rc = 2 + conn;
		if ((p.fd = fake_accept(lfd)) == -1 || fake_kx_hello(&p, FAKE_KX_GOOD) == -1 ||
		    (conn == 0 && fake_answer_sealed(&p) == -1) ||
		    fake_recv_sealed(&p, &req) == -1 ||
		    fake_seal_nil(&p, req.request_id, &records) == -1)
			break;
		if (conn == 0 && buf_append(&bad, records.data, records.len) == -1)
			break;
		if (conn == 1 && (codec_reply_open(&bad, 0, CODEC_BAD_REQUEST, &at) == -1 ||
		                  mp_write_nil(&bad) == -1 || codec_frame_close(&bad, at) == -1 ||
		                  seal_append(p.seal, &records, bad.data, bad.len) == -1))
			break;
		if (conn == 0 && buf_append(&records, bad.data, bad.len) == -1)
			break;
		if (harness_send_all(p.fd, records.data, records.len) == -1 ||
		    fake_expect_silence(p.fd) == -1)
			break;
		rc = 0;
		fake_peer_finish(&p);
	}
	fake_peer_finish(&p);
	buf_finish(&records);
	buf_finish(&bad);
	return rc;
}

/*
 * A record doubled on the path after every reply of a call came (the server's reply again,
 * which does not open; or sessd's BAD_REQUEST for the client's request record doubled, which
 * sessd carried out once): the call's requests were carried out and answered, so the call
 * succeeds; the connection is dropped, and the next call reconnects. It failed with
 * SESSD_ERR_PROTOCOL ("does not authenticate", "bytes after the last reply"): a SET carried
 * out reported as failed (scripts/mitm-clients.sh dup, dup-down).
 */
LEAK_CHECKED_TEST(fake_server, a_record_doubled_after_the_last_reply_ends_the_connection_only)
{
	struct sessd_options opts = {
	    .timeout_ms = 3000, .auth = AUTH_SECRET, .auth_len = strlen(AUTH_SECRET)};
	struct tmp_listener l;
	struct sessd_client *c = NULL;
	pid_t pid = sealed_fake_start(&l, doubled_records_fake);
	int rc;

	cr_assert_eq(sessd_connect(l.url, &opts, &c), SESSD_OK);
	rc = sessd_set(c, "a", 1, "alice", 5, TTL_MS);
	cr_assert_eq(rc, SESSD_OK, "the reply doubled: %s (%s)", sessd_strerror(rc),
	             sessd_errmsg(c));
	rc = sessd_set(c, "a", 1, "alice", 5, TTL_MS);
	cr_assert_eq(rc, SESSD_OK, "a BAD_REQUEST after the reply: %s (%s)", sessd_strerror(rc),
	             sessd_errmsg(c));
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* --- FLASH_PUSH_EXISTING: a push that never creates a session (PROTOCOL.md, "Flashes"). --- */

/* The messages of ${type} of ${id}, popped, joined by ",", into ${out}. */
static void pop_joined(struct sessd_client *c, const char *id, const char *type, char *out,
                       size_t size)
{
	struct sessd_flashes *f = NULL;
	size_t used = 0;
	int rc = sessd_flash_pop(c, id, strlen(id), type, &f);

	cr_assert_eq(rc, SESSD_OK, "pop: %s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	out[0] = '\0';
	for (size_t i = 0; i < f->count; i++) {
		cr_assert_lt(used + f->items[i].msg_len + 2, size);
		if (i > 0)
			out[used++] = ',';
		memcpy(out + used, f->items[i].msg, f->items[i].msg_len);
		used += f->items[i].msg_len;
		out[used] = '\0';
	}
	sessd_flashes_free(f);
}

LEAK_CHECKED_TEST(client, flash_push_existing_never_creates_a_session)
{
	struct sessd_client *a = connect_ns(daemon_.unix_url, "fpe");
	struct sessd_client *b = connect_ns(daemon_.tcp_url, "fpe");
	size_t queued = 0;
	uint64_t n = 0;
	char got[64];
	int rc;

	/* A session this request read: the push goes to it. */
	cr_assert_eq(sessd_set(a, "s", 1, "logged in", 9, TTL_MS), SESSD_OK);
	rc = sessd_flash_push_existing(a, "s", 1, "info", "one", 3, TTL_MS, &queued);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(a));
	cr_assert_eq(queued, 1);
	cr_assert_eq(sessd_flash_push_existing(a, "s", 1, "info", "two", 3, TTL_MS, NULL),
	             SESSD_OK);
	cr_assert_eq(sessd_flash_push(a, "s", 1, "info", "three", 5, TTL_MS, &queued), SESSD_OK);
	cr_assert_eq(queued, 3, "one queue for both pushes");
	pop_joined(b, "s", "info", got, sizeof(got));
	cr_assert_str_eq(got, "one,two,three");
	expect_data(b, "s", 1, "logged in", 9);

	/* The user logged out meanwhile: the late push brings nothing back. */
	cr_assert_eq(sessd_destroy(b, "s", 1), SESSD_OK);
	queued = 77;
	rc = sessd_flash_push_existing(a, "s", 1, "info", "late", 4, TTL_MS, &queued);
	cr_assert_eq(rc, SESSD_NOT_FOUND, "%s (%s)", sessd_strerror(rc), sessd_errmsg(a));
	cr_assert_str_eq(sessd_errmsg(a), "not found");
	cr_assert_eq(queued, 77, "numbers are left alone but on SESSD_OK");
	cr_assert_eq(sessd_flash_push_existing(a, "never", 5, "info", "m", 1, TTL_MS, NULL),
	             SESSD_NOT_FOUND);
	cr_assert_eq(sessd_count(a, &n), SESSD_OK);
	cr_assert_eq(n, 0, "nothing was created");

	/* A session of flashes only has no data: NOT_FOUND, its queue kept. */
	cr_assert_eq(sessd_flash_push(b, "f", 1, "info", "first", 5, TTL_MS, NULL), SESSD_OK);
	cr_assert_eq(sessd_flash_push_existing(a, "f", 1, "info", "m", 1, TTL_MS, NULL),
	             SESSD_NOT_FOUND);
	cr_assert_eq(sessd_count(a, &n), SESSD_OK);
	cr_assert_eq(n, 1);
	pop_joined(b, "f", "info", got, sizeof(got));
	cr_assert_str_eq(got, "first");
	cr_assert_eq(sessd_ping(a), SESSD_OK, "NOT_FOUND left the connection open");
	sessd_close(a);
	sessd_close(b);
}

LEAK_CHECKED_TEST(client, flash_push_existing_bad_arguments_are_usage_errors)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	struct sessd_batch *b = sessd_batch_new(c);
	char long_type[66];

	cr_assert_not_null(b);
	memset(long_type, 't', sizeof(long_type) - 1);
	long_type[sizeof(long_type) - 1] = '\0';
	cr_assert_eq(sessd_flash_push_existing(NULL, "a", 1, "t", "m", 1, TTL_MS, NULL),
	             SESSD_ERR_USAGE);
	cr_assert_eq(sessd_flash_push_existing(c, "a", 0, "t", "m", 1, TTL_MS, NULL),
	             SESSD_ERR_USAGE);
	cr_assert_eq(sessd_flash_push_existing(c, "a", 1, "", "m", 1, TTL_MS, NULL),
	             SESSD_ERR_USAGE);
	cr_assert_eq(sessd_flash_push_existing(c, "a", 1, long_type, "m", 1, TTL_MS, NULL),
	             SESSD_ERR_USAGE);
	cr_assert_eq(sessd_flash_push_existing(c, "a", 1, NULL, "m", 1, TTL_MS, NULL),
	             SESSD_ERR_USAGE);
	cr_assert_eq(sessd_flash_push_existing(c, "a", 1, "t", NULL, 1, TTL_MS, NULL),
	             SESSD_ERR_USAGE);
	cr_assert_eq(sessd_flash_push_existing(c, "a", 1, "t", "m", 1, 0, NULL), SESSD_ERR_USAGE);
	cr_assert_eq(sessd_batch_flash_push_existing(NULL, "a", 1, "t", "m", 1, TTL_MS), -1);
	errno = 0;
	cr_assert_eq(sessd_batch_flash_push_existing(b, "a", 1, "", "m", 1, TTL_MS), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(sessd_batch_flash_push_existing(b, "a", 1, "t", NULL, 1, TTL_MS), -1);
	cr_assert_eq(sessd_batch_flash_push_existing(b, "a", 1, "t", "m", 1, 0), -1);
	/* Nothing was queued by the refusals, nor sent: the next request is the first. */
	cr_assert_eq(sessd_batch_ping(b), 0);
	cr_assert_eq(sessd_batch_run(b), SESSD_OK);
	sessd_batch_free(b);
	sessd_close(c);
}

LEAK_CHECKED_TEST(client, batch_flash_push_existing_sees_the_batch_before_it)
{
	struct sessd_client *a = connect_ns(daemon_.unix_url, "batch-fpe");
	struct sessd_batch *b = sessd_batch_new(a);
	char got[64];
	int rc;

	cr_assert_not_null(b);
	cr_assert_eq(sessd_set(a, "gone", 4, "d", 1, TTL_MS), SESSD_OK);
	cr_assert_eq(sessd_batch_flash_push_existing(b, "x", 1, "info", "early", 5, TTL_MS), 0);
	cr_assert_eq(sessd_batch_set(b, "x", 1, "d", 1, TTL_MS), 1);
	cr_assert_eq(sessd_batch_flash_push_existing(b, "x", 1, "info", "m", 1, TTL_MS), 2);
	cr_assert_eq(sessd_batch_flash_push(b, "f", 1, "info", "m", 1, TTL_MS), 3);
	cr_assert_eq(sessd_batch_flash_push_existing(b, "f", 1, "info", "m", 1, TTL_MS), 4);
	cr_assert_eq(sessd_batch_destroy(b, "gone", 4), 5);
	cr_assert_eq(sessd_batch_flash_push_existing(b, "gone", 4, "info", "m", 1, TTL_MS), 6);
	cr_assert_eq(sessd_batch_ping(b), 7);
	rc = sessd_batch_run(b);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(a));
	expect_status(b, 0, SESSD_NOT_FOUND);
	expect_status(b, 1, SESSD_OK);
	expect_status(b, 2, SESSD_OK);
	expect_status(b, 3, SESSD_OK);
	expect_status(b, 4, SESSD_NOT_FOUND);
	expect_status(b, 5, SESSD_OK);
	expect_status(b, 6, SESSD_NOT_FOUND);
	expect_status(b, 7, SESSD_OK);
	pop_joined(a, "x", "info", got, sizeof(got));
	cr_assert_str_eq(got, "m", "the push before the SET found nothing");
	expect_missing(a, "gone", 4);
	sessd_batch_free(b);
	sessd_close(a);
}

/* An older server does not know FLASH_PUSH_EXISTING (UNKNOWN_OP) and keeps the connection. */
static int old_flash_server_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	struct buf r;
	int rc;

	(void)conn;
	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	buf_init(&r);
	if (nth == 1 && req->op == CODEC_OP_FLASH_PUSH_EXISTING)
		rc = mp_write_str(&r, "unknown opcode", 14) == -1
		         ? -1
		         : fake_reply(fd, req->request_id, CODEC_UNKNOWN_OP, r.data, r.len);
	else if (nth == 2 && req->op == CODEC_OP_FLASH_PUSH)
		rc = mp_write_uint(&r, 1) == -1 ? -1 : fake_reply_value(fd, req->request_id, &r);
	else
		rc = -1;
	buf_finish(&r);
	return rc;
}

LEAK_CHECKED_TEST(fake_server, flash_push_existing_to_an_older_server_falls_back)
{
	struct tmp_listener l;
	struct sessd_client *c;
	size_t queued = 0;
	pid_t pid = fake_start(&l, 1, old_flash_server_answer);
	int rc;

	c = connect_fake(l.url);
	rc = sessd_flash_push_existing(c, "s", 1, "info", "m", 1, TTL_MS, &queued);
	cr_assert_eq(rc, SESSD_ERR_UNKNOWN_OP, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	/* The fake serves one connection: this works only if it stayed open. */
	rc = sessd_flash_push(c, "s", 1, "info", "m", 1, TTL_MS, &queued);
	cr_assert_eq(rc, SESSD_OK, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert_eq(queued, 1);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/*
 * A server older than a request: HELLO, then UNKNOWN_OP to the first request, then OK with
 * the ${len} bytes of ${result} (a reply of the wrong shape) to the second.
 */
static int unknown_then(int fd, const struct codec_request *req, int nth, const void *result,
                        size_t len)
{
	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	if (nth == 1)
		return fake_reply(fd, req->request_id, CODEC_UNKNOWN_OP, "\xaeunknown opcode", 15);
	if (nth == 2)
		return fake_reply(fd, req->request_id, CODEC_OK, result, len);
	return -1;
}

/* TTL answered UNKNOWN_OP (a daemon older than TTL), or with 0, which no live session has. */
static int ttl_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	(void)conn;
	return unknown_then(fd, req, nth, "\x00", 1);
}

LEAK_CHECKED_TEST(fake_server, ttl_from_an_older_or_faulty_server)
{
	struct tmp_listener l;
	struct sessd_client *c;
	pid_t pid = fake_start(&l, 1, ttl_answer);
	uint64_t ms = 77;
	int rc;

	c = connect_fake(l.url);
	rc = sessd_ttl(c, "x", 1, &ms);
	cr_expect_eq(rc, SESSD_ERR_UNKNOWN_OP, "%s", sessd_strerror(rc));
	cr_expect_eq(ms, 77);
	/* The connection stays open: the next TTL goes on it, and 0 is no answer. */
	rc = sessd_ttl(c, "x", 1, &ms);
	cr_expect_eq(rc, SESSD_ERR_PROTOCOL, "%s", sessd_strerror(rc));
	cr_expect_eq(ms, 77);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* LOAD answered UNKNOWN_OP (a daemon older than LOAD), then with GET's bare data. */
static int load_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	(void)conn;
	return unknown_then(fd, req, nth, "\xc4\x01x", 3);
}

LEAK_CHECKED_TEST(fake_server, load_from_an_older_or_faulty_server)
{
	struct tmp_listener l;
	struct sessd_client *c;
	pid_t pid = fake_start(&l, 1, load_answer);
	void *data = NULL;
	size_t len = 0;
	uint64_t flashes = 77;
	int rc;

	c = connect_fake(l.url);
	rc = sessd_load(c, "x", 1, &data, &len, &flashes);
	cr_expect_eq(rc, SESSD_ERR_UNKNOWN_OP, "%s", sessd_strerror(rc));
	cr_expect_null(data);
	cr_expect_eq(flashes, 77);
	/* The connection stays open: the next LOAD goes on it, and bare data is no answer. */
	rc = sessd_load(c, "x", 1, &data, &len, &flashes);
	cr_expect_eq(rc, SESSD_ERR_PROTOCOL, "%s", sessd_strerror(rc));
	cr_expect_null(data);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/* --- What a client keeps of a large request or reply. --- */

/* A client keeps at most this much heap past a call, whatever it sent or read (kept bytes). */
#define KEPT_AFTER_A_CALL (4u * 1024u * 1024u)
/* The session data of big_frames: several times what KEPT_AFTER_A_CALL allows. */
#define BIG_DATA (8u * 1024u * 1024u)

/* What the heap grew by since ${before} (heap_in_use), 0 when it shrank. */
static size_t heap_growth(size_t before)
{
	size_t now = heap_in_use();

	return now > before ? now - before : 0;
}

/*
 * A SET refused unsent for its size (SESSD_ERR_TOO_LARGE) leaves nothing of its frame in the
 * client: the frame is a copy of the caller's data, and a web backend whose per-thread client
 * once refused a 16 MiB session must not hold 32 MiB (the frame's doubled buffer) from then
 * on, until sessd_close.
 */
LEAK_CHECKED_TEST(client, a_refused_large_set_is_not_kept)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	size_t len = 2 * BIG_DATA, before, kept;
	uint8_t *data = calloc(1, len);
	int rc;

	cr_assert_not_null(data);
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	before = heap_in_use();
	rc = sessd_set(c, "big", 3, data, len, TTL_MS);
	kept = heap_growth(before);
	cr_assert_eq(rc, SESSD_ERR_TOO_LARGE, "%s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	cr_assert_lt(kept, KEPT_AFTER_A_CALL, "a refused SET of %zu bytes left %zu bytes held", len,
	             kept);
	free(data);
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_close(c);
}

/*
 * The same for a batch: a SET refused at queue time for its size (-1, EMSGSIZE) leaves nothing
 * of its copy in the batch, which a web backend may keep and reset for each request, and the
 * batch goes on with requests that fit.
 */
LEAK_CHECKED_TEST(client, a_refused_large_batch_set_is_not_kept)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	struct sessd_batch *b = sessd_batch_new(c);
	size_t len = 2 * BIG_DATA, before, kept;
	uint8_t *data = calloc(1, len);
	int index;

	cr_assert_not_null(data);
	cr_assert_not_null(b);
	cr_assert_eq(sessd_batch_ping(b), 0);
	before = heap_in_use();
	errno = 0;
	index = sessd_batch_set(b, "big", 3, data, len, TTL_MS);
	cr_assert_eq(index, -1);
	cr_assert_eq(errno, EMSGSIZE, "errno %s", strerror(errno));
	kept = heap_growth(before);
	cr_assert_lt(kept, KEPT_AFTER_A_CALL,
	             "a refused batch SET of %zu bytes left %zu bytes held", len, kept);
	cr_assert(strstr(sessd_errmsg(c), "max_frame") != NULL, "%s", sessd_errmsg(c));
	free(data);
	cr_assert_eq(sessd_batch_set(b, "small", 5, "v", 1, TTL_MS), 1);
	cr_assert_eq(sessd_batch_run(b), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(sessd_batch_status(b, 0), SESSD_OK);
	cr_assert_eq(sessd_batch_status(b, 1), SESSD_OK);
	expect_data(c, "small", 5, "v", 1);
	sessd_batch_free(b);
	sessd_close(c);
}

static void start_big_frame_daemon(void)
{
	static const char *const args[] = {"--max-frame", "16M", NULL};

	cr_assert_eq(harness_start(&daemon_, args), 0, "the daemon did not start");
}

TestSuite(big_frames, .init = start_big_frame_daemon, .fini = stop_daemon, .timeout = 60);

/*
 * Against a daemon whose --max-frame allows sessions of many MiB, a SET and a GET of one do
 * not leave the client holding buffers of their size (the frame sent, the reply read) until
 * sessd_close, as the records of a sealed one are not kept either: the memory of a client is
 * what ordinary sessions need, not the most it ever moved.
 */
LEAK_CHECKED_TEST(big_frames, a_large_set_and_get_are_not_kept)
{
	struct sessd_client *c = connect_to(daemon_.unix_url);
	uint8_t *data = malloc(BIG_DATA);
	size_t before, kept;
	void *got = NULL;
	size_t got_len = 0;

	cr_assert_not_null(data);
	for (size_t i = 0; i < BIG_DATA; i++)
		data[i] = (uint8_t)(i % 251);
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	before = heap_in_use();
	cr_assert_eq(sessd_set(c, "big", 3, data, BIG_DATA, TTL_MS), SESSD_OK, "%s",
	             sessd_errmsg(c));
	kept = heap_growth(before);
	cr_assert_lt(kept, KEPT_AFTER_A_CALL, "a SET of %u bytes left %zu bytes held", BIG_DATA,
	             kept);
	before = heap_in_use();
	cr_assert_eq(sessd_get(c, "big", 3, &got, &got_len), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(got_len, BIG_DATA);
	cr_assert(memcmp(got, data, BIG_DATA) == 0);
	free(got);
	kept = heap_growth(before);
	cr_assert_lt(kept, KEPT_AFTER_A_CALL, "a GET of %u bytes left %zu bytes held", BIG_DATA,
	             kept);
	free(data);
	sessd_close(c);
}

/* --- The ABI as a program built against an earlier libsessd.so.0 sees it. --- */

#include <dlfcn.h>

/*
 * Every function of client/libsessd.map resolves at the symbol version whose block names it,
 * as the dynamic linker resolves a program's versioned references: each LIBSESSD_0 one at
 * LIBSESSD_0, so a program built against the first release still starts and runs; each one
 * added later at its own version only (sessd_outcome_unknown at LIBSESSD_0.1, never at
 * LIBSESSD_0), so a program that calls it needs a library that has it, and an older one says
 * "version `LIBSESSD_0.1' not found" at start rather than fail at the call. A function moved
 * from one block to another, or a block renamed, breaks every program built before: this fails.
 */
Test(client, each_function_resolves_at_the_version_of_its_block)
{
	const char *root = getenv("SESSD_SOURCE_ROOT");
	char path[PATH_MAX], line[256], version[64] = "", name[128];
	int (*want)(const struct sessd_client *);
	void *lib, *at, *other;
	size_t checked = 0, later = 0;
	FILE *map;

	cr_assert_not_null(root, "SESSD_SOURCE_ROOT is not set (meson test sets it)");
	snprintf(path, sizeof(path), "%s/client/libsessd.map", root);
	map = fopen(path, "r");
	cr_assert_not_null(map, "%s", path);
	/* The library this test is linked with, as loaded. */
	lib = dlopen("libsessd.so.0", RTLD_NOW | RTLD_NOLOAD);
	cr_assert_not_null(lib, "%s", dlerror());
	while (fgets(line, sizeof(line), map) != NULL) {
		if (sscanf(line, "%63[A-Z0-9_.] {", version) == 1 && strchr(line, '{') != NULL)
			continue;
		if (sscanf(line, " %127[a-z0-9_];", name) != 1 || strncmp(name, "sessd_", 6) != 0)
			continue;
		cr_assert_neq(version[0], '\0', "%s before any version block", name);
		at = dlvsym(lib, name, version);
		cr_expect_not_null(at, "%s is not at %s", name, version);
		cr_expect_eq(at, dlsym(lib, name), "%s: another %s is the default", name, version);
		if (strcmp(version, "LIBSESSD_0") != 0) {
			other = dlvsym(lib, name, "LIBSESSD_0");
			cr_expect_null(other, "%s (added at %s) is at LIBSESSD_0 too", name,
			               version);
			later++;
		}
		checked++;
	}
	fclose(map);
	cr_expect_geq(checked, 50, "%zu functions in %s", checked, path);
	cr_expect_geq(later, 1, "no block after LIBSESSD_0 in %s", path);
	/* This very function, as the header declares it (pointers compared as bytes: ISO C
	 * converts no function pointer to void *). */
	want = sessd_outcome_unknown;
	at = dlvsym(lib, "sessd_outcome_unknown", "LIBSESSD_0.1");
	cr_expect_eq(memcmp(&want, &at, sizeof(at)), 0);
	dlclose(lib);
}

/* --- A closing status in a longer msgpack form than sessd's. --- */

/*
 * A frame whose body is a reply [0, ${status}, "full"] with the request id and the status in
 * the widest uint forms (uint 64 and uint 32), which PROTOCOL.md lets a server write though
 * sessd writes the shortest.
 */
static int fake_wide_closing(int fd, uint32_t status)
{
	const uint8_t frame[] = {
	    0,    0,   0,   20,  0x93, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0, 0xce, 0, 0, 0, (uint8_t)status,
	    0xa4, 'f', 'u', 'l', 'l'};

	return harness_send_all(fd, frame, sizeof(frame));
}

/*
 * Connection 0: a FLASH_PUSH answered BUSY in the wide form. Connection 1: a GET so answered.
 * Connection 2: a batch of three FLASH_PUSHes, the first answered OK, then (all three read)
 * SHUTTING_DOWN in the wide form.
 */
static int wide_closing_answer(int fd, const struct codec_request *req, int conn, int nth)
{
	if (nth == 0)
		return fake_hello(fd, req->request_id, CODEC_DEFAULT_MAX_FRAME);
	if (conn < 2) {
		(void)fake_wide_closing(fd, CODEC_BUSY);
		return -1;
	}
	if (nth == 1)
		return fake_reply(fd, req->request_id, CODEC_OK, "\x01", 1);
	/* Once all three are read: a close with bytes unread would reset the connection. */
	if (nth == 2)
		return 0;
	(void)fake_wide_closing(fd, CODEC_SHUTTING_DOWN);
	return -1;
}

/*
 * BUSY and SHUTTING_DOWN are read by value, whatever msgpack form carries them. A BUSY says
 * the requests left without a reply may or may not have been carried out; libsessd saw it only
 * in sessd's own form (93 00 0d), and a BUSY in a wider one reached the call as an answer:
 * a FLASH_PUSH failed SESSD_ERR_BUSY with sessd_outcome_unknown 0, "not carried out", and
 * sessctl said exit 4, after which a script pushes again (on main: "outcome 0 after a BUSY to
 * a FLASH_PUSH"). A wide SHUTTING_DOWN was taken as the reply of the oldest request waiting,
 * and those behind it failed as a broken connection, "may have been carried out", though the
 * status says none was.
 */
LEAK_CHECKED_TEST(fake_server, a_closing_status_in_a_wider_form_is_read_by_value)
{
	struct tmp_listener l;
	struct sessd_client *c;
	struct sessd_batch *b;
	pid_t pid = fake_start(&l, 3, wide_closing_answer);
	void *data = NULL;
	size_t len = 0, queued = 0;
	int rc;

	c = connect_fake(l.url);
	rc = sessd_flash_push(c, "wb", 2, "t", "m", 1, 60000, &queued);
	cr_expect_eq(rc, SESSD_ERR_BUSY, "%s: %s", sessd_strerror(rc), sessd_errmsg(c));
	cr_expect_eq(sessd_outcome_unknown(c), 1, "outcome 0 after a BUSY to a FLASH_PUSH");
	rc = sessd_get(c, "wb", 2, &data, &len);
	cr_expect_eq(rc, SESSD_ERR_BUSY, "%s: %s", sessd_strerror(rc), sessd_errmsg(c));
	cr_expect_eq(sessd_outcome_unknown(c), 0, "a GET is a read");
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(sessd_batch_flash_push(b, "wb", 2, "t", "m", 1, 60000), i);
	rc = sessd_batch_run(b);
	cr_expect_eq(rc, SESSD_ERR_SHUTTING_DOWN, "%s: %s", sessd_strerror(rc), sessd_errmsg(c));
	cr_expect_eq(sessd_batch_status(b, 0), SESSD_OK);
	cr_expect_eq(sessd_batch_status(b, 1), SESSD_ERR_SHUTTING_DOWN, "%s",
	             sessd_strerror(sessd_batch_status(b, 1)));
	cr_expect_eq(sessd_batch_status(b, 2), SESSD_ERR_SHUTTING_DOWN, "%s",
	             sessd_strerror(sessd_batch_status(b, 2)));
	cr_expect_eq(sessd_outcome_unknown(c), 0,
	             "SHUTTING_DOWN says the two left without a reply were not carried out");
	sessd_batch_free(b);
	sessd_close(c);
	tmp_finish(&l, pid, "fake server");
}

/*
 * The library's file is libsessd.so.0.N.0 for its newest symbol version LIBSESSD_0.N
 * (client/meson.build), and sessd_result_lost, added at LIBSESSD_0.2, resolves there and
 * nowhere older: a program that tells a FLASH_POP's lost messages from an unknown outcome needs
 * a library that can say it.
 */
Test(client, the_file_name_says_the_newest_symbol_version)
{
	const char *root = getenv("SESSD_SOURCE_ROOT");
	char path[PATH_MAX], line[256], real[PATH_MAX], want[64];
	int (*lost)(const struct sessd_client *) = sessd_result_lost;
	unsigned minor, newest = 0;
	const char *base;
	void *lib, *at;
	Dl_info info;
	FILE *map;

	cr_assert_not_null(root, "SESSD_SOURCE_ROOT is not set (meson test sets it)");
	snprintf(path, sizeof(path), "%s/client/libsessd.map", root);
	map = fopen(path, "r");
	cr_assert_not_null(map, "%s", path);
	while (fgets(line, sizeof(line), map) != NULL)
		if (sscanf(line, "LIBSESSD_0.%u {", &minor) == 1 && minor > newest)
			newest = minor;
	fclose(map);
	cr_assert_geq(newest, 2, "no LIBSESSD_0.2 block in %s", path);
	lib = dlopen("libsessd.so.0", RTLD_NOW | RTLD_NOLOAD);
	cr_assert_not_null(lib, "%s", dlerror());
	at = dlvsym(lib, "sessd_result_lost", "LIBSESSD_0.2");
	cr_expect_eq(memcmp(&lost, &at, sizeof(at)), 0, "sessd_result_lost is not at LIBSESSD_0.2");
	cr_expect_null(dlvsym(lib, "sessd_result_lost", "LIBSESSD_0.1"));
	cr_expect_null(dlvsym(lib, "sessd_result_lost", "LIBSESSD_0"));
	cr_assert_neq(dladdr(at, &info), 0);
	cr_assert_not_null(realpath(info.dli_fname, real), "%s", info.dli_fname);
	base = strrchr(real, '/') != NULL ? strrchr(real, '/') + 1 : real;
	snprintf(want, sizeof(want), "libsessd.so.0.%u.0", newest);
	cr_expect_str_eq(base, want, "%s: LIBSESSD_0.%u is the newest block of %s", real, newest,
	                 path);
	cr_expect_eq(sessd_result_lost(NULL), 0);
	dlclose(lib);
}

/* A whole frame from the daemon, or its close, on ${fd} within ${ms}: whether it came. */
static bool closed_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

/*
 * sessd counts a sealed connection as one that showed the secret only once a record from it
 * has opened (a recorded HELLO can be replayed): until then it gives way at --max-connections
 * once 0.5 s have passed since its HELLO reply, is closed at --hello-timeout, and is admitted
 * (or turned away, BUSY) only with that record. sessd_connect now sends a PING at once on a
 * sealed connection, as connect-sessd does, so that a program that connects ahead of use
 * (at its start, and calls later) keeps the connection it made, and learns at sessd_connect,
 * as over a plain one, that sessd has no room for it. Before, sessd_connect sent nothing
 * after the HELLO: a newcomer 0.7 s later displaced the program's connection rather than
 * another newcomer, --hello-timeout 1 closed it within 1.5 s (its next call connected again),
 * and a full daemon's BUSY came from the first call after sessd_connect had said SESSD_OK.
 * About 6 s: the daemon's own half second, its --hello-timeout of 1 s and its 2 to 3 s of idleness
 * before a connection may give way to a newcomer let in on trial are waited out.
 */
LEAK_CHECKED_TEST(auth, a_sealed_connect_shows_the_secret_at_once)
{
	const char *const limit[] = {"--auth-file", auth_path, "--max-connections", "2", NULL};
	const char *const hello[] = {
	    "--auth-file", auth_path, "--hello-timeout", "1", "--max-connections", "1", NULL};
	struct sessd_options opts = {.auth_file = auth_path, .timeout_ms = 10000};
	char errbuf[SESSD_ERRMSG_SIZE], want[SESSD_ERRMSG_SIZE];
	struct sessd_client *c, *late = (struct sessd_client *)1;
	struct sessd_stats *s;
	int first, second, found, rc;

	/* At --max-connections 2: the program's connection, 0.7 s after its HELLO reply, then two
	 * newcomers that say nothing. The second displaces one not past HELLO: the first
	 * newcomer, not the program's. */
	cr_assert_eq(harness_stop(&daemon_), 0);
	cr_assert_eq(harness_start(&daemon_, limit), 0);
	c = connect_with(daemon_.unix_url, opts);
	poll(NULL, 0, 700);
	first = harness_connect(daemon_.unix_url);
	cr_assert_neq(first, -1);
	second = harness_connect(daemon_.unix_url);
	cr_assert_neq(second, -1);
	cr_expect(closed_within(first, 2000),
	          "the first newcomer was not displaced: the program's connection, which had sent "
	          "nothing after its HELLO for 0.7 s, gave way in its place");
	close(first);
	close(second);
	cr_assert_eq(sessd_stats(c, 1, &s), SESSD_OK, "%s", sessd_errmsg(c));
	cr_expect_eq(stat_value(s, "connections_displaced_total", &found), 1);
	cr_expect_eq(stat_value(s, "connections_total", &found), 3,
	             "the program connected again (%llu connections)",
	             (unsigned long long)stat_value(s, "connections_total", &found));
	sessd_stats_free(s);
	sessd_close(c);

	/* --hello-timeout 1: the connection outlives it. */
	cr_assert_eq(harness_stop(&daemon_), 0);
	cr_assert_eq(harness_start(&daemon_, hello), 0);
	c = connect_with(daemon_.unix_url, opts);
	poll(NULL, 0, 1500);
	cr_assert_eq(sessd_stats(c, 1, &s), SESSD_OK, "%s", sessd_errmsg(c));
	cr_expect_eq(stat_value(s, "connections_total", &found), 1,
	             "the connection was closed at --hello-timeout and made again (%llu)",
	             (unsigned long long)stat_value(s, "connections_total", &found));
	sessd_stats_free(s);

	/* --max-connections 1, that connection idle for 3 s: a newcomer is let in on trial and
	 * turned away with its first record, its client (this process) holding as many
	 * connections as the idle one's. sessd_connect says so, as over a plain connection. */
	poll(NULL, 0, 3200);
	errno = 0;
	rc = sessd_connect_errbuf(daemon_.unix_url, &opts, &late, errbuf, sizeof(errbuf));
	if (rc == SESSD_OK) {
		rc = sessd_ping(late);
		cr_expect_eq(rc, SESSD_OK, "sessd_connect said SESSD_OK, its first call %s",
		             sessd_strerror(rc));
		sessd_close(late);
	} else {
		cr_expect_eq(rc, SESSD_ERR_BUSY, "%s: %s", sessd_strerror(rc), errbuf);
		cr_expect_null(late);
		cr_expect_eq(errno, EAGAIN, "errno %d (%s)", errno, strerror(errno));
		snprintf(want, sizeof(want), "cannot connect to %s: BUSY: ", daemon_.unix_url);
		cr_expect(strncmp(errbuf, want, strlen(want)) == 0, "%s", errbuf);
	}
	cr_expect_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_close(c);
}
