/* sink.h - where a running job reports to: the terminal, a file or a server.
 *
 * A job calls the sink of rank 0 only (other ranks pass NULL). Each callback
 * may be NULL. Implementations: jobs/report.c (JSON lines on stdout or in a
 * file, a progress bar on a terminal) and the pool link (worker/link.c), which
 * forwards everything to kiln-server. Callbacks run on the training thread
 * and must not block on the network.
 */
#ifndef KILN_JOBS_SINK_H
#define KILN_JOBS_SINK_H

typedef struct job_sink {
    void *ctx;
    /* The job is set up and will take `total_steps` optimizer steps in all. */
    void (*started)(void *ctx, long total_steps);
    /* One metric point: `name` = value at global step `step`, epoch (fractional). */
    void (*metric)(void *ctx, const char *name, double value, long step, double epoch);
    /* A log line ("info", "warn", "error"). */
    void (*log)(void *ctx, const char *level, const char *msg);
    /* Progress: step of total, latest training loss, throughput. */
    void (*progress)(void *ctx, long step, long total, double loss, double images_per_s);
    /* A checkpoint was written to `path` (complete, fsync'd) at `step`. */
    void (*checkpoint)(void *ctx, const char *path, long step);
    /* Non-zero when the job should stop at the next step boundary. */
    int (*cancel_requested)(void *ctx);
} job_sink;

/* ---- calls on a sink (sink.c); s NULL (a rank other than 0) does nothing ---- */

/* A metric point at `step` (epoch = step / steps_per_epoch). */
void sink_metric(const job_sink *s, const char *name, double v, long step, long steps_per_epoch);

/* A log line (printf format, up to 511 bytes). */
void sink_say(const job_sink *s, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A checkpoint was written. */
void sink_checkpoint(const job_sink *s, const char *path, long step);

/* Non-zero on every rank when a cancel was asked of any rank's sink (a
 * collective call: every rank must make it at the same step). */
int sink_cancel_now(const job_sink *s);

#endif
