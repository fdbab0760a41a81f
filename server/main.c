/* main.c - kiln-server: options, start-up and clean shutdown.
 *
 * Opens the store under the data dir, loads the tokens file, binds the pool
 * socket (broker) and the HTTP port, and waits for SIGINT/SIGTERM; then
 * stops HTTP first (no new requests; open event streams end), the event
 * hub, the broker (its last batch is committed) and the store. Signals are
 * blocked in every thread and taken with sigwait here. Without tokens every
 * route is open, so the server then binds loopback addresses only.
 * `kiln-server hash-token` and `kiln-server new-token` make tokens-file lines.
 */
#include "common/files.h"
#include "common/log.h"
#include "server/admission.h"
#include "server/app.h"
#include "server/auth.h"
#include "server/broker.h"
#include "server/embed.h"
#include "server/handlers.h"
#include "server/http.h"
#include "server/routes.h"
#include "server/sse.h"
#include "server/stats.h"
#include "server/store.h"
#include "server/submitq.h"
#include "server/yamljson.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kiln-server [options]\n"
            "  --http ADDR:PORT       HTTP address (default 127.0.0.1:8080; port 0 = any)\n"
            "  --broker ENDPOINT      pool socket (default tcp://127.0.0.1:5555;\n"
            "                         tcp://*:5555 for pools on other hosts)\n"
            "  --data-dir DIR         store and files (default ./var)\n"
            "  --heartbeat-ms MS      pool heartbeat interval (default 1000)\n"
            "  --liveness N           a pool silent for N intervals is lost (default 5)\n"
            "  --restart-grace S      after a restart, how long the pools of running jobs have\n"
            "                         to come back before their jobs are retried (default 20)\n"
            "  --body-limit BYTES     largest request body (default 1048576)\n"
            "  --upload-limit BYTES   largest model upload, POST /api/v1/models (default\n"
            "                         2147483648); streamed to DATA/uploads\n"
            "  --http-mode MODE       epoll | pool | per-connection (default pool)\n"
            "  --http-threads N       threads of the pool mode (default 2)\n"
            "  --port-file FILE       write the HTTP port and broker endpoint there once ready\n"
            "  --tokens FILE          bearer tokens, one '<name> <scopes> sha256:<hex>' a line\n"
            "                         (scopes read, submit, admin; pool for worker pools);\n"
            "                         without it every route is open and only loopback\n"
            "                         addresses are bound\n"
            "  --conn-limit N         HTTP connections at once (default 512); past it the\n"
            "                         longest-idle ones are closed to make room\n"
            "  --per-ip-limit N       HTTP connections at once from one address (default 64)\n"
            "  --idle-timeout S       close an HTTP connection silent for S seconds (default 30)\n"
            "  --header-timeout S     a request's headers must arrive within S seconds (default "
            "10)\n"
            "  --sse-keepalive S      keepalive comment on idle event streams (default 15)\n"
            "  --sse-max N            event streams open at once (default 64)\n"
            "  --sse-max-per-client N  ... of them for one token, or one address without\n"
            "                         tokens (default 16)\n"
            "  --curve-secret FILE    encrypt the pool socket (CurveZMQ) with this server key\n"
            "                         (from kiln-server curve-keypair); pools then join with\n"
            "  --pool-keys FILE       a key listed here, one '<pool id> <public key>' a line\n"
            "  --tls-cert FILE        serve HTTPS with this PEM certificate (chain)\n"
            "  --tls-key FILE         and its PEM private key (both or neither)\n"
            "  --owner-max-queued N   jobs one owner (token) may have waiting; more get 429\n"
            "  --owner-max-running N  jobs one owner may have on pools at once\n"
            "  --owner-max-ranks N    ranks one owner's jobs may hold at once (0 = no limit,\n"
            "                         the default of all three)\n"
            "  --max-job-memory SIZE  refuse jobs whose estimated memory over all their ranks\n"
            "                         is larger (bytes, or 512M, 64G; default: no limit)\n"
            "  --min-free-disk SIZE   /readyz is not ready with less free in the data dir\n"
            "                         (default 64M)\n"
            "\n"
            "usage: kiln-server hash-token [TOKEN]     the sha256: hash of TOKEN (or stdin)\n"
            "       kiln-server new-token NAME SCOPES  a new random token and its tokens-file "
            "line\n"
            "                                          (SCOPES: read,submit,admin,pool)\n"
            "       kiln-server curve-keypair          a new CurveZMQ keypair ('public K' and\n"
            "                                          'secret K' lines: keep it as a key file)\n");
}

