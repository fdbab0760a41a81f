/* job.h - running one job of any type: the entry point of `kiln-worker run`
 * and of pool mode.
 *
 * job_run dispatches on the spec's type (train here; prune and adapt in
 * prune.c and adapt.c) and leaves the job's artifacts in env->out_dir under
 * fixed names (model.safetensors; architecture.json and report.json for
 * prune/adapt). The result summary is a JSON object for the user (final
 * accuracy, steps, time, and what the job type adds). Every rank calls it
 * with the same spec; only rank 0 writes artifacts and reports to the sink.
 */
#ifndef KILN_JOBS_JOB_H
#define KILN_JOBS_JOB_H

#include "common/err.h"
#include "common/jobspec.h"
#include "worker/dist.h"
#include "worker/jobs/sink.h"

#include <jansson.h>

#define JOB_MAX_ARTIFACTS 8

typedef struct job_env {
    const dist_info *dist;    /* ranks; NULL = one */
    const char *out_dir;      /* artifacts and checkpoints (rank 0 writes), must exist */
    const char *resume_path;  /* checkpoint to continue from, or NULL */
    const char *init_weights; /* weights to start from (spec init_from resolved), or NULL */
    const job_sink *sink;     /* rank 0 only */
} job_env;

typedef struct job_result {
    json_t *summary; /* owned JSON object, e.g. {"test_top1": 0.91, "steps": 4680} */
    int n_artifacts;
    char artifacts[JOB_MAX_ARTIFACTS][64]; /* file names inside out_dir */
    int cancelled;
} job_result;

/* Runs the job to its end. Returns 0, ERR_CANCELLED (cancel requested; a
 * final checkpoint was written), or another negative ERR_* with eb naming
 * the problem. res is filled in every case; free it with job_result_free. */
int job_run(const job_spec *spec, const job_env *env, job_result *res, errbuf *eb);

void job_result_free(job_result *res);

/* Adds an artifact name to res (at most JOB_MAX_ARTIFACTS). */
void job_result_add_artifact(job_result *res, const char *name);

#endif
