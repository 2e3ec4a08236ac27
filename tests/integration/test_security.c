/*
 * What sessd(8) promises of the secrets a client shows, checked in the running daemon's
 * memory: the HELLO frame that carried a secret is wiped once handled, whatever the answer.
 * The test reads the daemon's writable mappings through /proc/PID/mem, which its own user may
 * do: a sessd without --key-file stays dumpable, and the daemon is this test's descendant.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "leakcheck.h"
#include "mp.h"

static const char app_secret[] = "security-58: the apps' secret, 43 bytes...";
static const char admin_secret[] = "security-58: the admin secret, not the apps'";

/* Mappings larger than this are a sanitizer's shadow or reserve, not the daemon's heap. */
#define SCAN_MAPPING_MAX (256u << 20)

static bool window_in(const uint8_t *data, size_t len, const char *secret)
{
	/* Two windows of 16 bytes: an allocator may have written its links over the start of
	 * a block freed with the secret in it, the rest still there. */
	size_t n = strlen(secret), w = 16;

	return memmem(data, len, secret, w) != NULL || memmem(data, len, secret + n - w, w) != NULL;
}

/*
 * Whether a 16-byte window of ${secret} is anywhere in the writable memory of process ${pid}
 * (the heap, anonymous mappings, stacks): where the bytes of a frame read from a client go.
 */
