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
            snprintf(out, KEYFILE_Z85_LEN + 1, "%s", b);
        else if (got == 1 && z85_key_valid(a) && out[0] == '\0')
            snprintf(out, KEYFILE_Z85_LEN + 1, "%s", a);
    }
    free(text);
    if (out[0] == '\0')
        return err_set(eb, ERR_FORMAT,
                       "%s holds no secret key (a line 'secret <40 Z85 characters>', as "
                       "kiln-server curve-keypair writes)",
                       path);
    return 0;
}
