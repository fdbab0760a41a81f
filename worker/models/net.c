/* net.c - building a net: the tensor table, the node program, liveness and
 * memory planning, parameter initialisation (see net.h). The forward and
 * backward interpreters live in net_run.c.
 */
#include "worker/models/net.h"

#include "common/check.h"
#include "common/meminfo.h"
#include "common/xalloc.h"
#include "worker/nn/attention.h"
#include "worker/nn/conv.h"
#include "worker/nn/norm.h"
#include "worker/nn/pooling.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Building a net checks its shapes in every build mode: a model builder
 * asking for an impossible shape is a bug, and it is cheap to catch here. */
void net_init(net *m)
{
    memset(m, 0, sizeof *m);
    m->input = -1;
    m->output = -1;
    m->bn_momentum = -1.0f;
    m->training = 1;
}

void net_deinit(net *m)
{
    free(m->tensors);
    free(m->nodes);
    free(m->acts);
    free(m->params);
    free(m->grads);
    free(m->opt_m);
    free(m->opt_v);
    free(m->buffers);
    free(m->counters);
    free(m->arena);
    free(m->bufs);
    free(m->aux_mem);
    free(m->iaux_mem);
    free(m->scratch);
    free(m->dtouched);
    memset(m, 0, sizeof *m);
}

/* ---- tensors --------------------------------------------------------------- */

static int default_decay(const char *name, net_kind kind, int ndim)
{
    if (kind != NET_PARAM || ndim <= 1)
        return 0;
    return strcmp(name, "pos_embed") != 0 && strcmp(name, "cls_token") != 0;
}

int net_tensor_add(net *m, const char *name, net_kind kind, int ndim, const int *shape,
                   net_init_rule init, float init_a)
{
    KILN_CHECK(strlen(name) < NET_NAME_MAX);
    KILN_CHECK(ndim >= 0 && ndim <= 4);
    KILN_CHECK(net_tensor_find(m, name) < 0);
    if (m->n_tensors == m->cap_tensors) {
        m->cap_tensors = m->cap_tensors ? 2 * m->cap_tensors : 64;
        m->tensors = xrealloc(m->tensors, (size_t)m->cap_tensors * sizeof(net_tensor));
    }
    net_tensor *t = &m->tensors[m->n_tensors];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->n = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->n *= (size_t)shape[i];
    }
    t->kind = kind;
    t->init = init;
    t->init_a = init_a;
    t->decay = default_decay(name, kind, ndim);
    switch (kind) {
    case NET_PARAM:
        t->off = m->n_params;
        m->n_params += t->n;
        break;
    case NET_BUFFER:
        t->off = m->n_buffers;
        m->n_buffers += t->n;
        break;
    case NET_COUNTER:
        t->off = m->n_counters;
        m->n_counters += t->n;
        break;
    }
    return m->n_tensors++;
}

int net_tensor_find(const net *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return i;
    return -1;
}

static int add_param(net *m, const char *prefix, const char *leaf, int ndim, const int *shape,
                     net_init_rule init, float a)
{
    char name[NET_NAME_MAX];
    if (prefix[0] != '\0')
        snprintf(name, sizeof name, "%s.%s", prefix, leaf);
    else
        snprintf(name, sizeof name, "%s", leaf);
    return net_tensor_add(m, name, NET_PARAM, ndim, shape, init, a);
}

static int add_buffer(net *m, const char *prefix, const char *leaf, net_kind kind, int ndim,
                      const int *shape, net_init_rule init)
{
    char name[NET_NAME_MAX];
    if (prefix[0] != '\0')
        snprintf(name, sizeof name, "%s.%s", prefix, leaf);
    else
        snprintf(name, sizeof name, "%s", leaf);
    return net_tensor_add(m, name, kind, ndim, shape, init, 0.0f);
}

/* ---- program --------------------------------------------------------------- */

static int new_act(net *m, int H, int W, int C, int producer)
{
    if (m->n_acts == m->cap_acts) {
        m->cap_acts = m->cap_acts ? 2 * m->cap_acts : 64;
        m->acts = xrealloc(m->acts, (size_t)m->cap_acts * sizeof(net_act));
    }
    net_act *a = &m->acts[m->n_acts];
    memset(a, 0, sizeof *a);
    a->H = H;
    a->W = W;
    a->C = C;
    a->per_sample = (size_t)H * W * C;
    a->producer = producer;
    return m->n_acts++;
}

