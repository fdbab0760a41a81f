/* fakepool.h - a scripted pool for tests: the protocol without the engine.
 *
 * A TEST DOUBLE ONLY (kiln-server never runs it): it connects through
 * worker/link.c like a real pool, and for each job it is assigned it reports
 * started, one metric point per step (train_loss = 1/step, lr), a checkpoint
 * every ckpt_every steps, honours cancel at the next step (final checkpoint
 * + finished/cancelled), and ends with finished/succeeded and a small
 * model.safetensors whose tensor "w" holds the step count; with echo_name
 * also a log line holding the spec's name and one metric point named by it
 * (hostile names for the dashboard's tests). The number of
 * steps is the spec's optim.max_steps, or `steps`. Used by the check suites
 * in-process and by tests/pool/testpool.c as a program. Thread-safe.
 */
#ifndef KILN_FAKEPOOL_H
#define KILN_FAKEPOOL_H

#include "worker/link.h"

typedef struct fakepool_options {
    const char *endpoint;
    const char *pool_id;
    int ranks;
    void *zmq_context; /* inproc: the server's context */
    int steps;         /* when the spec has no optim.max_steps; default 20 */
    int step_ms;       /* sleep per step; default 1 */
    int ckpt_every;    /* 0 = no periodic checkpoints */
    int heartbeat_ms;  /* link heartbeat until welcome; default 1000 */
    int liveness;
    int max_jobs;            /* stop after this many jobs; 0 = until fakepool_stop */
    int fail_first;          /* the first attempt of each job fails with RANK_FAILED at step 2 */
    const char *fail_reason; /* with fail_first: this reason instead of RANK_FAILED */
    int fail_step;           /* with fail_first: the step it fails at instead of 2 */
    const char *fail_name;   /* with fail_first: only the jobs of this name fail */
    size_t outbox_max_msgs;
    const char *token;   /* a pool token for a server with tokens, or NULL */
    int echo_name;       /* also a log line and a metric point named after the spec's name */
    int64_t rank_memory; /* bytes per rank said in hello; 0 = not said */
} fakepool_options;

typedef struct fakepool fakepool;

/* Starts the pool on its own thread. NULL if the link cannot be made. */
fakepool *fakepool_start(const fakepool_options *o);

/* Runs the pool on the calling thread until max_jobs are done or
 * fakepool_stop; for the test-pool program. Returns 0 or an ERR_* code. */
int fakepool_run(const fakepool_options *o, volatile int *stop_flag);

/* fakepool_stop flushes (up to 5 s), stops and frees; NULL is a no-op. */
void fakepool_stop(fakepool *f);

/* fakepool_kill stops at once, as a crash would: no flush, no goodbye. */
void fakepool_kill(fakepool *f);

/* Jobs started so far, in order: "<job_id>#<attempt>" (i < count). */
int fakepool_started_count(fakepool *f);
void fakepool_started(fakepool *f, int i, char *buf, size_t len);

/* The resume_step of the latest assignment (0 when it started fresh). */
long fakepool_last_resume(fakepool *f);

#endif
