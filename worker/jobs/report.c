/* report.c - JSON lines and a progress bar for local runs (see report.h). */
#include "worker/jobs/report.h"

#include "common/clock.h"
#include "common/log.h"

#include <string.h>
#include <time.h>

static void clear_bar(report *r)
{
    if (r->bar_drawn) {
        fputs("\r\033[K", stdout);
        r->bar_drawn = 0;
    }
}

static void on_metric(void *ctx, const char *name, double value, long step, double epoch)
{
    report *r = ctx;
    int epoch_level = strncmp(name, "test/", 5) == 0 || strncmp(name, "val/", 4) == 0;
    if (r->bar && r->metrics == stdout && !epoch_level)
        return; /* the bar shows the per-step numbers */
    if (r->metrics == stdout)
        clear_bar(r);
    fprintf(r->metrics,
            "{\"name\":\"%s\",\"value\":%.9g,\"step\":%ld,\"epoch\":%.4f,\"time\":%.3f}\n", name,
            value, step, epoch, clock_wall_s());
    fflush(r->metrics);
}

static void on_log(void *ctx, const char *level, const char *msg)
{
    report *r = ctx;
    if (r->bar)
        clear_bar(r);
    if (strcmp(level, "error") == 0)
        log_error("%s", msg);
    else if (strcmp(level, "warn") == 0)
        log_warn("%s", msg);
    else
        log_info("%s", msg);
}

static void on_progress(void *ctx, long step, long total, double loss, double images_per_s)
{
    report *r = ctx;
    if (!r->bar)
        return;
    double t = clock_mono_s();
    if (r->step0 < 0)
        r->step0 = step - 1;
    if (step < total && t - r->t_drawn < 0.1)
        return;
    r->t_drawn = t;
    double frac = total > 0 ? (double)step / (double)total : 1.0;
    double done = (double)(step - r->step0), left = (double)(total - step);
    double eta = done > 0 ? (t - r->t_start) / done * left : 0;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[30] = '\0';
    printf("\r\033[K[%s] %3.0f%% %ld/%ld loss %.4f %.0f img/s ETA %d:%02d", bar, 100 * frac, step,
           total, loss, images_per_s, (int)(eta / 60), (int)eta % 60);
    fflush(stdout);
    r->bar_drawn = 1;
}

void report_init(report *r, FILE *metrics, int bar)
{
    memset(r, 0, sizeof *r);
    r->metrics = metrics != NULL ? metrics : stdout;
    r->bar = bar;
    r->t_start = clock_mono_s();
    r->step0 = -1;
}

job_sink report_sink(report *r)
{
    job_sink s = {.ctx = r, .metric = on_metric, .log = on_log, .progress = on_progress};
    return s;
}

void report_finish(report *r)
{
    if (r->bar_drawn) {
        fputs("\n", stdout);
        r->bar_drawn = 0;
    }
}
