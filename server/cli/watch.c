/* watch.c - following one job to its end over its event stream (cli_watch_job, see cli.h).
 *
 * Reads the job once (state, total steps, how many metric points and log
 * lines it has), then follows /api/v1/jobs/{id}/events from there: state
 * events print a line, metric events move the progress (their step) and
 * the latest values, and the stream's `end` closes it; the job is read
 * once more for its outcome. A dropped stream resumes from its cursor.
 */
#include "server/cli/cli.h"
#include "server/cli/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WATCH_LATEST 3

typedef struct watch {
    int tty;
    long step, total;
    char state[32];
    int last_decile;
    char names[WATCH_LATEST][64];
    double values[WATCH_LATEST];
    int n_latest;
} watch;

static void latest_set(watch *w, const char *name, double v)
{
    int i;
    for (i = 0; i < w->n_latest; i++)
        if (strcmp(w->names[i], name) == 0)
            break;
    if (i == w->n_latest) {
        if (w->n_latest == WATCH_LATEST)
            return;
        snprintf(w->names[w->n_latest++], sizeof w->names[0], "%s", name);
    }
    w->values[i] = v;
}

static void show(watch *w, int force)
{
    double f = w->total > 0 ? (double)w->step / (double)w->total : 0;
    if (f > 1)
        f = 1;
    char lat[256] = "";
    size_t used = 0;
    for (int i = 0; i < w->n_latest && used + 2 < sizeof lat; i++)
        used +=
            (size_t)snprintf(lat + used, sizeof lat - used, " %s=%.4g", w->names[i], w->values[i]);
    if (w->tty) {
        char bar[31];
        int fill = (int)(f * 30.0 + 0.5);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        printf("\r[%s] %5.1f%%  step %ld/%ld %-10s%s\033[K", bar, 100.0 * f, w->step, w->total,
               w->state, lat);
    } else if (force || (int)(f * 10) != w->last_decile) {
        printf("%s %5.1f%% step %ld/%ld%s\n", w->state, 100.0 * f, w->step, w->total, lat);
    }
    w->last_decile = (int)(f * 10);
    fflush(stdout);
}

static int on_event(void *ctx, const char *type, const json_t *d, const char *id)
{
    (void)id;
    watch *w = ctx;
    if (strcmp(type, "state") == 0) {
        snprintf(w->state, sizeof w->state, "%s", cli_str(d, "to"));
        if (w->tty)
            printf("\r\033[K");
        printf("%s: %s%s%s\n", w->state, cli_str(d, "reason"), cli_str(d, "message")[0] ? ": " : "",
               cli_str(d, "message"));
        show(w, 1);
    } else if (strcmp(type, "metric") == 0) {
        long step = (long)json_integer_value(json_object_get(d, "step"));
        if (step > w->step)
            w->step = step;
        json_t *v = json_object_get(d, "value");
        if (json_is_number(v))
            latest_set(w, cli_str(d, "name"), json_number_value(v));
        show(w, 0);
    }
    return 0;
}

int cli_watch_job(const char *id)
{
    json_t *j = client_job("GET", id, "");
    watch w;
    memset(&w, 0, sizeof w);
    w.tty = isatty(STDOUT_FILENO);
    w.last_decile = -1;
    json_t *p = json_object_get(j, "progress");
    w.step = (long)json_integer_value(json_object_get(p, "step"));
    w.total = (long)json_integer_value(json_object_get(p, "total_steps"));
    snprintf(w.state, sizeof w.state, "%s", cli_str(j, "state"));
    long long e = 0;
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(j, "events"), i, ev)
    {
        long long s = (long long)json_integer_value(json_object_get(ev, "seq"));
        if (s > e)
            e = s;
    }
    char cursor[128];
    snprintf(cursor, sizeof cursor, "%lld.%lld.%lld.-1", e,
             (long long)json_integer_value(json_object_get(j, "metric_count")),
             (long long)json_integer_value(json_object_get(j, "log_count")));
    json_decref(j);
    show(&w, 1);
    char *path = client_job_path(id, "/events");
    client_stream(path, cursor, on_event, &w, 45, 1000, 30, NULL);
    free(path);
    j = client_job("GET", id, "");
    const char *st = cli_str(j, "state");
    if (w.tty)
        printf("\n");
    printf("job %s %s: %s: %s\n", cli_str(j, "id"), st, cli_str(j, "reason"),
           cli_str(j, "message"));
    json_t *res = json_object_get(j, "result");
    if (json_is_object(res)) {
        char *s = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(6));
        printf("result: %s\n", s);
        free(s);
    }
    int ok = strcmp(st, "SUCCEEDED") == 0;
    json_decref(j);
    return ok ? 0 : 1;
}
