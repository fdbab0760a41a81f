/* prune_derive.c - the network a DMCP search found (ALGORITHMS.md 2.7; see prune.h).
 *
 * Expected sampling (ES): every unit's width is round(E[c] - 1e-4), the
 * reference code's rule, then - unlike the reference, which does not check
 * it - fitted into the +-1 % band around the target by common/bandfit.h:
 * the widths nearest the expected ones (a group of a unit costs 1) whose
 * real MACs lie in the band; a target no network of the space reaches
 * within the band fails the job. Direct sampling (DS): walk every unit's
 * chain and redraw the whole structure until its real MACs lie in the
 * band. Both keep the sharing rules (a unit is one width) and the block
 * structure (partner units apart).
 */
#include "common/bandfit.h"
#include "common/xalloc.h"
#include "worker/jobs/prune.h"

#include <stdlib.h>
#include <string.h>

#define DS_MAX_DRAWS 20000
#define DS_TAG       0x64735f73616d70ULL /* "ds_samp" */

static json_t *widths_json(const int *w, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(w[i]));
    return a;
}

const char *prune_target_field(const pruner *p)
{
    return p->ps.target_ratio > 0 ? "prune.target_ratio" : "prune.target_mflops";
}

int prune_fit_band(const pruner *p, const double *want, const double *scale, const int *w_min,
                   int *w, bandfit_result *r, errbuf *eb)
{
    bandfit_spec f = {.sp = &p->sp,
                      .want = want,
                      .scale = scale,
                      .w_min = w_min,
                      .lo = p->goal.target * (1 - PRUNE_TARGET_TOL) * 1e6,
                      .hi = p->goal.target * (1 + PRUNE_TARGET_TOL) * 1e6};
    int rc = bandfit_run(&f, w, NULL, r);
    return rc == 0 ? 0 : bandfit_error(eb, prune_target_field(p), p->goal.target, &f, r);
}

/* All ranks take rank 0's outcome: its widths and its return code. */
static int agree(pruner *p, int *w, int rc, errbuf *eb)
{
    if (p->j.d->world <= 1)
        return rc;
    int rc0 = rc;
    dist_bcast(&rc0, sizeof rc0, 0);
    dist_bcast(w, (size_t)p->sp.n_units * sizeof(int), 0);
    if (rc0 != rc)
        rc = rc0 == 0 ? 0 : err_set(eb, rc0, "the derivation failed on rank 0");
    return rc;
}

int prune_derive_widths(pruner *p, int *w, json_t *info, errbuf *eb)
{
    const prune_space *sp = &p->sp;
    int n = sp->n_units;
    int *es = xcalloc((size_t)n, sizeof(int)), *ds = xcalloc((size_t)n, sizeof(int));
    double *ec = xcalloc((size_t)n, sizeof(double));
    double lo = p->goal.target * (1 - PRUNE_TARGET_TOL),
           hi = p->goal.target * (1 + PRUNE_TARGET_TOL);
    chains_es_widths(&p->ch, es);
    json_object_set_new(info, "es",
                        json_pack("{s:o, s:f}", "widths", widths_json(es, n), "mflops",
                                  prunespace_macs(sp, es) / 1e6));
    chains_expected_widths(&p->ch, ec);
    bandfit_result fr;
    errbuf fit_eb = {{0}};
    int fit_rc = prune_fit_band(p, ec, NULL, NULL, es, &fr, &fit_eb);
    json_object_set_new(info, "es_fitted",
                        json_pack("{s:o, s:f, s:i, s:b, s:f, s:I}", "widths", widths_json(es, n),
                                  "mflops", fr.macs / 1e6, "moved_channels", fr.moved, "in_band",
                                  fr.in_band, "distance", fr.cost, "combinations",
                                  (json_int_t)fr.combos));
    /* direct samples within the band */
    rng r;
    rng_derive(&r, p->j.spec->seed ^ DS_TAG, 0, 0);
    json_t *samples = json_array();
    int want = p->ps.ds_samples, draws = 0, found = 0;
    if (p->ps.derive == PRUNE_DERIVE_DS && want < 1)
        want = 1;
    while (found < want && draws < DS_MAX_DRAWS) {
        chains_sample(&p->ch, &r, ds);
        draws++;
        double m = prunespace_macs(sp, ds) / 1e6;
        if (m < lo || m > hi)
            continue;
        if (found == 0 && p->ps.derive == PRUNE_DERIVE_DS)
            memcpy(w, ds, (size_t)n * sizeof(int));
        json_array_append_new(samples,
                              json_pack("{s:o, s:f}", "widths", widths_json(ds, n), "mflops", m));
        found++;
    }
    json_object_set_new(info, "ds", samples);
    json_object_set_new(info, "ds_draws", json_integer(draws));
    json_object_set_new(info, "used", json_string(p->ps.derive == PRUNE_DERIVE_DS ? "ds" : "es"));
    int rc = 0;
    if (p->ps.derive == PRUNE_DERIVE_ES) {
        memcpy(w, es, (size_t)n * sizeof(int));
        if (fit_rc != 0) /* not trained: a network outside the band is not the job asked for */
            rc = err_set(eb, fit_rc, "%s", fit_eb.msg);
    } else if (found == 0) {
        rc = err_set(eb, ERR_INTERNAL,
                     "no direct sample within +-1 %% of %.4f MFLOPs in %d draws; use derive "
                     "\"es\"",
                     p->goal.target, draws);
    }
    free(es);
    free(ds);
    free(ec);
    return agree(p, w, rc, eb); /* the same network everywhere, whatever the rounding */
}
