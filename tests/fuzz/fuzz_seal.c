/*
 * libFuzzer entry point for sealed connections (PROTOCOL.md, "Sealed connections"). Random
 * bytes almost never authenticate, so the harness holds the keys itself: a fixed secret, and
 * fixed ephemeral keys on whichever side it plays, so that the fuzzer chooses plaintexts and
 * what happens to their records (flipped bits, replays, drops, cuts, rewritten lengths, raw
 * bytes, how the stream is split into reads) and reaches the framing of what opens.
 *
 * The first byte of an input picks its kind (its value mod 3); the rest is:
 *
 *   0  RECORDS: a script (below) of records a client sends after a sealed HELLO, read and
 *      opened as the daemon's conn.c does (seal_record_size first, then whole records, the
 *      stream dead at the first fault), the opened plaintext cut into frames and decoded as
 *      requests.
 *   1  HELLO: a HELLO's auth handed to the real dispatch (daemon/dispatch.c, daemon/auth.c)
 *      of a server with an --auth-file secret. The next byte (mod 4) picks the auth: the
 *      fuzzer's raw msgpack (n:u16 bytes); a right key exchange with 0 to 7 bits flipped
 *      (count:u8, then at:u16 bit:u8 each); a right one; or a right proof of a public key the
 *      fuzzer chose (32 bytes: low-order points). A sealed HELLO that passes is read back
 *      as libsessd reads it (client/reply.c) and finished; then a record script as in 0, whose
 *      frames go to dispatch and whose replies, sealed by the server, must open at the client
 *      and decode.
 *   2  REPLY: the client's side: the rest is a HELLO reply body read as libsessd reads it, its
 *      kx finishing a fixed client's exchange; or (next byte odd) a right reply with bits
 *      flipped as in 1, then a record script from server to client, opened frames decoded as
 *      replies. A failed exchange must stay failed, even for the proof anyone can make from
 *      the wiped keys it leaves.
 *
 * A record script is a list of operations, each a byte (mod 8) and its arguments:
 *   0 SEAL n:u16 bytes    the sender seals the next n + 1 bytes (zeros past the input's end)
 *   1 RAW n:u8 bytes      n raw bytes onto the wire
 *   2 FLIP at:u16 bit:u8  flip one bit of the wire
 *   3 REPLAY i:u8         a record sent before, again
 *   4 DROP n:u8 bytes     the sender seals the next n + 1 bytes, which never reach the wire
 *   5 CUT n:u8            drop the last n bytes of the wire
 *   6 LENGTH v:u32        rewrite the length of the last record
 *   7 END                 the rest of the input splits the wire into reads: byte b reads
 *                         1 + b * b bytes; what is left is read in one go
 * Checks (abort on failure): a record opens only if it is, byte for byte, the record sealed
 * with its number, and gives that record's plaintext; a stream of untouched records opens
 * whole whatever the reads; after a fault the right record still opens (no number was used
 * up); every reply the server seals opens at the client and decodes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth.h"
#include "buf.h"
#include "codec.h"
#include "dispatch.h"
#include "fuzz_auth.h"
#include "fuzz_input.h"
#include "log.h"
#include "mp.h"
#include "reply.h"
#include "seal.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 32 bytes: the --auth-file secret of the harness's server, known to both sides. */
static const char secret[] = "fuzz_seal: a secret of 32 bytes!";
static const uint8_t server_secret_key[SEAL_KEY_BYTES] = {
    0x5d, 0xab, 0x08, 0x7e, 0x62, 0x4a, 0x8a, 0x4b, 0x79, 0xe1, 0x7f, 0x8b, 0x83, 0x80, 0x0e, 0xe6,
    0x6f, 0x3b, 0xb1, 0x29, 0x26, 0x18, 0xb6, 0xfd, 0x1c, 0x2f, 0x8b, 0x27, 0xff, 0x88, 0xe0, 0xeb};

/* Made once: the psk, and the server's auth (from a 0600 file, as sessd loads it). */
static uint8_t psk[SEAL_PSK_BYTES];
static struct auth *server_auth;
/* The dispatch of a HELLO input talks about a wall-clock instant; any fixed one will do. */
static const uint64_t now_ms = 1764547200000ull;

static void init_once(void)
{
	static bool done;
	char dir[] = "/tmp/fuzz-seal-XXXXXX";

	if (done)
		return;
	done = true;
	check(sodium_init() >= 0);
	log_set_level(LOG_ERROR);
	server_auth = fuzz_server_auth(secret, dir, psk);
}

