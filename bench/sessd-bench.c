/*
 * sessd-bench: a closed-loop load generator for sessd and, for comparison, Redis.
 *
 * One libevent loop in one thread drives every connection. Each connection keeps exactly
 * --pipeline operations in flight and sends the next one as each completes, so the offered
 * load adapts to the server and the latency of each operation is measured from the moment
 * its request is queued to the moment its (last) reply is parsed. Both targets run through
 * the same connection code below; only the bytes differ (wire_sessd.c, wire_redis.c). With
 * --auth-file the sessd wire seals them: a batch is encoded apart, then sealed into the output
 * in one go (wire_class.seal), and the records read are opened inside the wire's parser.
 *
 * A run goes through phases: HELLO (sessd only), LOAD (SET every key so GETs hit; not
 * measured), optionally BURST + WAIT (--expire-burst: sessions that all expire during the
 * timed run), WARMUP (not counted), TIMED, DONE.
 *
 * With --versus, TIMED alternates short slices of the mix and of a second, store-free mix
 * (PING or echo) on the same connections, and sums each one's time, operations and CPU over
 * its own slices. A machine whose speed drifts or jumps for seconds at a time (a shared host)
 * moves both alike, so their ratio holds where two runs minutes apart would not.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <event2/event.h>
#include <sodium.h>

#include "buf.h"
#include "hist.h"
#include "seal.h"
#include "sessd.h"
#include "wire.h"
#include "workload.h"

#define BENCH_DEFAULT_MIX     "get=60,touch=20,set=14,destroy=2,flash=4"
#define BENCH_SESSION_TTL_MS  (3600ull * 1000)
#define BENCH_LOAD_TTL_MS     (24ull * 3600 * 1000)
#define BENCH_READ_BYTES      (256u * 1024u)
#define BENCH_MAX_ERROR_LINES 5
#define BENCH_SEED            0x5e55d0b5e55d0b5eull
/* The secret sessd takes from --auth-file (daemon/auth.h). */
#define BENCH_MIN_SECRET 16u
#define BENCH_MAX_SECRET 1024u
/* --versus: the slices' default length, and the shortest accepted. */
#define BENCH_SLICE_S     0.1
#define BENCH_MIN_SLICE_S 0.01

enum bench_exit {
	BENCH_EXIT_OK = 0,
	BENCH_EXIT_FAIL = 1, /* unreachable target, dropped connection, protocol failure */
	BENCH_EXIT_USAGE = 2,
};

enum bench_phase {
	PHASE_HELLO,
	PHASE_LOAD,
	PHASE_BURST,
	PHASE_WAIT,
	PHASE_WARMUP,
	PHASE_TIMED,
	PHASE_DONE,
};

/* The opening request's kind, beside the workload's. */
#define BENCH_KIND_OPEN WORKLOAD_KINDS

struct bench_options {
	const char *target;
	unsigned connections;
	unsigned pipeline;
	size_t value_size;
	double duration_s;
	double warmup_s;
	const char *mix_text;
	uint64_t keys;
	const char *ns;
	bool json;
	uint64_t load;            /* --load N: only SET N keys and exit */
	uint64_t load_flashes;    /* --load-flashes N: and push N flash messages to each */
	uint64_t expire_burst;    /* --expire-burst N */
	bool hold;                /* --hold: the burst's sessions live 24 h (the baseline run) */
	bool burst_namespaces;    /* --burst-namespaces: each burst session in its own namespace */
	long server_pid;          /* --server-pid: sample its CPU over the timed run */
	const char *auth_file;    /* --auth-file: seal every connection with its secret */
	bool plain_auth;          /* --plain-auth: send the secret as it is instead */
	const char *versus;       /* --versus SPEC: a PING/echo mix alternated with the mix */
	size_t versus_value_size; /* --versus-value-size (0: --value-size) */
	double slice_s;           /* --slice */
};

struct bench_inflight {
	uint64_t sent_ns;
	uint64_t request_id;
	uint8_t kind;
	uint8_t replies;
	uint8_t replies_left;
	uint8_t worst; /* enum wire_outcome: the worst of its replies so far */
	uint8_t side;  /* which workload sent it: 0 the mix, 1 --versus */
};

struct bench;

struct bench_conn {
	struct bench *b;
	int fd;
	struct event *read_ev;
	struct event *write_ev;
	struct buf out;
	size_t out_sent;
	struct buf plain; /* a sealing wire only: the requests of one fill, sealed into out */
	void *wire_state;
	struct workload_gen gen;
	uint64_t next_request_id;
	struct bench_inflight *ring; /* capacity: pipeline */
	unsigned ring_head;
	unsigned ring_count;
};

struct bench_kind_stats {
	uint64_t ops;
	uint64_t misses;
	uint64_t errors;
	struct hist latency;
};

/* What one side of a --versus run did over its slices. */
struct bench_side {
	uint64_t ns;
	unsigned slices;
	double server_cpu_s; /* summed from the server's threads' schedstat */
	double client_cpu_s;
	uint64_t ops;
	uint64_t errors;
	uint64_t bytes_sent;
	uint64_t bytes_received;
	struct hist latency; /* side 1's; side 0's operations are in bench.all and bench.kinds */
};

/* The start of the slice now running. */
struct bench_mark {
	uint64_t ns;
	double server_cpu_s;
	double client_cpu_s;
};

struct bench {
	struct bench_options opt;
	struct event_base *base;
	struct event *timer;
	const struct wire_class *wire;
	struct wire_ctx ctx;
	struct workload *workload;
	struct workload_mix mix;
	struct bench_conn *conns;
	uint8_t *read_scratch;

	/* --auth-file, in sodium_malloc'd memory: the secret, and what HELLO shows of it
	 * (b->ctx points at one): the secret as MessagePack bin for --plain-auth, else the key
	 * sealed connections prove (seal_psk). */
	uint8_t *secret;
	size_t secret_len;
	uint8_t *auth_field;
	size_t auth_field_len;
	uint8_t *psk;
	enum bench_phase phase;
	int exit_code;

	/* LOAD and BURST hand out keys [cursor, cursor_end) to whichever connection is free. */
	uint64_t cursor;
	uint64_t cursor_end;
	uint64_t cursor_ttl_ms;
	uint64_t inflight;
	uint64_t load_errors;
	uint64_t load_start_ns;
	uint64_t load_end_ns;

	uint64_t burst_ttl_ms;
	uint64_t burst_expire_ns; /* every burst session expires at this instant */
	uint64_t burst_start_ns;
	uint64_t burst_ready_ns; /* WAIT lasts until then, so the burst expires mid-run */

	uint64_t timed_start_ns;
	uint64_t timed_end_ns;
	uint64_t requests; /* wire requests completed in TIMED (Redis: a flash pop is 4) */
	uint64_t max_at_ns;
	struct hist all;
	struct bench_kind_stats kinds[WORKLOAD_KINDS];
	unsigned error_lines;

	/* CPU samples at the start and end of TIMED, in seconds. */
	double server_cpu_s[2];
	double client_cpu_s[2];
	bool server_cpu_ok;

	/* A sessd target's own loop figures (STATS, on a side connection) at the start and end
	 * of TIMED: [0] max stall since start (us), [1..3] stalls over 1, 2, 10 ms. */
	struct sessd_client *stats_client;
	uint64_t loop[2][4];
	bool loop_ok;

	/* The side whose slice runs (always 0 without --versus), and each side's figures; the
	 * bytes sent and received in TIMED count toward the side running at the time. */
	struct workload *versus_workload;
	struct workload_mix versus_mix;
	struct event *slice_timer;
	unsigned side;
	struct bench_mark mark;
	struct bench_side sides[2];
};

