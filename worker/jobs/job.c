/* job.c - job dispatch (see job.h). */
#include "worker/jobs/job.h"

#include "worker/jobs/adapt.h"
#include "worker/jobs/prune.h"
#include "worker/jobs/train.h"

#include <stdio.h>
#include <string.h>

void job_result_add_artifact(job_result *res, const char *name)
{
    if (res->n_artifacts < JOB_MAX_ARTIFACTS)
        snprintf(res->artifacts[res->n_artifacts++], sizeof res->artifacts[0], "%s", name);
}

void job_result_free(job_result *res)
{
    json_decref(res->summary);
    memset(res, 0, sizeof *res);
}

static int run_train(const job_spec *spec, const job_env *env, job_result *res, errbuf *eb)
{
    char weights[1100];
    snprintf(weights, sizeof weights, "%s/model.safetensors", env->out_dir);
    train_env te = {.dist = env->dist,
                    .work_dir = env->out_dir,
                    .resume_path = env->resume_path,
                    .init_weights = env->init_weights,
                    .weights_out = weights,
                    .sink = env->sink};
    train_result tr;
    int rc = train_run(spec, &te, &tr, eb);
    res->cancelled = tr.cancelled;
    res->summary = json_pack("{s:f, s:f, s:I, s:f, s:f}", "test_top1", tr.test_top1, "test_loss",
                             tr.test_loss, "steps", (json_int_t)tr.steps, "seconds", tr.seconds,
                             "images_per_s", tr.images_per_s);
    if (tr.step_seconds > 0 && tr.run_steps > 0) {
        /* training alone: set-up and evaluation excluded */
        json_object_set_new(
            res->summary, "step_images_per_s",
            json_real((double)tr.run_steps * spec->optim.batch_size / tr.step_seconds));
        json_object_set_new(res->summary, "allreduce_ms_per_step",
                            json_real(1e3 * tr.allreduce_seconds / (double)tr.run_steps));
    }
    if (tr.val_top1 >= 0)
        json_object_set_new(res->summary, "val_top1", json_real(tr.val_top1));
    if (spec->optim.ema > 0)
        json_object_set_new(res->summary, "ema_top1", json_real(tr.ema_top1));
    if (spec->data.dataset == DS_FOLDER || spec->data.dataset == DS_MANIFEST)
        json_object_set_new(res->summary, "bad_files", json_integer(tr.bad_files));
    if (rc == 0)
        job_result_add_artifact(res, "model.safetensors");
    if (rc == 0 && spec->optim.ema > 0)
        job_result_add_artifact(res, "model.ema.safetensors");
    return rc;
}

/* A prune or adapt job: the search's job types. */
static int run_search(const job_spec *spec, const job_env *env, job_result *res, errbuf *eb)
{
    int rc =
        spec->type == JOB_PRUNE ? prune_run(spec, env, res, eb) : adapt_run(spec, env, res, eb);
    if (res->summary == NULL) /* a job that failed before it had one */
        res->summary = json_object();
    return rc;
}

int job_run(const job_spec *spec, const job_env *env, job_result *res, errbuf *eb)
{
    memset(res, 0, sizeof *res);
    switch (spec->type) {
    case JOB_TRAIN:
        return run_train(spec, env, res, eb);
    case JOB_PRUNE:
    case JOB_ADAPT:
        return run_search(spec, env, res, eb);
    default:
        res->summary = json_object();
        return err_set(eb, ERR_UNSUPPORTED, "%s jobs are not available in this build",
                       jobspec_type_name(spec->type));
    }
}