/* Appends a node with inputs xs and a fresh output (H, W, C); returns the node index. */
static int new_node(net *m, net_op op, const int *xs, int n_in, int H, int W, int C)
{
    KILN_CHECK(n_in >= 0 && n_in <= NET_MAX_IN);
    if (m->n_nodes == m->cap_nodes) {
        m->cap_nodes = m->cap_nodes ? 2 * m->cap_nodes : 64;
        m->nodes = xrealloc(m->nodes, (size_t)m->cap_nodes * sizeof(net_node));
    }
    int id = m->n_nodes++;
    net_node *n = &m->nodes[id];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        KILN_CHECK(xs[i] >= 0 && xs[i] < m->n_acts);
        n->in[i] = xs[i];
    }
    for (int i = 0; i < 5; i++)
        n->t[i] = -1;
    n->query = NN_ATTN_ALL_QUERIES;
    n->out = new_act(m, H, W, C, id);
    return id;
}

/* The activation x. The pointer is valid until the next new_node (which may
 * move m->acts): the builders below copy what they read first. */
static const net_act *act(const net *m, int x)
{
    KILN_CHECK(x >= 0 && x < m->n_acts);
    return &m->acts[x];
}

int net_input(net *m, int H, int W, int C, int requires_grad)
{
    KILN_CHECK(m->input < 0);
    int id = new_node(m, NET_OP_INPUT, NULL, 0, H, W, C);
    m->input = m->nodes[id].out;
    m->acts[m->input].needs_grad = requires_grad;
    return m->input;
}

int net_conv(net *m, const char *prefix, int x, int OC, int k, int stride, int pad, int groups,
             int bias)
{
    const net_act a_ = *act(m, x), *a = &a_; /* new_node may move m->acts */
    KILN_CHECK(groups >= 1 && a->C % groups == 0 && OC % groups == 0);
    int Ho = (a->H + 2 * pad - k) / stride + 1, Wo = (a->W + 2 * pad - k) / stride + 1;
    KILN_CHECK(Ho >= 1 && Wo >= 1);
    int fan_in = a->C / groups * k * k;
    float bound = 1.0f / sqrtf((float)fan_in);
    int id = new_node(m, NET_OP_CONV, &x, 1, Ho, Wo, OC);
    net_node *n = &m->nodes[id];
    n->k = k;
    n->stride = stride;
    n->pad = pad;
    n->groups = groups;
    int ws[4] = {OC, a->C / groups, k, k};
    n->t[0] = add_param(m, prefix, "weight", 4, ws, NET_INIT_UNIFORM, bound);
    if (bias)
        n->t[1] = add_param(m, prefix, "bias", 1, &OC, NET_INIT_UNIFORM, bound);
    return n->out;
}

int net_bn(net *m, const char *prefix, int x, float eps, float momentum)
{
    const net_act a_ = *act(m, x), *a = &a_; /* new_node may move m->acts */
    int C = a->C;
    int id = new_node(m, NET_OP_BN, &x, 1, a->H, a->W, C);
    net_node *n = &m->nodes[id];
    n->eps = eps;
    n->momentum = momentum;
    n->t[0] = add_param(m, prefix, "weight", 1, &C, NET_INIT_ONE, 0);
    n->t[1] = add_param(m, prefix, "bias", 1, &C, NET_INIT_ZERO, 0);
    n->t[2] = add_buffer(m, prefix, "running_mean", NET_BUFFER, 1, &C, NET_INIT_ZERO);
    n->t[3] = add_buffer(m, prefix, "running_var", NET_BUFFER, 1, &C, NET_INIT_ONE);
    n->t[4] = add_buffer(m, prefix, "num_batches_tracked", NET_COUNTER, 0, NULL, NET_INIT_ZERO);
    n->aux_fixed = 4 * (size_t)C; /* mean, rstd, and the output pass's constants */
    return n->out;
}

static int unary(net *m, net_op op, int x)
{
    const net_act a_ = *act(m, x), *a = &a_; /* new_node may move m->acts */
    int id = new_node(m, op, &x, 1, a->H, a->W, a->C);
    return m->nodes[id].out; /* not m->nodes[new_node()]: it may move m->nodes */
}

