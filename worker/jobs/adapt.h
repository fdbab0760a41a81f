/* adapt.h - the adapt job: DNA in an elastic space, or a scaling baseline, then retraining.
 *
 * adapt_run is job_run's case for type adapt. The job:
 *   1. takes the existing network (the spec's model; fresh weights, or a
 *      finished job's weights through init_from);
 *   2. dna: builds the window supernet around it (common/adaptspace.h),
 *      trains the weights and the width and depth chains (nas_search.c's
 *      schedule over adapt_dna.c's space: warm-up with the sandwich rule,
 *      then alternating weight and architecture steps; the space grows and shrinks by the elastic
 *      rules of adapt_elastic.c) and derives the network: expected widths
 *      and depths fitted into the target band (adapt_derive.c);
 *      uniform_width, uniform_depth, compound: one scaling rule meeting the
 *      same target, rounded and fitted into the band (adapt_baselines.c).
 *      When no network lies in the band the job fails naming
 *      adapt.target_*, before any retraining;
 *   3. writes architecture.json and trains it with the spec's optim recipe
 *      through train_run from scratch, metrics renamed "retrain/...";
 *   4. writes model.safetensors, report.json (widths, depths, FLOPs and
 *      params before and after, accuracy before and after, the elastic
 *      events), search.json and, for dna, elastic.json (the event log).
 * Checkpoints: search-<step>.safetensors during the search (kind
 * adapt-search: the supernet as it is then, its space, chains and events),
 * ckpt-<step>.safetensors during the retrain; resume_path may name either.
 * Every rank calls adapt_run with the same spec.
 *
 * The structs below are shared by the adapt_*.c files only.
 */
#ifndef KILN_JOBS_ADAPT_H
#define KILN_JOBS_ADAPT_H

#include "common/adaptspace.h"
#include "common/adaptspec.h"
#include "common/bandfit.h"
#include "common/rng.h"
#include "worker/jobs/job.h"
#include "worker/jobs/nas.h"
#include "worker/jobs/prune_chain.h"
#include "worker/models/net.h"

#include <jansson.h>

/* Runs an adapt job (spec->type == JOB_ADAPT). As job_run, except that
 * res->summary may stay NULL when the job fails (job_run fills it). */
int adapt_run(const job_spec *spec, const job_env *env, job_result *res, errbuf *eb);

/* ---- the state of a DNA search (adapt_space.c) ------------------------------------ */

/* Depth chains: for every keepable block b of a stage, P(keep b | the block
 * before it kept) = sigma(beta_b); q_b = prod of the transitions of its
 * stage up to b (1 for a stage's first block). The supernet's joins
 * (model_opts.join = adapt_join) read qf[b] through a net_scaleadd node:
 * x + q_b F(x), the expected block. */
typedef struct adapt_depth {
    const adapt_space *as; /* borrowed */
    int n;                 /* blocks */
    float *beta;           /* (n) logits; 0 for stage-first blocks */
    float *dbeta;          /* (n) */
    float *mom;            /* (n) SGD momentum */
    double *q;             /* (n) marginal keep probabilities */
    float *qf;             /* (n) what the SCALEADD nodes read (q, or 1 with scaling off) */
    float *dq;             /* (n) their gradients */
    int scaling;
    int fixed; /* depth is not searched (adapt.search_depth false): every q is 1, beta
                  stays, no depth events, the derivation keeps every block */
} adapt_depth;

/* A supernet with its space and chains. Heap-allocated and never moved:
 * the net's nodes point into the chains' arrays and the chains into the
 * space. The elastic operations make a new state and free the old one. */
typedef struct adapt_state {
    adapt_space as;
    prune_chains ch; /* width chains over as.sp */
    adapt_depth dc;  /* depth chains over as's blocks */
    net super;       /* the supernet, with scaling sites and joins */
} adapt_state;

/* A state for space `as` (taken over: as is left empty) with alpha = beta
 * = 0; builds the supernet for batches up to max_batch, parameters from
 * seed. Returns NULL with eb set when the net cannot be built. */
adapt_state *adapt_state_new(adapt_space *as, int max_batch, uint64_t seed, errbuf *eb);
void adapt_state_free(adapt_state *st);

/* model_opts.join callback (ctx = the adapt_depth). */
int adapt_join(void *ctx, net *m, int x, int fx, const char *block);

/* Recomputes P and q from alpha and beta (and the scales when on). */
void adapt_update(adapt_state *st);

