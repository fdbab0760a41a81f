/* adapt_derive.c - the network a DNA search found (ALGORITHMS.md 3.2(f); see adapt.h).
 *
 * Widths round(E[c]) and depths round(E[depth]), then fitted into the
 * +-1 % band around the target by common/bandfit.h: the widths and depths
 * nearest the expected ones (a group of a unit costs 1, a block 1) whose
 * real MACs lie in the band, sharing rules and block structure kept; units
 * only in dropped blocks keep their rounded widths. A target no network of
 * the final space reaches within the band fails the job before retraining.
 * A width-only search (adapt.search_depth false) keeps every block.
 */
#include "common/bandfit.h"
#include "common/xalloc.h"
#include "worker/jobs/adapt.h"

#include <stdlib.h>
#include <string.h>

const char *adapt_target_field(const adapt_spec *as)
{
    return as->target_ratio > 0 ? "adapt.target_ratio" : "adapt.target_mflops";
}

/* All ranks take rank 0's outcome: its widths, depths and return code. */
static int agree(adapter *a, int *w, int *d, int rc, errbuf *eb)
{
    if (a->j.d->world <= 1)
        return rc;
    const adapt_space *as = &a->st->as;
    int rc0 = rc;
    dist_bcast(&rc0, sizeof rc0, 0);
    dist_bcast(w, (size_t)as->sp.n_units * sizeof(int), 0);
    dist_bcast(d, (size_t)as->n_stages * sizeof(int), 0);
    if (rc0 != rc)
        rc = rc0 == 0 ? 0 : err_set(eb, rc0, "the derivation failed on rank 0");
    return rc;
}

int dna_derive(adapter *a, int *w, int *d, json_t *info, errbuf *eb)
{
    const adapt_state *st = a->st;
    const adapt_space *as = &st->as;
    int n = as->sp.n_units;
    adapt_expected_arch(st, w, d);
    json_object_set_new(info, "expected",
                        json_pack("{s:o, s:o, s:f}", "widths", nas_int_array(w, n), "depths",
                                  nas_int_array(d, as->n_stages), "mflops",
                                  adaptspace_macs(as, w, d) / 1e6));
    double *ec = xcalloc((size_t)n, sizeof(double)), ed[ADAPTSPACE_MAX_STAGES];
    adapt_expected(st, ec, ed);
    if (st->dc.fixed) /* width-only: every block stays, the fit moves widths alone */
        memcpy(d, as->depth, (size_t)as->n_stages * sizeof(int));
    bandfit_spec f = {.sp = &as->sp,
                      .want = ec,
                      .n_stages = st->dc.fixed ? 0 : as->n_stages,
                      .first = as->first,
                      .depth_max = as->depth,
                      .want_depth = ed,
                      .lo = a->goal.target * (1 - ADAPT_TARGET_TOL) * 1e6,
                      .hi = a->goal.target * (1 + ADAPT_TARGET_TOL) * 1e6};
    bandfit_result r;
    int rc = bandfit_run(&f, w, d, &r);
    double m = adaptspace_macs(as, w, d);
    if (m != r.macs) /* the fit's count and the space's disagree: a bug, not an input */
        rc = err_set(eb, ERR_INTERNAL, "derived network: %.0f MACs by the fit, %.0f by the space",
                     r.macs, m);
    else if (rc != 0)
        rc = bandfit_error(eb, adapt_target_field(&a->as), a->goal.target, &f, &r);
    json_object_set_new(info, "fitted",
                        json_pack("{s:o, s:o, s:f, s:i, s:b, s:f, s:I}", "widths",
                                  nas_int_array(w, n), "depths", nas_int_array(d, as->n_stages),
                                  "mflops", m / 1e6, "moves", r.moved, "in_band", r.in_band,
                                  "distance", r.cost, "combinations", (json_int_t)r.combos));
    free(ec);
    return agree(a, w, d, rc, eb); /* the same network everywhere, whatever the rounding */
}
