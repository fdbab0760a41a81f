/* imgindex.c - image-folder and manifest indexes (see imgindex.h).
 *
 * The scan collects (directory, file name, size) entries recursively, sorts
 * them as sorted(os.walk) does, and keeps the image extensions. Depends on
 * libc, POSIX dirent/stat, jansson (manifest JSON lines); thread-safe.
 */
#include "worker/data/imgindex.h"

#include "common/xalloc.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define IX_PATH_MAX 4096
#define FNV_OFFSET  0xcbf29ce484222325ULL
#define FNV_PRIME   0x100000001b3ULL

typedef struct entry {
    char *dir;  /* relative directory ("" for the class folder itself) */
    char *base; /* file name */
    uint64_t bytes;
    int label;
} entry;

typedef struct entries {
    entry *v;
    size_t n, cap;
} entries;

static void push(entries *e, const char *dir, const char *base, uint64_t bytes, int label)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 256;
        e->v = xrealloc(e->v, e->cap * sizeof *e->v);
    }
    e->v[e->n++] = (entry){xstrdup(dir), xstrdup(base), bytes, label};
}

static void entries_free(entries *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].dir);
        free(e->v[i].base);
    }
    free(e->v);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

static int is_image(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot != NULL && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
                           strcasecmp(dot, ".png") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the entries of dir (without . and ..); dirs_only filters. */
static int list_dir(const char *dir, int dirs_only, char ***out, int *n, errbuf *eb)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return err_set(eb, ERR_IO, "%s: %s", dir, strerror(errno));
    char **v = NULL;
    int cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[IX_PATH_MAX];
        struct stat st;
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p || stat(p, &st) != 0 ||
            (dirs_only && !S_ISDIR(st.st_mode)))
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 64;
            v = xrealloc(v, (size_t)cap * sizeof *v);
        }
        v[cnt++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (cnt > 0)
        qsort(v, (size_t)cnt, sizeof *v, cmp_str);
    *out = v;
    *n = cnt;
    return 0;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Walks root/cls/rel recursively (depth-limited against symlink loops). */
static int walk(entries *e, const char *root, const char *rel, int label, int depth, errbuf *eb)
{
    char dir[IX_PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/%s", root, rel) >= (int)sizeof dir)
        return err_set(eb, ERR_FORMAT, "%s/%s: path too long", root, rel);
    char **names;
    int n;
    int rc = list_dir(dir, 0, &names, &n, eb);
    if (rc != 0)
        return rc;
    for (int i = 0; i < n && rc == 0; i++) {
        char p[IX_PATH_MAX], sub[IX_PATH_MAX];
        struct stat st;
        if (snprintf(p, sizeof p, "%s/%s", dir, names[i]) >= (int)sizeof p || stat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth < 16 && snprintf(sub, sizeof sub, "%s/%s", rel, names[i]) < (int)sizeof sub)
                rc = walk(e, root, sub, label, depth + 1, eb);
        } else if (S_ISREG(st.st_mode) && is_image(names[i])) {
            push(e, rel, names[i], (uint64_t)st.st_size, label);
        }
    }
    free_list(names, n);
    return rc;
}

/* sorted(os.walk): by directory path, then file name. */
static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->label != y->label)
        return x->label < y->label ? -1 : 1;
    int c = strcmp(x->dir, y->dir);
    return c != 0 ? c : strcmp(x->base, y->base);
}

