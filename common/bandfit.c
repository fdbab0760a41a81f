/* bandfit.c - the network nearest a wanted one inside a MACs band (see bandfit.h).
 *
 * A conv's MACs are (k*k*cin + bias)*hw*cout: bilinear in the widths of
 * its two units. A vertex cover of the unit graph (one edge per conv
 * between two units) splits the units in use into "coupled" ones (the
 * cover: residual streams) and "free" ones (inner widths, expansions), so
 * that once the coupled widths and the depths are fixed the MACs are
 * S0 + sum a_u w_u over the free units, with integer a_u >= 0: one linear
 * constraint on a separable distance.
 *   Depths: the DEPTH_VECTORS nearest the wanted depths whose MAC bounds
 * (every width at its least / most) straddle the band, ranked by their
 * distance plus that of the relaxed widths (real widths nearest the
 * wanted ones with the band's middle MACs: coordinate descent on distance
 * + mu*MACs, mu bisected); searched in that order until the rank reaches
 * the best network's distance.
 *   Coupled widths at one depth vector: best-first by distance to the
 * relaxed widths (bestfirst.h), stopped when no combination left can beat
 * the best network (the triangle inequality) or after DEPTH_COMBOS.
 *   Free widths: the Lagrangian - every free unit at its allowed width
 * nearest want - mu*a*scale^2/2, mu bisected until the sum lies in the
 * band, then a walk between the two sides of the last bracket - and,
 * where whole channels are coarser steps than the band, a dynamic program
 * over the sums.
 * At most OUTER_COMBOS combinations in all. Sums of integer MACs are exact
 * in doubles and every budget is a count, so the result does not depend on
 * the machine. Allocates per call only; thread-safe.
 */
#include "common/bandfit.h"

#include "common/bestfirst.h"
#include "common/err.h"
#include "common/xalloc.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OUTER_COMBOS  4000 /* coupled-width and depth combinations tried at most */
#define DEPTH_COMBOS  1000 /* of them at one depth vector */
#define DEPTH_VECTORS 256  /* depth vectors ranked before the search */
#define RELAX_SWEEPS  30
#define RELAX_BISECT  50
#define DP_CALLS      400  /* inner dynamic programs at most */
#define DP_VALUES     64   /* widths per unit the dynamic program considers */
#define DP_BUCKETS    8192 /* sums it tells apart */
#define BISECT_STEPS  100
#define MAX_EXCL      4 /* widths a free unit must avoid (its partners') */

enum { ROLE_UNUSED = 0, ROLE_FREE, ROLE_COUPLED };

typedef struct fit {
    const bandfit_spec *f;
    const prune_space *sp;
    int nu, ns, nb;
    int *lo, *hi;     /* (nu) allowed widths */
    double *scale;    /* (nu) */
    int *role;        /* (nu) ROLE_* */
    int *blk_stage;   /* (nb) stage of each block */
    int *blk_pos;     /* (nb) its place in the stage */
    char *live;       /* (nu) units in a kept layer, for the depths last marked */
    int *adj_off;     /* (nu + 1) offsets into adj */
    int *adj;         /* the layers of each unit */
    int found;        /* a network in the band was seen */
    double best_cost; /* its distance */
    int *best_w;      /* (nu) */
    int *best_d;      /* (ns) */
    double near_dist; /* the nearest network outside the band: distance to it */
    double near_macs; /* and its MACs */
    int *near_w;      /* (nu) */
    int *near_d;      /* (ns) */
    long dp_calls;
} fit;

/* ---- the network's arithmetic ----------------------------------------------------- */

static int layer_active(const fit *F, int l, const int *d)
{
    int b = F->sp->layers[l].blk;
    if (b < 0 || F->ns == 0 || d == NULL)
        return 1;
    assert(b < F->nb);
    return F->blk_pos[b] < d[F->blk_stage[b]];
}

static double net_macs(const fit *F, const int *w, const int *d)
{
    double total = 0;
    for (int l = 0; l < F->sp->n_layers; l++)
        if (layer_active(F, l, d))
            total += prunespace_layer_macs(F->sp, l, w);
    return total;
}

static void mark_live(fit *F, const int *d)
{
    memset(F->live, 0, (size_t)F->nu);
    for (int l = 0; l < F->sp->n_layers; l++) {
        if (!layer_active(F, l, d))
            continue;
        const prunespace_layer *x = &F->sp->layers[l];
        if (x->in_unit >= 0)
            F->live[x->in_unit] = 1;
        if (x->out_unit >= 0)
            F->live[x->out_unit] = 1;
    }
}

/* Whether unit u, at w[u], clashes with a live partner (either way round). */
static int partner_clash(const fit *F, const int *w, int u)
{
    if (!F->live[u])
        return 0;
    int p = F->sp->units[u].partner;
    if (p >= 0 && F->live[p] && w[p] == w[u])
        return 1;
    for (int x = 0; x < F->nu; x++)
        if (F->sp->units[x].partner == u && F->live[x] && w[x] == w[u])
            return 1;
    return 0;
}

/* Whether live partners differ (coupled_only: pairs of coupled units; the
 * free units' partners are their exclusions). */
static int structure_ok(const fit *F, const int *w, int coupled_only)
{
    for (int u = 0; u < F->nu; u++) {
        int p = F->sp->units[u].partner;
        if (p < 0 || !F->live[u] || !F->live[p] || w[u] != w[p])
            continue;
        if (!coupled_only || (F->role[u] == ROLE_COUPLED && F->role[p] == ROLE_COUPLED))
            return 0;
    }
    return 1;
}

static double unit_cost(const fit *F, int u, double v)
{
    double x = (v - F->f->want[u]) / F->scale[u];
    return x * x;
}

static double depth_cost(const fit *F, int s, double v)
{
    double x = v - F->f->want_depth[s];
    return x * x;
}

/* Distance of (w, d) from the wanted network; F->live must be d's. */
static double net_cost(const fit *F, const int *w, const int *d)
{
    double c = 0;
    for (int u = 0; u < F->nu; u++)
        if (F->live[u] && F->role[u] != ROLE_UNUSED)
            c += unit_cost(F, u, w[u]);
    for (int s = 0; s < F->ns; s++)
        c += depth_cost(F, s, d[s]);
    return c;
}

