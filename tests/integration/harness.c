/*
 * The integration-test harness: the real daemon in a temporary directory, raw frames over
 * real sockets. See harness.h.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <ftw.h>
#include <linux/capability.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include <criterion/criterion.h>

#include "buf.h"
#include "ids.h"
#include "mp.h"

#define HARNESS_READY_WAIT_MS 10000
#define HARNESS_STOP_WAIT_MS  30000
#define HARNESS_IO_TIMEOUT_S  10
/* Replies larger than this are a broken daemon, not something to allocate for: a reply is
 * at most --max-frame, which sessd takes up to 1 GiB. */
#define HARNESS_MAX_REPLY (1024u * 1024u * 1024u)
#define HARNESS_MAX_ARGS  64
/* How long harness_run waits for a daemon expected to exit. */
#define HARNESS_RUN_WAIT_MS 20000
/* How long harness_sigstop waits for a process to stop: a loaded machine takes milliseconds. */
#define HARNESS_SIGSTOP_WAIT_MS 10000

void harness_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

long harness_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copy the daemon's log to our stderr so a failing test shows why. */
static void dump_log(const struct harness_daemon *d)
{
	char path[400];
	char chunk[4096];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/sessd.log", d->dir);
	f = fopen(path, "r");
	if (f == NULL)
		return;
	fprintf(stderr, "---- %s ----\n", path);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, stderr);
	fprintf(stderr, "---- end of %s (directory kept) ----\n", path);
	fclose(f);
}

/*
 * What must never reach a daemon's log (style.md: secrets and full session ids never do): the
 * session ids and plain secrets this test sent through harness_call, and the secrets it wrote
 * with harness_write_secret. The first HARNESS_SECRETS of them are kept (a test of a million
 * sessions has the same log lines as one of ten); ids shorter than HARNESS_SECRET_MIN bytes
 * are not, as a short one (a hex tag's digits, a time's) is found in a log for its own sake
 * (none of 8 or more was, across the integration suites, at --log-level debug). harness_stop
 * looks for each in the daemon's log, as it is and in the forms a line could carry it.
 * Criterion runs each test in a process of its own, so they are the test's alone; the lock
 * is for its threads.
 */
#define HARNESS_SECRETS    256
#define HARNESS_SECRET_MIN 8
/* The longest kept: a secret (1024 bytes) takes up to four times that escaped. */
#define HARNESS_SECRET_MAX 1024

static struct {
	uint8_t bytes[HARNESS_SECRET_MAX];
	size_t len;
} secrets[HARNESS_SECRETS];
static size_t n_secrets;
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;

void harness_note_secret(const void *p, size_t len)
{
	if (len < HARNESS_SECRET_MIN || len > HARNESS_SECRET_MAX)
		return;
	pthread_mutex_lock(&secrets_lock);
	/* Full: a test of a million calls then pays no search of the kept ones a call. */
	if (n_secrets == HARNESS_SECRETS)
		goto out;
	for (size_t i = 0; i < n_secrets; i++)
		if (secrets[i].len == len && memcmp(secrets[i].bytes, p, len) == 0)
			goto out;
	if (n_secrets < HARNESS_SECRETS) {
		memcpy(secrets[n_secrets].bytes, p, len);
		secrets[n_secrets++].len = len;
	}
out:
	pthread_mutex_unlock(&secrets_lock);
}

/* The id and a plain secret of ${req}, noted (a key exchange's map holds nothing secret). */
static void note_request(const struct codec_request *req)
{
	struct mp_reader r;
	struct mp_bytes secret;

	if (req->id.len > 0)
		harness_note_secret(req->id.ptr, req->id.len);
	if (req->op != CODEC_OP_HELLO || req->auth.len == 0)
		return;
	mp_reader_init(&r, req->auth.ptr, req->auth.len);
	if (mp_read_bytes(&r, &secret, NULL) == 0)
		harness_note_secret(secret.ptr, secret.len);
}

/* ${len} bytes at ${p} as the daemon's log_escape writes them (daemon/log.c), into ${out}. */
static void log_escaped(char *out, const uint8_t *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
			out[n++] = (char)p[i];
			continue;
		}
		out[n++] = '\\';
		out[n++] = 'x';
		out[n++] = hex[p[i] >> 4];
		out[n++] = hex[p[i] & 0xf];
	}
	out[n] = '\0';
}

/*
 * The form in which a noted secret shows in ${text} (the daemon's log), or NULL when none
 * does: as it is (escaped as log_escape would), in hex or in base64url.
 */
