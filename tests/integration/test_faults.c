/*
 * libsessd between an application and the real daemon over TCP, through a relay that injects
 * network faults (faultproxy.h): replies a byte at a time, a direction that stalls, replies
 * that come later than the timeout, a connection cut in the middle of a frame, a path that
 * swallows the HELLO. Each call must end within its documented timeout, never take another
 * request's reply (one user's session for another's), and the client must recover once the
 * network does, without leaking descriptors or memory. Plain and sealed connections.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "faultproxy.h"
#include "harness.h"
#include "leakcheck.h"
#include "sessd.h"

#define TTL_MS     60000u
#define TIMEOUT_MS 300
/* What a call may take past its timeout on a busy machine (CI runs two builds at once). */
#define SLACK_MS 700
/* The timeout of the calls that must succeed: long, so that a busy machine fails none. */
#define LONG_TIMEOUT_MS 5000
#define AUTH_SECRET     "faults-test-secret-0123456789abc"

static struct harness_daemon daemon_;
static struct faultproxy proxy;
static char auth_dir[64], auth_path[128];

/* The daemon with --auth-file (clients connect sealed, or plain showing the secret) and the
 * relay in front of its TCP port. */
static void start_all(void)
{
	const char *const args[] = {"--auth-file", auth_path, NULL};

	snprintf(auth_dir, sizeof(auth_dir), "/tmp/sessd-faults-XXXXXX");
	cr_assert_not_null(mkdtemp(auth_dir));
	snprintf(auth_path, sizeof(auth_path), "%s/secret", auth_dir);
	harness_write_secret(auth_path, AUTH_SECRET, 0600);
	cr_assert_eq(harness_start(&daemon_, args), 0, "the daemon did not start");
	cr_assert_eq(faultproxy_start(&proxy, daemon_.tcp_url), 0, "the relay did not start");
}

static void stop_all(void)
{
	cr_expect_eq(faultproxy_stop(&proxy), 0, "the relay ran cleanly");
	harness_stop(&daemon_);
	harness_cleanup(&daemon_);
	unlink(auth_path);
	rmdir(auth_dir);
}

TestSuite(faults, .init = start_all, .fini = stop_all, .timeout = 60);

static struct sessd_client *connect_through(bool sealed)
{
	struct sessd_options opts = {.timeout_ms = LONG_TIMEOUT_MS,
	                             .client_name = "faults-test",
	                             .auth = AUTH_SECRET,
	                             .auth_len = strlen(AUTH_SECRET),
	                             .plain_auth = !sealed};
	struct sessd_client *c = NULL;
	int rc;

	rc = sessd_connect(proxy.url, &opts, &c);
	cr_assert_eq(rc, SESSD_OK, "connect %s: %s", proxy.url, sessd_strerror(rc));
	return c;
}

static void set_str(struct sessd_client *c, const char *id, const char *data)
{
	int rc = sessd_set(c, id, strlen(id), data, strlen(data), TTL_MS);

	cr_assert_eq(rc, SESSD_OK, "set %s: %s", id, sessd_errmsg(c));
}

/* GET ${id} and expect ${want} exactly. */
static void expect_get(struct sessd_client *c, const char *id, const char *want)
{
	void *data = NULL;
	size_t len = 0;
	int rc = sessd_get(c, id, strlen(id), &data, &len);

	cr_assert_eq(rc, SESSD_OK, "get %s: %s (%s)", id, sessd_strerror(rc), sessd_errmsg(c));
	cr_assert(len == strlen(want) && memcmp(data, want, len) == 0,
	          "get %s gave %.*s, not %s: another request's reply", id, (int)len, (char *)data,
	          want);
	free(data);
}

