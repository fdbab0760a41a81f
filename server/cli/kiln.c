/* kiln.c - the kiln command-line client: options, dispatch, help (see cli.h for the files).
 *
 *   kiln [--url URL] [--token TOKEN | --token-file FILE] [--cacert FILE] [--json] COMMAND ...
 *     submit FILE [-q] [--dry-run] [--watch]   list [--state S] [--all] ...
 *     get ID   cancel ID   delete ID   watch ID
 *     metrics ID [--names a,b] [--after N] [--csv]   logs ID [--tail N] [--follow]
 *     download ID NAME [-o FILE]   workers   completion bash
 *
 * The server is --url, else $KILN_URL, else http://localhost:8080; the
 * bearer token is --token, else the first line of --token-file or
 * $KILN_TOKEN_FILE, else $KILN_TOKEN (none: no Authorization; a file or the
 * environment keeps it out of ps); an
 * https:// server is verified against --cacert, else $KILN_CACERT, else the
 * system's CAs.
 * `kiln --help`, `kiln help COMMAND` and `kiln COMMAND --help` list every
 * flag with an example. Exit status: 0 ok, 1 failure (watch and submit
 * --watch: the job did not succeed), 2 usage.
 */
#include "common/keyfile.h"
#include "server/cli/cli.h"
#include "server/cli/client.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The global options, before the command, over KILN_URL, KILN_TOKEN, KILN_TOKEN_FILE
 * and KILN_CACERT. */
typedef struct cli_globals {
    const char *url, *token, *token_file, *cacert;
} cli_globals;

/* Parses the global options into g (optind then names the command). Returns -1 to go
 * on, else the exit code (0 after --help, 2 after a bad option). */
static int parse_globals(int argc, char **argv, cli_globals *g)
{
    g->url = getenv("KILN_URL");
    if (g->url == NULL || g->url[0] == '\0')
        g->url = "http://localhost:8080";
    g->token = getenv("KILN_TOKEN");
    g->token_file = getenv("KILN_TOKEN_FILE");
    g->cacert = getenv("KILN_CACERT");
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"token", required_argument, NULL, 't'},
        {"token-file", required_argument, NULL, 'T'},
        {"cacert", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    /* Options before the command only; the command parses its own. */
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            g->url = optarg;
            break;
        case 't':
            g->token = optarg;
            g->token_file = NULL;
            break;
        case 'T':
            g->token_file = optarg;
            break;
        case 'c':
            g->cacert = optarg;
            break;
        case 'j':
            cli_json_out = 1;
            break;
        case 'h':
            cli_usage(stdout);
            return 0;
        default:
            cli_usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        cli_usage(stderr);
        return 2;
    }
    return -1;
}

/* `kiln help [COMMAND]`. */
static int help_command(int n, char **rest)
{
    const cli_command *cmd = n == 1 ? cli_find(rest[0]) : NULL;
    if (n == 1 && cmd == NULL) {
        fprintf(stderr, "kiln: unknown command '%s'\n", rest[0]);
        return 2;
    }
    if (cmd != NULL)
        cli_command_help(stdout, cmd);
    else
        cli_usage(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    cli_globals g;
    int code = parse_globals(argc, argv, &g);
    if (code >= 0)
        return code;
    const char *name = argv[optind];
    int n = argc - optind - 1;
    char **rest = argv + optind + 1;
    if (strcmp(name, "help") == 0)
        return help_command(n, rest);
    const cli_command *cmd = cli_find(name);
    if (cmd == NULL) {
        fprintf(stderr, "kiln: unknown command '%s'\n", name);
        cli_usage(stderr);
        return 2;
    }
    if (cli_wants_help(n, rest)) {
        cli_command_help(stdout, cmd);
        return 0;
    }
    if (strncmp(g.url, "http://", 7) != 0 && strncmp(g.url, "https://", 8) != 0) {
        fprintf(stderr, "kiln: '%s' is not a server URL (expected e.g. http://localhost:8080)\n",
                g.url);
        return 1;
    }
    static char token_buf[512];
    if (g.token_file != NULL && g.token_file[0] != '\0') {
        errbuf eb;
        if (keyfile_read_token(g.token_file, token_buf, sizeof token_buf, &eb) != 0) {
            fprintf(stderr, "kiln: --token-file: %s\n", eb.msg);
            return 1;
        }
        g.token = token_buf;
    }
    client_init(g.url, g.token);
    client_set_cacert(g.cacert);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmd->fn(n, rest);
    curl_global_cleanup();
    return rc;
}
