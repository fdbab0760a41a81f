# test_export.sh - `kiln-worker export --onnx` and api/python/kiln_torch.py.
#
# Short jobs on synthetic data give trained ResNet-CIFAR, MobileNetV2,
# MobileNetV3, EfficientNet, CeiT, DeiT and a ViT mix, a DMCP-pruned ResNet and a DNA-adapted ResNet (and a
# checkpoint, and weights without metadata exported with --model). Each is
# exported to ONNX (opset 13; one ViT also at opset 17), the file passes
# Debian's python3-onnx checker (full check, with shape inference), and on
# seeded inputs onnxruntime's logits (tests/export/check_onnx.mjs) and those
# of the PyTorch module kiln_torch.py builds (tests/export/check_torch.py,
# strict state_dict load) equal kiln's eval logits within 1e-4. The checks
# are shown to fail on logits off by 1e-3, and bad input to export fails
# naming the problem.
set -eu
. "$(dirname "$0")/lib.sh"
new_tmp

HERE=$(cd "$(dirname "$0")/.." && pwd)
EXPORT_DIR="$HERE/export"
LOGITS="$KILN_BIN/export_logits"
PY=/usr/bin/python3 # Debian's, with python3-onnx and python3-torch
[ -d "$EXPORT_DIR/node_modules/onnxruntime-node" ] ||
    fail "onnxruntime-node is not installed in tests/export: run make deps"
"$PY" -c 'import onnx' 2>/dev/null || fail "python3-onnx is missing: run make deps"

DATA='{"dataset":"synthetic","synthetic":{"train":128,"test":64,"classes":5,"channels":3,"size":12}}'

# train NAME MODEL: a one-epoch training job; weights in $TMP/NAME/model.safetensors
train() {
    cat > "$TMP/$1.json" <<JSON
{"name":"$1","type":"train","seed":1,"model":$2,"data":$DATA,
 "optim":{"lr":0.05,"batch_size":32,"epochs":1}}
JSON
    "$WORKER" run "$TMP/$1.json" --out "$TMP/$1" --no-progress > "$TMP/$1.log" 2>&1 ||
        fail "training $1: $(tail -3 "$TMP/$1.log")"
}

# check NAME WEIGHTS [MODEL [OPSET]]: export, onnx checker, onnxruntime vs kiln
check() {
    name=$1
    weights=$2
    model=${3:-}
    opset=${4:-13}
    set -- --weights "$weights"
    [ -z "$model" ] || set -- "$@" --model "$model"
    "$WORKER" export --onnx "$TMP/$name.onnx" --opset "$opset" "$@" > "$TMP/$name.export.log" 2>&1 ||
        fail "export of $name: $(cat "$TMP/$name.export.log")"
    "$PY" -c 'import onnx, sys
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
assert m.opset_import[0].version == int(sys.argv[2]), m.opset_import' "$TMP/$name.onnx" "$opset" ||
        fail "$name.onnx does not pass the onnx checker"
    "$LOGITS" "$@" --n 4 --seed 7 > "$TMP/$name.logits.json" || fail "kiln's logits of $name"
    node "$EXPORT_DIR/check_onnx.mjs" "$TMP/$name.onnx" "$TMP/$name.logits.json" ||
        fail "$name: onnxruntime's logits differ from kiln's"
    [ "$opset" != 13 ] || "$PY" "$EXPORT_DIR/check_torch.py" "$weights" "$TMP/$name.logits.json" \
        ${model:+--model "$model"} || fail "$name: kiln_torch's logits differ from kiln's"
    ok "$name: exported at opset $opset, checked; onnxruntime's and PyTorch's logits equal kiln's"
}

# ResNet and MobileNetV2 in their preset forms (the pruned ones below are explicit)
train resnet '{"arch":"resnet_cifar","image_size":12,"in_channels":3,"num_classes":5,"depth":8,
               "widths":[8,16]}'
check resnet "$TMP/resnet/model.safetensors"
ckpt=$(ls "$TMP"/resnet/ckpt-*.safetensors | tail -n 1)
check resnet-checkpoint "$ckpt" # optimizer and training tensors are left out
# torchvision's ResNet form (7x7/2 stem, max-pool): BasicBlock, and a Bottleneck whose
# two inner widths differ (as DMCP leaves them)
train resnet-basic '{"arch":"resnet","image_size":12,"in_channels":3,"num_classes":5,
                     "block":"basic","stem":8,"stages":[{"width":8,"mids":[8]},{"width":16,"mids":[12]}]}'
