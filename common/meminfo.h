/* meminfo.h - how much memory this process may use: the host's, or its container's.
 *
 * Reads /proc/meminfo and the cgroup limits (v2 memory.max and
 * memory.current, or v1 memory.limit_in_bytes and memory.usage_in_bytes)
 * and takes the smaller of host and cgroup. A pool reports the total in its
 * hello (the server's admission control), and a worker checks the available
 * memory before it allocates a model's buffers (the job fails with
 * OUT_OF_MEMORY instead of the process being killed). Linux only; libc only;
 * thread-safe (reads files, keeps no state).
 */
#ifndef KILN_MEMINFO_H
#define KILN_MEMINFO_H

#include <stdint.h>

/* Bytes of memory this process's host or container has in all: MemTotal,
 * or the cgroup limit when it is lower. 0 if it cannot be read. */
int64_t meminfo_total_bytes(void);

/* Bytes that can be allocated now without swapping or the OOM killer:
 * MemAvailable, or the cgroup limit minus its usage when that is lower.
 * 0 if it cannot be read. */
int64_t meminfo_available_bytes(void);

/* Formats bytes for a message: "1.5 GiB", "812 MiB", "640 KiB", "12 B".
 * Returns buf. */
const char *meminfo_format(int64_t bytes, char *buf, int len);

#endif
