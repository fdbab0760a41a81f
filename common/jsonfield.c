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

static void mark_known(jsonfield_obj *o, const char *key)
{
    for (int i = 0; i < o->n_known; i++)
        if (strcmp(o->known[i], key) == 0)
            return;
    assert(o->n_known < JSONFIELD_MAX_KEYS && "raise JSONFIELD_MAX_KEYS");
    o->known[o->n_known++] = key;
}

int jsonfield_open(jsonfield_obj *o, const json_t *j, const char *path, field_errors *fe)
{
    memset(o, 0, sizeof *o);
    o->fe = fe;
    snprintf(o->path, sizeof o->path, "%s", path ? path : "");
    if (j == NULL)
        return JSONFIELD_ABSENT;
    if (!json_is_object(j)) {
        jsonfield_err(o, NULL, "must be an object");
        return JSONFIELD_BAD;
    }
    o->j = j;
    return JSONFIELD_SET;
}

int jsonfield_child(jsonfield_obj *child, jsonfield_obj *parent, const char *key)
{
    char path[JSONFIELD_PATH_MAX];
    jsonfield_path(path, sizeof path, parent, key);
    return jsonfield_open(child, jsonfield_get(parent, key), path, parent->fe);
}

void jsonfield_path(char *buf, size_t len, const jsonfield_obj *o, const char *key)
{
    if (key == NULL)
        snprintf(buf, len, "%s", o->path);
    else if (o->path[0] == '\0')
        snprintf(buf, len, "%s", key);
    else
        snprintf(buf, len, "%s.%s", o->path, key);
}

void jsonfield_index_path(char *buf, size_t len, const char *base, int i)
{
    /* A path longer than the buffer is cut short; it still names the spot. */
    if (snprintf(buf, len, "%s[%d]", base, i) >= (int)len && len > 0)
        buf[len - 1] = '\0';
}

void jsonfield_err(jsonfield_obj *o, const char *key, const char *fmt, ...)
{
    char path[JSONFIELD_PATH_MAX], reason[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    jsonfield_path(path, sizeof path, o, key);
    fe_add(o->fe, path, "%s", reason);
    o->n_err++;
}

const json_t *jsonfield_get(jsonfield_obj *o, const char *key)
{
    mark_known(o, key);
    return o->j ? json_object_get(o->j, key) : NULL;
}

/* Checks that v (already fetched, not NULL) is an integer in lo..hi and
 * stores it in *out; problems are reported at the path of key below o. */
static int read_ll(jsonfield_obj *o, const char *key, const json_t *v, long long *out, long long lo,
                   long long hi)
{
    if (!json_is_integer(v)) {
        jsonfield_err(o, key, "must be an integer");
        return JSONFIELD_BAD;
    }
    long long x = json_integer_value(v);
    if (x < lo) {
        jsonfield_err(o, key, "must be >= %lld", lo);
        return JSONFIELD_BAD;
    }
    if (x > hi) {
        jsonfield_err(o, key, "must be <= %lld", hi);
        return JSONFIELD_BAD;
    }
    *out = x;
    return JSONFIELD_SET;
}

int jsonfield_long(jsonfield_obj *o, const char *key, long long *out, long long def, long long lo,
                   long long hi)
{
    const json_t *v = jsonfield_get(o, key);
    *out = def;
    if (v == NULL)
        return JSONFIELD_ABSENT;
    return read_ll(o, key, v, out, lo, hi);
}

int jsonfield_int(jsonfield_obj *o, const char *key, int *out, int def, int lo, int hi)
{
    long long x;
    int rc = jsonfield_long(o, key, &x, def, lo, hi);
    *out = (int)x;
    return rc;
}

int jsonfield_int_req(jsonfield_obj *o, const char *key, int *out, int lo, int hi)
{
    int rc = jsonfield_int(o, key, out, 0, lo, hi);
    if (rc == JSONFIELD_ABSENT) {
        jsonfield_err(o, key, "is required");
        return JSONFIELD_BAD;
    }
    return rc;
}

/* As read_ll, for a number in a range with open or closed ends. */
static int read_num(jsonfield_obj *o, const char *key, const json_t *v, double *out, double lo,
                    double hi, unsigned flags)
{
    if (!json_is_number(v)) {
        jsonfield_err(o, key, "must be a number");
        return JSONFIELD_BAD;
    }
    double x = json_number_value(v);
    int lo_open = (flags & JSONFIELD_LO_OPEN) != 0, hi_open = (flags & JSONFIELD_HI_OPEN) != 0;
    if (!isfinite(x)) {
        jsonfield_err(o, key, "must be a finite number");
        return JSONFIELD_BAD;
    }
    if (lo_open ? !(x > lo) : !(x >= lo)) {
        jsonfield_err(o, key, "must be %s %g", lo_open ? ">" : ">=", lo);
        return JSONFIELD_BAD;
    }
    if (hi_open ? !(x < hi) : !(x <= hi)) {
        jsonfield_err(o, key, "must be %s %g", hi_open ? "<" : "<=", hi);
        return JSONFIELD_BAD;
    }
    *out = x;
    return JSONFIELD_SET;
}

int jsonfield_num(jsonfield_obj *o, const char *key, double *out, double def, double lo, double hi,
                  unsigned flags)
{
    const json_t *v = jsonfield_get(o, key);
    *out = def;
    if (v == NULL)
        return JSONFIELD_ABSENT;
    return read_num(o, key, v, out, lo, hi, flags);
}

int jsonfield_bool(jsonfield_obj *o, const char *key, int *out, int def)
{
    const json_t *v = jsonfield_get(o, key);
    *out = def;
    if (v == NULL)
        return JSONFIELD_ABSENT;
    if (!json_is_boolean(v)) {
        jsonfield_err(o, key, "must be true or false");
        return JSONFIELD_BAD;
    }
    *out = json_is_true(v);
    return JSONFIELD_SET;
}

int jsonfield_str(jsonfield_obj *o, const char *key, char *buf, size_t size, const char *def)
{
    const json_t *v = jsonfield_get(o, key);
    snprintf(buf, size, "%s", def ? def : "");
    if (v == NULL)
        return JSONFIELD_ABSENT;
    if (!json_is_string(v)) {
        jsonfield_err(o, key, "must be a string");
        return JSONFIELD_BAD;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n >= size) {
        jsonfield_err(o, key, "must be 1 to %zu characters long", size - 1);
        return JSONFIELD_BAD;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            jsonfield_err(o, key, "must not contain control characters");
            return JSONFIELD_BAD;
        }
    }
    memcpy(buf, s, n + 1);
    return JSONFIELD_SET;
}

