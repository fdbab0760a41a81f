/* bench_conv.c - conv2d throughput at the reference models' shapes.
 *
 * For each layer: forward and backward (dinp + dw) GFLOP/s, counting
 * 2*MACs (backward = 2x forward), next to a plain sgemm of the comparable
 * im2col size (M = B*Ho*Wo, N = OC, K = k*k*IC/groups) timed in the same
 * run (fastest of repeated calls). Per model, the conv-only training time of one batch (each layer
 * times its multiplicity) gives an upper bound on img/s.
 * Usage: OMP_NUM_THREADS=2 bench_conv [batch] [seconds per measurement] [model|all]
 *        [rounds]
 */
#include "common/rng.h"
#include "common/xalloc.h"
#include "worker/nn/conv.h"
#include "worker/nn/gemm.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct layer {
    const char *model;
    char name[64];
    int H, IC, OC, k, s, p, g, n; /* square input side H; n = times in the model */
} layer;

#define MAXL 128
static layer layers[MAXL];
static int nlayers;

static void add(const char *model, const char *name, int H, int IC, int OC, int k, int s, int g,
                int n)
{
    if (nlayers == MAXL)
        return;
    layer *l = &layers[nlayers++];
    l->model = model;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->H = H;
    l->IC = IC;
    l->OC = OC;
    l->k = k;
    l->s = s;
    l->p = k == s ? 0 : k / 2; /* k == s: patchify */
    l->g = g;
    l->n = n;
}

/* MobileNetV2 (CIFAR variant) conv layers for width w, as in the reference models. */
static int mb_c(double v, double w)
{
    int c = (int)(v * w + 4) / 8 * 8;
    return c < 8 ? 8 : c;
}

static void add_mbv2(const char *model, double w)
{
    static const int set[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 1},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    char nm[64];
    int cin = mb_c(32, w), H = 32;
    add(model, "stem 3x3", 32, 3, cin, 3, 1, 1, 1);
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < set[i][2]; j++) {
            int t = set[i][0], cout = mb_c(set[i][1], w), s = j == 0 ? set[i][3] : 1;
            int hid = cin * t;
            if (t != 1) {
                snprintf(nm, sizeof nm, "b%d.%d expand", i, j);
                add(model, nm, H, cin, hid, 1, 1, 1, 1);
            }
            snprintf(nm, sizeof nm, "b%d.%d dw s%d", i, j, s);
            add(model, nm, H, hid, hid, 3, s, hid, 1);
            H = (H + 2 - 3) / s + 1;
            snprintf(nm, sizeof nm, "b%d.%d project", i, j);
            add(model, nm, H, hid, cout, 1, 1, 1, 1);
            cin = cout;
        }
    add(model, "last 1x1", H, cin, w > 1.0 ? mb_c(1280, w) : 1280, 1, 1, 1, 1);
}

static void build_layers(void)
{
    add("resnet20", "stem 3x3", 32, 3, 16, 3, 1, 1, 1);
    add("resnet20", "s1 3x3", 32, 16, 16, 3, 1, 1, 6);
    add("resnet20", "s2 3x3 s2", 32, 16, 32, 3, 2, 1, 1);
    add("resnet20", "s2 1x1 s2 down", 32, 16, 32, 1, 2, 1, 1);
    add("resnet20", "s2 3x3", 16, 32, 32, 3, 1, 1, 5);
    add("resnet20", "s3 3x3 s2", 16, 32, 64, 3, 2, 1, 1);
    add("resnet20", "s3 1x1 s2 down", 16, 32, 64, 1, 2, 1, 1);
    add("resnet20", "s3 3x3", 8, 64, 64, 3, 1, 1, 5);
    add_mbv2("mbv2-w0.5", 0.5);
    add_mbv2("mbv2-w1.0", 1.0);
    add("ceit-mini", "stem 3x3", 28, 1, 32, 3, 1, 1, 1);
    add("ceit-mini", "patchify k2", 14, 32, 96, 2, 2, 1, 1);
    add("ceit-mini", "leff 1x1 up", 7, 96, 384, 1, 1, 1, 6);
    add("ceit-mini", "leff dw 3x3", 7, 384, 384, 3, 1, 384, 6);
    add("ceit-mini", "leff 1x1 down", 7, 384, 96, 1, 1, 1, 6);
}

static void fill(float *a, size_t n, uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        a[i] = rng_uniform(&r) - 0.5f;
}

/* What one timed call runs. */
typedef struct op_ctx {
    int kind; /* 0 forward, 1 backward, 2 plain sgemm */
    const nn_conv2d_dims *d;
    float *x, *dx, *y, *dy, *w, *dw, *b, *scratch;
    int M, N, K;
    float *A, *Wm, *C;
} op_ctx;

static void run_op(const op_ctx *o)
{
    if (o->kind == 0)
        nn_conv2d_forward(o->y, o->x, o->w, o->b, o->d, o->scratch);
    else if (o->kind == 1)
        nn_conv2d_backward(o->dx, o->dw, NULL, o->dy, o->x, o->w, o->d, o->scratch);
    else
        nn_gemm(0, 1, o->M, o->N, o->K, 1.0f, o->A, o->K, o->Wm, o->K, 0.0f, o->C, o->N);
}

/* Seconds of the fastest call among repeats filling `budget` seconds, after a
 * warm-up: the minimum filters out preemption on a shared machine. */
static double time_op(op_ctx *o, int kind, double budget)
{
    o->kind = kind;
    run_op(o);
    int reps = 0;
    double t0 = omp_get_wtime(), best = 1e30, el;
    do {
        double t1 = omp_get_wtime();
        run_op(o);
        double t = omp_get_wtime() - t1;
        best = t < best ? t : best;
        reps++;
        el = omp_get_wtime() - t0;
    } while (el < budget || reps < 3);
    return best;
}

