#include "store.h"

#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "expiry.h"
#include "flash.h"
#include "ids.h"

/*
 * Layout. The store maps namespace names to namespaces through a small hash table; each
 * namespace has its own table of sessions, so COUNT is O(1), CLEAR drops one namespace and
 * LIST scans one namespace. Both kinds of table are the same incremental dict (below), keyed
 * with SipHash under a random per-store key so that clients cannot aim ids at one bucket.
 *
 * A session is a single allocation: a 54-byte header, the id and the data. The hash is not
 * stored (it is recomputed when a node moves between tables, which happens once per resize)
 * but for 6 of its bits in the flags byte (see struct sess), the namespace is a 32-bit index
 * rather than a pointer, and flashes hang off a pointer only when the session has some. With
 * 1 KB of data that keeps the overhead (header, malloc's rounding and its own 8 bytes, the
 * bucket slot) under 100 bytes.
 *
 * Memory accounting (max_bytes, stats bytes) counts malloc_usable_size of every allocation
 * that grows with what clients store: each session node and its flash allocations; each
 * namespace's record and its session table (both tables while it resizes), in the
 * namespace's bytes too; and the store's namespace index (the table of names and the chunks
 * of namespace slots), in the store's bytes only. The tables are charged when they are
 * allocated or freed, never per request. Without the namespaces in it, one tiny session per
 * namespace held about six times max_bytes. Every allocation is checked against max_bytes before it
 * is kept, so a failed write leaves the figure as it was, except that the namespace index
 * may keep the room it grew for a namespace that the write then failed to fill.
 */

#define DICT_MIN_BUCKETS  4u
#define DICT_MAX_BUCKETS  (UINT64_C(1) << 31)
#define DICT_STEP_BUCKETS 2u
/* Buckets a write that does not fit moves of its namespace's table, or of the names', while it
 * moves to another one (see dict_hurry). */
#define DICT_HURRY_BUCKETS 1024u
/* Nodes a bucket a table (a namespace's, or the names') takes on average when growing it
 * would not fit max_bytes. */
#define DICT_FULL_LOAD 4u
/* Nodes a bucket from which a new session pays for its namespace's table's growth with drops,
 * under drop-unread (see dict_reserve_within): below DICT_FULL_LOAD, so that the writes in
 * between, each paying a bounded share, have had the growth before the chains reach it. */
#define DICT_PAY_LOAD 2u
/* The most a table shrinks by in one resize (see dict_maybe_shrink). */
#define DICT_SHRINK_MOST 8u
/* A SET that shrinks the data keeps its node unless it would waste more than this. */
#define SET_SLACK_BYTES 256u
/* Credit of expiry work (nodes moved between wheel levels) per session a slice may expire. */
#define EXPIRE_WORK_PER_SESSION 8u
#define EXPIRE_WORK_BASE        64u
/* Sessions a write may free to make room under max_bytes (see make_room): this many, and one
 * more per this many bytes it needs, so a large write can free many small sessions. */
#define MAKE_ROOM_MAX               64u
#define MAKE_ROOM_BYTES_PER_SESSION 512u
/* Calls in a row that free nothing (the wheel moving sessions between levels) before
 * make_room gives up. */
#define MAKE_ROOM_IDLE 8u
/* What a node costs beyond what was asked of malloc: its rounding and its own header. */
#define MALLOC_SLACK 16u
/* The least size glibc's malloc may serve with mmap (its default M_MMAP_THRESHOLD; sessd's
 * main sets 256 KiB): such a block is whole pages, its header in the first (see
 * alloc_usable_at_most). */
#define MALLOC_MMAP_LEAST (128u * 1024u)
/* A flash queue grows by about the message, its type and this much header. */
#define MAKE_ROOM_FLASH_EXTRA 64u
/* What a write that creates its namespace adds besides the session: the namespace's record
 * and its first table. */
#define MAKE_ROOM_NS_EXTRA                                                                         \
	(sizeof(struct ns) + DICT_MIN_BUCKETS * sizeof(struct hnode *) + 2 * MALLOC_SLACK)
/* Sessions CLEAR frees before it returns; the rest are left to store_expire. */
#define CLEAR_INLINE_SESSIONS 128u
/* Namespace slots come in chunks of this many (see ns_slot_t). */
#define NS_CHUNK_SLOTS 1024u

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct hnode {
	struct hnode *next;
};

/*
 * A chained hash table that resizes like Redis's dict: a resize allocates the new bucket
 * array and every later operation moves a couple of buckets, so no call rehashes more than a
 * few chains. While table[1] exists, buckets of table[0] below rehash_idx are empty.
 */
struct dict {
	struct hnode **table[2];
	size_t size[2];
	size_t used;
	size_t rehash_idx;
};

/*
 * The order is for the lines a lookup reads. A chain walk reads of every node it passes its
 * link, id_len and flags (the tag): bytes 40-53, in one cache line in three of the four
 * places malloc's 16-byte alignment puts a node, so a node whose tag differs costs the walk
 * that line. The node it finds it reads from the expiry instant to the id's end, and a GET
 * its data_len: bytes 32-96, two lines wherever the node is. Before, with the link first and
 * the id compared in every node, a walk read two or three lines of each node it passed
 * (callgrind's cache simulation, bench/README.md "Ceiling check", stop 53). What only a SET
 * (usable) or a flash request reads comes first. No padding: the header stays 54 bytes.
 */
struct sess {
	uint32_t ns_index;
	/* malloc_usable_size of the node, kept: asking glibc reads the next chunk's header, a
	 * cache miss of its own on every SET that replaces data in place. */
	uint32_t usable;
	struct flash_set *flash;
	struct expiry_node exp; /* exp.at_ms is the session's expiry instant */
	struct hnode link;
	uint32_t data_len;
	uint8_t id_len;
	uint8_t flags;   /* SESS_HAS_DATA, SESS_UNREAD, and the tag in SESS_TAG_MASK */
	uint8_t bytes[]; /* id, then data */
};
/* The offsets hold with 8-byte pointers only: with 4-byte ones (i386, armhf) the header is
 * smaller and the order still puts the walk's fields together, so a 32-bit build checks
 * nothing of them, rather than not building. */
#if UINTPTR_MAX == UINT64_MAX
static_assert(offsetof(struct sess, exp.at_ms) == 32 && offsetof(struct sess, link) == 40 &&
                  offsetof(struct sess, bytes) == 54,
              "what a lookup reads in bytes 32-96, the walk's fields in 40-53, no padding");
#endif

/* The session has data (a flash-only one has none). */
#define SESS_HAS_DATA 1u
/* Written and never read back since it was created (see store_mark_unread): a visitor who
 * returns sends the cookie and reads the session; a bot that never sends one does not. In the
 * flags byte, so that it costs a session no memory. */
#define SESS_UNREAD 2u
/* The rest of the flags byte: 6 bits of the id's hash (see hash_tag). */
#define SESS_TAG_MASK 0xfcu

struct ns {
	struct hnode link;
	struct dict sessions;
	uint64_t bytes;
	uint64_t payload; /* see store_stats */
	uint64_t flashes;
	uint64_t unread;  /* sessions with SESS_UNREAD */
	uint64_t evicted; /* sessions dropped unread (store_drop_unread) */
	/* On the store's list of cleared namespaces: no longer named, its sessions are freed a
	 * slice at a time (see store_clear). Linked both ways: a dropped session that comes due
	 * may finish any of them, and a client can make the list long. */
	struct ns *dropped_next;
	struct ns **dropped_prev; /* the link that points at this one; NULL: not dropped */
	size_t drop_at;           /* the next bucket to free: table[0]'s, then table[1]'s */
	uint32_t index;
	uint8_t name_len;
	uint8_t name[64];
	/* The name's hash, kept: a scan of the names (NAMESPACES pages, the NO_MEMORY line's
	 * walk) hashes each namespace it passes, and a resize each it moves. Last, where the
	 * padding was (192 bytes before, 200 now: the same malloc chunk), so the lines a
	 * request reads do not move. */
	uint64_t name_hash;
};

/*
 * Namespace slots, a chunk of NS_CHUNK_SLOTS at a time: the index grows by one chunk (8 KiB),
 * never by copying every slot into an array twice the size, which a million namespaces made
 * 8 MiB more for one more namespace (and 12 with the free list's array), and for a moment
 * twice that. Only the first chunk is copied as it grows, from 8 slots, so that a store of a
 * few namespaces stays small. A slot holds its namespace's address, or when free the next
 * free slot's index + 1 (0: none) shifted left and tagged with bit 0, which no namespace's
 * address has: the free list lives in the free slots. Chunks stay until no namespace is left
 * (ns_index_release_if_unused): sessions name their namespace by its index, and free slots
 * are anywhere in them.
 */
typedef uintptr_t ns_slot_t;

/*
 * The drop-unread policy's state (store_drop_unread). The sessions created last are known by
 * their ids' hashes, not their nodes: a SET that grows a session moves it to a new node, and a
 * hash costs a drop nothing it would not spend anyway. A collision only spares a session.
 * Each sampled session is looked up in them, up to thousands for one large write: an
 * open-addressed set (linear probing, at most half full) of their places in the ring finds
 * one in a probe or two, where a scan of the ring compared all 128.
 */
#define DROP_RECENT_SLOTS (2 * STORE_DROP_RECENT)
struct store_drop {
	store_drop_fn on_drop;
	void *arg;
	uint64_t recent[STORE_DROP_RECENT]; /* ids' hashes, 0: none */
	size_t recent_at;                   /* the next one to replace */
	/* recent's places + 1 by their hashes' low bits, 0: empty; a place is in it once filled */
	uint8_t recent_set[DROP_RECENT_SLOTS];
	uint64_t rng; /* xorshift64 state, never 0 */
};
static_assert(STORE_DROP_RECENT <= UINT8_MAX, "a place + 1 fits in a recent_set slot");
static_assert((DROP_RECENT_SLOTS & (DROP_RECENT_SLOTS - 1)) == 0, "a power of two");

struct store {
	struct store_config cfg;
	size_t page_bytes; /* the system's page: what an mmap'd block is rounded to */
	/* Buckets dict_hurry may still move in this loop turn (store_turn_begins); SIZE_MAX
	 * without turns (a data directory's load). */
	size_t hurry_left;
	/* The SipHash key, in sodium_malloc'd read-only memory: whoever learns it can aim
	 * collisions at one bucket. */
	uint8_t *hash_key;
	struct dict names;
	/* The namespace found last, or NULL: nearly every request names the one its app always
	 * uses, and hashing the name costs as much as the rest of a lookup. */
	struct ns *ns_recent;
	/* Counts the changes that can make a link into a chain or a namespace found earlier point
	 * elsewhere: a node linked or unlinked, moved by a resize or reallocated, a table
	 * allocated or freed, a namespace unnamed or freed. What a hint found (store_found) is
	 * used, without the lookup done again, only while this is what it was then. */
	uint64_t chain_gen;
	/* The namespace the last drop came from, or NULL (see drop_pick_ns). */
	struct ns *ns_dropped;
	/* The most bytes held since store_bytes_peak_reset (see store_bytes_peak): a load and a
	 * CLEAR between two of the server's ticks must still count as memory freed. */
	uint64_t bytes_peak;
	/* A namespace a write holds while it makes room (see dict_reserve_within): kept even
	 * when freeing expired sessions empties it. NULL: none. */
	struct ns *ns_pinned;
	/* Sessions name their namespace by index into the slots (ns_at); freed indexes are
	 * reused. */
	ns_slot_t **ns_chunks;
	size_t ns_chunks_len;
	size_t ns_chunks_cap;
	size_t ns_slots_cap;  /* slots the chunks hold */
	size_t ns_slots_len;  /* slots handed out, free ones included */
	size_t ns_slots_used; /* slots that hold a namespace */
	size_t ns_free_head;  /* the first free slot's index + 1; 0: none */
	uint64_t sessions;
	uint64_t bytes;
	uint64_t payload; /* see store_stats */
	uint64_t flashes;
	uint64_t unread; /* sessions with SESS_UNREAD, dropped namespaces' not counted */
	uint64_t expired_total;
	uint64_t evicted_total; /* sessions dropped unread (store_drop_unread) */
	/* NULL: a full store refuses writes; else it drops unread sessions first. */
	struct store_drop *drop;
	/* Sessions created from now on are marked SESS_UNREAD (see store_mark_unread). */
	bool marks_unread;
	/* Namespaces CLEAR took out of sight whose sessions are still to be freed, oldest last. */
	struct ns *dropped;
	struct expiry_wheel wheel;
};

typedef uint64_t (*dict_hash_fn)(const struct store *st, const struct hnode *n);
/* Whether ${n} is the node of ${key}, whose hash is ${h}. */
typedef bool (*dict_eq_fn)(const struct hnode *n, uint64_t h, const uint8_t *key, size_t len);

static uint64_t hash_bytes(const struct store *st, const uint8_t *p, size_t len)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t h;

	/* What crypto_shorthash computes, without its call in between. */
	crypto_shorthash_siphash24(out, p, len, st->hash_key);
	memcpy(&h, out, sizeof(h));
	return h;
}

/*
 * The hash of ${key}'s id: the one its hint computed when the caller carries it over (see
 * store_key), else computed here. With libsodium's SipHash, hashing an id costs as much as
 * the rest of a lookup.
 */
static uint64_t key_hash(const struct store *st, const struct store_key *key)
{
	return key->id_hashed ? key->id_hash : hash_bytes(st, key->id, key->id_len);
}

static struct sess *sess_of(const struct hnode *n)
{
	return container_of(n, struct sess, link);
}

static struct ns *ns_of(const struct hnode *n)
{
	return container_of(n, struct ns, link);
}

static uint64_t sess_hash(const struct store *st, const struct hnode *n)
{
	const struct sess *s = sess_of(n);

	return hash_bytes(st, s->bytes, s->id_len);
}

static uint64_t ns_hash(const struct store *st, const struct hnode *n)
{
	(void)st;
	return ns_of(n)->name_hash;
}

