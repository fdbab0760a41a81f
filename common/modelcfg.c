/* modelcfg.c - model configs: parse, validate, defaults, params and MACs.
 *
 * Owns nothing beyond the model_cfg the caller passes in; the JSON it reads
 * is borrowed and the JSON it returns is new. The counts follow the module
 * structure of shared/reference/torch/models.py tensor by tensor, so that
 * modelcfg_params equals sum(p.numel() for p in model.parameters()).
 * Pure C + jansson; no global state, thread-safe.
 */
#include "common/modelcfg.h"

#include "common/err.h"
#include "common/jsonfield.h"
#include "common/modelcfg_mb.h"

#include <math.h>
#include <string.h>

static const char *const ARCH_NAMES[] = {
    "ceit",   "deit",        "resnet_cifar", "mobilenetv2",
    "resnet", "mobilenetv3", "efficientnet"};                     /* mc_arch order */
static const char *const STEM_NAMES[] = {"patchify", "i2t"};      /* mc_stem order */
static const char *const FFN_NAMES[] = {"mlp", "leff"};           /* mc_ffn order */
static const char *const HEAD_NAMES[] = {"cls", "lca"};           /* mc_head order */
static const char *const BLOCK_NAMES[] = {"basic", "bottleneck"}; /* mc_block order */

#define MAX_WIDTH       MC_MAX_WIDTH
#define MAX_KERNEL      MC_MAX_KERNEL
#define MAX_IMAGE       4096
#define MAX_IN_CHANNELS 64
#define MAX_CLASSES     100000

/* ---- parsing ------------------------------------------------------------ */

static void parse_stem(model_cfg *c, jsonfield_obj *o)
{
    jsonfield_obj s;
    jsonfield_child(&s, o, "stem");
    int type;
    jsonfield_enum(&s, "type", &type, c->arch == MC_CEIT ? MC_STEM_I2T : MC_STEM_PATCHIFY,
                   STEM_NAMES, 2);
    c->stem = (mc_stem)type;
    if (c->stem == MC_STEM_I2T) {
        jsonfield_int(&s, "channels", &c->stem_channels, 32, 1, MAX_WIDTH);
        if (jsonfield_int(&s, "kernel", &c->stem_kernel, 3, 1, MAX_KERNEL) == JSONFIELD_SET &&
            c->stem_kernel % 2 == 0) {
            jsonfield_err(&s, "kernel", "must be odd (padding k/2 keeps the size)");
            c->stem_kernel = 3;
        }
        if (jsonfield_int(&s, "stride", &c->stem_stride, 1, 1, 16) == JSONFIELD_SET &&
            c->image_size > 0 && c->image_size % c->stem_stride != 0) {
            jsonfield_err(&s, "stride", "must divide image_size (%d)", c->image_size);
            c->stem_stride = 0;
        }
        jsonfield_bool(&s, "pool", &c->stem_pool, 1);
    }
    o->n_err += jsonfield_finish(&s);
}

static void parse_ffn(model_cfg *c, jsonfield_obj *o)
{
    jsonfield_obj f;
    jsonfield_child(&f, o, "ffn");
    int type;
    jsonfield_enum(&f, "type", &type, c->arch == MC_CEIT ? MC_FFN_LEFF : MC_FFN_MLP, FFN_NAMES, 2);
    c->ffn = (mc_ffn)type;
    if (c->ffn == MC_FFN_LEFF &&
        jsonfield_int(&f, "kernel", &c->leff_kernel, 3, 1, MAX_KERNEL) == JSONFIELD_SET &&
        c->leff_kernel % 2 == 0) {
        jsonfield_err(&f, "kernel", "must be odd (padding k/2 keeps the token grid)");
        c->leff_kernel = 3;
    }
    o->n_err += jsonfield_finish(&f);
}

