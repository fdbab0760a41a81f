/* check_jobspec.c - the job spec: defaults, every validation rule, the
 * canonical round trip and the golden examples in api/examples/.
 *
 * The examples are read from $KILN_SRC/api/examples (default: the current
 * directory, which is the tree root under `make test-unit`).
 */
#include "common/err.h"
#include "common/jobspec.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_jobspec(void);

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    ck_assert_msg(j != NULL, "bad test JSON: %s: %s", je.text, text);
    return j;
}

static int has_err(const field_errors *fe, const char *field, const char *reason)
{
    for (int i = 0; i < fe->n; i++)
        if (strcmp(fe->e[i].field, field) == 0 &&
            (reason == NULL || strstr(fe->e[i].reason, reason) != NULL))
            return 1;
    return 0;
}

/* Parses text, expecting success; returns the canonical JSON. */
static json_t *parse_ok(job_spec *s, const char *text)
{
    json_t *in = load(text), *canon = NULL;
    field_errors fe;
    int rc = jobspec_parse(s, &canon, in, &fe);
    char buf[2048];
    fe_format(&fe, buf, sizeof buf);
    ck_assert_msg(rc == 0, "spec rejected (%d): %s\n%s", rc, buf, text);
    ck_assert_ptr_nonnull(canon);
    json_decref(in);
    return canon;
}

/* Expects exactly one problem, at field, with reason containing `reason`. */
static void expect_one(const char *text, const char *field, const char *reason)
{
    json_t *in = load(text), *canon = NULL;
    job_spec s;
    field_errors fe;
    int rc = jobspec_parse(&s, &canon, in, &fe);
    char buf[2048];
    fe_format(&fe, buf, sizeof buf);
    ck_assert_msg(rc == ERR_INVALID, "accepted (%d): %s", rc, text);
    ck_assert_ptr_null(canon);
    ck_assert_msg(fe.n == 1 && has_err(&fe, field, reason), "want only %s (%s), got: %s\n%s", field,
                  reason, buf, text);
    jobspec_free(&s);
    json_decref(in);
}

/* canonical -> text (as stored) -> parse -> canonical gives the identical text. */
static void check_round_trip(const json_t *canon)
{
    char *a = json_dumps(canon, JSON_COMPACT);
    json_t *stored = load(a), *again = NULL;
    job_spec s;
    field_errors fe;
    int rc = jobspec_parse(&s, &again, stored, &fe);
    char buf[2048];
    fe_format(&fe, buf, sizeof buf);
    ck_assert_msg(rc == 0, "canonical spec rejected: %s\n%s", buf, a);
    char *b = json_dumps(again, JSON_COMPACT);
    ck_assert_str_eq(a, b);
    ck_assert(json_equal(canon, again));
    free(a);
    free(b);
    json_decref(stored);
    json_decref(again);
    jobspec_free(&s);
}

/* ---- defaults ----------------------------------------------------------- */

/* Whether got holds everything want says, at path (for the message): an object holds
 * each member of want's (recursively; a null member of want: absent); arrays hold their
 * elements in order; two integers are equal exactly, other numbers within 1e-12 of each
 * other (relative), so 0.5 and 5e-1, or 1 and 1.0, are one value; the rest json_equal. */
static int holds(const json_t *got, json_t *want, char *path, size_t len)
{
    size_t at = strlen(path);
    if (json_is_object(want)) {
        if (!json_is_object(got))
            return 0;
        const char *k;
        json_t *w;
        json_object_foreach(want, k, w)
        {
            snprintf(path + at, len - at, ".%s", k);
            json_t *g = json_object_get(got, k);
            if (json_is_null(w) ? (g != NULL && !json_is_null(g)) : !holds(g, w, path, len))
                return 0;
        }
    } else if (json_is_array(want)) {
        if (!json_is_array(got) || json_array_size(got) != json_array_size(want))
            return 0;
        for (size_t i = 0; i < json_array_size(want); i++) {
            snprintf(path + at, len - at, "[%zu]", i);
            if (!holds(json_array_get(got, i), json_array_get(want, i), path, len))
                return 0;
        }
    } else if (json_is_integer(want) && json_is_integer(got)) {
        return json_integer_value(want) == json_integer_value(got);
    } else if (json_is_number(want)) {
        double w = json_number_value(want), g = json_number_value(got);
        return json_is_number(got) && fabs(g - w) <= 1e-12 * fmax(fabs(w), 1e-300);
    } else {
        return json_equal(got, want);
    }
    path[at] = '\0';
    return 1;
}

#define FOLDER_DATA       "{\"dataset\":\"folder\",\"root\":\"/d\"}"
#define DEIT_C            "{\"arch\":\"deit\",\"embed_dim\":96,\"depth\":6,\"num_heads\":3,\"patch_size\":4}"
#define RESNET            "{\"arch\":\"resnet_cifar\"}"
#define ADAPT_SPEC(adapt) "{\"type\":\"adapt\",\"model\":" RESNET ",\"adapt\":" adapt "}"
/* ResNet-20 on Fashion-MNIST: 31.021962 MFLOPs; its smallest DMCP net
 * (width.min 0.1: 7/16, 5/32, 10/64 channels) has 2.658066 MFLOPs. */
#define PRUNE_SPEC(prune) "{\"type\":\"prune\",\"model\":" RESNET ",\"prune\":" prune "}"

/* Valid specs and what their canonical form holds (see holds: a null is a member that
 * must be absent): the defaults, the defaults that depend on other fields, the recipes
 * and the method objects. */