typedef struct config {
    char http_addr[64];
    int http_port;
    const char *broker;
    const char *data_dir;
    int heartbeat_ms, liveness, restart_grace;
    size_t body_limit, upload_limit;
    int http_mode, http_threads;
    const char *port_file;
    const char *tokens;
    char broker_buf[300];
    int conn_limit, per_ip_limit, idle_timeout, header_timeout, sse_keepalive, sse_max;
    int sse_max_per_client;
    const char *tls_cert, *tls_key;       /* PEM files; both or neither */
    const char *curve_secret, *pool_keys; /* key files; both or neither */
    double max_job_memory;                /* bytes; 0 = no limit */
    double min_free_disk;                 /* bytes /readyz wants free in the data dir */
    int owner_max_queued, owner_max_running, owner_max_ranks; /* 0 = no limit */
} config;

/* How an option's text becomes its config field. */
typedef enum {
    ARG_TEXT,      /* const char *, the argument itself */
    ARG_INT,       /* int in [min, INT_MAX] */
    ARG_BYTES,     /* size_t in [min, SIZE_MAX], a plain byte count */
    ARG_SIZE,      /* double bytes, "512M", "64G" (admission_parse_size), > min */
    ARG_HTTP,      /* ADDR:PORT into http_addr and http_port */
    ARG_HTTP_MODE, /* epoll | pool | per-connection into http_mode */
} arg_kind;

/* The options: name, kind, field and the least value (ARG_INT, ARG_BYTES, ARG_SIZE). */
static const struct {
    const char *name;
    arg_kind kind;
    size_t off;
    long long min;
} OPTIONS[] = {
    {"http", ARG_HTTP, 0, 0},
    {"broker", ARG_TEXT, offsetof(config, broker), 0},
    {"data-dir", ARG_TEXT, offsetof(config, data_dir), 0},
    {"heartbeat-ms", ARG_INT, offsetof(config, heartbeat_ms), 10},
    {"liveness", ARG_INT, offsetof(config, liveness), 2},
    {"restart-grace", ARG_INT, offsetof(config, restart_grace), 1},
    {"body-limit", ARG_BYTES, offsetof(config, body_limit), 1024},
    {"upload-limit", ARG_BYTES, offsetof(config, upload_limit), 0},
    {"http-mode", ARG_HTTP_MODE, offsetof(config, http_mode), 0},
    {"http-threads", ARG_INT, offsetof(config, http_threads), 1},
    {"port-file", ARG_TEXT, offsetof(config, port_file), 0},
    {"tokens", ARG_TEXT, offsetof(config, tokens), 0},
    {"conn-limit", ARG_INT, offsetof(config, conn_limit), 1},
    {"per-ip-limit", ARG_INT, offsetof(config, per_ip_limit), 1},
    {"idle-timeout", ARG_INT, offsetof(config, idle_timeout), 1},
    {"header-timeout", ARG_INT, offsetof(config, header_timeout), 1},
    {"sse-keepalive", ARG_INT, offsetof(config, sse_keepalive), 1},
    {"sse-max", ARG_INT, offsetof(config, sse_max), 1},
    {"sse-max-per-client", ARG_INT, offsetof(config, sse_max_per_client), 1},
    {"curve-secret", ARG_TEXT, offsetof(config, curve_secret), 0},
    {"pool-keys", ARG_TEXT, offsetof(config, pool_keys), 0},
    {"tls-cert", ARG_TEXT, offsetof(config, tls_cert), 0},
    {"tls-key", ARG_TEXT, offsetof(config, tls_key), 0},
    {"max-job-memory", ARG_SIZE, offsetof(config, max_job_memory), 0},
    {"min-free-disk", ARG_SIZE, offsetof(config, min_free_disk), -1},
    {"owner-max-queued", ARG_INT, offsetof(config, owner_max_queued), 0},
    {"owner-max-running", ARG_INT, offsetof(config, owner_max_running), 0},
    {"owner-max-ranks", ARG_INT, offsetof(config, owner_max_ranks), 0},
};
#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

