/* modelcfg_mb.c - MobileNetV2, MobileNetV3 and EfficientNet configs (see modelcfg.h).
 *
 * The three share one representation: a stem conv, a list of inverted
 * residual blocks (mc_mbblock) and a last 1x1 conv, then pooling and the
 * classifier. The presets reproduce torchvision's builders channel for
 * channel (mobilenetv2 from shared/reference/torch/models.py, mobilenet_v3
 * and efficientnet_b* from torchvision.models), so that modelcfg_params
 * equals sum(p.numel()) of the PyTorch model. Pure C + jansson; thread-safe.
 */
#include "common/modelcfg_mb.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const ACT_NAMES[] = {"relu6", "relu", "hswish", "silu"}; /* mc_act order */
static const char *const V3_VARIANTS[] = {"large", "small"};
static const char *const EFF_VARIANTS[] = {"b0", "b1", "b2", "b3", "b4"};
/* (width_mult, depth_mult, dropout) of efficientnet_b0..b4 */
static const double EFF_SCALING[5][3] = {
    {1.0, 1.0, 0.2}, {1.0, 1.1, 0.2}, {1.1, 1.2, 0.3}, {1.2, 1.4, 0.3}, {1.4, 1.8, 0.4}};

int modelcfg_is_mb(mc_arch a)
{
    return a == MC_MOBILENETV2 || a == MC_MOBILENETV3 || a == MC_EFFICIENTNET;
}

mc_act modelcfg_mb_act(mc_arch a)
{
    return a == MC_MOBILENETV3 ? MC_ACT_HSWISH : a == MC_EFFICIENTNET ? MC_ACT_SILU : MC_ACT_RELU6;
}

void modelcfg_mb_block_name(const model_cfg *c, int i, char *buf, size_t len)
{
    if (c->arch != MC_EFFICIENTNET) {
        snprintf(buf, len, "features.%d", i + 1);
        return;
    }
    int j = 0;
    while (j < i && c->blocks[i - j - 1].stage == c->blocks[i].stage)
        j++;
    snprintf(buf, len, "features.%d.%d", c->blocks[i].stage + 1, j);
}

const char *modelcfg_mb_inner(const model_cfg *c)
{
    return c->arch == MC_MOBILENETV2 ? "conv" : "block";
}

int modelcfg_mb_last_index(const model_cfg *c)
{
    if (c->arch == MC_EFFICIENTNET)
        return c->n_blocks > 0 ? c->blocks[c->n_blocks - 1].stage + 2 : 1;
    return c->n_blocks + 1;
}

void modelcfg_mb_project_names(const model_cfg *c, int i, char *conv, char *bn, size_t len)
{
    char pre[32];
    modelcfg_mb_block_name(c, i, pre, sizeof pre);
    int cin = i == 0 ? c->mb_stem : c->blocks[i - 1].out;
    int idx = (c->blocks[i].hidden != cin) + 1 + (c->blocks[i].se > 0);
    if (c->arch == MC_MOBILENETV2) {
        snprintf(conv, len, "%s.conv.%d", pre, idx);
        snprintf(bn, len, "%s.conv.%d", pre, idx + 1);
    } else {
        snprintf(conv, len, "%s.block.%d.0", pre, idx);
        snprintf(bn, len, "%s.block.%d.1", pre, idx);
    }
}

void modelcfg_mb_project_bn(const model_cfg *c, int i, char *buf, size_t len)
{
    char conv[64];
    modelcfg_mb_project_names(c, i, conv, buf, len < sizeof conv ? len : sizeof conv);
}

const char *modelcfg_mb_classifier(const model_cfg *c)
{
    return c->arch == MC_MOBILENETV3 ? "classifier.3" : "classifier.1";
}

int modelcfg_se_width(int se_ref, int hidden_ref, int hidden)
{
    if (se_ref <= 0 || hidden_ref <= 0)
        return 0;
    long v = lround((double)se_ref * hidden / hidden_ref);
    return v < 1 ? 1 : (int)v;
}

int mb_stem_out(const model_cfg *c)
{
    return mc_conv_out(c->image_size, 3, c->cifar ? 1 : 2, 1);
}

/* ---- presets ---------------------------------------------------------------- */

/* c(v) of models.py mbv2_blocks: max(8, int(v * w + 4) // 8 * 8). */
static int mbv2_width(int v, double width_mult)
{
    int r = (int)((double)v * width_mult + 4.0) / 8 * 8;
    return r < 8 ? 8 : r;
}

