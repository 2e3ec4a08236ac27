#ifndef SESSD_HARNESS_H
#define SESSD_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "codec.h"

/*
 * The integration-test harness: starts the real sessd ($SESSD_BIN) in a temporary directory,
 * on a Unix socket there and an ephemeral loopback TCP port, and talks raw protocol to it.
 * The daemon's stderr goes to <dir>/sessd.log; when something fails the log is copied to the
 * test's stderr and the directory is kept for debugging.
 */

/* ${port_fd}: the daemon's TCP port held (harness_hold_port) from harness_start to harness_stop
 * or harness_cleanup, so that no other process's connect() or port-0 bind takes it while the
 * daemon is down (harness_restart); valid while ${holds_port}. */
struct harness_daemon {
	pid_t pid;
	char dir[256];
	char unix_path[300];
	char unix_url[320];
	char tcp_url[64];
	bool holds_port;
	int port_fd;
};

/*
 * harness_start(d, extra_args):
 * Start $SESSD_BIN with --listen unix:<tmpdir>/sessd.sock --listen tcp://127.0.0.1:PORT
 * --ready-file <tmpdir>/ready plus ${extra_args} (NULL-terminated, may be NULL); wait (up to
 * 10 s) for the ready file and fill the URLs. The tmpdir is made with mkdtemp; PORT is one the
 * kernel gives, which the harness holds for ${d} (struct harness_daemon) until harness_stop or
 * harness_cleanup. Returns 0 or -1.
 */
int harness_start(struct harness_daemon *d, const char *const *extra_args);

/*
 * harness_hold_port(fd):
 * Bind a new socket to a port the kernel picks, on every address (IPv6's and IPv4's; IPv4's
 * loopback alone on a machine without IPv6), with SO_REUSEADDR and not listening, and keep it
 * in *${fd} (the caller closes it). While it is open, Linux gives that port to no connect() or
 * port-0 bind of any process (other test streams draw theirs from the same range), so a
 * connection to it on loopback is refused; yet a listener that names the port and sets
 * SO_REUSEADDR too (sessd's) binds and listens beside it. Returns the port, or -1 (said on
 * stderr).
 */
int harness_hold_port(int *fd);

/* harness_sleep_ms(ms): sleep ${ms} milliseconds, through signals. */
void harness_sleep_ms(long ms);

/* harness_mono_ms(): CLOCK_MONOTONIC in milliseconds. */
long harness_mono_ms(void);

/*
 * harness_run(args, log_path, modes_bind, status):
 * Run $SESSD_BIN with ${args} (NULL-terminated) to its exit, its stdout and stderr written to
 * ${log_path}; with ${modes_bind}, without root's power to ignore file modes (it exits 126
 * when that cannot be arranged). Returns 0 with the waitpid status in ${status}, or -1 when it
 * could not start or did not exit within 20 s (then it is killed).
 */
int harness_run(const char *const *args, const char *log_path, bool modes_bind, int *status);

/*
 * harness_log(d): what the daemon has logged so far (its <dir>/sessd.log), malloc'd; the
 * caller frees it. Fails the test when the log cannot be read.
 */
char *harness_log(const struct harness_daemon *d);

/* harness_read_text(path): the text of the file at ${path}, malloc'd (the caller frees it);
 * fails the test when it cannot be read. */
char *harness_read_text(const char *path);

/*
 * harness_stop(d):
 * SIGTERM the daemon and wait for it. Returns its exit status (0 expected), or -1 when it
 * died from a signal or could not be waited for, or when its log holds a session id or secret
 * the test sent (harness_note_secret). Removes the tmpdir when the status is 0. Once the
 * daemon has exited its TCP port is no longer held.
 */
int harness_stop(struct harness_daemon *d);

/*
 * harness_note_secret(p, len):
 * Note ${len} bytes at ${p}, a session id or secret, as what no daemon's log may hold:
 * harness_stop looks for them (as they are, escaped as the log escapes bytes, in hex and in
 * base64url). harness_call notes the id of every request and a HELLO's plain secret, and
 * harness_write_secret its secret; a test that reaches the daemon otherwise (libsessd,
 * frames of its own) notes its ids itself. Under 8 bytes nothing is noted: a shorter id
 * may be found in a log for its own sake (a tag's hex digits, a time).
 */
void harness_note_secret(const void *p, size_t len);

/* harness_kill(d): SIGKILL and wait; keeps the tmpdir (for restart tests). Returns 0 or -1. */
int harness_kill(struct harness_daemon *d);

/*
 * harness_restart(d, extra_args):
 * Start the daemon again on the same tmpdir, socket path and TCP port (pass the extra args
 * again), after harness_kill or the test's own reaping of it (d->pid 0). The port cannot have
 * been taken meanwhile: harness_start holds it (struct harness_daemon). Returns 0 or -1.
 */
int harness_restart(struct harness_daemon *d, const char *const *extra_args);