static const struct {
    const char *what, *spec, *want;
} VALID[] = {
    {"a CNN's optimiser defaults and name", "{\"model\":" RESNET "}",
     "{\"name\":\"resnet_cifar-train\",\"model\":{\"depth\":20},"
     "\"optim\":{\"optimizer\":\"sgd\",\"lr\":0.1,\"weight_decay\":0.0005,\"momentum\":0.9,"
     "\"nesterov\":true,\"batch_size\":128,\"epochs\":10,\"warmup_epochs\":1,"
     "\"schedule\":\"cosine\",\"min_lr\":0,\"label_smoothing\":0,\"drop_path\":0,"
     "\"grad_clip\":0,\"max_steps\":0,\"betas\":null,\"eps\":null}}"},
    {"MobileNetV2 on CIFAR-100: padding 4, 3 channels, 100 classes, SGD",
     "{\"model\":{\"arch\":\"mobilenetv2\",\"width_mult\":0.5},"
     "\"data\":{\"dataset\":\"cifar100\",\"root\":\"/d/c100\"}}",
     "{\"data\":{\"augment\":{\"crop_padding\":4},\"root\":\"/d/c100\"},"
     "\"model\":{\"in_channels\":3,\"image_size\":32,\"num_classes\":100},"
     "\"optim\":{\"optimizer\":\"sgd\"}}"},
    {"mnist: 28x28x1, padding 2",
     "{\"model\":" RESNET ",\"data\":{\"dataset\":\"mnist\",\"root\":\"/m\"}}",
     "{\"data\":{\"augment\":{\"crop_padding\":2}},\"model\":{\"image_size\":28,\"in_channels\":1}"
     "}"},
    {"a warm-up shortened for a 1-epoch run", "{\"model\":" DEIT_C ",\"optim\":{\"epochs\":1}}",
     "{\"optim\":{\"warmup_epochs\":0}}"},
    {"a warm-up shortened for a 2-epoch run", "{\"model\":" DEIT_C ",\"optim\":{\"epochs\":2}}",
     "{\"optim\":{\"warmup_epochs\":1}}"},
    {"the cosine floor never above a small peak", "{\"model\":" DEIT_C ",\"optim\":{\"lr\":1e-6}}",
     "{\"optim\":{\"min_lr\":1e-6}}"},
    {"a ViT with SGD: the family's lr, SGD's momentum and nesterov, no betas",
     "{\"model\":" DEIT_C ",\"optim\":{\"optimizer\":\"sgd\"}}",
     "{\"optim\":{\"lr\":0.001,\"momentum\":0.9,\"nesterov\":true,\"betas\":null}}"},
    {"optional strings appear only when given",
     "{\"model\":" RESNET ",\"idempotency_key\":\"k-1\",\"init_from\":\"job-42\","
     "\"seed\":9007199254740993,\"name\":\"x y\"}",
     "{\"idempotency_key\":\"k-1\",\"init_from\":\"job-42\",\"seed\":9007199254740993,"
     "\"name\":\"x y\",\"after\":null}"},
    {"the deit recipe on a folder (lr scaled 5e-4 x 1024 / 512)",
     "{\"model\":{\"arch\":\"resnet_cifar\",\"num_classes\":7},\"data\":" FOLDER_DATA
     ",\"optim\":{\"recipe\":\"deit\",\"batch_size\":1024,\"ema\":0.9999}}",
     "{\"model\":{\"image_size\":224,\"in_channels\":3},"
     "\"data\":{\"image\":{\"resize\":256,\"train_transform\":{\"randaugment\":[2,9],"
     "\"random_erasing\":0.25,\"interpolation\":\"bicubic\"}},\"mix\":{\"mixup\":0.8,"
     "\"cutmix\":1}},\"optim\":{\"optimizer\":\"adamw\",\"lr\":0.001,\"weight_decay\":0.05,"
     "\"label_smoothing\":0.1,\"warmup_epochs\":5,\"epochs\":300,\"ema\":0.9999}}"},
    {"overrides win over the deit recipe",
     "{\"model\":{\"arch\":\"deit\",\"embed_dim\":96,\"depth\":2,\"num_heads\":3,"
     "\"patch_size\":8,\"num_classes\":5},\"data\":{\"dataset\":\"folder\",\"root\":\"/d\","
     "\"image\":{\"size\":64,\"channels\":1,\"train_transform\":{\"randaugment\":[0,9]}},"
     "\"mix\":{\"cutmix\":0},\"repeated_aug\":3},\"optim\":{\"recipe\":\"deit\",\"lr\":0.002,"
     "\"epochs\":3}}",
     "{\"optim\":{\"lr\":0.002,\"warmup_epochs\":2,\"drop_path\":0.1},"
     "\"data\":{\"image\":{\"train_transform\":{\"randaugment\":[0,9]}},"
     "\"mix\":{\"cutmix\":0,\"mixup\":0.8},\"repeated_aug\":3},"
     "\"model\":{\"in_channels\":1,\"image_size\":64}}"},
    {"the dmcp-imagenet recipe (lr scaled)",
     "{\"model\":{\"arch\":\"resnet_cifar\",\"num_classes\":3},\"data\":" FOLDER_DATA
     ",\"optim\":{\"recipe\":\"dmcp-imagenet\",\"batch_size\":256}}",
     "{\"optim\":{\"optimizer\":\"sgd\",\"nesterov\":true,\"weight_decay\":1e-4,\"lr\":0.0625,"
     "\"min_lr\":0.01},\"data\":{\"image\":{\"train_transform\":"
     "{\"color_jitter\":[0.2,0.2,0.2,0.1]}}}}"},
    {"synthetic data follow the model",
     "{\"model\":{\"arch\":\"resnet_cifar\",\"image_size\":16,\"in_channels\":3,"
     "\"num_classes\":4},\"data\":{\"dataset\":\"synthetic\"}}",
     "{\"data\":{\"synthetic\":{\"size\":16,\"channels\":3,\"classes\":4,\"train\":1024,"
     "\"test\":256},\"augment\":{\"crop_padding\":0},\"root\":null}}"},
    {"the model follows the synthetic data",
     "{\"model\":" RESNET ",\"data\":{\"dataset\":\"synthetic\",\"synthetic\":{\"train\":64,"
     "\"test\":32,\"classes\":3,\"channels\":2,\"size\":12}}}",
     "{\"model\":{\"image_size\":12,\"in_channels\":2,\"num_classes\":3}}"},
    {"dna with every default, a target above the existing network",
     ADAPT_SPEC("{\"target_ratio\":1.3}"),
     "{\"name\":\"resnet_cifar-adapt\",\"adapt\":{\"method\":\"dna\",\"target_ratio\":1.3,"
     "\"window\":{\"min\":0.25,\"max\":1.5,\"group\":0.1},"
     "\"elastic\":{\"enabled\":true,\"patience\":2,\"expand_p\":0.9,\"condense_p\":0.1,"
     "\"drop_p\":0.01,\"freeze\":0.25,\"settle_steps\":200,\"max_depth\":2},"
     "\"arch\":{\"lr\":0.5,\"init\":\"zero\"},\"warmup_epochs\":20,\"compound\":null}}"},
    {"compound: only the fields it reads",
     ADAPT_SPEC("{\"method\":\"compound\",\"target_mflops\":15}"),
     "{\"adapt\":{\"compound\":{\"alpha\":1.2,\"beta\":1.1},\"window\":null}}"},
    {"uniform_depth: no elastic rules",
     ADAPT_SPEC("{\"method\":\"uniform_depth\",\"target_ratio\":0.5}"),
     "{\"adapt\":{\"elastic\":null}}"},
    {"dmcp with every default; the retrain is the job's optim",
     PRUNE_SPEC("{\"target_ratio\":0.5}"),
     "{\"name\":\"resnet_cifar-prune\",\"optim\":{\"optimizer\":\"sgd\"},"
     "\"prune\":{\"method\":\"dmcp\",\"target_ratio\":0.5,\"target_mflops\":null,"
     "\"warmup_epochs\":20,\"search_epochs\":20,"
     "\"search\":{\"lr\":0.1,\"min_lr\":0.016,\"batch_size\":128},"
     "\"arch\":{\"lr\":0.5,\"flops_loss_weight\":0.1,\"band\":0.95,\"weight_decay\":0},"
     "\"derive\":\"es\",\"sampling\":\"group\"}}"},
    {"uniform pruning: only the fields it reads",
     PRUNE_SPEC("{\"method\":\"uniform\",\"target_mflops\":10}"),
     "{\"prune\":{\"target_mflops\":10,\"search\":null,\"warmup_epochs\":null}}"},
};

