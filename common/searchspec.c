/* searchspec.c - the opening, target and search settings of the prune and
 * adapt objects (see searchspec.h).
 *
 * Defaults are the small-scale DMCP recipe of ALGORITHMS.md 2.11: SGD
 * (Nesterov) 0.1 -> 0.016 for the weights, 0.5 -> 0.1 for the
 * architecture, lambda 0.1 with the dead band [0.95 T, T), 20 + 20 epochs.
 * Pure C + jansson; no global state, thread-safe.
 */
#include "common/searchspec.h"

#include <limits.h>
#include <math.h>

#define MAX_EPOCHS 10000
#define MAX_BATCH  65536

int searchspec_open(jsonfield_obj *o, jsonfield_obj *root, const json_t *j, const search_head *h,
                    double *mflops, double *ratio)
{
    jsonfield_open(o, NULL, h->object, root->fe);
    if (j == NULL) {
        jsonfield_err(o, NULL, "is required for type \"%s\"", h->object);
        root->n_err += o->n_err;
        return -1;
    }
    if (jsonfield_open(o, j, h->object, root->fe) == JSONFIELD_BAD) {
        root->n_err++;
        return -1;
    }
    int method;
    jsonfield_enum(o, "method", &method, 0, h->methods, h->n_methods);
    int has_t = jsonfield_num(o, "target_mflops", mflops, 0.0, 0.0, 1e9, JSONFIELD_LO_OPEN);
    int has_r = jsonfield_num(o, "target_ratio", ratio, 0.0, 0.0, h->max_ratio,
                              JSONFIELD_LO_OPEN | (h->ratio_hi_open ? JSONFIELD_HI_OPEN : 0));
    if (has_t != JSONFIELD_ABSENT && has_r != JSONFIELD_ABSENT)
        jsonfield_err(o, "target_ratio", "cannot be combined with target_mflops");
    else if (has_t == JSONFIELD_ABSENT && has_r == JSONFIELD_ABSENT)
        jsonfield_err(o, "target_mflops", "is required (or target_ratio)");
    if (has_t != JSONFIELD_SET)
        *mflops = 0;
    if (has_r != JSONFIELD_SET)
        *ratio = 0;
    return method;
}

const char *searchspec_target_key(double ratio)
{
    return ratio > 0 ? "target_ratio" : "target_mflops";
}

void searchspec_only(jsonfield_obj *o, const char *const *keys, size_t n, const char *method)
{
    for (size_t i = 0; i < n; i++)
        if (jsonfield_get(o, keys[i]) != NULL)
            jsonfield_err(o, keys[i], "is only for method \"%s\"", method);
}

json_t *searchspec_head_json(const char *method, double mflops, double ratio)
{
    json_t *j = json_object();
    json_object_set_new(j, "method", json_string(method));
    if (ratio > 0)
        json_object_set_new(j, "target_ratio", jsonfield_number_json(ratio));
    else
        json_object_set_new(j, "target_mflops", jsonfield_number_json(mflops));
    return j;
}

void searchspec_parse_sgd(jsonfield_obj *o, search_sgd *s, double lr, double min_lr, double wd)
{
    jsonfield_num(o, "lr", &s->lr, lr, 0.0, 100.0, JSONFIELD_LO_OPEN);
    if (jsonfield_num(o, "min_lr", &s->min_lr, fmin(min_lr, s->lr), 0.0, HUGE_VAL, 0) ==
            JSONFIELD_SET &&
        s->min_lr > s->lr)
        jsonfield_err(o, "min_lr", "must be <= lr (%g)", s->lr);
    jsonfield_num(o, "weight_decay", &s->weight_decay, wd, 0.0, 1.0, 0);
    jsonfield_num(o, "momentum", &s->momentum, 0.9, 0.0, 1.0, JSONFIELD_HI_OPEN);
    if (jsonfield_bool(o, "nesterov", &s->nesterov, 1) != JSONFIELD_BAD && s->nesterov &&
        s->momentum == 0.0)
        jsonfield_err(o, "nesterov", "needs momentum > 0");
}

