/* jobspec.c - the job spec: parse, validate, fill defaults (see jobspec.h).
 *
 * One pass over the input collects every problem as a field path + reason.
 * Defaults that depend on other fields are resolved here and nowhere else:
 * the model's image_size / in_channels / num_classes come from the dataset,
 * the optimiser recipe from the model family (train_anchor.py), the augment
 * padding from the dataset. The canonical JSON is written from the parsed
 * struct, so it holds every default. The prune and adapt objects are
 * validated by prunespec.c and adaptspec.c (against the parsed model) and
 * kept in canonical form.
 * Owns only job_spec.prune/adapt.
 * Pure C + jansson; no global state, thread-safe.
 */
#include "common/jobspec.h"

#include "common/adaptspec.h"
#include "common/err.h"
#include "common/jsonfield.h"
#include "common/prunespec.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const TYPE_NAMES[] = {"train", "prune", "adapt"};
static const char *const DATASET_NAMES[] = {"fashion-mnist", "mnist",  "cifar10", "cifar100",
                                            "synthetic",     "folder", "manifest"};
#define N_DATASETS 7
static const char *const SPLIT_NAMES[] = {"folders", "fraction"};
static const char *const RECIPE_NAMES[] = {"none", "deit", "dmcp-imagenet"};
static const char *const INTERP_NAMES[] = {"bilinear", "bicubic"};
static const char *const BAD_FILE_NAMES[] = {"skip", "fail"};
static const char *const ERASE_NAMES[] = {"zero", "pixel"};
static const char *const OPTIM_NAMES[] = {"sgd", "adamw"};
static const char *const SCHED_NAMES[] = {"cosine", "constant"};

#define MAX_PRIORITY      100
#define MAX_RANKS         64
#define MAX_BATCH         65536
#define MAX_EPOCHS        10000
#define MAX_SYNTH_SAMPLES 1000000
#define MAX_STEPS         1000000000000LL

/* Which optimiser recipe a model gets by default (train_anchor.py). */
typedef enum { FAMILY_UNKNOWN = 0, FAMILY_VIT, FAMILY_CNN } model_family;

/* Image side, channels and classes a dataset delivers. */
typedef struct ds_dims {
    int size, channels, classes;
} ds_dims;

const char *jobspec_type_name(job_type t)
{
    return (unsigned)t < 3 ? TYPE_NAMES[t] : "unknown";
}

const char *jobspec_dataset_name(dataset_kind d)
{
    return (unsigned)d < N_DATASETS ? DATASET_NAMES[d] : "unknown";
}

void jobspec_free(job_spec *s)
{
    if (s == NULL)
        return;
    json_decref(s->prune);
    json_decref(s->adapt);
    s->prune = NULL;
    s->adapt = NULL;
}

/* An integer field of the (raw, not yet validated) model object, or def. */
static int raw_model_int(const json_t *model, const char *key, int def)
{
    const json_t *v = json_is_object(model) ? json_object_get(model, key) : NULL;
    if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= INT_MAX)
        return (int)json_integer_value(v);
    return def;
}

static model_family raw_model_family(const json_t *model)
{
    const json_t *a = json_is_object(model) ? json_object_get(model, "arch") : NULL;
    const char *s = json_string_value(a);
    if (s == NULL)
        return FAMILY_UNKNOWN;
    if (strcmp(s, "ceit") == 0 || strcmp(s, "deit") == 0)
        return FAMILY_VIT;
    if (strcmp(s, "resnet_cifar") == 0 || strcmp(s, "resnet") == 0 ||
        strcmp(s, "mobilenetv2") == 0 || strcmp(s, "mobilenetv3") == 0 ||
        strcmp(s, "efficientnet") == 0)
        return FAMILY_CNN;
    return FAMILY_UNKNOWN;
}

/* The recipe named in the (raw) optim object, or RECIPE_NONE. */
static recipe_kind raw_recipe(const json_t *in)
{
    const json_t *o = json_is_object(in) ? json_object_get(in, "optim") : NULL;
    const char *s = json_string_value(json_is_object(o) ? json_object_get(o, "recipe") : NULL);
    for (int i = 1; s != NULL && i < 3; i++)
        if (strcmp(s, RECIPE_NAMES[i]) == 0)
            return (recipe_kind)i;
    return RECIPE_NONE;
}

/* ---- data --------------------------------------------------------------- */

static int user_images(dataset_kind d)
{
    return d == DS_FOLDER || d == DS_MANIFEST;
}

/* data.image: the split, the files' decoding and the transforms. The
 * recipe sets the augmentation defaults (DeiT: RandAugment m9, erasing 0.25
 * per pixel, bicubic; DMCP: ColorJitter 0.2/0.2/0.2/0.1). */
