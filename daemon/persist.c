/*
 * Persistence: an append-only log of every acknowledged change, in numbered segments, and
 * snapshots written by a forked child from the copy-on-write image of the store. DATA.md
 * describes the files byte by byte; this comment says how the pieces fit.
 *
 * - Changes are encoded into an in-memory batch by persist_log_*; persist_commit writes the
 *   batch with one pwrite at the end of the current segment (and one fdatasync under
 *   PERSIST_FSYNC_ALWAYS), so every client served in a loop turn shares one disk flush.
 * - Each record carries the wall-clock time it was logged. Replay hands that time to the
 *   store as ${now_ms}, so a session that had expired when a later record touched its key is
 *   treated on replay exactly as it was live (a push to an expired session starts a fresh one
 *   and does not resurrect the old data).
 * - Snapshot N holds the state at the start of segment N. Starting one switches the log to a
 *   new segment N and forks; the child writes snap.N through a temporary file, fsyncs,
 *   renames and fsyncs the directory; when the parent reaps a successful child it deletes the
 *   segments and snapshots below N. Startup loads the newest snapshot S and replays segments
 *   S, S+1, ... in order.
 * - The event loop does not wait for the disk on a snapshot's account (a loop turn held for
 *   an unlink of a 64 MB segment, a directory fsync or an fdatasync of the old segment is
 *   every client's latency), but for the rare cut of a batch a file-size limit refused
 *   (fsize_drop_batch). The file worker thread (file_worker_main) syncs N-1 as far as it
 *   goes, then creates segment N with its header and fdatasyncs it and the directory, while
 *   the loop goes on appending to N-1; only once N is durable does the loop switch to it
 *   (snapshot_switch) and fork, so snap.N still never exists before log.N's header is
 *   durable. Nothing may reach N before N-1 is whole on disk: the worker syncs N-1 once more
 *   (the last moments' records; under --fsync always every commit did) and closes it, and
 *   until it has, changes wait (persist_must_wait: dispatch puts them off, unapplied and
 *   unanswered, and hands them again when the worker wakes the loop through wake_fd) while
 *   reads go on. The worker then deletes the files a durable snapshot covers.
 * - A write that fails (ENOSPC, EIO, EFBIG) keeps its batch in memory; writes are refused
 *   until persist_tick rewrites that batch at the same offset. EFBIG (a file-size limit
 *   below --snapshot-log-bytes) also starts a snapshot when a snapshot of the live sessions
 *   fits under the limit (snapshot_fits): the batch is cut off the segment and dropped (the store
 * holds it, and the snapshot saves it, as after a failed fsync below), and writes resume in the new
 *   segment once the snapshot is durable. Rewriting the same batch would fail forever, since
 *   the segment only grows. A failed fsync is worse: the
 *   kernel may already have dropped the dirty pages and a second fsync can report success
 *   for data that never reached the disk, so the segment's unsynced tail cannot be trusted.
 *   We then stop writes and take a snapshot (which switches to a new segment); once the
 *   snapshot is durable it covers everything the doubtful segment held, and writes resume.
 * - A snapshot also starts when writes (nearly) stop (idle_snapshot_due): after a burst of sessions
 *   that have since expired, the log would otherwise keep them on disk, and replay them at
 *   every start, until the next burst takes it past the size threshold.
 */
#include "persist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "heapahead.h"
#include "ids.h"
#include "idset.h"
#include "log.h"
#include "secretfile.h"

/* Version 2 added the CLOCK record; version 1 files (without it) are read alike. */
#define FILE_VERSION        2u
#define FILE_VERSION_OLDEST 1u
#define FILE_HEADER_BYTES   52u
#define FILE_FLAG_ENCRYPTED 1u
#define KEY_CHECK_BYTES     16u
#define REC_HEADER_BYTES    12u
/* The largest record body: the data or message of a frame of the largest --max-frame
 * (PERSIST_MAX_DATA_BYTES), with its key, its fields and its seal. A length is trusted only
 * once its header's checksum holds, and nothing is reserved for it past the file's end. At
 * 256 MiB, under a --max-frame that allows 1 GiB, a larger session was applied but not logged
 * (its SET answered IO_ERROR), and every snapshot failed on it while it lived. */
#define REC_MAX_BODY               (PERSIST_MAX_DATA_BYTES + 64u * 1024u)
#define NONCE_BYTES                crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES                  crypto_aead_xchacha20poly1305_ietf_ABYTES
#define KEY_BYTES                  crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define DEFAULT_SNAPSHOT_LOG_BYTES (64u * 1024u * 1024u)
/* After a failed snapshot, wait at most this long before trying again (unless the disk
 * failed); snapshot_retry_due says when it comes sooner. */
#define SNAPSHOT_RETRY_MS 30000u
/* A sooner retry waits at least this after the first failure in a row, twice as long after
 * each further one, and never less than the failed attempt took: a snapshot of a big store
 * that fails again costs a fork and its writing. One that failed for want of space is tried
 * again only once the volume has room for it, so it may come much sooner than one that failed
 * otherwise (EIO, permissions, the writer killed), whose cause nothing here can see go. */
#define SNAPSHOT_RETRY_ROOM_FIRST_MS  100u
#define SNAPSHOT_RETRY_GROWN_FIRST_MS 5000u
/* A snapshot for a failed sync starts at once at most this often; sooner, the next tick starts
 * it (the pace it always had), so a disk whose every sync fails does not fork one after the
 * other. */
#define SYNC_SNAPSHOT_SPACING_MS 1000u
/* How long a stop waits for a snapshot being written before it stops the writer: with the
 * drain (about 2 s) and the last fdatasync, some 5 s before the store is freed (the unit gives a
 * stop 90 s). */
#define SNAPSHOT_STOP_WAIT_MS 3000u
/* Room asked of the volume for a snapshot beyond its bound: the new segment's first block and
 * what clients write while it is written. */
#define SNAPSHOT_ROOM_SLACK (64u * 1024u)
/* While the log has no room left beside a snapshot's, the volume is looked at this often. */
#define LOG_ROOM_RECHECK_MS  100u
#define SNAPSHOT_WRITE_CHUNK (1u << 20)
/* A file being read (file_scan) lets the mapped pages behind it go this many at a time. */
#define SCAN_RELEASE_BYTES (16u << 20)
/* A quiet log and the snapshot before it smaller than this are left alone; a quiet log grows
 * by at most 1/QUIET_GROWTH_SHARE of their size in --snapshot-idle (see idle_snapshot_due). */
#define IDLE_SNAPSHOT_MIN_LOG_BYTES (1u << 20)
#define QUIET_GROWTH_SHARE          8u
/* The batch and the record scratch keep this much room from one tick to the next; past it, a
 * turn of large writes (up to --max-client-memory of SETs) would leave its room held for good,
 * counted nowhere. Given back once a second, a busy log regrows it once a second at most. */
#define ROOM_KEEP_BYTES (1u << 20)
/* What a snapshot record takes on disk beyond the payload the store counts (store_stats):
 * for a session, framing, type, time, the namespace's and the id's lengths, the data flag,
 * expiry and the data's length (snap_on_session); for a flash message, framing, type, time,
 * the type's length, the binary flag and the length (snap_on_msg). An encrypted record adds
 * NONCE_BYTES + TAG_BYTES. The END record is all overhead (snap_write). */
#define SNAP_SESSION_OVERHEAD (REC_HEADER_BYTES + 9u + 1u + 1u + 1u + 8u + 4u)
#define SNAP_MESSAGE_OVERHEAD (REC_HEADER_BYTES + 9u + 1u + 1u + 4u)
#define SNAP_END_BYTES        (REC_HEADER_BYTES + 9u + 8u)
#define NAME_BYTES            64
/* An operator-given path as --check-data and --backup print it: log_escape's \xNN for each
 * byte of PATH_MAX at most. */
#define SHOWN_PATH_BYTES (4 * PATH_MAX + 1)
/* The unit a power loss keeps or loses a write in (a 4 KiB page is eight of them). */
#define LOST_SECTOR_BYTES 512u
/* Every file sessd makes in the data directory: only the user it runs as reads them. */
#define DATA_FILE_MODE 0600

static const char LOG_MAGIC[8] = {'S', 'E', 'S', 'S', 'D', 'L', 'O', 'G'};
static const char SNAP_MAGIC[8] = {'S', 'E', 'S', 'S', 'D', 'S', 'N', 'P'};

enum rec_type {
	REC_SET = 1,
	REC_TOUCH = 2,
	REC_DESTROY = 3,
	REC_FLASH_PUSH = 4,
	REC_FLASH_POP = 5,
	REC_CLEAR = 6,
	REC_CLOCK = 7,
	REC_SNAP_SESSION = 16,
	REC_SNAP_FLASH = 17,
	REC_SNAP_END = 18,
};

enum persist_state {
	STATE_OK,
	STATE_WRITE_FAILED, /* the batch in buf failed to write; retry rewrites it */
	/* A snapshot must cover the segment sync_failed_seq: an fsync on it failed, or the
	 * batch a file-size limit refused was dropped from it (fsize_limited). */
	STATE_SYNC_FAILED
};

struct persist {
	char *dir;
	int dir_fd;
	int lock_fd;
	enum persist_fsync fsync;
	uint64_t snapshot_log_bytes;
	uint64_t snapshot_idle_ms; /* 0: no idle snapshots */
	uint8_t *key;              /* sodium_malloc'd, or NULL */
	/* Run as root in a directory another user owns (the service's, most likely): the files
	 * made get that owner (own_like_dir), or the service could not open them afterwards. */
	bool as_dir_owner;
	/* persist_open created the data directory, so a start that fails removes it again
	 * (persist_undo). */
	bool made_dir;

	/* The segment being appended to. fd is changed only with sync_mutex held, because the
	 * everysec thread reads it. */
	int fd;
	uint64_t seq;
	uint64_t file_off;  /* where buf is written */
	uint64_t log_bytes; /* bytes in segments not yet covered by a snapshot */
	/* Bytes written to the log since it was opened, and the window idle_snapshot_due
	 * measures the log's growth over: it started at quiet_since_ms (CLOCK_MONOTONIC, so that
	 * a step of the wall clock cannot make a busy log look quiet) with quiet_since_appended. */
	uint64_t appended;
	uint64_t quiet_since_ms;
	uint64_t quiet_since_appended;

	struct buf batch;  /* encoded records not yet written */
	size_t failed_len; /* the prefix of batch that failed to write */
	struct buf plain;  /* scratch for one record before encryption */
	enum persist_state state;
	uint64_t sync_failed_seq; /* the segment whose fsync failed */
	/* The last write failed with EFBIG (STATE_WRITE_FAILED), or STATE_SYNC_FAILED is the
	 * file-size limit's; fsize_said: the limit was named in the log, once per run. */
	bool fsize_limited;
	bool fsize_said;
	bool fsize_nofit_said; /* ... and that a snapshot would not fit under it, once */

	bool unacked; /* changes logged since the last persist_commit */
	/* The last instant at which expiry took sessions as gone; clock_unlogged: no CLOCK
	 * record holds it yet (see persist_note_expired). */
	uint64_t clock_ms;
	bool clock_unlogged;
	/* The segment written to is an older sessd's (format 1), appended to after an upgrade:
	 * no CLOCK records go there, so that the older sessd can still read it after a
	 * rollback. The next segment, begun by a snapshot, is the current format. */
	bool old_segment;

	pid_t child;
	bool child_stopped; /* killed by snapshot_stop: its end is no failure */
	uint64_t child_seq;
	uint64_t child_started_ms; /* CLOCK_MONOTONIC, for the time a snapshot took */
	/* Shared with the child, which fills it in as it exits. */
	struct snapshot_report *child_report;
	/* The store persist_open loaded, borrowed until persist_free: persist_commit starts
	 * snapshots of it. */
	struct store *st;
	uint64_t switch_log_bytes; /* log_bytes below the segment the child snapshots */
	/* A failed snapshot waits for its retry (snapshot_retry_due): until next_snapshot_ms
	 * (monotonic, 0: none waits) at the latest; sooner, from retry_after_ms on (monotonic),
	 * when it failed for want of space (retry_for_room) and the volume has room for one, or
	 * otherwise when log_bytes has reached retry_log_bytes. */
	uint64_t next_snapshot_ms;
	uint64_t retry_after_ms;
	uint64_t retry_log_bytes;
	bool retry_for_room;
	unsigned snapshot_failures; /* in a row, since the last snapshot written */
	/* When sync_failed_snapshot_now last started one (CLOCK_MONOTONIC, 0: never). */
	uint64_t sync_snapshot_ms;
	bool closing; /* persist_free or persist_undo runs: no snapshot starts */
	/* The room a snapshot needs, kept from the log (log_has_room): appended plus the batch
	 * may reach room_until before the volume is looked at again; room_refused: it had no
	 * room at room_checked_ms (CLOCK_MONOTONIC), and changes are refused. */
	uint64_t room_until;
	uint64_t room_checked_ms;
	bool room_refused;
	/* The refusal was said (at room_said_ms, CLOCK_MONOTONIC), so its end is said too; at
	 * most one a minute, as a volume that stays short refuses once per snapshot. */
	bool room_refusal_said;
	uint64_t room_said_ms;
	/* The size of the last snapshot loaded or written (0: none), for snapshot_estimate. */
	uint64_t snap_bytes;

	/* The file worker (file_worker_main). From prep_seq to remove_below: its jobs and their
	 * results, under sync_mutex (snapshot_wanted is the loop's own). The worker reads fd
	 * without closing it: only the worker closes a segment the loop has switched away from
	 * (retire_fd). */
	pthread_t sync_thread;
	bool sync_thread_running;
	pthread_mutex_t sync_mutex;
	pthread_cond_t sync_cond;
	bool sync_stop;
	atomic_bool sync_dirty;
	atomic_int sync_errno;
	uint64_t prep_seq;      /* the segment the worker is asked to create, 0: none */
	int prep_fd;            /* it, durable with its header, once prep_ready; -1: failed */
	int prep_err;           /* errno of that failure */
	atomic_bool prep_ready; /* read without the mutex on every commit */
	int retire_fd;          /* a segment switched away from: fdatasync and close, -1: none */
	atomic_bool retired; /* the worker synced and closed it; retired_err: errno of the sync */
	int retired_err;
	uint64_t remove_below; /* delete segments and snapshots below this seq, 0: none */
	bool snapshot_wanted;  /* snapshot_start asked for prep_seq and waits for it */
	/* The worker writes to this eventfd once it has retired a segment, made one for a
	 * snapshot or found a sync failed, and a snapshot writer as it exits, so that the loop
	 * (persist_wake_fd) takes the result without waiting for the next tick. */
	int wake_fd;
	/* The loop's own: segment retire_seq is in the worker's hands and its result not yet
	 * taken (switch_sync_check); switch_waits: nothing may be written to the segment after it
	 * until then (snapshot_switch), so changes wait (persist_must_wait). */
	bool retiring;
	bool switch_waits;
	uint64_t retire_seq;
};

/*
 * What the snapshot child tells its parent, in memory they share. The child sets exiting last,
 * as it exits: persist_commit looks at it instead of calling waitpid on every batch while a
 * snapshot is being written. The rest is read only once the child has been reaped.
 */
struct snapshot_report {
	atomic_bool exiting;
	uint64_t sessions;
	uint64_t records;
	uint64_t bytes;
	int err;             /* errno of the failure, 0 when it succeeded */
	const char *stage;   /* what failed (a string literal, the same in both processes) */
	uint64_t exiting_ms; /* CLOCK_MONOTONIC: the parent may reap it a tick later */
};

/* One decoded record; pointers point into the record's plaintext. */
struct record {
	uint8_t type;
	uint64_t time_ms;
	struct store_key key;
	const uint8_t *flash_type;
	size_t flash_type_len;
	const uint8_t *data;
	size_t data_len;
	uint64_t expires_at_ms;
	bool has_data;
	bool is_bin;
	uint64_t count;
	uint64_t off; /* where the record starts in its file (record_open) */
};

/*
 * One line of the daemon's log (log.c: timestamp and level, so alerting on levels sees disk
 * trouble), prefixed "persist:" so the file layer's messages are told apart.
 */
static void persist_say(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void persist_say(enum log_level level, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_msg(level, "persist: %s", text);
}

static uint64_t clock_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

/*
 * CRC32C (Castagnoli): it catches torn and flipped bytes, which is all the log needs from a
 * checksum, at memory speed (SSE4.2 has an instruction for it). Protection against someone
 * who can edit the files is the job of the AEAD when a key is configured, not of a checksum.
 */
static const uint32_t crc32c_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu, 0x26a1e7e8u,
    0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu, 0x4d43cfd0u, 0xbf284cd3u,
    0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu, 0xf165b798u, 0x030e349bu, 0xd7c45070u,
    0x25afd373u, 0x36ff2087u, 0xc494a384u, 0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u,
    0x5d1d08bfu, 0xaf768bbcu, 0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u,
    0x33ed7d2au, 0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
    0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau, 0x30e349b1u,
    0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu, 0x1642ae59u, 0xe4292d5au,
    0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au, 0x7da08661u, 0x8fcb0562u, 0x9c9bf696u,
    0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu, 0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u,
    0x67dafa54u, 0x95b17957u, 0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu,
    0xfe53516fu, 0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
    0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu, 0x3ac7f2ebu,
    0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u, 0x61c69362u, 0x93ad1061u,
    0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu, 0x4767748au, 0xb50cf789u, 0xeb1fcbadu,
    0x197448aeu, 0x0a24bb5au, 0xf84f3859u, 0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u,
    0x7198540du, 0x83f3d70eu, 0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u,
    0xa55230e6u, 0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
    0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu, 0x456cac67u,
    0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u, 0xe9141340u, 0x1b7f9043u,
    0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu, 0x92a8fc17u, 0x60c37f14u, 0x73938ce0u,
    0x81f80fe3u, 0x55326b08u, 0xa759e80bu, 0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu,
    0xf94ad42fu, 0x0b21572cu, 0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u,
    0x502036a5u, 0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
    0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u, 0x0e330a81u,
    0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du, 0x758fe5d6u, 0x87e466d5u,
    0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u, 0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u,
    0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu, 0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u,
    0x0417b1dbu, 0xf67c32d8u, 0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu,
    0x5a048dffu, 0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u, 0x590ab964u,
    0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u, 0x7fab5e8cu, 0x8dc0dd8fu,
    0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu, 0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u,
    0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u, 0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u,
    0x4f48173du, 0xbd23943eu, 0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au,
    0xc69f7b69u, 0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
    0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
                                                            size_t n)
{
	uint64_t c = crc;

	while (n >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		n -= 8;
	}
	while (n > 0) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		n--;
	}
	return (uint32_t)c;
}
#endif

/*
 * The CRC32C of bytes whose CRC32C so far is ${crc} (0 for none) followed by the ${n} bytes
 * at ${data}: a body too large for one buffer is checked piece by piece (--backup).
 */
static uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n)
{
	const uint8_t *p = data;

	crc ^= 0xffffffffu;
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_hw(crc, p, n) ^ 0xffffffffu;
#endif
	while (n-- > 0)
		crc = crc32c_table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
	return crc ^ 0xffffffffu;
}

static uint32_t crc32c(const void *data, size_t n)
{
	return crc32c_extend(0, data, n);
}

static uint8_t *put_u8(uint8_t *w, uint8_t v)
{
	*w = v;
	return w + 1;
}

static uint8_t *put_u32(uint8_t *w, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		w[i] = (uint8_t)(v >> (8 * i));
	return w + 4;
}

static uint8_t *put_u64(uint8_t *w, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		w[i] = (uint8_t)(v >> (8 * i));
	return w + 8;
}

static uint8_t *put_bytes(uint8_t *w, const void *src, size_t n)
{
	if (n > 0)
		memcpy(w, src, n);
	return w + n;
}

static uint32_t get_u32(const uint8_t *r)
{
	return (uint32_t)r[0] | (uint32_t)r[1] << 8 | (uint32_t)r[2] << 16 | (uint32_t)r[3] << 24;
}

static uint64_t get_u64(const uint8_t *r)
{
	return (uint64_t)get_u32(r) | (uint64_t)get_u32(r + 4) << 32;
}

/* A bounds-checked reader over one record's plaintext: once bad, it stays bad. */
struct cursor {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static const uint8_t *cursor_take(struct cursor *c, size_t n)
{
	const uint8_t *r;