/* Every record the sender sealed, by number, whether or not it reached the wire. */
#define MAX_RECORDS 512

struct script {
	struct buf wire;   /* what goes to the receiver */
	struct buf sealed; /* every record sealed, back to back, by number */
	size_t sealed_at[MAX_RECORDS + 1];
	struct buf plain; /* their plaintexts, back to back */
	size_t plain_at[MAX_RECORDS + 1];
	size_t n_sealed;
	/* wire offsets of the records put on it whole, for REPLAY and LENGTH */
	size_t wire_at[MAX_RECORDS];
	size_t n_wire;
	bool clean; /* only SEAL so far: every byte on the wire must open */
};

/* The sender seals ${len} bytes of the input as its next record; onto the wire if ${send}. */
static void script_seal(struct script *sc, struct seal *sender, struct input *in, size_t len,
                        bool send)
{
	size_t before = sc->sealed.len;
	uint8_t *plain;

	if (sc->n_sealed == MAX_RECORDS || (send && sc->n_wire == MAX_RECORDS))
		return;
	plain = malloc(len);
	check(plain != NULL);
	take_bytes(in, plain, len);
	check(seal_append(sender, &sc->sealed, plain, len) == 0);
	check(sc->sealed.len - before == len + SEAL_OVERHEAD);
	check(buf_append(&sc->plain, plain, len) == 0);
	free(plain);
	sc->sealed_at[++sc->n_sealed] = sc->sealed.len;
	sc->plain_at[sc->n_sealed] = sc->plain.len;
	if (!send)
		return;
	sc->wire_at[sc->n_wire++] = sc->wire.len;
	check(buf_append(&sc->wire, sc->sealed.data + before, len + SEAL_OVERHEAD) == 0);
}

/* The size of the record at ${at} in the wire, as its header says (0: malformed). */
static size_t wire_record_size(const struct script *sc, size_t at)
{
	if (sc->wire.len - at < SEAL_HEADER_BYTES)
		return 0;
	return seal_record_size(sc->wire.data + at);
}

/* Build the wire from the script at the front of ${in}, up to END or the input's end. */
static void script_run(struct script *sc, struct seal *sender, struct input *in)
{
	uint8_t raw[256];
	size_t n, at;
	uint32_t v;

	memset(sc, 0, sizeof *sc);
	buf_init(&sc->wire);
	buf_init(&sc->sealed);
	buf_init(&sc->plain);
	sc->clean = true;
	while (in->left > 0) {
		switch (take_u8(in) % 8) {
		case 0:
			script_seal(sc, sender, in, (size_t)take_be(in, 2) + 1, true);
			break;
		case 1:
			n = take_u8(in);
			take_bytes(in, raw, n);
			check(buf_append(&sc->wire, raw, n) == 0);
			sc->clean = false;
			break;
		case 2:
			at = take_be(in, 2);
			v = take_u8(in);
			if (sc->wire.len > 0)
				sc->wire.data[at % sc->wire.len] ^= (uint8_t)(1u << (v % 8));
			sc->clean = false;
			break;
		case 3:
			v = take_u8(in);
			if (sc->n_wire == 0)
				break;
			at = sc->wire_at[v % sc->n_wire];
			n = wire_record_size(sc, at);
			if (n == 0 || sc->wire.len - at < n || sc->n_wire == MAX_RECORDS)
				break;
			check(buf_reserve(&sc->wire, n) == 0);
			sc->wire_at[sc->n_wire++] = sc->wire.len;
			memcpy(sc->wire.data + sc->wire.len, sc->wire.data + at, n);
			sc->wire.len += n;
			sc->clean = false;
			break;
		case 4:
			script_seal(sc, sender, in, (size_t)take_u8(in) + 1, false);
			sc->clean = false;
			break;
		case 5:
			n = take_u8(in);
			sc->wire.len -= n < sc->wire.len ? n : sc->wire.len;
			while (sc->n_wire > 0 && sc->wire_at[sc->n_wire - 1] >= sc->wire.len)
				sc->n_wire--;
			sc->clean = false;
			break;
		case 6:
			v = take_be(in, 4);
			if (sc->n_wire == 0 || sc->wire.len - sc->wire_at[sc->n_wire - 1] < 4)
				break;
			at = sc->wire_at[sc->n_wire - 1];
			sc->wire.data[at] = (uint8_t)(v >> 24);
			sc->wire.data[at + 1] = (uint8_t)(v >> 16);
			sc->wire.data[at + 2] = (uint8_t)(v >> 8);
			sc->wire.data[at + 3] = (uint8_t)v;
			sc->clean = false;
			break;
		default:
			return;
		}
	}
}

