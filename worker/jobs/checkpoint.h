/* checkpoint.h - training checkpoints as safetensors.
 *
 * A checkpoint holds everything needed to continue a run exactly: the model's
 * state_dict (PyTorch names), the optimizer state ("optim.m.<param>",
 * "optim.v.<param>"), the global step ("train.step", I64) and the drop-path
 * RNG state ("train.rng", I64[4]), with metadata kind=checkpoint, the model
 * config and the job spec. Files are written atomically (temp, fsync,
 * rename). Loading checks every tensor by name and shape and reports the
 * first problem naming the tensor. Not thread-safe per net.
 */
#ifndef KILN_JOBS_CHECKPOINT_H
#define KILN_JOBS_CHECKPOINT_H

#include "common/err.h"
#include "common/rng.h"
#include "worker/models/net.h"

typedef struct ckpt_info {
    long step;  /* optimizer steps taken */
    rng dp_rng; /* the net's drop-path stream */
} ckpt_info;

/* Writes m, its optimizer state and info to path. model_json and spec_json
 * (may be NULL) go into the metadata. */
int ckpt_save(const char *path, const net *m, const ckpt_info *info, const char *model_json,
              const char *spec_json, errbuf *eb);

/* Loads a checkpoint written by ckpt_save into m (built from the same
 * config) and fills info. ERR_FORMAT/ERR_IO naming the file and tensor. */
int ckpt_load(const char *path, net *m, ckpt_info *info, errbuf *eb);

/* Loads plain weights (a state_dict file, e.g. a finished job's
 * model.safetensors or a checkpoint) into m, ignoring optimizer/training
 * tensors. */
int ckpt_load_weights(const char *path, net *m, errbuf *eb);

/* ckpt_load_weights for init_from: weights of the same network for another
 * number of classes load all but the classifier head, which keeps its
 * fresh initialisation; fresh then says which tensors (for the log), else
 * it is "". */
int ckpt_load_init(const char *path, net *m, int classes, char *fresh, size_t fresh_len,
                   errbuf *eb);

#endif
