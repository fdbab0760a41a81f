/* isa.c - the kernels' dispatch table and the choice of instruction set (see isa.h).
 *
 * Owns the one pointer to the table of the selected path. The public kernel functions
 * defined here (from kernels.def) only call through it; the real kernels are the three
 * renamed copies that the Makefile builds from every kernel file. CPU features come
 * from gcc's __builtin_cpu_supports, which also checks that the OS saves the wide
 * registers. Depends on libc only. Selection is not thread-safe (see isa.h); calls
 * through the table are.
 */
#include "worker/nn/isa.h"

#include "worker/nn/act.h"
#include "worker/nn/attention.h"
#include "worker/nn/conv.h"
#include "worker/nn/dropout.h"
#include "worker/nn/gemm.h"
#include "worker/nn/linear.h"
#include "worker/nn/loss.h"
#include "worker/nn/norm.h"
#include "worker/nn/optim.h"
#include "worker/nn/pooling.h"
#include "worker/nn/startup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The three renamed copies of every kernel. */
#define NN_KERNEL(ret, name, params, args)                                                         \
    ret name##_generic params;                                                                     \
    ret name##_avx2 params;                                                                        \
    ret name##_avx512 params;
#define NN_KERNEL_VOID(name, params, args) NN_KERNEL(void, name, params, args)
#include "worker/nn/kernels.def"
#undef NN_KERNEL
#undef NN_KERNEL_VOID

typedef struct nn_kernel_table {
#define NN_KERNEL(ret, name, params, args) ret(*name) params;
#define NN_KERNEL_VOID(name, params, args) NN_KERNEL(void, name, params, args)
#include "worker/nn/kernels.def"
#undef NN_KERNEL
#undef NN_KERNEL_VOID
} nn_kernel_table;

#define NN_KERNEL_VOID(name, params, args) NN_KERNEL(void, name, params, args)
static const nn_kernel_table nn_tables[NN_ISA_COUNT] = {
#define NN_KERNEL(ret, name, params, args) .name = name##_generic,
    [NN_ISA_GENERIC] =
        {
#include "worker/nn/kernels.def"
        },
#undef NN_KERNEL
#define NN_KERNEL(ret, name, params, args) .name = name##_avx2,
    [NN_ISA_AVX2] =
        {
#include "worker/nn/kernels.def"
        },
#undef NN_KERNEL
#define NN_KERNEL(ret, name, params, args) .name = name##_avx512,
    [NN_ISA_AVX512] =
        {
#include "worker/nn/kernels.def"
        },
#undef NN_KERNEL
};
#undef NN_KERNEL_VOID

/* The selected path. The baseline until start-up chooses, so that a call before the
 * choice is slow, never an illegal instruction. */
static nn_isa nn_active_isa = NN_ISA_GENERIC;
static const nn_kernel_table *nn_active = &nn_tables[NN_ISA_GENERIC];

#define NN_KERNEL(ret, name, params, args)                                                         \
    ret name params                                                                                \
    {                                                                                              \
        return nn_active->name args;                                                               \
    }
#define NN_KERNEL_VOID(name, params, args)                                                         \
    void name params                                                                               \
    {                                                                                              \
        nn_active->name args;                                                                      \
    }
#include "worker/nn/kernels.def"
#undef NN_KERNEL
#undef NN_KERNEL_VOID

/* The engine's start-up (startup.h) runs before main in every program that calls a
 * kernel: this file is linked whenever a kernel is, and pulls startup.c in with it.
 * glibc passes (argc, argv, envp) to constructors, as to main. */
__attribute__((constructor)) static void nn_isa_constructor(int argc, char **argv, char **envp)
{
    (void)argc, (void)envp;
    nn_startup_run(argv);
}

static const char *const nn_isa_names[NN_ISA_COUNT] = {"generic", "avx2", "avx512"};

int nn_isa_supported(nn_isa isa)
{
    __builtin_cpu_init();
    switch (isa) {
    case NN_ISA_GENERIC:
        return 1;
    /* The features that define x86-64-v3 and -v4 which the compiled code can use (every
     * CPU with AVX2, FMA and BMI2 also has v3's F16C, LZCNT and MOVBE), spelled so that
     * both gcc and clang know them. */
    case NN_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
    case NN_ISA_AVX512:
        return nn_isa_supported(NN_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    default:
        return 0;
    }
}

nn_isa nn_isa_best(void)
{
    for (int i = NN_ISA_COUNT - 1; i > NN_ISA_GENERIC; i--)
        if (nn_isa_supported((nn_isa)i))
            return (nn_isa)i;
    return NN_ISA_GENERIC;
}

int nn_isa_select(nn_isa isa)
{
    if ((unsigned)isa >= NN_ISA_COUNT || !nn_isa_supported(isa))
        return -1;
    nn_active_isa = isa;
    nn_active = &nn_tables[isa];
    return 0;
}

nn_isa nn_isa_current(void)
{
    return nn_active_isa;
}

const char *nn_isa_name(nn_isa isa)
{
    return (unsigned)isa < NN_ISA_COUNT ? nn_isa_names[isa] : "unknown";
}

int nn_isa_parse(const char *name, nn_isa *out)
{
    for (int i = 0; i < NN_ISA_COUNT; i++)
        if (strcmp(name, nn_isa_names[i]) == 0) {
            *out = (nn_isa)i;
            return 0;
        }
    return -1;
}

int nn_isa_init_from_env(char *msg, int n)
{
    nn_isa best = nn_isa_best(), want = best;
    nn_isa_select(best);
    const char *env = getenv("KILN_ISA");
    if (env == NULL || env[0] == '\0')
        return 0;
    if (nn_isa_parse(env, &want) != 0) {
        snprintf(msg, (size_t)n, "KILN_ISA=%s is not a kernel path (use avx512, avx2 or generic)",
                 env);
        return -1;
    }
    if (nn_isa_select(want) != 0) {
        snprintf(msg, (size_t)n, "KILN_ISA=%s: this CPU cannot run it (its best path is %s)", env,
                 nn_isa_name(best));
        return -1;
    }
    return 0;
}
