/* help.c - the kiln CLI's command table, help texts and bash completion (see cli.h). */
#include "server/cli/cli.h"

#include <stdio.h>
#include <string.h>

const cli_command cli_commands[] = {
    {"submit", cmd_submit,
     "submit FILE [-q] [--dry-run] [--watch] [--after ID]... [--init-from REF]",
     "submit a job spec (FILE, or - for stdin)",
     "  -q           print only the new job's id\n"
     "  --after ID   start only when job ID has succeeded (repeatable; adds to the spec's\n"
     "               after); the job is CANCELLED if ID fails or is cancelled\n"
     "  --init-from REF  start from weights: a job id (its model.safetensors), an uploaded\n"
     "               model id (m...) or a path on the pool hosts; a spec without model then\n"
     "               takes the model of those weights\n"
     "  --dry-run    validate only: params, MFLOPs and (with --json) the spec with defaults;\n"
     "               nothing is stored\n"
     "  --watch      then follow the job until it ends; exit 1 unless it SUCCEEDED\n",
     "kiln submit api/examples/chain/3-retrain.json --after j01a2... "
     "--init-from j01a2..."},
    {"list", cmd_list,
     "list [--state S] [--type T] [--name TEXT] [--owner NAME] [--by-priority] [--all]",
     "jobs, newest first",
     "  --state S      only jobs in state S (QUEUED, RUNNING, SUCCEEDED, FAILED, ...)\n"
     "  --type T       only train, prune or adapt jobs\n"
     "  --name TEXT    only jobs whose name or id contains TEXT\n"
     "  --owner NAME   only jobs submitted with the token named NAME\n"
     "  --by-priority  highest priority first\n"
     "  --all          every page, not only the first 100 jobs\n",
     "kiln list --state RUNNING"},
    {"get", cmd_get, "get ID", "one job in full (JSON; lineage in init_from, after, init_sha256)",
     "", "kiln get j01a2..."},
    {"upload", cmd_upload, "upload FILE [--model CFG] [--name NAME] [-q]",
     "upload safetensors weights (e.g. trained in PyTorch) as a model for init_from",
     "  --model CFG  the model config: a JSON file (or architecture.json) or the JSON text;\n"
     "               without it the file's own \"model\" metadata, if any\n"
     "  --name NAME  a name to list it by\n"
     "  -q           print only the new model's id\n",
     "kiln upload resnet20.safetensors --model resnet20.json"},
    {"models", cmd_models, "models", "the uploaded models", "", "kiln models"},
    {"resume", cmd_resume, "resume ID [-q]",
     "submit job ID's spec again, starting from its newest checkpoint (init_from)", "",
     "kiln resume j01a2..."},
    {"cancel", cmd_cancel, "cancel ID", "cancel a queued or running job", "",
     "kiln cancel j01a2..."},
    {"delete", cmd_delete, "delete ID",
     "delete a finished job and its files (its owner, or an admin token)", "",
     "kiln delete j01a2..."},
    {"watch", cmd_watch, "watch ID",
     "follow a job's event stream until it ends; exit 1 unless it SUCCEEDED", "",
     "kiln watch j01a2... && echo trained"},
    {"metrics", cmd_metrics, "metrics ID [--names a,b] [--after N] [--csv]",
     "metric points (TSV; --json: one JSON object a line)",
     "  --names a,b  only these metric names\n"
     "  --after N    only points after seq N\n"
     "  --csv        CSV with a header: seq,step,epoch,name,value,time\n",
     "kiln metrics j01a2... --names train/loss,test/top1 --csv > metrics.csv"},
    {"logs", cmd_logs, "logs ID [--tail N] [--follow]", "the job's log lines",
     "  --tail N   only the last N lines\n"
     "  --follow   then keep printing new lines until the job ends (reconnects after a\n"
     "             dropped connection without losing or repeating a line)\n",
     "kiln logs j01a2... --tail 20 --follow"},
    {"download", cmd_download, "download ID NAME [-o FILE]",
     "an artifact, e.g. model.safetensors (written to FILE.part, then renamed)",
     "  -o FILE   where to save it (default: NAME)\n",
     "kiln download j01a2... model.safetensors -o resnet20.safetensors"},
    {"workers", cmd_workers, "workers", "worker pools", "", "kiln workers"},
    {"health", cmd_health, "health",
     "exit 0 when the server answers GET /healthz (no token needed: container health checks)", "",
     "kiln --url http://127.0.0.1:8080 health"},
    {"completion", cmd_completion, "completion bash", "print the bash completion script", "",
     "kiln completion bash > /etc/bash_completion.d/kiln   (or: source <(kiln completion bash))"},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};