	if (c->bad || n > c->left) {
		c->bad = true;
		return NULL;
	}
	r = c->p;
	c->p += n;
	c->left -= n;
	return r;
}

static uint8_t cursor_u8(struct cursor *c)
{
	const uint8_t *r = cursor_take(c, 1);

	return r ? r[0] : 0;
}

static uint32_t cursor_u32(struct cursor *c)
{
	const uint8_t *r = cursor_take(c, 4);

	return r ? get_u32(r) : 0;
}

static uint64_t cursor_u64(struct cursor *c)
{
	const uint8_t *r = cursor_take(c, 8);

	return r ? get_u64(r) : 0;
}

/* A length-prefixed (u8) byte string of min..max bytes. */
static const uint8_t *cursor_str8(struct cursor *c, size_t min, size_t max, size_t *len)
{
	size_t n = cursor_u8(c);

	if (n < min || n > max)
		c->bad = true;
	*len = n;
	return n > 0 ? cursor_take(c, n) : (c->bad ? NULL : c->p);
}

static void cursor_key(struct cursor *c, struct store_key *key)
{
	key->ns = cursor_str8(c, 1, 64, &key->ns_len);
	key->id = cursor_str8(c, 1, 128, &key->id_len);
}

/*
 * record_decode(p, n, rec):
 * Decode one record's plaintext into ${rec} (pointing into ${p}). Every length is checked
 * against the bytes present and the record must be used up exactly. Returns 0 or -1.
 */
static int record_decode(const uint8_t *p, size_t n, struct record *rec)
{
	struct cursor c = {p, n, false};
	uint8_t b;

	memset(rec, 0, sizeof(*rec));
	rec->type = cursor_u8(&c);
	rec->time_ms = cursor_u64(&c);
	switch (rec->type) {
	case REC_SET:
		cursor_key(&c, &rec->key);
		rec->expires_at_ms = cursor_u64(&c);
		rec->data_len = cursor_u32(&c);
		rec->data = cursor_take(&c, rec->data_len);
		rec->has_data = true;
		break;
	case REC_TOUCH:
		cursor_key(&c, &rec->key);
		rec->expires_at_ms = cursor_u64(&c);
		break;
	case REC_DESTROY:
		cursor_key(&c, &rec->key);
		break;
	case REC_FLASH_PUSH:
		cursor_key(&c, &rec->key);
		rec->flash_type = cursor_str8(&c, 1, 64, &rec->flash_type_len);
		b = cursor_u8(&c);
		if (b > 1)
			c.bad = true;
		rec->is_bin = b == 1;
		rec->expires_at_ms = cursor_u64(&c);
		rec->data_len = cursor_u32(&c);
		rec->data = cursor_take(&c, rec->data_len);
		break;
	case REC_FLASH_POP:
		cursor_key(&c, &rec->key);
		rec->flash_type = cursor_str8(&c, 0, 64, &rec->flash_type_len);
		if (rec->flash_type_len == 0)
			rec->flash_type = NULL;
		break;
	case REC_CLEAR:
		rec->key.ns = cursor_str8(&c, 1, 64, &rec->key.ns_len);
		break;
	case REC_CLOCK:
		break;
	case REC_SNAP_SESSION:
		cursor_key(&c, &rec->key);
		b = cursor_u8(&c);
		if (b > 1)
			c.bad = true;
		rec->has_data = b == 1;
		rec->expires_at_ms = cursor_u64(&c);
		rec->data_len = cursor_u32(&c);
		rec->data = cursor_take(&c, rec->data_len);
		if (!rec->has_data && rec->data_len != 0)
			c.bad = true;
		break;
	case REC_SNAP_FLASH:
		rec->flash_type = cursor_str8(&c, 1, 64, &rec->flash_type_len);
		b = cursor_u8(&c);
		if (b > 1)
			c.bad = true;
		rec->is_bin = b == 1;
		rec->data_len = cursor_u32(&c);
		rec->data = cursor_take(&c, rec->data_len);
		break;
	case REC_SNAP_END:
		rec->count = cursor_u64(&c);
		break;
	default:
		return -1;
	}
	if (rec->data == NULL && rec->data_len == 0)
		rec->data = p; /* a valid pointer for zero-length data */
	return c.bad || c.left != 0 ? -1 : 0;
}

/*
 * record_emit(out, key, seq, off, plain, plain_len):
 * Append one framed record to ${out}: [len][crc body][crc header] then the body, which is
 * the plaintext or, with a ${key}, nonce + ciphertext + tag with (seq, offset) as additional
 * data so a record cannot be moved to another place or file. ${off} is the record's offset
 * in its file. Returns 0, or -1 with errno ENOMEM or EMSGSIZE.
 */
static int record_emit(struct buf *out, const uint8_t *key, uint64_t seq, uint64_t off,
                       const uint8_t *plain, size_t plain_len)
{
	size_t body = key ? NONCE_BYTES + plain_len + TAG_BYTES : plain_len;
	uint8_t *h, *b;

	if (body > REC_MAX_BODY) {
		errno = EMSGSIZE;
		return -1;
	}
	if (buf_reserve(out, REC_HEADER_BYTES + body) == -1)
		return -1;
	h = out->data + out->len;
	b = h + REC_HEADER_BYTES;
	if (key) {
		uint8_t ad[16];

		put_u64(put_u64(ad, seq), off);
		randombytes_buf(b, NONCE_BYTES);
		crypto_aead_xchacha20poly1305_ietf_encrypt(b + NONCE_BYTES, NULL, plain, plain_len,
		                                           ad, sizeof(ad), NULL, b, key);
	} else {
		put_bytes(b, plain, plain_len);
	}
	put_u32(h, (uint32_t)body);
	put_u32(h + 4, crc32c(b, body));
	put_u32(h + 8, crc32c(h, 8));
	out->len += REC_HEADER_BYTES + body;
	return 0;
}

static void key_check_value(const uint8_t *key, uint8_t out[KEY_CHECK_BYTES])
{
	static const char label[] = "sessd data key check v1";

	crypto_generichash(out, KEY_CHECK_BYTES, (const uint8_t *)label, sizeof(label) - 1, key,
	                   KEY_BYTES);
}

static void header_build(uint8_t h[FILE_HEADER_BYTES], const char magic[8], uint64_t seq,
                         uint64_t created_ms, const uint8_t *key)
{
	uint8_t *w = put_bytes(h, magic, 8);

	w = put_u32(w, FILE_VERSION);
	w = put_u32(w, key ? FILE_FLAG_ENCRYPTED : 0);
	w = put_u64(w, seq);
	w = put_u64(w, created_ms);
	if (key)
		key_check_value(key, w);
	else
		memset(w, 0, KEY_CHECK_BYTES);
	w += KEY_CHECK_BYTES;
	put_u32(w, crc32c(h, FILE_HEADER_BYTES - 4));
}

/* What header_check says of a file that another --key-file (or none) would read: the
 * operator must change the command line, so each says how, and a start exits 2 (ENOKEY) for
 * them, which the shipped unit does not restart (restarts would fail the same way). */
static const char why_no_key[] =
    "file is encrypted and no --key-file was given: give the --key-file it was written with";
static const char why_key_given[] =
    "file is not encrypted but a --key-file was given: drop --key-file (a data directory is "
    "encrypted only from its start, see sessd(8), --key-file)";
static const char why_wrong_key[] =
    "the key does not match the one the file was written with: give the --key-file it was "
    "written with (a data directory keeps its key for life, see sessd(8), --key-file)";

/* Whether ${why}, from header_check, is one of the key mismatches above. */
static bool header_key_fault(const char *why)
{
	return why == why_no_key || why == why_key_given || why == why_wrong_key;
}

/* Check a file header; on -1 ${why} says what is wrong (a broken header is damage, a key
 * mismatch is a configuration error: ${fatal_config} tells them apart). */
static int header_check(const uint8_t *map, size_t size, const char magic[8], uint64_t seq,
                        const uint8_t *key, uint64_t *created_ms, const char **why,
                        bool *fatal_config)
{
	uint8_t kc[KEY_CHECK_BYTES];
	uint32_t flags;

	*fatal_config = false;
	if (size < FILE_HEADER_BYTES) {
		*why = "file shorter than its header";
		return -1;
	}
	if (get_u32(map + FILE_HEADER_BYTES - 4) != crc32c(map, FILE_HEADER_BYTES - 4)) {
		*why = "bad header checksum";
		return -1;
	}
	if (memcmp(map, magic, 8) != 0) {
		*why = "not a sessd file of this kind (bad magic)";
		return -1;
	}
	*fatal_config = true;
	if (get_u32(map + 8) < FILE_VERSION_OLDEST || get_u32(map + 8) > FILE_VERSION) {
		*why = "unsupported format version";
		return -1;
	}
	if (get_u64(map + 16) != seq) {
		*why = "sequence number does not match the file name";
		*fatal_config = false;
		return -1;
	}
	flags = get_u32(map + 12);
	if ((flags & ~FILE_FLAG_ENCRYPTED) != 0) {
		*why = "unknown header flags";
		return -1;
	}
	if ((flags & FILE_FLAG_ENCRYPTED) && key == NULL) {
		*why = why_no_key;
		return -1;
	}
	if (!(flags & FILE_FLAG_ENCRYPTED) && key != NULL) {
		*why = why_key_given;
		return -1;
	}
	if (key) {
		key_check_value(key, kc);
		if (sodium_memcmp(kc, map + 32, KEY_CHECK_BYTES) != 0) {
			*why = why_wrong_key;
			return -1;
		}
	}
	*created_ms = get_u64(map + 24);
	*fatal_config = false;
	return 0;
}

/*
 * Give the file ${fd}, made by --check-data in the directory ${dir_fd}, the directory's owner
 * and group and DATA_FILE_MODE, as if sessd had made it. --check-data is run with sudo (sessd's
 * refusal points to it), and a file left to root, mode 0600, in a directory the service's user
 * owns would keep sessd from starting until someone chowns it. Returns 0, or -1 with errno
 * (EPERM: we are neither root nor the directory's owner, and the file stays ours).
 */
static int own_like_dir(int dir_fd, int fd)
{
	struct stat ds, fs;

	if (fstat(dir_fd, &ds) == -1 || fstat(fd, &fs) == -1)
		return -1;
	/* Under mode 0600 the group reads nothing: a group we cannot give it (we own the
	 * directory but are not in its group) does not matter. */
	if ((fs.st_uid != ds.st_uid || fs.st_gid != ds.st_gid) &&
	    fchown(fd, ds.st_uid, ds.st_gid) == -1 && !(errno == EPERM && fs.st_uid == ds.st_uid))
		return -1;
	if ((fs.st_mode & 07777) != DATA_FILE_MODE && fchmod(fd, DATA_FILE_MODE) == -1)
		return -1;
	return 0;
}

/* own_like_dir failed on ${name}: say so, and who may repair the directory. */
static void say_not_owned(const char *name)
{
	persist_say(LOG_ERROR,
	            "cannot give %s the data directory's owner and mode: %s (run --repair as "
	            "the directory's owner or as root)",
	            name, strerror(errno));
}

/* A user's name for messages: "uid 0 (root)", or the number alone when it has none. */
static void user_text(uid_t uid, char *out, size_t size)
{
	struct passwd pw, *found = NULL;
	char scratch[1024];

	if (getpwuid_r(uid, &pw, scratch, sizeof(scratch), &found) == 0 && found != NULL)
		snprintf(out, size, "uid %lu (%s)", (unsigned long)uid, found->pw_name);
	else
		snprintf(out, size, "uid %lu", (unsigned long)uid);
}

/*
 * Whether ${p} runs as root in a directory another user owns (the service's command run by
 * hand with sudo, say): then p->as_dir_owner is set, and a warning says that the files made
 * are given to that user, without which the service could not open them afterwards. Returns
 * p->as_dir_owner.
 */
static bool run_as_root_in_theirs(struct persist *p)
{
	struct stat ds;
	char owner[64];

	if (geteuid() != 0 || fstat(p->dir_fd, &ds) == -1 || ds.st_uid == 0)
		return false;
	p->as_dir_owner = true;
	user_text(ds.st_uid, owner, sizeof(owner));
	persist_say(LOG_WARN,
	            "running as root in %s, which %s owns: the files made there are given to %s "
	            "(sessd usually runs as the directory's owner)",
	            p->dir, owner, owner);
	return true;
}

/*
 * Whether the data directory p->dir (open as p->dir_fd) is fit to hold sessions: no user but
 * its owner may write to it, and (but for root, which may run in the service user's directory:
 * run_as_root_in_theirs) that owner is the user sessd runs as. Whoever may create, rename or
 * remove files there can put a snapshot or log of their own in place of sessd's (sessions with
 * ids they chose, data they wrote: a login as anyone), or a link where sessd is about to write.
 * A --data-dir in /tmp that another user made first would be theirs. Logs why not.
 */
static bool data_dir_is_ours(const struct persist *p)
{
	struct stat ds;

	if (fstat(p->dir_fd, &ds) == -1) {
		persist_say(LOG_ERROR, "cannot look at %s: %s", p->dir, strerror(errno));
		return false;
	}
	if ((ds.st_mode & 022) == 0 && (ds.st_uid == geteuid() || geteuid() == 0))
		return true;
	persist_say(LOG_ERROR,
	            "%s cannot hold sessions: it is owned by uid %lu with mode %04o (sessd runs as "
	            "uid %lu), so another user may put sessions of their own there; chmod go-w "
	            "it, or give a directory of sessd's own user",
	            p->dir, (unsigned long)ds.st_uid, (unsigned)(ds.st_mode & 07777),
	            (unsigned long)geteuid());
	return false;
}

/*
 * Say that ${name} in ${dir_fd} cannot be ${what} ("read", "opened for appending") with
 * ${err}. When it is a permission error, name the file's owner and mode and the user we run as:
 * a file a root --check-data or a root sessd left behind is the usual cause, and the fix
 * (chown it to the user sessd runs as) is then plain.
 */
static void say_file_error(int dir_fd, const char *dir, const char *name, const char *what, int err)
{
	char owner[96], us[96];
	struct stat sb;

	/* file_map's EFBIG: only a build whose size_t is narrower than a file's size. */
	if (err == EFBIG && fstatat(dir_fd, name, &sb, 0) == 0) {
		persist_say(LOG_ERROR,
		            "%s/%s: cannot be %s: its %jd bytes are more than this %zu-bit sessd "
		            "can map (at most %zu): read the directory with a 64-bit sessd",
		            dir, name, what, (intmax_t)sb.st_size, sizeof(size_t) * 8,
		            (size_t)SIZE_MAX);
		return;
	}
	/* file_map's EINVAL: a FIFO, a directory, a device under a data file's name. */
	if (err == EINVAL && fstatat(dir_fd, name, &sb, 0) == 0 && !S_ISREG(sb.st_mode)) {
		persist_say(LOG_ERROR,
		            "%s/%s: cannot be %s: it is not a regular file (%s), as every file "
		            "sessd writes is: move it out of the data directory",
		            dir, name, what,
		            S_ISFIFO(sb.st_mode)   ? "a FIFO"
		            : S_ISDIR(sb.st_mode)  ? "a directory"
		            : S_ISSOCK(sb.st_mode) ? "a socket"
		                                   : "a device");
		return;
	}
	if ((err != EACCES && err != EPERM) ||
	    fstatat(dir_fd, name, &sb, AT_SYMLINK_NOFOLLOW) == -1) {
		persist_say(LOG_ERROR, "%s/%s: cannot be %s: %s", dir, name, what, strerror(err));
		return;
	}
	user_text(sb.st_uid, owner, sizeof(owner));
	user_text(geteuid(), us, sizeof(us));
	/* sessd's own file that its mode shuts out (a chmod, a restore that kept odd modes): a
	 * chown would change nothing. */
	if (sb.st_uid == geteuid()) {
		persist_say(LOG_ERROR,
		            "%s/%s: cannot be %s: %s: it is owned by %s, gid %lu, mode %04o, and "
		            "sessd runs as %s too, which that mode shuts out. Give sessd's user "
		            "access to the data directory's files: chmod -R u+rw %s",
		            dir, name, what, strerror(err), owner, (unsigned long)sb.st_gid,
		            (unsigned)(sb.st_mode & 07777), us, dir);
		return;
	}
	persist_say(LOG_ERROR,
	            "%s/%s: cannot be %s: %s: it is owned by %s, gid %lu, mode %04o, and sessd "
	            "runs as %s, gid %lu. Give the data directory's files to the user sessd runs "
	            "as: chown -R %lu:%lu %s",
	            dir, name, what, strerror(err), owner, (unsigned long)sb.st_gid,
	            (unsigned)(sb.st_mode & 07777), us, (unsigned long)getegid(),
	            (unsigned long)geteuid(), (unsigned long)getegid(), dir);
}

struct mapped {
	uint8_t *map;
	size_t size;
};

/*
 * Open the file ${name} of ${dir_fd} to read, with ${flags} (O_NOFOLLOW or 0) besides, and its
 * status into ${sb}. Opened without blocking and refused unless it is a regular file, so that
 * a FIFO under a data file's name is refused rather than waited on for ever, without a word
 * (startup, --check-data and --backup hung there). Returns the descriptor (the caller closes
 * it), or -1 with errno, EINVAL when it is not a regular file.
 */
static int open_regular(int dir_fd, const char *name, int flags, struct stat *sb)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | flags), err;

	if (fd == -1)
		return -1;
	if (fstat(fd, sb) == -1)
		goto fail;
	if (!S_ISREG(sb->st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	return fd;

fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

/*
 * Map the file ${name} of ${dir_fd} whole into ${m} (nothing for an empty file; free with
 * file_unmap). Returns 0, or -1 with errno, EINVAL when it is not a regular file
 * (open_regular), EFBIG when its size does not fit a size_t (a 32-bit build: a log segment
 * past 4 GiB, which --snapshot-log-bytes allows or a 64-bit host wrote; cast, the size would
 * keep its low bits and the file be read cut, its tail taken for a torn write).
 */
static int file_map(int dir_fd, const char *name, struct mapped *m)
{
	struct stat sb;
	int fd;

	m->map = NULL;
	m->size = 0;
	fd = open_regular(dir_fd, name, 0, &sb);
	if (fd == -1)
		goto fail;
	m->size = (size_t)sb.st_size;
	if ((off_t)m->size != sb.st_size) {
		errno = EFBIG;
		goto fail_close;
	}
	if (m->size > 0) {
		m->map = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m->map == MAP_FAILED) {
			m->map = NULL;
			goto fail_close;
		}
	}
	close(fd);
	return 0;

fail_close:
	close(fd);
fail:
	return -1;
}

static void file_unmap(struct mapped *m)
{
	if (m->map)
		munmap(m->map, m->size);
	m->map = NULL;
}

/*
 * Whether a record header whose checksum is good, of a body no longer than any written,
 * starts at ${y}: its length (in ${len}) is then what was written, whether or not the body is
 * all there. A body holds bytes a client chose, which may hold a well-formed record: the
 * search for records after a damaged one skips a body so framed.
 */
static bool record_header_at(const uint8_t *map, size_t size, size_t y, size_t *len)
{
	if (y > size || size - y < REC_HEADER_BYTES || get_u32(map + y + 8) != crc32c(map + y, 8))
		return false;
	*len = get_u32(map + y);
	return *len <= REC_MAX_BODY;
}

/*
 * Whether a well-formed record (both checksums good) starts at ${y} of the ${size} bytes at
 * ${map}; its body's length goes in ${len}. Its contents are not looked at.
 */
static bool record_at(const uint8_t *map, size_t size, size_t y, size_t *len)
{
	return record_header_at(map, size, y, len) && *len <= size - y - REC_HEADER_BYTES &&
	       get_u32(map + y + 4) == crc32c(map + y + REC_HEADER_BYTES, *len);
}

/*
 * Where the first well-formed record (both checksums good) after ${from} starts, or ${size}
 * when none does. One there is what tells a torn write (garbage or nothing after the damage)
 * from damage in the middle of the log (good records after it): the first may be cut off,
 * the second must not be, unless a sector a power loss never wrote explains the damage
 * (unwritten_sector_in).
 */
static size_t next_record_after(const uint8_t *map, size_t size, size_t from)
{
	size_t len;

	for (size_t y = from + 1; y + REC_HEADER_BYTES <= size && y > from; y++)
		if (record_at(map, size, y, &len))
			return y;
	return size;
}

static bool valid_record_after(const uint8_t *map, size_t size, size_t from)
{
	return next_record_after(map, size, from) < size;
}

/*
 * Whether the damaged record at ${from}, whose bytes reach at least to ${rec_end}, has one of
 * its sectors that never reached the disk before the next well-formed record at ${to}: zeros
 * from ${from} to the end of its sector, or a whole sector of zeros that starts before
 * ${rec_end}. After a power loss the writes not yet synced survive
 * sector by sector, in any order, and one that did not reads as zeros (past the old end of
 * the file, where the log only ever appends): a later sector of the same unsynced tail may
 * have been written, records and all. Bit rot does not zero a sector; a disk that remaps a
 * bad one may, and then the records cut off after it had been synced (see torn_tail).
 */
static bool unwritten_sector_in(const uint8_t *map, size_t from, size_t rec_end, size_t to)
{
	size_t y = from;

	while (y < to && y < rec_end) {
		size_t end = (y / LOST_SECTOR_BYTES + 1) * LOST_SECTOR_BYTES, i;

		if (end > to)
			break;
		for (i = y; i < end && map[i] == 0; i++)
			;
		if (i == end)
			return true;
		y = end;
	}
	return false;
}

typedef int (*record_fn)(void *arg, const struct record *rec);

struct scan {
	uint64_t size;
	uint64_t created_ms;
	uint32_t version; /* the header's format version, when the header is good */
	size_t records;
	uint64_t good_end; /* the offset just after the last good record */
	bool damaged;      /* a bad header or record at bad_off */
	bool torn;         /* ... and no good record after it: a torn write */
	/* ... or one after a sector that never reached the disk (unwritten_sector_in) */
	bool unwritten;
	uint64_t bad_off;
	const char *why;
};

/*
 * Whether the record at ${off} of ${m}, which fails its checksums, is a torn write: no
 * well-formed record starts after ${search_from}, or the first one that does follows a sector
 * of this record, which reaches at least to ${rec_end}, that never reached the disk
 * (${s}->unwritten then says so).
 */
static bool torn_at(const struct mapped *m, size_t off, size_t rec_end, size_t search_from,
                    struct scan *s)
{
	size_t next = next_record_after(m->map, m->size, search_from);

	s->unwritten = next < m->size && unwritten_sector_in(m->map, off, rec_end, next);
	return next == m->size || s->unwritten;
}

/*
 * Open the well-formed record (both checksums right) whose ${len}-byte body at ${body} starts
 * at offset ${off} of file ${seq}: decrypt it with ${key} (when given) into ${plain}, and decode
 * it into ${rec}, which may point into ${body} or ${plain}. ${snapshot}: the file is a snapshot,
 * whose record types differ from a log's. Returns 0; 1 when the record fails authentication,
 * is malformed or does not belong in the file (${why} says which: damage, or a wrong key); or
 * -1 when ${plain} cannot grow (ENOMEM).
 */
static int record_open(const uint8_t *body, size_t len, uint64_t seq, size_t off,
                       const uint8_t *key, bool snapshot, struct buf *plain, struct record *rec,
                       const char **why)
{
	size_t plain_len = len;

	if (key) {
		uint8_t ad[16];
		unsigned long long out_len;

		if (len < NONCE_BYTES + TAG_BYTES) {
			*why = "encrypted record too short";
			return 1;
		}
		buf_reset(plain);
		if (buf_reserve(plain, len) == -1)
			return -1;
		put_u64(put_u64(ad, seq), off);
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		        plain->data, &out_len, NULL, body + NONCE_BYTES, len - NONCE_BYTES, ad,
		        sizeof(ad), body, key) != 0) {
			*why = "record fails authentication (tampered or wrong key)";
			return 1;
		}
		plain_len = (size_t)out_len;
		body = plain->data;
	}
	if (record_decode(body, plain_len, rec) == -1) {
		*why = "malformed record";
		return 1;
	}
	if (snapshot != (rec->type >= REC_SNAP_SESSION)) {
		*why = "record type does not belong in this kind of file";
		return 1;
	}
	rec->off = off;
	return 0;
}

/*
 * file_scan(dir_fd, dir, name, magic, seq, key, snapshot, fn, arg, plain, s):
 * Read a log segment or snapshot, calling ${fn} with each good record in order, and stop at
 * the first bad one (${s} says where and why). Returns 0 (also when damage was found), or -1
 * when the file cannot be read, the key does not fit, or ${fn} failed (logged here, with the
 * file and offset, except for ${fn}'s own failure which its caller logs).
 */
static int file_scan(int dir_fd, const char *dir, const char *name, const char magic[8],
                     uint64_t seq, const uint8_t *key, bool snapshot, record_fn fn, void *arg,
                     struct buf *plain, struct scan *s, uint64_t *fn_fail_off)
{
	struct mapped m;
	bool fatal_config;
	size_t off, page, released = 0;

	memset(s, 0, sizeof(*s));
	if (file_map(dir_fd, name, &m) == -1) {
		say_file_error(dir_fd, dir, name, "read", errno);
		return -1;
	}
	s->size = m.size;
	if (header_check(m.map, m.size, magic, seq, key, &s->created_ms, &s->why, &fatal_config) ==
	    -1) {
		if (fatal_config) {
			persist_say(LOG_ERROR, "%s/%s: %s", dir, name, s->why);
			file_unmap(&m);
			errno = header_key_fault(s->why) ? ENOKEY : EINVAL;
			return -1;
		}
		s->damaged = true;
		s->bad_off = 0;
		s->torn = m.size < FILE_HEADER_BYTES || !valid_record_after(m.map, m.size, 0);
		file_unmap(&m);
		return 0;
	}
	s->version = get_u32(m.map + 8);
	off = FILE_HEADER_BYTES;
	s->good_end = off;
	page = (size_t)sysconf(_SC_PAGESIZE);
	while (off < m.size) {
		const uint8_t *h = m.map + off, *body;
		size_t len;
		struct record rec;
		int opened;

		s->bad_off = off;
		s->damaged = true;
		s->torn = false;
		if (m.size - off < REC_HEADER_BYTES) {
			s->why = "truncated record header";
			s->torn = true;
			break;
		}
		len = get_u32(h);
		if (get_u32(h + 8) != crc32c(h, 8)) {
			s->why = "bad record header checksum";
			s->torn = torn_at(&m, off, off + REC_HEADER_BYTES, off, s);
			break;
		}
		/* The header is good, so its length is what was written: the search for records
		 * after the damage starts at the record's declared end. Inside its body are bytes a
		 * client chose (session data, a flash message; plain, as they came), which may
		 * hold a well-formed record: found there, a crash in the middle of the write left
		 * a log startup refused as damaged in the middle. */
		if (len > REC_MAX_BODY || len > m.size - off - REC_HEADER_BYTES) {
			s->why = "record runs past the end of the file";
			s->torn = len <= REC_MAX_BODY || !valid_record_after(m.map, m.size, off);
			break;
		}
		body = h + REC_HEADER_BYTES;
		if (get_u32(h + 4) != crc32c(body, len)) {
			s->why = "bad record checksum";
			s->torn = torn_at(&m, off, off + REC_HEADER_BYTES + len,
			                  off + REC_HEADER_BYTES + len - 1, s);
			break;
		}
		/* From here the bytes are what was written: failures are not torn writes. */
		opened = record_open(body, len, seq, off, key, snapshot, plain, &rec, &s->why);
		if (opened == -1) {
			persist_say(LOG_ERROR, "%s/%s: out of memory", dir, name);
			file_unmap(&m);
			return -1;
		}
		if (opened == 1)
			break;
		if (fn && fn(arg, &rec) == -1) {
			*fn_fail_off = off;
			file_unmap(&m);
			return -1;
		}
		s->records++;
		off += REC_HEADER_BYTES + len;
		s->good_end = off;
		s->damaged = false;
		s->why = NULL;
		/* Nothing looks behind the record read (a damaged one is judged by what follows
		 * it), so the pages read are let go: a check of a snapshot of gigabytes
		 * (--check-data,
		 * --backup) keeps a window resident, not the file, and startup's peak is the store
		 * alone. */
		if (off - released >= SCAN_RELEASE_BYTES) {
			size_t to = off / page * page;

			madvise(m.map + released, to - released, MADV_DONTNEED);
			released = to;
		}
	}
	file_unmap(&m);
	return 0;
}

/*
 * The one rule for damage a scan found in a log segment, startup's (load_segments) and
 * --check-data's alike, so that a check run before every start passes exactly the logs the
 * start takes: true when it is a torn write, which startup cuts off the segment (at offset
 * 0, the header: startup writes it whole again), false when it is damage, which stops
 * startup. A torn write is what a crash or a power loss leaves at the end of the log: a
 * record cut short, a run of zeros or stale bytes where the file grew but the data never
 * reached the disk (ext4 and XFS after a power loss), a header that never did. So it is
 * damage that no well-formed record follows (scan.torn), in the last segment replayed: every
 * record after it was written later, and a well-formed one there means the bytes before it
 * were written once and broke since, unless one of the damaged record's sectors is zeros
 * (scan.unwritten): a power loss keeps unsynced writes sector by sector, in any order, so
 * records written after a lost sector may be there, none of them synced. A last record whose
 * bytes are all there but wrong is a torn write too by this rule: a power loss can keep a
 * record's first block and lose its second, and nothing tells that from a flipped bit.
 */
static bool torn_tail(const struct scan *s, bool last)
{
	return s->damaged && s->torn && last;
}

/*
 * The well-formed records (both checksums right; their contents are not checked) in segment
 * ${name} after its damage at ${from}: what cutting it there drops, as far as the framing
 * tells. Past the damaged record (skipped whole when its header holds, so that its body is
 * not searched: see record_header_at) each offset is tried until one holds a record, then records
 * are followed one to the next. Returns 0 when the file cannot be read (the scan before it said
 * why).
 */
static size_t records_after(int dir_fd, const char *name, uint64_t from)
{
	struct mapped m;
	size_t n = 0, y, len;

	if (file_map(dir_fd, name, &m) == -1)
		return 0;
	y = record_header_at(m.map, m.size, (size_t)from, &len)
	        ? (size_t)from + REC_HEADER_BYTES + len
	        : (size_t)from + 1;
	while (y < m.size) {
		if (record_at(m.map, m.size, y, &len)) {
			n++;
			y += REC_HEADER_BYTES + len;
		} else {
			y++;
		}
	}
	file_unmap(&m);
	return n;
}

/* Replaying the log: the record's own time is the store's now (see the file comment). */
static int replay_pop_type(void *arg, const uint8_t *type, size_t type_len, size_t count)
{
	(void)arg, (void)type, (void)type_len, (void)count;
	return 0;
}

static int replay_pop_msg(void *arg, const void *msg, size_t len, bool is_bin)
{
	(void)arg, (void)msg, (void)len, (void)is_bin;
	return 0;
}

static int apply_log_record(struct store *st, const struct record *r)
{
	int rc = 0;

	switch (r->type) {
	case REC_SET:
		rc = store_set(st, &r->key, r->data, r->data_len, r->expires_at_ms, r->time_ms);
		break;
	case REC_TOUCH:
		/* ENOENT: the session ended at the very instant of the touch (the clocks of
		 * dispatch and of this module differ by the time between two reads). */
		if (store_touch(st, &r->key, r->expires_at_ms, r->time_ms) == -1 && errno != ENOENT)
			rc = -1;
		break;
	case REC_DESTROY:
		if (store_destroy(st, &r->key, r->time_ms) == -1 && errno != ENOENT)
			rc = -1;
		break;
	case REC_FLASH_PUSH:
		rc = store_flash_push(st, &r->key, r->flash_type, r->flash_type_len, r->data,
		                      r->data_len, r->is_bin, r->expires_at_ms, r->time_ms, NULL);
		break;
	case REC_FLASH_POP:
		if (store_flash_pop(st, &r->key, r->flash_type, r->flash_type_len, r->time_ms, NULL,
		                    replay_pop_type, replay_pop_msg, NULL) == -1 &&
		    errno != ENOENT)
			rc = -1;
		break;
	case REC_CLEAR:
		store_clear(st, r->key.ns, r->key.ns_len, r->time_ms);
		break;
	default:
		errno = EINVAL;
		rc = -1;
	}
	return rc;
}

/*
 * Reclaim every session that had expired at ${now_ms}. store_expire bounds its work per
 * call, and a call that removed nothing may still have moved sessions between wheel levels,
 * so it goes on while the wheel says something is due; the idle bound keeps a coarse "due"
 * from spinning.
 */
static void reclaim_expired(struct store *st, uint64_t now_ms)
{
	unsigned idle = 0;

	while (idle < 64) {
		if (store_expire(st, now_ms, 65536) > 0)
			idle = 0;
		else if (store_next_expiry(st) > now_ms)
			break;
		else
			idle++;
	}
}

/*
 * The saved sessions do not fit in the store's --max-memory (the daemon ran with a larger
 * one): the rest of the load goes on without a limit, and the server puts it back once every
 * session is in (the store then refuses what would grow it until it is under the limit
 * again). Refusing to start instead took every app's sessions down until someone raised the
 * setting, and a supervisor restarted the daemon into the same refusal.
 */
static void load_beyond_limit(struct store *st)
{
	persist_say(LOG_WARN, "the saved sessions do not fit in --max-memory: loading every one of "
	                      "them all the same");
	store_set_max_bytes(st, 0);
}

/*
 * After the ${tries}th try of a loaded change refused for memory (errno ENOMEM, else none),
 * what comes before the next: what had expired at ${expired_at_ms} reclaimed (0: nothing to
 * reclaim, a snapshot's sessions) and the resizes in progress finished, then the limit lifted
 * (load_beyond_limit). Returns whether to try again.
 */
static bool load_room(struct store *st, int tries, uint64_t expired_at_ms)
{
	if (errno != ENOMEM || tries == 2)
		return false;
	if (tries == 1) {
		load_beyond_limit(st);
		return true;
	}
	if (expired_at_ms != 0)
		reclaim_expired(st, expired_at_ms);
	store_settle(st);
	return true;
}

/*
 * Live, the expiry timer reclaims expired sessions within a fraction of a second, and the
 * memory they held goes to later writes. Replay has no timer: without reclaiming here, a log
 * of short-lived sessions written under --max-memory would not fit back into the same
 * --max-memory, and the daemon could not restart. Live too, the lookups of every request, the
 * writes refused for memory included, finish a table's resize and free its old buckets, which
 * later writes then used: the log has only the accepted writes, so its replay may still be
 * resizing there (store_settle). So a change refused for memory is retried once after
 * reclaiming what had expired at the record's time and finishing the resizes, and once more
 * beyond the limit (load_beyond_limit).
 */
static int replay_log_record(void *arg, const struct record *r)
{
	struct store *st = arg;

	/* Live, sessions that had expired by this instant were gone: a clock that later stepped
	 * back must not bring them back at the next start. */
	if (r->type == REC_CLOCK) {
		reclaim_expired(st, r->time_ms);
		return 0;
	}
	for (int tries = 0;; tries++) {
		if (apply_log_record(st, r) == 0)
			return 0;
		if (!load_room(st, tries, r->time_ms))
			return -1;
	}
}

/*
 * The ids of a snapshot read so far, for a check (--check-data) or a salvage, where no store
 * of its sessions holds them: each kept as a keyed hash and its record's offset (idset.h),
 * a suspected repeat confirmed by reading the record at that offset again. The file does not
 * change while it is read (a snapshot is written under another name and renamed in place).
 */
struct snap_ids {
	struct idset *set;
	int dir_fd;
	const char *name;
	uint64_t seq;
	const uint8_t *key;
	struct mapped m; /* the file again, for the records suspected; mapped at the first */
	bool mapped;
	struct buf plain;           /* such a record opened: the scan's own buffer holds ${asked} */
	const struct record *asked; /* the record whose id is looked for */
};

/*
 * Start ${ids} empty for snapshot ${name} (${seq}) of ${dir_fd}, sealed with ${key} (NULL: a
 * plain one), sized for ${expected} sessions (0: unknown). Returns 0, or -1 with errno ENOMEM.
 */
static int snap_ids_init(struct snap_ids *ids, int dir_fd, const char *name, uint64_t seq,
                         const uint8_t *key, uint64_t expected)
{
	memset(ids, 0, sizeof(*ids));
	ids->set = idset_new(expected > SIZE_MAX ? 0 : (size_t)expected);
	if (ids->set == NULL)
		return -1;
	ids->dir_fd = dir_fd;
	ids->name = name;
	ids->seq = seq;
	ids->key = key;
	buf_init(&ids->plain);
	return 0;
}

static void snap_ids_finish(struct snap_ids *ids)
{
	idset_free(ids->set);
	ids->set = NULL;
	if (ids->mapped)
		file_unmap(&ids->m);
	ids->mapped = false;
	buf_finish(&ids->plain);
}

/* idset_same_fn: whether the SESSION record at ${off} has the id of ${arg}'s asked record. */
static int snap_ids_same(void *arg, uint64_t off)
{
	struct snap_ids *ids = arg;
	const struct store_key *a = &ids->asked->key;
	struct record rec;
	const char *why;
	size_t len;
	int opened;

	if (!ids->mapped) {
		if (file_map(ids->dir_fd, ids->name, &ids->m) == -1)
			return -1;
		ids->mapped = true;
	}
	/* Read and opened before, so sound: were it not, it is no proof of a repeat. */
	if (off > ids->m.size || !record_at(ids->m.map, ids->m.size, (size_t)off, &len))
		return 0;
	opened = record_open(ids->m.map + off + REC_HEADER_BYTES, len, ids->seq, (size_t)off,
	                     ids->key, true, &ids->plain, &rec, &why);
	if (opened == -1)
		return -1;
	return opened == 0 && rec.type == REC_SNAP_SESSION && rec.key.ns_len == a->ns_len &&
	       rec.key.id_len == a->id_len && memcmp(rec.key.ns, a->ns, a->ns_len) == 0 &&
	       memcmp(rec.key.id, a->id, a->id_len) == 0;
}

/*
 * Whether the id of SESSION record ${r} is in ${ids}, in *${present}; if not, it is put there.
 * Returns 0, or -1 with errno (ENOMEM, or the file cannot be read again).
 */
static int snap_ids_add(struct snap_ids *ids, const struct record *r, bool *present)
{
	ids->asked = r;
	return idset_add(ids->set, idset_hash(ids->set, &r->key), r->off, snap_ids_same, ids,
	                 present);
}

/*
 * Loading a snapshot (or, with st NULL, only checking its structure). A session without data
 * and without flashes (every flash popped) cannot be made through store_set or a push alone;
 * it is recreated by pushing a message and popping it again, which leaves exactly such a
 * session if the store keeps them and nothing if it does not.
 */
struct snap_load {
	struct store *st;
	struct heapahead *heap; /* NULL: the heap is left to fault page by page */
	uint8_t ns[64];
	uint8_t id[128];
	struct store_key key;
	uint64_t expires_at_ms;
	uint64_t time_ms;
	bool in_session;
	bool bare; /* the current session has neither data nor, so far, a flash */
	bool ended;
	uint64_t sessions;
	/* The END record's count, read from the file's tail before the load (snap_count_hint);
	 * 0: unknown, no presize. */
	uint64_t count_hint;
	uint64_t ns_sessions; /* of the current namespace so far */
	bool presized;        /* the current namespace's table was presized: fit it at its end */
	/* The ids read so far, to find a repeated one (snap_session_repeated): with st NULL (a
	 * check), or NULL to ask st (or, with both NULL, not to look). */
	struct snap_ids *ids;
	const char *why;
};

/*
 * A namespace's table is presized (store_table_fit) once it holds this many sessions of the
 * snapshot: a table the size of the rest of the snapshot (8 MiB for a million sessions) for
 * each of a thousand small namespaces would cost more page faults than the resizes it saves,
 * and the growth up to here moves few nodes. A snapshot is written namespace by namespace.
 */
#define SNAP_PRESIZE_AFTER 65536u

/*
 * store_set and store_flash_push for a snapshot's sessions: one refused for memory is tried
 * again once the resizes in progress are finished, then beyond the limit, as a log record is
 * (load_room): the daemon that wrote the snapshot held these sessions with its tables
 * resized, where loading them one by one may still be resizing.
 */
static int snap_set(struct snap_load *l, const struct record *r)
{
	for (int tries = 0;; tries++) {
		if (store_set(l->st, &l->key, r->data, r->data_len, r->expires_at_ms, r->time_ms) ==
		    0)
			return 0;
		if (!load_room(l->st, tries, 0))
			return -1;
	}
}

static int snap_push(struct snap_load *l, const uint8_t *type, size_t type_len, const void *msg,
                     size_t msg_len, bool is_bin)
{
	for (int tries = 0;; tries++) {
		if (store_flash_push(l->st, &l->key, type, type_len, msg, msg_len, is_bin,
		                     l->expires_at_ms, l->time_ms, NULL) == 0)
			return 0;
		if (!load_room(l->st, tries, 0))
			return -1;
	}
}

static int snap_finish_session(struct snap_load *l)
{
	static const uint8_t probe = 'x';

	if (l->st && l->in_session && l->bare) {
		if (snap_push(l, &probe, 1, "", 0, false) == -1)
			return -1;
		if (store_flash_pop(l->st, &l->key, &probe, 1, l->time_ms, NULL, replay_pop_type,
		                    replay_pop_msg, NULL) == -1)
			return -1;
	}
	l->in_session = false;
	return 0;
}

/* Fit the current namespace's table to the sessions it got, when it was presized for more
 * (the rest of the snapshot): as one session at a time would have left it. A hint only. */
static void snap_ns_done(struct snap_load *l)
{
	if (l->presized)
		(void)store_table_fit(l->st, l->key.ns, l->key.ns_len, 0);
	l->presized = false;
	l->ns_sessions = 0;
}

/* Presize the current namespace's table for the rest of the snapshot, once (see
 * SNAP_PRESIZE_AFTER). Refused for memory, the table grows as usual. */
static void snap_presize(struct snap_load *l)
{
	uint64_t want;

	if (l->st == NULL || l->ns_sessions != SNAP_PRESIZE_AFTER || l->count_hint <= l->sessions)
		return;
	want = l->ns_sessions + (l->count_hint - l->sessions);
	if (store_table_fit(l->st, l->key.ns, l->key.ns_len, want) == 0) {
		l->presized = true;
		persist_say(LOG_DEBUG,
		            "load: a namespace's table presized for %" PRIu64 " sessions, %" PRIu64
		            " loaded and the rest of the snapshot's",
		            want, l->ns_sessions);
	}
}

