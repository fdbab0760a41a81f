/* xalloc.h - allocation that aborts on out-of-memory (the Redis/CZMQ choice).
 *
 * Every allocation in kiln goes through these. On failure they print the
 * caller's file and line and abort; they never return NULL (except for a
 * zero-byte request, which returns a unique pointer as malloc does).
 * xcalloc and xmallocarray check n*size for overflow. xtry_aligned is the
 * one allocator that returns NULL. Thread-safe.
 */
#ifndef KILN_XALLOC_H
#define KILN_XALLOC_H

#include <stddef.h>

#define xmalloc(size)         xmalloc_at((size), __FILE__, __LINE__)
#define xcalloc(n, size)      xcalloc_at((n), (size), __FILE__, __LINE__)
#define xrealloc(p, size)     xrealloc_at((p), (size), __FILE__, __LINE__)
#define xmallocarray(n, size) xmallocarray_at((n), (size), __FILE__, __LINE__)
#define xstrdup(s)            xstrdup_at((s), __FILE__, __LINE__)
/* 64-byte aligned, for float buffers the kernels vectorise over; free with free(). */
#define xaligned(size) xaligned_at((size), __FILE__, __LINE__)

void *xmalloc_at(size_t size, const char *file, int line);
void *xcalloc_at(size_t n, size_t size, const char *file, int line);
void *xrealloc_at(void *p, size_t size, const char *file, int line);
void *xmallocarray_at(size_t n, size_t size, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
void *xaligned_at(size_t size, const char *file, int line);

/* xtry_aligned is xaligned that returns NULL instead of aborting: for the
 * few large buffers (a model's parameters, activations) whose size comes
 * from a user's job, where running out of memory is the job's failure, not
 * the process's. */
void *xtry_aligned(size_t size);

#endif
