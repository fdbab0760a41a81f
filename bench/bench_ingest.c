/* bench_ingest.c - a synthetic pool that floods kiln-server with metric points.
 *
 * A TEST DOUBLE of a pool for benchmarking (bench/server.sh): it connects
 * through worker/link.c, takes one assignment, and queues --points metric
 * points as fast as it can, then waits until every one is acked (applied and
 * committed by the server). Prints points/s. --single sends a log line after
 * every point, so no two points share a message (the per-message cost).
 */
#include "common/log.h"
#include "worker/link.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    log_init("bench_ingest", LOG_WARN);
    const char *ep = NULL;
    long points = 100000;
    int single = 0;
    static const struct option opts[] = {{"connect", required_argument, NULL, 'c'},
                                         {"points", required_argument, NULL, 'n'},
                                         {"single", no_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            ep = optarg;
        else if (c == 'n')
            points = atol(optarg);
        else if (c == 's')
            single = 1;
        else
            return 2;
    }
    if (ep == NULL || points < 1) {
        fprintf(stderr, "usage: bench_ingest --connect EP [--points N] [--single]\n");
        return 2;
    }
    link_options lo;
    link_options_default(&lo);
    lo.outbox_max_msgs = 1 << 20;
    lo.outbox_max_bytes = (size_t)1 << 30;
    link_pool_info info = {.pool_id = "bench-ingest", .ranks = 1, .cores = 1, .version = "bench"};
    pool_link *l;
    errbuf eb;
    if (link_new(&l, ep, &info, &lo, &eb) < 0) {
        fprintf(stderr, "bench_ingest: %s\n", eb.msg);
        return 1;
    }
    link_assignment a;
    if (link_wait_assign(l, 10000, &a) != 0) {
        fprintf(stderr, "bench_ingest: no job was assigned within 10 s\n");
        link_free(l);
        return 1;
    }
    link_started(l, a.job_id, a.attempt, points);
    double t0 = now_s();
    for (long i = 1; i <= points; i++) {
        json_t *p = json_pack("{s:I,s:f}", "step", (json_int_t)i, "train_loss", 1.0 / (double)i);
        link_metric(l, a.job_id, a.attempt, p);
        json_decref(p);
        if (single)
            link_log(l, a.job_id, a.attempt, "info", "x");
    }
    double t1 = now_s();
    int rc = link_flush(l, 600000);
    double t2 = now_s();
    link_stats st;
    link_get_stats(l, &st);
    printf("ingest%s: %ld points queued in %.2f s, all acked after %.2f s: %.0f points/s "
           "(%llu messages, %llu resent)\n",
           single ? " (one message per point, + a log line each)" : " (batched by the link)",
           points, t1 - t0, t2 - t0, (double)points / (t2 - t0), (unsigned long long)st.sent,
           (unsigned long long)st.resent);
    errbuf e2;
    link_finished(l, a.job_id, a.attempt, 0, NULL, NULL, 0, &e2);
    link_flush(l, 10000);
    link_assignment_free(&a);
    link_free(l);
    return rc == 0 ? 0 : 1;
}
