/* kiln.c - the kiln command-line client (libcurl + jansson).
 *
 *   kiln [--url URL] [--json] COMMAND ...
 *     submit FILE [-q]   list [--state S] [--all]   get ID   cancel ID
 *     watch ID   metrics ID [--names a,b] [--after N]   logs ID [--tail N]
 *     download ID NAME [-o FILE]   workers
 *
 * The server is --url, else $KILN_URL, else http://localhost:8080; the
 * bearer token is --token, else $KILN_TOKEN (none: no Authorization). Every
 * failure is one line on stderr: a refused connection or a bad URL names
 * the URL and what to do; an API error shows its code, message and fields.
 * Exit status: 0 ok, 1 failure (watch: the job did not succeed), 2 usage.
 */
#include "common/xalloc.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *base_url;
static const char *bearer_token;
static int json_out;

typedef struct body {
    char *p;
    size_t n;
    FILE *file; /* download: write here instead */
} body;

static size_t on_data(char *data, size_t size, size_t n, void *ud)
{
    body *b = ud;
    size_t k = size * n;
    if (b->file != NULL)
        return fwrite(data, 1, k, b->file);
    b->p = xrealloc(b->p, b->n + k + 1);
    memcpy(b->p + b->n, data, k);
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

static void die_curl(CURLcode rc, const char *url)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        fprintf(stderr,
                "kiln: cannot connect to %s (connection refused): is kiln-server running "
                "there? Set --url or KILN_URL.\n",
                base_url);
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        fprintf(stderr, "kiln: '%s' is not a server URL (expected e.g. http://localhost:8080)\n",
                base_url);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        fprintf(stderr, "kiln: cannot resolve the host of %s: check --url or KILN_URL\n", base_url);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        fprintf(stderr, "kiln: %s did not answer in time\n", url);
        break;
    default:
        fprintf(stderr, "kiln: request to %s failed: %s\n", url, curl_easy_strerror(rc));
    }
    exit(1);
}

/* Performs a request; returns the status; the body in *out (or to file). */
static long request(const char *method, const char *path, const char *data, body *out)
{
    char url[2048];
    size_t bl = strlen(base_url);
    while (bl > 0 && base_url[bl - 1] == '/')
        bl--;
    snprintf(url, sizeof url, "%.*s%s", (int)bl, base_url, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    if (data != NULL)
        h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    char auth_hdr[400];
    if (bearer_token != NULL && bearer_token[0] != '\0') {
        snprintf(auth_hdr, sizeof auth_hdr, "Authorization: Bearer %s", bearer_token);
        h = curl_slist_append(h, auth_hdr);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (data != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, out->file != NULL ? 0L : 30L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kiln-cli/0.1");
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK)
        die_curl(rc, url);
    return status;
}

/* A JSON request: exits with one line on any failure; returns the body. */
static json_t *call(const char *method, const char *path, const char *data, long *status_out)
{
    body b = {NULL, 0, NULL};
    long status = request(method, path, data, &b);
    json_t *j = b.n > 0 ? json_loadb(b.p, b.n, 0, NULL) : NULL;
    if (status_out != NULL)
        *status_out = status;
    if (status >= 400) {
        json_t *e = json_object_get(j, "error");
        if (!json_is_object(e)) {
            fprintf(stderr,
                    "kiln: %s answered HTTP %ld to %s %s and it is not a kiln error: is "
                    "--url right?\n",
                    base_url, status, method, path);
            exit(1);
        }
        fprintf(stderr, "kiln: %s: %s\n", json_string_value(json_object_get(e, "code")),
                json_string_value(json_object_get(e, "message")));
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(e, "details"), i, d)
        {
            if (i == 0 && json_array_size(json_object_get(e, "details")) == 1)
                break; /* the message already says it */
            fprintf(stderr, "  %s: %s\n", json_string_value(json_object_get(d, "field")),
                    json_string_value(json_object_get(d, "reason")));
        }
        exit(1);
    }
    if (status != 204 && j == NULL) {
        fprintf(stderr, "kiln: %s did not answer %s %s with JSON (HTTP %ld): is --url right?\n",
                base_url, method, path, status);
        exit(1);
    }
    free(b.p);
    return j;
}

static void print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    puts(s);
    free(s);
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static double progress(const json_t *job)
{
    json_t *p = json_object_get(job, "progress");
    return json_number_value(json_object_get(p, "fraction"));
}

static int cmd_submit(int argc, char **argv)
{
    int quiet = 0;
    const char *file = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-q") == 0)
            quiet = 1;
        else
            file = argv[i];
    }
    if (file == NULL) {
        fprintf(stderr, "usage: kiln submit FILE [-q]   (FILE - reads stdin)\n");
        return 2;
    }
    json_error_t je;
    json_t *spec =
        strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &je) : json_load_file(file, 0, &je);
    if (spec == NULL) {
        fprintf(stderr, "kiln: %s: not JSON: %s (line %d, column %d)\n", file, je.text, je.line,
                je.column);
        return 1;
    }
    char *text = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    long status;
    json_t *job = call("POST", "/api/v1/jobs", text, &status);
    free(text);
    if (quiet)
        printf("%s\n", str(job, "id"));
    else if (json_out)
        print_json(job);
    else
        printf("%s job %s '%s': %s, priority %lld, %lld ranks, %lld params, %.2f MFLOPs\n",
               status == 201 ? "submitted" : "already submitted (same idempotency key)",
               str(job, "id"), str(job, "name"), str(job, "state"),
               (long long)json_integer_value(json_object_get(job, "priority")),
               (long long)json_integer_value(json_object_get(job, "ranks")),
               (long long)json_integer_value(json_object_get(job, "params")),
               json_number_value(json_object_get(job, "mflops")));
    json_decref(job);
    return 0;
}

