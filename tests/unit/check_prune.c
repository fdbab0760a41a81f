/* check_prune.c - DMCP in the engine and the prune job end to end.
 *
 * A sub-net built from the slice of the supernet computes what the
 * supernet computes with the dropped channels zeroed at every scaling site
 * (logits and every parameter gradient, ResNet and MobileNetV2), which
 * checks the slicing, the scatter of gradients and the placement of the
 * sites at once; the gradient of the architecture loss with respect to
 * alpha through the CHSCALE nodes matches finite differences; sampled
 * architectures build, run, save and load; a short prune job (dmcp and
 * uniform, synthetic data) runs end to end, writes an architecture inside
 * the target band that kiln-worker's model parser accepts and weights that
 * evaluate to the reported accuracy (and a MobileNetV2 one keeps its block
 * structure); a cancelled search resumes from its
 * checkpoint to the same network and weights, as does a resumed retrain.
 */
#include "common/jobspec.h"
#include "common/prunespace.h"
#include "common/xalloc.h"
#include "tests/unit/jobcapture.h"
#include "tests/unit/testutil.h"
#include "worker/jobs/checkpoint.h"
#include "worker/jobs/job.h"
#include "worker/jobs/prune.h"
#include "worker/jobs/prune_chain.h"
#include "worker/jobs/train.h"
#include "worker/models/model.h"
#include "worker/models/slice.h"
#include "worker/models/state.h"
#include "worker/nn/loss.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Suite *suite_prune(void);

static const prunespace_width WIDTH = {0.1, 1.0, 0.1};

#define RESNET_SMALL                                                                               \
    "{\"arch\":\"resnet_cifar\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"             \
    "\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[12,10]},{\"width\":16,\"mids\":[16]}]}"
#define MBV2_SMALL                                                                                 \
    "{\"arch\":\"mobilenetv2\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"              \
    "\"stem\":8,\"blocks\":[{\"hidden\":8,\"out\":8,\"stride\":1},"                                \
    "{\"hidden\":24,\"out\":12,\"stride\":2},{\"hidden\":36,\"out\":12,\"stride\":1},"             \
    "{\"hidden\":36,\"out\":16,\"stride\":1}],\"last\":20}"

/* squeeze-excitation (tied sites) with h-swish / ReLU, and with SiLU */
#define MBV3_SMALL                                                                                 \
    "{\"arch\":\"mobilenetv3\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"              \
    "\"stem\":8,\"blocks\":[{\"hidden\":8,\"out\":8,\"se\":4},"                                    \
    "{\"hidden\":24,\"out\":12,\"stride\":2,\"kernel\":5,\"act\":\"hswish\",\"se\":8},"            \
    "{\"hidden\":36,\"out\":12,\"se\":8,\"act\":\"hswish\"}],\"last\":20,\"head_width\":16,"       \
    "\"dropout\":0}"
#define EFFNET_SMALL                                                                               \
    "{\"arch\":\"efficientnet\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"             \
    "\"stem\":8,\"blocks\":[{\"hidden\":8,\"out\":8,\"se\":2,\"stage\":0},"                        \
    "{\"hidden\":24,\"out\":12,\"stride\":2,\"se\":4,\"stage\":1},"                                \
    "{\"hidden\":36,\"out\":12,\"se\":6,\"kernel\":5,\"stage\":1}],\"last\":20,"                   \
    "\"dropout\":0,\"drop_path\":0}"

/* A supernet with scaling sites, its chains and space. */
typedef struct fixture {
    model_cfg cfg;
    prune_space sp;
    prune_chains ch;
    net super;
} fixture;

