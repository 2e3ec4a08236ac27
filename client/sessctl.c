/*
 * sessctl: look at and change a running sessd from the shell, through libsessd.
 * Exit status: 0 done, 1 no such session (find: none matched; clear: no such namespace), 2
 * usage, connection or server error, 3 set-if found the data changed since its tag was read,
 * 4 sessd not reached (nothing carried out), 5 a change sent and not answered.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "sessd.h"
#include "shownarg.h"
#include "typo.h"
#include "url.h"

#define EXIT_NOT_FOUND 1
#define EXIT_TROUBLE   2
#define EXIT_CONFLICT  3
/* sessd was not reached or did not answer, and nothing of the command was carried out: a
 * script may try again after a pause, where 2 is a mistake in the command or its setup that
 * the same command meets again. */
#define EXIT_UNREACHED 4
/* A change went to sessd whole and no answer came (the connection broke, a timeout): it may
 * or may not have been carried out, so running it again may do it twice (a flash-push) or
 * find it done (a set-if's conflict, a destroy's no such session). Before, this was 4 too, and
 * a script that tried again on 4, as the docs said, pushed its flash twice. */
#define EXIT_UNKNOWN 5

#define DEFAULT_URL "tcp://127.0.0.1:7077"
/* The socket of the shipped systemd unit (RuntimeDirectory=sessd), whoever runs sessctl. */
#define SYSTEMD_URL "unix:/run/sessd/sessd.sock"
/* sessd's socket file in its runtime directory when started without --listen (sessd(8)). */
#define SOCKET_NAME "sessd.sock"
/* For a session that does not exist yet: set, set-if and flash-push without --ttl keep an
 * existing session's own. */
#define DEFAULT_TTL_S 86400
/* CODEC_MAX_TTL_MS in seconds: 10 years of 366 days. */
#define MAX_TTL_S (10ull * 366 * 24 * 3600)
/* Far above any sane max_frame; stops `sessctl set` from swallowing a runaway pipe. */
#define MAX_STDIN_BYTES (256u * 1024u * 1024u)
#define MAX_ARGS        8
/* The longest line of a message: a path of PATH_MAX bytes and libsessd's words around it. */
#define SAY_MAX (PATH_MAX + SESSD_ERRMSG_SIZE)
/* sessd_server_id: 32 hex digits. */
#define SERVER_ID_CHARS 32
#define MAX_ID_BYTES    128
/* express-session's cookie signature (cookie-signature): HMAC-SHA-256 in base64, '=' cut. */
#define COOKIE_SIGNATURE_LEN 43
/* Namespaces named in the warning about one that does not exist; the rest are counted. */
#define NAMESPACES_SHOWN 10
/* GETs find sends at once: each reply may be as large as max_frame, so this many bound what
 * one batch holds. */
#define FIND_BATCH 32
/* Default timeout of the reply of count and clear (their connect and HELLO keep libsessd's
 * default, see main): during a mass expiry the daemon answers them once it has reclaimed
 * the sessions due, which takes seconds for millions (PROTOCOL.md). */
#define WAITING_TIMEOUT_MS 60000
/* The longest id text --id-file or $SESSD_ID may hold: an id, its \xNN forms, or a whole Cookie
 * header holding the session's cookie (browsers keep a header under 8 KiB). */
#define ID_TEXT_MAX 8192
/* The variable --id-env reads the id from. */
#define ID_ENV "SESSD_ID"

struct opts {
	const char *url;
	const char *auth_file;
	bool plain_auth;
	const char *ns; /* --namespace, ns_len bytes (it may hold a NUL); NULL: none given */
	size_t ns_len;
	bool json;
	bool prometheus;    /* stats --prometheus */
	const char *output; /* stats --prometheus --output FILE; NULL: standard output */
	int timeout_ms;
	bool yes;
	bool tag;      /* get --tag */
	bool existing; /* flash-push --existing */
	bool have_ttl;
	uint64_t ttl_s;
	const char *args[MAX_ARGS];
	int nargs;
	/* --id-file FILE ("-": standard input) or --id-env: the id is not among args (where a
	 * live id would show in ps, /proc/PID/cmdline, shell history and audit logs), and
	 * id_from_elsewhere puts what it read there, in id_text, as args[1]. */
	const char *id_file;
	bool id_env;
	char id_text[ID_TEXT_MAX + 1];
	char cookie_id[MAX_ID_BYTES + 1]; /* the id taken out of a signed cookie */
	/* The id the command works on (args[1] with \xNN decoded, or cookie_id); not a string:
	 * it may hold NUL bytes. */
	const char *id;
	size_t id_len;
	char id_buf[MAX_ID_BYTES];
	char ns_buf[64];                /* --namespace with \xNN decoded */
	char default_url[URL_MAX_TEXT]; /* the url connected to without --connect or SESSD_URL */
};

struct command {
	const char *name;
	int min_args; /* after the command's name */
	int max_args;
	bool takes_ttl;
	bool needs_ttl;
	bool takes_yes;
	bool takes_tag;
	bool takes_existing;
	bool may_wait; /* the daemon may put it off: WAITING_TIMEOUT_MS by default */
	int (*run)(struct sessd_client *c, const struct opts *o);
};

static const char usage_text[] =
    "usage: sessctl [options] command [args]\n"
    "\n"
    "options (before or after the command):\n"
    "  --connect URL     unix:/path, /path or tcp://host:port (default $SESSD_URL, else\n"
    "                    sessd's own socket, then " SYSTEMD_URL ", then\n"
    "                    " DEFAULT_URL ")\n"
    "  --auth-file FILE  prove to the server the secret in FILE (as sessd --auth-file reads\n"
    "                    it; default $SESSD_AUTH_FILE, else none) and seal the connection\n"
    "                    (list, find, namespaces, clear: sessd's --admin-auth-file one)\n"
    "  --plain-auth      send the secret as it is, unencrypted, and seal nothing (for a\n"
    "                    server that cannot seal)\n"
    "  --namespace NAME  the namespace (default: \"default\")\n"
    "  --json            print results as JSON\n"
    "  --prometheus      stats: print every figure in Prometheus's text format, with\n"
    "                    sessd_up 0 (and exit status 4) when sessd does not answer\n"
    "  --output FILE     stats --prometheus: write to FILE, replaced whole (for\n"
    "                    node_exporter's textfile collector), not standard output\n"
    "  --timeout MS      timeout of each wait in milliseconds (default 5000; the reply\n"
    "                    of count and clear: 60000)\n"
    "  --ttl SECONDS     for set, set-if, touch and flash-push (set, set-if, flash-push:\n"
    "                    default the session's remaining ttl, 86400 for a new one)\n"
    "  --tag             get: print the tag of the data (for set-if) instead of the data\n"
    "  --existing        flash-push: only to a session that has data; never create one\n"
    "  --yes             confirm clear\n"
    "  --id-file FILE    read the ID from the first line of FILE ('-': standard input,\n"
    "                    asked for unseen on a terminal) instead of an argument, which\n"
    "                    ps, /proc, shell history and audit logs show; a line of list\n"
    "                    or find is such a line\n"
    "  --id-env          take the ID from $" ID_ENV " instead of an argument\n"
    "  --help, -h        print this help and exit\n"
    "  --version, -V     print the version (the same as sessd -V's) and exit\n";

/* The rest of the help: one string of it would pass the 4095 bytes C compilers must take. */
static const char usage_commands[] =
    "\n"
    "commands:\n"
    "  ping                         check the server answers\n"
    "  new-id                       print a new random session id\n"
    "  set ID [DATA]                store DATA (or standard input) as the session's data\n"
    "  get ID [--tag]               print the session's data exactly, or its tag\n"
    "  set-if ID TAG [DATA]         set, but only while the data still has TAG (get --tag)\n"
    "  touch ID --ttl SECONDS       give the session a new ttl\n"
    "  destroy ID                   remove the session\n"
    "  destroy-if-flash ID TYPE MESSAGE\n"
    "                               remove the session only while TYPE's oldest flash\n"
    "                               message is MESSAGE (a lock's release)\n"
    "  ttl ID                       the session's remaining ttl in ms, and when it ends\n"
    "  flash-push ID TYPE MESSAGE [--existing]\n"
    "                               queue a flash message\n"
    "  flash-pop ID [TYPE]          remove and print flash messages\n"
    "  count                        number of sessions in the namespace\n"
    "  list                         every session id and its remaining ttl in ms\n"
    "  find TEXT                    ids of the sessions whose data contains TEXT (reads\n"
    "                               every session of the namespace)\n"
    "  namespaces                   every namespace and its number of sessions\n"
    "  stats                        server figures (with --namespace: that namespace's;\n"
    "                               with --prometheus: all of them, for Prometheus)\n"
    "  clear --yes                  remove every session of the namespace\n"
    "\n"
    "An ID may also be an express-session signed cookie, s:ID.SIGNATURE or s%3AID.SIGNATURE:\n"
    "the id in it is used (the signature is not checked). list, find and namespaces print\n"
    "bytes of ids and names outside printable ASCII, the backslash, a space at either end,\n"
    "and the : and % of an id that reads as such a cookie, as \\xNN (\\x3a, \\x25); an ID\n"
    "or --namespace NAME may be given so too, as may list --json's \"arg\" (not its \"id\").\n"
    "A live id is as good as a login: with --id-file or --id-env it is left out of the\n"
    "arguments, which others may see:\n"
    "  sessctl destroy --id-file - <<<\"$id\"\n"
    "  sessctl find TEXT | while IFS= read -r id; do\n"
    "      " ID_ENV "=$id sessctl destroy --id-env; done\n";

/* Apart from usage_text: C99 promises string literals of 4095 bytes, no more. */
static const char usage_status_text[] =
    "\n"
    "exit status: 0 done, 1 no such session (find: none matched; clear: no such namespace),\n"
    "2 usage, setup or server error, 3 set-if found the data changed since its tag was read,\n"
    "or destroy-if-flash another message first (nothing changed), 4 sessd not reached or\n"
    "did not answer (no socket, refused, timed out, connection broken, stopping or full)\n"
    "and nothing was carried out, 5 a change was sent and no answer came: it may or may\n"
    "not have been carried out\n";

static void write_escaped(FILE *f, const char *p, size_t len);
static bool write_text_escaped(FILE *out, const char *p, size_t len, bool keep_lines);

/*
 * Write "sessctl: ", the printf format ${fmt} with ${ap}, and a newline to standard error,
 * the text escaped as ids are (write_escaped): a path (--connect, --auth-file, libsessd's words
 * naming them) may hold a newline, which would forge a line of its own in a cron job's log,
 * or ESC, which drives the terminal. Before, such a path was printed as given.
 */
