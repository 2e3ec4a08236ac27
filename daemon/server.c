/*
 * The server: the glue between the loop, the sockets, the connections and the store. See
 * server.h.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth.h"
#include "codec.h"
#include "conn.h"
#include "dispatch.h"
#include "listener.h"
#include "log.h"
#include "persist.h"
#include "store.h"

/* Unsent replies above which a client's requests stop being read (at most a quarter of
 * --max-client-memory, so that one client reading its replies never passes that bound). */
#define SERVER_OUTPUT_HIGH_BYTES (4u * 1024u * 1024u)
/* Replies one loop turn makes at most (or an eighth of --max-client-memory, if less): 16 MiB
 * is copied in a few milliseconds, and a pipelined turn of 50 clients x 16 GETs of 8 KB
 * (6.4 MB) fits. */
#define SERVER_TURN_OUTPUT_BYTES (16u * 1024u * 1024u)
#define SERVER_CLOSE_TIMEOUT_S   10
/* How long a stopping server waits for its last replies to leave. */
#define SERVER_DRAIN_MS 2000
/* How long a stopping server waits for the sync of the log that changes put off for a
 * snapshot's switch wait for (persist_settle), before it turns them away: such a sync takes
 * milliseconds, tens on a busy disk, and one that has not ended in 2 s is a disk that may
 * never answer. With the drain (SERVER_DRAIN_MS) and a snapshot's last 3 s, a stop so takes
 * some 7 s before the store is freed (the unit gives a stop 90 s); unbounded, it waited for
 * the disk with the loop held, no client answered, until systemd killed it. */
#define SERVER_SETTLE_MS 2000
/*
 * Expiry works in slices of 32 sessions and looks at the clock between them: it holds the loop
 * for about 0.1 ms at a time, and during a mass expiry takes at most a fifth of the loop's
 * time, so the requests served meanwhile keep most of the server.
 */
#define SERVER_EXPIRE_SLICE   32
#define SERVER_EXPIRE_SPAN_NS 100000L
/* When no request came in since the last slice, nobody is kept waiting: longer slices, and
 * the next one as soon as the loop has looked for I/O. A CLEAR's sessions and a mass expiry
 * are then freed at nearly the speed of one pass. */
#define SERVER_EXPIRE_IDLE_SPAN_NS 500000L
/* While a client waits for the expiry to catch up (a COUNT or CLEAR put off), slices of this
 * length come once per loop turn: the others' latency grows by at most this much meanwhile. */
#define SERVER_EXPIRE_HURRY_SPAN_NS 250000L
/* After a full slice, wait this many times its length before the next one. */
#define SERVER_EXPIRE_SHARE_WAIT 4
#define SERVER_EXPIRE_MAX_MS     100
#define SERVER_REFUSED_LOG_S     10
/* Connections past --max-connections that may be open at once: newcomers on trial and idle
 * ones given way that linger (conn_set_may_try), within the descriptors kept spare
 * (SERVER_SPARE_FDS); refused sockets lingering apart take what of it they leave
 * (conn_config.spare_sockets). */
#define SERVER_DISPLACE_SLACK 32
/* Below this a --max-memory is more likely a typo (100 for 100M) than a limit. */
#define SERVER_SMALL_MAX_MEMORY (1024u * 1024u)
/* --max-memory not given: the sessions may use 1/this of what the process may (see
 * server_auto_max_memory). */
#define SERVER_AUTO_MEMORY_SHARE 2u
/* --max-client-memory not given: the connections' buffers may use at most 1/this of what the
 * process may (see server_auto_max_client_memory). */
#define SERVER_AUTO_CLIENT_MEMORY_SHARE 4u
/* What a connection holds of its own, outside --max-client-memory's count (its state, its
 * buffers' first room, the event loop's bookkeeping): 9 KB measured for an idle one, about
 * 17 KB for one that has pipelined (SERVER_TRIM_CONNECTIONS). */
#define SERVER_CONNECTION_BYTES (16u * 1024u)
/* Sessions' memory freed since the last trim past which a quiet daemon gives its free pages
 * back to the system (trim_when_quiet). */
#define SERVER_TRIM_BYTES (64u * 1024u * 1024u)
/* Or once this many connections have closed since the most were open: each held about 17 KB
 * (its state and buffers), 10,000 of a flood 170 MB kept for good. A web server's pool is a
 * few connections: so many going at once is a flood or a fleet restarting, and the trim is
 * on a thread of its own at a quiet tick. */
#define SERVER_TRIM_CONNECTIONS 512u
/* A tick with at most this many requests counts as quiet (a health check's pings do not
 * keep the memory from coming back). */
#define SERVER_TRIM_QUIET_REQUESTS 100
/* Descriptors besides the connections: listeners, the log and data files, the event loop (14
 * with --data-dir and two listeners), and SERVER_DISPLACE_SLACK. */
#define SERVER_SPARE_FDS 64