static void parse_image(data_spec *d, jsonfield_obj *data, recipe_kind recipe)
{
    image_spec *im = &d->img;
    jsonfield_obj j, t;
    jsonfield_child(&j, data, "image");
    int split;
    jsonfield_enum(&j, "split", &split, SPLIT_FOLDERS, SPLIT_NAMES, 2);
    im->split = (split_kind)split;
    if (d->dataset == DS_FOLDER) {
        jsonfield_str(&j, "train_dir", im->train_dir, sizeof im->train_dir, "train");
        jsonfield_str(&j, "val_dir", im->val_dir, sizeof im->val_dir, "val");
        jsonfield_num(&j, "test_fraction", &im->test_fraction, 0.1, 0.0, 0.9, JSONFIELD_LO_OPEN);
        if (strstr(im->train_dir, "..") || strstr(im->val_dir, ".."))
            jsonfield_err(&j, "train_dir", "must name folders under data.root (no ..)");
    } else {
        if (jsonfield_str(&j, "train_manifest", im->manifest_train, sizeof im->manifest_train,
                          NULL) == JSONFIELD_ABSENT)
            jsonfield_err(&j, "train_manifest", "is required for the manifest dataset");
        if (jsonfield_str(&j, "test_manifest", im->manifest_test, sizeof im->manifest_test, NULL) ==
            JSONFIELD_ABSENT)
            jsonfield_err(&j, "test_manifest", "is required for the manifest dataset");
    }
    jsonfield_int(&j, "size", &im->image_size, 224, 8, 2048);
    jsonfield_int(&j, "channels", &im->channels, 3, 1, 3);
    if (im->channels == 2)
        jsonfield_err(&j, "channels", "must be 1 (luma) or 3 (RGB)");
    jsonfield_enum(&j, "on_bad_file", &im->on_bad_fail, 0, BAD_FILE_NAMES, 2);
    jsonfield_int(&j, "workers", &im->workers, 2, 1, 64);
    jsonfield_int(&j, "prefetch", &im->prefetch, 2, 1, 64);
    jsonfield_int(&j, "resize", &im->resize, (int)floor(im->image_size / 0.875), 1, 4096);
    if (im->resize < im->image_size)
        jsonfield_err(&j, "resize", "must be >= size (%d): the centre crop is cut from it",
                      im->image_size);
    double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
    jsonfield_num_array(&j, "mean", mean, 3, -10.0, 10.0, 0);
    jsonfield_num_array(&j, "std", std, 3, 0.0, 100.0, JSONFIELD_LO_OPEN);
    memcpy(im->mean, mean, sizeof mean);
    memcpy(im->std, std, sizeof std);

    jsonfield_child(&t, &j, "train_transform");
    im->scale[0] = 0.08, im->scale[1] = 1.0, im->ratio[0] = 3.0 / 4.0, im->ratio[1] = 4.0 / 3.0;
    jsonfield_num_array(&t, "scale", im->scale, 2, 0.0, 1.0, JSONFIELD_LO_OPEN);
    jsonfield_num_array(&t, "ratio", im->ratio, 2, 0.0, 100.0, JSONFIELD_LO_OPEN);
    if (im->scale[0] > im->scale[1])
        jsonfield_err(&t, "scale", "must be [lo, hi] with lo <= hi");
    if (im->ratio[0] > im->ratio[1])
        jsonfield_err(&t, "ratio", "must be [lo, hi] with lo <= hi");
    jsonfield_enum(&t, "interpolation", &im->bicubic, recipe == RECIPE_DEIT, INTERP_NAMES, 2);
    jsonfield_num(&t, "hflip", &im->hflip, 0.5, 0.0, 1.0, 0);
    double jit = recipe == RECIPE_DMCP_IMAGENET ? 0.2 : 0.0;
    double jitter[4] = {jit, jit, jit, jit / 2};
    jsonfield_num_array(&t, "color_jitter", jitter, 4, 0.0, 10.0, 0);
    if (jitter[3] > 0.5)
        jsonfield_err(&t, "color_jitter", "hue (the 4th value) must be <= 0.5");
    memcpy(im->jitter, jitter, sizeof jitter);
    int ra[2] = {recipe == RECIPE_DEIT ? 2 : 0, 9}, n_ra = 2;
    if (jsonfield_int_array(&t, "randaugment", ra, &n_ra, 2, 0, 30) == JSONFIELD_SET &&
        (n_ra != 2 || ra[0] > 8))
        jsonfield_err(&t, "randaugment", "must be [n, m] with n in 0..8 operations, m in 0..30");
    im->ra_n = ra[0];
    im->ra_m = ra[1];
    jsonfield_num(&t, "random_erasing", &im->erase_p, recipe == RECIPE_DEIT ? 0.25 : 0.0, 0.0, 1.0,
                  0);
    jsonfield_enum(&t, "erase_values", &im->erase_pixel, recipe == RECIPE_DEIT, ERASE_NAMES, 2);
    j.n_err += jsonfield_finish(&t);
    data->n_err += jsonfield_finish(&j);
}

