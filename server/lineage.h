/* lineage.h - a job's lineage on the server: the jobs it waits for (after)
 * and the weights it starts from (init_from).
 *
 * lineage_prepare runs at submit: every job in `after` must exist and must
 * not have failed or been cancelled; init_from is resolved and checked
 * (initsrc.h), or deferred when its source is one of the `after` jobs that
 * has not ended. The job is then stored blocked (QUEUED, reason
 * WAITING_FOR) until lineage_poll, run by the broker before each
 * scheduling pass, finds every `after` job SUCCEEDED: it resolves a
 * deferred init_from then and lets the job run, or cancels it (reason
 * DEPENDENCY_FAILED, or INIT_FROM_INVALID) naming the job or the problem.
 * Thread-safe as the store is; lineage_poll runs on one thread.
 */
#ifndef KILN_LINEAGE_H
#define KILN_LINEAGE_H

#include "common/err.h"
#include "common/jobspec.h"
#include "server/initsrc.h"
#include "server/store.h"

#include <jansson.h>

typedef struct lineage {
    job_spec spec; /* the canonical spec, parsed */
    initsrc init;
    const char *after[INITREF_MAX_AFTER]; /* into spec.after */
    char waiting_for[STORE_ID_MAX];       /* "" when nothing is waited for */
} lineage;

/* Checks the lineage of a canonical spec and fills *l (release with
 * lineage_free, also after a failure). Returns 0, or ERR_INVALID with the
 * field ("init_from", "after[i]") in field and the reason in eb. */
int lineage_prepare(store *st, const char *data_dir, const json_t *canonical, lineage *l,
                    char *field, size_t field_len, errbuf *eb);

/* Fills the lineage fields of a new job from l (pointers into l). */
void lineage_to_job(const lineage *l, store_job_new *nj);

void lineage_free(lineage *l);

/* Moves *src into *dst (its after[] points into its own spec), leaving src
 * empty: lineage_free(src) is then a no-op and dst must be freed instead. */
void lineage_move(lineage *dst, lineage *src);

/* Moves the blocked jobs on (see above). Returns how many were released
 * or cancelled (> 0: scheduling has news). */
int lineage_poll(store *st, const char *data_dir);

#endif