struct server {
	const struct config *cfg;
	struct event_base *base;
	struct store *store;
	struct persist *persist;
	struct dispatch *dispatch;
	struct auth *auth;       /* --auth-file's secret, or NULL */
	struct auth *admin_auth; /* --admin-auth-file's secret, or NULL */
	struct dispatch_server_stats stats;
	struct conn_set conns;
	bool conns_ready;
	/* --ready-file as this daemon wrote it: removed at exit while it is still that file */
	bool ready_written;
	dev_t ready_dev;
	ino_t ready_ino;
	struct listener **listeners;
	size_t n_listeners;
	struct event *sigterm;
	struct event *sigint;
	struct event *sighup;
	struct event *sigusr1;
	struct event *sigusr2;
	struct event *expire_timer;
	uint64_t expire_seen_requests; /* requests_total when the last expiry callback began */
	uint64_t expired_noted;        /* store_expired_total when the log last heard of it */
	struct event *tick_timer;
	struct event *persist_wake; /* persist_wake_fd readable; NULL: memory-only */
	struct event *drain_timer;
	bool stopping;
	bool done; /* server_run returns after this turn */
	/* CLOCK_MONOTONIC: the stop's signal, and server_run's return (0: none yet) */
	int64_t stop_ns;
	int64_t drained_ns;
	/* CLOCK_MONOTONIC ns of this turn's first callback; 0 before it (see note_turn). */
	int64_t turn_started_ns;
	/* Connections refused over --max-connections, for the warning about them. */
	struct log_every refusals;
	/* The last newcomer refused at --max-connections, for the warning about them. */
	char refused_peer[DISPATCH_PEER_NAME_BYTES];
	uint64_t refused_total; /* and their count since start */
	/* trim_when_quiet: the requests dispatched at the last tick. */
	uint64_t tick_seen_requests;
	/* The thread that runs malloc_trim (trim_thread_main), from when it starts
	 * (trim_running) until the tick after it set trim_done joins it. */
	pthread_t trim_thread;
	bool trim_running;
	atomic_bool trim_done;
	uint64_t trim_freed; /* the bytes freed that started it */
	/* The most connections open at once since the last trim, and how many had gone when
	 * one started: a flood's connections leave their memory in the heap too. */
	size_t conn_peak;
	size_t trim_conns_gone;
	int64_t trim_took_ns; /* set by the thread before trim_done */
};

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Tell systemd (Type=notify) about a state change: one datagram, no libsystemd needed. */
static void notify_systemd(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	size_t plen;
	int fd;

	if (path == NULL || *path == '\0')
		return;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sun.sun_path)) {
		log_warn("NOTIFY_SOCKET is not a socket path; not notifying");
		return;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	if (path[0] == '@')
		sun.sun_path[0] = '\0'; /* abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, len) == -1)
		log_warn("cannot notify systemd: %s", strerror(errno));
	close(fd);
}

/* Write the bound URLs, one a line, to the ready file: a temporary file renamed into place. */
static int write_ready_file(struct server *srv)
{
	const char *path = srv->cfg->ready_file;
	char tmp[4096];
	struct stat st;
	FILE *f;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		log_error("the ready file's path is too long");
		return -1;
	}
	/* The name is predictable, and the directory may be one others can write to (/tmp): a
	 * link one of them put there must not have us write through it (O_NOFOLLOW, O_EXCL),
	 * whatever it points to. A stale file of ours (a crashed daemon that had our pid) is
	 * removed first; one we may not remove is refused. The mode is 0644 at most (the umask
	 * only takes away): a reader trusts the URLs in it, so others must not change them. */
	if (unlink(tmp) == -1 && errno != ENOENT) {
		log_error("cannot write %s: %s", tmp, strerror(errno));
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd == -1) {
		log_error("cannot write %s: %s", tmp, strerror(errno));
		return -1;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		log_error("cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		goto fail_unlink;
	}
	for (size_t i = 0; i < srv->n_listeners; i++)
		fprintf(f, "%s\n", listener_url(srv->listeners[i]));
	if (fflush(f) != 0 || ferror(f)) {
		log_error("cannot write %s: %s", tmp, strerror(errno));
		fclose(f);
		goto fail_unlink;
	}
	if (fstat(fileno(f), &st) == -1) {
		log_error("cannot stat %s: %s", tmp, strerror(errno));
		fclose(f);
		goto fail_unlink;
	}
	fclose(f);
	if (rename(tmp, path) == -1) {
		log_error("cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto fail_unlink;
	}
	srv->ready_written = true;
	srv->ready_dev = st.st_dev;
	srv->ready_ino = st.st_ino;
	return 0;

fail_unlink:
	unlink(tmp);
	return -1;
}

/* Remove the ready file at exit, if it is still the one this daemon wrote. */
static void remove_ready_file(const struct server *srv)
{
	const char *path = srv->cfg->ready_file;
	struct stat st;

	if (stat(path, &st) == -1 || st.st_dev != srv->ready_dev || st.st_ino != srv->ready_ino)
		return;
	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("cannot remove %s: %s", path, strerror(errno));
}

/* A callback of this turn runs: the turn's busy time starts at the first one. Polling for
 * the turn ends before it, so the turn's stall is measured from here to the flush's end. */
static void note_turn(struct server *srv)
{
	if (srv->turn_started_ns == 0)
		srv->turn_started_ns = mono_ns();
}

/* The turn is over: account its stall in the figures STATS reports. */
static void end_turn(struct server *srv)
{
	uint64_t us;

	if (srv->turn_started_ns == 0)
		return;
	us = (uint64_t)(mono_ns() - srv->turn_started_ns) / 1000u;
	srv->turn_started_ns = 0;
	if (us > srv->stats.loop_stall_max_us)
		srv->stats.loop_stall_max_us = us;
	srv->stats.loop_stalls_over_1ms += us > 1000;
	srv->stats.loop_stalls_over_2ms += us > 2000;
	srv->stats.loop_stalls_over_10ms += us > 10000;
}

/* RETIRE: the connections are conn.c's (dispatch_retire_fn). */
static int server_on_retire(void *arg, const struct dispatch_peer *asking,
                            const uint8_t key[CODEC_RETIRE_KEY_BYTES])
{
	struct server *srv = arg;

	return conn_set_retire(&srv->conns, asking, key);
}

static enum dispatch_verdict server_on_frame(void *arg, struct dispatch_peer *peer,
                                             const struct dispatch_frame_ref *frame,
                                             uint64_t now_ms, struct buf *out)
{
	struct server *srv = arg;

	note_turn(srv);
	return dispatch_frame_hinted(srv->dispatch, peer, frame, now_ms, out);
}

static void server_on_prefetch(void *arg, struct dispatch_frame_ref *frames, size_t count)
{
	struct server *srv = arg;

	dispatch_prefetch(srv->dispatch, frames, count);
}

static size_t server_on_reply_bound(void *arg, struct dispatch_frame_ref *frame, uint64_t now_ms)
{
	struct server *srv = arg;

	return dispatch_reply_bound(srv->dispatch, frame, now_ms);
}

static bool server_on_reply_only(void *arg, struct dispatch_frame_ref *frame)
{
	struct server *srv = arg;

	return dispatch_reply_only(srv->dispatch, frame);
}

static bool server_on_takes_for_client(void *arg, struct dispatch_frame_ref *frame)
{
	struct server *srv = arg;

	return dispatch_takes_for_client(srv->dispatch, frame);
}

/* Reads and writes in the ready callbacks are the turn's work too: a burst of large requests
 * spends as much of the turn reading them as handling them. */
static void server_on_io(void *arg)
{
	note_turn(arg);
}

static void server_on_closed(void *arg)
{
	struct server *srv = arg;

	srv->stats.connections = srv->conns.count;
	if (srv->stopping && srv->conns.count == 0)
		srv->done = true;
}

/*
 * The end of a loop turn: the group commit (one write, and an fdatasync under --fsync always,
 * for every change of the turn), then the turn's replies go out. Replies are never sent
 * before the changes they acknowledge are committed; when the commit fails, the connections
 * waiting on it are closed instead.
 */
static void server_after_turn(struct server *srv)
{
	bool ok = true;

	srv->stats.client_bytes = srv->conns.client_bytes;
	srv->stats.client_evictions_total = srv->conns.evictions;
	srv->stats.client_bytes_peak = srv->conns.client_bytes_peak;
	srv->stats.frames_refused_total = srv->conns.refused_frames;
	srv->stats.connections_displaced_total =
	    srv->conns.displaced + srv->conns.dropped_ungreeted;
	srv->stats.connections_refused_total = srv->refused_total + srv->conns.refused_at_hello;
	srv->stats.hello_abandoned_total = srv->conns.hellos_abandoned;
	srv->stats.held_over_total = srv->conns.held_over_total;
	srv->stats.reads_deferred_total = srv->conns.reads_deferred_total;
	dispatch_turn_begins(srv->dispatch);
	/* Requests put off until the expiry caught up (see server_on_expire), or past the last
	 * turn's budget for heavy requests (sealed HELLOs, LIST pages, SET_IF hashes,
	 * large FLASH_POPs). */
	if (conn_set_has_waiting(&srv->conns)) {
		size_t most = dispatch_retries(srv->dispatch, wall_ms());
		size_t waited = conn_set_waiting_count(&srv->conns);
		size_t left = conn_set_retry(&srv->conns, most);

		dispatch_retried(srv->dispatch, most < waited ? most : waited, left,
		                 conn_set_waiting_count(&srv->conns));
	}
	conn_set_resume_held(&srv->conns);
	conn_set_handle_input(&srv->conns);
	/* Expiry took sessions this turn, by the timer or in a request that found its session
	 * expired: the log must hear of the instant (persist_note_expired), or they would come
	 * back at the next start after the clock steps back. */
	if (srv->persist != NULL && store_expired_total(srv->store) != srv->expired_noted) {
		srv->expired_noted = store_expired_total(srv->store);
		persist_note_expired(srv->persist, wall_ms());
	}
	if (srv->persist != NULL && persist_pending(srv->persist) &&
	    persist_commit(srv->persist) == -1) {
		ok = false;
		log_warn("changes were not committed; closing the connections waiting on them");
	}
	conn_set_flush(&srv->conns, ok);
}

static void say_refusals(const struct server *srv, uint64_t refused)
{
	/* The last one's peer, so that an operator facing a flood has an address to look at. */
	log_warn("--max-connections %u reached, no connection able to give way: closed %llu new "
	         "connection(s), the last from %s",
	         srv->cfg->max_connections, (unsigned long long)refused,
	         srv->refused_peer[0] != '\0' ? srv->refused_peer : "an unnamed peer");
}

/*
 * Warnings come at most once a period, with the count since the last. Once a second the tick
 * says those whose period is over (a burst's count would otherwise wait for the next
 * occurrence, which may come much later); a stopping server says what is still counted, or
 * its log would be short of the refusals that came last. The listeners' failed accepts are
 * said by the tick too (listener_log_due); what a listener still counts when it closes,
 * listener_free says.
 */
static void server_log_held_back(struct server *srv, bool stopping)
{
	uint64_t refused = log_every_held(&srv->refusals, SERVER_REFUSED_LOG_S, stopping);

	if (refused > 0)
		say_refusals(srv, refused);
	if (stopping) {
		conn_set_log_pending(&srv->conns);
		dispatch_log_pending(srv->dispatch);
	} else {
		dispatch_log_due(srv->dispatch);
		for (size_t i = 0; i < srv->n_listeners; i++)
			listener_log_due(srv->listeners[i]);
	}
}

/* A client turned away at --max-connections is told why, so that its error can say so. */
static void refuse_busy(struct server *srv, evutil_socket_t fd)
{
	conn_set_refuse(&srv->conns, srv->base, fd,
	                "the server is at its --max-connections and no connection can give way; "
	                "try again later");
}

static void server_on_accept(void *arg, evutil_socket_t fd, uint64_t source, uint64_t owner,
                             bool local, const char *name)
{
	struct server *srv = arg;
	bool on_trial;

	note_turn(srv);
	if (srv->stopping) {
		evutil_closesocket(fd);
		return;
	}
	/* Connections that never said HELLO give way first: clients without the secret (or
	 * idle ones) must not be able to hold every slot until their --hello-timeout. */
	if (srv->conns.count >= srv->cfg->max_connections &&
	    !conn_set_drop_ungreeted(&srv->conns, source)) {
		/* Then, on trial, if connections past HELLO have gone unused for a while (a pool
		 * that leaks connections must not lock the other web servers out), or if the
		 * newcomer's client (process, or host over TCP) holds none while another holds two
		 * or more (every web server gets one before any keeps two), or if a process of its
		 * host holds two or more (over TCP: it may be another process of that host). The
		 * newcomer takes one's place only once it says HELLO (conn_set_may_try). */
		if (srv->conns.count >= srv->cfg->max_connections + SERVER_DISPLACE_SLACK ||
		    !conn_set_may_try(&srv->conns, owner)) {
			uint64_t logged = log_every_due(&srv->refusals, 1, SERVER_REFUSED_LOG_S);

			srv->refused_total++;
			snprintf(srv->refused_peer, sizeof(srv->refused_peer), "%s", name);

			refuse_busy(srv, fd);
			if (logged > 0)
				say_refusals(srv, logged);
			return;
		}
	}
	/* Past the limit still (newcomers on trial, or one that gave way in place of one), the
	 * newcomer is in excess: it must take an idle connection's place once its HELLO is done. */
	on_trial = srv->conns.count >= srv->cfg->max_connections;
	if (conn_new(&srv->conns, srv->base, fd, source, owner, local, name, on_trial) == -1)
		return;
	if (srv->conns.count > srv->conn_peak)
		srv->conn_peak = srv->conns.count;
	srv->stats.connections = srv->conns.count;
	srv->stats.connections_total++;
}

/* Reclaim expired sessions a slice at a time; lazy expiry keeps answers right meanwhile. */
static void server_on_expire(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	uint64_t now = wall_ms(), next, wait_ms, requests;
	int64_t started = mono_ns();
	struct timeval tv = {0, 0};
	bool idle, hurry;

	(void)fd, (void)what;
	if (srv->turn_started_ns == 0)
		srv->turn_started_ns = started;
	requests = dispatch_requests_total(srv->dispatch);
	idle = requests == srv->expire_seen_requests;
	srv->expire_seen_requests = requests;
	/* A client waits for the expiry to catch up (a COUNT or CLEAR put off): longer slices
	 * come once per loop turn instead of after four times their length, so it waits one to
	 * four seconds per million sessions due, not the tens of seconds a mass expiry takes at
	 * the usual share. */
	hurry = dispatch_waits_for_expiry(srv->dispatch);
	while (store_expire(srv->store, now, SERVER_EXPIRE_SLICE) == SERVER_EXPIRE_SLICE) {
		int64_t spent = mono_ns() - started;

		if (spent > (idle    ? SERVER_EXPIRE_IDLE_SPAN_NS
		             : hurry ? SERVER_EXPIRE_HURRY_SPAN_NS
		                     : SERVER_EXPIRE_SPAN_NS)) {
			/* More to do: come back once the loop has served I/O for four times as
			 * long, so a mass expiry takes at most a fifth of the loop's time. */
			int64_t wait_us =
			    idle || hurry ? 0 : SERVER_EXPIRE_SHARE_WAIT * spent / 1000;

			/* A slice the machine stretched (preemption) must not park expiry long. */
			tv.tv_usec = (suseconds_t)(wait_us < 100000 ? wait_us : 100000);
			evtimer_add(srv->expire_timer, &tv);
			return;
		}
	}
	next = store_next_expiry(srv->store);
	if (next == UINT64_MAX || next > now + SERVER_EXPIRE_MAX_MS)
		wait_ms = SERVER_EXPIRE_MAX_MS;
	else if (next <= now)
		wait_ms = 1; /* a coarse bound said "now" but nothing was due: do not spin */
	else
		wait_ms = next - now;
	tv.tv_sec = 0;
	tv.tv_usec = (suseconds_t)(wait_ms * 1000);
	evtimer_add(srv->expire_timer, &tv);
}

/* Hand the heap's free pages back to the system, away from the loop (see trim_when_quiet). */
static void *trim_thread_main(void *arg)
{
	struct server *srv = arg;
	int64_t started = mono_ns();

	malloc_trim(0);
	srv->trim_took_ns = mono_ns() - started;
	atomic_store(&srv->trim_done, true);
	return NULL;
}

/* Join the trim thread once it is done, or at once when ${wait}; say what it did. */
static void trim_join(struct server *srv, bool wait)
{
	if (!srv->trim_running || (!wait && !atomic_load(&srv->trim_done)))
		return;
	pthread_join(srv->trim_thread, NULL);
	srv->trim_running = false;
	log_info("gave free memory back to the system after %llu MB of sessions were freed and "
	         "%zu connections closed (%lld ms)",
	         (unsigned long long)(srv->trim_freed >> 20), srv->trim_conns_gone,
	         (long long)(srv->trim_took_ns / 1000000));
}

/*
 * glibc keeps the memory of freed sessions for later ones, so after a mass expiry or a CLEAR
 * the daemon would hold its peak for good (and after a flood of connections). Once the store
 * has shrunk by SERVER_TRIM_BYTES since the last trim (or SERVER_TRIM_CONNECTIONS have
 * closed), everything due is freed, and a whole tick passed with next to no
 * requests, hand the free pages back (malloc_trim) on a thread of its own: with the chunks
 * already merged (server_tune_malloc) that is mostly the kernel freeing pages, about 0.1 s
 * per GB, which the loop does not wait for. The thread holds the heap's lock meanwhile, so a
 * malloc the thread cache cannot serve waits for its turn (after a CLEAR of 330 MB, a SET
 * every 20 ms waited 4 ms at worst, bench/trim-stall); PING allocates nothing. It still
 * waits for a quiet tick, so that few requests meet it.
 */
static void trim_when_quiet(struct server *srv)
{
	uint64_t requests = dispatch_requests_total(srv->dispatch), freed;
	size_t gone;
	bool quiet = requests - srv->tick_seen_requests <= SERVER_TRIM_QUIET_REQUESTS;
	struct store_stats stats;
	int err;

	srv->tick_seen_requests = requests;
	store_stats(srv->store, NULL, 0, &stats);
	trim_join(srv, false);
	freed = store_bytes_peak(srv->store) - stats.bytes;
	gone = srv->conn_peak > srv->conns.count ? srv->conn_peak - srv->conns.count : 0;
	if (srv->trim_running || !quiet ||
	    (freed < SERVER_TRIM_BYTES && gone < SERVER_TRIM_CONNECTIONS) ||
	    store_next_expiry(srv->store) <= wall_ms())
		return;
	store_bytes_peak_reset(srv->store);
	srv->conn_peak = srv->conns.count;
	srv->trim_freed = freed;
	srv->trim_conns_gone = gone;
	atomic_store(&srv->trim_done, false);
	err = pthread_create(&srv->trim_thread, NULL, trim_thread_main, srv);
	if (err != 0) {
		log_warn("cannot start a thread to give %llu MB of free memory back: %s",
		         (unsigned long long)(freed >> 20), strerror(err));
		return;
	}
	srv->trim_running = true;
}

/* Close the connections that showed a secret --auth-file or --admin-auth-file no longer lets
 * in. Said as a warning: clients are cut off (the reload's own line, which the operator asked
 * for, stays at info). */
static void close_retired_auth(struct server *srv)
{
	size_t closing = conn_set_close_auth_retired(&srv->conns, srv->auth, srv->admin_auth);

	if (closing > 0)
		log_warn("closing %zu connection(s) made with a retired --auth-file or "
		         "--admin-auth-file secret",
		         closing);
}

static void server_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	bool expired;

	(void)fd, (void)what;
	note_turn(srv);
	if (srv->persist != NULL)
		persist_tick(srv->persist, srv->store);
	/* The grace is checked here, so it ends within a tick of its time: until then the
	 * previous secret lets no one new in (auth_check looks at the clock) but stays in
	 * memory, and its connections stay open. */
	expired = srv->auth != NULL && auth_expire(srv->auth, auth_clock_ms());
	if (srv->admin_auth != NULL && auth_expire(srv->admin_auth, auth_clock_ms()))
		expired = true;
	if (expired)
		close_retired_auth(srv);
	conn_set_tick(&srv->conns);
	server_log_held_back(srv, false);
	trim_when_quiet(srv);
}

/* The file worker finished a sync that changes may wait for: the turn's end hands them again
 * (dispatch_retries). */
static void server_on_persist_wake(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd, (void)what;
	note_turn(srv);
	persist_woken(srv->persist);
}

static void server_on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd, (void)what;
	log_warn("%zu connection(s) still had replies to send after %d ms; closing them",
	         srv->conns.count, SERVER_DRAIN_MS);
	srv->done = true;
}