static int in_band(const fit *F, double macs)
{
    return macs >= F->f->lo && macs <= F->f->hi;
}

/* Records (w, d) as the best network in the band or the nearest outside
 * it; F->live must be d's and the structure kept. Returns 1 when in band. */
static int consider(fit *F, const int *w, const int *d)
{
    double macs = net_macs(F, w, d);
    size_t wn = (size_t)F->nu * sizeof(int), dn = (size_t)F->ns * sizeof(int);
    if (in_band(F, macs)) {
        double c = net_cost(F, w, d);
        if (!F->found || c < F->best_cost) {
            F->found = 1;
            F->best_cost = c;
            memcpy(F->best_w, w, wn);
            if (dn > 0)
                memcpy(F->best_d, d, dn);
        }
        return 1;
    }
    double dist = macs < F->f->lo ? F->f->lo - macs : macs - F->f->hi;
    if (dist < F->near_dist) {
        F->near_dist = dist;
        F->near_macs = macs;
        memcpy(F->near_w, w, wn);
        if (dn > 0)
            memcpy(F->near_d, d, dn);
    }
    return 0;
}

/* ---- roles: a vertex cover of the unit graph ------------------------------------------- */

static void assign_roles(fit *F)
{
    const prune_space *sp = F->sp;
    int nl = sp->n_layers, *ea = xcalloc((size_t)nl + 1, sizeof(int));
    int *eb = xcalloc((size_t)nl + 1, sizeof(int)), ne = 0;
    int *n_layers = xcalloc((size_t)F->nu, sizeof(int)),
        *count = xcalloc((size_t)F->nu, sizeof(int));
    for (int l = 0; l < nl; l++) {
        const prunespace_layer *x = &sp->layers[l];
        if (x->in_unit >= 0)
            n_layers[x->in_unit]++;
        if (x->out_unit >= 0 && x->out_unit != x->in_unit)
            n_layers[x->out_unit]++;
        if (x->depthwise || x->in_unit < 0 || x->out_unit < 0)
            continue;
        if (x->in_unit == x->out_unit) /* quadratic in one width: never free */
            F->role[x->in_unit] = ROLE_COUPLED;
        else {
            ea[ne] = x->in_unit;
            eb[ne++] = x->out_unit;
        }
    }
    for (int u = 0; u < F->nu; u++)
        if (F->role[u] == ROLE_UNUSED && n_layers[u] > 0)
            F->role[u] = ROLE_FREE;
    for (;;) { /* greedy cover: the unit on most uncovered edges first */
        memset(count, 0, (size_t)F->nu * sizeof(int));
        for (int e = 0; e < ne; e++)
            if (F->role[ea[e]] != ROLE_COUPLED && F->role[eb[e]] != ROLE_COUPLED) {
                count[ea[e]]++;
                count[eb[e]]++;
            }
        int best = -1;
        for (int u = 0; u < F->nu; u++)
            if (count[u] > 0 && (best < 0 || count[u] > count[best]))
                best = u;
        if (best < 0)
            break;
        F->role[best] = ROLE_COUPLED;
    }
    /* two free partners would constrain each other: one of them is coupled */
    for (int u = 0; u < F->nu; u++) {
        int p = sp->units[u].partner;
        if (p >= 0 && F->role[u] == ROLE_FREE && F->role[p] == ROLE_FREE)
            F->role[n_layers[u] > n_layers[p] ? u : p] = ROLE_COUPLED;
    }
    /* a free unit avoids its partners' widths, at most MAX_EXCL of them (a stream
     * whose stage has many expanding blocks, when SE made those coupled, has more) */
    memset(count, 0, (size_t)F->nu * sizeof(int));
    for (int u = 0; u < F->nu; u++)
        if (sp->units[u].partner >= 0)
            count[u]++, count[sp->units[u].partner]++;
    for (int u = 0; u < F->nu; u++)
        if (F->role[u] == ROLE_FREE && count[u] > MAX_EXCL)
            F->role[u] = ROLE_COUPLED;
    free(ea);
    free(eb);
    free(n_layers);
    free(count);
}

/* ---- the inner problem: free widths, linear MACs -------------------------------------- */

typedef struct inner {
    int n;       /* free units in use */
    int *u;      /* (n) */
    double *a;   /* (n) MACs per channel */
    int *excl;   /* (n * MAX_EXCL) widths to avoid, -1 unused */
    double S0;   /* MACs of everything else */
    double L, H; /* the band for sum a_i w_i */
} inner;

static int allowed(const fit *F, const inner *in, int i, int v)
{
    int u = in->u[i];
    if (v < F->lo[u] || v > F->hi[u])
        return 0;
    for (int k = 0; k < MAX_EXCL; k++)
        if (in->excl[i * MAX_EXCL + k] == v)
            return 0;
    return 1;
}

/* Adds the widths unit u must avoid: its live partners' (coupled, fixed now). */
static void set_exclusions(const fit *F, const int *w, int u, int *excl)
{
    int k = 0, p = F->sp->units[u].partner;
    for (int j = 0; j < MAX_EXCL; j++)
        excl[j] = -1;
    if (p >= 0 && F->live[p])
        excl[k++] = w[p];
    for (int x = 0; x < F->nu; x++)
        if (F->sp->units[x].partner == u && F->live[x]) {
            assert(k < MAX_EXCL);
            excl[k++] = w[x];
        }
}

