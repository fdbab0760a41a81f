/* embed.c - lookup in the table of compiled-in files (see embed.h).
 *
 * The table itself is generated (server/embed.sh); this file only searches
 * it. No state, thread-safe. Depends on nothing but libc.
 */
#include "server/embed.h"

#include <string.h>

const embed_file *embed_find(const embed_file *files, size_t n, const char *path)
{
    for (size_t i = 0; files != NULL && i < n; i++)
        if (strcmp(files[i].path, path) == 0)
            return &files[i];
    return NULL;
}
