#ifndef SESSD_CLIENT_REPLY_H
#define SESSD_CLIENT_REPLY_H

#include <stdint.h>

#include "mp.h"
#include "sessd.h"

/*
 * Decoding of OK results into libsessd's public structs. Pure: no sockets. Each function
 * reads one result value (the raw msgpack of a reply's result), insists that it is consumed
 * exactly, and returns SESSD_OK, SESSD_ERR_PROTOCOL (the result has the wrong shape) or
 * SESSD_ERR_NOMEM. The structs they make are single allocations, freed with free().
 */

/* The HELLO map: max_frame and server_id are required, unknown keys skipped. */
int reply_hello(const struct mp_bytes *result, uint32_t *max_frame, char server_id[33]);

/* A nil result (PING, SET, TOUCH, DESTROY). */
int reply_nil(const struct mp_bytes *result);

/* A uint result (FLASH_PUSH, COUNT, CLEAR). */
int reply_uint(const struct mp_bytes *result, uint64_t *value);

/* GET's data: bin, or str; ${data} borrows the result's bytes. */
int reply_data(const struct mp_bytes *result, struct mp_bytes *data);

/*
 * FLASH_POP's result: an array of messages when ${type} (NUL-terminated, the type asked for)
 * is not NULL, else a map of type -> array. *${out} is malloc'd.
 */
int reply_flashes(const struct mp_bytes *result, const char *type, struct sessd_flashes **out);

/* LIST's result; *${out} is malloc'd. */
int reply_list(const struct mp_bytes *result, struct sessd_list **out);

/* STATS' map of str -> uint (entries with other value types are skipped); *${out} malloc'd. */
int reply_stats(const struct mp_bytes *result, struct sessd_stats **out);

#endif
