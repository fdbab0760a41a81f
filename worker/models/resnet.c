/* resnet.c - ResNet for small images (He et al. 2016, sec. 4.2) as a net.
 *
 * conv1 3x3 -> bn1 -> ReLU, then BasicBlocks (layer{i+1}.{j}): conv1 3x3
 * (stride 2 for the first block of every stage but the first) -> bn1 ->
 * ReLU -> conv2 3x3 -> bn2, plus the identity or a 1x1 conv + BN projection
 * (downsample.0/.1) where the shape changes, then ReLU of the sum; global
 * average pool and fc. Every width is explicit in the config, so a pruned
 * or adapted network is the same builder with other numbers. Every BN
 * output passes a scaling site (model.h) before its ReLU or residual add,
 * and every residual add is a join (model.h).
 * PyTorch's default initialisation.
 */
#include "worker/models/model.h"

#include <stdio.h>

/* conv -> BN -> scaling site; `block` "" names top-level modules. */
static int conv_bn(net *m, const model_opts *o, const char *block, const char *conv, const char *bn,
                   int x, int OC, int k, int stride, int pad)
{
    char cname[NET_NAME_MAX], bname[NET_NAME_MAX];
    snprintf(cname, sizeof cname, "%s%s%s", block, block[0] ? "." : "", conv);
    snprintf(bname, sizeof bname, "%s%s%s", block, block[0] ? "." : "", bn);
    int y = net_conv(m, cname, x, OC, k, stride, pad, 1, 0);
    y = net_bn(m, bname, y, MODEL_BN_EPS, MODEL_BN_MOMENTUM);
    return model_site(o, m, y, bname);
}

int resnet_build(net *m, const model_cfg *c, int x, const model_opts *o)
{
    int t = net_relu(m, conv_bn(m, o, "", "conv1", "bn1", x, c->stem_width, 3, 1, 1));
    int cin = c->stem_width;
    for (int i = 0; i < c->n_stages; i++) {
        const mc_stage *s = &c->stages[i];
        for (int j = 0; j < s->n_blocks; j++) {
            char block[32];
            snprintf(block, sizeof block, "layer%d.%d", i + 1, j);
            int stride = (i > 0 && j == 0) ? 2 : 1;
            int y = net_relu(m, conv_bn(m, o, block, "conv1", "bn1", t, s->mids[j], 3, stride, 1));
            y = conv_bn(m, o, block, "conv2", "bn2", y, s->width, 3, 1, 1);
            int shortcut = t;
            if (stride != 1 || cin != s->width)
                shortcut =
                    conv_bn(m, o, block, "downsample.0", "downsample.1", t, s->width, 1, stride, 0);
            t = net_relu(m, model_join(o, m, shortcut, y, block));
            cin = s->width;
        }
    }
    t = net_avgpool(m, t);
    return net_linear(m, "fc", t, c->num_classes, 1, NET_INIT_UNIFORM, 0);
}
