/* onnx_export.c - a net's program as ONNX nodes (see onnx_export.h). */
#include "worker/export/onnx_export.h"

#include "common/check.h"
#include "common/xalloc.h"
#include "worker/nn/norm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_LEN    48
#define MAX_SCALARS 16
#define SQRT1_2     0.70710678118654752440

/* How an activation (H, W, C) is laid out as an ONNX value. */
typedef enum {
    LAY_SPATIAL = 0, /* (batch, C, H, W) */
    LAY_TOKENS,      /* (batch, H*W, C) */
    LAY_FLAT,        /* (batch, C); only when H*W == 1 */
    LAY_COUNT
} layout;

typedef struct exporter {
    onnx_graph *g;
    const net *m;
    int opset;
    int n_tmp;
    char (*names)[LAY_COUNT][NAME_LEN]; /* per activation; "" until made */
    layout *home;                       /* per activation: the layout it is produced in */
    unsigned char *emitted;             /* per tensor: its initializer is written */
    int n_scalars;
    float scalar_value[MAX_SCALARS];
    char scalar_name[MAX_SCALARS][NAME_LEN];
} exporter;

/* A fresh value name into buf (NAME_LEN bytes). */
static char *tmp(exporter *x, char *buf)
{
    snprintf(buf, NAME_LEN, "_t%d", x->n_tmp++);
    return buf;
}

static int rows_of(const net_act *a)
{
    return a->H * a->W;
}

/* Name of tensor id (its state_dict name), writing its initializer on first use. */
static const char *tensor(exporter *x, int id)
{
    const net_tensor *t = &x->m->tensors[id];
    if (!x->emitted[id]) {
        int64_t dims[4];
        for (int k = 0; k < t->ndim; k++)
            dims[k] = t->shape[k];
        onnx_init_f32(x->g, t->name, t->ndim, dims, net_tensor_data(x->m, id));
        x->emitted[id] = 1;
    }
    return t->name;
}

/* A float scalar constant (shared by value). */
static const char *scalar(exporter *x, float v)
{
    for (int k = 0; k < x->n_scalars; k++)
        if (x->scalar_value[k] == v)
            return x->scalar_name[k];
    /* the exporter uses a handful of scalars; more is a bug */
    KILN_CHECK(x->n_scalars < MAX_SCALARS);
    int k = x->n_scalars++;
    x->scalar_value[k] = v;
    snprintf(x->scalar_name[k], NAME_LEN, "_s%d", k);
    onnx_init_f32(x->g, x->scalar_name[k], 0, NULL, &v);
    return x->scalar_name[k];
}

/* A 1-D int64 constant of n values, named into buf. */
static const char *ints(exporter *x, char *buf, int n, const int64_t *v)
{
    int64_t dim = n;
    tmp(x, buf);
    onnx_init_i64(x->g, buf, 1, &dim, v);
    return buf;
}

/* A scalar (0-D) int64 constant, named into buf. */
static const char *int_scalar(exporter *x, char *buf, int64_t v)
{
    tmp(x, buf);
    onnx_init_i64(x->g, buf, 0, NULL, &v);
    return buf;
}

/* One-input node op(in) -> out, with attributes. */
static void node1(exporter *x, const char *op, const char *in, const char *out, const onnx_attr *a,
                  int n_a)
{
    const char *ins[1] = {in};
    onnx_node(x->g, op, ins, 1, out, a, n_a);
}

static void node2(exporter *x, const char *op, const char *a, const char *b, const char *out)
{
    const char *ins[2] = {a, b};
    onnx_node(x->g, op, ins, 2, out, NULL, 0);
}

static void reshape(exporter *x, const char *in, int n, const int64_t *shape, const char *out)
{
    char s[NAME_LEN];
    node2(x, "Reshape", in, ints(x, s, n, shape), out);
}

static void transpose(exporter *x, const char *in, int n, const int64_t *perm, const char *out)
{
    onnx_attr a = onnx_ints("perm", n, perm);
    node1(x, "Transpose", in, out, &a, 1);
}

