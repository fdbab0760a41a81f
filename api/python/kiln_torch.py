"""kiln_torch - kiln's networks as PyTorch modules, loaded from kiln's weights.

A network trained, pruned (DMCP) or adapted (DNA) by kiln leaves it as a
safetensors file with PyTorch's state_dict names plus a model config: the
file's "model" metadata, or the job's architecture.json. This module builds
the torch.nn.Module that config describes (ResNet in both forms, MobileNetV2,
MobileNetV3, EfficientNet, CeiT, DeiT and their stem/ffn/head mixes, with every
width explicit) and loads the
weights with strict=True, so a missing, extra or misshaped tensor is an error.

    import kiln_torch
    net = kiln_torch.load("model.safetensors")                     # config from metadata
    net = kiln_torch.load("model.safetensors", "architecture.json")
    logits = net(images)  # (B, C, H, W), normalised as in training

Or from a shell: python3 kiln_torch.py WEIGHTS [--model CFG] prints the
network. Needs only torch (Debian's python3-torch); no safetensors package.
The module is in eval mode after load().
"""
import json
import math
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-5
LN_EPS = 1e-6

_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16,
           "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
           "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


# ---- files -----------------------------------------------------------------

def read_safetensors(path):
    """Returns (tensors, metadata) of a safetensors file: a dict name -> tensor
    (a copy, in file order) and the __metadata__ dict (may be empty)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than its header length)")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} is past the end of the file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    data = memoryview(blob)[8 + n:]
    tensors = {}
    for name, info in header.items():
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, not supported")
        start, end = info["data_offsets"]
        if not 0 <= start <= end <= len(data):
            raise ValueError(f"{path}: tensor {name}: data_offsets past the data")
        shape = list(info["shape"])
        raw = bytes(data[start:end])
        t = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(shape).clone()
    return tensors, meta


def read_config(model):
    """A model config as a dict: model may be a dict, inline JSON text, or the
    path of a JSON file (a model config or a job's architecture.json)."""
    if isinstance(model, dict):
        return model
    text = model if model.lstrip().startswith("{") else open(model, encoding="utf-8").read()
    cfg = json.loads(text)
    if not isinstance(cfg, dict) or "arch" not in cfg:
        raise ValueError(f"{model if len(model) < 200 else 'model config'}: not a model config "
                         "(no arch)")
    return cfg


# ---- ViT: CeiT and DeiT -------------------------------------------------------

class Attention(nn.Module):
    """qkv -> softmax(q k^T / sqrt(head dim)) v -> proj. query None: every
    token's query; an index (-1: the last, as LCA) only that token's."""

    def __init__(self, dim, heads, query=None):
        super().__init__()
        self.heads, self.query = heads, query
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, c = x.shape
        hs = c // self.heads
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, hs).permute(2, 0, 3, 1, 4).unbind(0)
        if self.query is not None:
            q = q[:, :, self.query:][:, :, :1]
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hs), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, q.shape[2], c)
        return self.proj(y)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class LeFF(nn.Module):
    """Patch tokens as a grid: 1x1, BN, GELU, depthwise kxk, BN, GELU, 1x1, BN;
    the class token passes through."""

    def __init__(self, dim, hidden, kernel):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, hidden, 1)
        self.bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self.conv2 = nn.Conv2d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden)
        self.bn2 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self.conv3 = nn.Conv2d(hidden, dim, 1)
        self.bn3 = nn.BatchNorm2d(dim, eps=BN_EPS)

    def forward(self, x):
        b, t, c = x.shape
        side = math.isqrt(t - 1)
        g = x[:, 1:].transpose(1, 2).reshape(b, c, side, side)
        g = F.gelu(self.bn1(self.conv1(g)))
        g = F.gelu(self.bn2(self.conv2(g)))
        g = self.bn3(self.conv3(g))
        return torch.cat([x[:, :1], g.flatten(2).transpose(1, 2)], dim=1)


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, leff_kernel):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        if leff_kernel:
            self.leff = LeFF(dim, hidden, leff_kernel)
        else:
            self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        ffn = self.leff if hasattr(self, "leff") else self.mlp
        return x + ffn(self.norm2(x))


