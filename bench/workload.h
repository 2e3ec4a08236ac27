#ifndef SESSD_BENCH_WORKLOAD_H
#define SESSD_BENCH_WORKLOAD_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What the benchmark asks for, independent of the server it asks: the operation mix, the
 * session ids, the values. Both targets (sessd and Redis) are driven from the same stream
 * of workload_op, so they see the same key distribution, value sizes and mix.
 */

enum workload_kind {
	WORKLOAD_GET,
	WORKLOAD_TOUCH,
	WORKLOAD_SET,
	WORKLOAD_DESTROY,
	WORKLOAD_FLASH_PUSH,
	WORKLOAD_FLASH_POP,
	WORKLOAD_PING,
	WORKLOAD_ECHO, /* a PING carrying a value (value_size bytes), answered with it */
	WORKLOAD_KINDS
};

/* A session id is 43 base64url characters, like sessd_id_new's (PROTOCOL.md, "Session IDs"). */
#define WORKLOAD_ID_LEN     43
#define WORKLOAD_FLASH_TYPE "info"
#define WORKLOAD_FLASH_MSG  "Your changes have been saved."

struct workload_op {
	enum workload_kind kind;
	uint64_t key;         /* index into the id table */
	const uint8_t *value; /* SET, ECHO: value_size bytes, borrowed from the workload */
	size_t value_len;
	uint64_t ttl_ms;
	/* In a namespace of its own, named after the key (WORKLOAD_OWN_NS_FORMAT), instead of
	 * the run's: sessd-bench --burst-namespaces. */
	bool own_namespace;
};

/* The name of ${key}'s own namespace (workload_op.own_namespace): at most 17 bytes. */
#define WORKLOAD_OWN_NS_FORMAT "b%" PRIx64
#define WORKLOAD_OWN_NS_MAX    24

/* Weights of the mix, in the order of enum workload_kind; "flash" weighs FLASH_PUSH. */
struct workload_mix {
	unsigned weight[WORKLOAD_KINDS];
	unsigned total;
};

struct workload;

/* The per-connection generator state: a private random stream and a pending flash pop. */
struct workload_gen {
	uint64_t rng;
	int64_t pending_pop; /* key of a FLASH_PUSH whose FLASH_POP comes next, or -1 */
};

/* workload_kind_name(kind): "get", "touch", "set", "destroy", "flash_push", "flash_pop", "ping",
 * "echo". */
const char *workload_kind_name(enum workload_kind kind);

/*
 * workload_mix_parse(mix, text):
 * Parse "get=60,touch=20,set=14,destroy=2,flash=4" (any subset, any order; ping and echo too) into
 * ${mix}. Returns 0, or -1 for an unknown name, a bad number or an all-zero mix.
 */
int workload_mix_parse(struct workload_mix *mix, const char *text);

/*
 * workload_new(ids, value_size, seed):
 * Make ${ids} session ids (derived from ${seed}, so every run and every target uses the same
 * ones) and a few distinct session-JSON values of exactly ${value_size} bytes.
 * Returns the workload (free with workload_free) or NULL with errno ENOMEM.
 */
struct workload *workload_new(uint64_t ids, size_t value_size, uint64_t seed);

/* workload_free(w): free ${w}; NULL does nothing. */
void workload_free(struct workload *w);

/* workload_id(w, key): the WORKLOAD_ID_LEN characters of id ${key} (< ids), borrowed from ${w}. */
const uint8_t *workload_id(const struct workload *w, uint64_t key);

/* workload_value(w, n): one of the values, picked by ${n}; value_size bytes borrowed from ${w}. */
const uint8_t *workload_value(const struct workload *w, uint64_t n);

/* workload_value_size(w): the size of every value. */
size_t workload_value_size(const struct workload *w);

/* workload_gen_init(g, seed): start a generator; each connection gets its own ${seed}. */
void workload_gen_init(struct workload_gen *g, uint64_t seed);

/*
 * workload_next(w, mix, g, keys, ttl_ms, op):
 * Fill ${op} with the next operation of the mix over keys [0, ${keys}) chosen uniformly. A
 * FLASH_PUSH is always followed, on the same generator, by a FLASH_POP of the same session,
 * so when a connection sends them in order the pop finds the push.
 */
void workload_next(const struct workload *w, const struct workload_mix *mix, struct workload_gen *g,
                   uint64_t keys, uint64_t ttl_ms, struct workload_op *op);

#endif
