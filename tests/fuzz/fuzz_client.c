/*
 * libFuzzer entry point for libsessd's side of a plain connection: what a faulty or hostile
 * server sends back to one call (or one batch) of the real library, over a real Unix socket.
 * fuzz_codec covers the reply envelope alone and fuzz_seal the sealed HELLO; this target
 * covers the rest of the way a reply travels in the client: the frame reader (wire.c: lengths
 * against max_frame, reads that end anywhere, a SHUTTING_DOWN after the last reply, bytes
 * after it), the reply checks (client.c: request ids, statuses per op) and the decoders of
 * every result (reply.c, and sessd.c's NAMESPACES), each as the public calls use them.
 *
 * Input:
 *   byte 0: the call (CALL_* below); for CALL_BATCH byte 2 is a count n (1..8, taken mod 8
 *           + 1) and the n bytes after it the batch's requests (BATCH_* below).
 *   byte 1: the max_frame the server's HELLO announces (4096, 8192, 65536 or 1 MiB, by its
 *           low two bits); with its high bit (0x80) set, the server does not answer the
 *           HELLO itself: the rest is its answer, and only sessd_connect runs. With 0x40
 *           (and not 0x80), the connection is sealed: the client holds FUZZ_SECRET, the
 *           server answers its key exchange properly, opens its request records, and the
 *           rest, after a first byte that picks what becomes of it (SEALED_* below), is the
 *           plaintext it seals into records: libsessd's record reader (wire.c's
 *           open_records, a goodbye's record cut after the last reply) on top of the rest.
 *   the rest: the bytes the server sends once it has read the call's request frames (the
 *           HELLO is answered properly first, request id 1, so the call's own requests have
 *           ids 2, 3, ...), after which it closes its side.
 *
 * A fake server thread answers each input on a socket in a temporary directory (removed at
 * exit). After the call the harness checks what sessd.h promises: a result code the call may
 * return, results only on SESSD_OK and within the bounds of REPLIES in libsessd(3), and
 * words in sessd_errmsg() without a byte outside printable ASCII. It aborts when one fails;
 * the sanitizers and libFuzzer's leak check catch the rest. The server always closes its side
 * once it has written and serves one connection an input, so a call waits on its timeout only
 * when the client connects again within it: a sealed connection's first exchange answered
 * SHUTTING_DOWN before any reply is sent again once, on a new connection (libsessd(3)).
 * FUZZ_CLIENT_DEBUG=1 shows each input's call and sessd_errmsg() after it ("" when it succeeded).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "codec.h"
#include "mp.h"
#include "seal.h"
#include "sessd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	CALL_PING,
	CALL_GET,
	CALL_LOAD,
	CALL_TTL,
	CALL_COUNT,
	CALL_CLEAR,
	CALL_FLASH_PUSH,
	CALL_FLASH_PUSH_EXISTING,
	CALL_FLASH_POP,
	CALL_FLASH_POP_ALL,
	CALL_LIST,
	CALL_NAMESPACES,
	CALL_STATS,
	CALL_STATS_ALL,
	CALL_SET,
	CALL_SET_IF,
	CALL_TOUCH,
	CALL_TOUCH_IF,
	CALL_DESTROY,
	CALL_BATCH,
	CALL_COUNT_OF
};

enum {
	BATCH_GET,
	BATCH_SET,
	BATCH_SET_IF,
	BATCH_TOUCH,
	BATCH_DESTROY,
	BATCH_FLASH_PUSH,
	BATCH_FLASH_PUSH_EXISTING,
	BATCH_FLASH_POP,
	BATCH_FLASH_POP_ALL,
	BATCH_TTL,
	BATCH_PING,
	BATCH_COUNT_OF
};

#define FUZZ_LIST_LIMIT  7u
#define FUZZ_FLASH_TYPE  "notice"
#define FUZZ_TIMEOUT_MS  5000
#define FUZZ_SERVER_ID   "00112233445566778899aabbccddeeff"
#define FUZZ_BATCH_MAX   8u
#define FUZZ_MAX_FLASHES 12u /* sessd.h: a FLASH_POP holds at most max_frame / 12 */
#define FUZZ_MAX_STATS   1024u

