/* netload.c - a trained network from its weights file (see netload.h). */
#include "worker/models/netload.h"

#include "common/safetensors.h"
#include "worker/jobs/checkpoint.h"
#include "worker/models/model.h"

#include <string.h>

/* The model config JSON from model_arg or the weights' metadata. */
static json_t *config_json(const char *weights, const char *model_arg, errbuf *eb)
{
    json_error_t jerr;
    json_t *j;
    if (model_arg != NULL) {
        j = model_arg[0] == '{' ? json_loads(model_arg, 0, &jerr)
                                : json_load_file(model_arg, 0, &jerr);
        if (j == NULL)
            err_set(eb, ERR_FORMAT, "model config %s: %s (line %d, column %d)", model_arg,
                    jerr.text, jerr.line, jerr.column);
        return j;
    }
    st_file *f;
    if (st_open(&f, weights, eb) != 0)
        return NULL;
    const char *meta = st_meta(f, "model");
    if (meta == NULL) {
        err_set(eb, ERR_INVALID,
                "%s has no model metadata: give the model config (--model CFG, e.g. the job's "
                "architecture.json)",
                weights);
        j = NULL;
    } else if ((j = json_loads(meta, 0, &jerr)) == NULL) {
        err_set(eb, ERR_FORMAT, "%s: its model metadata is not JSON: %s", weights, jerr.text);
    }
    st_close(f);
    return j;
}

int netload_for_eval(net *m, const char *weights, const char *model_arg, int max_batch,
                     model_cfg *cfg, json_t **cfg_json, errbuf *eb)
{
    json_t *j = config_json(weights, model_arg, eb);
    if (j == NULL)
        return ERR_INVALID;
    model_cfg c;
    field_errors fe;
    fe_init(&fe);
    if (modelcfg_parse(&c, j, "model", &fe) != 0) {
        char msg[400];
        fe_format(&fe, msg, sizeof msg);
        json_decref(j);
        return err_set(eb, ERR_INVALID, "model config of %s is invalid: %s", weights, msg);
    }
    json_decref(j);
    int rc = model_build(m, &c, max_batch, 0, NULL, eb);
    if (rc == 0)
        rc = ckpt_load_weights(weights, m, eb);
    if (rc != 0)
        return rc;
    net_set_training(m, 0);
    if (cfg != NULL)
        *cfg = c;
    if (cfg_json != NULL)
        *cfg_json = modelcfg_to_json(&c);
    return 0;
}
