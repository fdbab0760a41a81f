/* check_msg.c - the pool protocol's message encoding and validation (common/msg.c). */
#include "common/msg.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_msg(void);

/* Encodes m, decodes the text into a new msg, and returns the decode code. */
static int roundtrip(const msg *m, msg *back, errbuf *eb)
{
    size_t len;
    char *text = msg_encode(m, &len);
    int rc = msg_decode(back, text, len, eb);
    free(text);
    return rc;
}

START_TEST(hello_roundtrip)
{
    msg m, b;
    errbuf eb;
    msg_init(&m, MSG_HELLO);
    msg_set(&m, "pool_id", json_string("pool-a"));
    msg_set(&m, "ranks", json_integer(2));
    msg_set(&m, "cores", json_integer(4));
    msg_set(&m, "version", json_string("0.1.0"));
    msg_set(&m, "hosts", json_pack("[ss]", "h1", "h1"));
    msg_set(&m, "current", json_null());
    ck_assert_int_eq(roundtrip(&m, &b, &eb), 0);
    ck_assert_int_eq(b.type, MSG_HELLO);
    ck_assert_str_eq(msg_str(&b, "pool_id", ""), "pool-a");
    ck_assert_int_eq(msg_int(&b, "ranks", 0), 2);
    ck_assert_int_eq(b.attempt, 0);
    msg_deinit(&b);
    /* ranks 0 is refused, naming the field */
    msg_set(&m, "ranks", json_integer(0));
    ck_assert_int_eq(roundtrip(&m, &b, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "ranks"));
    msg_deinit(&b);
    msg_deinit(&m);
}
END_TEST

START_TEST(job_message_fields)
{
    msg m, b;
    errbuf eb;
    msg_init(&m, MSG_METRIC);
    msg_set_job(&m, "j1", 3, 17);
    msg_set(&m, "points", json_pack("[{s:i,s:f,s:f}]", "step", 10, "loss", 0.5, "lr", 1e-3));
    ck_assert_int_eq(roundtrip(&m, &b, &eb), 0);
    ck_assert_str_eq(b.job_id, "j1");
    ck_assert_int_eq(b.attempt, 3);
    ck_assert_uint_eq(b.seq, 17);
    ck_assert(msg_is_job_message(b.type));
    msg_deinit(&b);

    /* a point with no value, a non-numeric value, a missing step */
    msg_set(&m, "points", json_pack("[{s:i}]", "step", 1));
    ck_assert_int_eq(roundtrip(&m, &b, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "points[0]"));
    msg_deinit(&b);
    msg_set(&m, "points", json_pack("[{s:i,s:s}]", "step", 1, "loss", "x"));
    ck_assert_int_eq(roundtrip(&m, &b, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "points[0].loss"));
    msg_deinit(&b);
    msg_set(&m, "points", json_pack("[{s:f}]", "loss", 1.0));
    ck_assert_int_eq(roundtrip(&m, &b, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "step"));
    msg_deinit(&b);

    /* seq 0 is not a valid job message seq */
    json_object_set_new(m.body, "seq", json_integer(0));
    msg_set(&m, "points", json_pack("[{s:i,s:f}]", "step", 1, "loss", 1.0));
    ck_assert_int_eq(roundtrip(&m, &b, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "seq"));
    msg_deinit(&b);
    /* a job id that could climb out of the data dir */
    json_object_set_new(m.body, "seq", json_integer(1));
    json_object_set_new(m.body, "job_id", json_string("../../etc"));
    ck_assert_int_eq(roundtrip(&m, &b, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "job_id"));
    msg_deinit(&b);
    /* no job_id */
    json_object_set_new(m.body, "seq", json_integer(1));
    json_object_del(m.body, "job_id");
    ck_assert_int_eq(roundtrip(&m, &b, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "job_id"));
    msg_deinit(&b);
    msg_deinit(&m);
}
END_TEST

START_TEST(finished_blobs)
{
    msg m, b;
    errbuf eb;
    msg_init(&m, MSG_FINISHED);
    msg_set_job(&m, "j1", 1, 9);
    msg_set(&m, "status", json_string("succeeded"));
    msg_set(&m, "result", json_pack("{s:f}", "test_acc", 0.9));
    msg_set(&m, "artifacts",
            json_pack("[{s:s,s:i},{s:s,s:i}]", "name", "model.safetensors", "size", 5, "name",
                      "report.json", "size", 2));
    ck_assert_int_eq(msg_add_blob(&m, "hello", 5), 0);
    ck_assert_int_eq(msg_add_blob(&m, "{}", 2), 0);
    ck_assert_int_eq(roundtrip(&m, &b, &eb), 0);
    ck_assert_int_eq(msg_blobs_expected(&b), 2);
    /* frames are attached by the transport; one missing is refused */
    msg_add_blob(&b, "hello", 5);
    ck_assert_int_eq(msg_check_blobs(&b, &eb), ERR_INVALID);
    msg_add_blob(&b, "{}", 2);
    ck_assert_int_eq(msg_check_blobs(&b, &eb), 0);
    msg_deinit(&b);
    /* a size that does not match the frame */
    ck_assert_int_eq(roundtrip(&m, &b, &eb), 0);
    msg_add_blob(&b, "hell", 4);
    msg_add_blob(&b, "{}", 2);
    ck_assert_int_eq(msg_check_blobs(&b, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "artifact 0"));
    msg_deinit(&b);
    /* unsafe names and bad status */
    msg_set(&m, "artifacts", json_pack("[{s:s,s:i}]", "name", "../x", "size", 1));
    ck_assert_int_eq(roundtrip(&m, &b, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "artifacts[0].name"));
    msg_deinit(&b);
    msg_set(&m, "artifacts", json_array());
    msg_set(&m, "status", json_string("done"));
    ck_assert_int_eq(roundtrip(&m, &b, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "status"));
    msg_deinit(&b);
    msg_deinit(&m);
}
END_TEST

