/* st_diff.c - compares two safetensors files tensor by tensor (a test tool).
 *
 *   st_diff A B [--tol T] [--prefix P] [--skip S] [--base BASE] [-v]
 *
 * For every F32/F64 tensor of A whose name starts with P (default: all) and
 * does not contain S, prints max|a - b| / max|b| if it exceeds T or with -v;
 * I64 tensors must be equal. With --base, compares the updates instead:
 * ||(a - base) - (b - base)|| / ||b - base|| (L2 over the tensor), for runs
 * that started from the same weights BASE. Exits 0 when every tensor is within T, 1 otherwise, 2 on
 * bad input (missing tensor, shape mismatch, unreadable file). Prints the worst error.
 */
#include "common/safetensors.h"
#include "common/xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *pa = NULL, *pb = NULL, *prefix = "", *skip = NULL, *pbase = NULL;
    double tol = 0;
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tol") == 0 && i + 1 < argc)
            tol = atof(argv[++i]);
        else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc)
            prefix = argv[++i];
        else if (strcmp(argv[i], "--skip") == 0 && i + 1 < argc)
            skip = argv[++i];
        else if (strcmp(argv[i], "--base") == 0 && i + 1 < argc)
            pbase = argv[++i];
        else if (strcmp(argv[i], "-v") == 0)
            verbose = 1;
        else if (pa == NULL)
            pa = argv[i];
        else if (pb == NULL)
            pb = argv[i];
        else
            pa = NULL;
    }
    if (pa == NULL || pb == NULL) {
        fprintf(stderr,
                "usage: st_diff A B [--tol T] [--prefix P] [--skip S] [--base BASE] [-v]\n");
        return 2;
    }
    st_file *a, *b, *base = NULL;
    errbuf eb;
    if (st_open(&a, pa, &eb) != 0 || st_open(&b, pb, &eb) != 0 ||
        (pbase != NULL && st_open(&base, pbase, &eb) != 0)) {
        fprintf(stderr, "st_diff: %s\n", eb.msg);
        return 2;
    }
    double worst = 0;
    const char *worst_name = "";
    int bad = 0, compared = 0;
    for (int i = 0; i < st_count(a); i++) {
        const st_tensor *ta = st_get(a, i);
        if (strncmp(ta->name, prefix, strlen(prefix)) != 0 ||
            (skip != NULL && strstr(ta->name, skip) != NULL))
            continue;
        const st_tensor *tb = st_find(b, ta->name);
        if (tb == NULL || tb->numel != ta->numel || tb->dtype != ta->dtype) {
            fprintf(stderr, "st_diff: '%s' missing or different in %s\n", ta->name, pb);
            return 2;
        }
        compared++;
        if (ta->dtype == ST_I64) {
            if (memcmp(ta->data, tb->data, ta->nbytes) != 0) {
                printf("%-48s integers differ\n", ta->name);
                bad = 1;
            }
            continue;
        }
        float *x = xmallocarray(ta->numel + 1, sizeof(float));
        float *y = xmallocarray(ta->numel + 1, sizeof(float));
        st_read_f32(a, ta->name, x, ta->numel, &eb);
        st_read_f32(b, ta->name, y, ta->numel, &eb);
        double d = 0, m = 0;
        if (base != NULL) {
            float *z = xmallocarray(ta->numel + 1, sizeof(float));
            if (st_read_f32(base, ta->name, z, ta->numel, &eb) != 0) {
                fprintf(stderr, "st_diff: %s\n", eb.msg);
                return 2;
            }
            for (size_t k = 0; k < ta->numel; k++) {
                double ua = (double)x[k] - (double)z[k], ub = (double)y[k] - (double)z[k];
                d += (ua - ub) * (ua - ub);
                m += ub * ub;
            }
            d = sqrt(d);
            m = sqrt(m);
            free(z);
        } else {
            for (size_t k = 0; k < ta->numel; k++) {
                d = fmax(d, fabs((double)x[k] - (double)y[k]));
                m = fmax(m, fabs((double)y[k]));
            }
        }
        double rel = m > 0 ? d / m : d;
        if (rel > worst) {
            worst = rel;
            worst_name = ta->name;
        }
        if (rel > tol || verbose)
            printf("%-48s rel err %.3e\n", ta->name, rel);
        bad |= rel > tol;
        free(x);
        free(y);
    }
    printf("st_diff: %d tensors, worst rel err %.3e (%s), tol %.1e: %s\n", compared, worst,
           worst_name, tol, bad ? "DIFFERENT" : "ok");
    st_close(a);
    st_close(b);
    st_close(base);
    return bad ? 1 : 0;
}
