/* check_isa.c - the kernel paths (worker/nn/isa.h) and the engine's start-up choices
 * (worker/nn/startup.h): selection, KILN_ISA, OpenBLAS core policy, the sgemm
 * self-check, and every path this CPU can run agreeing with the generic one on the
 * layers' forward and backward (an independent second computation: the generic path
 * has no FMA and other vector widths). `make test` also runs the kernel and reference
 * suites once under each supported path.
 */
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/nn/act.h"
#include "worker/nn/attention.h"
#include "worker/nn/conv.h"
#include "worker/nn/gemm.h"
#include "worker/nn/isa.h"
#include "worker/nn/linear.h"
#include "worker/nn/norm.h"
#include "worker/nn/startup.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_isa(void);

START_TEST(names_parse_and_select)
{
    for (int i = 0; i < NN_ISA_COUNT; i++) {
        nn_isa got;
        ck_assert_int_eq(nn_isa_parse(nn_isa_name((nn_isa)i), &got), 0);
        ck_assert_int_eq(got, i);
    }
    nn_isa got = NN_ISA_AVX2;
    ck_assert_int_eq(nn_isa_parse("avx-512", &got), -1);
    ck_assert_int_eq(got, NN_ISA_AVX2);
    ck_assert(nn_isa_supported(NN_ISA_GENERIC));
    ck_assert(nn_isa_supported(nn_isa_best()));
    ck_assert_int_eq(nn_isa_select(NN_ISA_COUNT), -1);
    nn_isa before = nn_isa_current();
    for (int i = 0; i < NN_ISA_COUNT; i++) {
        if (!nn_isa_supported((nn_isa)i))
            continue;
        ck_assert_int_eq(nn_isa_select((nn_isa)i), 0);
        ck_assert_int_eq(nn_isa_current(), i);
    }
    nn_isa_select(before);
}
END_TEST

START_TEST(kiln_isa_from_the_environment)
{
    char msg[256];
    nn_isa before = nn_isa_current();
    setenv("KILN_ISA", "generic", 1);
    ck_assert_int_eq(nn_isa_init_from_env(msg, sizeof msg), 0);
    ck_assert_int_eq(nn_isa_current(), NN_ISA_GENERIC);
    setenv("KILN_ISA", "sse9", 1);
    ck_assert_int_eq(nn_isa_init_from_env(msg, sizeof msg), -1);
    ck_assert_msg(strstr(msg, "KILN_ISA=sse9") != NULL, "message: %s", msg);
    ck_assert_int_eq(nn_isa_current(), nn_isa_best()); /* left at the best path */
    for (int i = 0; i < NN_ISA_COUNT; i++) {
        if (nn_isa_supported((nn_isa)i))
            continue;
        setenv("KILN_ISA", nn_isa_name((nn_isa)i), 1);
        ck_assert_int_eq(nn_isa_init_from_env(msg, sizeof msg), -1);
        ck_assert_msg(strstr(msg, "cannot run") != NULL, "message: %s", msg);
    }
    unsetenv("KILN_ISA");
    ck_assert_int_eq(nn_isa_init_from_env(msg, sizeof msg), 0);
    ck_assert_int_eq(nn_isa_current(), nn_isa_best());
    nn_isa_select(before);
}
END_TEST

/* OpenBLAS falls back to a generic core on CPUs newer than it knows: kiln raises it to
 * the kernel path's level, keeps a core of that level, and lowers one only when a test
 * forces an older path. */
