#!/usr/bin/python3
# torch_imgloader.py - images/s of torchvision's DataLoader alone on an
# ImageFolder, with the DeiT training transforms (RandomResizedCrop bicubic,
# flip, RandAugment(2, 9), ToTensor, Normalize, RandomErasing(0.25)), the
# comparison for bench_imgloader. Usage: torch_imgloader.py FOLDER [SIZE
# [WORKERS [BATCHES]]]; prints one JSON line.
import json
import sys
import time

import torch
from torchvision import datasets, transforms
from torchvision.transforms import InterpolationMode

root = sys.argv[1]
size = int(sys.argv[2]) if len(sys.argv) > 2 else 224
workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
batches = int(sys.argv[4]) if len(sys.argv) > 4 else 40
torch.set_num_threads(1)
tf = transforms.Compose([
    transforms.RandomResizedCrop(size, interpolation=InterpolationMode.BICUBIC),
    transforms.RandomHorizontalFlip(),
    transforms.RandAugment(2, 9),
    transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    transforms.RandomErasing(0.25),
])
ds = datasets.ImageFolder(root + "/train", tf)
dl = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=workers,
                                 drop_last=True, persistent_workers=True, prefetch_factor=2)
done, t0 = 0, None
while done < batches + 2:
    for x, y in dl:
        if done == 2:
            t0 = time.monotonic()
        done += 1
        if done == batches + 2:
            break
s = time.monotonic() - t0
print(json.dumps({"bench": "torch_imgloader", "size": size, "workers": workers, "files": len(ds),
                  "images": batches * 64, "seconds": round(s, 3),
                  "images_per_s": round(batches * 64 / s, 1)}))
