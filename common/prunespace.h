/* prunespace.h - the DMCP search space of a CNN: units, channel groups, FLOPs.
 *
 * A prune_space describes how a supernet (a ResNet, either form, or a
 * MobileNetV2, MobileNetV3 or EfficientNet model_cfg with explicit widths)
 * may be narrowed (ALGORITHMS.md 2.1-2.5):
 *   - units: the sets of output channels that share one width. ResNet: the
 *     stem, one residual stream per stage (owned by the stage's projection
 *     block; with no projection the incoming stream continues, so when the
 *     stem width equals stage 1's the stem unit governs layer1), and the
 *     inner width of every block (a Bottleneck has two: "layerI.J.conv1"
 *     and "layerI.J.conv2"). The MobileNet family: the stem, the expansion
 *     width of each block (which the depthwise conv and the squeeze-
 *     excitation share: SE's own width is tied to it, modelcfg_se_width; a
 *     block without expansion uses its input's unit), the output of each
 *     block that changes shape (a residual block reuses its input's unit),
 *     and the last 1x1 conv (MobileNetV3's hidden classifier Linear keeps
 *     its width).
 *   - groups: a unit of C channels keeps a prefix of c_min + j*g channels,
 *     j = 0..K, with g = floor(offset*C/max), K = floor((max-min)/offset +
 *     1e-4), c_min = C - K*g (g is raised to 1 and K lowered so that
 *     c_min >= 1 for very narrow units).
 *   - layers: every conv and the classifier, with the units of their input
 *     and output widths, so that real MACs (integer widths) and expected
 *     MACs (expected widths, with gradients) come from one table, by the
 *     counting rule of modelcfg.h.
 *   - sites: the BatchNorms, by state_dict prefix, whose outputs a unit's
 *     keep probabilities scale in the architecture step; and each
 *     squeeze-excitation's fc1, whose channels follow the expansion unit's
 *     (a tied site).
 * A width vector (one width per unit) maps to an explicit model_cfg; two
 * units are "partners" when equal widths would change the block structure
 * (a stride-1 projection or an expansion conv would disappear), and
 * prunespace_fix_structure keeps them apart. Pure C, no allocation after
 * prune_space_init; a space is read-only and thread-safe once built.
 */
#ifndef KILN_PRUNESPACE_H
#define KILN_PRUNESPACE_H

#include "common/err.h"
#include "common/modelcfg.h"

#define PRUNESPACE_NAME_MAX 48

/* The width range of DMCP's configs: [min, max, offset] as fractions of the
 * reference width (the supernet is `max` times the reference). */
typedef struct prunespace_width {
    double min, max, offset;
} prunespace_width;

typedef struct prunespace_unit {
    char name[PRUNESPACE_NAME_MAX]; /* "conv1", "layer2", "layer2.0.conv1", "features.3.expand", ...
                                     */
    int channels;                   /* C: width in the supernet */
    int c_min;                      /* always kept */
    int group;                      /* g: channels per group */
    int K;                          /* prunable groups; widths c_min + j*g, j = 0..K */
    int partner;                    /* unit this one's width must differ from, or -1 */
} prunespace_unit;

/* A conv (or the classifier) whose MACs depend on unit widths:
 * (k*k*cin/groups + bias) * hw * cout, depthwise: (k*k + bias) * hw * cout;
 * linear: (cin + bias) * cout. */
typedef struct prunespace_layer {
    char name[PRUNESPACE_NAME_MAX]; /* weight's state_dict prefix: "layer1.0.conv1", "fc" */
    int in_unit, out_unit;          /* -1: the width is fixed (in_fixed / out_fixed) */
    int in_fixed, out_fixed;
    int k;         /* kernel side (1 for the classifier) */
    long hw;       /* output pixels Ho*Wo (1 for the classifier) */
    int depthwise; /* groups == channels */
    int bias;
    int blk; /* the block it belongs to (ResNet: blocks counted over all stages in order;
                MobileNet family: the block index), -1 for the stem, last conv and classifier */
    /* Squeeze-excitation: a side tied to its unit (SE fc1's output, fc2's input)
     * has width modelcfg_se_width(tie, C, w) at unit width w (C the unit's
     * supernet width); 0: the side is the unit's width itself. */
    int in_tie, out_tie;
} prunespace_layer;

/* A BatchNorm whose output channels belong to a unit; or (tie > 0) a
 * squeeze-excitation's fc1, whose tie output channels follow the unit's
 * width (SE channel j is kept when the unit keeps modelcfg_se_width > j). */
typedef struct prunespace_site {
    char bn[PRUNESPACE_NAME_MAX]; /* state_dict prefix of the BN (or of the SE's fc1) */
    int unit;
    int tie; /* 0, or the SE width in the supernet */
} prunespace_site;

