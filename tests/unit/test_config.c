/*
 * Command-line parsing: options, sizes, listen URLs, the runtime directory, bad input.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "leakcheck.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static char *err_text;
static size_t err_len;
static FILE *err;

static void setup(void)
{
	err = open_memstream(&err_text, &err_len);
	cr_assert_not_null(err);
	unsetenv("RUNTIME_DIRECTORY");
	unsetenv("XDG_RUNTIME_DIR");
}

static void teardown(void)
{
	fclose(err);
	free(err_text);
}

TestSuite(config, .init = setup, .fini = teardown);

/* Parse and expect failure with a message; the config is freed. */
static void expect_bad(int argc, char **argv)
{
	struct config cfg;

	cr_assert_eq(config_parse(&cfg, argc, argv, err), -1, "'%s %s' should fail", argv[1],
	             argc > 2 ? argv[2] : "");
	config_finish(&cfg);
	fflush(err);
	cr_assert_gt(err_len, 0, "a message was written");
}

LEAK_CHECKED_TEST(config, defaults)
{
	char *argv[] = {"sessd"};
	struct config cfg;

	setenv("RUNTIME_DIRECTORY", "/run/sessd-test", 1);
	cr_assert_eq(config_parse(&cfg, ARGC(argv), argv, err), 0);
	cr_assert_eq(cfg.action, CONFIG_RUN);
	cr_assert_eq(cfg.max_frame, 1048576);
	cr_assert_eq(cfg.max_memory, 0);
	cr_assert(cfg.max_memory_auto);
	cr_assert_eq(cfg.max_client_memory, 256u * 1024 * 1024);
	cr_assert_eq(cfg.max_connections, 10000);
	cr_assert_eq(cfg.hello_timeout_s, 10);
	cr_assert_eq(cfg.tcp_keepalive_s, 60);
	cr_assert_eq(cfg.auth_grace_s, 3600);
	cr_assert_eq(cfg.auth_plain, AUTH_PLAIN_LOOPBACK, "plain only where no network sees it");
	cr_assert_eq(cfg.log_level, LOG_INFO);
	cr_assert_eq(cfg.fsync, PERSIST_FSYNC_EVERYSEC);
	cr_assert_eq(cfg.snapshot_log_bytes, 0, "0: the persistence layer's default");
	cr_assert_eq(cfg.snapshot_idle_s, 60);
	cr_assert_null(cfg.data_dir);
	cr_assert_null(cfg.ready_file);
	cr_assert_eq(cfg.n_listens, 2);
	cr_assert_eq(cfg.listens[0].kind, CONFIG_LISTEN_UNIX);
	cr_assert_str_eq(cfg.listens[0].path, "/run/sessd-test/sessd.sock");
	cr_assert_str_eq(cfg.listens[0].make_dir, "/run/sessd-test");
	cr_assert_eq(cfg.listens[1].kind, CONFIG_LISTEN_TCP);
	cr_assert_str_eq(cfg.listens[1].host, "127.0.0.1");
	cr_assert_eq(cfg.listens[1].port, 7077);
	config_finish(&cfg);
}

LEAK_CHECKED_TEST(config, every_option)
{
	char *argv[] = {"sessd",
	                "--listen",
	                "tcp://0.0.0.0:0",
	                "--listen=tcp://[::1]:9000",
	                "--listen",
	                "unix:/tmp/x.sock",
	                "--max-frame",
	                "64K",
	                "--max-memory",
	                "512M",
	                "--max-client-memory",
	                "256K",
	                "--max-connections",
	                "5",
	                "--hello-timeout",
	                "3",
	                "--tcp-keepalive",
	                "0",
	                "--auth-grace",
	                "0",
	                "--auth-file",
	                "/etc/sessd.secret",
	                "--log-level",
	                "debug",
	                "--ready-file",
	                "/tmp/ready",
	                "--data-dir",
	                "/var/lib/sessd",
	                "--fsync",
	                "always",
	                "--key-file",
	                "/etc/sessd.key",
	                "--snapshot-log-bytes",
	                "8M",
	                "--snapshot-idle",
	                "0"};
	struct config cfg;

	cr_assert_eq(config_parse(&cfg, ARGC(argv), argv, err), 0);
	cr_assert_eq(cfg.n_listens, 3, "explicit listeners replace the defaults");
	cr_assert_eq(cfg.listens[0].kind, CONFIG_LISTEN_TCP);
	cr_assert_str_eq(cfg.listens[0].host, "0.0.0.0");
	cr_assert_eq(cfg.listens[0].port, 0);
	cr_assert_str_eq(cfg.listens[1].host, "::1");
	cr_assert_eq(cfg.listens[1].port, 9000);
	cr_assert_eq(cfg.listens[2].kind, CONFIG_LISTEN_UNIX);
	cr_assert_str_eq(cfg.listens[2].path, "/tmp/x.sock");
	cr_assert_str_eq(cfg.listens[2].make_dir, "");
	cr_assert_eq(cfg.max_frame, 65536);
	cr_assert_eq(cfg.max_memory, 512ull * 1024 * 1024);
	cr_assert_not(cfg.max_memory_auto);
	cr_assert_eq(cfg.max_client_memory, 256u * 1024);
	cr_assert_eq(cfg.max_connections, 5);
	cr_assert_eq(cfg.hello_timeout_s, 3);
	cr_assert_eq(cfg.tcp_keepalive_s, 0, "0: no probes");
	cr_assert_eq(cfg.auth_grace_s, 0, "0: the old secret is refused at once");
	cr_assert_eq(cfg.log_level, LOG_DEBUG);
	cr_assert_str_eq(cfg.ready_file, "/tmp/ready");
	cr_assert_str_eq(cfg.data_dir, "/var/lib/sessd");
	cr_assert_eq(cfg.fsync, PERSIST_FSYNC_ALWAYS);
	cr_assert_str_eq(cfg.key_file, "/etc/sessd.key");
	cr_assert_eq(cfg.snapshot_log_bytes, 8ull * 1024 * 1024);
	cr_assert_eq(cfg.snapshot_idle_s, 0, "0: no snapshots of a quiet log");
	config_finish(&cfg);
}

