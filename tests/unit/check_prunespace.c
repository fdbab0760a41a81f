/* check_prunespace.c - DMCP's search space, chains and budget loss.
 *
 * The MAC counter of the space agrees with hand counts (ResNet-20 on
 * CIFAR-10 and on Fashion-MNIST, a small MobileNetV2), with modelcfg_macs
 * and with the built net's own count for random widths; the unit and
 * sharing tables follow ALGORITHMS.md 2.1 and 2.4; expected MACs equal the
 * whole net's when every alpha is large and the c_min net's when every
 * alpha is very negative; the gradient of the budget loss with respect to
 * alpha matches central finite differences in each regime; the samplers
 * stay on the grid and respect the block structure.
 */
#include "common/modelcfg.h"
#include "common/prunespace.h"
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/jobs/prune_chain.h"
#include "worker/models/model.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_prunespace(void);

static const prunespace_width RESNET_W = {0.1, 1.0, 0.1};

#define R20_CIFAR                                                                                  \
    "{\"arch\":\"resnet_cifar\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"           \
    "\"depth\":20,\"widths\":[16,32,64]}"
#define R20_FMNIST                                                                                 \
    "{\"arch\":\"resnet_cifar\",\"image_size\":28,\"in_channels\":1,\"num_classes\":10,"           \
    "\"depth\":20,\"widths\":[16,32,64]}"
/* hand-countable: stem 4; block 0 without expansion (hidden == cin) and
 * residual; block 1 expands 4 -> 8, stride 2, out 6; last 10 */
#define MB_TINY                                                                                    \
    "{\"arch\":\"mobilenetv2\",\"image_size\":8,\"in_channels\":1,\"num_classes\":4,"              \
    "\"stem\":4,\"blocks\":[{\"hidden\":4,\"out\":4,\"stride\":1},"                                \
    "{\"hidden\":8,\"out\":6,\"stride\":2}],\"last\":10}"
/* torchvision's ImageNet form: ResNet-18 (BasicBlock) and a narrow
 * Bottleneck net whose inner widths differ from the stage widths */
#define R18_IN64                                                                                   \
    "{\"arch\":\"resnet\",\"image_size\":64,\"in_channels\":3,\"num_classes\":10,\"depth\":18}"
#define RBN_SMALL                                                                                  \
    "{\"arch\":\"resnet\",\"image_size\":40,\"in_channels\":3,\"num_classes\":7,"                  \
    "\"block\":\"bottleneck\",\"stem\":16,\"stages\":[{\"width\":32,\"mids\":[8,12],"              \
    "\"mids2\":[12,8]},{\"width\":48,\"mids\":[16],\"mids2\":[20]}]}"
#define MB_W050                                                                                    \
    "{\"arch\":\"mobilenetv2\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"            \
    "\"width_mult\":0.5}"

/* MobileNetV3-Small with the CIFAR stem (SE in most blocks, h-swish; a first
 * block without expansion whose SE is tied to the stem's unit) and a narrow,
 * shallow EfficientNet (SE in every block, stages of 1..2 blocks) */
#define MB3_SMALL                                                                                  \
    "{\"arch\":\"mobilenetv3\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"            \
    "\"variant\":\"small\",\"width_mult\":0.5,\"cifar\":true}"
#define EFF_SMALL                                                                                  \
    "{\"arch\":\"efficientnet\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"           \
    "\"width_mult\":0.25,\"depth_mult\":0.5,\"cifar\":true}"

static void space_from(prune_space *s, model_cfg *c, const char *text, const prunespace_width *w)
{
    tu_model_cfg(c, text);
    /* the space works on explicit widths: presets are expanded by the parser */
    errbuf eb;
    ck_assert_msg(prune_space_init(s, c, w, &eb) == 0, "%s", eb.msg);
}

static int find_unit(const prune_space *s, const char *name)
{
    for (int u = 0; u < s->n_units; u++)
        if (strcmp(s->units[u].name, name) == 0)
            return u;
    ck_abort_msg("no unit %s", name);
    return -1;
}

