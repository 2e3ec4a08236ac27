/*
 * libsessd against the real daemon: every call over Unix and TCP, the error paths, batches
 * deep enough to fill both socket buffers, several processes at once, reconnection after a
 * restart, timeouts against a stopped server, and URL and connect failures.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "leakcheck.h"
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
	cr_assert_eq(sessd_get(c, "a", 1, NULL, &len), SESSD_ERR_USAGE);
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
	/* The old value is untouched and the client goes on. */
	expect_data(c, "big", 3, data, big);
	free(data);
	sessd_close(c);
}

/*
 * A frame the server itself refuses: the client learned a 1 MiB limit, the daemon comes back
 * with 8 KiB, and a queued 64 KiB SET reaches it. The server answers TOO_LARGE unread and
 * closes; the client reports it and reconnects on the next call.
 */
static void server_refuses_oversized_frame(const char *which)
{
	static const char *const small[] = {"--max-frame", "8192", NULL};
	struct sessd_client *c;
	struct sessd_batch *b;
	size_t len = 65536;
	uint8_t *data = calloc(1, len);
	const char *url;

	cr_assert_not_null(data);
	url = strcmp(which, "unix") == 0 ? daemon_.unix_url : daemon_.tcp_url;
	c = connect_to(url);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	cr_assert_eq(sessd_batch_ping(b), 0);
	cr_assert_eq(sessd_batch_set(b, "big", 3, data, len, TTL_MS), 1);
	cr_assert_eq(harness_kill(&daemon_), 0);
	cr_assert_eq(harness_restart(&daemon_, small), 0);
	url = strcmp(which, "unix") == 0 ? daemon_.unix_url : daemon_.tcp_url;

	cr_assert_eq(sessd_batch_run(b), SESSD_OK, "run: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_max_frame(c), 8192);
	cr_assert_eq(sessd_batch_status(b, 0), SESSD_OK);
	cr_assert_eq(sessd_batch_status(b, 1), SESSD_ERR_TOO_LARGE);
	cr_assert(strstr(sessd_errmsg(c), "TOO_LARGE") != NULL, "errmsg: %s", sessd_errmsg(c));
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	/* And the client now refuses such a frame itself, against the new limit. */
	cr_assert_eq(sessd_set(c, "big", 3, data, 8192, TTL_MS), SESSD_ERR_TOO_LARGE);
	cr_assert_eq(sessd_ping(c), SESSD_OK);
	sessd_batch_free(b);
	sessd_close(c);
	free(data);
}

LEAK_CHECKED_TEST(client, server_refuses_oversized_frame_unix)
{
	server_refuses_oversized_frame("unix");
}

LEAK_CHECKED_TEST(client, server_refuses_oversized_frame_tcp)
{
	server_refuses_oversized_frame("tcp");
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
	cr_assert_eq(sessd_batch_get(b, "", 0), -1);
	cr_assert_eq(sessd_batch_set(b, "x", 1, "v", 1, 0), -1);
	cr_assert_eq(sessd_batch_flash_push(b, "x", 1, "", "m", 1, TTL_MS), -1);
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
	struct sessd_client *c = NULL, *c2 = NULL;
	struct sessd_batch *b;
	int rc;

	cr_assert_eq(sessd_connect(daemon_.unix_url, &opts, &c), SESSD_OK);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	cr_assert_eq(kill(daemon_.pid, SIGSTOP), 0);
	rc = sessd_ping(c);
	cr_assert_eq(rc, SESSD_ERR_TIMEOUT, "ping: %s", sessd_strerror(rc));
	cr_assert_neq(sessd_errmsg(c)[0], '\0');
	/* Connecting gets into the backlog, but HELLO gets no answer. */
	rc = sessd_connect(daemon_.tcp_url, &opts, &c2);
	cr_assert_eq(rc, SESSD_ERR_CONNECT, "connect: %s", sessd_strerror(rc));
	cr_assert_null(c2);
	cr_assert_eq(kill(daemon_.pid, SIGCONT), 0);
	cr_assert_eq(sessd_ping(c), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(kill(daemon_.pid, SIGSTOP), 0);
	cr_assert_eq(sessd_batch_ping(b), 0);
	cr_assert_eq(sessd_batch_ping(b), 1);
	cr_assert_eq(sessd_batch_run(b), SESSD_ERR_TIMEOUT);
	cr_assert_eq(sessd_batch_status(b, 1), SESSD_ERR_TIMEOUT);
	cr_assert_eq(kill(daemon_.pid, SIGCONT), 0);
	cr_assert_eq(sessd_batch_run(b), SESSD_OK, "%s", sessd_errmsg(c));
	sessd_batch_free(b);
	sessd_close(c);
}

/* A loopback port nobody listens on: bind one, note it, close it. */
static int closed_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	cr_assert_neq(fd, -1);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

LEAK_CHECKED_TEST(client, connect_errors)
{
	struct sessd_client *c = (struct sessd_client *)1;
	char url[400];

	snprintf(url, sizeof(url), "unix:%s/no-such.sock", daemon_.dir);
	cr_assert_eq(sessd_connect(url, NULL, &c), SESSD_ERR_CONNECT);
	cr_assert_null(c);
	cr_assert_eq(errno, ENOENT);

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", closed_port());
	cr_assert_eq(sessd_connect(url, NULL, &c), SESSD_ERR_CONNECT);
	cr_assert_null(c);
	cr_assert_eq(errno, ECONNREFUSED);

	/* Well-formed IPv6: parsed, then refused (the daemon listens on IPv4 only). */
	snprintf(url, sizeof(url), "tcp://[::1]:%d", closed_port());
	cr_assert_eq(sessd_connect(url, NULL, &c), SESSD_ERR_CONNECT);
	cr_assert_eq(sessd_connect(daemon_.unix_url, NULL, NULL), SESSD_ERR_USAGE);
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
	    "unix:",
	    "unix",
	    "/tmp/sessd.sock",
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
	cr_assert_eq(sessd_connect(daemon_.unix_url, &bad_timeout, &c), SESSD_ERR_USAGE);
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

static int relay_frame(int from, int to, int copies)
{
	uint8_t *body, header[4];
	size_t len;
	int rc = 0;

	if (harness_recv_frame(from, &body, &len) == -1)
		return -1;
	header[0] = (uint8_t)(len >> 24);
	header[1] = (uint8_t)(len >> 16);
	header[2] = (uint8_t)(len >> 8);
	header[3] = (uint8_t)len;
	for (int i = 0; i < copies && rc == 0; i++)
		if (harness_send_all(to, header, 4) == -1 || harness_send_all(to, body, len) == -1)
			rc = -1;
	free(body);
	return rc;
}

/*
 * A server that sends bytes after a good reply: the call fails with SESSD_ERR_PROTOCOL, and
 * the result it had decoded is freed, not left to a caller who owns it only on SESSD_OK (it
 * leaked). The server is the real daemon behind a relay that sends the GET's reply twice.
 */
LEAK_CHECKED_TEST_OPTS(client, bytes_after_a_reply_leak_nothing, .init = start_daemon,
                       .fini = stop_daemon)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/sessd-relay-XXXXXX", url[200];
	struct sessd_client *c;
	void *data = (void *)1;
	size_t len = 7;
	int lfd, status;
	pid_t pid;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/relay.sock", dir);
	snprintf(url, sizeof(url), "unix:%s", addr.sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	cr_assert_eq(listen(lfd, 1), 0);
	c = connect_to(daemon_.unix_url);
	cr_assert_eq(sessd_set(c, "twice", 5, "hello", 5, TTL_MS), SESSD_OK);
	sessd_close(c);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int cfd = accept(lfd, NULL, NULL), dfd = harness_connect(daemon_.unix_url);

		/* HELLO once, then the GET's reply twice. */
		if (cfd == -1 || dfd == -1 || relay_frame(cfd, dfd, 1) == -1 ||
		    relay_frame(dfd, cfd, 1) == -1 || relay_frame(cfd, dfd, 1) == -1 ||
		    relay_frame(dfd, cfd, 2) == -1)
			_exit(1);
		_exit(0);
	}
	close(lfd);
	c = connect_to(url);
	cr_expect_eq(sessd_get(c, "twice", 5, &data, &len), SESSD_ERR_PROTOCOL);
	cr_expect_null(data, "no result is left to the caller");
	cr_expect_eq(len, 0);
	sessd_close(c);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the relay ran");
	unlink(addr.sun_path);
	rmdir(dir);
}
