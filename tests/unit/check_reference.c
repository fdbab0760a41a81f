/* check_reference.c - every PyTorch reference file in $KILN_REF, generically.
 *
 * `make test-reference REF=DIR` runs this suite alone on every DIR/NAME.safetensors
 * and on the whole-model files tests/reference/gen_models.py writes into
 * build/<mode>/ref ($KILN_REF is a colon-separated list of folders).
 * A file with a `model` metadata entry is a whole-model file (the procedure
 * of the reference README: eval logits, train logits and loss, every
 * gradient, every buffer after the step, and the checkpoint's names); any
 * other file is a set of layer cases, one per metadata key, dispatched by
 * the case's "op" attribute. Every shape and attribute comes from the file.
 * One check test per (file, case), so a failure names exactly what broke.
 */
#include "common/modelcfg.h"
#include "common/xalloc.h"
#include "tests/unit/ref_ops.h"
#include "tests/unit/refcase.h"
#include "tests/unit/testutil.h"
#include "worker/models/model.h"
#include "worker/models/state.h"
#include "worker/nn/loss.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Suite *suite_reference(void);

typedef struct ref_item {
    char path[1024];
    char name[128]; /* case name, or "" for a whole-model file */
} ref_item;

static ref_item *items;
static int n_items;

ref_runner ref_runner_for(const char *op)
{
    static const struct {
        const char *op;
        ref_runner run;
    } table[] = {
        {"conv2d", ref_run_conv2d},
        {"batchnorm2d", ref_run_batchnorm2d},
        {"maxpool2d", ref_run_maxpool2d},
        {"global_avgpool", ref_run_global_avgpool},
        {"linear", ref_run_linear},
        {"layernorm", ref_run_layernorm},
        {"gelu", ref_run_gelu},
        {"relu", ref_run_relu},
        {"relu6", ref_run_relu6},
        {"attention", ref_run_attention},
        {"softmax_cross_entropy", ref_run_softmax_cross_entropy},
        {"sgd", ref_run_sgd},
        {"adamw", ref_run_adamw},
        {"leff", ref_run_leff},
        {"lca_block", ref_run_lca_block},
        {"block", ref_run_block},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].op, op) == 0)
            return table[i].run;
    return NULL;
}

static void add_item(const char *path, const char *name)
{
    items = xrealloc(items, (size_t)(n_items + 1) * sizeof(ref_item));
    snprintf(items[n_items].path, sizeof items[n_items].path, "%s", path);
    snprintf(items[n_items].name, sizeof items[n_items].name, "%s", name);
    n_items++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the .safetensors files of one folder in name order and every case of each. */
static void discover_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        add_item(dir, "<missing folder>");
        return;
    }
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 12 && strcmp(e->d_name + len - 12, ".safetensors") == 0) {
            names = xrealloc(names, (size_t)(n + 1) * sizeof(char *));
            names[n++] = xstrdup(e->d_name);
        }
    }
    closedir(d);
    if (n == 0)
        add_item(dir, "<missing folder>");
    qsort(names, (size_t)n, sizeof(char *), cmp_str);
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%.767s/%.255s", dir, names[i]);
        st_file *f;
        errbuf eb;
        if (st_open(&f, path, &eb) != 0) {
            add_item(path, "<unreadable>");
        } else if (st_meta(f, "model") != NULL) {
            add_item(path, "");
        } else {
            for (int k = 0; k < st_meta_count(f); k++)
                add_item(path, st_meta_key(f, k));
            st_close(f);
            f = NULL;
        }
        st_close(f);
        free(names[i]);
    }
    free(names);
}

/* Every folder of $KILN_REF (colon-separated), in the order given. */
static void discover(void)
{
    const char *dirs = tu_ref_dirs();
    while (*dirs != '\0') {
        size_t n = strcspn(dirs, ":");
        char dir[768]; /* item paths are 1024: room for the file name */
        snprintf(dir, sizeof dir, "%.*s", (int)(n < sizeof dir ? n : sizeof dir - 1), dirs);
        if (n > 0)
            discover_dir(dir);
        dirs += n + (dirs[n] == ':');
    }
}

