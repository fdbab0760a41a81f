/* check_modelcfg.c - model configs: parsing, defaults, errors, params, MACs.
 *
 * Parameter counts are checked against the reference files (sum of numel
 * over their grad.* tensors), MAC counts against hand arithmetic and against
 * tests/tools/count_macs.py, an independent count with PyTorch forward hooks.
 */
#include "common/err.h"
#include "common/modelcfg.h"
#include "common/safetensors.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_modelcfg(void);

/* Parses JSON text, failing the test on a syntax error. */
static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    ck_assert_msg(j != NULL, "bad test JSON: %s: %s", je.text, text);
    return j;
}

/* Parses text as a model config under path "model". */
static int parse(model_cfg *c, const char *text, field_errors *fe)
{
    json_t *j = load(text);
    fe_init(fe);
    int rc = modelcfg_parse(c, j, "model", fe);
    json_decref(j);
    return rc;
}

static int parse_ok(model_cfg *c, const char *text)
{
    field_errors fe;
    int rc = parse(c, text, &fe);
    char buf[2048];
    fe_format(&fe, buf, sizeof buf);
    ck_assert_msg(rc == 0, "config rejected: %s\n%s", buf, text);
    return rc;
}

/* True if fe holds `field` with a reason containing `reason` (NULL: any). */
static int has_err(const field_errors *fe, const char *field, const char *reason)
{
    for (int i = 0; i < fe->n; i++)
        if (strcmp(fe->e[i].field, field) == 0 &&
            (reason == NULL || strstr(fe->e[i].reason, reason) != NULL))
            return 1;
    return 0;
}

/* Expects the config to be rejected with exactly one problem, at field. */
static void expect_one(const char *text, const char *field, const char *reason)
{
    model_cfg c;
    field_errors fe;
    int rc = parse(&c, text, &fe);
    char buf[2048];
    fe_format(&fe, buf, sizeof buf);
    ck_assert_msg(rc == ERR_INVALID, "accepted: %s", text);
    ck_assert_msg(fe.n == 1 && has_err(&fe, field, reason),
                  "want exactly %s (%s), got: %s\nconfig: %s", field, reason ? reason : "any", buf,
                  text);
}

/* ---- reference files ---------------------------------------------------- */

/* Expected MACs of the four reference configs, printed by
 * `/usr/bin/python3 tests/tools/count_macs.py` (forward hooks on the torch
 * models of shared/reference/torch/models.py, same counting rule). */
static const struct {
    const char *file;
    double macs;
} REF_MACS[] = {
    {"ceit_mini.safetensors", 5462266},
    {"deit_mini.safetensors", 4972474},
    {"resnet20.safetensors", 40813194},
    {"mobilenetv2_w050.safetensors", 27969034},
};

START_TEST(reference_files_params_and_macs)
{
    for (size_t k = 0; k < sizeof REF_MACS / sizeof REF_MACS[0]; k++) {
        st_file *f = tu_open_ref(REF_MACS[k].file);
        const char *meta = st_meta(f, "model");
        ck_assert_msg(meta != NULL, "%s has no model metadata", REF_MACS[k].file);
        model_cfg c;
        parse_ok(&c, meta);
        long grads = 0;
        for (int i = 0; i < st_count(f); i++) {
            const st_tensor *t = st_get(f, i);
            if (strncmp(t->name, "grad.", 5) == 0)
                grads += (long)t->numel;
        }
        ck_assert_msg(modelcfg_params(&c) == grads, "%s: params %ld, grad.* numel %ld",
                      REF_MACS[k].file, modelcfg_params(&c), grads);
        ck_assert_msg(modelcfg_macs(&c) == REF_MACS[k].macs, "%s: MACs %.0f, want %.0f",
                      REF_MACS[k].file, modelcfg_macs(&c), REF_MACS[k].macs);
        /* The canonical form parses back to the same model. */
        json_t *j = modelcfg_to_json(&c);
        model_cfg c2;
        field_errors fe;
        fe_init(&fe);
        ck_assert_int_eq(modelcfg_parse(&c2, j, "model", &fe), 0);
        json_t *j2 = modelcfg_to_json(&c2);
        ck_assert(json_equal(j, j2));
        ck_assert_int_eq(modelcfg_params(&c2), grads);
        json_decref(j);
        json_decref(j2);
        st_close(f);
    }
}
END_TEST

/* The model's tensor shapes in the reference file agree with the parsed
 * widths (a check of the MobileNetV2 preset that does not go through the
 * parameter sum): features.{i+1} of block i has its depthwise conv at
 * conv.0.0 (no expansion) or conv.1.0 with hidden output channels. */