static void fixture_init(fixture *f, const char *cfg, int B)
{
    errbuf eb;
    tu_model_cfg(&f->cfg, cfg);
    ck_assert(prune_space_init(&f->sp, &f->cfg, &WIDTH, &eb) == 0);
    chains_init(&f->ch, &f->sp);
    model_opts mo = {.site = chains_site, .site_ctx = &f->ch};
    net_init(&f->super);
    ck_assert(model_build(&f->super, &f->cfg, B, 7, &mo, &eb) == 0);
    chains_attach(&f->ch, &f->super);
    /* every BN of the net is a scaling site, and every SE's fc1 a tied one: one
     * CHSCALE each */
    int n_bn = 0, n_cs = 0, n_se = 0;
    for (int i = 0; i < f->super.n_nodes; i++) {
        n_bn += f->super.nodes[i].op == NET_OP_BN;
        n_cs += f->super.nodes[i].op == NET_OP_CHSCALE;
        n_se += f->super.nodes[i].op == NET_OP_CHMUL;
    }
    ck_assert_int_eq(n_bn + n_se, n_cs);
    ck_assert_int_eq(n_bn + n_se, f->sp.n_sites);
}

static void fixture_deinit(fixture *f)
{
    net_deinit(&f->super);
    chains_deinit(&f->ch);
    prune_space_deinit(&f->sp);
}

static void check_mask_equivalence(const char *cfg)
{
    enum { B = 6 };
    fixture f;
    fixture_init(&f, cfg, B);
    rng r;
    rng_seed(&r, 17);
    size_t nx = (size_t)B * f.cfg.image_size * f.cfg.image_size * f.cfg.in_channels;
    float *x = xmallocarray(nx, sizeof(float)), *dl = xmallocarray(B * 5, sizeof(float));
    for (size_t i = 0; i < nx; i++)
        x[i] = rng_normal(&r);
    for (int i = 0; i < B * 5; i++)
        dl[i] = rng_normal(&r);
    float *g_super = xmallocarray(f.super.n_params, sizeof(float));
    int *w = xcalloc((size_t)f.sp.n_units, sizeof(int));
    for (int rep = 0; rep < 3; rep++) {
        chains_random_widths(&f.sp, &r, w);
        /* the supernet with 0/1 masks at every site */
        chains_set_scaling(&f.ch, 1);
        for (int u = 0; u < f.sp.n_units; u++)
            for (int c = 0; c < f.sp.units[u].channels; c++)
                f.ch.scale[f.ch.s_off[u] + (size_t)c] = c < w[u] ? 1.0f : 0.0f;
        for (int t = 0; t < f.sp.n_sites; t++) /* SE channels follow their unit */
            for (size_t k = f.ch.t_off[t]; k < f.ch.t_off[t + 1]; k++)
                f.ch.t_scale[k] =
                    f.ch.scale[f.ch.s_off[f.sp.sites[t].unit] + (size_t)f.ch.tie_ch[k]];
        net_zero_grad(&f.super);
        net_forward(&f.super, x, B);
        net_backward(&f.super, dl);
        memcpy(g_super, f.super.grads, f.super.n_params * sizeof(float));
        /* the sub-net of those widths, sliced from the supernet */
        model_cfg sc;
        prunespace_widths_to_cfg(&f.sp, w, &sc);
        net sub;
        net_init(&sub);
        errbuf eb;
        ck_assert(model_build(&sub, &sc, B, 0, NULL, &eb) == 0);
        ck_assert_msg(net_slice_check(&sub, &f.super, &eb) == 0, "%s", eb.msg);
        net_slice_gather(&sub, &f.super);
        net_zero_grad(&sub);
        net_forward(&sub, x, B);
        double err = 0, mx = 0;
        for (int i = 0; i < B * 5; i++) {
            err = fmax(err, fabs((double)net_out(&sub)[i] - (double)net_out(&f.super)[i]));
            mx = fmax(mx, fabs((double)net_out(&f.super)[i]));
        }
        ck_assert_msg(err <= 1e-4 * mx, "logits differ by %g (max %g)", err, mx);
        net_backward(&sub, dl);
        net_zero_grad(&f.super);
        net_slice_scatter_grads(&f.super, &sub);
        double gerr = 0, gmax = 0;
        for (size_t i = 0; i < f.super.n_params; i++) {
            gerr = fmax(gerr, fabs((double)f.super.grads[i] - (double)g_super[i]));
            gmax = fmax(gmax, fabs((double)g_super[i]));
        }
        ck_assert_msg(gerr <= 2e-4 * gmax, "gradients differ by %g (max %g)", gerr, gmax);
        net_deinit(&sub);
    }
    chains_set_scaling(&f.ch, 0);
    free(w);
    free(g_super);
    free(x);
    free(dl);
    fixture_deinit(&f);
}

