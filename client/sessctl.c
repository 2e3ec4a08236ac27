/*
 * sessctl: look at and change a running sessd from the shell, through libsessd.
 * Exit status: 0 done, 1 no such session, 2 usage, connection or server error, 3 set-if found
 * the data changed since its tag was read.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "sessd.h"
#include "url.h"

#define EXIT_NOT_FOUND 1
#define EXIT_TROUBLE   2
#define EXIT_CONFLICT  3

#define DEFAULT_URL   "tcp://127.0.0.1:7077"
#define DEFAULT_TTL_S 86400
/* CODEC_MAX_TTL_MS in seconds: 10 years of 366 days. */
#define MAX_TTL_S (10ull * 366 * 24 * 3600)
/* Far above any sane max_frame; stops `sessctl set` from swallowing a runaway pipe. */
#define MAX_STDIN_BYTES (256u * 1024u * 1024u)
#define MAX_ARGS        8
/* Default --timeout of count and clear: during a mass expiry the daemon answers them once it
 * has reclaimed the sessions due, which takes seconds for millions (PROTOCOL.md). */
#define WAITING_TIMEOUT_MS 60000

struct opts {
	const char *url;
	const char *auth_file;
	bool plain_auth;
	const char *ns;
	bool json;
	int timeout_ms;
	bool yes;
	bool tag;      /* get --tag */
	bool existing; /* flash-push --existing */
	bool have_ttl;
	uint64_t ttl_s;
	const char *args[MAX_ARGS];
	int nargs;
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
    "  --connect URL     unix:/path or tcp://host:port (default $SESSD_URL, else " DEFAULT_URL ")\n"
    "  --auth-file FILE  prove to the server the secret in FILE (as sessd --auth-file reads\n"
    "                    it; default $SESSD_AUTH_FILE, else none) and seal the connection\n"
    "  --plain-auth      send the secret as it is, unencrypted, and seal nothing (for a\n"
    "                    server that cannot seal)\n"
    "  --namespace NAME  the namespace (default: \"default\")\n"
    "  --json            print results as JSON\n"
    "  --timeout MS      per-request timeout in milliseconds (default 5000; count and\n"
    "                    clear: 60000)\n"
    "  --ttl SECONDS     for set, set-if, touch and flash-push (set, set-if, flash-push:\n"
    "                    default 86400)\n"
    "  --tag             get: print the tag of the data (for set-if) instead of the data\n"
    "  --existing        flash-push: only to a session that has data; never create one\n"
    "  --yes             confirm clear\n"
    "  --help, --version\n"
    "\n"
    "commands:\n"
    "  ping                         check the server answers\n"
    "  new-id                       print a new random session id\n"
    "  set ID [DATA]                store DATA (or standard input) as the session's data\n"
    "  get ID [--tag]               print the session's data exactly, or its tag\n"
    "  set-if ID TAG [DATA]         set, but only while the data still has TAG (get --tag)\n"
    "  touch ID --ttl SECONDS       give the session a new ttl\n"
    "  destroy ID                   remove the session\n"
    "  flash-push ID TYPE MESSAGE [--existing]\n"
    "                               queue a flash message\n"
    "  flash-pop ID [TYPE]          remove and print flash messages\n"
    "  count                        number of sessions in the namespace\n"
    "  list                         every session id and its remaining ttl in ms\n"
    "  stats                        server figures (with --namespace: that namespace's)\n"
    "  clear --yes                  remove every session of the namespace\n"
    "\n"
    "exit status: 0 done, 1 no such session, 2 usage, connection or server error,\n"
    "3 set-if found the data changed since its tag was read (nothing changed)\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("sessctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'sessctl --help'.\n", stderr);
	return EXIT_TROUBLE;
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
	fprintf(stderr, "sessctl: %s: %s (%s)\n", what, sessd_strerror(rc), sessd_errmsg(c));
	return EXIT_TROUBLE;
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