START_TEST(blas_core_policy)
{
    static const struct {
        nn_isa isa;
        const char *core;
        int forced;
        const char *want; /* NULL = keep */
    } cases[] = {
        {NN_ISA_AVX512, "Prescott", 0, "SkylakeX"},
        {NN_ISA_AVX512, "Nehalem", 0, "SkylakeX"},
        {NN_ISA_AVX512, "Haswell", 0, "SkylakeX"},
        {NN_ISA_AVX512, "SkylakeX", 0, NULL},
        {NN_ISA_AVX512, "Cooperlake", 0, NULL},
        {NN_ISA_AVX512, "SapphireRapids", 0, NULL},
        {NN_ISA_AVX2, "Prescott", 0, "Haswell"},
        {NN_ISA_AVX2, "Sandybridge", 0, "Haswell"},
        {NN_ISA_AVX2, "Zen", 0, NULL},
        {NN_ISA_AVX2, "Haswell", 0, NULL},
        {NN_ISA_AVX2, "SkylakeX", 0, NULL},
        {NN_ISA_AVX2, "SkylakeX", 1, "Haswell"},
        {NN_ISA_GENERIC, "Nehalem", 0, NULL},
        {NN_ISA_GENERIC, "Cooperlake", 1, "Prescott"},
        {NN_ISA_GENERIC, "Cooperlake", 0, NULL},
        {NN_ISA_GENERIC, "Prescott", 1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = nn_blas_wanted_core(cases[i].isa, cases[i].core, cases[i].forced);
        if (cases[i].want == NULL)
            ck_assert_msg(got == NULL, "%s on %s: wanted to keep, got %s",
                          nn_isa_name(cases[i].isa), cases[i].core, got);
        else
            ck_assert_msg(got != NULL && strcmp(got, cases[i].want) == 0, "%s on %s: %s != %s",
                          nn_isa_name(cases[i].isa), cases[i].core, got ? got : "keep",
                          cases[i].want);
    }
}
END_TEST

START_TEST(blas_self_check_and_summary)
{
    ck_assert(nn_blas_self_check());
    const char *s = nn_startup_summary();
    ck_assert_msg(strstr(s, "kernels ") != NULL && strstr(s, nn_blas_core()) != NULL &&
                      strstr(s, "self-check passed") != NULL,
                  "summary: %s", s);
    /* the hook the integration test uses to see the fallback: a listed core fails */
    setenv("KILN_BLAS_SELFTEST_FAIL", nn_blas_core(), 1);
    ck_assert(!nn_blas_self_check());
    unsetenv("KILN_BLAS_SELFTEST_FAIL");
}
END_TEST

/* ---- every path against the generic one ------------------------------------------- */

typedef struct layer_out {
    float *y, *dx, *dw, *db; /* forward output, gradients */
    size_t ny, nx, nw, nb;
} layer_out;

static void layer_out_free(layer_out *o)
{
    free(o->y), free(o->dx), free(o->dw), free(o->db);
}

/* One conv layer's forward and backward on fixed data. */
static void run_conv(layer_out *o, int B, int H, int IC, int OC, int k, int s, int g)
{
    nn_conv2d_dims d;
    nn_conv2d_dims_init(&d, B, H, H, IC, OC, k, s, k / 2, g);
    o->nx = (size_t)B * H * H * IC, o->ny = (size_t)B * d.Ho * d.Wo * OC;
    o->nw = (size_t)OC * (IC / g) * k * k, o->nb = (size_t)OC;
    float *x = xmallocarray(o->nx, sizeof(float)), *w = xmallocarray(o->nw, sizeof(float));
    float *b = xmallocarray(o->nb, sizeof(float)), *dy = xmallocarray(o->ny, sizeof(float));
    tu_fill_uniform(x, o->nx, -1, 1, 1);
    tu_fill_uniform(w, o->nw, -0.3f, 0.3f, 2);
    tu_fill_uniform(b, o->nb, -0.1f, 0.1f, 3);
    tu_fill_uniform(dy, o->ny, -1, 1, 4);
    float *scratch = xcalloc(nn_conv2d_scratch_floats(&d) + 1, sizeof(float));
    o->y = xmallocarray(o->ny, sizeof(float));
    o->dx = xcalloc(o->nx, sizeof(float)), o->dw = xcalloc(o->nw, sizeof(float));
    o->db = xcalloc(o->nb, sizeof(float));
    nn_conv2d_forward(o->y, x, w, b, &d, scratch);
    nn_conv2d_backward(o->dx, o->dw, o->db, dy, x, w, &d, scratch);
    free(x), free(w), free(b), free(dy), free(scratch);
}

/* Linear, then GELU, then layer norm, then attention over the result's rows. */
static void run_dense(layer_out *o)
{
    int B = 4, T = 17, C = 48, NH = 3, N = B * T;
    o->nx = (size_t)N * C, o->ny = (size_t)N * C, o->nw = (size_t)3 * C * C, o->nb = 3 * C;
    float *x = xmallocarray(o->nx, sizeof(float)), *w = xmallocarray(o->nw, sizeof(float));
    float *bias = xmallocarray(o->nb, sizeof(float));
    tu_fill_uniform(x, o->nx, -1, 1, 5);
    tu_fill_uniform(w, o->nw, -0.2f, 0.2f, 6);
    tu_fill_uniform(bias, o->nb, -0.1f, 0.1f, 7);
    float *ln = xmallocarray(o->nx, sizeof(float)), *mean = xmallocarray(N, sizeof(float));
    float *rstd = xmallocarray(N, sizeof(float)), *g = xmallocarray(C, sizeof(float));
    float *be = xmallocarray(C, sizeof(float)), *qkv = xmallocarray(o->nb * N, sizeof(float));
    float *act = xmallocarray(o->nb * N, sizeof(float));
    tu_fill_uniform(g, C, 0.5f, 1.5f, 8);
    tu_fill_uniform(be, C, -0.2f, 0.2f, 9);
    nn_layernorm_forward(ln, mean, rstd, x, g, be, N, C, 1e-6f);
    nn_linear_forward(qkv, ln, w, bias, N, C, 3 * C);
    nn_gelu_forward(act, qkv, o->nb * N);
    size_t nsc = nn_attention_scratch_floats(B, T, C, NH, NN_ATTN_ALL_QUERIES);
    float *scratch = xcalloc(nsc + 1, sizeof(float));
    float *att = xmallocarray((size_t)B * NH * T * T + 1, sizeof(float));
    o->y = xmallocarray(o->ny, sizeof(float));
    nn_attention_forward(o->y, att, act, B, T, C, NH, NN_ATTN_ALL_QUERIES, scratch);
    /* backward from a fixed dout, through every layer */
    float *dy = xmallocarray(o->ny, sizeof(float)), *dact = xcalloc(o->nb * N, sizeof(float));
    float *dqkv = xcalloc(o->nb * N, sizeof(float)), *dln = xcalloc(o->nx, sizeof(float));
    tu_fill_uniform(dy, o->ny, -1, 1, 10);
    nn_attention_backward(dact, dy, act, att, B, T, C, NH, NN_ATTN_ALL_QUERIES, scratch);
    nn_gelu_backward(dqkv, dact, qkv, o->nb * N);
    o->dw = xcalloc(o->nw, sizeof(float)), o->db = xcalloc(o->nb, sizeof(float));
    nn_linear_backward(dln, o->dw, o->db, dqkv, ln, w, N, C, 3 * C);
    o->dx = xcalloc(o->nx, sizeof(float));
    float *dg = xcalloc(C, sizeof(float)), *dbe = xcalloc(C, sizeof(float));
    nn_layernorm_backward(o->dx, dg, dbe, dln, x, g, mean, rstd, N, C);
    free(x), free(w), free(bias), free(ln), free(mean), free(rstd), free(g), free(be);
    free(qkv), free(act), free(scratch), free(att), free(dy), free(dact), free(dqkv), free(dln);
    free(dg), free(dbe);
}

/* Batch norm with ReLU, train mode. */
static void run_bn(layer_out *o)
{
    int N = 3 * 9 * 9, C = 40;
    o->nx = o->ny = (size_t)N * C, o->nw = o->nb = (size_t)C;
    float *x = xmallocarray(o->nx, sizeof(float)), *w = xmallocarray(C, sizeof(float));
    float *b = xmallocarray(C, sizeof(float)), *dy = xmallocarray(o->ny, sizeof(float));
    float *mean = xmallocarray(C, sizeof(float)), *rstd = xmallocarray(C, sizeof(float));
    float *rm = xcalloc(C, sizeof(float)), *rv = xcalloc(C, sizeof(float));
    tu_fill_uniform(x, o->nx, -2, 2, 11);
    tu_fill_uniform(w, C, 0.5f, 1.5f, 12);
    tu_fill_uniform(b, C, -0.3f, 0.3f, 13);
    tu_fill_uniform(dy, o->ny, -1, 1, 14);
    o->y = xmallocarray(o->ny, sizeof(float));
    nn_bn bn = {.N = N,
                .C = C,
                .w = w,
                .b = b,
                .run_mean = rm,
                .run_var = rv,
                .eps = 1e-5f,
                .momentum = 0.1f,
                .act = NN_ACT_RELU};
    nn_bn_saved saved = {.mean = mean, .rstd = rstd};
    nn_batchnorm_forward_train(o->y, &saved, x, NULL, &bn);
    o->dx = xcalloc(o->nx, sizeof(float)), o->dw = xcalloc(C, sizeof(float));
    o->db = xcalloc(C, sizeof(float));
    nn_batchnorm_backward_train(o->dx, NULL, o->dw, o->db, dy, o->y, x, &saved, &bn);
    free(x), free(w), free(b), free(dy), free(mean), free(rstd), free(rm), free(rv);
}

typedef enum {
    LAYER_CONV_DIRECT,
    LAYER_CONV_IM2COL,
    LAYER_CONV_DW,
    LAYER_DENSE,
    LAYER_BN
} layer_id;

static void run_layer(layer_out *o, layer_id id)
{
    memset(o, 0, sizeof *o);
    switch (id) {
    case LAYER_CONV_DIRECT:
        run_conv(o, 2, 12, 16, 32, 3, 1, 1);
        break;
    case LAYER_CONV_IM2COL:
        run_conv(o, 2, 11, 5, 24, 3, 2, 1);
        break;
    case LAYER_CONV_DW:
        run_conv(o, 2, 10, 40, 40, 3, 1, 40);
        break;
    case LAYER_DENSE:
        run_dense(o);
        break;
    case LAYER_BN:
        run_bn(o);
        break;
    }
}

static const char *const layer_names[] = {"conv direct", "conv im2col", "conv depthwise",
                                          "layernorm+linear+gelu+attention", "batchnorm+relu"};

START_TEST(every_path_agrees_with_generic)
{
    nn_isa before = nn_isa_current();
    layer_id id = (layer_id)_i;
    nn_isa_select(NN_ISA_GENERIC);
    layer_out ref;
    run_layer(&ref, id);
    for (int isa = NN_ISA_GENERIC + 1; isa < NN_ISA_COUNT; isa++) {
        if (nn_isa_select((nn_isa)isa) != 0)
            continue;
        layer_out o;
        run_layer(&o, id);
        const struct {
            const char *what;
            const float *a, *r;
            size_t n;
        } t[] = {{"output", o.y, ref.y, o.ny},
                 {"dinp", o.dx, ref.dx, o.nx},
                 {"dw", o.dw, ref.dw, o.nw},
                 {"db", o.db, ref.db, o.nb}};
        for (size_t i = 0; i < 4; i++) {
            double e = tu_rel_err(t[i].a, t[i].r, t[i].n);
            ck_assert_msg(e < 2e-5, "%s, %s path: %s differs from generic by %.3g", layer_names[id],
                          nn_isa_name((nn_isa)isa), t[i].what, e);
        }
        layer_out_free(&o);
    }
    layer_out_free(&ref);
    nn_isa_select(before);
}
END_TEST

/* nn_gemm cuts large products by their shape, never by the thread count. */
START_TEST(gemm_independent_of_threads)
{
    static const int shapes[][4] = {{3200, 288, 96, 0}, {96, 3200, 384, 1}, {40, 5000, 64, 0}};
    int old = nn_get_threads();
    for (size_t s = 0; s < 3; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], tb = shapes[s][3];
        float *a = xmallocarray((size_t)M * K, sizeof(float));
        float *b = xmallocarray((size_t)K * N, sizeof(float));
        float *c1 = xmallocarray((size_t)M * N, sizeof(float));
        float *c2 = xmallocarray((size_t)M * N, sizeof(float));
        tu_fill_uniform(a, (size_t)M * K, -1, 1, 20 + s);
        tu_fill_uniform(b, (size_t)K * N, -1, 1, 30 + s);
        nn_set_threads(1);
        nn_gemm(0, tb, M, N, K, 1.0f, a, K, b, tb ? K : N, 0.0f, c1, N);
        nn_set_threads(2);
        nn_gemm(0, tb, M, N, K, 1.0f, a, K, b, tb ? K : N, 0.0f, c2, N);
        ck_assert_msg(memcmp(c1, c2, (size_t)M * N * sizeof(float)) == 0,
                      "%dx%dx%d: 1 and 2 threads differ", M, N, K);
        free(a), free(b), free(c1), free(c2);
    }
    nn_set_threads(old);
}
END_TEST

Suite *suite_isa(void)
{
    Suite *s = suite_create("isa");
    TCase *tc = tu_case_add(s, "core", 60, NULL, NULL,
                            TU_TESTS(names_parse_and_select, kiln_isa_from_the_environment,
                                     blas_core_policy, blas_self_check_and_summary,
                                     gemm_independent_of_threads));
    tcase_add_loop_test(tc, every_path_agrees_with_generic, 0, 5);
    return s;
}
