/* jsonfield.c - typed JSON field readers with field paths (see jsonfield.h). */
#include "common/jsonfield.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* jansson's iterator API takes a non-const object although iterating does
 * not modify it; this is the one place that drops the qualifier. */
static json_t *unconst(const json_t *j)
{
    union {
        const json_t *c;
        json_t *m;
    } u;
    u.c = j;
    return u.m;
}

static void mark_known(jf_obj *o, const char *key)
{
    for (int i = 0; i < o->n_known; i++)
        if (strcmp(o->known[i], key) == 0)
            return;
    assert(o->n_known < JF_MAX_KEYS && "raise JF_MAX_KEYS");
    o->known[o->n_known++] = key;
}

int jf_open(jf_obj *o, const json_t *j, const char *path, field_errors *fe)
{
    memset(o, 0, sizeof *o);
    o->fe = fe;
    snprintf(o->path, sizeof o->path, "%s", path ? path : "");
    if (j == NULL)
        return JF_ABSENT;
    if (!json_is_object(j)) {
        jf_err(o, NULL, "must be an object");
        return JF_BAD;
    }
    o->j = j;
    return JF_SET;
}

int jf_child(jf_obj *child, jf_obj *parent, const char *key)
{
    char path[JF_PATH_MAX];
    jf_path(path, sizeof path, parent, key);
    return jf_open(child, jf_get(parent, key), path, parent->fe);
}

void jf_path(char *buf, size_t len, const jf_obj *o, const char *key)
{
    if (key == NULL)
        snprintf(buf, len, "%s", o->path);
    else if (o->path[0] == '\0')
        snprintf(buf, len, "%s", key);
    else
        snprintf(buf, len, "%s.%s", o->path, key);
}

void jf_index_path(char *buf, size_t len, const char *base, int i)
{
    /* A path longer than the buffer is cut short; it still names the spot. */
    if (snprintf(buf, len, "%s[%d]", base, i) >= (int)len && len > 0)
        buf[len - 1] = '\0';
}

void jf_err(jf_obj *o, const char *key, const char *fmt, ...)
{
    char path[JF_PATH_MAX], reason[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    jf_path(path, sizeof path, o, key);
    fe_add(o->fe, path, "%s", reason);
    o->n_err++;
}

const json_t *jf_get(jf_obj *o, const char *key)
{
    mark_known(o, key);
    return o->j ? json_object_get(o->j, key) : NULL;
}

/* Checks that v (already fetched, not NULL) is an integer in lo..hi and
 * stores it in *out; problems are reported at the path of key below o. */
static int read_ll(jf_obj *o, const char *key, const json_t *v, long long *out, long long lo,
                   long long hi)
{
    if (!json_is_integer(v)) {
        jf_err(o, key, "must be an integer");
        return JF_BAD;
    }
    long long x = json_integer_value(v);
    if (x < lo) {
        jf_err(o, key, "must be >= %lld", lo);
        return JF_BAD;
    }
    if (x > hi) {
        jf_err(o, key, "must be <= %lld", hi);
        return JF_BAD;
    }
    *out = x;
    return JF_SET;
}

int jf_long(jf_obj *o, const char *key, long long *out, long long def, long long lo, long long hi)
{
    const json_t *v = jf_get(o, key);
    *out = def;
    if (v == NULL)
        return JF_ABSENT;
    return read_ll(o, key, v, out, lo, hi);
}

int jf_int(jf_obj *o, const char *key, int *out, int def, int lo, int hi)
{
    long long x;
    int rc = jf_long(o, key, &x, def, lo, hi);
    *out = (int)x;
    return rc;
}

int jf_int_req(jf_obj *o, const char *key, int *out, int lo, int hi)
{
    int rc = jf_int(o, key, out, 0, lo, hi);
    if (rc == JF_ABSENT) {
        jf_err(o, key, "is required");
        return JF_BAD;
    }
    return rc;
}

/* As read_ll, for a number in a range with open or closed ends. */
static int read_num(jf_obj *o, const char *key, const json_t *v, double *out, double lo, double hi,
                    unsigned flags)
{
    if (!json_is_number(v)) {
        jf_err(o, key, "must be a number");
        return JF_BAD;
    }
    double x = json_number_value(v);
    int lo_open = (flags & JF_LO_OPEN) != 0, hi_open = (flags & JF_HI_OPEN) != 0;
    if (!isfinite(x)) {
        jf_err(o, key, "must be a finite number");
        return JF_BAD;
    }
    if (lo_open ? !(x > lo) : !(x >= lo)) {
        jf_err(o, key, "must be %s %g", lo_open ? ">" : ">=", lo);
        return JF_BAD;
    }
    if (hi_open ? !(x < hi) : !(x <= hi)) {
        jf_err(o, key, "must be %s %g", hi_open ? "<" : "<=", hi);
        return JF_BAD;
    }
    *out = x;
    return JF_SET;
}

int jf_num(jf_obj *o, const char *key, double *out, double def, double lo, double hi,
           unsigned flags)
{
    const json_t *v = jf_get(o, key);
    *out = def;
    if (v == NULL)
        return JF_ABSENT;
    return read_num(o, key, v, out, lo, hi, flags);
}

int jf_bool(jf_obj *o, const char *key, int *out, int def)
{
    const json_t *v = jf_get(o, key);
    *out = def;
    if (v == NULL)
        return JF_ABSENT;
    if (!json_is_boolean(v)) {
        jf_err(o, key, "must be true or false");
        return JF_BAD;
    }
    *out = json_is_true(v);
    return JF_SET;
}

int jf_str(jf_obj *o, const char *key, char *buf, size_t size, const char *def)
{
    const json_t *v = jf_get(o, key);
    snprintf(buf, size, "%s", def ? def : "");
    if (v == NULL)
        return JF_ABSENT;
    if (!json_is_string(v)) {
        jf_err(o, key, "must be a string");
        return JF_BAD;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n >= size) {
        jf_err(o, key, "must be 1 to %zu characters long", size - 1);
        return JF_BAD;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            jf_err(o, key, "must not contain control characters");
            return JF_BAD;
        }
    }
    memcpy(buf, s, n + 1);
    return JF_SET;
}