LEAK_CHECKED_TEST(config, fsync_and_log_levels)
{
	const char *fs[] = {"always", "everysec", "no"};
	const enum persist_fsync fv[] = {PERSIST_FSYNC_ALWAYS, PERSIST_FSYNC_EVERYSEC,
	                                 PERSIST_FSYNC_NO};
	const char *ls[] = {"debug", "info", "warn", "error"};
	struct config cfg;

	for (int i = 0; i < 3; i++) {
		char *argv[] = {"sessd",       "--fsync",    (char *)fs[i],   "--listen",
		                "unix:/tmp/s", "--data-dir", "/var/lib/sessd"};

		cr_assert_eq(config_parse(&cfg, ARGC(argv), argv, err), 0);
		cr_assert_eq(cfg.fsync, fv[i]);
		config_finish(&cfg);
	}
	for (int i = 0; i < 4; i++) {
		char *argv[] = {"sessd", "--log-level", (char *)ls[i], "--listen", "unix:/tmp/s"};

		cr_assert_eq(config_parse(&cfg, ARGC(argv), argv, err), 0);
		cr_assert_eq(cfg.log_level, (enum log_level)i);
		config_finish(&cfg);
	}
}

/* --auth-plain: no, loopback or yes, with --auth-file only (without it nothing is checked). */
LEAK_CHECKED_TEST(config, auth_plain)
{
	const char *names[] = {"no", "loopback", "yes"};
	const enum auth_plain values[] = {AUTH_PLAIN_NO, AUTH_PLAIN_LOOPBACK, AUTH_PLAIN_YES};
	char *last[] = {"sessd", "--auth-file",     "/etc/s",   "--auth-plain",
	                "yes",   "--auth-plain=no", "--listen", "unix:/tmp/s"};
	char *bad_value[] = {"sessd", "--auth-file", "/etc/s", "--auth-plain", "local"};
	char *upper[] = {"sessd", "--auth-file", "/etc/s", "--auth-plain", "NO"};
	char *empty[] = {"sessd", "--auth-file", "/etc/s", "--auth-plain="};
	char *missing[] = {"sessd", "--auth-file", "/etc/s", "--auth-plain"};
	char *no_file[] = {"sessd", "--auth-plain", "no", "--listen", "unix:/tmp/s"};
	struct config cfg;

	for (int i = 0; i < 3; i++) {
		char *argv[] = {"sessd",  "--auth-plain", (char *)names[i], "--auth-file",
		                "/etc/s", "--listen",     "unix:/tmp/s"};

		cr_assert_eq(config_parse(&cfg, ARGC(argv), argv, err), 0, "%s", names[i]);
		cr_assert_eq(cfg.auth_plain, values[i], "%s", names[i]);
		config_finish(&cfg);
	}
	cr_assert_eq(config_parse(&cfg, ARGC(last), last, err), 0);
	cr_assert_eq(cfg.auth_plain, AUTH_PLAIN_NO, "the last one given counts");
	config_finish(&cfg);

	expect_bad(ARGC(bad_value), bad_value);
	fflush(err);
	cr_expect_not_null(strstr(err_text, "'local' is not no, loopback or yes"), "%s", err_text);
	expect_bad(ARGC(upper), upper);
	expect_bad(ARGC(empty), empty);
	expect_bad(ARGC(missing), missing);
	expect_bad(ARGC(no_file), no_file);
	fflush(err);
	cr_expect_not_null(strstr(err_text, "--auth-plain only goes with --auth-file"), "%s",
	                   err_text);
}

/* --when-full: refuse (the default) or drop-unread, which needs a memory limit to act on. */
LEAK_CHECKED_TEST(config, when_full)
{
	char *none[] = {"sessd", "--listen", "unix:/tmp/s"};
	char *drop[] = {"sessd", "--when-full", "drop-unread", "--listen", "unix:/tmp/s"};
	char *last[] = {"sessd",    "--when-full", "drop-unread", "--when-full=refuse",
	                "--listen", "unix:/tmp/s"};
	char *bad_value[] = {"sessd", "--when-full", "evict"};
	char *no_limit[] = {"sessd", "--max-memory", "0", "--when-full", "drop-unread"};
	struct config cfg;

	cr_assert_eq(config_parse(&cfg, ARGC(none), none, err), 0);
	cr_assert_not(cfg.drop_unread, "refusing is the default");
	config_finish(&cfg);
	cr_assert_eq(config_parse(&cfg, ARGC(drop), drop, err), 0);
	cr_assert(cfg.drop_unread);
	config_finish(&cfg);
	cr_assert_eq(config_parse(&cfg, ARGC(last), last, err), 0);
	cr_assert_not(cfg.drop_unread, "the last one given counts");
	config_finish(&cfg);
	expect_bad(ARGC(bad_value), bad_value);
	fflush(err);
	cr_expect_not_null(strstr(err_text, "'evict' is not refuse or drop-unread"), "%s",
	                   err_text);
	expect_bad(ARGC(no_limit), no_limit);
	fflush(err);
	cr_expect_not_null(strstr(err_text, "--when-full drop-unread needs a memory limit"), "%s",
	                   err_text);
}