static const char *const bench_loop_keys[4] = {"loop_stall_max_us", "loop_stalls_over_1ms",
                                               "loop_stalls_over_2ms", "loop_stalls_over_10ms"};

/* Read the loop figures of a sessd target into b->loop[which]; a failure drops them. */
static void bench_sample_loop(struct bench *b, int which)
{
	struct sessd_stats *st = NULL;
	int found = 0;

	if (b->stats_client == NULL || !b->loop_ok)
		return;
	if (sessd_stats(b->stats_client, 1, &st) != SESSD_OK) {
		b->loop_ok = false;
		return;
	}
	for (size_t i = 0; i < st->count; i++) {
		for (int k = 0; k < 4; k++) {
			if (strcmp(st->items[i].name, bench_loop_keys[k]) == 0) {
				b->loop[which][k] = st->items[i].value;
				found++;
			}
		}
	}
	sessd_stats_free(st);
	if (found != 4)
		b->loop_ok = false;
}

static uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 2, 3))) static void bench_fail(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	if (b->exit_code == BENCH_EXIT_OK) {
		fprintf(stderr, "sessd-bench: ");
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
		b->exit_code = BENCH_EXIT_FAIL;
	}
	b->phase = PHASE_DONE;
	event_base_loopbreak(b->base);
}

/* utime + stime of ${pid} from /proc/PID/stat, in seconds; -1 when it cannot be read. */
static double bench_proc_cpu_s(long pid)
{
	char path[64], line[1024];
	unsigned long long utime, stime;
	const char *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	/* The command name may hold spaces and parentheses: fields count from the last ')'. */
	p = strrchr(line, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
	                 &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * The CPU time of every thread of ${pid} so far, in seconds, from each one's
 * /proc/PID/task/TID/schedstat (nanoseconds, unlike /proc/PID/stat's clock ticks, which are
 * too coarse for a slice of a tenth of a second); -1 when it cannot be read.
 */
static double bench_proc_threads_cpu_s(long pid)
{
	char path[64], line[128];
	unsigned long long ns, sum = 0;
	struct dirent *d;
	int found = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%ld/task", pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir)) != NULL) {
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/schedstat", pid, d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue; /* the thread ended meanwhile */
		if (fgets(line, sizeof(line), f) && sscanf(line, "%llu", &ns) == 1) {
			sum += ns;
			found++;
		}
		fclose(f);
	}
	closedir(dir);
	return found ? (double)sum / 1e9 : -1;
}

static double bench_self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void bench_sample_cpu(struct bench *b, int which)
{
	/* First at the start and last at the end, so its round trip stays outside the CPU
	 * window. */
	if (which == 0)
		bench_sample_loop(b, 0);
	b->client_cpu_s[which] = bench_self_cpu_s();
	if (b->opt.server_pid > 0) {
		b->server_cpu_s[which] = bench_proc_cpu_s(b->opt.server_pid);
		if (b->server_cpu_s[which] < 0)
			b->server_cpu_ok = false;
	}
	if (which == 1)
		bench_sample_loop(b, 1);
}

static void bench_conn_flush(struct bench_conn *c);
static void bench_conn_fill(struct bench_conn *c);
static void bench_enter(struct bench *b, enum bench_phase phase);

/* The CPU figures now, stamped ${ns}: the caller's clock reading, so that the slices' times
 * add up to the timed run's exactly, however long reading /proc takes on a loaded machine. */
static void bench_mark_at(struct bench *b, struct bench_mark *m, uint64_t ns)
{
	m->ns = ns;
	m->client_cpu_s = bench_self_cpu_s();
	m->server_cpu_s = b->opt.server_pid > 0 ? bench_proc_threads_cpu_s(b->opt.server_pid) : -1;
}

/* End the slice now running at ${now}: its time and CPU go to its side. */
static void bench_slice_close(struct bench *b, uint64_t now)
{
	struct bench_side *side = &b->sides[b->side];
	struct bench_mark end;

	bench_mark_at(b, &end, now);
	side->ns += end.ns - b->mark.ns;
	side->client_cpu_s += end.client_cpu_s - b->mark.client_cpu_s;
	if (end.server_cpu_s < 0 || b->mark.server_cpu_s < 0)
		b->server_cpu_ok = false;
	else
		side->server_cpu_s += end.server_cpu_s - b->mark.server_cpu_s;
	side->slices++;
	b->mark = end;
}

static void bench_schedule_slice(struct bench *b)
{
	uint64_t ns = (uint64_t)(b->opt.slice_s * 1e9);
	struct timeval tv = {
	    .tv_sec = (time_t)(ns / 1000000000ull),
	    .tv_usec = (suseconds_t)(ns % 1000000000ull / 1000),
	};

	evtimer_add(b->slice_timer, &tv);
}

/* --versus: the slice ends; the other side's begins. Operations in flight finish as they
 * were sent, and count toward the side that sent them. */
static void bench_on_slice(evutil_socket_t fd, short what, void *arg)
{
	struct bench *b = arg;

	if (b->phase != PHASE_TIMED)
		return;
	bench_slice_close(b, bench_now_ns());
	b->side = !b->side;
	bench_schedule_slice(b);
}

static void bench_schedule(struct bench *b, uint64_t delay_ns)
{
	struct timeval tv = {
	    .tv_sec = (time_t)(delay_ns / 1000000000ull),
	    .tv_usec = (suseconds_t)(delay_ns % 1000000000ull / 1000),
	};

	evtimer_add(b->timer, &tv);
}

/* The phase after ${b}'s current one. */
static enum bench_phase bench_next_phase(const struct bench *b)
{
	switch (b->phase) {
	case PHASE_HELLO:
		return PHASE_LOAD;
	case PHASE_LOAD:
		if (b->opt.load)
			return PHASE_DONE;
		return b->opt.expire_burst ? PHASE_BURST : PHASE_WARMUP;
	case PHASE_BURST:
		return PHASE_WAIT;
	case PHASE_WAIT:
		return PHASE_WARMUP;
	case PHASE_WARMUP:
		return PHASE_TIMED;
	default:
		return PHASE_DONE;
	}
}

/* HELLO, LOAD and BURST end when their work is done rather than on a timer. */
static void bench_check_phase_done(struct bench *b)
{
	if ((b->phase == PHASE_HELLO || b->phase == PHASE_LOAD || b->phase == PHASE_BURST) &&
	    b->inflight == 0 && b->cursor == b->cursor_end)
		bench_enter(b, bench_next_phase(b));
}

static void bench_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct bench *b = arg;

	bench_enter(b, bench_next_phase(b));
}

