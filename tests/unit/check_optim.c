/* check_optim.c - SGD and AdamW over several steps against PyTorch's update formulas
 * evaluated in double, the warm-up + cosine schedule at its landmarks, and the global
 * gradient norm and clipping. */
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/nn/optim.h"

#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_optim(void);

#define NP    1003 /* parameters: odd, and several vectors long */
#define STEPS 5

/* PyTorch SGD in double: g = grad + wd p; buf = g on the first step, else
 * m buf + (1 - dampening) g; p -= lr (nesterov ? g + m buf : buf), or lr g without momentum. */
static void check_sgd(const nn_sgd_params *o)
{
    float *p = xmallocarray(NP, sizeof(float)), *buf = xcalloc(NP, sizeof(float));
    float *g = xmallocarray(NP, sizeof(float));
    double rp[NP], rb[NP];
    tu_fill_uniform(p, NP, -1, 1, 1);
    for (int i = 0; i < NP; i++)
        rp[i] = p[i];
    for (int s = 0; s < STEPS; s++) {
        tu_fill_uniform(g, NP, -1, 1, 10 + (unsigned long long)s);
        nn_sgd_step(p, o->momentum != 0.0f ? buf : NULL, g, NP, o, s == 0);
        double mom = o->momentum, lr = o->lr, wd = o->weight_decay, damp = o->dampening;
        for (int i = 0; i < NP; i++) {
            double gi = (double)g[i] + wd * rp[i];
            if (mom == 0.0) {
                rp[i] -= lr * gi;
                continue;
            }
            rb[i] = s == 0 ? gi : mom * rb[i] + (1.0 - damp) * gi;
            rp[i] -= lr * (o->nesterov ? gi + mom * rb[i] : rb[i]);
        }
        double ep = tu_rel_err_d(p, rp, NP),
               eb = o->momentum != 0.0f ? tu_rel_err_d(buf, rb, NP) : 0;
        ck_assert_msg(ep < 1e-6 && eb < 1e-6, "sgd step %d: param %.3e buf %.3e", s + 1, ep, eb);
        if (s == 0 || s == STEPS - 1)
            printf("  sgd m %.2f d %.2f nesterov %d wd %.0e step %d: param %.1e buf %.1e\n",
                   (double)o->momentum, (double)o->dampening, o->nesterov, (double)o->weight_decay,
                   s + 1, ep, eb);
    }
    free(p), free(buf), free(g);
}

START_TEST(sgd_matches_pytorch_formula)
{
    nn_sgd_params nesterov = {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 5e-4f, .nesterov = 1};
    nn_sgd_params damped = {.lr = 0.05f, .momentum = 0.8f, .dampening = 0.1f};
    nn_sgd_params plain = {.lr = 0.2f, .weight_decay = 1e-2f};
    check_sgd(&nesterov);
    check_sgd(&damped);
    check_sgd(&plain);
    /* The first step by hand, for one element: buf = g, p -= lr (g + m g). */
    float p = 1.0f, buf = 123.0f, g = 0.5f;
    nn_sgd_step(&p, &buf, &g, 1, &nesterov, 1);
    double gi = 0.5 + 5e-4 * 1.0;
    ck_assert(fabs((double)buf - gi) < 1e-7);
    ck_assert(fabs((double)p - (1.0 - 0.1 * (gi + 0.9 * gi))) < 1e-7);
}
END_TEST

START_TEST(adamw_matches_pytorch_formula)
{
    nn_adamw_params o = {
        .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.05f};
    float *p = xmallocarray(NP, sizeof(float)), *m = xcalloc(NP, sizeof(float));
    float *v = xcalloc(NP, sizeof(float)), *g = xmallocarray(NP, sizeof(float));
    double rp[NP], rm[NP] = {0}, rv[NP] = {0};
    tu_fill_uniform(p, NP, -1, 1, 2);
    for (int i = 0; i < NP; i++)
        rp[i] = p[i];
    double b1 = o.beta1, b2 = o.beta2, lr = o.lr, wd = o.weight_decay, eps = o.eps;
    for (long t = 1; t <= STEPS; t++) {
        tu_fill_uniform(g, NP, -1, 1, 20 + (unsigned long long)t);
        g[7] = 0.0f; /* a zero gradient: only the decay moves it */
        nn_adamw_step(p, m, v, g, NP, &o, t);
        for (int i = 0; i < NP; i++) {
            rp[i] *= 1.0 - lr * wd;
            rm[i] = b1 * rm[i] + (1 - b1) * (double)g[i];
            rv[i] = b2 * rv[i] + (1 - b2) * (double)g[i] * (double)g[i];
            double bc1 = 1 - pow(b1, (double)t), bc2 = 1 - pow(b2, (double)t);
            rp[i] -= lr / bc1 * rm[i] / (sqrt(rv[i]) / sqrt(bc2) + eps);
        }
        double ep = tu_rel_err_d(p, rp, NP), em = tu_rel_err_d(m, rm, NP),
               ev = tu_rel_err_d(v, rv, NP);
        printf("  adamw step %ld: param %.1e exp_avg %.1e exp_avg_sq %.1e\n", t, ep, em, ev);
        ck_assert_msg(ep < 1e-6 && em < 1e-6 && ev < 1e-6, "adamw step %ld", t);
    }
    /* The first step moves each weight by about lr against its gradient's sign. */
    float q = 0.5f, qm = 0, qv = 0, qg = -3.0f;
    nn_adamw_step(&q, &qm, &qv, &qg, 1, &o, 1);
    ck_assert(fabs((double)q - (0.5 * (1 - 1e-3 * 0.05) + 1e-3)) < 1e-7);
    free(p), free(m), free(v), free(g);
}
END_TEST

