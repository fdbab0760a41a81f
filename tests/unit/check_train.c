/* check_train.c - the train job end to end on small synthetic data.
 *
 * It learns; resuming from a checkpoint continues the same run (the loss
 * curve after the checkpoint equals the uninterrupted one, bit for bit, with
 * the same seed and thread count); the weights it writes evaluate to the
 * accuracy it reports; cancel stops it with a checkpoint; a bad data folder
 * is an error naming the file.
 */
#include "common/jobspec.h"
#include "common/xalloc.h"
#include "tests/unit/jobcapture.h"
#include "tests/unit/testutil.h"
#include "worker/jobs/checkpoint.h"
#include "worker/jobs/train.h"
#include "worker/models/model.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Suite *suite_train(void);

/* A small job: 4-class synthetic 12x12 images, a two-stage ResNet. */
static void make_spec(job_spec *spec, int epochs, long ckpt_every, const char *extra_optim)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"name\":\"t\",\"type\":\"train\",\"seed\":3,"
             "\"model\":{\"arch\":\"resnet_cifar\",\"image_size\":12,\"in_channels\":1,"
             "\"num_classes\":4,\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[8]},"
             "{\"width\":16,\"mids\":[16]}]},"
             "\"data\":{\"dataset\":\"synthetic\",\"synthetic\":{\"train\":512,\"test\":256,"
             "\"classes\":4,\"channels\":1,\"size\":12}},"
             "\"optim\":{\"optimizer\":\"sgd\",\"lr\":0.05,\"batch_size\":32,\"epochs\":%d,"
             "\"warmup_epochs\":0.5%s},"
             "\"checkpoint\":{\"every_steps\":%ld,\"keep_last\":50}}",
             epochs, extra_optim, ckpt_every);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    ck_assert_msg(j != NULL, "%s", jerr.text);
    field_errors fe;
    fe_init(&fe);
    char msg[1024];
    int rc = jobspec_parse(spec, NULL, j, &fe);
    fe_format(&fe, msg, sizeof msg);
    ck_assert_msg(rc == 0, "spec rejected: %s", msg);
    json_decref(j);
}

START_TEST(learns_and_writes_weights_that_evaluate_the_same)
{
    job_spec spec;
    make_spec(&spec, 4, 0, "");
    char *dir = tu_temp_dir("train"), weights[1100];
    snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
    tu_capture *cap = xcalloc(1, sizeof *cap);
    cap->cancel_after = -1;
    job_sink sink = tu_capture_sink(cap);
    train_env env = {.work_dir = dir, .weights_out = weights, .sink = &sink};
    train_result res;
    errbuf eb = {{0}};
    ck_assert_msg(train_run(&spec, &env, &res, &eb) == 0, "%s", eb.msg);
    ck_assert_int_eq(res.steps, 4 * (512 / 32));
    /* chance is 0.25; the synthetic classes are easy */
    ck_assert_msg(res.test_top1 > 0.8, "test top-1 %.3f after 4 epochs", res.test_top1);
    ck_assert_int_eq(cap->checkpoints, 4); /* one per epoch */
    int test_points = 0;
    for (int i = 0; i < cap->n; i++)
        test_points += strcmp(cap->name[i], "test/top1") == 0;
    ck_assert_int_eq(test_points, 4);
    /* the written weights reproduce the reported accuracy */
    net m;
    net_init(&m);
    ck_assert(model_build(&m, &spec.model, 64, 0, NULL, &eb) == 0);
    ck_assert_msg(ckpt_load_weights(weights, &m, &eb) == 0, "%s", eb.msg);
    dataset tr, te;
    ck_assert(dataset_load(&tr, &te, &spec.data, &eb) == 0);
    eval_result e;
    train_evaluate(&m, &te, 64, NULL, &e);
    ck_assert_msg(e.top1 == res.test_top1, "evaluated %.6f, reported %.6f", e.top1, res.test_top1);
    dataset_free(&tr);
    dataset_free(&te);
    net_deinit(&m);
    free(cap);
    tu_remove_dir(dir);
    free(dir);
    jobspec_free(&spec);
}
END_TEST

/* optim.ema: the average written beside every checkpoint follows
 * ema_k = d ema_(k-1) + (1 - d) w_k from the initial weights, and the
 * reported EMA accuracy is that of the saved average. */
