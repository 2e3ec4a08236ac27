#ifndef SESSD_FAULTPROXY_H
#define SESSD_FAULTPROXY_H

#include <stdint.h>
#include <sys/types.h>

/*
 * A fault-injecting relay for the client tests: a forked child listening on a loopback TCP
 * port (or a Unix socket) in front of a real sessd, passing each connection's bytes both ways under
 * the fault set for that direction (the network faults an application meets between it and its
 * store: a half-dead path, a link that delivers a byte at a time, a middlebox that gives up
 * mid-frame or swallows what it is sent). Not part of libsessd: tests only.
 */

enum faultproxy_dir {
	FAULTPROXY_UP,   /* client to sessd */
	FAULTPROXY_DOWN, /* sessd to client */
};

enum faultproxy_mode {
	FAULTPROXY_PASS,      /* bytes as they come */
	FAULTPROXY_STALL,     /* held, the connection kept up; they go once the fault is lifted,
	                       * in one write where they fit (64 KiB) */
	FAULTPROXY_DRIBBLE,   /* one byte per write, a millisecond apart */
	FAULTPROXY_DELAY,     /* each read passed arg milliseconds after it came */
	FAULTPROXY_BLACKHOLE, /* arg more bytes of each connection passed, the rest swallowed */
	FAULTPROXY_CUT,       /* arg more bytes passed, then both sides reset (mid-frame) */
	/* FAULTPROXY_UP only, on the connections open when it is set (later ones pass): held as
	 * STALL does, and when the client's side then goes (a reset, or a close), sessd's side
	 * is kept open, as a party on the path that holds a record does: what is held goes to
	 * sessd once the fault is lifted, and what sessd sends meanwhile is dropped. */
	FAULTPROXY_HOLD,
};

struct faultproxy {
	pid_t pid;
	int control; /* the parent's end of the control socket */
	char url[128];
	char path[108]; /* a Unix relay's socket, removed by faultproxy_stop; else "" */
};

/*
 * faultproxy_start(p, target_tcp_url):
 * Fork the relay in front of ${target_tcp_url} ("tcp://127.0.0.1:PORT"), every direction
 * PASS; fill ${p}. Returns 0, or -1 (nothing to stop).
 */
int faultproxy_start(struct faultproxy *p, const char *target_tcp_url);

/*
 * faultproxy_start_unix(p, target_unix_url, listen_path):
 * faultproxy_start in front of sessd's Unix socket ${target_unix_url} ("unix:/path"), the
 * relay listening on the Unix socket ${listen_path} (a file there is replaced), which
 * faultproxy_stop removes. On a Unix socket a reset is seen as a close. Returns 0 or -1.
 */
int faultproxy_start_unix(struct faultproxy *p, const char *target_unix_url,
                          const char *listen_path);

/*
 * faultproxy_set(p, dir, mode, arg):
 * Put ${dir} of every connection, open and future, under ${mode} (${arg}: its number), and
 * wait until the relay has done so: a fault is in place when this returns. Lifting a stall
 * (any other mode) lets what it held go. Returns 0 or -1.
 */
int faultproxy_set(struct faultproxy *p, enum faultproxy_dir dir, enum faultproxy_mode mode,
                   uint32_t arg);

/* faultproxy_accepted(p): the connections the relay has accepted so far, or -1. */
long faultproxy_accepted(struct faultproxy *p);

/*
 * faultproxy_held(p, dir): the bytes the relay holds in ${dir} over every connection (read,
 * not yet passed on), or -1.
 */
long faultproxy_held(struct faultproxy *p, enum faultproxy_dir dir);

/* faultproxy_stop(p): end the relay and wait for it. Returns 0 when it had run cleanly. */
int faultproxy_stop(struct faultproxy *p);

#endif
