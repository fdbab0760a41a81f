/* adapt_space.c - a DNA supernet with its width and depth chains (see adapt.h).
 *
 * Width chains are DMCP's (prune_chain.h) over the window units; depth
 * chains use the same sigmoid-product marginals over the keepable blocks
 * of each stage. The expected FLOPs weight every layer of a block by the
 * block's q, so their gradient reaches both kinds of chain; the CE term
 * reaches alpha through the CHSCALE nodes after every BN and beta through
 * the SCALEADD node of every keepable block's residual join.
 */
#include "common/xalloc.h"
#include "worker/jobs/adapt.h"
#include "worker/models/model.h"
#include "worker/models/slice.h"
#include "worker/nn/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double logit(double p)
{
    return log(p / (1.0 - p));
}

/* ---- depth chains -------------------------------------------------------------- */

static void depth_init(adapt_depth *dc, const adapt_space *as)
{
    memset(dc, 0, sizeof *dc);
    dc->as = as;
    dc->n = as->n_blocks;
    size_t n = (size_t)(dc->n ? dc->n : 1);
    dc->beta = xcalloc(n, sizeof(float));
    dc->dbeta = xcalloc(n, sizeof(float));
    dc->mom = xcalloc(n, sizeof(float));
    dc->q = xcalloc(n, sizeof(double));
    dc->qf = xcalloc(n, sizeof(float));
    dc->dq = xcalloc(n, sizeof(float));
}

static void depth_deinit(adapt_depth *dc)
{
    free(dc->beta);
    free(dc->dbeta);
    free(dc->mom);
    free(dc->q);
    free(dc->qf);
    free(dc->dq);
    memset(dc, 0, sizeof *dc);
}

static void depth_update(adapt_depth *dc)
{
    const adapt_space *as = dc->as;
    for (int s = 0; s < as->n_stages; s++) {
        int f = as->first[s];
        dc->q[f] = 1.0;
        chains_marginals(dc->beta + f + 1, as->depth[s] - 1, dc->q + f + 1);
        for (int j = 1; dc->fixed && j < as->depth[s]; j++)
            dc->q[f + j] = 1.0;
    }
    for (int b = 0; b < dc->n; b++)
        dc->qf[b] = dc->scaling ? (float)dc->q[b] : 1.0f;
}

int adapt_join(void *ctx, net *m, int x, int fx, const char *block)
{
    adapt_depth *dc = ctx;
    int b = adaptspace_block_of(dc->as, block);
    if (b < 0 || !adaptspace_keepable(dc->as, b))
        return net_add(m, x, fx);
    return net_scaleadd(m, x, fx, dc->qf + b, dc->dq + b);
}

/* ---- the state ------------------------------------------------------------------- */

adapt_state *adapt_state_new(adapt_space *as, int max_batch, uint64_t seed, errbuf *eb)
{
    adapt_state *st = xcalloc(1, sizeof *st);
    st->as = *as;
    memset(as, 0, sizeof *as);
    chains_init(&st->ch, &st->as.sp);
    depth_init(&st->dc, &st->as);
    net_init(&st->super);
    model_opts mo = {
        .site = chains_site, .site_ctx = &st->ch, .join = adapt_join, .join_ctx = &st->dc};
    if (model_build(&st->super, &st->as.sp.super, max_batch, seed, &mo, eb) != 0) {
        adapt_state_free(st);
        return NULL;
    }
    chains_attach(&st->ch, &st->super);
    adapt_set_scaling(st, 0);
    return st;
}

void adapt_state_free(adapt_state *st)
{
    if (st == NULL)
        return;
    net_deinit(&st->super);
    depth_deinit(&st->dc);
    chains_deinit(&st->ch);
    adaptspace_deinit(&st->as);
    free(st);
}

void adapt_update(adapt_state *st)
{
    chains_update(&st->ch);
    depth_update(&st->dc);
}

void adapt_set_scaling(adapt_state *st, int on)
{
    chains_set_scaling(&st->ch, on);
    st->dc.scaling = on;
    net *m = &st->super;
    for (int i = 0; i < m->n_nodes; i++) {
        net_node *n = &m->nodes[i];
        if (n->op == NET_OP_SCALEADD)
            n->dext = on ? st->dc.dq + (n->ext - st->dc.qf) : NULL;
    }
    depth_update(&st->dc);
}

