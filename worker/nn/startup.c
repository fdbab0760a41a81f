/* startup.c - the engine's start-up: kernel path, libgomp spin, OpenBLAS core (startup.h).
 *
 * Runs as a constructor, before main, because libgomp and OpenBLAS read their
 * environment when they load: the only way to change it is to set the variables and
 * re-execute the program, once. Owns the start-up summary string. Depends on libc,
 * OpenMP and CBLAS (OpenBLAS's own entry points for the core name); on isa.h for the
 * kernel path. Not thread-safe: it runs before any thread exists.
 */
#include "worker/nn/startup.h"

#include "worker/nn/isa.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How often the process re-executed itself, so that it never loops. */
#define STARTUP_REEXEC_ENV "KILN_STARTUP_REEXEC"
#define STARTUP_MAX_REEXEC 4
/* The core before kiln changed it (OpenBLAS's choice, or "the user's"), carried across
 * the re-exec for the summary. */
#define STARTUP_DETECTED_ENV "KILN_BLAS_DETECTED"
/* Cores that failed the self-check, comma-separated, carried across re-execs. */
#define STARTUP_FAILED_ENV "KILN_BLAS_FAILED"
/* Test hook: the cores listed here (comma-separated) fail the self-check as if their
 * sgemm were wrong, so that the fallback can be tested on any machine. */
#define STARTUP_FAKE_FAIL_ENV "KILN_BLAS_SELFTEST_FAIL"

static char startup_summary[512] = "engine start-up has not run";

/* OpenBLAS x86-64 cores by the widest vector kernels they use: 2 = AVX-512, 1 = AVX2 +
 * FMA, 0 = anything older (generic SSE code, Sandybridge's AVX, the AMD FMA4 cores). */
static int core_level(const char *core)
{
    static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    static const char *const avx2[] = {"Haswell", "Zen"};
    for (size_t i = 0; i < sizeof avx512 / sizeof avx512[0]; i++)
        if (strcmp(core, avx512[i]) == 0)
            return 2;
    for (size_t i = 0; i < sizeof avx2 / sizeof avx2[0]; i++)
        if (strcmp(core, avx2[i]) == 0)
            return 1;
    return 0;
}

/* The core that matches kernel path isa, and the one below it (the self-check's
 * fallback chain ends at Prescott, OpenBLAS's plain SSE3 core). */
static const char *core_for_level(int level)
{
    return level >= 2 ? "SkylakeX" : level == 1 ? "Haswell" : "Prescott";
}

static int isa_level(nn_isa isa)
{
    return isa == NN_ISA_AVX512 ? 2 : isa == NN_ISA_AVX2 ? 1 : 0;
}

const char *nn_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c != NULL ? c : "unknown";
}

/* A deterministic fill in [-1, 1) with no zeros, so that every product term counts. */
static void check_fill(float *x, int n, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f + 1.0f / 65536.0f;
    }
}

/* C (M, N) = op(A) op(B) by cblas_sgemm against the same product in double, relative
 * to the sum of |a||b| of each element; 1 if every element agrees within 1e-5. */
static int check_shape(int M, int N, int K, int ta, int tb, unsigned seed)
{
    size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
    float *a = malloc(na * sizeof(float)), *b = malloc(nb * sizeof(float));
    float *c = malloc(nc * sizeof(float));
    if (a == NULL || b == NULL || c == NULL) {
        free(a), free(b), free(c);
        return 1; /* cannot check; the allocation failure will show elsewhere */
    }
    check_fill(a, (int)na, seed);
    check_fill(b, (int)nb, seed * 7u + 1u);
    int lda = ta ? M : K, ldb = tb ? K : N;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
    int ok = 1;
    for (int i = 0; i < M && ok; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0, mag = 0.0;
            for (int k = 0; k < K; k++) {
                double x = ta ? a[(size_t)k * lda + i] : a[(size_t)i * lda + k];
                double y = tb ? b[(size_t)j * ldb + k] : b[(size_t)k * ldb + j];
                s += x * y;
                mag += fabs(x * y);
            }
            if (!(fabs(s - (double)c[(size_t)i * N + j]) <= 1e-5 * mag + 1e-30)) {
                ok = 0;
                break;
            }
        }
    free(a), free(b), free(c);
    return ok;
}

/* Whether core is listed in the comma-separated list. */
static int core_listed(const char *list, const char *core)
{
    size_t n = strlen(core);
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, core, n) == 0)
            return 1;
        p = e != NULL ? e + 1 : NULL;
    }
    return 0;
}

int nn_blas_self_check(void)
{
    const char *fake = getenv(STARTUP_FAKE_FAIL_ENV);
    if (fake != NULL && core_listed(fake, nn_blas_core()))
        return 0;
    /* One thread: a fork after OpenMP's pool exists makes libgomp hang in the child
     * (the test runner forks), and these sizes are too small to thread anyway. */
    int omp_threads = omp_get_max_threads(), blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    /* Odd sizes reach the kernels' edge cases; 64 x 48 x 96 their full tiles. */
    static const int shapes[][5] = {
        {64, 48, 96, 0, 0}, {37, 29, 53, 0, 1}, {31, 45, 17, 1, 0},
        {5, 67, 33, 1, 1},  {1, 19, 130, 0, 0}, {130, 1, 7, 0, 1},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0] && ok; i++)
        ok = check_shape(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], shapes[i][4],
                         (unsigned)i + 11u);
    openblas_set_num_threads(blas_threads);
    omp_set_num_threads(omp_threads);
    return ok;
}

