/* cmd_data.c - kiln metrics, logs, download, workers and health (see cli.h). */
#include "common/files.h"
#include "server/cli/cli.h"
#include "server/cli/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void print_point(const json_t *pt, int csv)
{
    long long seq = (long long)json_integer_value(json_object_get(pt, "seq"));
    long long step = (long long)json_integer_value(json_object_get(pt, "step"));
    json_t *v = json_object_get(pt, "value"), *ep = json_object_get(pt, "epoch");
    if (cli_json_out) {
        char *s = json_dumps(pt, JSON_COMPACT);
        puts(s);
        free(s);
    } else if (csv) {
        printf("%lld,%lld,", seq, step);
        if (json_is_number(ep))
            printf("%.9g", json_number_value(ep));
        putchar(',');
        csv_field(cli_str(pt, "name"));
        putchar(',');
        if (json_is_number(v))
            printf("%.9g", json_number_value(v));
        printf(",%.3f\n", json_number_value(json_object_get(pt, "time")));
    } else {
        printf("%lld\t%lld\t%s\t%.9g\n", seq, step, cli_str(pt, "name"), json_number_value(v));
    }
}

int cmd_metrics(int argc, char **argv)
{
    if (argc < 1 || argv[0][0] == '-')
        return cli_bad_usage("metrics", "ID is missing");
    const char *names = NULL;
    long long after = 0;
    int csv = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--names") == 0 && i + 1 < argc)
            names = argv[++i];
        else if (strcmp(argv[i], "--after") == 0 && i + 1 < argc)
            after = atoll(argv[++i]);
        else if (strcmp(argv[i], "--csv") == 0)
            csv = 1;
        else
            return cli_bad_usage("metrics", NULL);
    }
    if (csv && cli_json_out)
        return cli_bad_usage("metrics", "--csv and --json exclude each other");
    if (csv)
        printf("seq,step,epoch,name,value,time\n");
    else if (!cli_json_out)
        printf("seq\tstep\tname\tvalue\n");
    char *enames = names != NULL ? client_escape(names) : NULL;
    for (;;) {
        char *path = client_job_path(argv[0], "/metrics?after_seq=%lld&limit=10000%s%s", after,
                                     enames ? "&names=" : "", enames ? enames : "");
        json_t *o = client_call("GET", path, NULL, NULL);
        free(path);
        json_t *pts = json_object_get(o, "points");
        size_t i;
        json_t *pt;
        json_array_foreach(pts, i, pt)
        {
            print_point(pt, csv);
        }
        size_t n = json_array_size(pts);
        after = (long long)json_integer_value(json_object_get(o, "next_seq"));
        json_decref(o);
        if (n == 0)
            break;
    }
    free(enames);
    return 0;
}

static void print_line(const json_t *l)
{
    printf("%s %-5s %s\n", cli_str(l, "time"), cli_str(l, "level"), cli_str(l, "text"));
}

static int on_log(void *ctx, const char *type, const json_t *d, const char *id)
{
    (void)ctx;
    (void)id;
    if (strcmp(type, "log") == 0) {
        print_line(d);
        fflush(stdout);
    }
    return 0;
}

int cmd_logs(int argc, char **argv)
{
    if (argc < 1 || argv[0][0] == '-')
        return cli_bad_usage("logs", "ID is missing");
    long long tail = 0;
    int follow = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tail") == 0 && i + 1 < argc)
            tail = atoll(argv[++i]);
        else if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0)
            follow = 1;
        else
            return cli_bad_usage("logs", NULL);
    }
    long long after = 0;
    for (;;) {
        char *path = tail > 0 ? client_job_path(argv[0], "/logs?tail=%lld", tail)
                              : client_job_path(argv[0], "/logs?after_seq=%lld&limit=10000", after);
        json_t *o = client_call("GET", path, NULL, NULL);
        free(path);
        json_t *lines = json_object_get(o, "lines");
        size_t i;
        json_t *l;
        json_array_foreach(lines, i, l)
        {
            print_line(l);
            after = (long long)json_integer_value(json_object_get(l, "seq"));
        }
        size_t n = json_array_size(lines);
        json_decref(o);
        if (n == 0 || tail > 0)
            break;
    }
    if (!follow)
        return 0;
    fflush(stdout);
    /* then the stream of new lines, from the last one printed */
    char *path = client_job_path(argv[0], "/logs?follow=true"), cursor[32];
    snprintf(cursor, sizeof cursor, "%lld", after);
    client_stream(path, cursor, on_log, NULL, 45, 1000, 30, NULL);
    free(path);
    return 0;
}

int cmd_download(int argc, char **argv)
{
    if (argc != 2 && !(argc == 4 && strcmp(argv[2], "-o") == 0))
        return cli_bad_usage("download", NULL);
    const char *out = argc == 4 ? argv[3] : argv[1];
    files_stream fs; /* the file appears whole or not at all */
    errbuf eb;
    if (files_stream_open(&fs, out, &eb) != 0) {
        fprintf(stderr, "kiln: %s\n", eb.msg);
        return 1;
    }
    char *name = client_escape(argv[1]);
    char *path = client_job_path(argv[0], "/artifacts/%s", name);
    long status = client_download(path, fs.f);
    free(path);
    free(name);
    if (status != 200) {
        files_stream_abort(&fs);
        fprintf(stderr, "kiln: HTTP %ld\n", status);
        return 1;
    }
    if (files_stream_commit(&fs, &eb) != 0) {
        fprintf(stderr, "kiln: %s\n", eb.msg);
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

int cmd_workers(int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return cli_bad_usage("workers", NULL);
    json_t *o = client_call("GET", "/api/v1/workers", NULL, NULL);
    json_t *w = json_object_get(o, "workers");
    if (cli_json_out) {
        cli_print_json(w);
    } else if (json_array_size(w) == 0) {
        printf("no worker pool has connected\n");
    } else {
        printf("%-24s %-6s %5s %5s %9s  %s\n", "POOL", "STATE", "RANKS", "CORES", "HEARTBEAT",
               "JOBS");
        size_t i;
        json_t *p;
        json_array_foreach(w, i, p)
        {
            /* every job it runs (several at once on a split of its ranks) */
            json_t *jobs = json_object_get(p, "current_jobs"), *cj;
            char list[512] = "-";
            size_t k, used = 0;
            json_array_foreach(jobs, k, cj)
            {
                if (used < sizeof list)
                    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k ? "," : "",
                                             cli_str(cj, "job_id"));
            }
            printf("%-24s %-6s %5lld %5lld %8.1fs  %s\n", cli_str(p, "id"), cli_str(p, "state"),
                   (long long)json_integer_value(json_object_get(p, "ranks")),
                   (long long)json_integer_value(json_object_get(p, "cores")),
                   json_number_value(json_object_get(p, "last_heartbeat_age_s")), list);
        }
    }
    json_decref(o);
    return 0;
}

int cmd_health(int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return cli_bad_usage("health", NULL);
    long status = 0;
    json_t *o = client_call("GET", "/healthz", NULL, &status); /* exits 1 unless it answers */
    if (cli_json_out)
        cli_print_json(o);
    else
        printf("%s: %s\n", client_base(), status == 200 ? cli_str(o, "status") : "not healthy");
    json_decref(o);
    return status == 200 ? 0 : 1;
}
