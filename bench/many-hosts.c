/*
 * many-hosts: what one attacker posing as many hosts costs a web server's pool, against a
 * running sessd on loopback. Linux routes all of 127.0.0.0/8 to loopback, so one process can
 * bind() its connections to thousands of 127.x.y.z addresses and look like thousands of hosts
 * to sessd's connection limit, which tells TCP clients apart by address.
 *
 * The web server: --pool threads, each a libsessd client (sessd_connect, which reconnects on
 * its next call when its connection is lost) doing a session mix (GET 70%, SET 20%, TOUCH 10%)
 * against tcp://127.0.0.1:PORT as fast as it is answered. Halfway through, each closes its
 * client and connects again, as a restarted web server does. It reports the calls, their
 * p50/p99/max, the calls that failed by code, and how long the reconnects took.
 *
 * The attacker, one process, from --hosts addresses 127.1.x.y, one connection each at a time,
 * opening the next as soon as one is closed:
 *   hello   say a plain HELLO (no secret), then a PING every 0.5 s so as never to look idle;
 *   connect say nothing, hold the slot until the daemon closes it;
 *   sealed  send a sealed HELLO made with --attack-secret (the right secret or a wrong one;
 *           an own key exchange each), read the reply and close (a guesser, or a fleet
 *           reconnecting with the right secret);
 *   sealed-hangup  the same, closing right after the HELLO is sent (a replay that hangs up).
 *
 * The web server's threads start first and hold their pool for 1 s; the attack then runs for
 * --duration seconds. Nothing here is a test: the figures depend on the machine and its load.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "codec.h"
#include "mp.h"
#include "seal.h"
#include "sessd.h"

#define HOSTS_MAX_POOL    256
#define HOSTS_MAX_SAMPLES (1u << 22)
#define HOSTS_SESSIONS    1000

enum attack { ATTACK_NONE, ATTACK_HELLO, ATTACK_CONNECT, ATTACK_SEALED, ATTACK_SEALED_HANGUP };

struct config {
	unsigned port;
	int pool;
	int hosts;
	double duration_s;
	enum attack attack;
	const char *auth_file;     /* the web server's secret (sealed), or NULL */
	const char *attack_secret; /* the attacker's (sealed attack) */
	double backoff_s; /* the attacker waits this long before it replaces a lost connection */
	double restart_gap_s; /* the web server is down this long at its restart */
	bool replay;          /* sealed: one HELLO made once and sent on every connection */
	bool ipv6;            /* the web server connects to [::1]:v6_port */
	unsigned v6_port;
};

struct legit {
	const struct config *cfg;
	pthread_t thread;
	double *samples;
	size_t nsamples;
	uint64_t calls, failed, busy, connect_errors, other_errors;
	double reconnect_s; /* the restart's sessd_connect until it succeeded */
	int reconnect_tries;
	char last_error[160];
};

static atomic_bool stop_legit;
static double start_s;

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int legit_connect(struct legit *l, struct sessd_client **c)
{
	struct sessd_options opts = {
	    .timeout_ms = 2000, .client_name = "web", .auth_file = l->cfg->auth_file};
	char url[128];

	snprintf(url, sizeof(url), "tcp://%s:%u", l->cfg->ipv6 ? "[::1]" : "127.0.0.1",
	         l->cfg->ipv6 ? l->cfg->v6_port : l->cfg->port);
	return sessd_connect_errbuf(url, &opts, c, l->last_error, sizeof(l->last_error));
}

static void count_error(struct legit *l, int code)
{
	l->failed++;
	if (code == SESSD_ERR_BUSY)
		l->busy++;
	else if (code == SESSD_ERR_CONNECT)
		l->connect_errors++;
	else
		l->other_errors++;
}

