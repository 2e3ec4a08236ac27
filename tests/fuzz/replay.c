/*
 * Replay a fuzz corpus through LLVMFuzzerTestOneInput without libFuzzer, so the corpus runs
 * as an ordinary test in every build. Usage: fuzz_replay DIR... Each file is one input.
 * Exits 0 when every input ran (a failing check aborts), 1 on a usage or I/O error.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL, *grown;
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			if ((grown = realloc(data, cap)) == NULL)
				goto fail;
			data = grown;
		}
		n = fread(data + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f))
		goto fail;
	fclose(f);
	/* an exact-size copy, so a sanitizer sees any read past the input */
	grown = malloc(len ? len : 1);
	if (grown == NULL)
		goto fail_data;
	memcpy(grown, data, len);
	LLVMFuzzerTestOneInput(grown, len);
	free(grown);
	free(data);
	return 0;

fail:
	fclose(f);
fail_data:
	perror(path);
	free(data);
	return -1;
}

int main(int argc, char **argv)
{
	int i, files = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR...\n", argv[0]);
		return 1;
	}
	for (i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *e;
		char path[4096];

		if (d == NULL) {
			perror(argv[i]);
			return 1;
		}
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
			if (replay_file(path) == -1) {
				closedir(d);
				return 1;
			}
			files++;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", files);
	/* an empty corpus means the test checked nothing */
	return files > 0 ? 0 : 1;
}
