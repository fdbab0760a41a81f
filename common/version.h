/* version.h - the kiln release every program reports (kiln-worker --version, the
 * pool's hello, kiln-server's /workers and logs). No dependencies; a constant only.
 */
#ifndef KILN_COMMON_VERSION_H
#define KILN_COMMON_VERSION_H

#define KILN_VERSION "0.3.0"

#endif
