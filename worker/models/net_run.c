/* net_run.c - the forward and backward interpreters of a net (see net.h).
 *
 * Forward runs every node in program order (in eval mode only the live
 * ones); backward runs the live nodes in reverse. Activation gradients are
 * zeroed lazily: the first time a consumer is about to accumulate into an
 * input's gradient in a pass, that gradient is cleared, so memory is only
 * touched right before it is used.
 */
#include "common/clock.h"
#include "worker/models/net.h"
#include "worker/nn/act.h"
#include "worker/nn/attention.h"
#include "worker/nn/conv.h"
#include "worker/nn/dropout.h"
#include "worker/nn/linear.h"
#include "worker/nn/norm.h"
#include "worker/nn/pooling.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The forward value of activation x. */
static float *act_val(const net *m, int x)
{
    return m->arena + m->acts[x].off;
}

/* The value of activation x as backward reads it: recomputed or kept. */
static float *act_bwd(const net *m, int x)
{
    const net_act *a = &m->acts[x];
    return m->arena + (a->recompute ? a->roff : a->off);
}

static float *aux_f32(const net *m, const net_node *n)
{
    return m->aux_mem + n->aux_off;
}

static int *aux_i32(const net *m, const net_node *n)
{
    return m->iaux_mem + n->iaux_off;
}

static float *param_val(const net *m, int t)
{
    return t < 0 ? NULL : net_tensor_data(m, t);
}

static float *param_grad(const net *m, int t)
{
    return t < 0 ? NULL : net_tensor_grad(m, t);
}

/* The gradient of activation x, zeroed on first use in this pass; NULL if x
 * needs none. */
static float *act_grad(net *m, int x, int B)
{
    const net_act *a = &m->acts[x];
    if (!a->needs_grad)
        return NULL;
    assert(m->arena != NULL);
    float *d = m->arena + a->doff;
    if (!m->dtouched[x]) {
        memset(d, 0, (size_t)B * a->per_sample * sizeof(float));
        m->dtouched[x] = 1;
    }
    return d;
}

/* Adds src (the whole gradient of activation x, B samples) into that gradient: a copy
 * when this pass has not touched it yet, which is what zeroing and adding would give
 * (nn_assign), in one memory pass instead of two. */
static void dA_add(net *m, int x, int B, const float *src)
{
    const net_act *a = &m->acts[x];
    if (!a->needs_grad)
        return;
    size_t n = (size_t)B * a->per_sample;
    if (m->dtouched[x]) {
        nn_accumulate(m->arena + a->doff, src, n);
    } else {
        nn_assign(m->arena + a->doff, src, n);
        m->dtouched[x] = 1;
    }
}

static void conv_dims(const net *m, const net_node *n, int B, nn_conv2d_dims *d)
{
    const net_act *x = &m->acts[n->in[0]], *y = &m->acts[n->out];
    nn_conv2d_dims_init(d, B, x->H, x->W, x->C, y->C, n->k, n->stride, n->pad, n->groups);
}

/* The BN node n over `rows` rows as its kernels see it: weight t[0], bias t[1], running
 * mean t[2] and variance t[3] (t[4] counts its batches), eps, momentum (the net's override
 * when set) and the fused activation. */
static nn_bn bn_layer(const net *m, const net_node *n, int rows)
{
    return (nn_bn){.N = rows,
                   .C = m->acts[n->out].C,
                   .w = param_val(m, n->t[0]),
                   .b = param_val(m, n->t[1]),
                   .run_mean = param_val(m, n->t[2]),
                   .run_var = param_val(m, n->t[3]),
                   .eps = n->eps,
                   .momentum = m->bn_momentum >= 0 ? m->bn_momentum : n->momentum,
                   .act = (nn_act_kind)n->act};
}

/* The batch statistics of BN node n in its aux buffer: mean, rstd (C each) and the
 * reapply constants (2C). */
static nn_bn_saved bn_saved(const net *m, const net_node *n)
{
    float *mean = aux_f32(m, n);
    size_t C = (size_t)m->acts[n->out].C;
    return (nn_bn_saved){.mean = mean, .rstd = mean + C, .keep = mean + 2 * C};
}

/* Conv node n (weight t[0], bias t[1]) over B samples. */
static void conv_forward(net *m, const net_node *n, int B, float *out, const float *in)
{
    nn_conv2d_dims d;
    conv_dims(m, n, B, &d);
    nn_conv2d_forward(out, in, param_val(m, n->t[0]), param_val(m, n->t[1]), &d, m->scratch);
}

