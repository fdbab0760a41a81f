/* safetensors.c - validated safetensors reader and atomic writer (see safetensors.h).
 *
 * Reading: the whole file is mapped (or copied from memory), the header is
 * bounded and parsed with jansson, and every tensor entry is checked before
 * any pointer to its data is handed out: known dtype, sane shape, offsets
 * inside the data, size = numel * itemsize, no overlap with another tensor.
 */
#include "common/safetensors.h"

#include "common/files.h"
#include "common/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_TENSORS 1000000
#define ST_MAX_NUMEL   ((size_t)1 << 40)

struct st_file {
    unsigned char *base; /* whole file image */
    size_t len;
    int mapped; /* 1: munmap base, 0: free base */
    int n;
    st_tensor *t;
    char **names; /* owned copies of the tensor names */
    int n_meta;
    char **meta_keys, **meta_vals;
};

static size_t dtype_size(st_dtype d)
{
    return d == ST_F32 ? 4 : 8;
}

static const char *dtype_name(st_dtype d)
{
    switch (d) {
    case ST_F32:
        return "F32";
    case ST_F64:
        return "F64";
    default:
        return "I64";
    }
}

static int dtype_parse(const char *s, st_dtype *d)
{
    if (strcmp(s, "F32") == 0)
        *d = ST_F32;
    else if (strcmp(s, "F64") == 0)
        *d = ST_F64;
    else if (strcmp(s, "I64") == 0)
        *d = ST_I64;
    else
        return -1;
    return 0;
}

static uint64_t read_u64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

typedef struct span {
    size_t begin, end;
    int index;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->index - y->index;
}

/* Parses one header entry into t; the caller has set t->name. */
static int parse_entry(st_tensor *t, json_t *v, const unsigned char *data, size_t data_len,
                       size_t *begin_out, errbuf *eb)
{
    if (!json_is_object(v))
        return err_set(eb, ERR_FORMAT, "tensor '%s': header entry is not an object", t->name);
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val)
    {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0)
            return err_set(eb, ERR_FORMAT, "tensor '%s': unknown header field '%s'", t->name, key);
    }
    const json_t *jd = json_object_get(v, "dtype");
    if (!json_is_string(jd))
        return err_set(eb, ERR_FORMAT, "tensor '%s': missing or non-string dtype", t->name);
    if (dtype_parse(json_string_value(jd), &t->dtype) != 0)
        return err_set(eb, ERR_FORMAT, "tensor '%s': unsupported dtype '%s' (want F32, F64, I64)",
                       t->name, json_string_value(jd));
    const json_t *js = json_object_get(v, "shape");
    if (!json_is_array(js))
        return err_set(eb, ERR_FORMAT, "tensor '%s': missing or non-array shape", t->name);
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS)
        return err_set(eb, ERR_FORMAT, "tensor '%s': %zu dims (at most %d)", t->name, nd,
                       ST_MAX_DIMS);
    t->ndim = (int)nd;
    size_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        const json_t *e = json_array_get(js, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return err_set(eb, ERR_FORMAT, "tensor '%s': shape[%zu] is not a non-negative integer",
                           t->name, i);
        json_int_t dim = json_integer_value(e);
        if ((uint64_t)dim > ST_MAX_NUMEL || (dim != 0 && numel > ST_MAX_NUMEL / (size_t)dim))
            return err_set(eb, ERR_FORMAT, "tensor '%s': absurd shape (more than 2^40 elements)",
                           t->name);
        t->shape[i] = dim;
        numel *= (size_t)dim;
    }
    t->numel = numel;
    t->nbytes = numel * dtype_size(t->dtype);
    const json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return err_set(eb, ERR_FORMAT, "tensor '%s': data_offsets must be [begin, end]", t->name);
    const json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
        json_integer_value(je) < 0)
        return err_set(eb, ERR_FORMAT, "tensor '%s': data_offsets are not non-negative integers",
                       t->name);
    uint64_t b = (uint64_t)json_integer_value(jb), e = (uint64_t)json_integer_value(je);
    if (b > e)
        return err_set(eb, ERR_FORMAT, "tensor '%s': data_offsets begin %llu > end %llu", t->name,
                       (unsigned long long)b, (unsigned long long)e);
    if (e > data_len)
        return err_set(eb, ERR_FORMAT,
                       "tensor '%s': data_offsets end %llu is past the data (%zu bytes); "
                       "file truncated?",
                       t->name, (unsigned long long)e, data_len);
    if (e - b != t->nbytes)
        return err_set(eb, ERR_FORMAT,
                       "tensor '%s': data_offsets span %llu bytes but shape and dtype need %zu",
                       t->name, (unsigned long long)(e - b), t->nbytes);
    t->data = data + b;
    *begin_out = (size_t)b;
    return 0;
}