void adapt_expected(const adapt_state *st, double *ec, double *ed)
{
    if (ec != NULL)
        chains_expected_widths(&st->ch, ec);
    const adapt_space *as = &st->as;
    for (int s = 0; ed != NULL && s < as->n_stages; s++) {
        ed[s] = 0;
        for (int j = 0; j < as->depth[s]; j++)
            ed[s] += st->dc.q[as->first[s] + j];
    }
}

double adapt_expected_macs(const adapt_state *st, double *dP, double *dq)
{
    const prune_space *sp = &st->as.sp;
    double *ec = xcalloc((size_t)sp->n_units, sizeof(double));
    double *g = dP != NULL ? xcalloc((size_t)sp->n_units, sizeof(double)) : NULL;
    chains_expected_widths(&st->ch, ec);
    double macs = prunespace_expected_macs_blocks(sp, ec, st->dc.q, g, dq);
    if (dP != NULL)
        for (int u = 0; u < sp->n_units; u++)
            for (int k = 0; k < sp->units[u].K; k++)
                dP[st->ch.a_off[u] + (size_t)k] = g[u] * sp->units[u].group;
    free(g);
    free(ec);
    return macs;
}

void adapt_zero_arch_grad(adapt_state *st)
{
    chains_zero_grad(&st->ch);
    size_t n = (size_t)(st->dc.n ? st->dc.n : 1);
    memset(st->dc.dq, 0, n * sizeof(float));
    memset(st->dc.dbeta, 0, n * sizeof(float));
}

void adapt_arch_backward(adapt_state *st, double dl_dmacs)
{
    const adapt_space *as = &st->as;
    size_t na = st->ch.n_alpha ? st->ch.n_alpha : 1, nb = (size_t)(st->dc.n ? st->dc.n : 1);
    double *dP = xcalloc(na, sizeof(double)), *dq = xcalloc(nb, sizeof(double));
    adapt_expected_macs(st, dP, dq);
    for (size_t i = 0; i < st->ch.n_alpha; i++)
        dP[i] *= dl_dmacs;
    chains_backward_dP(&st->ch, dP);
    for (int b = 0; b < st->dc.n; b++)
        dq[b] = dl_dmacs * dq[b] + (double)st->dc.dq[b];
    for (int s = 0; !st->dc.fixed && s < as->n_stages; s++) {
        int f = as->first[s];
        chains_grad_logits(st->dc.beta + f + 1, st->dc.q + f + 1, dq + f + 1, as->depth[s] - 1,
                           st->dc.dbeta + f + 1);
    }
    free(dP);
    free(dq);
}

void adapt_arch_sgd(adapt_state *st, double lr, double momentum, int nesterov, double wd, int first)
{
    chains_sgd_step(&st->ch, lr, momentum, nesterov, wd, first);
    nn_sgd_params p = {(float)lr, (float)momentum, 0.0f, (float)wd, nesterov};
    /* stage-first blocks have no transition: their gradient is 0, keep beta 0 */
    if (st->dc.n > 0 && !st->dc.fixed)
        nn_sgd_step(st->dc.beta, st->dc.mom, st->dc.dbeta, (size_t)st->dc.n, &p, first);
    for (int s = 0; s < st->as.n_stages; s++)
        st->dc.beta[st->as.first[s]] = 0.0f;
    depth_update(&st->dc);
}

/* The constant transition p in [0.02, 0.98] with base + g * sum_{k=1..K}
 * p^k = want (bisection; clamped at the ends). */
static double solve_transition(double base, double g, int K, double want)
{
    double lo = 0.02, hi = 0.98;
    for (int it = 0; it < 60; it++) {
        double p = (lo + hi) / 2, sum = 0, pk = 1;
        for (int k = 0; k < K; k++) {
            pk *= p;
            sum += pk;
        }
        if (base + g * sum < want)
            lo = p;
        else
            hi = p;
    }
    return (lo + hi) / 2;
}