static void conv_backward(net *m, const net_node *n, int B, float *din, const float *dout,
                          const float *in)
{
    nn_conv2d_dims d;
    conv_dims(m, n, B, &d);
    nn_conv2d_backward(din, param_grad(m, n->t[0]), param_grad(m, n->t[1]), dout, in,
                       param_val(m, n->t[0]), &d, m->scratch);
}

/* BN node n forward over `rows` rows: batch statistics when training (counted in t[4]),
 * the running ones in eval; with a second input, the fused residual add. */
static void bn_forward(net *m, const net_node *n, int rows, float *out, const float *in)
{
    const float *res = n->n_in > 1 ? act_val(m, n->in[1]) : NULL;
    nn_bn bn = bn_layer(m, n, rows);
    if (!m->training) {
        nn_batchnorm_forward_eval(out, in, res, &bn);
        return;
    }
    nn_bn_saved saved = bn_saved(m, n);
    if (res != NULL)
        saved.keep = NULL; /* never recomputed (net_plan.c), so nothing to keep */
    nn_batchnorm_forward_train(out, &saved, in, res, &bn);
    m->counters[m->tensors[n->t[4]].off] += 1;
}

/* BN node n backward (B samples): din, the weight and bias gradients and, with a
 * fused residual add, the residual's gradient. */
static void bn_backward(net *m, const net_node *n, int B, float *din, const float *dout,
                        const float *out, const float *in)
{
    const net_act *y = &m->acts[n->out];
    float *dres = n->n_in > 1 ? act_grad(m, n->in[1], B) : NULL;
    nn_bn bn = bn_layer(m, n, B * y->H * y->W);
    float *dw = param_grad(m, n->t[0]), *db = param_grad(m, n->t[1]);
    if (m->training) {
        nn_bn_saved saved = bn_saved(m, n);
        nn_batchnorm_backward_train(din, dres, dw, db, dout, out, in, &saved, &bn);
    } else {
        nn_batchnorm_backward_eval(din, dres, dw, db, dout, out, in, &bn);
    }
}

/* The elementwise activations, by op: forward out = f(in) over n values; backward
 * din += f'(.) * dout, with f' read from the output (from_out: ReLU, ReLU6) or from the
 * input. */
typedef struct pointwise_kernels {
    void (*forward)(float *out, const float *inp, size_t n);
    void (*backward)(float *dinp, const float *dout, const float *x, size_t n);
    int from_out;
} pointwise_kernels;

static const pointwise_kernels POINTWISE[NET_OP_COUNT] = {
    [NET_OP_RELU] = {nn_relu_forward, nn_relu_backward, 1},
    [NET_OP_RELU6] = {nn_relu6_forward, nn_relu6_backward, 1},
    [NET_OP_GELU] = {nn_gelu_forward, nn_gelu_backward, 0},
    [NET_OP_HSWISH] = {nn_hswish_forward, nn_hswish_backward, 0},
    [NET_OP_HSIGMOID] = {nn_hsigmoid_forward, nn_hsigmoid_backward, 0},
    [NET_OP_SILU] = {nn_silu_forward, nn_silu_backward, 0},
    [NET_OP_SIGMOID] = {nn_sigmoid_forward, nn_sigmoid_backward, 0},
};

/* ---- the token layout of the transformers (TOKENS, SLICE, JOIN_CLS, STACK) ---- */

