/*
 * sessctl as a user runs it: the real binary ($SESSCTL_BIN) against the real daemon, with
 * its standard input, output and error on pipes. Checks exact output bytes, JSON validity,
 * messages and exit statuses (0 done, 1 no such session, find's nothing found or clear's no
 * such namespace, 2 usage, setup, server error, 3 set-if's conflict, 4 sessd not reached).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "codec.h"
#include "faultproxy.h"
#include "harness.h"
#include "leakcheck.h"
#include "mp.h"
#include "sessd.h"

extern char **environ;

static struct harness_daemon daemon_;

struct run {
	int status; /* exit status, or -1 when it died from a signal */
	struct buf out;
	struct buf err;
};

static void start_daemon(void)
{
	cr_assert_eq(harness_start(&daemon_, NULL), 0, "the daemon did not start");
}

static void stop_daemon(void)
{
	if (daemon_.pid > 0)
		cr_expect_eq(harness_stop(&daemon_), 0, "the daemon did not stop cleanly");
}

static void run_free(struct run *r)
{
	buf_finish(&r->out);
	buf_finish(&r->err);
}

/* Read what is there from ${fd} into ${b}; returns false at end of stream. */
static bool drain(int fd, struct buf *b)
{
	ssize_t n;

	cr_assert_eq(buf_reserve(b, 65536), 0);
	n = read(fd, b->data + b->len, 65536);
	if (n > 0) {
		b->len += (size_t)n;
		return true;
	}
	return n == -1 && errno == EINTR;
}