int net_relu(net *m, int x)
{
    return unary(m, NET_OP_RELU, x);
}

int net_relu6(net *m, int x)
{
    return unary(m, NET_OP_RELU6, x);
}

int net_gelu(net *m, int x)
{
    return unary(m, NET_OP_GELU, x);
}

int net_hswish(net *m, int x)
{
    return unary(m, NET_OP_HSWISH, x);
}

int net_hsigmoid(net *m, int x)
{
    return unary(m, NET_OP_HSIGMOID, x);
}

int net_silu(net *m, int x)
{
    return unary(m, NET_OP_SILU, x);
}

int net_sigmoid(net *m, int x)
{
    return unary(m, NET_OP_SIGMOID, x);
}

int net_chmul(net *m, int x, int s)
{
    const net_act x_ = *act(m, x), s_ = *act(m, s), *a = &x_, *b = &s_;
    KILN_CHECK(b->H == 1 && b->W == 1 && b->C == a->C);
    int xs[2] = {x, s};
    int id = new_node(m, NET_OP_CHMUL, xs, 2, a->H, a->W, a->C);
    return m->nodes[id].out;
}

int net_dropout(net *m, int x, float p)
{
    KILN_CHECK(p >= 0.0f && p < 1.0f);
    int out = unary(m, NET_OP_DROPOUT, x);
    net_node *n = &m->nodes[m->n_nodes - 1];
    n->p = p;
    n->aux_per_sample = m->acts[out].per_sample; /* the mask */
    return out;
}

int net_maxpool(net *m, int x, int k, int stride, int pad)
{
    const net_act a_ = *act(m, x), *a = &a_; /* new_node may move m->acts */
    int Ho = nn_maxpool_out_size(a->H, k, stride, pad);
    int Wo = nn_maxpool_out_size(a->W, k, stride, pad);
    int id = new_node(m, NET_OP_MAXPOOL, &x, 1, Ho, Wo, a->C);
    net_node *n = &m->nodes[id];
    n->k = k;
    n->stride = stride;
    n->pad = pad;
    n->iaux_per_sample = (size_t)Ho * Wo * a->C; /* argmax indices */
    return n->out;
}

int net_avgpool(net *m, int x)
{
    const net_act a_ = *act(m, x), *a = &a_; /* new_node may move m->acts */
    int id = new_node(m, NET_OP_AVGPOOL, &x, 1, 1, 1, a->C);
    return m->nodes[id].out; /* not m->nodes[new_node()]: it may move m->nodes */
}

int net_linear(net *m, const char *prefix, int x, int OUT, int bias, net_init_rule init,
               float init_a)
{
    const net_act a_ = *act(m, x), *a = &a_; /* new_node may move m->acts */
    int id = new_node(m, NET_OP_LINEAR, &x, 1, a->H, a->W, OUT);
    net_node *n = &m->nodes[id];
    int ws[2] = {OUT, a->C};
    if (init == NET_INIT_UNIFORM && init_a <= 0) {
        float bound = 1.0f / sqrtf((float)a->C);
        n->t[0] = add_param(m, prefix, "weight", 2, ws, NET_INIT_UNIFORM, bound);
        if (bias)
            n->t[1] = add_param(m, prefix, "bias", 1, &OUT, NET_INIT_UNIFORM, bound);
    } else {
        n->t[0] = add_param(m, prefix, "weight", 2, ws, init, init_a);
        if (bias)
            n->t[1] = add_param(m, prefix, "bias", 1, &OUT, NET_INIT_ZERO, 0);
    }
    return n->out;
}

int net_layernorm(net *m, const char *prefix, int x, float eps)
{
    const net_act a_ = *act(m, x), *a = &a_; /* new_node may move m->acts */
    int C = a->C;
    int id = new_node(m, NET_OP_LN, &x, 1, a->H, a->W, C);
    net_node *n = &m->nodes[id];
    n->eps = eps;
    n->t[0] = add_param(m, prefix, "weight", 1, &C, NET_INIT_ONE, 0);
    n->t[1] = add_param(m, prefix, "bias", 1, &C, NET_INIT_ZERO, 0);
    n->aux_per_sample = 2 * (size_t)a->H * a->W; /* mean, rstd per row */
    return n->out;
}

