/* cmd_jobs.c - kiln submit, list, get, cancel, delete and watch (see cli.h); the
 * output helpers. */
#include "server/cli/cli.h"
#include "server/cli/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_json_out;

void cli_print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    puts(s);
    free(s);
}

const char *cli_str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static double progress(const json_t *job)
{
    return json_number_value(json_object_get(json_object_get(job, "progress"), "fraction"));
}

/* --init-from REF: a job id ({"job": ID}), an uploaded model ("m..."
 * ids are the server's model ids: {"model": ID}) or a path. */
static json_t *init_from_arg(const char *ref)
{
    if (strchr(ref, '/') != NULL)
        return json_pack("{s:s}", "path", ref);
    if (ref[0] == 'm')
        return json_pack("{s:s}", "model", ref);
    return json_pack("{s:s}", "job", ref);
}

/* Adds --after and --init-from to the spec; a usage error exits. */
static void add_lineage(json_t *spec, json_t *after, const char *init)
{
    if (json_array_size(after) > 0) {
        json_t *have = json_object_get(spec, "after");
        if (json_is_array(have))
            json_array_extend(have, after);
        else
            json_object_set(spec, "after", after);
    }
    if (init != NULL)
        json_object_set_new(spec, "init_from", init_from_arg(init));
}

int cmd_submit(int argc, char **argv)
{
    int quiet = 0, dry = 0, watch = 0;
    const char *file = NULL, *init = NULL;
    json_t *after = json_array();
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--after") == 0 && i + 1 < argc)
            json_array_append_new(after, json_string(argv[++i]));
        else if (strcmp(argv[i], "--init-from") == 0 && i + 1 < argc)
            init = argv[++i];
        else if (strcmp(argv[i], "-q") == 0)
            quiet = 1;
        else if (strcmp(argv[i], "--dry-run") == 0)
            dry = 1;
        else if (strcmp(argv[i], "--watch") == 0)
            watch = 1;
        else if ((argv[i][0] == '-' && argv[i][1] != '\0') || file != NULL) {
            json_decref(after);
            return cli_bad_usage("submit", file != NULL && argv[i][0] != '-' ? "one FILE only"
                                                                             : "unknown flag");
        } else
            file = argv[i];
    }
    if (file == NULL || (dry && watch)) {
        json_decref(after);
        return cli_bad_usage("submit", file == NULL ? "FILE is missing"
                                                    : "--dry-run stores nothing to watch");
    }
    json_error_t je;
    json_t *spec =
        strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &je) : json_load_file(file, 0, &je);
    if (spec == NULL) {
        fprintf(stderr, "kiln: %s: not JSON: %s (line %d, column %d)\n", file, je.text, je.line,
                je.column);
        json_decref(after);
        return 1;
    }
    if (json_is_object(spec))
        add_lineage(spec, after, init);
    json_decref(after);
    char *text = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    long status;
    json_t *job =
        client_call("POST", dry ? "/api/v1/jobs?dry_run=true" : "/api/v1/jobs", text, &status);
    free(text);
    if (dry) {
        if (cli_json_out)
            cli_print_json(job);
        else
            printf("valid: %lld params, %.4f MFLOPs (nothing stored; --json shows the spec "
                   "with its defaults)\n",
                   (long long)json_integer_value(json_object_get(job, "params")),
                   json_number_value(json_object_get(job, "mflops")));
        json_decref(job);
        return 0;
    }
    char id[128];
    snprintf(id, sizeof id, "%s", cli_str(job, "id"));
    if (quiet)
        printf("%s\n", id);
    else if (cli_json_out)
        cli_print_json(job);
    else
        printf("%s job %s '%s': %s, priority %lld, %lld ranks, %lld params, %.2f MFLOPs\n",
               status == 201 ? "submitted" : "already submitted (same idempotency key)", id,
               cli_str(job, "name"), cli_str(job, "state"),
               (long long)json_integer_value(json_object_get(job, "priority")),
               (long long)json_integer_value(json_object_get(job, "ranks")),
               (long long)json_integer_value(json_object_get(job, "params")),
               json_number_value(json_object_get(job, "mflops")));
    fflush(stdout);
    json_decref(job);
    return watch ? cli_watch_job(id) : 0;
}

