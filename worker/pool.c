/* pool.c - kiln-worker's pool mode (see pool.h).
 *
 * A pool of N ranks runs several jobs at once, each on a split of its ranks
 * (resources.ranks of them, the lowest free ones). World rank 0 leads: it owns
 * the link to the server and a signal thread, takes assignments, places each on
 * free ranks and sends those ranks the job (poolrelay.h: the spec, the
 * checkpoint to resume from, the init weights), and carries the reports of jobs
 * whose root is another rank to the server. Rank 0 also runs a job of its own
 * when it is free; while it does, it does the leading between the steps of that
 * job (its cancel check), so a new job starts and a relayed report arrives
 * within one of its steps. Every other rank waits for a job from rank 0 (a
 * polling receive, so an idle rank does not spin), runs its part and, as the
 * job's root, reports through rank 0 and says "done" when the ranks are free.
 * A job's collectives run over its own ranks only (dist_group_begin).
 *
 * SIGINT, SIGTERM and SIGUSR1 stop the pool gracefully, on any rank: each
 * running job stops at the next step on all its ranks (dist_any_stop), its
 * checkpoint and a `failed` POOL_STOPPED go to the server, which resumes the
 * job elsewhere from that checkpoint at once, and the pool leaves when every
 * job has ended. SIGUSR1 is the one to send through mpirun, which forwards it
 * to every rank (mpirun itself answers SIGTERM by killing the ranks a second
 * later): see deploy/kiln-pool. An idle rank tells rank 0 of its stop.
 */
#include "worker/pool.h"

#include "common/files.h"
#include "common/keyfile.h"
#include "common/log.h"
#include "common/meminfo.h"
#include "common/version.h"
#include "common/xalloc.h"
#include "worker/initcache.h"
#include "worker/link.h"
#include "worker/nn/startup.h"
#include "worker/pooljob.h"
#include "worker/poolrelay.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define POOL_IDLE_POLL_MS 20
#define POOL_FLUSH_MS     10000

/* A job the pool runs, in rank 0's table (indexed by its root's world rank). */
typedef struct pool_job {
    int active;
    char id[MSG_ID_MAX];
    int attempt, n_ranks;
    int cancel_sent; /* the server's cancel went to its root */
} pool_job;

