/* meminfo.c - host and cgroup memory (see meminfo.h). */
#include "meminfo.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The value of `key` in /proc/meminfo, in bytes; -1 if absent. */
static int64_t proc_meminfo(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (f == NULL)
        return -1;
    char line[256];
    int64_t v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f) != NULL) {
        long long kb;
        if (strncmp(line, key, klen) == 0 && line[klen] == ':' &&
            sscanf(line + klen + 1, "%lld", &kb) == 1) {
            v = (int64_t)kb * 1024;
            break;
        }
    }
    fclose(f);
    return v;
}

/* A number from a one-line file; -1 if absent or "max" (no limit). */
static int64_t read_number(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long long v = -1;
    if (fscanf(f, "%lld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

/* The cgroup's limit and usage; limit -1 when there is none. cgroup v1
 * reports "no limit" as a huge number, which the min() with the host makes
 * harmless. */
static void cgroup_memory(int64_t *limit, int64_t *usage)
{
    *limit = read_number("/sys/fs/cgroup/memory.max");
    *usage = read_number("/sys/fs/cgroup/memory.current");
    if (*limit < 0) {
        *limit = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
        *usage = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
    }
    if (*usage < 0)
        *usage = 0;
}

int64_t meminfo_total_bytes(void)
{
    int64_t host = proc_meminfo("MemTotal");
    int64_t limit, usage;
    cgroup_memory(&limit, &usage);
    if (host < 0)
        return limit > 0 ? limit : 0;
    return limit > 0 && limit < host ? limit : host;
}

int64_t meminfo_available_bytes(void)
{
    int64_t host = proc_meminfo("MemAvailable");
    if (host < 0)
        host = proc_meminfo("MemFree");
    int64_t limit, usage;
    cgroup_memory(&limit, &usage);
    int64_t room = limit > 0 ? (limit > usage ? limit - usage : 0) : -1;
    if (host < 0)
        return room > 0 ? room : 0;
    return room >= 0 && room < host ? room : host;
}

const char *meminfo_format(int64_t bytes, char *buf, int len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 5) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, (size_t)len, "%" PRId64 " B", bytes);
    else
        snprintf(buf, (size_t)len, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}
