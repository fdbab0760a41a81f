/* bench_bandfit.c - time and outcome of the band fit on the benchmark networks' spaces.
 *
 * For ResNet-20 and MobileNetV2 (x0.5, x1.0) on 32x32 inputs, in the DMCP
 * space (widths) and the DNA window space (widths and depths): random
 * wanted architectures (seeds 1..N) fitted at targets spread over each
 * space's reachable MACs. Prints per space the fits in the band, the
 * worst band error |MACs/T - 1| in %, the median and largest time per fit
 * and combinations tried, and the mean distance from the wanted network.
 * Usage: bench_bandfit [seeds (default 10)]
 */
#include "common/adaptspace.h"
#include "common/bandfit.h"
#include "common/modelcfg.h"
#include "common/prunespace.h"
#include "common/rng.h"
#include "common/xalloc.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const MODELS[3][2] = {
    {"resnet20", "{\"arch\":\"resnet_cifar\",\"image_size\":32,\"in_channels\":3,"
                 "\"num_classes\":10,\"depth\":20,\"widths\":[16,32,64]}"},
    {"mbv2-0.5", "{\"arch\":\"mobilenetv2\",\"image_size\":32,\"in_channels\":3,"
                 "\"num_classes\":10,\"width_mult\":0.5}"},
    {"mbv2-1.0", "{\"arch\":\"mobilenetv2\",\"image_size\":32,\"in_channels\":3,"
                 "\"num_classes\":10,\"width_mult\":1.0}"}};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void run_space(const char *name, const char *text, int dna, int seeds)
{
    model_cfg c;
    json_t *j = json_loads(text, 0, NULL);
    field_errors fe;
    fe_init(&fe);
    if (j == NULL || modelcfg_parse(&c, j, "model", &fe) != 0) {
        fprintf(stderr, "%s: bad model\n", name);
        exit(1);
    }
    json_decref(j);
    adapt_space as;
    memset(&as, 0, sizeof as);
    errbuf eb;
    const prunespace_width pw = {0.1, 1.0, 0.1};
    const adaptspace_window aw = {0.25, 1.5, 0.1};
    int rc = dna ? adaptspace_init(&as, &c, &aw, &eb) : prune_space_init(&as.sp, &c, &pw, &eb);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", name, eb.msg);
        exit(1);
    }
    int nu = as.sp.n_units, ns = dna ? as.n_stages : 0;
    double *want = xcalloc((size_t)nu, sizeof(double)), want_d[ADAPTSPACE_MAX_STAGES] = {0};
    int *w = xcalloc((size_t)nu, sizeof(int)), *w0 = xcalloc((size_t)nu, sizeof(int));
    int d[ADAPTSPACE_MAX_STAGES], d0[ADAPTSPACE_MAX_STAGES], ones[ADAPTSPACE_MAX_STAGES];
    for (int s = 0; s < ADAPTSPACE_MAX_STAGES; s++)
        ones[s] = 1;
    bandfit_spec f = {.sp = &as.sp, .want = want};
    if (dna) {
        f.n_stages = ns;
        f.first = as.first;
        f.depth_max = as.depth;
        f.want_depth = want_d;
    }
    const double at[6] = {0.02, 0.15, 0.35, 0.55, 0.75, 0.97};
    int n = 0, in_band = 0;
    double *secs = xcalloc((size_t)seeds * 6, sizeof(double)), worst = 0, dist = 0;
    long max_combos = 0;
    for (int seed = 1; seed <= seeds; seed++) {
        rng r;
        rng_seed(&r, (uint64_t)seed * 7919u);
        for (int u = 0; u < nu; u++) {
            const prunespace_unit *x = &as.sp.units[u];
            want[u] = x->c_min + (x->channels - x->c_min) * (double)rng_uniform(&r);
            w0[u] = (int)lround(want[u]);
        }
        prunespace_fix_structure(&as.sp, w0, 0);
        for (int s = 0; s < ns; s++) {
            want_d[s] = 1 + (as.depth[s] - 1) * (double)rng_uniform(&r);
            d0[s] = (int)lround(want_d[s]);
        }
        prunespace_min_widths(&as.sp, w);
        double lo = dna ? adaptspace_macs(&as, w, ones) : prunespace_macs(&as.sp, w);
        prunespace_full_widths(&as.sp, w);
        double hi = dna ? adaptspace_macs(&as, w, NULL) : prunespace_macs(&as.sp, w);
        for (int t = 0; t < 6; t++) {
            double target = lo + at[t] * (hi - lo);
            f.lo = 0.99 * target;
            f.hi = 1.01 * target;
            memcpy(w, w0, (size_t)nu * sizeof(int));
            memcpy(d, d0, sizeof d);
            bandfit_result res;
            double t0 = now();
            rc = bandfit_run(&f, w, d, &res);
            secs[n++] = now() - t0;
            model_cfg found;
            if (dna)
                adaptspace_cfg(&as, w, d, &found);
            else
                prunespace_widths_to_cfg(&as.sp, w, &found);
            double m = modelcfg_macs(&found), err = fabs(m / target - 1);
            in_band += rc == 0 && m >= f.lo && m <= f.hi;
            worst = err > worst ? err : worst;
            dist += res.cost;
            max_combos = res.combos > max_combos ? res.combos : max_combos;
        }
    }
    qsort(secs, (size_t)n, sizeof(double), cmp_double);
    printf("%-9s %-5s %3d/%3d in band  worst %.4f %%  time median %.2f ms, max %.2f ms  "
           "combinations <= %ld  mean distance %.2f\n",
           name, dna ? "dna" : "dmcp", in_band, n, 100 * worst, 1e3 * secs[n / 2],
           1e3 * secs[n - 1], max_combos, dist / n);
    free(secs);
    free(want);
    free(w);
    free(w0);
    if (dna)
        adaptspace_deinit(&as);
    else
        prune_space_deinit(&as.sp);
}

int main(int argc, char **argv)
{
    int seeds = argc > 1 ? atoi(argv[1]) : 10;
    if (seeds < 1)
        seeds = 1;
    printf("band fit: %d seeds x 6 targets per space, band +-1 %%\n", seeds);
    for (int m = 0; m < 3; m++)
        for (int dna = 0; dna <= 1; dna++)
            run_space(MODELS[m][0], MODELS[m][1], dna, seeds);
    return 0;
}
