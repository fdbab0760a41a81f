/* handlers_data.c - a job's metrics, logs and artifacts (see handlers.h). */
#include "common/files.h"
#include "common/log.h"
#include "common/msg.h"
#include "server/handlers.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int lookup_failed(http_response *resp, http_request *req, int rc, const errbuf *eb)
{
    if (rc == ERR_NOT_FOUND)
        return api_error(resp, req, 404, NULL, "%s", eb->msg);
    log_error("%s %s: %s", req->method, req->path, eb->msg);
    return api_error(resp, req, 500, NULL, "the job store failed: %s", eb->msg);
}

/* Opens an event stream; the cursor comes from the Last-Event-ID header or,
 * for clients that cannot set headers, the last_event_id query parameter. */
static int open_stream(app *a, http_request *req, http_response *resp, sse_kind kind,
                       const char *job)
{
    errbuf eb;
    if (job != NULL) {
        job_state st;
        int rc = store_job_state(a->st, job, &st, NULL, NULL, &eb);
        if (rc < 0)
            return lookup_failed(resp, req, rc, &eb);
    }
    if (a->sse == NULL)
        return api_error(resp, req, 503, NULL, "this server has no event streams");
    const char *last = http_header(req, "Last-Event-ID");
    if (last == NULL)
        last = http_query(req, "last_event_id");
    const char *owner = req->principal[0] != '\0' ? req->principal : req->client;
    int rc = sse_open(a->sse, kind, job, last, owner, resp, &eb);
    if (rc == ERR_INVALID)
        return api_error_field(resp, req, 400, "Last-Event-ID", eb.msg);
    if (rc == ERR_BUSY) {
        api_error(resp, req, 503, NULL, "%s; try again later", eb.msg);
        http_response_header(resp, "Retry-After", "5");
        return 503;
    }
    return resp->status;
}

/* names=a,b,c: metric names as the pool sends them. */
static int names_ok(const char *s)
{
    if (strlen(s) > 1024)
        return 0;
    for (const char *p = s; *p != '\0'; p++)
        if (*p == '\'' || *p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            return 0;
    return 1;
}

int jobs_metrics(app *a, http_request *req, http_response *resp)
{
    long long after, limit, maxp;
    if (query_int(req, resp, "after_seq", 0, INT64_MAX, 0, &after) != 0 ||
        query_int(req, resp, "limit", 1, 100000, 1000, &limit) != 0 ||
        query_int(req, resp, "max_points", 0, 100000, 0, &maxp) != 0)
        return resp->status;
    if (maxp > 0 && maxp < 4)
        return api_error_field(resp, req, 400, "max_points",
                               "must be 0 (no downsampling) or at least 4 (first, last, min and "
                               "max of a bucket)");
    const char *names = http_query(req, "names");
    if (names != NULL && !names_ok(names))
        return api_error_field(resp, req, 400, "names",
                               "a comma-separated list of metric names, at most 1024 bytes");
    store_metric_query q = {
        .after_seq = after, .limit = (int)limit, .names = names, .max_points = (int)maxp};
    json_t *out;
    errbuf eb;
    int rc = store_metrics(a->st, req->params[0], &q, &out, &eb);
    if (rc < 0)
        return lookup_failed(resp, req, rc, &eb);
    return api_json(resp, 200, out);
}

int jobs_logs(app *a, http_request *req, http_response *resp)
{
    long long after, limit, tail;
    if (query_int(req, resp, "after_seq", 0, INT64_MAX, 0, &after) != 0 ||
        query_int(req, resp, "limit", 1, 10000, 1000, &limit) != 0 ||
        query_int(req, resp, "tail", 0, 10000, 0, &tail) != 0)
        return resp->status;
    const char *follow = http_query(req, "follow");
    if (follow != NULL && strcmp(follow, "true") != 0 && strcmp(follow, "false") != 0)
        return api_error_field(resp, req, 400, "follow", "must be true or false");
    if (follow != NULL && strcmp(follow, "true") == 0)
        return open_stream(a, req, resp, SSE_LOGS, req->params[0]);
    json_t *out;
    errbuf eb;
    int rc = store_logs(a->st, req->params[0], after, (int)limit, (int)tail, &out, &eb);
    if (rc < 0)
        return lookup_failed(resp, req, rc, &eb);
    return api_json(resp, 200, out);
}

int jobs_events(app *a, http_request *req, http_response *resp)
{
    return open_stream(a, req, resp, SSE_JOB, req->params[0]);
}

int events_all(app *a, http_request *req, http_response *resp)
{
    return open_stream(a, req, resp, SSE_ALL, NULL);
}

int jobs_artifacts(app *a, http_request *req, http_response *resp)
{
    json_t *arts;
    errbuf eb;
    int rc = store_artifacts(a->st, req->params[0], &arts, &eb);
    if (rc < 0)
        return lookup_failed(resp, req, rc, &eb);
    size_t i;
    json_t *x;
    json_array_foreach(arts, i, x)
    {
        char url[256];
        snprintf(url, sizeof url, "/api/v1/jobs/%s/artifacts/%s", req->params[0],
                 json_string_value(json_object_get(x, "name")));
        json_object_set_new(x, "url", json_string(url));
    }
    return api_json(resp, 200, json_pack("{s:s,s:o}", "job_id", req->params[0], "artifacts", arts));
}

/* Parses a single "bytes=a-b" / "bytes=a-" / "bytes=-n" range against size.
 * Returns 1 with [*off, *off + *len) set, 0 to ignore the header (serve the
 * whole file: malformed or several ranges), -1 when unsatisfiable. */
static int parse_range(const char *h, int64_t size, int64_t *off, int64_t *len)
{
    if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ',') != NULL)
        return 0;
    const char *p = h + 6;
    char *end;
    if (*p == '-') {
        long long n = strtoll(p + 1, &end, 10);
        if (p[1] == '\0' || *end != '\0' || n < 0)
            return 0;
        if (n == 0 || size == 0)
            return -1;
        if (n > size)
            n = size;
        *off = size - n;
        *len = n;
        return 1;
    }
    long long a = strtoll(p, &end, 10);
    if (end == p || *end != '-' || a < 0)
        return 0;
    p = end + 1;
    long long b = size - 1;
    if (*p != '\0') {
        b = strtoll(p, &end, 10);
        if (*end != '\0' || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    if (b >= size)
        b = size - 1;
    *off = a;
    *len = b - a + 1;
    return 1;
}

int api_serve_file(http_response *resp, http_request *req, const char *path, const char *filename,
                   const char *what)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        log_error("%s: cannot open %s: %s", what, path, strerror(e));
        return api_error(resp, req, 500, NULL, "%s is recorded but its file cannot be read: %s",
                         what, strerror(e));
    }
    int64_t size = (int64_t)sb.st_size;
    int64_t off = 0, len = size;
    const char *range = http_header(req, "Range");
    int r = range != NULL ? parse_range(range, size, &off, &len) : 0;
    char buf[200];
    if (r < 0) {
        close(fd);
        snprintf(buf, sizeof buf, "bytes */%" PRId64, size);
        api_error_field(resp, req, 416, "Range", "no byte of the range is in the file");
        http_response_header(resp, "Content-Range", buf);
        return 416;
    }
    resp->status = r > 0 ? 206 : 200;
    resp->fd = fd;
    resp->offset = off;
    resp->length = len;
    resp->content_type = "application/octet-stream";
    http_response_header(resp, "Accept-Ranges", "bytes");
    snprintf(buf, sizeof buf, "attachment; filename=\"%s\"", filename);
    http_response_header(resp, "Content-Disposition", buf);
    if (r > 0) {
        snprintf(buf, sizeof buf, "bytes %" PRId64 "-%" PRId64 "/%" PRId64, off, off + len - 1,
                 size);
        http_response_header(resp, "Content-Range", buf);
    }
    return resp->status;
}