START_TEST(schedule)
{
    nn_schedule s = {
        .base_lr = 0.1, .min_lr = 1e-3, .warmup_steps = 10, .total_steps = 110, .cosine = 1};
    ck_assert(fabs(nn_schedule_lr(&s, 0) - 0.01) < 1e-15); /* warm-up start: base/warmup */
    ck_assert(fabs(nn_schedule_lr(&s, 4) - 0.05) < 1e-15);
    ck_assert(fabs(nn_schedule_lr(&s, 9) - 0.1) < 1e-15);     /* warm-up end: base */
    ck_assert(fabs(nn_schedule_lr(&s, 10) - 0.1) < 1e-15);    /* cosine start */
    ck_assert(fabs(nn_schedule_lr(&s, 60) - 0.0505) < 1e-15); /* halfway: the midpoint */
    double near_end = 1e-3 + 0.099 * 0.5 * (1 + cos(3.14159265358979323846 * 99 / 100));
    ck_assert(fabs(nn_schedule_lr(&s, 109) - near_end) < 1e-15);
    ck_assert(fabs(nn_schedule_lr(&s, 110) - 1e-3) < 1e-15);  /* end */
    ck_assert(fabs(nn_schedule_lr(&s, 5000) - 1e-3) < 1e-15); /* the floor */
    /* Monotone decay after the warm-up. */
    for (long t = 10; t < 110; t++)
        ck_assert(nn_schedule_lr(&s, t + 1) <= nn_schedule_lr(&s, t));
    nn_schedule c = {.base_lr = 0.5, .warmup_steps = 4, .total_steps = 100, .cosine = 0};
    ck_assert(fabs(nn_schedule_lr(&c, 1) - 0.25) < 1e-15);
    ck_assert(nn_schedule_lr(&c, 50) == 0.5 && nn_schedule_lr(&c, 500) == 0.5);
    nn_schedule nw = {
        .base_lr = 0.2, .min_lr = 0.0, .warmup_steps = 0, .total_steps = 4, .cosine = 1};
    ck_assert(nn_schedule_lr(&nw, 0) == 0.2);
    ck_assert(fabs(nn_schedule_lr(&nw, 2) - 0.1) < 1e-15);
}
END_TEST

START_TEST(grad_norm_and_clipping)
{
    size_t n = 1000003;
    float *g = xmallocarray(n, sizeof(float)), *g0 = xmallocarray(n, sizeof(float));
    tu_fill_uniform(g, n, -1, 1, 3);
    double ref = sqrt(tu_dot(g, g, n));
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    double n1 = nn_grad_norm(g, n);
    omp_set_num_threads(2);
    double n2 = nn_grad_norm(g, n);
    omp_set_num_threads(saved);
    ck_assert(n1 == n2); /* the same summation order whatever the threads */
    ck_assert(fabs(n1 - ref) < 1e-12 * ref);
    ck_assert(nn_grad_norm(g, 0) == 0.0);
    /* Clipping to a tenth of the norm: returns the old norm, leaves max_norm. */
    memcpy(g0, g, n * sizeof(float));
    double before = nn_clip_grad_norm(g, n, ref / 10);
    ck_assert(before == n1);
    double after = nn_grad_norm(g, n);
    ck_assert_msg(fabs(after - ref / 10) < 1e-6 * ref / 10, "clipped norm %.9g", after);
    for (size_t i = 0; i < n; i += 1009)
        ck_assert(fabs((double)g[i] - (double)g0[i] / 10) < 1e-6);
    /* Below the limit: untouched, bit for bit. */
    memcpy(g, g0, n * sizeof(float));
    ck_assert(nn_clip_grad_norm(g, n, ref * 2) == n1);
    ck_assert_mem_eq(g, g0, n * sizeof(float));
    /* A non-finite norm is returned and the gradients are left for the caller to drop. */
    float bad[3] = {1.0f, INFINITY, 2.0f};
    ck_assert(isinf(nn_clip_grad_norm(bad, 3, 1.0)));
    ck_assert(bad[0] == 1.0f && bad[2] == 2.0f);
    free(g), free(g0);
}
END_TEST

Suite *suite_optim(void)
{
    Suite *s = suite_create("optim");
    tu_case_add(s, "core", 0, NULL, NULL,
                TU_TESTS(sgd_matches_pytorch_formula, adamw_matches_pytorch_formula, schedule,
                         grad_norm_and_clipping));
    return s;
}
