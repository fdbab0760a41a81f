/* modelmem.c - a rank's memory need from a model config (see modelmem.h).
 *
 * Per sample, `acts` counts the floats of every layer output the worker keeps
 * (conv, norm, activation, sum, token outputs) and `scratch` the largest
 * per-sample scratch of one layer (im2col of a conv, attention
 * probabilities). The worker keeps a gradient beside each output, hence the
 * factor 2.
 */
#include "common/modelmem.h"

/* Per-layer statistics, BN buffers and the program's own tables. */
#define MODELMEM_FIXED_BYTES (1024.0 * 1024.0)

typedef struct tally {
    double acts;    /* floats per sample kept from forward for backward */
    double peak;    /* floats per sample of the largest layer output */
    double scratch; /* floats per sample, the largest single need */
} tally;

static long side_out(long h, long k, long s, long p)
{
    return (h + 2 * p - k) / s + 1;
}

static void keep(tally *t, double floats, double copies)
{
    t->acts += copies * floats;
    if (floats > t->peak)
        t->peak = floats;
}

static void need_scratch(tally *t, double floats)
{
    if (floats > t->scratch)
        t->scratch = floats;
}

/* A conv (ho x ho x oc output) followed by its BatchNorm and activation. */
static void conv_bn(tally *t, long k, long ic, long groups, long ho, long oc)
{
    double out = (double)ho * (double)ho * (double)oc;
    keep(t, out, 1.25); /* conv and activation, mostly sharing memory by the plan */
    if (k > 1 && groups == 1)
        need_scratch(t, (double)k * k * (double)ic * (double)ho * (double)ho);
}

/* A ResNet's stages from a stem output of side hw and cin channels: BasicBlocks (two
 * 3x3) or Bottlenecks (1x1, 3x3, 1x1), stride 2 on a stage's first block after the
 * first stage (on its 3x3), a 1x1 shortcut where the shape changes; then the head. */
static void resnet_stages_tally(const model_cfg *c, tally *t, long hw, long cin)
{
    for (int i = 0; i < c->n_stages; i++) {
        long w = c->stages[i].width;
        for (int b = 0; b < c->stages[i].n_blocks; b++) {
            long stride = (i > 0 && b == 0) ? 2 : 1;
            long ho = side_out(hw, 3, stride, 1), mid = c->stages[i].mids[b];
            if (c->block == MC_BLOCK_BOTTLENECK) {
                long mid2 = c->stages[i].mids2[b];
                conv_bn(t, 1, cin, 1, hw, mid);
                conv_bn(t, 3, mid, 1, ho, mid2);
                conv_bn(t, 1, mid2, 1, ho, w);
            } else {
                conv_bn(t, 3, cin, 1, ho, mid);
                conv_bn(t, 3, mid, 1, ho, w);
            }
            if (stride != 1 || cin != w)
                conv_bn(t, 1, cin, 1, ho, w);
            keep(t, (double)ho * (double)ho * (double)w, 1.0); /* sum and relu */
            hw = ho;
            cin = w;
        }
    }
    t->acts += (double)cin + c->num_classes;
}

/* ResNet-CIFAR: a 3x3 stem at full resolution. */
static void resnet_tally(const model_cfg *c, tally *t)
{
    long hw = c->image_size, cin = c->stem_width;
    conv_bn(t, 3, c->in_channels, 1, hw, cin);
    resnet_stages_tally(c, t, hw, cin);
}

/* torchvision's ResNet: 7x7/2 stem and 3x3/2 max-pool. */
static void resnet_imagenet_tally(const model_cfg *c, tally *t)
{
    long hw = side_out(c->image_size, 7, 2, 3), cin = c->stem_width;
    conv_bn(t, 7, c->in_channels, 1, hw, cin);
    hw = side_out(hw, 3, 2, 1);
    keep(t, (double)hw * (double)hw * (double)cin, 1.0); /* the pool */
    resnet_stages_tally(c, t, hw, cin);
}

/* MobileNetV2, MobileNetV3 and EfficientNet: an activation beside each
 * conv + BN but MobileNetV2's (fused with its BN), and per SE block its
 * gate and scaled output. */
