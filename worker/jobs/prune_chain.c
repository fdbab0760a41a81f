/* prune_chain.c - DMCP's Markov chains over channel groups (see prune_chain.h). */
#include "worker/jobs/prune_chain.h"

#include "common/xalloc.h"
#include "worker/nn/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double sigmoid(double a)
{
    return 1.0 / (1.0 + exp(-a));
}

void chains_marginals(const float *a, int K, double *P)
{
    double p = 1.0;
    for (int k = 0; k < K; k++) {
        p *= sigmoid(a[k]);
        P[k] = p;
    }
}

void chains_grad_logits(const float *a, const double *P, const double *dP, int K, float *da)
{
    /* P_k = prod_{j<=k} s_j: dP_k/da_j = P_k (1 - s_j) for j <= k */
    double suffix = 0;
    for (int j = K - 1; j >= 0; j--) {
        suffix += dP[j] * P[j];
        da[j] = (float)(suffix * (1.0 - sigmoid(a[j])));
    }
}

void chains_init(prune_chains *c, const prune_space *sp)
{
    memset(c, 0, sizeof *c);
    c->sp = sp;
    int n = sp->n_units;
    c->a_off = xcalloc((size_t)n + 1, sizeof(size_t));
    c->s_off = xcalloc((size_t)n + 1, sizeof(size_t));
    for (int u = 0; u < n; u++) {
        c->a_off[u + 1] = c->a_off[u] + (size_t)sp->units[u].K;
        c->s_off[u + 1] = c->s_off[u] + (size_t)sp->units[u].channels;
    }
    c->n_alpha = c->a_off[n];
    size_t na = c->n_alpha ? c->n_alpha : 1, ns = c->s_off[n] ? c->s_off[n] : 1;
    c->alpha = xcalloc(na, sizeof(float));
    c->dalpha = xcalloc(na, sizeof(float));
    c->mom = xcalloc(na, sizeof(float));
    c->P = xcalloc(na, sizeof(double));
    c->scale = xcalloc(ns, sizeof(float));
    c->dscale = xcalloc(ns, sizeof(float));
    c->t_off = xcalloc((size_t)sp->n_sites + 1, sizeof(size_t));
    for (int i = 0; i < sp->n_sites; i++)
        c->t_off[i + 1] = c->t_off[i] + (size_t)sp->sites[i].tie;
    size_t nt = c->t_off[sp->n_sites] ? c->t_off[sp->n_sites] : 1;
    c->tie_ch = xcalloc(nt, sizeof(int));
    c->t_scale = xcalloc(nt, sizeof(float));
    c->t_dscale = xcalloc(nt, sizeof(float));
    for (int i = 0; i < sp->n_sites; i++)
        for (int j = 0; j < sp->sites[i].tie; j++)
            c->tie_ch[c->t_off[i] + (size_t)j] =
                prunespace_tie_channel_width(sp, &sp->sites[i], j) - 1;
    chains_update(c);
}

void chains_deinit(prune_chains *c)
{
    free(c->a_off);
    free(c->s_off);
    free(c->alpha);
    free(c->dalpha);
    free(c->mom);
    free(c->P);
    free(c->scale);
    free(c->dscale);
    free(c->t_off);
    free(c->tie_ch);
    free(c->t_scale);
    free(c->t_dscale);
    memset(c, 0, sizeof *c);
}

int chains_site(void *ctx, net *m, int x, const char *bn)
{
    prune_chains *c = ctx;
    const prunespace_site *t = prunespace_site_find(c->sp, bn);
    if (t == NULL)
        return x;
    if (t->tie > 0) {
        size_t o = c->t_off[t - c->sp->sites];
        return net_chscale(m, x, c->t_scale + o, c->t_dscale + o);
    }
    int u = t->unit;
    return net_chscale(m, x, c->scale + c->s_off[u], c->dscale + c->s_off[u]);
}

void chains_attach(prune_chains *c, net *m)
{
    c->scaled = m;
    chains_set_scaling(c, 0);
}

