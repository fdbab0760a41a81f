/* batch.c - the host buffers of one training batch (see batch.h). */
#include "worker/jobs/batch.h"

#include "common/xalloc.h"

#include <stdlib.h>
#include <string.h>

void job_batch_alloc(job_batch *bt, const model_cfg *c, int b)
{
    size_t px = (size_t)b * c->image_size * c->image_size * c->in_channels;
    size_t pk = (size_t)b * c->num_classes;
    bt->x = xmallocarray(px, sizeof(float));
    bt->y = xmallocarray((size_t)b, sizeof(int32_t));
    bt->probs = xmallocarray(pk, sizeof(float));
    bt->dlogits = xmallocarray(pk, sizeof(float));
}

void job_batch_free(job_batch *bt)
{
    free(bt->x);
    free(bt->y);
    free(bt->probs);
    free(bt->dlogits);
    memset(bt, 0, sizeof *bt);
}