/* --auth-grace rules the secret a SIGHUP replaces: without a secret to replace it is a
 * usage error, as --auth-plain is, rather than a setting that silently does nothing. */
LEAK_CHECKED_TEST(config, auth_grace_needs_a_secret)
{
	char *alone[] = {"sessd", "--auth-grace", "60", "--listen", "unix:/tmp/s"};
	char *apps[] = {"sessd", "--auth-file", "/etc/s", "--auth-grace", "60"};
	char *admin[] = {"sessd", "--admin-auth-file", "/etc/a", "--auth-grace", "60"};
	struct config cfg;

	expect_bad(ARGC(alone), alone);
	fflush(err);
	cr_expect_not_null(strstr(err_text, "--auth-grace only goes with --auth-file"), "%s",
	                   err_text);
	cr_assert_eq(config_parse(&cfg, ARGC(apps), apps, err), 0);
	cr_assert_eq(cfg.auth_grace_s, 60);
	config_finish(&cfg);
	cr_assert_eq(config_parse(&cfg, ARGC(admin), admin, err), 0);
	cr_assert_eq(cfg.auth_grace_s, 60);
	config_finish(&cfg);
}

/* --admin-auth-file: taken as given, alone or with --auth-file, lets --auth-plain be given,
 * and cannot be the --auth-file itself (every app would be an admin). */
LEAK_CHECKED_TEST(config, admin_auth_file)
{
	char *none[] = {"sessd", "--listen", "unix:/tmp/s"};
	char *both[] = {"sessd",      "--auth-file", "/etc/app",   "--admin-auth-file",
	                "/etc/admin", "--listen",    "unix:/tmp/s"};
	char *alone_plain[] = {"sessd", "--admin-auth-file", "/etc/admin", "--auth-plain",
	                       "no",    "--listen",          "unix:/tmp/s"};
	char *same[] = {"sessd",  "--auth-file", "/etc/s",     "--admin-auth-file",
	                "/etc/s", "--listen",    "unix:/tmp/s"};
	char *missing[] = {"sessd", "--admin-auth-file"};
	struct config cfg;

	cr_assert_eq(config_parse(&cfg, ARGC(none), none, err), 0);
	cr_expect_null(cfg.admin_auth_file, "none unless given: every connection is admin");
	config_finish(&cfg);
	cr_assert_eq(config_parse(&cfg, ARGC(both), both, err), 0);
	cr_expect_str_eq(cfg.auth_file, "/etc/app");
	cr_expect_str_eq(cfg.admin_auth_file, "/etc/admin");
	config_finish(&cfg);
	cr_assert_eq(config_parse(&cfg, ARGC(alone_plain), alone_plain, err), 0);
	cr_expect_null(cfg.auth_file);
	cr_expect_str_eq(cfg.admin_auth_file, "/etc/admin");
	cr_expect_eq(cfg.auth_plain, AUTH_PLAIN_NO, "--auth-plain guards the admin secret too");
	config_finish(&cfg);

	expect_bad(ARGC(same), same);
	fflush(err);
	cr_expect_not_null(strstr(err_text, "--admin-auth-file is the --auth-file"), "%s",
	                   err_text);
	expect_bad(ARGC(missing), missing);
	fflush(err);
	cr_expect_not_null(strstr(err_text, "--admin-auth-file needs a value"), "%s", err_text);
}

