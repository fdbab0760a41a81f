/* adaptspace.h - the DNA search space of a CNN: width windows and depths.
 *
 * An adapt_space describes the supernet of a DNA search (ALGORITHMS.md
 * 3.2) around an existing network (a ResNet of either form or a MobileNetV2 model_cfg
 * with explicit widths):
 *   - widths: the DMCP units of prunespace.h, each with a window grid
 *     c_min + k*g, k = 0..K, around the unit's width c in the existing
 *     network: g = max(1, round(group*c)), c_min = round_g(min*c) (at least
 *     one group), c_max = round_g(max*c) (at least c_min + g), K = (c_max -
 *     c_min)/g. The supernet is the network at c_max everywhere;
 *   - depths: the blocks of each stage. A stage is a ResNet stage, or a
 *     run of MobileNetV2 blocks: one that changes shape followed by the
 *     residual blocks after it. The first block of a stage is always kept;
 *     the others ("keepable") are identity-residual and can be dropped from
 *     the end of the stage.
 * Blocks are numbered over the whole net in forward order (prunespace.h's
 * ps_layer.blk). A width vector (one per unit) and a depth vector (one per
 * stage) give an explicit model_cfg; the elastic operations edit the
 * supernet config (a block appended to or dropped from a stage) and map
 * tensor and unit names between two versions of it, and between a sub-net
 * with fewer blocks and its supernet (MobileNetV2 numbers its blocks in one
 * sequence, so dropping a block renames the ones after it).
 * Pure C, no allocation after init but the unit arrays; thread-safe once
 * built.
 */
#ifndef KILN_ADAPTSPACE_H
#define KILN_ADAPTSPACE_H

#include "common/err.h"
#include "common/modelcfg.h"
#include "common/prunespace.h"

#include <stddef.h>

#define AS_MAX_STAGES MC_MAX_MB_BLOCKS

/* The window around a unit of width c, as fractions of c. */
typedef struct as_window {
    double min, max, group;
} as_window;

typedef struct adapt_space {
    prune_space sp; /* the supernet (sp.super): units with window grids, layers */
    int n_stages;
    int n_blocks;              /* all blocks of the supernet */
    int first[AS_MAX_STAGES];  /* flat index of each stage's first block */
    int depth[AS_MAX_STAGES];  /* blocks of each stage in the supernet */
    int depth0[AS_MAX_STAGES]; /* blocks of each stage in the existing network */
    int *nominal;              /* (n_units) the unit's width in the existing network (the
                                  template's for units of appended blocks) */
} adapt_space;

/* The grid of a window w around width c: *c_min, *g, *K (c_max = c_min + K*g). */
void as_window_grid(const as_window *w, int c, int *c_min, int *g, int *K);

/* Builds the window supernet around the existing network `orig` (every
 * unit at c_max of its window; the grids set). Returns 0 or ERR_INVALID
 * (a ViT arch; eb says why). as_deinit is safe after a failure. */
int as_init(adapt_space *a, const model_cfg *orig, const as_window *w, errbuf *eb);

/* Builds the space of an explicit supernet config `super` with the default
 * DMCP grids (the caller then sets every unit's grid with ps_set_grid, and
 * nominal and depth0); used by the elastic operations and to restore a
 * checkpoint. Returns 0 or ERR_INVALID. */
int as_init_super(adapt_space *a, const model_cfg *super, errbuf *eb);

void as_deinit(adapt_space *a);

/* The stages of a config: fills first[] and depth[] (AS_MAX_STAGES each)
 * and returns the number of stages. */
int as_stages(const model_cfg *c, int *first, int *depth);

/* The stage of flat block b. */
int as_stage_of(const adapt_space *a, int b);

/* Whether flat block b may be dropped (not the first of its stage). */
int as_keepable(const adapt_space *a, int b);

/* The flat block of a block prefix ("layer2.1", "features.5"), or -1. */
int as_block_of(const adapt_space *a, const char *prefix);

/* The explicit config of widths w (one per unit) and depths d (one per
 * stage, 1..depth[s]; NULL = the supernet's): blocks beyond d[s] of each
 * stage are left out. */
void as_cfg(const adapt_space *a, const int *w, const int *d, model_cfg *out);

/* MACs of one image through the net of widths w and depths d (NULL = full);
 * equals modelcfg_macs(as_cfg(w, d)). */
double as_macs(const adapt_space *a, const int *w, const int *d);

/* Every unit at c_min (structure kept, as ps_min_widths) / at C. */
void as_min_widths(const adapt_space *a, int *w);
void as_full_widths(const adapt_space *a, int *w);

/* ---- config edits (the elastic depth operations) ---------------------------- */

/* Appends a block to stage s of config c (depth[] from as_stages): a copy
 * of the stage's last block (same widths; for MobileNetV2 stride 1 and
 * input = output width) whose inner width (ResNet mid, MobileNetV2 hidden)
 * is `inner`. Returns the new block's flat index, or ERR_INVALID when the
 * config has no room (MC_MAX_STAGE_BLOCKS / MC_MAX_MB_BLOCKS). */
int as_cfg_append_block(model_cfg *c, int s, int inner);

/* Removes the last `count` blocks of stage s (which keeps at least one). */
void as_cfg_remove_blocks(model_cfg *c, int s, int count);

/* ---- names between two versions of a net --------------------------------------- */

/* Block correspondence from a net A (n_from blocks) to a net B (n_to):
 * to[i] is B's index of A's block i, or -1. ResNet names blocks per stage
 * ("layer2.1"), so only a block's presence matters; MobileNetV2 numbers
 * "features.N" over the whole net and renames. */
typedef struct as_blockmap {
    mc_arch arch;
    int n_from, n_to;
    int to[MC_MAX_MB_BLOCKS];
} as_blockmap;

/* The identity map of a net with n blocks. */
void as_blockmap_identity(as_blockmap *m, mc_arch arch, int n);

/* A sub-net of depths d (per stage of a) inside a's supernet. */
void as_blockmap_subnet(as_blockmap *m, const adapt_space *a, const int *d);

/* slice_name_fn (ctx = const as_blockmap *): A's tensor or unit name into
 * B's; 0 when its block has no counterpart. */
int as_map_name(const void *ctx, const char *name, char *out, size_t len);

#endif