static const char *log_shows_secret(const char *text, const uint8_t **which, size_t *which_len)
{
	static char form[4 * HARNESS_SECRET_MAX + 1];
	const char *shown = NULL;

	pthread_mutex_lock(&secrets_lock);
	for (size_t i = 0; i < n_secrets && shown == NULL; i++) {
		const uint8_t *p = secrets[i].bytes;
		size_t len = secrets[i].len;

		log_escaped(form, p, len);
		if (strstr(text, form) != NULL) {
			shown = "as it is";
		} else {
			for (size_t j = 0; j < len; j++)
				snprintf(form + 2 * j, 3, "%02x", p[j]);
			if (strstr(text, form) != NULL)
				shown = "in hex";
			else if (ids_base64url_encode(form, sizeof(form), p, len) > 0 &&
			         strstr(text, form) != NULL)
				shown = "in base64url";
		}
		*which = p;
		*which_len = len;
	}
	pthread_mutex_unlock(&secrets_lock);
	return shown;
}

/*
 * Whether ${d}'s log holds a secret or session id this test sent (said on stderr, with the
 * log): a test that passes must also leave none there.
 */
static bool log_holds_secret(const struct harness_daemon *d)
{
	const uint8_t *which = NULL;
	size_t which_len = 0;
	const char *shown;
	char path[300];
	char *text;

	snprintf(path, sizeof(path), "%s/sessd.log", d->dir);
	text = harness_read_text(path);
	shown = log_shows_secret(text, &which, &which_len);
	free(text);
	if (shown == NULL)
		return false;
	fprintf(stderr,
	        "harness: the daemon's log holds, %s, a session id or secret the test sent "
	        "(%zu bytes starting %.4s...)\n",
	        shown, which_len, (const char *)which);
	dump_log(d);
	return true;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

void harness_remove_tree(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int harness_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	cr_assert_not_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* Wait for ${pid} up to ${ms}; returns the wait status, or -1 on timeout or error. */
static int wait_for(pid_t pid, long ms, int *status)
{
	long waited = 0;
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
		if (waited >= ms)
			return -1;
		harness_sleep_ms(10);
		waited += 10;
	}
}

/* Read the ready file: the listeners' URLs, one a line. Returns 0 when the TCP URL was found. */
static int read_ready(struct harness_daemon *d, const char *path)
{
	char line[512];
	int found = -1;
	FILE *f;

	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, "tcp://", 6) == 0 && strlen(line) < sizeof(d->tcp_url)) {
			strcpy(d->tcp_url, line);
			found = 0;
		}
	}
	fclose(f);
	return found;
}

/* Append ${more} (NULL-terminated, may be NULL) to the ${argc} entries of ${argv}
 * (HARNESS_MAX_ARGS long) and end it with NULL. Returns the new count, or -1 when too many. */
static int argv_append(const char **argv, int argc, const char *const *more)
{
	for (size_t i = 0; more != NULL && more[i] != NULL; i++) {
		if (argc >= HARNESS_MAX_ARGS - 1) {
			fprintf(stderr, "harness: too many arguments\n");
			return -1;
		}
		argv[argc++] = more[i];
	}
	argv[argc] = NULL;
	return argc;
}

/* Drop the capabilities that let root ignore file modes, so that a mode also binds a daemon
 * a root test starts. Returns 0, or -1 when this process cannot drop them. */
static int drop_dac_override(void)
{
	if (geteuid() != 0)
		return 0;
	if (prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, 0, 0, 0) == -1 ||
	    prctl(PR_CAPBSET_DROP, CAP_DAC_READ_SEARCH, 0, 0, 0) == -1)
		return -1;
	return 0;
}

/*
 * Fork and exec ${argv} (argv[0] the binary), its stdout and stderr into ${log} (appended to,
 * or written over when ${truncate}). With ${modes_bind}, the child first drops root's power
 * to ignore file modes, exiting 126 when it cannot. Returns the child's pid, or -1.
 */
static pid_t spawn_logged(const char *const *argv, const char *log, bool truncate, bool modes_bind)
{
	pid_t pid;
	int fd;

	fflush(NULL);
	pid = fork();
	if (pid != 0)
		return pid;
	/* A test worker that dies (a failed assert, a timeout) takes its daemon along. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Standard output too: a daemon orphaned by a crashed test must not hold the test's
	 * output pipe open, or the test runner waits for it forever. */
	fd = open(log, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND), 0644);
	if (fd != -1) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	if (modes_bind && drop_dac_override() == -1)
		_exit(126);
	execv(argv[0], (char *const *)argv);
	fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Fork and exec the daemon with its listeners on ${tcp_listen}; wait for it to be ready. */
