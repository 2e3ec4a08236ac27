/* secretpath: see secretpath.h. */
#include "secretpath.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

bool secretpath_shown(const char *path, int err)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	struct stat sb;
	size_t n;

	if (err != ENOENT && err != ENOTDIR && err != ENAMETOOLONG)
		return true;
	if (slash == NULL)
		return false;
	/* "//x" or "///x" has the root alone before its last '/' too: a base64 secret starts so
	 * one time in 4096, and was shown whole. */
	for (n = (size_t)(slash - path); n > 0 && path[n - 1] == '/'; n--)
		;
	if (n == 0)
		return false;
	if (n >= sizeof(dir))
		return false;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode);
}
