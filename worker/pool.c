/* pool.c - pool mode (see pool.h). Lands with the ZeroMQ link (worker/link.c). */
#include "worker/pool.h"

#include <stdio.h>

int pool_main(int argc, char **argv, const dist_info *d)
{
    (void)argc;
    (void)argv;
    (void)d;
    fprintf(stderr, "kiln-worker: pool mode is not in this build yet\n");
    return 2;
}