START_TEST(subnet_equals_masked_supernet_resnet)
{
    check_mask_equivalence(RESNET_SMALL);
}
END_TEST

START_TEST(subnet_equals_masked_supernet_mbv2)
{
    check_mask_equivalence(MBV2_SMALL);
}
END_TEST

/* The sub-net's SE is as wide as modelcfg_se_width ties it; masking the
 * supernet's SE channels by the tied sites gives the same network. */
START_TEST(subnet_equals_masked_supernet_mbv3_effnet)
{
    check_mask_equivalence(MBV3_SMALL);
    check_mask_equivalence(EFFNET_SMALL);
}
END_TEST

static double arch_loss(fixture *f, const float *x, const int32_t *y, float *probs, int B)
{
    chains_update(&f->ch);
    net_forward(&f->super, x, B);
    return nn_crossentropy_forward(probs, NULL, net_out(&f->super), y, B, 5, 0.0f);
}

START_TEST(arch_gradient_matches_finite_differences)
{
    const char *cfgs[4] = {RESNET_SMALL, MBV2_SMALL, MBV3_SMALL, EFFNET_SMALL};
    for (int ci = 0; ci < 4; ci++) {
        enum { B = 32 };
        fixture f;
        fixture_init(&f, cfgs[ci], B);
        rng r;
        rng_seed(&r, 23);
        size_t nx = (size_t)B * 8 * 8 * 3;
        float *x = xmallocarray(nx, sizeof(float)), probs[B * 5], dl[B * 5];
        int32_t y[B];
        for (size_t i = 0; i < nx; i++)
            x[i] = rng_normal(&r);
        for (int i = 0; i < B; i++)
            y[i] = (int32_t)rng_below(&r, 5);
        for (size_t k = 0; k < f.ch.n_alpha; k++)
            f.ch.alpha[k] = 1.0f + rng_normal(&r);
        /* MobileNetV3's classifier starts at N(0, 0.01) (torchvision's): logits and
         * gradients too small for finite differences in float, so it is scaled up */
        const char *cls[2] = {"classifier.0.weight", "classifier.3.weight"};
        for (int t = 0; t < 2; t++) {
            int id = net_tensor_find(&f.super, cls[t]);
            for (size_t i = 0; id >= 0 && i < f.super.tensors[id].n; i++)
                net_tensor_data(&f.super, id)[i] *= 20.0f;
        }
        net_set_training(&f.super, 1); /* batch-statistics BN, as the architecture step runs */
        chains_set_scaling(&f.ch, 1);
        chains_zero_grad(&f.ch);
        arch_loss(&f, x, y, probs, B);
        memset(dl, 0, sizeof dl);
        nn_crossentropy_backward(dl, probs, y, B, 5, 0.0f, 1.0f);
        net_backward(&f.super, dl);
        chains_backward(&f.ch, 0.0);
        /* ReLU kinks crossed inside +-h (the batch statistics move with the
         * scales) make single coordinates noisy, so the test is on the
         * whole vector: relative L2 error and the worst coordinate */
        double max_err = 0, max_g = 0, d2 = 0, g2 = 0;
        for (size_t k = 0; k < f.ch.n_alpha; k++) {
            float a = f.ch.alpha[k];
            const float h = 0.002f;
            f.ch.alpha[k] = a + h;
            double lp = arch_loss(&f, x, y, probs, B);
            f.ch.alpha[k] = a - h;
            double lm = arch_loss(&f, x, y, probs, B);
            f.ch.alpha[k] = a;
            double fd = (lp - lm) / (2.0 * (double)h);
            double an = (double)f.ch.dalpha[k];
            max_err = fmax(max_err, fabs(fd - an));
            max_g = fmax(max_g, fabs(an));
            d2 += (fd - an) * (fd - an);
            g2 += an * an;
        }
        ck_assert_msg(max_g > 1e-4, "cfg %d: no gradient (%g)", ci, max_g);
        ck_assert_msg(sqrt(d2 / g2) <= 0.04 && max_err <= 0.1 * max_g,
                      "cfg %d: relative L2 error %.4f, max err %g of max %g", ci, sqrt(d2 / g2),
                      max_err, max_g);
        free(x);
        fixture_deinit(&f);
    }
}
END_TEST

