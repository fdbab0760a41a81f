/* check_imgdata.c - image folders, manifests, the streaming loader, Mixup/CutMix.
 *
 * Folder order is checked against torchvision's ImageFolder on the same tree;
 * the loader over files against itself across worker counts, prefetch depths
 * and rank counts (the per-sample determinism), against a direct
 * decode + transform of the same file (eval), and with bad files under both
 * policies. Mixup and CutMix against their definitions.
 */
#include "common/rng.h"
#include "common/xalloc.h"
#include "tests/unit/imgwrite.h"
#include "tests/unit/testutil.h"
#include "worker/data/dataset.h"
#include "worker/data/imgdecode.h"
#include "worker/data/loader.h"
#include "worker/data/mix.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

Suite *suite_imgdata(void);

static void mk(const char *dir, const char *sub)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    ck_assert_int_eq(mkdir(p, 0755), 0);
}

static void touch_img(const char *dir, const char *rel, int seed, int h, int w)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    const char *dot = strrchr(rel, '.');
    int rc = dot && (strcmp(dot, ".png") == 0 || strcmp(dot, ".PNG") == 0)
                 ? iw_png(p, h, w, 2, 8, 0, seed)
                 : iw_jpeg(p, h, w, 3, seed & 1, 1, seed);
    ck_assert_int_eq(rc, 0);
}

/* root/{b,a,c (nested)}/..., odd sizes, mixed extensions, one non-image. */
static void make_tree(const char *root)
{
    mk(root, "b");
    mk(root, "a");
    mk(root, "c");
    mk(root, "c/z");
    mk(root, "c/y");
    touch_img(root, "b/2.jpg", 1, 40, 33);
    touch_img(root, "b/10.JPG", 2, 29, 51);
    touch_img(root, "a/x.png", 3, 37, 37);
    touch_img(root, "a/w.jpeg", 4, 64, 48);
    touch_img(root, "c/z/k.jpg", 5, 31, 45);
    touch_img(root, "c/y/k.jpg", 6, 45, 31);
    touch_img(root, "c/m.PNG", 7, 50, 50);
    char p[600];
    snprintf(p, sizeof p, "%s/a/notes.txt", root);
    FILE *f = fopen(p, "w");
    fputs("not an image\n", f);
    fclose(f);
}

