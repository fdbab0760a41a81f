/* log.h - leveled logging to stderr, one line per call.
 *
 * Lines look like `2026-11-28T10:00:00.123Z kiln-server INFO message`.
 * The level and program tag are process-wide settings made once at start-up;
 * log_msg itself is thread-safe (one fprintf per line). No dependencies.
 */
#ifndef KILN_LOG_H
#define KILN_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 } log_level;

/* log_init sets the program tag (copied) and the minimum level printed.
 * The KILN_LOG environment variable (debug|info|warn|error|off) overrides level. */
void log_init(const char *program, log_level level);

/* log_enabled says whether a message at `level` would be printed. */
int log_enabled(log_level level);

void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
