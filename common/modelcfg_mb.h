/* modelcfg_mb.h - the MobileNet family inside modelcfg (private to modelcfg*.c).
 *
 * modelcfg.c parses the fields every arch has and hands MobileNetV2,
 * MobileNetV3 and EfficientNet configs to these functions; the counting
 * helpers are shared so that both files count by one rule (modelcfg.h).
 */
#ifndef KILN_MODELCFG_MB_H
#define KILN_MODELCFG_MB_H

#include "common/jsonfield.h"
#include "common/modelcfg.h"

#define MC_MAX_WIDTH  8192  /* any channel count */
#define MC_MAX_HIDDEN 65536 /* an expansion width */
#define MC_MAX_KERNEL 15

/* Output side of a square conv / pool: floor((h + 2p - k)/s) + 1. */
static inline int mc_conv_out(int h, int k, int s, int p)
{
    return (h + 2 * p - k) / s + 1;
}

/* A conv's weights (OIHW) plus its bias. */
static inline long mc_conv_params(long k, long ic, long oc, long groups, int bias)
{
    return k * k * (ic / groups) * oc + (bias ? oc : 0);
}

/* (k*k*ic/groups + bias) * ho*ho * oc */
static inline double mc_conv_macs(long k, long ic, long groups, int bias, long ho, long oc)
{
    long per_output = k * k * (ic / groups) + (bias ? 1 : 0); /* groups divides ic exactly */
    return (double)per_output * (double)(ho * ho) * (double)oc;
}

/* (in + bias) * out per row */
static inline double mc_linear_macs(long in, long out, long rows)
{
    return (double)(in + 1) * (double)out * (double)rows;
}

/* Parses the arch-specific fields of a MobileNet-family config into c. */
void mb_parse(model_cfg *c, jsonfield_obj *o);
/* Adds the arch-specific fields to j, in the preset or the explicit form. */
void mb_json(json_t *j, const model_cfg *c, int explicit_form);
long mb_params(const model_cfg *c);
double mb_macs(const model_cfg *c);
/* The side of the feature map after the stem. */
int mb_stem_out(const model_cfg *c);

#endif
