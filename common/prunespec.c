/* prunespec.c - the prune object of a job spec (see prunespec.h).
 *
 * The opening, the target and the search settings are common/searchspec.c's
 * (DMCP's small-scale recipe of ALGORITHMS.md 2.11).
 * Pure C + jansson; no global state, thread-safe.
 */
#include "common/prunespec.h"

#include "common/xalloc.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const METHOD_NAMES[] = {"dmcp", "uniform"};
static const char *const DERIVE_NAMES[] = {"es", "ds"};
static const char *const SAMPLING_NAMES[] = {"group", "official"};

static const search_head HEAD = {"prune", METHOD_NAMES, 2, 1.0, 1};

/* Fields that only the dmcp method reads. */
static const char *const DMCP_ONLY[] = {"warmup_epochs", "search_epochs", "search",
                                        "arch",          "calib_batches", "eval_limit",
                                        "derive",        "ds_samples",    "sampling"};

const char *prunespec_method_name(prune_method m)
{
    return (unsigned)m < 2 ? METHOD_NAMES[m] : "unknown";
}

static void parse_width(prune_spec *p, jsonfield_obj *o)
{
    jsonfield_obj w;
    jsonfield_child(&w, o, "width");
    int ok =
        jsonfield_num(&w, "min", &p->width.min, 0.1, 0.0, 1.0, JSONFIELD_LO_OPEN) != JSONFIELD_BAD;
    ok &=
        jsonfield_num(&w, "max", &p->width.max, 1.0, 0.0, 4.0, JSONFIELD_LO_OPEN) != JSONFIELD_BAD;
    ok &= jsonfield_num(&w, "offset", &p->width.offset, 0.1, 0.0, 4.0, JSONFIELD_LO_OPEN) !=
          JSONFIELD_BAD;
    if (ok && p->width.min >= p->width.max)
        jsonfield_err(&w, "min", "must be < max (%g)", p->width.max);
    else if (ok && floor((p->width.max - p->width.min) / p->width.offset + 1e-4) < 1)
        jsonfield_err(&w, "offset", "must be <= max - min (%g): no channel group would be prunable",
                      p->width.max - p->width.min);
    o->n_err += jsonfield_finish(&w);
}

static void parse_dmcp(prune_spec *p, jsonfield_obj *o, int ranks)
{
    searchspec_parse(&p->search, o, ranks, NULL, NULL);
    searchspec_parse_eval(&p->search, o);
    int d;
    jsonfield_enum(o, "derive", &d, PRUNE_DERIVE_ES, DERIVE_NAMES, 2);
    p->derive = (prune_derive)d;
    jsonfield_int(o, "ds_samples", &p->ds_samples, 5, 0, 100);
    int smp;
    jsonfield_enum(o, "sampling", &smp, PRUNE_SAMPLING_GROUP, SAMPLING_NAMES, 2);
    p->sampling = (prune_sampling)smp;
}

/* The target against what the space can reach: above the smallest net,
 * below the model. */
static void check_target(prune_spec *p, jsonfield_obj *o, const model_cfg *model)
{
    const char *key = searchspec_target_key(p->target_ratio);
    prune_space sp;
    errbuf eb;
    if (prune_space_init(&sp, model, &p->width, &eb) != 0) {
        fe_add(o->fe, "model.arch", "%s", eb.msg);
        o->n_err++;
        return;
    }
    int *w = xcalloc((size_t)sp.n_units, sizeof(int));
    double full = modelcfg_macs(model) / 1e6;
    if (p->target_ratio > 0)
        p->target_mflops = p->target_ratio * full;
    prunespace_min_widths(&sp, w);
    double lo = prunespace_macs(&sp, w) / 1e6;
    if (p->target_mflops >= full)
        jsonfield_err(o, key, "must be below the model's %.4g MFLOPs", full);
    else if (p->target_mflops * (1 + PRUNE_TARGET_TOL) <= lo)
        jsonfield_err(
            o, key,
            "must be above %.4g MFLOPs, the smallest net of the search space (width.min %g)", lo,
            p->width.min);
    free(w);
    prune_space_deinit(&sp);
}

void prunespec_parse(prune_spec *p, jsonfield_obj *root, const json_t *j, const model_cfg *model,
                     int ranks, int has_init_from)
{
    memset(p, 0, sizeof *p);
    jsonfield_obj o;
    int m = searchspec_open(&o, root, j, &HEAD, &p->target_mflops, &p->target_ratio);
    if (m < 0)
        return;
    p->method = (prune_method)m;

    parse_width(p, &o);
    jsonfield_bool(&o, "finetune", &p->finetune, 0);
    if (p->method == PRUNE_DMCP) {
        parse_dmcp(p, &o, ranks);
    } else {
        searchspec_only(&o, DMCP_ONLY, sizeof DMCP_ONLY / sizeof DMCP_ONLY[0], "dmcp");
        if (p->finetune && !has_init_from)
            jsonfield_err(&o, "finetune",
                          "needs init_from with method \"uniform\" (it trains no "
                          "supernet to inherit from)");
    }
    /* the range check needs a valid model and width range */
    if (model != NULL && o.n_err == 0)
        check_target(p, &o, model);
    root->n_err += jsonfield_finish(&o);
}

json_t *prunespec_to_json(const prune_spec *p)
{
    json_t *j = searchspec_head_json(METHOD_NAMES[p->method], p->target_mflops, p->target_ratio);
    json_object_set_new(j, "width",
                        json_pack("{s:o, s:o, s:o}", "min", jsonfield_number_json(p->width.min),
                                  "max", jsonfield_number_json(p->width.max), "offset",
                                  jsonfield_number_json(p->width.offset)));
    json_object_set_new(j, "finetune", json_boolean(p->finetune));
    if (p->method != PRUNE_DMCP)
        return j;
    searchspec_to_json(&p->search, j);
    searchspec_eval_json(&p->search, j);
    json_object_set_new(j, "derive", json_string(DERIVE_NAMES[p->derive]));
    json_object_set_new(j, "ds_samples", json_integer(p->ds_samples));
    json_object_set_new(j, "sampling", json_string(SAMPLING_NAMES[p->sampling]));
    return j;
}
