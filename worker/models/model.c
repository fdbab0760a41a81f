/* model.c - model_build: a model config to a finalised net (see model.h). */
#include "worker/models/model.h"

int model_site(const model_opts *o, net *m, int x, const char *bn)
{
    return (o != NULL && o->site != NULL) ? o->site(o->site_ctx, m, x, bn) : x;
}

int model_join(const model_opts *o, net *m, int x, int fx, const char *block)
{
    return (o != NULL && o->join != NULL) ? o->join(o->join_ctx, m, x, fx, block)
                                          : net_add(m, x, fx);
}

int model_build(net *m, const model_cfg *c, int max_batch, uint64_t seed, const model_opts *opts,
                errbuf *eb)
{
    float drop_path = opts != NULL ? opts->drop_path : 0.0f;
    int x = net_input(m, c->image_size, c->image_size, c->in_channels, 0);
    int logits;
    switch (c->arch) {
    case MC_CEIT:
    case MC_DEIT:
        logits = vit_build(m, c, x, drop_path);
        break;
    case MC_RESNET_CIFAR:
    case MC_RESNET:
        logits = resnet_build(m, c, x, opts);
        break;
    case MC_MOBILENETV2:
    case MC_MOBILENETV3:
    case MC_EFFICIENTNET:
        logits = mobilenet_build(m, c, x, opts);
        break;
    default:
        return err_set(eb, ERR_INVALID, "unknown architecture %d", (int)c->arch);
    }
    if (logits < 0)
        return err_set(eb, ERR_INVALID,
                       "model config does not describe a buildable network "
                       "(token grid not square or not whole)");
    return net_finalize(m, logits, max_batch, seed, eb);
}
