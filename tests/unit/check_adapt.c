/* check_adapt.c - DNA's search space, elastic operations and the adapt job.
 *
 * The window space's real MACs equal the model config's and the built
 * net's; the expected MACs over width and depth chains equal a Monte Carlo
 * estimate over direct samples and their gradient with respect to alpha
 * and beta matches finite differences; a sub-net with fewer blocks, sliced
 * from the supernet (names mapped), computes what the supernet computes
 * with the dropped blocks' join scale at 0 and the dropped channels'
 * scale at 0; inserting channels or blocks leaves the supernet's outputs
 * unchanged (eval and training mode, max and expected forward), removing
 * them leaves every sub-net of the remaining space unchanged, and the FLOPs
 * bookkeeping is right after every event; the optimizer state follows the
 * tensors; the inherited existing network is what the supernet computes at
 * full width. Then adapt jobs end to end (shrink and grow targets, the
 * three baselines), with their architectures built, saved, loaded and
 * evaluated, and a cancelled search resuming to the same result.
 */
#include "common/adaptspace.h"
#include "common/jobspec.h"
#include "common/xalloc.h"
#include "tests/unit/jobcapture.h"
#include "tests/unit/testutil.h"
#include "worker/jobs/adapt.h"
#include "worker/jobs/checkpoint.h"
#include "worker/jobs/job.h"
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

Suite *suite_adapt(void);

#define RESNET_SMALL                                                                               \
    "{\"arch\":\"resnet_cifar\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"             \
    "\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[8,6]},{\"width\":16,\"mids\":[12,16,10]}]}"
/* torchvision's ImageNet form with Bottlenecks: two inner widths per block */
#define RESNET_BN_SMALL                                                                            \
    "{\"arch\":\"resnet\",\"image_size\":16,\"in_channels\":3,\"num_classes\":5,"                  \
    "\"block\":\"bottleneck\",\"stem\":8,\"stages\":[{\"width\":16,\"mids\":[4,6],"                \
    "\"mids2\":[6,4]},{\"width\":24,\"mids\":[8,6],\"mids2\":[6,8]}]}"
#define MBV2_SMALL                                                                                 \
    "{\"arch\":\"mobilenetv2\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"              \
    "\"stem\":8,\"blocks\":[{\"hidden\":8,\"out\":8,\"stride\":1},"                                \
    "{\"hidden\":24,\"out\":12,\"stride\":2},{\"hidden\":36,\"out\":12,\"stride\":1},"             \
    "{\"hidden\":30,\"out\":12,\"stride\":1},{\"hidden\":36,\"out\":16,\"stride\":1},"             \
    "{\"hidden\":48,\"out\":16,\"stride\":1}],\"last\":20}"

static const adaptspace_window WINDOW = {0.25, 1.5, 0.1};

enum { B = 6, CLASSES = 5 };

/* A window supernet around cfg with random weights, BN statistics, alpha and beta. */
static adapt_state *state_of(const char *cfg, uint64_t seed)
{
    model_cfg c;
    tu_model_cfg(&c, cfg);
    adapt_space as;
    errbuf eb;
    ck_assert_msg(adaptspace_init(&as, &c, &WINDOW, &eb) == 0, "%s", eb.msg);
    adapt_state *st = adapt_state_new(&as, B, seed, &eb);
    ck_assert_msg(st != NULL, "%s", eb.msg);
    rng r;
    rng_seed(&r, seed);
    net *m = &st->super;
    for (int i = 0; i < m->n_tensors; i++) {
        const net_tensor *t = &m->tensors[i];
        if (t->kind == NET_COUNTER)
            continue;
        float *v = net_tensor_data(m, i);
        if (t->kind == NET_BUFFER)
            for (size_t k = 0; k < t->n; k++)
                v[k] = t->init == NET_INIT_ONE ? 0.5f + rng_uniform(&r) : 0.3f * rng_normal(&r);
        else if (t->kind == NET_PARAM && t->ndim == 1)
            for (size_t k = 0; k < t->n; k++)
                v[k] += 0.2f * rng_normal(&r);
    }
    for (size_t k = 0; k < m->n_params; k++)
        m->opt_m[k] = rng_normal(&r);
    for (size_t k = 0; k < st->ch.n_alpha; k++) {
        st->ch.alpha[k] = 1.5f * rng_normal(&r);
        st->ch.mom[k] = rng_normal(&r);
    }
    for (int b = 0; b < st->dc.n; b++)
        if (adaptspace_keepable(&st->as, b)) {
            st->dc.beta[b] = 1.5f * rng_normal(&r);
            st->dc.mom[b] = rng_normal(&r);
        }
    adapt_update(st);
    return st;
}

static float *input_of(const adapt_state *st, uint64_t seed)
{
    const model_cfg *c = &st->as.sp.super;
    size_t n = (size_t)B * c->image_size * c->image_size * c->in_channels;
    float *x = xmallocarray(n, sizeof(float));
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = rng_normal(&r);
    return x;
}

/* Logits of the supernet: eval/training mode, max (scaling off) or
 * expected (scaling on) forward. */
static void logits(adapt_state *st, const float *x, int training, int expected, float *out)
{
    net_set_training(&st->super, training);
    adapt_set_scaling(st, expected);
    float save = st->super.bn_momentum;
    st->super.bn_momentum = 0.0f; /* training mode must not move the running statistics */
    net_forward(&st->super, x, B);
    st->super.bn_momentum = save;
    memcpy(out, net_out(&st->super), (size_t)B * CLASSES * sizeof(float));
    adapt_set_scaling(st, 0);
    net_set_training(&st->super, 0);
}

static double max_diff(const float *a, const float *b, size_t n, double *scale)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        s = fmax(s, fabs((double)a[i]));
    }
    *scale = s;
    return d;
}

/* ---- the space ------------------------------------------------------------------ */

START_TEST(window_space_counts)
{
    const char *cfgs[] = {RESNET_SMALL, MBV2_SMALL,
                          "{\"arch\":\"resnet_cifar\",\"depth\":20,\"widths\":[16,32,64],"
                          "\"image_size\":28,\"in_channels\":1,\"num_classes\":10}",
                          "{\"arch\":\"mobilenetv2\",\"width_mult\":0.5,\"image_size\":28,"
                          "\"in_channels\":1,\"num_classes\":10}"};
    for (int ci = 0; ci < 4; ci++) {
        model_cfg c;
        tu_model_cfg(&c, cfgs[ci]);
        adapt_space as;
        errbuf eb;
        ck_assert(adaptspace_init(&as, &c, &WINDOW, &eb) == 0);
        /* every unit's grid tiles its window around the nominal width */
        for (int u = 0; u < as.sp.n_units; u++) {
            const prunespace_unit *x = &as.sp.units[u];
            int c0 = as.nominal[u];
            ck_assert_int_eq(x->c_min + x->K * x->group, x->channels);
            ck_assert_int_ge(x->group, 1);
            ck_assert_int_eq(x->group, c0 >= 15 ? (int)lround(0.1 * c0) : x->group);
            ck_assert_int_le(x->c_min, (int)ceil(0.25 * c0 + x->group));
            ck_assert_int_ge(x->channels, c0);
        }
        /* the nominal widths at the existing depths are the existing network */
        model_cfg back;
        adaptspace_cfg(&as, as.nominal, as.depth0, &back);
        ck_assert(modelcfg_macs(&back) == modelcfg_macs(&c));
        ck_assert_int_eq(modelcfg_params(&back), modelcfg_params(&c));
        /* real MACs of random widths and depths: space, config and net agree */
        rng r;
        rng_seed(&r, 5 + (uint64_t)ci);
        int *w = xcalloc((size_t)as.sp.n_units, sizeof(int)), d[ADAPTSPACE_MAX_STAGES];
        for (int rep = 0; rep < 4; rep++) {
            chains_random_widths(&as.sp, &r, w);
            for (int s = 0; s < as.n_stages; s++)
                d[s] = 1 + (int)rng_below(&r, (uint32_t)as.depth[s]);
            model_cfg sc;
            adaptspace_cfg(&as, w, d, &sc);
            double m = adaptspace_macs(&as, w, d);
            ck_assert_msg(m == modelcfg_macs(&sc), "cfg %d: %f vs %f", ci, m, modelcfg_macs(&sc));
            if (ci < 2) {
                net n;
                net_init(&n);
                ck_assert(model_build(&n, &sc, 1, 0, NULL, &eb) == 0);
                ck_assert(net_macs(&n) == m);
                net_deinit(&n);
            }
        }
        free(w);
        adaptspace_deinit(&as);
    }
}
END_TEST