static void tokens_forward(net *m, const net_node *n, int B, float *out, const float *in)
{
    const net_act *x = &m->acts[n->in[0]];
    const net_act *y = &m->acts[n->out];
    switch (n->op) {
    case NET_OP_TOKENS: {
        const float *cls = param_val(m, n->t[0]), *pos = param_val(m, n->t[1]);
        int C = y->C, T = y->H;
        for (int b = 0; b < B; b++) {
            float *o = out + (size_t)b * T * C;
            const float *src = in + (size_t)b * (T - 1) * C;
            for (int c = 0; c < C; c++)
                o[c] = cls[c] + pos[c];
            for (size_t i = 0; i < (size_t)(T - 1) * C; i++)
                o[C + i] = src[i] + pos[C + i];
        }
        break;
    }
    case NET_OP_SLICE: {
        size_t C = (size_t)y->C, T = (size_t)x->H * x->W;
        for (int b = 0; b < B; b++)
            memcpy(out + (size_t)b * n->count * C, in + ((size_t)b * T + n->start) * C,
                   (size_t)n->count * C * sizeof(float));
        break;
    }
    case NET_OP_JOIN_CLS: {
        const net_act *p = &m->acts[n->in[1]];
        const float *patches = act_val(m, n->in[1]);
        size_t C = (size_t)y->C, T0 = (size_t)x->H * x->W, np = (size_t)p->H * p->W;
        for (int b = 0; b < B; b++) {
            float *o = out + (size_t)b * (1 + np) * C;
            memcpy(o, in + (size_t)b * T0 * C, C * sizeof(float));
            memcpy(o + C, patches + (size_t)b * np * C, np * C * sizeof(float));
        }
        break;
    }
    case NET_OP_STACK: {
        const float *pos = param_val(m, n->t[0]);
        size_t C = (size_t)y->C, L = (size_t)n->n_in;
        for (size_t l = 0; l < L; l++) {
            const net_act *xi = &m->acts[n->in[l]];
            const float *src = act_val(m, n->in[l]);
            size_t Ti = (size_t)xi->H * xi->W;
            for (int b = 0; b < B; b++) {
                float *o = out + ((size_t)b * L + l) * C;
                const float *s = src + (size_t)b * Ti * C;
                for (size_t c = 0; c < C; c++)
                    o[c] = s[c] + (pos ? pos[l * C + c] : 0.0f);
            }
        }
        break;
    }
    default:
        assert(0);
    }
}

static void tokens_backward(net *m, const net_node *n, int B, float *din, const float *dout)
{
    const net_act *x = &m->acts[n->in[0]];
    const net_act *y = &m->acts[n->out];
    switch (n->op) {
    case NET_OP_TOKENS: {
        float *dcls = param_grad(m, n->t[0]), *dpos = param_grad(m, n->t[1]);
        size_t C = (size_t)y->C, T = (size_t)y->H;
        for (int b = 0; b < B; b++) {
            const float *g = dout + (size_t)b * T * C;
            for (size_t c = 0; c < C; c++)
                dcls[c] += g[c];
            for (size_t i = 0; i < T * C; i++)
                dpos[i] += g[i];
            if (din)
                nn_accumulate(din + (size_t)b * (T - 1) * C, g + C, (T - 1) * C);
        }
        break;
    }
    case NET_OP_SLICE: {
        size_t C = (size_t)y->C, T = (size_t)x->H * x->W;
        if (din)
            for (int b = 0; b < B; b++)
                nn_accumulate(din + ((size_t)b * T + n->start) * C, dout + (size_t)b * n->count * C,
                              (size_t)n->count * C);
        break;
    }
    case NET_OP_JOIN_CLS: {
        const net_act *p = &m->acts[n->in[1]];
        float *dp = act_grad(m, n->in[1], B);
        size_t C = (size_t)y->C, T0 = (size_t)x->H * x->W, np = (size_t)p->H * p->W;
        for (int b = 0; b < B; b++) {
            const float *g = dout + (size_t)b * (1 + np) * C;
            if (din)
                nn_accumulate(din + (size_t)b * T0 * C, g, C);
            if (dp)
                nn_accumulate(dp + (size_t)b * np * C, g + C, np * C);
        }
        break;
    }
    case NET_OP_STACK: {
        float *dpos = param_grad(m, n->t[0]);
        size_t C = (size_t)y->C, L = (size_t)n->n_in;
        for (size_t l = 0; l < L; l++) {
            const net_act *xi = &m->acts[n->in[l]];
            float *di = act_grad(m, n->in[l], B);
            size_t Ti = (size_t)xi->H * xi->W;
            for (int b = 0; b < B; b++) {
                const float *g = dout + ((size_t)b * L + l) * C;
                if (di)
                    nn_accumulate(di + (size_t)b * Ti * C, g, C);
                if (dpos)
                    nn_accumulate(dpos + l * C, g, C);
            }
        }
        break;
    }
    default:
        assert(0);
    }
}

/* ---- the search's scalings (CHSCALE: DMCP's channel masks, SCALEADD: DNA's depth
 * mixtures), whose scale gradients go to n->dext ---- */