int jf_enum(jf_obj *o, const char *key, int *out, int def, const char *const *names, int n)
{
    const json_t *v = jf_get(o, key);
    *out = def;
    if (v == NULL)
        return JF_ABSENT;
    if (json_is_string(v)) {
        for (int i = 0; i < n; i++) {
            if (strcmp(json_string_value(v), names[i]) == 0) {
                *out = i;
                return JF_SET;
            }
        }
    }
    char list[160];
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < n && used + 1 < sizeof list; i++) {
        int w = snprintf(list + used, sizeof list - used, "%s\"%s\"", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    jf_err(o, key, "must be one of %s", list);
    return JF_BAD;
}

/* Fetches key into *arr as an array of min_len..max_len entries. Returns
 * JF_SET, JF_ABSENT, or JF_BAD (reported) for a non-array or a bad length. */
static int get_array(jf_obj *o, const char *key, int min_len, int max_len, const char *what,
                     const json_t **arr)
{
    const json_t *v = jf_get(o, key);
    *arr = v;
    if (v == NULL)
        return JF_ABSENT;
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n < (size_t)min_len || n > (size_t)max_len) {
        if (min_len == max_len)
            jf_err(o, key, "must be an array of %d %s", max_len, what);
        else
            jf_err(o, key, "must be an array of %d to %d %s", min_len, max_len, what);
        return JF_BAD;
    }
    return JF_SET;
}

int jf_int_array(jf_obj *o, const char *key, int *out, int *len, int max_len, int lo, int hi)
{
    const json_t *v;
    *len = 0;
    int rc = get_array(o, key, 1, max_len, "integers", &v);
    if (rc != JF_SET)
        return rc;
    /* Each element is checked by a reader rooted at its own path "key[i]". */
    char base[JF_PATH_MAX], path[JF_PATH_MAX];
    jf_path(base, sizeof base, o, key);
    int bad = 0;
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
        long long x = 0;
        jf_obj elem;
        jf_index_path(path, sizeof path, base, (int)i);
        jf_open(&elem, NULL, path, o->fe);
        bad += read_ll(&elem, NULL, json_array_get(v, i), &x, lo, hi) != JF_SET;
        out[i] = (int)x;
    }
    o->n_err += bad;
    if (bad)
        return JF_BAD;
    *len = (int)n;
    return JF_SET;
}

int jf_num_array(jf_obj *o, const char *key, double *out, int len, double lo, double hi,
                 unsigned flags)
{
    const json_t *v;
    int rc = get_array(o, key, len, len, "numbers", &v);
    if (rc != JF_SET)
        return rc;
    char base[JF_PATH_MAX], path[JF_PATH_MAX];
    jf_path(base, sizeof base, o, key);
    double tmp[JF_MAX_KEYS];
    int bad = 0;
    assert(len <= JF_MAX_KEYS);
    for (int i = 0; i < len; i++) {
        jf_obj elem;
        jf_index_path(path, sizeof path, base, i);
        jf_open(&elem, NULL, path, o->fe);
        bad +=
            read_num(&elem, NULL, json_array_get(v, (size_t)i), &tmp[i], lo, hi, flags) != JF_SET;
    }
    o->n_err += bad;
    if (bad)
        return JF_BAD;
    memcpy(out, tmp, (size_t)len * sizeof *out);
    return JF_SET;
}

int jf_finish(jf_obj *o)
{
    if (o->j == NULL)
        return o->n_err;
    const char *key;
    json_t *v;
    json_object_foreach(unconst(o->j), key, v)
    {
        (void)v;
        int found = 0;
        for (int i = 0; i < o->n_known && !found; i++)
            found = strcmp(o->known[i], key) == 0;
        if (!found)
            jf_err(o, key, "unknown field");
    }
    return o->n_err;
}

json_t *jf_number_json(double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return json_integer((json_int_t)v);
    return json_real(v);
}