static void parse_vit(model_cfg *c, jsonfield_obj *o)
{
    int ok_dim = jsonfield_int_req(o, "embed_dim", &c->embed_dim, 1, MAX_WIDTH) == JSONFIELD_SET;
    jsonfield_int_req(o, "depth", &c->depth, 1, MC_MAX_DEPTH);
    if (jsonfield_int_req(o, "num_heads", &c->num_heads, 1, MAX_WIDTH) == JSONFIELD_SET && ok_dim &&
        c->embed_dim % c->num_heads != 0)
        jsonfield_err(o, "num_heads", "must divide embed_dim (%d)", c->embed_dim);
    if (jsonfield_num(o, "mlp_ratio", &c->mlp_ratio, 4.0, 0.0, 64.0, JSONFIELD_LO_OPEN) !=
            JSONFIELD_BAD &&
        ok_dim) {
        /* int(dim * mlp_ratio) in models.py */
        c->hidden = (int)floor(c->embed_dim * c->mlp_ratio);
        if (c->hidden < 1)
            jsonfield_err(o, "mlp_ratio", "gives an MLP width of 0 for embed_dim %d", c->embed_dim);
    }
    int ok_patch =
        jsonfield_int_req(o, "patch_size", &c->patch_size, 1, MAX_IMAGE) == JSONFIELD_SET;
    parse_stem(c, o);
    parse_ffn(c, o);
    int head;
    jsonfield_enum(o, "head", &head, c->arch == MC_CEIT ? MC_HEAD_LCA : MC_HEAD_CLS, HEAD_NAMES, 2);
    c->head = (mc_head)head;

    /* The token grid, as models.py derives it; it must come out whole. */
    if (c->image_size <= 0 || !ok_patch)
        return;
    int fm = c->image_size;
    if (c->stem == MC_STEM_I2T) {
        if (c->stem_stride <= 0)
            return;
        fm = c->image_size / c->stem_stride;
        if (c->stem_pool)
            fm = mc_conv_out(fm, 3, 2, 1);
        c->stem_fm = fm;
        if (fm % c->patch_size != 0) {
            jsonfield_err(o, "patch_size",
                          "must divide the stem's %dx%d feature map (image_size %d%s)", fm, fm,
                          c->image_size, c->stem_pool ? ", halved by the pool" : "");
            return;
        }
    } else if (fm % c->patch_size != 0) {
        jsonfield_err(o, "patch_size", "must divide image_size (%d)", c->image_size);
        return;
    }
    c->grid = fm / c->patch_size;
}

static void resnet_preset_fill(model_cfg *c, int depth, const int *widths, int n_widths)
{
    int n = (depth - 2) / 6;
    c->resnet_depth = depth;
    c->stem_width = widths[0];
    c->n_stages = n_widths;
    for (int i = 0; i < n_widths; i++) {
        c->stages[i].width = widths[i];
        c->stages[i].n_blocks = n;
        for (int b = 0; b < n; b++)
            c->stages[i].mids[b] = widths[i];
    }
}

static void parse_resnet_stage(model_cfg *c, int i, const json_t *v, const char *base,
                               jsonfield_obj *o)
{
    char path[JSONFIELD_PATH_MAX];
    jsonfield_index_path(path, sizeof path, base, i);
    jsonfield_obj s;
    if (jsonfield_open(&s, v, path, o->fe) == JSONFIELD_BAD) {
        o->n_err++;
        return;
    }
    mc_stage *st = &c->stages[i];
    jsonfield_int_req(&s, "width", &st->width, 1, MAX_WIDTH);
    if (jsonfield_int_array(&s, "mids", st->mids, &st->n_blocks, MC_MAX_STAGE_BLOCKS, 1,
                            MAX_WIDTH) == JSONFIELD_ABSENT)
        jsonfield_err(&s, "mids", "is required");
    if (c->block == MC_BLOCK_BOTTLENECK) {
        int n2 = 0;
        int rc =
            jsonfield_int_array(&s, "mids2", st->mids2, &n2, MC_MAX_STAGE_BLOCKS, 1, MAX_WIDTH);
        if (rc == JSONFIELD_ABSENT)
            jsonfield_err(&s, "mids2", "is required for Bottleneck blocks (the conv2 widths)");
        else if (rc == JSONFIELD_SET && n2 != st->n_blocks)
            jsonfield_err(&s, "mids2", "has %d entries, mids %d: one per block", n2, st->n_blocks);
    } else if (jsonfield_get(&s, "mids2") != NULL) {
        jsonfield_err(&s, "mids2",
                      "is only for Bottleneck blocks (resnet with block \"bottleneck\")");
    }
    o->n_err += jsonfield_finish(&s);
}

