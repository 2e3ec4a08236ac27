#ifndef SESSD_CLIENT_JSON_H
#define SESSD_CLIENT_JSON_H

#include <stddef.h>
#include <stdio.h>

/*
 * json_write_string(f, p, n):
 * Write ${n} bytes of ${p} to ${f} as a JSON string, quotes included. Valid UTF-8 passes
 * through; '"', '\\' and control characters are escaped; every byte that is not part of a
 * valid UTF-8 sequence is written as \u00XX, the code point of that byte's value (so binary
 * data round-trips through a Latin-1 reading of those escapes, and the output is always valid
 * JSON).
 */
void json_write_string(FILE *f, const void *p, size_t n);

#endif
