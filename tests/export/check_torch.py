"""check_torch.py WEIGHTS LOGITS.json [--model CFG] [--tol T]

Builds the PyTorch module of a kiln weights file with api/python/kiln_torch.py
(strict state_dict load), runs it on the inputs of LOGITS.json (written by
tests/tools/export_logits) and compares its logits with kiln's eval logits
there. Prints the largest absolute difference; exits 1 if it exceeds T
(default 1e-4) or a shape differs, 2 on bad usage. Run with Debian's
/usr/bin/python3 (python3-torch).
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "api",
                                "python"))
import torch  # noqa: E402

import kiln_torch  # noqa: E402


def main(argv):
    args, opts = [], {}
    it = iter(argv)
    for a in it:
        if a in ("--model", "--tol"):
            opts[a] = next(it, None)
        else:
            args.append(a)
    if len(args) != 2 or None in opts.values():
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    weights, ref = args
    tol = float(opts.get("--tol", 1e-4))
    want = json.load(open(ref, encoding="utf-8"))
    torch.set_num_threads(2)
    net = kiln_torch.load(weights, opts.get("--model"))
    x = torch.tensor(want["input"], dtype=torch.float32).reshape(want["shape"])
    with torch.no_grad():
        got = net(x)
    expect = torch.tensor(want["logits"], dtype=torch.float32).reshape(want["shape"][0], -1)
    if got.shape != expect.shape:
        print(f"FAIL: logits of shape {list(got.shape)}, kiln's are {list(expect.shape)}",
              file=sys.stderr)
        return 1
    worst = (got - expect).abs().max().item()
    print(f"torch {torch.__version__}: {list(got.shape)} logits, max |torch - kiln| = {worst:.3e}")
    if not worst <= tol:
        print(f"FAIL: PyTorch's logits differ from kiln's by {worst} (> {tol})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