/*
 * Whether the session of SESSION record ${r} was read before in this snapshot, in *${repeated}.
 * sessd writes each session once, so a second copy is damage: records from elsewhere in the
 * file (or another file), their checksums right, written over the ones that stood there (a
 * misdirected or doubled write on record boundaries), whose sessions are lost; the END count
 * still holds. Loaded on top, the copy replaced the first's data and queued its messages
 * again, each shown twice. Loading, the store is asked: new at the snapshot (the log comes
 * after), it holds every session read so far (one without data or flashes too,
 * snap_finish_session), live at the instant 0 whatever its expiry, and store_set finds the
 * session again right after, in the cache. A check and a salvage, with no such store, keep
 * the ids in ${ids} instead (asked first when given). An encrypted snapshot binds each record
 * to its file and offset (DATA.md), so a copy there fails to open before it gets here.
 * Returns 0, or -1 with errno (ENOMEM; ${ids}'s file cannot be read again).
 */
static int snap_session_repeated(struct snap_ids *ids, struct store *st, const struct record *r,
                                 bool *repeated)
{
	uint64_t expires_at_ms;

	*repeated = false;
	if (ids != NULL)
		return snap_ids_add(ids, r, repeated);
	if (st != NULL)
		*repeated = store_expiry(st, &r->key, 0, &expires_at_ms) == 0;
	return 0;
}

static int snap_load_record(void *arg, const struct record *r)
{
	struct snap_load *l = arg;
	bool repeated;

	if (l->ended) {
		l->why = "record after the end record";
		errno = EBADMSG;
		return -1;
	}
	if (l->heap != NULL)
		heapahead_step(l->heap);
	switch (r->type) {
	case REC_SNAP_SESSION:
		if (snap_finish_session(l) == -1 ||
		    snap_session_repeated(l->ids, l->st, r, &repeated) == -1)
			return -1;
		if (repeated) {
			l->why = "a session read before: records written over others";
			errno = EBADMSG;
			return -1;
		}
		if (l->st != NULL && (l->sessions == 0 || r->key.ns_len != l->key.ns_len ||
		                      memcmp(r->key.ns, l->ns, r->key.ns_len) != 0))
			snap_ns_done(l);
		memcpy(l->ns, r->key.ns, r->key.ns_len);
		memcpy(l->id, r->key.id, r->key.id_len);
		l->key = (struct store_key){
		    .ns = l->ns, .ns_len = r->key.ns_len, .id = l->id, .id_len = r->key.id_len};
		l->expires_at_ms = r->expires_at_ms;
		l->time_ms = r->time_ms;
		l->in_session = true;
		l->bare = !r->has_data;
		l->sessions++;
		l->ns_sessions++;
		if (l->st && r->has_data && snap_set(l, r) == -1)
			return -1;
		snap_presize(l);
		return 0;
	case REC_SNAP_FLASH:
		if (!l->in_session) {
			l->why = "flash record outside a session";
			errno = EBADMSG;
			return -1;
		}
		l->bare = false;
		if (l->st && snap_push(l, r->flash_type, r->flash_type_len, r->data, r->data_len,
		                       r->is_bin) == -1)
			return -1;
		return 0;
	case REC_SNAP_END:
		if (snap_finish_session(l) == -1)
			return -1;
		if (l->st != NULL)
			snap_ns_done(l);
		if (r->count != l->sessions) {
			l->why = "end record counts a different number of sessions";
			errno = EBADMSG;
			return -1;
		}
		l->ended = true;
		return 0;
	default:
		errno = EINVAL;
		return -1;
	}
}

/*
 * What a salvage of a damaged snapshot keeps and skips (snap_salvage_scan). The sessions kept
 * are the snap_load's: ${sessions_before} of them come before the first damage.
 */
struct snap_salvage {
	uint64_t created_ms;      /* the header's time, 0 when the header is bad */
	bool bad_header;          /* nothing was read: no record can be placed or trusted */
	uint64_t sessions_before; /* the sessions read before the first damaged part */
	uint64_t gaps;            /* damaged parts skipped */
	uint64_t gap_bytes;       /* their bytes */
	uint64_t orphans;         /* sound flash records dropped after a damaged part */
	uint64_t repeats;         /* sound session records of an id read before, dropped */
	/* The ids read so far: asked before the session pending in the snap_load is finished,
	 * so it cannot be the store being loaded (a session without data is in it only then). */
	struct snap_ids ids;
	bool in_repeat; /* the flash records up to the next session are a repeat's */
};

/*
 * One sound record of a snapshot being salvaged, to ${l}. The END record's count is that of
 * the file as written, which no longer holds after damage, so it only ends the session before
 * it (the snapshot rewritten from what was kept gets an END of its own). A session whose id
 * was read before (a sector written twice, or one of another file where this one's should
 * be, with sound records: sessd writes each session once) is dropped with its flash records,
 * counted in ${sv}->repeats: the first copy stands. Loaded on top, the later copy's data
 * replaced the first's and its messages were queued after the first's, each shown twice, and
 * --check-data counted the session twice. Returns 0, or -1 with ${l}->why set (the record is
 * out of place: damage) or not (the store refused it).
 */
static int snap_salvage_record(struct snap_load *l, const struct record *r, struct snap_salvage *sv)
{
	if (r->type == REC_SNAP_END)
		return snap_finish_session(l);
	if (r->type == REC_SNAP_FLASH && sv->in_repeat)
		return 0;
	if (r->type == REC_SNAP_SESSION) {
		if (snap_session_repeated(&sv->ids, NULL, r, &sv->in_repeat) == -1)
			return -1;
		if (sv->in_repeat) {
			sv->repeats++;
			return snap_finish_session(l);
		}
	}
	return snap_load_record(l, r);
}

/*
 * Whether the record at ${y} of ${map} (${size} bytes), whose header's checksum fails, still
 * ends where its length says: the length fits and the body's checksum holds over it, so only
 * the header's checksum was hit. Its end is then as sure as a sound header's, and the record is
 * skipped whole (${len}: its body's length) without its body being searched: else a burst of
 * damage across a record boundary (two such headers in a row) left no record after it that
 * started where the first damaged one ended (salvage_resync_is_sound), and a repair dropped
 * every sound session after it.
 */
static bool salvage_ends_by_body(const uint8_t *map, size_t size, size_t y, size_t *len)
{
	size_t n;

	if (y > size || size - y < REC_HEADER_BYTES)
		return false;
	n = get_u32(map + y);
	/* No body is empty, and a header of zeros (a sector lost) would pass with none. */
	if (n == 0 || n > REC_MAX_BODY || n > size - y - REC_HEADER_BYTES ||
	    get_u32(map + y + 4) != crc32c(map + y + REC_HEADER_BYTES, n))
		return false;
	*len = n;
	return true;
}

/*
 * The search after a bad record header: a record it finds counts only where that damaged
 * record ended, as the damaged header's length says, or as its body checksum does over the
 * bytes between; a record there that is damaged too is skipped whole when its own length and
 * body checksum hold, or the search starts again from it. In a plain data directory a body
 * holds bytes a client chose (a session's data, a flash message), which may hold well-formed
 * records of any session id: found inside the damaged record, they would be kept as sessions
 * (one bit of a client's record header flipped, and a repair gave another id the data the
 * client wrote). Neither field is the client's to choose, and damage of one byte or a few
 * leaves one of them whole. An encrypted record is bound to its file and offset (DATA.md),
 * so there the search needs no such check.
 */
struct salvage_search {
	size_t from;  /* where the damaged record starts */
	size_t to;    /* crc covers its bytes from its body's start to here */
	uint32_t crc; /* CRC32C, extended as the search goes (a byte a turn) */
};

static void salvage_search_start(struct salvage_search *s, size_t from)
{
	s->from = from;
	s->to = from + REC_HEADER_BYTES;
	s->crc = 0;
}

/*
 * Whether the damaged record of ${s} ends at ${at} of ${map}, which only grows call to call.
 * No body is empty: a header of zeros (a sector lost) does not end after itself.
 */
static bool salvage_resync_is_sound(struct salvage_search *s, const uint8_t *map, size_t at)
{
	if (at - s->from <= REC_HEADER_BYTES)
		return false;
	if (at > s->to) {
		s->crc = crc32c_extend(s->crc, map + s->to, at - s->to);
		s->to = at;
	}
	return get_u32(map + s->from) == at - s->from - REC_HEADER_BYTES ||
	       get_u32(map + s->from + 4) == s->crc;
}

/*
 * snap_salvage_scan(dir_fd, dir, name, seq, key, l, plain, sv):
 * Read every sound record of the damaged snapshot ${name} (${seq}) into ${l}, before and after
 * its damage, and say in ${sv} what was skipped. Records are followed by their lengths; a
 * damaged one is skipped whole when its header's checksum holds (its length is then what was
 * written) or its length and body's checksum do (salvage_ends_by_body), and otherwise every
 * offset after it is tried until a well-formed record (both
 * checksums right) starts there, as for the log (records_after), and, in a plain directory,
 * the damaged record ends there (salvage_resync_is_sound; a damaged record there is skipped
 * or searched after in turn). A FLASH belongs to the SESSION
 * before it, which may be the record a damaged part took: after a damaged part, records are
 * dropped until the next SESSION, so that no message goes to another user's session. The
 * session whose FLASH was damaged keeps the messages before it. A bad header leaves nothing
 * (${sv}->bad_header). Returns 0, or -1 (logged) when the file cannot be read, the key does
 * not fit, or the store refuses a session.
 */
static int snap_salvage_scan(int dir_fd, const char *dir, const char *name, uint64_t seq,
                             const uint8_t *key, struct snap_load *l, struct buf *plain,
                             struct snap_salvage *sv)
{
	struct mapped m;
	bool fatal_config, in_gap = false, following = true;
	struct salvage_search search = {0, 0, 0};
	size_t off = FILE_HEADER_BYTES, gap_start = 0, released = 0,
	       page = (size_t)sysconf(_SC_PAGESIZE);
	const char *why;
	int rc = -1;

	memset(sv, 0, sizeof(*sv));
	if (snap_ids_init(&sv->ids, dir_fd, name, seq, key, 0) == -1) {
		persist_say(LOG_ERROR, "%s/%s: out of memory", dir, name);
		return -1;
	}
	if (file_map(dir_fd, name, &m) == -1) {
		say_file_error(dir_fd, dir, name, "read", errno);
		snap_ids_finish(&sv->ids);
		return -1;
	}
	if (header_check(m.map, m.size, SNAP_MAGIC, seq, key, &sv->created_ms, &why,
	                 &fatal_config) == -1) {
		if (fatal_config) {
			persist_say(LOG_ERROR, "%s/%s: %s", dir, name, why);
			errno = header_key_fault(why) ? ENOKEY : EINVAL;
			goto out;
		}
		sv->created_ms = 0;
		sv->bad_header = true;
		rc = 0;
		goto out;
	}
	while (off < m.size) {
		struct record rec;
		size_t len = 0;
		bool whole = record_header_at(m.map, m.size, off, &len) &&
		             len <= m.size - off - REC_HEADER_BYTES;
		/* Searching a plain snapshot: whether the damaged record ends here. */
		bool at_end =
		    !following && key == NULL && salvage_resync_is_sound(&search, m.map, off);
		int opened = 1;

		/* Nothing looks behind off: the pages read are let go, as in file_scan. */
		if (off - released >= SCAN_RELEASE_BYTES) {
			size_t to = off / page * page;

			madvise(m.map + released, to - released, MADV_DONTNEED);
			released = to;
		}
		if (whole && record_at(m.map, m.size, off, &len) &&
		    (following || key != NULL || at_end)) {
			opened = record_open(m.map + off + REC_HEADER_BYTES, len, seq, off, key,
			                     true, plain, &rec, &why);
			if (opened == -1) {
				persist_say(LOG_ERROR, "%s/%s: out of memory", dir, name);
				goto out;
			}
		}
		if (opened == 0 && in_gap && rec.type != REC_SNAP_SESSION) {
			sv->orphans += rec.type == REC_SNAP_FLASH;
			off += REC_HEADER_BYTES + len;
			following = true;
			continue;
		}
		if (opened == 0) {
			if (in_gap)
				sv->gap_bytes += off - gap_start;
			in_gap = false;
			if (snap_salvage_record(l, &rec, sv) == 0) {
				off += REC_HEADER_BYTES + len;
				following = true;
				continue;
			}
			if (l->why == NULL)
				goto fail_store;
			l->why = NULL; /* sound, but out of place: damage like any other */
		}
		if (!in_gap) {
			if (sv->gaps++ == 0)
				sv->sessions_before = l->sessions;
			in_gap = true;
			gap_start = off;
			if (snap_finish_session(l) == -1)
				goto fail_store;
		}
		/* At a record boundary (reached by lengths from the header, or where the damaged
		 * record the search started at ends), a record whose header holds is what was
		 * written there, and so is one whose length and body's checksum hold: skip it
		 * whole, and its body (bytes a client chose) is not searched. Any other record
		 * there starts the search (again). */
		if (following || at_end) {
			if (!whole)
				whole = salvage_ends_by_body(m.map, m.size, off, &len);
			if (!whole)
				salvage_search_start(&search, off);
			following = whole;
		}
		off += following ? REC_HEADER_BYTES + len : 1;
	}
	if (in_gap)
		sv->gap_bytes += m.size - gap_start;
	if (sv->gaps == 0)
		sv->sessions_before = l->sessions;
	if (snap_finish_session(l) == -1)
		goto fail_store;
	rc = 0;
	goto out;

fail_store:
	persist_say(LOG_ERROR, "%s/%s at offset %zu: cannot load a session: %s", dir, name, off,
	            strerror(errno));
out:
	file_unmap(&m);
	snap_ids_finish(&sv->ids);
	return rc;
}

/* The data directory's files, by kind, sorted by sequence number. */
struct listing {
	uint64_t *logs;
	size_t n_logs;
	uint64_t *snaps;
	size_t n_snaps;
};

static bool name_seq(const char *name, const char *prefix, uint64_t *seq)
{
	size_t pl = strlen(prefix);
	uint64_t v = 0;

	if (strncmp(name, prefix, pl) != 0 || strlen(name) != pl + 16)
		return false;
	for (size_t i = pl; i < pl + 16; i++) {
		char ch = name[i];

		if (ch >= '0' && ch <= '9')
			v = v << 4 | (uint64_t)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v = v << 4 | (uint64_t)(ch - 'a' + 10);
		else
			return false;
	}
	*seq = v;
	return v > 0;
}

static int seq_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int seq_push(uint64_t **v, size_t *n, uint64_t seq)
{
	uint64_t *nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (nv == NULL)
		return -1;
	nv[(*n)++] = seq;
	*v = nv;
	return 0;
}

static void listing_finish(struct listing *l)
{
	free(l->logs);
	free(l->snaps);
	memset(l, 0, sizeof(*l));
}

/* Temporary snapshot files belong to a child that died; ${remove_tmp} deletes them. */
static int listing_read(int dir_fd, struct listing *l, bool remove_tmp)
{
	struct dirent *de;
	DIR *d;
	int fd, err = ENOMEM;

	memset(l, 0, sizeof(*l));
	fd = dup(dir_fd);
	if (fd == -1)
		return -1;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -1;
	}
	rewinddir(d);
	/* readdir's NULL is the end only while errno stays 0: a directory that fails to read
	 * (EIO) must not pass for one without the rest of its segments, which startup would
	 * then load without, and a snapshot delete. Reset each time: unlinkat below may set it. */
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		uint64_t seq;

		if (name_seq(de->d_name, "log.", &seq)) {
			if (seq_push(&l->logs, &l->n_logs, seq) == -1)
				goto fail;
		} else if (name_seq(de->d_name, "snap.", &seq)) {
			if (seq_push(&l->snaps, &l->n_snaps, seq) == -1)
				goto fail;
		} else if (remove_tmp && strncmp(de->d_name, "tmp.", 4) == 0) {
			unlinkat(dir_fd, de->d_name, 0);
		}
	}
	if (errno != 0) {
		err = errno;
		goto fail;
	}
	closedir(d);
	if (l->n_logs)
		qsort(l->logs, l->n_logs, sizeof(*l->logs), seq_cmp);
	if (l->n_snaps)
		qsort(l->snaps, l->n_snaps, sizeof(*l->snaps), seq_cmp);
	return 0;

fail:
	closedir(d);
	listing_finish(l);
	errno = err;
	return -1;
}

static void log_name(char out[NAME_BYTES], uint64_t seq)
{
	snprintf(out, NAME_BYTES, "log.%016" PRIx64, seq);
}

static void snap_name(char out[NAME_BYTES], uint64_t seq)
{
	snprintf(out, NAME_BYTES, "snap.%016" PRIx64, seq);
}

static void snap_tmp_name(char out[NAME_BYTES], uint64_t seq, pid_t pid)
{
	snprintf(out, NAME_BYTES, "tmp.snap.%016" PRIx64 ".%ld", seq, (long)pid);
}

/*
 * The file sessd --backup leaves in its copy, naming the state it holds (DATA.md, "Backups").
 * sessd never writes it into a data directory of its own: it is there only when a backup was
 * copied in, and a start removes it once those files are what loaded, before any newer file
 * can be made. So a start that finds it beside newer files knows a backup was copied over
 * them, where files below the newest snapshot alone may as well be what a crash left.
 */
#define BACKUP_MARK       "BACKUP"
#define BACKUP_MARK_BYTES 80

/* The state a backup holds: the snapshot it starts from (0: none) and its last segment. */
struct backup_mark {
	uint64_t snap;
	uint64_t last_log;
};

/* The text of ${m}'s BACKUP file into ${out}; returns its length. */
static size_t mark_text(char out[BACKUP_MARK_BYTES], const struct backup_mark *m)
{
	return (size_t)snprintf(out, BACKUP_MARK_BYTES,
	                        "sessd backup\nsnapshot %016" PRIx64 "\nlast log %016" PRIx64 "\n",
	                        m->snap, m->last_log);
}

/*
 * Read the BACKUP file of ${dir_fd} into ${m}. Returns 1, 0 when there is none, or -1 with
 * errno, and *${why} saying what is wrong in words when it is not errno's to say (errno
 * EINVAL: it is not a regular file, or not one --backup writes, as a copy cut short leaves
 * it).
 */
static int mark_read(int dir_fd, struct backup_mark *m, const char **why)
{
	char text[BACKUP_MARK_BYTES + 1], want[BACKUP_MARK_BYTES];
	struct stat sb;
	ssize_t n;
	int fd, err;

	*why = NULL;
	fd = open_regular(dir_fd, BACKUP_MARK, O_NOFOLLOW, &sb);
	if (fd == -1 && errno == EINVAL)
		*why = "it is not a regular file";
	if (fd == -1)
		return errno == ENOENT ? 0 : -1;
	n = read(fd, text, sizeof(text) - 1);
	err = errno;
	close(fd);
	if (n == -1) {
		errno = err;
		return -1;
	}
	text[n] = '\0';
	/* sscanf takes any run of blanks for a newline: the text must be the one written. */
	if (sscanf(text, "sessd backup\nsnapshot %16" SCNx64 "\nlast log %16" SCNx64, &m->snap,
	           &m->last_log) != 2 ||
	    m->last_log == 0 || m->last_log < m->snap || mark_text(want, m) != (size_t)n ||
	    memcmp(want, text, (size_t)n) != 0) {
		*why = "it is not one sessd --backup writes";
		errno = EINVAL;
		return -1;
	}
	return 1;
}

static int write_full(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/*
 * The path of the directory that holds ${dir} ("." for a bare name), malloc'd (the caller
 * frees it), or NULL with errno ENOMEM.
 */
static char *parent_path(const char *dir)
{
	char *parent = strdup(dir), *slash;

	if (parent == NULL)
		return NULL;
	/* "a/b/" is "a/b": trailing slashes do not name another directory. */
	for (size_t n = strlen(parent); n > 1 && parent[n - 1] == '/'; n--)
		parent[n - 1] = '\0';
	slash = strrchr(parent, '/');
	if (slash == NULL)
		strcpy(parent, ".");
	else
		slash[slash == parent ? 1 : 0] = '\0';
	return parent;
}

/*
 * Make the entry of the data directory ${dir}, which mkdir just created, durable in the
 * directory that holds it: without that, a power loss can lose the new directory with every
 * file in it, although each of them (the first segment's header, every record under --fsync
 * always) was synced. Returns 0, or -1 with errno (the caller warns: the directory exists,
 * and most filesystems keep it with the first file synced in it anyway).
 */
static int sync_parent_dir(const char *dir)
{
	char *parent = parent_path(dir);
	int fd, rc = -1;

	if (parent == NULL)
		return -1;
	fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd != -1) {
		rc = fsync(fd);
		close(fd);
	}
	free(parent);
	return rc;
}

/*
 * Lock the data directory against a second sessd: an open-file-description lock, which also
 * conflicts within one process. The snapshot child inherits the description and closes its
 * copy first thing; a child killed before it gets there holds the lock for the moment it
 * takes to die, so a busy lock is retried for about two seconds before we give up.
 * Returns the lock's fd, or -1 with errno (EAGAIN: another sessd holds it).
 */
static int dir_lock(int dir_fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int fd = openat(dir_fd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	int err = 0;

	if (fd == -1)
		return -1;
	for (int i = 0; i < 100; i++) {
		if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
			return fd;
		err = errno;
		if (err != EAGAIN && err != EACCES)
			break;
		usleep(20000);
	}
	close(fd);
	errno = err == EACCES ? EAGAIN : err;
	return -1;
}

/*
 * What ${err} EROFS means to the operator, to follow its message; "" for another error. The
 * usual causes are no matter of owners or modes: a file system mounted read-only (the kernel
 * remounts one so after disk errors), or a directory outside what a sandbox lets sessd write
 * (the unit's ProtectSystem=strict leaves it only its StateDirectory= and RuntimeDirectory=),
 * as after a drop-in moved --data-dir.
 */
static const char *read_only_hint(int err)
{
	return err == EROFS
	           ? " (the file system is read-only to sessd: mounted read-only, as the "
	             "kernel does after disk errors (see dmesg), or outside what a "
	             "sandbox lets it write, as with the unit's ProtectSystem=strict: keep "
	             "the data in the unit's StateDirectory=, or add the directory to "
	             "ReadWritePaths=)"
	           : "";
}

/*
 * Say why dir_lock(${dir_fd}) failed with ${err} on the data directory ${dir}; ${held} says
 * who holds the lock (EAGAIN). A LOCK file that exists in a directory we can write, but that
 * we may not open (one a run as root left, mode 0600), is the file's problem, not the
 * directory's: it is named with its owner and mode and the user we run as (say_file_error),
 * as the log and snapshots are, where "the directory must be writable" sent the operator to
 * a directory that already was.
 */
static void say_lock_error(int dir_fd, const char *dir, int err, const char *held)
{
	struct stat sb;

	if (err == EAGAIN) {
		persist_say(LOG_ERROR, "cannot lock %s/LOCK: %s", dir, held);
	} else if ((err == EACCES || err == EPERM) &&
	           fstatat(dir_fd, "LOCK", &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	           faccessat(dir_fd, ".", W_OK | X_OK, AT_EACCESS) == 0) {
		say_file_error(dir_fd, dir, "LOCK",
		               "opened for locking, though the directory is writable", err);
	} else {
		persist_say(LOG_ERROR, "cannot lock %s/LOCK: %s%s", dir, strerror(err),
		            err == EACCES
		                ? " (the data directory must be writable by the user sessd runs as)"
		                : read_only_hint(err));
	}
}

/* How the log speaks of the key file (secretfile.h). */
static const struct secretfile_kind key_file_kind = {
    .what = "persist: key file",
    .secret = "key",
    .shape = "a regular file of exactly 32 bytes",
};

/*
 * key_load(path):
 * A 32-byte key file into guarded memory. Returns the key (free with sodium_free), or NULL
 * (logged) with errno ENOKEY when the file cannot serve as a key as it is (missing, not a
 * regular file of 32 bytes, open to other users, not ours to read): a fault of the
 * configuration, which a restart repeats; with another errno when reading it failed.
 */
static uint8_t *key_load(const char *path)
{
	uint8_t *key;
	size_t got;
	off_t size;
	int fd, err;

	fd = secretfile_open(path, &key_file_kind, LOG_ERROR, &size);
	if (fd == -1) {
		err = errno;
		goto fail;
	}
	/* The usual mistakes are a key as text (base64, hex) or with a newline after it (echo,
	 * an editor): say what the file holds and how a key is made. */
	if (size != KEY_BYTES) {
		persist_say(LOG_ERROR,
		            "key file %s: must be a regular file of exactly %u bytes, and it has "
		            "%lld bytes; the key is raw bytes, not text: make one with "
		            "(umask 077; head -c 32 /dev/urandom > FILE)",
		            path, (unsigned)KEY_BYTES, (long long)size);
		err = ENOKEY;
		goto fail_close;
	}
	key = secretfile_read(fd, path, &key_file_kind, LOG_ERROR, KEY_BYTES, &got);
	if (key == NULL) {
		err = errno;
		goto fail_close;
	}
	/* The file shrank since secretfile_open looked at it. */
	if (got != KEY_BYTES) {
		persist_say(LOG_ERROR, "key file %s: short read", path);
		err = EIO;
		goto fail_free;
	}
	close(fd);
	sodium_mprotect_readonly(key);
	return key;

fail_free:
	sodium_free(key);
fail_close:
	close(fd);
fail:
	errno = err;
	return NULL;
}

/*
 * Create (or recreate, empty) segment ${seq} with its header, durable with its directory
 * entry. Returns the fd, or -1 with errno, the file removed again when ${remove_on_failure}:
 * left behind without its header (the disk is full), a new segment would be the last segment
 * at the next start. The first segment after the snapshot is kept instead (startup rewrites
 * its header again): without it the snapshot would have no log, which is damage.
 */
static int segment_make(const struct persist *p, uint64_t seq, bool remove_on_failure)
{
	uint8_t h[FILE_HEADER_BYTES];
	char name[NAME_BYTES];
	int fd, err;

	log_name(name, seq);
	fd = openat(p->dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, DATA_FILE_MODE);
	if (fd == -1)
		goto fail;
	if (p->as_dir_owner && own_like_dir(p->dir_fd, fd) == -1)
		goto fail_unlink;
	header_build(h, LOG_MAGIC, seq, wall_ms(), p->key);
	if (write_full(fd, h, sizeof(h), 0) == -1 || fdatasync(fd) == -1 || fsync(p->dir_fd) == -1)
		goto fail_unlink;
	return fd;

fail_unlink:
	err = errno;
	close(fd);
	/* Not synced, and a crash may come first: startup removes such a file too. */
	if (remove_on_failure)
		unlinkat(p->dir_fd, name, 0);
	errno = err;
fail:
	return -1;
}

static void say_segment_failure(const struct persist *p, uint64_t seq, int err)
{
	char name[NAME_BYTES];

	log_name(name, seq);
	persist_say(LOG_ERROR, "cannot create %s/%s: %s%s", p->dir, name, strerror(err),
	            read_only_hint(err));
}

/* segment_make, logged: for startup, on the loop's thread before it runs. */
static int segment_create(struct persist *p, uint64_t seq, bool remove_on_failure)
{
	int fd = segment_make(p, seq, remove_on_failure);

	if (fd == -1)
		say_segment_failure(p, seq, errno);
	return fd;
}

static void sync_failed_snapshot_now(struct persist *p);

/*
 * An fdatasync of segment ${seq} failed with ${err}: refuse changes until a snapshot above it,
 * and start that snapshot now (sync_failed_snapshot_now) rather than at the next tick.
 */
static void segment_sync_failed(struct persist *p, uint64_t seq, int err)
{
	char name[NAME_BYTES];

	log_name(name, seq);
	persist_say(LOG_ERROR,
	            "FSYNC FAILED on %s/%s: %s. Its unsynced records cannot be trusted: changes "
	            "are refused until a snapshot covers them",
	            p->dir, name, strerror(err));
	p->state = STATE_SYNC_FAILED;
	p->sync_failed_seq = seq;
	p->fsize_limited = false;
	/* The store already holds these changes; the snapshot that ends this state saves them. */
	buf_reset(&p->batch);
	p->failed_len = 0;
	sync_failed_snapshot_now(p);
}

static void enter_sync_failed(struct persist *p, int err)
{
	segment_sync_failed(p, p->seq, err);
}

static void note_sync_error(struct persist *p)
{
	int err = atomic_exchange(&p->sync_errno, 0);

	if (err != 0 && p->state != STATE_SYNC_FAILED)
		enter_sync_failed(p, err);
}

/*
 * Take the result of the segment the worker was given to retire (snapshot_switch), once it
 * has synced and closed it: from then on records may reach the segment after it. A failed
 * sync is the retired segment's, which the snapshot that switched away from it covers.
 */
static void switch_sync_check(struct persist *p)
{
	if (!p->retiring || !atomic_load(&p->retired))
		return;
	p->retiring = false;
	p->switch_waits = false;
	/* Written before retired was set, and read after it was seen set. */
	if (p->retired_err != 0 && p->state != STATE_SYNC_FAILED)
		segment_sync_failed(p, p->retire_seq, p->retired_err);
}

/* Empty the wake eventfd (nonblocking): its count only says the worker retired a segment. */
static void wake_drain(const struct persist *p)
{
	uint64_t count;

	while (read(p->wake_fd, &count, sizeof(count)) == -1 && errno == EINTR)
		;
}

/* Wait for the worker to retire the segment it was given (the stop's final commit, or a
 * change that would otherwise reach the next segment first), and take its result; for
 * ${timeout_ms} at most (negative: no bound). Returns whether nothing waits any more. */
static bool switch_sync_wait_ms(struct persist *p, int timeout_ms)
{
	struct pollfd pfd = {.fd = p->wake_fd, .events = POLLIN};
	uint64_t until = clock_ms(CLOCK_MONOTONIC) + (timeout_ms > 0 ? (uint64_t)timeout_ms : 0);
	uint64_t now;

	while (p->retiring && !atomic_load(&p->retired)) {
		/* The count may be an earlier retire's: emptied, the next poll waits for this. */
		wake_drain(p);
		now = clock_ms(CLOCK_MONOTONIC);
		if (timeout_ms >= 0 && now >= until)
			break;
		if (!atomic_load(&p->retired))
			poll(&pfd, 1, timeout_ms < 0 ? -1 : (int)(until - now));
	}
	switch_sync_check(p);
	return !p->switch_waits;
}

static void switch_sync_wait(struct persist *p)
{
	switch_sync_wait_ms(p, -1);
}

/*
 * The most a snapshot of the store can write: the header, the payload the store counts and
 * each record's overhead, for every session and flash message it holds (those past their
 * expiry and not yet reclaimed too, which the snapshot skips), and the END record. A snapshot
 * that cannot fit under the file-size limit would only fail, and each try leaves a new
 * segment behind.
 */
static uint64_t snapshot_bound(const struct persist *p)
{
	struct store_stats ss;
	uint64_t sealing = p->key ? NONCE_BYTES + TAG_BYTES : 0;

	store_stats(p->st, NULL, 0, &ss);
	return FILE_HEADER_BYTES + ss.payload + ss.sessions * (SNAP_SESSION_OVERHEAD + sealing) +
	       ss.flashes * (SNAP_MESSAGE_OVERHEAD + sealing) + SNAP_END_BYTES + sealing;
}

static bool snapshot_fits(const struct persist *p)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_FSIZE, &lim) == -1 || lim.rlim_cur == RLIM_INFINITY)
		return true;
	return snapshot_bound(p) <= (uint64_t)lim.rlim_cur;
}

/*
 * About the most the next snapshot will write, for the room it asks of the volume:
 * snapshot_bound, or the last snapshot and the log since (whose records brought every byte
 * the store holds beyond it) when that is less, as it can be while many sessions past their
 * expiry wait to be reclaimed. The bound counts the sessions' bytes, not the store's memory:
 * built on the memory (tables, allocator rounding, for small sessions about twice what a
 * snapshot writes), the reserve refused changes on a volume a third full; built on the log,
 * whose overwrites of the same sessions a snapshot writes once, it refused them on a roomy
 * volume when snapshots fell behind a busy log.
 */