static void parse_mix(data_spec *d, jsonfield_obj *data, recipe_kind recipe)
{
    mix_spec *m = &d->mix;
    jsonfield_obj j;
    jsonfield_child(&j, data, "mix");
    int deit = recipe == RECIPE_DEIT;
    jsonfield_num(&j, "mixup", &m->mixup, deit ? 0.8 : 0.0, 0.0, 100.0, 0);
    jsonfield_num(&j, "cutmix", &m->cutmix, deit ? 1.0 : 0.0, 0.0, 100.0, 0);
    jsonfield_num(&j, "prob", &m->prob, 1.0, 0.0, 1.0, 0);
    jsonfield_num(&j, "switch_prob", &m->switch_prob, 0.5, 0.0, 1.0, 0);
    data->n_err += jsonfield_finish(&j);
}

static void parse_synthetic(data_spec *d, jsonfield_obj *data, const json_t *model)
{
    jsonfield_obj s;
    jsonfield_child(&s, data, "synthetic");
    /* The generated images follow the model when the sizes are not given. */
    jsonfield_int(&s, "train", &d->synth_train, 1024, 1, MAX_SYNTH_SAMPLES);
    jsonfield_int(&s, "test", &d->synth_test, 256, 1, MAX_SYNTH_SAMPLES);
    jsonfield_int(&s, "classes", &d->synth_classes, raw_model_int(model, "num_classes", 10), 2,
                  100000);
    jsonfield_int(&s, "channels", &d->synth_channels, raw_model_int(model, "in_channels", 1), 1,
                  64);
    jsonfield_int(&s, "size", &d->synth_size, raw_model_int(model, "image_size", 28), 1, 4096);
    data->n_err += jsonfield_finish(&s);
}

static void parse_data(job_spec *out, jsonfield_obj *o, const json_t *model, ds_dims *dims,
                       recipe_kind recipe)
{
    data_spec *d = &out->data;
    jsonfield_obj j;
    jsonfield_child(&j, o, "data");
    int ds;
    jsonfield_enum(&j, "dataset", &ds, DS_FASHION_MNIST, DATASET_NAMES, N_DATASETS);
    d->dataset = (dataset_kind)ds;

    if (d->dataset == DS_SYNTHETIC) {
        if (jsonfield_get(&j, "root") != NULL)
            jsonfield_err(&j, "root", "is not used by the synthetic dataset");
    } else if (jsonfield_str(&j, "root", d->root, sizeof d->root,
                             d->dataset == DS_FASHION_MNIST ? JOBSPEC_DEFAULT_FMNIST_ROOT : NULL) ==
                   JSONFIELD_ABSENT &&
               d->dataset != DS_FASHION_MNIST) {
        jsonfield_err(&j, "root", "is required for %s (the folder of its files)",
                      DATASET_NAMES[ds]);
    }

    int pad = d->dataset == DS_SYNTHETIC || user_images(d->dataset)     ? 0
              : (d->dataset == DS_CIFAR10 || d->dataset == DS_CIFAR100) ? 4
                                                                        : 2;
    jsonfield_obj aug;
    jsonfield_child(&aug, &j, "augment");
    jsonfield_int(&aug, "crop_padding", &d->crop_padding, pad, 0, 64);
    jsonfield_bool(&aug, "hflip", &d->hflip, !user_images(d->dataset));
    if (user_images(d->dataset) && (d->crop_padding > 0 || d->hflip))
        jsonfield_err(
            &aug, "crop_padding",
            "is for the built-in datasets; folder and manifest use data.image.train_transform");
    j.n_err += jsonfield_finish(&aug);
    parse_mix(d, &j, recipe);

    jsonfield_num(&j, "val_fraction", &d->val_fraction, 0.0, 0.0, 0.5, JSONFIELD_HI_OPEN);
    jsonfield_int(&j, "train_limit", &d->train_limit, 0, 0, INT_MAX);
    jsonfield_int(&j, "test_limit", &d->test_limit, 0, 0, INT_MAX);
    jsonfield_int(&j, "repeated_aug", &d->repeated_aug, 1, 1, 8);

    if (user_images(d->dataset)) {
        if (jsonfield_get(&j, "synthetic") != NULL)
            jsonfield_err(&j, "synthetic", "is only for the synthetic dataset");
        if (d->val_fraction > 0)
            jsonfield_err(&j, "val_fraction",
                          "is for the built-in datasets; folder and manifest use data.image.split");
        parse_image(d, &j, recipe);
        int classes = raw_model_int(model, "num_classes", 0);
        if (classes == 0 && json_is_object(model) && json_object_get(model, "num_classes") == NULL)
            jsonfield_err(o, "model.num_classes",
                          "is required with the %s dataset (the number of classes in data.root)",
                          DATASET_NAMES[ds]);
        *dims = (ds_dims){d->img.image_size, d->img.channels, classes ? classes : 2};
    } else if (d->dataset == DS_SYNTHETIC) {
        if (jsonfield_get(&j, "image") != NULL)
            jsonfield_err(&j, "image", "is only for the folder and manifest datasets");
        parse_synthetic(d, &j, model);
        *dims = (ds_dims){d->synth_size, d->synth_channels, d->synth_classes};
    } else {
        if (jsonfield_get(&j, "image") != NULL)
            jsonfield_err(&j, "image", "is only for the folder and manifest datasets");
        if (jsonfield_get(&j, "synthetic") != NULL)
            jsonfield_err(&j, "synthetic", "is only for the synthetic dataset");
        static const ds_dims table[] = {{28, 1, 10}, {28, 1, 10}, {32, 3, 10}, {32, 3, 100}};
        *dims = table[d->dataset];
    }
    o->n_err += jsonfield_finish(&j);
}

