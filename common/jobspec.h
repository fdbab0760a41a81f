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
#include "common/initref.h"
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
    DS_FOLDER,   /* users' images: class-per-subfolder JPEG/PNG tree (ImageFolder) */
    DS_MANIFEST, /* users' images listed in CSV or JSON-lines manifests */
} dataset_kind;

typedef enum { SPLIT_FOLDERS = 0, SPLIT_FRACTION } split_kind;
typedef enum { RECIPE_NONE = 0, RECIPE_DEIT, RECIPE_DMCP_IMAGENET } recipe_kind;

/* The image pipeline of the folder and manifest datasets (worker/data/transform.h). */
typedef struct image_spec {
    split_kind split; /* folders: root/<train_dir>, root/<val_dir>; fraction: held out by path */
    char train_dir[128], val_dir[128];
    double test_fraction; /* split "fraction": share of files held out for testing */
    char manifest_train[256], manifest_test[256]; /* manifest: files under root */
    int image_size;                               /* output side (the model's image_size) */
    int channels;                                 /* 1 (luma) or 3 (RGB) */
    int on_bad_fail;           /* 1: a corrupt file stops the job; 0: skipped and counted */
    int workers;               /* decoding threads per rank */
    int prefetch;              /* batches decoded ahead */
    double scale[2], ratio[2]; /* RandomResizedCrop */
    int bicubic;               /* interpolation: 0 bilinear, 1 bicubic */
    double hflip;              /* probability */
    double jitter[4];          /* ColorJitter brightness, contrast, saturation, hue */
    int ra_n, ra_m;            /* RandAugment; ra_n = 0: off */
    double erase_p;            /* RandomErasing probability */
    int erase_pixel;           /* erased values: 0 zeros (torchvision), 1 per-pixel normal (timm) */
    int resize;                /* eval: short side before the centre crop */
    double mean[3], std[3];
} image_spec;

/* Mixup / CutMix of a batch (timm's "batch" mode) with soft targets. */
typedef struct mix_spec {
    double mixup, cutmix; /* Beta(alpha, alpha) parameters; 0 = off */
    double prob;          /* probability of mixing a batch */
    double switch_prob;   /* probability of CutMix when both are on */
} mix_spec;

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
    int repeated_aug; /* repeated augmentation: copies of each sample per epoch (1 = off) */
    image_spec img;   /* folder and manifest only */
    mix_spec mix;
} data_spec;

typedef enum { OPT_SGD = 0, OPT_ADAMW } optim_kind;

#define JOBSPEC_MAX_FREEZE 16
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
    double drop_path;                     /* stochastic depth rate of the last block (ViT) */
    double grad_clip;                     /* max global L2 norm; 0 = off */
    long max_steps;                       /* stop after this many steps in total (0 = no limit) */
    recipe_kind recipe;                   /* the preset that gave the defaults */
    double ema;                           /* decay of the weights' moving average; 0 = off */
    char freeze[JOBSPEC_MAX_FREEZE][128]; /* train: tensor name prefixes kept fixed */
    int n_freeze;
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
    char init_from[256]; /* init.path, or a description of init (initref_describe); "" = fresh */
    init_ref init;       /* init_from as given (common/initref.h) */
    char after[INITREF_MAX_AFTER][INITREF_ID_MAX]; /* jobs to wait for (server side) */
    int n_after;
    uint64_t seed;
    int model_later; /* JOBSPEC_MODEL_LATER took effect: no model yet (server only) */
    double params;   /* derived: trainable parameters of the model */
    double mflops;   /* derived: MACs of one forward pass / 1e6 */
} job_spec;

/* Parses and validates `in`. On success returns 0, fills *out and, if
 * canonical is not NULL, stores in it a new reference to the spec with every
 * default filled (what the server stores and shows, and what a worker is
 * assigned; parsing it again gives the same canonical JSON). On failure
 * returns ERR_INVALID with every problem in fe (this build runs every job
 * type, so ERR_UNSUPPORTED is not returned now); *canonical is then NULL. fe (may be NULL) is reset
 * first. Release *out with jobspec_free, also after a failure. */
int jobspec_parse(job_spec *out, json_t **canonical, const json_t *in, field_errors *fe);

/* jobspec_parse with flags. JOBSPEC_MODEL_LATER (the server, for a job whose
 * init_from source has not finished): a spec without "model" but with
 * init_from is accepted with every other field checked; out->model_later
 * is set, the name defaults to "<type>-from-<source id>", params and
 * mflops are 0, and *canonical is a copy of `in` (the defaults that depend
 * on the model are filled when the source's model is added and the spec
 * parsed again). */
#define JOBSPEC_MODEL_LATER 1u
int jobspec_parse_flags(job_spec *out, json_t **canonical, const json_t *in, field_errors *fe,
                        unsigned flags);

/* Frees what jobspec_parse allocated inside s (not s itself). */
void jobspec_free(job_spec *s);

const char *jobspec_type_name(job_type t);
const char *jobspec_dataset_name(dataset_kind d);

#endif