static void config_defaults(config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->http_addr, sizeof c->http_addr, "127.0.0.1");
    c->http_port = 8080;
    c->broker = "tcp://127.0.0.1:5555";
    c->data_dir = "./var";
    c->heartbeat_ms = 1000;
    c->liveness = 5;
    /* Pools reconnect on their own after a server restart, but a pool whose connect
     * went to the server's old address first waits for that to fail (3 s on a
     * container network, per attempt) and one past its own liveness timeout backs
     * off up to 5 s: 20 s covers both with room (bench/probes.md, row R). */
    c->restart_grace = 20;
    c->body_limit = 1 << 20;
    c->upload_limit = (size_t)2 << 30;
    /* Measured with bench/server.sh (wrk, 16 connections, 1,000 jobs, 2 cores):
     * a pool of 2 epoll threads served GET /jobs 1.4-1.7x the requests of one
     * epoll thread and matched thread-per-connection on GET /jobs/{id}, with
     * a bounded number of threads; POST is bound by the store's fsync. */
    c->http_mode = HTTP_MODE_POOL;
    c->http_threads = 2;
    c->conn_limit = 512;
    c->per_ip_limit = 64;
    c->idle_timeout = 30;
    c->header_timeout = 10;
    c->sse_keepalive = 15;
    c->sse_max = 64;
    c->sse_max_per_client = 16;
    c->min_free_disk = 64.0 * 1024 * 1024;
}

/* A whole decimal integer of text in [min, max] into *v; -1 if it is not one. */
static int parse_whole(const char *text, long long min, long long max, long long *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || x < min || x > max)
        return -1;
    *v = x;
    return 0;
}

/* Sets the field of option i from text; -1 (after saying why on stderr) if text is not
 * a value the option takes. */
static int set_option(config *c, size_t i, const char *text)
{
    const char *name = OPTIONS[i].name;
    void *field = (char *)c + OPTIONS[i].off;
    long long min = OPTIONS[i].min, v;
    switch (OPTIONS[i].kind) {
    case ARG_TEXT:
        *(const char **)field = text;
        return 0;
    case ARG_INT:
        if (parse_whole(text, min, INT_MAX, &v) == 0) {
            *(int *)field = (int)v;
            return 0;
        }
        fprintf(stderr, "kiln-server: --%s wants a whole number >= %lld, got '%s'\n", name, min,
                text);
        return -1;
    case ARG_BYTES:
        if (parse_whole(text, min, LLONG_MAX, &v) == 0) {
            *(size_t *)field = (size_t)v;
            return 0;
        }
        fprintf(stderr, "kiln-server: --%s wants a byte count >= %lld, got '%s'\n", name, min,
                text);
        return -1;
    case ARG_SIZE:
        if (admission_parse_size(text, (double *)field) == 0 && *(double *)field > (double)min)
            return 0;
        fprintf(stderr,
                "kiln-server: --%s wants a size (bytes, or with K, M, G, T: 512M, 64G), "
                "got '%s'\n",
                name, text);
        return -1;
    case ARG_HTTP: {
        const char *colon = strrchr(text, ':');
        if (colon == NULL || colon == text || (size_t)(colon - text) >= sizeof c->http_addr ||
            parse_whole(colon + 1, 0, 65535, &v) != 0) {
            fprintf(stderr, "kiln-server: --http wants ADDR:PORT (port 0..65535), got '%s'\n",
                    text);
            return -1;
        }
        memcpy(c->http_addr, text, (size_t)(colon - text));
        c->http_addr[colon - text] = '\0';
        c->http_port = (int)v;
        return 0;
    }
    case ARG_HTTP_MODE:
        *(int *)field = http_mode_parse(text);
        if (*(int *)field >= 0)
            return 0;
        fprintf(stderr, "kiln-server: --http-mode must be epoll, pool or per-connection\n");
        return -1;
    }
    return -1;
}

