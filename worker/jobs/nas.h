/* nas.h - what the architecture-search jobs (prune: DMCP, adapt: DNA) share.
 *
 * A nas_job holds the parts of such a job that do not depend on the search
 * space: the ranks, the search's datasets and batch buffers, the BN
 * recalibration batches, the sink helpers (metrics, log lines, cancel), the
 * weight step and the in-place distillation of the sandwich rule, the
 * checkpoint ring, the artifacts (JSON files in out_dir) and the retrain
 * of the found network through train_run with its metrics renamed
 * "retrain/...". nas_run_job is the frame of both jobs (resume, search,
 * retrain, report); the search itself is nas_search.c's. The job files
 * (prune*.c, adapt*.c) embed a nas_job and add their space and chains.
 * Used by the job's thread only; every rank holds its own.
 */
#ifndef KILN_JOBS_NAS_H
#define KILN_JOBS_NAS_H

#include "common/fielderr.h"
#include "common/jobspec.h"
#include "common/jsonfield.h"
#include "common/searchspec.h"
#include "worker/data/dataset.h"
#include "worker/data/loader.h"
#include "worker/jobs/batch.h"
#include "worker/jobs/checkpoint.h"
#include "worker/jobs/job.h"
#include "worker/jobs/train.h"
#include "worker/models/net.h"
#include "worker/models/slice.h"

#include <jansson.h>
#include <stdint.h>

typedef struct nas_job {
    const job_spec *spec; /* borrowed */
    const job_env *env;   /* borrowed */
    const dist_info *d;   /* env->dist or &one */
    int K;                /* classes */
    dataset train, test;  /* owned */
    dataset eval;         /* view of test (first eval_limit samples); not owned */
    int b;                /* per-rank batch of the search */
    int calib_batches;    /* BN recalibration batches */
    long steps_per_epoch; /* of the search */
    long retrain_steps;   /* of the retrain, for the progress total */
    loader *calib;        /* training batches for BN recalibration */
    job_batch bt;         /* the batch buffers */
    float *teacher;       /* (b, K) the supernet's softmax, detached */
    float *sprobs;        /* (b, K) a sub-net's softmax */
    ckpt_ring ckpts;      /* search checkpoints on disk */
} nas_job;

/* What a search aims at, set by its job: the schedule (search_spec, shared by the
 * methods' specs), the target, the band the derived network must fall in, and the
 * steps of the warm-up and of the whole search. */
typedef struct nas_goal {
    const search_spec *ss;
    double target;     /* MFLOPs */
    double target_tol; /* the derived network's band: target * (1 +- tol) */
    long warmup_steps; /* steps of the warm-up */
    long total_steps;  /* warm-up + search */
} nas_goal;

/* Sets up j for spec on env: ranks, the training split (the validation
 * tail left to the retrain) and the test split, checked against the model;
 * the eval view (eval_limit test images, 0 = all); the per-rank batch of
 * the global search batch `batch`; the calibration loader and the batch
 * buffers. Returns 0 or ERR_* (eb says why: data, a batch not divisible by
 * the ranks, a training set without one full batch). nas_deinit is safe
 * after a failure. */
int nas_init(nas_job *j, const job_spec *spec, const job_env *env, int batch, int calib_batches,
             int eval_limit, errbuf *eb);

/* Frees the datasets, loader and buffers (before the retrain, which loads
 * its own); nas_deinit after it is a no-op for them. */
void nas_release(nas_job *j);
void nas_deinit(nas_job *j);

/* The sink of rank 0 (NULL elsewhere). */
const job_sink *nas_sink(const nas_job *j);

/* A metric point at global step `step` (epoch = step / steps_per_epoch). */
void nas_emit(const nas_job *j, const char *name, double v, long step);

/* The metric "<phase>/<what>" at step. */
void nas_emit_phase(const nas_job *j, long step, const char *phase, const char *what, double v);

