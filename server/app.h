/* app.h - what the HTTP handlers share: the store, the data dir, the broker hooks.
 *
 * One app per server, built by main.c (or by a test) and read-only after
 * start-up; the objects it points to are thread-safe. Handlers reach the
 * broker only through the hooks (never a socket), so a test can build an
 * app with no broker at all (hooks NULL).
 */
#ifndef KILN_APP_H
#define KILN_APP_H

#include "common/err.h"
#include "common/fielderr.h"
#include "server/auth.h"
#include "server/embed.h"
#include "server/sse.h"
#include "server/stats.h"
#include "server/store.h"

#include <jansson.h>
#include <stddef.h>

/* What the server keeps from a validated job spec. */
typedef struct spec_info {
    char name[128];
    char type[16]; /* "train" | "prune" | "adapt" */
    int priority;
    int ranks;
    int max_restarts;
    int keep_last;
    double params, mflops;
    char idem_key[128];
    double mem_per_rank, mem_state; /* bytes one rank needs; of which the model's state */
    int batch_per_rank;
} spec_info;

/* Validates a submitted spec: 0 with *canonical (new reference, defaults
 * filled) and info; ERR_INVALID with fe; ERR_UNSUPPORTED for a job type this
 * build cannot run (fe names "type"). */
typedef int (*spec_parse_fn)(const json_t *in, json_t **canonical, spec_info *info,
                             field_errors *fe);

typedef struct app {
    store *st;
    char data_dir[512];
    size_t body_limit;
    size_t upload_limit;   /* POST /api/v1/models (spooled to <data>/uploads) */
    double max_job_memory; /* bytes a job may need over all its ranks; 0 = no limit */
    double min_free_disk;  /* bytes free in data_dir below which /readyz is not ready */
    spec_parse_fn parse_spec;
    /* Broker hooks; any may be NULL (then: no wake-up, no pools, not ready). */
    void (*wake)(void *ctx);        /* a job became runnable or must be cancelled */
    json_t *(*workers)(void *ctx);  /* the pools, as GET /workers shows them (new ref) */
    int (*broker_ready)(void *ctx); /* 1 when the broker socket is bound */
    void *broker_ctx;
    /* Static documents served as they are (borrowed, e.g. embedded). */
    const char *openapi_yaml;
    size_t openapi_len;
    json_t *openapi_json; /* the same document as JSON (references absolute), or NULL */
    /* Files served by URL path (the dashboard, the schemas): borrowed,
     * e.g. embed_files; NULL: none. */
    const embed_file *files;
    size_t n_files;
    /* Auth, counters and event streams; each may be NULL (no tokens: every
     * route is open; no stats: nothing counted; no hub: streams answer 503). */
    const auth *auth;
    server_stats *stats;
    sse_hub *sse;
    /* Per-owner limits (an owner is the token a job was submitted with). */
    struct {
        int max_queued; /* jobs QUEUED or RESTARTING; more submissions get 429; 0 = none */
    } owner_limits;
    /* Group commit of POST /jobs (submitq.h); NULL: each job is stored on
     * its request's thread. */
    struct submitq *submits;
} app;

/* The spec parser of this build (common/jobspec), adapted to spec_info. */
int app_parse_spec(const json_t *in, json_t **canonical, spec_info *info, field_errors *fe);

/* The same with jobspec_parse_flags' flags (JOBSPEC_MODEL_LATER). */
int app_parse_spec_flags(const json_t *in, json_t **canonical, spec_info *info, field_errors *fe,
                         unsigned flags);

#endif
