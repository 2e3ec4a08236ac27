/*
 * The daemon's command line. See config.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "codec.h"
#include "log.h"
#include "shownarg.h"
#include "typo.h"

enum {
	OPT_LISTEN = 256,
	OPT_MAX_FRAME,
	OPT_MAX_MEMORY,
	OPT_WHEN_FULL,
	OPT_MAX_CLIENT_MEMORY,
	OPT_MAX_CONNECTIONS,
	OPT_HELLO_TIMEOUT,
	OPT_TCP_KEEPALIVE,
	OPT_LOG_LEVEL,
	OPT_READY_FILE,
	OPT_DATA_DIR,
	OPT_FSYNC,
	OPT_KEY_FILE,
	OPT_AUTH_FILE,
	OPT_ADMIN_AUTH_FILE,
	OPT_AUTH_GRACE,
	OPT_AUTH_PLAIN,
	OPT_SNAPSHOT_LOG_BYTES,
	OPT_SNAPSHOT_IDLE,
	OPT_CHECK_DATA,
	OPT_REPAIR,
	OPT_BACKUP,
};

static const struct option config_options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"max-frame", required_argument, NULL, OPT_MAX_FRAME},
    {"max-memory", required_argument, NULL, OPT_MAX_MEMORY},
    {"when-full", required_argument, NULL, OPT_WHEN_FULL},
    {"max-client-memory", required_argument, NULL, OPT_MAX_CLIENT_MEMORY},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"hello-timeout", required_argument, NULL, OPT_HELLO_TIMEOUT},
    {"tcp-keepalive", required_argument, NULL, OPT_TCP_KEEPALIVE},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"ready-file", required_argument, NULL, OPT_READY_FILE},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"fsync", required_argument, NULL, OPT_FSYNC},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"auth-file", required_argument, NULL, OPT_AUTH_FILE},
    {"admin-auth-file", required_argument, NULL, OPT_ADMIN_AUTH_FILE},
    {"auth-grace", required_argument, NULL, OPT_AUTH_GRACE},
    {"auth-plain", required_argument, NULL, OPT_AUTH_PLAIN},
    {"snapshot-log-bytes", required_argument, NULL, OPT_SNAPSHOT_LOG_BYTES},
    {"snapshot-idle", required_argument, NULL, OPT_SNAPSHOT_IDLE},
    {"check-data", required_argument, NULL, OPT_CHECK_DATA},
    {"repair", no_argument, NULL, OPT_REPAIR},
    {"backup", required_argument, NULL, OPT_BACKUP},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/*
 * config_path_fault(err):
 * Whether open(2) or mkdir(2) of a path the configuration names (a key or secret file, the
 * data directory) failing with ${err} is the configuration's fault: missing, a directory on
 * the way that is not one, a permission, a loop of links, a name too long, a device that is
 * not there. Only the operator mends those, and a restart fails the same way (exit status
 * 2, which the unit does not restart), where EIO, EMFILE or ENOMEM may pass (exit 1).
 */
bool config_path_fault(int err)
{
	return err == ENOENT || err == ENOTDIR || err == EACCES || err == EPERM || err == ELOOP ||
	       err == ENAMETOOLONG || err == ENXIO;
}

