/* pbwrite.c - the protocol-buffers wire-format writer (see pbwrite.h). */
#include "common/pbwrite.h"

#include "common/xalloc.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

enum { WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

void pb_init(pb_buf *b)
{
    memset(b, 0, sizeof *b);
}

void pb_free(pb_buf *b)
{
    free(b->data);
    pb_init(b);
}

/* Makes room for n more bytes. */
static unsigned char *reserve(pb_buf *b, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    return b->data + b->len;
}

static void put_varint(pb_buf *b, uint64_t v)
{
    unsigned char *p = reserve(b, 10);
    size_t i = 0;
    while (v >= 0x80) {
        p[i++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[i++] = (unsigned char)v;
    b->len += i;
}

static void put_tag(pb_buf *b, int field, int wire)
{
    assert(field >= 1);
    put_varint(b, ((uint64_t)field << 3) | (uint64_t)wire);
}

static void put_le(pb_buf *b, uint64_t v, int nbytes)
{
    unsigned char *p = reserve(b, (size_t)nbytes);
    for (int i = 0; i < nbytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
    b->len += (size_t)nbytes;
}

void pb_uint(pb_buf *b, int field, uint64_t v)
{
    put_tag(b, field, WIRE_VARINT);
    put_varint(b, v);
}

void pb_int(pb_buf *b, int field, int64_t v)
{
    pb_uint(b, field, (uint64_t)v);
}

void pb_float(pb_buf *b, int field, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_tag(b, field, WIRE_FIXED32);
    put_le(b, bits, 4);
}

void pb_bytes(pb_buf *b, int field, const void *data, size_t n)
{
    put_tag(b, field, WIRE_LEN);
    put_varint(b, n);
    if (n > 0) {
        memcpy(reserve(b, n), data, n);
        b->len += n;
    }
}

void pb_string(pb_buf *b, int field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

void pb_message(pb_buf *b, int field, const pb_buf *sub)
{
    pb_bytes(b, field, sub->data, sub->len);
}

void pb_floats_raw(pb_buf *b, int field, const float *v, size_t n)
{
    put_tag(b, field, WIRE_LEN);
    put_varint(b, 4 * n);
    reserve(b, 4 * n);
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], sizeof bits);
        put_le(b, bits, 4);
    }
}

void pb_int64s_raw(pb_buf *b, int field, const int64_t *v, size_t n)
{
    put_tag(b, field, WIRE_LEN);
    put_varint(b, 8 * n);
    reserve(b, 8 * n);
    for (size_t i = 0; i < n; i++)
        put_le(b, (uint64_t)v[i], 8);
}
