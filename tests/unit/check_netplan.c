/* check_netplan.c - the liveness-planned arena (worker/models/net_plan.c).
 *
 * For every model family (CeiT, DeiT with drop path, ResNet and MobileNetV2
 * both as pruned configs with uneven widths, and those CNNs with DMCP's
 * channel-scaling nodes and DNA's scaled residual joins), the same network
 * is built twice from one seed: once with the planned arena (buffers shared
 * by liveness, BN/LN/GELU/slice outputs recomputed for backward) and once
 * with KILN_NO_PLAN=1 (every buffer its own memory, nothing recomputed).
 * Two training steps must give bit-identical logits, losses, parameter
 * gradients, BN running statistics, counters and architecture gradients,
 * and an eval forward afterwards identical logits. The plan itself is
 * checked independently: no two buffers whose lifetimes meet overlap in
 * memory, and the planned arena is smaller than the unshared one.
 */
#include "common/modelcfg.h"
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/models/model.h"
#include "worker/nn/loss.h"
#include "worker/nn/optim.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_netplan(void);

#define BATCH   6
#define CLASSES 5

#define CEIT_SMALL                                                                                 \
    "{\"arch\":\"ceit\",\"image_size\":16,\"in_channels\":3,\"num_classes\":5,"                    \
    "\"embed_dim\":24,\"depth\":2,\"num_heads\":3,\"patch_size\":2,"                               \
    "\"stem\":{\"type\":\"i2t\",\"channels\":8}}"
#define DEIT_SMALL                                                                                 \
    "{\"arch\":\"deit\",\"image_size\":16,\"in_channels\":3,\"num_classes\":5,"                    \
    "\"embed_dim\":24,\"depth\":3,\"num_heads\":3,\"patch_size\":4}"
#define RESNET_PRUNED                                                                              \
    "{\"arch\":\"resnet_cifar\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"             \
    "\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[12,10]},{\"width\":16,\"mids\":[16]}]}"
#define MBV2_PRUNED                                                                                \
    "{\"arch\":\"mobilenetv2\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"              \
    "\"stem\":8,\"blocks\":[{\"hidden\":8,\"out\":8,\"stride\":1},"                                \
    "{\"hidden\":24,\"out\":12,\"stride\":2},{\"hidden\":36,\"out\":12,\"stride\":1},"             \
    "{\"hidden\":36,\"out\":16,\"stride\":1}],\"last\":20}"

/* squeeze-excitation, h-swish / ReLU blocks, the classifier's dropout */
#define MBV3_SMALL                                                                                 \
    "{\"arch\":\"mobilenetv3\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"              \
    "\"stem\":8,\"blocks\":[{\"hidden\":8,\"out\":8,\"se\":4},"                                    \
    "{\"hidden\":24,\"out\":12,\"stride\":2,\"kernel\":5,\"act\":\"hswish\"},"                     \
    "{\"hidden\":36,\"out\":12,\"se\":8,\"act\":\"hswish\"}],\"last\":20,\"head_width\":16,"       \
    "\"dropout\":0.2}"
/* SiLU, sigmoid-gated SE in every block, stochastic depth on the residual blocks */
#define EFFNET_SMALL                                                                               \
    "{\"arch\":\"efficientnet\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"             \
    "\"stem\":8,\"blocks\":[{\"hidden\":8,\"out\":8,\"se\":2,\"stage\":0},"                        \
    "{\"hidden\":24,\"out\":12,\"stride\":2,\"se\":2,\"stage\":1},"                                \
    "{\"hidden\":36,\"out\":12,\"se\":3,\"kernel\":5,\"stage\":1}],\"last\":20,"                   \
    "\"dropout\":0.2,\"drop_path\":0.3}"

/* External scales of the DMCP sites and DNA joins of one net. */
typedef struct hooks {
    float s[4096], ds[4096]; /* channel scales and their gradients */
    size_t used;
    float q[64], dq[64]; /* join scalars and their gradients */
    int joins;
} hooks;