static void script_finish(struct script *sc)
{
	buf_finish(&sc->wire);
	buf_finish(&sc->sealed);
	buf_finish(&sc->plain);
}

/* What the receiver does with each whole frame body it opens: 0 to go on, -1 to stop. */
typedef int (*frame_fn)(void *ctx, const uint8_t *body, size_t len);

/* The receiving side of a sealed stream, as conn.c and wire.c keep it. */
struct receiver {
	struct seal *seal;
	const struct script *sc;
	struct buf raw;  /* bytes read whose record is not whole yet */
	struct buf in;   /* opened plaintext not yet cut into frames */
	struct buf all;  /* every plaintext byte opened, to compare */
	uint64_t opened; /* records opened: the next one's number */
	const char *fault;
	bool stopped; /* a frame said stop, or a frame was too long */
	uint32_t max_frame;
	frame_fn on_frame;
	void *ctx;
};

/*
 * Open the records whole at the front of raw (conn.c's and wire.c's open_records), checking
 * each against the record sealed with its number.
 */
static void receiver_open(struct receiver *rc)
{
	const struct script *sc = rc->sc;
	size_t at = 0, size, plain_len;
	const uint8_t *record;

	while (rc->fault == NULL && rc->raw.len - at >= SEAL_HEADER_BYTES) {
		uint32_t n;

		record = rc->raw.data + at;
		size = seal_record_size(record);
		n = (uint32_t)record[0] << 24 | (uint32_t)record[1] << 16 |
		    (uint32_t)record[2] << 8 | record[3];
		/* PROTOCOL.md: a length of 17 to 65552 */
		check((size != 0) == (n >= 17 && n <= 65552));
		if (size == 0) {
			rc->fault = "a record of a malformed length";
			break;
		}
		check(size == (size_t)n + 4);
		if (rc->raw.len - at < size)
			break;
		plain_len = size - SEAL_OVERHEAD;
		check(buf_reserve(&rc->in, plain_len) == 0);
		if (seal_open(rc->seal, record, size, rc->in.data + rc->in.len) == -1) {
			rc->fault = "a record that does not authenticate";
			break;
		}
		/* Only the very record sealed with this number opens. */
		check(rc->opened < sc->n_sealed);
		check(sc->sealed_at[rc->opened + 1] - sc->sealed_at[rc->opened] == size);
		check(memcmp(sc->sealed.data + sc->sealed_at[rc->opened], record, size) == 0);
		check(buf_append(&rc->all, rc->in.data + rc->in.len, plain_len) == 0);
		rc->in.len += plain_len;
		rc->opened++;
		at += size;
	}
	buf_consume(&rc->raw, rc->fault == NULL ? at : rc->raw.len);
}

/* Cut whole frames off the front of the plaintext and hand them on, as conn.c does. */
static void receiver_frames(struct receiver *rc)
{
	size_t at = 0;
	uint32_t len;

	while (!rc->stopped && rc->in.len - at >= CODEC_HEADER_BYTES) {
		len = codec_frame_length(rc->in.data + at);
		if (len > rc->max_frame || len == 0) {
			rc->stopped = true;
			break;
		}
		if (rc->in.len - at - CODEC_HEADER_BYTES < len)
			break;
		if (rc->on_frame(rc->ctx, rc->in.data + at + CODEC_HEADER_BYTES, len) == -1)
			rc->stopped = true;
		at += CODEC_HEADER_BYTES + (size_t)len;
	}
	buf_consume(&rc->in, at);
}

/*
 * Read the script's wire into ${receiver} in the reads the rest of ${in} asks for, then
 * check what opened against what was sealed.
 */
