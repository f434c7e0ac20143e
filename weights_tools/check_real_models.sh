#!/usr/bin/env bash
# Checks veto against the frameworks on the real weights and the full CIFAR-10 test file in
# ../shared/data (not bundled): accuracy, prediction agreement and logit distance.
#
#   weights_tools/check_real_models.sh [BUILD_DIR] [SHARED_DATA_DIR]
#
# Needs a built veto, Debian's python3-torch, and the .venv with tensorflow-cpu for the
# Keras part (see weights_tools/README.md). Writes only under a temporary folder.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$repo/build}
shared=${2:-$repo/../shared/data}
veto=$build/veto
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cifar_all=$shared/cifar10/test_batch.bin
cifar_1000=$repo/data/cifar10_test_0-999.bin

compare() {  # compare VETO.npy GOLDEN.npy LABEL
  /usr/bin/python3 - "$@" <<'PY'
import sys
import numpy as np
got, want, label = np.load(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
agree = (got.argmax(1) == want.argmax(1)).mean()
print(f"{label}: {len(got)} records, predictions agree {agree:.4%}, max relative L2 {rel.max():.2e}")
sys.exit(0 if agree >= 0.999 and rel.max() <= 1e-4 else 1)
PY
}

for depth in 20 32 44 56; do
  th=$(ls "$shared"/models/resnet$depth-*.th)
  /usr/bin/python3 "$repo/weights_tools/convert.py" --arch resnet$depth "$th" "$work/resnet$depth.safetensors" >/dev/null
  "$veto" eval --model "$work/resnet$depth.safetensors" --data "$cifar_1000" | sed -n 3,4p | sed "s/^/resnet$depth records 0-999: /"
done
"$veto" eval --model "$work/resnet20.safetensors" --data "$cifar_all" | sed -n 3,4p | sed "s/^/resnet20 all 10,000: /"

# PyTorch golden over all 10,000 records vs veto.
/usr/bin/python3 "$repo/weights_tools/golden_cifar.py" --arch resnet20 --weights "$(ls "$shared"/models/resnet20-*.th)" \
  --data "$cifar_all" --out "$work/torch_resnet20.npy" >/dev/null
"$veto" predict --model "$work/resnet20.safetensors" --data "$cifar_all" --logits "$work/veto_resnet20.npy" --format csv >/dev/null
compare "$work/veto_resnet20.npy" "$work/torch_resnet20.npy" "resnet20 vs PyTorch"

# Keras: the real .h5 through convert.py, TensorFlow's logits from check_keras_real.py.
if [ -x "$repo/.venv/bin/python" ]; then
  "$repo/.venv/bin/python" "$repo/weights_tools/check_keras_real.py" --out-dir "$work/keras" >/dev/null
  "$veto" eval --model "$work/keras/keras_resnet20v1.safetensors" --data "$cifar_1000" | sed -n 3,4p |
    sed "s/^/keras_resnet20v1 records 0-999: /"
  "$veto" predict --model "$work/keras/keras_resnet20v1.safetensors" --data "$cifar_1000" \
    --logits "$work/veto_keras.npy" --format csv >/dev/null
  compare "$work/veto_keras.npy" "$work/keras/keras_resnet20v1_logits_0-999.npy" "keras_resnet20v1 vs TensorFlow"
else
  echo "keras_resnet20v1: skipped (no .venv with tensorflow-cpu; see weights_tools/README.md)"
fi
