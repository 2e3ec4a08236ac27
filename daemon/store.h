#ifndef SESSD_STORE_H
#define SESSD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The session store: namespaces of sessions keyed by opaque ids, each with a data blob, an
 * absolute expiry instant (wall-clock milliseconds since the epoch) and flash queues.
 *
 * The store does no I/O and reads no clock: every call that depends on time takes ${now_ms}.
 * A session whose expiry instant is <= now_ms is absent for every operation from that instant
 * on (lazy expiry); store_expire reclaims them in bounded slices (active expiry), with work
 * proportional to the sessions that expire, not to the sessions that exist.
 *
 * Byte arguments are borrowed for the duration of the call; the store copies what it keeps.
 * Limits on lengths (ids 1..128, namespaces 1..64, flash types 1..64) are the caller's to
 * check; the store asserts them.
 */

struct store;

struct store_config {
	/* Bytes of store memory (sessions' data, ids, flashes and per-session overhead, each
	 * namespace's record and session table, the index of namespaces) above which writes
	 * that would grow the store fail with ENOMEM; 0 means no limit. */
	size_t max_bytes;
	/* The most bytes of flash types and messages one session may hold. */
	size_t max_flash_bytes;
};

/*
 * The session a hint found (store_hint's found), for the lookup of the same key that follows:
 * the store's, opaque to callers, who carry it in store_key. The store uses it only while no
 * session or namespace has been linked, unlinked, moved or freed since; else, and with link
 * NULL (not found in the two places a hint looks), the lookup is done in full.
 */
struct store_found {
	void *ns;
	void *link;
	uint64_t gen;
};

/* A namespace and id, both borrowed. */
struct store_key {
	const uint8_t *ns;
	size_t ns_len;
	const uint8_t *id;
	size_t id_len;
	/* With id_hashed, the id's hash as a store_hint for this very id gave it (its id_hash),
	 * which spares hashing the id again, and what it found (its found), which spares the
	 * lookup while the store is as it was; otherwise the store hashes it and looks it up. */
	uint64_t id_hash;
	bool id_hashed;
	struct store_found found;
};

/*
 * What store_hint_start found for one lookup, for the stages that follow it. Callers keep an
 * array of them for a batch, hence the visible body; its fields are the store's.
 */
struct store_hint {
	const void *buckets[2]; /* the bucket(s) the lookup reads; NULL: none */
	void *next[2];          /* the link to the node after a bucket's head, which is not it */
	const uint8_t *id;      /* the key's id, which must outlive the hint */
	size_t id_len;
	uint64_t id_hash;         /* the id's hash, for the store_key of the lookup that follows */
	struct store_found found; /* for that store_key too, once store_hint_next has run */
};

/*
 * store_new(cfg):
 * A new empty store; ${cfg} is copied. Returns NULL with errno ENOMEM.
 * Free with store_free.
 */
struct store *store_new(const struct store_config *cfg);

/*
 * store_set_max_flash_bytes(st, max_flash_bytes):
 * Change the per-session flash limit (0: none) for the pushes that follow; sessions already
 * over it keep their messages. Loading saved sessions runs without a limit, so that lowering
 * it between runs loses nothing.
 */
void store_set_max_flash_bytes(struct store *st, size_t max_flash_bytes);

/*
 * store_set_max_bytes(st, max_bytes):
 * Change the memory limit (store_config.max_bytes; 0: none) for the writes that follow. A
 * store already holding more keeps what it holds; growing writes are refused until it holds
 * less.
 */
void store_set_max_bytes(struct store *st, size_t max_bytes);

/*
 * store_mark_unread(st):
 * From now on, count each session a write creates (SET, FLASH_PUSH) as unread until a client
 * reads it back (store_get, store_load, store_touch, store_flash_pop: GET, LOAD, TOUCH, the
 * checks of SET_IF and TOUCH_IF, FLASH_POP; not store_expiry or store_sizes): store_stats'
 * unread. Sessions already in the store, those loaded from a
 * data directory among them, count as read: the mark is not saved, and a session whose
 * history is unknown is taken for one a visitor came back to.
 */
void store_mark_unread(struct store *st);