static void vsay(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static void vsay(const char *fmt, va_list ap)
{
	char text[SAY_MAX];
	int n = vsnprintf(text, sizeof(text), fmt, ap);

	fputs("sessctl: ", stderr);
	if (n > 0)
		write_escaped(stderr, text,
		              (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
	fputc('\n', stderr);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

/*
 * say's line for ${source} (a file's name, escaped) and the constant ${words} after it, as
 * they are: say escapes a backslash, and advice to write \x00 read "\x5cx00".
 */
static void say_about(const char *source, const char *words)
{
	fputs("sessctl: ", stderr);
	write_escaped(stderr, source, strlen(source));
	fputs(words, stderr);
	fputc('\n', stderr);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	fputs("Try 'sessctl --help'.\n", stderr);
	return EXIT_TROUBLE;
}

/* Whether the command ${what} changes the store. */
static bool command_changes(const char *what)
{
	static const char *const changes[] = {
	    "set",        "set-if",    "touch", "destroy", "destroy-if-flash",
	    "flash-push", "flash-pop", "clear"};

	for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++)
		if (strcmp(what, changes[i]) == 0)
			return true;
	return false;
}

/*
 * What a failure of a call on ${c} leaves unknown, for its message: a change that left whole
 * and got no answer may or may not have been carried out (a sealed connection is retired
 * before sessctl exits, so not later); "" when libsessd knows nothing of it can have been (a
 * read, a request cut short, a connect that failed).
 */
static const char *unknown_outcome(const struct sessd_client *c)
{
	return sessd_outcome_unknown(c) ? "; it may or may not have been carried out (exit 5)" : "";
}

/*
 * The exit status of a failure ${rc} of libsessd on ${c}: EXIT_UNKNOWN when a change may have
 * been carried out unanswered; EXIT_UNREACHED when sessd was not reached or did not answer and
 * nothing was carried out, which trying again later may mend; else EXIT_TROUBLE.
 */
static int failure_status(const struct sessd_client *c, int rc)
{
	if (sessd_outcome_unknown(c))
		return EXIT_UNKNOWN;
	switch (rc) {
	case SESSD_ERR_CONNECT:
	case SESSD_ERR_TIMEOUT:
	case SESSD_ERR_CLOSED:
	case SESSD_ERR_SHUTTING_DOWN:
	case SESSD_ERR_BUSY:
		return EXIT_UNREACHED;
	default:
		return EXIT_TROUBLE;
	}
}

/* Report the result of a call; returns the exit status it means. */
static int report(struct sessd_client *c, int rc, const char *what)
{
	if (rc == SESSD_OK)
		return EXIT_SUCCESS;
	if (rc == SESSD_NOT_FOUND) {
		fprintf(stderr, "sessctl: %s: no such session\n", what);
		return EXIT_NOT_FOUND;
	}
	if (rc == SESSD_CONFLICT) {
		fprintf(stderr,
		        "sessctl: %s: the session's data changed since its tag was read; "
		        "nothing changed\n",
		        what);
		return EXIT_CONFLICT;
	}
	if (rc == SESSD_ERR_FORBIDDEN) {
		say("%s: refused (%s): this sessd lets only the holder of its admin secret list, "
		    "see namespaces and clear; give sessctl that secret's file (sessd "
		    "--admin-auth-file) with --auth-file FILE or $SESSD_AUTH_FILE",
		    what, sessd_errmsg(c));
		return EXIT_TROUBLE;
	}
	/* A daemon closes waiting connections without replies when it cannot write their
	 * changes (PROTOCOL.md, IO_ERROR): the words "connection closed" alone leave an operator
	 * nowhere to look. Only a close between replies can be that: a reset or a reply cut
	 * short is a network fault or a crash, which the daemon's log may know nothing of.
	 * libsessd's words are written escaped (say): after a reconnection they name the socket. */
	if (rc == SESSD_ERR_CLOSED &&
	    strcmp(sessd_errmsg(c), "the server closed the connection") == 0)
		say("%s: %s (%s) without a reply: the daemon stopped or crashed, or could not "
		    "write changes; if it is up, its log says why (a full disk, for one)%s",
		    what, sessd_strerror(rc), sessd_errmsg(c), unknown_outcome(c));
	else if (rc == SESSD_ERR_CLOSED)
		say("%s: %s (%s) without a reply: the connection broke (a network fault, or the "
		    "daemon crashed)%s",
		    what, sessd_strerror(rc), sessd_errmsg(c), unknown_outcome(c));
	else
		say("%s: %s (%s)%s", what, sessd_strerror(rc), sessd_errmsg(c), unknown_outcome(c));
	return failure_status(c, rc);
}

/*
 * report for the ops that read or need the session's data (get, set-if, flash-push
 * --existing): a session that holds only flash messages has none, and list and count show it,
 * so "no such session" would puzzle.
 */
static int report_data(struct sessd_client *c, int rc, const char *what)
{
	if (rc == SESSD_NOT_FOUND) {
		fprintf(stderr, "sessctl: %s: no such session (or it holds only flash messages)\n",
		        what);
		return EXIT_NOT_FOUND;
	}
	return report(c, rc, what);
}

static bool namespace_missing(struct sessd_client *c, const struct opts *o, const char *what);

/*
 * report, or report_data when ${has_data}, for a command on one session of namespace_of(o): a
 * session missing from a namespace the server does not have is more often a forgotten or
 * mistyped --namespace than a session gone (the apps' sessions are rarely in "default"), so
 * that is said too, with the namespaces there are. One named by a pasted cookie, in a
 * namespace that is there, may be kept under a store's prefix (connect-redis's "sess:", which
 * apps moving over keep with connect-sessd's prefix option): the cookie holds the id without
 * it, so that is said too.
 */
static int report_session(struct sessd_client *c, const struct opts *o, int rc, const char *what,
                          bool has_data)
{
	int status = has_data ? report_data(c, rc, what) : report(c, rc, what);

	if (rc == SESSD_NOT_FOUND && !namespace_missing(c, o, what) && o->id == o->cookie_id)
		fprintf(stderr,
		        "sessctl: %s: if the app's store has a prefix (connect-redis's \"sess:\", "
		        "connect-sessd's prefix option), the session is kept under the prefix and "
		        "the id: give them together, such as sess:%.*s...\n",
		        what, SHOWN_ARG_START, o->cookie_id);
	return status;
}

static void print_ok_json(void)
{
	fputs("{\"ok\":true}\n", stdout);
}

static int run_ping(struct sessd_client *c, const struct opts *o)
{
	int rc = sessd_ping(c);

	if (rc != SESSD_OK)
		return report(c, rc, "ping");
	if (o->json)
		printf("{\"ok\":true,\"server_id\":\"%s\",\"max_frame\":%" PRIu32 "}\n",
		       sessd_server_id(c), sessd_max_frame(c));
	else
		puts("pong");
	return EXIT_SUCCESS;
}

static int run_new_id(struct sessd_client *c, const struct opts *o)
{
	char id[SESSD_ID_LEN + 1];

	(void)c;
	if (sessd_id_new(id) != SESSD_OK) {
		fputs("sessctl: new-id: libsodium cannot start\n", stderr);
		return EXIT_TROUBLE;
	}
	if (o->json)
		printf("\"%s\"\n", id);
	else
		puts(id);
	return EXIT_SUCCESS;
}

/*
 * Read all of standard input for the command ${what} into *${out}, a malloc'd buffer the
 * caller frees. Returns 0, or -1 with a message printed.
 */
static int read_stdin(const char *what, char **out, size_t *len)
{
	size_t cap = 65536, n = 0, got;
	char *data = malloc(cap), *grown;
	/* An operator who forgot DATA saw sessctl wait without a word, and the Ctrl-D meant to
	 * leave stored empty data over the session. */
	bool from_terminal = isatty(STDIN_FILENO);

	if (data == NULL)
		goto fail_nomem;
	if (from_terminal)
		fprintf(stderr,
		        "sessctl: %s: reading the data from the terminal: type it, then Ctrl-D at "
		        "the start of a line (Ctrl-C stores nothing)\n",
		        what);
	/* fread is short only at the end or an error: asked again, it reads again, and a
	 * terminal's Ctrl-D at the start of a line after the data had to be typed twice. */
	while ((got = fread(data + n, 1, cap - n, stdin)) > 0) {
		n += got;
		if (n < cap)
			break;
		if (cap >= MAX_STDIN_BYTES) {
			fprintf(stderr, "sessctl: %s: standard input is too large\n", what);
			goto fail;
		}
		cap *= 2;
		grown = realloc(data, cap);
		if (grown == NULL)
			goto fail_nomem;
		data = grown;
	}
	if (ferror(stdin)) {
		fprintf(stderr, "sessctl: %s: reading standard input: %s\n", what, strerror(errno));
		goto fail;
	}
	if (from_terminal && n == 0) {
		fprintf(stderr,
		        "sessctl: %s: nothing typed, nothing stored (empty data is given as '')\n",
		        what);
		goto fail;
	}
	/* `sessctl get ID | jq ... | sessctl set-if ID TAG`: a get that timed out, or a filter
	 * that failed, hands on nothing, and that was stored over the session (the tag still
	 * matched), which the pipeline's status did not show. */
	if (n == 0) {
		fprintf(stderr,
		        "sessctl: %s: standard input is empty, nothing stored (a command before it "
		        "in a pipeline may have failed; empty data is given as '')\n",
		        what);
		goto fail;
	}
	*out = data;
	*len = n;
	return 0;

fail_nomem:
	fprintf(stderr, "sessctl: %s: out of memory\n", what);
fail:
	free(data);
	return -1;
}

/*
 * The ttl in ms that the command ${what} (set, set-if, flash-push) writes: --ttl's, else the
 * session's remaining ttl (the TTL request), so that an edit neither cuts a 30-day session to
 * the default nor stretches an hour one; DEFAULT_TTL_S for a session that does not exist (or a
 * daemon older than TTL, as before it). The session may change between the TTL and the write:
 * one destroyed meanwhile is created again by set (as it would be without the TTL) with what
 * it had left. Returns 0 with *${out} set, or -1 with the error printed and its exit status in
 * *${status}.
 */
static int ttl_to_write(struct sessd_client *c, const struct opts *o, const char *what,
                        uint64_t *out, int *status)
{
	uint64_t left;
	int rc;

	if (o->have_ttl) {
		*out = o->ttl_s * 1000;
		return 0;
	}
	rc = sessd_ttl(c, o->id, o->id_len, &left);
	if (rc == SESSD_OK) {
		*out = left;
		return 0;
	}
	if (rc == SESSD_NOT_FOUND || rc == SESSD_ERR_UNKNOWN_OP) {
		*out = (uint64_t)DEFAULT_TTL_S * 1000;
		return 0;
	}
	*status = report(c, rc, what);
	return -1;
}

/* The value of the hex digit ${ch}, either case, or -1. */
static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = (char)tolower((unsigned char)ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/*
 * Decode the argument ${arg} as ids are printed (write_escaped): each \xNN (two hex digits,
 * either case) is the byte NN, and every other byte, a backslash not so followed included,
 * is itself. Writes at most ${cap} bytes to ${out}; returns the decoded length, which is
 * more than ${cap} when they did not all fit.
 */
static size_t unescape_arg(const char *arg, char *out, size_t cap)
{
	size_t n = 0;
	int hi, lo;

	for (const char *p = arg; *p != '\0'; p++, n++) {
		char ch = *p;

		if (p[0] == '\\' && p[1] == 'x' && (hi = hex_digit(p[2])) != -1 &&
		    (lo = hex_digit(p[3])) != -1) {
			ch = (char)(hi << 4 | lo);
			p += 3;
		}
		if (n < cap)
			out[n] = ch;
	}
	return n;
}

/*
 * A tag as set-if takes it and get --tag prints it (tag_hex): SESSD_TAG_BYTES bytes as hex
 * digits, either case. Returns 0 with the bytes in ${tag}, or -1.
 */
static int tag_parse(const char *hex, uint8_t tag[SESSD_TAG_BYTES])
{
	int hi, lo;

	if (strlen(hex) != 2 * SESSD_TAG_BYTES)
		return -1;
	for (size_t i = 0; i < SESSD_TAG_BYTES; i++) {
		hi = hex_digit(hex[2 * i]);
		lo = hex_digit(hex[2 * i + 1]);
		if (hi == -1 || lo == -1)
			return -1;
		tag[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* Write the tag of ${len} bytes of ${data} to ${hex} as lowercase hex digits and a NUL. */
static void tag_hex(const void *data, size_t len, char hex[2 * SESSD_TAG_BYTES + 1])
{
	uint8_t tag[SESSD_TAG_BYTES];

	sessd_data_tag(data, len, tag);
	for (size_t i = 0; i < SESSD_TAG_BYTES; i++)
		snprintf(hex + 2 * i, 3, "%02x", tag[i]);
}

/*
 * set, or with ${expect} set-if: store the argument after the id (and the tag), or when
 * there is none all of standard input. Returns the exit status.
 */
static int store(struct sessd_client *c, const struct opts *o, const uint8_t *expect)
{
	const char *what = expect != NULL ? "set-if" : "set";
	int data_at = expect != NULL ? 3 : 2, rc;
	const char *data;
	char *input = NULL;
	uint64_t ttl;
	size_t len;
	int status;

	if (o->nargs > data_at) {
		data = o->args[data_at];
		len = strlen(data);
	} else {
		if (read_stdin(what, &input, &len) == -1)
			return EXIT_TROUBLE;
		data = input;
	}
	/* After standard input is read: an edit piped in (get | sed | set-if) takes the ttl
	 * the session has when it is written back. */
	if (ttl_to_write(c, o, what, &ttl, &status) == -1) {
		free(input);
		return status;
	}
	if (expect != NULL)
		rc = sessd_set_if(c, o->id, o->id_len, data, len, ttl, expect);
	else
		rc = sessd_set(c, o->id, o->id_len, data, len, ttl);
	free(input);
	if (rc != SESSD_OK)
		return report_session(c, o, rc, what, true);
	if (o->json)
		print_ok_json();
	return EXIT_SUCCESS;
}

static int run_set(struct sessd_client *c, const struct opts *o)
{
	return store(c, o, NULL);
}

static int run_set_if(struct sessd_client *c, const struct opts *o)
{
	uint8_t expect[SESSD_TAG_BYTES];

	/* check_command has refused a TAG that does not parse. */
	if (tag_parse(o->args[2], expect) == -1)
		return EXIT_TROUBLE;
	return store(c, o, expect);
}

/*
 * get --json --tag: the data, its tag and the session's ttl_ms, the TTL pipelined behind the
 * GET so that it costs no round trip. ttl_ms is left out when the TTL got no number (a daemon
 * older than TTL answers UNKNOWN_OP; the session may expire between the two).
 */
static int run_get_object(struct sessd_client *c, const struct opts *o)
{
	char hex[2 * SESSD_TAG_BYTES + 1];
	struct sessd_batch *b = sessd_batch_new(c);
	const void *data;
	size_t len;
	int rc;

	if (b == NULL) {
		fputs("sessctl: get: out of memory\n", stderr);
		return EXIT_TROUBLE;
	}
	if (sessd_batch_get(b, o->id, o->id_len) == -1 ||
	    sessd_batch_ttl(b, o->id, o->id_len) == -1)
		rc = SESSD_ERR_NOMEM;
	else
		rc = sessd_batch_run(b);
	if (rc == SESSD_OK)
		rc = sessd_batch_status(b, 0);
	if (rc != SESSD_OK) {
		sessd_batch_free(b);
		return report_session(c, o, rc, "get", true);
	}
	data = sessd_batch_data(b, 0, &len);
	/* The tag of exactly these bytes, from this one read. */
	tag_hex(data, len, hex);
	fputs("{\"data\":", stdout);
	json_write_string(stdout, data, len);
	printf(",\"tag\":\"%s\"", hex);
	if (sessd_batch_status(b, 1) == SESSD_OK)
		printf(",\"ttl_ms\":%" PRIu64, sessd_batch_ttl_ms(b, 1));
	fputs("}\n", stdout);
	sessd_batch_free(b);
	return EXIT_SUCCESS;
}

static int run_get(struct sessd_client *c, const struct opts *o)
{
	char hex[2 * SESSD_TAG_BYTES + 1];
	void *data;
	size_t len;
	int rc;

	if (o->json && o->tag)
		return run_get_object(c, o);
	rc = sessd_get(c, o->id, o->id_len, &data, &len);
	if (rc != SESSD_OK)
		return report_session(c, o, rc, "get", true);
	if (o->json) {
		json_write_string(stdout, data, len);
		fputc('\n', stdout);
	} else if (o->tag) {
		tag_hex(data, len, hex);
		printf("%s\n", hex);
	} else if (isatty(STDOUT_FILENO)) {
		/* Data any client wrote, an app's visitor's text in it, could drive the
		 * operator's terminal (ESC, the C1 controls: a forged screen, a title, a clipboard
		 * write), as flash-pop's messages could before they were escaped. */
		if (write_text_escaped(stdout, data, len, true)) {
			fflush(stdout);
			fputs("\nsessctl: get: bytes that could drive the terminal are shown as "
			      "\\xNN; "
			      "piped or redirected, get prints the data exactly\n",
			      stderr);
		}
	} else {
		fwrite(data, 1, len, stdout);
	}
	free(data);
	return EXIT_SUCCESS;
}

/*
 * Write the instant ${ttl_ms} from now by this machine's clock, as ISO 8601 UTC with
 * milliseconds and a NUL, into ${out} of ${size} bytes (25 hold it). The daemon sends only the
 * remaining time, so the instant is as right as the two clocks agree. Returns 0, or -1 when
 * the clock cannot be read, the instant is past what a uint64 of milliseconds or a struct tm
 * holds (a faulty server's figure: sessd's are 10 years at most), or ${size} is too small.
 */
static int iso_after(uint64_t ttl_ms, char *out, size_t size)
{
	struct timespec now;
	struct tm tm;
	uint64_t now_ms, at_ms;
	time_t secs;
	size_t n;

	if (clock_gettime(CLOCK_REALTIME, &now) == -1 || now.tv_sec < 0)
		return -1;
	now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
	/* Added whole, it would wrap to an instant in the past, printed as if it were the end. */
	if (ttl_ms > UINT64_MAX - now_ms)
		return -1;
	at_ms = now_ms + ttl_ms;
	secs = (time_t)(at_ms / 1000);
	if (gmtime_r(&secs, &tm) == NULL)
		return -1;
	n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0 ||
	    (size_t)snprintf(out + n, size - n, ".%03uZ", (unsigned)(at_ms % 1000)) >= size - n)
		return -1;
	return 0;
}

/* ttl: the session's remaining time to live in ms, and the instant that makes. */
static int run_ttl(struct sessd_client *c, const struct opts *o)
{
	char expires[64];
	uint64_t left = 0;
	int rc = sessd_ttl(c, o->id, o->id_len, &left);

	if (rc != SESSD_OK)
		return report_session(c, o, rc, "ttl", false);
	if (iso_after(left, expires, sizeof(expires)) == -1)
		snprintf(expires, sizeof(expires), "?");
	if (o->json) {
		fputs("{\"id\":", stdout);
		json_write_string(stdout, o->id, o->id_len);
		printf(",\"ttl_ms\":%" PRIu64 ",\"expires\":\"%s\"}\n", left, expires);
	} else {
		printf("%" PRIu64 "\t%s\n", left, expires);
	}
	return EXIT_SUCCESS;
}

static int run_touch(struct sessd_client *c, const struct opts *o)
{
	/* check_command has made sure of --ttl. */
	int rc = sessd_touch(c, o->id, o->id_len, o->ttl_s * 1000);

	if (rc != SESSD_OK)
		return report_session(c, o, rc, "touch", false);
	if (o->json)
		print_ok_json();
	return EXIT_SUCCESS;
}

static int run_destroy(struct sessd_client *c, const struct opts *o)
{
	int rc = sessd_destroy(c, o->id, o->id_len);

	if (rc != SESSD_OK)
		return report_session(c, o, rc, "destroy", false);
	if (o->json)
		print_ok_json();
	return EXIT_SUCCESS;
}

/*
 * The release of a lock held as a flash queue (PROTOCOL.md, "Locks on a flash queue"): remove
 * the session only while TYPE's oldest message is MESSAGE, its holder's token. A queue that
 * holds another first (another holder's) or none exits 3 with nothing changed, as set-if's
 * changed data does.
 */
static int run_destroy_if_flash(struct sessd_client *c, const struct opts *o)
{
	const char *msg = o->args[3];
	int rc = sessd_destroy_if_flash(c, o->id, o->id_len, o->args[2], msg, strlen(msg));

	if (rc == SESSD_CONFLICT) {
		fprintf(stderr,
		        "sessctl: destroy-if-flash: the oldest message of that type is another, or "
		        "there is none; nothing changed\n");
		return EXIT_CONFLICT;
	}
	if (rc != SESSD_OK)
		return report_session(c, o, rc, "destroy-if-flash", false);
	if (o->json)
		print_ok_json();
	return EXIT_SUCCESS;
}

static int run_flash_push(struct sessd_client *c, const struct opts *o)
{
	const char *msg = o->args[3];
	size_t queued = 0;
	uint64_t ttl;
	int rc, status;

	/* The daemon makes the expiry the later of the session's and now + ttl: the session's
	 * own remaining ttl leaves it where it is. */
	if (ttl_to_write(c, o, "flash-push", &ttl, &status) == -1)
		return status;
	if (o->existing)
		rc = sessd_flash_push_existing(c, o->id, o->id_len, o->args[2], msg, strlen(msg),
		                               ttl, &queued);
	else
		rc = sessd_flash_push(c, o->id, o->id_len, o->args[2], msg, strlen(msg), ttl,
		                      &queued);
	/* --existing needs data: a session with flashes only is "no such session" to it. */
	if (rc != SESSD_OK)
		return report_session(c, o, rc, "flash-push", true);
	if (o->json)
		printf("{\"queued\":%zu}\n", queued);
	else
		printf("%zu\n", queued);
	return EXIT_SUCCESS;
}

/*
 * The length of the UTF-8 sequence at ${p} (${left} bytes there) that may be written as it
 * is: 0 for a byte that starts no valid sequence (overlong forms, surrogates and code points
 * past U+10FFFF included), and for the code points that drive a terminal or reorder what it
 * shows: the C1 controls (U+0080-U+009F, 0x9B being CSI) and the bidirectional overrides and
 * isolates (U+202A-U+202E, U+2066-U+2069).
 */
static size_t printable_utf8(const unsigned char *p, size_t left)
{
	uint32_t cp = 0;
	size_t len = json_utf8_sequence(p, left, &cp);

	if (len == 0 || cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069))
		return 0;
	return len;
}

/*
 * Write ${len} bytes of the message or type ${p} to ${out}: printable ASCII and UTF-8 text as
 * they are; control characters (a newline, a tab, ESC, the C1 controls), the bidirectional
 * overrides, bytes that are not UTF-8, and the backslash as \\xNN, a byte each. Each message
 * stays on its line, and one an app's user wrote cannot drive the operator's terminal. With
 * ${keep_lines} (get's data shown on a terminal) newlines, tabs and backslashes are written
 * as they are: only what drives the terminal is escaped. Returns whether anything was.
 */
static bool write_text_escaped(FILE *out, const char *p, size_t len, bool keep_lines)
{
	const unsigned char *bytes = (const unsigned char *)p;
	bool escaped = false;
	size_t run;

	for (size_t i = 0; i < len; i++) {
		if ((bytes[i] >= 0x20 && bytes[i] < 0x7f && bytes[i] != '\\') ||
		    (keep_lines && (bytes[i] == '\n' || bytes[i] == '\t' || bytes[i] == '\\'))) {
			fputc(bytes[i], out);
		} else if (bytes[i] >= 0x80 && (run = printable_utf8(bytes + i, len - i)) > 0) {
			fwrite(bytes + i, 1, run, out);
			i += run - 1;
		} else {
			fprintf(out, "\\x%02x", bytes[i]);
			escaped = true;
		}
	}
	return escaped;
}

static void print_flashes_json(FILE *out, const struct sessd_flashes *f, bool one_type)
{
	const char *type = NULL;

	if (one_type) {
		fputc('[', out);
		for (size_t i = 0; i < f->count; i++) {
			if (i > 0)
				fputc(',', out);
			json_write_string(out, f->items[i].msg, f->items[i].msg_len);
		}
		fputs("]\n", out);
		return;
	}
	/* Items come grouped by type (sessd.h), so each type opens one array. */
	fputc('{', out);
	for (size_t i = 0; i < f->count; i++) {
		if (type == NULL || strcmp(type, f->items[i].type) != 0) {
			if (type != NULL)
				fputs("],", out);
			type = f->items[i].type;
			json_write_string(out, type, strlen(type));
			fputs(":[", out);
		} else {
			fputc(',', out);
		}
		json_write_string(out, f->items[i].msg, f->items[i].msg_len);
	}
	fputs(type != NULL ? "]}\n" : "}\n", out);
}

/* Write flash-pop's output of ${f} (${type}: the one type asked for, or NULL) to ${out}. */
static void print_flashes(FILE *out, const struct opts *o, const struct sessd_flashes *f,
                          const char *type)
{
	if (o->json) {
		print_flashes_json(out, f, type != NULL);
		return;
	}
	for (size_t i = 0; i < f->count; i++) {
		if (type == NULL) {
			(void)write_text_escaped(out, f->items[i].type, strlen(f->items[i].type),
			                         false);
			fputc('\t', out);
		}
		(void)write_text_escaped(out, f->items[i].msg, f->items[i].msg_len, false);
		fputc('\n', out);
	}
}

/*
 * Whether standard output can take the output of ${what}, a command that destroys what it
 * prints, checked before it does: it must be open for writing (main holds a closed one with a
 * read-only /dev/null) and, when it is a pipe or a socket, still have a reader. Else says why
 * on stderr. A write that fails at once (/dev/full, a full disk) cannot be known before; see
 * deliver_or_rescue.
 */
static bool stdout_takes_output(const char *what)
{
	int flags = fcntl(STDOUT_FILENO, F_GETFL);
	struct pollfd pfd = {.fd = STDOUT_FILENO, .events = POLLOUT};

	if (flags == -1 || (flags & O_ACCMODE) == O_RDONLY) {
		fprintf(stderr,
		        "sessctl: %s: standard output is closed (or open for reading only), so the "
		        "messages could not be shown: nothing was removed\n",
		        what);
		return false;
	}
	/* POLLERR: a pipe whose reader has gone; POLLHUP: a socket or terminal hung up. */
	if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLERR | POLLHUP)) != 0) {
		fprintf(stderr,
		        "sessctl: %s: nothing reads standard output any more (the other end of the "
		        "pipe has gone), so the messages could not be shown: nothing was removed\n",
		        what);
		return false;
	}
	return true;
}

/*
 * Say on stderr that standard output, which ${what} wrote what it removed from the store to,
 * failed with ${err}, and that the messages follow there.
 */
static void say_rescue(const char *what, int err)
{
	fprintf(stderr,
	        "sessctl: %s: writing standard output: %s; the messages are removed from the "
	        "session, so here they are, as they would have been printed:\n",
	        what, strerror(err));
}

/*
 * Write the ${len} bytes of ${text}, what ${what} removed from the store, to standard output.
 * When that fails (a full disk, /dev/full, a pipe closed meanwhile) they are written to
 * standard error after a line that says so, since they exist nowhere else any more: a pipe
 * may have taken part of them that its reader never read, so all of them are. Returns the
 * exit status: EXIT_TROUBLE on a failure, even when standard error took them.
 */
static int deliver_or_rescue(const char *what, const char *text, size_t len)
{
	size_t done = 0;
	ssize_t n;
	int err = 0;

	if (fflush(stdout) == EOF)
		err = errno;
	while (err == 0 && done < len) {
		n = write(STDOUT_FILENO, text + done, len - done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			err = errno;
			break;
		}
		done += (size_t)n;
	}
	if (err == 0)
		return EXIT_SUCCESS;
	say_rescue(what, err);
	fwrite(text, 1, len, stderr);
	fflush(stderr);
	return EXIT_TROUBLE;
}

/*
 * deliver_or_rescue without the memory to make the output whole first: ${f}'s messages go to
 * standard output through stdio as they are made, and when that fails, every one of them to
 * standard error after the line that says so (stderr is unbuffered: it needs no memory).
 * Before, this printed to standard output and exited 0 whatever became of the write: a full
 * disk lost the messages without a word.
 */
static int print_or_rescue(const struct opts *o, const struct sessd_flashes *f, const char *type)
{
	int err;

	print_flashes(stdout, o, f, type);
	err = fflush(stdout) == EOF ? errno : ferror(stdout) ? EIO : 0;
	if (err == 0)
		return EXIT_SUCCESS;
	say_rescue("flash-pop", err);
	print_flashes(stderr, o, f, type);
	/* What stdio could not write is not tried again at exit. */
	clearerr(stdout);
	return EXIT_TROUBLE;
}

static int run_flash_pop(struct sessd_client *c, const struct opts *o)
{
	const char *type = o->nargs == 3 ? o->args[2] : NULL;
	struct sessd_flashes *f;
	char *text = NULL;
	size_t len = 0;
	FILE *out;
	int rc, status;

	/* A pop removes the messages: shown nowhere, they would be lost. */
	if (!stdout_takes_output("flash-pop"))
		return EXIT_TROUBLE;
	rc = sessd_flash_pop(c, o->id, o->id_len, type, &f);
	/* sessd answered and libsessd had no memory for the messages in its reply: the pop was
	 * carried out, which report's "may or may not" left open. No memory for the reply's
	 * bytes themselves is not this (sessd_result_lost 0): then what came may not have been
	 * the answer. Before libsessd said so, this compared its error's words. */
	if (rc == SESSD_ERR_NOMEM && sessd_result_lost(c)) {
		fputs(
		    "sessctl: flash-pop: sessd removed the messages and answered, but there was no "
		    "memory to read its answer: the messages are lost (exit 5)\n",
		    stderr);
		return EXIT_UNKNOWN;
	}
	if (rc != SESSD_OK)
		return report(c, rc, "flash-pop");
	/* Made whole first, so that a failed write can still give all of it to stderr. */
	out = open_memstream(&text, &len);
	if (out != NULL) {
		print_flashes(out, o, f, type);
		if (fclose(out) == EOF) {
			free(text);
			text = NULL;
		}
	}
	if (text == NULL) {
		status = print_or_rescue(o, f, type);
		sessd_flashes_free(f);
		return status;
	}
	sessd_flashes_free(f);
	status = deliver_or_rescue("flash-pop", text, len);
	free(text);
	return status;
}

/* The namespace the commands work in, *${len} bytes (it may hold a NUL). */
static const char *namespace_of(const struct opts *o, size_t *len)
{
	*len = o->ns != NULL ? o->ns_len : strlen("default");
	return o->ns != NULL ? o->ns : "default";
}

/*
 * Write ${len} bytes of the id or name ${p} to ${f}, bytes outside printable ASCII, and the
 * backslash, as \xNN: a tab or newline in it cannot break a line of output, and what is
 * printed maps back to one sequence of bytes (unescape_arg reads it back).
 */
static bool printed_as_is(unsigned char ch)
{
	return ch >= 0x20 && ch < 0x7f && ch != '\\';
}

static void write_escaped(FILE *f, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (printed_as_is(ch))
			fputc(ch, f);
		else
			fprintf(f, "\\x%02x", ch);
	}
}

static int cookie_session_id(const char *arg, char id[MAX_ID_BYTES + 1]);

/*
 * Write ${len} bytes of ${p} as write_escaped does into ${out} (4 * ${len} + 1 bytes), with a
 * NUL, and a space at its start or end as \x20 too (the whole run of them); with ${colons},
 * also every ':' and '%' as \x3a and \x25.
 */
static void id_escape(const char *p, size_t len, bool colons, char *out)
{
	size_t lead = 0, trail = 0;
	unsigned char ch;

	while (lead < len && p[lead] == ' ')
		lead++;
	while (trail < len - lead && p[len - 1 - trail] == ' ')
		trail++;
	for (size_t i = 0; i < len; i++) {
		ch = (unsigned char)p[i];
		if (printed_as_is(ch) && (ch != ' ' || (i >= lead && i < len - trail)) &&
		    (!colons || (ch != ':' && ch != '%')))
			*out++ = (char)ch;
		else
			out += snprintf(out, 5, "\\x%02x", ch);
	}
	*out = '\0';
}

/*
 * write_id(f, p, len): write_escaped for an id or a namespace name on a line of list, find or
 * namespaces, which --id-file, --id-env, an ID argument and --namespace read back: a space at
 * its start or end is written \x20 too (the whole run of them). --id-file refuses an id with a
 * raw space there (an editor's or an `echo "$id "`'s, which no one meant), so such an id
 * printed as it was could not be given back; and a space before the tab or at the end of a line
 * does not show. An id that reads as express-session's signed cookie (s:ID.SIGNATURE, or a
 * Cookie header holding one, as "x;s:ID.SIGNATURE"), which an ID is taken to be
 * (cookie_session_id), has its ':' and '%' written \x3a and \x25: printed as it was, its line
 * named the session ID in it, another one, and `list | ... destroy --id-env` destroyed that
 * one. id_arg(p, len, text) puts that text in ${text} and returns it, or NULL for an id longer
 * than MAX_ID_BYTES.
 */
static const char *id_arg(const char *p, size_t len, char text[4 * MAX_ID_BYTES + 1])
{
	char cookie_id[MAX_ID_BYTES + 1];

	/* No id sessctl takes is longer (check_command). */
	if (len > MAX_ID_BYTES)
		return NULL;
	id_escape(p, len, false, text);
	if (cookie_session_id(text, cookie_id) != 0)
		id_escape(p, len, true, text);
	return text;
}

static void write_id(FILE *f, const char *p, size_t len)
{
	char text[4 * MAX_ID_BYTES + 1];
	const char *arg = id_arg(p, len, text);

	/* A hostile server's longer one is written escaped, as it is. */
	if (arg == NULL)
		write_escaped(f, p, len);
	else
		fputs(arg, f);
}

/*
 * list --json's "arg" of the id ${p} (${len} bytes): the text write_id prints, which an ID
 * argument, --id-file and --id-env read back as exactly those bytes, as a JSON string. It is
 * printable ASCII, so every JSON reader hands back those very characters: "id" holds the bytes
 * as JSON can (not one to one past ASCII: the byte 0x85 and U+0085 are both \u0085), and
 * given back as an ID its \xNN were decoded and a signed cookie's shape read as the cookie, so
 * that an id another client made, \x76ictim... or s:victim.SIGNATURE, named the session
 * victim... there. null for an id longer than sessctl takes (a hostile server's).
 */
static void write_id_arg_json(FILE *f, const char *p, size_t len)
{
	char text[4 * MAX_ID_BYTES + 1];
	const char *arg = id_arg(p, len, text);

	if (arg == NULL)
		fputs("null", f);
	else
		json_write_string(f, arg, strlen(arg));
}

/* What NAMESPACES says of the server's namespaces, for the warning about a missing one. */
struct ns_survey {
	bool found;      /* the namespace asked about is one of them */
	char **names;    /* up to NAMESPACES_SHOWN of them, the first in byte order; malloc'd */
	size_t *lens;    /* their lengths */
	size_t shown;    /* names kept */
	uint64_t others; /* namespaces not kept */
};

static void ns_survey_finish(struct ns_survey *sv)
{
	for (size_t i = 0; i < sv->shown; i++)
		free(sv->names[i]);
	free(sv->names);
	free(sv->lens);
}

static int name_cmp(const char *a, size_t a_len, const char *b, size_t b_len)
{
	int d = memcmp(a, b, a_len < b_len ? a_len : b_len);

	return d != 0 ? d : (a_len > b_len) - (a_len < b_len);
}

/* Keep ${e}'s name in ${sv} if it is among the NAMESPACES_SHOWN first; -1: out of memory. */
static int ns_survey_add(struct ns_survey *sv, const struct sessd_namespace *e)
{
	size_t at = sv->shown;
	char *copy;

	while (at > 0 && name_cmp(e->name, e->name_len, sv->names[at - 1], sv->lens[at - 1]) < 0)
		at--;
	if (at == NAMESPACES_SHOWN) {
		sv->others++;
		return 0;
	}
	copy = malloc(e->name_len + 1);
	if (copy == NULL)
		return -1;
	memcpy(copy, e->name, e->name_len + 1);
	if (sv->shown == NAMESPACES_SHOWN) {
		free(sv->names[--sv->shown]);
		sv->others++;
	}
	memmove(sv->names + at + 1, sv->names + at, (sv->shown - at) * sizeof(*sv->names));
	memmove(sv->lens + at + 1, sv->lens + at, (sv->shown - at) * sizeof(*sv->lens));
	sv->names[at] = copy;
	sv->lens[at] = e->name_len;
	sv->shown++;
	return 0;
}

/* A namespace NAMESPACES gave, for namespaces_each's caller: 0, or -1 to stop (out of memory). */
typedef int namespace_visit(void *arg, const struct sessd_namespace *e);

/*
 * Call ${visit}(${arg}, e) for each namespace of the server, over every page of NAMESPACES from
 * cursor 0. Returns SESSD_OK; the failure of sessd_namespaces, unsaid (what a refusal means is
 * the caller's); SESSD_ERR_NOMEM when ${visit} returned -1, unsaid; or -1 when the server gave
 * back the cursor it was sent, said on stderr for the command ${what}: the scan would go on
 * forever.
 */
static int namespaces_each(struct sessd_client *c, const char *what, namespace_visit *visit,
                           void *arg)
{
	struct sessd_namespaces *page;
	uint64_t cursor = 0, next;
	int rc;

	do {
		if ((rc = sessd_namespaces(c, cursor, 1000, &page)) != SESSD_OK)
			return rc;
		for (size_t i = 0; i < page->count; i++)
			if (visit(arg, &page->items[i]) == -1) {
				sessd_namespaces_free(page);
				return SESSD_ERR_NOMEM;
			}
		next = page->next_cursor;
		sessd_namespaces_free(page);
		if (next != 0 && next == cursor) {
			fprintf(stderr,
			        "sessctl: %s: namespaces: the server returned cursor %" PRIu64
			        " again; stopping\n",
			        what, next);
			return -1;
		}
		cursor = next;
	} while (cursor != 0);
	return SESSD_OK;
}

/* What ns_survey's scan carries: the survey, and the namespace it looks for. */
struct ns_survey_scan {
	struct ns_survey *sv;
	const char *ns;
	size_t ns_len;
};

static int ns_survey_visit(void *arg, const struct sessd_namespace *e)
{
	struct ns_survey_scan *scan = arg;

	if (e->name_len == scan->ns_len && memcmp(e->name, scan->ns, scan->ns_len) == 0) {
		scan->sv->found = true;
		return 0;
	}
	return ns_survey_add(scan->sv, e);
}

/*
 * Read every namespace of the server (NAMESPACES) into ${sv}, which the caller finishes with
 * ns_survey_finish, and whether namespace_of(o) is one of them. Returns 0, or -1 when it
 * cannot tell: a server older than NAMESPACES or one that keeps NAMESPACES for its admin
 * secret (silently: the check is a courtesy it cannot give), or an error, with a note for
 * ${what} on stderr.
 */
static int ns_survey(struct sessd_client *c, const struct opts *o, const char *what,
                     struct ns_survey *sv)
{
	struct ns_survey_scan scan = {.sv = sv};
	int rc;

	scan.ns = namespace_of(o, &scan.ns_len);
	*sv = (struct ns_survey){0};
	sv->names = malloc(NAMESPACES_SHOWN * sizeof(*sv->names));
	sv->lens = malloc(NAMESPACES_SHOWN * sizeof(*sv->lens));
	rc = sv->names == NULL || sv->lens == NULL
	         ? SESSD_ERR_NOMEM
	         : namespaces_each(c, what, ns_survey_visit, &scan);
	if (rc == SESSD_OK)
		return 0;
	if (rc == SESSD_ERR_NOMEM) {
		fprintf(stderr, "sessctl: %s: out of memory\n", what);
	} else if (rc != SESSD_ERR_UNKNOWN_OP && rc != SESSD_ERR_FORBIDDEN && rc != -1) {
		fprintf(stderr, "sessctl: %s: cannot tell whether namespace \"", what);
		write_escaped(stderr, scan.ns, scan.ns_len);
		fprintf(stderr, "\" exists: %s (", sessd_strerror(rc));
		write_escaped(stderr, sessd_errmsg(c), strlen(sessd_errmsg(c)));
		fputs(")\n", stderr);
	}
	ns_survey_finish(sv);
	*sv = (struct ns_survey){0};
	return -1;
}

/* Say on stderr that namespace_of(o) is not on the server, and which ones are. */
static void warn_no_namespace(const struct opts *o, const struct ns_survey *sv)
{
	size_t ns_len;
	const char *ns = namespace_of(o, &ns_len);

	fputs("sessctl: no namespace \"", stderr);
	write_escaped(stderr, ns, ns_len);
	fputs("\" on this server (it has: ", stderr);
	if (sv->shown == 0)
		fputs("none", stderr);
	for (size_t i = 0; i < sv->shown; i++) {
		if (i > 0)
			fputs(", ", stderr);
		write_escaped(stderr, sv->names[i], sv->lens[i]);
	}
	if (sv->others > 0)
		fprintf(stderr, " and %" PRIu64 " more", sv->others);
	fputs(")\n", stderr);
}

/*
 * For a command whose answer was empty: whether that is because namespace_of(o) does not
 * exist on the server, which is then said on stderr. false also when it cannot tell.
 */
static bool namespace_missing(struct sessd_client *c, const struct opts *o, const char *what)
{
	struct ns_survey sv;
	bool missing;

	if (ns_survey(c, o, what, &sv) == -1)
		return false;
	missing = !sv.found;
	if (missing)
		warn_no_namespace(o, &sv);
	ns_survey_finish(&sv);
	return missing;
}

/*
 * A scan's cursor is a position in one daemon's order, which is random per start (PROTOCOL.md,
 * "Administration"), and libsessd reconnects by itself when the daemon restarted between two
 * pages: going on from the old daemon's cursor, the scan would pass sessions over (and repeat
 * others) and end with status 0. Whether the daemon that answered the page at ${cursor} is
 * another one than the scan's first, said on standard error; the first page's (${cursor} 0)
 * server id is noted in ${first}.
 */
static bool scan_cut(struct sessd_client *c, uint64_t cursor, char first[SERVER_ID_CHARS + 1],
                     const char *what)
{
	if (cursor == 0) {
		snprintf(first, SERVER_ID_CHARS + 1, "%s", sessd_server_id(c));
		return false;
	}
	if (strcmp(sessd_server_id(c), first) == 0)
		return false;
	fprintf(stderr,
	        "sessctl: %s: sessd restarted during the scan (its server id changed), so what "
	        "was printed may lack some; run it again\n",
	        what);
	return true;
}

static int run_namespaces(struct sessd_client *c, const struct opts *o)
{
	struct sessd_namespaces *page;
	char first_id[SERVER_ID_CHARS + 1];
	uint64_t cursor = 0, next;
	bool first = true;
	int rc, status = EXIT_SUCCESS;

	if (o->json)
		fputc('[', stdout);
	do {
		rc = sessd_namespaces(c, cursor, 1000, &page);
		if (rc != SESSD_OK) {
			if (rc == SESSD_ERR_UNKNOWN_OP)
				fputs(
				    "sessctl: namespaces: this server is older than NAMESPACES and "
				    "cannot list its namespaces\n",
				    stderr);
			status =
			    rc == SESSD_ERR_UNKNOWN_OP ? EXIT_TROUBLE : report(c, rc, "namespaces");
			break;
		}
		if (scan_cut(c, cursor, first_id, "namespaces")) {
			sessd_namespaces_free(page);
			status = EXIT_UNREACHED;
			break;
		}
		for (size_t i = 0; i < page->count; i++) {
			const struct sessd_namespace *e = &page->items[i];

			if (o->json) {
				fputs(first ? "{\"name\":" : ",{\"name\":", stdout);
				json_write_string(stdout, e->name, e->name_len);
				printf(",\"sessions\":%" PRIu64 "}", e->sessions);
			} else {
				write_id(stdout, e->name, e->name_len);
				printf("\t%" PRIu64 "\n", e->sessions);
			}
			first = false;
		}
		next = page->next_cursor;
		sessd_namespaces_free(page);
		if (next != 0 && next == cursor) {
			fprintf(stderr,
			        "sessctl: namespaces: the server returned cursor %" PRIu64
			        " again; stopping\n",
			        next);
			status = EXIT_TROUBLE;
			break;
		}
		cursor = next;
	} while (cursor != 0);
	if (o->json)
		fputs("]\n", stdout);
	return status;
}

static int run_count(struct sessd_client *c, const struct opts *o)
{
	uint64_t n;
	int rc = sessd_count(c, &n);

	if (rc != SESSD_OK)
		return report(c, rc, "count");
	if (o->json)
		printf("{\"count\":%" PRIu64 "}\n", n);
	else
		printf("%" PRIu64 "\n", n);
	/* A mistyped or forgotten --namespace reads as "no sessions": say which it is. */
	if (n == 0) {
		fflush(stdout);
		(void)namespace_missing(c, o, "count");
	}
	return EXIT_SUCCESS;
}

static int run_list(struct sessd_client *c, const struct opts *o)
{
	struct sessd_list *page;
	char first_id[SERVER_ID_CHARS + 1];
	uint64_t cursor = 0, next;
	bool first = true;
	int rc;

	if (o->json)
		fputc('[', stdout);
	do {
		rc = sessd_list(c, cursor, 1000, &page);
		if (rc != SESSD_OK) {
			if (o->json)
				fputs("]\n", stdout);
			return report(c, rc, "list");
		}
		if (scan_cut(c, cursor, first_id, "list")) {
			sessd_list_free(page);
			if (o->json)
				fputs("]\n", stdout);
			return EXIT_UNREACHED;
		}
		for (size_t i = 0; i < page->count; i++) {
			const struct sessd_list_entry *e = &page->items[i];

			if (o->json) {
				fputs(first ? "{\"id\":" : ",{\"id\":", stdout);
				json_write_string(stdout, e->id, e->id_len);
				printf(",\"ttl_ms\":%" PRIu64 ",\"arg\":", e->ttl_ms);
				write_id_arg_json(stdout, e->id, e->id_len);
				fputc('}', stdout);
			} else {
				write_id(stdout, e->id, e->id_len);
				printf("\t%" PRIu64 "\n", e->ttl_ms);
			}
			first = false;
		}
		next = page->next_cursor;
		sessd_list_free(page);
		/* A server whose cursor does not move would keep this loop going forever. */
		if (next != 0 && next == cursor) {
			if (o->json)
				fputs("]\n", stdout);
			fprintf(stderr,
			        "sessctl: list: the server returned cursor %" PRIu64
			        " again; stopping\n",
			        next);
			return EXIT_TROUBLE;
		}
		cursor = next;
	} while (cursor != 0);
	if (o->json)
		fputs("]\n", stdout);
	if (first) {
		fflush(stdout);
		(void)namespace_missing(c, o, "list");
	}
	return EXIT_SUCCESS;
}

static int run_stats_prometheus(struct sessd_client *c, const struct opts *o);

static int run_stats(struct sessd_client *c, const struct opts *o)
{
	struct sessd_stats *s;
	bool empty = false;
	int rc;

	if (o->prometheus)
		return run_stats_prometheus(c, o);
	rc = sessd_stats(c, o->ns == NULL, &s);
	if (rc != SESSD_OK)
		return report(c, rc, "stats");
	if (o->json)
		fputc('{', stdout);
	for (size_t i = 0; i < s->count; i++) {
		if (o->json) {
			if (i > 0)
				fputc(',', stdout);
			json_write_string(stdout, s->items[i].name, strlen(s->items[i].name));
			printf(":%" PRIu64, s->items[i].value);
		} else {
			/* The server's words: escaped as ids are, so that a faulty or hostile
			 * one cannot drive the terminal or forge a line of figures. */
			write_escaped(stdout, s->items[i].name, strlen(s->items[i].name));
			printf(" %" PRIu64 "\n", s->items[i].value);
		}
	}
	if (o->json)
		fputs("}\n", stdout);
	if (o->ns != NULL)
		for (size_t i = 0; i < s->count; i++)
			if (strcmp(s->items[i].name, "sessions") == 0 && s->items[i].value == 0)
				empty = true;
	sessd_stats_free(s);
	if (empty) {
		fflush(stdout);
		(void)namespace_missing(c, o, "stats");
	}
	return EXIT_SUCCESS;
}

/*
 * stats --prometheus: the figures in Prometheus's text exposition format, version 0.0.4, which
 * a Prometheus scrape and node_exporter's textfile collector read. Each STATS figure NAME is
 * the metric sessd_NAME (but for the time figures, given in seconds as Prometheus wants them:
 * uptime_ms is sessd_uptime_seconds, loop_stall_max_us sessd_loop_stall_max_seconds, and the
 * stall counts end in _total as every counter does); a namespace's are
 * sessd_namespace_NAME{namespace="..."}; sessd_up says whether sessd answered at all.
 */

/* The namespaces with figures of their own, those with the most sessions: each costs a STATS
 * round trip and five series, and Prometheus keeps every series a scrape ever showed for its
 * whole retention, so clients that make thousands of namespaces (a bug, or a hostile client)
 * must not make every scrape that large. */
#define PROM_NAMESPACES_MAX 100
/* The longest STATS name made into a metric name; sessd's are under 30 bytes. */
#define PROM_KEY_MAX 64
/* A metric's name: the longest prefix, such a name and a NUL. */
#define PROM_NAME_MAX (sizeof("sessd_namespace_") + PROM_KEY_MAX)

struct prom_metric {
	const char *key;  /* the STATS figure */
	const char *name; /* its metric */
	const char *type; /* "counter" or "gauge" */
	uint32_t divisor; /* to seconds: 1000 for milliseconds, 1000000 for microseconds; else 1 */
	const char *help;
};

static const char prom_up_help[] =
    "# HELP sessd_up 1: sessctl read sessd's figures; 0: sessd did not answer (its other "
    "figures are left out).\n"
    "# TYPE sessd_up gauge\n";

/* PROTOCOL.md, "STATS", says more of each. */
static const struct prom_metric prom_server_metrics[] = {
    {"sessions", "sessd_sessions", "gauge", 1, "Sessions held, flash-only ones included."},
    {"unread", "sessd_unread", "gauge", 1,
     "Sessions a write created that no read has read since (visitors who never came back)."},
    {"evicted_total", "sessd_evicted_total", "counter", 1,
     "Sessions dropped unread to make room (--when-full drop-unread)."},
    {"drop_unread", "sessd_drop_unread", "gauge", 1, "1: sessd runs with --when-full drop-unread."},
    {"namespaces", "sessd_namespaces", "gauge", 1, "Namespaces that hold sessions."},
    {"bytes", "sessd_bytes", "gauge", 1, "Bytes the store holds: what max_bytes bounds."},
    {"max_bytes", "sessd_max_bytes", "gauge", 1, "The store's limit in bytes (0: none)."},
    {"expired_total", "sessd_expired_total", "counter", 1,
     "Sessions removed because they expired."},
    {"connections", "sessd_connections", "gauge", 1, "Client connections open."},
    {"connections_total", "sessd_connections_total", "counter", 1, "Client connections accepted."},
    {"connections_displaced_total", "sessd_connections_displaced_total", "counter", 1,
     "Connections closed at --max-connections to make room for new ones."},
    {"connections_refused_total", "sessd_connections_refused_total", "counter", 1,
     "New connections refused BUSY at --max-connections."},
    {"max_connections", "sessd_max_connections", "gauge", 1,
     "The connection limit (--max-connections)."},
    {"max_client_bytes", "sessd_max_client_bytes", "gauge", 1,
     "The bound on client_bytes (--max-client-memory)."},
    {"requests_total", "sessd_requests_total", "counter", 1, "Requests handled."},
    {"uptime_ms", "sessd_uptime_seconds", "gauge", 1000, "Seconds since sessd started."},
    {"loop_stall_max_us", "sessd_loop_stall_max_seconds", "gauge", 1000000,
     "The longest one event-loop turn held the loop since start: the longest a ready client "
     "waited."},
    {"loop_stalls_over_1ms", "sessd_loop_stalls_over_1ms_total", "counter", 1,
     "Event-loop turns longer than 1 ms."},
    {"loop_stalls_over_2ms", "sessd_loop_stalls_over_2ms_total", "counter", 1,
     "Event-loop turns longer than 2 ms."},
    {"loop_stalls_over_10ms", "sessd_loop_stalls_over_10ms_total", "counter", 1,
     "Event-loop turns longer than 10 ms."},
    {"client_bytes", "sessd_client_bytes", "gauge", 1,
     "Bytes held for connections: requests not handled yet, replies not read yet."},
    {"client_bytes_peak", "sessd_client_bytes_peak", "gauge", 1,
     "The most client_bytes has been since start."},
    {"client_evictions_total", "sessd_client_evictions_total", "counter", 1,
     "Connections closed over max_client_bytes (clients that do not read their replies)."},
    {"no_memory_total", "sessd_no_memory_total", "counter", 1,
     "Writes refused NO_MEMORY at the store's limit."},
    {"io_errors_total", "sessd_io_errors_total", "counter", 1,
     "Changes refused IO_ERROR: sessd could not make them durable (a full or failing disk)."},
    {"forbidden_total", "sessd_forbidden_total", "counter", 1,
     "LIST, NAMESPACES and CLEAR refused for want of the admin secret."},
    {"retired_total", "sessd_retired_total", "counter", 1,
     "Sealed connections closed by a client's RETIRE."},
    {"writable", "sessd_writable", "gauge", 1,
     "1 while sessd takes changes; 0 while it refuses them IO_ERROR."},
    {"malformed_total", "sessd_malformed_total", "counter", 1,
     "Connections closed for a malformed frame or request."},
    {"hello_deferred_total", "sessd_hello_deferred_total", "counter", 1,
     "Sealed HELLOs put off to a later loop turn."},
    {"hello_abandoned_total", "sessd_hello_abandoned_total", "counter", 1,
     "Sealed HELLOs put off and dropped, their client having stopped sending."},
    {"held_over_total", "sessd_held_over_total", "counter", 1,
     "Times a connection's requests were left for a later loop turn, the turn's budget spent."},
    {"cpu_deferred_total", "sessd_cpu_deferred_total", "counter", 1,
     "Requests put off to a later loop turn by the turn's budget for CPU."},
    {"reads_deferred_total", "sessd_reads_deferred_total", "counter", 1,
     "Times a connection with bytes waiting was left unread for a later loop turn."},
};

static const struct prom_metric prom_namespace_metrics[] = {
    {"sessions", "sessd_namespace_sessions", "gauge", 1, "The namespace's sessions."},
    {"unread", "sessd_namespace_unread", "gauge", 1,
     "The namespace's sessions that no read has read since a write created them."},
    {"evicted_total", "sessd_namespace_evicted_total", "counter", 1,
     "The namespace's sessions dropped unread to make room, since the namespace was created."},
    {"bytes", "sessd_namespace_bytes", "gauge", 1, "Bytes the namespace holds."},
    {"flashes", "sessd_namespace_flashes", "gauge", 1, "Flash messages queued in the namespace."},
};

/* A namespace with figures of its own. */
struct prom_namespace {
	char *name; /* name_len bytes and a NUL; malloc'd */
	size_t name_len;
	uint64_t sessions;         /* as NAMESPACES counted them: the order of the choice */
	struct sessd_stats *stats; /* its STATS; sessd_stats_free */
};

/* The exposition being made, and what it holds so far. */
struct prom_out {
	FILE *f; /* a memory stream: nothing is written out before the whole is made */
	char *text;
	size_t len;
	char **names; /* the metric names written, each once (malloc'd) */
	size_t n_names;
	struct prom_namespace *ns; /* the namespaces chosen, most sessions first */
	size_t n_ns;
	uint64_t ns_left_out;  /* over PROM_NAMESPACES_MAX */
	uint64_t ns_unlabeled; /* names no label value can hold (prom_label_ok) */
	bool ns_refused;       /* NAMESPACES refused: an admin secret, or an older sessd */
};

static void prom_out_finish(struct prom_out *po)
{
	if (po->f != NULL)
		fclose(po->f);
	free(po->text);
	for (size_t i = 0; i < po->n_names; i++)
		free(po->names[i]);
	free(po->names);
	for (size_t i = 0; i < po->n_ns; i++) {
		free(po->ns[i].name);
		sessd_stats_free(po->ns[i].stats);
	}
	free(po->ns);
}

/*
 * Whether the STATS name ${key} may be part of a metric name as it is: sessd's are lower-case
 * words and digits joined by '_'. Another server's (a newer sessd's, or a faulty or hostile
 * one's) could hold anything.
 */
static bool prom_key_ok(const char *key)
{
	size_t len = strlen(key);

	if (len == 0 || len > PROM_KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9') ||
		      key[i] == '_'))
			return false;
	return true;
}

