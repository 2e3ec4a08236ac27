/*
 * The keys of the sealed HELLOs answered. See replays.h.
 */
#include "replays.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ids.h"

#define REPLAYS_WORDS (REPLAYS_FILTER_BITS / 64u)

struct replays {
	/* Keys the bit positions (replays_positions), drawn at random by replays_new: a secret
	 * (it lets whoever holds it aim false positives), kept as the store's hash key is. */
	uint8_t *hash_key;
	/* The filter keys are noted in, and the one before it; they switch places. */
	uint64_t *current;
	uint64_t *older;
	/* Keys noted in current since it was emptied. */
	uint32_t current_keys;
	uint64_t filters[2][REPLAYS_WORDS];
};

struct replays *replays_new(void)
{
	struct replays *r = calloc(1, sizeof(*r));

	if (r == NULL)
		goto fail;
	r->hash_key = ids_secret_new(crypto_generichash_KEYBYTES);
	if (r->hash_key == NULL)
		goto fail;
	r->current = r->filters[0];
	r->older = r->filters[1];
	return r;
fail:
	replays_free(r);
	errno = ENOMEM;
	return NULL;
}

void replays_free(struct replays *r)
{
	if (r == NULL)
		return;
	sodium_free(r->hash_key);
	free(r);
}

/* The REPLAYS_HASHES bit positions of ${key}: 32 bits each of one keyed BLAKE2b hash. */
static void replays_positions(const struct replays *r, const uint8_t key[REPLAYS_KEY_BYTES],
                              uint32_t at[REPLAYS_HASHES])
{
	uint8_t hash[4u * REPLAYS_HASHES];

	_Static_assert(sizeof(hash) >= crypto_generichash_BYTES_MIN, "BLAKE2b's least output");
	crypto_generichash(hash, sizeof(hash), key, REPLAYS_KEY_BYTES, r->hash_key,
	                   crypto_generichash_KEYBYTES);
	for (unsigned i = 0; i < REPLAYS_HASHES; i++) {
		uint32_t h = (uint32_t)hash[4 * i] | (uint32_t)hash[4 * i + 1] << 8 |
		             (uint32_t)hash[4 * i + 2] << 16 | (uint32_t)hash[4 * i + 3] << 24;

		at[i] = h & (REPLAYS_FILTER_BITS - 1);
	}
}

/* Whether every bit at ${at} is set in ${filter}. */
static bool replays_holds(const uint64_t *filter, const uint32_t at[REPLAYS_HASHES])
{
	for (unsigned i = 0; i < REPLAYS_HASHES; i++) {
		if ((filter[at[i] / 64] & (UINT64_C(1) << (at[i] % 64))) == 0)
			return false;
	}
	return true;
}

bool replays_note(struct replays *r, const uint8_t key[REPLAYS_KEY_BYTES])
{
	uint32_t at[REPLAYS_HASHES];
	uint64_t *emptied;
	bool in_current, in_older;

	replays_positions(r, key, at);
	in_current = replays_holds(r->current, at);
	in_older = replays_holds(r->older, at);
	if (in_current)
		return true;
	/* Full: the older filter's keys are forgotten, and it takes the new ones. */
	if (r->current_keys >= REPLAYS_GENERATION_KEYS) {
		emptied = r->older;
		r->older = r->current;
		r->current = emptied;
		memset(r->current, 0, REPLAYS_WORDS * sizeof(*r->current));
		r->current_keys = 0;
	}
	for (unsigned i = 0; i < REPLAYS_HASHES; i++)
		r->current[at[i] / 64] |= UINT64_C(1) << (at[i] % 64);
	r->current_keys++;
	return in_older;
}
