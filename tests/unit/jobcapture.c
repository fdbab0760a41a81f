/* jobcapture.c - a recording job sink and a job runner for tests (see jobcapture.h). */
#include "tests/unit/jobcapture.h"

#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/jobs/checkpoint.h"
#include "worker/jobs/train.h"
#include "worker/models/model.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cap_started(void *ctx, long total)
{
    ((tu_capture *)ctx)->started_total = total;
}

static void cap_metric(void *ctx, const char *name, double v, long step, double epoch)
{
    (void)epoch;
    tu_capture *c = ctx;
    if (c->n < TU_MAX_POINTS) {
        snprintf(c->name[c->n], sizeof c->name[0], "%s", name);
        c->step[c->n] = step;
        c->value[c->n++] = v;
    }
}

static void cap_log(void *ctx, const char *level, const char *msg)
{
    (void)level;
    tu_capture *c = ctx;
    c->elastic_lines += strncmp(msg, "elastic: ", 9) == 0;
}

static void cap_checkpoint(void *ctx, const char *path, long step)
{
    tu_capture *c = ctx;
    if (c->checkpoints < TU_MAX_CKPTS) {
        c->ckpt_step[c->checkpoints] = step;
        c->ckpt_points[c->checkpoints] = c->n;
    }
    c->checkpoints++;
    snprintf(c->last_ckpt, sizeof c->last_ckpt, "%s", path);
}

static int cap_cancel(void *ctx)
{
    tu_capture *c = ctx;
    c->polls++;
    return c->cancel_after >= 0 && c->polls > c->cancel_after;
}

job_sink tu_capture_sink(tu_capture *c)
{
    job_sink s = {.ctx = c,
                  .started = cap_started,
                  .metric = cap_metric,
                  .log = cap_log,
                  .checkpoint = cap_checkpoint,
                  .cancel_requested = cap_cancel};
    return s;
}

double tu_last_metric(const tu_capture *c, const char *name)
{
    double v = -1;
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->name[i], name) == 0)
            v = c->value[i];
    return v;
}

static int key_cmp(const void *x, const void *y)
{
    return strcmp(x, y);
}

/* "name step" of each point of c, sorted; *n of them. */
static char (*point_keys(const tu_capture *c, int *n))[80]
{
    char(*k)[80] = xcalloc((size_t)c->n + 1, sizeof *k);
    for (int i = 0; i < c->n; i++)
        snprintf(k[i], sizeof k[i], "%s %ld", c->name[i], c->step[i]);
    qsort(k, (size_t)c->n, sizeof *k, key_cmp);
    *n = c->n;
    return k;
}

void tu_same_points(const tu_capture *a, const tu_capture *b)
{
    int na, nb;
    char(*ka)[80] = point_keys(a, &na), (*kb)[80] = point_keys(b, &nb);
    for (int i = 0; i < na && i < nb; i++)
        ck_assert_msg(strcmp(ka[i], kb[i]) == 0, "points differ: '%s' against '%s'", ka[i], kb[i]);
    ck_assert_msg(na == nb, "%d points against %d", na, nb);
    free(ka);
    free(kb);
}

int tu_has_metric(const tu_capture *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->name[i], name) == 0)
            return 1;
    return 0;
}

int tu_run_job(const job_spec *s, const char *dir, tu_capture *cap, const char *resume,
               const char *init, job_result *res)
{
    job_sink sink = tu_capture_sink(cap);
    job_env env = {.out_dir = dir, .resume_path = resume, .init_weights = init, .sink = &sink};
    errbuf eb = {{0}};
    int rc = job_run(s, &env, res, &eb);
    if (rc != 0 && rc != ERR_CANCELLED)
        ck_abort_msg("job failed: %s", eb.msg);
    return rc;
}

void tu_job_begin(tu_job *t, const char *tag)
{
    memset(t, 0, sizeof *t);
    t->dir = tu_temp_dir(tag);
    t->cap = xcalloc(1, sizeof *t->cap);
    t->cap->cancel_after = -1;
}

int tu_job_run(tu_job *t, const job_spec *s, const char *resume, const char *init)
{
    if (t->ran)
        job_result_free(&t->res);
    t->ran = 1;
    return tu_run_job(s, t->dir, t->cap, resume, init, &t->res);
}

int tu_job_refused(tu_job *t, const job_spec *s, errbuf *eb)
{
    if (t->ran)
        job_result_free(&t->res);
    t->ran = 1;
    job_sink sink = tu_capture_sink(t->cap);
    job_env env = {.out_dir = t->dir, .sink = &sink};
    memset(eb, 0, sizeof *eb);
    return job_run(s, &env, &t->res, eb);
}

void tu_job_end(tu_job *t)
{
    if (t->ran)
        job_result_free(&t->res);
    free(t->cap);
    tu_remove_dir(t->dir);
    free(t->dir);
    memset(t, 0, sizeof *t);
}

double tu_check_found_net(const job_spec *s, const char *dir, const job_result *res, double target)
{
    json_t *arch = tu_load_json(dir, "architecture.json"), *rep = tu_load_json(dir, "report.json");
    model_cfg c;
    field_errors fe;
    fe_init(&fe);
    ck_assert_int_eq(modelcfg_parse(&c, arch, "model", &fe), 0);
    double mf = modelcfg_macs(&c) / 1e6;
    double t = json_number_value(json_object_get(rep, "target_mflops"));
    if (target > 0)
        ck_assert_msg(fabs(t - target) <= 1e-6 * target, "report's target %.6f, expected %.6f", t,
                      target);
    ck_assert_msg(mf >= 0.99 * t && mf <= 1.01 * t, "%.5f MFLOPs for a target of %.5f", mf, t);
    json_t *after = json_object_get(rep, "after");
    ck_assert(fabs(json_number_value(json_object_get(after, "mflops")) - mf) < 1e-9);
    ck_assert_int_eq(json_integer_value(json_object_get(after, "params")), modelcfg_params(&c));
    ck_assert(json_array_size(json_object_get(rep, "layers")) > 0);
    net m;
    net_init(&m);
    errbuf eb;
    char path[KILN_PATH_MAX];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert(model_build(&m, &c, 64, 0, NULL, &eb) == 0);
    ck_assert(net_macs(&m) / 1e6 == mf);
    ck_assert_msg(ckpt_load_weights(path, &m, &eb) == 0, "%s", eb.msg);
    dataset tr, te;
    ck_assert(dataset_load(&tr, &te, &s->data, &eb) == 0);
    eval_result e;
    train_evaluate(&m, &te, 64, NULL, &e);
    double reported = json_number_value(json_object_get(res->summary, "test_top1"));
    ck_assert_msg(fabs(e.top1 - reported) < 1e-9, "evaluated %.6f, reported %.6f", e.top1,
                  reported);
    ck_assert(fabs(json_number_value(json_object_get(after, "top1")) - reported) < 1e-9);
    dataset_free(&tr);
    dataset_free(&te);
    net_deinit(&m);
    json_decref(arch);
    json_decref(rep);
    return mf;
}
