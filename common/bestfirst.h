/* bestfirst.h - the index vectors of a product of sorted lists, cheapest first.
 *
 * Given n lists of costs, each sorted ascending, bestfirst_next yields
 * every vector (i_0, ..., i_{n-1}) of list indices once, in order of the
 * sum of the chosen costs (ties: the order they were reached in), without
 * enumerating the whole product: a heap of frontier vectors, each made
 * from one parent by raising one index at or after its parent's last
 * raised one. Memory grows by at most n vectors per vector taken. Used by
 * bandfit.c to try combinations of widths and depths nearest-first. Pure C;
 * one object is used by one thread.
 */
#ifndef KILN_BESTFIRST_H
#define KILN_BESTFIRST_H

typedef struct bestfirst bestfirst;

/* An enumerator over n >= 0 lists: len[k] >= 1 entries each (at most
 * 65535), cost[k] ascending. cost is borrowed and must outlive it; len is
 * copied. */
bestfirst *bestfirst_new(int n, const int *len, const double *const *cost);
void bestfirst_free(bestfirst *b);

/* The next vector: fills idx (n ints) and *cost (the sum) and returns 1,
 * or returns 0 when every vector was yielded. With n = 0 the one empty
 * vector (cost 0) is yielded once. */
int bestfirst_next(bestfirst *b, int *idx, double *cost);

#endif