/*
 * Whether ${len} bytes at ${a} and ${b} are the same, in time that depends on ${len} alone: a
 * session id is a secret. Eight bytes a step, the last step overlapping when ${len} is not a
 * multiple of eight (four and four for 4..7 bytes), with no call to memcmp. Namespace names
 * are compared with it too: every request compares its name with the recent namespace's twice
 * (hint and lookup), and memcmp's call cost more than the compare (callgrind, bench/README.md
 * "Ceiling check", stop 34).
 */
static bool id_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	uint64_t wa, wb, diff = 0;
	uint32_t ha, hb;
	size_t at;

	if (len < 4) {
		for (at = 0; at < len; at++)
			diff |= (uint64_t)(a[at] ^ b[at]);
		return diff == 0;
	}
	if (len < 8) {
		memcpy(&ha, a, 4);
		memcpy(&hb, b, 4);
		diff = ha ^ hb;
		memcpy(&ha, a + len - 4, 4);
		memcpy(&hb, b + len - 4, 4);
		diff |= ha ^ hb;
		return diff == 0;
	}
	for (at = 0; at + 8 <= len; at += 8) {
		memcpy(&wa, a + at, 8);
		memcpy(&wb, b + at, 8);
		diff |= wa ^ wb;
	}
	memcpy(&wa, a + len - 8, 8);
	memcpy(&wb, b + len - 8, 8);
	diff |= wa ^ wb;
	return diff == 0;
}

/*
 * The 6 bits of an id's hash ${h} kept in its session's flags (SESS_TAG_MASK): the top ones,
 * which no table's bucket index (at most 31 bits) uses, so that the nodes of one chain differ
 * in them: a lookup passes 63 in 64 of the others without comparing their ids.
 */
static uint8_t hash_tag(uint64_t h)
{
	return (uint8_t)(h >> 56) & SESS_TAG_MASK;
}

/*
 * The tag is compared first, and a node whose tag differs is passed without its id compared:
 * the time that takes tells only whether 6 bits of two keyed hashes are equal, nothing of
 * the stored id's bytes (a bucket's chain tells as much of the low bits already).
 */
static bool sess_eq(const struct hnode *n, uint64_t h, const uint8_t *id, size_t id_len)
{
	const struct sess *s = sess_of(n);

	return (s->flags & SESS_TAG_MASK) == hash_tag(h) && s->id_len == id_len &&
	       id_equal(s->bytes, id, id_len);
}

static bool ns_eq(const struct hnode *n, uint64_t h, const uint8_t *name, size_t name_len)
{
	const struct ns *ns = ns_of(n);

	(void)h;
	return ns->name_len == name_len && id_equal(ns->name, name, name_len);
}

static void dict_init(struct dict *d)
{
	*d = (struct dict){0};
}

/* The namespace whose session table ${d} is, or NULL for the store's table of names. */
static struct ns *dict_owner(struct store *st, struct dict *d)
{
	return d == &st->names ? NULL : container_of(d, struct ns, sessions);
}

/*
 * Whether the store stays within max_bytes when ${added} bytes come and ${removed} go. A
 * change that does not grow the store always fits: a store over its limit (a data directory
 * loaded under a lower --max-memory than it was written with) still takes the writes that
 * shrink it or keep its size.
 */
static bool fits(const struct store *st, size_t added, size_t removed)
{
	return st->cfg.max_bytes == 0 || added <= removed ||
	       st->bytes - removed + added <= st->cfg.max_bytes;
}

/* Charge ${d}'s owner (see dict_owner) and the store with a change of its tables' memory. */
static void dict_account(struct store *st, struct dict *d, size_t added, size_t removed)
{
	struct ns *ns = dict_owner(st, d);

	st->bytes = st->bytes + added - removed;
	if (ns != NULL)
		ns->bytes = ns->bytes + added - removed;
}

/* Free ${d}'s tables and give their memory back; ${d} is left empty. */
static void dict_finish(struct store *st, struct dict *d)
{
	dict_account(st, d, 0, malloc_usable_size(d->table[0]) + malloc_usable_size(d->table[1]));
	free(d->table[0]);
	free(d->table[1]);
	dict_init(d);
	st->chain_gen++;
}

static struct hnode **dict_bucket(const struct dict *d, int t, uint64_t h)
{
	return &d->table[t][h & (d->size[t] - 1)];
}

/* dict_step's work, for a table being resized. */
static void dict_step_resizing(struct store *st, struct dict *d, dict_hash_fn hash,
                               unsigned buckets)
{
	unsigned empty_left = buckets * 10;

	st->chain_gen++;
	while (buckets > 0 && d->rehash_idx < d->size[0]) {
		struct hnode *e = d->table[0][d->rehash_idx];

		d->table[0][d->rehash_idx++] = NULL;
		if (e == NULL) {
			if (--empty_left == 0)
				break;
			continue;
		}
		while (e != NULL) {
			struct hnode *next = e->next;
			struct hnode **b = dict_bucket(d, 1, hash(st, e));

			e->next = *b;
			*b = e;
			e = next;
		}
		buckets--;
	}
	if (d->rehash_idx >= d->size[0]) {
		dict_account(st, d, 0, malloc_usable_size(d->table[0]));
		free(d->table[0]);
		d->table[0] = d->table[1];
		d->size[0] = d->size[1];
		d->table[1] = NULL;
		d->size[1] = 0;
		d->rehash_idx = 0;
	}
}

/*
 * Move up to ${buckets} non-empty buckets (and a bounded run of empty ones) to table[1]. Two
 * calls a request (the names' table and the namespace's) nearly always find no resize: the
 * check stays inline, without the call and its saved registers (callgrind: 20 instructions a
 * call, stop 34).
 */
static inline void dict_step(struct store *st, struct dict *d, dict_hash_fn hash, unsigned buckets)
{
	if (d->table[1] != NULL)
		dict_step_resizing(st, d, hash, buckets);
}

/*
 * The most malloc_usable_size may say of an allocation of ${bytes}: a block malloc maps of
 * its own (past its mmap threshold) is whole pages, up to a page more than was asked; a
 * smaller one up to 31 bytes more: its chunk's rounding to 16 and a remainder too small to
 * split off (calloc(4096, 8) gave 32,792 usable bytes, glibc 2.36). A full store makes room for a
 * table's growth by this, not by the buckets' bytes: short by the page's rounding, the growth found
 * no room once allocated, was given back, and the next write mapped and unmapped it again, and
 * again (drop-unread, bench/drop-unread/flood-lag).
 */
static size_t alloc_usable_at_most(const struct store *st, size_t bytes)
{
	if (bytes < MALLOC_MMAP_LEAST)
		return bytes + 2 * MALLOC_SLACK;
	return (bytes + 2 * MALLOC_SLACK + st->page_bytes - 1) / st->page_bytes * st->page_bytes;
}

/*
 * Start a resize of ${d} to ${buckets} buckets, within max_bytes with ${extra} bytes more
 * that the caller is about to add: 0, or -1 with ENOMEM and nothing changed.
 */
static int dict_resize(struct store *st, struct dict *d, size_t buckets, size_t extra)
{
	struct hnode **t;

	/* Known not to fit without the allocation, which at a full store's table size would be
	 * an mmap and a munmap for every session it refuses to grow for. */
	if (!fits(st, alloc_usable_at_most(st, buckets * sizeof(*t)) + extra, 0))
		goto fail;
	t = calloc(buckets, sizeof(*t));
	if (t == NULL)
		goto fail;
	if (!fits(st, malloc_usable_size(t) + extra, 0))
		goto fail_free;
	dict_account(st, d, malloc_usable_size(t), 0);
	st->chain_gen++;
	if (d->table[0] == NULL) {
		d->table[0] = t;
		d->size[0] = buckets;
		return 0;
	}
	d->table[1] = t;
	d->size[1] = buckets;
	d->rehash_idx = 0;
	return 0;

fail_free:
	free(t);
fail:
	errno = ENOMEM;
	return -1;
}

static size_t pow2_at_least(size_t n)
{
	size_t p = DICT_MIN_BUCKETS;

	while (p < n && p < DICT_MAX_BUCKETS)
		p <<= 1;
	return p;
}

/*
 * The buckets ${d} grows to for one more node, or 0 when it has room. ${pressed}: the growth
 * did not fit, and the table grows to twice its size at most: one whose chains grew longer
 * while the store was full (DICT_FULL_LOAD) would otherwise ask for four or eight times its
 * buckets at once, and a store with room to double it refused every new session.
 */
static size_t dict_grow_buckets(const struct dict *d, bool pressed)
{
	size_t buckets;

	if (d->table[0] == NULL)
		return DICT_MIN_BUCKETS;
	if (d->table[1] != NULL || d->used + 1 <= d->size[0] || d->size[0] >= DICT_MAX_BUCKETS)
		return 0;
	buckets = pow2_at_least(d->used + 1);
	return pressed && buckets > 2 * d->size[0] ? 2 * d->size[0] : buckets;
}

/* Make room for one more node (dict_grow_buckets with ${pressed}), within max_bytes with
 * ${extra} bytes more that the caller is about to add: 0, or -1 with ENOMEM and nothing
 * changed. */
static int dict_reserve(struct store *st, struct dict *d, size_t extra, bool pressed)
{
	size_t buckets = dict_grow_buckets(d, pressed);

	return buckets != 0 ? dict_resize(st, d, buckets, extra) : 0;
}

/* What growing ${d} (dict_grow_buckets, pressed) adds at most: its new buckets' block. */
static size_t dict_growth_bytes(const struct store *st, const struct dict *d)
{
	return alloc_usable_at_most(st, dict_grow_buckets(d, true) * sizeof(struct hnode *));
}

/*
 * Start shrinking a sparse table; only on paths that may allocate. Failure is harmless. It
 * shrinks by DICT_SHRINK_MOST at a time: a scan visits, for each bucket of the smaller table,
 * every bucket of the larger one that maps to it (dict_scan), and a namespace of 4 million
 * sessions destroyed down to one, shrunk to 4 buckets at once, made every LIST page of it walk
 * the whole old table (8 ms a page, up to 17) for as long as the move lasted, which only
 * accesses to the namespace advance. The next step comes once this one is done.
 */
static void dict_maybe_shrink(struct store *st, struct dict *d)
{
	size_t buckets;

	if (d->table[1] == NULL && d->size[0] > DICT_MIN_BUCKETS && d->used * 8 < d->size[0]) {
		buckets = pow2_at_least(2 * d->used);
		if (buckets < d->size[0] / DICT_SHRINK_MOST)
			buckets = d->size[0] / DICT_SHRINK_MOST;
		(void)dict_resize(st, d, buckets, 0);
	}
}

static void dict_insert(struct store *st, struct dict *d, struct hnode *n, uint64_t h)
{
	struct hnode **b = dict_bucket(d, d->table[1] != NULL ? 1 : 0, h);

	n->next = *b;
	*b = n;
	d->used++;
	st->chain_gen++;
}

/* The link that points at the node equal to ${key}, or NULL. */
static struct hnode **dict_find(const struct dict *d, uint64_t h, dict_eq_fn eq, const uint8_t *key,
                                size_t len)
{
	for (int t = 0; t < 2 && d->table[t] != NULL; t++) {
		for (struct hnode **link = dict_bucket(d, t, h); *link != NULL;
		     link = &(*link)->next) {
			if (eq(*link, h, key, len))
				return link;
		}
	}
	return NULL;
}

/* The link that points at ${n}, which is in ${d} with hash ${h}. */
static struct hnode **dict_link_of(const struct dict *d, const struct hnode *n, uint64_t h)
{
	for (int t = 0; t < 2 && d->table[t] != NULL; t++) {
		for (struct hnode **link = dict_bucket(d, t, h); *link != NULL;
		     link = &(*link)->next) {
			if (*link == n)
				return link;
		}
	}
	abort(); /* a node not in its own table: the store is corrupt */
}

static void dict_unlink(struct store *st, struct dict *d, struct hnode **link)
{
	*link = (*link)->next;
	d->used--;
	st->chain_gen++;
}

static size_t sess_header(void)
{
	return offsetof(struct sess, bytes);
}

static uint8_t *sess_data(struct sess *s)
{
	return s->bytes + s->id_len;
}

static bool sess_live(const struct sess *s, uint64_t now_ms)
{
	return s->exp.at_ms > now_ms;
}

static size_t sess_memory(const struct sess *s)
{
	return s->usable + flash_memory(s->flash);
}

static void account(struct store *st, struct ns *ns, size_t added, size_t removed)
{
	st->bytes = st->bytes + added - removed;
	ns->bytes = ns->bytes + added - removed;
	if (st->bytes > st->bytes_peak)
		st->bytes_peak = st->bytes;
}

/* What ${s} of ${ns} counts in the payload of store_stats. */
static size_t sess_payload(const struct ns *ns, const struct sess *s)
{
	return ns->name_len + s->id_len + s->data_len + flash_bytes(s->flash);
}

/* Charge ${ns} and the store with a change of their sessions' payload. */
static void account_payload(struct store *st, struct ns *ns, size_t added, size_t removed)
{
	st->payload = st->payload + added - removed;
	ns->payload = ns->payload + added - removed;
}

static size_t free_dropped(struct store *st, size_t budget);
static size_t expire_due(struct store *st, uint64_t now_ms, size_t budget);
static size_t drop_toward(struct store *st, uint64_t keep_h, size_t need, size_t limit,
                          uint64_t now_ms);

/*
 * A write of ${need} bytes more that does not fit while ${d} (a namespace's table, or the
 * names') moves to another table: the old buckets count until the move is done, and the
 * lookups alone move two buckets each, so a store that filled the rest of its room meanwhile
 * refused new sessions for as long as that took (half a million requests for a table of a
 * million buckets) with the old buckets' room to give. The write moves a larger share, about
 * 0.1 ms of work, and the room comes back after a few refusals, not a few hundred thousand.
 * At most DICT_HURRY_BUCKETS a loop turn (store_turn_begins): every write of a full store
 * hurries, and a turn of a flood's hundreds of writes moved a whole table of a million buckets
 * at once (turns over 10 ms three times as often as without, bench/drop-unread/flood-lag); a
 * write past the turn's budget that drops unread sessions for its room is kept. One refused
 * moves its share after all (hurry_refused).
 * Moves nodes only: links into ${d} that the caller holds are lost, nodes are not.
 */