class LCABlock(nn.Module):
    """The last class token attends to the class tokens of every block."""

    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads, query=-1)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.feedforward = Mlp(dim, hidden)

    def forward(self, tokens):
        y = tokens[:, -1:] + self.attn(self.norm1(tokens))
        return y + self.feedforward(self.norm2(y))


class I2T(nn.Module):
    """CeiT's image-to-tokens stem: conv, BN, optional max-pool, patch conv."""

    def __init__(self, cin, channels, kernel, stride, pool, patch, dim):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.conv = nn.Conv2d(cin, channels, kernel, stride, kernel // 2, bias=False)
        self.backbone.bn = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.pool = pool
        self.proj = nn.Conv2d(channels, dim, patch, patch)

    def forward(self, x):
        x = self.backbone.bn(self.backbone.conv(x))
        if self.pool:
            x = F.max_pool2d(x, 3, 2, 1)
        return self.proj(x)


class PatchEmbed(nn.Module):
    def __init__(self, cin, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, patch, patch)

    def forward(self, x):
        return self.proj(x)


class ViT(nn.Module):
    """CeiT, DeiT or a mix, from a ViT model config."""

    def __init__(self, cfg):
        super().__init__()
        arch, dim, depth = cfg["arch"], cfg["embed_dim"], cfg["depth"]
        heads, patch, size = cfg["num_heads"], cfg["patch_size"], cfg["image_size"]
        hidden = math.floor(dim * cfg.get("mlp_ratio", 4.0))
        stem = cfg.get("stem", {})
        ffn = cfg.get("ffn", {})
        stem_type = stem.get("type", "i2t" if arch == "ceit" else "patchify")
        ffn_type = ffn.get("type", "leff" if arch == "ceit" else "mlp")
        head = cfg.get("head", "lca" if arch == "ceit" else "cls")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        if stem_type == "i2t":
            kernel, stride = stem.get("kernel", 3), stem.get("stride", 1)
            pool = stem.get("pool", True)
            fm = size // stride
            if pool:
                fm = (fm - 1) // 2 + 1
            grid = fm // patch
        else:
            grid = size // patch
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        if head == "lca":
            self.pos_layer_embed = nn.Parameter(torch.zeros(1, depth, dim))
        if stem_type == "i2t":
            self.i2t = I2T(cfg["in_channels"], stem.get("channels", 32), kernel, stride, pool,
                           patch, dim)
        else:
            self.patch_embed = PatchEmbed(cfg["in_channels"], patch, dim)
        leff_kernel = ffn.get("kernel", 3) if ffn_type == "leff" else 0
        self.blocks = nn.ModuleList(Block(dim, heads, hidden, leff_kernel) for _ in range(depth))
        if head == "lca":
            self.lca = LCABlock(dim, heads, hidden)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.head = nn.Linear(dim, cfg["num_classes"])

    def forward(self, x):
        stem = self.i2t if hasattr(self, "i2t") else self.patch_embed
        t = stem(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1) + self.pos_embed
        cls = []
        for block in self.blocks:
            t = block(t)
            cls.append(t[:, :1])
        if hasattr(self, "lca"):
            t = self.lca(torch.cat(cls, dim=1) + self.pos_layer_embed)
        return self.head(self.norm(t[:, 0]))


# ---- CNNs: every width explicit, so pruned and adapted nets are the same class ----

def _conv_bn(cin, cout, k, stride, groups=1):
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=BN_EPS)]


class BasicBlock(nn.Module):
    def __init__(self, cin, mid, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, mid, 3, stride)
        self.conv2, self.bn2 = _conv_bn(mid, cout, 3, 1)
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(*_conv_bn(cin, cout, 1, stride))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        s = self.downsample(x) if hasattr(self, "downsample") else x
        return F.relu(y + s)


def resnet_stages(cfg):
    """(stem, [(width, [mids])]) of a ResNet-CIFAR config in either form."""
    if "stages" in cfg:
        return cfg["stem"], [(s["width"], list(s["mids"])) for s in cfg["stages"]]
    n = (cfg.get("depth", 20) - 2) // 6
    widths = cfg.get("widths", [16, 32, 64])
    return widths[0], [(w, [w] * n) for w in widths]


class ResNetCifar(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        stem, stages = resnet_stages(cfg)
        self.conv1, self.bn1 = _conv_bn(cfg["in_channels"], stem, 3, 1)
        cin = stem
        self.n_stages = len(stages)
        for i, (width, mids) in enumerate(stages):
            blocks = []
            for j, mid in enumerate(mids):
                blocks.append(BasicBlock(cin, mid, width, 2 if i > 0 and j == 0 else 1))
                cin = width
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, cfg["num_classes"])

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(x.mean((2, 3)))


