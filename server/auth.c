/* auth.c - bearer tokens (see auth.h). libsodium for SHA-256, randomness and
 * constant-time comparison. */
#include "auth.h"

#include "common/files.h"
#include "common/xalloc.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct token {
    char name[AUTH_NAME_MAX];
    unsigned scopes;
    unsigned char hash[crypto_hash_sha256_BYTES];
} token;

struct auth {
    token *t;
    int n;
};

const char *auth_scope_name(unsigned scope)
{
    switch (scope) {
    case AUTH_READ:
        return "read";
    case AUTH_SUBMIT:
        return "submit";
    case AUTH_ADMIN:
        return "admin";
    case AUTH_POOL:
        return "pool";
    default:
        return "?";
    }
}

int auth_scopes_parse(const char *text, unsigned *mask, errbuf *eb)
{
    *mask = 0;
    const char *p = text;
    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        if (n == 4 && strncmp(p, "read", 4) == 0)
            *mask |= AUTH_READ;
        else if (n == 6 && strncmp(p, "submit", 6) == 0)
            *mask |= AUTH_SUBMIT;
        else if (n == 5 && strncmp(p, "admin", 5) == 0)
            *mask |= AUTH_ADMIN | AUTH_READ | AUTH_SUBMIT | AUTH_POOL;
        else if (n == 4 && strncmp(p, "pool", 4) == 0)
            *mask |= AUTH_POOL;
        else
            return err_set(eb, ERR_INVALID, "unknown scope '%.*s' (read, submit, admin or pool)",
                           (int)(n > 32 ? 32 : n), p);
        p += n;
        if (*p == ',')
            p++;
    }
    if (*mask == 0)
        return err_set(eb, ERR_INVALID, "no scope given (read, submit, admin or pool)");
    return 0;
}

static void sha256(const char *text, unsigned char out[crypto_hash_sha256_BYTES])
{
    crypto_hash_sha256(out, (const unsigned char *)text, strlen(text));
}

void auth_hash(const char *token_text, char out[72])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    sha256(token_text, h);
    memcpy(out, "sha256:", 8); /* with its NUL; the hex follows at out + 7 */
    sodium_bin2hex(out + 7, 65, h, sizeof h);
}