START_TEST(sampled_architectures_build_run_save_load)
{
    fixture f;
    fixture_init(&f, MBV2_SMALL, 4);
    rng r;
    rng_seed(&r, 31);
    for (size_t k = 0; k < f.ch.n_alpha; k++)
        f.ch.alpha[k] = rng_normal(&r);
    chains_update(&f.ch);
    char dir[] = "/tmp/kiln-prune-XXXXXX", path[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    float x[4 * 8 * 8 * 3];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = rng_normal(&r);
    int w[64];
    for (int rep = 0; rep < 4; rep++) {
        if (rep == 3)
            chains_es_widths(&f.ch, w);
        else
            chains_sample(&f.ch, &r, w);
        model_cfg c, back;
        prunespace_widths_to_cfg(&f.sp, w, &c);
        /* through the explicit JSON form, as architecture.json carries it */
        json_t *j = modelcfg_to_explicit_json(&c);
        field_errors fe;
        fe_init(&fe);
        ck_assert_int_eq(modelcfg_parse(&back, j, "model", &fe), 0);
        json_t *j2 = modelcfg_to_explicit_json(&back);
        ck_assert(json_equal(j, j2));
        net a, b;
        net_init(&a);
        net_init(&b);
        errbuf eb;
        ck_assert(model_build(&a, &c, 4, 100 + (uint64_t)rep, NULL, &eb) == 0);
        ck_assert(model_build(&b, &back, 4, 999, NULL, &eb) == 0);
        ck_assert(net_macs(&a) == prunespace_macs(&f.sp, w));
        net_set_training(&a, 0);
        net_set_training(&b, 0);
        net_forward(&a, x, 4);
        char *mj = json_dumps(j, JSON_COMPACT);
        ck_assert_msg(net_save_state(&a, path, mj, &eb) == 0, "%s", eb.msg);
        ck_assert_msg(ckpt_load_weights(path, &b, &eb) == 0, "%s", eb.msg);
        net_forward(&b, x, 4);
        ck_assert_mem_eq(net_out(&a), net_out(&b), 4 * 5 * sizeof(float));
        free(mj);
        json_decref(j);
        json_decref(j2);
        net_deinit(&a);
        net_deinit(&b);
    }
    unlink(path);
    rmdir(dir);
    fixture_deinit(&f);
}
END_TEST

/* ---- the job ---------------------------------------------------------------- */

#define PRUNE_MODEL                                                                                \
    "{\"arch\":\"resnet_cifar\",\"image_size\":12,\"in_channels\":1,\"num_classes\":4,"            \
    "\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[8]},{\"width\":16,\"mids\":[16]}]}"
/* Every unit 1 or 2 channels wide: four networks of 3896, 6488, 7788 and
 * 12972 MACs, none within +-1 % of 40 % of the whole (5189). */
#define TINY_MODEL                                                                                 \
    "{\"arch\":\"resnet_cifar\",\"image_size\":12,\"in_channels\":1,\"num_classes\":4,"            \
    "\"stem\":2,\"stages\":[{\"width\":2,\"mids\":[2]}]}"

/* A prune job on `model` (PRUNE_MODEL's input) on 4-class synthetic 12x12
 * images: 8 steps per epoch. */
static void prune_spec_model(job_spec *s, const char *model, const char *prune, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text,
             "{\"name\":\"p\",\"type\":\"prune\",\"seed\":1,%s\"model\":%s,"
             "\"data\":{\"dataset\":\"synthetic\",\"synthetic\":{\"train\":256,\"test\":128,"
             "\"classes\":4,\"channels\":1,\"size\":12}},"
             "\"optim\":{\"lr\":0.05,\"batch_size\":32,\"epochs\":2},"
             "\"checkpoint\":{\"keep_last\":50},\"prune\":%s}",
             extra, model, prune);
    json_t *j = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(j);
    field_errors fe;
    char msg[1024];
    int rc = jobspec_parse(s, NULL, j, &fe);
    fe_format(&fe, msg, sizeof msg);
    ck_assert_msg(rc == 0, "%s", msg);
    json_decref(j);
}

