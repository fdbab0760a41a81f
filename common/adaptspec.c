/* adaptspec.c - the adapt object of a job spec (see adaptspec.h).
 *
 * Defaults: DMCP's small-scale recipe (common/searchspec.c) for the search, the
 * window and elastic rules of ALGORITHMS.md 3.2, EfficientNet's compound
 * bases. Pure C + jansson; no global state, thread-safe.
 */
#include "common/adaptspec.h"

#include "common/xalloc.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const METHOD_NAMES[] = {"dna", "uniform_width", "uniform_depth", "compound"};
static const char *const INIT_NAMES[] = {"zero", "existing"};

#define N_METHODS 4
#define MAX_RATIO 4.0

static const search_head HEAD = {"adapt", METHOD_NAMES, N_METHODS, MAX_RATIO, 0};

/* Fields that only the dna method reads. */
static const char *const DNA_ONLY[] = {"window",        "warmup_epochs", "search_epochs",
                                       "search",        "arch",          "elastic",
                                       "calib_batches", "eval_limit",    "search_depth"};

const char *adaptspec_method_name(adapt_method m)
{
    return (unsigned)m < N_METHODS ? METHOD_NAMES[m] : "unknown";
}

static void parse_window(adapt_spec *a, jsonfield_obj *o)
{
    jsonfield_obj w;
    jsonfield_child(&w, o, "window");
    int ok = jsonfield_num(&w, "min", &a->window.min, 0.25, 0.0, 1.0, JSONFIELD_LO_OPEN) !=
             JSONFIELD_BAD;
    ok &= jsonfield_num(&w, "max", &a->window.max, 1.5, 1.0, 4.0, 0) != JSONFIELD_BAD;
    ok &= jsonfield_num(&w, "group", &a->window.group, 0.1, 0.0, 1.0, JSONFIELD_LO_OPEN) !=
          JSONFIELD_BAD;
    if (ok && a->window.group > a->window.max - a->window.min)
        jsonfield_err(&w, "group", "must be <= max - min (%g): the window would hold no group",
                      a->window.max - a->window.min);
    o->n_err += jsonfield_finish(&w);
}

static void parse_elastic(adapt_elastic *e, jsonfield_obj *o)
{
    jsonfield_obj x;
    jsonfield_child(&x, o, "elastic");
    jsonfield_bool(&x, "enabled", &e->enabled, 1);
    jsonfield_int(&x, "check_every", &e->check_every, 0, 0, INT_MAX);
    jsonfield_int(&x, "patience", &e->patience, 2, 1, 1000);
    jsonfield_num(&x, "expand_p", &e->expand_p, 0.9, 0.0, 1.0,
                  JSONFIELD_LO_OPEN | JSONFIELD_HI_OPEN);
    jsonfield_num(&x, "condense_p", &e->condense_p, 0.1, 0.0, 1.0,
                  JSONFIELD_LO_OPEN | JSONFIELD_HI_OPEN);
    if (jsonfield_num(&x, "drop_p", &e->drop_p, fmin(0.01, e->condense_p), 0.0, 1.0,
                      JSONFIELD_LO_OPEN | JSONFIELD_HI_OPEN) == JSONFIELD_SET &&
        e->drop_p > e->condense_p)
        jsonfield_err(&x, "drop_p", "must be <= condense_p (%g)", e->condense_p);
    jsonfield_int(&x, "expand_groups", &e->expand_groups, 2, 1, 64);
    jsonfield_int(&x, "condense_groups", &e->condense_groups, 2, 0, 64);
    jsonfield_num(&x, "freeze", &e->freeze, 0.25, 0.0, 1.0, 0);
    jsonfield_int(&x, "settle_steps", &e->settle_steps, 200, 0, INT_MAX);
    jsonfield_num(&x, "max_width", &e->max_width, 3.0, 1.0, 16.0, 0);
    jsonfield_num(&x, "max_depth", &e->max_depth, 2.0, 1.0, 16.0, 0);
    o->n_err += jsonfield_finish(&x);
}

