/* adaptspec.h - the "adapt" object of an adapt job: parse, validate, defaults.
 *
 * An adapt job fits an existing network (the job's `model`, with fresh
 * weights or a finished job's weights through init_from) to a FLOPs target
 * below or above its own, then trains the result with the job's `optim`
 * recipe, as a train job would. The adapt object says how:
 *
 *   "adapt": {
 *     "method": "dna",           // or "uniform_width", "uniform_depth", "compound"
 *     "target_mflops": 20.4,     // or "target_ratio": 1.3 (of the model's MFLOPs, up to 4)
 *     -- dna only --
 *     "window": {"min": 0.25, "max": 1.5, "group": 0.1},  // per unit, fractions of its width
 *     "warmup_epochs": 20,       // weights only (sandwich rule)
 *     "search_epochs": 20,       // weight and architecture steps alternate
 *     "search": {"batch_size":128, "lr":0.1, "min_lr":0.016, "weight_decay":5e-4,
 *                "momentum":0.9, "nesterov":true, "label_smoothing":0},
 *     "arch":   {"lr":0.5, "min_lr":0.1, "momentum":0.9, "nesterov":true, "weight_decay":0,
 *                "flops_loss_weight":0.1, "band":0.95,
 *                "init":"zero"},  // or "existing": start at the existing network's widths/depths
 *     "elastic": {"enabled":true,
 *                 "check_every":0,      // architecture steps between checks (0: every epoch)
 *                 "patience":2,         // consecutive checks a condition must hold
 *                 "expand_p":0.9,       // width: P of the top group; depth: q of the last block
 *                 "condense_p":0.1,     // width: P of the first prunable group
 *                 "drop_p":0.01,        // groups and blocks below this are deleted
 *                 "expand_groups":2, "condense_groups":2,
 *                 "freeze":0.25,        // no changes in this last fraction of the search
 *                 "settle_steps":200,   // weight-only steps after a change
 *                 "max_width":3.0,      // a unit's width stays <= this times its width in the
 * model "max_depth":2.0},     // a stage's depth stays <= this times its depth in the model
 *     "search_depth": true,      // false: widths only, every stage keeps its depth (DMCP-style:
 *                                // no depth chains, no depth events)
 *     "calib_batches": 5,        // BN recalibration before a sub-net is evaluated
 *     "eval_limit": 0,           // test images for the search-phase accuracies (0 = all)
 *     -- compound only --
 *     "compound": {"alpha": 1.2, "beta": 1.1}  // depth and width bases (EfficientNet)
 *   }
 *
 * The target must lie above the smallest net of the initial search space
 * (every unit at its window's c_min, one block per stage) and below the
 * largest the space can reach (every unit at max_width, every stage at
 * max_depth; without elastic changes the initial window's top and the
 * model's depths). Pure C + jansson; thread-safe.
 */
#ifndef KILN_ADAPTSPEC_H
#define KILN_ADAPTSPEC_H

#include "common/adaptspace.h"
#include "common/jsonfield.h"
#include "common/modelcfg.h"
#include "common/searchspec.h"

#include <jansson.h>

typedef enum {
    ADAPT_DNA = 0,
    ADAPT_UNIFORM_WIDTH,
    ADAPT_UNIFORM_DEPTH,
    ADAPT_COMPOUND,
} adapt_method;

typedef enum { ADAPT_INIT_ZERO = 0, ADAPT_INIT_EXISTING } adapt_init;

typedef struct adapt_elastic {
    int enabled;
    int check_every; /* architecture steps between checks; 0 = once per epoch */
    int patience;
    double expand_p, condense_p, drop_p;
    int expand_groups, condense_groups;
    double freeze;
    int settle_steps;
    double max_width, max_depth;
} adapt_elastic;

typedef struct adapt_spec {
    adapt_method method;
    double target_mflops; /* resolved: target_ratio * model MFLOPs when given as a ratio */
    double target_ratio;  /* as given, or 0 when target_mflops was given */
    /* dna */
    adaptspace_window window;
    search_spec search; /* the schedule (common/searchspec.h) */
    adapt_init init;
    adapt_elastic elastic;
    int search_depth; /* 0: widths only (the depths stay the model's) */
    /* compound */
    double compound_alpha, compound_beta;
} adapt_spec;

/* The band around the target that derived architectures must meet. */
#define ADAPT_TARGET_TOL 0.01

/* Parses the adapt object j of a job whose existing network is `model`
 * (already parsed, NULL if it was bad) and which runs on `ranks` ranks.
 * Problems go into root's field_errors with paths "adapt.<field>" and are
 * counted in root->n_err. j NULL: "adapt is required". */
void adaptspec_parse(adapt_spec *a, jsonfield_obj *root, const json_t *j, const model_cfg *model,
                     int ranks);

/* The canonical adapt object (every default filled; only the fields of the
 * method). New reference. */
json_t *adaptspec_to_json(const adapt_spec *a);

const char *adaptspec_method_name(adapt_method m);

/* The MACs range the space of a can reach from the existing network c
 * (see above): *lo and *hi. Returns 0 or ERR_INVALID (a ViT arch; eb). */
int adaptspec_reach(const adapt_spec *a, const model_cfg *c, double *lo, double *hi, errbuf *eb);

#endif
