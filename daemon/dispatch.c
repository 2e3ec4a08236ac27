/*
 * Dispatch: requests in, replies out, the store in between. See dispatch.h and PROTOCOL.md.
 */
#include "dispatch.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "auth.h"
#include "codec.h"
#include "ids.h"
#include "log.h"
#include "mp.h"
#include "replays.h"
#include "seal.h"

/*
 * The most a LIST entry takes on the wire: fixarray, bin8 header and a 128-byte id, uint64.
 * LIST pages are cut to what fits in max_frame (PROTOCOL.md: the server may return fewer).
 */
#define DISPATCH_LIST_ENTRY_MAX (1 + 2 + IDS_MAX_ID_LEN + 9)
/* The most a NAMESPACES entry takes: fixarray, str8 header and a 64-byte name, uint64. */
#define DISPATCH_NAMESPACES_ENTRY_MAX (1 + 2 + IDS_MAX_NAMESPACE_LEN + 9)
#define DISPATCH_REPLY_OVERHEAD       64
/* The most a change's reply takes once the change is made: OK with nil or a count, or
 * INTERNAL "the change was made but not logged" (frame header, request id and status
 * included). */
#define DISPATCH_DONE_REPLY_MAX 64
/* The most any reply to a change takes that is not a FLASH_POP's messages: a refusal's error
 * message included. */
#define DISPATCH_CHANGE_REPLY_MAX 1024
/* How often the warnings about refusals come, or, when the daemon stops, why one comes early. */
#define DISPATCH_NOTE_PERIODIC "this line comes at most once a minute"
#define DISPATCH_NOTE_STOPPING "since the last such line; sessd is stopping"
/* What one loop turn may spend on requests that cost milliseconds before those left wait for
 * the next turn: key exchanges (two X25519 each, 0.1-0.3 ms; a burst of sealed HELLOs, a
 * fleet of workers reconnecting after a restart or one recorded HELLO replayed, which needs
 * no secret, took 0.25 ms each in a single turn, half a second for a thousand, while every
 * other client waited), and LIST and NAMESPACES pages (up to several ms each for 1000
 * entries of a large namespace: four connections pipelining them held the loop for
 * hundreds of ms a turn, their replies being small). */
#define DISPATCH_HEAVY_TURN_NS 1000000u
/* The check of a SET_IF or TOUCH_IF hashes the session's data (BLAKE2b, about 1 GB/s): a
 * 40-byte request may cost a millisecond. It counts against the same budget at this many ns a
 * byte, estimated rather than timed so that the small sessions of every save pay no clock
 * read: one client pipelining TOUCH_IFs with a wrong tag over a 1 MB session held the loop
 * for 0.4 s a turn (every other client waited), its replies being small CONFLICTs. */
#define DISPATCH_HASH_NS_PER_BYTE 1u
/* A FLASH_POP costs CPU for each message it takes (found, written into the reply, freed with
 * its queue: 1.25 ms for the 87,381 empty messages a session may hold under the default
 * max_frame), for a reply of a byte or two a message, which the turn's budget for replies
 * hardly sees: one connection pipelining such pops ran a dozen a turn (26 ms; hostile review,
 * stop 41). A pop that takes messages counts against the same budget at this many ns each,
 * estimated like the hash's; past it, one waits for a later turn as a LIST page does. */
#define DISPATCH_FLASH_NS_PER_MESSAGE 16u
/* How many connections put off for that budget a turn hands again: a few more than it can
 * serve, since each costs a decode whether it runs or waits again; handing them all, a
 * thousand waiting took a thousand decodes a turn. */
#define DISPATCH_HEAVY_RETRIES 16u

/*
 * Where the connections refused for want of the secret came from since the warning's last
 * line: a source is a host over TCP (its address, whatever the port) and a user over a Unix
 * socket (its uid, whatever the process), the DISPATCH_AUTH_SOURCES with the most named with
 * their counts, the rest counted together. A guesser opens a connection a guess, so the last
 * peer alone named a port or a pid that told little, and one source of two or more none.
 *
 * DISPATCH_AUTH_TRACKED sources are named in a table; every source is also counted in a
 * count-min sketch (DISPATCH_AUTH_ROWS rows of DISPATCH_AUTH_CELLS counters, keyed by a random
 * key per start, so no client can choose a label that lands on another's cells), which never
 * forgets one within the line's minute and never counts one short, only over by the few
 * refusals of others sharing all its cells. A source not in the table takes the place of the
 * one with the fewest (the oldest of those) once the sketch counts more for it, and comes in
 * with the sketch's count. Before, a newcomer always took the place of the one with the
 * fewest, starting at one: a guesser followed each time by 64 new sources (an attacker that
 * binds to new 127.x.y.z, or holds an IPv6 /48) was pushed out before each of its guesses
 * and never named, however many it made. A bitmap (linear counting) estimates how many
 * sources there were, so that a guess spread over thousands of addresses is seen as such.
 * A count that came in from the sketch is said "up to". 45 KiB in all, whatever the sources.
 */
#define DISPATCH_AUTH_SOURCES 4
#define DISPATCH_AUTH_TRACKED 64
#define DISPATCH_AUTH_ROWS    4
#define DISPATCH_AUTH_CELLS   4096
#define DISPATCH_AUTH_BITMAP  4096
struct auth_sources {
	char name[DISPATCH_AUTH_TRACKED][DISPATCH_PEER_NAME_BYTES];
	uint64_t count[DISPATCH_AUTH_TRACKED];
	/* When each came into the table: of those with the fewest, the oldest gives way. */
	uint64_t since[DISPATCH_AUTH_TRACKED];
	uint64_t arrivals;
	size_t n;
	uint64_t total; /* refusals tallied since the last line */
	/* Whether a count came in from the sketch: an upper bound, said "up to". */
	bool estimated[DISPATCH_AUTH_TRACKED];
	uint16_t sketch[DISPATCH_AUTH_ROWS][DISPATCH_AUTH_CELLS]; /* saturating */
	uint8_t seen[DISPATCH_AUTH_BITMAP / 8];
};

/* A namespace the NO_MEMORY warning names, and a figure of it: its writes refused since the
 * last line, or its bytes. */
struct dispatch_ns_figure {
	uint8_t name[64];
	size_t len;
	uint64_t count;
};

/* Namespaces the NO_MEMORY warning names of each kind: the most memory, the refused writes. */
#define DISPATCH_REFUSED_NS 3
/* The bytes of a namespace's name it shows, and the characters they may take as the log writes
 * them (a byte it escapes takes 4, a quote doubled 2), so that the line of six names fits
 * log_msg's 1024 whatever the names: 32 bytes escaped each, six names with figures of a store
 * of megabytes came to 1,140 characters, and the line lost its last victims. */
#define DISPATCH_NS_SHOWN       32
#define DISPATCH_NS_SHOWN_WIDTH 64
/* Namespaces the NO_MEMORY warning's walk looks at in one step: at most about 3.5 ms (300,000
 * namespaces took 3.4 us each at load 7 when store_namespaces' scan hashed each name it passed;
 * with the hash kept in the namespace, a step is about half the instructions, and with the
 * figures taken from the scan rather than a lookup of each name, half again: about 320
 * instructions a namespace, callgrind of 50,000 at stop 64). One step is taken
 * with the warning, the others once a second (dispatch_log_due), so that a store of hundreds of
 * thousands of namespaces does not hold the loop for the whole walk: 300,000 held it 2.5 s in a
 * refused write's turn at stop 61 (load 26), 1.0 s at load 7. Their line comes about 5 minutes
 * later. */
#define DISPATCH_NS_WALK_STEP 1024

/* The namespaces holding the most bytes, found by the NO_MEMORY warning's walk a step at a
 * time (ns_walk_step), for the line that names them. */
struct ns_largest {
	bool walking;
	uint64_t cursor;
	struct dispatch_ns_figure top[DISPATCH_REFUSED_NS];
	size_t used;
};

struct dispatch {
	struct dispatch_config cfg;
	struct store *st;
	struct persist *p;
	const struct dispatch_server_stats *stats;
	uint64_t requests_total;
	/* Answer DISPATCH_LATER rather than walk a large namespace (see store_count_is_quick), or
	 * than run a key exchange past this turn's DISPATCH_HEAVY_TURN_NS. */
	bool deferring;
	bool count_put_off;  /* a COUNT or CLEAR waits for the expiry to catch up */
	bool change_put_off; /* a change waits for the log (persist_must_wait) */
	/* This turn's time in heavy requests (DISPATCH_HEAVY_TURN_NS); whether one was put off
	 * this turn, and whether one ran; whether this turn hands those put off again
	 * (dispatch_turn_begins sets it from the last turn's). */
	uint64_t heavy_turn_ns;
	bool heavy_put_off, retried_progress, heavy_retry;
	/* Connections handed again since a retry last moved one off the waiting list. */
	size_t handed_idle;
	uint64_t kx_deferred_total; /* STATS' hello_deferred_total */
	/* Requests put off for DISPATCH_HEAVY_TURN_NS, each time: STATS' cpu_deferred_total. */
	uint64_t heavy_deferred_total;
	/* LIST writes its entries here first: the cursor goes before them on the wire but is
	 * known only after the scan. Reused, so LIST allocates only while it grows. */
	struct buf scratch;
	/* Keys the log tags of session ids: sodium_malloc'd, read-only, wiped when freed. */
	uint8_t *tag_key;
	char server_id[33];
	/* The client keys of the sealed HELLOs answered, to tell one seen again (a replay); NULL
	 * with neither --auth-file nor --admin-auth-file, where no HELLO is sealed. */
	struct replays *replays;
	/* Keys the hash of the process identity a HELLO states (hello_process), random per start:
	 * a client cannot choose its identity to land on another process's hash. */
	uint8_t process_key[crypto_shorthash_KEYBYTES];
	/* HELLOs refused for want of the secret, for the warning about them, and where they came
	 * from since its last line (auth_sources), which it names. */
	struct log_every auth_refusals;
	struct auth_sources auth_refused_from;
	uint8_t sources_key[crypto_shorthash_KEYBYTES]; /* auth_sources' sketch, random per start */
	/* Plain HELLOs refused by --auth-plain, likewise. */
	struct log_every plain_refusals;
	char plain_refused_peer[DISPATCH_PEER_NAME_BYTES];
	/* With --admin-auth-file alone, plain HELLOs let in as apps that showed something other
	 * than the admin secret, likewise: nothing else would show an app guessing at it. */
	struct log_every unchecked_secrets;
	char unchecked_peer[DISPATCH_PEER_NAME_BYTES];
	/* Writes answered NO_MEMORY: STATS' no_memory_total, and the warning about them. */
	uint64_t no_memory_total;
	uint64_t io_errors_total; /* changes refused with IO_ERROR: the log cannot take them */
	uint64_t forbidden_total; /* admin requests refused FORBIDDEN: STATS' forbidden_total */
	uint64_t retired_total;   /* connections RETIRE closed: STATS' retired_total */
	struct log_every no_memory_log;
	/* Sessions a full store dropped unread (--when-full drop-unread), for the warning. */
	struct log_every dropped_log;
	/* The data length of the change being carried out, for the log's room (on_drop). */
	size_t change_len;
	/* The request being carried out kept the room for its reply, sealed too, before it
	 * changed anything (run): none is asked for after it, which could only fail it. A change
	 * refused before that (a CLEAR answered FORBIDDEN) has none and asks after, as a read. */
	bool room_kept;
	/* Writes answered NO_MEMORY since the warning's last line, by namespace: the first
	 * DISPATCH_REFUSED_NS namespaces refused, the rest counted together. They name the
	 * victims of a full store, which the warning names beside the namespaces holding the most
	 * memory, its cause: the last refused write's namespace, all it named before, was often
	 * a victim's. */
	struct dispatch_ns_figure refused_ns[DISPATCH_REFUSED_NS];
	size_t refused_ns_used;
	uint64_t refused_other_ns;
	/* The walk of the namespaces for that line, under way until it has seen them all. */
	struct ns_largest largest;
	/* Frames that decode as no request (BAD_REQUEST, the connection closed): counted in
	 * STATS' malformed_total with conn.c's refused frames, and warned of with the last
	 * peer and the decoder's words (a literal). */
	uint64_t malformed_total;
	struct log_every malformed_log;
	char malformed_peer[DISPATCH_PEER_NAME_BYTES];
	const char *malformed_why;
};