/* The command line into *c (over the defaults). Returns 0, or -1 after saying what is
 * wrong on stderr. */
static int parse_args(int argc, char **argv, config *c)
{
    struct option opts[N_OPTIONS + 2];
    for (size_t i = 0; i < N_OPTIONS; i++)
        opts[i] = (struct option){OPTIONS[i].name, required_argument, NULL, 256 + (int)i};
    opts[N_OPTIONS] = (struct option){"help", no_argument, NULL, '?'};
    opts[N_OPTIONS + 1] = (struct option){NULL, 0, NULL, 0};
    config_defaults(c);
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt < 256 || opt >= 256 + (int)N_OPTIONS) {
            usage(stderr);
            return -1;
        }
        if (set_option(c, (size_t)(opt - 256), optarg) != 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "kiln-server: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if ((c->tls_cert == NULL) != (c->tls_key == NULL)) {
        fprintf(stderr, "kiln-server: --tls-cert and --tls-key go together (give both, or "
                        "neither for plain HTTP)\n");
        return -1;
    }
    if ((c->curve_secret == NULL) != (c->pool_keys == NULL)) {
        fprintf(stderr, "kiln-server: --curve-secret and --pool-keys go together (the server's "
                        "key, and the pools' keys that may join)\n");
        return -1;
    }
    return 0;
}

/* Whether an IPv4 address text is in 127.0.0.0/8. */
static int loopback_addr(const char *a)
{
    return strncmp(a, "127.", 4) == 0;
}

/* Whether a ZeroMQ endpoint binds loopback only (tcp://127.x:port, ipc://, inproc://). */
static int loopback_endpoint(const char *ep)
{
    if (ep == NULL || strncmp(ep, "tcp://", 6) != 0)
        return 1;
    return strncmp(ep + 6, "127.", 4) == 0 || strncmp(ep + 6, "localhost:", 10) == 0;
}

/* kiln-server hash-token [TOKEN] | new-token NAME SCOPES. Returns the exit code. */
static int token_command(int argc, char **argv)
{
    if (strcmp(argv[1], "hash-token") == 0) {
        char tok[AUTH_TOKEN_MAX + 2];
        if (argc >= 3) {
            snprintf(tok, sizeof tok, "%s", argv[2]);
        } else if (fgets(tok, sizeof tok, stdin) == NULL) {
            fprintf(stderr, "kiln-server hash-token: no token on stdin\n");
            return 2;
        }
        tok[strcspn(tok, "\r\n")] = '\0';
        if (tok[0] == '\0' || strlen(tok) > AUTH_TOKEN_MAX) {
            fprintf(stderr, "kiln-server hash-token: a token is 1..%d bytes\n", AUTH_TOKEN_MAX);
            return 2;
        }
        char h[72];
        auth_hash(tok, h);
        printf("%s\n", h);
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: kiln-server new-token NAME SCOPES (e.g. ci submit,read)\n");
        return 2;
    }
    unsigned mask;
    errbuf eb;
    if (auth_scopes_parse(argv[3], &mask, &eb) < 0) {
        fprintf(stderr, "kiln-server new-token: %s\n", eb.msg);
        return 2;
    }
    char line[512], tok[64], h[72];
    auth_token_new(tok);
    auth_hash(tok, h);
    snprintf(line, sizeof line, "%s %s %s\n", argv[2], argv[3], h);
    auth *a;
    if (auth_parse(&a, line, strlen(line), "the new line", &eb) < 0) {
        fprintf(stderr, "kiln-server new-token: %s\n", eb.msg);
        return 2;
    }
    auth_free(a);
    /* The token goes to stdout once; only its hash is ever stored. */
    printf("%s\n%s", tok, line);
    return 0;
}

