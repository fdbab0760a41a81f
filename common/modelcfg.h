/* modelcfg.h - model configurations: parse, validate, params and MACs.
 *
 * A model config is the JSON object of shared/reference/README.md ("Model
 * config JSON"): ViT (ceit/deit with stem/ffn/head switches), ResNet-CIFAR
 * (preset {depth, widths} or explicit {stem, stages}), ResNet in the
 * ImageNet form of torchvision ("resnet": preset {depth} = 18/34/50/101/152
 * or explicit {block, stem, stages}), and the MobileNet family of inverted
 * residuals in torchvision's layouts: MobileNetV2 (preset {width_mult} or
 * explicit {stem, blocks, last}), MobileNetV3 (preset {variant: large |
 * small, width_mult} or explicit {stem, blocks, last, head_width}) and
 * EfficientNet (preset {variant: b0..b4} or {width_mult, depth_mult}, or
 * explicit {stem, blocks with their stage, last}). This module turns
 * it into a model_cfg with every default filled and every derived size
 * computed, and counts parameters and multiply-accumulates from the config
 * alone, so that the server can show them without building the model.
 *
 * MAC counting rule (ALGORITHMS.md; DMCP's counter): every conv contributes
 * (kh*kw*IC/groups + bias)*Ho*Wo*OC, every linear (IN + bias)*OUT per row it
 * is applied to, attention adds its two matmuls (q k^T and att v); norms,
 * activations and pools count nothing. A squeeze-excitation block counts
 * its two 1x1 convs (on the pooled 1x1 map, biases included); its pooling,
 * gate activation and channel multiply count nothing, as the MobileNetV3 and
 * EfficientNet papers count MAdds. Pure C + jansson; thread-safe.
 */
#ifndef KILN_MODELCFG_H
#define KILN_MODELCFG_H

#include "common/fielderr.h"

#include <jansson.h>
#include <stddef.h>

#define MC_MAX_STAGES       8
#define MC_MAX_STAGE_BLOCKS 64
#define MC_MAX_MB_BLOCKS    64
#define MC_MAX_DEPTH        64

typedef enum {
    MC_CEIT = 0,
    MC_DEIT,
    MC_RESNET_CIFAR,
    MC_MOBILENETV2,
    MC_RESNET,
    MC_MOBILENETV3,
    MC_EFFICIENTNET
} mc_arch;
typedef enum { MC_BLOCK_BASIC = 0, MC_BLOCK_BOTTLENECK } mc_block;
typedef enum { MC_STEM_PATCHIFY = 0, MC_STEM_I2T } mc_stem;
typedef enum { MC_FFN_MLP = 0, MC_FFN_LEFF } mc_ffn;
typedef enum { MC_HEAD_CLS = 0, MC_HEAD_LCA } mc_head;
/* The activation of a MobileNet-family conv: MobileNetV2 uses ReLU6, MobileNetV3
 * ReLU or h-swish per block, EfficientNet SiLU (swish). */
typedef enum { MC_ACT_RELU6 = 0, MC_ACT_RELU, MC_ACT_HSWISH, MC_ACT_SILU } mc_act;

typedef struct mc_stage {
    int width; /* output (residual) width of the stage */
    int n_blocks;
    int mids[MC_MAX_STAGE_BLOCKS];  /* inner width of each block (a Bottleneck's conv1) */
    int mids2[MC_MAX_STAGE_BLOCKS]; /* Bottleneck only: the conv2 width of each block */
} mc_stage;

/* An inverted residual: [1x1 expansion to hidden] -> kxk depthwise ->
 * [squeeze-excitation of width se] -> 1x1 projection to out, plus the input
 * when stride is 1 and the input has out channels. */
typedef struct mc_mbblock {
    int hidden, out, stride; /* expansion width (== cin: no expansion conv) */
    int kernel;              /* depthwise kernel side (MobileNetV2: 3) */
    int se;                  /* squeeze-excitation width, 0: no SE (MobileNetV2: 0) */
    mc_act act;              /* MobileNetV3 per block; the family's act otherwise */
    int stage;               /* EfficientNet: torchvision's stage (features.{stage+1}); else 0 */
} mc_mbblock;