int net_add(net *m, int a, int b)
{
    const net_act x_ = *act(m, a), y_ = *act(m, b), *x = &x_, *y = &y_;
    KILN_CHECK(x->per_sample == y->per_sample && x->C == y->C);
    int xs[2] = {a, b};
    int id = new_node(m, NET_OP_ADD, xs, 2, x->H, x->W, x->C);
    return m->nodes[id].out; /* not m->nodes[new_node()]: it may move m->nodes */
}

int net_attention(net *m, int qkv, int heads, int query)
{
    const net_act a_ = *act(m, qkv), *a = &a_;
    int T = a->H * a->W, C = a->C / 3;
    KILN_CHECK(a->C % 3 == 0 && C % heads == 0);
    KILN_CHECK(query == NN_ATTN_ALL_QUERIES || (query >= 0 && query < T));
    int TQ = nn_attention_queries(T, query);
    int id = new_node(m, NET_OP_ATTN, &qkv, 1, TQ, 1, C);
    net_node *n = &m->nodes[id];
    n->heads = heads;
    n->query = query;
    n->aux_per_sample = (size_t)heads * TQ * T;
    return n->out;
}

int net_tokens(net *m, int x, int cls_tensor, int pos_tensor)
{
    const net_act a_ = *act(m, x), *a = &a_; /* new_node may move m->acts */
    int T = 1 + a->H * a->W;
    KILN_CHECK(m->tensors[cls_tensor].n == (size_t)a->C);
    KILN_CHECK(m->tensors[pos_tensor].n == (size_t)T * a->C);
    int id = new_node(m, NET_OP_TOKENS, &x, 1, T, 1, a->C);
    m->nodes[id].t[0] = cls_tensor;
    m->nodes[id].t[1] = pos_tensor;
    return m->nodes[id].out;
}

int net_slice(net *m, int x, int start, int H, int W)
{
    const net_act a_ = *act(m, x), *a = &a_; /* new_node may move m->acts */
    int T = a->H * a->W;
    KILN_CHECK(start >= 0 && H >= 1 && W >= 1 && start + H * W <= T);
    int id = new_node(m, NET_OP_SLICE, &x, 1, H, W, a->C);
    m->nodes[id].start = start;
    m->nodes[id].count = H * W;
    return m->nodes[id].out;
}

int net_join_cls(net *m, int cls_src, int patches)
{
    const net_act c_ = *act(m, cls_src), p_ = *act(m, patches), *c = &c_, *p = &p_;
    KILN_CHECK(c->C == p->C);
    int xs[2] = {cls_src, patches};
    int id = new_node(m, NET_OP_JOIN_CLS, xs, 2, 1 + p->H * p->W, 1, p->C);
    return m->nodes[id].out; /* not m->nodes[new_node()]: it may move m->nodes */
}

int net_stack(net *m, const int *xs, int n_in, int pos_tensor)
{
    KILN_CHECK(n_in >= 1 && n_in <= NET_MAX_IN);
    int C = act(m, xs[0])->C;
    for (int i = 1; i < n_in; i++)
        KILN_CHECK(act(m, xs[i])->C == C);
    int id = new_node(m, NET_OP_STACK, xs, n_in, n_in, 1, C);
    if (pos_tensor >= 0)
        KILN_CHECK(m->tensors[pos_tensor].n == (size_t)n_in * C);
    m->nodes[id].t[0] = pos_tensor;
    return m->nodes[id].out;
}

int net_droppath(net *m, int x, float p)
{
    int out = unary(m, NET_OP_DROPPATH, x);
    net_node *n = &m->nodes[m->n_nodes - 1];
    n->p = p;
    n->aux_per_sample = 1;
    return out;
}

int net_chscale(net *m, int x, float *s, float *ds)
{
    int out = unary(m, NET_OP_CHSCALE, x);
    net_node *n = &m->nodes[m->n_nodes - 1];
    n->ext = s;
    n->dext = ds;
    return out;
}

int net_scaleadd(net *m, int a, int b, float *q, float *dq)
{
    const net_act x_ = *act(m, a), y_ = *act(m, b), *x = &x_, *y = &y_;
    KILN_CHECK(x->per_sample == y->per_sample && x->C == y->C);
    int xs[2] = {a, b};
    int id = new_node(m, NET_OP_SCALEADD, xs, 2, x->H, x->W, x->C);
    m->nodes[id].ext = q;
    m->nodes[id].dext = dq;
    return m->nodes[id].out;
}