/*
 * harness_start_file_limited(d, extra_args, bytes, saved):
 * harness_start with the daemon limited to files of ${bytes} (RLIMIT_FSIZE, which it
 * inherits: a disk that fills up), the test's own limit restored at once and written to
 * ${saved}, for lifting the daemon's with prlimit. Returns as harness_start.
 */
int harness_start_file_limited(struct harness_daemon *d, const char *const *extra_args,
                               rlim_t bytes, struct rlimit *saved);

/*
 * harness_fill_disk(d, fd, ns, client_name):
 * Fill the disk of ${d}, started by harness_start_file_limited: SETs of 16 KiB to ${ns} (NULL:
 * the default namespace) over ${fd} until one is refused; fails the test if none is within
 * 64. Returns the connection to go on with: ${fd}, or a new one (HELLO as ${client_name})
 * when the write that met the limit failed a commit, whose connection sessd closes with the
 * change unanswered (sessd(8), --fsync).
 */
int harness_fill_disk(struct harness_daemon *d, int fd, const char *ns, const char *client_name);

/*
 * harness_rss_kib(pid):
 * The resident set of process ${pid} (VmRSS), in KiB; fails the test when it cannot be read.
 */
long harness_rss_kib(pid_t pid);

/*
 * harness_can_exec_as(uid, path):
 * Whether user ${uid} (no supplementary groups) may execute ${path}. A test that runs our
 * binaries as another user, as root runs them as nobody, asks first: a build under a directory
 * closed to other users (a clone in /root, mode 0700) is not theirs to run.
 */
bool harness_can_exec_as(uid_t uid, const char *path);

/*
 * harness_vm_kib(pid):
 * The address space of process ${pid} (VmSize), in KiB; fails the test when it cannot be read.
 */
long harness_vm_kib(pid_t pid);

/*
 * harness_sigstop(pid):
 * SIGSTOP process ${pid} (the daemon, or a process of its) and wait until every thread of it
 * has stopped: kill(2) returns before the stop takes effect, and a daemon not yet stopped may
 * handle what the test sends meanwhile. Returns 0 once it is stopped, or -1 when it has ended
 * (or is a zombie) instead; fails the test when it has not stopped within 10 s.
 */
int harness_sigstop(pid_t pid);

/* harness_cleanup(d): remove the tmpdir of a daemon the test stopped or reaped itself, and
 * let its TCP port go. */
void harness_cleanup(struct harness_daemon *d);

/* harness_remove_tree(dir): remove ${dir} and everything under it, as far as it can. */
void harness_remove_tree(const char *dir);

/* harness_open_fds(): how many descriptors this process has open (and one for the listing);
 * fails the test when /proc/self/fd cannot be read. */
int harness_open_fds(void);

/*
 * harness_connect(url):
 * Connect, blocking, to "unix:PATH", a bare PATH, or "tcp://HOST:PORT" ([v6] allowed), with
 * receive and send timeouts of 10 s. Returns the fd (the caller closes it) or -1.
 */
int harness_connect(const char *url);

/*
 * harness_call(fd, req, rep, body):
 * Send one frame built from ${req}, read one reply frame into *${body} (malloc'd, the caller
 * frees it, also on -1 it is NULL) and decode it into ${rep}, which borrows *${body}.
 * Returns 0 or -1.
 */
int harness_call(int fd, const struct codec_request *req, struct codec_reply *rep, uint8_t **body);

/*
 * harness_request(fd, req, result, result_len):
 * Give ${req} the next request id, send it and read its reply. Returns the reply's status, or
 * -1 when the connection failed. ${result} (may be NULL) receives a malloc'd copy of the raw
 * result, which the caller frees, and ${result_len} its length.
 */
int harness_request(int fd, struct codec_request *req, uint8_t **result, size_t *result_len);

/*
 * harness_write_hello_result(out):
 * Append to ${out} the result a fake server answers a HELLO with: sessd's map of version,
 * server_id (a fixed one) and max_frame. Returns 0, or -1 when out of memory.
 */
int harness_write_hello_result(struct buf *out);

/*
 * harness_send_all(fd, p, n) / harness_recv_all(fd, p, n):
 * Write or read exactly ${n} bytes. Return 0, or -1 (error, timeout, or end of stream).
 */
int harness_send_all(int fd, const void *p, size_t n);
int harness_recv_all(int fd, void *p, size_t n);

/*
 * harness_recv_frame(fd, body, len):
 * Read one frame; *${body} is malloc'd (the caller frees it). Returns 0 or -1.
 */
int harness_recv_frame(int fd, uint8_t **body, size_t *len);

/*
 * harness_connect_hello(url, client_name):
 * Connect and say HELLO. Returns the fd (the caller closes it), or -1 when either fails. It
 * asserts nothing, so child processes of a test can use it.
 */
int harness_connect_hello(const char *url, const char *client_name);

