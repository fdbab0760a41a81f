/* adapt.c - the adapt job (see adapt.h): set-up, the existing network's
 * weights, the report, artifacts and the retrain through nas.c. */
#include "worker/jobs/adapt.h"

#include "common/log.h"
#include "common/xalloc.h"
#include "worker/jobs/checkpoint.h"
#include "worker/models/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ELASTIC_TAG 0x656c617374ULL /* "elast" */

/* ---- set-up ----------------------------------------------------------------------- */

/* The existing network with the given weights: its accuracy (its own BN
 * statistics), and into the supernet. */
static int inherit_weights(adapter *a, const char *path, errbuf *eb)
{
    net orig;
    net_init(&orig);
    int rc = model_build(&orig, &a->j.spec->model, a->j.b, a->j.spec->seed, NULL, eb);
    if (rc == 0)
        rc = ckpt_load_weights(path, &orig, eb);
    if (rc == 0 && a->j.d->world > 1) {
        dist_bcast(orig.params, orig.n_params * sizeof(float), 0);
        if (orig.n_buffers > 0)
            dist_bcast(orig.buffers, orig.n_buffers * sizeof(float), 0);
    }
    if (rc == 0) {
        eval_result e;
        train_evaluate(&orig, &a->j.test, a->j.b, a->j.d, &e);
        a->top1_before = e.top1;
        if (a->st != NULL)
            adapt_inherit(a->st, &orig);
        nas_say(&a->j, "info", "existing network from %s: top-1 %.4f", path, e.top1);
    }
    net_deinit(&orig);
    return rc == 0 ? 0 : err_prefix(eb, rc, "init_from");
}

static int setup(adapter *a, const job_spec *spec, const job_env *env, errbuf *eb)
{
    a->top1_before = a->top1_super = -1;
    nas_reparse rp;
    nas_reparse_begin(&rp);
    adaptspec_parse(&a->as, &rp.root, spec->adapt, &spec->model, nas_world(env));
    int rc = nas_reparse_end(&rp, "adapt spec", eb);
    if (rc != 0)
        return rc;
    a->goal.ss = &a->as.search;
    a->goal.target = a->as.target_mflops;
    a->goal.target_tol = ADAPT_TARGET_TOL;
    a->full_mflops = modelcfg_macs(&spec->model) / 1e6;
    int dna = a->as.method == ADAPT_DNA;
    rc = nas_init(&a->j, spec, env, dna ? a->as.search.batch_size : spec->optim.batch_size,
                  dna ? a->as.search.calib_batches : 0, dna ? a->as.search.eval_limit : 0, eb);
    if (rc != 0)
        return rc;
    if (!dna)
        return 0;
    a->goal.warmup_steps = a->j.steps_per_epoch * a->as.search.warmup_epochs;
    a->goal.total_steps =
        a->j.steps_per_epoch * (a->as.search.warmup_epochs + a->as.search.search_epochs);
    adapt_space as;
    if ((rc = adaptspace_init(&as, &spec->model, &a->as.window, eb)) != 0)
        return rc;
    a->st = adapt_state_new(&as, a->j.b, spec->seed, eb);
    if (a->st == NULL) {
        adaptspace_deinit(&as);
        return ERR_INVALID;
    }
    a->st->dc.fixed = !a->as.search_depth;
    adapt_update(a->st);
    if (a->as.init == ADAPT_INIT_EXISTING)
        adapt_init_existing(a->st);
    elastic_init(&a->el, &a->as.elastic, spec->seed ^ ELASTIC_TAG, a->st->as.sp.n_units);
    /* the supernet must keep the whole band of the target within reach: a
     * condense below it would make the derivation fail (it did on other
     * machines' rounding, where a search condensed further) */
    a->el.min_mflops = a->goal.target * (1.0 + ADAPT_TARGET_TOL);
    if (a->j.d->world > 1)
        dist_bcast(a->st->super.params, a->st->super.n_params * sizeof(float), 0);
    return 0;
}

/* Frees the search's memory (kept until the retrain starts). */
static void release_search(adapter *a)
{
    nas_release(&a->j);
    adapt_state_free(a->st);
    a->st = NULL;
}

static void teardown(adapter *a)
{
    release_search(a);
    nas_deinit(&a->j);
    elastic_deinit(&a->el);
}

/* ---- the report --------------------------------------------------------------------- */