/* The arch object's own field: where the chains start. */
static void parse_arch_init(jsonfield_obj *r, void *ctx)
{
    adapt_spec *a = ctx;
    int init;
    jsonfield_enum(r, "init", &init, ADAPT_INIT_ZERO, INIT_NAMES, 2);
    a->init = (adapt_init)init;
}

static void parse_dna(adapt_spec *a, jsonfield_obj *o, int ranks)
{
    parse_window(a, o);
    searchspec_parse(&a->search, o, ranks, parse_arch_init, a);
    parse_elastic(&a->elastic, o);
    searchspec_parse_eval(&a->search, o);
    jsonfield_bool(o, "search_depth", &a->search_depth, 1);
}

int adaptspec_reach(const adapt_spec *a, const model_cfg *c, double *lo, double *hi, errbuf *eb)
{
    adapt_space s;
    int rc = adaptspace_init(&s, c, &a->window, eb);
    if (rc != 0)
        return rc;
    int n = s.sp.n_units, d1[ADAPTSPACE_MAX_STAGES];
    int *w = xcalloc((size_t)n, sizeof(int));
    for (int i = 0; i < s.n_stages; i++) /* width-only: every stage as deep as it is */
        d1[i] = a->search_depth ? 1 : s.depth0[i];
    adaptspace_min_widths(&s, w);
    *lo = adaptspace_macs(&s, w, d1);
    adaptspace_full_widths(&s, w);
    const adapt_elastic *e = &a->elastic;
    int grow = a->method == ADAPT_DNA && e->enabled;
    for (int u = 0; grow && u < n; u++) {
        /* widths grow by expand_groups groups while they stay under the cap */
        const prunespace_unit *x = &s.sp.units[u];
        int step = e->expand_groups * x->group;
        while (w[u] + step <= e->max_width * s.nominal[u])
            w[u] += step;
    }
    model_cfg big;
    adaptspace_cfg(&s, w, NULL, &big);
    for (int i = 0; grow && a->search_depth && i < s.n_stages; i++) {
        int cap = (int)floor(e->max_depth * s.depth0[i]);
        for (int k = s.depth[i]; k < cap; k++) {
            int first[ADAPTSPACE_MAX_STAGES], depth[ADAPTSPACE_MAX_STAGES];
            adaptspace_stages(&big, first, depth);
            int last = first[i] + depth[i] - 1;
            int inner = modelcfg_is_resnet(big.arch) ? big.stages[i].mids[depth[i] - 1]
                                                     : big.blocks[last].hidden;
            if (adaptspace_cfg_append_block(&big, i, inner) < 0)
                break;
        }
    }
    *hi = modelcfg_macs(&big);
    free(w);
    adaptspace_deinit(&s);
    return 0;
}

/* The target against what the space can reach. */
static void check_target(adapt_spec *a, jsonfield_obj *o, const model_cfg *model)
{
    const char *key = searchspec_target_key(a->target_ratio);
    double full = modelcfg_macs(model) / 1e6, lo, hi;
    if (a->target_ratio > 0)
        a->target_mflops = a->target_ratio * full;
    errbuf eb;
    if (adaptspec_reach(a, model, &lo, &hi, &eb) != 0) {
        fe_add(o->fe, "model.arch", "%s", eb.msg);
        o->n_err++;
        return;
    }
    lo /= 1e6;
    hi /= 1e6;
    if (a->target_mflops * (1 + ADAPT_TARGET_TOL) <= lo)
        jsonfield_err(
            o, key,
            "must be above %.4g MFLOPs, the smallest net of the search space (window.min %g, "
            "one block per stage)",
            lo, a->window.min);
    else if (a->target_mflops * (1 - ADAPT_TARGET_TOL) >= hi)
        jsonfield_err(o, key,
                      "must be below %.4g MFLOPs, the largest net the search space can reach", hi);
}