/* The ResNet supernet PRUNE_MODEL. */
static void prune_spec_of(job_spec *s, const char *prune, const char *extra)
{
    prune_spec_model(s, PRUNE_MODEL, prune, extra);
}

#define DMCP_PRUNE                                                                                 \
    "{\"target_ratio\":0.5,\"warmup_epochs\":1,\"search_epochs\":2,"                               \
    "\"search\":{\"batch_size\":32},\"calib_batches\":2,\"ds_samples\":2}"

START_TEST(dmcp_job_end_to_end)
{
    job_spec s;
    prune_spec_of(&s, DMCP_PRUNE, "");
    tu_job run;
    tu_job_begin(&run, "prune");
    ck_assert_int_eq(tu_job_run(&run, &s, NULL, NULL), 0);
    double t = s.mflops * 0.5;
    tu_check_found_net(&s, run.dir, &run.res, t);
    const char *want[] = {
        "warmup/train/loss",    "warmup/test/top1_max", "warmup/expected_mflops",
        "search/arch/loss",     "search/flops_loss",    "search/p_mean/conv1",
        "search/p_mean/layer2", "search/test/top1_min", "search/test/top1_expected",
        "retrain/test/top1",    "retrain/train/loss"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(tu_has_metric(run.cap, want[i]), "no metric %s", want[i]);
    /* the target and the band the result must meet, once, at the first step */
    static const struct {
        const char *name;
        double f;
    } tg[] = {{"target/mflops", 1.0},
              {"target/band_low_mflops", 0.99},
              {"target/band_high_mflops", 1.01}};
    for (size_t k = 0; k < sizeof tg / sizeof tg[0]; k++) {
        int found = 0;
        for (int i = 0; i < run.cap->n; i++)
            if (strcmp(run.cap->name[i], tg[k].name) == 0) {
                ck_assert_double_eq_tol(run.cap->value[i], tg[k].f * t, 1e-9 * t);
                ck_assert_int_eq(run.cap->step[i], 0);
                found++;
            }
        ck_assert_msg(found == 1, "%s emitted %d times", tg[k].name, found);
    }
    /* one step count for the whole job: the retrain follows the search */
    ck_assert_int_eq(run.cap->started_total, 24 + 16);
    for (int i = 0; i < run.cap->n; i++)
        if (strncmp(run.cap->name[i], "retrain/", 8) == 0)
            ck_assert_int_gt(run.cap->step[i], 24);
    ck_assert_int_eq(run.res.n_artifacts, 5);
    json_t *rep = tu_load_json(run.dir, "report.json");
    json_t *der = json_object_get(rep, "derive");
    ck_assert_int_eq(json_array_size(json_object_get(der, "ds")), 2);
    ck_assert(json_is_true(json_object_get(json_object_get(der, "es_fitted"), "in_band")));
    ck_assert_int_eq(json_array_size(json_object_get(rep, "units")), 4);
    json_decref(rep);
    /* the warm-up supernet is a weights file for the same model */
    char path[1100];
    snprintf(path, sizeof path, "%s/supernet.safetensors", run.dir);
    net m;
    net_init(&m);
    errbuf eb;
    ck_assert(model_build(&m, &s.model, 4, 0, NULL, &eb) == 0);
    ck_assert_msg(ckpt_load_weights(path, &m, &eb) == 0, "%s", eb.msg);
    net_deinit(&m);
    tu_job_end(&run);
    jobspec_free(&s);
}
END_TEST

START_TEST(uniform_job_end_to_end)
{
    job_spec s;
    prune_spec_of(&s, "{\"method\":\"uniform\",\"target_ratio\":0.3}", "");
    tu_job run;
    tu_job_begin(&run, "prune");
    ck_assert_int_eq(tu_job_run(&run, &s, NULL, NULL), 0);
    double t = s.mflops * 0.3;
    tu_check_found_net(&s, run.dir, &run.res, t);
    json_t *rep = tu_load_json(run.dir, "report.json");
    double m = json_number_value(json_object_get(rep, "width_multiplier"));
    ck_assert(m > 0.3 && m < 0.7);
    ck_assert(json_is_null(json_object_get(json_object_get(rep, "before"), "top1")));
    ck_assert_int_eq(run.res.n_artifacts, 3);
    ck_assert(!tu_has_metric(run.cap, "search/flops_loss"));
    ck_assert(tu_has_metric(run.cap, "retrain/test/top1"));
    json_decref(rep);
    tu_job_end(&run);
    jobspec_free(&s);
}
END_TEST

START_TEST(cancelled_search_resumes_to_the_same_result)
{
    job_spec s;
    prune_spec_of(&s, DMCP_PRUNE, "");
    tu_job a, b;
    tu_job_begin(&a, "prune");
    tu_job_begin(&b, "prune");
    ck_assert_int_eq(tu_job_run(&a, &s, NULL, NULL), 0);
    /* cancel in the search phase (after 13 of 24 steps), then resume */
    b.cap->cancel_after = 13;
    ck_assert_int_eq(tu_job_run(&b, &s, NULL, NULL), ERR_CANCELLED);
    ck_assert(b.res.cancelled);
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/search-00000013.safetensors", b.dir);
    ck_assert_msg(access(ckpt, R_OK) == 0, "no search checkpoint at step 13");
    b.cap->cancel_after = -1;
    ck_assert_int_eq(tu_job_run(&b, &s, ckpt, NULL), 0);
    tu_same_file(a.dir, b.dir, "architecture.json");
    tu_same_file(a.dir, b.dir, "model.safetensors");
    /* the two runs of b report what a's one did: no step twice, none missing */
    tu_same_points(a.cap, b.cap);
    /* resume the retrain from its first epoch's checkpoint */
    snprintf(ckpt, sizeof ckpt, "%s/ckpt-00000008.safetensors", b.dir);
    ck_assert_msg(access(ckpt, R_OK) == 0, "no retrain checkpoint at step 8");
    ck_assert_int_eq(tu_job_run(&b, &s, ckpt, NULL), 0);
    tu_same_file(a.dir, b.dir, "model.safetensors");
    json_t *rep = tu_load_json(b.dir, "report.json");
    ck_assert_ptr_nonnull(json_object_get(rep, "units")); /* search.json was picked up */
    json_decref(rep);
    tu_job_end(&a);
    tu_job_end(&b);
    jobspec_free(&s);
}
END_TEST

START_TEST(finetune_and_ds_derivation)
{
    job_spec s;
    prune_spec_of(&s,
                  "{\"target_ratio\":0.6,\"warmup_epochs\":1,\"search_epochs\":1,"
                  "\"search\":{\"batch_size\":32},\"calib_batches\":1,\"derive\":\"ds\","
                  "\"finetune\":true}",
                  "");
    tu_job run;
    tu_job_begin(&run, "prune");
    ck_assert_int_eq(tu_job_run(&run, &s, NULL, NULL), 0);
    double t = s.mflops * 0.6;
    tu_check_found_net(&s, run.dir, &run.res, t);
    json_t *rep = tu_load_json(run.dir, "report.json");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(rep, "derive"), "used")),
                     "ds");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(rep, "retrain"), "from")),
                     "supernet");
    /* the derived widths are the first direct sample */
    json_t *ds0 = json_array_get(json_object_get(json_object_get(rep, "derive"), "ds"), 0);
    ck_assert(json_equal(json_object_get(ds0, "widths"), json_object_get(rep, "widths")));
    json_decref(rep);
    tu_job_end(&run);
    jobspec_free(&s);
}
END_TEST

