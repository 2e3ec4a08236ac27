/*
 * A model check of libsessd as an application uses it, while the daemon under it crashes
 * (SIGKILL), stops (SIGTERM), stalls (SIGSTOP past the clients' timeout) and restarts from its
 * --data-dir, and while the relays in front of its TCP port and its Unix socket (faultproxy.h)
 * cut, stall and swallow connections, and hold a sealed client's requests back past its timeout.
 * Users, one thread and one client each (libsessd(3): one client per thread), over Unix and TCP,
 * plain and sealed, each on sessions of their own, do gets, loads, sets, conditional saves and
 * touches, touches, destroys, flash pushes and pops, one at a time and in batches
 * (sessd_batch_run), and keep a model of what each answered call means: every answer
 * must be the model's (an acknowledged write is never lost, across kill -9 too; a flash is never
 * popped twice nor lost once its push was acknowledged), a call that failed may or may not have
 * been carried out unless its code says it was not (SESSD_ERR_CONNECT, SESSD_ERR_SHUTTING_DOWN),
 * every failure is a documented code with words that hold no session id, no call waits past what
 * libsessd(3) bounds it by, and each client works again once the daemon is back, without leaking a
 * descriptor or memory. The daemon's log must hold no session id (harness_stop).
 *
 * libfault/prefork runs the same under a pre-fork server: a worker forked once the clients are
 * open uses them (or, for half the users, clients it opens itself) on sessions of its own while
 * the parent goes on with them, and its exit must leave the parent's connections up.
 *
 * Its own meson suite, libfault, run by hand, not by CI: one seed of 3 s each. Longer runs
 * (bench/README.md, "libsessd under faults"): LIBFAULT_SEED=first seed, LIBFAULT_SEEDS=how
 * many, LIBFAULT_SECONDS=faults per seed.
 */
/* It defines poll() in place of libc's (wait_log): fortified, glibc's headers make poll an inline
 * wrapper, which clang will not have defined beside it (-Wstatic-in-inline, an error). */
#undef _FORTIFY_SOURCE

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "faultproxy.h"
#include "harness.h"
#include "leakcheck.h"
#include "sessd.h"

#define USERS        6
#define SESSIONS     4 /* per user */
#define TYPES        2
#define MAX_QUEUE    256  /* flash messages a model queue holds */
#define MAX_MSGS     4096 /* flash messages pushed per session and type */
#define TTL_MS       3600000u
#define TIMEOUT_MS   250
#define LONG_TIMEOUT 5000
#define AUTH_SECRET  "libfault-test-secret-0123456789ab"
/* What a call may take past libsessd(3)'s bound on a busy machine (CI runs two builds). */
#define SLACK_MS 1000
/* The kinds of fault one_fault chooses from, calm included. */
#define FAULTS 9

static const char *const flash_types[TYPES] = {"info", "error"};

/* How each user reaches the daemon: directly, or through a relay (faultproxy.h) in front of
 * its TCP port or its Unix socket. */
enum path { PATH_UNIX, PATH_TCP, PATH_PROXY, PATH_UNIX_PROXY };

static const struct {
	enum path path;
	bool sealed;
} user_kinds[USERS] = {
    {PATH_UNIX, false},  {PATH_UNIX, true},  {PATH_TCP, true},
    {PATH_PROXY, false}, {PATH_PROXY, true}, {PATH_UNIX_PROXY, true},
};

/* The relays: [0] for the plain TCP user, [1] for the sealed one, [2] for the sealed Unix one
 * (relay_of). The sealed paths may also hold their records back (FAULTPROXY_HOLD) to let them
 * through after the client gave up: RETIRE (sealed only) keeps them from being carried out
 * then. */
#define RELAYS 3

static int relay_of(int n)
{
	return user_kinds[n].path == PATH_UNIX_PROXY ? 2 : user_kinds[n].sealed ? 1 : 0;
}

static bool relayed(int n)
{
	return user_kinds[n].path == PATH_PROXY || user_kinds[n].path == PATH_UNIX_PROXY;
}

/* What the model knows of a session but its flashes: one state, or two after a change of
 * unknown outcome (before and after it), until a read tells which. */
struct core {
	bool exists;
	bool has_data;
	uint32_t version; /* the data's, when has_data */
};

struct queued {
	uint32_t msg;
	bool sure; /* its push was acknowledged and no pop or destroy of unknown outcome followed */
};

enum msg_fate { MSG_NONE, MSG_QUEUED, MSG_POPPED, MSG_GONE };

struct session {
	char id[SESSD_ID_LEN + 1];
	int ncand;
	struct core cand[4];
	uint32_t next_version;
	struct queued queue[TYPES][MAX_QUEUE];
	int queued[TYPES];
	uint32_t next_msg[TYPES];
	uint8_t fate[TYPES][MAX_MSGS];
};

struct user {
	int n;
	pthread_t thread;
	struct sessd_client *c;
	uint64_t rng;
	struct session s[SESSIONS];
	long calls, failures, worst_ms, t0;
	long kept_pops; /* pops that timed out while sessd was stopped: their messages stay */
	long batches, batch_requests, batch_unanswered; /* batch_step's runs and requests */
	long term_window; /* term_window when the call being timed started */
	long codes[128];
	char fail[1024];
};

static struct harness_daemon daemon_;
static struct faultproxy proxies[RELAYS];
static char work_dir[64], auth_path[128], data_dir[128], relay_path[128];
static const char *daemon_args[6];
static struct user users[USERS];
static atomic_bool stop_users, failed;
/* sessd is stopped (SIGSTOP) and has read nothing since: set once it has stopped, cleared
 * before it goes on. */
static atomic_bool stalled;
/* Nonzero while sessd is stopping with SIGTERM and restarting, a new number each time, when
 * no other fault is in place: a call made within one window must fail only with
 * SESSD_ERR_CONNECT or SESSD_ERR_SHUTTING_DOWN (libsessd(3), RECONNECTION). */
static atomic_long term_window;

static uint64_t next_rand(uint64_t *x)
{
	/* xorshift64*: a seed replays the same choices. */
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 2685821657736338717ull;
}

static unsigned pick(uint64_t *x, unsigned n)
{
	return (unsigned)(next_rand(x) >> 33) % n;
}

static void start_all(void)
{
	snprintf(work_dir, sizeof(work_dir), "/tmp/sessd-libfault-XXXXXX");
	cr_assert_not_null(mkdtemp(work_dir));
	snprintf(auth_path, sizeof(auth_path), "%s/secret", work_dir);
	snprintf(data_dir, sizeof(data_dir), "%s/data", work_dir);
	snprintf(relay_path, sizeof(relay_path), "%s/relay.sock", work_dir);
	cr_assert_eq(mkdir(data_dir, 0700), 0);
	harness_write_secret(auth_path, AUTH_SECRET, 0600);
	daemon_args[0] = "--auth-file";
	daemon_args[1] = auth_path;
	daemon_args[2] = "--data-dir";
	daemon_args[3] = data_dir;
	daemon_args[4] = NULL;
	cr_assert_eq(harness_start(&daemon_, daemon_args), 0, "the daemon did not start");
	for (int k = 0; k < 2; k++)
		cr_assert_eq(faultproxy_start(&proxies[k], daemon_.tcp_url), 0,
		             "the relay did not start");
	cr_assert_eq(faultproxy_start_unix(&proxies[2], daemon_.unix_url, relay_path), 0,
	             "the Unix relay did not start");
}

