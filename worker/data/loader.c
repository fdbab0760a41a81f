/* loader.c - the sampler and the prefetching batch loader (see loader.h).
 *
 * Slots, each a whole batch: two for an in-memory dataset, max(prefetch,
 * workers) for a file dataset. The prefetch threads (one, or `workers` for
 * files) claim free slots in batch order for the current generation (bumped
 * by every loader_start_epoch), copying the batch's sample indices out of
 * the permutation while holding the lock, then fill them unlocked;
 * loader_next waits for the slot holding the batch it wants and copies it
 * out. A slot filled for an older generation is thrown away when it is
 * published. All shared fields are under `mu`; threads sleep on `space`,
 * the caller on `ready`. Depends on libc, pthreads, common/rng, augment.c,
 * imgdecode.c, transform.c.
 */
#include "worker/data/loader.h"

#include "common/files.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/xalloc.h"
#include "worker/data/augment.h"
#include "worker/data/imgdecode.h"

#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOADER_MAX_SLOTS   64
#define LOADER_MAX_THREADS 64
#define LOADER_BAD_TRIES   16 /* replacements tried for a bad file */

enum { SLOT_FREE = 0, SLOT_FILLING, SLOT_READY, SLOT_TAKEN };

typedef struct slot {
    float *x;     /* (batch, H, W, C) */
    int32_t *y;   /* (batch) */
    uint32_t *k;  /* (batch) sample indices, copied at claim time */
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

    uint32_t *perm; /* (n), train only; under mu */
    int perm_epoch; /* epoch perm holds, -1 = none; under mu */

    int n_slots, n_threads;
    pthread_t threads[LOADER_MAX_THREADS];
    long claim;         /* next batch to claim in generation claim_gen */
    uint64_t claim_gen; /* generation `claim` belongs to */
    long bad;           /* bad files met (skipped) */
    int fail_rc;        /* on_bad_fail: the first error, 0 = none */
    char fail_msg[600]; /* an errbuf message and a note */
    pthread_mutex_t mu;
    pthread_cond_t space; /* a slot was freed, a new epoch began, or quit */
    pthread_cond_t ready; /* a slot was published */
    int quit;
    uint64_t gen; /* 0 until the first loader_start_epoch */
    int epoch;    /* of generation gen */
    long skip;    /* of generation gen */
    long next;    /* caller: the batch loader_next hands out next */
    slot slots[LOADER_MAX_SLOTS];
};

/* Per-thread decoding state (file datasets). */
typedef struct worker_ctx {
    loader *l;
    uint8_t *file;
    size_t file_cap;
    image decoded;
    transform_work work;
} worker_ctx;

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

/* Decodes and transforms file k into out; tries the following files when
 * it is bad (skip policy) and returns the ERR_* of the first failure with
 * the fail policy. Sets *label to the label of the file used. */
static int fill_file(worker_ctx *w, float *out, int32_t *label, uint32_t k, rng *r)
{
    loader *l = w->l;
    const dataset *ds = l->ds;
    for (int attempt = 0; attempt < LOADER_BAD_TRIES; attempt++) {
        uint32_t f = (uint32_t)(((uint64_t)k + (uint64_t)attempt) % (uint64_t)ds->n);
        char path[KILN_PATH_MAX];
        errbuf eb = {""};
        size_t len = 0;
        int rc = imgindex_path(ds->files, (int)f, path, sizeof path);
        if (rc != 0)
            rc = err_set(&eb, ERR_INVALID, "%s/%s: path too long", ds->files->root,
                         imgindex_name(ds->files, (int)f));
        if (rc == 0)
            rc = imgdecode_read_file(path, &w->file, &w->file_cap, &len, &eb);
        if (rc == 0)
            rc = imgdecode(&w->decoded, w->file, len, ds->C, path, &eb);
        if (rc == 0) {
            if (ds->train_split) {
                transform_draw d;
                transform_draw_train(&d, &ds->tf, w->decoded.h, w->decoded.w, r);
                transform_apply_train(out, &w->decoded, &ds->tf, &d, &w->work);
            } else {
                transform_apply_eval(out, &w->decoded, &ds->tf, &w->work);
            }
            *label = ds->files->labels[f];
            return 0;
        }
        pthread_mutex_lock(&l->mu);
        l->bad++;
        if (ds->on_bad_fail && l->fail_rc == 0) {
            l->fail_rc = rc;
            snprintf(l->fail_msg, sizeof l->fail_msg, "%s (data.image.on_bad_file is \"fail\")",
                     eb.msg);
        }
        pthread_mutex_unlock(&l->mu);
        if (ds->on_bad_fail)
            return rc;
        log_warn("skipping a bad image file: %s", eb.msg);
    }
    memset(out, 0, l->sample * sizeof(float));
    *label = ds->files->labels[k];
    return 0;
}