static int parse_metadata(st_file *f, json_t *m, errbuf *eb)
{
    if (!json_is_object(m))
        return err_set(eb, ERR_FORMAT, "__metadata__ is not an object");
    size_t n = json_object_size(m);
    f->meta_keys = xcalloc(n + 1, sizeof(char *));
    f->meta_vals = xcalloc(n + 1, sizeof(char *));
    const char *key;
    json_t *val;
    json_object_foreach(m, key, val)
    {
        if (!json_is_string(val))
            return err_set(eb, ERR_FORMAT, "__metadata__ value of '%s' is not a string", key);
        f->meta_keys[f->n_meta] = xstrdup(key);
        f->meta_vals[f->n_meta] = xstrdup(json_string_value(val));
        f->n_meta++;
    }
    return 0;
}

/* Validates f->base/f->len and fills the tensor table. */
static int st_parse(st_file *f, errbuf *eb)
{
    if (f->len < 8)
        return err_set(eb, ERR_FORMAT, "file is %zu bytes, shorter than the 8-byte header length",
                       f->len);
    uint64_t hlen = read_u64le(f->base);
    if (hlen > ST_MAX_HEADER)
        return err_set(eb, ERR_FORMAT, "header length %llu exceeds the %u-byte limit",
                       (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > f->len - 8)
        return err_set(eb, ERR_FORMAT, "header length %llu is past the end of the %zu-byte file",
                       (unsigned long long)hlen, f->len);
    json_error_t jerr;
    json_t *root =
        json_loadb((const char *)f->base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return err_set(eb, ERR_FORMAT, "header is not valid JSON: %s (at byte %d)", jerr.text,
                       jerr.position);
    int rc = 0;
    span *spans = NULL;
    if (!json_is_object(root)) {
        rc = err_set(eb, ERR_FORMAT, "header is not a JSON object");
        goto out;
    }
    size_t n = json_object_size(root);
    if (n > ST_MAX_TENSORS) {
        rc = err_set(eb, ERR_FORMAT, "header lists %zu entries (at most %d)", n, ST_MAX_TENSORS);
        goto out;
    }
    const unsigned char *data = f->base + 8 + hlen;
    size_t data_len = f->len - 8 - (size_t)hlen;
    f->t = xcalloc(n + 1, sizeof(st_tensor));
    f->names = xcalloc(n + 1, sizeof(char *));
    spans = xcalloc(n + 1, sizeof(span));
    /* Keep header order: jansson preserves insertion order on iteration. */
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = parse_metadata(f, val, eb)) != 0)
                goto out;
            continue;
        }
        if (key[0] == '\0') {
            rc = err_set(eb, ERR_FORMAT, "a tensor has an empty name");
            goto out;
        }
        st_tensor *t = &f->t[f->n];
        f->names[f->n] = xstrdup(key);
        t->name = f->names[f->n];
        size_t begin = 0;
        if ((rc = parse_entry(t, val, data, data_len, &begin, eb)) != 0) {
            /* Not counted in f->n yet, so st_close would not free it. */
            free(f->names[f->n]);
            f->names[f->n] = NULL;
            goto out;
        }
        spans[f->n] = (span){begin, begin + t->nbytes, f->n};
        f->n++;
    }
    qsort(spans, (size_t)f->n, sizeof(span), span_cmp);
    for (int i = 1; i < f->n; i++) {
        if (spans[i].begin < spans[i - 1].end && spans[i].end > spans[i].begin &&
            spans[i - 1].end > spans[i - 1].begin) {
            rc = err_set(eb, ERR_FORMAT, "tensors '%s' and '%s' overlap in the data",
                         f->t[spans[i - 1].index].name, f->t[spans[i].index].name);
            goto out;
        }
    }
