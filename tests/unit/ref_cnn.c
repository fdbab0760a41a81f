/* ref_cnn.c - reference runners for the CNN kernels (conv2d, batchnorm2d,
 * maxpool2d, global_avgpool); see ref_ops.h.
 *
 * Each runner reads every shape from the case's tensors and every
 * hyper-parameter from its attributes, converts NCHW to the engine's NHWC,
 * runs forward and backward of the kernel, and checks each stored output
 * with the README tolerances. Self-contained: usable from any dispatcher.
 */
#include "common/xalloc.h"
#include "tests/unit/ref_ops.h"
#include "worker/nn/conv.h"
#include "worker/nn/norm.h"
#include "worker/nn/pooling.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shape of "<case>.<suffix>"; fails the test if missing or not `ndim`-D. */
static void ref_shape(const ref_case *c, const char *suffix, int ndim, int64_t *shape)
{
    char n[512];
    snprintf(n, sizeof n, "%s.%s", c->name, suffix);
    const st_tensor *t = st_find(c->f, n);
    ck_assert_msg(t != NULL, "reference tensor '%s' is missing", n);
    ck_assert_msg(t->ndim == ndim, "%s: expected %d dims, file has %d", n, ndim, t->ndim);
    for (int i = 0; i < ndim; i++)
        shape[i] = t->shape[i];
}

/* An attribute that may be an integer or a [h, w] pair with h == w. */
static int ref_attr_square(const ref_case *c, const char *key)
{
    const json_t *v = json_object_get(c->attrs, key);
    if (json_is_array(v)) {
        ck_assert_msg(json_array_size(v) == 2 && json_integer_value(json_array_get(v, 0)) ==
                                                     json_integer_value(json_array_get(v, 1)),
                      "case '%s': attribute '%s' must be square", c->name, key);
        return (int)json_integer_value(json_array_get(v, 0));
    }
    return ref_attr_int(c, key);
}

void ref_run_conv2d(const ref_case *c)
{
    int64_t xs[4], ws[4];
    ref_shape(c, "x", 4, xs);
    ref_shape(c, "weight", 4, ws);
    int k = ref_attr_square(c, "kernel"), stride = ref_attr_square(c, "stride");
    int pad = ref_attr_square(c, "padding"), groups = ref_attr_int(c, "groups");
    if (json_object_get(c->attrs, "dilation") != NULL)
        ck_assert_msg(ref_attr_square(c, "dilation") == 1,
                      "case '%s': dilation other than 1 is not supported", c->name);
    int bias = ref_attr_bool(c, "bias", ref_has(c, "bias"));
    int B = (int)xs[0], IC = (int)xs[1], H = (int)xs[2], W = (int)xs[3], OC = (int)ws[0];
    ck_assert_msg(ws[1] * groups == IC && ws[2] == k && ws[3] == k,
                  "case '%s': weight shape does not match x, kernel and groups", c->name);
    ck_assert_msg(bias == ref_has(c, "bias") && bias == ref_has(c, "dbias"),
                  "case '%s': bias attribute and tensors disagree", c->name);
    nn_conv2d_dims d;
    nn_conv2d_dims_init(&d, B, H, W, IC, OC, k, stride, pad, groups);
    int64_t ys[4];
    ref_shape(c, "y", 4, ys);
    ck_assert_msg(ys[0] == B && ys[1] == OC && ys[2] == d.Ho && ys[3] == d.Wo,
                  "case '%s': y shape does not match the conv output size", c->name);

    size_t nx, ny, nw;
    float *x = ref_get_nhwc(c, "x", &nx);
    float *w = ref_get(c, "weight", &nw, NULL, NULL);
    float *b = bias ? ref_get(c, "bias", NULL, NULL, NULL) : NULL;
    float *dy = ref_get_nhwc(c, "dy", &ny);
    size_t ns = nn_conv2d_scratch_floats(&d);
    float *scratch = xmallocarray(ns ? ns : 1, sizeof(float));
    float *y = xmallocarray(ny, sizeof(float));
    float *dx = xcalloc(nx, sizeof(float)), *dw = xcalloc(nw, sizeof(float));
    float *db = xcalloc((size_t)OC, sizeof(float));

    nn_conv2d_forward(y, x, w, b, &d, scratch);
    ref_check(c, "y", y, ny, REF_TOL_FWD, 1);
    nn_conv2d_backward(dx, dw, bias ? db : NULL, dy, x, w, &d, scratch);
    ref_check(c, "dx", dx, nx, REF_TOL_GRAD, 1);
    ref_check(c, "dweight", dw, nw, REF_TOL_GRAD, 0);
    if (bias)
        ref_check(c, "dbias", db, (size_t)OC, REF_TOL_GRAD, 0);
    free(x);
    free(w);
    free(b);
    free(dy);
    free(scratch);
    free(y);
    free(dx);
    free(dw);
    free(db);
}

