/* ref_dense.c - reference runners for the dense kernels of worker/nn (see ref_ops.h).
 *
 * Each runner reads every shape and attribute from its case (dims from the tensors,
 * heads, last_query_only, eps, label_smoothing, lr, betas, steps, ...), runs the
 * engine's forward and backward, and checks each stored output with ref_check at the
 * layers-file tolerances. Gradients are of sum(y * dy), as the reference stores them.
 * Self-contained: a generic dispatcher may call any runner on any matching case.
 */
#include "common/xalloc.h"
#include "tests/unit/ref_ops.h"
#include "worker/nn/act.h"
#include "worker/nn/attention.h"
#include "worker/nn/linear.h"
#include "worker/nn/loss.h"
#include "worker/nn/norm.h"
#include "worker/nn/optim.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t numel_of(const int64_t *shape, int nd)
{
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)shape[i];
    return n;
}

static float *zeros(size_t n)
{
    return xcalloc(n > 0 ? n : 1, sizeof(float));
}

void ref_run_linear(const ref_case *c)
{
    int nd, wnd;
    int64_t xs[ST_MAX_DIMS], ws[ST_MAX_DIMS];
    size_t nx, ny;
    float *x = ref_get(c, "x", &nx, &nd, xs);
    float *w = ref_get(c, "weight", NULL, &wnd, ws);
    ck_assert_msg(wnd == 2 && nd >= 1, "%s: weight must be (out, in)", c->name);
    int OUT = (int)ws[0], IN = (int)ws[1];
    ck_assert_msg(xs[nd - 1] == IN, "%s: x's last dim %lld != in %d", c->name,
                  (long long)xs[nd - 1], IN);
    int N = (int)(nx / (size_t)IN);
    int has_bias = ref_attr_bool(c, "bias", 1);
    float *b = has_bias ? ref_get(c, "bias", NULL, NULL, NULL) : NULL;
    float *dy = ref_get(c, "dy", &ny, NULL, NULL);
    ck_assert_msg(ny == (size_t)N * OUT, "%s: dy has %zu elements", c->name, ny);
    float *y = zeros(ny), *dx = zeros(nx), *dw = zeros((size_t)OUT * IN), *db = zeros(OUT);
    nn_linear_forward(y, x, w, b, N, IN, OUT);
    nn_linear_backward(dx, dw, has_bias ? db : NULL, dy, x, w, N, IN, OUT);
    ref_check(c, "y", y, ny, REF_TOL_FWD, 0);
    ref_check(c, "dx", dx, nx, REF_TOL_GRAD, 0);
    ref_check(c, "dweight", dw, (size_t)OUT * IN, REF_TOL_GRAD, 0);
    if (has_bias)
        ref_check(c, "dbias", db, OUT, REF_TOL_GRAD, 0);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
}

void ref_run_layernorm(const ref_case *c)
{
    int nd, wnd;
    int64_t xs[ST_MAX_DIMS], ws[ST_MAX_DIMS];
    size_t nx, nw;
    float *x = ref_get(c, "x", &nx, &nd, xs);
    float *w = ref_get(c, "weight", &nw, &wnd, ws);
    float *b = ref_get(c, "bias", NULL, NULL, NULL);
    float *dy = ref_get(c, "dy", NULL, NULL, NULL);
    /* LayerNorm over the last normalized_dims dims, which the weight's shape repeats. */
    int k = ref_attr_int(c, "normalized_dims");
    ck_assert_msg(k == wnd && k <= nd && numel_of(xs + nd - k, k) == nw,
                  "%s: weight shape does not match the last %d dims of x", c->name, k);
    float eps = (float)ref_attr_double(c, "eps");
    int C = (int)nw, N = (int)(nx / nw);
    float *y = zeros(nx), *mean = zeros(N), *rstd = zeros(N);
    float *dx = zeros(nx), *dw = zeros(nw), *db = zeros(nw);
    nn_layernorm_forward(y, mean, rstd, x, w, b, N, C, eps);
    nn_layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, N, C);
    ref_check(c, "y", y, nx, REF_TOL_FWD, 0);
    ref_check(c, "dx", dx, nx, REF_TOL_GRAD, 0);
    ref_check(c, "dweight", dw, nw, REF_TOL_GRAD, 0);
    ref_check(c, "dbias", db, nw, REF_TOL_GRAD, 0);
    free(x), free(w), free(b), free(dy), free(y), free(mean), free(rstd), free(dx), free(dw);
    free(db);
}