/* Fills ix from e (in e's order) and computes the fingerprint. */
static void finish(imgindex *ix, entries *e)
{
    size_t total = 0;
    for (size_t i = 0; i < e->n; i++)
        total += strlen(e->v[i].dir) + strlen(e->v[i].base) + 2;
    ix->n = (int)e->n;
    ix->names = xmalloc(total ? total : 1);
    ix->name_off = xmallocarray(e->n ? e->n : 1, sizeof(uint64_t));
    ix->labels = xmallocarray(e->n ? e->n : 1, sizeof(int32_t));
    ix->bytes = xmallocarray(e->n ? e->n : 1, sizeof(uint64_t));
    size_t off = 0;
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < e->n; i++) {
        const entry *x = &e->v[i];
        ix->name_off[i] = off;
        int len = x->dir[0] ? sprintf(ix->names + off, "%s/%s", x->dir, x->base)
                            : sprintf(ix->names + off, "%s", x->base);
        ix->labels[i] = x->label;
        ix->bytes[i] = x->bytes;
        ix->total_bytes += x->bytes;
        h = fnv(h, ix->names + off, (size_t)len + 1);
        h = fnv(h, &x->bytes, sizeof x->bytes);
        int32_t lab = x->label;
        h = fnv(h, &lab, sizeof lab);
        off += (size_t)len + 1;
    }
    ix->hash = h;
}

/* The held-out decision for a path: FNV of the path, uniform in [0, 1). */
static double path_unit(const char *rel, const char *base)
{
    uint64_t h = fnv(FNV_OFFSET, rel, strlen(rel));
    h = fnv(h, "/", 1);
    h = fnv(h, base, strlen(base));
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (double)(h >> 11) / 9007199254740992.0;
}

int imgindex_scan(imgindex *ix, const char *root, double holdout, int keep, errbuf *eb)
{
    memset(ix, 0, sizeof *ix);
    snprintf(ix->root, sizeof ix->root, "%s", root);
    char **classes;
    int nc;
    int rc = list_dir(root, 1, &classes, &nc, eb);
    if (rc != 0)
        return rc;
    if (nc == 0 || nc > IMGINDEX_MAX_CLASSES) {
        free_list(classes, nc);
        return err_set(eb, ERR_FORMAT, "%s: %d class folders (need 1..%d, one folder per class)",
                       root, nc, IMGINDEX_MAX_CLASSES);
    }
    entries e = {0};
    for (int c = 0; c < nc && rc == 0; c++)
        rc = walk(&e, root, classes[c], c, 0, eb);
    if (rc == 0 && keep != 0) {
        size_t k = 0;
        for (size_t i = 0; i < e.n; i++) {
            int in_holdout = path_unit(e.v[i].dir, e.v[i].base) < holdout;
            if (in_holdout == (keep == 2))
                e.v[k++] = e.v[i];
            else {
                free(e.v[i].dir);
                free(e.v[i].base);
            }
        }
        e.n = k;
    }
    if (rc == 0 && e.n == 0)
        rc = err_set(eb, ERR_FORMAT, "%s: no .jpg, .jpeg or .png file in its class folders%s", root,
                     keep ? " (in this split)" : "");
    if (rc == 0 && e.n > INT32_MAX / 2)
        rc = err_set(eb, ERR_FORMAT, "%s: too many files (%zu)", root, e.n);
    if (rc == 0 && e.v != NULL) {
        qsort(e.v, e.n, sizeof *e.v, cmp_entry);
        ix->num_classes = nc;
        ix->class_names = classes;
        finish(ix, &e);
    } else {
        free_list(classes, nc);
    }
    entries_free(&e);
    return rc;
}

/* ---- manifests ---------------------------------------------------------- */

typedef struct mline {
    char *path;
    char *label_name; /* NULL for an integer label */
    long label;
} mline;

static int parse_csv_line(char *line, mline *m)
{
    char *comma = strrchr(line, ',');
    if (comma == NULL)
        return -1;
    *comma = '\0';
    char *lab = comma + 1, *path = line;
    if (path[0] == '"') { /* a quoted path: "a,b.jpg" */
        size_t n = strlen(path);
        if (n < 2 || path[n - 1] != '"')
            return -1;
        path[n - 1] = '\0';
        path++;
    }
    char *end;
    m->path = xstrdup(path);
    long v = strtol(lab, &end, 10);
    if (*lab != '\0' && *end == '\0') {
        m->label = v;
        m->label_name = NULL;
    } else {
        m->label_name = xstrdup(lab);
    }
    return m->path[0] ? 0 : -1;
}

