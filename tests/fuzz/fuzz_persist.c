/*
 * libFuzzer entry point for the data directory (DATA.md): the files sessd reads at startup
 * (daemon/persist.c's persist_open) and what `sessd --check-data DIR [--repair]` reads and
 * rewrites (persist_check). A crash, a full disk or bit rot can leave any bytes there.
 *
 * Files carry CRC32Cs (and, with a key, AEAD tags) that random bytes never match, so the
 * harness can compute them itself for the parts of the input that ask for it: the fuzzer
 * chooses record contents and still reaches the code that applies them.
 *
 * An input is:
 *   flags:u8 now_ms:u64     flags bit 0: run with a --key-file (the fixed key below);
 *                           now_ms: the wall-clock instant of the startup (little-endian)
 *   [cut:u16 when flags bit 1] the newest log segment is also tried cut short at byte
 *                           ${cut} (mod its length + 1), as a crash mid-write leaves it
 *   then up to 8 files, each:
 *     kind:u8 seq:u8 ctl:u8 len:u16 [at:u16 bit:u8 when ctl bit 3] bytes[len]
 *   kind (mod 8) names the file: 0 snap.SEQ, 1 log.SEQ, 2 tmp.snap.SEQ.1, 3 tmp.log.SEQ.1,
 *   4 log.SEQ.damaged, 5 snap.SEQ.damaged, 6 LOCK, 7 log.zz (a name sessd does not know);
 *   ctl bit 0: write the header's magic (by kind), seq, key check (when its flags say
 *   encrypted) and checksum; bit 1: follow the records by their lengths and write both
 *   checksums of each; bit 2 (with a key and bit 1): each record body is nonce, plaintext and
 *   room for the tag, sealed here as persist.c seals it; bit 3: then flip bit ${bit} (mod 8)
 *   of the byte at ${at} (mod len). The bytes of a file past the input's end are zeros.
 *
 * Checks (abort on failure): whatever persist_open loads is a consistent store (every session
 * live, shown once, with valid lengths, found again by store_get with the same data, counted
 * by COUNT, NAMESPACES and STATS, flash queues within their limits); a directory that opened
 * once opens again to the same sessions, and --check-data then calls it sound; --check-data
 * calling a directory sound means startup accepts it and --repair changes nothing startup
 * loads, and calling it damaged means startup refuses it; a repair that reports success leaves a
 * directory that --check-data calls sound and startup accepts; a directory that opens still
 * opens, and --check-data still calls it sound, with its newest log segment cut at any byte
 * (DATA.md, "Recovery rules": a torn tail is cut off, a header-less last segment removed or
 * its header rewritten). Crashes, leaks and hangs are libFuzzer's.
 *
 * FUZZ_PERSIST_DEBUG=1 in the environment shows the daemon's log and --check-data's report,
 * to see why a check failed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fuzz_input.h"
#include "log.h"
#include "persist.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER_BYTES     52u
#define REC_HEADER_BYTES 12u
#define MAX_FILES        8
#define NONCE_BYTES      crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES        crypto_aead_xchacha20poly1305_ietf_ABYTES

/* The --key-file of runs with flags bit 0: gen-persist-corpus.py gives the daemon the same. */
static const uint8_t data_key[32] = "fuzz_persist: key of 32 bytes!!";
static char key_path[80]; /* work_root and "/key" */
static char work_root[64];
static uint32_t crc_table[256];
static int dev_null = -1;

static uint16_t take_u16(struct input *in)
{
	uint16_t lo = take_u8(in);

	return (uint16_t)(lo | (uint16_t)take_u8(in) << 8);
}