/* torchvision's ResNet-18/34/50/101/152: blocks per stage, block type. */
static int resnet_imagenet_preset(model_cfg *c, int depth)
{
    static const struct {
        int depth, block, n[4];
    } table[] = {{18, MC_BLOCK_BASIC, {2, 2, 2, 2}},
                 {34, MC_BLOCK_BASIC, {3, 4, 6, 3}},
                 {50, MC_BLOCK_BOTTLENECK, {3, 4, 6, 3}},
                 {101, MC_BLOCK_BOTTLENECK, {3, 4, 23, 3}},
                 {152, MC_BLOCK_BOTTLENECK, {3, 8, 36, 3}}};
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
        if (table[k].depth != depth)
            continue;
        c->resnet_depth = depth;
        c->block = (mc_block)table[k].block;
        c->stem_width = 64;
        c->n_stages = 4;
        for (int i = 0; i < 4; i++) {
            int planes = 64 << i;
            mc_stage *st = &c->stages[i];
            st->width = c->block == MC_BLOCK_BOTTLENECK ? 4 * planes : planes;
            st->n_blocks = table[k].n[i];
            for (int b = 0; b < st->n_blocks; b++)
                st->mids[b] = st->mids2[b] = planes;
        }
        return 0;
    }
    return -1;
}

/* The explicit form {stem, stages} (both arches) and the ImageNet form's block. */
static void parse_resnet_explicit(model_cfg *c, jsonfield_obj *o, const json_t *stages)
{
    if (jsonfield_get(o, "depth") != NULL)
        jsonfield_err(o, "depth", "cannot be combined with the explicit form (stem, stages)");
    if (jsonfield_get(o, "widths") != NULL)
        jsonfield_err(o, "widths", "cannot be combined with the explicit form (stem, stages)");
    if (c->arch == MC_RESNET) {
        int block;
        if (jsonfield_enum(o, "block", &block, 0, BLOCK_NAMES, 2) == JSONFIELD_ABSENT)
            jsonfield_err(o, "block",
                          "is required with the explicit form (\"basic\" or \"bottleneck\")");
        c->block = (mc_block)block;
    }
    jsonfield_int_req(o, "stem", &c->stem_width, 1, MAX_WIDTH);
    if (stages == NULL) {
        jsonfield_err(o, "stages", "is required with stem");
        return;
    }
    size_t n = json_array_size(stages);
    if (!json_is_array(stages) || n == 0 || n > MC_MAX_STAGES) {
        jsonfield_err(o, "stages", "must be an array of 1 to %d stage objects", MC_MAX_STAGES);
        return;
    }
    char base[JSONFIELD_PATH_MAX];
    jsonfield_path(base, sizeof base, o, "stages");
    c->n_stages = (int)n;
    for (size_t i = 0; i < n; i++)
        parse_resnet_stage(c, (int)i, json_array_get(stages, i), base, o);
}

