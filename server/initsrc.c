/* initsrc.c - init_from on the server: resolve, check, hash (see initsrc.h). */
#include "server/initsrc.h"

#include "common/files.h"
#include "common/modelcfg.h"
#include "common/safetensors.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Tensors that are not weights: buffers, optimizer and training state. */
static int is_weight(const char *name)
{
    static const char *const prefixes[] = {"optim.", "train.", "grad.", "input.", "ema."};
    static const char *const suffixes[] = {"running_mean", "running_var", "num_batches_tracked"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return 0;
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && strcmp(name + n - k, suffixes[i]) == 0)
            return 0;
    }
    return 1;
}

static int sha256_file(const char *path, char hex[65], int64_t *size, errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return err_set(eb, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char buf[1 << 16];
    size_t n;
    *size = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        crypto_hash_sha256_update(&st, buf, n);
        *size += (int64_t)n;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return err_set(eb, ERR_IO, "%s: read error", path);
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    for (size_t i = 0; i < sizeof h; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    return 0;
}

int initsrc_check_file(const char *path, initsrc_file_info *info, errbuf *eb)
{
    memset(info, 0, sizeof *info);
    st_file *f;
    int rc = st_open(&f, path, eb);
    if (rc != 0)
        return rc;
    info->tensors = st_count(f);
    for (int i = 0; i < info->tensors; i++) {
        const st_tensor *t = st_get(f, i);
        if (is_weight(t->name))
            info->params += (int64_t)t->numel;
    }
    const char *m = st_meta(f, "model");
    if (m != NULL)
        info->model = json_loads(m, 0, NULL);
    st_close(f);
    if (info->tensors == 0)
        rc = err_set(eb, ERR_FORMAT, "%s holds no tensors", path);
    else
        rc = sha256_file(path, info->sha256, &info->size, eb);
    if (rc != 0) {
        json_decref(info->model);
        info->model = NULL;
    }
    return rc;
}

/* The first top-level key whose value differs between a and b, or NULL. */
static const char *first_difference(json_t *a, json_t *b)
{
    const char *k;
    json_t *v;
    json_object_foreach(a, k, v)
    {
        if (!json_equal(v, json_object_get(b, k)))
            return k;
    }
    json_object_foreach(b, k, v)
    {
        if (json_object_get(a, k) == NULL)
            return k;
    }
    return NULL;
}

int initsrc_fits(const json_t *have, int64_t params, const model_cfg *want, int allow_head,
                 int *head_differs, errbuf *eb)
{
    if (head_differs != NULL)
        *head_differs = 0;
    int same_head = 1;
    if (have != NULL) {
        model_cfg hc;
        field_errors fe;
        fe_init(&fe);
        if (modelcfg_parse(&hc, have, "model", &fe) != 0) {
            char text[300];
            fe_format(&fe, text, sizeof text);
            return err_set(eb, ERR_INVALID, "the weights' model metadata is not a model config: %s",
                           text);
        }
        same_head = hc.num_classes == want->num_classes;
        json_t *a = modelcfg_to_explicit_json(&hc), *b = modelcfg_to_explicit_json(want);
        json_object_del(a, "num_classes");
        json_object_del(b, "num_classes");
        const char *diff = first_difference(a, b);
        char hv[120] = "", wv[120] = "";
        if (diff != NULL) {
            char *x = json_dumps(json_object_get(a, diff), JSON_COMPACT | JSON_ENCODE_ANY);
            char *y = json_dumps(json_object_get(b, diff), JSON_COMPACT | JSON_ENCODE_ANY);
            snprintf(hv, sizeof hv, "%s", x != NULL ? x : "absent");
            snprintf(wv, sizeof wv, "%s", y != NULL ? y : "absent");
            free(x);
            free(y);
        }
        json_decref(a);
        json_decref(b);
        if (diff != NULL)
            return err_set(eb, ERR_INVALID,
                           "the weights are a %s network that does not fit the model config: "
                           "model.%s is %s in the weights, %s in the config",
                           modelcfg_arch_name(hc.arch), diff, hv, wv);
        if (!same_head && !allow_head)
            return err_set(eb, ERR_INVALID,
                           "the weights have %d classes, the config's num_classes is %d",
                           hc.num_classes, want->num_classes);
    }
    if (same_head && params != modelcfg_params(want))
        return err_set(eb, ERR_INVALID,
                       "the weights hold %lld parameters, the model config has %ld: a different "
                       "network",
                       (long long)params, modelcfg_params(want));
    if (head_differs != NULL)
        *head_differs = !same_head;
    return 0;
}

void initsrc_free(initsrc *s)
{
    json_decref(s->model);
    s->model = NULL;
}

/* The job's artifact names, for a message: "a, b" or "none". */
static void artifact_names(store *st, const char *id, char *buf, size_t len)
{
    json_t *arts;
    errbuf eb;
    snprintf(buf, len, "none");
    if (store_artifacts(st, id, &arts, &eb) != 0)
        return;
    size_t i, used = 0;
    json_t *x;
    json_array_foreach(arts, i, x)
    {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                         json_string_value(json_object_get(x, "name")));
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    json_decref(arts);
}

static int listed_in(const char after[][INITREF_ID_MAX], int n_after, const char *id)
{
    for (int i = 0; i < n_after; i++)
        if (strcmp(after[i], id) == 0)
            return 1;
    return 0;
}

/* A job source: its artifact or newest checkpoint, relative path into rel;
 * *deferred when it is in after and has not ended. */
static int resolve_job(store *st, const init_ref *r, const char after[][INITREF_ID_MAX],
                       int n_after, int allow_defer, int *deferred, char *rel, size_t rlen,
                       errbuf *eb)
{
    job_state state;
    errbuf e2;
    if (store_job_state(st, r->id, &state, NULL, NULL, &e2) == ERR_NOT_FOUND)
        return err_set(eb, ERR_INVALID, "init_from: no job '%s'", r->id);
    int may_wait =
        allow_defer && listed_in(after, n_after, r->id) && !(JS_TERMINAL & JS_BIT(state));
    if (r->checkpoint) {
        long step;
        if (store_checkpoint_latest(st, r->id, rel, rlen, &step, &e2) == 0)
            return 0;
        if (may_wait) {
            *deferred = 1;
            return 0;
        }
        return err_set(eb, ERR_INVALID, "init_from: job %s (%s) has no checkpoint", r->id,
                       store_state_name(state));
    }
    if (state != JS_SUCCEEDED) {
        if (may_wait) {
            *deferred = 1;
            return 0;
        }
        return err_set(eb, ERR_INVALID, "init_from: job %s is %s, not SUCCEEDED%s", r->id,
                       store_state_name(state),
                       JS_TERMINAL & JS_BIT(state)
                           ? ""
                           : " (list it in after to start this job when it has succeeded)");
    }
    int64_t size;
    if (store_artifact(st, r->id, r->artifact, rel, rlen, &size, &e2) != 0) {
        char names[400];
        artifact_names(st, r->id, names, sizeof names);
        return err_set(eb, ERR_INVALID, "init_from: job %s has no artifact '%s' (it has: %s)",
                       r->id, r->artifact, names);
    }
    return 0;
}

/* The file a job or model source names (relative path into rel), or
 * *deferred. A path source gives rel "". */
static int locate(store *st, const init_ref *r, const char after[][INITREF_ID_MAX], int n_after,
                  int allow_defer, int *deferred, char *rel, size_t rlen, errbuf *eb)
{
    rel[0] = '\0';
    *deferred = 0;
    if (r->kind == INIT_PATH) {
        if (r->path[0] != '/')
            return err_set(eb, ERR_INVALID,
                           "init_from: '%s' is a relative path; a file on the pool hosts must be "
                           "given by its absolute path (or name a job: {\"job\": ID})",
                           r->path);
        return 0;
    }
    if (r->kind == INIT_MODEL) {
        json_t *m;
        errbuf e2;
        if (store_model_get(st, r->id, &m, rel, rlen, &e2) != 0)
            return err_set(eb, ERR_INVALID, "init_from: no uploaded model '%s'", r->id);
        json_decref(m);
        return 0;
    }
    if (r->kind == INIT_JOB)
        return resolve_job(st, r, after, n_after, allow_defer, deferred, rel, rlen, eb);
    return 0;
}

int initsrc_source_model(store *st, const char *data_dir, const json_t *in, json_t **model,
                         int *deferred, errbuf *eb)
{
    *model = NULL;
    *deferred = 0;
    jsonfield_obj o;
    init_ref r;
    char after[INITREF_MAX_AFTER][INITREF_ID_MAX];
    int n_after = 0;
    jsonfield_open(&o, in, "", NULL);
    if (initref_parse(&r, &o, "init_from") != 0 || r.kind == INIT_NONE || r.kind == INIT_PATH ||
        initref_parse_after(&o, "after", after, &n_after) != 0)
        return 0; /* the full parse names the problem */
    char rel[512], path[KILN_PATH_MAX];
    int rc = locate(st, &r, (const char(*)[INITREF_ID_MAX])after, n_after, 1, deferred, rel,
                    sizeof rel, eb);
    if (rc != 0 || *deferred)
        return rc;
    snprintf(path, sizeof path, "%s/%s", data_dir, rel);
    st_file *f;
    errbuf why;
    if (st_open(&f, path, &why) != 0)
        return err_set(eb, ERR_INVALID, "init_from: %s", why.msg);
    const char *m = st_meta(f, "model");
    *model = m != NULL ? json_loads(m, 0, NULL) : NULL;
    st_close(f);
    if (*model == NULL)
        return err_set(eb, ERR_INVALID,
                       "init_from: the weights carry no model config, so the spec must give model");
    return 0;
}

/* A checkpoint goes when newer ones come (checkpoint.keep_last): the job
 * starting from it gets its own copy, <data>/inits/<sha256>.safetensors. */
static int keep_copy(const char *data_dir, const char *path, const char *sha, char *rel,
                     size_t rlen, errbuf *eb)
{
    char dst[1100];
    snprintf(rel, rlen, "inits/%s.safetensors", sha);
    snprintf(dst, sizeof dst, "%s/%s", data_dir, rel);
    if (access(dst, R_OK) == 0)
        return 0;
    void *data;
    size_t len;
    int rc = files_read(path, &data, &len, eb);
    if (rc == 0) {
        rc = files_write_atomic(dst, data, len, eb);
        free(data);
    }
    return rc;
}

int initsrc_resolve(store *st, const char *data_dir, const job_spec *spec, int allow_defer,
                    initsrc *out, errbuf *eb)
{
    memset(out, 0, sizeof *out);
    const init_ref *r = &spec->init;
    char rel[512];
    int rc =
        locate(st, r, spec->after, spec->n_after, allow_defer, &out->deferred, rel, sizeof rel, eb);
    if (rc != 0 || out->deferred || rel[0] == '\0')
        return rc;
    char path[KILN_PATH_MAX], what[200];
    snprintf(path, sizeof path, "%s/%s", data_dir, rel);
    initref_describe(r, what, sizeof what);
    initsrc_file_info info;
    errbuf why;
    rc = initsrc_check_file(path, &info, &why);
    if (rc != 0)
        return err_set(eb, ERR_INVALID, "init_from: %s: %s", what, why.msg);
    /* train jobs load weights for another num_classes but for the head */
    rc = initsrc_fits(info.model, info.params, &spec->model, spec->type == JOB_TRAIN,
                      &out->head_differs, &why);
    if (rc != 0) {
        json_decref(info.model);
        return err_set(eb, ERR_INVALID, "init_from: %s: %s", what, why.msg);
    }
    if (r->checkpoint && keep_copy(data_dir, path, info.sha256, rel, sizeof rel, eb) != 0) {
        json_decref(info.model);
        return ERR_IO;
    }
    snprintf(out->file, sizeof out->file, "%s", rel);
    memcpy(out->sha256, info.sha256, sizeof out->sha256);
    out->size = info.size;
    out->model = info.model;
    return 0;
}
