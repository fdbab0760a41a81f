/* submitq.c - group commit of job submissions (see submitq.h).
 *
 * A singly linked FIFO under one mutex; the thread sleeps on a condition
 * variable while the FIFO is empty, takes up to SUBMITQ_BATCH_MAX entries at
 * a time, commits them outside the lock and calls their callbacks in order.
 */
#include "server/submitq.h"

#include "common/xalloc.h"

#include <pthread.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <stdio.h>
#include <stdlib.h>

typedef struct entry {
    const store_job_new *job;
    submitq_done_fn done;
    void *ctx;
    struct entry *next;
} entry;

struct submitq {
    store *st;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    entry *head, *tail;
    int draining; /* no more pushes; the thread ends when the FIFO is empty */
    int joined;
    pthread_t thread;
    unsigned long rounds, jobs;
};

/* Up to SUBMITQ_BATCH_MAX entries off the FIFO into b/e; under q->mu. */
static int take(submitq *q, store_job_batch *b, entry **e)
{
    int n = 0;
    while (q->head != NULL && n < SUBMITQ_BATCH_MAX) {
        entry *x = q->head;
        q->head = x->next;
        if (q->head == NULL)
            q->tail = NULL;
        e[n] = x;
        b[n] = (store_job_batch){.job = x->job};
        n++;
    }
    return n;
}

static void *run(void *arg)
{
    submitq *q = arg;
#ifdef __linux__
    prctl(PR_SET_NAME, "kiln-submit"); /* for top -H and perf */
#endif
    store_job_batch *b = xcalloc(SUBMITQ_BATCH_MAX, sizeof *b);
    entry **e = xcalloc(SUBMITQ_BATCH_MAX, sizeof *e);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->head == NULL && !q->draining)
            pthread_cond_wait(&q->cv, &q->mu);
        int n = take(q, b, e);
        if (n == 0)
            break; /* draining, and nothing is left */
        pthread_mutex_unlock(&q->mu);
        errbuf eb;
        store_job_create_batch(q->st, b, n, &eb); /* a failed commit sets every b[i].rc */
        for (int i = 0; i < n; i++) {
            e[i]->done(e[i]->ctx, &b[i]);
            free(e[i]);
        }
        pthread_mutex_lock(&q->mu);
        q->rounds++;
        q->jobs += (unsigned long)n;
    }
    pthread_mutex_unlock(&q->mu);
    free(b);
    free(e);
    return NULL;
}

int submitq_start(submitq **out, store *st, errbuf *eb)
{
    submitq *q = xcalloc(1, sizeof *q);
    q->st = st;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (pthread_create(&q->thread, NULL, run, q) != 0) {
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->mu);
        free(q);
        *out = NULL;
        return err_set(eb, ERR_INTERNAL, "cannot start the submission thread");
    }
    *out = q;
    return 0;
}

int submitq_push(submitq *q, const store_job_new *job, submitq_done_fn done, void *ctx)
{
    entry *x = xcalloc(1, sizeof *x);
    x->job = job;
    x->done = done;
    x->ctx = ctx;
    pthread_mutex_lock(&q->mu);
    if (q->draining) {
        pthread_mutex_unlock(&q->mu);
        free(x);
        return ERR_STATE;
    }
    if (q->tail != NULL)
        q->tail->next = x;
    else
        q->head = x;
    q->tail = x;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

void submitq_drain(submitq *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->draining = 1;
    int join = !q->joined;
    q->joined = 1;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (join)
        pthread_join(q->thread, NULL);
}

void submitq_free(submitq *q)
{
    if (q == NULL)
        return;
    submitq_drain(q);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

void submitq_stats(submitq *q, unsigned long *rounds, unsigned long *jobs)
{
    pthread_mutex_lock(&q->mu);
    *rounds = q->rounds;
    *jobs = q->jobs;
    pthread_mutex_unlock(&q->mu);
}