/* ---- whole-model files ------------------------------------------------------ */

typedef struct model_tol {
    double fwd, grad, state;
} model_tol;

/* A file's own tolerances (metadata `tolerances`: {"fwd", "grad", "state"},
 * which tests/reference/gen_models.py derives from the float32 reference's
 * error against a float64 recomputation), else those of the reference
 * README by family (MobileNetV2 is deeper in BN). */
static model_tol tolerances_for(const st_file *f, const model_cfg *c)
{
    model_tol t = {2e-5, 2e-4, 1e-5};
    if (c->arch == MC_MOBILENETV2)
        t = (model_tol){1e-4, 1e-3, 1e-5};
    const char *meta = st_meta(f, "tolerances");
    if (meta == NULL)
        return t;
    json_error_t jerr;
    json_t *j = json_loads(meta, 0, &jerr);
    ck_assert_msg(json_is_object(j), "tolerances metadata is not a JSON object: %s", meta);
    const char *keys[3] = {"fwd", "grad", "state"};
    double *dst[3] = {&t.fwd, &t.grad, &t.state};
    for (int k = 0; k < 3; k++) {
        const json_t *v = json_object_get(j, keys[k]);
        ck_assert_msg(json_is_number(v) && json_number_value(v) > 0 && json_number_value(v) < 0.1,
                      "tolerances.%s missing or not in (0, 0.1)", keys[k]);
        *dst[k] = json_number_value(v);
    }
    json_decref(j);
    printf("  tolerances from the file: fwd %.0e, grad %.0e, state %.0e\n", t.fwd, t.grad, t.state);
    return t;
}

static int listed(const json_t *list, const char *name)
{
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
            return 1;
    }
    return 0;
}

static double check_tensor(const st_file *f, const char *ref_name, const float *c, size_t n,
                           double tol, const json_t *zeros, double G, int nhwc)
{
    const st_tensor *t = st_find(f, ref_name);
    ck_assert_msg(t != NULL, "reference tensor '%s' is missing", ref_name);
    ck_assert_msg(t->numel == n, "%s: engine has %zu elements, reference %zu", ref_name, n,
                  t->numel);
    float *r = tu_tensor(f, ref_name, NULL);
    float *tmp = NULL;
    if (nhwc && t->ndim == 4) {
        tmp = xmallocarray(n, sizeof(float));
        tu_nhwc_to_nchw(tmp, c, (int)t->shape[0], (int)t->shape[1], (int)t->shape[2],
                        (int)t->shape[3]);
        c = tmp;
    }
    double err;
    if (listed(zeros, ref_name)) {
        err = tu_max_abs(c, n);
        printf("  %-48s exact-zero max|c| %.2e (limit %.2e)\n", ref_name, err, 1e-5 * G);
        ck_assert_msg(err <= 1e-5 * G, "%s should be exactly zero: max|c| %.3e", ref_name, err);
    } else {
        err = tu_rel_err(c, r, n);
        printf("  %-48s rel err %.2e (tol %.0e)\n", ref_name, err, tol);
        ck_assert_msg(err <= tol, "%s: rel err %.3e > tol %.1e", ref_name, err, tol);
    }
    free(tmp);
    free(r);
    return err;
}

