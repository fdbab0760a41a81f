/* onnx_proto.c - ONNX ModelProto encoding (see onnx_proto.h). */
#include "worker/export/onnx_proto.h"

#include "common/files.h"
#include "common/version.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* onnx.proto field numbers */
enum { MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3 };
enum { MODEL_GRAPH = 7, MODEL_OPSET_IMPORT = 8, MODEL_METADATA_PROPS = 14 };
enum { OPSET_DOMAIN = 1, OPSET_VERSION = 2 };
enum { PROP_KEY = 1, PROP_VALUE = 2 };
enum { GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11 };
enum { GRAPH_OUTPUT = 12 };
enum { NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5 };
enum { ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_INTS = 8, ATTR_TYPE = 20 };
enum { TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9 };
enum { VALUE_NAME = 1, VALUE_TYPE = 2 };
enum { TYPE_TENSOR = 1, TENSOR_TYPE_ELEM = 1, TENSOR_TYPE_SHAPE = 2 };
enum { SHAPE_DIM = 1, DIM_VALUE = 1, DIM_PARAM = 2 };
enum { DTYPE_FLOAT = 1, DTYPE_INT64 = 7 };

onnx_attr onnx_int(const char *name, int64_t v)
{
    onnx_attr a = {.name = name, .kind = ONNX_ATTR_INT, .i = v};
    return a;
}

onnx_attr onnx_float(const char *name, float v)
{
    onnx_attr a = {.name = name, .kind = ONNX_ATTR_FLOAT, .f = v};
    return a;
}

onnx_attr onnx_ints(const char *name, int n, const int64_t *v)
{
    onnx_attr a = {.name = name, .kind = ONNX_ATTR_INTS};
    if (n > ONNX_MAX_INTS)
        n = ONNX_MAX_INTS;
    a.n_ints = n;
    memcpy(a.ints, v, (size_t)n * sizeof *v);
    return a;
}

void onnx_graph_init(onnx_graph *g, const char *name)
{
    pb_init(&g->body);
    g->n_nodes = 0;
    pb_string(&g->body, GRAPH_NAME, name);
}

void onnx_graph_free(onnx_graph *g)
{
    pb_free(&g->body);
}

static void encode_attr(pb_buf *out, const onnx_attr *a)
{
    pb_string(out, ATTR_NAME, a->name);
    switch (a->kind) {
    case ONNX_ATTR_FLOAT:
        pb_float(out, ATTR_F, a->f);
        break;
    case ONNX_ATTR_INT:
        pb_int(out, ATTR_I, a->i);
        break;
    case ONNX_ATTR_INTS:
        for (int k = 0; k < a->n_ints; k++)
            pb_int(out, ATTR_INTS, a->ints[k]);
        break;
    }
    pb_int(out, ATTR_TYPE, a->kind);
}

void onnx_node(onnx_graph *g, const char *op_type, const char *const *in, int n_in, const char *out,
               const onnx_attr *a, int n_a)
{
    pb_buf node, attr;
    pb_init(&node);
    for (int k = 0; k < n_in; k++)
        pb_string(&node, NODE_INPUT, in[k]);
    pb_string(&node, NODE_OUTPUT, out);
    char name[32];
    snprintf(name, sizeof name, "%s_%d", op_type, g->n_nodes++);
    pb_string(&node, NODE_NAME, name);
    pb_string(&node, NODE_OP_TYPE, op_type);
    for (int k = 0; k < n_a; k++) {
        pb_init(&attr);
        encode_attr(&attr, &a[k]);
        pb_message(&node, NODE_ATTRIBUTE, &attr);
        pb_free(&attr);
    }
    pb_message(&g->body, GRAPH_NODE, &node);
    pb_free(&node);
}

static void encode_tensor_head(pb_buf *t, const char *name, int dtype, int ndim,
                               const int64_t *dims)
{
    for (int k = 0; k < ndim; k++)
        pb_int(t, TENSOR_DIMS, dims[k]);
    pb_int(t, TENSOR_DATA_TYPE, dtype);
    pb_string(t, TENSOR_NAME, name);
}

static size_t count(int ndim, const int64_t *dims)
{
    size_t n = 1;
    for (int k = 0; k < ndim; k++)
        n *= (size_t)dims[k];
    return n;
}