START_TEST(ema_follows_its_recursion)
{
    job_spec spec;
    make_spec(&spec, 1, 1, ",\"ema\":0.75,\"max_steps\":4");
    char *dir = tu_temp_dir("train"), weights[1100];
    snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
    tu_capture *cap = xcalloc(1, sizeof *cap);
    cap->cancel_after = -1;
    job_sink sink = tu_capture_sink(cap);
    train_env env = {.work_dir = dir, .weights_out = weights, .sink = &sink};
    train_result res;
    errbuf eb = {{0}};
    ck_assert_msg(train_run(&spec, &env, &res, &eb) == 0, "%s", eb.msg);
    ck_assert_int_eq(res.steps, 4);
    net w, e;
    net_init(&w);
    net_init(&e);
    ck_assert(model_build(&w, &spec.model, 32, spec.seed, NULL, &eb) == 0);
    ck_assert(model_build(&e, &spec.model, 64, 0, NULL, &eb) == 0);
    size_t n = w.n_params;
    float *ema = xmallocarray(n, sizeof(float));
    memcpy(ema, w.params, n * sizeof(float)); /* ema_0: the initial weights */
    double worst = 0;
    for (int k = 1; k <= 4; k++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/ckpt-%08d.safetensors", dir, k);
        ck_assert_msg(ckpt_load_weights(p, &w, &eb) == 0, "%s", eb.msg);
        snprintf(p, sizeof p, "%s/ckpt-%08d.ema.safetensors", dir, k);
        ck_assert_msg(ckpt_load_weights(p, &e, &eb) == 0, "%s", eb.msg);
        for (size_t i = 0; i < n; i++) {
            ema[i] = 0.75f * ema[i] + 0.25f * w.params[i];
            double d = fabs((double)ema[i] - (double)e.params[i]);
            worst = d > worst ? d : worst;
        }
    }
    ck_assert_msg(worst < 1e-6, "EMA differs from the recursion by %g", worst);
    /* The final average sits beside the weights and scores what was reported. */
    char p[1200];
    snprintf(p, sizeof p, "%s/model.ema.safetensors", dir);
    ck_assert_msg(ckpt_load_weights(p, &e, &eb) == 0, "%s", eb.msg);
    dataset tr, te;
    ck_assert(dataset_load(&tr, &te, &spec.data, &eb) == 0);
    eval_result er;
    train_evaluate(&e, &te, 64, NULL, &er);
    ck_assert_msg(er.top1 == res.ema_top1, "EMA evaluated %.6f, reported %.6f", er.top1,
                  res.ema_top1);
    int points = 0;
    for (int i = 0; i < cap->n; i++)
        points += strcmp(cap->name[i], "test/top1_ema") == 0;
    ck_assert_int_eq(points, 1);
    dataset_free(&tr);
    dataset_free(&te);
    free(ema);
    net_deinit(&w);
    net_deinit(&e);
    free(cap);
    tu_remove_dir(dir);
    free(dir);
    jobspec_free(&spec);
}
END_TEST

START_TEST(resume_continues_the_same_run)
{
    job_spec spec;
    /* SGD with clipping; checkpoint every 5 steps, resume from step 20 (mid-epoch 2) */
    make_spec(&spec, 2, 5, ",\"grad_clip\":1.0");
    char *dir_a = tu_temp_dir("train"), *dir_b = tu_temp_dir("train");
    tu_capture *a = xcalloc(1, sizeof *a), *b = xcalloc(1, sizeof *b);
    a->cancel_after = b->cancel_after = -1;
    job_sink sa = tu_capture_sink(a), sb = tu_capture_sink(b);
    train_env ea = {.work_dir = dir_a, .sink = &sa};
    train_result ra, rb;
    errbuf eb = {{0}};
    ck_assert_msg(train_run(&spec, &ea, &ra, &eb) == 0, "%s", eb.msg);
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt-%08d.safetensors", dir_a, 20);
    ck_assert_msg(access(ckpt, R_OK) == 0, "no checkpoint at step 20");
    train_env eb_env = {.work_dir = dir_b, .resume_path = ckpt, .sink = &sb};
    ck_assert_msg(train_run(&spec, &eb_env, &rb, &eb) == 0, "%s", eb.msg);
    ck_assert_int_eq(rb.steps, ra.steps);
    /* every training-loss point after step 20 is identical */
    int compared = 0;
    for (int i = 0; i < b->n; i++) {
        if (strcmp(b->name[i], "train/loss") != 0 || b->step[i] <= 20)
            continue;
        for (int k = 0; k < a->n; k++) {
            if (strcmp(a->name[k], "train/loss") == 0 && a->step[k] == b->step[i]) {
                ck_assert_msg(a->value[k] == b->value[i], "step %ld: loss %.9g vs %.9g", b->step[i],
                              a->value[k], b->value[i]);
                compared++;
            }
        }
    }
    ck_assert_int_ge(compared, 1);
    ck_assert_msg(ra.test_top1 == rb.test_top1, "final top-1 %.6f vs %.6f", ra.test_top1,
                  rb.test_top1);
    /* a's points up to the checkpoint and b's after it are a's, each step once */
    tu_capture *ab = xcalloc(1, sizeof *ab);
    for (int i = 0; i < a->n; i++)
        if (a->step[i] <= 20) {
            snprintf(ab->name[ab->n], sizeof ab->name[0], "%s", a->name[i]);
            ab->step[ab->n++] = a->step[i];
        }
    for (int i = 0; i < b->n; i++) {
        snprintf(ab->name[ab->n], sizeof ab->name[0], "%s", b->name[i]);
        ab->step[ab->n++] = b->step[i];
    }
    tu_same_points(a, ab);
    free(ab);
    free(a);
    free(b);
    tu_remove_dir(dir_a);
    tu_remove_dir(dir_b);
    free(dir_a);
    free(dir_b);
    jobspec_free(&spec);
}
END_TEST