LEAK_CHECKED_TEST(config, sizes)
{
	uint64_t v;

	cr_assert_eq(config_parse_size("0", &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(config_parse_size("4096", &v), 0);
	cr_assert_eq(v, 4096);
	cr_assert_eq(config_parse_size("1k", &v), 0);
	cr_assert_eq(v, 1024);
	cr_assert_eq(config_parse_size("1K", &v), 0);
	cr_assert_eq(v, 1024);
	cr_assert_eq(config_parse_size("3M", &v), 0);
	cr_assert_eq(v, 3ull << 20);
	cr_assert_eq(config_parse_size("2g", &v), 0);
	cr_assert_eq(v, 2ull << 30);
	cr_assert_eq(config_parse_size("18446744073709551615", &v), 0);
	cr_assert_eq(v, UINT64_MAX);

	cr_assert_eq(config_parse_size("", &v), -1);
	cr_assert_eq(config_parse_size("K", &v), -1);
	cr_assert_eq(config_parse_size("-1", &v), -1);
	cr_assert_eq(config_parse_size("+1", &v), -1);
	cr_assert_eq(config_parse_size(" 1", &v), -1);
	cr_assert_eq(config_parse_size("1 ", &v), -1);
	cr_assert_eq(config_parse_size("12X", &v), -1);
	cr_assert_eq(config_parse_size("1KB", &v), -1);
	cr_assert_eq(config_parse_size("1.5M", &v), -1);
	cr_assert_eq(config_parse_size("18446744073709551616", &v), -1, "overflow");
	cr_assert_eq(config_parse_size("17179869184G", &v), -1, "overflow with a suffix");
}

LEAK_CHECKED_TEST(config, listen_urls)
{
	struct config_listen l;

	cr_assert_eq(config_parse_listen("tcp://127.0.0.1:7077", &l), 0);
	cr_assert_eq(l.kind, CONFIG_LISTEN_TCP);
	cr_assert_str_eq(l.host, "127.0.0.1");
	cr_assert_eq(l.port, 7077);
	cr_assert_eq(config_parse_listen("tcp://[::]:65535", &l), 0);
	cr_assert_str_eq(l.host, "::");
	cr_assert_eq(l.port, 65535);
	/* localhost binds where the clients' resolvers send it: 127.0.0.1. */
	cr_assert_eq(config_parse_listen("tcp://localhost:7078", &l), 0);
	cr_assert_str_eq(l.host, "127.0.0.1");
	cr_assert_eq(l.port, 7078);
	cr_assert_eq(config_parse_listen("unix:relative.sock", &l), 0);
	cr_assert_eq(l.kind, CONFIG_LISTEN_UNIX);
	cr_assert_str_eq(l.path, "relative.sock");
	/* The forms libsessd, sessctl and connect-sessd take for a socket name it here too. */
	cr_assert_eq(config_parse_listen("/tmp/sock", &l), 0);
	cr_assert_eq(l.kind, CONFIG_LISTEN_UNIX);
	cr_assert_str_eq(l.path, "/tmp/sock");
	cr_assert_eq(config_parse_listen("unix:///run/sessd/sessd.sock", &l), 0);
	cr_assert_eq(l.kind, CONFIG_LISTEN_UNIX);
	cr_assert_str_eq(l.path, "/run/sessd/sessd.sock");

	const char *bad[] = {"",
	                     "unix:",
	                     "tcp://",
	                     "tcp://127.0.0.1",
	                     "tcp://127.0.0.1:",
	                     "tcp://127.0.0.1:65536",
	                     "tcp://127.0.0.1:-1",
	                     "tcp://127.0.0.1:80x",
	                     "tcp://[localhost]:80",
	                     "tcp://example.com:80",
	                     "tcp://::1:80",
	                     "tcp://[::1:80",
	                     "tcp://[127.0.0.1]:80",
	                     "tcp://[::1]80",
	                     "tcp://:80",
	                     "udp://127.0.0.1:80",
	                     "unix://x.sock",
	                     "unix://",
	                     "tmp/sock",
	                     ("/a/path/that/is/far/too/long/for/a/unix/socket/address/which/holds/"
	                      "only/one/hundred/and/eight/bytes/including/its/nul/xyz.sock"),
	                     ("unix:/a/path/that/is/far/too/long/for/a/unix/socket/address/which/"
	                      "holds/only/one/hundred/and/eight/bytes/including/its/nul/x.sock")};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(config_parse_listen(bad[i], &l), -1, "'%s' must be refused", bad[i]);
}

LEAK_CHECKED_TEST(config, runtime_dir)
{
	char dir[108];

	setenv("RUNTIME_DIRECTORY", "/run/one:/run/two", 1);
	cr_assert_eq(config_runtime_dir(dir, sizeof(dir)), 0);
	cr_assert_str_eq(dir, "/run/one");
	unsetenv("RUNTIME_DIRECTORY");
	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	cr_assert_eq(config_runtime_dir(dir, sizeof(dir)), 0);
	cr_assert_str_eq(dir, "/run/user/1000/sessd");
	unsetenv("XDG_RUNTIME_DIR");
	cr_assert_eq(config_runtime_dir(dir, sizeof(dir)), 0);
	if (geteuid() == 0) {
		cr_assert_str_eq(dir, "/run/sessd");
	} else {
		char want[64];

		snprintf(want, sizeof(want), "/tmp/sessd-%lu", (unsigned long)geteuid());
		cr_assert_str_eq(dir, want);
	}
	cr_assert_eq(config_runtime_dir(dir, 4), -1, "too small a buffer");
}

LEAK_CHECKED_TEST(config, max_frame_bounds)
{
	struct config cfg;
	char *low[] = {"sessd", "--max-frame", "4095"};
	char *min[] = {"sessd", "--max-frame", "4096", "--listen", "unix:/tmp/s"};
	char *huge[] = {"sessd", "--max-frame", "2G"};

	expect_bad(ARGC(low), low);
	cr_assert_eq(config_parse(&cfg, ARGC(min), min, err), 0);
	cr_assert_eq(cfg.max_frame, CODEC_MIN_MAX_FRAME);
	config_finish(&cfg);
	expect_bad(ARGC(huge), huge);
}

/* --max-client-memory must hold two whole frames; unless given, it grows with --max-frame. */
LEAK_CHECKED_TEST(config, input_memory_and_frames)
{
	char *big_frames[] = {"sessd", "--max-frame", "128M", "--listen", "unix:/tmp/s"};
	/* "At least twice --max-frame", as the help says: 128K for 64K frames, not 8 bytes more. */
	char *two[] = {"sessd", "--max-frame", "64K", "--max-client-memory", "128K"};
	char *under_two[] = {"sessd", "--max-frame", "64K", "--max-client-memory", "131071"};
	char *zero[] = {"sessd", "--max-client-memory", "0"};
	struct config cfg;

	cr_assert_eq(config_parse(&cfg, ARGC(big_frames), big_frames, err), 0);
	cr_assert_eq(cfg.max_client_memory, 4 * (128u * 1024 * 1024 + CODEC_HEADER_BYTES));
	config_finish(&cfg);
	cr_assert_eq(config_parse(&cfg, ARGC(two), two, err), 0);
	cr_assert_eq(cfg.max_client_memory, 2 * 64u * 1024);
	config_finish(&cfg);
	expect_bad(ARGC(under_two), under_two);
	expect_bad(ARGC(zero), zero);
}

LEAK_CHECKED_TEST(config, bad_values)
{
	char *a[] = {"sessd", "--max-memory", "lots"};
	char *b[] = {"sessd", "--max-connections", "0"};
	char *c[] = {"sessd", "--max-connections", "many"};
	char *d[] = {"sessd", "--log-level", "loud"};
	char *e[] = {"sessd", "--fsync", "sometimes"};
	char *f[] = {"sessd", "--listen", "http://127.0.0.1:80"};
	char *g[] = {"sessd", "--snapshot-log-bytes", "64X"};
	char *h[] = {"sessd", "--auth-file", "/etc/s", "--auth-grace", "604801"};

	expect_bad(ARGC(g), g);
	expect_bad(ARGC(h), h);
	expect_bad(ARGC(a), a);
	expect_bad(ARGC(b), b);
	expect_bad(ARGC(c), c);
	expect_bad(ARGC(d), d);
	expect_bad(ARGC(e), e);
	expect_bad(ARGC(f), f);
}

/* Parse and expect failure with exactly the message ${want} (its first line). */
static void expect_message(int argc, char **argv, const char *want)
{
	size_t before;

	fflush(err);
	before = err_len;
	expect_bad(argc, argv);
	cr_assert_eq(strlen(err_text), err_len, "no NUL byte in the message");
	cr_expect_eq(strncmp(err_text + before, want, strlen(want)), 0,
	             "'%s' should say '%s', not '%s'", argv[1], want, err_text + before);
}

/* A missing value is named, not "unknown option '-\0'"; nothing prints a NUL or a stray byte. */
LEAK_CHECKED_TEST(config, missing_values_and_unknown_options_are_named)
{
	const char *takes_value[] = {
	    "listen",          "max-frame",     "max-memory",         "max-client-memory",
	    "max-connections", "hello-timeout", "log-level",          "ready-file",
	    "data-dir",        "fsync",         "key-file",           "auth-file",
	    "auth-grace",      "auth-plain",    "snapshot-log-bytes", "check-data",
	    "snapshot-idle",   "backup",        "tcp-keepalive",      "when-full"};
	char *bogus[] = {"sessd", "--bogus=1"};
	char *short_opt[] = {"sessd", "-x"};
	char *cluster[] = {"sessd", "-xV"};
	char *high_byte[] = {"sessd", "-\xc3"};
	char *control[] = {"sessd", "-\x01"};
	char *repair_value[] = {"sessd", "--repair=yes"};
	char *help_value[] = {"sessd", "--help=1"};
	char *version_value[] = {"sessd", "--version=2"};
	char *ambiguous[] = {"sessd", "--auth", "x"};
	char *abbreviated[] = {"sessd", "--list"};

	for (size_t i = 0; i < sizeof(takes_value) / sizeof(takes_value[0]); i++) {
		char opt[64], want[96];
		char *argv[] = {"sessd", opt};

		snprintf(opt, sizeof(opt), "--%s", takes_value[i]);
		snprintf(want, sizeof(want), "sessd: --%s needs a value\n", takes_value[i]);
		expect_message(ARGC(argv), argv, want);
	}
	expect_message(ARGC(bogus), bogus, "sessd: unknown option '--bogus'\n");
	expect_message(ARGC(short_opt), short_opt, "sessd: unknown option '-x'\n");
	expect_message(ARGC(cluster), cluster, "sessd: unknown option '-x'\n");
	expect_message(ARGC(high_byte), high_byte, "sessd: unknown option '-\\xc3'\n");
	expect_message(ARGC(control), control, "sessd: unknown option '-\\x01'\n");
	expect_message(ARGC(repair_value), repair_value, "sessd: --repair takes no value\n");
	expect_message(ARGC(help_value), help_value, "sessd: --help takes no value\n");
	expect_message(ARGC(version_value), version_value, "sessd: --version takes no value\n");
	expect_message(ARGC(ambiguous), ambiguous,
	               "sessd: option '--auth' is ambiguous: it could be --auth-file, "
	               "--auth-grace, --auth-plain\n");
	expect_message(ARGC(abbreviated), abbreviated, "sessd: --listen needs a value\n");
}

/*
 * --key-file, --fsync and --snapshot-log-bytes act on a data directory: without --data-dir
 * they would be ignored and the daemon would run memory-only, so they are usage errors, as
 * --auth-plain without --auth-file is. --check-data takes --key-file (encrypted data).
 */
LEAK_CHECKED_TEST(config, data_options_need_a_data_dir)
{
	char *key[] = {"sessd", "--key-file", "/nonexistent", "--listen", "unix:/tmp/s"};
	char *fsync[] = {"sessd", "--fsync", "always", "--listen", "unix:/tmp/s"};
	char *snapshot[] = {"sessd", "--snapshot-log-bytes", "5", "--listen", "unix:/tmp/s"};
	char *all[] = {"sessd",   "--key-file", "/nonexistent",
	               "--fsync", "always",     "--snapshot-log-bytes",
	               "5"};
	char *with_dir[] = {"sessd",   "--key-file", "/k",
	                    "--fsync", "no",         "--snapshot-log-bytes",
	                    "5",       "--data-dir", "/var/lib/sessd"};
	char *check[] = {"sessd", "--check-data", "/var/lib/sessd", "--key-file", "/k"};
	struct config cfg;

	expect_message(ARGC(key), key, "sessd: --key-file only goes with --data-dir");
	expect_message(ARGC(fsync), fsync, "sessd: --fsync only goes with --data-dir\n");
	expect_message(ARGC(snapshot), snapshot,
	               "sessd: --snapshot-log-bytes only goes with --data-dir\n");
	expect_message(ARGC(all), all, "sessd: --key-file only goes with --data-dir");
	cr_assert_eq(config_parse(&cfg, ARGC(with_dir), with_dir, err), 0);
	config_finish(&cfg);
	cr_assert_eq(config_parse(&cfg, ARGC(check), check, err), 0);
	cr_assert_eq(cfg.action, CONFIG_CHECK_DATA);
	cr_assert_str_eq(cfg.key_file, "/k");
	config_finish(&cfg);
}

/*
 * --check-data reads the data directory and exits: an option of the running daemon would be
 * taken and do nothing (a --listen the operator expects to see bound, a --data-dir that is not
 * the directory checked), so each is refused by name, before or after --check-data. --repair,
 * --key-file and --log-level act on the check and are taken.
 */
LEAK_CHECKED_TEST(config, check_data_refuses_options_that_do_nothing_there)
{
	static const char *const run_only[][2] = {
	    {"listen", "tcp://127.0.0.1:7077"},
	    {"max-frame", "8192"},
	    {"max-memory", "1G"},
	    {"max-client-memory", "1G"},
	    {"max-connections", "10"},
	    {"hello-timeout", "5"},
	    {"tcp-keepalive", "30"},
	    {"ready-file", "/tmp/ready"},
	    {"data-dir", "/var/lib/sessd"},
	    {"fsync", "always"},
	    {"auth-file", "/etc/sessd/auth"},
	    {"admin-auth-file", "/etc/sessd/admin"},
	    {"auth-grace", "60"},
	    {"auth-plain", "no"},
	    {"snapshot-log-bytes", "64M"},
	    {"snapshot-idle", "60"},
	    {"when-full", "drop-unread"},
	};
	char *taken[] = {"sessd",      "--log-level", "warn",       "--check-data",
	                 "/var/lib/d", "--repair",    "--key-file", "/k"};
	struct config cfg;

	for (size_t i = 0; i < sizeof(run_only) / sizeof(run_only[0]); i++) {
		char opt[64], want[160];
		char *after[] = {"sessd", "--check-data", "/var/lib/d", opt,
		                 (char *)run_only[i][1]};
		char *before[] = {"sessd", opt, (char *)run_only[i][1], "--check-data",
		                  "/var/lib/d"};

		snprintf(opt, sizeof(opt), "--%s", run_only[i][0]);
		snprintf(want, sizeof(want),
		         "sessd: --%s has no effect with --check-data, which takes only --repair, "
		         "--key-file and --log-level\n",
		         run_only[i][0]);
		expect_message(ARGC(after), after, want);
		expect_message(ARGC(before), before, want);
	}
	cr_assert_eq(config_parse(&cfg, ARGC(taken), taken, err), 0);
	cr_assert_eq(cfg.action, CONFIG_CHECK_DATA);
	cr_assert_str_eq(cfg.check_data_dir, "/var/lib/d");
	cr_assert(cfg.repair);
	cr_assert_str_eq(cfg.key_file, "/k");
	cr_assert_eq(cfg.log_level, LOG_WARN);
	config_finish(&cfg);
}

/*
 * --backup DIR DEST copies a data directory and exits: it takes the destination as its one
 * argument that is no option's, wherever it stands, and --key-file and --log-level. An
 * option of the running daemon, --repair, --check-data or a second argument would be taken
 * and do nothing, and a missing or empty destination is no backup: each is refused by name.
 */
LEAK_CHECKED_TEST(config, backup_takes_a_destination_and_only_its_options)
{
	char *taken[] = {"sessd", "--backup", "/var/lib/sessd", "/srv/b", "--key-file", "/k"};
	char *dest_first[] = {"sessd", "/srv/b", "--log-level", "warn", "--backup", "/var/lib/d"};
	char *no_dest[] = {"sessd", "--backup", "/var/lib/sessd"};
	char *empty_dest[] = {"sessd", "--backup", "/var/lib/sessd", ""};
	char *two_dests[] = {"sessd", "--backup", "/var/lib/sessd", "/srv/b", "/srv/c"};
	char *listen[] = {"sessd", "--backup", "/var/lib/d", "/srv/b", "--listen", "unix:/tmp/s"};
	char *data_dir[] = {"sessd", "--data-dir", "/var/lib/d", "--backup", "/var/lib/d", "/b"};
	char *repair[] = {"sessd", "--backup", "/var/lib/d", "/srv/b", "--repair"};
	char *check[] = {"sessd", "--backup", "/var/lib/d", "/srv/b", "--check-data", "/d"};
	struct config cfg;

	cr_assert_eq(config_parse(&cfg, ARGC(taken), taken, err), 0);
	cr_assert_eq(cfg.action, CONFIG_BACKUP);
	cr_assert_str_eq(cfg.backup_dir, "/var/lib/sessd");
	cr_assert_str_eq(cfg.backup_dest, "/srv/b");
	cr_assert_str_eq(cfg.key_file, "/k");
	config_finish(&cfg);
	cr_assert_eq(config_parse(&cfg, ARGC(dest_first), dest_first, err), 0);
	cr_assert_eq(cfg.action, CONFIG_BACKUP);
	cr_assert_str_eq(cfg.backup_dir, "/var/lib/d");
	cr_assert_str_eq(cfg.backup_dest, "/srv/b");
	cr_assert_eq(cfg.log_level, LOG_WARN);
	config_finish(&cfg);
	expect_message(ARGC(no_dest), no_dest,
	               "sessd: --backup needs a destination: sessd --backup DATA_DIR DEST_DIR\n");
	expect_message(ARGC(empty_dest), empty_dest,
	               "sessd: --backup is given an empty destination (a variable such as "
	               "${STATE_DIRECTORY} that is not set?)\n");
	expect_message(ARGC(two_dests), two_dests, "sessd: unexpected argument '/srv/c'\n");
	expect_message(ARGC(listen), listen,
	               "sessd: --listen has no effect with --backup, which takes only --key-file "
	               "and --log-level\n");
	expect_message(ARGC(data_dir), data_dir,
	               "sessd: --data-dir has no effect with --backup, which takes only "
	               "--key-file and --log-level\n");
	expect_message(ARGC(repair), repair, "sessd: --repair only goes with --check-data\n");
	expect_message(ARGC(check), check,
	               "sessd: --backup and --check-data are two commands: give one\n");
}

/* The same address twice would fail at bind as "another daemon is listening". */
LEAK_CHECKED_TEST(config, a_listen_address_given_twice_is_refused)
{
	char *unix_twice[] = {"sessd", "--listen", "unix:/tmp/s", "--listen", "unix:/tmp/s"};
	char *tcp_twice[] = {"sessd", "--listen", "tcp://[::1]:7077", "--listen",
	                     "tcp://[0::1]:7077"};
	char *v4_twice[] = {"sessd", "--listen", "tcp://127.0.0.1:7077", "--listen",
	                    "tcp://127.0.0.1:7077"};
	char *ephemeral[] = {"sessd", "--listen", "tcp://127.0.0.1:0", "--listen",
	                     "tcp://127.0.0.1:0"};
	char *distinct[] = {"sessd",
	                    "--listen",
	                    "unix:/tmp/s",
	                    "--listen",
	                    "unix:/tmp/t",
	                    "--listen",
	                    "tcp://127.0.0.1:7077",
	                    "--listen",
	                    "tcp://127.0.0.2:7077"};
	struct config cfg;

	expect_message(ARGC(unix_twice), unix_twice,
	               "sessd: --listen unix:/tmp/s is given twice\n");
	expect_message(ARGC(tcp_twice), tcp_twice,
	               "sessd: --listen tcp://[0::1]:7077 is given twice\n");
	expect_message(ARGC(v4_twice), v4_twice,
	               "sessd: --listen tcp://127.0.0.1:7077 is given twice\n");
	cr_assert_eq(config_parse(&cfg, ARGC(ephemeral), ephemeral, err), 0, "two fresh ports");
	config_finish(&cfg);
	cr_assert_eq(config_parse(&cfg, ARGC(distinct), distinct, err), 0);
	cr_assert_eq(cfg.n_listens, 4);
	config_finish(&cfg);
}

/* A bad number says what the option expects: a count, seconds or a size, not "a size". */
LEAK_CHECKED_TEST(config, bad_numbers_say_what_is_expected)
{
	char *connections[] = {"sessd", "--max-connections", "x"};
	char *hello[] = {"sessd", "--hello-timeout", "-3"};
	char *grace[] = {"sessd", "--auth-grace", "soon"};
	char *memory[] = {"sessd", "--max-memory", "lots"};

	expect_message(ARGC(connections), connections,
	               "sessd: --max-connections: 'x' is not a count\n");
	expect_message(ARGC(hello), hello,
	               "sessd: --hello-timeout: '-3' is not a number of seconds\n");
	expect_message(ARGC(grace), grace,
	               "sessd: --auth-grace: 'soon' is not a number of seconds\n");
	expect_message(ARGC(memory), memory, "sessd: --max-memory: 'lots' is not a size");
}

LEAK_CHECKED_TEST(config, bad_usage)
{
	char *a[] = {"sessd", "--no-such-option"};
	char *b[] = {"sessd", "--listen"};
	char *c[] = {"sessd", "stray"};
	char *d[] = {"sessd", "--repair"};
	char *e[] = {"sessd", "-x"};

	expect_bad(ARGC(a), a);
	expect_bad(ARGC(b), b);
	expect_bad(ARGC(c), c);
	expect_bad(ARGC(d), d);
	expect_bad(ARGC(e), e);
}

LEAK_CHECKED_TEST(config, actions)
{
	struct config cfg;
	char *help[] = {"sessd", "--help"};
	char *version[] = {"sessd", "--version"};
	char *check[] = {"sessd", "--check-data", "/var/lib/sessd", "--repair"};

	cr_assert_eq(config_parse(&cfg, ARGC(help), help, err), 0);
	cr_assert_eq(cfg.action, CONFIG_HELP);
	config_finish(&cfg);
	cr_assert_eq(config_parse(&cfg, ARGC(version), version, err), 0);
	cr_assert_eq(cfg.action, CONFIG_VERSION);
	config_finish(&cfg);
	cr_assert_eq(config_parse(&cfg, ARGC(check), check, err), 0);
	cr_assert_eq(cfg.action, CONFIG_CHECK_DATA);
	cr_assert_str_eq(cfg.check_data_dir, "/var/lib/sessd");
	cr_assert(cfg.repair);
	config_finish(&cfg);
}

LEAK_CHECKED_TEST(config, log_level_names)
{
	enum log_level l;

	cr_assert_eq(log_level_parse("warn", &l), 0);
	cr_assert_eq(l, LOG_WARN);
	cr_assert_eq(log_level_parse("WARN", &l), -1);
	cr_assert_eq(log_level_parse("", &l), -1);
}

/* A file ${path} under ${root} holding ${text}, its directories made as needed. */
static void put_file(const char *root, const char *path, const char *text)
{
	char full[4096];
	FILE *f;

	for (const char *slash = strchr(path + 1, '/'); slash != NULL;
	     slash = strchr(slash + 1, '/')) {
		snprintf(full, sizeof(full), "%s%.*s", root, (int)(slash - path), path);
		(void)mkdir(full, 0700);
	}
	snprintf(full, sizeof(full), "%s%s", root, path);
	f = fopen(full, "w");
	cr_assert_not_null(f, "%s", full);
	fputs(text, f);
	fclose(f);
}

/* A fresh directory standing for / in config_memory_limit's tests. */
static void fake_root(char *root, size_t size)
{
	snprintf(root, size, "/tmp/sessd-test-root-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	put_file(root, "/proc/meminfo",
	         "MemTotal:       24683584 kB\nMemFree:         1000000 kB\n");
}

static void remove_root(const char *root)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	cr_assert_eq(system(cmd), 0);
}

#define MEMTOTAL_BYTES (24683584ull * 1024)

/* The descriptor open(2) gives next: the lowest one not open. */
static int lowest_free_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	close(fd);
	return fd;
}

