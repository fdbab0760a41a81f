/* files.h - files and folders, once for the server, the worker and the CLI.
 *
 * Crash-safe writes: a file is written to a temporary name in the same
 * folder, fsync'd, renamed into place, and the folder fsync'd, so that after
 * a crash it is either complete or absent (what the store references, what a
 * job writes as its report). Also: mkdir -p, reading a whole file, removing
 * a tree, sweeping temporaries a killed process left, and a disk check.
 * Paths are plain strings; no dependency beyond libc. Thread-safe (no
 * shared state).
 */
#ifndef KILN_FILES_H
#define KILN_FILES_H

#include "common/err.h"

#include <stddef.h>
#include <stdio.h>

/* The longest file path kiln builds (Linux's PATH_MAX): path buffers are this
 * long, and a path that would not fit is an error naming it, never cut. */
#define KILN_PATH_MAX 4096

/* files_pathf formats a path into out (KILN_PATH_MAX bytes): 0, or
 * ERR_INVALID when it would not fit (out then holds the cut path, and eb, if
 * not NULL, says which path was too long). */
int files_pathf(char *out, errbuf *eb, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* files_mkdirs creates path and its missing parents (mode 0755). */
int files_mkdirs(const char *path, errbuf *eb);

/* files_write_atomic writes len bytes to path (parents created) as
 * described above. Returns 0 or ERR_IO naming the path. */
int files_write_atomic(const char *path, const void *data, size_t len, errbuf *eb);

/* A file written in pieces, crash-safe as files_write_atomic: open creates
 * "<path>.tmp.<pid>.<n>" (and path's missing parents) and gives its FILE in
 * f; the caller writes through f; commit flushes, fsyncs, renames the file
 * into place and fsyncs the folder; abort closes and removes it. Every
 * opened stream ends in exactly one of the two. Returns 0 or ERR_IO /
 * ERR_INVALID (a path too long) naming the file. */
typedef struct files_stream {
    FILE *f;
    char path[KILN_PATH_MAX];
    char tmp[KILN_PATH_MAX + 32];
} files_stream;
int files_stream_open(files_stream *s, const char *path, errbuf *eb);
int files_stream_commit(files_stream *s, errbuf *eb);
void files_stream_abort(files_stream *s);

/* files_read reads a whole file into a malloc'd buffer, with a NUL after its
 * len bytes (so text files are C strings). ERR_IO/ERR_NOT_FOUND. */
int files_read(const char *path, void **data, size_t *len, errbuf *eb);

/* files_remove_tree removes path and everything below it; a missing path is
 * not an error. Returns 0 or ERR_IO. */
int files_remove_tree(const char *path, errbuf *eb);

/* files_sweep_tmp removes, anywhere below dir, the temporary files
 * files_write_atomic leaves when the process dies between writing and
 * renaming ("<name>.tmp.<pid>.<n>"). For the server's start, before anything
 * writes. Returns how many it removed. */
int files_sweep_tmp(const char *dir);

/* files_disk_check: 0 when dir's file system has at least min_free bytes
 * free and a small file can be written there (created, fsync'd, renamed,
 * removed); else ERR_IO saying which, with the free space. */
int files_disk_check(const char *dir, double min_free, errbuf *eb);

#endif