static int launch(struct harness_daemon *d, const char *tcp_listen, const char *const *extra_args)
{
	const char *argv[HARNESS_MAX_ARGS];
	char unix_listen[320], ready[300], log[300];
	const char *bin = getenv("SESSD_BIN");
	int argc = 0, status;
	long waited;
	pid_t pid;

	if (bin == NULL || *bin == '\0') {
		fprintf(stderr, "harness: SESSD_BIN is not set\n");
		return -1;
	}
	snprintf(unix_listen, sizeof(unix_listen), "unix:%s", d->unix_path);
	snprintf(ready, sizeof(ready), "%s/ready", d->dir);
	snprintf(log, sizeof(log), "%s/sessd.log", d->dir);
	unlink(ready);

	argv[argc++] = bin;
	argv[argc++] = "--listen";
	argv[argc++] = unix_listen;
	argv[argc++] = "--listen";
	argv[argc++] = tcp_listen;
	argv[argc++] = "--ready-file";
	argv[argc++] = ready;
	if (argv_append(argv, argc, extra_args) == -1)
		return -1;

	pid = spawn_logged(argv, log, false, false);
	if (pid == -1)
		return -1;
	d->pid = pid;

	for (waited = 0; waited < HARNESS_READY_WAIT_MS; waited += 10) {
		if (read_ready(d, ready) == 0)
			return 0;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "harness: sessd exited before it was ready (status %d)\n",
			        status);
			d->pid = 0;
			dump_log(d);
			return -1;
		}
		harness_sleep_ms(10);
	}
	fprintf(stderr, "harness: sessd was not ready within %d ms\n", HARNESS_READY_WAIT_MS);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	d->pid = 0;
	dump_log(d);
	return -1;
}

/* A new socket bound to ${addr} with SO_REUSEADDR (and, for IPv6, IPv4's addresses too), or -1. */
static int bind_reusable(const struct sockaddr *addr, socklen_t len)
{
	int one = 1, off = 0, fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd == -1)
		return -1;
	if ((addr->sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) == -1) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, addr, len) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int harness_hold_port(int *fd)
{
	struct sockaddr_in6 any6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
	struct sockaddr_in loopback = {.sin_family = AF_INET,
	                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_storage bound;
	socklen_t len = sizeof(bound);

	/* Every address of both families, so that a listener on [::1] (test_reach's sessd) is
	 * kept off the port too; where there is no IPv6, IPv4's loopback is all there is. */
	*fd = bind_reusable((struct sockaddr *)&any6, sizeof(any6));
	if (*fd == -1)
		*fd = bind_reusable((struct sockaddr *)&loopback, sizeof(loopback));
	if (*fd == -1 || getsockname(*fd, (struct sockaddr *)&bound, &len) == -1) {
		fprintf(stderr, "harness: holding a loopback port: %s\n", strerror(errno));
		if (*fd != -1)
			close(*fd);
		*fd = -1;
		return -1;
	}
	return ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
	                                         : ((struct sockaddr_in *)&bound)->sin_port);
}

/*
 * Hold the port for the daemon's TCP listener (harness_hold_port) for as long as ${d} lives:
 * it would otherwise be free whenever the daemon is down, and between a test's kill and its
 * harness_restart another test stream's connect() or port-0 bind could take it and the restart
 * fail with EADDRINUSE (a CI flake). Writes "tcp://127.0.0.1:PORT" to ${url}; returns 0 or -1.
 */
static int hold_port(struct harness_daemon *d, char *url, size_t url_size)
{
	int port = harness_hold_port(&d->port_fd);

	if (port == -1)
		return -1;
	snprintf(url, url_size, "tcp://127.0.0.1:%d", port);
	d->holds_port = true;
	return 0;
}

static void release_port(struct harness_daemon *d)
{
	if (d->holds_port)
		close(d->port_fd);
	d->holds_port = false;
}

int harness_start(struct harness_daemon *d, const char *const *extra_args)
{
	char tcp_listen[64];

	memset(d, 0, sizeof(*d));
	strcpy(d->dir, "/tmp/sessd-test-XXXXXX");
	if (mkdtemp(d->dir) == NULL) {
		fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	snprintf(d->unix_path, sizeof(d->unix_path), "%s/sessd.sock", d->dir);
	snprintf(d->unix_url, sizeof(d->unix_url), "unix:%s", d->unix_path);
	if (hold_port(d, tcp_listen, sizeof(tcp_listen)) == -1)
		return -1;
	return launch(d, tcp_listen, extra_args);
}

int harness_run(const char *const *args, const char *log_path, bool modes_bind, int *status)
{
	const char *argv[HARNESS_MAX_ARGS];
	const char *bin = getenv("SESSD_BIN");
	long waited;
	pid_t pid;

	if (bin == NULL || *bin == '\0') {
		fprintf(stderr, "harness: SESSD_BIN is not set\n");
		return -1;
	}
	argv[0] = bin;
	if (argv_append(argv, 1, args) == -1)
		return -1;
	pid = spawn_logged(argv, log_path, true, modes_bind);
	if (pid == -1)
		return -1;
	for (waited = 0; waited < HARNESS_RUN_WAIT_MS; waited += 10) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return 0;
		harness_sleep_ms(10);
	}
	fprintf(stderr, "harness: sessd %s did not exit within %d ms\n", args[0],
	        HARNESS_RUN_WAIT_MS);
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return -1;
}

