/* report.h - the sink of a local run: JSON lines and a terminal progress bar.
 *
 * Metric points become one JSON object per line,
 *   {"name":"train/loss","value":0.53,"step":10,"epoch":0.02,"time":1764320000.1}
 * written to a file, or to stdout. When stdout is a terminal a progress bar
 * with an ETA is drawn there (at most ten times a second), and only the
 * per-epoch points are printed above it; logs go to stderr. One report per
 * run; not thread-safe.
 */
#ifndef KILN_JOBS_REPORT_H
#define KILN_JOBS_REPORT_H

#include "worker/jobs/sink.h"

#include <stdio.h>

typedef struct report {
    FILE *metrics; /* where JSON lines go (borrowed) */
    int bar;       /* draw a progress bar on stdout */
    int bar_drawn; /* a bar line is on screen and must be cleared first */
    double t_start, t_drawn;
    long step0; /* first step of this run (resume) */
} report;

/* metrics: the JSON-lines stream (NULL = stdout). bar: draw the progress bar
 * (callers pass isatty(1) unless told otherwise). */
void report_init(report *r, FILE *metrics, int bar);

/* A sink whose callbacks write to r (valid while r lives). */
job_sink report_sink(report *r);

/* Ends the bar line, if one is drawn. */
void report_finish(report *r);

#endif
