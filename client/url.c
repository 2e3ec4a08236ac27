/*
 * URL parsing for libsessd and sessctl. Only the forms PROTOCOL.md's transports need, the same
 * that connect-sessd takes (client/node/lib/connection.js, parseUrl), so that an address copied
 * between an app's configuration, sessctl and SESSD_URL means the same socket everywhere;
 * anything else is refused with a reason, because a typo in a URL should never turn into a
 * connection to somewhere unexpected.
 */
#include "url.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define UNIX_PREFIX "unix:"
#define TCP_PREFIX  "tcp://"

static int fail(const char **why, const char *message)
{
	*why = message;
	errno = EINVAL;
	return -1;
}

/*
 * A decimal port 1..65535 with no sign, spaces or leading zeros padding past 5 digits, and
 * perhaps one "/" after it ("tcp://host:port/", as a URL is often written).
 */
static int parse_port(const char *p, char out[6])
{
	size_t n = strlen(p);
	unsigned long v = 0;

	if (n > 0 && p[n - 1] == '/')
		n--;
	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static bool host_char_ok(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || ch == '_';
}

static int parse_tcp(const char *rest, struct url *out, const char **why)
{
	const char *host, *host_end, *colon;
	size_t host_len;

	if (rest[0] == '[') {
		host = rest + 1;
		host_end = strchr(host, ']');
		if (host_end == NULL)
			return fail(why, "unclosed '[' in the host");
		if (host_end[1] != ':')
			return fail(why, "a port must follow the bracketed host");
		colon = host_end + 1;
		for (const char *p = host; p < host_end; p++)
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
			      (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.' || *p == '%'))
				return fail(why, "bad character in the IPv6 address");
	} else {
		host = rest;
		colon = strrchr(rest, ':');
		if (colon == NULL)
			return fail(why, "missing :port after the host");
		host_end = colon;
		for (const char *p = host; p < host_end; p++)
			if (!host_char_ok(*p))
				return fail(why,
				            "bad character in the host (IPv6 needs [brackets])");
	}
	host_len = (size_t)(host_end - host);
	if (host_len == 0)
		return fail(why, "empty host");
	if (host_len > URL_MAX_HOST)
		return fail(why, "host name too long");
	if (parse_port(colon + 1, out->port) == -1)
		return fail(why, "the port must be a number from 1 to 65535");
	memcpy(out->host, host, host_len);
	out->host[host_len] = '\0';
	out->is_unix = false;
	return 0;
}

/* A Unix socket's path, as the kernel takes it (a relative one from the working directory). */
static int parse_path(const char *path, struct url *out, const char **why)
{
	size_t n = strlen(path);

	if (n == 0)
		return fail(why, "empty socket path");
	if (n > URL_MAX_PATH)
		return fail(why, "socket path too long");
	memcpy(out->path, path, n + 1);
	out->is_unix = true;
	return 0;
}

int url_parse(const char *text, struct url *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	if (text == NULL || text[0] == '\0')
		return fail(why, "empty URL");
	if (strncmp(text, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0) {
		text += strlen(UNIX_PREFIX);
		/* "unix:///run/s.sock" is "unix:/run/s.sock" written as a URL. "unix://x" would
		 * be a host x in a URL: connect-sessd once took it as the relative path x, and
		 * this parser as //x, the absolute /x; it is neither, now. */
		if (strncmp(text, "//", 2) == 0) {
			if (text[2] != '/')
				return fail(why, "unix:// must be followed by an absolute path "
				                 "(unix:///path; a relative one is unix:path)");
			text += 2;
		}
		return parse_path(text, out, why);
	}
	/* A bare absolute path, as sessd's --listen unix:PATH names it without the scheme. */
	if (text[0] == '/')
		return parse_path(text, out, why);
	if (strncmp(text, TCP_PREFIX, strlen(TCP_PREFIX)) == 0)
		return parse_tcp(text + strlen(TCP_PREFIX), out, why);
	return fail(why, "the URL must be unix:PATH, an absolute socket path (/PATH) or "
	                 "tcp://HOST:PORT");
}

bool url_has_form(const char *text)
{
	return strncmp(text, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0 || text[0] == '/' ||
	       strncmp(text, TCP_PREFIX, strlen(TCP_PREFIX)) == 0;
}

void url_format(const struct url *u, char *out, size_t size)
{
	if (u->is_unix)
		snprintf(out, size, "%s%s", UNIX_PREFIX, u->path);
	else if (strchr(u->host, ':') != NULL)
		snprintf(out, size, "%s[%s]:%s", TCP_PREFIX, u->host, u->port);
	else
		snprintf(out, size, "%s%s:%s", TCP_PREFIX, u->host, u->port);
}
