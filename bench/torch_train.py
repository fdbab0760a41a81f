"""Training and inference throughput of the same models in PyTorch, for side-by-side runs.

Same models, batch, step (forward, cross-entropy, backward, AdamW for ViTs and
SGD for CNNs), eval-mode forward and timing as bench_train.c. Run with
/usr/bin/python3 (Debian's python3-torch). Usage: torch_train.py THREADS BATCH
SECONDS [MODEL...] (WARMUP=n steps first, default 3); prints the BLAS core line first.
"""
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # else OpenBLAS and OpenMP threads fight
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference", "torch"))
sys.path.insert(0, os.environ.get("KILN_TORCH_MODELS", ""))
from models import ceit, deit, ResNetCifar, MobileNetV2  # noqa: E402
import torchvision  # noqa: E402

threads, batch, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
warmup = int(os.environ.get("WARMUP", "3"))
torch.set_num_threads(threads)
torch.manual_seed(0)
MODELS = {
    "ceit-mini-fmnist": (lambda: ceit(img=28, in_ch=1, patch=2, dim=96, depth=6, heads=3, stem_channels=32), (1, 28), True),
    "deit-mini-fmnist": (lambda: deit(img=28, in_ch=1, patch=4, dim=96, depth=6, heads=3), (1, 28), True),
    "resnet20-cifar": (lambda: ResNetCifar(20), (3, 32), False),
    "mobilenetv2-w050-cifar": (lambda: MobileNetV2(width=0.5), (3, 32), False),
    "ceit-tiny-cifar": (lambda: ceit(img=32, in_ch=3, patch=2, dim=192, depth=12, heads=3, stem_channels=32), (3, 32), True),
    "deit-tiny-cifar": (lambda: deit(img=32, in_ch=3, patch=4, dim=192, depth=12, heads=3), (3, 32), True),
    "resnet56-cifar": (lambda: ResNetCifar(56), (3, 32), False),
    "mobilenetv2-w100-cifar": (lambda: MobileNetV2(width=1.0), (3, 32), False),
    "resnet18-224": (lambda: torchvision.models.resnet18(num_classes=1000), (3, 224), False),
    "resnet50-224": (lambda: torchvision.models.resnet50(num_classes=1000), (3, 224), False),
    "ceit-t-224": (lambda: ceit(img=224, in_ch=3, classes=1000, patch=4, dim=192, depth=12, heads=3,
                                stem_channels=64, stem_kernel=7, stem_stride=2), (3, 224), True),
}
for name in sys.argv[4:] or list(MODELS):
    make, (c, s), adamw = MODELS[name]
    m = make()
    if adamw:
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.05)
    else:
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, c, s, s)
    y = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(m(x), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds or n < 3:
        step()
        n += 1
    dt = (time.perf_counter() - t0) / n
    dc = (time.process_time() - c0) / n
    m.eval()
    with torch.no_grad():
        for _ in range(2):
            m(x)
        k, t1 = 0, time.perf_counter()
        while time.perf_counter() - t1 < seconds / 2 or k < 3:
            m(x)
            k += 1
    di = (time.perf_counter() - t1) / k
    params = sum(p.numel() for p in m.parameters())
    print(f"{name:24s} params={params / 1e6:6.2f}M  train {batch / dt:8.1f} img/s  infer {batch / di:8.1f} img/s  cpu {batch / dc:8.1f} img/s  ({n} steps, batch {batch}, {threads} threads)", flush=True)
