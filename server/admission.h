/* admission.h - admission control: refuse at submit a job no pool could hold.
 *
 * A job's need per rank is estimated from its config alone (common/modelmem.h:
 * parameters, gradients and optimizer state, activations at its batch per
 * rank). It is refused when that need exceeds the memory per rank of every
 * pool the server knows with enough ranks (pools say their memory in hello;
 * pools that do not say are not counted, and with none that says the check
 * is skipped), or when need x ranks exceeds the server's --max-job-memory.
 * Pure functions over the pool list; thread-safe.
 */
#ifndef KILN_ADMISSION_H
#define KILN_ADMISSION_H

#include <jansson.h>

typedef struct admission_need {
    double per_rank; /* bytes one rank needs */
    double state;    /* of which parameters, gradients, optimizer state */
    double params;   /* trainable parameters */
    int ranks;       /* resources.ranks */
    int batch_per_rank;
} admission_need;

/* Checks a job against the pools (the JSON array GET /workers shows, may be
 * NULL) and max_job_bytes (0 = no limit). Returns 0 when it may be queued;
 * otherwise -1 with field ("model" when the model's state alone does not
 * fit, "optim.batch_size" when its activations make it not fit) and reason
 * (how much it needs, how much there is, what to change) filled. */
int admission_check(const admission_need *n, const json_t *pools, double max_job_bytes,
                    char field[32], char reason[400]);

/* Parses a size: bytes, or a number with K, M, G or T (powers of 1024,
 * optionally followed by "iB" or "B"). Returns 0, or -1 for anything else. */
int admission_parse_size(const char *text, double *bytes);

#endif