typedef struct model_cfg {
    mc_arch arch;
    int image_size, in_channels, num_classes;

    /* ViT: arch ceit or deit (the name only; the switches set the structure) */
    int embed_dim, depth, num_heads, patch_size;
    double mlp_ratio; /* default 4 */
    int hidden;       /* derived: floor(embed_dim * mlp_ratio) */
    mc_stem stem;
    int stem_channels, stem_kernel, stem_stride, stem_pool; /* i2t only: defaults -, 3, 1, 1 */
    mc_ffn ffn;
    int leff_kernel; /* default 3 */
    mc_head head;
    int grid;    /* derived: token grid side; tokens = grid*grid + 1 */
    int stem_fm; /* derived: i2t feature-map side after conv (and pool) */

    /* ResNet-CIFAR and ResNet (ImageNet form): both forms are expanded into
     * stem_width + stages. The ImageNet form has a 7x7/2 stem and a 3/2/1
     * max-pool and BasicBlocks or Bottlenecks (torchvision's layout). */
    int preset;       /* 1 if given as {depth, widths} / {depth} / {width_mult} */
    int resnet_depth; /* preset form only */
    mc_block block;   /* ResNet (ImageNet form) only; CIFAR is always basic */
    int stem_width;
    int n_stages;
    mc_stage stages[MC_MAX_STAGES];

    /* The MobileNet family: both forms are expanded into mb_stem + blocks +
     * last (+ head_width) */
    double width_mult; /* preset form only */
    double depth_mult; /* EfficientNet preset form only */
    int variant;       /* preset form only: MobileNetV3 0 large, 1 small; EfficientNet b0.. = 0.. */
    int cifar;         /* stride-1 stem (MobileNetV2, default 1: and its second setting;
                          MobileNetV3 and EfficientNet default 0) */
    int mb_stem;
    int n_blocks;
    mc_mbblock blocks[MC_MAX_MB_BLOCKS];
    int last;         /* the last 1x1 conv's width */
    int head_width;   /* MobileNetV3: the classifier's hidden Linear; else 0 */
    double dropout;   /* MobileNetV3 / EfficientNet: the classifier's dropout */
    double drop_path; /* EfficientNet: stochastic depth of the last block (block i of n
                         gets drop_path * i / n, torchvision's rule) */
} model_cfg;

/* Parses and validates a model config. Field paths in fe are prefixed with
 * `path` (e.g. "model"). Returns 0, or ERR_INVALID with fe filled: unknown
 * fields, wrong types, out-of-range values, heads not dividing embed_dim, a
 * token grid that does not come out square and whole, and so on. */
int modelcfg_parse(model_cfg *c, const json_t *j, const char *path, field_errors *fe);

/* The canonical JSON of c: every default filled, in the form it was given
 * (preset or explicit). New reference. */
json_t *modelcfg_to_json(const model_cfg *c);

/* The explicit-width JSON form (ResNet {stem, stages}, MobileNetV2 {stem,
 * blocks, last}); for ViT the same as modelcfg_to_json. New reference. */
json_t *modelcfg_to_explicit_json(const model_cfg *c);

/* Number of trainable parameters (buffers excluded). */
long modelcfg_params(const model_cfg *c);

/* Multiply-accumulates of one forward pass of one image, by the rule above. */
double modelcfg_macs(const model_cfg *c);

/* Whether the arch is a ResNet (either form): stem_width + stages describe it. */
int modelcfg_is_resnet(mc_arch a);

/* The arch's name as the config spells it ("ceit", "resnet_cifar", ...). */
const char *modelcfg_arch_name(mc_arch a);

/* Whether the arch is of the MobileNet family (mb_stem + blocks + last). */
int modelcfg_is_mb(mc_arch a);

/* state_dict names of the MobileNet family, as torchvision lays them out:
 * block i's prefix ("features.5"; EfficientNet "features.3.1"), the name of
 * the Sequential inside a block ("conv" for MobileNetV2, "block"), the
 * index of the last 1x1 conv under features, and the classifier's final
 * Linear ("classifier.1"; MobileNetV3 "classifier.3"). The name fits in
 * len bytes when len >= 32. */
void modelcfg_mb_block_name(const model_cfg *c, int i, char *buf, size_t len);
const char *modelcfg_mb_inner(const model_cfg *c);
int modelcfg_mb_last_index(const model_cfg *c);
const char *modelcfg_mb_classifier(const model_cfg *c);

/* The state_dict prefixes of block i's projection (its last 1x1 conv: "features.5.conv.2",
 * "features.3.1.block.3.0") and of the BatchNorm after it ("features.5.conv.3",
 * "features.3.1.block.3.1"), whose gamma at 0 makes the block the identity; len bytes
 * each (enough when len >= 48). */
void modelcfg_mb_project_names(const model_cfg *c, int i, char *conv, char *bn, size_t len);
void modelcfg_mb_project_bn(const model_cfg *c, int i, char *buf, size_t len);

/* The family's activation of the stem and last conv (and of every block but
 * MobileNetV3's, which set their own). */
mc_act modelcfg_mb_act(mc_arch a);

/* A squeeze-excitation width tied to its block's expansion width: se_ref
 * channels at hidden_ref become max(1, round(se_ref * hidden / hidden_ref))
 * at hidden (0 stays 0). Pruning and adaption narrow or widen SE this way. */
int modelcfg_se_width(int se_ref, int hidden_ref, int hidden);

/* MobileNetV2 preset widths, as torchvision / reference models.py compute them:
 * c(v) = max(8, floor(v*w + 4) / 8 * 8). Fills mb_stem, blocks, last. */
void modelcfg_mbv2_preset(model_cfg *c, double width_mult, int cifar);

#endif
