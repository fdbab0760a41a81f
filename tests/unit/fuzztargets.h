/* fuzztargets.h - the bodies of the libFuzzer targets, shared with the
 * regression suite.
 *
 * Each function feeds one input to one parser the way a hostile peer or
 * file could, and checks the parser's contract beyond "no crash": an
 * error has a message, a success round-trips or is internally consistent.
 * A broken contract calls abort() (libFuzzer records it as a crash; the
 * check suite, running forked, reports it). tests/fuzz/fuzz_main.c makes a
 * libFuzzer program of each; tests/unit/check_fuzzregress.c replays the
 * corpora and the crash regressions under tests/fuzz/ through them in
 * `make test`. Uses temporary files for the file readers; single-threaded.
 */
#ifndef KILN_FUZZTARGETS_H
#define KILN_FUZZTARGETS_H

#include <stddef.h>
#include <stdint.h>

/* A job spec as JSON text (common/jobspec). */
int fuzz_jobspec(const uint8_t *data, size_t size);

/* A safetensors file image (common/safetensors). */
int fuzz_safetensors(const uint8_t *data, size_t size);

/* An IDX image file and label file: [u32 LE length of the image file][image
 * file][label file] (worker/data/idx.c). */
int fuzz_idx(const uint8_t *data, size_t size);

/* A CIFAR batch: [flags byte: bit 0 = CIFAR-100][file] (worker/data/cifar.c). */
int fuzz_cifar(const uint8_t *data, size_t size);

/* A pool-protocol message: [blob count byte][u32 LE header length][header]
 * [blobs, split evenly] (common/msg, as broker.c decodes one). */
int fuzz_msg(const uint8_t *data, size_t size);

/* An image file: [flags byte: bit 0 = RGB, else luma][JPEG or PNG file]
 * (worker/data/imgdecode.c), then the eval transform on what it decodes. */
int fuzz_image(const uint8_t *data, size_t size);

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

/* The target named name ("jobspec", "safetensors", "idx", "cifar", "msg", "image"), or NULL. */
fuzz_fn fuzz_target(const char *name);

#endif
