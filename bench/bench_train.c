/* bench_train.c - training and inference throughput of kiln's engine.
 *
 * For each model: build it, run warm-up steps then timed steps of forward,
 * cross-entropy, backward and an optimizer step (AdamW for ViTs, SGD for
 * CNNs) at batch B on random data, then timed eval-mode forwards; print
 * images/s of both and the training GFLOP/s (2 x 3 x forward MACs per image:
 * the backward is two products per forward one), and training images per CPU
 * second (all threads' time: with one thread, a figure that holds on a loaded
 * machine). bench/torch_train.py runs
 * the same models in PyTorch; bench/train.sh prints both and the ratio.
 *
 *   bench_train [--batch 64] [--seconds 8] [--warmup 3] [--peak] [--list] [MODEL...]
 *
 * --peak first prints the engine line (kernel path, BLAS core) and
 * cblas_sgemm's GFLOP/s at a large square size, the ceiling the layers are
 * held against. Threads: OMP_NUM_THREADS (default: all cores).
 */
#include "common/modelcfg.h"
#include "common/rng.h"
#include "common/xalloc.h"
#include "worker/models/model.h"
#include "worker/nn/gemm.h"
#include "worker/nn/loss.h"
#include "worker/nn/optim.h"
#include "worker/nn/startup.h"

#include <cblas.h>
#include <getopt.h>
#include <jansson.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench_model {
    const char *name;
    const char *config;
    int adamw;
} bench_model;

/* The models of the accuracy anchors (shared/reference/torch/train_anchor.py)
 * and of bench_torch.py, as model configs. */
static const bench_model MODELS[] = {
    {"ceit-mini-fmnist",
     "{\"arch\":\"ceit\",\"image_size\":28,\"in_channels\":1,\"num_classes\":10,\"embed_dim\":96,"
     "\"depth\":6,\"num_heads\":3,\"patch_size\":2,\"stem\":{\"type\":\"i2t\",\"channels\":32},"
     "\"ffn\":{\"type\":\"leff\"},\"head\":\"lca\"}",
     1},
    {"deit-mini-fmnist",
     "{\"arch\":\"deit\",\"image_size\":28,\"in_channels\":1,\"num_classes\":10,\"embed_dim\":96,"
     "\"depth\":6,\"num_heads\":3,\"patch_size\":4,\"stem\":{\"type\":\"patchify\"},"
     "\"ffn\":{\"type\":\"mlp\"},\"head\":\"cls\"}",
     1},
    {"resnet20-cifar",
     "{\"arch\":\"resnet_cifar\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"
     "\"depth\":20,\"widths\":[16,32,64]}",
     0},
    {"mobilenetv2-w050-cifar",
     "{\"arch\":\"mobilenetv2\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"
     "\"width_mult\":0.5,\"cifar\":true}",
     0},
    /* The tiny (d192, depth 12) transformers at CIFAR size, and the larger CNNs. */
    {"ceit-tiny-cifar",
     "{\"arch\":\"ceit\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,\"embed_dim\":192,"
     "\"depth\":12,\"num_heads\":3,\"patch_size\":2,\"stem\":{\"type\":\"i2t\",\"channels\":32},"
     "\"ffn\":{\"type\":\"leff\"},\"head\":\"lca\"}",
     1},
    {"deit-tiny-cifar",
     "{\"arch\":\"deit\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,\"embed_dim\":192,"
     "\"depth\":12,\"num_heads\":3,\"patch_size\":4,\"stem\":{\"type\":\"patchify\"},"
     "\"ffn\":{\"type\":\"mlp\"},\"head\":\"cls\"}",
     1},
    {"resnet56-cifar",
     "{\"arch\":\"resnet_cifar\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"
     "\"depth\":56,\"widths\":[16,32,64]}",
     0},
    {"mobilenetv2-w100-cifar",
     "{\"arch\":\"mobilenetv2\",\"image_size\":32,\"in_channels\":3,\"num_classes\":10,"
     "\"width_mult\":1.0,\"cifar\":true}",
     0},
    /* ImageNet size (issue 16): torchvision's ResNet-18/50 and CeiT-T, 1000 classes. */
    {"resnet18-224",
     "{\"arch\":\"resnet\",\"image_size\":224,\"in_channels\":3,\"num_classes\":1000,"
     "\"depth\":18}",
     0},
    {"resnet50-224",
     "{\"arch\":\"resnet\",\"image_size\":224,\"in_channels\":3,\"num_classes\":1000,"
     "\"depth\":50}",
     0},
    {"ceit-t-224",
     "{\"arch\":\"ceit\",\"image_size\":224,\"in_channels\":3,\"num_classes\":1000,"
     "\"embed_dim\":192,\"depth\":12,\"num_heads\":3,\"patch_size\":4,"
     "\"stem\":{\"type\":\"i2t\",\"channels\":64,\"kernel\":7,\"stride\":2},"
     "\"ffn\":{\"type\":\"leff\"},\"head\":\"lca\"}",
     1},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of this process (all threads): with one thread, a speed measure that
 * holds on a loaded machine, where the wall clock also counts other programs' time. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int run_model(const bench_model *bm, int B, double seconds, int warmup)
{
    json_error_t jerr;
    json_t *j = json_loads(bm->config, 0, &jerr);
    model_cfg c;
    field_errors fe;
    fe_init(&fe);
    if (j == NULL || modelcfg_parse(&c, j, "model", &fe) != 0) {
        fprintf(stderr, "bench_train: bad config for %s\n", bm->name);
        json_decref(j);
        return 1;
    }
    json_decref(j);
    net m;
    net_init(&m);
    errbuf eb;
    if (model_build(&m, &c, B, 0, NULL, &eb) != 0) {
        fprintf(stderr, "bench_train: %s: %s\n", bm->name, eb.msg);
        return 1;
    }
    int K = c.num_classes;
    size_t px = (size_t)c.image_size * c.image_size * c.in_channels;
    float *x = xmallocarray((size_t)B * px, sizeof(float));
    int32_t *y = xmallocarray((size_t)B, sizeof(int32_t));
    float *probs = xmallocarray((size_t)B * K, sizeof(float));
    float *dlogits = xmallocarray((size_t)B * K, sizeof(float));
    rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)B * px; i++)
        x[i] = rng_normal(&r);
    for (int i = 0; i < B; i++)
        y[i] = (int32_t)rng_below(&r, (uint32_t)K);
    nn_adamw_params ap = {1e-4f, 0.9f, 0.999f, 1e-8f, 0.05f};
    nn_sgd_params sp = {0.01f, 0.9f, 0.0f, 5e-4f, 0};
    long steps = 0;
    double t0 = 0, c0 = 0;
    for (int warm = warmup;; warm--) {
        if (warm == 0) {
            t0 = now_s();
            c0 = cpu_s();
        }
        net_zero_grad(&m);
        net_forward(&m, x, B);
        nn_crossentropy_forward(probs, NULL, net_out(&m), y, B, K, 0.0f);
        memset(dlogits, 0, (size_t)B * K * sizeof(float));
        nn_crossentropy_backward(dlogits, probs, y, B, K, 0.0f, 1.0f);
        net_backward(&m, dlogits);
        if (bm->adamw)
            nn_adamw_step(m.params, m.opt_m, m.opt_v, m.grads, m.n_params, &ap, steps + 1);
        else
            nn_sgd_step(m.params, m.opt_m, m.grads, m.n_params, &sp, steps == 0);
        if (warm <= 0) {
            steps++;
            if (now_s() - t0 >= seconds && steps >= 3)
                break;
        }
    }
    double dt = (now_s() - t0) / (double)steps, dc = (cpu_s() - c0) / (double)steps;
    /* inference: eval-mode forwards */
    net_set_training(&m, 0);
    long fw = 0;
    double t1 = now_s();
    while (now_s() - t1 < seconds / 2 || fw < 3) {
        net_forward(&m, x, B);
        fw++;
    }
    double di = (now_s() - t1) / (double)fw;
    net_set_training(&m, 1);
    double macs = net_macs(&m);
    printf("%-24s params=%6.2fM  MACs=%6.1fM  train %8.1f img/s  infer %8.1f img/s  "
           "train %6.1f GFLOP/s  cpu %8.1f img/s  (%ld steps, batch %d, %d threads)\n",
           bm->name, (double)m.n_params / 1e6, macs / 1e6, B / dt, B / di,
           6.0 * macs * B / dt / 1e9, B / dc, steps, B, nn_get_threads());
    if (m.profile)
        net_profile_print(&m, stdout);
    fflush(stdout);
    free(x);
    free(y);
    free(probs);
    free(dlogits);
    net_deinit(&m);
    return 0;
}

