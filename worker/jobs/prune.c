/* prune.c - the prune job (see prune.h): set-up, sub-net helpers, the
 * retrain through train_run, artifacts and the report. */
#include "worker/jobs/prune.h"

#include "common/log.h"
#include "common/safetensors.h"
#include "common/xalloc.h"
#include "worker/jobs/checkpoint.h"
#include "worker/jobs/train.h"
#include "worker/models/model.h"
#include "worker/models/slice.h"
#include "worker/models/state.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int pruner_subnet(pruner *p, const int *w, net *m, errbuf *eb)
{
    model_cfg c;
    prunespace_widths_to_cfg(&p->sp, w, &c);
    int rc = model_build(m, &c, p->j.b, p->j.spec->seed, NULL, eb);
    if (rc == 0)
        rc = net_slice_check(m, &p->super, eb);
    if (rc == 0)
        net_slice_gather(m, &p->super);
    return rc;
}

double pruner_eval_widths(pruner *p, const int *w, const dataset *ds, errbuf *eb)
{
    if (w == NULL)
        return nas_evaluate(&p->j, &p->super, ds);
    net m;
    net_init(&m);
    double top1 = -1;
    if (pruner_subnet(p, w, &m, eb) == 0)
        top1 = nas_evaluate(&p->j, &m, ds);
    net_deinit(&m);
    return top1;
}

/* ---- set-up ------------------------------------------------------------------------- */

static int setup(pruner *p, const job_spec *spec, const job_env *env, errbuf *eb)
{
    net_init(&p->super);
    /* the canonical prune object parses without problems */
    nas_reparse rp;
    nas_reparse_begin(&rp);
    prunespec_parse(&p->ps, &rp.root, spec->prune, &spec->model, nas_world(env),
                    spec->init_from[0]);
    int rc = nas_reparse_end(&rp, "prune spec", eb);
    if (rc != 0)
        return rc;
    p->goal.ss = &p->ps.search;
    p->goal.target = p->ps.target_mflops;
    p->goal.target_tol = PRUNE_TARGET_TOL;
    p->full_mflops = modelcfg_macs(&spec->model) / 1e6;
    rc = prune_space_init(&p->sp, &spec->model, &p->ps.width, eb);
    if (rc != 0)
        return rc;
    chains_init(&p->ch, &p->sp);
    int gb = p->ps.method == PRUNE_DMCP ? p->ps.search.batch_size : spec->optim.batch_size;
    rc = nas_init(&p->j, spec, env, gb, p->ps.search.calib_batches, p->ps.search.eval_limit, eb);
    if (rc != 0)
        return rc;
    if (p->ps.method == PRUNE_DMCP) {
        p->goal.warmup_steps = p->j.steps_per_epoch * p->ps.search.warmup_epochs;
        p->goal.total_steps =
            p->j.steps_per_epoch * (p->ps.search.warmup_epochs + p->ps.search.search_epochs);
    }
    /* the supernet, with a scaling site at every BN of a unit (uniform needs
     * it only to slice given weights from) */
    if (p->ps.method == PRUNE_UNIFORM && !spec->init_from[0])
        return 0;
    model_opts mo = {.site = chains_site, .site_ctx = &p->ch};
    if ((rc = model_build(&p->super, &spec->model, p->j.b, spec->seed, &mo, eb)) != 0)
        return rc;
    chains_attach(&p->ch, &p->super);
    if (p->j.d->world > 1)
        dist_bcast(p->super.params, p->super.n_params * sizeof(float), 0);
    return 0;
}

/* Frees the search's memory (kept until the retrain starts). */
static void release_search(pruner *p)
{
    nas_release(&p->j);
    net_deinit(&p->super);
}

static void teardown(pruner *p)
{
    release_search(p);
    nas_deinit(&p->j);
    chains_deinit(&p->ch);
    prune_space_deinit(&p->sp);
}

/* ---- artifacts ------------------------------------------------------------------------ */

