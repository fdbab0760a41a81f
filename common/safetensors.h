/* safetensors.h - reading and writing safetensors files (F32, F64, I64).
 *
 * Format: u64 little-endian header length N, N bytes of JSON header, data.
 * Each header key except __metadata__ names a tensor: {"dtype", "shape",
 * "data_offsets": [begin, end]} with offsets relative to the data start.
 * __metadata__ is a flat {string: string} object.
 *
 * The reader trusts nothing: the header length is bounded (ST_MAX_HEADER),
 * every shape is checked for overflow and absurd sizes, every offset pair
 * must lie inside the data, match prod(shape) * itemsize, and not overlap
 * another tensor. A bad file gives ERR_FORMAT (or ERR_IO) with a message
 * naming the tensor and the problem; it never reads out of bounds.
 *
 * st_file owns its bytes (a private read-only mmap, or a copy of a memory
 * buffer); every pointer it hands out is valid until st_close. The writer
 * copies what it is given. Neither is thread-safe per object.
 */
#ifndef KILN_SAFETENSORS_H
#define KILN_SAFETENSORS_H

#include "common/err.h"

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_HEADER (64u << 20) /* bytes of JSON header accepted */
#define ST_MAX_DIMS   8

typedef enum { ST_F32 = 0, ST_F64 = 1, ST_I64 = 2 } st_dtype;

typedef struct st_tensor {
    const char *name; /* borrowed from the st_file */
    st_dtype dtype;
    int ndim; /* 0 for a scalar */
    int64_t shape[ST_MAX_DIMS];
    size_t numel; /* prod(shape); 1 for a scalar */
    size_t nbytes;
    const void *data; /* may be unaligned for files opened from memory: copy with memcpy */
} st_tensor;

typedef struct st_file st_file;

/* Opens and validates a file. On success *out owns it; free with st_close. */
int st_open(st_file **out, const char *path, errbuf *eb);

/* Validates a file image held in memory; the bytes are copied. */
int st_open_memory(st_file **out, const void *buf, size_t len, errbuf *eb);

void st_close(st_file *f); /* NULL is a no-op */

/* Tensors in header order. */
int st_count(const st_file *f);
const st_tensor *st_get(const st_file *f, int i);

/* The tensor named `name`, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);

/* __metadata__ access: value for key or NULL; and iteration in file order. */
const char *st_meta(const st_file *f, const char *key);
int st_meta_count(const st_file *f);
const char *st_meta_key(const st_file *f, int i);

/* Copies tensor `name` into dst as float32 (F64 is converted), checking
 * that it exists and has exactly `numel` elements. ERR_NOT_FOUND or
 * ERR_FORMAT with the tensor named otherwise. */
int st_read_f32(const st_file *f, const char *name, float *dst, size_t numel, errbuf *eb);

/* Same for integers (I64 tensors), into int64. */
int st_read_i64(const st_file *f, const char *name, int64_t *dst, size_t numel, errbuf *eb);

/* Writer: collects tensors and metadata, then writes the file in one go. */
typedef struct st_writer st_writer;

st_writer *st_writer_new(void);
void st_writer_free(st_writer *w); /* NULL is a no-op */

/* Adds metadata key/value (both copied). A repeated key replaces the value. */
void st_writer_meta(st_writer *w, const char *key, const char *value);

/* Adds a tensor; name, shape and data are copied. Tensors are written in the
 * order added. Returns ERR_EXISTS for a repeated name, ERR_INVALID for a bad
 * name or shape. */
int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
                  const void *data);

/* Convenience for float32 data with an int shape. */
int st_writer_add_f32(st_writer *w, const char *name, int ndim, const int *shape,
                      const float *data);

/* Writes to path atomically: a temporary file in the same folder, fsync,
 * rename, fsync of the folder. */
int st_writer_save(const st_writer *w, const char *path, errbuf *eb);

/* Serialises into a new malloc'd buffer (*buf, *len), for sending. */
int st_writer_to_memory(const st_writer *w, void **buf, size_t *len);

#endif
