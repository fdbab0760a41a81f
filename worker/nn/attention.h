/* attention.h - the core of multi-head self-attention.
 *
 * Input is the output of the qkv linear, qkv (B, T, 3C): columns 0..C-1 are
 * q, C..2C-1 are k, 2C..3C-1 are v, head-major inside each (head h, dim j is
 * column part*C + h*HS + j). For each head, out = softmax(q k^T / sqrt(HS)) v,
 * with heads concatenated head-major into out's C channels. The qkv and
 * proj linears are separate nn_linear calls.
 *
 * `query` selects the queries: NN_ATTN_ALL_QUERIES gives out (B, T, C); a
 * token index q in [0, T) uses only that token's query and gives out
 * (B, 1, C) - LCA uses T-1 (its last class token). Pure; see tensor.h.
 */
#ifndef KILN_NN_ATTENTION_H
#define KILN_NN_ATTENTION_H

#include <stddef.h>

#define NN_ATTN_ALL_QUERIES (-1)

/* Number of query rows: T for NN_ATTN_ALL_QUERIES, else 1. */
int nn_attention_queries(int T, int query);

/* Floats of scratch the forward and backward need: one slice per thread for up to 16
 * threads (the kernels never use more), so it does not depend on the thread count. */
size_t nn_attention_scratch_floats(int B, int T, int C, int NH, int query);

/* out (B, TQ, C); att (B, NH, TQ, T) receives the softmax probabilities,
 * which the backward pass reads. */
void nn_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                          int query, float *scratch);

/* Recomputes the out of a nn_attention_forward call from the same qkv and the att it
 * wrote: identical bits (backward rebuilds it instead of keeping it). */
void nn_attention_output(float *out, const float *att, const float *qkv, int B, int T, int C,
                         int NH, int query, float *scratch);

/* Accumulates dqkv (B, T, 3C) from dout (B, TQ, C). */
void nn_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                           int B, int T, int C, int NH, int query, float *scratch);

#endif
