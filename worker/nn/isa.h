/* isa.h - which instruction set the kernels run with, chosen when the process starts.
 *
 * Every kernel file of worker/nn is compiled three times, for a portable x86-64
 * baseline, for AVX2+FMA (x86-64-v3) and for AVX-512 (x86-64-v4); the build renames
 * each copy's symbols with a suffix (_generic, _avx2, _avx512) and isa.c defines the
 * public names as calls through a table of the selected copy (kernels.def lists them).
 * So one binary runs on any x86-64 machine and uses the best kernels the CPU has.
 * At start-up the table is set to the best path the CPU supports, or to the one
 * KILN_ISA names (avx512, avx2 or generic). Not thread-safe: select before any kernel
 * runs (start-up, or a test between kernel calls), never while kernels run.
 */
#ifndef KILN_NN_ISA_H
#define KILN_NN_ISA_H

typedef enum nn_isa {
    NN_ISA_GENERIC = 0, /* x86-64 baseline: SSE2, no FMA */
    NN_ISA_AVX2,        /* x86-64-v3: AVX2, FMA, BMI */
    NN_ISA_AVX512,      /* x86-64-v4: AVX-512 F, BW, CD, DQ, VL */
    NN_ISA_COUNT
} nn_isa;

/* The best path this CPU (and its OS) supports. */
nn_isa nn_isa_best(void);

/* Whether this CPU can run path isa. */
int nn_isa_supported(nn_isa isa);

/* Makes every kernel run with path isa from now on. Returns 0, or -1 (nothing changed)
 * when the CPU cannot run it. */
int nn_isa_select(nn_isa isa);

/* The path the kernels run with now. */
nn_isa nn_isa_current(void);

/* "generic", "avx2" or "avx512". */
const char *nn_isa_name(nn_isa isa);

/* The path called name; returns 0, or -1 when name is none of them. */
int nn_isa_parse(const char *name, nn_isa *out);

/* The path chosen at start-up: KILN_ISA when set (which must name a path this CPU
 * supports), else nn_isa_best(). Returns 0, or -1 with a message in msg (size n) when
 * KILN_ISA is unknown or unsupported; the table is then left at the best path. Called
 * by the engine's start-up code (startup.c); callable again, e.g. by tests. */
int nn_isa_init_from_env(char *msg, int n);

#endif
