/* dist.c - MPI process group for data-parallel jobs (see dist.h).
 *
 * The only file of kiln that includes mpi.h. Open MPI 4.1 is MPI 3.1: counts
 * are int, so every buffer is moved in chunks of at most INT_MAX elements.
 */
#include "worker/dist.h"

#include "common/err.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "worker/nn/gemm.h"
#include "worker/nn/isa.h"

#include <limits.h>
#include <mpi.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int use_mpi;
/* The group the collectives run over: MPI_COMM_WORLD, or a job's split of it
 * (dist_group_begin); my_rank and my_world are this rank's place in it. */
static MPI_Comm group_comm;
static int my_rank, my_world = 1;
static int world_rank, world_size = 1;
static MPI_Comm ctl_comm; /* the pool's point-to-point control messages */
static size_t max_chunk = INT_MAX;
static volatile sig_atomic_t stop_requested;

#define MPI_CHECK(call)                                                                            \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != MPI_SUCCESS)                                                                    \
            mpi_fail(#call, rc_, __FILE__, __LINE__);                                              \
    } while (0)

static void mpi_fail(const char *what, int rc, const char *file, int line)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    log_error("rank %d: %s failed at %s:%d: %s; aborting the job", my_rank, what, file, line, text);
    MPI_Abort(MPI_COMM_WORLD, 70);
    abort();
}

static int launched_by_mpirun(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL ||
           getenv("PMIX_RANK") != NULL;
}

int dist_init(int *argc, char ***argv, dist_info *info)
{
    memset(info, 0, sizeof *info);
    info->world = 1;
    info->local_size = 1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    info->cores = cores > 0 ? (int)cores : 1;
    gethostname(info->host, sizeof info->host - 1);
    if (launched_by_mpirun()) {
        /* Open MPI starts helper threads in MPI_Init; were the stop signals open in
         * them, a SIGTERM sent to this process could land there and end it at once. */
        sigset_t stops, old;
        sigemptyset(&stops);
        sigaddset(&stops, SIGINT);
        sigaddset(&stops, SIGTERM);
        sigaddset(&stops, SIGUSR1);
        sigaddset(&stops, SIGUSR2);
        pthread_sigmask(SIG_BLOCK, &stops, &old);
        int provided;
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != MPI_SUCCESS)
            return ERR_INTERNAL;
        use_mpi = 1;
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &my_rank));
        MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &my_world));
        world_rank = my_rank;
        world_size = my_world;
        group_comm = MPI_COMM_WORLD;
        MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &ctl_comm));
        MPI_Comm_set_errhandler(ctl_comm, MPI_ERRORS_RETURN);
        MPI_Comm local;
        MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, my_rank, MPI_INFO_NULL,
                                      &local));
        MPI_CHECK(MPI_Comm_rank(local, &info->local_rank));
        MPI_CHECK(MPI_Comm_size(local, &info->local_size));
        MPI_Comm_free(&local);
        info->rank = my_rank;
        info->world = my_world;
        /* Every rank must run the same kernel path: the optimizer step runs on each
         * rank, and its rounding must not differ, or the weights drift apart. On hosts
         * of mixed CPUs the lowest path common to all wins. */
        int isa = (int)nn_isa_current(), common = isa;
        MPI_CHECK(MPI_Allreduce(&isa, &common, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
        if (common != isa) {
            nn_isa_select((nn_isa)common);
            log_info("rank %d on %s: kernels lowered from %s to %s, the path every rank can run",
                     my_rank, info->host, nn_isa_name((nn_isa)isa), nn_isa_name((nn_isa)common));
        }
    }
    int threads = info->cores / info->local_size;
    if (threads < 1)
        threads = 1;
    const char *env = getenv("KILN_THREADS");
    if (env != NULL && atoi(env) > 0)
        threads = atoi(env);
    info->threads = threads;
    nn_set_threads(threads);
    return 0;
}

const dist_info *dist_single(void)
{
    static const dist_info one = {.rank = 0,
                                  .world = 1,
                                  .local_rank = 0,
                                  .local_size = 1,
                                  .cores = 1,
                                  .threads = 1,
                                  .host = "localhost"};
    return &one;
}

void dist_finalize(void)
{
    if (use_mpi) {
        MPI_Comm_free(&ctl_comm);
        MPI_Finalize();
    }
    use_mpi = 0;
}