/* ---- model -------------------------------------------------------------- */

/* Fills the model's image_size / in_channels / num_classes from the dataset
 * where absent and reports where they disagree; then parses the model. */
static void parse_model(job_spec *out, jsonfield_obj *o, const json_t *model, const ds_dims *dims)
{
    if (model == NULL) {
        jsonfield_err(o, "model", "is required");
        return;
    }
    if (!json_is_object(model)) {
        jsonfield_err(o, "model", "must be an object");
        return;
    }
    json_t *m = json_deep_copy(model);
    const char *keys[3] = {"image_size", "in_channels", "num_classes"};
    const int want[3] = {dims->size, dims->channels, dims->classes};
    const char *ds = DATASET_NAMES[out->data.dataset];
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_object_get(m, keys[i]);
        if (v == NULL) {
            json_object_set_new(m, keys[i], json_integer(want[i]));
        } else if (json_is_integer(v) && json_integer_value(v) != want[i]) {
            char field[64];
            snprintf(field, sizeof field, "model.%s", keys[i]);
            if (out->data.dataset == DS_SYNTHETIC)
                fe_add(o->fe, field, "must be %d, as data.synthetic gives", want[i]);
            else if (user_images(out->data.dataset))
                fe_add(o->fe, field, "must be %d, as data.image gives", want[i]);
            else
                fe_add(o->fe, field, "must be %d for %s", want[i], ds);
            o->n_err++;
        }
    }
    if (modelcfg_parse(&out->model, m, "model", o->fe) != 0)
        o->n_err++;
    json_decref(m);
}

/* ---- optim -------------------------------------------------------------- */

/* Defaults of the optimiser fields: the model family's recipe
 * (train_anchor.py), or a named preset. Every field can still be set. */
typedef struct optim_defaults {
    int optimizer;
    double lr, weight_decay, warmup, min_lr, label_smoothing, drop_path;
    int epochs;
} optim_defaults;

static optim_defaults recipe_defaults(recipe_kind r, int vit, int batch)
{
    optim_defaults d = {vit ? OPT_ADAMW : OPT_SGD,
                        vit ? 1e-3 : 0.1,
                        vit ? 0.05 : 5e-4,
                        vit ? 2.0 : 1.0,
                        vit ? 1e-5 : 0.0,
                        vit ? 0.1 : 0.0,
                        0.0,
                        10};
    if (r == RECIPE_DEIT) /* DeiT/CeiT: AdamW 5e-4 x batch/512, 300 epochs */
        d = (optim_defaults){OPT_ADAMW, 5e-4 * batch / 512.0, 0.05, 5.0, 1e-5,
                             0.1,       vit ? 0.1 : 0.0,      300};
    else if (r == RECIPE_DMCP_IMAGENET) /* ALGORITHMS.md 2.x: SGD 0.5 -> 0.08 at batch 2048 */
        d = (optim_defaults){
            OPT_SGD, 0.5 * batch / 2048.0, 1e-4, 0.0, 0.08 * batch / 2048.0, 0.1, 0.0, 100};
    return d;
}

