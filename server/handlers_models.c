/* handlers_models.c - uploaded models: POST (streamed to a file), list, get, file, delete
 * (see handlers.h).
 *
 * An upload is a safetensors file as the raw body (http.c spools it to
 * <data>/uploads, up to --upload-limit). It is validated (header, dtypes,
 * offsets: common/safetensors.c), its model config taken from the query
 * parameter `model` or else from the file's "model" metadata and checked
 * against the file's parameter count, and it is moved to
 * <data>/models/<id>.safetensors. Such a model is init_from {"model": ID}.
 */
#include "common/files.h"
#include "common/log.h"
#include "common/modelcfg.h"
#include "server/handlers.h"
#include "server/initsrc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 127)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* The model config of an upload: the `model` query parameter, else the
 * file's metadata (NULL: none), checked against the file's parameters.
 * 0 with *out (new reference or NULL), or the 400 status with resp filled. */
static int upload_model(http_request *req, http_response *resp, const initsrc_file_info *info,
                        json_t **out)
{
    *out = NULL;
    const char *given = http_query(req, "model");
    json_t *m = NULL;
    if (given != NULL) {
        json_error_t je;
        m = json_loads(given, 0, &je);
        if (!json_is_object(m)) {
            json_decref(m);
            return api_error_field(resp, req, 400, "model", "must be a model config (JSON object)");
        }
    } else if (info->model != NULL) {
        m = json_incref(info->model);
    } else {
        return 0;
    }
    model_cfg cfg;
    field_errors fe;
    fe_init(&fe);
    if (modelcfg_parse(&cfg, m, "model", &fe) != 0) {
        json_decref(m);
        char text[600];
        fe_format(&fe, text, sizeof text);
        return api_error(resp, req, 400, &fe, "the model config is invalid: %s", text);
    }
    errbuf eb;
    if (initsrc_fits(given != NULL ? NULL : info->model, info->params, &cfg, 0, NULL, &eb) != 0) {
        json_decref(m);
        return api_error_field(resp, req, 400, "model", eb.msg);
    }
    *out = modelcfg_to_json(&cfg);
    json_decref(m);
    return 0;
}

int models_create(app *a, http_request *req, http_response *resp)
{
    if (req->body_file == NULL)
        return api_error_field(resp, req, 400, "body",
                               "a safetensors file is required as the request body");
    const char *name = http_query(req, "name");
    if (name != NULL && !name_ok(name))
        return api_error_field(resp, req, 400, "name", "must be 1 to 127 printable characters");
    initsrc_file_info info;
    errbuf eb;
    if (initsrc_check_file(req->body_file, &info, &eb) != 0) {
        size_t n = strlen(req->body_file);
        const char *why =
            strncmp(eb.msg, req->body_file, n) == 0 && eb.msg[n] == ':' ? eb.msg + n + 2 : eb.msg;
        char text[700];
        snprintf(text, sizeof text, "not a valid safetensors file: %s", why);
        return api_error_field(resp, req, 400, "body", text);
    }
    json_t *model;
    if (upload_model(req, resp, &info, &model) != 0) {
        json_decref(info.model);
        return resp->status;
    }
    json_decref(info.model);
    char id[STORE_ID_MAX], rel[128], dir[700], path[KILN_PATH_MAX];
    store_new_id("m", id);
    snprintf(rel, sizeof rel, "models/%s.safetensors", id);
    snprintf(dir, sizeof dir, "%s/models", a->data_dir);
    snprintf(path, sizeof path, "%s/%s", a->data_dir, rel);
    if (files_mkdirs(dir, &eb) != 0 || rename(req->body_file, path) != 0) {
        json_decref(model);
        log_error("model upload: cannot keep %s as %s: %s", req->body_file, path, strerror(errno));
        return api_error(resp, req, 500, NULL, "the upload could not be stored");
    }
    char *model_text = model != NULL ? json_dumps(model, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(model);
    char dflt[STORE_ID_MAX + 8];
    snprintf(dflt, sizeof dflt, "model-%s", id);
    store_model_new m = {.name = name != NULL ? name : dflt,
                         .path = rel,
                         .size = info.size,
                         .sha256 = info.sha256,
                         .model_json = model_text,
                         .tensors = info.tensors,
                         .params = info.params};
    int rc = store_model_create(a->st, &m, id, &eb);
    free(model_text);
    json_t *out;
    if (rc == 0)
        rc = store_model_get(a->st, id, &out, NULL, 0, &eb);
    if (rc != 0) {
        unlink(path);
        return api_error(resp, req, 500, NULL, "the model store failed: %s", eb.msg);
    }
    log_info("model %s uploaded: %lld bytes, %d tensors, sha256 %.16s...", id, (long long)info.size,
             info.tensors, info.sha256);
    char loc[128];
    snprintf(loc, sizeof loc, "/api/v1/models/%s", id);
    http_response_header(resp, "Location", loc);
    return api_json(resp, 201, out);
}

int models_list(app *a, http_request *req, http_response *resp)
{
    json_t *items;
    errbuf eb;
    if (store_model_list(a->st, &items, &eb) != 0) {
        json_decref(items);
        return api_error(resp, req, 500, NULL, "the model store failed: %s", eb.msg);
    }
    return api_json(resp, 200, json_pack("{s:o}", "models", items));
}

int models_get(app *a, http_request *req, http_response *resp)
{
    const char *id = req->params[0];
    json_t *m;
    errbuf eb;
    if (!store_id_valid(id) || store_model_get(a->st, id, &m, NULL, 0, &eb) != 0)
        return api_error(resp, req, 404, NULL, "no uploaded model '%.80s'", id);
    return api_json(resp, 200, m);
}

int models_file(app *a, http_request *req, http_response *resp)
{
    const char *id = req->params[0];
    json_t *m;
    char rel[512], path[KILN_PATH_MAX], name[STORE_ID_MAX + 16], what[128];
    errbuf eb;
    if (!store_id_valid(id) || store_model_get(a->st, id, &m, rel, sizeof rel, &eb) != 0)
        return api_error(resp, req, 404, NULL, "no uploaded model '%.80s'", id);
    json_decref(m);
    snprintf(path, sizeof path, "%s/%s", a->data_dir, rel);
    snprintf(name, sizeof name, "%s.safetensors", id);
    snprintf(what, sizeof what, "model %s", id);
    return api_serve_file(resp, req, path, name, what);
}

int models_delete(app *a, http_request *req, http_response *resp)
{
    const char *id = req->params[0];
    char rel[512], path[KILN_PATH_MAX];
    errbuf eb;
    if (!store_id_valid(id))
        return api_error(resp, req, 404, NULL, "no uploaded model '%.80s'", id);
    int rc = store_model_delete(a->st, id, rel, sizeof rel, &eb);
    if (rc == ERR_NOT_FOUND)
        return api_error(resp, req, 404, NULL, "no uploaded model '%.80s'", id);
    if (rc == ERR_STATE)
        return api_error(resp, req, 409, NULL, "%s; cancel it or wait for it to end", eb.msg);
    if (rc != 0)
        return api_error(resp, req, 500, NULL, "the model store failed: %s", eb.msg);
    snprintf(path, sizeof path, "%s/%s", a->data_dir, rel);
    if (unlink(path) != 0 && errno != ENOENT)
        log_warn("model %s deleted, but %s stays: %s", id, path, strerror(errno));
    log_info("model %s deleted", id);
    resp->status = 204;
    return 204;
}
