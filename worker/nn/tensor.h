/* tensor.h - shape letters, layout and the contract assert of the kernels.
 *
 * Layout: every activation is channels-last. An image batch is (B, H, W, C)
 * ("NHWC"), and a token sequence is (B, T, C); the two are the same memory
 * layout, so a CeiT stem's output *is* its token sequence and LeFF's grid
 * needs no transpose. Rows of an activation are the leading dims flattened:
 * N = B*H*W (or B*T) rows of C contiguous floats. Channels-last makes a
 * convolution over the whole batch one GEMM with M = N rows, and lets the
 * per-channel kernels (BN, LN, depthwise) vectorise over C.
 *
 * Parameters keep PyTorch's layouts: conv weights (O, I/groups, kh, kw),
 * linear weights (out, in), so that state_dict tensors load unchanged.
 *
 * Shape letters used in every kernel comment:
 *   B batch, H W spatial, C channels, T tokens, N rows (B*H*W or B*T),
 *   NH attention heads, HS head size (C/NH), K classes, OC/IC out/in channels.
 *
 * Kernel contract (llm.c style): outputs first, then const inputs, then
 * dimensions. Kernels never allocate and do no I/O; any scratch is passed
 * in. Every *_backward ACCUMULATES (+=) into each d* buffer it is given,
 * parameter and input gradients alike; callers zero them explicitly. A NULL
 * d* pointer means "not needed" and skips that work.
 */
#ifndef KILN_NN_TENSOR_H
#define KILN_NN_TENSOR_H

#include <assert.h>
#include <stddef.h>

/* Contract checks on kernel arguments, in the hot loops: too costly for
 * release builds, so compiled out with -DNDEBUG. Invariants that must hold
 * in release builds too use KILN_CHECK (common/check.h). */
#define NN_ASSERT(cond) assert(cond)

#endif
