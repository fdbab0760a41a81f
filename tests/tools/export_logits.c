/* export_logits.c - kiln's eval logits on seeded inputs, for the export tests.
 *
 *   export_logits --weights FILE [--model CFG] [--n N] [--seed S] > OUT.json
 *
 * Builds the network of FILE as `kiln-worker export` does (netload.h), runs
 * kiln's eval-mode forward pass on N images of standard-normal pixels drawn
 * from seed S, and prints {"shape": [N, C, H, W], "input": [...NCHW...],
 * "classes": K, "logits": [...N*K...]}, every float to 9 significant digits
 * (exact for float32). tests/export/check_onnx.mjs and check_torch.py feed the
 * same inputs to onnxruntime and PyTorch and compare. Exit 0, or 2 with a
 * message on bad input.
 */
#include "common/rng.h"
#include "common/xalloc.h"
#include "worker/models/netload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_floats(const float *v, size_t n)
{
    putchar('[');
    for (size_t i = 0; i < n; i++)
        printf("%s%.9g", i ? "," : "", (double)v[i]);
    putchar(']');
}

int main(int argc, char **argv)
{
    const char *weights = NULL, *model = NULL;
    int n = 4;
    unsigned long long seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--weights") == 0)
            weights = argv[i + 1];
        else if (strcmp(argv[i], "--model") == 0)
            model = argv[i + 1];
        else if (strcmp(argv[i], "--n") == 0)
            n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0)
            seed = strtoull(argv[i + 1], NULL, 10);
        else
            weights = NULL, i = argc;
    }
    if (weights == NULL || n < 1 || argc % 2 == 0) {
        fprintf(stderr, "usage: export_logits --weights FILE [--model CFG] [--n N] [--seed S]\n");
        return 2;
    }
    net m;
    net_init(&m);
    errbuf eb = {{0}};
    if (netload_for_eval(&m, weights, model, n, NULL, NULL, &eb) != 0) {
        fprintf(stderr, "export_logits: %s\n", eb.msg);
        net_deinit(&m);
        return 2;
    }
    const net_act *in = &m.acts[m.input];
    int H = in->H, W = in->W, C = in->C;
    size_t per = (size_t)H * W * C;
    float *nchw = xmallocarray((size_t)n * per, sizeof(float));
    float *nhwc = xmallocarray((size_t)n * per, sizeof(float));
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)n * per; i++)
        nchw[i] = rng_normal(&r);
    for (int b = 0; b < n; b++) /* kiln's activations are channels-last */
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    nhwc[b * per + ((size_t)y * W + x) * C + c] =
                        nchw[b * per + ((size_t)c * H + y) * W + x];
    net_forward(&m, nhwc, n);
    int K = (int)net_out_size(&m);
    printf("{\"shape\":[%d,%d,%d,%d],\"input\":", n, C, H, W);
    print_floats(nchw, (size_t)n * per);
    printf(",\"classes\":%d,\"logits\":", K);
    print_floats(net_out(&m), (size_t)n * K);
    printf("}\n");
    free(nhwc);
    free(nchw);
    net_deinit(&m);
    return 0;
}
