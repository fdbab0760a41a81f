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

#define CALIB_TAG 0x63616c6962ULL /* "calib" */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- helpers shared by the prune files ------------------------------------------ */

const job_sink *pruner_sink(const pruner *p)
{
    return p->d->rank == 0 ? p->env->sink : NULL;
}

void pruner_emit(const pruner *p, const char *name, double v, long step)
{
    const job_sink *s = pruner_sink(p);
    if (s != NULL && s->metric != NULL)
        s->metric(s->ctx, name, v, step, (double)step / (double)p->steps_per_epoch);
}

void pruner_say(const pruner *p, const char *level, const char *fmt, ...)
{
    const job_sink *s = pruner_sink(p);
    if (s == NULL || s->log == NULL)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->log(s->ctx, level, msg);
}

int pruner_cancel_now(const pruner *p)
{
    int flag = 0;
    const job_sink *s = pruner_sink(p);
    if (s != NULL && s->cancel_requested != NULL)
        flag = s->cancel_requested(s->ctx) != 0;
    if (p->d->world > 1)
        dist_bcast(&flag, sizeof flag, 0);
    return flag;
}

void pruner_calibrate(pruner *p, net *m)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const net_tensor *t = &m->tensors[i];
        if (t->kind != NET_BUFFER)
            continue;
        float *v = net_tensor_data(m, i), init = t->init == NET_INIT_ONE ? 1.0f : 0.0f;
        for (size_t k = 0; k < t->n; k++)
            v[k] = init;
    }
    int was = m->training;
    net_set_training(m, 1);
    /* the same batches every time: calibration is then a function of the
     * weights alone, and a resumed search reports what the first run would */
    loader_start_epoch(p->calib, 0, 0);
    for (int i = 0; i < p->ps.calib_batches; i++) {
        int n = loader_next(p->calib, p->x, p->y);
        if (n <= 0)
            break;
        m->bn_momentum = 1.0f / (float)(i + 1); /* cumulative mean over the batches */
        net_forward(m, p->x, n);
    }
    m->bn_momentum = -1.0f;
    net_set_training(m, was);
    if (p->d->world > 1 && m->n_buffers > 0)
        dist_allreduce_mean_f32(m->buffers, m->n_buffers);
}

int pruner_subnet(pruner *p, const int *w, net *m, errbuf *eb)
{
    model_cfg c;
    ps_widths_to_cfg(&p->sp, w, &c);
    int rc = model_build(m, &c, p->b, p->spec->seed, NULL, eb);
    if (rc == 0)
        rc = net_slice_check(m, &p->super, eb);
    if (rc == 0)
        net_slice_gather(m, &p->super);
    return rc;
}

double pruner_eval_widths(pruner *p, const int *w, const dataset *ds, errbuf *eb)
{
    eval_result e;
    if (w == NULL) {
        pruner_calibrate(p, &p->super);
        train_evaluate(&p->super, ds, p->b, p->d, &e);
        return e.top1;
    }
    net m;
    net_init(&m);
    if (pruner_subnet(p, w, &m, eb) != 0) {
        net_deinit(&m);
        return -1;
    }
    pruner_calibrate(p, &m);
    train_evaluate(&m, ds, p->b, p->d, &e);
    net_deinit(&m);
    return e.top1;
}

/* ---- the retrain's sink: names "retrain/...", steps after the search -------------- */

typedef struct phase_sink {
    const job_sink *inner;
    long offset, total;
} phase_sink;

static void ph_metric(void *ctx, const char *name, double v, long step, double epoch)
{
    phase_sink *ps = ctx;
    char n[160];
    snprintf(n, sizeof n, "retrain/%s", name);
    if (ps->inner->metric != NULL)
        ps->inner->metric(ps->inner->ctx, n, v, step + ps->offset, epoch);
}

static void ph_log(void *ctx, const char *level, const char *msg)
{
    phase_sink *ps = ctx;
    char m[600];
    snprintf(m, sizeof m, "retrain: %s", msg);
    if (ps->inner->log != NULL)
        ps->inner->log(ps->inner->ctx, level, m);
}

static void ph_progress(void *ctx, long step, long total, double loss, double ips)
{
    (void)total;
    phase_sink *ps = ctx;
    if (ps->inner->progress != NULL)
        ps->inner->progress(ps->inner->ctx, step + ps->offset, ps->total, loss, ips);
}

static void ph_checkpoint(void *ctx, const char *path, long step)
{
    phase_sink *ps = ctx;
    if (ps->inner->checkpoint != NULL)
        ps->inner->checkpoint(ps->inner->ctx, path, step + ps->offset);
}

