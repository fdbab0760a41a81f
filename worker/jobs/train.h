/* train.h - a train job: the training recipe, data-parallel over the ranks.
 *
 * ALGORITHMS.md 1.11 recipe: AdamW or SGD (momentum, Nesterov), linear
 * warm-up then cosine to a floor (per step), label smoothing, drop path,
 * gradient clipping, no weight decay on 1-D tensors (biases, norms),
 * pos_embed or cls_token; top-1 and loss on the test split after every
 * epoch (and on the validation split when val_fraction > 0). With
 * data.mix, Mixup/CutMix of each rank's batch and soft-target cross-entropy;
 * with optim.ema, a moving average of the weights and BN buffers, evaluated
 * each epoch and saved beside each checkpoint and the final weights as
 * *.ema.safetensors (and read back on resume). For folder and manifest data
 * every rank checks its copy of data.root against rank 0's at start.
 *
 * Data parallel: every rank runs the same program on its slice of each
 * global batch (worker/data/loader.h); gradients are summed with one
 * allreduce per step and divided by the rank count; BN statistics stay
 * per-rank during a step and the running statistics are averaged across
 * ranks before every evaluation and checkpoint; evaluation is sharded and
 * reduced. A cancel request seen by rank 0, or a stop asked of any rank
 * (dist_stop_request), reaches every rank at the next step. Must be called by
 * every rank with the same spec.
 */
#ifndef KILN_JOBS_TRAIN_H
#define KILN_JOBS_TRAIN_H

#include "common/err.h"
#include "common/jobspec.h"
#include "worker/data/dataset.h"
#include "worker/dist.h"
#include "worker/jobs/sink.h"
#include "worker/models/net.h"

typedef struct train_env {
    const dist_info *dist;    /* ranks; NULL = one rank */
    const char *work_dir;     /* checkpoints are written here by rank 0 (NULL = none) */
    const char *resume_path;  /* checkpoint to continue from, or NULL */
    const char *init_weights; /* weights to start from (init_from), or NULL */
    const char *weights_out;  /* rank 0 writes the final weights here, or NULL */
    const job_sink *sink;     /* rank 0 only; NULL elsewhere */
} train_env;

typedef struct train_result {
    double test_top1, test_loss; /* after the last epoch run */
    double val_top1;             /* -1 without a validation split */
    double last_train_loss;
    long steps;               /* optimizer steps taken in total */
    long run_steps;           /* of which in this call (a resumed run starts at its checkpoint) */
    double seconds;           /* wall time of this call */
    double images_per_s;      /* throughput of this call, set-up and evaluation included */
    double step_seconds;      /* wall time inside optimizer steps only */
    double allreduce_seconds; /* of which in the gradient allreduce */
    int cancelled;
    double ema_top1; /* test top-1 of the weights' EMA (optim.ema > 0), else 0 */
    long bad_files;  /* image files skipped (folder and manifest datasets) */
} train_result;

/* Runs spec (type train) to the end, or until cancelled (ERR_CANCELLED, with
 * a final checkpoint). Returns 0, or a negative ERR_* with eb naming the
 * problem (bad data file, bad checkpoint, ...). */
int train_run(const job_spec *spec, const train_env *env, train_result *res, errbuf *eb);

/* Evaluation helpers shared with `kiln-worker eval` and the prune/adapt jobs. */
typedef struct eval_result {
    double top1, loss;
    long n;
} eval_result;

/* Evaluates m (eval mode) on ds, sharded over the ranks of d (NULL = one)
 * and reduced, with batches of `batch`. */
void train_evaluate(net *m, const dataset *ds, int batch, const dist_info *d, eval_result *out);

#endif
