/* net_plan.c - the memory plan of a net's activations and gradients (see net.h).
 *
 * Time is counted in program steps: the forward of node i is step i, the
 * seeding of the output's gradient is step N (N = n_nodes), the backward of
 * node i is step 2N - i, and step 2N + 1 stands for "after the pass" (the
 * output's value and a requested input gradient are read by the caller).
 * Every buffer is live over an inclusive interval of steps; two buffers may
 * share memory only if their intervals are disjoint, so a node never writes
 * a buffer that it or a later step still reads.
 *
 *   - An activation's forward value lives from its producer to its last
 *     forward reader, and on to the last backward step that reads it (a
 *     conv, linear, BN, LN, GELU, h-swish, h-sigmoid, SiLU, sigmoid or
 *     attention reads its input, a channel multiply both; ReLU, ReLU6 and a
 *     BN with a fused activation read their output).
 *   - The output of a live BN, LN, GELU, h-swish, SiLU, slice or attention whose input is
 *     there in backward anyway is not kept for backward: it is recomputed,
 *     bit for bit, just before the first backward step that reads it, into
 *     a buffer (kind REC) that lives only until its last backward reader.
 *     Where BN and ReLU are fused only the BN input stays across the pass.
 *   - A gradient lives from the backward of its last consumer (where it is
 *     zeroed on first touch) to the backward of its producer.
 *
 * Buffers are placed largest first, each at the lowest offset where it
 * overlaps no placed buffer whose interval meets its own.
 */
#include "common/xalloc.h"
#include "worker/models/net.h"
#include "worker/nn/norm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t round16(size_t n)
{
    return (n + 15) / 16 * 16;
}

/* Does node n's backward read the value of its input j? */
static int bwd_reads_input(const net_node *n, int j)
{
    switch (n->op) {
    case NET_OP_CONV:
    case NET_OP_BN:
    case NET_OP_GELU:
    case NET_OP_LINEAR:
    case NET_OP_LN:
    case NET_OP_ATTN:
    case NET_OP_CHSCALE:
    case NET_OP_HSWISH:
    case NET_OP_HSIGMOID:
    case NET_OP_SILU:
    case NET_OP_SIGMOID:
        return j == 0;
    case NET_OP_CHMUL:
        return 1;
    case NET_OP_SCALEADD:
        return j == 1;
    default:
        return 0;
    }
}

/* Does node n's backward read the value of its output? */
static int bwd_reads_output(const net_node *n)
{
    return n->op == NET_OP_RELU || n->op == NET_OP_RELU6 ||
           (n->op == NET_OP_BN && n->act != NN_ACT_NONE);
}

/* Readers of activation a: the last forward step that reads it, and the
 * lowest and highest node index whose backward reads it (-1 if none). */
typedef struct act_use {
    int fwd_last;
    int bwd_lo, bwd_hi;
    int grad_hi; /* highest live consumer (its backward first touches the gradient), -1 none */
} act_use;

static void find_uses(const net *m, act_use *u)
{
    for (int a = 0; a < m->n_acts; a++) {
        int p = m->acts[a].producer;
        u[a].fwd_last = p;
        u[a].bwd_lo = u[a].bwd_hi = u[a].grad_hi = -1;
        if (m->nodes[p].live && bwd_reads_output(&m->nodes[p]))
            u[a].bwd_lo = u[a].bwd_hi = p;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const net_node *n = &m->nodes[i];
        if (n->fused)
            continue;
        for (int j = 0; j < n->n_in; j++) {
            act_use *x = &u[n->in[j]];
            x->fwd_last = i > x->fwd_last ? i : x->fwd_last;
            if (!n->live)
                continue;
            x->grad_hi = i > x->grad_hi ? i : x->grad_hi;
            if (bwd_reads_input(n, j)) {
                x->bwd_lo = x->bwd_lo < 0 || i < x->bwd_lo ? i : x->bwd_lo;
                x->bwd_hi = i > x->bwd_hi ? i : x->bwd_hi;
            }
        }
    }
}

/* Is op a cheap op whose output backward can recompute exactly from its
 * input and what the forward pass saved (statistics; attention: the
 * probabilities, so only the product with v is redone)? */
static int recomputable_op(net_op op)
{
    return op == NET_OP_BN || op == NET_OP_GELU || op == NET_OP_LN || op == NET_OP_SLICE ||
           op == NET_OP_ATTN || op == NET_OP_HSWISH || op == NET_OP_SILU;
}

static void add_buf(net *m, int a, net_buf_kind kind, int first, int last, int for_backward)
{
    net_buf *b = &m->bufs[m->n_bufs++];
    b->act = a;
    b->kind = kind;
    b->floats = round16(m->acts[a].per_sample * (size_t)m->max_batch);
    b->first = first;
    b->last = last;
    b->for_backward = for_backward;
    b->off = 0;
}