/*
 * Called by a full store that drops the unread session ${key} (borrowed for the call) of a
 * write refused for memory at ${now_ms} (see store_drop_unread), before it drops it. Returns
 * 0 to let the drop go ahead (the caller has recorded it, so that a restart does not bring the
 * session back), or -1 to keep the session: the write is then refused as without the policy.
 */
typedef int (*store_drop_fn)(void *arg, const struct store_key *key, uint64_t now_ms);

/*
 * store_drop_unread(st, on_drop, arg):
 * Opt in to dropping sessions never read back (SESS_UNREAD, see store_mark_unread) when a
 * write (store_set, store_flash_push, store_flash_push_existing) would pass max_bytes: the
 * write is refused only when the room it needs cannot be had from such sessions. Each drop is
 * of the unread session that expires first among a few sampled at random (for sessions of one
 * TTL, the oldest), from the namespace with the most unread among a few looked at (the one
 * written last, the one the last drop came from, and a few more; the next one, up to 4 more,
 * when the sample finds none there that may go), never the write's own
 * session nor one of the STORE_DROP_RECENT sessions created last (a login's new session before
 * its redirect reads it), nor a session read since it was made. A write drops at most what it
 * needs, and no more than make_room would free for it (one that needs more than that many
 * sessions of the average size free drops none and is refused); a new session whose
 * namespace's table must grow and cannot drops up to 64 more for the growth, and a new
 * namespace as many as the index's growth takes. Each drop is
 * announced through ${on_drop} (borrowed, with ${arg}, until store_free) and counted in
 * store_stats' evicted_total. Returns 0, or -1 with ENOMEM.
 */
#define STORE_DROP_RECENT 128u
int store_drop_unread(struct store *st, store_drop_fn on_drop, void *arg);

/* store_free(st): free the store and every session in it. store_free(NULL) does nothing. */
void store_free(struct store *st);

/*
 * store_hint_start(st, key, hint):
 * Start loading the hash bucket that a lookup of ${key} reads, changing no session, and fill
 * ${hint} for store_hint_follow, and with the id's hash for the lookup that follows. Returns
 * 0, or -1 when there is nothing to load (no id, or no such namespace). A lookup is a chain
 * of cache misses (bucket, then session); started for a batch of requests before any is
 * carried out, the misses overlap instead of queueing.
 */
int store_hint_start(struct store *st, const struct store_key *key, struct store_hint *hint);

/*
 * store_hint_follow(hint):
 * Start loading the session at the head of the hinted bucket(s). Call it once the bucket has
 * had time to arrive (after starting the rest of the batch), with the store unchanged since
 * store_hint_start.
 */
void store_hint_follow(const struct store_hint *hint);

/*
 * store_hint_data(hint, copies_data):
 * Once the session at the head of the hinted bucket(s) has had time to arrive (after
 * store_hint_follow for the rest of the batch): when it is the hinted one and ${copies_data}
 * (a GET copies it out), start loading its data (the first STORE_HINT_DATA_MAX bytes); when
 * it is another, start loading the next session in its chain, for store_hint_next. The store
 * must be unchanged since store_hint_start.
 */
#define STORE_HINT_DATA_MAX 4096
void store_hint_data(struct store_hint *hint, bool copies_data);

/*
 * store_hint_next(hint, copies_data):
 * After store_hint_data for the rest of the batch: when the session store_hint_data started
 * loading second in its chain is the hinted one, start loading its data if ${copies_data}.
 * Deeper sessions are not followed: at the tables' load, few lookups go past the second.
 * Then ${hint}'s found holds the session found first or second in its chain, if either was,
 * for the store_key of the lookup that follows.
 */
void store_hint_next(struct store_hint *hint, bool copies_data);

/*
 * store_get(st, key, now_ms, data, len):
 * Find the data of a live session that has data (a flash-only session has none).
 * Returns 0 with ${data}/${len} pointing at the store's copy, valid until the next call that
 * changes the store; or -1 with errno ENOENT.
 */
int store_get(struct store *st, const struct store_key *key, uint64_t now_ms, const void **data,
              size_t *len);

/*
 * store_load(st, key, now_ms, data, len, flashes):
 * store_get, and the number of flash messages the session holds (all types), for LOAD.
 * Returns as store_get, with *${flashes} set on success.
 */
int store_load(struct store *st, const struct store_key *key, uint64_t now_ms, const void **data,
               size_t *len, size_t *flashes);

