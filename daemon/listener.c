/*
 * Listening sockets. See listener.h.
 */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define LISTENER_BACKLOG 1024
/* After running out of descriptors, accepting again at once would spin; wait a little. */
#define LISTENER_RETRY_MS 100
/* While accepts keep failing (every LISTENER_RETRY_MS), say so at most this often. */
#define LISTENER_ERROR_LOG_S 10
/* Connections one readiness of the listening socket accepts at most; the rest of the backlog
 * waits for the next loop turns (the socket stays readable). Taking the whole backlog at once
 * made a connect flood's turn take up to 1.4 s (accept4, a connection's setup, its events)
 * while every client waited. */
#define LISTENER_ACCEPTS_PER_TURN 64
/* The kernel's room for a TCP connection's bytes each way (bound_kernel_buffers): 256 KiB once
 * the kernel doubles it, what a 10 Gbit/s link with a 0.2 ms round trip keeps in flight. */
#define LISTENER_TCP_BUFFER_BYTES (128 * 1024)

struct listener {
	evutil_socket_t fd;
	struct event *accept_ev; /* EV_READ | EV_PERSIST on fd, deleted while retry waits */
	struct event *retry;
	listener_accept_fn on_accept;
	void *arg;
	/* Unix: the path to remove on close, "" for TCP. */
	char path[sizeof(((struct config_listen *)0)->path)];
	/* The runtime directory this listener's start created for its socket (listener_undo
	 * removes it), "" when it found the directory there or had none to make. */
	char made_dir[sizeof(((struct config_listen *)0)->make_dir)];
	/* "unix:PATH" is the longest form ("tcp://[HOST]:PORT" is shorter): peer names fit. */
	char url[sizeof("unix:") + sizeof(((struct config_listen *)0)->path)];
	struct log_every accept_errors;
	int last_error;  /* the errno of the last failed accept, for the count left at close */
	int keepalive_s; /* TCP: idle seconds before a connection is probed; 0: never */
	bool loopback;   /* TCP on a loopback address */
};

/* Tags that keep the kinds of source apart (an IPv6 /64 under ff00::/8 is multicast, never a
 * peer). */
#define SOURCE_IPV4 0xff01000000000000ull
#define SOURCE_UID  0xff02000000000000ull
#define OWNER_PID   0xff03000000000000ull

/*
 * The source key of the connection accepted from ${sa} (see listener_accept_fn); ${cred}: a
 * Unix peer's credentials, NULL when they cannot be had.
 */
static uint64_t source_of(const struct sockaddr *sa, int socklen, const struct ucred *cred)
{
	uint64_t key = 0;

	if (sa->sa_family == AF_INET && socklen >= (int)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		key = SOURCE_IPV4 | ntohl(sin->sin_addr.s_addr);
	} else if (sa->sa_family == AF_INET6 && socklen >= (int)sizeof(struct sockaddr_in6)) {
		/* Never IPv4-mapped: IPv6 listeners are IPV6_V6ONLY (bind_tcp). */
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

		for (int i = 0; i < 8; i++)
			key = key << 8 | a[i];
	} else if (sa->sa_family == AF_UNIX && cred != NULL) {
		key = SOURCE_UID | (uint32_t)cred->uid;
	}
	return key;
}

/*
 * The name of the peer at ${sa}, accepted on ${l}, into ${out} (see listener_accept_fn). A Unix
 * peer has no address: its pid and uid tell it apart.
 */
