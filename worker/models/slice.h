/* slice.h - a narrow net as a prefix slice of a wide one, by tensor name.
 *
 * A sub-net of a channel-pruning supernet has the same tensor names and
 * every tensor's shape is a prefix of the supernet's (conv weights
 * [:out, :in], BN vectors [:C], the classifier [:, :in]). Gathering copies
 * those prefixes from the supernet into the sub-net; scattering adds the
 * sub-net's gradients back into the same places of the supernet's, so that
 * several sub-nets trained on one batch accumulate into one optimizer step
 * (DMCP's sandwich rule). A sub-net with fewer blocks (DNA's depth) may
 * name its tensors differently (MobileNetV2 numbers its blocks in one
 * sequence): a slice_map then translates its names into the supernet's.
 * net_copy_overlap moves weights and optimizer state between two versions
 * of a supernet that grew or shrank (DNA's elastic space).
 * Pure memory copies; not thread-safe per net.
 */
#ifndef KILN_MODELS_SLICE_H
#define KILN_MODELS_SLICE_H

#include "common/err.h"
#include "worker/models/net.h"

#include <stddef.h>

/* Translates a tensor name of one net into the other's: writes the name
 * into out (len bytes) and returns 1, or returns 0 when the tensor has no
 * counterpart. */
typedef int (*slice_name_fn)(const void *ctx, const char *name, char *out, size_t len);

/* A name translation; NULL (or fn NULL) everywhere below means "the same
 * name". */
typedef struct slice_map {
    slice_name_fn fn;
    const void *ctx;
} slice_map;

/* Checks that every tensor of sub has a tensor of the same name (through
 * map), kind and rank in super with every dimension >= sub's. Returns 0 or
 * ERR_INVALID naming the tensor. */
int net_slice_check(const net *sub, const net *super, errbuf *eb);
int net_slice_check_map(const net *sub, const net *super, const slice_map *map, errbuf *eb);

/* Copies the prefix of every parameter and buffer (and the counters) of
 * super into sub. sub must pass net_slice_check against super (asserted
 * per tensor). */
void net_slice_gather(net *sub, const net *super);
void net_slice_gather_map(net *sub, const net *super, const slice_map *map);

/* Adds every parameter gradient of sub into the matching prefix of super's
 * gradients (accumulates, as net_backward does). */
void net_slice_scatter_grads(net *super, const net *sub);
void net_slice_scatter_grads_map(net *super, const net *sub, const slice_map *map);

/* For every tensor of dst whose name (through map: dst name -> src name)
 * exists in src with the same kind and rank, copies the overlapping box
 * (each dimension the smaller of the two; the leading corner) of the
 * parameters, the SGD momentum (opt_m) and Adam's opt_v, the buffers and the
 * counters from src into dst. Everything outside the box keeps dst's
 * values. Returns the number of tensors of dst that had no counterpart. */
int net_copy_overlap(net *dst, const net *src, const slice_map *map);

#endif
