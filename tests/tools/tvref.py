#!/usr/bin/python3
# tvref.py - reference outputs of PIL and torchvision for check_transform.c
# and check_imgdecode.c (run with Debian's /usr/bin/python3).
#
#   tvref.py decode DIR      for every file DIR/*.jpg|*.png: DIR/<file>.RGB and
#                            .L (raw pixels of PIL's convert), or .err if PIL refuses
#   tvref.py ops CASES DIR   one case a line: "name src mode op args..."; writes
#                            DIR/name.out (uint8 HWC, or float32 HWC for the
#                            tensor ops) and DIR/name.shape ("h w c")
# Nothing else is read or written.
import math
import os
import sys
import warnings

import numpy as np
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import RandAugment, _apply_op

INTERP = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


def decode(d):
    for name in sorted(os.listdir(d)):
        if not (name.endswith(".jpg") or name.endswith(".png")):
            continue
        path = os.path.join(d, name)
        try:
            with open(path, "rb") as f:
                im = Image.open(f)
                im.load()
            for mode in ("RGB", "L"):
                c = im.convert(mode)
                with open(path + "." + mode, "wb") as o:
                    o.write(np.asarray(c, dtype=np.uint8).tobytes())
        except Exception as e:  # noqa: BLE001 - any refusal is the answer
            with open(path + ".err", "w") as o:
                o.write(str(e))


def save(d, name, out):
    if isinstance(out, Image.Image):
        a = np.asarray(out, dtype=np.uint8)
        if a.ndim == 2:
            a = a[:, :, None]
    else:  # CHW float tensor
        a = out.permute(1, 2, 0).contiguous().numpy().astype(np.float32)
    with open(os.path.join(d, name + ".out"), "wb") as o:
        o.write(a.tobytes())
    with open(os.path.join(d, name + ".shape"), "w") as o:
        o.write("%d %d %d\n" % a.shape)


def ra_magnitude(op, m, h, w):
    meta = RandAugment()._augmentation_space(31, (h, w))
    mags, signed = meta[op]
    return (float(mags[m].item()) if mags.ndim > 0 else 0.0), signed


def run_case(img, op, a):
    if op == "resize":
        return F.resize(img, [int(a[0]), int(a[1])], INTERP[a[2]])
    if op == "resize_short":
        return F.resize(img, int(a[0]), INTERP[a[1]])
    if op == "resized_crop":
        t, l, h, w, s = (int(x) for x in a[:5])
        return F.resized_crop(img, t, l, h, w, [s, s], INTERP[a[5]])
    if op == "center_crop":
        return F.center_crop(img, [int(a[0]), int(a[1])])
    if op == "hflip":
        return F.hflip(img)
    if op == "ra":  # name m negate
        mag, signed = ra_magnitude(a[0], int(a[1]), img.height, img.width)
        if signed and a[2] == "1":
            mag = -mag
        return _apply_op(img, a[0], mag, interpolation=InterpolationMode.NEAREST, fill=None)
    if op == "jitter":  # order(4 digits) b c s h
        for k in a[0]:
            f = float(a[1 + int(k)])
            if k == "0":
                img = F.adjust_brightness(img, f)
            elif k == "1":
                img = F.adjust_contrast(img, f)
            elif k == "2":
                img = F.adjust_saturation(img, f)
            elif f != 0.0:
                img = F.adjust_hue(img, f)
        return img
    if op == "normalize":  # mean... std... (c each)
        c = len(img.getbands())
        mean = [float(x) for x in a[:c]]
        std = [float(x) for x in a[c : 2 * c]]
        return F.normalize(F.to_tensor(img), mean, std)
    if op == "eval":  # resize crop interp
        img = F.resize(img, int(a[0]), INTERP[a[2]])
        img = F.center_crop(img, [int(a[1]), int(a[1])])
        return F.normalize(F.to_tensor(img), [0.485, 0.456, 0.406][: len(img.getbands())],
                           [0.229, 0.224, 0.225][: len(img.getbands())])
    if op == "train":  # t l h w size interp flip opA negA opB negB m order b c s h ei ej eh ew
        t, l, h, w, s = (int(x) for x in a[:5])
        img = F.resized_crop(img, t, l, h, w, [s, s], INTERP[a[5]])
        if a[6] == "1":
            img = F.hflip(img)
        m = int(a[11])
        for opn, neg in ((a[7], a[8]), (a[9], a[10])):
            mag, signed = ra_magnitude(opn, m, img.height, img.width)
            if signed and neg == "1":
                mag = -mag
            img = _apply_op(img, opn, mag, interpolation=InterpolationMode.NEAREST, fill=None)
        img = run_case(img, "jitter", a[12:17])
        c = len(img.getbands())
        x = F.normalize(F.to_tensor(img), [0.485, 0.456, 0.406][:c], [0.229, 0.224, 0.225][:c])
        ei, ej, eh, ew = (int(v) for v in a[17:21])
        return F.erase(x, ei, ej, eh, ew, torch.tensor(0.0))
    raise ValueError("unknown op " + op)


def ops(cases, d):
    with open(cases) as f:
        for line in f:
            p = line.split()
            if not p:
                continue
            name, src, mode, op, args = p[0], p[1], p[2], p[3], p[4:]
            with open(src, "rb") as g:
                img = Image.open(g).convert(mode)
            save(d, name, run_case(img, op, args))


if __name__ == "__main__":
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    if sys.argv[1] == "decode":
        decode(sys.argv[2])
    elif sys.argv[1] == "ops":
        ops(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: tvref.py decode DIR | ops CASES DIR")
