/* mobilenet.c - the MobileNet family (torchvision layouts) as a net:
 * MobileNetV2, MobileNetV3 and EfficientNet.
 *
 * features.0 = conv 3x3 (stride 1 for the CIFAR stem, else 2) + BN + act;
 * then the inverted residuals, block i under modelcfg_mb_block_name
 * ("features.5", EfficientNet "features.3.1"), each a Sequential
 * (MobileNetV2 "conv", the others "block") of
 *   [1x1 expand + BN + act, when hidden != cin] -> kxk depthwise + BN + act
 *   -> [squeeze-excitation: avgpool, fc1 (1x1 conv, bias), ReLU / SiLU,
 *       fc2, h-sigmoid / sigmoid, times the input] -> 1x1 project + BN,
 * plus the input when stride 1 and cin == out (EfficientNet drops the branch
 * per sample first: stochastic depth, block i of n at drop_path * i / n);
 * features.last = 1x1 conv to `last` + BN + act; global average pool; the
 * classifier: MobileNetV2 classifier.1 (Linear); MobileNetV3 classifier.0
 * (Linear to head_width), h-swish, dropout, classifier.3; EfficientNet
 * dropout, classifier.1. MobileNetV2 projects with a bare conv + BN
 * (conv.{i}, conv.{i+1}); the others with a Conv2dNormActivation (block.{i}.0/.1).
 * The act is ReLU6 (MobileNetV2), the block's ReLU or h-swish (MobileNetV3),
 * SiLU (EfficientNet). BatchNorm: eps 1e-3, momentum 0.01 in MobileNetV3,
 * else PyTorch's defaults.
 * Scaling sites (model.h) follow DMCP: after BN for the stem, the
 * projection and the last conv; after BN + act for the expansion and
 * depthwise convs; after SE's fc1 + act (a site tied to the expansion
 * width). Every residual add is a join (model.h).
 * Initialisation: MobileNetV2 PyTorch's default (as models.py); the others
 * torchvision's (convs Kaiming normal by fan-out, conv biases 0; Linear
 * N(0, 0.01) in MobileNetV3, U(+-1/sqrt(out)) in EfficientNet, biases 0).
 */
#include "common/check.h"
#include "worker/models/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct mb_ctx {
    net *m;
    const model_cfg *c;
    const model_opts *o;
    float eps, momentum;
} mb_ctx;

static int act(net *m, mc_act a, int x)
{
    switch (a) {
    case MC_ACT_RELU6:
        return net_relu6(m, x);
    case MC_ACT_RELU:
        return net_relu(m, x);
    case MC_ACT_HSWISH:
        return net_hswish(m, x);
    case MC_ACT_SILU:
        return net_silu(m, x);
    }
    return x;
}

/* torchvision's conv init: weight N(0, 2 / fan_out), fan_out = OC*k*k; bias 0. */
static void fan_out_init(const mb_ctx *b, int y)
{
    if (b->c->arch == MC_MOBILENETV2)
        return;
    const net_node *n = &b->m->nodes[b->m->acts[y].producer];
    net_tensor *w = &b->m->tensors[n->t[0]];
    w->init = NET_INIT_NORMAL;
    w->init_a = sqrtf(2.0f / (float)(w->shape[0] * w->shape[2] * w->shape[3]));
    if (n->t[1] >= 0) {
        b->m->tensors[n->t[1]].init = NET_INIT_ZERO;
        b->m->tensors[n->t[1]].init_a = 0;
    }
}

static int conv(const mb_ctx *b, const char *name, int x, int OC, int k, int stride, int groups,
                int bias)
{
    int y = net_conv(b->m, name, x, OC, k, stride, k / 2, groups, bias);
    fan_out_init(b, y);
    return y;
}

static int conv_bn(const mb_ctx *b, const char *conv_name, const char *bn, int x, int OC, int k,
                   int stride, int groups)
{
    int y = conv(b, conv_name, x, OC, k, stride, groups, 0);
    return net_bn(b->m, bn, y, b->eps, b->momentum);
}

/* conv + BN + act as a Conv2dNormActivation `prefix` (prefix.0, prefix.1),
 * with the scaling site after the act (site_first: between BN and act). */
static int conv_bn_act(const mb_ctx *b, const char *prefix, int x, int OC, int k, int stride,
                       int groups, mc_act a, int site_first)
{
    char cn[NET_NAME_MAX], bn[NET_NAME_MAX];
    KILN_CHECK(strlen(prefix) + 2 < sizeof cn);
    snprintf(cn, sizeof cn, "%s.0", prefix);
    snprintf(bn, sizeof bn, "%s.1", prefix);
    int y = conv_bn(b, cn, bn, x, OC, k, stride, groups);
    if (site_first)
        return act(b->m, a, model_site(b->o, b->m, y, bn));
    return model_site(b->o, b->m, act(b->m, a, y), bn);
}

