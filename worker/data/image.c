/* image.c - the reusable 8-bit image buffer (see image.h).
 * Depends on libc and common/xalloc; not shared between threads.
 */
#include "worker/data/image.h"

#include "common/xalloc.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void image_resize_buffer(image *im, int h, int w, int c)
{
    assert(h >= 1 && w >= 1 && c >= 1);
    size_t need = (size_t)h * (size_t)w * (size_t)c;
    if (need > im->cap) {
        free(im->px);
        im->px = xmalloc(need);
        im->cap = need;
    }
    im->h = h;
    im->w = w;
    im->c = c;
}

void image_free(image *im)
{
    free(im->px);
    memset(im, 0, sizeof *im);
}