static void server_close_listeners(struct server *srv)
{
	for (size_t i = 0; i < srv->n_listeners; i++)
		listener_free(srv->listeners[i]);
	free(srv->listeners);
	srv->listeners = NULL;
	srv->n_listeners = 0;
}

static void server_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	struct timeval tv = {SERVER_DRAIN_MS / 1000, (SERVER_DRAIN_MS % 1000) * 1000};

	(void)what;
	if (srv->stopping)
		return;
	srv->stopping = true;
	srv->stop_ns = mono_ns();
	log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	notify_systemd("STOPPING=1");
	server_close_listeners(srv);
	/* A COUNT or CLEAR put off until the expiry catches up is answered now, whatever it
	 * costs: the clients get what they asked before the connections close. So is a change
	 * put off for a snapshot's switch, once the sync it waits for is over (milliseconds);
	 * past SERVER_SETTLE_MS it is not carried out, as the requests not read yet, which the
	 * SHUTTING_DOWN says: it was never acknowledged, so nothing answered is lost. */
	dispatch_stop_deferring(srv->dispatch);
	if (!persist_settle(srv->persist, SERVER_SETTLE_MS))
		log_warn("the log's sync at a snapshot's switch has not ended %d ms after the stop "
		         "began (a hung disk?): the changes waiting for it are not carried out "
		         "(SHUTTING_DOWN); sessd exits once the sync is over",
		         SERVER_SETTLE_MS);
	conn_set_retry(&srv->conns, SIZE_MAX);
	/* Connections with replies of this turn close after the flush that ends it. */
	conn_set_shutdown(&srv->conns);
	if (srv->conns.count == 0) {
		srv->done = true;
		return;
	}
	evtimer_add(srv->drain_timer, &tv);
}