/* Prepares batch s->idx of `epoch` into s (indices in s->k). Runs on a
 * prefetch thread. */
static void loader_fill(worker_ctx *w, slot *s, int epoch)
{
    loader *l = w->l;
    const dataset *ds = l->ds;
    int b = l->o.batch;
    if (!l->o.train) {
        long first = l->lo + s->idx * b;
        long n = l->hi - first < b ? l->hi - first : b;
        for (long i = 0; i < n; i++) {
            if (ds->files != NULL) {
                if (fill_file(w, s->x + i * l->sample, &s->y[i], s->k[i], NULL) != 0)
                    break;
                continue;
            }
            augment_normalize(s->x + i * l->sample, ds->images + (size_t)(first + i) * l->sample,
                              l->lut, ds->H, ds->W, ds->C);
            s->y[i] = ds->labels[first + i];
        }
        s->n = (int)n;
        return;
    }
    long global = (long)b * l->o.world;
    for (int i = 0; i < b; i++) {
        long p = s->idx * global + (long)l->o.rank * b + i;
        size_t k = s->k[i];
        rng r;
        rng_derive(&r, l->o.seed ^ LOADER_STREAM_TAG, (uint64_t)epoch, (uint64_t)p);
        if (ds->files != NULL) {
            if (fill_file(w, s->x + i * l->sample, &s->y[i], (uint32_t)k, &r) != 0)
                break;
            continue;
        }
        int ox, oy, flip;
        augment_draw(&ox, &oy, &flip, &r, l->o.crop_padding, l->o.hflip);
        augment_crop_flip(s->x + i * l->sample, ds->images + k * l->sample, l->lut, ds->H, ds->W,
                          ds->C, l->o.crop_padding, ox, oy, flip);
        s->y[i] = ds->labels[k];
    }
    s->n = b;
}

/* Copies batch s->idx's sample indices into s->k. Under mu. */
static void loader_claim_indices(loader *l, slot *s, int epoch)
{
    int b = l->o.batch;
    if (!l->o.train) {
        long first = l->lo + s->idx * b;
        for (long i = 0; i < b && first + i < l->hi; i++)
            s->k[i] = (uint32_t)(first + i);
        return;
    }
    loader_permute(l, epoch);
    long global = (long)b * l->o.world;
    int R = l->o.repeats;
    for (int i = 0; i < b; i++)
        s->k[i] = R > 1 ? l->perm[((s->idx * b + i) * l->o.world + l->o.rank) / R]
                        : l->perm[s->idx * global + (long)l->o.rank * b + i];
}

static slot *loader_free_slot(loader *l)
{
    for (int i = 0; i < l->n_slots; i++)
        if (l->slots[i].state == SLOT_FREE)
            return &l->slots[i];
    return NULL;
}

