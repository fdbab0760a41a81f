/* lineage.c - after and init_from on the server (see lineage.h). */
#include "server/lineage.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_after(store *st, lineage *l, char *field, size_t flen, errbuf *eb)
{
    for (int i = 0; i < l->spec.n_after; i++) {
        const char *id = l->spec.after[i];
        l->after[i] = id;
        job_state s;
        errbuf e2;
        snprintf(field, flen, "after[%d]", i);
        int rc = store_job_state(st, id, &s, NULL, NULL, &e2);
        if (rc == ERR_NOT_FOUND)
            return err_set(eb, ERR_INVALID, "no job '%s'", id);
        if (rc < 0)
            return err_set(eb, rc, "%s", e2.msg);
        if (s == JS_FAILED || s == JS_CANCELLED)
            return err_set(eb, ERR_INVALID, "job %s is %s, so this job could never start", id,
                           store_state_name(s));
        if (s != JS_SUCCEEDED && l->waiting_for[0] == '\0')
            snprintf(l->waiting_for, sizeof l->waiting_for, "%s", id);
    }
    return 0;
}

int lineage_prepare(store *st, const char *data_dir, const json_t *canonical, lineage *l,
                    char *field, size_t field_len, errbuf *eb)
{
    memset(l, 0, sizeof *l);
    field_errors fe;
    if (jobspec_parse_flags(&l->spec, NULL, canonical, &fe, JOBSPEC_MODEL_LATER) != 0) {
        snprintf(field, field_len, "%s", "");
        return err_set(eb, ERR_INVALID, "the canonical spec does not parse again");
    }
    int rc = check_after(st, l, field, field_len, eb);
    if (rc != 0)
        return rc;
    snprintf(field, field_len, "init_from");
    rc = initsrc_resolve(st, data_dir, &l->spec, 1, &l->init, eb);
    if (rc != 0)
        return rc;
    if (l->init.deferred && l->waiting_for[0] == '\0') /* cannot happen: deferred needs after */
        snprintf(l->waiting_for, sizeof l->waiting_for, "%s", l->spec.init.id);
    return 0;
}

void lineage_to_job(const lineage *l, store_job_new *nj)
{
    nj->init_file = l->init.file[0] ? l->init.file : NULL;
    nj->init_sha256 = l->init.sha256;
    nj->init_size = l->init.size;
    nj->after = l->after;
    nj->n_after = l->spec.n_after;
    nj->waiting_for = l->waiting_for[0] ? l->waiting_for : NULL;
}

void lineage_move(lineage *dst, lineage *src)
{
    *dst = *src;
    for (int i = 0; i < dst->spec.n_after && i < INITREF_MAX_AFTER; i++)
        dst->after[i] = dst->spec.after[i];
    memset(src, 0, sizeof *src);
}

void lineage_free(lineage *l)
{
    initsrc_free(&l->init);
    jobspec_free(&l->spec);
}

static void cancel_blocked(store *st, const char *id, const char *reason, const char *message)
{
    errbuf eb;
    if (store_transition(st, id, JS_BIT(JS_QUEUED), JS_CANCELLED, reason, message, NULL, &eb) == 0)
        log_info("job %s cancelled: %s", id, message);
    else
        log_warn("job %s: cannot cancel (%s): %s", id, message, eb.msg);
}

/* A spec stored without its model (JOBSPEC_MODEL_LATER): the source's
 * model added, parsed in full. Returns the canonical spec (new reference)
 * and fills *js, or NULL with text saying why. */
static json_t *complete_spec(store *st, const char *data_dir, json_t *spec, job_spec *js,
                             char *text, size_t len)
{
    json_t *model, *canon = NULL;
    int deferred;
    errbuf eb;
    if (initsrc_source_model(st, data_dir, spec, &model, &deferred, &eb) != 0 || model == NULL) {
        snprintf(text, len, "%s",
                 model == NULL && !deferred ? "init_from: no model config" : eb.msg);
        return NULL;
    }
    json_t *full = json_deep_copy(spec);
    json_object_set_new(full, "model", model);
    field_errors fe;
    if (jobspec_parse(js, &canon, full, &fe) != 0) {
        char errs[500];
        fe_format(&fe, errs, sizeof errs);
        snprintf(text, len, "with the model of its init_from weights the spec is invalid: %s",
                 errs);
    }
    json_decref(full);
    return canon;
}

/* Every after job succeeded: resolve init_from now and release the job. */
static int release(store *st, const char *data_dir, const store_blocked *b)
{
    json_t *spec = json_loads(b->spec_json, 0, NULL), *canon = NULL;
    job_spec js;
    field_errors fe;
    char text[700];
    if (spec == NULL || jobspec_parse_flags(&js, NULL, spec, &fe, JOBSPEC_MODEL_LATER) != 0) {
        json_decref(spec);
        jobspec_free(&js);
        cancel_blocked(st, b->id, "INVALID_SPEC", "the stored spec does not parse");
        return 1;
    }
    if (js.model_later) {
        jobspec_free(&js);
        canon = complete_spec(st, data_dir, spec, &js, text, sizeof text);
        if (canon == NULL) {
            json_decref(spec);
            jobspec_free(&js);
            cancel_blocked(st, b->id, "INIT_FROM_INVALID", text);
            return 1;
        }
    }
    json_decref(spec);
    initsrc init;
    errbuf eb;
    char *canon_text = canon != NULL ? json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(canon);
    int rc = initsrc_resolve(st, data_dir, &js, 0, &init, &eb);
    if (rc != 0) {
        snprintf(text, sizeof text, "%s", eb.msg);
        cancel_blocked(st, b->id, "INIT_FROM_INVALID", text);
    } else if (store_job_unblock(st, b->id, init.file[0] ? init.file : NULL, init.sha256, init.size,
                                 canon_text, js.params, js.mflops, &eb) == 0) {
        log_info("job %s: every job it waited for succeeded; queued", b->id);
    }
    free(canon_text);
    initsrc_free(&init);
    jobspec_free(&js);
    return 1;
}

int lineage_poll(store *st, const char *data_dir)
{
    store_blocked *b;
    int n, moved = 0;
    errbuf eb;
    if (store_blocked_list(st, &b, &n, &eb) < 0) {
        log_error("cannot list waiting jobs: %s", eb.msg);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        char which[STORE_ID_MAX], text[300];
        int state;
        int r = store_deps_state(st, b[i].id, which, &state, &eb);
        if (r == 0) {
            moved += release(st, data_dir, &b[i]);
        } else if (r == 1) {
            snprintf(text, sizeof text, "WAITING_FOR %s (%s): starts when it has succeeded", which,
                     store_state_name((job_state)state));
            store_job_wait(st, b[i].id, text, &eb);
        } else if (r == 2) {
            snprintf(text, sizeof text, "job %s, which this job waits for (after), %s", which,
                     state < 0            ? "was deleted"
                     : state == JS_FAILED ? "FAILED"
                                          : "was CANCELLED");
            cancel_blocked(st, b[i].id, "DEPENDENCY_FAILED", text);
            moved++;
        }
        free(b[i].spec_json);
    }
    free(b);
    return moved;
}
