#!/usr/bin/python3
"""gen_models.py - whole-model PyTorch reference files for the models of issue 16.

Usage: /usr/bin/python3 tests/reference/gen_models.py OUT_DIR [SHARED_REF_DIR]

Writes OUT_DIR/<name>.safetensors in the whole-model format of
../shared/reference/README.md ("Whole-model files"): every state_dict entry
under its PyTorch name, input.x / input.y, the eval-mode logits (with the
stored running statistics), the training-mode logits and mean cross-entropy,
the gradient of every parameter (grad.*) and every buffer after the training
forward (after.*); metadata `model` (the kiln model config), `note` and
`exact_zeros`. `make test` runs it when /usr/bin/python3 has torch (Debian's
python3-torch / python3-torchvision); check_reference.c then runs the engine
on every file.

The models:
  resnet18_in64   torchvision.models.resnet18 (BasicBlock), 3x64x64, 10 classes
  resnet50_in64   torchvision.models.resnet50 (Bottleneck), 3x64x64, 10 classes
  resnet50_thin   torchvision's ResNet(Bottleneck, [1,2,1,1], width_per_group=16):
                  inner widths differ from the stage width (the form a pruned
                  ResNet-50 has), 3x64x64
  ceit_t_112      CeiT-T's I2T stem of 224^2 (64 channels, 7x7/2 conv, BN,
                  max-pool, 4x4 patches), D 192, 3 heads, depth 2, at 3x112x112
                  (a 7x7 grid: at 224^2 the stem's 400k max-pool windows always
                  hold near-ties), from SHARED_REF_DIR/torch/models.py
  deit_t_112      DeiT-T (D 192, 3 heads, depth 2), 16x16 patches, 3x112x112
  mobilenetv2_in64  MobileNetV2 width 0.5 with the stride-2 stem (cifar false), 3x64x64
  mobilenetv3_large_in64  torchvision mobilenet_v3_large (SE, h-swish, h-sigmoid), 3x64x64
  mobilenetv3_small_c32   torchvision mobilenet_v3_small with a stride-1 (CIFAR) stem, 3x32x32
  efficientnet_b0_c32     torchvision efficientnet_b0 (SE, SiLU) with a stride-1 stem, 3x32x32
  efficientnet_w05_d05_in64  torchvision's EfficientNet at width 0.5 and depth 0.5 (the
                  scaling rules of the B1..B7 family), 3x64x64
Dropout and stochastic depth are 0 in these files (random masks cannot be
compared); every file records its parameter count (metadata `params`) and every
CNN's its multiply-accumulates counted by hooks on every Conv2d and Linear
(`macs`; a ViT's attention matmuls are no module), which check_reference.c
compares with the engine's own counts.

The data is random but kept away from the kinks, as the shared files are:
BatchNorm affine parameters and fc biases are random; running statistics
come from a calibration batch and are then perturbed; the BN bias in front
of every ReLU / ReLU6 is nudged per channel so that no training-mode
pre-activation lies within MARGIN * max|x| of 0 (or 6); the input is
re-drawn until every max-pool window's top two values differ by at least
POOL_MARGIN * max|x| (the stems are shallow, their error about 1e-7 of max|x|). Deterministic: the same torch build writes the same bytes.
"""
import copy
import json
import math
import os
import struct
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torchvision.models.resnet import Bottleneck, ResNet  # noqa: E402

MARGIN = 2e-5  # kink margin, of max|x| of the layer: ~100x float32 rounding
POOL_MARGIN = 2e-6  # max-pool top-2 gap, of max|x|: the stem's error is ~1e-7
BATCH = 2

OUT = sys.argv[1]
ONLY = set(sys.argv[3:])  # names to write (default: all)
SHARED = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "../../../shared/reference")
sys.path.insert(0, os.path.join(SHARED, "torch"))
import models  # noqa: E402


# ---- safetensors ----------------------------------------------------------------