static int ph_cancel(void *ctx)
{
    phase_sink *ps = ctx;
    return ps->inner->cancel_requested != NULL && ps->inner->cancel_requested(ps->inner->ctx);
}

/* ---- set-up ------------------------------------------------------------------------- */

/* The splits the search uses (the validation tail is left to the retrain). */
static int load_data(pruner *p, const job_spec *spec, errbuf *eb)
{
    int rc = dataset_load(&p->train, &p->test, &spec->data, eb);
    if (rc != 0)
        return rc;
    if (spec->data.val_fraction > 0) {
        dataset val;
        int nval = dataset_val_count(&p->train, spec->data.val_fraction);
        dataset_split_tail(&p->train, &val, nval);
        dataset_free(&val);
    }
    const model_cfg *c = &spec->model;
    if (p->train.H != c->image_size || p->train.C != c->in_channels ||
        p->train.num_classes != c->num_classes)
        return err_set(eb, ERR_INVALID,
                       "dataset %s is %dx%dx%d with %d classes; the model expects %dx%dx%d with "
                       "%d classes",
                       p->train.name, p->train.H, p->train.W, p->train.C, p->train.num_classes,
                       c->image_size, c->image_size, c->in_channels, c->num_classes);
    return 0;
}

static int setup(pruner *p, const job_spec *spec, const job_env *env, errbuf *eb)
{
    p->spec = spec;
    p->env = env;
    if (env->dist != NULL) {
        p->d = env->dist;
    } else {
        p->one.world = 1;
        p->one.local_size = 1;
        p->d = &p->one;
    }
    /* the canonical prune object parses without problems */
    field_errors fe;
    fe_init(&fe);
    jf_obj root;
    jf_open(&root, NULL, "", &fe);
    prunespec_parse(&p->ps, &root, spec->prune, &spec->model, p->d->world, spec->init_from[0]);
    if (root.n_err != 0) {
        char msg[400];
        fe_format(&fe, msg, sizeof msg);
        return err_set(eb, ERR_INVALID, "prune spec: %s", msg);
    }
    p->target = p->ps.target_mflops;
    p->full_mflops = modelcfg_macs(&spec->model) / 1e6;
    int rc = prune_space_init(&p->sp, &spec->model, &p->ps.width, eb);
    if (rc != 0)
        return rc;
    chains_init(&p->ch, &p->sp);
    if ((rc = load_data(p, spec, eb)) != 0)
        return rc;
    const model_cfg *c = &spec->model;
    p->K = c->num_classes;
    p->eval = p->test;
    if (p->ps.eval_limit > 0 && p->ps.eval_limit < p->eval.n)
        p->eval.n = p->ps.eval_limit;
    int gb = p->ps.method == PRUNE_DMCP ? p->ps.batch_size : spec->optim.batch_size;
    if (gb % p->d->world != 0)
        return err_set(eb, ERR_INVALID, "batch size %d is not divisible by %d ranks", gb,
                       p->d->world);
    p->b = gb / p->d->world;
    p->steps_per_epoch = p->train.n / gb;
    if (p->steps_per_epoch < 1)
        return err_set(eb, ERR_INVALID, "the training set (%d samples) holds no full batch of %d",
                       p->train.n, gb);
    if (p->ps.method == PRUNE_DMCP) {
        p->warmup_steps = p->steps_per_epoch * p->ps.warmup_epochs;
        p->total_steps = p->steps_per_epoch * (p->ps.warmup_epochs + p->ps.search_epochs);
    }
    p->retrain_steps = (long)(p->train.n / spec->optim.batch_size) * spec->optim.epochs;
    if (spec->optim.max_steps > 0 && spec->optim.max_steps < p->retrain_steps)
        p->retrain_steps = spec->optim.max_steps;
    size_t px = (size_t)p->b * c->image_size * c->image_size * c->in_channels;
    p->x = xmallocarray(px, sizeof(float));
    p->y = xmallocarray((size_t)p->b, sizeof(int32_t));
    p->probs = xmallocarray((size_t)p->b * p->K, sizeof(float));
    p->teacher = xmallocarray((size_t)p->b * p->K, sizeof(float));
    p->dlogits = xmallocarray((size_t)p->b * p->K, sizeof(float));
    loader_opts lo = {.batch = p->b,
                      .rank = p->d->rank,
                      .world = p->d->world,
                      .seed = spec->seed ^ CALIB_TAG,
                      .train = 1,
                      .crop_padding = spec->data.crop_padding,
                      .hflip = spec->data.hflip};
    p->calib = loader_new(&p->train, &lo);
    /* the supernet, with a scaling site at every BN of a unit (uniform needs
     * it only to slice given weights from) */
    net_init(&p->super);
    if (p->ps.method == PRUNE_UNIFORM && !spec->init_from[0])
        return 0;
    model_opts mo = {.site = chains_site, .site_ctx = &p->ch};
    if ((rc = model_build(&p->super, c, p->b, spec->seed, &mo, eb)) != 0)
        return rc;
    chains_attach(&p->ch, &p->super);
    if (p->d->world > 1)
        dist_bcast(p->super.params, p->super.n_params * sizeof(float), 0);
    return 0;
}