static int parse_json_line(const char *line, mline *m)
{
    json_error_t je;
    json_t *j = json_loads(line, 0, &je);
    const char *p = json_string_value(json_object_get(j, "path"));
    const json_t *l = json_object_get(j, "label");
    int rc = -1;
    if (p != NULL && p[0] && (json_is_integer(l) || json_is_string(l))) {
        m->path = xstrdup(p);
        m->label_name = json_is_string(l) ? xstrdup(json_string_value(l)) : NULL;
        m->label = json_is_integer(l) ? (long)json_integer_value(l) : 0;
        rc = 0;
    }
    json_decref(j);
    return rc;
}

static int cmp_name_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Assigns class indices: integers as they are, names by sorted order. */
static int assign_labels(imgindex *ix, mline *ml, size_t n, entries *e, const char *manifest,
                         errbuf *eb)
{
    assert(n > 0 && ml != NULL);
    int named = ml[0].label_name != NULL;
    for (size_t i = 0; i < n; i++)
        if ((ml[i].label_name != NULL) != named)
            return err_set(eb, ERR_FORMAT,
                           "%s: line %zu: labels must be all integers or all "
                           "class names",
                           manifest, i + 1);
    if (named) {
        char **names = xmallocarray(n, sizeof(char *));
        for (size_t i = 0; i < n; i++)
            names[i] = ml[i].label_name;
        qsort(names, n, sizeof *names, cmp_name_ptr);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (k == 0 || strcmp(names[k - 1], names[i]) != 0)
                names[k++] = names[i];
        if (k > IMGINDEX_MAX_CLASSES) {
            free(names);
            return err_set(eb, ERR_FORMAT, "%s: %zu classes (at most %d)", manifest, k,
                           IMGINDEX_MAX_CLASSES);
        }
        ix->num_classes = (int)k;
        ix->class_names = xmallocarray(k, sizeof(char *));
        for (size_t c = 0; c < k; c++)
            ix->class_names[c] = xstrdup(names[c]);
        for (size_t i = 0; i < n; i++) {
            char **hit = bsearch(&ml[i].label_name, names, k, sizeof *names, cmp_name_ptr);
            push(e, "", ml[i].path, 0, (int)(hit - names));
        }
        free(names);
        return 0;
    }
    long maxl = -1;
    for (size_t i = 0; i < n; i++) {
        if (ml[i].label < 0 || ml[i].label >= IMGINDEX_MAX_CLASSES)
            return err_set(eb, ERR_FORMAT, "%s: line %zu: label %ld is not in [0, %d)", manifest,
                           i + 1, ml[i].label, IMGINDEX_MAX_CLASSES);
        maxl = ml[i].label > maxl ? ml[i].label : maxl;
    }
    ix->num_classes = (int)maxl + 1;
    ix->class_names = xmallocarray((size_t)ix->num_classes, sizeof(char *));
    for (int c = 0; c < ix->num_classes; c++) {
        char b[16];
        snprintf(b, sizeof b, "%d", c);
        ix->class_names[c] = xstrdup(b);
    }
    for (size_t i = 0; i < n; i++)
        push(e, "", ml[i].path, 0, (int)ml[i].label);
    return 0;
}