static void stop_all(void)
{
	/* A relay forked after another holds a copy of its control socket: the first reads the
	 * end of that only once the later ones have gone. */
	for (int k = RELAYS - 1; k >= 0; k--)
		cr_expect_eq(faultproxy_stop(&proxies[k]), 0, "the relay ran cleanly");
	if (daemon_.pid > 0) {
		kill(daemon_.pid, SIGCONT);
		cr_expect_eq(harness_stop(&daemon_), 0, "sessd stopped cleanly, no id in its log");
	}
	harness_cleanup(&daemon_);
	harness_remove_tree(work_dir);
}

TestSuite(libfault, .init = start_all, .fini = stop_all, .timeout = 900);

/* The first failure of a user ends the run; the main thread reports it. */
static void user_fail(struct user *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void user_fail(struct user *u, const char *fmt, ...)
{
	va_list ap;
	int at;

	if (u->fail[0] != '\0')
		return;
	at = snprintf(u->fail, sizeof(u->fail), "user %d (%s%s): ", u->n,
	              user_kinds[u->n].path == PATH_UNIX    ? "unix"
	              : user_kinds[u->n].path == PATH_TCP   ? "tcp"
	              : user_kinds[u->n].path == PATH_PROXY ? "tcp via relay"
	                                                    : "unix via relay",
	              user_kinds[u->n].sealed ? ", sealed" : "");
	va_start(ap, fmt);
	vsnprintf(u->fail + at, sizeof(u->fail) - (size_t)at, fmt, ap);
	va_end(ap);
	atomic_store(&failed, true);
	atomic_store(&stop_users, true);
}

/* The data of version ${v} of session ${s} of user ${u}: its own bytes, of varied lengths. */
static size_t data_text(char *out, size_t size, int u, int s, uint32_t v)
{
	size_t len = (size_t)snprintf(out, size, "u%d-s%d-v%u:", u, s, v);
	size_t pad = (v * 7919u) % 3000u;

	for (size_t i = 0; i < pad && len + 1 < size; i++)
		out[len++] = (char)('a' + (v + i) % 26);
	out[len] = '\0';
	return len;
}

static int msg_text(char *out, size_t size, int u, int s, int t, uint32_t m)
{
	return snprintf(out, size, "u%d-s%d-t%d-m%u", u, s, t, m);
}

static void cand_add(struct session *s, struct core c)
{
	for (int i = 0; i < s->ncand; i++)
		if (s->cand[i].exists == c.exists && s->cand[i].has_data == c.has_data &&
		    (!c.has_data || s->cand[i].version == c.version))
			return;
	if (s->ncand < (int)(sizeof(s->cand) / sizeof(s->cand[0])))
		s->cand[s->ncand++] = c;
}

/* Every message of ${type}'s queue (all types: -1) may now be gone. */
static void queue_unsure(struct session *s, int type)
{
	for (int t = 0; t < TYPES; t++)
		if (type == -1 || type == t)
			for (int i = 0; i < s->queued[t]; i++)
				s->queue[t][i].sure = false;
}

/* The session is gone: so are its queues. */
static void queue_clear(struct session *s)
{
	for (int t = 0; t < TYPES; t++) {
		for (int i = 0; i < s->queued[t]; i++)
			s->fate[t][s->queue[t][i].msg] = MSG_GONE;
		s->queued[t] = 0;
	}
}

static void queue_add(struct user *u, struct session *s, int t, uint32_t m, bool sure)
{
	if (s->queued[t] == MAX_QUEUE) {
		user_fail(u, "model queue full");
		return;
	}
	s->queue[t][s->queued[t]++] = (struct queued){.msg = m, .sure = sure};
	s->fate[t][m] = MSG_QUEUED;
}

static int sure_count(const struct session *s, int t)
{
	int n = 0;

	for (int i = 0; i < s->queued[t]; i++)
		n += s->queue[t][i].sure;
	return n;
}

/* Whether sessd_errmsg words may be shown: no session id of any user in them. */
static bool words_hold_id(const char *words)
{
	for (int u = 0; u < USERS; u++)
		for (int i = 0; i < SESSIONS; i++)
			if (strstr(words, users[u].s[i].id) != NULL)
				return true;
	return false;
}

/* Whether a failed call's code says it was not carried out (libsessd(3), RECONNECTION). */
static bool not_carried_out(int rc)
{
	return rc == SESSD_ERR_CONNECT || rc == SESSD_ERR_SHUTTING_DOWN;
}

/* The codes a call may fail with while the daemon and the network fail under it. */
static bool fault_code(int rc)
{
	return rc == SESSD_ERR_CONNECT || rc == SESSD_ERR_SHUTTING_DOWN ||
	       rc == SESSD_ERR_TIMEOUT || rc == SESSD_ERR_CLOSED;
}

/*
 * Account for one call that returned ${rc} after ${took} ms: a failure must be a fault's code
 * with words that say something and hold no id, within the bound libsessd(3) gives a call.
 * Returns whether it failed (then the model treats it by not_carried_out).
 */
static bool call_failed(struct user *u, const char *what, int rc, long took)
{
	const char *words = sessd_errmsg(u->c);
	/* Connect, HELLO and reply, each within the timeout (libsessd(3), DESCRIPTION). */
	long bound = 3L * TIMEOUT_MS + SLACK_MS;

	u->calls++;
	if (took > u->worst_ms)
		u->worst_ms = took;
	if (took > bound)
		user_fail(u, "%s took %ld ms, over %ld (%s: %s)", what, took, bound,
		          sessd_strerror(rc), words);
	if (rc == SESSD_OK || rc == SESSD_NOT_FOUND || rc == SESSD_CONFLICT)
		return false;
	u->failures++;
	u->codes[rc & 127]++;
	if (!fault_code(rc))
		user_fail(u, "%s failed with %d (%s): %s", what, rc, sessd_strerror(rc), words);
	if (words[0] == '\0' || sessd_strerror(rc) == NULL)
		user_fail(u, "%s failed with %s and no words", what, sessd_strerror(rc));
	if (words_hold_id(words))
		user_fail(u, "%s: the words hold a session id: %s", what, words);
	if (rc == SESSD_ERR_CONNECT)
		harness_sleep_ms(10); /* as an application backs off while sessd is away */
	return true;
}

/* Run ${call}, a libsessd call of user ${u}'s, timed and accounted (call_failed). */
#define TIMED(u, what, call)                                                                       \
	((u)->t0 = harness_mono_ms(), (u)->term_window = atomic_load(&term_window),                \
	 timed_done((u), (what), (call)))

static int timed_done(struct user *u, const char *what, int rc)
{
	if ((rc == SESSD_ERR_CLOSED || rc == SESSD_ERR_TIMEOUT) && u->term_window != 0 &&
	    u->term_window == atomic_load(&term_window) && !relayed(u->n))
		user_fail(u, "%s failed with %s while sessd stopped with SIGTERM: %s", what,
		          sessd_strerror(rc), sessd_errmsg(u->c));
	call_failed(u, what, rc, harness_mono_ms() - u->t0);
	return rc;
}

/* Keep those candidates ${keep} says fit what a read saw; none left is a failure. */
static void cand_filter(struct user *u, struct session *s, int i, const char *what,
                        bool (*keep)(const struct core *, const void *), const void *arg)
{
	int n = 0;

	for (int k = 0; k < s->ncand; k++)
		if (keep(&s->cand[k], arg))
			s->cand[n++] = s->cand[k];
	if (n == 0)
		user_fail(
		    u, "session %d: %s, which no acknowledged change explains (model: %s, v%u)", i,
		    what,
		    s->cand[0].exists ? (s->cand[0].has_data ? "data" : "flashes only") : "none",
		    s->cand[0].version);
	else
		s->ncand = n;
	for (int k = 0; k < n; k++)
		if (s->cand[k].exists)
			return;
	if (n > 0)
		queue_clear(s);
}

static bool keep_version(const struct core *c, const void *arg)
{
	return c->has_data && c->version == *(const uint32_t *)arg;
}

static bool keep_no_data(const struct core *c, const void *arg)
{
	(void)arg;
	return !c->has_data;
}

static bool keep_exists(const struct core *c, const void *arg)
{
	return c->exists == *(const bool *)arg;
}

/* Check GET's (or LOAD's) data against the model. */
static void saw_data(struct user *u, struct session *s, int i, const void *data, size_t len)
{
	uint32_t v;
	char want[4096];
	int un, sn;

	if (sscanf(data, "u%d-s%d-v%u:", &un, &sn, &v) != 3 || un != u->n || sn != i) {
		user_fail(u, "session %d: GET gave another session's data: %.40s", i,
		          (const char *)data);
		return;
	}
	if (data_text(want, sizeof(want), u->n, i, v) != len || memcmp(want, data, len) != 0) {
		user_fail(u, "session %d: GET gave v%u torn or changed (%zu bytes)", i, v, len);
		return;
	}
	cand_filter(u, s, i, "GET found data", keep_version, &v);
}

/* Read the session until the model knows its state again (GET, then TTL for existence). */
static void resync(struct user *u, struct session *s, int i)
{
	void *data;
	size_t len;
	uint64_t ttl;
	bool exists;
	int rc;

	rc = TIMED(u, "get", sessd_get(u->c, s->id, strlen(s->id), &data, &len));
	if (rc == SESSD_OK) {
		saw_data(u, s, i, data, len);
		free(data);
	} else if (rc == SESSD_NOT_FOUND) {
		cand_filter(u, s, i, "GET found no data", keep_no_data, NULL);
	}
	if (rc != SESSD_OK && rc != SESSD_NOT_FOUND)
		return;
	rc = TIMED(u, "ttl", sessd_ttl(u->c, s->id, strlen(s->id), &ttl));
	if (rc == SESSD_OK || rc == SESSD_NOT_FOUND) {
		exists = rc == SESSD_OK;
		cand_filter(u, s, i, exists ? "TTL found it" : "TTL found none", keep_exists,
		            &exists);
	}
}

/* Check a pop of type ${t} that returned ${msgs} (their numbers) against the model queue. */
static void saw_pop(struct user *u, struct session *s, int i, int t, const uint32_t *msgs, size_t n)
{
	int at = 0;

	for (size_t k = 0; k < n; k++) {
		uint32_t m = msgs[k];
		int from = at;

		while (at < s->queued[t] && s->queue[t][at].msg != m)
			at++;
		if (at == s->queued[t]) {
			user_fail(u, "session %d: popped %s message %u %s", i, flash_types[t], m,
			          m >= MAX_MSGS                 ? "never pushed"
			          : s->fate[t][m] == MSG_POPPED ? "a second time"
			          : s->fate[t][m] == MSG_GONE   ? "after its session was destroyed"
			          : s->fate[t][m] == MSG_QUEUED ? "out of order"
			                                        : "never pushed");
			return;
		}
		for (int j = from; j < at; j++)
			if (s->queue[t][j].sure) {
				user_fail(u,
				          "session %d: %s message %u, acknowledged, lost before %u",
				          i, flash_types[t], s->queue[t][j].msg, m);
				return;
			}
		at++;
	}
	for (int j = at; j < s->queued[t]; j++)
		if (s->queue[t][j].sure) {
			user_fail(u, "session %d: %s message %u, acknowledged, not popped", i,
			          flash_types[t], s->queue[t][j].msg);
			return;
		}
	for (int j = 0; j < s->queued[t]; j++)
		s->fate[t][s->queue[t][j].msg] = MSG_GONE;
	for (size_t k = 0; k < n; k++)
		s->fate[t][msgs[k]] = MSG_POPPED;
	s->queued[t] = 0;
}

/* The message numbers of ${f}'s items of type ${t}, which must be ${u}'s of session ${i}. */
static size_t pop_numbers(struct user *u, int i, const struct sessd_flashes *f, int t,
                          uint32_t *out)
{
	size_t n = 0;

	for (size_t k = 0; k < f->count; k++) {
		int un, sn, tn;
		uint32_t m;

		if (strcmp(f->items[k].type, flash_types[t]) != 0)
			continue;
		if (sscanf((const char *)f->items[k].msg, "u%d-s%d-t%d-m%u", &un, &sn, &tn, &m) !=
		        4 ||
		    un != u->n || sn != i || tn != t) {
			user_fail(u, "session %d: popped another session's flash: %.40s", i,
			          (const char *)f->items[k].msg);
			return 0;
		}
		out[n++] = m;
	}
	return n;
}

static void do_pop(struct user *u, struct session *s, int i, int type)
{
	struct sessd_flashes *f = NULL;
	uint32_t msgs[MAX_QUEUE];
	struct core c = s->cand[0];
	/* A pop sent to a stopped sessd that times out is dropped unread when sessd goes on
	 * (libsessd(3), RECONNECTION: it finds the client gone), its messages kept. Not through
	 * the relay, which closes sessd's side as any proxy would, after passing the request. */
	bool kept = !relayed(u->n) && atomic_load(&stalled);
	int rc = TIMED(
	    u, "flash_pop",
	    sessd_flash_pop(u->c, s->id, strlen(s->id), type == -1 ? NULL : flash_types[type], &f));

	if (rc == SESSD_OK || rc == SESSD_NOT_FOUND) {
		if ((rc == SESSD_OK) != c.exists) {
			user_fail(u, "session %d: pop answered %s where the model has %s", i,
			          sessd_strerror(rc), c.exists ? "a session" : "none");
		} else if (rc == SESSD_OK) {
			for (int t = 0; t < TYPES; t++) {
				if (type != -1 && type != t)
					continue;
				saw_pop(u, s, i, t, msgs, pop_numbers(u, i, f, t, msgs));
			}
			if (type != -1)
				for (size_t k = 0; k < f->count; k++)
					if (strcmp(f->items[k].type, flash_types[type]) != 0)
						user_fail(u, "pop of %s gave a %s",
						          flash_types[type], f->items[k].type);
		}
		sessd_flashes_free(f);
		return;
	}
	if (f != NULL)
		user_fail(u, "a failed pop left a result");
	if (rc == SESSD_ERR_TIMEOUT && kept && atomic_load(&stalled))
		u->kept_pops++;
	else if (!not_carried_out(rc))
		queue_unsure(s, type);
}

/* One call of user ${u} on session ${i}, whose state the model knows. */
static void step(struct user *u, int i)
{
	struct session *s = &u->s[i];
	struct core c = s->cand[0], after = c;
	char text[4096], stale[4096];
	uint8_t tag[SESSD_TAG_BYTES];
	uint32_t v;
	void *data = NULL;
	size_t len, qlen;
	uint64_t flashes;
	unsigned op = pick(&u->rng, 100);
	int rc, t, want;

	if (op < 12) {
		resync(u, s, i);
		return;
	}
	if (op < 17) {
		flashes = UINT64_MAX;
		rc =
		    TIMED(u, "load", sessd_load(u->c, s->id, strlen(s->id), &data, &len, &flashes));
		if (rc == SESSD_OK) {
			uint64_t sure = 0, all = 0;

			for (t = 0; t < TYPES; t++) {
				sure += (uint64_t)sure_count(s, t);
				all += (uint64_t)s->queued[t];
			}
			saw_data(u, s, i, data, len);
			if (flashes < sure || flashes > all)
				user_fail(
				    u, "session %d: LOAD counts %llu flashes, the model %llu..%llu",
				    i, (unsigned long long)flashes, (unsigned long long)sure,
				    (unsigned long long)all);
			free(data);
		} else if (rc == SESSD_NOT_FOUND) {
			cand_filter(u, s, i, "LOAD found no data", keep_no_data, NULL);
		}
		return;
	}
	if (op < 35) {
		/* SET, or SET_IF with the tag of the data the model has (or a stale one). */
		bool cond = op >= 24, with_stale = op >= 32;

		v = s->next_version++;
		len = data_text(text, sizeof(text), u->n, i, v);
		after = (struct core){.exists = true, .has_data = true, .version = v};
		if (!cond) {
			rc = TIMED(u, "set",
			           sessd_set(u->c, s->id, strlen(s->id), text, len, TTL_MS));
			want = SESSD_OK;
		} else {
			size_t stale_len =
			    data_text(stale, sizeof(stale), u->n, i,
			              with_stale || !c.has_data ? v + 100000 : c.version);

			sessd_data_tag(stale, stale_len, tag);
			rc =
			    TIMED(u, "set_if",
			          sessd_set_if(u->c, s->id, strlen(s->id), text, len, TTL_MS, tag));
			want = !c.has_data  ? SESSD_NOT_FOUND
			       : with_stale ? SESSD_CONFLICT
			                    : SESSD_OK;
			if (want != SESSD_OK)
				after = c;
		}
	} else if (op < 50) {
		bool cond = op >= 43;

		if (!cond) {
			rc = TIMED(u, "touch", sessd_touch(u->c, s->id, strlen(s->id), TTL_MS));
			want = c.exists ? SESSD_OK : SESSD_NOT_FOUND;
		} else {
			len = data_text(text, sizeof(text), u->n, i,
			                c.has_data ? c.version : s->next_version + 100000);
			sessd_data_tag(text, len, tag);
			rc = TIMED(u, "touch_if",
			           sessd_touch_if(u->c, s->id, strlen(s->id), TTL_MS, tag));
			want = c.has_data ? SESSD_OK : SESSD_NOT_FOUND;
		}
	} else if (op < 57) {
		rc = TIMED(u, "destroy", sessd_destroy(u->c, s->id, strlen(s->id)));
		want = c.exists ? SESSD_OK : SESSD_NOT_FOUND;
		after = (struct core){0};
		if (rc == SESSD_OK || rc == SESSD_NOT_FOUND)
			queue_clear(s);
		else if (!not_carried_out(rc))
			queue_unsure(s, -1);
	} else if (op < 82) {
		bool existing = op >= 72;
		uint32_t m;

		t = (int)pick(&u->rng, TYPES);
		m = s->next_msg[t]++;
		if (m >= MAX_MSGS) {
			do_pop(u, s, i, -1);
			return;
		}
		len = (size_t)msg_text(text, sizeof(text), u->n, i, t, m);
		qlen = 0;
		if (existing)
			rc = TIMED(u, "flash_push_existing",
			           sessd_flash_push_existing(u->c, s->id, strlen(s->id),
			                                     flash_types[t], text, len, TTL_MS,
			                                     &qlen));
		else
			rc = TIMED(u, "flash_push",
			           sessd_flash_push(u->c, s->id, strlen(s->id), flash_types[t],
			                            text, len, TTL_MS, &qlen));
		want = existing && !c.has_data ? SESSD_NOT_FOUND : SESSD_OK;
		if (want == SESSD_OK)
			after.exists = true;
		if (rc == SESSD_OK &&
		    (qlen < (size_t)sure_count(s, t) + 1 || qlen > (size_t)s->queued[t] + 1))
			user_fail(u, "session %d: push gave queue length %zu, the model %d..%d", i,
			          qlen, sure_count(s, t) + 1, s->queued[t] + 1);
		if (want == SESSD_OK && (rc == SESSD_OK || !not_carried_out(rc)) &&
		    rc != SESSD_NOT_FOUND)
			queue_add(u, s, t, m, rc == SESSD_OK);
	} else {
		do_pop(u, s, i, pick(&u->rng, 3) == 0 ? -1 : (int)pick(&u->rng, TYPES));
		return;
	}
	if (rc == SESSD_OK || rc == SESSD_NOT_FOUND || rc == SESSD_CONFLICT) {
		if (rc != want)
			user_fail(u, "session %d: answered %s where the model says %s (%s)", i,
			          sessd_strerror(rc), sessd_strerror(want), sessd_errmsg(u->c));
		else
			s->cand[0] = after;
	} else if (!not_carried_out(rc)) {
		cand_add(s, after);
	}
}

/* What a batch asks of one session (batch_step), at most one request per session. */
enum batch_kind { BK_GET, BK_SET, BK_SET_IF, BK_TOUCH, BK_DESTROY, BK_PUSH, BK_POP, BK_KINDS };

struct batch_req {
	int i; /* the session */
	enum batch_kind kind;
	int want;          /* the answer the model expects */
	struct core after; /* the session's state once it is carried out */
	int t;             /* BK_PUSH, BK_POP: the flash type (BK_POP: -1 for all) */
	uint32_t m;        /* BK_PUSH: the message */
};

/*
 * Whether ${rc}, a batch request's status, is an answer: the request was carried out (or found
 * nothing to do) and the model knows what it did.
 */
static bool answered(int rc)
{
	return rc == SESSD_OK || rc == SESSD_NOT_FOUND || rc == SESSD_CONFLICT;
}

/* Queue on ${b} what ${r} asks of ${u}'s session r->i, with what the model expects. */
static int batch_queue(struct user *u, struct sessd_batch *b, struct batch_req *r)
{
	struct session *s = &u->s[r->i];
	struct core c = s->cand[0];
	char text[4096];
	uint8_t tag[SESSD_TAG_BYTES];
	size_t len, idl = strlen(s->id);
	uint32_t v;

	r->want = SESSD_OK;
	r->after = c;
	switch (r->kind) {
	case BK_GET:
		r->want = c.has_data ? SESSD_OK : SESSD_NOT_FOUND;
		return sessd_batch_get(b, s->id, idl);
	case BK_SET:
	case BK_SET_IF:
		v = s->next_version++;
		len = data_text(text, sizeof(text), u->n, r->i, v);
		r->after = (struct core){.exists = true, .has_data = true, .version = v};
		if (r->kind == BK_SET)
			return sessd_batch_set(b, s->id, idl, text, len, TTL_MS);
		{
			char old[4096];
			size_t old_len = data_text(old, sizeof(old), u->n, r->i,
			                           c.has_data ? c.version : v + 100000);

			sessd_data_tag(old, old_len, tag);
		}
		if (!c.has_data) {
			r->want = SESSD_NOT_FOUND;
			r->after = c;
		}
		return sessd_batch_set_if(b, s->id, idl, text, len, TTL_MS, tag);
	case BK_TOUCH:
		r->want = c.exists ? SESSD_OK : SESSD_NOT_FOUND;
		return sessd_batch_touch(b, s->id, idl, TTL_MS);
	case BK_DESTROY:
		r->want = c.exists ? SESSD_OK : SESSD_NOT_FOUND;
		r->after = (struct core){0};
		return sessd_batch_destroy(b, s->id, idl);
	case BK_PUSH:
		r->t = (int)pick(&u->rng, TYPES);
		r->m = s->next_msg[r->t];
		if (r->m >= MAX_MSGS) {
			r->kind = BK_POP;
			r->t = -1;
			return sessd_batch_flash_pop(b, s->id, idl, NULL);
		}
		s->next_msg[r->t]++;
		len = (size_t)msg_text(text, sizeof(text), u->n, r->i, r->t, r->m);
		r->after.exists = true;
		return sessd_batch_flash_push(b, s->id, idl, flash_types[r->t], text, len, TTL_MS);
	default:
		r->t = pick(&u->rng, 3) == 0 ? -1 : (int)pick(&u->rng, TYPES);
		r->want = c.exists ? SESSD_OK : SESSD_NOT_FOUND;
		return sessd_batch_flash_pop(b, s->id, idl, r->t == -1 ? NULL : flash_types[r->t]);
	}
}

/* Check request ${k} of ${b}, whose status is the answer ${rc}, against the model. */
static void batch_answer(struct user *u, const struct sessd_batch *b, size_t k,
                         const struct batch_req *r, int rc)
{
	struct session *s = &u->s[r->i];
	uint32_t msgs[MAX_QUEUE];
	const struct sessd_flashes *f;
	const void *data;
	size_t len;

	if (rc != r->want) {
		user_fail(
		    u,
		    "session %d: batch request %zu (kind %d) answered %s where the model says %s",
		    r->i, k, (int)r->kind, sessd_strerror(rc), sessd_strerror(r->want));
		return;
	}
	switch (r->kind) {
	case BK_GET:
		data = sessd_batch_data(b, k, &len);
		if (rc == SESSD_OK && data != NULL)
			saw_data(u, s, r->i, data, len);
		else if (rc == SESSD_OK)
			user_fail(u, "session %d: a batch GET answered OK with no data", r->i);
		else
			cand_filter(u, s, r->i, "a batch GET found no data", keep_no_data, NULL);
		return;
	case BK_DESTROY:
		queue_clear(s);
		break;
	case BK_PUSH:
		queue_add(u, s, r->t, r->m, true);
		break;
	case BK_POP:
		f = sessd_batch_flashes(b, k);
		if (rc == SESSD_OK && f == NULL) {
			user_fail(u, "session %d: a batch pop answered OK with no messages", r->i);
			return;
		}
		if (rc == SESSD_OK)
			for (int t = 0; t < TYPES; t++)
				if (r->t == -1 || r->t == t)
					saw_pop(u, s, r->i, t, msgs,
					        pop_numbers(u, r->i, f, t, msgs));
		return;
	default:
		break;
	}
	s->cand[0] = r->after;
}

/* A request of ${b} without an answer (${rc}): it may have been carried out unless rc says not. */
static void batch_unanswered(struct user *u, const struct batch_req *r, int rc)
{
	struct session *s = &u->s[r->i];

	if (not_carried_out(rc) || r->kind == BK_GET)
		return;
	if (r->kind == BK_POP) {
		queue_unsure(s, r->t);
		return;
	}
	if (r->kind == BK_DESTROY)
		queue_unsure(s, -1);
	if (r->kind == BK_PUSH)
		queue_add(u, s, r->t, r->m, false);
	if (r->want != SESSD_NOT_FOUND || r->kind == BK_DESTROY)
		cand_add(s, r->after);
}

/*
 * A batch (sessd_batch_run) of one request on each of some of ${u}'s sessions, each of
 * which the model knows: every status must be the model's answer, or a fault's code shared by
 * the first request without a reply and every one after it (libsessd(3), sessd_batch_run).
 */
static void batch_step(struct user *u)
{
	struct sessd_batch *b = sessd_batch_new(u->c);
	struct batch_req reqs[SESSIONS];
	size_t n = 0;
	int rc, first_unanswered = -1;

	if (b == NULL) {
		user_fail(u, "sessd_batch_new failed");
		return;
	}
	for (int i = 0; i < SESSIONS; i++) {
		if (u->s[i].ncand != 1 || pick(&u->rng, 4) == 0)
			continue;
		reqs[n] =
		    (struct batch_req){.i = i, .kind = (enum batch_kind)pick(&u->rng, BK_KINDS)};
		if (batch_queue(u, b, &reqs[n]) != (int)n) {
			user_fail(u, "queueing a batch request failed: %s", sessd_errmsg(u->c));
			goto out;
		}
		n++;
	}
	if (n == 0)
		goto out;
	rc = TIMED(u, "batch_run", sessd_batch_run(b));
	u->batches++;
	u->batch_requests += (long)n;
	for (size_t k = 0; k < n && u->fail[0] == '\0'; k++) {
		int st = sessd_batch_status(b, k);

		if (answered(st) && first_unanswered == -1) {
			batch_answer(u, b, k, &reqs[k], st);
			continue;
		}
		if (first_unanswered == -1)
			first_unanswered = (int)k;
		u->batch_unanswered++;
		if (rc == SESSD_OK || st != rc || !fault_code(st))
			user_fail(u,
			          "batch request %zu of %zu has status %s after %s, the run's %s",
			          k, n, sessd_strerror(st),
			          first_unanswered == (int)k ? "answers" : "a failure",
			          sessd_strerror(rc));
		batch_unanswered(u, &reqs[k], st);
	}
	if (rc != SESSD_OK && first_unanswered == -1 && u->fail[0] == '\0')
		user_fail(u, "the batch failed with %s, and every request has its answer",
		          sessd_strerror(rc));

out:
	sessd_batch_free(b);
}

static void *user_run(void *arg)
{
	struct user *u = arg;

	while (!atomic_load(&stop_users)) {
		int i = (int)pick(&u->rng, SESSIONS);

		if (u->s[i].ncand > 1)
			resync(u, &u->s[i], i);
		else if (pick(&u->rng, 8) == 0)
			batch_step(u);
		else
			step(u, i);
	}
	return NULL;
}

static const char *user_url(int n)
{
	switch (user_kinds[n].path) {
	case PATH_UNIX:
		return daemon_.unix_url;
	case PATH_TCP:
		return daemon_.tcp_url;
	default:
		return proxies[relay_of(n)].url;
	}
}

/* The options user ${n} connects with. */
static struct sessd_options user_options(int n)
{
	return (struct sessd_options){.timeout_ms = LONG_TIMEOUT,
	                              .client_name = "libfault-test",
	                              .auth = AUTH_SECRET,
	                              .auth_len = strlen(AUTH_SECRET),
	                              .plain_auth = !user_kinds[n].sealed};
}

static void users_connect(uint64_t seed)
{
	for (int n = 0; n < USERS; n++) {
		struct user *u = &users[n];
		struct sessd_options o = user_options(n);
		char why[SESSD_ERRMSG_SIZE];

		memset(u, 0, sizeof(*u));
		u->n = n;
		u->rng = seed * 1000003u + (uint64_t)n * 7919u + 1u;
		cr_assert_eq(sessd_connect_errbuf(user_url(n), &o, &u->c, why, sizeof(why)),
		             SESSD_OK, "connect %s: %s", user_url(n), why);
		for (int i = 0; i < SESSIONS; i++) {
			struct session *s = &u->s[i];

			cr_assert_eq(sessd_id_new(s->id), SESSD_OK);
			harness_note_secret(s->id, SESSD_ID_LEN);
			s->ncand = 1;
			s->cand[0] = (struct core){0};
		}
	}
}

static void daemon_down(void)
{
	int status;

	if (daemon_.pid > 0) {
		kill(daemon_.pid, SIGCONT);
		kill(daemon_.pid, SIGTERM);
		waitpid(daemon_.pid, &status, 0);
		daemon_.pid = 0;
	}
}

static void daemon_up(void)
{
	cr_assert_eq(harness_restart(&daemon_, daemon_args), 0, "the daemon did not restart");
}

/* Put ${dir} of every relay under ${mode}. Returns 0 or -1. */
static int relays_set(enum faultproxy_dir dir, enum faultproxy_mode mode, uint32_t arg)
{
	for (int k = 0; k < RELAYS; k++)
		if (faultproxy_set(&proxies[k], dir, mode, arg) == -1)
			return -1;
	return 0;
}

/* One fault, chosen by ${rng}, applied and lifted. */
static void one_fault(uint64_t *rng, long counts[FAULTS])
{
	static long term_windows;

	unsigned f = pick(rng, FAULTS);

	counts[f]++;
	switch (f) {
	case 0: /* a crash: what was acknowledged is in --data-dir */
		cr_assert_eq(harness_kill(&daemon_), 0);
		harness_sleep_ms(pick(rng, 200));
		daemon_up();
		break;
	case 1: /* a stop */
		atomic_store(&term_window, ++term_windows);
		daemon_down();
		harness_sleep_ms(pick(rng, 200));
		daemon_up();
		atomic_store(&term_window, 0);
		break;
	case 2: /* a stall past the clients' timeout */
		cr_assert_eq(harness_sigstop(daemon_.pid), 0);
		atomic_store(&stalled, true);
		harness_sleep_ms(TIMEOUT_MS + (long)pick(rng, 3 * TIMEOUT_MS));
		atomic_store(&stalled, false);
		kill(daemon_.pid, SIGCONT);
		break;
	case 3: /* a connection cut mid-frame, either way */
	case 4:
		cr_assert_eq(relays_set(f == 3 ? FAULTPROXY_UP : FAULTPROXY_DOWN, FAULTPROXY_CUT,
		                        pick(rng, 300)),
		             0);
		harness_sleep_ms(20 + pick(rng, 100));
		cr_assert_eq(
		    relays_set(f == 3 ? FAULTPROXY_UP : FAULTPROXY_DOWN, FAULTPROXY_PASS, 0), 0);
		break;
	case 5: /* replies held past the timeout, then let go */
		cr_assert_eq(relays_set(FAULTPROXY_DOWN, FAULTPROXY_STALL, 0), 0);
		harness_sleep_ms(TIMEOUT_MS + (long)pick(rng, 2 * TIMEOUT_MS));
		cr_assert_eq(relays_set(FAULTPROXY_DOWN, FAULTPROXY_PASS, 0), 0);
		break;
	case 6: /* a path that swallows what it is sent */
		cr_assert_eq(relays_set(FAULTPROXY_UP, FAULTPROXY_BLACKHOLE, pick(rng, 100)), 0);
		harness_sleep_ms(TIMEOUT_MS + (long)pick(rng, TIMEOUT_MS));
		cr_assert_eq(relays_set(FAULTPROXY_UP, FAULTPROXY_PASS, 0), 0);
		break;
	case 7: /* the sealed paths hold what they were sent, and let it through later */
		for (int k = 1; k < RELAYS; k++)
			cr_assert_eq(faultproxy_set(&proxies[k], FAULTPROXY_UP, FAULTPROXY_HOLD, 0),
			             0);
		harness_sleep_ms(TIMEOUT_MS + (long)pick(rng, 2 * TIMEOUT_MS));
		for (int k = 1; k < RELAYS; k++)
			cr_assert_eq(faultproxy_set(&proxies[k], FAULTPROXY_UP, FAULTPROXY_PASS, 0),
			             0);
		break;
	default: /* calm */
		harness_sleep_ms(50 + pick(rng, 200));
		break;
	}
}

/*
 * After the faults: each user, with a long timeout, must reach the model's state exactly.
 * Returns NULL, or the first failure's words. Asserts nothing, so a forked worker can use it.
 */
static const char *verify_users(const char *when)
{
	for (int n = 0; n < USERS; n++) {
		struct user *u = &users[n];

		if (sessd_set_timeout(u->c, LONG_TIMEOUT) != SESSD_OK)
			user_fail(u, "sessd_set_timeout failed");
		for (int i = 0; i < SESSIONS && u->fail[0] == '\0'; i++) {
			struct session *s = &u->s[i];
			long before = u->failures;

			resync(u, s, i);
			if (u->fail[0] == '\0' && s->ncand == 1)
				do_pop(u, s, i, -1);
			if (u->failures != before)
				user_fail(u, "session %d: a call failed %s, the daemon up: %s", i,
				          when, sessd_errmsg(u->c));
			else if (s->ncand != 1)
				user_fail(u, "session %d: still uncertain %s", i, when);
		}
		if (u->fail[0] != '\0')
			return u->fail;
	}
	return NULL;
}

static void verify_all(const char *when)
{
	const char *why = verify_users(when);

	cr_assert_null(why, "%s", why);
}

/* Start every user's thread on its client, with the short timeout. Returns 0 or -1. */
static int users_start(void)
{
	atomic_store(&stop_users, false);
	atomic_store(&failed, false);
	for (int n = 0; n < USERS; n++)
		if (sessd_set_timeout(users[n].c, TIMEOUT_MS) != SESSD_OK ||
		    pthread_create(&users[n].thread, NULL, user_run, &users[n]) != 0)
			return -1;
	return 0;
}

/* Stop the users' threads. Returns NULL, or the first failure's words. */
static const char *users_stop(void)
{
	atomic_store(&stop_users, true);
	for (int n = 0; n < USERS; n++)
		pthread_join(users[n].thread, NULL);
	for (int n = 0; n < USERS; n++)
		if (users[n].fail[0] != '\0')
			return users[n].fail;
	return NULL;
}

/*
 * A pre-fork server's worker (libfault/prefork): a child forked once every user's client is
 * open, which uses them on sessions of its own while the parent goes on with them too. Users
 * of odd number close the client they inherited and open their own (the handle opened after
 * fork()); the others use the inherited one, which libsessd(3) lets a child use (it
 * reconnects, leaving the parent's connection to the parent). The parent's word by ${fd}:
 * 's' stop the users, 'v' verify, 'x' exit; the worker answers each there, '0' when all is
 * well (else its failure is on stderr). Never returns.
 */
static char worker_ids[USERS][SESSIONS][SESSD_ID_LEN + 1];

static void worker_run(int fd)
{
	const char *why = NULL;
	char word, verdict;

	for (int n = 0; n < USERS; n++) {
		struct user *u = &users[n];

		u->rng ^= 0x9e3779b97f4a7c15ull;
		for (int i = 0; i < SESSIONS; i++)
			memcpy(u->s[i].id, worker_ids[n][i], sizeof(u->s[i].id));
		if (n % 2 == 1) {
			struct sessd_options o = user_options(n);

			long give_up = harness_mono_ms() + 30000;
			int rc;

			sessd_close(u->c);
			/* The faults have begun: as an application would, try again while sessd
			 * or the path is away. */
			while ((rc = sessd_connect(user_url(n), &o, &u->c)) != SESSD_OK &&
			       fault_code(rc) && harness_mono_ms() < give_up)
				harness_sleep_ms(50);
			if (rc != SESSD_OK) {
				fprintf(stderr,
				        "worker: user %d could not connect after fork(): %s\n", n,
				        sessd_strerror(rc));
				_exit(1);
			}
		}
	}
	if (users_start() == -1)
		_exit(1);
	while (recv(fd, &word, 1, 0) == 1) {
		if (word == 's')
			why = users_stop();
		else if (word == 'v')
			why = verify_users("in the worker");
		else
			break;
		if (why != NULL)
			fprintf(stderr, "worker: %s\n", why);
		verdict = why == NULL ? '0' : '1';
		if (send(fd, &verdict, 1, MSG_NOSIGNAL) != 1 || why != NULL)
			_exit(1);
	}
	if (word != 'x') {
		users_stop();
		_exit(1);
	}
	for (int n = 0; n < USERS; n++) {
		struct user *u = &users[n];

		fprintf(
		    stderr,
		    "libfault worker, user %d (%s client): %ld calls, %ld failed, %ld batches\n", n,
		    n % 2 == 1 ? "its own" : "the inherited", u->calls, u->failures, u->batches);
		sessd_close(u->c);
	}
	_exit(0);
}

struct worker {
	pid_t pid;
	int fd; /* the parent's end of their socket pair */
};

/* Fork the worker (worker_run), its sessions' ids noted here, where the log is checked. */
static void worker_fork(struct worker *w)
{
	int sv[2];

	for (int n = 0; n < USERS; n++)
		for (int i = 0; i < SESSIONS; i++) {
			cr_assert_eq(sessd_id_new(worker_ids[n][i]), SESSD_OK);
			harness_note_secret(worker_ids[n][i], SESSD_ID_LEN);
		}
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fflush(NULL);
	w->pid = fork();
	cr_assert_neq(w->pid, -1);
	if (w->pid == 0) {
		close(sv[0]);
		worker_run(sv[1]);
	}
	close(sv[1]);
	w->fd = sv[0];
}

/* Tell the worker ${word}; it must answer that all is well. */
static void worker_say(struct worker *w, char word)
{
	char verdict = 0;

	/* A worker gone (its failure on stderr) is a failed send or read, not a SIGPIPE. */
	cr_assert_eq(send(w->fd, &word, 1, MSG_NOSIGNAL), 1, "the worker is gone");
	cr_assert(recv(w->fd, &verdict, 1, 0) == 1 && verdict == '0',
	          "the worker failed at '%c' (see its words above)", word);
}

/* The connections sessd has accepted since it started (STATS connections_total). */
static uint64_t connections_total(struct sessd_client *c)
{
	struct sessd_stats *st = NULL;
	uint64_t total = UINT64_MAX;

	cr_assert_eq(sessd_stats(c, 1, &st), SESSD_OK, "stats: %s", sessd_errmsg(c));
	for (size_t i = 0; i < st->count; i++)
		if (strcmp(st->items[i].name, "connections_total") == 0)
			total = st->items[i].value;
	sessd_stats_free(st);
	cr_assert_neq(total, UINT64_MAX, "no connections_total in STATS");
	return total;
}

/*
 * The worker closes what it holds and exits. Then, the faults over and every parent
 * connection up, a worker that lives a moment (a pre-fork server recycling one): it calls
 * on a third of the clients it inherited (reconnecting, its copy of the parent's connection
 * closed), closes a third (sessd_close) and leaves the rest to its exit. The parent's
 * connections must all go on (libsessd(3): closed in the child, not shut down): sessd counts
 * the child's new connections and no other.
 */
static void worker_end(struct worker *w)
{
	uint64_t before;
	char word = 'x';
	int status, used = 0;
	pid_t pid;

	cr_assert_eq(send(w->fd, &word, 1, MSG_NOSIGNAL), 1, "the worker is gone");
	cr_assert_eq(waitpid(w->pid, &status, 0), w->pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the worker exited with %d",
	          status);
	close(w->fd);
	for (int n = 0; n < USERS; n++) {
		cr_assert_eq(sessd_ping(users[n].c), SESSD_OK, "%s", sessd_errmsg(users[n].c));
		used += n % 3 == 0;
	}
	before = connections_total(users[0].c);
	fflush(NULL);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		int ok = 1;

		for (int n = 0; n < USERS; n++)
			if (n % 3 == 0)
				ok &= sessd_ping(users[n].c) == SESSD_OK;
			else if (n % 3 == 1)
				sessd_close(users[n].c);
		_exit(ok ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "the second worker's pings failed");
	for (int n = 0; n < USERS; n++)
		cr_assert_eq(sessd_ping(users[n].c), SESSD_OK, "%s", sessd_errmsg(users[n].c));
	cr_assert_eq(connections_total(users[0].c), before + (uint64_t)used,
	             "a worker's exit ended a connection of the parent's");
}

/* One seed of ${seconds} of faults; with ${prefork}, a worker forked after the clients opened
 * (worker_run) runs under them too. */
static void run_seed(uint64_t seed, long seconds, bool prefork)
{
	struct worker w = {.pid = -1};
	const char *why;
	uint64_t rng = seed * 2654435761u + 17u;
	long counts[FAULTS] = {0}, end, calls = 0, failures = 0, worst = 0, codes[128] = {0},
	     kept = 0, batches = 0, batch_requests = 0, batch_unanswered = 0;

	users_connect(seed);
	if (prefork)
		worker_fork(&w);
	cr_assert_eq(users_start(), 0);
	end = harness_mono_ms() + seconds * 1000;
	while (harness_mono_ms() < end && !atomic_load(&failed))
		one_fault(&rng, counts);
	why = users_stop();
	cr_assert_null(why, "seed %llu: %s", (unsigned long long)seed, why);
	if (prefork)
		worker_say(&w, 's');
	verify_all("after the faults");
	if (prefork)
		worker_say(&w, 'v');
	/* What the last calls were answered must survive a crash, popped flashes staying popped. */
	cr_assert_eq(harness_kill(&daemon_), 0);
	daemon_up();
	verify_all("after a kill -9 and restart");
	if (prefork) {
		worker_say(&w, 'v');
		worker_end(&w);
	}
	for (int n = 0; n < USERS; n++) {
		struct user *u = &users[n];

		calls += u->calls;
		failures += u->failures;
		worst = u->worst_ms > worst ? u->worst_ms : worst;
		kept += u->kept_pops;
		batches += u->batches;
		batch_requests += u->batch_requests;
		batch_unanswered += u->batch_unanswered;
		for (int k = 0; k < 128; k++)
			codes[k] += u->codes[k];
		sessd_close(u->c);
		u->c = NULL;
	}
	fprintf(stderr,
	        "libfault seed %llu: %ld calls, %ld failed (connect %ld, shutting down %ld, "
	        "timeout %ld, closed %ld), worst %ld ms, %ld timed-out pops kept, %ld batches of "
	        "%ld requests (%ld unanswered); faults: kill %ld, term %ld, stop %ld, cut %ld, "
	        "stall %ld, blackhole %ld, hold %ld, calm %ld\n",
	        (unsigned long long)seed, calls, failures, codes[SESSD_ERR_CONNECT & 127],
	        codes[SESSD_ERR_SHUTTING_DOWN], codes[SESSD_ERR_TIMEOUT & 127],
	        codes[SESSD_ERR_CLOSED & 127], worst, kept, batches, batch_requests,
	        batch_unanswered, counts[0], counts[1], counts[2], counts[3] + counts[4], counts[5],
	        counts[6], counts[7], counts[8]);
}

static long env_long(const char *name, long dflt)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? strtol(v, NULL, 10) : dflt;
}