/* Whether the environment entry ${entry} sets one of the variables of ${names}. */
static bool env_names(const char *entry, const char *const *names)
{
	for (size_t i = 0; names[i] != NULL; i++)
		if (strncmp(entry, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

/* Wait for sessctl ${pid}, whose output is in ${r}, and keep its exit status there. */
static void run_end(struct run *r, pid_t pid)
{
	int status;

	cr_assert_eq(waitpid(pid, &status, 0), pid);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	/* NUL-terminate both for string checks; the NUL is not counted in len. */
	cr_assert_eq(buf_append(&r->out, "", 1), 0);
	r->out.len--;
	cr_assert_eq(buf_append(&r->err, "", 1), 0);
	r->err.len--;
}

/*
 * Begin ${r} for a run of sessctl with ${args} (NULL-terminated): ${argv} gets SESSCTL_BIN's
 * path and ${args} with a NULL after them, ${envp} this process's environment but the names
 * in ${unset}, at most 240 entries so that the caller's own fit in 256. Returns how many
 * entries ${envp} holds (the caller adds its own, then NULL).
 */
static int run_begin(struct run *r, const char **argv, const char *const *args, char **envp,
                     const char *const *unset)
{
	const char *bin = getenv("SESSCTL_BIN");
	int argc = 0, envc = 0;

	cr_assert_not_null(bin, "SESSCTL_BIN is not set");
	buf_init(&r->out);
	buf_init(&r->err);
	argv[argc++] = bin;
	for (size_t i = 0; args[i] != NULL; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	for (char **e = environ; *e != NULL && envc < 240; e++)
		if (!env_names(*e, unset))
			envp[envc++] = *e;
	return envc;
}

/*
 * Run sessctl with ${args} (NULL-terminated), feeding ${in} (${in_len} bytes) to its standard
 * input, with SESSD_URL set to ${env_url} and SESSD_AUTH_FILE to ${env_auth} (NULL: unset),
 * RUNTIME_DIRECTORY and XDG_RUNTIME_DIR unset, and the "NAME=VALUE" entries of ${env_more}
 * (NULL-terminated, may be NULL) added. Everything is pumped with poll so large inputs and
 * outputs cannot deadlock.
 */
static void run_spawn(struct run *r, const char *env_url, const char *env_auth,
                      const char *const *env_more, const void *in, size_t in_len,
                      const char *const *args)
{
	static const char *const unset[] = {
	    "SESSD_URL=", "SESSD_AUTH_FILE=", "RUNTIME_DIRECTORY=", "XDG_RUNTIME_DIR=", NULL};
	const char *argv[64];
	char *envp[256], env_buf[400], auth_buf[400];
	int in_pipe[2], out_pipe[2], err_pipe[2], envc;
	posix_spawn_file_actions_t fa;
	struct pollfd pfd[3];
	size_t sent = 0;
	ssize_t n;
	pid_t pid;

	envc = run_begin(r, argv, args, envp, unset);
	for (size_t i = 0; env_more != NULL && env_more[i] != NULL && envc < 250; i++)
		envp[envc++] = (char *)env_more[i];
	if (env_url != NULL) {
		snprintf(env_buf, sizeof(env_buf), "SESSD_URL=%s", env_url);
		envp[envc++] = env_buf;
	}
	if (env_auth != NULL) {
		snprintf(auth_buf, sizeof(auth_buf), "SESSD_AUTH_FILE=%s", env_auth);
		envp[envc++] = auth_buf;
	}
	envp[envc] = NULL;

	cr_assert_eq(pipe2(in_pipe, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(out_pipe, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(err_pipe, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, envp), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(in_pipe[0]);
	close(out_pipe[1]);
	close(err_pipe[1]);
	fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
	if (in_len == 0) {
		close(in_pipe[1]);
		in_pipe[1] = -1;
	}

	pfd[0] = (struct pollfd){.fd = out_pipe[0], .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = err_pipe[0], .events = POLLIN};
	pfd[2] = (struct pollfd){.fd = in_pipe[1], .events = POLLOUT};
	while (pfd[0].fd != -1 || pfd[1].fd != -1) {
		pfd[2].fd = in_pipe[1];
		cr_assert_neq(poll(pfd, 3, 60000), 0, "sessctl hangs");
		if (pfd[0].revents && !drain(pfd[0].fd, &r->out)) {
			close(pfd[0].fd);
			pfd[0].fd = -1;
		}
		if (pfd[1].revents && !drain(pfd[1].fd, &r->err)) {
			close(pfd[1].fd);
			pfd[1].fd = -1;
		}
		if (in_pipe[1] != -1 && pfd[2].revents) {
			n = write(in_pipe[1], (const char *)in + sent, in_len - sent);
			if (n > 0)
				sent += (size_t)n;
			if ((n == -1 && errno != EAGAIN && errno != EINTR) || sent == in_len) {
				close(in_pipe[1]);
				in_pipe[1] = -1;
			}
		}
	}
	if (in_pipe[1] != -1)
		close(in_pipe[1]);
	run_end(r, pid);
}

static void run_full(struct run *r, const char *env_url, const char *env_auth, const void *in,
                     size_t in_len, const char *const *args)
{
	run_spawn(r, env_url, env_auth, NULL, in, in_len, args);
}

static void run_env(struct run *r, const char *env_url, const void *in, size_t in_len,
                    const char *const *args)
{
	run_full(r, env_url, NULL, in, in_len, args);
}

static void run_in(struct run *r, const void *in, size_t in_len, const char *const *args)
{
	run_env(r, daemon_.unix_url, in, in_len, args);
}

#define RUN(r, ...) run_in((r), NULL, 0, (const char *const[]){__VA_ARGS__, NULL})

/* Expect ${status}, exactly ${out} on stdout, and stderr empty (status 0) or "sessctl: ...". */
static void expect(struct run *r, int status, const char *out)
{
	cr_assert_eq(r->status, status, "exit %d, not %d; stderr: %s", r->status, status,
	             (const char *)r->err.data);
	if (out != NULL)
		cr_assert_str_eq((const char *)r->out.data, out);
	if (status == 0)
		cr_assert_eq(r->err.len, 0, "stderr: %s", (const char *)r->err.data);
	else
		cr_assert_eq(strncmp((const char *)r->err.data, "sessctl: ", 9), 0, "stderr: %s",
		             (const char *)r->err.data);
	run_free(r);
}

/*
 * Expect ${status}, exactly ${out} on stdout, and on stderr only the warning that namespace
 * ${ns} is not on the server, ending with the namespaces it has: ${has} unless NULL.
 */
static void expect_warned_has(struct run *r, int status, const char *out, const char *ns,
                              const char *has)
{
	char want[400];
	const char *err = (const char *)r->err.data;

	cr_assert_eq(r->status, status, "exit %d, not %d; stderr: %s", r->status, status, err);
	cr_assert_str_eq((const char *)r->out.data, out);
	snprintf(want, sizeof(want), "sessctl: no namespace \"%s\" on this server (it has: ", ns);
	cr_assert_eq(strncmp(err, want, strlen(want)), 0, "stderr: %s", err);
	cr_assert_eq(strchr(err, '\n'), err + r->err.len - 1, "one line: %s", err);
	if (has != NULL) {
		snprintf(want, sizeof(want), "(it has: %s)\n", has);
		cr_assert_str_eq(strstr(err, "(it has: "), want);
	}
	run_free(r);
}

static void expect_warned(struct run *r, int status, const char *out, const char *ns)
{
	expect_warned_has(r, status, out, ns, NULL);
}

/* --- A small strict JSON checker (RFC 8259), so --json output is proven parseable. --- */

static const char *json_value(const char *p, int depth);

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (strchr("0123456789abcdefABCDEF", p[i]) == NULL ||
					    p[i] == '\0')
						return NULL;
				p += 4;
			} else if (strchr("\"\\/bfnrt", *p) == NULL || *p == '\0') {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *json_number(const char *p)
{
	const char *start = p;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else
		while (*p >= '0' && *p <= '9')
			p++;
	return p == start ? NULL : p;
}

static const char *json_value(const char *p, int depth)
{
	char close;

	p = json_ws(p);
	if (depth > 32)
		return NULL;
	if (*p == '"')
		return json_string(p);
	if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0)
		return p + 4;
	if (strncmp(p, "false", 5) == 0)
		return p + 5;
	if (*p != '[' && *p != '{')
		return json_number(p);
	close = *p == '[' ? ']' : '}';
	p = json_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			p = json_string(json_ws(p));
			if (p == NULL || *(p = json_ws(p)) != ':')
				return NULL;
			p++;
		}
		p = json_value(p, depth + 1);
		if (p == NULL)
			return NULL;
		p = json_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static void expect_json(const struct run *r)
{
	const char *s = (const char *)r->out.data;
	const char *end = json_value(s, 0);

	cr_assert_eq(strlen(s), r->out.len, "NUL byte in JSON output");
	cr_assert_not_null(end, "not JSON: %s", s);
	cr_assert_str_eq(json_ws(end), "", "trailing bytes after JSON: %s", s);
}

TestSuite(sessctl, .init = start_daemon, .fini = stop_daemon, .timeout = 240);

LEAK_CHECKED_TEST(sessctl, help_and_version)
{
	struct run r;

	RUN(&r, "--help");
	cr_assert(strstr((char *)r.out.data, "usage: sessctl") != NULL);
	cr_assert(strstr((char *)r.out.data, "--auth-file FILE") != NULL);
	cr_assert(strstr((char *)r.out.data, "$SESSD_AUTH_FILE") != NULL);
	cr_assert(strstr((char *)r.out.data, "--plain-auth") != NULL);
	cr_assert(strstr((char *)r.out.data, "flash-pop") != NULL);
	cr_assert(strstr((char *)r.out.data, "set-if ID TAG [DATA]") != NULL);
	cr_assert(strstr((char *)r.out.data, "3 set-if") != NULL);
	cr_assert(strstr((char *)r.out.data, "flash-push ID TYPE MESSAGE [--existing]") != NULL);
	cr_assert(strstr((char *)r.out.data, "--existing ") != NULL);
	expect(&r, 0, NULL);
	RUN(&r, "get", "-h");
	expect(&r, 0, NULL);
	RUN(&r, "--version");
	expect(&r, 0, "sessctl " SESSD_VERSION "\n");
	RUN(&r, "-V");
	expect(&r, 0, "sessctl " SESSD_VERSION "\n");
	RUN(&r, "ping", "-V");
	expect(&r, 0, "sessctl " SESSD_VERSION "\n");
	RUN(&r, "--help");
	cr_assert(strstr((char *)r.out.data, "--version, -V") != NULL, "%s", (char *)r.out.data);
	run_free(&r);
}

/* sessctl -V and sessd -V name one release: an operator compares them to match the two. */
LEAK_CHECKED_TEST(sessctl, version_matches_the_daemons)
{
	static const char *const args[] = {"-V", NULL};
	char log[sizeof(daemon_.dir) + 16], line[128];
	struct run r;
	FILE *f;
	int status;

	snprintf(log, sizeof(log), "%s/version", daemon_.dir);
	cr_assert_eq(harness_run(args, log, false, &status), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sessd -V: status %d", status);
	f = fopen(log, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	cr_assert_eq(strncmp(line, "sessd ", 6), 0, "%s", line);
	RUN(&r, "-V");
	cr_assert_eq(strncmp((char *)r.out.data, "sessctl ", 8), 0, "%s", (char *)r.out.data);
	cr_assert_str_eq((char *)r.out.data + 8, line + 6);
	expect(&r, 0, NULL);
}

/*
 * A --timeout out of range says what range it takes, as --ttl does: "'0' is not a number of
 * milliseconds" left a user who typed a number guessing what was wrong with it.
 */
LEAK_CHECKED_TEST(sessctl, a_timeout_out_of_range_names_the_range)
{
	/* Each as the message shows it: an argument of more than 6 bytes that is not
	 * option-like is cut, as it may be a session id. */
	static const char *const values[][2] = {
	    {"0", "0"}, {"2147483648", "214748..."}, {"-5", "-5"}, {"abc", "abc"}};
	char want[100];
	struct run r;

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		RUN(&r, "--timeout", values[i][0], "ping");
		snprintf(want, sizeof(want),
		         "sessctl: --timeout: '%s' is not a number of milliseconds from 1 to "
		         "2147483647\n",
		         values[i][1]);
		cr_assert_eq(strncmp((const char *)r.err.data, want, strlen(want)), 0,
		             "--timeout %s: %s", values[i][0], (const char *)r.err.data);
		expect(&r, 2, "");
	}
	RUN(&r, "--timeout", "2147483647", "ping");
	expect(&r, 0, "pong\n");
}

LEAK_CHECKED_TEST(sessctl, usage_errors)
{
	static const char *const cases[][6] = {
	    {NULL},
	    {"frobnicate", NULL},
	    {"--bogus", "ping", NULL},
	    {"ping", "extra", NULL},
	    {"get", NULL},
	    {"get", "a", "b", NULL},
	    {"touch", "a", NULL},
	    {"get", "a", "--ttl", "5", NULL},
	    {"set", "a", "v", "--ttl", "0", NULL},
	    {"set", "a", "v", "--ttl", "x", NULL},
	    {"set", "a", "v", "--ttl", NULL},
	    {"--timeout", "-5", "ping", NULL},
	    {"--timeout=abc", "ping", NULL},
	    {"ping", "--yes", NULL},
	    {"--namespace", "", "count", NULL},
	    {"flash-push", "a", "t", NULL},
	    {"flash-pop", "a", "t", "x", NULL},
	    {"--json=yes", "ping", NULL},
	    {"--auth-file", NULL},
	    {"--auth-file=", "ping", NULL},
	    {"ping", "--auth-file", NULL},
	    {"--plain-auth", "ping", NULL},
	    {"--plain-auth=yes", "ping", NULL},
	    {"set-if", "a", NULL},
	    {"set-if", "a", "786a02f742015903c6c6fd852552d272", "v", "w", NULL},
	    {"set-if", "a", "786a02f742015903c6c6fd852552d27", "v", NULL},
	    {"set-if", "a", "786a02f742015903c6c6fd852552d2722", "v", NULL},
	    {"set-if", "a", "786a02f742015903c6c6fd852552d27g", "v", NULL},
	    {"set-if", "a", "", "v", NULL},
	    {"set", "a", "v", "--tag", NULL},
	    {"get", "a", "--tag=yes", NULL},
	    {"set", "a", "v", "--existing", NULL},
	    {"flash-pop", "a", "--existing", NULL},
	    {"flash-push", "a", "t", "m", "--existing=yes", NULL},
	    {"flash-push", "a", "t", "--existing", NULL},
	};
	struct run r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_in(&r, NULL, 0, cases[i]);
		cr_assert_eq(r.status, 2, "case %zu: exit %d", i, r.status);
		cr_assert_eq(r.out.len, 0, "case %zu printed %s", i, (char *)r.out.data);
		expect(&r, 2, "");
	}
}

LEAK_CHECKED_TEST(sessctl, ping_over_unix_tcp_and_env)
{
	struct run r;

	RUN(&r, "ping");
	expect(&r, 0, "pong\n");
	RUN(&r, "--connect", daemon_.tcp_url, "ping");
	expect(&r, 0, "pong\n");
	/* Options after the command, and --opt=value. */
	run_env(&r, "unix:/nonexistent/sessd.sock", NULL, 0,
	        (const char *const[]){"ping", "--connect=", NULL});
	expect(&r, 2, "");
	{
		char opt[400];

		snprintf(opt, sizeof(opt), "--connect=%s", daemon_.tcp_url);
		run_env(&r, NULL, NULL, 0, (const char *const[]){"ping", opt, NULL});
		expect(&r, 0, "pong\n");
	}
	run_env(&r, daemon_.tcp_url, NULL, 0, (const char *const[]){"--json", "ping", NULL});
	expect_json(&r);
	cr_assert(strstr((char *)r.out.data, "\"server_id\":\"") != NULL);
	cr_assert(strstr((char *)r.out.data, "\"max_frame\":1048576") != NULL);
	expect(&r, 0, NULL);
}

/*
 * The address forms connect-sessd takes too, so that one copied from an app's configuration
 * (a bare socket path, unix:///path, a "/" after the port) works here as there: given with
 * --connect and in SESSD_URL. What is neither stays refused, with the reason.
 */
LEAK_CHECKED_TEST(sessctl, address_forms_shared_with_connect_sessd)
{
	const char *path = daemon_.unix_url + strlen("unix:");
	char triple[400], slashed[80], want[200];
	struct run r;

	snprintf(triple, sizeof(triple), "unix://%s", path);
	snprintf(slashed, sizeof(slashed), "%s/", daemon_.tcp_url);
	for (const char *const *u = (const char *const[]){path, triple, slashed, NULL}; *u != NULL;
	     u++) {
		RUN(&r, "--connect", *u, "ping");
		expect(&r, 0, "pong\n");
		run_env(&r, *u, NULL, 0, (const char *const[]){"ping", NULL});
		expect(&r, 0, "pong\n");
	}
	/* A bare path that is not there: the connect's error, naming it as a unix: address. */
	RUN(&r, "--connect", "/nonexistent/dir/sessd.sock", "count");
	snprintf(want, sizeof(want),
	         "sessctl: cannot connect to unix:/nonexistent/dir/sessd.sock: %s\n",
	         strerror(ENOENT));
	cr_assert_str_eq((char *)r.err.data, want);
	expect(&r, 4, "");
	/* unix://x: a relative x to connect-sessd once, the absolute /x here; now neither. */
	RUN(&r, "--connect", "unix://tmp/sessd.sock", "ping");
	cr_assert_str_eq((char *)r.err.data,
	                 "sessctl: bad URL 'unix://tmp/sessd.sock': unix:// must be followed by "
	                 "an absolute path (unix:///path; a relative one is unix:path)\n");
	expect(&r, 2, "");
	/* A relative path or a host:port without a scheme is ambiguous: refused. */
	for (const char *const *u = (const char *const[]){"sessd.sock", "127.0.0.1:7077", NULL};
	     *u != NULL; u++) {
		RUN(&r, "--connect", *u, "ping");
		cr_assert(strstr((char *)r.err.data,
		                 "': the URL must be unix:PATH, an absolute socket path (/PATH) or "
		                 "tcp://HOST:PORT\n") != NULL,
		          "%s", (char *)r.err.data);
		expect(&r, 2, "");
	}
}

LEAK_CHECKED_TEST(sessctl, connection_errors)
{
	char want[600];
	struct run r;

	RUN(&r, "--connect", "http://127.0.0.1:7077", "ping");
	cr_assert(strstr((char *)r.err.data, "bad URL") != NULL, "%s", (char *)r.err.data);
	expect(&r, 2, "");
	RUN(&r, "--connect", "tcp://127.0.0.1:99999", "ping");
	expect(&r, 2, "");
	/* libsessd's words: where, and connect()'s strerror. */
	run_env(&r, "unix:/nonexistent/dir/sessd.sock", NULL, 0,
	        (const char *const[]){"count", NULL});
	snprintf(want, sizeof(want),
	         "sessctl: cannot connect to unix:/nonexistent/dir/sessd.sock: %s\n",
	         strerror(ENOENT));
	cr_assert_str_eq((char *)r.err.data, want);
	expect(&r, 4, "");
	/* A stopped server: the HELLO times out, and the message says so. */
	cr_assert_eq(harness_sigstop(daemon_.pid), 0);
	RUN(&r, "--timeout", "200", "ping");
	cr_assert_eq(kill(daemon_.pid, SIGCONT), 0);
	snprintf(want, sizeof(want),
	         "sessctl: cannot connect to %s: HELLO timed out: no reply within 200 ms\n",
	         daemon_.unix_url);
	cr_assert_str_eq((char *)r.err.data, want);
	expect(&r, 4, "");
}

/*
 * Exit status 4: sessd was not reached, or did not answer (no socket, refused, a HELLO or a
 * reply timed out, the connection broke, the daemon stopping or full): what a script may try
 * again after a pause. 2 stays a mistake in the command or its setup, which the same command
 * meets again. Before, both were 2, so a cron job could not tell a restart from its own bug.
 */
LEAK_CHECKED_TEST(sessctl, an_unreachable_daemon_is_told_apart_from_a_mistake)
{
	struct run r;

	run_env(&r, "unix:/nonexistent/dir/sessd.sock", NULL, 0,
	        (const char *const[]){"get", "a", NULL});
	expect(&r, 4, "");
	RUN(&r, "--connect", "tcp://127.0.0.1:1", "destroy", "a");
	expect(&r, 4, "");
	cr_assert_eq(harness_sigstop(daemon_.pid), 0);
	RUN(&r, "--timeout", "200", "set", "a", "1");
	cr_assert_eq(kill(daemon_.pid, SIGCONT), 0);
	expect(&r, 4, "");
	/* The command's own mistakes, whatever the daemon's state. */
	RUN(&r, "--connect", "tcp://127.0.0.1:99999", "ping");
	expect(&r, 2, "");
	RUN(&r, "--connect", "unix:/nonexistent/dir/sessd.sock", "get");
	expect(&r, 2, "");
	RUN(&r, "--connect", "unix:/nonexistent/dir/sessd.sock", "pnig");
	expect(&r, 2, "");
	RUN(&r, "set", "a", "1", "--ttl", "0");
	expect(&r, 2, "");
}

/* A daemon at its --max-connections answers HELLO with BUSY: full for now, so status 4. */
LEAK_CHECKED_TEST(sessctl, a_full_daemon_is_not_reached)
{
	static const char *const args[] = {"--max-connections", "1", NULL};
	struct harness_daemon d;
	struct sessd_client *held;
	struct run r;

	cr_assert_eq(harness_start(&d, args), 0, "the daemon did not start");
	cr_assert_eq(sessd_connect(d.unix_url, NULL, &held), SESSD_OK);
	cr_assert_eq(sessd_ping(held), SESSD_OK);
	run_env(&r, d.unix_url, NULL, 0, (const char *const[]){"ping", NULL});
	cr_assert(strstr((char *)r.err.data, "BUSY") != NULL, "%s", (char *)r.err.data);
	expect(&r, 4, "");
	sessd_close(held);
	cr_assert_eq(harness_stop(&d), 0);
}

LEAK_CHECKED_TEST(sessctl, new_id)
{
	struct run r;

	RUN(&r, "new-id");
	cr_assert_eq(r.out.len, SESSD_ID_LEN + 1);
	cr_assert_eq(((char *)r.out.data)[SESSD_ID_LEN], '\n');
	expect(&r, 0, NULL);
	/* No server needed. */
	run_env(&r, "unix:/nonexistent.sock", NULL, 0,
	        (const char *const[]){"new-id", "--json", NULL});
	expect_json(&r);
	cr_assert_eq(r.out.len, SESSD_ID_LEN + 3);
	expect(&r, 0, NULL);
}

/*
 * Expect exit status 1 and, on stderr, ${line} ("sessctl: get: no such session ...\n") and then
 * the warning that namespace ${ns} is not on the server, which has ${has}.
 */
static void expect_missing_in_no_namespace(struct run *r, const char *line, const char *ns,
                                           const char *has)
{
	char want[600];

	snprintf(want, sizeof(want), "%ssessctl: no namespace \"%s\" on this server (it has: %s)\n",
	         line, ns, has);
	cr_assert_str_eq((const char *)r->err.data, want);
	expect(r, 1, "");
}

LEAK_CHECKED_TEST(sessctl, set_get_touch_destroy)
{
	struct run r;

	RUN(&r, "set", "s1", "hello world", "--ttl", "60");
	expect(&r, 0, "");
	RUN(&r, "get", "s1");
	expect(&r, 0, "hello world");
	RUN(&r, "--json", "get", "s1");
	expect(&r, 0, "\"hello world\"\n");
	RUN(&r, "touch", "s1", "--ttl=120");
	expect(&r, 0, "");
	RUN(&r, "touch", "s1", "--ttl", "5", "--json");
	expect(&r, 0, "{\"ok\":true}\n");
	RUN(&r, "destroy", "s1");
	expect(&r, 0, "");
	RUN(&r, "get", "s1");
	expect_missing_in_no_namespace(
	    &r, "sessctl: get: no such session (or it holds only flash messages)\n", "default",
	    "none");
	RUN(&r, "--json", "get", "s1");
	expect(&r, 1, "");
	RUN(&r, "destroy", "s1");
	expect(&r, 1, "");
	RUN(&r, "touch", "s1", "--ttl", "5");
	expect(&r, 1, "");
	/* set's ttl defaults to a day. */
	RUN(&r, "set", "s2", "x");
	expect(&r, 0, "");
	RUN(&r, "--json", "list", "--namespace", "default");
	cr_assert(strstr((char *)r.out.data, "\"id\":\"s2\"") != NULL);
	expect(&r, 0, NULL);
	/* Data that looks like an option goes after --. */
	RUN(&r, "set", "s3", "--", "--ttl");
	expect(&r, 0, "");
	RUN(&r, "get", "s3");
	expect(&r, 0, "--ttl");
}

/*
 * Check that ${text} starts with "MS" then ${sep} then an ISO 8601 UTC instant with
 * milliseconds about MS from now (within 5 s), and that MS is in (${min_ms}, ${max_ms}].
 * Returns what follows the instant.
 */
static const char *expect_ttl_and_instant(const char *text, const char *sep,
                                          unsigned long long min_ms, unsigned long long max_ms)
{
	unsigned long long ms;
	struct tm tm = {0};
	struct timespec now;
	unsigned milli;
	int used = 0;
	double off;

	cr_assert_eq(sscanf(text, "%llu%n", &ms, &used), 1, "%s", text);
	cr_assert(ms > min_ms && ms <= max_ms, "%llu ms left, not in (%llu, %llu]", ms, min_ms,
	          max_ms);
	text += used;
	cr_assert_eq(strncmp(text, sep, strlen(sep)), 0, "%s", text);
	text += strlen(sep);
	cr_assert_eq(strlen(text) >= 24, true, "%s", text);
	cr_assert_eq(sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%3uZ%n", &tm.tm_year, &tm.tm_mon,
	                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &milli, &used),
	             7, "not ISO 8601: %s", text);
	cr_assert_eq(used, 24, "%s", text);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	clock_gettime(CLOCK_REALTIME, &now);
	off = (double)timegm(&tm) + milli / 1000.0 -
	      ((double)now.tv_sec + now.tv_nsec / 1e9 + (double)ms / 1000.0);
	cr_assert(off > -5 && off < 5, "the instant is %.3f s off now + ttl", off);
	return text + used;
}

LEAK_CHECKED_TEST(sessctl, ttl_prints_the_remaining_lifetime)
{
	char want[64];
	const char *rest;
	struct run r;

	RUN(&r, "set", "t1", "v", "--ttl", "60");
	expect(&r, 0, "");
	RUN(&r, "ttl", "t1");
	rest = expect_ttl_and_instant((char *)r.out.data, "\t", 55000, 60000);
	cr_assert_str_eq(rest, "\n");
	expect(&r, 0, NULL);
	RUN(&r, "--json", "ttl", "t1");
	expect_json(&r);
	snprintf(want, sizeof(want), "{\"id\":\"t1\",\"ttl_ms\":");
	cr_assert_eq(strncmp((char *)r.out.data, want, strlen(want)), 0, "%s", (char *)r.out.data);
	rest = expect_ttl_and_instant((char *)r.out.data + strlen(want), ",\"expires\":\"", 55000,
	                              60000);
	cr_assert_str_eq(rest, "\"}\n");
	expect(&r, 0, NULL);
	/* Asking moves nothing; touch does. */
	RUN(&r, "touch", "t1", "--ttl", "3600");
	expect(&r, 0, "");
	RUN(&r, "ttl", "t1");
	expect_ttl_and_instant((char *)r.out.data, "\t", 3595000, 3600000);
	expect(&r, 0, NULL);
	/* A session of flash messages only has a ttl too (count and list show it). */
	RUN(&r, "flash-push", "t2", "info", "hi", "--ttl", "30");
	expect(&r, 0, "1\n");
	RUN(&r, "get", "t2");
	expect(&r, 1, "");
	RUN(&r, "ttl", "t2");
	expect_ttl_and_instant((char *)r.out.data, "\t", 25000, 30000);
	expect(&r, 0, NULL);
	/* Missing: exit 1, as get; and in JSON nothing on standard output. */
	RUN(&r, "ttl", "t3");
	cr_assert_str_eq((char *)r.err.data, "sessctl: ttl: no such session\n");
	expect(&r, 1, "");
	RUN(&r, "--json", "ttl", "t3");
	expect(&r, 1, "");
	RUN(&r, "destroy", "t1");
	expect(&r, 0, "");
	RUN(&r, "ttl", "t1");
	expect(&r, 1, "");
	/* Usage. */
	RUN(&r, "ttl");
	expect(&r, 2, "");
	RUN(&r, "ttl", "t2", "--ttl", "5");
	cr_assert(strstr((char *)r.err.data, "ttl does not take --ttl") != NULL, "%s",
	          (char *)r.err.data);
	expect(&r, 2, "");
}

/* Run `get --tag ID` and put the tag it printed, without its newline, in ${tag}. */
static void get_tag(const char *id, char tag[2 * SESSD_TAG_BYTES + 1])
{
	struct run r;

	RUN(&r, "get", "--tag", id);
	cr_assert_eq(r.status, 0, "get --tag %s: exit %d: %s", id, r.status, (char *)r.err.data);
	cr_assert_eq(r.out.len, 2 * SESSD_TAG_BYTES + 1, "get --tag printed %s",
	             (char *)r.out.data);
	cr_assert_eq(strspn((char *)r.out.data, "0123456789abcdef"), 2 * SESSD_TAG_BYTES);
	memcpy(tag, r.out.data, 2 * SESSD_TAG_BYTES);
	tag[2 * SESSD_TAG_BYTES] = '\0';
	expect(&r, 0, NULL);
}

LEAK_CHECKED_TEST(sessctl, get_tag_and_set_if)
{
	char tag[2 * SESSD_TAG_BYTES + 1], old[2 * SESSD_TAG_BYTES + 1], want[200];
	unsigned long long ttl_ms;
	const char *at;
	struct run r;

	/* PROTOCOL.md's tag of empty data, and the tag of what get read, in both outputs. */
	RUN(&r, "set", "cas", "");
	expect(&r, 0, "");
	RUN(&r, "get", "cas", "--tag");
	expect(&r, 0, "786a02f742015903c6c6fd852552d272\n");
	RUN(&r, "set", "cas", "{\"n\":1}");
	expect(&r, 0, "");
	get_tag("cas", tag);
	cr_assert_str_neq(tag, "786a02f742015903c6c6fd852552d272");
	RUN(&r, "--json", "get", "--tag", "cas");
	expect_json(&r);
	snprintf(want, sizeof(want), "{\"data\":\"{\\\"n\\\":1}\",\"tag\":\"%s\",\"ttl_ms\":", tag);
	cr_assert_eq(strncmp((char *)r.out.data, want, strlen(want)), 0, "%s", (char *)r.out.data);
	cr_assert_eq(sscanf((char *)r.out.data + strlen(want), "%llu", &ttl_ms), 1);
	cr_assert(ttl_ms > 86390000 && ttl_ms <= 86400000, "the default day: %llu", ttl_ms);
	cr_assert_str_eq(strchr((char *)r.out.data + strlen(want), '}'), "}\n");
	expect(&r, 0, NULL);

	/* Success: the data still has the tag. */
	RUN(&r, "set-if", "cas", tag, "{\"n\":2}");
	expect(&r, 0, "");
	RUN(&r, "get", "cas");
	expect(&r, 0, "{\"n\":2}");
	/* The old tag names data that is gone: a conflict, exit 3, nothing changed. */
	RUN(&r, "set-if", "cas", tag, "{\"n\":3}");
	cr_assert_str_eq((char *)r.err.data, "sessctl: set-if: the session's data changed since "
	                                     "its tag was read; nothing changed\n");
	expect(&r, 3, "");
	RUN(&r, "get", "cas");
	expect(&r, 0, "{\"n\":2}");

	/* Another client saves between the read and the save: the save is refused. */
	get_tag("cas", tag);
	RUN(&r, "--connect", daemon_.tcp_url, "set", "cas", "theirs");
	expect(&r, 0, "");
	RUN(&r, "--json", "set-if", "cas", tag, "mine");
	expect(&r, 3, "");
	RUN(&r, "get", "cas");
	expect(&r, 0, "theirs");

	/* Read again and save: standard input, a tag in capitals, --ttl, --json. */
	get_tag("cas", tag);
	memcpy(old, tag, sizeof(old));
	for (char *p = tag; *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	run_in(&r, "mine\0x", 6,
	       (const char *const[]){"set-if", "--ttl", "60", "cas", tag, "--json", NULL});
	expect(&r, 0, "{\"ok\":true}\n");
	RUN(&r, "get", "cas");
	cr_assert_eq(r.out.len, 6);
	cr_assert_eq(memcmp(r.out.data, "mine\0x", 6), 0);
	expect(&r, 0, NULL);
	RUN(&r, "--json", "list");
	at = strstr((char *)r.out.data, "{\"id\":\"cas\",\"ttl_ms\":");
	cr_assert_not_null(at, "cas is not listed: %s", (char *)r.out.data);
	cr_assert_eq(sscanf(at + 21, "%llu", &ttl_ms), 1);
	cr_assert(ttl_ms > 50000 && ttl_ms <= 60000, "cas lives %llu ms, not 60 s", ttl_ms);
	expect(&r, 0, NULL);
	RUN(&r, "set-if", "cas", old, "again");
	expect(&r, 3, "");

	/* Destroyed meanwhile (a logout): not found, exit 1, and not brought back. */
	get_tag("cas", tag);
	RUN(&r, "destroy", "cas");
	expect(&r, 0, "");
	RUN(&r, "set-if", "cas", tag, "late");
	expect_missing_in_no_namespace(
	    &r, "sessctl: set-if: no such session (or it holds only flash messages)\n", "default",
	    "none");
	RUN(&r, "get", "cas");
	expect(&r, 1, "");
	RUN(&r, "get", "--tag", "cas");
	expect(&r, 1, "");
}

LEAK_CHECKED_TEST(sessctl, set_if_bad_tag_is_refused_before_connecting)
{
	struct run r;

	run_env(&r, "unix:/nonexistent/sessd.sock", NULL, 0,
	        (const char *const[]){"set-if", "a", "not-a-tag", "v", NULL});
	cr_assert(strstr((char *)r.err.data, "sessctl: set-if: 'not-a-tag' is not a tag: 32 hex "
	                                     "digits, as get --tag prints\n") != NULL,
	          "%s", (char *)r.err.data);
	expect(&r, 2, "");
}

/*
 * An id given where a value, a tag or a URL is due (--ttl ID, --timeout ID, set-if TAG ID,
 * --connect ID: options or arguments swapped) is refused before connecting, and the message, which
 * a cron job's log keeps, names it by its first characters only, as an unknown option is.
 */
LEAK_CHECKED_TEST(sessctl, a_value_out_of_place_shows_no_full_id)
{
	static const char id[] = "Qk4xT0c2bVd1R3FqYkZ5dE1uZ2hXb3RqZ0FzZGZnaGo";
	static const char *const cases[][6] = {
	    {"touch", "--ttl", id, "60", NULL},
	    {"get", "--timeout", id, NULL},
	    {"set-if", "0123456789abcdef0123456789abcdef", id, "v", NULL},
	    {"--connect", id, "get", "x", NULL},
	};
	struct run r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_env(&r, "unix:/nonexistent/sessd.sock", NULL, 0, cases[i]);
		cr_assert_eq(r.status, 2, "%s: exit %d", cases[i][0], r.status);
		cr_assert(strstr((char *)r.err.data, "'Qk4xT0...'") != NULL, "%s: %s", cases[i][0],
		          (char *)r.err.data);
		cr_assert(strstr((char *)r.err.data, id) == NULL, "%s: %s", cases[i][0],
		          (char *)r.err.data);
		run_free(&r);
	}
	/* A short value is still shown whole: it is no id, and says what was wrong. */
	run_env(&r, "unix:/nonexistent/sessd.sock", NULL, 0,
	        (const char *const[]){"touch", "x", "--ttl", "10y", NULL});
	cr_assert(strstr((char *)r.err.data, "sessctl: --ttl: '10y' is not a number") != NULL, "%s",
	          (char *)r.err.data);
	expect(&r, 2, "");
}

LEAK_CHECKED_TEST(sessctl, binary_safe_stdin_and_stdout)
{
	char tag[2 * SESSD_TAG_BYTES + 1];
	uint8_t data[70000];
	struct run r;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + (i >> 8));
	data[0] = 0;
	run_in(&r, data, sizeof(data), (const char *const[]){"set", "bin", "--ttl", "60", NULL});
	expect(&r, 0, "");
	RUN(&r, "get", "bin");
	cr_assert_eq(r.status, 0);
	cr_assert_eq(r.out.len, sizeof(data));
	cr_assert_eq(memcmp(r.out.data, data, sizeof(data)), 0);
	expect(&r, 0, NULL);
	RUN(&r, "get", "bin", "--json");
	expect_json(&r);
	expect(&r, 0, NULL);

	/* Exact escapes: quote, backslash, newline, control, invalid UTF-8, valid UTF-8. */
	run_in(&r, "a\"\\\n\x01\xff\xc3\xa9\x7f\xed\xa0\x80", 12,
	       (const char *const[]){"set", "esc", NULL});
	expect(&r, 0, "");
	RUN(&r, "--json", "get", "esc");
	expect_json(&r);
	expect(&r, 0, "\"a\\\"\\\\\\n\\u0001\\u00ff\xc3\xa9\\u007f\\u00ed\\u00a0\\u0080\"\n");
	/* A C1 CSI, a right-to-left override and a line separator: escaped, the same string
	 * to a JSON reader, and nothing that drives or reorders a terminal. Before: raw. */
	run_in(&r,
	       "\xc2\x9b"
	       "2J\xe2\x80\xae"
	       "gpj.exe\xe2\x80\xa8",
	       17, (const char *const[]){"set", "c1", NULL});
	expect(&r, 0, "");
	RUN(&r, "--json", "get", "c1");
	expect_json(&r);
	expect(&r, 0, "\"\\u009b2J\\u202egpj.exe\\u2028\"\n");
	/* Empty standard input stores nothing: in `get | filter | set-if` it is what a get that
	 * timed out, or a filter that failed, hands on, and it was stored over the session with
	 * exit status 0. Empty data is given as ''. */
	RUN(&r, "set", "empty", "kept");
	expect(&r, 0, "");
	run_in(&r, NULL, 0, (const char *const[]){"set", "empty", NULL});
	cr_assert(strstr((char *)r.err.data, "standard input is empty, nothing stored") != NULL,
	          "%s", (char *)r.err.data);
	expect(&r, 2, "");
	RUN(&r, "get", "empty");
	expect(&r, 0, "kept");
	get_tag("empty", tag);
	run_in(&r, NULL, 0, (const char *const[]){"set-if", "empty", tag, NULL});
	expect(&r, 2, "");
	RUN(&r, "get", "empty");
	expect(&r, 0, "kept");
	RUN(&r, "set", "empty", "");
	expect(&r, 0, "");
	RUN(&r, "get", "empty");
	expect(&r, 0, "");
}

LEAK_CHECKED_TEST(sessctl, oversized_set_is_an_error)
{
	size_t len = 1048577;
	uint8_t *data = calloc(1, len);
	struct run r;

	cr_assert_not_null(data);
	run_in(&r, data, len, (const char *const[]){"set", "huge", NULL});
	free(data);
	cr_assert(strstr((char *)r.err.data, "too large") != NULL, "%s", (char *)r.err.data);
	expect(&r, 2, "");
	RUN(&r, "get", "huge");
	expect(&r, 1, "");
}

LEAK_CHECKED_TEST(sessctl, flash_push_and_pop)
{
	struct run r;

	RUN(&r, "flash-pop", "fl");
	expect(&r, 1, "");
	RUN(&r, "flash-push", "fl", "error", "bad thing");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-push", "fl", "info", "first", "--ttl", "30");
	expect(&r, 0, "1\n");
	RUN(&r, "--json", "flash-push", "fl", "info", "sec\"ond");
	expect(&r, 0, "{\"queued\":2}\n");
	RUN(&r, "flash-pop", "fl", "info");
	expect(&r, 0, "first\nsec\"ond\n");
	RUN(&r, "flash-pop", "fl", "info");
	expect(&r, 0, "");
	RUN(&r, "flash-pop", "fl", "info", "--json");
	expect(&r, 0, "[]\n");
	RUN(&r, "flash-push", "fl", "info", "x");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-pop", "fl");
	expect(&r, 0, "error\tbad thing\ninfo\tx\n");

	RUN(&r, "flash-push", "fl", "info", "a");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-push", "fl", "info", "b");
	expect(&r, 0, "2\n");
	RUN(&r, "flash-push", "fl", "warn", "c");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-pop", "fl", "--json");
	expect_json(&r);
	expect(&r, 0, "{\"info\":[\"a\",\"b\"],\"warn\":[\"c\"]}\n");
	RUN(&r, "flash-pop", "fl", "--json");
	expect(&r, 0, "{}\n");
	RUN(&r, "flash-push", "fl", "info", "a");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-pop", "fl", "info", "--json");
	expect(&r, 0, "[\"a\"]\n");
	/* One type, more than one message: a JSON array of them, in order. */
	RUN(&r, "flash-push", "fl", "info", "a");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-push", "fl", "info", "b");
	expect(&r, 0, "2\n");
	RUN(&r, "flash-pop", "fl", "info", "--json");
	expect_json(&r);
	expect(&r, 0, "[\"a\",\"b\"]\n");

	/* A message an app's user wrote: one line each, nothing that drives a terminal; UTF-8
	 * as it is; --json exact. */
	RUN(&r, "flash-push", "fl", "info", "two\nlines \x1b[2J\\ caf\xc3\xa9");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-pop", "fl", "info");
	expect(&r, 0, "two\\x0alines \\x1b[2J\\x5c caf\xc3\xa9\n");
	RUN(&r, "flash-push", "fl", "info", "two\nlines \x1b[2J\\ caf\xc3\xa9");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-pop", "fl", "--json");
	expect(&r, 0, "{\"info\":[\"two\\nlines \\u001b[2J\\\\ caf\xc3\xa9\"]}\n");
	/* The 8-bit CSI, alone and as U+009B in UTF-8, and a right-to-left override. */
	RUN(&r, "flash-push", "fl", "info",
	    "a\x9b"
	    "31m b\xc2\x9b"
	    "32m c\xe2\x80\xae"
	    "d \xe2\x82\xac");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-pop", "fl", "info");
	expect(&r, 0,
	       "a\\x9b31m b\\xc2\\x9b32m c\\xe2\\x80\\xae"
	       "d \xe2\x82\xac\n");
}

/* flash-push --existing: only to a session with data; no such session is exit status 1. */
LEAK_CHECKED_TEST(sessctl, flash_push_existing)
{
	struct run r;

	RUN(&r, "flash-push", "--existing", "fe", "info", "m");
	expect_missing_in_no_namespace(
	    &r, "sessctl: flash-push: no such session (or it holds only flash messages)\n",
	    "default", "none");
	RUN(&r, "count");
	expect_warned_has(&r, 0, "0\n", "default", "none");

	RUN(&r, "set", "fe", "logged in");
	expect(&r, 0, "");
	RUN(&r, "flash-push", "fe", "info", "one", "--existing");
	expect(&r, 0, "1\n");
	RUN(&r, "--json", "flash-push", "--existing", "--ttl", "30", "fe", "info", "two");
	expect_json(&r);
	expect(&r, 0, "{\"queued\":2}\n");
	RUN(&r, "flash-pop", "fe", "info");
	expect(&r, 0, "one\ntwo\n");

	/* Destroyed (a logout): exit 1, and nothing brought back. */
	RUN(&r, "destroy", "fe");
	expect(&r, 0, "");
	RUN(&r, "flash-push", "fe", "info", "late", "--existing");
	expect(&r, 1, "");
	RUN(&r, "flash-pop", "fe");
	expect(&r, 1, "");

	/* Flashes only: exit 1, its queue kept. */
	RUN(&r, "flash-push", "fe", "info", "first");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-push", "fe", "info", "late", "--existing");
	expect(&r, 1, "");
	RUN(&r, "flash-pop", "fe", "info");
	expect(&r, 0, "first\n");
}

/*
 * destroy-if-flash releases a lock held as a flash queue (PROTOCOL.md): it removes the session
 * only while the type's oldest message is the token given; another holder's token first, or
 * an empty queue, exits 3 with the session kept, and a session gone exits 1. Before, sessctl
 * had no such command (an operator freeing a stuck lock by hand could only destroy, which also
 * removes a lock taken since by another holder).
 */
LEAK_CHECKED_TEST(sessctl, destroy_if_flash_releases_only_its_own_lock)
{
	struct run r;

	RUN(&r, "flash-push", "lk", "lock", "holder-a");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-push", "lk", "lock", "holder-b");
	expect(&r, 0, "2\n");
	RUN(&r, "destroy-if-flash", "lk", "lock", "holder-b");
	cr_assert_str_eq((const char *)r.err.data,
	                 "sessctl: destroy-if-flash: the oldest message of that type is another, "
	                 "or there is none; nothing changed\n");
	expect(&r, 3, "");
	RUN(&r, "destroy-if-flash", "lk", "other", "holder-a");
	expect(&r, 3, "");
	RUN(&r, "--json", "destroy-if-flash", "lk", "lock", "holder-a");
	expect(&r, 0, "{\"ok\":true}\n");
	RUN(&r, "flash-pop", "lk");
	expect(&r, 1, "");
	RUN(&r, "destroy-if-flash", "lk", "lock", "holder-a");
	expect(&r, 1, "");
	RUN(&r, "destroy-if-flash", "lk", "lock");
	expect(&r, 2, "");
}

LEAK_CHECKED_TEST(sessctl, server_error_exits_2)
{
	/* Flashes may hold max_frame / 2 bytes per session: 5 x 120 KB is over. */
	size_t len = 120000;
	char *msg = malloc(len + 1);
	struct run r;
	int last = 0;

	cr_assert_not_null(msg);
	memset(msg, 'm', len);
	msg[len] = '\0';
	for (int i = 0; i < 5; i++) {
		RUN(&r, "flash-push", "lim", "t", msg);
		last = r.status;
		if (last != 0)
			break;
		run_free(&r);
	}
	free(msg);
	cr_assert(strstr((char *)r.err.data, "LIMIT") != NULL, "%s", (char *)r.err.data);
	expect(&r, 2, "");
	cr_assert_eq(last, 2);
}

LEAK_CHECKED_TEST(sessctl, count_list_stats_clear)
{
	struct sessd_options opts = {.ns = "adm", .timeout_ms = 20000};
	struct sessd_client *c;
	struct sessd_batch *b;
	char id[32], *line, *save = NULL;
	uint8_t seen[2345] = {0};
	struct run r;
	size_t lines = 0;
	int k;

	cr_assert_eq(sessd_connect(daemon_.unix_url, &opts, &c), SESSD_OK);
	b = sessd_batch_new(c);
	cr_assert_not_null(b);
	for (int i = 0; i < 2345; i++) {
		snprintf(id, sizeof(id), "adm-%d", i);
		sessd_batch_set(b, id, strlen(id), "v", 1, 600000);
	}
	cr_assert_eq(sessd_batch_run(b), SESSD_OK);
	sessd_batch_free(b);
	sessd_close(c);

	RUN(&r, "--namespace", "adm", "count");
	expect(&r, 0, "2345\n");
	RUN(&r, "count", "--namespace=adm", "--json");
	expect(&r, 0, "{\"count\":2345}\n");
	RUN(&r, "count", "--namespace", "empty-ns");
	expect_warned(&r, 0, "0\n", "empty-ns");

	RUN(&r, "--namespace", "adm", "list");
	cr_assert_eq(r.status, 0);
	for (line = strtok_r((char *)r.out.data, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		unsigned long long ttl;

		cr_assert_eq(sscanf(line, "adm-%d\t%llu", &k, &ttl), 2, "line: %s", line);
		cr_assert(k >= 0 && k < 2345);
		cr_assert(ttl > 0 && ttl <= 600000);
		seen[k] = 1;
		lines++;
	}
	cr_assert_geq(lines, 2345);
	for (int i = 0; i < 2345; i++)
		cr_assert(seen[i], "adm-%d not listed", i);
	expect(&r, 0, NULL);

	RUN(&r, "--namespace", "adm", "list", "--json");
	expect_json(&r);
	cr_assert_eq(((char *)r.out.data)[0], '[');
	cr_assert(strstr((char *)r.out.data, "{\"id\":\"adm-7\",\"ttl_ms\":") != NULL);
	expect(&r, 0, NULL);
	RUN(&r, "--namespace", "empty-ns", "list", "--json");
	expect_warned(&r, 0, "[]\n", "empty-ns");

	RUN(&r, "stats");
	cr_assert(strstr((char *)r.out.data, "\nsessions ") != NULL ||
	          strncmp((char *)r.out.data, "sessions ", 9) == 0);
	cr_assert(strstr((char *)r.out.data, "uptime_ms ") != NULL);
	expect(&r, 0, NULL);
	RUN(&r, "stats", "--json");
	expect_json(&r);
	cr_assert(strstr((char *)r.out.data, "\"requests_total\":") != NULL);
	expect(&r, 0, NULL);
	RUN(&r, "stats", "--namespace", "adm");
	cr_assert(strstr((char *)r.out.data, "sessions 2345\n") != NULL, "%s", (char *)r.out.data);
	expect(&r, 0, NULL);
	RUN(&r, "stats", "--namespace", "adm", "--json");
	expect_json(&r);
	cr_assert(strstr((char *)r.out.data, "\"sessions\":2345") != NULL);
	expect(&r, 0, NULL);

	RUN(&r, "--namespace", "adm", "clear");
	cr_assert(strstr((char *)r.err.data, "--yes") != NULL);
	expect(&r, 2, "");
	RUN(&r, "--namespace", "adm", "count");
	expect(&r, 0, "2345\n");
	RUN(&r, "--namespace", "adm", "clear", "--yes");
	expect(&r, 0, "2345\n");
	/* Cleared, the namespace is gone: clearing it again is clearing nothing that exists. */
	RUN(&r, "--namespace", "adm", "clear", "--yes", "--json");
	expect_warned(&r, 1, "{\"removed\":0}\n", "adm");
	RUN(&r, "--namespace", "adm", "count");
	expect_warned(&r, 0, "0\n", "adm");
}

/* --- The shared secret of a daemon started with --auth-file. --- */

#define AUTH_SECRET "k9Vq0VtJ3wq2b7mXw1eP8rTzL5sYcA4h"

/* Write ${text} to the file ${name} in ${dir}, then give it ${mode}; its path in ${path}. */
static void write_secret(char path[128], const char *dir, const char *name, const char *text,
                         mode_t mode)
{
	int fd;

	snprintf(path, 128, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_neq(fd, -1, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(close(fd), 0);
	cr_assert_eq(chmod(path, mode), 0);
}

/* Expect exit 2 with ${words} in the message, and nothing of the secret. */
static void expect_refused(struct run *r, const char *words)
{
	cr_assert(strstr((char *)r->err.data, words) != NULL, "stderr: %s", (char *)r->err.data);
	cr_assert_null(strstr((char *)r->err.data, "k9Vq0"), "stderr: %s", (char *)r->err.data);
	expect(r, 2, "");
}

/*
 * --auth-file and $SESSD_AUTH_FILE (the option first) give the daemon its secret; without it,
 * with a wrong one, or with a file that is missing or that others can read, sessctl exits 2
 * saying why. A daemon without --auth-file ignores the secret.
 */
LEAK_CHECKED_TEST(sessctl, auth_file_and_env)
{
	char dir[64], right[128], wrong[128], exposed[128], missing[128], opt[400];
	const char *args[] = {"--auth-file", right, NULL};
	struct harness_daemon d;
	struct run r;

	snprintf(dir, sizeof(dir), "/tmp/sessd-ctlauth-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	write_secret(right, dir, "right", AUTH_SECRET "\n", 0600);
	write_secret(wrong, dir, "wrong", "k9Vq0VtJ3wq2b7mXw1eP8rTzL5sYcA4H\n", 0600);
	write_secret(exposed, dir, "exposed", AUTH_SECRET "\n", 0644);
	cr_assert_eq(harness_start(&d, args), 0, "the daemon did not start");

	run_full(&r, d.unix_url, NULL, NULL, 0,
	         (const char *const[]){"--auth-file", right, "set", "a", "guarded", NULL});
	expect(&r, 0, "");
	snprintf(opt, sizeof(opt), "--auth-file=%s", right);
	run_full(&r, d.tcp_url, NULL, NULL, 0, (const char *const[]){"get", "a", opt, NULL});
	expect(&r, 0, "guarded");
	run_full(&r, d.unix_url, right, NULL, 0, (const char *const[]){"get", "a", NULL});
	expect(&r, 0, "guarded");
	/* The option wins over the environment. */
	run_full(&r, d.unix_url, missing, NULL, 0,
	         (const char *const[]){"--auth-file", right, "ping", NULL});
	expect(&r, 0, "pong\n");
	/* An empty variable is no variable. */
	run_full(&r, d.unix_url, "", NULL, 0, (const char *const[]){"ping", NULL});
	expect_refused(&r, "requires authentication");

	run_full(&r, d.unix_url, NULL, NULL, 0, (const char *const[]){"get", "a", NULL});
	expect_refused(&r, "requires authentication");
	run_full(&r, d.tcp_url, NULL, NULL, 0, (const char *const[]){"ping", NULL});
	expect_refused(&r, "--auth-file");
	/* A wrong secret: the first line is libsessd's, naming the address and the refusal
	 * with the daemon's own reason. */
	run_full(&r, d.unix_url, NULL, NULL, 0,
	         (const char *const[]){"--auth-file", wrong, "ping", NULL});
	snprintf(opt, sizeof(opt),
	         "sessctl: cannot connect to %s: the server refused the secret (AUTH_FAILED: ",
	         d.unix_url);
	cr_assert_eq(strncmp((char *)r.err.data, opt, strlen(opt)), 0, "stderr: %s",
	             (char *)r.err.data);
	cr_assert(strstr((char *)r.err.data, "(AUTH_FAILED: wrong") != NULL, "stderr: %s",
	          (char *)r.err.data);
	/* The refusal may be a man in the middle's (PROTOCOL.md, "What sealing does not protect
	 * against"): the hint to send the secret plain says that it would read it. */
	cr_assert(strstr((char *)r.err.data, "Anyone on the path can send this answer too") != NULL,
	          "stderr: %s", (char *)r.err.data);
	expect_refused(&r, "refused the secret");
	run_full(&r, d.unix_url, wrong, NULL, 0, (const char *const[]){"ping", NULL});
	expect_refused(&r, "authentication failed");
	run_full(&r, d.unix_url, NULL, NULL, 0,
	         (const char *const[]){"--auth-file", exposed, "ping", NULL});
	cr_assert(strstr((char *)r.err.data, "other users can access it") != NULL, "stderr: %s",
	          (char *)r.err.data);
	expect_refused(&r, "chmod o-rwx");
	run_full(&r, d.unix_url, missing, NULL, 0, (const char *const[]){"ping", NULL});
	snprintf(opt, sizeof(opt), "sessctl: auth file %s: %s\n", missing, strerror(ENOENT));
	cr_assert_str_eq((char *)r.err.data, opt);
	expect_refused(&r, "No such file");
	/* new-id talks to no server, so it needs no secret. */
	run_full(&r, d.unix_url, missing, NULL, 0, (const char *const[]){"new-id", NULL});
	expect(&r, 0, NULL);
	cr_assert_eq(harness_stop(&d), 0);

	/* The suite's daemon has no --auth-file: it refuses to seal, says so, and lets a plain
	 * secret pass unchecked. */
	run_full(&r, daemon_.unix_url, right, NULL, 0, (const char *const[]){"ping", NULL});
	snprintf(opt, sizeof(opt), "sessctl: cannot connect to %s: ", daemon_.unix_url);
	cr_assert_eq(strncmp((char *)r.err.data, opt, strlen(opt)), 0, "stderr: %s",
	             (char *)r.err.data);
	cr_assert(strstr((char *)r.err.data, "no --auth-file secret to seal") != NULL, "stderr: %s",
	          (char *)r.err.data);
	expect_refused(&r, "--plain-auth");
	run_full(&r, daemon_.unix_url, right, NULL, 0,
	         (const char *const[]){"--plain-auth", "ping", NULL});
	expect(&r, 0, "pong\n");
	unlink(right);
	unlink(wrong);
	unlink(exposed);
	cr_assert_eq(rmdir(dir), 0);
}

/* Whether ${text} holds any 6 bytes in a row of ${secret}. */
static bool shows_part_of(const char *text, const char *secret)
{
	char part[7];

	for (size_t i = 0; i + 6 <= strlen(secret); i++) {
		memcpy(part, secret + i, 6);
		part[6] = '\0';
		if (strstr(text, part) != NULL)
			return true;
	}
	return false;
}

/*
 * The secret itself given where its file's path goes (--auth-file "$SECRET", or
 * $SESSD_AUTH_FILE holding it): sessctl refuses it, saying that the value names no file,
 * and shows none of its bytes on standard output or error (a cron job's end in a log).
 * A path whose directory is there but whose file is not is still shown whole.
 */
LEAK_CHECKED_TEST(sessctl, a_secret_given_as_the_auth_file_is_not_shown)
{
	static const char *const secrets[] = {
	    "Zq3xVb7NmK2pLw9RtY4sHc8D", "/q3x/Vb7NmK2pLw9RtY4s+c8D=", "//3xVb7NmK2pLw9RtY4s+c8D9="};
	char opt[128];

	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		const char *secret = secrets[i];
		struct run r;

		snprintf(opt, sizeof(opt), "--auth-file=%s", secret);
		/* The last, "//" and the root before its last '/', differs in secretpath_shown
		 * only, which all four ways share: one way is enough (0.8 s a secret in ASan). */
		for (int how = 0; how < (i == 2 ? 1 : 4); how++) {
			if (how == 0)
				run_full(
				    &r, daemon_.unix_url, NULL, NULL, 0,
				    (const char *const[]){"--auth-file", secret, "ping", NULL});
			else if (how == 1)
				run_full(&r, daemon_.unix_url, NULL, NULL, 0,
				         (const char *const[]){opt, "list", NULL});
			else if (how == 2)
				run_full(&r, daemon_.unix_url, secret, NULL, 0,
				         (const char *const[]){"get", "a", NULL});
			else
				run_full(&r, daemon_.unix_url, NULL, NULL, 0,
				         (const char *const[]){"--plain-auth", opt, "ping", NULL});
			cr_assert(!shows_part_of((char *)r.out.data, secret), "stdout: %s",
			          (char *)r.out.data);
			cr_assert(!shows_part_of((char *)r.err.data, secret), "stderr: %s",
			          (char *)r.err.data);
			cr_assert(strstr((char *)r.err.data, "names no file") != NULL, "stderr: %s",
			          (char *)r.err.data);
			expect(&r, 2, "");
		}
	}
}

/*
 * A path sessctl names in an error (a --connect socket, an --auth-file, as libsessd words it)
 * is shown escaped, as ids are: one holding a newline and a forged line, or ESC, stays on the
 * line that names it. Before, both were printed as given.
 */
LEAK_CHECKED_TEST(sessctl, a_path_cannot_forge_a_line_of_its_error)
{
	static const char forged[] = "\n2026-01-01T00:00:00.000Z error forged\x1b[31m\\";
	static const char escaped[] = "\\x0a2026-01-01T00:00:00.000Z error forged\\x1b[31m\\x5c";
	char url[160], path[160];
	struct run r;

	snprintf(url, sizeof(url), "unix:/nonexistent/sock%s", forged);
	snprintf(path, sizeof(path), "/tmp/sessctl-no-such-secret%s", forged);
	for (int how = 0; how < 2; how++) {
		if (how == 0)
			run_full(&r, url, NULL, NULL, 0, (const char *const[]){"ping", NULL});
		else
			run_full(&r, daemon_.unix_url, NULL, NULL, 0,
			         (const char *const[]){"--auth-file", path, "ping", NULL});
		cr_expect(strstr((char *)r.err.data, escaped) != NULL, "stderr: %s",
		          (char *)r.err.data);
		cr_expect(strstr((char *)r.err.data, "\n2026-01-01T00:00:00.000Z error forged") ==
		              NULL,
		          "a forged line: %s", (char *)r.err.data);
		/* No socket: not reached; an auth file not there: a mistake. */
		expect(&r, how == 0 ? 4 : 2, "");
	}
}

/*
 * Start sessctl with ${args} (NULL-terminated), its standard input a pipe whose write end is
 * returned in *${in_fd} (the caller writes, then closes it), its standard error a pipe whose
 * read end is returned in *${err_fd}, its standard output discarded. Returns its pid.
 */
static pid_t spawn_with_input(const char *const *args, int *in_fd, int *err_fd)
{
	const char *argv[16] = {getenv("SESSCTL_BIN")};
	int in_pipe[2], err_pipe[2], argc = 1;
	posix_spawn_file_actions_t fa;
	pid_t pid;

	cr_assert_not_null(argv[0], "SESSCTL_BIN is not set");
	for (size_t i = 0; args[i] != NULL && argc < 15; i++)
		argv[argc++] = args[i];
	cr_assert_eq(pipe2(in_pipe, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(err_pipe, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(in_pipe[0]);
	close(err_pipe[1]);
	*in_fd = in_pipe[1];
	*err_fd = err_pipe[0];
	return pid;
}

static void wait_blocked_in(pid_t pid, const char *wchan_part);

/*
 * A command whose sealed SET a party on the path holds (the faultproxy's HOLD: the client's
 * side reset, sessd's kept open) times out; sessctl retires that connection before it exits
 * (PROTOCOL.md, "RETIRE"), so the record, let through once sessctl has said the set failed,
 * is not carried out. Without the RETIRE it is, and a set reported failed lands later.
 */
LEAK_CHECKED_TEST(sessctl, a_failed_sealed_set_is_retired_before_sessctl_exits)
{
	char dir[64], secret[128], err[4096] = "";
	const char *args[] = {"--auth-file", secret, NULL};
	struct harness_daemon d;
	struct faultproxy proxy;
	struct run r;
	int in_fd, err_fd, status;
	int64_t t0;
	ssize_t n;
	pid_t pid;

	snprintf(dir, sizeof(dir), "/tmp/sessd-ctlretire-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	write_secret(secret, dir, "secret", AUTH_SECRET "\n", 0600);
	cr_assert_eq(harness_start(&d, args), 0, "the daemon did not start");
	cr_assert_eq(faultproxy_start(&proxy, d.tcp_url), 0, "the relay did not start");
	/* set reads its value from standard input after its HELLO: the hold is put on the
	 * connection in between. */
	pid = spawn_with_input((const char *const[]){"--connect", proxy.url, "--auth-file", secret,
	                                             "--timeout", "500", "--ttl", "60", "set",
	                                             "held", NULL},
	                       &in_fd, &err_fd);
	/* Waiting for its read, not a guessed 300 ms: on a loaded machine a sealed HELLO through
	 * the relay took longer, the hold caught it, and sessctl failed its HELLO instead. */
	wait_blocked_in(pid, "pipe_read");
	cr_assert_eq(faultproxy_set(&proxy, FAULTPROXY_UP, FAULTPROXY_HOLD, 0), 0);
	/* A sessctl gone already (its HELLO failed) is a failed write, not a SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(write(in_fd, "alice", 5), 5, "sessctl did not wait for its input");
	close(in_fd);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	n = read(err_fd, err, sizeof(err) - 1);
	err[n > 0 ? n : 0] = '\0';
	close(err_fd);
	/* The SET left whole: 5, it may have been carried out (when the record reached sessd
	 * before the RETIRE); 4 says it was not. */
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 5, "exit %d; stderr: %s",
	          WIFEXITED(status) ? WEXITSTATUS(status) : -1, err);
	cr_assert(strstr(err, "set") != NULL && strstr(err, "timed out") != NULL, "stderr: %s",
	          err);
	cr_assert_null(strstr(err, "could not retire"), "stderr: %s", err);
	/* The held record goes to sessd at last (when the RETIRE has closed sessd's side, the
	 * relay has dropped it), and has time to be carried out. */
	cr_assert_eq(faultproxy_set(&proxy, FAULTPROXY_UP, FAULTPROXY_PASS, 0), 0);
	t0 = harness_mono_ms();
	while (faultproxy_held(&proxy, FAULTPROXY_UP) > 0 && harness_mono_ms() - t0 < 2000)
		usleep(10000);
	usleep(300000);
	run_full(&r, d.unix_url, secret, NULL, 0, (const char *const[]){"get", "held", NULL});
	cr_assert_eq(r.status, 1, "the held SET was carried out after sessctl exited: exit %d, %s",
	             r.status, (char *)r.out.data);
	run_free(&r);
	cr_expect_eq(faultproxy_stop(&proxy), 0, "the relay ran cleanly");
	cr_assert_eq(harness_stop(&d), 0);
	unlink(secret);
	cr_assert_eq(rmdir(dir), 0);
}

/*
 * A daemon with --admin-auth-file: sessctl with the apps' secret does what apps do, and is
 * told, for list, namespaces and clear, to give the admin secret's file with --auth-file; a
 * count of nothing says nothing about namespaces it may not see. With the admin secret, sealed
 * or plain, every command works.
 */
LEAK_CHECKED_TEST(sessctl, admin_commands_need_the_admin_secret)
{
	char dir[64], app[128], admin[128];
	const char *args[] = {"--auth-file", app, "--admin-auth-file", admin, NULL};
	static const char *const refused[][3] = {
	    {"list", NULL}, {"namespaces", NULL}, {"clear", "--yes", NULL}};
	struct harness_daemon d;
	struct run r;

	snprintf(dir, sizeof(dir), "/tmp/sessd-ctladmin-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	write_secret(app, dir, "app", AUTH_SECRET "\n", 0600);
	write_secret(admin, dir, "admin", "k9Vq0 the admin secret, not the app's\n", 0600);
	cr_assert_eq(harness_start(&d, args), 0, "the daemon did not start");

	run_full(&r, d.unix_url, app, NULL, 0, (const char *const[]){"set", "a", "kept", NULL});
	expect(&r, 0, "");
	run_full(&r, d.unix_url, app, NULL, 0,
	         (const char *const[]){"--namespace", "empty", "count", NULL});
	expect(&r, 0, "0\n");
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		run_full(&r, d.unix_url, app, NULL, 0, refused[i]);
		cr_assert(strstr((char *)r.err.data, "needs the admin secret") != NULL,
		          "%s: stderr: %s", refused[i][0], (char *)r.err.data);
		cr_assert(strstr((char *)r.err.data, "--admin-auth-file) with --auth-file FILE") !=
		              NULL,
		          "%s: stderr: %s", refused[i][0], (char *)r.err.data);
		expect(&r, 2, "");
	}
	run_full(&r, d.unix_url, admin, NULL, 0, (const char *const[]){"list", NULL});
	cr_assert(strncmp((char *)r.out.data, "a\t", 2) == 0, "stdout: %s", (char *)r.out.data);
	expect(&r, 0, NULL);
	run_full(&r, d.unix_url, admin, NULL, 0,
	         (const char *const[]){"--plain-auth", "namespaces", NULL});
	expect(&r, 0, "default\t1\n");
	run_full(&r, d.unix_url, admin, NULL, 0, (const char *const[]){"clear", "--yes", NULL});
	expect(&r, 0, "1\n");
	cr_assert_eq(harness_stop(&d), 0);
	unlink(app);
	unlink(admin);
	cr_assert_eq(rmdir(dir), 0);
}

/*
 * Sealed by default: with the secret (option or environment) every command works against a
 * daemon with --auth-file, over Unix and TCP, and --plain-auth works too. A sealed sessctl
 * does not get into a daemon without --auth-file (which refuses to seal: a plain secret would
 * pass), and says how to get in; --plain-auth does. --plain-auth needs a secret, except for
 * new-id, which talks to no server.
 */
LEAK_CHECKED_TEST(sessctl, sealed_and_plain_auth)
{
	char dir[64], right[128], wrong[128];
	const char *args[] = {"--auth-file", right, NULL};
	const char *urls[2];
	struct harness_daemon d;
	struct run r;

	snprintf(dir, sizeof(dir), "/tmp/sessd-ctlseal-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	write_secret(right, dir, "right", AUTH_SECRET "\n", 0600);
	write_secret(wrong, dir, "wrong", "k9Vq0VtJ3wq2b7mXw1eP8rTzL5sYcA4H\n", 0600);
	cr_assert_eq(harness_start(&d, args), 0, "the daemon did not start");
	urls[0] = d.unix_url;
	urls[1] = d.tcp_url;

	for (int i = 0; i < 2; i++) {
		run_full(&r, urls[i], right, "sealed data", 11,
		         (const char *const[]){"set", "s", NULL});
		expect(&r, 0, "");
		run_full(&r, urls[i], right, NULL, 0, (const char *const[]){"get", "s", NULL});
		expect(&r, 0, "sealed data");
		run_full(&r, urls[i], NULL, NULL, 0,
		         (const char *const[]){"--auth-file", right, "flash-push", "s", "info",
		                               "hello", NULL});
		expect(&r, 0, "1\n");
		run_full(&r, urls[i], right, NULL, 0,
		         (const char *const[]){"flash-pop", "s", "--json", NULL});
		expect(&r, 0, "{\"info\":[\"hello\"]}\n");
		run_full(&r, urls[i], right, NULL, 0,
		         (const char *const[]){"touch", "s", "--ttl", "60", NULL});
		expect(&r, 0, "");
		run_full(&r, urls[i], right, NULL, 0, (const char *const[]){"count", NULL});
		expect(&r, 0, "1\n");
		run_full(&r, urls[i], right, NULL, 0, (const char *const[]){"list", NULL});
		cr_assert_eq(strncmp((char *)r.out.data, "s\t", 2), 0, "%s", (char *)r.out.data);
		expect(&r, 0, NULL);
		run_full(&r, urls[i], right, NULL, 0, (const char *const[]){"stats", NULL});
		expect(&r, 0, NULL);
		run_full(&r, urls[i], right, NULL, 0,
		         (const char *const[]){"--plain-auth", "get", "s", NULL});
		expect(&r, 0, "sealed data");
		run_full(&r, urls[i], right, NULL, 0, (const char *const[]){"destroy", "s", NULL});
		expect(&r, 0, "");
		run_full(&r, urls[i], right, NULL, 0, (const char *const[]){"get", "s", NULL});
		expect(&r, 1, "");
	}
	/* A wrong secret, sealed or plain: refused either way. */
	run_full(&r, d.unix_url, wrong, NULL, 0, (const char *const[]){"ping", NULL});
	expect_refused(&r, "refused the secret");
	run_full(&r, d.unix_url, wrong, NULL, 0,
	         (const char *const[]){"--plain-auth", "ping", NULL});
	expect_refused(&r, "refused the secret");
	cr_assert_eq(harness_stop(&d), 0);

	run_full(&r, daemon_.tcp_url, NULL, NULL, 0,
	         (const char *const[]){"--auth-file", right, "ping", NULL});
	expect_refused(&r, "--plain-auth");
	run_full(&r, daemon_.tcp_url, NULL, NULL, 0,
	         (const char *const[]){"--auth-file", right, "ping", "--plain-auth", NULL});
	expect(&r, 0, "pong\n");
	run_full(&r, daemon_.unix_url, NULL, NULL, 0,
	         (const char *const[]){"--plain-auth", "ping", NULL});
	expect_refused(&r, "--plain-auth needs a secret");
	run_full(&r, daemon_.unix_url, "", NULL, 0,
	         (const char *const[]){"--plain-auth", "ping", NULL});
	expect_refused(&r, "--plain-auth needs a secret");
	run_full(&r, daemon_.unix_url, NULL, NULL, 0,
	         (const char *const[]){"--plain-auth", "new-id", NULL});
	expect(&r, 0, NULL);
	unlink(right);
	unlink(wrong);
	cr_assert_eq(rmdir(dir), 0);
}

/* --- Namespaces: listing them, and saying when the one asked about is not there. --- */

/* Store ${data} as session ${id} of namespace ${ns}, through libsessd. */
static void put(const char *ns, const char *id, const char *data)
{
	struct sessd_options opts = {.ns = ns, .timeout_ms = 20000};
	struct sessd_client *c;

	cr_assert_eq(sessd_connect(daemon_.unix_url, &opts, &c), SESSD_OK);
	cr_assert_eq(sessd_set(c, id, strlen(id), data, strlen(data), 600000), SESSD_OK);
	sessd_close(c);
}

/*
 * Read sessctl's output from ${out_fd} into r->out and its errors from ${err_fd} into r->err
 * until both end, and close them.
 */
static void collect_output(struct run *r, int out_fd, int err_fd)
{
	struct pollfd pfd[2] = {{.fd = out_fd, .events = POLLIN}, {.fd = err_fd, .events = POLLIN}};

	while (pfd[0].fd != -1 || pfd[1].fd != -1) {
		cr_assert_neq(poll(pfd, 2, 60000), 0, "sessctl hangs");
		for (int i = 0; i < 2; i++)
			if (pfd[i].revents && !drain(pfd[i].fd, i == 0 ? &r->out : &r->err)) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
			}
	}
}

/*
 * A new pseudo-terminal, both ends closed on exec: returns its master's side; ${slave} is
 * given the other end and ${t} its attributes, for the caller to change and set.
 */
static int open_terminal(int *slave, struct termios *t)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);

	cr_assert_geq(master, 0, "posix_openpt: %s", strerror(errno));
	cr_assert_eq(grantpt(master), 0);
	cr_assert_eq(unlockpt(master), 0);
	*slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
	cr_assert_geq(*slave, 0, "%s: %s", ptsname(master), strerror(errno));
	cr_assert_eq(tcgetattr(*slave, t), 0);
	return master;
}

/*
 * Run sessctl ${args} against the daemon with a terminal for its standard input, on which
 * ${typed} is typed (its line discipline's: "\x04" at the start of a line is Ctrl-D, the end).
 */
static void run_on_terminal(struct run *r, const char *typed, const char *const *args)
{
	static const char *const unset[] = {"SESSD_URL=", "SESSD_AUTH_FILE=", NULL};
	const char *argv[16];
	char env_url[400], *envp[256];
	int master, slave, out_pipe[2], err_pipe[2], envc;
	posix_spawn_file_actions_t fa;
	struct termios t;
	pid_t pid;

	envc = run_begin(r, argv, args, envp, unset);
	snprintf(env_url, sizeof(env_url), "SESSD_URL=%s", daemon_.unix_url);
	envp[envc++] = env_url;
	envp[envc] = NULL;
	master = open_terminal(&slave, &t);
	/* No echo: nothing reads the master's side, whose buffer would fill. */
	t.c_lflag &= ~(tcflag_t)ECHO;
	cr_assert_eq(tcsetattr(slave, TCSANOW, &t), 0);
	cr_assert_eq(pipe2(out_pipe, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(err_pipe, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, slave, 0);
	posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, envp), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(slave);
	close(out_pipe[1]);
	close(err_pipe[1]);
	/* Typed ahead: the terminal keeps it until sessctl reads. */
	cr_assert_eq(write(master, typed, strlen(typed)), (ssize_t)strlen(typed));
	collect_output(r, out_pipe[0], err_pipe[0]);
	close(master);
	run_end(r, pid);
}

/*
 * set without DATA reads it from standard input. An operator who forgot DATA saw sessctl wait
 * without a word, and the Ctrl-D meant to leave stored empty data over the session. From a
 * terminal sessctl now says what it waits for, and nothing typed stores nothing.
 */
LEAK_CHECKED_TEST(sessctl, set_from_a_terminal_says_so_and_stores_no_empty_data)
{
	struct run r;

	put("default", "typed", "old");
	run_on_terminal(&r, "\x04", (const char *const[]){"set", "typed", NULL});
	cr_assert(strstr((char *)r.err.data, "reading the data from the terminal") != NULL,
	          "stderr: %s", (char *)r.err.data);
	cr_assert(strstr((char *)r.err.data, "nothing typed, nothing stored") != NULL, "stderr: %s",
	          (char *)r.err.data);
	expect(&r, 2, "");
	RUN(&r, "get", "typed");
	expect(&r, 0, "old");
	/* What is typed is stored, as from a pipe. */
	run_on_terminal(&r, "new\n\x04", (const char *const[]){"set", "typed", NULL});
	cr_assert_eq(r.status, 0, "stderr: %s", (char *)r.err.data);
	run_free(&r);
	RUN(&r, "get", "typed");
	expect(&r, 0, "new\n");
	/* Empty data is still given as an argument. */
	RUN(&r, "set", "typed", "");
	expect(&r, 0, "");
	RUN(&r, "get", "typed");
	expect(&r, 0, "");
}

/* Whether ${line} and a newline are one of the lines of ${out}. */
static bool has_line(const struct run *r, const char *line)
{
	const char *out = (const char *)r->out.data;
	size_t n = strlen(line);

	for (const char *p = out; (p = strstr(p, line)) != NULL; p++)
		if ((p == out || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

static size_t count_lines(const struct run *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->out.len; i++)
		n += ((const char *)r->out.data)[i] == '\n';
	return n;
}

LEAK_CHECKED_TEST(sessctl, namespaces_lists_every_namespace)
{
	struct sessd_options opts = {.timeout_ms = 20000};
	struct sessd_client *c;
	struct sessd_namespaces *page;
	char ns[16];
	struct run r;
	uint64_t cursor = 0;
	size_t seen = 0;

	RUN(&r, "namespaces");
	expect(&r, 0, "");
	RUN(&r, "namespaces", "--json");
	expect(&r, 0, "[]\n");
	put("shop", "a", "1");
	put("shop", "b", "2");
	put("shop", "c", "3");
	put("default", "d", "4");
	RUN(&r, "namespaces");
	cr_assert(has_line(&r, "shop\t3"), "%s", (char *)r.out.data);
	cr_assert(has_line(&r, "default\t1"), "%s", (char *)r.out.data);
	cr_assert_eq(count_lines(&r), 2);
	expect(&r, 0, NULL);
	RUN(&r, "--json", "namespaces");
	expect_json(&r);
	cr_assert(strstr((char *)r.out.data, "{\"name\":\"shop\",\"sessions\":3}") != NULL);
	cr_assert(strstr((char *)r.out.data, "{\"name\":\"default\",\"sessions\":1}") != NULL);
	expect(&r, 0, NULL);
	/* Whatever --namespace says, every namespace is listed. */
	RUN(&r, "--namespace", "shp", "namespaces");
	cr_assert_eq(count_lines(&r), 2);
	expect(&r, 0, NULL);

	/* Past one page of the server's, sessctl walks every page. */
	cr_assert_eq(sessd_connect(daemon_.unix_url, &opts, &c), SESSD_OK);
	for (int i = 0; i < 1100; i++) {
		snprintf(ns, sizeof(ns), "ns-%04d", i);
		cr_assert_eq(sessd_set_namespace(c, ns), SESSD_OK);
		cr_assert_eq(sessd_set(c, "x", 1, "v", 1, 600000), SESSD_OK);
	}
	/* libsessd's pages: never more than asked for, the last with cursor 0. */
	do {
		cr_assert_eq(sessd_namespaces(c, cursor, 100, &page), SESSD_OK, "%s",
		             sessd_errmsg(c));
		cr_assert_leq(page->count, 100);
		for (size_t i = 0; i < page->count; i++)
			cr_assert_eq(strlen(page->items[i].name), page->items[i].name_len);
		seen += page->count;
		cursor = page->next_cursor;
		sessd_namespaces_free(page);
	} while (cursor != 0);
	cr_assert_eq(seen, 1102);
	cr_assert_eq(sessd_namespaces(c, 0, 10, NULL), SESSD_ERR_USAGE);
	sessd_close(c);
	RUN(&r, "namespaces");
	cr_assert_eq(count_lines(&r), 1102);
	cr_assert(has_line(&r, "ns-0000\t1") && has_line(&r, "ns-1099\t1"));
	expect(&r, 0, NULL);
}

LEAK_CHECKED_TEST(sessctl, a_namespace_that_does_not_exist_is_named)
{
	struct run r;
	char ns[16];

	/* An empty server has none. */
	RUN(&r, "count");
	expect_warned_has(&r, 0, "0\n", "default", "none");
	put("shop", "a", "1");
	put("shop", "b", "2");
	put("default", "d", "4");
	/* The incident: a mistyped namespace. Output as before, and a warning. */
	RUN(&r, "--namespace", "shp", "count");
	expect_warned_has(&r, 0, "0\n", "shp", "default, shop");
	RUN(&r, "--namespace", "shp", "count", "--json");
	expect_warned(&r, 0, "{\"count\":0}\n", "shp");
	RUN(&r, "--namespace", "shp", "list");
	expect_warned(&r, 0, "", "shp");
	RUN(&r, "--namespace", "shp", "list", "--json");
	expect_warned(&r, 0, "[]\n", "shp");
	RUN(&r, "--namespace", "shp", "stats");
	expect_warned(&r, 0, "sessions 0\nunread 0\nevicted_total 0\nbytes 0\nflashes 0\n", "shp");
	RUN(&r, "--namespace", "shp", "clear");
	expect(&r, 2, ""); /* still needs --yes, and checks nothing before */
	/* clear --yes of a namespace that does not exist is a failure, not "0 removed". */
	RUN(&r, "--namespace", "shp", "clear", "--yes");
	expect_warned_has(&r, 1, "0\n", "shp", "default, shop");
	RUN(&r, "--namespace", "shp", "clear", "--yes", "--json");
	expect_warned(&r, 1, "{\"removed\":0}\n", "shp");
	/* Namespaces that exist: no warning. */
	RUN(&r, "--namespace", "shop", "count");
	expect(&r, 0, "2\n");
	RUN(&r, "count");
	expect(&r, 0, "1\n");
	RUN(&r, "stats");
	expect(&r, 0, NULL);
	RUN(&r, "--namespace", "shop", "clear", "--yes");
	expect(&r, 0, "2\n");
	/* Emptied, a namespace is gone (PROTOCOL.md, NAMESPACES). */
	RUN(&r, "--namespace", "shop", "clear", "--yes");
	expect_warned_has(&r, 1, "0\n", "shop", "default");
	RUN(&r, "destroy", "d");
	expect(&r, 0, "");
	RUN(&r, "count");
	expect_warned_has(&r, 0, "0\n", "default", "none");
	/* Many namespaces: the first ten in byte order, and how many more. */
	for (int i = 11; i >= 0; i--) {
		snprintf(ns, sizeof(ns), "n%02d", i);
		put(ns, "x", "v");
	}
	RUN(&r, "count");
	expect_warned_has(&r, 0, "0\n", "default",
	                  "n00, n01, n02, n03, n04, n05, n06, n07, n08, n09 and 2 more");
	/* A name's odd bytes are shown escaped, on one line. */
	RUN(&r, "--namespace", "a\nb\\", "count");
	expect_warned(&r, 0, "0\n", "a\\x0ab\\x5c");
}

/* Store ${data} as session ${id}, ${id_len} bytes, of namespace ${ns}, through libsessd. */
static void put_bytes(const char *ns, const char *id, size_t id_len, const char *data)
{
	struct sessd_options opts = {.ns = ns, .timeout_ms = 20000};
	struct sessd_client *c;

	cr_assert_eq(sessd_connect(daemon_.unix_url, &opts, &c), SESSD_OK);
	cr_assert_eq(sessd_set(c, id, id_len, data, strlen(data), 600000), SESSD_OK);
	sessd_close(c);
}

/* Whether one line of ${r}'s output starts with ${start}. */
static bool has_line_starting(const struct run *r, const char *start)
{
	const char *out = (const char *)r->out.data;

	for (const char *p = out; (p = strstr(p, start)) != NULL; p++)
		if (p == out || p[-1] == '\n')
			return true;
	return false;
}

/*
 * Ids are opaque bytes: printed raw, a newline or tab in one broke list's "id<TAB>ttl" lines
 * (and find's and namespaces'). They are printed with such bytes, and the backslash, as \xNN,
 * which every command taking an id, and --namespace, read back.
 */
LEAK_CHECKED_TEST(sessctl, odd_ids_are_printed_escaped_and_read_back)
{
	struct run r;

	put_bytes("odd", "a\nb", 3, "v-nl");
	put_bytes("odd", "a\tb", 3, "v-tab");
	put_bytes("odd", "a\\b", 3, "v-bs");
	put_bytes("odd", "n\0l", 3, "v-nul");
	put_bytes("odd", "\xff", 1, "v-ff");
	put_bytes("odd", "plain", 5, "v-plain");
	put_bytes("o\td", "x", 1, "v");

	RUN(&r, "--namespace", "odd", "list");
	cr_assert_eq(count_lines(&r), 6, "%s", (char *)r.out.data);
	cr_assert(has_line_starting(&r, "a\\x0ab\t"), "%s", (char *)r.out.data);
	cr_assert(has_line_starting(&r, "a\\x09b\t"), "%s", (char *)r.out.data);
	cr_assert(has_line_starting(&r, "a\\x5cb\t"), "%s", (char *)r.out.data);
	cr_assert(has_line_starting(&r, "n\\x00l\t"), "%s", (char *)r.out.data);
	cr_assert(has_line_starting(&r, "\\xff\t"), "%s", (char *)r.out.data);
	cr_assert(has_line_starting(&r, "plain\t"), "%s", (char *)r.out.data);
	expect(&r, 0, NULL);
	/* --json escapes as JSON does, as before. */
	RUN(&r, "--namespace", "odd", "list", "--json");
	cr_assert(strstr((char *)r.out.data, "\"a\\nb\"") != NULL, "%s", (char *)r.out.data);
	expect_json(&r);
	expect(&r, 0, NULL);

	RUN(&r, "--namespace", "odd", "find", "v-");
	cr_assert_eq(count_lines(&r), 6, "%s", (char *)r.out.data);
	cr_assert(has_line(&r, "a\\x0ab") && has_line(&r, "a\\x09b") && has_line(&r, "a\\x5cb"),
	          "%s", (char *)r.out.data);
	expect(&r, 0, NULL);
	RUN(&r, "namespaces");
	cr_assert(has_line(&r, "o\\x09d\t1") && has_line(&r, "odd\t6"), "%s", (char *)r.out.data);
	expect(&r, 0, NULL);

	/* What was printed names the session again, either case of hex digits. */
	RUN(&r, "--namespace", "odd", "get", "a\\x0ab");
	expect(&r, 0, "v-nl");
	RUN(&r, "--namespace", "odd", "get", "a\\x09b");
	expect(&r, 0, "v-tab");
	RUN(&r, "--namespace", "odd", "get", "a\\x5Cb");
	expect(&r, 0, "v-bs");
	RUN(&r, "--namespace", "odd", "get", "n\\x00l");
	expect(&r, 0, "v-nul");
	RUN(&r, "--namespace", "odd", "get", "\\xFF");
	expect(&r, 0, "v-ff");
	/* A backslash not followed by x and two hex digits is itself. */
	RUN(&r, "--namespace", "odd", "get", "a\\b");
	expect(&r, 0, "v-bs");
	RUN(&r, "--namespace", "odd", "get", "a\\x0");
	expect(&r, 1, "");
	/* The raw bytes still work. */
	RUN(&r, "--namespace", "odd", "get", "a\tb");
	expect(&r, 0, "v-tab");
	RUN(&r, "--namespace", "odd", "set", "n\\x00l", "w-nul");
	expect(&r, 0, "");
	RUN(&r, "--namespace", "odd", "touch", "n\\x00l", "--ttl", "60");
	expect(&r, 0, "");
	RUN(&r, "--namespace", "odd", "get", "n\\x00l");
	expect(&r, 0, "w-nul");
	RUN(&r, "--namespace", "odd", "destroy", "a\\x0ab");
	expect(&r, 0, "");
	RUN(&r, "--namespace", "odd", "count");
	expect(&r, 0, "5\n");
	RUN(&r, "--namespace", "o\\x09d", "get", "x");
	expect(&r, 0, "v");
	/* An id's length is counted decoded: 128 escaped bytes are 512 characters. */
	{
		char id[4 * 129 + 1];

		for (int i = 0; i < 128; i++)
			memcpy(id + 4 * i, "\\x01", 4);
		id[4 * 128] = '\0';
		RUN(&r, "--namespace", "odd", "set", id, "x");
		expect(&r, 0, "");
		memcpy(id + 4 * 128, "\\x01", 5);
		RUN(&r, "--namespace", "odd", "set", id, "x");
		expect(&r, 2, "");
	}
}

/*
 * A namespace is any 1..64 bytes, a NUL too (PROTOCOL.md): namespaces printed a name with one
 * as \x00, and --namespace refused it ("a namespace cannot hold the byte \x00"), so what
 * sessctl listed it could not name back. It reads a NUL like any other escaped byte now.
 */
LEAK_CHECKED_TEST(sessctl, a_namespace_holding_a_nul_is_named_as_printed)
{
	struct codec_request req = {.op = CODEC_OP_SET, .ttl_ms = 600000};
	struct run r;
	int fd = harness_open_ready(daemon_.unix_url, "nul-writer");

	req.ns = (struct mp_bytes){(const uint8_t *)"a\0b", 3};
	req.id = (struct mp_bytes){(const uint8_t *)"s1", 2};
	req.data = (struct mp_bytes){(const uint8_t *)"v-nul-ns", 8};
	cr_assert_eq(harness_request(fd, &req, NULL, NULL), CODEC_OK);
	close(fd);

	RUN(&r, "namespaces");
	cr_assert(has_line(&r, "a\\x00b\t1"), "%s", (char *)r.out.data);
	expect(&r, 0, NULL);
	RUN(&r, "--namespace", "a\\x00b", "get", "s1");
	expect(&r, 0, "v-nul-ns");
	RUN(&r, "--namespace", "a\\x00b", "set", "s2", "w");
	expect(&r, 0, "");
	RUN(&r, "--namespace", "a\\x00b", "count");
	expect(&r, 0, "2\n");
	RUN(&r, "--namespace", "a\\x00b", "list");
	cr_assert_eq(count_lines(&r), 2, "%s", (char *)r.out.data);
	expect(&r, 0, NULL);
	/* Not "a" nor "a\x00b" cut at the NUL: the three bytes. */
	RUN(&r, "--namespace", "a", "count");
	expect_warned(&r, 0, "0\n", "a");
	RUN(&r, "--namespace", "a\\x00b", "clear", "--yes");
	expect(&r, 0, NULL);
	RUN(&r, "--namespace", "a\\x00b", "count");
	expect_warned(&r, 0, "0\n", "a\\x00b");
}

/* Let the stopped daemon ${pid} go after ${seconds}, whatever the test does meanwhile. */
static pid_t continue_later(pid_t pid, unsigned seconds)
{
	pid_t waker;

	fflush(NULL);
	waker = fork();
	cr_assert_geq(waker, 0);
	if (waker == 0) {
		sleep(seconds);
		kill(pid, SIGCONT);
		_exit(0);
	}
	return waker;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * count and clear wait 60 s by default for their reply (a mass expiry puts them off), but a
 * hung daemon must not make them take 60 s to say so: the connect and HELLO have the default
 * 5 s. The daemon is let go after 25 s, so that without that this fails rather than hangs.
 */
LEAK_CHECKED_TEST(sessctl, count_and_clear_give_up_on_a_hung_daemon_soon)
{
	const char *cmds[2][3] = {{"count", NULL, NULL}, {"clear", "--yes", NULL}};
	struct timespec t0;
	struct run r;
	double took;
	pid_t waker;
	int st;

	put("default", "a", "1");
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(harness_sigstop(daemon_.pid), 0);
		waker = continue_later(daemon_.pid, 25);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		run_in(&r, NULL, 0, cmds[i]);
		took = seconds_since(&t0);
		kill(waker, SIGKILL);
		cr_assert_eq(waitpid(waker, &st, 0), waker);
		cr_assert_eq(kill(daemon_.pid, SIGCONT), 0);
		/* Not a timing target: it tells the 5 s of HELLO from the 60 s of the reply. */
		cr_assert_lt(took, 20.0, "%s took %.1f s", cmds[i][0], took);
		cr_assert(strstr((char *)r.err.data, "HELLO") != NULL, "%s", (char *)r.err.data);
		expect(&r, 4, "");
	}
	/* The daemon goes on, and the long timeout is still there for the reply. */
	RUN(&r, "count");
	expect(&r, 0, "1\n");
	RUN(&r, "clear", "--yes");
	expect(&r, 0, "1\n");
}

/* The name of a figure the fake server below sends in STATS. */
#define FORGED_FIGURE "x\x1b]2;owned\x07\nconnections_total"

/*
 * An older sessd answers NAMESPACES and TTL with UNKNOWN_OP: a fake one, which answers COUNT
 * and CLEAR 0, LIST an empty page, GET the data "old", STATS a figure named FORGED_FIGURE and
 * HELLO as sessd does, in a child that serves one connection.
 */
static int old_server_answer(int fd, const struct codec_request *req)
{
	struct buf r;
	size_t at;
	int rc;

	buf_init(&r);
	if (req->op == CODEC_OP_NAMESPACES || req->op == CODEC_OP_TTL) {
		rc = codec_reply_error(&r, req->request_id, CODEC_UNKNOWN_OP, "unknown opcode");
	} else if (codec_reply_open(&r, req->request_id, CODEC_OK, &at) == -1) {
		rc = -1;
	} else {
		if (req->op == CODEC_OP_HELLO)
			rc = harness_write_hello_result(&r);
		else if (req->op == CODEC_OP_LIST)
			rc = mp_write_array(&r, 2) | mp_write_uint(&r, 0) | mp_write_array(&r, 0);
		else if (req->op == CODEC_OP_GET)
			rc = mp_write_bin(&r, "old", 3);
		else if (req->op == CODEC_OP_STATS)
			/* A figure whose name would retitle the terminal and forge a line. */
			rc = mp_write_map(&r, 2) | mp_write_str(&r, "sessions", 8) |
			     mp_write_uint(&r, 1) |
			     mp_write_str(&r, FORGED_FIGURE, strlen(FORGED_FIGURE)) |
			     mp_write_uint(&r, 7);
		else
			rc = mp_write_uint(&r, 0);
		rc |= codec_frame_close(&r, at);
	}
	if (rc == 0)
		rc = harness_send_all(fd, r.data, r.len);
	buf_finish(&r);
	return rc;
}

/* Answers one request on ${fd}: returns 0 to go on, -1 to close the connection. */
typedef int (*fake_answer_fn)(int fd, const struct codec_request *req);

/* Serve ${conns} connections, each request answered by ${answer}; gives up after 10 s without
 * one, so that a test that fails before making them all leaves no process behind. */
static void fake_serve(int lfd, int conns, fake_answer_fn answer)
{
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	struct timeval tv = {.tv_sec = 10};
	struct codec_request req;
	uint32_t status;
	const char *why;
	uint8_t *body;
	size_t len;
	int fd, rc;

	for (int i = 0; i < conns; i++) {
		if (poll(&pfd, 1, 10000) != 1 || (fd = accept(lfd, NULL, NULL)) == -1)
			_exit(1);
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		rc = 0;
		while (rc == 0 && harness_recv_frame(fd, &body, &len) == 0) {
			rc = codec_decode_request(body, len, &req, &status, &why) == 0
			         ? answer(fd, &req)
			         : -1;
			free(body);
		}
		close(fd);
	}
	_exit(0);
}

/*
 * A listening Unix socket for a fake server, in a new directory made from the template
 * ${dir}: its address in ${sa}, its URL in ${url}. Returns the listening descriptor.
 */
static int fake_listen(char *dir, struct sockaddr_un *sa, char *url, size_t url_size)
{
	int lfd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/s.sock", dir);
	snprintf(url, url_size, "unix:%s", sa->sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)sa, sizeof(*sa)), 0);
	cr_assert_eq(listen(lfd, 8), 0);
	return lfd;
}

/*
 * A fake server in a child, serving ${conns} connections with ${answer} on a new socket in
 * ${dir} (a mkdtemp template): its address in ${sa} and URL in ${url}. Returns the child's pid,
 * for old_server_finish.
 */
static pid_t fake_server_start(char *dir, struct sockaddr_un *sa, char *url, size_t url_size,
                               int conns, fake_answer_fn answer)
{
	int lfd = fake_listen(dir, sa, url, url_size);
	pid_t pid;

	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		fake_serve(lfd, conns, answer);
	close(lfd);
	return pid;
}

/* The fake older server (old_server_answer), as fake_server_start. */
static pid_t old_server_start(char *dir, struct sockaddr_un *sa, char *url, size_t url_size,
                              int conns)
{
	return fake_server_start(dir, sa, url, url_size, conns, old_server_answer);
}

/* Wait for the fake server ${pid} to have served every connection, and remove its socket. */
static void old_server_finish(pid_t pid, const struct sockaddr_un *sa, const char *dir)
{
	int status;

	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	unlink(sa->sun_path);
	rmdir(dir);
}

LEAK_CHECKED_TEST(sessctl, an_older_server_gets_no_namespace_check)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/sessctl-old-XXXXXX", url[200];
	struct run r;
	pid_t pid = old_server_start(dir, &sa, url, sizeof(url), 6);

	/* Six connections, one per command. */
	run_env(&r, url, NULL, 0, (const char *const[]){"--namespace", "shp", "count", NULL});
	expect(&r, 0, "0\n");
	run_env(&r, url, NULL, 0, (const char *const[]){"--namespace", "shp", "list", NULL});
	expect(&r, 0, "");
	run_env(&r, url, NULL, 0,
	        (const char *const[]){"--namespace", "shp", "clear", "--yes", NULL});
	expect(&r, 0, "0\n");
	run_env(&r, url, NULL, 0, (const char *const[]){"namespaces", NULL});
	cr_assert(strstr((char *)r.err.data, "older than NAMESPACES") != NULL, "%s",
	          (char *)r.err.data);
	expect(&r, 2, "");
	/* TTL is newer too: ttl fails, and get --json --tag leaves ttl_ms out. */
	run_env(&r, url, NULL, 0, (const char *const[]){"ttl", "s1", NULL});
	cr_assert(strstr((char *)r.err.data, "sessctl: ttl: ") != NULL &&
	              strstr((char *)r.err.data, "UNKNOWN_OP") != NULL,
	          "%s", (char *)r.err.data);
	expect(&r, 2, "");
	run_env(&r, url, NULL, 0, (const char *const[]){"--json", "get", "--tag", "s1", NULL});
	expect_json(&r);
	expect(&r, 0, "{\"data\":\"old\",\"tag\":\"598c141a2e034f166743a10289597f8c\"}\n");
	old_server_finish(pid, &sa, dir);
}

/*
 * The names of a server's figures are its words, which reach the operator's terminal: each is
 * printed escaped as ids are, so that a faulty or hostile server can neither send terminal
 * escapes (a new window title, here) nor forge a line of figures with a newline.
 */
LEAK_CHECKED_TEST(sessctl, a_server_s_figure_names_are_printed_escaped)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/sessctl-stats-XXXXXX", url[200];
	struct run r;
	pid_t pid = old_server_start(dir, &sa, url, sizeof(url), 2);

	run_env(&r, url, NULL, 0, (const char *const[]){"stats", NULL});
	expect(&r, 0, "sessions 1\nx\\x1b]2;owned\\x07\\x0aconnections_total 7\n");
	run_env(&r, url, NULL, 0, (const char *const[]){"--json", "stats", NULL});
	expect_json(&r);
	expect(&r, 0, "{\"sessions\":1,\"x\\u001b]2;owned\\u0007\\nconnections_total\":7}\n");
	old_server_finish(pid, &sa, dir);
}

/*
 * A faulty server: HELLO and the rest as the older server answers them, but every TTL with
 * UINT64_MAX ms, an end no clock can place.
 */
static int endless_ttl_answer(int fd, const struct codec_request *req)
{
	struct buf r;
	size_t at;
	int rc;

	if (req->op != CODEC_OP_TTL)
		return old_server_answer(fd, req);
	buf_init(&r);
	rc = codec_reply_open(&r, req->request_id, CODEC_OK, &at) | mp_write_uint(&r, UINT64_MAX) |
	     codec_frame_close(&r, at);
	if (rc == 0)
		rc = harness_send_all(fd, r.data, r.len);
	buf_finish(&r);
	return rc;
}

/*
 * ttl prints the instant a session ends as this machine's clock plus the server's figure. A
 * figure past the largest instant (a faulty server's: sessd's are 10 years at most) wrapped
 * around to a millisecond before now, printed as the end; it is now "?", as when the clock
 * cannot be read, beside the figure as the server sent it.
 */
LEAK_CHECKED_TEST(sessctl, a_ttl_past_every_instant_gives_no_end)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/sessctl-ttl-XXXXXX", url[200];
	struct run r;
	pid_t pid = fake_server_start(dir, &sa, url, sizeof(url), 1, endless_ttl_answer);

	run_env(&r, url, NULL, 0, (const char *const[]){"ttl", "s1", NULL});
	expect(&r, 0, "18446744073709551615\t?\n");
	old_server_finish(pid, &sa, dir);
}

/*
 * Answer HELLO on one connection with sessctl (the peer, ${pid} from SO_PEERCRED) stopped, then
 * close the connection, stop listening and remove the socket before letting it go on: its
 * first call then finds the connection gone and libsessd's reconnection fails, naming the
 * socket. Stopped, sessctl cannot make that call before the close, whatever the scheduling.
 */
static void gone_after_hello_serve(int lfd, const char *sock_path)
{
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	struct ucred cred;
	socklen_t cred_len = sizeof(cred);
	struct codec_request req;
	uint32_t status;
	const char *why;
	uint8_t *body;
	size_t len;
	int fd;

	if (poll(&pfd, 1, 10000) != 1 || (fd = accept(lfd, NULL, NULL)) == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == -1 ||
	    harness_recv_frame(fd, &body, &len) == -1)
		_exit(1);
	if (codec_decode_request(body, len, &req, &status, &why) == -1 ||
	    req.op != CODEC_OP_HELLO || kill(cred.pid, SIGSTOP) == -1)
		_exit(1);
	/* Until it is stopped: it is waiting for this reply, in the kernel. */
	for (int i = 0; i < 10000; i++) {
		char stat_path[64], text[256];
		FILE *f;

		snprintf(stat_path, sizeof(stat_path), "/proc/%ld/stat", (long)cred.pid);
		f = fopen(stat_path, "r");
		if (f == NULL || fgets(text, sizeof(text), f) == NULL)
			_exit(1);
		fclose(f);
		if (strstr(text, ") T ") != NULL)
			break;
		harness_sleep_ms(1);
	}
	if (old_server_answer(fd, &req) == -1)
		_exit(1);
	free(body);
	close(fd);
	close(lfd);
	unlink(sock_path);
	kill(cred.pid, SIGCONT);
	_exit(0);
}

/*
 * libsessd's words after a reconnection that failed (the connection gone between HELLO and the
 * command) name the socket: sessctl writes them escaped, as it writes those of the first
 * connect (a_path_cannot_forge_a_line_of_its_error), so that a path holding a newline and a
 * forged line, or ESC, stays on the line that names it. Before, report() printed them as
 * given.
 */
LEAK_CHECKED_TEST(sessctl, a_path_in_a_reconnection_s_error_is_escaped)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/sessctl-gone\nforged\x1b[31m-XXXXXX", url[200];
	struct run r;
	int lfd, status;
	pid_t pid;

	lfd = fake_listen(dir, &sa, url, sizeof(url));
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		gone_after_hello_serve(lfd, sa.sun_path);
	close(lfd);
	run_env(&r, url, NULL, 0, (const char *const[]){"destroy", "s1", NULL});
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the fake server failed");
	cr_expect(strstr((char *)r.err.data, "cannot connect to unix:/tmp/sessctl-gone\\x0aforged"
	                                     "\\x1b[31m-") != NULL,
	          "stderr: %s", (char *)r.err.data);
	cr_expect(strstr((char *)r.err.data, "\nforged") == NULL &&
	              strchr((char *)r.err.data, '\x1b') == NULL,
	          "a forged line, or ESC: %s", (char *)r.err.data);
	expect(&r, 4, "");
	unlink(sa.sun_path);
	rmdir(dir);
}

/* What closing_server_serve does after the HELLO. */
enum after_hello {
	AFTER_HELLO_CLOSE,   /* read the request, close without a reply */
	AFTER_HELLO_RESET,   /* reset with the request unread */
	AFTER_HELLO_DEAF,    /* read nothing more; close once the client has gone */
	AFTER_HELLO_GARBLED, /* read the request, answer a frame no client can read, close */
	AFTER_HELLO_BUSY,    /* read the request, answer BUSY with request id 0, close */
};

/*
 * Answer HELLO on one connection as sessd does, then ${after} (enum after_hello): close it
 * without replying to the next request, as sessd does to the connections waiting for a group
 * write that failed (PROTOCOL.md, IO_ERROR); or reset it, as a network fault does (closed with
 * the request unread, which a Unix socket's peer reads as ECONNRESET); or read nothing more, a
 * daemon that froze (SIGSTOP, a paused VM) between the HELLO and the request, until the client
 * gives up; or answer the request with a frame no client can read (a faulty server, a
 * corrupted path); or answer it BUSY with request id 0, as sessd's --max-client-memory
 * eviction does after dropping the replies it had queued. Gives up after 10 s without a
 * connection.
 */
static void closing_server_serve(int lfd, int after)
{
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	struct timeval tv = {.tv_sec = 10};
	struct codec_request req;
	uint32_t status;
	const char *why;
	uint8_t *body;
	size_t len;
	int fd, rc = 0;

	if (poll(&pfd, 1, 10000) != 1 || (fd = accept(lfd, NULL, NULL)) == -1)
		_exit(1);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* A frame of one byte that no msgpack value starts with. */
	static const uint8_t garbled[] = {0, 0, 0, 1, 0xc1};

	while (rc == 0 && harness_recv_frame(fd, &body, &len) == 0) {
		if (codec_decode_request(body, len, &req, &status, &why) != 0 ||
		    req.op != CODEC_OP_HELLO) {
			/* Closed only once the client has read it and gone: closed at once, the
			 * garbled frame could be overtaken by the reset. */
			pfd = (struct pollfd){.fd = fd, .events = POLLRDHUP};
			if (after == AFTER_HELLO_GARBLED &&
			    harness_send_all(fd, garbled, sizeof(garbled)) == 0)
				(void)poll(&pfd, 1, 10000);
			if (after == AFTER_HELLO_BUSY) {
				struct buf busy;

				buf_init(&busy);
				if (codec_reply_error(&busy, 0, CODEC_BUSY,
				                      "--max-client-memory is full and this "
				                      "connection had waited longest") == 0 &&
				    harness_send_all(fd, busy.data, busy.len) == 0)
					(void)poll(&pfd, 1, 10000);
				buf_finish(&busy);
			}
			rc = -1;
		} else
			rc = old_server_answer(fd, &req);
		free(body);
		/* Deaf: the client's close is seen (POLLRDHUP), never its bytes read. */
		pfd = (struct pollfd){.fd = fd,
		                      .events = after == AFTER_HELLO_DEAF ? POLLRDHUP : POLLIN};
		if (rc == 0 && (after == AFTER_HELLO_RESET || after == AFTER_HELLO_DEAF) &&
		    poll(&pfd, 1, 10000) == 1)
			break;
	}
	close(fd);
	_exit(0);
}

/*
 * Run sessctl ${args} with ${in} (${in_len} bytes) on its standard input against a fake server
 * on a new Unix socket, ${serve}(listener, ${arg}) in a forked child, which must exit 0.
 */
static void run_on_fake(struct run *r, void (*serve)(int lfd, int arg), int arg, const void *in,
                        size_t in_len, const char *const *args)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/sessctl-fake-XXXXXX", url[200];
	int lfd, status;
	pid_t pid;

	lfd = fake_listen(dir, &sa, url, sizeof(url));
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		serve(lfd, arg);
	close(lfd);
	run_env(r, url, in, in_len, args);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the fake server failed");
	unlink(sa.sun_path);
	rmdir(dir);
}

/*
 * A connection closed without a reply: the words say where to look, and that the set may or
 * may not have been carried out. A reset (a network fault) does not send the user to the
 * daemon's log, which knows nothing of it.
 */
LEAK_CHECKED_TEST(sessctl, a_connection_closed_without_a_reply_points_at_the_log)
{
	struct run r;

	for (int reset = 0; reset < 2; reset++) {
		run_on_fake(&r, closing_server_serve, reset ? AFTER_HELLO_RESET : AFTER_HELLO_CLOSE,
		            NULL, 0,
		            (const char *const[]){"set", "a", "data", "--ttl", "60", NULL});
		if (reset) {
			cr_assert(strstr((char *)r.err.data,
			                 "without a reply: the connection broke (a network fault, "
			                 "or the daemon crashed); it may or may not have been "
			                 "carried out (exit 5)\n") != NULL,
			          "%s", (char *)r.err.data);
			cr_assert_null(strstr((char *)r.err.data, "log"), "%s", (char *)r.err.data);
		} else {
			cr_assert(strstr((char *)r.err.data,
			                 "without a reply: the daemon stopped or crashed, or could "
			                 "not write changes; if it is up, its log says why (a full "
			                 "disk, for one); it may or may not have been carried "
			                 "out (exit 5)\n") != NULL,
			          "%s", (char *)r.err.data);
		}
		/* The set left whole: 5, not 4's "try again", which is for what was not done. */
		expect(&r, 5, "");
	}
}

/*
 * A reply that cannot be read, to a change that reached the server: the change may have been
 * carried out, 5; before, 2, "the same command fails again", which a script took for nothing
 * done. To a read it stays 2.
 */
LEAK_CHECKED_TEST(sessctl, an_unreadable_reply_to_a_change_is_5)
{
	struct run r;

	run_on_fake(&r, closing_server_serve, AFTER_HELLO_GARBLED, NULL, 0,
	            (const char *const[]){"set", "a", "data", "--ttl", "60", NULL});
	cr_assert(strstr((char *)r.err.data, "malformed reply") != NULL &&
	              strstr((char *)r.err.data, "it may or may not have been carried out") != NULL,
	          "%s", (char *)r.err.data);
	expect(&r, 5, "");
	run_on_fake(&r, closing_server_serve, AFTER_HELLO_GARBLED, NULL, 0,
	            (const char *const[]){"get", "a", NULL});
	cr_assert_null(strstr((char *)r.err.data, "may or may not"), "%s", (char *)r.err.data);
	expect(&r, 2, "");
}

/*
 * BUSY with request id 0 to the first request after a plain HELLO: sessd turns a newcomer away
 * in place of the HELLO's reply, so this is its --max-client-memory eviction, which drops the
 * replies of requests it carried out (PROTOCOL.md, "Errors that close"): the push may have
 * been carried out, 5. It was 4, "safe to run again", which pushed the message twice.
 */
LEAK_CHECKED_TEST(sessctl, busy_to_the_first_request_after_a_plain_hello_is_5)
{
	struct run r;

	run_on_fake(&r, closing_server_serve, AFTER_HELLO_BUSY, NULL, 0,
	            (const char *const[]){"flash-push", "a", "info", "m", "--ttl", "60", NULL});
	cr_assert(strstr((char *)r.err.data, "may or may not") != NULL, "%s", (char *)r.err.data);
	expect(&r, 5, "");
}

/*
 * A set without --ttl first asks the session's ttl (TTL): when that read is what the closed
 * connection cut off, the SET was never sent. It said "set: ... it may or may not have been
 * carried out" all the same (its words went by the command's name), and exited 4; now 4 with
 * no such words.
 */
LEAK_CHECKED_TEST(sessctl, a_set_cut_off_at_its_ttl_read_says_nothing_was_done)
{
	struct run r;

	run_on_fake(&r, closing_server_serve, AFTER_HELLO_CLOSE, NULL, 0,
	            (const char *const[]){"set", "a", "data", NULL});
	cr_assert(strstr((char *)r.err.data, "set: connection closed") != NULL, "%s",
	          (char *)r.err.data);
	cr_assert_null(strstr((char *)r.err.data, "may or may not"), "%s", (char *)r.err.data);
	expect(&r, 4, "");
}

/*
 * 4 says nothing of the command was carried out, so trying again is safe; 5 that a change left
 * whole and no answer came. A read that timed out is 4 whatever it sent; a set whose data the
 * frozen daemon never read (more than the socket takes) is 4 too: sessd acts on whole
 * requests only. Before, both were 4 and a set's message said it may have been carried out.
 */
LEAK_CHECKED_TEST(sessctl, a_request_that_never_left_whole_is_4)
{
	size_t big_len = 900 * 1024;
	char *big = malloc(big_len);
	struct run r;

	cr_assert_not_null(big);
	memset(big, 'x', big_len);
	run_on_fake(&r, closing_server_serve, AFTER_HELLO_DEAF, big, big_len,
	            (const char *const[]){"--timeout", "1000", "set", "big", "--ttl", "60", NULL});
	free(big);
	cr_assert(strstr((char *)r.err.data, "no reply within 1000 ms") != NULL, "%s",
	          (char *)r.err.data);
	cr_assert_null(strstr((char *)r.err.data, "may or may not"), "%s", (char *)r.err.data);
	expect(&r, 4, "");
	run_on_fake(&r, closing_server_serve, AFTER_HELLO_DEAF, NULL, 0,
	            (const char *const[]){"--timeout", "1000", "get", "big", NULL});
	cr_assert(strstr((char *)r.err.data, "no reply within 1000 ms") != NULL, "%s",
	          (char *)r.err.data);
	cr_assert_null(strstr((char *)r.err.data, "may or may not"), "%s", (char *)r.err.data);
	expect(&r, 4, "");
	/* A small change leaves whole, into the socket the daemon would read. */
	run_on_fake(&r, closing_server_serve, AFTER_HELLO_DEAF, NULL, 0,
	            (const char *const[]){"--timeout", "1000", "flash-push", "big", "info", "m",
	                                  "--ttl", "60", NULL});
	cr_assert(strstr((char *)r.err.data, "may or may not") != NULL, "%s", (char *)r.err.data);
	expect(&r, 5, "");
}

/* The bytes of sessd's reply to a HELLO on ${url}, its frame's header included. */
static uint32_t hello_reply_bytes(const char *url)
{
	struct codec_request req = {.op = CODEC_OP_HELLO, .request_id = 1, .version = 1};
	int fd = harness_connect(url);
	uint8_t *body;
	struct buf b;
	size_t len;

	cr_assert_geq(fd, 0);
	req.client_name.ptr = (const uint8_t *)"sessctl";
	req.client_name.len = strlen("sessctl");
	buf_init(&b);
	cr_assert_eq(codec_encode_request(&b, &req), 0);
	harness_send_buf(fd, &b);
	cr_assert_eq(harness_recv_frame(fd, &body, &len), 0);
	free(body);
	buf_finish(&b);
	close(fd);
	return (uint32_t)(CODEC_HEADER_BYTES + len);
}

/*
 * A flash-push whose reply was lost on the way back (a relay passes the HELLO's reply, then
 * swallows what sessd sends): sessd queued the message. It exited 4, whose "try again after a
 * pause" a script followed, and the message was queued twice; now 5. A get whose reply is
 * lost so is 4: it changed nothing.
 */
LEAK_CHECKED_TEST(sessctl, a_push_whose_reply_was_lost_is_5_and_was_made)
{
	struct faultproxy proxy;
	struct run r;

	cr_assert_eq(faultproxy_start(&proxy, daemon_.tcp_url), 0, "the relay did not start");
	cr_assert_eq(faultproxy_set(&proxy, FAULTPROXY_DOWN, FAULTPROXY_BLACKHOLE,
	                            hello_reply_bytes(daemon_.tcp_url)),
	             0);
	run_env(&r, proxy.url, NULL, 0,
	        (const char *const[]){"--timeout", "1000", "--ttl", "60", "flash-push",
	                              "lost-reply", "info", "once", NULL});
	cr_assert(strstr((char *)r.err.data, "no reply within 1000 ms); it may or may not have "
	                                     "been carried out (exit 5)") != NULL,
	          "%s", (char *)r.err.data);
	expect(&r, 5, "");
	run_env(&r, proxy.url, NULL, 0,
	        (const char *const[]){"--timeout", "1000", "ttl", "lost-reply", NULL});
	cr_assert_null(strstr((char *)r.err.data, "may or may not"), "%s", (char *)r.err.data);
	expect(&r, 4, "");
	cr_expect_eq(faultproxy_stop(&proxy), 0, "the relay ran cleanly");
	/* It was carried out, once: running the push again would have made two. */
	RUN(&r, "flash-pop", "lost-reply");
	expect(&r, 0, "info\tonce\n");
}

/* --- Ids as an operator copies them: express-session's signed cookie. --- */

/*
 * express-session's cookie for session ${id} signed with ${secret}, as cookie-signature makes
 * it: "s:" ID "." base64(HMAC-SHA-256(secret, ID)) without '='; with ${encoded}, as the
 * Cookie header carries it (encodeURIComponent: ':' '+' '/' as %3A %2B %2F).
 */
static void signed_cookie(const char *id, const char *secret, bool encoded, char *out,
                          size_t out_len)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char sig[64], *p;
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)id, strlen(id));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2base64(sig, sizeof(sig), mac, sizeof(mac),
	                  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	cr_assert_eq(strlen(sig), 43);
	if (!encoded) {
		snprintf(out, out_len, "s:%s.%s", id, sig);
		return;
	}
	p = out + snprintf(out, out_len, "s%%3A%s.", id);
	for (const char *q = sig; *q != '\0'; q++)
		p += *q == '+'   ? sprintf(p, "%%2B")
		     : *q == '/' ? sprintf(p, "%%2F")
		                 : sprintf(p, "%c", *q);
}

LEAK_CHECKED_TEST(sessctl, ids_from_signed_cookies)
{
	static const char id[] = "q1NwYh3YfP0kO9t0pT2oF0l3b9o3Qy9w0x3bQn6jVZk";
	char cookie[300], note[300], secrets[8][16];
	bool encoded_had_escapes = false;
	struct run r;

	put("default", id, "{\"user\":\"alice\"}");
	/* A full id never goes to standard error, which a cron job's log keeps. */
	snprintf(note, sizeof(note),
	         "sessctl: get: that is a signed express-session cookie; using the session id "
	         "in it, %.6s... (the signature is not checked)\n",
	         id);
	/* Several secrets, so that some signature holds a '+' or '/' to be URL-encoded. */
	for (int i = 0; i < 8; i++) {
		snprintf(secrets[i], sizeof(secrets[i]), "secret-%d", i);
		signed_cookie(id, secrets[i], true, cookie, sizeof(cookie));
		encoded_had_escapes |= strstr(cookie, "%2") != NULL;
		RUN(&r, "get", cookie);
		cr_assert_eq(r.status, 0, "%s: %s", cookie, (char *)r.err.data);
		cr_assert_str_eq((char *)r.out.data, "{\"user\":\"alice\"}");
		cr_assert_str_eq((char *)r.err.data, note);
		run_free(&r);
		signed_cookie(id, secrets[i], false, cookie, sizeof(cookie));
		RUN(&r, "get", cookie);
		cr_assert_eq(r.status, 0, "%s: %s", cookie, (char *)r.err.data);
		cr_assert_str_eq((char *)r.err.data, note);
		run_free(&r);
	}
	cr_assert(encoded_had_escapes);
	/* As copied from a Cookie header or a browser's cookie list: NAME=VALUE, quoted, a ';'
	 * after it. */
	signed_cookie(id, "k", true, cookie, sizeof(cookie));
	{
		char pasted[400];
		static const char *const before[] = {"connect.sid=", "connect.sid=", "\"",
		                                     "sid=\""},
		                         *const after[] = {"", ";", "\"", "\";"};

		for (size_t i = 0; i < sizeof(before) / sizeof(before[0]); i++) {
			snprintf(pasted, sizeof(pasted), "%s%s%s", before[i], cookie, after[i]);
			RUN(&r, "get", pasted);
			cr_assert_eq(r.status, 0, "%s: %s", pasted, (char *)r.err.data);
			cr_assert_str_eq((char *)r.out.data, "{\"user\":\"alice\"}");
			run_free(&r);
		}
	}
	/* A whole Cookie header, the session's cookie among others (an operator pastes what
	 * the browser sent): it was taken for an id, and "no such session" left the user
	 * logged in. */
	{
		char header[700];
		/* The text before and after the session's cookie. */
		static const char *const before[] = {"theme=dark; ", "", "a=1; "},
		                         *const after[] = {"", "; theme=dark", "; lang=en-GB;"};

		for (size_t i = 0; i < sizeof(before) / sizeof(before[0]); i++) {
			snprintf(header, sizeof(header), "%sconnect.sid=%s%s", before[i], cookie,
			         after[i]);
			RUN(&r, "get", header);
			cr_assert_eq(r.status, 0, "%s: %s", header, (char *)r.err.data);
			cr_assert_str_eq((char *)r.out.data, "{\"user\":\"alice\"}");
			run_free(&r);
		}
		/* Two apps' session cookies: which is meant cannot be told. */
		signed_cookie("another-session-id", "k", true, note, sizeof(note));
		snprintf(header, sizeof(header), "connect.sid=%s; shop.sid=%s", cookie, note);
		RUN(&r, "get", header);
		cr_assert_eq(r.status, 2, "%s", (char *)r.err.data);
		cr_assert(strstr((char *)r.err.data, "more than one session") != NULL, "%s",
		          (char *)r.err.data);
		run_free(&r);
	}
	/* Wherever an id goes: touch, flash-push, destroy. */
	RUN(&r, "touch", cookie, "--ttl", "60");
	cr_assert_eq(r.status, 0);
	cr_assert(strstr((char *)r.err.data, "using the session id in it") != NULL);
	run_free(&r);
	RUN(&r, "destroy", cookie);
	cr_assert_eq(r.status, 0);
	run_free(&r);
	RUN(&r, "get", id);
	expect(&r, 1, "");
	/* Only that exact shape: anything else is the id it says, and no note. */
	put("default", "s:abc", "plain");
	RUN(&r, "get", "s:abc");
	expect(&r, 0, "plain");
	put("default", "s:abc.short", "dotted");
	RUN(&r, "get", "s:abc.short");
	expect(&r, 0, "dotted");
	RUN(&r, "get", "s:.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	cr_assert_str_eq((char *)r.err.data,
	                 "sessctl: get: no such session (or it holds only flash messages)\n");
	expect(&r, 1, "");
	RUN(&r, "get", "s%3Aabc.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%zz");
	cr_assert(strstr((char *)r.err.data, "cookie") == NULL, "%s", (char *)r.err.data);
	expect(&r, 1, "");
	RUN(&r, "get", "x:abc.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	cr_assert(strstr((char *)r.err.data, "cookie") == NULL, "%s", (char *)r.err.data);
	expect(&r, 1, "");
}

/*
 * An app whose store has a prefix (connect-redis's "sess:", kept by a migration with
 * connect-sessd's prefix option) stores the session under the prefix and the cookie's id: the
 * cookie pasted alone names no session, and a bare "no such session" left the operator taking
 * a live session for gone. A cookie that finds nothing now says so; an id typed as an id, or a
 * namespace that is not there (its own warning), does not.
 */
LEAK_CHECKED_TEST(sessctl, a_cookie_that_finds_nothing_points_at_a_store_prefix)
{
	static const char id[] = "Zp4Q0vJmR2sK8cW1nL6tY3hB9dF5gX7aE0uI2oP4rTs";
	char cookie[300], prefixed[80];
	const char *err;
	struct run r;

	snprintf(prefixed, sizeof(prefixed), "sess:%s", id);
	put("shopns", prefixed, "{\"user\":\"alice\"}");
	signed_cookie(id, "k", true, cookie, sizeof(cookie));
	for (int i = 0; i < 3; i++) {
		static const char *const cmds[] = {"get", "ttl", "destroy"};

		RUN(&r, "--namespace", "shopns", cmds[i], cookie);
		err = (const char *)r.err.data;
		cr_assert(strstr(err, "prefix") != NULL, "%s: %s", cmds[i], err);
		cr_assert(strstr(err, "sess:") != NULL, "%s: %s", cmds[i], err);
		/* Standard error names the id by its first 6 characters only. */
		cr_assert(strstr(err, id) == NULL, "%s: %s", cmds[i], err);
		expect(&r, 1, "");
	}
	RUN(&r, "--namespace", "shopns", "get", prefixed);
	expect(&r, 0, "{\"user\":\"alice\"}");
	RUN(&r, "--namespace", "shopns", "get", id);
	cr_assert(strstr((const char *)r.err.data, "prefix") == NULL, "%s", (char *)r.err.data);
	expect(&r, 1, "");
	RUN(&r, "--namespace", "shpns", "get", cookie);
	cr_assert(strstr((const char *)r.err.data, "prefix") == NULL, "%s", (char *)r.err.data);
	cr_assert(strstr((const char *)r.err.data, "no namespace \"shpns\"") != NULL, "%s",
	          (char *)r.err.data);
	expect(&r, 1, "");
}

/*
 * A mistyped command, or redis-cli's name for one (sessd's users come from Redis: `del`,
 * `keys`, `expire`), was answered "unknown command" alone, which sent the operator through
 * --help for a name they nearly had. The nearest command is suggested; a word near none gets
 * no guess, and a long argument (perhaps a session id) is still shown cut.
 */
LEAK_CHECKED_TEST(sessctl, an_unknown_command_suggests_the_one_meant)
{
	static const char *const typed[][2] = {
	    {"pnig", "ping"},
	    {"lsit", "list"},
	    {"namespace", "namespaces"},
	    {"flashpush", "flash-push"},
	    {"PING", "ping"},
	    {"tll", "ttl"},
	    {"del", "destroy"},
	    {"keys", "list"},
	    {"expire", "touch"},
	    {"flushdb", "clear"},
	    {"info", "stats"},
	    {"dbsize", "count"},
	};
	char want[200];
	struct run r;

	for (size_t i = 0; i < sizeof(typed) / sizeof(typed[0]); i++) {
		RUN(&r, typed[i][0]);
		snprintf(
		    want, sizeof(want),
		    "sessctl: unknown command '%s'; did you mean '%s'?\nTry 'sessctl --help'.\n",
		    typed[i][0], typed[i][1]);
		cr_assert_str_eq((const char *)r.err.data, want);
		expect(&r, 2, "");
	}
	RUN(&r, "xyzzy");
	cr_assert_str_eq((const char *)r.err.data,
	                 "sessctl: unknown command 'xyzzy'\nTry 'sessctl --help'.\n");
	expect(&r, 2, "");
	RUN(&r, "Zp4Q0vJmR2sK8cW1nL6tY3hB9dF5gX7aE0uI2oP4rTs");
	cr_assert_str_eq((const char *)r.err.data,
	                 "sessctl: unknown command 'Zp4Q0v...'\nTry 'sessctl --help'.\n");
	expect(&r, 2, "");
}

/* --- find: which sessions hold some bytes. --- */

LEAK_CHECKED_TEST(sessctl, find_prints_the_sessions_whose_data_holds_text)
{
	struct sessd_options opts = {.ns = "shop", .timeout_ms = 20000};
	struct sessd_client *c;
	char id[32], data[64];
	struct run r;

	cr_assert_eq(sessd_connect(daemon_.unix_url, &opts, &c), SESSD_OK);
	/* More than one batch of GETs, and more than one LIST page. */
	for (int i = 0; i < 2100; i++) {
		snprintf(id, sizeof(id), "s-%04d", i);
		snprintf(data, sizeof(data), "{\"user\":\"u%04d\"}", i);
		cr_assert_eq(sessd_set(c, id, strlen(id), data, strlen(data), 600000), SESSD_OK);
	}
	cr_assert_eq(sessd_set(c, "alice-1", 7, "{\"user\":\"alice\"}", 16, 600000), SESSD_OK);
	cr_assert_eq(sessd_set(c, "alice-2", 7, "x\0{\"user\":\"alice\"}", 18, 600000), SESSD_OK);
	cr_assert_eq(sessd_set(c, "malice", 6, "{\"user\":\"malice\"}", 17, 600000), SESSD_OK);
	/* Flashes are not data: a session with flashes only is passed over. */
	cr_assert_eq(sessd_flash_push(c, "flash-only", 10, "info", "\"alice\"", 7, 600000, NULL),
	             SESSD_OK);
	sessd_close(c);

	RUN(&r, "--namespace", "shop", "find", "\"alice\"");
	cr_assert_eq(count_lines(&r), 2, "%s", (char *)r.out.data);
	cr_assert(has_line(&r, "alice-1") && has_line(&r, "alice-2"));
	expect(&r, 0, NULL);
	RUN(&r, "--namespace", "shop", "find", "u1234\"");
	expect(&r, 0, "s-1234\n");
	RUN(&r, "--namespace", "shop", "--json", "find", "u2099");
	expect(&r, 0, "[\"s-2099\"]\n");
	RUN(&r, "--namespace", "shop", "find", "malice");
	expect(&r, 0, "malice\n");
	/* Nothing matches: status 1, as grep's. */
	RUN(&r, "--namespace", "shop", "find", "bob");
	cr_assert_str_eq((char *)r.err.data,
	                 "sessctl: find: no session's data holds that text (2104 sessions read)\n");
	expect(&r, 1, "");
	RUN(&r, "--namespace", "shop", "--json", "find", "bob");
	cr_assert_eq(r.status, 1);
	cr_assert_str_eq((char *)r.out.data, "[]\n");
	run_free(&r);
	/* In a namespace that does not exist, it says so. */
	RUN(&r, "--namespace", "shp", "find", "alice");
	expect_warned_has(&r, 1, "", "shp", "shop");
	RUN(&r, "find", "");
	expect(&r, 2, "");
	RUN(&r, "find");
	expect(&r, 2, "");
}

/* --- Ids that start with '-': one base64url id in 64. --- */

LEAK_CHECKED_TEST(sessctl, an_id_starting_with_a_dash_is_an_id)
{
	static const char id[] = "-Xxrf3YfP0kO9t0pT2oF0l3b9o3Qy9w0x3bQn6jVZk",
	                  id2[] = "--rf3YfP0kO9t0pT2oF0l3b9o3Qy9w0x3bQn6jVZk";
	char tag[2 * SESSD_TAG_BYTES + 1];
	struct run r;

	RUN(&r, "set", id, "{\"user\":\"dash\"}", "--ttl", "600");
	expect(&r, 0, "");
	RUN(&r, "get", id);
	expect(&r, 0, "{\"user\":\"dash\"}");
	RUN(&r, "ttl", id);
	expect_ttl_and_instant((char *)r.out.data, "\t", 590000, 600000);
	expect(&r, 0, NULL);
	RUN(&r, "touch", id, "--ttl", "700");
	expect(&r, 0, "");
	get_tag(id, tag);
	/* Data, a message and find's text may start with '-' as well. */
	RUN(&r, "set-if", id, tag, "-{\"user\":\"dash\"}");
	expect(&r, 0, "");
	RUN(&r, "flash-push", id, "info", "-hi");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-pop", id, "info");
	expect(&r, 0, "-hi\n");
	RUN(&r, "find", "-{\"user\":\"dash\"");
	expect(&r, 0, "-Xxrf3YfP0kO9t0pT2oF0l3b9o3Qy9w0x3bQn6jVZk\n");
	/* Each id find prints, as `find ... | xargs -n1 sessctl destroy` passes it. */
	RUN(&r, "destroy", id);
	expect(&r, 0, "");
	RUN(&r, "get", id);
	expect(&r, 1, "");
	/* Options stay options, even beside such an id, and -- still ends them. */
	RUN(&r, "set", "--ttl", "60", "--", id2, "--json");
	expect(&r, 0, "");
	RUN(&r, "--json", "get", id2);
	expect(&r, 0, "\"--json\"\n");
	RUN(&r, "destroy", id2, "--json");
	expect(&r, 0, "{\"ok\":true}\n");
	/* An id that starts with "--" (one in 4096) is an id too, without "--" before it... */
	RUN(&r, "set", id2, "{}", "--ttl", "60");
	expect(&r, 0, "");
	RUN(&r, "destroy", id2);
	expect(&r, 0, "");
	/* ...but a short one, or one with '=', is a mistyped option, not data to store. */
	RUN(&r, "set", "typo", "--jsn");
	expect(&r, 2, "");
	RUN(&r, "get", "typo");
	expect(&r, 1, "");
	/* Where no argument is due, it is an unknown option, and its message shows no full id. */
	RUN(&r, "destroy", "a", id);
	cr_assert_str_eq((char *)r.err.data,
	                 "sessctl: unknown option '-Xxrf3...'\nTry 'sessctl --help'.\n");
	expect(&r, 2, "");
	RUN(&r, id2, "ping");
	cr_assert(strstr((char *)r.err.data, id2) == NULL, "%s", (char *)r.err.data);
	expect(&r, 2, "");
	RUN(&r, "ping", "--nope=secret");
	cr_assert_str_eq((char *)r.err.data,
	                 "sessctl: unknown option '--nope=...'\nTry 'sessctl --help'.\n");
	expect(&r, 2, "");
}

/* --- set, set-if and flash-push without --ttl: the session's own ttl. --- */

/* The ms left to session ${id} of the default namespace; fails the test when there is none. */
static uint64_t ttl_left_ms(const char *id)
{
	struct sessd_client *c;
	uint64_t left = 0;

	cr_assert_eq(sessd_connect(daemon_.unix_url, NULL, &c), SESSD_OK);
	cr_assert_eq(sessd_ttl(c, id, strlen(id), &left), SESSD_OK, "ttl of %s", id);
	sessd_close(c);
	return left;
}

LEAK_CHECKED_TEST(sessctl, a_write_without_ttl_keeps_the_sessions_own)
{
	static const uint64_t day_ms = 86400000, month_ms = 30 * day_ms;
	char tag[2 * SESSD_TAG_BYTES + 1];
	struct run r;

	/* A 30-day "remember me" session, edited as README shows: not cut to a day. */
	RUN(&r, "set", "month", "{\"user\":\"ada\"}", "--ttl", "2592000");
	expect(&r, 0, "");
	RUN(&r, "set", "month", "{\"user\":\"bea\"}");
	expect(&r, 0, "");
	cr_assert_gt(ttl_left_ms("month"), month_ms - 60000);
	get_tag("month", tag);
	run_in(&r, "{\"user\":\"cy\"}", 13, (const char *const[]){"set-if", "month", tag, NULL});
	expect(&r, 0, "");
	cr_assert_gt(ttl_left_ms("month"), month_ms - 60000);
	/* An hour one is not stretched to a day. */
	RUN(&r, "set", "hour", "x", "--ttl", "3600");
	expect(&r, 0, "");
	RUN(&r, "set", "hour", "y");
	expect(&r, 0, "");
	cr_assert_leq(ttl_left_ms("hour"), 3600000);
	RUN(&r, "flash-push", "hour", "info", "saved");
	expect(&r, 0, "1\n");
	cr_assert_leq(ttl_left_ms("hour"), 3600000);
	/* A new session lives a day; --ttl still says how long. */
	RUN(&r, "set", "new", "z");
	expect(&r, 0, "");
	cr_assert_gt(ttl_left_ms("new"), day_ms - 60000);
	cr_assert_leq(ttl_left_ms("new"), day_ms);
	RUN(&r, "flash-push", "new-flash", "info", "hi");
	expect(&r, 0, "1\n");
	cr_assert_gt(ttl_left_ms("new-flash"), day_ms - 60000);
	RUN(&r, "set", "month", "w", "--ttl", "60");
	expect(&r, 0, "");
	cr_assert_leq(ttl_left_ms("month"), 60000);
}

/* --- Without --connect or SESSD_URL: sessd's own socket first. --- */

/*
 * A user without $XDG_RUNTIME_DIR finds sessd at /tmp/sessd-UID, a name any local user can
 * take first and answer at in sessd's place (taking the sessions set and the secrets shown):
 * sessctl does not try a socket there unless the directory is the user's own, as sessd makes
 * it, and says why. Run as uid 65534 when the test runs as root (root looks in /run/sessd).
 */
LEAK_CHECKED_TEST(sessctl, a_tmp_runtime_directory_not_its_own_is_not_tried)
{
	const char *bin = getenv("SESSCTL_BIN");
	uid_t uid = geteuid() == 0 ? 65534 : geteuid();
	char dir[64], err[4096];
	int pipe_fds[2], status;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	cr_assert_not_null(bin);
	if (geteuid() == 0 && !harness_can_exec_as(uid, bin))
		cr_skip_test("uid %lu, which root runs sessctl as here, cannot execute %s (a build "
		             "under a directory closed to other users)",
		             (unsigned long)uid, bin);
	snprintf(dir, sizeof(dir), "/tmp/sessd-%lu", (unsigned long)uid);
	/* The other build's run of this case, beside this one in CI, holds it for a moment: a
	 * skip fails CI (tests/check_cases.py), so wait for it to go first. */
	for (long waited = 0; mkdir(dir, 0700) == -1; waited += 50) {
		if (errno != EEXIST || waited >= 10000)
			cr_skip_test(
			    "cannot make %s: %s (another sessd of this user may be using it)", dir,
			    strerror(errno));
		harness_sleep_ms(50);
	}
	cr_assert_eq(chmod(dir, 0777), 0);
	cr_assert_eq(pipe2(pipe_fds, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		static char *const argv[] = {"sessctl", "ping", NULL};

		dup2(pipe_fds[1], STDERR_FILENO);
		unsetenv("XDG_RUNTIME_DIR");
		unsetenv("RUNTIME_DIRECTORY");
		unsetenv("SESSD_URL");
		if (geteuid() == 0 && (setgid(uid) == -1 || setuid(uid) == -1))
			_exit(125);
		execv(bin, argv);
		_exit(126);
	}
	close(pipe_fds[1]);
	while (got < sizeof(err) - 1 &&
	       (n = read(pipe_fds[0], err + got, sizeof(err) - 1 - got)) > 0)
		got += (size_t)n;
	err[got] = '\0';
	close(pipe_fds[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_eq(rmdir(dir), 0);
	/* Another sessd of this machine may answer at /run/sessd/sessd.sock. */
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) < 125, "sessctl ping: %d\n%s", status,
	          err);
	cr_assert_not_null(strstr(err, "sessctl: not trying /tmp/sessd-"), "%s", err);
	cr_assert_null(strstr(err, "cannot connect to unix:/tmp/sessd-"), "%s", err);
	/* Nor the TCP default, a port anyone may bind, whoever made the directory among them. */
	cr_assert_null(strstr(err, "cannot connect to tcp://"), "%s", err);
	cr_assert_not_null(strstr(err, "not trying tcp://127.0.0.1:7077 either"), "%s", err);
}

LEAK_CHECKED_TEST(sessctl, without_an_address_it_tries_sessds_own_socket)
{
	char tmpl[] = "/tmp/sessctl-rt-XXXXXX", env[400], link_path[300], want[400];
	const char *dir = mkdtemp(tmpl);
	struct run r;

	cr_assert_not_null(dir);
	/* The harness's daemon listens on <its dir>/sessd.sock: sessd's own socket for the
	 * runtime directory <its dir>, the first of a list as systemd may give. */
	snprintf(env, sizeof(env), "RUNTIME_DIRECTORY=%s:/nonexistent", daemon_.dir);
	run_spawn(&r, NULL, NULL, (const char *const[]){env, NULL}, NULL, 0,
	          (const char *const[]){"ping", NULL});
	expect(&r, 0, "pong\n");
	/* $XDG_RUNTIME_DIR/sessd without RUNTIME_DIRECTORY. */
	snprintf(link_path, sizeof(link_path), "%s/sessd", dir);
	cr_assert_eq(symlink(daemon_.dir, link_path), 0);
	snprintf(env, sizeof(env), "XDG_RUNTIME_DIR=%s", dir);
	run_spawn(&r, NULL, NULL, (const char *const[]){env, NULL}, NULL, 0,
	          (const char *const[]){"ping", NULL});
	expect(&r, 0, "pong\n");
	/* SESSD_URL, when set, is the only address tried. */
	run_spawn(&r, "unix:/nonexistent/sessd.sock", NULL, (const char *const[]){env, NULL}, NULL,
	          0, (const char *const[]){"ping", NULL});
	expect(&r, 4, "");
	/* No sessd there: every address tried is named, and then what to do. Another sessd
	 * of this machine may answer at the later defaults (the tests never listen there): the
	 * service's, at /run/sessd/sessd.sock, refuses sessctl without its --auth-file. */
	snprintf(env, sizeof(env), "RUNTIME_DIRECTORY=%s", dir);
	run_spawn(&r, NULL, NULL, (const char *const[]){env, NULL}, NULL, 0,
	          (const char *const[]){"ping", NULL});
	if (r.status == 4 && access("/run/sessd/sessd.sock", F_OK) == -1) {
		snprintf(want, sizeof(want), "sessctl: cannot connect to unix:%s/sessd.sock: %s\n",
		         dir, strerror(ENOENT));
		cr_assert_eq(strncmp((char *)r.err.data, want, strlen(want)), 0, "%s",
		             (char *)r.err.data);
		cr_assert(strstr((char *)r.err.data, "cannot connect to tcp://127.0.0.1:7077") !=
		              NULL,
		          "%s", (char *)r.err.data);
		cr_assert(strstr((char *)r.err.data, "set SESSD_URL or give --connect URL\n") !=
		              NULL,
		          "%s", (char *)r.err.data);
	}
	run_free(&r);
	cr_assert_eq(unlink(link_path), 0);
	cr_assert_eq(rmdir(dir), 0);
}

/*
 * The apps' sessions live in their own namespace ("shop"): a get, ttl, touch or destroy that
 * forgot --namespace says the session is not in "default" and which namespaces there are; in
 * a namespace that exists, a missing session is only that (acceptance review, stop 28).
 */
LEAK_CHECKED_TEST(sessctl, a_session_not_found_names_the_namespaces)
{
	static const char *const commands[][2] = {
	    {"get", "sessctl: get: no such session (or it holds only flash messages)\n"},
	    {"ttl", "sessctl: ttl: no such session\n"},
	    {"touch", "sessctl: touch: no such session\n"},
	    {"destroy", "sessctl: destroy: no such session\n"}};
	struct run r;

	put("shop", "s1", "cart");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i][0], "touch") == 0)
			RUN(&r, "touch", "s1", "--ttl", "60");
		else
			RUN(&r, commands[i][0], "s1");
		expect_missing_in_no_namespace(&r, commands[i][1], "default", "shop");
	}
	put("default", "other", "x");
	RUN(&r, "get", "s1");
	cr_assert_str_eq((char *)r.err.data,
	                 "sessctl: get: no such session (or it holds only flash messages)\n");
	expect(&r, 1, "");
	RUN(&r, "--namespace", "shop", "get", "s1");
	expect(&r, 0, "cart");
}

/*
 * A scan's cursor is a position in one daemon's order, which is random per start (PROTOCOL.md,
 * "Administration"). libsessd reconnects by itself when the daemon restarted between two
 * calls, so list, find and namespaces, going on from the old daemon's cursor on the new one,
 * printed a part of the sessions and exited 0: 298,061 of 300,000 ids in a review's run, and a
 * find piped to a destroy would have left some of a user's sessions logged in. A scan cut so
 * must say so, with status 2. sessctl is held between two pages by its full output pipe
 * (ids of 120 bytes: a page of 1000 is twice the pipe's 64 KiB), the daemon restarted on
 * its --data-dir, then the output read.
 */
static char *read_whole(const char *path)
{
	char *text = NULL;
	size_t cap = 0;
	FILE *f = fopen(path, "r");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	if (getdelim(&text, &cap, '\0', f) == -1) {
		free(text);
		text = strdup("");
	}
	fclose(f);
	cr_assert_not_null(text);
	return text;
}

/*
 * Start sessctl with ${args} (NULL-terminated) on the daemon at ${url}, its standard output a
 * pipe returned in *${out} and its standard error written to ${err_path}. Returns its pid.
 */
static pid_t spawn_piped(const char *url, const char *const *args, const char *err_path, FILE **out)
{
	const char *bin = getenv("SESSCTL_BIN");
	const char *argv[16] = {bin, "--connect", url};
	posix_spawn_file_actions_t fa;
	int argc = 3, fds[2];
	pid_t pid;

	cr_assert_not_null(bin, "SESSCTL_BIN is not set");
	for (size_t i = 0; args[i] != NULL; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_eq(posix_spawn(&pid, bin, &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	*out = fdopen(fds[0], "r");
	cr_assert_not_null(*out);
	return pid;
}

/*
 * Wait (up to 20 s) until process ${pid} sleeps in the kernel function whose name holds
 * ${wchan_part}: "pipe_write", a write to a pipe nobody reads (then it has nothing else under
 * way), or "pipe_read", a read of a pipe nobody writes yet.
 */
static void wait_blocked_in(pid_t pid, const char *wchan_part)
{
	char path[64], wchan[128] = "";
	struct timespec t0;

	snprintf(path, sizeof(path), "/proc/%ld/wchan", (long)pid);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		FILE *f = fopen(path, "r");

		cr_assert_not_null(f, "%s: %s", path, strerror(errno));
		if (fgets(wchan, sizeof(wchan), f) == NULL)
			wchan[0] = '\0';
		fclose(f);
		/* pipe_write (anon_pipe_write in newer kernels); a running process shows 0. */
		if (strstr(wchan, wchan_part) != NULL)
			return;
		cr_assert_lt(seconds_since(&t0), 20.0, "sessctl never waited in %s (last in %s)",
		             wchan_part, wchan);
		usleep(2000);
	}
}

LEAK_CHECKED_TEST(sessctl, list_and_find_cut_by_a_restart_say_so)
{
	static const char *const cmds[][3] = {{"list", NULL, NULL}, {"find", "x", NULL}};
	struct sessd_options opts = {.ns = "cut", .timeout_ms = 20000};
	char data_dir[] = "/tmp/sessd-cut-XXXXXX", data_arg[64], id[121], cmd[128], err_path[128];
	const char *args[3];
	struct harness_daemon d;
	struct sessd_client *c;
	const int n = 4000;

	cr_assert_not_null(mkdtemp(data_dir));
	snprintf(data_arg, sizeof(data_arg), "%s/data", data_dir);
	args[0] = "--data-dir";
	args[1] = data_arg;
	args[2] = NULL;
	cr_assert_eq(harness_start(&d, args), 0);
	cr_assert_eq(sessd_connect(d.unix_url, &opts, &c), SESSD_OK);
	memset(id, 'i', 120);
	id[120] = '\0';
	for (int i = 0; i < n; i++) {
		snprintf(id, 9, "%08d", i);
		id[8] = 'i';
		cr_assert_eq(sessd_set(c, id, 120, "x", 1, 600000), SESSD_OK);
	}
	sessd_close(c);
	snprintf(err_path, sizeof(err_path), "%s/err", data_dir);
	for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
		const char *const run_args[] = {"--namespace", "cut", cmds[k][0], cmds[k][1], NULL};
		char line[512], *err;
		size_t lines = 0;
		FILE *out;
		pid_t pid;
		int st;

		pid = spawn_piped(d.unix_url, run_args, err_path, &out);
		/* Until sessctl waits on its full pipe: then its page (list), or its batch of GETs
		 * (find, which reads as it prints), has been answered and nothing is in flight.
		 * A SIGTERM while find's GETs were (a loaded machine, where 200 ms did not always
		 * fill the pipe) got SHUTTING_DOWN, not the restart this test is about. */
		wait_blocked_in(pid, "pipe_write");
		/* SIGTERM, and the same daemon back on its data: a deploy. */
		cr_assert_eq(kill(d.pid, SIGTERM), 0);
		cr_assert_eq(waitpid(d.pid, &st, 0), d.pid);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
		d.pid = 0;
		cr_assert_eq(harness_restart(&d, args), 0);
		while (fgets(line, sizeof(line), out) != NULL)
			lines++;
		fclose(out);
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		err = read_whole(err_path);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 4,
		          "%s cut by a restart: status %d after %zu lines of %d; stderr: %s",
		          cmds[k][0], WIFEXITED(st) ? WEXITSTATUS(st) : -1, lines, n, err);
		cr_assert(strstr(err, "restarted") != NULL, "%s", err);
		free(err);
	}
	cr_assert_eq(harness_stop(&d), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data_dir);
	cr_assert_eq(system(cmd), 0);
}

/* --- The id out of argv: --id-file and --id-env. --- */

/* The bytes of /proc/${pid}/cmdline (its arguments, each ending in a NUL), malloc'd. */
static char *cmdline_of(pid_t pid, size_t *len)
{
	char path[64], *text = malloc(65536);
	ssize_t n;
	int fd;

	cr_assert_not_null(text);
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	n = read(fd, text, 65536);
	cr_assert_gt(n, 0, "%s: %s", path, strerror(errno));
	close(fd);
	*len = (size_t)n;
	return text;
}

/*
 * Run sessctl ${args} (a set that reads its DATA from standard input, a pipe) and, once it
 * waits on that pipe (its id read, connected), whether its command line, as ps and any user
 * see it in /proc, shows ${id}; then give it ${data} and expect it to store that.
 */
static bool cmdline_shows_id(const char *const *args, const char *id, const char *data)
{
	char err[4096], *cmdline;
	size_t len, err_len = 0;
	int in_fd, err_fd, st;
	bool shows;
	ssize_t n;
	pid_t pid = spawn_with_input(args, &in_fd, &err_fd);

	wait_blocked_in(pid, "pipe_read");
	cmdline = cmdline_of(pid, &len);
	shows = memmem(cmdline, len, id, strlen(id)) != NULL;
	free(cmdline);
	cr_assert_eq(write(in_fd, data, strlen(data)), (ssize_t)strlen(data));
	close(in_fd);
	while ((n = read(err_fd, err + err_len, sizeof(err) - 1 - err_len)) > 0)
		err_len += (size_t)n;
	err[err_len] = '\0';
	close(err_fd);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d; stderr: %s", st, err);
	return shows;
}

/*
 * A live session id is as good as the visitor's login, and an argument shows in ps, in
 * /proc/PID/cmdline to every user, in shell history and in auditd's execve records. Every
 * command that takes an ID took it only so. --id-file FILE ("-": standard input) and --id-env
 * ($SESSD_ID) take it from where none of those look; the command line is read while sessctl
 * runs. The argument form still works, and is seen there: what proves the look can fail.
 */
LEAK_CHECKED_TEST(sessctl, an_id_given_by_file_or_environment_is_not_in_the_command_line)
{
	char id[SESSD_ID_LEN + 1], dir[] = "/tmp/sessctl-id-XXXXXX", path[128], environ_path[64];
	struct stat st;
	struct run r;
	FILE *f;

	cr_assert_eq(sessd_id_new(id), SESSD_OK);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/id", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "%s\n", id);
	cr_assert_eq(fclose(f), 0);

	cr_assert(
	    cmdline_shows_id((const char *const[]){"--connect", daemon_.unix_url, "set", id, NULL},
	                     id, "by argument"),
	    "the look at /proc/PID/cmdline did not see the id given as an argument");
	RUN(&r, "get", id);
	expect(&r, 0, "by argument");
	cr_assert_not(cmdline_shows_id((const char *const[]){"--connect", daemon_.unix_url, "set",
	                                                     "--id-file", path, NULL},
	                               id, "by file"),
	              "--id-file: the id is in the command line");
	RUN(&r, "get", id);
	expect(&r, 0, "by file");
	cr_assert_eq(setenv("SESSD_ID", id, 1), 0);
	cr_assert_not(cmdline_shows_id((const char *const[]){"--connect", daemon_.unix_url,
	                                                     "--id-env", "set", NULL},
	                               id, "by environment"),
	              "--id-env: the id is in the command line");
	cr_assert_eq(unsetenv("SESSD_ID"), 0);
	RUN(&r, "get", id);
	expect(&r, 0, "by environment");
	/* What --id-env relies on: another user cannot read the environment (mode 0400). */
	snprintf(environ_path, sizeof(environ_path), "/proc/%ld/environ", (long)getpid());
	cr_assert_eq(stat(environ_path, &st), 0);
	cr_assert_eq(st.st_mode & 077, 0, "%s has mode %o", environ_path, st.st_mode & 0777);

	unlink(path);
	rmdir(dir);
}

/*
 * What --id-file and --id-env read: one id, on one line (a CR before the newline dropped), a
 * tab ending it, so that a line of list or of find gives its id; \xNN and a signed cookie as
 * in the argument. A second line is refused with nothing done (find's output piped whole would
 * otherwise destroy its first session only, and seem to have done them all), and so is set
 * reading both its id and its data from standard input. No message shows the id.
 */
LEAK_CHECKED_TEST(sessctl, id_file_and_id_env_take_one_id_and_nothing_else)
{
	char id[SESSD_ID_LEN + 1], other[SESSD_ID_LEN + 1], line[256], env[128];
	struct run r;

	/* A sessctl that refuses before it reads standard input: a failed write, not a SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	cr_assert_eq(sessd_id_new(id), SESSD_OK);
	cr_assert_eq(sessd_id_new(other), SESSD_OK);
	put("default", id, "mine");
	put("default", other, "theirs");

	snprintf(line, sizeof(line), "%s\n", id);
	run_in(&r, line, strlen(line), (const char *const[]){"get", "--id-file", "-", NULL});
	expect(&r, 0, "mine");
	snprintf(line, sizeof(line), "%s\r\n", id);
	run_in(&r, line, strlen(line), (const char *const[]){"get", "--id-file=-", NULL});
	expect(&r, 0, "mine");
	/* A line of list: the id, a tab, the ttl. */
	snprintf(line, sizeof(line), "%s\t86399000\n", id);
	run_in(&r, line, strlen(line), (const char *const[]){"--id-file", "-", "ttl", NULL});
	cr_assert_eq(r.status, 0, "stderr: %s", (char *)r.err.data);
	run_free(&r);
	/* The arguments after the id keep their places. */
	run_in(&r, id, strlen(id),
	       (const char *const[]){"flash-push", "--id-file", "-", "info", "hello", NULL});
	expect(&r, 0, "1\n");
	run_in(&r, id, strlen(id),
	       (const char *const[]){"flash-pop", "--id-file", "-", "info", NULL});
	expect(&r, 0, "hello\n");
	/* set with DATA as an argument may read its id from standard input. */
	run_in(&r, id, strlen(id), (const char *const[]){"set", "--id-file", "-", "again", NULL});
	expect(&r, 0, "");

	/* Two ids: refused, both sessions still there, neither id shown. */
	snprintf(line, sizeof(line), "%s\n%s\n", id, other);
	run_in(&r, line, strlen(line), (const char *const[]){"destroy", "--id-file", "-", NULL});
	cr_assert(strstr((char *)r.err.data, "more than one line") != NULL, "%s",
	          (char *)r.err.data);
	cr_assert(strstr((char *)r.err.data, id) == NULL &&
	              strstr((char *)r.err.data, other) == NULL,
	          "an id is shown: %s", (char *)r.err.data);
	expect(&r, 2, "");
	RUN(&r, "get", id);
	expect(&r, 0, "again");
	RUN(&r, "get", other);
	expect(&r, 0, "theirs");
	/* set's DATA and its id cannot both come from standard input. */
	run_in(&r, line, strlen(line), (const char *const[]){"set", "--id-file", "-", NULL});
	cr_assert(strstr((char *)r.err.data, "reads its DATA from standard input") != NULL, "%s",
	          (char *)r.err.data);
	expect(&r, 2, "");
	RUN(&r, "get", id);
	expect(&r, 0, "again");
	run_in(&r, "", 0, (const char *const[]){"get", "--id-file", "-", NULL});
	expect(&r, 2, "");
	/* The id given in the file's place is not shown whole. */
	RUN(&r, "get", "--id-file", id);
	cr_assert(strstr((char *)r.err.data, "no such file") != NULL, "%s", (char *)r.err.data);
	cr_assert(strstr((char *)r.err.data, id) == NULL, "the id is shown: %s",
	          (char *)r.err.data);
	expect(&r, 2, "");
	RUN(&r, "get", "--id-file", "/nonexistent/id");
	cr_assert(strstr((char *)r.err.data, "/nonexistent/id: No such file") != NULL, "%s",
	          (char *)r.err.data);
	expect(&r, 2, "");
	/* A command on no session, an id given twice, an empty or missing $SESSD_ID. */
	RUN(&r, "count", "--id-env");
	expect(&r, 2, "");
	RUN(&r, "get", id, "--id-file", "-");
	expect(&r, 2, "");
	RUN(&r, "get", "--id-file", "-", "--id-env");
	expect(&r, 2, "");
	RUN(&r, "get", "--id-env");
	cr_assert(strstr((char *)r.err.data, "SESSD_ID is not set") != NULL, "%s",
	          (char *)r.err.data);
	expect(&r, 2, "");

	/* $SESSD_ID: the pipeline of list or find, each id in turn. */
	snprintf(env, sizeof(env), "SESSD_ID=%s", other);
	run_spawn(&r, daemon_.unix_url, NULL, (const char *const[]){env, NULL}, NULL, 0,
	          (const char *const[]){"destroy", "--id-env", NULL});
	expect(&r, 0, "");
	RUN(&r, "get", other);
	expect(&r, 1, "");
	RUN(&r, "get", id);
	expect(&r, 0, "again");
	/* An odd id, as list prints it, is read back the same way. */
	put("default", "odd\tid", "odd");
	run_in(&r, "odd\\x09id\n", strlen("odd\\x09id\n"),
	       (const char *const[]){"get", "--id-file", "-", NULL});
	expect(&r, 0, "odd");
}

/* From a terminal, --id-file - asks for the id (its echo off) and reads one line. */
LEAK_CHECKED_TEST(sessctl, id_file_from_a_terminal_asks_for_one_line)
{
	char id[SESSD_ID_LEN + 1], typed[64];
	struct run r;

	cr_assert_eq(sessd_id_new(id), SESSD_OK);
	put("default", id, "typed");
	snprintf(typed, sizeof(typed), "%s\n", id);
	run_on_terminal(&r, typed, (const char *const[]){"get", "--id-file", "-", NULL});
	cr_assert(strstr((char *)r.err.data, "not shown as you paste or type it") != NULL, "%s",
	          (char *)r.err.data);
	cr_assert_eq(r.status, 0, "stderr: %s", (char *)r.err.data);
	cr_assert_str_eq((char *)r.out.data, "typed");
	run_free(&r);
}

/* --- Output that cannot be delivered: flash-pop must not destroy what it cannot show. --- */

/*
 * Run sessctl ${args} on the daemon with standard output ${how}: "closed" (>&-), "read-only"
 * (1</dev/null), "no-reader" (a pipe whose reader has gone), or a path opened for writing
 * ("/dev/full"); standard input the file ${in_path} (NULL: /dev/null), standard error kept in
 * ${r}; the "NAME=VALUE" entries of ${env_more} (NULL-terminated, may be NULL) added to its
 * environment.
 */
static void run_with_stdout_env(struct run *r, const char *in_path, const char *how,
                                const char *const *env_more, const char *const *args)
{
	static const char *const unset[] = {"SESSD_URL=", "SESSD_AUTH_FILE=", NULL};
	const char *argv[64];
	char *envp[256], env_url[400];
	posix_spawn_file_actions_t fa;
	int err_pipe[2], gone[2], envc;
	pid_t pid;

	envc = run_begin(r, argv, args, envp, unset);
	/* An entry of env_more replaces the inherited one of its name: the first of two is the one
	 * getenv (and ASan's reading of ASAN_OPTIONS) finds. */
	for (size_t i = 0; env_more != NULL && env_more[i] != NULL && envc < 250; i++) {
		size_t name_len = strcspn(env_more[i], "=") + 1;
		int kept = 0;

		for (int e = 0; e < envc; e++)
			if (strncmp(envp[e], env_more[i], name_len) != 0)
				envp[kept++] = envp[e];
		envc = kept;
		envp[envc++] = (char *)env_more[i];
	}
	snprintf(env_url, sizeof(env_url), "SESSD_URL=%s", daemon_.unix_url);
	envp[envc++] = env_url;
	envp[envc] = NULL;
	cr_assert_eq(pipe2(err_pipe, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(gone, O_CLOEXEC), 0);
	close(gone[0]);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, in_path != NULL ? in_path : "/dev/null", O_RDONLY,
	                                 0);
	if (strcmp(how, "closed") == 0)
		posix_spawn_file_actions_addclose(&fa, 1);
	else if (strcmp(how, "read-only") == 0)
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_RDONLY, 0);
	else if (strcmp(how, "no-reader") == 0)
		posix_spawn_file_actions_adddup2(&fa, gone[1], 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, how, O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, envp), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(gone[1]);
	close(err_pipe[1]);
	while (drain(err_pipe[0], &r->err))
		;
	close(err_pipe[0]);
	run_end(r, pid);
}