static void bench_enter(struct bench *b, enum bench_phase phase)
{
	uint64_t now = bench_now_ns();

	if (b->phase == PHASE_DONE)
		return;
	b->phase = phase;
	switch (phase) {
	case PHASE_LOAD:
		b->cursor = 0;
		/* With --load-flashes, the pushes come after every SET, N passes over the keys:
		 * the push to a key is sent long after its SET was answered. */
		b->cursor_end = b->opt.load ? b->opt.load * (1 + b->opt.load_flashes) : b->opt.keys;
		b->cursor_ttl_ms = b->opt.load ? BENCH_LOAD_TTL_MS : BENCH_SESSION_TTL_MS;
		b->load_start_ns = now;
		break;
	case PHASE_BURST: {
		/*
		 * Every burst session expires at one instant: each SET's ttl is what is left
		 * until then, so a slow load does not spread the expiries out. The instant
		 * leaves room for the load (at the rate the --keys load ran, with slack), the
		 * warmup and half the run; if the load finishes early we WAIT, so the expiries
		 * land in the middle of TIMED.
		 */
		double load_s = (double)(now - b->load_start_ns) / 1e9;
		double rate = load_s > 0 && b->opt.keys > 0 ? (double)b->opt.keys / load_s : 1e5;
		uint64_t allowance_ms = 500 + (uint64_t)(1500.0 * (double)b->opt.expire_burst /
		                                         (rate > 1e3 ? rate : 1e3));

		b->load_end_ns = now;
		b->cursor = b->opt.keys;
		b->cursor_end = b->opt.keys + b->opt.expire_burst;
		b->burst_start_ns = now;
		b->burst_ready_ns = now + allowance_ms * 1000000ull;
		b->burst_ttl_ms = allowance_ms + (uint64_t)(b->opt.warmup_s * 1000) +
		                  (uint64_t)(b->opt.duration_s * 500);
		b->burst_expire_ns = now + b->burst_ttl_ms * 1000000ull;
		b->cursor_ttl_ms = BENCH_LOAD_TTL_MS; /* --hold */
		break;
	}
	case PHASE_WAIT:
		if (b->burst_ready_ns > now) {
			bench_schedule(b, b->burst_ready_ns - now);
		} else {
			fprintf(stderr,
			        "sessd-bench: the expire burst took %.1f s to load, longer than "
			        "planned; its expiries land earlier in the run\n",
			        (double)(now - b->burst_start_ns) / 1e9);
			bench_enter(b, PHASE_WARMUP);
			return;
		}
		break;
	case PHASE_WARMUP:
		if (!b->opt.expire_burst)
			b->load_end_ns = now;
		if (b->opt.warmup_s <= 0) {
			bench_enter(b, PHASE_TIMED);
			return;
		}
		bench_schedule(b, (uint64_t)(b->opt.warmup_s * 1e9));
		break;
	case PHASE_TIMED:
		b->timed_start_ns = now;
		bench_sample_cpu(b, 0);
		if (b->opt.versus) {
			b->side = 0;
			bench_mark_at(b, &b->mark, now);
			bench_schedule_slice(b);
		}
		bench_schedule(b, (uint64_t)(b->opt.duration_s * 1e9));
		break;
	case PHASE_DONE:
		b->timed_end_ns = now;
		if (b->opt.load)
			b->load_end_ns = now;
		else
			bench_sample_cpu(b, 1);
		if (b->opt.versus && b->slice_timer) {
			evtimer_del(b->slice_timer);
			bench_slice_close(b, now);
		}
		event_base_loopbreak(b->base);
		return;
	default:
		break;
	}
	for (unsigned i = 0; i < b->opt.connections && b->phase == phase; i++) {
		bench_conn_fill(&b->conns[i]);
		bench_conn_flush(&b->conns[i]);
	}
	bench_check_phase_done(b);
}

/* The next operation for ${c} in the current phase, and in *${side} the side that sends it;
 * false when there is none to send. */
static bool bench_next_op(struct bench_conn *c, struct workload_op *op, unsigned *side)
{
	struct bench *b = c->b;

	*side = 0;
	switch (b->phase) {
	case PHASE_LOAD:
	case PHASE_BURST:
		if (b->cursor == b->cursor_end)
			return false;
		memset(op, 0, sizeof(*op));
		if (b->phase == PHASE_LOAD && b->opt.load && b->cursor >= b->opt.load) {
			op->kind = WORKLOAD_FLASH_PUSH;
			op->key = b->cursor % b->opt.load;
			op->ttl_ms = b->cursor_ttl_ms;
			b->cursor++;
			return true;
		}
		op->kind = WORKLOAD_SET;
		op->key = b->cursor;
		op->value = workload_value(b->workload, b->cursor);
		op->value_len = workload_value_size(b->workload);
		op->ttl_ms = b->cursor_ttl_ms;
		op->own_namespace = b->phase == PHASE_BURST && b->opt.burst_namespaces;
		if (b->phase == PHASE_BURST && !b->opt.hold) {
			uint64_t now = bench_now_ns();

			op->ttl_ms = b->burst_expire_ns > now + 1000000ull
			                 ? (b->burst_expire_ns - now) / 1000000ull
			                 : 1;
		}
		b->cursor++;
		return true;
	case PHASE_WARMUP:
	case PHASE_TIMED:
		/* A flash pop owed to the mix's push goes out first, as the mix's. */
		if (b->side == 1 && b->phase == PHASE_TIMED && c->gen.pending_pop < 0) {
			*side = 1;
			workload_next(b->versus_workload, &b->versus_mix, &c->gen, b->opt.keys,
			              BENCH_SESSION_TTL_MS, op);
			return true;
		}
		workload_next(b->workload, &b->mix, &c->gen, b->opt.keys, BENCH_SESSION_TTL_MS, op);
		return true;
	default:
		return false;
	}
}

static void bench_conn_push(struct bench_conn *c, uint8_t kind, unsigned side, uint64_t request_id,
                            unsigned replies, uint64_t now)
{
	struct bench_inflight *e = &c->ring[(c->ring_head + c->ring_count) % c->b->opt.pipeline];

	e->sent_ns = now;
	e->request_id = request_id;
	e->kind = kind;
	e->replies = (uint8_t)replies;
	e->replies_left = (uint8_t)replies;
	e->worst = WIRE_OK;
	e->side = (uint8_t)side;
	c->ring_count++;
	c->b->inflight++;
}

/* Keep exactly --pipeline operations in flight on ${c}. */
static void bench_conn_fill(struct bench_conn *c)
{
	struct bench *b = c->b;
	/* A sealing wire: the batch is encoded apart and sealed below in as few records as it
	 * fills, as a client that seals what it writes does. */
	struct buf *into = b->wire->seal ? &c->plain : &c->out;
	uint64_t now = 0;

	while (c->ring_count < b->opt.pipeline && b->phase != PHASE_DONE) {
		struct workload_op op;
		unsigned replies, side;
		uint64_t rid;

		if (!bench_next_op(c, &op, &side))
			break;
		if (!now)
			now = bench_now_ns();
		rid = c->next_request_id++;
		if (b->wire->encode(into, &b->ctx, &op, rid, &replies) < 0) {
			bench_fail(b, "cannot encode a request: %s", strerror(errno));
			return;
		}
		bench_conn_push(c, (uint8_t)op.kind, side, rid, replies, now);
	}
	if (b->wire->seal && c->plain.len > 0) {
		if (b->wire->seal(c->wire_state, &c->out, c->plain.data, c->plain.len) < 0) {
			bench_fail(b, "cannot seal requests: %s", strerror(errno));
			return;
		}
		buf_reset(&c->plain);
	}
}

static void bench_conn_flush(struct bench_conn *c)
{
	while (c->out_sent < c->out.len) {
		ssize_t n =
		    send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(c->write_ev, NULL);
				return;
			}
			bench_fail(c->b, "send: %s", strerror(errno));
			return;
		}
		c->out_sent += (size_t)n;
		if (c->b->phase == PHASE_TIMED)
			c->b->sides[c->b->side].bytes_sent += (uint64_t)n;
	}
	buf_reset(&c->out);
	c->out_sent = 0;
}

static void bench_on_write(evutil_socket_t fd, short what, void *arg)
{
	bench_conn_flush(arg);
}