START_TEST(valid_specs)
{
    for (size_t i = 0; i < sizeof VALID / sizeof VALID[0]; i++) {
        job_spec s;
        json_t *canon = parse_ok(&s, VALID[i].spec), *want = load(VALID[i].want);
        char path[256] = "", *got = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
        ck_assert_msg(holds(canon, want, path, sizeof path), "%s: differs at %s: %s", VALID[i].what,
                      path, got);
        free(got);
        check_round_trip(canon);
        json_decref(want);
        json_decref(canon);
        jobspec_free(&s);
    }
}
END_TEST

/* Every default of a ViT job on the default dataset, as stored; and what only the
 * parsed struct has: the model's size and cost, init_from's kind, a 64-bit seed. */
START_TEST(vit_defaults_and_parsed_fields)
{
    job_spec s;
    json_t *canon = parse_ok(&s, "{\"model\":" DEIT_C "}");
    json_t *want = load(
        "{\"name\":\"deit-train\",\"type\":\"train\",\"priority\":50,"
        "\"model\":{\"arch\":\"deit\",\"image_size\":28,\"in_channels\":1,\"num_classes\":10,"
        "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,\"mlp_ratio\":4,\"patch_size\":4,"
        "\"stem\":{\"type\":\"patchify\"},\"ffn\":{\"type\":\"mlp\"},\"head\":\"cls\"},"
        "\"data\":{\"dataset\":\"fashion-mnist\",\"root\":\"/usr/share/datasets/fashion-mnist\","
        "\"augment\":{\"crop_padding\":2,\"hflip\":true},\"val_fraction\":0,\"train_limit\":0,"
        "\"test_limit\":0},"
        "\"optim\":{\"optimizer\":\"adamw\",\"lr\":0.001,\"weight_decay\":0.05,"
        "\"betas\":[0.9,0.999],\"eps\":1e-8,\"batch_size\":128,\"epochs\":10,"
        "\"warmup_epochs\":2,\"schedule\":\"cosine\",\"min_lr\":1e-5,\"label_smoothing\":0.1,"
        "\"drop_path\":0,\"grad_clip\":0,\"max_steps\":0},"
        "\"resources\":{\"ranks\":1},\"checkpoint\":{\"every_steps\":0,\"keep_last\":3},"
        "\"retry\":{\"max_restarts\":3},\"seed\":0}");
    char *got = json_dumps(canon, JSON_COMPACT);
    ck_assert_msg(json_equal(canon, want), "canonical: %s", got);
    free(got);
    ck_assert_int_eq(s.type, JOB_TRAIN);
    ck_assert_int_eq(s.optim.optimizer, OPT_ADAMW);
    ck_assert(s.optim.beta1 == 0.9 && s.optim.beta2 == 0.999 && s.optim.eps == 1e-8);
    ck_assert_int_eq(s.ranks, 1);
    /* config C DeiT: count_macs.py gives 678,730 params and 36,397,738 MACs */
    ck_assert(s.params == 678730.0);
    ck_assert(s.mflops == 36397738.0 / 1e6);
    ck_assert_ptr_null(s.prune);
    json_decref(canon);
    json_decref(want);
    jobspec_free(&s);

    /* ResNet-20 with a 1-channel stem on 28x28 (count_macs.py) */
    canon = parse_ok(&s, "{\"model\":" RESNET "}");
    ck_assert(s.params == 272186.0);
    ck_assert(s.mflops == 31021962.0 / 1e6);
    ck_assert_int_eq(s.optim.nesterov, 1);
    json_decref(canon);
    jobspec_free(&s);

    canon = parse_ok(&s, "{\"model\":" RESNET ",\"init_from\":\"job-42\","
                         "\"seed\":9007199254740993}");
    ck_assert_int_eq(s.init.kind, INIT_JOB);
    ck_assert_str_eq(s.init.id, "job-42");
    ck_assert_str_eq(s.init.artifact, "model.safetensors");
    ck_assert(s.seed == 9007199254740993ULL);
    json_decref(canon);
    jobspec_free(&s);

    canon = parse_ok(
        &s, "{\"model\":{\"arch\":\"resnet_cifar\",\"num_classes\":7},\"data\":" FOLDER_DATA
            ",\"optim\":{\"recipe\":\"deit\",\"batch_size\":1024}}");
    ck_assert(s.data.img.ra_n == 2 && s.data.img.ra_m == 9 && s.data.img.erase_p == 0.25);
    ck_assert_int_eq(s.data.img.bicubic, 1);
    ck_assert(s.data.mix.mixup == 0.8 && s.data.mix.cutmix == 1.0);
    json_decref(canon);
    jobspec_free(&s);
}
END_TEST

