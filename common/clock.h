/* clock.h - the monotonic clock, in one place.
 *
 * For measuring durations and deadlines only (never wall-clock time): the
 * values start at an arbitrary point and never jump back. Thread-safe.
 */
#ifndef KILN_CLOCK_H
#define KILN_CLOCK_H

#include <stdint.h>

/* clock_mono_ms returns CLOCK_MONOTONIC in whole milliseconds. */
int64_t clock_mono_ms(void);

/* clock_mono_s returns CLOCK_MONOTONIC in seconds, with nanosecond resolution. */
double clock_mono_s(void);

#endif
