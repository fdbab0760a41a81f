/* auth.h - bearer tokens: the tokens file, hashing, scopes, constant-time checks.
 *
 * A tokens file has one token per line: `<name> <scopes> sha256:<64 hex>`,
 * scopes a comma-separated subset of read, submit, admin, pool (admin
 * implies the others; pool lets a worker pool join over ZeroMQ); blank lines
 * and lines starting with '#' are skipped. Only the
 * SHA-256 of a token is kept, in the file and in memory. Tokens are random
 * (auth_token_new: 32 bytes from libsodium), so a fast hash is the right
 * one: a slow password hash would only make every request a CPU cost an
 * attacker could ask for. A presented token is hashed and compared with
 * every stored hash by sodium_memcmp, without stopping at a match, so the
 * time does not say which or how much of a hash matched.
 * Depends on libsodium and libc only; an auth is read-only after auth_load
 * and safe to share between threads.
 */
#ifndef KILN_AUTH_H
#define KILN_AUTH_H

#include "common/err.h"

#include <stddef.h>

enum {
    AUTH_READ = 1u << 0,   /* GET the API, /metrics */
    AUTH_SUBMIT = 1u << 1, /* submit and cancel jobs */
    AUTH_ADMIN = 1u << 2,  /* delete jobs; implies all the others */
    AUTH_POOL = 1u << 3,   /* join as a worker pool (the ZeroMQ socket) */
};

#define AUTH_NAME_MAX  64 /* token names, including the NUL */
#define AUTH_TOKEN_MAX 256

typedef struct auth auth;

/* auth_load reads a tokens file. Returns 0 with *out (free with auth_free),
 * or ERR_IO (cannot read) / ERR_FORMAT (a bad line: eb names the file, the
 * line number and what is wrong). A file with no token is ERR_FORMAT: a
 * server started with --tokens must not run open by mistake. */
int auth_load(auth **out, const char *path, errbuf *eb);

/* auth_parse is auth_load on text in memory; `what` names it in errors. */
int auth_parse(auth **out, const char *text, size_t len, const char *what, errbuf *eb);

void auth_free(auth *a); /* NULL is a no-op */

/* Number of tokens. */
int auth_count(const auth *a);

/* auth_check looks a presented token up. Returns 1 with its scopes (admin
 * expanded to all three) and name (name may be NULL), or 0 when it matches
 * no stored token. The time taken does not depend on which token matched. */
int auth_check(const auth *a, const char *token, unsigned *scopes, char name[AUTH_NAME_MAX]);

/* auth_bearer extracts the token of an "Authorization: Bearer <t>" header
 * value (scheme case-insensitive, spaces allowed before the token). NULL
 * when the value is not a bearer credential. The result points into value. */
const char *auth_bearer(const char *value);

/* auth_hash writes "sha256:<64 lowercase hex>" of token into out. */
void auth_hash(const char *token, char out[72]);

/* auth_token_new writes a new random token, "kiln_" + 43 base64url chars. */
void auth_token_new(char out[64]);

/* auth_scopes_parse parses "read,submit" into a mask (admin expanded to all).
 * Returns 0, or ERR_INVALID naming the unknown scope. */
int auth_scopes_parse(const char *text, unsigned *mask, errbuf *eb);

/* auth_scope_name: "read" | "submit" | "admin" | "pool" for one AUTH_* bit. */
const char *auth_scope_name(unsigned scope);

#endif