/* ---- validation --------------------------------------------------------- */

/* Each spec has exactly one problem: the field it names, with a reason that says
 * (contains the text given; NULL: any reason). */
START_TEST(invalid_specs)
{
    static const struct {
        const char *spec, *field, *reason;
    } cases[] = {
        {"{\"model\":" RESNET ",\"name\":\"\"}", "name", "1 to 127"},
        {"{\"model\":" RESNET ",\"name\":\"a\\nb\"}", "name", "control"},
        {"{\"model\":" RESNET ",\"name\":7}", "name", "must be a string"},
        {"{\"model\":" RESNET ",\"type\":\"serve\"}", "type", "one of"},
        {"{\"model\":" RESNET ",\"priority\":-1}", "priority", ">= 0"},
        {"{\"model\":" RESNET ",\"priority\":101}", "priority", "<= 100"},
        {"{\"model\":" RESNET ",\"priority\":\"high\"}", "priority", "integer"},
        {"{\"model\":" RESNET ",\"idempotency_key\":5}", "idempotency_key", "string"},
        {"{\"model\":" RESNET ",\"seed\":-1}", "seed", ">= 0"},
        {"{\"model\":" RESNET ",\"seed\":1.5}", "seed", "integer"},
        {"{\"model\":" RESNET ",\"resources\":{\"ranks\":0}}", "resources.ranks", ">= 1"},
        {"{\"model\":" RESNET ",\"resources\":{\"ranks\":65}}", "resources.ranks", "<= 64"},
        {"{\"model\":" RESNET ",\"resources\":{\"gpus\":1}}", "resources.gpus", "unknown"},
        {"{\"model\":" RESNET ",\"resources\":2}", "resources", "must be an object"},
        {"{\"model\":" RESNET ",\"checkpoint\":{\"every_steps\":-1}}", "checkpoint.every_steps",
         ">= 0"},
        {"{\"model\":" RESNET ",\"checkpoint\":{\"keep_last\":0}}", "checkpoint.keep_last", ">= 1"},
        {"{\"model\":" RESNET ",\"retry\":{\"max_restarts\":101}}", "retry.max_restarts", "<= 100"},
        {"{\"model\":" RESNET ",\"data\":{\"dataset\":\"imagenet\"}}", "data.dataset", "one of"},
        {"{\"model\":" RESNET ",\"data\":{\"val_fraction\":0.5}}", "data.val_fraction", "< 0.5"},
        {"{\"model\":" RESNET ",\"data\":{\"val_fraction\":-0.1}}", "data.val_fraction", ">= 0"},
        {"{\"model\":" RESNET ",\"data\":{\"train_limit\":-1}}", "data.train_limit", ">= 0"},
        {"{\"model\":" RESNET ",\"data\":{\"test_limit\":\"all\"}}", "data.test_limit", "integer"},
        {"{\"model\":" RESNET ",\"data\":{\"augment\":{\"crop_padding\":65}}}",
         "data.augment.crop_padding", "<= 64"},
        {"{\"model\":" RESNET ",\"data\":{\"augment\":{\"hflip\":\"yes\"}}}", "data.augment.hflip",
         "true or false"},
        {"{\"model\":" RESNET ",\"data\":{\"augment\":{\"mixup\":0.2}}}", "data.augment.mixup",
         "unknown"},
        {"{\"model\":" RESNET ",\"data\":{\"dataset\":\"mnist\"}}", "data.root", "required"},
        {"{\"model\":" RESNET ",\"data\":{\"root\":\"\"}}", "data.root", "1 to 511"},
        {"{\"model\":" RESNET ",\"optim\":{\"lr\":0}}", "optim.lr", "must be > 0"},
        {"{\"model\":" RESNET ",\"optim\":{\"lr\":11}}", "optim.lr", "<= 10"},
        {"{\"model\":" RESNET ",\"optim\":{\"weight_decay\":-1}}", "optim.weight_decay", ">= 0"},
        {"{\"model\":" RESNET ",\"optim\":{\"momentum\":1}}", "optim.momentum", "< 1"},
        {"{\"model\":" RESNET ",\"optim\":{\"momentum\":0}}", "optim.nesterov", "momentum > 0"},
        {"{\"model\":" RESNET ",\"optim\":{\"optimizer\":\"adam\"}}", "optim.optimizer",
         "\"sgd\", \"adamw\""},
        {"{\"model\":" DEIT_C ",\"optim\":{\"betas\":[0.9]}}", "optim.betas", "2 numbers"},
        {"{\"model\":" DEIT_C ",\"optim\":{\"betas\":[0.9,1.0]}}", "optim.betas[1]", "< 1"},
        {"{\"model\":" DEIT_C ",\"optim\":{\"betas\":[\"a\",0.9]}}", "optim.betas[0]", "number"},
        {"{\"model\":" DEIT_C ",\"optim\":{\"eps\":0}}", "optim.eps", "> 0"},
        {"{\"model\":" DEIT_C ",\"optim\":{\"momentum\":0.9}}", "optim.momentum", "\"sgd\""},
        {"{\"model\":" RESNET ",\"optim\":{\"eps\":1e-8}}", "optim.eps", "\"adamw\""},
        {"{\"model\":" RESNET ",\"optim\":{\"batch_size\":0}}", "optim.batch_size", ">= 1"},
        {"{\"model\":" RESNET ",\"optim\":{\"batch_size\":65537}}", "optim.batch_size", "<= 65536"},
        {"{\"model\":" RESNET ",\"optim\":{\"epochs\":0}}", "optim.epochs", ">= 1"},
        {"{\"model\":" RESNET ",\"optim\":{\"epochs\":10001}}", "optim.epochs", "<= 10000"},
        {"{\"model\":" RESNET ",\"optim\":{\"epochs\":3,\"warmup_epochs\":3}}",
         "optim.warmup_epochs", "< epochs (3)"},
        {"{\"model\":" RESNET ",\"optim\":{\"warmup_epochs\":-1}}", "optim.warmup_epochs", ">= 0"},
        {"{\"model\":" RESNET ",\"optim\":{\"schedule\":\"step\"}}", "optim.schedule", "one of"},
        {"{\"model\":" RESNET ",\"optim\":{\"min_lr\":0.2}}", "optim.min_lr", "<= lr (0.1)"},
        {"{\"model\":" RESNET ",\"optim\":{\"label_smoothing\":1}}", "optim.label_smoothing",
         "< 1"},
        {"{\"model\":" DEIT_C ",\"optim\":{\"drop_path\":1}}", "optim.drop_path", "< 1"},
        {"{\"model\":" RESNET ",\"optim\":{\"drop_path\":0.1}}", "optim.drop_path", "ViT"},
        {"{\"model\":" RESNET ",\"optim\":{\"grad_clip\":-1}}", "optim.grad_clip", ">= 0"},
        {"{\"model\":" RESNET ",\"optim\":{\"max_steps\":-5}}", "optim.max_steps", ">= 0"},
        {"{\"model\":" RESNET ",\"optim\":{\"momentun\":0.9}}", "optim.momentun", "unknown"},
        {"{\"model\":" RESNET ",\"optim\":{\"batch_size\":100},\"resources\":{\"ranks\":8}}",
         "optim.batch_size", "divisible by resources.ranks (8)"},
        {"{\"model\":" RESNET ",\"prune\":{\"method\":\"dmcp\"}}", "prune", "only for type"},
        {"{\"model\":" RESNET ",\"adapt\":{}}", "adapt", "only for type"},
        {"{\"model\":" RESNET ",\"epochs\":5}", "epochs", "unknown field"},
        {"{\"data\":{}}", "model", "is required"},
        {"{\"model\":\"resnet20\"}", "model", "must be an object"},
        {"{\"model\":{\"arch\":\"resnet_cifar\",\"in_channels\":3}}", "model.in_channels",
         "must be 1 for fashion-mnist"},
        {"{\"model\":{\"arch\":\"resnet_cifar\",\"num_classes\":100},\"data\":{\"dataset\":"
         "\"cifar10\",\"root\":\"/c\"}}",
         "model.num_classes", "must be 10 for cifar10"},
        {"{\"model\":{\"arch\":\"resnet_cifar\",\"image_size\":\"32\"}}", "model.image_size",
         "integer"},
        {"{\"model\":{\"arch\":\"deit\",\"embed_dim\":96,\"depth\":6,\"num_heads\":5,"
         "\"patch_size\":4}}",
         "model.num_heads", "must divide embed_dim (96)"},
        {"{\"model\":{\"arch\":\"resnet_cifar\"},\"data\":" FOLDER_DATA "}", "model.num_classes",
         "required"},
        {"{\"model\":{\"arch\":\"resnet_cifar\",\"num_classes\":3},\"data\":"
         "{\"dataset\":\"folder\"}}",
         "data.root", "required"},
        {"{\"model\":{\"arch\":\"resnet_cifar\",\"num_classes\":3},\"data\":"
         "{\"dataset\":\"folder\",\"root\":\"/d\",\"image\":{\"on_bad_file\":\"ignore\"}}}",
         "data.image.on_bad_file", NULL},
        {"{\"model\":{\"arch\":\"resnet_cifar\",\"num_classes\":3},\"data\":"
         "{\"dataset\":\"folder\",\"root\":\"/d\",\"image\":{\"train_transform\":"
         "{\"scale\":[0.9,0.1]}}}}",
         "data.image.train_transform.scale", "lo <= hi"},
        {"{\"model\":{\"arch\":\"resnet_cifar\",\"num_classes\":3},\"data\":"
         "{\"dataset\":\"folder\",\"root\":\"/d\",\"image\":{\"size\":64,"
         "\"resize\":32}}}",
         "data.image.resize", ">= size"},
        {"{\"model\":{\"arch\":\"resnet_cifar\",\"num_classes\":3},\"data\":"
         "{\"dataset\":\"manifest\",\"root\":\"/d\",\"image\":{\"train_manifest\":"
         "\"a.csv\"}}}",
         "data.image.test_manifest", "required"},
        {"{\"model\":{\"arch\":\"resnet_cifar\",\"num_classes\":3,\"image_size\":32},"
         "\"data\":" FOLDER_DATA "}",
         "model.image_size", "data.image"},
        {"{\"model\":{\"arch\":\"resnet_cifar\"},\"optim\":{\"recipe\":\"timm\"}}", "optim.recipe",
         NULL},
        {"{\"model\":{\"arch\":\"resnet_cifar\"},\"optim\":{\"ema\":1.0}}", "optim.ema", NULL},
        {"{\"model\":{\"arch\":\"resnet_cifar\"},\"data\":{\"image\":{}}}", "data.image", "folder"},
        {"{\"model\":{\"arch\":\"resnet_cifar\",\"image_size\":16},"
         "\"data\":{\"dataset\":\"synthetic\",\"synthetic\":{\"size\":12}}}",
         "model.image_size", "must be 12"},
        {"{\"model\":" RESNET ",\"data\":{\"dataset\":\"synthetic\",\"root\":\"/x\"}}", "data.root",
         "not used"},
        {"{\"model\":" RESNET ",\"data\":{\"synthetic\":{\"train\":5}}}", "data.synthetic",
         "only for the synthetic"},
        {"{\"model\":" RESNET ",\"data\":{\"dataset\":\"synthetic\","
         "\"synthetic\":{\"train\":0}}}",
         "data.synthetic.train", ">= 1"},
        {"{\"type\":\"adapt\",\"model\":" RESNET "}", "adapt", "required"},
        {ADAPT_SPEC("{}"), "adapt.target_mflops", "required (or target_ratio)"},
        {ADAPT_SPEC("{\"target_mflops\":10,\"target_ratio\":0.5}"), "adapt.target_ratio",
         "cannot be combined"},
        {ADAPT_SPEC("{\"target_ratio\":5}"), "adapt.target_ratio", "<= 4"},
        {ADAPT_SPEC("{\"target_mflops\":0.5}"), "adapt.target_mflops", "smallest net"},
        {ADAPT_SPEC("{\"target_ratio\":3.9,\"elastic\":{\"enabled\":false}}"), "adapt.target_ratio",
         "largest net"},
        {ADAPT_SPEC("{\"target_ratio\":2.5,\"elastic\":{\"max_width\":1,\"max_depth\":1}}"),
         "adapt.target_ratio", "largest net"},
        {ADAPT_SPEC("{\"target_ratio\":0.5,\"method\":\"l1\"}"), "adapt.method", "one of"},
        {ADAPT_SPEC("{\"target_ratio\":0.5,\"window\":{\"min\":0.5,\"max\":1.2,"
                    "\"group\":0.8}}"),
         "adapt.window.group", "<= max - min"},
        {ADAPT_SPEC("{\"target_ratio\":0.5,\"window\":{\"max\":0.9}}"), "adapt.window.max", ">= 1"},
        {ADAPT_SPEC("{\"target_ratio\":0.5,\"elastic\":{\"drop_p\":0.2}}"), "adapt.elastic.drop_p",
         "<= condense_p"},
        {ADAPT_SPEC("{\"target_ratio\":0.5,\"elastic\":{\"patience\":0}}"),
         "adapt.elastic.patience", ">= 1"},
        {ADAPT_SPEC("{\"target_ratio\":0.5,\"arch\":{\"init\":\"random\"}}"), "adapt.arch.init",
         "one of"},
        {ADAPT_SPEC("{\"target_ratio\":0.5,\"method\":\"uniform_width\",\"window\":{}}"),
         "adapt.window", "only for method \"dna\""},
        {ADAPT_SPEC("{\"target_ratio\":0.5,\"compound\":{}}"), "adapt.compound",
         "only for method \"compound\""},
        {ADAPT_SPEC("{\"target_ratio\":0.5,\"bogus\":1}"), "adapt.bogus", "unknown"},
        {"{\"type\":\"adapt\",\"model\":" RESNET ",\"resources\":{\"ranks\":3},"
         "\"optim\":{\"batch_size\":129},\"adapt\":{\"target_ratio\":0.5,"
         "\"search\":{\"batch_size\":128}}}",
         "adapt.search.batch_size", "divisible by resources.ranks (3)"},
        {"{\"type\":\"adapt\",\"model\":" DEIT_C ",\"adapt\":{\"target_ratio\":0.5}}", "model.arch",
         "resnet_cifar, resnet, mobilenetv2, mobilenetv3 and efficientnet"},
        {"{\"type\":\"adapt\",\"model\":" RESNET ",\"prune\":{},"
         "\"adapt\":{\"target_ratio\":0.5}}",
         "prune", "only for type"},
        {"{\"type\":\"prune\",\"model\":" RESNET "}", "prune", "required"},
        {PRUNE_SPEC("{}"), "prune.target_mflops", "required (or target_ratio)"},
        {PRUNE_SPEC("{\"target_mflops\":10,\"target_ratio\":0.5}"), "prune.target_ratio",
         "cannot be combined"},
        {PRUNE_SPEC("{\"target_mflops\":40}"), "prune.target_mflops", "below the model's 31.02"},
        {PRUNE_SPEC("{\"target_mflops\":2.6}"), "prune.target_mflops", "above 2.658"},
        {PRUNE_SPEC("{\"target_ratio\":1}"), "prune.target_ratio", "< 1"},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"width\":{\"min\":0.5,\"max\":0.5}}"),
         "prune.width.min", "< max"},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"width\":{\"offset\":1}}"), "prune.width.offset",
         "no channel group"},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"method\":\"l1\"}"), "prune.method", "one of"},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"method\":\"uniform\",\"search_epochs\":3}"),
         "prune.search_epochs", "only for method \"dmcp\""},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"method\":\"uniform\",\"finetune\":true}"),
         "prune.finetune", "needs init_from"},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"search_epochs\":0}"), "prune.search_epochs", ">= 1"},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"search\":{\"lr\":0.1,\"min_lr\":0.2}}"),
         "prune.search.min_lr", "<= lr"},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"arch\":{\"band\":1.5}}"), "prune.arch.band", "<= 1"},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"arch\":{\"momentum\":0}}"), "prune.arch.nesterov",
         "momentum > 0"},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"derive\":\"random\"}"), "prune.derive", "one of"},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"sampling\":\"mmrazor\"}"), "prune.sampling", "one of"},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"method\":\"uniform\",\"sampling\":\"official\"}"),
         "prune.sampling", "dmcp"},
        {PRUNE_SPEC("{\"target_ratio\":0.5,\"bogus\":1}"), "prune.bogus", "unknown"},
        {"{\"type\":\"prune\",\"model\":" RESNET ",\"resources\":{\"ranks\":3},"
         "\"optim\":{\"batch_size\":129},\"prune\":{\"target_ratio\":0.5,"
         "\"search\":{\"batch_size\":128}}}",
         "prune.search.batch_size", "divisible by resources.ranks (3)"},
        {"{\"type\":\"prune\",\"model\":" DEIT_C ",\"prune\":{\"target_ratio\":0.5}}", "model.arch",
         "resnet_cifar, resnet, mobilenetv2, mobilenetv3 and efficientnet"},
        {"{\"type\":\"prune\",\"model\":" RESNET ",\"adapt\":{},"
         "\"prune\":{\"target_ratio\":0.5}}",
         "adapt", "only for type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_one(cases[i].spec, cases[i].field, cases[i].reason);
}
END_TEST