START_TEST(macs_match_hand_counts)
{
    model_cfg c;
    prune_space s;
    int w[512];
    /* ResNet-20, CIFAR: conv1 9*3*16*1024 = 442368; stage 1: 6 convs of
     * 9*16*16*1024 = 14155776; stage 2 at 16x16: 9*16*32*256 + 9*32*32*256 +
     * 16*32*256 + 4*9*32*32*256 = 13107200; stage 3 at 8x8: the same
     * 13107200; fc 65*10 = 650 */
    space_from(&s, &c, R20_CIFAR, &RESNET_W);
    prunespace_full_widths(&s, w);
    ck_assert(prunespace_macs(&s, w) == 40813194.0);
    ck_assert(modelcfg_macs(&c) == 40813194.0);
    prune_space_deinit(&s);
    /* ResNet-20, Fashion-MNIST: conv1 9*16*784 = 112896; stage 1
     * 6*9*256*784 = 10838016; stage 2 at 14x14: 903168 + 1806336 + 100352 +
     * 4*1806336 = 10035200; stage 3 at 7x7: the same 10035200; fc 650 */
    space_from(&s, &c, R20_FMNIST, &RESNET_W);
    prunespace_full_widths(&s, w);
    ck_assert(prunespace_macs(&s, w) == 31021962.0);
    prune_space_deinit(&s);
    /* tiny MobileNetV2 on 1x8x8: stem 9*4*64 = 2304; block 0 dw 9*4*64 =
     * 2304, project 4*4*64 = 1024; block 1 expand 4*8*64 = 2048, dw (4x4)
     * 9*8*16 = 1152, project 8*6*16 = 768; last 6*10*16 = 960; classifier
     * 11*4 = 44 */
    space_from(&s, &c, MB_TINY, &RESNET_W);
    prunespace_full_widths(&s, w);
    ck_assert(prunespace_macs(&s, w) == 10604.0);
    ck_assert(modelcfg_macs(&c) == 10604.0);
    prune_space_deinit(&s);
}
END_TEST

START_TEST(resnet_units_follow_the_sharing_rules)
{
    model_cfg c;
    prune_space s;
    space_from(&s, &c, R20_FMNIST, &RESNET_W);
    /* stem (governing layer1's stream: no projection there), 9 inner widths,
     * the residual streams of stages 2 and 3 */
    ck_assert_int_eq(s.n_units, 12);
    int stem = find_unit(&s, "conv1");
    ck_assert_int_eq(s.stage_unit[0], stem);
    ck_assert_int_eq(prunespace_site_unit(&s, "layer1.2.bn2"), stem);
    int l2 = find_unit(&s, "layer2");
    ck_assert_int_eq(prunespace_site_unit(&s, "layer2.0.downsample.1"), l2);
    ck_assert_int_eq(prunespace_site_unit(&s, "layer2.0.bn2"), l2);
    ck_assert_int_eq(prunespace_site_unit(&s, "layer2.2.bn2"), l2);
    ck_assert_int_eq(prunespace_site_unit(&s, "layer3.1.bn1"), find_unit(&s, "layer3.1.conv1"));
    ck_assert_int_eq(prunespace_site_unit(&s, "fc"), -1);
    /* 2.1: 16 -> c_min 7, g 1, K 9; 32 -> 5, 3, 9; 64 -> 10, 6, 9 */
    const prunespace_unit *u16 = &s.units[stem], *u32 = &s.units[l2];
    const prunespace_unit *u64 = &s.units[find_unit(&s, "layer3")];
    ck_assert(u16->c_min == 7 && u16->group == 1 && u16->K == 9);
    ck_assert(u32->c_min == 5 && u32->group == 3 && u32->K == 9);
    ck_assert(u64->c_min == 10 && u64->group == 6 && u64->K == 9);
    ck_assert_int_eq(u32->partner, -1); /* stride 2: a projection whatever the widths */
    prune_space_deinit(&s);

    /* a stride-1 projection (stem 8 -> stage 1 of 16) owns its width and
     * must keep it apart from the stem's */
    space_from(&s, &c,
               "{\"arch\":\"resnet_cifar\",\"image_size\":8,\"in_channels\":1,\"num_classes\":4,"
               "\"stem\":8,\"stages\":[{\"width\":16,\"mids\":[16,16]}]}",
               &RESNET_W);
    int l1 = find_unit(&s, "layer1");
    ck_assert_int_eq(s.units[l1].partner, find_unit(&s, "conv1"));
    int w[8];
    prunespace_full_widths(&s, w);
    w[l1] = w[s.stem_unit] = 8;
    ck_assert_int_eq(prunespace_fix_structure(&s, w, 0), 1);
    ck_assert_int_eq(w[l1], 9);
    model_cfg sub;
    prunespace_widths_to_cfg(&s, w, &sub);
    ck_assert(prunespace_macs(&s, w) == modelcfg_macs(&sub));
    prune_space_deinit(&s);
}
END_TEST