def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, tensor) in order; F32 or I64 (README's subset)."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors:
        t = t.detach().contiguous().cpu()
        if t.dtype == torch.float32:
            dtype, data = "F32", t.numpy().astype("<f4").tobytes()
        elif t.dtype == torch.int64:
            dtype, data = "I64", t.numpy().astype("<i8").tobytes()
        else:
            raise ValueError(f"{name}: dtype {t.dtype}")
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("ascii")
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# ---- making the data non-degenerate ---------------------------------------------------

def randomise(model, gen, calib, rel_stats=False):
    """Random BN affine parameters and classifier biases; running statistics from a
    calibration batch, then perturbed (rel_stats: the mean by 0.1 of each channel's
    standard deviation, so that narrow channels deep in a net stay in range in eval
    mode); num_batches_tracked back to 0."""
    momenta = {id(m): m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
            elif isinstance(m, nn.Linear) and m.bias is not None and m.bias.abs().max() == 0:
                m.bias.copy_(0.02 * torch.randn(m.bias.shape, generator=gen))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None  # cumulative average over the calibration passes
        model.train()
        for _ in range(2):
            model(calib)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = momenta[id(m)]
                d = 0.1 * torch.randn(m.running_mean.shape, generator=gen)
                m.running_mean.add_(d * m.running_var.sqrt() if rel_stats else d)
                m.running_var.mul_(0.8 + 0.4 * torch.rand(m.running_var.shape, generator=gen))
                m.num_batches_tracked.zero_()
        if hasattr(model, "pos_layer_embed"):
            model.pos_layer_embed.copy_(0.02 * torch.randn(model.pos_layer_embed.shape, generator=gen))


def gap_shift(v, margin, kinks):
    """A shift d (small) such that no value of v + d lies within margin of a kink."""
    pts = torch.cat([v - k for k in kinks]).sort().values
    best = None
    # candidate shifts: 0, and the middles of the gaps around each kink
    cands = [0.0]
    idx = torch.searchsorted(pts, torch.tensor([0.0])).item()
    lo, hi = max(idx - 40, 1), min(idx + 40, len(pts) - 1)
    for i in range(lo, hi + 1):
        if i < len(pts) and pts[i] - pts[i - 1] > 2 * margin:
            cands.append(-(pts[i] + pts[i - 1]).item() / 2)
    for d in sorted(cands, key=abs):
        if (pts + d).abs().min().item() >= margin:
            best = d
            break
    if best is None:
        raise RuntimeError("no gap wide enough around a kink")
    return best


def frozen_forward(model, x, pre_hook, acts=None):
    """A training-mode forward with pre_hook on every ReLU / ReLU6 call (or on the
    modules `acts`), leaving the running statistics and counters as they were (BN
    momentum 0 for the pass)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    counts = [m.num_batches_tracked.clone() for m in bns]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    if acts is None:
        acts = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    hs = [m.register_forward_pre_hook(pre_hook) for m in acts]
    model.train()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hs:
            h.remove()
        for m, c, mo in zip(bns, counts, momenta):
            m.momentum = mo
            m.num_batches_tracked.copy_(c)


def nudge(model, x, sites, kinks, acts=None):
    """sites: the BN modules whose outputs (plus, at a residual join, the shortcut)
    feed the successive calls of the activation modules, in call order. Shifts each
    BN's bias per channel so that the activation's input keeps clear of the kinks:
    in one forward pass, each call's input is shifted as its BN's new bias shifts it,
    so the later calls see the nudged network. Returns the smallest margin left,
    relative to max|x| of each activation's input, measured in a second pass."""
    calls = [0]

    def shift(mod, inp):
        v, bn = inp[0], sites[calls[0]]
        calls[0] += 1
        assert v.shape[1] == bn.bias.shape[0], (calls[0], v.shape, bn)
        margin = MARGIN * v.abs().max().item()
        per_ch = v.transpose(0, 1).reshape(v.shape[1], -1)
        near = torch.stack([(per_ch - k).abs().min(dim=1).values for k in kinks]).min(dim=0).values
        d = torch.zeros(v.shape[1])
        for c in torch.nonzero(near < margin).flatten().tolist():
            d[c] = gap_shift(per_ch[c], margin, kinks)
        bn.bias += d
        return (v + d.reshape(1, -1, 1, 1),)

    frozen_forward(model, x, shift, acts)
    assert calls[0] == len(sites), (calls[0], len(sites))
    worst = [math.inf]

    def measure(mod, inp):
        v = inp[0]
        worst[0] = min(worst[0], min((v - k).abs().min().item() for k in kinks) / v.abs().max().item())

    frozen_forward(model, x, measure, acts)
    return worst[0]


def pool_gap(model, x, pool_in):
    """The smallest top-2 gap over the windows of the model's max-pool 3/2/1, relative
    to max|x| of its input pool_in(model, x) (training mode). Windows whose maximum
    is a ReLU's 0 are skipped: their gradient is 0 whichever input gets it."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    with torch.no_grad():
        v = pool_in(model, x)
    model.load_state_dict(state)
    u = F.pad(v, (1, 1, 1, 1), value=-math.inf).unfold(2, 3, 2).unfold(3, 3, 2)
    top = u.reshape(*u.shape[:4], -1).topk(2, dim=-1).values
    g = top[..., 0] - top[..., 1]
    if (v >= 0).all():
        g = g[top[..., 0] > 0]
    return g.min().item() / v.abs().max().item()


# ---- one file -------------------------------------------------------------------

def count_macs(model, x):
    """Multiply-accumulates of one sample, by hooks on every Conv2d and Linear:
    (k*k*cin/groups + bias) * Ho*Wo * cout, and (in + bias) * out (modelcfg.h's rule)."""
    total = [0]

    def conv(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        per = k * mod.in_channels // mod.groups + (1 if mod.bias is not None else 0)
        total[0] += per * out.shape[2] * out.shape[3] * out.shape[1]

    def linear(mod, inp, out):
        total[0] += (mod.in_features + (1 if mod.bias is not None else 0)) * mod.out_features

    hs = [m.register_forward_hook(conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hs += [m.register_forward_hook(linear) for m in model.modules() if isinstance(m, nn.Linear)]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        model(x[:1])
    model.load_state_dict(state)
    for h in hs:
        h.remove()
    return total[0]


def generate(name, cfg, model, sites, kinks, pool_in, note, seed, acts=None, rel_stats=False):
    if ONLY and name not in ONLY:
        return
    t0 = time.time()
    gen = torch.Generator().manual_seed(seed)
    C, S = cfg["in_channels"], cfg["image_size"]
    calib = torch.randn(8, C, S, S, generator=gen)
    randomise(model, gen, calib, rel_stats)
    # an input whose max-pool windows are well separated
    for attempt in range(100):
        x = torch.randn(BATCH, C, S, S, generator=gen)
        if pool_in is None or pool_gap(model, x, pool_in) >= POOL_MARGIN:
            break
    else:
        raise RuntimeError(f"{name}: no input with separated max-pool windows")
    worst_act = nudge(model, x, sites, kinks, acts) if sites else float("nan")
    gap = pool_gap(model, x, pool_in) if pool_in is not None else float("nan")
    assert not gap < POOL_MARGIN / 2, (name, gap)  # the nudges move whole channels
    assert not sites or worst_act >= MARGIN / 2, (name, worst_act)
    y = torch.randint(0, cfg["num_classes"], (BATCH,), generator=gen)
    state = [(k, v.detach().clone()) for k, v in model.state_dict().items()]
    m64 = copy.deepcopy(model).double()
    r = run(model, x, y)
    r64 = run(m64, x.double(), y)
    G = max(g.abs().max().item() for _, g in r["grads"])
    zeros = [n for n, g in r["grads"] if g.abs().max().item() <= 1e-6 * G]
    err, tol = f64_errors(r, r64, zeros)
    tensors = state + [("input.x", x), ("input.y", y), ("output.logits", r["logits"]),
                       ("output.loss", r["loss"]), ("eval.logits", r["eval"])]
    tensors += r["grads"] + r["after"]
    meta = {"model": json.dumps(cfg, separators=(",", ":")),
            "note": f"{note}; seed {seed}; min kink margin {worst_act:.2e}, "
                    f"min max-pool gap {gap:.2e} (of max|x|); torch {torch.__version__}, "
                    f"torchvision {torchvision.__version__}",
            "exact_zeros": json.dumps(zeros),
            "f64_error": json.dumps(err),
            "tolerances": json.dumps(tol),
            "params": str(sum(p.numel() for p in model.parameters()))}
    if cfg["arch"] not in ("ceit", "deit"):  # hooks cannot see attention's two matmuls
        meta["macs"] = str(count_macs(model, x))
    write_safetensors(os.path.join(OUT, name + ".safetensors"), tensors, meta)
    print(f"{name}: {time.time() - t0:.1f} s, {sum(p.numel() for p in model.parameters())} params, "
          f"loss {r['loss'].item():.4f}, kink margin {worst_act:.2e}, pool gap {gap:.2e}, "
          f"f64 error {err}, tolerances {tol}", flush=True)


def run(model, x, y):
    """Eval logits (stored running statistics), then a training forward, the mean
    cross-entropy, its gradients and the buffers after; float32 results."""
    model.eval()
    with torch.no_grad():
        eval_logits = model(x)
    model.train()
    model.zero_grad(set_to_none=True)
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    f = lambda t: t.detach().float() if t.is_floating_point() else t.detach().clone()  # noqa: E731
    return {"eval": f(eval_logits), "logits": f(logits), "loss": f(loss).reshape(1),
            "grads": [(f"grad.{n}", f(p.grad)) for n, p in model.named_parameters()],
            "after": [(f"after.{n}", f(b)) for n, b in model.named_buffers()]}


def rel(a, b):
    return (a.double() - b.double()).abs().max().item() / max(b.double().abs().max().item(), 1e-30)


def f64_errors(r, r64, zeros):
    """The worst error of the float32 reference against a float64 recomputation, per
    group (max|c - r| / max|r|), and the tolerances the check uses: 20x that, but
    never below the shared README's CNN values (2e-5 / 2e-4 / 1e-5)."""
    fwd = max(rel(r[k], r64[k]) for k in ("eval", "logits", "loss"))
    grad = max(rel(a, b) for (n, a), (_, b) in zip(r["grads"], r64["grads"]) if n not in zeros)
    state = max([rel(a, b) for (n, a), (_, b) in zip(r["after"], r64["after"])
                 if a.is_floating_point()] or [0.0])
    err = {"fwd": float(f"{fwd:.2e}"), "grad": float(f"{grad:.2e}"), "state": float(f"{state:.2e}")}
    up = lambda v, floor: max(floor, float(f"{20 * v:.0e}"))  # noqa: E731
    tol = {"fwd": up(fwd, 2e-5), "grad": up(grad, 2e-4), "state": up(state, 1e-5)}
    return err, tol


# ---- the models -----------------------------------------------------------------

def resnet_sites(m):
    """The BN feeding each ReLU call of torchvision's ResNet, in call order."""
    sites = [m.bn1]
    for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
        for blk in layer:
            sites += [blk.bn1, blk.bn2] + ([blk.bn3] if isinstance(blk, Bottleneck) else [])
    return sites


def resnet_cfg(m, depth, size, classes, block):
    """The kiln config of a torchvision ResNet: the preset when it is one, else explicit."""
    base = {"arch": "resnet", "image_size": size, "in_channels": 3, "num_classes": classes}
    if depth is not None:
        return dict(base, depth=depth)
    stages = []
    for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
        st = {"width": layer[-1].conv3.out_channels, "mids": [b.conv1.out_channels for b in layer]}
        st["mids2"] = [b.conv2.out_channels for b in layer]
        stages.append(st)
    return dict(base, block=block, stem=m.conv1.out_channels, stages=stages)


def RESNET_POOL(m, x):
    return F.relu(m.bn1(m.conv1(x)))


def CEIT_POOL(m, x):
    return m.i2t.backbone.bn(m.i2t.backbone.conv(x))


def mbv2_sites(m):
    """The BN before each ReLU6 call of models.MobileNetV2, in call order."""
    sites = []
    for mod in m.modules():
        if isinstance(mod, nn.Sequential) and len(mod) == 3 and isinstance(mod[2], nn.ReLU6):
            sites.append(mod[1])
    return sites


def cna_sites(m, types):
    """(BNs, activation modules) of every conv + BN + activation Sequential whose
    activation is one of types, in call order (torchvision's Conv2dNormActivation)."""
    pairs = [(mod[1], mod[2]) for mod in m.modules()
             if isinstance(mod, nn.Sequential) and len(mod) == 3
             and isinstance(mod[1], nn.BatchNorm2d) and isinstance(mod[2], types)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def mbv3(variant, size, cifar, seed):
    torch.manual_seed(seed)
    make = torchvision.models.mobilenet_v3_large if variant == "large" else torchvision.models.mobilenet_v3_small
    m = make(num_classes=10, dropout=0.0)
    if cifar:
        m.features[0][0].stride = (1, 1)
    cfg = {"arch": "mobilenetv3", "image_size": size, "in_channels": 3, "num_classes": 10,
           "variant": variant, "cifar": cifar, "dropout": 0}
    return cfg, m


def effnet(width, depth, size, cifar, seed):
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
    torch.manual_seed(seed)
    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=width, depth_mult=depth)
    m = EfficientNet(setting, 0.0, stochastic_depth_prob=0.0, num_classes=10, last_channel=last)
    if cifar:
        m.features[0][0].stride = (1, 1)
    cfg = {"arch": "efficientnet", "image_size": size, "in_channels": 3, "num_classes": 10,
           "cifar": cifar, "dropout": 0, "drop_path": 0}
    if width == 1.0 and depth == 1.0:
        cfg["variant"] = "b0"
    else:
        cfg.update(width_mult=width, depth_mult=depth)
    return cfg, m


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    r18 = torchvision.models.resnet18(num_classes=10)
    generate("resnet18_in64", resnet_cfg(r18, 18, 64, 10, None), r18, resnet_sites(r18), [0.0], RESNET_POOL,
             "torchvision resnet18 (BasicBlock), batch 2, training-mode gradients", 1)
    torch.manual_seed(1)
    r50 = torchvision.models.resnet50(num_classes=10)
    generate("resnet50_in64", resnet_cfg(r50, 50, 64, 10, None), r50, resnet_sites(r50), [0.0], RESNET_POOL,
             "torchvision resnet50 (Bottleneck), batch 2, training-mode gradients", 2)
    torch.manual_seed(2)
    thin = ResNet(Bottleneck, [1, 2, 1, 1], num_classes=5, width_per_group=16)
    generate("resnet50_thin", resnet_cfg(thin, None, 64, 5, "bottleneck"), thin, resnet_sites(thin),
             [0.0], RESNET_POOL, "torchvision ResNet(Bottleneck, [1,2,1,1], width_per_group=16), batch 2", 3)
    torch.manual_seed(3)
    ceit_cfg = {"arch": "ceit", "image_size": 112, "in_channels": 3, "num_classes": 10,
                "embed_dim": 192, "depth": 2, "num_heads": 3, "mlp_ratio": 4, "patch_size": 4,
                "stem": {"type": "i2t", "channels": 64, "kernel": 7, "stride": 2, "pool": True},
                "ffn": {"type": "leff", "kernel": 3}, "head": "lca"}
    ceit = models.ceit(img=112, in_ch=3, classes=10, patch=4, dim=192, depth=2, heads=3,
                       stem_channels=64, stem_kernel=7, stem_stride=2, stem_pool=True)
    generate("ceit_t_112", ceit_cfg, ceit, [], [], CEIT_POOL,
             "models.py CeiT-T (224 stem: 64 ch, 7x7/2, pool, 4x4 patches) at 112, depth 2", 4)
    torch.manual_seed(4)
    deit_cfg = {"arch": "deit", "image_size": 112, "in_channels": 3, "num_classes": 10,
                "embed_dim": 192, "depth": 2, "num_heads": 3, "mlp_ratio": 4, "patch_size": 16,
                "stem": {"type": "patchify"}, "ffn": {"type": "mlp"}, "head": "cls"}
    deit = models.deit(img=112, in_ch=3, classes=10, patch=16, dim=192, depth=2, heads=3)
    generate("deit_t_112", deit_cfg, deit, [], [], None, "models.py DeiT-T widths, 16x16 patches, depth 2", 5)
    torch.manual_seed(5)
    mb_cfg = {"arch": "mobilenetv2", "image_size": 64, "in_channels": 3, "num_classes": 10,
              "width_mult": 0.5, "cifar": False}
    mb = models.MobileNetV2(classes=10, width=0.5, cifar=False)
    generate("mobilenetv2_in64", mb_cfg, mb, mbv2_sites(mb), [0.0, 6.0], None,
             "models.py MobileNetV2 width 0.5, stride-2 stem (ImageNet form)", 6)
    # ReLU's kink is 0, h-swish's -3 and 3: the BN before each is nudged clear of all three
    kinks3 = [0.0, -3.0, 3.0]
    cfg, m = mbv3("large", 64, False, 6)
    sites, acts = cna_sites(m, (nn.ReLU, nn.Hardswish))
    generate("mobilenetv3_large_in64", cfg, m, sites, kinks3, None,
             "torchvision mobilenet_v3_large, stride-2 stem, dropout 0", 7, acts, True)
    cfg, m = mbv3("small", 32, True, 7)
    sites, acts = cna_sites(m, (nn.ReLU, nn.Hardswish))
    generate("mobilenetv3_small_c32", cfg, m, sites, kinks3, None,
             "torchvision mobilenet_v3_small, stride-1 (CIFAR) stem, dropout 0", 8, acts, True)
    cfg, m = effnet(1.0, 1.0, 32, True, 8)
    generate("efficientnet_b0_c32", cfg, m, [], [], None,
             "torchvision efficientnet_b0, stride-1 (CIFAR) stem, dropout and stochastic depth 0", 9,
             rel_stats=True)
    cfg, m = effnet(0.5, 0.5, 64, False, 9)
    generate("efficientnet_w05_d05_in64", cfg, m, [], [], None,
             "torchvision EfficientNet at width_mult 0.5, depth_mult 0.5, stride-2 stem, "
             "dropout and stochastic depth 0", 10, rel_stats=True)


if __name__ == "__main__":
    main()
