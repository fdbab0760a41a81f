/* prunespec.c - the prune object of a job spec (see prunespec.h).
 *
 * Defaults are the small-scale DMCP recipe of ALGORITHMS.md 2.11: SGD
 * (Nesterov) 0.1 -> 0.016 for the weights, 0.5 -> 0.1 for the
 * architecture, lambda 0.1 with the dead band [0.95 T, T), 20 + 20 epochs.
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

#define MAX_EPOCHS 10000
#define MAX_BATCH  65536

/* Fields that only the dmcp method reads. */
static const char *const DMCP_ONLY[] = {"warmup_epochs", "search_epochs", "search", "arch",
                                        "calib_batches", "eval_limit",    "derive", "ds_samples"};

const char *prunespec_method_name(prune_method m)
{
    return (unsigned)m < 2 ? METHOD_NAMES[m] : "unknown";
}

void prunespec_parse_sgd(jf_obj *o, prune_sgd *s, double lr, double min_lr, double wd)
{
    jf_num(o, "lr", &s->lr, lr, 0.0, 100.0, JF_LO_OPEN);
    if (jf_num(o, "min_lr", &s->min_lr, fmin(min_lr, s->lr), 0.0, HUGE_VAL, 0) == JF_SET &&
        s->min_lr > s->lr)
        jf_err(o, "min_lr", "must be <= lr (%g)", s->lr);
    jf_num(o, "weight_decay", &s->weight_decay, wd, 0.0, 1.0, 0);
    jf_num(o, "momentum", &s->momentum, 0.9, 0.0, 1.0, JF_HI_OPEN);
    if (jf_bool(o, "nesterov", &s->nesterov, 1) != JF_BAD && s->nesterov && s->momentum == 0.0)
        jf_err(o, "nesterov", "needs momentum > 0");
}

static void parse_width(prune_spec *p, jf_obj *o)
{
    jf_obj w;
    jf_child(&w, o, "width");
    int ok = jf_num(&w, "min", &p->width.min, 0.1, 0.0, 1.0, JF_LO_OPEN) != JF_BAD;
    ok &= jf_num(&w, "max", &p->width.max, 1.0, 0.0, 4.0, JF_LO_OPEN) != JF_BAD;
    ok &= jf_num(&w, "offset", &p->width.offset, 0.1, 0.0, 4.0, JF_LO_OPEN) != JF_BAD;
    if (ok && p->width.min >= p->width.max)
        jf_err(&w, "min", "must be < max (%g)", p->width.max);
    else if (ok && floor((p->width.max - p->width.min) / p->width.offset + 1e-4) < 1)
        jf_err(&w, "offset", "must be <= max - min (%g): no channel group would be prunable",
               p->width.max - p->width.min);
    o->n_err += jf_finish(&w);
}

void prunespec_parse_search(jf_obj *o, int ranks, int *batch_size, prune_sgd *weights,
                            double *label_smoothing)
{
    jf_obj s;
    jf_child(&s, o, "search");
    if (jf_int(&s, "batch_size", batch_size, 128, 1, MAX_BATCH) == JF_SET && ranks > 0 &&
        *batch_size % ranks != 0)
        jf_err(&s, "batch_size", "must be divisible by resources.ranks (%d)", ranks);
    prunespec_parse_sgd(&s, weights, 0.1, 0.016, 5e-4);
    jf_num(&s, "label_smoothing", label_smoothing, 0.0, 0.0, 1.0, JF_HI_OPEN);
    o->n_err += jf_finish(&s);
}

static void parse_dmcp(prune_spec *p, jf_obj *o, int ranks)
{
    jf_int(o, "warmup_epochs", &p->warmup_epochs, 20, 0, MAX_EPOCHS);
    jf_int(o, "search_epochs", &p->search_epochs, 20, 1, MAX_EPOCHS);

    prunespec_parse_search(o, ranks, &p->batch_size, &p->weights, &p->label_smoothing);

    jf_obj a;
    jf_child(&a, o, "arch");
    prunespec_parse_sgd(&a, &p->arch, 0.5, 0.1, 0.0);
    jf_num(&a, "flops_loss_weight", &p->flops_loss_weight, 0.1, 0.0, 1000.0, 0);
    jf_num(&a, "band", &p->band, 0.95, 0.5, 1.0, 0);
    o->n_err += jf_finish(&a);

    jf_int(o, "calib_batches", &p->calib_batches, 5, 1, 1000);
    jf_int(o, "eval_limit", &p->eval_limit, 0, 0, INT_MAX);
    int d;
    jf_enum(o, "derive", &d, PRUNE_DERIVE_ES, DERIVE_NAMES, 2);
    p->derive = (prune_derive)d;
    jf_int(o, "ds_samples", &p->ds_samples, 5, 0, 100);
}

/* The target against what the space can reach: above the smallest net,
 * below the model. */