/* ---- finalising -------------------------------------------------------------- */

static size_t round16(size_t n)
{
    return (n + 15) / 16 * 16;
}

static size_t node_scratch(const net *m, const net_node *n, int B)
{
    if (n->n_in == 0)
        return 0;
    const net_act *x = &m->acts[n->in[0]];
    const net_act *y = &m->acts[n->out];
    if (n->op == NET_OP_CONV) {
        nn_conv2d_dims d;
        nn_conv2d_dims_init(&d, B, x->H, x->W, x->C, y->C, n->k, n->stride, n->pad, n->groups);
        return nn_conv2d_scratch_floats(&d);
    }
    if (n->op == NET_OP_ATTN)
        return nn_attention_scratch_floats(B, x->H * x->W, y->C, n->heads, n->query);
    return 0;
}

/* The number of nodes reading each activation (the output counts as one more). */
static int *count_readers(const net *m)
{
    int *readers = xcalloc((size_t)m->n_acts, sizeof(int));
    for (int i = 0; i < m->n_nodes; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++)
            readers[m->nodes[i].in[j]]++;
    readers[m->output]++;
    return readers;
}

/* Merges a ReLU/ReLU6 into the BatchNorm before it when the BN output has no
 * other reader: the BN node then writes the activation's output itself, and
 * the BN output activation is left without memory. */
static void fuse_bn_act(net *m)
{
    int *readers = count_readers(m);
    for (int i = 0; i < m->n_nodes; i++) {
        net_node *n = &m->nodes[i];
        if (n->op != NET_OP_RELU && n->op != NET_OP_RELU6)
            continue;
        int a = n->in[0];
        net_node *bn = &m->nodes[m->acts[a].producer];
        if (bn->op != NET_OP_BN || readers[a] != 1 || bn->act != NN_ACT_NONE)
            continue;
        bn->act = n->op == NET_OP_RELU ? NN_ACT_RELU : NN_ACT_RELU6;
        bn->out = n->out;
        m->acts[n->out].producer = (int)(bn - m->nodes);
        m->acts[a].per_sample = 0;
        n->fused = 1;
        n->n_in = 0;
    }
    free(readers);
}

/* The input of add node `add` that a plain BatchNorm alone produces and reads nowhere
 * else (index 1 or 0 into add->in), or -1. */
static int fusable_bn_input(const net *m, const net_node *add, const int *readers)
{
    if (add->in[0] == add->in[1])
        return -1;
    for (int k = 1; k >= 0; k--) {
        int a = add->in[k];
        const net_node *bn = &m->nodes[m->acts[a].producer];
        if (bn->op == NET_OP_BN && bn->n_in == 1 && bn->act == NN_ACT_NONE && readers[a] == 1)
            return k;
    }
    return -1;
}

/* Merges BatchNorm -> residual add [-> ReLU/ReLU6] into one node when the BN output and
 * the sum have no other reader: the BN node moves to the add's place in the program (so
 * that both of the sum's inputs exist when it runs, and its gradients accumulate in the
 * same order), takes the add's other input as its residual (in[1]) and writes the last
 * output of the chain; the add, and the activation, stay behind as fused nodes. */
static void fuse_bn_add_act(net *m)
{
    int *readers = count_readers(m);
    int *reader_of = xcalloc((size_t)m->n_acts, sizeof(int)); /* one reading node */
    for (int i = 0; i < m->n_nodes; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++)
            reader_of[m->nodes[i].in[j]] = i;
    for (int i = 0; i < m->n_nodes; i++) {
        net_node *add = &m->nodes[i];
        if (add->op != NET_OP_ADD || add->fused)
            continue;
        int k = fusable_bn_input(m, add, readers);
        if (k < 0)
            continue;
        int a = add->in[k], res = add->in[1 - k], sum = add->out;
        int b = m->acts[a].producer;
        net_node bn = m->nodes[b];
        bn.in[1] = res;
        bn.n_in = 2;
        bn.out = sum;
        net_node *act = &m->nodes[reader_of[sum]];
        if (readers[sum] == 1 && (act->op == NET_OP_RELU || act->op == NET_OP_RELU6)) {
            bn.act = act->op == NET_OP_RELU ? NN_ACT_RELU : NN_ACT_RELU6;
            bn.out = act->out;
            m->acts[act->out].producer = i;
            m->acts[sum].per_sample = 0;
            act->fused = 1;
            act->n_in = 0;
        }
        /* the add's slot runs the BN; the BN's slot keeps the (never run) add */
        m->nodes[b] = *add;
        m->nodes[b].fused = 1;
        m->nodes[b].n_in = 0;
        m->nodes[i] = bn;
        m->acts[a].per_sample = 0;
        m->acts[a].producer = i;
        m->acts[sum].producer = i;
    }
    free(reader_of);
    free(readers);
}