/*
 * Whether a label value can hold the ${len} bytes of ${p} exactly: Prometheus refuses a whole
 * exposition with one label value that is not UTF-8 (a textfile collector would show none of
 * sessd's figures), and a NUL ends the value for many a reader. Only a C client makes such a
 * namespace name: JavaScript strings (connect-sessd's) reach the wire as UTF-8.
 */
static bool prom_label_ok(const char *p, size_t len)
{
	uint32_t code_point;
	size_t n;

	for (size_t i = 0; i < len; i += n)
		if ((n = json_utf8_sequence(p + i, len - i, &code_point)) == 0 || code_point == 0)
			return false;
	return true;
}

/* Write the ${len} bytes of ${p} as a label value: '\\', '"' and newline escaped, the only
 * escapes the format has. */
static void prom_write_label_value(FILE *f, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\\')
			fputs("\\\\", f);
		else if (p[i] == '"')
			fputs("\\\"", f);
		else if (p[i] == '\n')
			fputs("\\n", f);
		else
			fputc(p[i], f);
	}
}

/* Write ${value} divided by ${divisor} (1, 1000 or 1000000), exactly, and a newline. */
static void prom_write_value(FILE *f, uint64_t value, uint32_t divisor)
{
	if (divisor == 1000)
		fprintf(f, "%" PRIu64 ".%03" PRIu64 "\n", value / 1000, value % 1000);
	else if (divisor == 1000000)
		fprintf(f, "%" PRIu64 ".%06" PRIu64 "\n", value / 1000000, value % 1000000);
	else
		fprintf(f, "%" PRIu64 "\n", value);
}