static void run_model_file(const char *path)
{
    st_file *f;
    errbuf eb;
    ck_assert_msg(st_open(&f, path, &eb) == 0, "%s", eb.msg);
    json_error_t jerr;
    json_t *cfg_json = json_loads(st_meta(f, "model"), 0, &jerr);
    ck_assert_msg(cfg_json != NULL, "%s: model metadata is not JSON: %s", path, jerr.text);
    json_t *zeros =
        json_loads(st_meta(f, "exact_zeros") ? st_meta(f, "exact_zeros") : "[]", 0, &jerr);
    ck_assert_msg(zeros != NULL, "%s: exact_zeros is not JSON", path);
    model_cfg cfg;
    field_errors fe;
    fe_init(&fe);
    char fe_text[1024];
    int rc = modelcfg_parse(&cfg, cfg_json, "model", &fe);
    fe_format(&fe, fe_text, sizeof fe_text);
    ck_assert_msg(rc == 0, "%s: model config rejected: %s", path, fe_text);

    /* 1. build and load every state tensor by name, strictly */
    const st_tensor *xt = st_find(f, "input.x");
    ck_assert_msg(xt != NULL && xt->ndim == 4, "%s: input.x missing or not 4-D", path);
    int B = (int)xt->shape[0], C = (int)xt->shape[1], H = (int)xt->shape[2], W = (int)xt->shape[3];
    net m;
    net_init(&m);
    ck_assert_msg(model_build(&m, &cfg, B, 0, NULL, &eb) == 0, "%s: %s", path, eb.msg);
    static const char *const ignore[] = {"input.", "output.", "eval.", "grad.", "after.", NULL};
    ck_assert_msg(net_load_state(&m, f, ignore, &eb) == 0, "%s: %s", path, eb.msg);
    printf("%s: %s, %zu params\n", path, st_meta(f, "model"), m.n_params);
    model_tol tol = tolerances_for(f, &cfg);
    /* the counts PyTorch made (parameters; MACs by hooks on every conv and linear) */
    if (st_meta(f, "params") != NULL) {
        long want = atol(st_meta(f, "params"));
        ck_assert_msg(modelcfg_params(&cfg) == want && (long)m.n_params == want,
                      "%s: params: config %ld, net %zu, PyTorch %ld", path, modelcfg_params(&cfg),
                      m.n_params, want);
    }
    if (st_meta(f, "macs") != NULL) {
        double want = atof(st_meta(f, "macs"));
        ck_assert_msg(modelcfg_macs(&cfg) == want && net_macs(&m) == want,
                      "%s: MACs: config %.0f, net %.0f, PyTorch %.0f", path, modelcfg_macs(&cfg),
                      net_macs(&m), want);
    }

    float *x_nchw = tu_tensor(f, "input.x", NULL);
    float *x = xmallocarray((size_t)B * C * H * W, sizeof(float));
    tu_nchw_to_nhwc(x, x_nchw, B, C, H, W);
    size_t ny;
    int *y = NULL;
    {
        const st_tensor *yt = st_find(f, "input.y");
        ck_assert_msg(yt != NULL, "input.y missing");
        int64_t *y64 = xmallocarray(yt->numel, sizeof(int64_t));
        ck_assert(st_read_i64(f, "input.y", y64, yt->numel, &eb) == 0);
        ny = yt->numel;
        y = xmallocarray(ny, sizeof(int));
        for (size_t i = 0; i < ny; i++)
            y[i] = (int)y64[i];
        free(y64);
    }
    int K = cfg.num_classes;
    ck_assert_int_eq((int)ny, B);
    ck_assert_int_eq((int)net_out_size(&m), K);

    /* 2. eval first: the training forward changes the running statistics */
    net_set_training(&m, 0);
    net_forward(&m, x, B);
    check_tensor(f, "eval.logits", net_out(&m), (size_t)B * K, tol.fwd, zeros, 0, 0);

    /* 3. training forward, loss, backward */
    net_set_training(&m, 1);
    net_zero_grad(&m);
    net_forward(&m, x, B);
    check_tensor(f, "output.logits", net_out(&m), (size_t)B * K, tol.fwd, zeros, 0, 0);
    float *probs = xmallocarray((size_t)B * K, sizeof(float));
    float *dlogits = xcalloc((size_t)B * K, sizeof(float));
    float loss = nn_crossentropy_forward(probs, NULL, net_out(&m), y, B, K, 0.0f);
    check_tensor(f, "output.loss", &loss, 1, tol.fwd, zeros, 0, 0);
    nn_crossentropy_backward(dlogits, probs, y, B, K, 0.0f, 1.0f);
    net_backward(&m, dlogits);

    double G = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        char name[2 * NET_NAME_MAX];
        snprintf(name, sizeof name, "grad.%s", m.tensors[i].name);
        if (m.tensors[i].kind == NET_PARAM && st_find(f, name) != NULL) {
            float *r = tu_tensor(f, name, NULL);
            G = fmax(G, tu_max_abs(r, m.tensors[i].n));
            free(r);
        }
    }
    for (int i = 0; i < m.n_tensors; i++) {
        const net_tensor *t = &m.tensors[i];
        char name[2 * NET_NAME_MAX];
        if (t->kind == NET_PARAM) {
            snprintf(name, sizeof name, "grad.%s", t->name);
            check_tensor(f, name, net_tensor_grad(&m, i), t->n, tol.grad, zeros, G, 0);
        } else if (t->kind == NET_BUFFER) {
            snprintf(name, sizeof name, "after.%s", t->name);
            check_tensor(f, name, net_tensor_data(&m, i), t->n, tol.state, zeros, G, 0);
        } else {
            snprintf(name, sizeof name, "after.%s", t->name);
            int64_t want;
            ck_assert(st_read_i64(f, name, &want, 1, &eb) == 0);
            ck_assert_msg(m.counters[t->off] == want, "%s: %lld, reference %lld", name,
                          (long long)m.counters[t->off], (long long)want);
        }
    }

    /* 4. a checkpoint written by the engine lists the same names and shapes */
    st_writer *w = st_writer_new();
    net_add_state(&m, w, "");
    void *buf;
    size_t len;
    st_writer_to_memory(w, &buf, &len);
    st_writer_free(w);
    st_file *back;
    ck_assert(st_open_memory(&back, buf, len, &eb) == 0);
    int n_state = 0;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_get(f, i);
        int skip = 0;
        for (int k = 0; ignore[k] != NULL; k++)
            skip |= strncmp(t->name, ignore[k], strlen(ignore[k])) == 0;
        if (skip)
            continue;
        const st_tensor *u = st_find(back, t->name);
        ck_assert_msg(u != NULL, "checkpoint lacks '%s'", t->name);
        ck_assert_msg(u->ndim == t->ndim && u->dtype == t->dtype, "'%s' differs", t->name);
        for (int d = 0; d < t->ndim; d++)
            ck_assert_int_eq(u->shape[d], t->shape[d]);
        /* same order as PyTorch's state_dict */
        ck_assert_msg(strcmp(st_get(back, n_state)->name, t->name) == 0,
                      "checkpoint order: '%s' where the reference has '%s'",
                      st_get(back, n_state)->name, t->name);
        n_state++;
    }
    ck_assert_int_eq(n_state, st_count(back));
    st_close(back);
    free(buf);

    free(probs);
    free(dlogits);
    free(x);
    free(x_nchw);
    free(y);
    net_deinit(&m);
    json_decref(zeros);
    json_decref(cfg_json);
    st_close(f);
}