static void receive(const struct script *sc, struct seal *receiver, struct input *in,
                    uint32_t max_frame, frame_fn on_frame, void *ctx)
{
	struct receiver rc = {
	    .seal = receiver, .sc = sc, .max_frame = max_frame, .on_frame = on_frame, .ctx = ctx};
	size_t at = 0, n;
	uint8_t b;

	buf_init(&rc.raw);
	buf_init(&rc.in);
	buf_init(&rc.all);
	while (at < sc->wire.len && rc.fault == NULL && !rc.stopped) {
		n = sc->wire.len - at;
		if (in->left > 0) {
			b = take_u8(in);
			if ((size_t)1 + (size_t)b * b < n)
				n = (size_t)1 + (size_t)b * b;
		}
		check(buf_append(&rc.raw, sc->wire.data + at, n) == 0);
		at += n;
		receiver_open(&rc);
		receiver_frames(&rc);
	}
	if (sc->clean && !rc.stopped) {
		/* Untouched records open whole, however the reads fall. */
		check(rc.fault == NULL && rc.raw.len == 0);
		check(rc.opened == sc->n_sealed);
	}
	/* What opened is the plaintext of records 0..opened-1, in order, and nothing else. */
	check(rc.opened <= sc->n_sealed);
	check(rc.all.len == sc->plain_at[rc.opened]);
	check(rc.all.len == 0 || memcmp(rc.all.data, sc->plain.data, rc.all.len) == 0);
	if (rc.fault != NULL && rc.opened < sc->n_sealed) {
		/* A failed open uses up no number: the right record still opens. */
		size_t size = sc->sealed_at[rc.opened + 1] - sc->sealed_at[rc.opened];

		check(buf_reserve(&rc.in, size) == 0);
		check(seal_open(receiver, sc->sealed.data + sc->sealed_at[rc.opened], size,
		                rc.in.data + rc.in.len) == 0);
	}
	buf_finish(&rc.raw);
	buf_finish(&rc.in);
	buf_finish(&rc.all);
}

/* A client's seal and its server's, both with the harness's fixed keys, finished. */
static void fixed_pair(struct seal **client, struct seal **server)
{
	uint8_t c_pk[SEAL_KEY_BYTES], c_proof[SEAL_PROOF_BYTES];
	uint8_t s_pk[SEAL_KEY_BYTES], s_proof[SEAL_PROOF_BYTES];

	*client = seal_client_new_with_key(psk, fuzz_client_secret_key, c_pk, c_proof);
	check(*client != NULL);
	*server = seal_server_new_with_key(psk, c_pk, c_proof, server_secret_key, s_pk, s_proof);
	check(*server != NULL);
	check(seal_client_finish(*client, s_pk, s_proof) == 0);
	/* Finished once, a client's exchange cannot be finished again. */
	check(seal_client_finish(*client, s_pk, s_proof) == -1);
}

static int decode_request(void *ctx, const uint8_t *body, size_t len)
{
	struct codec_request req;
	uint32_t status;
	const char *why;

	(void)ctx;
	if (codec_decode_request(body, len, &req, &status, &why) == -1)
		return status == CODEC_UNKNOWN_OP ? 0 : -1;
	return 0;
}

static int decode_reply(void *ctx, const uint8_t *body, size_t len)
{
	struct codec_reply rep;

	(void)ctx;
	return codec_decode_reply(body, len, &rep);
}

static void run_records(struct input *in)
{
	struct seal *client, *server;
	struct script sc;

	fixed_pair(&client, &server);
	script_run(&sc, client, in);
	receive(&sc, server, in, CODEC_DEFAULT_MAX_FRAME, decode_request, NULL);
	script_finish(&sc);
	seal_free(client);
	seal_free(server);
}

/* The auth map of a sealed HELLO, as client.c writes it. */
static void write_kx_auth(struct buf *out, const uint8_t pk[SEAL_KEY_BYTES],
                          const uint8_t proof[SEAL_PROOF_BYTES])
{
	check(mp_write_map(out, 2) == 0 && mp_write_str(out, "kx", 2) == 0 &&
	      mp_write_bin(out, pk, SEAL_KEY_BYTES) == 0 && mp_write_str(out, "proof", 5) == 0 &&
	      mp_write_bin(out, proof, SEAL_PROOF_BYTES) == 0);
}

/* Flip the bits the input names (a count of 0 to 7, then at:u16 bit:u8 each) in ${b}. */
static void flip_bits(struct buf *b, struct input *in)
{
	unsigned flips = take_u8(in) % 8;

	while (flips-- > 0) {
		uint32_t at = take_be(in, 2);
		uint8_t bit = take_u8(in);

		if (b->len > 0)
			b->data[at % b->len] ^= (uint8_t)(1u << (bit % 8));
	}
}