/* Everything kiln-server runs, in start order; server_stop undoes whatever part of it
 * started. */
typedef struct server {
    void *tls_cert, *tls_key; /* PEM text read from the files, NUL-terminated */
    poolkeys *pool_keys;
    char curve_secret[POOLKEYS_Z85_LEN + 1], curve_public[POOLKEYS_Z85_LEN + 1];
    auth *tokens;
    server_stats *stats;
    store *st;
    char uploads[KILN_PATH_MAX];
    broker *br;
    sse_hub *hub;
    submitq *submits;
    app a;
    http_server *hs;
} server;

/* The TLS certificate and key, the CurveZMQ keys and the access tokens. Without tokens
 * every route is open: then HTTP (and, unless CURVE guards it, the pool socket) are
 * moved to loopback addresses in *c. Returns 0, or -1 after logging why. */
static int load_keys(server *s, config *c)
{
    errbuf eb;
    size_t len = 0;
    if (c->tls_cert != NULL && (files_read(c->tls_cert, &s->tls_cert, &len, &eb) < 0 ||
                                files_read(c->tls_key, &s->tls_key, &len, &eb) < 0)) {
        log_error("TLS: %s", eb.msg);
        return -1;
    }
    if (c->curve_secret != NULL) {
        if (keyfile_read_secret(c->curve_secret, s->curve_secret, &eb) < 0 ||
            poolkeys_load(&s->pool_keys, c->pool_keys, &eb) < 0) {
            log_error("CURVE: %s", eb.msg);
            return -1;
        }
        if (broker_curve_public(s->curve_secret, s->curve_public) != 0) {
            log_error("CURVE: %s holds no usable key (or this ZeroMQ has no CURVE)",
                      c->curve_secret);
            return -1;
        }
        log_info("pool socket encrypted (CURVE); %d pool key(s) from %s; pools join with "
                 "--server-key %s",
                 poolkeys_count(s->pool_keys), c->pool_keys, s->curve_public);
    }
    if (c->tokens != NULL) {
        if (auth_load(&s->tokens, c->tokens, &eb) < 0) {
            log_error("%s", eb.msg);
            return -1;
        }
        log_info("%d access token(s) loaded from %s; the API needs 'Authorization: Bearer "
                 "<token>'%s",
                 auth_count(s->tokens), c->tokens,
                 s->pool_keys != NULL
                     ? ""
                     : " and pools a token with the pool scope (kiln-worker --token)");
        return 0;
    }
    /* Every route is open: nothing but this machine may reach it. */
    if (!loopback_addr(c->http_addr)) {
        log_warn("no access tokens are configured (--tokens): HTTP binds 127.0.0.1 instead of %s",
                 c->http_addr);
        snprintf(c->http_addr, sizeof c->http_addr, "127.0.0.1");
    }
    if (s->pool_keys == NULL && !loopback_endpoint(c->broker)) {
        const char *colon = strrchr(c->broker, ':');
        snprintf(c->broker_buf, sizeof c->broker_buf, "tcp://127.0.0.1%s",
                 colon != NULL && colon > c->broker + 5 ? colon : ":5555");
        log_warn("no access tokens are configured (--tokens): the pool socket binds %s "
                 "instead of %s",
                 c->broker_buf, c->broker);
        c->broker = c->broker_buf;
    }
    return 0;
}

/* The data dir: created, the store opened (its lock is the dir's, so a second server on
 * the same dir stops here, before it touches any file), uploads a crash cut short
 * removed, and temporary files a previous run left swept. Returns 0, or -1 after logging
 * why. */
