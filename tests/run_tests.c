/* run_tests.c - the one check runner: every suite in tests/unit/, by name.
 *
 * The list comes from suites.inc, which the Makefile writes from the file
 * names (tests/unit/check_<name>.c exports `Suite *suite_<name>(void)`).
 * Prints check's summary line and exits non-zero on any failure or error.
 * CK_RUN_SUITE / CK_RUN_CASE select a subset; KILN_SUITES=a,b,c runs only
 * the suites listed; CK_FORK=no runs in-process for gdb. KILN_TAP=file
 * additionally writes TAP output. `kiln-tests --isas` prints the kernel paths
 * this CPU can run (for `make test`, which runs the kernel suites under each).
 */
#include "worker/nn/isa.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUITE(name) Suite *suite_##name(void);
#include "suites.inc"
#undef SUITE

/* Whether suite name is in the comma-separated list (NULL = every suite). */
static int listed(const char *list, const char *name)
{
    if (list == NULL)
        return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--isas") == 0) {
        for (int i = 0; i < NN_ISA_COUNT; i++)
            if (nn_isa_supported((nn_isa)i))
                printf("%s\n", nn_isa_name((nn_isa)i));
        return 0;
    }
    const char *only = getenv("KILN_SUITES");
    SRunner *sr = srunner_create(NULL);
#define SUITE(name)                                                                                \
    if (listed(only, #name))                                                                       \
        srunner_add_suite(sr, suite_##name());
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
