/* batch.h - the host buffers of one training batch, shared by the train job and the searches.
 *
 * A batch of b images of a model config: the pixels, the labels, the
 * softmax of the logits and the gradient of the loss with respect to the
 * logits. Owned by one job thread.
 */
#ifndef KILN_JOBS_BATCH_H
#define KILN_JOBS_BATCH_H

#include "common/modelcfg.h"

#include <stdint.h>

typedef struct job_batch {
    float *x;       /* (b, image_size, image_size, in_channels) */
    int32_t *y;     /* (b) labels */
    float *probs;   /* (b, num_classes) softmax */
    float *dlogits; /* (b, num_classes) d loss / d logits */
} job_batch;

/* Allocates the buffers of b images of config c (aborts when out of memory). */
void job_batch_alloc(job_batch *bt, const model_cfg *c, int b);

/* Frees the buffers; bt is then empty (freeing it again is a no-op). */
void job_batch_free(job_batch *bt);

#endif
