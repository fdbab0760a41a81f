/* poolkeys.c - the pool keys file and secret key files (see poolkeys.h). */
#include "server/poolkeys.h"

#include "common/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOLKEYS_NAME_MAX 64

typedef struct poolkey {
    char name[POOLKEYS_NAME_MAX];
    char z85[POOLKEYS_Z85_LEN + 1];
} poolkey;

struct poolkeys {
    poolkey *keys;
    int n;
};

static int name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= POOLKEYS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return 0;
    return 1;
}

int poolkeys_parse(poolkeys **out, const char *text, size_t len, const char *what, errbuf *eb)
{
    *out = NULL;
    poolkeys *k = xcalloc(1, sizeof *k);
    int line_no = 0, cap = 0;
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && text[e] != '\n')
            e++;
        line_no++;
        char line[256];
        size_t ll = e - i < sizeof line - 1 ? e - i : sizeof line - 1;
        memcpy(line, text + i, ll);
        line[ll] = '\0';
        i = e + 1;
        line[strcspn(line, "\r")] = '\0';
        char name[POOLKEYS_NAME_MAX + 8] = "", key[POOLKEYS_Z85_LEN + 8] = "", extra[8] = "";
        int got = sscanf(line, "%71s %47s %7s", name, key, extra);
        if (got <= 0 || name[0] == '#')
            continue;
        const char *bad = got != 2                ? "want '<name> <public key>'"
                          : !name_valid(name)     ? "the name is not 1..63 printable characters"
                          : !z85_key_valid(key)   ? "the key is not 40 Z85 characters"
                          : poolkeys_name(k, key) ? "the key is listed twice"
                                                  : NULL;
        if (bad != NULL) {
            poolkeys_free(k);
            return err_set(eb, ERR_FORMAT, "%s line %d: %s", what, line_no, bad);
        }
        if (k->n == cap)
            k->keys = xrealloc(k->keys, (size_t)(cap = cap ? 2 * cap : 8) * sizeof *k->keys);
        /* both checked above to fit (name_valid, z85_key_valid) */
        snprintf(k->keys[k->n].name, sizeof k->keys[k->n].name, "%.*s",
                 (int)sizeof k->keys[k->n].name - 1, name);
        snprintf(k->keys[k->n].z85, sizeof k->keys[k->n].z85, "%.*s",
                 (int)sizeof k->keys[k->n].z85 - 1, key);
        k->n++;
    }
    if (k->n == 0) {
        poolkeys_free(k);
        return err_set(eb, ERR_FORMAT, "%s: no pool key (a line '<name> <public key>')", what);
    }
    *out = k;
    return 0;
}

int poolkeys_load(poolkeys **out, const char *path, errbuf *eb)
{
    char *text;
    size_t len;
    if (keyfile_read_text(path, &text, &len, eb) < 0)
        return ERR_IO;
    int rc = poolkeys_parse(out, text, len, path, eb);
    free(text);
    return rc;
}

const char *poolkeys_name(const poolkeys *k, const char *z85)
{
    for (int i = 0; k != NULL && i < k->n; i++)
        if (strcmp(k->keys[i].z85, z85) == 0)
            return k->keys[i].name;
    return NULL;
}

int poolkeys_count(const poolkeys *k)
{
    return k != NULL ? k->n : 0;
}

void poolkeys_free(poolkeys *k)
{
    if (k == NULL)
        return;
    free(k->keys);
    free(k);
}
