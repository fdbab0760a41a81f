/* poolrelay.c - the control messages between the ranks of a pool (see poolrelay.h).
 *
 * On the wire a message is the header's JSON text, a NUL, then the blob.
 */
#include "worker/poolrelay.h"

#include "common/files.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "worker/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void poolctl_send(int dest, json_t *hdr, const void *blob, size_t len)
{
    char *text = json_dumps(hdr, JSON_COMPACT);
    json_decref(hdr);
    size_t tl = strlen(text) + 1;
    char *buf = xmalloc(tl + len);
    memcpy(buf, text, tl);
    if (len > 0)
        memcpy(buf + tl, blob, len);
    free(text);
    dist_ctl_send(dest, buf, tl + len);
    free(buf);
}

json_t *poolctl_recv(int src, void **blob, size_t *len)
{
    size_t n;
    char *buf = dist_ctl_recv(src, &n);
    *blob = NULL;
    *len = 0;
    size_t tl = strnlen(buf, n);
    json_error_t je;
    json_t *hdr = tl < n ? json_loads(buf, 0, &je) : NULL;
    if (!json_is_object(hdr) || !json_is_string(json_object_get(hdr, "op"))) {
        log_error("pool: a malformed control message from rank %d dropped", src);
        json_decref(hdr);
        free(buf);
        return NULL;
    }
    if (n > tl + 1) {
        *len = n - tl - 1;
        *blob = xmalloc(*len);
        memcpy(*blob, buf + tl + 1, *len);
    }
    free(buf);
    return hdr;
}

/* ---- a job root's side ------------------------------------------------------------ */

static void send_report(relay *r, json_t *hdr, const void *blob, size_t len)
{
    if (hdr == NULL) { /* text that is not UTF-8, say */
        log_warn("job %s: a report that JSON cannot carry was not sent", r->job_id);
        return;
    }
    json_object_set_new(hdr, "job_id", json_string(r->job_id));
    json_object_set_new(hdr, "attempt", json_integer(r->attempt));
    poolctl_send(0, hdr, blob, len);
}

static void rl_started(void *ctx, long total)
{
    send_report(ctx, json_pack("{s:s,s:I}", "op", "started", "total", (json_int_t)total), NULL, 0);
}

/* Values travel as text ("%.17g" gives back the same double, NaN and inf included). */
static void rl_metric(void *ctx, const char *name, double value, long step, double epoch)
{
    char v[40], e[40];
    snprintf(v, sizeof v, "%.17g", value);
    snprintf(e, sizeof e, "%.17g", epoch);
    send_report(ctx,
                json_pack("{s:s,s:s,s:s,s:I,s:s}", "op", "metric", "name", name, "value", v, "step",
                          (json_int_t)step, "epoch", e),
                NULL, 0);
}

static double text_double(const json_t *v)
{
    const char *t = json_string_value(v);
    return t != NULL ? strtod(t, NULL) : 0.0;
}

static void rl_log(void *ctx, const char *level, const char *text)
{
    send_report(ctx, json_pack("{s:s,s:s,s:s}", "op", "log", "level", level, "text", text), NULL,
                0);
}

static void rl_checkpoint(void *ctx, const char *path, long step)
{
    relay *r = ctx;
    void *data;
    size_t len;
    errbuf eb;
    if (files_read(path, &data, &len, &eb) != 0) {
        log_warn("job %s: checkpoint not sent to the server: %s", r->job_id, eb.msg);
        return;
    }
    send_report(r, json_pack("{s:s,s:I}", "op", "checkpoint", "step", (json_int_t)step), data, len);
    free(data);
}

/* What rank 0 sent to this rank while its job runs: "cancel" or "stop". */
static int rl_cancel(void *ctx)
{
    relay *r = ctx;
    int src;
    while (dist_ctl_poll(&src)) {
        void *blob;
        size_t len;
        json_t *hdr = poolctl_recv(src, &blob, &len);
        const char *op = json_string_value(json_object_get(hdr, "op"));
        if (op != NULL && strcmp(op, "cancel") == 0)
            r->cancelled = 1;
        else if (op != NULL && strcmp(op, "stop") == 0)
            dist_stop_request();
        else if (op != NULL)
            log_warn("pool: control message '%s' while running job %s ignored", op, r->job_id);
        json_decref(hdr);
        free(blob);
    }
    return r->cancelled;
}

void relay_sink(relay *r, const char *job_id, int attempt, job_sink *out)
{
    memset(r, 0, sizeof *r);
    snprintf(r->job_id, sizeof r->job_id, "%s", job_id);
    r->attempt = attempt;
    memset(out, 0, sizeof *out);
    out->ctx = r;
    out->started = rl_started;
    out->metric = rl_metric;
    out->log = rl_log;
    out->checkpoint = rl_checkpoint;
    out->cancel_requested = rl_cancel;
}

