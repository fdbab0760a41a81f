/* pool.c - kiln-worker's pool mode (see pool.h).
 *
 * Rank 0 owns the link to the server and a signal thread; every rank loops:
 * rank 0 waits for an assignment and broadcasts a command (run or quit),
 * then the job spec and the checkpoint to resume from; every rank runs the
 * job with job_run; rank 0 reports the outcome (finished, cancelled or
 * failed with a reason) and the artifacts. Ranks other than 0 wait for the
 * next command with a polling broadcast, so an idle pool does not spin.
 *
 * SIGINT, SIGTERM and SIGUSR1 stop the pool gracefully, on any rank: the
 * running job stops at the next step on every rank (dist_any_stop), its
 * checkpoint and a `failed` POOL_STOPPED go to the server, which resumes the
 * job elsewhere from that checkpoint at once, and the pool leaves. SIGUSR1 is
 * the one to send through mpirun, which forwards it to every rank (mpirun
 * itself answers SIGTERM by killing the ranks a second later): see
 * deploy/kiln-pool. An idle pool checks for a stop every POOL_IDLE_CHECK_MS.
 */
#include "worker/pool.h"

#include "common/files.h"
#include "common/jobspec.h"
#include "common/keyfile.h"
#include "common/log.h"
#include "common/meminfo.h"
#include "common/safetensors.h"
#include "common/version.h"
#include "common/xalloc.h"
#include "worker/initcache.h"
#include "worker/jobs/job.h"
#include "worker/link.h"
#include "worker/linksink.h"
#include "worker/nn/startup.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define POOL_IDLE_POLL_MS  20
#define POOL_IDLE_CHECK_MS 1000
#define POOL_FLUSH_MS      10000

enum { CMD_QUIT = 0, CMD_RUN = 1, CMD_IDLE = 2 };

typedef struct pool {
    const dist_info *d;
    pool_link *link; /* rank 0 */
    char work_root[512];
    volatile sig_atomic_t quitting; /* the pool ends the signal thread (SIGUSR2) */
    pthread_t sig_thread;
    sigset_t sigs;
} pool;

/* The signal thread: turns SIGINT/SIGTERM/SIGUSR1 into this rank's stop request
 * (dist_stop_request). A SIGUSR2 from outside is ignored. */
static void *signal_main(void *arg)
{
    pool *p = arg;
    int sig;
    while (sigwait(&p->sigs, &sig) == 0) {
        if (sig == SIGUSR2) {
            if (p->quitting)
                break;
            continue;
        }
        if (!dist_stop_requested())
            log_info("signal %d: stopping at the next step, then leaving", sig);
        dist_stop_request();
        if (p->link != NULL)
            link_interrupt(p->link);
    }
    return NULL;
}

/* The job's cancel check: the server's cancel, or a stop signal. */
typedef struct pool_sink {
    job_sink inner;
    pool *p;
} pool_sink;

static int pool_sink_cancel(void *ctx)
{
    pool_sink *ps = ctx;
    return dist_stop_requested() || ps->inner.cancel_requested(ps->inner.ctx);
}

static void pool_sink_started(void *ctx, long total)
{
    pool_sink *ps = ctx;
    ps->inner.started(ps->inner.ctx, total);
}

static void pool_sink_metric(void *ctx, const char *name, double value, long step, double epoch)
{
    pool_sink *ps = ctx;
    ps->inner.metric(ps->inner.ctx, name, value, step, epoch);
}

static void pool_sink_log(void *ctx, const char *level, const char *text)
{
    pool_sink *ps = ctx;
    log_msg(strcmp(level, "error") == 0 ? LOG_ERROR : LOG_INFO, "%s", text);
    ps->inner.log(ps->inner.ctx, level, text);
}

static void pool_sink_checkpoint(void *ctx, const char *path, long step)
{
    pool_sink *ps = ctx;
    ps->inner.checkpoint(ps->inner.ctx, path, step);
}

static job_sink pool_sink_wrap(pool_sink *ps)
{
    job_sink s = {.ctx = ps,
                  .started = pool_sink_started,
                  .metric = pool_sink_metric,
                  .log = pool_sink_log,
                  .checkpoint = pool_sink_checkpoint,
                  .cancel_requested = pool_sink_cancel};
    return s;
}

static const char *failure_reason(int rc)
{
    switch (rc) {
    case ERR_INVALID:
    case ERR_FORMAT:
    case ERR_IO:
        return "INVALID_DATA";
    case ERR_UNSUPPORTED:
        return "UNSUPPORTED";
    case ERR_NOMEM:
        return "OUT_OF_MEMORY";
    default:
        return "INTERNAL";
    }
}

