/* sink.c - the calls every job makes on its sink (see sink.h). */
#include "worker/jobs/sink.h"

#include "worker/dist.h"

#include <stdarg.h>
#include <stdio.h>

void sink_metric(const job_sink *s, const char *name, double v, long step, long steps_per_epoch)
{
    if (s != NULL && s->metric != NULL)
        s->metric(s->ctx, name, v, step, (double)step / (double)steps_per_epoch);
}

void sink_say(const job_sink *s, const char *level, const char *fmt, ...)
{
    if (s == NULL || s->log == NULL)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->log(s->ctx, level, msg);
}

void sink_checkpoint(const job_sink *s, const char *path, long step)
{
    if (s != NULL && s->checkpoint != NULL)
        s->checkpoint(s->ctx, path, step);
}

int sink_cancel_now(const job_sink *s)
{
    int flag = 0;
    if (s != NULL && s->cancel_requested != NULL)
        flag = s->cancel_requested(s->ctx) != 0;
    return dist_any_stop(flag); /* a stop asked of any rank stops them all */
}
