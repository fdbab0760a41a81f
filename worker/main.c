/* main.c - kiln-worker: run a job locally, evaluate weights, or join a pool.
 *
 *   kiln-worker run JOB.json [--out DIR] [--metrics FILE] [--resume CKPT] [--no-progress]
 *   kiln-worker eval [--model CFG] --weights FILE [--data SPEC] [--batch N]
 *   kiln-worker export --onnx OUT.onnx --weights FILE [--model CFG] [--opset N]
 *   mpirun -np N kiln-worker --connect tcp://HOST:PORT [--pool-id ID]
 *
 * `run` and `eval` work with or without mpirun; under mpirun every rank
 * takes part (data-parallel). Only main() turns errors into exit codes:
 * 0 success, 1 job failed, 2 bad usage or bad input, 3 cancelled.
 */
#include "common/files.h"
#include "common/jobspec.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/version.h"
#include "common/xalloc.h"
#include "worker/data/loader.h"
#include "worker/dist.h"
#include "worker/export/onnx_export.h"
#include "worker/jobs/checkpoint.h"
#include "worker/jobs/job.h"
#include "worker/jobs/report.h"
#include "worker/jobs/train.h"
#include "worker/models/model.h"
#include "worker/models/netload.h"
#include "worker/nn/startup.h"
#include "worker/pool.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_JOB_FAILED 1
#define EXIT_USAGE      2
#define EXIT_CANCELLED  3

static void usage(FILE *to)
{
    fprintf(to, "usage:\n"
                "  kiln-worker run JOB.json [--out DIR] [--metrics FILE] [--resume CKPT] "
                "[--no-progress]\n"
                "  kiln-worker eval [--model CFG] --weights FILE [--data SPEC] [--batch N]\n"
                "                   [--dump FILE]   (also writes the test inputs, as the net sees\n"
                "                   them, their labels and top1 as JSON: to check an export)\n"
                "  kiln-worker export --onnx OUT.onnx --weights FILE [--model CFG] [--opset N]\n"
                "  mpirun -np N kiln-worker --connect tcp://HOST:PORT [--pool-id ID]\n"
                "  kiln-worker --version   (also which kernel path and BLAS core run)\n"
                "CFG and SPEC are JSON files or inline JSON text.\n");
}

/* Reads JSON from a file, or parses `arg` itself when it starts with '{'. */
static json_t *load_json_arg(const char *arg, const char *what)
{
    json_error_t jerr;
    json_t *j = arg[0] == '{' ? json_loads(arg, 0, &jerr) : json_load_file(arg, 0, &jerr);
    if (j == NULL)
        fprintf(stderr, "kiln-worker: %s %s: %s (line %d, column %d)\n", what, arg, jerr.text,
                jerr.line, jerr.column);
    return j;
}

static void print_field_errors(const char *what, const field_errors *fe)
{
    fprintf(stderr, "kiln-worker: %s is invalid:\n", what);
    for (int i = 0; i < fe->n; i++)
        fprintf(stderr, "  %s: %s\n", fe->e[i].field, fe->e[i].reason);
    if (fe->dropped)
        fprintf(stderr, "  (and %d more)\n", fe->dropped);
}

/* The job spec of a local run from path: parsed (its problems printed) and runnable
 * here (init_from a file, not a server's job or model). Returns 0, or EXIT_USAGE. */
static int read_local_spec(const char *path, job_spec *spec)
{
    json_t *j = load_json_arg(path, "job spec");
    if (j == NULL)
        return EXIT_USAGE;
    field_errors fe;
    fe_init(&fe);
    json_t *canonical = NULL;
    int rc = jobspec_parse(spec, &canonical, j, &fe);
    json_decref(j);
    json_decref(canonical);
    if (rc != 0) {
        print_field_errors(path, &fe);
        return EXIT_USAGE;
    }
    if (spec->init.kind == INIT_JOB || spec->init.kind == INIT_MODEL) {
        fprintf(stderr,
                "kiln-worker: %s: init_from: '%s' names a job or model of a server; "
                "`kiln-worker run` needs the path of a .safetensors file\n",
                path, spec->init_from);
        jobspec_free(spec);
        return EXIT_USAGE;
    }
    return 0;
}