/* Units and layers of the found network against the supernet. */
static void add_tables(const pruner *p, const int *w, json_t *rep, int with_chains)
{
    const prune_space *sp = &p->sp;
    int *full = xcalloc((size_t)sp->n_units, sizeof(int));
    prunespace_full_widths(sp, full);
    json_t *units = json_array();
    double *ec = xcalloc((size_t)sp->n_units, sizeof(double));
    chains_expected_widths(&p->ch, ec);
    for (int u = 0; u < sp->n_units; u++) {
        const prunespace_unit *x = &sp->units[u];
        json_t *j =
            json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "name", x->name, "channels", x->channels,
                      "kept", w[u], "c_min", x->c_min, "group", x->group, "groups", x->K);
        if (with_chains) {
            json_t *pk = json_array();
            for (int k = 0; k < x->K; k++)
                json_array_append_new(pk, json_real(p->ch.P[p->ch.a_off[u] + (size_t)k]));
            json_object_set_new(j, "p", pk);
            json_object_set_new(j, "p_mean", json_real(chains_p_mean(&p->ch, u)));
            json_object_set_new(j, "expected_width", json_real(ec[u]));
        }
        json_array_append_new(units, j);
    }
    json_object_set_new(rep, "units", units);
    json_t *layers = json_array();
    for (int i = 0; i < sp->n_layers; i++) {
        const prunespace_layer *l = &sp->layers[i];
        int in = l->in_unit >= 0 ? w[l->in_unit] : l->in_fixed;
        int out = l->out_unit >= 0 ? w[l->out_unit] : l->out_fixed;
        int in_f = l->in_unit >= 0 ? full[l->in_unit] : l->in_fixed;
        int out_f = l->out_unit >= 0 ? full[l->out_unit] : l->out_fixed;
        json_array_append_new(layers,
                              json_pack("{s:s, s:i, s:i, s:i, s:i, s:f, s:f}", "name", l->name,
                                        "in", in, "out", out, "in_full", in_f, "out_full", out_f,
                                        "mflops", prunespace_layer_macs(sp, i, w) / 1e6,
                                        "mflops_full", prunespace_layer_macs(sp, i, full) / 1e6));
    }
    json_object_set_new(rep, "layers", layers);
    free(ec);
    free(full);
}

static void op_outcome(void *ctx, nas_outcome *o);

/* The report's part known before the retrain (also search.json). */
static json_t *search_report(pruner *p, const int *w, const model_cfg *found, double mult,
                             double top1_inherited, json_t *derive)
{
    nas_outcome o;
    op_outcome(p, &o);
    json_t *rep = nas_report_head(&p->j, &o, found, top1_inherited, NULL, NULL, NULL);
    if (p->ps.method == PRUNE_UNIFORM)
        json_object_set_new(rep, "width_multiplier", json_real(mult));
    json_object_set_new(rep, "widths", nas_int_array(w, p->sp.n_units));
    add_tables(p, w, rep, p->ps.method == PRUNE_DMCP);
    if (derive != NULL)
        json_object_set_new(rep, "derive", derive);
    json_object_set_new(rep, "architecture", modelcfg_to_explicit_json(found));
    if (p->ps.method == PRUNE_DMCP)
        json_object_set_new(
            rep, "notes",
            json_pack("[s]", "direct samples draw every unit from its own chain; the reference "
                             "code samples a bottleneck's conv2 from alpha1 (ALGORITHMS.md "
                             "2.10.1), which this does not copy"));
    return rep;
}

/* Saves the found network's slice of the supernet (finetune's start):
 * rank 0 into out_dir, every other rank into a private file of its own
 * (out_dir may not exist on its host; train_run broadcasts rank 0's
 * weights after loading). */
static int save_inherited(pruner *p, const int *w, const model_cfg *found, char *path, size_t len,
                          errbuf *eb)
{
    if (p->j.d->rank == 0)
        nas_out_path(&p->j, path, len, "inherited.safetensors");
    else
        snprintf(path, len, "/tmp/kiln-inherited-%ld.safetensors", (long)getpid());
    net m;
    net_init(&m);
    int rc = pruner_subnet(p, w, &m, eb);
    if (rc == 0)
        nas_calibrate(&p->j, &m);
    if (rc == 0) {
        json_t *mj = modelcfg_to_explicit_json(found);
        char *model = json_dumps(mj, JSON_COMPACT);
        json_decref(mj);
        rc = net_save_state(&m, path, model, eb);
        free(model);
    }
    net_deinit(&m);
    return rc;
}

/* ---- the job ---------------------------------------------------------------------------- */

/* The search and the derivation: fills w, *mult, *top1_inh and the
 * derivation details. */