/* Frees the search's memory (kept until the retrain starts). */
static void release_search(pruner *p)
{
    loader_free(p->calib);
    p->calib = NULL;
    net_deinit(&p->super);
    dataset_free(&p->train);
    dataset_free(&p->test);
    free(p->x);
    free(p->y);
    free(p->probs);
    free(p->teacher);
    free(p->dlogits);
    p->x = NULL;
    p->y = NULL;
    p->probs = p->teacher = p->dlogits = NULL;
}

static void teardown(pruner *p)
{
    release_search(p);
    chains_deinit(&p->ch);
    prune_space_deinit(&p->sp);
}

/* ---- artifacts ------------------------------------------------------------------------ */

static void out_path(const pruner *p, char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", p->env->out_dir, name);
}

static int write_json(const pruner *p, const char *name, const json_t *j, errbuf *eb)
{
    if (p->d->rank != 0)
        return 0;
    char path[1100], tmp[1200];
    out_path(p, path, sizeof path, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (json_dump_file(j, tmp, JSON_INDENT(2) | JSON_REAL_PRECISION(8)) != 0)
        return err_set(eb, ERR_IO, "cannot write %s", tmp);
    if (rename(tmp, path) != 0)
        return err_set(eb, ERR_IO, "cannot rename %s", tmp);
    return 0;
}

static json_t *int_array(const int *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

/* Units and layers of the found network against the supernet. */
static void add_tables(const pruner *p, const int *w, json_t *rep, int with_chains)
{
    const prune_space *sp = &p->sp;
    int *full = xcalloc((size_t)sp->n_units, sizeof(int));
    ps_full_widths(sp, full);
    json_t *units = json_array();
    double *ec = xcalloc((size_t)sp->n_units, sizeof(double));
    chains_expected_widths(&p->ch, ec);
    for (int u = 0; u < sp->n_units; u++) {
        const ps_unit *x = &sp->units[u];
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
        const ps_layer *l = &sp->layers[i];
        int in = l->in_unit >= 0 ? w[l->in_unit] : l->in_fixed;
        int out = l->out_unit >= 0 ? w[l->out_unit] : l->out_fixed;
        int in_f = l->in_unit >= 0 ? full[l->in_unit] : l->in_fixed;
        int out_f = l->out_unit >= 0 ? full[l->out_unit] : l->out_fixed;
        json_array_append_new(layers,
                              json_pack("{s:s, s:i, s:i, s:i, s:i, s:f, s:f}", "name", l->name,
                                        "in", in, "out", out, "in_full", in_f, "out_full", out_f,
                                        "mflops", ps_layer_macs(sp, i, w) / 1e6, "mflops_full",
                                        ps_layer_macs(sp, i, full) / 1e6));
    }
    json_object_set_new(rep, "layers", layers);
    free(ec);
    free(full);
}

/* The report's part known before the retrain (also search.json). */
static json_t *search_report(pruner *p, const int *w, const model_cfg *found, double mult,
                             double top1_inherited, json_t *derive)
{
    const job_spec *spec = p->spec;
    json_t *rep = json_object();
    json_object_set_new(rep, "method", json_string(prunespec_method_name(p->ps.method)));
    json_object_set_new(rep, "target_mflops", json_real(p->target));
    json_object_set_new(rep, "target_band_mflops",
                        json_pack("[f, f]", p->target * (1 - PRUNE_TARGET_TOL),
                                  p->target * (1 + PRUNE_TARGET_TOL)));
    json_t *before = json_pack("{s:f, s:I}", "mflops", p->full_mflops, "params",
                               (json_int_t)modelcfg_params(&spec->model));
    json_object_set_new(before, "top1", p->top1_max >= 0 ? json_real(p->top1_max) : json_null());
    json_object_set_new(rep, "before", before);
    json_t *after = json_pack("{s:f, s:I}", "mflops", modelcfg_macs(found) / 1e6, "params",
                              (json_int_t)modelcfg_params(found));
    json_object_set_new(after, "top1_inherited",
                        top1_inherited >= 0 ? json_real(top1_inherited) : json_null());
    json_object_set_new(rep, "after", after);
    if (p->ps.method == PRUNE_UNIFORM)
        json_object_set_new(rep, "width_multiplier", json_real(mult));
    json_object_set_new(rep, "widths", int_array(w, p->sp.n_units));
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
    if (p->d->rank == 0)
        out_path(p, path, len, "inherited.safetensors");
    else
        snprintf(path, len, "/tmp/kiln-inherited-%ld.safetensors", (long)getpid());
    net m;
    net_init(&m);
    int rc = pruner_subnet(p, w, &m, eb);
    if (rc == 0)
        pruner_calibrate(p, &m);
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

/* Which phase a resume_path continues: 1 search, 2 retrain (its model in *model_json). */
static int resume_kind(const char *path, char **model_json, errbuf *eb)
{
    st_file *f;
    int rc = st_open(&f, path, eb);
    if (rc != 0)
        return rc;
    const char *kind = st_meta(f, "kind"), *model = st_meta(f, "model");
    if (kind != NULL && strcmp(kind, "prune-search") == 0)
        rc = 1;
    else if (kind != NULL && strcmp(kind, "checkpoint") == 0 && model != NULL) {
        *model_json = xstrdup(model);
        rc = 2;
    } else
        rc = err_set(eb, ERR_FORMAT, "%s is neither a search nor a retrain checkpoint", path);
    st_close(f);
    return rc;
}

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
        *top1_inh = pruner_eval_widths(p, w, &p->test, eb);
        return *top1_inh < 0 ? ERR_INVALID : 0;
    }
    *mult = prune_uniform_widths(p, w);
    if (p->spec->init_from[0]) { /* a given supernet: its accuracy and the slice's */
        p->top1_max = pruner_eval_widths(p, NULL, &p->test, eb);
        *top1_inh = pruner_eval_widths(p, w, &p->test, eb);
    }
    return 0;
}

static int retrain(pruner *p, const model_cfg *found, const char *init, const char *resume,
                   long offset, train_result *tr, errbuf *eb)
{
    job_spec rs = *p->spec;
    rs.type = JOB_TRAIN;
    rs.prune = NULL;
    rs.adapt = NULL;
    rs.model = *found;
    rs.params = (double)modelcfg_params(found);
    rs.mflops = modelcfg_macs(found) / 1e6;
    char weights[1100];
    out_path(p, weights, sizeof weights, "model.safetensors");
    phase_sink ps = {.inner = p->env->sink, .offset = offset, .total = offset + p->retrain_steps};
    job_sink wrapped = {.ctx = &ps,
                        .metric = ph_metric,
                        .log = ph_log,
                        .progress = ph_progress,
                        .checkpoint = ph_checkpoint,
                        .cancel_requested = ph_cancel};
    train_env te = {.dist = p->env->dist,
                    .work_dir = p->env->out_dir,
                    .resume_path = resume,
                    .init_weights = init,
                    .weights_out = weights,
                    .sink = p->env->sink != NULL ? &wrapped : NULL};
    return train_run(&rs, &te, tr, eb);
}

static json_t *load_search_json(const pruner *p)
{
    char path[1100];
    out_path(p, path, sizeof path, "search.json");
    json_t *j = json_load_file(path, 0, NULL);
    if (j == NULL) {
        j = json_object();
        json_object_set_new(j, "notes",
                            json_pack("[s]", "resumed in the retrain; search.json of "
                                             "the search was not found"));
    }
    return j;
}

/* Continuing a retrain: the network is in the checkpoint's metadata, the
 * search's report in search.json. */
static int resumed_network(pruner *p, const char *model_json, model_cfg *found, json_t **report,
                           errbuf *eb)
{
    json_t *mj = json_loads(model_json, 0, NULL);
    field_errors fe;
    fe_init(&fe);
    int rc = mj == NULL || modelcfg_parse(found, mj, "model", &fe) != 0
                 ? err_set(eb, ERR_FORMAT, "%s: bad model metadata", p->env->resume_path)
                 : 0;
    json_decref(mj);
    if (rc == 0)
        *report = load_search_json(p);
    return rc;
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
    ps_widths_to_cfg(&p->sp, w, found);
    *report = search_report(p, w, found, mult, top1_inh, derive);
    if (p->ps.finetune && (rc = save_inherited(p, w, found, init, init_len, eb)) != 0)
        return rc;
    json_t *arch = modelcfg_to_explicit_json(found);
    rc = write_json(p, "architecture.json", arch, eb);
    json_decref(arch);
    if (rc == 0)
        rc = write_json(p, "search.json", *report, eb);
    if (rc == 0)
        pruner_say(p, "info", "found %.4f MFLOPs (target %.4f, model %.4f); retraining %s",
                   modelcfg_macs(found) / 1e6, p->target, p->full_mflops,
                   p->ps.finetune ? "from the supernet's weights" : "from scratch");
    return rc;
}

/* The retrain's outcome into the report; the summary and artifact list. */
static void finish(pruner *p, const model_cfg *found, const train_result *tr, json_t *report,
                   double t0, job_result *res)
{
    const job_spec *spec = p->spec;
    json_object_set_new(
        report, "retrain",
        json_pack("{s:s, s:i, s:I, s:f, s:f, s:f}", "from", p->ps.finetune ? "supernet" : "scratch",
                  "epochs", spec->optim.epochs, "steps", (json_int_t)tr->steps, "test_top1",
                  tr->test_top1, "test_loss", tr->test_loss, "seconds", tr->seconds));
    json_t *after = json_object_get(report, "after");
    if (after != NULL)
        json_object_set_new(after, "top1", json_real(tr->test_top1));
    res->summary =
        json_pack("{s:s, s:f, s:f, s:f, s:I, s:I, s:f, s:I, s:f}", "method",
                  prunespec_method_name(p->ps.method), "target_mflops", p->target, "mflops",
                  modelcfg_macs(found) / 1e6, "mflops_full", p->full_mflops, "params",
                  (json_int_t)modelcfg_params(found), "params_full",
                  (json_int_t)modelcfg_params(&spec->model), "test_top1", tr->test_top1, "steps",
                  (json_int_t)(p->total_steps + tr->steps), "seconds", now_s() - t0);
    json_object_set_new(res->summary, "top1_before",
                        p->top1_max >= 0 ? json_real(p->top1_max) : json_null());
    job_result_add_artifact(res, "model.safetensors");
    job_result_add_artifact(res, "architecture.json");
    job_result_add_artifact(res, "report.json");
    char path[1100];
    out_path(p, path, sizeof path, "search.json");
    if (p->ps.method == PRUNE_DMCP && access(path, R_OK) == 0)
        job_result_add_artifact(res, "search.json");
    out_path(p, path, sizeof path, "supernet.safetensors");
    if (p->ps.method == PRUNE_DMCP && access(path, R_OK) == 0)
        job_result_add_artifact(res, "supernet.safetensors");
}

int prune_run(const job_spec *spec, const job_env *env, job_result *res, errbuf *eb)
{
    double t0 = now_s();
    pruner *p = xcalloc(1, sizeof *p);
    p->top1_max = -1;
    json_t *report = NULL;
    char *resume_model = NULL, init[1100] = "";
    int *w = NULL, kind = 0;
    long start = 0;
    model_cfg found;
    int rc = setup(p, spec, env, eb);
    if (rc != 0)
        goto out;
    w = xcalloc((size_t)p->sp.n_units, sizeof(int));
    if (env->resume_path != NULL && (kind = resume_kind(env->resume_path, &resume_model, eb)) < 0) {
        rc = kind;
        goto out;
    }
    const job_sink *s0 = pruner_sink(p);
    if (s0 != NULL && s0->started != NULL)
        s0->started(s0->ctx, p->total_steps + p->retrain_steps);
    if (kind == 1) {
        rc = dmcp_load_checkpoint(p, env->resume_path, &start, eb);
    } else if (kind == 0 && env->init_weights != NULL) {
        rc = ckpt_load_weights(env->init_weights, &p->super, eb);
        if (rc == 0 && p->d->world > 1)
            dist_bcast(p->super.params, p->super.n_params * sizeof(float), 0);
    }
    if (rc == 0)
        rc = kind == 2 ? resumed_network(p, resume_model, &found, &report, eb)
                       : searched_network(p, start, w, &found, &report, init, sizeof init, eb);
    if (rc != 0) {
        res->cancelled = rc == ERR_CANCELLED;
        goto out;
    }
    release_search(p);
    train_result tr;
    rc = retrain(p, &found, init[0] ? init : NULL, kind == 2 ? env->resume_path : NULL,
                 p->total_steps, &tr, eb);
    res->cancelled = tr.cancelled;
    if (init[0] && p->d->rank != 0)
        unlink(init);
    if (rc == 0) {
        finish(p, &found, &tr, report, t0, res);
        rc = write_json(p, "report.json", report, eb);
    }
out:
    if (res->summary == NULL)
        res->summary = json_object();
    json_decref(report);
    free(resume_model);
    free(w);
    teardown(p);
    free(p);
    return rc;
}