/* S0 and a_u for the coupled widths in w at depths d; F->live must be d's. */
static void linearize(const fit *F, const int *w, const int *d, inner *in)
{
    double *a = xcalloc((size_t)F->nu, sizeof(double));
    in->S0 = 0;
    for (int l = 0; l < F->sp->n_layers; l++) {
        if (!layer_active(F, l, d))
            continue;
        const prunespace_layer *x = &F->sp->layers[l];
        double kk = (double)x->k * x->k, b = x->bias ? 1.0 : 0.0, hw = (double)x->hw;
        int in_f = x->in_unit >= 0 && F->role[x->in_unit] == ROLE_FREE;
        int out_f = x->out_unit >= 0 && F->role[x->out_unit] == ROLE_FREE;
        if (x->depthwise && out_f) {
            a[x->out_unit] += (kk + b) * hw;
        } else if (!x->depthwise && out_f) {
            assert(!in_f);
            double cin = x->in_unit >= 0 ? w[x->in_unit] : x->in_fixed;
            a[x->out_unit] += (kk * cin + b) * hw;
        } else if (!x->depthwise && in_f) {
            double cout = x->out_unit >= 0 ? w[x->out_unit] : x->out_fixed;
            a[x->in_unit] += kk * hw * cout;
            in->S0 += b * hw * cout;
        } else {
            in->S0 += prunespace_layer_macs(F->sp, l, w);
        }
    }
    in->n = 0;
    for (int u = 0; u < F->nu; u++) /* a unit costing no MACs keeps its start width */
        if (F->role[u] == ROLE_FREE && F->live[u] && a[u] > 0) {
            int i = in->n++;
            in->u[i] = u;
            in->a[i] = a[u];
            set_exclusions(F, w, u, &in->excl[i * MAX_EXCL]);
        }
    in->L = F->f->lo - in->S0;
    in->H = F->f->hi - in->S0;
    free(a);
}

/* The allowed width of free unit i minimising its distance + mu*a*w, or -1. */
static int pick(const fit *F, const inner *in, int i, double mu)
{
    int u = in->u[i];
    double s = F->scale[u], t = F->f->want[u] - mu * in->a[i] * s * s / 2;
    double c = floor(t + 0.5);
    int v = c < F->lo[u] ? F->lo[u] : c > F->hi[u] ? F->hi[u] : (int)c;
    if (allowed(F, in, i, v))
        return v;
    int dn = v - 1, up = v + 1;
    while (dn >= F->lo[u] && !allowed(F, in, i, dn))
        dn--;
    while (up <= F->hi[u] && !allowed(F, in, i, up))
        up++;
    int has_dn = dn >= F->lo[u], has_up = up <= F->hi[u];
    if (!has_dn)
        return has_up ? up : -1;
    if (!has_up)
        return dn;
    double gd = unit_cost(F, u, dn) + mu * in->a[i] * dn;
    double gu = unit_cost(F, u, up) + mu * in->a[i] * up;
    return gu < gd ? up : dn;
}

/* Every free unit at pick(mu); returns sum a_i w_i, or -1 when a unit has no width. */
static double pick_all(const fit *F, const inner *in, double mu, int *w)
{
    double sum = 0;
    for (int i = 0; i < in->n; i++) {
        int v = pick(F, in, i, mu);
        if (v < 0)
            return -1;
        w[in->u[i]] = v;
        sum += in->a[i] * v;
    }
    return sum;
}

/* The Lagrangian fit. Returns 1 with the free widths of w in the band,
 * else 0 (the widths seen are considered for the nearest network). */
static int lagrangian(fit *F, const inner *in, int *w, const int *d, int *wa)
{
    double sum = pick_all(F, in, 0, w);
    if (sum < 0)
        return 0;
    if (sum >= in->L && sum <= in->H)
        return 1;
    double mu_lo = 0, mu_hi = 0; /* sum(mu_lo) > H, sum(mu_hi) < L */
    for (int i = 0; i < in->n; i++) {
        int u = in->u[i];
        double k = 2.0 / (in->a[i] * F->scale[u] * F->scale[u]);
        mu_hi = fmax(mu_hi, k * (F->f->want[u] - F->lo[u] + 1));
        mu_lo = fmin(mu_lo, k * (F->f->want[u] - F->hi[u] - 1));
    }
    if (sum > in->H)
        mu_lo = 0;
    else
        mu_hi = 0;
    double s_lo = pick_all(F, in, mu_lo, wa), s_hi = pick_all(F, in, mu_hi, w);
    if (s_hi > in->H || s_lo < in->L) { /* the band is out of reach of these widths */
        consider(F, s_hi > in->H ? w : wa, d);
        return 0;
    }
    for (int it = 0; it < BISECT_STEPS; it++) {
        double mid = 0.5 * (mu_lo + mu_hi);
        if (!(mid > mu_lo && mid < mu_hi))
            break;
        double s = pick_all(F, in, mid, w);
        if (s >= in->L && s <= in->H)
            return 1;
        if (s > in->H)
            mu_lo = mid;
        else
            mu_hi = mid;
    }
    /* a jump over the band: from the side below, move units up toward the
     * side above one channel at a time, a unit whose step overshoots left */
    pick_all(F, in, mu_lo, wa);
    sum = pick_all(F, in, mu_hi, w);
    for (int i = 0; i < in->n; i++) {
        int u = in->u[i];
        while (w[u] < wa[u]) {
            int v = w[u] + 1;
            while (v < wa[u] && !allowed(F, in, i, v))
                v++;
            double next = sum + in->a[i] * (v - w[u]);
            if (next > in->H)
                break;
            w[u] = v;
            sum = next;
            if (sum >= in->L)
                return 1;
        }
    }
    consider(F, w, d);
    return 0;
}

typedef struct dp_value {
    int v;
    double c;
} dp_value;

static int by_cost(const void *x, const void *y)
{
    const dp_value *a = x, *b = y;
    if (a->c != b->c)
        return a->c < b->c ? -1 : 1;
    return (a->v > b->v) - (a->v < b->v);
}

static int by_coeff_desc(const void *x, const void *y, const inner *in)
{
    double a = in->a[*(const int *)x], b = in->a[*(const int *)y];
    if (a != b)
        return a > b ? -1 : 1;
    return *(const int *)x - *(const int *)y;
}

/* Free units in order of a_i, largest first (insertion sort: few units). */
static void order_units(const inner *in, int *ord)
{
    for (int i = 0; i < in->n; i++) {
        int j = i;
        ord[i] = i;
        while (j > 0 && by_coeff_desc(&ord[j - 1], &ord[j], in) > 0) {
            int t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
            j--;
        }
    }
}

/* The dynamic program's inputs: the free units in order of a_i (largest
 * first), the DP_VALUES widths of each nearest the wanted one, and the
 * least and most MACs of the units from each on. */