int relay_finished(relay *r, int cancelled, const json_t *summary, const char *out_dir,
                   const job_result *res, errbuf *eb)
{
    int n = cancelled ? 0 : res->n_artifacts;
    json_t *arts = json_array();
    char *all = NULL;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        char path[KILN_PATH_MAX];
        void *data;
        size_t len;
        if (files_pathf(path, eb, "%s/%s", out_dir, res->artifacts[i]) != 0 ||
            files_read(path, &data, &len, eb) != 0) {
            json_decref(arts);
            free(all);
            return ERR_IO;
        }
        all = xrealloc(all, total + len + 1);
        memcpy(all + total, data, len);
        total += len;
        free(data);
        json_array_append_new(
            arts, json_pack("{s:s,s:I}", "name", res->artifacts[i], "len", (json_int_t)len));
    }
    send_report(r,
                json_pack("{s:s,s:b,s:O?,s:o}", "op", "finished", "cancelled", cancelled, "summary",
                          summary, "artifacts", arts),
                all, total);
    free(all);
    return 0;
}

void relay_failed(relay *r, const char *reason, const char *message)
{
    send_report(r, json_pack("{s:s,s:s,s:s}", "op", "failed", "reason", reason, "message", message),
                NULL, 0);
}

/* ---- rank 0's side ---------------------------------------------------------------- */

/* finished: the artifacts are consecutive in the blob, in the order listed. */
static void apply_finished(pool_link *l, const char *job, int attempt, const json_t *hdr,
                           const unsigned char *blob, size_t len)
{
    const json_t *list = json_object_get(hdr, "artifacts");
    size_t n = json_array_size(list), off = 0;
    link_artifact *arts = xcalloc(n + 1, sizeof *arts);
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        const json_t *a = json_array_get(list, i);
        json_int_t al = json_integer_value(json_object_get(a, "len"));
        arts[i].name = json_string_value(json_object_get(a, "name"));
        ok = arts[i].name != NULL && al >= 0 && (size_t)al <= len - off;
        if (ok) {
            arts[i].bytes = blob != NULL ? blob + off : (const void *)"";
            arts[i].len = (size_t)al;
            off += (size_t)al;
        }
    }
    errbuf eb = {{0}};
    const json_t *summary = json_object_get(hdr, "summary");
    if (!ok)
        link_failed(l, job, attempt, "INTERNAL",
                    "the job's artifacts came malformed from its root");
    else if (link_finished(l, job, attempt, json_is_true(json_object_get(hdr, "cancelled")),
                           json_is_object(summary) ? summary : NULL, arts, (int)n, &eb) != 0)
        link_failed(l, job, attempt, "INTERNAL", eb.msg);
    free(arts);
}

int relay_apply(pool_link *l, const json_t *hdr, const void *blob, size_t len, int *stopping)
{
    const char *op = json_string_value(json_object_get(hdr, "op"));
    const char *job = json_string_value(json_object_get(hdr, "job_id"));
    int attempt = (int)json_integer_value(json_object_get(hdr, "attempt"));
    if (strcmp(op, "stopping") == 0)
        return 2;
    if (strcmp(op, "done") == 0) {
        *stopping = json_is_true(json_object_get(hdr, "stopping"));
        return 1;
    }
    if (job == NULL) {
        log_warn("pool: control message '%s' without a job dropped", op);
        return 0;
    }
    if (strcmp(op, "started") == 0) {
        link_started(l, job, attempt, (long)json_integer_value(json_object_get(hdr, "total")));
    } else if (strcmp(op, "metric") == 0) {
        link_metric_value(l, job, attempt, json_string_value(json_object_get(hdr, "name")),
                          text_double(json_object_get(hdr, "value")),
                          (long)json_integer_value(json_object_get(hdr, "step")),
                          text_double(json_object_get(hdr, "epoch")));
    } else if (strcmp(op, "log") == 0) {
        const char *level = json_string_value(json_object_get(hdr, "level"));
        const char *text = json_string_value(json_object_get(hdr, "text"));
        if (level != NULL && text != NULL)
            link_log(l, job, attempt, level, text);
    } else if (strcmp(op, "checkpoint") == 0) {
        link_checkpoint(l, job, attempt, (long)json_integer_value(json_object_get(hdr, "step")),
                        blob != NULL ? blob : "", len);
    } else if (strcmp(op, "finished") == 0) {
        apply_finished(l, job, attempt, hdr, blob, len);
    } else if (strcmp(op, "failed") == 0) {
        const char *reason = json_string_value(json_object_get(hdr, "reason"));
        const char *message = json_string_value(json_object_get(hdr, "message"));
        link_failed(l, job, attempt, reason ? reason : "INTERNAL", message ? message : "");
    } else {
        log_warn("pool: control message '%s' of job %s dropped", op, job);
    }
    return 0;
}
