/* keyfile.h - CurveZMQ key files and Z85 key text, shared by the server and the pools.
 *
 * `kiln-server curve-keypair` prints a keypair as two lines, `public <Z85>` and
 * `secret <Z85>`; saved to a file (mode 600), that is a key file for
 * kiln-server --curve-secret and kiln-worker --curve-secret. Z85 is ZeroMQ's
 * text form of a 32-byte key: 40 characters. Depends on libc only.
 */
#ifndef KILN_KEYFILE_H
#define KILN_KEYFILE_H

#include "common/err.h"

#include <stddef.h>

#define KEYFILE_Z85_LEN 40 /* a 32-byte key in Z85, without the NUL */

/* keyfile_read_secret reads a key file's secret key (a line `secret <Z85>`; a
 * file holding only the 40-character key is accepted too) into out.
 * Returns 0, or ERR_IO / ERR_FORMAT naming the file. */
int keyfile_read_secret(const char *path, char out[KEYFILE_Z85_LEN + 1], errbuf *eb);

/* keyfile_read_text reads a whole file into a malloc'd NUL-terminated buffer
 * (*len bytes before the NUL). Returns 0 or ERR_IO naming the file. */
int keyfile_read_text(const char *path, char **out, size_t *len, errbuf *eb);

/* Whether s (NUL-terminated) is 40 characters of the Z85 alphabet. */
int z85_key_valid(const char *s);

#endif