START_TEST(mbv2_dmcp_job)
{
    /* MobileNetV2 supernet: a block without expansion, residual blocks that
     * share their input's width, a stride-1 block that changes width; the
     * weight steps sample as DMCP's official code does */
    job_spec s;
    char text[2048];
    snprintf(text, sizeof text,
             "{\"type\":\"prune\",\"seed\":4,\"model\":%s,"
             "\"data\":{\"dataset\":\"synthetic\",\"synthetic\":{\"train\":128,\"test\":64,"
             "\"classes\":5,\"channels\":3,\"size\":8}},"
             "\"optim\":{\"lr\":0.05,\"batch_size\":32,\"epochs\":1},"
             "\"prune\":{\"target_ratio\":0.5,\"warmup_epochs\":1,\"search_epochs\":1,"
             "\"search\":{\"batch_size\":32},\"arch\":{\"lr\":5},\"calib_batches\":1,"
             "\"sampling\":\"official\"}}",
             MBV2_SMALL);
    json_t *j = json_loads(text, 0, NULL);
    field_errors fe;
    char msg[1024];
    int rc = jobspec_parse(&s, NULL, j, &fe);
    fe_format(&fe, msg, sizeof msg);
    ck_assert_msg(rc == 0, "%s", msg);
    json_decref(j);
    tu_job run;
    tu_job_begin(&run, "prune");
    ck_assert_int_eq(tu_job_run(&run, &s, NULL, NULL), 0);
    double t = s.mflops * 0.5;
    tu_check_found_net(&s, run.dir, &run.res, t);
    /* the found network keeps the supernet's block structure */
    json_t *arch = tu_load_json(run.dir, "architecture.json");
    model_cfg c;
    ck_assert_int_eq(modelcfg_parse(&c, arch, "model", &fe), 0);
    ck_assert_int_eq(c.blocks[0].hidden, c.mb_stem);       /* no expansion, tied */
    ck_assert_int_eq(c.blocks[2].out, c.blocks[1].out);    /* residual: shared width */
    ck_assert_int_ne(c.blocks[1].hidden, c.blocks[0].out); /* the expansion stays */
    ck_assert_int_ne(c.blocks[3].out, c.blocks[2].out);    /* no residual appears */
    ck_assert(tu_has_metric(run.cap, "search/p_mean/features.2.expand"));
    json_decref(arch);
    tu_job_end(&run);
    jobspec_free(&s);
}
END_TEST

