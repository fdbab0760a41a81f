/* adapt_dna.c - DNA's elastic search space for the search driver (ALGORITHMS.md 3.2(e); see
 * adapt.h).
 *
 * The schedule is nas_search.c's (DMCP's, over widths and depths); this
 * file supplies the space: the window supernet, whose BN outputs are
 * scaled by their channel keep probabilities and whose droppable blocks'
 * branches by their block keep probability (x + q F(x)) in the
 * architecture step; the width chains (alpha) and depth chains (beta);
 * sub-nets with a group count per unit and a depth per stage (uniform
 * draws, direct samples, the expected architecture; the smallest is c_min
 * with one block per stage), mapped into the supernet by block; and the
 * elastic rules, checked every check_every search steps (or at every
 * epoch end) except in the last `freeze` fraction of the search. After a
 * change the architecture steps pause for settle_steps steps. Every
 * change is a log line and metric points ("elastic/<kind>" and
 * "elastic/events": running counts, "elastic/supernet_mflops"). Every
 * rank makes the same changes (they depend on alpha and beta, which the
 * averaged gradients keep equal, and on the seed). Checkpoints (kind
 * adapt-search) hold the supernet as it is then (config, windows, weights,
 * momentum), the chains and their momentum, the event log and the rules'
 * counters.
 */
#include "common/xalloc.h"
#include "worker/jobs/adapt.h"
#include "worker/jobs/nas_search.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RNG_TAG 0x646e615f73ULL /* "dna_s" */

/* The space: the adapter and the current architecture. */
typedef struct dna_space {
    adapter *a;
    int *w; /* (cap_w >= n_units) widths */
    int cap_w;
    int d[ADAPTSPACE_MAX_STAGES];
    adaptspace_blockmap maps[2]; /* the sub-nets' block maps, by NAS_SLOT_* */
} dna_space;

static net *dn_supernet(void *ctx)
{
    return &((dna_space *)ctx)->a->st->super;
}

static const prune_chains *dn_chains(void *ctx)
{
    return &((dna_space *)ctx)->a->st->ch;
}

static void dn_sample(void *ctx, nas_arch which, rng *r)
{
    dna_space *s = ctx;
    const adapt_state *st = s->a->st;
    if (s->cap_w < st->as.sp.n_units) { /* the space grew */
        s->cap_w = st->as.sp.n_units;
        s->w = xrealloc(s->w, (size_t)s->cap_w * sizeof(int));
    }
    if (which == NAS_ARCH_MIN)
        adapt_min_arch(st, s->w, s->d);
    else if (which == NAS_ARCH_EXPECTED)
        adapt_expected_arch(st, s->w, s->d);
    else if (which == NAS_ARCH_CHAINS)
        adapt_sample_arch(st, r, s->w, s->d);
    else
        adapt_random_arch(st, r, s->w, s->d);
}

static int dn_build_subnet(void *ctx, int slot, net *sub, slice_map *map, errbuf *eb)
{
    dna_space *s = ctx;
    const adapter *a = s->a;
    *map = (slice_map){adaptspace_map_name, &s->maps[slot]};
    return adapt_subnet(a->st, s->w, s->d, a->j.b, a->j.spec->seed, sub, &s->maps[slot], eb);
}

static double dn_arch_macs(void *ctx)
{
    dna_space *s = ctx;
    return adaptspace_macs(&s->a->st->as, s->w, s->d);
}

static double dn_expected_macs(void *ctx)
{
    return adapt_expected_macs(((dna_space *)ctx)->a->st, NULL, NULL);
}

static void dn_arch_scaling(void *ctx, int on)
{
    adapt_state *st = ((dna_space *)ctx)->a->st;
    adapt_set_scaling(st, on);
    if (on)
        adapt_zero_arch_grad(st);
}

static void dn_arch_step(void *ctx, double dl_dmacs, const search_sgd *o, double lr, int first)
{
    adapter *a = ((dna_space *)ctx)->a;
    adapt_state *st = a->st;
    chains_gather_tied(&st->ch);
    if (a->j.d->world > 1) {
        dist_allreduce_mean_f32(st->ch.dscale, st->ch.s_off[st->as.sp.n_units]);
        if (st->dc.n > 0)
            dist_allreduce_mean_f32(st->dc.dq, (size_t)st->dc.n);
    }
    adapt_arch_backward(st, dl_dmacs);
    adapt_arch_sgd(st, lr, o->momentum, o->nesterov, o->weight_decay, first);
}