START_TEST(stages_and_blocks)
{
    model_cfg c;
    tu_model_cfg(&c, MBV2_SMALL);
    int first[ADAPTSPACE_MAX_STAGES], depth[ADAPTSPACE_MAX_STAGES];
    ck_assert_int_eq(adaptspace_stages(&c, first, depth), 3);
    ck_assert_int_eq(first[1], 1);
    ck_assert_int_eq(depth[1], 3);
    ck_assert_int_eq(first[2], 4);
    ck_assert_int_eq(depth[2], 2);
    tu_model_cfg(&c, RESNET_SMALL);
    ck_assert_int_eq(adaptspace_stages(&c, first, depth), 2);
    ck_assert_int_eq(first[1], 2);
    ck_assert_int_eq(depth[1], 3);
    /* names of a 1-block-shorter MobileNetV2 stage 1 map into the full net */
    adapt_state *st = state_of(MBV2_SMALL, 3);
    adaptspace_blockmap m;
    int d[3] = {1, 2, 2};
    adaptspace_blockmap_subnet(&m, &st->as, d);
    char out[64];
    ck_assert(adaptspace_map_name(&m, "features.4.conv.0.0.weight", out, sizeof out));
    ck_assert_str_eq(out, "features.5.conv.0.0.weight");
    ck_assert(adaptspace_map_name(&m, "features.6.0.weight", out, sizeof out));
    ck_assert_str_eq(out, "features.7.0.weight");
    ck_assert(adaptspace_map_name(&m, "features.0.1.bias", out, sizeof out));
    ck_assert_str_eq(out, "features.0.1.bias");
    ck_assert(adaptspace_map_name(&m, "classifier.1.weight", out, sizeof out));
    ck_assert_str_eq(out, "classifier.1.weight");
    adapt_state_free(st);
}
END_TEST

/* Monte Carlo expectation of the real MACs of independent draws from the
 * width and depth chains (no structure fix, so every draw is one of the
 * chains' outcomes). */
static double mc_macs(const adapt_state *st, int n, uint64_t seed)
{
    const adapt_space *as = &st->as;
    int *w = xcalloc((size_t)as->sp.n_units, sizeof(int)), d[ADAPTSPACE_MAX_STAGES];
    rng r;
    rng_seed(&r, seed);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        for (int u = 0; u < as->sp.n_units; u++) {
            const prunespace_unit *x = &as->sp.units[u];
            int k = 0;
            while (k < x->K && (double)rng_uniform(&r) <=
                                   1.0 / (1.0 + exp(-(double)st->ch.alpha[st->ch.a_off[u] + k])))
                k++;
            w[u] = x->c_min + k * x->group;
        }
        for (int s = 0; s < as->n_stages; s++) {
            int j = 1;
            while (j < as->depth[s] &&
                   (double)rng_uniform(&r) <=
                       1.0 / (1.0 + exp(-(double)st->dc.beta[as->first[s] + j])))
                j++;
            d[s] = j;
        }
        sum += adaptspace_macs(as, w, d);
    }
    free(w);
    return sum / n;
}

static void check_expected_macs(const adapt_state *st, const char *what)
{
    double e = adapt_expected_macs(st, NULL, NULL), mc = mc_macs(st, 20000, 77);
    ck_assert_msg(fabs(e - mc) <= 0.01 * mc, "%s: expected MACs %.1f, Monte Carlo %.1f", what, e,
                  mc);
}

START_TEST(expected_macs_and_gradient)
{
    const char *cfgs[3] = {RESNET_SMALL, MBV2_SMALL, RESNET_BN_SMALL};
    for (int ci = 0; ci < 3; ci++) {
        adapt_state *st = state_of(cfgs[ci], 11 + (uint64_t)ci);
        check_expected_macs(st, cfgs[ci]);
        /* all chains saturated: the supernet's MACs */
        adapt_state *full = state_of(cfgs[ci], 1);
        for (size_t k = 0; k < full->ch.n_alpha; k++)
            full->ch.alpha[k] = 40.0f;
        for (int b = 0; b < full->dc.n; b++)
            full->dc.beta[b] = adaptspace_keepable(&full->as, b) ? 40.0f : 0.0f;
        adapt_update(full);
        double fm = adapt_expected_macs(full, NULL, NULL);
        ck_assert(fabs(fm - net_macs(&full->super)) < 1e-6 * fm);
        adapt_state_free(full);
        /* d(MACs)/d(alpha, beta) against central differences */
        adapt_zero_arch_grad(st);
        adapt_arch_backward(st, 1.0);
        const float h = 1e-2f;
        double worst = 0, gmax = 0;
        for (size_t k = 0; k < st->ch.n_alpha + (size_t)st->dc.n; k++) {
            float *v = k < st->ch.n_alpha ? &st->ch.alpha[k] : &st->dc.beta[k - st->ch.n_alpha];
            float g = k < st->ch.n_alpha ? st->ch.dalpha[k] : st->dc.dbeta[k - st->ch.n_alpha];
            if (k >= st->ch.n_alpha && !adaptspace_keepable(&st->as, (int)(k - st->ch.n_alpha))) {
                ck_assert(g == 0.0f);
                continue;
            }
            float v0 = *v;
            *v = v0 + h;
            adapt_update(st);
            double p = adapt_expected_macs(st, NULL, NULL);
            *v = v0 - h;
            adapt_update(st);
            double m = adapt_expected_macs(st, NULL, NULL);
            *v = v0;
            adapt_update(st);
            double fd = (p - m) / (2.0 * (double)h);
            worst = fmax(worst, fabs(fd - (double)g));
            gmax = fmax(gmax, fabs(fd));
        }
        ck_assert_msg(gmax > 0 && worst <= 1e-3 * gmax, "%s: gradient off by %g of %g", cfgs[ci],
                      worst, gmax);
        adapt_state_free(st);
    }
}
END_TEST

/* ---- sub-nets ------------------------------------------------------------------------- */