void config_usage(FILE *out)
{
	fputs("usage: sessd [options]\n"
	      "  --listen URL            tcp://HOST:PORT, tcp://[V6]:PORT, unix:PATH or /PATH "
	      "(repeatable)\n"
	      "                          (none given: sessd.sock in the runtime directory,\n"
	      "                          $RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR/sessd, /run/sessd\n"
	      "                          for root or /tmp/sessd-UID, and tcp://127.0.0.1:7077)\n"
	      "  --max-frame BYTES       largest frame body (default 1M, 4096..1G)\n"
	      "  --max-memory BYTES      session memory limit, K/M/G suffixes (default: half of\n"
	      "                          the memory cgroup's limit or of physical memory,\n"
	      "                          whichever is lower; 0: none)\n"
	      "  --when-full POLICY      at --max-memory: refuse writes (refuse, the default),\n"
	      "                          or first drop sessions never read back, oldest first\n"
	      "                          (drop-unread)\n",
	      out);
	/* Two strings: C11 promises no longer literal than 4095 bytes. */
	fputs("  --max-client-memory BYTES\n"
	      "                          connections' buffers (unfinished requests, unsent\n"
	      "                          replies, emptied room over 32K each) in all; past it\n"
	      "                          the room is given back, then the longest stalled are\n"
	      "                          closed (default 256M, at most a quarter of the memory\n"
	      "                          cgroup's limit or of physical memory less 16K per\n"
	      "                          --max-connections, but four frames of --max-frame if\n"
	      "                          that is more; at least twice --max-frame)\n"
	      "  --max-connections N     connections served at once, 1..1000000 (default 10000)\n"
	      "  --hello-timeout SECONDS close a connection with no HELLO by then, 1..3600\n"
	      "                          (default 10)\n"
	      "  --tcp-keepalive SECONDS probe a TCP connection idle this long, 0..7200; a\n"
	      "                          peer that answers no probe is closed (default 60;\n"
	      "                          0: no probes)\n"
	      "  --log-level LEVEL       debug, info, warn or error (default info)\n"
	      "  --ready-file PATH       write the listeners' URLs here once they are bound\n"
	      "  --data-dir DIR          keep sessions across restarts in DIR\n"
	      "  --fsync POLICY          with --data-dir: always, everysec or no (default\n"
	      "                          everysec)\n"
	      "  --key-file PATH         with --data-dir (or --check-data, --backup): a 32-byte\n"
	      "                          key for encryption at rest\n"
	      "  --auth-file PATH        clients must show the secret in PATH in HELLO\n"
	      "  --admin-auth-file PATH  only clients that show the secret in PATH may LIST,\n"
	      "                          NAMESPACES and CLEAR (default: every client may)\n"
	      "  --auth-grace SECONDS    after a SIGHUP reads a new secret, the old one lets\n"
	      "                          clients in for this long, then its connections are\n"
	      "                          closed (default 3600)\n"
	      "  --auth-plain WHERE      where clients may show the secret unsealed: no,\n"
	      "                          loopback (Unix sockets, loopback TCP) or yes\n"
	      "                          (default loopback)\n"
	      "  --snapshot-log-bytes BYTES\n"
	      "                          with --data-dir: snapshot once the log passes this\n"
	      "                          size, K/M/G suffixes\n"
	      "                          (default 0: 64M)\n"
	      "  --snapshot-idle SECONDS with --data-dir: snapshot once the log has been quiet\n"
	      "                          this long (grown by at most 1/8), if it is over 1M\n"
	      "                          and over twice the live sessions (default 60; 0: never)\n"
	      "  --check-data DIR        check the data in DIR and exit (0 sound, 1 damaged, "
	      "2 unreadable);\n"
	      "                          takes only --repair, --key-file and --log-level\n"
	      "  --repair                with --check-data: cut a damaged log to its valid part,\n"
	      "                          rewrite a damaged snapshot with the sessions before the\n"
	      "                          damage (the damaged files are kept as *.damaged)\n"
	      "  --backup DIR DEST       copy the data in DIR, as it was at one instant, into\n"
	      "                          the new or empty directory DEST, while sessd runs, and\n"
	      "                          check the copy; exit 0 done, 1 damaged, 2 refused or\n"
	      "                          failed; takes only --key-file and --log-level\n"
	      "  --version, -V           print the version and exit\n"
	      "  --help, -h              print this help and exit\n",
	      out);
}

int config_parse_size(const char *text, uint64_t *out)
{
	uint64_t v = 0, mult = 1;
	const char *p = text;

	if (*p < '0' || *p > '9')
		goto fail;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			goto fail;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = 1024;
		p++;
		break;
	case 'm':
	case 'M':
		mult = 1024 * 1024;
		p++;
		break;
	case 'g':
	case 'G':
		mult = 1024 * 1024 * 1024;
		p++;
		break;
	default:
		goto fail;
	}
	if (*p != '\0' || (v != 0 && v > UINT64_MAX / mult))
		goto fail;
	*out = v * mult;
	return 0;

fail:
	errno = EINVAL;
	return -1;
}

