/* state.c - state_dict I/O of a net (see state.h). */
#include "worker/models/state.h"

#include <stdio.h>
#include <string.h>

static int ignored(const char *name, const char *const *ignore)
{
    for (int i = 0; ignore != NULL && ignore[i] != NULL; i++)
        if (strncmp(name, ignore[i], strlen(ignore[i])) == 0)
            return 1;
    return 0;
}

static void shape_str(char *buf, size_t len, int ndim, const int64_t *s)
{
    size_t used = 0;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
}

/* Whether file tensor s is the model's tensor t for another number of
 * classes: the same but for the first dimension, which is `classes` in m. */
static int other_head(const net_tensor *t, const st_tensor *s, int classes)
{
    if (classes <= 0 || t->kind != NET_PARAM || s->ndim != t->ndim || t->ndim < 1 ||
        t->shape[0] != classes || s->shape[0] == classes)
        return 0;
    for (int d = 1; d < t->ndim; d++)
        if (s->shape[d] != t->shape[d])
            return 0;
    return 1;
}

int net_load_state(net *m, const st_file *f, const char *const *ignore, errbuf *eb)
{
    return net_load_state_head(m, f, ignore, 0, NULL, 0, eb);
}

int net_load_state_head(net *m, const st_file *f, const char *const *ignore, int classes,
                        char *fresh, size_t fresh_len, errbuf *eb)
{
    size_t used = 0;
    if (fresh != NULL && fresh_len > 0)
        fresh[0] = '\0';
    for (int i = 0; i < m->n_tensors; i++) {
        const net_tensor *t = &m->tensors[i];
        const st_tensor *s = st_find(f, t->name);
        if (s == NULL)
            return err_set(eb, ERR_FORMAT, "tensor '%s' is missing from the weights file", t->name);
        int same = s->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = s->shape[d] == t->shape[d];
        if (!same && fresh != NULL && other_head(t, s, classes)) {
            int n = snprintf(fresh + used, fresh_len - used, "%s%s (%lld -> %d classes)",
                             used ? ", " : "", t->name, (long long)s->shape[0], classes);
            if (n > 0 && (size_t)n < fresh_len - used)
                used += (size_t)n;
            continue; /* keeps its fresh initialisation */
        }
        if (!same) {
            char got[128], want[128];
            int64_t ws[4];
            for (int d = 0; d < t->ndim; d++)
                ws[d] = t->shape[d];
            shape_str(got, sizeof got, s->ndim, s->shape);
            shape_str(want, sizeof want, t->ndim, ws);
            return err_set(eb, ERR_FORMAT, "tensor '%s' has shape %s, the model needs %s", t->name,
                           got, want);
        }
        int rc;
        if (t->kind == NET_COUNTER)
            rc = st_read_i64(f, t->name, m->counters + t->off, t->n, eb);
        else
            rc = st_read_f32(f, t->name, net_tensor_data(m, i), t->n, eb);
        if (rc != 0)
            return rc;
    }
    for (int i = 0; i < st_count(f); i++) {
        const char *name = st_get(f, i)->name;
        if (!ignored(name, ignore) && net_tensor_find(m, name) < 0)
            return err_set(eb, ERR_FORMAT, "tensor '%s' in the weights file is not in the model",
                           name);
    }
    return 0;
}

static void tensor_shape(const net_tensor *t, int64_t *s)
{
    for (int d = 0; d < t->ndim; d++)
        s[d] = t->shape[d];
}

void net_add_state(const net *m, st_writer *w, const char *prefix)
{
    char name[2 * NET_NAME_MAX];
    for (int i = 0; i < m->n_tensors; i++) {
        const net_tensor *t = &m->tensors[i];
        int64_t s[4];
        tensor_shape(t, s);
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        if (t->kind == NET_COUNTER)
            st_writer_add(w, name, ST_I64, t->ndim, s, m->counters + t->off);
        else
            st_writer_add(w, name, ST_F32, t->ndim, s, net_tensor_data(m, i));
    }
}

void net_add_param_like(const net *m, st_writer *w, const char *prefix, const float *block)
{
    char name[2 * NET_NAME_MAX];
    for (int i = 0; i < m->n_tensors; i++) {
        const net_tensor *t = &m->tensors[i];
        if (t->kind != NET_PARAM)
            continue;
        int64_t s[4];
        tensor_shape(t, s);
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        st_writer_add(w, name, ST_F32, t->ndim, s, block + t->off);
    }
}

int net_read_param_like(const net *m, const st_file *f, const char *prefix, float *block,
                        errbuf *eb)
{
    char name[2 * NET_NAME_MAX];
    for (int i = 0; i < m->n_tensors; i++) {
        const net_tensor *t = &m->tensors[i];
        if (t->kind != NET_PARAM)
            continue;
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        int rc = st_read_f32(f, name, block + t->off, t->n, eb);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int net_save_state(const net *m, const char *path, const char *model_json, errbuf *eb)
{
    st_writer *w = st_writer_new();
    if (model_json != NULL)
        st_writer_meta(w, "model", model_json);
    net_add_state(m, w, "");
    int rc = st_writer_save(w, path, eb);
    st_writer_free(w);
    return rc;
}
