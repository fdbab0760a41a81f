/* jobcapture.h - running a job in a test and recording what it reports.
 *
 * A tu_capture is a job_sink (worker/jobs/sink.h) that keeps every metric
 * point, counts checkpoints and "elastic: " log lines, remembers the steps
 * the job announced, and can ask the job to stop after a number of cancel
 * polls. Large (a few hundred KiB): allocate it with xcalloc and set
 * cancel_after (-1: never). Test code; allocation failures abort.
 */
#ifndef KILN_TESTS_JOBCAPTURE_H
#define KILN_TESTS_JOBCAPTURE_H

#include "common/files.h"
#include "worker/jobs/job.h"

#define TU_MAX_POINTS 8192
#define TU_MAX_CKPTS  256

typedef struct tu_capture {
    int n; /* metric points kept (the first TU_MAX_POINTS) */
    char name[TU_MAX_POINTS][64];
    long step[TU_MAX_POINTS];
    double value[TU_MAX_POINTS];
    int elastic_lines; /* log lines starting "elastic: " */
    int checkpoints;   /* checkpoints reported, and the last one's path */
    char last_ckpt[KILN_PATH_MAX];
    long ckpt_step[TU_MAX_CKPTS];  /* the first TU_MAX_CKPTS checkpoints: their steps */
    int ckpt_points[TU_MAX_CKPTS]; /* and how many points had come before each */
    long started_total;            /* the optimizer steps the job announced */
    long cancel_after; /* cancel_requested turns true after this many polls (< 0: never) */
    long polls;
} tu_capture;

/* The sink that records into c. */
job_sink tu_capture_sink(tu_capture *c);

/* The last value of metric `name`, or -1 when it never came. */
double tu_last_metric(const tu_capture *c, const char *name);

/* Whether metric `name` came at all. */
int tu_has_metric(const tu_capture *c, const char *name);

/* Fails the test unless a and b hold the same points by name and step, each as
 * often (values and order aside): what an interrupted and resumed run must
 * report, against one that ran through. */
void tu_same_points(const tu_capture *a, const tu_capture *b);

/* Runs job s with its outputs in dir (resume and init: paths or NULL),
 * recording into cap; fails the test unless the job succeeds or is
 * cancelled. Returns 0 or ERR_CANCELLED. */
int tu_run_job(const job_spec *s, const char *dir, tu_capture *cap, const char *resume,
               const char *init, job_result *res);

/* One job run in a test: a new folder of its own, a capture (cancel_after -1) and
 * the result of the last run. */
typedef struct tu_job {
    char *dir;       /* /tmp/kiln-<tag>-XXXXXX */
    tu_capture *cap; /* what the job reported */
    job_result res;  /* valid after a run, until the next run or tu_job_end */
    int ran;
} tu_job;

/* Makes t's folder and capture. */
void tu_job_begin(tu_job *t, const char *tag);

/* tu_run_job into t's folder and capture (resume, init: paths or NULL); frees the
 * previous run's result first. Fails the test unless the job succeeds or is
 * cancelled; returns 0 or ERR_CANCELLED. */
int tu_job_run(tu_job *t, const job_spec *s, const char *resume, const char *init);

/* Runs s into t expecting it to fail: returns job_run's code, its message in *eb. */
int tu_job_refused(tu_job *t, const job_spec *s, errbuf *eb);

/* Frees the result and the capture and removes the folder. */
void tu_job_end(tu_job *t);

/* The network a prune or adapt job found, in dir: architecture.json parses and builds
 * (its MACs as config and as net agree) and sits in the band of +-1 % around the
 * report's target (which must be `target` MFLOPs, when target > 0); model.safetensors
 * loads into it and evaluates on the job's test split to the reported top-1; the
 * report's "after" agrees on MFLOPs, params and top-1. Returns its MFLOPs. */
double tu_check_found_net(const job_spec *s, const char *dir, const job_result *res, double target);

#endif
