/* keyfile.c - CurveZMQ key files and Z85 key text (see keyfile.h). */
#include "common/keyfile.h"

#include "common/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char z85_alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   ".-:+=^!/*?&<>()[]{}@%$#";

int z85_key_valid(const char *s)
{
    size_t n = strlen(s);
    return n == KEYFILE_Z85_LEN && strspn(s, z85_alphabet) == n;
}

int keyfile_read_text(const char *path, char **out, size_t *len, errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return err_set(eb, ERR_IO, "cannot read %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0)
            buf = xrealloc(buf, cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return err_set(eb, ERR_IO, "cannot read %s", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int keyfile_read_secret(const char *path, char out[KEYFILE_Z85_LEN + 1], errbuf *eb)
{
    char *text;
    size_t len;
    if (keyfile_read_text(path, &text, &len, eb) < 0)
        return ERR_IO;
    out[0] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char a[16] = "", b[KEYFILE_Z85_LEN + 8] = "";
        int got = sscanf(line, "%15s %47s", a, b);
        if (got == 2 && strcmp(a, "secret") == 0 && z85_key_valid(b))
            snprintf(out, KEYFILE_Z85_LEN + 1, "%.*s", KEYFILE_Z85_LEN, b); /* valid: 40 */
        else if (got == 1 && z85_key_valid(a) && out[0] == '\0')
            snprintf(out, KEYFILE_Z85_LEN + 1, "%.*s", KEYFILE_Z85_LEN, a);
    }
    free(text);
    if (out[0] == '\0')
        return err_set(eb, ERR_FORMAT,
                       "%s holds no secret key (a line 'secret <40 Z85 characters>', as "
                       "kiln-server curve-keypair writes)",
                       path);
    return 0;
}

int keyfile_read_token(const char *path, char *out, size_t len, errbuf *eb)
{
    char *text;
    size_t n;
    int rc = keyfile_read_text(path, &text, &n, eb);
    if (rc < 0)
        return rc;
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t k = strcspn(p, "\r\n");
    while (k > 0 && (p[k - 1] == ' ' || p[k - 1] == '\t'))
        k--;
    if (k == 0)
        rc = err_set(eb, ERR_FORMAT, "%s holds no token on its first line", path);
    else if (k >= len)
        rc = err_set(eb, ERR_FORMAT, "%s: the token is longer than %zu bytes", path, len - 1);
    else if (memchr(p, ' ', k) != NULL || memchr(p, '\t', k) != NULL)
        rc = err_set(eb, ERR_FORMAT, "%s: a token has no spaces (give the token alone)", path);
    else {
        memcpy(out, p, k);
        out[k] = '\0';
    }
    free(text);
    return rc;
}
