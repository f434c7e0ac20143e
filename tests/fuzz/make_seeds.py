#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ (small valid and broken inputs).

Run from the repository root with Debian's python3 (numpy and Pillow):
    /usr/bin/python3 tests/fuzz/make_seeds.py
Only the seeds are made here; regression inputs (files named regress-*) are crash inputs
that fuzzing found, added by hand with their fix, and are left untouched.
"""
import io
import json
import os
import struct

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) <= 10_000, (target, name, len(data))
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ---- safetensors --------------------------------------------------------------------------
def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes), laid out in order."""
    header, offset, buffer = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        buffer += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + buffer


def raw(header_text, buffer=b"", length=None):
    header_text = header_text.encode()
    return struct.pack("<Q", len(header_text) if length is None else length) + header_text + buffer


f32 = lambda a: np.asarray(a, "<f4").tobytes()
i64 = lambda a: np.asarray(a, "<i8").tobytes()

put("safetensors", "valid-mixed", safetensors(
    [("conv.weight", "F32", (2, 3), f32([0.5, -1, 2, 3.25, -0.0, 1e-30])),
     ("bn.num_batches", "I64", (4,), i64([-1, 0, 7, 1 << 40])),
     ("scalar", "F32", (), f32([42])),
     ("ids", "I32", (2,), np.asarray([-7, 9], "<i4").tobytes()),
     ("half", "F16", (3,), np.asarray([1, 2, 3], "<f2").tobytes()),
     ("empty", "F32", (0, 5), b"")],
    {"format": "pt", "model": "resnet20"}))