out:
    free(spans);
    json_decref(root);
    return rc;
}

static st_file *st_file_new(void)
{
    return xcalloc(1, sizeof(st_file));
}

int st_open(st_file **out, const char *path, errbuf *eb)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(eb, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(eb, ERR_IO, "%s: not a regular file", path);
    }
    st_file *f = st_file_new();
    f->len = (size_t)st.st_size;
    if (f->len > 0) {
        void *p = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            st_close(f);
            return err_set(eb, ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        }
        f->base = p;
        f->mapped = 1;
    }
    close(fd);
    int rc = st_parse(f, eb);
    if (rc != 0) {
        st_close(f);
        return err_prefix(eb, rc, "%s", path);
    }
    *out = f;
    return 0;
}

int st_open_memory(st_file **out, const void *buf, size_t len, errbuf *eb)
{
    *out = NULL;
    st_file *f = st_file_new();
    f->base = xmalloc(len);
    if (len)
        memcpy(f->base, buf, len);
    f->len = len;
    int rc = st_parse(f, eb);
    if (rc != 0) {
        st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

void st_close(st_file *f)
{
    if (f == NULL)
        return;
    if (f->mapped)
        munmap(f->base, f->len);
    else
        free(f->base);
    for (int i = 0; i < f->n; i++)
        free(f->names[i]);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->names);
    free(f->t);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f);
}

int st_count(const st_file *f)
{
    return f->n;
}

const st_tensor *st_get(const st_file *f, int i)
{
    return (i >= 0 && i < f->n) ? &f->t[i] : NULL;
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_vals[i];
    return NULL;
}

int st_meta_count(const st_file *f)
{
    return f->n_meta;
}

const char *st_meta_key(const st_file *f, int i)
{
    return (i >= 0 && i < f->n_meta) ? f->meta_keys[i] : NULL;
}

/* Tensor name of numel elements into *out; ERR_NOT_FOUND or ERR_FORMAT naming it. */
static int find_sized(const st_file *f, const char *name, size_t numel, const st_tensor **out,
                      errbuf *eb)
{
    const st_tensor *t = st_find(f, name);
    if (t == NULL)
        return err_set(eb, ERR_NOT_FOUND, "tensor '%s' is missing", name);
    if (t->numel != numel)
        return err_set(eb, ERR_FORMAT, "tensor '%s' has %zu elements, expected %zu", name, t->numel,
                       numel);
    *out = t;
    return 0;
}

int st_read_f32(const st_file *f, const char *name, float *dst, size_t numel, errbuf *eb)
{
    const st_tensor *t;
    int rc = find_sized(f, name, numel, &t, eb);
    if (rc != 0)
        return rc;
    if (t->dtype == ST_F32) {
        memcpy(dst, t->data, numel * sizeof(float));
    } else if (t->dtype == ST_F64) {
        const unsigned char *p = t->data;
        for (size_t i = 0; i < numel; i++) {
            double v;
            memcpy(&v, p + i * 8, 8);
            dst[i] = (float)v;
        }
    } else {
        return err_set(eb, ERR_FORMAT, "tensor '%s' is %s, expected F32", name,
                       dtype_name(t->dtype));
    }
    return 0;
}

