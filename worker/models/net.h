/* net.h - a network as a parameter table plus a straight-line program of kernels.
 *
 * A model builder (vit.c, resnet.c, mobilenet.c) describes a network by
 * calling net_conv, net_bn, net_linear, ... in forward order. Each call
 * appends one node to the program and registers its tensors under their
 * PyTorch state_dict names, in state_dict order. net_finalize then finds the
 * nodes that reach the output, sizes every buffer for a maximum batch and
 * makes the allocations, llm.c style:
 *   - params, grads, opt_m, opt_v: four aligned blocks of n_params floats
 *     with identical offsets, so that an optimizer step is one flat loop and
 *     a distributed step is one allreduce over `grads`;
 *   - buffers (BN running stats) and counters (num_batches_tracked);
 *   - one arena for activations and their gradients, planned by liveness
 *     (net_plan.c): buffers whose lifetimes do not overlap share memory, and
 *     cheap elementwise outputs that backward reads are recomputed there
 *     instead of being kept from the forward pass (KILN_NO_PLAN=1 gives every
 *     buffer its own memory and recomputes nothing, for comparison);
 *   - one aux arena (saved statistics, argmax indices, attention
 *     probabilities, masks) and one scratch block shared by all nodes.
 * net_forward runs the program; net_backward runs it in reverse and
 * ACCUMULATES parameter gradients into `grads` (net_zero_grad is explicit).
 *
 * net_finalize also fuses each BatchNorm with a ReLU or ReLU6 that is the
 * only reader of its output (one memory pass instead of three), and a
 * BatchNorm whose only reader is a residual add with that add and a
 * ReLU/ReLU6 that alone reads the sum (ResNet's bn2 + shortcut -> ReLU,
 * MobileNetV2's projection + shortcut); the fused program computes bit for
 * bit what the unfused one does. Set KILN_NO_FUSE=1 to compare against the
 * unfused program.
 *
 * Nodes that do not reach the output (for example the last CeiT block's
 * LeFF under an LCA head, whose output nothing reads) never run backward and
 * run forward only in training mode, where they still update their BN
 * running statistics exactly as PyTorch does.
 *
 * Activations are channels-last (see worker/nn/tensor.h). A net is not
 * thread-safe; the kernels it calls use OpenMP inside.
 */
#ifndef KILN_MODELS_NET_H
#define KILN_MODELS_NET_H

#include "common/err.h"
#include "common/rng.h"

#include <stddef.h>
#include <stdint.h>

#define NET_NAME_MAX 96
#define NET_MAX_IN   64

typedef enum { NET_PARAM = 0, NET_BUFFER, NET_COUNTER } net_kind;

typedef enum {
    NET_INIT_ZERO = 0,
    NET_INIT_ONE,
    NET_INIT_UNIFORM,      /* U(-a, a) */
    NET_INIT_TRUNC_NORMAL, /* N(0, a^2) truncated to [-2, 2], PyTorch's trunc_normal_ */
    NET_INIT_NORMAL,       /* N(0, a^2) */
} net_init_rule;

typedef struct net_tensor {
    char name[NET_NAME_MAX]; /* PyTorch state_dict key */
    int ndim;
    int shape[4];
    size_t n;   /* elements */
    size_t off; /* offset into params/grads/opt_* (PARAM), buffers (BUFFER) or counters */
    net_kind kind;
    int decay; /* weight decay applies: PARAM, ndim > 1, not pos_embed/cls_token */
    net_init_rule init;
    float init_a; /* bound or std of the init rule */
    float init_b; /* constant for buffers (running_var starts at 1) */
} net_tensor;

