/* poolkeys.h - the pool keys file: which CurveZMQ public keys may join, under which name.
 *
 * One pool a line: `<name> <public key>`, the key in Z85 (40 characters, as
 * `kiln-server curve-keypair` prints it); blank lines and lines starting with
 * '#' are skipped. A pool that joins with one of these keys is that name: the
 * broker accepts its messages only under the pool id equal to the name, so a
 * pool's identity comes from its key, not from what it says.
 * Depends on libc and common/keyfile (no ZeroMQ: the broker does the Z85 encoding).
 * Read-only after poolkeys_load; safe to share between threads.
 */
#ifndef KILN_POOLKEYS_H
#define KILN_POOLKEYS_H

#include "common/err.h"
#include "common/keyfile.h"

#include <stddef.h>

#define POOLKEYS_Z85_LEN KEYFILE_Z85_LEN

typedef struct poolkeys poolkeys;

/* poolkeys_load reads a pool keys file. Returns 0 with *out (free with
 * poolkeys_free), or ERR_IO (cannot read) / ERR_FORMAT (a bad line: eb names
 * the file, the line and what is wrong; a file with no key is ERR_FORMAT). */
int poolkeys_load(poolkeys **out, const char *path, errbuf *eb);

/* poolkeys_parse is poolkeys_load over text already read (what names it in errors). */
int poolkeys_parse(poolkeys **out, const char *text, size_t len, const char *what, errbuf *eb);

/* The name of the pool whose Z85 public key is z85 (40 characters), or NULL. */
const char *poolkeys_name(const poolkeys *k, const char *z85);

/* Number of keys. */
int poolkeys_count(const poolkeys *k);

/* NULL is a no-op. */
void poolkeys_free(poolkeys *k);

#endif