/* Which activations backward recomputes, and when they must exist there:
 * rec[a] = 1 for those, with their backward interval [rfirst[a], rlast[a]]
 * (rfirst > rlast: nothing reads it). A recomputed output may itself be the
 * input of another recomputation (BN -> GELU, LN -> slice): its interval
 * then starts where that one is recomputed. klast[a] is the last backward
 * step that reads a kept activation, -1 if none. */
static void decide_recompute(const net *m, const act_use *u, int planned, int *rec, int *rfirst,
                             int *rlast, int *klast)
{
    int N = m->n_nodes;
    for (int a = 0; a < m->n_acts; a++) {
        const net_node *p = &m->nodes[m->acts[a].producer];
        int has = u[a].bwd_hi >= 0;
        rfirst[a] = has ? 2 * N - u[a].bwd_hi : 2 * N + 2;
        rlast[a] = has ? 2 * N - u[a].bwd_lo : -1;
        klast[a] = -1;
        rec[a] = 0;
        /* a BN with a fused residual add would need that input again too: kept */
        if (!planned || !p->live || a == m->output || m->acts[a].per_sample == 0 ||
            !recomputable_op(p->op) || p->n_in > 1)
            continue;
        int src = p->in[0];
        rec[a] = rec[src] || u[src].bwd_hi >= 0; /* the input is there in backward */
    }
    /* dependants come after their inputs: walk backwards so that an output's
     * interval is final before it extends its input's */
    for (int a = m->n_acts - 1; a >= 0; a--) {
        if (!rec[a]) {
            if (u[a].bwd_lo >= 0 && 2 * N - u[a].bwd_lo > klast[a])
                klast[a] = 2 * N - u[a].bwd_lo;
            continue;
        }
        if (rfirst[a] > rlast[a])
            continue;
        int src = m->nodes[m->acts[a].producer].in[0];
        if (rec[src]) {
            rfirst[src] = rfirst[a] < rfirst[src] ? rfirst[a] : rfirst[src];
            rlast[src] = rfirst[a] > rlast[src] ? rfirst[a] : rlast[src];
        } else if (rfirst[a] > klast[src]) {
            klast[src] = rfirst[a];
        }
    }
}

/* Builds m->bufs from the uses and the recompute decisions. */
static void build_bufs(net *m, const act_use *u, int planned)
{
    int N = m->n_nodes, end = 2 * N + 1, n = m->n_acts + 1;
    int *rec = xcalloc((size_t)n, sizeof(int)), *rfirst = xcalloc((size_t)n, sizeof(int));
    int *rlast = xcalloc((size_t)n, sizeof(int)), *klast = xcalloc((size_t)n, sizeof(int));
    decide_recompute(m, u, planned, rec, rfirst, rlast, klast);
    m->bufs = xcalloc((size_t)m->n_acts * 3 + 1, sizeof(net_buf));
    m->n_bufs = 0;
    for (int a = 0; a < m->n_acts; a++) {
        net_act *x = &m->acts[a];
        x->recompute = 0;
        x->rec_at = -1;
        if (x->per_sample == 0)
            continue; /* a fused BN's own output: never materialised */
        int p = x->producer, last = a == m->output ? end : u[a].fwd_last;
        if (rec[a]) {
            add_buf(m, a, NET_BUF_ACT, p, last, 0);
            if (rfirst[a] <= rlast[a]) {
                x->recompute = 1;
                x->rec_at = 2 * N - rfirst[a];
                add_buf(m, a, NET_BUF_REC, rfirst[a], rlast[a], 1);
            }
        } else {
            add_buf(m, a, NET_BUF_ACT, p, klast[a] > last ? klast[a] : last, klast[a] >= 0);
        }
        if (!x->needs_grad || (u[a].grad_hi < 0 && a != m->output))
            continue;
        int first = a == m->output ? N : 2 * N - u[a].grad_hi;
        int glast = m->nodes[p].op == NET_OP_INPUT ? end : 2 * N - p;
        add_buf(m, a, NET_BUF_GRAD, first < glast ? first : glast, glast, 1);
    }
    free(rec), free(rfirst), free(rlast), free(klast);
}

static int by_size_desc(const void *pa, const void *pb)
{
    const net_buf *a = *(const net_buf *const *)pa, *b = *(const net_buf *const *)pb;
    if (a->floats != b->floats)
        return a->floats > b->floats ? -1 : 1;
    return a->first - b->first;
}