/* Bottleneck ResNet: the stem, a stream per stage (stage 1's is owned by its
 * stride-1 projection, the stem's partner), two inner units per block; every
 * BN of the built net is a site of the unit its channels belong to. */
START_TEST(bottleneck_units_follow_the_sharing_rules)
{
    model_cfg c;
    prune_space s;
    space_from(&s, &c, RBN_SMALL, &RESNET_W);
    ck_assert_int_eq(s.n_units, 1 + 2 + 3 * 2);
    int stem = find_unit(&s, "conv1"), l1 = find_unit(&s, "layer1"), l2 = find_unit(&s, "layer2");
    ck_assert_int_eq(s.units[l1].partner, stem);
    ck_assert_int_eq(s.units[l2].partner, -1);
    ck_assert_int_eq(s.units[find_unit(&s, "layer1.1.conv2")].channels, 8);
    ck_assert_int_eq(s.units[find_unit(&s, "layer2.0.conv2")].channels, 20);
    static const struct {
        const char *bn, *unit;
    } sites[] = {{"bn1", "conv1"},
                 {"layer1.0.bn1", "layer1.0.conv1"},
                 {"layer1.0.bn2", "layer1.0.conv2"},
                 {"layer1.0.bn3", "layer1"},
                 {"layer1.0.downsample.1", "layer1"},
                 {"layer1.1.bn3", "layer1"},
                 {"layer2.0.bn2", "layer2.0.conv2"},
                 {"layer2.0.downsample.1", "layer2"}};
    for (size_t i = 0; i < sizeof sites / sizeof sites[0]; i++)
        ck_assert_int_eq(prunespace_site_unit(&s, sites[i].bn), find_unit(&s, sites[i].unit));
    net m;
    net_init(&m);
    errbuf eb;
    ck_assert(model_build(&m, &c, 1, 0, NULL, &eb) == 0);
    int n_bn = 0;
    for (int t = 0; t < m.n_tensors; t++) {
        const char *name = m.tensors[t].name;
        size_t len = strlen(name);
        if (len > 13 && strcmp(name + len - 13, ".running_mean") == 0) {
            char bn[NET_NAME_MAX];
            snprintf(bn, sizeof bn, "%.*s", (int)(len - 13), name);
            int u = prunespace_site_unit(&s, bn);
            ck_assert_msg(u >= 0, "BN %s is no site", bn);
            ck_assert_int_eq(s.units[u].channels, m.tensors[t].shape[0]);
            n_bn++;
        }
    }
    ck_assert_int_eq(n_bn, s.n_sites);
    /* widths into the config: the two inner widths land in mids and mids2 */
    int w[16];
    prunespace_full_widths(&s, w);
    w[find_unit(&s, "layer2.0.conv1")] = 3;
    w[find_unit(&s, "layer2.0.conv2")] = 5;
    model_cfg sub;
    prunespace_widths_to_cfg(&s, w, &sub);
    ck_assert_int_eq(sub.stages[1].mids[0], 3);
    ck_assert_int_eq(sub.stages[1].mids2[0], 5);
    ck_assert(prunespace_macs(&s, w) == modelcfg_macs(&sub));
    net_deinit(&m);
    prune_space_deinit(&s);
}
END_TEST

