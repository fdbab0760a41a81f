/* check.h - always-on invariant checks.
 *
 * KILN_CHECK(cond) is for broken invariants (bugs), never for bad input:
 * when cond is false it logs file:line and the failed expression at error
 * level and aborts. Unlike assert() it is never compiled out, so release
 * builds stop at the bug instead of running on with corrupt state.
 * KILN_CHECKF adds a printf-style detail line (the values involved).
 */
#ifndef KILN_CHECK_H
#define KILN_CHECK_H

/* kiln_check_fail logs "check failed at FILE:LINE: EXPR" (and the detail, if
 * fmt is not NULL) and aborts. Called only through the macros below. */
_Noreturn void kiln_check_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define KILN_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0))                                                          \
            kiln_check_fail(__FILE__, __LINE__, #cond, NULL);                                      \
    } while (0)

#define KILN_CHECKF(cond, ...)                                                                     \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0))                                                          \
            kiln_check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                               \
    } while (0)

#endif
