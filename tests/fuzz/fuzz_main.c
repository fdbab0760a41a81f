/* fuzz_main.c - one libFuzzer program per target: build with
 * -DFUZZ_TARGET=fuzz_<name> (tests/fuzz/run.sh does). The bodies are in
 * tests/unit/fuzztargets.c, shared with the regression suite. */
#include "tests/unit/fuzztargets.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return FUZZ_TARGET(data, size);
}