LEAK_CHECKED_TEST(config, memory_limit_is_physical_memory_without_a_cgroup_limit)
{
	char root[64], source[64];
	uint64_t bytes = 0;
	int next_fd;

	fake_root(root, sizeof(root));
	put_file(root, "/proc/self/cgroup", "0::/system.slice/sessd.service\n");
	put_file(root, "/sys/fs/cgroup/system.slice/sessd.service/memory.max", "max\n");
	next_fd = lowest_free_fd();
	cr_assert_eq(config_memory_limit(root, &bytes, source, sizeof(source)), 0);
	cr_assert_eq(bytes, MEMTOTAL_BYTES);
	cr_assert_str_eq(source, "physical memory");
	/* It closes what it read: no descriptor is left open for the daemon's life. */
	cr_assert_eq(lowest_free_fd(), next_fd);
	remove_root(root);
}

LEAK_CHECKED_TEST(config, memory_limit_is_the_cgroup_v2_limit_or_a_parent_slices)
{
	char root[64], source[64];
	uint64_t bytes = 0;

	fake_root(root, sizeof(root));
	put_file(root, "/proc/self/cgroup", "0::/system.slice/sessd.service\n");
	put_file(root, "/sys/fs/cgroup/system.slice/sessd.service/memory.max", "1073741824\n");
	cr_assert_eq(config_memory_limit(root, &bytes, source, sizeof(source)), 0);
	cr_assert_eq(bytes, 1073741824ull);
	cr_assert_str_eq(source, "its memory cgroup's limit");

	/* MemoryMax= on the slice holds for the service in it too. */
	put_file(root, "/sys/fs/cgroup/system.slice/sessd.service/memory.max", "max\n");
	put_file(root, "/sys/fs/cgroup/system.slice/memory.max", "536870912\n");
	cr_assert_eq(config_memory_limit(root, &bytes, source, sizeof(source)), 0);
	cr_assert_eq(bytes, 536870912ull);
	remove_root(root);
}