/*
 * Note the metric name ${name} as written. Returns 0; 1 when it was written already; -1 when
 * out of memory.
 */
static int prom_name_take(struct prom_out *po, const char *name)
{
	char **grown, *copy;

	for (size_t i = 0; i < po->n_names; i++)
		if (strcmp(po->names[i], name) == 0)
			return 1;
	grown = realloc(po->names, (po->n_names + 1) * sizeof(*po->names));
	if (grown == NULL)
		return -1;
	po->names = grown;
	if ((copy = strdup(name)) == NULL)
		return -1;
	po->names[po->n_names++] = copy;
	return 0;
}

/*
 * Begin the family ${name}: its HELP and TYPE lines. Returns 0; 1 when a family of that name was
 * written already (a server that repeats a figure, or names a new one as another's metric), which
 * the caller then leaves out: Prometheus refuses an exposition that repeats one; -1 when out of
 * memory.
 */
static int prom_family(struct prom_out *po, const char *name, const char *type, const char *help)
{
	int rc = prom_name_take(po, name);

	if (rc == 0)
		fprintf(po->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	return rc;
}

/* The entry of ${table} (${n} entries) for the STATS name ${key}; NULL when none. */
static const struct prom_metric *prom_metric_of(const struct prom_metric *table, size_t n,
                                                const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i].key, key) == 0)
			return &table[i];
	return NULL;
}

