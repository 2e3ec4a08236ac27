#ifndef SESSD_PERSIST_H
#define SESSD_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>

#include "store.h"

/* The largest session data, or flash message, a data directory keeps: what a frame of the
 * largest --max-frame (CONFIG_MAX_MAX_FRAME) can carry. */
#define PERSIST_MAX_DATA_BYTES (1024u * 1024u * 1024u)

/*
 * Persistence: an append-only log of every acknowledged change plus snapshots, in one data
 * directory (DATA.md describes the files). The network layer never sees the files; dispatch
 * logs each change it made to the store, and the server commits once per loop turn before it
 * releases that turn's replies (group commit).
 *
 * The contract with dispatch and the server:
 * - Before a mutating request, dispatch asks persist_must_wait(); while it says true the
 *   request waits (changes nothing, answers nothing) and is handed again once it says false.
 *   Then dispatch asks persist_writable(); on -1 it answers IO_ERROR and changes nothing.
 * - After the store accepted a change, dispatch calls the matching persist_log_*; these only
 *   append to a memory buffer and fail only with ENOMEM.
 * - At the end of the loop turn the server calls persist_commit() and only then sends the
 *   replies written during the turn. If persist_commit() fails, the server closes the
 *   connections whose replies were waiting (their changes may or may not survive a crash:
 *   they were never acknowledged) and persist_writable() answers -1 until a retry succeeds.
 */

struct persist;

enum persist_fsync {
	PERSIST_FSYNC_ALWAYS,   /* fdatasync in persist_commit, before replies go out */
	PERSIST_FSYNC_EVERYSEC, /* fdatasync from a background thread about once a second */
	PERSIST_FSYNC_NO        /* write(2) only; the kernel decides */
};

struct persist_config {
	const char *data_dir;
	enum persist_fsync fsync;
	/* A file holding a 32-byte key for encryption at rest, or NULL for none. */
	const char *key_file;
	/* Write a snapshot when the log has grown past this many bytes (0: a default). */
	uint64_t snapshot_log_bytes;
	/* Write a snapshot once the log has been quiet for this long (grown by at most an eighth
	 * of its size), when it is much larger than a snapshot of the live sessions would be
	 * (0: never). */
	uint64_t snapshot_idle_ms;
};

/*
 * persist_open(cfg, st, now_ms):
 * Open (creating) the data directory, load the newest snapshot and replay the log into the
 * empty store ${st}, dropping sessions whose expiry is <= ${now_ms}. A torn last record is
 * cut off with a warning; a corrupt record elsewhere fails with a message naming the file and
 * offset. ${st} is borrowed until persist_free: persist_commit snapshots it. Returns a handle
 * to free with persist_free, or NULL (logged); errno ENOKEY then says that the configuration
 * cannot serve as it is, a fault which a restart repeats: cfg->key_file (missing, not a
 * regular file of 32 bytes, open to other users, not ours to read) or the data directory
 * (its parent missing, not a directory, another user's or open to other users' writes, not
 * ours to open or write: config_path_fault, or on a read-only file system).
 */
struct persist *persist_open(const struct persist_config *cfg, struct store *st, uint64_t now_ms);

/* persist_free(p): commit what is pending, stop the background work, close. NULL: nothing. */
void persist_free(struct persist *p);

/*
 * persist_undo(p): for a start that fails after persist_open: stop and close as persist_free
 * does, but write nothing more; when persist_open created the data directory, remove it again
 * with the files this start made in it (LOCK, the first log segment), so that the failed start
 * leaves nothing it made. A directory that was there before is left as it is. NULL: nothing.
 */
void persist_undo(struct persist *p);

/* persist_writable(p): 0 when changes can be logged, -1 (logged once) while the disk fails. */
int persist_writable(struct persist *p);

/*
 * persist_must_wait(p):
 * Whether a change must wait before it is made: a snapshot has just switched the log to a new
 * segment, and the file worker is still making the one before durable, which must be whole on
 * disk before anything is written after it. Reads need not wait. Usually a few milliseconds;
 * persist_wake_fd says when it may be over. NULL: false.
 */
bool persist_must_wait(struct persist *p);

/*
 * persist_wake_fd(p):
 * A descriptor, owned by ${p}, that becomes readable when the file worker has finished a sync
 * a change may wait for (persist_must_wait), made a segment for a snapshot or found a sync
 * failed, or a snapshot writer ends; the server watches it and then calls persist_woken.
 */
int persist_wake_fd(const struct persist *p);

/*
 * persist_woken(p): persist_wake_fd became readable: empty it and take what the file worker or
 * a snapshot writer has done (a sync failed, a segment retired or made, the writer ended).
 */
void persist_woken(struct persist *p);

/*
 * persist_settle(p, timeout_ms):
 * Wait up to ${timeout_ms} for the sync that changes wait for (persist_must_wait), if one is
 * under way, so that persist_must_wait says false. A stopping server calls it to carry out
 * the changes put off for it rather than turn them away. Returns true once nothing waits (NULL:
 * at once); false when the sync is still under way at the deadline (a hung disk).
 */