/* Fastest forward, backward and comparable-sgemm seconds of layer l. */
static void measure(const layer *l, int B, double budget, double t[3])
{
    nn_conv2d_dims d;
    nn_conv2d_dims_init(&d, B, l->H, l->H, l->IC, l->OC, l->k, l->s, l->p, l->g);
    size_t nin = (size_t)B * l->H * l->H * l->IC, nout = (size_t)B * d.Ho * d.Wo * l->OC;
    size_t nw = (size_t)l->OC * (l->IC / l->g) * l->k * l->k;
    size_t ns = nn_conv2d_scratch_floats(&d);
    float *x = xaligned(nin * sizeof(float)), *dx = xaligned(nin * sizeof(float));
    float *y = xaligned(nout * sizeof(float)), *dy = xaligned(nout * sizeof(float));
    float *w = xaligned(nw * sizeof(float)), *dw = xaligned(nw * sizeof(float));
    float *b = xaligned((size_t)l->OC * sizeof(float));
    float *scratch = xaligned((ns ? ns : 1) * sizeof(float));
    fill(x, nin, 1);
    fill(dy, nout, 2);
    fill(w, nw, 3);
    fill(b, (size_t)l->OC, 4);
    memset(dx, 0, nin * sizeof(float));
    memset(dw, 0, nw * sizeof(float));
    op_ctx o = {0, &d, x, dx, y, dy, w, dw, b, scratch, 0, 0, 0, NULL, NULL, NULL};
    t[0] = time_op(&o, 0, budget);
    t[1] = time_op(&o, 1, budget);
    /* the comparable plain GEMM: (rows, K) x (K, OC) */
    int M = B * d.Ho * d.Wo, N = l->OC, K = l->k * l->k * (l->IC / l->g);
    o.M = M;
    o.N = N;
    o.K = K;
    o.A = xaligned((size_t)M * K * sizeof(float));
    o.Wm = xaligned((size_t)N * K * sizeof(float));
    o.C = xaligned((size_t)M * N * sizeof(float));
    fill(o.A, (size_t)M * K, 5);
    fill(o.Wm, (size_t)N * K, 6);
    t[2] = time_op(&o, 2, budget);
    free(o.A);
    free(o.Wm);
    free(o.C);
    free(x);
    free(dx);
    free(y);
    free(dy);
    free(w);
    free(dw);
    free(b);
    free(scratch);
}

int main(int argc, char **argv)
{
    int B = argc > 1 ? atoi(argv[1]) : 64;
    double budget = argc > 2 ? atof(argv[2]) : 0.25;
    const char *only = argc > 3 && strcmp(argv[3], "all") != 0 ? argv[3] : NULL;
    int rounds = argc > 4 ? atoi(argv[4]) : 3;
    build_layers();
    if (only != NULL) {
        int k = 0;
        for (int i = 0; i < nlayers; i++)
            if (strcmp(layers[i].model, only) == 0)
                layers[k++] = layers[i];
        nlayers = k;
    }
    /* Several rounds over the whole list, keeping each layer's fastest: on a
     * shared machine a busy spell then spoils one round, not the table. */
    static double best[MAXL][3];
    for (int li = 0; li < nlayers; li++)
        best[li][0] = best[li][1] = best[li][2] = 1e30;
    for (int r = 0; r < (rounds < 1 ? 1 : rounds); r++)
        for (int li = 0; li < nlayers; li++) {
            double t[3];
            measure(&layers[li], B, budget, t);
            for (int k = 0; k < 3; k++)
                best[li][k] = t[k] < best[li][k] ? t[k] : best[li][k];
        }
    printf(
        "conv2d, batch %d, %d threads, best of %d rounds (GFLOP/s = 2*MACs/s; bwd = dinp + dw)\n",
        B, nn_get_threads(), rounds);
    printf("%-10s %-16s %-26s %3s %8s %8s %8s %9s %9s\n", "model", "layer", "shape", "n", "fwd",
           "bwd", "sgemm", "fwd ms", "bwd ms");
    const char *cur = NULL;
    double model_s = 0, model_gf = 0;
    for (int li = 0; li <= nlayers; li++) {
        if (li == nlayers || (cur != NULL && strcmp(cur, layers[li].model) != 0)) {
            if (cur != NULL)
                printf(
                    "%-10s conv-only train step %.1f ms (%.1f GFLOP/s) -> at most %.0f img/s\n\n",
                    cur, model_s * 1e3, model_gf / model_s * 1e-9, B / model_s);
            model_s = model_gf = 0;
            if (li == nlayers)
                break;
        }
        const layer *l = &layers[li];
        cur = l->model;
        int Ho = (l->H + 2 * l->p - l->k) / l->s + 1;
        double flops = 2.0 * B * Ho * Ho * (double)l->OC * (l->IC / l->g) * l->k * l->k;
        double K = (double)l->k * l->k * (l->IC / l->g);
        double tf = best[li][0], tb = best[li][1], tg = best[li][2];
        char shape[64];
        snprintf(shape, sizeof shape, "%dx%d %d->%d k%d s%d%s", l->H, l->H, l->IC, l->OC, l->k,
                 l->s, l->g > 1 ? " dw" : "");
        printf("%-10s %-16s %-26s %3d %8.1f %8.1f %8.1f %9.3f %9.3f\n", l->model, l->name, shape,
               l->n, flops / tf * 1e-9, 2 * flops / tb * 1e-9,
               2.0 * B * Ho * Ho * (double)l->OC * K / tg * 1e-9, tf * 1e3, tb * 1e3);
        model_s += l->n * (tf + tb);
        model_gf += l->n * 3 * flops;
    }
    return 0;
}
