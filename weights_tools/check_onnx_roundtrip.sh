#!/usr/bin/env bash
# ONNX round trip: exports ResNet-20 (real weights) and InceptionV3 (torchvision, random
# weights, with and without transform_input) with torch.onnx.export, and the Keras
# ResNet20v1 (real weights) and Keras InceptionV3 (random weights) with tf2onnx; imports
# them with `veto import-onnx`, and compares veto's logits on the imported model with the
# native builder's and the framework's; for ResNet-20 also conductance, mutants and LCR.
#
#   weights_tools/check_onnx_roundtrip.sh [VETO_BINARY] [OUT_DIR]
#
# TORCH_PYTHON (default /usr/bin/python3): Debian's python3-torch, python3-torchvision,
# python3-h5py and python3-onnx (for the metadata_props; without it the defaults apply).
# KERAS_PYTHON (default .venv/bin/python): tensorflow-cpu, tf2onnx and onnx, e.g.
#   /usr/bin/python3 -m venv --system-site-packages .venv
#   .venv/bin/pip install tensorflow-cpu tf2onnx onnx==1.14.1
# (The two cannot share one interpreter: tensorflow-cpu brings numpy 2, which Debian's torch
# 1.13 cannot use.) Without KERAS_PYTHON's packages the Keras part is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
veto="$(realpath "${1:-build/veto}")"
out="${2:-/tmp/veto_onnx_roundtrip}"
py="${TORCH_PYTHON:-/usr/bin/python3}"
kpy="${KERAS_PYTHON:-.venv/bin/python}"
cifar=data/cifar10_test_0-999.bin
mkdir -p "$out"

compare() {  # compare NAME GOT.npy WANT.npy
  "$py" - "$@" <<'EOF'
import sys
import numpy as np
name, got, want = sys.argv[1], np.load(sys.argv[2]), np.load(sys.argv[3])
rel = np.abs(got - want).max() / np.abs(want).max()
print(f"  {name:34s} max|diff|/max|want| {rel:.2e}  identical: {bool((got == want).all())}")
EOF
}

echo "== ResNet-20 (akamaster weights), opset 13, dynamic batch, batch norms kept"
"$py" weights_tools/export_onnx.py --arch resnet20 --weights ../shared/data/models/resnet20-12fca82f.th \
  --out "$out/resnet20.onnx" --inputs-out "$out/r20_x.npy" --logits-out "$out/r20_torch.npy" --count 16 2>/dev/null
"$veto" import-onnx "$out/resnet20.onnx" "$out/resnet20_onnx.safetensors"
"$veto" predict --model "$out/resnet20_onnx.safetensors" --input "$out/r20_x.npy" --logits "$out/r20_onnx.npy" >/dev/null
"$veto" predict --model resnet20 --input "$out/r20_x.npy" --logits "$out/r20_native.npy" >/dev/null
compare "logits, imported vs native" "$out/r20_onnx.npy" "$out/r20_native.npy"
compare "logits, imported vs PyTorch" "$out/r20_onnx.npy" "$out/r20_torch.npy"
for m in resnet20 "$out/resnet20_onnx.safetensors"; do
  tag=$([ "$m" = resnet20 ] && echo native || echo onnx)
  "$veto" eval --model "$m" --data "$cifar" --format json | "$py" -c "import json,sys; print('  accuracy ($tag):', json.load(sys.stdin)['accuracy'])"
  "$veto" attribute --model "$m" --data "$cifar" --limit 20 --out "$out/attr_$tag.npy" >/dev/null
  "$veto" mutants build --model "$m" --data "$cifar" --limit 200 --gamma 0.01 --count 20 --seed 3 \
    --out "$out/mutants_$tag.safetensors" >/dev/null
  "$veto" lcr --model "$m" --mutants "$out/mutants_$tag.safetensors" --data "$cifar" --limit 300 \
    --out "$out/lcr_$tag.safetensors" >/dev/null
done
compare "conductance, 9 blocks, 20 records" "$out/attr_onnx.npy" "$out/attr_native.npy"
"$py" - "$out" <<'EOF'
import sys
sys.path.insert(0, "weights_tools")
import numpy as np
import safetensors_io
out = sys.argv[1]
for kind, names in (("mutants", ("draw", "edit_layer", "edit_filter", "values")),
                    ("lcr", ("lcr", "mutant_prediction", "prediction"))):
    a, _ = safetensors_io.read(f"{out}/{kind}_native.safetensors")
    b, _ = safetensors_io.read(f"{out}/{kind}_onnx.safetensors")
    same = all(np.array_equal(a[n], b[n]) for n in names)
    print(f"  {kind + ' (' + ', '.join(names) + ')':60s} identical: {same}")
