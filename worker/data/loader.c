/* loader.c - the sampler and the prefetching batch loader (see loader.h).
 *
 * Two slots, each a whole batch. The prefetch thread fills free slots in
 * batch order for the current generation (bumped by every
 * loader_start_epoch); loader_next waits for the slot holding the batch it
 * wants and copies it out. A slot filled for an older generation is thrown
 * away when it is published. All shared fields are under `mu`; the thread
 * sleeps on `space`, the caller on `ready`. The permutation is touched by
 * the thread only. Depends on libc, pthreads, common/rng, augment.c.
 */
#include "worker/data/loader.h"

#include "common/rng.h"
#include "common/xalloc.h"
#include "worker/data/augment.h"

#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOADER_SLOTS 2

enum { SLOT_FREE = 0, SLOT_FILLING, SLOT_READY, SLOT_TAKEN };

typedef struct slot {
    float *x;     /* (batch, H, W, C) */
    int32_t *y;   /* (batch) */
    int n;        /* samples in this batch */
    long idx;     /* batch index within the epoch */
    uint64_t gen; /* generation it was filled for */
    int state;    /* SLOT_* */
} slot;

struct loader {
    const dataset *ds; /* borrowed */
    loader_opts o;
    size_t sample; /* floats (= bytes) per sample: H * W * C */
    long nb;       /* batches per epoch for this rank */
    long lo, hi;   /* eval: this rank's shard [lo, hi) */
    float lut[AUGMENT_LUT_SIZE];

    uint32_t *perm; /* (n), train only; prefetch thread only */
    int perm_epoch; /* epoch perm holds, -1 = none; prefetch thread only */

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t space; /* a slot was freed, a new epoch began, or quit */
    pthread_cond_t ready; /* a slot was published */
    int quit;
    uint64_t gen; /* 0 until the first loader_start_epoch */
    int epoch;    /* of generation gen */
    long skip;    /* of generation gen */
    long next;    /* caller: the batch loader_next hands out next */
    slot slots[LOADER_SLOTS];
};

static void loader_permute(loader *l, int epoch)
{
    if (l->perm_epoch == epoch)
        return;
    uint32_t n = (uint32_t)l->ds->n;
    for (uint32_t i = 0; i < n; i++)
        l->perm[i] = i;
    rng r;
    rng_derive(&r, l->o.seed ^ LOADER_STREAM_TAG, (uint64_t)epoch, LOADER_PERM_STREAM);
    rng_shuffle(&r, l->perm, n);
    l->perm_epoch = epoch;
}

/* Prepares batch s->idx of `epoch` into s. Runs on the prefetch thread. */
static void loader_fill(loader *l, slot *s, int epoch)
{
    const dataset *ds = l->ds;
    int b = l->o.batch;
    if (!l->o.train) {
        long first = l->lo + s->idx * b;
        long n = l->hi - first < b ? l->hi - first : b;
        for (long i = 0; i < n; i++) {
            augment_normalize(s->x + i * l->sample, ds->images + (size_t)(first + i) * l->sample,
                              l->lut, ds->H, ds->W, ds->C);
            s->y[i] = ds->labels[first + i];
        }
        s->n = (int)n;
        return;
    }
    loader_permute(l, epoch);
    long global = (long)b * l->o.world;
    for (int i = 0; i < b; i++) {
        long p = s->idx * global + (long)l->o.rank * b + i;
        size_t k = l->perm[p];
        rng r;
        rng_derive(&r, l->o.seed ^ LOADER_STREAM_TAG, (uint64_t)epoch, (uint64_t)p);
        int ox, oy, flip;
        augment_draw(&ox, &oy, &flip, &r, l->o.crop_padding, l->o.hflip);
        augment_crop_flip(s->x + i * l->sample, ds->images + k * l->sample, l->lut, ds->H, ds->W,
                          ds->C, l->o.crop_padding, ox, oy, flip);
        s->y[i] = ds->labels[k];
    }
    s->n = b;
}

static slot *loader_free_slot(loader *l)
{
    for (int i = 0; i < LOADER_SLOTS; i++)
        if (l->slots[i].state == SLOT_FREE)
            return &l->slots[i];
    return NULL;
}