/* A log line on rank 0: sink_say(nas_sink(j), ...). */
#define nas_say(j, ...) sink_say(nas_sink(j), __VA_ARGS__)

/* Non-zero (on every rank) when the job should stop now. */
int nas_cancel_now(const nas_job *j);

/* Resets the BN running statistics of m and re-estimates them as the mean
 * over the first calib_batches training batches of a fixed shuffled epoch
 * (BN in training mode, forward only), averaged over the ranks. */
void nas_calibrate(nas_job *j, net *m);

/* Top-1 of m on ds after nas_calibrate. */
double nas_evaluate(nas_job *j, net *m, const dataset *ds);

/* Per-iteration cosine from peak (at t0) to floor_ (at t1). */
double nas_cosine(double peak, double floor_, long t, long t0, long t1);

/* One SGD step of recipe o at lr over m's parameters, no weight decay on
 * 1-D tensors (biases, BN); first: initialise the momentum. */
void nas_weight_step(net *m, const search_sgd *o, double lr, int first);

/* In-place distillation of the sandwich rule: gathers sub from super
 * (through map), runs it on j->x, takes KL to j->teacher (tau = 1), runs
 * backward and scatters its gradients into super's. Returns the KL loss. */
float nas_distill(nas_job *j, net *sub, net *super, const slice_map *map);

/* Checkpoint rotation: records the file at path (written at step) as the
 * newest, deletes the oldest beyond checkpoint.keep_last and tells the sink.
 * Rank 0 only (no-op elsewhere). */
void nas_keep_checkpoint(nas_job *j, const char *path, long step);

/* out_dir/name into buf. */
void nas_out_path(const nas_job *j, char *buf, size_t len, const char *name);

/* Writes j to out_dir/name atomically on rank 0 (0 elsewhere). */
int nas_write_json(const nas_job *j, const char *name, const json_t *v, errbuf *eb);

/* out_dir/name parsed, or a JSON object with a note when it is missing.
 * New reference. */
json_t *nas_load_json(const nas_job *j, const char *name);

/* Continuing a retrain: the found network from the checkpoint's model
 * metadata (model_json) into *found, and the search's report from
 * search.json into *report. Returns 0, or ERR_FORMAT naming the
 * checkpoint when the metadata is not a model config. */
int nas_resumed_network(const nas_job *j, const char *model_json, model_cfg *found, json_t **report,
                        errbuf *eb);

/* Which phase a resume_path continues: 1 the search (metadata kind ==
 * search_kind), 2 the retrain (a train checkpoint; its model config JSON in
 * *model_json, owned by the caller), or ERR_FORMAT/ERR_IO. */
int nas_resume_kind(const char *path, const char *search_kind, char **model_json, errbuf *eb);

/* Trains the found network with the spec's optim recipe through train_run
 * (type train), from scratch or from the weights file init, resuming from
 * resume (a retrain checkpoint) if given; its steps follow the search's
 * (offset), its metrics and log lines are renamed "retrain/...", and rank
 * 0 writes out_dir/model.safetensors. */
int nas_retrain(nas_job *j, const model_cfg *found, const char *init, const char *resume,
                long offset, train_result *tr, errbuf *eb);

/* ---- the job's frame (prune.c, adapt.c) ---------------------------------------- */

/* The field errors of a method object parsed again at set-up. Not movable
 * between begin and end. */
typedef struct nas_reparse {
    field_errors fe;
    jsonfield_obj root; /* pass to prunespec_parse / adaptspec_parse */
} nas_reparse;

void nas_reparse_begin(nas_reparse *r);

/* 0, or ERR_INVALID "<what>: <the problems>" when the parse found any. */
int nas_reparse_end(nas_reparse *r, const char *what, errbuf *eb);

/* Ranks of env (1 without a dist). */
int nas_world(const job_env *env);

