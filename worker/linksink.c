/* linksink.c - job_sink callbacks onto a pool link (see linksink.h). */
#include "linksink.h"

#include "common/log.h"

#include <stdio.h>
#include <string.h>

static void ls_started(void *ctx, long total_steps)
{
    linksink *ls = ctx;
    link_started(ls->link, ls->job_id, ls->attempt, total_steps);
}

static void ls_metric(void *ctx, const char *name, double value, long step, double epoch)
{
    linksink *ls = ctx;
    link_metric_value(ls->link, ls->job_id, ls->attempt, name, value, step, epoch);
}

static void ls_log(void *ctx, const char *level, const char *text)
{
    linksink *ls = ctx;
    link_log(ls->link, ls->job_id, ls->attempt, level, text);
}

static void ls_checkpoint(void *ctx, const char *path, long step)
{
    linksink *ls = ctx;
    if (link_checkpoint_file(ls->link, ls->job_id, ls->attempt, step, path) < 0)
        log_warn("job %s: checkpoint %s not sent to the server", ls->job_id, path);
}

static int ls_cancel(void *ctx)
{
    linksink *ls = ctx;
    return link_cancel_requested(ls->link, ls->job_id, ls->attempt);
}

void linksink_init(linksink *ls, pool_link *link, const char *job_id, int attempt, job_sink *out)
{
    memset(ls, 0, sizeof *ls);
    ls->link = link;
    snprintf(ls->job_id, sizeof ls->job_id, "%s", job_id);
    ls->attempt = attempt;
    memset(out, 0, sizeof *out);
    out->ctx = ls;
    out->started = ls_started;
    out->metric = ls_metric;
    out->log = ls_log;
    out->checkpoint = ls_checkpoint;
    out->cancel_requested = ls_cancel;
}
