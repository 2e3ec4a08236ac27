/*
 * Temporary stand-in so the daemon links while persistence is being written; every entry
 * point refuses. Replaced by the real module (issue 5).
 */
#include "persist.h"

#include <errno.h>
#include <stdio.h>

struct persist *persist_open(const struct persist_config *cfg, struct store *st, uint64_t now_ms)
{
	(void)cfg;
	(void)st;
	(void)now_ms;
	fprintf(stderr, "sessd: persistence is not available in this build\n");
	errno = ENOSYS;
	return NULL;
}

void persist_free(struct persist *p)
{
	(void)p;
}

int persist_writable(struct persist *p)
{
	(void)p;
	return -1;
}

int persist_log_set(struct persist *p, const struct store_key *key, const void *data,
		    size_t len, uint64_t expires_at_ms)
{
	(void)p, (void)key, (void)data, (void)len, (void)expires_at_ms;
	return -1;
}

int persist_log_touch(struct persist *p, const struct store_key *key, uint64_t expires_at_ms)
{
	(void)p, (void)key, (void)expires_at_ms;
	return -1;
}

int persist_log_destroy(struct persist *p, const struct store_key *key)
{
	(void)p, (void)key;
	return -1;
}

int persist_log_flash_push(struct persist *p, const struct store_key *key, const uint8_t *type,
			   size_t type_len, const void *msg, size_t msg_len, bool msg_is_bin,
			   uint64_t expires_at_ms)
{
	(void)p, (void)key, (void)type, (void)type_len, (void)msg, (void)msg_len;
	(void)msg_is_bin, (void)expires_at_ms;
	return -1;
}

int persist_log_flash_pop(struct persist *p, const struct store_key *key, const uint8_t *type,
			  size_t type_len)
{
	(void)p, (void)key, (void)type, (void)type_len;
	return -1;
}

int persist_log_clear(struct persist *p, const uint8_t *ns, size_t ns_len)
{
	(void)p, (void)ns, (void)ns_len;
	return -1;
}

bool persist_pending(const struct persist *p)
{
	(void)p;
	return false;
}

int persist_commit(struct persist *p)
{
	(void)p;
	return -1;
}

void persist_tick(struct persist *p, struct store *st, uint64_t now_ms)
{
	(void)p, (void)st, (void)now_ms;
}

int persist_check(const char *data_dir, const char *key_file, bool repair)
{
	(void)data_dir, (void)key_file, (void)repair;
	return -1;
}
