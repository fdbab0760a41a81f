/* msg.c - message header encoding and validation (see msg.h, api/messages.md). */
#include "msg.h"

#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

static const char *const type_names[MSG__COUNT] = {
    "hello", "welcome",    "heartbeat", "ready",  "assign", "started", "metric",
    "log",   "checkpoint", "finished",  "failed", "cancel", "ack",
};

const char *msg_type_name(msg_type t)
{
    return (t >= 0 && t < MSG__COUNT) ? type_names[t] : "?";
}

int msg_type_parse(const char *name)
{
    for (int i = 0; i < MSG__COUNT; i++)
        if (strcmp(type_names[i], name) == 0)
            return i;
    return -1;
}

int msg_is_job_message(msg_type t)
{
    return t == MSG_STARTED || t == MSG_METRIC || t == MSG_LOG || t == MSG_CHECKPOINT ||
           t == MSG_FINISHED || t == MSG_FAILED;
}

int msg_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= MSG_ARTIFACT_NAME || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

void msg_init(msg *m, msg_type t)
{
    memset(m, 0, sizeof *m);
    m->type = t;
    m->body = json_object();
    json_object_set_new(m->body, "type", json_string(msg_type_name(t)));
}

void msg_deinit(msg *m)
{
    json_decref(m->body);
    for (int i = 0; i < m->n_blobs; i++)
        free(m->blobs[i].data);
    memset(m, 0, sizeof *m);
}

void msg_set_job(msg *m, const char *job_id, int attempt, uint64_t seq)
{
    snprintf(m->job_id, sizeof m->job_id, "%s", job_id);
    m->attempt = attempt;
    m->seq = seq;
    json_object_set_new(m->body, "job_id", json_string(m->job_id));
    json_object_set_new(m->body, "attempt", json_integer(attempt));
    if (msg_is_job_message(m->type) || m->type == MSG_ACK)
        json_object_set_new(m->body, "seq", json_integer((json_int_t)seq));
}

void msg_set(msg *m, const char *key, json_t *value)
{
    json_object_set_new(m->body, key, value);
}

int msg_take_blob(msg *m, void *data, size_t len)
{
    if (m->n_blobs >= MSG_MAX_BLOBS) {
        free(data);
        return ERR_TOO_LARGE;
    }
    m->blobs[m->n_blobs].data = data;
    m->blobs[m->n_blobs].len = len;
    m->n_blobs++;
    return 0;
}

int msg_add_blob(msg *m, const void *data, size_t len)
{
    if (m->n_blobs >= MSG_MAX_BLOBS)
        return ERR_TOO_LARGE;
    unsigned char *copy = xmalloc(len > 0 ? len : 1);
    if (len > 0)
        memcpy(copy, data, len);
    return msg_take_blob(m, copy, len);
}

char *msg_encode(const msg *m, size_t *len)
{
    json_t *b = json_copy(m->body);
    if (m->n_blobs > 0)
        json_object_set_new(b, "blobs", json_integer(m->n_blobs));
    else
        json_object_del(b, "blobs");
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    if (s == NULL)
        abort(); /* only on out-of-memory: the body holds no unencodable value */
    *len = strlen(s);
    return s;
}

const char *msg_str(const msg *m, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(m->body, key));
    return s != NULL ? s : dflt;
}

long long msg_int(const msg *m, const char *key, long long dflt)
{
    json_t *v = json_object_get(m->body, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

json_t *msg_get(const msg *m, const char *key)
{
    return json_object_get(m->body, key);
}

/* Field checks: each returns 0 or ERR_INVALID naming the field. */
static int need_string(const json_t *o, const char *key, size_t max, errbuf *eb)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return err_set(eb, ERR_INVALID, "field '%s': missing or not a string", key);
    size_t n = json_string_length(v);
    if (n == 0 || n >= max)
        return err_set(eb, ERR_INVALID, "field '%s': length must be 1..%zu", key, max - 1);
    return 0;
}

static int need_int(const json_t *o, const char *key, long long lo, long long hi, errbuf *eb)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return err_set(eb, ERR_INVALID, "field '%s': missing or not an integer", key);
    long long x = (long long)json_integer_value(v);
    if (x < lo || x > hi)
        return err_set(eb, ERR_INVALID, "field '%s': %lld is out of range %lld..%lld", key, x, lo,
                       hi);
    return 0;
}