/* The seeds the environment asks for (LIBFAULT_SEED, LIBFAULT_SEEDS, LIBFAULT_SECONDS). */
static void run_seeds(bool prefork)
{
	long first = env_long("LIBFAULT_SEED", 1), seeds = env_long("LIBFAULT_SEEDS", 1);
	long seconds = env_long("LIBFAULT_SECONDS", 3);
	int fds = harness_open_fds();

	for (long k = 0; k < seeds; k++)
		run_seed((uint64_t)(first + k), seconds, prefork);
	cr_expect_eq(harness_open_fds(), fds, "every descriptor of the clients closed");
}

LEAK_CHECKED_TEST(libfault, model)
{
	run_seeds(false);
}

/* The same, with a pre-fork server's worker using the clients opened before fork() too. */
LEAK_CHECKED_TEST(libfault, prefork)
{
	run_seeds(true);
}

/*
 * --- libsessd(3)'s bound on a sealed call that owes a RETIRE, counted rather than timed. ---
 *
 * Every wait of libsessd is a poll() on a deadline armed for it (the client's timeout from
 * then): the waits of one call are counted by interposing poll() for the calling thread, each
 * poll's deadline being its entry plus its timeout. A wait's polls share a deadline (give or
 * take the scheduling between the library's clock read and the poll); the next wait's is later
 * by what the previous one waited, which the relay makes RETIRE_DELAY_MS (FAULTPROXY_DELAY on
 * every reply), so that waits tell apart by RETIRE_DELAY_MS / 2 however loaded the machine.
 */