static uint64_t snapshot_estimate(const struct persist *p)
{
	uint64_t bound = snapshot_bound(p),
	         grown = FILE_HEADER_BYTES + p->snap_bytes + p->log_bytes;

	return grown < bound ? grown : bound;
}

/*
 * The free space a snapshot asks of the volume, kept from the log (log_has_room): its
 * estimate, a quarter more (the store grows as it is written), and SNAPSHOT_ROOM_SLACK.
 */
static uint64_t snapshot_room_needed(const struct persist *p)
{
	uint64_t estimate = snapshot_estimate(p);

	return estimate + estimate / 4 + SNAPSHOT_ROOM_SLACK;
}

/*
 * The bytes sessd may still write on the data directory's volume (root may use the blocks
 * reserved for it), or UINT64_MAX when that cannot be told: a retry is then not held back.
 */
static uint64_t volume_free(const struct persist *p)
{
	struct statvfs vfs;

	/* A volume of no blocks tells nothing: a tmpfs without a size, some FUSE and network
	 * filesystems. Taken for a full one, it had every change refused. */
	if (fstatvfs(p->dir_fd, &vfs) == -1 || vfs.f_blocks == 0 || vfs.f_frsize == 0)
		return UINT64_MAX;
	return (uint64_t)(geteuid() == 0 ? vfs.f_bfree : vfs.f_bavail) * vfs.f_frsize;
}

/*
 * The volume has no room for a snapshot: say what takes its space and how much more is
 * needed. Most of it is often sessd's own log, grown while no snapshot could be written,
 * which only a snapshot reclaims: every segment and snapshot there now is deleted once the
 * next snapshot is durable.
 */
static void say_snapshot_room(const struct persist *p)
{
	uint64_t logs = 0, snaps = 0, avail = volume_free(p), needed = snapshot_room_needed(p);
	char name[NAME_BYTES];
	struct listing l;
	struct stat sb;

	if (avail >= needed)
		return;
	if (listing_read(p->dir_fd, &l, false) == 0) {
		for (size_t i = 0; i < l.n_logs; i++) {
			log_name(name, l.logs[i]);
			if (fstatat(p->dir_fd, name, &sb, 0) == 0)
				logs += (uint64_t)sb.st_size;
		}
		for (size_t i = 0; i < l.n_snaps; i++) {
			snap_name(name, l.snaps[i]);
			if (fstatat(p->dir_fd, name, &sb, 0) == 0)
				snaps += (uint64_t)sb.st_size;
		}
		listing_finish(&l);
	}
	persist_say(LOG_ERROR,
	            "%s: a snapshot needs about %" PRIu64 " bytes free and the volume has %" PRIu64
	            ". sessd's log segments there take %" PRIu64 " bytes and its snapshots %" PRIu64
	            ", all deleted once a snapshot is written; until then the log is not "
	            "reclaimed, and changes are refused (IO_ERROR) whenever it fills the volume. "
	            "Free at least %" PRIu64 " bytes on the volume (sessd's files are all "
	            "needed) or move the data directory to a larger one",
	            p->dir, needed, avail, logs, snaps, needed - avail);
}

/*
 * A snapshot failed with ${err} (0: no errno, the writer was killed) after ${took_ms}: set
 * when it is tried again, and say how in words for the failure's message. Not 30 s later
 * alone: the log grows meanwhile without bound, and on a volume that was full a moment ago
 * it refills the space returned within a second at full speed, after which no snapshot fits
 * to reclaim it and every change is refused from then on, across restarts. So a failure for
 * want of space is retried as soon as the volume has room for a snapshot (persist_tick looks
 * every second), and any other once the log has grown by another --snapshot-log-bytes; a
 * snapshot that would only fail for space again is not tried before the 30 s are up.
 */
static const char *snapshot_failed(struct persist *p, int err, uint64_t took_ms)
{
	uint64_t spacing;

	p->retry_for_room = err == ENOSPC || err == EDQUOT;
	spacing = p->retry_for_room ? SNAPSHOT_RETRY_ROOM_FIRST_MS : SNAPSHOT_RETRY_GROWN_FIRST_MS;
	for (unsigned i = 0; i < p->snapshot_failures && spacing < SNAPSHOT_RETRY_MS; i++)
		spacing *= 2;
	p->snapshot_failures++;
	p->next_snapshot_ms = clock_ms(CLOCK_MONOTONIC) + SNAPSHOT_RETRY_MS;
	p->retry_after_ms = clock_ms(CLOCK_MONOTONIC) + (took_ms > spacing ? took_ms : spacing);
	p->retry_log_bytes = p->log_bytes + p->snapshot_log_bytes;
	if (p->retry_for_room)
		return "as soon as the volume has room for it, within 30 s otherwise";
	if (p->state == STATE_SYNC_FAILED && !p->fsize_limited)
		return "within 30 s, sooner after the first failures (changes are refused until a "
		       "snapshot is written; a file system mounted read-only after disk errors "
		       "(see dmesg) must be repaired and sessd restarted)";
	return "in 30 s, or once the log has grown by another --snapshot-log-bytes";
}

/*
 * Whether a failed snapshot's retry is due (see snapshot_failed); true when none waits. The
 * room asked of the volume is less than what log_has_room keeps from the log, so that a log
 * stopped at that reserve does not keep the retry waiting.
 */
static bool snapshot_retry_due(const struct persist *p)
{
	uint64_t mono_ms = clock_ms(CLOCK_MONOTONIC);

	if (p->next_snapshot_ms == 0 || mono_ms >= p->next_snapshot_ms)
		return true;
	if (mono_ms < p->retry_after_ms)
		return false;
	if (p->retry_for_room)
		return volume_free(p) >= snapshot_estimate(p) + SNAPSHOT_ROOM_SLACK;
	return p->log_bytes >= p->retry_log_bytes;
}

/*
 * Whether the snapshot that must follow a failed sync is due again (see snapshot_failed):
 * at once the first time, then after the failure's spacing, which doubles to 30 s. A file
 * system the kernel made read-only fails every try: tried every tick, it logged an error a
 * second, each promising a retry in 30 s.
 */
static bool sync_failed_retry_due(const struct persist *p)
{
	if (p->next_snapshot_ms == 0 || clock_ms(CLOCK_MONOTONIC) >= p->retry_after_ms)
		return true;
	return p->retry_for_room && volume_free(p) >= snapshot_estimate(p) + SNAPSHOT_ROOM_SLACK;
}

/*
 * A write failed with EFBIG: name the file-size limit in the log, once for each of the two
 * cases. Below --snapshot-log-bytes, the log meets the limit before a snapshot is due, and
 * will again after each: a snapshot then starts a new segment when the live sessions fit
 * under the limit; when they do not, nothing can be written until the limit is raised or
 * enough sessions expire, which the operator must be told rather than promised a snapshot.
 */
static void say_fsize_limit(struct persist *p)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_FSIZE, &lim) == -1 || lim.rlim_cur == RLIM_INFINITY)
		return;
	if (!snapshot_fits(p)) {
		if (p->fsize_nofit_said)
			return;
		p->fsize_nofit_said = true;
		persist_say(LOG_ERROR,
		            "the file-size limit (ulimit -f, LimitFSIZE=) of %" PRIu64
		            " bytes is met, and a snapshot of the live sessions would not fit "
		            "under it either: every change is refused (IO_ERROR) until the limit "
		            "is raised or enough sessions expire",
		            (uint64_t)lim.rlim_cur);
		return;
	}
	if (p->fsize_said || (uint64_t)lim.rlim_cur >= p->snapshot_log_bytes)
		return;
	p->fsize_said = true;
	persist_say(LOG_WARN,
	            "the file-size limit (ulimit -f, LimitFSIZE=) of %" PRIu64
	            " bytes is below --snapshot-log-bytes %" PRIu64
	            ": the log segment reaches the limit first; each time it does, a snapshot "
	            "starts a new segment, and changes are refused (IO_ERROR) until it is "
	            "written. Raise the limit or lower --snapshot-log-bytes below it",
	            (uint64_t)lim.rlim_cur, p->snapshot_log_bytes);
}

/*
 * A snapshot is due for the file-size limit: the last write hit it, or the snapshot that
 * was to cover a batch it refused failed, and no snapshot runs, none waits for its retry
 * time, and one would fit.
 */
static bool fsize_snapshot_due(const struct persist *p)
{
	return p->fsize_limited && p->state != STATE_OK && p->child <= 0 &&
	       clock_ms(CLOCK_MONOTONIC) >= p->next_snapshot_ms && snapshot_fits(p);
}

/* Write the batch at the end of the segment (and fsync under always). Returns 0 or -1. */
static int commit_batch(struct persist *p)
{
	char name[NAME_BYTES];

	note_sync_error(p);
	switch_sync_check(p);
	if (p->state != STATE_OK || p->batch.len == 0)
		return p->state == STATE_OK ? 0 : -1;
	/* Only records no client waits for (CLOCK) are logged while changes wait for the
	 * segment before this one to be durable (persist_must_wait): they go out after it. One
	 * that a client does wait for waits here instead of reaching the disk first. */
	if (p->switch_waits) {
		if (!p->unacked)
			return 0;
		switch_sync_wait(p);
		if (p->state != STATE_OK)
			return -1;
	}
	if (write_full(p->fd, p->batch.data, p->batch.len, p->file_off) == -1) {
		int err = errno;

		log_name(name, p->seq);
		persist_say(LOG_ERROR,
		            "writing %s/%s at offset %" PRIu64 " failed: %s; changes are refused "
		            "until a retry succeeds",
		            p->dir, name, p->file_off, strerror(err));
		p->state = STATE_WRITE_FAILED;
		p->failed_len = p->batch.len;
		p->fsize_limited = err == EFBIG;
		if (p->fsize_limited)
			say_fsize_limit(p);
		return -1;
	}
	p->file_off += p->batch.len;
	p->log_bytes += p->batch.len;
	p->appended += p->batch.len;
	buf_reset(&p->batch);
	if (p->fsync == PERSIST_FSYNC_ALWAYS) {
		if (fdatasync(p->fd) == -1) {
			enter_sync_failed(p, errno);
			return -1;
		}
	} else if (p->fsync == PERSIST_FSYNC_EVERYSEC) {
		atomic_store(&p->sync_dirty, true);
	}
	return 0;
}

static void retry_write(struct persist *p)
{
	if (write_full(p->fd, p->batch.data, p->batch.len, p->file_off) == -1) {
		p->fsize_limited = errno == EFBIG;
		return;
	}
	p->fsize_limited = false;
	if (p->fsync == PERSIST_FSYNC_ALWAYS && fdatasync(p->fd) == -1) {
		enter_sync_failed(p, errno);
		return;
	}
	if (p->fsync == PERSIST_FSYNC_EVERYSEC)
		atomic_store(&p->sync_dirty, true);
	p->file_off += p->batch.len;
	p->log_bytes += p->batch.len;
	p->appended += p->batch.len;
	buf_reset(&p->batch);
	p->failed_len = 0;
	p->state = STATE_OK;
	persist_say(LOG_INFO, "the log is writable again; changes are accepted");
}

/* Delete the segments and snapshots below ${seq}, which a durable snapshot covers. */
static void remove_covered(int dir_fd, uint64_t seq)
{
	char name[NAME_BYTES];
	struct listing l;

	/* Failing here costs only disk space: startup deletes them too. */
	if (listing_read(dir_fd, &l, false) == -1)
		return;
	for (size_t i = 0; i < l.n_logs && l.logs[i] < seq; i++) {
		log_name(name, l.logs[i]);
		unlinkat(dir_fd, name, 0);
	}
	for (size_t i = 0; i < l.n_snaps && l.snaps[i] < seq; i++) {
		snap_name(name, l.snaps[i]);
		unlinkat(dir_fd, name, 0);
	}
	listing_finish(&l);
}

static bool worker_has_jobs(const struct persist *p)
{
	return p->retire_fd != -1 || (p->prep_seq != 0 && !atomic_load(&p->prep_ready)) ||
	       p->remove_below != 0;
}

/*
 * The worker's condition variable, its timed waits on CLOCK_MONOTONIC: on the default
 * CLOCK_REALTIME, a step of the wall clock back by a day (NTP correcting a host that booted
 * with its clock ahead) had the everysec sync sleep for that day.
 */
static void sync_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

/* Wake the loop (persist_wake_fd). */
static void wake_loop(const struct persist *p)
{
	const uint64_t one = 1;
	/* Fails only with EAGAIN, at a count the loop never lets pile up: it is awake already. */
	ssize_t r = write(p->wake_fd, &one, sizeof(one));

	(void)r;
}

/*
 * The file worker: the fdatasync, directory fsync and unlink calls that take tens of
 * milliseconds on a busy disk (PERSIST_FSYNC_EVERYSEC's once-a-second fdatasync, and a
 * snapshot's file work), so that the loop never waits for them. It holds sync_mutex only
 * to take its jobs and hand back results, never across a system call that waits for the
 * disk. Jobs run in the order retire, remove, create: the segment switched away from is
 * durable before anything is written to the next one (the loop waits for it: see
 * snapshot_switch), and its result is handed back, with a wake of the loop, before the
 * unlinks of a snapshot's old files. At sync_stop it finishes the jobs it was given, and
 * persist_close does the final fdatasync.
 */
static void *file_worker_main(void *arg)
{
	struct persist *p = arg;

	pthread_mutex_lock(&p->sync_mutex);
	for (;;) {
		int retire, cur, fd = -1, err = 0;
		uint64_t prep, below;

		if (!worker_has_jobs(p)) {
			if (p->sync_stop)
				break;
			if (p->fsync == PERSIST_FSYNC_EVERYSEC) {
				struct timespec until;

				clock_gettime(CLOCK_MONOTONIC, &until);
				until.tv_sec += 1;
				pthread_cond_timedwait(&p->sync_cond, &p->sync_mutex, &until);
			} else {
				pthread_cond_wait(&p->sync_cond, &p->sync_mutex);
			}
			if (p->sync_stop || !atomic_exchange(&p->sync_dirty, false))
				continue;
			fd = p->fd;
			pthread_mutex_unlock(&p->sync_mutex);
			/* Changes are refused from the moment the loop takes this failure, and the
			 * snapshot that ends the refusal starts then: at once, not at its next
			 * change or tick. */
			if (fdatasync(fd) == -1) {
				atomic_store(&p->sync_errno, errno);
				wake_loop(p);
			}
			pthread_mutex_lock(&p->sync_mutex);
			continue;
		}
		retire = p->retire_fd;
		prep = atomic_load(&p->prep_ready) ? 0 : p->prep_seq;
		below = p->remove_below;
		cur = p->fd;
		p->retire_fd = -1;
		p->remove_below = 0;
		pthread_mutex_unlock(&p->sync_mutex);
		if (retire != -1) {
			/* Under always every commit synced it (but not a cut a file-size limit
			 * made, fsize_drop_batch): cheap when nothing is dirty. */
			p->retired_err = fdatasync(retire) == -1 ? errno : 0;
			close(retire);
			atomic_store(&p->retired, true);
			wake_loop(p);
		}
		if (below != 0)
			remove_covered(p->dir_fd, below);
		if (prep != 0) {
			/* Most of the segment the new one follows goes to the disk now, while the
			 * loop appends to it: the sync that must end before anything reaches the
			 * new one (the retire above, at the switch) is then left the last moments'
			 * records. The fd stays open: only this thread closes a retired segment. */
			if (p->fsync != PERSIST_FSYNC_ALWAYS && fdatasync(cur) == -1)
				atomic_store(&p->sync_errno, errno);
			fd = segment_make(p, prep, true);
			err = fd == -1 ? errno : 0;
		}
		pthread_mutex_lock(&p->sync_mutex);
		if (prep != 0) {
			p->prep_fd = fd;
			p->prep_err = err;
			atomic_store(&p->prep_ready, true);
			/* The loop switches to it at once (persist_woken): otherwise only at its
			 * next commit or tick, and while changes are refused no commit comes. */
			wake_loop(p);
		}
	}
	pthread_mutex_unlock(&p->sync_mutex);
	return NULL;
}

/* The snapshot child: writes snap.${seq} from its copy-on-write image of the store. */
struct snap_writer {
	int fd;
	uint64_t seq;
	const uint8_t *key;
	uint64_t time_ms;
	struct buf out;
	struct buf plain;
	uint64_t flushed;
	uint8_t type[64];
	size_t type_len;
	uint64_t sessions;
	uint64_t records;
};

static int snap_flush(struct snap_writer *w, bool force)
{
	if (w->out.len == 0 || (!force && w->out.len < SNAPSHOT_WRITE_CHUNK))
		return 0;
	if (write_full(w->fd, w->out.data, w->out.len, w->flushed) == -1)
		return -1;
	w->flushed += w->out.len;
	buf_reset(&w->out);
	return 0;
}

static int snap_emit(struct snap_writer *w, uint8_t *end)
{
	w->plain.len = (size_t)(end - w->plain.data);
	if (record_emit(&w->out, w->key, w->seq, w->flushed + w->out.len, w->plain.data,
	                w->plain.len) == -1)
		return -1;
	w->records++;
	return snap_flush(w, false);
}

static uint8_t *snap_begin(struct snap_writer *w, size_t payload, uint8_t type)
{
	buf_reset(&w->plain);
	if (buf_reserve(&w->plain, payload + 9) == -1)
		return NULL;
	return put_u64(put_u8(w->plain.data, type), w->time_ms);
}

static int snap_on_session(void *arg, const struct store_session_view *s)
{
	struct snap_writer *w = arg;
	uint8_t *o =
	    snap_begin(w, 2 + s->ns_len + s->id_len + 1 + 8 + 4 + s->data_len, REC_SNAP_SESSION);

	if (o == NULL || s->data_len > REC_MAX_BODY)
		return -1;
	o = put_bytes(put_u8(o, (uint8_t)s->ns_len), s->ns, s->ns_len);
	o = put_bytes(put_u8(o, (uint8_t)s->id_len), s->id, s->id_len);
	o = put_u8(o, s->has_data ? 1 : 0);
	o = put_u64(o, s->expires_at_ms);
	o = put_u32(o, s->has_data ? (uint32_t)s->data_len : 0);
	if (s->has_data)
		o = put_bytes(o, s->data, s->data_len);
	w->sessions++;
	return snap_emit(w, o);
}

static int snap_on_type(void *arg, const uint8_t *type, size_t type_len, size_t count)
{
	struct snap_writer *w = arg;

	(void)count;
	if (type_len == 0 || type_len > sizeof(w->type))
		return -1;
	memcpy(w->type, type, type_len);
	w->type_len = type_len;
	return 0;
}

static int snap_on_msg(void *arg, const void *msg, size_t len, bool is_bin)
{
	struct snap_writer *w = arg;
	uint8_t *o = snap_begin(w, 1 + w->type_len + 1 + 4 + len, REC_SNAP_FLASH);

	if (o == NULL || len > REC_MAX_BODY)
		return -1;
	o = put_bytes(put_u8(o, (uint8_t)w->type_len), w->type, w->type_len);
	o = put_u8(o, is_bin ? 1 : 0);
	o = put_u32(o, (uint32_t)len);
	o = put_bytes(o, msg, len);
	return snap_emit(w, o);
}

/* What snap_write wrote. */
struct snap_totals {
	uint64_t sessions;
	uint64_t records; /* sessions, flash messages and the end record */
	uint64_t bytes;
};

/*
 * snap_write(dir_fd, tmp, key, st, seq, time_ms, as_dir_owner, totals):
 * Write the sessions of ${st} alive at ${time_ms} as snapshot ${seq} into the new file ${tmp}
 * in ${dir_fd}, and make it durable; the caller renames it into place. With ${as_dir_owner}
 * (--check-data, perhaps run as root) the file gets the directory's owner (own_like_dir).
 * Returns 0 with what was written in ${totals}, or -1 with ${tmp} removed and errno set (not
 * logged: the snapshot child has nowhere to log).
 */
static int snap_write(int dir_fd, const char *tmp, const uint8_t *key, const struct store *st,
                      uint64_t seq, uint64_t time_ms, bool as_dir_owner, struct snap_totals *totals)
{
	struct snap_writer w = {.seq = seq, .key = key, .time_ms = time_ms};
	uint8_t h[FILE_HEADER_BYTES];
	uint8_t *o;
	int rc = -1, err;

	buf_init(&w.out);
	buf_init(&w.plain);
	w.fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, DATA_FILE_MODE);
	if (w.fd == -1)
		goto out;
	if (as_dir_owner && own_like_dir(dir_fd, w.fd) == -1)
		goto fail;
	header_build(h, SNAP_MAGIC, seq, time_ms, key);
	if (buf_append(&w.out, h, sizeof(h)) == -1 ||
	    store_foreach(st, time_ms, snap_on_session, snap_on_type, snap_on_msg, &w) == -1)
		goto fail;
	o = snap_begin(&w, 8, REC_SNAP_END);
	if (o == NULL || snap_emit(&w, put_u64(o, w.sessions)) == -1 || snap_flush(&w, true) == -1)
		goto fail;
	if (fsync(w.fd) == -1)
		goto fail;
	if (close(w.fd) == -1) {
		err = errno;
		unlinkat(dir_fd, tmp, 0);
		errno = err;
		goto out;
	}
	totals->sessions = w.sessions;
	totals->records = w.records;
	totals->bytes = w.flushed;
	rc = 0;
	goto out;

fail:
	err = errno;
	close(w.fd);
	unlinkat(dir_fd, tmp, 0);
	errno = err; /* the caller's message names the first failure */
out:
	buf_finish(&w.out);
	buf_finish(&w.plain);
	return rc;
}

/*
 * Leave the snapshot child, first telling the parent what happened (${stage} failed with
 * ${err}, or nothing did when ${stage} is NULL) and that it may reap it (persist_commit).
 */
static _Noreturn void snapshot_child_exit(struct persist *p, const char *stage, int err)
{
	p->child_report->stage = stage;
	p->child_report->err = err;
	p->child_report->exiting_ms = clock_ms(CLOCK_MONOTONIC);
	atomic_store(&p->child_report->exiting, true);
	/* The parent reaps it at once (persist_woken): a snapshot that ends a refusal of changes
	 * must not wait for the next tick to be taken. A writer killed instead is reaped at the
	 * next tick, as before. */
	wake_loop(p);
	_exit(stage ? 3 : 0);
}

/*
 * Close every descriptor of the forked writer but stdio, ${keep_a} and ${keep_b} (the data
 * directory, and the loop's wake it writes as it exits). It inherits all the
 * daemon's: holding its sockets, it kept each connection the daemon closed open for the peer
 * (no end of file) and the listeners taking connections nobody answered, for as long as a
 * snapshot took (seconds for a million sessions, and up to SNAPSHOT_STOP_WAIT_MS of a stop).
 * A kernel without close_range (before 5.9) gets them closed one by one.
 */
static void child_close_all_but(int keep_a, int keep_b)
{
	int low = keep_a < keep_b ? keep_a : keep_b, high = keep_a < keep_b ? keep_b : keep_a;
	long max = sysconf(_SC_OPEN_MAX);

	if ((low <= 3 || close_range(3, (unsigned)low - 1, 0) == 0) &&
	    (high <= low + 1 || close_range((unsigned)low + 1, (unsigned)high - 1, 0) == 0) &&
	    close_range((unsigned)high + 1, ~0u, 0) == 0)
		return;
	if (max < 0 || max > INT_MAX)
		max = INT_MAX;
	for (int fd = 3; fd < max; fd++) {
		if (fd != keep_a && fd != keep_b)
			close(fd);
	}
}

static void snapshot_child(struct persist *p, struct store *st, uint64_t seq, uint64_t now_ms,
                           pid_t parent)
{
	char tmp[NAME_BYTES], name[NAME_BYTES];
	struct snap_totals totals;
	int err;

	/* Die with the daemon: an orphan must not rename a snapshot into a directory that a new
	 * sessd already owns. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	/* Without getrandom (a kernel before 3.17, a seccomp filter without it) libsodium reads
	 * a descriptor of /dev/urandom it keeps, which child_close_all_but closes: let it go
	 * first, and the first nonce opens it again in the child. */
	randombytes_close();
	child_close_all_but(p->dir_fd, p->wake_fd);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	snap_tmp_name(tmp, seq, getpid());
	snap_name(name, seq);
	if (snap_write(p->dir_fd, tmp, p->key, st, seq, now_ms, p->as_dir_owner, &totals) == -1)
		snapshot_child_exit(p, "writing it", errno);
	if (renameat(p->dir_fd, tmp, p->dir_fd, name) == -1 || fsync(p->dir_fd) == -1) {
		err = errno;
		unlinkat(p->dir_fd, tmp, 0);
		snapshot_child_exit(p, "renaming it into place", err);
	}
	p->child_report->sessions = totals.sessions;
	p->child_report->records = totals.records;
	p->child_report->bytes = totals.bytes;
	snapshot_child_exit(p, NULL, 0);
}

/* A durable snapshot ${seq} covers every segment below it: the worker deletes them (an
 * unlink of a large file takes tens of milliseconds). */
static void snapshot_done(struct persist *p, uint64_t seq)
{
	pthread_mutex_lock(&p->sync_mutex);
	p->remove_below = seq;
	pthread_cond_signal(&p->sync_cond);
	pthread_mutex_unlock(&p->sync_mutex);
	p->log_bytes = p->log_bytes > p->switch_log_bytes ? p->log_bytes - p->switch_log_bytes : 0;
	p->switch_log_bytes = 0;
	p->snapshot_failures = 0;
	if (p->state == STATE_SYNC_FAILED && seq > p->sync_failed_seq) {
		p->state = STATE_OK;
		persist_say(
		    LOG_INFO,
		    "snapshot %" PRIu64 " covers the segment %s; changes are accepted again", seq,
		    p->fsize_limited ? "that reached the file-size limit" : "whose fsync failed");
		p->fsize_limited = false;
	}
}

/*
 * Why the snapshot child failed, in words: a signal by name (SIGKILL is most often the kernel
 * out of memory: the child's copy-on-write pages count against the machine as the parent
 * goes on writing), otherwise the step and error the child reported. ${status} is waitpid's,
 * or -1 when the child could not be waited for.
 */
static void child_failure_text(int status, const struct snapshot_report *rep, char *out,
                               size_t size)
{
	if (status == -1) {
		snprintf(out, size, "the writer could not be waited for");
	} else if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		const char *abbrev = sigabbrev_np(sig);

		if (abbrev != NULL)
			snprintf(out, size, "the writer was killed by SIG%s%s", abbrev,
			         sig == SIGKILL ? " (out of memory?)" : "");
		else
			snprintf(out, size, "the writer was killed by signal %d", sig);
	} else if (WIFEXITED(status) && rep->stage != NULL) {
		snprintf(out, size, "%s failed: %s", rep->stage, strerror(rep->err));
	} else {
		snprintf(out, size, "the writer exited with status %d",
		         WIFEXITED(status) ? WEXITSTATUS(status) : status);
	}
}

static void snapshot_reap(struct persist *p, bool block)
{
	char tmp[NAME_BYTES], name[NAME_BYTES], why[160];
	const char *retry;
	uint64_t took_ms;
	int status;
	pid_t r;

	if (p->child <= 0)
		return;
	do
		r = waitpid(p->child, &status, block ? 0 : WNOHANG);
	while (r == -1 && errno == EINTR);
	if (r == 0)
		return;
	took_ms = (r == p->child && p->child_report->exiting_ms != 0 ? p->child_report->exiting_ms
	                                                             : clock_ms(CLOCK_MONOTONIC)) -
	          p->child_started_ms;
	if (r == p->child && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		const struct snapshot_report *rep = p->child_report;

		snap_name(name, p->child_seq);
		persist_say(LOG_INFO,
		            "snapshot %s written: %" PRIu64 " sessions (%" PRIu64
		            " records), %" PRIu64 " bytes, in %" PRIu64 ".%03" PRIu64 " s",
		            name, rep->sessions, rep->records, rep->bytes, took_ms / 1000,
		            took_ms % 1000);
		p->snap_bytes = rep->bytes;
		snapshot_done(p, p->child_seq);
	} else if (p->child_stopped) {
		snap_tmp_name(tmp, p->child_seq, p->child);
		unlinkat(p->dir_fd, tmp, 0);
		persist_say(LOG_WARN,
		            "stopping: snapshot %" PRIu64 " was still being written after %" PRIu64
		            ".%03" PRIu64 " s; stopped it unfinished (the log keeps every change; "
		            "the next start replays it and writes a snapshot again)",
		            p->child_seq, took_ms / 1000, took_ms % 1000);
	} else {
		snap_tmp_name(tmp, p->child_seq, p->child);
		unlinkat(p->dir_fd, tmp, 0);
		child_failure_text(r == p->child ? status : -1, p->child_report, why, sizeof(why));
		retry = snapshot_failed(
		    p, r == p->child && WIFEXITED(status) ? p->child_report->err : 0, took_ms);
		persist_say(LOG_WARN,
		            "snapshot %" PRIu64 " failed after %" PRIu64 ".%03" PRIu64
		            " s: %s; the log is kept and the snapshot will be retried %s",
		            p->child_seq, took_ms / 1000, took_ms % 1000, why, retry);
		if (p->retry_for_room)
			say_snapshot_room(p);
	}
	p->child = 0;
}

/*
 * Ask for a snapshot: the file worker creates segment seq + 1, durable with its header, and
 * snapshot_switch, called by the worker's wake (persist_woken) or the next commit or tick,
 * switches to it and forks once it is.
 * Until then the log goes on in the current segment. Asking again meanwhile does nothing.
 */
static void snapshot_start(struct persist *p)
{
	if (p->snapshot_wanted)
		return;
	pthread_mutex_lock(&p->sync_mutex);
	p->prep_seq = p->seq + 1;
	pthread_cond_signal(&p->sync_cond);
	pthread_mutex_unlock(&p->sync_mutex);
	p->snapshot_wanted = true;
}

/*
 * Changes are refused for a failed sync (STATE_SYNC_FAILED) until a snapshot covers the
 * segment: start it now, where the failure is found (or where a snapshot that was running then
 * has been reaped), rather than at the next tick. Waiting for the tick, then for another to
 * switch to the segment the worker made and another to reap the writer, refused every change
 * for about three seconds; the worker's and the writer's wakes (persist_woken) carry it on
 * from here. Not while a snapshot runs (its end comes back here), nor after a snapshot failed
 * since the last one written, nor twice within SYNC_SNAPSHOT_SPACING_MS: a disk that keeps
 * failing gets its snapshots at the tick's pace, as before, not one fork after the other.
 */
static void sync_failed_snapshot_now(struct persist *p)
{
	uint64_t mono_ms;

	if (p->state != STATE_SYNC_FAILED || p->fsize_limited || p->closing || p->child > 0 ||
	    p->snapshot_wanted || p->snapshot_failures > 0)
		return;
	mono_ms = clock_ms(CLOCK_MONOTONIC);
	if (p->sync_snapshot_ms != 0 && mono_ms - p->sync_snapshot_ms < SYNC_SNAPSHOT_SPACING_MS)
		return;
	p->sync_snapshot_ms = mono_ms;
	snapshot_start(p);
}

/*
 * The batch a file-size limit refused cannot be written to this segment ever again: cut off
 * what part of it did get written (a torn record in a segment that is no longer the last
 * would stop startup) and drop it. The store holds its changes and the snapshot about to
 * start saves them; until that snapshot is durable this segment lacks them, so no change may
 * be logged after them (STATE_SYNC_FAILED). Their clients were never answered.
 * Returns 0, or -1 (logged) when the cut failed and the batch stays.
 */
