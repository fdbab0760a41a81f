/* searchspec.h - what the "prune" and "adapt" objects share: the opening
 * and target fields, and the settings of an architecture search.
 *
 * Both objects open the same way ("method" from a list of names, then
 * exactly one of "target_mflops" and "target_ratio") and, for the search
 * methods (prune dmcp, adapt dna), read the same schedule:
 *
 *   "warmup_epochs": 20,           // weights only (sandwich rule)
 *   "search_epochs": 20,           // weight and architecture steps alternate
 *   "search": {"batch_size":128, "lr":0.1, "min_lr":0.016, "weight_decay":5e-4,
 *              "momentum":0.9, "nesterov":true, "label_smoothing":0},
 *   "arch":   {"lr":0.5, "min_lr":0.1, "momentum":0.9, "nesterov":true, "weight_decay":0,
 *              "flops_loss_weight":0.1, "band":0.95},
 *   "calib_batches": 5,            // BN recalibration before a sub-net is evaluated
 *   "eval_limit": 0                // test images for the search-phase accuracies (0 = all)
 *
 * prunespec.c and adaptspec.c call these and add their own fields. Pure
 * C + jansson; thread-safe.
 */
#ifndef KILN_SEARCHSPEC_H
#define KILN_SEARCHSPEC_H

#include "common/jsonfield.h"

#include <jansson.h>

/* An SGD recipe of the search: per-iteration cosine from lr to min_lr. */
typedef struct search_sgd {
    double lr, min_lr, weight_decay, momentum;
    int nesterov;
} search_sgd;

/* The settings of an architecture search (DMCP's schedule). */
typedef struct search_spec {
    int warmup_epochs, search_epochs;
    int batch_size; /* global batch of the search */
    search_sgd weights;
    double label_smoothing;
    search_sgd arch;
    double flops_loss_weight; /* lambda */
    double band;              /* the dead band is [band*T, T) */
    int calib_batches;
    int eval_limit;
} search_spec;

/* How a method object opens: its key (also the job type named in "is
 * required for type ..."), its method names (the first is the default) and
 * the bounds of target_ratio: (0, max_ratio], open at the top when
 * ratio_hi_open. */
typedef struct search_head {
    const char *object;
    const char *const *methods;
    int n_methods;
    double max_ratio;
    int ratio_hi_open;
} search_head;

/* Opens j as root's child h->object into o and reads the target into
 * *mflops / *ratio (the one not given is 0; both, neither or a bad one is
 * reported in o). Returns "method" (an index into h->methods), or -1 when
 * j is NULL ("is required") or not an object: the error is then counted in
 * root and o must not be finished. */
int searchspec_open(jsonfield_obj *o, jsonfield_obj *root, const json_t *j, const search_head *h,
                    double *mflops, double *ratio);

/* The key the target was given as ("target_ratio" when ratio > 0, else
 * "target_mflops"), for messages about it after a clean parse. */
const char *searchspec_target_key(double ratio);

/* Reports each of the n keys present in o: "is only for method <method>". */
void searchspec_only(jsonfield_obj *o, const char *const *keys, size_t n, const char *method);

/* The canonical head of the object: "method" and the target as given
 * ("target_ratio" when ratio > 0, else "target_mflops"). New reference. */
json_t *searchspec_head_json(const char *method, double mflops, double ratio);

/* Reads an SGD recipe object (lr, min_lr, weight_decay, momentum, nesterov)
 * through o with the given defaults (min_lr defaults to min(min_lr, lr)). */
void searchspec_parse_sgd(jsonfield_obj *o, search_sgd *s, double lr, double min_lr, double wd);

/* Reads the arch object's fields beyond the shared ones (NULL: none). */
typedef void (*searchspec_arch_fn)(jsonfield_obj *arch, void *ctx);

/* Reads warmup_epochs, search_epochs, the "search" child (batch_size,
 * divisible by ranks when ranks > 0; the weight recipe; label_smoothing)
 * and the "arch" child (its recipe, flops_loss_weight, band, then
 * arch_extra's fields) of o into s. Errors are counted in o. */
void searchspec_parse(search_spec *s, jsonfield_obj *o, int ranks, searchspec_arch_fn arch_extra,
                      void *ctx);

/* Reads calib_batches and eval_limit of o into s. */
void searchspec_parse_eval(search_spec *s, jsonfield_obj *o);

/* The canonical JSON of an SGD recipe. New reference. */
json_t *searchspec_sgd_json(const search_sgd *s);

/* Adds warmup_epochs, search_epochs, "search" and "arch" to j; returns the
 * arch object (borrowed from j) for the method's own fields. */
json_t *searchspec_to_json(const search_spec *s, json_t *j);

/* Adds calib_batches and eval_limit to j. */
void searchspec_eval_json(const search_spec *s, json_t *j);

#endif
