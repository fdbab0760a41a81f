/* prunespec.h - the "prune" object of a prune job: parse, validate, defaults.
 *
 * A prune job searches a narrower version of its `model` (the supernet) that
 * meets a FLOPs target, then trains it with the job's `optim` recipe (the
 * retrain recipe, exactly as a train job would). The prune object says how:
 *
 *   "prune": {
 *     "method": "dmcp",              // or "uniform": one width multiplier
 *     "target_mflops": 20.4,         // or "target_ratio": 0.5 (of the model's MFLOPs)
 *     "width": {"min": 0.1, "max": 1.0, "offset": 0.1},  // DMCP's [min_w, max_w, offset]
 *     "finetune": false,             // retrain from the supernet's weights, not from scratch
 *     -- dmcp only --
 *     "warmup_epochs": 20,           // weights only (sandwich rule)
 *     "search_epochs": 20,           // weight and architecture steps alternate
 *     "search": {"batch_size":128, "lr":0.1, "min_lr":0.016, "weight_decay":5e-4,
 *                "momentum":0.9, "nesterov":true, "label_smoothing":0},
 *     "arch":   {"lr":0.5, "min_lr":0.1, "momentum":0.9, "nesterov":true, "weight_decay":0,
 *                "flops_loss_weight":0.1, "band":0.95},
 *     "calib_batches": 5,            // BN recalibration before a sub-net is evaluated
 *     "eval_limit": 0,               // test images for the search-phase accuracies (0 = all)
 *     "derive": "es",                // or "ds": a direct sample within +-1 % of the target
 *     "ds_samples": 5                // direct samples listed in the report
 *   }
 *
 * The target must lie strictly between the smallest net of the space
 * (every unit at c_min) and the whole model. Pure C + jansson; thread-safe.
 */
#ifndef KILN_PRUNESPEC_H
#define KILN_PRUNESPEC_H

#include "common/fielderr.h"
#include "common/jsonfield.h"
#include "common/modelcfg.h"
#include "common/prunespace.h"

#include <jansson.h>

typedef enum { PRUNE_DMCP = 0, PRUNE_UNIFORM } prune_method;
typedef enum { PRUNE_DERIVE_ES = 0, PRUNE_DERIVE_DS } prune_derive;

/* An SGD recipe of the search: per-iteration cosine from lr to min_lr. */
typedef struct prune_sgd {
    double lr, min_lr, weight_decay, momentum;
    int nesterov;
} prune_sgd;

typedef struct prune_spec {
    prune_method method;
    double target_mflops; /* resolved: target_ratio * model MFLOPs when given as a ratio */
    double target_ratio;  /* as given, or 0 when target_mflops was given */
    ps_width width;
    int finetune;
    /* dmcp */
    int warmup_epochs, search_epochs;
    int batch_size; /* global batch of the search */
    prune_sgd weights;
    double label_smoothing;
    prune_sgd arch;
    double flops_loss_weight; /* lambda */
    double band;              /* the dead band is [band*T, T) */
    int calib_batches;
    int eval_limit;
    prune_derive derive;
    int ds_samples;
} prune_spec;

/* The +-1 % band around the target that derived architectures must meet. */
#define PRUNE_TARGET_TOL 0.01

/* Parses the prune object j of a job whose supernet is `model` (already
 * parsed) and which runs on `ranks` ranks; has_init_from says whether the
 * job starts from given weights. Problems go into o's field_errors with
 * paths "prune.<field>" and are counted in o->n_err (o is the job spec's
 * root reader). j NULL: "prune is required". */
void prunespec_parse(prune_spec *p, jf_obj *root, const json_t *j, const model_cfg *model,
                     int ranks, int has_init_from);

/* The canonical prune object (every default filled; only the fields of the
 * method). New reference. */
json_t *prunespec_to_json(const prune_spec *p);

const char *prunespec_method_name(prune_method m);

/* Reads an SGD recipe object (lr, min_lr, weight_decay, momentum, nesterov)
 * through o with the given defaults (min_lr defaults to min(min_lr, lr)).
 * Shared with the adapt object (adaptspec.h). */
void prunespec_parse_sgd(jf_obj *o, prune_sgd *s, double lr, double min_lr, double wd);

/* Reads the "search" child of o, the weight recipe of a search (prune dmcp,
 * adapt dna): batch_size (default 128, divisible by ranks when ranks > 0),
 * the SGD recipe (lr 0.1, min_lr 0.016, weight_decay 5e-4) and
 * label_smoothing (0). Errors are counted in o. */
void prunespec_parse_search(jf_obj *o, int ranks, int *batch_size, prune_sgd *weights,
                            double *label_smoothing);

/* The canonical JSON of an SGD recipe. New reference. */
json_t *prunespec_sgd_json(const prune_sgd *s);

#endif