static void *loader_main(void *arg)
{
    loader *l = arg;
    uint64_t gen = 0;
    int epoch = 0;
    long pos = l->nb; /* nothing to do before the first epoch starts */
    pthread_mutex_lock(&l->mu);
    for (;;) {
        slot *s = NULL;
        while (!l->quit) {
            if (l->gen != gen) {
                gen = l->gen;
                epoch = l->epoch;
                pos = l->skip;
            }
            if (pos < l->nb && (s = loader_free_slot(l)) != NULL)
                break;
            pthread_cond_wait(&l->space, &l->mu);
        }
        if (l->quit)
            break;
        s->state = SLOT_FILLING;
        s->gen = gen;
        s->idx = pos++;
        pthread_mutex_unlock(&l->mu);
        loader_fill(l, s, epoch);
        pthread_mutex_lock(&l->mu);
        s->state = s->gen == l->gen ? SLOT_READY : SLOT_FREE;
        pthread_cond_signal(&l->ready);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

loader *loader_new(const dataset *ds, const loader_opts *o)
{
    assert(ds != NULL && o != NULL && o->batch >= 1 && o->world >= 1);
    assert(o->rank >= 0 && o->rank < o->world && o->crop_padding >= 0);
    assert(ds->C >= 1 && ds->C <= 3 && ds->n >= 0);
    loader *l = xcalloc(1, sizeof *l);
    l->ds = ds;
    l->o = *o;
    l->sample = (size_t)ds->H * ds->W * ds->C;
    l->perm_epoch = -1;
    augment_lut(l->lut, ds->mean, ds->std, ds->C);
    if (o->train) {
        l->nb = ds->n / ((long)o->batch * o->world);
        l->perm = xmallocarray(ds->n ? (size_t)ds->n : 1, sizeof *l->perm);
    } else {
        l->lo = (long)o->rank * ds->n / o->world;
        l->hi = (long)(o->rank + 1) * ds->n / o->world;
        l->nb = (l->hi - l->lo + o->batch - 1) / o->batch;
    }
    for (int i = 0; i < LOADER_SLOTS; i++) {
        l->slots[i].x = xaligned((size_t)o->batch * l->sample * sizeof(float));
        l->slots[i].y = xmallocarray((size_t)o->batch, sizeof(int32_t));
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->space, NULL);
    pthread_cond_init(&l->ready, NULL);
    /* The thread starts with every signal blocked, so that signals meant for
     * the process (SIGINT, SIGTERM) go to the threads that handle them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&l->thread, NULL, loader_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        fprintf(stderr, "%s:%d: loader_new: cannot start the prefetch thread: %s\n", __FILE__,
                __LINE__, strerror(rc));
        abort();
    }
    return l;
}

void loader_free(loader *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    l->quit = 1;
    pthread_cond_signal(&l->space);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    pthread_cond_destroy(&l->ready);
    pthread_cond_destroy(&l->space);
    pthread_mutex_destroy(&l->mu);
    for (int i = 0; i < LOADER_SLOTS; i++) {
        free(l->slots[i].x);
        free(l->slots[i].y);
    }
    free(l->perm);
    free(l);
}

long loader_batches_per_epoch(const loader *l)
{
    return l->nb;
}

void loader_start_epoch(loader *l, int epoch, long skip)
{
    assert(epoch >= 0);
    pthread_mutex_lock(&l->mu);
    l->gen++;
    l->epoch = epoch;
    l->skip = skip < 0 ? 0 : skip > l->nb ? l->nb : skip;
    l->next = l->skip;
    for (int i = 0; i < LOADER_SLOTS; i++)
        if (l->slots[i].state == SLOT_READY)
            l->slots[i].state = SLOT_FREE;
    pthread_cond_signal(&l->space);
    pthread_mutex_unlock(&l->mu);
}

int loader_next(loader *l, float *x, int32_t *y)
{
    pthread_mutex_lock(&l->mu);
    assert(l->gen != 0 && "loader_next before loader_start_epoch");
    if (l->next >= l->nb) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    slot *s = NULL;
    for (;;) {
        for (int i = 0; i < LOADER_SLOTS && s == NULL; i++) {
            slot *c = &l->slots[i];
            if (c->state == SLOT_READY && c->gen == l->gen && c->idx == l->next)
                s = c;
        }
        if (s != NULL)
            break;
        pthread_cond_wait(&l->ready, &l->mu);
    }
    s->state = SLOT_TAKEN;
    pthread_mutex_unlock(&l->mu);

    int n = s->n;
    memcpy(x, s->x, (size_t)n * l->sample * sizeof(float));
    memcpy(y, s->y, (size_t)n * sizeof(int32_t));

    pthread_mutex_lock(&l->mu);
    s->state = SLOT_FREE;
    l->next++;
    pthread_cond_signal(&l->space);
    pthread_mutex_unlock(&l->mu);
    return n;
}