static void remove_tree(const char *dir)
{
    errbuf eb;
    if (files_remove_tree(dir, &eb) < 0)
        log_warn("could not remove %s: %s", dir, eb.msg);
}

/* Rank 0's report of a job's outcome to the server. stopping: the pool was
 * asked to leave (on some rank). */
static void report_outcome(pool *p, const link_assignment *a, int rc, int stopping,
                           const job_result *res, const char *out_dir, const errbuf *eb)
{
    if (rc == 0 || (rc == ERR_CANCELLED && !stopping)) {
        link_artifact arts[JOB_MAX_ARTIFACTS];
        static char paths[JOB_MAX_ARTIFACTS][KILN_PATH_MAX]; /* rank 0's loop only */
        int n = rc == 0 ? res->n_artifacts : 0;
        for (int i = 0; i < n; i++) {
            files_pathf(paths[i], NULL, "%s/%s", out_dir, res->artifacts[i]); /* fits: dir did */
            arts[i] = (link_artifact){.name = res->artifacts[i], .path = paths[i]};
        }
        errbuf feb = {{0}};
        if (link_finished(p->link, a->job_id, a->attempt, rc == ERR_CANCELLED, res->summary, arts,
                          n, &feb) != 0)
            link_failed(p->link, a->job_id, a->attempt, "INTERNAL", feb.msg);
    } else if (rc == ERR_CANCELLED) {
        /* Stopped by a signal: the checkpoint of this step is already queued, so
         * the server resumes the job from it, elsewhere, without waiting to see
         * the pool go silent. */
        char why[700];
        snprintf(why, sizeof why, "pool %s was asked to stop (%s); the job resumes from that step",
                 link_pool_id(p->link), eb->msg);
        log_warn("job %s: %s", a->job_id, why);
        link_failed(p->link, a->job_id, a->attempt, "POOL_STOPPED", why);
    } else {
        link_failed(p->link, a->job_id, a->attempt, failure_reason(rc), eb->msg);
    }
}

/* The init_from weights of an assignment, as every rank gets them. */
typedef struct init_blob {
    int state; /* 0: none sent; 1: bytes; -1: rank 0 could not get them (msg says why) */
    void *data;
    size_t len;
    char msg[600];
} init_blob;

/* Rank 0: the weights the server sent, or the ones it said we hold. */
static void init_obtain(pool *p, const link_assignment *a, init_blob *ib)
{
    char cache[600];
    errbuf eb = {{0}};
    snprintf(cache, sizeof cache, "%s/init-cache", p->work_root);
    int rc;
    if (a->init != NULL) {
        rc = initcache_put(cache, a->init_sha256, a->init, a->init_len, &eb);
        if (rc == 0) {
            ib->data = xmalloc(a->init_len);
            memcpy(ib->data, a->init, a->init_len);
            ib->len = a->init_len;
        }
    } else {
        rc = initcache_get(cache, a->init_sha256, &ib->data, &ib->len, &eb);
    }
    ib->state = rc == 0 ? 1 : -1;
    if (rc != 0)
        snprintf(ib->msg, sizeof ib->msg, "init_from weights %.16s...: %s", a->init_sha256, eb.msg);
    else
        log_info("job %s: init_from weights %.16s... (%zu bytes, %s)", a->job_id, a->init_sha256,
                 ib->len, a->init != NULL ? "sent by the server, now cached" : "from the cache");
}

/* Rank 0: tell the server (with the next ready) which weights the pool holds. */
static void announce_cache(pool *p)
{
    char held[INITCACHE_MAX][65], cache[600];
    const char *names[INITCACHE_MAX];
    snprintf(cache, sizeof cache, "%s/init-cache", p->work_root);
    int n_held = initcache_list(cache, held, INITCACHE_MAX);
    for (int i = 0; i < n_held; i++)
        names[i] = held[i];
    link_set_cached(p->link, names, n_held);
}

/* Every rank: the init weights of assignment a (read on rank 0), in *ib;
 * none when the attempt resumes from a checkpoint. */
static void init_share(pool *p, const link_assignment *a, int resuming, init_blob *ib)
{
    memset(ib, 0, sizeof *ib);
    if (p->d->rank == 0 && a->has_init && !resuming)
        init_obtain(p, a, ib);
    dist_bcast(&ib->state, sizeof ib->state, 0);
    if (ib->state > 0)
        dist_bcast_blob(&ib->data, &ib->len, 0);
}

