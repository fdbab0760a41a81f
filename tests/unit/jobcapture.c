/* jobcapture.c - a recording job sink and a job runner for tests (see jobcapture.h). */
#include "tests/unit/jobcapture.h"

#include <check.h>
#include <stdio.h>
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
    (void)step;
    tu_capture *c = ctx;
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