static void check_target(prune_spec *p, jf_obj *o, const model_cfg *model, const char *key)
{
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
    ps_min_widths(&sp, w);
    double lo = ps_macs(&sp, w) / 1e6;
    if (p->target_mflops >= full)
        jf_err(o, key, "must be below the model's %.4g MFLOPs", full);
    else if (p->target_mflops * (1 + PRUNE_TARGET_TOL) <= lo)
        jf_err(o, key,
               "must be above %.4g MFLOPs, the smallest net of the search space (width.min %g)", lo,
               p->width.min);
    free(w);
    prune_space_deinit(&sp);
}

void prunespec_parse(prune_spec *p, jf_obj *root, const json_t *j, const model_cfg *model,
                     int ranks, int has_init_from)
{
    memset(p, 0, sizeof *p);
    jf_obj o;
    jf_open(&o, NULL, "prune", root->fe);
    if (j == NULL) {
        jf_err(&o, NULL, "is required for type \"prune\"");
        root->n_err += o.n_err;
        return;
    }
    if (jf_open(&o, j, "prune", root->fe) == JF_BAD) {
        root->n_err++;
        return;
    }
    int m;
    jf_enum(&o, "method", &m, PRUNE_DMCP, METHOD_NAMES, 2);
    p->method = (prune_method)m;

    int has_t = jf_num(&o, "target_mflops", &p->target_mflops, 0.0, 0.0, 1e9, JF_LO_OPEN);
    int has_r =
        jf_num(&o, "target_ratio", &p->target_ratio, 0.0, 0.0, 1.0, JF_LO_OPEN | JF_HI_OPEN);
    const char *tkey = NULL;
    if (has_t != JF_ABSENT && has_r != JF_ABSENT)
        jf_err(&o, "target_ratio", "cannot be combined with target_mflops");
    else if (has_t == JF_ABSENT && has_r == JF_ABSENT)
        jf_err(&o, "target_mflops", "is required (or target_ratio)");
    else if (has_t == JF_SET)
        tkey = "target_mflops";
    else if (has_r == JF_SET)
        tkey = "target_ratio";
    if (has_t != JF_SET)
        p->target_mflops = 0;
    if (has_r != JF_SET)
        p->target_ratio = 0;

    parse_width(p, &o);
    jf_bool(&o, "finetune", &p->finetune, 0);
    if (p->method == PRUNE_DMCP) {
        parse_dmcp(p, &o, ranks);
    } else {
        for (size_t i = 0; i < sizeof DMCP_ONLY / sizeof DMCP_ONLY[0]; i++)
            if (jf_get(&o, DMCP_ONLY[i]) != NULL)
                jf_err(&o, DMCP_ONLY[i], "is only for method \"dmcp\"");
        if (p->finetune && !has_init_from)
            jf_err(&o, "finetune",
                   "needs init_from with method \"uniform\" (it trains no "
                   "supernet to inherit from)");
    }
    /* the range check needs a valid model and width range */
    if (tkey != NULL && model != NULL && o.n_err == 0)
        check_target(p, &o, model, tkey);
    root->n_err += jf_finish(&o);
}

json_t *prunespec_sgd_json(const prune_sgd *s)
{
    json_t *j = json_object();
    json_object_set_new(j, "lr", jf_number_json(s->lr));
    json_object_set_new(j, "min_lr", jf_number_json(s->min_lr));
    json_object_set_new(j, "weight_decay", jf_number_json(s->weight_decay));
    json_object_set_new(j, "momentum", jf_number_json(s->momentum));
    json_object_set_new(j, "nesterov", json_boolean(s->nesterov));
    return j;
}

json_t *prunespec_to_json(const prune_spec *p)
{
    json_t *j = json_object();
    json_object_set_new(j, "method", json_string(METHOD_NAMES[p->method]));
    if (p->target_ratio > 0)
        json_object_set_new(j, "target_ratio", jf_number_json(p->target_ratio));
    else
        json_object_set_new(j, "target_mflops", jf_number_json(p->target_mflops));
    json_object_set_new(j, "width",
                        json_pack("{s:o, s:o, s:o}", "min", jf_number_json(p->width.min), "max",
                                  jf_number_json(p->width.max), "offset",
                                  jf_number_json(p->width.offset)));
    json_object_set_new(j, "finetune", json_boolean(p->finetune));
    if (p->method != PRUNE_DMCP)
        return j;
    json_object_set_new(j, "warmup_epochs", json_integer(p->warmup_epochs));
    json_object_set_new(j, "search_epochs", json_integer(p->search_epochs));
    json_t *s = prunespec_sgd_json(&p->weights);
    json_object_set_new(s, "batch_size", json_integer(p->batch_size));
    json_object_set_new(s, "label_smoothing", jf_number_json(p->label_smoothing));
    json_object_set_new(j, "search", s);
    json_t *a = prunespec_sgd_json(&p->arch);
    json_object_set_new(a, "flops_loss_weight", jf_number_json(p->flops_loss_weight));
    json_object_set_new(a, "band", jf_number_json(p->band));
    json_object_set_new(j, "arch", a);
    json_object_set_new(j, "calib_batches", json_integer(p->calib_batches));
    json_object_set_new(j, "eval_limit", json_integer(p->eval_limit));
    json_object_set_new(j, "derive", json_string(DERIVE_NAMES[p->derive]));
    json_object_set_new(j, "ds_samples", json_integer(p->ds_samples));
    return j;
}