typedef enum {
    NET_OP_INPUT = 0,
    NET_OP_CONV,
    NET_OP_BN,
    NET_OP_RELU,
    NET_OP_RELU6,
    NET_OP_GELU,
    NET_OP_MAXPOOL,
    NET_OP_AVGPOOL, /* global: (B, H, W, C) -> (B, 1, 1, C) */
    NET_OP_LINEAR,  /* over the last dim of every row */
    NET_OP_LN,
    NET_OP_ADD,
    NET_OP_ATTN,     /* qkv (B, T, 3C) -> (B, TQ, C) */
    NET_OP_TOKENS,   /* (B, n, C) -> (B, 1+n, C): prepend cls_token, add pos_embed */
    NET_OP_SLICE,    /* tokens [start, start+count) */
    NET_OP_JOIN_CLS, /* token 0 of in[0], then all tokens of in[1] */
    NET_OP_STACK,    /* token 0 of each input, stacked, + pos_layer_embed */
    NET_OP_DROPPATH,
    NET_OP_CHSCALE,  /* multiply channel c by an external scale s[c] (DMCP) */
    NET_OP_SCALEADD, /* in[0] + q * in[1] with an external scalar q (DNA) */
    NET_OP_HSWISH,
    NET_OP_HSIGMOID,
    NET_OP_SILU,
    NET_OP_SIGMOID,
    NET_OP_CHMUL,   /* in[0] (B, H, W, C) * in[1] (B, 1, 1, C): squeeze-excitation's scale */
    NET_OP_DROPOUT, /* elementwise, training only */
    NET_OP_COUNT
} net_op;

/* The case labels of the elementwise activations (one input, out = f(in)), for the
 * switches over net_op that treat them alike: running them (net_run.c's POINTWISE
 * table) and exporting them (onnx_export.c). A new activation is added here and there. */
/* clang-format off */
#define NET_OP_CASES_POINTWISE                                                                     \
    case NET_OP_RELU: case NET_OP_RELU6: case NET_OP_GELU: case NET_OP_HSWISH:                     \
    case NET_OP_HSIGMOID: case NET_OP_SILU: case NET_OP_SIGMOID
/* clang-format on */

/* An activation: (B, H, W, C) channels-last; a token sequence has H = T, W = 1. */
typedef struct net_act {
    int H, W, C;       /* per-sample shape */
    size_t per_sample; /* H*W*C */
    size_t off;        /* forward value, into arena, sized for max_batch */
    size_t roff;       /* recomputed value for backward (recompute only), into arena */
    size_t doff;       /* gradient, into arena */
    int producer;      /* node index */
    int needs_grad;    /* a gradient must be computed for it */
    int recompute;     /* backward recomputes it at roff before node rec_at runs backward */
    int rec_at;        /* node index */
    int rec_next;      /* next activation recomputed at the same node, in act order; -1 */
} net_act;

/* One buffer of the arena plan (net_plan.c): an activation's forward value,
 * its recomputed value, or its gradient, live over program steps
 * [first, last] (forward of node i is step i, backward of node i is step
 * 2 * n_nodes - i; see net_plan.c). */
typedef enum { NET_BUF_ACT = 0, NET_BUF_REC, NET_BUF_GRAD } net_buf_kind;
typedef struct net_buf {
    int act;
    net_buf_kind kind;
    size_t floats;
    int first, last;
    int for_backward; /* backward reads it (ACT kept past the forward pass, REC, GRAD) */
    size_t off;       /* into arena */
} net_buf;

typedef struct net_node {
    net_op op;
    int live;  /* reaches the output: runs backward, and forward in eval */
    int fused; /* merged into its producer by net_finalize: never runs */
    int act;   /* BN only: nn_act_kind of a fused ReLU/ReLU6 that follows it */
    /* A BN with n_in 2 has a fused residual add: out = act(BN(in[0]) + in[1]). */
    int n_in;
    int in[NET_MAX_IN];
    int out;
    int t[5];       /* tensor ids: weight, bias, running_mean, running_var, counter; -1 none */
    size_t aux_off; /* into aux (floats), sized for max_batch */
    size_t aux_fixed, aux_per_sample;
    size_t iaux_off; /* into iaux (ints: max-pool argmax), sized for max_batch */
    size_t iaux_per_sample;
    int rec_first; /* first activation to recompute before this node's backward; -1 */
    /* attributes */
    int k, stride, pad, groups; /* conv / maxpool */
    int heads, query;           /* attention */
    int start, count;           /* slice */
    float eps, momentum;        /* bn / ln */
    float p;                    /* drop path rate */
    float *ext, *dext;          /* CHSCALE: s (C), ds (C); SCALEADD: q (1), dq (1); borrowed */
} net_node;