/* A decimal port 0..65535 with nothing after it. */
static int parse_port(const char *text, uint16_t *port)
{
	unsigned long v = 0;
	const char *p = text;

	if (*p == '\0' || strlen(p) > 5)
		return -1;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int config_parse_listen(const char *url, struct config_listen *out)
{
	struct in6_addr addr; /* room for an in_addr too */
	const char *host, *end, *port;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	/* The forms the clients take for a Unix socket (client/url.c), so that an address copied
	 * from an app's configuration names the same socket here: unix:PATH, unix:///PATH and a
	 * bare /PATH. unix://x is refused, as they refuse it: a host x to a URL reader, and the
	 * absolute /x to the kernel. */
	if (url[0] == '/' || strncmp(url, "unix:", 5) == 0) {
		const char *path = url[0] == '/' ? url : url + 5;

		if (url[0] != '/' && strncmp(path, "//", 2) == 0) {
			if (path[2] != '/')
				goto fail;
			path += 2;
		}
		if (*path == '\0')
			goto fail;
		if (strlen(path) >= sizeof(out->path)) {
			memset(out, 0, sizeof(*out));
			errno = ENAMETOOLONG;
			return -1;
		}
		out->kind = CONFIG_LISTEN_UNIX;
		strcpy(out->path, path);
		return 0;
	}
	if (strncmp(url, "tcp://", 6) != 0)
		goto fail;
	host = url + 6;
	out->kind = CONFIG_LISTEN_TCP;
	if (*host == '[') {
		host++;
		end = strchr(host, ']');
		if (end == NULL || end[1] != ':')
			goto fail;
		port = end + 2;
		hlen = (size_t)(end - host);
	} else {
		end = strrchr(host, ':');
		if (end == NULL)
			goto fail;
		port = end + 1;
		hlen = (size_t)(end - host);
	}
	if (hlen == 0 || hlen >= sizeof(out->host))
		goto fail;
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	/* Users type localhost; libsessd and connect-sessd reach it at 127.0.0.1 (their
	 * resolvers' first answer), so that is what it binds. */
	if (url[6] != '[' && strcasecmp(out->host, "localhost") == 0)
		strcpy(out->host, "127.0.0.1");
	/* Otherwise numeric addresses only: what the daemon binds is what the operator wrote. */
	if (url[6] == '[' ? inet_pton(AF_INET6, out->host, &addr) != 1
	                  : inet_pton(AF_INET, out->host, &addr) != 1)
		goto fail;
	if (parse_port(port, &out->port) == -1)
		goto fail;
	/* IPv6 listeners are IPv6 only, and the kernel's bind of such an address says no more
	 * than EINVAL. */
	if (url[6] == '[' && IN6_IS_ADDR_V4MAPPED(&addr)) {
		inet_ntop(AF_INET, addr.s6_addr + 12, out->host, sizeof(out->host));
		errno = EAFNOSUPPORT;
		return -1;
	}
	return 0;

fail:
	memset(out, 0, sizeof(*out));
	errno = EINVAL;
	return -1;
}

int config_runtime_dir(char *out, size_t size)
{
	const char *env;
	int n;

	env = getenv("RUNTIME_DIRECTORY");
	if (env != NULL && *env != '\0') {
		/* systemd may list several directories separated by ':'; the first is ours. */
		size_t len = strcspn(env, ":");

		n = snprintf(out, size, "%.*s", (int)len, env);
	} else if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && *env != '\0') {
		n = snprintf(out, size, "%s/sessd", env);
	} else if (geteuid() == 0) {
		n = snprintf(out, size, "/run/sessd");
	} else {
		n = snprintf(out, size, "/tmp/sessd-%lu", (unsigned long)geteuid());
	}
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* The longest line of a usage error: a path of PATH_MAX bytes and the words around it. */
#define CONFIG_SAY_MAX (PATH_MAX + 512)
/* A cgroup limit at or above this is "no limit": v1 writes the largest page-aligned signed
 * 64-bit value there. */
#define CONFIG_NO_CGROUP_LIMIT (UINT64_C(1) << 60)

/* ${path} under ${root}, opened for reading, or NULL. */
static FILE *fopen_under(const char *root, const char *path)
{
	char full[PATH_MAX];

	if (snprintf(full, sizeof(full), "%s%s", root, path) >= (int)sizeof(full))
		return NULL;
	return fopen(full, "re");
}

/* The first line of ${path} (under ${root}) into ${line}: 0, or -1 when it cannot be read. */
static int read_first_line(const char *root, const char *path, char *line, size_t size)
{
	FILE *f = fopen_under(root, path);
	int rc = -1;

	if (f == NULL)
		return -1;
	if (fgets(line, (int)size, f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		rc = 0;
	}
	fclose(f);
	return rc;
}

/*
 * The lowest limit in ${file} of the cgroup ${dir}/${cgroup} and of every cgroup above it
 * (a limit on a slice holds for everything in it), or UINT64_MAX for none: a value that is
 * not a number ("max") or is CONFIG_NO_CGROUP_LIMIT or more is no limit.
 */
static uint64_t cgroup_lowest_limit(const char *root, const char *dir, const char *cgroup,
                                    const char *file)
{
	char path[PATH_MAX], line[64], *end;
	uint64_t lowest = UINT64_MAX, v;
	size_t len = strlen(cgroup);

	for (;;) {
		while (len > 0 && cgroup[len - 1] == '/')
			len--;
		if (snprintf(path, sizeof(path), "%s%.*s/%s", dir, (int)len, cgroup, file) <
		        (int)sizeof(path) &&
		    read_first_line(root, path, line, sizeof(line)) == 0) {
			errno = 0;
			v = strtoull(line, &end, 10);
			if (errno == 0 && end != line && *end == '\0' &&
			    v < CONFIG_NO_CGROUP_LIMIT && v < lowest)
				lowest = v;
		}
		if (len == 0)
			break;
		while (len > 0 && cgroup[len - 1] != '/')
			len--;
	}
	return lowest;
}

/* The lowest memory limit of this process's cgroups, v2 or v1, or UINT64_MAX for none. */
static uint64_t cgroup_memory_limit(const char *root)
{
	char line[PATH_MAX + 64];
	uint64_t lowest = UINT64_MAX, v;
	FILE *f = fopen_under(root, "/proc/self/cgroup");

	if (f == NULL)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *cgroup;

		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "0::", 3) == 0) {
			v = cgroup_lowest_limit(root, "/sys/fs/cgroup", line + 3, "memory.max");
		} else if ((cgroup = strstr(line, ":memory:")) != NULL ||
		           ((cgroup = strstr(line, ",memory:")) != NULL)) {
			v = cgroup_lowest_limit(root, "/sys/fs/cgroup/memory", cgroup + 8,
			                        "memory.limit_in_bytes");
		} else {
			continue;
		}
		if (v < lowest)
			lowest = v;
	}
	fclose(f);
	return lowest;
}

