/* bench_imgloader.c - images/s of the file loader alone (decode + transforms).
 *
 * Usage: bench_imgloader FOLDER [SIZE [WORKERS [BATCHES [RECIPE]]]]
 *   FOLDER   an ImageFolder with train/ and val/ (bench/loader.sh makes one)
 *   SIZE     output side (default 224)
 *   WORKERS  decoding threads (default 2)
 *   BATCHES  batches of 64 to time after 2 warm-up batches (default 40)
 *   RECIPE   deit (RandomResizedCrop bicubic, flip, RandAugment(2, 9),
 *            random erasing 0.25; the default), plain (crop + flip), or
 *            read (only read every file's bytes, as the loader does, in
 *            index order: what a packed shard format could save at most)
 * Prints one JSON line: {"images_per_s":..., ...}. Nothing is trained.
 */
#include "common/xalloc.h"
#include "worker/data/dataset.h"
#include "worker/data/imgdecode.h"
#include "worker/data/loader.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FOLDER [SIZE [WORKERS [BATCHES [deit|plain]]]]\n", argv[0]);
        return 2;
    }
    int size = argc > 2 ? atoi(argv[2]) : 224, workers = argc > 3 ? atoi(argv[3]) : 2;
    long batches = argc > 4 ? atol(argv[4]) : 40;
    int deit = argc > 5 ? strcmp(argv[5], "plain") != 0 : 1;
    int read_only = argc > 5 && strcmp(argv[5], "read") == 0;
    const int B = 64;
    char text[2048];
    snprintf(text, sizeof text,
             "{\"model\":{\"arch\":\"resnet_cifar\",\"depth\":8,\"num_classes\":10},"
             "\"data\":{\"dataset\":\"folder\",\"root\":\"%s\",\"image\":{\"size\":%d,"
             "\"workers\":%d}},\"optim\":{\"recipe\":\"%s\",\"batch_size\":%d}}",
             argv[1], size, workers, deit ? "deit" : "none", B);
    json_error_t je;
    json_t *in = json_loads(text, 0, &je);
    job_spec spec;
    field_errors fe;
    if (jobspec_parse(&spec, NULL, in, &fe) != 0) {
        char buf[1024];
        fe_format(&fe, buf, sizeof buf);
        fprintf(stderr, "bench_imgloader: %s\n", buf);
        return 1;
    }
    dataset tr, te;
    errbuf eb = {""};
    if (dataset_load(&tr, &te, &spec.data, &eb) != 0) {
        fprintf(stderr, "bench_imgloader: %s\n", eb.msg);
        return 1;
    }
    if (read_only) {
        uint8_t *buf = NULL;
        size_t cap = 0, len, bytes = 0;
        double r0 = now();
        for (int i = 0; i < tr.n; i++) {
            char p[4096];
            if (imgindex_path(tr.files, i, p, sizeof p) != 0 ||
                imgdecode_read_file(p, &buf, &cap, &len, &eb) != 0)
                return 1;
            bytes += len;
        }
        double s = now() - r0;
        printf("{\"bench\":\"imgloader\",\"recipe\":\"read\",\"files\":%d,\"bytes\":%zu,"
               "\"seconds\":%.3f,\"images_per_s\":%.1f}\n",
               tr.n, bytes, s, tr.n / s);
        free(buf);
        return 0;
    }
    loader_opts o = {.batch = B, .rank = 0, .world = 1, .seed = 1, .train = 1};
    loader *l = loader_new(&tr, &o);
    float *x = xmallocarray((size_t)B * size * size * 3, sizeof(float));
    int32_t *y = xmallocarray(B, sizeof(int32_t));
    long per_epoch = loader_batches_per_epoch(l), done = 0;
    int epoch = 0;
    double t0 = 0;
    loader_start_epoch(l, epoch, 0);
    for (long k = 0; k < batches + 2; k++) {
        if (k == 2)
            t0 = now();
        int n = loader_next(l, x, y);
        if (n == 0 || done == per_epoch) {
            loader_start_epoch(l, ++epoch, 0);
            done = 0;
            n = loader_next(l, x, y);
        }
        done++;
        if (n <= 0) {
            fprintf(stderr, "bench_imgloader: %s\n", loader_error(l));
            return 1;
        }
    }
    double s = now() - t0;
    printf("{\"bench\":\"imgloader\",\"recipe\":\"%s\",\"size\":%d,\"workers\":%d,\"files\":%d,"
           "\"images\":%ld,\"seconds\":%.3f,\"images_per_s\":%.1f}\n",
           deit ? "deit" : "plain", size, workers, tr.n, batches * B, s, (double)batches * B / s);
    loader_free(l);
    free(x);
    free(y);
    dataset_free(&tr);
    dataset_free(&te);
    json_decref(in);
    jobspec_free(&spec);
    return 0;
}