/* A local run's end: on success rank 0 prints the summary as one JSON line (with the
 * out dir and the artifacts); otherwise the reason is logged. Returns the exit code. */
static int run_outcome(int rc, job_result *res, const char *dir, const errbuf *eb, int rank)
{
    if (rc == ERR_CANCELLED) {
        log_warn("%s", eb->msg);
        return EXIT_CANCELLED;
    }
    if (rc != 0) {
        log_error("job failed: %s", eb->msg);
        return (rc == ERR_INVALID || rc == ERR_FORMAT || rc == ERR_IO || rc == ERR_UNSUPPORTED)
                   ? EXIT_USAGE
                   : EXIT_JOB_FAILED;
    }
    if (rank == 0) {
        json_object_set_new(res->summary, "event", json_string("finished"));
        json_object_set_new(res->summary, "out_dir", json_string(dir));
        json_t *arts = json_array();
        for (int i = 0; i < res->n_artifacts; i++)
            json_array_append_new(arts, json_string(res->artifacts[i]));
        json_object_set_new(res->summary, "artifacts", arts);
        char *text = json_dumps(res->summary, JSON_COMPACT | JSON_REAL_PRECISION(6));
        printf("%s\n", text);
        free(text);
    }
    return 0;
}

static int cmd_run(int argc, char **argv, const dist_info *d)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},    {"metrics", required_argument, NULL, 'm'},
        {"resume", required_argument, NULL, 'r'}, {"no-progress", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *out_dir = NULL, *metrics_path = NULL, *resume = NULL;
    int progress = isatty(STDOUT_FILENO), c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:m:r:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out_dir = optarg;
            break;
        case 'm':
            metrics_path = optarg;
            break;
        case 'r':
            resume = optarg;
            break;
        case 'q':
            progress = 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *job_path = argv[optind];
    job_spec spec;
    if (read_local_spec(job_path, &spec) != 0)
        return EXIT_USAGE;
    char dir[KILN_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", out_dir ? out_dir : "runs");
    if (out_dir == NULL) {
        size_t used = strlen(dir);
        snprintf(dir + used, sizeof dir - used, "/%s", spec.name);
    }
    errbuf meb;
    if (d->rank == 0 && files_mkdirs(dir, &meb) != 0) {
        fprintf(stderr, "kiln-worker: %s\n", meb.msg);
        jobspec_free(&spec);
        return EXIT_USAGE;
    }
    FILE *mf = NULL;
    if (metrics_path != NULL && d->rank == 0) {
        mf = fopen(metrics_path, "w");
        if (mf == NULL) {
            fprintf(stderr, "kiln-worker: cannot write %s: %s\n", metrics_path, strerror(errno));
            jobspec_free(&spec);
            return EXIT_USAGE;
        }
    }
    report r;
    report_init(&r, mf, progress && d->rank == 0);
    job_sink sink = report_sink(&r);
    job_env env = {.dist = d,
                   .out_dir = dir,
                   .resume_path = resume,
                   .init_weights = spec.init.kind == INIT_PATH ? spec.init.path : NULL,
                   .sink = d->rank == 0 ? &sink : NULL};
    job_result res;
    errbuf eb = {{0}};
    int rc = job_run(&spec, &env, &res, &eb);
    report_finish(&r);
    if (mf != NULL)
        fclose(mf);
    int exit_code = run_outcome(rc, &res, dir, &eb, d->rank);
    job_result_free(&res);
    jobspec_free(&spec);
    return exit_code;
}

/* Writes the test split as the network sees it (normalised, NCHW, in the
 * loader's eval order), its labels, kiln's eval logits and top-1 to path as
 * JSON: {"shape":[N,C,H,W],"input":[...],"labels":[...],"classes":K,
 * "logits":[...N*K...],"top1":x,"n":N}, for
 * tests/export/check_onnx.mjs to score an exported network on the same
 * samples. Floats to 9 significant digits (exact for float32). 0 or -1. */
static int dump_eval_inputs(net *m, const dataset *ds, int batch, const eval_result *e,
                            const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "kiln-worker: cannot write %s\n", path);
        return -1;
    }
    loader_opts lo = {.batch = batch, .rank = 0, .world = 1, .seed = 0, .train = 0};
    loader *ld = loader_new(ds, &lo);
    size_t per = (size_t)ds->H * ds->W * ds->C;
    float *x = xmallocarray((size_t)batch * per, sizeof(float));
    int32_t *y = xmallocarray((size_t)batch, sizeof(int32_t));
    loader_start_epoch(ld, 0, 0);
    fprintf(f, "{\"shape\":[%ld,%d,%d,%d],\"input\":[", e->n, ds->C, ds->H, ds->W);
    long done = 0;
    int n;
    while ((n = loader_next(ld, x, y)) > 0)
        for (int b = 0; b < n; b++, done++) /* the loader's batches are channels-last */
            for (int c = 0; c < ds->C; c++)
                for (int i = 0; i < ds->H * ds->W; i++)
                    fprintf(f, "%s%.9g", done == 0 && c == 0 && i == 0 ? "" : ",",
                            (double)x[(size_t)b * per + (size_t)i * ds->C + c]);
    fprintf(f, "],\"labels\":[");
    loader_start_epoch(ld, 0, 0);
    long k = 0;
    while ((n = loader_next(ld, x, y)) > 0)
        for (int b = 0; b < n; b++, k++)
            fprintf(f, "%s%d", k ? "," : "", (int)y[b]);
    fprintf(f, "],\"classes\":%d,\"logits\":[", (int)net_out_size(m));
    loader_start_epoch(ld, 0, 0);
    k = 0;
    net_set_training(m, 0);
    while ((n = loader_next(ld, x, y)) > 0) {
        net_forward(m, x, n);
        const float *o = net_out(m);
        for (size_t i = 0; i < (size_t)n * net_out_size(m); i++, k++)
            fprintf(f, "%s%.9g", k ? "," : "", (double)o[i]);
    }
    fprintf(f, "],\"top1\":%.9g,\"n\":%ld}\n", e->top1, done);
    free(x);
    free(y);
    loader_free(ld);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || done != e->n) {
        fprintf(stderr, "kiln-worker: %s: %s\n", path,
                done != e->n ? "the loader gave another count than the evaluation"
                             : "write failed");
        return -1;
    }
    return 0;
}