START_TEST(subnet_equals_scaled_supernet)
{
    const char *cfgs[3] = {RESNET_SMALL, MBV2_SMALL, RESNET_BN_SMALL};
    for (int ci = 0; ci < 3; ci++) {
        adapt_state *st = state_of(cfgs[ci], 21 + (uint64_t)ci);
        float *x = input_of(st, 4);
        rng r;
        rng_seed(&r, 9);
        int *w = xcalloc((size_t)st->as.sp.n_units, sizeof(int)), d[ADAPTSPACE_MAX_STAGES];
        float a[B * CLASSES];
        for (int rep = 0; rep < 3; rep++) {
            adapt_random_arch(st, &r, w, d);
            /* the supernet with 0/1 channel scales and 0/1 block scales */
            net_set_training(&st->super, 0);
            adapt_set_scaling(st, 1);
            for (int u = 0; u < st->as.sp.n_units; u++)
                for (int c = 0; c < st->as.sp.units[u].channels; c++)
                    st->ch.scale[st->ch.s_off[u] + (size_t)c] = c < w[u] ? 1.0f : 0.0f;
            for (int s = 0; s < st->as.n_stages; s++)
                for (int j = 0; j < st->as.depth[s]; j++)
                    st->dc.qf[st->as.first[s] + j] = j < d[s] ? 1.0f : 0.0f;
            net_forward(&st->super, x, B);
            memcpy(a, net_out(&st->super), sizeof a);
            adapt_set_scaling(st, 0);
            net sub;
            net_init(&sub);
            adaptspace_blockmap map;
            errbuf eb;
            ck_assert_msg(adapt_subnet(st, w, d, B, 0, &sub, &map, &eb) == 0, "%s", eb.msg);
            net_set_training(&sub, 0);
            net_forward(&sub, x, B);
            double scale, diff = max_diff(a, net_out(&sub), B * CLASSES, &scale);
            ck_assert_msg(diff <= 1e-4 * scale, "cfg %d rep %d: %g of %g", ci, rep, diff, scale);
            net_deinit(&sub);
        }
        free(w);
        free(x);
        adapt_state_free(st);
    }
}
END_TEST

/* ---- elastic events --------------------------------------------------------------- */

/* The supernet's logits before and after a change that must keep them. */
static void check_same_function(adapt_state *a, adapt_state *b, const char *what)
{
    float *x = input_of(a, 8);
    float la[B * CLASSES], lb[B * CLASSES];
    for (int training = 0; training < 2; training++)
        for (int expected = 0; expected < 2; expected++) {
            logits(a, x, training, expected, la);
            logits(b, x, training, expected, lb);
            double scale, diff = max_diff(la, lb, B * CLASSES, &scale);
            ck_assert_msg(
                diff <= 1e-5 * scale + 1e-6, "%s (%s, %s forward): logits moved by %g (max %g)",
                what, training ? "training" : "eval", expected ? "expected" : "max", diff, scale);
        }
    free(x);
}

/* The FLOPs bookkeeping of a state: the space, the config and the net agree,
 * the chains have the space's sizes, and the expected MACs are right. */
static void check_books(const adapt_state *st, const char *what)
{
    int *w = xcalloc((size_t)st->as.sp.n_units, sizeof(int));
    adaptspace_full_widths(&st->as, w);
    double m = adaptspace_macs(&st->as, w, NULL);
    ck_assert_msg(m == modelcfg_macs(&st->as.sp.super) && m == net_macs(&st->super),
                  "%s: MACs %f / %f / %f", what, m, modelcfg_macs(&st->as.sp.super),
                  net_macs(&st->super));
    size_t na = 0;
    for (int u = 0; u < st->as.sp.n_units; u++)
        na += (size_t)st->as.sp.units[u].K;
    ck_assert_uint_eq(na, st->ch.n_alpha);
    ck_assert_int_eq(st->dc.n, st->as.n_blocks);
    ck_assert_int_eq(st->as.n_blocks, prunespace_n_blocks(&st->as.sp));
    free(w);
    check_expected_macs(st, what);
}

/* Opt_m of a tensor `name`, element i, in st. */
static float mom_of(const adapt_state *st, const char *name, size_t i)
{
    int t = net_tensor_find(&st->super, name);
    ck_assert_msg(t >= 0, "no tensor %s", name);
    return st->super.opt_m[st->super.tensors[t].off + i];
}

START_TEST(width_expand_keeps_function)
{
    const char *cfgs[3] = {RESNET_SMALL, MBV2_SMALL, RESNET_BN_SMALL};
    for (int ci = 0; ci < 3; ci++) {
        adapt_state *st = state_of(cfgs[ci], 31 + (uint64_t)ci);
        check_books(st, "before");
        for (int u = 0; u < st->as.sp.n_units; u++) {
            errbuf eb;
            elastic_event ev;
            adapt_state *n = elastic_width_expand(st, u, 2, 99, B, &ev, &eb);
            ck_assert_msg(n != NULL, "%s", eb.msg);
            const prunespace_unit *x = &st->as.sp.units[u], *y = &n->as.sp.units[u];
            ck_assert_int_eq(y->channels, x->channels + 2 * x->group);
            ck_assert_int_eq(y->K, x->K + 2);
            ck_assert_int_eq(ev.after[0], y->channels);
            ck_assert(fabs(ev.mflops_after - net_macs(&n->super) / 1e6) < 1e-9);
            /* alpha and its momentum follow; the new groups start at 0 */
            for (int k = 0; k < x->K; k++) {
                ck_assert(n->ch.alpha[n->ch.a_off[u] + k] == st->ch.alpha[st->ch.a_off[u] + k]);
                ck_assert(n->ch.mom[n->ch.a_off[u] + k] == st->ch.mom[st->ch.a_off[u] + k]);
            }
            ck_assert(n->ch.alpha[n->ch.a_off[u] + x->K] == 0.0f);
            ck_assert(n->ch.mom[n->ch.a_off[u] + x->K + 1] == 0.0f);
            char what[96];
            snprintf(what, sizeof what, "cfg %d: widen %s", ci, x->name);
            check_same_function(st, n, what);
            check_books(n, what);
            adapt_state_free(n);
        }
        /* the weight momentum follows: the stem conv's first filter keeps
         * its momentum, a new filter starts at 0 */
        const char *stem = ci != 1 ? "conv1.weight" : "features.0.0.weight";
        adapt_state *n = elastic_width_expand(st, st->as.sp.stem_unit, 2, 5, B, NULL, NULL);
        ck_assert(mom_of(n, stem, 0) == mom_of(st, stem, 0));
        int t = net_tensor_find(&n->super, stem);
        size_t per = n->super.tensors[t].n / (size_t)n->super.tensors[t].shape[0];
        ck_assert(mom_of(n, stem, per * (size_t)st->as.sp.units[st->as.sp.stem_unit].channels) ==
                  0.0f);
        adapt_state_free(n);
        adapt_state_free(st);
    }
}
END_TEST

