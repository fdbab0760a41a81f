/* check_safetensors.c - the safetensors reader and writer. */
#include "common/safetensors.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_safetensors(void);

START_TEST(roundtrip_memory)
{
    st_writer *w = st_writer_new();
    float x[6] = {1, 2, 3, 4, 5, 6};
    int shape[2] = {2, 3};
    int64_t ishape[1] = {2}, iv[2] = {-7, 1LL << 40};
    ck_assert_int_eq(st_writer_add_f32(w, "a.weight", 2, shape, x), 0);
    ck_assert_int_eq(st_writer_add(w, "n", ST_I64, 1, ishape, iv), 0);
    ck_assert_int_eq(st_writer_add_f32(w, "a.weight", 2, shape, x), ERR_EXISTS);
    st_writer_meta(w, "model", "{\"arch\":\"x\"}");
    void *buf;
    size_t len;
    st_writer_to_memory(w, &buf, &len);
    st_writer_free(w);
    ck_assert_uint_eq(len % 8, 0);
    st_file *f;
    errbuf eb;
    ck_assert_int_eq(st_open_memory(&f, buf, len, &eb), 0);
    ck_assert_int_eq(st_count(f), 2);
    ck_assert_str_eq(st_get(f, 0)->name, "a.weight");
    ck_assert_str_eq(st_meta(f, "model"), "{\"arch\":\"x\"}");
    float y[6];
    ck_assert_int_eq(st_read_f32(f, "a.weight", y, 6, &eb), 0);
    ck_assert_mem_eq(x, y, sizeof x);
    int64_t jv[2];
    ck_assert_int_eq(st_read_i64(f, "n", jv, 2, &eb), 0);
    ck_assert_int_eq(jv[1], 1LL << 40);
    ck_assert_int_eq(st_read_f32(f, "missing", y, 6, &eb), ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(eb.msg, "missing"));
    st_close(f);
    free(buf);
}
END_TEST

START_TEST(reads_reference_files)
{
    st_file *f = tu_open_ref("layers.safetensors");
    ck_assert_int_gt(st_count(f), 100);
    ck_assert_ptr_nonnull(st_meta(f, "conv2d_1x1"));
    st_close(f);
}
END_TEST

Suite *suite_safetensors(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, roundtrip_memory);
    tcase_add_test(tc, reads_reference_files);
    suite_add_tcase(s, tc);
    return s;
}