EOF

for transform in false true; do
  echo "== InceptionV3 torchvision (random weights, seed 20240601), transform_input $transform"
  "$py" weights_tools/export_onnx.py --arch inception_v3 --transform-input "$transform" \
    --out "$out/inception_$transform.onnx" --native-out "$out/inception_$transform.safetensors" \
    --inputs-out "$out/inc_x.npy" --logits-out "$out/inc_torch_$transform.npy" --count 4 >/dev/null 2>&1
  "$veto" predict --model "$out/inception_$transform.onnx" --input "$out/inc_x.npy" \
    --logits "$out/inc_onnx_$transform.npy" >/dev/null
  "$veto" predict --model "$out/inception_$transform.safetensors" --input "$out/inc_x.npy" \
    --logits "$out/inc_native_$transform.npy" >/dev/null
  compare "logits, imported vs native" "$out/inc_onnx_$transform.npy" "$out/inc_native_$transform.npy"
  compare "logits, imported vs PyTorch" "$out/inc_onnx_$transform.npy" "$out/inc_torch_$transform.npy"
  compare "logits, native vs PyTorch" "$out/inc_native_$transform.npy" "$out/inc_torch_$transform.npy"
done

if ! "$kpy" -c "import tensorflow, tf2onnx, onnx" 2>/dev/null; then
  echo "== Keras: skipped ($kpy lacks tensorflow, tf2onnx or onnx)"
  exit 0
fi
echo "== Keras ResNet20v1 (real weights), tf2onnx, opset 13, dynamic batch, batch norms as Mul + Add"
"$kpy" weights_tools/export_onnx_keras.py --arch keras_resnet20v1 \
  --weights ../shared/data/models/keras_cifar10_ResNet20v1_model.h5 --out "$out/keras20.onnx" \
  --inputs-out "$out/k20_x.npy" --logits-out "$out/k20_tf.npy" --count 16 >/dev/null 2>&1
"$py" weights_tools/convert.py --arch keras_resnet20v1 ../shared/data/models/keras_cifar10_ResNet20v1_model.h5 \
  "$out/keras20.safetensors" >/dev/null
"$veto" predict --model "$out/keras20.onnx" --input "$out/k20_x.npy" --logits "$out/k20_onnx.npy" >/dev/null
"$veto" predict --model "$out/keras20.safetensors" --input "$out/k20_x.npy" --logits "$out/k20_native.npy" >/dev/null
compare "logits, imported vs native" "$out/k20_onnx.npy" "$out/k20_native.npy"
compare "logits, imported vs TensorFlow" "$out/k20_onnx.npy" "$out/k20_tf.npy"
for m in "$out/keras20.safetensors" "$out/keras20.onnx"; do
  "$veto" eval --model "$m" --data "$cifar" --format json |
    "$py" -c "import json,sys; print('  accuracy (${m##*.}):', json.load(sys.stdin)['accuracy'])"
done

echo "== InceptionV3 Keras (random weights, seed 20240601), tf2onnx (which folds the batch norms into the convolutions)"
"$kpy" weights_tools/export_onnx_keras.py --arch inception_v3_keras --out "$out/inception_keras.onnx" \
  --native-out "$out/inception_keras.safetensors" --inputs-out "$out/inck_x.npy" \
  --logits-out "$out/inck_tf.npy" --count 4 >/dev/null 2>&1
"$veto" predict --model "$out/inception_keras.onnx" --input "$out/inck_x.npy" --logits "$out/inck_onnx.npy" >/dev/null
"$veto" predict --model "$out/inception_keras.safetensors" --input "$out/inck_x.npy" \
  --logits "$out/inck_native.npy" >/dev/null
compare "logits, imported vs native" "$out/inck_onnx.npy" "$out/inck_native.npy"
compare "logits, imported vs TensorFlow" "$out/inck_onnx.npy" "$out/inck_tf.npy"
compare "logits, native vs TensorFlow" "$out/inck_native.npy" "$out/inck_tf.npy"