int harness_restart(struct harness_daemon *d, const char *const *extra_args)
{
	char tcp_listen[64];

	if (d->pid > 0) {
		fprintf(stderr, "harness: restart while the daemon still runs\n");
		return -1;
	}
	if (d->tcp_url[0] == '\0')
		return -1;
	snprintf(tcp_listen, sizeof(tcp_listen), "%s", d->tcp_url);
	return launch(d, tcp_listen, extra_args);
}

char *harness_read_text(const char *path)
{
	char *text = NULL;
	size_t cap = 0;
	FILE *f = fopen(path, "r");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	if (getdelim(&text, &cap, '\0', f) == -1) {
		free(text);
		text = strdup("");
		cr_assert_not_null(text);
	}
	fclose(f);
	return text;
}

char *harness_log(const struct harness_daemon *d)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/sessd.log", d->dir);
	return harness_read_text(path);
}

int harness_stop(struct harness_daemon *d)
{
	int status, rc;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	if (wait_for(d->pid, HARNESS_STOP_WAIT_MS, &status) == -1) {
		fprintf(stderr, "harness: sessd did not stop on SIGTERM; killing it\n");
		kill(d->pid, SIGKILL);
		waitpid(d->pid, &status, 0);
		d->pid = 0;
		release_port(d);
		dump_log(d);
		return -1;
	}
	d->pid = 0;
	release_port(d);
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (rc != 0) {
		fprintf(stderr, "harness: sessd stopped with status %d\n", status);
		dump_log(d);
		return rc;
	}
	if (log_holds_secret(d))
		return -1;
	harness_remove_tree(d->dir);
	return 0;
}

int harness_kill(struct harness_daemon *d)
{
	int status;

	if (d->pid <= 0)
		return -1;
	if (kill(d->pid, SIGKILL) == -1)
		return -1;
	if (waitpid(d->pid, &status, 0) != d->pid)
		return -1;
	d->pid = 0;
	return 0;
}