static void bench_record(struct bench *b, const struct bench_inflight *e, uint64_t now)
{
	struct bench_kind_stats *k = &b->kinds[e->kind];
	uint64_t latency = now - e->sent_ns;

	if (e->side == 1) {
		b->sides[1].ops++;
		if (e->worst == WIRE_ERROR)
			b->sides[1].errors++;
		hist_record(&b->sides[1].latency, latency);
		return;
	}
	k->ops++;
	if (e->worst == WIRE_MISS)
		k->misses++;
	else if (e->worst == WIRE_ERROR)
		k->errors++;
	hist_record(&k->latency, latency);
	if (latency > b->all.max || b->all.count == 0)
		b->max_at_ns = now;
	hist_record(&b->all, latency);
	b->requests += e->replies;
}

static void bench_on_reply(struct bench_conn *c, enum wire_outcome outcome, uint64_t request_id,
                           const char *why, uint64_t now)
{
	struct bench *b = c->b;
	struct bench_inflight *e;

	if (c->ring_count == 0) {
		bench_fail(b, "a reply arrived with no request in flight");
		return;
	}
	e = &c->ring[c->ring_head];
	if (b->wire->request_ids && request_id != e->request_id) {
		bench_fail(b,
		           "reply for request %" PRIu64 " arrived where %" PRIu64 " was expected",
		           request_id, e->request_id);
		return;
	}
	if (outcome > e->worst)
		e->worst = (uint8_t)outcome;
	if (outcome == WIRE_ERROR && b->error_lines < BENCH_MAX_ERROR_LINES) {
		b->error_lines++;
		fprintf(stderr, "sessd-bench: %s: error reply: %s\n",
		        e->kind == BENCH_KIND_OPEN ? "open" : workload_kind_name(e->kind),
		        why ? why : "?");
	}
	if (--e->replies_left > 0)
		return;
	c->ring_head = (c->ring_head + 1) % b->opt.pipeline;
	c->ring_count--;
	b->inflight--;
	if (e->kind == BENCH_KIND_OPEN) {
		if (e->worst == WIRE_ERROR)
			bench_fail(b, "the server refused the connection's HELLO");
	} else if (b->phase == PHASE_TIMED) {
		bench_record(b, e, now);
	} else if ((b->phase == PHASE_LOAD || b->phase == PHASE_BURST) && e->worst == WIRE_ERROR) {
		b->load_errors++;
	}
	bench_check_phase_done(b);
}

static void bench_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct bench_conn *c = arg;
	struct bench *b = c->b;
	enum wire_outcome outcome;
	uint64_t request_id, now;
	const char *why = NULL;
	ssize_t n;
	int r;

	for (;;) {
		n = recv(c->fd, b->read_scratch, BENCH_READ_BYTES, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			bench_fail(b, "recv: %s", strerror(errno));
			return;
		}
		if (n == 0) {
			bench_fail(b, "the server closed a connection");
			return;
		}
		if (b->phase == PHASE_TIMED)
			b->sides[b->side].bytes_received += (uint64_t)n;
		if (b->wire->feed(c->wire_state, b->read_scratch, (size_t)n) < 0) {
			bench_fail(b, "out of memory");
			return;
		}
		if ((size_t)n < BENCH_READ_BYTES)
			break;
	}
	now = bench_now_ns();
	while ((r = b->wire->next(c->wire_state, &outcome, &request_id, &why)) == 1) {
		bench_on_reply(c, outcome, request_id, why, now);
		if (b->phase == PHASE_DONE)
			return;
	}
	if (r < 0) {
		bench_fail(b, "protocol failure: %s", why ? why : "?");
		return;
	}
	bench_conn_fill(c);
	bench_conn_flush(c);
}

/* Split "tcp://host:port" style authorities; returns 0 or -1 for a malformed one. */
static int bench_split_host_port(const char *s, char *host, size_t host_size, char *port,
                                 size_t port_size)
{
	const char *colon, *h = s;
	size_t hlen;

	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= host_size || strlen(colon + 1) == 0 ||
	    strlen(colon + 1) >= port_size)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	strcpy(port, colon + 1);
	return 0;
}

/* A target, parsed. */
struct bench_target {
	const struct wire_class *wire; /* NULL for redis when built without hiredis */
	bool is_redis;
	bool is_unix;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char host[256];
	char port[16];
};

/* Returns 0, or -1 for an unknown scheme or malformed address. */
static int bench_parse_target(const char *url, struct bench_target *t)
{
	const char *rest;

	memset(t, 0, sizeof(*t));
	if (strncmp(url, "unix:", 5) == 0) {
		rest = url + 5;
		t->is_unix = true;
	} else if (strncmp(url, "tcp://", 6) == 0) {
		rest = url + 6;
	} else if (strncmp(url, "redis+unix:", 11) == 0) {
		rest = url + 11;
		t->is_unix = true;
		t->is_redis = true;
	} else if (strncmp(url, "redis://", 8) == 0) {
		rest = url + 8;
		t->is_redis = true;
	} else {
		return -1;
	}
	if (t->is_unix) {
		if (*rest == '\0' || strlen(rest) >= sizeof(t->path))
			return -1;
		strcpy(t->path, rest);
	} else if (bench_split_host_port(rest, t->host, sizeof(t->host), t->port, sizeof(t->port)) <
	           0) {
		return -1;
	}
#ifdef BENCH_HAVE_REDIS
	t->wire = t->is_redis ? &wire_redis : &wire_sessd;
#else
	t->wire = t->is_redis ? NULL : &wire_sessd;
#endif
	return 0;
}

/* Connect (blocking), then switch to non-blocking. Returns the fd, or -1 with a message. */
static int bench_connect(const struct bench_target *t)
{
	int fd = -1, one = 1;

	if (t->is_unix) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		strcpy(sun.sun_path, t->path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			fprintf(stderr, "sessd-bench: cannot connect to %s: %s\n", t->path,
			        strerror(errno));
			goto fail;
		}
	} else {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
		int rc = getaddrinfo(t->host, t->port, &hints, &res);

		if (rc != 0) {
			fprintf(stderr, "sessd-bench: cannot resolve %s: %s\n", t->host,
			        gai_strerror(rc));
			goto fail;
		}
		for (ai = res; ai; ai = ai->ai_next) {
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd < 0)
				continue;
			if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
				break;
			close(fd);
			fd = -1;
		}
		if (!ai)
			fprintf(stderr, "sessd-bench: cannot connect to %s port %s: %s\n", t->host,
			        t->port, strerror(errno));
		freeaddrinfo(res);
		if (fd < 0)
			goto fail;
		/* Pipelined small requests must not wait for Nagle. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		goto fail;
	return fd;

fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

static int bench_conn_open(struct bench *b, struct bench_conn *c, const struct bench_target *t,
                           unsigned index)
{
	unsigned replies;

	c->b = b;
	c->fd = -1;
	buf_init(&c->out);
	buf_init(&c->plain);
	c->next_request_id = 1;
	workload_gen_init(&c->gen, BENCH_SEED * (index + 1) + 0x1234567);
	c->ring = calloc(b->opt.pipeline, sizeof(*c->ring));
	c->wire_state = b->wire->state_new();
	if (!c->ring || !c->wire_state) {
		fprintf(stderr, "sessd-bench: out of memory\n");
		return -1;
	}
	c->fd = bench_connect(t);
	if (c->fd < 0)
		return -1;
	c->read_ev = event_new(b->base, c->fd, EV_READ | EV_PERSIST, bench_on_read, c);
	c->write_ev = event_new(b->base, c->fd, EV_WRITE, bench_on_write, c);
	if (!c->read_ev || !c->write_ev || event_add(c->read_ev, NULL) < 0) {
		fprintf(stderr, "sessd-bench: cannot set up events\n");
		return -1;
	}
	if (b->wire->open(c->wire_state, &b->ctx, &c->out, c->next_request_id, &replies) < 0) {
		fprintf(stderr, "sessd-bench: out of memory\n");
		return -1;
	}
	if (replies)
		bench_conn_push(c, BENCH_KIND_OPEN, 0, c->next_request_id++, replies,
		                bench_now_ns());
	bench_conn_flush(c);
	return 0;
}

static void bench_conn_close(struct bench_conn *c)
{
	if (c->read_ev)
		event_free(c->read_ev);
	if (c->write_ev)
		event_free(c->write_ev);
	if (c->fd >= 0)
		close(c->fd);
	if (c->wire_state)
		c->b->wire->state_free(c->wire_state);
	buf_finish(&c->out);
	buf_finish(&c->plain);
	free(c->ring);
}

static double bench_us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void bench_report_load(const struct bench *b)
{
	double secs = (double)(b->load_end_ns - b->load_start_ns) / 1e9;

	if (b->opt.json)
		printf("{\"target\":\"%s\",\"loaded\":%" PRIu64 ",\"value_size\":%zu,"
		       "\"seconds\":%.3f,\"ops_per_sec\":%.0f,\"errors\":%" PRIu64 "}\n",
		       b->opt.target, b->opt.load, b->opt.value_size, secs,
		       secs > 0 ? (double)b->opt.load / secs : 0.0, b->load_errors);
	else
		printf("%s: loaded %" PRIu64 " sessions of %zu bytes in %.2f s (%.0f sets/s), "
		       "%" PRIu64 " errors\n",
		       b->opt.target, b->opt.load, b->opt.value_size, secs,
		       secs > 0 ? (double)b->opt.load / secs : 0.0, b->load_errors);
}

/* How the run's connections show the secret: "sealed", "plain" or "none". */
static const char *bench_auth_mode(const struct bench *b)
{
	if (!b->opt.auth_file)
		return "none";
	return b->opt.plain_auth ? "plain" : "sealed";
}