/* An elementwise activation: y = f(x), dx = backward(dy, x or y). */
static void run_elementwise(const ref_case *c, void (*fwd)(float *, const float *, size_t),
                            void (*bwd)(float *, const float *, const float *, size_t),
                            int bwd_reads_y)
{
    size_t n;
    float *x = ref_get(c, "x", &n, NULL, NULL);
    float *dy = ref_get(c, "dy", NULL, NULL, NULL);
    float *y = zeros(n), *dx = zeros(n);
    fwd(y, x, n);
    bwd(dx, dy, bwd_reads_y ? y : x, n);
    ref_check(c, "y", y, n, REF_TOL_FWD, 0);
    ref_check(c, "dx", dx, n, REF_TOL_GRAD, 0);
    free(x), free(dy), free(y), free(dx);
}

void ref_run_gelu(const ref_case *c)
{
    if (json_object_get(c->attrs, "approximate") != NULL)
        ck_assert_msg(strcmp(ref_attr_str(c, "approximate"), "none") == 0,
                      "%s: only the exact erf GELU is implemented", c->name);
    run_elementwise(c, nn_gelu_forward, nn_gelu_backward, 0);
}

void ref_run_relu(const ref_case *c)
{
    run_elementwise(c, nn_relu_forward, nn_relu_backward, 1);
}

void ref_run_relu6(const ref_case *c)
{
    run_elementwise(c, nn_relu6_forward, nn_relu6_backward, 1);
}

/* Attention module: y = proj(attention(qkv(x))), with the parameter names of the case. */
void ref_run_attention(const ref_case *c)
{
    int nd;
    int64_t xs[ST_MAX_DIMS];
    size_t nx;
    float *x = ref_get(c, "x", &nx, &nd, xs);
    int C = ref_attr_int(c, "dim"), NH = ref_attr_int(c, "heads");
    ck_assert_msg(nd == 3 && xs[2] == C && C % NH == 0, "%s: x must be (B, T, dim)", c->name);
    int B = (int)xs[0], T = (int)xs[1];
    int query = ref_attr_bool(c, "last_query_only", 0) ? T - 1 : NN_ATTN_ALL_QUERIES;
    int TQ = nn_attention_queries(T, query);
    size_t n3 = (size_t)3 * C * C, nc = (size_t)C * C;
    float *wqkv = ref_get(c, "qkv.weight", NULL, NULL, NULL);
    float *bqkv = ref_has(c, "qkv.bias") ? ref_get(c, "qkv.bias", NULL, NULL, NULL) : NULL;
    float *wp = ref_get(c, "proj.weight", NULL, NULL, NULL);
    float *bp = ref_has(c, "proj.bias") ? ref_get(c, "proj.bias", NULL, NULL, NULL) : NULL;
    size_t ny;
    float *dy = ref_get(c, "dy", &ny, NULL, NULL);
    ck_assert_msg(ny == (size_t)B * TQ * C, "%s: dy has %zu elements", c->name, ny);

    float *qkv = zeros((size_t)B * T * 3 * C), *a = zeros(ny), *y = zeros(ny);
    float *att = zeros((size_t)B * NH * TQ * T);
    float *scratch = zeros(nn_attention_scratch_floats(B, T, C, NH, query));
    nn_linear_forward(qkv, x, wqkv, bqkv, B * T, C, 3 * C);
    nn_attention_forward(a, att, qkv, B, T, C, NH, query, scratch);
    nn_linear_forward(y, a, wp, bp, B * TQ, C, C);

    float *dx = zeros(nx), *dqkv = zeros((size_t)B * T * 3 * C), *da = zeros(ny);
    float *dwqkv = zeros(n3), *dbqkv = zeros(3 * (size_t)C), *dwp = zeros(nc), *dbp = zeros(C);
    nn_linear_backward(da, dwp, bp ? dbp : NULL, dy, a, wp, B * TQ, C, C);
    nn_attention_backward(dqkv, da, qkv, att, B, T, C, NH, query, scratch);
    nn_linear_backward(dx, dwqkv, bqkv ? dbqkv : NULL, dqkv, x, wqkv, B * T, C, 3 * C);

    ref_check(c, "y", y, ny, REF_TOL_FWD, 0);
    ref_check(c, "dx", dx, nx, REF_TOL_GRAD, 0);
    /* Every parameter the case lists must have its gradient checked. */
    const struct {
        const char *name;
        const float *g;
        size_t n;
        int present;
    } grads[] = {{"qkv.weight", dwqkv, n3, 1},
                 {"qkv.bias", dbqkv, 3 * (size_t)C, bqkv != NULL},
                 {"proj.weight", dwp, nc, 1},
                 {"proj.bias", dbp, (size_t)C, bp != NULL}};
    const json_t *params = json_object_get(c->attrs, "params");
    ck_assert_msg(json_is_array(params), "%s: no params list", c->name);
    size_t i;
    const json_t *pn;
    json_array_foreach(params, i, pn)
    {
        const char *name = json_string_value(pn);
        size_t k = 0;
        while (k < sizeof grads / sizeof grads[0] &&
               (name == NULL || strcmp(grads[k].name, name) != 0 || !grads[k].present))
            k++;
        ck_assert_msg(k < sizeof grads / sizeof grads[0], "%s: unknown parameter '%s'", c->name,
                      name ? name : "(not a string)");
        char suffix[128];
        snprintf(suffix, sizeof suffix, "grad.%s", name);
        ref_check(c, suffix, grads[k].g, grads[k].n, REF_TOL_GRAD, 0);
    }
    free(x), free(wqkv), free(bqkv), free(wp), free(bp), free(dy), free(qkv), free(a), free(y);
    free(att), free(scratch), free(dx), free(dqkv), free(da), free(dwqkv), free(dbqkv);
    free(dwp), free(dbp);
}