/*
 * Refuse a secret's file ${secret_file} (given as ${option}) that is the --key-file
 * ${key_file}: a 32-byte key passes for a secret, and every client given it would then hold
 * the key that encrypts the data at rest, which the key is there to keep from whoever can read
 * the data directory or a backup. Returns 0, or -1 (logged). A file that cannot be looked at
 * is said where it is read.
 */
static int server_check_apart_from_key(const char *key_file, const char *secret_file,
                                       const char *option)
{
	struct stat key, secret;

	if (key_file == NULL || secret_file == NULL || stat(key_file, &key) == -1 ||
	    stat(secret_file, &secret) == -1 || key.st_dev != secret.st_dev ||
	    key.st_ino != secret.st_ino)
		return 0;
	log_error("%s %s is the --key-file: every client that shows its secret would hold the key "
	          "that encrypts the data at rest; give the clients a secret of their own (see "
	          "sessd(8), --auth-file)",
	          option, secret_file);
	return -1;
}

/*
 * Warn when sessd's own group may read, or write, the admin secret's file at ${path}: that
 * group is the one of its Unix sockets (mode 0660), which the apps' users join to reach them
 * (README, "Running it as a service"), so every app could read the secret that makes a
 * connection admin, and list, and so take over, every session; or put a secret of its own in
 * the file, admin from the next SIGHUP on (one that rotates the apps' secret reads this file
 * too). The file is the operator's, and a group of sessd's own may be no one else's: said, not
 * refused.
 */
static void server_check_admin_file(const char *path)
{
	struct stat st;
	const char *may;

	if (stat(path, &st) == -1 || (st.st_mode & (S_IRGRP | S_IWGRP)) == 0 ||
	    st.st_gid != getegid())
		return;
	may = (st.st_mode & S_IWGRP) == 0   ? "read it"
	      : (st.st_mode & S_IRGRP) == 0 ? "replace it"
	                                    : "read and replace it";
	log_warn("--admin-auth-file %s: sessd's own group (gid %lu) may %s, and that group is the "
	         "one of its Unix sockets, which the apps join to reach them: any app could read "
	         "the admin secret, or put its own there, and list every session; make the file "
	         "sessd's alone (chown sessd, chmod 0600)",
	         path, (unsigned long)st.st_gid, may);
}

/*
 * SIGHUP reads --auth-file and --admin-auth-file again (auth_reload), so a secret can be
 * changed without a restart.
 * Without one there is nothing to reload; the signal's default action would still kill the
 * daemon without a drain or a log line, leaving its socket file behind, so an operator's
 * reflexive "kill -HUP" or a closed terminal must not stop the service.
 */
