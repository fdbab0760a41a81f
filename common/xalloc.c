/* xalloc.c - aborting allocators (see xalloc.h). */
#include "xalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t size, const char *file, int line)
{
    fprintf(stderr, "kiln: out of memory allocating %zu bytes at %s:%d\n", size, file, line);
    abort();
}

void *xmalloc_at(size_t size, const char *file, int line)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        oom(size, file, line);
    return p;
}

void *xcalloc_at(size_t n, size_t size, const char *file, int line)
{
    if (size != 0 && n > SIZE_MAX / size)
        oom(SIZE_MAX, file, line);
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size, file, line);
    return p;
}

void *xrealloc_at(void *p, size_t size, const char *file, int line)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL)
        oom(size, file, line);
    return q;
}

void *xmallocarray_at(size_t n, size_t size, const char *file, int line)
{
    if (size != 0 && n > SIZE_MAX / size)
        oom(SIZE_MAX, file, line);
    return xmalloc_at(n * size, file, line);
}

char *xstrdup_at(const char *s, const char *file, int line)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

void *xtry_aligned(size_t size)
{
    void *p = NULL;
    size_t rounded = (size + 63) / 64 * 64;
    if (rounded < size || posix_memalign(&p, 64, rounded ? rounded : 64) != 0)
        return NULL;
    return p;
}

void *xaligned_at(size_t size, const char *file, int line)
{
    void *p = NULL;
    size_t rounded = (size + 63) / 64 * 64;
    if (rounded < size || posix_memalign(&p, 64, rounded ? rounded : 64) != 0)
        oom(size, file, line);
    return p;
}