/* torchvision's _make_divisible(v, 8): the nearest multiple of 8, at least 8
 * and not below 90% of v. */
static int make_divisible(double v)
{
    int r = (int)(v + 4.0) / 8 * 8;
    if (r < 8)
        r = 8;
    if (r < 0.9 * v)
        r += 8;
    return r;
}

static mc_mbblock *append_block(model_cfg *c, int hidden, int out, int stride, int kernel, int se,
                                mc_act act, int stage)
{
    mc_mbblock *b = &c->blocks[c->n_blocks++];
    *b = (mc_mbblock){hidden, out, stride, kernel, se, act, stage};
    return b;
}

void modelcfg_mbv2_preset(model_cfg *c, double width_mult, int cifar)
{
    /* (expand t, out c, repeats n, stride s): MBV2_SETTINGS of models.py */
    static const int settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                       {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    c->width_mult = width_mult;
    c->cifar = cifar;
    c->mb_stem = mbv2_width(32, width_mult);
    c->n_blocks = 0;
    int cin = c->mb_stem;
    for (int i = 0; i < 7; i++) {
        int t = settings[i][0], ch = mbv2_width(settings[i][1], width_mult), n = settings[i][2];
        int s = (cifar && i == 1) ? 1 : settings[i][3];
        for (int j = 0; j < n; j++) {
            append_block(c, cin * t, ch, j == 0 ? s : 1, 3, 0, MC_ACT_RELU6, 0);
            cin = ch;
        }
    }
    c->last = width_mult > 1.0 ? mbv2_width(1280, width_mult) : 1280;
}

/* torchvision's mobilenet_v3_large / _small: (kernel, expanded, out, se,
 * h-swish, stride) per block, before width_mult; the squeeze width is
 * _make_divisible(expanded / 4, 8), the last conv 6x the last block's
 * output, the classifier's hidden Linear 1280 / 1024 (scaled). */
static void mbv3_preset(model_cfg *c)
{
    static const int large[15][6] = {
        {3, 16, 16, 0, 0, 1},   {3, 64, 24, 0, 0, 2},   {3, 72, 24, 0, 0, 1},
        {5, 72, 40, 1, 0, 2},   {5, 120, 40, 1, 0, 1},  {5, 120, 40, 1, 0, 1},
        {3, 240, 80, 0, 1, 2},  {3, 200, 80, 0, 1, 1},  {3, 184, 80, 0, 1, 1},
        {3, 184, 80, 0, 1, 1},  {3, 480, 112, 1, 1, 1}, {3, 672, 112, 1, 1, 1},
        {5, 672, 160, 1, 1, 2}, {5, 960, 160, 1, 1, 1}, {5, 960, 160, 1, 1, 1}};
    static const int small[11][6] = {
        {3, 16, 16, 1, 0, 2},  {3, 72, 24, 0, 0, 2},  {3, 88, 24, 0, 0, 1},  {5, 96, 40, 1, 1, 2},
        {5, 240, 40, 1, 1, 1}, {5, 240, 40, 1, 1, 1}, {5, 120, 48, 1, 1, 1}, {5, 144, 48, 1, 1, 1},
        {5, 288, 96, 1, 1, 2}, {5, 576, 96, 1, 1, 1}, {5, 576, 96, 1, 1, 1}};
    double w = c->width_mult;
    int n = c->variant == 0 ? 15 : 11;
    const int(*t)[6] = c->variant == 0 ? large : small;
    c->mb_stem = make_divisible(16 * w);
    c->n_blocks = 0;
    for (int i = 0; i < n; i++) {
        int hid = make_divisible(t[i][1] * w), se = t[i][3] ? make_divisible(hid / 4) : 0;
        append_block(c, hid, make_divisible(t[i][2] * w), t[i][5], t[i][0], se,
                     t[i][4] ? MC_ACT_HSWISH : MC_ACT_RELU, 0);
    }
    c->last = 6 * c->blocks[c->n_blocks - 1].out;
    c->head_width = make_divisible((c->variant == 0 ? 1280 : 1024) * w);
}

/* torchvision's efficientnet_b*: stages (expand ratio, kernel, stride, in,
 * out, layers) scaled by width_mult (_make_divisible) and depth_mult
 * (ceil); every block has SE of width max(1, input / 4); the last conv is
 * 4x the last stage's output. */
static void effnet_preset(model_cfg *c)
{
    static const int stages[7][6] = {
        {1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},   {6, 5, 2, 24, 40, 2},  {6, 3, 2, 40, 80, 3},
        {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1}};
    double w = c->width_mult, d = c->depth_mult;
    c->mb_stem = make_divisible(stages[0][3] * w);
    c->n_blocks = 0;
    for (int s = 0; s < 7; s++) {
        int cin = make_divisible(stages[s][3] * w), out = make_divisible(stages[s][4] * w);
        int layers = (int)ceil(stages[s][5] * d);
        for (int j = 0; j < layers && c->n_blocks < MC_MAX_MB_BLOCKS; j++) {
            int hid = make_divisible((double)cin * stages[s][0]);
            int se = cin / 4 < 1 ? 1 : cin / 4;
            append_block(c, hid, out, j == 0 ? stages[s][2] : 1, stages[s][1], se, MC_ACT_SILU, s);
            cin = out;
        }
    }
    c->last = 4 * c->blocks[c->n_blocks - 1].out;
}

/* ---- parsing ------------------------------------------------------------------ */

static void parse_block(model_cfg *c, int i, const json_t *v, const char *base, jsonfield_obj *o)
{
    char path[JSONFIELD_PATH_MAX];
    jsonfield_index_path(path, sizeof path, base, i);
    jsonfield_obj b;
    if (jsonfield_open(&b, v, path, o->fe) == JSONFIELD_BAD) {
        o->n_err++;
        return;
    }
    mc_mbblock *mb = &c->blocks[i];
    *mb = (mc_mbblock){.kernel = 3, .act = modelcfg_mb_act(c->arch)};
    jsonfield_int_req(&b, "hidden", &mb->hidden, 1, MC_MAX_HIDDEN);
    jsonfield_int_req(&b, "out", &mb->out, 1, MC_MAX_WIDTH);
    jsonfield_int(&b, "stride", &mb->stride, 1, 1, 2);
    if (c->arch != MC_MOBILENETV2) {
        if (jsonfield_int(&b, "kernel", &mb->kernel, 3, 1, MC_MAX_KERNEL) == JSONFIELD_SET &&
            mb->kernel % 2 == 0) {
            jsonfield_err(&b, "kernel", "must be odd (padding k/2 keeps the size)");
            mb->kernel = 3;
        }
        if (jsonfield_int(&b, "se", &mb->se, 0, 0, MC_MAX_HIDDEN) == JSONFIELD_SET &&
            mb->hidden > 0 && mb->se > mb->hidden)
            jsonfield_err(&b, "se", "must not exceed hidden (%d)", mb->hidden);
    }
    if (c->arch == MC_MOBILENETV3) {
        int act;
        if (jsonfield_enum(&b, "act", &act, MC_ACT_RELU, ACT_NAMES, 4) == JSONFIELD_SET &&
            act != MC_ACT_RELU && act != MC_ACT_HSWISH)
            jsonfield_err(&b, "act", "must be relu or hswish in mobilenetv3");
        else
            mb->act = (mc_act)act;
    }
    if (c->arch == MC_EFFICIENTNET)
        jsonfield_int_req(&b, "stage", &mb->stage, 0, MC_MAX_MB_BLOCKS - 1);
    o->n_err += jsonfield_finish(&b);
}

/* EfficientNet's stages number 0, 1, 2, ... in order, and every block after
 * the first of its stage is an identity residual (stride 1, in == out), as
 * torchvision builds them and as the names features.{stage+1}.{j} assume. */
static void check_stages(model_cfg *c, jsonfield_obj *o)
{
    char key[48];
    int cin = c->mb_stem;
    for (int i = 0; i < c->n_blocks; i++) {
        const mc_mbblock *b = &c->blocks[i];
        int prev = i == 0 ? -1 : c->blocks[i - 1].stage;
        snprintf(key, sizeof key, "blocks[%d].stage", i);
        if (b->stage != prev && b->stage != prev + 1) {
            jsonfield_err(o, key, "must be %d or %d (stages are numbered in order from 0)",
                          prev < 0 ? 0 : prev, prev + 1);
            return;
        }
        if (b->stage == prev && !(b->stride == 1 && b->out == cin)) {
            jsonfield_err(o, key, "continues stage %d, so the block needs stride 1 and out %d",
                          b->stage, cin);
            return;
        }
        cin = b->out;
    }
}

static void parse_explicit(model_cfg *c, jsonfield_obj *o, const json_t *blocks)
{
    static const char *const preset_keys[] = {"width_mult", "variant", "depth_mult"};
    for (int k = 0; k < 3; k++)
        if (jsonfield_get(o, preset_keys[k]) != NULL)
            jsonfield_err(o, preset_keys[k],
                          "cannot be combined with the explicit form (stem, blocks, last)");
    jsonfield_int_req(o, "stem", &c->mb_stem, 1, MC_MAX_WIDTH);
    jsonfield_int_req(o, "last", &c->last, 1, MC_MAX_HIDDEN);
    if (c->arch == MC_MOBILENETV3)
        jsonfield_int_req(o, "head_width", &c->head_width, 1, MC_MAX_HIDDEN);
    size_t n = json_array_size(blocks);
    if (blocks == NULL) {
        jsonfield_err(o, "blocks", "is required with stem and last");
        return;
    }
    if (!json_is_array(blocks) || n == 0 || n > MC_MAX_MB_BLOCKS) {
        jsonfield_err(o, "blocks", "must be an array of 1 to %d block objects", MC_MAX_MB_BLOCKS);
        return;
    }
    char base[JSONFIELD_PATH_MAX];
    jsonfield_path(base, sizeof base, o, "blocks");
    c->n_blocks = (int)n;
    int before = o->n_err;
    for (size_t i = 0; i < n; i++)
        parse_block(c, (int)i, json_array_get(blocks, i), base, o);
    if (c->arch == MC_EFFICIENTNET && o->n_err == before)
        check_stages(c, o);
}

static void parse_preset(model_cfg *c, jsonfield_obj *o)
{
    switch (c->arch) {
    case MC_MOBILENETV3:
        jsonfield_enum(o, "variant", &c->variant, 0, V3_VARIANTS, 2);
        if (jsonfield_num(o, "width_mult", &c->width_mult, 1.0, 0.0, 4.0, JSONFIELD_LO_OPEN) !=
            JSONFIELD_BAD)
            mbv3_preset(c);
        break;
    case MC_EFFICIENTNET: {
        int has_mult =
            jsonfield_get(o, "width_mult") != NULL || jsonfield_get(o, "depth_mult") != NULL;
        int rc = jsonfield_enum(o, "variant", &c->variant, 0, EFF_VARIANTS, 5);
        if (rc == JSONFIELD_SET && has_mult)
            jsonfield_err(o, "variant", "cannot be combined with width_mult or depth_mult");
        if (has_mult)
            c->variant = -1;
        const double *sc = EFF_SCALING[c->variant < 0 ? 0 : c->variant];
        int ok = jsonfield_num(o, "width_mult", &c->width_mult, sc[0], 0.0, 4.0,
                               JSONFIELD_LO_OPEN) != JSONFIELD_BAD;
        ok &= jsonfield_num(o, "depth_mult", &c->depth_mult, sc[1], 0.0, 4.0, JSONFIELD_LO_OPEN) !=
              JSONFIELD_BAD;
        if (ok)
            effnet_preset(c);
        break;
    }
    default: {
        double w;
        if (jsonfield_num(o, "width_mult", &w, 1.0, 0.0, 4.0, JSONFIELD_LO_OPEN) != JSONFIELD_BAD)
            modelcfg_mbv2_preset(c, w, c->cifar);
        break;
    }
    }
}

void mb_parse(model_cfg *c, jsonfield_obj *o)
{
    jsonfield_bool(o, "cifar", &c->cifar, c->arch == MC_MOBILENETV2);
    const json_t *blocks = jsonfield_get(o, "blocks");
    int explicit_form =
        blocks != NULL || jsonfield_get(o, "stem") != NULL || jsonfield_get(o, "last") != NULL;
    c->preset = !explicit_form;
    if (explicit_form)
        parse_explicit(c, o, blocks);
    else
        parse_preset(c, o);
    if (c->arch == MC_MOBILENETV3) {
        jsonfield_num(o, "dropout", &c->dropout, 0.2, 0.0, 1.0, JSONFIELD_HI_OPEN);
    } else if (c->arch == MC_EFFICIENTNET) {
        double def = c->preset && c->variant >= 0 ? EFF_SCALING[c->variant][2] : 0.2;
        jsonfield_num(o, "dropout", &c->dropout, def, 0.0, 1.0, JSONFIELD_HI_OPEN);
        jsonfield_num(o, "drop_path", &c->drop_path, 0.2, 0.0, 1.0, JSONFIELD_HI_OPEN);
    }
}

/* ---- JSON out ------------------------------------------------------------------- */

static json_t *block_json(const model_cfg *c, const mc_mbblock *b)
{
    json_t *j = json_object();
    json_object_set_new(j, "hidden", json_integer(b->hidden));
    json_object_set_new(j, "out", json_integer(b->out));
    json_object_set_new(j, "stride", json_integer(b->stride));
    if (c->arch == MC_MOBILENETV2)
        return j;
    json_object_set_new(j, "kernel", json_integer(b->kernel));
    json_object_set_new(j, "se", json_integer(b->se));
    if (c->arch == MC_MOBILENETV3)
        json_object_set_new(j, "act", json_string(ACT_NAMES[b->act]));
    else
        json_object_set_new(j, "stage", json_integer(b->stage));
    return j;
}

void mb_json(json_t *j, const model_cfg *c, int explicit_form)
{
    json_object_set_new(j, "cifar", json_boolean(c->cifar));
    if (c->preset && !explicit_form) {
        if (c->arch == MC_MOBILENETV3)
            json_object_set_new(j, "variant", json_string(V3_VARIANTS[c->variant]));
        if (c->arch == MC_EFFICIENTNET && c->variant >= 0) {
            json_object_set_new(j, "variant", json_string(EFF_VARIANTS[c->variant]));
        } else {
            json_object_set_new(j, "width_mult", jsonfield_number_json(c->width_mult));
            if (c->arch == MC_EFFICIENTNET)
                json_object_set_new(j, "depth_mult", jsonfield_number_json(c->depth_mult));
        }
    } else {
        json_object_set_new(j, "stem", json_integer(c->mb_stem));
        json_t *blocks = json_array();
        for (int i = 0; i < c->n_blocks; i++)
            json_array_append_new(blocks, block_json(c, &c->blocks[i]));
        json_object_set_new(j, "blocks", blocks);
        json_object_set_new(j, "last", json_integer(c->last));
        if (c->arch == MC_MOBILENETV3)
            json_object_set_new(j, "head_width", json_integer(c->head_width));
    }
    if (c->arch != MC_MOBILENETV2)
        json_object_set_new(j, "dropout", jsonfield_number_json(c->dropout));
    if (c->arch == MC_EFFICIENTNET)
        json_object_set_new(j, "drop_path", jsonfield_number_json(c->drop_path));
}

/* ---- counting ---------------------------------------------------------------------- */

long mb_params(const model_cfg *c)
{
    long total = mc_conv_params(3, c->in_channels, c->mb_stem, 1, 0) + 2L * c->mb_stem;
    long cin = c->mb_stem;
    for (int i = 0; i < c->n_blocks; i++) {
        const mc_mbblock *b = &c->blocks[i];
        long hid = b->hidden, out = b->out;
        if (hid != cin)
            total += mc_conv_params(1, cin, hid, 1, 0) + 2 * hid;
        total += mc_conv_params(b->kernel, hid, hid, hid, 0) + 2 * hid;
        if (b->se > 0)
            total += mc_conv_params(1, hid, b->se, 1, 1) + mc_conv_params(1, b->se, hid, 1, 1);
        total += mc_conv_params(1, hid, out, 1, 0) + 2 * out;
        cin = out;
    }
    total += mc_conv_params(1, cin, c->last, 1, 0) + 2L * c->last;
    long feat = c->last;
    if (c->head_width > 0) {
        total += feat * c->head_width + c->head_width;
        feat = c->head_width;
    }
    return total + feat * c->num_classes + c->num_classes;
}

double mb_macs(const model_cfg *c)
{
    long hw = mb_stem_out(c);
    double total = mc_conv_macs(3, c->in_channels, 1, 0, hw, c->mb_stem);
    long cin = c->mb_stem;
    for (int i = 0; i < c->n_blocks; i++) {
        const mc_mbblock *b = &c->blocks[i];
        long hid = b->hidden, out = b->out;
        if (hid != cin)
            total += mc_conv_macs(1, cin, 1, 0, hw, hid);
        long ho = mc_conv_out((int)hw, b->kernel, b->stride, b->kernel / 2);
        total += mc_conv_macs(b->kernel, hid, hid, 0, ho, hid);
        if (b->se > 0) /* on the pooled 1x1 map */
            total += mc_conv_macs(1, hid, 1, 1, 1, b->se) + mc_conv_macs(1, b->se, 1, 1, 1, hid);
        total += mc_conv_macs(1, hid, 1, 0, ho, out);
        hw = ho;
        cin = out;
    }
    total += mc_conv_macs(1, cin, 1, 0, hw, c->last);
    long feat = c->last;
    if (c->head_width > 0) {
        total += mc_linear_macs(feat, c->head_width, 1);
        feat = c->head_width;
    }
    return total + mc_linear_macs(feat, c->num_classes, 1);
}