static int cmd_list(int argc, char **argv)
{
    const char *state = NULL;
    int all = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
            state = argv[++i];
        else if (strcmp(argv[i], "--all") == 0)
            all = 1;
        else {
            fprintf(stderr, "usage: kiln list [--state STATE] [--all]\n");
            return 2;
        }
    }
    char path[512], token[64] = "";
    json_t *every = json_array();
    do {
        snprintf(path, sizeof path, "/api/v1/jobs?page_size=100%s%s%s%s", state ? "&state=" : "",
                 state ? state : "", token[0] ? "&page_token=" : "", token);
        json_t *page = call("GET", path, NULL, NULL);
        json_array_extend(every, json_object_get(page, "jobs"));
        json_t *nt = json_object_get(page, "next_page_token");
        snprintf(token, sizeof token, "%s", json_is_string(nt) ? json_string_value(nt) : "");
        json_decref(page);
    } while (all && token[0]);
    if (json_out) {
        print_json(every);
    } else {
        printf("%-22s %-20s %-6s %4s %-11s %6s  %s\n", "ID", "NAME", "TYPE", "PRIO", "STATE",
               "DONE", "REASON");
        size_t i;
        json_t *j;
        json_array_foreach(every, i, j)
        {
            printf("%-22s %-20.20s %-6s %4lld %-11s %5.1f%%  %s\n", str(j, "id"), str(j, "name"),
                   str(j, "type"), (long long)json_integer_value(json_object_get(j, "priority")),
                   str(j, "state"), 100.0 * progress(j), str(j, "reason"));
        }
        if (token[0])
            printf("(more: kiln list --all)\n");
    }
    json_decref(every);
    return 0;
}

static int need_id(int argc, char **argv, const char *usage)
{
    if (argc < 1 || argv[0][0] == '-') {
        fprintf(stderr, "usage: kiln %s\n", usage);
        return 0;
    }
    return 1;
}

static int cmd_get(int argc, char **argv)
{
    if (!need_id(argc, argv, "get ID"))
        return 2;
    char path[256];
    snprintf(path, sizeof path, "/api/v1/jobs/%s", argv[0]);
    json_t *j = call("GET", path, NULL, NULL);
    print_json(j);
    json_decref(j);
    return 0;
}

static int cmd_cancel(int argc, char **argv)
{
    if (!need_id(argc, argv, "cancel ID"))
        return 2;
    char path[256];
    snprintf(path, sizeof path, "/api/v1/jobs/%s/cancel", argv[0]);
    json_t *j = call("POST", path, NULL, NULL);
    if (json_out)
        print_json(j);
    else
        printf("job %s: %s (%s)\n", str(j, "id"), str(j, "state"), str(j, "message"));
    json_decref(j);
    return 0;
}

static int terminal(const char *st)
{
    return strcmp(st, "SUCCEEDED") == 0 || strcmp(st, "FAILED") == 0 ||
           strcmp(st, "CANCELLED") == 0;
}

static void latest_text(const json_t *job, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t used = 0;
    const char *k;
    json_t *v;
    int n = 0;
    json_object_foreach(json_object_get(job, "latest_metrics"), k, v)
    {
        if (n++ == 3 || used + 2 >= len)
            break;
        used += (size_t)snprintf(buf + used, len - used, " %s=%.4g", k,
                                 json_number_value(json_object_get(v, "value")));
    }
}

