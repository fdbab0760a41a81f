/* netload.h - a trained network ready for inference, from its weights file.
 *
 * The model config comes from an argument (a JSON file such as a job's
 * architecture.json or a model config, or inline JSON text starting with
 * '{') or, without one, from the "model" metadata that kiln writes into
 * every weights file. The net is built from it (model_build, no search-time
 * nodes), loaded strictly (every tensor by name and shape; optimizer and
 * training tensors of a checkpoint are ignored) and set to eval mode. Used
 * by `kiln-worker export` and the export tests. Not thread-safe per net.
 */
#ifndef KILN_MODELS_NETLOAD_H
#define KILN_MODELS_NETLOAD_H

#include "common/err.h"
#include "common/modelcfg.h"
#include "worker/models/net.h"

#include <jansson.h>

/* Builds m (freshly net_init'ed) for batches up to max_batch from the
 * weights file `weights` and model_arg (may be NULL: the weights' metadata).
 * cfg (may be NULL) receives the parsed config, cfg_json (may be NULL) its
 * canonical JSON (a new reference). Returns 0, or ERR_INVALID / ERR_FORMAT
 * / ERR_IO / ERR_NOT_FOUND with eb naming the file, field or tensor; m is
 * then to be net_deinit'ed by the caller all the same. */
int netload_for_eval(net *m, const char *weights, const char *model_arg, int max_batch,
                     model_cfg *cfg, json_t **cfg_json, errbuf *eb);

#endif
