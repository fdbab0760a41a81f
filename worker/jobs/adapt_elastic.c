/* adapt_elastic.c - DNA's elastic search space: width and depth grow and shrink (see adapt.h).
 *
 * The rules (ALGORITHMS.md 3.2(d), refined):
 *   - width expand when a unit's top group is almost surely kept (P_K >
 *     expand_p): expand_groups groups appended (fewer if the width cap
 *     max_width * nominal allows fewer, none if it allows none). The new
 *     filters are fresh and their BN is the usual gamma = 1, beta = 0; the
 *     input slices of every layer reading the unit are zero, so the network
 *     computes what it computed. The proposal's BN gamma = 0 on top of zero
 *     input slices would leave the new channels with exactly zero gradient
 *     for ever (gamma's gradient passes through the zero slices, the
 *     slices' gradient through the zero activations), so only one of the
 *     two is zeroed here;
 *   - width condense when even the first prunable group is usually dropped
 *     (P_1 < condense_p): the trailing groups with P_k < drop_p are deleted
 *     and the last condense_groups groups of the always-kept prefix become
 *     prunable (alpha = logit(0.9)), keeping c_min >= max(1, g);
 *   - depth expand when the last block of a stage with a keepable block is
 *     almost surely kept (q > expand_p): a copy of the stage's last block
 *     (its widths and width chains) with fresh weights and its last BN's
 *     gamma = 0, so the block starts as the identity; beta = 0; at most
 *     max_depth times the stage's existing depth. A stage of one block has
 *     no depth chain to read, so it never grows;
 *   - depth condense: the trailing blocks with q < drop_p are deleted (one
 *     block stays).
 * A condense that would leave the supernet below the target's band (the
 * elastic's min_mflops) is not made: the derivation must stay able to reach
 * the target.
 * Each holds at `patience` consecutive checks before it is applied. Every
 * change builds a new supernet from the edited config and copies the
 * weights, BN statistics and momentum by name, the overlapping part of
 * every tensor; alpha, beta and their momenta follow their groups and
 * blocks (new ones start at zero momentum).
 */
#include "common/log.h"
#include "common/xalloc.h"
#include "worker/jobs/adapt.h"
#include "worker/models/slice.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONDENSE_P 0.9 /* keep probability of the groups a condense makes prunable */

static const char *const KIND_NAMES[EL_KINDS] = {"width_expand", "width_condense", "depth_expand",
                                                 "depth_condense"};

const char *elastic_kind_name(elastic_kind k)
{
    return (unsigned)k < EL_KINDS ? KIND_NAMES[k] : "unknown";
}

static double logit(double p)
{
    return log(p / (1.0 - p));
}

static double supernet_mflops(const adapt_state *st)
{
    return modelcfg_macs(&st->as.sp.super) / 1e6;
}

/* ---- width -------------------------------------------------------------------- */

/* What happens to one unit's chain: `front` groups of the always-kept
 * prefix become prunable, the first `kept` old groups stay, `add` new
 * groups are appended. */
typedef struct wchange {
    int front, kept, add;
} wchange;

static int new_width(const prunespace_unit *x, const wchange *c)
{
    return x->c_min + (c->kept + c->add) * x->group;
}

/* Partner units must keep different widths (else a block's structure would
 * change): nudge a changed unit by one group until they differ. */
static int keep_apart(const prune_space *sp, wchange *wc)
{
    for (int pass = 0; pass < 4; pass++) {
        int clash = 0;
        for (int u = 0; u < sp->n_units; u++) {
            int p = sp->units[u].partner;
            if (p < 0 || new_width(&sp->units[u], &wc[u]) != new_width(&sp->units[p], &wc[p]))
                continue;
            clash = 1;
            int v = (wc[u].add > 0 || wc[u].kept < sp->units[u].K || wc[u].front > 0) ? u : p;
            wchange *c = &wc[v];
            if (c->add > 0 || c->kept == sp->units[v].K)
                c->add++;
            else
                c->kept++;
        }
        if (!clash)
            return 0;
    }
    return ERR_INVALID;
}