LEAK_CHECKED_TEST(config, memory_limit_reads_cgroup_v1_and_its_no_limit_value)
{
	char root[64], source[64];
	uint64_t bytes = 0;

	fake_root(root, sizeof(root));
	put_file(root, "/proc/self/cgroup", "5:cpu,cpuacct:/x\n4:memory:/process_api/abc\n0::/\n");
	/* What v1 writes for "no limit". */
	put_file(root, "/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes",
	         "9223372036854771712\n");
	cr_assert_eq(config_memory_limit(root, &bytes, source, sizeof(source)), 0);
	cr_assert_eq(bytes, MEMTOTAL_BYTES);

	put_file(root, "/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes",
	         "268435456\n");
	cr_assert_eq(config_memory_limit(root, &bytes, source, sizeof(source)), 0);
	cr_assert_eq(bytes, 268435456ull);
	cr_assert_str_eq(source, "its memory cgroup's limit");

	/* A cgroup limit above the machine's memory is no tighter than the machine. */
	put_file(root, "/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes",
	         "68719476736\n");
	cr_assert_eq(config_memory_limit(root, &bytes, source, sizeof(source)), 0);
	cr_assert_eq(bytes, MEMTOTAL_BYTES);
	cr_assert_str_eq(source, "physical memory");
	remove_root(root);
}

LEAK_CHECKED_TEST(config, memory_limit_fails_when_nothing_can_be_read)
{
	char root[64], source[64];
	uint64_t bytes = 7;

	snprintf(root, sizeof(root), "/tmp/sessd-test-root-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	cr_assert_eq(config_memory_limit(root, &bytes, source, sizeof(source)), -1);
	cr_assert_eq(bytes, 7);
	/* A cgroup file that is not a number counts as no limit, not as zero. */
	put_file(root, "/proc/self/cgroup", "0::/a\n");
	put_file(root, "/sys/fs/cgroup/a/memory.max", "garbage\n");
	cr_assert_eq(config_memory_limit(root, &bytes, source, sizeof(source)), -1);
	remove_root(root);
}