/* Scaling on (the architecture step: channel scales = P, block scales = q,
 * their gradients accumulate) or off (scales 1, no gradient work). */
void adapt_set_scaling(adapt_state *st, int on);

/* Expected width of every unit (n_units) and expected depth of every stage
 * (n_stages): 1 + the sum of its blocks' q. */
void adapt_expected(const adapt_state *st, double *ec, double *ed);

/* Expected MACs over both kinds of chain: every layer at the expected
 * widths, weighted by its block's q. dP (n_alpha, may be NULL) receives
 * d(MACs)/dP_k, dq (n_blocks, may be NULL) d(MACs)/dq_b. */
double adapt_expected_macs(const adapt_state *st, double *dP, double *dq);

/* Clears every architecture gradient (dscale, dalpha, dq, dbeta). */
void adapt_zero_arch_grad(adapt_state *st);

/* dalpha and dbeta of [the CE term accumulated in dscale and dq +
 * dl_dmacs * expected MACs]. */
void adapt_arch_backward(adapt_state *st, double dl_dmacs);

/* One SGD step on alpha and beta (PyTorch's rule; first: initialise the
 * momentum). */
void adapt_arch_sgd(adapt_state *st, double lr, double momentum, int nesterov, double wd,
                    int first);

/* Starts the chains at the existing network: each unit's transitions are
 * one probability chosen so that its expected width is its nominal width,
 * each stage's so that its expected depth is its existing depth minus 1/4
 * (both clamped to [0.02, 0.98]). */
void adapt_init_existing(adapt_state *st);

/* The expected architecture: widths round(E[c]) (DMCP's ES rule) and
 * depths round(E[depth]) in 1..depth[s]. */
void adapt_expected_arch(const adapt_state *st, int *w, int *d);

/* Samplers (structure kept): every unit at c_min and every stage at one
 * block; group-aligned uniform widths and uniform depths; direct samples
 * from both kinds of chain. w: n_units, d: n_stages. */
void adapt_min_arch(const adapt_state *st, int *w, int *d);
void adapt_random_arch(const adapt_state *st, rng *r, int *w, int *d);
void adapt_sample_arch(const adapt_state *st, rng *r, int *w, int *d);

/* Builds the sub-net of widths w and depths d (batch max_batch) into m
 * (net_init'ed by the caller), checks it against the supernet and copies
 * its weights; *map receives the block map from the sub-net to the
 * supernet (for nas_distill). Returns 0 or ERR_INVALID. */
int adapt_subnet(const adapt_state *st, const int *w, const int *d, int max_batch, uint64_t seed,
                 net *m, adaptspace_blockmap *map, errbuf *eb);

/* Makes channels [from, C) of unit u invisible: zeroes those input slices
 * of every layer that reads the unit (not its depthwise conv, which only
 * maps them to themselves), with their optimizer state. */
void adapt_hide_channels(adapt_state *st, int u, int from);

/* Copies the weights of the existing network `orig` (built from the config
 * the space was made around) into the supernet's prefix and makes the
 * channels beyond each unit's nominal width invisible (the input slices of
 * their consumers zero), so that the supernet at full width computes
 * exactly what orig computes. */
void adapt_inherit(adapt_state *st, const net *orig);

/* ---- elastic operations (adapt_elastic.c) --------------------------------------------- */

typedef enum {
    EL_WIDTH_EXPAND = 0,
    EL_WIDTH_CONDENSE,
    EL_DEPTH_EXPAND,
    EL_DEPTH_CONDENSE,
    EL_KINDS
} elastic_kind;

/* One change of the space, as the event log records it. */
typedef struct elastic_event {
    elastic_kind kind;
    long step;
    char what[PRUNESPACE_NAME_MAX];     /* the unit, or "stage<i>" */
    int before[4], after[4];            /* width: C, c_min, group, K; depth: blocks */
    double mflops_before, mflops_after; /* the supernet's */
} elastic_event;

/* The elastic rules' bookkeeping: consecutive-check counters, the log. */
typedef struct elastic {
    adapt_elastic cfg;
    int *w_up, *w_down; /* (n_units) consecutive checks met */
    int d_up[ADAPTSPACE_MAX_STAGES], d_down[ADAPTSPACE_MAX_STAGES];
    int n_units;       /* size of w_up/w_down */
    elastic_event *ev; /* (n_ev) the log */
    int n_ev, cap_ev;
    int counts[EL_KINDS];
    uint64_t seed;     /* fresh weights of event i: from seed and i */
    double min_mflops; /* a condense that would leave the supernet smaller is not made
                        * (the target's band must stay reachable); 0 = no floor */
} elastic;