void onnx_init_f32(onnx_graph *g, const char *name, int ndim, const int64_t *dims,
                   const float *data)
{
    pb_buf t;
    pb_init(&t);
    encode_tensor_head(&t, name, DTYPE_FLOAT, ndim, dims);
    pb_floats_raw(&t, TENSOR_RAW_DATA, data, count(ndim, dims));
    pb_message(&g->body, GRAPH_INITIALIZER, &t);
    pb_free(&t);
}

void onnx_init_i64(onnx_graph *g, const char *name, int ndim, const int64_t *dims,
                   const int64_t *data)
{
    pb_buf t;
    pb_init(&t);
    encode_tensor_head(&t, name, DTYPE_INT64, ndim, dims);
    pb_int64s_raw(&t, TENSOR_RAW_DATA, data, count(ndim, dims));
    pb_message(&g->body, GRAPH_INITIALIZER, &t);
    pb_free(&t);
}

/* ValueInfoProto { name, type { tensor_type { elem_type FLOAT, shape } } } */
static void value_info(onnx_graph *g, int field, const char *name, int ndim, const int64_t *dims)
{
    pb_buf shape, tensor, type, vi, dim;
    pb_init(&shape);
    for (int k = 0; k < ndim; k++) {
        pb_init(&dim);
        if (dims[k] == ONNX_DIM_BATCH)
            pb_string(&dim, DIM_PARAM, "batch");
        else
            pb_int(&dim, DIM_VALUE, dims[k]);
        pb_message(&shape, SHAPE_DIM, &dim);
        pb_free(&dim);
    }
    pb_init(&tensor);
    pb_int(&tensor, TENSOR_TYPE_ELEM, DTYPE_FLOAT);
    pb_message(&tensor, TENSOR_TYPE_SHAPE, &shape);
    pb_init(&type);
    pb_message(&type, TYPE_TENSOR, &tensor);
    pb_init(&vi);
    pb_string(&vi, VALUE_NAME, name);
    pb_message(&vi, VALUE_TYPE, &type);
    pb_message(&g->body, field, &vi);
    pb_free(&vi);
    pb_free(&type);
    pb_free(&tensor);
    pb_free(&shape);
}

void onnx_input(onnx_graph *g, const char *name, int ndim, const int64_t *dims)
{
    value_info(g, GRAPH_INPUT, name, ndim, dims);
}

void onnx_output(onnx_graph *g, const char *name, int ndim, const int64_t *dims)
{
    value_info(g, GRAPH_OUTPUT, name, ndim, dims);
}

void onnx_model_encode(pb_buf *out, const onnx_graph *g, int opset, const onnx_prop *props,
                       int n_props)
{
    pb_int(out, MODEL_IR_VERSION, opset >= 15 ? 8 : 7);
    pb_string(out, MODEL_PRODUCER_NAME, "kiln");
    pb_string(out, MODEL_PRODUCER_VERSION, KILN_VERSION);
    pb_message(out, MODEL_GRAPH, &g->body);
    pb_buf sub;
    pb_init(&sub);
    pb_string(&sub, OPSET_DOMAIN, "");
    pb_int(&sub, OPSET_VERSION, opset);
    pb_message(out, MODEL_OPSET_IMPORT, &sub);
    pb_free(&sub);
    for (int k = 0; k < n_props; k++) {
        pb_init(&sub);
        pb_string(&sub, PROP_KEY, props[k].key);
        pb_string(&sub, PROP_VALUE, props[k].value);
        pb_message(out, MODEL_METADATA_PROPS, &sub);
        pb_free(&sub);
    }
}

int onnx_model_save(const onnx_graph *g, int opset, const onnx_prop *props, int n_props,
                    const char *path, errbuf *eb)
{
    if (opset < 13 || opset > 17)
        return err_set(eb, ERR_INVALID, "opset %d: kiln writes opsets 13 to 17", opset);
    pb_buf b;
    pb_init(&b);
    onnx_model_encode(&b, g, opset, props, n_props);
    int rc = files_write_atomic(path, b.data, b.len, eb);
    pb_free(&b);
    return rc;
}