class Bottleneck(nn.Module):
    def __init__(self, cin, mid, mid2, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, mid, 1, 1)
        self.conv2, self.bn2 = _conv_bn(mid, mid2, 3, stride)
        self.conv3, self.bn3 = _conv_bn(mid2, cout, 1, 1)
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(*_conv_bn(cin, cout, 1, stride))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(y)))))
        s = self.downsample(x) if hasattr(self, "downsample") else x
        return F.relu(y + s)


# torchvision's ResNet-18..152: (block, blocks per stage)
_RESNET = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]),
           50: ("bottleneck", [3, 4, 6, 3]), 101: ("bottleneck", [3, 4, 23, 3]),
           152: ("bottleneck", [3, 8, 36, 3])}


def resnet_imagenet_layout(cfg):
    """(block, stem, [(width, [mids], [mids2])]) of an ImageNet-form config."""
    if "stages" in cfg:
        return cfg.get("block", "basic"), cfg["stem"], [
            (s["width"], list(s["mids"]), list(s.get("mids2", s["mids"]))) for s in cfg["stages"]]
    block, counts = _RESNET[cfg.get("depth", 50)]
    out = []
    for i, n in enumerate(counts):
        planes = 64 << i
        out.append((4 * planes if block == "bottleneck" else planes, [planes] * n, [planes] * n))
    return block, 64, out


class ResNet(nn.Module):
    """torchvision's ResNet (7x7/2 stem, max-pool), with every width explicit."""

    def __init__(self, cfg):
        super().__init__()
        block, stem, stages = resnet_imagenet_layout(cfg)
        self.conv1 = nn.Conv2d(cfg["in_channels"], stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, eps=BN_EPS)
        cin = stem
        self.n_stages = len(stages)
        for i, (width, mids, mids2) in enumerate(stages):
            blocks = []
            for j, (mid, mid2) in enumerate(zip(mids, mids2)):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(Bottleneck(cin, mid, mid2, width, stride) if block == "bottleneck"
                              else BasicBlock(cin, mid, width, stride))
                cin = width
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, cfg["num_classes"])

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(x.mean((2, 3)))


# (expansion t, width c, repeats n, stride s) of MobileNetV2
_MBV2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
         (6, 160, 3, 2), (6, 320, 1, 1)]


def mbv2_layout(cfg):
    """(stem, [(hidden, out, stride)], last, cifar) of a MobileNetV2 config in either form."""
    cifar = cfg.get("cifar", True)
    if "blocks" in cfg:
        blocks = [(b["hidden"], b["out"], b["stride"]) for b in cfg["blocks"]]
        return cfg["stem"], blocks, cfg["last"], cifar
    w = cfg.get("width_mult", 1.0)

    def c(v):
        return max(8, int(v * w + 4) // 8 * 8)

    stem, cin, blocks = c(32), c(32), []
    for i, (t, ch, n, s) in enumerate(_MBV2):
        if cifar and i == 1:
            s = 1
        for j in range(n):
            blocks.append((cin * t, c(ch), s if j == 0 else 1))
            cin = c(ch)
    return stem, blocks, (c(1280) if w > 1 else 1280), cifar


class InvertedResidual(nn.Module):
    def __init__(self, cin, hidden, cout, stride):
        super().__init__()
        layers = []
        if hidden != cin:
            layers.append(nn.Sequential(*_conv_bn(cin, hidden, 1, 1), nn.ReLU6()))
        layers.append(nn.Sequential(*_conv_bn(hidden, hidden, 3, stride, groups=hidden),
                                    nn.ReLU6()))
        layers += _conv_bn(hidden, cout, 1, 1)
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        stem, blocks, last, cifar = mbv2_layout(cfg)
        feats = [nn.Sequential(*_conv_bn(cfg["in_channels"], stem, 3, 1 if cifar else 2),
                               nn.ReLU6())]
        cin = stem
        for hidden, cout, stride in blocks:
            feats.append(InvertedResidual(cin, hidden, cout, stride))
            cin = cout
        feats.append(nn.Sequential(*_conv_bn(cin, last, 1, 1), nn.ReLU6()))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(last, cfg["num_classes"]))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