void harness_cleanup(struct harness_daemon *d)
{
	release_port(d);
	if (d->dir[0] != '\0')
		harness_remove_tree(d->dir);
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_tcp(const char *hostport)
{
	struct addrinfo hints, *res, *ai;
	char host[256];
	const char *port, *colon;
	size_t hlen;
	int fd = -1;

	if (hostport[0] == '[') {
		const char *close_br = strchr(hostport, ']');

		if (close_br == NULL || close_br[1] != ':')
			return -1;
		hlen = (size_t)(close_br - hostport - 1);
		if (hlen >= sizeof(host))
			return -1;
		memcpy(host, hostport + 1, hlen);
		port = close_br + 2;
	} else {
		colon = strrchr(hostport, ':');
		if (colon == NULL)
			return -1;
		hlen = (size_t)(colon - hostport);
		if (hlen >= sizeof(host))
			return -1;
		memcpy(host, hostport, hlen);
		port = colon + 1;
	}
	host[hlen] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

int harness_connect(const char *url)
{
	struct timeval tv = {HARNESS_IO_TIMEOUT_S, 0};
	int fd;

	if (strncmp(url, "tcp://", 6) == 0)
		fd = connect_tcp(url + 6);
	else if (strncmp(url, "unix:", 5) == 0)
		fd = connect_unix(url + 5);
	else
		fd = connect_unix(url);
	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

int harness_write_hello_result(struct buf *out)
{
	if (mp_write_map(out, 3) == -1 || mp_write_str(out, "version", 7) == -1 ||
	    mp_write_uint(out, CODEC_PROTOCOL_VERSION) == -1 ||
	    mp_write_str(out, "server_id", 9) == -1 ||
	    mp_write_str(out, "0123456789abcdef0123456789abcdef", 32) == -1 ||
	    mp_write_str(out, "max_frame", 9) == -1 ||
	    mp_write_uint(out, CODEC_DEFAULT_MAX_FRAME) == -1)
		return -1;
	return 0;
}

int harness_send_all(int fd, const void *p, size_t n)
{
	const uint8_t *at = p;
	ssize_t w;

	while (n > 0) {
		/* MSG_NOSIGNAL: a daemon that closed on us is a test failure, not a SIGPIPE. */
		w = send(fd, at, n, MSG_NOSIGNAL);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		at += w;
		n -= (size_t)w;
	}
	return 0;
}

int harness_recv_all(int fd, void *p, size_t n)
{
	uint8_t *at = p;
	ssize_t r;

	while (n > 0) {
		r = recv(fd, at, n, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		at += r;
		n -= (size_t)r;
	}
	return 0;
}

int harness_recv_frame(int fd, uint8_t **body, size_t *len)
{
	uint8_t header[CODEC_HEADER_BYTES];
	uint32_t n;
	uint8_t *b;

	*body = NULL;
	if (harness_recv_all(fd, header, sizeof(header)) == -1)
		return -1;
	n = codec_frame_length(header);
	if (n == 0 || n > HARNESS_MAX_REPLY)
		return -1;
	b = malloc(n);
	if (b == NULL)
		return -1;
	if (harness_recv_all(fd, b, n) == -1) {
		free(b);
		return -1;
	}
	*body = b;
	*len = n;
	return 0;
}

int harness_call(int fd, const struct codec_request *req, struct codec_reply *rep, uint8_t **body)
{
	struct buf out;
	size_t len;

	*body = NULL;
	note_request(req);
	buf_init(&out);
	if (codec_encode_request(&out, req) == -1)
		goto fail;
	if (harness_send_all(fd, out.data, out.len) == -1)
		goto fail;
	if (harness_recv_frame(fd, body, &len) == -1)
		goto fail;
	if (codec_decode_reply(*body, len, rep) == -1)
		goto fail_body;
	buf_finish(&out);
	return 0;

fail_body:
	free(*body);
	*body = NULL;
fail:
	buf_finish(&out);
	return -1;
}

int harness_request(int fd, struct codec_request *req, uint8_t **result, size_t *result_len)
{
	static uint64_t next_request_id = 1;
	struct codec_reply rep;
	uint8_t *body = NULL;
	int status = -1;

	req->request_id = next_request_id++;
	if (harness_call(fd, req, &rep, &body) == -1)
		goto out;
	if (result != NULL) {
		*result = malloc(rep.result.len + 1);
		if (*result == NULL)
			goto out;
		memcpy(*result, rep.result.ptr, rep.result.len);
		*result_len = rep.result.len;
	}
	status = (int)rep.status;
out:
	free(body);
	return status;
}

int harness_set_get(int fd, const char *ns, const char *id, const char *data, uint64_t ttl_ms)
{
	struct codec_request req = {.op = CODEC_OP_SET, .request_id = 1, .ttl_ms = ttl_ms};
	struct codec_reply rep;
	struct mp_reader r;
	struct mp_bytes got;
	uint8_t *body = NULL;
	int rc = -1;

	if (ns != NULL) {
		req.ns.ptr = (const uint8_t *)ns;
		req.ns.len = strlen(ns);
	}
	req.id.ptr = (const uint8_t *)id;
	req.id.len = strlen(id);
	req.data.ptr = (const uint8_t *)data;
	req.data.len = strlen(data);
	if (harness_call(fd, &req, &rep, &body) == -1 || rep.status != CODEC_OK)
		goto out;
	free(body);
	req.op = CODEC_OP_GET;
	req.request_id = 2;
	if (harness_call(fd, &req, &rep, &body) == -1 || rep.status != CODEC_OK)
		goto out;
	mp_reader_init(&r, rep.result.ptr, rep.result.len);
	if (mp_read_bin(&r, &got) == 0 && got.len == req.data.len &&
	    memcmp(got.ptr, data, got.len) == 0)
		rc = 0;
out:
	free(body);
	return rc;
}

int harness_connect_hello(const char *url, const char *client_name)
{
	struct codec_request req = {.op = CODEC_OP_HELLO, .request_id = 1, .version = 1};
	struct codec_reply rep;
	uint8_t *body = NULL;
	int fd = harness_connect(url);

	if (fd == -1)
		return -1;
	req.client_name.ptr = (const uint8_t *)client_name;
	req.client_name.len = strlen(client_name);
	if (harness_call(fd, &req, &rep, &body) == -1 || rep.status != CODEC_OK) {
		free(body);
		close(fd);
		return -1;
	}
	free(body);
	return fd;
}

int harness_open_ready(const char *url, const char *client_name)
{
	int fd = harness_connect_hello(url, client_name);

	cr_assert_geq(fd, 0, "connect to %s and HELLO", url);
	return fd;
}

void harness_send_buf(int fd, const struct buf *b)
{
	cr_assert_eq(harness_send_all(fd, b->data, b->len), 0, "send %zu bytes", b->len);
}

void harness_write_secret(const char *path, const char *secret, mode_t mode)
{
	char tmp[PATH_MAX];
	FILE *f;

	cr_assert_lt((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path), sizeof(tmp));
	harness_note_secret(secret, strlen(secret));
	f = fopen(tmp, "w");
	cr_assert_not_null(f, "open %s: %s", tmp, strerror(errno));
	fprintf(f, "%s\n", secret);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(tmp, mode), 0);
	cr_assert_eq(rename(tmp, path), 0);
}

void harness_read_reply(int fd, struct codec_reply *rep, uint8_t **body)
{
	size_t len;

	cr_assert_eq(harness_recv_frame(fd, body, &len), 0, "a reply frame arrives");
	cr_assert_eq(codec_decode_reply(*body, len, rep), 0, "the reply decodes");
}

void harness_expect_closed(int fd)
{
	uint8_t b;
	ssize_t r;

	do
		r = recv(fd, &b, 1, 0);
	while (r == -1 && errno == EINTR);
	cr_assert(r == 0 || (r == -1 && (errno == ECONNRESET || errno == EPIPE)),
	          "connection closed (r=%zd %s)", r, r == -1 ? strerror(errno) : "data");
}

uint64_t harness_result_uint(const struct codec_reply *rep)
{
	struct mp_reader r;
	uint64_t v;

	mp_reader_init(&r, rep->result.ptr, rep->result.len);
	cr_assert_eq(mp_read_uint(&r, &v), 0, "result is a uint");
	return v;
}

bool harness_map_find(const struct codec_reply *rep, const char *key, struct mp_reader *at)
{
	struct mp_bytes k;
	uint32_t n;

	mp_reader_init(at, rep->result.ptr, rep->result.len);
	cr_assert_eq(mp_read_map(at, &n), 0, "result is a map");
	for (uint32_t i = 0; i < n; i++) {
		cr_assert_eq(mp_read_str(at, &k), 0);
		if (k.len == strlen(key) && memcmp(k.ptr, key, k.len) == 0)
			return true;
		cr_assert_eq(mp_skip(at), 0);
	}
	return false;
}

uint64_t harness_map_uint(const struct codec_reply *rep, const char *key)
{
	struct mp_reader r;
	uint64_t v;

	cr_assert(harness_map_find(rep, key, &r), "key %s missing", key);
	cr_assert_eq(mp_read_uint(&r, &v), 0, "%s is a uint", key);
	return v;
}

uint64_t harness_server_stat(int fd, const char *key)
{
	struct codec_request req = {.op = CODEC_OP_STATS, .request_id = 88, .ns_all = true};
	struct codec_reply rep;
	uint8_t *body;
	uint64_t v;

	cr_assert_eq(harness_call(fd, &req, &rep, &body), 0);
	cr_assert_eq(rep.status, CODEC_OK);
	v = harness_map_uint(&rep, key);
	free(body);
	return v;
}

/* The ${field} line ("VmRSS", "VmSize") of /proc/${pid}/status, in KiB. */
static long status_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t len = strlen(field);
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "r");
	cr_assert_not_null(f, "open %s", path);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, len) == 0 && line[len] == ':' &&
		    sscanf(line + len + 1, " %ld kB", &kib) == 1)
			break;
	fclose(f);
	cr_assert_gt(kib, 0, "%s read from %s", field, path);
	return kib;
}