/*
 * harness_set_get(fd, ns, id, data, ttl_ms):
 * SET the string ${data} as session ${id} of namespace ${ns} (NULL: the default), then GET it
 * back. Returns 0 when both succeed and the same bytes come back, else -1. It asserts
 * nothing, so child processes of a test can use it.
 */
int harness_set_get(int fd, const char *ns, const char *id, const char *data, uint64_t ttl_ms);

/*
 * Asserting helpers for tests: each fails the running criterion test instead of returning
 * an error.
 *
 * harness_open_ready(url, client_name): a connection that has said HELLO; the caller
 * closes the fd.
 * harness_send_buf(fd, b): send all of ${b}.
 * harness_read_reply(fd, rep, body): read and decode one reply; *${body} is malloc'd and
 * ${rep} borrows it (the caller frees *${body}).
 * harness_expect_closed(fd): the daemon closed the connection (end of stream or a reset).
 * harness_result_uint(rep): the reply's result, which must be a uint.
 * harness_map_find(rep, key, at): whether the reply's map result has ${key}; if so ${at} reads
 * its value.
 * harness_map_uint(rep, key): the uint under ${key} in the reply's map result.
 * harness_write_secret(path, secret, mode): write ${secret} and a newline to ${path} with
 * ${mode} as sessd(8) advises, a temporary file beside it renamed over it, so that a SIGHUP
 * never reads half a secret.
 */
/*
 * harness_tcp_timer(local_port, remote_port, timer, seconds):
 * Find an established IPv4 TCP connection of this network namespace from ${local_port} (0:
 * any) to ${remote_port} in /proc/net/tcp, and tell its kernel timer: *${timer} is 0 for none,
 * 1 retransmit, 2 keepalive (SO_KEEPALIVE on an idle connection), 4 zero-window probe, and
 * *${seconds} how long until it fires. Returns 0, or -1 when there is no such connection.
 */
int harness_tcp_timer(unsigned local_port, unsigned remote_port, int *timer, double *seconds);

/*
 * harness_tcp_queues(local_port, tx, rx, max):
 * The queues of the established IPv4 TCP connections of this network namespace from
 * ${local_port}, from /proc/net/tcp: into ${tx}[i] the bytes each has sent and its peer has not
 * acknowledged (or not sent yet), into ${rx}[i] those received and not read, for at most ${max}
 * of them. Returns how many were found.
 */
int harness_tcp_queues(unsigned local_port, unsigned long *tx, unsigned long *rx, int max);

/*
 * harness_tcp_orphans(local_port): how many IPv4 TCP connections of this network namespace
 * from ${local_port} that side has closed and the kernel still holds (FIN_WAIT1, FIN_WAIT2,
 * CLOSING, LAST_ACK), from /proc/net/tcp.
 */
int harness_tcp_orphans(unsigned local_port);

/* harness_url_port(url): the port of "tcp://HOST:PORT". */
unsigned harness_url_port(const char *url);

/* harness_wait_read(fd): wait (up to 30 s, else the test fails) until the daemon has read all
 * that was sent on ${fd}, or closed it: on a Unix socket what it has not read yet is charged
 * to our side's send queue (SIOCOUTQ); over loopback IPv4 TCP it is its end's receive queue
 * (/proc/net/tcp). */
void harness_wait_read(int fd);

/*
 * harness_preload(saved, so, asan_extra):
 * Make the programs this process starts next load the module ${so} (LD_PRELOAD; NULL: leave
 * LD_PRELOAD alone, for a module given otherwise, as strace -E gives it), and add
 * verify_asan_link_order=0 and ${asan_extra} (NULL: nothing more) to ASAN_OPTIONS: a
 * sanitized program wants its runtime first among the libraries, and our modules ask nothing
 * of it. What the two variables were is kept in ${saved}, for harness_preload_restore; a
 * forked child that only execs may drop it. Fails the test when ${so} is not readable.
 */
struct harness_preload {
	bool had_preload, had_asan;
	char preload[PATH_MAX];
	char asan[1024];
};
void harness_preload(struct harness_preload *saved, const char *so, const char *asan_extra);

/* harness_preload_restore(saved): put LD_PRELOAD and ASAN_OPTIONS back as harness_preload
 * found them. */
void harness_preload_restore(const struct harness_preload *saved);

int harness_open_ready(const char *url, const char *client_name);
void harness_send_buf(int fd, const struct buf *b);
void harness_read_reply(int fd, struct codec_reply *rep, uint8_t **body);
void harness_expect_closed(int fd);
uint64_t harness_result_uint(const struct codec_reply *rep);
bool harness_map_find(const struct codec_reply *rep, const char *key, struct mp_reader *at);
uint64_t harness_map_uint(const struct codec_reply *rep, const char *key);
/* harness_server_stat(fd, key): STATS' ${key} for the whole server, asked on ${fd} (the test
 * fails unless it is answered OK with that key). */
uint64_t harness_server_stat(int fd, const char *key);
void harness_write_secret(const char *path, const char *secret, mode_t mode);

#endif