static void peer_name(const struct listener *l, const struct sockaddr *sa, int socklen,
                      const struct ucred *cred, char *out, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET && socklen >= (int)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(out, size, "%s:%u", host, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6 && socklen >= (int)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(out, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else if (cred != NULL) {
		snprintf(out, size, "pid %d (uid %u) on %s", (int)cred->pid, (unsigned)cred->uid,
		         l->url);
	} else {
		snprintf(out, size, "a client on %s", l->url);
	}
}

static void listener_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	(void)fd, (void)what;
	if (event_add(l->accept_ev, NULL) == -1)
		log_warn("cannot watch %s again", l->url);
}

/* accept(2) failed on ${l} with ${err}, not for a reason that passes at once. */
static void listener_on_error(struct listener *l, int err)
{
	struct timeval tv = {0, LISTENER_RETRY_MS * 1000};
	uint64_t failures;

	/* Out of descriptors is a state that lasts: one line per episode, not ten a second. */
	failures = log_every_due(&l->accept_errors, 1, LISTENER_ERROR_LOG_S);
	if (failures > 0)
		log_warn("accept on %s: %s; accepting again every %d ms (%llu failure(s) since "
		         "the last report, reported at most every %d s)",
		         l->url, strerror(err), LISTENER_RETRY_MS, (unsigned long long)failures,
		         LISTENER_ERROR_LOG_S);
	l->last_error = err;
	event_del(l->accept_ev);
	evtimer_add(l->retry, &tv);
}

/*
 * Say the failed accepts of ${l} that the rate limit holds back and that are due: all of them
 * when ${stopping} (the listener closes), else those whose period is over. Unlike
 * listener_on_error's line, this one does not say accepts are retried: by now they may
 * succeed again.
 */
static void say_held_back(struct listener *l, bool stopping)
{
	uint64_t failures = log_every_held(&l->accept_errors, LISTENER_ERROR_LOG_S, stopping);

	if (failures > 0)
		log_warn("accept on %s: %s (%llu failure(s) since the last report)", l->url,
		         strerror(l->last_error), (unsigned long long)failures);
}

/* Make room for a Unix socket at ${path}: refuse a live socket or another kind of file. */
static int unix_clear_path(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		log_error("cannot inspect %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		log_error("%s exists and is not a socket; refusing to replace it", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_error("socket: %s", strerror(errno));
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (rc == 0) {
		struct ucred cred;
		socklen_t len = sizeof(cred);

		/* The listener's pid, as of its listen(2): this process when an earlier --listen
		 * reached the same socket by another path (config_parse refuses the same text). */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
		    cred.pid == getpid())
			log_error("%s is a socket this sessd already listens on: two --listen "
			          "options name the same socket",
			          path);
		else
			log_error("another daemon is listening on %s; not taking its socket", path);
		close(fd);
		return -1;
	}
	close(fd);
	if (errno != ECONNREFUSED) {
		log_error("cannot tell whether %s is in use: %s", path, strerror(errno));
		return -1;
	}
	log_info("replacing the stale socket %s", path);
	if (unlink(path) == -1 && errno != ENOENT) {
		log_error("cannot remove the stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Whether the runtime directory ${dir}, made or found for the default socket, is this user's
 * own: a directory (not a link), owned by the effective user (any, for root), that no one
 * else may write to. The default for a user without $XDG_RUNTIME_DIR is /tmp/sessd-UID, a
 * name any local user can take first: the socket would go into their directory, where they
 * can put one of their own in its place, and clients' sessions and secrets would reach
 * them. Logs why not. Returns 0 or -1.
 */
static int check_own_dir(const char *dir)
{
	struct stat st;

	if (lstat(dir, &st) == -1) {
		log_error("cannot look at %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || (st.st_uid != geteuid() && geteuid() != 0) ||
	    (st.st_mode & 022) != 0) {
		log_error("%s cannot hold sessd's socket: it is %s owned by uid %lu with mode %04o "
		          "(sessd runs as uid %lu), which another user may have made to catch this "
		          "daemon's clients; remove it, or give --listen",
		          dir, S_ISDIR(st.st_mode) ? "a directory" : "not a directory but a file",
		          (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777),
		          (unsigned long)geteuid());
		return -1;
	}
	return 0;
}

/*
 * Remove the runtime directory ${dir} that this start created, once its socket is gone: a
 * failed start leaves nothing it made. A directory something else has been put in meanwhile
 * is not emptied, only said.
 */
static void remove_made_dir(const char *dir)
{
	if (rmdir(dir) == -1 && errno != ENOENT)
		log_warn("cannot remove %s, which this failed start created: %s", dir,
		         strerror(errno));
}

/*
 * Bind the Unix socket of ${addr}, first creating its runtime directory when it has one and
 * that is missing; ${made_dir} says whether this call created it (on failure it has been
 * removed again). Returns the socket, or -1 after logging why.
 */
static evutil_socket_t bind_unix(const struct config_listen *addr, bool *made_dir)
{
	struct sockaddr_un sun;
	evutil_socket_t fd;

	*made_dir = false;
	if (addr->make_dir[0] != '\0') {
		if (mkdir(addr->make_dir, 0750) == 0)
			*made_dir = true;
		else if (errno != EEXIST) {
			log_error("cannot create %s: %s", addr->make_dir, strerror(errno));
			return -1;
		}
		if (check_own_dir(addr->make_dir) == -1)
			goto fail_dir;
	}
	if (unix_clear_path(addr->path) == -1)
		goto fail_dir;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_error("socket: %s", strerror(errno));
		goto fail_dir;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, addr->path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		log_error("cannot bind %s: %s", addr->path, strerror(errno));
		goto fail_close;
	}
	/* Group access is the knob for who may talk to the daemon; others never may. */
	if (chmod(addr->path, 0660) == -1) {
		log_error("cannot chmod %s: %s", addr->path, strerror(errno));
		goto fail_unlink;
	}
	return fd;

fail_unlink:
	unlink(addr->path);
fail_close:
	close(fd);
fail_dir:
	if (*made_dir)
		remove_made_dir(addr->make_dir);
	*made_dir = false;
	return -1;
}

/*
 * Whether ${ss} (AF_INET or AF_INET6) is a loopback address, reachable from this host only.
 * An IPv6 one is never IPv4-mapped (::ffff:127.0.0.1): config refuses such a --listen, and
 * an IPV6_V6ONLY listener (bind_tcp) takes no IPv4 peer; nor is one that a peer claims
 * taken as loopback, which would let in a secret sent plain under --auth-plain loopback.
 */
static bool is_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET)
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
}

/* Whether the peer at ${sa} accepted on ${l} is on this host (see listener_accept_fn). */
static bool is_local(const struct listener *l, const struct sockaddr *sa, int socklen)
{
	struct sockaddr_storage ss;

	if (l->path[0] != '\0')
		return true;
	if ((sa->sa_family != AF_INET || socklen < (int)sizeof(struct sockaddr_in)) &&
	    (sa->sa_family != AF_INET6 || socklen < (int)sizeof(struct sockaddr_in6)))
		return false;
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, sa, (size_t)socklen < sizeof(ss) ? (size_t)socklen : sizeof(ss));
	return is_loopback(&ss);
}

/*
 * Have the kernel probe the TCP connection ${fd} once it has been idle ${idle_s} seconds, and
 * reset it when 3 probes, a third of that apart, go unanswered. A web server that vanished (a
 * power loss, a partition) leaves connections that no read ever ends, each holding a slot of
 * --max-connections and its buffers; and the probes keep a NAT or load balancer between from
 * dropping a quiet pool connection (Azure's forgets one idle 4 minutes), which the next
 * request would otherwise find only by timing out. Best effort: a connection without probes
 * is served as before.
 */
static void keep_alive(evutil_socket_t fd, int idle_s)
{
	int on = 1, interval = idle_s / 3 > 0 ? idle_s / 3 : 1, count = 3;

	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) == 0) {
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof(idle_s));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
	}
}