/* Per operation of ${ops}, or 0 without any. */
static double bench_per_op(double total, uint64_t ops)
{
	return ops ? total / (double)ops : 0;
}

/* --versus: the second side's figures, and the mix's over its own slices against them. */
static void bench_report_versus(const struct bench *b, double ops_s, double server_cpu)
{
	const struct bench_side *v = &b->sides[1];
	double secs = (double)v->ns / 1e9;
	double v_ops_s = secs > 0 ? (double)v->ops / secs : 0;
	double v_cpu = b->server_cpu_ok ? bench_per_op(v->server_cpu_s * 1e6, v->ops) : -1;
	double cpu = server_cpu >= 0 ? bench_per_op(server_cpu * 1e6, b->all.count) : -1;

	if (b->opt.json) {
		printf(
		    ",\"slice_s\":%.3f,\"slices\":%u,\"timed_s\":%.3f,\"versus\":{\"mix\":\"%s\","
		    "\"value_size\":%zu,\"slices\":%u,\"duration_s\":%.3f,\"ops\":%" PRIu64
		    ",\"ops_per_sec\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"errors\":%" PRIu64
		    ",\"client_cpu_us_per_op\":%.3f,\"bytes_sent_per_op\":%.1f,"
		    "\"bytes_received_per_op\":%.1f",
		    b->opt.slice_s, b->sides[0].slices,
		    (double)(b->timed_end_ns - b->timed_start_ns) / 1e9, b->opt.versus,
		    b->opt.versus_value_size, v->slices, secs, v->ops, v_ops_s,
		    bench_us(hist_quantile(&v->latency, 0.5)),
		    bench_us(hist_quantile(&v->latency, 0.99)), v->errors,
		    bench_per_op(v->client_cpu_s * 1e6, v->ops),
		    bench_per_op((double)v->bytes_sent, v->ops),
		    bench_per_op((double)v->bytes_received, v->ops));
		if (v_cpu >= 0)
			printf(",\"server_cpu_us_per_op\":%.3f", v_cpu);
		printf("},\"versus_ops_ratio\":%.4f", v_ops_s > 0 ? ops_s / v_ops_s : 0);
		if (v_cpu > 0 && cpu >= 0)
			printf(",\"versus_server_cpu_ratio\":%.4f", cpu / v_cpu);
		return;
	}
	printf("versus      %s (%zu-byte values) in %u alternate slices of %.3f s: %.0f ops/s, "
	       "p50 %.1f us, p99 %.1f us, %" PRIu64 " errors",
	       b->opt.versus, b->opt.versus_value_size, v->slices, b->opt.slice_s, v_ops_s,
	       bench_us(hist_quantile(&v->latency, 0.5)),
	       bench_us(hist_quantile(&v->latency, 0.99)), v->errors);
	if (v_cpu >= 0)
		printf(", server %.2f us/op", v_cpu);
	printf("\n            the mix against it: %.3f of its throughput",
	       v_ops_s > 0 ? ops_s / v_ops_s : 0);
	if (v_cpu > 0 && cpu >= 0)
		printf(", %.3f of its server CPU per op", cpu / v_cpu);
	printf("\n");
}