static int opt_int(const json_t *o, const char *key, long long lo, long long hi, errbuf *eb)
{
    if (json_object_get(o, key) == NULL)
        return 0;
    return need_int(o, key, lo, hi, eb);
}

static int need_object(const json_t *o, const char *key, errbuf *eb)
{
    if (!json_is_object(json_object_get(o, key)))
        return err_set(eb, ERR_INVALID, "field '%s': missing or not an object", key);
    return 0;
}

static int check_points(const json_t *pts, errbuf *eb)
{
    if (!json_is_array(pts) || json_array_size(pts) == 0)
        return err_set(eb, ERR_INVALID, "field 'points': must be a non-empty array");
    size_t i;
    json_t *p;
    json_array_foreach(pts, i, p)
    {
        if (!json_is_object(p))
            return err_set(eb, ERR_INVALID, "field 'points[%zu]': not an object", i);
        if (!json_is_integer(json_object_get(p, "step")) ||
            json_integer_value(json_object_get(p, "step")) < 0)
            return err_set(eb, ERR_INVALID, "field 'points[%zu].step': missing or not >= 0", i);
        int values = 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)p, k, v)
        {
            if (!json_is_number(v))
                return err_set(eb, ERR_INVALID, "field 'points[%zu].%s': not a number", i, k);
            if (strcmp(k, "step") == 0 || strcmp(k, "time") == 0 || strcmp(k, "epoch") == 0)
                continue; /* what the values are at, not values */
            if (strlen(k) >= 64)
                return err_set(eb, ERR_INVALID, "field 'points[%zu]': metric name too long", i);
            values++;
        }
        if (values == 0)
            return err_set(eb, ERR_INVALID, "field 'points[%zu]': no metric value", i);
    }
    return 0;
}

static int check_lines(const json_t *lines, errbuf *eb)
{
    if (!json_is_array(lines) || json_array_size(lines) == 0)
        return err_set(eb, ERR_INVALID, "field 'lines': must be a non-empty array");
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        if (!json_is_object(l) || !json_is_string(json_object_get(l, "text")))
            return err_set(eb, ERR_INVALID, "field 'lines[%zu].text': missing or not a string", i);
    }
    return 0;
}

static int check_artifacts(const json_t *arts, errbuf *eb)
{
    if (!json_is_array(arts) || json_array_size(arts) > MSG_MAX_BLOBS)
        return err_set(eb, ERR_INVALID, "field 'artifacts': must be an array of at most %d",
                       MSG_MAX_BLOBS);
    size_t i;
    json_t *a;
    json_array_foreach(arts, i, a)
    {
        const char *name = json_string_value(json_object_get(a, "name"));
        if (name == NULL || !msg_name_ok(name))
            return err_set(eb, ERR_INVALID,
                           "field 'artifacts[%zu].name': missing or not a safe file name", i);
        json_t *size = json_object_get(a, "size");
        if (!json_is_integer(size) || json_integer_value(size) < 0)
            return err_set(eb, ERR_INVALID, "field 'artifacts[%zu].size': missing or < 0", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(name, json_string_value(json_object_get(json_array_get(arts, j), "name"))) ==
                0)
                return err_set(eb, ERR_INVALID, "field 'artifacts[%zu].name': duplicate '%s'", i,
                               name);
    }
    return 0;
}