# ---- MobileNetV3 and EfficientNet (torchvision's module names) --------------------

def _make_div(v):
    """torchvision's _make_divisible(v, 8)."""
    r = max(8, int(v + 4) // 8 * 8)
    return r + 8 if r < 0.9 * v else r


# (kernel, expanded, out, se, h-swish, stride) of mobilenet_v3_large / _small
_V3 = {"large": [(3, 16, 16, 0, 0, 1), (3, 64, 24, 0, 0, 2), (3, 72, 24, 0, 0, 1),
                 (5, 72, 40, 1, 0, 2), (5, 120, 40, 1, 0, 1), (5, 120, 40, 1, 0, 1),
                 (3, 240, 80, 0, 1, 2), (3, 200, 80, 0, 1, 1), (3, 184, 80, 0, 1, 1),
                 (3, 184, 80, 0, 1, 1), (3, 480, 112, 1, 1, 1), (3, 672, 112, 1, 1, 1),
                 (5, 672, 160, 1, 1, 2), (5, 960, 160, 1, 1, 1), (5, 960, 160, 1, 1, 1)],
       "small": [(3, 16, 16, 1, 0, 2), (3, 72, 24, 0, 0, 2), (3, 88, 24, 0, 0, 1),
                 (5, 96, 40, 1, 1, 2), (5, 240, 40, 1, 1, 1), (5, 240, 40, 1, 1, 1),
                 (5, 120, 48, 1, 1, 1), (5, 144, 48, 1, 1, 1), (5, 288, 96, 1, 1, 2),
                 (5, 576, 96, 1, 1, 1), (5, 576, 96, 1, 1, 1)]}
# (expand ratio, kernel, stride, in, out, layers) of efficientnet_b0; b1..b4 scale it
_EFF = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
_EFF_SCALING = {"b0": (1.0, 1.0), "b1": (1.0, 1.1), "b2": (1.1, 1.2), "b3": (1.2, 1.4),
                "b4": (1.4, 1.8)}


def mb_layout(cfg):
    """(stem, [(hidden, out, stride, kernel, se, act, stage)], last, head_width, cifar) of a
    MobileNetV3 or EfficientNet config in either form."""
    v3 = cfg["arch"] == "mobilenetv3"
    cifar = cfg.get("cifar", False)
    if "blocks" in cfg:
        blocks = [(b["hidden"], b["out"], b.get("stride", 1), b.get("kernel", 3), b.get("se", 0),
                   b.get("act", "relu") if v3 else "silu", b.get("stage", 0))
                  for b in cfg["blocks"]]
        return cfg["stem"], blocks, cfg["last"], cfg.get("head_width", 0), cifar
    if v3:
        w = cfg.get("width_mult", 1.0)
        blocks = []
        for k, e, o, se, hs, st in _V3[cfg.get("variant", "large")]:
            hid = _make_div(e * w)
            blocks.append((hid, _make_div(o * w), st, k, _make_div(hid // 4) if se else 0,
                           "hswish" if hs else "relu", 0))
        head = _make_div((1280 if cfg.get("variant", "large") == "large" else 1024) * w)
        return _make_div(16 * w), blocks, 6 * blocks[-1][1], head, cifar
    if "variant" in cfg or ("width_mult" not in cfg and "depth_mult" not in cfg):
        w, d = _EFF_SCALING[cfg.get("variant", "b0")]
    else:
        w, d = cfg.get("width_mult", 1.0), cfg.get("depth_mult", 1.0)
    blocks = []
    for s, (t, k, st, cin, cout, n) in enumerate(_EFF):
        cin, cout = _make_div(cin * w), _make_div(cout * w)
        for j in range(int(math.ceil(n * d))):
            blocks.append((_make_div(cin * t), cout, st if j == 0 else 1, k, max(1, cin // 4),
                           "silu", s))
            cin = cout
    return _make_div(32 * w), blocks, 4 * blocks[-1][1], 0, cifar


_ACTS = {"relu": nn.ReLU, "hswish": nn.Hardswish, "silu": nn.SiLU}


def _cna(cin, cout, k, stride, eps, act=None, groups=1):
    """torchvision's Conv2dNormActivation: conv (no bias), BN, [act]."""
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout, eps=eps)]
    return nn.Sequential(*(layers + ([_ACTS[act]()] if act else [])))


class SqueezeExcite(nn.Module):
    def __init__(self, c, s, v3):
        super().__init__()
        self.fc1, self.fc2, self.v3 = nn.Conv2d(c, s, 1), nn.Conv2d(s, c, 1), v3

    def forward(self, x):
        g = self.fc1(x.mean((2, 3), keepdim=True))
        g = self.fc2(F.relu(g) if self.v3 else F.silu(g))
        return x * (F.hardsigmoid(g) if self.v3 else torch.sigmoid(g))


class MBBlock(nn.Module):
    def __init__(self, cin, hidden, cout, stride, k, se, act, eps, v3):
        super().__init__()
        layers = [_cna(cin, hidden, 1, 1, eps, act)] if hidden != cin else []
        layers.append(_cna(hidden, hidden, k, stride, eps, act, groups=hidden))
        if se:
            layers.append(SqueezeExcite(hidden, se, v3))
        layers.append(_cna(hidden, cout, 1, 1, eps))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV3EfficientNet(nn.Module):
    """MobileNetV3 (blocks under features.i) and EfficientNet (features.{stage+1}.j);
    dropout and stochastic depth are the identity in eval mode and left out."""

    def __init__(self, cfg):
        super().__init__()
        v3 = cfg["arch"] == "mobilenetv3"
        eps = 1e-3 if v3 else BN_EPS
        stem, blocks, last, head, cifar = mb_layout(cfg)
        act = "hswish" if v3 else "silu"
        feats = [_cna(cfg["in_channels"], stem, 3, 1 if cifar else 2, eps, act)]
        stages = []
        cin = stem
        for hidden, cout, stride, k, se, bact, stage in blocks:
            blk = MBBlock(cin, hidden, cout, stride, k, se, bact, eps, v3)
            if v3:
                feats.append(blk)
            else:
                if stage == len(stages):
                    stages.append([])
                stages[stage].append(blk)
            cin = cout
        feats += [nn.Sequential(*st) for st in stages]
        feats.append(_cna(cin, last, 1, 1, eps, act))
        self.features = nn.Sequential(*feats)
        n = cfg["num_classes"]
        if v3:
            self.classifier = nn.Sequential(nn.Linear(last, head), nn.Hardswish(), nn.Dropout(0.0),
                                            nn.Linear(head, n))
        else:
            self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(last, n))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


