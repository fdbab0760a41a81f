"""PyTorch's time for the layers bench_dense times, at the same shapes (batch 64).

Prints microseconds per forward and per backward (autograd, input and parameter
gradients) for each layer, best of several rounds, so that bench_dense's kernels can
be compared with what PyTorch does for the same work on the same cores.
Usage: OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_dense.py [threads]
"""
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)


def best_us(fn, rounds=7, min_s=0.04):
    fn()
    fn()
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        if time.perf_counter() - t0 >= min_s:
            break
        reps *= 2
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best * 1e6


def layer(name, make_inputs, forward):
    leaves = make_inputs()
    out = forward(*leaves)
    dy = torch.randn_like(out)

    def fwd():
        with torch.no_grad():
            forward(*leaves)

    def bwd():
        for t in leaves:
            t.grad = None
        y = forward(*leaves)
        y.backward(dy)

    tf = best_us(fwd)
    tfb = best_us(bwd)
    print(f"{name:22s} forward {tf:9.1f} us   backward {max(tfb - tf, 0.0):9.1f} us "
          f"(forward+backward {tfb:9.1f} us)", flush=True)


def linear(n, i, o):
    return lambda: (torch.randn(n, i, requires_grad=True),
                    (0.1 * torch.randn(o, i)).requires_grad_(),
                    torch.randn(o, requires_grad=True))


def attention_inputs(B, T, C):
    return lambda: (torch.randn(B, T, 3 * C, requires_grad=True),)


def attention(qkv, B=64, T=50, C=96, NH=3, last=False):
    q, k, v = qkv.reshape(B, T, 3, NH, C // NH).permute(2, 0, 3, 1, 4)
    if last:
        q = q[:, :, -1:, :]
    a = (q @ k.transpose(-2, -1)) * (C // NH) ** -0.5
    a = a.softmax(dim=-1)
    return (a @ v).transpose(1, 2).reshape(B, q.shape[2], C)


print(f"torch {torch.__version__}, {threads} threads")
layer("linear qkv", linear(3200, 96, 288), F.linear)
layer("linear proj", linear(3200, 96, 96), F.linear)
layer("linear fc1", linear(3200, 96, 384), F.linear)
layer("linear fc2", linear(3200, 384, 96), F.linear)
layer("linear head", linear(64, 96, 10), F.linear)
layer("attention", attention_inputs(64, 50, 96), attention)
layer("attention LCA", attention_inputs(64, 6, 96), lambda x: attention(x, T=6, last=True))
layer("layernorm", lambda: (torch.randn(3200, 96, requires_grad=True),
                            torch.randn(96, requires_grad=True),
                            torch.randn(96, requires_grad=True)),
      lambda x, w, b: F.layer_norm(x, (96,), w, b, 1e-6))
layer("gelu", lambda: (torch.randn(3200, 384, requires_grad=True),), F.gelu)