/* ${pending}: 1 when said as the store is about to drop one more, which the figures count. */
static void say_dropped(const struct dispatch *d, uint64_t dropped, uint64_t pending,
                        const char *note)
{
	struct store_stats s;

	store_stats(d->st, NULL, 0, &s);
	s.unread -= pending;
	s.sessions -= pending;
	s.evicted_total += pending;
	log_warn("dropped %llu session(s) never read back since they were written, to make room "
	         "under --max-memory %llu for writes (--when-full drop-unread): their visitors, if "
	         "they come back, find no session; %llu of the %llu sessions left are unread, "
	         "%llu dropped since the start (see sessd(8), FAILURES) (%s)",
	         (unsigned long long)dropped, (unsigned long long)d->cfg.max_bytes,
	         (unsigned long long)s.unread, (unsigned long long)s.sessions,
	         (unsigned long long)s.evicted_total, note);
}

/*
 * The store drops ${key} to make room for the change being carried out (store_drop_fn): log it
 * as a DESTROY first, so that a restart does not bring it back, keeping room for the change's
 * own record; a log that cannot take it keeps the session, and the change is refused.
 */
static int on_drop(void *arg, const struct store_key *key, uint64_t now_ms)
{
	struct dispatch *d = arg;
	uint64_t dropped;

	if (d->p != NULL && (persist_reserve_drop(d->p, d->change_len) == -1 ||
	                     persist_log_destroy(d->p, key, now_ms) == -1))
		return -1;
	dropped = log_every_due(&d->dropped_log, 1, 60);
	if (dropped > 0)
		say_dropped(d, dropped, 1, DISPATCH_NOTE_PERIODIC);
	return 0;
}

struct dispatch *dispatch_new(const struct dispatch_config *cfg, struct store *st,
                              struct persist *p, const struct dispatch_server_stats *stats)
{
	uint8_t raw[16];
	struct dispatch *d;

	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	d->cfg = *cfg;
	d->st = st;
	d->p = p;
	d->stats = stats;
	d->deferring = true;
	buf_init(&d->scratch);
	d->tag_key = ids_secret_new(IDS_LOG_TAG_KEY_BYTES);
	if (d->tag_key == NULL)
		goto fail_free;
	if ((cfg->auth != NULL || cfg->admin_auth != NULL) && (d->replays = replays_new()) == NULL)
		goto fail_tag_key;
	if (cfg->drop_unread && store_drop_unread(st, on_drop, d) == -1)
		goto fail_replays;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(d->server_id, sizeof(d->server_id), raw, sizeof(raw));
	randombytes_buf(d->process_key, sizeof(d->process_key));
	randombytes_buf(d->sources_key, sizeof(d->sources_key));
	return d;

fail_replays:
	replays_free(d->replays);
fail_tag_key:
	sodium_free(d->tag_key);
fail_free:
	free(d);
	errno = ENOMEM;
	return NULL;
}

void dispatch_free(struct dispatch *d)
{
	if (d == NULL)
		return;
	buf_finish(&d->scratch);
	sodium_free(d->tag_key); /* wipes it */
	replays_free(d->replays);
	free(d);
}

const char *dispatch_server_id(const struct dispatch *d)
{
	return d->server_id;
}

size_t dispatch_retries(struct dispatch *d, uint64_t now_ms)
{
	bool all = false;

	if (d->change_put_off && !persist_must_wait(d->p)) {
		d->change_put_off = false;
		all = true;
	}
	if (d->count_put_off && (!d->deferring || !store_expiry_behind(d->st, now_ms))) {
		d->count_put_off = false;
		all = true;
	}
	if (all)
		return SIZE_MAX;
	return d->heavy_retry ? DISPATCH_HEAVY_RETRIES : 0;
}