static void parse_resnet(model_cfg *c, jsonfield_obj *o)
{
    const json_t *stages = jsonfield_get(o, "stages");
    int explicit_form = stages != NULL || jsonfield_get(o, "stem") != NULL;
    c->preset = !explicit_form;
    if (explicit_form) {
        parse_resnet_explicit(c, o, stages);
        return;
    }
    int depth;
    if (c->arch == MC_RESNET) {
        if (jsonfield_get(o, "block") != NULL)
            jsonfield_err(o, "block", "follows from depth; give it only with the explicit form");
        if (jsonfield_get(o, "widths") != NULL)
            jsonfield_err(o, "widths",
                          "is not a field of resnet (use the explicit form for other widths)");
        if (jsonfield_int(o, "depth", &depth, 50, 18, 152) != JSONFIELD_BAD &&
            resnet_imagenet_preset(c, depth) != 0)
            jsonfield_err(o, "depth", "must be 18, 34, 50, 101 or 152 (torchvision's ResNets)");
        return;
    }
    int widths[MC_MAX_STAGES], n_widths;
    if (jsonfield_int(o, "depth", &depth, 20, 8, 6 * MC_MAX_STAGE_BLOCKS + 2) == JSONFIELD_SET &&
        (depth - 2) % 6 != 0) {
        jsonfield_err(o, "depth", "must be 6n+2 (8, 14, 20, 26, 32, 44, 56, 110, ...)");
        return;
    }
    int rc = jsonfield_int_array(o, "widths", widths, &n_widths, MC_MAX_STAGES, 1, MAX_WIDTH);
    if (rc == JSONFIELD_BAD)
        return;
    if (rc == JSONFIELD_ABSENT) {
        n_widths = 3;
        widths[0] = 16;
        widths[1] = 32;
        widths[2] = 64;
    }
    resnet_preset_fill(c, depth, widths, n_widths);
}

int modelcfg_parse(model_cfg *c, const json_t *j, const char *path, field_errors *fe)
{
    memset(c, 0, sizeof *c);
    jsonfield_obj o;
    if (j == NULL) {
        jsonfield_open(&o, NULL, path, fe);
        jsonfield_err(&o, NULL, "is required");
        return ERR_INVALID;
    }
    if (jsonfield_open(&o, j, path, fe) == JSONFIELD_BAD)
        return ERR_INVALID;
    int arch;
    int arch_rc = jsonfield_enum(&o, "arch", &arch, 0, ARCH_NAMES, 7);
    if (arch_rc == JSONFIELD_ABSENT)
        jsonfield_err(&o, "arch", "is required");
    c->arch = (mc_arch)arch;
    jsonfield_int_req(&o, "image_size", &c->image_size, 1, MAX_IMAGE);
    jsonfield_int_req(&o, "in_channels", &c->in_channels, 1, MAX_IN_CHANNELS);
    jsonfield_int_req(&o, "num_classes", &c->num_classes, 2, MAX_CLASSES);
    if (arch_rc != JSONFIELD_SET) /* without an arch the other fields mean nothing */
        return ERR_INVALID;
    switch (c->arch) {
    case MC_CEIT:
    case MC_DEIT:
        parse_vit(c, &o);
        break;
    case MC_RESNET_CIFAR:
    case MC_RESNET:
        parse_resnet(c, &o);
        break;
    case MC_MOBILENETV2:
    case MC_MOBILENETV3:
    case MC_EFFICIENTNET:
        mb_parse(c, &o);
        break;
    }
    return jsonfield_finish(&o) ? ERR_INVALID : 0;
}

/* ---- JSON out ----------------------------------------------------------- */

static json_t *common_json(const model_cfg *c)
{
    json_t *j = json_object();
    json_object_set_new(j, "arch", json_string(ARCH_NAMES[c->arch]));
    json_object_set_new(j, "image_size", json_integer(c->image_size));
    json_object_set_new(j, "in_channels", json_integer(c->in_channels));
    json_object_set_new(j, "num_classes", json_integer(c->num_classes));
    return j;
}