/* A new state with every unit's chain changed by wc (n_units of st). */
static adapt_state *width_rebuild(const adapt_state *st, wchange *wc, uint64_t seed, int max_batch,
                                  errbuf *eb)
{
    const prune_space *sp = &st->as.sp;
    int n = sp->n_units;
    if (keep_apart(sp, wc) != 0) {
        err_set(eb, ERR_INVALID, "a width change would merge two units");
        return NULL;
    }
    int *C = xcalloc((size_t)n, sizeof(int));
    for (int u = 0; u < n; u++)
        C[u] = new_width(&sp->units[u], &wc[u]);
    model_cfg cfg;
    prunespace_widths_to_cfg(sp, C, &cfg);
    adapt_space as;
    adapt_state *nst = NULL;
    if (adaptspace_init_super(&as, &cfg, eb) != 0)
        goto out;
    if (as.sp.n_units != n) {
        err_set(eb, ERR_INTERNAL, "width change: %d units, expected %d", as.sp.n_units, n);
        adaptspace_deinit(&as);
        goto out;
    }
    memcpy(as.depth0, st->as.depth0, sizeof as.depth0);
    for (int u = 0; u < n; u++) {
        const prunespace_unit *x = &sp->units[u];
        const wchange *c = &wc[u];
        prunespace_set_grid(&as.sp, u, x->c_min - c->front * x->group, x->group,
                            c->front + c->kept + c->add);
        as.nominal[u] = st->as.nominal[u];
    }
    nst = adapt_state_new(&as, max_batch, seed, eb);
    if (nst == NULL)
        goto out;
    nst->dc.fixed = st->dc.fixed;
    for (int u = 0; u < n; u++) {
        const wchange *c = &wc[u];
        size_t o = st->ch.a_off[u], t = nst->ch.a_off[u];
        for (int k = 0; k < c->front; k++)
            nst->ch.alpha[t + (size_t)k] = (float)logit(CONDENSE_P);
        for (int k = 0; k < c->kept; k++) {
            nst->ch.alpha[t + (size_t)(c->front + k)] = st->ch.alpha[o + (size_t)k];
            nst->ch.mom[t + (size_t)(c->front + k)] = st->ch.mom[o + (size_t)k];
        }
    }
    memcpy(nst->dc.beta, st->dc.beta, (size_t)st->dc.n * sizeof(float));
    memcpy(nst->dc.mom, st->dc.mom, (size_t)st->dc.n * sizeof(float));
    adapt_update(nst);
    net_copy_overlap(&nst->super, &st->super, NULL);
    for (int u = 0; u < n; u++)
        if (C[u] > sp->units[u].channels)
            adapt_hide_channels(nst, u, sp->units[u].channels);
out:
    free(C);
    return nst;
}

static void width_event(elastic_event *ev, elastic_kind k, const adapt_state *a,
                        const adapt_state *b, int u)
{
    if (ev == NULL)
        return;
    memset(ev, 0, sizeof *ev);
    ev->kind = k;
    snprintf(ev->what, sizeof ev->what, "%s", a->as.sp.units[u].name);
    const prunespace_unit *x = &a->as.sp.units[u], *y = &b->as.sp.units[u];
    int before[4] = {x->channels, x->c_min, x->group, x->K},
        after[4] = {y->channels, y->c_min, y->group, y->K};
    memcpy(ev->before, before, sizeof before);
    memcpy(ev->after, after, sizeof after);
    ev->mflops_before = supernet_mflops(a);
    ev->mflops_after = supernet_mflops(b);
}

static wchange *no_change(const prune_space *sp)
{
    wchange *wc = xcalloc((size_t)sp->n_units, sizeof *wc);
    for (int u = 0; u < sp->n_units; u++)
        wc[u].kept = sp->units[u].K;
    return wc;
}