const cli_command *cli_find(const char *name)
{
    for (const cli_command *c = cli_commands; c->name != NULL; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

void cli_usage(FILE *f)
{
    fprintf(f,
            "usage: kiln [--url URL] [--token TOKEN | --token-file FILE] [--cacert FILE] [--json] "
            "COMMAND ...\n"
            "  --url URL      the server (default $KILN_URL, else http://localhost:8080;\n"
            "                 https://... when it serves TLS)\n"
            "  --token TOKEN  bearer token (default $KILN_TOKEN; ps shows it: prefer)\n"
            "  --token-file FILE  the token on the file's first line (or $KILN_TOKEN_FILE)\n"
            "  --cacert FILE  verify an https server against this CA (default $KILN_CACERT,\n"
            "                 else the system's CAs)\n"
            "  --json         print the API's JSON instead of tables\n"
            "  -h, --help     this help; `kiln COMMAND --help` for one command\n"
            "commands:\n");
    for (const cli_command *c = cli_commands; c->name != NULL; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "example: kiln --url http://localhost:8080 submit job.json --watch\n");
}

void cli_command_help(FILE *f, const cli_command *c)
{
    fprintf(f, "usage: kiln %s\n  %s\n", c->synopsis, c->summary);
    if (c->flags[0] != '\0')
        fprintf(f, "flags:\n%s", c->flags);
    fprintf(f, "example: %s\n", c->example);
}

int cli_bad_usage(const char *name, const char *why)
{
    if (why != NULL)
        fprintf(stderr, "kiln %s: %s\n", name, why);
    cli_command_help(stderr, cli_find(name));
    return 2;
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    return 0;
}

/* Completes commands, each command's flags, states and types, and files
 * after submit; job ids are not completed (that would call the server). */
int cmd_completion(int argc, char **argv)
{
    if (argc != 1 || strcmp(argv[0], "bash") != 0)
        return cli_bad_usage("completion", "only bash is supported");
    printf("# bash completion for kiln (source <(kiln completion bash))\n"
           "_kiln() {\n"
           "    local cur prev cmd i\n"
           "    cur=${COMP_WORDS[COMP_CWORD]}\n"
           "    prev=${COMP_WORDS[COMP_CWORD-1]}\n"
           "    cmd=\"\"\n"
           "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
           "        case ${COMP_WORDS[i]} in\n"
           "        --url | --token | --token-file | --cacert) ((i++)) ;;\n"
           "        -*) ;;\n"
           "        *) cmd=${COMP_WORDS[i]}; break ;;\n"
           "        esac\n"
           "    done\n"
           "    case $prev in\n"
           "    --state) COMPREPLY=($(compgen -W 'QUEUED STARTING RUNNING RESTARTING CANCELLING "
           "SUCCEEDED FAILED CANCELLED' -- \"$cur\")); return ;;\n"
           "    --type) COMPREPLY=($(compgen -W 'train prune adapt' -- \"$cur\")); return ;;\n"
           "    -o | submit) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
           "    --cacert | --token-file) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
           "    --url | --token | --names | --after | --tail | --name) return ;;\n"
           "    esac\n"
           "    case $cmd in\n"
           "    \"\") COMPREPLY=($(compgen -W '--url --token --token-file --cacert --json --help");
    for (const cli_command *c = cli_commands; c->name != NULL; c++)
        printf(" %s", c->name);
    printf("' -- \"$cur\")) ;;\n");
    for (const cli_command *c = cli_commands; c->name != NULL; c++) {
        printf("    %s) COMPREPLY=($(compgen -W '--help", c->name);
        for (const char *p = c->flags; (p = strstr(p, "  -")) != NULL;) {
            p += 2;
            size_t n = strcspn(p, " \n");
            printf(" %.*s", (int)n, p);
            p += n;
        }
        printf("' -- \"$cur\")) ;;\n");
    }
    printf("    esac\n"
           "}\n"
           "complete -o default -F _kiln kiln\n");
    return 0;
}