/* A GET of ${id} that must fail with ${want} within the timeout and a little. */
static void expect_get_fails(struct sessd_client *c, const char *id, int want, int64_t most_ms)
{
	void *data = (void *)1;
	size_t len = 1;
	int64_t t0 = harness_mono_ms();
	int rc = sessd_get(c, id, strlen(id), &data, &len);
	int64_t took = harness_mono_ms() - t0;

	cr_assert_eq(rc, want, "get %s: %s (%s), not %s", id, sessd_strerror(rc), sessd_errmsg(c),
	             sessd_strerror(want));
	cr_assert_null(data);
	cr_assert_lt(took, most_ms, "get %s took %lld ms", id, (long long)took);
}

/* Lift every fault; ${c}'s calls get the long timeout again. */
static void heal(struct sessd_client *c)
{
	cr_assert_eq(faultproxy_set(&proxy, FAULTPROXY_UP, FAULTPROXY_PASS, 0), 0);
	cr_assert_eq(faultproxy_set(&proxy, FAULTPROXY_DOWN, FAULTPROXY_PASS, 0), 0);
	cr_assert_eq(sessd_set_timeout(c, LONG_TIMEOUT_MS), SESSD_OK);
}

/* Put ${dir} under ${mode}; ${c}'s calls, which are to fail, get the short timeout. */
static void fault(struct sessd_client *c, enum faultproxy_dir dir, enum faultproxy_mode mode,
                  uint32_t arg)
{
	cr_assert_eq(faultproxy_set(&proxy, dir, mode, arg), 0);
	cr_assert_eq(sessd_set_timeout(c, TIMEOUT_MS), SESSD_OK);
}

/*
 * A byte at a time both ways: every frame (and sealed, every record) arrives in pieces, a
 * reply's header split from its body. Single calls, a batch of mixed requests and flashes
 * all come back whole and each to its own request.
 */