#define RETIRE_TIMEOUT_MS 1500
#define RETIRE_DELAY_MS   750

struct wait_log {
	int waits;       /* deadlines armed (a new one is later than the last by over half the
	                  * delay) */
	long deadline;   /* the last one */
	int longest;     /* the longest timeout of a poll */
	bool forever;    /* a poll without a timeout */
	int interrupted; /* polls a signal ended (EINTR) */
};

static _Thread_local struct wait_log *wait_log;

int poll(struct pollfd *fds, nfds_t nfds, int timeout);
int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	struct wait_log *log = wait_log;
	struct timespec ts = {.tv_sec = timeout / 1000, .tv_nsec = (timeout % 1000) * 1000000L};
	int n;

	if (log != NULL && nfds > 0) {
		long deadline = harness_mono_ms() + timeout;

		if (timeout < 0)
			log->forever = true;
		if (timeout > log->longest)
			log->longest = timeout;
		if (log->waits == 0 || deadline > log->deadline + RETIRE_DELAY_MS / 2) {
			log->waits++;
			log->deadline = deadline;
		}
	}
	n = ppoll(fds, nfds, timeout < 0 ? NULL : &ts, NULL);
	if (log != NULL && n == -1 && errno == EINTR)
		log->interrupted++;
	return n;
}

