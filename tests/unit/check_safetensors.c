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

/* A file image: u64 header length, the header text as given, then `data_len` zero bytes. */
static unsigned char *image(const char *header, size_t data_len, size_t *len)
{
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    unsigned char *p = calloc(1, *len);
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(p + 8, header, h);
    return p;
}

/* Opening must fail with ERR_FORMAT and a message containing `needle`. */
static void expect_bad(const char *header, size_t data_len, const char *needle)
{
    size_t len;
    unsigned char *p = image(header, data_len, &len);
    st_file *f = (st_file *)0x1;
    errbuf eb = {{0}};
    int rc = st_open_memory(&f, p, len, &eb);
    ck_assert_msg(rc == ERR_FORMAT, "accepted: %s", header);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(eb.msg, needle) != NULL, "message '%s' lacks '%s'", eb.msg, needle);
    free(p);
}

START_TEST(rejects_hostile_files)
{
    /* truncation: the data ends before the last tensor does */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "truncated");
    /* offsets out of range, reversed, or disagreeing with shape x dtype */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[100,104]}}", 8,
               "past the data");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 8, "begin");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 16, "need 12");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8,
               "non-negative");
    /* overlapping tensors */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               16, "overlap");
    /* absurd shapes: overflow of the element count, too many dims */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
               "\"data_offsets\":[0,4]}}",
               8, "absurd");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
               "\"data_offsets\":[0,4]}}",
               8, "dims");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 8, "shape[0]");
    /* wrong dtypes */
    expect_bad("{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 8,
               "unsupported dtype");
    expect_bad("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "dtype");
    /* bad JSON and bad structure */
    expect_bad("{\"a\": [1, 2", 0, "not valid JSON");
    expect_bad("[1, 2, 3]", 0, "not a JSON object");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 8,
               "unknown header field");
    expect_bad("{\"__metadata__\":{\"k\":3}}", 0, "not a string");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "not valid JSON");
}
END_TEST

START_TEST(rejects_bad_lengths)
{
    st_file *f;
    errbuf eb;
    /* shorter than the length prefix */
    unsigned char tiny[5] = {1, 2, 3, 4, 5};
    ck_assert_int_eq(st_open_memory(&f, tiny, sizeof tiny, &eb), ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eb.msg, "shorter"));
    /* a header-length bomb: claims 2^63 bytes of header */
    unsigned char bomb[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'};
    ck_assert_int_eq(st_open_memory(&f, bomb, sizeof bomb, &eb), ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eb.msg, "exceeds"));
    /* a header length within the limit but past the end of the file */
    unsigned char past[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    ck_assert_int_eq(st_open_memory(&f, past, sizeof past, &eb), ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(eb.msg, "past the end"));
    /* a file that does not exist names itself */
    ck_assert_int_eq(st_open(&f, "/nonexistent/kiln.safetensors", &eb), ERR_IO);
    ck_assert_ptr_nonnull(strstr(eb.msg, "/nonexistent/kiln.safetensors"));
}
END_TEST

START_TEST(every_truncation_of_a_real_file_fails_cleanly)
{
    /* Cut a valid file at every length: each prefix must be rejected, none may crash. */
    st_writer *w = st_writer_new();
    float x[5] = {1, 2, 3, 4, 5};
    int shape[1] = {5};
    st_writer_add_f32(w, "x", 1, shape, x);
    st_writer_add_f32(w, "y", 1, shape, x);
    void *buf;
    size_t len;
    st_writer_to_memory(w, &buf, &len);
    st_writer_free(w);
    for (size_t cut = 0; cut < len; cut++) {
        st_file *f;
        errbuf eb;
        ck_assert_msg(st_open_memory(&f, buf, cut, &eb) == ERR_FORMAT, "prefix %zu accepted", cut);
    }
    st_file *f;
    errbuf eb;
    ck_assert_int_eq(st_open_memory(&f, buf, len, &eb), 0);
    st_close(f);
    free(buf);
}
END_TEST

Suite *suite_safetensors(void)
{
    Suite *s = suite_create("safetensors");
    tu_case_add(s, "core", 0, NULL, NULL,
                TU_TESTS(roundtrip_memory, reads_reference_files, rejects_hostile_files,
                         rejects_bad_lengths, every_truncation_of_a_real_file_fails_cleanly));
    return s;
}