START_TEST(collects_every_problem)
{
    json_t *in = load("{\"name\":\"\",\"priority\":500,\"bogus\":1,"
                      "\"model\":{\"arch\":\"deit\",\"embed_dim\":96,\"depth\":6,"
                      "\"num_heads\":5,\"patch_size\":4,\"in_channels\":3},"
                      "\"data\":{\"val_fraction\":0.9,\"augment\":{\"hflip\":1}},"
                      "\"optim\":{\"lr\":-1,\"epochs\":0,\"label_smoothing\":2},"
                      "\"resources\":{\"ranks\":100},\"seed\":-3}");
    job_spec s;
    json_t *canon = NULL;
    field_errors fe;
    ck_assert_int_eq(jobspec_parse(&s, &canon, in, &fe), ERR_INVALID);
    ck_assert_ptr_null(canon);
    static const char *const want[] = {"name",
                                       "priority",
                                       "bogus",
                                       "model.num_heads",
                                       "model.in_channels",
                                       "data.val_fraction",
                                       "data.augment.hflip",
                                       "optim.lr",
                                       "optim.epochs",
                                       "optim.label_smoothing",
                                       "resources.ranks",
                                       "seed"};
    char buf[2048];
    fe_format(&fe, buf, sizeof buf);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(has_err(&fe, want[i], NULL), "%s not reported: %s", want[i], buf);
    ck_assert_msg(fe.n == (int)(sizeof want / sizeof want[0]), "%d problems: %s", fe.n, buf);
    jobspec_free(&s);
    json_decref(in);
}
END_TEST