check resnet-basic "$TMP/resnet-basic/model.safetensors"
train resnet-bottleneck '{"arch":"resnet","image_size":12,"in_channels":3,"num_classes":5,
                          "block":"bottleneck","stem":8,
                          "stages":[{"width":16,"mids":[4],"mids2":[6]},{"width":24,"mids":[8,4],"mids2":[4,8]}]}'
check resnet-bottleneck "$TMP/resnet-bottleneck/model.safetensors"
train mbv2-preset '{"arch":"mobilenetv2","image_size":12,"in_channels":3,"num_classes":5,
                    "width_mult":0.25}'
check mbv2-preset "$TMP/mbv2-preset/model.safetensors"

train mbv2 '{"arch":"mobilenetv2","image_size":12,"in_channels":3,"num_classes":5,"stem":8,
             "blocks":[{"hidden":8,"out":8,"stride":1},{"hidden":24,"out":8,"stride":1},
                       {"hidden":24,"out":16,"stride":2}],"last":32}'
check mbv2 "$TMP/mbv2/model.safetensors"

# MobileNetV3 (SE with h-sigmoid, h-swish: opset 13 writes it as x * HardSigmoid(x), 17
# as HardSwish) and EfficientNet (SiLU, sigmoid-gated SE, dropout and stochastic depth)
train mbv3 '{"arch":"mobilenetv3","image_size":12,"in_channels":3,"num_classes":5,"stem":8,
             "blocks":[{"hidden":8,"out":8,"se":8},{"hidden":24,"out":12,"stride":2,"kernel":5,
                        "act":"hswish","se":8},{"hidden":36,"out":12,"act":"hswish"}],
             "last":24,"head_width":16}'
check mbv3 "$TMP/mbv3/model.safetensors"
check mbv3-opset17 "$TMP/mbv3/model.safetensors" "" 17
train effnet '{"arch":"efficientnet","image_size":12,"in_channels":3,"num_classes":5,
               "width_mult":0.25,"depth_mult":0.3,"cifar":true}'
check effnet "$TMP/effnet/model.safetensors"

# CeiT: I2T stem (conv, BN, max-pool), LeFF (depthwise conv), LCA head; depth 3 gives
# two LeFFs the output reads (the last block's is dead under LCA)
train ceit '{"arch":"ceit","image_size":12,"in_channels":3,"num_classes":5,"embed_dim":16,
             "depth":3,"num_heads":2,"patch_size":2,
             "stem":{"type":"i2t","channels":8,"kernel":3,"stride":1,"pool":true},
             "ffn":{"type":"leff","kernel":3},"head":"lca"}'
check ceit "$TMP/ceit/model.safetensors"
check ceit-opset17 "$TMP/ceit/model.safetensors" "" 17

# DeiT: patchify stem, MLP, class-token head
train deit '{"arch":"deit","image_size":12,"in_channels":3,"num_classes":5,"embed_dim":16,
             "depth":2,"num_heads":2,"patch_size":4,"stem":{"type":"patchify"},
             "ffn":{"type":"mlp"},"head":"cls"}'
check deit "$TMP/deit/model.safetensors"

# a mix: I2T without pool, LeFF 5x5 in every block, class-token head
train mix '{"arch":"deit","image_size":12,"in_channels":3,"num_classes":5,"embed_dim":16,
            "depth":2,"num_heads":4,"mlp_ratio":2.5,"patch_size":3,
            "stem":{"type":"i2t","channels":6,"kernel":5,"stride":1,"pool":false},
            "ffn":{"type":"leff","kernel":5},"head":"cls"}'
check mix "$TMP/mix/model.safetensors"

# a DMCP-pruned and a DNA-adapted ResNet, exported from their architecture.json
PMODEL='{"arch":"resnet_cifar","image_size":12,"in_channels":3,"num_classes":5,"stem":8,
         "stages":[{"width":8,"mids":[8,8]},{"width":16,"mids":[16,16]}]}'
cat > "$TMP/dmcp.json" <<JSON
{"name":"ex-dmcp","type":"prune","seed":2,"model":$PMODEL,"data":$DATA,
 "optim":{"lr":0.05,"batch_size":32,"epochs":1},
 "prune":{"method":"dmcp","target_ratio":0.5,"warmup_epochs":1,"search_epochs":1,
          "search":{"batch_size":32},"calib_batches":2}}