static int chscale_site(void *ctx, net *m, int x, const char *bn)
{
    (void)bn;
    hooks *h = ctx;
    size_t C = (size_t)m->acts[x].C;
    ck_assert_uint_le(h->used + C, sizeof h->s / sizeof h->s[0]);
    for (size_t c = 0; c < C; c++)
        h->s[h->used + c] = 0.5f + (float)((h->used + c) % 7) / 7.0f;
    int y = net_chscale(m, x, h->s + h->used, h->ds + h->used);
    h->used += C;
    return y;
}

static int scaled_join(void *ctx, net *m, int x, int fx, const char *block)
{
    (void)block;
    hooks *h = ctx;
    ck_assert_int_lt(h->joins, 64);
    h->q[h->joins] = 0.6f + 0.1f * (float)(h->joins % 3);
    int k = h->joins++;
    return net_scaleadd(m, x, fx, &h->q[k], &h->dq[k]);
}

/* Builds `text` into m with or without the plan; hooks h (may be NULL) adds
 * the DMCP sites and DNA joins. */
static void build(net *m, const char *text, int planned, hooks *h, float drop_path)
{
    model_cfg c;
    tu_model_cfg(&c, text);
    model_opts o;
    memset(&o, 0, sizeof o);
    o.drop_path = drop_path;
    if (h != NULL) {
        memset(h, 0, sizeof *h);
        o.site = chscale_site;
        o.site_ctx = h;
        o.join = scaled_join;
        o.join_ctx = h;
    }
    if (planned)
        unsetenv("KILN_NO_PLAN");
    else
        setenv("KILN_NO_PLAN", "1", 1);
    net_init(m);
    errbuf eb;
    int rc = model_build(m, &c, BATCH, 11, &o, &eb);
    unsetenv("KILN_NO_PLAN");
    ck_assert_msg(rc == 0, "%s", eb.msg);
    ck_assert_int_eq(m->planned, planned);
}

/* No two buffers whose lifetimes meet share memory; everything fits the arena. */
static void check_plan_valid(const net *m)
{
    for (int i = 0; i < m->n_bufs; i++) {
        const net_buf *a = &m->bufs[i];
        ck_assert_uint_le(a->off + a->floats, m->arena_floats);
        ck_assert_int_le(a->first, a->last);
        for (int j = i + 1; j < m->n_bufs; j++) {
            const net_buf *b = &m->bufs[j];
            if (a->last < b->first || b->last < a->first)
                continue;
            ck_assert_msg(a->off + a->floats <= b->off || b->off + b->floats <= a->off,
                          "buffers %d and %d (acts %d, %d) meet in time and memory", i, j, a->act,
                          b->act);
        }
    }
}

static int count_recomputed(const net *m)
{
    int n = 0;
    for (int a = 0; a < m->n_acts; a++)
        n += m->acts[a].recompute;
    return n;
}

/* One training step on (x, y): returns the loss; leaves the gradients in m. */
static float train_step(net *m, const float *x, const int32_t *y, int sgd, int first)
{
    float probs[BATCH * CLASSES], dlogits[BATCH * CLASSES];
    net_zero_grad(m);
    net_forward(m, x, BATCH);
    float loss = nn_crossentropy_forward(probs, NULL, net_out(m), y, BATCH, CLASSES, 0.0f);
    memset(dlogits, 0, sizeof dlogits);
    nn_crossentropy_backward(dlogits, probs, y, BATCH, CLASSES, 0.0f, 1.0f);
    net_backward(m, dlogits);
    if (sgd) {
        nn_sgd_params sp = {0.05f, 0.9f, 0.0f, 5e-4f, 0};
        nn_sgd_step(m->params, m->opt_m, m->grads, m->n_params, &sp, first);
    }
    return loss;
}

static void expect_same(const net *a, const net *b, const char *what, int step)
{
    ck_assert_msg(memcmp(net_out(a), net_out(b), BATCH * CLASSES * sizeof(float)) == 0,
                  "%s step %d: logits differ", what, step);
    for (int t = 0; t < a->n_tensors; t++) {
        const net_tensor *ta = &a->tensors[t];
        if (ta->kind == NET_COUNTER) {
            ck_assert_mem_eq(a->counters + ta->off, b->counters + ta->off, ta->n * sizeof(int64_t));
            continue;
        }
        ck_assert_msg(memcmp(net_tensor_data(a, t), net_tensor_data(b, t), ta->n * sizeof(float)) ==
                          0,
                      "%s step %d: %s differs", what, step, ta->name);
        if (ta->kind == NET_PARAM)
            ck_assert_msg(
                memcmp(net_tensor_grad(a, t), net_tensor_grad(b, t), ta->n * sizeof(float)) == 0,
                "%s step %d: grad of %s differs", what, step, ta->name);
    }
}

