#ifndef SESSD_CLIENT_JSON_H
#define SESSD_CLIENT_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * json_utf8_sequence(p, n, code_point):
 * The length of the valid UTF-8 sequence at ${p} (at most ${n} bytes, at least 1), its code
 * point in ${code_point}; or 0 when it is not one: overlong forms, surrogates and code points
 * past U+10FFFF are refused (RFC 3629), and ${code_point} is then left alone.
 */
size_t json_utf8_sequence(const void *p, size_t n, uint32_t *code_point);

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
