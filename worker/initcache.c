/* initcache.c - init_from weights kept by a pool (see initcache.h). */
#include "worker/initcache.h"

#include "common/files.h"
#include "common/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

void initcache_sha256(const void *data, size_t len, char hex[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, len);
    for (size_t i = 0; i < sizeof h; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
}

typedef struct cache_entry {
    char sha[65];
    time_t mtime;
} cache_entry;

static int newer_first(const void *a, const void *b)
{
    const cache_entry *x = a, *y = b;
    return (x->mtime < y->mtime) - (x->mtime > y->mtime);
}

int initcache_list(const char *dir, char sha[][65], int max)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    cache_entry *e = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (strlen(name) != 64 + strlen(".safetensors") || strcmp(name + 64, ".safetensors") != 0)
            continue;
        char path[KILN_PATH_MAX];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (stat(path, &sb) != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            e = xrealloc(e, (size_t)cap * sizeof *e);
        }
        memcpy(e[n].sha, name, 64);
        e[n].sha[64] = '\0';
        e[n].mtime = sb.st_mtime;
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(e, (size_t)n, sizeof *e, newer_first);
    int out = 0;
    for (int i = 0; i < n; i++) {
        if (i >= INITCACHE_MAX) {
            char path[KILN_PATH_MAX];
            snprintf(path, sizeof path, "%s/%s.safetensors", dir, e[i].sha);
            unlink(path);
        } else if (out < max) {
            memcpy(sha[out++], e[i].sha, 65);
        }
    }
    free(e);
    return out;
}

int initcache_put(const char *dir, const char *sha, const void *data, size_t len, errbuf *eb)
{
    char got[65];
    initcache_sha256(data, len, got);
    if (strcmp(got, sha) != 0)
        return err_set(eb, ERR_FORMAT,
                       "the init_from weights arrived corrupt: SHA-256 %s, the server said %s", got,
                       sha);
    char path[KILN_PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s.safetensors", dir, sha) >= (int)sizeof path)
        return err_set(eb, ERR_INVALID, "init cache folder '%.100s...' is too long", dir);
    return files_write_atomic(path, data, len, eb);
}

int initcache_get(const char *dir, const char *sha, void **data, size_t *len, errbuf *eb)
{
    *data = NULL;
    *len = 0;
    char path[KILN_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, sha);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return err_set(eb, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, "%s: %s", path,
                       strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        fclose(f);
        return err_set(eb, ERR_IO, "%s: %s", path, strerror(errno));
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *buf = xmalloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    char h[65];
    initcache_sha256(buf, got, h);
    if (got != n || strcmp(h, sha) != 0) {
        free(buf);
        unlink(path);
        return err_set(eb, ERR_FORMAT, "%s: corrupt in the cache (removed)", path);
    }
    utime(path, NULL); /* most recently used */
    *data = buf;
    *len = n;
    return 0;
}