START_TEST(mbv2_units_follow_the_sharing_rules)
{
    model_cfg c;
    prune_space s;
    prunespace_width mw = {0.1, 1.0, 0.1};
    space_from(&s, &c, MB_W050, &mw);
    /* block 0 (t = 1): the depthwise conv is the stem's width */
    ck_assert_int_eq(s.hid_unit[0], s.stem_unit);
    ck_assert_int_eq(prunespace_site_unit(&s, "features.1.conv.0.1"), s.stem_unit);
    /* block 1 expands: its own unit for expansion + depthwise, kept apart
     * from its input's width (equal widths would drop the expansion) */
    int e2 = find_unit(&s, "features.2.expand");
    ck_assert_int_eq(prunespace_site_unit(&s, "features.2.conv.0.1"), e2);
    ck_assert_int_eq(prunespace_site_unit(&s, "features.2.conv.1.1"), e2);
    ck_assert_int_eq(s.units[e2].partner, s.out_unit[0]);
    /* block 2 (features.3) is residual: it reuses block 1's output unit */
    ck_assert_int_eq(s.out_unit[2], s.out_unit[1]);
    ck_assert_int_eq(prunespace_site_unit(&s, "features.3.conv.3"), s.out_unit[1]);
    /* CIFAR: setting 2 has stride 1, so its first block's output must stay
     * apart from its input's */
    ck_assert_int_eq(s.units[s.out_unit[1]].partner, s.out_unit[0]);
    ck_assert_int_eq(prunespace_site_unit(&s, "features.18.1"), s.last_unit);
    int w[256];
    prunespace_full_widths(&s, w);
    ck_assert(prunespace_macs(&s, w) == modelcfg_macs(&c));
    prune_space_deinit(&s);
}
END_TEST

/* Real MACs of random widths: the space's table, modelcfg and the net. */
START_TEST(random_widths_count_three_ways)
{
    const char *cfgs[] = {R20_FMNIST, MB_W050, MB_TINY, R18_IN64, RBN_SMALL, MB3_SMALL, EFF_SMALL};
    rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < 7; i++) {
        model_cfg c, sub;
        prune_space s;
        space_from(&s, &c, cfgs[i], &RESNET_W);
        int *w = xcalloc((size_t)s.n_units, sizeof(int));
        for (int rep = 0; rep < 4; rep++) {
            chains_random_widths(&s, &r, w);
            prunespace_widths_to_cfg(&s, w, &sub);
            double a = prunespace_macs(&s, w), b = modelcfg_macs(&sub);
            ck_assert_msg(a == b, "cfg %d: space %.0f, modelcfg %.0f", i, a, b);
            net m;
            net_init(&m);
            errbuf eb;
            ck_assert_msg(model_build(&m, &sub, 1, 0, NULL, &eb) == 0, "%s", eb.msg);
            ck_assert_msg(net_macs(&m) == a, "cfg %d: net %.0f, space %.0f", i, net_macs(&m), a);
            /* the sub-net keeps the supernet's block structure */
            net full;
            net_init(&full);
            ck_assert(model_build(&full, &c, 1, 0, NULL, &eb) == 0);
            ck_assert_int_eq(m.n_tensors, full.n_tensors);
            for (int t = 0; t < m.n_tensors; t++)
                ck_assert_str_eq(m.tensors[t].name, full.tensors[t].name);
            net_deinit(&full);
            net_deinit(&m);
        }
        free(w);
        prune_space_deinit(&s);
    }
}
END_TEST

static void set_alpha(prune_chains *ch, float v)
{
    for (size_t i = 0; i < ch->n_alpha; i++)
        ch->alpha[i] = v;
    chains_update(ch);
}

/* SE widths follow their expansion unit: the sub-net config ties them, the
 * space counts them, and at full widths they are the supernet's. */
START_TEST(se_widths_are_tied_to_their_block)
{
    model_cfg c, sub;
    prune_space s;
    space_from(&s, &c, EFF_SMALL, &RESNET_W);
    int *w = xcalloc((size_t)s.n_units, sizeof(int));
    prunespace_full_widths(&s, w);
    prunespace_widths_to_cfg(&s, w, &sub);
    for (int i = 0; i < c.n_blocks; i++)
        ck_assert_int_eq(sub.blocks[i].se, c.blocks[i].se);
    int n_tied = 0;
    for (int l = 0; l < s.n_layers; l++)
        n_tied += (s.layers[l].out_tie > 0) + (s.layers[l].in_tie > 0);
    ck_assert_int_eq(n_tied, 2 * c.n_blocks); /* fc1's output and fc2's input, every block */
    for (int i = 0; i < c.n_blocks; i++)
        w[s.hid_unit[i]] = s.units[s.hid_unit[i]].c_min;
    prunespace_fix_structure(&s, w, 1);
    prunespace_widths_to_cfg(&s, w, &sub);
    for (int i = 0; i < c.n_blocks; i++) {
        int want = modelcfg_se_width(c.blocks[i].se, c.blocks[i].hidden, sub.blocks[i].hidden);
        ck_assert_int_eq(sub.blocks[i].se, want);
        ck_assert_int_le(sub.blocks[i].se, c.blocks[i].se);
        ck_assert_int_ge(sub.blocks[i].se, 1);
    }
    ck_assert(prunespace_macs(&s, w) == modelcfg_macs(&sub));
    free(w);
    prune_space_deinit(&s);
}
END_TEST