/*
 * Begin the family of the STATS figure ${key}, as ${table} (${n} entries) names it, or, for a
 * figure this sessctl does not know (a newer sessd's), as ${prefix}${key} of type untyped. The
 * family's name goes to ${name}, its entry of ${table} to *${m} (NULL for an unknown figure).
 * Returns as prom_family; 1 also for a STATS name no metric name can hold.
 */
static int prom_figure_family(struct prom_out *po, const struct prom_metric *table, size_t n,
                              const char *prefix, const char *key, char name[PROM_NAME_MAX],
                              const struct prom_metric **m)
{
	char help[PROM_NAME_MAX + 64];

	if ((*m = prom_metric_of(table, n, key)) != NULL) {
		snprintf(name, PROM_NAME_MAX, "%s", (*m)->name);
		return prom_family(po, (*m)->name, (*m)->type, (*m)->help);
	}
	if (!prom_key_ok(key))
		return 1;
	snprintf(name, PROM_NAME_MAX, "%s%s", prefix, key);
	snprintf(help, sizeof(help), "sessd's STATS figure %s, which this sessctl does not know.",
	         key);
	return prom_family(po, name, "untyped", help);
}

/* Write the server's figures ${s}. Returns 0 or -1 (out of memory). */
static int prom_server_figures(struct prom_out *po, const struct sessd_stats *s)
{
	const size_t n = sizeof(prom_server_metrics) / sizeof(prom_server_metrics[0]);
	const struct prom_metric *m;
	char name[PROM_NAME_MAX];
	int rc;

	for (size_t i = 0; i < s->count; i++) {
		rc = prom_figure_family(po, prom_server_metrics, n, "sessd_", s->items[i].name,
		                        name, &m);
		if (rc == -1)
			return -1;
		if (rc == 0) {
			fprintf(po->f, "%s ", name);
			prom_write_value(po->f, s->items[i].value, m != NULL ? m->divisor : 1);
		}
	}
	return 0;
}

/* The value of the figure ${key} in ${s}; false when it has none. */
static bool prom_stat(const struct sessd_stats *s, const char *key, uint64_t *value)
{
	for (size_t i = 0; i < s->count; i++)
		if (strcmp(s->items[i].name, key) == 0) {
			*value = s->items[i].value;
			return true;
		}
	return false;
}

/*
 * Write the chosen namespaces' figures, one family for each figure the first one's STATS
 * names (every namespace of one server has the same), a sample for each namespace: the format
 * wants each family's samples together. Returns 0 or -1 (out of memory).
 */
static int prom_namespace_figures(struct prom_out *po)
{
	const size_t n = sizeof(prom_namespace_metrics) / sizeof(prom_namespace_metrics[0]);
	const struct sessd_stats *first;
	const struct prom_metric *m;
	const char *key;
	char name[PROM_NAME_MAX];
	uint64_t value;
	int rc;

	if (po->n_ns == 0)
		return 0;
	first = po->ns[0].stats;
	for (size_t k = 0; k < first->count; k++) {
		key = first->items[k].name;
		rc = prom_figure_family(po, prom_namespace_metrics, n, "sessd_namespace_", key,
		                        name, &m);
		if (rc == -1)
			return -1;
		if (rc == 1)
			continue;
		for (size_t i = 0; i < po->n_ns; i++) {
			if (!prom_stat(po->ns[i].stats, key, &value))
				continue;
			fprintf(po->f, "%s{namespace=\"", name);
			prom_write_label_value(po->f, po->ns[i].name, po->ns[i].name_len);
			fputs("\"} ", po->f);
			prom_write_value(po->f, value, m != NULL ? m->divisor : 1);
		}
	}
	return 0;
}

/* Whether ${e} goes before ${have} in the choice: more sessions, then byte order. */
static bool prom_namespace_before(const struct sessd_namespace *e,
                                  const struct prom_namespace *have)
{
	if (e->sessions != have->sessions)
		return e->sessions > have->sessions;
	return name_cmp(e->name, e->name_len, have->name, have->name_len) < 0;
}

/*
 * Keep ${e} among the PROM_NAMESPACES_MAX namespaces with the most sessions in the prom_out
 * ${arg}; -1: out of memory.
 */
static int prom_namespace_offer(void *arg, const struct sessd_namespace *e)
{
	struct prom_out *po = arg;
	size_t at = po->n_ns;
	char *copy;

	if (!prom_label_ok(e->name, e->name_len)) {
		po->ns_unlabeled++;
		return 0;
	}
	/* NAMESPACES may give a namespace twice when namespaces are made during the scan
	 * (PROTOCOL.md): two samples of one series and Prometheus, node_exporter's textfile
	 * collector too, refuses the whole exposition. The first is kept. */
	for (size_t i = 0; i < po->n_ns; i++)
		if (po->ns[i].name_len == e->name_len &&
		    memcmp(po->ns[i].name, e->name, e->name_len) == 0)
			return 0;
	while (at > 0 && prom_namespace_before(e, &po->ns[at - 1]))
		at--;
	if (at == PROM_NAMESPACES_MAX) {
		po->ns_left_out++;
		return 0;
	}
	if ((copy = malloc(e->name_len + 1)) == NULL)
		return -1;
	memcpy(copy, e->name, e->name_len + 1);
	if (po->n_ns == PROM_NAMESPACES_MAX) {
		free(po->ns[--po->n_ns].name);
		po->ns_left_out++;
	}
	memmove(po->ns + at + 1, po->ns + at, (po->n_ns - at) * sizeof(*po->ns));
	po->ns[at] = (struct prom_namespace){copy, e->name_len, e->sessions, NULL};
	po->n_ns++;
	return 0;
}

/*
 * Read every namespace (NAMESPACES) into po->ns, the PROM_NAMESPACES_MAX with the most
 * sessions, and each one's STATS. A sessd that keeps NAMESPACES for its admin secret, or is
 * older than it, sets po->ns_refused: its figures are then the server's alone. Returns 0, or
 * the exit status with the error said.
 */
static int prom_namespaces(struct sessd_client *c, struct prom_out *po)
{
	int rc;

	if ((po->ns = malloc(PROM_NAMESPACES_MAX * sizeof(*po->ns))) == NULL)
		rc = SESSD_ERR_NOMEM;
	else
		rc = namespaces_each(c, "stats", prom_namespace_offer, po);
	if (rc == SESSD_ERR_FORBIDDEN || rc == SESSD_ERR_UNKNOWN_OP) {
		po->ns_refused = true;
		return 0;
	}
	if (rc == SESSD_ERR_NOMEM) {
		fputs("sessctl: stats: out of memory\n", stderr);
		return EXIT_TROUBLE;
	}
	if (rc == -1)
		return EXIT_TROUBLE;
	if (rc != SESSD_OK)
		return report(c, rc, "stats");
	for (size_t i = 0; i < po->n_ns; i++) {
		(void)sessd_set_namespace_len(c, po->ns[i].name, po->ns[i].name_len);
		if ((rc = sessd_stats(c, 0, &po->ns[i].stats)) != SESSD_OK)
			return report(c, rc, "stats");
	}
	return 0;
}

/*
 * Write the ${len} bytes of ${text} to ${path} so that no reader ever sees a part of it, nor
 * anything but the old file or the whole new one: into a new file of its own beside it, synced,
 * then renamed over it. A unique name (PATH.tmp.XXXXXX), not one PATH.tmp: two runs at once
 * (the timer's and an operator's) would write into one file and rename a mix of both; nor does
 * it end in .prom, which node_exporter's textfile collector would read. The collector runs as
 * another user, so the new file gets what the shell's > leaves: a regular file it replaces
 * keeps its mode, and its owner and group as far as this user may give them (root: both; others:
 * a group of their own); else mode 0666 less the umask. Before, a replaced file got the umask's
 * mode too, and an operator's run by hand under umask 077 made sessd.prom unreadable to the
 * collector till the timer's next run. Anything at PATH but a regular file is refused (exit 2,
 * nothing written): a device or a link is not replaced, nor is a link followed (in a directory
 * another user may write in, it could name any file). So is, but for root, a file another user
 * owns: the rename cannot give the new file that owner (only root may give a file away), so it
 * changed hands, as mv's does, which > never does (it writes into the file, if it may); and that
 * user's own runs (a timer's or cron job's) could then no longer replace it in a directory with the
 * sticky bit, or write into it.
 * Returns 0, or EXIT_TROUBLE with the error said; PATH is then as it was, and no new file is
 * left. SIGTERM, SIGINT, SIGHUP and SIGQUIT wait while the new file exists: the unit's
 * TimeoutStartSec= stops a run with SIGTERM, which in a slow fsync left PATH.tmp.XXXXXX behind
 * for good, one more at each such stop. (A SIGKILL or a crash midway still leaves it.)
 */