static void server_on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	uint64_t grace_ms = (uint64_t)srv->cfg->auth_grace_s * 1000;
	bool reloaded = false;

	(void)sig, (void)what;
	if (srv->auth == NULL && srv->admin_auth == NULL) {
		log_info("SIGHUP: ignored (without --auth-file or --admin-auth-file sessd has "
		         "nothing to reload; SIGTERM stops it)");
		return;
	}
	/* Monotonic: a step of the wall clock must neither end the grace early nor stretch it. */
	if (srv->auth != NULL && auth_reload(srv->auth, auth_clock_ms(), grace_ms) == 0)
		reloaded = true;
	if (srv->admin_auth != NULL &&
	    auth_reload(srv->admin_auth, auth_clock_ms(), grace_ms) == 0) {
		reloaded = true;
		server_check_admin_file(srv->cfg->admin_auth_file);
	}
	if (reloaded)
		close_retired_auth(srv);
}

/*
 * SIGUSR1 and SIGUSR2 mean nothing to sessd. Other daemons give them one (reopen the logs,
 * print figures), so an operator may try one on sessd, and "systemctl kill -s USR1" reaches
 * every process of a unit; their default action would kill the daemon without a drain,
 * leave its socket and ready files behind and, memory-only, lose every session. Logged, so
 * that whoever sent one sees it arrived and did nothing.
 */
static void server_on_sigusr(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	log_info("%s: ignored (sessd gives it no meaning; SIGHUP reads the secrets again, "
	         "SIGTERM stops it)",
	         sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
}

/*
 * --max-connections (default 10000) is above the usual soft limit of 1024 open files: raise
 * the soft limit as far as the hard one allows, and say once at startup when that is not far
 * enough, rather than have accepts fail later with EMFILE under load.
 */
static void server_fit_fd_limit(const struct config *cfg)
{
	rlim_t want = (rlim_t)cfg->max_connections + SERVER_SPARE_FDS;
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) == -1 || lim.rlim_cur == RLIM_INFINITY ||
	    lim.rlim_cur >= want)
		return;
	if (lim.rlim_max != lim.rlim_cur) {
		struct rlimit raised = lim;

		raised.rlim_cur =
		    lim.rlim_max == RLIM_INFINITY || lim.rlim_max >= want ? want : lim.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			lim = raised;
	}
	if (lim.rlim_cur < want)
		log_warn("--max-connections %u needs about %llu open files but the limit is %llu: "
		         "past that, new connections wait until others close (raise ulimit -n or "
		         "LimitNOFILE=, or lower --max-connections)",
		         cfg->max_connections, (unsigned long long)want,
		         (unsigned long long)lim.rlim_cur);
}

/*
 * How glibc gives sessions' memory back, so that no call of the loop's pays for all of it at
 * once (see trim_when_quiet):
 * - no fastbins: a freed session's chunk merges with its free neighbours at once, inside the
 *   expiry slice that frees it, which is timed. Fastbins kept them apart until the next
 *   consolidation, and a CLEAR frees in hash order, all over the heap: consolidating a
 *   million of them took 0.3 s, in whichever malloc_trim or large malloc came first
 *   (2 s per GB). The thread caches still serve the usual alloc/free churn.
 * - no automatic trim in free(): a free that merges into the top of the heap would give all
 *   of it back in that one call (0.2 s per GB in the kernel). The trim thread does it.
 */
static void server_tune_malloc(void)
{
	if (mallopt(M_MXFAST, 0) == 0 || mallopt(M_TRIM_THRESHOLD, -1) == 0)
		log_debug("malloc ignores M_MXFAST or M_TRIM_THRESHOLD: not glibc's allocator");
}

/*
 * --max-memory not given: half of ${limit} (what the process may use, as config_memory_limit
 * read it from ${source}; 0 when it could not), so that a store that keeps growing answers
 * NO_MEMORY instead of being killed by the kernel with every session in it. The other half is
 * for the connections' buffers (server_auto_max_client_memory), malloc's own keeping, and a
 * snapshot's fork, whose pages the writes made meanwhile are copied into. Never below what the
 * data directory just loaded: the daemon held that before and must start with it. Returns the
 * limit, or 0 (none) when there is no ${limit}.
 */
static uint64_t server_auto_max_memory(struct store *st, uint64_t limit, const char *source)
{
	uint64_t share;
	struct store_stats stats;

	if (limit == 0) {
		log_warn("--max-memory not given, and neither /proc/meminfo nor the memory cgroup "
		         "could be read: the sessions' memory has no limit");
		return 0;
	}
	/* A 32-bit process can address no more than SIZE_MAX bytes, however much the machine or
	 * its cgroup has: half of more than that (8 GiB of memory and up) did not fit the store's
	 * size_t limit, and was cut to its low 32 bits (none at all for 8 GiB exactly). */
	if (limit > SIZE_MAX) {
		limit = SIZE_MAX;
		source = "what a 32-bit process can address";
	}
	share = limit / SERVER_AUTO_MEMORY_SHARE;
	store_stats(st, NULL, 0, &stats);
	if (stats.bytes > share) {
		log_warn("--max-memory not given: half of %s (%llu MiB) is %llu MiB, less than the "
		         "%llu MiB of sessions loaded, which is the limit then: new sessions are "
		         "refused with NO_MEMORY until some expire (give --max-memory to choose)",
		         source, (unsigned long long)(limit >> 20),
		         (unsigned long long)(share >> 20),
		         (unsigned long long)(stats.bytes >> 20));
		return stats.bytes;
	}
	log_info("--max-memory not given: sessions may use %llu MiB, half of %s (%llu MiB); past "
	         "it, writes are refused with NO_MEMORY (--max-memory 0: no limit)",
	         (unsigned long long)(share >> 20), source, (unsigned long long)(limit >> 20));
	return share;
}

/*
 * --max-memory ${given}: the limit, whatever the sessions loaded into ${st} hold. Past it, the
 * daemon starts with every one of them, warned of, and refuses the writes that would grow the
 * store until sessions end: a data directory written under a larger limit used to stop the
 * daemon from starting at all ("the sessions do not fit"), so an operator who lowered the
 * limit, or moved sessd to a smaller machine, took every app's sessions down, and a
 * supervisor restarted it into the same refusal. Returns ${given}.
 */
static uint64_t server_given_max_memory(struct store *st, uint64_t given)
{
	struct store_stats stats;

	store_stats(st, NULL, 0, &stats);
	if (given != 0 && stats.bytes > given)
		log_warn("the sessions loaded take %llu bytes, more than --max-memory %llu: sessd "
		         "starts with every one of them, and refuses writes that would grow the "
		         "store (NO_MEMORY) until sessions end and bring it under the limit",
		         (unsigned long long)stats.bytes, (unsigned long long)given);
	return given;
}

/* What server_warn_oversized finds among the loaded sessions. */
struct oversized {
	size_t max_data;         /* the most data a GET reply carries under this --max-frame */
	uint64_t sessions;       /* sessions holding more */
	size_t largest;          /* the most data one of them holds */
	size_t max_flash;        /* the flash bytes a session may hold under this --max-frame */
	uint64_t flash_sessions; /* sessions holding more */
	size_t largest_flash;    /* the most flash bytes one of them holds */
};

static int oversized_on_session(void *arg, const struct store_session_view *s)
{
	struct oversized *o = arg;

	if (s->has_data && s->data_len > o->max_data) {
		o->sessions++;
		if (s->data_len > o->largest)
			o->largest = s->data_len;
	}
	if (s->flash_bytes > o->max_flash) {
		o->flash_sessions++;
		if (s->flash_bytes > o->largest_flash)
			o->largest_flash = s->flash_bytes;
	}
	return 0;
}

