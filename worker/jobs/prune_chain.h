/* prune_chain.h - DMCP's Markov chains over channel groups (ALGORITHMS.md 2.2-2.7).
 *
 * For every unit u of a prune_space with K_u groups: architecture
 * parameters alpha (K_u, initialised to 0), transition probabilities
 * sigma(alpha_k), marginal keep probabilities P_k = prod_{j<=k}
 * sigma(alpha_j), and the per-channel scale vector the architecture step
 * multiplies the unit's BN outputs by (1 for the c_min always-kept channels,
 * P_k for the channels of group k). The supernet's scaling sites
 * (model_opts.site = chains_site) insert one net_chscale node per BN of the
 * unit, all reading the unit's scale vector and accumulating into its
 * gradient, so dL/dP_k is the sum of the scale gradient over group k. A
 * squeeze-excitation's fc1 is a tied site: its channel j is scaled by the
 * keep probability of the unit width that first keeps it, and its gradient
 * goes to that unit channel's.
 *
 * Also here: expected widths, the derivative of the budget loss back to
 * alpha, the architecture optimizer (SGD), and the width samplers: direct
 * samples from the chains (each unit from its own chain: the reference
 * code samples a bottleneck's conv2 from alpha1, a bug not copied here),
 * group-aligned uniform random widths, expected-width rounding (ES).
 * A chains object is used by one thread.
 */
#ifndef KILN_JOBS_PRUNE_CHAIN_H
#define KILN_JOBS_PRUNE_CHAIN_H

#include "common/prunespace.h"
#include "common/rng.h"
#include "worker/models/net.h"

#include <stddef.h>

typedef struct prune_chains {
    const prune_space *sp; /* borrowed */
    size_t n_alpha;        /* sum of K_u */
    size_t *a_off;         /* (n_units + 1) offsets into alpha-sized arrays */
    size_t *s_off;         /* (n_units + 1) offsets into scale-sized arrays */
    float *alpha;          /* (n_alpha) */
    float *dalpha;         /* (n_alpha) gradient of the architecture loss */
    float *mom;            /* (n_alpha) SGD momentum buffer */
    double *P;             /* (n_alpha) marginals, after chains_update */
    float *scale;          /* (sum C_u) per-channel scales read by the CHSCALE nodes */
    float *dscale;         /* (sum C_u) their gradients (accumulated by net_backward) */
    net *scaled;           /* the net whose CHSCALE nodes read scale (chains_attach) */
    int scaling;           /* 1: scale = P, gradients on; 0: scale = 1, gradients off */
    /* tied sites (squeeze-excitation): per site its scales, copied from its
     * unit's channels tie_ch[], and their gradients, added back there */
    size_t *t_off;   /* (n_sites + 1) offsets into the tie arrays (0 for untied sites) */
    int *tie_ch;     /* the unit channel each tied channel copies */
    float *t_scale;  /* read by the tied CHSCALE nodes */
    float *t_dscale; /* their gradients */
} prune_chains;

/* One Markov chain of K transition logits a: the marginals
 * P_k = prod_{j<=k} sigma(a_j) into P (K doubles). */
void chains_marginals(const float *a, int K, double *P);

/* The chain's backward: given dL/dP_k (dP) and the marginals P, writes
 * dL/da_j = (1 - sigma(a_j)) * sum_{k>=j} dP_k P_k into da (K floats). */
void chains_grad_logits(const float *a, const double *P, const double *dP, int K, float *da);

/* Allocates chains for sp with every alpha = 0. sp must outlive c. */
void chains_init(prune_chains *c, const prune_space *sp);
void chains_deinit(prune_chains *c);

/* model_opts.site callback (ctx = the chains): inserts a CHSCALE node for
 * the unit of BN `bn`; BNs of no unit are left alone. */
int chains_site(void *ctx, net *m, int x, const char *bn);

/* Records m as the net built with chains_site, and sets scaling off. */
void chains_attach(prune_chains *c, net *m);

/* Recomputes P from alpha and, when scaling is on, the scale vectors. */
void chains_update(prune_chains *c);

/* Scaling on (the architecture step: scales = P, scale gradients
 * accumulate) or off (weight steps and evaluation: scales = 1, no gradient
 * work). Calls chains_update. */
void chains_set_scaling(prune_chains *c, int on);

/* Expected width of every unit: c_min + g * sum_k P_k (n_units doubles). */
void chains_expected_widths(const prune_chains *c, double *ec);

/* Mean of P_k over the groups of unit u (1 for a unit without groups). */
double chains_p_mean(const prune_chains *c, int u);

/* Expected MACs of the current chains; if dmacs_dP is not NULL it receives
 * d(MACs)/dP_k (n_alpha doubles). */
double chains_expected_macs(const prune_chains *c, double *dmacs_dP);

/* Sets dalpha = d/d(alpha) of [ scale-gradient term + dl_dmacs * MACs ]:
 * dL/dP_k = sum of dscale over group k + dl_dmacs * dMACs/dP_k, then through
 * P_k = prod sigma(alpha_j). Reads dscale as accumulated; does not clear it. */
void chains_backward(prune_chains *c, double dl_dmacs);

/* Sets dalpha = d/d(alpha) of [ scale-gradient term + a term whose
 * gradient with respect to the marginals is dP_extra (n_alpha doubles; may
 * be NULL) ]. chains_backward is this with dP_extra = dl_dmacs * dMACs/dP. */
void chains_backward_dP(prune_chains *c, const double *dP_extra);

/* Adds the tied sites' scale gradients into their unit channels' (dscale)
 * and clears them: before dscale is averaged over ranks. chains_backward_dP
 * does it too. */
void chains_gather_tied(prune_chains *c);

/* Clears dscale and dalpha. */
void chains_zero_grad(prune_chains *c);

/* One SGD step on alpha with lr, momentum, nesterov, weight decay (PyTorch's
 * rule); first: initialise the momentum buffer. Calls chains_update. */
void chains_sgd_step(prune_chains *c, double lr, double momentum, int nesterov, double wd,
                     int first);

/* Direct sample: for every unit walk its chain, keeping group k while a
 * uniform draw is <= sigma(alpha_k); then prunespace_fix_structure (group steps). */
void chains_sample(const prune_chains *c, rng *r, int *w);

/* Group-aligned uniform random widths c_min + j*g, j uniform in 0..K, per
 * unit; then prunespace_fix_structure (group steps). */
void chains_random_widths(const prune_space *sp, rng *r, int *w);

/* DMCP's official code's width of a unit of C channels (at the space's max
 * width `max`) at width fraction f: make_divisible(C*f/max, 8), i.e. the
 * nearest multiple of 8, at least 8 and not below 90 % of C*f/max, then
 * clamped to [1, C]. */
int chains_official_width(int C, double f, double max);

/* prune.sampling "official" (ALGORITHMS.md 2.6): the smallest sub-net has
 * every unit at chains_official_width(C, width.min); a random sub-net draws
 * each unit's fraction uniformly from {max} and {min + k*offset < max}. Both end
 * with prunespace_fix_structure (channel steps), so widths need not be group-aligned. */
void chains_official_min_widths(const prune_space *sp, int *w);
void chains_official_random_widths(const prune_space *sp, rng *r, int *w);

/* Expected-sampling widths: round(E[c] - 1e-4) clamped to [1, C], then
 * prunespace_fix_structure (channel steps). */
void chains_es_widths(const prune_chains *c, int *w);

/* P of the channel at (0-based) index ch of unit u: 1 inside c_min, P_k in
 * group k, 0 beyond C. */
double chains_channel_p(const prune_chains *c, int u, int ch);

#endif
