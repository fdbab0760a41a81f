#!/bin/sh
# run.sh - the train -> prune -> retrain chain of this folder, submitted at once.
#
# Each step starts when the previous one has SUCCEEDED (--after) from its
# weights (--init-from). The retrain spec gives no model: it takes the
# pruned network's model from the prune job's model.safetensors. Then the
# retrained weights are downloaded. KILN_URL / KILN_TOKEN as for kiln.
set -eu
here=$(dirname "$0")
kiln=${KILN:-kiln}
train=$($kiln submit -q "$here/1-train-resnet20-fmnist.json")
prune=$($kiln submit -q --after "$train" --init-from "$train" "$here/2-prune-dmcp50.json")
retrain=$($kiln submit -q --after "$prune" --init-from "$prune" "$here/3-retrain.json")
echo "train $train -> prune $prune -> retrain $retrain"
$kiln watch "$retrain"
$kiln download "$retrain" model.safetensors -o "${OUT:-chain-retrained.safetensors}"
