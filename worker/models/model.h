/* model.h - building a network from a model config, and the ViT modules.
 *
 * model_build turns a model_cfg (common/modelcfg.h) into a finalised net
 * whose tensors carry PyTorch's state_dict names and shapes, so weights
 * load from and save to the reference files unchanged. The family builders
 * are in vit.c (CeiT, DeiT and any mix of their stem/ffn/head switches),
 * resnet.c (ResNet, CIFAR and ImageNet forms) and mobilenet.c (MobileNetV2,
 * MobileNetV3, EfficientNet). The ViT modules are public so
 * that the reference tests can build a single block, LeFF or LCA block.
 * Builders only append to the net; they do no I/O.
 */
#ifndef KILN_MODELS_MODEL_H
#define KILN_MODELS_MODEL_H

#include "common/err.h"
#include "common/modelcfg.h"
#include "worker/models/net.h"

#include <stdint.h>

#define MODEL_BN_EPS      1e-5f
#define MODEL_BN_MOMENTUM 0.1f
#define MODEL_LN_EPS      1e-6f

/* A scaling site of the CNN builders: called right after BatchNorm `bn`
 * (state_dict prefix) - after its activation for the MobileNet family's
 * expansion and depthwise convs, before it everywhere else, the placements
 * of DMCP (ALGORITHMS.md 2.3) - or after a squeeze-excitation's fc1 and its
 * activation (`bn` is then the fc1's prefix), with the activation x; returns
 * the activation the network continues with (x itself to leave it alone).
 * DMCP's architecture step inserts net_chscale nodes here. */
typedef int (*model_site_fn)(void *ctx, net *m, int x, const char *bn);

/* A residual join of the CNN builders: block `block` (state_dict prefix,
 * "layer2.1", "features.5") adds its branch fx to its shortcut x (before
 * ResNet's ReLU); returns the sum. DNA's architecture step scales the
 * branch of a droppable block by its keep probability here (net_scaleadd). */
typedef int (*model_join_fn)(void *ctx, net *m, int x, int fx, const char *block);

typedef struct model_opts {
    float drop_path;    /* ViT stochastic depth of the last block (block i gets rate*i/(depth-1)) */
    model_site_fn site; /* CNN scaling sites (NULL: none) */
    void *site_ctx;     /* passed to site */
    model_join_fn join; /* CNN residual joins (NULL: net_add) */
    void *join_ctx;     /* passed to join */
} model_opts;

/* Builds the network of c into m (freshly net_init'ed), finalises it for
 * batches up to max_batch and initialises its parameters from seed.
 * opts may be NULL (defaults). Returns 0, ERR_INVALID (eb says why) or
 * ERR_NOMEM (the model's buffers do not fit in this host's memory). */
int model_build(net *m, const model_cfg *c, int max_batch, uint64_t seed, const model_opts *opts,
                errbuf *eb);

/* Family builders: append the network to m (after net_input) and return the
 * logits activation. o (may be NULL) gives the scaling sites. */
int vit_build(net *m, const model_cfg *c, int x, float drop_path);
int resnet_build(net *m, const model_cfg *c, int x, const model_opts *o);
/* MobileNetV2, MobileNetV3 and EfficientNet (mobilenet.c). */
int mobilenet_build(net *m, const model_cfg *c, int x, const model_opts *o);

/* The builders' call of o->site (x itself when o or o->site is NULL). */
int model_site(const model_opts *o, net *m, int x, const char *bn);

/* The builders' call of o->join (net_add(x, fx) when o or o->join is NULL). */
int model_join(const model_opts *o, net *m, int x, int fx, const char *block);

/* ViT modules on a token sequence x (T, 1, C); `prefix` is the module's
 * state_dict prefix ("" for none). They return the output activation, or -1
 * if the shapes do not fit (LeFF patch tokens not forming a square grid). */
typedef struct vit_params {
    int heads;
    int hidden; /* MLP / LeFF hidden width */
    int leff;   /* ffn is LeFF (else MLP) */
    int leff_kernel;
    float ln_eps, bn_eps, bn_momentum;
} vit_params;

/* The module parameters of a ViT config, with the model's eps/momentum. */
void vit_params_from_cfg(vit_params *p, const model_cfg *c);

/* qkv (Linear C->3C) -> attention core -> proj (Linear C->C). */
int vit_attention(net *m, const char *prefix, int x, int heads, int query);
/* fc1 (C->hidden) -> GELU -> fc2 (hidden->C). */
int vit_mlp(net *m, const char *prefix, int x, int hidden);
/* LeFF: patch tokens through 1x1 conv, BN, GELU, kxk depthwise, BN, GELU,
 * 1x1 conv, BN; the class token passes through as given. */
int vit_leff(net *m, const char *prefix, int x, const vit_params *p);
/* Pre-LN encoder block: x + dp(attn(LN1 x)), then + dp(ffn(LN2 .)).
 * If cls_only, only the class token of the output is produced (a (1, 1, C)
 * activation), which is all an LCA head reads of the last block; the rest
 * of a LeFF then runs forward only in training, to keep its BN statistics
 * as PyTorch does. */
int vit_block(net *m, const char *prefix, int x, const vit_params *p, float drop_path,
              int cls_only);
/* LCA block on stacked class tokens (L, 1, C): the last token queries all. */
int vit_lca_block(net *m, const char *prefix, int x, const vit_params *p);

#endif
