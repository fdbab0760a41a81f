/* modelmem.h - the memory one rank needs to train a model, from its config alone.
 *
 * The server's admission control: before a job is stored, its per-rank need
 * is compared with the largest pool's memory and the server's
 * --max-job-memory, so that a model no pool can hold is refused with 400
 * instead of being handed to pools that cannot run it. The estimate counts
 * what worker/models/net.c allocates:
 *   - state: parameters, gradients and two optimizer moments (4 floats a
 *     parameter, whatever the optimizer), plus the weights' moving average
 *     when optim.ema is on;
 *   - activations: every layer output and its gradient at the batch one rank
 *     takes, as the worker's liveness plan keeps them (about one buffer per
 *     conv or token matrix), the gradients of a few layers in flight, the
 *     largest im2col or attention scratch, and 1 MiB of tables.
 * It is at least what the worker allocates and at most 2.5 times that for
 * the model families, plus the 1 MiB (check_modelmem); the data loader's memory is not in it.
 * check_modelmem compares it with what the worker really allocates. Pure C;
 * thread-safe.
 */
#ifndef KILN_MODELMEM_H
#define KILN_MODELMEM_H

#include "common/modelcfg.h"

typedef struct model_memory {
    double params;      /* trainable parameters */
    double state_bytes; /* parameters, gradients, optimizer state (+ EMA) */
    double act_bytes;   /* activations, gradients in flight, scratch at the batch */
    double total_bytes; /* state_bytes + act_bytes: one rank's need */
} model_memory;

/* Estimates the need of one rank that trains c on `batch` images at a time
 * (the job's batch_size / ranks), with an EMA of the weights when ema != 0. */
void modelmem_estimate(const model_cfg *c, int batch, int ema, model_memory *out);

#endif