/*
 * Sessions loaded into ${st} under a larger --max-frame than ${max_frame} are kept, but a GET
 * or LOAD of one holding more data than this frame's reply carries answers LIMIT: warn once,
 * at startup, with how many, the largest, and the --max-frame that serves them all (GET and
 * LOAD), so that the operator learns it before the apps' errors do. So for flash messages:
 * a session holding more flash bytes than this frame's budget (max_frame / 2, which keeps
 * every pop within one reply) refuses pushes with LIMIT, and a pop of all its messages may
 * answer LIMIT too; one within the budget always pops. Before, the flash queues were not
 * looked at. One walk of the sessions, not of their messages (a session's flash bytes are
 * kept with it): 147 ms of CPU at 1,000,000 sessions of 1 KB with 2 messages each, of the
 * start's 5.3 s (data only, as before: 119 ms; walking the messages too: 407 ms; medians of
 * 5, alternated, load 4-8).
 */
static void server_warn_oversized(const struct store *st, uint32_t max_frame, uint64_t now_ms)
{
	struct oversized o = {.max_data = max_frame - CODEC_REPLY_DATA_OVERHEAD,
	                      .max_flash = max_frame / 2};

	if (store_foreach(st, now_ms, oversized_on_session, NULL, NULL, &o) == -1)
		return;
	if (o.sessions > 0)
		log_warn(
		    "%llu session(s) hold more data than a GET may return under --max-frame "
		    "%u (%zu bytes), the largest %zu bytes: they were stored under a larger "
		    "--max-frame, are kept, and a GET or LOAD of them answers LIMIT until sessd "
		    "runs with --max-frame %zu or more",
		    (unsigned long long)o.sessions, (unsigned)max_frame, o.max_data, o.largest,
		    o.largest + CODEC_REPLY_DATA_OVERHEAD + CODEC_LOAD_EXTRA_OVERHEAD);
	if (o.flash_sessions > 0)
		log_warn("%llu session(s) hold more flash messages than --max-frame %u lets a "
		         "session queue (%zu flash bytes), the most %zu: they were pushed under a "
		         "larger --max-frame, are kept, and a push to them answers LIMIT, as may a "
		         "pop of all their messages (a pop of one type may fit), until they are "
		         "popped or sessd runs with --max-frame %zu or more",
		         (unsigned long long)o.flash_sessions, (unsigned)max_frame, o.max_flash,
		         o.largest_flash, o.largest_flash * 2);
}

/*
 * --max-client-memory not given: its default, but at most what is left of a quarter of
 * ${limit} (what the process may use, from ${source}; 0: unknown) once --max-connections
 * connections hold their own state (SERVER_CONNECTION_BYTES each), and never under the floor
 * config chose (four frames). The default alone (256 MiB) is as much as a small memory cgroup
 * holds: with the sessions at their automatic half, clients that stall in the middle of large
 * frames, or that open every connection allowed and then stall, pushed the daemon past the
 * cgroup's limit, and the kernel killed it with every session. Warns when the connections'
 * own state alone passes that quarter. Returns the bound.
 */
static size_t server_auto_max_client_memory(const struct config *cfg, uint64_t limit,
                                            const char *source)
{
	uint64_t quarter = limit / SERVER_AUTO_CLIENT_MEMORY_SHARE,
	         held = (uint64_t)cfg->max_connections * SERVER_CONNECTION_BYTES, share;

	if (!cfg->max_client_memory_auto || limit == 0)
		return cfg->max_client_memory;
	if (held > quarter)
		log_warn(
		    "--max-connections %u: so many connections hold about %llu MiB of their own, "
		    "more than a quarter of %s (%llu MiB); with the sessions at their limit, "
		    "clients that open them all could get sessd killed for memory: lower "
		    "--max-connections to what the apps' pools need",
		    (unsigned)cfg->max_connections, (unsigned long long)(held >> 20), source,
		    (unsigned long long)(limit >> 20));
	share = quarter > held ? quarter - held : 0;
	if (share >= cfg->max_client_memory)
		return cfg->max_client_memory;
	if (share < cfg->max_client_memory_floor)
		share = cfg->max_client_memory_floor;
	log_info("--max-client-memory not given: connections' buffers may hold %llu MiB, what a "
	         "quarter of %s (%llu MiB) leaves beside %u connections, or four frames if that "
	         "is more",
	         (unsigned long long)(share >> 20), source, (unsigned long long)(limit >> 20),
	         (unsigned)cfg->max_connections);
	return (size_t)share;
}

static int server_listen(struct server *srv)
{
	const struct config *cfg = srv->cfg;

	srv->listeners = calloc(cfg->n_listens, sizeof(*srv->listeners));
	if (srv->listeners == NULL && cfg->n_listens > 0) {
		log_error("out of memory");
		return -1;
	}
	for (size_t i = 0; i < cfg->n_listens; i++) {
		srv->listeners[i] = listener_new(srv->base, &cfg->listens[i], cfg->tcp_keepalive_s,
		                                 server_on_accept, srv);
		if (srv->listeners[i] == NULL)
			return -1;
		srv->n_listeners++;
		log_info("listening on %s", listener_url(srv->listeners[i]));
		/* The operator must know what guards the sessions once the port leaves the host. */
		if (!listener_is_open_to_network(srv->listeners[i]))
			continue;
		if (srv->auth == NULL)
			log_warn("%s is not a loopback address and there is no --auth-file: anyone "
			         "who can reach it can read and write every session",
			         listener_url(srv->listeners[i]));
		if (srv->auth == NULL && srv->admin_auth == NULL)
			continue;
		if (cfg->auth_plain == AUTH_PLAIN_YES)
			log_warn(
			    "%s is not a loopback address and --auth-plain yes lets clients "
			    "there show the secret unsealed: whoever reads it can connect, and "
			    "pass for this server to sealed clients; seal the clients instead",
			    listener_url(srv->listeners[i]));
		else if (srv->auth != NULL)
			log_info("%s is not a loopback address: clients there must seal their "
			         "connections (--auth-plain %s)",
			         listener_url(srv->listeners[i]),
			         cfg->auth_plain == AUTH_PLAIN_NO ? "no" : "loopback");
		else
			/* Without --auth-file an app needs no secret: it gets in unsealed. */
			log_info(
			    "%s is not a loopback address: an admin there must seal its "
			    "connection (--auth-plain %s); apps get in without a secret, unsealed",
			    listener_url(srv->listeners[i]),
			    cfg->auth_plain == AUTH_PLAIN_NO ? "no" : "loopback");
	}
	return 0;
}

/*
 * server_hold_sighup():
 * Block SIGHUP in the calling thread (and the threads it starts) until server_new has the
 * loop's handler for it: one that comes while the data loads stays pending, and is acted on
 * once sessd serves. Call it before anything else that may take long. Never fails.
 */
void server_hold_sighup(void)
{
	sigset_t hup;

	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &hup, NULL);
}

/* Let through the SIGHUP that server_hold_sighup held: the loop's handler takes it now. */
static void server_release_sighup(void)
{
	sigset_t hup;

	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	pthread_sigmask(SIG_UNBLOCK, &hup, NULL);
}