/* run_with_stdout_env with this process's environment alone. */
static void run_with_stdout(struct run *r, const char *how, const char *const *args)
{
	run_with_stdout_env(r, NULL, how, NULL, args);
}

/*
 * What --id-file and --id-env take must be the id meant. A trailing space (an editor's, an
 * `echo "$id " >`), a leading one, or a byte order mark was taken as part of the id: destroy
 * then said "no such session" (exit 1) of a visitor still logged in, and set made a session
 * under the wrong id. And /dev/stdin (or /dev/fd/0) is standard input by another name: set
 * read the id from a file there, then stored the whole file, its id line too, as the
 * session's data. Now each is refused (exit 2) with nothing done.
 */
LEAK_CHECKED_TEST(sessctl, id_file_refuses_what_is_not_the_id_meant)
{
	static const char *const texts[] = {"spaced \n", " spaced\n", "\xef\xbb\xbfspaced\n"};
	char path[] = "/tmp/sessctl-idtext-XXXXXX", env[64];
	struct run r;
	int fd;

	put("default", "spaced", "kept");
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		fd = mkstemp(path);
		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, texts[i], strlen(texts[i])), (ssize_t)strlen(texts[i]));
		close(fd);
		RUN(&r, "destroy", "--id-file", path);
		cr_assert(strstr((char *)r.err.data, "space at the start or the end") != NULL ||
		              strstr((char *)r.err.data, "byte order mark") != NULL,
		          "%zu: %s", i, (char *)r.err.data);
		expect(&r, 2, "");
		unlink(path);
		strcpy(path, "/tmp/sessctl-idtext-XXXXXX");
	}
	snprintf(env, sizeof(env), "SESSD_ID=spaced ");
	run_spawn(&r, daemon_.unix_url, NULL, (const char *const[]){env, NULL}, NULL, 0,
	          (const char *const[]){"destroy", "--id-env", NULL});
	expect(&r, 2, "");
	RUN(&r, "get", "spaced");
	expect(&r, 0, "kept");
	/* Advice shown as it is to be typed, not "\x5cx00" (say escapes a backslash). */
	run_in(&r, "nul\0id\n", 7, (const char *const[]){"get", "--id-file", "-", NULL});
	cr_assert(strstr((char *)r.err.data, "write it as \\x00,") != NULL, "%s",
	          (char *)r.err.data);
	expect(&r, 2, "");

	/* set --id-file /dev/stdin < FILE: the file is read once, for the data. */
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "spaced\n", 7), 7);
	close(fd);
	run_with_stdout_env(&r, path, "/dev/null", NULL,
	                    (const char *const[]){"set", "--id-file", "/dev/stdin", NULL});
	cr_assert(strstr((char *)r.err.data, "is standard input") != NULL, "%s",
	          (char *)r.err.data);
	expect(&r, 2, NULL);
	run_with_stdout_env(&r, path, "/dev/null", NULL,
	                    (const char *const[]){"set-if", "--id-file", "/dev/fd/0",
	                                          "00000000000000000000000000000000", NULL});
	expect(&r, 2, NULL);
	RUN(&r, "get", "spaced");
	expect(&r, 0, "kept");
	/* A command that reads no data may take its id from there. */
	run_with_stdout_env(
	    &r, path, "/dev/null", NULL,
	    (const char *const[]){"touch", "--id-file", "/dev/stdin", "--ttl", "60", NULL});
	expect(&r, 0, NULL);
	unlink(path);
}