static int prom_write_file(const char *path, const char *text, size_t len)
{
	size_t path_len = strlen(path), done = 0;
	char *tmp = malloc(path_len + sizeof(".tmp.XXXXXX"));
	const char *step;
	sigset_t stops, was;
	struct stat old, made;
	bool replacing;
	mode_t mode;
	ssize_t n;
	int fd, err;

	/* Anything but a regular file there would be replaced by one: root's run with --output
	 * /dev/null or /dev/stdout (a link) put a file of figures in place of the device, for
	 * every program on the machine till the next boot. A FIFO or socket, a reader's, too. */
	replacing = lstat(path, &old) == 0;
	if (replacing && !S_ISREG(old.st_mode)) {
		say("--output: %s is not a regular file (%s): --output puts a new file in its "
		    "place; give the path of a file, or leave --output out for standard output",
		    path,
		    S_ISLNK(old.st_mode)   ? "a symbolic link"
		    : S_ISDIR(old.st_mode) ? "a directory"
		                           : "a device, FIFO or socket");
		free(tmp);
		return EXIT_TROUBLE;
	}
	if (replacing && geteuid() != 0 && old.st_uid != geteuid()) {
		say("--output: %s is another user's (uid %lu), and a file put in its place would "
		    "be "
		    "yours (uid %lu): run sessctl as its owner (the timer's or job's user that "
		    "writes it), or remove it first; it is left as it was",
		    path, (unsigned long)old.st_uid, (unsigned long)geteuid());
		free(tmp);
		return EXIT_TROUBLE;
	}
	if (tmp == NULL) {
		fputs("sessctl: stats: out of memory\n", stderr);
		return EXIT_TROUBLE;
	}
	memcpy(tmp, path, path_len);
	memcpy(tmp + path_len, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGHUP);
	sigaddset(&stops, SIGQUIT);
	sigprocmask(SIG_BLOCK, &stops, &was);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		say("--output: cannot create a file beside %s: %s", path, strerror(errno));
		sigprocmask(SIG_SETMASK, &was, NULL);
		free(tmp);
		return EXIT_TROUBLE;
	}
	if (replacing) {
		mode = old.st_mode & 0777;
		if (fstat(fd, &made) == 0 &&
		    (made.st_uid != old.st_uid || made.st_gid != old.st_gid) &&
		    fchown(fd, geteuid() == 0 ? old.st_uid : (uid_t)-1, old.st_gid) == -1) {
			/* Best effort: a user may not give a file away, nor a group not its
			 * own. (The unit's root has no CAP_CHOWN, but the file it replaces is
			 * its own, so it never gets here.) */
		}
	} else {
		mode = umask(0);
		umask(mode);
		mode = 0666 & ~mode;
	}
	step = "setting the mode of";
	if (fchmod(fd, mode) == -1)
		goto fail_unlink;
	step = "writing";
	while (done < len) {
		n = write(fd, text + done, len - done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail_unlink;
		done += (size_t)n;
	}
	/* Synced before the rename: a crash after it must not leave PATH empty or cut short. The
	 * directory is not synced: a figure lost to a power cut is written again within seconds
	 * of the next run, and a fsync of it each 15 s would compete with sessd's own. */
	step = "syncing";
	if (fsync(fd) == -1)
		goto fail_unlink;
	err = close(fd);
	fd = -1;
	if (err == -1)
		goto fail_unlink;
	step = "renaming";
	if (rename(tmp, path) == -1)
		goto fail_unlink;
	/* A stop that came meanwhile ends sessctl here, the new file in place. */
	sigprocmask(SIG_SETMASK, &was, NULL);
	free(tmp);
	return EXIT_SUCCESS;

fail_unlink:
	err = errno;
	if (fd != -1)
		close(fd);
	unlink(tmp);
	sigprocmask(SIG_SETMASK, &was, NULL);
	say("--output: %s %s: %s (%s is as it was)", step,
	    strcmp(step, "renaming") == 0 ? "the new file over it" : "a new file for it",
	    strerror(err), path);
	free(tmp);
	return EXIT_TROUBLE;
}

/* Deliver the exposition ${text} (${len} bytes) to o->output, else to standard output. */
static int prom_deliver(const struct opts *o, const char *text, size_t len)
{
	if (o->output != NULL)
		return prom_write_file(o->output, text, len);
	/* An error is found by main's fflush, and said there. */
	fwrite(text, 1, len, stdout);
	return EXIT_SUCCESS;
}

/*
 * sessd did not answer (${status}, the exit status its error was said with): deliver an
 * exposition that says so, sessd_up 0, so that a scrape, or the textfile collector reading the
 * file a run before wrote while sessd was up, shows the daemon down rather than the last
 * figures it gave. Returns ${status}, or EXIT_TROUBLE when even that could not be delivered.
 */
static int prom_down(const struct opts *o, int status)
{
	static const char down[] = "sessd_up 0\n";
	char text[sizeof(prom_up_help) + sizeof(down)];

	memcpy(text, prom_up_help, sizeof(prom_up_help) - 1);
	memcpy(text + sizeof(prom_up_help) - 1, down, sizeof(down));
	if (prom_deliver(o, text, strlen(text)) != EXIT_SUCCESS)
		return EXIT_TROUBLE;
	return status;
}

static int run_stats_prometheus(struct sessd_client *c, const struct opts *o)
{
	struct prom_out po = {0};
	struct sessd_stats *s = NULL;
	char server_id[SERVER_ID_CHARS + 1];
	int rc, status;

	if ((rc = sessd_stats(c, 1, &s)) != SESSD_OK)
		return prom_down(o, report(c, rc, "stats"));
	snprintf(server_id, sizeof(server_id), "%s", sessd_server_id(c));
	if ((status = prom_namespaces(c, &po)) != 0)
		goto down;
	/* libsessd reconnects by itself: figures of two daemons, one before a restart and one
	 * after, are no one's. */
	if (strcmp(sessd_server_id(c), server_id) != 0) {
		fputs("sessctl: stats: sessd restarted while its figures were read\n", stderr);
		status = EXIT_UNREACHED;
		goto down;
	}
	if ((po.f = open_memstream(&po.text, &po.len)) == NULL)
		goto fail_nomem;
	/* Taken, so that a STATS figure "up" (a newer or a hostile server's) is left out rather
	 * than written as a second sessd_up family, which Prometheus refuses. */
	if (prom_name_take(&po, "sessd_up") == -1)
		goto fail_nomem;
	fputs(prom_up_help, po.f);
	fputs("sessd_up 1\n", po.f);
	if (prom_server_figures(&po, s) == -1)
		goto fail_nomem;
	/* Comments (lines of '#' and a space): Prometheus reads past them. */
	if (po.ns_refused)
		fputs(
		    "# No figures per namespace: this sessd keeps NAMESPACES for its admin secret "
		    "(--admin-auth-file), or is older than it.\n",
		    po.f);
	if (po.ns_left_out > 0)
		fprintf(po.f,
		        "# Figures per namespace for the %d with the most sessions; %" PRIu64
		        " more left out.\n",
		        PROM_NAMESPACES_MAX, po.ns_left_out);
	if (po.ns_unlabeled > 0)
		fprintf(po.f,
		        "# Namespaces left out, their names not UTF-8 or holding a NUL, which no "
		        "label value may: %" PRIu64 ".\n",
		        po.ns_unlabeled);
	if (prom_namespace_figures(&po) == -1)
		goto fail_nomem;
	/* fclose, not fflush: only then is po.text all there (and a failure to grow it said). */
	rc = fclose(po.f);
	po.f = NULL;
	if (rc == EOF)
		goto fail_nomem;
	status = prom_deliver(o, po.text, po.len);
	prom_out_finish(&po);
	sessd_stats_free(s);
	return status;

fail_nomem:
	fputs("sessctl: stats: out of memory\n", stderr);
	status = EXIT_TROUBLE;
down:
	prom_out_finish(&po);
	sessd_stats_free(s);
	return prom_down(o, status);
}

/*
 * The namespace is looked for before the CLEAR, which removes it: "0 removed" must not
 * read as "all sessions are gone" when it was never there (a mistyped --namespace).
 */
static int run_clear(struct sessd_client *c, const struct opts *o)
{
	uint64_t removed = 0;
	struct ns_survey sv;
	bool known = ns_survey(c, o, "clear", &sv) == 0;
	int rc = sessd_clear(c, &removed);

	if (rc != SESSD_OK) {
		ns_survey_finish(&sv);
		return report(c, rc, "clear");
	}
	if (o->json)
		printf("{\"removed\":%" PRIu64 "}\n", removed);
	else
		printf("%" PRIu64 "\n", removed);
	/* One made after the look has sessions to remove: it was there to clear. */
	if (known && !sv.found && removed == 0) {
		fflush(stdout);
		warn_no_namespace(o, &sv);
		ns_survey_finish(&sv);
		return EXIT_NOT_FOUND;
	}
	ns_survey_finish(&sv);
	return EXIT_SUCCESS;
}

/*
 * find: print the ids of the sessions whose data holds the bytes of TEXT, reading every
 * session of the namespace (LIST pages, then GETs of FIND_BATCH sessions at a time). A
 * session that has gone, or holds flash messages only, between the two is passed over.
 */
static int find_in_page(struct sessd_client *c, const struct opts *o, struct sessd_batch *b,
                        const struct sessd_list *page, size_t *found)
{
	const char *text = o->args[1];
	size_t text_len = strlen(text), len;
	const void *data;
	int rc;

	for (size_t from = 0; from < page->count; from += FIND_BATCH) {
		size_t n = page->count - from < FIND_BATCH ? page->count - from : FIND_BATCH;

		sessd_batch_reset(b);
		for (size_t i = 0; i < n; i++)
			if (sessd_batch_get(b, page->items[from + i].id,
			                    page->items[from + i].id_len) == -1)
				return report(c, SESSD_ERR_NOMEM, "find");
		rc = sessd_batch_run(b);
		if (rc != SESSD_OK)
			return report(c, rc, "find");
		for (size_t i = 0; i < n; i++) {
			const struct sessd_list_entry *e = &page->items[from + i];

			rc = sessd_batch_status(b, i);
			if (rc == SESSD_NOT_FOUND)
				continue;
			if (rc != SESSD_OK)
				return report(c, rc, "find");
			data = sessd_batch_data(b, i, &len);
			if (data == NULL || memmem(data, len, text, text_len) == NULL)
				continue;
			if (o->json) {
				fputs(*found == 0 ? "" : ",", stdout);
				json_write_string(stdout, e->id, e->id_len);
			} else {
				write_id(stdout, e->id, e->id_len);
				fputc('\n', stdout);
			}
			(*found)++;
		}
	}
	return EXIT_SUCCESS;
}

static int run_find(struct sessd_client *c, const struct opts *o)
{
	struct sessd_batch *b = sessd_batch_new(c);
	struct sessd_list *page;
	char first_id[SERVER_ID_CHARS + 1];
	uint64_t cursor = 0, next;
	size_t found = 0, scanned = 0;
	int rc, status = EXIT_SUCCESS;

	if (b == NULL) {
		fputs("sessctl: find: out of memory\n", stderr);
		return EXIT_TROUBLE;
	}
	if (o->json)
		fputc('[', stdout);
	do {
		rc = sessd_list(c, cursor, 1000, &page);
		if (rc != SESSD_OK) {
			status = report(c, rc, "find");
			break;
		}
		if (scan_cut(c, cursor, first_id, "find")) {
			sessd_list_free(page);
			status = EXIT_UNREACHED;
			break;
		}
		scanned += page->count;
		status = find_in_page(c, o, b, page, &found);
		next = page->next_cursor;
		sessd_list_free(page);
		if (status != EXIT_SUCCESS)
			break;
		if (next != 0 && next == cursor) {
			fprintf(stderr,
			        "sessctl: find: the server returned cursor %" PRIu64
			        " again; stopping\n",
			        next);
			status = EXIT_TROUBLE;
			break;
		}
		cursor = next;
	} while (cursor != 0);
	sessd_batch_free(b);
	if (o->json)
		fputs("]\n", stdout);
	if (status != EXIT_SUCCESS)
		return status;
	if (found > 0)
		return EXIT_SUCCESS;
	fflush(stdout);
	if (scanned == 0 && namespace_missing(c, o, "find"))
		return EXIT_NOT_FOUND;
	/* As grep: nothing matched is status 1, "no such session". */
	fprintf(stderr, "sessctl: find: no session's data holds that text (%zu sessions read)\n",
	        scanned);
	return EXIT_NOT_FOUND;
}

