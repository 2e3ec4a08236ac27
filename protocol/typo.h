#ifndef SESSD_TYPO_H
#define SESSD_TYPO_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Which known name an unknown one was probably meant as ("did you mean"), for sessd's options
 * and sessctl's commands alike: the nearest by edit distance (insertions, deletions,
 * substitutions and swaps of neighbouring bytes count 1 each: "pnig" is 1 from "ping"), case
 * aside, taken at 1 for names of 3 bytes or fewer, else 2. Here because both the daemon and
 * the client spell names on their command lines, and neither may depend on the other.
 */

/* The longest name compared: longer than any option or command, by a margin. */
#define TYPO_MAX_LEN 32

/* One search; its body is visible so that callers keep it on their stack. */
struct typo_search {
	char lower[TYPO_MAX_LEN + 1]; /* the unknown name in lower case, NUL-terminated */
	size_t len;
	size_t best_distance; /* one more than the distance still taken */
	const char *best;     /* the nearest name offered so far, or NULL */
};

/*
 * typo_search_init(s, name, len):
 * Start a search for the ${len} bytes of ${name}. Returns false, and the search finds
 * nothing, when ${name} is empty or longer than TYPO_MAX_LEN: no typo of a known name.
 */
bool typo_search_init(struct typo_search *s, const char *name, size_t len);

/*
 * typo_search_offer(s, known):
 * Compare the known name ${known} (borrowed: it must outlive the search, whose best it may
 * become); a nearer one than any offered before becomes s->best.
 */
void typo_search_offer(struct typo_search *s, const char *known);

#endif
