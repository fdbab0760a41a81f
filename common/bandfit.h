/* bandfit.h - the network of a search space nearest a wanted one, inside a MACs band.
 *
 * Deriving a network (DMCP's expected architecture, DNA's expected widths
 * and depths, a scaling rule's multiplier) gives widths and depths in real
 * numbers; the network that is trained must have integer ones and its real
 * MACs must lie in the +-1 % band around the target. bandfit_run finds
 * them: the integer widths (and depths) inside each unit's allowed range,
 * structure kept (partner units apart), whose exact MACs lie in [lo, hi]
 * and which are close to the wanted ones, distance
 *   sum over the units in use ((w_u - want_u) / scale_u)^2
 *   + sum over the stages (d_s - want_depth_s)^2.
 * MACs come from the space's layer table (prunespace.h), exactly as
 * prunespace_macs and adaptspace_macs count them. Used by prune (DMCP, uniform) and adapt
 * (DNA and the three baselines). Depends on common/ only (prunespace.h,
 * bestfirst.h), never on worker code. Pure C, no global state; thread-safe.
 */
#ifndef KILN_BANDFIT_H
#define KILN_BANDFIT_H

#include "common/err.h"
#include "common/prunespace.h"

typedef struct bandfit_spec {
    const prune_space *sp;    /* borrowed: units, partners, layers */
    const double *want;       /* (n_units) the wanted widths */
    const double *scale;      /* (n_units) > 0: a deviation of this many channels costs 1;
                                 NULL: each unit's group */
    const int *w_min, *w_max; /* (n_units) allowed widths, 1 <= min <= max; NULL: c_min, C */
    int n_stages;             /* 0: every block kept (d unused); else stages cover all blocks */
    const int *first;         /* (n_stages) flat index of each stage's first block */
    const int *depth_max;     /* (n_stages) blocks of each stage; depths are 1..depth_max */
    const double *want_depth; /* (n_stages) the wanted depths */
    double lo, hi;            /* the band, in MACs */
} bandfit_spec;

typedef struct bandfit_result {
    double macs;               /* exact MACs of the returned network */
    double cost;               /* its distance from the wanted network (as above) */
    int moved;                 /* channels plus blocks changed from the start */
    long combos;               /* combinations of the coupled widths and depths tried */
    int in_band;               /* macs in [lo, hi] */
    double min_macs, max_macs; /* the smallest and the largest network of the ranges */
} bandfit_result;

/* Fits the network into the band. On entry w (n_units) and d (n_stages;
 * may be NULL when n_stages is 0) hold the start: the wanted network
 * rounded, structure kept. When its MACs lie in the band it is returned
 * unchanged. Otherwise a search (bandfit.c): depth vectors ranked by a
 * continuous relaxation; at each, the units that feed other units' layers
 * ("coupled": the residual streams) enumerated nearest-first; for each
 * combination the MACs are linear in the other widths, which a Lagrangian
 * fit (and, where whole channels are coarse steps, a dynamic program over
 * the sums) places in the band. The best network found is polished one
 * channel or block at a time toward the wanted one and its MACs recounted.
 * Units not in use (only in dropped blocks, or in no layer) keep their
 * start widths. The search is bounded by counts of combinations, not by
 * time, so its result is the same on every machine.
 * Returns 0 with w, d in the band, or ERR_INVALID when no network in the
 * band was found (always when the band lies outside every network's
 * bounds): w, d then hold the valid network nearest the band that was
 * seen and r->macs its MACs. r may not be NULL. */
int bandfit_run(const bandfit_spec *f, int *w, int *d, bandfit_result *r);

/* The job error for a band no network was found in: ERR_INVALID with a
 * message naming the spec's target field (e.g. "prune.target_ratio"), the
 * target and band in MFLOPs, the MFLOPs of the nearest network found (r
 * from a failed bandfit_run on f) and the span of the space. */
int bandfit_error(errbuf *eb, const char *field, double target_mflops, const bandfit_spec *f,
                  const bandfit_result *r);

/* Exact MACs of widths w at depths d (d NULL or n_stages 0: every block),
 * by the space's layer table; equals prunespace_macs / adaptspace_macs. */
double bandfit_macs(const bandfit_spec *f, const int *w, const int *d);

#endif
