/* state.h - a net's named tensors to and from safetensors (state_dict I/O).
 *
 * Weights files use PyTorch's state_dict names and shapes (parameters and
 * buffers; num_batches_tracked as an I64 scalar), in registration order, so
 * a file written here loads in PyTorch and vice versa. Loading is strict:
 * a missing, extra or misshaped tensor is an error naming the tensor.
 * Not thread-safe per net.
 */
#ifndef KILN_MODELS_STATE_H
#define KILN_MODELS_STATE_H

#include "common/err.h"
#include "common/safetensors.h"
#include "worker/models/net.h"

/* Copies every parameter, buffer and counter of m from f by name. Tensors of
 * f whose names start with one of the NULL-terminated `ignore` prefixes are
 * skipped (e.g. "input.", "grad." in reference files); any other tensor of f
 * that m does not have is an error (ERR_FORMAT), as is a missing tensor or a
 * shape mismatch. On error m is partly loaded. */
int net_load_state(net *m, const st_file *f, const char *const *ignore, errbuf *eb);

/* net_load_state for transfer: a parameter whose shape in f differs only
 * in its first dimension, which is `classes` in m (the classifier head of a
 * network trained on another number of classes), is skipped and keeps its
 * fresh initialisation; fresh (fresh_len bytes) lists those tensors, ""
 * when there is none. */
int net_load_state_head(net *m, const st_file *f, const char *const *ignore, int classes,
                        char *fresh, size_t fresh_len, errbuf *eb);

/* Adds every tensor of m (params, buffers, counters) to w under `prefix`
 * (may be ""), in registration order. */
void net_add_state(const net *m, st_writer *w, const char *prefix);

/* Adds a float block laid out like the parameters (gradients, optimizer
 * moments) to w, one tensor per parameter named prefix + name. */
void net_add_param_like(const net *m, st_writer *w, const char *prefix, const float *block);

/* Reads a float block laid out like the parameters from tensors named
 * prefix + name (the inverse of net_add_param_like). */
int net_read_param_like(const net *m, const st_file *f, const char *prefix, float *block,
                        errbuf *eb);

/* Writes the state of m to path atomically, with metadata "model" = model_json
 * (may be NULL). */
int net_save_state(const net *m, const char *path, const char *model_json, errbuf *eb);

#endif
