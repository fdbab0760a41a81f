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
 * prunespace_layer.blk). A width vector (one per unit) and a depth vector (one per
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

#define ADAPTSPACE_MAX_STAGES MC_MAX_MB_BLOCKS

/* The window around a unit of width c, as fractions of c. */
typedef struct adaptspace_window {
    double min, max, group;
} adaptspace_window;

typedef struct adapt_space {
    prune_space sp; /* the supernet (sp.super): units with window grids, layers */
    int n_stages;
    int n_blocks;                      /* all blocks of the supernet */
    int first[ADAPTSPACE_MAX_STAGES];  /* flat index of each stage's first block */
    int depth[ADAPTSPACE_MAX_STAGES];  /* blocks of each stage in the supernet */
    int depth0[ADAPTSPACE_MAX_STAGES]; /* blocks of each stage in the existing network */
    int *nominal;                      /* (n_units) the unit's width in the existing network (the
                                          template's for units of appended blocks) */
} adapt_space;

/* The grid of a window w around width c: *c_min, *g, *K (c_max = c_min + K*g). */
void adaptspace_window_grid(const adaptspace_window *w, int c, int *c_min, int *g, int *K);

/* Builds the window supernet around the existing network `orig` (every
 * unit at c_max of its window; the grids set). Returns 0 or ERR_INVALID
 * (a ViT arch; eb says why). adaptspace_deinit is safe after a failure. */
int adaptspace_init(adapt_space *a, const model_cfg *orig, const adaptspace_window *w, errbuf *eb);

/* Builds the space of an explicit supernet config `super` with the default
 * DMCP grids (the caller then sets every unit's grid with prunespace_set_grid, and
 * nominal and depth0); used by the elastic operations and to restore a
 * checkpoint. Returns 0 or ERR_INVALID. */
int adaptspace_init_super(adapt_space *a, const model_cfg *super, errbuf *eb);

void adaptspace_deinit(adapt_space *a);

/* The stages of a config: fills first[] and depth[] (ADAPTSPACE_MAX_STAGES each)
 * and returns the number of stages. */
int adaptspace_stages(const model_cfg *c, int *first, int *depth);

/* The stage of flat block b. */
int adaptspace_stage_of(const adapt_space *a, int b);

/* Whether flat block b may be dropped (not the first of its stage). */
int adaptspace_keepable(const adapt_space *a, int b);

/* The flat block of a block prefix ("layer2.1", "features.5"), or -1. */
int adaptspace_block_of(const adapt_space *a, const char *prefix);

/* The explicit config of widths w (one per unit) and depths d (one per
 * stage, 1..depth[s]; NULL = the supernet's): blocks beyond d[s] of each
 * stage are left out. */
void adaptspace_cfg(const adapt_space *a, const int *w, const int *d, model_cfg *out);

/* MACs of one image through the net of widths w and depths d (NULL = full);
 * equals modelcfg_macs(adaptspace_cfg(w, d)). */
double adaptspace_macs(const adapt_space *a, const int *w, const int *d);

/* Every unit at c_min (structure kept, as prunespace_min_widths) / at C. */
void adaptspace_min_widths(const adapt_space *a, int *w);
void adaptspace_full_widths(const adapt_space *a, int *w);

/* ---- config edits (the elastic depth operations) ---------------------------- */

/* Appends a block to stage s of config c (depth[] from adaptspace_stages): a copy
 * of the stage's last block (same widths; for MobileNetV2 stride 1 and
 * input = output width) whose inner width (ResNet mid, MobileNetV2 hidden)
 * is `inner`. Returns the new block's flat index, or ERR_INVALID when the
 * config has no room (MC_MAX_STAGE_BLOCKS / MC_MAX_MB_BLOCKS). */
int adaptspace_cfg_append_block(model_cfg *c, int s, int inner);

/* Removes the last `count` blocks of stage s (which keeps at least one). */
void adaptspace_cfg_remove_blocks(model_cfg *c, int s, int count);

/* ---- names between two versions of a net --------------------------------------- */

/* Block correspondence from a net A (n_from blocks) to a net B (n_to):
 * to[i] is B's index of A's block i, or -1. ResNet names blocks per stage
 * ("layer2.1"), so only a block's presence matters; MobileNetV2 numbers
 * "features.N" over the whole net and renames. */
typedef struct adaptspace_blockmap {
    mc_arch arch;
    int n_from, n_to;
    int to[MC_MAX_MB_BLOCKS];
} adaptspace_blockmap;

/* The identity map of a net with n blocks. */
void adaptspace_blockmap_identity(adaptspace_blockmap *m, mc_arch arch, int n);

/* A sub-net of depths d (per stage of a) inside a's supernet. */
void adaptspace_blockmap_subnet(adaptspace_blockmap *m, const adapt_space *a, const int *d);

/* slice_name_fn (ctx = const adaptspace_blockmap *): A's tensor or unit name into
 * B's; 0 when its block has no counterpart. */
int adaptspace_map_name(const void *ctx, const char *name, char *out, size_t len);

#endif