static void bench_report(const struct bench *b)
{
	/* With --versus the mix's figures are over its own slices. */
	double secs = b->opt.versus ? (double)b->sides[0].ns / 1e9
	                            : (double)(b->timed_end_ns - b->timed_start_ns) / 1e9;
	uint64_t ops = b->all.count, misses = 0, errors = 0;
	double ops_s = secs > 0 ? (double)ops / secs : 0;
	double server_cpu = -1, client_cpu = b->client_cpu_s[1] - b->client_cpu_s[0];

	for (int k = 0; k < WORKLOAD_KINDS; k++) {
		misses += b->kinds[k].misses;
		errors += b->kinds[k].errors;
	}
	if (b->opt.server_pid > 0 && b->server_cpu_ok)
		server_cpu = b->opt.versus ? b->sides[0].server_cpu_s
		                           : b->server_cpu_s[1] - b->server_cpu_s[0];
	if (b->opt.versus)
		client_cpu = b->sides[0].client_cpu_s;
	if (b->opt.json) {
		printf("{\"target\":\"%s\",\"server\":\"%s\",\"auth\":\"%s\","
		       "\"connections\":%u,\"pipeline\":%u,"
		       "\"value_size\":%zu,\"mix\":\"%s\",\"keys\":%" PRIu64 ",\"duration_s\":%.3f,"
		       "\"ops\":%" PRIu64 ",\"ops_per_sec\":%.0f,\"requests_per_sec\":%.0f,"
		       "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
		       "\"mean_us\":%.1f,\"errors\":%" PRIu64 ",\"misses\":%" PRIu64
		       ",\"load_errors\":%" PRIu64,
		       b->opt.target, b->wire->name, bench_auth_mode(b), b->opt.connections,
		       b->opt.pipeline, b->opt.value_size, b->opt.mix_text, b->opt.keys, secs, ops,
		       ops_s, secs > 0 ? (double)b->requests / secs : 0,
		       bench_us(hist_quantile(&b->all, 0.5)),
		       bench_us(hist_quantile(&b->all, 0.99)),
		       bench_us(hist_quantile(&b->all, 0.999)), bench_us(b->all.max),
		       hist_mean(&b->all) / 1000.0, errors, misses, b->load_errors);
		printf(",\"client_cpu_us_per_op\":%.3f", ops ? client_cpu * 1e6 / (double)ops : 0);
		printf(",\"bytes_sent_per_op\":%.1f,\"bytes_received_per_op\":%.1f",
		       bench_per_op((double)b->sides[0].bytes_sent, ops),
		       bench_per_op((double)b->sides[0].bytes_received, ops));
		if (server_cpu >= 0)
			printf(",\"server_cpu_s\":%.3f,\"server_cpu_us_per_op\":%.3f", server_cpu,
			       ops ? server_cpu * 1e6 / (double)ops : 0);
		if (b->stats_client != NULL && b->loop_ok)
			printf(",\"server_loop_stall_max_us\":%" PRIu64
			       ",\"server_loop_stalls_over_1ms\":%" PRIu64
			       ",\"server_loop_stalls_over_2ms\":%" PRIu64
			       ",\"server_loop_stalls_over_10ms\":%" PRIu64,
			       b->loop[1][0], b->loop[1][1] - b->loop[0][1],
			       b->loop[1][2] - b->loop[0][2], b->loop[1][3] - b->loop[0][3]);
		if (b->opt.expire_burst)
			printf(",\"burst_held\":%s", b->opt.hold ? "true" : "false");
		if (b->opt.expire_burst)
			printf(",\"expire_burst\":%" PRIu64 ",\"burst_ttl_ms\":%" PRIu64
			       ",\"max_at_s\":%.3f",
			       b->opt.expire_burst, b->burst_ttl_ms,
			       (double)(b->max_at_ns - b->timed_start_ns) / 1e9);
		printf(",\"per_op\":{");
		for (int k = 0, first = 1; k < WORKLOAD_KINDS; k++) {
			const struct bench_kind_stats *s = &b->kinds[k];

			if (!s->ops)
				continue;
			printf("%s\"%s\":{\"ops\":%" PRIu64 ",\"misses\":%" PRIu64
			       ",\"errors\":%" PRIu64 ",\"p50_us\":%.1f,\"p99_us\":%.1f}",
			       first ? "" : ",", workload_kind_name((enum workload_kind)k), s->ops,
			       s->misses, s->errors, bench_us(hist_quantile(&s->latency, 0.5)),
			       bench_us(hist_quantile(&s->latency, 0.99)));
			first = 0;
		}
		printf("}");
		if (b->opt.versus)
			bench_report_versus(b, ops_s, server_cpu);
		printf("}\n");
		return;
	}
	printf("target      %s (%s", b->opt.target, b->wire->name);
	if (b->opt.auth_file)
		printf(", %s", b->opt.plain_auth ? "the secret sent plain" : "sealed connections");
	printf(")\n");
	printf(
	    "load        %u connections x pipeline %u, %zu-byte values, %" PRIu64 " keys, mix %s\n",
	    b->opt.connections, b->opt.pipeline, b->opt.value_size, b->opt.keys, b->opt.mix_text);
	printf("throughput  %.0f ops/s (%" PRIu64 " ops in %.2f s; %.0f wire requests/s)\n", ops_s,
	       ops, secs, secs > 0 ? (double)b->requests / secs : 0);
	printf("latency     p50 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us  mean %.1f us\n",
	       bench_us(hist_quantile(&b->all, 0.5)), bench_us(hist_quantile(&b->all, 0.99)),
	       bench_us(hist_quantile(&b->all, 0.999)), bench_us(b->all.max),
	       hist_mean(&b->all) / 1000.0);
	if (b->stats_client != NULL && b->loop_ok)
		printf("server loop stalls over 1 / 2 / 10 ms in the run: %" PRIu64 " / %" PRIu64
		       " / %" PRIu64 "; longest since it started %" PRIu64 " us\n",
		       b->loop[1][1] - b->loop[0][1], b->loop[1][2] - b->loop[0][2],
		       b->loop[1][3] - b->loop[0][3], b->loop[1][0]);
	printf("outcomes    %" PRIu64 " errors, %" PRIu64 " misses", errors, misses);
	if (b->load_errors)
		printf(", %" PRIu64 " errors while loading", b->load_errors);
	printf("\n");
	for (int k = 0; k < WORKLOAD_KINDS; k++) {
		const struct bench_kind_stats *s = &b->kinds[k];

		if (!s->ops)
			continue;
		printf("  %-10s %5.1f%%  p50 %8.1f us  p99 %8.1f us  misses %" PRIu64
		       "  errors %" PRIu64 "\n",
		       workload_kind_name((enum workload_kind)k),
		       100.0 * (double)s->ops / (double)(ops ? ops : 1),
		       bench_us(hist_quantile(&s->latency, 0.5)),
		       bench_us(hist_quantile(&s->latency, 0.99)), s->misses, s->errors);
	}
	printf("cpu         client %.2f us/op", ops ? client_cpu * 1e6 / (double)ops : 0);
	if (server_cpu >= 0)
		printf(", server %.2f us/op (%.0f%% of a core)",
		       ops ? server_cpu * 1e6 / (double)ops : 0,
		       secs > 0 ? 100 * server_cpu / secs : 0);
	printf("\n");
	if (b->opt.versus)
		bench_report_versus(b, ops_s, server_cpu);
	if (b->opt.expire_burst && b->opt.hold)
		printf("burst       %" PRIu64 " sessions held with a 24 h ttl (baseline); worst "
		       "latency at %.2f s\n",
		       b->opt.expire_burst, (double)(b->max_at_ns - b->timed_start_ns) / 1e9);
	else if (b->opt.expire_burst)
		printf("burst       %" PRIu64 " sessions with ttl %" PRIu64
		       " ms expired during the run; worst latency at %.2f s\n",
		       b->opt.expire_burst, b->burst_ttl_ms,
		       (double)(b->max_at_ns - b->timed_start_ns) / 1e9);
}

static void bench_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: sessd-bench --target URL [options]\n"
	    "  --target URL         unix:/path or tcp://host:port (sessd),\n"
	    "                       redis://host:port or redis+unix:/path (Redis)\n"
	    "  --connections N      connections, all on one event loop (default 50)\n"
	    "  --pipeline N         requests in flight per connection (default 1)\n"
	    "  --value-size BYTES   session JSON size for SET and echo (default 1024)\n"
	    "  --duration SECONDS   timed run (default 5)\n"
	    "  --warmup SECONDS     run before timing starts (default 1)\n"
	    "  --mix SPEC           default " BENCH_DEFAULT_MIX "\n"
	    "                       (flash = FLASH_PUSH then FLASH_POP; ping=100 for the "
	    "transport;\n"
	    "                       echo=100: PINGs carrying --value-size bytes, answered with "
	    "them)\n"
	    "  --keys N             sessions SET before the run, GETs pick among them (default "
	    "10000)\n"
	    "  --namespace NS       sessd namespace / Redis key prefix \"NS:\"\n"
	    "  --expire-burst N     also SET N sessions that all expire at one instant mid-run\n"
	    "  --hold               with --expire-burst: give them a 24 h ttl instead (the\n"
	    "                       baseline: the same memory, nothing expiring)\n"
	    "  --burst-namespaces   with --expire-burst: each of them in a namespace of its\n"
	    "                       own (sessd; a key prefix of its own for Redis)\n"
	    "  --load N             only SET N sessions (ttl 24 h) and exit\n"
	    "  --load-flashes N     with --load: then push N flash messages to each of them\n"
	    "  --server-pid PID     report the server's CPU per operation over the timed run\n"
	    "  --auth-file FILE     (sessd) the secret of sessd --auth-file FILE, read as sessd\n"
	    "                       reads it; every connection is sealed with it (a key\n"
	    "                       exchange in HELLO, then ChaCha20-Poly1305 records)\n"
	    "  --plain-auth         with --auth-file: send the secret in HELLO as it is and\n"
	    "                       seal nothing (what sealing costs is the difference)\n"
	    "  --versus SPEC        alternate the timed run in slices between the mix and SPEC\n"
	    "                       (ping and echo only, e.g. echo=100) on the same connections;\n"
	    "                       each is reported over its own slices, with their ratio\n"
	    "  --versus-value-size BYTES  the echo's payload for --versus (default --value-size)\n"
	    "  --slice SECONDS      --versus slice length (default 0.1)\n"
	    "  --json               print one JSON object\n");
}

