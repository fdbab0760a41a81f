/* ref_modules.c - reference runners for the ViT modules (LeFF, blocks, LCA).
 *
 * Each case stores the module's state_dict under the case prefix, the input
 * x (B, T, C), dy, and the expected y, dx, grad.<param> and after.<buffer>.
 * The module is built with the same builder the models use (worker/models),
 * on a net whose input asks for its gradient, so dx is checked too.
 */
#include "common/xalloc.h"
#include "tests/unit/ref_ops.h"
#include "worker/models/model.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*module_builder)(net *m, int x, const vit_params *p);

static int build_leff(net *m, int x, const vit_params *p)
{
    return vit_leff(m, "", x, p);
}

static int build_block(net *m, int x, const vit_params *p)
{
    return vit_block(m, "", x, p, 0.0f, 0);
}

static int build_lca(net *m, int x, const vit_params *p)
{
    return vit_lca_block(m, "", x, p);
}

static double attr_or(const ref_case *c, const char *key, double dflt)
{
    const json_t *v = json_object_get(c->attrs, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

static void run_module(const ref_case *c, module_builder build, int leff)
{
    int nd;
    int64_t s[ST_MAX_DIMS];
    size_t nx;
    float *x = ref_get(c, "x", &nx, &nd, s);
    ck_assert_int_eq(nd, 3);
    int B = (int)s[0], T = (int)s[1], C = (int)s[2];
    ck_assert_int_eq(ref_attr_int(c, "dim"), C);

    vit_params p;
    memset(&p, 0, sizeof p);
    p.heads = json_object_get(c->attrs, "heads") ? ref_attr_int(c, "heads") : 1;
    p.hidden = ref_attr_int(c, "hidden");
    p.leff = leff;
    p.leff_kernel = json_object_get(c->attrs, "kernel")        ? ref_attr_int(c, "kernel")
                    : json_object_get(c->attrs, "leff_kernel") ? ref_attr_int(c, "leff_kernel")
                                                               : 3;
    p.ln_eps = (float)attr_or(c, "ln_eps", 1e-6);
    p.bn_eps = (float)attr_or(c, "bn_eps", 1e-5);
    p.bn_momentum = (float)attr_or(c, "bn_momentum", 0.1);

    net m;
    net_init(&m);
    int in = net_input(&m, T, 1, C, 1);
    int out = build(&m, in, &p);
    ck_assert_msg(out >= 0, "case %s: module does not fit its input shape", c->name);
    errbuf feb;
    ck_assert_msg(net_finalize(&m, out, B, 0, &feb) == 0, "%s", feb.msg);
    /* the module's state, by name, under the case prefix */
    for (int i = 0; i < m.n_tensors; i++) {
        const net_tensor *t = &m.tensors[i];
        char name[2 * NET_NAME_MAX];
        snprintf(name, sizeof name, "%s.%s", c->name, t->name);
        errbuf eb;
        if (t->kind == NET_COUNTER) {
            ck_assert_msg(st_read_i64(c->f, name, m.counters + t->off, t->n, &eb) == 0, "%s",
                          eb.msg);
        } else {
            ck_assert_msg(st_read_f32(c->f, name, net_tensor_data(&m, i), t->n, &eb) == 0, "%s",
                          eb.msg);
        }
    }
    net_set_training(&m, ref_attr_bool(c, "training", 1));
    net_zero_grad(&m);
    net_forward(&m, x, B);
    size_t ny = (size_t)B * net_out_size(&m);
    ref_check(c, "y", net_out(&m), ny, REF_TOL_FWD, 0);
    size_t ndy;
    float *dy = ref_get(c, "dy", &ndy, NULL, NULL);
    ck_assert_uint_eq(ndy, ny);
    net_backward(&m, dy);
    ref_check(c, "dx", net_act_grad(&m, in), nx, REF_TOL_GRAD, 0);
    for (int i = 0; i < m.n_tensors; i++) {
        const net_tensor *t = &m.tensors[i];
        char suffix[2 * NET_NAME_MAX];
        if (t->kind == NET_PARAM) {
            snprintf(suffix, sizeof suffix, "grad.%s", t->name);
            ref_check(c, suffix, net_tensor_grad(&m, i), t->n, REF_TOL_GRAD, 0);
        } else if (t->kind == NET_BUFFER) {
            snprintf(suffix, sizeof suffix, "after.%s", t->name);
            ref_check(c, suffix, net_tensor_data(&m, i), t->n, REF_TOL_STATE, 0);
        } else {
            char name[2 * NET_NAME_MAX];
            snprintf(name, sizeof name, "%s.after.%s", c->name, t->name);
            int64_t want;
            errbuf eb;
            ck_assert_msg(st_read_i64(c->f, name, &want, 1, &eb) == 0, "%s", eb.msg);
            ck_assert_msg(m.counters[t->off] == want, "%s: %lld, reference %lld", name,
                          (long long)m.counters[t->off], (long long)want);
        }
    }
    free(dy);
    free(x);
    net_deinit(&m);
}

void ref_run_leff(const ref_case *c)
{
    run_module(c, build_leff, 1);
}

void ref_run_block(const ref_case *c)
{
    run_module(c, build_block, strcmp(ref_attr_str(c, "ffn"), "leff") == 0);
}

void ref_run_lca_block(const ref_case *c)
{
    run_module(c, build_lca, 0);
}