/* cblas_sgemm's GFLOP/s on an n x n x n product, best of a few timed rounds. */
static double sgemm_peak(int n)
{
    size_t sz = (size_t)n * n;
    float *a = xmallocarray(sz, sizeof(float)), *b = xmallocarray(sz, sizeof(float));
    float *c = xmallocarray(sz, sizeof(float));
    for (size_t i = 0; i < sz; i++)
        a[i] = (float)(i % 13) * 0.1f, b[i] = (float)(i % 7) * 0.1f;
    double best = 0;
    for (int round = 0; round < 5; round++) {
        int reps = 0;
        double t0 = now_s(), t;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                        c, n);
            reps++;
            t = now_s();
        } while (t - t0 < 0.2);
        double g = 2.0 * (double)n * n * n * reps / (t - t0) / 1e9;
        best = g > best ? g : best;
    }
    free(a), free(b), free(c);
    return best;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"batch", required_argument, NULL, 'b'},  {"seconds", required_argument, NULL, 's'},
        {"peak", no_argument, NULL, 'p'},         {"list", no_argument, NULL, 'l'},
        {"warmup", required_argument, NULL, 'w'}, {NULL, 0, NULL, 0}};
    int B = 64, c, peak = 0, warmup = 3;
    double seconds = 8;
    while ((c = getopt_long(argc, argv, "b:s:plw:", opts, NULL)) != -1) {
        if (c == 'b')
            B = atoi(optarg);
        else if (c == 'w')
            warmup = atoi(optarg) > 0 ? atoi(optarg) : 1;
        else if (c == 's')
            seconds = atof(optarg);
        else if (c == 'p')
            peak = 1;
        else if (c == 'l') {
            for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
                printf("%s\n", MODELS[i].name);
            return 0;
        } else
            return 2;
    }
    const char *env = getenv("OMP_NUM_THREADS");
    nn_set_threads(env ? atoi(env) : omp_get_num_procs());
    if (peak) {
        printf("engine: %s\n", nn_startup_summary());
        printf("sgemm peak: %.1f GFLOP/s (1024^3, %d threads)\n", sgemm_peak(1024),
               nn_get_threads());
        fflush(stdout);
    }
    int rc = 0, n = (int)(sizeof MODELS / sizeof MODELS[0]);
    for (int i = 0; i < n; i++) {
        int wanted = optind == argc;
        for (int k = optind; k < argc; k++)
            wanted |= strcmp(argv[k], MODELS[i].name) == 0;
        if (wanted)
            rc |= run_model(&MODELS[i], B, seconds, warmup);
    }
    return rc;
}