adapt_state *elastic_width_expand(const adapt_state *st, int u, int groups, uint64_t seed,
                                  int max_batch, elastic_event *ev, errbuf *eb)
{
    wchange *wc = no_change(&st->as.sp);
    wc[u].add = groups;
    adapt_state *n = width_rebuild(st, wc, seed, max_batch, eb);
    if (n != NULL)
        width_event(ev, EL_WIDTH_EXPAND, st, n, u);
    free(wc);
    return n;
}

/* The condense of unit u: trailing groups below drop_p go, up to `groups`
 * prefix groups become prunable. Returns 0 when nothing would change. */
static int plan_condense(const adapt_state *st, int u, double drop_p, int groups, wchange *c)
{
    const prunespace_unit *x = &st->as.sp.units[u];
    int kept = 0;
    while (kept < x->K && st->ch.P[st->ch.a_off[u] + (size_t)kept] >= drop_p)
        kept++;
    int floor_ = x->group > 1 ? x->group : 1, front = 0;
    while (front < groups && x->c_min - (front + 1) * x->group >= floor_)
        front++;
    c->front = front;
    c->kept = kept;
    c->add = 0;
    return front > 0 || kept < x->K;
}

adapt_state *elastic_width_condense(const adapt_state *st, int u, double drop_p, int groups,
                                    uint64_t seed, int max_batch, elastic_event *ev, errbuf *eb)
{
    wchange *wc = no_change(&st->as.sp);
    adapt_state *n = NULL;
    if (!plan_condense(st, u, drop_p, groups, &wc[u]))
        err_set(eb, ERR_INVALID, "unit %s: nothing to condense", st->as.sp.units[u].name);
    else if ((n = width_rebuild(st, wc, seed, max_batch, eb)) != NULL)
        width_event(ev, EL_WIDTH_CONDENSE, st, n, u);
    free(wc);
    return n;
}

/* ---- depth ------------------------------------------------------------------------ */

/* The inner unit (ResNet mid, MobileNetV2 hidden) of flat block b; with
 * `second`, a Bottleneck's conv2 unit (the mid unit for other blocks). */
static int inner_unit(const adapt_space *as, int b, int second)
{
    const prune_space *sp = &as->sp;
    if (modelcfg_is_mb(sp->super.arch))
        return sp->hid_unit[b];
    int s = adaptspace_stage_of(as, b);
    int k = s * MC_MAX_STAGE_BLOCKS + (b - as->first[s]);
    return second && sp->mid2_unit != NULL ? sp->mid2_unit[k] : sp->mid_unit[k];
}

/* The unit whose channels a block's inner unit copies, for a unit of the
 * new space with no counterpart (an appended block's inner width). */
static int template_unit(const adapt_space *old, const adapt_space *nw, const char *unit)
{
    char prefix[PRUNESPACE_NAME_MAX];
    snprintf(prefix, sizeof prefix, "%s", unit);
    char *dot = strrchr(prefix, '.');
    if (dot == NULL)
        return -1;
    *dot = '\0';
    int b = adaptspace_block_of(nw, prefix);
    if (b < 0)
        return -1;
    int s = adaptspace_stage_of(nw, b);
    return inner_unit(old, old->first[s] + old->depth[s] - 1, strcmp(dot + 1, "conv2") == 0);
}

/* The supernet config of os with stage s's depth changed by delta[s] (+ appends copies
 * of the stage's last block, - removes trailing blocks). 0, or ERR_INVALID. */
static int changed_depths(const adapt_space *os, const int *delta, model_cfg *cfg, errbuf *eb)
{
    *cfg = os->sp.super;
    for (int s = os->n_stages - 1; s >= 0; s--) {
        if (delta[s] < 0) {
            adaptspace_cfg_remove_blocks(cfg, s, -delta[s]);
            continue;
        }
        for (int k = 0; k < delta[s]; k++) {
            int last = os->first[s] + os->depth[s] - 1, iu = inner_unit(os, last, 0);
            int inner = os->sp.units[iu].channels;
            if (modelcfg_is_mb(cfg->arch)) {
                /* the copy expands as its template does: not at all when the
                 * template's depthwise conv runs on its input's channels */
                int in_u = last == 0 ? os->sp.stem_unit : os->sp.out_unit[last - 1];
                int out = os->sp.units[os->sp.out_unit[last]].channels;
                if (iu == in_u)
                    inner = out;
                else if (inner == out)
                    inner += os->sp.units[iu].group;
            }
            if (adaptspace_cfg_append_block(cfg, s, inner) < 0)
                return err_set(eb, ERR_INVALID, "stage %d: no room for another block", s);
        }
    }
    return 0;
}