static void search_forward(net *m, const net_node *n, size_t ny, float *out, const float *in)
{
    const net_act *y = &m->acts[n->out];
    switch (n->op) {
    case NET_OP_CHSCALE: {
        size_t C = (size_t)y->C, R = ny / C;
        for (size_t r = 0; r < R; r++)
            for (size_t c = 0; c < C; c++)
                out[r * C + c] = in[r * C + c] * n->ext[c];
        break;
    }
    case NET_OP_SCALEADD: {
        const float *b2 = act_val(m, n->in[1]);
        float q = n->ext[0];
        for (size_t i = 0; i < ny; i++)
            out[i] = in[i] + q * b2[i];
        break;
    }
    default:
        assert(0);
    }
}

static void search_backward(net *m, const net_node *n, int B, float *din, const float *dout,
                            const float *in)
{
    const net_act *y = &m->acts[n->out];
    size_t ny = (size_t)B * y->per_sample;
    switch (n->op) {
    case NET_OP_CHSCALE: {
        size_t C = (size_t)y->C, R = ny / C;
        for (size_t r = 0; r < R; r++)
            for (size_t c = 0; c < C; c++) {
                if (din)
                    din[r * C + c] += dout[r * C + c] * n->ext[c];
                if (n->dext)
                    n->dext[c] += dout[r * C + c] * in[r * C + c];
            }
        break;
    }
    case NET_OP_SCALEADD: {
        const float *b2 = act_bwd(m, n->in[1]);
        float *din1 = act_grad(m, n->in[1], B);
        float q = n->ext[0];
        double dq = 0;
        for (size_t i = 0; i < ny; i++) {
            if (din)
                din[i] += dout[i];
            if (din1)
                din1[i] += q * dout[i];
            dq += (double)dout[i] * (double)b2[i];
        }
        if (n->dext)
            n->dext[0] += (float)dq;
        break;
    }
    default:
        assert(0);
    }
}

static void forward_node(net *m, net_node *n, const float *xin, int B)
{
    const net_act *y = &m->acts[n->out];
    float *out = act_val(m, n->out);
    size_t ny = (size_t)B * y->per_sample;
    if (n->op == NET_OP_INPUT) {
        memcpy(out, xin, ny * sizeof(float));
        return;
    }
    assert(n->n_in > 0);
    const net_act *x = &m->acts[n->in[0]];
    const float *in = act_val(m, n->in[0]);
    int rows = B * y->H * y->W;
    switch (n->op) {
    case NET_OP_INPUT:
        break;
    NET_OP_CASES_POINTWISE:
        POINTWISE[n->op].forward(out, in, ny);
        break;
    case NET_OP_CONV:
        conv_forward(m, n, B, out, in);
        break;
    case NET_OP_BN:
        bn_forward(m, n, rows, out, in);
        break;
    case NET_OP_MAXPOOL:
        nn_maxpool2d_forward(out, aux_i32(m, n), in, B, x->H, x->W, x->C, n->k, n->stride, n->pad);
        break;
    case NET_OP_AVGPOOL:
        nn_avgpool_forward(out, in, B, x->H * x->W, x->C);
        break;
    case NET_OP_LINEAR:
        nn_linear_forward(out, in, param_val(m, n->t[0]), param_val(m, n->t[1]), rows, x->C, y->C);
        break;
    case NET_OP_LN: {
        float *mean = aux_f32(m, n), *rstd = mean + rows;
        nn_layernorm_forward(out, mean, rstd, in, param_val(m, n->t[0]), param_val(m, n->t[1]),
                             rows, y->C, n->eps);
        break;
    }
    case NET_OP_ADD:
        nn_add_forward(out, in, act_val(m, n->in[1]), ny);
        break;
    case NET_OP_ATTN:
        nn_attention_forward(out, aux_f32(m, n), in, B, x->H * x->W, y->C, n->heads, n->query,
                             m->scratch);
        break;
    case NET_OP_TOKENS:
    case NET_OP_SLICE:
    case NET_OP_JOIN_CLS:
    case NET_OP_STACK:
        tokens_forward(m, n, B, out, in);
        break;
    case NET_OP_DROPPATH:
        if (m->training && n->p > 0)
            nn_droppath_forward(out, aux_f32(m, n), in, B, y->per_sample, n->p, &m->rng);
        else
            memcpy(out, in, ny * sizeof(float));
        break;
    case NET_OP_CHSCALE:
    case NET_OP_SCALEADD:
        search_forward(m, n, ny, out, in);
        break;
    case NET_OP_CHMUL:
        nn_chmul_forward(out, in, act_val(m, n->in[1]), B, y->H * y->W, y->C);
        break;
    case NET_OP_DROPOUT:
        if (m->training && n->p > 0)
            nn_dropout_forward(out, aux_f32(m, n), in, ny, n->p, &m->rng);
        else
            memcpy(out, in, ny * sizeof(float));
        break;
    case NET_OP_COUNT:
        assert(0);
        break;
    }
}