/*
 * flash-pop removes what it prints. With standard output closed it popped the messages, then
 * failed to print them ("writing the output: Bad file descriptor"): gone, never seen. Now an
 * output that cannot be written (closed, read-only, a pipe without a reader) is found before
 * the pop, which is then not made; one whose write fails at once (/dev/full) gets the messages
 * on standard error, every one, after a line saying why, and exit status 2.
 */
LEAK_CHECKED_TEST(sessctl, flash_pop_keeps_or_shows_what_it_cannot_print)
{
	static const char *const unwritable[] = {"closed", "read-only", "no-reader"};
	const char *err, *shown;
	struct run r;

	RUN(&r, "flash-push", "undelivered", "info", "first");
	expect(&r, 0, "1\n");
	RUN(&r, "flash-push", "undelivered", "warn", "two\nlines");
	expect(&r, 0, "1\n");
	for (size_t i = 0; i < sizeof(unwritable) / sizeof(unwritable[0]); i++) {
		run_with_stdout(&r, unwritable[i],
		                (const char *const[]){"flash-pop", "undelivered", NULL});
		cr_assert(strstr((char *)r.err.data, "nothing was removed") != NULL, "%s: %s",
		          unwritable[i], (char *)r.err.data);
		expect(&r, 2, NULL);
		RUN(&r, "--json", "ttl", "undelivered");
		expect_json(&r);
		expect(&r, 0, NULL);
	}
	run_with_stdout(&r, "/dev/full", (const char *const[]){"flash-pop", "undelivered", NULL});
	err = (const char *)r.err.data;
	cr_assert(strncmp(err,
	                  "sessctl: flash-pop: writing standard output: No space left on "
	                  "device; ",
	                  strlen("sessctl: flash-pop: writing standard output: No space left on "
	                         "device; ")) == 0,
	          "%s", err);
	shown = strchr(err, '\n');
	cr_assert_not_null(shown, "%s", err);
	cr_assert_str_eq(shown + 1, "info\tfirst\nwarn\ttwo\\x0alines\n");
	expect(&r, 2, NULL);
	/* Popped, and shown on standard error: nothing was lost silently. */
	RUN(&r, "flash-pop", "undelivered");
	expect(&r, 0, "");
	RUN(&r, "flash-push", "undelivered", "info", "json");
	expect(&r, 0, "1\n");
	run_with_stdout(&r, "/dev/full",
	                (const char *const[]){"--json", "flash-pop", "undelivered", NULL});
	shown = strchr((char *)r.err.data, '\n');
	cr_assert_not_null(shown, "%s", (char *)r.err.data);
	cr_assert_str_eq(shown + 1, "{\"info\":[\"json\"]}\n");
	expect(&r, 2, NULL);
	/* A change whose output alone is lost says it was made: exit 2 alone reads as not. */
	put("fulls", "a", "x");
	run_with_stdout(&r, "/dev/full",
	                (const char *const[]){"--namespace", "fulls", "clear", "--yes", NULL});
	cr_assert(strstr((char *)r.err.data, "the command was carried out") != NULL, "%s",
	          (char *)r.err.data);
	expect(&r, 2, NULL);
	RUN(&r, "--namespace", "fulls", "count");
	cr_assert_eq(r.status, 0);
	run_free(&r);
	/* A push whose output's reader has gone died of SIGPIPE after queuing the message: a
	 * pipefail script saw a failure and pushed again. Now it says the push was made. */
	run_with_stdout(&r, "no-reader",
	                (const char *const[]){"flash-push", "unread", "info", "pushed", NULL});
	cr_assert(strstr((char *)r.err.data, "the command was carried out") != NULL, "%s",
	          (char *)r.err.data);
	expect(&r, 2, NULL);
	RUN(&r, "flash-pop", "unread");
	expect(&r, 0, "info\tpushed\n");
}

