/* slice.c - prefix gather/scatter between a sub-net and its supernet (see slice.h). */
#include "worker/models/slice.h"

#include <assert.h>
#include <string.h>

int net_slice_check(const net *sub, const net *super, errbuf *eb)
{
    for (int i = 0; i < sub->n_tensors; i++) {
        const net_tensor *t = &sub->tensors[i];
        int j = net_tensor_find(super, t->name);
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

/* The shape of t as 4 dimensions with leading ones. */
static void shape4(const net_tensor *t, size_t *s)
{
    int pad = 4 - t->ndim;
    for (int d = 0; d < 4; d++)
        s[d] = d < pad ? 1 : (size_t)t->shape[d - pad];
}

/* Calls the copy for every contiguous innermost run of the prefix block:
 * add != 0 accumulates small into big, else copies big into small. */
static void prefix_copy(float *small, float *big, const net_tensor *ts, const net_tensor *tb,
                        int add)
{
    size_t s[4], b[4];
    shape4(ts, s);
    shape4(tb, b);
    for (size_t i0 = 0; i0 < s[0]; i0++)
        for (size_t i1 = 0; i1 < s[1]; i1++)
            for (size_t i2 = 0; i2 < s[2]; i2++) {
                float *ps = small + ((i0 * s[1] + i1) * s[2] + i2) * s[3];
                float *pb = big + ((i0 * b[1] + i1) * b[2] + i2) * b[3];
                if (add)
                    for (size_t k = 0; k < s[3]; k++)
                        pb[k] += ps[k];
                else
                    memcpy(ps, pb, s[3] * sizeof(float));
            }
}

static const net_tensor *match(const net *super, const net_tensor *t)
{
    int j = net_tensor_find(super, t->name);
    assert(j >= 0 && "sub-net tensor missing from the supernet (net_slice_check first)");
    const net_tensor *T = &super->tensors[j];
    assert(T->kind == t->kind && T->ndim == t->ndim);
    return T;
}

void net_slice_gather(net *sub, const net *super)
{
    for (int i = 0; i < sub->n_tensors; i++) {
        const net_tensor *t = &sub->tensors[i];
        const net_tensor *T = match(super, t);
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

void net_slice_scatter_grads(net *super, const net *sub)
{
    for (int i = 0; i < sub->n_tensors; i++) {
        const net_tensor *t = &sub->tensors[i];
        if (t->kind != NET_PARAM)
            continue;
        const net_tensor *T = match(super, t);
        prefix_copy(sub->grads + t->off, super->grads + T->off, t, T, 1);
    }
}