/* The job spec `kiln-worker eval` evaluates with: the model config (--model, or the
 * one stored in the weights' metadata) and the data spec, through the job-spec
 * parser so that defaults and checks are a job's. 0, or EXIT_USAGE after saying
 * why on stderr. */
static int eval_spec(const char *model_arg, const char *weights, const char *data_arg,
                     job_spec *spec)
{
    json_t *model = NULL;
    if (model_arg != NULL) {
        model = load_json_arg(model_arg, "model config");
    } else {
        /* the model config travels with the weights */
        st_file *f;
        errbuf eb;
        if (st_open(&f, weights, &eb) != 0) {
            fprintf(stderr, "kiln-worker: %s\n", eb.msg);
            return EXIT_USAGE;
        }
        const char *meta = st_meta(f, "model");
        if (meta == NULL)
            fprintf(stderr, "kiln-worker: %s has no model metadata; pass --model\n", weights);
        else
            model = load_json_arg(meta, "model metadata of the weights");
        st_close(f);
    }
    if (model == NULL)
        return EXIT_USAGE;
    json_t *data = data_arg ? load_json_arg(data_arg, "data spec") : json_object();
    if (data == NULL) {
        json_decref(model);
        return EXIT_USAGE;
    }
    /* Validate through the job-spec parser, so defaults and checks are the same. */
    json_t *j = json_pack("{s:s, s:o, s:o, s:{s:i}}", "type", "train", "model", model, "data", data,
                          "optim", "batch_size", 1);
    field_errors fe;
    fe_init(&fe);
    int rc = jobspec_parse(spec, NULL, j, &fe);
    json_decref(j);
    if (rc != 0) {
        print_field_errors("model/data", &fe);
        return EXIT_USAGE;
    }
    return 0;
}