/*
 * store_sizes(st, key, now_ms, data_len, flash_bytes):
 * The sizes of a live session's data (0 for one that holds flashes only) and of its flash
 * messages (flash_bytes), for guessing a reply's size before it is made; changes nothing
 * (an expired session found is left to the next lookup that may reclaim it). Returns 0, or
 * -1 with errno ENOENT (no live session).
 */
int store_sizes(const struct store *st, const struct store_key *key, uint64_t now_ms,
                size_t *data_len, size_t *flash_bytes);

/*
 * store_expiry(st, key, now_ms, expires_at_ms):
 * The expiry instant of a live session, one that holds flashes only included (COUNT and
 * LIST show it too), for TTL. Moves no expiry; like store_get, it may reclaim the expired
 * session it finds. Returns 0 with *${expires_at_ms} > ${now_ms}, or -1 with errno ENOENT.
 */
int store_expiry(struct store *st, const struct store_key *key, uint64_t now_ms,
                 uint64_t *expires_at_ms);

/*
 * store_set(st, key, data, len, expires_at_ms, now_ms):
 * Copy ${len} bytes of ${data} into the session, creating it if needed, and make it expire at
 * ${expires_at_ms}. Flash queues are kept. Returns 0, or -1 with errno ENOMEM (memory limit
 * or allocation failure; nothing changed).
 */
int store_set(struct store *st, const struct store_key *key, const void *data, size_t len,
              uint64_t expires_at_ms, uint64_t now_ms);

/*
 * store_touch(st, key, expires_at_ms, now_ms):
 * Make a live session expire at ${expires_at_ms}. Returns 0, or -1 with errno ENOENT.
 */
int store_touch(struct store *st, const struct store_key *key, uint64_t expires_at_ms,
                uint64_t now_ms);

/*
 * store_destroy(st, key, now_ms):
 * Remove a live session with its data and flashes. Returns 0, or -1 with errno ENOENT.
 */
int store_destroy(struct store *st, const struct store_key *key, uint64_t now_ms);

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
                     uint64_t expires_at_ms, uint64_t now_ms, size_t *queue_len);

/*
 * store_flash_push_existing(st, key, type, type_len, msg, msg_len, msg_is_bin, expires_at_ms,
 *                           now_ms, queue_len):
 * store_flash_push, but only to a live session that has data (one store_get finds): a
 * session that is missing, expired or holds flashes only is -1 with errno ENOENT, and
 * nothing is created or changed. Otherwise returns as store_flash_push.
 */
int store_flash_push_existing(struct store *st, const struct store_key *key, const uint8_t *type,
                              size_t type_len, const void *msg, size_t msg_len, bool msg_is_bin,
                              uint64_t expires_at_ms, uint64_t now_ms, size_t *queue_len);

/*
 * Called by store_flash_pop once per popped queue, before its messages.
 * Returns 0 to go on, -1 to abandon the pop.
 */
typedef int (*store_flash_type_fn)(void *arg, const uint8_t *type, size_t type_len, size_t count);
/* Called once per popped message, oldest first. Returns 0 to go on, -1 to abandon the pop. */
typedef int (*store_flash_msg_fn)(void *arg, const void *msg, size_t len, bool is_bin);

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
                    store_flash_type_fn on_type, store_flash_msg_fn on_msg, void *arg);

/*
 * store_count(st, ns, ns_len, now_ms): the live sessions in the namespace. Takes time in
 * proportion to the namespace while store_expiry_behind: see store_count_is_quick.
 */
size_t store_count(struct store *st, const uint8_t *ns, size_t ns_len, uint64_t now_ms);

/*
 * store_count_is_quick(st, ns, ns_len, now_ms):
 * Whether store_count and store_clear of the namespace at ${now_ms} take bounded time (about
 * a millisecond at most), after reclaiming a bounded slice of the sessions that are due. They
 * do unless a mass expiry is behind (store_expiry_behind) and the namespace is large, or its
 * table is (emptied by DESTROYs, not shrunk yet): then the only exact count is a walk of
 * every bucket and session in it, and a caller that must not stall
 * asks again once store_expiry_behind is false.
 */
bool store_count_is_quick(struct store *st, const uint8_t *ns, size_t ns_len, uint64_t now_ms);

