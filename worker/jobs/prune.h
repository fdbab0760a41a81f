/* prune.h - the prune job: DMCP search or uniform width, then retraining.
 *
 * prune_run is job_run's case for type prune. The job:
 *   1. builds the search space of the spec's model (common/prunespace.h);
 *   2. dmcp: trains the weight-sharing supernet and the architecture
 *      (nas_search.c's schedule over prune_dmcp.c's width space: warm-up
 *      with the sandwich rule, then alternating weight and architecture
 *      steps) and derives the network (prune_derive.c:
 *      the expected architecture fitted into the +-1 % band, or a direct
 *      sample in it); uniform: one width multiplier meeting the same target,
 *      rounded and fitted into the band (prune_uniform.c). When no network
 *      of the space lies in the band the job fails naming prune.target_*,
 *      before any retraining;
 *   3. writes architecture.json (an explicit model config) and trains that
 *      network with the spec's optim recipe through train_run, from scratch
 *      or (finetune) from the supernet's weights, metrics renamed
 *      "retrain/...";
 *   4. writes model.safetensors and report.json (per-layer widths, FLOPs and
 *      params before and after, accuracy before and after).
 * Artifacts in env->out_dir: model.safetensors, architecture.json,
 * report.json, and for dmcp supernet.safetensors (the supernet after the
 * warm-up, a starting point for searches at other targets via init_from)
 * and search.json (the search's outcome, which a resumed retrain reads).
 * Checkpoints: search-<step>.safetensors during the search (kind
 * prune-search), ckpt-<step>.safetensors during the retrain; resume_path
 * may name either. Every rank calls prune_run with the same spec.
 *
 * The pruner struct below is shared by the prune_*.c files only.
 */
#ifndef KILN_JOBS_PRUNE_H
#define KILN_JOBS_PRUNE_H

#include "common/bandfit.h"
#include "common/prunespec.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"
#include "worker/jobs/job.h"
#include "worker/jobs/nas.h"
#include "worker/jobs/prune_chain.h"
#include "worker/models/net.h"

#include <jansson.h>

/* Runs a prune job (spec->type == JOB_PRUNE). As job_run, except that
 * res->summary may stay NULL when the job fails (job_run fills it). */
int prune_run(const job_spec *spec, const job_env *env, job_result *res, errbuf *eb);

/* ---- shared by the prune_*.c files ---------------------------------------- */

typedef struct pruner {
    nas_job j; /* ranks, data, batch buffers, sink helpers (nas.h) */
    prune_spec ps;
    prune_space sp;
    double full_mflops; /* the supernet's */
    nas_goal goal;      /* target, band, schedule and steps of the search */
    net super;          /* the supernet, with scaling sites */
    prune_chains ch;    /* its architecture parameters */
    double top1_max;    /* supernet at full width after the search, recalibrated */
    double t0;          /* nas_now() at the start */
} pruner;

/* Builds the sub-net of widths w (batch b) into m (net_init'ed by the
 * caller) and copies its weights from the supernet. Returns 0 or a negative
 * ERR_* (a width vector the supernet cannot hold). */
int pruner_subnet(pruner *p, const int *w, net *m, errbuf *eb);

/* Top-1 of the sub-net of widths w (NULL: the supernet at full width) on
 * ds, after BN recalibration. */
double pruner_eval_widths(pruner *p, const int *w, const dataset *ds, errbuf *eb);

/* DMCP's search (prune_dmcp.c): from step `start` (0, or a resumed
 * checkpoint's step) to p->total_steps. Returns 0, ERR_CANCELLED (a
 * checkpoint was written) or another ERR_*. */
int dmcp_search(pruner *p, long start, errbuf *eb);

/* Restores a prune-search checkpoint into p->super and p->ch; *step gets its step. */
int dmcp_load_checkpoint(pruner *p, const char *path, long *step, errbuf *eb);

/* The derived network (prune_derive.c): ES or DS per p->ps.derive, in
 * [target*(1-tol), target*(1+tol)] (ES fitted by prune_fit_band); fills w and
 * adds "derive" details (ES and DS widths and MFLOPs, the direct samples)
 * to info. Returns 0, ERR_INVALID (derive es: no network of the space
 * in the band; the message names the target field and the nearest
 * MFLOPs) or ERR_INTERNAL (derive ds: no direct sample in the band). On
 * several ranks every rank returns rank 0's outcome. */
int prune_derive_widths(pruner *p, int *w, json_t *info, errbuf *eb);

/* The spec's target field: "prune.target_ratio" or "prune.target_mflops". */
const char *prune_target_field(const pruner *p);

/* Fits widths w into [target*(1-tol), target*(1+tol)] (prune_derive.c;
 * common/bandfit.h): the widths nearest `want` (n_units) with scale and
 * lower bounds w_min (NULL: the unit's group and c_min; upper bound C).
 * On entry w is the rounded start. Returns 0 with w in the band, or
 * ERR_INVALID naming prune_target_field and the nearest MFLOPs (w is then
 * that nearest network). r receives the outcome. */
int prune_fit_band(const pruner *p, const double *want, const double *scale, const int *w_min,
                   int *w, bandfit_result *r, errbuf *eb);

/* The uniform baseline (prune_uniform.c): the multiplier m (in
 * reference-width units, into *mult) whose real widths C*m/max meet the
 * target exactly, rounded and fitted into the band; fills w and adds the
 * details to info. Returns 0 or ERR_INVALID (the band out of reach). */
int prune_uniform_widths(const pruner *p, int *w, json_t *info, double *mult, errbuf *eb);

#endif