void adapt_init_existing(adapt_state *st)
{
    const adapt_space *as = &st->as;
    for (int u = 0; u < as->sp.n_units; u++) {
        const prunespace_unit *x = &as->sp.units[u];
        double p = solve_transition(x->c_min, x->group, x->K, as->nominal[u]);
        for (int k = 0; k < x->K; k++)
            st->ch.alpha[st->ch.a_off[u] + (size_t)k] = (float)logit(p);
    }
    for (int s = 0; s < as->n_stages; s++) {
        int n = as->depth[s];
        if (n < 2)
            continue;
        double p = solve_transition(1.0, 1.0, n - 1, as->depth0[s] - 0.25);
        for (int j = 1; j < n; j++)
            st->dc.beta[as->first[s] + j] = (float)logit(p);
    }
    adapt_update(st);
}

/* ---- samplers ------------------------------------------------------------------------ */

void adapt_expected_arch(const adapt_state *st, int *w, int *d)
{
    chains_es_widths(&st->ch, w);
    double ed[ADAPTSPACE_MAX_STAGES];
    adapt_expected(st, NULL, ed);
    for (int s = 0; s < st->as.n_stages; s++) {
        long v = lround(ed[s] - 1e-4);
        d[s] = v < 1 ? 1 : v > st->as.depth[s] ? st->as.depth[s] : (int)v;
    }
}

void adapt_min_arch(const adapt_state *st, int *w, int *d)
{
    adaptspace_min_widths(&st->as, w);
    for (int s = 0; s < st->as.n_stages; s++)
        d[s] = st->dc.fixed ? st->as.depth[s] : 1;
}

void adapt_random_arch(const adapt_state *st, rng *r, int *w, int *d)
{
    chains_random_widths(&st->as.sp, r, w);
    for (int s = 0; s < st->as.n_stages; s++)
        d[s] = st->dc.fixed ? st->as.depth[s] : 1 + (int)rng_below(r, (uint32_t)st->as.depth[s]);
}

void adapt_sample_arch(const adapt_state *st, rng *r, int *w, int *d)
{
    chains_sample(&st->ch, r, w);
    const adapt_space *as = &st->as;
    for (int s = 0; s < as->n_stages; s++) {
        int j = 1;
        while (j < as->depth[s] &&
               (double)rng_uniform(r) <= 1.0 / (1.0 + exp(-(double)st->dc.beta[as->first[s] + j])))
            j++;
        d[s] = st->dc.fixed ? as->depth[s] : j;
    }
}

int adapt_subnet(const adapt_state *st, const int *w, const int *d, int max_batch, uint64_t seed,
                 net *m, adaptspace_blockmap *map, errbuf *eb)
{
    model_cfg c;
    adaptspace_cfg(&st->as, w, d, &c);
    int rc = model_build(m, &c, max_batch, seed, NULL, eb);
    adaptspace_blockmap_subnet(map, &st->as, d);
    slice_map sm = {adaptspace_map_name, map};
    if (rc == 0)
        rc = net_slice_check_map(m, &st->super, &sm, eb);
    if (rc == 0)
        net_slice_gather_map(m, &st->super, &sm);
    return rc;
}

/* ---- inheriting weights ---------------------------------------------------------------- */

void adapt_hide_channels(adapt_state *st, int u, int from)
{
    const prune_space *sp = &st->as.sp;
    net *m = &st->super;
    char name[PRUNESPACE_NAME_MAX + 16];
    for (int i = 0; i < sp->n_layers; i++) {
        const prunespace_layer *l = &sp->layers[i];
        if (l->in_unit != u || l->depthwise)
            continue;
        snprintf(name, sizeof name, "%s.weight", l->name);
        int t = net_tensor_find(m, name);
        if (t < 0)
            continue;
        const net_tensor *x = &m->tensors[t];
        /* (O, I) or (O, I, k, k): zero input channels [from, I) */
        size_t O = (size_t)x->shape[0], I = (size_t)x->shape[1];
        size_t inner = x->n / (O * I);
        for (size_t o = 0; o < O; o++)
            for (size_t c = (size_t)from; c < I; c++) {
                size_t at = x->off + (o * I + c) * inner;
                memset(m->params + at, 0, inner * sizeof(float));
                memset(m->opt_m + at, 0, inner * sizeof(float));
                memset(m->opt_v + at, 0, inner * sizeof(float));
            }
    }
}

void adapt_inherit(adapt_state *st, const net *orig)
{
    net_copy_overlap(&st->super, orig, NULL);
    for (int u = 0; u < st->as.sp.n_units; u++)
        if (st->as.nominal[u] < st->as.sp.units[u].channels)
            adapt_hide_channels(st, u, st->as.nominal[u]);
}
