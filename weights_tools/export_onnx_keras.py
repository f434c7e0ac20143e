"""Exports veto's reference Keras models to ONNX with tf2onnx (for `veto import-onnx`).

    .venv/bin/python weights_tools/export_onnx_keras.py --arch keras_resnet20v1 \
        --weights ../shared/data/models/keras_cifar10_ResNet20v1_model.h5 --out /tmp/keras20.onnx
    .venv/bin/python weights_tools/export_onnx_keras.py --arch inception_v3_keras --seed 20240601 \
        --out /tmp/inception_keras.onnx --native-out /tmp/inception_keras.safetensors

Run in the git-ignored venv with tensorflow-cpu, tf2onnx and onnx (weights_tools/README.md).
The Keras model (NHWC) is traced as a tf.function with a dynamic batch and converted with
tf2onnx (opset 13) with `inputs_as_nchw`, so the ONNX input is (N, 3, H, W) like every model
veto runs; tf2onnx's transpose optimizer then removes the transposes around the
convolutions, and also decides what becomes of Keras' batch norms (a Mul and an Add by
constants after the convolution): after a convolution with bias (ResNet20v1) they stay, after
a bias-free one (InceptionV3) they are folded into its weights and bias, in float32.

- keras_resnet20v1: the Keras-example ResNet20v1 (keras_resnet20v1_tf.py) with the weights of
  a Keras 2 .h5 loaded by layer name; preprocessing pixel / 255 (the preset `unit`).
- inception_v3_keras: keras.applications' InceptionV3 (inception_v3_keras.py, width divisor
  --width-divisor, 1000 classes) with random weights (inception_v3_layout.random_weights,
  variant keras); --native-out also writes convert.py's veto file of the same weights (through
  a Keras-2 .h5), for comparing the import with the native builder; preprocessing `keras`.

--inputs-out / --logits-out write a float32 (N,3,H,W) input batch (seeded normal) and
TensorFlow's logits for it (the NHWC model on the transposed batch).
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from onnx_export_common import CIFAR10, add_output_arguments, seeded_inputs, tag  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"  # convert.py's interpreter (Debian's h5py; see README.md)


def keras_resnet20v1(weights):
    import keras_resnet20v1_tf as ktf
    model = ktf.build_model()
    ktf.load_weights_h5(model, weights)
    pre = dict(channels=3, height=32, width=32, resize="none", interpolation="bilinear", resize_shorter=0,
               divisor=255.0, mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])
    return model, 32, pre, CIFAR10


def inception_v3_keras(seed, d, native_out):
    import inception_v3_keras as kmodel
    import inception_v3_keras2_h5 as k2h5
    import inception_v3_layout as layout
    weights = layout.random_weights(d, 1000, seed, "keras")
    cfg, spec, units, dense = k2h5.keras2_model(d, 299, 1000, "predictions")
    model = kmodel.build(d, 299, 1000, "predictions")
    kmodel.set_veto_weights(model, weights, units, dense)
    if native_out:
        with tempfile.TemporaryDirectory(prefix="veto_export_keras_") as tmp:
            h5 = os.path.join(tmp, "inception_v3_keras.h5")
            k2h5.write_full(h5, cfg, spec, k2h5.keras2_arrays(weights, units, dense))
            subprocess.run([SYSTEM_PYTHON, os.path.join(HERE, "convert.py"), "--arch", "inception_v3_keras", h5,
                            native_out], check=True, stdout=subprocess.DEVNULL)
    pre = dict(channels=3, height=299, width=299, resize="stretch", interpolation="nearest", resize_shorter=0,
               divisor=127.5, mean=[1.0, 1.0, 1.0], std=[1.0, 1.0, 1.0])
    with open(os.path.join(HERE, "imagenet_classes.txt")) as f:
        classes = [line.rstrip("\n") for line in f if line.strip()]
    return model, 299, pre, classes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True, choices=["keras_resnet20v1", "inception_v3_keras"])
    ap.add_argument("--weights", help="keras_resnet20v1: the Keras 2 .h5")
    ap.add_argument("--seed", type=int, default=20240601, help="random weights of inception_v3_keras, inputs")
    ap.add_argument("--width-divisor", type=int, default=1, help="inception_v3_keras: divides every conv's width")
    ap.add_argument("--native-out", help="inception_v3_keras: also write convert.py's veto file of the same weights")
    add_output_arguments(ap, "TensorFlow")
    a = ap.parse_args(argv)

    import onnx
    import tensorflow as tf
    import tf2onnx
    if a.arch == "keras_resnet20v1":
        if not a.weights:
            ap.error("--weights is required for keras_resnet20v1")
        model, size, pre, classes = keras_resnet20v1(a.weights)
    else:
        model, size, pre, classes = inception_v3_keras(a.seed, a.width_divisor, a.native_out)

    spec = (tf.TensorSpec((None, size, size, 3), tf.float32, name="input"),)

    @tf.function(input_signature=spec)
    def forward(x):
        return model(x, training=False)

    proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=a.opset, inputs_as_nchw=["input"])
    tag(proto, classes, pre)
    onnx.save(proto, a.out)
    print(f"wrote {a.out} ({a.arch}, opset {a.opset}, tf2onnx {tf2onnx.__version__}, "
          f"{len(proto.graph.node)} nodes, with metadata_props veto.classes, veto.preprocess)")

    x = seeded_inputs(a.seed, a.count, size)
    if a.inputs_out:
        np.save(a.inputs_out, x)
        print(f"wrote {a.inputs_out} {x.shape} float32")
    if a.logits_out:
        logits = np.asarray(forward(tf.constant(x.transpose(0, 2, 3, 1)))).astype(np.float32)
        np.save(a.logits_out, logits)
        print(f"wrote {a.logits_out} {logits.shape} float32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