START_TEST(expected_macs_limits)
{
    const char *cfgs[] = {R20_FMNIST, MB_W050};
    for (int i = 0; i < 2; i++) {
        model_cfg c;
        prune_space s;
        space_from(&s, &c, cfgs[i], &RESNET_W);
        prune_chains ch;
        chains_init(&ch, &s);
        int *w = xcalloc((size_t)s.n_units, sizeof(int));
        prunespace_full_widths(&s, w);
        double full = prunespace_macs(&s, w);
        for (int u = 0; u < s.n_units; u++)
            w[u] = s.units[u].c_min;
        double least = prunespace_macs(&s, w);
        set_alpha(&ch, 40.0f);
        double e = chains_expected_macs(&ch, NULL);
        ck_assert_msg(fabs(e - full) <= 1e-9 * full, "alpha large: %.3f vs full %.3f", e, full);
        set_alpha(&ch, -40.0f);
        e = chains_expected_macs(&ch, NULL);
        ck_assert_msg(fabs(e - least) <= 1e-9 * full, "alpha small: %.3f vs c_min net %.3f", e,
                      least);
        /* at alpha = 0, P_k = 0.5^k */
        set_alpha(&ch, 0.0f);
        double ec[512];
        chains_expected_widths(&ch, ec);
        const prunespace_unit *u0 = &s.units[0];
        double want = u0->c_min + u0->group * (1.0 - pow(0.5, u0->K));
        ck_assert(fabs(ec[0] - want) < 1e-12);
        chains_deinit(&ch);
        free(w);
        prune_space_deinit(&s);
    }
}
END_TEST

/* L(alpha) = budget(E(alpha) / 1e6) in double, for finite differences. */
static double budget_of(prune_chains *ch, double t)
{
    chains_update(ch);
    return prunespace_budget_loss(chains_expected_macs(ch, NULL) / 1e6, t, 0.1, 0.95, NULL);
}

START_TEST(budget_loss_gradient_matches_finite_differences)
{
    const char *cfgs[] = {R20_FMNIST, MB_W050, MB3_SMALL, EFF_SMALL};
    rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < 4; i++) {
        model_cfg c;
        prune_space s;
        space_from(&s, &c, cfgs[i], &RESNET_W);
        prune_chains ch;
        chains_init(&ch, &s);
        double full = modelcfg_macs(&c) / 1e6;
        /* alpha ~ N(0.5, 1): E sits near 60 % of the full net; targets put it
         * below the band, above it, and inside it (zero gradient) */
        for (size_t k = 0; k < ch.n_alpha; k++)
            ch.alpha[k] = 0.5f + rng_normal(&r);
        chains_update(&ch);
        double e0 = chains_expected_macs(&ch, NULL) / 1e6;
        const double targets[3] = {1.3 * e0, 0.5 * e0, e0 / 0.97};
        for (int ti = 0; ti < 3; ti++) {
            double t = targets[ti], dl;
            prunespace_budget_loss(e0, t, 0.1, 0.95, &dl);
            chains_zero_grad(&ch);
            chains_backward(&ch, dl / 1e6);
            double max_err = 0, max_g = 0;
            for (size_t k = 0; k < ch.n_alpha; k++) {
                float a = ch.alpha[k];
                const float h = 1e-2f;
                ch.alpha[k] = a + h;
                double lp = budget_of(&ch, t);
                ch.alpha[k] = a - h;
                double lm = budget_of(&ch, t);
                ch.alpha[k] = a;
                double fd = (lp - lm) / (2.0 * (double)h);
                max_err = fmax(max_err, fabs(fd - (double)ch.dalpha[k]));
                max_g = fmax(max_g, fabs((double)ch.dalpha[k]));
            }
            chains_update(&ch);
            if (ti == 2) {
                ck_assert_msg(max_g == 0, "inside the band the gradient is %g", max_g);
            } else {
                ck_assert_msg(max_g > 0, "zero gradient outside the band");
                ck_assert_msg(max_err <= 1e-3 * max_g, "cfg %d target %d: max err %g of %g", i, ti,
                              max_err, max_g);
            }
        }
        (void)full;
        chains_deinit(&ch);
        prune_space_deinit(&s);
    }
}
END_TEST