void chains_update(prune_chains *c)
{
    const prune_space *sp = c->sp;
    for (int u = 0; u < sp->n_units; u++) {
        const prunespace_unit *x = &sp->units[u];
        chains_marginals(c->alpha + c->a_off[u], x->K, c->P + c->a_off[u]);
        float *s = c->scale + c->s_off[u];
        for (int ch = 0; ch < x->channels; ch++)
            s[ch] = c->scaling ? (float)chains_channel_p(c, u, ch) : 1.0f;
    }
    for (int i = 0; i < sp->n_sites; i++) {
        const float *s = c->scale + c->s_off[sp->sites[i].unit];
        for (size_t k = c->t_off[i]; k < c->t_off[i + 1]; k++)
            c->t_scale[k] = s[c->tie_ch[k]];
    }
}

void chains_set_scaling(prune_chains *c, int on)
{
    c->scaling = on;
    if (c->scaled != NULL) {
        net *m = c->scaled;
        for (int i = 0; i < m->n_nodes; i++) {
            net_node *n = &m->nodes[i];
            if (n->op != NET_OP_CHSCALE)
                continue;
            size_t nt = c->t_off[c->sp->n_sites];
            int tied = n->ext >= c->t_scale && n->ext < c->t_scale + nt;
            n->dext = !on    ? NULL
                      : tied ? c->t_dscale + (n->ext - c->t_scale)
                             : c->dscale + (n->ext - c->scale);
        }
    }
    chains_update(c);
}

double chains_channel_p(const prune_chains *c, int u, int ch)
{
    const prunespace_unit *x = &c->sp->units[u];
    if (ch < x->c_min)
        return 1.0;
    if (ch >= x->channels)
        return 0.0;
    return c->P[c->a_off[u] + (size_t)((ch - x->c_min) / x->group)];
}

void chains_expected_widths(const prune_chains *c, double *ec)
{
    const prune_space *sp = c->sp;
    for (int u = 0; u < sp->n_units; u++) {
        const prunespace_unit *x = &sp->units[u];
        double sum = 0;
        for (int k = 0; k < x->K; k++)
            sum += c->P[c->a_off[u] + k];
        ec[u] = x->c_min + x->group * sum;
    }
}

double chains_p_mean(const prune_chains *c, int u)
{
    const prunespace_unit *x = &c->sp->units[u];
    if (x->K == 0)
        return 1.0;
    double sum = 0;
    for (int k = 0; k < x->K; k++)
        sum += c->P[c->a_off[u] + k];
    return sum / x->K;
}

double chains_expected_macs(const prune_chains *c, double *dmacs_dP)
{
    const prune_space *sp = c->sp;
    double *ec = xcalloc((size_t)sp->n_units, sizeof(double));
    double *g = dmacs_dP ? xcalloc((size_t)sp->n_units, sizeof(double)) : NULL;
    chains_expected_widths(c, ec);
    double macs = prunespace_expected_macs(sp, ec, g);
    if (dmacs_dP != NULL)
        for (int u = 0; u < sp->n_units; u++)
            for (int k = 0; k < sp->units[u].K; k++)
                dmacs_dP[c->a_off[u] + k] = g[u] * sp->units[u].group;
    free(g);
    free(ec);
    return macs;
}

void chains_gather_tied(prune_chains *c)
{
    const prune_space *sp = c->sp;
    for (int i = 0; i < sp->n_sites; i++) {
        float *ds = c->dscale + c->s_off[sp->sites[i].unit];
        for (size_t k = c->t_off[i]; k < c->t_off[i + 1]; k++) {
            ds[c->tie_ch[k]] += c->t_dscale[k];
            c->t_dscale[k] = 0;
        }
    }
}

void chains_backward_dP(prune_chains *c, const double *dP_extra)
{
    const prune_space *sp = c->sp;
    double *dP = xcalloc(c->n_alpha ? c->n_alpha : 1, sizeof(double));
    if (dP_extra != NULL)
        memcpy(dP, dP_extra, c->n_alpha * sizeof(double));
    chains_gather_tied(c);
    for (int u = 0; u < sp->n_units; u++) {
        const prunespace_unit *x = &sp->units[u];
        const float *ds = c->dscale + c->s_off[u];
        size_t a = c->a_off[u];
        for (int k = 0; k < x->K; k++) {
            double sum = 0;
            for (int i = 0; i < x->group; i++)
                sum += (double)ds[x->c_min + k * x->group + i];
            dP[a + k] += sum;
        }
        chains_grad_logits(c->alpha + a, c->P + a, dP + a, x->K, c->dalpha + a);
    }
    free(dP);
}