static int dn_arch_due(void *ctx, long step)
{
    return step >= ((dna_space *)ctx)->a->settle_until;
}

/* ---- elastic checks ------------------------------------------------------------------ */

static int check_due(const adapter *a, long step)
{
    const adapt_elastic *e = &a->as.elastic;
    if (!e->enabled || step < a->goal.warmup_steps || step < a->settle_until)
        return 0;
    long search_steps = a->goal.total_steps - a->goal.warmup_steps;
    long freeze_at = a->goal.warmup_steps + (long)floor((1.0 - e->freeze) * (double)search_steps);
    if (step >= freeze_at)
        return 0;
    long done = step + 1 - a->goal.warmup_steps;
    if (e->check_every > 0)
        return done % e->check_every == 0;
    return (step + 1) % a->j.steps_per_epoch == 0;
}

/* The elastic rules at step: their changes as log lines and metric points. */
static int dn_on_check(void *ctx, long step, errbuf *eb)
{
    adapter *a = ((dna_space *)ctx)->a;
    if (!check_due(a, step))
        return 0;
    int first = a->el.n_ev;
    int rc = elastic_check(&a->el, &a->st, step + 1, a->j.b, eb);
    if (rc <= 0)
        return rc;
    a->settle_until = step + 1 + a->as.elastic.settle_steps;
    for (int i = first; i < a->el.n_ev; i++) {
        char line[400];
        elastic_event_text(&a->el.ev[i], a->j.steps_per_epoch, line, sizeof line);
        nas_say(&a->j, "info", "%s", line);
        char name[64];
        snprintf(name, sizeof name, "elastic/%s", elastic_kind_name(a->el.ev[i].kind));
        nas_emit_phase(&a->j, step + 1, "search", name, a->el.counts[a->el.ev[i].kind]);
    }
    nas_emit_phase(&a->j, step + 1, "search", "elastic/events", a->el.n_ev);
    nas_emit_phase(&a->j, step + 1, "search", "elastic/supernet_mflops",
                   modelcfg_macs(&a->st->as.sp.super) / 1e6);
    return rc;
}

/* ---- reporting ----------------------------------------------------------------------- */

/* Expected depths and the supernet's size at an epoch end. */
static void dn_epoch_metrics(void *ctx, long step, const char *phase)
{
    adapter *a = ((dna_space *)ctx)->a;
    adapt_state *st = a->st;
    double ed[ADAPTSPACE_MAX_STAGES];
    adapt_expected(st, NULL, ed);
    for (int i = 0; i < st->as.n_stages; i++) {
        char what[96];
        snprintf(what, sizeof what, "expected_depth/stage%d", i + 1);
        nas_emit_phase(&a->j, step, phase, what, ed[i]);
    }
    nas_emit_phase(&a->j, step, phase, "supernet_mflops", modelcfg_macs(&st->as.sp.super) / 1e6);
}

static void dn_epoch_note(void *ctx, char *buf, size_t len)
{
    adapter *a = ((dna_space *)ctx)->a;
    snprintf(buf, len, "; supernet %.3f MFLOPs, %d elastic events so far",
             modelcfg_macs(&a->st->as.sp.super) / 1e6, a->el.n_ev);
}

static void dn_describe(void *ctx, char *buf, size_t len)
{
    adapter *a = ((dna_space *)ctx)->a;
    snprintf(buf, len,
             "dna: %d units, %zu width and %d depth parameters, %d stages; target %.3f MFLOPs, "
             "existing network %.3f, supernet %.3f; %ld warm-up + %ld search steps; elastic %s",
             a->st->as.sp.n_units, a->st->ch.n_alpha, a->st->dc.n, a->st->as.n_stages,
             a->goal.target, a->full_mflops, modelcfg_macs(&a->st->as.sp.super) / 1e6,
             a->goal.warmup_steps, a->goal.total_steps - a->goal.warmup_steps,
             a->as.elastic.enabled ? "on" : "off");
}

/* ---- checkpoints ----------------------------------------------------------------------- */

static char *compact(json_t *j)
{
    char *t = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return t;
}

/* The space beyond its config: every unit's grid and nominal width, the
 * stages' existing depths. */