typedef struct dp_plan {
    int n;
    int *ord, *nv;       /* (n) unit i of step k; its widths */
    dp_value *vals;      /* (n * DP_VALUES) */
    double *minr, *maxr; /* (n + 1) */
} dp_plan;

static void dp_plan_init(dp_plan *p, const fit *F, const inner *in)
{
    int n = p->n = in->n;
    p->ord = xcalloc((size_t)n + 1, sizeof(int));
    p->nv = xcalloc((size_t)n + 1, sizeof(int));
    p->vals = xcalloc((size_t)n * DP_VALUES + 1, sizeof(dp_value));
    p->minr = xcalloc((size_t)n + 1, sizeof(double));
    p->maxr = xcalloc((size_t)n + 1, sizeof(double));
    order_units(in, p->ord);
    for (int k = 0; k < n; k++) {
        int i = p->ord[k], u = in->u[i], cnt = 0, span = F->hi[u] - F->lo[u] + 1;
        dp_value *all = xcalloc((size_t)span, sizeof(dp_value));
        for (int v = F->lo[u]; v <= F->hi[u]; v++)
            if (allowed(F, in, i, v))
                all[cnt++] = (dp_value){v, unit_cost(F, u, v)};
        qsort(all, (size_t)cnt, sizeof *all, by_cost);
        p->nv[k] = cnt < DP_VALUES ? cnt : DP_VALUES;
        memcpy(&p->vals[(size_t)k * DP_VALUES], all, (size_t)p->nv[k] * sizeof *all);
        free(all);
    }
    for (int k = n - 1; k >= 0; k--) {
        double mn = HUGE_VAL, mx = -HUGE_VAL, a = in->a[p->ord[k]];
        for (int j = 0; j < p->nv[k]; j++) {
            mn = fmin(mn, a * p->vals[(size_t)k * DP_VALUES + j].v);
            mx = fmax(mx, a * p->vals[(size_t)k * DP_VALUES + j].v);
        }
        p->minr[k] = p->minr[k + 1] + (p->nv[k] > 0 ? mn : HUGE_VAL);
        p->maxr[k] = p->maxr[k + 1] + (p->nv[k] > 0 ? mx : -HUGE_VAL);
    }
}

static void dp_plan_deinit(dp_plan *p)
{
    free(p->ord);
    free(p->nv);
    free(p->vals);
    free(p->minr);
    free(p->maxr);
}

static double band_dist(const inner *in, double s)
{
    return s < in->L ? in->L - s : s > in->H ? s - in->H : 0;
}

/* The dynamic program over the sums: unit by unit (largest a first), the
 * cheapest way to each sum bucket; buckets of a quarter band over the
 * units, so merging costs less than a quarter band in all. Returns 1 with
 * the free widths of w in the band, else 0 (the nearest sum considered). */
static int dp_fit(fit *F, const inner *in, int *w, const int *d)
{
    dp_plan p;
    dp_plan_init(&p, F, in);
    int n = p.n, ok = 0;
    if (p.minr[0] > in->H || p.maxr[0] < in->L || in->H < 0) {
        dp_plan_deinit(&p);
        return 0;
    }
    double delta = fmax(1.0, (in->H - in->L) / (4.0 * n));
    if (in->H / delta + 1 > DP_BUCKETS)
        delta = in->H / (DP_BUCKETS - 1);
    int nb = (int)(in->H / delta) + 1;
    double *cost = xmallocarray((size_t)nb, sizeof(double));
    double *sum = xmallocarray((size_t)nb, sizeof(double));
    double *ncost = xmallocarray((size_t)nb, sizeof(double));
    double *nsum = xmallocarray((size_t)nb, sizeof(double));
    int *par = xmallocarray((size_t)n * nb, sizeof(int));
    int *val = xmallocarray((size_t)n * nb, sizeof(int));
    for (int b = 0; b < nb; b++)
        cost[b] = HUGE_VAL;
    cost[0] = sum[0] = 0;
    for (int k = 0; k < n; k++) {
        double a = in->a[p.ord[k]];
        for (int b = 0; b < nb; b++)
            ncost[b] = HUGE_VAL;
        for (int b = 0; b < nb; b++) {
            for (int j = 0; cost[b] != HUGE_VAL && j < p.nv[k]; j++) {
                const dp_value *x = &p.vals[(size_t)k * DP_VALUES + j];
                double s = sum[b] + a * x->v, c = cost[b] + x->c;
                int t = (int)(s / delta);
                if (s + p.minr[k + 1] > in->H || s + p.maxr[k + 1] < in->L || t >= nb ||
                    c >= ncost[t])
                    continue;
                ncost[t] = c;
                nsum[t] = s;
                par[(size_t)k * nb + t] = b;
                val[(size_t)k * nb + t] = x->v;
            }
        }
        double *tc = cost, *ts = sum;
        cost = ncost;
        sum = nsum;
        ncost = tc;
        nsum = ts;
    }
    int best = -1, near = -1;
    for (int b = 0; b < nb; b++) {
        if (cost[b] == HUGE_VAL)
            continue;
        if (band_dist(in, sum[b]) == 0 && (best < 0 || cost[b] < cost[best]))
            best = b;
        if (near < 0 || band_dist(in, sum[b]) < band_dist(in, sum[near]))
            near = b;
    }
    for (int k = n - 1, b = best >= 0 ? best : near; k >= 0 && b >= 0; k--) {
        w[in->u[p.ord[k]]] = val[(size_t)k * nb + b];
        b = par[(size_t)k * nb + b];
    }
    ok = best >= 0;
    if (!ok && near >= 0)
        consider(F, w, d);
    free(cost);
    free(sum);
    free(ncost);
    free(nsum);
    free(par);
    free(val);
    dp_plan_deinit(&p);
    return ok;
}

/* The free widths for the coupled widths and depths in (w, d): in the
 * band if it can, every network in the band considered. */
static void fit_free(fit *F, int *w, const int *d, inner *in, int *scratch)
{
    linearize(F, w, d, in);
    if (in->n == 0) {
        consider(F, w, d);
        return;
    }
    if (lagrangian(F, in, w, d, scratch)) {
        consider(F, w, d);
        return;
    }
    if (F->dp_calls < DP_CALLS) {
        F->dp_calls++;
        if (dp_fit(F, in, w, d))
            consider(F, w, d);
    }
}

