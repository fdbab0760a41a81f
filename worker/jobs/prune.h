/* prune.h - the prune job: DMCP search or uniform width, then retraining.
 *
 * prune_run is job_run's case for type prune. The job:
 *   1. builds the search space of the spec's model (common/prunespace.h);
 *   2. dmcp: trains the weight-sharing supernet and the architecture
 *      (prune_dmcp.c: warm-up with the sandwich rule, then alternating
 *      weight and architecture steps) and derives the network (prune_derive.c:
 *      the expected architecture, or a direct sample, fitted into the +-1 %
 *      band); uniform: one width multiplier meeting the same target
 *      (prune_uniform.c);
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

#include "common/prunespec.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"
#include "worker/jobs/job.h"
#include "worker/jobs/nas.h"
#include "worker/jobs/prune_chain.h"
#include "worker/models/net.h"

#include <jansson.h>

/* Runs a prune job (spec->type == JOB_PRUNE). As job_run. */
int prune_run(const job_spec *spec, const job_env *env, job_result *res, errbuf *eb);

/* ---- shared by the prune_*.c files ---------------------------------------- */

typedef struct pruner {
    nas_job j; /* ranks, data, batch buffers, sink helpers (nas.h) */
    prune_spec ps;
    prune_space sp;
    double full_mflops; /* the supernet's */
    double target;      /* MFLOPs */
    long warmup_steps;  /* steps of the warm-up */
    long total_steps;   /* of the search (warm-up + search) */
    net super;          /* the supernet, with scaling sites */
    prune_chains ch;    /* its architecture parameters */
    double top1_max;    /* supernet at full width after the search, recalibrated */
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

/* The derived network (prune_derive.c): ES or DS per p->ps.derive, fitted
 * into [target*(1-tol), target*(1+tol)] where the grid allows; fills w and
 * adds "derive" details (ES and DS widths and MFLOPs, the direct samples)
 * to info. Returns 0 or ERR_INTERNAL (no direct sample in the band). */
int prune_derive_widths(pruner *p, int *w, json_t *info, errbuf *eb);

/* Greedy fit of widths w into the band around the target (prune_derive.c):
 * drops channels from the unit whose last kept channel has the lowest keep
 * probability while above the band, adds channels with the highest
 * probability while below it (priority: chains when p->ch is trained, else
 * the unit's relative width). Returns the number of channels moved. */
int prune_fit_band(pruner *p, int *w, const prune_chains *ch);

/* The uniform baseline (prune_uniform.c): the largest multiplier whose net
 * is at most target*(1+tol) MFLOPs; fills w and returns the multiplier (in
 * reference-width units). */
double prune_uniform_widths(const pruner *p, int *w);

#endif