static int fsize_drop_batch(struct persist *p)
{
	char name[NAME_BYTES];

	/* Durable before anything is written to the next segment: a crash that kept the cut
	 * part would leave a torn record in a segment that is no longer the last. */
	if (ftruncate(p->fd, (off_t)p->file_off) == -1 || fdatasync(p->fd) == -1) {
		log_name(name, p->seq);
		persist_say(LOG_ERROR, "cannot cut %s/%s back to %" PRIu64 " bytes: %s", p->dir,
		            name, p->file_off, strerror(errno));
		return -1;
	}
	p->state = STATE_SYNC_FAILED;
	p->sync_failed_seq = p->seq;
	buf_reset(&p->batch);
	p->failed_len = 0;
	return 0;
}

/*
 * The segment snapshot_start asked for is ready: switch to it and fork the child that writes
 * the snapshot for it. Nothing here waits for the disk but the batch's own write; the worker
 * syncs and closes the old segment.
 */
static void snapshot_switch(struct persist *p)
{
	char name[NAME_BYTES];
	uint64_t seq = p->seq + 1, now_ms = wall_ms();
	pid_t parent = getpid(), pid;
	int fd, err;

	/* The last segment switched away from must be retired first (it always is by now: the
	 * worker retires before it makes a segment); the next commit or tick tries again. */
	switch_sync_check(p);
	if (!p->snapshot_wanted || !atomic_load(&p->prep_ready) || p->retiring)
		return;
	/* The old segment must hold everything the forked image of the store shows. */
	if (p->state == STATE_OK)
		commit_batch(p);
	if (p->state == STATE_WRITE_FAILED && (!p->fsize_limited || fsize_drop_batch(p) == -1))
		return;
	pthread_mutex_lock(&p->sync_mutex);
	fd = p->prep_fd;
	err = p->prep_err;
	p->prep_seq = 0;
	p->prep_fd = -1;
	atomic_store(&p->prep_ready, false);
	if (fd != -1) {
		/* Taken by the worker before it made this segment (jobs are taken together, retire
		 * first), so the slot is free. */
		p->retire_fd = p->fd;
		atomic_store(&p->retired, false);
		p->fd = fd;
		pthread_cond_signal(&p->sync_cond);
	}
	pthread_mutex_unlock(&p->sync_mutex);
	p->snapshot_wanted = false;
	if (fd == -1) {
		log_name(name, seq);
		persist_say(LOG_ERROR,
		            "cannot create %s/%s for snapshot %" PRIu64
		            ": %s; the snapshot will be retried %s",
		            p->dir, name, seq, strerror(err), snapshot_failed(p, err, 0));
		if (p->retry_for_room)
			say_snapshot_room(p);
		return;
	}
	/* The old segment must be durable before anything is written to the new one: a power
	 * loss that kept a write to the new segment and lost the end of the old one would leave a
	 * torn record in a segment that is no longer the last, which startup refuses. Under
	 * always every commit synced it. Otherwise the worker syncs it (retire_fd, most of it
	 * synced already as it made the new one), and changes wait for that (persist_must_wait)
	 * while reads go on: a wait of tens of milliseconds for a busy disk here held every
	 * client. The fork need not wait: snap.N makes the old segment redundant, whichever
	 * becomes durable first. A failed sync is the old segment's (switch_sync_check). */
	p->retiring = true;
	p->retire_seq = p->seq;
	p->switch_waits = p->state == STATE_OK && p->fsync != PERSIST_FSYNC_ALWAYS;
	p->seq = seq;
	p->file_off = FILE_HEADER_BYTES;
	/* The new segment is the first of this format in a directory an older sessd wrote: from
	 * now on that sessd refuses the directory. Startup warned that this would come; it may
	 * come unasked (an idle snapshot a minute after the upgrade), so say that it has. */
	if (p->old_segment) {
		log_name(name, seq);
		persist_say(LOG_WARN,
		            "%s/%s begins data format %u (snapshot %" PRIu64
		            "): the older sessd that wrote format 1 can no longer read %s, so "
		            "rolling back to it now needs a copy of the directory made before "
		            "the upgrade (sessd(8), UPGRADING)",
		            p->dir, name, (unsigned)FILE_VERSION, seq, p->dir);
	}
	p->old_segment = false;
	p->switch_log_bytes = p->log_bytes;
	p->log_bytes += FILE_HEADER_BYTES;
	memset(p->child_report, 0, sizeof(*p->child_report));
	atomic_store(&p->child_report->exiting, false);
	p->child_started_ms = clock_ms(CLOCK_MONOTONIC);
	pid = fork();
	if (pid == -1) {
		err = errno;
		persist_say(LOG_WARN, "cannot fork the snapshot writer: %s; it will be retried %s",
		            strerror(err), snapshot_failed(p, err, 0));
		return;
	}
	if (pid == 0)
		snapshot_child(p, p->st, seq, now_ms, parent);
	p->child = pid;
	p->child_seq = seq;
	p->next_snapshot_ms = 0; /* no retry pending: persist_commit may start the next one */
}

/* Say where a record could not be applied, and why. */
static void say_apply_failure(const struct persist *p, const char *name, uint64_t off,
                              const char *why)
{
	persist_say(LOG_ERROR, "%s/%s at offset %" PRIu64 ": cannot apply the record: %s", p->dir,
	            name, off, why ? why : strerror(errno));
}

/* What startup loaded, for the line that says so. */
struct load_totals {
	uint64_t snap_records;
	uint64_t log_records;
	size_t segments;
	uint64_t torn_bytes; /* cut off the last segment */
	uint64_t expired;    /* sessions loaded that had expired by the start */
	uint64_t snap_ms;    /* spent up to the snapshot's end; the rest of the load is the log's */
};

/*
 * The number of sessions snapshot ${name} says it holds, from its END record, the file's last
 * (snap_write): 0 when that record is not there whole, which the load then finds. A hint for
 * presizing only, read before the load so that no table is resized while it runs. The file's
 * size goes in ${size} (left alone when it cannot be read).
 */
static uint64_t snap_count_hint(int dir_fd, const uint8_t *key, struct buf *plain, const char *name,
                                uint64_t seq, uint64_t *size)
{
	size_t body = (key ? NONCE_BYTES + TAG_BYTES : 0) + SNAP_END_BYTES - REC_HEADER_BYTES, len;
	struct mapped m;
	struct record rec;
	const char *why;
	uint64_t count = 0;
	size_t y;

	if (file_map(dir_fd, name, &m) == -1)
		return 0;
	*size = m.size;
	if (m.size >= FILE_HEADER_BYTES + REC_HEADER_BYTES + body) {
		y = m.size - REC_HEADER_BYTES - body;
		if (record_at(m.map, m.size, y, &len) && len == body &&
		    record_open(m.map + y + REC_HEADER_BYTES, len, seq, y, key, true, plain, &rec,
		                &why) == 0 &&
		    rec.type == REC_SNAP_END)
			count = rec.count;
		/* Never more than the file can hold: a table is allocated for it. */
		if (count > m.size / SNAP_SESSION_OVERHEAD)
			count = 0;
	}
	file_unmap(&m);
	return count;
}

/* Refuse snapshot ${name}, damaged at ${off} (${why}), pointing at --check-data. */
static void say_snap_damage(const struct persist *p, const char *name, uint64_t off,
                            const char *why)
{
	persist_say(LOG_ERROR,
	            "%s/%s is corrupt at offset %" PRIu64 " (%s); not starting. Inspect with "
	            "sessd --check-data %s, which says what can be done",
	            p->dir, name, off, why, p->dir);
}

static int load_snapshot(struct persist *p, struct store *st, uint64_t seq, struct load_totals *t)
{
	struct heapahead heap;
	struct snap_load l = {.st = st, .heap = &heap};
	char name[NAME_BYTES];
	uint64_t fail_off = 0, size = 0;
	struct scan s;
	int rc;

	snap_name(name, seq);
	l.count_hint = snap_count_hint(p->dir_fd, p->key, &p->plain, name, seq, &size);
	/* The sessions take about the file's size in memory (SNAP_SESSION_OVERHEAD). */
	heapahead_init(&heap, (size_t)size);
	rc = file_scan(p->dir_fd, p->dir, name, SNAP_MAGIC, seq, p->key, true, snap_load_record, &l,
	               &p->plain, &s, &fail_off);
	heapahead_finish(&heap);
	/* A record out of place (${l}.why) is damage as a bad checksum is; without a why, the
	 * store refused a sound record. */
	if (rc == -1) {
		if (fail_off > 0 && l.why != NULL)
			say_snap_damage(p, name, fail_off, l.why);
		else if (fail_off > 0)
			say_apply_failure(p, name, fail_off, NULL);
		return -1;
	}
	if (s.damaged) {
		say_snap_damage(p, name, s.bad_off, s.why);
		return -1;
	}
	if (!l.ended) {
		persist_say(LOG_ERROR,
		            "%s/%s is corrupt: it has no end record; not starting. Inspect with "
		            "sessd --check-data %s, which says what can be done",
		            p->dir, name, p->dir);
		return -1;
	}
	t->snap_records = s.records;
	p->snap_bytes = s.size;
	return 0;
}

/*
 * segment_recordless(dir_fd, key, name, seq):
 * Whether log segment ${name} (${seq}) surely holds no record, and why, in words for the log
 * and --check-data. Either its header never reached the disk (it is shorter than a header, or
 * its header is bad and no well-formed record follows: what file_scan calls a torn write at
 * offset 0), which a crash in segment_make leaves, as a full disk did before segment_make
 * removed its file on failure; or it is its header alone, exactly: the segment the file
 * worker made for a snapshot (snapshot_start), which no record has reached. The loop goes on
 * appending to the segment before it until snapshot_switch, and a kill (or a power loss under
 * everysec, the new header synced ahead of the old segment's tail) there leaves that segment
 * ending in a torn write, no longer the last. A header written with another key is neither:
 * the replay reports it. Returns a string literal, or NULL when the segment may hold records.
 */
static const char *segment_recordless(int dir_fd, const uint8_t *key, const char *name,
                                      uint64_t seq)
{
	const char *why = NULL, *header_why;
	struct mapped m;
	uint64_t created_ms;
	bool fatal_config;

	if (file_map(dir_fd, name, &m) == -1)
		return NULL; /* the replay says why it cannot be read */
	if (header_check(m.map, m.size, LOG_MAGIC, seq, key, &created_ms, &header_why,
	                 &fatal_config) == 0) {
		if (m.size == FILE_HEADER_BYTES)
			why = "only its header, made for a snapshot; no record reached it";
	} else if (!fatal_config &&
	           (m.size < FILE_HEADER_BYTES || !valid_record_after(m.map, m.size, 0))) {
		why = "its header never reached the disk";
	}
	file_unmap(&m);
	return why;
}

/*
 * Refuse damage in the middle of the log (segment ${name}, scanned into ${s}; ${last}: the
 * last segment replayed) with what it is and the steps out of it. The operator reads this in
 * the journal of a service that keeps failing to start, so it names the commands in order.
 * A crash leaves damage only at the end of the log (torn_tail); well-formed records after it
 * mean either a sector a power loss left holding stale bytes (those records were written
 * later and never synced: cutting them loses nothing acknowledged under --fsync always) or
 * bytes the disk damaged after they were synced (those records were acknowledged). Nothing in
 * the file tells the two apart, so startup does not cut, and the operator decides.
 */
static void say_log_damage(const struct persist *p, const char *name, const struct scan *s,
                           bool last)
{
	char after[96];
	const char *key_arg = p->key ? " --key-file FILE" : "";

	if (last)
		snprintf(after, sizeof(after), "%zu well-formed record(s) follow the damage",
		         records_after(p->dir_fd, name, s->bad_off));
	else
		snprintf(after, sizeof(after), "the log segments after it hold records");
	persist_say(LOG_ERROR,
	            "%s/%s is corrupt at offset %" PRIu64 " (%s) with records after it; not "
	            "starting: %s, and a crash leaves damage only at the end of the log. Either "
	            "a power loss left a sector of stale bytes there (the records after it were "
	            "never synced) or the disk damaged data it had synced (they were "
	            "acknowledged); sessd cannot tell which, so it cuts nothing. Stop sessd "
	            "(systemctl stop sessd), see what a repair drops with sessd --check-data "
	            "%s%s, then run sessd --check-data %s%s --repair, which cuts the log at the "
	            "damage and keeps the whole file as %s.damaged (and any segments after it "
	            "as *.damaged), and start sessd; or restore %s from a backup",
	            p->dir, name, s->bad_off, s->why, after, p->dir, key_arg, p->dir, key_arg, name,
	            p->dir);
}

/*
 * Replay segments ${segs}[0..n) into the store, cut a torn tail off the last one, and leave
 * the last one open for appending.
 */
static int load_segments(struct persist *p, struct store *st, const uint64_t *segs, size_t n,
                         struct load_totals *t)
{
	char name[NAME_BYTES], last_name[NAME_BYTES];
	size_t replayed = n;
	struct scan s;

	/* Last segments that hold no record (segment_recordless) belong to a snapshot that never
	 * got its file: snap.N is written only once log.N's header is durable, and records reach
	 * log.N only once the segment before it is whole on disk. So records went on in the
	 * segment before, and no snapshot refers to them. They are removed, which makes that
	 * segment the last again, torn tail included, and leaves startup nothing to write, so on
	 * a disk that is still full the daemon starts, serves reads and refuses changes until
	 * space returns. Rewriting a header-less one's header, as for the first segment of the
	 * run below, would need that space. The first segment of the run is never removed: the
	 * one before it is covered by the snapshot and is not replayed, and a snapshot that did
	 * complete owns it. */
	while (replayed > 1) {
		log_name(name, segs[replayed - 1]);
		if (segment_recordless(p->dir_fd, p->key, name, segs[replayed - 1]) == NULL)
			break;
		replayed--;
	}
	for (size_t i = 0; i < replayed; i++) {
		bool last = i + 1 == replayed;
		uint64_t fail_off = 0;

		log_name(name, segs[i]);
		if (file_scan(p->dir_fd, p->dir, name, LOG_MAGIC, segs[i], p->key, false,
		              replay_log_record, st, &p->plain, &s, &fail_off) == -1) {
			if (fail_off > 0)
				say_apply_failure(p, name, fail_off, NULL);
			return -1;
		}
		if (s.damaged && !torn_tail(&s, last)) {
			say_log_damage(p, name, &s, last);
			return -1;
		}
		if (s.damaged && s.unwritten) {
			persist_say(LOG_WARN,
			            "%s/%s ends in a torn write at offset %" PRIu64
			            " (%s: a sector a power loss left unwritten, then %zu "
			            "well-formed record(s) never synced); cutting off %" PRIu64
			            " bytes",
			            p->dir, name, s.bad_off, s.why,
			            records_after(p->dir_fd, name, s.bad_off), s.size - s.good_end);
		} else if (s.damaged) {
			persist_say(LOG_WARN,
			            "%s/%s ends in a torn write at offset %" PRIu64
			            " (%s); cutting off %" PRIu64 " bytes",
			            p->dir, name, s.bad_off, s.why, s.size - s.good_end);
		}
		if (s.damaged)
			t->torn_bytes += s.size - s.good_end;
		t->log_records += s.records;
		t->segments++;
		p->log_bytes += s.damaged ? s.good_end : s.size;
		if (!last)
			continue;
		p->seq = segs[i];
		if (s.damaged && s.bad_off == 0) {
			p->fd = segment_create(p, segs[i], i > 0);
			if (p->fd == -1)
				return -1;
			p->file_off = FILE_HEADER_BYTES;
			continue;
		}
		p->old_segment = s.version < FILE_VERSION;
		if (p->old_segment)
			persist_say(
			    LOG_WARN,
			    "%s/%s was written by an older sessd (format %u): appending to it "
			    "without CLOCK records, so that the older sessd can still read it; "
			    "until the next snapshot (at --snapshot-log-bytes of log, or after "
			    "--snapshot-idle of quiet) begins a format-%u segment (and ends that "
			    "rollback: sessd(8), UPGRADING), a session that expired may come back "
			    "at a restart after the wall clock stepped back (DATA.md, CLOCK)",
			    p->dir, name, (unsigned)s.version, (unsigned)FILE_VERSION);
		p->fd = openat(p->dir_fd, name, O_WRONLY | O_CLOEXEC);
		if (p->fd == -1 || (s.damaged && (ftruncate(p->fd, (off_t)s.good_end) == -1 ||
		                                  fsync(p->fd) == -1))) {
			say_file_error(p->dir_fd, p->dir, name, "opened for appending", errno);
			return -1;
		}
		p->file_off = s.good_end;
	}
	/* Removed only once the rest loaded: a start that refuses leaves the files as it found
	 * them. The highest first, each durable before the next, so that a crash in between never
	 * leaves a gap, which would stop the next start. */
	for (size_t i = n; i-- > replayed;) {
		const char *why;

		log_name(name, segs[i]);
		log_name(last_name, segs[replayed - 1]);
		/* NULL only when it cannot be read again (errno says why): we hold the lock. */
		why = segment_recordless(p->dir_fd, p->key, name, segs[i]);
		if (why == NULL || unlinkat(p->dir_fd, name, 0) == -1 || fsync(p->dir_fd) == -1) {
			persist_say(LOG_ERROR, "cannot remove %s/%s: %s", p->dir, name,
			            strerror(errno));
			return -1;
		}
		persist_say(LOG_WARN, "%s/%s holds no record (%s); removed it, appending to %s",
		            p->dir, name, why, last_name);
	}
	return 0;
}

/*
 * Whether the newest snapshot ${seq} of ${dir_fd} is an empty file: sessd never names one so
 * (it writes a snapshot under a tmp.* name and renames it once synced), but `sessd --backup`
 * puts one in the snapshot's place until its copy is whole (backup_guard), so such a
 * directory is a backup cut short, or a copy of one.
 */
static bool backup_cut_short(int dir_fd, uint64_t seq)
{
	char name[NAME_BYTES];
	struct stat sb;

	snap_name(name, seq);
	return fstatat(dir_fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
	       sb.st_size == 0;
}

/*
 * Refuse a run of files with one missing: which one, and why that loses data. A snapshot is
 * written only once its segment is durable, and a segment after the first only for a
 * snapshot, so none of these is left by a crash: a file was deleted, or a backup was restored
 * in part. Returns -1 when one is missing (logged), 0 when the run is whole.
 */
static int check_run(const struct persist *p, const struct listing *l, size_t first,
                     uint64_t snap_seq)
{
	char name[NAME_BYTES], other[NAME_BYTES];

	if (snap_seq != 0 && (first == l->n_logs || l->logs[first] != snap_seq)) {
		log_name(name, snap_seq);
		snap_name(other, snap_seq);
		persist_say(
		    LOG_ERROR,
		    "%s/%s is missing: %s holds the state at its start, and the changes "
		    "made after that snapshot were in it (a backup restored in part?); not "
		    "starting. Inspect with sessd --check-data %s; --repair starts an empty "
		    "log after the snapshot, keeping what the snapshot holds",
		    p->dir, name, other, p->dir);
		return -1;
	}
	if (snap_seq == 0 && l->n_logs > 0 && l->logs[0] != 1) {
		log_name(name, l->logs[0]);
		snap_name(other, l->logs[0]);
		persist_say(
		    LOG_ERROR,
		    "%s/%s is missing: %s goes on from that snapshot, which holds the "
		    "sessions written before it (a backup restored in part?); not starting. "
		    "Inspect with sessd --check-data %s, which says what can be done",
		    p->dir, other, name, p->dir);
		return -1;
	}
	for (size_t i = first + 1; i < l->n_logs; i++) {
		if (l->logs[i] != l->logs[i - 1] + 1) {
			log_name(name, l->logs[i - 1] + 1);
			persist_say(
			    LOG_ERROR,
			    "%s/%s is missing, and the segments after it cannot be replayed "
			    "without it; not starting. Inspect with sessd --check-data %s, which "
			    "says what can be done",
			    p->dir, name, p->dir);
			return -1;
		}
	}
	return 0;
}

/*
 * Whether the BACKUP file ${m} of the data directory, listed in ${l} with the newest snapshot
 * ${snap_seq}, was copied over newer files than the backup's own: then what would load is not
 * the backup (a newer snapshot), or is a mix of the backup's segments and the newer files'
 * (the backup's copies replaced segments they go on from). Say which, and how to go on.
 */
static bool restored_over_newer(const struct persist *p, const struct listing *l, uint64_t snap_seq,
                                const struct backup_mark *m)
{
	char have[NAME_BYTES], snap[NAME_BYTES], last[NAME_BYTES];
	uint64_t last_log = l->n_logs > 0 ? l->logs[l->n_logs - 1] : 0;

	if (snap_seq <= m->snap && last_log <= m->last_log)
		return false;
	if (snap_seq > m->snap)
		snap_name(have, snap_seq);
	else
		log_name(have, last_log);
	if (m->snap != 0)
		snap_name(snap, m->snap);
	else
		strcpy(snap, "no snapshot");
	log_name(last, m->last_log);
	/* A newer snapshot past every file of the backup covers them all: the backup's copies
	 * replaced only files the newer state no longer needs, and it is whole. */
	if (snap_seq > m->last_log) {
		persist_say(
		    LOG_ERROR,
		    "%s holds a backup (its " BACKUP_MARK " file: %s, the log to %s) copied "
		    "over newer files (%s): sessd would load those and remove the backup's; "
		    "not starting. To restore the backup, move %s aside and copy the "
		    "backup into an empty directory in its place (sessd(8), --backup); to "
		    "start on the newer files instead, remove %s/" BACKUP_MARK,
		    p->dir, snap, last, have, p->dir, p->dir);
		return true;
	}
	persist_say(LOG_ERROR,
	            "%s holds a backup (its " BACKUP_MARK " file: %s, the log to %s) copied over "
	            "newer files (%s) that go on from segments the backup's copies replaced: "
	            "what would load may be neither the backup nor the newer state; not starting. "
	            "Move %s aside and copy the backup into an empty directory in its place "
	            "(sessd(8), --backup)",
	            p->dir, snap, last, have, p->dir);
	return true;
}

/*
 * The files of the backup whose BACKUP file ${m} names are what loaded: remove that file, and
 * sync the directory, before anything newer can be made (a snapshot, a segment past the
 * backup's last), which would then read as newer files the backup was copied over. Returns 0,
 * or -1 (said).
 */
static int mark_remove(const struct persist *p, const struct backup_mark *m)
{
	char snap[NAME_BYTES], last[NAME_BYTES];

	if (unlinkat(p->dir_fd, BACKUP_MARK, 0) == -1 || fsync(p->dir_fd) == -1) {
		persist_say(LOG_ERROR, "cannot remove %s/" BACKUP_MARK ": %s; not starting", p->dir,
		            strerror(errno));
		return -1;
	}
	if (m->snap != 0)
		snap_name(snap, m->snap);
	else
		strcpy(snap, "no snapshot");
	log_name(last, m->last_log);
	persist_say(LOG_INFO,
	            "loaded the backup copied into %s (%s, the log to %s); removed its " BACKUP_MARK
	            " file",
	            p->dir, snap, last);
	return 0;
}

/*
 * Startup is about to delete the files below the snapshot ${snap_seq} that it covers (the
 * ${first} oldest logs of ${l}, and every snapshot but the newest): say so. A crash between a
 * snapshot and their removal leaves them, harmlessly; so does a backup copied into a data
 * directory that was not emptied first, and then the newer state loads instead of the backup
 * and the backup's files go, which without this line the operator learns only from missing
 * sessions (unless the backup left its BACKUP file, which startup then refuses on: ${restored}
 * says that file named what loaded, and what goes is the state the backup replaced).
 */
static void say_covered(const struct persist *p, const struct listing *l, size_t first,
                        uint64_t snap_seq, bool restored)
{
	char oldest[NAME_BYTES], newest[NAME_BYTES];
	uint64_t low = UINT64_MAX;

	if (first > 0)
		low = l->logs[0];
	if (l->n_snaps > 1 && l->snaps[0] < low)
		low = l->snaps[0];
	if (first > 0 && (l->n_snaps < 2 || l->logs[0] <= l->snaps[0]))
		log_name(oldest, low);
	else
		snap_name(oldest, low);
	snap_name(newest, snap_seq);
	if (restored) {
		persist_say(LOG_WARN,
		            "removing %zu file(s) of %s below %s, from %s on: what the directory "
		            "held before the backup now loaded was copied into it",
		            first + (l->n_snaps > 0 ? l->n_snaps - 1 : 0), p->dir, newest, oldest);
		return;
	}
	persist_say(LOG_WARN,
	            "removing %zu file(s) of %s below %s, from %s on, which that snapshot "
	            "covers: a crash just after a snapshot leaves such files; so does a backup "
	            "copied into this directory without emptying it first, which is then not what "
	            "loaded (restore into an empty directory: sessd(8), --backup)",
	            first + (l->n_snaps > 0 ? l->n_snaps - 1 : 0), p->dir, newest, oldest);
}

/* One line on what startup loaded: after a crash, the first thing an operator asks. */
static void say_loaded(const struct persist *p, const struct store *st, uint64_t snap_seq,
                       const struct load_totals *t, uint64_t took_ms)
{
	char snap[NAME_BYTES + 48] = "", torn[64] = "";
	struct store_stats ss;

	store_stats(st, NULL, 0, &ss);
	if (snap_seq != 0) {
		snap_name(snap, snap_seq);
		snprintf(snap + strlen(snap), sizeof(snap) - strlen(snap),
		         ": %" PRIu64 " records, then ", t->snap_records);
	}
	if (t->torn_bytes > 0)
		snprintf(torn, sizeof(torn), "; a torn tail of %" PRIu64 " bytes cut off",
		         t->torn_bytes);
	persist_say(LOG_INFO,
	            "loaded %" PRIu64 " sessions in %" PRIu64 " namespace(s) from %s (%s%" PRIu64
	            " records from %zu log segment(s)%s; %" PRIu64
	            " expired while sessd was down) in %" PRIu64 ".%03" PRIu64 " s",
	            ss.sessions, ss.namespaces, p->dir, snap, t->log_records, t->segments, torn,
	            t->expired, took_ms / 1000, took_ms % 1000);
	/* Where a slow start went (bench/restart reads it). */
	persist_say(LOG_DEBUG,
	            "load: %" PRIu64 " ms before the snapshot and in it, %" PRIu64 " ms in the log",
	            t->snap_ms, took_ms - t->snap_ms);
}

static int load(struct persist *p, struct store *st, uint64_t now_ms)
{
	char name[NAME_BYTES];
	uint64_t snap_seq = 0, started_ms = clock_ms(CLOCK_MONOTONIC);
	struct load_totals totals = {0};
	struct store_stats before, after;
	struct backup_mark mark;
	const char *mark_why;
	struct listing l;
	size_t first = 0;
	int rc = -1, marked, err = 0;

	if (listing_read(p->dir_fd, &l, true) == -1) {
		persist_say(LOG_ERROR, "cannot list %s: %s", p->dir, strerror(errno));
		return -1;
	}
	if (l.n_snaps > 0)
		snap_seq = l.snaps[l.n_snaps - 1];
	while (first < l.n_logs && l.logs[first] < snap_seq)
		first++;
	/* Before anything is removed: the files a restore brought must still be there. The
	 * operator has to act on these (a restart would refuse the same way): exit status 2. */
	marked = mark_read(p->dir_fd, &mark, &mark_why);
	if (marked == -1) {
		persist_say(LOG_ERROR,
		            "cannot read %s/" BACKUP_MARK ", the file a backup leaves: %s (a "
		            "restore cut short?); not starting. Copy the backup into an empty "
		            "directory again (sessd(8), --backup)",
		            p->dir, mark_why != NULL ? mark_why : strerror(errno));
		err = ENOKEY;
		goto out;
	}
	if (marked == 1 && restored_over_newer(p, &l, snap_seq, &mark)) {
		err = ENOKEY;
		goto out;
	}
	if (snap_seq != 0 && backup_cut_short(p->dir_fd, snap_seq)) {
		snap_name(name, snap_seq);
		persist_say(
		    LOG_ERROR,
		    "%s/%s is empty: it stands in the snapshot's place while sessd --backup "
		    "copies, so %s is a backup cut short (or a copy of one) and holds no "
		    "whole state; not starting. Take the backup again or restore another "
		    "(--repair would keep nothing of it)",
		    p->dir, name, p->dir);
		goto out;
	}
	if (check_run(p, &l, first, snap_seq) == -1)
		goto out;
	if (snap_seq != 0 && load_snapshot(p, st, snap_seq, &totals) == -1)
		goto out;
	totals.snap_ms = clock_ms(CLOCK_MONOTONIC) - started_ms;
	/* An empty directory has no listing at all: NULL + 0 is undefined behaviour. */
	if (load_segments(p, st, first < l.n_logs ? l.logs + first : NULL, l.n_logs - first,
	                  &totals) == -1)
		goto out;
	if (p->fd == -1) {
		p->seq = snap_seq ? snap_seq : 1;
		p->fd = segment_create(p, p->seq, true);
		if (p->fd == -1)
			goto out;
		p->file_off = FILE_HEADER_BYTES;
		p->log_bytes = FILE_HEADER_BYTES;
	}
	if (marked == 1 && mark_remove(p, &mark) == -1)
		goto out;
	if (first > 0 || l.n_snaps > 1)
		say_covered(p, &l, first, snap_seq, marked == 1);
	for (size_t i = 0; i < first; i++) {
		log_name(name, l.logs[i]);
		unlinkat(p->dir_fd, name, 0);
	}
	for (size_t i = 0; i + 1 < l.n_snaps; i++) {
		snap_name(name, l.snaps[i]);
		unlinkat(p->dir_fd, name, 0);
	}
	store_stats(st, NULL, 0, &before);
	/* Not "until a slice frees less than its budget": a slice also ends when its credit for
	 * moving sessions between wheel levels runs out, with sessions still due. */
	reclaim_expired(st, now_ms);
	store_stats(st, NULL, 0, &after);
	totals.expired = before.sessions - after.sessions;
	say_loaded(p, st, snap_seq, &totals, clock_ms(CLOCK_MONOTONIC) - started_ms);
	rc = 0;
out:
	if (err == 0)
		err = errno;
	listing_finish(&l);
	errno = err;
	return rc;
}

/*
 * At a stop, let a snapshot being written finish for up to SNAPSHOT_STOP_WAIT_MS, then kill
 * its writer. A snapshot of a large store takes seconds to tens of seconds (14 s for a
 * million sessions of 1 KB on a busy machine); a stop that waited for it all would pass
 * systemd's TimeoutStopSec, be killed and counted as failed, and hold up a restart. Nothing
 * is lost: the log holds every change the snapshot would have saved, and a writer killed
 * after its rename leaves a whole snapshot, which the next start loads.
 */
static void snapshot_stop(struct persist *p)
{
	uint64_t until = clock_ms(CLOCK_MONOTONIC) + SNAPSHOT_STOP_WAIT_MS;
	const struct timespec pause = {0, 10 * 1000 * 1000};

	while (p->child > 0 && clock_ms(CLOCK_MONOTONIC) < until) {
		snapshot_reap(p, false);
		if (p->child > 0)
			nanosleep(&pause, NULL);
	}
	if (p->child > 0) {
		p->child_stopped = true;
		kill(p->child, SIGKILL);
	}
	snapshot_reap(p, true);
}

static void persist_close(struct persist *p)
{
	if (p->sync_thread_running) {
		pthread_mutex_lock(&p->sync_mutex);
		p->sync_stop = true;
		pthread_cond_signal(&p->sync_cond);
		pthread_mutex_unlock(&p->sync_mutex);
		pthread_join(p->sync_thread, NULL);
	}
	snapshot_stop(p);
	/* The worker is gone: what it was asked since is done here. The segment made for a
	 * snapshot that never started holds only its header; a crash before this unlink leaves it
	 * as the last segment, which startup removes (segment_recordless). */
	if (p->remove_below != 0)
		remove_covered(p->dir_fd, p->remove_below);
	if (p->prep_fd != -1) {
		char name[NAME_BYTES];

		close(p->prep_fd);
		log_name(name, p->prep_seq);
		unlinkat(p->dir_fd, name, 0);
	}
	if (p->fd != -1) {
		if (p->state == STATE_OK && fdatasync(p->fd) == -1)
			persist_say(LOG_ERROR, "final fsync of the log failed: %s",
			            strerror(errno));
		close(p->fd);
	}
	if (p->lock_fd != -1)
		close(p->lock_fd);
	if (p->dir_fd != -1)
		close(p->dir_fd);
	if (p->wake_fd != -1)
		close(p->wake_fd);
	buf_finish(&p->batch);
	buf_finish(&p->plain);
	if (p->key)
		sodium_free(p->key);
	pthread_cond_destroy(&p->sync_cond);
	pthread_mutex_destroy(&p->sync_mutex);
	if (p->child_report)
		munmap(p->child_report, sizeof(*p->child_report));
	free(p->dir);
	free(p);
}

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
struct persist *persist_open(const struct persist_config *cfg, struct store *st, uint64_t now_ms)
{
	struct persist *p;
	int fault = 0, err;

	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		persist_say(LOG_ERROR, "out of memory");
		return NULL;
	}
	p->dir_fd = p->lock_fd = p->fd = p->prep_fd = p->retire_fd = p->wake_fd = -1;
	p->fsync = cfg->fsync;
	p->snapshot_log_bytes =
	    cfg->snapshot_log_bytes ? cfg->snapshot_log_bytes : DEFAULT_SNAPSHOT_LOG_BYTES;
	p->snapshot_idle_ms = cfg->snapshot_idle_ms;
	/* A log loaded at startup is measured from here: one full of sessions that are gone is
	 * compacted once a quiet period has passed. */
	p->quiet_since_ms = clock_ms(CLOCK_MONOTONIC);
	buf_init(&p->batch);
	buf_init(&p->plain);
	pthread_mutex_init(&p->sync_mutex, NULL);
	sync_cond_init(&p->sync_cond);
	atomic_init(&p->sync_dirty, false);
	atomic_init(&p->sync_errno, 0);
	atomic_init(&p->prep_ready, false);
	atomic_init(&p->retired, false);
	p->st = st;
	p->child_report = mmap(NULL, sizeof(*p->child_report), PROT_READ | PROT_WRITE,
	                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p->child_report == MAP_FAILED)
		p->child_report = NULL;
	p->dir = strdup(cfg->data_dir);
	if (p->dir == NULL || p->child_report == NULL || sodium_init() < 0) {
		persist_say(LOG_ERROR, "cannot initialise: %s", strerror(errno));
		goto fail;
	}
	if (cfg->key_file && (p->key = key_load(cfg->key_file)) == NULL) {
		fault = errno;
		goto fail;
	}
	if (mkdir(p->dir, 0700) == 0) {
		p->made_dir = true;
		if (sync_parent_dir(p->dir) == -1)
			persist_say(LOG_WARN,
			            "created %s, but cannot sync the directory that holds it (%s): "
			            "a power loss may lose it",
			            p->dir, strerror(errno));
	} else if (errno != EEXIST) {
		fault = errno;
		persist_say(LOG_ERROR, "cannot create %s: %s%s", p->dir, strerror(fault),
		            fault == ENOENT ? " (the directory to hold it is missing: create it, "
		                              "or if it is on a volume mounted after sessd starts, "
		                              "order sessd after that mount: RequiresMountsFor= in "
		                              "a drop-in of its unit)"
		                            : read_only_hint(fault));
		goto fail_path;
	}
	p->dir_fd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->dir_fd == -1) {
		fault = errno;
		persist_say(LOG_ERROR, "cannot open %s: %s%s", p->dir, strerror(fault),
		            fault == ENOTDIR ? " (--data-dir must name a directory)" : "");
		goto fail_path;
	}
	if (!data_dir_is_ours(p)) {
		fault = ENOKEY;
		goto fail;
	}
	p->lock_fd = dir_lock(p->dir_fd);
	if (p->lock_fd == -1) {
		fault = errno;
		say_lock_error(p->dir_fd, p->dir, fault, "another sessd uses this directory");
		/* A directory sessd's user may not write is the configuration's fault, as below,
		 * and so is a read-only file system; a LOCK file it may not open in a directory it
		 * may write, or another sessd's lock (which a restart passes once that sessd has
		 * stopped), is not. */
		if (fault == EROFS || ((fault == EACCES || fault == EPERM) &&
		                       faccessat(p->dir_fd, ".", W_OK | X_OK, AT_EACCESS) == -1))
			goto fail_path;
		goto fail;
	}
	if (run_as_root_in_theirs(p) && own_like_dir(p->dir_fd, p->lock_fd) == -1) {
		say_not_owned("LOCK");
		goto fail;
	}
	/* A LOCK file left writable by an earlier run opens in a directory that is not: every
	 * snapshot would then fail to create its files and the log would never be compacted. */
	if (faccessat(p->dir_fd, ".", W_OK | X_OK, AT_EACCESS) == -1) {
		fault = errno;
		persist_say(
		    LOG_ERROR,
		    "%s: %s (the data directory must be writable by the user sessd runs as)",
		    p->dir, strerror(fault));
		goto fail_path;
	}
	if (load(p, st, now_ms) == -1)
		goto fail;
	/* A log that filled the volume while no snapshot could be written (a snapshot is due at
	 * the first change): the daemon serves reads, but the operator must make room. */
	if (p->log_bytes >= p->snapshot_log_bytes)
		say_snapshot_room(p);
	p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->wake_fd == -1) {
		persist_say(LOG_ERROR, "cannot make the file worker's eventfd: %s",
		            strerror(errno));
		goto fail;
	}
	if (pthread_create(&p->sync_thread, NULL, file_worker_main, p) != 0) {
		persist_say(LOG_ERROR, "cannot start the file worker thread");
		goto fail;
	}
	p->sync_thread_running = true;
	return p;