static uint32_t crc32c(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xffffffffu;

	while (n-- > 0)
		crc = crc_table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
	return crc ^ 0xffffffffu;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The key and the directory init_once made, gone at exit (replays run in every build). */
static void remove_work_root(void)
{
	unlink(key_path);
	rmdir(work_root);
}

static void init_once(void)
{
	static bool done;
	int fd;

	if (done)
		return;
	done = true;
	check(sodium_init() >= 0);
	/* Damaged files are expected here: their messages would bury libFuzzer's own. */
	if (getenv("FUZZ_PERSIST_DEBUG") == NULL)
		log_set_level((enum log_level)(LOG_ERROR + 1));
	dev_null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	check(dev_null != -1);
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_table[i] = c;
	}
	/* tmpfs when there is one: every input writes and reads a few files */
	snprintf(work_root, sizeof work_root, "%s/fuzz-persist-XXXXXX",
	         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	check(mkdtemp(work_root) != NULL);
	snprintf(key_path, sizeof key_path, "%s/key", work_root);
	fd = open(key_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	check(fd != -1 && write(fd, data_key, sizeof data_key) == (ssize_t)sizeof data_key);
	close(fd);
	atexit(remove_work_root);
}

struct file {
	char name[64];
	uint8_t kind;
	uint64_t seq;
	uint8_t *bytes;
	size_t len;
};

/* Write what ctl asks for into a file's bytes: header, records' checksums, seals, a flip. */
static void file_fix(struct file *f, uint8_t ctl, bool keyed, uint16_t flip_at, uint8_t flip_bit)
{
	uint8_t *b = f->bytes;
	uint8_t kind = f->kind;

	if ((ctl & 1) && f->len >= HEADER_BYTES) {
		if (kind == 0 || kind == 2 || kind == 5)
			memcpy(b, "SESSDSNP", 8);
		else if (kind == 1 || kind == 3 || kind == 4)
			memcpy(b, "SESSDLOG", 8);
		put_u64(b + 16, f->seq);
		if (keyed && (get_u32(b + 12) & 1))
			crypto_generichash(b + 32, 16, (const uint8_t *)"sessd data key check v1",
			                   23, data_key, sizeof data_key);
		put_u32(b + 48, crc32c(b, 48));
	}
	if (ctl & 2) {
		size_t off = HEADER_BYTES;

		while (off <= f->len && f->len - off >= REC_HEADER_BYTES) {
			uint8_t *h = b + off, *body = h + REC_HEADER_BYTES;
			size_t len = get_u32(h);

			if (len > f->len - off - REC_HEADER_BYTES)
				break;
			if ((ctl & 4) && keyed && len >= NONCE_BYTES + TAG_BYTES) {
				uint8_t ad[16];

				put_u64(ad, f->seq);
				put_u64(ad + 8, off);
				crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
				    body + NONCE_BYTES, body + len - TAG_BYTES, NULL,
				    body + NONCE_BYTES, len - NONCE_BYTES - TAG_BYTES, ad,
				    sizeof ad, NULL, body, data_key);
			}
			put_u32(h + 4, crc32c(body, len));
			put_u32(h + 8, crc32c(h, 8));
			off += REC_HEADER_BYTES + len;
		}
	}
	if ((ctl & 8) && f->len > 0)
		b[flip_at % f->len] ^= (uint8_t)(1u << (flip_bit % 8));
}

static void file_name(struct file *f)
{
	switch (f->kind) {
	case 0:
		snprintf(f->name, sizeof f->name, "snap.%016llx", (unsigned long long)f->seq);
		break;
	case 1:
		snprintf(f->name, sizeof f->name, "log.%016llx", (unsigned long long)f->seq);
		break;
	case 2:
		snprintf(f->name, sizeof f->name, "tmp.snap.%016llx.1", (unsigned long long)f->seq);
		break;
	case 3:
		snprintf(f->name, sizeof f->name, "tmp.log.%016llx.1", (unsigned long long)f->seq);
		break;
	case 4:
		snprintf(f->name, sizeof f->name, "log.%016llx.damaged",
		         (unsigned long long)f->seq);
		break;
	case 5:
		snprintf(f->name, sizeof f->name, "snap.%016llx.damaged",
		         (unsigned long long)f->seq);
		break;
	case 6:
		snprintf(f->name, sizeof f->name, "LOCK");
		break;
	default:
		snprintf(f->name, sizeof f->name, "log.zz");
		break;
	}
}

static void dir_write(const char *dir, const struct file *files, size_t n)
{
	char path[160];

	check(mkdir(dir, 0700) == 0);
	for (size_t i = 0; i < n; i++) {
		int fd;

		snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		check(fd != -1);
		check(files[i].len == 0 ||
		      write(fd, files[i].bytes, files[i].len) == (ssize_t)files[i].len);
		close(fd);
	}
}

static void dir_remove(const char *dir)
{
	char path[400];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		check(unlink(path) == 0);
	}
	closedir(d);
	check(rmdir(dir) == 0);
}