size_t net_memory_bytes(const net *m)
{
    size_t np = m->n_params ? m->n_params : 1;
    return 4 * np * sizeof(float) + (m->n_buffers + 1) * sizeof(float) +
           (m->n_counters + 1) * sizeof(int64_t) +
           (m->arena_floats + m->aux_floats + m->scratch_floats + 3) * sizeof(float) +
           (m->iaux_ints + 1) * sizeof(int) + (size_t)m->n_acts;
}

/* The large blocks, sized by the plan: checked against the memory this host
 * has available, then allocated on the try path, so that a model too large
 * for the host is the job's failure (ERR_NOMEM) and not the process's. */
static int net_alloc(net *m, errbuf *eb)
{
    size_t need = net_memory_bytes(m);
    int64_t avail = meminfo_available_bytes();
    char a[32], b[32];
    if (avail > 0 && need > (size_t)avail)
        return err_set(eb, ERR_NOMEM,
                       "out of memory: the model needs %s per rank (%zu parameters, activations "
                       "for a batch of %d per rank), this host has %s available",
                       meminfo_format((int64_t)need, a, sizeof a), m->n_params, m->max_batch,
                       meminfo_format(avail, b, sizeof b));
    size_t np = m->n_params ? m->n_params : 1;
    float **blocks[] = {&m->params,  &m->grads, &m->opt_m,   &m->opt_v,
                        &m->buffers, &m->arena, &m->aux_mem, &m->scratch};
    size_t floats[] = {
        np, np, np, np, m->n_buffers, m->arena_floats, m->aux_floats, m->scratch_floats};
    int ok = 1;
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        *blocks[i] = xtry_aligned((floats[i] ? floats[i] : 1) * sizeof(float));
        ok &= *blocks[i] != NULL;
    }
    m->iaux_mem = xtry_aligned((m->iaux_ints ? m->iaux_ints : 1) * sizeof(int));
    ok &= m->iaux_mem != NULL;
    if (!ok) {
        for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
            free(*blocks[i]);
            *blocks[i] = NULL;
        }
        free(m->iaux_mem);
        m->iaux_mem = NULL;
        return err_set(eb, ERR_NOMEM,
                       "out of memory: cannot allocate the %s the model needs per rank (%zu "
                       "parameters, activations for a batch of %d per rank)",
                       meminfo_format((int64_t)need, a, sizeof a), m->n_params, m->max_batch);
    }
    memset(m->grads, 0, np * sizeof(float));
    memset(m->opt_m, 0, np * sizeof(float));
    memset(m->opt_v, 0, np * sizeof(float));
    m->counters = xcalloc(m->n_counters ? m->n_counters : 1, sizeof(int64_t));
    return 0;
}

