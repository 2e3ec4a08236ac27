/*
 * The real daemon under steps of its wall clock (clockshift.so, preloaded into it, adds the
 * milliseconds this test writes to a file to every CLOCK_REALTIME reading; its monotonic clock
 * runs on, as under NTP or date(1)). PROTOCOL.md ("Sessions"): a step forward ends at once
 * every session whose instant it passes, and the timer reclaims them; a step back lengthens
 * what is left by the step; a session once gone stays gone, in the running daemon and after a
 * kill -9 or a SIGTERM and a restart on its data directory with the clock stepped back (DATA.md,
 * CLOCK: without the CLOCK record the log would replay the expired sessions as live). The
 * bounds allow the test ten minutes of its own time; nothing is timed.
 */
#include <criterion/criterion.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "leakcheck.h"
#include "sessd.h"

#define HOUR_MS 3600000ull
/* How much of a lifetime the test's own steps may take: a bound, not a timing. */
#define SLACK_MS 600000ull

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

/* Write ${ms} to the shift file: every clock reading of the daemon from now on is that far off. */
static void step_to(const char *shift_file, long long ms)
{
	char tmp[96];
	FILE *f;

	/* Renamed over it, so that the daemon never reads half a number. */
	snprintf(tmp, sizeof(tmp), "%s.new", shift_file);
	f = fopen(tmp, "w");
	cr_assert_not_null(f);
	cr_assert_gt(fprintf(f, "%lld\n", ms), 0);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(rename(tmp, shift_file), 0);
}

/* Make the daemons this test starts read their wall clock through clockshift.so and
 * ${shift_file}; what the environment was goes to ${saved}. */
static void preload_clockshift(const char *shift_file, struct harness_preload *saved)
{
	const char *so = getenv("SESSD_CLOCKSHIFT_SO");

	cr_assert_not_null(so, "SESSD_CLOCKSHIFT_SO is not set (meson test sets it to the build's "
	                       "tests/integration/clockshift.so)");
	harness_preload(saved, so, NULL);
	cr_assert_eq(setenv("SESSD_CLOCKSHIFT_FILE", shift_file, 1), 0);
}

static struct sessd_client *connect_to(const char *url)
{
	struct sessd_options opts = {.timeout_ms = 10000, .ns = "app", .client_name = "clock-test"};
	struct sessd_client *c = NULL;
	int rc = sessd_connect(url, &opts, &c);

	cr_assert_eq(rc, SESSD_OK, "connect %s: %s", url, sessd_strerror(rc));
	return c;
}

static void set(struct sessd_client *c, const char *id, uint64_t ttl_ms)
{
	int rc = sessd_set(c, id, strlen(id), "data", 4, ttl_ms);

	cr_assert_eq(rc, SESSD_OK, "SET %s: %s", id, sessd_strerror(rc));
}

/* The session's remaining lifetime, which must lie in (${low}, ${high}]. */
static void expect_ttl(struct sessd_client *c, const char *id, uint64_t low, uint64_t high,
                       const char *when)
{
	uint64_t left = 0;
	int rc = sessd_ttl(c, id, strlen(id), &left);

	cr_assert_eq(rc, SESSD_OK, "%s: TTL %s: %s", when, id, sessd_strerror(rc));
	cr_assert(left > low && left <= high, "%s: %s has %llu ms left, not in (%llu, %llu]", when,
	          id, (unsigned long long)left, (unsigned long long)low, (unsigned long long)high);
}

static void expect_gone(struct sessd_client *c, const char *id, const char *when)
{
	uint64_t left = 0;
	void *data = NULL;
	size_t len = 0;

	cr_assert_eq(sessd_ttl(c, id, strlen(id), &left), SESSD_NOT_FOUND,
	             "%s: %s is there (%llu ms left)", when, id, (unsigned long long)left);
	cr_assert_eq(sessd_get(c, id, strlen(id), &data, &len), SESSD_NOT_FOUND,
	             "%s: GET %s found it", when, id);
}

static uint64_t stat_of(struct sessd_client *c, const char *name)
{
	struct sessd_stats *s = NULL;
	uint64_t v = UINT64_MAX;

	cr_assert_eq(sessd_stats(c, 1, &s), SESSD_OK);
	for (size_t i = 0; i < s->count; i++)
		if (strcmp(s->items[i].name, name) == 0)
			v = s->items[i].value;
	sessd_stats_free(s);
	cr_assert_neq(v, UINT64_MAX, "STATS has no %s", name);
	return v;
}

