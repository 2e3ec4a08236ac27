#ifndef SESSD_CLIENT_URL_H
#define SESSD_CLIENT_URL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Where a client connects: "unix:/path/to/socket" (also "unix:///path/to/socket", and
 * "unix:relative/path"), a bare absolute path "/path/to/socket", or "tcp://host:port" (a "/"
 * after the port is allowed), where host is a name, an IPv4 address or a bracketed IPv6
 * address ("tcp://[::1]:7077"). connect-sessd takes the same forms.
 */

/* The longest Unix socket path (sockaddr_un.sun_path holds 108 bytes with the NUL). */
#define URL_MAX_PATH 107
/* The longest DNS name (RFC 1035). */
#define URL_MAX_HOST 253
/* The longest URL url_format writes, with its NUL: "tcp://[" host "]:" port. */
#define URL_MAX_TEXT (sizeof("tcp://[]:65535") + URL_MAX_HOST)

struct url {
	bool is_unix;
	char path[URL_MAX_PATH + 1]; /* is_unix */
	char host[URL_MAX_HOST + 1]; /* tcp, without brackets */
	char port[6];                /* tcp, decimal 1..65535 */
};

/*
 * url_parse(text, out):
 * Parse ${text} into ${out} (embedded by the caller; nothing is allocated).
 * Returns 0, or -1 with errno EINVAL and ${why} pointing to a static message.
 */
int url_parse(const char *text, struct url *out, const char **why);

/*
 * url_has_form(text):
 * Whether ${text} begins as one of the forms url_parse reads (unix:, a "/", tcp://), whatever
 * follows: a value that does not may be no URL at all (an id given after --connect by
 * mistake), which an error message should not repeat whole. ${text} is not NULL.
 */
bool url_has_form(const char *text);

/*
 * url_format(u, out, size):
 * Write ${u} as a URL url_parse reads back ("unix:/path", "tcp://host:port", an IPv6 host in
 * brackets) into ${out} of ${size} bytes, cut short if it does not fit; URL_MAX_TEXT always
 * fits. ${out} is the caller's.
 */
void url_format(const struct url *u, char *out, size_t size);

#endif