/* Units and stages of the final space with the found widths and depths. */
static void add_tables(const adapter *a, const int *w, const int *d, json_t *rep)
{
    const adapt_state *st = a->st;
    const adapt_space *as = &st->as;
    double *ec = xcalloc((size_t)as->sp.n_units, sizeof(double)), ed[ADAPTSPACE_MAX_STAGES];
    adapt_expected(st, ec, ed);
    json_t *units = json_array();
    for (int u = 0; u < as->sp.n_units; u++) {
        const prunespace_unit *x = &as->sp.units[u];
        json_t *pk = json_array();
        for (int k = 0; k < x->K; k++)
            json_array_append_new(pk, json_real(st->ch.P[st->ch.a_off[u] + (size_t)k]));
        json_array_append_new(units,
                              json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:f}", "name",
                                        x->name, "existing", as->nominal[u], "kept", w[u], "c_min",
                                        x->c_min, "channels", x->channels, "group", x->group,
                                        "groups", x->K, "p", pk, "expected_width", ec[u]));
    }
    json_object_set_new(rep, "units", units);
    json_t *stages = json_array();
    for (int s = 0; s < as->n_stages; s++) {
        json_t *q = json_array();
        for (int jb = 0; jb < as->depth[s]; jb++)
            json_array_append_new(q, json_real(st->dc.q[as->first[s] + jb]));
        json_array_append_new(stages, json_pack("{s:i, s:i, s:i, s:o, s:f}", "existing",
                                                as->depth0[s], "supernet", as->depth[s], "kept",
                                                d[s], "q", q, "expected_depth", ed[s]));
    }
    json_object_set_new(rep, "stages", stages);
    free(ec);
}

/* Per-layer widths and MFLOPs of a network. */
static json_t *layers_json(const model_cfg *c)
{
    prune_space sp;
    const prunespace_width wd = {0.1, 1.0, 0.1};
    json_t *layers = json_array();
    if (prune_space_init(&sp, c, &wd, NULL) != 0)
        return layers;
    int *w = xcalloc((size_t)sp.n_units, sizeof(int));
    prunespace_full_widths(&sp, w);
    for (int i = 0; i < sp.n_layers; i++) {
        const prunespace_layer *l = &sp.layers[i];
        json_array_append_new(layers,
                              json_pack("{s:s, s:i, s:i, s:f}", "name", l->name, "in",
                                        l->in_unit >= 0 ? w[l->in_unit] : l->in_fixed, "out",
                                        l->out_unit >= 0 ? w[l->out_unit] : l->out_fixed, "mflops",
                                        prunespace_layer_macs(&sp, i, w) / 1e6));
    }
    free(w);
    prune_space_deinit(&sp);
    return layers;
}

static json_t *depths_json(const model_cfg *c)
{
    int first[ADAPTSPACE_MAX_STAGES], depth[ADAPTSPACE_MAX_STAGES];
    int n = adaptspace_stages(c, first, depth);
    return nas_int_array(depth, n);
}

static json_t *elastic_json(const adapter *a, double initial)
{
    json_t *counts = json_object();
    for (int k = 0; k < EL_KINDS; k++)
        json_object_set_new(counts, elastic_kind_name((elastic_kind)k),
                            json_integer(a->el.counts[k]));
    json_object_set_new(counts, "total", json_integer(a->el.n_ev));
    return json_pack("{s:b, s:o, s:o, s:f, s:f}", "enabled", a->as.elastic.enabled, "counts",
                     counts, "events", elastic_events_json(&a->el, a->j.steps_per_epoch),
                     "supernet_mflops_initial", initial, "supernet_mflops_final",
                     a->st != NULL ? modelcfg_macs(&a->st->as.sp.super) / 1e6 : 0.0);
}

static void op_outcome(void *ctx, nas_outcome *o);

/* The report's part known before the retrain (also search.json). */
static json_t *search_report(adapter *a, const model_cfg *found, double top1_inh, json_t *derive,
                             double initial)
{
    const job_spec *spec = a->j.spec;
    nas_outcome o;
    op_outcome(a, &o);
    json_t *rep = nas_report_head(&a->j, &o, found, top1_inh, "depths", depths_json(&spec->model),
                                  depths_json(found));
    json_object_set_new(json_object_get(rep, "before"), "weights",
                        spec->init_from[0] ? json_string(spec->init_from) : json_string("fresh"));
    json_object_set_new(rep, "layers", layers_json(found));
    if (a->as.method == ADAPT_DNA) {
        json_object_set_new(rep, "supernet_top1",
                            a->top1_super >= 0 ? json_real(a->top1_super) : json_null());
        json_object_set_new(rep, "derive", derive);
        json_object_set_new(rep, "elastic", elastic_json(a, initial));
        json_object_set_new(
            rep, "notes",
            json_pack("[s, s]",
                      "new channels: fresh filters, BN gamma 1, zero input slices downstream "
                      "(gamma 0 as well would give them no gradient ever); new blocks: last "
                      "BN gamma 0",
                      "the final widths and depths are the nearest to the expected ones whose "
                      "real MFLOPs lie in the band (derive.fitted)"));
    } else {
        json_object_set_new(rep, "baseline", derive);
    }
    json_object_set_new(rep, "architecture", modelcfg_to_explicit_json(found));
    return rep;
}

/* ---- the job -------------------------------------------------------------------------- */