int net_finalize(net *m, int out, int max_batch, uint64_t seed, errbuf *eb)
{
    int rc;
    KILN_CHECK(m->input >= 0 && out >= 0 && out < m->n_acts && max_batch >= 1);
    m->output = out;
    m->max_batch = max_batch;
    const char *no_fuse = getenv("KILN_NO_FUSE");
    if (no_fuse == NULL || no_fuse[0] != '1') {
        fuse_bn_act(m);
        fuse_bn_add_act(m);
    }
    /* Liveness: nodes whose output reaches `out`, walking inputs backwards. */
    unsigned char *reach = xcalloc((size_t)m->n_acts, 1);
    reach[out] = 1;
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        net_node *n = &m->nodes[i];
        if (n->fused)
            continue;
        n->live = reach[n->out];
        if (n->live)
            for (int j = 0; j < n->n_in; j++)
                reach[n->in[j]] = 1;
    }
    free(reach);
    /* Gradients: every live activation except an input that does not ask for one. */
    for (int i = 0; i < m->n_acts; i++) {
        net_act *a = &m->acts[i];
        if (m->nodes[a->producer].op != NET_OP_INPUT)
            a->needs_grad = m->nodes[a->producer].live;
    }
    /* Memory plan. */
    const char *noplan = getenv("KILN_NO_PLAN");
    net_plan(m, !(noplan != NULL && noplan[0] == '1'));
    size_t aux_floats = 0, iaux_ints = 0, scratch = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        net_node *n = &m->nodes[i];
        n->aux_off = aux_floats;
        aux_floats += round16(n->aux_fixed + n->aux_per_sample * (size_t)max_batch);
        n->iaux_off = iaux_ints;
        iaux_ints += round16(n->iaux_per_sample * (size_t)max_batch);
        size_t s = node_scratch(m, n, max_batch);
        if (s > scratch)
            scratch = s;
    }
    m->aux_floats = aux_floats;
    m->iaux_ints = iaux_ints;
    m->scratch_floats = scratch;
    if ((rc = net_alloc(m, eb)) != 0)
        return rc;
    m->dtouched = xcalloc((size_t)m->n_acts, 1);
    const char *prof = getenv("KILN_PROFILE");
    m->profile = prof != NULL && prof[0] == '1';
    net_init_params(m, seed);
    return 0;
}

void net_init_params(net *m, uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const net_tensor *t = &m->tensors[i];
        if (t->kind == NET_COUNTER) {
            for (size_t j = 0; j < t->n; j++)
                m->counters[t->off + j] = 0;
            continue;
        }
        float *p = t->kind == NET_PARAM ? m->params + t->off : m->buffers + t->off;
        for (size_t j = 0; j < t->n; j++) {
            switch (t->init) {
            case NET_INIT_ZERO:
                p[j] = 0.0f;
                break;
            case NET_INIT_ONE:
                p[j] = 1.0f;
                break;
            case NET_INIT_UNIFORM:
                p[j] = t->init_a * (2.0f * rng_uniform(&r) - 1.0f);
                break;
            case NET_INIT_TRUNC_NORMAL:
                p[j] = rng_trunc_normal(&r, t->init_a, -2.0f, 2.0f);
                break;
            case NET_INIT_NORMAL:
                p[j] = t->init_a * rng_normal(&r);
                break;
            }
        }
    }
    rng_derive(&m->rng, seed, 0x64726f70ULL, 0); /* drop-path stream */
}

/* ---- accessors ----------------------------------------------------------------- */

float *net_tensor_data(const net *m, int id)
{
    const net_tensor *t = &m->tensors[id];
    KILN_CHECK(t->kind != NET_COUNTER);
    return t->kind == NET_PARAM ? m->params + t->off : m->buffers + t->off;
}

float *net_tensor_grad(const net *m, int id)
{
    const net_tensor *t = &m->tensors[id];
    KILN_CHECK(t->kind == NET_PARAM);
    return m->grads + t->off;
}

void net_zero_grad(net *m)
{
    memset(m->grads, 0, (m->n_params ? m->n_params : 1) * sizeof(float));
}

void net_set_training(net *m, int training)
{
    m->training = training;
}

float *net_act_data(const net *m, int x)
{
    return m->arena + m->acts[x].off;
}

float *net_act_grad(const net *m, int x)
{
    return m->arena + m->acts[x].doff;
}

float *net_out(const net *m)
{
    return net_act_data(m, m->output);
}

size_t net_out_size(const net *m)
{
    return m->acts[m->output].per_sample;
}

double net_macs(const net *m)
{
    double macs = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const net_node *n = &m->nodes[i];
        if (!n->live || n->n_in == 0)
            continue;
        const net_act *x = &m->acts[n->in[0]], *y = &m->acts[n->out];
        int has_bias = n->t[1] >= 0;
        switch (n->op) {
        case NET_OP_CONV:
            macs += ((double)n->k * n->k * x->C / n->groups + has_bias) * y->H * y->W * y->C;
            break;
        case NET_OP_LINEAR:
            macs += ((double)x->C + has_bias) * y->C * y->H * y->W;
            break;
        case NET_OP_ATTN: {
            int T = x->H * x->W, TQ = y->H * y->W;
            macs += 2.0 * TQ * T * y->C;
            break;
        }
        default:
            break;
        }
    }
    return macs;
}