static const struct command commands[] = {
    {"ping", 0, 0, false, false, false, false, false, false, run_ping},
    {"new-id", 0, 0, false, false, false, false, false, false, run_new_id},
    {"set", 1, 2, true, false, false, false, false, false, run_set},
    {"set-if", 2, 3, true, false, false, false, false, false, run_set_if},
    {"get", 1, 1, false, false, false, true, false, false, run_get},
    {"touch", 1, 1, true, true, false, false, false, false, run_touch},
    {"destroy", 1, 1, false, false, false, false, false, false, run_destroy},
    {"destroy-if-flash", 3, 3, false, false, false, false, false, false, run_destroy_if_flash},
    {"ttl", 1, 1, false, false, false, false, false, false, run_ttl},
    {"flash-push", 3, 3, true, false, false, false, true, false, run_flash_push},
    {"flash-pop", 1, 2, false, false, false, false, false, false, run_flash_pop},
    {"count", 0, 0, false, false, false, false, false, true, run_count},
    {"list", 0, 0, false, false, false, false, false, false, run_list},
    {"find", 1, 1, false, false, false, false, false, false, run_find},
    {"namespaces", 0, 0, false, false, false, false, false, false, run_namespaces},
    {"stats", 0, 0, false, false, false, false, false, false, run_stats},
    {"clear", 0, 0, false, false, true, false, false, true, run_clear},
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Whether ${cmd} works on one session, named by its first argument (or --id-file, --id-env). */
static bool command_takes_id(const struct command *cmd)
{
	return cmd->min_args > 0 && cmd->run != run_find;
}

/* redis-cli's names for what sessctl's commands do: sessd's users come from Redis, and type
 * them first. */
static const struct {
	const char *redis, *command;
} redis_commands[] = {
    {"del", "destroy"},    {"unlink", "destroy"}, {"keys", "list"},     {"scan", "list"},
    {"expire", "touch"},   {"pexpire", "touch"},  {"pttl", "ttl"},      {"exists", "ttl"},
    {"dbsize", "count"},   {"info", "stats"},     {"flushdb", "clear"}, {"flushall", "clear"},
    {"delete", "destroy"}, {"rm", "destroy"},     {"ls", "list"},
};

/*
 * The command ${name}, which is none, was probably meant as: the one redis-cli calls so, or
 * the nearest (typo.h); NULL when none is near.
 */
static const char *command_meant(const char *name)
{
	struct typo_search search;

	if (!typo_search_init(&search, name, strlen(name)))
		return NULL;
	for (size_t i = 0; i < sizeof(redis_commands) / sizeof(redis_commands[0]); i++)
		if (strcmp(redis_commands[i].redis, search.lower) == 0)
			return redis_commands[i].command;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		typo_search_offer(&search, commands[i].name);
	return search.best;
}

/*
 * Whether the next argument is one the command already named in ${o} takes as a positional
 * argument (an id, a tag, data, a type, a message or find's text), so that one starting with
 * '-' that is no option is that argument: ids are base64url, and one in 64 starts with '-'
 * (`find ... | xargs -n1 sessctl destroy` must not trip over it).
 */
static bool expects_positional(const struct opts *o)
{
	const struct command *cmd;

	if (o->nargs == 0 || (cmd = find_command(o->args[0])) == NULL)
		return false;
	/* An id read from elsewhere takes the first place (id_from_elsewhere). */
	if ((o->id_file != NULL || o->id_env) && command_takes_id(cmd))
		return o->nargs < cmd->max_args;
	return o->nargs - 1 < cmd->max_args;
}

/*
 * Whether ${arg}, no option sessctl knows, still reads as a mistyped one rather than as an
 * argument: it starts with "--", and is short or holds '='. A session id that starts with "--"
 * (one in 4096) is base64url, 20 characters or more, without '=', and is taken as an id; data
 * such as "--jsn" is an error, not stored, unless it comes after "--".
 */
static bool looks_like_option(const char *arg)
{
	return arg[1] == '-' && (strlen(arg) < 20 || strchr(arg, '=') != NULL);
}

/* Add ${arg} (borrowed from argv) to the positional arguments; returns 0, or -1 with the
 * usage error printed. */
static int add_positional(struct opts *o, const char *arg)
{
	if (o->nargs == MAX_ARGS) {
		usage_error("too many arguments");
		return -1;
	}
	o->args[o->nargs++] = arg;
	return 0;
}

/* A decimal in [min, max]; returns 0 or -1. */
static int parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Whether ${arg} is --${name} or --${name}=...; *${value} gets the part after '='. */
static bool option_is(const char *arg, const char *name, const char **value)
{
	size_t n = strlen(name);

	if (strncmp(arg + 2, name, n) != 0)
		return false;
	if (arg[2 + n] == '\0') {
		*value = NULL;
		return true;
	}
	if (arg[2 + n] == '=') {
		*value = arg + 3 + n;
		return true;
	}
	return false;
}

enum parse_result { PARSE_RUN, PARSE_HELP, PARSE_VERSION, PARSE_ERROR };

/* Take the value of a valued option, from after '=' or the next argument. */
static const char *option_value(int argc, char **argv, int *i, const char *inline_value)
{
	if (inline_value != NULL)
		return inline_value;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static enum parse_result parse_args(int argc, char **argv, struct opts *o)
{
	const char *v, *arg;
	char shown[SHOWN_ARG_SIZE];
	uint64_t n;
	bool options_done = false;

	for (int i = 1; i < argc; i++) {
		arg = argv[i];
		if (options_done || arg[0] != '-' || arg[1] == '\0') {
			if (add_positional(o, arg) == -1)
				return PARSE_ERROR;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			options_done = true;
		} else if (strcmp(arg, "-h") == 0 || option_is(arg, "help", &v)) {
			return PARSE_HELP;
		} else if (strcmp(arg, "-V") == 0 || option_is(arg, "version", &v)) {
			return PARSE_VERSION;
		} else if (option_is(arg, "json", &v) && v == NULL) {
			o->json = true;
		} else if (option_is(arg, "yes", &v) && v == NULL) {
			o->yes = true;
		} else if (option_is(arg, "tag", &v) && v == NULL) {
			o->tag = true;
		} else if (option_is(arg, "existing", &v) && v == NULL) {
			o->existing = true;
		} else if (option_is(arg, "prometheus", &v) && v == NULL) {
			o->prometheus = true;
		} else if (option_is(arg, "output", &v)) {
			if ((o->output = option_value(argc, argv, &i, v)) == NULL)
				goto missing;
			if (o->output[0] == '\0') {
				usage_error("--output: no file named");
				return PARSE_ERROR;
			}
		} else if (option_is(arg, "plain-auth", &v) && v == NULL) {
			o->plain_auth = true;
		} else if (option_is(arg, "id-env", &v) && v == NULL) {
			o->id_env = true;
		} else if (option_is(arg, "id-file", &v)) {
			if (o->id_file != NULL) {
				usage_error("--id-file given twice");
				return PARSE_ERROR;
			}
			if ((o->id_file = option_value(argc, argv, &i, v)) == NULL)
				goto missing;
			if (o->id_file[0] == '\0') {
				usage_error("--id-file: no file named");
				return PARSE_ERROR;
			}
		} else if (option_is(arg, "connect", &v)) {
			if ((o->url = option_value(argc, argv, &i, v)) == NULL)
				goto missing;
		} else if (option_is(arg, "auth-file", &v)) {
			if ((o->auth_file = option_value(argc, argv, &i, v)) == NULL)
				goto missing;
			if (o->auth_file[0] == '\0') {
				usage_error("--auth-file: no file named");
				return PARSE_ERROR;
			}
		} else if (option_is(arg, "namespace", &v)) {
			if ((v = option_value(argc, argv, &i, v)) == NULL)
				goto missing;
			/* As namespaces prints the names: \xNN is a byte. */
			n = unescape_arg(v, o->ns_buf, sizeof(o->ns_buf));
			if (n < 1 || n > sizeof(o->ns_buf)) {
				usage_error("--namespace: a namespace has 1 to 64 bytes");
				return PARSE_ERROR;
			}
			o->ns = o->ns_buf;
			o->ns_len = n;
		} else if (option_is(arg, "timeout", &v)) {
			if ((v = option_value(argc, argv, &i, v)) == NULL)
				goto missing;
			if (parse_number(v, 1, INT_MAX, &n) == -1) {
				/* A value out of place may be the id (--timeout ID): see shown_arg.
				 */
				shown_arg(v, shown);
				usage_error(
				    "--timeout: '%s' is not a number of milliseconds from 1 "
				    "to %d",
				    shown, INT_MAX);
				return PARSE_ERROR;
			}
			o->timeout_ms = (int)n;
		} else if (option_is(arg, "ttl", &v)) {
			if ((v = option_value(argc, argv, &i, v)) == NULL)
				goto missing;
			if (parse_number(v, 1, MAX_TTL_S, &o->ttl_s) == -1) {
				shown_arg(v, shown);
				usage_error("--ttl: '%s' is not a number of seconds from 1 to 10 "
				            "years",
				            shown);
				return PARSE_ERROR;
			}
			o->have_ttl = true;
		} else if (expects_positional(o) && !looks_like_option(arg)) {
			if (add_positional(o, arg) == -1)
				return PARSE_ERROR;
		} else {
			shown_arg(arg, shown);
			usage_error("unknown option '%s'", shown);
			return PARSE_ERROR;
		}
	}
	return PARSE_RUN;

missing:
	usage_error("%s needs a value", arg);
	return PARSE_ERROR;
}

static bool is_base64_digit(unsigned char ch)
{
	return isalnum(ch) || ch == '+' || ch == '/';
}

/*
 * Whether ${arg} is express-session's signed cookie: "s:" ID "." SIGNATURE, or the same
 * URL-encoded as the Cookie header carries it ("s%3A" ...), where SIGNATURE is
 * COOKIE_SIGNATURE_LEN base64 digits and ID 1..MAX_ID_BYTES visible ASCII bytes. Then the ID
 * goes to ${id} with a NUL. Anything else, an id that merely starts with "s:" included, is
 * not one. As it is copied from a Cookie header or a browser's cookie list, it may come as
 * NAME=VALUE ("connect.sid=s%3A..."), in double quotes, or with a ';' after it.
 */
static bool one_cookie_session_id(const char *arg, char id[MAX_ID_BYTES + 1])
{
	char plain[2 * MAX_ID_BYTES + COOKIE_SIGNATURE_LEN + 2], value[sizeof(plain) * 3];
	size_t n = 0, id_len, len;
	const char *p, *dot, *eq = strchr(arg, '=');
	int hi, lo;

	if (eq != NULL &&
	    (eq[1] == '"' || strncmp(eq + 1, "s:", 2) == 0 || strncasecmp(eq + 1, "s%3A", 4) == 0))
		arg = eq + 1;
	len = strlen(arg);
	if (len > 0 && arg[len - 1] == ';')
		len--;
	if (len >= 2 && arg[0] == '"' && arg[len - 1] == '"') {
		arg++;
		len -= 2;
	}
	if (len >= sizeof(value))
		return false;
	memcpy(value, arg, len);
	value[len] = '\0';
	arg = value;
	if (strncmp(arg, "s:", 2) == 0) {
		p = arg + 2;
		if (strlen(p) >= sizeof(plain))
			return false;
		n = strlen(p);
		memcpy(plain, p, n);
	} else if (strncmp(arg, "s%3A", 4) == 0 || strncmp(arg, "s%3a", 4) == 0) {
		for (p = arg + 4; *p != '\0'; p++) {
			if (n == sizeof(plain) - 1)
				return false;
			if (*p != '%') {
				plain[n++] = *p;
				continue;
			}
			if ((hi = hex_digit(p[1])) == -1 || (lo = hex_digit(p[2])) == -1)
				return false;
			plain[n++] = (char)(hi << 4 | lo);
			p += 2;
		}
	} else {
		return false;
	}
	plain[n] = '\0';
	dot = memrchr(plain, '.', n);
	if (dot == NULL || strlen(dot + 1) != COOKIE_SIGNATURE_LEN)
		return false;
	for (p = dot + 1; *p != '\0'; p++)
		if (!is_base64_digit((unsigned char)*p))
			return false;
	id_len = (size_t)(dot - plain);
	if (id_len < 1 || id_len > MAX_ID_BYTES)
		return false;
	for (size_t i = 0; i < id_len; i++)
		if (plain[i] < 0x21 || plain[i] > 0x7e)
			return false;
	memcpy(id, plain, id_len);
	id[id_len] = '\0';
	return true;
}

/*
 * The session id in ${arg} when it holds express-session's signed cookie (see
 * one_cookie_session_id), alone or as one of the cookies of a Cookie header pasted whole
 * ("theme=dark; connect.sid=s%3A...; lang=en"): returns 1 with the id in ${id}; 0 when no
 * cookie in it is one (${arg} is then an id); -1 when it holds signed
 * cookies of different sessions (two apps' cookies: which one is meant cannot be told).
 * A lone cookie with a ';' after it is one piece of such a header.
 */
static int cookie_session_id(const char *arg, char id[MAX_ID_BYTES + 1])
{
	/* Longer than any cookie one_cookie_session_id takes: such a piece is not one. */
	char piece[4 * (2 * MAX_ID_BYTES + COOKIE_SIGNATURE_LEN)], found[MAX_ID_BYTES + 1];
	const char *at = arg, *end;
	size_t len;
	int count = 0;

	/* A lone cookie ends at its ';' too, so it is the one piece. */
	while (*(at += strspn(at, " ;")) != '\0') {
		end = strchr(at, ';');
		len = end != NULL ? (size_t)(end - at) : strlen(at);
		if (len < sizeof(piece)) {
			memcpy(piece, at, len);
			while (len > 0 && piece[len - 1] == ' ')
				len--;
			piece[len] = '\0';
			if (one_cookie_session_id(piece, found)) {
				if (count > 0 && strcmp(found, id) != 0)
					return -1;
				memcpy(id, found, strlen(found) + 1);
				count++;
			}
		}
		at += len;
	}
	return count > 0 ? 1 : 0;
}

/* Check the command's arguments and options; returns 0 or an exit status. */
static int check_command(const struct command *cmd, const struct opts *o)
{
	char shown[SHOWN_ARG_SIZE];
	uint8_t tag[SESSD_TAG_BYTES];
	int given = o->nargs - 1;

	if (given < cmd->min_args || given > cmd->max_args)
		return usage_error("%s: wrong number of arguments", cmd->name);
	if (o->have_ttl && !cmd->takes_ttl)
		return usage_error("%s does not take --ttl", cmd->name);
	if (cmd->needs_ttl && !o->have_ttl)
		return usage_error("%s needs --ttl SECONDS", cmd->name);
	if (o->yes && !cmd->takes_yes)
		return usage_error("%s does not take --yes", cmd->name);
	if (o->tag && !cmd->takes_tag)
		return usage_error("%s does not take --tag", cmd->name);
	if (o->existing && !cmd->takes_existing)
		return usage_error("%s does not take --existing", cmd->name);
	if (o->prometheus && cmd->run != run_stats)
		return usage_error("%s does not take --prometheus (stats does)", cmd->name);
	if (o->prometheus && o->json)
		return usage_error("stats: --prometheus and --json are two formats; give one");
	/* Every namespace's figures are in it already, each with its label. */
	if (o->prometheus && o->ns != NULL)
		return usage_error("stats --prometheus gives every namespace's figures (the "
		                   "namespace label): drop --namespace");
	if (o->output != NULL && !o->prometheus)
		return usage_error("--output is for stats --prometheus");
	if (cmd->takes_yes && !o->yes) {
		fprintf(stderr,
		        "sessctl: %s removes every session of the namespace; "
		        "add --yes to do it\n",
		        cmd->name);
		return EXIT_TROUBLE;
	}
	if (cmd->run == run_find && o->args[1][0] == '\0')
		return usage_error("find: TEXT is empty (list shows every session)");
	/* Every other command with arguments takes the id first. */
	if (command_takes_id(cmd) && (o->id_len < 1 || o->id_len > MAX_ID_BYTES))
		return usage_error("%s: an id has 1 to %d bytes", cmd->name, MAX_ID_BYTES);
	/* set-if ID TAG given as set-if TAG ID would show the id here: see shown_arg. */
	if (cmd->run == run_set_if && tag_parse(o->args[2], tag) == -1) {
		shown_arg(o->args[2], shown);
		return usage_error("%s: '%s' is not a tag: %d hex digits, as get --tag prints",
		                   cmd->name, shown, 2 * SESSD_TAG_BYTES);
	}
	return 0;
}

/*
 * A signal that came while the id was read from a terminal with its echo off: the read returns
 * EINTR, and the echo is put back before sessctl dies of it.
 */
static volatile sig_atomic_t id_prompt_signal;

static void id_prompt_on_signal(int sig)
{
	id_prompt_signal = sig;
}

/*
 * Read one line from the terminal ${fd} into ${out} (${cap} bytes), after a prompt on stderr,
 * with the terminal's echo off: a pasted id is then neither on the screen nor in its
 * scrollback. Ctrl-C, a hangup or a kill puts the echo back and ends sessctl by that signal,
 * so the shell is not left typing blind. Returns the bytes read (the newline not kept), or -1
 * with errno set (EFBIG: more than ${cap} bytes before the newline).
 */
static ssize_t read_terminal_line(int fd, char *out, size_t cap)
{
	static const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	struct sigaction caught = {.sa_handler = id_prompt_on_signal}, was[4];
	struct termios saved, quiet;
	bool echo_off = false;
	size_t n = 0;
	ssize_t got = 1;
	char ch;
	int err = 0;

	fputs("sessctl: the session id (not shown as you paste or type it), then Enter: ", stderr);
	fflush(stderr);
	/* No SA_RESTART: the read must return on the signal. */
	for (size_t i = 0; i < 4; i++)
		sigaction(signals[i], &caught, &was[i]);
	if (tcgetattr(fd, &saved) == 0) {
		quiet = saved;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		echo_off = tcsetattr(fd, TCSANOW, &quiet) == 0;
	}
	while (id_prompt_signal == 0 && (got = read(fd, &ch, 1)) != 0) {
		if (got == -1) {
			if (errno == EINTR)
				continue;
			err = errno;
			break;
		}
		if (ch == '\n')
			break;
		if (n == cap) {
			err = EFBIG;
			continue; /* to the end of the line, which is not left for the shell */
		}
		out[n++] = ch;
	}
	if (echo_off)
		tcsetattr(fd, TCSANOW, &saved);
	/* ECHONL showed the Enter; at Ctrl-D or a signal the next line starts here. */
	if (got == 0 || id_prompt_signal != 0)
		fputc('\n', stderr);
	for (size_t i = 0; i < 4; i++)
		sigaction(signals[i], &was[i], NULL);
	if (id_prompt_signal != 0)
		raise(id_prompt_signal);
	errno = err;
	return err != 0 ? -1 : (ssize_t)n;
}

/*
 * Read all of ${fd} (a file or a pipe) into ${out}, at most ${cap} bytes. Returns the bytes
 * read, or -1 with errno set; *${more} tells whether more was left unread.
 */
static ssize_t read_bounded(int fd, char *out, size_t cap, bool *more)
{
	size_t n = 0;
	ssize_t got;
	char extra;

	*more = false;
	while (n < cap && (got = read(fd, out + n, cap - n)) != 0) {
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1)
			return -1;
		n += (size_t)got;
	}
	if (n == cap) {
		while ((got = read(fd, &extra, 1)) == -1 && errno == EINTR)
			;
		*more = got > 0;
	}
	return (ssize_t)n;
}

/*
 * Take the id from the first line of ${text} (${len} bytes; ${more}: more was there, unread)
 * into o->id_text, from ${source} (for messages): up to a newline (a CR before it dropped) or
 * a tab, so that a line of list (the id, a tab, the ttl) or of find gives its id. A second
 * line that holds anything is refused: `find ... | sessctl destroy --id-file -` would
 * otherwise destroy the first session only and seem to have done them all. Returns 0, or the
 * exit status with the error printed (never the text itself: it may be an id).
 */
static int id_take_line(struct opts *o, const char *text, size_t len, bool more, const char *source)
{
	const char *nl = memchr(text, '\n', len), *tab;
	size_t line = nl != NULL ? (size_t)(nl - text) : len;

	if (nl != NULL) {
		for (const char *p = nl; p < text + len; p++)
			if (*p != '\n' && *p != '\r')
				more = true;
	}
	if (more && nl != NULL) {
		say("%s holds more than one line; sessctl takes one id (for each id of list or "
		    "find: ... | while IFS= read -r id; do " ID_ENV
		    "=$id sessctl ... --id-env; done)",
		    source);
		return EXIT_TROUBLE;
	}
	if (more || line > ID_TEXT_MAX) {
		say("%s is longer than an id or a Cookie header", source);
		return EXIT_TROUBLE;
	}
	if (line > 0 && text[line - 1] == '\r')
		line--;
	if ((tab = memchr(text, '\t', line)) != NULL)
		line = (size_t)(tab - text);
	if (memchr(text, '\0', line) != NULL) {
		say_about(source, " holds a NUL byte: write it as \\x00, as list prints it");
		return EXIT_TROUBLE;
	}
	if (line == 0) {
		say("%s holds no id", source);
		return EXIT_TROUBLE;
	}
	/* An editor's or an `echo "$id "`'s space, or Notepad's byte order mark, is no part of
	 * an id anyone meant: taken as one, a destroy found "no such session" (exit 1, as if
	 * the visitor were logged out already) and a set or flash-push made a new session
	 * under the wrong id, saying nothing. */
	if (text[0] == ' ' || text[line - 1] == ' ') {
		say_about(source, " holds a space at the start or the end of the id; an id with "
		                  "one is written \\x20 there");
		return EXIT_TROUBLE;
	}
	if (line >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		say("%s starts with a UTF-8 byte order mark (an editor's), which is no part of an "
		    "id: save the file without it",
		    source);
		return EXIT_TROUBLE;
	}
	memcpy(o->id_text, text, line);
	o->id_text[line] = '\0';
	return 0;
}

/*
 * --id-file FILE or --id-env: read the id the command works on, and put it first among its
 * arguments (o->args[1]), where the argument form has it. FILE "-" is standard input, refused
 * to set and set-if when they read their DATA from there; on a terminal the id is asked for
 * with the echo off. Returns 0, or the exit status with the error printed.
 */
static int id_from_elsewhere(const struct command *cmd, struct opts *o)
{
	char *text = NULL, source[PATH_MAX + 16];
	bool more = false, from_stdin, reads_data;
	struct stat file_st, stdin_st;
	ssize_t got;
	int fd = -1, status;

	if (o->id_file == NULL && !o->id_env)
		return 0;
	if (o->id_file != NULL && o->id_env)
		return usage_error("--id-file and --id-env name the id twice: give one");
	if (!command_takes_id(cmd))
		return usage_error("%s takes no id (--id-file, --id-env)", cmd->name);
	if (o->nargs == MAX_ARGS)
		return usage_error("too many arguments");
	memmove(o->args + 2, o->args + 1, (size_t)(o->nargs - 1) * sizeof(o->args[0]));
	o->args[1] = o->id_text;
	o->nargs++;
	if (o->id_env) {
		const char *env = getenv(ID_ENV);

		if (env == NULL || env[0] == '\0')
			return usage_error("--id-env: $" ID_ENV " is not set");
		return id_take_line(o, env, strlen(env), false, "$" ID_ENV);
	}
	from_stdin = strcmp(o->id_file, "-") == 0;
	reads_data =
	    (cmd->run == run_set && o->nargs <= 2) || (cmd->run == run_set_if && o->nargs <= 3);
	if (from_stdin && reads_data)
		return usage_error("--id-file -: %s reads its DATA from standard input; give the "
		                   "id in a file, as --id-file <(printf '%%s' \"$id\"), or with "
		                   "--id-env",
		                   cmd->name);
	if (from_stdin)
		snprintf(source, sizeof(source), "standard input (--id-file -)");
	else
		snprintf(source, sizeof(source), "--id-file %s", o->id_file);
	fd = from_stdin ? STDIN_FILENO : open(o->id_file, O_RDONLY | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT && strchr(o->id_file, '/') == NULL) {
		char shown[SHOWN_ARG_SIZE];

		/* No such file and no directory in it: it may be the id itself, given in the
		 * file's place (see shown_arg). */
		shown_arg(o->id_file, shown);
		say("--id-file %s: no such file (the file that holds the id goes there)", shown);
		return EXIT_TROUBLE;
	}
	if (fd == -1) {
		say("%s: %s", source, strerror(errno));
		return EXIT_TROUBLE;
	}
	/* /dev/stdin, /dev/fd/0, /proc/self/fd/0: "-" by another name. A file there was read
	 * twice, its first line taken as the id and then the whole file stored as its data (the
	 * session's data was replaced by its own id); a pipe gave the data to the id. */
	if (!from_stdin && reads_data && fstat(fd, &file_st) == 0 &&
	    fstat(STDIN_FILENO, &stdin_st) == 0 && file_st.st_dev == stdin_st.st_dev &&
	    file_st.st_ino == stdin_st.st_ino) {
		close(fd);
		return usage_error("%s is standard input, which %s reads its DATA from; give the "
		                   "id in a file of its own, as --id-file <(printf '%%s' \"$id\"), "
		                   "or with --id-env",
		                   source, cmd->name);
	}
	text = malloc(2 * ID_TEXT_MAX);
	if (text == NULL) {
		say("%s: out of memory", source);
		status = EXIT_TROUBLE;
		goto done;
	}
	if (isatty(fd)) {
		got = read_terminal_line(fd, text, 2 * ID_TEXT_MAX);
		if (got == -1 && errno == EFBIG) {
			got = 2 * ID_TEXT_MAX;
			more = true;
		}
	} else {
		got = read_bounded(fd, text, 2 * ID_TEXT_MAX, &more);
	}
	if (got == -1) {
		say("%s: %s", source, strerror(errno));
		status = EXIT_TROUBLE;
		goto done;
	}
	status = id_take_line(o, text, (size_t)got, more, source);
done:
	free(text);
	if (fd != -1 && !from_stdin)
		close(fd);
	return status;
}

/*
 * After the reason libsessd gave for a refusal (SESSD_ERR_AUTH, its errno ${err}), say what
 * to do about it.
 */
static void hint_auth(const struct opts *o, int err)
{
	if (o->auth_file == NULL)
		say("%s requires authentication: give its secret with --auth-file "
		    "FILE or $SESSD_AUTH_FILE",
		    o->url);
	else if (err == EPERM)
		say("authentication failed: %s is not the sessd that has the secret in "
		    "%s",
		    o->url, o->auth_file);
	else if (!o->plain_auth)
		say("authentication failed with the secret in %s: the wrong secret, or "
		    "a sessd that cannot seal (such as one without --auth-file). Anyone on the "
		    "path can send this answer too: --plain-auth sends the secret as it is, for "
		    "them to read, so use it only with a sessd on this host (a Unix socket or "
		    "loopback)",
		    o->auth_file);
}

/*
 * Whether a connect that failed with ${err} found no daemon at all at its address (rather
 * than one that failed HELLO or refused the secret), so that the next default may be tried.
 */
static bool nobody_there(int err)
{
	return err == ENOENT || err == ENOTDIR || err == ECONNREFUSED || err == EACCES ||
	       err == EPERM;
}

/*
 * Connect to o->url. Returns 0 with *${c} a new client, or the exit status with the error printed;
 * with ${may_be_absent}, -1 when nobody_there, the words (naming the address) in ${why} and
 * nothing printed.
 */
static int connect_to(const struct opts *o, struct sessd_client **c, bool may_be_absent,
                      char why[SESSD_ERRMSG_SIZE])
{
	struct sessd_options so = {.timeout_ms = o->timeout_ms,
	                           .client_name = "sessctl",
	                           .auth_file = o->auth_file,
	                           .plain_auth = o->plain_auth};
	struct url parsed;
	const char *url_why;
	int rc, err;

	if (url_parse(o->url, &parsed, &url_why) == -1) {
		char shown[SHOWN_ARG_SIZE];

		/* A value in no URL form may be the id, given after --connect: see shown_arg. */
		if (url_has_form(o->url))
			say("bad URL '%s': %s", o->url, url_why);
		else {
			shown_arg(o->url, shown);
			say("bad URL '%s': %s", shown, url_why);
		}
		return EXIT_TROUBLE;
	}
	rc = sessd_connect_errbuf(o->url, &so, c, why, SESSD_ERRMSG_SIZE);
	if (rc == SESSD_OK) {
		/* Set here, not in so: a name may hold a NUL, which so.ns (a C string) cannot.
		 * Its length was checked with the options: this does not fail. */
		if (o->ns != NULL)
			(void)sessd_set_namespace_len(*c, o->ns, o->ns_len);
		return 0;
	}
	err = errno;
	if (may_be_absent && rc == SESSD_ERR_CONNECT && nobody_there(err))
		return -1;
	/* libsessd's words name the address, or the auth file, and say why. */
	say("%s", why[0] != '\0' ? why : sessd_strerror(rc));
	/* The URL, namespace and timeout were checked above: a usage error is the file's. */
	if (rc == SESSD_ERR_USAGE && o->auth_file != NULL && err == EPERM)
		say("chmod o-rwx %s, or give another file", o->auth_file);
	else if (rc == SESSD_ERR_AUTH)
		hint_auth(o, err);
	return failure_status(NULL, rc);
}

/*
 * Write "unix:" and the path of the socket sessd listens on when started without --listen to
 * ${out} (URL_MAX_TEXT bytes), by sessd's rules (sessd(8), --listen): in $RUNTIME_DIRECTORY
 * (its first entry), else in $XDG_RUNTIME_DIR/sessd, else in /run/sessd for root and
 * /tmp/sessd-UID for others. Returns 0; 1 when it is that /tmp directory and not this user's
 * own (said on stderr); -1 when the path is too long for a socket.
 */
static int own_socket_url(char out[URL_MAX_TEXT])
{
	const char *env;
	char dir[64];
	struct stat st;
	int n;

	if ((env = getenv("RUNTIME_DIRECTORY")) != NULL && env[0] != '\0')
		n = snprintf(out, URL_MAX_TEXT, "unix:%.*s/" SOCKET_NAME, (int)strcspn(env, ":"),
		             env);
	else if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && env[0] != '\0')
		n = snprintf(out, URL_MAX_TEXT, "unix:%s/sessd/" SOCKET_NAME, env);
	else if (geteuid() == 0)
		n = snprintf(out, URL_MAX_TEXT, "unix:/run/sessd/" SOCKET_NAME);
	else {
		/* Any local user can make this directory first, and answer in sessd's place
		 * (taking the sessions set and the secrets shown): it must be this user's own,
		 * as sessd makes it. One that is not there yet holds no socket to reach. */
		snprintf(dir, sizeof(dir), "/tmp/sessd-%lu", (unsigned long)geteuid());
		if (lstat(dir, &st) == 0 &&
		    (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) != 0)) {
			fprintf(stderr,
			        "sessctl: not trying %s/" SOCKET_NAME ": %s is owned by uid %lu "
			        "with mode %04o, not this user's own (uid %lu)\n",
			        dir, dir, (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777),
			        (unsigned long)geteuid());
			return 1;
		}
		n = snprintf(out, URL_MAX_TEXT, "unix:%s/" SOCKET_NAME, dir);
	}
	return n < 0 || (size_t)n - strlen("unix:") > URL_MAX_PATH ? -1 : 0;
}

