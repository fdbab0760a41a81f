/* prune_dmcp.c - DMCP's search space for the search driver (ALGORITHMS.md 2.6; see prune.h).
 *
 * The schedule is nas_search.c's; this file supplies the width space: the
 * supernet with a scaling site at every BN of a unit, the width chains
 * (alpha), sub-nets as prefix slices of the supernet (same tensor names),
 * group-aligned uniform widths as the uniform draw, and DMCP's expected
 * widths (ES) as the expected architecture. The supernet after the
 * warm-up is kept as supernet.safetensors. Checkpoints (kind prune-search)
 * hold the supernet, its momentum, alpha and alpha's momentum
 * ("arch.alpha", "arch.momentum") and the step.
 */
#include "common/xalloc.h"
#include "worker/jobs/nas_search.h"
#include "worker/jobs/prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RNG_TAG 0x646d6370ULL /* "dmcp" */

/* The space: the pruner and the current architecture's widths. */
typedef struct dmcp_space {
    pruner *p;
    int *w; /* (n_units) */
} dmcp_space;

static net *dm_supernet(void *ctx)
{
    return &((dmcp_space *)ctx)->p->super;
}

static const prune_chains *dm_chains(void *ctx)
{
    return &((dmcp_space *)ctx)->p->ch;
}

static void dm_sample(void *ctx, nas_arch which, rng *r)
{
    dmcp_space *s = ctx;
    pruner *p = s->p;
    int official = p->ps.sampling == PRUNE_SAMPLING_OFFICIAL;
    if (which == NAS_ARCH_MIN && official)
        chains_official_min_widths(&p->sp, s->w);
    else if (which == NAS_ARCH_MIN)
        prunespace_min_widths(&p->sp, s->w);
    else if (which == NAS_ARCH_EXPECTED)
        chains_es_widths(&p->ch, s->w);
    else if (which == NAS_ARCH_CHAINS)
        chains_sample(&p->ch, r, s->w);
    else if (official)
        chains_official_random_widths(&p->sp, r, s->w);
    else
        chains_random_widths(&p->sp, r, s->w);
}

static int dm_build_subnet(void *ctx, int slot, net *sub, slice_map *map, errbuf *eb)
{
    (void)slot;
    dmcp_space *s = ctx;
    *map = (slice_map){NULL, NULL}; /* a prefix slice: the same names */
    return pruner_subnet(s->p, s->w, sub, eb);
}

static double dm_arch_macs(void *ctx)
{
    dmcp_space *s = ctx;
    return prunespace_macs(&s->p->sp, s->w);
}

static double dm_expected_macs(void *ctx)
{
    return chains_expected_macs(&((dmcp_space *)ctx)->p->ch, NULL);
}

static void dm_arch_scaling(void *ctx, int on)
{
    prune_chains *ch = &((dmcp_space *)ctx)->p->ch;
    chains_set_scaling(ch, on);
    if (on)
        chains_zero_grad(ch);
}

static void dm_arch_step(void *ctx, double dl_dmacs, const search_sgd *o, double lr, int first)
{
    pruner *p = ((dmcp_space *)ctx)->p;
    prune_chains *ch = &p->ch;
    chains_gather_tied(ch);
    if (p->j.d->world > 1)
        dist_allreduce_mean_f32(ch->dscale, ch->s_off[p->sp.n_units]);
    chains_backward(ch, dl_dmacs);
    chains_sgd_step(ch, lr, o->momentum, o->nesterov, o->weight_decay, first);
}

static void dm_describe(void *ctx, char *buf, size_t len)
{
    pruner *p = ((dmcp_space *)ctx)->p;
    snprintf(buf, len,
             "dmcp: %d units, %zu architecture parameters, target %.3f of %.3f MFLOPs; %ld "
             "warm-up + %ld search steps; %s sampling",
             p->sp.n_units, p->ch.n_alpha, p->goal.target, p->full_mflops, p->goal.warmup_steps,
             p->goal.total_steps - p->goal.warmup_steps,
             p->ps.sampling == PRUNE_SAMPLING_OFFICIAL ? "official" : "group");
}

static char *dm_model_json(void *ctx)
{
    json_t *mj = modelcfg_to_json(&((dmcp_space *)ctx)->p->sp.super);
    char *model = json_dumps(mj, JSON_COMPACT);
    json_decref(mj);
    return model;
}

static void dm_save_state(void *ctx, st_writer *w)
{
    prune_chains *ch = &((dmcp_space *)ctx)->p->ch;
    int na = (int)(ch->n_alpha ? ch->n_alpha : 1);
    st_writer_add_f32(w, "arch.alpha", 1, &na, ch->alpha);
    st_writer_add_f32(w, "arch.momentum", 1, &na, ch->mom);
}

static int dm_load_state(void *ctx, const st_file *f, errbuf *eb)
{
    prune_chains *ch = &((dmcp_space *)ctx)->p->ch;
    size_t na = ch->n_alpha ? ch->n_alpha : 1;
    int rc = st_read_f32(f, "arch.alpha", ch->alpha, na, eb);
    if (rc == 0)
        rc = st_read_f32(f, "arch.momentum", ch->mom, na, eb);
    if (rc == 0)
        chains_update(ch);
    return rc;
}

static const nas_space_ops DMCP_OPS = {
    .kind = "prune-search",
    .rng_tag = RNG_TAG,
    .save_supernet = 1,
    .supernet = dm_supernet,
    .chains = dm_chains,
    .sample = dm_sample,
    .build_subnet = dm_build_subnet,
    .arch_macs = dm_arch_macs,
    .expected_macs = dm_expected_macs,
    .arch_scaling = dm_arch_scaling,
    .arch_step = dm_arch_step,
    .describe = dm_describe,
    .model_json = dm_model_json,
    .save_state = dm_save_state,
    .load_state = dm_load_state,
};

int dmcp_search(pruner *p, long start, errbuf *eb)
{
    dmcp_space s = {p, xcalloc((size_t)p->sp.n_units, sizeof(int))};
    nas_search ns = {&p->j, &p->goal, &DMCP_OPS, &s};
    int rc = nas_search_run(&ns, start, &p->top1_max, eb);
    free(s.w);
    return rc;
}

int dmcp_load_checkpoint(pruner *p, const char *path, long *step, errbuf *eb)
{
    dmcp_space s = {p, NULL};
    nas_search ns = {&p->j, &p->goal, &DMCP_OPS, &s};
    return nas_search_load(&ns, path, step, eb);
}
