/* idset: see idset.h. */
#include "idset.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* A slot: hash 0 is an empty one (idset_hash never gives 0). */
struct idset_slot {
	uint64_t hash;
	uint64_t loc;
};

struct idset {
	struct idset_slot *slots;
	size_t cap; /* slots, any number: a hash is placed at hash % cap */
	size_t n;
	/* A key, not a secret of anyone's: it keeps ids a client chose from colliding at will
	 * (each collision costs a read). In sodium_malloc'd memory as every key is. */
	unsigned char *key;
};

/* The slots for ${n} ids: linear probing stays short at three quarters full. */
static size_t idset_cap_for(size_t n)
{
	if (n > SIZE_MAX / 2 / sizeof(struct idset_slot))
		return 0;
	return n + n / 3 + 16;
}

struct idset *idset_new(size_t expected)
{
	struct idset *s;

	if (sodium_init() < 0 || (s = calloc(1, sizeof(*s))) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	s->cap = idset_cap_for(expected < 1024 ? 1024 : expected);
	/* calloc: a set sized for a hint that overstates leaves its untouched pages unmapped. */
	if (s->cap == 0 || (s->slots = calloc(s->cap, sizeof(*s->slots))) == NULL)
		goto fail;
	s->key = sodium_malloc(crypto_shorthash_KEYBYTES);
	if (s->key == NULL)
		goto fail;
	randombytes_buf(s->key, crypto_shorthash_KEYBYTES);
	sodium_mprotect_readonly(s->key);
	return s;

fail:
	free(s->slots);
	free(s);
	errno = ENOMEM;
	return NULL;
}

void idset_free(struct idset *s)
{
	if (s == NULL)
		return;
	sodium_free(s->key);
	free(s->slots);
	free(s);
}

uint64_t idset_hash(const struct idset *s, const struct store_key *key)
{
	uint8_t in[256], out[crypto_shorthash_BYTES], ns_out[crypto_shorthash_BYTES];
	uint64_t h;

	/* The namespace's length first, so that no two (namespace, id) pairs hash one input. */
	if (key->ns_len <= 255 && key->id_len <= sizeof(in) - 1 - key->ns_len) {
		in[0] = (uint8_t)key->ns_len;
		memcpy(in + 1, key->ns, key->ns_len);
		memcpy(in + 1 + key->ns_len, key->id, key->id_len);
		crypto_shorthash(out, in, 1 + key->ns_len + key->id_len, s->key);
	} else {
		/* Longer than any the protocol takes: a hash need not be perfect (a match is
		 * confirmed), so the two parts are hashed apart. */
		crypto_shorthash(out, key->id, key->id_len, s->key);
		crypto_shorthash(ns_out, key->ns, key->ns_len, s->key);
		for (size_t i = 0; i < sizeof(out); i++)
			out[i] ^= (uint8_t)(ns_out[i] + 1);
	}
	memcpy(&h, out, sizeof(h));
	return h != 0 ? h : 1;
}

/* Put ${hash} and ${loc} in the first empty slot from its place in ${slots} (${cap}). */
static void idset_place(struct idset_slot *slots, size_t cap, uint64_t hash, uint64_t loc)
{
	size_t i = (size_t)(hash % cap);

	while (slots[i].hash != 0)
		i = i + 1 == cap ? 0 : i + 1;
	slots[i] = (struct idset_slot){.hash = hash, .loc = loc};
}

/* Twice the slots, the ids moved by their hashes (no record is read again). */
static int idset_grow(struct idset *s)
{
	size_t cap = idset_cap_for(s->n * 2);
	struct idset_slot *slots;

	if (cap == 0 || (slots = calloc(cap, sizeof(*slots))) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i].hash != 0)
			idset_place(slots, cap, s->slots[i].hash, s->slots[i].loc);
	free(s->slots);
	s->slots = slots;
	s->cap = cap;
	return 0;
}

int idset_add(struct idset *s, uint64_t hash, uint64_t loc, idset_same_fn same, void *arg,
              bool *present)
{
	size_t i;
	int r;

	if (hash == 0)
		hash = 1;
	*present = false;
	for (i = (size_t)(hash % s->cap); s->slots[i].hash != 0; i = i + 1 == s->cap ? 0 : i + 1) {
		if (s->slots[i].hash != hash)
			continue;
		r = same(arg, s->slots[i].loc);
		if (r == -1)
			return -1;
		if (r == 1) {
			*present = true;
			return 0;
		}
	}
	/* Grown before it is three quarters full, so there is always an empty slot. */
	if ((s->n + 1) * 4 > s->cap * 3) {
		if (idset_grow(s) == -1)
			return -1;
		idset_place(s->slots, s->cap, hash, loc);
	} else {
		s->slots[i] = (struct idset_slot){.hash = hash, .loc = loc};
	}
	s->n++;
	return 0;
}

size_t idset_count(const struct idset *s)
{
	return s->n;
}