/* ---- layer cases -------------------------------------------------------------- */

static void run_case(const char *path, const char *name)
{
    st_file *f;
    errbuf eb;
    ck_assert_msg(st_open(&f, path, &eb) == 0, "%s", eb.msg);
    ref_case c;
    ref_case_init(&c, f, name);
    const char *op = ref_attr_str(&c, "op");
    ref_runner run = ref_runner_for(op);
    ck_assert_msg(run != NULL, "%s: case '%s' has op '%s', which no runner handles", path, name,
                  op);
    printf("%s: case %s (op %s)\n", path, name, op);
    run(&c);
    ref_case_deinit(&c);
    st_close(f);
}

START_TEST(reference_item)
{
    const ref_item *it = &items[_i];
    ck_assert_msg(strcmp(it->name, "<missing folder>") != 0, "no reference folder at %s", it->path);
    ck_assert_msg(strcmp(it->name, "<unreadable>") != 0, "cannot read %s", it->path);
    if (it->name[0] == '\0')
        run_model_file(it->path);
    else
        run_case(it->path, it->name);
}
END_TEST

Suite *suite_reference(void)
{
    Suite *s = suite_create("reference");
    if (n_items == 0)
        discover();
    TCase *tc = tu_case_add(s, "files", 120, NULL, NULL, NULL, 0);
    tcase_add_loop_test(tc, reference_item, 0, n_items);
    return s;
}