/* 64 lower-case hex digits. */
static int sha256_hex_ok(const char *s)
{
    if (s == NULL || strlen(s) != 64)
        return 0;
    for (const char *p = s; *p != '\0'; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

/* ready's optional "cached": the SHA-256s of the init weights a pool holds. */
static int check_cached(const json_t *cached, errbuf *eb)
{
    if (cached == NULL)
        return 0;
    if (!json_is_array(cached) || json_array_size(cached) > MSG_MAX_CACHED)
        return err_set(eb, ERR_INVALID, "field 'cached': must be an array of at most %d",
                       MSG_MAX_CACHED);
    size_t i;
    json_t *x;
    json_array_foreach(cached, i, x)
    {
        if (!sha256_hex_ok(json_string_value(x)))
            return err_set(eb, ERR_INVALID, "field 'cached[%zu]': not a SHA-256 in hex", i);
    }
    return 0;
}

/* assign's optional "init": {sha256, size, attached}. */
static int check_init(const json_t *init, errbuf *eb)
{
    if (init == NULL)
        return 0;
    int rc;
    if (!json_is_object(init))
        return err_set(eb, ERR_INVALID, "field 'init': not an object");
    if (!sha256_hex_ok(json_string_value(json_object_get(init, "sha256"))))
        return err_set(eb, ERR_INVALID, "field 'init.sha256': missing or not a SHA-256 in hex");
    if ((rc = need_int(init, "size", 0, (long long)1 << 50, eb)) < 0)
        return err_prefix(eb, rc, "field 'init'");
    if (!json_is_boolean(json_object_get(init, "attached")))
        return err_set(eb, ERR_INVALID, "field 'init.attached': missing or not a boolean");
    return 0;
}

/* "current" of hello, "running" of ready: what a pool runs, as a list of
 * {job_id, attempt} (at most MSG_MAX_RUNNING); pools before 0.3 send one
 * object or null. Absent is fine. */
static int check_running(const json_t *v, const char *field, errbuf *eb)
{
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_object(v)) {
        int rc;
        if ((rc = need_string(v, "job_id", MSG_ID_MAX, eb)) < 0 ||
            (rc = need_int(v, "attempt", 1, 1 << 30, eb)) < 0)
            return err_prefix(eb, rc, "field '%s'", field);
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) > MSG_MAX_RUNNING)
        return err_set(eb, ERR_INVALID, "field '%s': not a list of at most %d jobs", field,
                       MSG_MAX_RUNNING);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        if (!json_is_object(x))
            return err_set(eb, ERR_INVALID, "field '%s': an entry is not an object", field);
        int rc = check_running(x, field, eb);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The fields each type requires beyond "type". */
static int check_type_fields(const msg *m, errbuf *eb)
{
    const json_t *b = m->body;
    int rc = 0;
    switch (m->type) {
    case MSG_HELLO: {
        if ((rc = need_string(b, "pool_id", MSG_ID_MAX, eb)) < 0 ||
            (rc = need_int(b, "ranks", 1, 1 << 20, eb)) < 0 ||
            (rc = need_int(b, "cores", 1, 1 << 24, eb)) < 0 ||
            (rc = need_string(b, "version", 64, eb)) < 0 ||
            (json_object_get(b, "engine") != NULL && (rc = need_string(b, "engine", 256, eb)) < 0))
            return rc;
        /* optional (pools before 0.2 do not say): bytes of memory in all and per rank */
        if ((json_object_get(b, "memory") != NULL &&
             (rc = need_int(b, "memory", 1, (long long)1 << 60, eb)) < 0) ||
            (json_object_get(b, "rank_memory") != NULL &&
             (rc = need_int(b, "rank_memory", 1, (long long)1 << 60, eb)) < 0))
            return rc;
        json_t *hosts = json_object_get(b, "hosts");
        if (!json_is_array(hosts))
            return err_set(eb, ERR_INVALID, "field 'hosts': missing or not an array");
        return check_running(json_object_get(b, "current"), "current", eb);
    }
    case MSG_WELCOME:
        if ((rc = need_int(b, "heartbeat_ms", 1, 3600000, eb)) < 0 ||
            (rc = need_int(b, "liveness", 1, 1000, eb)) < 0)
            return rc;
        return 0;
    case MSG_HEARTBEAT:
        return 0;
    case MSG_READY:
        if ((rc = check_running(json_object_get(b, "running"), "running", eb)) < 0 ||
            (rc = opt_int(b, "free_ranks", 0, 1 << 20, eb)) < 0)
            return rc;
        return check_cached(json_object_get(b, "cached"), eb);
    case MSG_ASSIGN:
        if ((rc = need_object(b, "spec", eb)) < 0 ||
            (rc = opt_int(b, "resume_step", 0, (long long)1 << 62, eb)) < 0)
            return rc;
        return check_init(json_object_get(b, "init"), eb);
    case MSG_STARTED:
        return opt_int(b, "total_steps", 0, (long long)1 << 62, eb);
    case MSG_METRIC:
        return check_points(json_object_get(b, "points"), eb);
    case MSG_LOG:
        return check_lines(json_object_get(b, "lines"), eb);
    case MSG_CHECKPOINT:
        return need_int(b, "step", 0, (long long)1 << 62, eb);
    case MSG_FINISHED: {
        const char *st = json_string_value(json_object_get(b, "status"));
        if (st == NULL || (strcmp(st, "succeeded") != 0 && strcmp(st, "cancelled") != 0))
            return err_set(eb, ERR_INVALID,
                           "field 'status': must be \"succeeded\" or "
                           "\"cancelled\"");
        json_t *res = json_object_get(b, "result");
        if (res != NULL && !json_is_object(res))
            return err_set(eb, ERR_INVALID, "field 'result': not an object");
        json_t *arts = json_object_get(b, "artifacts");
        if (arts != NULL)
            return check_artifacts(arts, eb);
        return 0;
    }
    case MSG_FAILED:
        if ((rc = need_string(b, "reason", 64, eb)) < 0 ||
            (rc = need_string(b, "message", 4096, eb)) < 0)
            return rc;
        return 0;
    case MSG_CANCEL:
    case MSG_ACK:
        return 0;
    default:
        return err_set(eb, ERR_INVALID, "field 'type': unknown");
    }
}

int msg_decode(msg *m, const void *header, size_t len, errbuf *eb)
{
    memset(m, 0, sizeof *m);
    if (len > MSG_HEADER_MAX)
        return err_set(eb, ERR_FORMAT, "header frame of %zu bytes is over the %u limit", len,
                       MSG_HEADER_MAX);
    json_error_t je;
    json_t *b = json_loadb(header, len, JSON_REJECT_DUPLICATES, &je);
    if (b == NULL)
        return err_set(eb, ERR_FORMAT, "header frame is not JSON: %s at offset %d", je.text,
                       je.position);
    m->body = b;
    if (!json_is_object(b))
        return err_set(eb, ERR_FORMAT, "header frame is not a JSON object");
    const char *tn = json_string_value(json_object_get(b, "type"));
    if (tn == NULL)
        return err_set(eb, ERR_INVALID, "field 'type': missing or not a string");
    int t = msg_type_parse(tn);
    if (t < 0)
        return err_set(eb, ERR_INVALID, "field 'type': unknown message type '%.40s'", tn);
    m->type = (msg_type)t;
    int rc;
    int has_job = msg_is_job_message(m->type) || m->type == MSG_ASSIGN || m->type == MSG_CANCEL ||
                  m->type == MSG_ACK;
    if (has_job) {
        if ((rc = need_string(b, "job_id", MSG_ID_MAX, eb)) < 0 ||
            (rc = need_int(b, "attempt", 1, 1 << 30, eb)) < 0)
            return rc;
        snprintf(m->job_id, sizeof m->job_id, "%s",
                 json_string_value(json_object_get(b, "job_id")));
        if (!msg_name_ok(m->job_id)) /* it names folders on the server */
            return err_set(eb, ERR_INVALID, "field 'job_id': '%.40s' is not [A-Za-z0-9._-]",
                           m->job_id);
        m->attempt = (int)json_integer_value(json_object_get(b, "attempt"));
    }
    if (msg_is_job_message(m->type)) {
        if ((rc = need_int(b, "seq", 1, (long long)1 << 62, eb)) < 0)
            return rc;
        m->seq = (uint64_t)json_integer_value(json_object_get(b, "seq"));
    } else if (m->type == MSG_ACK) {
        if ((rc = need_int(b, "seq", 0, (long long)1 << 62, eb)) < 0)
            return rc;
        m->seq = (uint64_t)json_integer_value(json_object_get(b, "seq"));
    }
    if ((rc = opt_int(b, "blobs", 0, MSG_MAX_BLOBS, eb)) < 0)
        return rc;
    if ((rc = check_type_fields(m, eb)) < 0)
        return rc;
    return 0;
}

int msg_blobs_expected(const msg *m)
{
    return (int)msg_int(m, "blobs", 0);
}

int msg_check_blobs(const msg *m, errbuf *eb)
{
    int want = msg_blobs_expected(m);
    if (m->type == MSG_CHECKPOINT)
        want = 1;
    if (m->type == MSG_FINISHED) {
        json_t *arts = msg_get(m, "artifacts");
        want = arts != NULL ? (int)json_array_size(arts) : 0;
        for (int i = 0; i < want && i < m->n_blobs; i++) {
            json_int_t size = json_integer_value(json_object_get(json_array_get(arts, i), "size"));
            if ((size_t)size != m->blobs[i].len)
                return err_set(eb, ERR_INVALID,
                               "artifact %d: header says %lld bytes, frame has %zu", i,
                               (long long)size, m->blobs[i].len);
        }
    }
    if (m->n_blobs != want)
        return err_set(eb, ERR_INVALID, "%s message: %d binary frames, expected %d",
                       msg_type_name(m->type), m->n_blobs, want);
    return 0;
}
