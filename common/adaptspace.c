/* adaptspace.c - the DNA search space of a CNN (see adaptspace.h).
 *
 * The units, layers and block numbers come from prunespace.c, built on the
 * window supernet; this file adds the windows, the stages and the depth
 * arithmetic. Owns the nominal-width array and the prune_space; pure C,
 * thread-safe once built.
 */
#include "common/adaptspace.h"

#include "common/xalloc.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- windows ------------------------------------------------------------------- */

/* v rounded to the nearest multiple of g. */
static int round_to(double v, int g)
{
    return (int)lround(v / g) * g;
}

void adaptspace_window_grid(const adaptspace_window *w, int c, int *c_min, int *g, int *K)
{
    int gg = (int)lround(w->group * c);
    if (gg < 1)
        gg = 1;
    int lo = round_to(w->min * c, gg);
    if (lo < gg)
        lo = gg;
    int hi = round_to(w->max * c, gg);
    if (hi < lo + gg)
        hi = lo + gg;
    *c_min = lo;
    *g = gg;
    *K = (hi - lo) / gg;
}

/* ---- stages ---------------------------------------------------------------------- */

int adaptspace_stages(const model_cfg *c, int *first, int *depth)
{
    int n = 0;
    if (modelcfg_is_resnet(c->arch)) {
        int b = 0;
        for (int i = 0; i < c->n_stages; i++) {
            first[n] = b;
            depth[n++] = c->stages[i].n_blocks;
            b += c->stages[i].n_blocks;
        }
        return n;
    }
    int cin = c->mb_stem;
    for (int i = 0; i < c->n_blocks; i++) {
        const mc_mbblock *b = &c->blocks[i];
        int residual = b->stride == 1 && cin == b->out;
        /* EfficientNet has its own stages (whose later blocks are residual) */
        int new_stage =
            c->arch == MC_EFFICIENTNET ? i == 0 || b->stage != c->blocks[i - 1].stage : !residual;
        if (new_stage || n == 0) {
            first[n] = i;
            depth[n++] = 1;
        } else {
            depth[n - 1]++;
        }
        cin = b->out;
    }
    return n;
}

static void fill_stages(adapt_space *a)
{
    a->n_stages = adaptspace_stages(&a->sp.super, a->first, a->depth);
    a->n_blocks = 0;
    for (int s = 0; s < a->n_stages; s++)
        a->n_blocks += a->depth[s];
}

int adaptspace_stage_of(const adapt_space *a, int b)
{
    for (int s = a->n_stages - 1; s >= 0; s--)
        if (b >= a->first[s])
            return s;
    return -1;
}

int adaptspace_keepable(const adapt_space *a, int b)
{
    int s = adaptspace_stage_of(a, b);
    return s >= 0 && b > a->first[s];
}

int adaptspace_block_of(const adapt_space *a, const char *prefix)
{
    int s, j, f, n;
    const model_cfg *c = &a->sp.super;
    if (modelcfg_is_resnet(c->arch)) {
        if (sscanf(prefix, "layer%d.%d%n", &s, &j, &n) != 2 || prefix[n] != '\0')
            return -1;
        if (s < 1 || s > a->n_stages || j < 0 || j >= a->depth[s - 1])
            return -1;
        return a->first[s - 1] + j;
    }
    if (c->arch == MC_EFFICIENTNET) {
        char name[32];
        for (int i = 0; i < c->n_blocks; i++) {
            modelcfg_mb_block_name(c, i, name, sizeof name);
            if (strcmp(name, prefix) == 0)
                return i;
        }
        return -1;
    }
    if (sscanf(prefix, "features.%d%n", &f, &n) != 1 || prefix[n] != '\0')
        return -1;
    return f >= 1 && f <= c->n_blocks ? f - 1 : -1;
}

/* ---- building ---------------------------------------------------------------------- */

int adaptspace_init_super(adapt_space *a, const model_cfg *super, errbuf *eb)
{
    memset(a, 0, sizeof *a);
    const prunespace_width dmcp = {0.1, 1.0, 0.1};
    int rc = prune_space_init(&a->sp, super, &dmcp, eb);
    if (rc != 0)
        return err_prefix(eb, rc, "network adaption");
    fill_stages(a);
    memcpy(a->depth0, a->depth, sizeof a->depth);
    a->nominal = xcalloc((size_t)a->sp.n_units, sizeof(int));
    for (int u = 0; u < a->sp.n_units; u++)
        a->nominal[u] = a->sp.units[u].channels;
    return 0;
}

