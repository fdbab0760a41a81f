/* check_ref_dense.c - the dense kernels on every matching case of the PyTorch layer file.
 *
 * Walks the cases of layers.safetensors (every metadata key is a case), and runs the
 * ref_dense.c runner for each case whose "op" is a dense one, so new cases of these ops
 * are picked up without an edit here. Fails if the file has none of them.
 */
#include "tests/unit/ref_ops.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

Suite *suite_ref_dense(void);

static const struct {
    const char *op;
    ref_runner run;
} dense_ops[] = {
    {"linear", ref_run_linear},
    {"layernorm", ref_run_layernorm},
    {"gelu", ref_run_gelu},
    {"relu", ref_run_relu},
    {"relu6", ref_run_relu6},
    {"attention", ref_run_attention},
    {"softmax_cross_entropy", ref_run_softmax_cross_entropy},
    {"sgd", ref_run_sgd},
    {"adamw", ref_run_adamw},
};

#define N_DENSE_OPS (sizeof dense_ops / sizeof dense_ops[0])

/* The case's op name (a copy into buf), or "" if it has none. */
static void case_op(const st_file *f, const char *name, char *buf, size_t len)
{
    buf[0] = '\0';
    json_t *a = json_loads(st_meta(f, name), 0, NULL);
    const json_t *op = json_object_get(a, "op");
    if (json_is_string(op))
        snprintf(buf, len, "%s", json_string_value(op));
    json_decref(a);
}

START_TEST(layer_cases)
{
    st_file *f = tu_open_ref("layers.safetensors");
    int counts[N_DENSE_OPS] = {0}, total = 0;
    for (int i = 0; i < st_meta_count(f); i++) {
        const char *name = st_meta_key(f, i);
        char op[64];
        case_op(f, name, op, sizeof op);
        for (size_t k = 0; k < N_DENSE_OPS; k++) {
            if (strcmp(op, dense_ops[k].op) != 0)
                continue;
            printf("case %s (op %s)\n", name, op);
            ref_case c;
            ref_case_init(&c, f, name);
            dense_ops[k].run(&c);
            ref_case_deinit(&c);
            counts[k]++;
            total++;
        }
    }
    for (size_t k = 0; k < N_DENSE_OPS; k++)
        printf("  %-22s %d case(s)\n", dense_ops[k].op, counts[k]);
    ck_assert_msg(total > 0, "layers.safetensors has no case of a dense op");
    st_close(f);
}
END_TEST

Suite *suite_ref_dense(void)
{
    Suite *s = suite_create("ref_dense");
    tu_case_add(s, "core", 0, NULL, NULL, TU_TESTS(layer_cases));
    return s;
}