/* For every unit of the new space as, from[u]: its unit in the old space os (>= 0),
 * -2 - t for a new unit that copies template unit t (an appended block's), or -1.
 * Sets each unit's width grid and nominal width as its counterpart's (malloc'd). */
static int *map_units(adapt_space *as, const adapt_space *os, const adaptspace_blockmap *map)
{
    int *from = xcalloc((size_t)as->sp.n_units, sizeof(int));
    char name[PRUNESPACE_NAME_MAX];
    for (int u = 0; u < as->sp.n_units; u++) {
        const prunespace_unit *x = &as->sp.units[u];
        int ou = adaptspace_map_name(map, x->name, name, sizeof name)
                     ? prunespace_unit_find(&os->sp, name)
                     : -1;
        int tu = ou >= 0 ? ou : template_unit(os, as, x->name);
        from[u] = ou;
        if (tu < 0) {
            as->nominal[u] = x->channels;
            continue;
        }
        const prunespace_unit *t = &os->sp.units[tu];
        int g = t->group, lo = t->c_min < x->channels ? t->c_min : 1;
        if ((x->channels - lo) % g != 0)
            g = 1;
        prunespace_set_grid(&as->sp, u, lo, g, (x->channels - lo) / g);
        as->nominal[u] = os->nominal[tu];
        if (ou < 0)
            from[u] = -2 - tu; /* chains copied from the template, momentum fresh */
    }
    return from;
}

/* The architecture logits of nst from st's: each unit's width chain from its
 * counterpart (momentum only from a unit of its own, see map_units), each kept
 * block's depth logit and momentum. */
static void copy_chains(adapt_state *nst, const adapt_state *st, const int *from,
                        const adaptspace_blockmap *map)
{
    for (int u = 0; u < nst->as.sp.n_units; u++) {
        int ou = from[u] >= 0 ? from[u] : from[u] <= -2 ? -2 - from[u] : -1;
        if (ou < 0)
            continue;
        int K = nst->as.sp.units[u].K < st->as.sp.units[ou].K ? nst->as.sp.units[u].K
                                                              : st->as.sp.units[ou].K;
        for (int k = 0; k < K; k++) {
            nst->ch.alpha[nst->ch.a_off[u] + (size_t)k] =
                st->ch.alpha[st->ch.a_off[ou] + (size_t)k];
            if (from[u] >= 0)
                nst->ch.mom[nst->ch.a_off[u] + (size_t)k] =
                    st->ch.mom[st->ch.a_off[ou] + (size_t)k];
        }
    }
    for (int b = 0; b < nst->dc.n; b++)
        if (map->to[b] >= 0) {
            nst->dc.beta[b] = st->dc.beta[map->to[b]];
            nst->dc.mom[b] = st->dc.mom[map->to[b]];
        }
}

/* Appended blocks start as the identity: their last BN's gamma is 0. 0, or
 * ERR_INTERNAL when a block has no such BN. */
static int zero_appended(adapt_state *nst, const adaptspace_blockmap *map, errbuf *eb)
{
    const model_cfg *cfg = &nst->as.sp.super;
    for (int b = 0; b < nst->dc.n; b++) {
        if (map->to[b] >= 0)
            continue;
        char pre[PRUNESPACE_NAME_MAX], bn[PRUNESPACE_NAME_MAX + 8];
        int s = adaptspace_stage_of(&nst->as, b), t;
        if (modelcfg_is_resnet(cfg->arch))
            snprintf(pre, sizeof pre, "layer%d.%d.%s", s + 1, b - nst->as.first[s],
                     cfg->arch == MC_RESNET && cfg->block == MC_BLOCK_BOTTLENECK ? "bn3" : "bn2");
        else
            modelcfg_mb_project_bn(cfg, b, pre, sizeof pre);
        snprintf(bn, sizeof bn, "%s.weight", pre);
        if ((t = net_tensor_find(&nst->super, bn)) < 0)
            return err_set(eb, ERR_INTERNAL, "appended block %d has no last BN %s", b, bn);
        memset(net_tensor_data(&nst->super, t), 0, nst->super.tensors[t].n * sizeof(float));
    }
    return 0;
}