/*
 * MemTotal of ${root}/proc/meminfo in bytes, or UINT64_MAX when it cannot be read. The unit's
 * ProcSubset=pid hides /proc/meminfo: on this system (${root} "") sysinfo(2) then says it.
 */
static uint64_t physical_memory(const char *root)
{
	char line[128];
	unsigned long long kib;
	uint64_t bytes = UINT64_MAX;
	struct sysinfo si;
	FILE *f = fopen_under(root, "/proc/meminfo");

	if (f == NULL) {
		if (root[0] == '\0' && sysinfo(&si) == 0 && si.totalram > 0 && si.mem_unit > 0 &&
		    si.totalram <= UINT64_MAX / si.mem_unit)
			bytes = (uint64_t)si.totalram * si.mem_unit;
		return bytes;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "MemTotal: %llu kB", &kib) == 1 && kib > 0 &&
		    kib < UINT64_MAX / 1024) {
			bytes = (uint64_t)kib * 1024;
			break;
		}
	}
	fclose(f);
	return bytes;
}

int config_memory_limit(const char *root, uint64_t *bytes, char *source, size_t source_size)
{
	uint64_t cgroup = cgroup_memory_limit(root), physical = physical_memory(root);

	if (cgroup == UINT64_MAX && physical == UINT64_MAX)
		return -1;
	if (cgroup < physical) {
		*bytes = cgroup;
		snprintf(source, source_size, "its memory cgroup's limit");
	} else {
		*bytes = physical;
		snprintf(source, source_size, "physical memory");
	}
	return 0;
}