/* Squeeze-excitation `prefix` of width se on x (hidden channels). */
static int squeeze_excite(const mb_ctx *b, const char *prefix, int x, int hidden, int se)
{
    char name[NET_NAME_MAX];
    int v3 = b->c->arch == MC_MOBILENETV3;
    KILN_CHECK(strlen(prefix) + 4 < sizeof name);
    int s = net_avgpool(b->m, x);
    snprintf(name, sizeof name, "%s.fc1", prefix);
    s = conv(b, name, s, se, 1, 1, 1, 1);
    s = v3 ? net_relu(b->m, s) : net_silu(b->m, s);
    s = model_site(b->o, b->m, s, name); /* SE's width follows the block's (prunespace.h) */
    snprintf(name, sizeof name, "%s.fc2", prefix);
    s = conv(b, name, s, hidden, 1, 1, 1, 1);
    s = v3 ? net_hsigmoid(b->m, s) : net_sigmoid(b->m, s);
    return net_chmul(b->m, x, s);
}

/* Inverted residual i on t (cin channels); returns its output. */
static int block(const mb_ctx *b, int i, int t, int cin)
{
    const model_cfg *c = b->c;
    const mc_mbblock *k = &c->blocks[i];
    char pre[32], name[64], bn[64]; /* "features.S.J" and a few components */
    modelcfg_mb_block_name(c, i, pre, sizeof pre);
    const char *inner = modelcfg_mb_inner(c);
    int idx = 0, y = t;
    if (k->hidden != cin) {
        snprintf(name, sizeof name, "%s.%s.%d", pre, inner, idx++);
        y = conv_bn_act(b, name, y, k->hidden, 1, 1, 1, k->act, 0);
    }
    snprintf(name, sizeof name, "%s.%s.%d", pre, inner, idx++);
    y = conv_bn_act(b, name, y, k->hidden, k->kernel, k->stride, k->hidden, k->act, 0);
    if (k->se > 0) {
        snprintf(name, sizeof name, "%s.%s.%d", pre, inner, idx++);
        y = squeeze_excite(b, name, y, k->hidden, k->se);
    }
    modelcfg_mb_project_names(c, i, name, bn, sizeof name);
    y = model_site(b->o, b->m, conv_bn(b, name, bn, y, k->out, 1, 1, 1), bn);
    if (!(k->stride == 1 && cin == k->out))
        return y;
    if (c->arch == MC_EFFICIENTNET && c->drop_path > 0)
        y = net_droppath(b->m, y, (float)(c->drop_path * i / c->n_blocks));
    return model_join(b->o, b->m, t, y, pre);
}

int mobilenet_build(net *m, const model_cfg *c, int x, const model_opts *o)
{
    int v3 = c->arch == MC_MOBILENETV3;
    mb_ctx b = {m, c, o, v3 ? 1e-3f : MODEL_BN_EPS, v3 ? 0.01f : MODEL_BN_MOMENTUM};
    mc_act fam = modelcfg_mb_act(c->arch);
    int t = conv_bn_act(&b, "features.0", x, c->mb_stem, 3, c->cifar ? 1 : 2, 1, fam, 1);
    int cin = c->mb_stem;
    for (int i = 0; i < c->n_blocks; i++) {
        t = block(&b, i, t, cin);
        cin = c->blocks[i].out;
    }
    char last[32];
    snprintf(last, sizeof last, "features.%d", modelcfg_mb_last_index(c));
    t = conv_bn_act(&b, last, t, c->last, 1, 1, 1, fam, 1);
    t = net_avgpool(m, t);
    const char *fc = modelcfg_mb_classifier(c);
    switch (c->arch) {
    case MC_MOBILENETV3:
        t = net_linear(m, "classifier.0", t, c->head_width, 1, NET_INIT_NORMAL, 0.01f);
        t = net_hswish(m, t);
        if (c->dropout > 0)
            t = net_dropout(m, t, (float)c->dropout);
        return net_linear(m, fc, t, c->num_classes, 1, NET_INIT_NORMAL, 0.01f);
    case MC_EFFICIENTNET:
        if (c->dropout > 0)
            t = net_dropout(m, t, (float)c->dropout);
        return net_linear(m, fc, t, c->num_classes, 1, NET_INIT_UNIFORM,
                          1.0f / sqrtf((float)c->num_classes));
    default:
        return net_linear(m, fc, t, c->num_classes, 1, NET_INIT_UNIFORM, 0);
    }
}