put("safetensors", "valid-empty", safetensors([]))
put("safetensors", "valid-unpadded", safetensors([("x", "U8", (3,), b"abc")], pad=False))
put("safetensors", "bad-truncated", safetensors([("x", "F32", (4,), f32([1, 2, 3, 4]))])[:-3])
put("safetensors", "bad-overlap", raw('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                      '"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32([1])))
put("safetensors", "bad-dtype", raw('{"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}', f32([1])))
put("safetensors", "bad-duplicate", raw('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                        '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32([1])))
put("safetensors", "bad-header-length", raw("{}", length=1 << 40))
put("safetensors", "bad-shape", raw('{"a":{"dtype":"F32","shape":[-1,2.5,1e30],"data_offsets":[0,4]}}', f32([1])))
put("safetensors", "bad-metadata", raw('{"__metadata__":{"k":1}}'))

# ---- model (safetensors + veto metadata) ---------------------------------------------------
CIFAR_PRE = {"channels": 3, "height": 32, "width": 32, "resize": "none", "interpolation": "bilinear",
             "resize_shorter": 0, "divisor": 255.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def model_meta(arch, pre=CIFAR_PRE, classes=CIFAR_CLASSES, **options):
    meta = {"format": "veto-model/1", "arch": arch, "preprocess": json.dumps(pre), "classes": json.dumps(classes)}
    meta.update(options)
    return meta


rng = np.random.default_rng(0)
# The first tensors resnet20 needs (a whole model is ~1 MB): the loader checks them in order.
resnet_head = [("bn1.bias", "F32", (16,), f32(rng.normal(size=16))),
               ("bn1.running_mean", "F32", (16,), f32(rng.normal(size=16))),
               ("bn1.running_var", "F32", (16,), f32(rng.uniform(0.5, 2, size=16))),
               ("bn1.weight", "F32", (16,), f32(rng.normal(size=16))),
               ("conv1.weight", "F32", (16, 3, 3, 3), f32(rng.normal(size=(16, 3, 3, 3))))]
put("model", "resnet20-head", safetensors(resnet_head, model_meta("resnet20")))
nan_head = list(resnet_head)
nan_head[4] = ("conv1.weight", "F32", (16, 3, 3, 3), f32(np.full((16, 3, 3, 3), np.nan)))
put("model", "resnet20-nan", safetensors(nan_head, model_meta("resnet20")))
put("model", "resnet20-wrong-shape", safetensors([("bn1.bias", "F32", (4, 4), f32(np.ones(16)))],
                                                 model_meta("resnet20")))
put("model", "keras20-no-tensors", safetensors([], model_meta("keras_resnet20v1")))
inception_pre = dict(CIFAR_PRE, height=139, width=139, resize="shorter_crop", resize_shorter=159)
put("model", "inception-w8", safetensors(
    [("Conv2d_1a_3x3.conv.weight", "F32", (4, 3, 3, 3), f32(np.zeros((4, 3, 3, 3))))],
    model_meta("inception_v3", inception_pre, CIFAR_CLASSES, variant="torchvision", width_divisor="8",
               transform_input="true")))
put("model", "inception-keras", safetensors([], model_meta("inception_v3", dict(inception_pre, width=75, height=75),
                                                           ["a", "b", "c"], variant="keras", width_divisor="4")))
put("model", "bad-format", safetensors([], {"format": "veto-model/2", "arch": "resnet20"}))
put("model", "bad-preprocess", safetensors([], model_meta("resnet20", dict(CIFAR_PRE, height=-1, divisor=0))))
put("model", "bad-classes", safetensors([], dict(model_meta("resnet20"), classes='{"a":1}')))
put("model", "bad-arch", safetensors([], model_meta("resnet1202")))

# A written-out graph (arch "graph", as `veto import-onnx` makes): conv, clip, slice, pad,
# pools and a dense head, with every tensor it needs.
def graph_node(name, op, inputs, **params):
    return {"name": name, "op": op, "inputs": inputs, "params": params}


GRAPH = {"nodes": [
    graph_node("x", "input", [], sample_shape=[3, 32, 32]),
    graph_node("conv", "conv2d", ["x"], in_channels=3, out_channels=2, kernel_h=3, kernel_w=3, stride_h=2,
               stride_w=2, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1, dilation_h=1, dilation_w=1, groups=1,
               has_bias=True),
    graph_node("clip", "clip", ["conv"], min=0, max="inf"),
    graph_node("slice", "slice", ["clip"], start=[0, 0, 0], step=[1, 2, 2], size=[2, 8, 8]),
    graph_node("pad", "pad", ["slice"], before=[1, 0, 0], after=[1, 1, 1], value=0.5),
    graph_node("pool", "max_pool", ["pad"], kernel_h=3, kernel_w=3, stride_h=2, stride_w=2, pad_top=1,
               pad_left=1, pad_bottom=1, pad_right=1),
    graph_node("gap", "global_avg_pool", ["pool"]),
    graph_node("fc", "dense", ["gap"], in_features=4, out_features=10, has_bias=False)],
    "blocks": ["pool"]}
put("model", "graph-small", safetensors(
    [("conv.weight", "F32", (2, 3, 3, 3), f32(np.linspace(-1, 1, 54))), ("conv.bias", "F32", (2,), f32([0.1, -0.1])),
     ("fc.weight", "F32", (10, 4), f32(np.linspace(-1, 1, 40)))],
    model_meta("graph", graph=json.dumps(GRAPH))))
put("model", "graph-bad-input", safetensors([], model_meta("graph", graph=json.dumps(
    {"nodes": [graph_node("x", "input", [], sample_shape=[3, 16, 16])]}))))


# ---- npy -------------------------------------------------------------------------------
def npy(array, version=(1, 0)):
    out = io.BytesIO()
    if version == (1, 0):
        np.save(out, array)
        return out.getvalue()
    np.lib.format.write_array(out, array, version=version)
    return out.getvalue()


put("npy", "valid-f4", npy(np.arange(6, dtype="<f4").reshape(2, 3)))
put("npy", "valid-f8", npy(np.array([1.5, -2, 1e300], dtype="<f8")))
put("npy", "valid-scalar", npy(np.float32(7)))
put("npy", "valid-empty", npy(np.zeros((0, 4), "<f4")))
put("npy", "valid-v2", npy(np.ones((1, 3, 2, 2), "<f4"), (2, 0)))
put("npy", "valid-v3", npy(np.ones((2,), "<f4"), (3, 0)))
put("npy", "valid-fortran-1d", npy(np.asfortranarray(np.ones(3, "<f4"))))
put("npy", "valid-old-style", b"\x93NUMPY\x01\x00\x46\x00" +
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 1L), }".ljust(69) + b"\n" + f32([1, 2]))
put("npy", "bad-magic", b"\x93NUMPX\x01\x00" + npy(np.ones(2, "<f4"))[8:])
put("npy", "bad-truncated", npy(np.ones((4, 4), "<f4"))[:-5])
put("npy", "bad-dtype", npy(np.ones(3, "<i4")))
put("npy", "bad-fortran", npy(np.asfortranarray(np.ones((2, 3), "<f4"))))
put("npy", "bad-header", b"\x93NUMPY\x01\x00\x10\x00{'descr': <f4}  \n")

# ---- CIFAR-10 --------------------------------------------------------------------------
records = open(os.path.join(os.path.dirname(ROOT), "..", "..", "data", "cifar10_test_0-999.bin"), "rb").read(2 * 3073)
put("cifar", "valid-2-records", records)
put("cifar", "valid-1-record", records[:3073])
put("cifar", "bad-label", b"\x0a" + records[1:3073])
put("cifar", "bad-truncated", records[:3000])

# ---- images ------------------------------------------------------------------------------
def image(array, fmt, mode=None, **options):
    out = io.BytesIO()
    picture = Image.fromarray(array)
    (picture.convert(mode) if mode else picture).save(out, fmt, **options)
    return out.getvalue()


rgb32 = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
put("image", "rgb-32x32.png", image(rgb32, "PNG"))
put("image", "rgb-32x32.jpg", image(rgb32, "JPEG", quality=90))
put("image", "rgb-17x9-progressive.jpg", image(rgb32[:9, :17], "JPEG", progressive=True, quality=75))
put("image", "gray-11x7-420.jpg", image(rgb32[:7, :11, 0], "JPEG", quality=50))
put("image", "rgb-5x3.bmp", image(rgb32[:3, :5], "BMP"))
put("image", "palette-6x4.bmp", image(rgb32[:4, :6], "BMP", mode="P"))
put("image", "gray-5x3.png", image(rgb32[:3, :5, 0], "PNG"))
put("image", "rgba-4x4.png", image(rng.integers(0, 256, size=(4, 4, 4), dtype=np.uint8), "PNG"))
put("image", "gray16-3x2.png", image(rng.integers(0, 65536, size=(2, 3), dtype=np.uint16), "PNG"))
put("image", "palette-interlaced-8x8.png", image(rgb32[:8, :8], "PNG", mode="P", interlace=1))
put("image", "rgb-1x1.png", image(rgb32[:1, :1], "PNG"))
put("image", "rgb-400x2.png", image(np.zeros((2, 400, 3), np.uint8), "PNG"))
put("image", "bad-truncated.png", image(rgb32, "PNG")[:200])
jpeg = bytearray(image(rgb32, "JPEG"))
dht = jpeg.find(b"\xff\xc4")
jpeg[dht + 5:dht + 21] = bytes([255] * 16)  # > 256 Huffman symbols: screened before stb_image
put("image", "bad-huffman.jpg", bytes(jpeg))
put("image", "bad-text.png", b"this is not a PNG file at all")

# ---- mutant files (fuzz_mutants resolves them against a model with one conv "conv", 4 filters of 3x3x3)
def mutant_meta(count, layers=("conv",), **changes):
    meta = {"format": "veto-mutants/1", "model": "tiny", "arch": "fuzz_tiny", "model_fingerprint": "fnv1a64:0",
            "operator": "nai", "gamma": "0.5", "seed": "7", "scope": "[]", "filters_per_mutant": "2",
            "accept_ratio": "0.9", "acceptance_data": "seed", "acceptance_count": "10", "original_accuracy": "0.8",
            "draws": "3", "rejected": "1", "count": str(count), "layers": json.dumps(list(layers))}
    meta.update(changes)
    return meta


def mutant_file(meta, offsets, edit_layer, edit_filter, sizes, values):
    count = len(offsets) - 1
    return safetensors([("draw", "I64", (count,), i64(range(count))),
                        ("correct", "I64", (count,), i64([9] * count)),
                        ("edit_offsets", "I64", (count + 1,), i64(offsets)),
                        ("edit_layer", "I64", (len(edit_layer),), i64(edit_layer)),
                        ("edit_filter", "I64", (len(edit_filter),), i64(edit_filter)),
                        ("layer_filter_size", "I64", (len(sizes),), i64(sizes)),
                        ("values", "F32", (len(values),), f32(values))], meta)


filters = np.arange(3 * 27, dtype=np.float32) / 10 - 4
put("mutants", "valid-two", mutant_file(mutant_meta(2), [0, 2, 3], [0, 0, 0], [1, 3, 0], [27], filters))
put("mutants", "valid-empty", mutant_file(mutant_meta(0, layers=(), draws="0"), [0], [], [], [], []))
put("mutants", "bad-filter-range", mutant_file(mutant_meta(1), [0, 1], [0], [9], [27], filters[:27]))
put("mutants", "bad-not-conv", mutant_file(mutant_meta(1, layers=("relu",)), [0, 1], [0], [0], [27], filters[:27]))
put("mutants", "bad-filter-size", mutant_file(mutant_meta(1), [0, 1], [0], [0], [26], filters[:26]))
put("mutants", "bad-values", mutant_file(mutant_meta(2), [0, 2, 3], [0, 0, 0], [1, 3, 0], [27], filters[:60]))
put("mutants", "bad-layers-json", mutant_file(mutant_meta(1, layers=("conv",), scope="[[[[[[[[[[1]]]]]]]]]]"),
                                              [0, 1], [0], [0], [27], filters[:27]))

# ---- detector files (layout: README "Detector file"; fuzz_detector scores them)
def detector_config(kind, hidden):
    return json.dumps({"kind": kind, "hidden": hidden, "dropout": 0.5, "epochs": 40, "batch": 32,
                       "learning_rate": 0.001, "l2": 0.0, "class_weight": True, "seed": 0})


def classifier(prefix, inputs, hidden, rng):
    tensors = [(prefix + "mean", "F32", (inputs,), f32(rng.normal(size=inputs))),
               (prefix + "inv_std", "F32", (inputs,), f32(rng.uniform(0.5, 2, size=inputs)))]
    widths = [inputs] + hidden + [1]
    for i in range(len(widths) - 1):
        tensors.append((prefix + "layer%d.weight" % i, "F32", (widths[i + 1], widths[i]),
                        f32(rng.normal(size=(widths[i + 1], widths[i])))))
        tensors.append((prefix + "layer%d.bias" % i, "F32", (widths[i + 1],), f32(rng.normal(size=widths[i + 1]))))
    return tensors


def detector_meta(kind, groups, columns, first, second=None, **changes):
    meta = {"format": "veto-detector/1", "kind": kind, "groups": json.dumps(groups), "threshold": "0.5",
            "first": first, "feature_columns": str(columns), "model": "tiny", "model_fingerprint": "fnv1a64:0",
            "mutants_fingerprint": "fnv1a64:1", "layers": json.dumps(["conv"]), "rule": "paper", "steps": "10"}
    if second:
        meta["second"] = second
    meta.update(changes)
    return meta


rng = np.random.default_rng(0)
put("detector", "valid-logistic", safetensors(
    classifier("first.", 7, [], rng), detector_meta("logistic", ["softmax", "lcr"], 7, detector_config("logistic", []))))
put("detector", "valid-mlp", safetensors(
    classifier("first.", 5, [3, 2], rng),
    detector_meta("mlp", ["conductance", "msp"], 5, detector_config("mlp", [3, 2]))))
put("detector", "valid-two-stage", safetensors(
    classifier("first.", 4, [3], rng) + classifier("second.", 2, [3], rng),
    detector_meta("two-stage", ["conductance.conv", "lcr"], 4, detector_config("mlp", [3]), detector_config("mlp", [3]))))
put("detector", "bad-two-stage-without-lcr", safetensors(
    classifier("first.", 4, [3], rng) + classifier("second.", 2, [3], rng),
    detector_meta("two-stage", ["conductance.conv", "msp"], 4, detector_config("mlp", [3]), detector_config("mlp", [3]))))
put("detector", "bad-epochs", safetensors(
    classifier("first.", 7, [], rng),
    detector_meta("logistic", ["softmax", "lcr"], 7, detector_config("logistic", []).replace('"epochs": 40', '"epochs": 1e30'))))
put("detector", "bad-shape", safetensors(
    classifier("first.", 7, [], rng)[:2] + [("first.layer0.weight", "F32", (1, 6), f32(np.ones(6))),
                                              ("first.layer0.bias", "F32", (1,), f32([0]))],
    detector_meta("logistic", ["softmax", "lcr"], 7, detector_config("logistic", []))))


# ---- features files (layout: README "Features file"; fuzz_features checks what loads)
def features_file(n, classes, layers, lcr=True, changes=None):
    meta = {"format": "veto-features/1", "complete": "true", "count": str(n), "layers": json.dumps(list(layers)),
            "softmax_scores": json.dumps(["msp", "max_logit", "margin", "entropy", "energy", "doctor"]),
            "lcr": "true" if lcr else "false", "model": "tiny", "model_fingerprint": "fnv1a64:0"}
    meta.update(changes or {})
    tensors = [("logits", "F32", (n, classes), f32(rng.normal(size=(n, classes)))),
               ("prediction", "I64", (n,), i64(np.arange(n) % classes)),
               ("label", "I64", (n,), i64((np.arange(n) + 1) % classes - (np.arange(n) == 0))),
               ("softmax_scores", "F32", (n, 6), f32(rng.uniform(size=(n, 6))))]
    for name, c in layers.items():
        tensors.append(("conductance." + name, "F32", (n, c), f32(rng.normal(size=(n, c)))))
    if lcr:
        tensors += [("lcr", "F32", (n,), f32(rng.uniform(size=n))), ("lcr_changes", "I64", (n,), i64(np.arange(n)))]
    return safetensors(tensors, meta)


put("features", "valid", features_file(5, 4, {"conv": 3, "layer3.2": 2}))
put("features", "valid-checkpoint", features_file(2, 10, {}, lcr=False, changes={"complete": "false"}))
put("features", "bad-count", features_file(5, 4, {"conv": 3}, changes={"count": "6"}))
put("features", "bad-layers", features_file(5, 4, {"conv": 3}, changes={"layers": '["conv", "missing"]'}))
put("features", "bad-lcr-flag", features_file(3, 4, {}, lcr=False, changes={"lcr": "true"}))

# ---- CLI arguments -------------------------------------------------------------------------
for i, line in enumerate([
        "--model resnet20 --data data/cifar10_test_0-999.bin --limit 10 --batch 32",
        "--model=m.safetensors --input a.png b.jpg dir/ --format=json --quiet --backend reference",
        "--input x.npy --threads 2 --alpha -0.25",
        "--help",
        "--limit -5 --batch 0 --threads abc",
        "--alpha 1e400 --format xml --backend=tpu",
        "--quiet=1",
        "--model",
        "--model --data",
        "stray --model m",
        "--model= --input=",
        "--bogus 3",
        "--model a --model b",
        "--limit 9223372036854775808 --alpha nan",
]):
    put("args", "line-%02d" % i, line + "\n")


# ---- ONNX models (fuzz_onnx imports them; protobuf written by hand: no onnx package needed)
def pb_varint(v):
    v &= (1 << 64) - 1
    out = b""
    while True:
        b, v = v & 0x7F, v >> 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out


def pb(field, value):
    """One field: an int (varint), a float (fixed32), or bytes/str/list of fields (length-delimited)."""
    if isinstance(value, bool) or isinstance(value, int):
        return pb_varint(field << 3) + pb_varint(value)
    if isinstance(value, float):
        return pb_varint(field << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, list):
        value = b"".join(value)
    if isinstance(value, str):
        value = value.encode()
    return pb_varint(field << 3 | 2) + pb_varint(len(value)) + value


def onnx_attr(name, value):
    if isinstance(value, str):
        return pb(1, name) + pb(4, value) + pb(20, 3)
    if isinstance(value, float):
        return pb(1, name) + pb(2, value) + pb(20, 1)
    if isinstance(value, list):
        return pb(1, name) + b"".join(pb(8, v) for v in value) + pb(20, 7)
    return pb(1, name) + pb(3, value) + pb(20, 2)


def onnx_node(op, inputs, outputs, **attrs):
    return pb(1, [pb(1, i) for i in inputs] + [pb(2, o) for o in outputs] + [pb(3, op + "_" + outputs[0]), pb(4, op)]
              + [pb(5, onnx_attr(k, v)) for k, v in attrs.items()])


def onnx_tensor(name, dims, values, int64=False):
    raw = np.asarray(values, dtype=np.int64 if int64 else np.float32).tobytes()
    return b"".join([pb(1, d) for d in dims] + [pb(2, 7 if int64 else 1), pb(8, name), pb(9, raw)])


def onnx_model(nodes, initializers=(), dims=("batch", 3, 8, 8), opset=13, props=()):
    dim = [pb(1, pb(2, d) if isinstance(d, str) else pb(1, d)) for d in dims]
    tensor_type = pb(1, [pb(1, 1), pb(2, dim)])
    graph = list(nodes) + [pb(2, "g")] + [pb(5, t) for t in initializers]
    graph += [pb(11, [pb(1, "x"), pb(2, tensor_type)]), pb(12, pb(1, "y"))]
    model = pb(1, 8) + pb(8, [pb(1, ""), pb(2, opset)]) + pb(7, graph)
    return model + b"".join(pb(14, [pb(1, k), pb(2, v)]) for k, v in props)


conv_w = onnx_tensor("w", (4, 3, 3, 3), np.linspace(-1, 1, 108))
head_w = onnx_tensor("fw", (10, 4), np.linspace(-1, 1, 40))
put("onnx", "conv-gemm", onnx_model([
    onnx_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
    onnx_node("Conv", ["c", "dw"], ["d"], group=4, dilations=[2, 2], pads=[2, 2, 2, 2]),
    onnx_node("Clip", ["d", "lo", "hi"], ["r"]),
    onnx_node("MaxPool", ["r"], ["p"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    onnx_node("GlobalAveragePool", ["p"], ["g"]),
    onnx_node("Flatten", ["g"], ["f"]),
    onnx_node("Gemm", ["f", "fw"], ["l"], transB=1),
    onnx_node("Softmax", ["l"], ["y"])],
    [conv_w, onnx_tensor("dw", (4, 1, 3, 3), np.linspace(-1, 1, 36)), head_w, onnx_tensor("lo", (), [0.0]),
     onnx_tensor("hi", (), [6.0])],
    props=[("veto.classes", json.dumps([str(i) for i in range(10)]))]))
put("onnx", "slice-pad-affine", onnx_model([
    onnx_node("Gather", ["x", "i0"], ["a"], axis=1),
    onnx_node("Unsqueeze", ["a", "ax"], ["b"]),
    onnx_node("Mul", ["b", "k"], ["m"]),
    onnx_node("Add", ["m", "k"], ["n"]),
    onnx_node("Shape", ["x"], ["s"]),
    onnx_node("Gather", ["s", "i0"], ["s0"], axis=0),
    onnx_node("Slice", ["n", "st", "en", "ax23", "steps"], ["sl"]),
    onnx_node("Pad", ["sl", "pads"], ["pd"], mode="constant"),
    onnx_node("AveragePool", ["pd"], ["ap"], kernel_shape=[2, 2], count_include_pad=1),
    onnx_node("Reshape", ["ap", "flat"], ["y"])],
    [onnx_tensor("i0", (), [0], int64=True), onnx_tensor("ax", (1,), [1], int64=True),
     onnx_tensor("k", (1,), [0.5]), onnx_tensor("st", (2,), [0, 1], int64=True),
     onnx_tensor("en", (2,), [2 ** 63 - 1, -1], int64=True), onnx_tensor("ax23", (2,), [2, 3], int64=True),
     onnx_tensor("steps", (2,), [2, 1], int64=True), onnx_tensor("pads", (8,), [0, 1, 0, 0, 0, 2, 1, 1], int64=True),
     onnx_tensor("flat", (2,), [0, -1], int64=True)]))
put("onnx", "unsupported-ops", onnx_model([onnx_node("Erf", ["x"], ["a"]), onnx_node("LSTM", ["a"], ["y"])]))
put("onnx", "dynamic-height", onnx_model([onnx_node("Relu", ["x"], ["y"])], dims=("batch", 3, "h", 8)))
put("onnx", "opset-5", onnx_model([onnx_node("Relu", ["x"], ["y"])], opset=5))
put("onnx", "opset-9-attrs", onnx_model([
    onnx_node("Pad", ["x"], ["p"], pads=[0, 0, 1, 1, 0, 0, 1, 1], value=0.25),
    onnx_node("Slice", ["p"], ["s"], starts=[1], ends=[9], axes=[2]),
    onnx_node("Clip", ["s"], ["y"], min=0.0, max=1.0)], opset=9))