bool harness_can_exec_as(uid_t uid, const char *path)
{
	int status;
	pid_t pid = fork();

	cr_assert_neq(pid, -1);
	if (pid == 0) {
		if (setgroups(0, NULL) == -1 || setgid(uid) == -1 || setuid(uid) == -1)
			_exit(2);
		_exit(access(path, X_OK) == 0 ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 2, "cannot become uid %lu",
	          (unsigned long)uid);
	return WEXITSTATUS(status) == 0;
}

long harness_rss_kib(pid_t pid)
{
	return status_kib(pid, "VmRSS");
}

long harness_vm_kib(pid_t pid)
{
	return status_kib(pid, "VmSize");
}

/* The state letter of the task whose /proc stat file is ${path}, or 0 when it is gone. */
static char task_state(const char *path)
{
	char line[512], *paren = NULL;
	FILE *f;

	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) != NULL)
		paren = strrchr(line, ')');
	fclose(f);
	return paren != NULL && paren[1] == ' ' ? paren[2] : 0;
}

/* Whether every live thread of process ${pid} is stopped (T, or t under a tracer). */
static bool all_threads_stopped(pid_t pid)
{
	char dir[64], path[384];
	bool stopped = true;
	struct dirent *e;
	DIR *dp;

	snprintf(dir, sizeof(dir), "/proc/%ld/task", (long)pid);
	dp = opendir(dir);
	if (dp == NULL)
		return false;
	while (stopped && (e = readdir(dp)) != NULL) {
		char state;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/stat", dir, e->d_name);
		state = task_state(path);
		/* A thread that ended meanwhile runs nothing. */
		stopped =
		    state == 0 || state == 'Z' || state == 'X' || state == 'T' || state == 't';
	}
	closedir(dp);
	return stopped;
}

