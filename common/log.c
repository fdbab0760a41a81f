/* log.c - leveled stderr logging (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char log_program[32] = "kiln";
static log_level log_min = LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_init(const char *program, log_level level)
{
    snprintf(log_program, sizeof log_program, "%s", program);
    log_min = level;
    const char *env = getenv("KILN_LOG");
    if (env != NULL) {
        if (strcmp(env, "debug") == 0)
            log_min = LOG_DEBUG;
        else if (strcmp(env, "info") == 0)
            log_min = LOG_INFO;
        else if (strcmp(env, "warn") == 0)
            log_min = LOG_WARN;
        else if (strcmp(env, "error") == 0)
            log_min = LOG_ERROR;
        else if (strcmp(env, "off") == 0)
            log_min = LOG_OFF;
    }
}

int log_enabled(log_level level)
{
    return level >= log_min && level < LOG_OFF;
}

void log_msg(log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char body[1024], stamp[32];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %s %s %s\n", stamp, ts.tv_nsec / 1000000L, log_program,
            level_names[level], body);
}