void auth_token_new(char out[64])
{
    unsigned char r[32];
    randombytes_buf(r, sizeof r);
    memcpy(out, "kiln_", 6); /* with its NUL; the base64 follows at out + 5 */
    sodium_bin2base64(out + 5, 59, r, sizeof r, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(r, sizeof r);
}

/* Parses one non-comment line into t. */
static int parse_line(char *line, token *t, errbuf *eb)
{
    char *save = NULL;
    char *name = strtok_r(line, " \t", &save);
    char *scopes = strtok_r(NULL, " \t", &save);
    char *hash = strtok_r(NULL, " \t", &save);
    char *extra = strtok_r(NULL, " \t", &save);
    if (name == NULL || scopes == NULL || hash == NULL || extra != NULL)
        return err_set(eb, ERR_FORMAT, "want '<name> <scopes> sha256:<64 hex>'");
    if (strlen(name) >= AUTH_NAME_MAX)
        return err_set(eb, ERR_FORMAT, "name longer than %d bytes", AUTH_NAME_MAX - 1);
    for (const char *c = name; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.')
            return err_set(eb, ERR_FORMAT, "name '%s': use [A-Za-z0-9._-]", name);
    snprintf(t->name, sizeof t->name, "%s", name);
    int rc = auth_scopes_parse(scopes, &t->scopes, eb);
    if (rc < 0)
        return err_set(eb, ERR_FORMAT, "token '%s': %s", name, eb != NULL ? eb->msg : "");
    size_t bin_len = 0;
    if (strncmp(hash, "sha256:", 7) != 0 || strlen(hash + 7) != 2 * sizeof t->hash ||
        sodium_hex2bin(t->hash, sizeof t->hash, hash + 7, strlen(hash + 7), NULL, &bin_len, NULL) !=
            0 ||
        bin_len != sizeof t->hash)
        return err_set(eb, ERR_FORMAT,
                       "token '%s': the hash must be sha256:<64 hex digits> (kiln-server "
                       "hash-token makes one); the token itself is never stored",
                       name);
    return 0;
}

int auth_parse(auth **out, const char *text, size_t len, const char *what, errbuf *eb)
{
    *out = NULL;
    auth *a = xcalloc(1, sizeof *a);
    int cap = 0, lineno = 0, rc = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        lineno++;
        char line[1024] = "";
        size_t n = end - pos;
        if (n >= sizeof line) {
            rc = err_set(eb, ERR_FORMAT, "%s line %d: longer than %zu bytes", what, lineno,
                         sizeof line - 1);
            goto out;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos = end + 1;
        while (n > 0 && isspace((unsigned char)line[n - 1]))
            line[--n] = '\0';
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '\0' || *s == '#')
            continue;
        if (a->n == cap) {
            cap = cap ? 2 * cap : 8;
            a->t = xrealloc(a->t, (size_t)cap * sizeof *a->t);
        }
        errbuf le;
        if (parse_line(s, &a->t[a->n], &le) < 0) {
            rc = err_set(eb, ERR_FORMAT, "%s line %d: %s", what, lineno, le.msg);
            goto out;
        }
        for (int i = 0; i < a->n; i++)
            if (strcmp(a->t[i].name, a->t[a->n].name) == 0) {
                rc = err_set(eb, ERR_FORMAT, "%s line %d: token name '%s' appears twice", what,
                             lineno, a->t[i].name);
                goto out;
            }
        a->n++;
    }
    if (a->n == 0) {
        rc = err_set(eb, ERR_FORMAT, "%s has no token", what);
        goto out;
    }
    *out = a;
    return 0;
out:
    auth_free(a);
    return rc;
}

int auth_load(auth **out, const char *path, errbuf *eb)
{
    *out = NULL;
    void *data;
    size_t len;
    int rc = files_read(path, &data, &len, eb);
    if (rc < 0)
        return err_prefix(eb, ERR_IO, "tokens file");
    rc = auth_parse(out, data, len, path, eb);
    sodium_memzero(data, len);
    free(data);
    return rc;
}

void auth_free(auth *a)
{
    if (a == NULL)
        return;
    if (a->t != NULL)
        sodium_memzero(a->t, (size_t)a->n * sizeof *a->t);
    free(a->t);
    free(a);
}

int auth_count(const auth *a)
{
    return a != NULL ? a->n : 0;
}

int auth_check(const auth *a, const char *tok, unsigned *scopes, char name[AUTH_NAME_MAX])
{
    *scopes = 0;
    if (a == NULL || tok == NULL || strlen(tok) > AUTH_TOKEN_MAX)
        return 0;
    unsigned char h[crypto_hash_sha256_BYTES];
    sha256(tok, h);
    int found = -1;
    for (int i = 0; i < a->n; i++) {
        /* Every hash is compared; the branch below only picks a result. */
        int eq = sodium_memcmp(h, a->t[i].hash, sizeof h) == 0;
        if (eq && found < 0)
            found = i;
    }
    if (found < 0)
        return 0;
    *scopes = a->t[found].scopes;
    if (name != NULL)
        snprintf(name, AUTH_NAME_MAX, "%s", a->t[found].name);
    return 1;
}

const char *auth_bearer(const char *value)
{
    if (value == NULL)
        return NULL;
    while (*value == ' ')
        value++;
    if (strncasecmp(value, "Bearer", 6) != 0 || value[6] != ' ')
        return NULL;
    const char *t = value + 6;
    while (*t == ' ')
        t++;
    return *t != '\0' ? t : NULL;
}