/* ---- the continuous relaxation: where the coupled widths are searched from --------- */

/* How a layer side's width follows its unit's: 1, or a squeeze-excitation's
 * tie ratio (prunespace.h), which the relaxation keeps real. */
static double side_ratio(const fit *F, int u, int tie)
{
    return u >= 0 && tie > 0 ? (double)tie / F->sp->units[u].channels : 1.0;
}

/* MACs at real widths c and depths d. */
static double real_macs(const fit *F, const double *c, const int *d)
{
    double total = 0;
    for (int l = 0; l < F->sp->n_layers; l++) {
        if (!layer_active(F, l, d))
            continue;
        const prunespace_layer *x = &F->sp->layers[l];
        double kk = (double)x->k * x->k, b = x->bias ? 1.0 : 0.0;
        double cin =
            x->in_unit >= 0 ? c[x->in_unit] * side_ratio(F, x->in_unit, x->in_tie) : x->in_fixed;
        double cout = x->out_unit >= 0 ? c[x->out_unit] * side_ratio(F, x->out_unit, x->out_tie)
                                       : x->out_fixed;
        total += ((x->depthwise ? kk : kk * cin) + b) * (double)x->hw * cout;
    }
    return total;
}

/* d(MACs)/d(c_u) at real widths c and depths d. */
static double real_grad(const fit *F, const double *c, const int *d, int u)
{
    double g = 0;
    for (int j = F->adj_off[u]; j < F->adj_off[u + 1]; j++) {
        int l = F->adj[j];
        if (!layer_active(F, l, d))
            continue;
        const prunespace_layer *x = &F->sp->layers[l];
        double kk = (double)x->k * x->k, b = x->bias ? 1.0 : 0.0, hw = (double)x->hw;
        double rin = side_ratio(F, x->in_unit, x->in_tie);
        double rout = side_ratio(F, x->out_unit, x->out_tie);
        double cin = x->in_unit >= 0 ? c[x->in_unit] * rin : x->in_fixed;
        double cout = x->out_unit >= 0 ? c[x->out_unit] * rout : x->out_fixed;
        if (x->out_unit == u)
            g += ((x->depthwise ? kk : kk * cin) + b) * hw * rout;
        if (x->in_unit == u && !x->depthwise)
            g += kk * hw * cout * rin;
    }
    return g;
}

/* Coordinate descent on distance + mu*MACs over the units in use (each
 * unit's MACs are linear in its own width), from c. */
static void relax_sweeps(const fit *F, const int *d, double mu, double *c)
{
    for (int it = 0; it < RELAX_SWEEPS; it++) {
        double moved = 0;
        for (int u = 0; u < F->nu; u++) {
            if (!F->live[u] || F->role[u] == ROLE_UNUSED)
                continue;
            double s = F->scale[u], g = real_grad(F, c, d, u);
            double v = fmin(F->hi[u], fmax(F->lo[u], F->f->want[u] - mu * g * s * s / 2));
            moved = fmax(moved, fabs(v - c[u]));
            c[u] = v;
        }
        if (moved < 1e-3)
            break;
    }
}

/* Real widths at depths d near the wanted ones whose MACs are the middle
 * of the band (as near as the ranges allow): the multiplier mu bisected.
 * F->live must be d's. */
static void relax(const fit *F, const int *d, double *c)
{
    double target = 0.5 * (F->f->lo + F->f->hi), mu_max = 0;
    for (int u = 0; u < F->nu; u++)
        c[u] = F->lo[u];
    for (int u = 0; u < F->nu; u++) { /* |mu| that takes every unit to a bound */
        double g = real_grad(F, c, d, u), s = F->scale[u];
        if (F->live[u] && g > 0)
            mu_max =
                fmax(mu_max, 2 * (F->hi[u] - F->lo[u] + 1 + fabs(F->f->want[u])) / (g * s * s));
    }
    for (int u = 0; u < F->nu; u++)
        c[u] = fmin(F->hi[u], fmax(F->lo[u], F->f->want[u]));
    relax_sweeps(F, d, 0, c);
    double m = real_macs(F, c, d);
    if (m == target || mu_max == 0)
        return;
    double a = m > target ? 0 : -mu_max, b = m > target ? mu_max : 0; /* MACs(a) > target */
    for (int it = 0; it < RELAX_BISECT; it++) {
        double mid = 0.5 * (a + b);
        relax_sweeps(F, d, mid, c);
        if (real_macs(F, c, d) > target)
            a = mid;
        else
            b = mid;
    }
}

/* Every unit in use at depths d at its bound (smallest: lo, else hi);
 * units not in use keep w0's widths. apart: equal partners are then moved
 * apart by one channel, of the four moves the one with the fewest (most)
 * MACs, so that the network is valid; else the MACs are a bound over every
 * network at d (MACs grow with every width). Leaves F->live at d's. */
static void extreme(fit *F, const int *w0, const int *d, int *w, int smallest, int apart)
{
    memcpy(w, w0, (size_t)F->nu * sizeof(int));
    mark_live(F, d);
    for (int u = 0; u < F->nu; u++)
        if (F->live[u])
            w[u] = smallest ? F->lo[u] : F->hi[u];
    for (int u = 0; apart && u < F->nu; u++) {
        int p = F->sp->units[u].partner;
        if (p < 0 || !F->live[u] || !F->live[p] || w[u] != w[p])
            continue;
        int pick_unit = -1, pick_v = 0;
        double pick_m = 0;
        for (int m = 0; m < 4; m++) {
            int x = m < 2 ? u : p, v = w[x] + (m % 2 ? -1 : 1), old = w[x];
            if (v < F->lo[x] || v > F->hi[x])
                continue;
            w[x] = v;
            double macs = partner_clash(F, w, x) ? -1 : net_macs(F, w, d);
            w[x] = old;
            if (macs >= 0 && (pick_unit < 0 || (smallest ? macs < pick_m : macs > pick_m))) {
                pick_unit = x;
                pick_v = v;
                pick_m = macs;
            }
        }
        if (pick_unit >= 0)
            w[pick_unit] = pick_v;
    }
}

