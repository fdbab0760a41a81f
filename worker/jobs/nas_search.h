/* nas_search.h - the architecture-search driver shared by DMCP (prune) and DNA (adapt).
 *
 * nas_search_run owns DMCP's schedule (ALGORITHMS.md 2.6), written once:
 * every iteration is one sandwich-rule weight step - the whole supernet
 * with the labels, then the smallest sub-net and two random sub-nets with
 * in-place distillation (KL to the supernet's detached softmax, tau = 1),
 * gradients accumulated into the supernet and one SGD step (per-iteration
 * cosine from lr to min_lr over warm-up + search, no decay on 1-D tensors).
 * From the end of the warm-up on, each weight step is followed by an
 * architecture step on the same batch: the supernet with its scaling
 * sites on, loss CE + the budget loss on the expected MACs, one SGD step
 * on the architecture parameters (lr held through the warm-up, then cosine
 * to min_lr). Random sub-nets are uniform draws during the warm-up; during
 * the search uniform with probability p_s and direct samples from the
 * chains otherwise, p_s decaying by 0.9999 per random sub-net on every
 * tenth iteration. The driver also owns the metric points (training
 * sums every 10 steps, the target band at the start, p_mean and the max,
 * min and expected sub-nets' accuracy after BN recalibration at every
 * epoch end), progress, cancel, and the search checkpoints (kind
 * ops->kind, search-<step>.safetensors in out_dir, at every epoch end,
 * every checkpoint.every_steps and on cancel) and their resume.
 * Data-parallel: every rank draws the same sub-nets (keyed by the step),
 * gradients are averaged.
 *
 * A search space plugs in through nas_space_ops (as a hash table's type
 * supplies hashing and comparing to one table algorithm). The space holds
 * a "current architecture" that sample sets and build_subnet / arch_macs
 * read. Used by the job's thread only.
 */
#ifndef KILN_JOBS_NAS_SEARCH_H
#define KILN_JOBS_NAS_SEARCH_H

#include "common/rng.h"
#include "common/safetensors.h"
#include "worker/jobs/nas.h"
#include "worker/jobs/prune_chain.h"
#include "worker/models/slice.h"

/* Which architecture sample sets. */
typedef enum {
    NAS_ARCH_MIN = 0,  /* the smallest (every unit at c_min, fewest blocks) */
    NAS_ARCH_EXPECTED, /* the expected architecture of the chains (rounded) */
    NAS_ARCH_UNIFORM,  /* a uniform draw from r */
    NAS_ARCH_CHAINS,   /* a direct sample of the chains from r */
} nas_arch;

/* Where build_subnet keeps a sub-net's name map: the smallest sub-net's
 * lives through the search, a drawn one's until the next build. */
enum { NAS_SLOT_MIN = 0, NAS_SLOT_DRAW = 1 };

/* A search space's behaviour. ctx is the space; callbacks marked optional
 * may be NULL. */
typedef struct nas_space_ops {
    const char *kind;  /* checkpoint metadata kind, e.g. "prune-search" */
    uint64_t rng_tag;  /* keys the random sub-nets' draws */
    int save_supernet; /* write supernet.safetensors at the end of the warm-up */
    /* The supernet as it is now (the space may replace it in on_check). */
    net *(*supernet)(void *ctx);
    /* The width chains (p_mean per unit at every epoch end). */
    const prune_chains *(*chains)(void *ctx);
    /* Sets the current architecture; r is used by the draws only. */
    void (*sample)(void *ctx, nas_arch which, rng *r);
    /* Builds the current architecture's sub-net into sub (net_init'ed by
     * the caller; batch j->b) with the supernet's weights, and its name map
     * into the supernet into *map (kept in slot). 0 or ERR_* (eb). */
    int (*build_subnet)(void *ctx, int slot, net *sub, slice_map *map, errbuf *eb);
    /* MACs of the current architecture. */
    double (*arch_macs)(void *ctx);
    /* Expected MACs of the supernet under the chains. */
    double (*expected_macs)(void *ctx);
    /* on: scaling sites read the keep probabilities and the architecture
     * gradients start from zero; off: scales 1, no gradient work. */
    void (*arch_scaling)(void *ctx, int on);
    /* After the supernet's backward with scaling on: averages the
     * architecture gradients over the ranks, adds dl_dmacs * d(expected
     * MACs) and takes one SGD step of recipe o at lr (first: initialise the
     * momentum). */
    void (*arch_step)(void *ctx, double dl_dmacs, const search_sgd *o, double lr, int first);
    /* Optional: 0 when the architecture step is paused at step. */
    int (*arch_due)(void *ctx, long step);
    /* Optional: after step's weight and architecture steps, the space may
     * change itself (DNA's elastic rules). Returns the number of changes
     * (the driver then rebuilds the smallest sub-net) or a negative ERR_*. */
    int (*on_check)(void *ctx, long step, errbuf *eb);
    /* Optional: the space's own metric points at an epoch end (phase
     * "warmup" or "search"), before the accuracies. */
    void (*epoch_metrics)(void *ctx, long step, const char *phase);
    /* The search's opening log line (buf, len). */
    void (*describe)(void *ctx, char *buf, size_t len);
    /* Optional: text added inside the epoch log line's parentheses. */
    void (*epoch_note)(void *ctx, char *buf, size_t len);
    /* The supernet's model config as compact JSON (malloc'd): the
     * "model" metadata of the checkpoints and of supernet.safetensors. */
    char *(*model_json)(void *ctx);
    /* Optional: the checkpoints' metadata after "kind" and "model". */
    void (*save_meta)(void *ctx, st_writer *w);
    /* The architecture tensors, after the supernet's state and momentum. */
    void (*save_state)(void *ctx, st_writer *w);
    /* Optional: restores what the metadata says (e.g. a grown space's
     * supernet) before the supernet's tensors are read. */
    int (*load_meta)(void *ctx, const st_file *f, errbuf *eb);
    /* Reads the architecture tensors (and what derives from them). */
    int (*load_state)(void *ctx, const st_file *f, errbuf *eb);
} nas_space_ops;

/* One search: the job, its goal and the space (a method's ops and their context). */
typedef struct nas_search {
    nas_job *j;
    const nas_goal *goal;
    const nas_space_ops *ops;
    void *ctx;
} nas_search;

/* Runs the search from step `start` (0, or a resumed checkpoint's) to
 * s->goal->total_steps; *top1_super receives the supernet's top-1 on the whole
 * test split after BN recalibration. Returns 0, ERR_CANCELLED (a
 * checkpoint was written) or another ERR_*. */
int nas_search_run(const nas_search *s, long start, double *top1_super, errbuf *eb);

/* Restores a search checkpoint of kind s->ops->kind into the space; *step
 * gets its step. ERR_FORMAT/ERR_IO naming the file. */
int nas_search_load(const nas_search *s, const char *path, long *step, errbuf *eb);

#endif
