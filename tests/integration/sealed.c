/* The client's side of a sealed connection, for the integration tests: see sealed.h. */
#include "sealed.h"

#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* The auth map of a key exchange: {"kx": public, "proof": proof}. */
void sealed_kx_map(struct buf *out, const uint8_t public[32], const uint8_t proof[32])
{
	cr_assert_eq(mp_write_map(out, 2), 0);
	cr_assert_eq(mp_write_str(out, "kx", 2), 0);
	cr_assert_eq(mp_write_bin(out, public, 32), 0);
	cr_assert_eq(mp_write_str(out, "proof", 5), 0);
	cr_assert_eq(mp_write_bin(out, proof, 32), 0);
}

/* Send HELLO with ${auth} (raw msgpack) on ${fd}; returns the reply (status, result into
 * *body, to free). */
struct codec_reply sealed_hello_with(int fd, const struct buf *auth, uint8_t **body)
{
	struct codec_request req = {.op = CODEC_OP_HELLO, .version = 1, .request_id = 1};
	struct codec_reply rep;

	req.client_name = (struct mp_bytes){(const uint8_t *)"sealed-test", 11};
	req.auth = (struct mp_bytes){auth->data, auth->len};
	cr_assert_eq(harness_call(fd, &req, &rep, body), 0, "no HELLO reply");
	return rep;
}

/* Find the reply map's "kx" and read its key and proof; returns 0, or -1 if absent. */
int sealed_reply_kx(const struct codec_reply *rep, uint8_t public[32], uint8_t proof[32])
{
	struct mp_reader r;
	uint32_t pairs, inner;
	struct mp_bytes key, value;

	mp_reader_init(&r, rep->result.ptr, rep->result.len);
	cr_assert_eq(mp_read_map(&r, &pairs), 0);
	for (uint32_t i = 0; i < pairs; i++) {
		cr_assert_eq(mp_read_str(&r, &key), 0);
		if (key.len != 2 || memcmp(key.ptr, "kx", 2) != 0) {
			cr_assert_eq(mp_skip(&r), 0);
			continue;
		}
		cr_assert_eq(mp_read_map(&r, &inner), 0);
		cr_assert_eq(inner, 2);
		for (uint32_t j = 0; j < inner; j++) {
			cr_assert_eq(mp_read_str(&r, &key), 0);
			cr_assert_eq(mp_read_bytes(&r, &value, NULL), 0);
			cr_assert_eq(value.len, 32);
			memcpy(key.len == 3 ? public : proof, value.ptr, 32);
		}
		return 0;
	}
	return -1;
}

struct sealed sealed_on(int fd, const char *key)
{
	uint8_t psk[SEAL_PSK_BYTES], c_pk[32], c_proof[32], s_pk[32], s_proof[32];
	struct sealed s = {.fd = fd};
	struct codec_reply rep;
	struct buf auth;
	uint8_t *body;

	seal_psk(psk, key, strlen(key));
	s.seal = seal_client_new(psk, c_pk, c_proof);
	cr_assert_not_null(s.seal);
	buf_init(&auth);
	sealed_kx_map(&auth, c_pk, c_proof);
	rep = sealed_hello_with(fd, &auth, &body);
	cr_assert_eq(rep.status, CODEC_OK, "sealed HELLO: status %u", rep.status);
	cr_assert_eq(harness_map_uint(&rep, "version"), 1);
	cr_assert_eq(sealed_reply_kx(&rep, s_pk, s_proof), 0, "the reply has no kx");
	cr_assert_eq(seal_client_finish(s.seal, s_pk, s_proof), 0, "the server's proof is wrong");
	memcpy(s.server_key, s_pk, sizeof s.server_key);
	free(body);
	buf_finish(&auth);
	buf_init(&s.plain);
	return s;
}

struct sealed sealed_open_with(const char *url, const char *key)
{
	int fd = harness_connect(url);

	cr_assert_geq(fd, 0);
	return sealed_on(fd, key);
}

void sealed_close(struct sealed *s)
{
	close(s->fd);
	seal_free(s->seal);
	buf_finish(&s->plain);
}

/* Seal and send the frames in ${frames}. */
void sealed_send(struct sealed *s, const struct buf *frames)
{
	struct buf wire;

	buf_init(&wire);
	cr_assert_eq(seal_append_all(s->seal, &wire, frames->data, frames->len), 0);
	cr_assert_eq(harness_send_all(s->fd, wire.data, wire.len), 0);
	buf_finish(&wire);
}

/* Read one record and open it onto s->plain; returns 0, or -1 at the end of the stream. */
int sealed_read_record(struct sealed *s)
{
	uint8_t header[SEAL_HEADER_BYTES], *record;
	size_t size;

	if (harness_recv_all(s->fd, header, sizeof(header)) == -1)
		return -1;
	size = seal_record_size(header);
	cr_assert_neq(size, 0, "the server sent a malformed record length");
	record = malloc(size);
	cr_assert_not_null(record);
	memcpy(record, header, sizeof(header));
	cr_assert_eq(harness_recv_all(s->fd, record + sizeof(header), size - sizeof(header)), 0);
	cr_assert_eq(buf_reserve(&s->plain, size - SEAL_OVERHEAD), 0);
	cr_assert_eq(seal_open(s->seal, record, size, s->plain.data + s->plain.len), 0,
	             "a record from the server does not open");
	s->plain.len += size - SEAL_OVERHEAD;
	free(record);
	return 0;
}

/* The next reply frame: decoded into ${rep}, its body copied into *${body} (to free). Fails
 * the test at the end of the stream. */
void sealed_reply(struct sealed *s, struct codec_reply *rep, uint8_t **body)
{
	size_t avail, n;

	for (;;) {
		avail = s->plain.len - s->plain_at;
		if (avail >= CODEC_HEADER_BYTES) {
			n = codec_frame_length(s->plain.data + s->plain_at);
			if (avail - CODEC_HEADER_BYTES >= n)
				break;
		}
		cr_assert_eq(sealed_read_record(s), 0, "the stream ended before a reply");
	}
	*body = malloc(n);
	cr_assert_not_null(*body);
	memcpy(*body, s->plain.data + s->plain_at + CODEC_HEADER_BYTES, n);
	s->plain_at += CODEC_HEADER_BYTES + n;
	cr_assert_eq(codec_decode_reply(*body, n, rep), 0);
}

/* One request, sealed, and its reply's status (the result, when wanted, into *result). */
uint32_t sealed_call(struct sealed *s, const struct codec_request *req, struct mp_bytes *result,
                     uint8_t **body)
{
	struct codec_reply rep;
	struct buf frames;
	uint8_t *own = NULL;

	buf_init(&frames);
	cr_assert_eq(codec_encode_request(&frames, req), 0);
	sealed_send(s, &frames);
	buf_finish(&frames);
	sealed_reply(s, &rep, body != NULL ? body : &own);
	if (result != NULL)
		*result = rep.result;
	free(own);
	return rep.status;
}
