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
    int world = env->dist != NULL ? env->dist->world : 1;
    field_errors fe;
    fe_init(&fe);
    jf_obj root;
    jf_open(&root, NULL, "", &fe);
    adaptspec_parse(&a->as, &root, spec->adapt, &spec->model, world);
    if (root.n_err != 0) {
        char msg[400];
        fe_format(&fe, msg, sizeof msg);
        return err_set(eb, ERR_INVALID, "adapt spec: %s", msg);
    }
    a->target = a->as.target_mflops;
    a->full_mflops = modelcfg_macs(&spec->model) / 1e6;
    int dna = a->as.method == ADAPT_DNA;
    int rc = nas_init(&a->j, spec, env, dna ? a->as.search.batch_size : spec->optim.batch_size,
                      dna ? a->as.search.calib_batches : 0, dna ? a->as.search.eval_limit : 0, eb);
    if (rc != 0)
        return rc;
    if (!dna)
        return 0;
    a->warmup_steps = a->j.steps_per_epoch * a->as.search.warmup_epochs;
    a->total_steps =
        a->j.steps_per_epoch * (a->as.search.warmup_epochs + a->as.search.search_epochs);
    adapt_space as;
    if ((rc = as_init(&as, &spec->model, &a->as.window, eb)) != 0)
        return rc;
    a->st = adapt_state_new(&as, a->j.b, spec->seed, eb);
    if (a->st == NULL) {
        as_deinit(&as);
        return ERR_INVALID;
    }
    if (a->as.init == ADAPT_INIT_EXISTING)
        adapt_init_existing(a->st);
    elastic_init(&a->el, &a->as.elastic, spec->seed ^ ELASTIC_TAG, a->st->as.sp.n_units);
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
    double *ec = xcalloc((size_t)as->sp.n_units, sizeof(double)), ed[AS_MAX_STAGES];
    adapt_expected(st, ec, ed);
    json_t *units = json_array();
    for (int u = 0; u < as->sp.n_units; u++) {
        const ps_unit *x = &as->sp.units[u];
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
    const ps_width wd = {0.1, 1.0, 0.1};
    json_t *layers = json_array();
    if (prune_space_init(&sp, c, &wd, NULL) != 0)
        return layers;
    int *w = xcalloc((size_t)sp.n_units, sizeof(int));
    ps_full_widths(&sp, w);
    for (int i = 0; i < sp.n_layers; i++) {
        const ps_layer *l = &sp.layers[i];
        json_array_append_new(layers,
                              json_pack("{s:s, s:i, s:i, s:f}", "name", l->name, "in",
                                        l->in_unit >= 0 ? w[l->in_unit] : l->in_fixed, "out",
                                        l->out_unit >= 0 ? w[l->out_unit] : l->out_fixed, "mflops",
                                        ps_layer_macs(&sp, i, w) / 1e6));
    }
    free(w);
    prune_space_deinit(&sp);
    return layers;
}

static json_t *depths_json(const model_cfg *c)
{
    int first[AS_MAX_STAGES], depth[AS_MAX_STAGES];
    int n = as_stages(c, first, depth);
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

/* The report's part known before the retrain (also search.json). */
static json_t *search_report(adapter *a, const model_cfg *found, double top1_inh, json_t *derive,
                             double initial)
{
    const job_spec *spec = a->j.spec;
    json_t *rep = json_object();
    json_object_set_new(rep, "method", json_string(adaptspec_method_name(a->as.method)));
    json_object_set_new(rep, "target_mflops", json_real(a->target));
    json_object_set_new(rep, "target_band_mflops",
                        json_pack("[f, f]", a->target * (1 - ADAPT_TARGET_TOL),
                                  a->target * (1 + ADAPT_TARGET_TOL)));
    json_t *before =
        json_pack("{s:f, s:I, s:o}", "mflops", a->full_mflops, "params",
                  (json_int_t)modelcfg_params(&spec->model), "depths", depths_json(&spec->model));
    json_object_set_new(before, "top1",
                        a->top1_before >= 0 ? json_real(a->top1_before) : json_null());
    json_object_set_new(before, "weights",
                        spec->init_from[0] ? json_string(spec->init_from) : json_string("fresh"));
    json_object_set_new(rep, "before", before);
    json_t *after = json_pack("{s:f, s:I, s:o}", "mflops", modelcfg_macs(found) / 1e6, "params",
                              (json_int_t)modelcfg_params(found), "depths", depths_json(found));
    json_object_set_new(after, "top1_inherited", top1_inh >= 0 ? json_real(top1_inh) : json_null());
    json_object_set_new(rep, "after", after);
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
        int *w = xcalloc((size_t)a->st->as.sp.n_units, sizeof(int)), d[AS_MAX_STAGES];
        if ((rc = dna_derive(a, w, d, info, eb)) != 0) {
            free(w);
            json_decref(info);
            return rc;
        }
        as_cfg(&a->st->as, w, d, found);
        net m;
        net_init(&m);
        as_blockmap map;
        if (adapt_subnet(a->st, w, d, a->j.b, a->j.spec->seed, &m, &map, eb) == 0)
            top1_inh = nas_evaluate(&a->j, &m, &a->j.test);
        net_deinit(&m);
        *report = search_report(a, found, top1_inh, info, initial);
        add_tables(a, w, d, *report);
        free(w);
    } else {
        if ((rc = adapt_baseline(&a->as, &a->j.spec->model, a->target, found, info, eb)) != 0) {
            json_decref(info);
            return rc;
        }
        *report = search_report(a, found, -1, info, 0);
    }
    json_t *arch = modelcfg_to_explicit_json(found);
    rc = nas_write_json(&a->j, "architecture.json", arch, eb);
    json_decref(arch);
    if (rc == 0)
        rc = nas_write_json(&a->j, "search.json", *report, eb);
    if (rc == 0 && a->as.method == ADAPT_DNA) {
        json_t *ev = json_object_get(*report, "elastic");
        rc = nas_write_json(&a->j, "elastic.json", ev, eb);
    }
    if (rc == 0)
        nas_say(&a->j, "info",
                "found %.4f MFLOPs (target %.4f, existing network %.4f); retraining from scratch",
                modelcfg_macs(found) / 1e6, a->target, a->full_mflops);
    return rc;
}

