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
 *     (the search settings of common/searchspec.h: warmup_epochs,
 *      search_epochs, search, arch, calib_batches, eval_limit)
 *     "derive": "es",                // or "ds": a direct sample within +-1 % of the target
 *     "ds_samples": 5,               // direct samples listed in the report
 *     "sampling": "group"            // or "official": the smallest and the random
 *                                    // sub-nets of the weight steps as DMCP's code
 *                                    // draws them (multiples of 8; see prune_chain.h)
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
#include "common/searchspec.h"

#include <jansson.h>

typedef enum { PRUNE_DMCP = 0, PRUNE_UNIFORM } prune_method;
typedef enum { PRUNE_DERIVE_ES = 0, PRUNE_DERIVE_DS } prune_derive;
/* How the weight steps draw the smallest and the random sub-nets: on the
 * space's channel groups (c_min + j*group), or as DMCP's official code does. */
typedef enum { PRUNE_SAMPLING_GROUP = 0, PRUNE_SAMPLING_OFFICIAL } prune_sampling;

typedef struct prune_spec {
    prune_method method;
    double target_mflops; /* resolved: target_ratio * model MFLOPs when given as a ratio */
    double target_ratio;  /* as given, or 0 when target_mflops was given */
    prunespace_width width;
    int finetune;
    /* dmcp */
    search_spec search; /* the schedule (common/searchspec.h) */
    prune_derive derive;
    int ds_samples;
    prune_sampling sampling;
} prune_spec;

/* The +-1 % band around the target that derived architectures must meet. */
#define PRUNE_TARGET_TOL 0.01

/* Parses the prune object j of a job whose supernet is `model` (already
 * parsed) and which runs on `ranks` ranks; has_init_from says whether the
 * job starts from given weights. Problems go into o's field_errors with
 * paths "prune.<field>" and are counted in o->n_err (o is the job spec's
 * root reader). j NULL: "prune is required". */
void prunespec_parse(prune_spec *p, jsonfield_obj *root, const json_t *j, const model_cfg *model,
                     int ranks, int has_init_from);

/* The canonical prune object (every default filled; only the fields of the
 * method). New reference. */
json_t *prunespec_to_json(const prune_spec *p);

const char *prunespec_method_name(prune_method m);

#endif
