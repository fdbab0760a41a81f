/* prunespace.c - the DMCP search space of a CNN (see prunespace.h).
 *
 * The unit, layer and site tables are derived from the model config by the
 * same structural rules as worker/models/resnet.c and mobilenet.c (and
 * modelcfg.c's MAC count), so names and sizes line up with the built nets;
 * tests check prunespace_macs against modelcfg_macs and the net's own count.
 * Owns the arrays it allocates; pure C, thread-safe once built.
 */
#include "common/prunespace.h"

#include "common/xalloc.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output side of a square conv: floor((h + 2p - k)/s) + 1. */
static int conv_out(int h, int k, int s, int p)
{
    return (h + 2 * p - k) / s + 1;
}

/* ---- building ------------------------------------------------------------ */

typedef struct builder {
    prune_space *s;
    int cap_units, cap_layers, cap_sites;
} builder;

static int add_unit(builder *b, const char *name, int C, int partner)
{
    prune_space *s = b->s;
    if (s->n_units == b->cap_units) {
        b->cap_units = b->cap_units ? 2 * b->cap_units : 32;
        s->units = xrealloc(s->units, (size_t)b->cap_units * sizeof *s->units);
    }
    prunespace_unit *u = &s->units[s->n_units];
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    u->channels = C;
    u->partner = partner;
    /* DMCP's grid (alpha_op.py), kept valid for very narrow units */
    const prunespace_width *w = &s->width;
    int g = (int)floor(w->offset * C / w->max);
    int K = (int)floor((w->max - w->min) / w->offset + 1e-4);
    if (g < 1)
        g = 1;
    if (K * g > C - 1)
        K = (C - 1) / g;
    u->group = g;
    u->K = K;
    u->c_min = C - K * g;
    return s->n_units++;
}

static void add_layer(builder *b, const char *name, int in_unit, int in_fixed, int out_unit,
                      int out_fixed, int k, long hw, int depthwise, int bias, int blk)
{
    prune_space *s = b->s;
    if (s->n_layers == b->cap_layers) {
        b->cap_layers = b->cap_layers ? 2 * b->cap_layers : 64;
        s->layers = xrealloc(s->layers, (size_t)b->cap_layers * sizeof *s->layers);
    }
    prunespace_layer *l = &s->layers[s->n_layers++];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->in_unit = in_unit;
    l->in_fixed = in_fixed;
    l->out_unit = out_unit;
    l->out_fixed = out_fixed;
    l->k = k;
    l->hw = hw;
    l->depthwise = depthwise;
    l->bias = bias;
    l->blk = blk;
}

static void add_site(builder *b, const char *bn, int unit)
{
    prune_space *s = b->s;
    if (s->n_sites == b->cap_sites) {
        b->cap_sites = b->cap_sites ? 2 * b->cap_sites : 64;
        s->sites = xrealloc(s->sites, (size_t)b->cap_sites * sizeof *s->sites);
    }
    prunespace_site *t = &s->sites[s->n_sites++];
    snprintf(t->bn, sizeof t->bn, "%s", bn);
    t->unit = unit;
    t->tie = 0;
}

/* The convs, units and sites of block j of stage i (resnet.c's block) on the
 * stream unit `stream` (cin channels, hw x hw); returns the block's output unit. */
