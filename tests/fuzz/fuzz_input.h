#ifndef SESSD_FUZZ_INPUT_H
#define SESSD_FUZZ_INPUT_H

/*
 * The fuzz targets' reading of their input: each choice they make takes bytes from the front,
 * and an input that runs out reads as zeros, so every input, however short, is a whole run.
 * And their checks: a failed one names the file and line, and aborts for the fuzzer.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s: check failed at line %d: %s\n", __FILE__, __LINE__,   \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

struct input {
	const uint8_t *p;
	size_t left;
};

/* The next byte, or 0 when the input is used up. */
static inline uint8_t take_u8(struct input *in)
{
	uint8_t v = 0;

	if (in->left > 0) {
		v = *in->p++;
		in->left--;
	}
	return v;
}

/* The next ${bytes} (at most 4) as a big-endian number. */
static inline uint32_t take_be(struct input *in, int bytes)
{
	uint32_t v = 0;

	for (int i = 0; i < bytes; i++)
		v = v << 8 | take_u8(in);
	return v;
}

/* ${n} bytes into ${out}: as many as the input has, zeros after. */
static inline void take_bytes(struct input *in, uint8_t *out, size_t n)
{
	size_t k = n < in->left ? n : in->left;

	if (n == 0)
		return;
	memcpy(out, in->p, k);
	memset(out + k, 0, n - k);
	in->p += k;
	in->left -= k;
}

#endif