/* The server's side of a sealed connection in a HELLO input: dispatch, and the client. */
struct session {
	struct dispatch *d;
	struct dispatch_peer *peer;
	struct seal *client;
	struct buf replies; /* the server's plain replies to one frame */
	struct buf records; /* ...sealed */
	bool closed;
};

static int client_reads_reply(void *ctx, const uint8_t *body, size_t len)
{
	struct codec_reply rep;

	(void)ctx;
	/* The server writes nothing the client cannot read. */
	check(codec_decode_reply(body, len, &rep) == 0);
	return 0;
}

/* A frame the server opened: dispatch it, seal the reply, and have the client open that. */
static int server_handles_frame(void *ctx, const uint8_t *body, size_t len)
{
	struct session *ss = ctx;
	enum dispatch_verdict verdict;
	struct receiver rc = {.seal = ss->client,
	                      .max_frame = CODEC_DEFAULT_MAX_FRAME,
	                      .on_frame = client_reads_reply};

	if (ss->closed)
		return -1;
	buf_reset(&ss->replies);
	buf_reset(&ss->records);
	verdict = dispatch_frame(ss->d, ss->peer, body, len, now_ms, &ss->replies);
	if (verdict == DISPATCH_LATER)
		return 0;
	check(ss->replies.len > 0);
	check(seal_append_all(ss->peer->seal, &ss->records, ss->replies.data, ss->replies.len) ==
	      0);
	/* Every record the server seals opens at the client, whole, in order, to exactly the
	 * replies, which all decode. */
	buf_init(&rc.raw);
	buf_init(&rc.in);
	buf_init(&rc.all);
	for (size_t at = 0; at < ss->records.len;) {
		size_t size = seal_record_size(ss->records.data + at);

		check(size != 0 && ss->records.len - at >= size);
		check(buf_reserve(&rc.in, size - SEAL_OVERHEAD) == 0);
		check(seal_open(ss->client, ss->records.data + at, size, rc.in.data + rc.in.len) ==
		      0);
		rc.in.len += size - SEAL_OVERHEAD;
		at += size;
	}
	check(rc.in.len == ss->replies.len && memcmp(rc.in.data, ss->replies.data, rc.in.len) == 0);
	receiver_frames(&rc);
	check(rc.in.len == 0);
	buf_finish(&rc.raw);
	buf_finish(&rc.in);
	buf_finish(&rc.all);
	if (verdict == DISPATCH_CLOSE) {
		ss->closed = true;
		return -1;
	}
	return 0;
}