static int resnet_block(builder *b, int i, int j, int stream, int cin, int *hw, int blk)
{
    prune_space *s = b->s;
    const model_cfg *c = &s->super;
    const mc_stage *st = &c->stages[i];
    int bottleneck = c->arch == MC_RESNET && c->block == MC_BLOCK_BOTTLENECK;
    char name[PRUNESPACE_NAME_MAX], pre[32]; /* "layer%d.%d" of two ints */
    snprintf(pre, sizeof pre, "layer%d.%d", i + 1, j);
    int stride = (i > 0 && j == 0) ? 2 : 1;
    int ho = conv_out(*hw, 3, stride, 1);
    snprintf(name, sizeof name, "%s.conv1", pre);
    int mid = add_unit(b, name, st->mids[j], -1), inner = mid;
    s->mid_unit[i * MC_MAX_STAGE_BLOCKS + j] = mid;
    if (bottleneck) {
        add_layer(b, name, stream, 0, mid, 0, 1, (long)*hw * *hw, 0, 0, blk);
        snprintf(name, sizeof name, "%s.conv2", pre);
        inner = add_unit(b, name, st->mids2[j], -1);
        s->mid2_unit[i * MC_MAX_STAGE_BLOCKS + j] = inner;
        add_layer(b, name, mid, 0, inner, 0, 3, (long)ho * ho, 0, 0, blk);
    } else {
        add_layer(b, name, stream, 0, mid, 0, 3, (long)ho * ho, 0, 0, blk);
    }
    snprintf(name, sizeof name, "%s.bn1", pre);
    add_site(b, name, mid);
    if (bottleneck) {
        snprintf(name, sizeof name, "%s.bn2", pre);
        add_site(b, name, inner);
    }
    int out = stream;
    if (stride != 1 || cin != st->width) {
        /* the projection block owns the stage's residual width; with
         * stride 1 equal widths would turn it into an identity */
        snprintf(name, sizeof name, "layer%d", i + 1);
        out = add_unit(b, name, st->width, stride == 1 ? stream : -1);
        snprintf(name, sizeof name, "%s.downsample.0", pre);
        int hd = conv_out(*hw, 1, stride, 0);
        add_layer(b, name, stream, 0, out, 0, 1, (long)hd * hd, 0, 0, blk);
    }
    const char *last = bottleneck ? "conv3" : "conv2";
    snprintf(name, sizeof name, "%s.%s", pre, last);
    add_layer(b, name, inner, 0, out, 0, bottleneck ? 1 : 3, (long)ho * ho, 0, 0, blk);
    snprintf(name, sizeof name, "%s.%s", pre, bottleneck ? "bn3" : "bn2");
    add_site(b, name, out);
    if (out != stream) {
        snprintf(name, sizeof name, "%s.downsample.1", pre);
        add_site(b, name, out);
    }
    *hw = ho;
    return out;
}

/* resnet.c: the stem (CIFAR: conv1 3x3 -> bn1 -> ReLU; ImageNet: conv1
 * 7x7/2 -> bn1 -> ReLU -> max-pool 3/2/1); BasicBlocks or Bottlenecks with
 * a 1x1 projection where the stride or the width changes; avgpool; fc. */
static void build_resnet(builder *b)
{
    prune_space *s = b->s;
    const model_cfg *c = &s->super;
    int imagenet = c->arch == MC_RESNET;
    int hw = imagenet ? conv_out(c->image_size, 7, 2, 3) : c->image_size;
    int stream = add_unit(b, "conv1", c->stem_width, -1);
    s->stem_unit = stream;
    add_layer(b, "conv1", -1, c->in_channels, stream, 0, imagenet ? 7 : 3, (long)hw * hw, 0, 0, -1);
    add_site(b, "bn1", stream);
    if (imagenet)
        hw = conv_out(hw, 3, 2, 1); /* the max-pool */
    int cin = c->stem_width;
    s->stage_unit = xcalloc((size_t)c->n_stages, sizeof(int));
    s->mid_unit = xcalloc((size_t)c->n_stages * MC_MAX_STAGE_BLOCKS, sizeof(int));
    if (imagenet && c->block == MC_BLOCK_BOTTLENECK)
        s->mid2_unit = xcalloc((size_t)c->n_stages * MC_MAX_STAGE_BLOCKS, sizeof(int));
    int blk = 0;
    for (int i = 0; i < c->n_stages; i++) {
        const mc_stage *st = &c->stages[i];
        for (int j = 0; j < st->n_blocks; j++) {
            stream = resnet_block(b, i, j, stream, cin, &hw, blk++);
            cin = st->width;
        }
        s->stage_unit[i] = stream;
    }
    add_layer(b, "fc", stream, 0, -1, c->num_classes, 1, 1, 0, 1, -1);
}

/* mobilenet.c (MobileNetV2, MobileNetV3, EfficientNet): features.0 stem;
 * inverted residuals (expansion only when hidden != cin; kxk depthwise;
 * squeeze-excitation, whose width is tied to the expansion unit; projection;
 * residual when stride 1 and cin == out); the last 1x1 conv to `last`; the
 * classifier (MobileNetV3: a hidden Linear of fixed width first). */