/* Poll until the daemon's timer has reclaimed ${n} expired sessions in all. */
static void wait_reclaimed(struct sessd_client *c, uint64_t n)
{
	long until = harness_mono_ms() + 60000;

	while (stat_of(c, "expired_total") < n) {
		cr_assert_lt(harness_mono_ms(), until, "the expiry did not reclaim %llu sessions",
		             (unsigned long long)n);
		harness_sleep_ms(20);
	}
}

LEAK_CHECKED_TEST_OPTS(clock, steps_end_sessions_at_once_and_bring_none_back, .timeout = 240)
{
	char data_dir[64] = "/tmp/sessd-clock-XXXXXX", shift_file[96];
	const char *args[] = {"--data-dir", data_dir, "--fsync", "always", NULL};
	struct harness_preload preload;
	struct harness_daemon d;
	struct sessd_client *c;
	size_t queued = 0;
	uint64_t reclaimed;

	cr_assert_not_null(mkdtemp(data_dir));
	snprintf(shift_file, sizeof(shift_file), "%s.shift", data_dir);
	step_to(shift_file, 0);
	preload_clockshift(shift_file, &preload);
	cr_assert_eq(harness_start(&d, args), 0);
	c = connect_to(d.unix_url);
	set(c, "hour", HOUR_MS);
	set(c, "three", 3 * HOUR_MS);
	set(c, "moved", HOUR_MS);
	cr_assert_eq(sessd_touch(c, "moved", 5, 3 * HOUR_MS), SESSD_OK);
	cr_assert_eq(sessd_flash_push(c, "flashes", 7, "info", "hi", 2, HOUR_MS, &queued),
	             SESSD_OK);

	/* Two hours forward: what had an hour is gone at once, the rest has an hour left. */
	step_to(shift_file, (long long)(2 * HOUR_MS));
	expect_gone(c, "hour", "2 h forward");
	expect_gone(c, "flashes", "2 h forward");
	expect_ttl(c, "three", HOUR_MS - SLACK_MS, HOUR_MS, "2 h forward");
	expect_ttl(c, "moved", HOUR_MS - SLACK_MS, HOUR_MS, "2 h forward");
	wait_reclaimed(c, 2);
	/* A change after the expiry: the CLOCK record goes ahead of it, in the same commit. */
	set(c, "after", HOUR_MS);

	/* Back to the true time: what is left lives two hours longer; nothing comes back. */
	step_to(shift_file, 0);
	expect_gone(c, "hour", "stepped back");
	expect_gone(c, "flashes", "stepped back");
	expect_ttl(c, "three", 3 * HOUR_MS - SLACK_MS, 3 * HOUR_MS, "stepped back");
	expect_ttl(c, "after", 3 * HOUR_MS - SLACK_MS, 3 * HOUR_MS, "stepped back");

	/* A crash and a start on the true clock: the log's SETs of "hour" and "flashes" would
	 * make them live again, but for the CLOCK record. */
	sessd_close(c);
	cr_assert_eq(harness_kill(&d), 0);
	cr_assert_eq(harness_restart(&d, args), 0);
	c = connect_to(d.unix_url);
	expect_gone(c, "hour", "after a kill -9");
	expect_gone(c, "flashes", "after a kill -9");
	expect_ttl(c, "three", 3 * HOUR_MS - SLACK_MS, 3 * HOUR_MS, "after a kill -9");
	expect_ttl(c, "moved", 3 * HOUR_MS - SLACK_MS, 3 * HOUR_MS, "after a kill -9");
	expect_ttl(c, "after", 3 * HOUR_MS - SLACK_MS, 3 * HOUR_MS, "after a kill -9");

	/* Forward again past "short", its expiry reclaimed, and no change after it: a clean stop
	 * writes the CLOCK record. Restarted on the true clock, it stays gone. */
	set(c, "short", HOUR_MS);
	reclaimed = stat_of(c, "expired_total");
	step_to(shift_file, (long long)(HOUR_MS + HOUR_MS / 2));
	expect_gone(c, "short", "90 min forward");
	wait_reclaimed(c, reclaimed + 1);
	sessd_close(c);
	cr_assert_eq(harness_stop(&d), 0);
	step_to(shift_file, 0);
	cr_assert_eq(harness_start(&d, args), 0);
	c = connect_to(d.tcp_url);
	expect_gone(c, "short", "after a SIGTERM");
	expect_gone(c, "hour", "after a SIGTERM");
	expect_ttl(c, "three", 3 * HOUR_MS - SLACK_MS, 3 * HOUR_MS, "after a SIGTERM");
	sessd_close(c);
	cr_assert_eq(harness_stop(&d), 0);
	harness_preload_restore(&preload);
	unsetenv("SESSD_CLOCKSHIFT_FILE");
	nftw(data_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	unlink(shift_file);
}