/* A new state with stage s's depth changed by delta (+ appends blocks, -
 * removes trailing ones), for every stage (n_stages of st). */
static adapt_state *depth_rebuild(const adapt_state *st, const int *delta, uint64_t seed,
                                  int max_batch, errbuf *eb)
{
    const adapt_space *os = &st->as;
    model_cfg cfg;
    adapt_space as;
    if (changed_depths(os, delta, &cfg, eb) != 0 || adaptspace_init_super(&as, &cfg, eb) != 0)
        return NULL;
    memcpy(as.depth0, os->depth0, sizeof as.depth0);
    /* blocks of the new net -> the old one */
    adaptspace_blockmap map;
    memset(&map, 0, sizeof map);
    map.arch = cfg.arch;
    map.n_from = as.n_blocks;
    map.n_to = os->n_blocks;
    for (int s = 0; s < as.n_stages; s++)
        for (int j = 0; j < as.depth[s]; j++)
            map.to[as.first[s] + j] = j < os->depth[s] ? os->first[s] + j : -1;
    int *from = map_units(&as, os, &map);
    adapt_state *nst = adapt_state_new(&as, max_batch, seed, eb);
    if (nst == NULL) {
        free(from);
        adaptspace_deinit(&as);
        return NULL;
    }
    nst->dc.fixed = st->dc.fixed;
    copy_chains(nst, st, from, &map);
    free(from);
    adapt_update(nst);
    slice_map sm = {adaptspace_map_name, &map};
    net_copy_overlap(&nst->super, &st->super, &sm);
    if (zero_appended(nst, &map, eb) != 0) {
        adapt_state_free(nst);
        return NULL;
    }
    return nst;
}

static void depth_event(elastic_event *ev, elastic_kind k, const adapt_state *a,
                        const adapt_state *b, int s)
{
    if (ev == NULL)
        return;
    memset(ev, 0, sizeof *ev);
    ev->kind = k;
    snprintf(ev->what, sizeof ev->what, "stage%d", s + 1);
    ev->before[0] = a->as.depth[s];
    ev->after[0] = b->as.depth[s];
    ev->mflops_before = supernet_mflops(a);
    ev->mflops_after = supernet_mflops(b);
}

adapt_state *elastic_depth_expand(const adapt_state *st, int s, uint64_t seed, int max_batch,
                                  elastic_event *ev, errbuf *eb)
{
    int delta[ADAPTSPACE_MAX_STAGES] = {0};
    delta[s] = 1;
    adapt_state *n = depth_rebuild(st, delta, seed, max_batch, eb);
    if (n != NULL)
        depth_event(ev, EL_DEPTH_EXPAND, st, n, s);
    return n;
}

/* Trailing blocks of stage s with q < drop_p (the first block stays). */
static int droppable(const adapt_state *st, int s, double drop_p)
{
    const adapt_space *as = &st->as;
    int k = 0;
    while (k < as->depth[s] - 1 && st->dc.q[as->first[s] + as->depth[s] - 1 - k] < drop_p)
        k++;
    return k;
}

adapt_state *elastic_depth_condense(const adapt_state *st, int s, double drop_p, uint64_t seed,
                                    int max_batch, elastic_event *ev, errbuf *eb)
{
    int delta[ADAPTSPACE_MAX_STAGES] = {0};
    delta[s] = -droppable(st, s, drop_p);
    if (delta[s] == 0) {
        err_set(eb, ERR_INVALID, "stage %d: no block to drop", s + 1);
        return NULL;
    }
    adapt_state *n = depth_rebuild(st, delta, seed, max_batch, eb);
    if (n != NULL)
        depth_event(ev, EL_DEPTH_CONDENSE, st, n, s);
    return n;
}