/* Slice of in along `axis`, [start, end). */
static void slice(exporter *x, const char *in, int axis, int64_t start, int64_t end,
                  const char *out)
{
    char s[NAME_LEN], e[NAME_LEN], ax[NAME_LEN];
    int64_t a64 = axis;
    const char *ins[4] = {in, ints(x, s, 1, &start), ints(x, e, 1, &end), ints(x, ax, 1, &a64)};
    onnx_node(x->g, "Slice", ins, 4, out, NULL, 0);
}

/* The name activation `a` has in layout `lay`. */
static char *act_name(exporter *x, int a, layout lay)
{
    char *n = x->names[a][lay];
    if (n[0] == '\0')
        snprintf(n, NAME_LEN, "_a%d%c", a, "stf"[lay]);
    return n;
}

/* The output name of a node producing activation a in layout lay. */
static const char *produce(exporter *x, int a, layout lay)
{
    x->home[a] = lay;
    return act_name(x, a, lay);
}

/* Activation a in layout `want`, converting from its home layout on first
 * request. LAY_FLAT only for one row per sample (callers check). */
static const char *get(exporter *x, int a, layout want)
{
    if (x->names[a][want][0] != '\0')
        return x->names[a][want];
    const net_act *v = &x->m->acts[a];
    const char *src = x->names[a][x->home[a]];
    char t[NAME_LEN];
    int64_t C = v->C, H = v->H, W = v->W, T = rows_of(v);
    static const int64_t swap12[3] = {0, 2, 1};
    char *out = act_name(x, a, want);
    if (T == 1) {
        int64_t sp[4] = {0, C, 1, 1}, tk[3] = {0, 1, C}, fl[2] = {0, C};
        if (want == LAY_SPATIAL)
            reshape(x, src, 4, sp, out);
        else if (want == LAY_TOKENS)
            reshape(x, src, 3, tk, out);
        else
            reshape(x, src, 2, fl, out);
    } else if (want == LAY_TOKENS) { /* (B, C, H, W) -> (B, C, HW) -> (B, HW, C) */
        int64_t s3[3] = {0, C, T};
        reshape(x, src, 3, s3, tmp(x, t));
        transpose(x, t, 3, swap12, out);
    } else { /* (B, HW, C) -> (B, C, HW) -> (B, C, H, W) */
        int64_t s4[4] = {0, C, H, W};
        transpose(x, src, 3, swap12, tmp(x, t));
        reshape(x, t, 4, s4, out);
    }
    return out;
}

/* The layout a row-wise operator (LayerNorm, Linear) reads a in. */
static layout row_layout(const exporter *x, int a)
{
    if (rows_of(&x->m->acts[a]) == 1)
        return LAY_FLAT;
    return LAY_TOKENS;
}

/* ---- one node each --------------------------------------------------------------- */

static void emit_conv(exporter *x, const net_node *n)
{
    int64_t k2[2] = {n->k, n->k}, s2[2] = {n->stride, n->stride}, one2[2] = {1, 1};
    int64_t p4[4] = {n->pad, n->pad, n->pad, n->pad};
    onnx_attr a[5] = {onnx_ints("kernel_shape", 2, k2), onnx_ints("strides", 2, s2),
                      onnx_ints("pads", 4, p4), onnx_ints("dilations", 2, one2),
                      onnx_int("group", n->groups)};
    const char *ins[3] = {get(x, n->in[0], LAY_SPATIAL), tensor(x, n->t[0]),
                          n->t[1] >= 0 ? tensor(x, n->t[1]) : ""};
    onnx_node(x->g, "Conv", ins, n->t[1] >= 0 ? 3 : 2, produce(x, n->out, LAY_SPATIAL), a, 5);
}

/* ReLU or ReLU6 of in into out. */
static void emit_act(exporter *x, int relu6, const char *in, const char *out)
{
    if (!relu6) {
        node1(x, "Relu", in, out, NULL, 0);
        return;
    }
    const char *ins[3] = {in, scalar(x, 0.0f), scalar(x, 6.0f)};
    onnx_node(x->g, "Clip", ins, 3, out, NULL, 0);
}