typedef struct pool {
    const dist_info *d;
    pool_link *link; /* rank 0 */
    char work_root[KILN_PATH_MAX];
    char cache_dir[KILN_PATH_MAX];  /* work_root/init-cache: the init_from weights held */
    volatile sig_atomic_t quitting; /* the pool ends the signal thread (SIGUSR2) */
    pthread_t sig_thread;
    sigset_t sigs;
    /* rank 0, leading: */
    pool_job *jobs;           /* world entries, by root */
    int *owner;               /* world entries: 1 + the root of the job the rank runs, 0 = free */
    link_assignment *waiting; /* taken, waiting for free ranks (in order) */
    int n_waiting, cap_waiting;
    job_order *local; /* rank 0's own part of a job just placed, to run next */
    int tag_next;
    int said_free; /* the free ranks last told to the link; -1 = none yet */
    int leaving;   /* no new jobs: the pool leaves when the running ones end */
    int stop_told; /* the roots of running jobs were told to stop */
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

/* Rank 0: the weights the server sent, or the ones it said we hold. */
static void init_obtain(pool *p, const link_assignment *a, init_blob *ib)
{
    const char *cache = p->cache_dir;
    errbuf eb = {{0}};
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
    char held[INITCACHE_MAX][65];
    const char *names[INITCACHE_MAX];
    int n_held = initcache_list(p->cache_dir, held, INITCACHE_MAX);
    for (int i = 0; i < n_held; i++)
        names[i] = held[i];
    link_set_cached(p->link, names, n_held);
}

/* ---- rank 0: leading the pool ----------------------------------------------------- */

/* The ranks a job asks for (resources.ranks, 1 when not said). */
static int spec_ranks(const json_t *spec)
{
    json_int_t r = json_integer_value(json_object_get(json_object_get(spec, "resources"), "ranks"));
    return r > 0 && r < (1 << 20) ? (int)r : 1;
}

static int count_free(const pool *p)
{
    int n = 0;
    for (int r = 0; r < p->d->world; r++)
        n += p->owner[r] == 0;
    return n;
}

/* Tells the link how many ranks can take a new job: the free ones less what the
 * assignments waiting for ranks will take. */
static void update_free(pool *p)
{
    int n = count_free(p);
    for (int i = 0; i < p->n_waiting; i++)
        n -= spec_ranks(p->waiting[i].spec);
    n = n > 0 && !p->leaving ? n : 0;
    if (n != p->said_free) /* between the steps of rank 0's job: only when it changes */
        link_set_free_ranks(p->link, n);
    p->said_free = n;
}

static void take_assignments(pool *p)
{
    for (;;) {
        link_assignment a;
        int rc = link_wait_assign(p->link, 0, &a);
        if (rc == ERR_CANCELLED)
            p->leaving = 1;
        if (rc != 0)
            return;
        if (p->n_waiting == p->cap_waiting) {
            p->cap_waiting = p->cap_waiting ? 2 * p->cap_waiting : 4;
            p->waiting = xrealloc(p->waiting, (size_t)p->cap_waiting * sizeof *p->waiting);
        }
        p->waiting[p->n_waiting++] = a;
    }
}

/* Sends world rank dest its part of job o. */
static void send_order(int dest, const job_order *o)
{
    json_t *members = json_array();
    for (int i = 0; i < o->n; i++)
        json_array_append_new(members, json_integer(o->members[i]));
    poolctl_send(dest,
                 json_pack("{s:s,s:s,s:i,s:o,s:i,s:i,s:s}", "op", "run", "job_id", o->job_id,
                           "attempt", o->attempt, "members", members, "tag", o->tag, "init_state",
                           o->ib.state, "init_msg", o->ib.msg),
                 o->spec_text, strlen(o->spec_text) + 1);
    poolctl_send(dest, json_pack("{s:s}", "op", "ckpt"), o->ckpt, o->ckpt_len);
    poolctl_send(dest, json_pack("{s:s}", "op", "init"), o->ib.data, o->ib.len);
}

/* Starts assignment a (taken: its buffers move into the order) on the n lowest free
 * ranks: their part goes to the other ranks; rank 0's own part, if it is one of
 * them, waits in p->local. */
static void place(pool *p, link_assignment *a, int n)
{
    job_order *o = xcalloc(1, sizeof *o);
    snprintf(o->job_id, sizeof o->job_id, "%s", a->job_id);
    o->attempt = a->attempt;
    o->members = xcalloc((size_t)n, sizeof *o->members);
    for (int r = 0; r < p->d->world && o->n < n; r++)
        if (p->owner[r] == 0)
            o->members[o->n++] = r;
    o->tag = p->tag_next++ % 32000;
    o->spec_text = json_dumps(a->spec, JSON_COMPACT);
    o->ckpt = a->checkpoint;
    o->ckpt_len = a->checkpoint_len;
    a->checkpoint = NULL;
    if (a->has_init && o->ckpt_len == 0) {
        init_obtain(p, a, &o->ib);
        announce_cache(p);
    }
    int root = o->members[0];
    for (int i = 0; i < o->n; i++)
        p->owner[o->members[i]] = root + 1;
    pool_job *j = &p->jobs[root];
    memset(j, 0, sizeof *j);
    j->active = 1;
    j->attempt = a->attempt;
    j->n_ranks = n;
    snprintf(j->id, sizeof j->id, "%s", a->job_id);
    log_info("job %s attempt %d: on %d of the pool's %d ranks (world ranks %d..%d)", a->job_id,
             a->attempt, n, p->d->world, o->members[0], o->members[o->n - 1]);
    for (int i = 0; i < o->n; i++)
        if (o->members[i] != 0)
            send_order(o->members[i], o);
    if (root == 0)
        p->local = o;
    else
        job_order_free(o);
}

/* Places the waiting assignments, in order, while their ranks are free; when the pool
 * leaves, they end as POOL_STOPPED (the server runs them elsewhere at once). */
static void place_waiting(pool *p)
{
    while (p->n_waiting > 0) {
        link_assignment *a = &p->waiting[0];
        int n = spec_ranks(a->spec);
        if (p->leaving) {
            link_failed(p->link, a->job_id, a->attempt, "POOL_STOPPED",
                        "the pool was asked to stop before the job started");
        } else if (n > p->d->world) {
            char why[200];
            snprintf(why, sizeof why, "the job asks for %d ranks; this pool has %d", n,
                     p->d->world);
            link_failed(p->link, a->job_id, a->attempt, "UNSUPPORTED", why);
        } else if (count_free(p) >= n) {
            place(p, a, n);
        } else {
            return; /* in order: the first waits for its ranks */
        }
        link_assignment_free(a);
        memmove(&p->waiting[0], &p->waiting[1], (size_t)(p->n_waiting - 1) * sizeof *a);
        p->n_waiting--;
    }
}

/* The job whose root is world rank root ended: its ranks are free. */
static void job_ended(pool *p, int root, int stopping)
{
    for (int r = 0; r < p->d->world; r++)
        if (p->owner[r] == root + 1)
            p->owner[r] = 0;
    p->jobs[root].active = 0;
    if (stopping)
        dist_stop_request();
}

static int jobs_running(const pool *p)
{
    for (int r = 0; r < p->d->world; r++)
        if (p->jobs[r].active)
            return 1;
    return 0;
}

/* Rank 0's leading: relayed reports onto the link, the server's cancels and a stop
 * passed on to the roots of running jobs, new assignments placed. */
static void pump(pool *p)
{
    int src;
    while (dist_ctl_poll(&src)) {
        void *blob;
        size_t len;
        json_t *hdr = poolctl_recv(src, &blob, &len);
        int stopping = 0, rc = hdr != NULL ? relay_apply(p->link, hdr, blob, len, &stopping) : 0;
        if (rc == 1)
            job_ended(p, src, stopping);
        else if (rc == 2)
            dist_stop_request();
        json_decref(hdr);
        free(blob);
    }
    if (dist_stop_requested())
        p->leaving = 1;
    for (int r = 1; r < p->d->world; r++) {
        pool_job *j = &p->jobs[r];
        if (!j->active)
            continue;
        if (!j->cancel_sent && link_cancel_requested(p->link, j->id, j->attempt)) {
            poolctl_send(r, json_pack("{s:s}", "op", "cancel"), NULL, 0);
            j->cancel_sent = 1;
        }
        if (p->leaving && !p->stop_told)
            poolctl_send(r, json_pack("{s:s}", "op", "stop"), NULL, 0);
    }
    if (p->leaving)
        p->stop_told = 1;
    take_assignments(p);
    place_waiting(p);
    update_free(p);
}

/* Rank 0: leads the pool and runs its own parts of jobs, until it is asked to stop
 * (or the link ends) and every job has ended; then the other ranks quit. */
static void lead_between_steps(void *ctx)
{
    pump(ctx);
}

static void pool_lead(pool *p)
{
    pooljob_env env = {.pool = p->d,
                       .link = p->link,
                       .work_root = p->work_root,
                       .between_steps = lead_between_steps,
                       .ctx = p};
    p->jobs = xcalloc((size_t)p->d->world, sizeof *p->jobs);
    p->owner = xcalloc((size_t)p->d->world, sizeof *p->owner);
    p->said_free = -1;
    announce_cache(p);
    for (;;) {
        pump(p);
        if (p->local != NULL) {
            job_order *o = p->local;
            p->local = NULL;
            int stopping = pooljob_run(&env, o);
            job_order_free(o);
            job_ended(p, 0, stopping);
            continue;
        }
        if (p->leaving && !jobs_running(p))
            break;
        link_assignment a;
        int rc = p->leaving ? ERR_CANCELLED : link_wait_assign(p->link, POOL_IDLE_POLL_MS, &a);
        if (rc == 0) {
            if (p->n_waiting == p->cap_waiting) {
                p->cap_waiting = p->cap_waiting ? 2 * p->cap_waiting : 4;
                p->waiting = xrealloc(p->waiting, (size_t)p->cap_waiting * sizeof *p->waiting);
            }
            p->waiting[p->n_waiting++] = a;
        } else if (rc == ERR_CANCELLED) {
            p->leaving = 1;
            struct timespec ts = {0, POOL_IDLE_POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    pump(p); /* the last waiting assignments end as POOL_STOPPED */
    for (int r = 1; r < p->d->world; r++)
        poolctl_send(r, json_pack("{s:s}", "op", "quit"), NULL, 0);
    free(p->jobs);
    free(p->owner);
    free(p->waiting);
}

/* A rank other than 0: the rest of a job order after its "run" header. */
static job_order *receive_order(const json_t *hdr, void *spec, size_t spec_len)
{
    job_order *o = xcalloc(1, sizeof *o);
    const char *job = json_string_value(json_object_get(hdr, "job_id"));
    const char *init_msg = json_string_value(json_object_get(hdr, "init_msg"));
    snprintf(o->job_id, sizeof o->job_id, "%s", job != NULL ? job : "");
    o->attempt = (int)json_integer_value(json_object_get(hdr, "attempt"));
    o->tag = (int)json_integer_value(json_object_get(hdr, "tag"));
    const json_t *m = json_object_get(hdr, "members");
    o->n = (int)json_array_size(m);
    o->members = xcalloc((size_t)o->n + 1, sizeof *o->members);
    for (int i = 0; i < o->n; i++)
        o->members[i] = (int)json_integer_value(json_array_get(m, (size_t)i));
    o->ib.state = (int)json_integer_value(json_object_get(hdr, "init_state"));
    snprintf(o->ib.msg, sizeof o->ib.msg, "%s", init_msg != NULL ? init_msg : "");
    o->spec_text = spec_len > 0 ? spec : xstrdup("");
    if (spec_len == 0)
        free(spec);
    json_t *h;
    h = poolctl_recv(0, &o->ckpt, &o->ckpt_len);
    json_decref(h);
    h = poolctl_recv(0, &o->ib.data, &o->ib.len);
    json_decref(h);
    return o;
}

/* A rank other than 0: runs the parts of jobs rank 0 sends, until it says quit. A stop
 * asked of this rank while idle goes to rank 0, once. */
static void pool_follow(pool *p)
{
    pooljob_env env = {.pool = p->d, .work_root = p->work_root};
    int told = 0;
    for (;;) {
        int src;
        if (!dist_ctl_poll(&src)) {
            if (dist_stop_requested() && !told) {
                poolctl_send(0, json_pack("{s:s}", "op", "stopping"), NULL, 0);
                told = 1;
            }
            struct timespec ts = {0, POOL_IDLE_POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        void *blob;
        size_t len;
        json_t *hdr = poolctl_recv(src, &blob, &len);
        const char *op = json_string_value(json_object_get(hdr, "op"));
        if (op != NULL && strcmp(op, "quit") == 0) {
            json_decref(hdr);
            free(blob);
            break;
        }
        if (op != NULL && strcmp(op, "run") == 0) {
            job_order *o = receive_order(hdr, blob, len);
            blob = NULL;
            pooljob_run(&env, o);
            job_order_free(o);
        }
        /* "cancel" or "stop" for a job that has ended meanwhile: nothing to do */
        json_decref(hdr);
        free(blob);
    }
}

/* What the command line and the environment say: where the server is, who the pool is,
 * its work folder, its token and its CurveZMQ keys. */
typedef struct pool_args {
    char endpoint[512], pool_id[128], work[KILN_PATH_MAX], token[300];
    char server_key[KEYFILE_Z85_LEN + 8]; /* "" = no CURVE */
    char secret_file[KILN_PATH_MAX];
    char curve_secret[KEYFILE_Z85_LEN + 1]; /* read from secret_file */
} pool_args;

/* Copies value into dst (n bytes). A value that does not fit is refused, never cut:
 * -1 after naming `what` on stderr. */
static int copy_value(char *dst, size_t n, const char *what, const char *value)
{
    size_t len = strlen(value);
    if (len < n) {
        memcpy(dst, value, len + 1);
        return 0;
    }
    fprintf(stderr, "kiln-worker: %s is %zu bytes long, more than the %zu it may have\n", what, len,
            n - 1);
    return -1;
}

static int getenv_into(char *dst, size_t len, const char *name)
{
    const char *v = getenv(name);
    return copy_value(dst, len, name, v != NULL ? v : "");
}

/* The options over the environment's KILN_TOKEN, KILN_TOKEN_FILE, KILN_SERVER_KEY and
 * KILN_CURVE_SECRET. Returns 0, or -1 (a message on stderr for a bad token file or a
 * value too long). */
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
    const char *token_file = getenv("KILN_TOKEN_FILE");
    if (getenv_into(pa->token, sizeof pa->token, "KILN_TOKEN") != 0 ||
        getenv_into(pa->server_key, sizeof pa->server_key, "KILN_SERVER_KEY") != 0 ||
        getenv_into(pa->secret_file, sizeof pa->secret_file, "KILN_CURVE_SECRET") != 0)
        return -1;
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            rc = copy_value(pa->endpoint, sizeof pa->endpoint, "--connect", optarg);
            break;
        case 'p':
            rc = copy_value(pa->pool_id, sizeof pa->pool_id, "--pool-id", optarg);
            break;
        case 'w':
            rc = copy_value(pa->work, sizeof pa->work, "--work-dir", optarg);
            break;
        case 't':
            rc = copy_value(pa->token, sizeof pa->token, "--token", optarg);
            token_file = NULL;
            break;
        case 'T':
            token_file = optarg;
            break;
        case 'k':
            rc = copy_value(pa->server_key, sizeof pa->server_key, "--server-key", optarg);
            break;
        case 's':
            rc = copy_value(pa->secret_file, sizeof pa->secret_file, "--curve-secret", optarg);
            break;
        default:
            return -1;
        }
    }
    if (rc != 0)
        return -1;
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
        if (snprintf(pa.work, sizeof pa.work, "%s/kiln-pool-%ld", tmp ? tmp : "/tmp",
                     (long)getpid()) >= (int)sizeof pa.work) {
            fprintf(stderr, "kiln-worker: TMPDIR is too long for a work folder: give --work-dir\n");
            return 2;
        }
    }
    memcpy(p.work_root, pa.work, sizeof p.work_root);
    if (snprintf(p.cache_dir, sizeof p.cache_dir, "%s/init-cache", pa.work) >=
        (int)sizeof p.cache_dir) {
        fprintf(stderr, "kiln-worker: --work-dir %.40s... is too long\n", pa.work);
        return 2;
    }
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
    if (started && d->rank == 0)
        pool_lead(&p);
    else if (started)
        pool_follow(&p);
    if (p.link != NULL) {
        link_flush(p.link, POOL_FLUSH_MS);
        link_free(p.link);
        p.link = NULL;
    }
    p.quitting = 1;
    pthread_kill(p.sig_thread, SIGUSR2);
    pthread_join(p.sig_thread, NULL);
    free(pc.hosts);
    errbuf reb;
    if (files_remove_tree(pa.work, &reb) < 0)
        log_warn("could not remove %s: %s", pa.work, reb.msg);
    log_info("pool stopped");
    return started ? 0 : 1;
}
