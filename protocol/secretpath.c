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
	if (slash == NULL || slash == path)
		return false;
	n = (size_t)(slash - path);
	if (n >= sizeof(dir))
		return false;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode);
}
