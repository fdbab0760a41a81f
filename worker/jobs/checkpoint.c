/* checkpoint.c - training checkpoints (see checkpoint.h). */
#include "worker/jobs/checkpoint.h"

#include "common/safetensors.h"
#include "worker/models/state.h"

#include <stdio.h>
#include <string.h>

static const char *const TRAIN_PREFIXES[] = {"optim.", "train.", NULL};

int ckpt_save(const char *path, const net *m, const ckpt_info *info, const char *model_json,
              const char *spec_json, errbuf *eb)
{
    st_writer *w = st_writer_new();
    st_writer_meta(w, "kind", "checkpoint");
    if (model_json != NULL)
        st_writer_meta(w, "model", model_json);
    if (spec_json != NULL)
        st_writer_meta(w, "spec", spec_json);
    net_add_state(m, w, "");
    net_add_param_like(m, w, "optim.m.", m->opt_m);
    net_add_param_like(m, w, "optim.v.", m->opt_v);
    int64_t step = info->step, shape4[1] = {4}, rs[4];
    for (int i = 0; i < 4; i++)
        memcpy(&rs[i], &info->dp_rng.s[i], sizeof rs[i]);
    st_writer_add(w, "train.step", ST_I64, 0, NULL, &step);
    st_writer_add(w, "train.rng", ST_I64, 1, shape4, rs);
    int rc = st_writer_save(w, path, eb);
    st_writer_free(w);
    return rc;
}

int ckpt_load(const char *path, net *m, ckpt_info *info, errbuf *eb)
{
    st_file *f;
    int rc = st_open(&f, path, eb);
    if (rc != 0)
        return rc;
    int64_t step, rs[4];
    if ((rc = net_load_state(m, f, TRAIN_PREFIXES, eb)) != 0 ||
        (rc = net_read_param_like(m, f, "optim.m.", m->opt_m, eb)) != 0 ||
        (rc = net_read_param_like(m, f, "optim.v.", m->opt_v, eb)) != 0 ||
        (rc = st_read_i64(f, "train.step", &step, 1, eb)) != 0 ||
        (rc = st_read_i64(f, "train.rng", rs, 4, eb)) != 0) {
        st_close(f);
        return err_prefix(eb, rc, "checkpoint %s", path);
    }
    if (step < 0) {
        st_close(f);
        return err_set(eb, ERR_FORMAT, "checkpoint %s: negative train.step", path);
    }
    info->step = (long)step;
    for (int i = 0; i < 4; i++)
        memcpy(&info->dp_rng.s[i], &rs[i], sizeof rs[i]);
    st_close(f);
    return 0;
}

int ckpt_load_init(const char *path, net *m, int classes, char *fresh, size_t fresh_len, errbuf *eb)
{
    st_file *f;
    int rc = st_open(&f, path, eb);
    if (rc != 0)
        return rc;
    char heads[300];
    rc = net_load_state_head(m, f, TRAIN_PREFIXES, classes, heads, sizeof heads, eb);
    st_close(f);
    if (rc != 0)
        return err_prefix(eb, rc, "weights %s", path);
    if (heads[0] != '\0')
        snprintf(fresh, fresh_len, "loaded all but the head; freshly initialised: %s", heads);
    else if (fresh_len > 0)
        fresh[0] = '\0';
    return 0;
}

int ckpt_load_weights(const char *path, net *m, errbuf *eb)
{
    st_file *f;
    int rc = st_open(&f, path, eb);
    if (rc != 0)
        return rc;
    rc = net_load_state(m, f, TRAIN_PREFIXES, eb);
    st_close(f);
    if (rc != 0)
        return err_prefix(eb, rc, "weights %s", path);
    return 0;
}