static json_t *space_json(const adapt_space *as)
{
    json_t *units = json_array(), *d0 = json_array();
    for (int u = 0; u < as->sp.n_units; u++) {
        const prunespace_unit *x = &as->sp.units[u];
        json_array_append_new(units,
                              json_pack("[i, i, i, i]", x->c_min, x->group, x->K, as->nominal[u]));
    }
    for (int i = 0; i < as->n_stages; i++)
        json_array_append_new(d0, json_integer(as->depth0[i]));
    return json_pack("{s:o, s:o}", "units", units, "depth0", d0);
}

static json_t *rules_json(const adapter *a)
{
    const elastic *e = &a->el;
    int ns = a->st->as.n_stages;
    return json_pack("{s:o, s:o, s:o, s:o, s:I}", "w_up", nas_int_array(e->w_up, e->n_units),
                     "w_down", nas_int_array(e->w_down, e->n_units), "d_up",
                     nas_int_array(e->d_up, ns), "d_down", nas_int_array(e->d_down, ns),
                     "settle_until", (json_int_t)a->settle_until);
}

static char *dn_model_json(void *ctx)
{
    return compact(modelcfg_to_explicit_json(&((dna_space *)ctx)->a->st->as.sp.super));
}

static void dn_save_meta(void *ctx, st_writer *w)
{
    adapter *a = ((dna_space *)ctx)->a;
    char *t = compact(space_json(&a->st->as));
    st_writer_meta(w, "space", t);
    free(t);
    t = compact(elastic_events_json(&a->el, a->j.steps_per_epoch));
    st_writer_meta(w, "events", t);
    free(t);
    t = compact(rules_json(a));
    st_writer_meta(w, "rules", t);
    free(t);
}

static void dn_save_state(void *ctx, st_writer *w)
{
    adapt_state *st = ((dna_space *)ctx)->a->st;
    int na = (int)(st->ch.n_alpha ? st->ch.n_alpha : 1), nb = st->dc.n ? st->dc.n : 1;
    st_writer_add_f32(w, "arch.alpha", 1, &na, st->ch.alpha);
    st_writer_add_f32(w, "arch.alpha_momentum", 1, &na, st->ch.mom);
    st_writer_add_f32(w, "arch.beta", 1, &nb, st->dc.beta);
    st_writer_add_f32(w, "arch.beta_momentum", 1, &nb, st->dc.mom);
}

/* The state of a checkpoint's metadata: config, grids, nominal widths. */
static int restore_state(adapter *a, const st_file *f, errbuf *eb)
{
    const char *model = st_meta(f, "model"), *space = st_meta(f, "space");
    json_t *mj = model ? json_loads(model, 0, NULL) : NULL;
    json_t *sj = space ? json_loads(space, 0, NULL) : NULL;
    json_t *units = json_object_get(sj, "units"), *d0 = json_object_get(sj, "depth0");
    model_cfg c;
    field_errors fe;
    fe_init(&fe);
    adapt_space as;
    memset(&as, 0, sizeof as);
    int rc = 0;
    if (mj == NULL || modelcfg_parse(&c, mj, "model", &fe) != 0 || !json_is_array(units) ||
        !json_is_array(d0))
        rc = err_set(eb, ERR_FORMAT, "bad model or space metadata");
    else if ((rc = adaptspace_init_super(&as, &c, eb)) == 0 &&
             (json_array_size(units) != (size_t)as.sp.n_units ||
              json_array_size(d0) != (size_t)as.n_stages))
        rc = err_set(eb, ERR_FORMAT, "space metadata does not match the model (%zu units, %d)",
                     json_array_size(units), as.sp.n_units);
    for (int u = 0; rc == 0 && u < as.sp.n_units; u++) {
        int lo, g, K, nom;
        if (json_unpack(json_array_get(units, (size_t)u), "[iiii]", &lo, &g, &K, &nom) != 0 ||
            lo < 1 || g < 1 || K < 0 || lo + K * g != as.sp.units[u].channels) {
            rc =
                err_set(eb, ERR_FORMAT, "space metadata: bad grid of unit %s", as.sp.units[u].name);
            break;
        }
        prunespace_set_grid(&as.sp, u, lo, g, K);
        as.nominal[u] = nom;
    }
    for (int i = 0; rc == 0 && i < as.n_stages; i++)
        as.depth0[i] = (int)json_integer_value(json_array_get(d0, (size_t)i));
    json_decref(mj);
    json_decref(sj);
    if (rc != 0) {
        adaptspace_deinit(&as);
        return rc;
    }
    adapt_state *st = adapt_state_new(&as, a->j.b, a->j.spec->seed, eb);
    if (st == NULL)
        return ERR_FORMAT;
    st->dc.fixed = !a->as.search_depth;
    adapt_update(st);
    adapt_state_free(a->st);
    a->st = st;
    return 0;
}

