/* onnx_export.h - a kiln net as an ONNX inference graph.
 *
 * Translates the live part of a finalised net's program (worker/models/net.h)
 * in eval mode: every node becomes standard ONNX operators of the default
 * domain at opset 13 (or up to 17), each tensor of the net an initializer under
 * its PyTorch state_dict name. The graph input "input" is the image batch
 * (batch, C, H, W) as the net takes it (already normalised), NCHW like
 * PyTorch; the output "logits" is (batch, num_classes). Batch size is free.
 *
 *   conv -> Conv (group for depthwise), batchnorm -> BatchNormalization
 *   (+ Relu / Clip when kiln fused one into it), relu -> Relu, relu6 -> Clip,
 *   gelu -> x * 0.5 * (1 + Erf(x / sqrt 2)), maxpool -> MaxPool,
 *   avgpool -> GlobalAveragePool, linear -> Gemm (one row per sample) or
 *   MatMul + Add (token rows), layernorm -> LayerNormalization at opset 17,
 *   else ReduceMean/Sub/Mul/Add/Sqrt/Div, attention -> Reshape, Transpose,
 *   Gather, MatMul, Softmax, tokens/slice/join/stack -> Shape, Expand,
 *   Slice, Concat, Add; drop path is the identity.
 *
 * Inside the graph an activation is NCHW where convolutions read it and
 * (batch, tokens, C) where token operators do; the exporter inserts the
 * Reshape/Transpose between the two. DMCP's and DNA's search-time nodes
 * (chscale, scaleadd) are refused: a searched network is exported from the
 * model config it was derived as (architecture.json). Not thread-safe per net.
 */
#ifndef KILN_EXPORT_ONNX_EXPORT_H
#define KILN_EXPORT_ONNX_EXPORT_H

#include "common/err.h"
#include "worker/export/onnx_proto.h"
#include "worker/models/net.h"

#define ONNX_EXPORT_OPSET 13

/* Appends the graph of m (finalised, weights loaded) to g (freshly
 * initialised) for `opset` (13..17). Returns 0, ERR_UNSUPPORTED naming the
 * node that has no ONNX form, or ERR_INVALID for an opset outside 13..17. */
int onnx_export_graph(onnx_graph *g, const net *m, int opset, errbuf *eb);

/* onnx_export_graph into the file `path`, with the metadata properties
 * props[0..n_props) (e.g. the model config). */
int onnx_export_save(const net *m, int opset, const onnx_prop *props, int n_props, const char *path,
                     errbuf *eb);

#endif