fail_path:
	/* The data directory as configured cannot serve (missing parent, not a directory, not
	 * ours to open or write): as a key file that cannot, a fault of the configuration. So is
	 * a read-only file system (EROFS): a sandbox that keeps the path read-only (the unit's
	 * ProtectSystem=strict without ReadWritePaths=) stays so, and one the kernel remounted
	 * after disk errors waits for the operator's fsck and remount, which restarts a second
	 * apart do not outlast. */
	if (config_path_fault(fault) || fault == EROFS)
		fault = ENOKEY;
fail:
	err = fault != 0 ? fault : errno;
	persist_undo(p);
	errno = err;
	return NULL;
}

/* persist_free(p): commit what is pending, stop the background work, close. NULL: nothing. */
static void log_clock(struct persist *p);

void persist_free(struct persist *p)
{
	if (p == NULL)
		return;
	p->closing = true;
	/* Changes whose write failed are still only in memory (and visible to readers): one last
	 * try, in case space came back since the last tick, before they are lost. They were never
	 * acknowledged, but readers saw them: the operator hears that they go. */
	if (p->state == STATE_WRITE_FAILED) {
		retry_write(p);
		if (p->state == STATE_WRITE_FAILED)
			persist_say(
			    LOG_WARN,
			    "stopping with %zu bytes of changes the log could not take (the disk "
			    "is still full): they were never acknowledged, and are lost",
			    p->batch.len);
	}
	log_clock(p);
	switch_sync_wait(p);
	commit_batch(p);
	persist_close(p);
}

void persist_undo(struct persist *p)
{
	char name[NAME_BYTES], *dir = NULL;

	if (p == NULL)
		return;
	p->closing = true;
	p->state = STATE_SYNC_FAILED; /* no final fsync, nothing more written */
	/* A directory made moments ago, mode 0700, under our lock: all that is in it is what
	 * this start put there, the LOCK and the segment it opened. Anything else in it keeps
	 * it (rmdir fails). A start waiting for our LOCK then gets the lock of a file no longer
	 * in a directory that is gone, where it can create nothing, and fails. */
	if (p->made_dir && p->dir_fd != -1 && (dir = strdup(p->dir)) != NULL) {
		if (p->fd != -1) {
			log_name(name, p->seq);
			unlinkat(p->dir_fd, name, 0);
		}
		if (p->lock_fd != -1)
			unlinkat(p->dir_fd, "LOCK", 0);
	}
	persist_close(p);
	if (dir != NULL && rmdir(dir) == -1 && errno != ENOENT)
		persist_say(LOG_WARN, "cannot remove %s, which this failed start created: %s", dir,
		            strerror(errno));
	free(dir);
}

/* persist_writable(p): 0 when changes can be logged, -1 (logged once) while the disk fails. */
/*
 * Whether the log may grow, as far as the room of a snapshot that is due goes (one running,
 * waiting for its retry, or about to start). A log that fills the volume leaves no room for
 * any snapshot, and only a snapshot reclaims the log: every change would be refused from then
 * on, across restarts. Retrying failed snapshots sooner is not enough, since at full speed
 * the log grows by megabytes while one snapshot is written. So while one is due, the log
 * takes the volume's free space only down to what the snapshot needs
 * (snapshot_room_needed), and changes are refused beyond it until the snapshot has reclaimed
 * the log. The volume is looked at (statvfs) once the log has taken what the last look left
 * it, and while it has nothing left, at most every LOG_ROOM_RECHECK_MS.
 */
/* Changes are no longer refused for a snapshot's room: said when the refusal was. */
static void room_refusal_ends(struct persist *p)
{
	if (p->room_refusal_said)
		persist_say(LOG_INFO, "the volume has room for the log again beside the "
		                      "snapshot's; changes are accepted");
	p->room_refusal_said = false;
	p->room_refused = false;
}

static bool log_has_room(struct persist *p)
{
	uint64_t used = p->appended + p->batch.len, mono_ms, avail, needed, written = 0;
	char tmp[NAME_BYTES];
	struct stat sb;

	/* While changes are refused no commit reaps a finished snapshot: here, at once, rather
	 * than at the next tick. */
	if (p->child > 0 && atomic_load(&p->child_report->exiting))
		snapshot_reap(p, true);
	if (p->log_bytes < p->snapshot_log_bytes) {
		p->room_until = 0;
		if (p->room_refused)
			room_refusal_ends(p);
		return true;
	}
	if (used < p->room_until)
		return true;
	mono_ms = clock_ms(CLOCK_MONOTONIC);
	if (p->room_refused && mono_ms - p->room_checked_ms < LOG_ROOM_RECHECK_MS)
		return false;
	p->room_checked_ms = mono_ms;
	avail = volume_free(p);
	needed = snapshot_room_needed(p);
	/* What a running snapshot has written already is no longer free, nor still needed. */
	snap_tmp_name(tmp, p->child_seq, p->child);
	if (p->child > 0 && fstatat(p->dir_fd, tmp, &sb, 0) == 0)
		written = (uint64_t)sb.st_blocks * 512;
	needed = needed > written + SNAPSHOT_ROOM_SLACK ? needed - written : SNAPSHOT_ROOM_SLACK;
	if (avail > needed) {
		/* Half of what is left before looking again: the store grows (and with it the
		 * room needed), and other files on the volume take space too. */
		p->room_until = used + (avail - needed) / 2;
		if (p->room_refused)
			room_refusal_ends(p);
		return true;
	}
	if (!p->room_refused && (p->room_said_ms == 0 || mono_ms - p->room_said_ms >= 60000)) {
		persist_say(
		    LOG_ERROR,
		    "%s: the volume has %" PRIu64 " bytes free and the snapshot due needs "
		    "about %" PRIu64 ": changes are refused (IO_ERROR) until it has "
		    "reclaimed the log, which would otherwise leave no room for any (said at "
		    "most once a minute)",
		    p->dir, avail, needed);
		p->room_refusal_said = true;
		p->room_said_ms = mono_ms;
	}
	p->room_refused = true;
	return false;
}

int persist_writable(struct persist *p)
{
	if (p == NULL)
		return 0;
	note_sync_error(p);
	return p->state == STATE_OK && log_has_room(p) ? 0 : -1;
}

bool persist_must_wait(struct persist *p)
{
	if (p == NULL)
		return false;
	switch_sync_check(p);
	return p->switch_waits;
}

int persist_wake_fd(const struct persist *p)
{
	return p->wake_fd;
}

void persist_woken(struct persist *p)
{
	wake_drain(p);
	/* What woke the loop: a sync the worker found failed (everysec), the retire of a segment
	 * (switch_sync_check), a snapshot writer exiting, a segment made for a snapshot. */
	note_sync_error(p);
	switch_sync_check(p);
	if (p->child > 0 && atomic_load(&p->child_report->exiting))
		snapshot_reap(p, true);
	sync_failed_snapshot_now(p);
	if (p->snapshot_wanted)
		snapshot_switch(p);
}

bool persist_settle(struct persist *p, int timeout_ms)
{
	/* Bounded: on a hung disk the sync never ends (server_on_signal). */
	return p == NULL || switch_sync_wait_ms(p, timeout_ms);
}

/*
 * Put the CLOCK record persist_note_expired asked for in the batch, before any record logged
 * after that expiry: replay takes each record's sessions as they were at that point of the
 * log. No client waits for it, so it does not make the turn's commit one that answers for
 * them (unacked); it goes out with the next change, or from persist_tick. One that finds no
 * memory is tried again before the next record.
 */
static void log_clock(struct persist *p)
{
	uint8_t rec[9];

	if (!p->clock_unlogged || p->state != STATE_OK || p->old_segment)
		return;
	put_u64(put_u8(rec, REC_CLOCK), p->clock_ms);
	if (record_emit(&p->batch, p->key, p->seq, p->file_off + p->batch.len, rec, sizeof(rec)) ==
	    0)
		p->clock_unlogged = false;
}

/*
 * Start a record of ${payload} bytes after the type and the time ${now_ms}; NULL with errno
 * ENOMEM.
 */
static uint8_t *rec_begin(struct persist *p, size_t payload, uint8_t type, uint64_t now_ms)
{
	log_clock(p);
	buf_reset(&p->plain);
	if (payload > REC_MAX_BODY || buf_reserve(&p->plain, payload + 9) == -1) {
		errno = ENOMEM;
		return NULL;
	}
	return put_u64(put_u8(p->plain.data, type), now_ms);
}

static int rec_end(struct persist *p, uint8_t *end)
{
	p->plain.len = (size_t)(end - p->plain.data);
	if (record_emit(&p->batch, p->key, p->seq, p->file_off + p->batch.len, p->plain.data,
	                p->plain.len) == -1) {
		errno = ENOMEM;
		return -1;
	}
	p->unacked = true;
	return 0;
}

/* The most a change's record body takes besides its data or flash message: the type and time,
 * the longest key, and a flash push's type, flag, expiry and length (the largest of them). */
#define REC_CHANGE_MAX_FIXED                                                                       \
	(9u + 2u + IDS_MAX_NAMESPACE_LEN + IDS_MAX_ID_LEN + 1u + 255u + 1u + 8u + 4u)