static void restore_rules(adapter *a, const st_file *f)
{
    const char *ev = st_meta(f, "events"), *rules = st_meta(f, "rules");
    json_t *ej = ev ? json_loads(ev, 0, NULL) : NULL,
           *rj = rules ? json_loads(rules, 0, NULL) : NULL;
    elastic_events_restore(&a->el, ej);
    elastic *e = &a->el;
    if (e->n_units != a->st->as.sp.n_units)
        elastic_resize(e, a->st->as.sp.n_units);
    const char *keys[4] = {"w_up", "w_down", "d_up", "d_down"};
    int *dst[4] = {e->w_up, e->w_down, e->d_up, e->d_down};
    int lens[4] = {e->n_units, e->n_units, a->st->as.n_stages, a->st->as.n_stages};
    for (int k = 0; k < 4; k++) {
        json_t *arr = json_object_get(rj, keys[k]);
        for (int i = 0; i < lens[k] && (size_t)i < json_array_size(arr); i++)
            dst[k][i] = (int)json_integer_value(json_array_get(arr, (size_t)i));
    }
    a->settle_until = (long)json_integer_value(json_object_get(rj, "settle_until"));
    json_decref(ej);
    json_decref(rj);
}

static int dn_load_meta(void *ctx, const st_file *f, errbuf *eb)
{
    return restore_state(((dna_space *)ctx)->a, f, eb);
}

static int dn_load_state(void *ctx, const st_file *f, errbuf *eb)
{
    adapter *a = ((dna_space *)ctx)->a;
    adapt_state *st = a->st;
    size_t na = st->ch.n_alpha ? st->ch.n_alpha : 1, nb = (size_t)(st->dc.n ? st->dc.n : 1);
    int rc;
    if ((rc = st_read_f32(f, "arch.alpha", st->ch.alpha, na, eb)) != 0 ||
        (rc = st_read_f32(f, "arch.alpha_momentum", st->ch.mom, na, eb)) != 0 ||
        (rc = st_read_f32(f, "arch.beta", st->dc.beta, nb, eb)) != 0 ||
        (rc = st_read_f32(f, "arch.beta_momentum", st->dc.mom, nb, eb)) != 0)
        return rc;
    adapt_update(st);
    restore_rules(a, f);
    return 0;
}

/* ---- the driver ---------------------------------------------------------------------------- */

static const nas_space_ops DNA_OPS = {
    .kind = "adapt-search",
    .rng_tag = RNG_TAG,
    .supernet = dn_supernet,
    .chains = dn_chains,
    .sample = dn_sample,
    .build_subnet = dn_build_subnet,
    .arch_macs = dn_arch_macs,
    .expected_macs = dn_expected_macs,
    .arch_scaling = dn_arch_scaling,
    .arch_step = dn_arch_step,
    .arch_due = dn_arch_due,
    .on_check = dn_on_check,
    .epoch_metrics = dn_epoch_metrics,
    .describe = dn_describe,
    .epoch_note = dn_epoch_note,
    .model_json = dn_model_json,
    .save_meta = dn_save_meta,
    .save_state = dn_save_state,
    .load_meta = dn_load_meta,
    .load_state = dn_load_state,
};

int dna_search(adapter *a, long start, errbuf *eb)
{
    dna_space s;
    memset(&s, 0, sizeof s);
    s.a = a;
    nas_search ns = {&a->j, &a->goal, &DNA_OPS, &s};
    int rc = nas_search_run(&ns, start, &a->top1_super, eb);
    free(s.w);
    return rc;
}

int dna_load_checkpoint(adapter *a, const char *path, long *step, errbuf *eb)
{
    dna_space s;
    memset(&s, 0, sizeof s);
    s.a = a;
    nas_search ns = {&a->j, &a->goal, &DNA_OPS, &s};
    return nas_search_load(&ns, path, step, eb);
}