static void run_hello(struct input *in)
{
	struct store_config scfg = {.max_bytes = 1u << 20,
	                            .max_flash_bytes = CODEC_DEFAULT_MAX_FRAME / 2};
	struct dispatch_config dcfg = {.max_frame = CODEC_DEFAULT_MAX_FRAME, .auth = server_auth};
	struct dispatch_server_stats stats = {0};
	struct dispatch_peer peer = {0};
	uint8_t c_pk[SEAL_KEY_BYTES], c_proof[SEAL_PROOF_BYTES], proof[SEAL_PROOF_BYTES];
	uint8_t s_pk[SEAL_KEY_BYTES], s_proof[SEAL_PROOF_BYTES];
	struct codec_request req = {.op = CODEC_OP_HELLO, .request_id = 1, .version = 1};
	struct codec_reply rep;
	struct reply_hello hello;
	struct buf auth, frame, out;
	struct store *st;
	struct dispatch *d;
	struct seal *client;
	struct session ss;
	struct script sc;
	crypto_auth_hmacsha256_state hs;
	const char *why;
	uint8_t kind = take_u8(in) % 4;
	size_t n;
	bool ours = kind == 1 || kind == 2;

	buf_init(&auth);
	buf_init(&frame);
	buf_init(&out);
	client = seal_client_new_with_key(psk, fuzz_client_secret_key, c_pk, c_proof);
	check(client != NULL);
	switch (kind) {
	case 0:
		n = take_be(in, 2) % 2048;
		check(buf_reserve(&auth, n) == 0);
		take_bytes(in, auth.data, n);
		auth.len = n;
		break;
	case 1:
		write_kx_auth(&auth, c_pk, c_proof);
		flip_bits(&auth, in);
		break;
	case 2:
		write_kx_auth(&auth, c_pk, c_proof);
		break;
	default:
		/* The right proof of whatever key it is: only X25519 can refuse it. */
		take_bytes(in, c_pk, sizeof c_pk);
		crypto_auth_hmacsha256_init(&hs, psk, sizeof psk);
		crypto_auth_hmacsha256_update(&hs, (const uint8_t *)"sessd-kx-v1 client", 18);
		crypto_auth_hmacsha256_update(&hs, c_pk, sizeof c_pk);
		crypto_auth_hmacsha256_final(&hs, proof);
		write_kx_auth(&auth, c_pk, proof);
		break;
	}
	req.client_name.ptr = (const uint8_t *)"fuzz_seal";
	req.client_name.len = 9;
	req.auth.ptr = auth.data;
	req.auth.len = auth.len;
	st = store_new(&scfg);
	check(st != NULL);
	d = dispatch_new(&dcfg, st, NULL, &stats);
	check(d != NULL);
	if (codec_encode_request(&frame, &req) == -1)
		goto done;
	dispatch_frame(d, &peer, frame.data + CODEC_HEADER_BYTES, frame.len - CODEC_HEADER_BYTES,
	               now_ms, &out);
	check(out.len >= CODEC_HEADER_BYTES &&
	      codec_frame_length(out.data) == out.len - CODEC_HEADER_BYTES);
	check(codec_decode_reply(out.data + CODEC_HEADER_BYTES, out.len - CODEC_HEADER_BYTES,
	                         &rep) == 0);
	/* A right exchange passes, and a sealed HELLO passes only as one. */
	if (kind == 2)
		check(peer.seal != NULL);
	/* (A plain HELLO may pass too: the fuzzer may show the secret itself.) */
	if (peer.seal == NULL)
		goto done;
	check(peer.ready && rep.status == CODEC_OK);
	check(reply_hello(&rep.result, &hello, &why) == SESSD_OK);
	check(hello.auth && hello.has_kx);
	check(reply_hello_kx(&hello.kx, s_pk, s_proof) == SESSD_OK);
	if (!ours)
		goto done;
	/* Bits flipped outside the key and proof may leave the exchange ours. */
	if (seal_client_finish(client, s_pk, s_proof) == -1) {
		check(kind == 1);
		goto done;
	}
	memset(&ss, 0, sizeof ss);
	ss.d = d;
	ss.peer = &peer;
	ss.client = client;
	buf_init(&ss.replies);
	buf_init(&ss.records);
	script_run(&sc, client, in);
	receive(&sc, peer.seal, in, CODEC_DEFAULT_MAX_FRAME, server_handles_frame, &ss);
	script_finish(&sc);
	buf_finish(&ss.replies);
	buf_finish(&ss.records);
done:
	seal_free(peer.seal);
	dispatch_free(d);
	store_free(st);
	seal_free(client);
	buf_finish(&auth);
	buf_finish(&frame);
	buf_finish(&out);
}

/* A right HELLO reply body for the fixed client key, from the fixed server key. */
static void right_reply(struct buf *out, struct seal **server)
{
	uint8_t c_pk[SEAL_KEY_BYTES], c_proof[SEAL_PROOF_BYTES];
	uint8_t s_pk[SEAL_KEY_BYTES], s_proof[SEAL_PROOF_BYTES];
	struct seal *c = seal_client_new_with_key(psk, fuzz_client_secret_key, c_pk, c_proof);
	size_t at;

	check(c != NULL);
	seal_free(c);
	*server = seal_server_new_with_key(psk, c_pk, c_proof, server_secret_key, s_pk, s_proof);
	check(*server != NULL);
	check(codec_reply_open(out, 1, CODEC_OK, &at) == 0);
	check(mp_write_map(out, 4) == 0 && mp_write_str(out, "version", 7) == 0 &&
	      mp_write_uint(out, 1) == 0 && mp_write_str(out, "server_id", 9) == 0 &&
	      mp_write_str(out, "0123456789abcdef0123456789abcdef", 32) == 0 &&
	      mp_write_str(out, "auth", 4) == 0 && mp_write_bool(out, true) == 0 &&
	      mp_write_str(out, "kx", 2) == 0 && mp_write_map(out, 2) == 0 &&
	      mp_write_str(out, "key", 3) == 0 && mp_write_bin(out, s_pk, sizeof s_pk) == 0 &&
	      mp_write_str(out, "proof", 5) == 0 &&
	      mp_write_bin(out, s_proof, sizeof s_proof) == 0);
	check(codec_frame_close(out, at) == 0);
	/* the body only */
	buf_consume(out, CODEC_HEADER_BYTES);
}