START_TEST(test_folder_order_is_imagefolder)
{
    ck_assert_msg(iw_have_torchvision(), "/usr/bin/python3 with torchvision is needed (make deps)");
    char *dir = iw_tempdir("ixf");
    make_tree(dir);
    imgindex ix;
    errbuf eb = {""};
    ck_assert_msg(imgindex_scan(&ix, dir, 0.0, 0, &eb) == 0, "%s", eb.msg);
    char cmd[1200], out[700];
    snprintf(out, sizeof out, "%s.order", dir);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import sys, os; from torchvision.datasets import ImageFolder; "
             "d = ImageFolder(sys.argv[1]); "
             "print('\\n'.join('%%s %%d' %% (os.path.relpath(p, sys.argv[1]), y) for p, y in "
             "d.samples))\" %s > %s",
             dir, out);
    ck_assert_int_eq(system(cmd), 0);
    FILE *f = fopen(out, "r");
    ck_assert_ptr_nonnull(f);
    char line[600];
    int i = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char want[600];
        snprintf(want, sizeof want, "%s/%s %d\n", ix.class_names[ix.labels[i]],
                 imgindex_name(&ix, i), ix.labels[i]);
        /* our names are relative to the class folder's root: prefix the class */
        char ours[700];
        snprintf(ours, sizeof ours, "%s %d\n", imgindex_name(&ix, i), ix.labels[i]);
        ck_assert_msg(i < ix.n, "torchvision lists more files than %d", ix.n);
        ck_assert_msg(strcmp(line, ours) == 0, "file %d: torchvision %s, kiln %s", i, line, ours);
        (void)want;
        i++;
    }
    fclose(f);
    ck_assert_int_eq(i, ix.n);
    ck_assert_int_eq(ix.n, 7);
    ck_assert_int_eq(ix.num_classes, 3);
    ck_assert_str_eq(ix.class_names[0], "a");
    /* The fingerprint is a function of names, sizes and labels. */
    imgindex again;
    ck_assert_int_eq(imgindex_scan(&again, dir, 0.0, 0, &eb), 0);
    ck_assert(again.hash == ix.hash && again.total_bytes == ix.total_bytes);
    imgindex_free(&again);
    touch_img(dir, "b/2.jpg", 9, 41, 33); /* a changed file */
    ck_assert_int_eq(imgindex_scan(&again, dir, 0.0, 0, &eb), 0);
    ck_assert(again.hash != ix.hash);
    imgindex_free(&again);

    /* The held-out fraction: disjoint, covering, the same on every scan. */
    imgindex tr, te;
    ck_assert_int_eq(imgindex_scan(&tr, dir, 0.4, 1, &eb), 0);
    ck_assert_int_eq(imgindex_scan(&te, dir, 0.4, 2, &eb), 0);
    ck_assert_int_eq(tr.n + te.n, ix.n);
    for (int a = 0; a < tr.n; a++)
        for (int b = 0; b < te.n; b++)
            ck_assert_str_ne(imgindex_name(&tr, a), imgindex_name(&te, b));
    imgindex_free(&tr);
    imgindex_free(&te);
    imgindex_free(&ix);
    remove(out);
    ck_assert_int_eq(imgindex_scan(&ix, "/nonexistent/kiln", 0.0, 0, &eb), ERR_IO);
    ck_assert_msg(strstr(eb.msg, "/nonexistent/kiln") != NULL, "%s", eb.msg);
    iw_rmtree(dir);
    free(dir);
}
END_TEST

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_manifests)
{
    char *dir = iw_tempdir("ixm");
    make_tree(dir);
    char p[600];
    errbuf eb = {""};
    imgindex ix;
    snprintf(p, sizeof p, "%s/m.csv", dir);
    write_text(p, "path,label\nb/2.jpg,dog\na/x.png,cat\nc/m.PNG,eel\n\"b/10.JPG\",dog\n");
    ck_assert_msg(imgindex_load_manifest(&ix, p, dir, &eb) == 0, "%s", eb.msg);
    ck_assert_int_eq(ix.n, 4);
    ck_assert_int_eq(ix.num_classes, 3);
    ck_assert_str_eq(ix.class_names[0], "cat");
    ck_assert_int_eq(ix.labels[0], 1);
    ck_assert_int_eq(ix.labels[1], 0);
    ck_assert_str_eq(imgindex_name(&ix, 3), "b/10.JPG");
    ck_assert(ix.total_bytes > 0);
    imgindex_free(&ix);
    snprintf(p, sizeof p, "%s/m.jsonl", dir);
    write_text(p,
               "{\"path\": \"a/w.jpeg\", \"label\": 4}\n{\"path\": \"c/y/k.jpg\", \"label\": 0}\n");
    ck_assert_msg(imgindex_load_manifest(&ix, p, dir, &eb) == 0, "%s", eb.msg);
    ck_assert_int_eq(ix.num_classes, 5);
    ck_assert_int_eq(ix.labels[0], 4);
    imgindex_free(&ix);
    /* Bad manifests name the file and the line. */
    write_text(p, "{\"path\": \"a/w.jpeg\", \"label\": 1}\n{\"path\": 3}\n");
    ck_assert_int_eq(imgindex_load_manifest(&ix, p, dir, &eb), ERR_FORMAT);
    ck_assert_msg(strstr(eb.msg, "line 2") != NULL, "%s", eb.msg);
    snprintf(p, sizeof p, "%s/m2.csv", dir);
    write_text(p, "a/w.jpeg,1\n../../etc/passwd,0\n");
    ck_assert_int_eq(imgindex_load_manifest(&ix, p, dir, &eb), ERR_FORMAT);
    ck_assert_msg(strstr(eb.msg, "line 2") != NULL, "%s", eb.msg);
    write_text(p, "a/w.jpeg,1\nb/2.jpg,dog\n");
    ck_assert_int_eq(imgindex_load_manifest(&ix, p, dir, &eb), ERR_FORMAT);
    iw_rmtree(dir);
    free(dir);
}
END_TEST

/* A file dataset over n JPEGs (sample i's label i % 4), 2 of them corrupt. */
static void make_files(dataset *d, const char *dir, int n, int train, int bad)
{
    mk(dir, "0");
    mk(dir, "1");
    mk(dir, "2");
    mk(dir, "3");
    for (int i = 0; i < n; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "%d/%03d.jpg", i % 4, i);
        touch_img(dir, rel, i, 20 + i % 7, 25 + i % 5);
        if (bad && (i == 5 || i == 17)) {
            char p[600];
            snprintf(p, sizeof p, "%s/%s", dir, rel);
            ck_assert_int_eq(truncate(p, 300), 0);
        }
    }
    memset(d, 0, sizeof *d);
    d->files = xcalloc(1, sizeof *d->files);
    errbuf eb = {""};
    ck_assert_msg(imgindex_scan(d->files, dir, 0.0, 0, &eb) == 0, "%s", eb.msg);
    d->n = d->files->n;
    d->H = d->W = 16;
    d->C = 3;
    d->num_classes = 4;
    d->train_split = train;
    d->workers = 1;
    d->prefetch = 2;
    transform_spec *t = &d->tf;
    t->size = 16;
    t->channels = 3;
    t->scale[0] = 0.3, t->scale[1] = 1.0, t->ratio[0] = 0.75, t->ratio[1] = 4.0 / 3.0;
    t->hflip = 0.5;
    t->ra_n = 2, t->ra_m = 9;
    t->erase_p = 0.25;
    t->resize = 18;
    for (int c = 0; c < 3; c++) {
        d->mean[c] = t->mean[c] = 0.5f;
        d->std[c] = t->std[c] = 0.25f;
    }
}