/* optim.freeze: names of tensors (prefixes) the optimizer leaves as they are. */
static void parse_freeze(optim_spec *op, jsonfield_obj *j, job_type type)
{
    const json_t *v = jsonfield_get(j, "freeze");
    op->n_freeze = 0;
    if (v == NULL)
        return;
    if (type != JOB_TRAIN) {
        jsonfield_err(j, "freeze", "is only for type \"train\"");
        return;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > JOBSPEC_MAX_FREEZE) {
        jsonfield_err(j, "freeze", "must be an array of 1 to %d tensor name prefixes",
                      JOBSPEC_MAX_FREEZE);
        return;
    }
    size_t i;
    const json_t *x;
    json_array_foreach(v, i, x)
    {
        const char *p = json_string_value(x);
        if (p == NULL || p[0] == '\0' || strlen(p) >= sizeof op->freeze[0]) {
            char path[JSONFIELD_PATH_MAX], base[JSONFIELD_PATH_MAX];
            jsonfield_path(base, sizeof base, j, "freeze");
            jsonfield_index_path(path, sizeof path, base, (int)i);
            fe_add(j->fe, path, "must be a tensor name prefix of 1 to %zu characters",
                   sizeof op->freeze[0] - 1);
            j->n_err++;
            continue;
        }
        snprintf(op->freeze[op->n_freeze++], sizeof op->freeze[0], "%s", p);
    }
}

static void parse_optim(job_spec *out, jsonfield_obj *o, model_family fam)
{
    optim_spec *op = &out->optim;
    int vit = fam != FAMILY_CNN;
    jsonfield_obj j;
    jsonfield_child(&j, o, "optim");

    int recipe;
    jsonfield_enum(&j, "recipe", &recipe, RECIPE_NONE, RECIPE_NAMES, 3);
    op->recipe = (recipe_kind)recipe;
    jsonfield_int(&j, "batch_size", &op->batch_size, 128, 1, MAX_BATCH);
    optim_defaults def = recipe_defaults(op->recipe, vit, op->batch_size);
    jsonfield_num(&j, "ema", &op->ema, 0.0, 0.0, 1.0, JSONFIELD_HI_OPEN);

    int kind;
    jsonfield_enum(&j, "optimizer", &kind, def.optimizer, OPTIM_NAMES, 2);
    op->optimizer = (optim_kind)kind;
    jsonfield_num(&j, "lr", &op->lr, def.lr, 0.0, 10.0, JSONFIELD_LO_OPEN);
    jsonfield_num(&j, "weight_decay", &op->weight_decay, def.weight_decay, 0.0, 1.0, 0);

    const char *sgd_only[] = {"momentum", "nesterov"}, *adamw_only[] = {"betas", "eps"};
    if (op->optimizer == OPT_SGD) {
        jsonfield_num(&j, "momentum", &op->momentum, 0.9, 0.0, 1.0, JSONFIELD_HI_OPEN);
        if (jsonfield_bool(&j, "nesterov", &op->nesterov, 1) != JSONFIELD_BAD && op->nesterov &&
            op->momentum == 0.0)
            jsonfield_err(&j, "nesterov", "needs momentum > 0");
        for (int i = 0; i < 2; i++)
            if (jsonfield_get(&j, adamw_only[i]) != NULL)
                jsonfield_err(&j, adamw_only[i], "is only for optimizer \"adamw\"");
    } else {
        double betas[2] = {0.9, 0.999};
        jsonfield_num_array(&j, "betas", betas, 2, 0.0, 1.0, JSONFIELD_HI_OPEN);
        op->beta1 = betas[0];
        op->beta2 = betas[1];
        jsonfield_num(&j, "eps", &op->eps, 1e-8, 0.0, 1.0, JSONFIELD_LO_OPEN);
        for (int i = 0; i < 2; i++)
            if (jsonfield_get(&j, sgd_only[i]) != NULL)
                jsonfield_err(&j, sgd_only[i], "is only for optimizer \"sgd\"");
    }

    int epochs_ok =
        jsonfield_int(&j, "epochs", &op->epochs, def.epochs, 1, MAX_EPOCHS) != JSONFIELD_BAD;
    /* The recipe's warm-up, shortened so that a short run still has a decay. */
    double warm = fmin(def.warmup, (double)(op->epochs - 1));
    if (jsonfield_num(&j, "warmup_epochs", &op->warmup_epochs, warm, 0.0, HUGE_VAL, 0) ==
            JSONFIELD_SET &&
        epochs_ok && op->warmup_epochs >= op->epochs)
        jsonfield_err(&j, "warmup_epochs", "must be < epochs (%d)", op->epochs);
    int sched;
    jsonfield_enum(&j, "schedule", &sched, SCHED_COSINE, SCHED_NAMES, 2);
    op->schedule = (sched_kind)sched;
    double min_lr = fmin(def.min_lr, op->lr);
    if (jsonfield_num(&j, "min_lr", &op->min_lr, min_lr, 0.0, HUGE_VAL, 0) == JSONFIELD_SET &&
        op->min_lr > op->lr)
        jsonfield_err(&j, "min_lr", "must be <= lr (%g)", op->lr);
    jsonfield_num(&j, "label_smoothing", &op->label_smoothing, def.label_smoothing, 0.0, 1.0,
                  JSONFIELD_HI_OPEN);
    if (jsonfield_num(&j, "drop_path", &op->drop_path, def.drop_path, 0.0, 1.0,
                      JSONFIELD_HI_OPEN) == JSONFIELD_SET &&
        fam == FAMILY_CNN && op->drop_path > 0.0)
        jsonfield_err(&j, "drop_path", "is only for ViT models (ceit, deit)");
    jsonfield_num(&j, "grad_clip", &op->grad_clip, 0.0, 0.0, HUGE_VAL, 0);
    long long steps;
    jsonfield_long(&j, "max_steps", &steps, 0, 0, MAX_STEPS);
    op->max_steps = (long)steps;
    parse_freeze(op, &j, out->type);
    o->n_err += jsonfield_finish(&j);
}