static json_t *int_array_json(const int *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

static void vit_json(json_t *j, const model_cfg *c)
{
    json_object_set_new(j, "embed_dim", json_integer(c->embed_dim));
    json_object_set_new(j, "depth", json_integer(c->depth));
    json_object_set_new(j, "num_heads", json_integer(c->num_heads));
    json_object_set_new(j, "mlp_ratio", jsonfield_number_json(c->mlp_ratio));
    json_object_set_new(j, "patch_size", json_integer(c->patch_size));
    json_t *stem = json_object();
    json_object_set_new(stem, "type", json_string(STEM_NAMES[c->stem]));
    if (c->stem == MC_STEM_I2T) {
        json_object_set_new(stem, "channels", json_integer(c->stem_channels));
        json_object_set_new(stem, "kernel", json_integer(c->stem_kernel));
        json_object_set_new(stem, "stride", json_integer(c->stem_stride));
        json_object_set_new(stem, "pool", json_boolean(c->stem_pool));
    }
    json_object_set_new(j, "stem", stem);
    json_t *ffn = json_object();
    json_object_set_new(ffn, "type", json_string(FFN_NAMES[c->ffn]));
    if (c->ffn == MC_FFN_LEFF)
        json_object_set_new(ffn, "kernel", json_integer(c->leff_kernel));
    json_object_set_new(j, "ffn", ffn);
    json_object_set_new(j, "head", json_string(HEAD_NAMES[c->head]));
}

static void resnet_explicit_json(json_t *j, const model_cfg *c)
{
    if (c->arch == MC_RESNET)
        json_object_set_new(j, "block", json_string(BLOCK_NAMES[c->block]));
    json_object_set_new(j, "stem", json_integer(c->stem_width));
    json_t *stages = json_array();
    for (int i = 0; i < c->n_stages; i++) {
        json_t *s = json_object();
        json_object_set_new(s, "width", json_integer(c->stages[i].width));
        json_object_set_new(s, "mids", int_array_json(c->stages[i].mids, c->stages[i].n_blocks));
        if (c->arch == MC_RESNET && c->block == MC_BLOCK_BOTTLENECK)
            json_object_set_new(s, "mids2",
                                int_array_json(c->stages[i].mids2, c->stages[i].n_blocks));
        json_array_append_new(stages, s);
    }
    json_object_set_new(j, "stages", stages);
}

static json_t *to_json(const model_cfg *c, int explicit_form)
{
    json_t *j = common_json(c);
    switch (c->arch) {
    case MC_CEIT:
    case MC_DEIT:
        vit_json(j, c);
        break;
    case MC_RESNET_CIFAR:
        if (c->preset && !explicit_form) {
            int widths[MC_MAX_STAGES];
            for (int i = 0; i < c->n_stages; i++)
                widths[i] = c->stages[i].width;
            json_object_set_new(j, "depth", json_integer(c->resnet_depth));
            json_object_set_new(j, "widths", int_array_json(widths, c->n_stages));
        } else {
            resnet_explicit_json(j, c);
        }
        break;
    case MC_RESNET:
        if (c->preset && !explicit_form)
            json_object_set_new(j, "depth", json_integer(c->resnet_depth));
        else
            resnet_explicit_json(j, c);
        break;
    case MC_MOBILENETV2:
    case MC_MOBILENETV3:
    case MC_EFFICIENTNET:
        mb_json(j, c, explicit_form);
        break;
    }
    return j;
}

json_t *modelcfg_to_json(const model_cfg *c)
{
    return to_json(c, 0);
}

json_t *modelcfg_to_explicit_json(const model_cfg *c)
{
    return to_json(c, 1);
}

/* ---- parameters --------------------------------------------------------- */

static long vit_params(const model_cfg *c)
{
    long C = c->embed_dim, h = c->hidden, p = c->patch_size, L = c->depth;
    long n = (long)c->grid * c->grid;
    long total = 0;
    if (c->stem == MC_STEM_I2T) {
        long S = c->stem_channels;
        total += mc_conv_params(c->stem_kernel, c->in_channels, S, 1, 0) + 2 * S; /* conv + bn */
        total += mc_conv_params(p, S, C, 1, 1);                                   /* i2t.proj */
    } else {
        total += mc_conv_params(p, c->in_channels, C, 1, 1); /* patch_embed.proj */
    }
    total += C + (n + 1) * C; /* cls_token, pos_embed */
    long attn = 3 * C * C + 3 * C + C * C + C;
    long mlp = C * h + h + h * C + C;
    long ffn = mlp;
    if (c->ffn == MC_FFN_LEFF) {
        long k = c->leff_kernel;
        ffn = mc_conv_params(1, C, h, 1, 1) + 2 * h + mc_conv_params(k, h, h, h, 1) + 2 * h +
              mc_conv_params(1, h, C, 1, 1) + 2 * C;
    }
    total += L * (2 * C + attn + 2 * C + ffn); /* norm1, attn, norm2, ffn */
    if (c->head == MC_HEAD_LCA)
        total += L * C + 2 * C + attn + 2 * C + mlp;      /* pos_layer_embed, LCABlock */
    total += 2 * C + C * c->num_classes + c->num_classes; /* norm, head */
    return total;
}

/* A ResNet block's convs and BNs: BasicBlock 3x3 (stride) + 3x3, Bottleneck
 * 1x1 + 3x3 (stride, torchvision's v1.5) + 1x1; plus the projection. */
static long resnet_block_params(const model_cfg *c, long cin, long w, long m1, long m2, int stride)
{
    long total;
    if (c->arch == MC_RESNET && c->block == MC_BLOCK_BOTTLENECK)
        total = mc_conv_params(1, cin, m1, 1, 0) + 2 * m1 + mc_conv_params(3, m1, m2, 1, 0) +
                2 * m2 + mc_conv_params(1, m2, w, 1, 0) + 2 * w;
    else
        total = mc_conv_params(3, cin, m1, 1, 0) + 2 * m1 + mc_conv_params(3, m1, w, 1, 0) + 2 * w;
    if (stride != 1 || cin != w)
        total += mc_conv_params(1, cin, w, 1, 0) + 2 * w;
    return total;
}

static long resnet_params(const model_cfg *c)
{
    int k = c->arch == MC_RESNET ? 7 : 3;
    long total = mc_conv_params(k, c->in_channels, c->stem_width, 1, 0) + 2L * c->stem_width;
    long cin = c->stem_width;
    for (int i = 0; i < c->n_stages; i++) {
        long w = c->stages[i].width;
        for (int b = 0; b < c->stages[i].n_blocks; b++) {
            int stride = (i > 0 && b == 0) ? 2 : 1;
            total +=
                resnet_block_params(c, cin, w, c->stages[i].mids[b], c->stages[i].mids2[b], stride);
            cin = w;
        }
    }
    return total + cin * c->num_classes + c->num_classes;
}

long modelcfg_params(const model_cfg *c)
{
    switch (c->arch) {
    case MC_CEIT:
    case MC_DEIT:
        return vit_params(c);
    case MC_RESNET_CIFAR:
    case MC_RESNET:
        return resnet_params(c);
    case MC_MOBILENETV2:
    case MC_MOBILENETV3:
    case MC_EFFICIENTNET:
        return mb_params(c);
    }
    return 0;
}

/* ---- MACs --------------------------------------------------------------- */

static double vit_macs(const model_cfg *c)
{
    long C = c->embed_dim, h = c->hidden, p = c->patch_size, L = c->depth, g = c->grid;
    long n = g * g, t = n + 1;
    double total = 0;
    if (c->stem == MC_STEM_I2T) {
        long k = c->stem_kernel;
        long ho = mc_conv_out(c->image_size, (int)k, c->stem_stride, (int)k / 2);
        total += mc_conv_macs(k, c->in_channels, 1, 0, ho, c->stem_channels);
        total += mc_conv_macs(p, c->stem_channels, 1, 1, g, C);
    } else {
        total += mc_conv_macs(p, c->in_channels, 1, 1, g, C);
    }
    /* per block: qkv, q k^T and att v over all t tokens, proj, then the FFN */
    double block = mc_linear_macs(C, 3 * C, t) + 2.0 * (double)t * (double)t * (double)C +
                   mc_linear_macs(C, C, t);
    if (c->ffn == MC_FFN_LEFF) /* on the n patch tokens, as convs over the grid */
        block += mc_conv_macs(1, C, 1, 1, g, h) + mc_conv_macs(c->leff_kernel, h, h, 1, g, h) +
                 mc_conv_macs(1, h, 1, 1, g, C);
    else
        block += mc_linear_macs(C, h, t) + mc_linear_macs(h, C, t);
    total += (double)L * block;
    if (c->head == MC_HEAD_LCA) {
        /* q from the last class token, k and v from all L; then one token on */
        total +=
            mc_linear_macs(C, C, 1) + mc_linear_macs(C, 2 * C, L) + 2.0 * (double)L * (double)C;
        total += mc_linear_macs(C, C, 1) + mc_linear_macs(C, h, 1) + mc_linear_macs(h, C, 1);
    }
    return total + mc_linear_macs(C, c->num_classes, 1);
}

/* The MACs of one ResNet block on an hw x hw input (see resnet_block_params). */
static double resnet_block_macs(const model_cfg *c, long hw, long cin, long w, long m1, long m2,
                                int stride)
{
    long ho = mc_conv_out((int)hw, 3, stride, 1);
    double total;
    if (c->arch == MC_RESNET && c->block == MC_BLOCK_BOTTLENECK)
        total = mc_conv_macs(1, cin, 1, 0, hw, m1) + mc_conv_macs(3, m1, 1, 0, ho, m2) +
                mc_conv_macs(1, m2, 1, 0, ho, w);
    else
        total = mc_conv_macs(3, cin, 1, 0, ho, m1) + mc_conv_macs(3, m1, 1, 0, ho, w);
    if (stride != 1 || cin != w)
        total += mc_conv_macs(1, cin, 1, 0, mc_conv_out((int)hw, 1, stride, 0), w);
    return total;
}

/* The side of the first stage's input: the stem (and the ImageNet form's pool). */
static long resnet_stem_out(const model_cfg *c, long *stem_hw)
{
    if (c->arch != MC_RESNET) {
        *stem_hw = c->image_size;
        return c->image_size;
    }
    *stem_hw = mc_conv_out(c->image_size, 7, 2, 3);
    return mc_conv_out((int)*stem_hw, 3, 2, 1);
}

static double resnet_macs(const model_cfg *c)
{
    long stem_hw;
    long hw = resnet_stem_out(c, &stem_hw);
    double total =
        mc_conv_macs(c->arch == MC_RESNET ? 7 : 3, c->in_channels, 1, 0, stem_hw, c->stem_width);
    long cin = c->stem_width;
    for (int i = 0; i < c->n_stages; i++) {
        long w = c->stages[i].width;
        for (int b = 0; b < c->stages[i].n_blocks; b++) {
            int stride = (i > 0 && b == 0) ? 2 : 1;
            total += resnet_block_macs(c, hw, cin, w, c->stages[i].mids[b], c->stages[i].mids2[b],
                                       stride);
            hw = mc_conv_out((int)hw, 3, stride, 1);
            cin = w;
        }
    }
    return total + mc_linear_macs(cin, c->num_classes, 1);
}

double modelcfg_macs(const model_cfg *c)
{
    switch (c->arch) {
    case MC_CEIT:
    case MC_DEIT:
        return vit_macs(c);
    case MC_RESNET_CIFAR:
    case MC_RESNET:
        return resnet_macs(c);
    case MC_MOBILENETV2:
    case MC_MOBILENETV3:
    case MC_EFFICIENTNET:
        return mb_macs(c);
    }
    return 0;
}

int modelcfg_is_resnet(mc_arch a)
{
    return a == MC_RESNET_CIFAR || a == MC_RESNET;
}

const char *modelcfg_arch_name(mc_arch a)
{
    return (unsigned)a < sizeof ARCH_NAMES / sizeof ARCH_NAMES[0] ? ARCH_NAMES[a] : "unknown";
}
