/* pbwrite.h - a protocol-buffers wire-format writer (encoding only).
 *
 * Writes the fields of one message into a growing byte buffer, in the order
 * called: varints (wire type 0), 32-bit floats (wire type 5) and
 * length-delimited bytes, strings and sub-messages (wire type 2). A nested
 * message is written into its own pb_buf first and then appended with
 * pb_message, which prefixes its length. Repeated fields are written one
 * element at a time (unpacked), which every proto2 and proto3 parser
 * accepts. Enough for onnx.proto (worker/export/onnx_proto.h); no schema,
 * no reflection, no decoding. Allocation aborts on out-of-memory (xalloc.h).
 * Pure; a pb_buf is not thread-safe.
 */
#ifndef KILN_COMMON_PBWRITE_H
#define KILN_COMMON_PBWRITE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pb_buf {
    unsigned char *data;
    size_t len, cap;
} pb_buf;

/* An empty buffer (no allocation until the first write). */
void pb_init(pb_buf *b);

/* Frees the bytes; leaves b empty and reusable. */
void pb_free(pb_buf *b);

/* Field `field` (>= 1) as a varint: uint64, and int32/int64/enum values
 * (negative ones as their 64-bit two's complement, ten bytes, as protobuf
 * encodes int32 and int64). */
void pb_uint(pb_buf *b, int field, uint64_t v);
void pb_int(pb_buf *b, int field, int64_t v);

/* Field `field` as a 32-bit little-endian IEEE float (protobuf `float`). */
void pb_float(pb_buf *b, int field, float v);

/* Field `field` as length-delimited bytes (`bytes`), the NUL-terminated
 * text s (`string`), or the already encoded message sub. */
void pb_bytes(pb_buf *b, int field, const void *data, size_t n);
void pb_string(pb_buf *b, int field, const char *s);
void pb_message(pb_buf *b, int field, const pb_buf *sub);

/* Field `field` as length-delimited bytes holding n floats, each 4 bytes
 * little-endian whatever the host's byte order (ONNX's raw_data). */
void pb_floats_raw(pb_buf *b, int field, const float *v, size_t n);

/* Field `field` as length-delimited bytes holding n int64 values, each 8
 * bytes little-endian two's complement (ONNX's raw_data of INT64). */
void pb_int64s_raw(pb_buf *b, int field, const int64_t *v, size_t n);

#endif