	if (data == NULL)
		goto fail_nomem;
	while ((got = fread(data + n, 1, cap - n, stdin)) > 0) {
		n += got;
		if (n == cap) {
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
	}
	if (ferror(stdin)) {
		fprintf(stderr, "sessctl: %s: reading standard input: %s\n", what, strerror(errno));
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

static uint64_t ttl_ms(const struct opts *o)
{
	return (o->have_ttl ? o->ttl_s : DEFAULT_TTL_S) * 1000;
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
	const char *id = o->args[1], *what = expect != NULL ? "set-if" : "set";
	int data_at = expect != NULL ? 3 : 2, rc;
	const char *data;
	char *input = NULL;
	size_t len;

	if (o->nargs > data_at) {
		data = o->args[data_at];
		len = strlen(data);
	} else {
		if (read_stdin(what, &input, &len) == -1)
			return EXIT_TROUBLE;
		data = input;
	}
	if (expect != NULL)
		rc = sessd_set_if(c, id, strlen(id), data, len, ttl_ms(o), expect);
	else
		rc = sessd_set(c, id, strlen(id), data, len, ttl_ms(o));
	free(input);
	if (rc != SESSD_OK)
		return report_data(c, rc, what);
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

static int run_get(struct sessd_client *c, const struct opts *o)
{
	const char *id = o->args[1];
	char hex[2 * SESSD_TAG_BYTES + 1];
	void *data;
	size_t len;
	int rc;

	rc = sessd_get(c, id, strlen(id), &data, &len);
	if (rc != SESSD_OK)
		return report_data(c, rc, "get");
	/* The tag of exactly these bytes: with --json it comes with them, from this one read. */
	if (o->tag)
		tag_hex(data, len, hex);
	if (o->json) {
		if (o->tag)
			fputs("{\"data\":", stdout);
		json_write_string(stdout, data, len);
		if (o->tag)
			printf(",\"tag\":\"%s\"}", hex);
		fputc('\n', stdout);
	} else if (o->tag) {
		printf("%s\n", hex);
	} else {
		fwrite(data, 1, len, stdout);
	}
	free(data);
	return EXIT_SUCCESS;
}

static int run_touch(struct sessd_client *c, const struct opts *o)
{
	const char *id = o->args[1];
	int rc = sessd_touch(c, id, strlen(id), ttl_ms(o));

	if (rc != SESSD_OK)
		return report(c, rc, "touch");
	if (o->json)
		print_ok_json();
	return EXIT_SUCCESS;
}

static int run_destroy(struct sessd_client *c, const struct opts *o)
{
	const char *id = o->args[1];
	int rc = sessd_destroy(c, id, strlen(id));

	if (rc != SESSD_OK)
		return report(c, rc, "destroy");
	if (o->json)
		print_ok_json();
	return EXIT_SUCCESS;
}

static int run_flash_push(struct sessd_client *c, const struct opts *o)
{
	const char *id = o->args[1], *msg = o->args[3];
	size_t queued = 0;
	int rc;

	if (o->existing)
		rc = sessd_flash_push_existing(c, id, strlen(id), o->args[2], msg, strlen(msg),
		                               ttl_ms(o), &queued);
	else
		rc = sessd_flash_push(c, id, strlen(id), o->args[2], msg, strlen(msg), ttl_ms(o),
		                      &queued);
	/* --existing needs data: a session with flashes only is "no such session" to it. */
	if (rc != SESSD_OK)
		return report_data(c, rc, "flash-push");
	if (o->json)
		printf("{\"queued\":%zu}\n", queued);
	else
		printf("%zu\n", queued);
	return EXIT_SUCCESS;
}

static void print_flashes_json(const struct sessd_flashes *f, bool one_type)
{
	const char *type = NULL;

	if (one_type) {
		fputc('[', stdout);
		for (size_t i = 0; i < f->count; i++) {
			if (i > 0)
				fputc(',', stdout);
			json_write_string(stdout, f->items[i].msg, f->items[i].msg_len);
		}
		fputs("]\n", stdout);
		return;
	}
	/* Items come grouped by type (sessd.h), so each type opens one array. */
	fputc('{', stdout);
	for (size_t i = 0; i < f->count; i++) {
		if (type == NULL || strcmp(type, f->items[i].type) != 0) {
			if (type != NULL)
				fputs("],", stdout);
			type = f->items[i].type;
			json_write_string(stdout, type, strlen(type));
			fputs(":[", stdout);
		} else {
			fputc(',', stdout);
		}
		json_write_string(stdout, f->items[i].msg, f->items[i].msg_len);
	}
	fputs(type != NULL ? "]}\n" : "}\n", stdout);
}

static int run_flash_pop(struct sessd_client *c, const struct opts *o)
{
	const char *id = o->args[1], *type = o->nargs == 3 ? o->args[2] : NULL;
	struct sessd_flashes *f;
	int rc;

	rc = sessd_flash_pop(c, id, strlen(id), type, &f);
	if (rc != SESSD_OK)
		return report(c, rc, "flash-pop");
	if (o->json) {
		print_flashes_json(f, type != NULL);
	} else {
		for (size_t i = 0; i < f->count; i++) {
			if (type == NULL)
				printf("%s\t", f->items[i].type);
			fwrite(f->items[i].msg, 1, f->items[i].msg_len, stdout);
			fputc('\n', stdout);
		}
	}
	sessd_flashes_free(f);
	return EXIT_SUCCESS;
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
	return EXIT_SUCCESS;
}

static int run_list(struct sessd_client *c, const struct opts *o)
{
	struct sessd_list *page;
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
		for (size_t i = 0; i < page->count; i++) {
			const struct sessd_list_entry *e = &page->items[i];

			if (o->json) {
				fputs(first ? "{\"id\":" : ",{\"id\":", stdout);
				json_write_string(stdout, e->id, e->id_len);
				printf(",\"ttl_ms\":%" PRIu64 "}", e->ttl_ms);
			} else {
				fwrite(e->id, 1, e->id_len, stdout);
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
	return EXIT_SUCCESS;
}

static int run_stats(struct sessd_client *c, const struct opts *o)
{
	struct sessd_stats *s;
	int rc = sessd_stats(c, o->ns == NULL, &s);

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
			printf("%s %" PRIu64 "\n", s->items[i].name, s->items[i].value);
		}
	}
	if (o->json)
		fputs("}\n", stdout);
	sessd_stats_free(s);
	return EXIT_SUCCESS;
}

static int run_clear(struct sessd_client *c, const struct opts *o)
{
	uint64_t removed = 0;
	int rc = sessd_clear(c, &removed);

	if (rc != SESSD_OK)
		return report(c, rc, "clear");
	if (o->json)
		printf("{\"removed\":%" PRIu64 "}\n", removed);
	else
		printf("%" PRIu64 "\n", removed);
	return EXIT_SUCCESS;
}

static const struct command commands[] = {
    {"ping", 0, 0, false, false, false, false, false, false, run_ping},
    {"new-id", 0, 0, false, false, false, false, false, false, run_new_id},
    {"set", 1, 2, true, false, false, false, false, false, run_set},
    {"set-if", 2, 3, true, false, false, false, false, false, run_set_if},
    {"get", 1, 1, false, false, false, true, false, false, run_get},
    {"touch", 1, 1, true, true, false, false, false, false, run_touch},
    {"destroy", 1, 1, false, false, false, false, false, false, run_destroy},
    {"flash-push", 3, 3, true, false, false, false, true, false, run_flash_push},
    {"flash-pop", 1, 2, false, false, false, false, false, false, run_flash_pop},
    {"count", 0, 0, false, false, false, false, false, true, run_count},
    {"list", 0, 0, false, false, false, false, false, false, run_list},
    {"stats", 0, 0, false, false, false, false, false, false, run_stats},
    {"clear", 0, 0, false, false, true, false, false, true, run_clear},
};

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
	uint64_t n;
	bool options_done = false;

	for (int i = 1; i < argc; i++) {
		arg = argv[i];
		if (options_done || arg[0] != '-' || arg[1] == '\0') {
			if (o->nargs == MAX_ARGS) {
				usage_error("too many arguments");
				return PARSE_ERROR;
			}
			o->args[o->nargs++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			options_done = true;
		} else if (strcmp(arg, "-h") == 0 || option_is(arg, "help", &v)) {
			return PARSE_HELP;
		} else if (option_is(arg, "version", &v)) {
			return PARSE_VERSION;
		} else if (option_is(arg, "json", &v) && v == NULL) {
			o->json = true;
		} else if (option_is(arg, "yes", &v) && v == NULL) {
			o->yes = true;
		} else if (option_is(arg, "tag", &v) && v == NULL) {
			o->tag = true;
		} else if (option_is(arg, "existing", &v) && v == NULL) {
			o->existing = true;
		} else if (option_is(arg, "plain-auth", &v) && v == NULL) {
			o->plain_auth = true;
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
			if ((o->ns = option_value(argc, argv, &i, v)) == NULL)
				goto missing;
			if (strlen(o->ns) < 1 || strlen(o->ns) > 64) {
				usage_error("--namespace: a namespace has 1 to 64 bytes");
				return PARSE_ERROR;
			}
		} else if (option_is(arg, "timeout", &v)) {
			if ((v = option_value(argc, argv, &i, v)) == NULL)
				goto missing;
			if (parse_number(v, 1, INT_MAX, &n) == -1) {
				usage_error("--timeout: '%s' is not a number of milliseconds", v);
				return PARSE_ERROR;
			}
			o->timeout_ms = (int)n;
		} else if (option_is(arg, "ttl", &v)) {
			if ((v = option_value(argc, argv, &i, v)) == NULL)
				goto missing;
			if (parse_number(v, 1, MAX_TTL_S, &o->ttl_s) == -1) {
				usage_error("--ttl: '%s' is not a number of seconds from 1 to 10 "
				            "years",
				            v);
				return PARSE_ERROR;
			}
			o->have_ttl = true;
		} else {
			usage_error("unknown option '%s'", arg);
			return PARSE_ERROR;
		}
	}
	return PARSE_RUN;

missing:
	usage_error("%s needs a value", arg);
	return PARSE_ERROR;
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Check the command's arguments and options; returns 0 or an exit status. */
static int check_command(const struct command *cmd, const struct opts *o)
{
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
	if (cmd->takes_yes && !o->yes) {
		fprintf(stderr,
		        "sessctl: %s removes every session of the namespace; "
		        "add --yes to do it\n",
		        cmd->name);
		return EXIT_TROUBLE;
	}
	/* Every command with arguments takes the id first. */
	if (cmd->min_args > 0 && (strlen(o->args[1]) < 1 || strlen(o->args[1]) > 128))
		return usage_error("%s: an id has 1 to 128 bytes", cmd->name);
	if (cmd->run == run_set_if && tag_parse(o->args[2], tag) == -1)
		return usage_error("%s: '%s' is not a tag: %d hex digits, as get --tag prints",
		                   cmd->name, o->args[2], 2 * SESSD_TAG_BYTES);
	return 0;
}

/*
 * After the reason libsessd gave for a refusal (SESSD_ERR_AUTH, its errno ${err}), say what
 * to do about it.
 */
static void hint_auth(const struct opts *o, int err)
{
	if (o->auth_file == NULL)
		fprintf(stderr,
		        "sessctl: %s requires authentication: give its secret with --auth-file "
		        "FILE or $SESSD_AUTH_FILE\n",
		        o->url);
	else if (err == EPERM)
		fprintf(
		    stderr,
		    "sessctl: authentication failed: %s is not the sessd that has the secret in "
		    "%s\n",
		    o->url, o->auth_file);
	else if (!o->plain_auth)
		fprintf(
		    stderr,
		    "sessctl: authentication failed with the secret in %s: the wrong secret, or "
		    "a sessd that cannot seal (such as one without --auth-file; --plain-auth "
		    "sends the secret unsealed)\n",
		    o->auth_file);
}

static int connect_to(const struct opts *o, struct sessd_client **c)
{
	struct sessd_options so = {.timeout_ms = o->timeout_ms,
	                           .ns = o->ns,
	                           .client_name = "sessctl",
	                           .auth_file = o->auth_file,
	                           .plain_auth = o->plain_auth};
	char why[SESSD_ERRMSG_SIZE];
	struct url parsed;
	const char *url_why;
	int rc, err;

	if (url_parse(o->url, &parsed, &url_why) == -1) {
		fprintf(stderr, "sessctl: bad URL '%s': %s\n", o->url, url_why);
		return EXIT_TROUBLE;
	}
	rc = sessd_connect_errbuf(o->url, &so, c, why, sizeof(why));
	if (rc == SESSD_OK)
		return 0;
	err = errno;
	/* libsessd's words name the address, or the auth file, and say why. */
	fprintf(stderr, "sessctl: %s\n", why[0] != '\0' ? why : sessd_strerror(rc));
	/* The URL, namespace and timeout were checked above: a usage error is the file's. */
	if (rc == SESSD_ERR_USAGE && o->auth_file != NULL && err == EPERM)
		fprintf(stderr, "sessctl: chmod o-rwx %s, or give another file\n", o->auth_file);
	else if (rc == SESSD_ERR_AUTH)
		hint_auth(o, err);
	return EXIT_TROUBLE;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	const struct command *cmd;
	struct sessd_client *c = NULL;
	const char *env;
	int status;

	switch (parse_args(argc, argv, &o)) {
	case PARSE_HELP:
		fputs(usage_text, stdout);
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
	if (cmd == NULL)
		return usage_error("unknown command '%s'", o.args[0]);
	status = check_command(cmd, &o);
	if (status != 0)
		return status;
	if (o.timeout_ms == 0 && cmd->may_wait)
		o.timeout_ms = WAITING_TIMEOUT_MS;
	if (o.url == NULL) {
		env = getenv("SESSD_URL");
		o.url = env != NULL && env[0] != '\0' ? env : DEFAULT_URL;
	}
	if (o.auth_file == NULL) {
		env = getenv("SESSD_AUTH_FILE");
		o.auth_file = env != NULL && env[0] != '\0' ? env : NULL;
	}
	if (o.plain_auth && o.auth_file == NULL && cmd->run != run_new_id)
		return usage_error("--plain-auth needs a secret: --auth-file FILE or "
		                   "$SESSD_AUTH_FILE");
	if (cmd->run != run_new_id) {
		status = connect_to(&o, &c);
		if (status != 0)
			return status;
	}
	status = cmd->run(c, &o);
	sessd_close(c);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "sessctl: writing the output: %s\n", strerror(errno));
		return EXIT_TROUBLE;
	}
	return status;
}
