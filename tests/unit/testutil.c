/* testutil.c - helpers shared by the check suites (see testutil.h). */
#include "tests/unit/testutil.h"

#include "common/files.h"
#include "common/rng.h"
#include "common/xalloc.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tu_ref_dirs(void)
{
    const char *d = getenv("KILN_REF");
    return (d != NULL && d[0] != '\0') ? d : "../shared/reference";
}

const char *tu_ref_dir(void)
{
    static char first[1024];
    const char *d = tu_ref_dirs();
    size_t n = strcspn(d, ":");
    if (n >= sizeof first)
        n = sizeof first - 1;
    memcpy(first, d, n);
    first[n] = '\0';
    return first;
}

st_file *tu_open_ref(const char *file)
{
    char path[1024];
    errbuf eb;
    st_file *f = NULL;
    snprintf(path, sizeof path, "%s/%s", tu_ref_dir(), file);
    int rc = st_open(&f, path, &eb);
    ck_assert_msg(rc == 0, "cannot open reference %s: %s", path, eb.msg);
    return f;
}

float *tu_tensor(const st_file *f, const char *name, size_t *numel)
{
    const st_tensor *t = st_find(f, name);
    ck_assert_msg(t != NULL, "reference tensor '%s' is missing", name);
    float *p = xmallocarray(t->numel ? t->numel : 1, sizeof(float));
    errbuf eb;
    int rc = st_read_f32(f, name, p, t->numel, &eb);
    ck_assert_msg(rc == 0, "%s", eb.msg);
    if (numel != NULL)
        *numel = t->numel;
    return p;
}

void tu_model_cfg(model_cfg *c, const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    ck_assert_msg(j != NULL, "%s: %s", text, jerr.text);
    field_errors fe;
    fe_init(&fe);
    int rc = modelcfg_parse(c, j, "model", &fe);
    char msg[512];
    fe_format(&fe, msg, sizeof msg);
    ck_assert_msg(rc == 0, "%s: %s", text, msg);
    json_decref(j);
}

double tu_max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i]));
    return m;
}

double tu_rel_err_d(const float *c, const double *r, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)c[i] - r[i]));
        m = fmax(m, fabs(r[i]));
    }
    return m > 0 ? d / m : d;
}

double tu_rel_err(const float *c, const float *r, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)c[i] - (double)r[i]));
    double m = tu_max_abs(r, n);
    return m > 0 ? d / m : d;
}

void tu_nchw_to_nhwc(float *dst, const float *src, int B, int C, int H, int W)
{
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    dst[(((size_t)b * H + h) * W + w) * C + c] =
                        src[(((size_t)b * C + c) * H + h) * W + w];
}

void tu_nhwc_to_nchw(float *dst, const float *src, int B, int C, int H, int W)
{
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    dst[(((size_t)b * C + c) * H + h) * W + w] =
                        src[(((size_t)b * H + h) * W + w) * C + c];
}

void tu_fill_uniform(float *a, size_t n, float lo, float hi, unsigned long long seed)
{
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        a[i] = lo + (hi - lo) * rng_uniform(&r);
}

double tu_dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

char *tu_temp_dir(const char *tag)
{
    char tmpl[KILN_PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "/tmp/kiln-%s-XXXXXX", tag);
    ck_assert_msg(mkdtemp(tmpl) != NULL, "cannot create %s", tmpl);
    return xstrdup(tmpl);
}

void tu_remove_dir(const char *dir)
{
    errbuf eb;
    ck_assert_msg(files_remove_tree(dir, &eb) == 0, "%s", eb.msg);
}

json_t *tu_load_json(const char *dir, const char *name)
{
    char path[KILN_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    ck_assert_msg(j != NULL, "%s: %s", path, je.text);
    return j;
}

void tu_same_file(const char *dir_a, const char *dir_b, const char *name)
{
    char pa[KILN_PATH_MAX], pb[KILN_PATH_MAX];
    snprintf(pa, sizeof pa, "%s/%s", dir_a, name);
    snprintf(pb, sizeof pb, "%s/%s", dir_b, name);
    void *x, *y;
    size_t la, lb;
    errbuf eb;
    ck_assert_msg(files_read(pa, &x, &la, &eb) == 0, "%s", eb.msg);
    ck_assert_msg(files_read(pb, &y, &lb, &eb) == 0, "%s", eb.msg);
    ck_assert_msg(la == lb && memcmp(x, y, la) == 0, "%s differs between %s and %s", name, dir_a,
                  dir_b);
    free(x);
    free(y);
}

TCase *tu_case_add(Suite *s, const char *name, int timeout, SFun setup, SFun teardown,
                   const TTest *const *tests, size_t n)
{
    TCase *tc = tcase_create(name);
    if (timeout > 0)
        tcase_set_timeout(tc, timeout);
    if (setup != NULL || teardown != NULL)
        tcase_add_checked_fixture(tc, setup, teardown);
    for (size_t i = 0; i < n; i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return tc;
}