START_TEST(depth_expand_keeps_function)
{
    const char *cfgs[3] = {RESNET_SMALL, MBV2_SMALL, RESNET_BN_SMALL};
    for (int ci = 0; ci < 3; ci++) {
        adapt_state *st = state_of(cfgs[ci], 41 + (uint64_t)ci);
        for (int s = 0; s < st->as.n_stages; s++) {
            errbuf eb;
            elastic_event ev;
            adapt_state *n = elastic_depth_expand(st, s, 123, B, &ev, &eb);
            ck_assert_msg(n != NULL, "%s", eb.msg);
            ck_assert_int_eq(n->as.depth[s], st->as.depth[s] + 1);
            ck_assert_int_eq(n->as.n_stages, st->as.n_stages);
            ck_assert_int_eq(ev.before[0] + 1, ev.after[0]);
            int nb = n->as.first[s] + n->as.depth[s] - 1;
            ck_assert(n->dc.beta[nb] == 0.0f && n->dc.mom[nb] == 0.0f);
            /* the other blocks' beta and momentum follow their blocks */
            for (int t = 0; t < st->as.n_stages; t++)
                for (int j = 0; j < st->as.depth[t]; j++) {
                    int ob = st->as.first[t] + j, b = n->as.first[t] + j;
                    ck_assert(n->dc.beta[b] == st->dc.beta[ob] && n->dc.mom[b] == st->dc.mom[ob]);
                }
            char what[64];
            snprintf(what, sizeof what, "cfg %d: deepen stage %d", ci, s + 1);
            check_same_function(st, n, what);
            check_books(n, what);
            /* and again: a block appended after an appended block */
            adapt_state *n2 = elastic_depth_expand(n, s, 124, B, NULL, &eb);
            ck_assert_msg(n2 != NULL, "%s", eb.msg);
            check_same_function(st, n2, what);
            check_books(n2, what);
            adapt_state_free(n2);
            adapt_state_free(n);
        }
        adapt_state_free(st);
    }
}
END_TEST

/* Logits of the sub-net (w, d) of st. */
static void sub_logits(const adapt_state *st, const int *w, const int *d, const float *x,
                       float *out)
{
    net sub;
    net_init(&sub);
    adaptspace_blockmap map;
    errbuf eb;
    ck_assert_msg(adapt_subnet(st, w, d, B, 0, &sub, &map, &eb) == 0, "%s", eb.msg);
    net_set_training(&sub, 0);
    net_forward(&sub, x, B);
    memcpy(out, net_out(&sub), (size_t)B * CLASSES * sizeof(float));
    net_deinit(&sub);
}

/* Widths w of `from`'s units carried to the same units of `to` (the
 * same stages, `to` deeper: MobileNetV2 block names shift); units of `to`
 * without a counterpart get c_min. */
static void widths_in(const adapt_state *from, const int *w, const adapt_state *to, int *wt)
{
    adaptspace_blockmap map;
    memset(&map, 0, sizeof map);
    map.arch = from->as.sp.super.arch;
    map.n_from = from->as.n_blocks;
    map.n_to = to->as.n_blocks;
    for (int s = 0; s < from->as.n_stages; s++)
        for (int j = 0; j < from->as.depth[s]; j++)
            map.to[from->as.first[s] + j] = to->as.first[s] + j;
    for (int u = 0; u < to->as.sp.n_units; u++)
        wt[u] = to->as.sp.units[u].c_min;
    char name[PRUNESPACE_NAME_MAX];
    for (int u = 0; u < from->as.sp.n_units; u++) {
        ck_assert(adaptspace_map_name(&map, from->as.sp.units[u].name, name, sizeof name));
        int v = prunespace_unit_find(&to->as.sp, name);
        ck_assert_msg(v >= 0, "unit %s (%s) not in the deeper space", name,
                      from->as.sp.units[u].name);
        wt[v] = w[u];
    }
}

START_TEST(condense_keeps_remaining_subnets)
{
    const char *cfgs[3] = {RESNET_SMALL, MBV2_SMALL, RESNET_BN_SMALL};
    for (int ci = 0; ci < 3; ci++) {
        adapt_state *st = state_of(cfgs[ci], 51 + (uint64_t)ci);
        float *x = input_of(st, 6);
        float la[B * CLASSES], lb[B * CLASSES];
        int nu = st->as.sp.n_units;
        int *w = xcalloc((size_t)nu, sizeof(int)), d[ADAPTSPACE_MAX_STAGES];
        for (int u = 0; u < nu; u++) {
            const prunespace_unit *x0 = &st->as.sp.units[u];
            if (x0->K < 2)
                continue;
            /* the unit's chain says: first group rarely kept, the tail never */
            adapt_state *t = state_of(cfgs[ci], 51 + (uint64_t)ci);
            t->ch.alpha[t->ch.a_off[u]] = -3.0f;
            t->ch.alpha[t->ch.a_off[u] + 1] = -3.0f;
            adapt_update(t);
            errbuf eb;
            elastic_event ev;
            adapt_state *n = elastic_width_condense(t, u, 0.01, 2, 7, B, &ev, &eb);
            ck_assert_msg(n != NULL, "%s", eb.msg);
            const prunespace_unit *y = &n->as.sp.units[u];
            ck_assert_int_lt(y->channels, x0->channels);
            ck_assert_int_le(y->c_min, x0->c_min);
            ck_assert_int_ge(y->c_min, x0->group);
            ck_assert_int_eq(y->c_min + y->K * y->group, y->channels);
            /* the groups made prunable start almost surely kept */
            int front = (x0->c_min - y->c_min) / x0->group;
            for (int k = 0; k < front; k++)
                ck_assert(fabs(n->ch.P[n->ch.a_off[u] + k] - pow(0.9, k + 1)) < 1e-6);
            ck_assert(n->ch.alpha[n->ch.a_off[u] + front] == t->ch.alpha[t->ch.a_off[u]]);
            check_books(n, "width condense");
            /* every sub-net of the remaining space is unchanged */
            rng r;
            rng_seed(&r, 3);
            for (int rep = 0; rep < 2; rep++) {
                adapt_random_arch(n, &r, w, d);
                sub_logits(t, w, d, x, la);
                sub_logits(n, w, d, x, lb);
                double scale, diff = max_diff(la, lb, B * CLASSES, &scale);
                ck_assert_msg(diff <= 1e-5 * scale, "condense %s: %g", x0->name, diff);
            }
            adapt_state_free(n);
            adapt_state_free(t);
        }
        /* depth: the last block of every stage with one to spare goes */
        for (int s = 0; s < st->as.n_stages; s++) {
            if (st->as.depth[s] < 2)
                continue;
            adapt_state *t = state_of(cfgs[ci], 61);
            t->dc.beta[t->as.first[s] + t->as.depth[s] - 1] = -8.0f;
            adapt_update(t);
            errbuf eb;
            adapt_state *n = elastic_depth_condense(t, s, 0.01, 7, B, NULL, &eb);
            ck_assert_msg(n != NULL, "%s", eb.msg);
            ck_assert_int_eq(n->as.depth[s], t->as.depth[s] - 1);
            check_books(n, "depth condense");
            rng r;
            rng_seed(&r, 4);
            for (int rep = 0; rep < 2; rep++) {
                adapt_random_arch(n, &r, w, d);
                int *wt = xcalloc((size_t)t->as.sp.n_units, sizeof(int));
                widths_in(n, w, t, wt);
                sub_logits(t, wt, d, x, la);
                sub_logits(n, w, d, x, lb);
                double scale, diff = max_diff(la, lb, B * CLASSES, &scale);
                ck_assert_msg(diff <= 1e-5 * scale, "depth condense stage %d: %g", s + 1, diff);
                free(wt);
            }
            adapt_state_free(n);
            adapt_state_free(t);
        }
        free(w);
        free(x);
        adapt_state_free(st);
    }
}
END_TEST

/* The rules through elastic_check: a unit whose top group is almost surely
 * kept widens and one whose first prunable group is almost surely dropped
 * condenses, each only at the second consecutive check (patience 2); the
 * events are logged in order, their FLOPs chain from the supernet before to
 * the supernet after, and the next check changes nothing. */
