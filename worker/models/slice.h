/* slice.h - a narrow net as a prefix slice of a wide one, by tensor name.
 *
 * A sub-net of a channel-pruning supernet has the same tensor names and
 * every tensor's shape is a prefix of the supernet's (conv weights
 * [:out, :in], BN vectors [:C], the classifier [:, :in]). Gathering copies
 * those prefixes from the supernet into the sub-net; scattering adds the
 * sub-net's gradients back into the same places of the supernet's, so that
 * several sub-nets trained on one batch accumulate into one optimizer step
 * (DMCP's sandwich rule). Pure memory copies; not thread-safe per net.
 */
#ifndef KILN_MODELS_SLICE_H
#define KILN_MODELS_SLICE_H

#include "common/err.h"
#include "worker/models/net.h"

/* Checks that every tensor of sub has a tensor of the same name, kind and
 * rank in super with every dimension >= sub's. Returns 0 or ERR_INVALID
 * naming the tensor. */
int net_slice_check(const net *sub, const net *super, errbuf *eb);

/* Copies the prefix of every parameter and buffer (and the counters) of
 * super into sub. sub must pass net_slice_check against super (asserted
 * per tensor). */
void net_slice_gather(net *sub, const net *super);

/* Adds every parameter gradient of sub into the matching prefix of super's
 * gradients (accumulates, as net_backward does). */
void net_slice_scatter_grads(net *super, const net *sub);

#endif