typedef struct net {
    /* table */
    int n_tensors, cap_tensors;
    net_tensor *tensors;
    size_t n_params, n_buffers, n_counters;
    /* program */
    int n_nodes, cap_nodes;
    net_node *nodes;
    int n_acts, cap_acts;
    net_act *acts;
    int input, output; /* act ids */
    /* memory (after net_finalize) */
    int max_batch;
    float *params, *grads, *opt_m, *opt_v; /* n_params each, same offsets */
    float *buffers;                        /* n_buffers */
    int64_t *counters;                     /* n_counters */
    float *arena, *aux_mem, *scratch;
    int *iaux_mem;
    size_t arena_floats, aux_floats, iaux_ints, scratch_floats;
    int n_bufs;    /* the arena plan */
    net_buf *bufs; /* n_bufs */
    int planned;   /* 1: buffers share memory and outputs are recomputed; 0: KILN_NO_PLAN=1 */
    unsigned char *dtouched; /* per act: gradient zeroed in this backward pass */
    /* run state */
    int training;      /* 1: batch-stat BN, drop path on */
    int batch;         /* B of the last forward */
    float bn_momentum; /* if >= 0, overrides every BN's momentum (BN recalibration) */
    rng rng;           /* drop path */
    /* profile: seconds per op kind, forward [0] and backward [1] (KILN_PROFILE=1) */
    int profile;
    double prof[NET_OP_COUNT][2];
} net;

/* ---- building ------------------------------------------------------------ */

/* Initialises an empty net (no allocation yet). */
void net_init(net *m);

/* Frees everything net_init/net_finalize allocated; leaves m empty. */
void net_deinit(net *m);

/* Registers a tensor; returns its id. The name is copied. shape has ndim
 * entries (ndim 0 = scalar). Weight decay defaults by the rule in net_tensor. */
int net_tensor_add(net *m, const char *name, net_kind kind, int ndim, const int *shape,
                   net_init_rule init, float init_a);

/* Id of the tensor called `name`, or -1. */
int net_tensor_find(const net *m, const char *name);

/* The network input (H, W, C). requires_grad: compute its gradient (module tests). */
int net_input(net *m, int H, int W, int C, int requires_grad);

/* Convolution `prefix`.weight (OC, C/groups, k, k) [+ `prefix`.bias], PyTorch init. */
int net_conv(net *m, const char *prefix, int x, int OC, int k, int stride, int pad, int groups,
             int bias);
/* BatchNorm `prefix`.{weight, bias, running_mean, running_var, num_batches_tracked}. */
int net_bn(net *m, const char *prefix, int x, float eps, float momentum);
int net_relu(net *m, int x);
int net_relu6(net *m, int x);
int net_gelu(net *m, int x);
/* torch.nn.Hardswish, Hardsigmoid, SiLU and sigmoid (worker/nn/act.h). */
int net_hswish(net *m, int x);
int net_hsigmoid(net *m, int x);
int net_silu(net *m, int x);
int net_sigmoid(net *m, int x);
/* x (B, H, W, C) times s (B, 1, 1, C), broadcast over H and W (squeeze-
 * excitation); gradients flow to both. */
int net_chmul(net *m, int x, int s);
/* torch.nn.Dropout(p): in training each element is zeroed with probability p
 * and the rest scaled by 1/(1-p); the identity in eval. 0 <= p < 1. */