static const uint32_t max_frames[4] = {4096u, 8192u, 65536u, 1024u * 1024u};

static char sock_dir[64];
static char sock_path[128];
static char sock_url[160];
static int listen_fd = -1;

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_client: %s\n", what);
	abort();
}

static void remove_socket(void)
{
	if (sock_path[0] != '\0')
		unlink(sock_path);
	if (sock_dir[0] != '\0')
		rmdir(sock_dir);
}

/* The listening socket, made once for the process. */
static void listen_once(void)
{
	struct sockaddr_un sa;

	if (listen_fd != -1)
		return;
	snprintf(sock_dir, sizeof(sock_dir), "/tmp/fuzz-client-XXXXXX");
	if (mkdtemp(sock_dir) == NULL)
		fail("mkdtemp");
	snprintf(sock_path, sizeof(sock_path), "%s/s", sock_dir);
	snprintf(sock_url, sizeof(sock_url), "unix:%s", sock_path);
	atexit(remove_socket);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd == -1 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    listen(listen_fd, 4) == -1)
		fail("cannot listen");
}

static int send_all(int fd, const void *p, size_t n)
{
	const uint8_t *at = p;
	ssize_t k;

	while (n > 0) {
		k = send(fd, at, n, MSG_NOSIGNAL);
		if (k == -1 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		at += k;
		n -= (size_t)k;
	}
	return 0;
}

static int recv_all(int fd, void *p, size_t n)
{
	uint8_t *at = p;
	ssize_t k;

	while (n > 0) {
		k = recv(fd, at, n, 0);
		if (k == -1 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		at += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Read one frame into ${body} (grown as needed). Returns 0, or -1 at the end of the stream. */
static int recv_frame(int fd, struct buf *body)
{
	uint8_t header[CODEC_HEADER_BYTES];
	uint32_t len;

	if (recv_all(fd, header, sizeof(header)) == -1)
		return -1;
	len = codec_frame_length(header);
	buf_reset(body);
	if (len > 2u * 1024u * 1024u || buf_reserve(body, len) == -1 ||
	    recv_all(fd, body->data, len) == -1)
		return -1;
	body->len = len;
	return 0;
}

/* What becomes of a sealed script (its first byte, mod 4): sealed whole; sealed, then one bit
 * of the records flipped at the offset of the next two bytes; sealed, then cut at that
 * offset; or sent as it is, unsealed. */
enum { SEALED_WHOLE, SEALED_FLIP, SEALED_CUT, SEALED_RAW, SEALED_COUNT_OF };

#define FUZZ_SECRET "fuzz_client: a secret of 32 B!!!"

struct fake_server {
	bool raw_hello; /* the script is the HELLO's answer */
	bool sealed;    /* the connection is sealed (FUZZ_SECRET) */
	uint32_t max_frame;
	size_t requests; /* frames to read after the HELLO before sending the script */
	const uint8_t *script;
	size_t script_len;
};

/*
 * The HELLO reply that lets the client in: version 1, a server_id and ${max_frame}; with
 * ${s_pk} (not NULL), a sealed one's auth: true and kx {key: s_pk, proof: s_proof}.
 */
static int send_hello_reply(int fd, uint64_t request_id, uint32_t max_frame, const uint8_t *s_pk,
                            const uint8_t *s_proof)
{
	struct buf out;
	size_t at;
	int rc = -1;

	buf_init(&out);
	if (codec_reply_open(&out, request_id, CODEC_OK, &at) == 0 &&
	    mp_write_map(&out, s_pk != NULL ? 5 : 3) == 0 &&
	    mp_write_str(&out, "version", 7) == 0 && mp_write_uint(&out, 1) == 0 &&
	    mp_write_str(&out, "server_id", 9) == 0 &&
	    mp_write_str(&out, FUZZ_SERVER_ID, 32) == 0 &&
	    mp_write_str(&out, "max_frame", 9) == 0 && mp_write_uint(&out, max_frame) == 0 &&
	    (s_pk == NULL ||
	     (mp_write_str(&out, "auth", 4) == 0 && mp_write_bool(&out, true) == 0 &&
	      mp_write_str(&out, "kx", 2) == 0 && mp_write_map(&out, 2) == 0 &&
	      mp_write_str(&out, "key", 3) == 0 && mp_write_bin(&out, s_pk, SEAL_KEY_BYTES) == 0 &&
	      mp_write_str(&out, "proof", 5) == 0 &&
	      mp_write_bin(&out, s_proof, SEAL_PROOF_BYTES) == 0)) &&
	    codec_frame_close(&out, at) == 0)
		rc = send_all(fd, out.data, out.len);
	buf_finish(&out);
	return rc;
}

/*
 * Answer a sealed HELLO (${auth}, the request's auth field: {"kx": bin, "proof": bin}) as
 * sessd does (PROTOCOL.md, "Sealed connections"). Returns the server's seal, or NULL (the
 * client's exchange is malformed: a harness failure).
 */
static struct seal *send_sealed_hello_reply(int fd, uint64_t request_id, uint32_t max_frame,
                                            const struct mp_bytes *auth)
{
	uint8_t psk[SEAL_PSK_BYTES], s_pk[SEAL_KEY_BYTES], s_proof[SEAL_PROOF_BYTES];
	struct mp_bytes key, c_pk = {0}, c_proof = {0}, val;
	struct mp_reader r;
	struct seal *seal;
	uint32_t pairs;

	mp_reader_init(&r, auth->ptr, auth->len);
	if (mp_read_map(&r, &pairs) == -1 || pairs != 2)
		return NULL;
	for (uint32_t i = 0; i < pairs; i++) {
		if (mp_read_str(&r, &key) == -1 || mp_read_bin(&r, &val) == -1)
			return NULL;
		if (key.len == 2 && memcmp(key.ptr, "kx", 2) == 0)
			c_pk = val;
		else if (key.len == 5 && memcmp(key.ptr, "proof", 5) == 0)
			c_proof = val;
	}
	if (c_pk.len != SEAL_KEY_BYTES || c_proof.len != SEAL_PROOF_BYTES)
		return NULL;
	seal_psk(psk, FUZZ_SECRET, strlen(FUZZ_SECRET));
	seal = seal_server_new(psk, c_pk.ptr, c_proof.ptr, s_pk, s_proof);
	if (seal == NULL)
		return NULL;
	if (send_hello_reply(fd, request_id, max_frame, s_pk, s_proof) == -1) {
		seal_free(seal);
		return NULL;
	}
	return seal;
}

/*
 * Read records from the client until ${plain} holds ${frames} whole frames. Returns 0, or -1
 * when the stream ends first (a call refused before it sends, or cut short by the script).
 */
static int recv_sealed_frames(int fd, struct seal *seal, struct buf *plain, size_t frames)
{
	uint8_t header[SEAL_HEADER_BYTES];
	struct buf record;
	size_t size, at, seen;
	int rc = -1;

	buf_init(&record);
	buf_reset(plain);
	for (;;) {
		for (seen = 0, at = 0; plain->len - at >= CODEC_HEADER_BYTES; seen++) {
			size = CODEC_HEADER_BYTES + codec_frame_length(plain->data + at);
			if (plain->len - at < size)
				break;
			at += size;
		}
		if (seen >= frames) {
			rc = 0;
			break;
		}
		if (recv_all(fd, header, sizeof(header)) == -1)
			break;
		size = seal_record_size(header);
		buf_reset(&record);
		if (size == 0 || buf_reserve(&record, size) == -1 || buf_reserve(plain, size) == -1)
			break;
		memcpy(record.data, header, sizeof(header));
		if (recv_all(fd, record.data + sizeof(header), size - sizeof(header)) == -1)
			break;
		if (seal_open(seal, record.data, size, plain->data + plain->len) == -1)
			fail("a record from the client does not open");
		plain->len += size - SEAL_OVERHEAD;
	}
	buf_finish(&record);
	return rc;
}

/* Send a sealed script: its first byte picks what becomes of the rest (SEALED_*). */
static void send_sealed_script(int fd, struct seal *seal, const uint8_t *script, size_t len)
{
	struct buf out;
	unsigned how;
	size_t at = 0;

	if (len == 0)
		return;
	how = script[0] % SEALED_COUNT_OF;
	script++;
	len--;
	if ((how == SEALED_FLIP || how == SEALED_CUT) && len >= 2) {
		at = (size_t)script[0] << 8 | script[1];
		script += 2;
		len -= 2;
	}
	if (how == SEALED_RAW) {
		(void)send_all(fd, script, len);
		return;
	}
	buf_init(&out);
	if (seal_append_all(seal, &out, script, len) == -1)
		fail("seal_append_all");
	if (how == SEALED_FLIP && out.len > 0)
		out.data[at % out.len] ^= (uint8_t)(1u << (at % 8));
	if (how == SEALED_CUT && at < out.len)
		out.len = at;
	(void)send_all(fd, out.data, out.len);
	buf_finish(&out);
}

/* Answer the PING in ${plain} (one frame) with OK and nil, sealed. Returns 0 or -1. */
static int answer_sealed_ping(int fd, struct seal *seal, const struct buf *plain)
{
	struct codec_request req;
	struct buf reply, out;
	uint32_t status;
	const char *why;
	size_t at;
	int rc = -1;

	if (codec_decode_request(plain->data + CODEC_HEADER_BYTES, plain->len - CODEC_HEADER_BYTES,
	                         &req, &status, &why) == -1 ||
	    req.op != CODEC_OP_PING)
		fail("sessd_connect's first record is not a PING");
	buf_init(&reply);
	buf_init(&out);
	if (codec_reply_open(&reply, req.request_id, CODEC_OK, &at) == 0 &&
	    mp_write_nil(&reply) == 0 && codec_frame_close(&reply, at) == 0 &&
	    seal_append_all(seal, &out, reply.data, reply.len) == 0)
		rc = send_all(fd, out.data, out.len);
	buf_finish(&reply);
	buf_finish(&out);
	return rc;
}

/* One connection: HELLO, the call's requests, the script, then the end of the stream. */
static void *fake_serve(void *arg)
{
	const struct fake_server *s = arg;
	struct seal *seal;
	struct codec_request req;
	struct buf body;
	uint32_t status;
	const char *why;
	uint8_t sink[4096];
	int fd;

	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd == -1)
		fail("accept");
	buf_init(&body);
	if (recv_frame(fd, &body) == -1 ||
	    codec_decode_request(body.data, body.len, &req, &status, &why) == -1 ||
	    req.op != CODEC_OP_HELLO)
		fail("the client's HELLO is malformed");
	if (s->sealed) {
		seal = send_sealed_hello_reply(fd, req.request_id, s->max_frame, &req.auth);
		if (seal == NULL)
			fail("the client's sealed HELLO is malformed");
		/* sessd_connect's PING, the connection's first record (client.c, client_connect),
		 * is answered as sessd would before the call's requests are read. */
		if (recv_sealed_frames(fd, seal, &body, 1) == 0 &&
		    answer_sealed_ping(fd, seal, &body) == 0 &&
		    recv_sealed_frames(fd, seal, &body, s->requests) == 0)
			send_sealed_script(fd, seal, s->script, s->script_len);
		seal_free(seal);
		goto end;
	}
	if (!s->raw_hello && send_hello_reply(fd, req.request_id, s->max_frame, NULL, NULL) == -1)
		goto done;
	/* A call refused before it sends (an argument, a frame over max_frame) sends nothing:
	 * the client's close ends the wait. */
	for (size_t i = 0; i < s->requests; i++)
		if (recv_frame(fd, &body) == -1)
			goto done;
	(void)send_all(fd, s->script, s->script_len);
end:
	shutdown(fd, SHUT_WR);
	/* Until the client closes: it may still be sending a request the script cut short. */
	while (recv(fd, sink, sizeof(sink), 0) > 0)
		;
done:
	buf_finish(&body);
	close(fd);
	return NULL;
}

static bool printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* A result code sessd.h lets a call return over a live connection. */
static bool known_code(int rc)
{
	return (rc >= SESSD_OK && rc <= SESSD_ERR_FORBIDDEN) ||
	       (rc >= SESSD_ERR_USAGE && rc <= SESSD_ERR_NOMEM);
}

/* A failed check on result code ${rc}, named in the report: stop 60's run failed once, not
 * again in 700 runs of its input, and the code tells a timeout (a thread starved under load)
 * from a failed connect or a usage error. */
static void fail_code(int rc, const char *what)
{
	fprintf(stderr, "fuzz_client: result code %d\n", rc);
	fail(what);
}

static void check_code(int rc, bool may_be_not_found, bool may_conflict)
{
	if (!known_code(rc))
		fail_code(rc, "an unknown result code");
	if (rc == SESSD_NOT_FOUND && !may_be_not_found)
		fail_code(rc, "NOT_FOUND from a call that has none");
	if (rc == SESSD_CONFLICT && !may_conflict)
		fail_code(rc, "CONFLICT from a call that has none");
	/* The call's own arguments are good, and the harness's HELLO too. */
	if (rc == SESSD_ERR_USAGE || rc == SESSD_ERR_CONNECT || rc == SESSD_ERR_TIMEOUT)
		fail_code(rc, "a result the server's bytes cannot cause");
}

static void check_flashes(const struct sessd_flashes *f, const char *type, uint32_t max_frame)
{
	if (f->count > max_frame / FUZZ_MAX_FLASHES)
		fail("more messages than max_frame allows");
	for (size_t i = 0; i < f->count; i++) {
		size_t n = strlen(f->items[i].type);

		/* Not n >= 1: a type may hold a NUL (PROTOCOL.md), and its C string then ends
		 * there, even at its first byte (libsessd(3), FLASHES). */
		if (n > 64 || (type != NULL && strcmp(f->items[i].type, type) != 0))
			fail("a flash type out of bounds or not the one asked for");
		if (((const char *)f->items[i].msg)[f->items[i].msg_len] != '\0')
			fail("a message without its NUL");
	}
}

static void check_list(const struct sessd_list *l)
{
	if (l->count > FUZZ_LIST_LIMIT)
		fail("a LIST page of more entries than asked for");
	for (size_t i = 0; i < l->count; i++)
		if (l->items[i].id_len < 1 || l->items[i].id_len > 128 ||
		    ((const char *)l->items[i].id)[l->items[i].id_len] != '\0')
			fail("a LIST id out of bounds");
}

static void check_namespaces(const struct sessd_namespaces *l)
{
	if (l->count > FUZZ_LIST_LIMIT)
		fail("a NAMESPACES page of more entries than asked for");
	for (size_t i = 0; i < l->count; i++)
		if (l->items[i].name_len < 1 || l->items[i].name_len > 64 ||
		    l->items[i].name[l->items[i].name_len] != '\0')
			fail("a namespace name out of bounds");
}

/* One blocking call; its result checked and freed. */
static void run_call(struct sessd_client *c, unsigned call, uint32_t max_frame)
{
	static const uint8_t tag[SESSD_TAG_BYTES] = {0};
	void *data = (void *)1;
	size_t len = 1, queued = 0;
	uint64_t n = 0;
	struct sessd_flashes *f = (void *)1;
	struct sessd_list *l = (void *)1;
	struct sessd_namespaces *ns = (void *)1;
	struct sessd_stats *st = (void *)1;
	const char *type = NULL;
	int rc;

	switch (call) {
	case CALL_PING:
		check_code(sessd_ping(c), false, false);
		break;
	case CALL_GET:
	case CALL_LOAD:
		rc = call == CALL_GET ? sessd_get(c, "id", 2, &data, &len)
		                      : sessd_load(c, "id", 2, &data, &len, &n);
		check_code(rc, true, false);
		if (rc == SESSD_OK && (data == NULL || ((char *)data)[len] != '\0'))
			fail("GET data without its NUL");
		if (rc != SESSD_OK && (data != NULL || len != 0))
			fail("GET output set on failure");
		free(data);
		break;
	case CALL_TTL:
		rc = sessd_ttl(c, "id", 2, &n);
		check_code(rc, true, false);
		if (rc == SESSD_OK && n == 0)
			fail("a TTL of 0");
		break;
	case CALL_COUNT:
		check_code(sessd_count(c, &n), false, false);
		break;
	case CALL_CLEAR:
		check_code(sessd_clear(c, &n), false, false);
		break;
	case CALL_FLASH_PUSH:
		check_code(sessd_flash_push(c, "id", 2, FUZZ_FLASH_TYPE, "m", 1, 1000, &queued),
		           false, false);
		break;
	case CALL_FLASH_PUSH_EXISTING:
		check_code(
		    sessd_flash_push_existing(c, "id", 2, FUZZ_FLASH_TYPE, "m", 1, 1000, &queued),
		    true, false);
		break;
	case CALL_FLASH_POP:
	case CALL_FLASH_POP_ALL:
		type = call == CALL_FLASH_POP ? FUZZ_FLASH_TYPE : NULL;
		rc = sessd_flash_pop(c, "id", 2, type, &f);
		check_code(rc, true, false);
		if ((rc == SESSD_OK) != (f != NULL))
			fail("FLASH_POP's result and code disagree");
		if (f != NULL)
			check_flashes(f, type, max_frame);
		sessd_flashes_free(f);
		break;
	case CALL_LIST:
		rc = sessd_list(c, 0, FUZZ_LIST_LIMIT, &l);
		check_code(rc, false, false);
		if ((rc == SESSD_OK) != (l != NULL))
			fail("LIST's result and code disagree");
		if (l != NULL)
			check_list(l);
		sessd_list_free(l);
		break;
	case CALL_NAMESPACES:
		rc = sessd_namespaces(c, 0, FUZZ_LIST_LIMIT, &ns);
		check_code(rc, false, false);
		if ((rc == SESSD_OK) != (ns != NULL))
			fail("NAMESPACES' result and code disagree");
		if (ns != NULL)
			check_namespaces(ns);
		sessd_namespaces_free(ns);
		break;
	case CALL_STATS:
	case CALL_STATS_ALL:
		rc = sessd_stats(c, call == CALL_STATS_ALL, &st);
		check_code(rc, false, false);
		if ((rc == SESSD_OK) != (st != NULL))
			fail("STATS' result and code disagree");
		if (st != NULL && st->count > FUZZ_MAX_STATS)
			fail("more figures than sessd.h allows");
		sessd_stats_free(st);
		break;
	case CALL_SET:
		check_code(sessd_set(c, "id", 2, "data", 4, 1000), false, false);
		break;
	case CALL_SET_IF:
		check_code(sessd_set_if(c, "id", 2, "data", 4, 1000, tag), true, true);
		break;
	case CALL_TOUCH:
		check_code(sessd_touch(c, "id", 2, 1000), true, false);
		break;
	case CALL_TOUCH_IF:
		check_code(sessd_touch_if(c, "id", 2, 1000, tag), true, true);
		break;
	default:
		check_code(sessd_destroy(c, "id", 2), true, false);
		break;
	}
}

/* Queue request ${op} in ${b}; returns its index. */
static int queue_one(struct sessd_batch *b, unsigned op)
{
	static const uint8_t tag[SESSD_TAG_BYTES] = {0};

	switch (op) {
	case BATCH_GET:
		return sessd_batch_get(b, "id", 2);
	case BATCH_SET:
		return sessd_batch_set(b, "id", 2, "data", 4, 1000);
	case BATCH_SET_IF:
		return sessd_batch_set_if(b, "id", 2, "data", 4, 1000, tag);
	case BATCH_TOUCH:
		return sessd_batch_touch(b, "id", 2, 1000);
	case BATCH_DESTROY:
		return sessd_batch_destroy(b, "id", 2);
	case BATCH_FLASH_PUSH:
		return sessd_batch_flash_push(b, "id", 2, FUZZ_FLASH_TYPE, "m", 1, 1000);
	case BATCH_FLASH_PUSH_EXISTING:
		return sessd_batch_flash_push_existing(b, "id", 2, FUZZ_FLASH_TYPE, "m", 1, 1000);
	case BATCH_FLASH_POP:
		return sessd_batch_flash_pop(b, "id", 2, FUZZ_FLASH_TYPE);
	case BATCH_FLASH_POP_ALL:
		return sessd_batch_flash_pop(b, "id", 2, NULL);
	case BATCH_TTL:
		return sessd_batch_ttl(b, "id", 2);
	default:
		return sessd_batch_ping(b);
	}
}

static void run_batch(struct sessd_client *c, const uint8_t *ops, size_t count, uint32_t max_frame)
{
	struct sessd_batch *b = sessd_batch_new(c);
	const struct sessd_flashes *f;
	const void *data;
	size_t len;
	unsigned op;
	int rc, st;

	if (b == NULL)
		fail("sessd_batch_new");
	for (size_t i = 0; i < count; i++)
		if (queue_one(b, ops[i] % BATCH_COUNT_OF) != (int)i)
			fail("a batch request was not queued");
	rc = sessd_batch_run(b);
	check_code(rc, false, false);
	for (size_t i = 0; i < count; i++) {
		op = ops[i] % BATCH_COUNT_OF;
		st = sessd_batch_status(b, i);
		check_code(st, op != BATCH_SET && op != BATCH_FLASH_PUSH && op != BATCH_PING,
		           op == BATCH_SET_IF);
		data = sessd_batch_data(b, i, &len);
		if ((data != NULL) != (op == BATCH_GET && st == SESSD_OK))
			fail("batch data and status disagree");
		if (data != NULL && ((const char *)data)[len] != '\0')
			fail("batch data without its NUL");
		f = sessd_batch_flashes(b, i);
		if ((f != NULL) !=
		    ((op == BATCH_FLASH_POP || op == BATCH_FLASH_POP_ALL) && st == SESSD_OK))
			fail("batch flashes and status disagree");
		if (f != NULL)
			check_flashes(f, op == BATCH_FLASH_POP ? FUZZ_FLASH_TYPE : NULL, max_frame);
		if ((sessd_batch_ttl_ms(b, i) != 0) != (op == BATCH_TTL && st == SESSD_OK))
			fail("batch ttl and status disagree");
	}
	sessd_batch_free(b);
}

/*
 * sessd_connect against the script as the HELLO's answer: a code and errno sessd.h lists for
 * it, a client only on SESSD_OK, printable words. No call follows: the server has closed.
 */
static void connect_only(const struct sessd_options *opts)
{
	struct sessd_client *c = (void *)1;
	char why[SESSD_ERRMSG_SIZE];
	int rc, err;

	rc = sessd_connect_errbuf(sock_url, opts, &c, why, sizeof(why));
	err = errno;
	if (!printable(why))
		fail("sessd_connect_errbuf's words hold a byte outside printable ASCII");
	if (getenv("FUZZ_CLIENT_DEBUG") != NULL)
		fprintf(stderr, "connect: \"%s\"\n", why);
	if ((rc == SESSD_OK) != (c != NULL))
		fail("sessd_connect's client and code disagree");
	if (rc == SESSD_OK) {
		sessd_close(c);
		return;
	}
	if (!known_code(rc) || rc == SESSD_NOT_FOUND || rc == SESSD_CONFLICT ||
	    rc == SESSD_ERR_USAGE || rc == SESSD_ERR_TIMEOUT || rc == SESSD_ERR_CLOSED)
		fail("a code sessd_connect does not return");
	if ((rc == SESSD_ERR_PROTOCOL && err != EPROTO) ||
	    (rc == SESSD_ERR_CONNECT && err != ECONNRESET && err != ETIMEDOUT) ||
	    (rc == SESSD_ERR_BAD_VERSION && err != EPROTONOSUPPORT) ||
	    (rc == SESSD_ERR_BUSY && err != EAGAIN) || (rc == SESSD_ERR_NOMEM && err != ENOMEM))
		fail("sessd_connect's errno is not the one sessd.h gives its code");
}

/*
 * Close the connections no fake server took: a client that connected again within its call
 * left one in the listen queue, which the next input's server would otherwise take for its
 * own client's (reading an old HELLO, answering a closed socket).
 */
static void drop_unserved(void)
{
	struct pollfd pending = {.fd = listen_fd, .events = POLLIN};
	int fd;

	while (poll(&pending, 1, 0) == 1) {
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd == -1)
			break;
		close(fd);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sessd_options opts = {.timeout_ms = FUZZ_TIMEOUT_MS, .client_name = "fuzz"};
	struct fake_server s;
	struct sessd_client *c = NULL;
	pthread_t server;
	const uint8_t *ops = NULL;
	unsigned call;
	size_t count = 1, head = 2;
	int rc;

	if (size < 2)
		return 0;
	listen_once();
	call = data[0] % CALL_COUNT_OF;
	if (call == CALL_BATCH) {
		if (size < 3)
			return 0;
		count = data[2] % FUZZ_BATCH_MAX + 1;
		if (size < 3 + count)
			return 0;
		ops = data + 3;
		head = 3 + count;
	}
	s.raw_hello = (data[1] & 0x80) != 0;
	s.sealed = !s.raw_hello && (data[1] & 0x40) != 0;
	if (s.sealed) {
		opts.auth = FUZZ_SECRET;
		opts.auth_len = strlen(FUZZ_SECRET);
	}
	s.max_frame = max_frames[data[1] & 3];
	s.requests = s.raw_hello ? 0 : count;
	s.script = data + head;
	s.script_len = size - head;
	if (pthread_create(&server, NULL, fake_serve, &s) != 0)
		fail("pthread_create");
	if (s.raw_hello) {
		connect_only(&opts);
		pthread_join(server, NULL);
		drop_unserved();
		return 0;
	}
	rc = sessd_connect(sock_url, &opts, &c);
	if (rc != SESSD_OK)
		fail("the harness's HELLO was refused");
	if (call == CALL_BATCH)
		run_batch(c, ops, count, s.max_frame);
	else
		run_call(c, call, s.max_frame);
	if (!printable(sessd_errmsg(c)))
		fail("sessd_errmsg holds a byte outside printable ASCII");
	if (getenv("FUZZ_CLIENT_DEBUG") != NULL)
		fprintf(stderr, "call %u: \"%s\"\n", call, sessd_errmsg(c));
	sessd_close(c);
	pthread_join(server, NULL);
	drop_unserved();
	return 0;
}