/* ---- the rest ----------------------------------------------------------- */

static void parse_small_objects(job_spec *out, jsonfield_obj *o)
{
    jsonfield_obj r, c, t;
    jsonfield_child(&r, o, "resources");
    jsonfield_int(&r, "ranks", &out->ranks, 1, 1, MAX_RANKS);
    o->n_err += jsonfield_finish(&r);

    jsonfield_child(&c, o, "checkpoint");
    long long every;
    jsonfield_long(&c, "every_steps", &every, 0, 0, MAX_STEPS);
    out->ckpt_every_steps = (long)every;
    jsonfield_int(&c, "keep_last", &out->ckpt_keep_last, 3, 1, 1000);
    o->n_err += jsonfield_finish(&c);

    jsonfield_child(&t, o, "retry");
    jsonfield_int(&t, "max_restarts", &out->max_restarts, 3, 0, 100);
    o->n_err += jsonfield_finish(&t);
}

static json_t *num_array(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, jsonfield_number_json(v[i]));
    return a;
}

static json_t *image_json(const image_spec *im, dataset_kind ds)
{
    json_t *j = json_object();
    json_object_set_new(j, "split", json_string(SPLIT_NAMES[im->split]));
    if (ds == DS_FOLDER) {
        json_object_set_new(j, "train_dir", json_string(im->train_dir));
        json_object_set_new(j, "val_dir", json_string(im->val_dir));
        json_object_set_new(j, "test_fraction", jsonfield_number_json(im->test_fraction));
    } else {
        json_object_set_new(j, "train_manifest", json_string(im->manifest_train));
        json_object_set_new(j, "test_manifest", json_string(im->manifest_test));
    }
    json_object_set_new(j, "size", json_integer(im->image_size));
    json_object_set_new(j, "channels", json_integer(im->channels));
    json_object_set_new(j, "on_bad_file", json_string(BAD_FILE_NAMES[im->on_bad_fail]));
    json_object_set_new(j, "workers", json_integer(im->workers));
    json_object_set_new(j, "prefetch", json_integer(im->prefetch));
    json_object_set_new(j, "resize", json_integer(im->resize));
    json_object_set_new(j, "mean", num_array(im->mean, 3));
    json_object_set_new(j, "std", num_array(im->std, 3));
    json_t *t = json_object();
    json_object_set_new(t, "scale", num_array(im->scale, 2));
    json_object_set_new(t, "ratio", num_array(im->ratio, 2));
    json_object_set_new(t, "interpolation", json_string(INTERP_NAMES[im->bicubic]));
    json_object_set_new(t, "hflip", jsonfield_number_json(im->hflip));
    json_object_set_new(t, "color_jitter", num_array(im->jitter, 4));
    json_object_set_new(t, "randaugment", json_pack("[ii]", im->ra_n, im->ra_m));
    json_object_set_new(t, "random_erasing", jsonfield_number_json(im->erase_p));
    json_object_set_new(t, "erase_values", json_string(ERASE_NAMES[im->erase_pixel]));
    json_object_set_new(j, "train_transform", t);
    return j;
}

