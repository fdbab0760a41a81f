/* testpool.c - kiln-testpool: a scripted pool program for integration tests and benchmarks.
 *
 * A TEST DOUBLE: it speaks the pool protocol through worker/link.c but runs
 * no engine (tests/unit/fakepool.h says what it sends). The real pool is
 * `kiln-worker --connect`. Stops on SIGINT/SIGTERM or after --jobs N.
 */
#include "common/log.h"
#include "tests/unit/fakepool.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile int stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: kiln-testpool --connect tcp://HOST:PORT [--pool-id ID] [--ranks N]\n"
                    "       [--steps N] [--step-ms MS] [--ckpt-every N] [--jobs N]\n"
                    "       [--heartbeat-ms MS] [--echo-name] [--fail-name NAME [--fail-at STEP]]\n"
                    "A scripted pool for tests: no training happens. --echo-name: a log line\n"
                    "and a metric named after each job's name. --fail-name: the first attempt\n"
                    "of a job of that name fails (RANK_FAILED, retried) at step 2 or --fail-at.\n");
}

int main(int argc, char **argv)
{
    log_init("kiln-testpool", LOG_INFO);
    fakepool_options o = {.ranks = 1, .steps = 20, .step_ms = 1, .token = getenv("KILN_TOKEN")};
    static const struct option opts[] = {
        {"connect", required_argument, NULL, 'c'},
        {"pool-id", required_argument, NULL, 'p'},
        {"ranks", required_argument, NULL, 'r'},
        {"steps", required_argument, NULL, 's'},
        {"step-ms", required_argument, NULL, 'm'},
        {"ckpt-every", required_argument, NULL, 'k'},
        {"jobs", required_argument, NULL, 'j'},
        {"heartbeat-ms", required_argument, NULL, 'h'},
        {"token", required_argument, NULL, 't'},
        {"echo-name", no_argument, NULL, 'e'},
        {"fail-name", required_argument, NULL, 'f'},
        {"fail-at", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, '?'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o.endpoint = optarg;
            break;
        case 'p':
            o.pool_id = optarg;
            break;
        case 'r':
            o.ranks = atoi(optarg);
            break;
        case 's':
            o.steps = atoi(optarg);
            break;
        case 'm':
            o.step_ms = atoi(optarg);
            break;
        case 'k':
            o.ckpt_every = atoi(optarg);
            break;
        case 'j':
            o.max_jobs = atoi(optarg);
            break;
        case 'h':
            o.heartbeat_ms = atoi(optarg);
            break;
        case 't':
            o.token = optarg;
            break;
        case 'e':
            o.echo_name = 1;
            break;
        case 'f':
            o.fail_first = 1;
            o.fail_name = optarg;
            break;
        case 'a':
            o.fail_step = atoi(optarg);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (o.endpoint == NULL) {
        usage();
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return fakepool_run(&o, &stop_flag) == 0 ? 0 : 1;
}
