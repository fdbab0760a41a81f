"""PyTorch conv2d timings at the shapes bench_conv uses, for a side-by-side.

Usage: /usr/bin/python3 bench/torch_conv.py [threads] [batch] [model ...]
Prints fwd / bwd (dinp + dweight) ms per layer, fastest of repeats, for the
NCHW layout that the reference models train in.
"""
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 64
only = sys.argv[3:]
torch.set_num_threads(threads)

# (model, name, H, IC, OC, k, stride, groups)
LAYERS = [
    ("resnet20", "stem 3x3", 32, 3, 16, 3, 1, 1),
    ("resnet20", "s1 3x3", 32, 16, 16, 3, 1, 1),
    ("resnet20", "s2 3x3 s2", 32, 16, 32, 3, 2, 1),
    ("resnet20", "s2 1x1 s2 down", 32, 16, 32, 1, 2, 1),
    ("resnet20", "s2 3x3", 16, 32, 32, 3, 1, 1),
    ("resnet20", "s3 3x3 s2", 16, 32, 64, 3, 2, 1),
    ("resnet20", "s3 1x1 s2 down", 16, 32, 64, 1, 2, 1),
    ("resnet20", "s3 3x3", 8, 64, 64, 3, 1, 1),
    ("mbv2", "dw 32x32x96", 32, 96, 96, 3, 1, 96),
    ("mbv2", "dw 32x32x144 s2", 32, 144, 144, 3, 2, 144),
    ("mbv2", "dw 8x8x384", 8, 384, 384, 3, 1, 384),
    ("mbv2", "1x1 24->144 @32", 32, 24, 144, 1, 1, 1),
    ("mbv2", "1x1 320->1280 @4", 4, 320, 1280, 1, 1, 1),
    ("ceit-mini", "stem 3x3", 28, 1, 32, 3, 1, 1),
    ("ceit-mini", "patchify k2", 14, 32, 96, 2, 2, 1),
    ("ceit-mini", "leff dw 3x3", 7, 384, 384, 3, 1, 384),
]


def best(fn, budget=0.3):
    fn()
    t_end, b = time.perf_counter() + budget, 1e9
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        b = min(b, time.perf_counter() - t0)
    return b


print(f"torch {torch.__version__}, {threads} threads, batch {batch}")
print(f"{'model':10s} {'layer':18s} {'fwd ms':>9s} {'bwd ms':>9s} {'fwd GF/s':>9s} {'bwd GF/s':>9s}")
for model, name, H, IC, OC, k, s, g in LAYERS:
    if only and model not in only:
        continue
    pad = 0 if k == s else k // 2
    conv = torch.nn.Conv2d(IC, OC, k, s, pad, groups=g, bias=False)
    x = torch.randn(batch, IC, H, H, requires_grad=True)
    y = conv(x)
    dy = torch.randn_like(y)
    Ho = y.shape[2]
    flops = 2.0 * batch * Ho * Ho * OC * (IC // g) * k * k

    def fwd():
        with torch.no_grad():
            conv(x)

    def bwd():
        torch.autograd.grad(y, [x, conv.weight], dy, retain_graph=True)

    tf = best(fwd)
    tb = best(bwd)
    print(f"{model:10s} {name:18s} {tf*1e3:9.3f} {tb*1e3:9.3f} {flops/tf*1e-9:9.1f} {2*flops/tb*1e-9:9.1f}")