/* The canonical "data" of a spec. */
static json_t *data_json(const data_spec *d)
{
    json_t *data = json_object();
    json_object_set_new(data, "dataset", json_string(DATASET_NAMES[d->dataset]));
    if (d->dataset != DS_SYNTHETIC)
        json_object_set_new(data, "root", json_string(d->root));
    json_object_set_new(data, "augment",
                        json_pack("{sisb}", "crop_padding", d->crop_padding, "hflip", d->hflip));
    json_object_set_new(data, "val_fraction", jsonfield_number_json(d->val_fraction));
    json_object_set_new(data, "train_limit", json_integer(d->train_limit));
    json_object_set_new(data, "test_limit", json_integer(d->test_limit));
    if (d->repeated_aug > 1)
        json_object_set_new(data, "repeated_aug", json_integer(d->repeated_aug));
    if (d->dataset == DS_SYNTHETIC)
        json_object_set_new(data, "synthetic",
                            json_pack("{sisisisisi}", "train", d->synth_train, "test",
                                      d->synth_test, "classes", d->synth_classes, "channels",
                                      d->synth_channels, "size", d->synth_size));
    if (d->dataset == DS_FOLDER || d->dataset == DS_MANIFEST)
        json_object_set_new(data, "image", image_json(&d->img, d->dataset));
    const mix_spec *mx = &d->mix;
    if (mx->mixup > 0 || mx->cutmix > 0)
        json_object_set_new(data, "mix",
                            json_pack("{sosososo}", "mixup", jsonfield_number_json(mx->mixup),
                                      "cutmix", jsonfield_number_json(mx->cutmix), "prob",
                                      jsonfield_number_json(mx->prob), "switch_prob",
                                      jsonfield_number_json(mx->switch_prob)));
    return data;
}

/* The canonical "optim" of a spec. */
static json_t *optim_json(const optim_spec *op)
{
    json_t *o = json_object();
    json_object_set_new(o, "optimizer", json_string(OPTIM_NAMES[op->optimizer]));
    json_object_set_new(o, "lr", jsonfield_number_json(op->lr));
    json_object_set_new(o, "weight_decay", jsonfield_number_json(op->weight_decay));
    if (op->optimizer == OPT_SGD) {
        json_object_set_new(o, "momentum", jsonfield_number_json(op->momentum));
        json_object_set_new(o, "nesterov", json_boolean(op->nesterov));
    } else {
        json_object_set_new(
            o, "betas",
            json_pack("[oo]", jsonfield_number_json(op->beta1), jsonfield_number_json(op->beta2)));
        json_object_set_new(o, "eps", jsonfield_number_json(op->eps));
    }
    json_object_set_new(o, "batch_size", json_integer(op->batch_size));
    json_object_set_new(o, "epochs", json_integer(op->epochs));
    json_object_set_new(o, "warmup_epochs", jsonfield_number_json(op->warmup_epochs));
    json_object_set_new(o, "schedule", json_string(SCHED_NAMES[op->schedule]));
    json_object_set_new(o, "min_lr", jsonfield_number_json(op->min_lr));
    json_object_set_new(o, "label_smoothing", jsonfield_number_json(op->label_smoothing));
    json_object_set_new(o, "drop_path", jsonfield_number_json(op->drop_path));
    json_object_set_new(o, "grad_clip", jsonfield_number_json(op->grad_clip));
    json_object_set_new(o, "max_steps", json_integer(op->max_steps));
    if (op->recipe != RECIPE_NONE)
        json_object_set_new(o, "recipe", json_string(RECIPE_NAMES[op->recipe]));
    if (op->ema > 0)
        json_object_set_new(o, "ema", jsonfield_number_json(op->ema));
    if (op->n_freeze > 0) {
        json_t *fz = json_array();
        for (int i = 0; i < op->n_freeze; i++)
            json_array_append_new(fz, json_string(op->freeze[i]));
        json_object_set_new(o, "freeze", fz);
    }
    return o;
}

static json_t *canonical_json(const job_spec *s)
{
    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(s->name));
    json_object_set_new(j, "type", json_string(TYPE_NAMES[s->type]));
    json_object_set_new(j, "priority", json_integer(s->priority));
    if (s->idempotency_key[0])
        json_object_set_new(j, "idempotency_key", json_string(s->idempotency_key));
    json_object_set_new(j, "model", modelcfg_to_json(&s->model));
    json_object_set_new(j, "data", data_json(&s->data));
    json_object_set_new(j, "optim", optim_json(&s->optim));
    json_object_set_new(j, "resources", json_pack("{si}", "ranks", s->ranks));
    json_object_set_new(j, "checkpoint",
                        json_pack("{sIsi}", "every_steps", (json_int_t)s->ckpt_every_steps,
                                  "keep_last", s->ckpt_keep_last));
    json_object_set_new(j, "retry", json_pack("{si}", "max_restarts", s->max_restarts));
    if (s->prune != NULL)
        json_object_set_new(j, "prune", json_deep_copy(s->prune));
    if (s->adapt != NULL)
        json_object_set_new(j, "adapt", json_deep_copy(s->adapt));
    if (s->init.kind != INIT_NONE)
        json_object_set_new(j, "init_from", initref_to_json(&s->init));
    if (s->n_after > 0) {
        json_t *a = json_array();
        for (int i = 0; i < s->n_after; i++)
            json_array_append_new(a, json_string(s->after[i]));
        json_object_set_new(j, "after", a);
    }
    json_object_set_new(j, "seed", json_integer((json_int_t)s->seed));
    return j;
}