int persist_reserve(struct persist *p, size_t data_len)
{
	/* The record, and a CLOCK record rec_begin may put before it, each framed and sealed. */
	size_t framed = REC_HEADER_BYTES + NONCE_BYTES + TAG_BYTES;

	/* Past REC_MAX_BODY (a frame never is) the log call refuses the record itself. */
	if (p == NULL || data_len > REC_MAX_BODY)
		return 0;
	buf_reset(&p->plain);
	if (buf_reserve(&p->plain, REC_CHANGE_MAX_FIXED + data_len) == -1 ||
	    buf_reserve(&p->batch, 2 * framed + 9 + REC_CHANGE_MAX_FIXED + data_len) == -1) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

int persist_reserve_drop(struct persist *p, size_t data_len)
{
	/* A DESTROY record, and a CLOCK record before it, each framed and sealed. */
	size_t destroy =
	    2 * (REC_HEADER_BYTES + NONCE_BYTES + TAG_BYTES) + 9 + REC_CHANGE_MAX_FIXED;

	if (p == NULL || data_len > REC_MAX_BODY)
		return 0;
	if (persist_reserve(p, data_len) == -1 ||
	    buf_reserve(&p->batch, destroy + 2 * (REC_HEADER_BYTES + NONCE_BYTES + TAG_BYTES) + 9 +
	                               REC_CHANGE_MAX_FIXED + data_len) == -1) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static size_t key_bytes(const struct store_key *key)
{
	return 2 + key->ns_len + key->id_len;
}

static uint8_t *put_key(uint8_t *o, const struct store_key *key)
{
	o = put_bytes(put_u8(o, (uint8_t)key->ns_len), key->ns, key->ns_len);
	return put_bytes(put_u8(o, (uint8_t)key->id_len), key->id, key->id_len);
}

/* Each records one change the store has accepted. Returns 0, or -1 with errno ENOMEM. */
int persist_log_set(struct persist *p, const struct store_key *key, const void *data, size_t len,
                    uint64_t expires_at_ms, uint64_t now_ms)
{
	uint8_t *o;

	if (p == NULL)
		return 0;
	if (len > REC_MAX_BODY ||
	    (o = rec_begin(p, key_bytes(key) + 12 + len, REC_SET, now_ms)) == NULL)
		return -1;
	o = put_key(o, key);
	o = put_u64(o, expires_at_ms);
	o = put_u32(o, (uint32_t)len);
	return rec_end(p, put_bytes(o, data, len));
}

int persist_log_touch(struct persist *p, const struct store_key *key, uint64_t expires_at_ms,
                      uint64_t now_ms)
{
	uint8_t *o;

	if (p == NULL)
		return 0;
	if ((o = rec_begin(p, key_bytes(key) + 8, REC_TOUCH, now_ms)) == NULL)
		return -1;
	return rec_end(p, put_u64(put_key(o, key), expires_at_ms));
}

int persist_log_destroy(struct persist *p, const struct store_key *key, uint64_t now_ms)
{
	uint8_t *o;

	if (p == NULL)
		return 0;
	if ((o = rec_begin(p, key_bytes(key), REC_DESTROY, now_ms)) == NULL)
		return -1;
	return rec_end(p, put_key(o, key));
}

int persist_log_flash_push(struct persist *p, const struct store_key *key, const uint8_t *type,
                           size_t type_len, const void *msg, size_t msg_len, bool msg_is_bin,
                           uint64_t expires_at_ms, uint64_t now_ms)
{
	uint8_t *o;

	if (p == NULL)
		return 0;
	if (msg_len > REC_MAX_BODY ||
	    (o = rec_begin(p, key_bytes(key) + 1 + type_len + 1 + 8 + 4 + msg_len, REC_FLASH_PUSH,
	                   now_ms)) == NULL)
		return -1;
	o = put_key(o, key);
	o = put_bytes(put_u8(o, (uint8_t)type_len), type, type_len);
	o = put_u8(o, msg_is_bin ? 1 : 0);
	o = put_u64(o, expires_at_ms);
	o = put_u32(o, (uint32_t)msg_len);
	return rec_end(p, put_bytes(o, msg, msg_len));
}

/* ${type} NULL: every type was popped. */
int persist_log_flash_pop(struct persist *p, const struct store_key *key, const uint8_t *type,
                          size_t type_len, uint64_t now_ms)
{
	uint8_t *o;

	if (p == NULL)
		return 0;
	if (type == NULL)
		type_len = 0;
	if ((o = rec_begin(p, key_bytes(key) + 1 + type_len, REC_FLASH_POP, now_ms)) == NULL)
		return -1;
	o = put_key(o, key);
	return rec_end(p, put_bytes(put_u8(o, (uint8_t)type_len), type, type_len));
}

int persist_log_clear(struct persist *p, const uint8_t *ns, size_t ns_len, uint64_t now_ms)
{
	uint8_t *o;

	if (p == NULL)
		return 0;
	if ((o = rec_begin(p, 1 + ns_len, REC_CLEAR, now_ms)) == NULL)
		return -1;
	return rec_end(p, put_bytes(put_u8(o, (uint8_t)ns_len), ns, ns_len));
}

/* persist_pending(p): true when changes were logged since the last persist_commit. */
bool persist_pending(const struct persist *p)
{
	return p != NULL && p->unacked;
}

/*
 * The log has passed its threshold at a commit: start the snapshot now rather than at the
 * next tick. At full speed a second of writes is many times a small threshold, and on a
 * small volume that log alone fills the disk. The caller compares sizes; here a running
 * child is looked at through its flag, not waitpid, so no batch pays a system call for it,
 * and a finished one is reaped at once so that the next snapshot is not a tick away either.
 */
static void snapshot_on_commit(struct persist *p)
{
	if (p->child > 0 && atomic_load(&p->child_report->exiting))
		snapshot_reap(p, true);
	if (p->child > 0 || p->file_off <= FILE_HEADER_BYTES)
		return;
	/* After a failure the tick looks for its retry every second; here only once the log
	 * has grown by another threshold since, so that a fast writer is not given a second to
	 * fill the volume, and a retry still waiting for room asks the volume once per
	 * threshold, not once a batch. */
	if (p->next_snapshot_ms != 0) {
		if (p->log_bytes < p->retry_log_bytes)
			return;
		if (!snapshot_retry_due(p)) {
			if (p->retry_for_room)
				p->retry_log_bytes = p->log_bytes + p->snapshot_log_bytes;
			return;
		}
	}
	snapshot_start(p);
}

/*
 * persist_commit(p):
 * Write what was logged and, under PERSIST_FSYNC_ALWAYS, fdatasync it; start a snapshot when
 * the log has passed its threshold. Returns 0 when the changes are as durable as the policy
 * promises, or -1 (logged) when they are not.
 */
int persist_commit(struct persist *p)
{
	int rc;

	if (p == NULL)
		return 0;
	log_clock(p);
	rc = commit_batch(p);
	if (p->snapshot_wanted)
		snapshot_switch(p);
	else if (p->state == STATE_OK && p->log_bytes >= p->snapshot_log_bytes)
		snapshot_on_commit(p);
	else if (p->state == STATE_WRITE_FAILED && p->fsize_limited && fsize_snapshot_due(p))
		snapshot_start(p);
	/* Changes logged since the last call are unsafe if the log failed at any point since,
	 * even when a snapshot start already wrote them (and then failed to sync). */
	if (!p->unacked)
		rc = 0;
	else if (p->state != STATE_OK)
		rc = -1;
	p->unacked = false;
	return rc;
}

/*
 * Whether to compact the data directory now that the log has gone quiet (persist_tick, no
 * child running). What is weighed is what a restart reads, the last snapshot and the log after
 * it (held): sessions that go after a snapshot (a CLEAR, their expiry) leave their bytes in
 * the snapshot, not the log, and a log that alone stayed small kept such a snapshot on disk
 * for good. Quiet, not idle: a site whose burst is over still serves a few requests, and a
 * log that waited for a minute without any write would never be compacted there. So the
 * log's growth is measured over windows of snapshot_idle_ms, and a snapshot is due at the end
 * of one when:
 * - the log grew by at most 1/QUIET_GROWTH_SHARE of held during the window (nothing, when
 *   idle): the burst is over, and the snapshot competes with little traffic. Under steady
 *   writes the log passes --snapshot-log-bytes first, or reaches that share after a few
 *   windows, which bounds a log that is mostly gone sessions in either case;
 * - the current segment holds records: the segment a snapshot starts is only its header
 *   until the next write (a CLEAR, or the CLOCK record of an expiry, is one);
 * - no failed snapshot waits for its retry time;
 * - held is at least IDLE_SNAPSHOT_MIN_LOG_BYTES: less costs next to nothing to keep and to
 *   replay, and is not worth a fork and a rewrite after every pause;
 * - held is more than twice what a snapshot of the store would take. snapshot_bound bounds
 *   that from above, so at least half of held is then sessions that expired, were destroyed,
 *   cleared or overwritten, and after the snapshot held is under it: one quiet period starts
 *   one snapshot.
 *   It also bounds the cost: these snapshots write at most half the bytes they replace, and a
 *   daemon whose files are mostly live data does not rewrite them for nothing.
 */
static bool idle_snapshot_due(struct persist *p)
{
	uint64_t mono_ms = clock_ms(CLOCK_MONOTONIC), grown, held;

	if (p->snapshot_idle_ms == 0 || mono_ms - p->quiet_since_ms < p->snapshot_idle_ms)
		return false;
	grown = p->appended - p->quiet_since_appended;
	p->quiet_since_ms = mono_ms;
	p->quiet_since_appended = p->appended;
	held = p->snap_bytes + p->log_bytes;
	if (grown > held / QUIET_GROWTH_SHARE || p->state != STATE_OK || p->batch.len != 0 ||
	    p->file_off <= FILE_HEADER_BYTES || mono_ms < p->next_snapshot_ms ||
	    held < IDLE_SNAPSHOT_MIN_LOG_BYTES)
		return false;
	return held / 2 > snapshot_bound(p);
}

void persist_note_expired(struct persist *p, uint64_t now_ms)
{
	if (p == NULL)
		return;
	p->clock_ms = now_ms;
	p->clock_unlogged = true;
}

/* Free the batch's and the scratch's room beyond ROOM_KEEP_BYTES; a batch that waits for its
 * commit or its retry keeps it. */
static void give_back_room(struct persist *p)
{
	if (p->batch.len == 0 && p->batch.cap > ROOM_KEEP_BYTES)
		buf_finish(&p->batch);
	if (p->plain.cap > ROOM_KEEP_BYTES)
		buf_finish(&p->plain);
}

/*
 * persist_tick(p, st):
 * Called about once a second by the server: retries a failed disk, gives back the room a burst
 * of large writes grew the batch to, and starts a snapshot when the log has grown enough, or
 * when it has been quiet for snapshot_idle_ms and holds mostly sessions that are gone (the
 * snapshot is written without stopping service).
 */
void persist_tick(struct persist *p, struct store *st)
{
	if (p == NULL)
		return;
	note_sync_error(p);
	snapshot_reap(p, false);
	if (p->state == STATE_WRITE_FAILED)
		retry_write(p);
	/* An expiry no CLOCK record holds yet, and a batch holding only CLOCK records (the
	 * turn's commit writes any other). */
	log_clock(p);
	if (!p->unacked && p->batch.len > 0)
		commit_batch(p);
	give_back_room(p);
	if (p->snapshot_wanted) {
		snapshot_switch(p);
		return;
	}
	if (p->child > 0)
		return;
	/* A segment holding only its header adds nothing to the snapshot that began it: without
	 * this, a --snapshot-log-bytes below the header size would fork a snapshot every second
	 * of an idle daemon. Not when that snapshot failed: the segments before it are still to
	 * be covered, and log_has_room may be refusing every change until they are. A file-size
	 * limit's snapshot waits until one fits. */
	if ((p->state == STATE_SYNC_FAILED && !p->fsize_limited && sync_failed_retry_due(p)) ||
	    (p->state != STATE_OK && fsize_snapshot_due(p)) ||
	    (p->state == STATE_OK && p->log_bytes >= p->snapshot_log_bytes &&
	     (p->file_off > FILE_HEADER_BYTES || p->next_snapshot_ms != 0) &&
	     snapshot_retry_due(p))) {
		snapshot_start(p);
	} else if (idle_snapshot_due(p)) {
		persist_say(LOG_INFO,
		            "the log has been quiet for %" PRIu64 " ms, and the %" PRIu64
		            " bytes a restart reads (the last snapshot and the log since) are over "
		            "twice what the live sessions need: writing a snapshot to compact them",
		            p->snapshot_idle_ms, p->snap_bytes + p->log_bytes);
		snapshot_start(p);
	}
}

/* Move a segment aside so startup no longer sees it, keeping its bytes for inspection.
 * Returns 0, or -1 (logged). */
static int set_aside(int dir_fd, const char *name)
{
	char aside[NAME_BYTES + 16];

	snprintf(aside, sizeof(aside), "%s.damaged", name);
	if (renameat(dir_fd, name, dir_fd, aside) == -1) {
		persist_say(LOG_ERROR, "cannot rename %s to %s: %s", name, aside, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Put the rewritten file ${tmp} in the place of the damaged ${name}, which is kept as
 * <name>.damaged (replacing one an earlier repair left), its name written to ${aside}
 * (NAME_BYTES + 16). The damaged file is linked aside before the rename, so a crash in between
 * leaves every name on a whole file. Returns 0, or -1 (logged, ${tmp} removed).
 */
static int replace_keeping_damaged(int dir_fd, const char *name, const char *tmp, char *aside)
{
	snprintf(aside, NAME_BYTES + 16, "%s.damaged", name);
	if ((unlinkat(dir_fd, aside, 0) == -1 && errno != ENOENT) ||
	    linkat(dir_fd, name, dir_fd, aside, 0) == -1 ||
	    renameat(dir_fd, tmp, dir_fd, name) == -1 || fsync(dir_fd) == -1) {
		persist_say(LOG_ERROR, "cannot put the rewritten %s in place: %s", name,
		            strerror(errno));
		unlinkat(dir_fd, tmp, 0);
		return -1;
	}
	return 0;
}

/*
 * Cut log segment ${name} (${seq}) back to its first ${keep} bytes, the records before its
 * damage, keeping the whole damaged file as <name>.damaged (named in ${aside}, as for
 * replace_keeping_damaged): what is cut off may hold well-formed records, after a flipped bit
 * in the middle of the log, and only the operator can judge them. The prefix is copied to a
 * temporary file (startup removes one a crash leaves) and renamed into place, as a snapshot
 * is. Returns 0, or -1 (logged).
 */
static int log_cut(int dir_fd, const char *name, uint64_t seq, uint64_t keep, char *aside)
{
	char tmp[NAME_BYTES];
	struct mapped m;
	int fd;

	if (file_map(dir_fd, name, &m) == -1) {
		persist_say(LOG_ERROR, "cannot read %s: %s", name, strerror(errno));
		goto fail;
	}
	snprintf(tmp, sizeof(tmp), "tmp.log.%016" PRIx64 ".%ld", seq, (long)getpid());
	fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, DATA_FILE_MODE);
	if (fd == -1) {
		persist_say(LOG_ERROR, "cannot create %s: %s", tmp, strerror(errno));
		goto fail_unmap;
	}
	if (own_like_dir(dir_fd, fd) == -1) {
		say_not_owned(tmp);
		goto fail_unlink;
	}
	if (write_full(fd, m.map, (size_t)keep, 0) == -1 || fsync(fd) == -1) {
		persist_say(LOG_ERROR, "cannot write %s: %s", tmp, strerror(errno));
		goto fail_unlink;
	}
	close(fd);
	file_unmap(&m);
	return replace_keeping_damaged(dir_fd, name, tmp, aside);

fail_unlink:
	close(fd);
	unlinkat(dir_fd, tmp, 0);
fail_unmap:
	file_unmap(&m);
fail:
	return -1;
}

/* The size of a repeats_note. */
#define REPEATS_NOTE_BYTES 96

/*
 * What a salvage's report says of the session records of an id read before (see
 * snap_salvage_record), in ${note}: "" when there were none. Returns ${note}.
 */
static const char *repeats_note(const struct snap_salvage *sv, char note[REPEATS_NOTE_BYTES])
{
	note[0] = '\0';
	if (sv->repeats != 0)
		snprintf(note, REPEATS_NOTE_BYTES,
		         ", and not %" PRIu64 " more of an id read before (its first copy stands)",
		         sv->repeats);
	return note;
}

/*
 * Rewrite the damaged snapshot ${seq} with the sessions whose records are sound, before and
 * after the damage (snap_salvage_scan), and keep the damaged file as snap.<seq>.damaged. The
 * rewritten file is a snapshot like any other, its END counting what it holds. The log after
 * the snapshot is left as it is: replayed on top, its changes to lost sessions are skipped or
 * start them afresh, as for sessions that expired. Returns 0, or -1 (logged).
 */
static int snap_salvage(int dir_fd, const char *data_dir, const uint8_t *key, uint64_t seq,
                        struct buf *plain)
{
	struct store_config cfg = {.max_bytes = 0, .max_flash_bytes = 0};
	struct snap_load sl = {0};
	char name[NAME_BYTES], tmp[NAME_BYTES], aside[NAME_BYTES + 16], note[REPEATS_NOTE_BYTES];
	struct snap_salvage sv;
	struct snap_totals totals;
	uint64_t time_ms;
	int rc = -1;

	snap_name(name, seq);
	sl.st = store_new(&cfg);
	if (sl.st == NULL) {
		persist_say(LOG_ERROR, "%s: out of memory", name);
		goto out;
	}
	if (snap_salvage_scan(dir_fd, data_dir, name, seq, key, &sl, plain, &sv) == -1)
		goto out;
	/* A bad header leaves no time of its own: the state is empty, so any instant will do. */
	time_ms = sv.created_ms != 0 ? sv.created_ms : wall_ms();
	snap_tmp_name(tmp, seq, getpid());
	if (snap_write(dir_fd, tmp, key, sl.st, seq, time_ms, true, &totals) == -1) {
		persist_say(LOG_ERROR, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (replace_keeping_damaged(dir_fd, name, tmp, aside) == -1)
		goto out;
	printf("repaired: %s rewritten with %" PRIu64 " session(s), of the %" PRIu64
	       " whose records are sound (%" PRIu64 " before the damage, %" PRIu64
	       " after it)%s; the damaged file is kept as %s\n",
	       name, totals.sessions, sl.sessions, sv.sessions_before,
	       sl.sessions - sv.sessions_before, repeats_note(&sv, note), aside);
	rc = 0;
out:
	store_free(sl.st);
	return rc;
}

/*
 * Put a new file, written to ${tmp} (removed on failure), in place as ${name}, where there is
 * none. Returns 0, or -1 (logged).
 */
static int put_in_place(int dir_fd, const char *tmp, const char *name)
{
	if (renameat(dir_fd, tmp, dir_fd, name) == -1 || fsync(dir_fd) == -1) {
		persist_say(LOG_ERROR, "cannot put %s in place: %s", name, strerror(errno));
		unlinkat(dir_fd, tmp, 0);
		return -1;
	}
	return 0;
}

/*
 * Write an empty snapshot ${seq}, where a snapshot is missing but its log is there: the log
 * is then replayed on an empty state, as after a snapshot whose header was damaged. Returns 0,
 * or -1 (logged).
 */
static int snap_put_empty(int dir_fd, const uint8_t *key, uint64_t seq)
{
	struct store_config cfg = {.max_bytes = 0, .max_flash_bytes = 0};
	char tmp[NAME_BYTES], name[NAME_BYTES];
	struct snap_totals totals;
	struct store *st;
	int rc = -1;

	snap_name(name, seq);
	st = store_new(&cfg);
	if (st == NULL) {
		persist_say(LOG_ERROR, "%s: out of memory", name);
		return -1;
	}
	snap_tmp_name(tmp, seq, getpid());
	if (snap_write(dir_fd, tmp, key, st, seq, wall_ms(), true, &totals) == -1)
		persist_say(LOG_ERROR, "cannot write %s: %s", tmp, strerror(errno));
	else
		rc = put_in_place(dir_fd, tmp, name);
	store_free(st);
	return rc;
}

/*
 * Start log segment ${seq} empty (its header alone), where the snapshot ${seq} has no log:
 * startup refuses a snapshot without its log, which only damage leaves. Returns 0, or -1
 * (logged).
 */
static int segment_put_empty(int dir_fd, const uint8_t *key, uint64_t seq)
{
	uint8_t h[FILE_HEADER_BYTES];
	char tmp[NAME_BYTES], name[NAME_BYTES];
	int fd;

	log_name(name, seq);
	snprintf(tmp, sizeof(tmp), "tmp.log.%016" PRIx64 ".%ld", seq, (long)getpid());
	fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, DATA_FILE_MODE);
	if (fd == -1) {
		persist_say(LOG_ERROR, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (own_like_dir(dir_fd, fd) == -1) {
		say_not_owned(tmp);
		goto fail;
	}
	header_build(h, LOG_MAGIC, seq, wall_ms(), key);
	if (write_full(fd, h, sizeof(h), 0) == -1 || fsync(fd) == -1) {
		persist_say(LOG_ERROR, "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	return put_in_place(dir_fd, tmp, name);

fail:
	close(fd);
	unlinkat(dir_fd, tmp, 0);
	return -1;
}

/*
 * What --check-data adds to a sound file's line when an older sessd wrote it (format 1): while
 * every file is, that sessd can still read the directory (sessd(8), UPGRADING).
 */
static const char *older_format(const struct scan *s)
{
	return s->version < FILE_VERSION ? ", format 1 (an older sessd's)" : "";
}

/*
 * For --check-data: say what a repair of the damaged snapshot ${name} (${seq}) keeps and what
 * it skips, reading it as snap_salvage does. Returns 0, or -1 (logged).
 */
static int snap_report_salvage(int dir_fd, const char *data_dir, const char *name,
                               const uint8_t *key, uint64_t seq, struct buf *plain)
{
	struct snap_load sl = {0};
	struct snap_salvage sv;
	char note[REPEATS_NOTE_BYTES];

	if (snap_salvage_scan(dir_fd, data_dir, name, seq, key, &sl, plain, &sv) == -1)
		return -1;
	if (sv.bad_header) {
		printf("%s: its header is damaged: a repair keeps none of its sessions\n", name);
		return 0;
	}
	printf("%s: a repair keeps the %" PRIu64 " session(s) whose records are sound (%" PRIu64
	       " before the damage, %" PRIu64 " after it)%s; it skips %" PRIu64
	       " damaged part(s), %" PRIu64 " bytes with the %" PRIu64
	       " sound flash message(s) dropped after them (their session may be the one lost)\n",
	       name, sl.sessions, sv.sessions_before, sl.sessions - sv.sessions_before,
	       repeats_note(&sv, note), sv.gaps, sv.gap_bytes, sv.orphans);
	return 0;
}

/*
 * persist_check(data_dir, key_file, repair):
 * For `sessd --check-data DIR [--repair]`: read the snapshot and log, print what is found to
 * stdout; with ${repair}, rewrite a damaged snapshot with the sessions before its damage and
 * cut the log to its valid prefix. Returns 0 when the data is sound (or was repaired), 1 when
 * damage remains, -1 when the files cannot be read.
 */
int persist_check(const char *data_dir, const char *key_file, bool repair)
{
	char name[NAME_BYTES], other[NAME_BYTES], shown_dir[SHOWN_PATH_BYTES],
	    shown_key[SHOWN_PATH_BYTES];
	uint8_t *key = NULL;
	struct listing l = {0};
	struct buf plain;
	uint64_t snap_seq = 0, fail_off = 0;
	size_t first = 0, bad_seg = SIZE_MAX, first_after, lost_records = 0;
	uint64_t bad_keep = 0, lost_bytes = 0;
	size_t n_logs; /* the segments startup would replay */
	bool snap_damaged = false, snap_missing = false, log_missing = false;
	struct stat sb;
	int dir_fd = -1, lock_fd = -1, rc = -1;
	struct scan s;

	buf_init(&plain);
	/* Printed as the log prints them: a newline in a path would forge a line of the report. */
	log_escape(shown_dir, sizeof(shown_dir), data_dir);
	log_escape(shown_key, sizeof(shown_key), key_file != NULL ? key_file : "");
	if (sodium_init() < 0 || (key_file && (key = key_load(key_file)) == NULL))
		goto out;
	dir_fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd == -1) {
		persist_say(LOG_ERROR, "cannot open %s: %s", data_dir, strerror(errno));
		goto out;
	}
	if (repair) {
		lock_fd = dir_lock(dir_fd);
		if (lock_fd == -1) {
			say_lock_error(dir_fd, data_dir, errno,
			               "a running sessd uses this directory");
			goto out;
		}
		/* Made by us when it was missing: as root, the service could not open it. */
		if (own_like_dir(dir_fd, lock_fd) == -1) {
			say_not_owned("LOCK");
			goto out;
		}
	}
	if (listing_read(dir_fd, &l, false) == -1) {
		persist_say(LOG_ERROR, "cannot list %s: %s", data_dir, strerror(errno));
		goto out;
	}
	n_logs = l.n_logs;
	printf("%s: %zu snapshot(s), %zu log segment(s)%s\n", shown_dir, l.n_snaps, l.n_logs,
	       key ? ", encrypted" : "");
	if (l.n_snaps > 0) {
		struct snap_load sl = {0};
		struct snap_ids ids;
		uint64_t size = 0;
		int scanned;

		snap_seq = l.snaps[l.n_snaps - 1];
		snap_name(name, snap_seq);
		if (snap_ids_init(&ids, dir_fd, name, snap_seq, key,
		                  snap_count_hint(dir_fd, key, &plain, name, snap_seq, &size)) ==
		    -1) {
			persist_say(LOG_ERROR, "%s: out of memory", name);
			goto out;
		}
		sl.ids = &ids;
		if (backup_cut_short(dir_fd, snap_seq))
			printf("%s: EMPTY: it stands in the snapshot's place while sessd --backup "
			       "copies: %s is a backup cut short (or a copy of one) and holds no "
			       "whole state. Take the backup again or restore another (--repair "
			       "would keep nothing of it)\n",
			       name, data_dir);
		scanned = file_scan(dir_fd, data_dir, name, SNAP_MAGIC, snap_seq, key, true,
		                    snap_load_record, &sl, &plain, &s, &fail_off);
		snap_ids_finish(&ids);
		if (scanned == -1) {
			if (fail_off == 0)
				goto out;
			printf("%s: DAMAGED at offset %" PRIu64 ": %s\n", name, fail_off,
			       sl.why ? sl.why : "bad record");
			snap_damaged = true;
		} else if (s.damaged || !sl.ended) {
			printf("%s: DAMAGED at offset %" PRIu64 ": %s; %" PRIu64
			       " session(s) before it\n",
			       name, s.damaged ? s.bad_off : s.size,
			       s.damaged ? s.why : "no end record", sl.sessions);
			snap_damaged = true;
		} else {
			printf("%s: ok, %" PRIu64 " sessions, %" PRIu64 " bytes%s\n", name,
			       sl.sessions, s.size, older_format(&s));
		}
		if (snap_damaged &&
		    snap_report_salvage(dir_fd, data_dir, name, key, snap_seq, &plain) == -1)
			goto out;
		if (snap_damaged && repair) {
			if (snap_salvage(dir_fd, data_dir, key, snap_seq, &plain) == -1)
				goto out;
			snap_damaged = false;
		}
		for (size_t i = 0; i + 1 < l.n_snaps; i++) {
			snap_name(name, l.snaps[i]);
			printf("%s: superseded, removed at the next start\n", name);
		}
	}
	while (first < l.n_logs && l.logs[first] < snap_seq) {
		log_name(name, l.logs[first++]);
		printf("%s: covered by the snapshot, removed at the next start\n", name);
	}
	/* Only snapshot N makes a segment N > 1, and only its success removes the segments
	 * before it: a first segment N without snap.N lost that snapshot. What the log holds
	 * goes on from it, so it is kept and replayed on an empty state, as after a snapshot
	 * whose header was damaged. */
	if (l.n_snaps == 0 && l.n_logs > 0 && l.logs[0] != 1) {
		snap_seq = l.logs[0];
		snap_name(name, snap_seq);
		log_name(other, snap_seq);
		printf("%s: MISSING: %s goes on from it; the sessions it held are lost (a backup "
		       "restored in part?). --repair writes it empty, and the log is replayed on "
		       "that: sessions set again after it come back\n",
		       name, other);
		snap_missing = true;
		if (repair) {
			if (snap_put_empty(dir_fd, key, snap_seq) == -1)
				goto out;
			printf(
			    "repaired: %s written empty; %s and the segments after it are replayed "
			    "on it\n",
			    name, other);
			snap_missing = false;
		}
	}
	/* A snapshot is written only once its segment is durable: its log is never missing
	 * but by damage, and the changes made after it are gone. */
	if (snap_seq != 0 && (first == l.n_logs || l.logs[first] != snap_seq)) {
		log_name(name, snap_seq);
		snap_name(other, snap_seq);
		printf(
		    "%s: MISSING: %s holds the state at its start, and the changes made after it "
		    "were in this segment (a backup restored in part?). --repair starts it empty, "
		    "keeping what the snapshot holds\n",
		    name, other);
		log_missing = true;
	}
	/* What load_segments removes: last segments a snapshot made that hold no record, so
	 * that the segment before them is the last, and its torn tail is cut off as startup
	 * does. Only one right after the segment before it is such a segment, and only then does
	 * startup get to remove it: after a gap, check_run refuses the run first, so the gap is
	 * damage here too (a repair sets the segments from it on aside, this one with them). */
	while (n_logs - first > 1 && l.logs[n_logs - 1] == l.logs[n_logs - 2] + 1) {
		const char *why;

		log_name(name, l.logs[n_logs - 1]);
		why = segment_recordless(dir_fd, key, name, l.logs[n_logs - 1]);
		if (why == NULL)
			break;
		printf("%s: holds no record (%s); startup removes it\n", name, why);
		n_logs--;
	}
	for (size_t i = first; i < n_logs && bad_seg == SIZE_MAX; i++) {
		uint64_t want = i == first ? (snap_seq ? snap_seq : 1) : l.logs[i - 1] + 1;

		log_name(name, l.logs[i]);
		if (l.logs[i] != want) {
			printf("%s: DAMAGED: the segment before it is missing\n", name);
			bad_seg = i;
			bad_keep = UINT64_MAX; /* keep nothing from here on */
			break;
		}
		if (file_scan(dir_fd, data_dir, name, LOG_MAGIC, l.logs[i], key, false, NULL, NULL,
		              &plain, &s, &fail_off) == -1)
			goto out;
		if (!s.damaged) {
			printf("%s: ok, %zu records, %" PRIu64 " bytes%s\n", name, s.records,
			       s.size, older_format(&s));
			continue;
		}
		/* What startup cuts off (torn_tail) is not damage: a pre-start check must not call
		 * for a repair after every crash, nor stop a start that would go on. A repair
		 * leaves it to startup. */
		if (torn_tail(&s, i + 1 == n_logs) && s.bad_off == 0) {
			printf("%s: ok, 0 records, then a torn write of %" PRIu64
			       " bytes at the end (%s: its header never reached the disk whole, "
			       "and no record did), which startup replaces with a whole header\n",
			       name, s.size, s.why);
			continue;
		}
		if (torn_tail(&s, i + 1 == n_logs) && s.unwritten) {
			printf("%s: ok, %zu records, then a torn write of %" PRIu64
			       " bytes at the end (%s at offset %" PRIu64
			       ", in a sector a power loss left unwritten, then %zu well-formed "
			       "record(s) written after it and never synced), which startup cuts "
			       "off\n",
			       name, s.records, s.size - s.good_end, s.why, s.bad_off,
			       records_after(dir_fd, name, s.bad_off));
			continue;
		}
		if (torn_tail(&s, i + 1 == n_logs)) {
			printf("%s: ok, %zu records, then a torn write of %" PRIu64
			       " bytes at the end (%s at offset %" PRIu64
			       ", and no well-formed record after it: a write a crash cut short, "
			       "never acknowledged), which startup cuts off\n",
			       name, s.records, s.size - s.good_end, s.why, s.bad_off);
			continue;
		}
		printf("%s: DAMAGED at offset %" PRIu64 ": %s (%s); %zu good records before it\n",
		       name, s.bad_off, s.why,
		       s.torn ? "log segments with records follow it: startup refuses"
		              : "records follow it: startup refuses",
		       s.records);
		bad_seg = i;
		bad_keep = s.bad_off == 0 ? 0 : s.good_end;
		lost_bytes = s.size - bad_keep;
		lost_records = records_after(dir_fd, name, s.bad_off);
		printf("%s: from the damage on, %" PRIu64
		       " bytes, with %zu well-formed record(s) after the damaged part\n",
		       name, lost_bytes, lost_records);
	}
	/* Nothing after the damage is replayed: say what that is, which a repair drops from the
	 * log (keeping it in *.damaged files). After a missing segment, that is all from it on. */
	first_after = bad_seg == SIZE_MAX ? n_logs : bad_keep == UINT64_MAX ? bad_seg : bad_seg + 1;
	for (size_t i = first_after; i < n_logs; i++) {
		log_name(name, l.logs[i]);
		if (file_scan(dir_fd, data_dir, name, LOG_MAGIC, l.logs[i], key, false, NULL, NULL,
		              &plain, &s, &fail_off) == -1)
			goto out;
		if (s.damaged)
			s.records += records_after(dir_fd, name, s.bad_off);
		printf("%s: after the damage, %" PRIu64
		       " bytes, with %zu well-formed record(s)%s\n",
		       name, s.size, s.records, s.damaged ? " (and damage of its own)" : "");
		lost_bytes += s.size;
		lost_records += s.records;
	}
	if (bad_seg != SIZE_MAX && repair) {
		char aside[NAME_BYTES + 16];
		size_t moved = 0;

		/* The segments after n_logs, which hold no record, go too: left behind, the first
		 * of them would follow a gap, or start the log without its snapshot, once the
		 * damaged segment is set aside. */
		for (size_t i = bad_seg + 1; i < l.n_logs; i++) {
			log_name(name, l.logs[i]);
			if (set_aside(dir_fd, name) == -1)
				goto out;
			moved++;
		}
		log_name(name, l.logs[bad_seg]);
		if (bad_keep == 0 || bad_keep == UINT64_MAX) {
			if (set_aside(dir_fd, name) == -1)
				goto out;
			moved++;
		} else {
			if (log_cut(dir_fd, name, l.logs[bad_seg], bad_keep, aside) == -1)
				goto out;
			printf("repaired: %s cut to its valid prefix of %" PRIu64 " bytes; the "
			       "damaged file is kept whole as %s\n",
			       name, bad_keep, aside);
		}
		if (moved > 0)
			printf("repaired: %zu segment(s) from the damage on renamed to *.damaged\n",
			       moved);
		fsync(dir_fd);
		printf("repaired: the log dropped %" PRIu64 " bytes from the damage on, with %zu "
		       "well-formed record(s) after the damaged part; the *.damaged files keep "
		       "them\n",
		       lost_bytes, lost_records);
		bad_seg = SIZE_MAX;
	}
	log_name(name, snap_seq);
	if (repair && snap_seq != 0 && fstatat(dir_fd, name, &sb, AT_SYMLINK_NOFOLLOW) == -1 &&
	    errno == ENOENT) {
		if (segment_put_empty(dir_fd, key, snap_seq) == -1)
			goto out;
		snap_name(other, snap_seq);
		printf("repaired: %s started empty after %s, which keeps its sessions; changes "
		       "made after the snapshot that the log no longer holds are lost\n",
		       name, other);
		log_missing = false;
	}
	/* Its records hold the only copy of the sessions it saved (the log below it is gone):
	 * say what a repair loses, and the other way out. */
	if (snap_damaged)
		printf("--repair rewrites the snapshot with the sessions whose records are sound, "
		       "before and after the damage; those whose records are damaged are lost, "
		       "unless the data directory is restored from a backup\n");
	/* Startup refuses and points here: say what a repair does and how to run it. */
	if (bad_seg != SIZE_MAX) {
		log_name(name, l.logs[bad_seg]);
		printf("--repair keeps the log before the damage and sets the rest aside: %s is "
		       "kept whole as %s.damaged (and any segments after it as *.damaged), and the "
		       "log drops the %zu well-formed record(s) after the damage.",
		       name, name, lost_records);
		if (bad_keep != UINT64_MAX)
			printf(
			    " A crash leaves damage only at the end of the log: this is either a "
			    "sector a power loss left holding stale bytes (the records after it "
			    "were never synced; under --fsync always none of them was "
			    "acknowledged) or data the disk damaged after it was synced (they "
			    "were acknowledged, and only a backup brings them back).");
		printf(
		    " Stop sessd (systemctl stop sessd), run sessd --check-data %s%s%s --repair, "
		    "then start sessd\n",
		    shown_dir, key_file ? " --key-file " : "", shown_key);
	}
	rc = snap_damaged || snap_missing || log_missing || bad_seg != SIZE_MAX ? 1 : 0;
	printf("%s\n", rc == 0 ? "data is sound" : "damage remains");
	/* Sound, and what a start would make of it, but a mistyped path reads so too. */
	if (rc == 0 && l.n_snaps == 0 && l.n_logs == 0)
		printf("%s holds no sessd data: a start there begins with no sessions (is it the "
		       "data directory?)\n",
		       shown_dir);
out:
	listing_finish(&l);
	buf_finish(&plain);
	if (lock_fd != -1)
		close(lock_fd);
	if (dir_fd != -1)
		close(dir_fd);
	if (key)
		sodium_free(key);
	return rc;
}

/*
 * --backup: a copy of a data directory that a sessd may be writing to, as it was at one
 * instant, taken without the daemon's lock or its help (the unit's sandbox lets the daemon
 * write only to its own directories, and a snapshot written by it would cost a fork and the
 * store's memory again). It rests on the way the daemon changes its files:
 * - a segment is only appended to (whole batches, each written before the next, a record
 *   never rewritten; a failed write is written again with the same bytes at the same offset,
 *   and only a file-size limit cuts a failed batch off again), and nothing is written to
 *   segment N+1 before the last write to N is done;
 * - snap.N appears whole (renamed into place), and only once log.N exists;
 * - files are deleted only once a newer snapshot covers them, the segments from the lowest up
 *   (remove_covered), and their numbers are never used again but for a new segment whose
 *   making failed and was removed at once.
 * An open descriptor keeps a file readable after it is deleted. So the newest snapshot and the
 * segments from its number on, opened, hold one state: the snapshot's, the segments' records
 * replayed on it. Their sizes are taken newest first: when the newest holds a record, the
 * daemon had finished with the ones before it; when it holds none, it is left out and the
 * one before it is copied up to its last whole record, a write under way cut off. That state
 * is the one of the instant the newest size was taken, or of the switch to a segment after
 * it, and no earlier than the listing: a segment newer than the newest listed that existed
 * when the listing began would have been listed, unless it was deleted meanwhile, which
 * deletes the newest listed first (so that one is looked for again once all are open).
 */

/* A set whose files keep going away is listed again at most this often, BACKUP_RELIST_US
 * apart: a snapshot takes far longer than a listing, so a few tries are plenty, and a
 * directory that never holds a whole run (a gap a crash did not leave) is damaged. */
#define BACKUP_LIST_TRIES 100
#define BACKUP_RELIST_US  10000
/* Read and write this much at a time, the whole of what --backup holds in memory. */
#define BACKUP_CHUNK (1u << 20)
/* Written data is sent to the disk this often and waited for one step behind, so the copy of
 * a large snapshot never piles up gigabytes of dirty pages (which the daemon's own fdatasync
 * would then queue behind), and dropped from the page cache once on disk. */
#define BACKUP_FLUSH_BYTES (8u << 20)

struct backup_file {
	char name[NAME_BYTES];
	char tmp[NAME_BYTES + 32]; /* its name in the destination until all are copied */
	uint64_t seq;
	bool snapshot;
	int fd;         /* the source, open: still readable once the daemon deletes it */
	uint64_t size;  /* its size when the set was taken */
	uint64_t keep;  /* what is copied: the header and every whole record */
	bool encrypted; /* its header says so (backup_scan) */
	bool torn;      /* it ends in a torn write, not in a write under way */
	bool made;      /* tmp exists in the destination */
	bool placed;    /* ... and was renamed to name */
};

/* The files of one state: the snapshot (when there is one) first, then the segments in order. */
struct backup_set {
	struct backup_file *files;
	size_t n;
};

static void backup_set_finish(struct backup_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->files[i].fd != -1)
			close(set->files[i].fd);
	free(set->files);
	set->files = NULL;
	set->n = 0;
}

/*
 * What a permission error ${err} means to whoever runs --backup, to follow its message ("" for
 * another error). The data directory (mode 0700) and its files (0600) are the service user's:
 * a backup run as another user is refused, and the fix is who runs it, not the files' modes.
 */
static const char *backup_access_hint(int err)
{
	return err == EACCES || err == EPERM
	           ? " (only the user sessd runs as, who owns the data directory, and root may "
	             "read it: run the backup as one of them, e.g. sudo -u sessd sessd --backup)"
	           : "";
}

/*
 * Open the snapshot ${snap_seq} (0: none) and the ${n_logs} segments from ${first}, and take
 * their sizes (see the comment above). Returns 0, 1 when one of them is gone or was replaced
 * (the set must be listed again), or -1 (said) when a file cannot be opened.
 */
static int backup_open(int dir_fd, const char *data_dir, uint64_t snap_seq, uint64_t first,
                       size_t n_logs, struct backup_set *set)
{
	struct stat now, held;
	struct backup_file *newest;

	set->files = calloc(n_logs + 1, sizeof(*set->files));
	if (set->files == NULL) {
		persist_say(LOG_ERROR, "out of memory");
		return -1;
	}
	set->n = 0;
	if (snap_seq != 0) {
		snap_name(set->files[0].name, snap_seq);
		set->files[0].seq = snap_seq;
		set->files[0].snapshot = true;
		set->files[0].fd = -1;
		set->n = 1;
	}
	for (size_t i = 0; i < n_logs; i++) {
		struct backup_file *f = &set->files[set->n++];

		log_name(f->name, first + i);
		f->seq = first + i;
		f->fd = -1;
	}
	for (size_t i = 0; i < set->n; i++) {
		struct backup_file *f = &set->files[i];

		f->fd = open_regular(dir_fd, f->name, O_NOFOLLOW, &held);
		if (f->fd == -1 && errno == ENOENT)
			return 1;
		if (f->fd == -1 && errno != EINVAL) {
			persist_say(LOG_ERROR, "cannot read %s/%s: %s%s", data_dir, f->name,
			            strerror(errno), backup_access_hint(errno));
			return -1;
		}
		if (f->fd == -1) {
			persist_say(
			    LOG_ERROR,
			    "cannot read %s/%s: it is not a regular file, as every file sessd "
			    "writes is: move it out of the data directory",
			    data_dir, f->name);
			return -1;
		}
		posix_fadvise(f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	}
	newest = &set->files[set->n - 1];
	if (fstat(newest->fd, &held) == -1 ||
	    fstatat(dir_fd, newest->name, &now, AT_SYMLINK_NOFOLLOW) == -1 ||
	    now.st_ino != held.st_ino || now.st_dev != held.st_dev)
		return 1;
	for (size_t i = set->n; i-- > 0;) {
		if (fstat(set->files[i].fd, &held) == -1) {
			persist_say(LOG_ERROR, "%s/%s: %s", data_dir, set->files[i].name,
			            strerror(errno));
			return -1;
		}
		set->files[i].size = (uint64_t)held.st_size;
	}
	return 0;
}

/*
 * Open the files of the state ${dir_fd} (the data directory ${data_dir}) holds now, into
 * ${set} (free with backup_set_finish, also after a failure). Returns 0, 1 (said) when the
 * directory holds no whole run of files (a missing segment or snapshot: damage), or -1 (said).
 */
static int backup_take(int dir_fd, const char *data_dir, struct backup_set *set)
{
	for (int tries = 0; tries < BACKUP_LIST_TRIES; tries++) {
		struct listing l;
		uint64_t first;
		size_t from = 0, n_logs = 0;
		int rc;

		backup_set_finish(set);
		if (tries > 0)
			usleep(BACKUP_RELIST_US);
		if (listing_read(dir_fd, &l, false) == -1) {
			persist_say(LOG_ERROR, "cannot list %s: %s", data_dir, strerror(errno));
			return -1;
		}
		if (l.n_logs == 0 && l.n_snaps == 0) {
			listing_finish(&l);
			persist_say(LOG_ERROR,
			            "%s holds no sessd data (no snap.* or log.* file): not a "
			            "--data-dir",
			            data_dir);
			return -1;
		}
		first = l.n_snaps > 0 ? l.snaps[l.n_snaps - 1] : 1;
		while (from < l.n_logs && l.logs[from] < first)
			from++;
		while (from + n_logs < l.n_logs && l.logs[from + n_logs] == first + n_logs)
			n_logs++;
		/* A listing taken while files come and go may show a gap that the directory
		 * never had: list again. */
		if (n_logs == 0 || from + n_logs != l.n_logs) {
			listing_finish(&l);
			continue;
		}
		rc = backup_open(dir_fd, data_dir, l.n_snaps > 0 ? first : 0, first, n_logs, set);
		listing_finish(&l);
		if (rc != 1)
			return rc;
	}
	persist_say(LOG_ERROR,
	            "%s holds no whole run of files (its newest snapshot with every log segment "
	            "from it on, or the log from log.0000000000000001) after %d listings: a file "
	            "is missing. Inspect with sessd --check-data %s",
	            data_dir, BACKUP_LIST_TRIES, data_dir);
	return 1;
}

/* Reads a file through one buffer of BACKUP_CHUNK bytes. */
struct backup_reader {
	int fd;
	uint64_t size; /* never read past this */
	uint8_t *buf;
	uint64_t base; /* the offset of buf[0] */
	size_t len;
};

/*
 * The ${n} bytes (at most BACKUP_CHUNK) at ${off} of ${r}'s file, borrowed until the next call.
 * Returns NULL with errno 0 when the file (or r->size) ends before them, or with the read's
 * errno.
 */
static const uint8_t *reader_at(struct backup_reader *r, uint64_t off, size_t n)
{
	if (off >= r->base && off + n <= r->base + r->len)
		return r->buf + (off - r->base);
	r->base = off;
	r->len = 0;
	while (r->len < BACKUP_CHUNK && off + r->len < r->size) {
		uint64_t left = r->size - off - r->len;
		size_t want = BACKUP_CHUNK - r->len < left ? BACKUP_CHUNK - r->len : (size_t)left;
		ssize_t got = pread(r->fd, r->buf + r->len, want, (off_t)(off + r->len));

		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1)
			return NULL;
		/* A file-size limit made the daemon cut a failed batch off: the end is here. */
		if (got == 0)
			break;
		r->len += (size_t)got;
	}
	errno = 0;
	return r->len >= n ? r->buf : NULL;
}

enum backup_scan {
	BACKUP_WHOLE,     /* header and records whole to the size taken */
	BACKUP_CUT,       /* ... then a record not yet whole: a write under way */
	BACKUP_NO_HEADER, /* shorter than its header: a segment being made */
	BACKUP_DAMAGED,   /* ${why} at ${bad_off} */
	BACKUP_FAILED,    /* a read failed or the key does not fit (said) */
};

/*
 * What can be checked of ${h}, the header of ${f}, without the key: its checksum, kind,
 * version, flags and number. Returns NULL when they hold, or what is wrong.
 */
static const char *backup_header_fault(const uint8_t *h, const struct backup_file *f)
{
	if (get_u32(h + FILE_HEADER_BYTES - 4) != crc32c(h, FILE_HEADER_BYTES - 4))
		return "bad header checksum";
	if (memcmp(h, f->snapshot ? SNAP_MAGIC : LOG_MAGIC, 8) != 0)
		return "not a sessd file of this kind (bad magic)";
	if (get_u32(h + 8) < FILE_VERSION_OLDEST || get_u32(h + 8) > FILE_VERSION)
		return "unsupported format version";
	if ((get_u32(h + 12) & ~FILE_FLAG_ENCRYPTED) != 0)
		return "unknown header flags";
	if (get_u64(h + 16) != f->seq)
		return "sequence number does not match the file name";
	return NULL;
}

/*
 * backup_scan(r, f, dir, key, why, bad_off):
 * Follow the framing of ${f} (read through ${r}, whose fd and size are set) up to f->size: its
 * header, and each record's checksums (not the contents, which an encrypted file keeps from
 * whoever has no key). With ${key}, the header must also say the file was written with it.
 * f->keep gets the end of the last whole record. Returns an enum backup_scan.
 */
static enum backup_scan backup_scan(struct backup_reader *r, struct backup_file *f, const char *dir,
                                    const uint8_t *key, const char **why, uint64_t *bad_off)
{
	const uint8_t *p;
	uint64_t off = FILE_HEADER_BYTES, created;
	bool fatal_config;

	r->base = 0;
	r->len = 0;
	f->keep = 0;
	*bad_off = 0;
	p = reader_at(r, 0, FILE_HEADER_BYTES);
	if (p == NULL && errno != 0)
		goto fail_read;
	if (p == NULL)
		return BACKUP_NO_HEADER;
	*why = backup_header_fault(p, f);
	if (*why != NULL)
		return BACKUP_DAMAGED;
	f->encrypted = (get_u32(p + 12) & FILE_FLAG_ENCRYPTED) != 0;
	if (key != NULL && header_check(p, FILE_HEADER_BYTES, f->snapshot ? SNAP_MAGIC : LOG_MAGIC,
	                                f->seq, key, &created, why, &fatal_config) == -1) {
		persist_say(LOG_ERROR, "%s/%s: %s", dir, f->name, *why);
		return BACKUP_FAILED;
	}
	f->keep = off;
	while (off < f->size) {
		uint32_t len, sum, got = 0;
		uint64_t at;

		*bad_off = off;
		p = reader_at(r, off, REC_HEADER_BYTES);
		if (p == NULL)
			goto cut_or_fail;
		if (get_u32(p + 8) != crc32c(p, 8)) {
			*why = "bad record header checksum";
			return BACKUP_DAMAGED;
		}
		len = get_u32(p);
		sum = get_u32(p + 4);
		if (len > REC_MAX_BODY) {
			*why = "record longer than any sessd writes";
			return BACKUP_DAMAGED;
		}
		if (len > f->size - off - REC_HEADER_BYTES)
			return BACKUP_CUT;
		for (at = off + REC_HEADER_BYTES; at < off + REC_HEADER_BYTES + len;) {
			size_t n = off + REC_HEADER_BYTES + len - at < BACKUP_CHUNK
			               ? (size_t)(off + REC_HEADER_BYTES + len - at)
			               : BACKUP_CHUNK;

			p = reader_at(r, at, n);
			if (p == NULL)
				goto cut_or_fail;
			got = crc32c_extend(got, p, n);
			at += n;
		}
		if (got != sum) {
			*why = "bad record checksum";
			return BACKUP_DAMAGED;
		}
		off += REC_HEADER_BYTES + len;
		f->keep = off;
	}
	return BACKUP_WHOLE;

cut_or_fail:
	if (errno == 0)
		return BACKUP_CUT;
fail_read:
	persist_say(LOG_ERROR, "%s/%s: cannot be read: %s", dir, f->name, strerror(errno));
	return BACKUP_FAILED;
}

/*
 * Whether the damage backup_scan found at ${bad_off} in the segment ${f} is a torn write by
 * the rule startup cuts one off the last segment by (torn_tail, as file_scan applies it): no
 * well-formed record after it, or one only after a sector that never reached the disk. A
 * directory no sessd has started on since a crash may end so; a live one does not, since
 * startup cut it.
 */
static bool backup_torn(const struct backup_file *f, uint64_t bad_off)
{
	struct stat sb;
	struct mapped m;
	struct scan s;
	size_t off = (size_t)bad_off, len;
	bool torn;

	/* Never past the end of the file as it is now: a page there is a SIGBUS. */
	if (fstat(f->fd, &sb) == -1 || (uint64_t)sb.st_size <= bad_off)
		return false;
	m.size = (uint64_t)sb.st_size < f->size ? (size_t)sb.st_size : (size_t)f->size;
	m.map = mmap(NULL, m.size, PROT_READ, MAP_PRIVATE, f->fd, 0);
	if (m.map == MAP_FAILED)
		return false;
	memset(&s, 0, sizeof(s));
	if (m.size - off >= REC_HEADER_BYTES &&
	    get_u32(m.map + off + 8) == crc32c(m.map + off, 8) &&
	    get_u32(m.map + off) > REC_MAX_BODY)
		torn = !valid_record_after(m.map, m.size, off);
	else if (!record_header_at(m.map, m.size, off, &len))
		torn = torn_at(&m, off, off + REC_HEADER_BYTES, off, &s);
	else
		torn = torn_at(&m, off, off + REC_HEADER_BYTES + len,
		               off + REC_HEADER_BYTES + len - 1, &s);
	munmap(m.map, m.size);
	return torn;
}

/*
 * Scan every file of ${set} (backup_scan) and settle what is copied: segments at the end that
 * hold no whole record yet (made for a snapshot, not written to) are left out, as startup
 * would remove them, and then the last segment may end in a write under way, cut off. Every
 * other file must be whole. Returns 0, 1 (said) when a file is damaged, or -1 (said).
 */
static int backup_settle(struct backup_set *set, struct backup_reader *r, const char *data_dir,
                         const uint8_t *key)
{
	size_t first_log = set->n > 0 && set->files[0].snapshot ? 1 : 0;
	const char *why = NULL;
	uint64_t bad_off;

	for (size_t i = set->n; i-- > 0;) {
		struct backup_file *f = &set->files[i];
		bool last = i + 1 == set->n;
		enum backup_scan got;

		r->fd = f->fd;
		r->size = f->size;
		got = backup_scan(r, f, data_dir, key, &why, &bad_off);
		if (got == BACKUP_FAILED)
			return -1;
		/* The first segment after the snapshot was durable, header and all, before the
		 * snapshot existed: it is never one being made. */
		if (last && i > first_log &&
		    (got == BACKUP_NO_HEADER || ((got == BACKUP_WHOLE || got == BACKUP_CUT) &&
		                                 f->keep == FILE_HEADER_BYTES))) {
			printf("%s: not copied: it holds no record yet (a snapshot began it)\n",
			       f->name);
			close(f->fd);
			f->fd = -1;
			set->n--;
			continue;
		}
		if (got == BACKUP_WHOLE || (got == BACKUP_CUT && last && !f->snapshot))
			continue;
		if (got == BACKUP_DAMAGED && last && !f->snapshot && f->keep > 0 &&
		    backup_torn(f, bad_off)) {
			printf("%s: ends in a torn write at offset %" PRIu64 " (%s), which startup "
			       "cuts off\n",
			       f->name, bad_off, why);
			f->torn = true;
			continue;
		}
		if (got == BACKUP_NO_HEADER)
			why = "file shorter than its header";
		else if (got == BACKUP_CUT)
			why = "record runs past the end of the file";
		persist_say(LOG_ERROR,
		            "%s/%s: damaged at offset %" PRIu64 ": %s; no backup taken. Inspect "
		            "with sessd --check-data %s",
		            data_dir, f->name, f->keep > 0 ? bad_off : 0, why, data_dir);
		return 1;
	}
	return 0;
}

/*
 * Whether the backup into ${dest} was asked to stop (*${stop}: the signal, SIGINT or SIGTERM,
 * that main's handler recorded); says so, for the caller to undo what it made. A backup so
 * stopped left its hidden .NAME.partial-XXXXXX, or a copy cut short, to be removed by hand.
 */
static bool backup_stopped(const volatile sig_atomic_t *stop, const char *dest)
{
	if (*stop == 0)
		return false;
	persist_say(LOG_ERROR, "the backup into %s was stopped by %s; removing what it made", dest,
	            *stop == SIGINT    ? "SIGINT"
	            : *stop == SIGTERM ? "SIGTERM"
	                               : "a signal");
	return true;
}

/*
 * Copy the first f->keep bytes of ${f} to a new file f->tmp in ${dest_fd} (the directory
 * ${dest}), and sync it. When ${owner_fd} is not -1 the copy gets that directory's owner (a
 * backup run as root). Returns 0, or -1 (said; f->made says whether the file exists), also
 * when asked to stop (${stop}: backup_stopped) between two chunks.
 */
static int backup_copy(struct backup_file *f, int dest_fd, const char *dest, int owner_fd,
                       uint8_t *buf, const volatile sig_atomic_t *stop)
{
	uint64_t off = 0, flushed = 0, waited = 0;
	int out;

	snprintf(f->tmp, sizeof(f->tmp), "tmp.%s.%ld", f->name, (long)getpid());
	out = openat(dest_fd, f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	             DATA_FILE_MODE);
	if (out == -1) {
		persist_say(LOG_ERROR, "cannot create %s/%s: %s", dest, f->tmp, strerror(errno));
		return -1;
	}
	f->made = true;
	if (owner_fd != -1 && own_like_dir(owner_fd, out) == -1) {
		persist_say(LOG_ERROR, "cannot give %s/%s the data directory's owner: %s", dest,
		            f->tmp, strerror(errno));
		goto fail;
	}
	while (off < f->keep) {
		size_t n = f->keep - off < BACKUP_CHUNK ? (size_t)(f->keep - off) : BACKUP_CHUNK;
		ssize_t got;

		if (backup_stopped(stop, dest))
			goto fail;
		got = pread(f->fd, buf, n, (off_t)off);
		if (got == -1 && errno == EINTR)
			continue;
		if (got <= 0) {
			persist_say(LOG_ERROR, "reading %s at offset %" PRIu64 " failed: %s",
			            f->name, off,
			            got == 0 ? "the file is shorter" : strerror(errno));
			goto fail;
		}
		if (write_full(out, buf, (size_t)got, off) == -1) {
			persist_say(LOG_ERROR, "writing %s/%s failed: %s", dest, f->tmp,
			            strerror(errno));
			goto fail;
		}
		off += (uint64_t)got;
		if (off - flushed >= BACKUP_FLUSH_BYTES || off == f->keep) {
			/* Wait for the step before, start this one (see BACKUP_FLUSH_BYTES). */
			if (flushed > waited) {
				sync_file_range(out, (off_t)waited, (off_t)(flushed - waited),
				                SYNC_FILE_RANGE_WAIT_BEFORE |
				                    SYNC_FILE_RANGE_WRITE |
				                    SYNC_FILE_RANGE_WAIT_AFTER);
				posix_fadvise(out, (off_t)waited, (off_t)(flushed - waited),
				              POSIX_FADV_DONTNEED);
				waited = flushed;
			}
			sync_file_range(out, (off_t)flushed, (off_t)(off - flushed),
			                SYNC_FILE_RANGE_WRITE);
			flushed = off;
		}
	}
	if (fsync(out) == -1) {
		persist_say(LOG_ERROR, "syncing %s/%s failed: %s", dest, f->tmp, strerror(errno));
		goto fail;
	}
	posix_fadvise(out, 0, 0, POSIX_FADV_DONTNEED);
	close(out);
	return 0;

fail:
	close(out);
	return -1;
}

/* Say that the backup's destination ${dest} holds ${name}, so it is not one to back up into. */
static void say_dest_not_empty(const char *dest, const char *name)
{
	persist_say(
	    LOG_ERROR,
	    "%s is not empty (it holds %s): a backup goes into an empty or a new directory, "
	    "so that no file of another one is taken for part of it",
	    dest, name);
}

/*
 * Put an empty file named ${name} in ${dest_fd} (the directory ${dest}), synced: a snapshot
 * shorter than its header, which startup refuses (and names as a backup cut short). The
 * backup puts one under snap.0000000000000001 (a number no snapshot takes) as soon as the
 * destination is open, and one under the name of the snapshot it copies before that copy
 * begins; the snapshot's copy is renamed over the second, and the first goes last. A backup cut
 * short (a crash, a kill) at any point then leaves a directory sessd refuses to start on,
 * whatever else it holds; without it, one cut short while the files were read and checked
 * left an empty directory, and one cut short before any file had its name held only tmp.*
 * files, which startup removes: sessd started on either empty without a word. Returns 0, or
 * -1 (said).
 */
static int backup_guard(const char *name, int dest_fd, const char *dest)
{
	int fd;

	fd = openat(dest_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	            DATA_FILE_MODE);
	if (fd == -1 && errno == EEXIST) {
		say_dest_not_empty(dest, name);
		return -1;
	}
	if (fd == -1 || fsync(dest_fd) == -1) {
		persist_say(LOG_ERROR, "cannot create %s/%s: %s", dest, name, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * Write the BACKUP file naming the state ${set} copies into ${dest_fd} (the directory
 * ${dest}), synced (its name is synced with the copies' renames), with the owner of
 * ${owner_fd} (-1: ours). Returns 0, or -1 (said; nothing left).
 */
static int mark_write(const struct backup_set *set, int dest_fd, const char *dest, int owner_fd)
{
	struct backup_mark m = {
	    .snap = set->files[0].snapshot ? set->files[0].seq : 0,
	    .last_log = set->files[set->n - 1].seq,
	};
	char text[BACKUP_MARK_BYTES];
	size_t n = mark_text(text, &m);
	int fd;

	fd = openat(dest_fd, BACKUP_MARK, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	            DATA_FILE_MODE);
	if (fd == -1) {
		persist_say(LOG_ERROR, "cannot create %s/" BACKUP_MARK ": %s", dest,
		            strerror(errno));
		return -1;
	}
	if ((owner_fd != -1 && own_like_dir(owner_fd, fd) == -1) ||
	    write_full(fd, (const uint8_t *)text, n, 0) == -1 || fsync(fd) == -1) {
		persist_say(LOG_ERROR, "cannot write %s/" BACKUP_MARK ": %s", dest,
		            strerror(errno));
		close(fd);
		unlinkat(dest_fd, BACKUP_MARK, 0);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * Give the copies of ${set}, synced, their names in ${dest_fd}: the segments newest first,
 * each rename synced before the next, then the snapshot over its guard, and the first guard
 * (backup_guard) removed. Until that last step a guard keeps the directory from loading.
 * Returns 0, or -1 (said).
 */
static int backup_place(struct backup_set *set, int dest_fd, const char *dest)
{
	char guard[NAME_BYTES];

	for (size_t k = set->n; k-- > 0;) {
		/* The snapshot is files[0]: renamed last, as k counts down. */
		struct backup_file *f = &set->files[k];

		if (renameat(dest_fd, f->tmp, dest_fd, f->name) == -1) {
			persist_say(LOG_ERROR, "cannot rename %s/%s to %s: %s", dest, f->tmp,
			            f->name, strerror(errno));
			return -1;
		}
		f->placed = true;
		if (fsync(dest_fd) == -1)
			goto fail_sync;
	}
	snap_name(guard, 1);
	if (unlinkat(dest_fd, guard, 0) == -1) {
		persist_say(LOG_ERROR, "cannot remove %s/%s: %s", dest, guard, strerror(errno));
		return -1;
	}
	if (fsync(dest_fd) == -1)
		goto fail_sync;
	return 0;

fail_sync:
	persist_say(LOG_ERROR, "syncing %s failed: %s", dest, strerror(errno));
	return -1;
}

/*
 * Whether ${dir_fd} or a directory above it is ${data} (stat of the data directory): a copy
 * there would be in the directory it copies (and a backup of it would copy itself).
 */
static bool backup_inside(int dir_fd, const struct stat *data)
{
	struct stat sb, up;
	int fd = dup(dir_fd);

	while (fd != -1 && fstat(fd, &sb) == 0) {
		int parent;

		if (sb.st_dev == data->st_dev && sb.st_ino == data->st_ino) {
			close(fd);
			return true;
		}
		parent = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = parent;
		/* The root is its own parent. */
		if (fd == -1 || fstat(fd, &up) == -1 ||
		    (up.st_dev == sb.st_dev && up.st_ino == sb.st_ino))
			break;
	}
	if (fd != -1)
		close(fd);
	return false;
}

/*
 * Whether the destination ${fd} (the directory ${dest}, stat ${sb}) is one only the user the
 * backup runs as (or the data directory's owner, ${data}, who may change the data itself)
 * controls. Another user who owns it or may write to it could swap the copy's files for
 * files of their own, before the renames or after them, and a restore would load their
 * sessions. Says why not. Returns whether it is.
 */
static bool backup_dest_ours(const char *dest, const struct stat *sb, const struct stat *data)
{
	if (sb->st_uid != geteuid() && sb->st_uid != data->st_uid) {
		persist_say(LOG_ERROR,
		            "%s belongs to uid %lu, not to the user this backup runs as (uid %lu) "
		            "or the data directory's owner: whoever owns it could change the copy. "
		            "Give a directory of your own, or a new one",
		            dest, (unsigned long)sb->st_uid, (unsigned long)geteuid());
		return false;
	}
	if ((sb->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		persist_say(LOG_ERROR,
		            "%s has mode %04o: other users may write to it, and could change the "
		            "copy's files. chmod go-w %s, or give a new directory",
		            dest, (unsigned)(sb->st_mode & 07777), dest);
		return false;
	}
	return true;
}

/* The hidden name a new destination is made under: "." and as much of its name as leaves
 * room for this within NAME_MAX. */
#define BACKUP_PARTIAL_SUFFIX   ".partial-XXXXXX"
#define BACKUP_PARTIAL_BASE_MAX ((int)(NAME_MAX - 1 - (sizeof(BACKUP_PARTIAL_SUFFIX) - 1)))

/*
 * Make the backup's destination ${dest} (${path}: the same without trailing slashes), mode
 * 0700 and the data directory's (${data}) owner's when run as root, with the guard ${guard}
 * (backup_guard) already in it: it is made and guarded under a hidden name beside it
 * (.NAME.partial-XXXXXX) and renamed to ${dest}, so that ${dest} never exists without the
 * guard. Made with mkdir and guarded after, a backup killed between the two left an empty
 * directory, which sessd starts on as a new store. A kill before the rename leaves only the
 * hidden directory. Returns its fd, or -1 (said).
 */
static int backup_dest_make(const char *dest, const char *path, const struct stat *data,
                            const char *guard)
{
	char *parent = parent_path(path), *partial = NULL;
	const char *base = strrchr(path, '/');
	bool guarded = false;
	int fd = -1;

	base = base == NULL ? path : base + 1;
	/* Cut so that the hidden name fits where ${dest}'s own does (NAME_MAX): a name near that
	 * long could be made by mkdir, but not with the prefix and suffix around it. */
	if (parent == NULL || asprintf(&partial, "%s/.%.*s" BACKUP_PARTIAL_SUFFIX, parent,
	                               BACKUP_PARTIAL_BASE_MAX, base) == -1) {
		partial = NULL;
		goto fail_said;
	}
	if (mkdtemp(partial) == NULL) {
		persist_say(LOG_ERROR, "cannot create a directory beside %s: %s", dest,
		            strerror(errno));
		free(partial);
		partial = NULL;
		goto fail;
	}
	fd = open(partial, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		goto fail_said;
	/* Run as root, the directory is the data directory's owner's, as its files are: a
	 * restore by `cp -a DEST/. DIR/` (README.md) gives DIR the owner of DEST, and a
	 * root-owned DIR of mode 0700 is one the service cannot open. */
	if (geteuid() == 0 && fchown(fd, data->st_uid, data->st_gid) == -1)
		goto fail_said;
	if (backup_guard(guard, fd, partial) == -1)
		goto fail;
	guarded = true;
	/* Not over a directory made meanwhile: that one is not ours. Filesystems without
	 * RENAME_NOREPLACE (EINVAL) get rename, which still refuses a directory that holds
	 * anything. */
	if (renameat2(AT_FDCWD, partial, AT_FDCWD, path, RENAME_NOREPLACE) == -1 &&
	    (errno != EINVAL || rename(partial, path) == -1)) {
		persist_say(LOG_ERROR, "cannot create %s: %s", dest, strerror(errno));
		goto fail;
	}
	if (sync_parent_dir(path) == -1)
		persist_say(LOG_WARN, "cannot sync the directory that holds %s: %s", dest,
		            strerror(errno));
	free(partial);
	free(parent);
	return fd;

fail_said:
	persist_say(LOG_ERROR, "cannot prepare %s: %s", dest, strerror(errno));
fail:
	if (guarded)
		unlinkat(fd, guard, 0);
	if (fd != -1)
		close(fd);
	if (partial != NULL)
		rmdir(partial);
	free(partial);
	free(parent);
	return -1;
}

/*
 * Open the backup's destination ${dest} with the guard ${guard} (backup_guard) in it, made
 * when it does not exist (backup_dest_make; *${made} then says so), refusing one that is not
 * an empty directory, that lies in the data directory (${src_fd}, ${data_dir}), that is a
 * symbolic link, or that another user controls (backup_dest_ours). The link itself is
 * refused, not just one that leads elsewhere: a backup is often made where others may create
 * names (a /tmp, a shared volume), and a link planted there under the name the backup will
 * take sent every session into whatever directory it named. Returns its fd, or -1 (said).
 */
static int backup_dest_open(int src_fd, const char *data_dir, const char *dest, const char *guard,
                            bool *made)
{
	struct stat data, sb;
	struct dirent *de;
	char *parent, *path;
	int fd, look, dfd;
	DIR *d;

	*made = false;
	if (fstat(src_fd, &data) == -1)
		goto fail_said;
	/* "link/" would follow the link whatever the flags say: the name is taken without the
	 * slashes. */
	path = strdup(dest);
	if (path == NULL)
		goto fail_said;
	for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
		path[n - 1] = '\0';
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1 && (errno == ELOOP || errno == ENOTDIR) && lstat(path, &sb) == 0 &&
	    S_ISLNK(sb.st_mode)) {
		persist_say(LOG_ERROR,
		            "%s is a symbolic link: give the directory itself (a link another user "
		            "planted where a backup goes would send it anywhere)",
		            dest);
		free(path);
		return -1;
	}
	if (fd == -1 && errno != ENOENT) {
		persist_say(LOG_ERROR, "cannot open %s: %s", dest, strerror(errno));
		free(path);
		return -1;
	}
	/* A new one is looked at through the directory it goes in, before it is made. */
	parent = fd == -1 ? parent_path(dest) : NULL;
	look = fd != -1 ? fd : parent ? open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (look == -1 && parent != NULL && errno == ENOENT) {
		/* The README's /srv/backup/sessd-DATE on a machine without /srv/backup. */
		persist_say(LOG_ERROR,
		            "cannot open %s, where %s would be made: %s (a backup makes its "
		            "destination, not the directories above it: make %s first)",
		            parent, dest, strerror(errno), parent);
		free(parent);
		free(path);
		return -1;
	}
	if (look == -1) {
		persist_say(LOG_ERROR, "cannot open %s: %s", parent ? parent : dest,
		            strerror(errno));
		free(parent);
		free(path);
		return -1;
	}
	free(parent);
	if (backup_inside(look, &data)) {
		persist_say(LOG_ERROR,
		            "%s is in the data directory %s: the backup must go elsewhere (and "
		            "another volume is best)",
		            dest, data_dir);
		close(look);
		free(path);
		return -1;
	}
	if (fd == -1) {
		close(look);
		/* Made here, it needs none of the checks below: it is ours, 0700 and empty but
		 * for the guard. */
		fd = backup_dest_make(dest, path, &data, guard);
		*made = fd != -1;
		free(path);
		return fd;
	}
	free(path);
	if (fstat(fd, &sb) == -1) {
		close(fd);
		goto fail_said;
	}
	if (!backup_dest_ours(dest, &sb, &data)) {
		close(fd);
		return -1;
	}
	/* The guard first, then the look: looked at first, the directory could be filled by
	 * another backup that ran whole in between (an overlapping cron job), whose finished copy
	 * then took this one's guard, and lost its snapshot when this one failed on it. With the
	 * guard first (O_EXCL), of two backups into one directory the later finds the other's
	 * guard or files, and is refused with nothing of the other's touched. */
	if (backup_guard(guard, fd, dest) == -1) {
		close(fd);
		return -1;
	}
	dfd = dup(fd);
	d = dfd == -1 ? NULL : fdopendir(dfd);
	if (d == NULL) {
		persist_say(LOG_ERROR, "cannot prepare %s: %s", dest, strerror(errno));
		if (dfd != -1)
			close(dfd);
		goto fail_unguard;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, guard) == 0)
			continue;
		say_dest_not_empty(dest, de->d_name);
		closedir(d);
		goto fail_unguard;
	}
	closedir(d);
	return fd;

fail_unguard:
	unlinkat(fd, guard, 0);
	fsync(fd);
	close(fd);
	return -1;

fail_said:
	persist_say(LOG_ERROR, "cannot prepare %s: %s", dest, strerror(errno));
	return -1;
}

/*
 * Remove what a failed backup made in ${dest_fd} (${dest}), and the directory if it ${made} it.
 * ${snap_guarded}: it put the stand-in under its snapshot's name; not, that name is not its own
 * to remove. ${marked}: it wrote its BACKUP file.
 */
static void backup_undo(struct backup_set *set, int dest_fd, const char *dest, bool made,
                        bool snap_guarded, bool marked)
{
	char guard[NAME_BYTES];

	if (marked)
		unlinkat(dest_fd, BACKUP_MARK, 0);
	if (snap_guarded) {
		snap_name(guard, set->files[0].seq);
		unlinkat(dest_fd, guard, 0);
	}
	snap_name(guard, 1);
	unlinkat(dest_fd, guard, 0);
	for (size_t i = 0; i < set->n; i++) {
		struct backup_file *f = &set->files[i];

		if (f->made)
			unlinkat(dest_fd, f->placed ? f->name : f->tmp, 0);
	}
	fsync(dest_fd);
	if (made)
		rmdir(dest);
}

/*
 * Verify the copies in ${dest} as --check-data does when there is a key or no encryption;
 * an encrypted copy without a key gets its framing and checksums followed again, from the
 * disk. Returns 0 when sound, 1 (said) when not, -1 (said).
 */
static int backup_verify(struct backup_set *set, struct backup_reader *r, int dest_fd,
                         const char *dest, const char *key_file, bool encrypted)
{
	const char *why = NULL;
	uint64_t bad_off;
	int rc;

	if (!encrypted || key_file != NULL) {
		rc = persist_check(dest, key_file, false);
		return rc;
	}
	for (size_t i = 0; i < set->n; i++) {
		struct backup_file f = set->files[i];
		enum backup_scan got;

		r->fd = openat(dest_fd, f.name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (r->fd == -1) {
			persist_say(LOG_ERROR, "%s/%s: cannot be read: %s", dest, f.name,
			            strerror(errno));
			return -1;
		}
		r->size = f.keep;
		got = backup_scan(r, &f, dest, NULL, &why, &bad_off);
		close(r->fd);
		if (got == BACKUP_FAILED)
			return -1;
		if (got != BACKUP_WHOLE || f.keep != set->files[i].keep) {
			printf("%s: DAMAGED at offset %" PRIu64 ": %s\n", f.name, bad_off,
			       why ? why : "cut short");
			return 1;
		}
		printf("%s: ok, header and record checksums\n", f.name);
	}
	printf("encrypted, and no --key-file given: the framing and checksums of every record "
	       "were checked, not the contents (sessd --check-data %s --key-file KEY does)\n",
	       dest);
	return 0;
}

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
                   const volatile sig_atomic_t *stop)
{
	char guard[NAME_BYTES], shown_dir[SHOWN_PATH_BYTES], shown_dest[SHOWN_PATH_BYTES];
	struct backup_set set = {0};
	struct backup_reader r = {.fd = -1};
	uint8_t *key = NULL;
	uint64_t bytes = 0, started_ms = clock_ms(CLOCK_MONOTONIC);
	bool made = false, encrypted = false, snap_guarded = false, marked = false;
	int src_fd = -1, dest_fd = -1, rc = -1;

	if (key_file != NULL && (key = key_load(key_file)) == NULL)
		goto out;
	src_fd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src_fd == -1) {
		persist_say(LOG_ERROR, "cannot open %s: %s%s", data_dir, strerror(errno),
		            backup_access_hint(errno));
		goto out;
	}
	snap_name(guard, 1);
	dest_fd = backup_dest_open(src_fd, data_dir, dest, guard, &made);
	if (dest_fd == -1)
		goto out;
	/* From here every step that takes time looks at ${stop}: a signal that came while the
	 * destination was made under its hidden name is seen once it has its own. */
	if (backup_stopped(stop, dest))
		goto fail;
	r.buf = malloc(BACKUP_CHUNK);
	if (r.buf == NULL) {
		persist_say(LOG_ERROR, "out of memory");
		goto fail;
	}
	rc = backup_take(src_fd, data_dir, &set);
	if (rc == 0)
		rc = backup_settle(&set, &r, data_dir, key);
	if (rc == 0 && backup_stopped(stop, dest))
		rc = -1;
	if (rc != 0)
		goto fail;
	rc = -1;
	log_escape(shown_dir, sizeof(shown_dir), data_dir);
	log_escape(shown_dest, sizeof(shown_dest), dest);
	printf("%s: the state of %s, %s\n", shown_dest, shown_dir,
	       set.files[0].snapshot ? "its newest snapshot and the log after it"
	                             : "its log (no snapshot yet)");
	snap_name(guard, set.files[0].seq);
	if (set.files[0].snapshot) {
		if (backup_guard(guard, dest_fd, dest) == -1)
			goto fail;
		snap_guarded = true;
	}
	for (size_t i = 0; i < set.n; i++) {
		struct backup_file *f = &set.files[i];

		if (backup_copy(f, dest_fd, dest, geteuid() == 0 ? src_fd : -1, r.buf, stop) == -1)
			goto fail;
		encrypted |= f->encrypted;
		bytes += f->keep;
		if (f->keep < f->size)
			printf("%s: copied, %" PRIu64 " bytes (and not the %" PRIu64
			       " after them: %s)\n",
			       f->name, f->keep, f->size - f->keep,
			       f->torn ? "the torn write"
			               : "a write under way, of a later instant");
		else
			printf("%s: copied, %" PRIu64 " bytes\n", f->name, f->keep);
	}
	if (backup_stopped(stop, dest) ||
	    mark_write(&set, dest_fd, dest, geteuid() == 0 ? src_fd : -1) == -1)
		goto fail;
	marked = true;
	printf("%s: names this state's files, %s to %s: a start on them removes it, and one "
	       "where they were copied over newer files refuses to start\n",
	       BACKUP_MARK, set.files[0].name, set.files[set.n - 1].name);
	if (backup_place(&set, dest_fd, dest) == -1)
		goto fail;
	printf("checking the copy:\n");
	fflush(stdout);
	rc = backup_verify(&set, &r, dest_fd, dest, key_file, encrypted);
	if (rc != 0) {
		persist_say(LOG_ERROR, "the copy in %s fails its check; removed it", dest);
		goto fail;
	}
	/* Asked to stop while the copy was checked: the operator said no backup. */
	if (backup_stopped(stop, dest)) {
		rc = -1;
		goto fail;
	}
	printf("backup complete: %zu file(s), %" PRIu64 " bytes, in %.1f s\n", set.n, bytes,
	       (double)(clock_ms(CLOCK_MONOTONIC) - started_ms) / 1000.0);
	goto out;

fail:
	backup_undo(&set, dest_fd, dest, made, snap_guarded, marked);
out:
	backup_set_finish(&set);
	free(r.buf);
	if (dest_fd != -1)
		close(dest_fd);
	if (src_fd != -1)
		close(src_fd);
	if (key)
		sodium_free(key);
	return rc;
}