int imgindex_load_manifest(imgindex *ix, const char *manifest, const char *root, errbuf *eb)
{
    memset(ix, 0, sizeof *ix);
    snprintf(ix->root, sizeof ix->root, "%s", root);
    FILE *f = fopen(manifest, "r");
    if (f == NULL)
        return err_set(eb, ERR_IO, "%s: %s", manifest, strerror(errno));
    const char *ext = strrchr(manifest, '.');
    int json = ext != NULL && (strcmp(ext, ".jsonl") == 0 || strcmp(ext, ".json") == 0);
    mline *ml = NULL;
    size_t n = 0, cap = 0, lineno = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (lineno == 1 && ext == NULL)
            json = line[0] == '{';
        if (!json && lineno == 1 && strcmp(line, "path,label") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            ml = xrealloc(ml, cap * sizeof *ml);
        }
        memset(&ml[n], 0, sizeof ml[n]);
        if ((json ? parse_json_line(line, &ml[n]) : parse_csv_line(line, &ml[n])) != 0) {
            rc = err_set(eb, ERR_FORMAT, "%s: line %zu: expected %s", manifest, lineno,
                         json ? "{\"path\": \"...\", \"label\": ...}" : "path,label");
            free(ml[n].path);
            free(ml[n].label_name);
            break;
        }
        if (strstr(ml[n].path, "..") != NULL || ml[n].path[0] == '/') {
            rc = err_set(eb, ERR_FORMAT,
                         "%s: line %zu: the path must be relative to the root "
                         "without ..",
                         manifest, lineno);
            n++;
            break;
        }
        n++;
    }
    free(line);
    fclose(f);
    if (rc == 0 && n == 0)
        rc = err_set(eb, ERR_FORMAT, "%s: no samples", manifest);
    entries e = {0};
    if (rc == 0)
        rc = assign_labels(ix, ml, n, &e, manifest, eb);
    /* Sizes make the fingerprint notice a changed file; a missing one is the
     * loader's bad-file business, as a corrupt one is. */
    for (size_t i = 0; rc == 0 && i < e.n; i++) {
        char p[IX_PATH_MAX];
        struct stat st;
        int fits = snprintf(p, sizeof p, "%s/%s", root, e.v[i].base) < (int)sizeof p;
        e.v[i].bytes = fits && stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
    }
    if (rc == 0)
        finish(ix, &e);
    entries_free(&e);
    for (size_t i = 0; i < n; i++) {
        free(ml[i].path);
        free(ml[i].label_name);
    }
    free(ml);
    if (rc != 0)
        imgindex_free(ix);
    return rc;
}

int imgindex_align(imgindex *ix, const imgindex *like, errbuf *eb)
{
    int *map = xmallocarray((size_t)ix->num_classes, sizeof(int));
    for (int c = 0; c < ix->num_classes; c++) {
        map[c] = -1;
        for (int k = 0; k < like->num_classes && map[c] < 0; k++)
            if (strcmp(ix->class_names[c], like->class_names[k]) == 0)
                map[c] = k;
        if (map[c] < 0) {
            int rc = err_set(eb, ERR_FORMAT,
                             "%s: class \"%s\" is not a class of the training "
                             "split (%s)",
                             ix->root, ix->class_names[c], like->root);
            free(map);
            return rc;
        }
    }
    for (int i = 0; i < ix->n; i++)
        ix->labels[i] = map[ix->labels[i]];
    for (int c = 0; c < ix->num_classes; c++)
        free(ix->class_names[c]);
    free(ix->class_names);
    ix->num_classes = like->num_classes;
    ix->class_names = xmallocarray((size_t)like->num_classes, sizeof(char *));
    for (int c = 0; c < like->num_classes; c++)
        ix->class_names[c] = xstrdup(like->class_names[c]);
    free(map);
    return 0;
}

const char *imgindex_name(const imgindex *ix, int i)
{
    return ix->names + ix->name_off[i];
}

int imgindex_path(const imgindex *ix, int i, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/%s", ix->root, imgindex_name(ix, i));
    return n < 0 || (size_t)n >= cap ? ERR_INVALID : 0;
}

void imgindex_free(imgindex *ix)
{
    if (ix->class_names != NULL)
        for (int c = 0; c < ix->num_classes; c++)
            free(ix->class_names[c]);
    free(ix->class_names);
    free(ix->names);
    free(ix->name_off);
    free(ix->labels);
    free(ix->bytes);
    memset(ix, 0, sizeof *ix);
}
