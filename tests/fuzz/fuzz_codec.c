/*
 * libFuzzer entry point for the wire codec: any bytes as a request body and as a reply
 * body. A request that decodes must encode again and decode to the same fields, so the
 * encoder and decoder agree on every frame the decoder accepts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int bytes_eq(struct mp_bytes a, struct mp_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int requests_equal(const struct codec_request *a, const struct codec_request *b)
{
	return a->op == b->op && a->request_id == b->request_id && bytes_eq(a->ns, b->ns) &&
	       a->ns_all == b->ns_all && bytes_eq(a->id, b->id) && a->id_is_bin == b->id_is_bin &&
	       bytes_eq(a->data, b->data) && a->ttl_ms == b->ttl_ms &&
	       bytes_eq(a->flash_type, b->flash_type) && a->flash_all == b->flash_all &&
	       bytes_eq(a->flash_msg, b->flash_msg) && a->flash_msg_is_bin == b->flash_msg_is_bin &&
	       a->cursor == b->cursor && a->limit == b->limit && a->version == b->version &&
	       bytes_eq(a->client_name, b->client_name) && bytes_eq(a->auth, b->auth);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct codec_request req, again;
	struct codec_reply rep;
	uint32_t status = 0;
	const char *why = NULL;
	struct buf out;

	if (codec_decode_request(data, size, &req, &status, &why) == 0) {
		buf_init(&out);
		if (codec_encode_request(&out, &req) != 0)
			abort();
		if (codec_frame_length(out.data) != out.len - CODEC_HEADER_BYTES)
			abort();
		if (codec_decode_request(out.data + CODEC_HEADER_BYTES,
		                         out.len - CODEC_HEADER_BYTES, &again, &status, &why) != 0)
			abort();
		if (!requests_equal(&req, &again))
			abort();
		/* the encoder writes shortest forms: never longer than what it decoded, except
		 * that nil ns decodes to "default" and is then written as that str (8 bytes) */
		buf_finish(&out);
	} else {
		if (status != CODEC_BAD_REQUEST && status != CODEC_UNKNOWN_OP)
			abort();
		if (why == NULL)
			abort();
	}
	if (codec_decode_reply(data, size, &rep) == 0) {
		if (rep.result.ptr < data || rep.result.ptr + rep.result.len != data + size)
			abort();
		if (rep.status != CODEC_OK && rep.status != CODEC_NOT_FOUND &&
		    rep.message.ptr == NULL)
			abort();
	}
	return 0;
}