int jobs_artifact(app *a, http_request *req, http_response *resp)
{
    const char *id = req->params[0], *name = req->params[1];
    if (!msg_name_ok(name))
        return api_error(resp, req, 404, NULL, "job %s has no artifact '%.80s'", id, name);
    char rel[512], path[KILN_PATH_MAX], what[300];
    int64_t size;
    errbuf eb;
    int rc = store_artifact(a->st, id, name, rel, sizeof rel, &size, &eb);
    if (rc < 0)
        return lookup_failed(resp, req, rc, &eb);
    snprintf(path, sizeof path, "%s/%s", a->data_dir, rel);
    snprintf(what, sizeof what, "artifact '%s' of job %s", name, id);
    return api_serve_file(resp, req, path, name, what);
}

int jobs_checkpoint_latest(app *a, http_request *req, http_response *resp)
{
    const char *id = req->params[0];
    job_state st;
    errbuf eb;
    int rc = store_job_state(a->st, id, &st, NULL, NULL, &eb);
    if (rc < 0)
        return lookup_failed(resp, req, rc, &eb);
    char rel[512], path[KILN_PATH_MAX], name[96], what[200];
    long step;
    if (store_checkpoint_latest(a->st, id, rel, sizeof rel, &step, &eb) != 0)
        return api_error(resp, req, 404, NULL, "job %s (%s) has no checkpoint", id,
                         store_state_name(st));
    snprintf(path, sizeof path, "%s/%s", a->data_dir, rel);
    snprintf(name, sizeof name, "%.60s-step-%ld.safetensors", id, step);
    snprintf(what, sizeof what, "the checkpoint of job %s at step %ld", id, step);
    char stepv[32];
    snprintf(stepv, sizeof stepv, "%ld", step);
    http_response_header(resp, "X-Kiln-Step", stepv);
    return api_serve_file(resp, req, path, name, what);
}