/*
 * Hold the kernel's buffers of the TCP connection ${fd} to LISTENER_TCP_BUFFER_BYTES each way
 * (which the kernel doubles for its own bookkeeping). Left to grow with the connection, they
 * keep what --max-client-memory cannot see, charged to sessd's memory cgroup and to the host's
 * TCP memory (tcp_mem), whose limit then stalls every TCP socket on the host:
 * - replies the socket took and the client never read: up to tcp_wmem's 4 MiB, 3.7 MB for each
 *   connection whose client pipelined GETs of a large session (500 held 1.8 GB);
 * - requests sent while sessd does not read the connection (its replies unread, or the turn's
 *   budget spent): up to tcp_rmem's 32 MiB once a client sent fast enough before to grow the
 *   buffer, 4.7 MB a connection after 200 MB of SETs.
 * A Unix socket's are bounded already (wmem_default, 208 KiB). What the kernel does not take
 * stays in sessd's buffers or the client's, where the bound counts it or the client pays.
 * Best effort: a connection whose buffers cannot be set is served as before.
 */
static void bound_kernel_buffers(evutil_socket_t fd)
{
	int bytes = LISTENER_TCP_BUFFER_BYTES;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

/* Hand the connection ${fd} accepted on ${l} from ${sa} to the owner. */
static void hand_over(struct listener *l, evutil_socket_t fd, const struct sockaddr *sa,
                      int socklen)
{
	char name[LISTENER_PEER_NAME_BYTES];
	struct ucred cred;
	socklen_t len = sizeof(cred);
	bool have_cred =
	    sa->sa_family == AF_UNIX && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
	uint64_t source;

	if (sa->sa_family != AF_UNIX && l->keepalive_s > 0)
		keep_alive(fd, l->keepalive_s);
	if (sa->sa_family != AF_UNIX)
		bound_kernel_buffers(fd);
	peer_name(l, sa, socklen, have_cred ? &cred : NULL, name, sizeof(name));
	source = source_of(sa, socklen, have_cred ? &cred : NULL);
	l->on_accept(l->arg, fd, source, have_cred ? OWNER_PID | (uint32_t)cred.pid : source,
	             is_local(l, sa, socklen), name);
}

static void listener_on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;
	struct sockaddr_storage ss;
	socklen_t sslen;
	evutil_socket_t fd;

	(void)what;
	for (int i = 0; i < LISTENER_ACCEPTS_PER_TURN; i++) {
		sslen = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			/* A client that reset before its accept, or a signal: the next is there
			 * still; none waiting ends the turn's accepts. */
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				listener_on_error(l, errno);
			return;
		}
		hand_over(l, fd, (struct sockaddr *)&ss, (int)sslen);
	}
}

