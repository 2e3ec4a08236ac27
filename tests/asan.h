#ifndef SESSD_TESTS_ASAN_H
#define SESSD_TESTS_ASAN_H

/*
 * TESTS_ASAN: this file is compiled with AddressSanitizer. gcc says so with
 * __SANITIZE_ADDRESS__; clang 14 does not define that, and says it through __has_feature
 * only: tests that asked gcc's way alone ran a clang ASan build with their leak checks
 * compiled out and measured ASan's shadow and quarantine as the daemon's memory.
 */
#if defined(__SANITIZE_ADDRESS__)
#define TESTS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TESTS_ASAN 1
#endif
#endif

#endif
