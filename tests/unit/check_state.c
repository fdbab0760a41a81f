/* check_state.c - weights files in and out of a net, and checkpoints.
 *
 * A weights file round-trips exactly; a missing, extra or misshaped tensor,
 * a wrong dtype or a corrupt file is an error that names the tensor (or the
 * file); a checkpoint restores the optimizer state and step; and a file
 * with the wrong model refuses to load rather than loading part of it.
 */
#include "common/safetensors.h"
#include "common/xalloc.h"
#include "tests/unit/testutil.h"
#include "worker/jobs/checkpoint.h"
#include "worker/models/model.h"
#include "worker/models/state.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Suite *suite_state(void);

static void build(net *m, const char *config)
{
    model_cfg c;
    tu_model_cfg(&c, config);
    errbuf eb;
    net_init(m);
    ck_assert_msg(model_build(m, &c, 2, 7, NULL, &eb) == 0, "%s", eb.msg);
}

static const char *SMALL = "{\"arch\":\"resnet_cifar\",\"image_size\":8,\"in_channels\":1,"
                           "\"num_classes\":3,\"stem\":4,\"stages\":[{\"width\":4,\"mids\":[4]},"
                           "{\"width\":8,\"mids\":[8]}]}";

/* The state of m as a file image, with tensor `drop` left out, `extra`
 * added, or `reshape` given one more element (NULL: none of them). */
static st_file *state_image(const net *m, const char *drop, const char *extra, const char *reshape)
{
    st_writer *w = st_writer_new();
    for (int i = 0; i < m->n_tensors; i++) {
        const net_tensor *t = &m->tensors[i];
        if (drop != NULL && strcmp(t->name, drop) == 0)
            continue;
        int64_t s[4];
        for (int d = 0; d < t->ndim; d++)
            s[d] = t->shape[d];
        if (t->kind == NET_COUNTER) {
            st_writer_add(w, t->name, ST_I64, t->ndim, s, m->counters + t->off);
        } else if (reshape != NULL && strcmp(t->name, reshape) == 0) {
            float *v = xcalloc(t->n + 1, sizeof(float));
            int64_t one[1] = {(int64_t)t->n + 1};
            st_writer_add(w, t->name, ST_F32, 1, one, v);
            free(v);
        } else {
            st_writer_add(w, t->name, ST_F32, t->ndim, s, net_tensor_data(m, i));
        }
    }
    if (extra != NULL) {
        float v = 1;
        int64_t one[1] = {1};
        st_writer_add(w, extra, ST_F32, 1, one, &v);
    }
    void *buf;
    size_t len;
    st_writer_to_memory(w, &buf, &len);
    st_writer_free(w);
    st_file *f;
    errbuf eb;
    ck_assert_msg(st_open_memory(&f, buf, len, &eb) == 0, "%s", eb.msg);
    free(buf);
    return f;
}

START_TEST(roundtrip_is_exact)
{
    net a, b;
    build(&a, SMALL);
    build(&b, SMALL);
    net_init_params(&b, 99); /* different weights before loading */
    a.counters[0] = 17;
    a.buffers[0] = 0.25f;
    st_file *f = state_image(&a, NULL, NULL, NULL);
    errbuf eb;
    ck_assert_msg(net_load_state(&b, f, NULL, &eb) == 0, "%s", eb.msg);
    ck_assert_mem_eq(a.params, b.params, a.n_params * sizeof(float));
    ck_assert_mem_eq(a.buffers, b.buffers, a.n_buffers * sizeof(float));
    ck_assert_int_eq(b.counters[0], 17);
    st_close(f);
    net_deinit(&a);
    net_deinit(&b);
}
END_TEST