void dist_abort(int code)
{
    if (use_mpi)
        MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

int dist_rank(void)
{
    return my_rank;
}

int dist_world(void)
{
    return my_world;
}

void dist_set_max_chunk(size_t elements)
{
    max_chunk = elements > 0 && elements <= INT_MAX ? elements : INT_MAX;
}

void dist_bcast(void *buf, size_t bytes, int root)
{
    if (!use_mpi || my_world == 1)
        return;
    unsigned char *p = buf;
    while (bytes > 0) {
        size_t n = bytes < max_chunk ? bytes : max_chunk;
        MPI_CHECK(MPI_Bcast(p, (int)n, MPI_BYTE, root, group_comm));
        p += n;
        bytes -= n;
    }
}

void dist_allgather(const void *mine, void *out, size_t bytes)
{
    if (!use_mpi || my_world == 1) {
        memcpy(out, mine, bytes);
        return;
    }
    if (bytes > (size_t)INT_MAX) {
        log_error("dist_allgather: %zu bytes per rank is too many", bytes);
        MPI_Abort(MPI_COMM_WORLD, 70);
    }
    MPI_CHECK(MPI_Allgather(mine, (int)bytes, MPI_BYTE, out, (int)bytes, MPI_BYTE, group_comm));
}

void dist_bcast_blob(void **buf, size_t *len, int root)
{
    if (!use_mpi || my_world == 1)
        return;
    uint64_t n = my_rank == root ? (uint64_t)*len : 0;
    dist_bcast(&n, sizeof n, root);
    if (my_rank != root) {
        *buf = xmalloc((size_t)n + 1);
        *len = (size_t)n;
    }
    dist_bcast(*buf, (size_t)n, root);
}

static void allreduce(void *buf, size_t n, size_t size, MPI_Datatype type)
{
    if (!use_mpi || my_world == 1)
        return;
    unsigned char *p = buf;
    while (n > 0) {
        size_t k = n < max_chunk ? n : max_chunk;
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p, (int)k, type, MPI_SUM, group_comm));
        p += k * size;
        n -= k;
    }
}

void dist_allreduce_sum_f32(float *buf, size_t n)
{
    allreduce(buf, n, sizeof(float), MPI_FLOAT);
}

void dist_allreduce_sum_f64(double *buf, size_t n)
{
    allreduce(buf, n, sizeof(double), MPI_DOUBLE);
}

void dist_allreduce_mean_f32(float *buf, size_t n)
{
    if (!use_mpi || my_world == 1)
        return;
    dist_allreduce_sum_f32(buf, n);
    float s = 1.0f / (float)my_world;
    for (size_t i = 0; i < n; i++)
        buf[i] *= s;
}

int dist_any(int flag)
{
    if (!use_mpi || my_world == 1)
        return flag != 0;
    int v = flag != 0, out = 0;
    MPI_CHECK(MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_LOR, group_comm));
    return out;
}

void dist_stop_request(void)
{
    stop_requested = 1;
}

int dist_stop_requested(void)
{
    return stop_requested != 0;
}

int dist_any_stop(int flag)
{
    return dist_any(flag != 0 || stop_requested != 0);
}

void dist_barrier(void)
{
    if (use_mpi && my_world > 1)
        MPI_CHECK(MPI_Barrier(group_comm));
}

/* ---- a job's split of the pool, and the pool's control messages ------------------ */

int dist_world_rank(void)
{
    return world_rank;
}

int dist_group_begin(const dist_info *pool, const int *members, int n, int tag, dist_info *job)
{
    *job = *pool;
    if (!use_mpi || n == world_size) {
        job->rank = world_rank;
        job->world = world_size;
        return 0;
    }
    MPI_Group all, part;
    MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &all));
    MPI_CHECK(MPI_Group_incl(all, n, members, &part));
    MPI_Comm c = MPI_COMM_NULL;
    int rc = MPI_Comm_create_group(MPI_COMM_WORLD, part, tag, &c);
    MPI_Group_free(&part);
    MPI_Group_free(&all);
    if (rc != MPI_SUCCESS || c == MPI_COMM_NULL) {
        log_error("rank %d: cannot make the communicator of a job's %d ranks", world_rank, n);
        return ERR_INTERNAL;
    }
    MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN);
    group_comm = c;
    MPI_CHECK(MPI_Comm_rank(c, &my_rank));
    MPI_CHECK(MPI_Comm_size(c, &my_world));
    job->rank = my_rank;
    job->world = my_world;
    return 0;
}

void dist_group_end(void)
{
    if (use_mpi && group_comm != MPI_COMM_WORLD)
        MPI_Comm_free(&group_comm);
    group_comm = MPI_COMM_WORLD;
    my_rank = world_rank;
    my_world = world_size;
}

#define CTL_TAG 7

void dist_ctl_send(int dest, const void *buf, size_t len)
{
    if (!use_mpi)
        return;
    uint64_t n = (uint64_t)len;
    MPI_CHECK(MPI_Send(&n, 1, MPI_UINT64_T, dest, CTL_TAG, ctl_comm));
    const unsigned char *p = buf;
    while (len > 0) {
        size_t k = len < max_chunk ? len : max_chunk;
        MPI_CHECK(MPI_Send(p, (int)k, MPI_BYTE, dest, CTL_TAG, ctl_comm));
        p += k;
        len -= k;
    }
}

int dist_ctl_poll(int *src)
{
    if (!use_mpi)
        return 0;
    int flag = 0;
    MPI_Status st;
    MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, CTL_TAG, ctl_comm, &flag, &st));
    if (flag)
        *src = st.MPI_SOURCE;
    return flag;
}

void *dist_ctl_recv(int src, size_t *len)
{
    uint64_t n = 0;
    MPI_CHECK(MPI_Recv(&n, 1, MPI_UINT64_T, src, CTL_TAG, ctl_comm, MPI_STATUS_IGNORE));
    unsigned char *buf = xmalloc((size_t)n + 1), *p = buf;
    size_t left = (size_t)n;
    while (left > 0) {
        size_t k = left < max_chunk ? left : max_chunk;
        MPI_CHECK(MPI_Recv(p, (int)k, MPI_BYTE, src, CTL_TAG, ctl_comm, MPI_STATUS_IGNORE));
        p += k;
        left -= k;
    }
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}
