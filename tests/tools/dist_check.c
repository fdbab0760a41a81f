/* dist_check.c - collectives of worker/dist.c under mpirun (a test tool).
 *
 * Run with 2+ ranks. Lowers the chunk size so that every collective is cut
 * into many pieces, then checks allreduce sums and means, broadcasts of
 * bytes and blobs, and dist_any, against values computed locally.
 * Prints one line and exits 0 on success, 1 on a mismatch.
 */
#include "common/xalloc.h"
#include "worker/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    dist_info d;
    if (dist_init(&argc, &argv, &d) != 0)
        return 1;
    int bad = 0, W = d.world, r = d.rank;
    dist_set_max_chunk(7); /* odd, so that chunks never line up with the buffer */
    size_t n = 1000;
    float *f = xmallocarray(n, sizeof(float));
    double *g = xmallocarray(n, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)(r + 1) * (float)i;
        g[i] = (double)(r + 1) * 0.5 * (double)i;
    }
    dist_allreduce_sum_f32(f, n);
    dist_allreduce_sum_f64(g, n);
    double tri = (double)W * (W + 1) / 2; /* sum of (r + 1) over ranks */
    for (size_t i = 0; i < n; i++) {
        bad |= f[i] != (float)(tri * (double)i);
        bad |= g[i] != tri * 0.5 * (double)i;
    }
    for (size_t i = 0; i < n; i++)
        f[i] = (float)r;
    dist_allreduce_mean_f32(f, n);
    for (size_t i = 0; i < n; i++)
        bad |= f[i] != (float)(W - 1) / 2.0f;
    char bytes[100];
    for (int i = 0; i < 100; i++)
        bytes[i] = (char)(r == 0 ? i : -1);
    dist_bcast(bytes, sizeof bytes, 0);
    for (int i = 0; i < 100; i++)
        bad |= bytes[i] != (char)i;
    void *blob = NULL;
    size_t len = 0;
    if (r == 0) {
        blob = xstrdup("a job spec travels to every rank, in pieces of seven bytes");
        len = strlen(blob) + 1;
    }
    dist_bcast_blob(&blob, &len, 0);
    bad |= strcmp(blob, "a job spec travels to every rank, in pieces of seven bytes") != 0;
    bad |= dist_any(r == W - 1) != 1;
    bad |= dist_any(0) != 0;
    int any_bad = dist_any(bad);
    if (r == 0)
        printf("dist_check: %d ranks, chunked collectives %s\n", W, any_bad ? "FAILED" : "ok");
    free(f);
    free(g);
    free(blob);
    dist_finalize();
    return any_bad;
}