static void dict_hurry(struct store *st, struct dict *d, dict_hash_fn hash, size_t need)
{
	unsigned buckets =
	    st->hurry_left < DICT_HURRY_BUCKETS ? (unsigned)st->hurry_left : DICT_HURRY_BUCKETS;

	if (d->table[1] == NULL || buckets == 0 || fits(st, need, 0))
		return;
	dict_step(st, d, hash, buckets);
	if (st->hurry_left != SIZE_MAX)
		st->hurry_left -= buckets;
}

void store_turn_begins(struct store *st)
{
	st->hurry_left = DICT_HURRY_BUCKETS;
}

/*
 * With max_bytes set, make room for a write that may add ${need} bytes: free sessions that
 * CLEAR dropped, then sessions that had expired by ${now_ms}, until the write fits or
 * MAKE_ROOM_MAX (plus one per MAKE_ROOM_BYTES_PER_SESSION of ${need}) are freed. No client
 * can see either kind any more, but the background frees them a slice at a time, and under
 * load that takes seconds for a million: the room they hold is owed to writers at once. A
 * write that still does not fit moves the names' table along (dict_hurry) if it is moving.
 *
 * A write calls this before it looks anything up: freeing an expired session may rehash its
 * namespace's table or release the namespace, which would pull links and namespaces out
 * from under a caller that held them. ${need} is therefore the most the write can add, not
 * what it will: one that replaces a session frees a little early, which costs nothing.
 */
static void make_room(struct store *st, size_t need, uint64_t now_ms)
{
	size_t limit = MAKE_ROOM_MAX + need / MAKE_ROOM_BYTES_PER_SESSION;
	unsigned idle = 0;

	if (st->cfg.max_bytes == 0)
		return;
	for (size_t freed = 0; freed < limit && st->bytes + need > st->cfg.max_bytes;) {
		size_t n = free_dropped(st, 1);

		if (n == 0)
			n = expire_due(st, now_ms, 1);
		if (n > 0) {
			freed += n;
			idle = 0;
		} else if (!store_expiry_behind(st, now_ms) || ++idle > MAKE_ROOM_IDLE) {
			break;
		}
	}
	dict_hurry(st, &st->names, ns_hash, need);
}

/*
 * Make room in ${d} (a namespace's table, or the names') for one more node (dict_reserve,
 * with ${extra} bytes of the node counted). When the table must grow and that does not fit,
 * make_room frees dropped and expired sessions for the growth too, as it did for the node: a
 * table that doubles needs far more than the node that tips it. Under drop-unread, a
 * namespace's table at DICT_PAY_LOAD nodes a bucket then has drops made for its growth, at
 * most MAKE_ROOM_MAX for one write (not ${keep_h}'s session, the write's own): a flood of tiny
 * new sessions into a store full of large ones must grow the table as the sessions multiply,
 * and a write asked the drops for its node only, so from DICT_FULL_LOAD on every new session
 * was refused with every session unread (stop 50). A growth larger than one write's drops
 * (16 MiB of buckets at a million sessions) is had from the room the writes before it freed,
 * while the chains go from DICT_PAY_LOAD to DICT_FULL_LOAD. The caller holds no link into
 * ${d}; a namespace that ${d} is the table of is kept even if that empties it. Returns 0, or
 * -1 with ENOMEM and nothing changed but the sessions dropped.
 */
static int dict_reserve_within(struct store *st, struct dict *d, size_t extra, uint64_t keep_h,
                               uint64_t now_ms)
{
	struct ns *owner = dict_owner(st, d);
	int rc;

	if (dict_reserve(st, d, extra, false) == 0)
		return 0;
	if (st->cfg.max_bytes == 0 || dict_grow_buckets(d, true) == 0)
		return -1;
	st->ns_pinned = owner;
	make_room(st, dict_growth_bytes(st, d) + extra, now_ms);
	rc = dict_reserve(st, d, extra, true);
	if (rc != 0 && owner != NULL && st->drop != NULL && d->used >= DICT_PAY_LOAD * d->size[0] &&
	    drop_toward(st, keep_h, dict_growth_bytes(st, d) + extra, MAKE_ROOM_MAX, now_ms) > 0)
		rc = dict_reserve(st, d, extra, true);
	st->ns_pinned = NULL;
	if (rc == 0)
		return 0;
	/* The node may fit where the table's growth does not (a million sessions' table doubles
	 * by 16 MiB for one more session of a kilobyte, a million namespaces' names as much for
	 * one more namespace): the chains grow longer instead, up to DICT_FULL_LOAD nodes a
	 * bucket, rather than the store refusing every new one with that much free. The next
	 * growth that fits spreads them again. */
	if (d->table[0] != NULL && d->used < DICT_FULL_LOAD * d->size[0] && fits(st, extra, 0))
		return 0;
	errno = ENOMEM;
	return -1;
}

/* A node of ${size} bytes that keeps the store within max_bytes once ${old_usable} bytes
 * are released, or NULL with ENOMEM. */
static struct sess *sess_alloc_within(struct store *st, size_t size, size_t old_usable)
{
	struct sess *s = malloc(size);
	size_t usable;

	if (s == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	usable = malloc_usable_size(s);
	if (usable > UINT32_MAX || !fits(st, usable, old_usable)) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	s->usable = (uint32_t)usable;
	/* A large session's data is copied in next: no page fault each 4 KiB. */
	buf_prefault(s, size);
	return s;
}

/* Free ${s}, already out of its table, and give back its memory; the counts of sessions and
 * flashes are the caller's. */
static void sess_free(struct store *st, struct ns *ns, struct sess *s)
{
	expiry_cancel(&st->wheel, &s->exp);
	account(st, ns, 0, sess_memory(s));
	flash_free(s->flash);
	free(s);
	st->chain_gen++;
}

/* Unlink ${s} (found through ${link}) from everything and free it. The namespace stays. */
static void sess_remove(struct store *st, struct ns *ns, struct hnode **link, struct sess *s)
{
	size_t messages = flash_messages(s->flash);

	dict_unlink(st, &ns->sessions, link);
	ns->flashes -= messages;
	st->flashes -= messages;
	st->sessions--;
	if (s->flags & SESS_UNREAD) {
		ns->unread--;
		st->unread--;
	}
	account_payload(st, ns, 0, sess_payload(ns, s));
	sess_free(st, ns, s);
}

/* Reclaim the expired session ${s}, found through ${link} in ${ns}. */
__attribute__((noinline)) static void sess_reclaim(struct store *st, struct ns *ns,
                                                   struct hnode **link, struct sess *s)
{
	sess_remove(st, ns, link, s);
	st->expired_total++;
}

/*
 * The session ${link} points at in ${ns} (NULL: none), if live, with ${linkp} set to ${link};
 * else NULL. A session found past its expiry is reclaimed on the spot (only frees), but its
 * namespace is left for the caller to release, so that ${ns} stays valid.
 */
static inline struct sess *sess_at(struct store *st, struct ns *ns, struct hnode **link,
                                   uint64_t now_ms, struct hnode ***linkp)
{
	struct sess *s;

	if (link == NULL)
		return NULL;
	s = sess_of(*link);
	if (!sess_live(s, now_ms)) {
		sess_reclaim(st, ns, link, s);
		return NULL;
	}
	*linkp = link;
	return s;
}

/* sess_at for the session of ${key} in ${ns}, found by walking its chain. Out of line, as
 * sess_reclaim: what the hinted lookup does not run costs it no saved registers. */
__attribute__((noinline)) static struct sess *sess_walk(struct store *st, struct ns *ns,
                                                        const struct store_key *key,
                                                        uint64_t now_ms, struct hnode ***linkp)
{
	return sess_at(st, ns,
	               dict_find(&ns->sessions, key_hash(st, key), sess_eq, key->id, key->id_len),
	               now_ms, linkp);
}

/*
 * Whether what the hint of ${key} found (store_found) still holds: nothing has been linked,
 * unlinked, moved or freed since, so its namespace is the one of that name and its link (when
 * it found the session) points at the session of that id, as a lookup would find them now.
 */
static bool found_holds(const struct store *st, const struct store_key *key)
{
	return key->id_hashed && key->found.ns != NULL && key->found.gen == st->chain_gen;
}

/*
 * The live session of ${key} in ${ns}, with ${linkp} set to the link that points at it, or
 * NULL; see sess_at. The session its hint found, while that still holds, is taken without
 * walking the chain or comparing the id again (callgrind: about 60 instructions a lookup,
 * bench/README.md "Ceiling check", stop 55). The table's resize step runs first either way,
 * and makes the hint's links stale when it moves any.
 */
static inline struct sess *sess_lookup_key(struct store *st, struct ns *ns,
                                           const struct store_key *key, uint64_t now_ms,
                                           struct hnode ***linkp)
{
	dict_step(st, &ns->sessions, sess_hash, DICT_STEP_BUCKETS);
	if (found_holds(st, key) && key->found.link != NULL && key->found.ns == ns)
		return sess_at(st, ns, key->found.link, now_ms, linkp);
	return sess_walk(st, ns, key, now_ms, linkp);
}

/* ns_find_const past the namespace found last: the name hashed and looked up. */
__attribute__((noinline)) static struct ns *ns_find_named(const struct store *st,
                                                          const uint8_t *name, size_t name_len)
{
	struct hnode **link;

	link = dict_find(&st->names, hash_bytes(st, name, name_len), ns_eq, name, name_len);
	return link != NULL ? ns_of(*link) : NULL;
}

/*
 * The namespace ${name}, or NULL. The one found last is compared inline: nearly every request
 * names it, and the call with the lookup's saved registers cost more than the compare
 * (callgrind, bench/README.md "Ceiling check", stop 55).
 */
static inline struct ns *ns_find_const(const struct store *st, const uint8_t *name, size_t name_len)
{
	if (st->ns_recent != NULL && ns_eq(&st->ns_recent->link, 0, name, name_len))
		return st->ns_recent;
	return ns_find_named(st, name, name_len);
}

int store_hint_start(struct store *st, const struct store_key *key, struct store_hint *hint)
{
	const struct ns *ns;
	const struct dict *d;
	uint64_t h;

	hint->buckets[0] = hint->buckets[1] = NULL;
	hint->next[0] = hint->next[1] = NULL;
	hint->found.link = NULL;
	/* Before the namespace: a request with no id (PING, HELLO, the admin queries) comes with
	 * no namespace either, and looking up the empty name would cost a hash for nothing. */
	if (key->id_len == 0)
		return -1;
	ns = ns_find_const(st, key->ns, key->ns_len);
	if (ns == NULL)
		return -1;
	d = &ns->sessions;
	h = hash_bytes(st, key->id, key->id_len);
	hint->id_hash = h;
	hint->id = key->id;
	hint->id_len = key->id_len;
	hint->found.ns = (struct ns *)ns;
	hint->found.gen = st->chain_gen;
	for (int t = 0; t < 2 && d->table[t] != NULL; t++) {
		hint->buckets[t] = dict_bucket(d, t, h);
		__builtin_prefetch(hint->buckets[t]);
	}
	return 0;
}

/* Start loading the session of node ${n}: its header and the id, which a lookup compares,
 * span two lines from its start. */
static void hint_node(const struct hnode *n)
{
	const struct sess *s = sess_of(n);

	__builtin_prefetch(s);
	__builtin_prefetch((const char *)s + 64);
}

void store_hint_follow(const struct store_hint *hint)
{
	for (int t = 0; t < 2 && hint->buckets[t] != NULL; t++) {
		const struct hnode *head = *(struct hnode *const *)hint->buckets[t];

		if (head != NULL)
			hint_node(head);
	}
}

/* Start loading the first STORE_HINT_DATA_MAX bytes of ${s}'s data. */
static void hint_data_of(const struct sess *s)
{
	const char *data = (const char *)s->bytes + s->id_len;
	size_t len = s->data_len < STORE_HINT_DATA_MAX ? s->data_len : STORE_HINT_DATA_MAX;
	size_t at = 0;

	/* Four lines a step: a line a step, the loop's own instructions were three for each
	 * hint, 40 a GET of a kilobyte (callgrind). The same lines either way. */
	for (; at + 192 < len; at += 256) {
		__builtin_prefetch(data + at);
		__builtin_prefetch(data + at + 64);
		__builtin_prefetch(data + at + 128);
		__builtin_prefetch(data + at + 192);
	}
	for (; at < len; at += 64)
		__builtin_prefetch(data + at);
}

void store_hint_data(struct store_hint *hint, bool copies_data)
{
	for (int t = 0; t < 2 && hint->buckets[t] != NULL; t++) {
		const struct hnode *head = *(struct hnode *const *)hint->buckets[t];

		hint->next[t] = NULL;
		if (head == NULL)
			continue;
		if (sess_eq(head, hint->id_hash, hint->id, hint->id_len)) {
			if (copies_data)
				hint_data_of(sess_of(head));
			hint->found.link = (void *)hint->buckets[t];
			/* Not in the other table: a session is in one only. */
			return;
		}
		/* About a quarter of lookups at a load of 0.6 find theirs second in the chain;
		 * the head's data would be loaded for nothing. */
		if (head->next != NULL) {
			hint->next[t] = (void *)&head->next;
			hint_node(head->next);
		}
	}
}

void store_hint_next(struct store_hint *hint, bool copies_data)
{
	for (int t = 0; t < 2 && hint->buckets[t] != NULL; t++) {
		struct hnode **link = hint->next[t];

		if (link != NULL && sess_eq(*link, hint->id_hash, hint->id, hint->id_len)) {
			if (copies_data)
				hint_data_of(sess_of(*link));
			hint->found.link = link;
			return;
		}
	}
}

static struct ns *ns_find(struct store *st, const uint8_t *name, size_t name_len)
{
	struct ns *ns;

