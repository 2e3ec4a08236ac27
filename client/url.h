#ifndef SESSD_CLIENT_URL_H
#define SESSD_CLIENT_URL_H

#include <stdbool.h>

/*
 * Where a client connects: "unix:/path/to/socket" or "tcp://host:port", where host is a name,
 * an IPv4 address or a bracketed IPv6 address ("tcp://[::1]:7077").
 */

/* The longest Unix socket path (sockaddr_un.sun_path holds 108 bytes with the NUL). */
#define URL_MAX_PATH 107
/* The longest DNS name (RFC 1035). */
#define URL_MAX_HOST 253

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

#endif
