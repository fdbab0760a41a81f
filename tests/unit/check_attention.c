/* check_attention.c - the attention core against a naive double-precision attention.
 *
 * The naive forward/backward (plain loops over the formulas) is itself checked by
 * central differences in double; the kernel must then match it on every shape (batch
 * 1, one head, many heads, T = 1, head sizes that are and are not whole vectors, all
 * queries and a single query at 0, T-1 and inside), pass float finite differences, add
 * into dqkv, and give bit-identical results with 1 and 2 threads. Scratch is allocated
 * at exactly nn_attention_scratch_floats() so ASan catches an undersized request. */
#include "common/xalloc.h"
#include "tests/unit/gradcheck.h"
#include "tests/unit/testutil.h"
#include "worker/nn/attention.h"

#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_attention(void);

typedef struct att_case {
    int B, T, C, NH, query, TQ;
    float *qkv, *dy, *out, *att, *scratch;
    size_t nqkv, nout, natt;
} att_case;

static void att_init(att_case *c, int B, int T, int C, int NH, int query, unsigned long long seed)
{
    c->B = B, c->T = T, c->C = C, c->NH = NH, c->query = query;
    c->TQ = nn_attention_queries(T, query);
    c->nqkv = (size_t)B * T * 3 * C;
    c->nout = (size_t)B * c->TQ * C;
    c->natt = (size_t)B * NH * c->TQ * T;
    c->qkv = xmallocarray(c->nqkv, sizeof(float));
    c->dy = xmallocarray(c->nout, sizeof(float));
    c->out = xmallocarray(c->nout, sizeof(float));
    c->att = xmallocarray(c->natt, sizeof(float));
    size_t ns = nn_attention_scratch_floats(B, T, C, NH, query);
    c->scratch = xmallocarray(ns > 0 ? ns : 1, sizeof(float));
    /* Spread enough that the softmax is far from uniform. */
    tu_fill_uniform(c->qkv, c->nqkv, -1.5f, 1.5f, seed);
    tu_fill_uniform(c->dy, c->nout, -1.0f, 1.0f, seed + 1);
}

static void att_free(att_case *c)
{
    free(c->qkv), free(c->dy), free(c->out), free(c->att), free(c->scratch);
}

static void att_fwd(void *ctx, float *y)
{
    att_case *c = ctx;
    nn_attention_forward(y, c->att, c->qkv, c->B, c->T, c->C, c->NH, c->query, c->scratch);
}

static void att_bwd(att_case *c, float *dqkv)
{
    nn_attention_backward(dqkv, c->dy, c->qkv, c->att, c->B, c->T, c->C, c->NH, c->query,
                          c->scratch);
}

/* Naive attention in double on a double copy of qkv: out (B, TQ, C), att (B, NH, TQ, T). */
static void naive_forward(double *out, double *att, const double *qkv, const att_case *c)
{
    int T = c->T, C = c->C, HS = C / c->NH, TQ = c->TQ;
    double scale = 1.0 / sqrt((double)HS);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int i = 0; i < TQ; i++) {
                int qi = c->query < 0 ? i : c->query;
                const double *q = qkv + ((size_t)b * T + qi) * 3 * C + h * HS;
                double *p = att + (((size_t)b * c->NH + h) * TQ + i) * T, m = -INFINITY, s = 0;
                for (int j = 0; j < T; j++) {
                    const double *k = qkv + ((size_t)b * T + j) * 3 * C + C + h * HS;
                    double d = 0;
                    for (int e = 0; e < HS; e++)
                        d += q[e] * k[e];
                    p[j] = d * scale;
                    m = fmax(m, p[j]);
                }
                for (int j = 0; j < T; j++)
                    s += (p[j] = exp(p[j] - m));
                for (int j = 0; j < T; j++)
                    p[j] /= s;
                double *o = out + ((size_t)b * TQ + i) * C + h * HS;
                for (int e = 0; e < HS; e++) {
                    double acc = 0;
                    for (int j = 0; j < T; j++)
                        acc += p[j] * qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * HS + e];
                    o[e] = acc;
                }
            }
}