START_TEST(budget_loss_regimes)
{
    double d;
    /* below the band: log|E - T|, pushing E up (negative slope) */
    ck_assert(fabs(prunespace_budget_loss(10, 20, 0.1, 0.95, &d) - 0.1 * log(10.0)) < 1e-12);
    ck_assert(fabs(d - 0.1 / (10.0 - 20.0)) < 1e-12);
    /* in the band [0.95 T, T): nothing */
    ck_assert(prunespace_budget_loss(19.5, 20, 0.1, 0.95, &d) == 0 && d == 0);
    ck_assert(prunespace_budget_loss(19.0, 20, 0.1, 0.95, &d) == 0 && d == 0);
    /* at or above T: log|E - 0.95 T|, pushing E down */
    ck_assert(fabs(prunespace_budget_loss(20, 20, 0.1, 0.95, &d) - 0.1 * log(1.0)) < 1e-12);
    ck_assert(fabs(d - 0.1 / 1.0) < 1e-12);
    /* far away (> 200 MFLOPs): r = 0.1 */
    ck_assert(fabs(prunespace_budget_loss(1000, 500, 0.1, 0.95, &d) - 0.1 * log(0.1 * 525.0)) <
              1e-12);
}
END_TEST

START_TEST(samplers_stay_on_the_grid)
{
    model_cfg c;
    prune_space s;
    space_from(&s, &c, MB_W050, &RESNET_W);
    prune_chains ch;
    chains_init(&ch, &s);
    rng r;
    rng_seed(&r, 3);
    for (size_t k = 0; k < ch.n_alpha; k++)
        ch.alpha[k] = rng_normal(&r);
    chains_update(&ch);
    int w[256];
    for (int rep = 0; rep < 50; rep++) {
        if (rep % 2)
            chains_sample(&ch, &r, w);
        else
            chains_random_widths(&s, &r, w);
        for (int u = 0; u < s.n_units; u++) {
            const prunespace_unit *x = &s.units[u];
            ck_assert(w[u] >= x->c_min && w[u] <= x->channels);
            ck_assert_int_eq((w[u] - x->c_min) % x->group, 0);
            if (x->partner >= 0)
                ck_assert_int_ne(w[u], w[x->partner]);
        }
    }
    /* the direct sample's group count follows the chain: with alpha large
     * for the first 3 groups and very negative after, exactly 3 are kept */
    for (int u = 0; u < s.n_units; u++)
        for (int k = 0; k < s.units[u].K; k++)
            ch.alpha[ch.a_off[u] + (size_t)k] = k < 3 ? 40.0f : -40.0f;
    chains_update(&ch);
    chains_sample(&ch, &r, w);
    int ok = 0;
    for (int u = 0; u < s.n_units; u++)
        ok += w[u] == s.units[u].c_min + 3 * s.units[u].group || s.units[u].partner >= 0;
    ck_assert_int_eq(ok, s.n_units);
    chains_deinit(&ch);
    prune_space_deinit(&s);
}
END_TEST

