"""What export_onnx.py (PyTorch) and export_onnx_keras.py (tf2onnx) share: their output
flags, the metadata_props veto reads, and the seeded input batch. numpy only, so it imports
under either interpreter."""

import json

import numpy as np

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def add_output_arguments(ap, framework):
    ap.add_argument("--out", required=True, help="the .onnx to write")
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--inputs-out", help="write a seeded (N,3,H,W) float32 input batch (.npy)")
    ap.add_argument("--logits-out", help=f"write {framework}'s logits for --inputs-out (.npy)")
    ap.add_argument("--count", type=int, default=4, help="inputs in --inputs-out")


def tag(model_proto, classes, preprocess):
    """metadata_props veto.classes / veto.preprocess: what `veto import-onnx` takes by default."""
    for key, value in (("veto.classes", json.dumps(classes)), ("veto.preprocess", json.dumps(preprocess))):
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value


def seeded_inputs(seed, count, size):
    return np.random.default_rng(seed).standard_normal((count, 3, size, size)).astype(np.float32)
