/* dist.h - the process group of a data-parallel job (the only MPI user).
 *
 * Under mpirun every rank calls dist_init; run standalone (no mpirun in the
 * environment) the group is a single rank and nothing touches MPI, so
 * `kiln-worker run` works on a machine without a launcher. MPI runs with
 * MPI_ERRORS_RETURN; a failed collective logs the error and aborts the whole
 * job (MPI_Abort), so a dead rank ends the attempt instead of hanging it.
 * Collectives must be called by every rank in the same order; the functions
 * are not thread-safe (call them from the training thread only).
 */
#ifndef KILN_WORKER_DIST_H
#define KILN_WORKER_DIST_H

#include <stddef.h>

typedef struct dist_info {
    int rank, world;            /* this rank, number of ranks */
    int local_rank, local_size; /* position and count on this host */
    int cores;                  /* online CPUs of this host */
    int threads;                /* BLAS/OpenMP threads for this rank: cores / local_size */
    char host[64];
} dist_info;

/* Starts MPI if launched by mpirun (else a 1-rank group), fills *info and
 * sets this rank's thread count (cores on the host / ranks on the host,
 * at least 1; overridden by KILN_THREADS). The helper threads that MPI starts
 * here block SIGINT, SIGTERM, SIGUSR1 and SIGUSR2, so that these signals reach
 * the program's own threads (pool mode takes them with sigwait); the caller's
 * mask is as it was on return. Returns 0 or a negative ERR_*. */
int dist_init(int *argc, char ***argv, dist_info *info);

/* A one-rank group (world 1, one thread per core), for code given no dist_info. */
const dist_info *dist_single(void);

/* Ends MPI cleanly (a no-op for a 1-rank group). */
void dist_finalize(void);

/* Aborts every rank of the job with `code` (exit() for a 1-rank group). */
void dist_abort(int code) __attribute__((noreturn));

int dist_rank(void);
int dist_world(void);

/* Broadcasts `bytes` bytes from rank `root` (chunked above INT_MAX). */
void dist_bcast(void *buf, size_t bytes, int root);

/* Broadcasts a malloc'd byte string of any length from root: on root *buf and
 * *len are inputs; elsewhere they receive a new malloc'd copy. */
void dist_bcast_blob(void **buf, size_t *len, int root);

/* Gathers `bytes` bytes from every rank into out (world * bytes, rank order). */
void dist_allgather(const void *mine, void *out, size_t bytes);

/* In-place elementwise sum over all ranks (chunked above INT_MAX elements). */
void dist_allreduce_sum_f32(float *buf, size_t n);
void dist_allreduce_sum_f64(double *buf, size_t n);

/* In-place elementwise mean over all ranks. */
void dist_allreduce_mean_f32(float *buf, size_t n);

/* Logical OR of a flag over all ranks. */
int dist_any(int flag);

/* A stop request of this process (a pool asked to leave by a signal). Setting it is
 * async-signal-safe and thread-safe; it is never cleared. */
void dist_stop_request(void);
int dist_stop_requested(void);

/* The per-step stop check of a job: the OR over all ranks of `flag` and of each rank's
 * stop request, so that a stop asked of any one rank (say, the container of a remote
 * rank) stops every rank at the same step. One collective; every rank must call it. */
int dist_any_stop(int flag);

void dist_barrier(void);

/* ---- a pool's world split between jobs (worker/pool.c) ----------------------------
 *
 * A pool of N ranks runs several jobs at once, each on some of its ranks. The
 * collectives above then run over the job's ranks only: dist_group_begin,
 * called by exactly the members (world ranks, ascending; the first is the job's
 * rank 0) with the same tag, makes them the group until dist_group_end. The
 * control messages below go between world ranks, beside whatever the groups do. */

/* This process's rank in the whole pool (MPI_COMM_WORLD). */
int dist_world_rank(void);

/* Fills *job as *pool with rank and world those of the group of `members` (n world
 * ranks) and makes it the group of every collective. Collective over the members
 * only. 0, or ERR_INTERNAL (logged). */
int dist_group_begin(const dist_info *pool, const int *members, int n, int tag, dist_info *job);

/* Back to the whole pool as the group (frees the job's communicator). */
void dist_group_end(void);

/* Sends len bytes to world rank dest (blocking until MPI has them; large ones wait
 * for the receiver). A no-op without MPI. */
void dist_ctl_send(int dest, const void *buf, size_t len);

/* 1 and *src when a control message waits, else 0 (never blocks). */
int dist_ctl_poll(int *src);

/* The next control message from world rank src (waits for it): a malloc'd copy,
 * NUL-terminated after *len bytes. */
void *dist_ctl_recv(int src, size_t *len);

/* Largest chunk (elements) one MPI call carries; tests lower it to exercise chunking. */
void dist_set_max_chunk(size_t elements);

#endif
