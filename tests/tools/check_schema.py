#!/usr/bin/env python3
"""check_schema.py - checks api/schemas/jobspec.schema.json against the golden
examples (needs the jsonschema package, e.g. the python3 on PATH here; not part of `make test`).

Usage: python3 tests/tools/check_schema.py [CANONICAL.json ...]
Every api/examples/*.json and every extra file given (e.g. canonical specs
written by the server) must validate. Every api/examples/invalid/*.json must
fail, except those whose problem is a cross-field rule the schema cannot
express (listed in CROSS_FIELD; the schema's description names these rules).
Exits non-zero on any mismatch.
"""
import glob
import json
import os
import sys

import jsonschema

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..")
CROSS_FIELD = {
    "heads-not-dividing",   # num_heads must divide embed_dim
    "grid-not-whole",       # the stem's feature map must divide by patch_size
    "channels-vs-dataset",  # model sizes must equal the dataset's
    "batch-not-divisible",  # batch_size % ranks
    "warmup-too-long",      # warmup_epochs < epochs
    "adapt-target-out-of-reach",  # the target must lie within what the search space reaches
    "prune-target-above-model",  # the target must lie below the model's MFLOPs
}


def main():
    with open(os.path.join(ROOT, "api/schemas/jobspec.schema.json")) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    bad = 0
    valid = sorted(glob.glob(os.path.join(ROOT, "api/examples/*.json"))) + sys.argv[1:]
    for p in valid:
        with open(p) as f:
            errs = list(v.iter_errors(json.load(f)))
        status = "ok" if not errs else "FAIL: " + "; ".join(e.message for e in errs)
        bad += bool(errs)
        print(f"valid   {os.path.basename(p):36s} {status}")
    for p in sorted(glob.glob(os.path.join(ROOT, "api/examples/invalid/*.json"))):
        name = os.path.basename(p)[:-5]
        with open(p) as f:
            errs = list(v.iter_errors(json.load(f)))
        want_fail = name not in CROSS_FIELD
        ok = bool(errs) == want_fail
        bad += not ok
        what = "rejected" if errs else "accepted"
        print(f"invalid {name:36s} {what}{'' if ok else ' (UNEXPECTED)'}")
    print("schema check:", "FAILED" if bad else "passed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