static void emit_bn(exporter *x, const net_node *n)
{
    onnx_attr a = onnx_float("epsilon", n->eps);
    const char *ins[5] = {get(x, n->in[0], LAY_SPATIAL), tensor(x, n->t[0]), tensor(x, n->t[1]),
                          tensor(x, n->t[2]), tensor(x, n->t[3])};
    const char *out = produce(x, n->out, LAY_SPATIAL);
    if (n->act == NN_ACT_NONE && n->n_in == 1) {
        onnx_node(x->g, "BatchNormalization", ins, 5, out, &a, 1);
        return;
    }
    char t[NAME_LEN], r[NAME_LEN];
    onnx_node(x->g, "BatchNormalization", ins, 5, tmp(x, t), &a, 1);
    const char *y = t;
    if (n->n_in == 2) { /* fused with a residual add (net_finalize): BN(x) + in[1] */
        const char *res = get(x, n->in[1], LAY_SPATIAL);
        if (n->act == NN_ACT_NONE) {
            node2(x, "Add", t, res, out);
            return;
        }
        node2(x, "Add", t, res, tmp(x, r));
        y = r;
    }
    emit_act(x, n->act == NN_ACT_RELU6, y, out);
}

/* An elementwise node keeps its input's layout. */
static void emit_unary(exporter *x, const net_node *n)
{
    layout lay = x->home[n->in[0]];
    const char *in = get(x, n->in[0], lay), *out = produce(x, n->out, lay);
    if (n->op == NET_OP_RELU || n->op == NET_OP_RELU6) {
        emit_act(x, n->op == NET_OP_RELU6, in, out);
        return;
    }
    /* torch's Hardsigmoid is ONNX's HardSigmoid with alpha 1/6, beta 1/2 */
    onnx_attr hs[2] = {onnx_float("alpha", 1.0f / 6.0f), onnx_float("beta", 0.5f)};
    char g[NAME_LEN];
    switch (n->op) {
    case NET_OP_HSWISH:
        if (x->opset >= 14) {
            node1(x, "HardSwish", in, out, NULL, 0);
        } else {
            node1(x, "HardSigmoid", in, tmp(x, g), hs, 2);
            node2(x, "Mul", in, g, out);
        }
        return;
    case NET_OP_HSIGMOID:
        node1(x, "HardSigmoid", in, out, hs, 2);
        return;
    case NET_OP_SIGMOID:
        node1(x, "Sigmoid", in, out, NULL, 0);
        return;
    case NET_OP_SILU:
        node1(x, "Sigmoid", in, tmp(x, g), NULL, 0);
        node2(x, "Mul", in, g, out);
        return;
    default:
        break;
    }
    /* GELU, exact: x * 0.5 * (1 + erf(x / sqrt 2)) */
    char a[NAME_LEN], b[NAME_LEN], c[NAME_LEN], d[NAME_LEN];
    node2(x, "Mul", in, scalar(x, (float)SQRT1_2), tmp(x, a));
    node1(x, "Erf", a, tmp(x, b), NULL, 0);
    node2(x, "Add", b, scalar(x, 1.0f), tmp(x, c));
    node2(x, "Mul", in, c, tmp(x, d));
    node2(x, "Mul", d, scalar(x, 0.5f), out);
}

/* Squeeze-excitation's scale: (N, C, H, W) * (N, C, 1, 1) by broadcasting. */
static void emit_chmul(exporter *x, const net_node *n)
{
    const char *in = get(x, n->in[0], LAY_SPATIAL), *s = get(x, n->in[1], LAY_SPATIAL);
    node2(x, "Mul", in, s, produce(x, n->out, LAY_SPATIAL));
}

static void emit_pool(exporter *x, const net_node *n)
{
    const char *in = get(x, n->in[0], LAY_SPATIAL), *out = produce(x, n->out, LAY_SPATIAL);
    if (n->op == NET_OP_AVGPOOL) {
        node1(x, "GlobalAveragePool", in, out, NULL, 0);
        return;
    }
    int64_t k2[2] = {n->k, n->k}, s2[2] = {n->stride, n->stride};
    int64_t p4[4] = {n->pad, n->pad, n->pad, n->pad};
    onnx_attr a[3] = {onnx_ints("kernel_shape", 2, k2), onnx_ints("strides", 2, s2),
                      onnx_ints("pads", 4, p4)};
    node1(x, "MaxPool", in, out, a, 3);
}

