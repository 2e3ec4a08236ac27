/*
 * turn-flood: what one kind of hostile load costs another client's PING, against a running
 * sessd. Two loads, each one of the turn budgets of bench/README.md ("Tiny sealed records and
 * large FLASH_POPs"):
 *
 *   records: N sealed connections each write K KB of 1-byte sealed records holding PINGs, in
 *            one go, while another sealed connection PINGs once a millisecond until they are
 *            done (the read budget's floor per record, reads_deferred_total).
 *   pops:    P sessions are filled with M empty flash messages each, then P FLASH_POPs are
 *            pipelined in one write, and a PING on a second connection 0.2 ms later is timed;
 *            R rounds (the CPU budget's cost per message popped, cpu_deferred_total).
 *
 * It prints the PINGs' p50/p99/max and the daemon's loop-stall and turn-budget counters from
 * STATS. Nothing here is a test: the figures depend on the machine and its load.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "codec.h"
#include "mp.h"
#include "seal.h"

/* A reply larger than this is a broken daemon, not a measurement (a full pop is ~87 KB). */
#define FLOOD_MAX_REPLY_BYTES (64u * 1024u * 1024u)
/* The auth file's secret, as the daemon reads it (daemon/auth.c): at most this many bytes. */
#define FLOOD_MAX_SECRET_BYTES 1024u
/* Pushes are sent this many at a time, their replies read in between, so neither side's
 * socket buffer has to hold a whole session's worth. */
#define FLOOD_PUSH_BATCH 4096

/* The STATS counters printed after a run, in this order. */
static const char *const stat_names[] = {"loop_stall_max_us", "loop_stalls_over_10ms",
                                         "reads_deferred_total", "cpu_deferred_total",
                                         "held_over_total"};
#define FLOOD_NSTATS (sizeof(stat_names) / sizeof(stat_names[0]))

/* One connection to the daemon, sealed (seal != NULL) or not. */
struct link {
	int fd;
	struct seal *seal;
	/* Sealed: plaintext opened from records and not yet returned as frames. */
	struct buf plain;
	size_t plain_at;
};

struct flooder {
	struct link link;
	struct buf wire; /* its whole flood, sealed in advance */
	atomic_int *active;
	int error;
};