const char *nn_startup_summary(void)
{
    return startup_summary;
}

/* Re-executes this program with the environment as now set. Returns only if that is
 * impossible (no /proc) or was done STARTUP_MAX_REEXEC times already (a BLAS that
 * ignores OPENBLAS_CORETYPE must not make the program loop). */
static void reexec(char **argv)
{
    const char *n = getenv(STARTUP_REEXEC_ENV);
    int count = n != NULL ? atoi(n) : 0;
    char buf[16];
    if (argv == NULL || count >= STARTUP_MAX_REEXEC)
        return;
    snprintf(buf, sizeof buf, "%d", count + 1);
    if (setenv(STARTUP_REEXEC_ENV, buf, 1) != 0)
        return;
    execv("/proc/self/exe", argv);
}

const char *nn_blas_wanted_core(nn_isa isa, const char *core, int forced)
{
    int want = isa_level(isa), now = core_level(core);
    if (now == want)
        return NULL;
    /* Above the path only matters when the path was forced (a test of an older CPU);
     * otherwise OpenBLAS knows better what runs well here. */
    if (now > want && !forced)
        return NULL;
    return core_for_level(want);
}

/* The fallback after core failed the self-check: the next lower level's core that
 * has not failed yet, or NULL when none is left. */
static const char *fallback_core(const char *core, const char *failed)
{
    for (int level = core_level(core) - (strcmp(core, "Prescott") == 0 ? 1 : 0); level >= 0;
         level--) {
        const char *c = core_for_level(level);
        if (strcmp(c, core) != 0 && !core_listed(failed, c))
            return c;
    }
    return NULL;
}

static void set_failed(const char *core)
{
    char list[256];
    const char *old = getenv(STARTUP_FAILED_ENV);
    snprintf(list, sizeof list, "%s%s%s", old != NULL ? old : "", old != NULL ? "," : "", core);
    setenv(STARTUP_FAILED_ENV, list, 1);
}

void nn_startup_run(char **argv)
{
    char msg[256] = "";
    if (nn_isa_init_from_env(msg, (int)sizeof msg) != 0) {
        fprintf(stderr, "kiln: %s\n", msg);
        exit(2);
    }
    nn_isa isa = nn_isa_current();
    const char *kiset = getenv("KILN_ISA");
    int forced = kiset != NULL && kiset[0] != '\0';

    int changed = 0;
    if (getenv("OMP_WAIT_POLICY") == NULL && getenv("GOMP_SPINCOUNT") == NULL) {
        /* libgomp's default spin at barriers steals the core that another rank, the data
         * loader or another job needs: 2-thread training ran 5-50x slower under load,
         * while a short spin costs nothing measurable on an idle machine. */
        setenv("GOMP_SPINCOUNT", "10000", 1);
        changed = 1;
    }
    /* Keep a core the user set, and a fallback chosen after a failed self-check. */
    int user_core = getenv("OPENBLAS_CORETYPE") != NULL && getenv(STARTUP_DETECTED_ENV) == NULL;
    const char *want = user_core || getenv(STARTUP_FAILED_ENV) != NULL
                           ? NULL
                           : nn_blas_wanted_core(isa, nn_blas_core(), forced);
    if (want != NULL) {
        if (getenv(STARTUP_DETECTED_ENV) == NULL)
            setenv(STARTUP_DETECTED_ENV, nn_blas_core(), 1);
        setenv("OPENBLAS_CORETYPE", want, 1);
        changed = 1;
    }
    if (changed)
        reexec(argv); /* returns only when re-executing is impossible */

    const char *core = nn_blas_core();
    const char *detected = getenv(STARTUP_DETECTED_ENV);
    const char *failed = getenv(STARTUP_FAILED_ENV);
    int ok = nn_blas_self_check();
    if (!ok) {
        const char *next = fallback_core(core, failed);
        set_failed(core);
        if (next != NULL) {
            if (detected == NULL)
                setenv(STARTUP_DETECTED_ENV,
                       getenv("OPENBLAS_CORETYPE") != NULL ? "the user's" : core, 1);
            setenv("OPENBLAS_CORETYPE", next, 1);
            fprintf(stderr, "kiln: OpenBLAS core %s failed the sgemm self-check; using %s\n", core,
                    next);
            reexec(argv);
        }
        /* Every core computes wrong products: training would be silently wrong. */
        fprintf(stderr,
                "kiln: OpenBLAS core %s failed the sgemm self-check and no core is "
                "left to fall back to; refusing to run\n",
                core);
        exit(2);
    }
    failed = getenv(STARTUP_FAILED_ENV);
    char who[192];
    if (detected != NULL && strcmp(detected, core) != 0)
        snprintf(who, sizeof who, "set by kiln; first %s%s%s", detected,
                 failed != NULL ? "; failed the self-check: " : "", failed != NULL ? failed : "");
    else
        snprintf(who, sizeof who, "%s",
                 getenv("OPENBLAS_CORETYPE") != NULL ? "OPENBLAS_CORETYPE" : "chosen by OpenBLAS");
    /* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": its first two words */
    char name[32] = "BLAS", version[32] = "";
    const char *config = openblas_get_config();
    if (config != NULL)
        sscanf(config, "%31s %31s", name, version);
    snprintf(startup_summary, sizeof startup_summary,
             "kernels %s (best on this CPU: %s%s), %s %s core %s (%s), sgemm self-check %s",
             nn_isa_name(isa), nn_isa_name(nn_isa_best()), forced ? "; KILN_ISA set" : "", name,
             version, core, who, ok ? "passed" : "FAILED");
}