/* ---- the search: depths, then coupled widths, nearest-first ------------------------------ */

typedef struct work {
    inner in;
    int *w, *scratch; /* (nu) */
    double *c;        /* (nu) relaxed widths */
    int *dims;        /* (nu) coupled units in use */
    dp_value **vals;  /* (nu) their widths, nearest the relaxed ones first */
    double **dist;    /* (nu) distances of those from the relaxed ones */
    int *len, *idx;   /* (nu + ns) */
} work;

static void work_init(work *k, const fit *F)
{
    size_t nu = (size_t)F->nu + 1, n = nu + (size_t)F->ns;
    k->in.u = xcalloc(nu, sizeof(int));
    k->in.a = xcalloc(nu, sizeof(double));
    k->in.excl = xcalloc(nu * MAX_EXCL, sizeof(int));
    k->w = xcalloc(nu, sizeof(int));
    k->scratch = xcalloc(nu, sizeof(int));
    k->c = xcalloc(nu, sizeof(double));
    k->dims = xcalloc(nu, sizeof(int));
    k->vals = xcalloc(nu, sizeof(dp_value *));
    k->dist = xcalloc(nu, sizeof(double *));
    k->len = xcalloc(n, sizeof(int));
    k->idx = xcalloc(n, sizeof(int));
    for (int u = 0; u < F->nu; u++) {
        size_t span = (size_t)F->hi[u] - (size_t)F->lo[u] + 1;
        k->vals[u] = xcalloc(span, sizeof(dp_value));
        k->dist[u] = xcalloc(span, sizeof(double));
    }
}

static void work_deinit(work *k, const fit *F)
{
    for (int u = 0; u < F->nu; u++) {
        free(k->vals[u]);
        free(k->dist[u]);
    }
    free(k->in.u);
    free(k->in.a);
    free(k->in.excl);
    free(k->w);
    free(k->scratch);
    free(k->c);
    free(k->dims);
    free(k->vals);
    free(k->dist);
    free(k->len);
    free(k->idx);
}

/* The coupled widths at depths d (distance dcost of their own), nearest
 * the relaxed ones first, each completed by fit_free; stops at `budget`
 * combinations or when none left can beat the best network (the weighted
 * distance to the wanted widths is at least sqrt(D) - R, D the distance to
 * the relaxed ones and R theirs to the wanted). Returns the combinations
 * tried. F->live must be d's. */
static long widths_at(fit *F, const int *w0, const int *d, double dcost, long budget, work *k)
{
    relax(F, d, k->c);
    int nd = 0;
    double r2 = 0;
    for (int u = 0; u < F->nu; u++) {
        if (F->role[u] != ROLE_COUPLED || !F->live[u])
            continue;
        int n = 0;
        for (int v = F->lo[u]; v <= F->hi[u]; v++) {
            double x = (v - k->c[u]) / F->scale[u];
            k->vals[u][n++] = (dp_value){v, x * x};
        }
        qsort(k->vals[u], (size_t)n, sizeof(dp_value), by_cost);
        for (int j = 0; j < n; j++)
            k->dist[u][j] = k->vals[u][j].c;
        k->len[nd] = n;
        k->dims[nd++] = u;
        double x = (k->c[u] - F->f->want[u]) / F->scale[u];
        r2 += x * x;
    }
    const double **cst = xcalloc((size_t)nd + 1, sizeof(double *));
    for (int j = 0; j < nd; j++)
        cst[j] = k->dist[k->dims[j]];
    bestfirst *bf = bestfirst_new(nd, k->len, cst);
    double D, R = sqrt(r2);
    long tried = 0;
    while (tried < budget && bestfirst_next(bf, k->idx, &D)) {
        double lb = fmax(0, sqrt(D) - R);
        if (F->found && dcost + lb * lb >= F->best_cost)
            break;
        memcpy(k->w, w0, (size_t)F->nu * sizeof(int)); /* units not in use keep the start */
        for (int j = 0; j < nd; j++)
            k->w[k->dims[j]] = k->vals[k->dims[j]][k->idx[j]].v;
        tried++;
        if (structure_ok(F, k->w, 1))
            fit_free(F, k->w, d, &k->in, k->scratch);
    }
    bestfirst_free(bf);
    free(cst);
    return tried;
}

/* Distance of relaxed widths c from the wanted ones; F->live must be current. */
static double relaxed_cost(const fit *F, const double *c)
{
    double sum = 0;
    for (int u = 0; u < F->nu; u++)
        if (F->live[u] && F->role[u] != ROLE_UNUSED)
            sum += unit_cost(F, u, c[u]);
    return sum;
}

/* Whether the band lies within the bounds at depths d; if not, the valid
 * network at the near bound is considered for the nearest. Leaves F->live
 * at d's. */
static int reachable_at(fit *F, const int *w0, const int *d, int *tw)
{
    for (int big = 0; big <= 1; big++) {
        extreme(F, w0, d, tw, !big, 0);
        double m = net_macs(F, tw, d);
        if (big ? m < F->f->lo : m > F->f->hi) {
            extreme(F, w0, d, tw, !big, 1);
            consider(F, tw, d);
            return 0;
        }
    }
    return 1;
}

typedef struct depth_cand {
    double est, dcost; /* estimated distance (depths + relaxed widths); the depths' own */
    int at;            /* first of its depths in the candidates' array */
} depth_cand;

static int by_estimate(const void *x, const void *y)
{
    const depth_cand *a = x, *b = y;
    if (a->est != b->est)
        return a->est < b->est ? -1 : 1;
    return a->at - b->at;
}

/* The depth vectors: up to DEPTH_VECTORS of them nearest-first by their
 * own distance, those whose extremes straddle the band ranked by the
 * distance of their relaxed widths too, and searched by widths_at in that
 * order until the estimate reaches the best network's distance; if none
 * was in the band, the enumeration goes on nearest-first. Returns the
 * combinations tried. */