/*
 * store_expiry_behind(st, now_ms):
 * Whether sessions due at ${now_ms} (or wheel work owed for them) wait for store_expire.
 * Sessions CLEAR dropped do not count: no namespace's count depends on them.
 */
bool store_expiry_behind(const struct store *st, uint64_t now_ms);

/* Called by store_list once per session; returns 0 to go on, -1 to stop the scan (error). */
typedef int (*store_list_fn)(void *arg, const uint8_t *id, size_t id_len, uint64_t ttl_ms);

/*
 * store_list(st, ns, ns_len, cursor, limit, now_ms, visit, arg, next_cursor):
 * Visit at most ${limit} live sessions of the namespace from ${cursor} (0 starts a scan) and
 * set ${next_cursor} (0 when the scan is complete). A session present for the whole scan is
 * visited at least once, even when the table grows or shrinks between calls. ${count}
 * receives the number of sessions visited. Returns 0, or -1 when ${visit} returned -1.
 */
int store_list(struct store *st, const uint8_t *ns, size_t ns_len, uint64_t cursor, size_t limit,
               uint64_t now_ms, store_list_fn visit, void *arg, uint64_t *next_cursor,
               size_t *count);

/* Called by store_namespaces once per namespace; returns 0 to go on, -1 to stop (error). */
typedef int (*store_namespace_fn)(void *arg, const uint8_t *name, size_t name_len,
                                  uint64_t sessions);

/*
 * store_namespaces(st, cursor, limit, visit, arg, next_cursor, count):
 * Visit at most ${limit} namespaces from ${cursor} (0 starts a scan), as store_list visits
 * sessions and with its guarantees (a namespace present for the whole scan is visited at
 * least once), and set ${next_cursor} (0 when the scan is complete) and ${count} (namespaces
 * visited). ${visit} gets each name, borrowed for the call, and its sessions as store_stats
 * counts them (expired ones not reclaimed yet included). A namespace exists from the write
 * that creates its first session (SET, FLASH_PUSH) until it holds none: its last session
 * destroyed, or expired and reclaimed, or a store_clear of it; an emptied namespace is not
 * kept. Changes nothing. Returns 0, or -1 when ${visit} returned -1. A ${limit} of 0 is
 * taken as 1.
 */
int store_namespaces(const struct store *st, uint64_t cursor, size_t limit,
                     store_namespace_fn visit, void *arg, uint64_t *next_cursor, size_t *count);

/*
 * store_clear(st, ns, ns_len, now_ms): remove every session of the namespace at once; returns
 * how many of them were live at ${now_ms} (expired ones not yet reclaimed go too, uncounted).
 * Their memory is freed later, a slice at a time, by store_expire; until then it still counts
 * in the store's bytes and against max_bytes.
 */
size_t store_clear(struct store *st, const uint8_t *ns, size_t ns_len, uint64_t now_ms);

/*
 * store_expire(st, now_ms, budget):
 * Free at most ${budget} sessions: first those store_clear removed, then those whose expiry is
 * <= now_ms. Returns how many it freed; a return equal to ${budget} means more may be waiting.
 */
size_t store_expire(struct store *st, uint64_t now_ms, size_t budget);

/*
 * store_expired_total(st): how many expired sessions the store has taken out so far, by
 * store_expire or on finding one expired when a request looked it up.
 */
uint64_t store_expired_total(const struct store *st);

/*
 * store_bytes_peak(st):
 * The most bytes (as store_stats counts them) the store has held since the last
 * store_bytes_peak_reset, or since it was made.
 */
uint64_t store_bytes_peak(const struct store *st);

/* store_bytes_peak_reset(st): start store_bytes_peak over from the present figure. */
void store_bytes_peak_reset(struct store *st);

/*
 * store_table_fit(st, ns, ns_len, sessions):
 * Resize ${ns}'s session table at once (no resize left in progress) to what growth gives for
 * ${sessions} sessions, or for those it holds when more: a load that knows how many sessions
 * are coming presizes with it, so that no lookup walks two tables and no node moves twice,
 * and fits with 0 once they are in. Nothing for a namespace that does not exist. Returns 0,
 * or -1 with ENOMEM (beyond the memory limit; the table is then as it was, settled).
 */
int store_table_fit(struct store *st, const uint8_t *ns, size_t ns_len, uint64_t sessions);