	assert(name_len >= 1 && name_len <= 64);
	dict_step(st, &st->names, ns_hash, DICT_STEP_BUCKETS);
	ns = ns_find_const(st, name, name_len);
	if (ns != NULL)
		st->ns_recent = ns;
	return ns;
}

/* ns_find for ${key}, which takes the namespace its hint found while that still holds. */
static struct ns *ns_find_key(struct store *st, const struct store_key *key)
{
	struct ns *ns;

	assert(key->ns_len >= 1 && key->ns_len <= 64);
	dict_step(st, &st->names, ns_hash, DICT_STEP_BUCKETS);
	ns = found_holds(st, key) ? key->found.ns : ns_find_const(st, key->ns, key->ns_len);
	if (ns != NULL)
		st->ns_recent = ns;
	return ns;
}

/* Slot ${index}, which is below ns_slots_len. */
static ns_slot_t *ns_slot(const struct store *st, size_t index)
{
	return &st->ns_chunks[index / NS_CHUNK_SLOTS][index % NS_CHUNK_SLOTS];
}

/* The namespace in slot ${index} (below ns_slots_len), or NULL when the slot is free. */
static struct ns *ns_at(const struct store *st, size_t index)
{
	ns_slot_t v = *ns_slot(st, index);

	return (v & 1) != 0 ? NULL : (struct ns *)v;
}

/*
 * ${size} bytes of malloc for the namespace index that keep the store within max_bytes once
 * ${removed} bytes go, checked before the allocation too; *${usable} gets their usable size.
 * NULL with ENOMEM.
 */
static void *ns_index_alloc(struct store *st, size_t size, size_t removed, size_t *usable)
{
	void *p;

	if (!fits(st, size, removed))
		goto fail;
	p = malloc(size);
	if (p == NULL)
		goto fail;
	*usable = malloc_usable_size(p);
	if (!fits(st, *usable, removed)) {
		free(p);
		goto fail;
	}
	return p;

fail:
	errno = ENOMEM;
	return NULL;
}

/*
 * Room for one more namespace slot, within max_bytes: the first chunk twice as big, or one
 * more chunk (and a list of chunks twice as long when it is full: 8 KiB for a million
 * namespaces). 0, or -1 with ENOMEM; a longer list of chunks made for a chunk that does not
 * fit is kept, as other index room is (see ns_obtain).
 */
static int ns_index_grow(struct store *st)
{
	size_t slots = st->ns_chunks_len == 0 ? 8 : NS_CHUNK_SLOTS;
	size_t old, usable;
	ns_slot_t **chunks;
	ns_slot_t *chunk;

	if (st->ns_slots_cap > UINT32_MAX - NS_CHUNK_SLOTS)
		goto fail;
	if (st->ns_chunks_len == 1 && st->ns_slots_cap < NS_CHUNK_SLOTS) {
		old = malloc_usable_size(st->ns_chunks[0]);
		slots = 2 * st->ns_slots_cap;
		chunk = ns_index_alloc(st, slots * sizeof(*chunk), old, &usable);
		if (chunk == NULL)
			goto fail;
		memcpy(chunk, st->ns_chunks[0], st->ns_slots_len * sizeof(*chunk));
		free(st->ns_chunks[0]);
		st->ns_chunks[0] = chunk;
		st->ns_slots_cap = slots;
		st->bytes = st->bytes + usable - old;
		return 0;
	}
	if (st->ns_chunks_len == st->ns_chunks_cap) {
		size_t cap = st->ns_chunks_cap != 0 ? 2 * st->ns_chunks_cap : 4;

		old = malloc_usable_size(st->ns_chunks);
		chunks = ns_index_alloc(st, cap * sizeof(*chunks), old, &usable);
		if (chunks == NULL)
			goto fail;
		if (st->ns_chunks_len > 0)
			memcpy(chunks, st->ns_chunks, st->ns_chunks_len * sizeof(*chunks));
		free(st->ns_chunks);
		st->ns_chunks = chunks;
		st->ns_chunks_cap = cap;
		st->bytes = st->bytes + usable - old;
	}
	chunk = ns_index_alloc(st, slots * sizeof(*chunk), 0, &usable);
	if (chunk == NULL)
		goto fail;
	st->ns_chunks[st->ns_chunks_len++] = chunk;
	st->ns_slots_cap += slots;
	st->bytes += usable;
	return 0;

fail:
	errno = ENOMEM;
	return -1;
}

/* Once no namespace is left (none named, none dropped), free the namespace index, so that
 * an empty store holds and accounts nothing. */
static void ns_index_release_if_unused(struct store *st)
{
	if (st->ns_slots_used > 0)
		return;
	for (size_t i = 0; i < st->ns_chunks_len; i++) {
		st->bytes -= malloc_usable_size(st->ns_chunks[i]);
		free(st->ns_chunks[i]);
	}
	st->bytes -= malloc_usable_size(st->ns_chunks);
	free(st->ns_chunks);
	st->ns_chunks = NULL;
	st->ns_chunks_len = 0;
	st->ns_chunks_cap = 0;
	st->ns_slots_cap = 0;
	st->ns_slots_len = 0;
	st->ns_free_head = 0;
	dict_finish(st, &st->names);
}

/*
 * The namespace ${name}, created empty if needed; NULL with ENOMEM. A new namespace's record
 * is charged to it and to the store, within max_bytes; the index room it takes (a slot, a
 * bucket of the names) is charged to the store and kept if the caller then releases it. The
 * names' table grows as a namespace's does (dict_reserve_within, with ${now_ms} for
 * make_room), which may free expired sessions and empty namespaces: the caller holds none.
 */
static struct ns *ns_obtain(struct store *st, const struct store_key *key, uint64_t now_ms)
{
	struct ns *ns = ns_find_key(st, key);
	const uint8_t *name = key->ns;
	size_t name_len = key->ns_len;
	size_t index;

	if (ns != NULL)
		return ns;
	/* The names first: making room there may free the whole index (see
	 * ns_index_release_if_unused), which then grows again below. */
	if (dict_reserve_within(st, &st->names, sizeof(*ns) + MALLOC_SLACK, 0, now_ms) != 0)
		goto fail;
	if (st->ns_free_head == 0 && st->ns_slots_len == st->ns_slots_cap && ns_index_grow(st) != 0)
		goto fail;
	ns = malloc(sizeof(*ns));
	if (ns == NULL)
		goto fail_nomem;
	if (!fits(st, malloc_usable_size(ns), 0))
		goto fail_free;
	if (st->ns_free_head != 0) {
		index = st->ns_free_head - 1;
		st->ns_free_head = *ns_slot(st, index) >> 1;
	} else {
		index = st->ns_slots_len++;
	}
	dict_init(&ns->sessions);
	ns->bytes = 0;
	ns->payload = 0;
	ns->flashes = 0;
	ns->unread = 0;
	ns->evicted = 0;
	ns->dropped_next = NULL;
	ns->dropped_prev = NULL;
	ns->drop_at = 0;
	ns->index = (uint32_t)index;
	ns->name_len = (uint8_t)name_len;
	memcpy(ns->name, name, name_len);
	ns->name_hash = hash_bytes(st, name, name_len);
	*ns_slot(st, index) = (ns_slot_t)ns;
	st->ns_slots_used++;
	dict_insert(st, &st->names, &ns->link, ns->name_hash);
	account(st, ns, malloc_usable_size(ns), 0);
	st->ns_recent = ns;
	return ns;

fail_free:
	free(ns);
fail_nomem:
	errno = ENOMEM;
fail:
	return NULL;
}

/* Give back ${ns}'s slot and memory; its table is empty and no name leads to it. */
static void ns_free_record(struct store *st, struct ns *ns)
{
	*ns_slot(st, ns->index) = (ns_slot_t)st->ns_free_head << 1 | 1;
	st->ns_free_head = (size_t)ns->index + 1;
	st->ns_slots_used--;
	dict_finish(st, &ns->sessions);
	st->bytes -= malloc_usable_size(ns);
	free(ns);
	st->chain_gen++;
	ns_index_release_if_unused(st);
}

/*
 * Take ${ns} out of the table of names (its last session went, or a CLEAR dropped it), then
 * move that table along and start shrinking it: the lookups of requests step it too, but
 * namespaces that went with no request to come (a million of one session each, expired
 * or cleared down to one) kept the table sized for all of them, and the old one of a shrink
 * begun. Frees nothing and moves no namespace; links into the names are lost.
 */
static void ns_unname(struct store *st, struct ns *ns)
{
	dict_unlink(st, &st->names, dict_link_of(&st->names, &ns->link, ns->name_hash));
	if (st->ns_recent == ns)
		st->ns_recent = NULL;
	if (st->ns_dropped == ns)
		st->ns_dropped = NULL;
	dict_step(st, &st->names, ns_hash, DICT_STEP_BUCKETS);
	dict_maybe_shrink(st, &st->names);
}

/* Free the named ${ns} if it holds no session, so that empty namespaces cost nothing. Only
 * frees, but for moving and shrinking the table of names (ns_unname). */
static void ns_release_if_empty(struct store *st, struct ns *ns)
{
	if (ns->sessions.used > 0 || ns == st->ns_pinned)
		return;
	ns_unname(st, ns);
	ns_free_record(st, ns);
}

/* Take the emptied, dropped ${ns} off the store's list and free it. */
static void ns_drop_done(struct store *st, struct ns *ns)
{
	*ns->dropped_prev = ns->dropped_next;
	if (ns->dropped_next != NULL)
		ns->dropped_next->dropped_prev = ns->dropped_prev;
	ns_free_record(st, ns);
}

/* The bucket at combined index ${at} of ${d}: table[0]'s buckets, then table[1]'s; NULL past
 * the end. */
static struct hnode **drop_bucket(const struct dict *d, size_t at)
{
	if (at < d->size[0])
		return &d->table[0][at];
	if (at - d->size[0] < d->size[1])
		return &d->table[1][at - d->size[0]];
	return NULL;
}

/*
 * Freeing a session misses the cache on its node, on its two neighbours in the expiry wheel
 * and on the heap chunk after it (which free() may merge with). Dropped sessions are freed in
 * bucket order, so the ones coming are known: their nodes are fetched DROP_AHEAD buckets
 * early, and what each node points to half as early, once the node is there.
 */
#define DROP_AHEAD 16

static void drop_prefetch(const struct dict *d, size_t at)
{
	struct hnode **far = drop_bucket(d, at + DROP_AHEAD);
	struct hnode **near = drop_bucket(d, at + DROP_AHEAD / 2);

	if (far != NULL && *far != NULL)
		__builtin_prefetch(*far);
	if (near != NULL && *near != NULL) {
		const struct sess *s = sess_of(*near);

		__builtin_prefetch(s->exp.next);
		__builtin_prefetch(s->exp.prev);
		__builtin_prefetch((const char *)s + s->usable);
	}
}

/*
 * Free up to ${budget} sessions of the dropped ${ns}, taking each from the head of the first
 * non-empty bucket at or after its cursor; returns how many. Its sessions left the store's
 * counts when it was dropped; only their memory is accounted here. No resize step runs on a
 * dropped namespace, so the cursor passes every bucket once.
 */
static size_t ns_free_some(struct store *st, struct ns *ns, size_t budget)
{
	struct dict *d = &ns->sessions;
	size_t freed = 0;

	while (freed < budget && d->used > 0) {
		struct hnode **bucket = drop_bucket(d, ns->drop_at);
		struct hnode *n;

		if (bucket == NULL)
			abort(); /* sessions counted that no bucket holds: the store is corrupt */
		n = *bucket;
		if (n == NULL) {
			ns->drop_at++;
			continue;
		}
		if (n->next == NULL)
			drop_prefetch(d, ns->drop_at);
		*bucket = n->next;
		d->used--;
		sess_free(st, ns, sess_of(n));
		freed++;
	}
	if (d->used == 0)
		ns_drop_done(st, ns);
	return freed;
}

/* Free every session of ${ns} and give no account of them: the store is going away. */
static void ns_free_sessions(struct store *st, struct ns *ns)
{
	for (int t = 0; t < 2; t++) {
		for (size_t b = 0; b < ns->sessions.size[t]; b++) {
			struct hnode *n = ns->sessions.table[t][b];

			while (n != NULL) {
				struct hnode *next = n->next;

				sess_free(st, ns, sess_of(n));
				n = next;
			}
			ns->sessions.table[t][b] = NULL;
		}
	}
	ns->sessions.used = 0;
}

static inline void check_key(const struct store_key *key)
{
	assert(key->ns_len >= 1 && key->ns_len <= 64);
	assert(key->id_len >= 1 && key->id_len <= 128);
	(void)key;
}

/*
 * store_new(cfg):
 * A new empty store; ${cfg} is copied. Returns NULL with errno ENOMEM.
 * Free with store_free.
 */
struct store *store_new(const struct store_config *cfg)
{
	struct store *st;

