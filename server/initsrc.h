/* initsrc.h - resolving and checking a job's starting weights (init_from) on the server.
 *
 * At submit (and, for a job that waits for its source, when its after list
 * has succeeded) the server turns the spec's init_from into a file it holds
 * (a job's artifact or newest checkpoint, or an uploaded model), checks that
 * the file is a sound safetensors file whose network fits the spec's model,
 * and records its SHA-256; the pool gets those bytes with the assignment
 * (api/messages.md). A path names a file on the pool hosts: the server only
 * checks that it is absolute. Every problem is a message a person can act
 * on, naming init_from. Thread-safe (the store is).
 */
#ifndef KILN_INITSRC_H
#define KILN_INITSRC_H

#include "common/err.h"
#include "common/jobspec.h"
#include "server/store.h"

#include <jansson.h>
#include <stdint.h>

typedef struct initsrc {
    int deferred;    /* the source job is in the after list and has not ended: later */
    char file[512];  /* the weights, relative to the data dir; "" for none / a pool path */
    char sha256[65]; /* hex */
    int64_t size;
    json_t *model;    /* the weights' model config (metadata "model"), or NULL; owned */
    int head_differs; /* the model fits but for num_classes (transfer: fresh head) */
} initsrc;

/* What a safetensors file holds, as initsrc_check_file finds it. */
typedef struct initsrc_file_info {
    int tensors;
    int64_t params;  /* elements of the weights (buffers, optimizer and training state excluded) */
    json_t *model;   /* metadata "model" parsed as JSON, or NULL; owned */
    char sha256[65]; /* hex */
    int64_t size;
} initsrc_file_info;

/* Checks path: readable, a valid safetensors file (header, dtypes, offsets;
 * common/safetensors.c), and fills *info (release info->model). Returns 0 or
 * ERR_FORMAT / ERR_IO with eb saying what is wrong (not prefixed). */
int initsrc_check_file(const char *path, initsrc_file_info *info, errbuf *eb);

/* Whether weights with model config `have` (NULL: unknown) and `params`
 * elements fit the model `want`. *head_differs (may be NULL) is set when
 * they fit except for num_classes, which is accepted only with allow_head.
 * Returns 0 or ERR_INVALID with eb naming the difference. */
int initsrc_fits(const json_t *have, int64_t params, const model_cfg *want, int allow_head,
                 int *head_differs, errbuf *eb);

/* Resolves spec->init against the store: fills *out (release with
 * initsrc_free). allow_defer: a source job listed in spec->after that has
 * not ended yet gives out->deferred instead of an error. Returns 0, or
 * ERR_INVALID with eb's message starting "init_from: ". */
int initsrc_resolve(store *st, const char *data_dir, const job_spec *spec, int allow_defer,
                    initsrc *out, errbuf *eb);

void initsrc_free(initsrc *s);

/* For a submitted spec `in` without "model": the model config of the
 * weights its init_from names ({"job"} or {"model"}), as *model (new
 * reference); *deferred instead when that job is in `after` and has not
 * ended (the model is filled in when it has). *model stays NULL for other
 * forms (the full parse then says model is required). Returns 0 or
 * ERR_INVALID (eb starts "init_from: "). */
int initsrc_source_model(store *st, const char *data_dir, const json_t *in, json_t **model,
                         int *deferred, errbuf *eb);

#endif