static void build_mb(builder *b)
{
    prune_space *s = b->s;
    const model_cfg *c = &s->super;
    const char *inner = modelcfg_mb_inner(c);
    char name[PRUNESPACE_NAME_MAX], bn[PRUNESPACE_NAME_MAX], pre[32];
    int hw = conv_out(c->image_size, 3, c->cifar ? 1 : 2, 1);
    int stream = add_unit(b, "features.0", c->mb_stem, -1);
    s->stem_unit = stream;
    add_layer(b, "features.0.0", -1, c->in_channels, stream, 0, 3, (long)hw * hw, 0, 0, -1);
    add_site(b, "features.0.1", stream);
    int cin = c->mb_stem;
    s->hid_unit = xcalloc((size_t)c->n_blocks, sizeof(int));
    s->out_unit = xcalloc((size_t)c->n_blocks, sizeof(int));
    for (int i = 0; i < c->n_blocks; i++) {
        const mc_mbblock *blk = &c->blocks[i];
        modelcfg_mb_block_name(c, i, pre, sizeof pre);
        int idx = 0, hid = stream;
        if (blk->hidden != cin) {
            snprintf(name, sizeof name, "%s.expand", pre);
            hid = add_unit(b, name, blk->hidden, stream);
            snprintf(name, sizeof name, "%s.%s.0.0", pre, inner);
            add_layer(b, name, stream, 0, hid, 0, 1, (long)hw * hw, 0, 0, i);
            snprintf(bn, sizeof bn, "%s.%s.0.1", pre, inner);
            add_site(b, bn, hid);
            idx = 1;
        }
        int ho = conv_out(hw, blk->kernel, blk->stride, blk->kernel / 2);
        snprintf(name, sizeof name, "%s.%s.%d.0", pre, inner, idx);
        add_layer(b, name, hid, 0, hid, 0, blk->kernel, (long)ho * ho, 1, 0, i);
        snprintf(bn, sizeof bn, "%s.%s.%d.1", pre, inner, idx);
        add_site(b, bn, hid);
        idx++;
        if (blk->se > 0) { /* on the pooled 1x1 map; its width follows the unit's */
            snprintf(name, sizeof name, "%s.%s.%d.fc1", pre, inner, idx);
            add_layer(b, name, hid, 0, hid, 0, 1, 1, 0, 1, i);
            s->layers[s->n_layers - 1].out_tie = blk->se;
            snprintf(name, sizeof name, "%s.%s.%d.fc2", pre, inner, idx);
            add_layer(b, name, hid, 0, hid, 0, 1, 1, 0, 1, i);
            s->layers[s->n_layers - 1].in_tie = blk->se;
            snprintf(name, sizeof name, "%s.%s.%d.fc1", pre, inner, idx);
            add_site(b, name, hid);
            s->sites[s->n_sites - 1].tie = blk->se;
            idx++;
        }
        int out = stream;
        if (!(blk->stride == 1 && cin == blk->out)) {
            snprintf(name, sizeof name, "%s.out", pre);
            out = add_unit(b, name, blk->out, blk->stride == 1 ? stream : -1);
        }
        modelcfg_mb_project_names(c, i, name, bn, sizeof name);
        add_layer(b, name, hid, 0, out, 0, 1, (long)ho * ho, 0, 0, i);
        add_site(b, bn, out);
        s->hid_unit[i] = hid;
        s->out_unit[i] = out;
        stream = out;
        hw = ho;
        cin = blk->out;
    }
    int last = modelcfg_mb_last_index(c);
    snprintf(name, sizeof name, "features.%d", last);
    s->last_unit = add_unit(b, name, c->last, -1);
    snprintf(name, sizeof name, "features.%d.0", last);
    add_layer(b, name, stream, 0, s->last_unit, 0, 1, (long)hw * hw, 0, 0, -1);
    snprintf(bn, sizeof bn, "features.%d.1", last);
    add_site(b, bn, s->last_unit);
    if (c->head_width > 0) {
        add_layer(b, "classifier.0", s->last_unit, 0, -1, c->head_width, 1, 1, 0, 1, -1);
        add_layer(b, modelcfg_mb_classifier(c), -1, c->head_width, -1, c->num_classes, 1, 1, 0, 1,
                  -1);
    } else {
        add_layer(b, modelcfg_mb_classifier(c), s->last_unit, 0, -1, c->num_classes, 1, 1, 0, 1,
                  -1);
    }
}

int prune_space_init(prune_space *s, const model_cfg *c, const prunespace_width *w, errbuf *eb)
{
    memset(s, 0, sizeof *s);
    if (!modelcfg_is_resnet(c->arch) && !modelcfg_is_mb(c->arch))
        return err_set(eb, ERR_INVALID,
                       "channel pruning supports resnet_cifar, resnet, mobilenetv2, mobilenetv3 "
                       "and efficientnet, not %s",
                       modelcfg_arch_name(c->arch));
    if (!(w->min > 0 && w->offset > 0 && w->min <= w->max))
        return err_set(eb, ERR_INVALID,
                       "width range needs 0 < min <= max and offset > 0 (got %g, %g, %g)", w->min,
                       w->max, w->offset);
    s->super = *c;
    s->width = *w;
    s->last_unit = -1;
    builder b = {.s = s};
    if (modelcfg_is_resnet(c->arch))
        build_resnet(&b);
    else
        build_mb(&b);
    return 0;
}

