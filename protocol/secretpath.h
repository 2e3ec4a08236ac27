/*
 * secretpath: how a message names a secret's file (sessd's --auth-file, --admin-auth-file and
 * --key-file; libsessd's auth_file, so sessctl's --auth-file and $SESSD_AUTH_FILE) that cannot
 * be opened. The value may be the secret itself, given where its file's path goes
 * (--auth-file "$SECRET"): a message showing it whole puts the secret in a log (the journal,
 * a cron job's mail, an app's log), where others read it.
 */
#ifndef SESSD_SECRETPATH_H
#define SESSD_SECRETPATH_H

#include <stdbool.h>

/*
 * secretpath_shown(path, err):
 * Whether a message may show ${path}, which open(2) refused with ${err}: yes unless it names
 * no file (ENOENT, ENOTDIR, ENAMETOOLONG) and does not read as a path either, a '/' with a
 * directory before the last one (the root alone, "//x" too, does not count: base64 starts
 * with '/' one time in 64). A typo in a file's name is then still shown whole; a secret is
 * named by its length only.
 */
bool secretpath_shown(const char *path, int err);

#endif