START_TEST(not_an_object)
{
    job_spec s;
    field_errors fe;
    json_t *canon = NULL, *a = json_array();
    ck_assert_int_eq(jobspec_parse(&s, &canon, a, &fe), ERR_INVALID);
    ck_assert_int_eq(fe.n, 1);
    ck_assert(has_err(&fe, "", "JSON object"));
    ck_assert_int_eq(jobspec_parse(&s, NULL, NULL, NULL), ERR_INVALID);
    json_decref(a);
    jobspec_free(&s);
    jobspec_free(NULL);
    ck_assert_str_eq(jobspec_type_name(JOB_ADAPT), "adapt");
    ck_assert_str_eq(jobspec_dataset_name(DS_CIFAR100), "cifar100");
}
END_TEST

/* ---- golden examples ---------------------------------------------------- */

static const char *src_dir(void)
{
    const char *d = getenv("KILN_SRC");
    return (d != NULL && d[0] != '\0') ? d : ".";
}

static json_t *load_file(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    ck_assert_msg(j != NULL, "%s:%d: %s", path, je.line, je.text);
    return j;
}

/* Params and MACs of the examples' models, printed by
 * `/usr/bin/python3 tests/tools/count_macs.py`. */
static const struct {
    const char *file;
    double params, macs;
} EXAMPLES[] = {
    {"train-ceit-fmnist.json", 835658, 38039818},
    {"train-deit-fmnist.json", 678730, 36397738},
    {"train-resnet20-fmnist.json", 272186, 31021962},
    {"train-mobilenetv2-cifar10.json", 700490, 27969034},
    {"prune-dmcp-resnet20-fmnist.json", 272186, 31021962},
    {"prune-uniform-resnet20-fmnist.json", 272186, 31021962},
    {"adapt-dna-resnet20-fmnist.json", 272186, 31021962},
    {"adapt-compound-mobilenetv2-fmnist.json", 700202, 23111722},
    {"train-resnet20-imagefolder.json", 272474, 163250826},
    {"train-resnet50-imagefolder.json", 23712932, 4087341156},
    {"train-ceit-t-imagefolder.json", 6183204, 1401057700},
};