/* The ES derivation from random chains (seeds 1..8, transition logits
 * 1.5 N(0, 1)) at targets from 30 % to 90 % of the supernet: the network
 * lies in the band by the model config's own count, and the report says
 * so. A target below the smallest network fails naming the field. */
START_TEST(es_derivation_lands_in_the_band)
{
    const char *models[3] = {RESNET_SMALL, MBV2_SMALL, PRUNE_MODEL};
    const double ratios[4] = {0.3, 0.5, 0.7, 0.9};
    job_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.seed = 1;
    dist_info one = {.world = 1};
    for (int mi = 0; mi < 3; mi++) {
        pruner *p = xcalloc(1, sizeof *p);
        model_cfg c;
        errbuf eb;
        tu_model_cfg(&c, models[mi]);
        ck_assert(prune_space_init(&p->sp, &c, &WIDTH, &eb) == 0);
        chains_init(&p->ch, &p->sp);
        p->j.spec = &spec;
        p->j.d = &one;
        p->ps.derive = PRUNE_DERIVE_ES;
        int *w = xcalloc((size_t)p->sp.n_units, sizeof(int));
        prunespace_min_widths(&p->sp, w);
        double full = modelcfg_macs(&c) / 1e6, least = prunespace_macs(&p->sp, w) / 1e6;
        for (int seed = 1; seed <= 8; seed++) {
            rng r;
            rng_seed(&r, (uint64_t)seed);
            for (size_t k = 0; k < p->ch.n_alpha; k++)
                p->ch.alpha[k] = 1.5f * rng_normal(&r);
            chains_update(&p->ch);
            for (int t = 0; t < 4; t++) {
                p->ps.target_ratio = ratios[t];
                p->goal.target = ratios[t] * full;
                if (p->goal.target * 1.01 <= least) /* refused by the spec */
                    continue;
                json_t *info = json_object();
                ck_assert_msg(prune_derive_widths(p, w, info, &eb) == 0, "%s", eb.msg);
                model_cfg found;
                prunespace_widths_to_cfg(&p->sp, w, &found);
                double mf = modelcfg_macs(&found) / 1e6;
                ck_assert_msg(mf >= 0.99 * p->goal.target && mf <= 1.01 * p->goal.target,
                              "model %d seed %d: %.5f MFLOPs for %.5f", mi, seed, mf,
                              p->goal.target);
                json_t *fit = json_object_get(info, "es_fitted");
                ck_assert(json_is_true(json_object_get(fit, "in_band")));
                ck_assert(json_number_value(json_object_get(fit, "mflops")) == mf);
                json_decref(info);
            }
        }
        p->goal.target = 0.5 * least;
        json_t *info = json_object();
        ck_assert_int_eq(prune_derive_widths(p, w, info, &eb), ERR_INVALID);
        ck_assert_msg(strstr(eb.msg, "prune.target_ratio") != NULL, "%s", eb.msg);
        ck_assert_msg(strstr(eb.msg, "nearest reachable") != NULL, "%s", eb.msg);
        json_decref(info);
        free(w);
        chains_deinit(&p->ch);
        prune_space_deinit(&p->sp);
        free(p);
    }
}
END_TEST

