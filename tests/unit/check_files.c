/* check_files.c - common/files: crash-safe writes whole or streamed, mkdir -p,
 * read-whole-file, remove-tree and the sweep of leftover temporaries.
 *
 * A stream's file is absent until commit and complete after it; abort leaves
 * nothing; the temporary a killed writer leaves is what files_sweep_tmp
 * removes; paths longer than KILN_PATH_MAX fail naming the path. */
#include "common/files.h"
#include "common/xalloc.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

Suite *suite_files(void);

/* Entries of dir whose name contains `part`. */
static int count_entries(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

START_TEST(write_atomic_creates_parents_and_writes_all)
{
    char *dir = tu_temp_dir("files");
    char path[KILN_PATH_MAX];
    snprintf(path, sizeof path, "%s/a/b/c.bin", dir);
    errbuf eb;
    const char text[] = "kiln writes whole files";
    ck_assert_int_eq(files_write_atomic(path, text, sizeof text, &eb), 0);
    void *got;
    size_t len;
    ck_assert_int_eq(files_read(path, &got, &len, &eb), 0);
    ck_assert_uint_eq(len, sizeof text);
    ck_assert_mem_eq(got, text, sizeof text);
    free(got);
    /* an empty file is a file */
    ck_assert_int_eq(files_write_atomic(path, "", 0, &eb), 0);
    ck_assert_int_eq(files_read(path, &got, &len, &eb), 0);
    ck_assert_uint_eq(len, 0);
    free(got);
    char sub[KILN_PATH_MAX];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    ck_assert_int_eq(count_entries(sub, ".tmp."), 0);
    ck_assert_int_eq(files_remove_tree(dir, &eb), 0);
    ck_assert(!exists(dir));
    free(dir);
}
END_TEST

START_TEST(stream_appears_only_on_commit)
{
    char *dir = tu_temp_dir("files");
    char path[KILN_PATH_MAX];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    errbuf eb;
    files_stream s;
    ck_assert_int_eq(files_stream_open(&s, path, &eb), 0);
    for (int i = 0; i < 1000; i++)
        fprintf(s.f, "line %d\n", i);
    /* a reader before the commit finds nothing at path; the temporary is there */
    ck_assert(!exists(path));
    ck_assert_int_eq(count_entries(dir, ".tmp."), 1);
    ck_assert_int_eq(files_stream_commit(&s, &eb), 0);
    ck_assert(exists(path));
    ck_assert_int_eq(count_entries(dir, ".tmp."), 0);
    void *got;
    size_t len;
    ck_assert_int_eq(files_read(path, &got, &len, &eb), 0);
    ck_assert(strstr(got, "line 999\n") != NULL);
    free(got);
    /* abort leaves the old file as it was and no temporary */
    ck_assert_int_eq(files_stream_open(&s, path, &eb), 0);
    fputs("half a new file", s.f);
    files_stream_abort(&s);
    ck_assert_int_eq(files_read(path, &got, &len, &eb), 0);
    ck_assert(strstr(got, "line 999\n") != NULL);
    free(got);
    ck_assert_int_eq(count_entries(dir, ".tmp."), 0);
    /* a writer killed before its commit leaves a temporary the sweep removes */
    ck_assert_int_eq(files_stream_open(&s, path, &eb), 0);
    fclose(s.f);
    ck_assert_int_eq(count_entries(dir, ".tmp."), 1);
    ck_assert_int_eq(files_sweep_tmp(dir), 1);
    ck_assert_int_eq(count_entries(dir, ".tmp."), 0);
    tu_remove_dir(dir);
    free(dir);
}
END_TEST

START_TEST(too_long_and_unwritable_paths_fail_naming_them)
{
    char *longp = xmalloc(KILN_PATH_MAX + 10);
    memset(longp, 'a', KILN_PATH_MAX + 9);
    longp[0] = '/';
    longp[KILN_PATH_MAX + 9] = '\0';
    errbuf eb;
    files_stream s;
    ck_assert_int_eq(files_stream_open(&s, longp, &eb), ERR_INVALID);
    ck_assert(strstr(eb.msg, "too long") != NULL);
    ck_assert_int_eq(files_write_atomic(longp, "x", 1, &eb), ERR_INVALID);
    free(longp);
    /* a parent that is a file */
    char *dir = tu_temp_dir("files");
    char path[KILN_PATH_MAX];
    snprintf(path, sizeof path, "%s/file", dir);
    ck_assert_int_eq(files_write_atomic(path, "x", 1, &eb), 0);
    snprintf(path, sizeof path, "%s/file/below", dir);
    ck_assert_int_eq(files_write_atomic(path, "x", 1, &eb), ERR_IO);
    ck_assert_msg(strstr(eb.msg, "file") != NULL, "%s", eb.msg);
    tu_remove_dir(dir);
    free(dir);
}
END_TEST

Suite *suite_files(void)
{
    Suite *s = suite_create("files");
    tu_case_add(s, "core", 0, NULL, NULL,
                TU_TESTS(write_atomic_creates_parents_and_writes_all, stream_appears_only_on_commit,
                         too_long_and_unwritable_paths_fail_naming_them));
    return s;
}