START_TEST(bad_frames)
{
    msg b;
    errbuf eb;
    ck_assert_int_eq(msg_decode(&b, "{nope", 5, &eb), ERR_FORMAT);
    msg_deinit(&b);
    ck_assert_int_eq(msg_decode(&b, "[1]", 3, &eb), ERR_FORMAT);
    msg_deinit(&b);
    ck_assert_int_eq(msg_decode(&b, "{\"type\":\"explode\"}", 18, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "explode"));
    msg_deinit(&b);
    const char *dup = "{\"type\":\"ready\",\"type\":\"hello\"}";
    ck_assert_int_eq(msg_decode(&b, dup, strlen(dup), &eb), ERR_FORMAT);
    msg_deinit(&b);
    const char *ok = "{\"type\":\"ready\",\"extra\":1}";
    ck_assert_int_eq(msg_decode(&b, ok, strlen(ok), &eb), 0);
    ck_assert_int_eq(b.type, MSG_READY);
    msg_deinit(&b);
    const char *fail = "{\"type\":\"failed\",\"job_id\":\"j\",\"attempt\":1,\"seq\":2,"
                       "\"reason\":\"RANK_FAILED\"}";
    ck_assert_int_eq(msg_decode(&b, fail, strlen(fail), &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "message"));
    msg_deinit(&b);
}
END_TEST

/* ready's "cached" and assign's "init" (api/messages.md): good ones pass,
 * each bad field is named. */
#define SHA63 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0"
#define SHA   SHA63 "8"
#define ASSIGN_INIT(x)                                                                             \
    "{\"type\":\"assign\",\"job_id\":\"j\",\"attempt\":1,\"spec\":{},\"init\":" x "}"

START_TEST(init_and_cached_fields)
{
    static const struct {
        const char *text, *field; /* field NULL: valid */
    } cases[] = {
        {"{\"type\":\"ready\",\"cached\":[\"" SHA "\"]}", NULL},
        {"{\"type\":\"ready\",\"cached\":[\"" SHA63 "\"]}", "cached[0]"},
        {"{\"type\":\"ready\",\"cached\":\"" SHA "\"}", "cached"},
        {ASSIGN_INIT("{\"sha256\":\"" SHA "\",\"size\":5,\"attached\":true}"), NULL},
        {ASSIGN_INIT("{\"sha256\":\"" SHA "\",\"size\":-1,\"attached\":true}"), "size"},
        {ASSIGN_INIT("{\"sha256\":\"" SHA "\",\"size\":5}"), "init.attached"},
        {ASSIGN_INIT("{\"sha256\":\"X" SHA63 "\",\"size\":5,\"attached\":false}"), "init.sha256"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *text = cases[i].text;
        msg b;
        errbuf eb = {{0}};
        int rc = msg_decode(&b, text, strlen(text), &eb);
        if (cases[i].field == NULL)
            ck_assert_msg(rc == 0, "%s: %s", text, eb.msg);
        else
            ck_assert_msg(rc == ERR_INVALID && strstr(eb.msg, cases[i].field) != NULL,
                          "%s: rc %d, '%s' does not name %s", text, rc, eb.msg, cases[i].field);
        msg_deinit(&b);
    }
}
END_TEST

START_TEST(names_and_types)
{
    for (int t = 0; t < MSG__COUNT; t++)
        ck_assert_int_eq(msg_type_parse(msg_type_name((msg_type)t)), t);
    ck_assert_int_eq(msg_type_parse("nope"), -1);
    ck_assert(msg_name_ok("model.safetensors"));
    ck_assert(!msg_name_ok(".hidden"));
    ck_assert(!msg_name_ok("a/b"));
    ck_assert(!msg_name_ok(""));
    ck_assert(!msg_is_job_message(MSG_ACK));
    ck_assert(msg_is_job_message(MSG_FAILED));
}
END_TEST

Suite *suite_msg(void)
{
    Suite *s = suite_create("msg");
    tu_case_add(s, "core", 0, NULL, NULL,
                TU_TESTS(hello_roundtrip, job_message_fields, finished_blobs, bad_frames,
                         init_and_cached_fields, names_and_types));
    return s;
}