static int cmd_watch(int argc, char **argv)
{
    if (!need_id(argc, argv, "watch ID"))
        return 2;
    char path[256];
    snprintf(path, sizeof path, "/api/v1/jobs/%s", argv[0]);
    int tty = isatty(STDOUT_FILENO);
    char last_state[32] = "";
    int last_decile = -1;
    for (;;) {
        json_t *j = call("GET", path, NULL, NULL);
        const char *st = str(j, "state");
        double f = progress(j);
        json_t *p = json_object_get(j, "progress");
        long long step = (long long)json_integer_value(json_object_get(p, "step"));
        long long total = (long long)json_integer_value(json_object_get(p, "total_steps"));
        char lat[160];
        latest_text(j, lat, sizeof lat);
        if (tty) {
            char bar[31];
            int fill = (int)(f * 30.0 + 0.5);
            for (int i = 0; i < 30; i++)
                bar[i] = i < fill ? '#' : '.';
            bar[30] = '\0';
            printf("\r[%s] %5.1f%%  step %lld/%lld %-10s%s\033[K", bar, 100.0 * f, step, total, st,
                   lat);
            fflush(stdout);
        } else if (strcmp(st, last_state) != 0 || (int)(f * 10) != last_decile) {
            printf("%s %5.1f%% step %lld/%lld%s\n", st, 100.0 * f, step, total, lat);
            fflush(stdout);
        }
        snprintf(last_state, sizeof last_state, "%s", st);
        last_decile = (int)(f * 10);
        if (terminal(st)) {
            if (tty)
                printf("\n");
            printf("job %s %s: %s: %s\n", str(j, "id"), st, str(j, "reason"), str(j, "message"));
            json_t *res = json_object_get(j, "result");
            if (json_is_object(res)) {
                char *s = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(6));
                printf("result: %s\n", s);
                free(s);
            }
            int ok = strcmp(st, "SUCCEEDED") == 0;
            json_decref(j);
            return ok ? 0 : 1;
        }
        json_decref(j);
        struct timespec ts = {0, 500000000L};
        nanosleep(&ts, NULL);
    }
}

static int cmd_metrics(int argc, char **argv)
{
    if (!need_id(argc, argv, "metrics ID [--names a,b] [--after N]"))
        return 2;
    const char *names = NULL;
    long long after = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--names") == 0 && i + 1 < argc)
            names = argv[++i];
        else if (strcmp(argv[i], "--after") == 0 && i + 1 < argc)
            after = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: kiln metrics ID [--names a,b] [--after N]\n");
            return 2;
        }
    }
    if (!json_out)
        printf("seq\tstep\tname\tvalue\n");
    for (;;) {
        char path[512];
        snprintf(path, sizeof path, "/api/v1/jobs/%s/metrics?after_seq=%lld&limit=10000%s%s",
                 argv[0], after, names ? "&names=" : "", names ? names : "");
        json_t *o = call("GET", path, NULL, NULL);
        json_t *pts = json_object_get(o, "points");
        size_t i;
        json_t *pt;
        json_array_foreach(pts, i, pt)
        {
            if (json_out) {
                char *s = json_dumps(pt, JSON_COMPACT);
                puts(s);
                free(s);
            } else {
                printf("%lld\t%lld\t%s\t%.9g\n",
                       (long long)json_integer_value(json_object_get(pt, "seq")),
                       (long long)json_integer_value(json_object_get(pt, "step")), str(pt, "name"),
                       json_number_value(json_object_get(pt, "value")));
            }
        }
        size_t n = json_array_size(pts);
        after = (long long)json_integer_value(json_object_get(o, "next_seq"));
        json_decref(o);
        if (n == 0)
            break;
    }
    return 0;
}

static int cmd_logs(int argc, char **argv)
{
    if (!need_id(argc, argv, "logs ID [--tail N]"))
        return 2;
    long long tail = 0;
    if (argc == 3 && strcmp(argv[1], "--tail") == 0)
        tail = atoll(argv[2]);
    long long after = 0;
    for (;;) {
        char path[512];
        if (tail > 0)
            snprintf(path, sizeof path, "/api/v1/jobs/%s/logs?tail=%lld", argv[0], tail);
        else
            snprintf(path, sizeof path, "/api/v1/jobs/%s/logs?after_seq=%lld&limit=10000", argv[0],
                     after);
        json_t *o = call("GET", path, NULL, NULL);
        json_t *lines = json_object_get(o, "lines");
        size_t i;
        json_t *l;
        json_array_foreach(lines, i, l)
        {
            printf("%s %-5s %s\n", str(l, "time"), str(l, "level"), str(l, "text"));
        }
        size_t n = json_array_size(lines);
        after = (long long)json_integer_value(json_object_get(o, "next_seq"));
        json_decref(o);
        if (n == 0 || tail > 0)
            break;
    }
    return 0;
}

