/*
 * "Did you mean": the nearest known name to an unknown one, by a bounded edit distance.
 */
#include "typo.h"

#include <ctype.h>
#include <string.h>

/* The edit distance of ${a} (${la} bytes) and ${b} (${lb}), each at most TYPO_MAX_LEN. */
static size_t distance(const char *a, size_t la, const char *b, size_t lb)
{
	size_t d[TYPO_MAX_LEN + 1][TYPO_MAX_LEN + 1];

	for (size_t i = 0; i <= la; i++)
		for (size_t j = 0; j <= lb; j++) {
			size_t best;

			if (i == 0 || j == 0) {
				d[i][j] = i + j;
				continue;
			}
			best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[la][lb];
}

bool typo_search_init(struct typo_search *s, const char *name, size_t len)
{
	s->best = NULL;
	s->len = 0;
	s->lower[0] = '\0';
	/* Nothing is taken: a name longer than the table holds is no typo of a known one. */
	s->best_distance = 0;
	if (len == 0 || len > TYPO_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		s->lower[i] = (char)tolower((unsigned char)name[i]);
	s->lower[len] = '\0';
	s->len = len;
	s->best_distance = len <= 3 ? 2 : 3;
	return true;
}

void typo_search_offer(struct typo_search *s, const char *known)
{
	size_t known_len = strlen(known), d;

	if (s->best_distance == 0 || known_len > TYPO_MAX_LEN)
		return;
	d = distance(s->lower, s->len, known, known_len);
	if (d < s->best_distance) {
		s->best_distance = d;
		s->best = known;
	}
}