static void *loader_main(void *arg)
{
    worker_ctx *w = arg;
    loader *l = w->l;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        slot *s = NULL;
        while (!l->quit) {
            if (l->claim_gen != l->gen) {
                l->claim_gen = l->gen;
                l->claim = l->skip;
            }
            if (l->gen != 0 && l->claim < l->nb && l->fail_rc == 0 &&
                (s = loader_free_slot(l)) != NULL)
                break;
            pthread_cond_wait(&l->space, &l->mu);
        }
        if (l->quit)
            break;
        int epoch = l->epoch;
        s->state = SLOT_FILLING;
        s->gen = l->gen;
        s->idx = l->claim++;
        loader_claim_indices(l, s, epoch);
        pthread_mutex_unlock(&l->mu);
        loader_fill(w, s, epoch);
        pthread_mutex_lock(&l->mu);
        s->state = s->gen == l->gen ? SLOT_READY : SLOT_FREE;
        pthread_cond_broadcast(&l->ready);
        pthread_cond_signal(&l->space);
    }
    pthread_mutex_unlock(&l->mu);
    free(w->file);
    image_free(&w->decoded);
    transform_work_free(&w->work);
    free(w);
    return NULL;
}

loader *loader_new(const dataset *ds, const loader_opts *o)
{
    assert(ds != NULL && o != NULL && o->batch >= 1 && o->world >= 1);
    assert(o->rank >= 0 && o->rank < o->world && o->crop_padding >= 0);
    assert(ds->C >= 1 && ds->C <= 3 && ds->n >= 0);
    loader *l = xcalloc(1, sizeof *l);
    l->n_threads = ds->files != NULL ? ds->workers : 1;
    l->n_threads = l->n_threads < 1                    ? 1
                   : l->n_threads > LOADER_MAX_THREADS ? LOADER_MAX_THREADS
                                                       : l->n_threads;
    l->n_slots =
        ds->files != NULL ? (ds->prefetch > l->n_threads ? ds->prefetch : l->n_threads) : 2;
    l->n_slots = l->n_slots > LOADER_MAX_SLOTS ? LOADER_MAX_SLOTS : l->n_slots;
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
    for (int i = 0; i < l->n_slots; i++) {
        l->slots[i].x = xaligned((size_t)o->batch * l->sample * sizeof(float));
        l->slots[i].y = xmallocarray((size_t)o->batch, sizeof(int32_t));
        l->slots[i].k = xmallocarray((size_t)o->batch, sizeof(uint32_t));
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->space, NULL);
    pthread_cond_init(&l->ready, NULL);
    /* The thread starts with every signal blocked, so that signals meant for
     * the process (SIGINT, SIGTERM) go to the threads that handle them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int t = 0; t < l->n_threads; t++) {
        worker_ctx *w = xcalloc(1, sizeof *w);
        w->l = l;
        int rc = pthread_create(&l->threads[t], NULL, loader_main, w);
        if (rc != 0) {
            fprintf(stderr, "%s:%d: loader_new: cannot start a prefetch thread: %s\n", __FILE__,
                    __LINE__, strerror(rc));
            abort();
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return l;
}

void loader_free(loader *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    l->quit = 1;
    pthread_cond_broadcast(&l->space);
    pthread_mutex_unlock(&l->mu);
    for (int t = 0; t < l->n_threads; t++)
        pthread_join(l->threads[t], NULL);
    pthread_cond_destroy(&l->ready);
    pthread_cond_destroy(&l->space);
    pthread_mutex_destroy(&l->mu);
    for (int i = 0; i < l->n_slots; i++) {
        free(l->slots[i].x);
        free(l->slots[i].y);
        free(l->slots[i].k);
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
    for (int i = 0; i < l->n_slots; i++)
        if (l->slots[i].state == SLOT_READY)
            l->slots[i].state = SLOT_FREE;
    pthread_cond_broadcast(&l->space);
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
        if (l->fail_rc != 0) {
            int rc = l->fail_rc;
            pthread_mutex_unlock(&l->mu);
            return rc;
        }
        for (int i = 0; i < l->n_slots && s == NULL; i++) {
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

long loader_bad_files(loader *l)
{
    pthread_mutex_lock(&l->mu);
    long n = l->bad;
    pthread_mutex_unlock(&l->mu);
    return n;
}

const char *loader_error(const loader *l)
{
    return l->fail_msg;
}