int harness_sigstop(pid_t pid)
{
	struct timespec t0, t1;
	char path[64], leader;
	long waited_ms;

	if (kill(pid, SIGSTOP) == -1)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		leader = task_state(path);
		/* kill(2) succeeds on a zombie, which will never be seen stopped. */
		if (leader == 0 || leader == 'Z' || leader == 'X')
			return -1;
		if (all_threads_stopped(pid))
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		cr_assert_lt(waited_ms, HARNESS_SIGSTOP_WAIT_MS,
		             "process %ld did not stop on SIGSTOP in %d ms", (long)pid,
		             HARNESS_SIGSTOP_WAIT_MS);
		harness_sleep_ms(1);
	}
}

int harness_start_file_limited(struct harness_daemon *d, const char *const *extra_args,
                               rlim_t bytes, struct rlimit *saved)
{
	struct rlimit lim;
	int rc;

	cr_assert_eq(getrlimit(RLIMIT_FSIZE, saved), 0);
	lim = *saved;
	lim.rlim_cur = bytes;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = harness_start(d, extra_args);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, saved), 0);
	return rc;
}

int harness_fill_disk(struct harness_daemon *d, int fd, const char *ns, const char *client_name)
{
	enum { SIZE = 16 * 1024, MAX = 64 };
	struct codec_request req = {.op = CODEC_OP_SET, .ttl_ms = 600000};
	uint8_t *fill = malloc(SIZE);
	char id[32];
	int status = CODEC_OK;

	cr_assert_not_null(fill);
	memset(fill, 'f', SIZE);
	if (ns != NULL)
		req.ns = (struct mp_bytes){(const uint8_t *)ns, strlen(ns)};
	req.data = (struct mp_bytes){fill, SIZE};
	for (int i = 0; i < MAX && status == CODEC_OK; i++) {
		snprintf(id, sizeof(id), "fill%d", i);
		req.id = (struct mp_bytes){(const uint8_t *)id, strlen(id)};
		status = harness_request(fd, &req, NULL, NULL);
	}
	free(fill);
	cr_assert_neq(status, CODEC_OK, "the file-size limit never bit");
	if (status == -1) {
		close(fd);
		fd = harness_open_ready(d->unix_url, client_name);
	}
	return fd;
}

/* One row of /proc/net/tcp: "sl: LOCAL:PORT REMOTE:PORT ST TX:RX TR:WHEN ...". */
struct tcp_row {
	unsigned local_port, remote_port, state, timer;
	unsigned long tx, rx, when;
};

/* Read the next connection's row of /proc/net/tcp from ${f} into ${row} (its heading line is
 * passed over); false at the end. */
static bool tcp_next_row(FILE *f, struct tcp_row *row)
{
	char line[512];

	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, " %*u: %*x:%x %*x:%x %x %lx:%lx %x:%lx", &row->local_port,
		           &row->remote_port, &row->state, &row->tx, &row->rx, &row->timer,
		           &row->when) == 7)
			return true;
	return false;
}

int harness_tcp_timer(unsigned local_port, unsigned remote_port, int *timer, double *seconds)
{
	struct tcp_row row;
	int found = -1;
	/* /proc/net/tcp gives times in clock ticks (USER_HZ). */
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/net/tcp", "r");

	if (f == NULL)
		return -1;
	while (found == -1 && tcp_next_row(f, &row))
		if (row.state == 1 && row.remote_port == remote_port &&
		    (local_port == 0 || row.local_port == local_port)) {
			*timer = (int)row.timer;
			*seconds = (double)row.when / (double)(hz > 0 ? hz : 100);
			found = 0;
		}
	fclose(f);
	return found;
}

int harness_tcp_queues(unsigned local_port, unsigned long *tx, unsigned long *rx, int max)
{
	struct tcp_row row;
	int n = 0;
	FILE *f = fopen("/proc/net/tcp", "r");

	if (f == NULL)
		return 0;
	while (n < max && tcp_next_row(f, &row))
		if (row.state == 1 && row.local_port == local_port) {
			tx[n] = row.tx;
			rx[n] = row.rx;
			n++;
		}
	fclose(f);
	return n;
}

