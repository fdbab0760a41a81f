/* pool.h - kiln-worker's pool mode: join a kiln-server and run its jobs.
 *
 * `mpirun -np N kiln-worker --connect tcp://HOST:PORT` starts N ranks; rank 0
 * holds the ZeroMQ link to the server (worker/link.c), receives assignments,
 * broadcasts each job spec (and the checkpoint to resume from) to the other
 * ranks, and every rank runs the job; metrics, logs, checkpoints and the
 * result flow back through rank 0's link.
 */
#ifndef KILN_WORKER_POOL_H
#define KILN_WORKER_POOL_H

#include "worker/dist.h"

/* Runs the pool until the server says goodbye or the process is signalled.
 * argv holds the --connect/--pool-id options. Returns the process exit code. */
int pool_main(int argc, char **argv, const dist_info *d);

#endif
