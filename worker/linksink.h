/* linksink.h - a job_sink (worker/jobs/sink.h) that reports through a pool link.
 *
 * Glue for kiln-worker's pool mode: rank 0 builds one per assignment and
 * hands it to the job, which then reports to kiln-server exactly as it
 * reports to the terminal in `kiln-worker run`. Every callback only queues
 * (link.h): none blocks on the network. `progress` is not forwarded (the
 * server derives progress from the metric steps and started's total). No
 * ZeroMQ here; thread-safe as the link is.
 */
#ifndef KILN_LINKSINK_H
#define KILN_LINKSINK_H

#include "common/msg.h"
#include "worker/jobs/sink.h"
#include "worker/link.h"

typedef struct linksink {
    pool_link *link; /* borrowed */
    char job_id[MSG_ID_MAX];
    int attempt;
} linksink;

/* linksink_init binds ls to (job_id, attempt) on link and fills *out with
 * callbacks whose ctx is ls; ls must outlive the job. */
void linksink_init(linksink *ls, pool_link *link, const char *job_id, int attempt, job_sink *out);

#endif