/* The flash messages queued in namespace ${ns}, as stats --namespace counts them (a look
 * that pops nothing). */
static uint64_t flashes_queued(const char *ns)
{
	const char *at;
	uint64_t n;
	struct run r;

	RUN(&r, "--namespace", ns, "stats");
	cr_assert_eq(r.status, 0, "stats: %s", (char *)r.err.data);
	at = strstr((char *)r.out.data, "\nflashes ");
	cr_assert_not_null(at, "%s", (char *)r.out.data);
	n = strtoull(at + strlen("\nflashes "), NULL, 10);
	run_free(&r);
	return n;
}

/* The most allocations sessctl's flash-pop makes; a sweep that has not run out by then is wrong. */
#define FLASH_POP_MAX_POINTS 2000

/*
 * flash-pop to a full disk (/dev/full) with sessctl's allocations failed from the Nth on
 * (failalloc.so), for every N until none fails: the message is never lost without a word. It
 * stays queued (the run failed before the pop), or is shown on standard error after the line
 * that says why (exit 2), or libsessd lost the reply and sessctl says the pop may have been
 * carried out (exit 5), or, where sessd's answer came and libsessd had no memory for the
 * messages in it, that they were removed and are lost (exit 5; before, "may or may not",
 * though the pop was known to be carried out: now the message is seen to be gone). Before,
 * with no memory to make the output whole first (open_memstream), flash-pop printed straight
 * to standard output and exited 0 whatever the write did: at the point where that allocation
 * failed the message was popped, written to /dev/full, and gone.
 */