static bool memory_holds(pid_t pid, const char *secret)
{
	char path[64], line[512];
	uint8_t *data = NULL;
	bool found = false;
	FILE *maps;
	int mem;

	snprintf(path, sizeof(path), "/proc/%ld/maps", (long)pid);
	maps = fopen(path, "r");
	cr_assert_not_null(maps, "%s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "/proc/%ld/mem", (long)pid);
	mem = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(mem, 0, "%s: %s (the daemon's memory must be readable to check it)", path,
	              strerror(errno));
	while (!found && fgets(line, sizeof(line), maps) != NULL) {
		unsigned long long start, end;
		char perms[5];
		ssize_t got;

		cr_assert_eq(sscanf(line, "%llx-%llx %4s", &start, &end, perms), 3, "%s", line);
		if (perms[0] != 'r' || perms[1] != 'w' || end - start > SCAN_MAPPING_MAX)
			continue;
		data = realloc(data, (size_t)(end - start));
		cr_assert_not_null(data);
		got = pread(mem, data, (size_t)(end - start), (off_t)start);
		if (got > 0)
			found = window_in(data, (size_t)got, secret);
	}
	free(data);
	close(mem);
	fclose(maps);
	return found;
}

/* A plain HELLO showing ${secret}, its frame appended to ${out}. */
static void append_hello(struct buf *out, const char *secret, uint64_t request_id)
{
	struct codec_request req = {.op = CODEC_OP_HELLO, .version = 1, .request_id = request_id};
	struct buf auth;

	buf_init(&auth);
	cr_assert_eq(mp_write_bin(&auth, secret, strlen(secret)), 0);
	req.client_name = (struct mp_bytes){(const uint8_t *)"security-test", 13};
	req.auth = (struct mp_bytes){auth.data, auth.len};
	cr_assert_eq(codec_encode_request(out, &req), 0);
	buf_finish(&auth);
}

/* Send ${prefix} (${prefix_len} bytes, before it in the same write) and a plain HELLO showing
 * ${secret} on ${fd}: the status of the first reply. */
static uint32_t send_hello(int fd, const void *prefix, size_t prefix_len, const char *secret,
                           uint64_t request_id)
{
	struct codec_reply rep;
	struct buf frames;
	uint8_t *body;

	buf_init(&frames);
	cr_assert_eq(buf_append(&frames, prefix, prefix_len), 0);
	append_hello(&frames, secret, request_id);
	cr_assert_eq(harness_send_all(fd, frames.data, frames.len), 0);
	buf_finish(&frames);
	harness_read_reply(fd, &rep, &body);
	free(body);
	return rep.status;
}

static uint32_t plain_hello_on(int fd, const char *secret, uint64_t request_id)
{
	return send_hello(fd, NULL, 0, secret, request_id);
}

/*
 * A secret shown in HELLO leaves no copy in the daemon's memory: the right one, a wrong one,
 * and one sent in a second HELLO on a connection past its first, which sessd refuses
 * (BAD_REQUEST) and closes. That last frame stayed whole in the connection's input while
 * the connection lingered (up to 2 s once its reply is out, 10 s when the client reads
 * nothing), where a core or anyone who may read the daemon's memory found it: only frames
 * before HELLO was done were wiped. So did a secret in a frame sent behind one that closes the
 * connection (a malformed frame, a wrong secret, or a header refused before its body is read:
 * a length of 0, over max_frame, over 4096 bytes before HELLO), which is never read.
 */
LEAK_CHECKED_TEST(security, no_secret_shown_in_a_hello_stays_in_the_daemons_memory)
{
	char dir[] = "/tmp/sessd-security-XXXXXX", app_path[64], admin_path[64];
	const char *const args[] = {
	    "--auth-file", app_path, "--admin-auth-file", admin_path, "--max-frame", "65536", NULL};
	/* A frame of one byte that is no MessagePack value: BAD_REQUEST, and the close. */
	static const uint8_t malformed[] = {0, 0, 0, 1, 0xc1};
	/* Headers refused before a byte of their body is read, which close the connection too. */
	static const uint8_t empty[] = {0, 0, 0, 0};
	static const uint8_t over_max_frame[] = {0, 2, 0, 0};
	static const uint8_t over_hello_max[] = {0, 0, 0x20, 0};
	static const struct {
		const uint8_t *header;
		bool after_hello;
		const char *what;
	} refused[] = {
	    {empty, true, "a frame of length 0, past HELLO"},
	    {empty, false, "a frame of length 0, before HELLO"},
	    {over_max_frame, true, "a frame over max_frame"},
	    {over_hello_max, false, "a frame over 4096 bytes before HELLO"},
	};
	struct harness_daemon d;
	struct buf wrong;
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(app_path, sizeof(app_path), "%s/auth", dir);
	snprintf(admin_path, sizeof(admin_path), "%s/admin", dir);
	harness_write_secret(app_path, app_secret, 0600);
	harness_write_secret(admin_path, admin_secret, 0600);
	cr_assert_eq(harness_start(&d, args), 0);
	cr_assert(!memory_holds(d.pid, admin_secret), "the file's secret is kept only as its key");

	fd = harness_connect(d.unix_url);
	cr_assert_geq(fd, 0);
	cr_assert_eq(plain_hello_on(fd, admin_secret, 1), CODEC_OK);
	cr_expect(!memory_holds(d.pid, admin_secret), "the right secret, its connection open");
	close(fd);

	fd = harness_connect(d.unix_url);
	cr_assert_geq(fd, 0);
	cr_assert_eq(plain_hello_on(fd, "a wrong guess at the admin secret", 1), CODEC_AUTH_FAILED);
	cr_expect(!memory_holds(d.pid, "a wrong guess at the admin secret"),
	          "a wrong secret, its connection closing");
	close(fd);

	fd = harness_connect(d.unix_url);
	cr_assert_geq(fd, 0);
	cr_assert_eq(plain_hello_on(fd, app_secret, 1), CODEC_OK);
	cr_assert_eq(plain_hello_on(fd, admin_secret, 2), CODEC_BAD_REQUEST);
	/* Read while the connection lingers, its client still there. */
	cr_expect(!memory_holds(d.pid, admin_secret),
	          "the admin secret sent in a second HELLO is still in the daemon's memory");
	close(fd);

	fd = harness_connect(d.unix_url);
	cr_assert_geq(fd, 0);
	cr_assert_eq(plain_hello_on(fd, app_secret, 1), CODEC_OK);
	cr_assert_eq(send_hello(fd, malformed, sizeof(malformed), admin_secret, 2),
	             CODEC_BAD_REQUEST);
	cr_expect(!memory_holds(d.pid, admin_secret),
	          "the admin secret sent behind a malformed frame is still in the daemon's memory");
	close(fd);

	fd = harness_connect(d.unix_url);
	cr_assert_geq(fd, 0);
	buf_init(&wrong);
	append_hello(&wrong, "a wrong guess at the admin secret", 1);
	cr_assert_eq(send_hello(fd, wrong.data, wrong.len, admin_secret, 2), CODEC_AUTH_FAILED);
	buf_finish(&wrong);
	cr_expect(!memory_holds(d.pid, admin_secret),
	          "the admin secret sent behind a wrong one is still in the daemon's memory");
	close(fd);

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		fd = harness_connect(d.unix_url);
		cr_assert_geq(fd, 0);
		if (refused[i].after_hello)
			cr_assert_eq(plain_hello_on(fd, app_secret, 1), CODEC_OK);
		cr_assert_neq(send_hello(fd, refused[i].header, 4, admin_secret, 2), CODEC_OK, "%s",
		              refused[i].what);
		cr_expect(!memory_holds(d.pid, admin_secret),
		          "the admin secret sent behind %s is still in the daemon's memory",
		          refused[i].what);
		close(fd);
	}

	/* Sent once the refusal is out, while the connection lingers: read only to be dropped. */
	fd = harness_connect(d.unix_url);
	cr_assert_geq(fd, 0);
	cr_assert_eq(plain_hello_on(fd, app_secret, 1), CODEC_OK);
	cr_assert_eq(send_hello(fd, malformed, sizeof(malformed), app_secret, 2),
	             CODEC_BAD_REQUEST);
	buf_init(&wrong);
	append_hello(&wrong, admin_secret, 3);
	cr_assert_eq(harness_send_all(fd, wrong.data, wrong.len), 0);
	buf_finish(&wrong);
	usleep(300 * 1000);
	cr_expect(
	    !memory_holds(d.pid, admin_secret),
	    "the admin secret sent to a lingering connection is still in the daemon's memory");
	close(fd);

	cr_expect_eq(harness_stop(&d), 0);
	unlink(app_path);
	unlink(admin_path);
	rmdir(dir);
}