	if (sodium_init() < 0) {
		errno = ENOMEM;
		return NULL;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	st->cfg = *cfg;
	st->hurry_left = SIZE_MAX;
	st->page_bytes = sysconf(_SC_PAGESIZE) > 0 ? (size_t)sysconf(_SC_PAGESIZE) : 4096;
	st->hash_key = ids_secret_new(crypto_shorthash_KEYBYTES);
	if (st->hash_key == NULL) {
		free(st);
		return NULL;
	}
	dict_init(&st->names);
	expiry_init(&st->wheel);
	return st;
}

/* store_free(st): free the store and every session in it. store_free(NULL) does nothing. */
void store_set_max_flash_bytes(struct store *st, size_t max_flash_bytes)
{
	st->cfg.max_flash_bytes = max_flash_bytes;
}

void store_mark_unread(struct store *st)
{
	st->marks_unread = true;
}

void store_set_max_bytes(struct store *st, size_t max_bytes)
{
	st->cfg.max_bytes = max_bytes;
}

void store_free(struct store *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < st->ns_slots_len; i++) {
		struct ns *ns = ns_at(st, i);

		if (ns == NULL)
			continue;
		ns_free_sessions(st, ns);
		dict_finish(st, &ns->sessions);
		free(ns);
	}
	for (size_t i = 0; i < st->ns_chunks_len; i++)
		free(st->ns_chunks[i]);
	free(st->ns_chunks);
	dict_finish(st, &st->names);
	sodium_free(st->hash_key);
	free(st->drop);
	free(st);
}

/* The first slot of recent_set to look at for ${h}. */
static size_t drop_recent_home(uint64_t h)
{
	return (size_t)(h & (DROP_RECENT_SLOTS - 1));
}

/* Take the place ${at} of the ring out of recent_set (nothing when it was never filled),
 * moving back the ones after it that probed past it, so that no probe stops short of them. */
static void drop_recent_forget(struct store_drop *dr, size_t at)
{
	size_t i = drop_recent_home(dr->recent[at]);

	for (; dr->recent_set[i] != 0; i = (i + 1) & (DROP_RECENT_SLOTS - 1)) {
		if (dr->recent_set[i] == at + 1)
			break;
	}
	if (dr->recent_set[i] == 0)
		return;
	for (size_t j = (i + 1) & (DROP_RECENT_SLOTS - 1); dr->recent_set[j] != 0;
	     j = (j + 1) & (DROP_RECENT_SLOTS - 1)) {
		size_t home = drop_recent_home(dr->recent[dr->recent_set[j] - 1]);

		/* It may fill the hole at i when its home is not in (i, j], cyclically. */
		if (((j - home) & (DROP_RECENT_SLOTS - 1)) >= ((j - i) & (DROP_RECENT_SLOTS - 1))) {
			dr->recent_set[i] = dr->recent_set[j];
			i = j;
		}
	}
	dr->recent_set[i] = 0;
}

/* Count the session whose id hashes to ${h} among those created last, in place of the oldest. */
static void drop_recent_add(struct store_drop *dr, uint64_t h)
{
	size_t at = dr->recent_at, i = drop_recent_home(h);

	drop_recent_forget(dr, at);
	dr->recent[at] = h;
	while (dr->recent_set[i] != 0)
		i = (i + 1) & (DROP_RECENT_SLOTS - 1);
	dr->recent_set[i] = (uint8_t)(at + 1);
	dr->recent_at = (at + 1) % STORE_DROP_RECENT;
}

/* Count a client's read of ${s} of ${ns}: it is no longer SESS_UNREAD. */
static void sess_mark_read(struct store *st, struct ns *ns, struct sess *s)
{
	if (s->flags & SESS_UNREAD) {
		s->flags &= (uint8_t)~SESS_UNREAD;
		ns->unread--;
		st->unread--;
	}
}

/*
 * The flags of a new session of ${ns} (${flags} and its tag), whose id hashes to ${h}. It is
 * counted unread while the store marks them (see SESS_UNREAD), and with the drop-unread
 * policy among the ones created last.
 */
static uint8_t sess_new_flags(struct store *st, struct ns *ns, uint8_t flags, uint64_t h)
{
	flags |= hash_tag(h);
	if (!st->marks_unread)
		return flags;
	ns->unread++;
	st->unread++;
	if (st->drop != NULL)
		drop_recent_add(st->drop, h);
	return flags | SESS_UNREAD;
}

/*
 * The live session of ${key} (with data, when ${with_data}), or NULL with errno ENOENT; a
 * namespace left empty by the expired session the lookup reclaimed is released. With
 * ${reads}, the session found counts as read back (SESS_UNREAD).
 */
static struct sess *find_live(struct store *st, const struct store_key *key, uint64_t now_ms,
                              bool with_data, bool reads)
{
	struct ns *ns;
	struct sess *s;
	struct hnode **link;

	check_key(key);
	ns = ns_find_key(st, key);
	if (ns == NULL)
		goto fail;
	s = sess_lookup_key(st, ns, key, now_ms, &link);
	if (s == NULL || (with_data && !(s->flags & SESS_HAS_DATA)))
		goto fail_release;
	if (reads)
		sess_mark_read(st, ns, s);
	return s;

fail_release:
	ns_release_if_empty(st, ns);
fail:
	errno = ENOENT;
	return NULL;
}

/*
 * store_get(st, key, now_ms, data, len):
 * Find the data of a live session that has data (a flash-only session has none).
 * Returns 0 with ${data}/${len} pointing at the store's copy, valid until the next call that
 * changes the store; or -1 with errno ENOENT.
 */
int store_get(struct store *st, const struct store_key *key, uint64_t now_ms, const void **data,
              size_t *len)
{
	size_t flashes;

	return store_load(st, key, now_ms, data, len, &flashes);
}

int store_load(struct store *st, const struct store_key *key, uint64_t now_ms, const void **data,
               size_t *len, size_t *flashes)
{
	struct sess *s = find_live(st, key, now_ms, true, true);

	if (s == NULL)
		return -1;
	*data = sess_data(s);
	*len = s->data_len;
	*flashes = flash_messages(s->flash);
	return 0;
}

/*
 * store_sizes(st, key, now_ms, data_len, flash_bytes):
 * The sizes of a live session's data (0 for one that holds flashes only) and of its flash
 * messages (flash_bytes), for guessing a reply's size before it is made; changes nothing
 * (an expired session found is left to the next lookup that may reclaim it). Returns 0, or
 * -1 with errno ENOENT (no live session).
 */
int store_sizes(const struct store *st, const struct store_key *key, uint64_t now_ms,
                size_t *data_len, size_t *flash_bytes_out)
{
	const struct ns *ns;
	const struct sess *s;
	struct hnode **link;

	check_key(key);
	ns = ns_find_const(st, key->ns, key->ns_len);
	if (ns == NULL)
		goto fail;
	link = dict_find(&ns->sessions, key_hash(st, key), sess_eq, key->id, key->id_len);
	if (link == NULL)
		goto fail;
	s = sess_of(*link);
	if (!sess_live(s, now_ms))
		goto fail;
	*data_len = (s->flags & SESS_HAS_DATA) ? s->data_len : 0;
	*flash_bytes_out = flash_bytes(s->flash);
	return 0;

fail:
	errno = ENOENT;
	return -1;
}

/*
 * store_expiry(st, key, now_ms, expires_at_ms):
 * The expiry instant of a live session, one that holds flashes only included (COUNT and
 * LIST show it too), for TTL. Moves no expiry; like store_get, it may reclaim the expired
 * session it finds. Returns 0 with *${expires_at_ms} > ${now_ms}, or -1 with errno ENOENT.
 */
int store_expiry(struct store *st, const struct store_key *key, uint64_t now_ms,
                 uint64_t *expires_at_ms)
{
	struct sess *s = find_live(st, key, now_ms, false, false);

	if (s == NULL)
		return -1;
	*expires_at_ms = s->exp.at_ms;
	return 0;
}

/* Replace the data of the live session ${s}; 0, or -1 with ENOMEM and nothing changed. */
static int sess_replace_data(struct store *st, struct ns *ns, struct hnode **link, struct sess *s,
                             const void *data, size_t len, uint64_t expires_at_ms, uint64_t now_ms)
{
	size_t need = sess_header() + s->id_len + len;
	size_t old_usable = s->usable;
	uint32_t new_usable;
	struct sess *n;

	if (need <= old_usable && old_usable - need <= SET_SLACK_BYTES) {
		/* memmove: ${data} may be what store_get returned for this very session. */
		if (len > 0)
			memmove(sess_data(s), data, len);
		n = s;
	} else {
		/* A fresh node rather than realloc, so that failing leaves the old one intact
		 * and ${data} stays readable until it is copied. */
		n = sess_alloc_within(st, need, old_usable);
		if (n == NULL)
			return -1;
		new_usable = n->usable;
		memcpy(n, s, sess_header() + s->id_len);
		n->usable = new_usable;
		if (len > 0)
			memcpy(sess_data(n), data, len);
		expiry_cancel(&st->wheel, &s->exp);
		n->exp.next = NULL;
		*link = &n->link;
		account(st, ns, n->usable, old_usable);
		free(s);
		st->chain_gen++;
	}
	account_payload(st, ns, len, n->data_len);
	n->data_len = (uint32_t)len;
	n->flags |= SESS_HAS_DATA;
	expiry_reschedule(&st->wheel, &n->exp, expires_at_ms, now_ms);
	return 0;
}

/*
 * The drop-unread policy (store_drop_unread). A drop samples rather than keeps an order: a list
 * of unread sessions oldest first would cost every session 16 bytes (82 to about 98 bytes of
 * overhead), where the flags byte and the expiry instant it has already serve. Like Redis's
 * approximated LRU, it compares a few sessions found at random and drops the one that expires
 * first: of one app's sessions (one TTL) the oldest, and the fresh session of a visitor in the
 * middle of a login only when every other one sampled is younger or read.
 */
/* Namespaces a drop looks at besides the one named last, unless there are no more than
 * DROP_NS_ALL slots: then it looks at every one. */
#define DROP_NS_TRIES 8u
#define DROP_NS_ALL   64u
/* Buckets of the chosen namespace a drop samples, sessions it walks at most, and unread ones
 * it compares before it picks. */
#define DROP_SAMPLE_BUCKETS 128u
#define DROP_WALK_MAX       128u
#define DROP_CANDIDATES     8u
/* Namespaces whose sample found nothing that may go that one write's drops pass over before
 * they give up (see drop_round). */
#define DROP_NS_BARREN 4u
/* A session's flash set, which a push to a session without flashes adds (flash.c). */
#define DROP_FLASH_SET_BYTES 64u
/* Tries a write refused for memory makes after drops: the room it needs is an estimate (the
 * allocator's rounding, a table's growth), and a second round of drops covers its error. */
#define DROP_RETRIES 2u

int store_drop_unread(struct store *st, store_drop_fn on_drop, void *arg)
{
	struct store_drop *dr = calloc(1, sizeof(*dr));

	if (dr == NULL) {
		errno = ENOMEM;
		return -1;
	}
	dr->on_drop = on_drop;
	dr->arg = arg;
	/* Random, so that a client cannot predict which session a full store drops next. */
	do
		randombytes_buf(&dr->rng, sizeof(dr->rng));
	while (dr->rng == 0);
	free(st->drop);
	st->drop = dr;
	return 0;
}

/* xorshift64: sampling needs speed, not secrecy; the seed is random. */
static uint64_t drop_random(struct store_drop *dr)
{
	uint64_t x = dr->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	dr->rng = x;
	return x;
}

/*
 * One write's drops: the namespaces (by index) whose sample found no session that may go. The
 * one with the most unread sessions may have none that may go (all among the
 * STORE_DROP_RECENT created last) while another has some: the next drop looks at the next
 * namespace, and no drop of the write samples a barren one again. Indexes, not addresses: a
 * drop may free a namespace, and none is made until the write's drops are done.
 */
struct drop_round {
	uint32_t barren[DROP_NS_BARREN];
	unsigned n;
};

static bool drop_barren(const struct drop_round *round, const struct ns *ns)
{
	for (unsigned i = 0; i < round->n; i++) {
		if (round->barren[i] == ns->index)
			return true;
	}
	return false;
}

/* Whether ${ns} is one to drop from in ${round}, rather than ${best}. */
static bool drop_better_ns(const struct drop_round *round, const struct ns *ns,
                           const struct ns *best)
{
	return ns != NULL && ns->unread > 0 && (best == NULL || ns->unread > best->unread) &&
	       !drop_barren(round, ns);
}

/* The namespace to drop from: the one with the most unread sessions of those looked at (a
 * flood fills one namespace), not one of ${round}'s barren ones, or NULL. Those looked at
 * include the one the last drop came from: past DROP_NS_ALL namespaces the sample is random,
 * and a flooded one among many, whose write is no longer the last, was missed by every
 * sample of a write while the others held only the spared newest (a write to a 73rd
 * namespace refused with a thousand unread sessions in another, from then on 1 in 4). */
static struct ns *drop_pick_ns(struct store *st, const struct drop_round *round)
{
	struct ns *best = drop_better_ns(round, st->ns_recent, NULL) ? st->ns_recent : NULL;
	size_t slots = st->ns_slots_len;
	size_t tries = slots <= DROP_NS_ALL ? slots : DROP_NS_TRIES;