/* A resumed run starts after its checkpoint's step and never logs that step again,
 * so every point of a step must come before a checkpoint at that step: a pool that
 * dies just after the checkpoint loses nothing. With checkpoints every half epoch,
 * one falls on each epoch's end, where the evaluation's points are logged. */
START_TEST(checkpoint_follows_its_steps_points)
{
    job_spec spec;
    make_spec(&spec, 2, 8, ""); /* 16 steps an epoch */
    tu_job t;
    tu_job_begin(&t, "train");
    ck_assert_int_eq(tu_job_run(&t, &spec, NULL, NULL), 0);
    const tu_capture *c = t.cap;
    int at_epoch_end = 0;
    for (int k = 0; k < c->checkpoints && k < TU_MAX_CKPTS; k++) {
        at_epoch_end += c->ckpt_step[k] % 16 == 0;
        for (int i = c->ckpt_points[k]; i < c->n; i++)
            ck_assert_msg(c->step[i] > c->ckpt_step[k],
                          "%s at step %ld came after the checkpoint of step %ld", c->name[i],
                          c->step[i], c->ckpt_step[k]);
    }
    ck_assert_int_ge(at_epoch_end, 2);
    ck_assert(tu_has_metric(c, "test/top1"));
    tu_job_end(&t);
    jobspec_free(&spec);
}
END_TEST

START_TEST(cancel_stops_with_a_checkpoint)
{
    job_spec spec;
    make_spec(&spec, 3, 0, "");
    char *dir = tu_temp_dir("train");
    tu_capture *cap = xcalloc(1, sizeof *cap);
    cap->cancel_after = 7;
    job_sink sink = tu_capture_sink(cap);
    train_env env = {.work_dir = dir, .sink = &sink};
    train_result res;
    errbuf eb = {{0}};
    ck_assert_int_eq(train_run(&spec, &env, &res, &eb), ERR_CANCELLED);
    ck_assert(res.cancelled);
    ck_assert_int_eq(res.steps, 7);
    ck_assert_int_eq(cap->checkpoints, 1);
    ck_assert_ptr_nonnull(strstr(cap->last_ckpt, "ckpt-00000007"));
    free(cap);
    tu_remove_dir(dir);
    free(dir);
    jobspec_free(&spec);
}
END_TEST

START_TEST(bad_data_is_named)
{
    const char *text = "{\"type\":\"train\",\"model\":{\"arch\":\"resnet_cifar\",\"image_size\":28,"
                       "\"in_channels\":1,\"num_classes\":10,\"depth\":8,\"widths\":[4,4,4]},"
                       "\"data\":{\"dataset\":\"mnist\",\"root\":\"/nonexistent/mnist\"}}";
    json_t *j = json_loads(text, 0, NULL);
    job_spec spec;
    field_errors fe;
    fe_init(&fe);
    ck_assert_int_eq(jobspec_parse(&spec, NULL, j, &fe), 0);
    json_decref(j);
    train_env env = {0};
    train_result res;
    errbuf eb = {{0}};
    int rc = train_run(&spec, &env, &res, &eb);
    ck_assert_int_lt(rc, 0);
    ck_assert_msg(strstr(eb.msg, "/nonexistent/mnist") != NULL, "message: %s", eb.msg);
    jobspec_free(&spec);
}
END_TEST

Suite *suite_train(void)
{
    Suite *s = suite_create("train");
    tu_case_add(s, "synthetic", 120, NULL, NULL,
                TU_TESTS(learns_and_writes_weights_that_evaluate_the_same,
                         ema_follows_its_recursion, resume_continues_the_same_run,
                         checkpoint_follows_its_steps_points, cancel_stops_with_a_checkpoint,
                         bad_data_is_named));
    return s;
}
