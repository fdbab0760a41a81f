/* initref.h - where a job's starting weights come from (init_from) and which
 * jobs it waits for (after): parse, validate, canonical JSON.
 *
 * init_from is either a string or an object:
 *   "j-..."                       a job id (no '/' and no ".safetensors" end)
 *   "/path/model.safetensors"     a file (on the pool hosts, or for
 *                                 `kiln-worker run` where it runs)
 *   {"job": ID, "artifact": NAME} a finished job's artifact (default
 *                                 model.safetensors)
 *   {"job": ID, "checkpoint": "latest"}  a job's newest checkpoint
 *   {"model": ID}                 a model uploaded with POST /api/v1/models
 *   {"path": PATH}                a file, as the string form
 * after is an array of 1..INITREF_MAX_AFTER distinct job ids. The server
 * resolves the references (server/initsrc.c); this module only checks
 * their form. Pure C + jansson; thread-safe.
 */
#ifndef KILN_INITREF_H
#define KILN_INITREF_H

#include "common/jsonfield.h"

#include <jansson.h>
#include <stddef.h>

#define INITREF_ID_MAX    64
#define INITREF_MAX_AFTER 16

typedef enum { INIT_NONE = 0, INIT_PATH, INIT_JOB, INIT_MODEL } init_kind;

typedef struct init_ref {
    init_kind kind;
    int given_as_string;     /* canonical JSON keeps the string form */
    char path[256];          /* INIT_PATH */
    char id[INITREF_ID_MAX]; /* INIT_JOB: the job; INIT_MODEL: the model */
    char artifact[128];      /* INIT_JOB: artifact name ("" with checkpoint) */
    int checkpoint;          /* INIT_JOB: the job's latest checkpoint */
} init_ref;

/* Reads o[key] (absent: kind INIT_NONE) into *r; problems go to o's errors
 * at "key" or "key.field". Returns 0 or -1 (a problem was recorded). */
int initref_parse(init_ref *r, jsonfield_obj *o, const char *key);

/* The canonical JSON of r (the string form as given, or the object with
 * defaults filled); NULL for INIT_NONE. New reference. */
json_t *initref_to_json(const init_ref *r);

/* A short text for logs and for job_spec.init_from: the path, "job ID",
 * "job ID artifact NAME", "job ID checkpoint latest" or "model ID". */
void initref_describe(const init_ref *r, char *buf, size_t len);

/* Reads o[key] as an array of distinct job ids into ids (n_out of them;
 * absent: 0). Returns 0 or -1 with the problem recorded. */
int initref_parse_after(jsonfield_obj *o, const char *key, char ids[][INITREF_ID_MAX], int *n_out);

/* Whether s has the form of a job or model id ([A-Za-z0-9_-], 1..63). */
int initref_id_ok(const char *s);

#endif