/* The start of a job: which phase env->resume_path continues (0 none, or
 * nas_resume_kind's 1 search / 2 retrain, with *model_json), then the
 * sink's "started" with search_steps plus the retrain's steps. Returns the
 * phase or a negative ERR_* (the sink then hears nothing). */
int nas_start(nas_job *j, const char *search_kind, long search_steps, char **model_json,
              errbuf *eb);

/* Writes architecture.json (found, explicit) and search.json (report). */
int nas_write_found(const nas_job *j, const model_cfg *found, const json_t *report, errbuf *eb);

/* What the job's summary says beyond the retrain. */
typedef struct nas_outcome {
    const char *method; /* the summary's "method" */
    const char *from;   /* the retrain's start: "scratch" or "supernet" */
    double target;      /* MFLOPs */
    double target_tol;  /* the found network's band: target * (1 +- tol) */
    double full_mflops; /* the network searched from */
    double top1_before; /* its accuracy, < 0 unknown (null) */
    long search_steps;
    double t0;                /* nas_now() at the job's start */
    const char *const *extra; /* (n_extra) artifacts listed when they exist in out_dir */
    int n_extra;
} nas_outcome;

/* The head of a search report (also search.json): method, target_mflops,
 * target_band_mflops, before {mflops and params of the spec's model,
 * [key], top1 (o->top1_before; null when < 0)} and after {the same of
 * found, [key], top1_inherited (null when < 0)}. key (may be NULL) is a
 * field both carry, before_v and after_v its values (taken over). New
 * reference. */
json_t *nas_report_head(const nas_job *j, const nas_outcome *o, const model_cfg *found,
                        double top1_inherited, const char *key, json_t *before_v, json_t *after_v);

/* The retrain's outcome tr of the found network into report ("retrain"
 * and after.top1) and res->summary (method, target, MFLOPs and params of
 * found and the full network, test_top1, search + retrain steps, seconds,
 * top1_before); writes report.json and lists the artifacts
 * model.safetensors, architecture.json, report.json and those of o->extra
 * that exist. Returns 0 or ERR_IO. */
int nas_finish(const nas_job *j, const nas_outcome *o, const model_cfg *found,
               const train_result *tr, json_t *report, job_result *res, errbuf *eb);

/* What a prune or adapt job supplies to nas_run_job; ctx is its state. */
typedef struct nas_job_ops {
    const char *search_kind; /* its search checkpoints' kind, e.g. "prune-search" */
    /* Before the search: the starting weights (init_from), or the search
     * checkpoint to continue (phase 1: *start gets its step). phase as
     * nas_start. 0 or ERR_*. */
    int (*prepare)(void *ctx, int phase, long *start, errbuf *eb);
    /* The search from step start (or the method without one): the found
     * network, the report so far, architecture.json and search.json
     * written; init (len bytes) may receive a weights file the retrain
     * starts from. 0, ERR_CANCELLED or ERR_*. */
    int (*search)(void *ctx, long start, model_cfg *found, json_t **report, char *init, size_t len,
                  errbuf *eb);
    /* Frees the search's memory before the retrain. */
    void (*release)(void *ctx);
    /* The summary's facts (after the search). */
    void (*outcome)(void *ctx, nas_outcome *o);
    /* Optional: adds to res->summary after nas_finish (report as written). */
    void (*finished)(void *ctx, const json_t *report, job_result *res);
} nas_job_ops;

/* A prune or adapt job after its set-up: nas_start, prepare, the search
 * (or, resuming a retrain, the found network from the checkpoint and
 * search.json), release, the retrain (nas_retrain, its steps after
 * search_steps), nas_finish. res->cancelled tells a cancel in either
 * phase. Returns 0, ERR_CANCELLED or ERR_*. */
int nas_run_job(nas_job *j, const nas_job_ops *ops, void *ctx, long search_steps, job_result *res,
                errbuf *eb);

/* A JSON array of n ints. New reference. */
json_t *nas_int_array(const int *v, int n);

/* Monotonic seconds. */
double nas_now(void);

#endif