static int add_listen(struct config *cfg, const struct config_listen *l)
{
	struct config_listen *grown;

	grown = realloc(cfg->listens, (cfg->n_listens + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	cfg->listens = grown;
	cfg->listens[cfg->n_listens++] = *l;
	return 0;
}

/*
 * Write one line of a usage error, the printf format ${fmt} with its arguments, to ${err},
 * escaped as sessd's log lines are (log_escape): a path or value given on the command line
 * may hold a newline, which would forge a line of its own in the journal, or ESC, which
 * drives the terminal of whoever reads it. Before, such a value was printed as given.
 */
static void say(FILE *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(FILE *err, const char *fmt, ...)
{
	char text[CONFIG_SAY_MAX], line[4 * CONFIG_SAY_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_escape(line, sizeof(line), text);
	fprintf(err, "%s\n", line);
}

static int add_default_listens(struct config *cfg, FILE *err)
{
	struct config_listen l;
	char dir[sizeof(l.make_dir)];

	if (config_runtime_dir(dir, sizeof(dir)) == -1 ||
	    strlen(dir) + 1 + strlen(CONFIG_SOCKET_NAME) >= sizeof(l.path)) {
		say(err, "sessd: the runtime directory's path is too long");
		return -1;
	}
	memset(&l, 0, sizeof(l));
	l.kind = CONFIG_LISTEN_UNIX;
	snprintf(l.path, sizeof(l.path), "%s/%s", dir, CONFIG_SOCKET_NAME);
	strcpy(l.make_dir, dir);
	if (add_listen(cfg, &l) == -1)
		goto fail_nomem;
	memset(&l, 0, sizeof(l));
	l.kind = CONFIG_LISTEN_TCP;
	strcpy(l.host, "127.0.0.1");
	l.port = CONFIG_DEFAULT_TCP_PORT;
	if (add_listen(cfg, &l) == -1)
		goto fail_nomem;
	return 0;

fail_nomem:
	say(err, "sessd: out of memory");
	return -1;
}

/*
 * Say that --${name} was given ${value}, which is not ${what}. The value is shown as sessctl
 * shows one out of place (shown_arg): a keyword or a short value whole, anything longer cut, as it
 * may be the secret (--auth-plain "$SECRET": the option's name reads as if it took one).
 */
static void say_not(FILE *err, const char *name, const char *value, const char *what)
{
	char shown[SHOWN_ARG_SIZE];

	shown_arg(value, shown);
	say(err, "sessd: --%s: '%s' is not %s", name, shown, what);
}

/*
 * Say that --listen was given ${url}, which is no address sessd can listen on. One in no URL
 * form (not unix:, tcp:// or /) may be the secret given in the wrong place: it is shown cut,
 * as sessctl shows such a --connect (shown_arg); a URL mistyped is shown whole.
 */
static void say_bad_listen(FILE *err, const char *url)
{
	char shown[SHOWN_ARG_SIZE];
	bool has_form =
	    url[0] == '/' || strncmp(url, "unix:", 5) == 0 || strncmp(url, "tcp://", 6) == 0;

	if (!has_form)
		shown_arg(url, shown);
	say(err,
	    "sessd: --listen: bad URL '%s' (want tcp://A.B.C.D:PORT, tcp://[V6]:PORT, unix:PATH "
	    "or /PATH)",
	    has_form ? url : shown);
}

/*
 * Read the number ${text} given to --${name} into ${out}, within ${min}..${max}; ${what} says
 * what the option expects ("a count"), for the message. Returns 0, or -1 after the message.
 */
static int parse_uint_option(const char *name, const char *what, const char *text, uint64_t min,
                             uint64_t max, uint64_t *out, FILE *err)
{
	if (config_parse_size(text, out) == -1) {
		say_not(err, name, text, what);
		return -1;
	}
	if (*out < min || *out > max) {
		say(err, "sessd: --%s: %s is out of range (%llu..%llu)", name, text,
		    (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	return 0;
}

#define WHAT_SIZE    "a size (bytes, with an optional K, M or G suffix)"
#define WHAT_COUNT   "a count"
#define WHAT_SECONDS "a number of seconds"

/* The long name of the option getopt_long returns as ${val}, or NULL for none. */
static const char *option_name(int val)
{
	for (const struct option *o = config_options; o->name != NULL; o++)
		if (o->val == val)
			return o->name;
	return NULL;
}

/* Whether the option getopt_long returns as ${val} takes a value (optarg). */
static bool takes_value(int val)
{
	for (const struct option *o = config_options; o->name != NULL; o++)
		if (o->val == val)
			return o->has_arg == required_argument;
	return false;
}

/*
 * Say that --${name} was given an empty ${what}. It names nothing: under systemd, a word
 * "${STATE_DIRECTORY}" stays one argument when the variable is not set (a unit without
 * StateDirectory=), and the file it was meant to name would fail later, as "".
 */
static void say_empty(const char *name, const char *what, FILE *err)
{
	say(err,
	    "sessd: --%s is given an empty %s (a variable such as ${STATE_DIRECTORY} that is "
	    "not set?)",
	    name, what);
}

/*
 * Whether the option ${val} (getopt_long's result) acts on --check-data or --backup: their
 * directories, the repair, the key that opens encrypted data, and the level of the lines they
 * log. getopt's ':' and '?' are no option and are refused on their own.
 */
static bool acts_on_check(int val)
{
	return val == OPT_CHECK_DATA || val == OPT_REPAIR || val == OPT_BACKUP ||
	       val == OPT_KEY_FILE || val == OPT_LOG_LEVEL || option_name(val) == NULL;
}

/*
 * The option the unknown long option ${name} (${len} bytes, without its "--" and "=VALUE")
 * was probably meant as: the nearest (typo.h), as sessctl finds for its commands; NULL when
 * none is near.
 */
static const char *option_meant(const char *name, size_t len)
{
	struct typo_search search;

	if (!typo_search_init(&search, name, len))
		return NULL;
	for (const struct option *o = config_options; o->name != NULL; o++)
		typo_search_offer(&search, o->name);
	return search.best;
}

/*
 * Say why getopt_long refused an option ('?'). glibc sets optopt to the option's value for a
 * long option given a value it takes none of, to 0 for an unknown or ambiguous long option
 * (which is then ${arg}, argv[optind - 1]), and to the character for an unknown short one,
 * never NUL. That character is any byte the command line holds: say escapes it.
 */
static void say_bad_option(const char *arg, FILE *err)
{
	const char *name = option_name(optopt), *sep = "";
	char names[CONFIG_SAY_MAX];
	size_t len, matches = 0, used = 0;

	if (name != NULL) {
		say(err, "sessd: --%s takes no value", name);
		return;
	}
	if (optopt != 0) {
		say(err, "sessd: unknown option '-%c'", optopt);
		return;
	}
	if (strncmp(arg, "--", 2) == 0)
		arg += 2;
	len = strcspn(arg, "=");
	/* glibc takes any unambiguous abbreviation: one that fits several is not unknown. */
	for (const struct option *o = config_options; o->name != NULL; o++)
		matches += strncmp(o->name, arg, len) == 0;
	if (len == 0 || matches < 2) {
		const char *meant = option_meant(arg, len);

		if (meant != NULL)
			say(err, "sessd: unknown option '--%.*s'; did you mean '--%s'?", (int)len,
			    arg, meant);
		else
			say(err, "sessd: unknown option '--%.*s'", (int)len, arg);
		return;
	}
	for (const struct option *o = config_options; o->name != NULL; o++) {
		if (strncmp(o->name, arg, len) != 0 || used >= sizeof(names))
			continue;
		used +=
		    (size_t)snprintf(names + used, sizeof(names) - used, "%s --%s", sep, o->name);
		sep = ",";
	}
	say(err, "sessd: option '--%.*s' is ambiguous: it could be%s", (int)len, arg, names);
}

/*
 * Whether ${a} and ${b} are the same address, which the second bind would find taken. Port 0
 * asks for a fresh port each time, so two of those never clash.
 */
static bool same_listen(const struct config_listen *a, const struct config_listen *b)
{
	unsigned char x[16] = {0}, y[16] = {0};
	int af;

	if (a->kind != b->kind)
		return false;
	if (a->kind == CONFIG_LISTEN_UNIX)
		return strcmp(a->path, b->path) == 0;
	af = strchr(a->host, ':') != NULL ? AF_INET6 : AF_INET;
	if (a->port == 0 || a->port != b->port ||
	    (strchr(b->host, ':') != NULL) != (af == AF_INET6))
		return false;
	/* Compared as addresses: "::1" and "0::1" are one. */
	return inet_pton(af, a->host, x) == 1 && inet_pton(af, b->host, y) == 1 &&
	       memcmp(x, y, sizeof(x)) == 0;
}

int config_parse(struct config *cfg, int argc, char **argv, FILE *err)
{
	struct config_listen l;
	uint64_t v, frame_bytes;
	bool plain_given = false, grace_given = false, fsync_given = false, snapshot_given = false,
	     idle_given = false;
	/* The first option given that only the running daemon uses, for --check-data. */
	const char *run_only = NULL;
	int c;

	memset(cfg, 0, sizeof(*cfg));
	cfg->action = CONFIG_RUN;
	cfg->max_frame = CODEC_DEFAULT_MAX_FRAME;
	cfg->max_connections = CONFIG_DEFAULT_MAX_CONNECTIONS;
	cfg->hello_timeout_s = CONFIG_DEFAULT_HELLO_TIMEOUT_S;
	cfg->tcp_keepalive_s = CONFIG_DEFAULT_TCP_KEEPALIVE_S;
	cfg->auth_grace_s = CONFIG_DEFAULT_AUTH_GRACE_S;
	cfg->auth_plain = AUTH_PLAIN_LOOPBACK;
	cfg->log_level = LOG_INFO;
	cfg->fsync = PERSIST_FSYNC_EVERYSEC;
	cfg->snapshot_idle_s = CONFIG_DEFAULT_SNAPSHOT_IDLE_S;
	cfg->max_memory_auto = true;

	/* 0 rather than 1 makes glibc start over completely, so tests can parse again. */
	optind = 0;
	opterr = 0;
	/* The leading ':' makes a missing value ':' rather than '?' (see say_bad_option). */
	while ((c = getopt_long(argc, argv, ":hV", config_options, NULL)) != -1) {
		if (run_only == NULL && !acts_on_check(c))
			run_only = option_name(c);
		if (takes_value(c) && optarg[0] == '\0') {
			say_empty(option_name(c), "value", err);
			return -1;
		}
		switch (c) {
		case OPT_LISTEN:
			if (config_parse_listen(optarg, &l) == -1) {
				if (errno == ENAMETOOLONG)
					say(err,
					    "sessd: --listen: the socket path of '%s' has %zu "
					    "bytes; a Unix socket path can have at most %zu",
					    optarg, strlen(optarg) - 5, sizeof(l.path) - 1);
				else if (errno == EAFNOSUPPORT)
					say(err,
					    "sessd: --listen: '%s' is an IPv4-mapped address, "
					    "which an IPv6 listener (IPv6 only) cannot bind; write "
					    "it as tcp://%s:%u",
					    optarg, l.host, (unsigned)l.port);
				else
					say_bad_listen(err, optarg);
				return -1;
			}
			for (size_t i = 0; i < cfg->n_listens; i++) {
				if (same_listen(&cfg->listens[i], &l)) {
					say(err, "sessd: --listen %s is given twice", optarg);
					return -1;
				}
			}
			if (add_listen(cfg, &l) == -1) {
				say(err, "sessd: out of memory");
				return -1;
			}
			break;
		case OPT_MAX_FRAME:
			if (parse_uint_option("max-frame", WHAT_SIZE, optarg, CODEC_MIN_MAX_FRAME,
			                      CONFIG_MAX_MAX_FRAME, &v, err) == -1)
				return -1;
			cfg->max_frame = (uint32_t)v;
			break;
		case OPT_MAX_MEMORY:
			if (parse_uint_option("max-memory", WHAT_SIZE, optarg, 0, SIZE_MAX, &v,
			                      err) == -1)
				return -1;
			cfg->max_memory = v;
			cfg->max_memory_auto = false;
			break;
		case OPT_WHEN_FULL:
			if (strcmp(optarg, "refuse") == 0) {
				cfg->drop_unread = false;
			} else if (strcmp(optarg, "drop-unread") == 0) {
				cfg->drop_unread = true;
			} else {
				say_not(err, "when-full", optarg, "refuse or drop-unread");
				return -1;
			}
			break;
		case OPT_MAX_CLIENT_MEMORY:
			if (parse_uint_option("max-client-memory", WHAT_SIZE, optarg, 1, SIZE_MAX,
			                      &v, err) == -1)
				return -1;
			cfg->max_client_memory = v;
			break;
		case OPT_MAX_CONNECTIONS:
			if (parse_uint_option("max-connections", WHAT_COUNT, optarg, 1, 1000000, &v,
			                      err) == -1)
				return -1;
			cfg->max_connections = (uint32_t)v;
			break;
		case OPT_HELLO_TIMEOUT:
			if (parse_uint_option("hello-timeout", WHAT_SECONDS, optarg, 1, 3600, &v,
			                      err) == -1)
				return -1;
			cfg->hello_timeout_s = (int)v;
			break;
		case OPT_TCP_KEEPALIVE:
			if (parse_uint_option("tcp-keepalive", WHAT_SECONDS, optarg, 0, 7200, &v,
			                      err) == -1)
				return -1;
			cfg->tcp_keepalive_s = (int)v;
			break;
		case OPT_LOG_LEVEL:
			if (log_level_parse(optarg, &cfg->log_level) == -1) {
				say_not(err, "log-level", optarg, "debug, info, warn or error");
				return -1;
			}
			break;
		case OPT_READY_FILE:
			cfg->ready_file = optarg;
			break;
		case OPT_DATA_DIR:
			cfg->data_dir = optarg;
			break;
		case OPT_FSYNC:
			if (strcmp(optarg, "always") == 0) {
				cfg->fsync = PERSIST_FSYNC_ALWAYS;
			} else if (strcmp(optarg, "everysec") == 0) {
				cfg->fsync = PERSIST_FSYNC_EVERYSEC;
			} else if (strcmp(optarg, "no") == 0) {
				cfg->fsync = PERSIST_FSYNC_NO;
			} else {
				say_not(err, "fsync", optarg, "always, everysec or no");
				return -1;
			}
			fsync_given = true;
			break;
		case OPT_KEY_FILE:
			cfg->key_file = optarg;
			break;
		case OPT_AUTH_FILE:
			cfg->auth_file = optarg;
			break;
		case OPT_ADMIN_AUTH_FILE:
			cfg->admin_auth_file = optarg;
			break;
		case OPT_AUTH_GRACE:
			/* A week at most: an old secret must not linger unnoticed. */
			if (parse_uint_option("auth-grace", WHAT_SECONDS, optarg, 0, 7 * 24 * 3600,
			                      &v, err) == -1)
				return -1;
			cfg->auth_grace_s = (uint32_t)v;
			grace_given = true;
			break;
		case OPT_AUTH_PLAIN:
			if (strcmp(optarg, "no") == 0) {
				cfg->auth_plain = AUTH_PLAIN_NO;
			} else if (strcmp(optarg, "loopback") == 0) {
				cfg->auth_plain = AUTH_PLAIN_LOOPBACK;
			} else if (strcmp(optarg, "yes") == 0) {
				cfg->auth_plain = AUTH_PLAIN_YES;
			} else {
				say_not(err, "auth-plain", optarg, "no, loopback or yes");
				return -1;
			}
			plain_given = true;
			break;
		case OPT_SNAPSHOT_LOG_BYTES:
			if (parse_uint_option("snapshot-log-bytes", WHAT_SIZE, optarg, 0,
			                      UINT64_MAX, &v, err) == -1)
				return -1;
			cfg->snapshot_log_bytes = v;
			snapshot_given = true;
			break;
		case OPT_SNAPSHOT_IDLE:
			if (parse_uint_option("snapshot-idle", WHAT_SECONDS, optarg, 0,
			                      7 * 24 * 3600, &v, err) == -1)
				return -1;
			cfg->snapshot_idle_s = (uint32_t)v;
			idle_given = true;
			break;
		case OPT_CHECK_DATA:
			cfg->check_data_dir = optarg;
			break;
		case OPT_REPAIR:
			cfg->repair = true;
			break;
		case OPT_BACKUP:
			cfg->backup_dir = optarg;
			break;
		case 'h':
			cfg->action = CONFIG_HELP;
			return 0;
		case 'V':
			cfg->action = CONFIG_VERSION;
			return 0;
		case ':':
			/* Only long options take values; optopt is the one that lacks it. */
			if (option_name(optopt) != NULL)
				say(err, "sessd: --%s needs a value", option_name(optopt));
			else
				say(err, "sessd: %s needs a value", argv[optind - 1]);
			return -1;
		default:
			say_bad_option(argv[optind - 1], err);
			return -1;
		}
	}
	/* --backup DIR DEST: the destination is the one argument that is no option's. */
	if (cfg->backup_dir != NULL && optind < argc) {
		cfg->backup_dest = argv[optind++];
		if (cfg->backup_dest[0] == '\0') {
			say_empty("backup", "destination", err);
			return -1;
		}
	}
	if (optind < argc) {
		char shown[SHOWN_ARG_SIZE];

		shown_arg(argv[optind], shown);
		say(err, "sessd: unexpected argument '%s'", shown);
		return -1;
	}
	if (cfg->backup_dir != NULL && cfg->backup_dest == NULL) {
		say(err, "sessd: --backup needs a destination: sessd --backup DATA_DIR DEST_DIR");
		return -1;
	}
	if (cfg->backup_dir != NULL && cfg->check_data_dir != NULL) {
		say(err, "sessd: --backup and --check-data are two commands: give one");
		return -1;
	}
	if (cfg->repair && cfg->check_data_dir == NULL) {
		say(err, "sessd: --repair only goes with --check-data");
		return -1;
	}
	/* The check serves nothing and reads no other directory: a --listen or a --data-dir
	 * taken and ignored would let the operator believe it did. */
	if (cfg->check_data_dir != NULL && run_only != NULL) {
		say(err,
		    "sessd: --%s has no effect with --check-data, which takes only --repair, "
		    "--key-file and --log-level",
		    run_only);
		return -1;
	}
	/* Nor does the backup, which copies the directory given to it and no other. */
	if (cfg->backup_dir != NULL && run_only != NULL) {
		say(err,
		    "sessd: --%s has no effect with --backup, which takes only --key-file and "
		    "--log-level",
		    run_only);
		return -1;
	}
	/* Without a secret nothing is checked, plain or not, and no SIGHUP replaces one: either
	 * option would guard nothing. */
	if ((plain_given || grace_given) && cfg->auth_file == NULL &&
	    cfg->admin_auth_file == NULL) {
		say(err, "sessd: %s only goes with --auth-file or --admin-auth-file",
		    plain_given ? "--auth-plain" : "--auth-grace");
		return -1;
	}
	/* Without a limit the store is never full: the policy would never act. */
	if (cfg->drop_unread && !cfg->max_memory_auto && cfg->max_memory == 0) {
		say(err, "sessd: --when-full drop-unread needs a memory limit: --max-memory 0 "
		         "sets none");
		return -1;
	}
	/* One secret for both would make every app an admin (server_new compares the secrets
	 * too, for two files that hold the same). */
	if (cfg->auth_file != NULL && cfg->admin_auth_file != NULL &&
	    strcmp(cfg->auth_file, cfg->admin_auth_file) == 0) {
		say(err,
		    "sessd: --admin-auth-file is the --auth-file: the admin secret must differ "
		    "from the apps' one");
		return -1;
	}
	/* Without a data directory these would be ignored, and a daemon meant to keep its
	 * sessions (encrypted, synced as asked) would run memory-only. --check-data needs
	 * --key-file for encrypted data (and has refused the others above). */
	if (cfg->data_dir == NULL && cfg->check_data_dir == NULL && cfg->backup_dir == NULL) {
		const char *alone = cfg->key_file != NULL ? "--key-file"
		                    : fsync_given         ? "--fsync"
		                    : snapshot_given      ? "--snapshot-log-bytes"
		                    : idle_given          ? "--snapshot-idle"
		                                          : NULL;

		if (alone != NULL) {
			say(err, "sessd: %s only goes with --data-dir%s", alone,
			    cfg->key_file != NULL ? " (or --check-data, --backup)" : "");
			return -1;
		}
	}
	if (cfg->check_data_dir != NULL) {
		cfg->action = CONFIG_CHECK_DATA;
		return 0;
	}
	if (cfg->backup_dir != NULL) {
		cfg->action = CONFIG_BACKUP;
		return 0;
	}
	/* A whole frame must fit beside others under way, or the largest could never arrive. */
	frame_bytes = (uint64_t)CODEC_HEADER_BYTES + cfg->max_frame;
	if (cfg->max_client_memory == 0) {
		cfg->max_client_memory = CONFIG_DEFAULT_MAX_CLIENT_MEMORY;
		cfg->max_client_memory_auto = true;
		cfg->max_client_memory_floor = 4 * frame_bytes;
		if (cfg->max_client_memory / 4 < frame_bytes)
			cfg->max_client_memory = 4 * frame_bytes;
	} else if (cfg->max_client_memory / 2 < cfg->max_frame) {
		say(err, "sessd: --max-client-memory %zu is less than twice --max-frame %u",
		    cfg->max_client_memory, (unsigned)cfg->max_frame);
		return -1;
	}
	if (cfg->n_listens == 0 && add_default_listens(cfg, err) == -1)
		return -1;
	return 0;
}

void config_finish(struct config *cfg)
{
	free(cfg->listens);
	cfg->listens = NULL;
	cfg->n_listens = 0;
}
