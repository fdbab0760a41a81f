/* bestfirst.c - the index vectors of a product of sorted lists, cheapest first
 * (see bestfirst.h).
 *
 * A vector's parent is the vector with its highest raised index lowered
 * by one, so each vector has exactly one parent and is pushed once; a
 * child costs at least its parent (the lists are sorted), so popping the
 * heap's cheapest yields the vectors in order. Nodes live in one growing
 * arena; no global state.
 */
#include "common/bestfirst.h"

#include "common/xalloc.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct bestfirst {
    int n;
    int *len;                 /* (n) */
    const double *const *cst; /* (n) borrowed */
    uint16_t *idx;            /* (cap * n) each node's index vector */
    double *cost;             /* (cap) */
    int *last;                /* (cap) the highest index raised */
    int n_nodes, cap;
    int *heap, n_heap; /* node ids */
};

static int node_less(const bestfirst *b, int x, int y)
{
    if (b->cost[x] != b->cost[y])
        return b->cost[x] < b->cost[y];
    return x < y; /* the earlier reached first */
}

static void heap_push(bestfirst *b, int id)
{
    int i = b->n_heap++;
    b->heap[i] = id;
    while (i > 0 && node_less(b, b->heap[i], b->heap[(i - 1) / 2])) {
        int p = (i - 1) / 2, t = b->heap[p];
        b->heap[p] = b->heap[i];
        b->heap[i] = t;
        i = p;
    }
}

static int heap_pop(bestfirst *b)
{
    int top = b->heap[0], i = 0;
    b->heap[0] = b->heap[--b->n_heap];
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < b->n_heap && node_less(b, b->heap[l], b->heap[m]))
            m = l;
        if (r < b->n_heap && node_less(b, b->heap[r], b->heap[m]))
            m = r;
        if (m == i)
            break;
        int t = b->heap[m];
        b->heap[m] = b->heap[i];
        b->heap[i] = t;
        i = m;
    }
    return top;
}

static void push_node(bestfirst *b, const uint16_t *idx, double cost, int last)
{
    if (b->n_nodes == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->idx = xrealloc(b->idx, (size_t)b->cap * (size_t)(b->n ? b->n : 1) * sizeof(uint16_t));
        b->cost = xrealloc(b->cost, (size_t)b->cap * sizeof(double));
        b->last = xrealloc(b->last, (size_t)b->cap * sizeof(int));
        b->heap = xrealloc(b->heap, (size_t)b->cap * sizeof(int));
    }
    int id = b->n_nodes++;
    if (b->n > 0)
        memcpy(&b->idx[(size_t)id * b->n], idx, (size_t)b->n * sizeof(uint16_t));
    b->cost[id] = cost;
    b->last[id] = last;
    heap_push(b, id);
}

bestfirst *bestfirst_new(int n, const int *len, const double *const *cost)
{
    assert(n >= 0);
    bestfirst *b = xcalloc(1, sizeof *b);
    b->n = n;
    b->len = xcalloc((size_t)n + 1, sizeof(int));
    b->cst = cost;
    uint16_t *zero = xcalloc((size_t)n + 1, sizeof(uint16_t));
    double c = 0;
    for (int k = 0; k < n; k++) {
        assert(len[k] >= 1 && len[k] <= UINT16_MAX);
        b->len[k] = len[k];
        c += cost[k][0];
    }
    push_node(b, zero, c, 0);
    free(zero);
    return b;
}

void bestfirst_free(bestfirst *b)
{
    if (b == NULL)
        return;
    free(b->len);
    free(b->idx);
    free(b->cost);
    free(b->last);
    free(b->heap);
    free(b);
}

int bestfirst_next(bestfirst *b, int *idx, double *cost)
{
    if (b->n_heap == 0)
        return 0;
    int id = heap_pop(b), n = b->n;
    double c = b->cost[id];
    uint16_t *v = xcalloc((size_t)n + 1, sizeof(uint16_t));
    if (n > 0)
        memcpy(v, &b->idx[(size_t)id * n], (size_t)n * sizeof(uint16_t));
    for (int k = b->last[id]; k < n; k++)
        if (v[k] + 1 < b->len[k]) {
            v[k]++;
            push_node(b, v, c - b->cst[k][v[k] - 1] + b->cst[k][v[k]], k);
            v[k]--;
        }
    for (int k = 0; k < n; k++)
        idx[k] = v[k];
    *cost = c;
    free(v);
    return 1;
}