/* A target inside the space's span whose band no network reaches: the
 * job fails naming the field and the nearest network's MFLOPs (0.003896),
 * before any retraining (no architecture, no weights, no retrain metric);
 * the uniform rule at once, DMCP after its search. */
START_TEST(unreachable_band_fails_before_training)
{
    const char *prune[2] = {"{\"method\":\"uniform\",\"target_ratio\":0.4}",
                            "{\"method\":\"dmcp\",\"target_ratio\":0.4,\"warmup_epochs\":1,"
                            "\"search_epochs\":1,\"search\":{\"batch_size\":32},"
                            "\"calib_batches\":1}"};
    for (int k = 0; k < 2; k++) {
        job_spec s;
        prune_spec_model(&s, TINY_MODEL, prune[k], "");
        ck_assert(fabs(s.mflops - 0.012972) < 1e-9);
        tu_job run;
        tu_job_begin(&run, "prune");
        errbuf eb;
        ck_assert_int_eq(tu_job_refused(&run, &s, &eb), ERR_INVALID);
        ck_assert_msg(strstr(eb.msg, "prune.target_ratio") != NULL, "%s", eb.msg);
        ck_assert_msg(strstr(eb.msg, "has 0.003896 MFLOPs") != NULL, "%s", eb.msg);
        char path[1100];
        snprintf(path, sizeof path, "%s/architecture.json", run.dir);
        ck_assert(access(path, F_OK) != 0);
        snprintf(path, sizeof path, "%s/model.safetensors", run.dir);
        ck_assert(access(path, F_OK) != 0);
        ck_assert(!tu_has_metric(run.cap, "retrain/train/loss"));
        ck_assert(k == 0 || tu_has_metric(run.cap, "search/arch/loss"));
        tu_job_end(&run);
        jobspec_free(&s);
    }
}
END_TEST

Suite *suite_prune(void)
{
    Suite *s = suite_create("prune");
    tu_case_add(s, "engine", 60, NULL, NULL,
                TU_TESTS(subnet_equals_masked_supernet_resnet, subnet_equals_masked_supernet_mbv2,
                         subnet_equals_masked_supernet_mbv3_effnet,
                         arch_gradient_matches_finite_differences,
                         sampled_architectures_build_run_save_load,
                         es_derivation_lands_in_the_band));
    tu_case_add(s, "job", 240, NULL, NULL,
                TU_TESTS(dmcp_job_end_to_end, uniform_job_end_to_end,
                         unreachable_band_fails_before_training,
                         cancelled_search_resumes_to_the_same_result, finetune_and_ds_derivation,
                         mbv2_dmcp_job));
    return s;
}