/* Two training steps and an eval forward, planned against unplanned. */
static void compare(const char *text, int with_hooks, float drop_path)
{
    static hooks ha, hb;
    net a, b;
    build(&a, text, 1, with_hooks ? &ha : NULL, drop_path);
    build(&b, text, 0, with_hooks ? &hb : NULL, drop_path);
    check_plan_valid(&a);
    check_plan_valid(&b);
    ck_assert_int_gt(count_recomputed(&a), 0);
    ck_assert_int_eq(count_recomputed(&b), 0);
    ck_assert_uint_lt(a.arena_floats, b.arena_floats);
    size_t px = a.acts[a.input].per_sample;
    float *x = xmallocarray((size_t)BATCH * px, sizeof(float));
    int32_t y[BATCH];
    for (int step = 0; step < 2; step++) {
        for (size_t i = 0; i < (size_t)BATCH * px; i++)
            x[i] = (float)((i * 7919 + (size_t)step * 104729) % 1000) / 250.0f - 2.0f;
        for (int i = 0; i < BATCH; i++)
            y[i] = (int32_t)((i * 3 + step) % CLASSES);
        float la = train_step(&a, x, y, !with_hooks, step == 0);
        float lb = train_step(&b, x, y, !with_hooks, step == 0);
        ck_assert_msg(memcmp(&la, &lb, sizeof la) == 0, "%s step %d: loss %g vs %g", text, step,
                      (double)la, (double)lb);
        expect_same(&a, &b, text, step);
        if (with_hooks) {
            ck_assert_mem_eq(ha.ds, hb.ds, ha.used * sizeof(float));
            ck_assert_mem_eq(ha.dq, hb.dq, (size_t)ha.joins * sizeof(float));
            ck_assert_uint_gt(ha.used, 0);
            ck_assert_int_gt(ha.joins, 0);
        }
    }
    net_set_training(&a, 0);
    net_set_training(&b, 0);
    net_forward(&a, x, BATCH);
    net_forward(&b, x, BATCH);
    ck_assert_mem_eq(net_out(&a), net_out(&b), BATCH * CLASSES * sizeof(float));
    free(x);
    net_deinit(&a);
    net_deinit(&b);
}

START_TEST(ceit_same_bits)
{
    compare(CEIT_SMALL, 0, 0.0f);
}
END_TEST

START_TEST(deit_drop_path_same_bits)
{
    compare(DEIT_SMALL, 0, 0.1f);
}
END_TEST

START_TEST(resnet_pruned_same_bits)
{
    compare(RESNET_PRUNED, 0, 0.0f);
}
END_TEST

START_TEST(mbv2_pruned_same_bits)
{
    compare(MBV2_PRUNED, 0, 0.0f);
}
END_TEST

START_TEST(resnet_dmcp_dna_same_bits)
{
    compare(RESNET_PRUNED, 1, 0.0f);
}
END_TEST

START_TEST(mbv2_dmcp_dna_same_bits)
{
    compare(MBV2_PRUNED, 1, 0.0f);
}
END_TEST

START_TEST(mbv3_effnet_same_bits)
{
    compare(MBV3_SMALL, 0, 0.0f);
    compare(EFFNET_SMALL, 0, 0.0f);
    compare(MBV3_SMALL, 1, 0.0f);
    compare(EFFNET_SMALL, 1, 0.0f);
}
END_TEST

Suite *suite_netplan(void)
{
    Suite *s = suite_create("netplan");
    tu_case_add(s, "planned_equals_unplanned", 60, NULL, NULL,
                TU_TESTS(ceit_same_bits, deit_drop_path_same_bits, resnet_pruned_same_bits,
                         mbv2_pruned_same_bits, resnet_dmcp_dna_same_bits, mbv2_dmcp_dna_same_bits,
                         mbv3_effnet_same_bits));
    return s;
}