/*
 * store_turn_begins(st): a loop turn of the server begins. A table that resizes in a full store
 * has its buckets moved faster by the writes that do not fit, a bounded number a turn from the
 * first call on (without it, a bounded number a write); a write refused for memory moves its
 * bounded number whatever the turn's.
 */
void store_turn_begins(struct store *st);

/*
 * store_settle(st):
 * Finish every table resize in progress at once, freeing the buckets they move from (a
 * resize otherwise moves a couple of buckets per access). For loading saved sessions, before
 * a change refused for memory is judged: live, the lookups of later requests, refused writes'
 * included, finished such a resize, and its old buckets' memory went to later sessions.
 */
void store_settle(struct store *st);

/*
 * store_next_expiry(st):
 * The earliest instant at which store_expire may find work (0 while cleared sessions wait to
 * be freed), or UINT64_MAX for none. May be early (a coarse bound), never late.
 */
uint64_t store_next_expiry(const struct store *st);

struct store_stats {
	uint64_t sessions;
	uint64_t namespaces;
	/* Memory the store accounts: for one namespace, its sessions, its record and its table;
	 * for the whole store, every namespace's (cleared ones until freed) and the index of
	 * namespaces, which is what max_bytes bounds. */
	uint64_t bytes;
	/* The bytes a snapshot must keep of these sessions: each one's namespace name, id and
	 * data, and its flash messages' types and bytes (with the few bytes of framing each
	 * counts against the flash budget), whatever memory the allocator holds for them. */
	uint64_t payload;
	uint64_t flashes; /* messages queued */
	/* Sessions created by a write since store_mark_unread and not read back since: those of
	 * visitors who never came back with the cookie (a bot that sends none, a single visit). */
	uint64_t unread;
	uint64_t expired_total;
	/* Sessions dropped unread to make room (store_drop_unread), in the namespace since it was
	 * last made, or in the whole store. */
	uint64_t evicted_total;
};

/*
 * store_stats(st, ns, ns_len, out):
 * Fill ${out} for one namespace, or for the whole store when ${ns} is NULL (namespaces then
 * counts the namespaces that hold sessions; expired_total is store-wide in both cases).
 */
void store_stats(const struct store *st, const uint8_t *ns, size_t ns_len, struct store_stats *out);

/* Called by store_namespaces_stats once per namespace with its figures (borrowed for the call);
 * returns 0 to go on, -1 to stop (error). */
typedef int (*store_namespace_stats_fn)(void *arg, const uint8_t *name, size_t name_len,
                                        const struct store_stats *in_ns);

/*
 * store_namespaces_stats(st, cursor, limit, visit, arg, next_cursor, count):
 * store_namespaces, whose ${visit} gets each namespace's figures as store_stats fills them for
 * its name: without looking the name up again, which hashed it (the NO_MEMORY line's walk of
 * every namespace, a step at a time, wants each one's bytes).
 */
int store_namespaces_stats(const struct store *st, uint64_t cursor, size_t limit,
                           store_namespace_stats_fn visit, void *arg, uint64_t *next_cursor,
                           size_t *count);

/*
 * A whole session as store_foreach shows it, for snapshots. Pointers are valid only during
 * the callback.
 */
struct store_session_view {
	const uint8_t *ns;
	size_t ns_len;
	const uint8_t *id;
	size_t id_len;
	bool has_data;
	const void *data;
	size_t data_len;
	uint64_t expires_at_ms;
	/* Its flash messages' flash bytes (flash_bytes), what the flash budget counts. */
	size_t flash_bytes;
};

typedef int (*store_session_fn)(void *arg, const struct store_session_view *s);

/*
 * store_foreach(st, now_ms, on_session, on_type, on_msg, arg):
 * Visit every live session; after each session, its flash queues through ${on_type} and
 * ${on_msg} (which may be NULL). Changes nothing. Returns 0, or -1 when a callback returned -1.
 * The callbacks must not call other store functions: a lookup takes a step of the incremental
 * rehash, and the walk would then skip some sessions and show others twice.
 */
int store_foreach(const struct store *st, uint64_t now_ms, store_session_fn on_session,
                  store_flash_type_fn on_type, store_flash_msg_fn on_msg, void *arg);

#endif
