/* clock.h - the clocks, in one place.
 *
 * The monotonic clock is for durations and deadlines: its values start at an
 * arbitrary point and never jump back. The wall clock is for timestamps that
 * leave the process (metrics, events, ids). Thread-safe.
 */
#ifndef KILN_CLOCK_H
#define KILN_CLOCK_H

#include <stdint.h>
#include <time.h>

/* clock_mono_ms returns CLOCK_MONOTONIC in whole milliseconds. */
int64_t clock_mono_ms(void);

/* clock_mono_s returns CLOCK_MONOTONIC in seconds, with nanosecond resolution. */
double clock_mono_s(void);

/* clock_wall_s returns CLOCK_REALTIME (seconds since the epoch), with nanosecond
 * resolution. */
double clock_wall_s(void);

/* clock_deadline sets *ts to ms milliseconds from now on `clock` (the clock of the
 * condition variable it is for: CLOCK_REALTIME unless its attributes say otherwise),
 * for pthread_cond_timedwait. */
void clock_deadline(struct timespec *ts, clockid_t clock, int ms);

#endif