static void emit_linear(exporter *x, const net_node *n)
{
    layout lay = row_layout(x, n->in[0]);
    const char *in = get(x, n->in[0], lay), *out = produce(x, n->out, lay);
    int bias = n->t[1] >= 0;
    if (lay == LAY_FLAT) { /* (B, C) x W^T + b */
        onnx_attr a = onnx_int("transB", 1);
        const char *ins[3] = {in, tensor(x, n->t[0]), bias ? tensor(x, n->t[1]) : ""};
        onnx_node(x->g, "Gemm", ins, bias ? 3 : 2, out, &a, 1);
        return;
    }
    static const int64_t swap01[2] = {1, 0};
    char wt[NAME_LEN], y[NAME_LEN];
    transpose(x, tensor(x, n->t[0]), 2, swap01, tmp(x, wt));
    if (!bias) {
        node2(x, "MatMul", in, wt, out);
        return;
    }
    node2(x, "MatMul", in, wt, tmp(x, y));
    node2(x, "Add", y, tensor(x, n->t[1]), out);
}

static void emit_layernorm(exporter *x, const net_node *n)
{
    layout lay = row_layout(x, n->in[0]);
    const char *in = get(x, n->in[0], lay), *out = produce(x, n->out, lay);
    const char *w = tensor(x, n->t[0]), *b = tensor(x, n->t[1]);
    if (x->opset >= 17) {
        onnx_attr a[2] = {onnx_int("axis", -1), onnx_float("epsilon", n->eps)};
        const char *ins[3] = {in, w, b};
        onnx_node(x->g, "LayerNormalization", ins, 3, out, a, 2);
        return;
    }
    /* (x - mean) / sqrt(mean((x - mean)^2) + eps) * w + b, over the last axis */
    static const int64_t last[1] = {-1};
    onnx_attr a[2] = {onnx_ints("axes", 1, last), onnx_int("keepdims", 1)};
    char mean[NAME_LEN], d[NAME_LEN], d2[NAME_LEN], var[NAME_LEN], ve[NAME_LEN], sd[NAME_LEN];
    char xn[NAME_LEN], xw[NAME_LEN];
    node1(x, "ReduceMean", in, tmp(x, mean), a, 2);
    node2(x, "Sub", in, mean, tmp(x, d));
    node2(x, "Mul", d, d, tmp(x, d2));
    node1(x, "ReduceMean", d2, tmp(x, var), a, 2);
    node2(x, "Add", var, scalar(x, n->eps), tmp(x, ve));
    node1(x, "Sqrt", ve, tmp(x, sd), NULL, 0);
    node2(x, "Div", d, sd, tmp(x, xn));
    node2(x, "Mul", xn, w, tmp(x, xw));
    node2(x, "Add", xw, b, out);
}

static void emit_add(exporter *x, const net_node *n)
{
    layout lay = x->home[n->in[0]];
    const char *a = get(x, n->in[0], lay);
    node2(x, "Add", a, get(x, n->in[1], lay), produce(x, n->out, lay));
}

/* qkv (B, T, 3C) -> softmax(q k^T / sqrt(HS)) v, heads concatenated: (B, TQ, C). */
static void emit_attention(exporter *x, const net_node *n)
{
    const net_act *in = &x->m->acts[n->in[0]], *y = &x->m->acts[n->out];
    int64_t T = rows_of(in), C = y->C, NH = n->heads, HS = C / NH, TQ = rows_of(y);
    char qkv5[NAME_LEN], parts[NAME_LEN], q[NAME_LEN], k[NAME_LEN], v[NAME_LEN];
    char idx[NAME_LEN], kt[NAME_LEN], sc[NAME_LEN], ss[NAME_LEN], p[NAME_LEN], o[NAME_LEN];
    char ot[NAME_LEN], qs[NAME_LEN];
    int64_t shape5[5] = {0, T, 3, NH, HS};
    static const int64_t to_parts[5] = {2, 0, 3, 1, 4}; /* (3, B, NH, T, HS) */
    reshape(x, get(x, n->in[0], LAY_TOKENS), 5, shape5, tmp(x, qkv5));
    transpose(x, qkv5, 5, to_parts, tmp(x, parts));
    onnx_attr axis0 = onnx_int("axis", 0);
    char *qkv_names[3] = {q, k, v};
    for (int part = 0; part < 3; part++) {
        const char *ins[2] = {parts, int_scalar(x, idx, part)};
        onnx_node(x->g, "Gather", ins, 2, tmp(x, qkv_names[part]), &axis0, 1);
    }
    const char *query = q;
    if (n->query != -1) { /* one query token (LCA) */
        slice(x, q, 2, n->query, n->query + 1, tmp(x, qs));
        query = qs;
    }
    static const int64_t swap23[4] = {0, 1, 3, 2}, swap12[4] = {0, 2, 1, 3};
    transpose(x, k, 4, swap23, tmp(x, kt));
    node2(x, "MatMul", query, kt, tmp(x, sc));
    node2(x, "Mul", sc, scalar(x, (float)(1.0 / sqrt((double)HS))), tmp(x, ss));
    onnx_attr last = onnx_int("axis", -1);
    node1(x, "Softmax", ss, tmp(x, p), &last, 1);
    node2(x, "MatMul", p, v, tmp(x, o));
    transpose(x, o, 4, swap12, tmp(x, ot));
    int64_t out3[3] = {0, TQ, C};
    reshape(x, ot, 3, out3, produce(x, n->out, LAY_TOKENS));
}