/* The search or the baseline: the found network and the report so far. */
static int searched_network(adapter *a, long start, model_cfg *found, json_t **report, errbuf *eb)
{
    double initial = a->st != NULL ? modelcfg_macs(&a->st->as.sp.super) / 1e6 : 0;
    json_t *info = json_object();
    double top1_inh = -1;
    int rc;
    if (a->as.method == ADAPT_DNA) {
        if (a->el.n_ev > 0 && a->el.ev[0].mflops_before > 0)
            initial = a->el.ev[0].mflops_before; /* resumed after a change */
        if ((rc = dna_search(a, start, eb)) != 0) {
            json_decref(info);
            return rc;
        }
        int *w = xcalloc((size_t)a->st->as.sp.n_units, sizeof(int)), d[ADAPTSPACE_MAX_STAGES];
        if ((rc = dna_derive(a, w, d, info, eb)) != 0) {
            free(w);
            json_decref(info);
            return rc;
        }
        adaptspace_cfg(&a->st->as, w, d, found);
        net m;
        net_init(&m);
        adaptspace_blockmap map;
        if (adapt_subnet(a->st, w, d, a->j.b, a->j.spec->seed, &m, &map, eb) == 0)
            top1_inh = nas_evaluate(&a->j, &m, &a->j.test);
        net_deinit(&m);
        *report = search_report(a, found, top1_inh, info, initial);
        add_tables(a, w, d, *report);
        free(w);
    } else {
        if ((rc = adapt_baseline(&a->as, &a->j.spec->model, a->goal.target, found, info, eb)) !=
            0) {
            json_decref(info);
            return rc;
        }
        *report = search_report(a, found, -1, info, 0);
    }
    rc = nas_write_found(&a->j, found, *report, eb);
    if (rc == 0 && a->as.method == ADAPT_DNA) {
        json_t *ev = json_object_get(*report, "elastic");
        rc = nas_write_json(&a->j, "elastic.json", ev, eb);
    }
    if (rc == 0)
        nas_say(&a->j, "info",
                "found %.4f MFLOPs (target %.4f, existing network %.4f); retraining from scratch",
                modelcfg_macs(found) / 1e6, a->goal.target, a->full_mflops);
    return rc;
}

/* ---- the job through nas_run_job ------------------------------------------------------- */

/* What an adapt job leaves beyond the three artifacts of every job. */
static const char *const EXTRA_ARTIFACTS[] = {"search.json", "elastic.json"};

static int op_prepare(void *ctx, int phase, long *start, errbuf *eb)
{
    adapter *a = ctx;
    const job_env *env = a->j.env;
    int rc = 0;
    if (phase != 2 && env->init_weights != NULL)
        rc = inherit_weights(a, env->init_weights, eb);
    if (rc == 0 && phase == 1 && a->st != NULL)
        rc = dna_load_checkpoint(a, env->resume_path, start, eb);
    else if (rc == 0 && phase == 1)
        rc = err_set(eb, ERR_FORMAT, "%s: a search checkpoint for a job without a search",
                     env->resume_path);
    return rc;
}

static int op_search(void *ctx, long start, model_cfg *found, json_t **report, char *init,
                     size_t len, errbuf *eb)
{
    (void)init;
    (void)len; /* the retrain starts from scratch */
    return searched_network(ctx, start, found, report, eb);
}

static void op_release(void *ctx)
{
    release_search(ctx);
}

static void op_outcome(void *ctx, nas_outcome *o)
{
    const adapter *a = ctx;
    *o = (nas_outcome){.method = adaptspec_method_name(a->as.method),
                       .from = "scratch",
                       .target = a->goal.target,
                       .target_tol = ADAPT_TARGET_TOL,
                       .full_mflops = a->full_mflops,
                       .top1_before = a->top1_before,
                       .search_steps = a->goal.total_steps,
                       .t0 = a->t0,
                       .extra = EXTRA_ARTIFACTS,
                       .n_extra = 2};
}

/* The summary's count of elastic events (from the report: a resumed
 * retrain has them from search.json only). */
static void op_finished(void *ctx, const json_t *report, job_result *res)
{
    (void)ctx;
    json_t *el = json_object_get(report, "elastic");
    if (el != NULL)
        json_object_set(res->summary, "elastic_events",
                        json_object_get(json_object_get(el, "counts"), "total"));
}

static const nas_job_ops ADAPT_OPS = {.search_kind = "adapt-search",
                                      .prepare = op_prepare,
                                      .search = op_search,
                                      .release = op_release,
                                      .outcome = op_outcome,
                                      .finished = op_finished};

int adapt_run(const job_spec *spec, const job_env *env, job_result *res, errbuf *eb)
{
    adapter *a = xcalloc(1, sizeof *a);
    a->t0 = nas_now();
    int rc = setup(a, spec, env, eb);
    if (rc == 0)
        rc = nas_run_job(&a->j, &ADAPT_OPS, a, a->goal.total_steps, res, eb);
    teardown(a);
    free(a);
    return rc;
}