/*
 * Without --connect or SESSD_URL: the daemon's own socket (own_socket_url), the systemd
 * unit's (SYSTEMD_URL, which a user other than root does not reach by sessd's rules), then
 * DEFAULT_URL, the first where a daemon is; a failure other than finding none there is
 * reported as it is. Sets o->url to the address used. Returns 0 with *${c} a new client, or
 * the exit status with the error printed.
 */
static int connect_default(struct opts *o, struct sessd_client **c)
{
	const char *tried[3];
	char why[3][SESSD_ERRMSG_SIZE];
	size_t n = 0;
	int status, own;

	own = own_socket_url(o->default_url);
	if (own == 0)
		tried[n++] = o->default_url;
	if (n == 0 || strcmp(o->default_url, SYSTEMD_URL) != 0)
		tried[n++] = SYSTEMD_URL;
	/* A loopback port is anyone's to bind as well: whoever took this user's directory can
	 * be listening there too, waiting for the fallback. */
	if (own != 1)
		tried[n++] = DEFAULT_URL;
	for (size_t i = 0; i < n; i++) {
		o->url = tried[i];
		status = connect_to(o, c, true, why[i]);
		if (status != -1)
			return status;
	}
	for (size_t i = 0; i < n; i++)
		say("%s", why[i]);
	if (own == 1)
		fputs("sessctl: not trying " DEFAULT_URL " either: another user may be listening "
		      "there\n",
		      stderr);
	fputs("sessctl: no sessd at any default address; set SESSD_URL or give --connect URL\n",
	      stderr);
	return EXIT_UNREACHED;
}

/*
 * Put /dev/null on whichever of the standard descriptors is closed (`sessctl ... >&-`), open
 * the way that fails: write-only for standard input, read-only for the other two. A closed one
 * so still fails as closed (EBADF), and the next file opened (--id-file's, the auth file)
 * cannot take its number, to be read as set's data or written with what was meant for output.
 */
static void std_fds_hold(void)
{
	int held;

	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		held = open("/dev/null", fd == STDIN_FILENO ? O_WRONLY : O_RDONLY);
		if (held != -1 && held != fd) {
			dup2(held, fd);
			close(held);
		}
	}
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	const struct command *cmd;
	struct sessd_client *c = NULL;
	char shown[SHOWN_ARG_SIZE], why[SESSD_ERRMSG_SIZE];
	const char *env;
	int status, cookie, err;

	std_fds_hold();
	switch (parse_args(argc, argv, &o)) {
	case PARSE_HELP:
		fputs(usage_text, stdout);
		fputs(usage_commands, stdout);
		fputs(usage_status_text, stdout);
		return EXIT_SUCCESS;
	case PARSE_VERSION:
		puts("sessctl " SESSD_VERSION);
		return EXIT_SUCCESS;
	case PARSE_ERROR:
		return EXIT_TROUBLE;
	case PARSE_RUN:
		break;
	}
	if (o.nargs == 0)
		return usage_error("no command given");
	cmd = find_command(o.args[0]);
	if (cmd == NULL) {
		const char *meant = command_meant(o.args[0]);

		shown_arg(o.args[0], shown);
		if (meant != NULL)
			return usage_error("unknown command '%s'; did you mean '%s'?", shown,
			                   meant);
		return usage_error("unknown command '%s'", shown);
	}
	status = id_from_elsewhere(cmd, &o);
	if (status != 0)
		return status;
	/* An operator copies the cookie from a browser; the store knows only the id in it. */
	cookie =
	    command_takes_id(cmd) && o.nargs > 1 ? cookie_session_id(o.args[1], o.cookie_id) : 0;
	if (cookie == -1)
		return usage_error(
		    "%s: that Cookie header holds the signed cookies of more than one "
		    "session; give the one meant",
		    cmd->name);
	if (cookie == 1) {
		fprintf(
		    stderr,
		    "sessctl: %s: that is a signed express-session cookie; using the session id "
		    "in it, %.*s... (the signature is not checked)\n",
		    cmd->name, SHOWN_ARG_START, o.cookie_id);
		o.id = o.cookie_id;
		o.id_len = strlen(o.cookie_id);
	} else if (command_takes_id(cmd) && o.nargs > 1) {
		/* As list and find print ids: \xNN is a byte. */
		o.id = o.id_buf;
		o.id_len = unescape_arg(o.args[1], o.id_buf, sizeof(o.id_buf));
	}
	status = check_command(cmd, &o);
	if (status != 0)
		return status;
	if (o.url == NULL) {
		env = getenv("SESSD_URL");
		o.url = env != NULL && env[0] != '\0' ? env : NULL;
	}
	if (o.auth_file == NULL) {
		env = getenv("SESSD_AUTH_FILE");
		o.auth_file = env != NULL && env[0] != '\0' ? env : NULL;
	}
	if (o.plain_auth && o.auth_file == NULL && cmd->run != run_new_id)
		return usage_error("--plain-auth needs a secret: --auth-file FILE or "
		                   "$SESSD_AUTH_FILE");
	if (cmd->run != run_new_id) {
		if (o.url != NULL)
			status = connect_to(&o, &c, false, why);
		else
			status = connect_default(&o, &c);
		/* A scrape of a daemon that is down still says so: sessd_up 0. */
		if (status != 0)
			return o.prometheus ? prom_down(&o, status) : status;
	}
	/* The long wait of count and clear is for their reply, not for the connect or HELLO
	 * (done above with the default): a hung daemon must not take WAITING_TIMEOUT_MS to
	 * report. */
	if (cmd->run != run_new_id && cmd->may_wait && o.timeout_ms == 0) {
		o.timeout_ms = WAITING_TIMEOUT_MS;
		sessd_set_timeout(c, o.timeout_ms);
	}
	/* A change whose output's reader has gone is a write failing with EPIPE, said (it was
	 * carried out; flash-pop's messages shown on stderr), not a death by SIGPIPE that a
	 * script under pipefail takes for a failure and runs again: a second flash-push. */
	if (command_changes(cmd->name))
		signal(SIGPIPE, SIG_IGN);
	status = cmd->run(c, &o);
	/* A command whose sealed connection broke or timed out: retired before we exit, so that
	 * "failed" means nothing more of it will land (PROTOCOL.md, "RETIRE"). */
	if (status != 0 && sessd_retire_broken(c) != SESSD_OK)
		say("warning: could not retire the broken connection (%s); what it sent may still "
		    "be carried out later",
		    sessd_errmsg(c));
	sessd_close(c);
	err = fflush(stdout) == EOF ? errno : ferror(stdout) ? EIO : 0;
	if (err != 0) {
		/* Exit 2 says the same command fails again: a change made must not read as none. */
		fprintf(stderr, "sessctl: writing the output: %s%s\n", strerror(err),
		        status == EXIT_SUCCESS && command_changes(cmd->name)
		            ? " (the command was carried out; only what it printed is lost)"
		            : "");
		return EXIT_TROUBLE;
	}
	return status;
}