int adaptspace_init(adapt_space *a, const model_cfg *orig, const adaptspace_window *w, errbuf *eb)
{
    adapt_space o;
    int rc = adaptspace_init_super(&o, orig, eb);
    if (rc != 0) {
        memset(a, 0, sizeof *a);
        return rc;
    }
    int n = o.sp.n_units;
    int *C = xcalloc((size_t)n, sizeof(int)), *lo = xcalloc((size_t)n, sizeof(int));
    int *g = xcalloc((size_t)n, sizeof(int)), *K = xcalloc((size_t)n, sizeof(int));
    for (int u = 0; u < n; u++) {
        adaptspace_window_grid(w, o.sp.units[u].channels, &lo[u], &g[u], &K[u]);
        C[u] = lo[u] + K[u] * g[u];
        /* partners must stay apart, or the block structure would change */
        int p = o.sp.units[u].partner;
        if (p >= 0 && C[u] == C[p]) {
            K[u]++;
            C[u] += g[u];
        }
    }
    model_cfg super;
    prunespace_widths_to_cfg(&o.sp, C, &super);
    rc = adaptspace_init_super(a, &super, eb);
    if (rc == 0 && a->sp.n_units != n)
        rc = err_set(eb, ERR_INTERNAL, "the window supernet has %d units, the network %d",
                     a->sp.n_units, n);
    for (int u = 0; rc == 0 && u < n; u++) {
        if (strcmp(a->sp.units[u].name, o.sp.units[u].name) != 0 ||
            a->sp.units[u].channels != C[u]) {
            rc = err_set(eb, ERR_INTERNAL, "window unit %d (%s) does not match %s", u,
                         a->sp.units[u].name, o.sp.units[u].name);
            break;
        }
        prunespace_set_grid(&a->sp, u, lo[u], g[u], K[u]);
        a->nominal[u] = o.sp.units[u].channels;
    }
    free(C);
    free(lo);
    free(g);
    free(K);
    adaptspace_deinit(&o);
    return rc;
}

void adaptspace_deinit(adapt_space *a)
{
    prune_space_deinit(&a->sp);
    free(a->nominal);
    memset(a, 0, sizeof *a);
}

/* ---- configs and MACs -------------------------------------------------------------- */

void adaptspace_cfg(const adapt_space *a, const int *w, const int *d, model_cfg *out)
{
    prunespace_widths_to_cfg(&a->sp, w, out);
    if (d == NULL)
        return;
    if (modelcfg_is_resnet(out->arch)) {
        for (int s = 0; s < out->n_stages; s++)
            out->stages[s].n_blocks = d[s];
        return;
    }
    mc_mbblock kept[MC_MAX_MB_BLOCKS] = {0};
    int n = 0;
    for (int s = 0; s < a->n_stages; s++)
        for (int j = 0; j < d[s]; j++)
            kept[n++] = out->blocks[a->first[s] + j];
    memcpy(out->blocks, kept, (size_t)n * sizeof kept[0]);
    out->n_blocks = n;
}

double adaptspace_macs(const adapt_space *a, const int *w, const int *d)
{
    /* integer widths, SE ties rounded as the built net has them (prunespace_layer_macs) */
    char *kept = xcalloc((size_t)(a->n_blocks ? a->n_blocks : 1), 1);
    for (int s = 0; s < a->n_stages; s++)
        for (int j = 0; j < a->depth[s]; j++)
            kept[a->first[s] + j] = d == NULL || j < d[s];
    double macs = 0;
    for (int l = 0; l < a->sp.n_layers; l++) {
        int b = a->sp.layers[l].blk;
        if (b < 0 || kept[b])
            macs += prunespace_layer_macs(&a->sp, l, w);
    }
    free(kept);
    return macs;
}

void adaptspace_min_widths(const adapt_space *a, int *w)
{
    prunespace_min_widths(&a->sp, w);
}

