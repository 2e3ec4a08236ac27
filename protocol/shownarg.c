/* shownarg: see shownarg.h. */
#include "shownarg.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void shown_arg(const char *arg, char out[SHOWN_ARG_SIZE])
{
	size_t name_len = strcspn(arg, "=");
	bool option_like = name_len <= SHOWN_ARG_FULL;

	for (size_t i = 0; i < name_len && option_like; i++)
		option_like = (arg[i] >= 'a' && arg[i] <= 'z') || arg[i] == '-';
	if (option_like)
		snprintf(out, SHOWN_ARG_SIZE, "%.*s%s", (int)name_len, arg,
		         arg[name_len] == '=' ? "=..." : "");
	else if (strlen(arg) <= SHOWN_ARG_START)
		snprintf(out, SHOWN_ARG_SIZE, "%s", arg);
	else
		snprintf(out, SHOWN_ARG_SIZE, "%.*s...", SHOWN_ARG_START, arg);
}