JSON
cat > "$TMP/dna.json" <<JSON
{"name":"ex-dna","type":"adapt","seed":3,"model":$PMODEL,"data":$DATA,
 "optim":{"lr":0.05,"batch_size":32,"epochs":1},
 "adapt":{"method":"dna","target_ratio":0.5,"warmup_epochs":1,"search_epochs":2,
          "search":{"batch_size":32},"calib_batches":2,"arch":{"lr":20,"init":"existing"},
          "elastic":{"check_every":2,"settle_steps":2}}}
JSON
for job in dmcp dna; do
    "$WORKER" run "$TMP/$job.json" --out "$TMP/$job" --no-progress > "$TMP/$job.log" 2>&1 ||
        fail "$job job: $(tail -3 "$TMP/$job.log")"
    jq -e --argjson full "$PMODEL" '. != $full' "$TMP/$job/architecture.json" > /dev/null ||
        fail "the $job job left the network as it was"
    check "$job" "$TMP/$job/model.safetensors" "$TMP/$job/architecture.json"
done

# the comparison can fail: kiln's logits moved by 1e-3
jq -c '.logits[0] += 0.001' "$TMP/resnet.logits.json" > "$TMP/off.json"
if node "$EXPORT_DIR/check_onnx.mjs" "$TMP/resnet.onnx" "$TMP/off.json" > "$TMP/off.log" 2>&1; then
    fail "check_onnx.mjs accepted logits off by 1e-3"
fi
grep -q "differ from kiln's" "$TMP/off.log" || fail "check_onnx.mjs: $(cat "$TMP/off.log")"
ok "logits off by 1e-3 fail the onnxruntime check"
if "$PY" "$EXPORT_DIR/check_torch.py" "$TMP/resnet/model.safetensors" "$TMP/off.json" \
    > "$TMP/off.log" 2>&1; then
    fail "check_torch.py accepted logits off by 1e-3"
fi
grep -q "differ from kiln's" "$TMP/off.log" || fail "check_torch.py: $(cat "$TMP/off.log")"
ok "logits off by 1e-3 fail the PyTorch check"

# bad input fails, naming the problem
expect_fail() { # WHAT PATTERN COMMAND...
    what=$1
    pattern=$2
    shift 2
    if "$@" > "$TMP/bad.log" 2>&1; then
        fail "$what was accepted"
    fi
    grep -q "$pattern" "$TMP/bad.log" || fail "$what: the error does not say '$pattern': $(cat "$TMP/bad.log")"
}
"$PY" -c 'import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); h.pop("__metadata__")
t = json.dumps(h).encode(); t += b" " * (-len(t) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(t)) + t + b[8 + n:])' \
    "$TMP/dmcp/model.safetensors" "$TMP/bare.safetensors"
expect_fail "weights without metadata or --model" "no model metadata" \
    "$WORKER" export --onnx "$TMP/x.onnx" --weights "$TMP/bare.safetensors"
expect_fail "kiln_torch on weights without metadata" "no model metadata" \
    "$PY" "$EXPORT_DIR/check_torch.py" "$TMP/bare.safetensors" "$TMP/dmcp.logits.json"
check bare "$TMP/bare.safetensors" "$TMP/dmcp/architecture.json"
expect_fail "weights that do not fit --model" "conv1.weight" \
    "$WORKER" export --onnx "$TMP/x.onnx" --weights "$TMP/dmcp/model.safetensors" \
    --model "$PMODEL"
expect_fail "kiln_torch with weights that do not fit the config" "conv1.weight" \
    "$PY" "$EXPORT_DIR/check_torch.py" "$TMP/dmcp/model.safetensors" "$TMP/dmcp.logits.json" \
    --model "$PMODEL"
expect_fail "an invalid --model" "model.num_heads" \
    "$WORKER" export --onnx "$TMP/x.onnx" --weights "$TMP/deit/model.safetensors" \
    --model '{"arch":"deit","image_size":12,"in_channels":3,"num_classes":5,"embed_dim":16,
              "depth":2,"num_heads":3,"patch_size":4}'
expect_fail "a missing weights file" "$TMP/none.safetensors" \
    "$WORKER" export --onnx "$TMP/x.onnx" --weights "$TMP/none.safetensors"
expect_fail "opset 12" "opset 12" \
    "$WORKER" export --onnx "$TMP/x.onnx" --weights "$TMP/resnet/model.safetensors" --opset 12
[ ! -e "$TMP/x.onnx" ] || fail "a failed export left $TMP/x.onnx"
ok "bad input to export and kiln_torch fails naming the problem"