LEAK_CHECKED_TEST_OPTS(sessctl, flash_pop_without_memory_loses_nothing_silently, .timeout = 120)
{
	const char *so = getenv("SESSD_FAILALLOC_SO");
	const char *asan = getenv("ASAN_OPTIONS");
	char words_path[] = "/tmp/sessctl-failalloc-XXXXXX", preload[PATH_MAX + 16], words_env[64];
	char asan_env[512];
	const char *env[] = {preload, words_env, asan_env, NULL};
	int fd, point, failed_points = 0, rescued_after_failure = 0, said_lost = 0;
	_Atomic int64_t *words;
	bool queued = false;
	struct run r;

	cr_assert_not_null(so, "SESSD_FAILALLOC_SO is not set (meson test sets it)");
	fd = mkstemp(words_path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 3 * sizeof(int64_t)), 0);
	words = mmap(NULL, 3 * sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(words, MAP_FAILED);
	close(fd);
	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", so);
	snprintf(words_env, sizeof(words_env), "SESSD_FAILALLOC_FILE=%s", words_path);
	/* A sanitizer build's sessctl loads ASan's shared runtime after the preloaded module: the
	 * check of that order is turned off, keeping the options scripts/test gives (a second
	 * ASAN_OPTIONS after an inherited one would be ignored: run_with_stdout_env replaces it).
	 */
	cr_assert_lt((size_t)snprintf(asan_env, sizeof(asan_env),
	                              "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
	                              asan != NULL ? asan : "", asan != NULL && *asan ? ":" : ""),
	             sizeof(asan_env));
	for (point = 0; point < FLASH_POP_MAX_POINTS; point++) {
		const char *err;
		bool rescued, said_unknown, lost;
		int64_t failed;

		if (!queued) {
			RUN(&r, "--namespace", "nomem-pop", "flash-push", "nomem-pop", "info",
			    "kept");
			expect(&r, 0, "1\n");
			queued = true;
		}
		atomic_store(&words[0], point);
		atomic_store(&words[1], INT64_MAX);
		atomic_store(&words[2], 0);
		run_with_stdout_env(&r, NULL, "/dev/full", env,
		                    (const char *const[]){"--namespace", "nomem-pop", "flash-pop",
		                                          "nomem-pop", NULL});
		failed = atomic_load(&words[2]);
		atomic_store(&words[1], 0);
		err = (const char *)r.err.data;
		cr_assert_neq(r.status, -1, "point %d: sessctl died of a signal: %s", point, err);
		cr_assert_neq(r.status, 0, "point %d: exit 0 with its output on /dev/full", point);
		rescued =
		    strstr(err, "here they are, as they would have been printed:\ninfo\tkept\n") !=
		    NULL;
		said_unknown = r.status == 5 && strstr(err, "may or may not have been carried out");
		lost = r.status == 5 && strstr(err, "sessd removed the messages and answered, but "
		                                    "there was no memory to read its answer: the "
		                                    "messages are lost (exit 5)\n") != NULL;
		cr_assert(!(lost && said_unknown), "point %d: %s", point, err);
		run_free(&r);
		if (lost) {
			/* Said to be removed: it must be. */
			cr_assert_eq(flashes_queued("nomem-pop"), 0,
			             "point %d: said lost, but queued", point);
			said_lost++;
			queued = false;
		} else if (rescued) {
			cr_assert_eq(r.status, 2, "point %d", point);
			queued = false;
			if (failed > 0)
				rescued_after_failure++;
		} else if (said_unknown) {
			queued = false;
		} else {
			/* Neither shown nor said: it must still be queued. (The session's ttl,
			 * which this looked at before, is there after a pop too: a flash-only
			 * session outlives its messages.) */
			cr_assert_eq(flashes_queued("nomem-pop"), 1,
			             "point %d: the message was popped and lost: %s", point, err);
		}
		if (failed == 0)
			break;
		failed_points++;
	}
	cr_assert_lt(point, FLASH_POP_MAX_POINTS, "flash-pop never ran out of allocations to fail");
	cr_assert_gt(failed_points, 0,
	             "no allocation of sessctl was failed (failalloc.so not used?)");
	cr_assert_gt(rescued_after_failure, 0,
	             "no point failed an allocation after the pop and still showed the message");
	cr_assert_gt(said_lost, 0,
	             "no point lost the answer for memory and said the messages were removed");
	cr_log_info("%d allocation points failed in turn, %d rescued on stderr after a failure, "
	            "%d said lost",
	            failed_points, rescued_after_failure, said_lost);
	munmap((void *)words, 3 * sizeof(int64_t));
	unlink(words_path);
	if (!queued) {
		RUN(&r, "--namespace", "nomem-pop", "flash-pop", "nomem-pop");
		run_free(&r);
	}
}

