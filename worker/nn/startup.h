/* startup.h - what the engine settles when its process starts, before any kernel runs.
 *
 * In every program that calls a kernel (kiln-worker, kiln-tests, the benchmarks), this
 * runs before main:
 *   1. the kernel path (isa.h): KILN_ISA, or the best the CPU supports;
 *   2. the environment that libgomp and OpenBLAS read only when they load: a short
 *      OpenMP spin (GOMP_SPINCOUNT, unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set) and
 *      OpenBLAS's kernel core (OPENBLAS_CORETYPE, unless set), chosen to match the kernel
 *      path when OpenBLAS picked a core of a lower level (it falls back to a generic core
 *      on CPUs newer than it knows). When either must change, the process re-executes
 *      itself once (/proc/self/exe, same arguments) with the variables set;
 *   3. a self-check of cblas_sgemm against a naive product; a core that disagrees is
 *      replaced by the next lower one (re-executing again), and the fallback is reported.
 * A KILN_ISA that the CPU cannot run, or an OpenBLAS whose every core fails the
 * self-check, ends the process with exit status 2 and a message saying so. Not thread-safe; nothing
 * here is called while kernels run.
 */
#ifndef KILN_NN_STARTUP_H
#define KILN_NN_STARTUP_H

#include "worker/nn/isa.h"

/* Settles the kernel path and the environment, as above; argv is the program's own, for
 * the re-exec. Called once, before main, by the constructor in isa.c (which is linked
 * into every program that calls a kernel). */
void nn_startup_run(char **argv);

/* One line saying what runs: the kernel path, the BLAS library, its core and who chose
 * it, and the self-check's outcome. Valid for the life of the process. */
const char *nn_startup_summary(void);

/* OpenBLAS's core in use ("SkylakeX", "Haswell", ...). */
const char *nn_blas_core(void);

/* Whether cblas_sgemm agrees with a naive product on a few shapes (both transposes,
 * odd sizes), within float rounding. Returns 1 if it does. Runs single-threaded. */
int nn_blas_self_check(void);

/* The OpenBLAS core kiln sets for kernel path isa when OpenBLAS runs core: the core of
 * the path's level (SkylakeX for avx512, Haswell for avx2, Prescott for generic) when
 * core is of a lower level, or of a higher one and the path was forced (KILN_ISA);
 * NULL to keep core. Pure. */
const char *nn_blas_wanted_core(nn_isa isa, const char *core, int forced);

#endif
