/* initcache.h - a pool's cache of init_from weights, by SHA-256.
 *
 * Rank 0 of a pool keeps the weights the server sent with an assignment in
 * DIR/<sha256>.safetensors, so that a job starting from the same weights
 * again (a retry, the next step of a chain, a sweep) does not move them
 * over the network: the pool lists what it holds in its ready message and
 * the server then sends only the hash. Bytes are checked against the hash
 * both when they arrive and when they are read back. At most INITCACHE_MAX
 * files are kept (the least recently used go first). One thread; no MPI.
 */
#ifndef KILN_INITCACHE_H
#define KILN_INITCACHE_H

#include "common/err.h"

#include <stddef.h>

#define INITCACHE_MAX 8

/* The SHA-256 of len bytes as 64 lower-case hex digits. */
void initcache_sha256(const void *data, size_t len, char hex[65]);

/* Lists the hashes held in dir, most recently used first (at most max),
 * removing files beyond INITCACHE_MAX. Returns how many. */
int initcache_list(const char *dir, char sha[][65], int max);

/* Checks that data hashes to sha, then stores it (temp file + rename).
 * Returns 0, ERR_FORMAT (hash mismatch: eb names both) or ERR_IO. */
int initcache_put(const char *dir, const char *sha, const void *data, size_t len, errbuf *eb);

/* Reads the weights with hash sha (malloc'd into *data) and checks them.
 * Returns 0, ERR_NOT_FOUND (not held), ERR_FORMAT (corrupt: removed) or
 * ERR_IO. */
int initcache_get(const char *dir, const char *sha, void **data, size_t *len, errbuf *eb);

#endif
