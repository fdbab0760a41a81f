/* fakepool.c - a scripted pool for tests (see fakepool.h). A test double only. */
#include "fakepool.h"

#include "common/log.h"
#include "common/safetensors.h"
#include "common/xalloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FP_MAX_STARTED 64

struct fakepool {
    fakepool_options o;
    char pool_id[64];
    pool_link *link;
    pthread_t thread;
    atomic_int stop;
    pthread_mutex_t mu;
    char started[FP_MAX_STARTED][80];
    int n_started;
    long last_resume;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long job_steps(const fakepool_options *o, const json_t *spec)
{
    json_t *ms = json_object_get(json_object_get(spec, "optim"), "max_steps");
    long n = json_is_integer(ms) ? (long)json_integer_value(ms) : 0;
    return n > 0 ? n : (o->steps > 0 ? o->steps : 20);
}

static void *model_bytes(long steps, size_t *len)
{
    st_writer *w = st_writer_new();
    float v[4] = {(float)steps, 1.0f, 2.0f, 3.0f};
    int shape[1] = {4};
    st_writer_add_f32(w, "w", 1, shape, v);
    st_writer_meta(w, "kiln", "fakepool test double");
    void *buf;
    st_writer_to_memory(w, &buf, len);
    st_writer_free(w);
    return buf;
}

/* Runs one assigned job to its end. */
static void run_job(fakepool *f, const link_assignment *a)
{
    long steps = job_steps(&f->o, a->spec);
    long start = a->resume_step;
    link_started(f->link, a->job_id, a->attempt, steps);
    link_log(f->link, a->job_id, a->attempt, "info", "fakepool: starting");
    const char *job_name = json_string_value(json_object_get(a->spec, "name"));
    if (f->o.echo_name && job_name != NULL) { /* a log line and a metric the submitter names */
        char line[300];
        snprintf(line, sizeof line, "fakepool: job name %s", job_name);
        link_log(f->link, a->job_id, a->attempt, "info", line);
        json_t *p = json_pack("{s:I,s:f}", "step", (json_int_t)start + 1, job_name, 1.0);
        link_metric(f->link, a->job_id, a->attempt, p);
        json_decref(p);
    }
    for (long s = start + 1; s <= steps; s++) {
        if (atomic_load(&f->stop))
            return; /* killed: nothing more is sent */
        if (link_cancel_requested(f->link, a->job_id, a->attempt)) {
            size_t len;
            void *ck = model_bytes(s - 1, &len);
            link_checkpoint(f->link, a->job_id, a->attempt, s - 1, ck, len);
            free(ck);
            errbuf eb;
            link_finished(f->link, a->job_id, a->attempt, 1, NULL, NULL, 0, &eb);
            return;
        }
        if (f->o.fail_first && a->attempt == 1 && s == (f->o.fail_step > 0 ? f->o.fail_step : 2) &&
            (f->o.fail_name == NULL ||
             (job_name != NULL && strcmp(job_name, f->o.fail_name) == 0))) {
            link_failed(f->link, a->job_id, a->attempt,
                        f->o.fail_reason != NULL ? f->o.fail_reason : "RANK_FAILED",
                        "fakepool: scripted failure");
            return;
        }
        json_t *p = json_pack("{s:I,s:f,s:f}", "step", (json_int_t)s, "train_loss", 1.0 / (double)s,
                              "lr", 0.001);
        link_metric(f->link, a->job_id, a->attempt, p);
        json_decref(p);
        if (f->o.ckpt_every > 0 && s % f->o.ckpt_every == 0) {
            size_t len;
            void *ck = model_bytes(s, &len);
            link_checkpoint(f->link, a->job_id, a->attempt, s, ck, len);
            free(ck);
        }
        if (f->o.step_ms > 0)
            sleep_ms(f->o.step_ms);
    }
    size_t len;
    void *model = model_bytes(steps, &len);
    link_artifact art = {.name = "model.safetensors", .bytes = model, .len = len};
    json_t *res = json_pack("{s:f,s:I}", "test_acc", 0.5, "steps", (json_int_t)steps);
    errbuf eb;
    if (link_finished(f->link, a->job_id, a->attempt, 0, res, &art, 1, &eb) < 0)
        log_error("fakepool: %s", eb.msg);
    json_decref(res);
    free(model);
}

static int make_link(fakepool *f, const fakepool_options *o)
{
    f->o = *o;
    snprintf(f->pool_id, sizeof f->pool_id, "%s", o->pool_id != NULL ? o->pool_id : "fakepool");
    pthread_mutex_init(&f->mu, NULL);
    link_options lo;
    link_options_default(&lo);
    lo.token = o->token;
    lo.zmq_context = o->zmq_context;
    if (o->heartbeat_ms > 0)
        lo.heartbeat_ms = o->heartbeat_ms;
    if (o->liveness > 0)
        lo.liveness = o->liveness;
    lo.reconnect_min_ms = 20;
    lo.reconnect_max_ms = 200;
    lo.resend_ms = 500;
    if (o->outbox_max_msgs > 0)
        lo.outbox_max_msgs = o->outbox_max_msgs;
    const char *hosts[1] = {"localhost"};
    link_pool_info info = {.pool_id = f->pool_id,
                           .ranks = o->ranks > 0 ? o->ranks : 1,
                           .hosts = hosts,
                           .n_hosts = 1,
                           .cores = 1,
                           .version = "fakepool",
                           .memory = o->rank_memory * (o->ranks > 0 ? o->ranks : 1),
                           .rank_memory = o->rank_memory};
    errbuf eb;
    if (link_new(&f->link, o->endpoint, &info, &lo, &eb) < 0) {
        log_error("fakepool: %s", eb.msg);
        return ERR_INVALID;
    }
    return 0;
}

static void loop(fakepool *f)
{
    int done = 0;
    while (!atomic_load(&f->stop) && (f->o.max_jobs == 0 || done < f->o.max_jobs)) {
        link_assignment a;
        int rc = link_wait_assign(f->link, 100, &a);
        if (rc == ERR_TIMEOUT)
            continue;
        if (rc < 0)
            break;
        pthread_mutex_lock(&f->mu);
        if (f->n_started < FP_MAX_STARTED)
            snprintf(f->started[f->n_started++], sizeof f->started[0], "%s#%d", a.job_id,
                     a.attempt);
        f->last_resume = a.resume_step;
        pthread_mutex_unlock(&f->mu);
        run_job(f, &a);
        link_assignment_free(&a);
        done++;
    }
}

static void *thread_main(void *arg)
{
    loop(arg);
    return NULL;
}

fakepool *fakepool_start(const fakepool_options *o)
{
    fakepool *f = xcalloc(1, sizeof *f);
    if (make_link(f, o) < 0) {
        free(f);
        return NULL;
    }
    pthread_create(&f->thread, NULL, thread_main, f);
    return f;
}

static void finish(fakepool *f, int flush)
{
    atomic_store(&f->stop, 1);
    link_interrupt(f->link);
    pthread_join(f->thread, NULL);
    if (flush)
        link_flush(f->link, 5000);
    link_free(f->link);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void fakepool_stop(fakepool *f)
{
    if (f != NULL)
        finish(f, 1);
}

void fakepool_kill(fakepool *f)
{
    if (f != NULL)
        finish(f, 0);
}

int fakepool_run(const fakepool_options *o, volatile int *stop_flag)
{
    fakepool f;
    memset(&f, 0, sizeof f);
    if (make_link(&f, o) < 0)
        return ERR_INVALID;
    int done = 0;
    while (!*stop_flag && (o->max_jobs == 0 || done < o->max_jobs)) {
        link_assignment a;
        int rc = link_wait_assign(f.link, 100, &a);
        if (rc == ERR_TIMEOUT)
            continue;
        if (rc < 0)
            break;
        run_job(&f, &a);
        link_assignment_free(&a);
        done++;
    }
    int rc = link_flush(f.link, 10000);
    link_free(f.link);
    pthread_mutex_destroy(&f.mu);
    return rc;
}

int fakepool_started_count(fakepool *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->n_started;
    pthread_mutex_unlock(&f->mu);
    return n;
}

void fakepool_started(fakepool *f, int i, char *buf, size_t len)
{
    pthread_mutex_lock(&f->mu);
    snprintf(buf, len, "%s", i < f->n_started ? f->started[i] : "");
    pthread_mutex_unlock(&f->mu);
}

long fakepool_last_resume(fakepool *f)
{
    pthread_mutex_lock(&f->mu);
    long r = f->last_resume;
    pthread_mutex_unlock(&f->mu);
    return r;
}