static int open_data(server *s, const config *c)
{
    errbuf eb;
    char db[KILN_PATH_MAX], jobs_dir[KILN_PATH_MAX];
    if (files_mkdirs(c->data_dir, &eb) < 0 || files_pathf(db, &eb, "%s/kiln.db", c->data_dir) < 0 ||
        files_pathf(s->uploads, &eb, "%s/uploads", c->data_dir) < 0 ||
        files_pathf(jobs_dir, &eb, "%s/jobs", c->data_dir) < 0) {
        log_error("data dir: %s", eb.msg);
        return -1;
    }
    if (store_open(&s->st, db, &eb) < 0) {
        log_error("%s", eb.msg);
        return -1;
    }
    if (files_remove_tree(s->uploads, &eb) < 0 || files_mkdirs(s->uploads, &eb) < 0) {
        log_error("data dir: %s", eb.msg);
        return -1;
    }
    int swept = files_sweep_tmp(jobs_dir);
    if (swept > 0)
        log_info("removed %d temporary file(s) a previous run left in %s", swept, jobs_dir);
    return 0;
}

/* The handlers' context: the store, limits, the broker's hooks, the API document and
 * dashboard, tokens, counters, the event hub and the group commit. */
static void app_setup(server *s, const config *c)
{
    app *a = &s->a;
    errbuf eb;
    a->st = s->st;
    snprintf(a->data_dir, sizeof a->data_dir, "%s", c->data_dir);
    a->body_limit = c->body_limit;
    a->upload_limit = c->upload_limit;
    a->max_job_memory = c->max_job_memory;
    a->min_free_disk = c->min_free_disk;
    a->owner_limits.max_queued = c->owner_max_queued;
    a->parse_spec = app_parse_spec;
    a->wake = broker_wake;
    a->workers = broker_workers;
    a->broker_ready = broker_ready;
    a->broker_ctx = s->br;
    const embed_file *doc = embed_find(embed_files, embed_files_count, "/api/v1/openapi.yaml");
    if (doc != NULL) {
        a->openapi_yaml = (const char *)doc->data;
        a->openapi_len = doc->len;
        if (yamljson_parse(a->openapi_yaml, a->openapi_len, &a->openapi_json, &eb) < 0)
            log_warn("api/openapi.yaml does not convert to JSON (%s); /openapi.json is off",
                     eb.msg);
        else
            docs_absolute_refs(a->openapi_json, "/api/v1/");
    }
    a->files = embed_files;
    a->n_files = embed_files_count;
    a->auth = s->tokens;
    a->stats = s->stats;
    a->sse = s->hub;
    a->submits = s->submits;
}

/* The broker, the event hub, the group commit and HTTP. Returns 0, or -1 after logging
 * why. */
static int start_services(server *s, const config *c)
{
    errbuf eb;
    broker_options bo = {.endpoint = c->broker,
                         .heartbeat_ms = c->heartbeat_ms,
                         .liveness = c->liveness,
                         .restart_grace_ms = c->restart_grace > INT32_MAX / 1000
                                                 ? INT32_MAX
                                                 : c->restart_grace * 1000,
                         .data_dir = c->data_dir,
                         .stats = s->stats,
                         .auth = s->tokens,
                         .curve_secret = s->pool_keys != NULL ? s->curve_secret : NULL,
                         .pool_keys = s->pool_keys,
                         .owner_max_running = c->owner_max_running,
                         .owner_max_ranks = c->owner_max_ranks};
    if (broker_start(&s->br, s->st, &bo, &eb) < 0) {
        log_error("%s", eb.msg);
        return -1;
    }
    sse_options so = {.keepalive_ms = c->sse_keepalive * 1000,
                      .max_streams = c->sse_max,
                      .max_per_owner = c->sse_max_per_client};
    s->hub = sse_hub_new(s->st, s->stats, &so);
    if (submitq_start(&s->submits, s->st, &eb) < 0)
        log_warn("%s: each submission is stored on its own", eb.msg);
    app_setup(s, c);
    http_options ho = {.address = c->http_addr,
                       .port = c->http_port,
                       .body_limit = c->body_limit,
                       .spool_path = "/api/v1/models",
                       .spool_dir = s->uploads,
                       .spool_limit = c->upload_limit,
                       .spool_needs_auth = s->tokens != NULL,
                       .mode = (http_mode)c->http_mode,
                       .threads = c->http_threads,
                       .conn_limit = c->conn_limit,
                       .per_ip_limit = c->per_ip_limit,
                       .idle_timeout_s = c->idle_timeout,
                       .header_timeout_s = c->header_timeout,
                       .tls_cert_pem = s->tls_cert,
                       .tls_key_pem = s->tls_key};
    if (http_start(&s->hs, &ho, routes_dispatch, &s->a, &eb) < 0) {
        log_error("%s", eb.msg);
        return -1;
    }
    return 0;
}