static const char *const OP_NAMES[NET_OP_COUNT] = {
    "input",    "conv",    "batchnorm", "relu",    "relu6",     "gelu",   "maxpool",
    "avgpool",  "linear",  "layernorm", "add",     "attention", "tokens", "slice",
    "join_cls", "stack",   "droppath",  "chscale", "scaleadd",  "hswish", "hsigmoid",
    "silu",     "sigmoid", "chmul",     "dropout"};

const char *net_op_name(net_op op)
{
    return op >= 0 && op < NET_OP_COUNT ? OP_NAMES[op] : "?";
}

void net_profile_print(const net *m, void *file)
{
    FILE *f = file;
    double total = 0;
    for (int i = 0; i < NET_OP_COUNT; i++)
        total += m->prof[i][0] + m->prof[i][1];
    fprintf(f, "%-10s %10s %10s %7s\n", "op", "fwd s", "bwd s", "share");
    for (int i = 0; i < NET_OP_COUNT; i++) {
        if (m->prof[i][0] + m->prof[i][1] == 0)
            continue;
        fprintf(f, "%-10s %10.3f %10.3f %6.1f%%\n", OP_NAMES[i], m->prof[i][0], m->prof[i][1],
                100 * (m->prof[i][0] + m->prof[i][1]) / total);
    }
    net_plan_print(m, f);
}

void net_forward(net *m, const float *x, int B)
{
    assert(m->params != NULL && "net_finalize first");
    assert(B >= 1 && B <= m->max_batch);
    m->batch = B;
    for (int i = 0; i < m->n_nodes; i++) {
        net_node *n = &m->nodes[i];
        if (n->fused || (!n->live && !m->training))
            continue;
        if (m->profile) {
            double t = clock_mono_s();
            forward_node(m, n, x, B);
            m->prof[n->op][0] += clock_mono_s() - t;
        } else {
            forward_node(m, n, x, B);
        }
    }
}

/* Whether node n hands its output's gradient unchanged to each input: an add, and a
 * dropout or drop-path that drops nothing (eval, or p = 0). */
static int passes_gradient(const net *m, const net_node *n)
{
    int drops = m->training && n->p > 0;
    return n->op == NET_OP_ADD || ((n->op == NET_OP_DROPPATH || n->op == NET_OP_DROPOUT) && !drops);
}

static void backward_node(net *m, net_node *n, int B)
{
    assert(n->op != NET_OP_INPUT && n->n_in > 0);
    const net_act *x = &m->acts[n->in[0]];
    const net_act *y = &m->acts[n->out];
    const float *dout = m->arena + y->doff;
    const float *out = act_bwd(m, n->out);
    const float *in = act_bwd(m, n->in[0]);
    size_t ny = (size_t)B * y->per_sample;
    int rows = B * y->H * y->W;
    if (passes_gradient(m, n)) {
        for (int j = 0; j < n->n_in; j++)
            dA_add(m, n->in[j], B, dout);
        return;
    }
    float *din = act_grad(m, n->in[0], B);
    switch (n->op) {
    case NET_OP_INPUT:
        break;
    NET_OP_CASES_POINTWISE:
        if (din)
            POINTWISE[n->op].backward(din, dout, POINTWISE[n->op].from_out ? out : in, ny);
        break;
    case NET_OP_CONV:
        conv_backward(m, n, B, din, dout, in);
        break;
    case NET_OP_BN:
        bn_backward(m, n, B, din, dout, out, in);
        break;
    case NET_OP_MAXPOOL:
        if (din)
            nn_maxpool2d_backward(din, dout, aux_i32(m, n), B, y->H, y->W, y->C);
        break;
    case NET_OP_AVGPOOL:
        if (din)
            nn_avgpool_backward(din, dout, B, x->H * x->W, x->C);
        break;
    case NET_OP_LINEAR:
        nn_linear_backward(din, param_grad(m, n->t[0]), param_grad(m, n->t[1]), dout, in,
                           param_val(m, n->t[0]), rows, x->C, y->C);
        break;
    case NET_OP_LN:
        nn_layernorm_backward(din, param_grad(m, n->t[0]), param_grad(m, n->t[1]), dout, in,
                              param_val(m, n->t[0]), aux_f32(m, n), aux_f32(m, n) + rows, rows,
                              y->C);
        break;
    case NET_OP_ADD: /* above */
        break;
    case NET_OP_ATTN:
        if (din)
            nn_attention_backward(din, dout, in, aux_f32(m, n), B, x->H * x->W, y->C, n->heads,
                                  n->query, m->scratch);
        break;
    case NET_OP_TOKENS:
    case NET_OP_SLICE:
    case NET_OP_JOIN_CLS:
    case NET_OP_STACK:
        tokens_backward(m, n, B, din, dout);
        break;
    case NET_OP_DROPPATH:
        if (din)
            nn_droppath_backward(din, dout, aux_f32(m, n), B, y->per_sample);
        break;
    case NET_OP_CHSCALE:
    case NET_OP_SCALEADD:
        search_backward(m, n, B, din, dout, in);
        break;
    case NET_OP_CHMUL:
        nn_chmul_backward(din, act_grad(m, n->in[1], B), dout, in, act_bwd(m, n->in[1]), B,
                          y->H * y->W, y->C);
        break;
    case NET_OP_DROPOUT:
        if (din)
            nn_dropout_backward(din, dout, aux_f32(m, n), ny);
        break;
    case NET_OP_COUNT:
        assert(0);
        break;
    }
}