/* ---- the rules ----------------------------------------------------------------------- */

void elastic_init(elastic *e, const adapt_elastic *cfg, uint64_t seed, int n_units)
{
    memset(e, 0, sizeof *e);
    e->cfg = *cfg;
    e->seed = seed;
    e->n_units = n_units;
    e->w_up = xcalloc((size_t)(n_units ? n_units : 1), sizeof(int));
    e->w_down = xcalloc((size_t)(n_units ? n_units : 1), sizeof(int));
}

void elastic_deinit(elastic *e)
{
    free(e->w_up);
    free(e->w_down);
    free(e->ev);
    memset(e, 0, sizeof *e);
}

void elastic_resize(elastic *e, int n_units)
{
    free(e->w_up);
    free(e->w_down);
    e->n_units = n_units;
    e->w_up = xcalloc((size_t)(n_units ? n_units : 1), sizeof(int));
    e->w_down = xcalloc((size_t)(n_units ? n_units : 1), sizeof(int));
    memset(e->d_up, 0, sizeof e->d_up);
    memset(e->d_down, 0, sizeof e->d_down);
}

static void log_event(elastic *e, const elastic_event *ev, long step)
{
    if (e->n_ev == e->cap_ev) {
        e->cap_ev = e->cap_ev ? 2 * e->cap_ev : 16;
        e->ev = xrealloc(e->ev, (size_t)e->cap_ev * sizeof *e->ev);
    }
    e->ev[e->n_ev] = *ev;
    e->ev[e->n_ev].step = step;
    e->n_ev++;
    e->counts[ev->kind]++;
}

/* Groups unit u may still grow by (the cap max_width * nominal). */
static int room(const elastic *e, const adapt_space *as, int u)
{
    const prunespace_unit *x = &as->sp.units[u];
    int k = e->cfg.expand_groups;
    while (k > 0 && x->channels + k * x->group > e->cfg.max_width * as->nominal[u])
        k--;
    return k;
}

/* Counts the width conditions; fills wc with the changes due now. Returns
 * how many units change. */
static int width_due(elastic *e, const adapt_state *st, wchange *wc)
{
    const adapt_space *as = &st->as;
    int due = 0;
    for (int u = 0; u < as->sp.n_units; u++) {
        const prunespace_unit *x = &as->sp.units[u];
        wc[u] = (wchange){0, x->K, 0};
        if (x->K == 0)
            continue;
        const double *P = st->ch.P + st->ch.a_off[u];
        int up = P[x->K - 1] > e->cfg.expand_p && room(e, as, u) > 0;
        int down = P[0] < e->cfg.condense_p;
        e->w_up[u] = up ? e->w_up[u] + 1 : 0;
        e->w_down[u] = down ? e->w_down[u] + 1 : 0;
        if (e->w_up[u] >= e->cfg.patience) {
            wc[u].add = room(e, as, u);
            due++;
        } else if (e->w_down[u] >= e->cfg.patience &&
                   plan_condense(st, u, e->cfg.drop_p, e->cfg.condense_groups, &wc[u])) {
            due++;
        }
    }
    return due;
}

/* Counts the depth conditions; fills delta. Returns how many stages change. */
static int depth_due(elastic *e, const adapt_state *st, int *delta)
{
    const adapt_space *as = &st->as;
    int due = 0;
    for (int s = 0; s < as->n_stages; s++) {
        delta[s] = 0;
        if (st->dc.fixed) /* width-only: depths are not searched */
            continue;
        int n = as->depth[s];
        double q_last = st->dc.q[as->first[s] + n - 1];
        int cap = (int)floor(e->cfg.max_depth * as->depth0[s]);
        int up = n >= 2 && q_last > e->cfg.expand_p && n < cap;
        int k = droppable(st, s, e->cfg.drop_p);
        e->d_up[s] = up ? e->d_up[s] + 1 : 0;
        e->d_down[s] = k > 0 ? e->d_down[s] + 1 : 0;
        if (e->d_up[s] >= e->cfg.patience)
            delta[s] = 1;
        else if (e->d_down[s] >= e->cfg.patience)
            delta[s] = -k;
        due += delta[s] != 0;
    }
    return due;
}

