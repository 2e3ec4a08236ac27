/*
 * clockshift.so: an LD_PRELOAD module for test_clock, a step of the wall clock without root.
 * The process's CLOCK_REALTIME (clock_gettime, and gettimeofday and time on top of it) reads
 * the system's plus the signed milliseconds written in the file $SESSD_CLOCKSHIFT_FILE, read
 * again at every call, so that a test steps the clock of a running daemon by rewriting that
 * file. Every other clock (CLOCK_MONOTONIC above all, which libevent's timers and sessd's
 * scheduling run on) is the system's, as when NTP or date(1) steps the wall clock.
 * With $SESSD_CLOCKSHIFT_STILL set, the monotonic clocks of the process's main thread (sessd's
 * event loop, and a snapshot writer forked from it) stand still at their first reading
 * instead: no timer of the loop fires after startup, the once-a-second tick above all, so that
 * a test shows what the daemon does without one. Its other threads (the file worker's timed
 * waits) read the system's.
 * Only for tests: the file is read on every call.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The shift in ms: 0 when the file is missing, empty or unreadable. */
static long long shift_ms(void)
{
	const char *path = getenv("SESSD_CLOCKSHIFT_FILE");
	char text[32];
	ssize_t n;
	int fd;

	if (path == NULL || (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	return strtoll(text, NULL, 10);
}

/* Whether ${id} stands still for this thread ($SESSD_CLOCKSHIFT_STILL); if so, ${ts} (read from
 * the system) becomes the first reading taken. Only the main thread reads or sets it. */
static int stands_still(clockid_t id, struct timespec *ts)
{
	static struct timespec first;
	static int taken;

	if (id != CLOCK_MONOTONIC && id != CLOCK_MONOTONIC_COARSE && id != CLOCK_MONOTONIC_RAW &&
	    id != CLOCK_BOOTTIME)
		return 0;
	if (getenv("SESSD_CLOCKSHIFT_STILL") == NULL || syscall(SYS_gettid) != getpid())
		return 0;
	if (!taken) {
		first = *ts;
		taken = 1;
	}
	*ts = first;
	return 1;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	long long ns;

	/* The system call, not the vDSO's entry that glibc's clock_gettime would take. */
	if (syscall(SYS_clock_gettime, id, ts) == -1)
		return -1;
	if (stands_still(id, ts))
		return 0;
	if (id != CLOCK_REALTIME && id != CLOCK_REALTIME_COARSE)
		return 0;
	ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + shift_ms() * 1000000LL;
	ts->tv_sec = (time_t)(ns / 1000000000LL);
	ts->tv_nsec = (long)(ns % 1000000000LL);
	return 0;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	struct timespec ts;

	(void)tz;
	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return -1;
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

time_t time(time_t *out)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return (time_t)-1;
	if (out != NULL)
		*out = ts.tv_sec;
	return ts.tv_sec;
}
