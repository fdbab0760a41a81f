/* check_pbwrite.c - the protocol-buffers writer against encodings worked out by
 * hand from the protobuf encoding guide (its own examples where it has them). */
#include "common/pbwrite.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

Suite *suite_pbwrite(void);

/* b holds exactly the n bytes of want. */
static void expect(const pb_buf *b, const unsigned char *want, size_t n)
{
    ck_assert_uint_eq(b->len, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(b->data[i] == want[i], "byte %zu: 0x%02x, want 0x%02x", i, b->data[i],
                      want[i]);
}

START_TEST(varints)
{
    pb_buf b;
    pb_init(&b);
    pb_uint(&b, 1, 150); /* the guide's first example */
    pb_uint(&b, 1, 300);
    pb_uint(&b, 16, 1); /* field 16: a two-byte tag */
    pb_int(&b, 3, -1);  /* int64 -1: ten bytes */
    pb_uint(&b, 2, 0);
    static const unsigned char want[] = {0x08, 0x96, 0x01, 0x08, 0xac, 0x02, 0x80, 0x01,
                                         0x01, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0x01, 0x10, 0x00};
    expect(&b, want, sizeof want);
    pb_free(&b);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(floats_and_bytes)
{
    pb_buf b, sub;
    pb_init(&b);
    pb_init(&sub);
    pb_float(&b, 2, 1.0f);
    pb_string(&b, 2, "testing"); /* the guide's string example */
    pb_uint(&sub, 1, 150);
    pb_message(&b, 3, &sub); /* the guide's embedded-message example */
    pb_string(&b, 4, "");
    static const unsigned char want[] = {0x15, 0x00, 0x00, 0x80, 0x3f, 0x12, 0x07,
                                         0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67,
                                         0x1a, 0x03, 0x08, 0x96, 0x01, 0x22, 0x00};
    expect(&b, want, sizeof want);
    pb_free(&sub);
    pb_free(&b);
}
END_TEST

START_TEST(raw_arrays)
{
    pb_buf b;
    pb_init(&b);
    float f[2] = {1.0f, -2.0f};
    int64_t i[2] = {1, -2};
    pb_floats_raw(&b, 9, f, 2);
    pb_int64s_raw(&b, 9, i, 2);
    static const unsigned char want[] = {0x4a, 0x08, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0,
                                         0x4a, 0x10, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                         0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    expect(&b, want, sizeof want);
    pb_free(&b);
}
END_TEST

START_TEST(long_fields_grow_the_buffer)
{
    enum { N = 100000 };
    static float v[N];
    for (int k = 0; k < N; k++)
        v[k] = (float)k;
    pb_buf b;
    pb_init(&b);
    pb_floats_raw(&b, 1, v, N);
    /* tag, then the length 400000 as a three-byte varint, then the data */
    ck_assert_uint_eq(b.len, 1 + 3 + 4 * (size_t)N);
    ck_assert_uint_eq(b.data[1], 0x80 | (400000 & 0x7f));
    ck_assert_uint_eq(b.data[2], 0x80 | ((400000 >> 7) & 0x7f));
    ck_assert_uint_eq(b.data[3], 400000 >> 14);
    float last;
    memcpy(&last, b.data + b.len - 4, 4);
    ck_assert(last == (float)(N - 1));
    pb_free(&b);
}
END_TEST

Suite *suite_pbwrite(void)
{
    Suite *s = suite_create("pbwrite");
    tu_case_add(s, "core", 0, NULL, NULL,
                TU_TESTS(varints, floats_and_bytes, raw_arrays, long_fields_grow_the_buffer));
    return s;
}
