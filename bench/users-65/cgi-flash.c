/*
 * A CGI program written only from README.md ("The C API in brief") and libsessd(3): it reads
 * the session named by the request's cookie (HTTP_COOKIE, "sid=ID"), adds a flash to it and
 * reads the flashes back, answering as a CGI program does (a Status header, a body).
 *
 * Env: HTTP_COOKIE, SESSD_URL (default unix:/run/sessd/sessd.sock), SESSD_AUTH_FILE (the
 * secret, if the daemon has one).
 * Answers: 200 with the flashes; 401 when the cookie names no session (none, expired or
 * logged out); 503 when sessd cannot be reached or refuses the secret (the reason on
 * standard error, the web server's error log, never the session id); 500 otherwise.
 * Build: cc cgi-flash.c $(pkg-config --cflags --libs libsessd)
 */
#include <sessd.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* session_cookie(cookie, name, len): the value of the cookie ${name} in the Cookie header
 * ${cookie}, its length in ${len}; NULL when there is none. Borrowed from ${cookie}. */
static const char *session_cookie(const char *cookie, const char *name, size_t *len)
{
	size_t name_len = strlen(name);
	const char *p = cookie;

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == ';')
			p++;
		if (strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
			const char *v = p + name_len + 1;
			*len = strcspn(v, ";");
			return *len > 0 ? v : NULL;
		}
		p = strchr(p, ';');
	}
	return NULL;
}

static int answer(int status, const char *body)
{
	printf("Status: %d\r\nContent-Type: text/plain\r\n\r\n%s\n", status, body);
	return 0;
}

int main(void)
{
	const char *url = getenv("SESSD_URL") ? getenv("SESSD_URL") : "unix:/run/sessd/sessd.sock";
	struct sessd_options o = {
	    .timeout_ms = 2000, .ns = "cgi", .auth_file = getenv("SESSD_AUTH_FILE")};
	struct sessd_client *c;
	char why[SESSD_ERRMSG_SIZE];
	struct sessd_flashes *flashes;
	const char *id;
	size_t id_len, queued = 0;
	void *data;
	size_t data_len;
	int rc;

	if ((id = session_cookie(getenv("HTTP_COOKIE"), "sid", &id_len)) == NULL)
		return answer(401, "no session cookie");
	if ((rc = sessd_connect_errbuf(url, &o, &c, why, sizeof(why))) != SESSD_OK) {
		fprintf(stderr, "cgi-flash: %s (%s, errno %d)\n", why, sessd_strerror(rc), errno);
		return answer(503, "try again shortly");
	}
	/* The session must exist: a flash for an expired or logged-out session is dropped. */
	rc = sessd_get(c, id, id_len, &data, &data_len);
	if (rc == SESSD_NOT_FOUND) {
		sessd_close(c);
		return answer(401, "no such session (expired or logged out)");
	}
	if (rc != SESSD_OK)
		goto fail;
	free(data);
	/* A push makes the session live at least ttl_ms from now (libsessd(3), FLASHES): give it
	 * what the session has left, so that a flash does not lengthen a login. */
	uint64_t left_ms;
	if ((rc = sessd_ttl(c, id, id_len, &left_ms)) == SESSD_NOT_FOUND) {
		sessd_close(c);
		return answer(401, "no such session (expired or logged out)");
	}
	if (rc != SESSD_OK)
		goto fail;
	rc = sessd_flash_push_existing(c, id, id_len, "info", "Seen by the CGI", 15, left_ms,
	                               &queued);
	if (rc == SESSD_NOT_FOUND) {
		sessd_close(c);
		return answer(401, "the session ended meanwhile");
	}
	if (rc != SESSD_OK)
		goto fail;
	if ((rc = sessd_flash_pop(c, id, id_len, "info", &flashes)) != SESSD_OK)
		goto fail;
	printf("Status: 200\r\nContent-Type: text/plain\r\n\r\n");
	for (size_t i = 0; i < flashes->count; i++)
		printf("%s: %.*s\n", flashes->items[i].type, (int)flashes->items[i].msg_len,
		       (const char *)flashes->items[i].msg);
	sessd_flashes_free(flashes);
	sessd_close(c);
	return 0;

fail:
	fprintf(stderr, "cgi-flash: %s (%s%s)\n", sessd_errmsg(c), sessd_strerror(rc),
	        sessd_outcome_unknown(c) ? ", may have been carried out" : "");
	sessd_close(c);
	return answer(rc == SESSD_ERR_CONNECT || rc == SESSD_ERR_AUTH ? 503 : 500,
	              "something went wrong");
}