static int find_widths(pruner *p, long start, int *w, double *mult, double *top1_inh,
                       json_t **derive, errbuf *eb)
{
    int rc;
    *derive = NULL;
    *top1_inh = -1;
    if (p->ps.method == PRUNE_DMCP) {
        if ((rc = dmcp_search(p, start, eb)) != 0)
            return rc;
        *derive = json_object();
        if ((rc = prune_derive_widths(p, w, *derive, eb)) != 0)
            return rc;
        *top1_inh = pruner_eval_widths(p, w, &p->j.test, eb);
        return *top1_inh < 0 ? ERR_INVALID : 0;
    }
    *derive = json_object();
    if ((rc = prune_uniform_widths(p, w, *derive, mult, eb)) != 0)
        return rc;
    if (p->j.spec->init_from[0]) { /* a given supernet: its accuracy and the slice's */
        p->top1_max = pruner_eval_widths(p, NULL, &p->j.test, eb);
        *top1_inh = pruner_eval_widths(p, w, &p->j.test, eb);
    }
    return 0;
}

/* The search (from step `start`) or the uniform width, then
 * architecture.json, search.json and, for finetune, the inherited weights
 * (their path in init). */
static int searched_network(pruner *p, long start, int *w, model_cfg *found, json_t **report,
                            char *init, size_t init_len, errbuf *eb)
{
    double mult = 0, top1_inh;
    json_t *derive;
    int rc = find_widths(p, start, w, &mult, &top1_inh, &derive, eb);
    if (rc != 0) {
        json_decref(derive);
        return rc;
    }
    prunespace_widths_to_cfg(&p->sp, w, found);
    *report = search_report(p, w, found, mult, top1_inh, derive);
    if (p->ps.finetune && (rc = save_inherited(p, w, found, init, init_len, eb)) != 0)
        return rc;
    rc = nas_write_found(&p->j, found, *report, eb);
    if (rc == 0)
        nas_say(&p->j, "info", "found %.4f MFLOPs (target %.4f, model %.4f); retraining %s",
                modelcfg_macs(found) / 1e6, p->goal.target, p->full_mflops,
                p->ps.finetune ? "from the supernet's weights" : "from scratch");
    return rc;
}

/* ---- the job through nas_run_job ------------------------------------------------------- */

/* What a dmcp job leaves beyond the three artifacts of every prune job. */
static const char *const DMCP_ARTIFACTS[] = {"search.json", "supernet.safetensors"};

static int op_prepare(void *ctx, int phase, long *start, errbuf *eb)
{
    pruner *p = ctx;
    const job_env *env = p->j.env;
    if (phase == 1)
        return dmcp_load_checkpoint(p, env->resume_path, start, eb);
    if (phase != 0 || env->init_weights == NULL)
        return 0;
    int rc = ckpt_load_weights(env->init_weights, &p->super, eb);
    if (rc == 0 && p->j.d->world > 1)
        dist_bcast(p->super.params, p->super.n_params * sizeof(float), 0);
    return rc;
}

static int op_search(void *ctx, long start, model_cfg *found, json_t **report, char *init,
                     size_t len, errbuf *eb)
{
    pruner *p = ctx;
    int *w = xcalloc((size_t)p->sp.n_units, sizeof(int));
    int rc = searched_network(p, start, w, found, report, init, len, eb);
    free(w);
    return rc;
}

static void op_release(void *ctx)
{
    release_search(ctx);
}

static void op_outcome(void *ctx, nas_outcome *o)
{
    const pruner *p = ctx;
    *o = (nas_outcome){.method = prunespec_method_name(p->ps.method),
                       .from = p->ps.finetune ? "supernet" : "scratch",
                       .target = p->goal.target,
                       .target_tol = PRUNE_TARGET_TOL,
                       .full_mflops = p->full_mflops,
                       .top1_before = p->top1_max,
                       .search_steps = p->goal.total_steps,
                       .t0 = p->t0,
                       .extra = DMCP_ARTIFACTS,
                       .n_extra = p->ps.method == PRUNE_DMCP ? 2 : 0};
}

static const nas_job_ops PRUNE_OPS = {.search_kind = "prune-search",
                                      .prepare = op_prepare,
                                      .search = op_search,
                                      .release = op_release,
                                      .outcome = op_outcome};

int prune_run(const job_spec *spec, const job_env *env, job_result *res, errbuf *eb)
{
    pruner *p = xcalloc(1, sizeof *p);
    p->t0 = nas_now();
    p->top1_max = -1;
    int rc = setup(p, spec, env, eb);
    if (rc == 0)
        rc = nas_run_job(&p->j, &PRUNE_OPS, p, p->goal.total_steps, res, eb);
    teardown(p);
    free(p);
    return rc;
}
