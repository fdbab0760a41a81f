/* initref.c - init_from and after: form checks and canonical JSON (see initref.h). */
#include "common/initref.h"

#include "common/msg.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

int initref_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= INITREF_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return 0;
    return 1;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* The string form: a path when it has a '/' or ends in .safetensors, else a job id. */
static int parse_string(init_ref *r, jsonfield_obj *o, const char *key)
{
    char s[256];
    if (jsonfield_str(o, key, s, sizeof s, NULL) != JSONFIELD_SET)
        return -1;
    r->given_as_string = 1;
    if (strchr(s, '/') != NULL || ends_with(s, ".safetensors")) {
        r->kind = INIT_PATH;
        snprintf(r->path, sizeof r->path, "%s", s);
        return 0;
    }
    if (!initref_id_ok(s)) {
        jsonfield_err(
            o, key, "'%.80s' is neither a job id ([A-Za-z0-9_-]) nor a path to a .safetensors file",
            s);
        return -1;
    }
    r->kind = INIT_JOB;
    memcpy(r->id, s, strlen(s) + 1); /* initref_id_ok: shorter than INITREF_ID_MAX */
    snprintf(r->artifact, sizeof r->artifact, "model.safetensors");
    return 0;
}

static int parse_object(init_ref *r, jsonfield_obj *parent, const char *key)
{
    jsonfield_obj c;
    jsonfield_child(&c, parent, key);
    const int has_job = jsonfield_get(&c, "job") != NULL,
              has_model = jsonfield_get(&c, "model") != NULL,
              has_path = jsonfield_get(&c, "path") != NULL;
    if (has_job + has_model + has_path != 1) {
        jsonfield_err(&c, NULL, "needs exactly one of job, model and path");
        jsonfield_get(&c, "artifact");
        jsonfield_get(&c, "checkpoint");
        parent->n_err += jsonfield_finish(&c);
        return -1;
    }
    if (has_path) {
        r->kind = INIT_PATH;
        jsonfield_str(&c, "path", r->path, sizeof r->path, NULL);
    } else {
        r->kind = has_job ? INIT_JOB : INIT_MODEL;
        const char *k = has_job ? "job" : "model";
        if (jsonfield_str(&c, k, r->id, sizeof r->id, NULL) == JSONFIELD_SET &&
            !initref_id_ok(r->id))
            jsonfield_err(&c, k, "'%s' is not an id ([A-Za-z0-9_-], at most 63)", r->id);
    }
    int ck = 0;
    if (jsonfield_get(&c, "checkpoint") != NULL) {
        static const char *const latest[] = {"latest"};
        jsonfield_enum(&c, "checkpoint", &ck, 0, latest, 1);
        r->checkpoint = 1;
        if (!has_job)
            jsonfield_err(&c, "checkpoint", "is only for {\"job\": ID}");
    }
    if (jsonfield_get(&c, "artifact") != NULL) {
        if (!has_job || r->checkpoint)
            jsonfield_err(&c, "artifact", "is only for {\"job\": ID} without checkpoint");
        else if (jsonfield_str(&c, "artifact", r->artifact, sizeof r->artifact, NULL) ==
                     JSONFIELD_SET &&
                 !msg_name_ok(r->artifact))
            jsonfield_err(&c, "artifact", "'%s' is not an artifact name", r->artifact);
    } else if (has_job && !r->checkpoint) {
        snprintf(r->artifact, sizeof r->artifact, "model.safetensors");
    }
    int n = jsonfield_finish(&c);
    parent->n_err += n;
    return n == 0 ? 0 : -1;
}

int initref_parse(init_ref *r, jsonfield_obj *o, const char *key)
{
    memset(r, 0, sizeof *r);
    const json_t *v = jsonfield_get(o, key);
    if (v == NULL)
        return 0;
    if (json_is_string(v))
        return parse_string(r, o, key);
    if (json_is_object(v))
        return parse_object(r, o, key);
    jsonfield_err(o, key,
                  "must be a job id, a path, or an object {\"job\": ID}, {\"model\": ID} or "
                  "{\"path\": PATH}");
    return -1;
}

json_t *initref_to_json(const init_ref *r)
{
    switch (r->kind) {
    case INIT_PATH:
        return r->given_as_string ? json_string(r->path) : json_pack("{s:s}", "path", r->path);
    case INIT_JOB:
        if (r->given_as_string)
            return json_string(r->id);
        if (r->checkpoint)
            return json_pack("{s:s,s:s}", "job", r->id, "checkpoint", "latest");
        return json_pack("{s:s,s:s}", "job", r->id, "artifact", r->artifact);
    case INIT_MODEL:
        return json_pack("{s:s}", "model", r->id);
    default:
        return NULL;
    }
}

void initref_describe(const init_ref *r, char *buf, size_t len)
{
    switch (r->kind) {
    case INIT_PATH:
        snprintf(buf, len, "%s", r->path);
        break;
    case INIT_JOB:
        if (r->checkpoint)
            snprintf(buf, len, "job %s checkpoint latest", r->id);
        else
            snprintf(buf, len, "job %s artifact %s", r->id, r->artifact);
        break;
    case INIT_MODEL:
        snprintf(buf, len, "model %s", r->id);
        break;
    default:
        snprintf(buf, len, "%s", "");
    }
}

int initref_parse_after(jsonfield_obj *o, const char *key, char ids[][INITREF_ID_MAX], int *n_out)
{
    *n_out = 0;
    const json_t *v = jsonfield_get(o, key);
    if (v == NULL)
        return 0;
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > INITREF_MAX_AFTER) {
        jsonfield_err(o, key, "must be an array of 1 to %d job ids", INITREF_MAX_AFTER);
        return -1;
    }
    int bad = 0;
    size_t i;
    const json_t *x;
    json_array_foreach(v, i, x)
    {
        const char *s = json_string_value(x);
        char p[JSONFIELD_PATH_MAX], base[JSONFIELD_PATH_MAX];
        jsonfield_path(base, sizeof base, o, key);
        jsonfield_index_path(p, sizeof p, base, (int)i);
        if (s == NULL || !initref_id_ok(s)) {
            fe_add(o->fe, p, "must be a job id ([A-Za-z0-9_-], at most 63)");
            o->n_err++;
            bad = 1;
            continue;
        }
        for (int k = 0; k < *n_out; k++)
            if (strcmp(ids[k], s) == 0) {
                fe_add(o->fe, p, "'%s' is listed twice", s);
                o->n_err++;
                bad = 1;
            }
        snprintf(ids[(*n_out)++], INITREF_ID_MAX, "%s", s);
    }
    return bad ? -1 : 0;
}