/*
 * Run sessctl ${args} against the daemon with a terminal for its standard output (its output
 * processing off, so the bytes come as written), kept in r->out; standard input /dev/null.
 */
static void run_to_terminal(struct run *r, const char *const *args)
{
	static const char *const unset[] = {"SESSD_URL=", "SESSD_AUTH_FILE=", NULL};
	const char *argv[16];
	char env_url[400], *envp[256];
	int master, slave, err_pipe[2], envc;
	posix_spawn_file_actions_t fa;
	struct termios t;
	pid_t pid;

	envc = run_begin(r, argv, args, envp, unset);
	snprintf(env_url, sizeof(env_url), "SESSD_URL=%s", daemon_.unix_url);
	envp[envc++] = env_url;
	envp[envc] = NULL;
	master = open_terminal(&slave, &t);
	t.c_oflag &= ~(tcflag_t)OPOST;
	cr_assert_eq(tcsetattr(slave, TCSANOW, &t), 0);
	cr_assert_eq(pipe2(err_pipe, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, slave, 1);
	posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, envp), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(slave);
	close(err_pipe[1]);
	/* The master reads EIO once sessctl, the slave's last holder, has exited. */
	collect_output(r, master, err_pipe[0]);
	run_end(r, pid);
}

/*
 * get prints the data exactly as stored, and any client may have stored it, with an app's
 * visitor's text in it: on the operator's terminal ESC or a C1 CSI drove it (a forged screen,
 * a window title, OSC 52's clipboard write). On a terminal those bytes are now shown as \xNN,
 * with a line on standard error saying so; newlines, tabs, backslashes and UTF-8 text are
 * shown as they are, and piped, the bytes are exact.
 */