START_TEST(golden_valid_examples)
{
    char path[1024];
    for (size_t i = 0; i < sizeof EXAMPLES / sizeof EXAMPLES[0]; i++) {
        snprintf(path, sizeof path, "%s/api/examples/%s", src_dir(), EXAMPLES[i].file);
        json_t *in = load_file(path), *canon = NULL;
        job_spec s;
        field_errors fe;
        int rc = jobspec_parse(&s, &canon, in, &fe);
        char buf[2048];
        fe_format(&fe, buf, sizeof buf);
        ck_assert_msg(rc == 0, "%s rejected: %s", path, buf);
        ck_assert_msg(s.params == EXAMPLES[i].params, "%s: params %.0f", path, s.params);
        ck_assert_msg(s.mflops == EXAMPLES[i].macs / 1e6, "%s: MFLOPs %.6f", path, s.mflops);
        /* every field given in the example is kept as given */
        const char *key;
        json_t *v;
        json_object_foreach(in, key, v)
        {
            json_t *c = json_object_get(canon, key);
            ck_assert_msg(c != NULL, "%s: %s dropped", path, key);
            if (!json_is_object(v))
                ck_assert_msg(json_equal(v, c), "%s: %s changed", path, key);
        }
        check_round_trip(canon);
        json_decref(canon);
        json_decref(in);
        jobspec_free(&s);
    }
}
END_TEST

START_TEST(golden_invalid_examples)
{
    char dir[512], path[1024];
    snprintf(dir, sizeof dir, "%s/api/examples/invalid", src_dir());
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    int seen = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%.*s.expect", dir, (int)(n - 5), de->d_name);
        json_t *expect = load_file(path);
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        json_t *in = load_file(path), *canon = NULL;
        job_spec s;
        field_errors fe;
        int rc = jobspec_parse(&s, &canon, in, &fe);
        char buf[2048];
        fe_format(&fe, buf, sizeof buf);
        const char *code = json_string_value(json_object_get(expect, "code"));
        ck_assert_ptr_nonnull(code);
        int want_rc = strcmp(code, "ERR_UNSUPPORTED") == 0 ? ERR_UNSUPPORTED : ERR_INVALID;
        ck_assert_msg(rc == want_rc, "%s: rc %d, want %s (%s)", path, rc, code, buf);
        const json_t *fields = json_object_get(expect, "fields");
        ck_assert_msg(json_array_size(fields) == (size_t)fe.n, "%s: got %s", path, buf);
        for (size_t i = 0; i < json_array_size(fields); i++) {
            const char *f = json_string_value(json_array_get(fields, i));
            ck_assert_msg(has_err(&fe, f, NULL), "%s: %s not reported; got %s", path, f, buf);
        }
        json_decref(expect);
        json_decref(in);
        jobspec_free(&s);
        seen++;
    }
    closedir(d);
    ck_assert_int_ge(seen, 10);
}
END_TEST

