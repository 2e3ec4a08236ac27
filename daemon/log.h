#ifndef SESSD_LOG_H
#define SESSD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The daemon's log: one line per message on stderr, "2026-11-22T04:00:00.123Z info text"
 * (into the journal: "<6>2026-...", see log_detect_journal).
 * Callers never pass a full session ID; they log ids_log_tag tags instead.
 */

enum log_level {
	LOG_DEBUG = 0,
	LOG_INFO = 1,
	LOG_WARN = 2,
	LOG_ERROR = 3,
};

/*
 * log_level_parse(name, level):
 * Read "debug", "info", "warn" or "error" into ${level}. Returns 0, or -1 for another name.
 */
int log_level_parse(const char *name, enum log_level *level);

/* log_set_level(level): drop messages below ${level} from now on. Call once, at startup. */
void log_set_level(enum log_level level);

/*
 * log_detect_journal(): when stderr is systemd's journal ($JOURNAL_STREAM names its device and
 * inode), begin each line with its syslog priority, "<4>" for a warning, which journald takes
 * off and keeps, so that journalctl -p tells warnings and errors from the rest. Call once, at
 * startup.
 */
void log_detect_journal(void);

/* log_enabled(level): true when a message at ${level} would be written. */
bool log_enabled(enum log_level level);

/*
 * log_escape(dst, size, src):
 * Copy the string ${src} into ${dst} (${size} bytes, at least 1), each byte outside printable
 * ASCII (a newline, ESC, any byte of a UTF-8 sequence) and the backslash written as \xNN, as
 * sessctl writes ids: what the operator or the disk gave (a path, a file name) can neither
 * start a forged line nor drive a terminal, and what is shown maps back to one string. Cut
 * short at a whole character or escape when ${dst} is full; always NUL-terminated.
 * Returns the length written.
 */
size_t log_escape(char *dst, size_t size, const char *src);

/*
 * log_msg(level, fmt, ...): write one line at ${level} (printf format, no newline needed), its
 * text passed through log_escape.
 */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/*
 * A warning that may repeat fast (refused clients, closed connections, failed accepts):
 * written at most once a period, each line saying how many times it happened since the one
 * before, so that a flood cannot fill the log. Embed one per warning, zeroed.
 */
struct log_every {
	uint64_t pending;      /* occurrences not reported yet */
	uint64_t last_mono_ms; /* when the last line was due */
	bool written;          /* a line was due once already */
};

/*
 * log_every_due(e, n, period_s):
 * Count ${n} more occurrences. Returns how many to report when a line is due now (none was in
 * the last ${period_s} seconds, by the monotonic clock), for the caller to write; else 0.
 */
uint64_t log_every_due(struct log_every *e, uint64_t n, unsigned period_s);

/*
 * log_every_take(e):
 * The occurrences not reported yet, now taken for the caller to write: when the daemon stops,
 * a count still waiting out its period would otherwise never be said. Returns 0 for none.
 */
uint64_t log_every_take(struct log_every *e);

/*
 * log_every_held(e, period_s, stopping):
 * What a periodic check (the server's tick) or a stop reports of ${e}: all that is pending
 * when ${stopping} (log_every_take), else what is due now that ${period_s} passed since the
 * last line (log_every_due with nothing new), so that a burst's count comes at the end of
 * its period, not at the next occurrence. Returns 0 for none.
 */
uint64_t log_every_held(struct log_every *e, unsigned period_s, bool stopping);

#endif