/* All batches of one epoch of loader l into x (nb * batch samples). */
static long run_epoch(loader *l, int epoch, float *x, int32_t *y, int batch, size_t per)
{
    loader_start_epoch(l, epoch, 0);
    long k = 0;
    int n;
    while ((n = loader_next(l, x + k * per, y + k)) > 0)
        k += n;
    ck_assert_int_ge(n, 0);
    (void)batch;
    return k;
}

START_TEST(test_loader_files_deterministic)
{
    char *dir = iw_tempdir("ldf");
    dataset d;
    make_files(&d, dir, 24, 1, 0);
    size_t per = 16 * 16 * 3;
    float *a = xmallocarray(24 * per, sizeof(float)), *b = xmallocarray(24 * per, sizeof(float));
    int32_t ya[24], yb[24];
    loader_opts o = {.batch = 4, .rank = 0, .world = 1, .seed = 11, .train = 1};
    loader *l = loader_new(&d, &o);
    long na = run_epoch(l, 1, a, ya, 4, per);
    loader_free(l);
    ck_assert_int_eq(na, 24);
    /* 3 workers, 5 batches ahead: the same samples, bit for bit. */
    d.workers = 3;
    d.prefetch = 5;
    l = loader_new(&d, &o);
    ck_assert_int_eq(run_epoch(l, 1, b, yb, 4, per), 24);
    ck_assert(memcmp(a, b, 24 * per * sizeof(float)) == 0);
    ck_assert(memcmp(ya, yb, sizeof ya) == 0);
    /* Another epoch differs. */
    ck_assert_int_eq(run_epoch(l, 2, b, yb, 4, per), 24);
    ck_assert(memcmp(a, b, 24 * per * sizeof(float)) != 0);
    loader_free(l);
    /* Two ranks of batch 2: rank r's batch j is samples [2r, 2r+2) of the global batch j. */
    for (int r = 0; r < 2; r++) {
        loader_opts ro = o;
        ro.batch = 2, ro.rank = r, ro.world = 2;
        l = loader_new(&d, &ro);
        float *x = xmallocarray(12 * per, sizeof(float));
        int32_t y[12];
        ck_assert_int_eq(run_epoch(l, 1, x, y, 2, per), 12);
        for (int j = 0; j < 6; j++)
            for (int i = 0; i < 2; i++) {
                ck_assert(memcmp(x + (size_t)(2 * j + i) * per,
                                 a + (size_t)(4 * j + 2 * r + i) * per, per * sizeof(float)) == 0);
                ck_assert_int_eq(y[2 * j + i], ya[4 * j + 2 * r + i]);
            }
        free(x);
        loader_free(l);
    }
    /* Labels are the files' class folders. */
    for (int i = 0; i < 24; i++)
        ck_assert(ya[i] >= 0 && ya[i] < 4);
    free(a);
    free(b);
    dataset_free(&d);
    iw_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_loader_eval_and_bad_files)
{
    char *dir = iw_tempdir("ldb");
    dataset d;
    make_files(&d, dir, 24, 0, 1);
    size_t per = 16 * 16 * 3;
    float *x = xmallocarray(24 * per, sizeof(float)), *want = xmallocarray(per, sizeof(float));
    int32_t y[24];
    loader_opts o = {.batch = 5, .rank = 0, .world = 1, .seed = 3, .train = 0};
    d.workers = 2;
    loader *l = loader_new(&d, &o);
    ck_assert_int_eq(run_epoch(l, 0, x, y, 5, per), 24);
    ck_assert_int_eq(loader_bad_files(l), 2);
    loader_free(l);
    /* Eval sample i is index entry i (or, when bad, the next entry) through
     * resize + centre crop + normalise. */
    image im = {0};
    transform_work w = {0};
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    for (int i = 0; i < 24; i++) {
        const char *nm = imgindex_name(d.files, i);
        int f = strstr(nm, "005") || strstr(nm, "017") ? i + 1 : i; /* the next good file */
        char p[700];
        ck_assert_int_eq(imgindex_path(d.files, f, p, sizeof p), 0);
        ck_assert_int_eq(imgdecode_read_file(p, &buf, &cap, &len, NULL), 0);
        ck_assert_int_eq(imgdecode(&im, buf, len, 3, p, NULL), 0);
        transform_apply_eval(want, &im, &d.tf, &w);
        ck_assert_msg(memcmp(x + (size_t)i * per, want, per * sizeof(float)) == 0, "sample %d", i);
        ck_assert_int_eq(y[i], d.files->labels[f]);
    }
    /* The fail policy stops with the file's name. */
    d.on_bad_fail = 1;
    l = loader_new(&d, &o);
    loader_start_epoch(l, 0, 0);
    int n, rc = 0;
    while ((n = loader_next(l, x, y)) > 0)
        ;
    rc = n;
    ck_assert_int_eq(rc, ERR_FORMAT);
    /* Either bad file, whichever of the two workers met one first. */
    ck_assert_msg(strstr(loader_error(l), "005.jpg") != NULL ||
                      strstr(loader_error(l), "017.jpg") != NULL,
                  "%s", loader_error(l));
    loader_free(l);
    free(buf);
    image_free(&im);
    transform_work_free(&w);
    free(x);
    free(want);
    dataset_free(&d);
    iw_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_mixup_cutmix)
{
    enum { B = 6, H = 8, W = 10, C = 3, K = 5 };
    size_t per = H * W * C;
    float *x = xmallocarray(B * per, sizeof(float)), *x0 = xmallocarray(B * per, sizeof(float));
    float t[B * K];
    int32_t y[B] = {0, 1, 2, 3, 4, 0};
    for (size_t i = 0; i < B * per; i++)
        x0[i] = (float)(i % 97) * 0.25f - 3.0f;
    rng r;
    rng_seed(&r, 5);
    mix_spec mixup = {.mixup = 0.8, .cutmix = 0, .prob = 1, .switch_prob = 0.5};
    memcpy(x, x0, B * per * sizeof(float));
    double lam = mix_batch(x, t, y, B, H, W, C, K, &mixup, 0.1f, &r);
    ck_assert(lam >= 0 && lam <= 1);
    for (int i = 0; i < B; i++) {
        for (size_t k = 0; k < per; k++) {
            float want =
                x0[i * per + k] * (float)lam + x0[(B - 1 - i) * per + k] * (float)(1 - lam);
            ck_assert(fabsf(x[i * per + k] - want) <= 1e-5f);
        }
        double sum = 0;
        for (int k = 0; k < K; k++)
            sum += (double)t[i * K + k];
        ck_assert(fabs(sum - 1.0) < 1e-5);
        float off = 0.1f / K, on = 1.0f - 0.1f + off;
        float want_y = off + (float)lam * (on - off) +
                       (y[i] == y[B - 1 - i] ? (float)(1 - lam) * (on - off) : 0);
        ck_assert(fabsf(t[i * K + y[i]] - want_y) < 1e-5f);
    }
    /* CutMix: lam is the share of pixels kept from the sample itself. */
    mix_spec cut = {.mixup = 0, .cutmix = 1.0, .prob = 1, .switch_prob = 0.5};
    for (int rep = 0; rep < 20; rep++) {
        memcpy(x, x0, B * per * sizeof(float));
        lam = mix_batch(x, t, y, B, H, W, C, K, &cut, 0.0f, &r);
        long kept = 0;
        for (size_t k = 0; k < per; k += C)
            kept += x[k] == x0[k];
        ck_assert_msg(fabs((double)kept / (H * W) - lam) < 1e-9, "kept %ld lam %g", kept, lam);
        ck_assert(fabsf(t[0] - 1.0f) < 1e-6f); /* y[0] = y[5] = 0: all on class 0 */
        ck_assert(fabsf(t[1 * K + 1] - (float)lam) < 1e-6f);
        ck_assert(fabsf(t[1 * K + 4] - (float)(1 - lam)) < 1e-6f);
    }
    /* Beta(a, a) has mean 1/2 and variance 1 / (4 (2a + 1)). */
    double s = 0, ss = 0;
    const int N = 20000;
    for (int i = 0; i < N; i++) {
        double v = mix_beta(&r, 0.8);
        s += v;
        ss += v * v;
    }
    double mean = s / N, var = ss / N - mean * mean;
    ck_assert_msg(fabs(mean - 0.5) < 0.01, "mean %g", mean);
    ck_assert_msg(fabs(var - 1.0 / (4 * 2.6)) < 0.005, "var %g", var);
    free(x);
    free(x0);
}
END_TEST

Suite *suite_imgdata(void)
{
    Suite *s = suite_create("imgdata");
    tu_case_add(s, "core", 60, NULL, NULL,
                TU_TESTS(test_folder_order_is_imagefolder, test_manifests,
                         test_loader_files_deterministic, test_loader_eval_and_bad_files,
                         test_mixup_cutmix));
    return s;
}