LEAK_CHECKED_TEST(sessctl, get_on_a_terminal_cannot_drive_it)
{
	static const char hostile[] =
	    "{\"name\":\"x\x1b]52;c;ZXZpbA==\x07\x1b[2J\"}\n\tcaf\xc3\xa9 "
	    "\\\"q\\\" \xc2\x9b"
	    "31m";
	struct run r;

	put("default", "hostile", hostile);
	run_to_terminal(&r, (const char *const[]){"get", "hostile", NULL});
	cr_assert_eq(r.status, 0, "stderr: %s", (char *)r.err.data);
	cr_assert_str_eq((char *)r.out.data, "{\"name\":\"x\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\"}\n\t"
	                                     "caf\xc3\xa9 \\\"q\\\" \\xc2\\x9b31m");
	cr_assert(strstr((char *)r.err.data, "shown as \\xNN") != NULL, "%s", (char *)r.err.data);
	run_free(&r);
	/* Plain data on a terminal: as it is, and no note. */
	put("default", "plain", "{\"a\":\"b\\\"c\"}\n");
	run_to_terminal(&r, (const char *const[]){"get", "plain", NULL});
	expect(&r, 0, "{\"a\":\"b\\\"c\"}\n");
	/* Piped: exact. */
	RUN(&r, "get", "hostile");
	expect(&r, 0, hostile);
}

/*
 * A line of list (or find) is an --id-file line (sessctl(1), IDS), but --id-file refuses a
 * space at the id's start or end, an editor's or an `echo "$id "`'s: list printed an id that
 * really ends in a space as it is, and that line was refused (exit 2), so the session could
 * not be named from it. Such spaces are printed \x20 now, and every line gives its id back.
 * The same for namespaces' names and --namespace.
 */
LEAK_CHECKED_TEST(sessctl, a_list_line_of_an_id_with_spaces_at_its_ends_names_it_again)
{
	static const struct {
		const char *id, *printed;
	} ids[] = {
	    {"ends ", "ends\\x20"},
	    {" starts", "\\x20starts"},
	    {"  both  ", "\\x20\\x20both\\x20\\x20"},
	    {"in side", "in side"},
	    {" ", "\\x20"},
	};
	const size_t n = sizeof(ids) / sizeof(ids[0]);
	char line[128];
	const char *p;
	struct run r;

	for (size_t i = 0; i < n; i++)
		put_bytes("edges", ids[i].id, strlen(ids[i].id), ids[i].printed);
	put_bytes(" pad ", "x", 1, "padded namespace");
	RUN(&r, "--namespace", "edges", "list");
	cr_assert_eq(count_lines(&r), n, "%s", (char *)r.out.data);
	for (size_t i = 0; i < n; i++) {
		snprintf(line, sizeof(line), "%s\t", ids[i].printed);
		cr_assert(has_line_starting(&r, line), "no line for \"%s\":\n%s", ids[i].id,
		          (char *)r.out.data);
	}
	/* Each line as list printed it, fed to --id-file: the session it names, its data. */
	for (p = (const char *)r.out.data; *p != '\0'; p = strchr(p, '\n') + 1) {
		size_t len = strcspn(p, "\n") + 1;
		struct run got;

		run_in(
		    &got, p, len,
		    (const char *const[]){"--namespace", "edges", "get", "--id-file", "-", NULL});
		cr_assert_eq(got.status, 0, "line %.*s: exit %d: %s", (int)len - 1, p, got.status,
		             (char *)got.err.data);
		cr_assert_eq(strncmp(p, (char *)got.out.data, got.out.len), 0,
		             "line %.*s gave the data %s", (int)len - 1, p, (char *)got.out.data);
		cr_assert_eq(p[got.out.len], '\t', "line %.*s gave the data %s", (int)len - 1, p,
		             (char *)got.out.data);
		run_free(&got);
	}
	run_free(&r);
	RUN(&r, "--namespace", "edges", "find", "both");
	expect(&r, 0, "\\x20\\x20both\\x20\\x20\n");
	RUN(&r, "namespaces");
	cr_assert(has_line(&r, "\\x20pad\\x20\t1"), "%s", (char *)r.out.data);
	expect(&r, 0, NULL);
	RUN(&r, "--namespace", "\\x20pad\\x20", "get", "x");
	expect(&r, 0, "padded namespace");
	/* The JSON is exact: a JSON string shows its spaces. */
	RUN(&r, "--namespace", "edges", "--json", "find", "both");
	expect(&r, 0, "[\"  both  \"]\n");
}

/*
 * A sealed set of more than the socket takes, to a daemon that froze after the HELLO: the SET
 * never left whole, so nothing of it can be carried out (a record is opened only whole, and the
 * rest of it will never come: libsessd resets the connection), and sessctl says so, exit 4.
 * It then retired that connection all the same (owed for any change among the frames, sent or
 * not): a second connect to the frozen daemon, a second timeout, and "warning: could not retire
 * the broken connection ...; what it sent may still be carried out later" under an exit status
 * that says nothing was. Now only a change that left whole is owed a RETIRE.
 */
LEAK_CHECKED_TEST(sessctl, a_sealed_set_that_never_left_whole_owes_no_retire)
{
	const size_t big_len = 900 * 1024;
	char dir[64], secret[128], url[sizeof(((struct harness_daemon *)0)->unix_url)],
	    err[4096] = "";
	const char *args[] = {"--auth-file", secret, NULL};
	struct harness_daemon d;
	char *big = malloc(big_len);
	struct run r;
	int in_fd, err_fd, status;
	size_t done = 0;
	ssize_t n;
	pid_t pid;

	cr_assert_not_null(big);
	memset(big, 'x', big_len);
	snprintf(dir, sizeof(dir), "/tmp/sessd-ctlowed-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	write_secret(secret, dir, "secret", AUTH_SECRET "\n", 0600);
	cr_assert_eq(harness_start(&d, args), 0, "the daemon did not start");
	snprintf(url, sizeof(url), "%s", d.unix_url);
	/* set reads its data after its HELLO: the daemon is frozen in between. */
	pid = spawn_with_input((const char *const[]){"--connect", url, "--auth-file", secret,
	                                             "--timeout", "500", "--ttl", "60", "set",
	                                             "never-whole", NULL},
	                       &in_fd, &err_fd);
	wait_blocked_in(pid, "pipe_read");
	cr_assert_eq(harness_sigstop(d.pid), 0);
	signal(SIGPIPE, SIG_IGN);
	while (done < big_len && (n = write(in_fd, big + done, big_len - done)) > 0)
		done += (size_t)n;
	cr_assert_eq(done, big_len, "sessctl did not read its input");
	close(in_fd);
	free(big);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	n = read(err_fd, err, sizeof(err) - 1);
	err[n > 0 ? n : 0] = '\0';
	close(err_fd);
	cr_assert_eq(kill(d.pid, SIGCONT), 0);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 4, "exit %d; stderr: %s",
	          WIFEXITED(status) ? WEXITSTATUS(status) : -1, err);
	cr_assert_null(strstr(err, "may or may not"), "stderr: %s", err);
	cr_assert_null(strstr(err, "could not retire"), "stderr: %s", err);
	run_full(&r, url, secret, NULL, 0, (const char *const[]){"get", "never-whole", NULL});
	cr_assert_eq(r.status, 1, "exit %d: %s", r.status, (char *)r.err.data);
	run_free(&r);
	cr_assert_eq(harness_stop(&d), 0);
	unlink(secret);
	cr_assert_eq(rmdir(dir), 0);
}

/*
 * An id that reads as express-session's signed cookie, s:ID.SIGNATURE (or a Cookie header
 * holding one), is taken to be the cookie, and the session ID in it is used (sessctl(1), IDS).
 * list printed such an id as it was, so its line named ID, another session: `list | while read
 * ...; do SESSD_ID=$id sessctl destroy --id-env` destroyed the session ID (logged its visitor
 * out) and left the listed one, and a set so wrote over ID's data. Such an id is printed with
 * its ':' and '%' as \x3a and \x25 now, and every line of list and find gives its own session
 * back, through --id-file, --id-env and the argument.
 */
LEAK_CHECKED_TEST(sessctl, a_list_line_of_an_id_shaped_as_a_cookie_names_that_id)
{
	static const char sig[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	char ids[3][128], line[160], env[200];
	const char *p;
	struct run r;

	snprintf(ids[0], sizeof(ids[0]), "s:victim.%s", sig);
	snprintf(ids[1], sizeof(ids[1]), "x;s%%3Avictim.%s", sig);
	snprintf(ids[2], sizeof(ids[2]), "s:plain");
	put_bytes("cookie-shaped", "victim", 6, "victim's data");
	for (size_t i = 0; i < 3; i++)
		put_bytes("cookie-shaped", ids[i], strlen(ids[i]), ids[i]);
	RUN(&r, "--namespace", "cookie-shaped", "list");
	cr_assert_eq(count_lines(&r), 4, "%s", (char *)r.out.data);
	/* An id that does not read as a cookie is printed as it was. */
	cr_assert(has_line_starting(&r, "s:plain\t"), "%s", (char *)r.out.data);
	for (p = (const char *)r.out.data; *p != '\0'; p = strchr(p, '\n') + 1) {
		size_t len = strcspn(p, "\n"), id_len = strcspn(p, "\t");
		bool victim;
		struct run got;

		snprintf(line, sizeof(line), "%.*s", (int)id_len, p);
		victim = strcmp(line, "victim") == 0;
		run_in(&got, p, len + 1,
		       (const char *const[]){"--namespace", "cookie-shaped", "get", "--id-file",
		                             "-", NULL});
		cr_assert_eq(got.status, 0, "line %s: exit %d: %s", line, got.status,
		             (char *)got.err.data);
		cr_assert_eq(strcmp((char *)got.out.data, "victim's data") == 0, victim,
		             "the line %s named the session whose data is %s", line,
		             (char *)got.out.data);
		run_free(&got);
		snprintf(env, sizeof(env), "SESSD_ID=%s", line);
		run_spawn(
		    &got, daemon_.unix_url, NULL, (const char *const[]){env, NULL}, NULL, 0,
		    (const char *const[]){"--namespace", "cookie-shaped", "get", "--id-env", NULL});
		cr_assert_eq(got.status, 0, "%s: %s", line, (char *)got.err.data);
		cr_assert_eq(strcmp((char *)got.out.data, "victim's data") == 0, victim,
		             "$SESSD_ID %s named the session whose data is %s", line,
		             (char *)got.out.data);
		run_free(&got);
		RUN(&got, "--namespace", "cookie-shaped", "get", line);
		cr_assert_eq(got.status, 0, "%s: %s", line, (char *)got.err.data);
		cr_assert_eq(strcmp((char *)got.out.data, "victim's data") == 0, victim,
		             "the argument %s named the session whose data is %s", line,
		             (char *)got.out.data);
		run_free(&got);
	}
	run_free(&r);
	RUN(&r, "--namespace", "cookie-shaped", "find", "victim.");
	cr_assert_eq(count_lines(&r), 2, "%s", (char *)r.out.data);
	cr_assert_null(strstr((char *)r.out.data, "s:victim"), "%s", (char *)r.out.data);
	run_free(&r);
	/* A cookie given on purpose is still read as one. */
	RUN(&r, "--namespace", "cookie-shaped", "get", ids[0]);
	cr_assert_eq(r.status, 0, "%s", (char *)r.err.data);
	cr_assert_str_eq((char *)r.out.data, "victim's data");
	run_free(&r);
}

/*
 * --help says what list and find print an id shaped as a signed cookie with (\x3a, \x25:
 * sessctl(1), IDS), beside the other \xNN cases: before, it named only bytes outside printable
 * ASCII, the backslash and the edge spaces, and a script writer who read only the help met
 * "s\x3a..." in list's output with nothing to say why.
 */
LEAK_CHECKED_TEST(sessctl, help_names_the_escapes_of_a_cookie_shaped_id)
{
	struct run r;

	RUN(&r, "--help");
	cr_assert(strstr((char *)r.out.data, "\\x3a") != NULL &&
	              strstr((char *)r.out.data, "\\x25") != NULL,
	          "%s", (char *)r.out.data);
	expect(&r, 0, NULL);
	run_free(&r);
}

/*
 * The "arg" fields of ${r}'s list --json output, JSON-decoded (each string is printable ASCII,
 * its '\' and '"' escaped as JSON does), into ${args} (${most} at most, each malloc'd);
 * returns how many.
 */
static size_t list_args(const struct run *r, char **args, size_t most)
{
	const char *p = (const char *)r->out.data;
	size_t n = 0, len;
	char *arg;

	while ((p = strstr(p, ",\"arg\":\"")) != NULL && n < most) {
		p += strlen(",\"arg\":\"");
		arg = malloc(strlen(p) + 1);
		cr_assert_not_null(arg);
		for (len = 0; *p != '"'; p++) {
			cr_assert((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f,
			          "a byte outside printable ASCII in an arg: %s",
			          (char *)r->out.data);
			if (*p == '\\') {
				p++;
				cr_assert(*p == '\\' || *p == '"',
				          "an escape other than \\\\ or \\\": %s",
				          (char *)r->out.data);
			}
			arg[len++] = *p;
		}
		arg[len] = '\0';
		args[n++] = arg;
	}
	return n;
}

/*
 * list --json gives each id's "arg": what to give back as the ID, exactly. Its "id" is the id
 * as JSON holds it, which named another session when given back (jq -r .id): an id that holds
 * a backslash, x76 (\x76ictim...) was decoded as the ID argument's \xNN and named victim...;
 * one shaped as a signed cookie (s:victim....SIGNATURE) was read as the cookie and named
 * victim... too; and one with a byte that is not UTF-8 has no JSON string that gives it back
 * (0x85 and U+0085 are both \u0085). Here every session is listed, each "arg" names its own
 * session (get), destroys it (as an argument, and by --id-file), and victimAAAA is left alone
 * until its own arg destroys it.
 */
LEAK_CHECKED_TEST(sessctl, an_id_is_given_back_as_list_json_s_arg)
{
	static const char victim[] = "victimAAAA", lookalike[] = "\\x76ictimAAAA";
	static const char binary[] = "n\x85\nl";
	enum { N = 5 };
	char cookie[64], path[] = "/tmp/sessctl-arg-XXXXXX", *args[N + 1], *arg_of[N] = {0};
	const char *const datas[N] = {"the-victim", "a-lookalike", "a-cookie-shape", "a-binary",
	                              "a-leading-space"};
	struct run r;
	size_t n;
	int fd;

	snprintf(cookie, sizeof(cookie), "s:%s.%043d", victim, 0);
	put_bytes("args", victim, strlen(victim), datas[0]);
	put_bytes("args", lookalike, strlen(lookalike), datas[1]);
	put_bytes("args", cookie, strlen(cookie), datas[2]);
	put_bytes("args", binary, strlen(binary), datas[3]);
	put_bytes("args", " lead", 5, datas[4]);

	RUN(&r, "--namespace", "args", "list", "--json");
	expect_json(&r);
	n = list_args(&r, args, N + 1);
	cr_assert_eq(n, N, "%zu \"arg\" fields, not one per session: %s", n, (char *)r.out.data);
	run_free(&r);
	/* Each names its own session. */
	for (size_t i = 0; i < n; i++) {
		size_t k;

		RUN(&r, "--namespace", "args", "get", args[i]);
		for (k = 0; k < N && strcmp((char *)r.out.data, datas[k]) != 0; k++)
			;
		cr_assert_lt(k, N, "arg %s names no session listed (got \"%s\")", args[i],
		             (char *)r.out.data);
		cr_assert_null(arg_of[k], "args %s and %s name the same session", arg_of[k],
		               args[i]);
		arg_of[k] = args[i];
		/* Not read as a cookie: nothing on standard error. */
		expect(&r, 0, NULL);
	}
	/* Each lookalike destroyed by its arg leaves the victim alone. */
	for (int k = 1; k < 4; k++) {
		RUN(&r, "--namespace", "args", "destroy", arg_of[k]);
		expect(&r, 0, "");
		RUN(&r, "--namespace", "args", "get", victim);
		expect(&r, 0, datas[0]);
	}
	/* --id-file takes it too (a line of it, as a line of list is). */
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, arg_of[4], strlen(arg_of[4])), (ssize_t)strlen(arg_of[4]));
	cr_assert_eq(write(fd, "\n", 1), 1);
	close(fd);
	RUN(&r, "--namespace", "args", "destroy", "--id-file", path);
	expect(&r, 0, "");
	unlink(path);
	RUN(&r, "--namespace", "args", "count");
	expect(&r, 0, "1\n");
	RUN(&r, "--namespace", "args", "destroy", arg_of[0]);
	expect(&r, 0, "");
	RUN(&r, "--namespace", "args", "count");
	expect_warned(&r, 0, "0\n", "args");
	for (size_t i = 0; i < n; i++)
		free(args[i]);
}