/* Whether the supernet of n is below e's floor (a condense that would put
 * the target's band out of reach). */
static int below_floor(const elastic *e, const adapt_state *n)
{
    return e->min_mflops > 0 && supernet_mflops(n) < e->min_mflops;
}

/* The seed of the fresh weights of the next event. */
static uint64_t event_seed(const elastic *e)
{
    return e->seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(e->n_ev + 1);
}

int elastic_check(elastic *e, adapt_state **stp, long step, int max_batch, errbuf *eb)
{
    adapt_state *st = *stp;
    int nu = st->as.sp.n_units;
    if (e->n_units != nu)
        elastic_resize(e, nu);
    wchange *wc = xcalloc((size_t)(nu ? nu : 1), sizeof *wc);
    int delta[ADAPTSPACE_MAX_STAGES] = {0};
    int nw = width_due(e, st, wc), nd = depth_due(e, st, delta), n_events = 0, rc = 0;
    /* one change at a time, each its own new supernet, so that every
     * event's FLOPs are its own; unit and stage indices do not move under
     * width changes, and stage indices not under depth changes */
    for (int u = 0; nw > 0 && u < nu; u++) {
        const prunespace_unit *x = &st->as.sp.units[u];
        if (wc[u].add == 0 && wc[u].front == 0 && wc[u].kept == x->K)
            continue;
        wchange *one = no_change(&st->as.sp);
        one[u] = wc[u];
        adapt_state *n = width_rebuild(st, one, event_seed(e), max_batch, eb);
        free(one);
        if (n == NULL) {
            rc = err_prefix(eb, ERR_INTERNAL, "elastic change at step %ld", step);
            break;
        }
        if (wc[u].add == 0 && below_floor(e, n)) {
            adapt_state_free(n); /* the condense is not made; its count starts again */
            e->w_down[u] = 0;
            continue;
        }
        elastic_event ev;
        width_event(&ev, wc[u].add > 0 ? EL_WIDTH_EXPAND : EL_WIDTH_CONDENSE, st, n, u);
        log_event(e, &ev, step);
        n_events++;
        adapt_state_free(st);
        st = n;
    }
    for (int s = 0; rc == 0 && nd > 0 && s < st->as.n_stages; s++) {
        if (delta[s] == 0)
            continue;
        int one[ADAPTSPACE_MAX_STAGES] = {0};
        one[s] = delta[s];
        adapt_state *n = depth_rebuild(st, one, event_seed(e), max_batch, eb);
        if (n == NULL) {
            rc = err_prefix(eb, ERR_INTERNAL, "elastic change at step %ld", step);
            break;
        }
        if (delta[s] < 0 && below_floor(e, n)) {
            adapt_state_free(n);
            e->d_down[s] = 0;
            continue;
        }
        elastic_event ev;
        depth_event(&ev, delta[s] > 0 ? EL_DEPTH_EXPAND : EL_DEPTH_CONDENSE, st, n, s);
        log_event(e, &ev, step);
        n_events++;
        adapt_state_free(st);
        st = n;
    }
    free(wc);
    if (n_events > 0)
        elastic_resize(e, st->as.sp.n_units);
    *stp = st;
    return rc != 0 ? rc : n_events;
}

/* ---- the log ---------------------------------------------------------------------------- */