void prune_space_deinit(prune_space *s)
{
    free(s->units);
    free(s->layers);
    free(s->sites);
    free(s->stage_unit);
    free(s->mid_unit);
    free(s->mid2_unit);
    free(s->hid_unit);
    free(s->out_unit);
    memset(s, 0, sizeof *s);
}

const prunespace_site *prunespace_site_find(const prune_space *s, const char *bn)
{
    for (int i = 0; i < s->n_sites; i++)
        if (strcmp(s->sites[i].bn, bn) == 0)
            return &s->sites[i];
    return NULL;
}

int prunespace_tie_channel_width(const prune_space *s, const prunespace_site *t, int j)
{
    int C = s->units[t->unit].channels, w = 1;
    while (w < C && modelcfg_se_width(t->tie, C, w) <= j)
        w++;
    return w;
}

int prunespace_site_unit(const prune_space *s, const char *bn)
{
    for (int i = 0; i < s->n_sites; i++)
        if (strcmp(s->sites[i].bn, bn) == 0)
            return s->sites[i].unit;
    return -1;
}

/* ---- widths -------------------------------------------------------------- */

void prunespace_full_widths(const prune_space *s, int *w)
{
    for (int u = 0; u < s->n_units; u++)
        w[u] = s->units[u].channels;
}

void prunespace_min_widths(const prune_space *s, int *w)
{
    for (int u = 0; u < s->n_units; u++)
        w[u] = s->units[u].c_min;
    prunespace_fix_structure(s, w, 1);
}

void prunespace_widths_to_cfg(const prune_space *s, const int *w, model_cfg *out)
{
    *out = s->super;
    out->preset = 0;
    if (modelcfg_is_resnet(out->arch)) {
        out->stem_width = w[s->stem_unit];
        for (int i = 0; i < out->n_stages; i++) {
            out->stages[i].width = w[s->stage_unit[i]];
            for (int j = 0; j < out->stages[i].n_blocks; j++) {
                int k = i * MC_MAX_STAGE_BLOCKS + j;
                out->stages[i].mids[j] = w[s->mid_unit[k]];
                if (s->mid2_unit != NULL)
                    out->stages[i].mids2[j] = w[s->mid2_unit[k]];
            }
        }
    } else {
        out->mb_stem = w[s->stem_unit];
        for (int i = 0; i < out->n_blocks; i++) {
            const mc_mbblock *sb = &s->super.blocks[i];
            out->blocks[i].hidden = w[s->hid_unit[i]];
            out->blocks[i].out = w[s->out_unit[i]];
            out->blocks[i].se = modelcfg_se_width(sb->se, sb->hidden, w[s->hid_unit[i]]);
        }
        out->last = w[s->last_unit];
    }
}

int prunespace_fix_structure(const prune_space *s, int *w, int grid)
{
    int moved = 0;
    for (int u = 0; u < s->n_units; u++) {
        const prunespace_unit *x = &s->units[u];
        if (x->partner < 0 || w[u] != w[x->partner])
            continue;
        int step = grid ? x->group : 1;
        if (w[u] + step <= x->channels)
            w[u] += step;
        else if (w[u] - step >= 1)
            w[u] -= step;
        else
            continue; /* a 1-channel unit has nowhere to go */
        moved++;
    }
    return moved;
}

int prunespace_move_ok(const prune_space *s, const int *w, int u, int v, int lo)
{
    if (v < lo || v > s->units[u].channels)
        return 0;
    int pu = s->units[u].partner;
    if (pu >= 0 && w[pu] == v)
        return 0;
    for (int x = 0; x < s->n_units; x++)
        if (s->units[x].partner == u && w[x] == v)
            return 0;
    return 1;
}

void prunespace_uniform_widths(const prune_space *s, double m, int *w)
{
    for (int u = 0; u < s->n_units; u++) {
        int C = s->units[u].channels;
        long v = lround((double)C * m / s->width.max);
        w[u] = v < 1 ? 1 : v > C ? C : (int)v;
    }
    prunespace_fix_structure(s, w, 0);
}

/* ---- MACs ------------------------------------------------------------------ */