/* Every rank: the file the job starts from (into path; "" for none), and
 * a first check that it is a safetensors file. Returns 0, or an ERR_* with
 * eb naming init_from; *final says that a retry cannot help. */
static int init_prepare(const job_spec *spec, const init_blob *ib, const char *dir, int rank,
                        char *path, size_t plen, int *final, errbuf *eb)
{
    path[0] = '\0';
    *final = 0;
    if (ib->state < 0)
        return err_set(eb, ERR_IO, "%s", ib->msg[0] ? ib->msg : "init_from weights not received");
    if (ib->state > 0) {
        /* one file per rank: ranks of one host may share the work dir */
        if (plen < KILN_PATH_MAX ||
            files_pathf(path, eb, "%s/init-r%d.safetensors", dir, rank) != 0)
            return err_set(eb, ERR_INVALID, "work folder %.100s: path too long", dir);
        FILE *f = fopen(path, "wb");
        if (f == NULL || (fwrite(ib->data, 1, ib->len, f) != ib->len) + (fclose(f) != 0) > 0)
            return err_set(eb, ERR_IO, "%s: cannot write the init_from weights", path);
    } else if (spec->init.kind == INIT_PATH) {
        snprintf(path, plen, "%s", spec->init.path);
    } else if (spec->init.kind != INIT_NONE) {
        return err_set(eb, ERR_INVALID, "init_from: %s: the server sent no weights for it",
                       spec->init_from);
    } else {
        return 0;
    }
    st_file *f;
    errbuf why = {{0}};
    if (st_open(&f, path, &why) != 0) {
        *final = 1;
        if (spec->init.kind == INIT_PATH) /* the loader's message names the path */
            return err_set(eb, ERR_FORMAT, "init_from: %s", why.msg);
        return err_set(eb, ERR_FORMAT, "init_from: %s: %s", spec->init_from, why.msg);
    }
    st_close(f);
    return 0;
}

/* Every rank: run one assigned job. spec_text, the checkpoint bytes and the
 * init weights are the same on every rank (broadcast by rank 0). Returns 1
 * when the pool was asked to stop (on any rank), the same on every rank. */