typedef struct prune_space {
    model_cfg super; /* the supernet, explicit widths */
    prunespace_width width;
    int n_units, n_layers, n_sites;
    prunespace_unit *units;   /* (n_units) in forward order */
    prunespace_layer *layers; /* (n_layers) */
    prunespace_site *sites;   /* (n_sites) */
    /* where unit widths go in a model_cfg */
    int stem_unit;
    int *stage_unit; /* ResNet (n_stages): the stage's residual width */
    int *mid_unit;   /* ResNet: (n_stages * MC_MAX_STAGE_BLOCKS) inner widths (conv1) */
    int *mid2_unit;  /* ResNet with Bottlenecks (same layout): conv2 widths; else NULL */
    int *hid_unit; /* MobileNet family (n_blocks): hidden width (the input's unit without expansion)
                    */
    int *out_unit; /* MobileNet family (n_blocks) */
    int last_unit; /* MobileNet family */
} prune_space;

/* Builds the space of supernet c with width settings w. Returns 0, or
 * ERR_INVALID (eb says why: a ViT arch, min/max/offset out of order). On
 * failure s is left empty; prune_space_deinit is safe either way. */
int prune_space_init(prune_space *s, const model_cfg *c, const prunespace_width *w, errbuf *eb);
void prune_space_deinit(prune_space *s);

/* The unit governing BN `bn` (state_dict prefix), or -1. */
int prunespace_site_unit(const prune_space *s, const char *bn);

/* The site called `bn`, or NULL. */
const prunespace_site *prunespace_site_find(const prune_space *s, const char *bn);

/* For a tied site: the smallest unit width that keeps SE channel j
 * (0 <= j < tie), so that channel j's keep probability is that of the unit's
 * channel (result - 1). */
int prunespace_tie_channel_width(const prune_space *s, const prunespace_site *t, int j);

/* Width vectors (n_units ints): every unit at C, and every unit at c_min. */
void prunespace_full_widths(const prune_space *s, int *w);
void prunespace_min_widths(const prune_space *s, int *w);

/* The explicit model config of widths w (each in 1..C). */
void prunespace_widths_to_cfg(const prune_space *s, const int *w, model_cfg *out);

/* MACs of one image through the net of widths w (equals
 * modelcfg_macs(prunespace_widths_to_cfg(w))). */
double prunespace_macs(const prune_space *s, const int *w);

/* MACs with expected widths ec (n_units doubles). If grad is not NULL it
 * receives d(MACs)/d(ec[u]) for every unit. */
double prunespace_expected_macs(const prune_space *s, const double *ec, double *grad);

/* The same with every layer of block b weighted by bw[b] (the block's keep
 * probability; bw NULL: all 1). grad (may be NULL) as above; bgrad (may be
 * NULL, one double per block) receives d(MACs)/d(bw[b]), the block's MACs
 * at the expected widths. */
double prunespace_expected_macs_blocks(const prune_space *s, const double *ec, const double *bw,
                                       double *grad, double *bgrad);

/* Number of blocks the layers refer to (the largest blk + 1). */
int prunespace_n_blocks(const prune_space *s);

/* Replaces the channel grid of unit u: c_min + K*group must equal its
 * channels, c_min >= 1, group >= 1, K >= 0 (asserted). */
void prunespace_set_grid(prune_space *s, int u, int c_min, int group, int K);

/* The unit called `name`, or -1. */
int prunespace_unit_find(const prune_space *s, const char *name);

/* MACs of one layer at widths w (the report's per-layer numbers). */
double prunespace_layer_macs(const prune_space *s, int layer, const int *w);

/* Moves every unit whose width equals its partner's by one step (up if it
 * fits under C, else down): one group when `grid`, else one channel. Units
 * are visited in forward order, so a moved unit is checked before the units
 * that follow it. Returns the number of units moved. */
int prunespace_fix_structure(const prune_space *s, int *w, int grid);

/* Whether unit u may take width v in widths w: lo <= v <= C and v differs
 * from the width of every unit it is a partner of or that is its partner. */
int prunespace_move_ok(const prune_space *s, const int *w, int u, int v, int lo);

/* Uniform width multiplier m in (0, max]: every unit gets round(C*m/max)
 * clamped to [1, C], then prunespace_fix_structure (channel steps). */
void prunespace_uniform_widths(const prune_space *s, double m, int *w);

/* DMCP's budget loss (`log_l1`, two-sided with a dead band), on MFLOPs:
 *   e <  lo*t:        lam * log(r*|e - t|)
 *   lo*t <= e < t:    0
 *   e >= t:           lam * log(r*|e - lo*t|)
 * with r = 0.1 when |e - t| > 200, else 1. *dl_de (may be NULL) receives
 * the derivative with respect to e (0 inside the band). */
double prunespace_budget_loss(double e, double t, double lam, double lo, double *dl_de);

#endif