static void *legit_run(void *arg)
{
	struct legit *l = arg;
	struct sessd_client *c = NULL;
	uint64_t rng = (uint64_t)(uintptr_t)l * 0x9E3779B97F4A7C15ULL + 1;
	char data[512];
	bool restarted = false;
	double restart_s = 0;
	int rc;

	memset(data, 'x', sizeof(data));
	while (legit_connect(l, &c) != SESSD_OK)
		usleep(10000);
	while (!atomic_load(&stop_legit)) {
		char id[32];
		double t0 = mono_s();
		void *got = NULL;
		size_t got_len;
		unsigned pick;

		if (!restarted && t0 - start_s > 1.0 + l->cfg->duration_s / 2) {
			/* The web server restarts: its pool goes, and it opens one again. Its
			 * reconnect is timed to its first call answered (a sealed connection is
			 * admitted with its first request, not its HELLO). */
			restarted = true;
			sessd_close(c);
			c = NULL;
			usleep((useconds_t)(l->cfg->restart_gap_s * 1e6));
			restart_s = mono_s();
			for (;;) {
				l->reconnect_tries++;
				rc = legit_connect(l, &c);
				if (rc == SESSD_OK)
					break;
				count_error(l, rc);
				if (atomic_load(&stop_legit)) {
					l->reconnect_s = -1;
					goto out;
				}
				usleep(10000);
			}
			continue;
		}
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		snprintf(id, sizeof(id), "s%llu", (unsigned long long)(rng % HOSTS_SESSIONS));
		pick = (unsigned)(rng >> 40) % 10;
		if (pick < 7) {
			rc = sessd_get(c, id, strlen(id), &got, &got_len);
			free(got);
			if (rc == SESSD_NOT_FOUND)
				rc = SESSD_OK;
		} else if (pick < 9) {
			rc = sessd_set(c, id, strlen(id), data, sizeof(data), 600000);
		} else {
			rc = sessd_touch(c, id, strlen(id), 600000);
			if (rc == SESSD_NOT_FOUND)
				rc = SESSD_OK;
		}
		l->calls++;
		if (rc != SESSD_OK) {
			count_error(l, rc);
			snprintf(l->last_error, sizeof(l->last_error), "%s", sessd_errmsg(c));
			usleep(10000);
			continue;
		}
		if (restart_s > 0) {
			l->reconnect_s = mono_s() - restart_s;
			restart_s = 0;
		}
		if (t0 - start_s > 1.0 && l->nsamples < HOSTS_MAX_SAMPLES / HOSTS_MAX_POOL)
			l->samples[l->nsamples++] = mono_s() - t0;
	}
out:
	if (restart_s > 0)
		l->reconnect_s = -1; /* never served again */
	sessd_close(c);
	return NULL;
}

/* One attacker connection. */
struct slot {
	int fd;
	uint32_t source; /* index of its 127.1.x.y address */
	double next_ping_s;
	double reopen_s; /* closed: when to open it again */
	struct buf in;
	bool hello_sent;
};

static void source_addr(uint32_t i, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	/* 127.1.0.1 onwards: never 127.0.0.1, the web server's. */
	sa->sin_addr.s_addr = htonl(0x7f010000u + 1u + i);
}

static int encode_hello(struct buf *out, const uint8_t *secret, size_t secret_len)
{
	struct codec_request req = {
	    .op = CODEC_OP_HELLO, .version = CODEC_PROTOCOL_VERSION, .request_id = 1};
	struct buf auth;
	int ret = -1;

	buf_init(&auth);
	req.client_name = (struct mp_bytes){(const uint8_t *)"host", 4};
	if (secret != NULL) {
		uint8_t psk[SEAL_PSK_BYTES], pub[SEAL_KEY_BYTES], proof[SEAL_PROOF_BYTES];
		struct seal *s;

		seal_psk(psk, secret, secret_len);
		s = seal_client_new(psk, pub, proof);
		if (s == NULL)
			goto out;
		seal_free(s);
		if (mp_write_map(&auth, 2) == -1 || mp_write_str(&auth, "kx", 2) == -1 ||
		    mp_write_bin(&auth, pub, sizeof(pub)) == -1 ||
		    mp_write_str(&auth, "proof", 5) == -1 ||
		    mp_write_bin(&auth, proof, sizeof(proof)) == -1)
			goto out;
	} else if (mp_write_nil(&auth) == -1) {
		goto out;
	}
	req.auth = (struct mp_bytes){auth.data, auth.len};
	ret = codec_encode_request(out, &req);
out:
	buf_finish(&auth);
	return ret;
}

static int open_slot(const struct config *cfg, int ep, struct slot *s, uint32_t *next_source)
{
	struct sockaddr_in from,
	    to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port)};
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
	int one = 1;

	s->source = (*next_source)++ % (uint32_t)cfg->hosts;
	source_addr(s->source, &from);
	inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (s->fd == -1)
		return -1;
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->fd, (struct sockaddr *)&from, sizeof(from)) == -1 ||
	    (connect(s->fd, (struct sockaddr *)&to, sizeof(to)) == -1 && errno != EINPROGRESS) ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) == -1) {
		close(s->fd);
		s->fd = -1;
		return -1;
	}
	s->hello_sent = false;
	s->next_ping_s = 0;
	buf_reset(&s->in);
	return 0;
}

/* The attacker: runs until killed; counts what it did on stdout when told SIGTERM. */
static volatile sig_atomic_t attacker_stop;
static void on_term(int sig)
{
	(void)sig;
	attacker_stop = 1;
}

static int read_secret(const char *path, uint8_t *out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(out, 1, 1024, f);
	fclose(f);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		n--;
	*len = n;
	return n >= 16 ? 0 : -1;
}

