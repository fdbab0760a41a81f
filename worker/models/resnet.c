/* resnet.c - ResNets as nets: the CIFAR form (He et al. 2016, sec. 4.2) and
 * torchvision's ImageNet form.
 *
 * CIFAR form (resnet_cifar): conv1 3x3 -> bn1 -> ReLU, then BasicBlocks.
 * ImageNet form (resnet): conv1 7x7/2 -> bn1 -> ReLU -> max-pool 3/2/1,
 * then BasicBlocks (ResNet-18/34) or Bottlenecks (ResNet-50/101/152).
 * Blocks are layer{i+1}.{j}; the first block of every stage but the first
 * has stride 2. BasicBlock: conv1 3x3 (stride) -> bn1 -> ReLU -> conv2 3x3
 * -> bn2. Bottleneck (torchvision's "v1.5", stride on the 3x3): conv1 1x1
 * -> bn1 -> ReLU -> conv2 3x3 (stride) -> bn2 -> ReLU -> conv3 1x1 -> bn3.
 * Either adds the identity or a 1x1 conv + BN projection (downsample.0/.1)
 * where the shape changes, then ReLU of the sum; global average pool and
 * fc. Every width is explicit in the config, so a pruned or adapted network
 * is the same builder with other numbers. Every BN output passes a scaling
 * site (model.h) before its ReLU or residual add, and every residual add is
 * a join (model.h).
 * Initialisation: the CIFAR form PyTorch's default; the ImageNet form
 * torchvision's (convs Kaiming-normal, fan-out, ReLU gain; BN (1, 0); fc
 * PyTorch's default).
 */
#include "worker/models/model.h"

#include <math.h>
#include <stdio.h>

typedef struct resnet_ctx {
    net *m;
    const model_opts *o;
    int kaiming; /* torchvision's conv init */
} resnet_ctx;

/* conv -> BN -> scaling site; `block` "" names top-level modules. */
static int conv_bn(const resnet_ctx *r, const char *block, const char *conv, const char *bn, int x,
                   int OC, int k, int stride, int pad)
{
    char cname[NET_NAME_MAX], bname[NET_NAME_MAX];
    snprintf(cname, sizeof cname, "%s%s%s", block, block[0] ? "." : "", conv);
    snprintf(bname, sizeof bname, "%s%s%s", block, block[0] ? "." : "", bn);
    net *m = r->m;
    int y = net_conv(m, cname, x, OC, k, stride, pad, 1, 0);
    if (r->kaiming) {
        net_tensor *w = &m->tensors[m->nodes[m->acts[y].producer].t[0]];
        w->init = NET_INIT_NORMAL;
        w->init_a = sqrtf(2.0f / (float)(OC * k * k));
    }
    y = net_bn(m, bname, y, MODEL_BN_EPS, MODEL_BN_MOMENTUM);
    return model_site(r->o, m, y, bname);
}

/* One block of stage s (its index j in the stage) on t with cin channels. */
static int resnet_block(const resnet_ctx *r, const model_cfg *c, int s, int j, int t, int cin)
{
    const mc_stage *st = &c->stages[s];
    char block[32];
    snprintf(block, sizeof block, "layer%d.%d", s + 1, j);
    int stride = (s > 0 && j == 0) ? 2 : 1;
    int y;
    if (c->arch == MC_RESNET && c->block == MC_BLOCK_BOTTLENECK) {
        y = net_relu(r->m, conv_bn(r, block, "conv1", "bn1", t, st->mids[j], 1, 1, 0));
        y = net_relu(r->m, conv_bn(r, block, "conv2", "bn2", y, st->mids2[j], 3, stride, 1));
        y = conv_bn(r, block, "conv3", "bn3", y, st->width, 1, 1, 0);
    } else {
        y = net_relu(r->m, conv_bn(r, block, "conv1", "bn1", t, st->mids[j], 3, stride, 1));
        y = conv_bn(r, block, "conv2", "bn2", y, st->width, 3, 1, 1);
    }
    int shortcut = t;
    if (stride != 1 || cin != st->width)
        shortcut = conv_bn(r, block, "downsample.0", "downsample.1", t, st->width, 1, stride, 0);
    return net_relu(r->m, model_join(r->o, r->m, shortcut, y, block));
}

int resnet_build(net *m, const model_cfg *c, int x, const model_opts *o)
{
    int imagenet = c->arch == MC_RESNET;
    resnet_ctx r = {m, o, imagenet};
    int t;
    if (imagenet) {
        t = net_relu(m, conv_bn(&r, "", "conv1", "bn1", x, c->stem_width, 7, 2, 3));
        t = net_maxpool(m, t, 3, 2, 1);
    } else {
        t = net_relu(m, conv_bn(&r, "", "conv1", "bn1", x, c->stem_width, 3, 1, 1));
    }
    int cin = c->stem_width;
    for (int i = 0; i < c->n_stages; i++) {
        for (int j = 0; j < c->stages[i].n_blocks; j++) {
            t = resnet_block(&r, c, i, j, t, cin);
            cin = c->stages[i].width;
        }
    }
    t = net_avgpool(m, t);
    return net_linear(m, "fc", t, c->num_classes, 1, NET_INIT_UNIFORM, 0);
}