static void dribble(bool sealed)
{
	struct sessd_client *c = connect_through(sealed);
	struct sessd_batch *b = sessd_batch_new(c);
	struct sessd_flashes *f = NULL;
	const char *data;
	size_t len;
	int rc;

	set_str(c, "alice", "alice's cart");
	set_str(c, "bob", "bob's cart");
	cr_assert_eq(faultproxy_set(&proxy, FAULTPROXY_UP, FAULTPROXY_DRIBBLE, 0), 0);
	cr_assert_eq(faultproxy_set(&proxy, FAULTPROXY_DOWN, FAULTPROXY_DRIBBLE, 0), 0);
	expect_get(c, "bob", "bob's cart");
	expect_get(c, "alice", "alice's cart");
	rc = sessd_flash_push(c, "alice", 5, "info", "Saved", 5, TTL_MS, NULL);
	cr_assert_eq(rc, SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_not_null(b);
	for (int i = 0; i < 4; i++) {
		cr_assert_geq(sessd_batch_get(b, i % 2 ? "alice" : "bob", i % 2 ? 5 : 3), 0);
		cr_assert_geq(sessd_batch_ping(b), 0);
	}
	rc = sessd_batch_run(b);
	cr_assert_eq(rc, SESSD_OK, "batch: %s", sessd_errmsg(c));
	for (size_t i = 0; i < 8; i += 2) {
		cr_assert_eq(sessd_batch_status(b, i), SESSD_OK);
		data = sessd_batch_data(b, i, &len);
		cr_assert_str_eq(data, i % 4 ? "alice's cart" : "bob's cart");
	}
	rc = sessd_flash_pop(c, "alice", 5, "info", &f);
	cr_assert_eq(rc, SESSD_OK, "pop: %s", sessd_errmsg(c));
	cr_assert(f->count == 1 && f->items[0].msg_len == 5 &&
	          memcmp(f->items[0].msg, "Saved", 5) == 0);
	sessd_flashes_free(f);
	heal(c);
	sessd_batch_free(b);
	sessd_close(c);
}

LEAK_CHECKED_TEST(faults, a_byte_at_a_time_plain)
{
	dribble(false);
}

LEAK_CHECKED_TEST(faults, a_byte_at_a_time_sealed)
{
	dribble(true);
}

/*
 * Replies that stop (a half-dead path) or come later than the timeout: the call fails with
 * SESSD_ERR_TIMEOUT within the timeout and a little, and the reply that then arrives late is
 * never taken for the next request's (alice's session read as bob's); once the path heals the
 * next call reconnects and gets its own data. A SET that timed out this way was carried out
 * (its request went through): sessd.h says so of a timeout. No descriptor is left behind.
 */
static void late_replies(bool sealed, enum faultproxy_mode mode, uint32_t arg)
{
	struct sessd_client *c = connect_through(sealed);
	int fds = harness_open_fds(), rc;
	long accepted;

	set_str(c, "alice", "alice's cart");
	set_str(c, "bob", "bob's cart");
	fault(c, FAULTPROXY_DOWN, mode, arg);
	rc = sessd_set(c, "carol", 5, "carol's cart", 12, TTL_MS);
	cr_assert_eq(rc, SESSD_ERR_TIMEOUT, "%s", sessd_errmsg(c));
	cr_assert_str_eq(sessd_errmsg(c), "no reply within 300 ms");
	/* The reconnection's HELLO meets the same path. */
	expect_get_fails(c, "alice", SESSD_ERR_CONNECT, TIMEOUT_MS + SLACK_MS);
	cr_assert(strstr(sessd_errmsg(c), "HELLO timed out") != NULL, "%s", sessd_errmsg(c));
	accepted = faultproxy_accepted(&proxy);
	heal(c);
	expect_get(c, "bob", "bob's cart");
	expect_get(c, "carol", "carol's cart");
	cr_assert_gt(faultproxy_accepted(&proxy), accepted, "the client reconnected");
	cr_assert_eq(harness_open_fds(), fds, "a descriptor was left behind");
	sessd_close(c);
}

LEAK_CHECKED_TEST(faults, stalled_replies_time_out_plain)
{
	late_replies(false, FAULTPROXY_STALL, 0);
}

LEAK_CHECKED_TEST(faults, stalled_replies_time_out_sealed)
{
	late_replies(true, FAULTPROXY_STALL, 0);
}

LEAK_CHECKED_TEST(faults, replies_later_than_the_timeout_plain)
{
	late_replies(false, FAULTPROXY_DELAY, 2 * TIMEOUT_MS);
}

LEAK_CHECKED_TEST(faults, replies_later_than_the_timeout_sealed)
{
	late_replies(true, FAULTPROXY_DELAY, 2 * TIMEOUT_MS);
}

/*
 * A connection cut in the middle of a reply (after its header and part of its body): the call
 * fails with SESSD_ERR_CLOSED at once, with words that say so, and the next call reconnects.
 */
static void cut_mid_reply(bool sealed)
{
	struct sessd_client *c = connect_through(sealed);

	set_str(c, "alice", "alice's cart, with enough bytes to be cut in the middle");
	fault(c, FAULTPROXY_DOWN, FAULTPROXY_CUT, 12);
	expect_get_fails(c, "alice", SESSD_ERR_CLOSED, SLACK_MS);
	cr_assert(strstr(sessd_errmsg(c), "reading from the server") != NULL ||
	              strstr(sessd_errmsg(c), "closed the connection") != NULL,
	          "%s", sessd_errmsg(c));
	heal(c);
	expect_get(c, "alice", "alice's cart, with enough bytes to be cut in the middle");
	sessd_close(c);
}

LEAK_CHECKED_TEST(faults, cut_mid_reply_plain)
{
	cut_mid_reply(false);
}

LEAK_CHECKED_TEST(faults, cut_mid_reply_sealed)
{
	cut_mid_reply(true);
}

/*
 * A path that swallows what the server sends from the start (a HELLO never answered): the
 * reconnection fails with SESSD_ERR_CONNECT, saying the HELLO timed out, within the connect's
 * and the HELLO's timeouts (sessd.h: each wait on its own).
 */
LEAK_CHECKED_TEST(faults, a_swallowed_hello_fails_within_the_timeouts)
{
	struct sessd_client *c = connect_through(true);
	int fds = harness_open_fds();

	fault(c, FAULTPROXY_DOWN, FAULTPROXY_BLACKHOLE, 0);
	expect_get_fails(c, "alice", SESSD_ERR_TIMEOUT, TIMEOUT_MS + SLACK_MS);
	expect_get_fails(c, "alice", SESSD_ERR_CONNECT, 2 * TIMEOUT_MS + SLACK_MS);
	cr_assert(strstr(sessd_errmsg(c), "HELLO timed out") != NULL, "%s", sessd_errmsg(c));
	heal(c);
	set_str(c, "alice", "back");
	expect_get(c, "alice", "back");
	cr_assert_eq(harness_open_fds(), fds, "a descriptor was left behind");
	sessd_close(c);
}

struct pop_call {
	struct sessd_client *client;
	struct sessd_flashes *flashes;
	int rc;
};

static void *pop_in_thread(void *arg)
{
	struct pop_call *call = arg;

	call->rc = sessd_flash_pop(call->client, "dave", 4, "info", &call->flashes);
	return NULL;
}

/*
 * sessd stopping right after it answered a FLASH_POP: its SHUTTING_DOWN follows the reply, and
 * the network hands the client the reply with only the start of the goodbye (a record's first
 * bytes, sealed). The pop was answered: its flash reaches the page, and the connection is not
 * used again. The relay holds the reply and the goodbye, then passes the reply and 3 bytes more
 * in one write and swallows the rest.
 */
static void goodbye_split_after_the_reply(bool sealed)
{
	struct sessd_client *c = connect_through(sealed);
	struct pop_call call = {.client = c, .rc = -1};
	pthread_t thread;
	long reply_bytes = 0, held;
	int64_t until = harness_mono_ms() + LONG_TIMEOUT_MS;
	int rc;

	rc = sessd_flash_push(c, "dave", 4, "info", "Payment received", 16, TTL_MS, NULL);
	cr_assert_eq(rc, SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(faultproxy_set(&proxy, FAULTPROXY_DOWN, FAULTPROXY_STALL, 0), 0);
	cr_assert_eq(pthread_create(&thread, NULL, pop_in_thread, &call), 0);
	while (reply_bytes <= 0 && harness_mono_ms() < until) {
		reply_bytes = faultproxy_held(&proxy, FAULTPROXY_DOWN);
		harness_sleep_ms(5);
	}
	cr_assert_gt(reply_bytes, 0, "sessd answered the pop");
	/* sessd stops: its SHUTTING_DOWN goes out after the reply, a record of its own. */
	cr_assert_eq(harness_stop(&daemon_), 0, "sessd stopped cleanly");
	do {
		held = faultproxy_held(&proxy, FAULTPROXY_DOWN);
		harness_sleep_ms(5);
	} while (held <= reply_bytes + 3 && harness_mono_ms() < until);
	cr_assert_gt(held, reply_bytes + 3, "the goodbye came after the reply (%ld, %ld bytes)",
	             reply_bytes, held);
	cr_assert_eq(faultproxy_set(&proxy, FAULTPROXY_DOWN, FAULTPROXY_BLACKHOLE,
	                            (uint32_t)reply_bytes + 3),
	             0);
	cr_assert_eq(pthread_join(thread, NULL), 0);
	cr_assert_eq(call.rc, SESSD_OK, "the answered pop failed: %s (%s)", sessd_strerror(call.rc),
	             sessd_errmsg(c));
	cr_assert(call.flashes->count == 1 && call.flashes->items[0].msg_len == 16 &&
	              memcmp(call.flashes->items[0].msg, "Payment received", 16) == 0,
	          "the pop's flash was not delivered");
	sessd_flashes_free(call.flashes);
	/* The connection is dropped, not reused: the next call finds no sessd. */
	expect_get_fails(c, "dave", SESSD_ERR_CONNECT, LONG_TIMEOUT_MS + SLACK_MS);
	sessd_close(c);
}

LEAK_CHECKED_TEST(faults, a_goodbye_split_after_the_reply_plain)
{
	goodbye_split_after_the_reply(false);
}

LEAK_CHECKED_TEST(faults, a_goodbye_split_after_the_reply_sealed)
{
	goodbye_split_after_the_reply(true);
}

/*
 * A party on the path holds a sealed SET record (a login) and resets the client's side,
 * keeping sessd's open (PROTOCOL.md, "What sealing does not protect against"; mitm-48 measured
 * it with scripts/mitm-proxy.py hold). The call fails; the handle's next call retires that
 * connection before anything else (RETIRE), so the record, let through after the logout, is
 * not carried out. Before RETIRE it was, and the logged-out session came back. ${batch}: the
 * SET goes in a batch behind a GET, and the logout is a batch too (sessd_batch_run makes its
 * connection as a single call does, and owes the RETIRE as one does).
 */
static void held_set_then_logout(bool batch)
{
	struct sessd_client *c = connect_through(true);
	struct sessd_batch *b = NULL;
	const char *id = batch ? "held-batch-login" : "held-login";
	int64_t t0;
	int rc;

	cr_assert_eq(sessd_ping(c), SESSD_OK);
	cr_assert_eq(faultproxy_set(&proxy, FAULTPROXY_UP, FAULTPROXY_HOLD, 0), 0);
	sessd_set_timeout(c, 300);
	if (batch) {
		b = sessd_batch_new(c);
		cr_assert_not_null(b);
		cr_assert_geq(sessd_batch_get(b, id, strlen(id)), 0);
		cr_assert_geq(sessd_batch_set(b, id, strlen(id), "alice", 5, TTL_MS), 0);
		rc = sessd_batch_run(b);
		cr_assert_eq(sessd_batch_status(b, 1), rc, "the SET shares the batch's failure");
	} else {
		rc = sessd_set(c, id, strlen(id), "alice", 5, TTL_MS);
	}
	cr_assert_eq(rc, SESSD_ERR_TIMEOUT, "the held SET: %s", sessd_strerror(rc));
	cr_assert_gt(faultproxy_held(&proxy, FAULTPROXY_UP), 0, "the relay holds nothing");
	/* The logout, on a new connection (which the hold lets pass). */
	sessd_set_timeout(c, LONG_TIMEOUT_MS);
	if (batch) {
		sessd_batch_free(b);
		b = sessd_batch_new(c);
		cr_assert_not_null(b);
		cr_assert_geq(sessd_batch_destroy(b, id, strlen(id)), 0);
		cr_assert_eq(sessd_batch_run(b), SESSD_OK, "%s", sessd_errmsg(c));
		rc = sessd_batch_status(b, 0);
		sessd_batch_free(b);
	} else {
		rc = sessd_destroy(c, id, strlen(id));
	}
	cr_assert_eq(rc, SESSD_NOT_FOUND, "destroy: %s (%s)", sessd_strerror(rc), sessd_errmsg(c));
	/* The held record goes to sessd at last, and has time to be carried out. */
	cr_assert_eq(faultproxy_set(&proxy, FAULTPROXY_UP, FAULTPROXY_PASS, 0), 0);
	t0 = harness_mono_ms();
	while (faultproxy_held(&proxy, FAULTPROXY_UP) > 0 && harness_mono_ms() - t0 < 2000)
		usleep(10000);
	usleep(300000);
	expect_get_fails(c, id, SESSD_NOT_FOUND, LONG_TIMEOUT_MS);
	sessd_close(c);
}

LEAK_CHECKED_TEST(faults, a_held_set_lets_through_after_the_logout_lands_nowhere)
{
	held_set_then_logout(false);
}

LEAK_CHECKED_TEST(faults, a_held_batch_set_lets_through_after_the_logout_lands_nowhere)
{
	held_set_then_logout(true);
}
