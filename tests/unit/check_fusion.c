/* check_fusion.c - the fused network program computes what the unfused one does.
 *
 * net_finalize merges chains of nodes into one kernel call (BN -> ReLU, BN -> residual
 * add -> ReLU, ...) unless KILN_NO_FUSE=1. For small networks of every family with
 * such chains, two copies are built from the same seed, one fused and one not, and run
 * on the same batch: the training forward's output, every parameter gradient, the
 * input gradient and the updated BN running statistics, then the eval forward's
 * output, must agree bit for bit. Each case also checks that the fusion it is meant to
 * cover did happen, so that the comparison cannot pass on two unfused programs.
 */
#include "common/modelcfg.h"
#include "common/rng.h"
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/models/model.h"
#include "worker/nn/norm.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_fusion(void);

#define FUSION_B 4

typedef struct fusion_case {
    const char *config;
    int residual; /* BN nodes with a fused residual add expected */
    int act;      /* BN nodes with a fused activation expected */
} fusion_case;

static const fusion_case CASES[] = {
    /* BasicBlocks with and without a projection shortcut */
    {"{\"arch\":\"resnet_cifar\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"
     "\"depth\":14,\"widths\":[8,16,24]}",
     1, 1},
    /* inverted residuals: projection BN + shortcut, no activation after the sum */
    {"{\"arch\":\"mobilenetv2\",\"image_size\":8,\"in_channels\":3,\"num_classes\":5,"
     "\"width_mult\":0.25,\"cifar\":true}",
     1, 1},
};

static void build(net *m, const char *config, int fused)
{
    model_cfg c;
    tu_model_cfg(&c, config);
    if (fused)
        unsetenv("KILN_NO_FUSE");
    else
        setenv("KILN_NO_FUSE", "1", 1);
    net_init(m);
    errbuf eb;
    ck_assert_msg(model_build(m, &c, FUSION_B, 11, NULL, &eb) == 0, "%s", eb.msg);
    unsetenv("KILN_NO_FUSE");
}

/* Counts the BN nodes that run with a fused residual add and with a fused activation. */
static void count_fused(const net *m, int *residual, int *act)
{
    *residual = 0;
    *act = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const net_node *n = &m->nodes[i];
        if (n->fused || n->op != NET_OP_BN)
            continue;
        *residual += n->n_in == 2;
        *act += n->act != NN_ACT_NONE;
    }
}

/* One training step's forward and backward and an eval forward on both nets; every
 * result compared bitwise. */
static void compare(net *a, net *b)
{
    size_t in = (size_t)a->acts[a->input].per_sample * FUSION_B;
    size_t out = net_out_size(a) * FUSION_B;
    ck_assert_uint_eq(out, net_out_size(b) * FUSION_B);
    float *x = xmallocarray(in, sizeof(float)), *dout = xmallocarray(out, sizeof(float));
    rng r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < in; i++)
        x[i] = rng_normal(&r);
    for (size_t i = 0; i < out; i++)
        dout[i] = rng_normal(&r);
    net *nets[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        net_set_training(nets[k], 1);
        net_zero_grad(nets[k]);
        net_forward(nets[k], x, FUSION_B);
        net_backward(nets[k], dout);
    }
    ck_assert_mem_eq(net_out(a), net_out(b), out * sizeof(float));
    ck_assert_uint_eq(a->n_params, b->n_params);
    ck_assert_mem_eq(a->grads, b->grads, a->n_params * sizeof(float));
    ck_assert_mem_eq(a->buffers, b->buffers, a->n_buffers * sizeof(float));
    for (int k = 0; k < 2; k++) {
        net_set_training(nets[k], 0);
        net_forward(nets[k], x, FUSION_B);
    }
    ck_assert_mem_eq(net_out(a), net_out(b), out * sizeof(float));
    free(x);
    free(dout);
}

START_TEST(fused_program_equals_unfused)
{
    const fusion_case *fc = &CASES[_i];
    net fused, plain;
    build(&fused, fc->config, 1);
    build(&plain, fc->config, 0);
    int residual, act;
    count_fused(&plain, &residual, &act);
    ck_assert_int_eq(residual + act, 0);
    count_fused(&fused, &residual, &act);
    ck_assert_msg(residual >= fc->residual && act >= fc->act,
                  "case %d: %d BN nodes with a residual, %d with an activation", _i, residual, act);
    compare(&fused, &plain);
    net_deinit(&fused);
    net_deinit(&plain);
}
END_TEST

Suite *suite_fusion(void)
{
    Suite *s = suite_create("fusion");
    TCase *tc = tu_case_add(s, "nets", 60, NULL, NULL, NULL, 0);
    tcase_add_loop_test(tc, fused_program_equals_unfused, 0, (int)(sizeof CASES / sizeof CASES[0]));
    return s;
}