void ref_run_softmax_cross_entropy(const ref_case *c)
{
    int nd;
    int64_t zs[ST_MAX_DIMS];
    size_t nz, nt;
    float *z = ref_get(c, "logits", &nz, &nd, zs);
    ck_assert_msg(nd == 2, "%s: logits must be (B, K)", c->name);
    int B = (int)zs[0], K = (int)zs[1];
    int *t = ref_get_labels(c, "targets", &nt);
    ck_assert_msg(nt == (size_t)B, "%s: %zu targets for %d rows", c->name, nt, B);
    for (int i = 0; i < B; i++)
        ck_assert_msg(t[i] >= 0 && t[i] < K, "%s: target %d out of range", c->name, t[i]);
    ck_assert_msg(strcmp(ref_attr_str(c, "reduction"), "mean") == 0, "%s: reduction must be mean",
                  c->name);
    float eps = (float)ref_attr_double(c, "label_smoothing");
    float *p = zeros(nz), *dz = zeros(nz);
    float loss = nn_crossentropy_forward(p, NULL, z, t, B, K, eps);
    nn_crossentropy_backward(dz, p, t, B, K, eps, 1.0f);
    ref_check(c, "loss", &loss, 1, REF_TOL_FWD, 0);
    ref_check(c, "dlogits", dz, nz, REF_TOL_GRAD, 0);
    free(z), free(t), free(p), free(dz);
}

void ref_run_sgd(const ref_case *c)
{
    size_t n;
    float *p = ref_get(c, "param", &n, NULL, NULL);
    float *g = ref_get(c, "grad", NULL, NULL, NULL);
    nn_sgd_params o = {.lr = (float)ref_attr_double(c, "lr"),
                       .momentum = (float)ref_attr_double(c, "momentum"),
                       .dampening = (float)ref_attr_double(c, "dampening"),
                       .weight_decay = (float)ref_attr_double(c, "weight_decay"),
                       .nesterov = ref_attr_bool(c, "nesterov", 0)};
    /* Without a stored buffer this is PyTorch's first step (the buffer starts as g). */
    int first = !ref_has(c, "momentum_buffer");
    float *buf = first ? zeros(n) : ref_get(c, "momentum_buffer", NULL, NULL, NULL);
    nn_sgd_step(p, o.momentum != 0.0f ? buf : NULL, g, n, &o, first);
    ref_check(c, "param_after", p, n, REF_TOL_STATE, 0);
    if (ref_has(c, "momentum_buffer_after"))
        ref_check(c, "momentum_buffer_after", buf, n, REF_TOL_STATE, 0);
    free(p), free(g), free(buf);
}

void ref_run_adamw(const ref_case *c)
{
    size_t n;
    float *p = ref_get(c, "param", &n, NULL, NULL);
    float *g = ref_get(c, "grad", NULL, NULL, NULL);
    float *m = ref_get(c, "exp_avg", NULL, NULL, NULL);
    float *v = ref_get(c, "exp_avg_sq", NULL, NULL, NULL);
    const json_t *betas = json_object_get(c->attrs, "betas");
    ck_assert_msg(json_is_array(betas) && json_array_size(betas) == 2, "%s: betas must be a pair",
                  c->name);
    ck_assert_msg(!ref_attr_bool(c, "amsgrad", 0), "%s: amsgrad is not implemented", c->name);
    nn_adamw_params o = {.lr = (float)ref_attr_double(c, "lr"),
                         .beta1 = (float)json_number_value(json_array_get(betas, 0)),
                         .beta2 = (float)json_number_value(json_array_get(betas, 1)),
                         .eps = (float)ref_attr_double(c, "eps"),
                         .weight_decay = (float)ref_attr_double(c, "weight_decay")};
    long t = ref_attr_int(c, "step_after");
    ck_assert_msg(ref_attr_int(c, "step_before") == t - 1, "%s: one step expected", c->name);
    nn_adamw_step(p, m, v, g, n, &o, t);
    ref_check(c, "param_after", p, n, REF_TOL_STATE, 0);
    ref_check(c, "exp_avg_after", m, n, REF_TOL_STATE, 0);
    ref_check(c, "exp_avg_sq_after", v, n, REF_TOL_STATE, 0);
    free(p), free(g), free(m), free(v);
}