/* A thread that sends the caller SIGUSR1 every few milliseconds while a call runs. */
struct signal_storm {
	pthread_t target, thread;
	atomic_bool stop;
	atomic_long sent;
};

static void on_storm_signal(int sig)
{
	(void)sig;
}

static void *storm_run(void *arg)
{
	struct signal_storm *st = arg;

	while (!atomic_load(&st->stop)) {
		pthread_kill(st->target, SIGUSR1);
		atomic_fetch_add(&st->sent, 1);
		harness_sleep_ms(7);
	}
	return NULL;
}

/*
 * ${c}'s next call, made by ${batch} (a batch of a SET and a GET: one wait, libsessd(3)) or a
 * sessd_set, with every poll counted into ${log} and SIGUSR1 (a handler, no SA_RESTART) sent to
 * it all along: a signal ends no call and extends no wait (libsessd(3)). Returns its result.
 */
static int counted_call(struct sessd_client *c, const char *id, bool batch, struct wait_log *log)
{
	struct sigaction on = {.sa_handler = on_storm_signal}, old;
	struct signal_storm st = {.target = pthread_self()};
	struct sessd_batch *b = NULL;
	int rc;

	if (batch) {
		b = sessd_batch_new(c);
		cr_assert_not_null(b);
		cr_assert_eq(sessd_batch_set(b, id, strlen(id), "c", 1, TTL_MS), 0);
		cr_assert_eq(sessd_batch_get(b, id, strlen(id)), 1);
	}
	sigemptyset(&on.sa_mask);
	cr_assert_eq(sigaction(SIGUSR1, &on, &old), 0);
	cr_assert_eq(pthread_create(&st.thread, NULL, storm_run, &st), 0);
	wait_log = log;
	rc = batch ? sessd_batch_run(b) : sessd_set(c, id, strlen(id), "c", 1, TTL_MS);
	wait_log = NULL;
	atomic_store(&st.stop, true);
	pthread_join(st.thread, NULL);
	cr_assert_eq(sigaction(SIGUSR1, &old, NULL), 0);
	cr_assert_gt(log->interrupted, 10, "signals ended %d of the call's polls (%ld sent)",
	             log->interrupted, atomic_load(&st.sent));
	if (batch && rc == SESSD_OK)
		rc = sessd_batch_status(b, 0) != SESSD_OK ? sessd_batch_status(b, 0)
		                                          : sessd_batch_status(b, 1);
	sessd_batch_free(b);
	return rc;
}

