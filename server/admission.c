/* admission.c - refuse at submit a job no pool could hold (see admission.h). */
#include "server/admission.h"

#include "common/meminfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most memory per rank among pools with at least `ranks` ranks that say
 * theirs; 0 when none does. Its id goes to who. */
static double largest_pool(const json_t *pools, int ranks, const char **who)
{
    double best = 0;
    size_t i;
    const json_t *p;
    *who = "";
    json_array_foreach(pools, i, p)
    {
        double mem = (double)json_integer_value(json_object_get(p, "rank_memory"));
        if (json_integer_value(json_object_get(p, "ranks")) >= ranks && mem > best) {
            best = mem;
            *who = json_string_value(json_object_get(p, "id"));
        }
    }
    return best;
}

static void explain(const admission_need *n, double limit, const char *what, char field[32],
                    char reason[400])
{
    char need[32], state[32], have[32];
    meminfo_format((int64_t)n->per_rank, need, sizeof need);
    meminfo_format((int64_t)n->state, state, sizeof state);
    meminfo_format((int64_t)limit, have, sizeof have);
    if (n->state > limit) {
        snprintf(field, 32, "model");
        snprintf(reason, 400,
                 "the model's %.0f parameters with their gradients and optimizer state need %s "
                 "per rank, more than %s (%s): use a smaller model",
                 n->params, state, have, what);
    } else {
        snprintf(field, 32, "optim.batch_size");
        snprintf(reason, 400,
                 "the job needs %s per rank (%s for the model's state, the rest for activations "
                 "of a batch of %d per rank), more than %s (%s): use a smaller batch_size or "
                 "more ranks",
                 need, state, n->batch_per_rank, have, what);
    }
}

int admission_check(const admission_need *n, const json_t *pools, double max_job_bytes,
                    char field[32], char reason[400])
{
    if (max_job_bytes > 0 && n->per_rank * n->ranks > max_job_bytes) {
        char what[200];
        snprintf(what, sizeof what, "the server's --max-job-memory over %d rank(s)", n->ranks);
        explain(n, max_job_bytes / n->ranks, what, field, reason);
        return -1;
    }
    const char *who;
    double best = pools != NULL ? largest_pool(pools, n->ranks, &who) : 0;
    if (best > 0 && n->per_rank > best) {
        char what[200];
        snprintf(what, sizeof what, "what a rank of the largest pool, %.64s, has", who);
        explain(n, best, what, field, reason);
        return -1;
    }
    return 0;
}

int admission_parse_size(const char *text, double *bytes)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || !(v >= 0))
        return -1;
    double scale = 1;
    const char *units = "KMGT";
    const char *u = *end != '\0' ? strchr(units, *end) : NULL;
    if (u != NULL) {
        for (const char *q = units; q <= u; q++)
            scale *= 1024;
        end++;
        if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)
            end += strlen(end);
    } else if (strcmp(end, "B") == 0) {
        end++;
    }
    if (*end != '\0')
        return -1;
    *bytes = v * scale;
    return 0;
}