	if (drop_better_ns(round, st->ns_dropped, best))
		best = st->ns_dropped;
	for (size_t i = 0; i < tries; i++) {
		struct ns *ns =
		    ns_at(st, slots <= DROP_NS_ALL ? i : (size_t)(drop_random(st->drop) % slots));

		if (drop_better_ns(round, ns, best))
			best = ns;
	}
	return best;
}

/* Whether the session whose id hashes to ${h} is spared: the write's own (${keep_h}) or one of
 * those created last. */
static bool drop_spared(const struct store_drop *dr, uint64_t h, uint64_t keep_h)
{
	if (h == keep_h)
		return true;
	for (size_t i = drop_recent_home(h); dr->recent_set[i] != 0;
	     i = (i + 1) & (DROP_RECENT_SLOTS - 1)) {
		if (dr->recent[dr->recent_set[i] - 1] == h)
			return true;
	}
	return false;
}

/* The unread session of ${ns} to drop, its id's hash in *${hp}, or NULL when the sample
 * found none that may go. */
static struct sess *drop_pick(struct store *st, struct ns *ns, uint64_t keep_h, uint64_t now_ms,
                              uint64_t *hp)
{
	const struct dict *d = &ns->sessions;
	size_t buckets = d->size[0] + d->size[1];
	struct sess *best = NULL;
	unsigned found = 0, walked = 0;

	for (unsigned i = 0; i < DROP_SAMPLE_BUCKETS && found < DROP_CANDIDATES && buckets > 0;
	     i++) {
		struct hnode **b = drop_bucket(d, (size_t)(drop_random(st->drop) % buckets));

		if (b == NULL)
			continue;
		for (const struct hnode *n = *b; n != NULL && walked < DROP_WALK_MAX; n = n->next) {
			struct sess *s = sess_of(n);
			uint64_t h;

			walked++;
			if (!(s->flags & SESS_UNREAD) || !sess_live(s, now_ms))
				continue;
			/* One that would not replace the best found is not hashed to see whether
			 * it is spared (SipHash was 55% of a drop's instructions, stop 51), and
			 * counts as found. Otherwise only those that may go count: under a flood
			 * the spared ones are many, and a sample of them alone refused the write
			 * (1 write in 4000). */
			if (best != NULL && s->exp.at_ms >= best->exp.at_ms) {
				found++;
				continue;
			}
			h = sess_hash(st, n);
			if (drop_spared(st->drop, h, keep_h))
				continue;
			found++;
			best = s;
			*hp = h;
		}
		if (walked >= DROP_WALK_MAX)
			break;
	}
	return best;
}

/* Drop one unread session for a write of ${keep_h}'s session (see store_drop_unread), in
 * ${round}: 0, or -1 when none may go or the caller's on_drop kept it. */
static int drop_one(struct store *st, uint64_t keep_h, struct drop_round *round, uint64_t now_ms)
{
	struct ns *ns;
	struct sess *s;
	struct store_key key;
	uint64_t h = 0;

	for (;;) {
		ns = drop_pick_ns(st, round);
		if (ns == NULL)
			return -1;
		s = drop_pick(st, ns, keep_h, now_ms, &h);
		if (s != NULL)
			break;
		if (round->n == DROP_NS_BARREN)
			return -1;
		round->barren[round->n++] = ns->index;
	}
	key = (struct store_key){.ns = ns->name,
	                         .ns_len = ns->name_len,
	                         .id = s->bytes,
	                         .id_len = s->id_len,
	                         .id_hash = h,
	                         .id_hashed = true};
	if (st->drop->on_drop(st->drop->arg, &key, now_ms) != 0)
		return -1;
	sess_remove(st, ns, dict_link_of(&ns->sessions, &s->link, h), s);
	ns->evicted++;
	st->evicted_total++;
	st->ns_dropped = ns;
	ns_release_if_empty(st, ns);
	return 0;
}

/*
 * With the drop-unread policy, drop unread sessions (not ${keep_h}'s) until ${need} bytes
 * more fit, at most ${limit}. Returns how many it dropped.
 */
static size_t drop_toward(struct store *st, uint64_t keep_h, size_t need, size_t limit,
                          uint64_t now_ms)
{
	struct drop_round round = {.n = 0};
	size_t dropped = 0;

	if (st->drop == NULL || st->cfg.max_bytes == 0 || st->unread == 0)
		return 0;
	while (dropped < limit && !fits(st, need, 0) && drop_one(st, keep_h, &round, now_ms) == 0)
		dropped++;
	return dropped;
}

/* What the try after ${tries} refused ones asks drop_for for, of a write estimated to need
 * ${need}: a try refused with that much room fell short of the estimate (the allocator's
 * rounding: a node of 256 KiB is mapped in whole pages, 4 KiB more), by little. */
static size_t drop_again(size_t need, unsigned tries)
{
	return tries == 0 ? need : need + need / 8 + 4096;
}

/*
 * After a write of ${key} that needs ${need} bytes more was refused for memory: with the
 * drop-unread policy, drop unread sessions until it fits, at most as many as make_room would
 * free for it. Returns whether it dropped any (then the write is worth trying again); errno is
 * ENOMEM either way.
 */
static bool drop_for(struct store *st, const struct store_key *key, size_t need, uint64_t now_ms)
{
	size_t limit = MAKE_ROOM_MAX + need / MAKE_ROOM_BYTES_PER_SESSION, dropped = 0;

	if (st->drop == NULL || st->cfg.max_bytes == 0 || need > st->cfg.max_bytes)
		goto out;
	/* Refused though the estimate fits: the allocator gave the node more than asked (a free
	 * chunk too small to split), and the write was refused with every session unread (1 in
	 * about 5 million of bench/drop-unread/table-growth.c's). Ask for the margin of a retry. */
	if (fits(st, need, 0))
		need = drop_again(need, 1);
	/* What that many drops free at the sessions' average size: a write that needs more (1 MB
	 * among sessions of 100 bytes) is refused at once, not after dropping thousands of
	 * sessions for nothing (and holding the loop for 0.1 s, stop 50). */
	if (limit * (st->bytes / (st->sessions + 1)) < need)
		goto out;
	dropped = drop_toward(st, key_hash(st, key), need, limit, now_ms);
out:
	errno = ENOMEM;
	return dropped > 0;
}

/*
 * What one more namespace takes of the index when it must grow (ns_obtain): ns_index_grow's
 * slots (the first chunk twice as big, less the old one it frees; or one more chunk, and a
 * list of chunks twice as long), and the names' table's growth once its chains are full,
 * where dict_reserve_within's fallback refuses. Asked of the drops for the node and record only, a
 * new namespace found that much free, dropped nothing and was refused (a full 1 MiB store: the
 * 257th and the 1025th).
 */
static size_t ns_index_need(const struct store *st)
{
	const struct dict *names = &st->names;
	size_t need = 0;

	if (st->ns_free_head == 0 && st->ns_slots_len == st->ns_slots_cap) {
		if (st->ns_chunks_len == 0)
			need += 8 * sizeof(ns_slot_t) + 4 * sizeof(ns_slot_t *) + 2 * MALLOC_SLACK;
		else if (st->ns_chunks_len == 1 && st->ns_slots_cap < NS_CHUNK_SLOTS)
			need += st->ns_slots_cap * sizeof(ns_slot_t) + MALLOC_SLACK;
		else
			need += NS_CHUNK_SLOTS * sizeof(ns_slot_t) + MALLOC_SLACK +
			        (st->ns_chunks_len == st->ns_chunks_cap
			             ? 2 * st->ns_chunks_cap * sizeof(ns_slot_t *) + MALLOC_SLACK
			             : 0);
	}
	if (names->table[0] != NULL && names->used + 1 > DICT_FULL_LOAD * names->size[0])
		need += dict_growth_bytes(st, names);
	return need;
}

/* What a write of ${key} that adds ${added} bytes to a session needs besides them: the
 * session's node when it is missing, the namespace's record and the index's growth when that
 * is. */
static size_t drop_need(const struct store *st, const struct store_key *key, size_t added,
                        uint64_t now_ms)
{
	size_t data_len, flash_len;

	if (ns_find_const(st, key->ns, key->ns_len) == NULL)
		return added + sess_header() + key->id_len + MALLOC_SLACK + MAKE_ROOM_NS_EXTRA +
		       ns_index_need(st);
	if (store_sizes(st, key, now_ms, &data_len, &flash_len) != 0)
		return added + sess_header() + key->id_len + MALLOC_SLACK;
	return added;
}

/*
 * A write of ${key} refused for memory (under refuse, or drop-unread with nothing left to
 * drop): it moves DICT_HURRY_BUCKETS of its namespace's table and of the names', if they
 * move, whatever the turn's budget. Bounded a turn, a busy daemon's turns of 100 writes
 * refused 50,000 new sessions in a row with a million buckets' room owed, and of 800 writes
 * 187,000, where a share a refused write refused 599 (test_store's
 * a_table_moving_in_busy_turns_gives_its_old_buckets_back, bench/drop-unread/refuse-turns.c).
 * The price: a busy turn of refusals may move a whole table, as before the budget (a million
 * buckets: 0.1 to 0.3 s, once a doubling), rather than every new session refused for hundreds
 * of turns. Returns -1 with errno ENOMEM.
 */
static int hurry_refused(struct store *st, const struct store_key *key)
{
	struct ns *ns = ns_find(st, key->ns, key->ns_len);

	dict_step(st, &st->names, ns_hash, DICT_HURRY_BUCKETS);
	/* A cleared namespace's table is walked bucket by bucket as it is freed: left alone. */
	if (ns != NULL && ns->dropped_prev == NULL)
		dict_step(st, &ns->sessions, sess_hash, DICT_HURRY_BUCKETS);
	errno = ENOMEM;
	return -1;
}

/* store_set's one try, made again after drop_for. */
static int set_once(struct store *st, const struct store_key *key, const void *data, size_t len,
                    uint64_t expires_at_ms, uint64_t now_ms)
{
	struct ns *ns;
	struct sess *s;
	struct hnode **link;
	uint64_t h;

	check_key(key);
	if (len >= UINT32_MAX) {
		errno = ENOMEM;
		goto fail;
	}
	make_room(st, sess_header() + key->id_len + len + MALLOC_SLACK + MAKE_ROOM_NS_EXTRA,
	          now_ms);
	ns = ns_obtain(st, key, now_ms);
	if (ns == NULL)
		goto fail;
	dict_hurry(st, &ns->sessions, sess_hash, sess_header() + key->id_len + len + MALLOC_SLACK);
	h = key_hash(st, key);
	s = sess_lookup_key(st, ns, key, now_ms, &link);
	if (s != NULL) {
		if (sess_replace_data(st, ns, link, s, data, len, expires_at_ms, now_ms) != 0)
			goto fail_release;
		dict_maybe_shrink(st, &ns->sessions);
		return 0;
	}
	s = sess_alloc_within(st, sess_header() + key->id_len + len, 0);
	if (s == NULL)
		goto fail_release;
	/* The table grows with the node counted, so that a refusal leaves it as it was. */
	if (dict_reserve_within(st, &ns->sessions, s->usable, h, now_ms) != 0)
		goto fail_free;
	s->flash = NULL;
	s->data_len = (uint32_t)len;
	s->ns_index = ns->index;
	s->id_len = (uint8_t)key->id_len;
	s->flags = sess_new_flags(st, ns, SESS_HAS_DATA, h);
	memcpy(s->bytes, key->id, key->id_len);
	if (len > 0)
		memcpy(sess_data(s), data, len);
	dict_insert(st, &ns->sessions, &s->link, h);
	account(st, ns, s->usable, 0);
	account_payload(st, ns, sess_payload(ns, s), 0);
	st->sessions++;
	expiry_schedule(&st->wheel, &s->exp, expires_at_ms, now_ms);
	return 0;

fail_free:
	free(s);
fail_release:
	ns_release_if_empty(st, ns);
fail:
	return -1;
}

/*
 * store_set(st, key, data, len, expires_at_ms, now_ms):
 * Copy ${len} bytes of ${data} into the session, creating it if needed, and make it expire at
 * ${expires_at_ms}. Flash queues are kept. Returns 0, or -1 with errno ENOMEM (memory limit
 * or allocation failure; nothing changed but
 * the unread sessions dropped for it, see store_drop_unread).
 */
int store_set(struct store *st, const struct store_key *key, const void *data, size_t len,
              uint64_t expires_at_ms, uint64_t now_ms)
{
	size_t data_len, flash_len, need;

	for (unsigned tries = 0;; tries++) {
		if (set_once(st, key, data, len, expires_at_ms, now_ms) == 0)
			return 0;
		if (errno != ENOMEM || len >= UINT32_MAX)
			return -1;
		if (tries == DROP_RETRIES)
			return hurry_refused(st, key);
		/* A SET that replaces a session needs only what it grows it by. */
		need = store_sizes(st, key, now_ms, &data_len, &flash_len) == 0
		           ? (len > data_len ? len - data_len : 0) + MALLOC_SLACK
		           : drop_need(st, key, len, now_ms);
		if (!drop_for(st, key, drop_again(need, tries), now_ms))
			return hurry_refused(st, key);
	}
}

/*
 * store_touch(st, key, expires_at_ms, now_ms):
 * Make a live session expire at ${expires_at_ms}. Returns 0, or -1 with errno ENOENT.
 */
int store_touch(struct store *st, const struct store_key *key, uint64_t expires_at_ms,
                uint64_t now_ms)
{
	struct sess *s = find_live(st, key, now_ms, false, true);

	if (s == NULL)
		return -1;
	expiry_reschedule(&st->wheel, &s->exp, expires_at_ms, now_ms);
	return 0;
}

/*
 * store_destroy(st, key, now_ms):
 * Remove a live session with its data and flashes. Returns 0, or -1 with errno ENOENT.
 */
int store_destroy(struct store *st, const struct store_key *key, uint64_t now_ms)
{
	struct ns *ns;
	struct sess *s;
	struct hnode **link;
	int rc = 0;

	check_key(key);
	ns = ns_find_key(st, key);
	if (ns == NULL) {
		errno = ENOENT;
		return -1;
	}
	s = sess_lookup_key(st, ns, key, now_ms, &link);
	if (s != NULL) {
		sess_remove(st, ns, link, s);
	} else {
		errno = ENOENT;
		rc = -1;
	}
	ns_release_if_empty(st, ns);
	return rc;
}

/*
 * Append a message to the queue of ${type} of the session ${key}: store_flash_push with
 * ${may_create}, store_flash_push_existing without. Without it, a session that is missing,
 * expired or without data is ENOENT, and neither it nor its namespace is created.
 */
static int flash_push_to(struct store *st, const struct store_key *key, bool may_create,
                         const uint8_t *type, size_t type_len, const void *msg, size_t msg_len,
                         bool msg_is_bin, uint64_t expires_at_ms, uint64_t now_ms,
                         size_t *queue_len)
{
	struct ns *ns;
	struct sess *s, *created = NULL;
	struct hnode **link;
	uint64_t h;
	size_t node_usable = 0, old_memory, old_flash_bytes, max_memory = SIZE_MAX;
	size_t max_flash = st->cfg.max_flash_bytes != 0 ? st->cfg.max_flash_bytes : SIZE_MAX;

	check_key(key);
	assert(type_len >= 1 && type_len <= 64);
	make_room(st,
	          sess_header() + key->id_len + MALLOC_SLACK + msg_len + type_len +
	              MAKE_ROOM_FLASH_EXTRA + MAKE_ROOM_NS_EXTRA,
	          now_ms);
	/* Not ns_obtain without may_create: a missing namespace is NOT_FOUND, not NO_MEMORY. */
	ns = may_create ? ns_obtain(st, key, now_ms) : ns_find_key(st, key);
	if (ns == NULL) {
		if (!may_create)
			errno = ENOENT;
		goto fail;
	}
	dict_hurry(st, &ns->sessions, sess_hash,
	           sess_header() + key->id_len + MALLOC_SLACK + msg_len + type_len +
	               MAKE_ROOM_FLASH_EXTRA);
	h = key_hash(st, key);
	s = sess_lookup_key(st, ns, key, now_ms, &link);
	if (!may_create && (s == NULL || !(s->flags & SESS_HAS_DATA))) {
		errno = ENOENT;
		goto fail_release;
	}
	if (s == NULL) {
		s = sess_alloc_within(st, sess_header() + key->id_len, 0);
		if (s == NULL)
			goto fail_release;
		s->flash = NULL;
		s->exp.next = NULL;
		s->data_len = 0;
		s->ns_index = ns->index;
		s->id_len = (uint8_t)key->id_len;
		s->flags = 0;
		memcpy(s->bytes, key->id, key->id_len);
		created = s;
		node_usable = s->usable;
	}
	old_memory = flash_memory(s->flash);
	old_flash_bytes = flash_bytes(s->flash);
	if (st->cfg.max_bytes != 0) {
		if (st->bytes + node_usable > st->cfg.max_bytes) {
			errno = ENOMEM;
			goto fail_free;
		}
		max_memory = old_memory + (st->cfg.max_bytes - st->bytes - node_usable);
	}
	if (flash_push(&s->flash, type, type_len, msg, msg_len, msg_is_bin, max_flash, max_memory,
	               queue_len) != 0)
		goto fail_free;
	/* A new session's table grows last, with the node and its flashes counted, so that a
	 * refusal leaves it as it was. */
	if (created != NULL &&
	    dict_reserve_within(st, &ns->sessions, node_usable + flash_memory(s->flash), h,
	                        now_ms) != 0)
		goto fail_free;
	account(st, ns, node_usable + flash_memory(s->flash) - old_memory, 0);
	account_payload(st, ns,
	                flash_bytes(s->flash) - old_flash_bytes +
	                    (created != NULL ? ns->name_len + s->id_len : 0),
	                0);
	ns->flashes++;
	st->flashes++;
	if (created != NULL) {
		s->flags = sess_new_flags(st, ns, 0, h);
		dict_insert(st, &ns->sessions, &s->link, h);
		st->sessions++;
		expiry_schedule(&st->wheel, &s->exp, expires_at_ms, now_ms);
	} else if (expires_at_ms > s->exp.at_ms) {
		expiry_reschedule(&st->wheel, &s->exp, expires_at_ms, now_ms);
	}
	return 0;

fail_free:
	if (created != NULL)
		flash_free(created->flash);
	free(created);
fail_release:
	ns_release_if_empty(st, ns);
fail:
	return -1;
}

/* flash_push_to, tried again after drop_for when refused for memory. */
static int flash_push_dropping(struct store *st, const struct store_key *key, bool may_create,
                               const uint8_t *type, size_t type_len, const void *msg,
                               size_t msg_len, bool msg_is_bin, uint64_t expires_at_ms,
                               uint64_t now_ms, size_t *queue_len)
{
	for (unsigned tries = 0;; tries++) {
		if (flash_push_to(st, key, may_create, type, type_len, msg, msg_len, msg_is_bin,
		                  expires_at_ms, now_ms, queue_len) == 0)
			return 0;
		if (errno != ENOMEM)
			return -1;
		if (tries == DROP_RETRIES ||
		    !drop_for(st, key,
		              drop_again(drop_need(st, key,
		                                   msg_len + type_len + MAKE_ROOM_FLASH_EXTRA +
		                                       DROP_FLASH_SET_BYTES,
		                                   now_ms),
		                         tries),
		              now_ms))
			return hurry_refused(st, key);
	}
}

/*
 * store_flash_push(st, key, type, type_len, msg, msg_len, msg_is_bin, expires_at_ms, now_ms,
 *                  queue_len):
 * Append a message to the session's queue of ${type}. A missing session is created without
 * data, expiring at ${expires_at_ms}; an existing one expires at the later of its expiry and
 * ${expires_at_ms}. ${queue_len} (may be NULL) receives that type's queue length after the
 * push. Returns 0, or -1 with errno ENOMEM (memory limit), ENOSPC (the session's flashes
 * would exceed max_flash_bytes) or EMLINK (a new type beyond the 64 a session may hold);
 * nothing changed on -1.
 */
int store_flash_push(struct store *st, const struct store_key *key, const uint8_t *type,
                     size_t type_len, const void *msg, size_t msg_len, bool msg_is_bin,
                     uint64_t expires_at_ms, uint64_t now_ms, size_t *queue_len)
{
	return flash_push_dropping(st, key, true, type, type_len, msg, msg_len, msg_is_bin,
	                           expires_at_ms, now_ms, queue_len);
}

/*
 * store_flash_push_existing(st, key, type, type_len, msg, msg_len, msg_is_bin, expires_at_ms,
 *                           now_ms, queue_len):
 * store_flash_push, but only to a live session that has data (one store_get finds): a
 * session that is missing, expired or holds flashes only is -1 with errno ENOENT, and
 * nothing is created or changed. Otherwise returns as store_flash_push.
 */
int store_flash_push_existing(struct store *st, const struct store_key *key, const uint8_t *type,
                              size_t type_len, const void *msg, size_t msg_len, bool msg_is_bin,
                              uint64_t expires_at_ms, uint64_t now_ms, size_t *queue_len)
{
	return flash_push_dropping(st, key, false, type, type_len, msg, msg_len, msg_is_bin,
	                           expires_at_ms, now_ms, queue_len);
}

/*
 * store_flash_pop(st, key, type, type_len, now_ms, on_type, on_msg, arg):
 * Pop the queue of ${type}, or every queue when ${type} is NULL (queues in the order of
 * their oldest message). For each queue popped, ${on_type} is called with its message count
 * (also for a one-type pop of an empty or missing queue, with count 0, so the caller can
 * write an empty array), then ${on_msg} for each message. The messages are removed only after
 * every callback returned 0, so a caller that fails to deliver them loses nothing.
 * ${queue_count} (may be NULL) receives the number of queues visited, before the first call.
 * Returns 0; -1 with errno ENOENT (no live session) or ECANCELED (a callback returned -1;
 * nothing removed).
 */
int store_flash_pop(struct store *st, const struct store_key *key, const uint8_t *type,
                    size_t type_len, uint64_t now_ms, size_t *queue_count,
                    store_flash_type_fn on_type, store_flash_msg_fn on_msg, void *arg)
{
	struct ns *ns;
	struct sess *s;
	struct hnode **link;
	size_t old_memory, old_flash_bytes, removed;

	check_key(key);
	assert(type == NULL || (type_len >= 1 && type_len <= 64));
	ns = ns_find_key(st, key);
	if (ns == NULL)
		goto fail_missing;
	s = sess_lookup_key(st, ns, key, now_ms, &link);
	if (s == NULL) {
		ns_release_if_empty(st, ns);
		goto fail_missing;
	}
	sess_mark_read(st, ns, s);
	old_memory = flash_memory(s->flash);
	old_flash_bytes = flash_bytes(s->flash);
	if (flash_pop(&s->flash, type, type_len, queue_count, on_type, on_msg, arg, &removed) != 0)
		return -1;
	account(st, ns, 0, old_memory - flash_memory(s->flash));
	account_payload(st, ns, 0, old_flash_bytes - flash_bytes(s->flash));
	ns->flashes -= removed;
	st->flashes -= removed;
	return 0;

fail_missing:
	errno = ENOENT;
	return -1;
}

/*
 * Reclaim at most ${budget} sessions whose expiry is <= now_ms; returns how many. A session of
 * a dropped namespace that comes due is freed without being counted: it left the counts when
 * CLEAR dropped it.
 */
static size_t expire_due(struct store *st, uint64_t now_ms, size_t budget)
{
	size_t work = budget > (SIZE_MAX - EXPIRE_WORK_BASE) / EXPIRE_WORK_PER_SESSION
	                  ? SIZE_MAX
	                  : budget * EXPIRE_WORK_PER_SESSION + EXPIRE_WORK_BASE;
	size_t removed = 0;

	while (removed < budget) {
		struct expiry_node *node = expiry_pop_due(&st->wheel, now_ms, &work);
		struct sess *s;
		struct ns *ns;
		struct hnode **link;

		if (node == NULL)
			break;
		s = container_of(node, struct sess, exp);
		ns = ns_at(st, s->ns_index);
		removed++;
		if (ns->dropped_prev != NULL) {
			dict_unlink(st, &ns->sessions,
			            dict_link_of(&ns->sessions, &s->link, sess_hash(st, &s->link)));
			sess_free(st, ns, s);
			if (ns->sessions.used == 0)
				ns_drop_done(st, ns);
			continue;
		}
		dict_step(st, &ns->sessions, sess_hash, DICT_STEP_BUCKETS);
		link = dict_link_of(&ns->sessions, &s->link, sess_hash(st, &s->link));
		sess_remove(st, ns, link, s);
		st->expired_total++;
		if (ns->sessions.used == 0)
			ns_release_if_empty(st, ns);
		else
			dict_maybe_shrink(st, &ns->sessions);
	}
	return removed;
}

/* Free at most ${budget} sessions of dropped namespaces; returns how many. */
static size_t free_dropped(struct store *st, size_t budget)
{
	size_t freed = 0;

	while (freed < budget && st->dropped != NULL)
		freed += ns_free_some(st, st->dropped, budget - freed);
	return freed;
}

uint64_t store_expired_total(const struct store *st)
{
	return st->expired_total;
}

/*
 * store_expire(st, now_ms, budget):
 * Free at most ${budget} sessions: first those of namespaces CLEAR dropped, then those whose
 * expiry is <= now_ms. Returns how many it freed; a return equal to ${budget} means more may
 * be waiting. Moving sessions between wheel levels is bounded too (a few moves per unit of
 * budget), so a slice can also end early with work left; store_next_expiry() <= now_ms then
 * says so.
 */
size_t store_expire(struct store *st, uint64_t now_ms, size_t budget)
{
	size_t freed = free_dropped(st, budget);

	return freed + expire_due(st, now_ms, budget - freed);
}

/* How many due sessions store_count_is_quick reclaims before it judges. */
#define COUNT_EXPIRE_BUDGET 256u
/* The most sessions COUNT or CLEAR walks in one call while expiry is behind: about a
 * millisecond. */
#define COUNT_WALK_MAX 16384u
/* And the most buckets such a walk passes: a table emptied by DESTROYs keeps its size until a
 * write shrinks it, and a COUNT of 10 sessions in the million buckets left by a million took
 * 1.5 ms, 370 ms for a thousand pipelined. A full table of COUNT_WALK_MAX sessions, resizing,
 * has fewer. */
#define COUNT_WALK_BUCKETS (4u * COUNT_WALK_MAX)

/* The live sessions of ${ns} at ${now_ms}, by a walk of its table. */
static size_t ns_count_live(const struct ns *ns, uint64_t now_ms)
{
	size_t live = 0;

	for (int t = 0; t < 2; t++) {
		for (size_t b = 0; b < ns->sessions.size[t]; b++) {
			for (const struct hnode *n = ns->sessions.table[t][b]; n != NULL;
			     n = n->next)
				live += sess_live(sess_of(n), now_ms) ? 1 : 0;
		}
	}
	return live;
}

/*
 * The namespace ${name}, or NULL, with ${live} set to its live sessions at ${now_ms}.
 *
 * Usually nothing is due (the daemon's expiry timer keeps up) and the table's size is the
 * answer. During a mass expiry the namespace is walked and its live sessions counted: a walk
 * reads each session once and frees nothing, where reclaiming them would free them all in
 * one call. The daemon asks store_count_is_quick first, so that it walks only small
 * namespaces.
 */
static struct ns *ns_find_counted(struct store *st, const uint8_t *name, size_t name_len,
                                  uint64_t now_ms, size_t *live)
{
	struct ns *ns = ns_find(st, name, name_len);

	*live = 0;
	if (ns == NULL)
		return NULL;
	if (!store_expiry_behind(st, now_ms))
		*live = ns->sessions.used;
	else
		*live = ns_count_live(ns, now_ms);
	return ns;
}

bool store_count_is_quick(struct store *st, const uint8_t *ns_name, size_t ns_len, uint64_t now_ms)
{
	const struct ns *ns;

	expire_due(st, now_ms, COUNT_EXPIRE_BUDGET);
	if (!store_expiry_behind(st, now_ms))
		return true;
	ns = ns_find(st, ns_name, ns_len);
	return ns == NULL || (ns->sessions.used <= COUNT_WALK_MAX &&
	                      ns->sessions.size[0] + ns->sessions.size[1] <= COUNT_WALK_BUCKETS);
}

bool store_expiry_behind(const struct store *st, uint64_t now_ms)
{
	return expiry_next(&st->wheel) <= now_ms;
}

/* store_count(st, ns, ns_len, now_ms): the live sessions in the namespace. */
size_t store_count(struct store *st, const uint8_t *ns_name, size_t ns_len, uint64_t now_ms)
{
	size_t live;

	ns_find_counted(st, ns_name, ns_len, now_ms, &live);
	return live;
}

static uint32_t reverse_bits32(uint32_t v)
{
	v = ((v >> 1) & 0x55555555u) | ((v & 0x55555555u) << 1);
	v = ((v >> 2) & 0x33333333u) | ((v & 0x33333333u) << 2);
	v = ((v >> 4) & 0x0f0f0f0fu) | ((v & 0x0f0f0f0fu) << 4);
	v = ((v >> 8) & 0x00ff00ffu) | ((v & 0x00ff00ffu) << 8);
	return (v >> 16) | (v << 16);
}

/*
 * LIST visits a namespace, and NAMESPACES the index of names, in the order of a per-node scan
 * key: the low 32 bits of the node's hash (its id's, or its name's) reversed, then its high 32
 * bits. Reversing makes the order of buckets the reverse-binary order of Redis's SCAN, so the
 * nodes of one bucket (in a table of any power-of-two size) have consecutive keys; and since
 * the key does not depend on the table, a cursor that is "the next key to visit" stays exact
 * across any number of resizes, and can stop in the middle of a bucket to honour the limit.
 */
static uint64_t scan_key(uint64_t h)
{
	return ((uint64_t)reverse_bits32((uint32_t)h) << 32) | (h >> 32);
}

/* One scan of a dict (dict_scan): which nodes it visits and what it does with each. */
struct dict_scan {
	dict_hash_fn hash;
	/* Whether the node is visited at all (a session past its expiry is not). */
	bool (*wanted)(const struct dict_scan *scan, const struct hnode *n);
	/* Visit one node: 0 to go on, -1 to stop the scan (an error). */
	int (*visit)(const struct dict_scan *scan, const struct hnode *n);
	uint64_t now_ms;
	const struct store *st; /* for a visit that reads the store's own figures */
	/* The caller's callback (one of them, for visit) and its argument. */
	store_list_fn on_session;
	store_namespace_fn on_namespace;
	store_namespace_stats_fn on_namespace_stats;
	void *arg;
};

struct scan_pick {
	const struct hnode *n;
	uint64_t key;
};

/* The wanted node of the chain ${n} with the smallest scan key >= ${from}, into ${best}. */
static void scan_chain(const struct store *st, const struct dict_scan *scan, const struct hnode *n,
                       uint64_t from, struct scan_pick *best)
{
	for (; n != NULL; n = n->next) {
		uint64_t key;

		if (!scan->wanted(scan, n))
			continue;
		key = scan_key(scan->hash(st, n));
		if (key >= from && (best->n == NULL || key < best->key)) {
			best->n = n;
			best->key = key;
		}
	}
}

/*
 * Visit at most ${limit} wanted nodes of ${d} from ${cursor} (0 starts a scan) in scan-key
 * order, and set ${next_cursor} (0 when the scan is complete) and ${count} (nodes visited).
 * A node present for the whole scan is visited at least once, even when the table grows or
 * shrinks between calls. Returns 0, or -1 when the visit returned -1.
 */
static int dict_scan(const struct store *st, const struct dict *d, const struct dict_scan *scan,
                     uint64_t cursor, size_t limit, uint64_t *next_cursor, size_t *count)
{
	uint64_t c = cursor;
	size_t groups_left;

	*count = 0;
	*next_cursor = 0;
	if (limit == 0)
		limit = 1;
	/* Empty buckets cost work too: bound them so one call stays short. */
	groups_left = limit > SIZE_MAX / 16 ? SIZE_MAX : 16 * limit + 64;
	if (d->table[0] == NULL)
		return 0;
	for (;;) {
		/* A group is one bucket of the smaller table and the buckets of the larger one
		 * that split from it; its nodes have the scan keys in [c's group start,
		 * group_end). */
		int small = d->table[1] != NULL && d->size[1] < d->size[0] ? 1 : 0;
		int large = d->table[1] != NULL ? 1 - small : -1;
		unsigned bits = (unsigned)__builtin_ctzll(d->size[small]);
		uint64_t group_end = ((c >> (64 - bits)) + 1) << (64 - bits);
		size_t b = reverse_bits32((uint32_t)(c >> 32)) & (d->size[small] - 1);

		for (;;) {
			struct scan_pick best = {NULL, 0};

			scan_chain(st, scan, d->table[small][b], c, &best);
			for (size_t j = b; large >= 0 && j < d->size[large]; j += d->size[small])
				scan_chain(st, scan, d->table[large][j], c, &best);
			if (best.n == NULL)
				break;
			if (*count == limit) {
				*next_cursor = c;
				return 0;
			}
			if (scan->visit(scan, best.n) != 0) {
				*next_cursor = c;
				return -1;
			}
			(*count)++;
			if (best.key == UINT64_MAX)
				return 0;
			c = best.key + 1;
		}
		if (group_end == 0)
			return 0;
		c = group_end;
		if (--groups_left == 0) {
			*next_cursor = c;
			return 0;
		}
	}
}

static bool scan_wants_live(const struct dict_scan *scan, const struct hnode *n)
{
	return sess_live(sess_of(n), scan->now_ms);
}

static int scan_visit_session(const struct dict_scan *scan, const struct hnode *n)
{
	const struct sess *s = sess_of(n);

	return scan->on_session(scan->arg, s->bytes, s->id_len, s->exp.at_ms - scan->now_ms);
}

/*
 * store_list(st, ns, ns_len, cursor, limit, now_ms, visit, arg, next_cursor):
 * Visit at most ${limit} live sessions of the namespace from ${cursor} (0 starts a scan) and
 * set ${next_cursor} (0 when the scan is complete). A session present for the whole scan is
 * visited at least once, even when the table grows or shrinks between calls. ${count}
 * receives the number of sessions visited. Returns 0, or -1 when ${visit} returned -1.
 * A ${limit} of 0 is taken as 1.
 */
int store_list(struct store *st, const uint8_t *ns_name, size_t ns_len, uint64_t cursor,
               size_t limit, uint64_t now_ms, store_list_fn visit, void *arg, uint64_t *next_cursor,
               size_t *count)
{
	const struct ns *ns;
	struct dict_scan scan = {.hash = sess_hash,
	                         .wanted = scan_wants_live,
	                         .visit = scan_visit_session,
	                         .now_ms = now_ms,
	                         .on_session = visit,
	                         .arg = arg};

	assert(ns_len >= 1 && ns_len <= 64);
	*count = 0;
	*next_cursor = 0;
	ns = ns_find_const(st, ns_name, ns_len);
	if (ns == NULL)
		return 0;
	return dict_scan(st, &ns->sessions, &scan, cursor, limit, next_cursor, count);
}

/* Every named namespace holds a session (see ns_release_if_empty), so every one is shown. */
static bool scan_wants_any(const struct dict_scan *scan, const struct hnode *n)
{
	(void)scan;
	(void)n;
	return true;
}

static int scan_visit_namespace(const struct dict_scan *scan, const struct hnode *n)
{
	const struct ns *ns = ns_of(n);

	return scan->on_namespace(scan->arg, ns->name, ns->name_len, ns->sessions.used);
}

/*
 * store_namespaces(st, cursor, limit, visit, arg, next_cursor, count):
 * Visit at most ${limit} namespaces from ${cursor} (0 starts a scan), as store_list visits
 * sessions, with the same guarantees, and set ${next_cursor} (0 when the scan is complete)
 * and ${count}. Returns 0, or -1 when ${visit} returned -1. A ${limit} of 0 is taken as 1.
 */
int store_namespaces(const struct store *st, uint64_t cursor, size_t limit,
                     store_namespace_fn visit, void *arg, uint64_t *next_cursor, size_t *count)
{
	struct dict_scan scan = {.hash = ns_hash,
	                         .wanted = scan_wants_any,
	                         .visit = scan_visit_namespace,
	                         .on_namespace = visit,
	                         .arg = arg};

	return dict_scan(st, &st->names, &scan, cursor, limit, next_cursor, count);
}

/* Fill ${out} with the figures of ${ns}, as store_stats does for its name. */
static void ns_stats(const struct store *st, const struct ns *ns, struct store_stats *out)
{
	*out = (struct store_stats){
	    .sessions = ns->sessions.used,
	    .namespaces = 1,
	    .bytes = ns->bytes,
	    .payload = ns->payload,
	    .flashes = ns->flashes,
	    .unread = ns->unread,
	    .expired_total = st->expired_total,
	    .evicted_total = ns->evicted,
	};
}

static int scan_visit_namespace_stats(const struct dict_scan *scan, const struct hnode *n)
{
	const struct ns *ns = ns_of(n);
	struct store_stats in_ns;

	ns_stats(scan->st, ns, &in_ns);
	return scan->on_namespace_stats(scan->arg, ns->name, ns->name_len, &in_ns);
}

int store_namespaces_stats(const struct store *st, uint64_t cursor, size_t limit,
                           store_namespace_stats_fn visit, void *arg, uint64_t *next_cursor,
                           size_t *count)
{
	struct dict_scan scan = {.hash = ns_hash,
	                         .wanted = scan_wants_any,
	                         .visit = scan_visit_namespace_stats,
	                         .st = st,
	                         .on_namespace_stats = visit,
	                         .arg = arg};

	return dict_scan(st, &st->names, &scan, cursor, limit, next_cursor, count);
}

/*
 * store_clear(st, ns, ns_len, now_ms): remove every session of the namespace; returns how
 * many of them were live at ${now_ms} (expired ones not yet reclaimed go too, uncounted).
 *
 * Freeing a million sessions takes about half a second, too long for one turn of the
 * daemon's loop. So the namespace is only taken out of sight here: unnamed, out of the
 * counts, on the dropped list, from where store_expire frees its sessions a slice at a time.
 * Their memory stays in the store's bytes until then, so max_bytes still bounds what is
 * really allocated.
 */
size_t store_clear(struct store *st, const uint8_t *ns_name, size_t ns_len, uint64_t now_ms)
{
	size_t live;
	struct ns *ns = ns_find_counted(st, ns_name, ns_len, now_ms, &live);

	if (ns == NULL)
		return 0;
	ns_unname(st, ns);
	st->sessions -= ns->sessions.used;
	st->flashes -= ns->flashes;
	st->unread -= ns->unread;
	ns->unread = 0;
	st->payload -= ns->payload;
	ns->flashes = 0;
	ns->payload = 0;
	ns->drop_at = 0;
	ns->dropped_next = st->dropped;
	ns->dropped_prev = &st->dropped;
	if (st->dropped != NULL)
		st->dropped->dropped_prev = &ns->dropped_next;
	st->dropped = ns;
	/* A small namespace is gone before the reply, as if nothing were deferred. */
	ns_free_some(st, ns, CLEAR_INLINE_SESSIONS);
	return live;
}

/*
 * store_next_expiry(st):
 * The earliest instant at which store_expire may find work, or UINT64_MAX for none. May be
 * early (a coarse bound), never late.
 */
uint64_t store_bytes_peak(const struct store *st)
{
	return st->bytes_peak > st->bytes ? st->bytes_peak : st->bytes;
}

static void dict_settle(struct store *st, struct dict *d, dict_hash_fn hash)
{
	while (d->table[1] != NULL)
		dict_step(st, d, hash, 4096);
}

int store_table_fit(struct store *st, const uint8_t *ns_name, size_t ns_len, uint64_t sessions)
{
	struct ns *ns = ns_find_const(st, ns_name, ns_len);
	struct dict *d;
	size_t buckets;

	if (ns == NULL || ns->dropped_prev != NULL)
		return 0;
	d = &ns->sessions;
	dict_settle(st, d, sess_hash);
	/* What growth one session at a time leaves (dict_grow_buckets): the load's tables, and
	 * so STATS bytes and the memory limit, come out as they would without a presize. */
	buckets = pow2_at_least(sessions > d->used ? sessions : d->used);
	if (d->table[0] == NULL || buckets == d->size[0])
		return 0;
	if (dict_resize(st, d, buckets, 0) == -1)
		return -1;
	dict_settle(st, d, sess_hash);
	return 0;
}

void store_settle(struct store *st)
{
	dict_settle(st, &st->names, ns_hash);
	/* A CLEAR's dropped namespace is walked bucket by bucket as it is freed: left alone. */
	for (size_t i = 0; i < st->ns_slots_len; i++) {
		struct ns *ns = ns_at(st, i);

		if (ns != NULL && ns->dropped_prev == NULL)
			dict_settle(st, &ns->sessions, sess_hash);
	}
}

void store_bytes_peak_reset(struct store *st)
{
	st->bytes_peak = st->bytes;
}

uint64_t store_next_expiry(const struct store *st)
{
	/* Dropped sessions are work due now. */
	return st->dropped != NULL ? 0 : expiry_next(&st->wheel);
}

/*
 * store_stats(st, ns, ns_len, out):
 * Fill ${out} for one namespace, or for the whole store when ${ns} is NULL (namespaces then
 * counts the namespaces that hold sessions; expired_total is store-wide in both cases).
 * Sessions past their expiry that are not reclaimed yet are still counted here: the call
 * has no clock.
 */
void store_stats(const struct store *st, const uint8_t *ns_name, size_t ns_len,
                 struct store_stats *out)
{
	*out = (struct store_stats){.expired_total = st->expired_total};
	if (ns_name != NULL) {
		const struct ns *ns = ns_find_const(st, ns_name, ns_len);

		if (ns != NULL)
			ns_stats(st, ns, out);
		return;
	}
	out->sessions = st->sessions;
	out->namespaces = st->names.used;
	out->bytes = st->bytes;
	out->payload = st->payload;
	out->flashes = st->flashes;
	out->unread = st->unread;
	out->evicted_total = st->evicted_total;
}

/*
 * store_foreach(st, now_ms, on_session, on_type, on_msg, arg):
 * Visit every live session; after each session, its flash queues through ${on_type} and
 * ${on_msg} (which may be NULL). Changes nothing. Returns 0, or -1 when a callback returned -1.
 */
int store_foreach(const struct store *st, uint64_t now_ms, store_session_fn on_session,
                  store_flash_type_fn on_type, store_flash_msg_fn on_msg, void *arg)
{
	for (size_t i = 0; i < st->ns_slots_len; i++) {
		const struct ns *ns = ns_at(st, i);

		if (ns == NULL || ns->dropped_prev != NULL)
			continue;
		for (int t = 0; t < 2; t++) {
			for (size_t b = 0; b < ns->sessions.size[t]; b++) {
				for (const struct hnode *n = ns->sessions.table[t][b]; n != NULL;
				     n = n->next) {
					struct sess *s = sess_of(n);
					struct store_session_view view = {
					    .ns = ns->name,
					    .ns_len = ns->name_len,
					    .id = s->bytes,
					    .id_len = s->id_len,
					    .has_data = (s->flags & SESS_HAS_DATA) != 0,
					    .data =
					        (s->flags & SESS_HAS_DATA) ? sess_data(s) : NULL,
					    .data_len = s->data_len,
					    .expires_at_ms = s->exp.at_ms,
					    .flash_bytes = flash_bytes(s->flash),
					};

					if (!sess_live(s, now_ms))
						continue;
					if (on_session(arg, &view) != 0)
						return -1;
					if ((on_type != NULL || on_msg != NULL) &&
					    flash_foreach(s->flash, on_type, on_msg, arg) != 0)
						return -1;
				}
			}
		}
	}
	return 0;
}
