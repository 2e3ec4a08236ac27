/*
 * sessd: the session-store daemon. Parses the command line and runs the server.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "config.h"
#include "dispatch.h"
#include "log.h"
#include "persist.h"
#include "server.h"

/*
 * With a ${key_file} (--key-file) the sessions are encrypted at rest, and a core dump would
 * write every one of them in the clear wherever core_pattern puts it (systemd-coredump keeps
 * dumps for days, on a disk the key was meant to protect from). A process that is not
 * dumpable leaves no core, and other processes of its user cannot read its memory (ptrace,
 * /proc/PID/mem), as ssh-agent does for its keys. The keys themselves are sodium_malloc'd,
 * which libsodium already keeps out of dumps; the sessions are plain heap. Without a key the
 * data directory holds the sessions in the clear anyway, and a core stays available to debug
 * a crash. A failure is only said: the operator asked for encryption, not for this.
 */
static void keep_sessions_out_of_dumps(const char *key_file)
{
	if (key_file == NULL)
		return;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		log_warn("cannot keep the decrypted sessions out of core dumps: prctl: %s",
		         strerror(errno));
}

/*
 * Started with standard input, output or error closed (a supervisor or a shell's >&-), the
 * daemon's first descriptors took their numbers: the event loop's epoll and its signal pipe,
 * whose write end then got every log line, read back by the loop as signal numbers, and
 * which a snapshot's writer keeps. Each closed one is opened on /dev/null instead, so none
 * of ours is ever 0, 1 or 2. Returns 0, or -1 (said, if stderr can say it).
 */
static int hold_standard_descriptors(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		int got;

		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		/* The lowest free number: this one. */
		got = open("/dev/null", O_RDWR);
		if (got != fd) {
			if (got != -1)
				close(got);
			fprintf(stderr, "sessd: cannot open /dev/null on descriptor %d\n", fd);
			return -1;
		}
	}
	return 0;
}

/* The signal (SIGINT, SIGTERM) that asked --backup to stop, for persist_backup to see. */
static volatile sig_atomic_t backup_stop;

static void backup_on_stop(int sig)
{
	backup_stop = sig;
}

/*
 * Run --backup with SIGINT and SIGTERM caught rather than fatal: their default action
 * stopped it where it stood, leaving its hidden .NAME.partial-XXXXXX or a copy cut short
 * (one sessd refuses) to be removed by hand. The handler only records the signal;
 * persist_backup sees it between two steps and removes what it made, and the signal is then
 * raised again with its default action, so that whoever sent it sees the backup end by it
 * (a shell's 130 or 143), as before. Returns persist_backup's exit status.
 */
static int backup_run(const struct config *cfg)
{
	struct sigaction sa;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = backup_on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* persist_backup: 0 done, 1 damage, -1 refused or failed; exit 0, 1, 2 as
	 * --check-data does. */
	rc = persist_backup(cfg->backup_dir, cfg->backup_dest, cfg->key_file, &backup_stop);
	if (backup_stop != 0) {
		fflush(NULL);
		signal(backup_stop, SIG_DFL);
		raise(backup_stop);
	}
	return rc == 0 ? 0 : rc == 1 ? 1 : 2;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct server *srv;
	bool config_fault;
	int rc = 1;

	if (hold_standard_descriptors() == -1)
		return 1;
	if (config_parse(&cfg, argc, argv, stderr) == -1) {
		fprintf(stderr, "Try 'sessd --help'.\n");
		config_finish(&cfg);
		return 2;
	}
	/* What the check logs too (a key file it cannot use, what a repair did); its report
	 * goes to stdout. */
	log_set_level(cfg.log_level);
	log_detect_journal();
	switch (cfg.action) {
	case CONFIG_HELP:
		config_usage(stdout);
		rc = 0;
		goto out;
	case CONFIG_VERSION:
		printf("%s\n", DISPATCH_SERVER_NAME);
		rc = 0;
		goto out;
	case CONFIG_CHECK_DATA:
	case CONFIG_BACKUP:
	case CONFIG_RUN:
		break;
	}

	/* Every action from here reads sessions, decrypted in memory when there is a key. */
	keep_sessions_out_of_dumps(cfg.key_file);
	/* SIGHUP, SIGUSR1 and SIGUSR2 kill by default. The daemon ignores SIGUSR1 and SIGUSR2
	 * while its data loads, before its loop takes them over (server.c). SIGHUP it blocks
	 * instead, and server.c lets it through once the loop can take it: ignored, a secret
	 * rotated and signalled during a long load was dropped without a word, and the daemon
	 * came up refusing the new secret and taking the old one. --check-data and --backup
	 * give the three no meaning at all: `pkill -USR1 sessd`, meant for a daemon, or the
	 * terminal they run in closing, killed them half way, a backup leaving its partial
	 * copy to be removed by hand. SIGINT and SIGTERM still stop them. */
	if (cfg.action == CONFIG_RUN)
		server_hold_sighup();
	else
		signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	if (sodium_init() < 0) {
		log_error("libsodium failed to initialise");
		/* --check-data and --backup: 2, as for any failure that is not damage. */
		rc = cfg.action == CONFIG_RUN ? 1 : 2;
		goto out;
	}
	if (cfg.action == CONFIG_CHECK_DATA) {
		/* persist_check: 0 sound, 1 damage, -1 unreadable; the exit codes are 0, 1, 2. */
		rc = persist_check(cfg.check_data_dir, cfg.key_file, cfg.repair);
		rc = rc == 0 ? 0 : rc == 1 ? 1 : 2;
		goto out;
	}
	if (cfg.action == CONFIG_BACKUP) {
		/* Its report (stdout) and its errors (stderr) in the order they happen, when both
		 * go to one file. */
		setvbuf(stdout, NULL, _IOLBF, 0);
		/* A file-size limit below a copy's size fails its write (EFBIG), which is said and
		 * undone, rather than killing the backup half way. */
		signal(SIGXFSZ, SIG_IGN);
		rc = backup_run(&cfg);
		goto out;
	}
	/* A client that hangs up must cost us an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	/* A file-size limit (ulimit -f, LimitFSIZE=) must make a log write fail with EFBIG,
	 * which is answered like a full disk, instead of killing the daemon. */
	signal(SIGXFSZ, SIG_IGN);
	/* Connections' buffers of a quarter megabyte and more (large frames, replies a client
	 * is slow to read) are mapped on their own, so their memory goes back to the system when
	 * they are freed. glibc would otherwise raise this threshold to the size of the first
	 * such buffer freed and carve the next ones from the heap, which keeps its pages after
	 * a burst of stalled clients is closed. Sessions are far smaller and are not affected. */
	if (mallopt(M_MMAP_THRESHOLD, 256 * 1024) == 0)
		log_debug("malloc ignores M_MMAP_THRESHOLD: not glibc's allocator");
	srv = server_new(&cfg, &config_fault);
	if (srv == NULL) {
		/* The shipped unit does not restart after 2 (RestartPreventExitStatus=2): five
		 * restarts a second apart would fail the same way, then the unit gives up, with
		 * the cause five times over in the journal. */
		if (config_fault) {
			log_error(
			    "not starting: the configuration cannot work as it is; exit status 2 "
			    "(a restart would fail the same way)");
			rc = 2;
		}
		goto out;
	}
	rc = server_run(srv) == 0 ? 0 : 1;
	server_free(srv);
	if (rc == 0)
		log_info("stopped");

out:
	config_finish(&cfg);
	libevent_global_shutdown();
	return rc;
}