/* Naive backward in double: dqkv (zeroed here) from dy, using naive_forward's att. */
static void naive_backward(double *dqkv, const double *dy, const double *qkv, const double *att,
                           const att_case *c)
{
    int T = c->T, C = c->C, HS = C / c->NH, TQ = c->TQ;
    double scale = 1.0 / sqrt((double)HS);
    memset(dqkv, 0, c->nqkv * sizeof(double));
    double *dp = xmallocarray((size_t)T, sizeof(double));
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int i = 0; i < TQ; i++) {
                int qi = c->query < 0 ? i : c->query;
                size_t qoff = ((size_t)b * T + qi) * 3 * C + h * HS;
                const double *p = att + (((size_t)b * c->NH + h) * TQ + i) * T;
                const double *g = dy + ((size_t)b * TQ + i) * C + h * HS;
                double dot = 0;
                for (int j = 0; j < T; j++) {
                    size_t voff = ((size_t)b * T + j) * 3 * C + 2 * C + h * HS;
                    dp[j] = 0;
                    for (int e = 0; e < HS; e++) {
                        dp[j] += g[e] * qkv[voff + e];
                        dqkv[voff + e] += p[j] * g[e];
                    }
                    dot += p[j] * dp[j];
                }
                for (int j = 0; j < T; j++) {
                    double ds = p[j] * (dp[j] - dot) * scale;
                    size_t koff = ((size_t)b * T + j) * 3 * C + C + h * HS;
                    for (int e = 0; e < HS; e++) {
                        dqkv[qoff + e] += ds * qkv[koff + e];
                        dqkv[koff + e] += ds * qkv[qoff + e];
                    }
                }
            }
    free(dp);
}

static double *to_double(const float *x, size_t n)
{
    double *d = xmallocarray(n, sizeof(double));
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* The oracle's own check: its backward against central differences of its forward. */
START_TEST(naive_oracle_is_right)
{
    const int shapes[][5] = {{2, 5, 12, 3, -1}, {1, 4, 6, 2, 3}, {2, 3, 4, 1, 0}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        att_case c;
        att_init(&c, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], shapes[s][4], 50 + s);
        double *q = to_double(c.qkv, c.nqkv), *dy = to_double(c.dy, c.nout);
        double *out = xmallocarray(c.nout, sizeof(double)),
               *att = xmallocarray(c.natt, sizeof(double));
        double *g = xmallocarray(c.nqkv, sizeof(double));
        naive_forward(out, att, q, &c);
        naive_backward(g, dy, q, att, &c);
        double worst = 0, gmax = 0, h = 1e-6;
        for (size_t i = 0; i < c.nqkv; i++) {
            double x0 = q[i], lp = 0, lm = 0;
            q[i] = x0 + h;
            naive_forward(out, att, q, &c);
            for (size_t k = 0; k < c.nout; k++)
                lp += out[k] * dy[k];
            q[i] = x0 - h;
            naive_forward(out, att, q, &c);
            for (size_t k = 0; k < c.nout; k++)
                lm += out[k] * dy[k];
            q[i] = x0;
            worst = fmax(worst, fabs((lp - lm) / (2 * h) - g[i]));
            gmax = fmax(gmax, fabs(g[i]));
        }
        ck_assert_msg(worst < 1e-7 * gmax, "naive attention backward: %.3e", worst / gmax);
        free(q), free(dy), free(out), free(att), free(g);
        att_free(&c);
    }
}
END_TEST

/* Kernel forward (out, att) and backward (accumulated onto a non-zero dqkv) vs the oracle. */
static void check_vs_naive(int B, int T, int C, int NH, int query)
{
    att_case c;
    att_init(&c, B, T, C, NH, query, 1000 + (unsigned long long)(B * 131 + T * 17 + C + NH));
    double *q = to_double(c.qkv, c.nqkv), *dy = to_double(c.dy, c.nout);
    double *out = xmallocarray(c.nout, sizeof(double)), *att = xmallocarray(c.natt, sizeof(double));
    double *g = xmallocarray(c.nqkv, sizeof(double));
    naive_forward(out, att, q, &c);
    naive_backward(g, dy, q, att, &c);
    att_fwd(&c, c.out);
    float *dqkv = xmallocarray(c.nqkv, sizeof(float));
    for (size_t i = 0; i < c.nqkv; i++) {
        dqkv[i] = 0.25f;
        g[i] += 0.25;
    }
    att_bwd(&c, dqkv);
    double eo = tu_rel_err_d(c.out, out, c.nout), ea = tu_rel_err_d(c.att, att, c.natt);
    double eg = tu_rel_err_d(dqkv, g, c.nqkv);
    printf("  attention B%d T%2d C%3d NH%d query %2d: out %.1e att %.1e dqkv %.1e\n", B, T, C, NH,
           query, eo, ea, eg);
    ck_assert_msg(eo < 2e-6 && ea < 2e-6 && eg < 5e-6,
                  "attention B%d T%d C%d NH%d q%d: out %.2e att %.2e dqkv %.2e", B, T, C, NH, query,
                  eo, ea, eg);
    free(q), free(dy), free(out), free(att), free(g), free(dqkv);
    att_free(&c);
}