# ---- the entry points ----------------------------------------------------------

_ARCHS = {"ceit": ViT, "deit": ViT, "resnet_cifar": ResNetCifar, "resnet": ResNet,
          "mobilenetv2": MobileNetV2, "mobilenetv3": MobileNetV3EfficientNet,
          "efficientnet": MobileNetV3EfficientNet}


def build(model):
    """The untrained torch.nn.Module of a model config (dict, JSON text or file)."""
    cfg = read_config(model)
    cls = _ARCHS.get(cfg.get("arch"))
    if cls is None:
        raise ValueError(f"arch {cfg.get('arch')!r}: kiln_torch builds {', '.join(_ARCHS)}")
    return cls(cfg)


def load(weights, model=None):
    """The network of a kiln weights file (a job's model.safetensors, or a
    checkpoint: its optim.* and train.* tensors are left out), built from
    model (config dict, JSON text or file, e.g. architecture.json) or from
    the file's "model" metadata, loaded with strict=True, in eval mode."""
    tensors, meta = read_safetensors(weights)
    if model is None:
        if "model" not in meta:
            raise ValueError(f"{weights} has no model metadata: pass the model config "
                             "(e.g. the job's architecture.json)")
        model = json.loads(meta["model"])
    net = build(model)
    state = {k: v for k, v in tensors.items() if not k.startswith(("optim.", "train."))}
    net.load_state_dict(state, strict=True)
    return net.eval()


def main(argv):
    if not argv or argv[0] in ("-h", "--help") or len(argv) not in (1, 3) or \
            (len(argv) == 3 and argv[1] != "--model"):
        print("usage: python3 kiln_torch.py WEIGHTS [--model CFG]", file=sys.stderr)
        return 2
    net = load(argv[0], argv[2] if len(argv) == 3 else None)
    print(net)
    print(f"{sum(p.numel() for p in net.parameters())} parameters", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
