/* vit.c - CeiT, DeiT and their mixes as nets (see model.h).
 *
 * The three switches of a ViT config are independent: stem (i2t or
 * patchify), ffn (leff or mlp) and head (lca or cls); "ceit" and "deit" are
 * only names. Names and registration order follow the reference models
 * (shared/reference/torch/models.py): cls_token, pos_embed,
 * pos_layer_embed, then the stem, blocks.{i}, lca, norm, head.
 * Initialisation as the official code: Linear trunc-normal(0.02) with zero
 * bias, LayerNorm (1, 0), cls_token and pos_embed trunc-normal(0.02),
 * pos_layer_embed zero, convolutions PyTorch's default uniform.
 */
#include "worker/models/model.h"
#include "worker/nn/attention.h"

#include <stdio.h>

#define VIT_LINEAR_STD 0.02f

static void join(char *buf, size_t len, const char *prefix, const char *leaf)
{
    if (prefix[0] != '\0')
        snprintf(buf, len, "%s.%s", prefix, leaf);
    else
        snprintf(buf, len, "%s", leaf);
}

static int linear(net *m, const char *prefix, const char *leaf, int x, int out)
{
    char name[NET_NAME_MAX];
    join(name, sizeof name, prefix, leaf);
    return net_linear(m, name, x, out, 1, NET_INIT_TRUNC_NORMAL, VIT_LINEAR_STD);
}

int vit_attention(net *m, const char *prefix, int x, int heads, int query)
{
    int C = m->acts[x].C;
    int qkv = linear(m, prefix, "qkv", x, 3 * C);
    int a = net_attention(m, qkv, heads, query);
    return linear(m, prefix, "proj", a, C);
}

int vit_mlp(net *m, const char *prefix, int x, int hidden)
{
    int C = m->acts[x].C;
    int h = net_gelu(m, linear(m, prefix, "fc1", x, hidden));
    return linear(m, prefix, "fc2", h, C);
}

void vit_params_from_cfg(vit_params *p, const model_cfg *c)
{
    p->heads = c->num_heads;
    p->hidden = c->hidden;
    p->leff = c->ffn == MC_FFN_LEFF;
    p->leff_kernel = c->leff_kernel;
    p->ln_eps = MODEL_LN_EPS;
    p->bn_eps = MODEL_BN_EPS;
    p->bn_momentum = MODEL_BN_MOMENTUM;
}

int vit_leff(net *m, const char *prefix, int x, const vit_params *p)
{
    int hidden = p->hidden, kernel = p->leff_kernel;
    const net_act *a = &m->acts[x];
    int C = a->C, T = a->H * a->W, side = 0;
    while ((side + 1) * (side + 1) <= T - 1)
        side++;
    if (side * side != T - 1 || side == 0)
        return -1; /* the patch tokens do not form a square grid */
    char name[NET_NAME_MAX];
    int t = net_slice(m, x, 1, side, side);
    join(name, sizeof name, prefix, "conv1");
    t = net_conv(m, name, t, hidden, 1, 1, 0, 1, 1);
    join(name, sizeof name, prefix, "bn1");
    t = net_gelu(m, net_bn(m, name, t, p->bn_eps, p->bn_momentum));
    join(name, sizeof name, prefix, "conv2");
    t = net_conv(m, name, t, hidden, kernel, 1, kernel / 2, hidden, 1);
    join(name, sizeof name, prefix, "bn2");
    t = net_gelu(m, net_bn(m, name, t, p->bn_eps, p->bn_momentum));
    join(name, sizeof name, prefix, "conv3");
    t = net_conv(m, name, t, C, 1, 1, 0, 1, 1);
    join(name, sizeof name, prefix, "bn3");
    t = net_bn(m, name, t, p->bn_eps, p->bn_momentum);
    return net_join_cls(m, x, t);
}