int st_read_i64(const st_file *f, const char *name, int64_t *dst, size_t numel, errbuf *eb)
{
    const st_tensor *t;
    int rc = find_sized(f, name, numel, &t, eb);
    if (rc != 0)
        return rc;
    if (t->dtype != ST_I64)
        return err_set(eb, ERR_FORMAT, "tensor '%s' is %s, expected I64", name,
                       dtype_name(t->dtype));
    memcpy(dst, t->data, numel * sizeof(int64_t));
    return 0;
}

/* ---- writer --------------------------------------------------------------- */

typedef struct st_wtensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    void *data;
} st_wtensor;

struct st_writer {
    int n, cap;
    st_wtensor *t;
    json_t *meta;
};

st_writer *st_writer_new(void)
{
    st_writer *w = xcalloc(1, sizeof *w);
    w->meta = json_object();
    return w;
}

void st_writer_free(st_writer *w)
{
    if (w == NULL)
        return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    json_decref(w->meta);
    free(w);
}

void st_writer_meta(st_writer *w, const char *key, const char *value)
{
    json_object_set_new(w->meta, key, json_string(value));
}

int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
                  const void *data)
{
    if (name == NULL || name[0] == '\0' || strcmp(name, "__metadata__") == 0)
        return ERR_INVALID;
    if (ndim < 0 || ndim > ST_MAX_DIMS)
        return ERR_INVALID;
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return ERR_EXISTS;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] != 0 && numel > ST_MAX_NUMEL / (size_t)shape[i]))
            return ERR_INVALID;
        numel *= (size_t)shape[i];
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->t = xrealloc(w->t, (size_t)w->cap * sizeof(st_wtensor));
    }
    st_wtensor *t = &w->t[w->n++];
    t->name = xstrdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->nbytes = numel * dtype_size(dtype);
    t->data = xmalloc(t->nbytes);
    if (t->nbytes)
        memcpy(t->data, data, t->nbytes);
    return 0;
}

int st_writer_add_f32(st_writer *w, const char *name, int ndim, const int *shape, const float *data)
{
    int64_t s[ST_MAX_DIMS];
    if (ndim < 0 || ndim > ST_MAX_DIMS)
        return ERR_INVALID;
    for (int i = 0; i < ndim; i++)
        s[i] = shape[i];
    return st_writer_add(w, name, ST_F32, ndim, s, data);
}

/* Builds the padded JSON header; returns malloc'd text and its padded length. */
static char *writer_header(const st_writer *w, size_t *hlen)
{
    json_t *root = json_object();
    if (json_object_size(w->meta) > 0)
        json_object_set(root, "__metadata__", w->meta);
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_wtensor *t = &w->t[i];
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        json_t *e =
            json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtype_name(t->dtype), "shape", shape,
                      "data_offsets", (json_int_t)off, (json_int_t)off + (json_int_t)t->nbytes);
        json_object_set_new(root, w->t[i].name, e);
        off += t->nbytes;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (text == NULL)
        abort(); /* only fails on out-of-memory */
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    text = xrealloc(text, padded + 1);
    memset(text + n, ' ', padded - n);
    text[padded] = '\0';
    *hlen = padded;
    return text;
}

int st_writer_to_memory(const st_writer *w, void **buf, size_t *len)
{
    size_t hlen;
    char *header = writer_header(w, &hlen);
    size_t total = 8 + hlen;
    for (int i = 0; i < w->n; i++)
        total += w->t[i].nbytes;
    unsigned char *p = xmalloc(total);
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(p + 8, header, hlen);
    size_t off = 8 + hlen;
    for (int i = 0; i < w->n; i++) {
        if (w->t[i].nbytes)
            memcpy(p + off, w->t[i].data, w->t[i].nbytes);
        off += w->t[i].nbytes;
    }
    free(header);
    *buf = p;
    *len = total;
    return 0;
}

int st_writer_save(const st_writer *w, const char *path, errbuf *eb)
{
    void *buf;
    size_t len;
    st_writer_to_memory(w, &buf, &len);
    int rc = files_write_atomic(path, buf, len, eb); /* complete or absent after a crash */
    free(buf);
    return rc;
}