static double layer_macs(const prunespace_layer *l, double cin, double cout)
{
    double per = l->depthwise ? (double)l->k * l->k : (double)l->k * l->k * cin;
    return (per + (l->bias ? 1.0 : 0.0)) * (double)l->hw * cout;
}

/* The width of a layer's input or output (unit u, fixed width, tie) at widths w. */
static double side_width(const prune_space *s, int u, int fixed, int tie, const int *w)
{
    if (u < 0)
        return fixed;
    return tie > 0 ? modelcfg_se_width(tie, s->units[u].channels, w[u]) : w[u];
}

/* The same at expected widths ec; *dw receives d(width)/d(ec[u]). */
static double side_expected(const prune_space *s, int u, int fixed, int tie, const double *ec,
                            double *dw)
{
    *dw = 0;
    if (u < 0)
        return fixed;
    *dw = tie > 0 ? (double)tie / s->units[u].channels : 1.0;
    return *dw * ec[u];
}

double prunespace_layer_macs(const prune_space *s, int i, const int *w)
{
    const prunespace_layer *l = &s->layers[i];
    double cin = side_width(s, l->in_unit, l->in_fixed, l->in_tie, w);
    double cout = side_width(s, l->out_unit, l->out_fixed, l->out_tie, w);
    return layer_macs(l, cin, cout);
}

double prunespace_macs(const prune_space *s, const int *w)
{
    double total = 0;
    for (int i = 0; i < s->n_layers; i++)
        total += prunespace_layer_macs(s, i, w);
    return total;
}

double prunespace_expected_macs_blocks(const prune_space *s, const double *ec, const double *bw,
                                       double *grad, double *bgrad)
{
    if (grad != NULL)
        memset(grad, 0, (size_t)s->n_units * sizeof *grad);
    if (bgrad != NULL)
        memset(bgrad, 0, (size_t)prunespace_n_blocks(s) * sizeof *bgrad);
    double total = 0;
    for (int i = 0; i < s->n_layers; i++) {
        const prunespace_layer *l = &s->layers[i];
        double din, dout;
        double cin = side_expected(s, l->in_unit, l->in_fixed, l->in_tie, ec, &din);
        double cout = side_expected(s, l->out_unit, l->out_fixed, l->out_tie, ec, &dout);
        double kk = (double)l->k * l->k, b = l->bias ? 1.0 : 0.0, hw = (double)l->hw;
        double q = (bw != NULL && l->blk >= 0) ? bw[l->blk] : 1.0;
        double macs = layer_macs(l, cin, cout);
        total += q * macs;
        if (bgrad != NULL && l->blk >= 0)
            bgrad[l->blk] += macs;
        if (grad == NULL)
            continue;
        if (l->out_unit >= 0)
            grad[l->out_unit] += q * ((l->depthwise ? kk : kk * cin) + b) * hw * dout;
        if (l->in_unit >= 0 && !l->depthwise)
            grad[l->in_unit] += q * kk * hw * cout * din;
    }
    return total;
}

double prunespace_expected_macs(const prune_space *s, const double *ec, double *grad)
{
    return prunespace_expected_macs_blocks(s, ec, NULL, grad, NULL);
}

int prunespace_n_blocks(const prune_space *s)
{
    int n = 0;
    for (int i = 0; i < s->n_layers; i++)
        if (s->layers[i].blk + 1 > n)
            n = s->layers[i].blk + 1;
    return n;
}

void prunespace_set_grid(prune_space *s, int u, int c_min, int group, int K)
{
    prunespace_unit *x = &s->units[u];
    assert(c_min >= 1 && group >= 1 && K >= 0 && c_min + K * group == x->channels);
    x->c_min = c_min;
    x->group = group;
    x->K = K;
}

int prunespace_unit_find(const prune_space *s, const char *name)
{
    for (int u = 0; u < s->n_units; u++)
        if (strcmp(s->units[u].name, name) == 0)
            return u;
    return -1;
}

double prunespace_budget_loss(double e, double t, double lam, double lo, double *dl_de)
{
    double r = fabs(e - t) > 200.0 ? 0.1 : 1.0;
    double ref;
    if (e < lo * t)
        ref = t;
    else if (e < t)
        ref = -1; /* inside the band */
    else
        ref = lo * t;
    if (ref < 0) {
        if (dl_de != NULL)
            *dl_de = 0;
        return 0;
    }
    if (dl_de != NULL)
        *dl_de = lam / (e - ref);
    return lam * log(r * fabs(e - ref));
}