START_TEST(mbv2_preset_matches_reference_shapes)
{
    st_file *f = tu_open_ref("mobilenetv2_w050.safetensors");
    model_cfg c;
    parse_ok(&c, st_meta(f, "model"));
    const st_tensor *t = st_find(f, "features.0.0.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->shape[0], c.mb_stem);
    int cin = c.mb_stem;
    for (int i = 0; i < c.n_blocks; i++) {
        char name[96];
        int expand = c.blocks[i].hidden != cin;
        snprintf(name, sizeof name, "features.%d.conv.%d.0.weight", i + 1, expand ? 1 : 0);
        t = st_find(f, name);
        ck_assert_msg(t != NULL, "%s missing", name);
        ck_assert_int_eq(t->shape[0], c.blocks[i].hidden);
        ck_assert_int_eq(t->shape[1], 1);
        snprintf(name, sizeof name, "features.%d.conv.%d.weight", i + 1, expand ? 2 : 1);
        t = st_find(f, name);
        ck_assert_msg(t != NULL, "%s missing", name);
        ck_assert_int_eq(t->shape[0], c.blocks[i].out);
        cin = c.blocks[i].out;
    }
    t = st_find(f, "classifier.1.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->shape[1], c.last);
    st_close(f);
}
END_TEST

/* ---- hand-checked counts ------------------------------------------------ */

START_TEST(resnet20_cifar_macs_by_hand)
{
    model_cfg c;
    parse_ok(&c, "{\"arch\":\"resnet_cifar\",\"image_size\":32,\"in_channels\":3,"
                 "\"num_classes\":10}");
    /* ResNet-20 (defaults depth 20, widths 16/32/64) on 3x32x32:
     *   conv1 3x3 3->16 @32x32:            27*1024*16        =    442,368
     *   stage 1, 6 convs 3x3 16->16 @32:  6 * 144*1024*16    = 14,155,776
     *   stage 2 @16x16: conv 16->32        144*256*32        =  1,179,648
     *                   conv 32->32 x5   5 * 288*256*32      = 11,796,480
     *                   1x1 shortcut       16*256*32         =    131,072
     *   stage 3 @8x8:   conv 32->64        288*64*64         =  1,179,648
     *                   conv 64->64 x5   5 * 576*64*64       = 11,796,480
     *                   1x1 shortcut       32*64*64          =    131,072
     *   fc (64 + 1) * 10                                     =        650
     *   total                                                = 40,813,194 (ALGORITHMS 2.11: 40.8M)
     */
    double want = 442368.0 + 14155776.0 + 1179648.0 + 11796480.0 + 131072.0 + 1179648.0 +
                  11796480.0 + 131072.0 + 650.0;
    ck_assert(want == 40813194.0);
    ck_assert_msg(modelcfg_macs(&c) == want, "MACs %.0f", modelcfg_macs(&c));
    /* params: conv1 432 + bn 32 = 464; stage 1: 6*(2304 + 32) = 14,016;
     * stage 2: 4608 + 5*9216 + shortcut 512 + 7 BNs of 64 = 51,648;
     * stage 3: 18432 + 5*36864 + shortcut 2048 + 7 BNs of 128 = 205,696; fc 650
     * -> 272,474, the grad.* count of resnet20.safetensors */
    long p_stem = 27 * 16 + 2 * 16;
    long p_s1 = 6 * (144 * 16 + 2 * 16);
    long p_s2 = 144 * 32 + 5 * 288 * 32 + 16 * 32 + 6 * 2 * 32 + 2 * 32;
    long p_s3 = 288 * 64 + 5 * 576 * 64 + 32 * 64 + 6 * 2 * 64 + 2 * 64;
    long p_fc = 64 * 10 + 10;
    ck_assert_int_eq(p_stem + p_s1 + p_s2 + p_s3 + p_fc, 272474);
    ck_assert_int_eq(modelcfg_params(&c), 272474);
}
END_TEST

/* ALGORITHMS.md 1.11 config C: Fashion-MNIST 28x28x1, D 96, depth 6,
 * 3 heads, MLP ratio 4. Expected numbers from tests/tools/count_macs.py. */
START_TEST(config_c_ceit_deit)
{
    model_cfg ce, de;
    parse_ok(&ce, "{\"arch\":\"ceit\",\"image_size\":28,\"in_channels\":1,\"num_classes\":10,"
                  "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,\"patch_size\":2}");
    parse_ok(&de, "{\"arch\":\"deit\",\"image_size\":28,\"in_channels\":1,\"num_classes\":10,"
                  "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,\"patch_size\":4}");
    ck_assert_int_eq(ce.grid, 7);
    ck_assert_int_eq(ce.stem_fm, 14);
    ck_assert_int_eq(de.grid, 7);
    /* CeiT by hand, N = 49 patch tokens, T = 50, hidden 384:
     *   i2t conv 9*1*28*28*32 = 225,792;  proj (4*32+1)*49*96 = 606,816
     *   block: qkv 97*288*50 = 1,396,800; qk^T + av 2*50*50*96 = 480,000;
     *          proj 97*96*50 = 465,600; LeFF 97*384*49 + 10*384*49 + 385*96*49
     *          = 1,825,152 + 188,160 + 1,811,040  -> 6,166,752 per block, x6
     *   LCA: q 97*96 + kv 97*192*6 + 2*6*96 + proj 97*96 + MLP 97*384 + 385*96 = 205,728
     *   head 97*10 = 970  -> total 38,039,818 (ALGORITHMS: 38M) */
    double ceit_want = 225792.0 + 606816.0 + 6.0 * 6166752.0 + 205728.0 + 970.0;
    ck_assert(ceit_want == 38039818.0);
    ck_assert_msg(modelcfg_macs(&ce) == ceit_want, "CeiT MACs %.0f", modelcfg_macs(&ce));
    /* DeiT: patch conv (16+1)*49*96 = 79,968; block 1,396,800 + 480,000 + 465,600
     * + MLP (97*384 + 385*96)*50 = 3,710,400 -> 6,052,800, x6; head 970
     * -> 36,397,738 (ALGORITHMS: 36M) */
    ck_assert(modelcfg_macs(&de) == 79968.0 + 6.0 * 6052800.0 + 970.0);
    ck_assert(modelcfg_macs(&de) == 36397738.0);
    /* params (count_macs.py: 835658 / 678730; ALGORITHMS: 0.84M / 0.68M) */
    ck_assert_int_eq(modelcfg_params(&ce), 835658);
    ck_assert_int_eq(modelcfg_params(&de), 678730);
}
END_TEST

START_TEST(mbv2_preset_widths_as_models_py)
{
    /* stem, last, then (hidden, out, stride) per block, printed by
     * mbv2_blocks(w, cifar) of shared/reference/torch/models.py */
    static const struct {
        double w;
        int cifar, stem, last, b[17][3];
    } cases[] = {
        {0.35,
         1,
         8,
         1280,
         {{8, 8, 1},
          {48, 8, 1},
          {48, 8, 1},
          {48, 8, 2},
          {48, 8, 1},
          {48, 8, 1},
          {48, 24, 2},
          {144, 24, 1},
          {144, 24, 1},
          {144, 24, 1},
          {144, 32, 1},
          {192, 32, 1},
          {192, 32, 1},
          {192, 56, 2},
          {336, 56, 1},
          {336, 56, 1},
          {336, 112, 1}}},
        {0.75,
         1,
         24,
         1280,
         {{24, 16, 1},
          {96, 16, 1},
          {96, 16, 1},
          {96, 24, 2},
          {144, 24, 1},
          {144, 24, 1},
          {144, 48, 2},
          {288, 48, 1},
          {288, 48, 1},
          {288, 48, 1},
          {288, 72, 1},
          {432, 72, 1},
          {432, 72, 1},
          {432, 120, 2},
          {720, 120, 1},
          {720, 120, 1},
          {720, 240, 1}}},
        {1.4,
         0,
         48,
         1792,
         {{48, 24, 1},
          {144, 32, 2},
          {192, 32, 1},
          {192, 48, 2},
          {288, 48, 1},
          {288, 48, 1},
          {288, 88, 2},
          {528, 88, 1},
          {528, 88, 1},
          {528, 88, 1},
          {528, 136, 1},
          {816, 136, 1},
          {816, 136, 1},
          {816, 224, 2},
          {1344, 224, 1},
          {1344, 224, 1},
          {1344, 448, 1}}},
        {1.3,
         1,
         40,
         1664,
         {{40, 24, 1},
          {144, 32, 1},
          {192, 32, 1},
          {192, 40, 2},
          {240, 40, 1},
          {240, 40, 1},
          {240, 80, 2},
          {480, 80, 1},
          {480, 80, 1},
          {480, 80, 1},
          {480, 128, 1},
          {768, 128, 1},
          {768, 128, 1},
          {768, 208, 2},
          {1248, 208, 1},
          {1248, 208, 1},
          {1248, 416, 1}}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{\"arch\":\"mobilenetv2\",\"image_size\":32,\"in_channels\":3,"
                 "\"num_classes\":10,\"width_mult\":%g,\"cifar\":%s}",
                 cases[k].w, cases[k].cifar ? "true" : "false");
        model_cfg c;
        parse_ok(&c, text);
        ck_assert_int_eq(c.mb_stem, cases[k].stem);
        ck_assert_int_eq(c.last, cases[k].last);
        ck_assert_int_eq(c.n_blocks, 17);
        for (int i = 0; i < 17; i++) {
            ck_assert_int_eq(c.blocks[i].hidden, cases[k].b[i][0]);
            ck_assert_int_eq(c.blocks[i].out, cases[k].b[i][1]);
            ck_assert_int_eq(c.blocks[i].stride, cases[k].b[i][2]);
        }
    }
}
END_TEST

/* ---- defaults and forms ------------------------------------------------- */

START_TEST(vit_defaults_per_arch)
{
    model_cfg c;
    parse_ok(&c, "{\"arch\":\"ceit\",\"image_size\":28,\"in_channels\":1,\"num_classes\":10,"
                 "\"embed_dim\":48,\"depth\":3,\"num_heads\":3,\"patch_size\":2}");
    ck_assert_int_eq(c.stem, MC_STEM_I2T);
    ck_assert_int_eq(c.stem_channels, 32);
    ck_assert_int_eq(c.stem_kernel, 3);
    ck_assert_int_eq(c.stem_stride, 1);
    ck_assert_int_eq(c.stem_pool, 1);
    ck_assert_int_eq(c.ffn, MC_FFN_LEFF);
    ck_assert_int_eq(c.leff_kernel, 3);
    ck_assert_int_eq(c.head, MC_HEAD_LCA);
    ck_assert(c.mlp_ratio == 4.0);
    ck_assert_int_eq(c.hidden, 192);

    parse_ok(&c, "{\"arch\":\"deit\",\"image_size\":28,\"in_channels\":1,\"num_classes\":10,"
                 "\"embed_dim\":48,\"depth\":3,\"num_heads\":3,\"patch_size\":4}");
    ck_assert_int_eq(c.stem, MC_STEM_PATCHIFY);
    ck_assert_int_eq(c.ffn, MC_FFN_MLP);
    ck_assert_int_eq(c.head, MC_HEAD_CLS);
    ck_assert_int_eq(c.grid, 7);

    /* an ablation mix: DeiT with LeFF and LCA, and a stride-2, pool-less I2T;
     * mlp_ratio 2.5 gives floor(48*2.5) = 120 */
    parse_ok(&c, "{\"arch\":\"deit\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"
                 "\"embed_dim\":48,\"depth\":2,\"num_heads\":4,\"patch_size\":2,\"mlp_ratio\":2.5,"
                 "\"stem\":{\"type\":\"i2t\",\"channels\":8,\"stride\":2,\"pool\":false},"
                 "\"ffn\":{\"type\":\"leff\",\"kernel\":5},\"head\":\"lca\"}");
    ck_assert_int_eq(c.hidden, 120);
    ck_assert_int_eq(c.stem_fm, 16);
    ck_assert_int_eq(c.grid, 8);
    ck_assert_int_eq(c.leff_kernel, 5);
    ck_assert_int_eq(c.head, MC_HEAD_LCA);
    /* count_macs.py on the same config */
    ck_assert_int_eq(modelcfg_params(&c), 76922);
    ck_assert(modelcfg_macs(&c) == 4112818.0);
    json_t *j = modelcfg_to_json(&c);
    json_t *want = load("{\"arch\":\"deit\",\"image_size\":32,\"in_channels\":3,"
                        "\"num_classes\":10,\"embed_dim\":48,\"depth\":2,\"num_heads\":4,"
                        "\"mlp_ratio\":2.5,\"patch_size\":2,\"stem\":{\"type\":\"i2t\","
                        "\"channels\":8,\"kernel\":3,\"stride\":2,\"pool\":false},"
                        "\"ffn\":{\"type\":\"leff\",\"kernel\":5},\"head\":\"lca\"}");
    ck_assert(json_equal(j, want));
    json_decref(j);
    json_decref(want);
}
END_TEST

/* A ViT ablation mix, counted by hand: deit arch with i2t stem and LeFF but a
 * cls head, so each formula is exercised in a combination the reference files
 * do not have. */
START_TEST(vit_mix_counts_by_hand)
{
    model_cfg c;
    parse_ok(&c, "{\"arch\":\"deit\",\"image_size\":16,\"in_channels\":2,\"num_classes\":5,"
                 "\"embed_dim\":8,\"depth\":2,\"num_heads\":2,\"mlp_ratio\":2,\"patch_size\":2,"
                 "\"stem\":{\"type\":\"i2t\",\"channels\":4,\"kernel\":3,\"stride\":1,"
                 "\"pool\":true},\"ffn\":{\"type\":\"leff\",\"kernel\":3},\"head\":\"cls\"}");
    /* grid: 16 -> pool 8 -> patch 2 -> 4, N = 16, T = 17; C = 8, hidden 16.
     * params: stem conv 2*4*9 = 72, bn 8, proj 4*8*4 + 8 = 136; cls 8; pos 17*8 = 136;
     *   block: norms 32, attn 3*64+24 + 64+8 = 288, LeFF 8*16+16 + 32 + 16*9+16 + 32
     *   + 16*8+8 + 16 = 520 -> 840, x2 = 1680; norm 16; head 8*5+5 = 45
     *   -> 72+8+136+8+136+1680+16+45 = 2101 */
    ck_assert_int_eq(modelcfg_params(&c), 2101);
    /* MACs: stem conv 18*256*4 = 18432; proj (16+1)*16*8 = 2176;
     *   block: qkv 9*24*17 = 3672, attention 2*17*17*8 = 4624, proj 9*8*17 = 1224,
     *   LeFF 9*16*16 + 10*16*16 + 17*8*16 = 2304 + 2560 + 2176 = 7040 -> 16560, x2;
     *   head 9*5 = 45 -> 18432 + 2176 + 33120 + 45 = 53773
     * (count_macs.py agrees on both numbers.) */
    ck_assert(modelcfg_macs(&c) == 53773.0);
}
END_TEST

START_TEST(resnet_forms)
{
    model_cfg p, e;
    parse_ok(&p, "{\"arch\":\"resnet_cifar\",\"image_size\":28,\"in_channels\":1,"
                 "\"num_classes\":10}");
    ck_assert_int_eq(p.preset, 1);
    ck_assert_int_eq(p.resnet_depth, 20);
    ck_assert_int_eq(p.stem_width, 16);
    ck_assert_int_eq(p.n_stages, 3);
    ck_assert_int_eq(p.stages[2].width, 64);
    ck_assert_int_eq(p.stages[2].n_blocks, 3);
    ck_assert_int_eq(p.stages[2].mids[2], 64);

    /* the explicit JSON of the preset describes the same network */
    json_t *x = modelcfg_to_explicit_json(&p);
    json_t *want = load("{\"arch\":\"resnet_cifar\",\"image_size\":28,\"in_channels\":1,"
                        "\"num_classes\":10,\"stem\":16,\"stages\":["
                        "{\"width\":16,\"mids\":[16,16,16]},{\"width\":32,\"mids\":[32,32,32]},"
                        "{\"width\":64,\"mids\":[64,64,64]}]}");
    ck_assert(json_equal(x, want));
    field_errors fe;
    fe_init(&fe);
    ck_assert_int_eq(modelcfg_parse(&e, x, "model", &fe), 0);
    ck_assert_int_eq(e.preset, 0);
    ck_assert_int_eq(modelcfg_params(&e), modelcfg_params(&p));
    ck_assert(modelcfg_macs(&e) == modelcfg_macs(&p));
    json_t *echo = modelcfg_to_json(&e); /* explicit stays explicit */
    ck_assert(json_equal(echo, want));
    json_decref(echo);
    json_decref(x);
    json_decref(want);

    /* the preset echoes as a preset */
    json_t *pj = modelcfg_to_json(&p);
    ck_assert_int_eq(json_integer_value(json_object_get(pj, "depth")), 20);
    ck_assert_int_eq(json_array_size(json_object_get(pj, "widths")), 3);
    ck_assert_ptr_null(json_object_get(pj, "stages"));
    json_decref(pj);

    /* a pruned explicit net, counted by hand on 1x8x8, 4 classes:
     * stem 4; stage 1 width 4 mids [2]; stage 2 width 6 mids [3, 5] */
    parse_ok(&e, "{\"arch\":\"resnet_cifar\",\"image_size\":8,\"in_channels\":1,"
                 "\"num_classes\":4,\"stem\":4,\"stages\":[{\"width\":4,\"mids\":[2]},"
                 "{\"width\":6,\"mids\":[3,5]}]}");
    /* params: conv1 9*4 + 8 = 44; s1b0 9*4*2 + 4 + 9*2*4 + 8 = 156 (identity);
     *   s2b0 9*4*3 + 6 + 9*3*6 + 12 + ds 4*6 + 12 = 324; s2b1 9*6*5 + 10 + 9*5*6 + 12 = 562;
     *   fc 6*4 + 4 = 28 -> 1114
     * MACs: conv1 9*64*4 = 2304; s1b0 (9*4*2 + 9*2*4)*64 = 9216;
     *   s2b0 @4x4: 9*4*3*16 + 9*3*6*16 + 4*6*16 = 1728 + 2592 + 384 = 4704;
     *   s2b1: 9*6*5*16 + 9*5*6*16 = 8640; fc 7*4 = 28 -> 24892 */
    ck_assert_int_eq(modelcfg_params(&e), 1114);
    ck_assert(modelcfg_macs(&e) == 24892.0);
}
END_TEST

START_TEST(mbv2_forms)
{
    model_cfg p, e;
    parse_ok(&p, "{\"arch\":\"mobilenetv2\",\"image_size\":32,\"in_channels\":3,"
                 "\"num_classes\":10}");
    ck_assert_int_eq(p.preset, 1);
    ck_assert(p.width_mult == 1.0);
    ck_assert_int_eq(p.cifar, 1);
    ck_assert_int_eq(p.mb_stem, 32);
    ck_assert_int_eq(p.last, 1280);
    json_t *x = modelcfg_to_explicit_json(&p);
    field_errors fe;
    fe_init(&fe);
    ck_assert_int_eq(modelcfg_parse(&e, x, "model", &fe), 0);
    ck_assert_int_eq(e.preset, 0);
    ck_assert_int_eq(e.n_blocks, 17);
    ck_assert_int_eq(modelcfg_params(&e), modelcfg_params(&p));
    ck_assert(modelcfg_macs(&e) == modelcfg_macs(&p));
    json_t *echo = modelcfg_to_json(&e);
    ck_assert(json_equal(echo, x));
    json_decref(echo);
    json_decref(x);

    /* a tiny explicit net by hand on 3x8x8, not cifar (stem stride 2 -> 4x4):
     * stem 4; blocks {4,4,1} (no expansion, residual), {8,6,2}; last 10; 3 classes
     * params: stem 27*4 + 8 = 116; b0 dw 9*4 + 8, pw 4*4 + 8 -> 68;
     *   b1 expand 4*8 + 16, dw 9*8 + 16, pw 8*6 + 12 -> 196; last 6*10 + 20 = 80;
     *   classifier 10*3 + 3 = 33 -> 493
     * MACs: stem 27*16*4 = 1728; b0 @4x4 9*16*4 + 4*16*4 = 832;
     *   b1 expand 4*16*8 = 512, dw @2x2 9*4*8 = 288, pw 8*4*6 = 192 -> 992;
     *   last 6*4*10 = 240; classifier 11*3 = 33 -> 3825 */
    parse_ok(&e, "{\"arch\":\"mobilenetv2\",\"image_size\":8,\"in_channels\":3,"
                 "\"num_classes\":3,\"cifar\":false,\"stem\":4,\"blocks\":["
                 "{\"hidden\":4,\"out\":4,\"stride\":1},{\"hidden\":8,\"out\":6,\"stride\":2}],"
                 "\"last\":10}");
    ck_assert_int_eq(modelcfg_params(&e), 493);
    ck_assert(modelcfg_macs(&e) == 3825.0);
}
END_TEST

START_TEST(mbv3_effnet_forms)
{
    model_cfg p, e;
    parse_ok(&p, "{\"arch\":\"mobilenetv3\",\"image_size\":32,\"in_channels\":3,"
                 "\"num_classes\":10,\"variant\":\"small\"}");
    ck_assert_int_eq(p.preset, 1);
    ck_assert_int_eq(p.cifar, 0); /* torchvision's stride-2 stem unless asked */
    ck_assert_int_eq(p.n_blocks, 11);
    ck_assert_int_eq(p.blocks[0].se, 8); /* _make_divisible(16 // 4, 8) */
    ck_assert_int_eq(p.blocks[0].act, MC_ACT_RELU);
    ck_assert_int_eq(p.blocks[3].act, MC_ACT_HSWISH);
    ck_assert_int_eq(p.blocks[3].kernel, 5);
    ck_assert_int_eq(p.last, 576);
    ck_assert_int_eq(p.head_width, 1024);
    ck_assert(p.dropout == 0.2);
    char name[32];
    modelcfg_mb_block_name(&p, 4, name, sizeof name);
    ck_assert_str_eq(name, "features.5");
    ck_assert_str_eq(modelcfg_mb_classifier(&p), "classifier.3");
    ck_assert_int_eq(modelcfg_mb_last_index(&p), 12);
    /* preset -> explicit -> the same net, and the explicit JSON echoes */
    json_t *x = modelcfg_to_explicit_json(&p);
    field_errors fe;
    fe_init(&fe);
    ck_assert_int_eq(modelcfg_parse(&e, x, "model", &fe), 0);
    ck_assert_int_eq(modelcfg_params(&e), modelcfg_params(&p));
    ck_assert(modelcfg_macs(&e) == modelcfg_macs(&p));
    json_t *echo = modelcfg_to_json(&e);
    ck_assert(json_equal(echo, x));
    json_decref(echo);
    json_decref(x);

    parse_ok(&p, "{\"arch\":\"efficientnet\",\"image_size\":32,\"in_channels\":3,"
                 "\"num_classes\":10,\"cifar\":true}");
    ck_assert_int_eq(p.variant, 0); /* b0 */
    ck_assert_int_eq(p.n_blocks, 16);
    ck_assert(p.drop_path == 0.2 && p.dropout == 0.2);
    ck_assert_int_eq(p.blocks[1].se, 4); /* max(1, 16 // 4): the block's input */
    ck_assert_int_eq(p.blocks[1].hidden, 96);
    modelcfg_mb_block_name(&p, 2, name, sizeof name);
    ck_assert_str_eq(name, "features.2.1");
    ck_assert_int_eq(modelcfg_mb_last_index(&p), 8);
    ck_assert_str_eq(modelcfg_mb_inner(&p), "block");
    x = modelcfg_to_explicit_json(&p);
    ck_assert_int_eq(modelcfg_parse(&e, x, "model", &fe), 0);
    ck_assert_int_eq(modelcfg_params(&e), modelcfg_params(&p));
    ck_assert(modelcfg_macs(&e) == modelcfg_macs(&p));
    json_decref(x);
    parse_ok(&p, "{\"arch\":\"efficientnet\",\"image_size\":32,\"in_channels\":3,"
                 "\"num_classes\":10,\"variant\":\"b2\"}");
    ck_assert(p.width_mult == 1.1 && p.depth_mult == 1.2 && p.dropout == 0.3);

    /* a tiny MobileNetV3 by hand on 3x8x8 (stem stride 2 -> 4x4): stem 4; block
     * {hidden 8, out 4, kernel 3, se 2} (expansion, residual); last 6; head 5; 3 classes.
     * params: stem 27*4 + 8 = 116; expand 4*8 + 16 = 48; dw 9*8 + 16 = 88;
     *   se fc1 8*2 + 2 = 18, fc2 2*8 + 8 = 24; project 8*4 + 8 = 40; last 4*6 + 12 = 36;
     *   classifier.0 6*5 + 5 = 35, classifier.3 5*3 + 3 = 18 -> 423
     * MACs: stem 27*16*4 = 1728; expand 4*16*8 = 512; dw 9*16*8 = 1152;
     *   se (8+1)*2 + (2+1)*8 = 42; project 8*16*4 = 512; last 4*16*6 = 384;
     *   classifier (6+1)*5 + (5+1)*3 = 53 -> 4383 */
    parse_ok(&e, "{\"arch\":\"mobilenetv3\",\"image_size\":8,\"in_channels\":3,"
                 "\"num_classes\":3,\"stem\":4,\"blocks\":[{\"hidden\":8,\"out\":4,\"kernel\":3,"
                 "\"se\":2,\"act\":\"hswish\"}],\"last\":6,\"head_width\":5}");
    ck_assert_int_eq(modelcfg_params(&e), 423);
    ck_assert(modelcfg_macs(&e) == 4383.0);

    /* SE widths tied to the expansion width */
    ck_assert_int_eq(modelcfg_se_width(24, 96, 48), 12);
    ck_assert_int_eq(modelcfg_se_width(4, 96, 8), 1);
    ck_assert_int_eq(modelcfg_se_width(0, 96, 48), 0);

#define MB3 "{\"arch\":\"mobilenetv3\",\"image_size\":32,\"in_channels\":3,\"num_classes\":3,"
#define EFF "{\"arch\":\"efficientnet\",\"image_size\":32,\"in_channels\":3,\"num_classes\":3,"
    expect_one(MB3 "\"variant\":\"medium\"}", "model.variant", NULL);
    expect_one(MB3 "\"stem\":8,\"last\":16,\"blocks\":[{\"hidden\":8,\"out\":8}]}",
               "model.head_width", "is required");
    expect_one(MB3 "\"stem\":8,\"last\":16,\"head_width\":8,\"blocks\":[{\"hidden\":8,\"out\":8,"
                   "\"act\":\"silu\"}]}",
               "model.blocks[0].act", "relu or hswish");
    expect_one(MB3 "\"stem\":8,\"last\":16,\"head_width\":8,\"blocks\":[{\"hidden\":8,\"out\":8,"
                   "\"se\":9}]}",
               "model.blocks[0].se", "must not exceed hidden");
    expect_one(MB3 "\"stem\":8,\"last\":16,\"head_width\":8,\"blocks\":[{\"hidden\":8,\"out\":8,"
                   "\"kernel\":4}]}",
               "model.blocks[0].kernel", "odd");
    expect_one(EFF "\"variant\":\"b1\",\"width_mult\":1.2}", "model.variant", "cannot be combined");
    expect_one(EFF "\"drop_path\":1}", "model.drop_path", NULL);
    expect_one(EFF "\"stem\":8,\"last\":16,\"blocks\":[{\"hidden\":8,\"out\":8}]}",
               "model.blocks[0].stage", "is required");
    expect_one(EFF "\"stem\":8,\"last\":16,\"blocks\":[{\"hidden\":8,\"out\":8,\"stage\":0},"
                   "{\"hidden\":16,\"out\":12,\"stage\":0}]}",
               "model.blocks[1].stage", "stride 1 and out 8");
    expect_one(EFF "\"stem\":8,\"last\":16,\"blocks\":[{\"hidden\":8,\"out\":8,\"stage\":0},"
                   "{\"hidden\":16,\"out\":12,\"stage\":2}]}",
               "model.blocks[1].stage", "must be 0 or 1");
    expect_one("{\"arch\":\"mobilenetv2\",\"image_size\":32,\"in_channels\":3,\"num_classes\":3,"
               "\"stem\":8,\"last\":16,\"blocks\":[{\"hidden\":8,\"out\":8,\"se\":2}]}",
               "model.blocks[0].se", "unknown");
    expect_one("{\"arch\":\"mobilenetv2\",\"image_size\":32,\"in_channels\":3,\"num_classes\":3,"
               "\"dropout\":0.1}",
               "model.dropout", "unknown");
#undef MB3
#undef EFF
}
END_TEST

/* ---- errors ------------------------------------------------------------- */

#define VIT_HEAD "\"image_size\":28,\"in_channels\":1,\"num_classes\":10,"

START_TEST(errors_name_the_field)
{
    expect_one("{\"arch\":\"deit\"," VIT_HEAD
               "\"embed_dim\":96,\"depth\":6,\"num_heads\":5,\"patch_size\":4}",
               "model.num_heads", "must divide embed_dim (96)");
    expect_one("{\"arch\":\"ceit\"," VIT_HEAD
               "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,\"patch_size\":3}",
               "model.patch_size", "14x14");
    expect_one("{\"arch\":\"deit\"," VIT_HEAD
               "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,\"patch_size\":5}",
               "model.patch_size", "must divide image_size (28)");
    expect_one("{\"arch\":\"ceit\"," VIT_HEAD "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,"
               "\"patch_size\":2,\"stem\":{\"stride\":3}}",
               "model.stem.stride", "must divide image_size (28)");
    expect_one("{\"arch\":\"ceit\"," VIT_HEAD "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,"
               "\"patch_size\":2,\"ffn\":{\"kernel\":4}}",
               "model.ffn.kernel", "odd");
    expect_one("{\"arch\":\"deit\"," VIT_HEAD
               "\"embed_dim\":96,\"depth\":65,\"num_heads\":3,\"patch_size\":4}",
               "model.depth", "<= 64");
    expect_one("{\"arch\":\"deit\"," VIT_HEAD
               "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,\"patch_size\":4,\"mlp_ratio\":0}",
               "model.mlp_ratio", "> 0");
    expect_one("{\"arch\":\"deit\"," VIT_HEAD
               "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,\"patch_size\":4,\"head\":\"avg\"}",
               "model.head", "one of \"cls\", \"lca\"");
    expect_one("{\"arch\":\"deit\"," VIT_HEAD "\"embed_dim\":96,\"depth\":6,\"num_heads\":3}",
               "model.patch_size", "is required");
    expect_one("{\"arch\":\"vgg\"," VIT_HEAD "\"embed_dim\":96}", "model.arch", "one of");
    expect_one("{" VIT_HEAD "\"embed_dim\":96}", "model.arch", "is required");
    expect_one("{\"arch\":\"resnet_cifar\",\"image_size\":0,\"in_channels\":1,"
               "\"num_classes\":10}",
               "model.image_size", ">= 1");
    expect_one("{\"arch\":\"resnet_cifar\",\"image_size\":28,\"in_channels\":1,"
               "\"num_classes\":1}",
               "model.num_classes", ">= 2");
    expect_one("{\"arch\":\"resnet_cifar\"," VIT_HEAD "\"depth\":21}", "model.depth", "6n+2");
    expect_one("{\"arch\":\"resnet_cifar\"," VIT_HEAD "\"widths\":[16,0,64]}", "model.widths[1]",
               ">= 1");
    expect_one("{\"arch\":\"resnet_cifar\"," VIT_HEAD "\"widths\":[]}", "model.widths", "1 to 8");
    expect_one("{\"arch\":\"resnet_cifar\"," VIT_HEAD "\"depth\":20,\"stem\":16,"
               "\"stages\":[{\"width\":16,\"mids\":[16]}]}",
               "model.depth", "cannot be combined");
    expect_one("{\"arch\":\"resnet_cifar\"," VIT_HEAD
               "\"stem\":16,\"stages\":[{\"width\":16,\"mids\":[16]},{\"width\":32}]}",
               "model.stages[1].mids", "is required");
    expect_one("{\"arch\":\"resnet_cifar\"," VIT_HEAD
               "\"stem\":16,\"stages\":[{\"width\":16,\"mids\":[16,\"a\"]}]}",
               "model.stages[0].mids[1]", "must be an integer");
    expect_one("{\"arch\":\"mobilenetv2\"," VIT_HEAD
               "\"stem\":8,\"last\":32,\"blocks\":[{\"hidden\":8,\"out\":8},"
               "{\"hidden\":48,\"out\":16,\"stride\":3}]}",
               "model.blocks[1].stride", "<= 2");
    expect_one("{\"arch\":\"mobilenetv2\"," VIT_HEAD "\"width_mult\":0.5,\"stem\":8,"
               "\"last\":32,\"blocks\":[{\"hidden\":8,\"out\":8}]}",
               "model.width_mult", "cannot be combined");
    expect_one("{\"arch\":\"mobilenetv2\"," VIT_HEAD "\"width_mult\":-1}", "model.width_mult",
               "> 0");
}
END_TEST

START_TEST(unknown_fields_and_wrong_types)
{
    expect_one("{\"arch\":\"deit\"," VIT_HEAD
               "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,\"patch_size\":4,\"dropout\":0.1}",
               "model.dropout", "unknown field");
    expect_one("{\"arch\":\"deit\"," VIT_HEAD "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,"
               "\"patch_size\":4,\"stem\":{\"type\":\"patchify\",\"channels\":32}}",
               "model.stem.channels", "unknown field");
    /* a ViT field on a CNN is unknown there */
    expect_one("{\"arch\":\"resnet_cifar\"," VIT_HEAD "\"embed_dim\":96}", "model.embed_dim",
               "unknown field");
    expect_one("{\"arch\":\"resnet_cifar\"," VIT_HEAD
               "\"stem\":16,\"stages\":[{\"width\":16,\"mids\":[16],\"stride\":2}]}",
               "model.stages[0].stride", "unknown field");
    expect_one("{\"arch\":\"deit\"," VIT_HEAD
               "\"embed_dim\":\"96\",\"depth\":6,\"num_heads\":3,\"patch_size\":4}",
               "model.embed_dim", "must be an integer");
    expect_one("{\"arch\":\"deit\"," VIT_HEAD
               "\"embed_dim\":96.0,\"depth\":6,\"num_heads\":3,\"patch_size\":4}",
               "model.embed_dim", "must be an integer");
    expect_one("{\"arch\":\"ceit\"," VIT_HEAD
               "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,\"patch_size\":2,\"stem\":\"i2t\"}",
               "model.stem", "must be an object");
    expect_one("{\"arch\":\"ceit\"," VIT_HEAD "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,"
               "\"patch_size\":2,\"stem\":{\"pool\":1}}",
               "model.stem.pool", "true or false");
    expect_one("{\"arch\":\"deit\"," VIT_HEAD "\"embed_dim\":96,\"depth\":6,\"num_heads\":3,"
               "\"patch_size\":4,\"mlp_ratio\":\"4\"}",
               "model.mlp_ratio", "must be a number");
    expect_one("{\"arch\":\"mobilenetv2\"," VIT_HEAD "\"stem\":8,\"last\":32,\"blocks\":[3]}",
               "model.blocks[0]", "must be an object");
    expect_one("{\"arch\":\"mobilenetv2\"," VIT_HEAD "\"stem\":8,\"last\":32,\"blocks\":{}}",
               "model.blocks", "must be an array");

    model_cfg c;
    field_errors fe;
    json_t *s = json_string("deit");
    fe_init(&fe);
    ck_assert_int_eq(modelcfg_parse(&c, s, "model", &fe), ERR_INVALID);
    ck_assert(has_err(&fe, "model", "must be an object"));
    json_decref(s);
    fe_init(&fe);
    ck_assert_int_eq(modelcfg_parse(&c, NULL, "model", &fe), ERR_INVALID);
    ck_assert(has_err(&fe, "model", "is required"));
}
END_TEST

START_TEST(collects_every_error)
{
    model_cfg c;
    field_errors fe;
    int rc = parse(&c,
                   "{\"arch\":\"ceit\",\"image_size\":28,\"in_channels\":0,\"num_classes\":10,"
                   "\"embed_dim\":96,\"depth\":0,\"num_heads\":5,\"patch_size\":2,"
                   "\"stem\":{\"type\":\"i2t\",\"kernel\":2,\"bogus\":1},"
                   "\"ffn\":{\"type\":\"conv\"},\"head\":3,\"extra\":true}",
                   &fe);
    char buf[2048];
    fe_format(&fe, buf, sizeof buf);
    ck_assert_int_eq(rc, ERR_INVALID);
    ck_assert_msg(fe.n == 8, "%d problems: %s", fe.n, buf);
    ck_assert(has_err(&fe, "model.in_channels", ">= 1"));
    ck_assert(has_err(&fe, "model.depth", ">= 1"));
    ck_assert(has_err(&fe, "model.num_heads", "divide"));
    ck_assert(has_err(&fe, "model.stem.kernel", "odd"));
    ck_assert(has_err(&fe, "model.stem.bogus", "unknown"));
    ck_assert(has_err(&fe, "model.ffn.type", "one of"));
    ck_assert(has_err(&fe, "model.head", "one of"));
    ck_assert(has_err(&fe, "model.extra", "unknown"));
}
END_TEST

START_TEST(path_prefix)
{
    model_cfg c;
    field_errors fe;
    json_t *j = load("{\"arch\":\"deit\",\"image_size\":28,\"in_channels\":1,"
                     "\"num_classes\":10,\"embed_dim\":96,\"depth\":6,\"num_heads\":5,"
                     "\"patch_size\":4}");
    fe_init(&fe);
    ck_assert_int_eq(modelcfg_parse(&c, j, "", &fe), ERR_INVALID);
    ck_assert(has_err(&fe, "num_heads", "divide"));
    fe_init(&fe);
    ck_assert_int_eq(modelcfg_parse(&c, j, "jobs[2].model", &fe), ERR_INVALID);
    ck_assert(has_err(&fe, "jobs[2].model.num_heads", "divide"));
    /* errors are counted even without a list to put them in */
    ck_assert_int_eq(modelcfg_parse(&c, j, "model", NULL), ERR_INVALID);
    json_decref(j);
}
END_TEST

/* ---- ImageNet forms (issue 16) -------------------------------------------- */

/* torchvision's ResNets and the 224^2 CeiT / DeiT / MobileNetV2, 1000 classes:
 * params = sum of numel over torchvision's / models.py's parameters and MACs
 * by forward hooks, both printed by `/usr/bin/python3 tests/tools/count_macs.py`
 * (ALGORITHMS.md 1.5 gives the same CeiT/DeiT figures: 6.36M / 1.40G, ...). */
#define IN224  "\"image_size\":224,\"in_channels\":3,\"num_classes\":1000,"
#define I2T224 "\"stem\":{\"type\":\"i2t\",\"channels\":64,\"kernel\":7,\"stride\":2}"
static const struct {
    const char *name, *config;
    long params;
    double macs;
} IMAGENET[] = {
    {"resnet18", "{\"arch\":\"resnet\"," IN224 "\"depth\":18}", 11689512, 1814074344.0},
    {"resnet34", "{\"arch\":\"resnet\"," IN224 "\"depth\":34}", 21797672, 3663762408.0},
    {"resnet50", "{\"arch\":\"resnet\"," IN224 "\"depth\":50}", 25557032, 4089185256.0},
    {"resnet101", "{\"arch\":\"resnet\"," IN224 "\"depth\":101}", 44549160, 7801406440.0},
    {"resnet152", "{\"arch\":\"resnet\"," IN224 "\"depth\":152}", 60192808, 11513627624.0},
    {"ceit-t",
     "{\"arch\":\"ceit\"," IN224 "\"embed_dim\":192,\"depth\":12,\"num_heads\":3,"
     "\"patch_size\":4," I2T224 "}",
     6356904, 1401231400.0},
    {"ceit-s",
     "{\"arch\":\"ceit\"," IN224 "\"embed_dim\":384,\"depth\":12,\"num_heads\":6,"
     "\"patch_size\":4," I2T224 "}",
     24204840, 4771392616.0},
    {"deit-t",
     "{\"arch\":\"deit\"," IN224 "\"embed_dim\":192,\"depth\":12,\"num_heads\":3,"
     "\"patch_size\":16}",
     5717416, 1257806824.0},
    {"deit-s",
     "{\"arch\":\"deit\"," IN224 "\"embed_dim\":384,\"depth\":12,\"num_heads\":6,"
     "\"patch_size\":16}",
     22050664, 4607128552.0},
    {"mobilenetv2-1.0", "{\"arch\":\"mobilenetv2\"," IN224 "\"width_mult\":1.0,\"cifar\":false}",
     3504872, 300775272.0},
    {"mobilenetv2-1.5", "{\"arch\":\"mobilenetv2\"," IN224 "\"width_mult\":1.5,\"cifar\":false}",
     6858152, 672833704.0},
    /* torchvision's definitions; the papers state 219M, 56M and 0.39B..4.2B MAdds */
    {"mobilenetv3-large", "{\"arch\":\"mobilenetv3\"," IN224 "\"variant\":\"large\"}", 5483032,
     216597120.0},
    {"mobilenetv3-small", "{\"arch\":\"mobilenetv3\"," IN224 "\"variant\":\"small\"}", 2542856,
     56515312.0},
    {"efficientnet-b0", "{\"arch\":\"efficientnet\"," IN224 "\"variant\":\"b0\"}", 5288548,
     385825092.0},
    {"efficientnet-b1",
     "{\"arch\":\"efficientnet\",\"image_size\":240,\"in_channels\":3,\"num_classes\":1000,"
     "\"variant\":\"b1\"}",
     7794184, 686817992.0},
    {"efficientnet-b2",
     "{\"arch\":\"efficientnet\",\"image_size\":260,\"in_channels\":3,\"num_classes\":1000,"
     "\"variant\":\"b2\"}",
     9109994, 993578282.0},
    {"efficientnet-b3",
     "{\"arch\":\"efficientnet\",\"image_size\":300,\"in_channels\":3,\"num_classes\":1000,"
     "\"variant\":\"b3\"}",
     12233232, 1827162472.0},
    {"efficientnet-b4",
     "{\"arch\":\"efficientnet\",\"image_size\":380,\"in_channels\":3,\"num_classes\":1000,"
     "\"width_mult\":1.4,\"depth_mult\":1.8}",
     19341616, 4393801064.0},
};

START_TEST(imagenet_forms_match_torch_counts)
{
    for (size_t i = 0; i < sizeof IMAGENET / sizeof IMAGENET[0]; i++) {
        model_cfg c;
        parse_ok(&c, IMAGENET[i].config);
        ck_assert_msg(modelcfg_params(&c) == IMAGENET[i].params, "%s: params %ld, torch %ld",
                      IMAGENET[i].name, modelcfg_params(&c), IMAGENET[i].params);
        ck_assert_msg(modelcfg_macs(&c) == IMAGENET[i].macs, "%s: MACs %.0f, torch %.0f",
                      IMAGENET[i].name, modelcfg_macs(&c), IMAGENET[i].macs);
        /* the explicit form of the same net counts the same */
        json_t *e = modelcfg_to_explicit_json(&c);
        model_cfg c2;
        field_errors fe;
        fe_init(&fe);
        ck_assert_int_eq(modelcfg_parse(&c2, e, "model", &fe), 0);
        ck_assert_int_eq(modelcfg_params(&c2), IMAGENET[i].params);
        ck_assert(modelcfg_macs(&c2) == IMAGENET[i].macs);
        json_decref(e);
    }
    /* CeiT-T's token grid at 224: 112 after the 7x7/2 conv, 56 after the pool, 14 patches */
    model_cfg c;
    parse_ok(&c, IMAGENET[5].config);
    ck_assert_int_eq(c.stem_fm, 56);
    ck_assert_int_eq(c.grid, 14);
}
END_TEST

START_TEST(resnet_imagenet_forms)
{
    model_cfg p, e;
    parse_ok(&p, "{\"arch\":\"resnet\",\"image_size\":64,\"in_channels\":3,\"num_classes\":10}");
    ck_assert_int_eq(p.resnet_depth, 50); /* the default */
    ck_assert_int_eq(p.block, MC_BLOCK_BOTTLENECK);
    ck_assert_int_eq(p.n_stages, 4);
    ck_assert_int_eq(p.stages[2].n_blocks, 6);
    ck_assert_int_eq(p.stages[3].width, 2048);
    ck_assert_int_eq(p.stages[3].mids2[2], 512);
    /* canonical JSON keeps the preset; the explicit form parses back to the same net */
    json_t *j = modelcfg_to_json(&p);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "depth")), 50);
    ck_assert_ptr_null(json_object_get(j, "stages"));
    json_decref(j);
    j = modelcfg_to_explicit_json(&p);
    ck_assert_str_eq(json_string_value(json_object_get(j, "block")), "bottleneck");
    field_errors fe;
    fe_init(&fe);
    ck_assert_int_eq(modelcfg_parse(&e, j, "model", &fe), 0);
    json_decref(j);
    ck_assert_int_eq(modelcfg_params(&e), modelcfg_params(&p));
    ck_assert(modelcfg_macs(&e) == modelcfg_macs(&p));
    /* a hand count: 16x16 input, stem 4 -> 8x8 -> pool 4x4; one Bottleneck
     * 4 -> (2, 3) -> 8 with a stride-1 projection; fc 8 -> 3.
     * params: conv1 49*3*4 = 588 + bn 8; conv1 1*4*2 = 8 + 4; conv2 9*2*3 = 54 + 6;
     * conv3 3*8 = 24 + 16; downsample 4*8 = 32 + 16; fc 24 + 3: 783.
     * MACs: stem 147*64*4 = 37632; block at 4x4: 8*16 + 54*16 + 24*16 + 32*16
     * = 1888; fc (8+1)*3 = 27: 39547. */
    parse_ok(&e, "{\"arch\":\"resnet\",\"image_size\":16,\"in_channels\":3,\"num_classes\":3,"
                 "\"block\":\"bottleneck\",\"stem\":4,\"stages\":[{\"width\":8,\"mids\":[2],"
                 "\"mids2\":[3]}]}");
    ck_assert_int_eq(modelcfg_params(&e), 783);
    ck_assert(modelcfg_macs(&e) == 39547.0);
    /* BasicBlock, explicit: no mids2 */
    parse_ok(&e, "{\"arch\":\"resnet\",\"image_size\":32,\"in_channels\":3,\"num_classes\":3,"
                 "\"block\":\"basic\",\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[4,4]}]}");
    ck_assert_int_eq(e.block, MC_BLOCK_BASIC);
    /* errors */
#define RN "{\"arch\":\"resnet\",\"image_size\":32,\"in_channels\":3,\"num_classes\":3,"
    expect_one(RN "\"depth\":20}", "model.depth", "18, 34, 50, 101 or 152");
    expect_one(RN "\"depth\":18,\"block\":\"basic\"}", "model.block", "follows from depth");
    expect_one(RN "\"widths\":[16]}", "model.widths", "not a field of resnet");
    expect_one(RN "\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[4]}]}", "model.block",
               "is required");
    expect_one(RN "\"block\":\"bottleneck\",\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[4]}]}",
               "model.stages[0].mids2", "is required for Bottleneck");
    expect_one(RN "\"block\":\"bottleneck\",\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[4,4],"
                  "\"mids2\":[4]}]}",
               "model.stages[0].mids2", "one per block");
    expect_one(RN "\"block\":\"basic\",\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[4],"
                  "\"mids2\":[4]}]}",
               "model.stages[0].mids2", "only for Bottleneck");
    expect_one(RN "\"block\":\"wide\",\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[4]}]}",
               "model.block", "one of");
    expect_one("{\"arch\":\"resnet_cifar\",\"image_size\":32,\"in_channels\":3,\"num_classes\":3,"
               "\"block\":\"basic\"}",
               "model.block", NULL);
#undef RN
}
END_TEST

Suite *suite_modelcfg(void)
{
    Suite *s = suite_create("modelcfg");
    tu_case_add(s, "counts", 0, NULL, NULL,
                TU_TESTS(reference_files_params_and_macs, mbv2_preset_matches_reference_shapes,
                         resnet20_cifar_macs_by_hand, config_c_ceit_deit,
                         mbv2_preset_widths_as_models_py, vit_mix_counts_by_hand,
                         imagenet_forms_match_torch_counts));
    tu_case_add(s, "parse", 0, NULL, NULL,
                TU_TESTS(vit_defaults_per_arch, resnet_forms, resnet_imagenet_forms, mbv2_forms,
                         mbv3_effnet_forms, errors_name_the_field, unknown_fields_and_wrong_types,
                         collects_every_error, path_prefix));
    return s;
}