/*
 * A sealed client on ${relay} owing a RETIRE (its last call gave up on a request held on the
 * path) makes a call (a batch's run, with ${batch}) whose every reply comes RETIRE_DELAY_MS
 * late, under a storm of signals: the call (connect, HELLO, RETIRE, its request) must succeed
 * having armed at most four deadlines of at most its timeout each. On loopback the connect
 * completes at once, its deadline and the HELLO's within one delay, so the four are three
 * apart: HELLO, RETIRE and the request.
 */
static void retire_bound_on(struct faultproxy *relay, bool batch)
{
	struct sessd_options o = user_options(1);
	struct wait_log log = {0};
	struct sessd_client *c = NULL;
	char id[SESSD_ID_LEN + 1];
	int rc;

	cr_assert_eq(sessd_id_new(id), SESSD_OK);
	harness_note_secret(id, SESSD_ID_LEN);
	o.timeout_ms = RETIRE_TIMEOUT_MS;
	cr_assert_eq(sessd_connect(relay->url, &o, &c), SESSD_OK);
	cr_assert_eq(sessd_set(c, id, strlen(id), "a", 1, TTL_MS), SESSD_OK, "%s", sessd_errmsg(c));
	cr_assert_eq(faultproxy_set(relay, FAULTPROXY_UP, FAULTPROXY_HOLD, 0), 0);
	rc = sessd_set(c, id, strlen(id), "b", 1, TTL_MS);
	cr_assert_eq(rc, SESSD_ERR_TIMEOUT, "a held SET: %s", sessd_errmsg(c));
	cr_assert_eq(faultproxy_set(relay, FAULTPROXY_UP, FAULTPROXY_PASS, 0), 0);
	cr_assert_eq(faultproxy_set(relay, FAULTPROXY_DOWN, FAULTPROXY_DELAY, RETIRE_DELAY_MS), 0);
	rc = counted_call(c, id, batch, &log);
	cr_assert_eq(faultproxy_set(relay, FAULTPROXY_DOWN, FAULTPROXY_PASS, 0), 0);
	cr_assert_eq(rc, SESSD_OK, "the call owing a RETIRE: %s", sessd_errmsg(c));
	cr_expect(!log.forever, "a wait without a timeout");
	cr_expect_leq(log.longest, RETIRE_TIMEOUT_MS, "a wait of %d ms, over the timeout",
	              log.longest);
	/* Three: the RETIRE was sent (it is its own wait), and nothing more. */
	cr_expect_eq(log.waits, 3, "%d waits one delay apart (HELLO, RETIRE, the request)",
	             log.waits);
	sessd_close(c);
}

LEAK_CHECKED_TEST(libfault, retire_bound_tcp)
{
	retire_bound_on(&proxies[1], false);
}

LEAK_CHECKED_TEST(libfault, retire_bound_unix)
{
	retire_bound_on(&proxies[2], false);
}

LEAK_CHECKED_TEST(libfault, retire_bound_batch)
{
	retire_bound_on(&proxies[1], true);
}
