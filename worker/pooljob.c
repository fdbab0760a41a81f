/* pooljob.c - one job's part on one rank of a pool (see pooljob.h). */
#include "worker/pooljob.h"

#include "common/files.h"
#include "common/jobspec.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "common/xalloc.h"
#include "worker/jobs/job.h"
#include "worker/linksink.h"
#include "worker/poolrelay.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The job's cancel check: the server's cancel, or a stop signal. */
typedef struct pool_sink {
    job_sink inner;
    const pooljob_env *e;
} pool_sink;

/* Also rank 0's leading, between the steps of its own job. */
static int pool_sink_cancel(void *ctx)
{
    pool_sink *ps = ctx;
    if (ps->e->between_steps != NULL)
        ps->e->between_steps(ps->e->ctx);
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

/* Where a job's root reports: the link (world rank 0) or rank 0 through MPI. */
typedef struct reporter {
    const pooljob_env *e;
    const char *job_id;
    int attempt;
    linksink ls; /* rank 0 */
    relay rl;    /* any other root */
} reporter;

static job_sink reporter_init(reporter *r, const pooljob_env *e, const char *job_id, int attempt)
{
    job_sink inner;
    r->e = e;
    r->job_id = job_id;
    r->attempt = attempt;
    if (e->link != NULL)
        linksink_init(&r->ls, e->link, job_id, attempt, &inner);
    else
        relay_sink(&r->rl, job_id, attempt, &inner);
    return inner;
}

static void report_failed(reporter *r, const char *reason, const char *message)
{
    if (r->e->link != NULL)
        link_failed(r->e->link, r->job_id, r->attempt, reason, message);
    else
        relay_failed(&r->rl, reason, message);
}

static int report_finished(reporter *r, int cancelled, const job_result *res, const char *out_dir,
                           errbuf *eb)
{
    if (r->e->link == NULL)
        return relay_finished(&r->rl, cancelled, res->summary, out_dir, res, eb);
    link_artifact arts[JOB_MAX_ARTIFACTS];
    char(*paths)[KILN_PATH_MAX] = xcalloc(JOB_MAX_ARTIFACTS, KILN_PATH_MAX);
    int n = cancelled ? 0 : res->n_artifacts;
    for (int i = 0; i < n; i++) {
        files_pathf(paths[i], NULL, "%s/%s", out_dir, res->artifacts[i]); /* fits: dir did */
        arts[i] = (link_artifact){.name = res->artifacts[i], .path = paths[i]};
    }
    int rc = link_finished(r->e->link, r->job_id, r->attempt, cancelled, res->summary, arts, n, eb);
    free(paths);
    return rc;
}

/* The root's report of a job's outcome. stopping: the pool was asked to leave (on
 * some rank). */
static void report_outcome(reporter *r, int rc, int stopping, const job_result *res,
                           const char *out_dir, const errbuf *eb)
{
    if (rc == 0 || (rc == ERR_CANCELLED && !stopping)) {
        errbuf feb = {{0}};
        if (report_finished(r, rc == ERR_CANCELLED, res, out_dir, &feb) != 0)
            report_failed(r, "INTERNAL", feb.msg);
    } else if (rc == ERR_CANCELLED) {
        /* Stopped by a signal: the checkpoint of this step is already on its way,
         * so the server resumes the job from it, elsewhere, without waiting to see
         * the pool go silent. */
        char why[700];
        snprintf(why, sizeof why, "pool %s was asked to stop (%s); the job resumes from that step",
                 r->e->pool->host, eb->msg);
        log_warn("job %s: %s", r->job_id, why);
        report_failed(r, "POOL_STOPPED", why);
    } else {
        report_failed(r, failure_reason(rc), eb->msg);
    }
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

/* Every member of the job: its work folder, the checkpoint to resume from (into
 * resume) and the init weights (into init_path). Returns 0, or an ERR_* with eb
 * saying why; *init_final: the init weights are bad, a retry cannot help. */
static int prepare_part(const job_order *o, const job_spec *spec, const dist_info *jd,
                        const char *dir, char *resume, char *init_path, int *init_final, errbuf *eb)
{
    *init_final = 0;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return err_set(eb, ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    if (o->ckpt_len > 0) {
        FILE *f = NULL;
        if (files_pathf(resume, eb, "%s/resume-r%d.safetensors", dir, jd->rank) != 0)
            return ERR_INVALID;
        if ((f = fopen(resume, "wb")) == NULL ||
            (fwrite(o->ckpt, 1, o->ckpt_len, f) != o->ckpt_len) + (fclose(f) != 0) > 0)
            return err_set(eb, ERR_IO, "%s: cannot write the checkpoint to resume from", resume);
        return 0;
    }
    return init_prepare(spec, &o->ib, dir, jd->rank, init_path, KILN_PATH_MAX, init_final, eb);
}

int pooljob_run(const pooljob_env *e, const job_order *o)
{
    dist_info jd;
    if (dist_group_begin(e->pool, o->members, o->n, o->tag, &jd) != 0)
        dist_abort(70);
    const char *job_id = o->job_id;
    int attempt = o->attempt, root = jd.rank == 0;
    char dir[KILN_PATH_MAX], resume[KILN_PATH_MAX], init_path[KILN_PATH_MAX] = "";
    snprintf(dir, sizeof dir, "%s/%s-%d", e->work_root, job_id, attempt);
    reporter rep;
    job_sink inner = reporter_init(&rep, e, job_id, attempt), sink;
    pool_sink ps = {.inner = inner, .e = e};
    sink = pool_sink_wrap(&ps);
    errbuf eb = {{0}};
    job_result res;
    memset(&res, 0, sizeof res);
    job_spec spec;
    memset(&spec, 0, sizeof spec);
    field_errors fe;
    fe_init(&fe);
    int rc = 0, stopping = 0, init_final = 0;
    json_t *j = json_loads(o->spec_text, 0, NULL);
    if (j == NULL || jobspec_parse(&spec, NULL, j, &fe) != 0) {
        fe_format(&fe, eb.msg, sizeof eb.msg);
        if (root)
            report_failed(&rep, "INVALID_SPEC", eb.msg);
        json_decref(j);
        stopping = dist_any(dist_stop_requested());
        goto out;
    }
    json_decref(j);
    rc = prepare_part(o, &spec, &jd, dir, resume, init_path, &init_final, &eb);
    /* The job runs only if every rank is ready for it. */
    int any_final = dist_any(init_final);
    if (dist_any(rc != 0)) {
        if (root)
            report_failed(&rep, any_final ? "INVALID_INIT" : "INTERNAL",
                          rc ? eb.msg
                             : (any_final ? "init_from: the file is missing or not safetensors on "
                                            "another host of the pool"
                                          : "a rank could not prepare the job"));
        stopping = dist_any(dist_stop_requested());
        goto out;
    }
    if (root)
        log_info("job %s attempt %d: %s on %d rank(s) from world rank %d%s", job_id, attempt,
                 spec.name, jd.world, o->members[0],
                 o->ckpt_len ? " (resuming from a checkpoint)" : "");
    job_env env = {.dist = &jd,
                   .out_dir = dir,
                   .resume_path = o->ckpt_len > 0 ? resume : NULL,
                   .init_weights = init_path[0] ? init_path : NULL,
                   .sink = root ? &sink : NULL};
    rc = job_run(&spec, &env, &res, &eb);
    stopping = dist_any(dist_stop_requested());
    if (root) {
        report_outcome(&rep, rc, stopping, &res, dir, &eb);
        log_info("job %s attempt %d: %s", job_id, attempt,
                 rc == 0 ? "finished" : (rc == ERR_CANCELLED ? "stopped" : eb.msg));
    }
out:
    job_result_free(&res);
    jobspec_free(&spec);
    dist_barrier();
    remove_tree(dir);
    dist_group_end();
    if (root && e->link == NULL)
        poolctl_send(0, json_pack("{s:s,s:b}", "op", "done", "stopping", stopping), NULL, 0);
    return stopping;
}

void job_order_free(job_order *o)
{
    if (o == NULL)
        return;
    free(o->members);
    free(o->spec_text);
    free(o->ckpt);
    free(o->ib.data);
    free(o);
}