static int run_job(pool *p, const link_assignment *a, const char *spec_text, const void *ckpt,
                   size_t ckpt_len, const init_blob *ib, const char *job_id, int attempt)
{
    const dist_info *d = p->d;
    char dir[KILN_PATH_MAX], resume[KILN_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s-%d", p->work_root, job_id, attempt);
    errbuf eb = {{0}};
    int rc = 0;
    job_result res;
    memset(&res, 0, sizeof res);
    job_spec spec;
    memset(&spec, 0, sizeof spec);
    field_errors fe;
    fe_init(&fe);
    json_t *j = json_loads(spec_text, 0, NULL);
    if (j == NULL || jobspec_parse(&spec, NULL, j, &fe) != 0) {
        fe_format(&fe, eb.msg, sizeof eb.msg);
        if (d->rank == 0)
            link_failed(p->link, job_id, attempt, "INVALID_SPEC", eb.msg);
        json_decref(j);
        jobspec_free(&spec);
        return dist_any(dist_stop_requested());
    }
    json_decref(j);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = err_set(&eb, ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    } else if (ckpt_len > 0) {
        FILE *f = NULL;
        if (files_pathf(resume, &eb, "%s/resume-r%d.safetensors", dir, d->rank) != 0)
            rc = ERR_INVALID;
        else if ((f = fopen(resume, "wb")) == NULL ||
                 (fwrite(ckpt, 1, ckpt_len, f) != ckpt_len) + (fclose(f) != 0) > 0)
            rc = err_set(&eb, ERR_IO, "%s: cannot write the checkpoint to resume from", resume);
    }
    char init_path[KILN_PATH_MAX] = "";
    int init_final = 0;
    if (rc == 0 && ckpt_len == 0)
        rc = init_prepare(&spec, ib, dir, d->rank, init_path, sizeof init_path, &init_final, &eb);
    /* The job runs only if every rank is ready for it. */
    int any_final = dist_any(init_final);
    if (dist_any(rc != 0)) {
        if (d->rank == 0)
            link_failed(p->link, job_id, attempt, any_final ? "INVALID_INIT" : "INTERNAL",
                        rc ? eb.msg
                           : (any_final ? "init_from: the file is missing or not safetensors on "
                                          "another host of the pool"
                                        : "a rank could not prepare the job"));
        jobspec_free(&spec);
        remove_tree(dir);
        return dist_any(dist_stop_requested());
    }
    linksink ls;
    job_sink inner, sink;
    pool_sink ps;
    if (d->rank == 0) {
        linksink_init(&ls, p->link, job_id, attempt, &inner);
        ps = (pool_sink){.inner = inner, .p = p};
        sink = pool_sink_wrap(&ps);
        log_info("job %s attempt %d: %s%s", job_id, attempt, spec.name,
                 ckpt_len ? " (resuming from a checkpoint)" : "");
    }
    job_env env = {.dist = d,
                   .out_dir = dir,
                   .resume_path = ckpt_len > 0 ? resume : NULL,
                   .init_weights = init_path[0] ? init_path : NULL,
                   .sink = d->rank == 0 ? &sink : NULL};
    rc = job_run(&spec, &env, &res, &eb);
    int stopping = dist_any(dist_stop_requested());
    if (d->rank == 0) {
        report_outcome(p, a, rc, stopping, &res, dir, &eb);
        log_info("job %s attempt %d: %s", job_id, attempt,
                 rc == 0 ? "finished" : (rc == ERR_CANCELLED ? "stopped" : eb.msg));
    }
    job_result_free(&res);
    jobspec_free(&spec);
    if (d->rank == 0 && link_flush(p->link, POOL_FLUSH_MS) != 0)
        log_warn("job %s: not every message was acknowledged yet", job_id);
    dist_barrier();
    remove_tree(dir);
    return stopping;
}

/* What the command line and the environment say: where the server is, who the pool is,
 * its work folder, its token and its CurveZMQ keys. */
typedef struct pool_args {
    char endpoint[512], pool_id[128], work[512], token[300];
    char server_key[KEYFILE_Z85_LEN + 8]; /* "" = no CURVE */
    char secret_file[KILN_PATH_MAX];
    char curve_secret[KEYFILE_Z85_LEN + 1]; /* read from secret_file */
} pool_args;

static void getenv_into(char *dst, size_t len, const char *name)
{
    const char *v = getenv(name);
    snprintf(dst, len, "%s", v != NULL ? v : "");
}

/* The options over the environment's KILN_TOKEN, KILN_TOKEN_FILE, KILN_SERVER_KEY and
 * KILN_CURVE_SECRET. Returns 0, or -1 (a message on stderr for a bad token file). */
static int parse_args(int argc, char **argv, pool_args *pa)
{
    static const struct option opts[] = {{"connect", required_argument, NULL, 'c'},
                                         {"pool-id", required_argument, NULL, 'p'},
                                         {"work-dir", required_argument, NULL, 'w'},
                                         {"token", required_argument, NULL, 't'},
                                         {"token-file", required_argument, NULL, 'T'},
                                         {"server-key", required_argument, NULL, 'k'},
                                         {"curve-secret", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    optind = 1;
    memset(pa, 0, sizeof *pa);
    getenv_into(pa->token, sizeof pa->token, "KILN_TOKEN");
    const char *token_file = getenv("KILN_TOKEN_FILE");
    getenv_into(pa->server_key, sizeof pa->server_key, "KILN_SERVER_KEY");
    getenv_into(pa->secret_file, sizeof pa->secret_file, "KILN_CURVE_SECRET");
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            snprintf(pa->endpoint, sizeof pa->endpoint, "%s", optarg);
            break;
        case 'p':
            snprintf(pa->pool_id, sizeof pa->pool_id, "%s", optarg);
            break;
        case 'w':
            snprintf(pa->work, sizeof pa->work, "%s", optarg);
            break;
        case 't':
            snprintf(pa->token, sizeof pa->token, "%s", optarg);
            token_file = NULL;
            break;
        case 'T':
            token_file = optarg;
            break;
        case 'k':
            snprintf(pa->server_key, sizeof pa->server_key, "%s", optarg);
            break;
        case 's':
            snprintf(pa->secret_file, sizeof pa->secret_file, "%s", optarg);
            break;
        default:
            return -1;
        }
    }
    if (token_file != NULL && token_file[0] != '\0') {
        errbuf eb;
        if (keyfile_read_token(token_file, pa->token, sizeof pa->token, &eb) != 0) {
            fprintf(stderr, "kiln-worker: --token-file: %s\n", eb.msg);
            return -1;
        }
    }
    return pa->endpoint[0] != '\0' && optind == argc ? 0 : -1;
}

/* The CurveZMQ keys, when given: both, a valid server key, this pool's secret read from
 * its file, and a pool id for the server to find the pool's key under. Returns 0, or -1
 * after saying what is wrong on stderr. */
static int check_curve(pool_args *pa)
{
    if ((pa->server_key[0] != '\0') != (pa->secret_file[0] != '\0')) {
        fprintf(stderr, "kiln-worker: --server-key and --curve-secret go together\n");
        return -1;
    }
    if (pa->server_key[0] == '\0')
        return 0;
    errbuf keb = {{0}};
    if (!z85_key_valid(pa->server_key)) {
        fprintf(stderr, "kiln-worker: --server-key is not 40 Z85 characters (the 'public' "
                        "key the server logs at start)\n");
        return -1;
    }
    if (keyfile_read_secret(pa->secret_file, pa->curve_secret, &keb) < 0) {
        fprintf(stderr, "kiln-worker: %s\n", keb.msg);
        return -1;
    }
    if (pa->pool_id[0] == '\0') {
        fprintf(stderr, "kiln-worker: with CURVE keys give --pool-id: the name the "
                        "server's pool keys file gives this pool's key\n");
        return -1;
    }
    return 0;
}

/* What the pool tells the server in its hello, gathered over every rank (collective):
 * the host of each rank, the cores of its hosts, their memory in all and the least one
 * rank has (its host's shared by the ranks there), for the server's admission control. */
typedef struct pool_census {
    char (*hosts)[64]; /* world entries */
    int cores;
    double memory, rank_memory;
} pool_census;

static void census_take(const dist_info *d, pool_census *pc)
{
    char host[64] = {0};
    snprintf(host, sizeof host, "%s", d->host);
    pc->hosts = xcalloc((size_t)d->world, sizeof host);
    dist_allgather(host, pc->hosts, sizeof host);
    double cores = d->local_rank == 0 ? d->cores : 0;
    dist_allreduce_sum_f64(&cores, 1);
    pc->cores = (int)cores;
    double host_mem = (double)meminfo_total_bytes();
    pc->memory = d->local_rank == 0 ? host_mem : 0;
    dist_allreduce_sum_f64(&pc->memory, 1);
    double mine = host_mem / (d->local_size > 0 ? d->local_size : 1);
    double *per_rank = xcalloc((size_t)d->world, sizeof(double));
    dist_allgather(&mine, per_rank, sizeof mine);
    pc->rank_memory = per_rank[0];
    for (int i = 1; i < d->world; i++)
        pc->rank_memory = per_rank[i] < pc->rank_memory ? per_rank[i] : pc->rank_memory;
    free(per_rank);
}

/* Rank 0: the link to the server, introduced by the census. Returns 0 or an ERR_* (a
 * message on stderr). */
static int pool_connect(pool *p, const pool_args *pa, const pool_census *pc)
{
    const dist_info *d = p->d;
    const char **names = xcalloc((size_t)d->world, sizeof(char *));
    for (int i = 0; i < d->world; i++)
        names[i] = pc->hosts[i];
    link_pool_info info = {.pool_id = pa->pool_id[0] ? pa->pool_id : NULL,
                           .ranks = d->world,
                           .hosts = names,
                           .n_hosts = d->world,
                           .cores = pc->cores,
                           .version = KILN_VERSION,
                           .engine = nn_startup_summary(),
                           .memory = (int64_t)pc->memory,
                           .rank_memory = (int64_t)pc->rank_memory};
    errbuf eb = {{0}};
    link_options lo;
    link_options_default(&lo);
    lo.token = pa->token[0] != '\0' ? pa->token : NULL;
    lo.curve_server_key = pa->server_key[0] != '\0' ? pa->server_key : NULL;
    lo.curve_secret = pa->curve_secret;
    int rc = link_new(&p->link, pa->endpoint, &info, &lo, &eb);
    free(names);
    if (rc != 0)
        fprintf(stderr, "kiln-worker: %s\n", eb.msg);
    else
        log_info("pool %s: %d rank(s), joining %s", link_pool_id(p->link), d->world, pa->endpoint);
    return rc;
}

/* Every rank: waits for assignments (rank 0, from the link) and runs them, until the
 * link ends or the pool is asked to stop. */
static void pool_serve(pool *p)
{
    const dist_info *d = p->d;
    for (;;) {
        int cmd = CMD_QUIT, attempt = 0;
        link_assignment a;
        memset(&a, 0, sizeof a);
        char job_id[MSG_ID_MAX] = {0};
        if (d->rank == 0 && !dist_stop_requested()) {
            announce_cache(p);
            /* A timed wait, so that a stop asked of another rank is seen while idle. */
            int wrc = link_wait_assign(p->link, d->world > 1 ? POOL_IDLE_CHECK_MS : -1, &a);
            cmd = wrc == 0 ? CMD_RUN : (wrc == ERR_TIMEOUT ? CMD_IDLE : CMD_QUIT);
        }
        if (cmd == CMD_RUN) {
            attempt = a.attempt;
            snprintf(job_id, sizeof job_id, "%s", a.job_id);
        }
        dist_bcast_idle(&cmd, sizeof cmd, 0, POOL_IDLE_POLL_MS);
        if (cmd == CMD_IDLE) {
            if (dist_any(dist_stop_requested()))
                break;
            continue;
        }
        if (cmd != CMD_RUN)
            break;
        dist_bcast(job_id, sizeof job_id, 0);
        dist_bcast(&attempt, sizeof attempt, 0);
        void *spec_text = NULL, *ckpt = a.checkpoint;
        size_t spec_len = 0, ckpt_len = a.checkpoint_len;
        if (d->rank == 0) {
            spec_text = json_dumps(a.spec, JSON_COMPACT);
            spec_len = strlen(spec_text) + 1;
        }
        dist_bcast_blob(&spec_text, &spec_len, 0);
        dist_bcast_blob(&ckpt, &ckpt_len, 0);
        init_blob ib;
        init_share(p, &a, ckpt_len > 0, &ib);
        int stopping = run_job(p, &a, spec_text, ckpt, ckpt_len, &ib, job_id, attempt);
        free(ib.data);
        free(spec_text);
        if (d->rank != 0)
            free(ckpt);
        link_assignment_free(&a);
        if (stopping)
            break;
    }
}

int pool_main(int argc, char **argv, const dist_info *d)
{
    pool_args pa;
    if (parse_args(argc, argv, &pa) != 0) {
        fprintf(stderr,
                "usage: mpirun -np N kiln-worker --connect tcp://HOST:PORT "
                "[--pool-id ID] [--work-dir DIR] [--token-file FILE | --token TOKEN]\n"
                "       [--server-key KEY --curve-secret FILE]\n"
                "  (the token: the first line of --token-file or $KILN_TOKEN_FILE, or\n"
                "   --token or $KILN_TOKEN, which ps shows: a 'pool' token of a server\n"
                "   with --tokens;\n"
                "   with a server started with --curve-secret: its public key, or\n"
                "   $KILN_SERVER_KEY, and this pool's key file, or $KILN_CURVE_SECRET, whose\n"
                "   public key the server lists under this pool's --pool-id)\n");
        return 2;
    }
    if (check_curve(&pa) != 0)
        return 2;
    pool p;
    memset(&p, 0, sizeof p);
    p.d = d;
    if (pa.work[0] == '\0') {
        const char *tmp = getenv("TMPDIR");
        snprintf(pa.work, sizeof pa.work, "%s/kiln-pool-%ld", tmp ? tmp : "/tmp", (long)getpid());
    }
    snprintf(p.work_root, sizeof p.work_root, "%s", pa.work);
    if (mkdir(pa.work, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "kiln-worker: cannot create %s: %s\n", pa.work, strerror(errno));
        return 2;
    }
    /* Signals go to the signal thread only (threads started later inherit the mask). */
    sigemptyset(&p.sigs);
    sigaddset(&p.sigs, SIGINT);
    sigaddset(&p.sigs, SIGTERM);
    sigaddset(&p.sigs, SIGUSR1);
    sigaddset(&p.sigs, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &p.sigs, NULL);

    pool_census pc;
    census_take(d, &pc);
    int rc = d->rank == 0 ? pool_connect(&p, &pa, &pc) : 0;
    pthread_create(&p.sig_thread, NULL, signal_main, &p);
    int started = !dist_any(rc != 0);
    if (started)
        pool_serve(&p);
    if (p.link != NULL) {
        link_flush(p.link, POOL_FLUSH_MS);
        link_free(p.link);
        p.link = NULL;
    }
    p.quitting = 1;
    pthread_kill(p.sig_thread, SIGUSR2);
    pthread_join(p.sig_thread, NULL);
    free(pc.hosts);
    remove_tree(pa.work);
    log_info("pool stopped");
    return started ? 0 : 1;
}