static int server_events(struct server *srv)
{
	struct timeval zero = {0, 0}, second = {1, 0};

	srv->sigterm = evsignal_new(srv->base, SIGTERM, server_on_signal, srv);
	srv->sigint = evsignal_new(srv->base, SIGINT, server_on_signal, srv);
	srv->sighup = evsignal_new(srv->base, SIGHUP, server_on_sighup, srv);
	srv->sigusr1 = evsignal_new(srv->base, SIGUSR1, server_on_sigusr, srv);
	srv->sigusr2 = evsignal_new(srv->base, SIGUSR2, server_on_sigusr, srv);
	srv->expire_timer = evtimer_new(srv->base, server_on_expire, srv);
	srv->drain_timer = evtimer_new(srv->base, server_on_drain_timeout, srv);
	if (srv->sigterm == NULL || srv->sigint == NULL || srv->sighup == NULL ||
	    srv->sigusr1 == NULL || srv->sigusr2 == NULL || srv->expire_timer == NULL ||
	    srv->drain_timer == NULL)
		goto fail;
	if (evsignal_add(srv->sigterm, NULL) == -1 || evsignal_add(srv->sigint, NULL) == -1 ||
	    evsignal_add(srv->sighup, NULL) == -1 || evsignal_add(srv->sigusr1, NULL) == -1 ||
	    evsignal_add(srv->sigusr2, NULL) == -1 || evtimer_add(srv->expire_timer, &zero) == -1)
		goto fail;
	srv->tick_timer = event_new(srv->base, -1, EV_PERSIST, server_on_tick, srv);
	if (srv->tick_timer == NULL || evtimer_add(srv->tick_timer, &second) == -1)
		goto fail;
	if (srv->persist != NULL) {
		srv->persist_wake = event_new(srv->base, persist_wake_fd(srv->persist),
		                              EV_READ | EV_PERSIST, server_on_persist_wake, srv);
		if (srv->persist_wake == NULL || event_add(srv->persist_wake, NULL) == -1)
			goto fail;
	}
	/* The handler is in place: a SIGHUP held since startup (a secret rotated during the
	 * load) reaches the loop now, and its first turn reads the secrets again. */
	server_release_sighup();
	return 0;

fail:
	log_error("cannot set up the event loop's events");
	return -1;
}

struct server *server_new(const struct config *cfg, bool *config_fault)
{
	struct store_config store_cfg;
	struct dispatch_config dispatch_cfg;
	struct conn_config conn_cfg;
	struct server *srv;
	uint64_t max_memory, process_limit = 0;
	size_t max_client_memory;
	char limit_source[64] = "";

	*config_fault = false;
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		log_error("out of memory");
		return NULL;
	}
	srv->cfg = cfg;
	server_fit_fd_limit(cfg);
	/* Allowed (tests fill a small limit on purpose), but as a typo it refuses every write. */
	if (cfg->max_memory > 0 && cfg->max_memory < SERVER_SMALL_MAX_MEMORY)
		log_warn(
		    "--max-memory is %llu bytes, under 1 MiB: about every write will be refused "
		    "with NO_MEMORY (a size takes a K, M or G suffix, as in 100M)",
		    (unsigned long long)cfg->max_memory);
	server_tune_malloc();
	srv->stats.started_mono_ms = (uint64_t)(mono_ns() / 1000000L);
	srv->base = event_base_new();
	if (srv->base == NULL) {
		log_error("cannot create the event loop");
		goto fail;
	}

	/* Before the data directory, whose replay may take seconds: a bad file fails at once. */
	/* The secrets' files as configured cannot serve: exit status 2, as for --key-file, so
	 * that the unit does not restart into the same refusal (an I/O error may pass: 1). */
	if (server_check_apart_from_key(cfg->key_file, cfg->auth_file, "--auth-file") == -1 ||
	    server_check_apart_from_key(cfg->key_file, cfg->admin_auth_file, "--admin-auth-file") ==
	        -1) {
		*config_fault = true;
		goto fail;
	}
	if (cfg->auth_file != NULL) {
		srv->auth = auth_new(cfg->auth_file);
		if (srv->auth == NULL) {
			*config_fault = errno == ENOKEY;
			goto fail;
		}
		log_info("clients must show the secret of %s", cfg->auth_file);
	}
	if (cfg->admin_auth_file != NULL) {
		srv->admin_auth = auth_new(cfg->admin_auth_file);
		if (srv->admin_auth == NULL) {
			*config_fault = errno == ENOKEY;
			goto fail;
		}
		if (srv->auth != NULL && auth_same_secret(srv->auth, srv->admin_auth)) {
			log_error("--admin-auth-file %s holds the same secret as --auth-file %s: "
			          "every app would be an admin; give the admin a secret of its own",
			          cfg->admin_auth_file, cfg->auth_file);
			*config_fault = true;
			goto fail;
		}
		if (srv->auth != NULL) {
			auth_keep_apart(srv->auth, srv->admin_auth);
			auth_keep_apart(srv->admin_auth, srv->auth);
		}
		log_info("only clients that show the secret of %s may LIST, NAMESPACES and CLEAR",
		         cfg->admin_auth_file);
		server_check_admin_file(cfg->admin_auth_file);
	}

	memset(&store_cfg, 0, sizeof(store_cfg));
	/* A limit of its own choosing applies once the saved sessions are in (see
	 * server_auto_max_memory). A given one applies while they load, so that the replay
	 * reclaims what had expired where the daemon did, and is lifted for the rest of the
	 * load when they do not fit (persist_open; server_given_max_memory). */
	store_cfg.max_bytes = (size_t)cfg->max_memory;
	/* No flash limit while the saved sessions load: one lowered --max-frame must not make
	 * the log unreadable. It is set below. */
	store_cfg.max_flash_bytes = 0;
	srv->store = store_new(&store_cfg);
	if (srv->store == NULL) {
		log_error("out of memory for the store");
		goto fail;
	}
	if (cfg->data_dir != NULL) {
		struct persist_config pcfg;

		memset(&pcfg, 0, sizeof(pcfg));
		pcfg.data_dir = cfg->data_dir;
		pcfg.fsync = cfg->fsync;
		pcfg.key_file = cfg->key_file;
		pcfg.snapshot_log_bytes = cfg->snapshot_log_bytes;
		pcfg.snapshot_idle_ms = (uint64_t)cfg->snapshot_idle_s * 1000u;
		srv->persist = persist_open(&pcfg, srv->store, wall_ms());
		if (srv->persist == NULL) {
			*config_fault = errno == ENOKEY;
			log_error("cannot open the data directory %s", cfg->data_dir);
			goto fail;
		}
		log_info("sessions are kept in %s", cfg->data_dir);
		server_warn_oversized(srv->store, cfg->max_frame, wall_ms());
	} else {
		log_info("memory-only: sessions do not survive a restart");
	}
	store_set_max_flash_bytes(srv->store, cfg->max_frame / 2);
	if ((cfg->max_memory_auto || cfg->max_client_memory_auto) &&
	    config_memory_limit("", &process_limit, limit_source, sizeof(limit_source)) == -1)
		process_limit = 0;
	max_memory = cfg->max_memory_auto
	                 ? server_auto_max_memory(srv->store, process_limit, limit_source)
	                 : server_given_max_memory(srv->store, cfg->max_memory);
	store_set_max_bytes(srv->store, (size_t)max_memory);
	/* Not before: what the data directory held counts as read (store_mark_unread). */
	store_mark_unread(srv->store);
	max_client_memory = server_auto_max_client_memory(cfg, process_limit, limit_source);

	memset(&dispatch_cfg, 0, sizeof(dispatch_cfg));
	dispatch_cfg.max_frame = cfg->max_frame;
	dispatch_cfg.max_bytes = max_memory;
	dispatch_cfg.drop_unread = cfg->drop_unread;
	dispatch_cfg.max_connections = cfg->max_connections;
	dispatch_cfg.max_client_bytes = max_client_memory;
	dispatch_cfg.auth = srv->auth;
	dispatch_cfg.admin_auth = srv->admin_auth;
	dispatch_cfg.plain = cfg->auth_plain;
	dispatch_cfg.retire = server_on_retire;
	dispatch_cfg.retire_arg = srv;
	srv->dispatch = dispatch_new(&dispatch_cfg, srv->store, srv->persist, &srv->stats);
	if (srv->dispatch == NULL) {
		log_error("out of memory");
		goto fail;
	}

	memset(&conn_cfg, 0, sizeof(conn_cfg));
	conn_cfg.max_frame = cfg->max_frame;
	conn_cfg.output_high_bytes = max_client_memory / 4 < SERVER_OUTPUT_HIGH_BYTES
	                                 ? max_client_memory / 4
	                                 : SERVER_OUTPUT_HIGH_BYTES;
	conn_cfg.close_timeout_s = SERVER_CLOSE_TIMEOUT_S;
	conn_cfg.hello_timeout_s = cfg->hello_timeout_s;
	conn_cfg.max_client_bytes = max_client_memory;
	conn_cfg.max_connections = cfg->max_connections;
	conn_cfg.spare_sockets = SERVER_DISPLACE_SLACK;
	conn_cfg.turn_output_bytes = max_client_memory / 8 < SERVER_TURN_OUTPUT_BYTES
	                                 ? max_client_memory / 8
	                                 : SERVER_TURN_OUTPUT_BYTES;
	conn_cfg.on_frame = server_on_frame;
	conn_cfg.on_prefetch = server_on_prefetch;
	conn_cfg.on_reply_bound = server_on_reply_bound;
	conn_cfg.on_reply_only = server_on_reply_only;
	conn_cfg.on_takes_for_client = server_on_takes_for_client;
	conn_cfg.on_closed = server_on_closed;
	conn_cfg.on_io = server_on_io;
	conn_cfg.arg = srv;
	conn_set_init(&srv->conns, &conn_cfg);
	srv->conns_ready = true;

	if (server_events(srv) == -1 || server_listen(srv) == -1)
		goto fail;
	if (cfg->ready_file != NULL && write_ready_file(srv) == -1)
		goto fail;
	log_info(DISPATCH_SERVER_NAME " ready (server id %s, max frame %u bytes)",
	         dispatch_server_id(srv->dispatch), cfg->max_frame);
	notify_systemd("READY=1");
	return srv;