void adaptspec_parse(adapt_spec *a, jsonfield_obj *root, const json_t *j, const model_cfg *model,
                     int ranks)
{
    memset(a, 0, sizeof *a);
    jsonfield_obj o;
    int m = searchspec_open(&o, root, j, &HEAD, &a->target_mflops, &a->target_ratio);
    if (m < 0)
        return;
    a->method = (adapt_method)m;

    /* the window and elastic defaults also bound the baselines' reach */
    a->window = (adaptspace_window){0.25, 1.5, 0.1};
    a->elastic = (adapt_elastic){.enabled = 1,
                                 .patience = 2,
                                 .expand_p = 0.9,
                                 .condense_p = 0.1,
                                 .drop_p = 0.01,
                                 .expand_groups = 2,
                                 .condense_groups = 2,
                                 .freeze = 0.25,
                                 .settle_steps = 200,
                                 .max_width = 3.0,
                                 .max_depth = 2.0};
    if (a->method == ADAPT_DNA) {
        parse_dna(a, &o, ranks);
    } else {
        searchspec_only(&o, DNA_ONLY, sizeof DNA_ONLY / sizeof DNA_ONLY[0], "dna");
    }
    if (a->method != ADAPT_DNA)
        a->search_depth = 1; /* not a field of the baselines: their rules set depths */
    a->compound_alpha = 1.2;
    a->compound_beta = 1.1;
    if (a->method == ADAPT_COMPOUND) {
        jsonfield_obj c;
        jsonfield_child(&c, &o, "compound");
        jsonfield_num(&c, "alpha", &a->compound_alpha, 1.2, 1.0, 4.0, JSONFIELD_LO_OPEN);
        jsonfield_num(&c, "beta", &a->compound_beta, 1.1, 1.0, 4.0, JSONFIELD_LO_OPEN);
        o.n_err += jsonfield_finish(&c);
    } else if (jsonfield_get(&o, "compound") != NULL) {
        jsonfield_err(&o, "compound", "is only for method \"compound\"");
    }
    if (model != NULL && !modelcfg_is_resnet(model->arch) && !modelcfg_is_mb(model->arch)) {
        fe_add(o.fe, "model.arch",
               "network adaption supports resnet_cifar, resnet, mobilenetv2, mobilenetv3 "
               "and efficientnet, not %s",
               modelcfg_arch_name(model->arch));
        o.n_err++;
    }
    /* the range check needs a valid model and window */
    if (model != NULL && o.n_err == 0)
        check_target(a, &o, model);
    root->n_err += jsonfield_finish(&o);
}

/* The canonical elastic object. New reference. */
static json_t *elastic_json(const adapt_elastic *e)
{
    return json_pack(
        "{s:b, s:i, s:i, s:o, s:o, s:o, s:i, s:i, s:o, s:i, s:o, s:o}", "enabled", e->enabled,
        "check_every", e->check_every, "patience", e->patience, "expand_p",
        jsonfield_number_json(e->expand_p), "condense_p", jsonfield_number_json(e->condense_p),
        "drop_p", jsonfield_number_json(e->drop_p), "expand_groups", e->expand_groups,
        "condense_groups", e->condense_groups, "freeze", jsonfield_number_json(e->freeze),
        "settle_steps", e->settle_steps, "max_width", jsonfield_number_json(e->max_width),
        "max_depth", jsonfield_number_json(e->max_depth));
}

json_t *adaptspec_to_json(const adapt_spec *a)
{
    json_t *j = searchspec_head_json(METHOD_NAMES[a->method], a->target_mflops, a->target_ratio);
    if (a->method == ADAPT_COMPOUND)
        json_object_set_new(j, "compound",
                            json_pack("{s:o, s:o}", "alpha",
                                      jsonfield_number_json(a->compound_alpha), "beta",
                                      jsonfield_number_json(a->compound_beta)));
    if (a->method != ADAPT_DNA)
        return j;
    json_object_set_new(j, "window",
                        json_pack("{s:o, s:o, s:o}", "min", jsonfield_number_json(a->window.min),
                                  "max", jsonfield_number_json(a->window.max), "group",
                                  jsonfield_number_json(a->window.group)));
    json_t *r = searchspec_to_json(&a->search, j);
    json_object_set_new(r, "init", json_string(INIT_NAMES[a->init]));
    json_object_set_new(j, "elastic", elastic_json(&a->elastic));
    json_object_set_new(j, "search_depth", json_boolean(a->search_depth));
    searchspec_eval_json(&a->search, j);
    return j;
}