START_TEST(matches_naive_all_queries)
{
    check_vs_naive(2, 5, 12, 3, NN_ATTN_ALL_QUERIES);  /* the reference case, HS 4 (packed) */
    check_vs_naive(1, 7, 6, 1, NN_ATTN_ALL_QUERIES);   /* batch 1, one head */
    check_vs_naive(3, 4, 16, 8, NN_ATTN_ALL_QUERIES);  /* many heads, HS 2 */
    check_vs_naive(2, 1, 8, 2, NN_ATTN_ALL_QUERIES);   /* one token */
    check_vs_naive(2, 50, 96, 3, NN_ATTN_ALL_QUERIES); /* the ViT's shape, HS 32 in place */
    check_vs_naive(2, 37, 64, 4, NN_ATTN_ALL_QUERIES); /* HS 16: half-width column tiles */
    check_vs_naive(1, 18, 40, 2, NN_ATTN_ALL_QUERIES); /* HS 20: padded to 32 */
}
END_TEST

START_TEST(matches_naive_one_query)
{
    check_vs_naive(2, 5, 12, 3, 4); /* last token, as LCA */
    check_vs_naive(2, 5, 12, 3, 0);
    check_vs_naive(2, 5, 12, 3, 2);
    check_vs_naive(1, 1, 8, 1, 0);
    check_vs_naive(8, 6, 96, 3, 5); /* LCA's shape */
    check_vs_naive(3, 20, 48, 3, 0);
    check_vs_naive(3, 20, 48, 3, 19);
}
END_TEST

/* Float central differences of the kernel itself, on every (strided) qkv element. */
static void check_fd(int B, int T, int C, int NH, int query, size_t stride)
{
    att_case c;
    att_init(&c, B, T, C, NH, query, 7 + (unsigned long long)(T * C));
    float *dqkv = xcalloc(c.nqkv, sizeof(float)), *y = xmallocarray(c.nout, sizeof(float));
    att_fwd(&c, y);
    att_bwd(&c, dqkv);
    char label[64];
    snprintf(label, sizeof label, "attention B%d T%d C%d NH%d q%d", B, T, C, NH, query);
    ck_assert(gradcheck_input(label, att_fwd, &c, c.qkv, c.nqkv, stride, dqkv, y, c.dy, c.nout,
                              1e-2f) < 2e-3);
    free(dqkv), free(y);
    att_free(&c);
}

START_TEST(finite_differences)
{
    check_fd(2, 5, 12, 3, NN_ATTN_ALL_QUERIES, 1);
    check_fd(1, 3, 4, 1, NN_ATTN_ALL_QUERIES, 1);
    check_fd(2, 4, 12, 3, 3, 1);
    check_fd(2, 4, 12, 3, 0, 1);
    check_fd(2, 50, 96, 3, NN_ATTN_ALL_QUERIES, 97);
    check_fd(4, 6, 96, 3, 5, 7);
}
END_TEST

/* Backward twice from zero = twice the gradient; 1 and 2 threads agree bit for bit. */
START_TEST(accumulates_and_is_deterministic)
{
    att_case c;
    att_init(&c, 4, 50, 96, 3, NN_ATTN_ALL_QUERIES, 99);
    float *g1 = xcalloc(c.nqkv, sizeof(float)), *g2 = xcalloc(c.nqkv, sizeof(float));
    float *y1 = xmallocarray(c.nout, sizeof(float)), *a1 = xmallocarray(c.natt, sizeof(float));
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    att_fwd(&c, y1);
    memcpy(a1, c.att, c.natt * sizeof(float));
    att_bwd(&c, g1);
    omp_set_num_threads(2);
    att_fwd(&c, c.out);
    ck_assert_mem_eq(y1, c.out, c.nout * sizeof(float));
    ck_assert_mem_eq(a1, c.att, c.natt * sizeof(float));
    att_bwd(&c, g2);
    ck_assert_mem_eq(g1, g2, c.nqkv * sizeof(float));
    att_bwd(&c, g2);
    for (size_t i = 0; i < c.nqkv; i++)
        ck_assert_msg(g2[i] == 2 * g1[i], "dqkv[%zu] did not accumulate", i);
    omp_set_num_threads(saved);
    /* Each probability row sums to 1. */
    for (size_t r = 0; r < c.natt / (size_t)c.T; r++) {
        double s = 0;
        for (int j = 0; j < c.T; j++)
            s += (double)c.att[r * c.T + j];
        ck_assert(fabs(s - 1.0) < 1e-6);
    }
    free(g1), free(g2), free(y1), free(a1);
    att_free(&c);
}
END_TEST

Suite *suite_attention(void)
{
    Suite *s = suite_create("attention");
    tu_case_add(s, "core", 60, NULL, NULL,
                TU_TESTS(naive_oracle_is_right, matches_naive_all_queries, matches_naive_one_query,
                         finite_differences, accumulates_and_is_deterministic));
    return s;
}
