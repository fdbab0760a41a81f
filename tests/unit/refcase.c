/* refcase.c - PyTorch reference cases and their checks (see refcase.h). */
#include "tests/unit/refcase.h"

#include "common/xalloc.h"
#include "tests/unit/testutil.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void full_name(char *buf, size_t len, const ref_case *c, const char *suffix)
{
    snprintf(buf, len, "%s.%s", c->name, suffix);
}

void ref_case_init(ref_case *c, const st_file *f, const char *name)
{
    memset(c, 0, sizeof *c);
    c->f = f;
    c->name = name;
    const char *meta = st_meta(f, name);
    ck_assert_msg(meta != NULL, "case '%s' has no metadata", name);
    json_error_t jerr;
    c->attrs = json_loads(meta, 0, &jerr);
    ck_assert_msg(c->attrs != NULL, "case '%s': attributes are not JSON: %s", name, jerr.text);
    /* G: the largest gradient magnitude of the case (tensors named d* or grad.*). */
    size_t plen = strlen(name);
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_get(f, i);
        if (strncmp(t->name, name, plen) != 0 || t->name[plen] != '.' || t->dtype != ST_F32)
            continue;
        const char *suffix = t->name + plen + 1;
        if (suffix[0] == 'd' || strncmp(suffix, "grad.", 5) == 0) {
            float *r = tu_tensor(f, t->name, NULL);
            c->grad_scale = fmax(c->grad_scale, tu_max_abs(r, t->numel));
            free(r);
        }
    }
}

void ref_case_deinit(ref_case *c)
{
    json_decref(c->attrs);
    c->attrs = NULL;
}

int ref_has(const ref_case *c, const char *suffix)
{
    char n[512];
    full_name(n, sizeof n, c, suffix);
    return st_find(c->f, n) != NULL;
}

float *ref_get(const ref_case *c, const char *suffix, size_t *numel, int *ndim, int64_t *shape)
{
    char n[512];
    full_name(n, sizeof n, c, suffix);
    const st_tensor *t = st_find(c->f, n);
    ck_assert_msg(t != NULL, "reference tensor '%s' is missing", n);
    if (ndim != NULL)
        *ndim = t->ndim;
    if (shape != NULL)
        for (int i = 0; i < t->ndim; i++)
            shape[i] = t->shape[i];
    return tu_tensor(c->f, n, numel);
}

float *ref_get_nhwc(const ref_case *c, const char *suffix, size_t *numel)
{
    int nd;
    int64_t s[ST_MAX_DIMS];
    size_t n;
    float *x = ref_get(c, suffix, &n, &nd, s);
    if (numel != NULL)
        *numel = n;
    if (nd != 4)
        return x;
    float *y = xmallocarray(n, sizeof(float));
    tu_nchw_to_nhwc(y, x, (int)s[0], (int)s[1], (int)s[2], (int)s[3]);
    free(x);
    return y;
}

int *ref_get_labels(const ref_case *c, const char *suffix, size_t *numel)
{
    char n[512];
    full_name(n, sizeof n, c, suffix);
    const st_tensor *t = st_find(c->f, n);
    ck_assert_msg(t != NULL, "reference tensor '%s' is missing", n);
    int64_t *v = xmallocarray(t->numel, sizeof(int64_t));
    errbuf eb;
    ck_assert_msg(st_read_i64(c->f, n, v, t->numel, &eb) == 0, "%s", eb.msg);
    int *out = xmallocarray(t->numel, sizeof(int));
    for (size_t i = 0; i < t->numel; i++)
        out[i] = (int)v[i];
    free(v);
    if (numel != NULL)
        *numel = t->numel;
    return out;
}

static int is_exact_zero(const ref_case *c, const char *suffix)
{
    const json_t *z = json_object_get(c->attrs, "exact_zeros");
    size_t i;
    const json_t *v;
    json_array_foreach(z, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), suffix) == 0)
            return 1;
    }
    return 0;
}

double ref_check(const ref_case *c, const char *suffix, const float *computed, size_t n, double tol,
                 int nhwc)
{
    char name[512];
    full_name(name, sizeof name, c, suffix);
    int nd;
    int64_t s[ST_MAX_DIMS];
    size_t rn;
    float *r = ref_get(c, suffix, &rn, &nd, s);
    ck_assert_msg(rn == n, "%s: engine has %zu elements, reference %zu", name, n, rn);
    const float *cmp = computed;
    float *tmp = NULL;
    if (nhwc && nd == 4) {
        tmp = xmallocarray(n, sizeof(float));
        tu_nhwc_to_nchw(tmp, computed, (int)s[0], (int)s[1], (int)s[2], (int)s[3]);
        cmp = tmp;
    }
    double err;
    if (is_exact_zero(c, suffix)) {
        err = tu_max_abs(cmp, n);
        double limit = 1e-5 * c->grad_scale;
        printf("  %-44s exact-zero max|c| %.2e (limit %.2e)\n", name, err, limit);
        ck_assert_msg(err <= limit, "%s: should be exactly zero, max|c| = %.3e > %.3e", name, err,
                      limit);
    } else {
        err = tu_rel_err(cmp, r, n);
        printf("  %-44s rel err %.2e (tol %.0e)\n", name, err, tol);
        ck_assert_msg(err <= tol, "%s: rel err %.3e > tol %.1e", name, err, tol);
    }
    free(tmp);
    free(r);
    return err;
}

int ref_attr_int(const ref_case *c, const char *key)
{
    const json_t *v = json_object_get(c->attrs, key);
    ck_assert_msg(json_is_integer(v), "case '%s': attribute '%s' missing or not an integer",
                  c->name, key);
    return (int)json_integer_value(v);
}

double ref_attr_double(const ref_case *c, const char *key)
{
    const json_t *v = json_object_get(c->attrs, key);
    ck_assert_msg(json_is_number(v), "case '%s': attribute '%s' missing or not a number", c->name,
                  key);
    return json_number_value(v);
}

int ref_attr_bool(const ref_case *c, const char *key, int dflt)
{
    const json_t *v = json_object_get(c->attrs, key);
    if (v == NULL)
        return dflt;
    ck_assert_msg(json_is_boolean(v), "case '%s': attribute '%s' is not a boolean", c->name, key);
    return json_is_true(v);
}

const char *ref_attr_str(const ref_case *c, const char *key)
{
    const json_t *v = json_object_get(c->attrs, key);
    ck_assert_msg(json_is_string(v), "case '%s': attribute '%s' missing or not a string", c->name,
                  key);
    return json_string_value(v);
}