START_TEST(errors_name_the_tensor)
{
    net m;
    build(&m, SMALL);
    errbuf eb;
    st_file *f = state_image(&m, "layer2.0.conv1.weight", NULL, NULL);
    ck_assert_int_eq(net_load_state(&m, f, NULL, &eb), ERR_FORMAT);
    ck_assert_msg(strstr(eb.msg, "layer2.0.conv1.weight") && strstr(eb.msg, "missing"), "%s",
                  eb.msg);
    st_close(f);
    f = state_image(&m, NULL, "layer9.bogus", NULL);
    ck_assert_int_eq(net_load_state(&m, f, NULL, &eb), ERR_FORMAT);
    ck_assert_msg(strstr(eb.msg, "layer9.bogus") && strstr(eb.msg, "not in the model"), "%s",
                  eb.msg);
    st_close(f);
    f = state_image(&m, NULL, NULL, "fc.weight");
    ck_assert_int_eq(net_load_state(&m, f, NULL, &eb), ERR_FORMAT);
    ck_assert_msg(strstr(eb.msg, "fc.weight") && strstr(eb.msg, "shape"), "%s", eb.msg);
    st_close(f);
    /* an extra tensor under an ignored prefix is fine */
    static const char *const ignore[] = {"optim.", NULL};
    f = state_image(&m, NULL, "optim.m.fc.weight", NULL);
    ck_assert_msg(net_load_state(&m, f, ignore, &eb) == 0, "%s", eb.msg);
    st_close(f);
    net_deinit(&m);
}
END_TEST

START_TEST(wrong_model_and_corrupt_files)
{
    net small, other;
    build(&small, SMALL);
    build(&other,
          "{\"arch\":\"resnet_cifar\",\"image_size\":8,\"in_channels\":1,\"num_classes\":3,"
          "\"stem\":4,\"stages\":[{\"width\":4,\"mids\":[4]},{\"width\":16,\"mids\":[8]}]}");
    char path[] = "/tmp/kiln-state-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    errbuf eb;
    ck_assert(net_save_state(&other, path, NULL, &eb) == 0);
    int rc = ckpt_load_weights(path, &small, &eb);
    ck_assert_int_eq(rc, ERR_FORMAT);
    ck_assert_msg(strstr(eb.msg, path) != NULL && strstr(eb.msg, "shape") != NULL, "%s", eb.msg);
    /* a truncated file names the file */
    ck_assert_int_eq(truncate(path, 100), 0);
    ck_assert_int_eq(ckpt_load_weights(path, &small, &eb), ERR_FORMAT);
    ck_assert_msg(strstr(eb.msg, path) != NULL, "%s", eb.msg);
    unlink(path);
    net_deinit(&small);
    net_deinit(&other);
}
END_TEST

START_TEST(checkpoint_restores_optimizer_and_step)
{
    net a, b;
    build(&a, SMALL);
    build(&b, SMALL);
    for (size_t i = 0; i < a.n_params; i++) {
        a.opt_m[i] = (float)i * 0.5f;
        a.opt_v[i] = (float)i * 0.25f;
    }
    ckpt_info info = {.step = 1234};
    rng_seed(&info.dp_rng, 5);
    char path[] = "/tmp/kiln-ckpt-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    errbuf eb;
    ck_assert_msg(ckpt_save(path, &a, &info, "{}", NULL, &eb) == 0, "%s", eb.msg);
    ckpt_info got;
    ck_assert_msg(ckpt_load(path, &b, &got, &eb) == 0, "%s", eb.msg);
    ck_assert_int_eq(got.step, 1234);
    ck_assert_mem_eq(&got.dp_rng, &info.dp_rng, sizeof info.dp_rng);
    ck_assert_mem_eq(a.params, b.params, a.n_params * sizeof(float));
    ck_assert_mem_eq(a.opt_m, b.opt_m, a.n_params * sizeof(float));
    ck_assert_mem_eq(a.opt_v, b.opt_v, a.n_params * sizeof(float));
    /* plain weights are not a checkpoint */
    ck_assert(net_save_state(&a, path, NULL, &eb) == 0);
    ck_assert_int_ne(ckpt_load(path, &b, &got, &eb), 0);
    ck_assert_msg(strstr(eb.msg, "optim.") != NULL || strstr(eb.msg, "train.") != NULL, "%s",
                  eb.msg);
    unlink(path);
    net_deinit(&a);
    net_deinit(&b);
}
END_TEST