START_TEST(official_sampling_follows_dmcp_code)
{
    /* make_divisible(C*f/max, 8), by hand: nearest multiple of 8, at least 8,
     * one more step when rounding lost over 10 %; then at most C */
    ck_assert_int_eq(chains_official_width(16, 0.1, 1.0), 8);   /* 1.6 -> 8 (the floor) */
    ck_assert_int_eq(chains_official_width(100, 0.3, 1.0), 32); /* 30 -> 32 */
    ck_assert_int_eq(chains_official_width(96, 0.15, 1.0), 16); /* 14.4 -> 16 */
    ck_assert_int_eq(chains_official_width(119, 0.1, 1.0), 16); /* 11.9 -> 8 < 10.7 -> 16 */
    ck_assert_int_eq(chains_official_width(320, 0.5, 1.0), 160);
    ck_assert_int_eq(chains_official_width(64, 0.75, 1.5), 32); /* fractions of max */
    ck_assert_int_eq(chains_official_width(5, 0.1, 1.0), 5);    /* never above C */
    model_cfg c;
    prune_space s;
    space_from(&s, &c, MB_W050, &RESNET_W);
    int w[256], lo[256];
    chains_official_min_widths(&s, lo);
    int moved = 0;
    for (int u = 0; u < s.n_units; u++) {
        int want = chains_official_width(s.units[u].channels, 0.1, 1.0);
        moved += lo[u] != want;
        ck_assert_int_le(abs(lo[u] - want), 1); /* prunespace_fix_structure: one channel at most */
    }
    ck_assert_int_le(moved, s.n_units / 4);
    /* random: every unit at one of the 10 fractions' widths, and the draws
     * cover the list (max included) */
    rng r;
    rng_seed(&r, 5);
    int hits_max = 0, hits_min = 0, off_grid = 0;
    for (int rep = 0; rep < 200; rep++) {
        chains_official_random_widths(&s, &r, w);
        for (int u = 0; u < s.n_units; u++) {
            int C = s.units[u].channels, on = 0;
            for (int k = 0; k <= 9; k++) {
                int v = chains_official_width(C, k == 9 ? 1.0 : 0.1 + 0.1 * k, 1.0);
                on |= abs(w[u] - v) <= 1;
            }
            off_grid += !on;
            hits_max += w[u] == C;
            hits_min += w[u] == lo[u];
            if (s.units[u].partner >= 0)
                ck_assert_int_ne(w[u], w[s.units[u].partner]);
        }
    }
    ck_assert_int_eq(off_grid, 0);
    /* 1 in 10 draws is max (more for narrow units, where fractions collapse) */
    ck_assert_int_gt(hits_max, 200 * s.n_units / 20);
    ck_assert_int_gt(hits_min, 200 * s.n_units / 20);
    prune_space_deinit(&s);
}
END_TEST

START_TEST(uniform_widths_scale_every_unit)
{
    model_cfg c;
    prune_space s;
    space_from(&s, &c, R20_FMNIST, &RESNET_W);
    int w[16];
    prunespace_uniform_widths(&s, 0.5, w);
    model_cfg sub;
    prunespace_widths_to_cfg(&s, w, &sub);
    ck_assert_int_eq(sub.stem_width, 8);
    ck_assert_int_eq(sub.stages[1].width, 16);
    ck_assert_int_eq(sub.stages[2].mids[2], 32);
    prunespace_uniform_widths(&s, 1.0, w);
    prunespace_widths_to_cfg(&s, w, &sub);
    ck_assert(modelcfg_macs(&sub) == modelcfg_macs(&c));
    prunespace_uniform_widths(&s, 0.001, w); /* at least one channel each */
    for (int u = 0; u < s.n_units; u++)
        ck_assert_int_ge(w[u], 1);
    prune_space_deinit(&s);
    errbuf eb;
    tu_model_cfg(&c, "{\"arch\":\"deit\",\"image_size\":28,\"in_channels\":1,\"num_classes\":10,"
                     "\"embed_dim\":96,\"depth\":2,\"num_heads\":3,\"patch_size\":4}");
    ck_assert_int_eq(prune_space_init(&s, &c, &RESNET_W, &eb), ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(eb.msg, "deit"));
    prune_space_deinit(&s);
}
END_TEST

Suite *suite_prunespace(void)
{
    Suite *s = suite_create("prunespace");
    tu_case_add(s, "space", 60, NULL, NULL,
                TU_TESTS(macs_match_hand_counts, resnet_units_follow_the_sharing_rules,
                         mbv2_units_follow_the_sharing_rules,
                         bottleneck_units_follow_the_sharing_rules, random_widths_count_three_ways,
                         expected_macs_limits, se_widths_are_tied_to_their_block,
                         budget_loss_gradient_matches_finite_differences, budget_loss_regimes,
                         samplers_stay_on_the_grid, official_sampling_follows_dmcp_code,
                         uniform_widths_scale_every_unit));
    return s;
}
