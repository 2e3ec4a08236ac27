#ifndef SESSD_SERVER_H
#define SESSD_SERVER_H

#include <stdbool.h>

#include "config.h"

/*
 * The server: one struct that owns the event base, the listeners, the connections, the store,
 * the persistence log and the dispatcher, and joins them with loop callbacks (timers for
 * expiry and persistence, signals, the end-of-turn group commit). The only file that knows
 * all of them.
 */

struct server;

/*
 * server_hold_sighup():
 * Block SIGHUP in the calling thread (and the threads it starts) until server_new has the
 * loop's handler for it: one that comes while the data loads stays pending, and is acted on
 * once sessd serves. Call it before anything else that may take long. Never fails.
 */
void server_hold_sighup(void);

/*
 * server_new(cfg, config_fault):
 * Build the server for ${cfg} (borrowed for the server's lifetime): open the data directory
 * when there is one, bind every listener, write the ready file and tell systemd. Returns the
 * server (free with server_free), or NULL after logging why; then *${config_fault} says
 * whether ${cfg} cannot work as it is (the --key-file cannot serve as a key), which a restart
 * repeats, rather than a failure that may pass.
 */
struct server *server_new(const struct config *cfg, bool *config_fault);

/*
 * server_run(srv):
 * Serve until SIGTERM or SIGINT, then stop accepting, answer what was already read (for at
 * most a couple of seconds) and return 0; -1 when the loop failed.
 */
int server_run(struct server *srv);

/*
 * server_free(srv): close everything and remove Unix socket files. NULL: nothing. For the way
 * out of the process only: the store's sessions are left to the exit to give back, except in
 * a sanitizer build, which frees them one by one for its leak check (SERVER_FREES_STORE).
 */
void server_free(struct server *srv);

#endif
