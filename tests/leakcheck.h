#ifndef SESSD_TESTS_LEAKCHECK_H
#define SESSD_TESTS_LEAKCHECK_H

/*
 * Leak-checked criterion tests. Under ASan, LeakSanitizer's own report comes when criterion's
 * worker exits, after the test has been counted, and criterion ignores failures in .fini, so
 * a leak would pass silently. These macros run the test body and then a recoverable leak
 * check, failing the test itself. Memory a fixture still holds is reachable, so it is not
 * reported.
 */

#include <criterion/criterion.h>

#include "asan.h"

#ifdef TESTS_ASAN
#include <sanitizer/lsan_interface.h>
#define LEAKCHECK_ASSERT_NONE()                                                                    \
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (report above)")
#else
#define LEAKCHECK_ASSERT_NONE() ((void)0)
#endif

#define LEAK_CHECKED_TEST(suite, name)                                                             \
	static void suite##_##name##_body(void);                                                   \
	Test(suite, name)                                                                          \
	{                                                                                          \
		suite##_##name##_body();                                                           \
		LEAKCHECK_ASSERT_NONE();                                                           \
	}                                                                                          \
	static void suite##_##name##_body(void)

/* The same with criterion's test options, e.g. LEAK_CHECKED_TEST_OPTS(s, n, .timeout = 60). */
#define LEAK_CHECKED_TEST_OPTS(suite, name, ...)                                                   \
	static void suite##_##name##_body(void);                                                   \
	Test(suite, name, __VA_ARGS__)                                                             \
	{                                                                                          \
		suite##_##name##_body();                                                           \
		LEAKCHECK_ASSERT_NONE();                                                           \
	}                                                                                          \
	static void suite##_##name##_body(void)

#endif