int jsonfield_enum(jsonfield_obj *o, const char *key, int *out, int def, const char *const *names,
                   int n)
{
    const json_t *v = jsonfield_get(o, key);
    *out = def;
    if (v == NULL)
        return JSONFIELD_ABSENT;
    if (json_is_string(v)) {
        for (int i = 0; i < n; i++) {
            if (strcmp(json_string_value(v), names[i]) == 0) {
                *out = i;
                return JSONFIELD_SET;
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
    jsonfield_err(o, key, "must be one of %s", list);
    return JSONFIELD_BAD;
}

/* Fetches key into *arr as an array of min_len..max_len entries. Returns
 * JSONFIELD_SET, JSONFIELD_ABSENT, or JSONFIELD_BAD (reported) for a non-array or a bad length. */
static int get_array(jsonfield_obj *o, const char *key, int min_len, int max_len, const char *what,
                     const json_t **arr)
{
    const json_t *v = jsonfield_get(o, key);
    *arr = v;
    if (v == NULL)
        return JSONFIELD_ABSENT;
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n < (size_t)min_len || n > (size_t)max_len) {
        if (min_len == max_len)
            jsonfield_err(o, key, "must be an array of %d %s", max_len, what);
        else
            jsonfield_err(o, key, "must be an array of %d to %d %s", min_len, max_len, what);
        return JSONFIELD_BAD;
    }
    return JSONFIELD_SET;
}

int jsonfield_int_array(jsonfield_obj *o, const char *key, int *out, int *len, int max_len, int lo,
                        int hi)
{
    const json_t *v;
    *len = 0;
    int rc = get_array(o, key, 1, max_len, "integers", &v);
    if (rc != JSONFIELD_SET)
        return rc;
    /* Each element is checked by a reader rooted at its own path "key[i]". */
    char base[JSONFIELD_PATH_MAX], path[JSONFIELD_PATH_MAX];
    jsonfield_path(base, sizeof base, o, key);
    int bad = 0;
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
        long long x = 0;
        jsonfield_obj elem;
        jsonfield_index_path(path, sizeof path, base, (int)i);
        jsonfield_open(&elem, NULL, path, o->fe);
        bad += read_ll(&elem, NULL, json_array_get(v, i), &x, lo, hi) != JSONFIELD_SET;
        out[i] = (int)x;
    }
    o->n_err += bad;
    if (bad)
        return JSONFIELD_BAD;
    *len = (int)n;
    return JSONFIELD_SET;
}

int jsonfield_num_array(jsonfield_obj *o, const char *key, double *out, int len, double lo,
                        double hi, unsigned flags)
{
    const json_t *v;
    int rc = get_array(o, key, len, len, "numbers", &v);
    if (rc != JSONFIELD_SET)
        return rc;
    char base[JSONFIELD_PATH_MAX], path[JSONFIELD_PATH_MAX];
    jsonfield_path(base, sizeof base, o, key);
    double tmp[JSONFIELD_MAX_KEYS];
    int bad = 0;
    assert(len <= JSONFIELD_MAX_KEYS);
    for (int i = 0; i < len; i++) {
        jsonfield_obj elem;
        jsonfield_index_path(path, sizeof path, base, i);
        jsonfield_open(&elem, NULL, path, o->fe);
        bad += read_num(&elem, NULL, json_array_get(v, (size_t)i), &tmp[i], lo, hi, flags) !=
               JSONFIELD_SET;
    }
    o->n_err += bad;
    if (bad)
        return JSONFIELD_BAD;
    memcpy(out, tmp, (size_t)len * sizeof *out);
    return JSONFIELD_SET;
}

int jsonfield_finish(jsonfield_obj *o)
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
            jsonfield_err(o, key, "unknown field");
    }
    return o->n_err;
}

json_t *jsonfield_number_json(double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return json_integer((json_int_t)v);
    return json_real(v);
}
