/* jobspec.h - the job spec: parse, validate, fill defaults (SERVICE.md).
 *
 * The same parser runs in kiln-server (at submit, to answer 400 with field
 * paths) and in kiln-worker (on the canonical JSON it is assigned, or on a
 * file for `kiln-worker run`), so both sides agree on every default.
 * Unknown fields, wrong types and out-of-range values are errors naming the
 * field path. Pure C + jansson; thread-safe.
 */
#ifndef KILN_JOBSPEC_H
#define KILN_JOBSPEC_H

#include "common/fielderr.h"
#include "common/modelcfg.h"

#include <jansson.h>
#include <stdint.h>

typedef enum { JOB_TRAIN = 0, JOB_PRUNE, JOB_ADAPT } job_type;

typedef enum {
    DS_FASHION_MNIST = 0,
    DS_MNIST,
    DS_CIFAR10,
    DS_CIFAR100,
    DS_SYNTHETIC,
} dataset_kind;

#define JOBSPEC_DEFAULT_FMNIST_ROOT "/usr/share/datasets/fashion-mnist"

typedef struct data_spec {
    dataset_kind dataset;
    char root[512];   /* folder of the dataset files; fashion-mnist defaults to the Debian path */
    int crop_padding; /* random crop after zero padding by this many pixels; 0 = off */
    int hflip;        /* random horizontal flip */
    double val_fraction; /* hold out the last fraction of the training set for validation */
    int train_limit;     /* use only the first N training samples (0 = all) */
    int test_limit;      /* use only the first N test samples (0 = all) */
    /* synthetic only: sizes of the generated dataset */
    int synth_train, synth_test, synth_classes, synth_channels, synth_size;
} data_spec;

typedef enum { OPT_SGD = 0, OPT_ADAMW } optim_kind;
typedef enum { SCHED_COSINE = 0, SCHED_CONSTANT } sched_kind;

typedef struct optim_spec {
    optim_kind optimizer;     /* default by model family: adamw (ViT), sgd (CNN) */
    double lr;                /* peak learning rate */
    double weight_decay;      /* not applied to biases, norms, pos_embed, cls_token (1-D tensors) */
    double momentum;          /* sgd: default 0.9 */
    int nesterov;             /* sgd: default 1 */
    double beta1, beta2, eps; /* adamw: 0.9, 0.999, 1e-8 */
    int batch_size;           /* GLOBAL batch; each of R ranks takes batch_size / R */
    int epochs;
    double warmup_epochs; /* linear warm-up, in epochs (fractions allowed) */
    sched_kind schedule;
    double min_lr; /* cosine floor */
    double label_smoothing;
    double drop_path; /* stochastic depth rate of the last block (ViT) */
    double grad_clip; /* max global L2 norm; 0 = off */
    long max_steps;   /* stop after this many steps in total (0 = no limit) */
} optim_spec;

typedef struct job_spec {
    char name[128];
    job_type type;
    int priority; /* 0..100, higher first */
    char idempotency_key[128];
    model_cfg model;
    data_spec data;
    optim_spec optim;
    json_t *prune;         /* type prune: the canonical prune object (prunespec.h), owned */
    json_t *adapt;         /* type adapt: the canonical adapt object (adaptspec.h), owned */
    int ranks;             /* resources.ranks */
    long ckpt_every_steps; /* checkpoint.every_steps; 0 = only at epoch ends */
    int ckpt_keep_last;
    int max_restarts;    /* retry.max_restarts */
    char init_from[256]; /* job id or artifact path to start from; "" = fresh */
    uint64_t seed;
    double params; /* derived: trainable parameters of the model */
    double mflops; /* derived: MACs of one forward pass / 1e6 */
} job_spec;

/* Parses and validates `in`. On success returns 0, fills *out and, if
 * canonical is not NULL, stores in it a new reference to the spec with every
 * default filled (what the server stores and shows, and what a worker is
 * assigned; parsing it again gives the same canonical JSON). On failure
 * returns ERR_INVALID with every problem in fe (this build runs every job
 * type, so ERR_UNSUPPORTED is not returned now); *canonical is then NULL. fe (may be NULL) is reset
 * first. Release *out with jobspec_free, also after a failure. */
int jobspec_parse(job_spec *out, json_t **canonical, const json_t *in, field_errors *fe);

/* Frees what jobspec_parse allocated inside s (not s itself). */
void jobspec_free(job_spec *s);

const char *jobspec_type_name(job_type t);
const char *jobspec_dataset_name(dataset_kind d);

#endif