struct ping_summary {
	size_t count;
	double p50_ms, p99_ms, max_ms;
};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int send_all(int fd, const void *data, size_t len)
{
	const uint8_t *at = data;

	while (len > 0) {
		ssize_t n = send(fd, at, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		at += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_all(int fd, void *data, size_t len)
{
	uint8_t *at = data;

	while (len > 0) {
		ssize_t n = recv(fd, at, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ECONNRESET;
			return -1;
		}
		at += n;
		len -= (size_t)n;
	}
	return 0;
}

/* link_send(link, frames, len): send whole frames, sealed first on a sealed link. */
static int link_send(struct link *link, const uint8_t *frames, size_t len)
{
	struct buf wire;
	int ret;

	if (link->seal == NULL)
		return send_all(link->fd, frames, len);
	buf_init(&wire);
	ret = seal_append_all(link->seal, &wire, frames, len);
	if (ret == 0)
		ret = send_all(link->fd, wire.data, wire.len);
	buf_finish(&wire);
	return ret;
}

/* Open the next sealed record into link->plain. */
static int link_open_record(struct link *link)
{
	uint8_t header[SEAL_HEADER_BYTES];
	uint8_t *record;
	size_t size;

	if (recv_all(link->fd, header, sizeof(header)) == -1)
		return -1;
	size = seal_record_size(header);
	if (size == 0) {
		errno = EPROTO;
		return -1;
	}
	record = malloc(size);
	if (record == NULL)
		return -1;
	memcpy(record, header, sizeof(header));
	if (recv_all(link->fd, record + sizeof(header), size - sizeof(header)) == -1)
		goto fail;
	if (link->plain_at == link->plain.len) {
		buf_reset(&link->plain);
		link->plain_at = 0;
	}
	if (buf_reserve(&link->plain, size) == -1)
		goto fail;
	if (seal_open(link->seal, record, size, link->plain.data + link->plain.len) == -1) {
		errno = EBADMSG;
		goto fail;
	}
	link->plain.len += size - SEAL_OVERHEAD;
	free(record);
	return 0;

fail:
	free(record);
	return -1;
}

/*
 * link_read_reply(link, body):
 * Read the next reply frame's body into ${body} (replacing what it held) and check it decodes.
 */
static int link_read_reply(struct link *link, struct buf *body, struct codec_reply *rep)
{
	uint8_t header[CODEC_HEADER_BYTES];
	uint32_t len;

	buf_reset(body);
	if (link->seal == NULL) {
		if (recv_all(link->fd, header, sizeof(header)) == -1)
			return -1;
		len = codec_frame_length(header);
		if (len > FLOOD_MAX_REPLY_BYTES || buf_reserve(body, len) == -1 ||
		    recv_all(link->fd, body->data, len) == -1)
			return -1;
	} else {
		for (;;) {
			size_t avail = link->plain.len - link->plain_at;

			if (avail >= CODEC_HEADER_BYTES) {
				len = codec_frame_length(link->plain.data + link->plain_at);
				if (len > FLOOD_MAX_REPLY_BYTES) {
					errno = EMSGSIZE;
					return -1;
				}
				if (avail - CODEC_HEADER_BYTES >= len)
					break;
			}
			if (link_open_record(link) == -1)
				return -1;
		}
		if (buf_append(body, link->plain.data + link->plain_at + CODEC_HEADER_BYTES, len) ==
		    -1)
			return -1;
		link->plain_at += CODEC_HEADER_BYTES + len;
	}
	body->len = len;
	if (codec_decode_reply(body->data, len, rep) == -1) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

/* Read the server's public key and proof from a sealed HELLO's result (PROTOCOL.md). */
static int hello_read_kx(const struct codec_reply *rep, uint8_t server_public[SEAL_KEY_BYTES],
                         uint8_t server_proof[SEAL_PROOF_BYTES])
{
	struct mp_reader r;
	struct mp_bytes key, value;
	uint32_t pairs, kx_pairs;
	bool have_public = false, have_proof = false;

	mp_reader_init(&r, rep->result.ptr, rep->result.len);
	if (mp_read_map(&r, &pairs) == -1)
		return -1;
	for (uint32_t i = 0; i < pairs; i++) {
		if (mp_read_str(&r, &key) == -1)
			return -1;
		if (key.len != 2 || memcmp(key.ptr, "kx", 2) != 0) {
			if (mp_skip(&r) == -1)
				return -1;
			continue;
		}
		if (mp_read_map(&r, &kx_pairs) == -1)
			return -1;
		for (uint32_t j = 0; j < kx_pairs; j++) {
			if (mp_read_str(&r, &key) == -1 || mp_read_bin(&r, &value) == -1 ||
			    value.len != SEAL_KEY_BYTES)
				return -1;
			if (key.len == 3 && memcmp(key.ptr, "key", 3) == 0) {
				memcpy(server_public, value.ptr, SEAL_KEY_BYTES);
				have_public = true;
			} else if (key.len == 5 && memcmp(key.ptr, "proof", 5) == 0) {
				memcpy(server_proof, value.ptr, SEAL_PROOF_BYTES);
				have_proof = true;
			}
		}
	}
	return have_public && have_proof ? 0 : -1;
}

/*
 * link_connect(link, path, secret, secret_len):
 * Connect to the Unix socket ${path} and say HELLO, sealed with ${secret} unless it is NULL.
 * Prints what failed and returns -1 (nothing left open), or 0; free with link_close.
 */
static int link_connect(struct link *link, const char *path, const uint8_t *secret,
                        size_t secret_len)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct codec_request req = {
	    .op = CODEC_OP_HELLO, .version = CODEC_PROTOCOL_VERSION, .request_id = 1};
	struct codec_reply rep;
	struct buf auth, out, body;
	uint8_t psk[SEAL_PSK_BYTES], client_public[SEAL_KEY_BYTES], client_proof[SEAL_PROOF_BYTES];
	uint8_t server_public[SEAL_KEY_BYTES], server_proof[SEAL_PROOF_BYTES];
	const char *what = "connect";

	memset(link, 0, sizeof(*link));
	buf_init(&link->plain);
	buf_init(&auth);
	buf_init(&out);
	buf_init(&body);
	link->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (link->fd == -1)
		goto fail;
	memcpy(addr.sun_path, path, strlen(path) + 1); /* length checked by the caller */
	if (connect(link->fd, (struct sockaddr *)&addr, sizeof(addr)) == -1)
		goto fail;

	what = "HELLO";
	req.client_name = (struct mp_bytes){(const uint8_t *)"turn-flood", 10};
	if (secret != NULL) {
		seal_psk(psk, secret, secret_len);
		link->seal = seal_client_new(psk, client_public, client_proof);
		sodium_memzero(psk, sizeof(psk));
		if (link->seal == NULL || mp_write_map(&auth, 2) == -1 ||
		    mp_write_str(&auth, "kx", 2) == -1 ||
		    mp_write_bin(&auth, client_public, sizeof(client_public)) == -1 ||
		    mp_write_str(&auth, "proof", 5) == -1 ||
		    mp_write_bin(&auth, client_proof, sizeof(client_proof)) == -1)
			goto fail;
	} else if (mp_write_nil(&auth) == -1) {
		goto fail;
	}
	req.auth = (struct mp_bytes){auth.data, auth.len};
	if (codec_encode_request(&out, &req) == -1 || send_all(link->fd, out.data, out.len) == -1)
		goto fail;
	/* The HELLO and its reply are plain even on a sealed connection. */
	{
		struct seal *seal = link->seal;

		link->seal = NULL;
		if (link_read_reply(link, &body, &rep) == -1) {
			link->seal = seal;
			goto fail;
		}
		link->seal = seal;
	}
	if (rep.status != CODEC_OK) {
		fprintf(stderr, "turn-flood: HELLO refused: %s %.*s\n",
		        codec_status_name(rep.status), (int)rep.message.len,
		        (const char *)rep.message.ptr);
		goto fail_quiet;
	}
	if (link->seal != NULL) {
		what = "the key exchange";
		errno = EPROTO;
		if (hello_read_kx(&rep, server_public, server_proof) == -1 ||
		    seal_client_finish(link->seal, server_public, server_proof) == -1)
			goto fail;
	}
	buf_finish(&body);
	buf_finish(&out);
	buf_finish(&auth);
	return 0;

fail:
	fprintf(stderr, "turn-flood: %s (%s): %s\n", what, path, strerror(errno));
fail_quiet:
	buf_finish(&body);
	buf_finish(&out);
	buf_finish(&auth);
	if (link->seal != NULL)
		seal_free(link->seal);
	if (link->fd != -1)
		close(link->fd);
	buf_finish(&link->plain);
	link->fd = -1;
	link->seal = NULL;
	return -1;
}

/* link_close(link): close a link that link_connect opened; on one that failed, nothing. */
static void link_close(struct link *link)
{
	if (link->fd == -1)
		return;
	close(link->fd);
	if (link->seal != NULL)
		seal_free(link->seal);
	buf_finish(&link->plain);
	link->fd = -1;
}

/* Send one PING and wait for its reply; its round trip goes to ${seconds}. */
static int link_ping(struct link *link, uint64_t request_id, struct buf *body, double *seconds)
{
	struct codec_request req = {.op = CODEC_OP_PING, .request_id = request_id};
	struct codec_reply rep;
	struct buf out;
	double start;
	int ret = -1;

	buf_init(&out);
	if (codec_encode_request(&out, &req) == -1)
		goto done;
	start = mono_s();
	if (link_send(link, out.data, out.len) == -1 || link_read_reply(link, body, &rep) == -1)
		goto done;
	*seconds = mono_s() - start;
	if (rep.status != CODEC_OK) {
		errno = EPROTO;
		goto done;
	}
	ret = 0;
done:
	if (ret == -1)
		fprintf(stderr, "turn-flood: PING: %s\n", strerror(errno));
	buf_finish(&out);
	return ret;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts ${seconds}; there is at least one. */
static void summarise(double *seconds, size_t count, struct ping_summary *sum)
{
	qsort(seconds, count, sizeof(*seconds), compare_double);
	sum->count = count;
	sum->p50_ms = seconds[count / 2] * 1e3;
	sum->p99_ms = seconds[count * 99 / 100] * 1e3;
	sum->max_ms = seconds[count - 1] * 1e3;
}

/*
 * read_stats(link, values, found):
 * Ask for STATS (every namespace) and fill in the counters named in stat_names that it has.
 */
static int read_stats(struct link *link, uint64_t values[FLOOD_NSTATS], bool found[FLOOD_NSTATS])
{
	struct codec_request req = {.op = CODEC_OP_STATS, .request_id = 9, .ns_all = true};
	struct codec_reply rep;
	struct mp_reader r;
	struct mp_bytes key;
	struct buf out, body;
	uint32_t pairs;
	int ret = -1;

	buf_init(&out);
	buf_init(&body);
	memset(found, 0, FLOOD_NSTATS * sizeof(found[0]));
	if (codec_encode_request(&out, &req) == -1 || link_send(link, out.data, out.len) == -1 ||
	    link_read_reply(link, &body, &rep) == -1)
		goto done;
	errno = EPROTO;
	if (rep.status != CODEC_OK)
		goto done;
	mp_reader_init(&r, rep.result.ptr, rep.result.len);
	if (mp_read_map(&r, &pairs) == -1)
		goto done;
	for (uint32_t i = 0; i < pairs; i++) {
		size_t hit = FLOOD_NSTATS;

		if (mp_read_str(&r, &key) == -1)
			goto done;
		for (size_t j = 0; j < FLOOD_NSTATS; j++)
			if (key.len == strlen(stat_names[j]) &&
			    memcmp(key.ptr, stat_names[j], key.len) == 0)
				hit = j;
		if (hit < FLOOD_NSTATS && mp_peek_type(&r) == MP_UINT) {
			if (mp_read_uint(&r, &values[hit]) == -1)
				goto done;
			found[hit] = true;
		} else if (mp_skip(&r) == -1) {
			goto done;
		}
	}
	ret = 0;
done:
	if (ret == -1)
		fprintf(stderr, "turn-flood: STATS: %s\n", strerror(errno));
	buf_finish(&body);
	buf_finish(&out);
	return ret;
}

/* Print a run: ${head} is the human-readable description, ${json_head} its JSON fields. */
static int report(struct link *link, bool json, const char *head, const char *json_head,
                  const struct ping_summary *sum)
{
	uint64_t values[FLOOD_NSTATS];
	bool found[FLOOD_NSTATS];

	if (read_stats(link, values, found) == -1)
		return -1;
	if (json) {
		printf("{%s,\"pings\":%zu,\"ping_p50_ms\":%.3f,\"ping_p99_ms\":%.3f,"
		       "\"ping_max_ms\":%.3f,\"stats\":{",
		       json_head, sum->count, sum->p50_ms, sum->p99_ms, sum->max_ms);
		for (size_t i = 0, n = 0; i < FLOOD_NSTATS; i++)
			if (found[i])
				printf("%s\"%s\":%llu", n++ ? "," : "", stat_names[i],
				       (unsigned long long)values[i]);
		printf("}}\n");
	} else {
		printf("%s: pings %zu p50 %.3f p99 %.3f max %.3f ms\n", head, sum->count,
		       sum->p50_ms, sum->p99_ms, sum->max_ms);
		for (size_t i = 0, n = 0; i < FLOOD_NSTATS; i++)
			if (found[i])
				printf("%s%s %llu", n++ ? "  " : "", stat_names[i],
				       (unsigned long long)values[i]);
		printf("\n");
	}
	return 0;
}

static void *flooder_run(void *arg)
{
	struct flooder *f = arg;

	if (send_all(f->link.fd, f->wire.data, f->wire.len) == -1)
		f->error = errno;
	atomic_fetch_sub(f->active, 1);
	return NULL;
}

/*
 * read_secret(path, secret, len):
 * The auth file's secret as the daemon takes it: the bytes, less one trailing "\n" or "\r\n".
 */
static int read_secret(const char *path, uint8_t secret[FLOOD_MAX_SECRET_BYTES], size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "turn-flood: %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(secret, 1, FLOOD_MAX_SECRET_BYTES, f);
	fclose(f);
	if (n > 0 && secret[n - 1] == '\n') {
		n--;
		if (n > 0 && secret[n - 1] == '\r')
			n--;
	}
	if (n == 0) {
		fprintf(stderr, "turn-flood: %s: no secret in it\n", path);
		return -1;
	}
	*len = n;
	return 0;
}

/* records mode: see the comment at the top. */
static int run_records(const char *path, const uint8_t *secret, size_t secret_len,
                       int flooder_count, size_t kb, bool json)
{
	struct flooder *flooders = calloc((size_t)flooder_count, sizeof(*flooders));
	pthread_t *threads = calloc((size_t)flooder_count, sizeof(*threads));
	struct link pinger = {.fd = -1};
	struct ping_summary sum;
	struct buf frames, body;
	atomic_int active = 0;
	size_t wire_bytes = kb * 1024, count = 0, cap = 0;
	double *seconds = NULL, dummy, start, elapsed;
	uint64_t request_id = 10;
	int started = 0, ret = -1;
	char head[160], json_head[160];

	buf_init(&frames);
	buf_init(&body);
	if (flooders == NULL || threads == NULL) {
		fprintf(stderr, "turn-flood: out of memory\n");
		goto done;
	}
	for (int i = 0; i < flooder_count; i++) {
		flooders[i].link.fd = -1;
		buf_init(&flooders[i].wire);
	}
	if (link_connect(&pinger, path, secret, secret_len) == -1 ||
	    link_ping(&pinger, 2, &body, &dummy) == -1)
		goto done;
	for (int i = 0; i < flooder_count; i++)
		if (link_connect(&flooders[i].link, path, secret, secret_len) == -1 ||
		    link_ping(&flooders[i].link, 2, &body, &dummy) == -1)
			goto done;

	/* PINGs whose bytes, one per record, make wire_bytes on the wire. */
	while (frames.len * (1 + SEAL_OVERHEAD) < wire_bytes) {
		struct codec_request req = {.op = CODEC_OP_PING, .request_id = request_id++};

		if (codec_encode_request(&frames, &req) == -1)
			goto fail_memory;
	}
	for (int i = 0; i < flooder_count; i++) {
		if (buf_reserve(&flooders[i].wire, frames.len * (1 + SEAL_OVERHEAD)) == -1)
			goto fail_memory;
		for (size_t at = 0; at < frames.len; at++)
			if (seal_append(flooders[i].link.seal, &flooders[i].wire, frames.data + at,
			                1) == -1)
				goto fail_memory;
		flooders[i].active = &active;
	}

	atomic_store(&active, flooder_count);
	start = mono_s();
	for (; started < flooder_count; started++) {
		if (pthread_create(&threads[started], NULL, flooder_run, &flooders[started]) != 0) {
			fprintf(stderr, "turn-flood: cannot start a flooding thread\n");
			atomic_fetch_sub(&active, flooder_count - started);
			goto done;
		}
	}
	/* At least one PING, however fast the flood. */
	do {
		if (count == cap) {
			double *grown;

			cap = cap ? cap * 2 : 4096;
			grown = realloc(seconds, cap * sizeof(*seconds));
			if (grown == NULL)
				goto fail_memory;
			seconds = grown;
		}
		if (link_ping(&pinger, 100 + count, &body, &seconds[count]) == -1)
			goto done;
		count++;
		usleep(1000);
	} while (atomic_load(&active) > 0);
	elapsed = mono_s() - start;
	for (; started > 0; started--)
		pthread_join(threads[started - 1], NULL);
	for (int i = 0; i < flooder_count; i++)
		if (flooders[i].error != 0) {
			fprintf(stderr, "turn-flood: flooder %d: %s\n", i,
			        strerror(flooders[i].error));
			goto done;
		}

	summarise(seconds, count, &sum);
	snprintf(head, sizeof(head), "records: %d flooders x %zu KB of 1-byte records, %.2f s",
	         flooder_count, flooders[0].wire.len / 1024, elapsed);
	snprintf(json_head, sizeof(json_head),
	         "\"mode\":\"records\",\"flooders\":%d,\"wire_kb\":%zu,\"seconds\":%.3f",
	         flooder_count, flooders[0].wire.len / 1024, elapsed);
	if (report(&pinger, json, head, json_head, &sum) == -1)
		goto done;
	ret = 0;
	goto done;

fail_memory:
	fprintf(stderr, "turn-flood: out of memory\n");
done:
	/* A failed PING leaves flooders writing: closing their sockets ends their sends. */
	for (int i = 0; i < flooder_count && flooders != NULL; i++)
		if (started > 0)
			shutdown(flooders[i].link.fd, SHUT_RDWR);
	for (; started > 0; started--)
		pthread_join(threads[started - 1], NULL);
	for (int i = 0; i < flooder_count && flooders != NULL; i++) {
		link_close(&flooders[i].link);
		buf_finish(&flooders[i].wire);
	}
	link_close(&pinger);
	free(seconds);
	buf_finish(&body);
	buf_finish(&frames);
	free(threads);
	free(flooders);
	return ret;
}

/* Read ${count} replies on ${link}; each must be OK. */
static int read_ok_replies(struct link *link, size_t count, struct buf *body, const char *what)
{
	struct codec_reply rep;

	for (size_t i = 0; i < count; i++) {
		if (link_read_reply(link, body, &rep) == -1) {
			fprintf(stderr, "turn-flood: %s: %s\n", what, strerror(errno));
			return -1;
		}
		if (rep.status != CODEC_OK) {
			fprintf(stderr, "turn-flood: %s: %s %.*s\n", what,
			        codec_status_name(rep.status), (int)rep.message.len,
			        (const char *)rep.message.ptr);
			return -1;
		}
	}
	return 0;
}

/* Fill the session pop-${session} with ${messages} empty messages of type "t". */
static int fill_session(struct link *link, int session, int messages, struct buf *out,
                        struct buf *body)
{
	char id[32];
	struct codec_request req = {.op = CODEC_OP_FLASH_PUSH, .ttl_ms = 600000};

	snprintf(id, sizeof(id), "pop-%d", session);
	req.id = (struct mp_bytes){(const uint8_t *)id, strlen(id)};
	req.flash_type = (struct mp_bytes){(const uint8_t *)"t", 1};
	req.flash_msg = (struct mp_bytes){(const uint8_t *)"", 0};
	for (int done = 0; done < messages;) {
		int batch = messages - done < FLOOD_PUSH_BATCH ? messages - done : FLOOD_PUSH_BATCH;

		buf_reset(out);
		for (int i = 0; i < batch; i++) {
			req.request_id = (uint64_t)done + (uint64_t)i + 1;
			if (codec_encode_request(out, &req) == -1) {
				fprintf(stderr, "turn-flood: out of memory\n");
				return -1;
			}
		}
		if (link_send(link, out->data, out->len) == -1) {
			fprintf(stderr, "turn-flood: FLASH_PUSH: %s\n", strerror(errno));
			return -1;
		}
		if (read_ok_replies(link, (size_t)batch, body, "FLASH_PUSH") == -1)
			return -1;
		done += batch;
	}
	return 0;
}

/* pops mode: see the comment at the top. */
static int run_pops(const char *path, int rounds, int pops, int messages, bool json)
{
	struct link popper = {.fd = -1}, pinger = {.fd = -1};
	struct ping_summary sum;
	struct buf out, body;
	double *seconds = calloc((size_t)rounds, sizeof(*seconds));
	char head[160], json_head[160];
	int ret = -1;

	buf_init(&out);
	buf_init(&body);
	if (seconds == NULL) {
		fprintf(stderr, "turn-flood: out of memory\n");
		goto done;
	}
	if (link_connect(&popper, path, NULL, 0) == -1 ||
	    link_connect(&pinger, path, NULL, 0) == -1)
		goto done;
	for (int round = 0; round < rounds; round++) {
		for (int s = 0; s < pops; s++)
			if (fill_session(&popper, s, messages, &out, &body) == -1)
				goto done;
		buf_reset(&out);
		for (int s = 0; s < pops; s++) {
			char id[32];
			struct codec_request req = {.op = CODEC_OP_FLASH_POP,
			                            .request_id = 100 + (uint64_t)s};

			snprintf(id, sizeof(id), "pop-%d", s);
			req.id = (struct mp_bytes){(const uint8_t *)id, strlen(id)};
			req.flash_type = (struct mp_bytes){(const uint8_t *)"t", 1};
			if (codec_encode_request(&out, &req) == -1) {
				fprintf(stderr, "turn-flood: out of memory\n");
				goto done;
			}
		}
		if (link_send(&popper, out.data, out.len) == -1) {
			fprintf(stderr, "turn-flood: FLASH_POP: %s\n", strerror(errno));
			goto done;
		}
		/* So the pops are read, and their turn begun, before the PING arrives. */
		usleep(200);
		if (link_ping(&pinger, 5, &body, &seconds[round]) == -1 ||
		    read_ok_replies(&popper, (size_t)pops, &body, "FLASH_POP") == -1)
			goto done;
	}

	summarise(seconds, (size_t)rounds, &sum);
	snprintf(head, sizeof(head),
	         "pops: %d rounds of %d pops of %d messages, PING sent 0.2 ms after", rounds, pops,
	         messages);
	snprintf(json_head, sizeof(json_head),
	         "\"mode\":\"pops\",\"rounds\":%d,\"pops\":%d,\"messages\":%d", rounds, pops,
	         messages);
	if (report(&pinger, json, head, json_head, &sum) == -1)
		goto done;
	ret = 0;
done:
	link_close(&pinger);
	link_close(&popper);
	buf_finish(&body);
	buf_finish(&out);
	free(seconds);
	return ret;
}

static void usage(FILE *to)
{
	fprintf(to,
	        "usage: turn-flood records --socket PATH --auth-file FILE [--flooders N] [--kb N] "
	        "[--json]\n"
	        "       turn-flood pops --socket PATH [--rounds N] [--pops N] [--messages N] "
	        "[--json]\n"
	        "  records: N sealed connections each write K KB of 1-byte sealed records holding\n"
	        "           PINGs while another sealed connection PINGs once a millisecond\n"
	        "    --auth-file FILE  the daemon's --auth-file (the secret to seal with)\n"
	        "    --flooders N      flooding connections (default 32)\n"
	        "    --kb N            KB each writes on the wire (default 1024)\n"
	        "  pops:    N sessions filled with M empty flash messages, N FLASH_POPs in one\n"
	        "           write, a PING on another connection 0.2 ms later; R rounds\n"
	        "    --rounds R        rounds (default 5)\n"
	        "    --pops N          sessions popped a round (default 12)\n"
	        "    --messages M      messages in each (default 87381, the most a session holds)\n"
	        "  --socket PATH       the daemon's Unix socket (--listen unix:PATH)\n"
	        "  --json              print one JSON object\n"
	        "Prints the PINGs' p50/p99/max and the daemon's loop-stall and budget counters.\n");
}

/* Parse ${text} as an integer in [min, max]; on failure say which option and return -1. */
static int parse_int(const char *option, const char *text, long min, long max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "turn-flood: bad %s %s (want %ld to %ld)\n", option, text, min,
		        max);
		return -1;
	}
	*out = (int)v;
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode, *socket_path = NULL, *auth_file = NULL;
	int flooders = 32, kb = 1024, rounds = 5, pops = 12, messages = 87381;
	bool json = false, records;
	uint8_t secret[FLOOD_MAX_SECRET_BYTES];
	size_t secret_len = 0;
	int ret;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || (strcmp(argv[1], "records") != 0 && strcmp(argv[1], "pops") != 0)) {
		if (argc >= 2)
			fprintf(stderr, "turn-flood: unknown mode %s\n", argv[1]);
		usage(stderr);
		return 2;
	}
	mode = argv[1];
	records = strcmp(mode, "records") == 0;
	for (int i = 2; i < argc; i++) {
		const char *opt = argv[i];
		bool has_value = i + 1 < argc;
		int bad = 0;

		if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(opt, "--json") == 0) {
			json = true;
		} else if (strcmp(opt, "--socket") == 0 && has_value) {
			socket_path = argv[++i];
		} else if (records && strcmp(opt, "--auth-file") == 0 && has_value) {
			auth_file = argv[++i];
		} else if (records && strcmp(opt, "--flooders") == 0 && has_value) {
			bad = parse_int(opt, argv[++i], 1, 1000, &flooders);
		} else if (records && strcmp(opt, "--kb") == 0 && has_value) {
			bad = parse_int(opt, argv[++i], 1, 1024 * 1024, &kb);
		} else if (!records && strcmp(opt, "--rounds") == 0 && has_value) {
			bad = parse_int(opt, argv[++i], 1, 100000, &rounds);
		} else if (!records && strcmp(opt, "--pops") == 0 && has_value) {
			bad = parse_int(opt, argv[++i], 1, 10000, &pops);
		} else if (!records && strcmp(opt, "--messages") == 0 && has_value) {
			bad = parse_int(opt, argv[++i], 1, 10000000, &messages);
		} else {
			fprintf(stderr, "turn-flood: %s: unknown option or missing value: %s\n",
			        mode, opt);
			bad = -1;
		}
		if (bad) {
			usage(stderr);
			return 2;
		}
	}
	if (socket_path == NULL || (records && auth_file == NULL)) {
		fprintf(stderr, "turn-flood: %s needs --socket%s\n", mode,
		        records ? " and --auth-file" : "");
		usage(stderr);
		return 2;
	}
	if (strlen(socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "turn-flood: socket path too long: %s\n", socket_path);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "turn-flood: libsodium does not initialise\n");
		return 1;
	}
	if (records) {
		if (read_secret(auth_file, secret, &secret_len) == -1)
			return 1;
		ret = run_records(socket_path, secret, secret_len, flooders, (size_t)kb, json);
		sodium_memzero(secret, sizeof(secret));
	} else {
		ret = run_pops(socket_path, rounds, pops, messages, json);
	}
	return ret == 0 ? 0 : 1;
}
