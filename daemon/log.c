/*
 * The daemon's log: timestamped lines on stderr. See log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * The file-statics of the daemon besides signal flags: the threshold and the journal's
 * prefix are set once by main before the event loop starts and only read afterwards, so they
 * need no owner to pass around.
 */
static enum log_level log_threshold = LOG_INFO;
static bool log_priority_prefix;

static const char *const log_names[] = {"debug", "info", "warn", "error"};
/* The syslog priority of each level, as journald reads it off a line's "<N>" (sd-daemon(3)). */
static const int log_priorities[] = {7, 6, 4, 3};

int log_level_parse(const char *name, enum log_level *level)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcmp(name, log_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

void log_detect_journal(void)
{
	const char *stream = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* Inherited by a process whose stderr went elsewhere, it names another file. */
	log_priority_prefix = stream != NULL && sscanf(stream, "%llu:%llu", &dev, &ino) == 2 &&
	                      fstat(STDERR_FILENO, &st) == 0 &&
	                      (unsigned long long)st.st_dev == dev &&
	                      (unsigned long long)st.st_ino == ino;
}

bool log_enabled(enum log_level level)
{
	return level >= log_threshold;
}

size_t log_escape(char *dst, size_t size, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	if (size == 0)
		return 0;
	for (; *src != '\0'; src++) {
		unsigned char ch = (unsigned char)*src;

		if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
			if (size - n < 2)
				break;
			dst[n++] = (char)ch;
			continue;
		}
		/* Never half an escape: a line cut there would read as another byte. */
		if (size - n < 5)
			break;
		dst[n++] = '\\';
		dst[n++] = 'x';
		dst[n++] = hex[ch >> 4];
		dst[n++] = hex[ch & 0xf];
	}
	dst[n] = '\0';
	return n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024], text[1024], priority[4] = "";
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level < log_threshold)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (log_priority_prefix)
		snprintf(priority, sizeof(priority), "<%d>", log_priorities[level]);
	n = snprintf(line, sizeof(line), "%s%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", priority,
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	             ts.tv_nsec / 1000000L, log_names[level]);
	if (n < 0)
		return;
	va_start(ap, fmt);
	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		text[0] = '\0';
	va_end(ap);
	/* The whole text, not only the arguments known to be untrusted: a path, a file name or
	 * an address put in any message can then never start a line of its own. */
	n += (int)log_escape(line + n, sizeof(line) - (size_t)n - 1, text);
	line[n++] = '\n';
	/* One write per line so lines from a crash-time flush never interleave. */
	fwrite(line, 1, (size_t)n, stderr);
}

uint64_t log_every_due(struct log_every *e, uint64_t n, unsigned period_s)
{
	struct timespec ts;
	uint64_t now_ms, due;

	e->pending += n;
	if (e->pending == 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (e->written && now_ms - e->last_mono_ms < (uint64_t)period_s * 1000)
		return 0;
	due = e->pending;
	e->pending = 0;
	e->last_mono_ms = now_ms;
	e->written = true;
	return due;
}

uint64_t log_every_take(struct log_every *e)
{
	uint64_t due = e->pending;

	e->pending = 0;
	return due;
}

uint64_t log_every_held(struct log_every *e, unsigned period_s, bool stopping)
{
	return stopping ? log_every_take(e) : log_every_due(e, 0, period_s);
}
