/* mobilenetv2.c - MobileNetV2 (torchvision layout) as a net.
 *
 * features.0 = conv 3x3 (stride 1 for the CIFAR variant, else 2) + BN +
 * ReLU6; features.1..nb = inverted residuals: [1x1 expand + BN + ReLU6 when
 * hidden != cin] -> 3x3 depthwise + BN + ReLU6 -> 1x1 project + BN, plus the
 * input when stride 1 and cin == out; features.nb+1 = 1x1 conv to `last` +
 * BN + ReLU6; global average pool and classifier.1 (Linear). Sub-module
 * indices follow torchvision, shifting down by one without expansion.
 * Scaling sites (model.h) follow DMCP: after BN for the stem, the
 * projection and the last conv; after BN + ReLU6 for the expansion and
 * depthwise convs. Every residual add is a join (model.h).
 * PyTorch's default initialisation.
 */
#include "worker/models/model.h"

#include <stdio.h>

static int conv_bn(net *m, const char *conv, const char *bn, int x, int OC, int k, int stride,
                   int groups)
{
    int y = net_conv(m, conv, x, OC, k, stride, k / 2, groups, 0);
    return net_bn(m, bn, y, MODEL_BN_EPS, MODEL_BN_MOMENTUM);
}

int mobilenetv2_build(net *m, const model_cfg *c, int x, const model_opts *o)
{
    int t = conv_bn(m, "features.0.0", "features.0.1", x, c->mb_stem, 3, c->cifar ? 1 : 2, 1);
    t = net_relu6(m, model_site(o, m, t, "features.0.1"));
    int cin = c->mb_stem;
    char cn[NET_NAME_MAX], bn[NET_NAME_MAX];
    for (int i = 0; i < c->n_blocks; i++) {
        const mc_mbblock *b = &c->blocks[i];
        int f = i + 1, idx = 0, y = t;
        if (b->hidden != cin) {
            snprintf(cn, sizeof cn, "features.%d.conv.0.0", f);
            snprintf(bn, sizeof bn, "features.%d.conv.0.1", f);
            y = net_relu6(m, conv_bn(m, cn, bn, y, b->hidden, 1, 1, 1));
            y = model_site(o, m, y, bn);
            idx = 1;
        }
        snprintf(cn, sizeof cn, "features.%d.conv.%d.0", f, idx);
        snprintf(bn, sizeof bn, "features.%d.conv.%d.1", f, idx);
        y = net_relu6(m, conv_bn(m, cn, bn, y, b->hidden, 3, b->stride, b->hidden));
        y = model_site(o, m, y, bn);
        snprintf(cn, sizeof cn, "features.%d.conv.%d", f, idx + 1);
        snprintf(bn, sizeof bn, "features.%d.conv.%d", f, idx + 2);
        y = model_site(o, m, conv_bn(m, cn, bn, y, b->out, 1, 1, 1), bn);
        if (b->stride == 1 && cin == b->out) {
            snprintf(cn, sizeof cn, "features.%d", f);
            t = model_join(o, m, t, y, cn);
        } else {
            t = y;
        }
        cin = b->out;
    }
    snprintf(cn, sizeof cn, "features.%d.0", c->n_blocks + 1);
    snprintf(bn, sizeof bn, "features.%d.1", c->n_blocks + 1);
    t = net_relu6(m, model_site(o, m, conv_bn(m, cn, bn, t, c->last, 1, 1, 1), bn));
    t = net_avgpool(m, t);
    return net_linear(m, "classifier.1", t, c->num_classes, 1, NET_INIT_UNIFORM, 0);
}
