#!/usr/bin/python3
"""count_macs.py - parameters and MACs of the reference PyTorch models, counted
independently of common/modelcfg.c with forward hooks.

Usage: /usr/bin/python3 tests/tools/count_macs.py [REF_DIR]
REF_DIR (default ../shared/reference) provides torch/models.py and the four
whole-model reference files, whose `model` metadata are counted together with
ALGORITHMS.md 1.11 config C, the models of the api/examples job specs, and
torchvision's ResNet-18..152 (arch resnet, torchvision's own definitions),
CeiT-T/S, DeiT-T/S and MobileNetV2 1.0/1.5 at 224^2 with 1000 classes, and
torchvision's MobileNetV3-Large/Small (224^2) and EfficientNet-B0..B4 (at
their resolutions, 224..380). A squeeze-excitation's two 1x1 convs count as
convs on its pooled 1x1 map; its pooling, gate and multiply count nothing.
Prints one line per config: name, params (sum of numel over the parameters)
and MACs of one forward pass of one image.

Counting rule (the one common/modelcfg.h states): every Conv2d adds
(kh*kw*IC/groups + bias)*Ho*Wo*OC, every Linear (IN + bias)*OUT per row it
is applied to, every Attention adds q k^T and att v (Nq*N*C each). Norms,
activations and pools add nothing. One exception to "per row applied": the
LCA attention computes q for all `depth` class tokens but uses only the last
one, and the rule counts q for that one token only, so its qkv Linear counts
(IN+1)*C for q plus (IN+1)*2C per token for k and v.
"""
import json
import os
import struct
import sys

import torch

REF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../shared/reference")
sys.path.insert(0, os.path.join(REF, "torch"))
import models  # noqa: E402


def build(cfg):
    arch = cfg["arch"]
    if arch in ("ceit", "deit"):
        stem = cfg.get("stem", {"type": "i2t" if arch == "ceit" else "patchify"})
        ffn = cfg.get("ffn", {"type": "leff" if arch == "ceit" else "mlp"})
        head = cfg.get("head", "lca" if arch == "ceit" else "cls")
        kw = dict(img=cfg["image_size"], in_ch=cfg["in_channels"], classes=cfg["num_classes"],
                  patch=cfg["patch_size"], dim=cfg["embed_dim"], depth=cfg["depth"],
                  heads=cfg["num_heads"], mlp_ratio=cfg.get("mlp_ratio", 4),
                  stem_channels=0, leff_kernel=None, lca=head == "lca")
        if stem["type"] == "i2t":
            kw.update(stem_channels=stem.get("channels", 32), stem_kernel=stem.get("kernel", 3),
                      stem_stride=stem.get("stride", 1), stem_pool=stem.get("pool", True))
        if ffn["type"] == "leff":
            kw["leff_kernel"] = ffn.get("kernel", 3)
        return models.VisionTransformer(**kw)
    if arch == "resnet_cifar":
        if "stages" in cfg:
            stages = [(s["width"], s["mids"]) for s in cfg["stages"]]
            return models.ResNetCifar(classes=cfg["num_classes"], in_ch=cfg["in_channels"],
                                      stem=cfg["stem"], stages=stages)
        return models.ResNetCifar(cfg.get("depth", 20), classes=cfg["num_classes"],
                                  in_ch=cfg["in_channels"], widths=cfg.get("widths", (16, 32, 64)))
    if arch == "resnet":  # torchvision's own definitions
        import torchvision
        from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
        if "stages" not in cfg:
            return getattr(torchvision.models, f"resnet{cfg.get('depth', 50)}")(num_classes=cfg["num_classes"])
        raise ValueError("explicit resnet forms are not built here")
    if arch == "mobilenetv2":
        cifar = cfg.get("cifar", True)
        if "blocks" in cfg:
            blocks = [(b["hidden"], b["out"], b.get("stride", 1)) for b in cfg["blocks"]]
            return models.MobileNetV2(classes=cfg["num_classes"], in_ch=cfg["in_channels"],
                                      cifar=cifar, stem=cfg["stem"], blocks=blocks, last=cfg["last"])
        return models.MobileNetV2(classes=cfg["num_classes"], in_ch=cfg["in_channels"],
                                  width=cfg.get("width_mult", 1.0), cifar=cifar)
    if arch == "mobilenetv3":  # torchvision's own definitions
        import torchvision
        if "blocks" in cfg:
            raise ValueError("explicit mobilenetv3 forms are not built here")
        make = getattr(torchvision.models, f"mobilenet_v3_{cfg.get('variant', 'large')}")
        m = make(num_classes=cfg["num_classes"], width_mult=cfg.get("width_mult", 1.0))
        if cfg.get("cifar", False):
            m.features[0][0].stride = (1, 1)
        return m
    if arch == "efficientnet":  # torchvision's own definitions
        from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
        scaling = {"b0": (1.0, 1.0), "b1": (1.0, 1.1), "b2": (1.1, 1.2), "b3": (1.2, 1.4), "b4": (1.4, 1.8)}
        w, d = scaling[cfg["variant"]] if "variant" in cfg else (cfg.get("width_mult", 1.0), cfg.get("depth_mult", 1.0))
        setting, last = _efficientnet_conf("efficientnet_b0", width_mult=w, depth_mult=d)
        m = EfficientNet(setting, 0.2, num_classes=cfg["num_classes"], last_channel=last)
        if cfg.get("cifar", False):
            m.features[0][0].stride = (1, 1)
        return m
    raise ValueError(arch)