/* Says where the server listens (and what is open or in clear), and writes the port file. */
static void announce(const server *s, const config *c)
{
    int port = http_port(s->hs);
    log_info("listening on %s://%s:%d/ ; pools connect to %s ; data in %s",
             s->tls_cert != NULL ? "https" : "http", c->http_addr, port, broker_endpoint(s->br),
             c->data_dir);
    if (s->tokens != NULL && s->pool_keys == NULL && !loopback_endpoint(c->broker))
        log_warn("the pool socket %s is not encrypted (pool tokens travel in clear): give "
                 "--curve-secret and --pool-keys, or keep the pools on a trusted network",
                 broker_endpoint(s->br));
    if (s->tokens == NULL && s->pool_keys == NULL)
        log_info("no access tokens are configured: every route is open, so HTTP and the pool "
                 "socket listen on loopback only (give --tokens FILE to serve other hosts)");
    if (c->port_file != NULL) {
        char text[400];
        errbuf eb;
        int n = snprintf(text, sizeof text, "%d %s\n", port, broker_endpoint(s->br));
        if (files_write_atomic(c->port_file, text, (size_t)n, &eb) < 0)
            log_warn("%s", eb.msg);
    }
}

/* Stops in the order that loses nothing: every waiting POST is answered before HTTP
 * stops (no new requests; open event streams end), then the event hub, the broker (its
 * last batch is committed) and the store. */
static void server_stop(server *s)
{
    submitq_drain(s->submits);
    if (s->submits != NULL) {
        unsigned long rounds, jobs;
        submitq_stats(s->submits, &rounds, &jobs);
        if (jobs > 0)
            log_info("group commit: %lu submissions stored in %lu commits", jobs, rounds);
    }
    http_stop(s->hs);
    submitq_free(s->submits);
    sse_hub_free(s->hub);
    broker_stop(s->br);
    store_close(s->st);
    json_decref(s->a.openapi_json);
    auth_free(s->tokens);
    poolkeys_free(s->pool_keys);
    stats_free(s->stats);
    free(s->tls_cert);
    free(s->tls_key);
}

/* kiln-server curve-keypair. Returns the exit code. */
static int keypair_command(int argc)
{
    char pub[POOLKEYS_Z85_LEN + 1], sec[POOLKEYS_Z85_LEN + 1];
    if (argc != 2 || broker_curve_keypair(pub, sec) != 0) {
        fprintf(stderr, argc != 2 ? "usage: kiln-server curve-keypair\n"
                                  : "kiln-server: this ZeroMQ has no CURVE support\n");
        return 2;
    }
    printf("public %s\nsecret %s\n", pub, sec);
    return 0;
}

int main(int argc, char **argv)
{
    log_init("kiln-server", LOG_INFO);
    if (sodium_init() < 0) {
        log_error("libsodium cannot start");
        return 1;
    }
    if (argc >= 2 && (strcmp(argv[1], "hash-token") == 0 || strcmp(argv[1], "new-token") == 0))
        return token_command(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "curve-keypair") == 0)
        return keypair_command(argc);
    config cfg;
    if (parse_args(argc, argv, &cfg) < 0)
        return 2;
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    server s;
    memset(&s, 0, sizeof s);
    int status = 1;
    if (load_keys(&s, &cfg) == 0) {
        s.stats = stats_new(routes_labels(), routes_count());
        if (open_data(&s, &cfg) == 0 && start_services(&s, &cfg) == 0) {
            announce(&s, &cfg);
            int sig = 0;
            sigwait(&sigs, &sig);
            log_info("signal %d: shutting down", sig);
            status = 0;
        }
    }
    server_stop(&s);
    if (status == 0)
        log_info("stopped cleanly");
    return status;
}