void chains_backward(prune_chains *c, double dl_dmacs)
{
    double *dP = xcalloc(c->n_alpha ? c->n_alpha : 1, sizeof(double));
    chains_expected_macs(c, dP);
    for (size_t i = 0; i < c->n_alpha; i++)
        dP[i] *= dl_dmacs;
    chains_backward_dP(c, dP);
    free(dP);
}

void chains_zero_grad(prune_chains *c)
{
    memset(c->dalpha, 0, (c->n_alpha ? c->n_alpha : 1) * sizeof(float));
    memset(c->dscale, 0, (c->s_off[c->sp->n_units] ? c->s_off[c->sp->n_units] : 1) * sizeof(float));
    size_t nt = c->t_off[c->sp->n_sites];
    memset(c->t_dscale, 0, (nt ? nt : 1) * sizeof(float));
}

void chains_sgd_step(prune_chains *c, double lr, double momentum, int nesterov, double wd,
                     int first)
{
    nn_sgd_params p = {(float)lr, (float)momentum, 0.0f, (float)wd, nesterov};
    if (c->n_alpha > 0)
        nn_sgd_step(c->alpha, c->mom, c->dalpha, c->n_alpha, &p, first);
    chains_update(c);
}

void chains_sample(const prune_chains *c, rng *r, int *w)
{
    const prune_space *sp = c->sp;
    for (int u = 0; u < sp->n_units; u++) {
        const prunespace_unit *x = &sp->units[u];
        int k = 0;
        while (k < x->K && (double)rng_uniform(r) <= sigmoid(c->alpha[c->a_off[u] + k]))
            k++;
        w[u] = x->c_min + k * x->group;
    }
    prunespace_fix_structure(sp, w, 1);
}

void chains_random_widths(const prune_space *sp, rng *r, int *w)
{
    for (int u = 0; u < sp->n_units; u++) {
        const prunespace_unit *x = &sp->units[u];
        w[u] = x->c_min + (int)rng_below(r, (uint32_t)x->K + 1) * x->group;
    }
    prunespace_fix_structure(sp, w, 1);
}

int chains_official_width(int C, double f, double max)
{
    double v = (double)C * f / max;
    long d = (long)(v + 4.0) / 8 * 8;
    if (d < 8)
        d = 8;
    if ((double)d < 0.9 * v)
        d += 8;
    return d > C ? C : (int)d;
}

void chains_official_min_widths(const prune_space *sp, int *w)
{
    for (int u = 0; u < sp->n_units; u++)
        w[u] = chains_official_width(sp->units[u].channels, sp->width.min, sp->width.max);
    prunespace_fix_structure(sp, w, 0);
}

void chains_official_random_widths(const prune_space *sp, rng *r, int *w)
{
    const prunespace_width *x = &sp->width;
    /* the official list: max, min, and min + k*offset below max */
    int below = (int)ceil((x->max - x->min) / x->offset - 1e-6);
    for (int u = 0; u < sp->n_units; u++) {
        int k = (int)rng_below(r, (uint32_t)below + 1);
        double f = k == below ? x->max : x->min + k * x->offset;
        w[u] = chains_official_width(sp->units[u].channels, f, x->max);
    }
    prunespace_fix_structure(sp, w, 0);
}

void chains_es_widths(const prune_chains *c, int *w)
{
    const prune_space *sp = c->sp;
    double *ec = xcalloc((size_t)sp->n_units, sizeof(double));
    chains_expected_widths(c, ec);
    for (int u = 0; u < sp->n_units; u++) {
        long v = lround(ec[u] - 1e-4);
        int C = sp->units[u].channels;
        w[u] = v < 1 ? 1 : v > C ? C : (int)v;
    }
    free(ec);
    prunespace_fix_structure(sp, w, 0);
}