bool persist_settle(struct persist *p, int timeout_ms);

/*
 * persist_reserve(p, data_len):
 * Make room for the record of one change whose data (SET) or flash message (FLASH_PUSH) is
 * ${data_len} bytes, 0 for the others, before the change is made: the persist_log_* call that
 * follows it then needs no memory. A change the store has made must be logged; without this
 * it could be answered "made but not logged", kept in memory and lost at a restart. Returns
 * 0 (NULL: at once), or -1 with errno ENOMEM: make no change.
 */
int persist_reserve(struct persist *p, size_t data_len);

/*
 * persist_reserve_drop(p, data_len):
 * persist_reserve, with room for one DESTROY record more ahead of that change's: a full store
 * that drops a session for the change (store_drop_unread) logs the drop first. Returns as
 * persist_reserve; on -1, drop nothing.
 */
int persist_reserve_drop(struct persist *p, size_t data_len);

/*
 * Each records one change the store has accepted at ${now_ms}, the time the store judged it
 * by (which sessions were live): replay judges the record by that same time, so a change
 * accepted an instant before a session's expiry is replayed onto the live session. A time
 * read when the record is written may be past that expiry when work queued ahead of the
 * change (a pipeline) took longer. Returns 0, or -1 with errno ENOMEM.
 */
int persist_log_set(struct persist *p, const struct store_key *key, const void *data, size_t len,
                    uint64_t expires_at_ms, uint64_t now_ms);
int persist_log_touch(struct persist *p, const struct store_key *key, uint64_t expires_at_ms,
                      uint64_t now_ms);
int persist_log_destroy(struct persist *p, const struct store_key *key, uint64_t now_ms);
int persist_log_flash_push(struct persist *p, const struct store_key *key, const uint8_t *type,
                           size_t type_len, const void *msg, size_t msg_len, bool msg_is_bin,
                           uint64_t expires_at_ms, uint64_t now_ms);
/* ${type} NULL: every type was popped. */
int persist_log_flash_pop(struct persist *p, const struct store_key *key, const uint8_t *type,
                          size_t type_len, uint64_t now_ms);
int persist_log_clear(struct persist *p, const uint8_t *ns, size_t ns_len, uint64_t now_ms);

/* persist_pending(p): true when changes were logged since the last persist_commit. */
bool persist_pending(const struct persist *p);

/*
 * persist_commit(p):
 * Write what was logged and, under PERSIST_FSYNC_ALWAYS, fdatasync it; start a snapshot when
 * the log has passed its threshold. Returns 0 when the changes are as durable as the policy
 * promises, or -1 (logged) when they are not.
 */
int persist_commit(struct persist *p);

/*
 * persist_note_expired(p, now_ms):
 * Expiry took sessions whose instant was <= ${now_ms} as gone. The log keeps that instant (a
 * CLOCK record, before the next change logged, written with it or by persist_tick), so that
 * replay drops those sessions at that point too: after the wall clock steps back they would
 * otherwise come back to life at the next start. A NULL ${p} is a no-op.
 */
void persist_note_expired(struct persist *p, uint64_t now_ms);

/*
 * persist_tick(p, st):
 * Called about once a second by the server: retries a failed disk, gives back the room a burst
 * of large writes grew the batch to, and starts a snapshot when the log has grown enough, or
 * when it has been quiet for snapshot_idle_ms and holds mostly sessions that are gone (the
 * snapshot is written without stopping service).
 */
void persist_tick(struct persist *p, struct store *st);

/*
 * persist_check(data_dir, key_file, repair):
 * For `sessd --check-data DIR [--repair]`: read the snapshot and log, print what is found to
 * stdout; with ${repair}, rewrite a damaged snapshot with the sessions before its damage and
 * cut the log to its valid prefix. Returns 0 when the data is sound (or was repaired), 1 when
 * damage remains, -1 when the files cannot be read.
 */
int persist_check(const char *data_dir, const char *key_file, bool repair);

/*
 * persist_backup(data_dir, dest, key_file, stop):
 * For `sessd --backup DATA_DIR DEST_DIR`: copy the files of the state ${data_dir} holds at one
 * instant (a sessd may be writing to it) into ${dest}, new or empty and not inside
 * ${data_dir}, sync the copy and check it. ${key_file} (may be NULL) is needed only to check
 * the contents of encrypted data. Prints what it copied and the check to stdout. Returns 0
 * when the copy is whole and sound, 1 when the data directory or the copy is damaged, -1
 * when it was refused or failed, or stopped: *${stop} (a signal handler's flag, borrowed)
 * turned non-zero; after 1 or -1, nothing it made in ${dest} is left.
 */
int persist_backup(const char *data_dir, const char *dest, const char *key_file,
                   const volatile sig_atomic_t *stop);

#endif