/* Token 0 of activation a as (B, 1, C): a's own name when it has one token,
 * else a fresh name written into buf (NAME_LEN bytes). */
static const char *first_token(exporter *x, int a, char *buf)
{
    const char *t = get(x, a, LAY_TOKENS);
    if (rows_of(&x->m->acts[a]) == 1)
        return t;
    slice(x, t, 1, 0, 1, tmp(x, buf));
    return buf;
}

/* (B, D, g, g) -> cls_token ++ patch tokens, + pos_embed. */
static void emit_tokens(exporter *x, const net_node *n)
{
    const char *patches = get(x, n->in[0], LAY_TOKENS);
    int64_t D = x->m->acts[n->out].C, one_d[2] = {1, D};
    char shp[NAME_LEN], b[NAME_LEN], c[NAME_LEN], full[NAME_LEN], cls[NAME_LEN], cat[NAME_LEN];
    node1(x, "Shape", patches, tmp(x, shp), NULL, 0);
    slice(x, shp, 0, 0, 1, tmp(x, b)); /* (batch) */
    onnx_attr axis0 = onnx_int("axis", 0), axis1 = onnx_int("axis", 1);
    const char *parts[2] = {b, ints(x, c, 2, one_d)};
    onnx_node(x->g, "Concat", parts, 2, tmp(x, full), &axis0, 1);
    node2(x, "Expand", tensor(x, n->t[0]), full, tmp(x, cls));
    const char *seq[2] = {cls, patches};
    onnx_node(x->g, "Concat", seq, 2, tmp(x, cat), &axis1, 1);
    node2(x, "Add", cat, tensor(x, n->t[1]), produce(x, n->out, LAY_TOKENS));
}

static void emit_sequence(exporter *x, const net_node *n)
{
    onnx_attr axis1 = onnx_int("axis", 1);
    if (n->op == NET_OP_SLICE) {
        slice(x, get(x, n->in[0], LAY_TOKENS), 1, n->start, n->start + n->count,
              produce(x, n->out, LAY_TOKENS));
    } else if (n->op == NET_OP_JOIN_CLS) {
        char c[NAME_LEN];
        const char *ins[2] = {first_token(x, n->in[0], c), get(x, n->in[1], LAY_TOKENS)};
        onnx_node(x->g, "Concat", ins, 2, produce(x, n->out, LAY_TOKENS), &axis1, 1);
    } else { /* STACK: token 0 of each input, + pos_layer_embed */
        char(*firsts)[NAME_LEN] = xcalloc((size_t)n->n_in, NAME_LEN);
        const char *ins[NET_MAX_IN];
        for (int i = 0; i < n->n_in; i++)
            ins[i] = first_token(x, n->in[i], firsts[i]);
        const char *out = produce(x, n->out, LAY_TOKENS);
        char cat[NAME_LEN];
        if (n->t[0] < 0) {
            onnx_node(x->g, "Concat", ins, n->n_in, out, &axis1, 1);
        } else {
            onnx_node(x->g, "Concat", ins, n->n_in, tmp(x, cat), &axis1, 1);
            node2(x, "Add", cat, tensor(x, n->t[0]), out);
        }
        free(firsts);
    }
}

