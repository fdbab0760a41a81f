/* check_bestfirst.c - the index vectors of a product of sorted lists, cheapest first.
 *
 * Against a full enumeration of small products (random sorted costs,
 * repeated costs, lists of one entry, no lists at all): every vector is
 * yielded exactly once, the sums never decrease, each reported sum is the
 * vector's, and the sequence of sums equals the sorted sums of the whole
 * product.
 */
#include "common/bestfirst.h"
#include "common/rng.h"
#include "common/xalloc.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>

Suite *suite_bestfirst(void);

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void check_product(int n, const int *len, rng *r, int repeats)
{
    double *cost[4];
    long total = 1;
    for (int k = 0; k < n; k++) {
        cost[k] = xcalloc((size_t)len[k], sizeof(double));
        double c = 0;
        for (int j = 0; j < len[k]; j++) {
            if (!repeats || rng_below(r, 2) == 0)
                c += (double)rng_uniform(r);
            cost[k][j] = c;
        }
        total *= len[k];
    }
    /* every sum of the product, sorted: what the enumeration must yield */
    double *all = xcalloc((size_t)total, sizeof(double));
    char *seen = xcalloc((size_t)total, 1);
    for (long i = 0; i < total; i++) {
        long x = i;
        for (int k = 0; k < n; k++) {
            all[i] += cost[k][x % len[k]];
            x /= len[k];
        }
    }
    qsort(all, (size_t)total, sizeof(double), cmp_double);
    bestfirst *b = bestfirst_new(n, len, (const double *const *)cost);
    int idx[4];
    double c, prev = -1;
    long got = 0;
    while (bestfirst_next(b, idx, &c)) {
        long code = 0, mul = 1;
        double sum = 0;
        for (int k = 0; k < n; k++) {
            ck_assert(idx[k] >= 0 && idx[k] < len[k]);
            code += idx[k] * mul;
            mul *= len[k];
            sum += cost[k][idx[k]];
        }
        ck_assert_msg(!seen[code], "vector %ld yielded twice", code);
        seen[code] = 1;
        ck_assert(fabs(sum - c) < 1e-9);
        ck_assert(c >= prev - 1e-12);
        ck_assert(fabs(c - all[got]) < 1e-9);
        prev = c;
        got++;
    }
    ck_assert_int_eq(got, total);
    ck_assert(!bestfirst_next(b, idx, &c));
    bestfirst_free(b);
    free(all);
    free(seen);
    for (int k = 0; k < n; k++)
        free(cost[k]);
}

START_TEST(yields_every_vector_in_order)
{
    rng r;
    rng_seed(&r, 3);
    const int shapes[5][4] = {
        {5, 7, 3, 4}, {1, 9, 1, 6}, {12, 1, 1, 1}, {2, 2, 2, 2}, {8, 8, 8, 1}};
    for (int s = 0; s < 5; s++)
        for (int n = 1; n <= 4; n++) {
            check_product(n, shapes[s], &r, 0);
            check_product(n, shapes[s], &r, 1);
        }
}
END_TEST

START_TEST(no_lists_yield_the_empty_vector_once)
{
    bestfirst *b = bestfirst_new(0, NULL, NULL);
    int idx[1];
    double c = -1;
    ck_assert(bestfirst_next(b, idx, &c));
    ck_assert(c == 0);
    ck_assert(!bestfirst_next(b, idx, &c));
    bestfirst_free(b);
    bestfirst_free(NULL);
}
END_TEST

Suite *suite_bestfirst(void)
{
    Suite *s = suite_create("bestfirst");
    tu_case_add(s, "order", 0, NULL, NULL,
                TU_TESTS(yields_every_vector_in_order, no_lists_yield_the_empty_vector_once));
    return s;
}
