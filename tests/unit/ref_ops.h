/* ref_ops.h - one runner per reference op, dispatched by the case's "op".
 *
 * Each runner takes everything (shapes, attributes, inputs) from the case,
 * runs the engine's forward and backward, and checks every stored output
 * with ref_check (refcase.h). check_reference.c walks every case of every
 * reference file and calls the runner named by the case's "op" attribute.
 */
#ifndef KILN_REF_OPS_H
#define KILN_REF_OPS_H

#include "tests/unit/refcase.h"

typedef void (*ref_runner)(const ref_case *c);

/* The runner for an op name ("conv2d", "linear", ...), or NULL if unknown. */
ref_runner ref_runner_for(const char *op);

/* worker/nn kernels (tests/unit/ref_cnn.c) */
void ref_run_conv2d(const ref_case *c);
void ref_run_batchnorm2d(const ref_case *c);
void ref_run_maxpool2d(const ref_case *c);
void ref_run_global_avgpool(const ref_case *c);

/* worker/nn kernels (tests/unit/ref_dense.c) */
void ref_run_linear(const ref_case *c);
void ref_run_layernorm(const ref_case *c);
void ref_run_gelu(const ref_case *c);
void ref_run_relu(const ref_case *c);
void ref_run_relu6(const ref_case *c);
void ref_run_attention(const ref_case *c);
void ref_run_softmax_cross_entropy(const ref_case *c);
void ref_run_sgd(const ref_case *c);
void ref_run_adamw(const ref_case *c);

/* ViT modules built by worker/models (tests/unit/ref_modules.c) */
void ref_run_leff(const ref_case *c);
void ref_run_lca_block(const ref_case *c);
void ref_run_block(const ref_case *c);

#endif