static long search(fit *F, const int *w0)
{
    work k;
    work_init(&k, F);
    int ns = F->ns, *d = xcalloc((size_t)ns + 1, sizeof(int));
    int *tw = xcalloc((size_t)F->nu, sizeof(int)), *idx = xcalloc((size_t)ns + 1, sizeof(int));
    dp_value **dv = xcalloc((size_t)ns + 1, sizeof(dp_value *));
    double **dc = xcalloc((size_t)ns + 1, sizeof(double *));
    for (int s = 0; s < ns; s++) {
        int n = F->f->depth_max[s];
        dv[s] = xcalloc((size_t)n, sizeof(dp_value));
        dc[s] = xcalloc((size_t)n, sizeof(double));
        for (int v = 1; v <= n; v++)
            dv[s][v - 1] = (dp_value){v, depth_cost(F, s, v)};
        qsort(dv[s], (size_t)n, sizeof(dp_value), by_cost);
        for (int j = 0; j < n; j++)
            dc[s][j] = dv[s][j].c;
        k.len[s] = n;
    }
    bestfirst *bf = bestfirst_new(ns, k.len, (const double *const *)dc);
    depth_cand *cand = xcalloc(DEPTH_VECTORS, sizeof *cand);
    int *cd = xcalloc((size_t)DEPTH_VECTORS * (size_t)(ns + 1), sizeof(int)), nc = 0, seen = 0;
    double cost;
    while (seen < DEPTH_VECTORS && bestfirst_next(bf, idx, &cost)) {
        seen++;
        int *x = &cd[(size_t)nc * (size_t)(ns + 1)];
        for (int s = 0; s < ns; s++)
            x[s] = dv[s][idx[s]].v;
        if (!reachable_at(F, w0, x, tw))
            continue;
        relax(F, x, k.c);
        cand[nc] = (depth_cand){cost + relaxed_cost(F, k.c), cost, nc};
        nc++;
    }
    qsort(cand, (size_t)nc, sizeof *cand, by_estimate);
    long tried = 0;
    for (int i = 0; i < nc && tried < OUTER_COMBOS; i++) {
        if (F->found && cand[i].est >= F->best_cost)
            break;
        const int *x = &cd[(size_t)cand[i].at * (size_t)(ns + 1)];
        mark_live(F, x);
        long budget = OUTER_COMBOS - tried < DEPTH_COMBOS ? OUTER_COMBOS - tried : DEPTH_COMBOS;
        tried += widths_at(F, w0, x, cand[i].dcost, budget, &k);
    }
    while (!F->found && tried < OUTER_COMBOS && bestfirst_next(bf, idx, &cost)) {
        for (int s = 0; s < ns; s++)
            d[s] = dv[s][idx[s]].v;
        if (!reachable_at(F, w0, d, tw))
            continue;
        long budget = OUTER_COMBOS - tried < DEPTH_COMBOS ? OUTER_COMBOS - tried : DEPTH_COMBOS;
        tried += widths_at(F, w0, d, cost, budget, &k);
    }
    bestfirst_free(bf);
    for (int s = 0; s < ns; s++) {
        free(dv[s]);
        free(dc[s]);
    }
    free(dv);
    free(dc);
    free(cand);
    free(cd);
    free(idx);
    free(d);
    free(tw);
    work_deinit(&k, F);
    return tried;
}

/* ---- polishing, the extremes, the entry point ------------------------------------------ */

/* One channel or block at a time toward the wanted network while the
 * network stays in the band and keeps its structure. */
static void polish(fit *F, int *w, int *d)
{
    mark_live(F, d);
    double cost = net_cost(F, w, d);
    for (int changed = 1; changed;) {
        changed = 0;
        for (int u = 0; u < F->nu; u++) {
            if (!F->live[u] || F->role[u] == ROLE_UNUSED)
                continue;
            for (int step = -1; step <= 1; step += 2) {
                int old = w[u], v = old + step;
                if (v < F->lo[u] || v > F->hi[u] || unit_cost(F, u, v) >= unit_cost(F, u, old))
                    continue;
                w[u] = v;
                if (!partner_clash(F, w, u) && in_band(F, net_macs(F, w, d))) {
                    cost += unit_cost(F, u, v) - unit_cost(F, u, old);
                    changed = 1;
                    break;
                }
                w[u] = old;
            }
        }
        for (int s = 0; s < F->ns; s++) {
            for (int step = -1; step <= 1; step += 2) {
                int old = d[s], v = old + step;
                if (v < 1 || v > F->f->depth_max[s] || depth_cost(F, s, v) >= depth_cost(F, s, old))
                    continue;
                d[s] = v;
                mark_live(F, d);
                double c = net_cost(F, w, d);
                if (c < cost && structure_ok(F, w, 0) && in_band(F, net_macs(F, w, d))) {
                    cost = c;
                    changed = 1;
                    break;
                }
                d[s] = old;
                mark_live(F, d);
            }
        }
    }
}

