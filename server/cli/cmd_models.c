/* cmd_models.c - kiln upload, models and resume (see cli.h). */
#include "server/cli/cli.h"
#include "server/cli/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* --model CFG: a file holding the model config, or the JSON itself. */
static char *model_arg(const char *cfg)
{
    json_error_t je;
    json_t *m = cfg[0] == '{' ? json_loads(cfg, 0, &je) : json_load_file(cfg, 0, &je);
    if (!json_is_object(m)) {
        fprintf(stderr, "kiln: --model %s: not a JSON object: %s\n", cfg, je.text);
        json_decref(m);
        return NULL;
    }
    /* architecture.json of a prune or adapt job holds the config under "model" */
    json_t *inner = json_object_get(m, "model");
    char *text = json_dumps(json_is_object(inner) ? inner : m, JSON_COMPACT);
    json_decref(m);
    return text;
}

int cmd_upload(int argc, char **argv)
{
    const char *file = NULL, *cfg = NULL, *name = NULL;
    int quiet = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            cfg = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (strcmp(argv[i], "-q") == 0)
            quiet = 1;
        else if (argv[i][0] == '-' || file != NULL)
            return cli_bad_usage("upload", NULL);
        else
            file = argv[i];
    }
    if (file == NULL)
        return cli_bad_usage("upload", "FILE is missing");
    FILE *f = fopen(file, "rb");
    struct stat sb;
    if (f == NULL || fstat(fileno(f), &sb) != 0) {
        fprintf(stderr, "kiln: cannot read %s\n", file);
        if (f != NULL)
            fclose(f);
        return 1;
    }
    char *model = cfg != NULL ? model_arg(cfg) : NULL;
    if (cfg != NULL && model == NULL) {
        fclose(f);
        return 1;
    }
    char *em = model != NULL ? client_escape(model) : NULL;
    char *en = name != NULL ? client_escape(name) : NULL;
    size_t plen = 64 + (em ? strlen(em) : 0) + (en ? strlen(en) : 0);
    char *path = malloc(plen);
    snprintf(path, plen, "/api/v1/models%s%s%s%s%s", em || en ? "?" : "", em ? "model=" : "",
             em ? em : "", em && en ? "&" : "", en ? "name=" : "");
    if (en != NULL)
        strncat(path, en, plen - strlen(path) - 1);
    json_t *m = client_upload(path, f, (long long)sb.st_size);
    fclose(f);
    free(path);
    free(em);
    free(en);
    free(model);
    if (quiet)
        printf("%s\n", cli_str(m, "id"));
    else if (cli_json_out)
        cli_print_json(m);
    else
        printf("uploaded model %s '%s': %lld tensors, %lld parameters, sha256 %s%s\n",
               cli_str(m, "id"), cli_str(m, "name"),
               (long long)json_integer_value(json_object_get(m, "tensors")),
               (long long)json_integer_value(json_object_get(m, "params")), cli_str(m, "sha256"),
               json_is_object(json_object_get(m, "model")) ? "" : " (no model config)");
    json_decref(m);
    return 0;
}

int cmd_models(int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return cli_bad_usage("models", NULL);
    json_t *j = client_call("GET", "/api/v1/models", NULL, NULL);
    json_t *items = json_object_get(j, "models");
    if (cli_json_out) {
        cli_print_json(items);
    } else {
        printf("%-22s %-24s %12s %10s  %s\n", "ID", "NAME", "BYTES", "PARAMS", "ARCH");
        size_t i;
        json_t *m;
        json_array_foreach(items, i, m)
        {
            printf("%-22s %-24.24s %12lld %10lld  %s\n", cli_str(m, "id"), cli_str(m, "name"),
                   (long long)json_integer_value(json_object_get(m, "size")),
                   (long long)json_integer_value(json_object_get(m, "params")),
                   json_is_object(json_object_get(m, "model"))
                       ? cli_str(json_object_get(m, "model"), "arch")
                       : "-");
        }
    }
    json_decref(j);
    return 0;
}

/* kiln resume ID: the job's spec again, starting from its newest checkpoint. */
int cmd_resume(int argc, char **argv)
{
    const char *id = NULL;
    int quiet = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-q") == 0)
            quiet = 1;
        else if (argv[i][0] == '-' || id != NULL)
            return cli_bad_usage("resume", NULL);
        else
            id = argv[i];
    }
    if (id == NULL)
        return cli_bad_usage("resume", "ID is missing");
    json_t *job = client_job("GET", id, "");
    json_t *spec = json_deep_copy(json_object_get(job, "spec"));
    json_decref(job);
    json_object_del(spec, "idempotency_key");
    json_object_del(spec, "after");
    json_object_set_new(spec, "init_from",
                        json_pack("{s:s,s:s}", "job", id, "checkpoint", "latest"));
    char *text = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    json_t *nj = client_call("POST", "/api/v1/jobs", text, NULL);
    free(text);
    if (quiet)
        printf("%s\n", cli_str(nj, "id"));
    else
        printf("submitted job %s '%s' from the latest checkpoint of %s\n", cli_str(nj, "id"),
               cli_str(nj, "name"), id);
    json_decref(nj);
    return 0;
}
