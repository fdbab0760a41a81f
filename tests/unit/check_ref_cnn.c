/* check_ref_cnn.c - the CNN kernels against every PyTorch reference case.
 *
 * Walks the metadata of layers.safetensors (under $KILN_REF) and runs the
 * runner of ref_cnn.c for every case whose "op" is conv2d, batchnorm2d,
 * maxpool2d or global_avgpool; each op must have at least one case.
 */
#include "tests/unit/ref_ops.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

Suite *suite_ref_cnn(void);

static const struct {
    const char *op;
    ref_runner run;
} cnn_ops[] = {
    {"conv2d", ref_run_conv2d},
    {"batchnorm2d", ref_run_batchnorm2d},
    {"maxpool2d", ref_run_maxpool2d},
    {"global_avgpool", ref_run_global_avgpool},
};

/* Runs every case of layers.safetensors whose op is cnn_ops[_i].op. */
START_TEST(layer_cases)
{
    st_file *f = tu_open_ref("layers.safetensors");
    int ran = 0;
    for (int i = 0; i < st_meta_count(f); i++) {
        const char *name = st_meta_key(f, i);
        json_t *attrs = json_loads(st_meta(f, name), 0, NULL);
        const char *op = json_string_value(json_object_get(attrs, "op"));
        int mine = op != NULL && strcmp(op, cnn_ops[_i].op) == 0;
        json_decref(attrs);
        if (!mine)
            continue;
        printf("case %s (op %s)\n", name, cnn_ops[_i].op);
        ref_case c;
        ref_case_init(&c, f, name);
        cnn_ops[_i].run(&c);
        ref_case_deinit(&c);
        ran++;
    }
    st_close(f);
    ck_assert_msg(ran > 0, "layers.safetensors has no case with op '%s'", cnn_ops[_i].op);
}
END_TEST

Suite *suite_ref_cnn(void)
{
    Suite *s = suite_create("ref_cnn");
    TCase *tc = tu_case_add(s, "layers", 60, NULL, NULL, NULL, 0);
    tcase_add_loop_test(tc, layer_cases, 0, (int)(sizeof cnn_ops / sizeof cnn_ops[0]));
    return s;
}
