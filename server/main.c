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

#include <getopt.h>
#include <signal.h>
#include <sodium.h>
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
    int heartbeat_ms, liveness;
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

static int parse_args(int argc, char **argv, config *c)
{
    static const struct option opts[] = {
        {"http", required_argument, NULL, 'H'},
        {"broker", required_argument, NULL, 'b'},
        {"data-dir", required_argument, NULL, 'd'},
        {"heartbeat-ms", required_argument, NULL, 'h'},
        {"liveness", required_argument, NULL, 'l'},
        {"body-limit", required_argument, NULL, 'L'},
        {"upload-limit", required_argument, NULL, 'U'},
        {"http-mode", required_argument, NULL, 'm'},
        {"http-threads", required_argument, NULL, 't'},
        {"port-file", required_argument, NULL, 'p'},
        {"tokens", required_argument, NULL, 'T'},
        {"conn-limit", required_argument, NULL, 'C'},
        {"per-ip-limit", required_argument, NULL, 'I'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"header-timeout", required_argument, NULL, 'e'},
        {"sse-keepalive", required_argument, NULL, 'k'},
        {"sse-max", required_argument, NULL, 'x'},
        {"curve-secret", required_argument, NULL, 's'},
        {"pool-keys", required_argument, NULL, 'P'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'K'},
        {"max-job-memory", required_argument, NULL, 'M'},
        {"min-free-disk", required_argument, NULL, 'F'},
        {"sse-max-per-client", required_argument, NULL, 'X'},
        {"owner-max-queued", required_argument, NULL, 'Q'},
        {"owner-max-running", required_argument, NULL, 'R'},
        {"owner-max-ranks", required_argument, NULL, 'N'},
        {"help", no_argument, NULL, '?'},
        {NULL, 0, NULL, 0},
    };
    snprintf(c->http_addr, sizeof c->http_addr, "127.0.0.1");
    c->http_port = 8080;
    c->broker = "tcp://127.0.0.1:5555";
    c->data_dir = "./var";
    c->heartbeat_ms = 1000;
    c->liveness = 5;
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
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'H': {
            const char *colon = strrchr(optarg, ':');
            if (colon == NULL || colon == optarg ||
                (size_t)(colon - optarg) >= sizeof c->http_addr) {
                fprintf(stderr, "kiln-server: --http wants ADDR:PORT, got '%s'\n", optarg);
                return -1;
            }
            memcpy(c->http_addr, optarg, (size_t)(colon - optarg));
            c->http_addr[colon - optarg] = '\0';
            c->http_port = atoi(colon + 1);
            break;
        }
        case 'b':
            c->broker = optarg;
            break;
        case 'd':
            c->data_dir = optarg;
            break;
        case 'h':
            c->heartbeat_ms = atoi(optarg);
            break;
        case 'l':
            c->liveness = atoi(optarg);
            break;
        case 'L':
            c->body_limit = (size_t)strtoull(optarg, NULL, 10);
            break;
        case 'U':
            c->upload_limit = (size_t)strtoull(optarg, NULL, 10);
            break;
        case 'm':
            c->http_mode = http_mode_parse(optarg);
            if (c->http_mode < 0) {
                fprintf(stderr, "kiln-server: --http-mode must be epoll, pool or per-connection\n");
                return -1;
            }
            break;
        case 't':
            c->http_threads = atoi(optarg);
            break;
        case 'p':
            c->port_file = optarg;
            break;
        case 'T':
            c->tokens = optarg;
            break;
        case 'C':
            c->conn_limit = atoi(optarg);
            break;
        case 'Q':
            c->owner_max_queued = atoi(optarg);
            break;
        case 'R':
            c->owner_max_running = atoi(optarg);
            break;
        case 'N':
            c->owner_max_ranks = atoi(optarg);
            break;
        case 'I':
            c->per_ip_limit = atoi(optarg);
            break;
        case 'i':
            c->idle_timeout = atoi(optarg);
            break;
        case 'e':
            c->header_timeout = atoi(optarg);
            break;
        case 'k':
            c->sse_keepalive = atoi(optarg);
            break;
        case 'x':
            c->sse_max = atoi(optarg);
            break;
        case 's':
            c->curve_secret = optarg;
            break;
        case 'P':
            c->pool_keys = optarg;
            break;
        case 'c':
            c->tls_cert = optarg;
            break;
        case 'K':
            c->tls_key = optarg;
            break;
        case 'X':
            c->sse_max_per_client = atoi(optarg);
            break;
        case 'F':
            if (admission_parse_size(optarg, &c->min_free_disk) != 0) {
                fprintf(stderr, "kiln-server: --min-free-disk wants a size (512M, 1G), got '%s'\n",
                        optarg);
                return -1;
            }
            break;
        case 'M':
            if (admission_parse_size(optarg, &c->max_job_memory) != 0 || c->max_job_memory <= 0) {
                fprintf(stderr,
                        "kiln-server: --max-job-memory wants a size (bytes, or with K, M, G, T: "
                        "64G), got '%s'\n",
                        optarg);
                return -1;
            }
            break;
        case '?':
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kiln-server: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (c->heartbeat_ms < 10 || c->liveness < 2 || c->body_limit < 1024 || c->http_port < 0 ||
        c->http_port > 65535 || c->http_threads < 1 || c->conn_limit < 1 || c->per_ip_limit < 1 ||
        c->idle_timeout < 1 || c->header_timeout < 1 || c->sse_keepalive < 1 || c->sse_max < 1 ||
        c->sse_max_per_client < 1 || c->owner_max_queued < 0 || c->owner_max_running < 0 ||
        c->owner_max_ranks < 0) {
        fprintf(stderr, "kiln-server: an option is out of range (heartbeat-ms >= 10, "
                        "liveness >= 2, body-limit >= 1024, port 0..65535, limits and timeouts "
                        ">= 1)\n");
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

int main(int argc, char **argv)
{
    log_init("kiln-server", LOG_INFO);
    if (sodium_init() < 0) {
        log_error("libsodium cannot start");
        return 1;
    }
    if (argc >= 2 && (strcmp(argv[1], "hash-token") == 0 || strcmp(argv[1], "new-token") == 0))
        return token_command(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "curve-keypair") == 0) {
        char pub[POOLKEYS_Z85_LEN + 1], sec[POOLKEYS_Z85_LEN + 1];
        if (argc != 2 || broker_curve_keypair(pub, sec) != 0) {
            fprintf(stderr, argc != 2 ? "usage: kiln-server curve-keypair\n"
                                      : "kiln-server: this ZeroMQ has no CURVE support\n");
            return 2;
        }
        printf("public %s\nsecret %s\n", pub, sec);
        return 0;
    }
    config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (parse_args(argc, argv, &cfg) < 0)
        return 2;
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    store *st = NULL;
    broker *br = NULL;
    http_server *hs = NULL;
    auth *tokens = NULL;
    poolkeys *pool_keys = NULL;
    server_stats *stats = NULL;
    sse_hub *hub = NULL;
    submitq *submits = NULL;
    app a;
    memset(&a, 0, sizeof a);
    errbuf eb;
    char db[600];
    void *tls_cert = NULL, *tls_key = NULL;
    size_t tls_len = 0;
    if (cfg.tls_cert != NULL && (files_read(cfg.tls_cert, &tls_cert, &tls_len, &eb) < 0 ||
                                 files_read(cfg.tls_key, &tls_key, &tls_len, &eb) < 0)) {
        log_error("TLS: %s", eb.msg);
        goto out;
    }
    char curve_secret[POOLKEYS_Z85_LEN + 1] = "", curve_public[POOLKEYS_Z85_LEN + 1] = "";
    if (cfg.curve_secret != NULL) {
        if (keyfile_read_secret(cfg.curve_secret, curve_secret, &eb) < 0 ||
            poolkeys_load(&pool_keys, cfg.pool_keys, &eb) < 0) {
            log_error("CURVE: %s", eb.msg);
            goto out;
        }
        if (broker_curve_public(curve_secret, curve_public) != 0) {
            log_error("CURVE: %s holds no usable key (or this ZeroMQ has no CURVE)",
                      cfg.curve_secret);
            goto out;
        }
        log_info("pool socket encrypted (CURVE); %d pool key(s) from %s; pools join with "
                 "--server-key %s",
                 poolkeys_count(pool_keys), cfg.pool_keys, curve_public);
    }
    if (cfg.tokens != NULL) {
        if (auth_load(&tokens, cfg.tokens, &eb) < 0) {
            log_error("%s", eb.msg);
            goto out;
        }
        log_info("%d access token(s) loaded from %s; the API needs 'Authorization: Bearer "
                 "<token>'%s",
                 auth_count(tokens), cfg.tokens,
                 pool_keys != NULL
                     ? ""
                     : " and pools a token with the pool scope (kiln-worker --token)");
    } else {
        /* Every route is open: nothing but this machine may reach it. */
        if (!loopback_addr(cfg.http_addr)) {
            log_warn("no access tokens are configured (--tokens): HTTP binds 127.0.0.1 instead of "
                     "%s",
                     cfg.http_addr);
            snprintf(cfg.http_addr, sizeof cfg.http_addr, "127.0.0.1");
        }
        if (pool_keys == NULL && !loopback_endpoint(cfg.broker)) {
            const char *colon = strrchr(cfg.broker, ':');
            snprintf(cfg.broker_buf, sizeof cfg.broker_buf, "tcp://127.0.0.1%s",
                     colon != NULL && colon > cfg.broker + 5 ? colon : ":5555");
            log_warn("no access tokens are configured (--tokens): the pool socket binds %s "
                     "instead of %s",
                     cfg.broker_buf, cfg.broker);
            cfg.broker = cfg.broker_buf;
        }
    }
    stats = stats_new(routes_labels(), routes_count());
    if (files_mkdirs(cfg.data_dir, &eb) < 0) {
        log_error("data dir: %s", eb.msg);
        goto out;
    }
    /* The store first: its lock is the data dir's, so a second server on
     * the same dir stops here, before it touches any file. */
    snprintf(db, sizeof db, "%s/kiln.db", cfg.data_dir);
    if (store_open(&st, db, &eb) < 0) {
        log_error("%s", eb.msg);
        goto out;
    }
    char uploads[600];
    snprintf(uploads, sizeof uploads, "%s/uploads", cfg.data_dir);
    /* uploads cut short by a crash are of no use */
    if (files_remove_tree(uploads, &eb) < 0 || files_mkdirs(uploads, &eb) < 0) {
        log_error("data dir: %s", eb.msg);
        goto out;
    }
    char jobs_dir[KILN_PATH_MAX];
    snprintf(jobs_dir, sizeof jobs_dir, "%s/jobs", cfg.data_dir);
    int swept = files_sweep_tmp(jobs_dir);
    if (swept > 0)
        log_info("removed %d temporary file(s) a previous run left in %s", swept, jobs_dir);
    broker_options bo = {.endpoint = cfg.broker,
                         .heartbeat_ms = cfg.heartbeat_ms,
                         .liveness = cfg.liveness,
                         .data_dir = cfg.data_dir,
                         .stats = stats,
                         .auth = tokens,
                         .curve_secret = pool_keys != NULL ? curve_secret : NULL,
                         .pool_keys = pool_keys,
                         .owner_max_running = cfg.owner_max_running,
                         .owner_max_ranks = cfg.owner_max_ranks};
    if (broker_start(&br, st, &bo, &eb) < 0) {
        log_error("%s", eb.msg);
        goto out;
    }
    a.st = st;
    snprintf(a.data_dir, sizeof a.data_dir, "%s", cfg.data_dir);
    a.body_limit = cfg.body_limit;
    a.upload_limit = cfg.upload_limit;
    a.max_job_memory = cfg.max_job_memory;
    a.min_free_disk = cfg.min_free_disk;
    a.owner_limits.max_queued = cfg.owner_max_queued;
    a.parse_spec = app_parse_spec;
    a.wake = broker_wake;
    a.workers = broker_workers;
    a.broker_ready = broker_ready;
    a.broker_ctx = br;
    const embed_file *doc = embed_find(embed_files, embed_files_count, "/api/v1/openapi.yaml");
    if (doc != NULL) {
        a.openapi_yaml = (const char *)doc->data;
        a.openapi_len = doc->len;
        if (yamljson_parse(a.openapi_yaml, a.openapi_len, &a.openapi_json, &eb) < 0)
            log_warn("api/openapi.yaml does not convert to JSON (%s); /openapi.json is off",
                     eb.msg);
        else
            docs_absolute_refs(a.openapi_json, "/api/v1/");
    }
    a.files = embed_files;
    a.n_files = embed_files_count;
    a.auth = tokens;
    a.stats = stats;
    sse_options so = {.keepalive_ms = cfg.sse_keepalive * 1000,
                      .max_streams = cfg.sse_max,
                      .max_per_owner = cfg.sse_max_per_client};
    hub = sse_hub_new(st, stats, &so);
    a.sse = hub;
    if (submitq_start(&submits, st, &eb) < 0)
        log_warn("%s: each submission is stored on its own", eb.msg);
    a.submits = submits;
    http_options ho = {.address = cfg.http_addr,
                       .port = cfg.http_port,
                       .body_limit = cfg.body_limit,
                       .spool_path = "/api/v1/models",
                       .spool_dir = uploads,
                       .spool_limit = cfg.upload_limit,
                       .spool_needs_auth = tokens != NULL,
                       .mode = (http_mode)cfg.http_mode,
                       .threads = cfg.http_threads,
                       .conn_limit = cfg.conn_limit,
                       .per_ip_limit = cfg.per_ip_limit,
                       .idle_timeout_s = cfg.idle_timeout,
                       .header_timeout_s = cfg.header_timeout,
                       .tls_cert_pem = tls_cert,
                       .tls_key_pem = tls_key};
    if (http_start(&hs, &ho, routes_dispatch, &a, &eb) < 0) {
        log_error("%s", eb.msg);
        goto out;
    }
    int port = http_port(hs);
    log_info("listening on %s://%s:%d/ ; pools connect to %s ; data in %s",
             tls_cert != NULL ? "https" : "http", cfg.http_addr, port, broker_endpoint(br),
             cfg.data_dir);
    if (tokens != NULL && pool_keys == NULL && !loopback_endpoint(cfg.broker))
        log_warn("the pool socket %s is not encrypted (pool tokens travel in clear): give "
                 "--curve-secret and --pool-keys, or keep the pools on a trusted network",
                 broker_endpoint(br));
    if (tokens == NULL && pool_keys == NULL)
        log_info("no access tokens are configured: every route is open, so HTTP and the pool "
                 "socket listen on loopback only (give --tokens FILE to serve other hosts)");
    if (cfg.port_file != NULL) {
        char text[400];
        int n = snprintf(text, sizeof text, "%d %s\n", port, broker_endpoint(br));
        if (files_write_atomic(cfg.port_file, text, (size_t)n, &eb) < 0)
            log_warn("%s", eb.msg);
    }
    int sig = 0;
    sigwait(&sigs, &sig);
    log_info("signal %d: shutting down", sig);
    status = 0;
out:
    submitq_drain(submits); /* answers every waiting POST before the HTTP server stops */
    if (submits != NULL) {
        unsigned long rounds, jobs;
        submitq_stats(submits, &rounds, &jobs);
        if (jobs > 0)
            log_info("group commit: %lu submissions stored in %lu commits", jobs, rounds);
    }
    http_stop(hs);
    submitq_free(submits);
    sse_hub_free(hub);
    broker_stop(br);
    store_close(st);
    json_decref(a.openapi_json);
    auth_free(tokens);
    poolkeys_free(pool_keys);
    stats_free(stats);
    free(tls_cert);
    free(tls_key);
    if (status == 0)
        log_info("stopped cleanly");
    return status;
}