fail:
	/* A start that fails leaves nothing it made: the runtime and data directories too. */
	for (size_t i = 0; i < srv->n_listeners; i++)
		listener_undo(srv->listeners[i]);
	srv->n_listeners = 0;
	persist_undo(srv->persist);
	srv->persist = NULL;
	server_free(srv);
	return NULL;
}

int server_run(struct server *srv)
{
	int flags, rc;

	/* One turn: the ready callbacks read, server_after_turn handles what they read (replies
	 * pile up in the connections' outputs), commits, and writes them all. */
	while (!srv->done) {
		/* Replies queued by the last flush (a client resumed), and requests put off to
		 * the next turn (a sealed HELLO, a LIST page, a SET_IF's hash), must not wait
		 * for I/O; once none waits, nothing is handed again. */
		flags = EVLOOP_ONCE;
		if (conn_set_has_pending(&srv->conns) || conn_set_has_held(&srv->conns) ||
		    conn_set_has_unread(&srv->conns) ||
		    (dispatch_wants_next_turn(srv->dispatch) && conn_set_has_waiting(&srv->conns)))
			flags |= EVLOOP_NONBLOCK;
		rc = event_base_loop(srv->base, flags);
		if (rc == -1) {
			log_error("the event loop failed");
			server_log_held_back(srv, true);
			return -1;
		}
		server_after_turn(srv);
		end_turn(srv);
		if (rc == 1 && !conn_set_has_pending(&srv->conns))
			break; /* nothing left to wait for */
	}
	server_log_held_back(srv, true);
	srv->drained_ns = mono_ns();
	return 0;
}

/*
 * Let go of the loop's signal handlers, last of all: freeing an event puts back the action the
 * signal had before, which for SIGTERM, SIGINT and SIGHUP is to kill. Freed first, as they
 * were, they left the rest of a stop (up to SNAPSHOT_STOP_WAIT_MS for a snapshot's writer, the
 * log's last sync, freeing the store) to be cut short by a `systemctl reload` or a second
 * Ctrl-C, exit status 129 or 130 without the last sync. Here every other thread has been
 * joined (trim_join, persist_free), so blocking the three in this one drops any that comes
 * from now on, as sessd(8) promises of SIGHUP. Till here the loop's handlers caught them (a
 * stop under way ignores another SIGTERM or SIGINT).
 */
static void server_free_signal_events(struct server *srv)
{
	struct event *events[] = {srv->sigterm, srv->sigint, srv->sighup, srv->sigusr1,
	                          srv->sigusr2};
	sigset_t stops;

	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stops, NULL);
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
		if (events[i] != NULL)
			event_free(events[i]);
}

/*
 * SERVER_FREES_STORE: whether server_free frees the store session by session. It is only ever
 * called on the way out of the process, which gives all of the heap back at once: walking a
 * million sessions to free them took 1.2 s of CPU and most of a stop's wall time (every page
 * of the store read and written again, far slower when they are swapped out or still shared
 * with a snapshot writer's fork), while systemd and the apps waited for the socket to come
 * back. A sanitizer build still frees everything, so that LeakSanitizer's check at every
 * daemon's exit in the tests keeps covering the store; gcc says so with __SANITIZE_ADDRESS__,
 * clang only through __has_feature (see tests/asan.h). -DSERVER_FREES_STORE=1 asks for it in
 * any build (another leak checker, valgrind).
 */
#ifndef SERVER_FREES_STORE
#if defined(__SANITIZE_ADDRESS__)
#define SERVER_FREES_STORE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define SERVER_FREES_STORE 1
#endif
#endif
#endif
#ifndef SERVER_FREES_STORE
#define SERVER_FREES_STORE 0
#endif

void server_free(struct server *srv)
{
	int64_t closing_ns, freeing_ns;

	if (srv == NULL)
		return;
	server_close_listeners(srv);
	/* A script waiting for the next start's file must not read this one's ports; a daemon
	 * started meanwhile with the same path wrote its own, which stays. */
	if (srv->ready_written)
		remove_ready_file(srv);
	trim_join(srv, true);
	if (srv->conns_ready)
		conn_set_finish(&srv->conns);
	if (srv->expire_timer != NULL)
		event_free(srv->expire_timer);
	if (srv->tick_timer != NULL)
		event_free(srv->tick_timer);
	if (srv->persist_wake != NULL)
		event_free(srv->persist_wake);
	if (srv->drain_timer != NULL)
		event_free(srv->drain_timer);
	dispatch_free(srv->dispatch);
	auth_free(srv->admin_auth);
	auth_free(srv->auth);
	closing_ns = mono_ns();
	persist_free(srv->persist);
	freeing_ns = mono_ns();
	if (SERVER_FREES_STORE)
		store_free(srv->store);
	/* Where a slow stop went (bench/restart reads it; a test, which build freed the
	 * store). */
	if (srv->stop_ns != 0 && srv->drained_ns != 0)
		log_debug("stop: %lld ms to drain, %lld ms to close the data directory (a "
		          "snapshot's writer, the log's last sync), %lld ms to free the store%s",
		          (long long)((srv->drained_ns - srv->stop_ns) / 1000000),
		          (long long)((freeing_ns - closing_ns) / 1000000),
		          (long long)((mono_ns() - freeing_ns) / 1000000),
		          SERVER_FREES_STORE ? "" : " (left to the exit)");
	server_free_signal_events(srv);
	if (srv->base != NULL)
		event_base_free(srv->base);
	free(srv);
}