void elastic_init(elastic *e, const adapt_elastic *cfg, uint64_t seed, int n_units);
void elastic_deinit(elastic *e);

/* Resizes the per-unit counters to n_units and clears every counter. */
void elastic_resize(elastic *e, int n_units);

/* Replaces e's log by the events of a JSON array written by
 * elastic_events_json (a resumed search); entries it cannot read are
 * skipped. */
void elastic_events_restore(elastic *e, const json_t *a);

const char *elastic_kind_name(elastic_kind k);

/* One check of the rules on *stp at `step` (ALGORITHMS.md 3.2(d)): counts
 * the conditions met, and applies every change whose condition held at
 * cfg.patience consecutive checks, one after the other (widths by unit,
 * then depths by stage), each into a new state (the old one freed;
 * max_batch as before) whose weights, optimizer state, alpha, beta and
 * momenta follow the tensors that grew or shrank; new channels and blocks
 * leave the network's function unchanged. *stp is the last state. Appends
 * the events to e's log and returns how many there were (0: *stp
 * untouched), or a negative ERR_* (eb; *stp is then the state before the
 * failed change, and the events before it are logged). */
int elastic_check(elastic *e, adapt_state **stp, long step, int max_batch, errbuf *eb);

/* The single operations, used by elastic_check and the tests. Each
 * returns a new state (the old one untouched) or NULL with eb set; ev
 * (may be NULL) receives the event. */
adapt_state *elastic_width_expand(const adapt_state *st, int u, int groups, uint64_t seed,
                                  int max_batch, elastic_event *ev, errbuf *eb);
adapt_state *elastic_width_condense(const adapt_state *st, int u, double drop_p, int groups,
                                    uint64_t seed, int max_batch, elastic_event *ev, errbuf *eb);
adapt_state *elastic_depth_expand(const adapt_state *st, int s, uint64_t seed, int max_batch,
                                  elastic_event *ev, errbuf *eb);
adapt_state *elastic_depth_condense(const adapt_state *st, int s, double drop_p, uint64_t seed,
                                    int max_batch, elastic_event *ev, errbuf *eb);

/* The log as a JSON array, and one event as a log line. */
json_t *elastic_events_json(const elastic *e, long steps_per_epoch);
void elastic_event_text(const elastic_event *ev, long steps_per_epoch, char *buf, size_t len);

/* ---- the job's shared state ------------------------------------------------------------- */

typedef struct adapter {
    nas_job j;
    adapt_spec as;
    double full_mflops; /* the existing network's */
    nas_goal goal;      /* target, band, schedule and steps of the search */
    adapt_state *st;    /* dna: the supernet as it is now */
    elastic el;         /* dna: the elastic rules and log */
    long settle_until;  /* no architecture step before this step (after a change) */
    double top1_before; /* the existing network's (init_from), -1 unknown */
    double top1_super;  /* dna: the supernet's after the search, -1 unknown */
    double t0;          /* nas_now() at the start */
} adapter;

/* DNA's search (adapt_dna.c) from step `start` to a->total_steps. Returns 0,
 * ERR_CANCELLED (a checkpoint was written) or another ERR_*. */
int dna_search(adapter *a, long start, errbuf *eb);

/* Restores an adapt-search checkpoint (space, supernet, chains, events);
 * *step gets its step. */
int dna_load_checkpoint(adapter *a, const char *path, long *step, errbuf *eb);

/* The spec's target field: "adapt.target_ratio" or "adapt.target_mflops". */
const char *adapt_target_field(const adapt_spec *as);

/* The derived network (adapt_derive.c): expected widths and depths fitted
 * into the band around the target (common/bandfit.h); w (n_units of the
 * final space) and d (n_stages). Adds the details to info. Returns 0, or
 * ERR_INVALID when no network of the final space lies in the band (the
 * message names adapt_target_field and the nearest MFLOPs). On several
 * ranks every rank returns rank 0's outcome. */
int dna_derive(adapter *a, int *w, int *d, json_t *info, errbuf *eb);

/* The baselines (adapt_baselines.c): the network of the method meeting the
 * target from the existing network c; fills out and adds the multipliers
 * to info. Returns 0 or ERR_INVALID (eb). */
int adapt_baseline(const adapt_spec *as, const model_cfg *c, double target_mflops, model_cfg *out,
                   json_t *info, errbuf *eb);

#endif
