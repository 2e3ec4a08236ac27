/*
 * shownarg: how a message on standard error shows an argument that may be a secret or a full
 * session id given in the wrong place (sessctl's unknown command, its --ttl ID; sessd's
 * --auth-plain "$SECRET", a stray argument): standard error ends in a log (the journal, a cron
 * job's mail), and a full id or secret there hands it to whoever reads the log.
 */
#ifndef SESSD_SHOWNARG_H
#define SESSD_SHOWNARG_H

/* An option name of up to SHOWN_ARG_FULL bytes is shown whole, anything else cut to
 * SHOWN_ARG_START bytes. */
#define SHOWN_ARG_FULL  16
#define SHOWN_ARG_START 6
#define SHOWN_ARG_SIZE  (SHOWN_ARG_FULL + sizeof("=..."))

/*
 * shown_arg(arg, out):
 * Write to ${out} (SHOWN_ARG_SIZE bytes) the argument ${arg} as a message shows it. What looks
 * like an option name or a keyword (lowercase letters and '-', SHOWN_ARG_FULL bytes at most)
 * is shown whole, without what follows its '='; anything else by its first SHOWN_ARG_START
 * bytes and "...", which still tells one's own argument.
 */
void shown_arg(const char *arg, char out[SHOWN_ARG_SIZE]);

#endif
