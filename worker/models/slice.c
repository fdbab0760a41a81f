/* slice.c - prefix gather/scatter between a sub-net and its supernet (see slice.h). */
#include "worker/models/slice.h"

#include <assert.h>
#include <string.h>

/* The counterpart's name of `name` through map; 0 when there is none. */
static int map_name(const slice_map *map, const char *name, char *out, size_t len)
{
    if (map == NULL || map->fn == NULL) {
        size_t n = strlen(name);
        if (n >= len)
            return 0;
        memcpy(out, name, n + 1);
        return 1;
    }
    return map->fn(map->ctx, name, out, len);
}

static int find_mapped(const net *other, const slice_map *map, const char *name)
{
    char buf[NET_NAME_MAX];
    if (!map_name(map, name, buf, sizeof buf))
        return -1;
    return net_tensor_find(other, buf);
}

int net_slice_check_map(const net *sub, const net *super, const slice_map *map, errbuf *eb)
{
    for (int i = 0; i < sub->n_tensors; i++) {
        const net_tensor *t = &sub->tensors[i];
        int j = find_mapped(super, map, t->name);
        if (j < 0)
            return err_set(eb, ERR_INVALID, "tensor %s is not in the supernet", t->name);
        const net_tensor *T = &super->tensors[j];
        if (T->kind != t->kind || T->ndim != t->ndim)
            return err_set(eb, ERR_INVALID, "tensor %s has another kind or rank in the supernet",
                           t->name);
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] > T->shape[d])
                return err_set(eb, ERR_INVALID,
                               "tensor %s: dimension %d is %d, wider than the supernet's %d",
                               t->name, d, t->shape[d], T->shape[d]);
    }
    return 0;
}

int net_slice_check(const net *sub, const net *super, errbuf *eb)
{
    return net_slice_check_map(sub, super, NULL, eb);
}

/* The shape of t as 4 dimensions with leading ones. */
static void shape4(const net_tensor *t, size_t *s)
{
    int pad = 4 - t->ndim;
    for (int d = 0; d < 4; d++)
        s[d] = d < pad ? 1 : (size_t)t->shape[d - pad];
}

/* Calls the copy for every contiguous innermost run of the box `n` (a
 * 4-dim extent inside both a (shape sa) and b (shape sb)): add != 0
 * accumulates a into b, else copies b into a. */
static void box_copy(float *a, float *b, const size_t *sa, const size_t *sb, const size_t *n,
                     int add)
{
    for (size_t i0 = 0; i0 < n[0]; i0++)
        for (size_t i1 = 0; i1 < n[1]; i1++)
            for (size_t i2 = 0; i2 < n[2]; i2++) {
                float *pa = a + ((i0 * sa[1] + i1) * sa[2] + i2) * sa[3];
                float *pb = b + ((i0 * sb[1] + i1) * sb[2] + i2) * sb[3];
                if (add)
                    for (size_t k = 0; k < n[3]; k++)
                        pb[k] += pa[k];
                else
                    memcpy(pa, pb, n[3] * sizeof(float));
            }
}

/* The prefix block of small inside big: add != 0 accumulates small into
 * big, else copies big into small. */
static void prefix_copy(float *small, float *big, const net_tensor *ts, const net_tensor *tb,
                        int add)
{
    size_t s[4], b[4];
    shape4(ts, s);
    shape4(tb, b);
    box_copy(small, big, s, b, s, add);
}

static const net_tensor *match(const net *super, const slice_map *map, const net_tensor *t)
{
    int j = find_mapped(super, map, t->name);
    assert(j >= 0 && "sub-net tensor missing from the supernet (net_slice_check first)");
    const net_tensor *T = &super->tensors[j];
    assert(T->kind == t->kind && T->ndim == t->ndim);
    return T;
}

void net_slice_gather_map(net *sub, const net *super, const slice_map *map)
{
    for (int i = 0; i < sub->n_tensors; i++) {
        const net_tensor *t = &sub->tensors[i];
        const net_tensor *T = match(super, map, t);
        switch (t->kind) {
        case NET_PARAM:
            prefix_copy(sub->params + t->off, super->params + T->off, t, T, 0);
            break;
        case NET_BUFFER:
            prefix_copy(sub->buffers + t->off, super->buffers + T->off, t, T, 0);
            break;
        case NET_COUNTER:
            for (size_t k = 0; k < t->n; k++)
                sub->counters[t->off + k] = super->counters[T->off + k];
            break;
        }
    }
}

void net_slice_gather(net *sub, const net *super)
{
    net_slice_gather_map(sub, super, NULL);
}

void net_slice_scatter_grads_map(net *super, const net *sub, const slice_map *map)
{
    for (int i = 0; i < sub->n_tensors; i++) {
        const net_tensor *t = &sub->tensors[i];
        if (t->kind != NET_PARAM)
            continue;
        const net_tensor *T = match(super, map, t);
        prefix_copy(sub->grads + t->off, super->grads + T->off, t, T, 1);
    }
}

void net_slice_scatter_grads(net *super, const net *sub)
{
    net_slice_scatter_grads_map(super, sub, NULL);
}

int net_copy_overlap(net *dst, const net *src, const slice_map *map)
{
    int missing = 0;
    for (int i = 0; i < dst->n_tensors; i++) {
        const net_tensor *t = &dst->tensors[i];
        int j = find_mapped(src, map, t->name);
        if (j < 0 || src->tensors[j].kind != t->kind || src->tensors[j].ndim != t->ndim) {
            missing++;
            continue;
        }
        const net_tensor *T = &src->tensors[j];
        size_t sd[4], ss[4], n[4];
        shape4(t, sd);
        shape4(T, ss);
        for (int d = 0; d < 4; d++)
            n[d] = sd[d] < ss[d] ? sd[d] : ss[d];
        switch (t->kind) {
        case NET_PARAM:
            box_copy(dst->params + t->off, src->params + T->off, sd, ss, n, 0);
            box_copy(dst->opt_m + t->off, src->opt_m + T->off, sd, ss, n, 0);
            box_copy(dst->opt_v + t->off, src->opt_v + T->off, sd, ss, n, 0);
            break;
        case NET_BUFFER:
            box_copy(dst->buffers + t->off, src->buffers + T->off, sd, ss, n, 0);
            break;
        case NET_COUNTER:
            for (size_t k = 0; k < t->n && k < T->n; k++)
                dst->counters[t->off + k] = src->counters[T->off + k];
            break;
        }
    }
    return missing;
}