START_TEST(elastic_rules_fire_after_patience)
{
    adapt_state *st = state_of(RESNET_SMALL, 71);
    int nu = st->as.sp.n_units, up = -1, down = -1;
    for (int u = 0; u < nu && down < 0; u++) {
        if (st->as.sp.units[u].K < 2)
            continue;
        if (up < 0)
            up = u;
        else
            down = u;
    }
    ck_assert(up >= 0 && down >= 0);
    for (size_t k = st->ch.a_off[up]; k < st->ch.a_off[up + 1]; k++)
        st->ch.alpha[k] = 8.0f;
    for (size_t k = st->ch.a_off[down]; k < st->ch.a_off[down + 1]; k++)
        st->ch.alpha[k] = -8.0f;
    for (int b = 0; b < st->dc.n; b++) /* every block kept, no depth rule can fire */
        st->dc.beta[b] = 8.0f;
    adapt_update(st);
    adapt_elastic cfg = {.enabled = 1,
                         .patience = 2,
                         .expand_p = 0.9,
                         .condense_p = 0.1,
                         .drop_p = 0.05,
                         .expand_groups = 2,
                         .condense_groups = 1,
                         .freeze = 0.25,
                         .max_width = 3.0,
                         .max_depth = 1.0};
    elastic e;
    elastic_init(&e, &cfg, 9, nu);
    char up_name[PRUNESPACE_NAME_MAX], down_name[PRUNESPACE_NAME_MAX];
    snprintf(up_name, sizeof up_name, "%s", st->as.sp.units[up].name);
    snprintf(down_name, sizeof down_name, "%s", st->as.sp.units[down].name);
    int wide = st->as.sp.units[up].channels + 2 * st->as.sp.units[up].group;
    int narrow = st->as.sp.units[down].channels;
    double m0 = net_macs(&st->super) / 1e6;
    errbuf eb;
    ck_assert_int_eq(elastic_check(&e, &st, 10, B, &eb), 0);
    ck_assert_int_eq(e.n_ev, 0);
    int n = elastic_check(&e, &st, 20, B, &eb);
    ck_assert_msg(n == 2, "%d events (%s)", n, n < 0 ? eb.msg : "");
    ck_assert_int_eq(e.ev[0].kind, EL_WIDTH_EXPAND);
    ck_assert_str_eq(e.ev[0].what, up_name);
    ck_assert_int_eq(e.ev[1].kind, EL_WIDTH_CONDENSE);
    ck_assert_str_eq(e.ev[1].what, down_name);
    ck_assert_int_eq(e.ev[0].step, 20);
    ck_assert_int_eq(st->as.sp.units[up].channels, wide);
    ck_assert_int_lt(st->as.sp.units[down].channels, narrow);
    ck_assert(fabs(e.ev[0].mflops_before - m0) < 1e-9);
    ck_assert(fabs(e.ev[1].mflops_before - e.ev[0].mflops_after) < 1e-9);
    ck_assert(fabs(e.ev[1].mflops_after - net_macs(&st->super) / 1e6) < 1e-9);
    ck_assert_int_eq(e.counts[EL_WIDTH_EXPAND], 1);
    ck_assert_int_eq(e.counts[EL_WIDTH_CONDENSE], 1);
    check_books(st, "after the rules");
    ck_assert_int_eq(elastic_check(&e, &st, 30, B, &eb), 0);
    ck_assert_int_eq(e.n_ev, 2);
    elastic_deinit(&e);
    adapt_state_free(st);
}
END_TEST

/* A condense that would put the target's band out of reach is not made:
 * with the floor just above the condensed supernet, the unit that would
 * condense keeps its width, while the expand still happens. */
START_TEST(condense_keeps_the_target_reachable)
{
    adapt_state *st = state_of(RESNET_SMALL, 71);
    int nu = st->as.sp.n_units, up = -1, down = -1;
    for (int u = 0; u < nu && down < 0; u++) {
        if (st->as.sp.units[u].K < 2)
            continue;
        if (up < 0)
            up = u;
        else
            down = u;
    }
    ck_assert(up >= 0 && down >= 0);
    for (size_t k = st->ch.a_off[up]; k < st->ch.a_off[up + 1]; k++)
        st->ch.alpha[k] = 8.0f;
    for (size_t k = st->ch.a_off[down]; k < st->ch.a_off[down + 1]; k++)
        st->ch.alpha[k] = -8.0f;
    for (int b = 0; b < st->dc.n; b++)
        st->dc.beta[b] = 8.0f;
    adapt_update(st);
    adapt_elastic cfg = {.enabled = 1,
                         .patience = 1,
                         .expand_p = 0.9,
                         .condense_p = 0.1,
                         .drop_p = 0.05,
                         .expand_groups = 2,
                         .condense_groups = 1,
                         .freeze = 0.25,
                         .max_width = 3.0,
                         .max_depth = 1.0};
    elastic e;
    elastic_init(&e, &cfg, 9, nu);
    /* the floor: the supernet as it is now, so any condense goes below it */
    e.min_mflops = net_macs(&st->super) / 1e6 + 1e-9;
    int narrow = st->as.sp.units[down].channels;
    errbuf eb;
    int n = elastic_check(&e, &st, 10, B, &eb);
    ck_assert_msg(n == 1, "%d events (%s)", n, n < 0 ? eb.msg : "");
    ck_assert_int_eq(e.ev[0].kind, EL_WIDTH_EXPAND);
    ck_assert_int_eq(e.counts[EL_WIDTH_CONDENSE], 0);
    ck_assert_int_eq(st->as.sp.units[down].channels, narrow);
    ck_assert(net_macs(&st->super) / 1e6 >= e.min_mflops);
    check_books(st, "after a refused condense");
    elastic_deinit(&e);
    adapt_state_free(st);
}
END_TEST

START_TEST(inherited_network_is_the_full_supernet)
{
    const char *cfgs[3] = {RESNET_SMALL, MBV2_SMALL, RESNET_BN_SMALL};
    for (int ci = 0; ci < 3; ci++) {
        model_cfg c;
        tu_model_cfg(&c, cfgs[ci]);
        net orig;
        net_init(&orig);
        errbuf eb;
        ck_assert(model_build(&orig, &c, B, 17, NULL, &eb) == 0);
        adapt_state *st = state_of(cfgs[ci], 71);
        for (int i = 0; i < orig.n_tensors; i++)
            if (orig.tensors[i].kind == NET_BUFFER) {
                float *v = net_tensor_data(&orig, i);
                for (size_t k = 0; k < orig.tensors[i].n; k++)
                    v[k] = orig.tensors[i].init == NET_INIT_ONE ? 1.5f : 0.1f;
            }
        adapt_inherit(st, &orig);
        float *x = input_of(st, 2);
        float la[B * CLASSES];
        for (int training = 0; training < 2; training++) {
            net_set_training(&orig, training);
            orig.bn_momentum = 0.0f;
            net_forward(&orig, x, B);
            logits(st, x, training, 0, la);
            double scale, diff = max_diff(la, net_out(&orig), B * CLASSES, &scale);
            ck_assert_msg(diff <= 1e-5 * scale, "cfg %d: supernet %g from the network", ci, diff);
        }
        free(x);
        adapt_state_free(st);
        net_deinit(&orig);
    }
}
END_TEST

/* ---- the job -------------------------------------------------------------------- */