int vit_block(net *m, const char *prefix, int x, const vit_params *p, float drop_path, int cls_only)
{
    char name[NET_NAME_MAX];
    join(name, sizeof name, prefix, "norm1");
    int h = net_layernorm(m, name, x, p->ln_eps);
    join(name, sizeof name, prefix, "attn");
    h = vit_attention(m, name, h, p->heads, NN_ATTN_ALL_QUERIES);
    if (drop_path > 0)
        h = net_droppath(m, h, drop_path);
    int x1 = net_add(m, x, h);
    join(name, sizeof name, prefix, "norm2");
    int z = net_layernorm(m, name, x1, p->ln_eps);
    int f;
    if (p->leff) {
        join(name, sizeof name, prefix, "leff");
        int leff = vit_leff(m, name, z, p);
        if (leff < 0)
            return -1;
        /* LeFF passes the (normalised) class token through unchanged, so the
         * class token of its output is z's: an LCA head needs nothing else. */
        f = cls_only ? net_slice(m, z, 0, 1, 1) : leff;
    } else {
        join(name, sizeof name, prefix, "mlp");
        f = vit_mlp(m, name, cls_only ? net_slice(m, z, 0, 1, 1) : z, p->hidden);
    }
    if (drop_path > 0)
        f = net_droppath(m, f, drop_path);
    return net_add(m, cls_only ? net_slice(m, x1, 0, 1, 1) : x1, f);
}

int vit_lca_block(net *m, const char *prefix, int x, const vit_params *p)
{
    char name[NET_NAME_MAX];
    int L = m->acts[x].H * m->acts[x].W;
    join(name, sizeof name, prefix, "norm1");
    int h = net_layernorm(m, name, x, p->ln_eps);
    join(name, sizeof name, prefix, "attn");
    h = vit_attention(m, name, h, p->heads, L - 1);
    int y = net_add(m, net_slice(m, x, L - 1, 1, 1), h);
    join(name, sizeof name, prefix, "norm2");
    int z = net_layernorm(m, name, y, p->ln_eps);
    join(name, sizeof name, prefix, "feedforward");
    return net_add(m, y, vit_mlp(m, name, z, p->hidden));
}

int vit_build(net *m, const model_cfg *c, int x, float drop_path)
{
    int D = c->embed_dim, n = c->grid * c->grid;
    int one_d[3] = {1, 1, D}, pos_shape[3] = {1, 1 + n, D}, layer_shape[3] = {1, c->depth, D};
    int cls =
        net_tensor_add(m, "cls_token", NET_PARAM, 3, one_d, NET_INIT_TRUNC_NORMAL, VIT_LINEAR_STD);
    int pos = net_tensor_add(m, "pos_embed", NET_PARAM, 3, pos_shape, NET_INIT_TRUNC_NORMAL,
                             VIT_LINEAR_STD);
    int pos_layer = -1;
    if (c->head == MC_HEAD_LCA)
        pos_layer =
            net_tensor_add(m, "pos_layer_embed", NET_PARAM, 3, layer_shape, NET_INIT_ZERO, 0);
    int t;
    if (c->stem == MC_STEM_I2T) {
        t = net_conv(m, "i2t.backbone.conv", x, c->stem_channels, c->stem_kernel, c->stem_stride,
                     c->stem_kernel / 2, 1, 0);
        t = net_bn(m, "i2t.backbone.bn", t, MODEL_BN_EPS, MODEL_BN_MOMENTUM);
        if (c->stem_pool)
            t = net_maxpool(m, t, 3, 2, 1);
        t = net_conv(m, "i2t.proj", t, D, c->patch_size, c->patch_size, 0, 1, 1);
    } else {
        t = net_conv(m, "patch_embed.proj", x, D, c->patch_size, c->patch_size, 0, 1, 1);
    }
    if (m->acts[t].H != c->grid || m->acts[t].W != c->grid)
        return -1;
    t = net_tokens(m, t, cls, pos);
    vit_params p;
    vit_params_from_cfg(&p, c);
    int cls_outs[MC_MAX_DEPTH];
    for (int i = 0; i < c->depth; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "blocks.%d", i);
        float dp = c->depth > 1 ? drop_path * (float)i / (float)(c->depth - 1) : 0.0f;
        int last_for_lca = c->head == MC_HEAD_LCA && i == c->depth - 1;
        t = vit_block(m, prefix, t, &p, dp, last_for_lca);
        if (t < 0)
            return -1;
        cls_outs[i] = t;
    }
    if (c->head == MC_HEAD_LCA) {
        t = net_stack(m, cls_outs, c->depth, pos_layer);
        t = vit_lca_block(m, "lca", t, &p);
    } else {
        t = net_slice(m, t, 0, 1, 1);
    }
    t = net_layernorm(m, "norm", t, MODEL_LN_EPS);
    return net_linear(m, "head", t, c->num_classes, 1, NET_INIT_TRUNC_NORMAL, VIT_LINEAR_STD);
}