int jobspec_parse(job_spec *out, json_t **canonical, const json_t *in, field_errors *fe)
{
    return jobspec_parse_flags(out, canonical, in, fe, 0);
}

/* The "prune" or "adapt" object of a job of that type, checked against the model when
 * model_ok (the model parsed without errors); kept as its canonical JSON. */
static void parse_method(job_spec *out, jsonfield_obj *o, int model_ok)
{
    const model_cfg *model = model_ok ? &out->model : NULL;
    int before = o->n_err;
    if (out->type == JOB_PRUNE) {
        prune_spec ps;
        prunespec_parse(&ps, o, jsonfield_get(o, "prune"), model, out->ranks,
                        out->init_from[0] != '\0');
        if (o->n_err == before)
            out->prune = prunespec_to_json(&ps);
    } else if (out->type == JOB_ADAPT) {
        adapt_spec as;
        adaptspec_parse(&as, o, jsonfield_get(o, "adapt"), model, out->ranks);
        if (o->n_err == before)
            out->adapt = adaptspec_to_json(&as);
    }
}

int jobspec_parse_flags(job_spec *out, json_t **canonical, const json_t *in, field_errors *fe,
                        unsigned flags)
{
    memset(out, 0, sizeof *out);
    if (canonical != NULL)
        *canonical = NULL;
    if (fe != NULL)
        fe_init(fe);
    jsonfield_obj o;
    if (in == NULL || !json_is_object(in)) {
        fe_add(fe, "", "the job spec must be a JSON object");
        return ERR_INVALID;
    }
    jsonfield_open(&o, in, "", fe);

    int type;
    jsonfield_enum(&o, "type", &type, JOB_TRAIN, TYPE_NAMES, 3);
    out->type = (job_type)type;
    for (int i = 1; i < 3; i++)
        if (i != (int)out->type && jsonfield_get(&o, TYPE_NAMES[i]) != NULL)
            jsonfield_err(&o, TYPE_NAMES[i], "is only for type \"%s\"", TYPE_NAMES[i]);

    int name_rc = jsonfield_str(&o, "name", out->name, sizeof out->name, NULL);
    jsonfield_int(&o, "priority", &out->priority, 50, 0, MAX_PRIORITY);
    jsonfield_str(&o, "idempotency_key", out->idempotency_key, sizeof out->idempotency_key, NULL);
    initref_parse(&out->init, &o, "init_from");
    initref_describe(&out->init, out->init_from, sizeof out->init_from);
    initref_parse_after(&o, "after", out->after, &out->n_after);
    long long seed;
    jsonfield_long(&o, "seed", &seed, 0, 0, LLONG_MAX);
    out->seed = (uint64_t)seed;
    parse_small_objects(out, &o);

    const json_t *model = jsonfield_get(&o, "model");
    ds_dims dims;
    parse_data(out, &o, model, &dims, raw_recipe(in));
    int before_model = o.n_err;
    int later = model == NULL && (flags & JOBSPEC_MODEL_LATER) && out->init.kind != INIT_NONE;
    if (!later)
        parse_model(out, &o, model, &dims);
    int model_ok = !later && o.n_err == before_model;
    parse_optim(out, &o, raw_model_family(model));
    parse_method(out, &o, model_ok);
    if (out->optim.batch_size > 0 && out->ranks > 0 && out->optim.batch_size % out->ranks != 0)
        jsonfield_err(&o, "optim.batch_size", "must be divisible by resources.ranks (%d)",
                      out->ranks);

    if (jsonfield_finish(&o) != 0)
        return ERR_INVALID;

    if (later) { /* as given: the defaults follow once the model is known */
        out->model_later = 1;
        if (name_rc == JSONFIELD_ABSENT)
            snprintf(out->name, sizeof out->name, "%s-from-%.100s", TYPE_NAMES[out->type],
                     out->init.id);
        if (canonical != NULL)
            *canonical = json_deep_copy(in);
        return 0;
    }
    if (name_rc == JSONFIELD_ABSENT)
        snprintf(out->name, sizeof out->name, "%s-%s", modelcfg_arch_name(out->model.arch),
                 TYPE_NAMES[out->type]);
    out->params = (double)modelcfg_params(&out->model);
    out->mflops = modelcfg_macs(&out->model) / 1e6;
    if (canonical != NULL)
        *canonical = canonical_json(out);
    return 0;
}