static const char *op_name(net_op op)
{
    switch (op) {
    case NET_OP_CHSCALE:
        return "chscale (DMCP's channel scaling)";
    case NET_OP_SCALEADD:
        return "scaleadd (DNA's scaled residual)";
    default:
        return "unknown";
    }
}

static int emit_node(exporter *x, int i, errbuf *eb)
{
    const net_node *n = &x->m->nodes[i];
    switch (n->op) {
    case NET_OP_INPUT:
        return 0;
    case NET_OP_CONV:
        emit_conv(x, n);
        return 0;
    case NET_OP_BN:
        emit_bn(x, n);
        return 0;
    NET_OP_CASES_POINTWISE:
        emit_unary(x, n);
        return 0;
    case NET_OP_CHMUL:
        emit_chmul(x, n);
        return 0;
    case NET_OP_MAXPOOL:
    case NET_OP_AVGPOOL:
        emit_pool(x, n);
        return 0;
    case NET_OP_LINEAR:
        emit_linear(x, n);
        return 0;
    case NET_OP_LN:
        emit_layernorm(x, n);
        return 0;
    case NET_OP_ADD:
        emit_add(x, n);
        return 0;
    case NET_OP_ATTN:
        emit_attention(x, n);
        return 0;
    case NET_OP_TOKENS:
        emit_tokens(x, n);
        return 0;
    case NET_OP_SLICE:
    case NET_OP_JOIN_CLS:
    case NET_OP_STACK:
        emit_sequence(x, n);
        return 0;
    case NET_OP_DROPPATH: /* the identity in eval mode */
    case NET_OP_DROPOUT:
        memcpy(x->names[n->out], x->names[n->in[0]], sizeof x->names[0]);
        x->home[n->out] = x->home[n->in[0]];
        return 0;
    default:
        return err_set(eb, ERR_UNSUPPORTED,
                       "node %d is %s, a search-time operation with no ONNX form: export the "
                       "derived network (its architecture.json) instead",
                       i, op_name(n->op));
    }
}

int onnx_export_graph(onnx_graph *g, const net *m, int opset, errbuf *eb)
{
    if (opset < 13 || opset > 17)
        return err_set(eb, ERR_INVALID, "opset %d: kiln writes opsets 13 to 17", opset);
    const net_act *in = &m->acts[m->input], *out = &m->acts[m->output];
    if (rows_of(out) != 1)
        return err_set(eb, ERR_UNSUPPORTED,
                       "the net's output is %dx%dx%d per sample, not one vector of logits", out->H,
                       out->W, out->C);
    exporter x = {.g = g, .m = m, .opset = opset};
    x.names = xcalloc((size_t)m->n_acts, sizeof *x.names);
    x.home = xcalloc((size_t)m->n_acts, sizeof *x.home);
    x.emitted = xcalloc((size_t)m->n_tensors ? (size_t)m->n_tensors : 1, 1);
    int64_t in_dims[4] = {ONNX_DIM_BATCH, in->C, in->H, in->W};
    onnx_input(g, "input", 4, in_dims);
    snprintf(x.names[m->input][LAY_SPATIAL], NAME_LEN, "input");
    x.home[m->input] = LAY_SPATIAL;
    int rc = 0;
    for (int i = 0; i < m->n_nodes && rc == 0; i++) {
        const net_node *n = &m->nodes[i];
        if (n->live && !n->fused)
            rc = emit_node(&x, i, eb);
    }
    if (rc == 0) {
        node1(&x, "Identity", get(&x, m->output, LAY_FLAT), "logits", NULL, 0);
        int64_t out_dims[2] = {ONNX_DIM_BATCH, out->C};
        onnx_output(g, "logits", 2, out_dims);
    }
    free(x.emitted);
    free(x.home);
    free(x.names);
    return rc;
}

int onnx_export_save(const net *m, int opset, const onnx_prop *props, int n_props, const char *path,
                     errbuf *eb)
{
    onnx_graph g;
    onnx_graph_init(&g, "kiln");
    int rc = onnx_export_graph(&g, m, opset, eb);
    if (rc == 0)
        rc = onnx_model_save(&g, opset, props, n_props, path, eb);
    onnx_graph_free(&g);
    return rc;
}