static int bench_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s == '\0' || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int bench_parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	if (!s || *s == '\0')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v >= 0) || v > 86400)
		return -1;
	*out = v;
	return 0;
}

/* Returns 0, or -1 after printing what is wrong (a usage error). */
static int bench_parse_args(int argc, char **argv, struct bench_options *o)
{
	static const struct option longs[] = {
	    {"target", required_argument, NULL, 't'},
	    {"connections", required_argument, NULL, 'c'},
	    {"pipeline", required_argument, NULL, 'P'},
	    {"value-size", required_argument, NULL, 'd'},
	    {"duration", required_argument, NULL, 'D'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"mix", required_argument, NULL, 'm'},
	    {"keys", required_argument, NULL, 'k'},
	    {"namespace", required_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},
	    {"load", required_argument, NULL, 'L'},
	    {"load-flashes", required_argument, NULL, 'F'},
	    {"expire-burst", required_argument, NULL, 'E'},
	    {"burst-namespaces", no_argument, NULL, 'B'},
	    {"hold", no_argument, NULL, 'H'},
	    {"server-pid", required_argument, NULL, 'p'},
	    {"auth-file", required_argument, NULL, 'a'},
	    {"plain-auth", no_argument, NULL, 'A'},
	    {"versus", required_argument, NULL, 'V'},
	    {"versus-value-size", required_argument, NULL, 'W'},
	    {"slice", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	uint64_t v;
	int ch, idx = 0;

	*o = (struct bench_options){
	    .connections = 50,
	    .pipeline = 1,
	    .value_size = 1024,
	    .duration_s = 5,
	    .warmup_s = 1,
	    .mix_text = BENCH_DEFAULT_MIX,
	    .keys = 10000,
	    .slice_s = BENCH_SLICE_S,
	};
	while ((ch = getopt_long(argc, argv, "", longs, &idx)) != -1) {
		int bad = 0;

		switch (ch) {
		case 't':
			o->target = optarg;
			break;
		case 'c':
			bad = bench_parse_u64(optarg, 10000, &v) || v == 0;
			o->connections = (unsigned)v;
			break;
		case 'P':
			bad = bench_parse_u64(optarg, 100000, &v) || v == 0;
			o->pipeline = (unsigned)v;
			break;
		case 'd':
			bad = bench_parse_u64(optarg, 64u * 1024 * 1024, &v);
			o->value_size = (size_t)v;
			break;
		case 'D':
			bad = bench_parse_seconds(optarg, &o->duration_s) || o->duration_s <= 0;
			break;
		case 'w':
			bad = bench_parse_seconds(optarg, &o->warmup_s);
			break;
		case 'm':
			o->mix_text = optarg;
			break;
		case 'k':
			bad = bench_parse_u64(optarg, 1ull << 32, &o->keys) || o->keys == 0;
			break;
		case 'n':
			o->ns = optarg;
			bad = strlen(optarg) == 0 || strlen(optarg) > 64;
			break;
		case 'j':
			o->json = true;
			break;
		case 'L':
			bad = bench_parse_u64(optarg, 1ull << 32, &o->load) || o->load == 0;
			break;
		case 'F':
			bad = bench_parse_u64(optarg, 64, &o->load_flashes);
			break;
		case 'E':
			bad = bench_parse_u64(optarg, 1ull << 31, &o->expire_burst);
			break;
		case 'H':
			o->hold = true;
			break;
		case 'B':
			o->burst_namespaces = true;
			break;
		case 'p':
			bad = bench_parse_u64(optarg, 1u << 30, &v) || v == 0;
			o->server_pid = (long)v;
			break;
		case 'a':
			o->auth_file = optarg;
			break;
		case 'A':
			o->plain_auth = true;
			break;
		case 'V':
			o->versus = optarg;
			break;
		case 'W':
			bad = bench_parse_u64(optarg, 64u * 1024 * 1024, &v) || v == 0;
			o->versus_value_size = (size_t)v;
			break;
		case 'S':
			bad = bench_parse_seconds(optarg, &o->slice_s) ||
			      o->slice_s < BENCH_MIN_SLICE_S;
			break;
		case 'h':
			bench_usage(stdout);
			exit(BENCH_EXIT_OK);
		default:
			bench_usage(stderr);
			return -1;
		}
		if (bad) {
			fprintf(stderr, "sessd-bench: bad value for --%s: %s\n", longs[idx].name,
			        optarg);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sessd-bench: unexpected argument: %s\n", argv[optind]);
		return -1;
	}
	if (!o->target) {
		fprintf(stderr, "sessd-bench: --target is required\n");
		bench_usage(stderr);
		return -1;
	}
	if (o->value_size == 0) {
		fprintf(stderr, "sessd-bench: --value-size must be at least 1\n");
		return -1;
	}
	if (o->plain_auth && !o->auth_file) {
		fprintf(stderr, "sessd-bench: --plain-auth needs --auth-file\n");
		return -1;
	}
	if (o->burst_namespaces && !o->expire_burst) {
		fprintf(stderr, "sessd-bench: --burst-namespaces needs --expire-burst\n");
		return -1;
	}
	if (o->load_flashes && !o->load) {
		fprintf(stderr, "sessd-bench: --load-flashes goes with --load\n");
		return -1;
	}
	if (o->versus && (o->load || o->expire_burst)) {
		fprintf(stderr,
		        "sessd-bench: --versus does not go with --load or --expire-burst\n");
		return -1;
	}
	if (!o->versus_value_size)
		o->versus_value_size = o->value_size;
	return 0;
}

/*
 * Read the secret of ${path} as sessd reads its --auth-file (daemon/auth.c): a regular file
 * other users cannot access, its bytes less one trailing newline ("\n" or "\r\n"), 16 to
 * 1024 of them. Returns 0 with it in b->secret (sodium_malloc'd, b's to free), or -1 after
 * saying what is wrong.
 */
static int bench_read_secret(struct bench *b, const char *path)
{
	/* Room for the longest secret, its "\r\n", and one byte to notice a longer file. */
	const size_t cap = BENCH_MAX_SECRET + 3;
	const char *why = NULL;
	struct stat sb;
	size_t len = 0;
	ssize_t got;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		why = strerror(errno);
		goto fail;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		why = "not a regular file";
		goto fail_close;
	}
	if ((sb.st_mode & 0007) != 0) {
		why = "other users can access it (sessd refuses it too; chmod o-rwx it)";
		goto fail_close;
	}
	b->secret = sodium_malloc(cap);
	if (b->secret == NULL) {
		why = "out of memory";
		goto fail_close;
	}
	while (len < cap) {
		got = read(fd, b->secret + len, cap - len);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			why = strerror(errno);
			goto fail_close;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	if (len > 0 && b->secret[len - 1] == '\n')
		len--;
	if (len > 0 && b->secret[len - 1] == '\r')
		len--;
	if (len < BENCH_MIN_SECRET || len > BENCH_MAX_SECRET) {
		why = "the secret must be 16 to 1024 bytes, as sessd requires";
		goto fail_close;
	}
	b->secret_len = len;
	close(fd);
	return 0;

fail_close:
	close(fd);
fail:
	fprintf(stderr, "sessd-bench: --auth-file %s: %s\n", path, why);
	return -1;
}

/*
 * Make what HELLO shows of b->secret: the secret as MessagePack bin (--plain-auth) or the
 * key a key exchange proves, and point b->ctx at it. Returns 0, or -1 out of memory.
 */
static int bench_prepare_auth(struct bench *b)
{
	size_t header = b->secret_len <= 0xff ? 2 : 3;

	if (!b->opt.plain_auth) {
		b->psk = sodium_malloc(SEAL_PSK_BYTES);
		if (b->psk == NULL)
			return -1;
		seal_psk(b->psk, b->secret, b->secret_len);
		b->ctx.psk = b->psk;
		return 0;
	}
	b->auth_field = sodium_malloc(header + b->secret_len);
	if (b->auth_field == NULL)
		return -1;
	/* bin 8 or bin 16, written here so the secret goes only into guarded memory. */
	if (header == 2) {
		b->auth_field[0] = 0xc4;
		b->auth_field[1] = (uint8_t)b->secret_len;
	} else {
		b->auth_field[0] = 0xc5;
		b->auth_field[1] = (uint8_t)(b->secret_len >> 8);
		b->auth_field[2] = (uint8_t)b->secret_len;
	}
	memcpy(b->auth_field + header, b->secret, b->secret_len);
	b->auth_field_len = header + b->secret_len;
	b->ctx.auth = b->auth_field;
	b->ctx.auth_len = b->auth_field_len;
	return 0;
}

int main(int argc, char **argv)
{
	struct bench *b;
	struct bench_target target;
	int rc = BENCH_EXIT_FAIL;
	uint64_t ids;

	/* The histograms make the struct large; it lives on the heap. */
	b = calloc(1, sizeof(*b));
	if (!b) {
		fprintf(stderr, "sessd-bench: out of memory\n");
		return BENCH_EXIT_FAIL;
	}
	if (bench_parse_args(argc, argv, &b->opt) < 0) {
		rc = BENCH_EXIT_USAGE;
		goto out_free;
	}
	if (bench_parse_target(b->opt.target, &target) < 0) {
		fprintf(stderr,
		        "sessd-bench: bad --target %s (want unix:/path, tcp://host:port, "
		        "redis://host:port or redis+unix:/path)\n",
		        b->opt.target);
		rc = BENCH_EXIT_USAGE;
		goto out_free;
	}
	if (!target.wire) {
		fprintf(stderr, "sessd-bench: this build has no Redis support (hiredis was not "
		                "found; rebuild with libhiredis-dev and -Dbench_redis=enabled)\n");
		rc = BENCH_EXIT_USAGE;
		goto out_free;
	}
	if (workload_mix_parse(&b->mix, b->opt.mix_text) < 0) {
		fprintf(stderr, "sessd-bench: bad --mix %s (want e.g. %s or ping=100)\n",
		        b->opt.mix_text, BENCH_DEFAULT_MIX);
		rc = BENCH_EXIT_USAGE;
		goto out_free;
	}
	if (b->opt.versus && (workload_mix_parse(&b->versus_mix, b->opt.versus) < 0 ||
	                      b->versus_mix.total != b->versus_mix.weight[WORKLOAD_PING] +
	                                                 b->versus_mix.weight[WORKLOAD_ECHO])) {
		/* Only store-free operations: the other side's sessions stay as its mix left them.
		 */
		fprintf(stderr,
		        "sessd-bench: bad --versus %s (want ping and echo only, e.g. echo=100)\n",
		        b->opt.versus);
		rc = BENCH_EXIT_USAGE;
		goto out_free;
	}
	if (b->opt.auth_file && target.is_redis) {
		fprintf(stderr, "sessd-bench: --auth-file is for a sessd target\n");
		rc = BENCH_EXIT_USAGE;
		goto out_free;
	}
	b->server_cpu_ok = true;
	b->wire = target.wire;
	if (b->opt.auth_file) {
		if (sodium_init() < 0) {
			fprintf(stderr, "sessd-bench: libsodium cannot start\n");
			goto out_free;
		}
		if (bench_read_secret(b, b->opt.auth_file) < 0) {
			rc = BENCH_EXIT_USAGE;
			goto out_free;
		}
		if (!b->opt.plain_auth)
			b->wire = &wire_sessd_sealed;
	}
	for (int k = 0; k < WORKLOAD_KINDS; k++)
		hist_init(&b->kinds[k].latency);
	hist_init(&b->all);
	hist_init(&b->sides[1].latency);
	ids = b->opt.load ? b->opt.load : b->opt.keys + b->opt.expire_burst;
	b->workload = workload_new(ids, b->opt.value_size, BENCH_SEED);
	b->read_scratch = malloc(BENCH_READ_BYTES);
	b->conns = calloc(b->opt.connections, sizeof(*b->conns));
	b->base = event_base_new();
	if (!b->workload || !b->read_scratch || !b->conns || !b->base) {
		fprintf(stderr, "sessd-bench: out of memory\n");
		goto out_free;
	}
	b->timer = evtimer_new(b->base, bench_on_timer, b);
	if (!b->timer)
		goto out_free;
	if (b->opt.versus) {
		/* Its own values, for an echo of --versus-value-size; the ids are never sent. */
		b->versus_workload = workload_new(1, b->opt.versus_value_size, BENCH_SEED);
		b->slice_timer = evtimer_new(b->base, bench_on_slice, b);
		if (!b->versus_workload || !b->slice_timer) {
			fprintf(stderr, "sessd-bench: out of memory\n");
			goto out_free;
		}
	}
	b->ctx.workload = b->workload;
	b->ctx.ns = b->opt.ns;
	if (b->secret != NULL && bench_prepare_auth(b) < 0) {
		fprintf(stderr, "sessd-bench: out of memory\n");
		goto out_free;
	}
	b->phase = PHASE_HELLO;
	/* sessd reports its loop's stalls; sample them beside the CPU. */
	if (strcmp(b->wire->name, "sessd") == 0 && !b->opt.load) {
		struct sessd_options so = {
		    .client_name = "sessd-bench stats",
		    .auth = b->secret,
		    .auth_len = b->secret_len,
		    .plain_auth = b->opt.plain_auth,
		};

		b->loop_ok = sessd_connect(b->opt.target, &so, &b->stats_client) == SESSD_OK;
	}
	for (unsigned i = 0; i < b->opt.connections; i++)
		if (bench_conn_open(b, &b->conns[i], &target, i) < 0)
			goto out_close;
	bench_check_phase_done(b);
	if (b->phase != PHASE_DONE && event_base_dispatch(b->base) < 0)
		bench_fail(b, "event loop failure");
	rc = b->exit_code;
	if (rc == BENCH_EXIT_OK) {
		if (b->opt.load)
			bench_report_load(b);
		else
			bench_report(b);
	}

out_close:
	for (unsigned i = 0; i < b->opt.connections; i++)
		if (b->conns[i].b)
			bench_conn_close(&b->conns[i]);
out_free:
	sessd_close(b->stats_client);
	if (b->timer)
		event_free(b->timer);
	if (b->slice_timer)
		event_free(b->slice_timer);
	if (b->base)
		event_base_free(b->base);
	free(b->conns);
	free(b->read_scratch);
	workload_free(b->workload);
	workload_free(b->versus_workload);
	sodium_free(b->secret);
	sodium_free(b->auth_field);
	sodium_free(b->psk);
	free(b);
	return rc;
}
