/* JSON strings for sessctl --json: always valid JSON, whatever bytes a session holds. */
#include "json.h"

#include <stdint.h>

size_t json_utf8_sequence(const void *bytes, size_t n, uint32_t *code_point)
{
	const uint8_t *p = bytes;
	uint32_t cp;
	size_t len;

	if (p[0] < 0x80) {
		*code_point = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*code_point = cp;
	return len;
}

void json_write_string(FILE *f, const void *p, size_t n)
{
	const uint8_t *s = p;
	size_t i = 0, len;
	uint32_t cp;

	fputc('"', f);
	while (i < n) {
		len = json_utf8_sequence(s + i, n - i, &cp);
		if (len == 0) {
			fprintf(f, "\\u%04x", s[i]);
			i++;
			continue;
		}
		/* The C1 controls (U+009B is CSI), the bidirectional overrides and isolates and
		 * the line and paragraph separators, escaped as JSON allows, the string unchanged:
		 * raw, a visitor's text in a session drove or reordered the operator's terminal
		 * (flash-pop's plain output escapes the same), and U+2028 ends a line in JavaScript
		 * before ES2019. */
		if (len > 1 && (cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) ||
		                (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029)) {
			fprintf(f, "\\u%04x", (unsigned)cp);
			i += len;
			continue;
		}
		if (len > 1) {
			fwrite(s + i, 1, len, f);
			i += len;
			continue;
		}
		switch (s[i]) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (s[i] < 0x20 || s[i] == 0x7f)
				fprintf(f, "\\u%04x", s[i]);
			else
				fputc(s[i], f);
		}
		i++;
	}
	fputc('"', f);
}