static void finish(adapter *a, const model_cfg *found, const train_result *tr, json_t *report,
                   double t0, job_result *res)
{
    const job_spec *spec = a->j.spec;
    json_object_set_new(report, "retrain",
                        json_pack("{s:s, s:i, s:I, s:f, s:f, s:f}", "from", "scratch", "epochs",
                                  spec->optim.epochs, "steps", (json_int_t)tr->steps, "test_top1",
                                  tr->test_top1, "test_loss", tr->test_loss, "seconds",
                                  tr->seconds));
    json_t *after = json_object_get(report, "after");
    if (after != NULL)
        json_object_set_new(after, "top1", json_real(tr->test_top1));
    res->summary =
        json_pack("{s:s, s:f, s:f, s:f, s:I, s:I, s:f, s:I, s:f}", "method",
                  adaptspec_method_name(a->as.method), "target_mflops", a->target, "mflops",
                  modelcfg_macs(found) / 1e6, "mflops_full", a->full_mflops, "params",
                  (json_int_t)modelcfg_params(found), "params_full",
                  (json_int_t)modelcfg_params(&spec->model), "test_top1", tr->test_top1, "steps",
                  (json_int_t)a->total_steps + (json_int_t)tr->steps, "seconds", nas_now() - t0);
    json_object_set_new(res->summary, "top1_before",
                        a->top1_before >= 0 ? json_real(a->top1_before) : json_null());
    json_t *el = json_object_get(report, "elastic");
    if (el != NULL)
        json_object_set(res->summary, "elastic_events",
                        json_object_get(json_object_get(el, "counts"), "total"));
    job_result_add_artifact(res, "model.safetensors");
    job_result_add_artifact(res, "architecture.json");
    job_result_add_artifact(res, "report.json");
    const char *extra[2] = {"search.json", "elastic.json"};
    for (int i = 0; i < 2; i++) {
        char path[1100];
        nas_out_path(&a->j, path, sizeof path, extra[i]);
        if (access(path, R_OK) == 0)
            job_result_add_artifact(res, extra[i]);
    }
}

int adapt_run(const job_spec *spec, const job_env *env, job_result *res, errbuf *eb)
{
    double t0 = nas_now();
    adapter *a = xcalloc(1, sizeof *a);
    json_t *report = NULL;
    char *resume_model = NULL;
    int kind = 0;
    long start = 0;
    model_cfg found;
    int rc = setup(a, spec, env, eb);
    if (rc != 0)
        goto out;
    if (env->resume_path != NULL &&
        (kind = nas_resume_kind(env->resume_path, "adapt-search", &resume_model, eb)) < 0) {
        rc = kind;
        goto out;
    }
    const job_sink *s0 = nas_sink(&a->j);
    if (s0 != NULL && s0->started != NULL)
        s0->started(s0->ctx, a->total_steps + a->j.retrain_steps);
    if (kind != 2 && env->init_weights != NULL)
        rc = inherit_weights(a, env->init_weights, eb);
    if (rc == 0 && kind == 1 && a->st != NULL)
        rc = dna_load_checkpoint(a, env->resume_path, &start, eb);
    else if (rc == 0 && kind == 1)
        rc = err_set(eb, ERR_FORMAT, "%s: a search checkpoint for a job without a search",
                     env->resume_path);
    if (rc == 0)
        rc = kind == 2 ? nas_resumed_network(&a->j, resume_model, &found, &report, eb)
                       : searched_network(a, start, &found, &report, eb);
    if (rc != 0) {
        res->cancelled = rc == ERR_CANCELLED;
        goto out;
    }
    release_search(a);
    train_result tr;
    rc = nas_retrain(&a->j, &found, NULL, kind == 2 ? env->resume_path : NULL, a->total_steps, &tr,
                     eb);
    res->cancelled = tr.cancelled;
    if (rc == 0) {
        finish(a, &found, &tr, report, t0, res);
        rc = nas_write_json(&a->j, "report.json", report, eb);
    }
out:
    if (res->summary == NULL)
        res->summary = json_object();
    json_decref(report);
    free(resume_model);
    teardown(a);
    free(a);
    return rc;
}