#define RESNET_JOB                                                                                 \
    "{\"arch\":\"resnet_cifar\",\"image_size\":12,\"in_channels\":1,\"num_classes\":4,"            \
    "\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[8,8]},{\"width\":16,\"mids\":[16,16]}]}"
#define MBV2_JOB                                                                                   \
    "{\"arch\":\"mobilenetv2\",\"image_size\":12,\"in_channels\":1,\"num_classes\":4,"             \
    "\"stem\":8,\"blocks\":[{\"hidden\":8,\"out\":8,\"stride\":1},"                                \
    "{\"hidden\":24,\"out\":12,\"stride\":2},{\"hidden\":36,\"out\":12,\"stride\":1},"             \
    "{\"hidden\":36,\"out\":16,\"stride\":2},{\"hidden\":48,\"out\":16,\"stride\":1}],"            \
    "\"last\":24}"
/* MobileNetV3 with squeeze-excitation and EfficientNet (its own stages: names
 * features.{stage}.{j}) */
#define MBV3_JOB                                                                                   \
    "{\"arch\":\"mobilenetv3\",\"image_size\":12,\"in_channels\":1,\"num_classes\":4,"             \
    "\"stem\":8,\"blocks\":[{\"hidden\":8,\"out\":8,\"se\":8},"                                    \
    "{\"hidden\":24,\"out\":12,\"stride\":2,\"kernel\":5,\"act\":\"hswish\",\"se\":8},"            \
    "{\"hidden\":36,\"out\":12,\"act\":\"hswish\",\"se\":16},"                                     \
    "{\"hidden\":36,\"out\":12,\"act\":\"hswish\"}],\"last\":24,\"head_width\":16}"
#define EFFNET_JOB                                                                                 \
    "{\"arch\":\"efficientnet\",\"image_size\":12,\"in_channels\":1,\"num_classes\":4,"            \
    "\"stem\":8,\"blocks\":[{\"hidden\":8,\"out\":8,\"se\":2,\"stage\":0},"                        \
    "{\"hidden\":24,\"out\":12,\"stride\":2,\"se\":2,\"stage\":1},"                                \
    "{\"hidden\":36,\"out\":12,\"se\":3,\"kernel\":5,\"stage\":1},"                                \
    "{\"hidden\":36,\"out\":12,\"se\":3,\"stage\":1}],\"last\":24}"
/* A search that changes its space within a few steps, for a target ratio. */
static const char *dna_fast(const char *target)
{
    static char buf[512];
    snprintf(buf, sizeof buf,
             "{\"target_ratio\":%s,\"warmup_epochs\":1,\"search_epochs\":3,"
             "\"search\":{\"batch_size\":32},\"calib_batches\":2,\"arch\":{\"lr\":20,"
             "\"init\":\"existing\"},\"elastic\":{\"check_every\":2,\"settle_steps\":2}}",
             target);
    return buf;
}

/* An adapt job of seed `seed` on 4-class synthetic 12x12 images: 8 steps per epoch. */
static void adapt_spec_seed(job_spec *s, int seed, const char *model, const char *adapt,
                            const char *extra)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"name\":\"a\",\"type\":\"adapt\",\"seed\":%d,%s\"model\":%s,"
             "\"data\":{\"dataset\":\"synthetic\",\"synthetic\":{\"train\":256,\"test\":128,"
             "\"classes\":4,\"channels\":1,\"size\":12}},"
             "\"optim\":{\"lr\":0.05,\"batch_size\":32,\"epochs\":2},"
             "\"checkpoint\":{\"keep_last\":50},\"adapt\":%s}",
             seed, extra, model, adapt);
    json_t *j = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(j);
    field_errors fe;
    char msg[1024];
    int rc = jobspec_parse(s, NULL, j, &fe);
    fe_format(&fe, msg, sizeof msg);
    ck_assert_msg(rc == 0, "%s", msg);
    json_decref(j);
}

static void adapt_spec_of(job_spec *s, const char *model, const char *adapt, const char *extra)
{
    adapt_spec_seed(s, 2, model, adapt, extra);
}

/* A DNA job's search outputs: the event log in report, elastic.json, the
 * log lines and the metrics agree. Returns the number of events. */
static int check_events(const char *dir, const tu_capture *cap, const job_result *res)
{
    json_t *rep = tu_load_json(dir, "report.json"), *el = tu_load_json(dir, "elastic.json");
    json_t *rel = json_object_get(rep, "elastic");
    ck_assert(json_equal(rel, el));
    json_t *events = json_object_get(el, "events");
    int n = (int)json_array_size(events);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(el, "counts"), "total")),
                     n);
    ck_assert_int_eq(json_integer_value(json_object_get(res->summary, "elastic_events")), n);
    ck_assert_int_eq(cap->elastic_lines, n);
    if (n > 0)
        ck_assert(tu_last_metric(cap, "search/elastic/events") == n);
    /* every event's FLOPs follow from the one before */
    double prev = json_number_value(json_object_get(el, "supernet_mflops_initial"));
    for (int i = 0; i < n; i++) {
        json_t *ev = json_array_get(events, (size_t)i);
        ck_assert(fabs(json_number_value(json_object_get(ev, "supernet_mflops_before")) - prev) <
                  1e-9);
        prev = json_number_value(json_object_get(ev, "supernet_mflops_after"));
    }
    ck_assert(fabs(json_number_value(json_object_get(el, "supernet_mflops_final")) - prev) < 1e-9);
    ck_assert(json_array_size(json_object_get(rep, "stages")) > 0);
    ck_assert(json_array_size(json_object_get(rep, "units")) > 0);
    json_decref(rep);
    json_decref(el);
    return n;
}