static void mb_tally(const model_cfg *c, tally *t)
{
    long hw = side_out(c->image_size, 3, c->cifar ? 1 : 2, 1), cin = c->mb_stem;
    double act = c->arch == MC_MOBILENETV2 ? 0.0 : 1.0;
    conv_bn(t, 3, c->in_channels, 1, hw, cin);
    for (int i = 0; i < c->n_blocks; i++) {
        const mc_mbblock *b = &c->blocks[i];
        long hid = b->hidden, out = b->out;
        long ho = side_out(hw, b->kernel, b->stride, b->kernel / 2);
        if (hid != cin) {
            conv_bn(t, 1, cin, 1, hw, hid);
            keep(t, (double)hw * (double)hw * (double)hid, act);
        }
        conv_bn(t, b->kernel, hid, hid, ho, hid);
        keep(t, (double)ho * (double)ho * (double)hid, act);
        if (b->se > 0) {
            keep(t, (double)ho * (double)ho * (double)hid, 1.0);
            t->acts += 4.0 * hid + 2.0 * b->se;
        }
        conv_bn(t, 1, hid, 1, ho, out);
        keep(t, (double)ho * (double)ho * (double)out, 1.0); /* sum */
        hw = ho;
        cin = out;
    }
    conv_bn(t, 1, cin, 1, hw, c->last);
    keep(t, (double)hw * (double)hw * (double)c->last, act);
    t->acts += (double)c->last + 2.0 * c->head_width + c->num_classes;
}

/* One transformer block on `tokens` tokens of width C: norms, qkv,
 * attention output and probabilities, projection, sums, then the FFN. */
static void vit_block(const model_cfg *c, tally *t, double tokens)
{
    double C = c->embed_dim, h = c->hidden, g2 = (double)c->grid * c->grid;
    double probs = (double)c->num_heads * tokens * tokens;
    keep(t, tokens * C, 7.0); /* qkv (3), attention output, projection, two sums */
    keep(t, probs, 1.0);
    need_scratch(t, 2.0 * probs + 3.0 * tokens * C);
    if (c->ffn == MC_FFN_LEFF) {
        keep(t, g2 * h, 3.0); /* two convs and their activations */
        keep(t, g2 * C, 2.0);
        keep(t, tokens * C, 2.0);
        need_scratch(t, (double)c->leff_kernel * c->leff_kernel * h * g2);
    } else {
        keep(t, tokens * h, 2.0);
        keep(t, tokens * C, 1.0);
    }
}

static void vit_tally(const model_cfg *c, tally *t)
{
    double C = c->embed_dim, g2 = (double)c->grid * c->grid, tokens = g2 + 1;
    if (c->stem == MC_STEM_I2T) {
        long ho = side_out(c->image_size, c->stem_kernel, c->stem_stride, c->stem_kernel / 2);
        conv_bn(t, c->stem_kernel, c->in_channels, 1, ho, c->stem_channels);
        keep(t, (double)c->stem_fm * c->stem_fm * c->stem_channels, 1.0); /* pool */
        need_scratch(t, (double)c->patch_size * c->patch_size * c->stem_channels * g2);
    } else {
        need_scratch(t, (double)c->patch_size * c->patch_size * c->in_channels * g2);
    }
    keep(t, g2 * C, 1.0);     /* patch embedding */
    keep(t, tokens * C, 1.0); /* tokens with positions */
    for (int l = 0; l < c->depth; l++)
        vit_block(c, t, tokens);
    if (c->head == MC_HEAD_LCA) { /* the class tokens of every block, one more block on them */
        double L = c->depth;
        t->acts += L * C * 3.0 + (double)c->num_heads * L + C * 8.0 + 2.0 * c->hidden;
    }
    t->acts += 2.0 * C + c->num_classes;
}

void modelmem_estimate(const model_cfg *c, int batch, int ema, model_memory *out)
{
    tally t = {0, 0, 0};
    switch (c->arch) {
    case MC_CEIT:
    case MC_DEIT:
        vit_tally(c, &t);
        break;
    case MC_RESNET_CIFAR:
        resnet_tally(c, &t);
        break;
    case MC_RESNET:
        resnet_imagenet_tally(c, &t);
        break;
    case MC_MOBILENETV2:
    case MC_MOBILENETV3:
    case MC_EFFICIENTNET:
        mb_tally(c, &t);
        break;
    }
    t.acts += (double)c->image_size * c->image_size * c->in_channels; /* the input */
    out->params = (double)modelcfg_params(c);
    out->state_bytes = (4.0 + (ema ? 1.0 : 0.0)) * out->params * sizeof(float);
    /* the gradients in flight: a few layer outputs at a time */
    out->act_bytes =
        (double)(batch > 0 ? batch : 1) * (t.acts + 2.0 * t.peak + t.scratch) * sizeof(float);
    out->act_bytes += MODELMEM_FIXED_BYTES;
    out->total_bytes = out->state_bytes + out->act_bytes;
}