static int cmd_eval(int argc, char **argv, const dist_info *d)
{
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"weights", required_argument, NULL, 'w'},
                                         {"data", required_argument, NULL, 'd'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"dump", required_argument, NULL, 'D'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *model_arg = NULL, *weights = NULL, *data_arg = NULL, *dump = NULL;
    int batch = 256, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:w:d:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_arg = optarg;
            break;
        case 'w':
            weights = optarg;
            break;
        case 'd':
            data_arg = optarg;
            break;
        case 'b':
            batch = atoi(optarg);
            break;
        case 'D':
            dump = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (weights == NULL || optind != argc || batch < 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    job_spec spec;
    if (eval_spec(model_arg, weights, data_arg, &spec) != 0)
        return EXIT_USAGE;
    dataset train, test;
    errbuf eb = {{0}};
    spec.data.train_limit = 1; /* only the test split is used */
    if (dataset_load(&train, &test, &spec.data, &eb) != 0) {
        fprintf(stderr, "kiln-worker: %s\n", eb.msg);
        jobspec_free(&spec);
        return EXIT_USAGE;
    }
    net m;
    net_init(&m);
    int code = 0;
    if (model_build(&m, &spec.model, batch, 0, NULL, &eb) != 0 ||
        ckpt_load_weights(weights, &m, &eb) != 0) {
        fprintf(stderr, "kiln-worker: %s\n", eb.msg);
        code = EXIT_USAGE;
    } else {
        eval_result e;
        train_evaluate(&m, &test, batch, d, &e);
        if (d->rank == 0)
            printf("{\"top1\":%.6f,\"loss\":%.6f,\"n\":%ld,\"dataset\":\"%s\"}\n", e.top1, e.loss,
                   e.n, test.name);
        if (dump != NULL && d->rank == 0 && dump_eval_inputs(&m, &test, batch, &e, dump) != 0)
            code = EXIT_USAGE;
    }
    net_deinit(&m);
    dataset_free(&train);
    dataset_free(&test);
    jobspec_free(&spec);
    return code;
}

/* Writes the network of a weights file as ONNX (worker/export/onnx_export.h). */
static int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"onnx", required_argument, NULL, 'o'},  {"weights", required_argument, NULL, 'w'},
        {"model", required_argument, NULL, 'm'}, {"opset", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    const char *out = NULL, *weights = NULL, *model_arg = NULL;
    int opset = ONNX_EXPORT_OPSET, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:w:m:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'w':
            weights = optarg;
            break;
        case 'm':
            model_arg = optarg;
            break;
        case 'p':
            opset = atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (out == NULL || weights == NULL || optind != argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    net m;
    net_init(&m);
    json_t *cfg = NULL;
    errbuf eb = {{0}};
    int rc = netload_for_eval(&m, weights, model_arg, 1, NULL, &cfg, &eb);
    if (rc == 0) {
        char *text = json_dumps(cfg, JSON_COMPACT);
        onnx_prop props[2] = {{"kiln.model", text},
                              {"kiln.input", "NCHW float32, normalised as in training"}};
        rc = onnx_export_save(&m, opset, props, 2, out, &eb);
        free(text);
    }
    json_decref(cfg);
    net_deinit(&m);
    if (rc != 0) {
        fprintf(stderr, "kiln-worker: export: %s\n", eb.msg);
        return EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* The kernel path, the OpenMP spin and OpenBLAS's core were settled before main
     * (worker/nn/startup.h), re-executing this program once if the environment had to
     * change. */
    log_init("kiln-worker", LOG_INFO);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("kiln-worker %s\n%s\n", KILN_VERSION, nn_startup_summary());
        return 0;
    }
    if (strcmp(argv[1], "export") == 0) /* one process; no MPI */
        return cmd_export(argc - 1, argv + 1);
    dist_info d;
    if (dist_init(&argc, &argv, &d) != 0) {
        fprintf(stderr, "kiln-worker: cannot start MPI\n");
        return EXIT_JOB_FAILED;
    }
    if (d.rank == 0)
        log_info("engine: %s", nn_startup_summary());
    if (d.world > 1)
        log_info("rank %d of %d on host %s (local rank %d of %d), %d threads", d.rank, d.world,
                 d.host, d.local_rank, d.local_size, d.threads);
    int code;
    if (strcmp(argv[1], "run") == 0)
        code = cmd_run(argc - 1, argv + 1, &d);
    else if (strcmp(argv[1], "eval") == 0)
        code = cmd_eval(argc - 1, argv + 1, &d);
    else if (strncmp(argv[1], "--connect", 9) == 0)
        code = pool_main(argc, argv, &d);
    else {
        usage(stderr);
        code = EXIT_USAGE;
    }
    dist_finalize();
    return code;
}