/* init_from's forms and after: what each parses to, its canonical JSON. */
START_TEST(init_from_and_after)
{
    job_spec s;
    json_t *canon =
        parse_ok(&s, "{\"model\":" RESNET ",\"init_from\":\"runs/a/model.safetensors\"}");
    ck_assert_int_eq(s.init.kind, INIT_PATH);
    ck_assert_str_eq(s.init_from, "runs/a/model.safetensors");
    ck_assert_str_eq(json_string_value(json_object_get(canon, "init_from")),
                     "runs/a/model.safetensors");
    jobspec_free(&s);
    json_decref(canon);
    canon = parse_ok(&s, "{\"model\":" RESNET ",\"init_from\":{\"job\":\"j1\"},"
                         "\"after\":[\"j1\",\"j2\"]}");
    ck_assert_int_eq(s.init.kind, INIT_JOB);
    ck_assert_int_eq(s.n_after, 2);
    ck_assert_str_eq(s.after[1], "j2");
    json_t *want = load("{\"job\":\"j1\",\"artifact\":\"model.safetensors\"}");
    ck_assert(json_equal(json_object_get(canon, "init_from"), want));
    json_decref(want);
    ck_assert_int_eq(json_array_size(json_object_get(canon, "after")), 2);
    check_round_trip(canon);
    jobspec_free(&s);
    json_decref(canon);
    canon = parse_ok(&s, "{\"model\":" RESNET ",\"init_from\":{\"job\":\"j1\",\"checkpoint\":"
                         "\"latest\"}}");
    ck_assert(s.init.checkpoint);
    ck_assert_str_eq(s.init_from, "job j1 checkpoint latest");
    check_round_trip(canon);
    jobspec_free(&s);
    json_decref(canon);
    canon = parse_ok(&s, "{\"model\":" RESNET ",\"init_from\":{\"model\":\"m5\"}}");
    ck_assert_int_eq(s.init.kind, INIT_MODEL);
    ck_assert_str_eq(s.init_from, "model m5");
    jobspec_free(&s);
    json_decref(canon);
    expect_one("{\"model\":" RESNET ",\"init_from\":{\"job\":\"a\",\"model\":\"b\"}}", "init_from",
               "exactly one of job, model and path");
    expect_one("{\"model\":" RESNET ",\"init_from\":{\"model\":\"b\",\"artifact\":\"x\"}}",
               "init_from.artifact", "only for");
    expect_one("{\"model\":" RESNET ",\"init_from\":{\"job\":\"a\",\"size\":1}}", "init_from.size",
               "unknown");
    expect_one("{\"model\":" RESNET ",\"init_from\":\"a b\"}", "init_from", "neither a job id");
    expect_one("{\"model\":" RESNET ",\"init_from\":7}", "init_from", "must be a job id");
    expect_one("{\"model\":" RESNET ",\"after\":[\"j1\",\"j1\"]}", "after[1]", "listed twice");
    expect_one("{\"model\":" RESNET ",\"after\":[]}", "after", "array of 1 to");
    expect_one("{\"model\":" RESNET ",\"after\":[\"../x\"]}", "after[0]", "must be a job id");
    /* optim.freeze: train only, prefixes kept in the canonical form */
    canon = parse_ok(&s, "{\"model\":" RESNET ",\"optim\":{\"freeze\":[\"conv1\",\"layer1.\"]}}");
    ck_assert_int_eq(s.optim.n_freeze, 2);
    ck_assert_str_eq(s.optim.freeze[1], "layer1.");
    ck_assert_int_eq(json_array_size(json_object_get(json_object_get(canon, "optim"), "freeze")),
                     2);
    check_round_trip(canon);
    jobspec_free(&s);
    json_decref(canon);
    expect_one("{\"model\":" RESNET ",\"optim\":{\"freeze\":[\"a\",\"\"]}}", "optim.freeze[1]",
               "prefix");
    expect_one("{\"model\":" RESNET ",\"optim\":{\"freeze\":[]}}", "optim.freeze", "1 to 16");
    /* a spec without model, for the server's JOBSPEC_MODEL_LATER */
    json_t *in =
        load("{\"init_from\":{\"job\":\"j1\"},\"after\":[\"j1\"],\"optim\":{\"epochs\":2}}");
    field_errors fe;
    ck_assert_int_eq(jobspec_parse(&s, NULL, in, &fe), ERR_INVALID);
    ck_assert(has_err(&fe, "model", "is required"));
    jobspec_free(&s);
    ck_assert_int_eq(jobspec_parse_flags(&s, &canon, in, &fe, JOBSPEC_MODEL_LATER), 0);
    ck_assert(s.model_later);
    ck_assert_str_eq(s.name, "train-from-j1");
    ck_assert(json_equal(canon, in));
    jobspec_free(&s);
    json_decref(canon);
    json_decref(in);
}
END_TEST

Suite *suite_jobspec(void)
{
    Suite *s = suite_create("jobspec");
    tu_case_add(s, "defaults", 0, NULL, NULL,
                TU_TESTS(valid_specs, vit_defaults_and_parsed_fields, init_from_and_after));
    tu_case_add(s, "validation", 0, NULL, NULL,
                TU_TESTS(invalid_specs, collects_every_problem, not_an_object));
    tu_case_add(s, "golden", 0, NULL, NULL,
                TU_TESTS(golden_valid_examples, golden_invalid_examples));
    return s;
}