static void attacker_run(const struct config *cfg)
{
	int ep = epoll_create1(0), held = cfg->hosts;
	struct slot *slots = calloc((size_t)held, sizeof(*slots));
	uint32_t next_source = 0;
	uint64_t opened = 0, closed = 0, hellos = 0, ok = 0, refused = 0;
	uint8_t secret[1024];
	size_t secret_len = 0;
	struct buf hello, ping;
	struct codec_request preq = {.op = CODEC_OP_PING, .request_id = 2};

	signal(SIGTERM, on_term);
	signal(SIGPIPE, SIG_IGN);
	buf_init(&hello);
	buf_init(&ping);
	if ((cfg->attack == ATTACK_SEALED || cfg->attack == ATTACK_SEALED_HANGUP) &&
	    read_secret(cfg->attack_secret, secret, &secret_len))
		_exit(2);
	if (cfg->attack != ATTACK_SEALED && cfg->attack != ATTACK_SEALED_HANGUP)
		encode_hello(&hello, NULL, 0);
	codec_encode_request(&ping, &preq);
	for (int i = 0; i < held; i++) {
		buf_init(&slots[i].in);
		if (open_slot(cfg, ep, &slots[i], &next_source) == 0)
			opened++;
	}
	while (!attacker_stop) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, 50);
		double now = mono_s();

		for (int k = 0; k < n; k++) {
			struct slot *s = evs[k].data.ptr;
			bool dead = (evs[k].events & (EPOLLERR | EPOLLHUP)) != 0;

			if (!dead && (evs[k].events & EPOLLOUT) && !s->hello_sent &&
			    cfg->attack != ATTACK_CONNECT) {
				if ((cfg->attack == ATTACK_SEALED ||
				     cfg->attack == ATTACK_SEALED_HANGUP) &&
				    (!cfg->replay || hello.len == 0)) {
					buf_reset(&hello);
					encode_hello(&hello, secret, secret_len);
				}
				dead = send(s->fd, hello.data, hello.len, MSG_NOSIGNAL) !=
				       (ssize_t)hello.len;
				s->hello_sent = true;
				hellos++;
				dead = dead || cfg->attack == ATTACK_SEALED_HANGUP;
				s->next_ping_s = now + 0.5;
			}
			if (!dead && (evs[k].events & EPOLLIN)) {
				uint8_t tmp[4096];
				ssize_t got = recv(s->fd, tmp, sizeof(tmp), 0);

				if (got <= 0) {
					dead = true;
				} else if (s->in.len < 8) {
					buf_append(&s->in, tmp, (size_t)got);
					if (s->in.len >= 6 && s->in.len <= (size_t)got + 8) {
						/* The first reply: [rid, status, ...] after the
						 * header; status 0 is OK (a fixint right after the
						 * rid). */
						bool is_ok = s->in.len > 6 && s->in.data[6] == 0;

						is_ok ? ok++ : refused++;
						if (cfg->attack == ATTACK_SEALED)
							dead = true;
					}
				}
			}
			if (dead) {
				epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
				close(s->fd);
				closed++;
				s->fd = -1;
				s->reopen_s = now + cfg->backoff_s;
			} else if (s->hello_sent && (evs[k].events & EPOLLOUT)) {
				struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};

				epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
			}
		}
		if (cfg->attack == ATTACK_HELLO)
			for (int i = 0; i < held; i++)
				if (slots[i].fd != -1 && slots[i].hello_sent &&
				    slots[i].next_ping_s < now) {
					(void)!send(slots[i].fd, ping.data, ping.len, MSG_NOSIGNAL);
					slots[i].next_ping_s = now + 0.5;
				}
		for (int i = 0; i < held; i++)
			if (slots[i].fd == -1 && slots[i].reopen_s <= now &&
			    open_slot(cfg, ep, &slots[i], &next_source) == 0)
				opened++;
	}
	printf("attacker: %llu connections opened, %llu closed, %llu HELLOs sent, first replies "
	       "%llu OK and %llu not\n",
	       (unsigned long long)opened, (unsigned long long)closed, (unsigned long long)hellos,
	       (unsigned long long)ok, (unsigned long long)refused);
	fflush(stdout);
	_exit(0);
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void usage(void)
{
	fprintf(stderr, "usage: many-hosts --port PORT [--pool N] [--hosts N] [--duration S]\n"
	                "                  [--attack none|hello|connect|sealed|sealed-hangup]\n"
	                "                  [--attack-secret FILE [--replay]]\n"
	                "                  [--auth-file FILE] [--ipv6-port PORT] [--backoff S]\n"
	                "                  [--restart-gap S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct config cfg = {.pool = 16, .hosts = 1000, .duration_s = 10};
	struct legit *legit;
	double *all;
	size_t total = 0;
	uint64_t calls = 0, failed = 0, busy = 0, conn_err = 0, other = 0;
	double worst_reconnect = 0, sum_reconnect = 0;
	pid_t attacker = -1;
	int never = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--replay") == 0) {
			cfg.replay = true;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--ipv6-port") == 0) {
			cfg.ipv6 = true;
			cfg.v6_port = (unsigned)atoi(v);
		} else if (strcmp(a, "--port") == 0)
			cfg.port = (unsigned)atoi(v);
		else if (strcmp(a, "--pool") == 0)
			cfg.pool = atoi(v);
		else if (strcmp(a, "--hosts") == 0)
			cfg.hosts = atoi(v);
		else if (strcmp(a, "--duration") == 0)
			cfg.duration_s = atof(v);
		else if (strcmp(a, "--backoff") == 0)
			cfg.backoff_s = atof(v);
		else if (strcmp(a, "--restart-gap") == 0)
			cfg.restart_gap_s = atof(v);
		else if (strcmp(a, "--auth-file") == 0)
			cfg.auth_file = v;
		else if (strcmp(a, "--attack-secret") == 0)
			cfg.attack_secret = v;
		else if (strcmp(a, "--attack") == 0)
			cfg.attack = strcmp(v, "hello") == 0           ? ATTACK_HELLO
			             : strcmp(v, "connect") == 0       ? ATTACK_CONNECT
			             : strcmp(v, "sealed") == 0        ? ATTACK_SEALED
			             : strcmp(v, "sealed-hangup") == 0 ? ATTACK_SEALED_HANGUP
			             : strcmp(v, "none") == 0          ? ATTACK_NONE
			                                               : (usage(), ATTACK_NONE);
		else
			usage();
	}
	if (cfg.port == 0 || cfg.pool < 1 || cfg.pool > HOSTS_MAX_POOL || cfg.hosts < 1 ||
	    ((cfg.attack == ATTACK_SEALED || cfg.attack == ATTACK_SEALED_HANGUP) &&
	     cfg.attack_secret == NULL))
		usage();
	if (sodium_init() < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	legit = calloc((size_t)cfg.pool, sizeof(*legit));
	start_s = mono_s();
	for (int i = 0; i < cfg.pool; i++) {
		legit[i].cfg = &cfg;
		legit[i].samples = malloc(sizeof(double) * (HOSTS_MAX_SAMPLES / HOSTS_MAX_POOL));
		pthread_create(&legit[i].thread, NULL, legit_run, &legit[i]);
	}
	usleep(1000000);
	if (cfg.attack != ATTACK_NONE) {
		fflush(stdout);
		attacker = fork();
		if (attacker == 0)
			attacker_run(&cfg);
	}
	usleep((useconds_t)(cfg.duration_s * 1e6));
	atomic_store(&stop_legit, true);
	for (int i = 0; i < cfg.pool; i++)
		pthread_join(legit[i].thread, NULL);
	if (attacker > 0) {
		kill(attacker, SIGTERM);
		waitpid(attacker, NULL, 0);
	}
	all = malloc(sizeof(double) * HOSTS_MAX_SAMPLES);
	for (int i = 0; i < cfg.pool; i++) {
		memcpy(all + total, legit[i].samples, legit[i].nsamples * sizeof(double));
		total += legit[i].nsamples;
		calls += legit[i].calls;
		failed += legit[i].failed;
		busy += legit[i].busy;
		conn_err += legit[i].connect_errors;
		other += legit[i].other_errors;
		if (legit[i].reconnect_s < 0) {
			never++;
			continue;
		}
		sum_reconnect += legit[i].reconnect_s;
		if (legit[i].reconnect_s > worst_reconnect)
			worst_reconnect = legit[i].reconnect_s;
	}
	qsort(all, total, sizeof(double), compare_double);
	printf("web server: %d connections, %llu calls (%.0f/s), %llu failed (%llu BUSY, %llu "
	       "cannot connect, %llu other)\n",
	       cfg.pool, (unsigned long long)calls, (double)calls / (cfg.duration_s + 1),
	       (unsigned long long)failed, (unsigned long long)busy, (unsigned long long)conn_err,
	       (unsigned long long)other);
	if (total > 0)
		printf("web server: calls answered OK: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
		       all[total / 2] * 1e3, all[total * 99 / 100] * 1e3, all[total - 1] * 1e3);
	printf("web server: restart at %.1f s (down %.1f s): %d of %d connections served again, "
	       "in mean %.3f s, worst %.3f s\n",
	       1.0 + cfg.duration_s / 2, cfg.restart_gap_s, cfg.pool - never, cfg.pool,
	       cfg.pool > never ? sum_reconnect / (cfg.pool - never) : 0.0, worst_reconnect);
	for (int i = 0; i < cfg.pool; i++)
		if (legit[i].failed > 0) {
			printf("web server: a last error: %s\n", legit[i].last_error);
			break;
		}
	return 0;
}