void elastic_events_restore(elastic *e, const json_t *a)
{
    e->n_ev = 0;
    memset(e->counts, 0, sizeof e->counts);
    size_t i;
    const json_t *j;
    json_array_foreach(a, i, j)
    {
        elastic_event ev;
        memset(&ev, 0, sizeof ev);
        const char *kind = json_string_value(json_object_get(j, "kind"));
        const char *what = json_string_value(json_object_get(j, "what"));
        int k = 0;
        while (k < EL_KINDS && (kind == NULL || strcmp(kind, KIND_NAMES[k]) != 0))
            k++;
        if (k == EL_KINDS || what == NULL)
            continue;
        ev.kind = (elastic_kind)k;
        snprintf(ev.what, sizeof ev.what, "%s", what);
        ev.mflops_before = json_number_value(json_object_get(j, "supernet_mflops_before"));
        ev.mflops_after = json_number_value(json_object_get(j, "supernet_mflops_after"));
        const char *keys[4] = {"channels", "c_min", "group", "groups"};
        const json_t *b = json_object_get(j, "before"), *f = json_object_get(j, "after");
        if (k >= EL_DEPTH_EXPAND) {
            ev.before[0] = (int)json_integer_value(json_object_get(b, "blocks"));
            ev.after[0] = (int)json_integer_value(json_object_get(f, "blocks"));
        } else {
            for (int x = 0; x < 4; x++) {
                ev.before[x] = (int)json_integer_value(json_object_get(b, keys[x]));
                ev.after[x] = (int)json_integer_value(json_object_get(f, keys[x]));
            }
        }
        log_event(e, &ev, (long)json_integer_value(json_object_get(j, "step")));
    }
}

void elastic_event_text(const elastic_event *ev, long steps_per_epoch, char *buf, size_t len)
{
    double epoch = (double)ev->step / (double)steps_per_epoch;
    if (ev->kind == EL_WIDTH_EXPAND || ev->kind == EL_WIDTH_CONDENSE)
        snprintf(buf, len,
                 "elastic: epoch %.2f (step %ld) %s %s: %d -> %d channels (window %d..%d, group "
                 "%d: %d -> %d groups); supernet %.3f -> %.3f MFLOPs",
                 epoch, ev->step, elastic_kind_name(ev->kind), ev->what, ev->before[0],
                 ev->after[0], ev->after[1], ev->after[0], ev->after[2], ev->before[3],
                 ev->after[3], ev->mflops_before, ev->mflops_after);
    else
        snprintf(buf, len,
                 "elastic: epoch %.2f (step %ld) %s %s: %d -> %d blocks; supernet %.3f -> %.3f "
                 "MFLOPs",
                 epoch, ev->step, elastic_kind_name(ev->kind), ev->what, ev->before[0],
                 ev->after[0], ev->mflops_before, ev->mflops_after);
}

json_t *elastic_events_json(const elastic *e, long steps_per_epoch)
{
    json_t *a = json_array();
    for (int i = 0; i < e->n_ev; i++) {
        const elastic_event *ev = &e->ev[i];
        json_t *j =
            json_pack("{s:s, s:I, s:f, s:s, s:f, s:f}", "kind", elastic_kind_name(ev->kind), "step",
                      (json_int_t)ev->step, "epoch", (double)ev->step / (double)steps_per_epoch,
                      "what", ev->what, "supernet_mflops_before", ev->mflops_before,
                      "supernet_mflops_after", ev->mflops_after);
        if (ev->kind == EL_WIDTH_EXPAND || ev->kind == EL_WIDTH_CONDENSE) {
            json_object_set_new(j, "before",
                                json_pack("{s:i, s:i, s:i, s:i}", "channels", ev->before[0],
                                          "c_min", ev->before[1], "group", ev->before[2], "groups",
                                          ev->before[3]));
            json_object_set_new(j, "after",
                                json_pack("{s:i, s:i, s:i, s:i}", "channels", ev->after[0], "c_min",
                                          ev->after[1], "group", ev->after[2], "groups",
                                          ev->after[3]));
        } else {
            json_object_set_new(j, "before", json_pack("{s:i}", "blocks", ev->before[0]));
            json_object_set_new(j, "after", json_pack("{s:i}", "blocks", ev->after[0]));
        }
        json_array_append_new(a, j);
    }
    return a;
}
