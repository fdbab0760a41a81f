/* onnx_proto.h - writing an ONNX model: a graph of nodes, initializers, inputs
 * and outputs, encoded as onnx.proto's ModelProto (common/pbwrite.h).
 *
 * The graph is encoded as it is built: every call appends its GraphProto
 * field (node 1, initializer 5, input 11, output 12), so nodes must be added
 * in topological order (the caller's job) and names are the caller's. Only
 * the pieces kiln's export uses: FLOAT and INT64 tensors (raw_data, little
 * endian), INT, FLOAT and INTS attributes, float inputs and outputs whose
 * dimensions are fixed or the symbolic "batch", the default domain's opset
 * and metadata_props. Field numbers are onnx.proto's (ONNX 1.8+). Pure
 * memory work apart from onnx_model_save; a graph is not thread-safe.
 */
#ifndef KILN_EXPORT_ONNX_PROTO_H
#define KILN_EXPORT_ONNX_PROTO_H

#include "common/err.h"
#include "common/pbwrite.h"

#include <stdint.h>

#define ONNX_MAX_INTS  8
#define ONNX_DIM_BATCH (-1) /* a dimension written as the symbol "batch" */

typedef enum { ONNX_ATTR_FLOAT = 1, ONNX_ATTR_INT = 2, ONNX_ATTR_INTS = 7 } onnx_attr_kind;

typedef struct onnx_attr {
    const char *name;
    onnx_attr_kind kind;
    int64_t i;
    float f;
    int n_ints;
    int64_t ints[ONNX_MAX_INTS];
} onnx_attr;

typedef struct onnx_graph {
    pb_buf body; /* GraphProto fields so far */
    int n_nodes;
} onnx_graph;

typedef struct onnx_prop {
    const char *key, *value;
} onnx_prop;

/* Attribute values for onnx_node. onnx_ints takes n <= ONNX_MAX_INTS values. */
onnx_attr onnx_int(const char *name, int64_t v);
onnx_attr onnx_float(const char *name, float v);
onnx_attr onnx_ints(const char *name, int n, const int64_t *v);

/* An empty graph called `name`. */
void onnx_graph_init(onnx_graph *g, const char *name);
void onnx_graph_free(onnx_graph *g);

/* Appends node op_type(in[0..n_in)) -> out with attributes a[0..n_a). An
 * empty string in `in` is an omitted optional input. */
void onnx_node(onnx_graph *g, const char *op_type, const char *const *in, int n_in, const char *out,
               const onnx_attr *a, int n_a);

/* Appends an initializer (a constant tensor) of ndim dims (0: a scalar). */
void onnx_init_f32(onnx_graph *g, const char *name, int ndim, const int64_t *dims,
                   const float *data);
void onnx_init_i64(onnx_graph *g, const char *name, int ndim, const int64_t *dims,
                   const int64_t *data);

/* Declares a float graph input or output of ndim dims; ONNX_DIM_BATCH marks
 * the symbolic batch dimension. */
void onnx_input(onnx_graph *g, const char *name, int ndim, const int64_t *dims);
void onnx_output(onnx_graph *g, const char *name, int ndim, const int64_t *dims);

/* The ModelProto of g into out (pb_init'ed): IR version 7 for opset 13..14,
 * 8 for 15..17, the default domain at `opset`, producer "kiln" and version,
 * and the metadata properties props[0..n_props). */
void onnx_model_encode(pb_buf *out, const onnx_graph *g, int opset, const onnx_prop *props,
                       int n_props);

/* onnx_model_encode written to path (through path.tmp and a rename).
 * ERR_IO naming the file; ERR_INVALID for an opset outside 13..17. */
int onnx_model_save(const onnx_graph *g, int opset, const onnx_prop *props, int n_props,
                    const char *path, errbuf *eb);

#endif
