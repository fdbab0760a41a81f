/* kiln.c - the kiln command-line client: options, dispatch, help (see cli.h for the files).
 *
 *   kiln [--url URL] [--token TOKEN] [--cacert FILE] [--json] COMMAND ...
 *     submit FILE [-q] [--dry-run] [--watch]   list [--state S] [--all] ...
 *     get ID   cancel ID   delete ID   watch ID
 *     metrics ID [--names a,b] [--after N] [--csv]   logs ID [--tail N] [--follow]
 *     download ID NAME [-o FILE]   workers   completion bash
 *
 * The server is --url, else $KILN_URL, else http://localhost:8080; the
 * bearer token is --token (shown by ps: prefer the others), --token-file, else
 * $KILN_TOKEN (none: no Authorization); an
 * https:// server is verified against --cacert, else $KILN_CACERT, else the
 * system's CAs.
 * `kiln --help`, `kiln help COMMAND` and `kiln COMMAND --help` list every
 * flag with an example. Exit status: 0 ok, 1 failure (watch and submit
 * --watch: the job did not succeed), 2 usage.
 */
#include "server/cli/cli.h"
#include "server/cli/client.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first line of a token file (a token kept off the command line, where
 * ps would show it). 0, or -1 with the reason on stderr. */
static int read_token_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(buf, (int)len, f) == NULL) {
        fprintf(stderr, "kiln: cannot read a token from %s\n", path);
        if (f != NULL)
            fclose(f);
        return -1;
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        fprintf(stderr, "kiln: %s holds no token on its first line\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static char token_buf[512];
    const char *url = getenv("KILN_URL");
    if (url == NULL || url[0] == '\0')
        url = "http://localhost:8080";
    const char *token = getenv("KILN_TOKEN");
    const char *cacert = getenv("KILN_CACERT");
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"token", required_argument, NULL, 't'},
        {"cacert", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"token-file", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    /* Options before the command only; the command parses its own. */
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            url = optarg;
            break;
        case 't':
            token = optarg;
            break;
        case 'T':
            if (read_token_file(optarg, token_buf, sizeof token_buf) != 0)
                return 2;
            token = token_buf;
            break;
        case 'c':
            cacert = optarg;
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
    const char *name = argv[optind];
    int n = argc - optind - 1;
    char **rest = argv + optind + 1;
    if (strcmp(name, "help") == 0) {
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
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        fprintf(stderr, "kiln: '%s' is not a server URL (expected e.g. http://localhost:8080)\n",
                url);
        return 1;
    }
    client_init(url, token);
    client_set_cacert(cacert);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmd->fn(n, rest);
    curl_global_cleanup();
    return rc;
}
