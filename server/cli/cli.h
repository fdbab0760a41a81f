/* cli.h - what the kiln CLI's command files share: the commands, their help, output helpers.
 *
 *   kiln.c      options before the command, dispatch, `kiln help`
 *   help.c      each command's usage, flags and example; bash completion
 *   cmd_jobs.c  submit (--dry-run, --watch), list, get, cancel, delete, watch
 *   cmd_data.c  metrics (--csv), logs (--follow), download, workers, health
 *   cmd_models.c upload (--model), models, resume
 *   client.c    HTTP: calls, downloads, event streams (client.h)
 * Each command takes the arguments after its name and returns the exit
 * status: 0 ok, 1 failure (watch: the job did not succeed), 2 usage. Not
 * thread-safe (one command per process).
 */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <jansson.h>
#include <stdio.h>

/* --json: print the API's JSON instead of tables. */
extern int cli_json_out;

int cmd_submit(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_download(int argc, char **argv);
int cmd_workers(int argc, char **argv);
int cmd_health(int argc, char **argv);
int cmd_completion(int argc, char **argv);
int cmd_upload(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_resume(int argc, char **argv);

typedef struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *synopsis; /* "submit FILE [-q] [--dry-run] [--watch]" */
    const char *summary;  /* one line */
    const char *flags;    /* one "  --flag   what it does\n" per flag, or "" */
    const char *example;  /* a command line */
} cli_command;

/* Every command, in the order help lists them; NULL-named at the end. */
extern const cli_command cli_commands[];

/* The command named name, or NULL. */
const cli_command *cli_find(const char *name);

/* Prints the overview (every command) to f. */
void cli_usage(FILE *f);

/* Prints one command's usage, flags and example to f. */
void cli_command_help(FILE *f, const cli_command *c);

/* For a command's own argument errors: its usage on stderr; returns 2. */
int cli_bad_usage(const char *name, const char *why);

/* 1 when argv holds -h or --help (the command then prints its help). */
int cli_wants_help(int argc, char **argv);

/* Output helpers. */
void cli_print_json(const json_t *j);
const char *cli_str(const json_t *o, const char *k);

/* Follows a job's event stream until it ends, printing progress (a bar on
 * a terminal, a line per state change and per tenth otherwise) and the
 * outcome. Returns 0 when the job SUCCEEDED, 1 otherwise. */
int cli_watch_job(const char *id);

#endif