static void dna_job(const char *model, int seed, const char *target, int want_events)
{
    job_spec s;
    adapt_spec_seed(&s, seed, model, dna_fast(target), "");
    tu_job run;
    tu_job_begin(&run, "adapt");
    ck_assert_int_eq(tu_job_run(&run, &s, NULL, NULL), 0);
    double mf = tu_check_found_net(&s, run.dir, &run.res, 0);
    ck_assert(atof(target) < 1 ? mf < s.mflops : mf > s.mflops);
    int n = check_events(run.dir, run.cap, &run.res);
    ck_assert_msg(n >= want_events, "%d elastic events", n);
    ck_assert_int_eq(run.res.n_artifacts, 5);
    const char *want[] = {"warmup/train/loss",         "search/expected_mflops",
                          "search/arch/loss",          "search/expected_depth/stage1",
                          "search/test/top1_expected", "retrain/test/top1"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(tu_last_metric(run.cap, want[i]) != -1, "no metric %s", want[i]);
    /* the target and its band, as the summary states the target */
    double t = json_number_value(json_object_get(run.res.summary, "target_mflops"));
    ck_assert(t > 0);
    ck_assert_double_eq_tol(tu_last_metric(run.cap, "target/mflops"), t, 1e-9 * t);
    ck_assert_double_eq_tol(tu_last_metric(run.cap, "target/band_low_mflops"), 0.99 * t, 1e-9 * t);
    ck_assert_double_eq_tol(tu_last_metric(run.cap, "target/band_high_mflops"), 1.01 * t, 1e-9 * t);
    double dead = tu_last_metric(run.cap, "target/deadband_low_mflops");
    ck_assert(dead > 0.5 * t && dead < t);
    tu_job_end(&run);
    jobspec_free(&s);
}

/* Seeds 2 and 5: on another machine's rounding both once derived networks
 * 2.1 % and 1.2 % under the target. */
START_TEST(dna_shrink_job)
{
    dna_job(RESNET_JOB, 2, "0.4", 1);
    dna_job(RESNET_JOB, 5, "0.4", 0);
}
END_TEST

START_TEST(dna_grow_job)
{
    dna_job(RESNET_JOB, 2, "1.3", 1);
    dna_job(MBV2_JOB, 2, "1.3", 0);
}
END_TEST

/* DNA on MobileNetV3 and EfficientNet, shrinking and growing (SE widths tied,
 * EfficientNet's stage-local names when blocks are appended or dropped). */
START_TEST(dna_mbv3_effnet_jobs)
{
    dna_job(MBV3_JOB, 3, "0.5", 0);
    dna_job(EFFNET_JOB, 3, "1.4", 0);
}
END_TEST

/* adapt.search_depth false: widths only; every stage keeps its depth, the
 * depth chains stay put and no depth event happens. */
START_TEST(width_only_search_keeps_depths)
{
    static const char *targets[2] = {"0.5", "1.4"};
    for (int k = 0; k < 2; k++) {
        char adapt[600];
        const char *fast = dna_fast(targets[k]);
        snprintf(adapt, sizeof adapt, "%.*s,\"search_depth\":false}", (int)strlen(fast) - 1, fast);
        job_spec s;
        adapt_spec_seed(&s, 4, EFFNET_JOB, adapt, "");
        tu_job run;
        tu_job_begin(&run, "adapt");
        ck_assert_int_eq(tu_job_run(&run, &s, NULL, NULL), 0);
        tu_check_found_net(&s, run.dir, &run.res, 0);
        json_t *rep = tu_load_json(run.dir, "report.json");
        ck_assert(json_equal(json_object_get(json_object_get(rep, "before"), "depths"),
                             json_object_get(json_object_get(rep, "after"), "depths")));
        json_t *counts = json_object_get(json_object_get(rep, "elastic"), "counts");
        ck_assert_int_eq(json_integer_value(json_object_get(counts, "depth_expand")), 0);
        ck_assert_int_eq(json_integer_value(json_object_get(counts, "depth_condense")), 0);
        json_decref(rep);
        tu_job_end(&run);
        jobspec_free(&s);
    }
}
END_TEST

/* The baseline of method k (1..3) for model c at ratio r: in [lo*T, 1.01*T]. */
static void check_baseline(const model_cfg *c, int k, double r, double lo, const char *what)
{
    model_cfg found;
    json_t *info = json_object();
    errbuf eb;
    adapt_spec sp = {.method = (adapt_method)k, .compound_alpha = 1.2, .compound_beta = 1.1};
    double t = modelcfg_macs(c) / 1e6 * r;
    ck_assert_msg(adapt_baseline(&sp, c, t, &found, info, &eb) == 0, "%s", eb.msg);
    double mf = modelcfg_macs(&found) / 1e6;
    ck_assert_msg(mf >= lo * t && mf <= 1.01 * t, "%s %s x%.2f: %.4f MFLOPs for %.4f", what,
                  adaptspec_method_name(sp.method), r, mf, t);
    ck_assert(json_is_true(json_object_get(info, "in_band")) == (mf >= 0.99 * t));
    double wm = json_number_value(json_object_get(info, "width_multiplier"));
    double dm = json_number_value(json_object_get(info, "depth_multiplier"));
    if (k == ADAPT_UNIFORM_WIDTH)
        ck_assert(dm == 1.0);
    if (k == ADAPT_UNIFORM_DEPTH) /* depth does the scaling, width the rounding */
        ck_assert_msg(fabs(log(wm)) < fabs(log(r)), "%s: width x%.3f for x%.2f", what, wm, r);
    /* the network builds, with the MACs counted */
    net m;
    net_init(&m);
    ck_assert(model_build(&m, &found, 1, 0, NULL, &eb) == 0);
    ck_assert(net_macs(&m) / 1e6 == mf);
    net_deinit(&m);
    json_decref(info);
}

START_TEST(baseline_jobs)
{
    /* the benchmark's networks: every rule lands in the band at every budget */
    const char *bench[2] = {"{\"arch\":\"resnet_cifar\",\"depth\":20,\"widths\":[16,32,64],"
                            "\"image_size\":28,\"in_channels\":1,\"num_classes\":10}",
                            "{\"arch\":\"mobilenetv2\",\"width_mult\":0.5,\"image_size\":28,"
                            "\"in_channels\":1,\"num_classes\":10}"};
    const double ratios[3] = {0.5, 0.75, 1.3};
    for (int mi = 0; mi < 2; mi++) {
        model_cfg c;
        tu_model_cfg(&c, bench[mi]);
        for (int k = 1; k <= 3; k++)
            for (int g = 0; g < 3; g++)
                check_baseline(&c, k, ratios[g], 0.99, bench[mi]);
    }
    /* tiny nets: whole channels are coarse steps, the fit still lands in the band */
    const char *tiny[2] = {RESNET_JOB, MBV2_JOB};
    for (int mi = 0; mi < 2; mi++) {
        model_cfg c;
        tu_model_cfg(&c, tiny[mi]);
        for (int k = 1; k <= 3; k++)
            for (int g = 0; g < 3; g++)
                check_baseline(&c, k, ratios[g], 0.99, tiny[mi]);
    }
    /* one of them through the job: artifacts and the accuracy it reports */
    job_spec s;
    adapt_spec_of(&s, MBV2_JOB, "{\"method\":\"uniform_depth\",\"target_ratio\":1.3}", "");
    tu_job run;
    tu_job_begin(&run, "adapt");
    ck_assert_int_eq(tu_job_run(&run, &s, NULL, NULL), 0);
    tu_check_found_net(&s, run.dir, &run.res, 0);
    ck_assert_int_eq(run.res.n_artifacts, 4);
    json_t *rep = tu_load_json(run.dir, "report.json");
    ck_assert_ptr_nonnull(json_object_get(json_object_get(rep, "baseline"), "depths"));
    json_decref(rep);
    tu_job_end(&run);
    jobspec_free(&s);
}
END_TEST

/* DNA's derivation from random chains (state_of: logits 1.5 N(0, 1)) at
 * seeds 1..6 and targets from 0.4x to 1.4x of the existing network, each
 * inside the window space: the network lies in the band by the model
 * config's own count and the report says so. A target below the smallest
 * network of the space fails naming the field. */
START_TEST(dna_derivation_lands_in_the_band)
{
    const char *models[3] = {RESNET_SMALL, MBV2_SMALL, RESNET_BN_SMALL};
    const double ratios[5] = {0.4, 0.6, 0.85, 1.15, 1.4};
    dist_info one = {.world = 1};
    for (int mi = 0; mi < 3; mi++)
        for (int seed = 1; seed <= 6; seed++) {
            adapt_state *st = state_of(models[mi], (uint64_t)seed);
            const adapt_space *as = &st->as;
            model_cfg c, found;
            tu_model_cfg(&c, models[mi]);
            double full = modelcfg_macs(&c) / 1e6;
            adapter *a = xcalloc(1, sizeof *a);
            a->st = st;
            a->j.d = &one;
            int *w = xcalloc((size_t)as->sp.n_units, sizeof(int)), d[ADAPTSPACE_MAX_STAGES];
            for (int s = 0; s < ADAPTSPACE_MAX_STAGES; s++)
                d[s] = 1;
            adaptspace_min_widths(as, w);
            double least = adaptspace_macs(as, w, d) / 1e6;
            adaptspace_full_widths(as, w);
            double most = adaptspace_macs(as, w, NULL) / 1e6;
            errbuf eb;
            for (int t = 0; t < 5; t++) {
                a->as.target_ratio = ratios[t];
                a->goal.target = ratios[t] * full;
                if (a->goal.target * 1.01 <= least || a->goal.target * 0.99 >= most)
                    continue;
                json_t *info = json_object();
                ck_assert_msg(dna_derive(a, w, d, info, &eb) == 0, "%s", eb.msg);
                adaptspace_cfg(as, w, d, &found);
                double mf = modelcfg_macs(&found) / 1e6;
                ck_assert_msg(mf >= 0.99 * a->goal.target && mf <= 1.01 * a->goal.target,
                              "model %d seed %d: %.5f MFLOPs for %.5f", mi, seed, mf,
                              a->goal.target);
                json_t *fit = json_object_get(info, "fitted");
                ck_assert(json_is_true(json_object_get(fit, "in_band")));
                ck_assert(json_number_value(json_object_get(fit, "mflops")) == mf);
                json_decref(info);
            }
            a->goal.target = 0.5 * least;
            json_t *info = json_object();
            ck_assert_int_eq(dna_derive(a, w, d, info, &eb), ERR_INVALID);
            ck_assert_msg(strstr(eb.msg, "adapt.target_ratio") != NULL, "%s", eb.msg);
            ck_assert_msg(strstr(eb.msg, "nearest reachable") != NULL, "%s", eb.msg);
            json_decref(info);
            free(w);
            free(a);
            adapt_state_free(st);
        }
}
END_TEST

/* Every unit 1 or 2 channels wide at most: no network of the baseline
 * within +-1 % of 40 % of the existing one; the job fails naming the field
 * and the nearest network's MFLOPs, before any retraining. */
START_TEST(unreachable_baseline_fails_before_training)
{
    job_spec s;
    adapt_spec_of(&s,
                  "{\"arch\":\"resnet_cifar\",\"image_size\":12,\"in_channels\":1,"
                  "\"num_classes\":4,\"stem\":2,\"stages\":[{\"width\":2,\"mids\":[2]}]}",
                  "{\"method\":\"uniform_width\",\"target_ratio\":0.4}", "");
    tu_job run;
    tu_job_begin(&run, "adapt");
    errbuf eb;
    ck_assert_int_eq(tu_job_refused(&run, &s, &eb), ERR_INVALID);
    ck_assert_msg(strstr(eb.msg, "adapt.target_ratio") != NULL, "%s", eb.msg);
    ck_assert_msg(strstr(eb.msg, "has 0.003896 MFLOPs") != NULL, "%s", eb.msg);
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", run.dir);
    ck_assert(access(path, F_OK) != 0);
    ck_assert(tu_last_metric(run.cap, "retrain/train/loss") == -1);
    tu_job_end(&run);
    jobspec_free(&s);
}
END_TEST

START_TEST(cancelled_search_resumes_to_the_same_result)
{
    job_spec s;
    adapt_spec_of(&s, RESNET_JOB, dna_fast("1.3"), "");
    tu_job a, b;
    tu_job_begin(&a, "adapt");
    tu_job_begin(&b, "adapt");
    ck_assert_int_eq(tu_job_run(&a, &s, NULL, NULL), 0);
    json_t *el = tu_load_json(a.dir, "elastic.json");
    json_t *first = json_array_get(json_object_get(el, "events"), 0);
    ck_assert_ptr_nonnull(first);
    long at = (long)json_integer_value(json_object_get(first, "step"));
    json_decref(el);
    /* cancel after the first change of the space, then resume */
    b.cap->cancel_after = at + 3;
    ck_assert_int_eq(tu_job_run(&b, &s, NULL, NULL), ERR_CANCELLED);
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/search-%08ld.safetensors", b.dir, at + 3);
    ck_assert_msg(access(ckpt, R_OK) == 0, "no search checkpoint at step %ld", at + 3);
    b.cap->cancel_after = -1;
    ck_assert_int_eq(tu_job_run(&b, &s, ckpt, NULL), 0);
    tu_same_file(a.dir, b.dir, "architecture.json");
    tu_same_file(a.dir, b.dir, "model.safetensors");
    tu_same_file(a.dir, b.dir, "elastic.json");
    tu_same_points(a.cap, b.cap); /* b's two runs report a's one: no step twice */
    tu_job_end(&a);
    tu_job_end(&b);
    jobspec_free(&s);
}
END_TEST

START_TEST(init_from_a_train_job)
{
    /* a finished train job's weights are the existing network */
    char text[2048];
    snprintf(text, sizeof text,
             "{\"name\":\"t\",\"seed\":3,\"model\":%s,"
             "\"data\":{\"dataset\":\"synthetic\",\"synthetic\":{\"train\":256,\"test\":128,"
             "\"classes\":4,\"channels\":1,\"size\":12}},"
             "\"optim\":{\"lr\":0.05,\"batch_size\":32,\"epochs\":2}}",
             RESNET_JOB);
    json_t *j = json_loads(text, 0, NULL);
    job_spec ts;
    field_errors fe;
    ck_assert_int_eq(jobspec_parse(&ts, NULL, j, &fe), 0);
    json_decref(j);
    tu_job t, a;
    tu_job_begin(&t, "adapt");
    tu_job_begin(&a, "adapt");
    ck_assert_int_eq(tu_job_run(&t, &ts, NULL, NULL), 0);
    char weights[1100];
    snprintf(weights, sizeof weights, "%s/model.safetensors", t.dir);
    job_spec s;
    char extra[1200];
    snprintf(extra, sizeof extra, "\"init_from\":\"%s\",", weights);
    adapt_spec_of(&s, RESNET_JOB, dna_fast("0.6"), extra);
    ck_assert_int_eq(tu_job_run(&a, &s, NULL, weights), 0);
    double before = json_number_value(json_object_get(a.res.summary, "top1_before"));
    double trained = json_number_value(json_object_get(t.res.summary, "test_top1"));
    ck_assert_msg(before == trained, "top-1 before %.6f, the train job's %.6f", before, trained);
    tu_check_found_net(&s, a.dir, &a.res, 0);
    tu_job_end(&t);
    tu_job_end(&a);
    jobspec_free(&s);
    jobspec_free(&ts);
}
END_TEST

Suite *suite_adapt(void)
{
    Suite *s = suite_create("adapt");
    tu_case_add(s, "space", 120, NULL, NULL,
                TU_TESTS(window_space_counts, stages_and_blocks, expected_macs_and_gradient,
                         subnet_equals_scaled_supernet));
    tu_case_add(s, "elastic", 120, NULL, NULL,
                TU_TESTS(width_expand_keeps_function, depth_expand_keeps_function,
                         condense_keeps_remaining_subnets, elastic_rules_fire_after_patience,
                         condense_keeps_the_target_reachable,
                         inherited_network_is_the_full_supernet));
    tu_case_add(s, "job", 600, NULL, NULL,
                TU_TESTS(dna_shrink_job, dna_grow_job, dna_mbv3_effnet_jobs,
                         width_only_search_keeps_depths, baseline_jobs,
                         dna_derivation_lands_in_the_band,
                         unreachable_baseline_fails_before_training,
                         cancelled_search_resumes_to_the_same_result, init_from_a_train_job));
    return s;
}