void ref_run_batchnorm2d(const ref_case *c)
{
    int64_t xs[4];
    ref_shape(c, "x", 4, xs);
    int C = (int)xs[1];
    int N = (int)(xs[0] * xs[2] * xs[3]); /* rows of the NHWC layout */
    int train = ref_attr_bool(c, "training", -1);
    ck_assert_msg(train >= 0, "case '%s': attribute 'training' is missing", c->name);
    float eps = (float)ref_attr_double(c, "eps");
    float momentum = (float)ref_attr_double(c, "momentum");
    if (train && json_object_get(c->attrs, "running_var_update") != NULL)
        ck_assert_msg(strcmp(ref_attr_str(c, "running_var_update"), "unbiased") == 0,
                      "case '%s': only the unbiased running_var update is implemented", c->name);
    size_t nx, nc;
    float *x = ref_get_nhwc(c, "x", &nx);
    float *dy = ref_get_nhwc(c, "dy", NULL);
    float *w = ref_get(c, "weight", &nc, NULL, NULL);
    float *b = ref_get(c, "bias", NULL, NULL, NULL);
    float *rm = ref_get(c, "running_mean_before", NULL, NULL, NULL);
    float *rv = ref_get(c, "running_var_before", NULL, NULL, NULL);
    ck_assert_msg(nc == (size_t)C && nx == (size_t)N * C, "case '%s': shapes disagree", c->name);
    float *y = xmallocarray(nx, sizeof(float));
    float *dx = xcalloc(nx, sizeof(float)), *dw = xcalloc(nc, sizeof(float));
    float *db = xcalloc(nc, sizeof(float));
    float *mean = xmallocarray(nc, sizeof(float)), *rstd = xmallocarray(nc, sizeof(float));
    nn_bn bn = {.N = N,
                .C = C,
                .w = w,
                .b = b,
                .run_mean = rm,
                .run_var = rv,
                .eps = eps,
                .momentum = momentum};
    if (train) {
        nn_bn_saved saved = {.mean = mean, .rstd = rstd};
        nn_batchnorm_forward_train(y, &saved, x, NULL, &bn);
        nn_batchnorm_backward_train(dx, NULL, dw, db, dy, NULL, x, &saved, &bn);
    } else {
        nn_batchnorm_forward_eval(y, x, NULL, &bn);
        nn_batchnorm_backward_eval(dx, NULL, dw, db, dy, NULL, x, &bn);
    }
    ref_check(c, "y", y, nx, REF_TOL_FWD, 1);
    ref_check(c, "dx", dx, nx, REF_TOL_GRAD, 1);
    ref_check(c, "dweight", dw, nc, REF_TOL_GRAD, 0);
    ref_check(c, "dbias", db, nc, REF_TOL_GRAD, 0);
    ref_check(c, "running_mean_after", rm, nc, REF_TOL_STATE, 0);
    ref_check(c, "running_var_after", rv, nc, REF_TOL_STATE, 0);
    free(x);
    free(dy);
    free(w);
    free(b);
    free(rm);
    free(rv);
    free(y);
    free(dx);
    free(dw);
    free(db);
    free(mean);
    free(rstd);
}

void ref_run_maxpool2d(const ref_case *c)
{
    int64_t xs[4], ys[4];
    ref_shape(c, "x", 4, xs);
    ref_shape(c, "y", 4, ys);
    int k = ref_attr_square(c, "kernel"), pad = ref_attr_square(c, "padding");
    int stride = json_object_get(c->attrs, "stride") != NULL ? ref_attr_square(c, "stride") : k;
    int B = (int)xs[0], C = (int)xs[1], H = (int)xs[2], W = (int)xs[3];
    int Ho = nn_maxpool_out_size(H, k, stride, pad), Wo = nn_maxpool_out_size(W, k, stride, pad);
    ck_assert_msg(ys[0] == B && ys[1] == C && ys[2] == Ho && ys[3] == Wo,
                  "case '%s': y shape does not match the pool output size", c->name);
    size_t nx, ny;
    float *x = ref_get_nhwc(c, "x", &nx);
    float *dy = ref_get_nhwc(c, "dy", &ny);
    float *y = xmallocarray(ny, sizeof(float));
    int *am = xmallocarray(ny, sizeof(int));
    float *dx = xcalloc(nx, sizeof(float));
    nn_maxpool2d_forward(y, am, x, B, H, W, C, k, stride, pad);
    ref_check(c, "y", y, ny, REF_TOL_FWD, 1);
    nn_maxpool2d_backward(dx, dy, am, B, Ho, Wo, C);
    ref_check(c, "dx", dx, nx, REF_TOL_GRAD, 1);
    free(x);
    free(dy);
    free(y);
    free(am);
    free(dx);
}

void ref_run_global_avgpool(const ref_case *c)
{
    int64_t xs[4], ys[2];
    ref_shape(c, "x", 4, xs);
    ref_shape(c, "y", 2, ys);
    int B = (int)xs[0], C = (int)xs[1], S = (int)(xs[2] * xs[3]);
    ck_assert_msg(ys[0] == B && ys[1] == C, "case '%s': y must be [B, C]", c->name);
    size_t nx, ny;
    float *x = ref_get_nhwc(c, "x", &nx);
    float *dy = ref_get(c, "dy", &ny, NULL, NULL);
    float *y = xmallocarray(ny, sizeof(float));
    float *dx = xcalloc(nx, sizeof(float));
    nn_avgpool_forward(y, x, B, S, C);
    ref_check(c, "y", y, ny, REF_TOL_FWD, 0);
    nn_avgpool_backward(dx, dy, B, S, C);
    ref_check(c, "dx", dx, nx, REF_TOL_GRAD, 1);
    free(x);
    free(dy);
    free(y);
    free(dx);
}