static void fit_init(fit *F, const bandfit_spec *f)
{
    memset(F, 0, sizeof *F);
    F->f = f;
    F->sp = f->sp;
    F->nu = f->sp->n_units;
    F->ns = f->n_stages;
    F->nb = prunespace_n_blocks(f->sp);
    size_t nu = (size_t)F->nu, ns = (size_t)F->ns + 1, nb = (size_t)F->nb + 1;
    F->lo = xcalloc(nu, sizeof(int));
    F->hi = xcalloc(nu, sizeof(int));
    F->scale = xcalloc(nu, sizeof(double));
    F->role = xcalloc(nu, sizeof(int));
    F->live = xcalloc(nu, 1);
    F->best_w = xcalloc(nu, sizeof(int));
    F->near_w = xcalloc(nu, sizeof(int));
    F->best_d = xcalloc(ns, sizeof(int));
    F->near_d = xcalloc(ns, sizeof(int));
    F->blk_stage = xcalloc(nb, sizeof(int));
    F->blk_pos = xcalloc(nb, sizeof(int));
    F->near_dist = HUGE_VAL;
    for (int u = 0; u < F->nu; u++) {
        const prunespace_unit *x = &f->sp->units[u];
        F->lo[u] = f->w_min != NULL ? f->w_min[u] : x->c_min;
        F->hi[u] = f->w_max != NULL ? f->w_max[u] : x->channels;
        F->scale[u] = f->scale != NULL ? f->scale[u] : x->group;
        assert(F->lo[u] >= 1 && F->lo[u] <= F->hi[u] && F->scale[u] > 0);
    }
    for (int b = 0; b < F->nb; b++)
        F->blk_stage[b] = -1;
    for (int s = 0; s < F->ns; s++)
        for (int j = 0; j < f->depth_max[s]; j++) {
            int b = f->first[s] + j;
            assert(b >= 0 && b < F->nb);
            F->blk_stage[b] = s;
            F->blk_pos[b] = j;
        }
    for (int b = 0; b < F->nb && F->ns > 0; b++)
        assert(F->blk_stage[b] >= 0);
    const prune_space *sp = f->sp;
    F->adj_off = xcalloc(nu + 1, sizeof(int));
    F->adj = xcalloc(2 * (size_t)sp->n_layers + 1, sizeof(int));
    for (int l = 0; l < sp->n_layers; l++) {
        const prunespace_layer *x = &sp->layers[l];
        if (x->in_unit >= 0)
            F->adj_off[x->in_unit + 1]++;
        if (x->out_unit >= 0 && x->out_unit != x->in_unit)
            F->adj_off[x->out_unit + 1]++;
    }
    for (int u = 0; u < F->nu; u++)
        F->adj_off[u + 1] += F->adj_off[u];
    int *fill = xcalloc(nu + 1, sizeof(int));
    for (int l = 0; l < sp->n_layers; l++) {
        const prunespace_layer *x = &sp->layers[l];
        if (x->in_unit >= 0)
            F->adj[F->adj_off[x->in_unit] + fill[x->in_unit]++] = l;
        if (x->out_unit >= 0 && x->out_unit != x->in_unit)
            F->adj[F->adj_off[x->out_unit] + fill[x->out_unit]++] = l;
    }
    free(fill);
}

static void fit_deinit(fit *F)
{
    free(F->lo);
    free(F->hi);
    free(F->scale);
    free(F->role);
    free(F->live);
    free(F->best_w);
    free(F->near_w);
    free(F->best_d);
    free(F->near_d);
    free(F->blk_stage);
    free(F->blk_pos);
    free(F->adj_off);
    free(F->adj);
}

int bandfit_error(errbuf *eb, const char *field, double target_mflops, const bandfit_spec *f,
                  const bandfit_result *r)
{
    return err_set(eb, ERR_INVALID,
                   "%s: no network of the search space has its MFLOPs within [%.5g, %.5g], "
                   "+-%.3g %% of the target %.5g; the nearest reachable network found has %.5g "
                   "MFLOPs (the space spans %.5g to %.5g)",
                   field, f->lo / 1e6, f->hi / 1e6, 100 * (f->hi - f->lo) / (f->hi + f->lo),
                   target_mflops, r->macs / 1e6, r->min_macs / 1e6, r->max_macs / 1e6);
}

double bandfit_macs(const bandfit_spec *f, const int *w, const int *d)
{
    fit F;
    fit_init(&F, f);
    double m = net_macs(&F, w, f->n_stages > 0 ? d : NULL);
    fit_deinit(&F);
    return m;
}

/* r's counts for the network in (w, d). */
static void describe(fit *F, const int *w, const int *d, const int *w0, const int *d0,
                     bandfit_result *r)
{
    mark_live(F, d);
    r->macs = net_macs(F, w, d);
    r->cost = net_cost(F, w, d);
    r->in_band = in_band(F, r->macs);
    r->moved = 0;
    for (int u = 0; u < F->nu; u++)
        r->moved += abs(w[u] - w0[u]);
    for (int s = 0; s < F->ns; s++)
        r->moved += abs(d[s] - d0[s]);
}

int bandfit_run(const bandfit_spec *f, int *w, int *d, bandfit_result *r)
{
    fit F;
    fit_init(&F, f);
    int ns = F.ns, nu = F.nu;
    int dummy = 0, *dd = ns > 0 ? d : &dummy;
    int *w0 = xcalloc((size_t)nu, sizeof(int)), *d0 = xcalloc((size_t)ns + 1, sizeof(int));
    int *tw = xcalloc((size_t)nu, sizeof(int)), *td = xcalloc((size_t)ns + 1, sizeof(int));
    memcpy(w0, w, (size_t)nu * sizeof(int));
    if (ns > 0)
        memcpy(d0, d, (size_t)ns * sizeof(int));
    memset(r, 0, sizeof *r);
    assign_roles(&F);
    double bound[2]; /* fewest and most MACs of any network */
    for (int big = 0; big <= 1; big++) {
        for (int s = 0; s < ns; s++)
            td[s] = big ? f->depth_max[s] : 1;
        extreme(&F, w0, td, tw, !big, 0);
        bound[big] = net_macs(&F, tw, td);
        extreme(&F, w0, td, tw, !big, 1); /* the smallest / largest valid network */
        *(big ? &r->max_macs : &r->min_macs) = net_macs(&F, tw, td);
        consider(&F, tw, td);
    }
    mark_live(&F, d0);
    int rc = 0;
    if (in_band(&F, net_macs(&F, w0, d0))) {
        describe(&F, w0, d0, w0, d0, r); /* the start is kept as it is */
        goto out;
    }
    consider(&F, w0, d0);
    if (f->hi >= bound[0] && f->lo <= bound[1])
        r->combos = search(&F, w0);
    if (F.found) {
        memcpy(w, F.best_w, (size_t)nu * sizeof(int));
        memcpy(dd, F.best_d, (size_t)ns * sizeof(int));
        polish(&F, w, dd);
    } else {
        memcpy(w, F.near_w, (size_t)nu * sizeof(int));
        memcpy(dd, F.near_d, (size_t)ns * sizeof(int));
        rc = ERR_INVALID;
    }
    long combos = r->combos;
    double mn = r->min_macs, mx = r->max_macs;
    describe(&F, w, dd, w0, d0, r);
    r->combos = combos;
    r->min_macs = mn;
    r->max_macs = mx;
    assert(r->in_band == (rc == 0));
out:
    free(w0);
    free(d0);
    free(tw);
    free(td);
    fit_deinit(&F);
    return rc;
}
