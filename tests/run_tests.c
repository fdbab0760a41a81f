/* run_tests.c - the one check runner: every suite in tests/unit/, by name.
 *
 * The list comes from suites.inc, which the Makefile writes from the file
 * names (tests/unit/check_<name>.c exports `Suite *suite_<name>(void)`).
 * Prints check's summary line and exits non-zero on any failure or error.
 * CK_RUN_SUITE / CK_RUN_CASE select a subset; CK_FORK=no runs in-process
 * for gdb. KILN_TAP=file additionally writes TAP output.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#define SUITE(name) Suite *suite_##name(void);
#include "suites.inc"
#undef SUITE

int main(void)
{
    SRunner *sr = srunner_create(NULL);
#define SUITE(name) srunner_add_suite(sr, suite_##name());
#include "suites.inc"
#undef SUITE
    const char *tap = getenv("KILN_TAP");
    if (tap != NULL)
        srunner_set_tap(sr, tap);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    int run = srunner_ntests_run(sr);
    srunner_free(sr);
    if (run == 0) {
        fprintf(stderr, "kiln-tests: no test ran (check CK_RUN_SUITE / CK_RUN_CASE)\n");
        return 1;
    }
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