/* Recomputes activation x into its backward buffer from its producer's kept
 * input (and saved statistics), exactly as the forward pass computed it. */
static void recompute(net *m, int x, int B)
{
    const net_act *y = &m->acts[x];
    const net_node *n = &m->nodes[y->producer];
    float *out = m->arena + y->roff;
    const float *in = act_bwd(m, n->in[0]);
    int rows = B * y->H * y->W;
    switch (n->op) {
    case NET_OP_BN: {
        nn_bn bn = bn_layer(m, n, rows);
        if (m->training) {
            nn_bn_saved saved = bn_saved(m, n);
            nn_batchnorm_reapply(out, in, &saved, &bn);
        } else {
            nn_batchnorm_forward_eval(out, in, NULL, &bn);
        }
        break;
    }
    case NET_OP_GELU:
    case NET_OP_HSWISH:
    case NET_OP_SILU: /* the activations net_plan.c recomputes */
        POINTWISE[n->op].forward(out, in, (size_t)B * y->per_sample);
        break;
    case NET_OP_LN: {
        float *mean = aux_f32(m, n), *rstd = mean + rows;
        nn_layernorm_forward(out, mean, rstd, in, param_val(m, n->t[0]), param_val(m, n->t[1]),
                             rows, y->C, n->eps);
        break;
    }
    case NET_OP_ATTN: {
        const net_act *src = &m->acts[n->in[0]];
        nn_attention_output(out, aux_f32(m, n), in, B, src->H * src->W, y->C, n->heads, n->query,
                            m->scratch);
        break;
    }
    case NET_OP_SLICE: {
        const net_act *src = &m->acts[n->in[0]];
        size_t C = (size_t)y->C, T = (size_t)src->H * src->W;
        for (int b = 0; b < B; b++)
            memcpy(out + (size_t)b * n->count * C, in + ((size_t)b * T + n->start) * C,
                   (size_t)n->count * C * sizeof(float));
        break;
    }
    default:
        assert(0 && "not a recomputable op");
        break;
    }
}

/* Recomputes the activations that node i's backward reads first. */
static void recompute_for(net *m, int i, int B)
{
    for (int x = m->nodes[i].rec_first; x >= 0; x = m->acts[x].rec_next)
        recompute(m, x, B);
}

void net_backward(net *m, const float *dout)
{
    int B = m->batch;
    assert(B >= 1);
    memset(m->dtouched, 0, (size_t)m->n_acts);
    assert(m->acts[m->output].needs_grad);
    dA_add(m, m->output, B, dout);
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        net_node *n = &m->nodes[i];
        if (n->fused || !n->live || n->op == NET_OP_INPUT)
            continue;
        if (m->profile) {
            double t = clock_mono_s();
            recompute_for(m, i, B);
            backward_node(m, n, B);
            m->prof[n->op][1] += clock_mono_s() - t;
        } else {
            recompute_for(m, i, B);
            backward_node(m, n, B);
        }
    }
}