int cmd_list(int argc, char **argv)
{
    const char *state = NULL, *type = NULL, *name = NULL, *owner = NULL;
    int all = 0, prio = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
            state = argv[++i];
        else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc)
            type = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (strcmp(argv[i], "--owner") == 0 && i + 1 < argc)
            owner = argv[++i];
        else if (strcmp(argv[i], "--by-priority") == 0)
            prio = 1;
        else if (strcmp(argv[i], "--all") == 0)
            all = 1;
        else
            return cli_bad_usage("list", NULL);
    }
    char path[1024], token[64] = "", *esc_name = NULL, *esc_owner = NULL;
    if (name != NULL) /* the query values, percent-encoded */
        esc_name = client_escape(name);
    if (owner != NULL)
        esc_owner = client_escape(owner);
    json_t *every = json_array();
    do {
        snprintf(path, sizeof path, "/api/v1/jobs?page_size=100%s%s%s%s%s%s%s%s%s%s%s",
                 state ? "&state=" : "", state ? state : "", type ? "&type=" : "", type ? type : "",
                 esc_name ? "&q=" : "", esc_name ? esc_name : "", esc_owner ? "&owner=" : "",
                 esc_owner ? esc_owner : "", prio ? "&order_by=priority" : "",
                 token[0] ? "&page_token=" : "", token);
        json_t *page = client_call("GET", path, NULL, NULL);
        json_array_extend(every, json_object_get(page, "jobs"));
        json_t *nt = json_object_get(page, "next_page_token");
        snprintf(token, sizeof token, "%s", json_is_string(nt) ? json_string_value(nt) : "");
        json_decref(page);
    } while (all && token[0]);
    free(esc_name);
    free(esc_owner);
    if (cli_json_out) {
        cli_print_json(every);
    } else {
        printf("%-22s %-20s %-6s %4s %-11s %6s  %s\n", "ID", "NAME", "TYPE", "PRIO", "STATE",
               "DONE", "REASON");
        size_t i;
        json_t *j;
        json_array_foreach(every, i, j)
        {
            printf("%-22s %-20.20s %-6s %4lld %-11s %5.1f%%  %s\n", cli_str(j, "id"),
                   cli_str(j, "name"), cli_str(j, "type"),
                   (long long)json_integer_value(json_object_get(j, "priority")),
                   cli_str(j, "state"), 100.0 * progress(j), cli_str(j, "reason"));
        }
        if (token[0])
            printf("(more: kiln list --all)\n");
    }
    json_decref(every);
    return 0;
}

/* The one ID argument of get, cancel, delete and watch; NULL after a usage error. */
static const char *one_id(const char *cmd, int argc, char **argv)
{
    if (argc != 1 || argv[0][0] == '-') {
        cli_bad_usage(cmd, argc == 0 ? "ID is missing" : NULL);
        return NULL;
    }
    return argv[0];
}

int cmd_get(int argc, char **argv)
{
    const char *id = one_id("get", argc, argv);
    if (id == NULL)
        return 2;
    json_t *j = client_job("GET", id, "");
    cli_print_json(j);
    json_decref(j);
    return 0;
}

int cmd_cancel(int argc, char **argv)
{
    const char *id = one_id("cancel", argc, argv);
    if (id == NULL)
        return 2;
    json_t *j = client_job("POST", id, "/cancel");
    if (cli_json_out)
        cli_print_json(j);
    else
        printf("job %s: %s (%s)\n", cli_str(j, "id"), cli_str(j, "state"), cli_str(j, "message"));
    json_decref(j);
    return 0;
}

int cmd_delete(int argc, char **argv)
{
    const char *id = one_id("delete", argc, argv);
    if (id == NULL)
        return 2;
    json_decref(client_job("DELETE", id, ""));
    printf("job %s deleted with its files\n", id);
    return 0;
}

int cmd_watch(int argc, char **argv)
{
    const char *id = one_id("watch", argc, argv);
    return id == NULL ? 2 : cli_watch_job(id);
}