/* The "search" child: the weight recipe of the search. */
static void parse_weights(search_spec *p, jsonfield_obj *o, int ranks)
{
    jsonfield_obj s;
    jsonfield_child(&s, o, "search");
    if (jsonfield_int(&s, "batch_size", &p->batch_size, 128, 1, MAX_BATCH) == JSONFIELD_SET &&
        ranks > 0 && p->batch_size % ranks != 0)
        jsonfield_err(&s, "batch_size", "must be divisible by resources.ranks (%d)", ranks);
    searchspec_parse_sgd(&s, &p->weights, 0.1, 0.016, 5e-4);
    jsonfield_num(&s, "label_smoothing", &p->label_smoothing, 0.0, 0.0, 1.0, JSONFIELD_HI_OPEN);
    o->n_err += jsonfield_finish(&s);
}

void searchspec_parse(search_spec *s, jsonfield_obj *o, int ranks, searchspec_arch_fn arch_extra,
                      void *ctx)
{
    jsonfield_int(o, "warmup_epochs", &s->warmup_epochs, 20, 0, MAX_EPOCHS);
    jsonfield_int(o, "search_epochs", &s->search_epochs, 20, 1, MAX_EPOCHS);
    parse_weights(s, o, ranks);
    jsonfield_obj a;
    jsonfield_child(&a, o, "arch");
    searchspec_parse_sgd(&a, &s->arch, 0.5, 0.1, 0.0);
    jsonfield_num(&a, "flops_loss_weight", &s->flops_loss_weight, 0.1, 0.0, 1000.0, 0);
    jsonfield_num(&a, "band", &s->band, 0.95, 0.5, 1.0, 0);
    if (arch_extra != NULL)
        arch_extra(&a, ctx);
    o->n_err += jsonfield_finish(&a);
}

void searchspec_parse_eval(search_spec *s, jsonfield_obj *o)
{
    jsonfield_int(o, "calib_batches", &s->calib_batches, 5, 1, 1000);
    jsonfield_int(o, "eval_limit", &s->eval_limit, 0, 0, INT_MAX);
}

json_t *searchspec_sgd_json(const search_sgd *s)
{
    json_t *j = json_object();
    json_object_set_new(j, "lr", jsonfield_number_json(s->lr));
    json_object_set_new(j, "min_lr", jsonfield_number_json(s->min_lr));
    json_object_set_new(j, "weight_decay", jsonfield_number_json(s->weight_decay));
    json_object_set_new(j, "momentum", jsonfield_number_json(s->momentum));
    json_object_set_new(j, "nesterov", json_boolean(s->nesterov));
    return j;
}

json_t *searchspec_to_json(const search_spec *s, json_t *j)
{
    json_object_set_new(j, "warmup_epochs", json_integer(s->warmup_epochs));
    json_object_set_new(j, "search_epochs", json_integer(s->search_epochs));
    json_t *w = searchspec_sgd_json(&s->weights);
    json_object_set_new(w, "batch_size", json_integer(s->batch_size));
    json_object_set_new(w, "label_smoothing", jsonfield_number_json(s->label_smoothing));
    json_object_set_new(j, "search", w);
    json_t *a = searchspec_sgd_json(&s->arch);
    json_object_set_new(a, "flops_loss_weight", jsonfield_number_json(s->flops_loss_weight));
    json_object_set_new(a, "band", jsonfield_number_json(s->band));
    json_object_set_new(j, "arch", a);
    return a;
}

void searchspec_eval_json(const search_spec *s, json_t *j)
{
    json_object_set_new(j, "calib_batches", json_integer(s->calib_batches));
    json_object_set_new(j, "eval_limit", json_integer(s->eval_limit));
}
