/* files.c - crash-safe file writes and folder helpers (see files.h). */
#define _XOPEN_SOURCE 700
#include "common/files.h"

#include "common/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int files_pathf(char *out, errbuf *eb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, KILN_PATH_MAX, fmt, ap);
    va_end(ap);
    if (n >= 0 && n < KILN_PATH_MAX)
        return 0;
    return eb != NULL ? err_set(eb, ERR_INVALID, "path too long (over %d bytes): %.120s...",
                                KILN_PATH_MAX - 1, out)
                      : ERR_INVALID;
}

int files_mkdirs(const char *path, errbuf *eb)
{
    char buf[KILN_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return err_set(eb, ERR_INVALID, "path '%.100s' is empty or too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return err_set(eb, ERR_IO, "cannot create folder %s: %s", buf, strerror(errno));
        buf[i] = c;
    }
    return 0;
}

/* fsync of the folder that holds path, so that a rename in it is durable. */
static void fsync_dir(const char *path)
{
    char dir[KILN_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path); /* path fits: the callers checked */
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int files_stream_open(files_stream *s, const char *path, errbuf *eb)
{
    static atomic_uint counter;
    s->f = NULL;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof s->path)
        return err_set(eb, ERR_INVALID, "path '%.100s...' is empty or too long", path);
    memcpy(s->path, path, n + 1);
    char parent[KILN_PATH_MAX];
    memcpy(parent, path, n + 1);
    char *slash = strrchr(parent, '/');
    if (slash != NULL && slash != parent) {
        *slash = '\0';
        int rc = files_mkdirs(parent, eb);
        if (rc < 0)
            return rc;
    }
    snprintf(s->tmp, sizeof s->tmp, "%s.tmp.%ld.%u", path, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    int fd = open(s->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || (s->f = fdopen(fd, "wb")) == NULL) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(s->tmp);
        }
        return err_set(eb, ERR_IO, "cannot create %s: %s", s->tmp, strerror(e));
    }
    return 0;
}

int files_stream_commit(files_stream *s, errbuf *eb)
{
    int rc = 0;
    if (fflush(s->f) != 0 || ferror(s->f))
        rc = err_set(eb, ERR_IO, "cannot write %s: %s", s->tmp, strerror(errno));
    else if (fsync(fileno(s->f)) != 0)
        rc = err_set(eb, ERR_IO, "cannot fsync %s: %s", s->tmp, strerror(errno));
    if (fclose(s->f) != 0 && rc == 0)
        rc = err_set(eb, ERR_IO, "cannot write %s: %s", s->tmp, strerror(errno));
    s->f = NULL;
    if (rc == 0 && rename(s->tmp, s->path) != 0)
        rc = err_set(eb, ERR_IO, "cannot rename %s to %s: %s", s->tmp, s->path, strerror(errno));
    if (rc < 0)
        unlink(s->tmp);
    else
        fsync_dir(s->path);
    return rc;
}

void files_stream_abort(files_stream *s)
{
    if (s->f != NULL)
        fclose(s->f);
    s->f = NULL;
    unlink(s->tmp);
}

int files_write_atomic(const char *path, const void *data, size_t len, errbuf *eb)
{
    files_stream s;
    int rc = files_stream_open(&s, path, eb);
    if (rc != 0)
        return rc;
    if (len > 0 && fwrite(data, 1, len, s.f) != len) {
        rc = err_set(eb, ERR_IO, "cannot write %s: %s", s.tmp, strerror(errno));
        files_stream_abort(&s);
        return rc;
    }
    return files_stream_commit(&s, eb);
}

int files_read(const char *path, void **data, size_t *len, errbuf *eb)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(eb, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, "cannot open %s: %s", path,
                       strerror(errno));
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0) {
        rc = err_set(eb, ERR_IO, "cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    unsigned char *buf = xmalloc(n + 1);
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(buf);
            rc = err_set(eb, ERR_IO, "cannot read %s: %s", path,
                         r == 0 ? "file shrank" : strerror(errno));
            goto out;
        }
        got += (size_t)r;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
out:
    close(fd);
    return rc;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

int files_remove_tree(const char *path, errbuf *eb)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return errno == ENOENT ? 0
                               : err_set(eb, ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return err_set(eb, ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* Whether a file name is "<name>.tmp.<pid>.<n>", what files_write_atomic
 * writes before its rename. */
static int is_tmp_name(const char *base)
{
    const char *t = NULL;
    for (const char *p = strstr(base, ".tmp."); p != NULL; p = strstr(p + 1, ".tmp."))
        t = p;
    if (t == NULL || t == base)
        return 0;
    const char *p = t + 5;
    int dots = 0, digits = 0;
    for (; *p != '\0'; p++) {
        if (*p == '.' && digits > 0 && dots == 0)
            dots++, digits = 0;
        else if (*p >= '0' && *p <= '9')
            digits++;
        else
            return 0;
    }
    return dots == 1 && digits > 0;
}

static int swept;

static int sweep_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    if (type == FTW_F && is_tmp_name(path + ftw->base) && unlink(path) == 0)
        swept++;
    return 0;
}

int files_sweep_tmp(const char *dir)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    swept = 0;
    struct stat st;
    if (stat(dir, &st) == 0)
        nftw(dir, sweep_one, 16, FTW_PHYS);
    int n = swept;
    pthread_mutex_unlock(&mu);
    return n;
}

int files_disk_check(const char *dir, double min_free, errbuf *eb)
{
    struct statvfs vs;
    if (statvfs(dir, &vs) != 0)
        return err_set(eb, ERR_IO, "cannot stat the file system of %s: %s", dir, strerror(errno));
    double avail = (double)vs.f_bavail * (double)vs.f_frsize;
    if (avail < min_free)
        return err_set(eb, ERR_IO, "%s has %.0f MiB free, less than the %.0f MiB needed", dir,
                       avail / 1048576.0, min_free / 1048576.0);
    char probe[KILN_PATH_MAX];
    snprintf(probe, sizeof probe, "%s/.ready-probe", dir);
    int rc = files_write_atomic(probe, "ok\n", 3, eb);
    unlink(probe);
    return rc;
}