static int by_off(const void *pa, const void *pb)
{
    const net_buf *a = *(const net_buf *const *)pa, *b = *(const net_buf *const *)pb;
    return a->off < b->off ? -1 : a->off > b->off;
}

/* First fit: places the buffers largest first; returns the arena size. */
static size_t place(net_buf *bufs, int n)
{
    net_buf **order = xcalloc((size_t)n + 1, sizeof(net_buf *));
    net_buf **meet = xcalloc((size_t)n + 1, sizeof(net_buf *));
    for (int i = 0; i < n; i++)
        order[i] = &bufs[i];
    qsort(order, (size_t)n, sizeof *order, by_size_desc);
    size_t top = 0;
    for (int i = 0; i < n; i++) {
        net_buf *b = order[i];
        int k = 0;
        for (int j = 0; j < i; j++)
            if (order[j]->first <= b->last && b->first <= order[j]->last)
                meet[k++] = order[j];
        qsort(meet, (size_t)k, sizeof *meet, by_off);
        size_t off = 0;
        for (int j = 0; j < k; j++) {
            if (meet[j]->off >= off + b->floats)
                break;
            size_t e = meet[j]->off + meet[j]->floats;
            off = e > off ? e : off;
        }
        b->off = off;
        top = off + b->floats > top ? off + b->floats : top;
    }
    free(order);
    free(meet);
    return top;
}

void net_plan(net *m, int planned)
{
    act_use *u = xcalloc((size_t)m->n_acts + 1, sizeof(act_use));
    find_uses(m, u);
    free(m->bufs);
    build_bufs(m, u, planned);
    free(u);
    if (planned) {
        m->arena_floats = place(m->bufs, m->n_bufs);
    } else {
        size_t top = 0;
        for (int i = 0; i < m->n_bufs; i++) {
            m->bufs[i].off = top;
            top += m->bufs[i].floats;
        }
        m->arena_floats = top;
    }
    m->planned = planned;
    /* per node, the activations to recompute before its backward, inputs first */
    int *tail = xcalloc((size_t)m->n_nodes + 1, sizeof(int));
    for (int i = 0; i < m->n_nodes; i++)
        m->nodes[i].rec_first = tail[i] = -1;
    for (int a = 0; a < m->n_acts; a++) {
        net_act *x = &m->acts[a];
        x->rec_next = -1;
        if (!x->recompute)
            continue;
        if (tail[x->rec_at] < 0)
            m->nodes[x->rec_at].rec_first = a;
        else
            m->acts[tail[x->rec_at]].rec_next = a;
        tail[x->rec_at] = a;
    }
    free(tail);
    for (int i = 0; i < m->n_bufs; i++) {
        const net_buf *b = &m->bufs[i];
        net_act *x = &m->acts[b->act];
        if (b->kind == NET_BUF_ACT)
            x->off = b->off;
        else if (b->kind == NET_BUF_REC)
            x->roff = b->off;
        else
            x->doff = b->off;
    }
}

static double mib(size_t floats)
{
    return (double)floats * sizeof(float) / (1024.0 * 1024.0);
}

void net_plan_print(const net *m, void *file)
{
    FILE *f = file;
    static const char *const KIND[] = {"act", "rec", "grad"};
    fprintf(f, "memory plan (%s; steps: forward of node i = i, backward = %d - i)\n",
            m->planned ? "shared by liveness" : "KILN_NO_PLAN: unshared", 2 * m->n_nodes);
    fprintf(f, "%5s %-10s %-4s %14s %9s %6s %6s %4s %10s\n", "act", "producer", "kind", "shape",
            "MiB", "first", "last", "bwd", "offset MiB");
    size_t sum = 0, kept = 0;
    for (int i = 0; i < m->n_bufs; i++) {
        const net_buf *b = &m->bufs[i];
        const net_act *x = &m->acts[b->act];
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", x->H, x->W, x->C);
        fprintf(f, "%5d %-10s %-4s %14s %9.3f %6d %6d %4s %10.3f\n", b->act,
                net_op_name(m->nodes[x->producer].op), KIND[b->kind], shape, mib(b->floats),
                b->first, b->last, b->for_backward ? "yes" : "no", mib(b->off));
        sum += b->floats;
        if (b->kind == NET_BUF_ACT && b->for_backward)
            kept += b->floats;
    }
    fprintf(f,
            "arena %.1f MiB (buffers %.1f MiB unshared; kept for backward %.1f MiB); "
            "aux %.1f MiB, argmax %.1f MiB, scratch %.1f MiB; params x4 %.1f MiB\n",
            mib(m->arena_floats), mib(sum), mib(kept), mib(m->aux_floats), mib(m->iaux_ints),
            mib(m->scratch_floats), mib(4 * m->n_params));
}