int harness_tcp_orphans(unsigned local_port)
{
	struct tcp_row row;
	int n = 0;
	FILE *f = fopen("/proc/net/tcp", "r");

	if (f == NULL)
		return 0;
	while (tcp_next_row(f, &row))
		if (row.local_port == local_port && (row.state == 0x04 || row.state == 0x05 ||
		                                     row.state == 0x0b || row.state == 0x09))
			n++;
	fclose(f);
	return n;
}

unsigned harness_url_port(const char *url)
{
	const char *colon = strrchr(url, ':');

	return colon == NULL ? 0 : (unsigned)strtoul(colon + 1, NULL, 10);
}

/*
 * What the daemon's end of the IPv4 TCP connection ${fd} has received and not read: its receive
 * queue in /proc/net/tcp (our SIOCOUTQ says only what its kernel has not acknowledged, which
 * on loopback is nothing as soon as it is queued there); 0 once that end has closed.
 */
static long tcp_peer_unread(int fd)
{
	struct sockaddr_in ours, theirs;
	socklen_t len = sizeof(ours);
	struct tcp_row row;
	long unread = 0;
	FILE *f;

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&ours, &len), 0, "getsockname: %s",
	             strerror(errno));
	len = sizeof(theirs);
	if (getpeername(fd, (struct sockaddr *)&theirs, &len) == -1)
		return 0; /* reset: nothing of it is left to read */
	f = fopen("/proc/net/tcp", "r");
	cr_assert_not_null(f, "/proc/net/tcp: %s", strerror(errno));
	while (tcp_next_row(f, &row))
		/* The daemon's end, not yet closed (ESTABLISHED or CLOSE_WAIT). */
		if (row.local_port == ntohs(theirs.sin_port) &&
		    row.remote_port == ntohs(ours.sin_port) &&
		    (row.state == 0x01 || row.state == 0x08))
			unread = (long)row.rx;
	fclose(f);
	return unread;
}

void harness_wait_read(int fd)
{
	int domain = AF_UNIX;
	socklen_t len = sizeof(domain);
	long queued = 0;

	cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len), 0, "SO_DOMAIN: %s",
	             strerror(errno));
	for (long started = harness_mono_ms(); harness_mono_ms() - started < 30000;
	     harness_sleep_ms(5)) {
		if (domain == AF_INET) {
			queued = tcp_peer_unread(fd);
		} else {
			int outq = 0;

			cr_assert_eq(ioctl(fd, SIOCOUTQ, &outq), 0, "SIOCOUTQ: %s",
			             strerror(errno));
			queued = outq;
		}
		if (queued == 0)
			return;
	}
	cr_assert_fail("the daemon has not read %ld bytes sent", queued);
}

/* Copy environment variable ${name} into ${out} (${size} bytes); whether it was set. A value
 * too long for ${out} fails the test rather than come back cut. */
static bool save_env(const char *name, char *out, size_t size)
{
	const char *value = getenv(name);

	if (value == NULL)
		return false;
	cr_assert_lt(strlen(value), size, "%s is longer than %zu bytes", name, size - 1);
	memcpy(out, value, strlen(value) + 1);
	return true;
}

void harness_preload(struct harness_preload *saved, const char *so, const char *asan_extra)
{
	char opts[sizeof(saved->asan) + 128];
	int n;

	/* setenv may free what getenv gave: the old values are copied before either is set. */
	saved->had_preload = save_env("LD_PRELOAD", saved->preload, sizeof(saved->preload));
	saved->had_asan = save_env("ASAN_OPTIONS", saved->asan, sizeof(saved->asan));
	n = snprintf(opts, sizeof(opts), "%s%sverify_asan_link_order=0%s%s",
	             saved->had_asan ? saved->asan : "", saved->had_asan && *saved->asan ? ":" : "",
	             asan_extra ? ":" : "", asan_extra ? asan_extra : "");
	cr_assert(n > 0 && (size_t)n < sizeof(opts), "ASAN_OPTIONS would be too long");
	cr_assert_eq(setenv("ASAN_OPTIONS", opts, 1), 0);
	if (so != NULL) {
		cr_assert_eq(access(so, R_OK), 0, "%s: not readable", so);
		cr_assert_eq(setenv("LD_PRELOAD", so, 1), 0);
	}
}

void harness_preload_restore(const struct harness_preload *saved)
{
	if (saved->had_preload)
		cr_assert_eq(setenv("LD_PRELOAD", saved->preload, 1), 0);
	else
		unsetenv("LD_PRELOAD");
	if (saved->had_asan)
		cr_assert_eq(setenv("ASAN_OPTIONS", saved->asan, 1), 0);
	else
		unsetenv("ASAN_OPTIONS");
}