/*
 * A walk of the store: every session it shows checked against the store's other views, and
 * a digest of the whole (a sum of per-session hashes, so the store's order does not matter).
 */
struct seen_session {
	uint8_t ns[64];
	uint8_t id[128];
	struct store_key key;
	uint64_t data_hash;
	bool has_data;
	size_t data_len;
};

struct walk {
	struct store *st;
	struct seen_session *seen;
	uint64_t now_ms;
	uint64_t sessions;
	uint64_t messages;
	uint64_t digest;
	uint64_t session_hash;
	bool in_session;
	size_t types;
	size_t type_left; /* messages still due for the current queue */
	size_t flash_bytes;
};

static uint64_t hash_step(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static void walk_end_session(struct walk *w)
{
	if (!w->in_session)
		return;
	check(w->type_left == 0);
	check(w->types <= 64);
	w->digest += w->session_hash;
	w->in_session = false;
}

static int walk_session(void *arg, const struct store_session_view *s)
{
	struct walk *w = arg;
	struct store_key key = {.ns = s->ns, .ns_len = s->ns_len, .id = s->id, .id_len = s->id_len};
	uint64_t h = 0xcbf29ce484222325ull;
	uint8_t b = s->has_data;

	walk_end_session(w);
	check(s->ns_len >= 1 && s->ns_len <= 64);
	check(s->id_len >= 1 && s->id_len <= 128);
	check(s->expires_at_ms > w->now_ms);
	check(s->has_data || s->data_len == 0);
	/* store_get may take a rehash step: not from inside the walk, which it would upset */
	w->seen = realloc(w->seen, (w->sessions + 1) * sizeof(*w->seen));
	check(w->seen != NULL);
	memcpy(w->seen[w->sessions].ns, s->ns, s->ns_len);
	memcpy(w->seen[w->sessions].id, s->id, s->id_len);
	w->seen[w->sessions].key = key;
	w->seen[w->sessions].data_hash = hash_step(0xcbf29ce484222325ull, s->data, s->data_len);
	w->seen[w->sessions].has_data = s->has_data;
	w->seen[w->sessions].data_len = s->data_len;
	h = hash_step(h, &s->ns_len, sizeof s->ns_len);
	h = hash_step(h, s->ns, s->ns_len);
	h = hash_step(h, &s->id_len, sizeof s->id_len);
	h = hash_step(h, s->id, s->id_len);
	h = hash_step(h, &b, 1);
	h = hash_step(h, &s->expires_at_ms, sizeof s->expires_at_ms);
	h = hash_step(h, &s->data_len, sizeof s->data_len);
	h = hash_step(h, s->data, s->data_len);
	w->session_hash = h;
	w->in_session = true;
	w->types = 0;
	w->type_left = 0;
	w->flash_bytes = 0;
	w->sessions++;
	return 0;
}

static int walk_type(void *arg, const uint8_t *type, size_t type_len, size_t count)
{
	struct walk *w = arg;

	check(w->in_session && w->type_left == 0);
	check(type_len >= 1 && type_len <= 64);
	/* an emptied queue is not kept: a session's empty flashes are no queue at all */
	check(count >= 1);
	w->types++;
	w->type_left = count;
	w->session_hash = hash_step(w->session_hash, &type_len, sizeof type_len);
	w->session_hash = hash_step(w->session_hash, type, type_len);
	w->session_hash = hash_step(w->session_hash, &count, sizeof count);
	return 0;
}

static int walk_msg(void *arg, const void *msg, size_t len, bool is_bin)
{
	struct walk *w = arg;
	uint8_t b = is_bin;

	check(w->in_session && w->type_left > 0);
	w->type_left--;
	w->messages++;
	w->session_hash = hash_step(w->session_hash, &b, 1);
	w->session_hash = hash_step(w->session_hash, &len, sizeof len);
	w->session_hash = hash_step(w->session_hash, msg, len);
	return 0;
}

struct ns_walk {
	struct {
		uint8_t name[64];
		size_t len;
		uint64_t sessions;
	} * names;
	struct store *st;
	uint64_t now_ms;
	uint64_t counted;
	uint64_t namespaces;
};

static int walk_namespace(void *arg, const uint8_t *name, size_t name_len, uint64_t sessions)
{
	struct ns_walk *n = arg;

	check(name_len >= 1 && name_len <= 64);
	check(sessions >= 1);
	/* counted after the scan: store_count may reclaim, which the scan must not see */
	n->names = realloc(n->names, (n->namespaces + 1) * sizeof(*n->names));
	check(n->names != NULL);
	memcpy(n->names[n->namespaces].name, name, name_len);
	n->names[n->namespaces].len = name_len;
	n->names[n->namespaces].sessions = sessions;
	n->namespaces++;
	return 0;
}

/* Check the store loaded at ${now_ms}; returns its digest. */
static uint64_t store_check(struct store *st, uint64_t now_ms)
{
	struct walk w = {.st = st, .now_ms = now_ms};
	struct ns_walk n = {.st = st, .now_ms = now_ms};
	struct store_stats stats;
	uint64_t cursor = 0;
	size_t visited;

	check(store_foreach(st, now_ms, walk_session, walk_type, walk_msg, &w) == 0);
	walk_end_session(&w);
	for (size_t i = 0; i < w.sessions; i++) {
		struct seen_session *s = &w.seen[i];
		const void *data;
		size_t len;

		s->key.ns = s->ns;
		s->key.id = s->id;
		if (store_get(st, &s->key, now_ms, &data, &len) == 0) {
			check(s->has_data && len == s->data_len);
			check(hash_step(0xcbf29ce484222325ull, data, len) == s->data_hash);
		} else {
			check(!s->has_data && errno == ENOENT);
		}
		/* one session, shown once */
		for (size_t j = 0; j < i; j++)
			check(w.seen[j].key.ns_len != s->key.ns_len ||
			      w.seen[j].key.id_len != s->key.id_len ||
			      memcmp(w.seen[j].ns, s->ns, s->key.ns_len) != 0 ||
			      memcmp(w.seen[j].id, s->id, s->key.id_len) != 0);
	}
	free(w.seen);
	do {
		check(store_namespaces(st, cursor, 1000, walk_namespace, &n, &cursor, &visited) ==
		      0);
	} while (cursor != 0);
	for (size_t i = 0; i < n.namespaces; i++) {
		size_t count = store_count(st, n.names[i].name, n.names[i].len, now_ms);

		check(count == n.names[i].sessions);
		n.counted += count;
	}
	free(n.names);
	/* persist_open reclaimed what had expired by now_ms: nothing dead is left to count */
	store_stats(st, NULL, 0, &stats);
	check(stats.sessions == w.sessions);
	check(stats.flashes == w.messages);
	check(stats.namespaces == n.namespaces);
	check(n.counted == w.sessions);
	return w.digest ^ w.sessions;
}

/* Open ${dir} into a new store at ${now_ms}; on success its digest goes in ${digest}. */
static bool open_dir(const char *dir, bool keyed, uint64_t now_ms, uint64_t *digest)
{
	struct store_config scfg = {.max_bytes = 0, .max_flash_bytes = 512 * 1024};
	struct persist_config pcfg = {
	    .data_dir = dir,
	    .fsync = PERSIST_FSYNC_NO,
	    .key_file = keyed ? key_path : NULL,
	    .snapshot_log_bytes = UINT64_MAX / 2,
	    .snapshot_idle_ms = 0,
	};
	struct store *st = store_new(&scfg);
	struct persist *p;

	check(st != NULL);
	p = persist_open(&pcfg, st, now_ms);
	if (p != NULL) {
		*digest = store_check(st, now_ms);
		persist_free(p);
	}
	store_free(st);
	return p != NULL;
}

/* The newest log segment of ${files}, the later of two with one name (it wins): its index, or
 * -1 for none. */
static int newest_log(const struct file *files, size_t n)
{
	int at = -1;

	for (size_t i = 0; i < n; i++)
		if (files[i].kind == 1 && (at == -1 || files[i].seq >= files[at].seq))
			at = (int)i;
	return at;
}

/* persist_check, its report on stdout sent to /dev/null (FUZZ_PERSIST_DEBUG: shown). */
static int check_data(const char *dir, bool keyed, bool repair)
{
	int saved, rc;

	if (getenv("FUZZ_PERSIST_DEBUG")) {
		rc = persist_check(dir, keyed ? key_path : NULL, repair);
		fflush(stdout); /* before a failed check aborts */
		return rc;
	}
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	check(saved != -1 && dup2(dev_null, STDOUT_FILENO) != -1);
	rc = persist_check(dir, keyed ? key_path : NULL, repair);
	fflush(stdout);
	check(dup2(saved, STDOUT_FILENO) != -1);
	close(saved);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	struct file files[MAX_FILES];
	size_t n_files = 0;
	char dir_a[128], dir_b[128], dir_c[128];
	uint64_t now_ms = 0, digest = 0, again = 0, digest_b = 0, digest_c = 0;
	bool keyed, opened, cut;
	uint16_t cut_at = 0;
	uint8_t flags;
	int rc, rc_repair, last;

	init_once();
	flags = take_u8(&in);
	keyed = flags & 1;
	cut = flags & 2;
	for (int i = 0; i < 8; i++)
		now_ms |= (uint64_t)take_u8(&in) << (8 * i);
	if (cut)
		cut_at = take_u16(&in);
	while (in.left > 0 && n_files < MAX_FILES) {
		struct file *f = &files[n_files];
		uint8_t ctl;
		uint16_t flip_at = 0;
		uint8_t flip_bit = 0;
		size_t have;

		f->kind = take_u8(&in) % 8;
		f->seq = take_u8(&in);
		ctl = take_u8(&in);
		f->len = take_u16(&in);
		if (ctl & 8) {
			flip_at = take_u16(&in);
			flip_bit = take_u8(&in);
		}
		f->bytes = calloc(1, f->len ? f->len : 1);
		check(f->bytes != NULL);
		have = in.left < f->len ? in.left : f->len;
		memcpy(f->bytes, in.p, have);
		in.p += have;
		in.left -= have;
		file_name(f);
		file_fix(f, ctl, keyed, flip_at, flip_bit);
		n_files++;
	}
	/* one name written twice: the later bytes win, as open(O_TRUNC) makes them */
	snprintf(dir_a, sizeof dir_a, "%s/a", work_root);
	snprintf(dir_b, sizeof dir_b, "%s/b", work_root);
	dir_write(dir_a, files, n_files);
	dir_write(dir_b, files, n_files);

	opened = open_dir(dir_a, keyed, now_ms, &digest);
	if (opened) {
		/* startup left a directory that opens to the same sessions and checks sound */
		check(open_dir(dir_a, keyed, now_ms, &again));
		check(again == digest);
		check(check_data(dir_a, keyed, false) == 0);
	}

	rc = check_data(dir_b, keyed, false);
	check(rc == 0 || rc == 1 || rc == -1);
	/* it exits 0 exactly when startup would start (DATA.md) */
	check((rc == 0) == opened);
	rc_repair = check_data(dir_b, keyed, true);
	check(rc_repair == 0 || rc_repair == 1 || rc_repair == -1);
	if (rc == 0)
		check(rc_repair == 0);
	if (rc_repair == 0) {
		check(check_data(dir_b, keyed, false) == 0);
		check(open_dir(dir_b, keyed, now_ms, &digest_b));
		/* a sound directory is left as it was */
		if (rc == 0)
			check(digest_b == digest);
	}

	last = newest_log(files, n_files);
	if (opened && cut && last != -1) {
		/* the files as written (startup may have cut dir_a's tail), the newest shorter */
		files[last].len = cut_at % (files[last].len + 1);
		snprintf(dir_c, sizeof dir_c, "%s/c", work_root);
		dir_write(dir_c, files, n_files);
		check(check_data(dir_c, keyed, false) == 0);
		check(open_dir(dir_c, keyed, now_ms, &digest_c));
		dir_remove(dir_c);
	}

	dir_remove(dir_a);
	dir_remove(dir_b);
	for (size_t i = 0; i < n_files; i++)
		free(files[i].bytes);
	return 0;
}
