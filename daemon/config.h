#ifndef SESSD_CONFIG_H
#define SESSD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "auth.h"
#include "log.h"
#include "persist.h"

/*
 * The daemon's command line: parsing and checking only, no sockets and no files. Listen
 * addresses are parsed here too, so a bad URL is a usage error (exit 2) like any other.
 */

#define CONFIG_DEFAULT_TCP_PORT        7077
#define CONFIG_DEFAULT_MAX_CONNECTIONS 10000
#define CONFIG_DEFAULT_HELLO_TIMEOUT_S 10
/* Idle seconds before a TCP connection is probed (--tcp-keepalive). */
#define CONFIG_DEFAULT_TCP_KEEPALIVE_S 60
#define CONFIG_DEFAULT_AUTH_GRACE_S    3600
/* --snapshot-idle unless given: a minute without writes ends a burst. */
#define CONFIG_DEFAULT_SNAPSHOT_IDLE_S 60
#define CONFIG_SOCKET_NAME             "sessd.sock"
/* Frames larger than this are refused at startup: the daemon buffers one whole frame. A data
 * directory keeps what such a frame carries. */
#define CONFIG_MAX_MAX_FRAME (1024u * 1024u * 1024u)
_Static_assert(CONFIG_MAX_MAX_FRAME <= PERSIST_MAX_DATA_BYTES,
               "a session a frame carries must fit in a record of the data directory");
/* --max-client-memory unless given: this, or four frames of --max-frame if that is more. */
#define CONFIG_DEFAULT_MAX_CLIENT_MEMORY (256u * 1024u * 1024u)

enum config_listen_kind {
	CONFIG_LISTEN_TCP,
	CONFIG_LISTEN_UNIX,
};

/* One listen address. */
struct config_listen {
	enum config_listen_kind kind;
	/* TCP: the numeric host without brackets, and the port (0: ephemeral). */
	char host[64];
	uint16_t port;
	/* Unix: the socket's path. */
	char path[108];
	/* Unix: the runtime directory to create (0750) first, for the default socket; else "". */
	char make_dir[108];
};

enum config_action {
	CONFIG_RUN,
	CONFIG_HELP,
	CONFIG_VERSION,
	CONFIG_CHECK_DATA,
	CONFIG_BACKUP,
};

struct config {
	enum config_action action;
	struct config_listen *listens; /* owned; free with config_finish */
	size_t n_listens;
	uint32_t max_frame;
	uint64_t max_memory; /* 0: no limit */
	/* --max-memory was not given: the server takes a share of config_memory_limit. */
	bool max_memory_auto;
	/* --when-full drop-unread: a full store drops sessions never read back before it refuses
	 * a write (store_drop_unread); false (refuse, the default): it only refuses. */
	bool drop_unread;
	/* Connections' buffers over all connections (see conn_config.max_client_bytes). */
	size_t max_client_memory;
	/* --max-client-memory was not given: the server may lower the default to a share of
	 * config_memory_limit, never under max_client_memory_floor. */
	bool max_client_memory_auto;
	size_t max_client_memory_floor;
	uint32_t max_connections;
	int hello_timeout_s; /* a connection must complete HELLO within this */
	int tcp_keepalive_s; /* idle seconds before a TCP connection is probed; 0: never */
	enum log_level log_level;
	/* Strings borrow argv. */
	const char *ready_file;
	const char *data_dir;
	enum persist_fsync fsync;
	const char *key_file;
	const char *auth_file;
	/* The secret that lets a connection LIST, NAMESPACES and CLEAR; NULL: every one may. */
	const char *admin_auth_file;
	/* After a reload replaces the secret, the old one lets clients in this long. */
	uint32_t auth_grace_s;
	/* Where a plain HELLO may show the secret; AUTH_PLAIN_LOOPBACK unless given. */
	enum auth_plain auth_plain;
	/* persist_config.snapshot_log_bytes: 0 for the persistence layer's default. */
	uint64_t snapshot_log_bytes;
	/* persist_config.snapshot_idle_ms, in seconds; 0: no idle snapshots. */
	uint32_t snapshot_idle_s;
	const char *check_data_dir;
	bool repair;
	/* --backup DIR DEST: the data directory and the destination. */
	const char *backup_dir;
	const char *backup_dest;
};

/*
 * config_parse(cfg, argc, argv, err):
 * Fill ${cfg} from the command line (getopt_long; ${argv} may be permuted, and cfg's strings
 * borrow it). When no --listen is given, the defaults are added: a Unix socket in the runtime
 * directory (config_runtime_dir) and tcp://127.0.0.1:7077. Returns 0, or -1 after writing a
 * message to ${err} (the caller exits 2). Free with config_finish, also after -1.
 */
int config_parse(struct config *cfg, int argc, char **argv, FILE *err);

/* config_finish(cfg): free what config_parse allocated. */
void config_finish(struct config *cfg);

/*
 * config_path_fault(err):
 * Whether open(2) or mkdir(2) of a path the configuration names (a key or secret file, the
 * data directory) failing with ${err} is the configuration's fault: missing, a directory on
 * the way that is not one, a permission, a loop of links, a name too long, a device that is
 * not there. Only the operator mends those, and a restart fails the same way (exit status
 * 2, which the unit does not restart), where EIO, EMFILE or ENOMEM may pass (exit 1).
 */
bool config_path_fault(int err);

/* config_usage(out): write the --help text. */
void config_usage(FILE *out);

/*
 * config_parse_size(text, out):
 * Read a byte count: decimal digits with an optional K, M or G suffix (powers of 1024, either
 * case). Returns 0, or -1 (errno EINVAL) for anything else or a value over UINT64_MAX.
 */
int config_parse_size(const char *text, uint64_t *out);

/*
 * config_parse_listen(url, out):
 * Read "tcp://A.B.C.D:PORT", "tcp://[V6]:PORT" or "unix:PATH" into ${out}.
 * Returns 0, or -1 with errno EINVAL for a malformed URL, ENAMETOOLONG for a Unix socket
 * path longer than sun_path holds, or EAFNOSUPPORT for an IPv4-mapped IPv6 address, which a
 * listener that is IPv6 only (IPV6_V6ONLY) cannot bind: ${out} then holds the IPv4 address
 * and the port, for the message to suggest.
 */
int config_parse_listen(const char *url, struct config_listen *out);

/*
 * config_runtime_dir(out, size):
 * The directory for the default socket: $RUNTIME_DIRECTORY (systemd), else
 * $XDG_RUNTIME_DIR/sessd, else /run/sessd for root, else /tmp/sessd-UID.
 * Returns 0, or -1 (errno ENAMETOOLONG) when it does not fit in ${size}.
 */
int config_runtime_dir(char *out, size_t size);

/*
 * config_memory_limit(root, bytes, source, source_size):
 * The memory this process may use: the lowest of its memory cgroup's limits (cgroup v2
 * memory.max, or v1 memory.limit_in_bytes, of its own cgroup and of those above it) and the
 * machine's physical memory (MemTotal in /proc/meminfo; sysinfo(2) for ${root} "" when that
 * is hidden, as systemd's ProcSubset=pid does). ${root} is put before every path
 * read: "" for this system, a directory laid out alike in tests. Returns 0 with *${bytes}
 * set and ${source} (the caller's, ${source_size} bytes) naming the limit, or -1 when
 * neither could be read.
 */
int config_memory_limit(const char *root, uint64_t *bytes, char *source, size_t source_size);

#endif