static evutil_socket_t bind_tcp(const struct config_listen *addr, char *url, size_t url_size,
                                bool *loopback)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	evutil_socket_t fd;
	int one = 1;
	bool v6 = strchr(addr->host, ':') != NULL;

	memset(&ss, 0, sizeof(ss));
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(addr->port);
		inet_pton(AF_INET6, addr->host, &s6->sin6_addr);
		sslen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(addr->port);
		inet_pton(AF_INET, addr->host, &s4->sin_addr);
		sslen = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_error("socket: %s", strerror(errno));
		return -1;
	}
	/* A restart must get its port back while old connections sit in TIME_WAIT. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* IPv6 only: an IPv4 peer of a dual-stack socket would come as an IPv4-mapped address,
	 * which source_of and is_loopback do not expect. */
	if (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1) {
		log_error("cannot make tcp://[%s]:%u IPv6-only: %s", addr->host, addr->port,
		          strerror(errno));
		goto fail_close;
	}
	if (bind(fd, (struct sockaddr *)&ss, sslen) == -1) {
		log_error("cannot bind tcp://%s%s%s:%u: %s", v6 ? "[" : "", addr->host,
		          v6 ? "]" : "", addr->port, strerror(errno));
		goto fail_close;
	}
	sslen = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
		log_error("getsockname: %s", strerror(errno));
		goto fail_close;
	}
	snprintf(url, url_size, "tcp://%s%s%s:%u", v6 ? "[" : "", addr->host, v6 ? "]" : "",
	         ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                  : ((struct sockaddr_in *)&ss)->sin_port));
	*loopback = is_loopback(&ss);
	return fd;

fail_close:
	close(fd);
	return -1;
}

struct listener *listener_new(struct event_base *base, const struct config_listen *addr,
                              int tcp_keepalive_s, listener_accept_fn on_accept, void *arg)
{
	struct listener *l;
	evutil_socket_t fd;
	bool made_dir;

	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		log_error("out of memory");
		return NULL;
	}
	l->on_accept = on_accept;
	l->arg = arg;
	l->keepalive_s = tcp_keepalive_s;
	if (addr->kind == CONFIG_LISTEN_UNIX) {
		fd = bind_unix(addr, &made_dir);
		if (fd == -1)
			goto fail_free;
		strcpy(l->path, addr->path);
		if (made_dir)
			strcpy(l->made_dir, addr->make_dir);
		snprintf(l->url, sizeof(l->url), "unix:%s", addr->path);
	} else {
		fd = bind_tcp(addr, l->url, sizeof(l->url), &l->loopback);
		if (fd == -1)
			goto fail_free;
	}
	l->retry = evtimer_new(base, listener_on_retry, l);
	if (l->retry == NULL) {
		log_error("out of memory");
		goto fail_close;
	}
	if (listen(fd, LISTENER_BACKLOG) == -1) {
		log_error("cannot listen on %s: %s", l->url, strerror(errno));
		goto fail_timer;
	}
	l->accept_ev = event_new(base, fd, EV_READ | EV_PERSIST, listener_on_accept, l);
	if (l->accept_ev == NULL || event_add(l->accept_ev, NULL) == -1) {
		log_error("cannot watch %s", l->url);
		goto fail_event;
	}
	l->fd = fd;
	return l;

fail_event:
	if (l->accept_ev != NULL)
		event_free(l->accept_ev);
fail_timer:
	event_free(l->retry);
fail_close:
	close(fd);
	if (l->path[0] != '\0')
		unlink(l->path);
	if (l->made_dir[0] != '\0')
		remove_made_dir(l->made_dir);
fail_free:
	free(l);
	return NULL;
}

void listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	/* Failures since the last report would otherwise go unsaid. */
	say_held_back(l, true);
	event_free(l->accept_ev);
	event_free(l->retry);
	close(l->fd);
	if (l->path[0] != '\0' && unlink(l->path) == -1 && errno != ENOENT)
		log_warn("cannot remove %s: %s", l->path, strerror(errno));
	free(l);
}

void listener_undo(struct listener *l)
{
	char made_dir[sizeof(l->made_dir)];

	if (l == NULL)
		return;
	strcpy(made_dir, l->made_dir);
	listener_free(l);
	if (made_dir[0] != '\0')
		remove_made_dir(made_dir);
}

void listener_log_due(struct listener *l)
{
	say_held_back(l, false);
}

const char *listener_url(const struct listener *l)
{
	return l->url;
}

bool listener_is_open_to_network(const struct listener *l)
{
	return l->path[0] == '\0' && !l->loopback;
}