void adaptspace_full_widths(const adapt_space *a, int *w)
{
    prunespace_full_widths(&a->sp, w);
}

/* ---- config edits -------------------------------------------------------------------- */

int adaptspace_cfg_append_block(model_cfg *c, int s, int inner)
{
    int first[ADAPTSPACE_MAX_STAGES], depth[ADAPTSPACE_MAX_STAGES];
    int n = adaptspace_stages(c, first, depth);
    assert(s >= 0 && s < n);
    (void)n;
    if (modelcfg_is_resnet(c->arch)) {
        mc_stage *st = &c->stages[s];
        if (st->n_blocks >= MC_MAX_STAGE_BLOCKS)
            return ERR_INVALID;
        st->mids2[st->n_blocks] = st->mids2[st->n_blocks - 1]; /* Bottleneck: as the last */
        st->mids[st->n_blocks++] = inner;
        return first[s] + depth[s] - 1 + 1;
    }
    if (c->n_blocks >= MC_MAX_MB_BLOCKS)
        return ERR_INVALID;
    int last = first[s] + depth[s] - 1, at = last + 1;
    memmove(&c->blocks[at + 1], &c->blocks[at], (size_t)(c->n_blocks - at) * sizeof c->blocks[0]);
    c->n_blocks++;
    /* a copy of the stage's last block (kernel, SE, act, stage), residual */
    mc_mbblock *t = &c->blocks[last], *b = &c->blocks[at];
    *b = *t;
    b->hidden = inner;
    b->stride = 1;
    b->se = modelcfg_se_width(t->se, t->hidden, inner);
    return at;
}

void adaptspace_cfg_remove_blocks(model_cfg *c, int s, int count)
{
    int first[ADAPTSPACE_MAX_STAGES], depth[ADAPTSPACE_MAX_STAGES];
    int n = adaptspace_stages(c, first, depth);
    assert(s >= 0 && s < n && count >= 0 && count < depth[s]);
    (void)n;
    if (modelcfg_is_resnet(c->arch)) {
        c->stages[s].n_blocks -= count;
        return;
    }
    int at = first[s] + depth[s] - count;
    memmove(&c->blocks[at], &c->blocks[at + count],
            (size_t)(c->n_blocks - at - count) * sizeof c->blocks[0]);
    c->n_blocks -= count;
}

/* ---- names ------------------------------------------------------------------------------- */

void adaptspace_blockmap_identity(adaptspace_blockmap *m, mc_arch arch, int n)
{
    memset(m, 0, sizeof *m);
    m->arch = arch;
    m->n_from = m->n_to = n;
    for (int i = 0; i < n; i++)
        m->to[i] = i;
}

void adaptspace_blockmap_subnet(adaptspace_blockmap *m, const adapt_space *a, const int *d)
{
    memset(m, 0, sizeof *m);
    m->arch = a->sp.super.arch;
    m->n_to = a->n_blocks;
    int i = 0;
    for (int s = 0; s < a->n_stages; s++)
        for (int j = 0; j < d[s]; j++)
            m->to[i++] = a->first[s] + j;
    m->n_from = i;
}

int adaptspace_map_name(const void *ctx, const char *name, char *out, size_t len)
{
    const adaptspace_blockmap *m = ctx;
    int f, n;
    /* MobileNetV2 and V3 number their blocks in one sequence; EfficientNet's
     * names (features.{stage}.{j}) and ResNet's are the same in both nets */
    int sequential = m->arch == MC_MOBILENETV2 || m->arch == MC_MOBILENETV3;
    if (sequential && sscanf(name, "features.%d%n", &f, &n) == 1 &&
        (name[n] == '\0' || name[n] == '.')) {
        int g;
        if (f == 0)
            g = 0;
        else if (f <= m->n_from)
            g = m->to[f - 1] < 0 ? -1 : m->to[f - 1] + 1;
        else if (f == m->n_from + 1)
            g = m->n_to + 1;
        else
            g = -1;
        if (g < 0)
            return 0;
        int k = snprintf(out, len, "features.%d%s", g, name + n);
        return k > 0 && (size_t)k < len;
    }
    size_t k = strlen(name);
    if (k >= len)
        return 0;
    memcpy(out, name, k + 1);
    return 1;
}