bool dispatch_waits_for_expiry(const struct dispatch *d)
{
	return d->count_put_off;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether this turn's budget for heavy requests is spent, and the server still defers. */
static bool heavy_spent(const struct dispatch *d)
{
	return d->deferring && d->heavy_turn_ns >= DISPATCH_HEAVY_TURN_NS;
}

/*
 * Whether a heavy request (one that costs CPU, not reply bytes) must wait for a later turn:
 * this turn's budget for them is spent, and the server still defers. It is then put off:
 * ${verdict} says DISPATCH_LATER, and the next turn hands it again.
 */
static bool heavy_must_wait(struct dispatch *d, enum dispatch_verdict *verdict)
{
	if (!heavy_spent(d))
		return false;
	d->heavy_put_off = true;
	d->heavy_deferred_total++;
	*verdict = DISPATCH_LATER;
	return true;
}

/* A heavy request timed from ${started_ns} (0: not timed) is done: its time is the turn's. */
static void heavy_done(struct dispatch *d, uint64_t started_ns)
{
	if (started_ns != 0)
		d->heavy_turn_ns += mono_ns() - started_ns;
}

/*
 * Whether the next turn hands heavy requests put off again: one was put off this turn, or
 * this turn handed some again and one at least left the waiting list. Not only the first: a
 * burst of sealed HELLOs waits in the connections' list, and when the few handed each turn
 * all run within the budget (a faster CPU), none is put off again, yet the rest still wait;
 * stopping there left them unanswered until other traffic came (400 HELLOs at once: 78
 * answered, on an AMD EPYC). Nor only when what was handed again cost the budget: 16 SET_IFs
 * handed again whose session had gone (NOT_FOUND, no hash), or LIST pages of clients that had
 * hung up (dropped), ran nothing heavy, and the 21 connections behind them waited for good
 * while the loop slept. Nor only while the few handed move: COUNTs put off for a mass expiry
 * wait in the same list, and 16 of them at its head, put off again round after round, kept
 * the SET_IFs and HELLOs behind them waiting for the whole expiry (0.5 s for 1.5 million due,
 * against 0.1). The retries go round the whole list once before they give up; then none
 * waits for the budget (a COUNT waits for the expiry: dispatch_retries hands it when that
 * caught up).
 */
static bool heavy_waits(const struct dispatch *d)
{
	return d->heavy_put_off || (d->heavy_retry && d->retried_progress);
}

void dispatch_turn_begins(struct dispatch *d)
{
	d->heavy_retry = heavy_waits(d);
	if (!d->heavy_retry)
		d->handed_idle = 0;
	d->heavy_put_off = false;
	d->retried_progress = false;
	d->heavy_turn_ns = 0;
	store_turn_begins(d->st);
}

void dispatch_retried(struct dispatch *d, size_t handed, size_t left, size_t waiting)
{
	if (left > 0)
		d->handed_idle = 0;
	else
		d->handed_idle += handed;
	d->retried_progress = left > 0 || (handed > 0 && d->handed_idle < waiting);
}

bool dispatch_wants_next_turn(const struct dispatch *d)
{
	return heavy_waits(d);
}

void dispatch_stop_deferring(struct dispatch *d)
{
	d->deferring = false;
}

uint64_t dispatch_requests_total(const struct dispatch *d)
{
	return d->requests_total;
}

/* How the warnings name a refused peer: as it was named at the refusal (note_refused_peer). */
static const char *peer_label(const char *name)
{
	return name[0] != '\0' ? name : "an unnamed peer";
}

/* Keep ${peer}'s name in ${out} (DISPATCH_PEER_NAME_BYTES) for the warning, which may come
 * after the connection is gone. */
static void note_refused_peer(char *out, const struct dispatch_peer *peer)
{
	snprintf(out, DISPATCH_PEER_NAME_BYTES, "%s", peer->name != NULL ? peer->name : "");
}

/*
 * The source of the peer named ${name} (dispatch_peer.name) into ${out}
 * (DISPATCH_PEER_NAME_BYTES): "ADDR" of "ADDR:PORT" and "[V6]" of "[V6]:PORT"; "uid U on
 * unix:PATH" of "pid P (uid U) on unix:PATH".
 */
static void source_label(const char *name, char *out)
{
	const char *uid = strstr(name, "(uid "), *close = uid != NULL ? strchr(uid, ')') : NULL;
	const char *port = strrchr(name, ':');

	if (name[0] == '\0')
		snprintf(out, DISPATCH_PEER_NAME_BYTES, "an unnamed peer");
	else if (strncmp(name, "pid ", 4) == 0 && close != NULL)
		snprintf(out, DISPATCH_PEER_NAME_BYTES, "%.*s%s", (int)(close - uid - 1), uid + 1,
		         close + 1);
	else if (port != NULL)
		snprintf(out, DISPATCH_PEER_NAME_BYTES, "%.*s", (int)(port - name), name);
	else
		snprintf(out, DISPATCH_PEER_NAME_BYTES, "%s", name);
}

/* Count a refusal of ${peer} against its source in ${from}, the sketch keyed by ${key}. */
static void tally_source(struct auth_sources *from, const uint8_t *key,
                         const struct dispatch_peer *peer)
{
	char label[DISPATCH_PEER_NAME_BYTES];
	uint8_t hash[crypto_shorthash_BYTES];
	uint32_t cell[DISPATCH_AUTH_ROWS], least = UINT16_MAX;
	uint64_t bits;
	size_t i, fewest = 0;

	source_label(peer->name != NULL ? peer->name : "", label);
	crypto_shorthash(hash, (const unsigned char *)label, strlen(label), key);
	memcpy(&bits, hash, sizeof(bits));
	from->total++;
	from->seen[(bits % DISPATCH_AUTH_BITMAP) / 8] |= (uint8_t)(1u << (bits % 8));
	/* Conservative update: only the cells at the least rise, which keeps the counts of
	 * sources sharing a cell from running up each other's. */
	for (int r = 0; r < DISPATCH_AUTH_ROWS; r++) {
		cell[r] = (uint32_t)((bits >> (12 * r + 12)) % DISPATCH_AUTH_CELLS);
		if (from->sketch[r][cell[r]] < least)
			least = from->sketch[r][cell[r]];
	}
	for (int r = 0; r < DISPATCH_AUTH_ROWS; r++)
		if (from->sketch[r][cell[r]] == least && least < UINT16_MAX)
			from->sketch[r][cell[r]]++;
	if (least < UINT16_MAX)
		least++;
	for (i = 0; i < from->n && strcmp(from->name[i], label) != 0; i++)
		;
	if (i < from->n) {
		from->count[i]++;
		return;
	}
	if (from->n < DISPATCH_AUTH_TRACKED) {
		i = from->n++;
	} else {
		for (size_t k = 1; k < from->n; k++)
			if (from->count[k] < from->count[fewest] ||
			    (from->count[k] == from->count[fewest] &&
			     from->since[k] < from->since[fewest]))
				fewest = k;
		if (least <= from->count[fewest])
			return; /* counted in the sketch, and among the others */
		i = fewest;
	}
	memcpy(from->name[i], label, sizeof(label));
	from->estimated[i] = least > 1;
	from->count[i] = least;
	from->since[i] = from->arrivals++;
}

/* How many sources ${from} saw: linear counting over its bitmap, -m ln(zero bits / m)
 * (within a few percent up to some ten thousand sources); *${more} when the bitmap is full,
 * the figure then a floor. */
static uint64_t sources_seen(const struct auth_sources *from, bool *more)
{
	uint64_t zero = 0;

	for (size_t b = 0; b < DISPATCH_AUTH_BITMAP; b++)
		zero += !(from->seen[b / 8] & (1u << (b % 8)));
	*more = zero == 0;
	if (zero == 0)
		zero = 1;
	return (uint64_t)(DISPATCH_AUTH_BITMAP * log((double)DISPATCH_AUTH_BITMAP / (double)zero) +
	                  0.5);
}

/* Say the ${refused} refusals tallied in d->auth_refused_from, most first, and start over. A
 * source's figure comes from the sketch when it came into the table late: never short, and
 * over only by others sharing all its cells. */
static void say_auth_refusals(struct dispatch *d, uint64_t refused, const char *note)
{
	struct auth_sources *from = &d->auth_refused_from;
	char sources[DISPATCH_AUTH_SOURCES * (DISPATCH_PEER_NAME_BYTES + 32) + 64];
	char spread[64] = "";
	bool said[DISPATCH_AUTH_TRACKED] = {false}, more;
	uint64_t named = 0, seen;
	size_t at = 0, k;

	sources[0] = '\0';
	for (k = 0; k < from->n && k < DISPATCH_AUTH_SOURCES; k++) {
		size_t most = from->n;

		for (size_t i = 0; i < from->n; i++)
			if (!said[i] && (most == from->n || from->count[i] > from->count[most]))
				most = i;
		said[most] = true;
		named += from->count[most];
		at += (size_t)snprintf(sources + at, sizeof(sources) - at, "%s%s%llu from %s",
		                       k > 0 ? ", " : "", from->estimated[most] ? "up to " : "",
		                       (unsigned long long)from->count[most], from->name[most]);
	}
	if (from->total > named)
		snprintf(sources + at, sizeof(sources) - at, ", %llu from other sources",
		         (unsigned long long)(from->total - named));
	/* Many sources, each with a few: a guesser spread over many addresses (127.0.0.0/8 over
	 * loopback, an IPv6 prefix), or many hosts with an old secret. */
	seen = sources_seen(from, &more);
	if (from->n == DISPATCH_AUTH_TRACKED && seen > k)
		snprintf(spread, sizeof(spread), "; they came from %s%llu sources",
		         more ? "more than " : "about ", (unsigned long long)seen);
	/* Without --auth-file only a key exchange is refused: one that did not prove the admin
	 * secret, the file an operator must then look at. */
	log_warn("refused %llu connection(s) that did not show the %s secret: %s (%s)%s",
	         (unsigned long long)refused,
	         d->cfg.auth != NULL ? "--auth-file" : "--admin-auth-file", sources, note, spread);
	memset(from, 0, sizeof(*from));
}

static void say_plain_refusals(const struct dispatch *d, uint64_t refused, const char *note)
{
	log_warn("refused %llu plain HELLO(s), the last from %s, which carry the secret "
	         "unsealed, where --auth-plain %s forbids them: seal those clients' "
	         "connections, and if what they sent was the secret, whoever saw it has it: "
	         "replace it (%s)",
	         (unsigned long long)refused, peer_label(d->plain_refused_peer),
	         d->cfg.plain == AUTH_PLAIN_NO ? "no" : "loopback", note);
}

static void say_unchecked_secrets(const struct dispatch *d, uint64_t shown, const char *note)
{
	log_warn("let in %llu connection(s) as apps that showed a secret other than the "
	         "--admin-auth-file one, the last from %s: an app given a secret this server does "
	         "not check (without --auth-file apps need none: send nil), or one guessing at the "
	         "admin secret (%s)",
	         (unsigned long long)shown, peer_label(d->unchecked_peer), note);
}

static void say_malformed(const struct dispatch *d, uint64_t closed, const char *note)
{
	log_warn("closed %llu connection(s) for a malformed request, the last from %s: %s (a "
	         "client speaking something else, or an attack) (%s)",
	         (unsigned long long)closed, peer_label(d->malformed_peer), d->malformed_why, note);
}

/*
 * Note a namespace among the largest (store_namespaces_stats' visit). A scan may visit one twice
 * (a table grown meanwhile): it is then taken out and put in again with its bytes of now.
 */
static int ns_largest_visit(void *arg, const uint8_t *name, size_t name_len,
                            const struct store_stats *in_ns)
{
	struct ns_largest *l = arg;
	uint64_t bytes = in_ns->bytes;
	size_t at;

	for (at = 0; at < l->used; at++) {
		if (l->top[at].len == name_len && memcmp(l->top[at].name, name, name_len) == 0) {
			l->used--;
			memmove(&l->top[at], &l->top[at + 1], (l->used - at) * sizeof(l->top[0]));
			break;
		}
	}
	at = l->used;
	while (at > 0 && l->top[at - 1].count < bytes)
		at--;
	if (at == DISPATCH_REFUSED_NS)
		return 0;
	if (l->used < DISPATCH_REFUSED_NS)
		l->used++;
	memmove(&l->top[at + 1], &l->top[at], (l->used - 1 - at) * sizeof(l->top[0]));
	l->top[at].len = name_len < sizeof(l->top[at].name) ? name_len : sizeof(l->top[at].name);
	memcpy(l->top[at].name, name, l->top[at].len);
	l->top[at].count = bytes;
	return 0;
}

/* Append to ${text} (${size} bytes, at *${at}) the printf format ${fmt}; a line cut short
 * stays NUL-terminated. */
static void text_add(char *text, size_t size, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void text_add(char *text, size_t size, size_t *at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*at >= size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(text + *at, size - *at, fmt, ap);
	va_end(ap);
	if (n > 0)
		*at += (size_t)n;
}

/* The characters name byte ${ch} takes on the line as the log writes it (log_escape). */
static size_t shown_width(uint8_t ch)
{
	if (ch == '"')
		return 2; /* doubled */
	return ch >= 0x20 && ch < 0x7f && ch != '\\' ? 1 : 4;
}

/*
 * Append the quoted name of ${f}: its first DISPATCH_NS_SHOWN bytes, as many as the log writes
 * in DISPATCH_NS_SHOWN_WIDTH characters, up to a NUL (the line is a C string), and "..." when
 * that is not all. The log shows a byte outside printable ASCII, and
 * the backslash, as \xNN (sessctl's form of a name, which its --namespace takes); a quote is
 * doubled here, so that a name cannot end its quotes early and write the rest of the line (a
 * namespace `a", 7 in "b` named a victim "b" that had no write refused).
 */
static void text_add_name(char *text, size_t size, size_t *at, const struct dispatch_ns_figure *f)
{
	size_t i, width = 0, w;

	text_add(text, size, at, "\"");
	for (i = 0; i < f->len && i < DISPATCH_NS_SHOWN && f->name[i] != 0; i++) {
		w = shown_width(f->name[i]);
		if (width + w > DISPATCH_NS_SHOWN_WIDTH)
			break;
		width += w;
		if (f->name[i] == '"')
			text_add(text, size, at, "\"\"");
		else
			text_add(text, size, at, "%c", f->name[i]);
	}
	text_add(text, size, at, "%s\"", i < f->len ? "..." : "");
}

/*
 * Say by namespace what filled the store and whom it hurt, on a line of its own after the
 * NO_MEMORY warning's: the namespaces holding the most bytes (the walk's), with their sessions
 * and unread ones (a flood of visitors who never return is one with nearly all unread), and
 * the writes refused since the last line, whose counts start again.
 */
static void say_no_memory_by_ns(struct dispatch *d)
{
	const struct ns_largest *largest = &d->largest;
	struct store_stats s, in_ns;
	char text[900];
	size_t at = 0;

	store_stats(d->st, NULL, 0, &s);
	text_add(text, sizeof(text), &at, "NO_MEMORY by namespace: the most memory in ");
	if (largest->used == 0)
		text_add(text, sizeof(text), &at, "none (the store holds no namespace)");
	for (size_t i = 0; i < largest->used; i++) {
		const struct dispatch_ns_figure *f = &largest->top[i];

		store_stats(d->st, f->name, f->len, &in_ns);
		text_add(text, sizeof(text), &at, i == 0 ? "" : ", ");
		text_add_name(text, sizeof(text), &at, f);
		text_add(text, sizeof(text), &at,
		         " (%llu bytes, %llu%% of the store's; %llu sessions, %llu unread)",
		         (unsigned long long)f->count,
		         (unsigned long long)(s.bytes > 0 ? f->count * 100 / s.bytes : 0),
		         (unsigned long long)in_ns.sessions, (unsigned long long)in_ns.unread);
	}
	text_add(text, sizeof(text), &at, "; writes refused since the last line: ");
	for (size_t i = 0; i < d->refused_ns_used; i++) {
		text_add(text, sizeof(text), &at, i == 0 ? "" : ", ");
		text_add(text, sizeof(text), &at, "%llu in ",
		         (unsigned long long)d->refused_ns[i].count);
		text_add_name(text, sizeof(text), &at, &d->refused_ns[i]);
	}
	if (d->refused_other_ns > 0)
		text_add(text, sizeof(text), &at, ", %llu in other namespaces",
		         (unsigned long long)d->refused_other_ns);
	log_warn("%s", text);
	d->refused_ns_used = 0;
	d->refused_other_ns = 0;
}

/*
 * Take the next step of the walk for say_no_memory_by_ns (every step that is left when
 * ${all}), and say the line once it has seen every namespace. Its bytes are each namespace's
 * when the walk came to it; the refused writes, those until the line.
 */
static void ns_walk_step(struct dispatch *d, bool all)
{
	struct ns_largest *l = &d->largest;
	size_t seen;

	while (l->walking) {
		(void)store_namespaces_stats(d->st, l->cursor, DISPATCH_NS_WALK_STEP,
		                             ns_largest_visit, l, &l->cursor, &seen);
		if (l->cursor == 0) {
			l->walking = false;
			say_no_memory_by_ns(d);
		}
		if (!all)
			break;
	}
}

/* Start the walk for the NO_MEMORY warning's line by namespace, unless one is under way: that
 * one's line comes, with the refused writes until then. */
static void ns_walk_start(struct dispatch *d)
{
	if (d->largest.walking)
		return;
	d->largest = (struct ns_largest){.walking = true};
	ns_walk_step(d, false);
}

/* Without --max-memory a NO_MEMORY is the system's malloc failing, not a setting. The
 * sessions never read back say whether a flood of visitors who never return filled it. The
 * namespaces follow on a line of their own once the walk has seen them (ns_walk_start). */
static void say_no_memory(struct dispatch *d, uint64_t refused, const char *note)
{
	struct store_stats s;

	store_stats(d->st, NULL, 0, &s);
	if (d->cfg.max_bytes == 0)
		log_warn("refused %llu write(s) with NO_MEMORY: out of memory, with %llu bytes of "
		         "sessions (%s)",
		         (unsigned long long)refused, (unsigned long long)s.bytes, note);
	else
		log_warn("refused %llu write(s) with NO_MEMORY: sessions now hold %llu bytes of "
		         "--max-memory %llu, and sessd %s; %llu of the %llu "
		         "sessions were never read back since they were written (the next line "
		         "says in which namespaces), many of "
		         "them visitors that never came back with the cookie, such as a bot's "
		         "requests to an app that saves a session for every visitor (see sessd(8), "
		         "FAILURES); else if that is near the limit, raise it, or give sessions "
		         "shorter TTLs (%s)",
		         (unsigned long long)refused, (unsigned long long)s.bytes,
		         (unsigned long long)d->cfg.max_bytes,
		         d->cfg.drop_unread ? "found no session never read back that it may drop"
		                            : "never evicts live sessions (but see --when-full)",
		         (unsigned long long)s.unread, (unsigned long long)s.sessions, note);
	ns_walk_start(d);
}

/* Say what the rate-limited warnings hold back and is due (all of it when ${stopping}). */
static void say_held_back(struct dispatch *d, bool stopping)
{
	const char *note = stopping ? DISPATCH_NOTE_STOPPING : DISPATCH_NOTE_PERIODIC;
	bool walking = d->largest.walking;
	uint64_t n;

	if ((n = log_every_held(&d->auth_refusals, 60, stopping)) > 0)
		say_auth_refusals(d, n, note);
	if ((n = log_every_held(&d->plain_refusals, 60, stopping)) > 0)
		say_plain_refusals(d, n, note);
	if ((n = log_every_held(&d->unchecked_secrets, 60, stopping)) > 0)
		say_unchecked_secrets(d, n, note);
	if ((n = log_every_held(&d->no_memory_log, 60, stopping)) > 0)
		say_no_memory(d, n, note);
	/* The walk's next step, or at the stop all that is left of it; none more in this call for
	 * a walk the warning just started, which took its first step (two steps in one turn held
	 * the loop twice as long as the step is sized for). */
	if (walking || stopping)
		ns_walk_step(d, stopping);
	if ((n = log_every_held(&d->dropped_log, 60, stopping)) > 0)
		say_dropped(d, n, 0, note);
	if ((n = log_every_held(&d->malformed_log, 60, stopping)) > 0)
		say_malformed(d, n, note);
}

void dispatch_log_pending(struct dispatch *d)
{
	say_held_back(d, true);
}

void dispatch_log_due(struct dispatch *d)
{
	say_held_back(d, false);
}

/* Answer NO_MEMORY: the store refused a write that would grow it. Counted and warned of, so
 * that an operator sees the limit at work. Returns codec_reply_error's result. */
static int reply_no_memory(struct dispatch *d, const struct codec_request *req, struct buf *out)
{
	uint64_t refused;
	size_t i;

	d->no_memory_total++;
	for (i = 0; i < d->refused_ns_used; i++)
		if (d->refused_ns[i].len == req->ns.len &&
		    memcmp(d->refused_ns[i].name, req->ns.ptr, req->ns.len) == 0)
			break;
	if (i < d->refused_ns_used) {
		d->refused_ns[i].count++;
	} else if (i < DISPATCH_REFUSED_NS && req->ns.len <= sizeof(d->refused_ns[i].name)) {
		memcpy(d->refused_ns[i].name, req->ns.ptr, req->ns.len);
		d->refused_ns[i].len = req->ns.len;
		d->refused_ns[i].count = 1;
		d->refused_ns_used++;
	} else {
		d->refused_other_ns++;
	}
	refused = log_every_due(&d->no_memory_log, 1, 60);
	if (refused > 0)
		say_no_memory(d, refused, DISPATCH_NOTE_PERIODIC);
	return codec_reply_error(out, req->request_id, CODEC_NO_MEMORY,
	                         "the server's memory limit is reached");
}

/* An OK reply whose result is nil. */
static int reply_nil(struct buf *out, uint64_t request_id)
{
	size_t at;

	if (codec_reply_open(out, request_id, CODEC_OK, &at) == -1 || mp_write_nil(out) == -1 ||
	    codec_frame_close(out, at) == -1)
		return -1;
	return 0;
}

/* An OK reply whose result is ${len} bytes as a bin. */
static int reply_bin(struct buf *out, uint64_t request_id, const uint8_t *bytes, size_t len)
{
	size_t at;

	if (codec_reply_open(out, request_id, CODEC_OK, &at) == -1 ||
	    mp_write_bin(out, bytes, len) == -1 || codec_frame_close(out, at) == -1)
		return -1;
	return 0;
}

static int reply_uint(struct buf *out, uint64_t request_id, uint64_t v)
{
	size_t at;

	if (codec_reply_open(out, request_id, CODEC_OK, &at) == -1 || mp_write_uint(out, v) == -1 ||
	    codec_frame_close(out, at) == -1)
		return -1;
	return 0;
}

/* NOT_FOUND carries nil; every other status a message (PROTOCOL.md, "Requests and replies"). */
static int reply_not_found(struct buf *out, uint64_t request_id)
{
	size_t at;

	if (codec_reply_open(out, request_id, CODEC_NOT_FOUND, &at) == -1 ||
	    mp_write_nil(out) == -1 || codec_frame_close(out, at) == -1)
		return -1;
	return 0;
}

static int write_str(struct buf *out, const char *s)
{
	return mp_write_str(out, s, strlen(s));
}

static int write_key_uint(struct buf *out, const char *key, uint64_t v)
{
	if (write_str(out, key) == -1 || mp_write_uint(out, v) == -1)
		return -1;
	return 0;
}

/* The store key of ${req}, with the id's hash when ${frame} (may be NULL) carries it. */
static void request_key(const struct codec_request *req, const struct dispatch_frame_ref *frame,
                        struct store_key *key)
{
	*key = (struct store_key){
	    .ns = req->ns.ptr, .ns_len = req->ns.len, .id = req->id.ptr, .id_len = req->id.len};
	if (frame != NULL && frame->id_hashed) {
		key->id_hash = frame->id_hash;
		key->id_hashed = true;
		key->found = frame->found;
	}
}

static uint64_t expires_at(uint64_t now_ms, uint64_t ttl_ms)
{
	/* The codec caps ttl at 10 years, so only a wildly wrong clock could overflow. */
	return ttl_ms > UINT64_MAX - now_ms ? UINT64_MAX : now_ms + ttl_ms;
}

/* Log that a change reached the store but not the persistence log. */
static void warn_unlogged(struct dispatch *d, const struct codec_request *req)
{
	char tag[13] = "-";

	if (req->id.len > 0)
		ids_log_tag(tag, req->id.ptr, req->id.len, d->tag_key);
	log_warn("%s of session %s was applied but could not be logged: out of memory",
	         codec_op_name(req->op), tag);
}

/*
 * The persistence guard before a change. Returns 0 to go on; 1 when the IO_ERROR reply was
 * written instead; -1 when that reply could not be written.
 */
static int refuse_unwritable(struct dispatch *d, const struct codec_request *req, struct buf *out)
{
	if (d->p == NULL || persist_writable(d->p) == 0)
		return 0;
	d->io_errors_total++;
	if (codec_reply_error(out, req->request_id, CODEC_IO_ERROR,
	                      "the change cannot be made durable now; nothing changed") == -1)
		return -1;
	return 1;
}

/* The largest session data a SET may carry: its GET reply must fit in max_frame. */
static size_t max_data(const struct dispatch *d)
{
	return d->cfg.max_frame - CODEC_REPLY_DATA_OVERHEAD;
}

/* What HELLO's auth gave: a sealed one's seal and the reply's kx, and the generation of the
 * secret shown: --auth-file's or --admin-auth-file's (at most one of the two is set). */
struct hello_kx {
	struct seal *seal; /* NULL: a plain HELLO */
	bool replayed;     /* sealed: its client key was answered before (replays_note) */
	uint64_t generation;
	uint64_t admin_generation;
	uint8_t server_public[SEAL_KEY_BYTES];
	uint8_t server_proof[SEAL_PROOF_BYTES];
};

/*
 * Read a sealed HELLO's auth map, whose ${pairs} pairs follow in ${r}: exactly "kx" and
 * "proof", each bin of 32 bytes, and nothing after. Returns 0 with the two in ${client_public}
 * and ${client_proof} (pointing into the frame), or -1.
 */
static int read_kx_map(struct mp_reader *r, uint32_t pairs, const uint8_t **client_public,
                       const uint8_t **client_proof)
{
	*client_public = *client_proof = NULL;
	if (pairs != 2)
		return -1;
	for (uint32_t i = 0; i < pairs; i++) {
		struct mp_bytes key, value;
		const uint8_t **slot;
		bool is_bin;

		if (mp_read_str(r, &key) == -1 || mp_read_bytes(r, &value, &is_bin) == -1 ||
		    !is_bin)
			return -1;
		if (key.len == 2 && memcmp(key.ptr, "kx", 2) == 0)
			slot = client_public;
		else if (key.len == 5 && memcmp(key.ptr, "proof", 5) == 0)
			slot = client_proof;
		else
			return -1;
		if (*slot != NULL || value.len != SEAL_KEY_BYTES)
			return -1;
		*slot = value.ptr;
	}
	return r->pos == r->end ? 0 : -1;
}

/*
 * Whether --auth-plain lets ${peer} show the secret plain; else the reason, for AUTH_FAILED.
 * Returns NULL when it may.
 */
static const char *plain_refused(const struct dispatch *d, const struct dispatch_peer *peer)
{
	switch (d->cfg.plain) {
	case AUTH_PLAIN_YES:
		return NULL;
	case AUTH_PLAIN_LOOPBACK:
		if (peer->local)
			return NULL;
		return "plain auth is refused on this connection (--auth-plain loopback): seal it";
	case AUTH_PLAIN_NO:
		break;
	}
	return "plain auth is refused (--auth-plain no): seal the connection";
}

/*
 * Answer a key exchange with the admin secret, then with the apps' one (auth_seal): the
 * generation of the one the client proved goes in ${kx}. Returns as auth_seal.
 */
static struct seal *seal_with_either(const struct dispatch *d, uint64_t now_ms,
                                     const uint8_t *client_public, const uint8_t *client_proof,
                                     struct hello_kx *kx)
{
	struct seal *seal;

	if (d->cfg.admin_auth != NULL) {
		seal = auth_seal(d->cfg.admin_auth, now_ms, client_public, client_proof,
		                 kx->server_public, kx->server_proof, &kx->admin_generation);
		if (seal != NULL)
			return seal;
		kx->admin_generation = 0;
		if (errno != EACCES || d->cfg.auth == NULL)
			return NULL;
	}
	seal = auth_seal(d->cfg.auth, now_ms, client_public, client_proof, kx->server_public,
	                 kx->server_proof, &kx->generation);
	if (seal == NULL)
		kx->generation = 0;
	return seal;
}

/*
 * Whether the plain ${secret} is the admin secret or the apps' one (auth_check): the
 * generation of the one it is goes in ${kx}. Both are checked whatever the first gives, so
 * that the time taken does not say which.
 */
static bool check_either(const struct dispatch *d, const struct mp_bytes *secret, uint64_t now_ms,
                         struct hello_kx *kx)
{
	uint64_t admin = 0, app = 0;

	if (secret->len > AUTH_MAX_SECRET)
		return false;
	if (d->cfg.admin_auth != NULL)
		admin = auth_check(d->cfg.admin_auth, secret->ptr, secret->len, now_ms);
	if (d->cfg.auth != NULL)
		app = auth_check(d->cfg.auth, secret->ptr, secret->len, now_ms);
	if (admin != 0)
		kx->admin_generation = admin;
	else
		kx->generation = app;
	return admin != 0 || app != 0;
}

/*
 * One more HELLO of the kind ${e} warns of, from ${peer}: its name goes in ${last_peer}, which
 * the warning names, and ${say} writes the warning when one is due (at most once a minute).
 */
static void note_for_warning(struct dispatch *d, struct log_every *e, char *last_peer,
                             const struct dispatch_peer *peer,
                             void (*say)(const struct dispatch *, uint64_t, const char *))
{
	uint64_t n;

	note_refused_peer(last_peer, peer);
	n = log_every_due(e, 1, 60);
	if (n > 0)
		say(d, n, DISPATCH_NOTE_PERIODIC);
}

/*
 * Whether HELLO's ${auth} (raw msgpack) from ${peer} lets the client in: 1 (a sealed one's
 * seal, and the generation of the secret shown, in ${kx}), 0 with the reason in ${why}, or -1
 * out of memory. Without --auth-file any nil, str or bin is let in, so that clients can be
 * given the secret before the server needs it (with --admin-auth-file alone, as an app unless
 * it is the admin secret); a key exchange is not (a client that asked for a sealed connection
 * must not get a plain one), unless --admin-auth-file's secret answers it. With a secret, a
 * plain one where --auth-plain refuses it is refused unchecked, so the answer is the same
 * whatever it holds. A refusal is logged at most once a minute, with the count since and the
 * sources they came from (an operator must be able to find the clients that fail): a flood of
 * guesses must not fill the log. So is a str or bin let in as an app with --admin-auth-file
 * alone (it may be a guess at the admin secret).
 */
static int auth_passes(struct dispatch *d, const struct dispatch_peer *peer,
                       const struct mp_bytes *auth, struct hello_kx *kx, const char **why)
{
	const uint8_t *client_public, *client_proof;
	struct mp_reader r;
	struct mp_bytes secret = {NULL, 0};
	bool any_secret = d->cfg.auth != NULL || d->cfg.admin_auth != NULL;
	uint64_t now_ms = any_secret ? auth_clock_ms() : 0;
	uint32_t pairs;
	bool shown, nil = false;
	const char *plain_why = any_secret ? plain_refused(d, peer) : NULL;
	uint64_t n;

	mp_reader_init(&r, auth->ptr, auth->len);
	if (mp_read_map(&r, &pairs) == 0) {
		if (!any_secret)
			*why = "this server has no --auth-file secret to seal a connection with";
		else if (read_kx_map(&r, pairs, &client_public, &client_proof) == -1)
			*why = "auth for a sealed connection must be a map of kx and proof, each "
			       "bin of "
			       "32 bytes";
		else if ((kx->seal = seal_with_either(d, now_ms, client_public, client_proof,
		                                      kx)) != NULL) {
			/* Noted only once its proof holds: keys that prove nothing cannot push
			 * the keys answered out of the filters. */
			kx->replayed = replays_note(d->replays, client_public);
			return 1;
		} else if (errno == ENOMEM)
			return -1;
		else if (errno == EDOM)
			*why = "the key exchange's public key is a low-order point: it gives no "
			       "shared key";
		else
			*why = "wrong proof of the secret";
	} else {
		shown = mp_read_bytes(&r, &secret, NULL) == 0;
		if (!shown)
			nil = mp_read_nil(&r) == 0;
		if (!shown && !nil)
			*why = "auth must be nil, the secret as str or bin, or a key exchange map";
		else if (!any_secret || (!shown && d->cfg.auth == NULL))
			return 1;
		else if (!shown)
			*why = plain_why != NULL ? "this server requires authentication: seal the "
			                           "connection with the secret of its --auth-file"
			                         : "this server requires authentication: send the "
			                           "secret of its --auth-file as auth, or seal the "
			                           "connection";
		else if (plain_why != NULL)
			goto plain_refused;
		else if (check_either(d, &secret, now_ms, kx))
			return 1;
		else if (d->cfg.auth == NULL)
			goto unchecked;
		else
			*why = "wrong secret";
	}
	if (!any_secret)
		return 0;
	tally_source(&d->auth_refused_from, d->sources_key, peer);
	n = log_every_due(&d->auth_refusals, 1, 60);
	if (n > 0)
		say_auth_refusals(d, n, DISPATCH_NOTE_PERIODIC);
	return 0;

unchecked:
	/* Let in as an app, as documented, but not unseen: the HELLO reply's admin would
	 * otherwise answer guesses at the admin secret, without limit and without a trace. */
	note_for_warning(d, &d->unchecked_secrets, d->unchecked_peer, peer, say_unchecked_secrets);
	return 1;

plain_refused:
	/* Told apart from guesses: a client sends what may be the secret in the clear. */
	*why = plain_why;
	note_for_warning(d, &d->plain_refusals, d->plain_refused_peer, peer, say_plain_refusals);
	return 0;
}

static uint64_t mono_ms(void)
{
	return mono_ns() / 1000000u;
}

/* Whether HELLO's ${auth} asks for a key exchange (a map; see auth_passes). */
static bool asks_kx(const struct mp_bytes *auth)
{
	struct mp_reader r;
	uint32_t pairs;

	mp_reader_init(&r, auth->ptr, auth->len);
	return mp_read_map(&r, &pairs) == 0;
}

/*
 * Write the HELLO reply's map for ${kx} (a sealed HELLO when kx->seal is set) to a connection
 * that is ${admin}. auth is true once a secret was checked: always with --auth-file, and with
 * --admin-auth-file alone for a client that showed it.
 */
static int write_hello_map(const struct dispatch *d, const struct hello_kx *kx, bool admin,
                           struct buf *out)
{
	bool checked = d->cfg.auth != NULL || kx->admin_generation != 0;

	if (mp_write_map(out, kx->seal != NULL ? 12 : 11) == -1 ||
	    write_key_uint(out, "version", CODEC_PROTOCOL_VERSION) ||
	    write_str(out, "server") == -1 || write_str(out, DISPATCH_SERVER_NAME) == -1 ||
	    write_str(out, "server_id") == -1 || write_str(out, d->server_id) == -1 ||
	    write_key_uint(out, "max_frame", d->cfg.max_frame) == -1 ||
	    write_key_uint(out, "max_data", max_data(d)) == -1 ||
	    write_key_uint(out, "max_id", IDS_MAX_ID_LEN) == -1 ||
	    write_key_uint(out, "max_namespace", IDS_MAX_NAMESPACE_LEN) == -1 ||
	    write_key_uint(out, "max_flash_type", IDS_MAX_FLASH_TYPE_LEN) == -1 ||
	    write_key_uint(out, "max_list", CODEC_LIST_MAX_LIMIT) == -1 ||
	    write_str(out, "auth") == -1 ||
	    (checked ? mp_write_bool(out, true) : mp_write_nil(out)) == -1 ||
	    write_str(out, "admin") == -1 || mp_write_bool(out, admin) == -1)
		return -1;
	if (kx->seal == NULL)
		return 0;
	if (write_str(out, "kx") == -1 || mp_write_map(out, 2) == -1 ||
	    write_str(out, "key") == -1 ||
	    mp_write_bin(out, kx->server_public, SEAL_KEY_BYTES) == -1 ||
	    write_str(out, "proof") == -1 ||
	    mp_write_bin(out, kx->server_proof, SEAL_PROOF_BYTES) == -1)
		return -1;
	return 0;
}

/*
 * The process identity HELLO's ${name} (client_name) states, as dispatch_peer.process: the
 * bytes after its first NUL (PROTOCOL.md, HELLO), hashed with the daemon's own key; 0 when it
 * states none (no NUL, or nothing after it). The codec has bounded the name to 64 bytes.
 * Only the hash is kept: an identity is the client's to choose and may hold anything, so it
 * never reaches a log.
 */
static uint64_t hello_process(const struct dispatch *d, const struct mp_bytes *name)
{
	const uint8_t *nul = name->len > 0 ? memchr(name->ptr, '\0', name->len) : NULL;
	uint8_t hash[crypto_shorthash_BYTES];
	uint64_t process = 0;
	size_t len;

	if (nul == NULL)
		return 0;
	len = name->len - (size_t)(nul + 1 - name->ptr);
	if (len == 0)
		return 0;
	crypto_shorthash(hash, nul + 1, len, d->process_key);
	for (size_t i = 0; i < sizeof(hash); i++)
		process = process << 8 | hash[i];
	/* 0 means none stated. */
	return process != 0 ? process : 1;
}

static int op_hello(struct dispatch *d, struct dispatch_peer *peer, const struct codec_request *req,
                    struct buf *out, enum dispatch_verdict *verdict)
{
	struct hello_kx kx = {.seal = NULL, .generation = 0, .admin_generation = 0};
	const char *why = NULL;
	uint64_t started_ns;
	size_t at;
	bool kx_asked, admin;
	int passes;

	if (peer->ready) {
		*verdict = DISPATCH_CLOSE;
		return codec_reply_error(out, req->request_id, CODEC_BAD_REQUEST,
		                         "HELLO was already done on this connection");
	}
	if (req->version != CODEC_PROTOCOL_VERSION) {
		*verdict = DISPATCH_CLOSE;
		return codec_reply_error(out, req->request_id, CODEC_BAD_VERSION,
		                         "this server speaks protocol version 1 only");
	}
	kx_asked = (d->cfg.auth != NULL || d->cfg.admin_auth != NULL) && asks_kx(&req->auth);
	if (kx_asked && heavy_must_wait(d, verdict)) {
		if (!peer->hello_put_off)
			d->kx_deferred_total++;
		peer->hello_put_off = true;
		return 0;
	}
	started_ns = kx_asked ? mono_ns() : 0;
	passes = auth_passes(d, peer, &req->auth, &kx, &why);
	heavy_done(d, started_ns);
	if (passes == -1)
		return -1;
	if (passes == 0) {
		*verdict = DISPATCH_CLOSE;
		return codec_reply_error(out, req->request_id, CODEC_AUTH_FAILED, why);
	}
	admin = d->cfg.admin_auth == NULL || kx.admin_generation != 0;
	if (codec_reply_open(out, req->request_id, CODEC_OK, &at) == -1 ||
	    write_hello_map(d, &kx, admin, out) == -1 || codec_frame_close(out, at) == -1) {
		seal_free(kx.seal);
		return -1;
	}
	peer->ready = true;
	peer->seal = kx.seal;
	peer->replayed = kx.replayed;
	if (kx.seal != NULL)
		memcpy(peer->seal_key, kx.server_public, sizeof peer->seal_key);
	peer->auth_generation = kx.generation;
	peer->admin_generation = kx.admin_generation;
	peer->admin = admin;
	peer->process = hello_process(d, &req->client_name);
	return 0;
}

/*
 * GET, and LOAD: the same answer with the number of flash messages queued, so that a client
 * that would pop them on every page pops only when there are some. Inline in run, as run is in
 * run_request: gcc's LTO stopped inlining it once conn.c's sealed record buffer grew (stop
 * 60), and a GET paid about 31 instructions more for the call (review-61, callgrind).
 */
__attribute__((always_inline)) static inline int op_get(struct dispatch *d,
                                                        const struct codec_request *req,
                                                        const struct store_key *key,
                                                        uint64_t now_ms, struct buf *out)
{
	const void *data;
	size_t len, flashes, at;

	if (store_load(d->st, key, now_ms, &data, &len, &flashes) == -1)
		return reply_not_found(out, req->request_id);
	/* Stored under a larger --max-frame (a restart lowered it): a longer reply than the
	 * HELLO announced would break the client's framing. */
	if (len > max_data(d))
		return codec_reply_error(
		    out, req->request_id, CODEC_LIMIT,
		    "the session's data is larger than this server's max_frame "
		    "allows; it was stored under a larger --max-frame");
	if (req->op == CODEC_OP_LOAD && len > max_data(d) - CODEC_LOAD_EXTRA_OVERHEAD)
		return codec_reply_error(out, req->request_id, CODEC_LIMIT,
		                         "the session's data is too large for a LOAD reply; "
		                         "GET it");
	if (codec_reply_open(out, req->request_id, CODEC_OK, &at) == -1 ||
	    (req->op == CODEC_OP_LOAD && mp_write_array(out, 2) == -1) ||
	    mp_write_bin(out, data, len) == -1 ||
	    (req->op == CODEC_OP_LOAD && mp_write_uint(out, flashes) == -1))
		return -1;
	return codec_frame_close(out, at);
}

static int op_set(struct dispatch *d, const struct codec_request *req, const struct store_key *key,
                  uint64_t now_ms, struct buf *out)
{
	uint64_t when = expires_at(now_ms, req->ttl_ms);
	int rc;

	if ((rc = refuse_unwritable(d, req, out)) != 0)
		return rc == 1 ? 0 : -1;
	if (req->data.len > max_data(d)) {
		char message[96];

		snprintf(message, sizeof(message),
		         "session data may be at most %zu bytes (max_frame - 16); this is %zu",
		         max_data(d), req->data.len);
		return codec_reply_error(out, req->request_id, CODEC_LIMIT, message);
	}
	if (store_set(d->st, key, req->data.ptr, req->data.len, when, now_ms) == -1)
		return reply_no_memory(d, req, out);
	if (d->p != NULL &&
	    persist_log_set(d->p, key, req->data.ptr, req->data.len, when, now_ms) == -1) {
		warn_unlogged(d, req);
		return codec_reply_error(out, req->request_id, CODEC_INTERNAL,
		                         "the change was made but not logged");
	}
	return reply_nil(out, req->request_id);
}

static int op_touch(struct dispatch *d, const struct codec_request *req,
                    const struct store_key *key, uint64_t now_ms, struct buf *out)
{
	uint64_t when = expires_at(now_ms, req->ttl_ms);
	int rc;

	if ((rc = refuse_unwritable(d, req, out)) != 0)
		return rc == 1 ? 0 : -1;
	if (store_touch(d->st, key, when, now_ms) == -1)
		return reply_not_found(out, req->request_id);
	if (d->p != NULL && persist_log_touch(d->p, key, when, now_ms) == -1) {
		warn_unlogged(d, req);
		return codec_reply_error(out, req->request_id, CODEC_INTERNAL,
		                         "the change was made but not logged");
	}
	return reply_nil(out, req->request_id);
}

/*
 * SET_IF and TOUCH_IF (PROTOCOL.md, "Sessions"): SET or TOUCH, but only while the session's
 * data is what the client last read, by its tag. Nothing else runs between the read and the
 * write, so the check and the change are one step for every other request. A TOUCH_IF from a
 * request that read older data must not undo the lifetime a newer save chose.
 */
static int op_if_unchanged(struct dispatch *d, const struct codec_request *req,
                           const struct store_key *key, uint64_t now_ms, struct buf *out,
                           enum dispatch_verdict *verdict)
{
	uint8_t tag[CODEC_TAG_BYTES];
	const void *current;
	size_t current_len;
	int rc;

	if ((rc = refuse_unwritable(d, req, out)) != 0)
		return rc == 1 ? 0 : -1;
	/* A missing session, or one with flashes only, stays so: a save that comes after a
	 * DESTROY must not bring the session back. */
	if (store_get(d->st, key, now_ms, &current, &current_len) == -1)
		return reply_not_found(out, req->request_id);
	/* Past the turn's budget for CPU-bound requests it waits, as a LIST page does. */
	if (heavy_must_wait(d, verdict))
		return 0;
	d->heavy_turn_ns += (uint64_t)current_len * DISPATCH_HASH_NS_PER_BYTE;
	codec_data_tag(current, current_len, tag);
	if (sodium_memcmp(tag, req->expect.ptr, CODEC_TAG_BYTES) != 0)
		return codec_reply_error(out, req->request_id, CODEC_CONFLICT,
		                         "the session's data changed since it was read; nothing "
		                         "changed");
	return req->op == CODEC_OP_TOUCH_IF ? op_touch(d, req, key, now_ms, out)
	                                    : op_set(d, req, key, now_ms, out);
}

static int op_destroy(struct dispatch *d, const struct codec_request *req,
                      const struct store_key *key, uint64_t now_ms, struct buf *out)
{
	int rc;

	if ((rc = refuse_unwritable(d, req, out)) != 0)
		return rc == 1 ? 0 : -1;
	if (store_destroy(d->st, key, now_ms) == -1)
		return reply_not_found(out, req->request_id);
	if (d->p != NULL && persist_log_destroy(d->p, key, now_ms) == -1) {
		warn_unlogged(d, req);
		return codec_reply_error(out, req->request_id, CODEC_INTERNAL,
		                         "the change was made but not logged");
	}
	return reply_nil(out, req->request_id);
}

/* What the look at a DESTROY_IF_FLASH's queue finds: its oldest message is the request's. */
struct oldest_check {
	const struct mp_bytes *msg;
	bool matches;
};

/* An empty queue holds no message to match: the look ends there. */
static int oldest_on_type(void *arg, const uint8_t *type, size_t type_len, size_t count)
{
	(void)arg;
	(void)type;
	(void)type_len;
	return count > 0 ? 0 : -1;
}

/* Compares the oldest message, then ends the look: store_flash_pop removes nothing. */
static int oldest_on_msg(void *arg, const void *msg, size_t len, bool is_bin)
{
	struct oldest_check *c = arg;

	(void)is_bin;
	c->matches = len == c->msg->len && (len == 0 || memcmp(msg, c->msg->ptr, len) == 0);
	return -1;
}

/*
 * DESTROY_IF_FLASH (PROTOCOL.md, "Flashes"): DESTROY, but only while the oldest message of a
 * type is the one the client names: a lock held as a queue whose first push is its owner's
 * token is removed by its owner only, and a removal whose reply was lost can be sent again
 * (or a push whose reply was lost undone) without touching a lock another client took since.
 * The look and the removal are one step for every other request. Logged as a DESTROY.
 */
static int op_destroy_if_flash(struct dispatch *d, const struct codec_request *req,
                               const struct store_key *key, uint64_t now_ms, struct buf *out)
{
	struct oldest_check check = {.msg = &req->flash_msg, .matches = false};
	int rc;

	if ((rc = refuse_unwritable(d, req, out)) != 0)
		return rc == 1 ? 0 : -1;
	/* A pop whose callbacks end it at its first message removes nothing: a look. */
	if (store_flash_pop(d->st, key, req->flash_type.ptr, req->flash_type.len, now_ms, NULL,
	                    oldest_on_type, oldest_on_msg, &check) == -1 &&
	    errno == ENOENT)
		return reply_not_found(out, req->request_id);
	if (!check.matches)
		return codec_reply_error(
		    out, req->request_id, CODEC_CONFLICT,
		    "the oldest flash message of that type is another; nothing "
		    "changed");
	return op_destroy(d, req, key, now_ms, out);
}

/*
 * TTL (PROTOCOL.md, "Sessions"): what LIST gives for one session, without walking the
 * namespace. A read: no persistence guard, so it answers on a disk that refuses writes too.
 * A session that holds flashes only is answered: COUNT and LIST show it, and it lives until
 * this instant like any other.
 */
static int op_ttl(struct dispatch *d, const struct codec_request *req, const struct store_key *key,
                  uint64_t now_ms, struct buf *out)
{
	uint64_t when;

	if (store_expiry(d->st, key, now_ms, &when) == -1)
		return reply_not_found(out, req->request_id);
	/* A live session's instant is after now_ms, so this is at least 1. */
	return reply_uint(out, req->request_id, when - now_ms);
}

/*
 * FLASH_PUSH, and FLASH_PUSH_EXISTING (PROTOCOL.md, "Flashes"), which pushes only to a session
 * with data: one destroyed or expired since the client read it stays gone. Either is logged
 * as a FLASH_PUSH: replayed over the same state, a push that found the session finds it again.
 */
static int op_flash_push(struct dispatch *d, const struct codec_request *req,
                         const struct store_key *key, uint64_t now_ms, struct buf *out)
{
	uint64_t when = expires_at(now_ms, req->ttl_ms);
	size_t queued = 0;
	int rc;

	if ((rc = refuse_unwritable(d, req, out)) != 0)
		return rc == 1 ? 0 : -1;
	if (req->op == CODEC_OP_FLASH_PUSH_EXISTING)
		rc = store_flash_push_existing(d->st, key, req->flash_type.ptr, req->flash_type.len,
		                               req->flash_msg.ptr, req->flash_msg.len,
		                               req->flash_msg_is_bin, when, now_ms, &queued);
	else
		rc = store_flash_push(d->st, key, req->flash_type.ptr, req->flash_type.len,
		                      req->flash_msg.ptr, req->flash_msg.len, req->flash_msg_is_bin,
		                      when, now_ms, &queued);
	if (rc == -1) {
		if (errno == ENOENT)
			return reply_not_found(out, req->request_id);
		if (errno == ENOSPC) {
			char message[160];

			/* Popping them is the way out unless max_frame was lowered since they were
			 * queued: their pop is then refused too (PROTOCOL.md, "Limits"). */
			snprintf(
			    message, sizeof(message),
			    "the session's flash messages would exceed %zu bytes "
			    "(max_frame / 2): pop them first (or, if their pop is refused too, "
			    "destroy the session)",
			    (size_t)(d->cfg.max_frame / 2));
			return codec_reply_error(out, req->request_id, CODEC_LIMIT, message);
		}
		if (errno == EMLINK)
			return codec_reply_error(out, req->request_id, CODEC_LIMIT,
			                         "a session holds at most 64 flash types");
		return reply_no_memory(d, req, out);
	}
	if (d->p != NULL &&
	    persist_log_flash_push(d->p, key, req->flash_type.ptr, req->flash_type.len,
	                           req->flash_msg.ptr, req->flash_msg.len, req->flash_msg_is_bin,
	                           when, now_ms) == -1) {
		warn_unlogged(d, req);
		return codec_reply_error(out, req->request_id, CODEC_INTERNAL,
		                         "the change was made but not logged");
	}
	return reply_uint(out, req->request_id, queued);
}

/*
 * Keep room in a sealed ${peer}'s output for the ${waiting} bytes of replies written so far in
 * its out and an error reply after them (reply_out_of_memory's, at most
 * DISPATCH_DONE_REPLY_MAX), sealed: a reply that finds no memory to be sealed when the turn's
 * are written closes the connection without any of them. Returns 0 (a plain peer: always),
 * or -1 (ENOMEM).
 */
static int keep_sealed_room(const struct dispatch_peer *peer, size_t waiting)
{
	if (peer->seal == NULL || peer->sealed_out == NULL)
		return 0;
	return seal_reserve(peer->sealed_out, waiting + DISPATCH_DONE_REPLY_MAX);
}

/* What the flash-pop callbacks write into. */
struct pop_writer {
	struct buf *out;
	size_t frame_start;
	size_t max_frame;
	const size_t *queue_count;
	bool all;
	bool opened; /* the map (all) or array (one type) header is written */
	bool too_large;
	/* The log cannot take the pop now: popping nothing needs no log, popping messages does. */
	bool unwritable;
	bool refused;
	/* Likewise the turn's budget for heavy requests is spent: a pop that takes messages
	 * waits for a later turn (put_off), one that finds none is answered at once. */
	bool heavy_spent;
	bool put_off;
	size_t messages;
	/* The connection, for the room to seal the reply as it grows (keep_sealed_room). */
	const struct dispatch_peer *peer;
};

static int pop_on_type(void *arg, const uint8_t *type, size_t type_len, size_t count)
{
	struct pop_writer *w = arg;

	if (count > 0 && w->unwritable) {
		w->refused = true;
		return -1;
	}
	if (count > 0 && w->heavy_spent) {
		w->put_off = true;
		return -1;
	}
	if (w->all) {
		if (!w->opened && mp_write_map(w->out, (uint32_t)*w->queue_count) == -1)
			return -1;
		w->opened = true;
		if (mp_write_str(w->out, type, type_len) == -1)
			return -1;
	} else {
		w->opened = true;
	}
	if (count > UINT32_MAX)
		return -1;
	return mp_write_array(w->out, (uint32_t)count);
}

static int pop_on_msg(void *arg, const void *msg, size_t len, bool is_bin)
{
	struct pop_writer *w = arg;
	int rc;

	rc = is_bin ? mp_write_bin(w->out, msg, len) : mp_write_str(w->out, msg, len);
	/* Found wanting after the pop, the sealed reply would be lost with the messages. */
	if (rc == -1 || keep_sealed_room(w->peer, w->out->len) == -1)
		return -1;
	w->messages++;
	/* The per-session flash limit keeps replies under max_frame, and under max_frame / 12
	 * messages (each counts at least 6 bytes against max_frame / 2; clients bound what they
	 * decode so), but messages pushed under a larger --max-frame may pass either: abandon
	 * the pop, and the store keeps every message. */
	if (w->out->len - w->frame_start > w->max_frame ||
	    w->messages > w->max_frame / 2 / CODEC_FLASH_LEAST_COST) {
		w->too_large = true;
		return -1;
	}
	return 0;
}

static int op_flash_pop(struct dispatch *d, const struct dispatch_peer *peer,
                        const struct codec_request *req, const struct store_key *key,
                        uint64_t now_ms, struct buf *out, enum dispatch_verdict *verdict)
{
	struct pop_writer w;
	size_t queues = 0, at;

	/* A pop that finds nothing to remove is answered even on a full disk: apps pop on every
	 * page view (flash.locals), and an error there would take down pages that show no flash. */
	memset(&w, 0, sizeof(w));
	w.out = out;
	w.frame_start = out->len;
	w.max_frame = d->cfg.max_frame;
	w.queue_count = &queues;
	w.all = req->flash_all;
	w.unwritable = d->p != NULL && persist_writable(d->p) != 0;
	w.heavy_spent = heavy_spent(d);
	w.peer = peer;
	if (codec_reply_open(out, req->request_id, CODEC_OK, &at) == -1)
		return -1;
	if (store_flash_pop(d->st, key, req->flash_all ? NULL : req->flash_type.ptr,
	                    req->flash_all ? 0 : req->flash_type.len, now_ms, &queues, pop_on_type,
	                    pop_on_msg, &w) == -1) {
		int err = errno;

		/* Drop the partial reply: the store removed nothing. */
		out->len = w.frame_start;
		if (w.put_off)
			return heavy_must_wait(d, verdict) ? 0 : -1;
		if (err == ENOENT)
			return reply_not_found(out, req->request_id);
		if (w.refused)
			return refuse_unwritable(d, req, out) == -1 ? -1 : 0;
		if (w.too_large)
			return codec_reply_error(
			    out, req->request_id, CODEC_LIMIT,
			    "the flash messages do not fit in one reply under this "
			    "server's max_frame; they were pushed under a larger "
			    "--max-frame");
		return -1;
	}
	if (!w.opened && (w.all ? mp_write_map(out, 0) : mp_write_array(out, 0)) == -1)
		return -1;
	if (codec_frame_close(out, at) == -1)
		return -1;
	d->heavy_turn_ns += (uint64_t)w.messages * DISPATCH_FLASH_NS_PER_MESSAGE;
	if (d->p != NULL && w.messages > 0 &&
	    persist_log_flash_pop(d->p, key, req->flash_all ? NULL : req->flash_type.ptr,
	                          req->flash_all ? 0 : req->flash_type.len, now_ms) == -1) {
		/* The messages are popped and in this reply; a crash may bring them back. */
		warn_unlogged(d, req);
	}
	return 0;
}

static int list_visit(void *arg, const uint8_t *id, size_t id_len, uint64_t ttl_ms)
{
	struct buf *scratch = arg;

	if (mp_write_array(scratch, 2) == -1 || mp_write_bin(scratch, id, id_len) == -1 ||
	    mp_write_uint(scratch, ttl_ms) == -1)
		return -1;
	return 0;
}

/* The entries of a page of ${req}'s limit whose entries take up to ${entry_max} bytes. */
static size_t page_limit(const struct dispatch *d, const struct codec_request *req,
                         size_t entry_max)
{
	size_t limit = req->limit, fits;

	fits = (d->cfg.max_frame - DISPATCH_REPLY_OVERHEAD) / entry_max;
	if (limit > fits)
		limit = fits;
	if (limit > CODEC_LIST_MAX_LIMIT)
		limit = CODEC_LIST_MAX_LIMIT;
	return limit == 0 ? 1 : limit;
}

/* Reply [next, [entries...]] to a paged request whose ${count} entries are in d->scratch. */
static int reply_page(struct dispatch *d, const struct codec_request *req, uint64_t next,
                      size_t count, struct buf *out)
{
	size_t at;

	if (codec_reply_open(out, req->request_id, CODEC_OK, &at) == -1 ||
	    mp_write_array(out, 2) == -1 || mp_write_uint(out, next) == -1 ||
	    mp_write_array(out, (uint32_t)count) == -1 ||
	    buf_append(out, d->scratch.data, d->scratch.len) == -1 ||
	    codec_frame_close(out, at) == -1)
		return -1;
	return 0;
}

static int op_list(struct dispatch *d, const struct codec_request *req, uint64_t now_ms,
                   struct buf *out)
{
	size_t count = 0;
	uint64_t next = 0;

	buf_reset(&d->scratch);
	if (store_list(d->st, req->ns.ptr, req->ns.len, req->cursor,
	               page_limit(d, req, DISPATCH_LIST_ENTRY_MAX), now_ms, list_visit, &d->scratch,
	               &next, &count) == -1)
		return -1;
	return reply_page(d, req, next, count, out);
}

static int namespaces_visit(void *arg, const uint8_t *name, size_t name_len, uint64_t sessions)
{
	struct buf *scratch = arg;

	if (mp_write_array(scratch, 2) == -1 || mp_write_str(scratch, name, name_len) == -1 ||
	    mp_write_uint(scratch, sessions) == -1)
		return -1;
	return 0;
}

/* NAMESPACES: a page of [name, sessions], scanned as LIST scans sessions (PROTOCOL.md). */
static int op_namespaces(struct dispatch *d, const struct codec_request *req, struct buf *out)
{
	size_t count = 0;
	uint64_t next = 0;

	buf_reset(&d->scratch);
	if (store_namespaces(d->st, req->cursor, page_limit(d, req, DISPATCH_NAMESPACES_ENTRY_MAX),
	                     namespaces_visit, &d->scratch, &next, &count) == -1)
		return -1;
	return reply_page(d, req, next, count, out);
}

/*
 * LIST and NAMESPACES: a page may cost milliseconds (its scan of a large namespace or of many
 * namespaces). Past this turn's budget for such work it waits for a later turn
 * (DISPATCH_LATER), so that pages pipelined on several connections cannot hold the loop
 * while every other client waits; one page always runs in a turn.
 */
static int op_page(struct dispatch *d, const struct codec_request *req, uint64_t now_ms,
                   struct buf *out, enum dispatch_verdict *verdict)
{
	uint64_t started_ns;
	int rc;

	if (heavy_must_wait(d, verdict))
		return 0;
	started_ns = mono_ns();
	rc = req->op == CODEC_OP_LIST ? op_list(d, req, now_ms, out) : op_namespaces(d, req, out);
	heavy_done(d, started_ns);
	return rc;
}

/*
 * Whether ${req} (a COUNT or CLEAR) must wait; ${verdict} then says DISPATCH_LATER. Counting
 * a large namespace during a mass expiry means reading every session in it: over a million,
 * tens of milliseconds in which no client is served; such a one waits for the expiry to
 * catch up. A small one is walked at once, after a slice of the reclaim: up to a millisecond,
 * and pipelined by the thousand (a 10-byte request, no admin secret) they held the loop for
 * 0.3 s. So during a mass expiry a COUNT or CLEAR is a heavy request: past the turn's budget
 * it waits for the next turn, and its time counts from ${started_ns} (set then; else 0) until
 * the caller has walked the namespace (heavy_done).
 */
static bool must_wait(struct dispatch *d, const struct codec_request *req, uint64_t now_ms,
                      enum dispatch_verdict *verdict, uint64_t *started_ns)
{
	*started_ns = 0;
	if (!d->deferring || !store_expiry_behind(d->st, now_ms))
		return false;
	if (heavy_must_wait(d, verdict))
		return true;
	*started_ns = mono_ns();
	if (store_count_is_quick(d->st, req->ns.ptr, req->ns.len, now_ms))
		return false;
	heavy_done(d, *started_ns);
	d->count_put_off = true;
	*verdict = DISPATCH_LATER;
	return true;
}

static int op_count(struct dispatch *d, const struct codec_request *req, uint64_t now_ms,
                    struct buf *out, enum dispatch_verdict *verdict)
{
	uint64_t started_ns;
	size_t live;

	if (must_wait(d, req, now_ms, verdict, &started_ns))
		return 0;
	live = store_count(d->st, req->ns.ptr, req->ns.len, now_ms);
	heavy_done(d, started_ns);
	return reply_uint(out, req->request_id, live);
}

static int op_clear(struct dispatch *d, const struct codec_request *req, uint64_t now_ms,
                    struct buf *out, enum dispatch_verdict *verdict)
{
	uint64_t started_ns;
	size_t removed;
	int rc;

	if ((rc = refuse_unwritable(d, req, out)) != 0)
		return rc == 1 ? 0 : -1;
	if (must_wait(d, req, now_ms, verdict, &started_ns))
		return 0;
	removed = store_clear(d->st, req->ns.ptr, req->ns.len, now_ms);
	heavy_done(d, started_ns);
	if (d->p != NULL && removed > 0 &&
	    persist_log_clear(d->p, req->ns.ptr, req->ns.len, now_ms) == -1) {
		warn_unlogged(d, req);
		return codec_reply_error(out, req->request_id, CODEC_INTERNAL,
		                         "the change was made but not logged");
	}
	return reply_uint(out, req->request_id, removed);
}

static int op_stats(struct dispatch *d, const struct codec_request *req, struct buf *out)
{
	struct store_stats s;
	size_t at;

	if (codec_reply_open(out, req->request_id, CODEC_OK, &at) == -1)
		return -1;
	if (req->ns_all) {
		uint64_t now = mono_ms();

		store_stats(d->st, NULL, 0, &s);
		if (mp_write_map(out, 34) == -1 || write_key_uint(out, "sessions", s.sessions) ||
		    write_key_uint(out, "unread", s.unread) ||
		    write_key_uint(out, "evicted_total", s.evicted_total) ||
		    write_key_uint(out, "drop_unread", d->cfg.drop_unread ? 1 : 0) ||
		    write_key_uint(out, "namespaces", s.namespaces) ||
		    write_key_uint(out, "bytes", s.bytes) ||
		    write_key_uint(out, "max_bytes", d->cfg.max_bytes) ||
		    write_key_uint(out, "expired_total", s.expired_total) ||
		    write_key_uint(out, "connections", d->stats->connections) ||
		    write_key_uint(out, "connections_total", d->stats->connections_total) ||
		    write_key_uint(out, "connections_displaced_total",
		                   d->stats->connections_displaced_total) ||
		    write_key_uint(out, "connections_refused_total",
		                   d->stats->connections_refused_total) ||
		    write_key_uint(out, "max_connections", d->cfg.max_connections) ||
		    write_key_uint(out, "max_client_bytes", d->cfg.max_client_bytes) ||
		    write_key_uint(out, "requests_total", d->requests_total) ||
		    write_key_uint(out, "uptime_ms",
		                   now > d->stats->started_mono_ms ? now - d->stats->started_mono_ms
		                                                   : 0) ||
		    write_key_uint(out, "loop_stall_max_us", d->stats->loop_stall_max_us) ||
		    write_key_uint(out, "loop_stalls_over_1ms", d->stats->loop_stalls_over_1ms) ||
		    write_key_uint(out, "loop_stalls_over_2ms", d->stats->loop_stalls_over_2ms) ||
		    write_key_uint(out, "loop_stalls_over_10ms", d->stats->loop_stalls_over_10ms) ||
		    write_key_uint(out, "client_bytes", d->stats->client_bytes) ||
		    write_key_uint(out, "client_bytes_peak", d->stats->client_bytes_peak) ||
		    write_key_uint(out, "client_evictions_total",
		                   d->stats->client_evictions_total) ||
		    write_key_uint(out, "no_memory_total", d->no_memory_total) ||
		    write_key_uint(out, "io_errors_total", d->io_errors_total) ||
		    write_key_uint(out, "forbidden_total", d->forbidden_total) ||
		    write_key_uint(out, "retired_total", d->retired_total) ||
		    write_key_uint(out, "writable",
		                   d->p == NULL || persist_writable(d->p) == 0 ? 1 : 0) ||
		    write_key_uint(out, "malformed_total",
		                   d->malformed_total + d->stats->frames_refused_total) ||
		    write_key_uint(out, "hello_deferred_total", d->kx_deferred_total) ||
		    write_key_uint(out, "hello_abandoned_total", d->stats->hello_abandoned_total) ||
		    write_key_uint(out, "held_over_total", d->stats->held_over_total) ||
		    write_key_uint(out, "cpu_deferred_total", d->heavy_deferred_total) ||
		    write_key_uint(out, "reads_deferred_total", d->stats->reads_deferred_total))
			return -1;
	} else {
		store_stats(d->st, req->ns.ptr, req->ns.len, &s);
		if (mp_write_map(out, 5) == -1 || write_key_uint(out, "sessions", s.sessions) ||
		    write_key_uint(out, "unread", s.unread) ||
		    write_key_uint(out, "evicted_total", s.evicted_total) ||
		    write_key_uint(out, "bytes", s.bytes) ||
		    write_key_uint(out, "flashes", s.flashes))
			return -1;
	}
	return codec_frame_close(out, at);
}

/*
 * LIST, NAMESPACES and CLEAR from a connection without the admin secret: session ids are
 * bearer credentials, and a web app, which holds the apps' secret, never needs every one of
 * them or to wipe a namespace. The connection stays open: it may do anything else.
 */
static int refuse_forbidden(struct dispatch *d, const struct codec_request *req, struct buf *out)
{
	const char *why = req->op == CODEC_OP_LIST
	                      ? "LIST needs the admin secret (--admin-auth-file)"
	                  : req->op == CODEC_OP_NAMESPACES
	                      ? "NAMESPACES needs the admin secret (--admin-auth-file)"
	                      : "CLEAR needs the admin secret (--admin-auth-file)";

	d->forbidden_total++;
	return codec_reply_error(out, req->request_id, CODEC_FORBIDDEN, why);
}

/*
 * RETIRE: a client that gave up on a sealed connection with a change in flight closes it, so
 * that a record held back on the path cannot be carried out later (PROTOCOL.md, "RETIRE").
 * The network layer finds and closes it; the store knows nothing of it.
 */
static int op_retire(struct dispatch *d, const struct dispatch_peer *peer,
                     const struct codec_request *req, struct buf *out,
                     enum dispatch_verdict *verdict)
{
	int found = 0;
	size_t at;

	if (d->cfg.retire != NULL)
		found = d->cfg.retire(d->cfg.retire_arg, peer, req->retire_key.ptr);
	if (found == -1) {
		*verdict = DISPATCH_CLOSE;
		return codec_reply_error(out, req->request_id, CODEC_BAD_REQUEST,
		                         "RETIRE names the connection it was sent on");
	}
	if (found == 1)
		d->retired_total++;
	if (codec_reply_open(out, req->request_id, CODEC_OK, &at) == -1 ||
	    mp_write_bool(out, found == 1) == -1)
		return -1;
	return codec_frame_close(out, at);
}

/* The bytes of a change's record that come from the request: SET's data, a flash message. */
static size_t change_data_len(const struct codec_request *req)
{
	switch (req->op) {
	case CODEC_OP_SET:
	case CODEC_OP_SET_IF:
		return req->data.len;
	case CODEC_OP_FLASH_PUSH:
	case CODEC_OP_FLASH_PUSH_EXISTING:
		return req->flash_msg.len;
	default:
		return 0;
	}
}

/*
 * Carry out a decoded request; writes one reply. Returns 0, or -1 (ENOMEM) on a partial one.
 * Inline in its one caller, run_request: left to itself, gcc made it a call of its own once the
 * store's lookup grew inline into the ops, and every request, a PING's too, paid 40
 * instructions more for it (callgrind, bench/README.md "Ceiling check", stop 55).
 */
__attribute__((always_inline)) static inline int run(struct dispatch *d, struct dispatch_peer *peer,
                                                     const struct codec_request *req,
                                                     const struct dispatch_frame_ref *frame,
                                                     uint64_t now_ms, struct buf *out,
                                                     enum dispatch_verdict *verdict)
{
	struct store_key key;

	if (req->op == CODEC_OP_HELLO)
		return op_hello(d, peer, req, out, verdict);
	if (!peer->ready) {
		*verdict = DISPATCH_CLOSE;
		return codec_reply_error(out, req->request_id, CODEC_NOT_READY,
		                         "the first request must be HELLO");
	}
	if (!peer->admin && (req->op == CODEC_OP_LIST || req->op == CODEC_OP_NAMESPACES ||
	                     req->op == CODEC_OP_CLEAR))
		return refuse_forbidden(d, req, out);
	/* A change waits while the log cannot take it yet (a snapshot's switch), even in a
	 * stopping server: nothing would keep it from reaching the disk too soon. */
	if (codec_op_changes(req->op) && persist_must_wait(d->p)) {
		d->change_put_off = true;
		*verdict = DISPATCH_LATER;
		return 0;
	}
	/* Cheap for requests without an id; those that name a session all use it. */
	request_key(req, frame, &key);
	/* Room for the reply and the log record before the change is made: found wanting after
	 * it, the change would be answered INTERNAL, "out of memory" (which says it was not
	 * carried out: a retry would push a flash twice) or "made but not logged" (kept in
	 * memory, undone by a restart); on a sealed connection, the room to seal the reply, or the
	 * connection is closed without it. Refused now, nothing has changed. */
	d->change_len = change_data_len(req);
	if (codec_op_changes(req->op)) {
		if (buf_reserve(out, DISPATCH_DONE_REPLY_MAX) == -1 ||
		    keep_sealed_room(peer, out->len + DISPATCH_CHANGE_REPLY_MAX) == -1 ||
		    persist_reserve(d->p, d->change_len) == -1)
			return -1;
		d->room_kept = true;
	}
	switch (req->op) {
	case CODEC_OP_PING:
		/* A payload fits the reply: its frame is no longer than the request's. */
		if (req->ping_payload)
			return reply_bin(out, req->request_id, req->data.ptr, req->data.len);
		return reply_nil(out, req->request_id);
	case CODEC_OP_RETIRE:
		return op_retire(d, peer, req, out, verdict);
	case CODEC_OP_GET:
	case CODEC_OP_LOAD:
		return op_get(d, req, &key, now_ms, out);
	case CODEC_OP_SET:
		return op_set(d, req, &key, now_ms, out);
	case CODEC_OP_SET_IF:
	case CODEC_OP_TOUCH_IF:
		return op_if_unchanged(d, req, &key, now_ms, out, verdict);
	case CODEC_OP_TOUCH:
		return op_touch(d, req, &key, now_ms, out);
	case CODEC_OP_DESTROY:
		return op_destroy(d, req, &key, now_ms, out);
	case CODEC_OP_DESTROY_IF_FLASH:
		return op_destroy_if_flash(d, req, &key, now_ms, out);
	case CODEC_OP_TTL:
		return op_ttl(d, req, &key, now_ms, out);
	case CODEC_OP_FLASH_PUSH:
	case CODEC_OP_FLASH_PUSH_EXISTING:
		return op_flash_push(d, req, &key, now_ms, out);
	case CODEC_OP_FLASH_POP:
		return op_flash_pop(d, peer, req, &key, now_ms, out, verdict);
	case CODEC_OP_COUNT:
		return op_count(d, req, now_ms, out, verdict);
	case CODEC_OP_LIST:
	case CODEC_OP_NAMESPACES:
		return op_page(d, req, now_ms, out, verdict);
	case CODEC_OP_CLEAR:
		return op_clear(d, req, now_ms, out, verdict);
	case CODEC_OP_STATS:
		return op_stats(d, req, out);
	default:
		/* The codec answers UNKNOWN_OP itself; an op it decodes must be handled here. */
		return codec_reply_error(out, req->request_id, CODEC_UNKNOWN_OP,
		                         "this server does not know that operation");
	}
}

void dispatch_prefetch(struct dispatch *d, struct dispatch_frame_ref *frames, size_t count)
{
	struct store_hint hints[DISPATCH_PREFETCH_MAX];
	bool copies_data[DISPATCH_PREFETCH_MAX];
	/* The frame of each hint. */
	size_t frame_of[DISPATCH_PREFETCH_MAX];
	size_t n = 0;

	if (count > DISPATCH_PREFETCH_MAX)
		count = DISPATCH_PREFETCH_MAX;
	for (size_t i = 0; i < count; i++) {
		const struct codec_request *req = &frames[i].req;
		struct store_key key;
		const char *why;
		uint32_t status;

		/* Kept in the frame: dispatch_frame_hinted runs this request without decoding
		 * it again. A malformed frame is decoded again there, for its error reply. */
		frames[i].id_hashed = false;
		frames[i].decoded = codec_decode_request(frames[i].body, frames[i].len,
		                                         &frames[i].req, &status, &why) == 0;
		if (!frames[i].decoded)
			continue;
		request_key(req, NULL, &key);
		if (store_hint_start(d->st, &key, &hints[n]) == 0) {
			/* The lookup that runs this request takes the hash from here. */
			frames[i].id_hash = hints[n].id_hash;
			frames[i].id_hashed = true;
			frame_of[n] = i;
			copies_data[n++] = req->op == CODEC_OP_GET || req->op == CODEC_OP_LOAD ||
			                   req->op == CODEC_OP_SET_IF ||
			                   req->op == CODEC_OP_TOUCH_IF;
		}
	}
	for (size_t i = 0; i < n; i++)
		store_hint_follow(&hints[i]);
	/* A GET's reply copies the session's data, and a SET_IF or TOUCH_IF hashes it: its lines
	 * are the third miss in a row, or the fourth when the session is second in its chain. */
	for (size_t i = 0; i < n; i++)
		store_hint_data(&hints[i], copies_data[i]);
	/* And what the hints found, which spares the lookup while the store stays as it is. */
	for (size_t i = 0; i < n; i++) {
		store_hint_next(&hints[i], copies_data[i]);
		frames[frame_of[i]].found = hints[i].found;
	}
}

/* What dispatch_reply_bound allows for a reply's frame header, status and msgpack headers
 * around its data, for a status or count alone, and for an error message or STATS. */
#define DISPATCH_REPLY_FRAMING 64u
#define DISPATCH_REPLY_SMALL   1024u
/* An entry of a LIST or NAMESPACES page at most: an id or a namespace's name, and a count or
 * a ttl. */
#define DISPATCH_PAGE_ENTRY_MAX 320u

/*
 * Decode ${frame}'s request into it, as dispatch_prefetch does, unless it is already; whether
 * it is well formed. dispatch_frame_hinted then runs it without decoding it again.
 */
static bool decode_once(struct dispatch_frame_ref *frame)
{
	const char *why;
	uint32_t status;

	if (!frame->decoded) {
		frame->id_hashed = false;
		frame->decoded =
		    codec_decode_request(frame->body, frame->len, &frame->req, &status, &why) == 0;
	}
	return frame->decoded;
}

size_t dispatch_reply_bound(struct dispatch *d, struct dispatch_frame_ref *frame, uint64_t now_ms)
{
	const struct codec_request *req = &frame->req;
	size_t data_len = 0, flash_bytes = 0, bound;
	struct store_key key;

	/* An error reply (malformed) says why in a sentence. */
	if (!decode_once(frame))
		return DISPATCH_REPLY_SMALL;
	switch (req->op) {
	case CODEC_OP_GET:
	case CODEC_OP_LOAD:
	case CODEC_OP_FLASH_POP:
		request_key(req, frame, &key);
		if (store_sizes(d->st, &key, now_ms, &data_len, &flash_bytes) == -1)
			return DISPATCH_REPLY_SMALL;
		bound = req->op == CODEC_OP_FLASH_POP ? flash_bytes : data_len;
		return bound + DISPATCH_REPLY_FRAMING;
	case CODEC_OP_PING:
		return req->ping_payload ? req->data.len + DISPATCH_REPLY_FRAMING
		                         : DISPATCH_REPLY_FRAMING;
	case CODEC_OP_LIST:
	case CODEC_OP_NAMESPACES:
		bound = (size_t)req->limit * DISPATCH_PAGE_ENTRY_MAX + DISPATCH_REPLY_FRAMING;
		return bound < d->cfg.max_frame ? bound : d->cfg.max_frame;
	default:
		return DISPATCH_REPLY_SMALL;
	}
}

/*
 * Writing the reply at ${start} of ${out} ran out of memory: replace the partial frame with a
 * short error, and close if even that cannot be written. The buffer only ever shrinks here.
 * Returns the verdict to give.
 */
static enum dispatch_verdict reply_out_of_memory(struct buf *out, size_t start, uint64_t request_id,
                                                 enum dispatch_verdict verdict)
{
	out->len = start;
	if (codec_reply_error(out, request_id, CODEC_INTERNAL, "out of memory") == 0)
		return verdict;
	out->len = start;
	return DISPATCH_CLOSE;
}

/* Carry out one decoded request: see dispatch_frame. */
static enum dispatch_verdict run_request(struct dispatch *d, struct dispatch_peer *peer,
                                         const struct codec_request *req,
                                         const struct dispatch_frame_ref *frame, uint64_t now_ms,
                                         struct buf *out)
{
	enum dispatch_verdict verdict = DISPATCH_KEEP;
	size_t start = out->len;
	/* A HELLO that makes the connection sealed is answered plain: room is kept from its
	 * first request on. One on a connection past HELLO is answered sealed, as any request. */
	bool first_hello = req->op == CODEC_OP_HELLO && !peer->ready;

	/* Only for clients past HELLO: one without the --auth-file secret must not be able to
	 * write to the log, even at debug level. */
	if (log_enabled(LOG_DEBUG) && peer->ready && req->id.len > 0) {
		char tag[13];

		ids_log_tag(tag, req->id.ptr, req->id.len, d->tag_key);
		log_debug("%s session %s", codec_op_name(req->op), tag);
	}
	/* Counted before it runs, so that STATS counts itself. */
	d->requests_total++;
	d->room_kept = false;
	if (run(d, peer, req, frame, now_ms, out, &verdict) == 0) {
		/* A request put off is counted when it is carried out. */
		if (verdict == DISPATCH_LATER)
			d->requests_total--;
		/* A change kept the room for its sealed reply before it was made (run; a
		 * FLASH_POP's messages, as they were taken). Every other reply, a change refused
		 * before it kept any (FORBIDDEN) and a HELLO on a sealed connection too, keeps
		 * the room for an error reply after it, or the next request's would find none. */
		if (verdict == DISPATCH_LATER || d->room_kept ||
		    keep_sealed_room(peer, first_hello ? 0 : out->len) == 0 || first_hello)
			return verdict;
	}
	return reply_out_of_memory(out, start, req->request_id, verdict);
}

enum dispatch_verdict dispatch_frame(struct dispatch *d, struct dispatch_peer *peer,
                                     const uint8_t *body, size_t len, uint64_t now_ms,
                                     struct buf *out)
{
	enum dispatch_verdict verdict = DISPATCH_CLOSE;
	struct codec_request req;
	size_t start = out->len;
	const char *why = NULL;
	uint32_t status = 0;
	int rc;

	if (codec_decode_request(body, len, &req, &status, &why) == 0)
		return run_request(d, peer, &req, NULL, now_ms, out);
	d->requests_total++;
	if (status == CODEC_UNKNOWN_OP && peer->ready) {
		verdict = DISPATCH_KEEP;
		rc = codec_reply_error(out, req.request_id, CODEC_UNKNOWN_OP, why);
	} else if (status == CODEC_UNKNOWN_OP) {
		rc = codec_reply_error(out, req.request_id, CODEC_NOT_READY,
		                       "the first request must be HELLO");
	} else {
		uint64_t closed;

		d->malformed_total++;
		note_refused_peer(d->malformed_peer, peer);
		d->malformed_why = why != NULL ? why : "malformed request";
		closed = log_every_due(&d->malformed_log, 1, 60);
		if (closed > 0)
			say_malformed(d, closed, DISPATCH_NOTE_PERIODIC);
		rc = codec_reply_error(out, req.request_id, CODEC_BAD_REQUEST, d->malformed_why);
	}
	if (rc == 0 && keep_sealed_room(peer, out->len) == 0)
		return verdict;
	return reply_out_of_memory(out, start, req.request_id, verdict);
}

bool dispatch_reply_only(struct dispatch *d, struct dispatch_frame_ref *frame)
{
	(void)d;
	if (!decode_once(frame))
		return false;
	switch (frame->req.op) {
	case CODEC_OP_PING:
	case CODEC_OP_GET:
	case CODEC_OP_LOAD:
	case CODEC_OP_TTL:
	case CODEC_OP_COUNT:
	case CODEC_OP_LIST:
	case CODEC_OP_NAMESPACES:
	case CODEC_OP_STATS:
	case CODEC_OP_FLASH_POP:
		return true;
	default:
		return false;
	}
}

bool dispatch_takes_for_client(struct dispatch *d, struct dispatch_frame_ref *frame)
{
	(void)d;
	return decode_once(frame) && frame->req.op == CODEC_OP_FLASH_POP;
}

enum dispatch_verdict dispatch_frame_hinted(struct dispatch *d, struct dispatch_peer *peer,
                                            const struct dispatch_frame_ref *frame, uint64_t now_ms,
                                            struct buf *out)
{
	if (!frame->decoded)
		return dispatch_frame(d, peer, frame->body, frame->len, now_ms, out);
	return run_request(d, peer, &frame->req, frame, now_ms, out);
}