def count(cfg):
    m = build(cfg).eval()
    total = [0]
    lca_qkv = set()
    if getattr(m, "lca", None) is not None:
        lca_qkv.add(m.lca.attn.qkv)

    def conv_hook(mod, inp, out):
        kh, kw = mod.kernel_size
        per_out = kh * kw * mod.in_channels // mod.groups + (1 if mod.bias is not None else 0)
        total[0] += per_out * out.shape[2] * out.shape[3] * mod.out_channels

    def linear_hook(mod, inp, out):
        rows = inp[0].numel() // mod.in_features
        per_out = mod.in_features + (1 if mod.bias is not None else 0)
        if mod in lca_qkv:  # q of the last token only; k and v of every token
            c = mod.out_features // 3
            total[0] += per_out * c + per_out * 2 * c * rows
        else:
            total[0] += per_out * mod.out_features * rows

    def attn_hook(mod, inp, out):
        x = inp[0]
        n, c = x.shape[1], x.shape[2]
        nq = 1 if mod.last_query_only else n
        total[0] += 2 * nq * n * c

    for mod in m.modules():
        if isinstance(mod, torch.nn.Conv2d):
            mod.register_forward_hook(conv_hook)
        elif isinstance(mod, torch.nn.Linear):
            mod.register_forward_hook(linear_hook)
        elif isinstance(mod, models.Attention):
            mod.register_forward_hook(attn_hook)
    x = torch.zeros(1, cfg["in_channels"], cfg["image_size"], cfg["image_size"])
    with torch.no_grad():
        m(x)
    params = sum(p.numel() for p in m.parameters())
    return params, total[0]


def ref_model(name):
    with open(os.path.join(REF, name + ".safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(json.loads(f.read(n))["__metadata__"]["model"])


def main():
    cfgs = [(n, ref_model(n)) for n in ("ceit_mini", "deit_mini", "resnet20", "mobilenetv2_w050")]
    vit_c = dict(image_size=28, in_channels=1, num_classes=10, embed_dim=96, depth=6, num_heads=3,
                 mlp_ratio=4)
    cfgs.append(("configC_ceit", dict(vit_c, arch="ceit", patch_size=2,
                                      stem={"type": "i2t", "channels": 32})))
    cfgs.append(("configC_deit", dict(vit_c, arch="deit", patch_size=4)))
    # the models of the api/examples golden job specs
    ex = os.path.join(os.path.dirname(__file__), "../../api/examples")
    for f in sorted(os.listdir(ex)):
        if f.endswith(".json"):
            with open(os.path.join(ex, f)) as fh:
                spec = json.load(fh)
            model = spec["model"]
            img = spec.get("data", {}).get("image")
            if img is not None:  # folder / manifest: the transforms' output (defaults 224, RGB)
                model.setdefault("image_size", img.get("size", 224))
                model.setdefault("in_channels", img.get("channels", 3))
            model.setdefault("image_size", 32 if "cifar" in spec.get("data", {}).get("dataset", "") else 28)
            model.setdefault("in_channels", 3 if "cifar" in spec.get("data", {}).get("dataset", "") else 1)
            model.setdefault("num_classes", 100 if spec.get("data", {}).get("dataset") == "cifar100" else 10)
            cfgs.append((f, model))
    # issue 16: torchvision's ResNets and the 224^2 forms of CeiT / DeiT / MobileNetV2
    for d in (18, 34, 50, 101, 152):
        cfgs.append((f"resnet{d}_224", dict(arch="resnet", depth=d, image_size=224, in_channels=3,
                                            num_classes=1000)))
    i2t = {"type": "i2t", "channels": 64, "kernel": 7, "stride": 2, "pool": True}
    for tag, dim, heads in (("t", 192, 3), ("s", 384, 6)):
        base = dict(image_size=224, in_channels=3, num_classes=1000, embed_dim=dim, depth=12,
                    num_heads=heads, mlp_ratio=4)
        cfgs.append((f"ceit_{tag}_224", dict(base, arch="ceit", patch_size=4, stem=i2t)))
        cfgs.append((f"deit_{tag}_224", dict(base, arch="deit", patch_size=16)))
    for w in (1.0, 1.5):
        cfgs.append((f"mobilenetv2_{w}_224", dict(arch="mobilenetv2", width_mult=w, cifar=False,
                                                  image_size=224, in_channels=3, num_classes=1000)))
    # issue 18: torchvision's MobileNetV3 and EfficientNet-B0..B4 (at their own resolutions)
    for v in ("large", "small"):
        cfgs.append((f"mobilenetv3_{v}_224", dict(arch="mobilenetv3", variant=v, image_size=224,
                                                  in_channels=3, num_classes=1000)))
    for v, size in (("b0", 224), ("b1", 240), ("b2", 260), ("b3", 300), ("b4", 380)):
        cfgs.append((f"efficientnet_{v}_{size}", dict(arch="efficientnet", variant=v, image_size=size,
                                                      in_channels=3, num_classes=1000)))
    for name, cfg in cfgs:
        p, macs = count(cfg)
        print(f"{name:32s} params {p:10d} macs {macs:12d}")


if __name__ == "__main__":
    main()
