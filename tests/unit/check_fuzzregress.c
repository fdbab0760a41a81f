/* check_fuzzregress.c - replays the fuzz corpora and crash regressions.
 *
 * Every file under tests/fuzz/corpus/<target>/ and tests/fuzz/regressions/
 * <target>/ goes through the same target body libFuzzer runs
 * (tests/unit/fuzztargets.c), built the normal way: a crash or a broken
 * contract (an error without a message, a canonical spec that is not a
 * fixed point, ...) fails the case. The regression folders hold the inputs
 * that once crashed; they must now give a clean error. KILN_FUZZ_DIR
 * overrides the folder (default tests/fuzz, from the repository root).
 */
#include "tests/unit/fuzztargets.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_fuzzregress(void);

static const char *fuzz_dir(void)
{
    const char *d = getenv("KILN_FUZZ_DIR");
    return d != NULL ? d : "tests/fuzz";
}

/* Runs every file of dir through fn; returns how many (-1: no such dir). */
static int replay_dir(const char *dir, fuzz_fn fn)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "cannot open %s", path);
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        unsigned char *buf = malloc((size_t)len + 1);
        ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
        fclose(f);
        /* A crash here fails the case (forked); the path is in the log. */
        fprintf(stderr, "fuzzregress: %s\n", path);
        ck_assert_int_eq(fn(buf, (size_t)len), 0);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

static void replay(const char *target)
{
    fuzz_fn fn = fuzz_target(target);
    ck_assert_msg(fn != NULL, "no fuzz target %s", target);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/corpus/%s", fuzz_dir(), target);
    int n = replay_dir(dir, fn);
    ck_assert_msg(n > 0,
                  "no seed corpus in %s (run from the repository root or set "
                  "KILN_FUZZ_DIR)",
                  dir);
    snprintf(dir, sizeof dir, "%s/regressions/%s", fuzz_dir(), target);
    int r = replay_dir(dir, fn);
    printf("fuzzregress %s: %d corpus inputs, %d regressions, all clean\n", target, n,
           r > 0 ? r : 0);
}

START_TEST(jobspec)
{
    replay("jobspec");
}
END_TEST

START_TEST(safetensors)
{
    replay("safetensors");
}
END_TEST

START_TEST(idx)
{
    replay("idx");
}
END_TEST

START_TEST(cifar)
{
    replay("cifar");
}
END_TEST

START_TEST(msg)
{
    replay("msg");
}
END_TEST

START_TEST(image)
{
    replay("image");
}
END_TEST

Suite *suite_fuzzregress(void)
{
    Suite *s = suite_create("fuzzregress");
    tu_case_add(s, "replay", 60, NULL, NULL,
                TU_TESTS(jobspec, image, safetensors, idx, cifar, msg));
    return s;
}
