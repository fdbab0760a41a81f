/* check_modelmem.c - the memory a model needs: the server's estimate from the
 * config (common/modelmem.c) against what the worker's net really allocates
 * (net_memory_bytes after model_build), and a model too large for the host
 * failing with ERR_NOMEM instead of aborting the process.
 */
#include "common/modelmem.h"
#include "tests/unit/testutil.h"
#include "worker/models/model.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_modelmem(void);

static const char *const CONFIGS[] = {
    "{\"arch\":\"resnet_cifar\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"
    "\"depth\":20,\"widths\":[16,32,64]}",
    "{\"arch\":\"resnet_cifar\",\"image_size\":28,\"in_channels\":1,\"num_classes\":10,"
    "\"stem\":8,\"stages\":[{\"width\":8,\"mids\":[12,10]},{\"width\":16,\"mids\":[16]}]}",
    "{\"arch\":\"mobilenetv2\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"
    "\"width_mult\":0.5}",
    "{\"arch\":\"deit\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"
    "\"embed_dim\":48,\"depth\":3,\"num_heads\":3,\"patch_size\":4}",
    "{\"arch\":\"ceit\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"
    "\"embed_dim\":48,\"depth\":3,\"num_heads\":3,\"patch_size\":4,"
    "\"stem\":{\"type\":\"i2t\",\"channels\":16},\"ffn\":{\"type\":\"leff\"},\"head\":\"lca\"}",
};

/* The worker's allocation for c at batch b (with its liveness plan). */
static double worker_bytes(const model_cfg *c, int b)
{
    unsetenv("KILN_NO_PLAN");
    net m;
    net_init(&m);
    errbuf eb;
    int rc = model_build(&m, c, b, 1, NULL, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    double bytes = (double)net_memory_bytes(&m);
    ck_assert_uint_eq((size_t)modelcfg_params(c), m.n_params);
    net_deinit(&m);
    return bytes;
}

/* The estimate is never below what the worker allocates (with its liveness
 * plan, the default) and at most 2.5 times that plus its 1 MiB of tables: close enough to refuse
 * only what cannot fit, and never to admit what does not. */
START_TEST(estimate_bounds_the_worker)
{
    model_cfg c;
    tu_model_cfg(&c, CONFIGS[_i]);
    const int batches[] = {1, 16, 64};
    for (int k = 0; k < 3; k++) {
        model_memory mm;
        modelmem_estimate(&c, batches[k], 0, &mm);
        double planned = worker_bytes(&c, batches[k]);
        ck_assert_double_eq(mm.params, (double)modelcfg_params(&c));
        ck_assert_double_eq(mm.state_bytes, 16.0 * mm.params);
        ck_assert_double_eq(mm.total_bytes, mm.state_bytes + mm.act_bytes);
        ck_assert_msg(mm.total_bytes >= planned && mm.total_bytes <= 2.5 * planned + 1048576.0,
                      "%s at batch %d: estimate %.0f, worker %.0f", CONFIGS[_i], batches[k],
                      mm.total_bytes, planned);
    }
    /* the EMA adds one copy of the parameters */
    model_memory a, e;
    modelmem_estimate(&c, 8, 0, &a);
    modelmem_estimate(&c, 8, 1, &e);
    ck_assert_double_eq(e.state_bytes - a.state_bytes, 4.0 * a.params);
}
END_TEST

/* The ResNet of the probe (232e9 parameters): the estimate says terabytes,
 * and the worker's build fails with ERR_NOMEM, naming the need, at once
 * (nothing is touched, the process lives on). */
START_TEST(oversized_model_is_nomem)
{
    model_cfg c;
    tu_model_cfg(&c, "{\"arch\":\"resnet_cifar\",\"image_size\":32,\"in_channels\":3,"
                     "\"num_classes\":10,\"depth\":386,\"widths\":[8192,8192,8192]}");
    model_memory mm;
    modelmem_estimate(&c, 128, 0, &mm);
    ck_assert_double_gt(mm.params, 2.3e11);
    ck_assert_double_gt(mm.total_bytes, 3.7e12);
    net m;
    net_init(&m);
    errbuf eb = {""};
    ck_assert_int_eq(model_build(&m, &c, 128, 1, NULL, &eb), ERR_NOMEM);
    ck_assert_msg(strstr(eb.msg, "out of memory: the model needs") != NULL &&
                      strstr(eb.msg, "232") != NULL && strstr(eb.msg, "available") != NULL,
                  "%s", eb.msg);
    ck_assert_ptr_null(m.params);
    ck_assert_ptr_null(m.arena);
    net_deinit(&m);
    /* the same process builds a small model afterwards */
    tu_model_cfg(&c, CONFIGS[0]);
    net_init(&m);
    ck_assert_int_eq(model_build(&m, &c, 4, 1, NULL, &eb), 0);
    net_deinit(&m);
}
END_TEST

Suite *suite_modelmem(void)
{
    Suite *s = suite_create("modelmem");
    TCase *tc = tu_case_add(s, "core", 60, NULL, NULL, TU_TESTS(oversized_model_is_nomem));
    tcase_add_loop_test(tc, estimate_bounds_the_worker, 0,
                        (int)(sizeof CONFIGS / sizeof CONFIGS[0]));
    return s;
}