int net_dropout(net *m, int x, float p);
int net_maxpool(net *m, int x, int k, int stride, int pad);
int net_avgpool(net *m, int x);
/* Linear `prefix`.weight (OUT, C) [+ bias] over every row; init: torch default
 * (uniform 1/sqrt(C)) unless init/init_a given (vit uses trunc-normal 0.02, bias 0). */
int net_linear(net *m, const char *prefix, int x, int OUT, int bias, net_init_rule init,
               float init_a);
int net_layernorm(net *m, const char *prefix, int x, float eps);
int net_add(net *m, int a, int b);
int net_attention(net *m, int qkv, int heads, int query);
int net_tokens(net *m, int x, int cls_tensor, int pos_tensor);
/* Tokens [start, start + H*W) of x as an (H, W, C) activation (a LeFF grid or a token). */
int net_slice(net *m, int x, int start, int H, int W);
int net_join_cls(net *m, int cls_src, int patches);
int net_stack(net *m, const int *xs, int n, int pos_tensor);
int net_droppath(net *m, int x, float p);
int net_chscale(net *m, int x, float *s, float *ds);
int net_scaleadd(net *m, int a, int b, float *q, float *dq);

/* Marks `out` as the output, finds live nodes and allocates every buffer for
 * batches up to max_batch. Initialises parameters from `seed`. Returns 0, or
 * ERR_NOMEM (eb says how much the model needs and how much the host has)
 * when the buffers do not fit in the memory available: nothing is allocated
 * then, and net_deinit still frees the rest. */
int net_finalize(net *m, int out, int max_batch, uint64_t seed, errbuf *eb);

/* Bytes net_finalize allocates for m (after its plan): parameters, gradients
 * and two optimizer moments, buffers, the activation arena, aux and scratch. */
size_t net_memory_bytes(const net *m);

/* Re-draws every parameter and resets every buffer from `seed`. */
void net_init_params(net *m, uint64_t seed);

/* ---- running ------------------------------------------------------------- */

/* Sets training (1) or eval (0) mode. */
void net_set_training(net *m, int training);

/* Runs the forward pass on x (B, H, W, C), B <= max_batch. */
void net_forward(net *m, const float *x, int B);

/* The output activation of the last forward pass: (B, per_sample floats). */
float *net_out(const net *m);
size_t net_out_size(const net *m); /* per sample */

/* Backward from dout (B, out per-sample) for the last forward pass;
 * accumulates into m->grads (and into the input's gradient if required). */
void net_backward(net *m, const float *dout);

/* Memory of an activation and of its gradient, for the last pass. Buffers
 * share memory by liveness: after a pass only the output's value and the
 * gradient of an input that asked for one are still there. */
float *net_act_data(const net *m, int act);
float *net_act_grad(const net *m, int act);

void net_zero_grad(net *m);

/* Pointer to a tensor's data (params, buffers) and, for params, its gradient. */
float *net_tensor_data(const net *m, int id);
float *net_tensor_grad(const net *m, int id);

/* Prints the time spent per op kind since finalize (KILN_PROFILE=1 enables
 * it), then the memory table of net_plan_print. */
void net_profile_print(const net *m, void *file);

/* The name of an op ("conv", "batchnorm", ...). */
const char *net_op_name(net_op op);

/* ---- memory plan (net_plan.c) --------------------------------------------- */

/* Decides which activations backward recomputes, builds the buffer table
 * m->bufs and places every buffer in the arena by first fit over offsets
 * among buffers whose lifetimes overlap; sets acts[].off/roff/doff and
 * m->arena_floats. planned = 0 gives every buffer its own memory and
 * recomputes nothing. Called by net_finalize after liveness. */
void net_plan(net *m, int planned);

/* Prints the arena plan, one row per buffer (activation, size, first and
 * last step, whether backward needs it, offset), and the totals. */
void net_plan_print(const net *m, void *file);

/* Multiply-accumulates of a forward pass per sample, counted from the program
 * (same rule as common/modelcfg.h). */
double net_macs(const net *m);

#endif