/* Fresh weights follow the reference models' rules (ALGORITHMS 1.6): Linear
 * N(0, 0.02^2) as PyTorch's trunc_normal_ (bounds +-2 absolute, so no
 * visible truncation) with zero bias, LayerNorm (1, 0), cls_token and
 * pos_embed N(0, 0.02^2), pos_layer_embed 0, convolutions uniform within
 * 1/sqrt(fan_in), BN (1, 0) with running stats (0, 1). */
START_TEST(fresh_weights_follow_the_init_rules)
{
    net m;
    build(&m, "{\"arch\":\"ceit\",\"image_size\":28,\"in_channels\":1,\"num_classes\":10,"
              "\"embed_dim\":96,\"depth\":2,\"num_heads\":3,\"patch_size\":2}");
    for (int i = 0; i < m.n_tensors; i++) {
        const net_tensor *t = &m.tensors[i];
        const char *name = t->name;
        size_t len = strlen(name);
        if (t->kind == NET_COUNTER)
            continue;
        const float *v = net_tensor_data(&m, i);
        double sum = 0, sq = 0, mx = 0;
        for (size_t k = 0; k < t->n; k++) {
            sum += (double)v[k];
            sq += (double)v[k] * (double)v[k];
            mx = fmax(mx, fabs((double)v[k]));
        }
        double mean = sum / (double)t->n, sd = sqrt(sq / (double)t->n - mean * mean);
        int is_linear_w = t->ndim == 2 && len > 7 && strcmp(name + len - 7, ".weight") == 0;
        if (is_linear_w && t->n >= 4000) {
            ck_assert_msg(fabs(sd - 0.02) < 0.002, "%s: std %.4f, want 0.02", name, sd);
            ck_assert_msg(mx > 0.05, "%s: max %.4f: truncated too tightly", name, mx);
        } else if (strcmp(name, "pos_embed") == 0) {
            ck_assert_msg(fabs(sd - 0.02) < 0.003, "%s: std %.4f, want 0.02", name, sd);
        } else if (strcmp(name, "pos_layer_embed") == 0 || strstr(name, "running_mean")) {
            ck_assert_msg(mx == 0, "%s must start at zero", name);
        } else if (t->ndim == 4) {
            double fan_in = (double)t->shape[1] * t->shape[2] * t->shape[3];
            ck_assert_msg(mx <= 1 / sqrt(fan_in) + 1e-7 && mx > 0.5 / sqrt(fan_in),
                          "%s: max %.4f for bound %.4f", name, mx, 1 / sqrt(fan_in));
        } else if (strstr(name, "norm") != NULL || strstr(name, "running_var") != NULL ||
                   (strstr(name, ".bn") != NULL && strstr(name, ".weight") != NULL)) {
            int ones = strstr(name, "weight") != NULL || strstr(name, "running_var") != NULL;
            for (size_t k = 0; k < t->n; k++)
                ck_assert_msg(v[k] == (ones ? 1.0f : 0.0f), "%s[%zu] = %g", name, k, (double)v[k]);
        } else if (t->ndim == 1 && strstr(name, "attn.") != NULL) {
            ck_assert_msg(mx == 0, "%s: linear biases start at zero", name);
        }
    }
    net_deinit(&m);
}
END_TEST

Suite *suite_state(void)
{
    Suite *s = suite_create("state");
    tu_case_add(s, "core", 0, NULL, NULL,
                TU_TESTS(roundtrip_is_exact, errors_name_the_tensor, wrong_model_and_corrupt_files,
                         checkpoint_restores_optimizer_and_step,
                         fresh_weights_follow_the_init_rules));
    return s;
}
