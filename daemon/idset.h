/*
 * idset: the session ids read so far of a snapshot being checked or salvaged (persist.c), to
 * find one read twice (damage: sessd writes each session once), in 16 bytes an id where a
 * store holding the ids took some 120 (a whole store of empty sessions: --check-data of a
 * million of them went from 18 to 136 MB with that store).
 *
 * An id is kept as a keyed hash of it (idset_hash) and where its record is (a locator of the
 * caller's: the record's offset in the file); the id itself stays in the file. A hash may
 * match another id's, so a match is only a suspect: the caller confirms it by reading the
 * record at the locator again and comparing the real ids (idset_same_fn). A collision thus
 * costs one read, never a sound snapshot called damaged. The key is random per set, so ids a
 * client chose cannot be made to collide on purpose.
 */
#ifndef SESSD_IDSET_H
#define SESSD_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct idset;

/*
 * Whether the record at ${loc}, added to the set earlier, has the id the caller asks about
 * (${arg} says which): 1 yes, 0 no, -1 on failure (errno set).
 */
typedef int (*idset_same_fn)(void *arg, uint64_t loc);

/*
 * idset_new(expected):
 * A new empty set sized for ${expected} ids (0: unknown; it grows as ids are added). Free
 * with idset_free. Returns NULL with errno ENOMEM.
 */
struct idset *idset_new(size_t expected);

/* idset_free(s): free ${s}; NULL does nothing. */
void idset_free(struct idset *s);

/* idset_hash(s, key): ${key}'s namespace and id, hashed with ${s}'s key. */
uint64_t idset_hash(const struct idset *s, const struct store_key *key);

/*
 * idset_add(s, hash, loc, same, arg, present):
 * Look for the id whose hash is ${hash} in ${s}, asking ${same}(${arg}, loc) of each entry of
 * that hash: *${present} is true if one says yes, and nothing is added; else the id is added
 * with its locator ${loc} and *${present} is false. Returns 0, or -1 with errno (ENOMEM: the
 * set cannot grow; or ${same}'s), nothing added.
 */
int idset_add(struct idset *s, uint64_t hash, uint64_t loc, idset_same_fn same, void *arg,
              bool *present);

/* idset_count(s): the ids in ${s}. */
size_t idset_count(const struct idset *s);

#endif