static int cmd_download(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: kiln download ID NAME [-o FILE]\n");
        return 2;
    }
    const char *out = argv[1];
    if (argc == 4 && strcmp(argv[2], "-o") == 0)
        out = argv[3];
    char path[512], part[1024];
    snprintf(path, sizeof path, "/api/v1/jobs/%s/artifacts/%s", argv[0], argv[1]);
    snprintf(part, sizeof part, "%s.part", out);
    FILE *f = fopen(part, "wb");
    if (f == NULL) {
        fprintf(stderr, "kiln: cannot write %s: %s\n", part, strerror(errno));
        return 1;
    }
    body b = {NULL, 0, f};
    long status = request("GET", path, NULL, &b);
    int bad = fclose(f) != 0;
    if (status != 200 || bad) {
        unlink(part);
        if (status != 200) {
            /* fetch the error body again as JSON, for its message */
            call("GET", path, NULL, NULL);
            fprintf(stderr, "kiln: HTTP %ld\n", status);
        } else {
            fprintf(stderr, "kiln: cannot write %s: %s\n", part, strerror(errno));
        }
        return 1;
    }
    if (rename(part, out) != 0) {
        fprintf(stderr, "kiln: cannot rename %s to %s: %s\n", part, out, strerror(errno));
        return 1;
    }
    FILE *g = fopen(out, "rb");
    long size = -1;
    if (g != NULL) {
        fseek(g, 0, SEEK_END);
        size = ftell(g);
        fclose(g);
    }
    printf("saved %s (%ld bytes)\n", out, size);
    return 0;
}

static int cmd_workers(int argc, char **argv)
{
    (void)argv;
    if (argc != 0) {
        fprintf(stderr, "usage: kiln workers\n");
        return 2;
    }
    json_t *o = call("GET", "/api/v1/workers", NULL, NULL);
    json_t *w = json_object_get(o, "workers");
    if (json_out) {
        print_json(w);
    } else if (json_array_size(w) == 0) {
        printf("no worker pool has connected\n");
    } else {
        printf("%-24s %-6s %5s %5s %9s  %s\n", "POOL", "STATE", "RANKS", "CORES", "HEARTBEAT",
               "JOB");
        size_t i;
        json_t *p;
        json_array_foreach(w, i, p)
        {
            json_t *cj = json_object_get(p, "current_job");
            printf("%-24s %-6s %5lld %5lld %8.1fs  %s\n", str(p, "id"), str(p, "state"),
                   (long long)json_integer_value(json_object_get(p, "ranks")),
                   (long long)json_integer_value(json_object_get(p, "cores")),
                   json_number_value(json_object_get(p, "last_heartbeat_age_s")),
                   json_is_object(cj) ? str(cj, "job_id") : "-");
        }
    }
    json_decref(o);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: kiln [--url URL] [--token TOKEN] [--json] COMMAND ...\n"
               "  submit FILE [-q]            submit a job spec (prints the job; -q: its id)\n"
               "  list [--state S] [--all]    jobs, newest first\n"
               "  get ID                      one job in full (JSON)\n"
               "  cancel ID                   cancel a queued or running job\n"
               "  watch ID                    live progress until the job ends\n"
               "  metrics ID [--names a,b] [--after N]   metric points (TSV)\n"
               "  logs ID [--tail N]          the job's log lines\n"
               "  download ID NAME [-o FILE]  an artifact, e.g. model.safetensors\n"
               "  workers                     worker pools\n"
               "The server is --url, else $KILN_URL, else http://localhost:8080.\n"
               "The bearer token is --token, else $KILN_TOKEN.\n");
}

int main(int argc, char **argv)
{
    base_url = getenv("KILN_URL");
    if (base_url == NULL || base_url[0] == '\0')
        base_url = "http://localhost:8080";
    bearer_token = getenv("KILN_TOKEN");
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"token", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    /* Options before the command only; the command parses its own. */
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
            base_url = optarg;
            break;
        case 't':
            bearer_token = optarg;
            break;
        case 'j':
            json_out = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0) {
        fprintf(stderr, "kiln: '%s' is not a server URL (expected e.g. http://localhost:8080)\n",
                base_url);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *cmd = argv[optind];
    int n = argc - optind - 1;
    char **rest = argv + optind + 1;
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"submit", cmd_submit}, {"list", cmd_list},         {"get", cmd_get},
        {"cancel", cmd_cancel}, {"watch", cmd_watch},       {"metrics", cmd_metrics},
        {"logs", cmd_logs},     {"download", cmd_download}, {"workers", cmd_workers},
    };
    int rc = -1;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(cmd, cmds[i].name) == 0)
            rc = cmds[i].fn(n, rest);
    if (rc < 0) {
        fprintf(stderr, "kiln: unknown command '%s'\n", cmd);
        usage(stderr);
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