/*
 * The server proof of a client whose psk and ephemeral secret key are all zeros (as a failed
 * seal_client_finish leaves them wiped): anyone can compute it, so it must never be taken.
 */
static void wiped_client_proof(const uint8_t c_pk[SEAL_KEY_BYTES],
                               const uint8_t s_pk[SEAL_KEY_BYTES], uint8_t proof[SEAL_PROOF_BYTES])
{
	static const uint8_t zeros[32];
	uint8_t shared[32], prk[32], okm[96], counter;
	crypto_auth_hmacsha256_state st;

	if (crypto_scalarmult(shared, zeros, s_pk) != 0)
		memset(shared, 0, sizeof shared);
	crypto_auth_hmacsha256(prk, shared, sizeof shared, zeros);
	for (counter = 1; counter <= 3; counter++) {
		crypto_auth_hmacsha256_init(&st, prk, sizeof prk);
		if (counter > 1)
			crypto_auth_hmacsha256_update(&st, okm + 32 * (counter - 2), 32);
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)"sessd-kx-v1 keys", 16);
		crypto_auth_hmacsha256_update(&st, c_pk, SEAL_KEY_BYTES);
		crypto_auth_hmacsha256_update(&st, s_pk, SEAL_KEY_BYTES);
		crypto_auth_hmacsha256_update(&st, &counter, 1);
		crypto_auth_hmacsha256_final(&st, okm + 32 * (counter - 1));
	}
	crypto_auth_hmacsha256_init(&st, okm + 64, 32);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)"sessd-kx-v1 server", 18);
	crypto_auth_hmacsha256_update(&st, c_pk, SEAL_KEY_BYTES);
	crypto_auth_hmacsha256_update(&st, s_pk, SEAL_KEY_BYTES);
	crypto_auth_hmacsha256_final(&st, proof);
}

static void run_reply(struct input *in)
{
	uint8_t c_pk[SEAL_KEY_BYTES], c_proof[SEAL_PROOF_BYTES];
	uint8_t s_pk[SEAL_KEY_BYTES], s_proof[SEAL_PROOF_BYTES];
	struct seal *client, *server = NULL;
	struct codec_reply rep;
	struct reply_hello hello;
	struct mp_bytes body;
	struct script sc;
	struct buf right;
	const char *why;
	bool ours = take_u8(in) % 2 == 1;

	buf_init(&right);
	client = seal_client_new_with_key(psk, fuzz_client_secret_key, c_pk, c_proof);
	check(client != NULL);
	if (ours) {
		right_reply(&right, &server);
		flip_bits(&right, in);
		body.ptr = right.data;
		body.len = right.len;
	} else {
		/* The rest of the input is the body, up to its very end. */
		body.ptr = in->p;
		body.len = in->left;
		in->p += in->left;
		in->left = 0;
	}
	/* As client.c reads a sealed HELLO's reply: the proof before anything else. */
	if (codec_decode_reply(body.ptr, body.len, &rep) == -1 || rep.status != CODEC_OK ||
	    reply_hello(&rep.result, &hello, &why) != SESSD_OK || !hello.has_kx ||
	    reply_hello_kx(&hello.kx, s_pk, s_proof) != SESSD_OK)
		goto done;
	if (seal_client_finish(client, s_pk, s_proof) == -1) {
		/* A failed exchange stays failed: not even the proof of the wiped keys, which
		 * anyone can make, finishes it. */
		wiped_client_proof(c_pk, s_pk, s_proof);
		check(seal_client_finish(client, s_pk, s_proof) == -1);
		goto done;
	}
	/* Only a reply from the fixed server key gets here (the fuzzer may have copied one). */
	if (server == NULL) {
		right_reply(&right, &server);
		check(server != NULL);
	}
	script_run(&sc, server, in);
	receive(&sc, client, in, CODEC_DEFAULT_MAX_FRAME, decode_reply, NULL);
	script_finish(&sc);
done:
	seal_free(server);
	seal_free(client);
	buf_finish(&right);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};

	init_once();
	switch (take_u8(&in) % 3) {
	case 0:
		run_records(&in);
		break;
	case 1:
		run_hello(&in);
		break;
	default:
		run_reply(&in);
		break;
	}
	return 0;
}
