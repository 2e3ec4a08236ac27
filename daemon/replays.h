/*
 * replays: the client keys (c_pk) of the sealed HELLOs sessd answered, remembered in a fixed
 * space, so that a HELLO seen again is known as one that may have been recorded off the wire
 * and replayed (PROTOCOL.md, "Replayed HELLOs"). Every real client draws a fresh key pair for
 * each connection; a replayer can only send again a key that was answered before.
 *
 * Two Bloom filters of REPLAYS_FILTER_BITS bits and REPLAYS_HASHES hashes each: a key is
 * noted in the current one, and looked for in both; once the current one holds
 * REPLAYS_GENERATION_KEYS keys, it becomes the older one and the older one is emptied to be
 * the current. So the last REPLAYS_GENERATION_KEYS keys noted at least are remembered (up to
 * twice as many), in 32 KiB whatever the rate of HELLOs, and a key noted again (a replay
 * replayed on) is noted in the current filter again and never ages out while it is used. A
 * key never noted is taken for a known one by chance (a false positive) at most about 0.5%
 * of the time (just before a switch; about 0.25% on average). The filters' bit positions are
 * a keyed hash of the key, drawn at random by replays_new: a client (one with the secret) cannot
 * choose keys that fill the bits another client's key will land on.
 *
 * A known key is never proof of a replay: its use must cost a client whose fresh key is taken
 * for known (a false positive) at most what a replayer would gain (conn.c, give_way_rank).
 */
#ifndef SESSD_REPLAYS_H
#define SESSD_REPLAYS_H

#include <stdbool.h>
#include <stdint.h>

/* Bits of each filter (a power of two), hashes per key, and keys a filter takes before it
 * becomes the older one: (1 - e^(-4 * 8192 / 131072))^4 = 0.24% false positives each. */
#define REPLAYS_FILTER_BITS     (1u << 17)
#define REPLAYS_HASHES          4u
#define REPLAYS_GENERATION_KEYS 8192u
/* The keys' length: X25519 public keys. */
#define REPLAYS_KEY_BYTES 32u

struct replays;

/*
 * replays_new(): empty filters, with a random key for their hash (libsodium's CSPRNG).
 * Returns NULL (errno ENOMEM). Free with replays_free.
 */
struct replays *replays_new(void);

/* replays_free(r): free ${r}. replays_free(NULL) does nothing. */
void replays_free(struct replays *r);

/*
 * replays_note(r, key):
 * Note the ${key} (REPLAYS_KEY_BYTES, borrowed) of a sealed HELLO answered, and say whether it
 * was noted before among the last REPLAYS_GENERATION_KEYS to 2 * REPLAYS_GENERATION_KEYS
 * distinct keys (true), or by chance looks so (true, about 0.5% at most). One keyed hash and
 * a few bits read and set; a switch of filters empties 16 KiB once every
 * REPLAYS_GENERATION_KEYS keys. Allocates nothing.
 */
bool replays_note(struct replays *r, const uint8_t key[REPLAYS_KEY_BYTES]);

#endif
