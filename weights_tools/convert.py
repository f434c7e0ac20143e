#!/usr/bin/python3
"""Convert pretrained CNN weights into a veto model file (safetensors).

    /usr/bin/python3 weights_tools/convert.py --arch ARCH IN OUT.safetensors

ARCH                      source                                   reader
resnet20/32/44/56         akamaster .th (legacy torch.save)        read_torch_checkpoint
keras_resnet20v1          Keras 2.x HDF5 (.h5)                     read_keras_h5
inception_v3_torchvision  torchvision inception_v3 state_dict      read_torch_checkpoint
                          (.pth/.pt; a pickled model with --trust-pickle)
inception_v3_keras        Keras .h5: full model (model_config) or  read_keras_h5
                          weights-only (keras.applications layout)

InceptionV3 options: --transform-input true|false (torchvision; default true),
--classes FILE (one name per line, or "synset name" lines; default the bundled
ImageNet list when K = 1000), --input-size N, --resize-shorter N,
--width-divisor D (reduced test fixtures only). See weights_tools/README.md.

Structure (so new architectures plug in): one reader per source format turns a
file into a `Source` (a flat name -> array dict, plus the Keras graph where
there is one); one mapper per architecture turns a Source into veto tensor
names, recording every source tensor it consumes; `finish()` checks the result
against the architecture's expected name -> shape table (missing, wrong shape,
unexpected, leftovers never consumed, non-float32, NaN/Inf) and the metadata is
assembled from the arch's preprocessing/classes plus the file's provenance.
Any problem: a message naming the tensor/layer on stderr and exit status 1.

Output: F32 tensors in PyTorch naming (conv weights OIHW, linear (out,in)),
`__metadata__` = format, arch, [variant, width_divisor, transform_input for
InceptionV3], preprocess, classes, provenance, license, source_sha256. Written
atomically (temp file + rename), then read back and compared.
"""

import argparse
import hashlib
import json
import os
import sys
from collections import OrderedDict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import inception_v3_layout as inception  # noqa: E402
import safetensors_io  # noqa: E402

FORMAT = "veto-model/1"

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]

# Files whose upstream we know, keyed by sha256 (see shared/data/README.md §2).
_AKAMASTER = ("https://github.com/akamaster/pytorch_resnet_cifar10",
              "d5489e8995e81e91ce6b1d69dcc98ad579b0b153")
_AKAMASTER_LICENSE = "BSD-2-Clause, (c) 2018 Yerlan Idelbayev"
KNOWN_SOURCES = {
    "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8":
        dict(arch="resnet20", repo=_AKAMASTER[0], commit=_AKAMASTER[1],
             path="pretrained_models/resnet20-12fca82f.th", license=_AKAMASTER_LICENSE),
    "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850":
        dict(arch="resnet32", repo=_AKAMASTER[0], commit=_AKAMASTER[1],
             path="pretrained_models/resnet32-d509ac18.th", license=_AKAMASTER_LICENSE),
    "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4":
        dict(arch="resnet44", repo=_AKAMASTER[0], commit=_AKAMASTER[1],
             path="pretrained_models/resnet44-014dd654.th", license=_AKAMASTER_LICENSE),
    "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367":
        dict(arch="resnet56", repo=_AKAMASTER[0], commit=_AKAMASTER[1],
             path="pretrained_models/resnet56-4bfd9763.th", license=_AKAMASTER_LICENSE),
    "3689fdcbb67d5865fe184ddf12550e5394e21b43267bed3f3118a2415eb8a1b9":
        dict(arch="keras_resnet20v1", repo="https://github.com/schoyc/blackbox-detection",
             commit="5a3f8017aae54295f4f8c0f79cd9eb43c2ae01e0",
             path="cifar10_ResNet20v1_model.h5", license="none stated by the source repository"),
}


# Files recognised by other fingerprints (none of them is in the shared data; users
# download them). torchvision names its files <name>-<first 8 hex digits of the sha256>.pth
# and torch.hub checks that prefix on download; keras.applications records the md5.
KNOWN_SHA256_PREFIXES = {
    "0cc3c7bd": dict(arch="inception_v3_torchvision",
                     repo="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
                     commit=None, path="torchvision Inception_V3_Weights.IMAGENET1K_V1",
                     license="BSD-3-Clause (torchvision); weights ported by torchvision from "
                             "Google's TensorFlow Inception v3 release; trained on ImageNet"),
}
KNOWN_MD5 = {
    "9a0d58056eeedaa3f26cb7ebd46da564": dict(
        arch="inception_v3_keras",
        repo="https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
             "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
        commit=None, path="keras.applications.InceptionV3(weights='imagenet')",
        license="Apache-2.0 (keras-applications: InceptionV3 weights ported from TensorFlow); "
                "trained on ImageNet"),
}

IMAGENET_CLASSES_FILE = os.path.join(HERE, "imagenet_classes.txt")


class ConvertError(Exception):
    pass


def preprocess_json(mean, std, channels=3, height=32, width=32, resize="none",
                    interpolation="bilinear", resize_shorter=0, divisor=255.0):
    d = OrderedDict([("channels", channels), ("height", height), ("width", width),
                     ("resize", resize), ("interpolation", interpolation),
                     ("resize_shorter", resize_shorter), ("divisor", float(divisor)),
                     ("mean", [float(m) for m in mean]), ("std", [float(s) for s in std])])
    return json.dumps(d, separators=(",", ":"))


# ---------------------------------------------------------------------------
# Sources: one reader per file format
# ---------------------------------------------------------------------------

class Source:
    """Flat name -> array view of a weights file, with consumption tracking."""

    def __init__(self, path, arrays, keras_graph=None):
        self.path = path
        self.arrays = arrays            # OrderedDict name -> np.ndarray
        self.keras_graph = keras_graph  # KerasGraph for .h5 files, else None
        self.used = set()

    def take(self, name):
        if name not in self.arrays:
            raise ConvertError(f"{self.path}: source tensor '{name}' is missing")
        if name in self.used:
            raise ConvertError(f"{self.path}: source tensor '{name}' mapped twice")
        self.used.add(name)
        return self.arrays[name]

    def leftovers(self):
        return [n for n in self.arrays if n not in self.used]


def read_torch_checkpoint(path, trust_pickle=False):
    """A PyTorch checkpoint: legacy torch.save (read without torch, no code
    execution) or zip format (torch.load(weights_only=True)). Accepts a plain
    state_dict or {'state_dict': ...}; strips a DataParallel 'module.' prefix
    and drops BN 'num_batches_tracked' counters (not used at inference).
    A whole pickled nn.Module (torch.save(model)) can only be read by running
    the file's pickled code: refused unless trust_pickle, then its state_dict()."""
    with open(path, "rb") as f:
        is_zip = f.read(2) == b"PK"
    if is_zip:
        try:
            import torch
        except ImportError:
            raise ConvertError(f"{path}: zip-format torch file needs torch (use /usr/bin/python3)")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises pickle.UnpicklingError (or RuntimeError) here
            if not trust_pickle:
                raise ConvertError(
                    f"{path}: not a plain state_dict (torch.load(weights_only=True): "
                    f"{str(e).split('.')[0][:120]}); if it is a whole "
                    "pickled model (torch.save(model)), loading it runs code stored in the file: "
                    "re-run with --trust-pickle only if you trust the file")
            try:
                obj = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as e2:
                raise ConvertError(f"{path}: torch.load failed: {e2}")
        if hasattr(obj, "state_dict") and callable(obj.state_dict):  # a pickled nn.Module
            obj = obj.state_dict()
    else:
        import torch_legacy_io
        try:
            obj = torch_legacy_io.load(path)
        except torch_legacy_io.LegacyFormatError as e:
            if not trust_pickle:
                raise ConvertError(str(e))
            import torch  # --trust-pickle: a legacy-format pickled model
            obj = torch.load(path, map_location="cpu", weights_only=False)
            if hasattr(obj, "state_dict") and callable(obj.state_dict):
                obj = obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: expected a state_dict, got {type(obj).__name__}")
    arrays = OrderedDict()
    for key, value in obj.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if name.endswith("num_batches_tracked"):
            continue
        if hasattr(value, "detach"):  # torch tensor from the zip path
            value = value.detach().cpu().numpy()
        if not isinstance(value, np.ndarray):
            raise ConvertError(f"{path}: state_dict entry '{key}' is a {type(value).__name__}, not a tensor")
        if name in arrays:
            raise ConvertError(f"{path}: '{name}' appears twice after stripping 'module.'")
        arrays[name] = value
    return Source(path, arrays)


def _keras3_history(obj, out):
    """Layer names of the Keras-3 serialized tensors in `obj` (a node's args/kwargs), in order."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            out.append(obj["config"]["keras_history"][0])
        else:
            for v in obj.values():
                _keras3_history(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _keras3_history(v, out)
    return out


def _endpoint_names(entries):
    """input_layers/output_layers: [[name, 0, 0], ...] (Keras 2) or a bare [name, 0, 0] (Keras 3)."""
    if not entries:
        return []
    if isinstance(entries[0], str):
        entries = [entries]
    return [e[0] for e in entries]


class KerasGraph:
    """The layer graph from a functional `model_config` JSON: Keras 2 (inbound nodes
    [[name, node, tensor, kwargs], ...]) or Keras 3 (nodes {"args": [...], "kwargs": {...}}
    holding serialized tensors with a keras_history)."""

    NESTED = ("Model", "Functional", "Sequential")

    def __init__(self, config, where):
        self.where = where
        if config.get("class_name") not in ("Model", "Functional"):
            raise ConvertError(f"{where}: model_config is a {config.get('class_name')}, "
                               "expected a functional Model")
        cfg = config["config"]
        self.layers = OrderedDict()
        self.inbound = {}
        for layer in cfg["layers"]:
            name = layer.get("name") or layer["config"]["name"]
            if layer["class_name"] in self.NESTED:
                raise ConvertError(
                    f"{where}: layer {name} is a nested {layer['class_name']} model; only flat functional "
                    "models are supported (build it as Model(base.input, head(base.output)) and re-save)")
            nodes = layer.get("inbound_nodes", [])
            if len(nodes) > 1:
                raise ConvertError(f"{where}: layer {name} is called {len(nodes)} times (shared layers unsupported)")
            if not nodes:
                inputs = []
            elif isinstance(nodes[0], dict):  # Keras 3
                inputs = _keras3_history([nodes[0].get("args", []), nodes[0].get("kwargs", {})], [])
            else:  # Keras 2
                inputs = [entry[0] for entry in nodes[0]]
            if name in self.layers:
                raise ConvertError(f"{where}: two layers are named {name}")
            self.layers[name] = layer
            self.inbound[name] = inputs
        self.consumers = {n: [] for n in self.layers}
        for name, inputs in self.inbound.items():
            for src in inputs:
                if src not in self.layers:
                    raise ConvertError(f"{where}: layer {name} reads unknown layer {src}")
                self.consumers[src].append(name)
        self.input_layers = _endpoint_names(cfg.get("input_layers", []))
        self.output_layers = _endpoint_names(cfg.get("output_layers", []))

    def cls(self, name):
        return self.layers[name]["class_name"]

    def cfg(self, name):
        return self.layers[name]["config"]

    def sole_consumer(self, name, cls):
        cons = self.consumers[name]
        if len(cons) != 1:
            raise ConvertError(f"{self.where}: layer {name} feeds {cons}, expected exactly one {cls}")
        if self.cls(cons[0]) != cls:
            raise ConvertError(f"{self.where}: layer {name} feeds {cons[0]} ({self.cls(cons[0])}), expected a {cls}")
        return cons[0]


def read_keras_h5(path, require_config=True):
    """A Keras HDF5 file: a full model (model.save: root attrs model_config, weights under
    model_weights) or, unless require_config, a weights-only file (save_weights: the layer
    groups at the root). Arrays are named '<layer>/<weight>' with the weight's short
    name as stored: 'conv2d_1/kernel:0' (Keras 2) or 'conv2d/kernel' (Keras 3)."""
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ConvertError(f"{path}: not an HDF5 file ({e})")
    with f:
        def text(v):
            return v.decode("utf-8") if isinstance(v, bytes) else str(v)
        graph = None
        if "model_config" in f.attrs:
            graph = KerasGraph(json.loads(text(f.attrs["model_config"])), path)
        elif require_config:
            raise ConvertError(f"{path}: no model_config attribute (a weights-only file cannot be mapped by topology)")
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise ConvertError(f"{path}: no layer_names attribute in the weights group "
                               "(not a Keras HDF5 model or weights file)")
        arrays = OrderedDict()
        for lname in (text(n) for n in root.attrs["layer_names"]):
            if lname not in root:
                raise ConvertError(f"{path}: layer group '{lname}' is missing")
            g = root[lname]
            wnames = [text(w) for w in g.attrs.get("weight_names", [])]
            if wnames and graph is not None and lname not in graph.layers:
                raise ConvertError(f"{path}: weights for layer '{lname}' which is not in model_config")
            stored = []
            g.visititems(lambda n, o: stored.append(n) if isinstance(o, h5py.Dataset) else None)
            if sorted(stored) != sorted(wnames):
                raise ConvertError(f"{path}: layer '{lname}' datasets {sorted(stored)} differ from weight_names {wnames}")
            for w in wnames:
                short = w.split("/")[-1]
                key = f"{lname}/{short}"
                if key in arrays:
                    raise ConvertError(f"{path}: weight {key} appears twice")
                arrays[key] = np.array(g[w])
    return Source(path, arrays, keras_graph=graph)


# ---------------------------------------------------------------------------
# Mappers: one per architecture (source -> veto names), plus expected shapes
# ---------------------------------------------------------------------------

def _bn_shapes(prefix, c):
    return [(f"{prefix}.{p}", (c,)) for p in ("weight", "bias", "running_mean", "running_var")]


def cifar_resnet_expected(depth, conv_bias=False, projection_shortcut=False):
    """veto names/shapes for a CIFAR ResNet of `depth` (6n+2): 16/32/64 channels,
    n BasicBlocks per stage. Keras v1 adds conv biases and 1x1 projection
    shortcuts on the first block of stages 2 and 3."""
    if (depth - 2) % 6:
        raise ValueError(depth)
    n = (depth - 2) // 6
    exp = [("conv1.weight", (16, 3, 3, 3))]
    if conv_bias:
        exp.append(("conv1.bias", (16,)))
    exp += _bn_shapes("bn1", 16)
    in_planes = 16
    for s, planes in enumerate((16, 32, 64), start=1):
        for b in range(n):
            p = f"layer{s}.{b}"
            exp.append((f"{p}.conv1.weight", (planes, in_planes, 3, 3)))
            if conv_bias:
                exp.append((f"{p}.conv1.bias", (planes,)))
            exp += _bn_shapes(f"{p}.bn1", planes)
            exp.append((f"{p}.conv2.weight", (planes, planes, 3, 3)))
            if conv_bias:
                exp.append((f"{p}.conv2.bias", (planes,)))
            exp += _bn_shapes(f"{p}.bn2", planes)
            if projection_shortcut and in_planes != planes:
                exp.append((f"{p}.shortcut.weight", (planes, in_planes, 1, 1)))
                exp.append((f"{p}.shortcut.bias", (planes,)))
            in_planes = planes
    exp += [("linear.weight", (10, 64)), ("linear.bias", (10,))]
    return OrderedDict(exp)


def map_identity(src, expected):
    """Source names already are veto names (akamaster checkpoints)."""
    out = OrderedDict()
    for name in expected:
        if name not in src.arrays:
            raise ConvertError(f"{src.path}: expected tensor '{name}' (shape {expected[name]}) is missing")
        out[name] = src.take(name)
    return out


def _check_conv(g, name, kernel, strides, filters=None):
    c = g.cfg(name)
    want = dict(kernel_size=list(kernel), strides=list(strides), padding="same", use_bias=True,
                activation="linear", data_format="channels_last")
    for k, v in want.items():
        if c.get(k) != v:
            raise ConvertError(f"{g.where}: Conv2D {name}: {k} is {c.get(k)!r}, expected {v!r}")
    if c.get("dilation_rate", [1, 1]) not in ([1, 1], 1):
        raise ConvertError(f"{g.where}: Conv2D {name}: dilation {c.get('dilation_rate')} unsupported")
    if filters is not None and c.get("filters") != filters:
        raise ConvertError(f"{g.where}: Conv2D {name}: {c.get('filters')} filters, expected {filters}")


def _check_bn(g, name, eps):
    c = g.cfg(name)
    if c.get("axis") not in (-1, 3, [3], [-1]):
        raise ConvertError(f"{g.where}: BatchNormalization {name}: axis {c.get('axis')}, expected -1")
    if not (c.get("center", True) and c.get("scale", True)):
        raise ConvertError(f"{g.where}: BatchNormalization {name}: center/scale must both be on")
    if abs(float(c.get("epsilon")) - eps) > 1e-12:
        raise ConvertError(f"{g.where}: BatchNormalization {name}: epsilon {c.get('epsilon')}, expected {eps}")


def _check_relu(g, name):
    if g.cls(name) != "Activation" or g.cfg(name).get("activation") != "relu":
        raise ConvertError(f"{g.where}: layer {name} should be Activation('relu')")


def walk_keras_resnet_v1(g):
    """Walk the Keras-example resnet_v1 graph from the input and return
    (stem, blocks, head) with layer names:
      stem   = dict(conv, bn, relu)
      blocks = [dict(conv1, bn1, relu1, conv2, bn2, shortcut or None, add, relu, stride, filters)]
      head   = dict(pool, flatten, dense, softmax or None)
    Checks topology (which conv feeds which BN, which conv is the projection
    shortcut feeding the Add) and layer hyper-parameters along the way."""
    inputs = [n for n in g.layers if g.cls(n) == "InputLayer"]
    if len(inputs) != 1:
        raise ConvertError(f"{g.where}: expected one InputLayer, found {inputs}")
    inp = inputs[0]
    shape = g.cfg(inp).get("batch_input_shape")
    if shape != [None, 32, 32, 3]:
        raise ConvertError(f"{g.where}: input shape {shape}, expected [None, 32, 32, 3] (NHWC)")
    conv = g.sole_consumer(inp, "Conv2D")
    _check_conv(g, conv, (3, 3), (1, 1), 16)
    bn = g.sole_consumer(conv, "BatchNormalization")
    _check_bn(g, bn, 1e-3)
    relu = g.sole_consumer(bn, "Activation")
    _check_relu(g, relu)
    stem = dict(conv=conv, bn=bn, relu=relu)

    x = relu
    blocks = []
    while True:
        cons = g.consumers[x]
        if len(cons) == 1 and g.cls(cons[0]) == "AveragePooling2D":
            break
        convs = [c for c in cons if g.cls(c) == "Conv2D"]
        main = [c for c in convs if [g.cls(n) for n in g.consumers[c]] == ["BatchNormalization"]]
        short = [c for c in convs if [g.cls(n) for n in g.consumers[c]] == ["Add"]]
        if len(main) != 1 or len(main) + len(short) != len(convs):
            raise ConvertError(f"{g.where}: after {x}: cannot identify the residual block from consumers {cons}")
        c1 = main[0]
        stride = g.cfg(c1)["strides"]
        filters = g.cfg(c1)["filters"]
        _check_conv(g, c1, (3, 3), stride)
        b1 = g.sole_consumer(c1, "BatchNormalization")
        _check_bn(g, b1, 1e-3)
        r1 = g.sole_consumer(b1, "Activation")
        _check_relu(g, r1)
        c2 = g.sole_consumer(r1, "Conv2D")
        _check_conv(g, c2, (3, 3), (1, 1), filters)
        b2 = g.sole_consumer(c2, "BatchNormalization")
        _check_bn(g, b2, 1e-3)
        add = g.sole_consumer(b2, "Add")
        if short:
            if len(short) != 1:
                raise ConvertError(f"{g.where}: after {x}: more than one shortcut conv {short}")
            sc = short[0]
            _check_conv(g, sc, (1, 1), stride, filters)
            if g.consumers[sc] != [add]:
                raise ConvertError(f"{g.where}: shortcut conv {sc} feeds {g.consumers[sc]}, expected {add}")
            skip = sc
            other = [c for c in cons if c not in (c1, sc)]
        else:
            sc = None
            skip = x
            other = [c for c in cons if c != c1]
            if stride != [1, 1]:
                raise ConvertError(f"{g.where}: block at {c1} has stride {stride} but no projection shortcut")
        if sorted(g.inbound[add]) != sorted([skip, b2]):
            raise ConvertError(f"{g.where}: Add {add} reads {g.inbound[add]}, expected {skip} and {b2}")
        if other != ([] if sc else [add]):
            raise ConvertError(f"{g.where}: block input {x} also feeds {other}")
        r2 = g.sole_consumer(add, "Activation")
        _check_relu(g, r2)
        blocks.append(dict(conv1=c1, bn1=b1, relu1=r1, conv2=c2, bn2=b2, shortcut=sc, add=add, relu=r2,
                           stride=stride, filters=filters))
        x = r2

    pool = g.consumers[x][0]
    pc = g.cfg(pool)
    if pc.get("pool_size") != [8, 8] or pc.get("strides") not in ([8, 8], None) or pc.get("padding") != "valid":
        raise ConvertError(f"{g.where}: {pool}: expected AveragePooling2D(8) valid, got {pc}")
    flatten = g.sole_consumer(pool, "Flatten")
    dense = g.sole_consumer(flatten, "Dense")
    dc = g.cfg(dense)
    if dc.get("activation") != "linear" or not dc.get("use_bias", True) or dc.get("units") != 10:
        raise ConvertError(f"{g.where}: Dense {dense}: expected 10 units, bias, linear activation; got {dc}")
    softmax = None
    if g.consumers[dense]:
        softmax = g.sole_consumer(dense, "Activation")
        if g.cfg(softmax).get("activation") != "softmax" or g.consumers[softmax]:
            raise ConvertError(f"{g.where}: {softmax} after {dense} should be the final softmax")
    final = softmax or dense
    if g.output_layers and g.output_layers != [final]:
        raise ConvertError(f"{g.where}: model outputs {g.output_layers}, expected [{final}]")
    unvisited = set(g.layers) - {inp, pool, flatten, dense, final} - set(stem.values()) - {
        v for b in blocks for k, v in b.items() if k not in ("stride", "filters") and v}
    if unvisited:
        raise ConvertError(f"{g.where}: layers not on the resnet_v1 path: {sorted(unvisited)}")
    return stem, blocks, dict(pool=pool, flatten=flatten, dense=dense, softmax=softmax)


def map_keras_resnet_v1(src, expected, depth):
    g = src.keras_graph
    if g is None:
        raise ConvertError(f"{src.path}: keras archs need a Keras .h5 file with model_config")
    stem, blocks, head = walk_keras_resnet_v1(g)
    n = (depth - 2) // 6
    # stages: a new stage starts at every stride-2 block
    stage, index, names = 1, 0, []
    for i, b in enumerate(blocks):
        if i > 0 and b["stride"] == [2, 2]:
            stage, index = stage + 1, 0
        elif i > 0:
            index += 1
        names.append(f"layer{stage}.{index}")
    counts = [sum(1 for nm in names if nm.startswith(f"layer{s}.")) for s in (1, 2, 3)]
    if counts != [n, n, n] or stage != 3:
        raise ConvertError(f"{src.path}: found blocks per stage {counts}, expected {[n] * 3} for depth {depth}")

    out = OrderedDict()

    def conv(veto, layer):
        out[f"{veto}.weight"] = src.take(f"{layer}/kernel:0").transpose(3, 2, 0, 1)  # HWIO -> OIHW
        out[f"{veto}.bias"] = src.take(f"{layer}/bias:0")

    def bn(veto, layer):
        for keras_w, veto_w in (("gamma", "weight"), ("beta", "bias"),
                                ("moving_mean", "running_mean"), ("moving_variance", "running_var")):
            out[f"{veto}.{veto_w}"] = src.take(f"{layer}/{keras_w}:0")

    conv("conv1", stem["conv"])
    bn("bn1", stem["bn"])
    for prefix, b in zip(names, blocks):
        conv(f"{prefix}.conv1", b["conv1"])
        bn(f"{prefix}.bn1", b["bn1"])
        conv(f"{prefix}.conv2", b["conv2"])
        bn(f"{prefix}.bn2", b["bn2"])
        if b["shortcut"]:
            conv(f"{prefix}.shortcut", b["shortcut"])
    out["linear.weight"] = src.take(f"{head['dense']}/kernel:0").T  # (in,out) -> (out,in)
    out["linear.bias"] = src.take(f"{head['dense']}/bias:0")
    return out, dict(stem=stem, blocks=list(zip(names, blocks)), head=head)


# ---------------------------------------------------------------------------
# InceptionV3 (torchvision and Keras)
# ---------------------------------------------------------------------------

_RELU = ("Activation", "ReLU")


def _axis_last(v):
    return v in (-1, 3, [3], [-1])


def _is_relu(g, name):
    c = g.cfg(name)
    if g.cls(name) == "Activation":
        return c.get("activation") == "relu"
    if g.cls(name) == "ReLU":
        return (c.get("max_value") is None and not c.get("negative_slope") and not c.get("threshold"))
    return False


def _inception_check_conv(g, name, spec):
    """A Keras Conv2D against a layout Conv (filters, kernel, stride, torchvision padding)."""
    c = g.cfg(name)
    kh, kw = spec.kernel
    s = spec.stride
    if spec.pad == (0, 0):
        pad_ok = c.get("padding") == "valid" or (c.get("padding") == "same" and (kh, kw) == (1, 1) and s == 1)
        want_pad = "valid"
    else:  # torchvision's symmetric padding k//2 == Keras 'same' for stride 1 and odd kernels
        pad_ok = c.get("padding") == "same" and s == 1 and spec.pad == (kh // 2, kw // 2)
        want_pad = "same"
    problems = []
    if c.get("filters") != spec.out:
        problems.append(f"{c.get('filters')} filters, expected {spec.out}")
    if list(c.get("kernel_size", [])) != [kh, kw]:
        problems.append(f"kernel_size {c.get('kernel_size')}, expected {[kh, kw]}")
    if list(c.get("strides", [])) != [s, s]:
        problems.append(f"strides {c.get('strides')}, expected {[s, s]}")
    if not pad_ok:
        problems.append(f"padding {c.get('padding')!r}, expected {want_pad!r}")
    if c.get("use_bias", True):
        problems.append("use_bias is true (InceptionV3 convs have no bias)")
    if c.get("activation", "linear") != "linear":
        problems.append(f"activation {c.get('activation')!r}")
    if c.get("data_format", "channels_last") != "channels_last":
        problems.append(f"data_format {c.get('data_format')!r}")
    if c.get("dilation_rate", [1, 1]) not in ([1, 1], 1, (1, 1)) or c.get("groups", 1) != 1:
        problems.append("dilation/groups unsupported")
    if problems:
        raise ConvertError(f"{g.where}: Conv2D {name} (as {spec.name}): " + "; ".join(problems))


def _inception_check_bn(g, name, where_in_net):
    c = g.cfg(name)
    if not _axis_last(c.get("axis")):
        raise ConvertError(f"{g.where}: BatchNormalization {name} ({where_in_net}): axis {c.get('axis')}, expected 3")
    if not c.get("center", True):
        raise ConvertError(f"{g.where}: BatchNormalization {name} ({where_in_net}): center=False unsupported")
    if abs(float(c.get("epsilon")) - 1e-3) > 1e-12:
        raise ConvertError(f"{g.where}: BatchNormalization {name} ({where_in_net}): epsilon {c.get('epsilon')}, expected 0.001")


def _inception_check_pool(g, name, kind):
    c = g.cfg(name)
    if kind == "max":
        want = ("MaxPooling2D", [3, 3], [2, 2], "valid")
    else:
        want = ("AveragePooling2D", [3, 3], [1, 1], "same")
    got = (g.cls(name), list(c.get("pool_size") or []), list(c.get("strides") or c.get("pool_size") or []),
           c.get("padding"))
    if got != want or c.get("data_format", "channels_last") != "channels_last":
        raise ConvertError(f"{g.where}: pooling layer {name}: {got}, expected {want}")


def _single_inbound(g, name):
    ins = g.inbound[name]
    if len(ins) != 1:
        raise ConvertError(f"{g.where}: layer {name} reads {ins}, expected one input")
    return ins[0]


def _trace_unit(g, act):
    """Activation(relu) <- BatchNormalization <- Conv2D: returns (conv, bn, act, conv input)."""
    if not _is_relu(g, act):
        raise ConvertError(f"{g.where}: expected a relu Activation, found {act} ({g.cls(act)})")
    bn = _single_inbound(g, act)
    if g.cls(bn) != "BatchNormalization":
        raise ConvertError(f"{g.where}: {act} reads {bn} ({g.cls(bn)}), expected a BatchNormalization")
    conv = _single_inbound(g, bn)
    if g.cls(conv) != "Conv2D":
        raise ConvertError(f"{g.where}: {bn} reads {conv} ({g.cls(conv)}), expected a Conv2D")
    return conv, bn, act, _single_inbound(g, conv)


def _trace_branch(g, node, block_input):
    """The steps from block_input to `node`, walking inbound links: ('conv', conv, bn, act),
    ('pool', layer) or ('fork', concat, [conv units])."""
    steps = []
    while node != block_input:
        if len(steps) > 20:
            raise ConvertError(f"{g.where}: branch ending at {node} does not lead back to {block_input}")
        cls = g.cls(node)
        if cls in _RELU:
            conv, bn, act, node = _trace_unit(g, node)
            steps.append(("conv", conv, bn, act))
        elif cls in ("AveragePooling2D", "MaxPooling2D"):
            steps.append(("pool", node))
            node = _single_inbound(g, node)
        elif cls == "Concatenate":
            units, sources = [], []
            for t in g.inbound[node]:
                conv, bn, act, src = _trace_unit(g, t)
                units.append(("conv", conv, bn, act))
                sources.append(src)
            if len(set(sources)) != 1:
                raise ConvertError(f"{g.where}: the convs concatenated by {node} read different inputs {sources}")
            steps.append(("fork", node, units))
            node = sources[0]
        else:
            raise ConvertError(f"{g.where}: unexpected {cls} layer {node} inside an Inception block "
                               f"(branch does not lead back to the block input {block_input})")
    steps.reverse()
    return steps


def _ancestors(g, node, stop):
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        for i in g.inbound[n]:
            if i != stop and i not in seen:
                seen.add(i)
                todo.append(i)
    return seen


def _find_block_output(g, block_input):
    """The Concatenate that joins every branch leaving block_input: the first one, in
    breadth-first order, that has all of block_input's consumers as ancestors."""
    firsts = set(g.consumers[block_input])
    if not firsts:
        raise ConvertError(f"{g.where}: {block_input} feeds nothing, expected an Inception block")
    seen, queue = {block_input}, [block_input]
    while queue:
        nxt = []
        for n in queue:
            for c in g.consumers[n]:
                if c in seen:
                    continue
                seen.add(c)
                if g.cls(c) == "Concatenate" and firsts <= _ancestors(g, c, block_input):
                    return c
                nxt.append(c)
        queue = nxt
    raise ConvertError(f"{g.where}: no Concatenate joins the branches leaving {block_input}")


def _expect_consumers(g, name, want):
    if sorted(g.consumers[name]) != sorted(want):
        raise ConvertError(f"{g.where}: layer {name} feeds {g.consumers[name]}, expected {sorted(want)}")


def walk_keras_inception_v3(g, d=1):
    """Walk a keras.applications InceptionV3 graph (plus classifier head) from its input,
    assigning torchvision names by topology: the stem chain, then per block the Concatenate
    that joins all branches leaving the block input, its inputs in order (the concat
    order) each traced back to the block input and matched against the layout's branch
    (conv kernel/stride/padding/filters, pools, the 1x3/3x1 forks of mixed9/10).
    Returns dict(units={torch conv name: (conv, bn, act)}, blocks={torch block: concat},
    head=dict(gap, dropouts, dense, softmax), input_hw=(H, W) or None)."""
    inputs = [n for n in g.layers if g.cls(n) == "InputLayer"]
    if len(inputs) != 1:
        raise ConvertError(f"{g.where}: expected one InputLayer, found {inputs}")
    inp = inputs[0]
    ic = g.cfg(inp)
    shape = ic.get("batch_input_shape") or ic.get("batch_shape")
    if not shape or len(shape) != 4 or shape[3] != 3:
        raise ConvertError(f"{g.where}: input shape {shape}, expected [None, H, W, 3] (NHWC)")
    input_hw = None if shape[1] is None or shape[2] is None else (int(shape[1]), int(shape[2]))
    visited = {inp}
    units = OrderedDict()

    def take_unit(conv, bn, act, spec):
        _inception_check_conv(g, conv, spec)
        _inception_check_bn(g, bn, spec.name)
        _expect_consumers(g, conv, [bn])
        _expect_consumers(g, bn, [act])
        units[spec.name] = (conv, bn, act)
        visited.update((conv, bn, act))

    x = inp
    for step in inception.stem(d):
        if isinstance(step, inception.Conv):
            conv = g.sole_consumer(x, "Conv2D")
            bn = g.sole_consumer(conv, "BatchNormalization")
            cons = g.consumers[bn]
            if len(cons) != 1 or not _is_relu(g, cons[0]):
                raise ConvertError(f"{g.where}: {bn} feeds {cons}, expected one relu Activation")
            take_unit(conv, bn, cons[0], step)
            x = cons[0]
        else:
            cons = g.consumers[x]
            if len(cons) != 1:
                raise ConvertError(f"{g.where}: stem layer {x} feeds {cons}, expected one MaxPooling2D")
            _inception_check_pool(g, cons[0], "max")
            visited.add(cons[0])
            x = cons[0]

    block_outputs = OrderedDict()
    for tblock, kname, kind, branches in inception.blocks(d):
        out = _find_block_output(g, x)
        c = g.cfg(out)
        if not _axis_last(c.get("axis")):
            raise ConvertError(f"{g.where}: Concatenate {out} ({tblock}): axis {c.get('axis')}, expected 3")
        ins = g.inbound[out]
        if len(ins) != len(branches):
            raise ConvertError(f"{g.where}: {out} ({tblock}, Keras {kname}) joins {len(ins)} branches, "
                               f"expected {len(branches)}")
        firsts = []
        for bi, (spec, end) in enumerate(zip(branches, ins)):
            traced = _trace_branch(g, end, x)
            kinds = ["conv" if isinstance(s, inception.Conv) else "fork" if isinstance(s, inception.Fork)
                     else "pool" for s in spec]
            if [t[0] for t in traced] != kinds:
                raise ConvertError(f"{g.where}: input {bi} of {out} ({tblock}) is a branch {[t[0] for t in traced]}, "
                                   f"expected {kinds} (branch order or structure differs)")
            prev_exit = [x]
            for s, t in zip(spec, traced):
                if t[0] == "conv":
                    take_unit(t[1], t[2], t[3], s)
                    entry, exit_ = [t[1]], t[3]
                elif t[0] == "pool":
                    _inception_check_pool(g, t[1], s.kind)
                    visited.add(t[1])
                    entry, exit_ = [t[1]], t[1]
                else:  # fork: two convs on one input, concatenated in the layout's order
                    _axis = g.cfg(t[1]).get("axis")
                    if not _axis_last(_axis):
                        raise ConvertError(f"{g.where}: Concatenate {t[1]}: axis {_axis}, expected 3")
                    if len(t[2]) != len(s.convs):
                        raise ConvertError(f"{g.where}: {t[1]} joins {len(t[2])} convs, expected {len(s.convs)}")
                    for cs, u in zip(s.convs, t[2]):
                        take_unit(u[1], u[2], u[3], cs)
                        _expect_consumers(g, u[3], [t[1]])
                    visited.add(t[1])
                    entry, exit_ = [u[1] for u in t[2]], t[1]
                if prev_exit[0] == x:
                    firsts.extend(entry)
                else:
                    _expect_consumers(g, prev_exit[0], entry)
                prev_exit = [exit_]
            if prev_exit[0] != x:
                _expect_consumers(g, prev_exit[0], [out])
        _expect_consumers(g, x, firsts)
        visited.add(out)
        block_outputs[tblock] = out
        x = out

    # head: GlobalAveragePooling2D -> [Dropout...] -> Dense(K) [-> softmax Activation]
    gap = g.sole_consumer(x, "GlobalAveragePooling2D")
    gc = g.cfg(gap)
    if gc.get("data_format", "channels_last") != "channels_last" or gc.get("keepdims", False):
        raise ConvertError(f"{g.where}: {gap}: expected channels_last, keepdims False")
    node, dropouts = gap, []
    while len(g.consumers[node]) == 1 and g.cls(g.consumers[node][0]) == "Dropout":
        node = g.consumers[node][0]
        dropouts.append(node)
    cons = g.consumers[node]
    heads = ("the supported head is GlobalAveragePooling2D [-> Dropout] -> Dense(K, softmax or linear, "
             "with bias) [-> softmax]")
    if len(cons) != 1 or g.cls(cons[0]) != "Dense":
        raise ConvertError(f"{g.where}: after {node} comes {[(c, g.cls(c)) for c in cons]}; {heads}")
    dense = cons[0]
    dc = g.cfg(dense)
    if dc.get("activation") not in ("softmax", "linear", None) or not dc.get("use_bias", True):
        raise ConvertError(f"{g.where}: Dense {dense}: activation {dc.get('activation')!r}, use_bias "
                           f"{dc.get('use_bias')}; {heads}")
    softmax = None
    if g.consumers[dense]:
        softmax = g.consumers[dense][0]
        sc = g.cfg(softmax)
        if (len(g.consumers[dense]) != 1 or g.consumers[softmax]
                or not ((g.cls(softmax) == "Activation" and sc.get("activation") == "softmax")
                        or g.cls(softmax) == "Softmax")):
            raise ConvertError(f"{g.where}: {dense} feeds {g.consumers[dense]}; {heads}")
    final = softmax or dense
    if g.output_layers and g.output_layers != [final]:
        raise ConvertError(f"{g.where}: model outputs {g.output_layers}, expected [{final}]")
    visited.update([gap, dense] + dropouts + ([softmax] if softmax else []))
    unvisited = [n for n in g.layers if n not in visited]
    if unvisited:
        raise ConvertError(f"{g.where}: layers not on the InceptionV3 path: {unvisited[:12]}"
                           + (f" ... ({len(unvisited)} in all)" if len(unvisited) > 12 else ""))
    return dict(units=units, blocks=block_outputs, input_hw=input_hw,
                head=dict(gap=gap, dropouts=dropouts, dense=dense, softmax=softmax))


def _keras_weight(src, layer, short, required=True):
    """'<layer>/<short>:0' (Keras 2) or '<layer>/<short>' (Keras 3)."""
    for key in (f"{layer}/{short}:0", f"{layer}/{short}"):
        if key in src.arrays:
            return src.take(key)
    if required:
        raise ConvertError(f"{src.path}: weight {layer}/{short} is missing")
    return None


def _keras_dense_layers(src):
    """Layers holding a rank-2 kernel (Dense) in a weights-only file."""
    return sorted({k.rsplit("/", 1)[0] for k, a in src.arrays.items()
                   if k.rsplit("/", 1)[1].split(":")[0] == "kernel" and a.ndim == 2})


def keras_inception_units(src, d):
    """(units {torch conv name: (conv layer, bn layer)}, dense layer, input_hw, how) for a
    Keras source: by graph topology when the file has a model_config, else by the
    canonical Keras-2 names conv2d_i / batch_normalization_i (creation order)."""
    if src.keras_graph is not None:
        w = walk_keras_inception_v3(src.keras_graph, d)
        return (OrderedDict((k, v[:2]) for k, v in w["units"].items()), w["head"]["dense"], w["input_hw"],
                "graph topology (model_config)")
    names = inception.keras2_names(d)
    missing = [c for _, c, _ in names if not any(k.startswith(c + "/") for k in src.arrays)]
    if missing:
        raise ConvertError(f"{src.path}: weights-only file without the Keras-2 layer names of "
                           f"keras.applications InceptionV3 (missing {missing[:3]}...); save the whole model "
                           "(model.save('x.h5')) so the layers can be mapped by topology")
    dense = _keras_dense_layers(src)
    if len(dense) != 1:
        raise ConvertError(f"{src.path}: expected exactly one Dense (classifier) layer, found {dense or 'none'}"
                           + (" (an include_top=False 'notop' file has no classifier)" if not dense else ""))
    return (OrderedDict((t, (c, b)) for t, c, b in names), dense[0], None,
            "canonical Keras-2 layer names (weights-only file)")


def map_inception_v3_keras(src, expected, d, found=None):
    """`found`: keras_inception_units(src, d) when already computed."""
    units, dense, _, _ = found or keras_inception_units(src, d)
    out = OrderedDict()
    for tname, (conv, bn) in units.items():
        kernel = _keras_weight(src, conv, "kernel")
        if kernel.ndim != 4:
            raise ConvertError(f"{src.path}: {conv} kernel has shape {kernel.shape}, expected (kh, kw, in, out)")
        out[f"{tname}.conv.weight"] = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        if _keras_weight(src, conv, "bias", required=False) is not None:
            raise ConvertError(f"{src.path}: {conv} has a bias; InceptionV3 convs have none")
        beta = _keras_weight(src, bn, "beta")
        gamma = _keras_weight(src, bn, "gamma", required=False)  # scale=False in keras.applications
        out[f"{tname}.bn.weight"] = gamma if gamma is not None else np.ones_like(beta)
        out[f"{tname}.bn.bias"] = beta
        out[f"{tname}.bn.running_mean"] = _keras_weight(src, bn, "moving_mean")
        out[f"{tname}.bn.running_var"] = _keras_weight(src, bn, "moving_variance")
    kernel = _keras_weight(src, dense, "kernel")
    out["fc.weight"] = kernel.T  # (in, out) -> (out, in)
    out["fc.bias"] = _keras_weight(src, dense, "bias")
    return out


def map_inception_v3_torchvision(src, expected):
    """torchvision names are the veto names; the auxiliary classifier (AuxLogits.*, used
    only in training) is read and dropped."""
    out = OrderedDict()
    for name in src.arrays:
        if name.startswith("AuxLogits."):
            src.take(name)
    for name in expected:
        if name not in src.arrays:
            raise ConvertError(f"{src.path}: expected tensor '{name}' (shape {expected[name]}) is missing")
        out[name] = src.take(name)
    return out


def read_class_names(path, count):
    """One class per line: a name, or 'synset name' (ImageNet style, e.g. 'n01440764 tench')
    which gives the name. Blank lines are errors; the count must be `count`."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConvertError(f"--classes {path}: {e}")
    while lines and not lines[-1].strip():
        lines.pop()
    names = []
    for i, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            raise ConvertError(f"--classes {path}: line {i} is blank")
        parts = text.split(None, 1)
        if len(parts) == 2 and len(parts[0]) == 9 and parts[0][0] == "n" and parts[0][1:].isdigit():
            text = parts[1].strip()
        names.append(text)
    if len(names) != count:
        raise ConvertError(f"--classes {path}: {len(names)} names, but the model has {count} classes")
    return names


def inception_classes(options, k):
    path = options.get("classes")
    if path:
        return read_class_names(path, k)
    if k == 1000:
        return read_class_names(IMAGENET_CLASSES_FILE, 1000)
    raise ConvertError(f"the model has {k} classes: pass --classes FILE (one name per line)")


def _check_first_conv(src, tensors_out, d):
    w = tensors_out.get("Conv2d_1a_3x3.conv.weight")
    if w is not None and w.shape[0] != 32 // d:
        raise ConvertError(f"{src.path}: the first conv has {w.shape[0]} filters; --width-divisor {d} expects "
                           f"{32 // d} (the full model has 32: --width-divisor 1)")


# ---------------------------------------------------------------------------
# Architecture registry
# ---------------------------------------------------------------------------

class Arch:
    """A fixed architecture: one reader, one mapper, a static expected table and metadata."""

    options = ()  # names of the convert() options this arch accepts

    def __init__(self, name, reader, mapper, expected, preprocess, classes, default_license):
        self.name = name
        self.meta_arch = name
        self.reader = reader
        self.mapper = mapper          # (source, expected) -> OrderedDict (or (dict, info))
        self.expected = expected      # OrderedDict name -> shape
        self.preprocess = preprocess  # JSON string
        self.classes = classes
        self.default_license = default_license

    def load(self, in_path, options):
        """-> (source, mapped tensors, expected table, metadata parts)."""
        src = self.reader(in_path)
        parts = dict(preprocess=self.preprocess, classes=self.classes, extra=OrderedDict())
        return src, self.mapper(src, self.expected), self.expected, parts


TORCHVISION_MEAN = [0.485, 0.456, 0.406]
TORCHVISION_STD = [0.229, 0.224, 0.225]
INCEPTION_MIN_SIZE = 75  # smallest input keras.applications accepts (mixed10 is then 1x1)


class InceptionV3Arch(Arch):
    """InceptionV3 from torchvision or keras.applications: the tensor table depends on the
    number of classes K (read from the file) and the width divisor; preprocessing and
    classes on the options."""

    options = ("transform_input", "classes", "input_size", "resize_shorter", "width_divisor", "trust_pickle")

    def __init__(self, name, variant):
        super().__init__(name, None, None, None, None, None,
                         "unknown (not a known release file; state the weights' licence with --license)")
        self.meta_arch = "inception_v3"
        self.variant = variant

    def load(self, in_path, options):
        d = int(options.get("width_divisor") or 1)
        if d not in inception.WIDTH_DIVISORS:
            raise ConvertError(f"--width-divisor {d}: must be one of {inception.WIDTH_DIVISORS}")
        if self.variant == "torchvision":
            if options.get("trust_pickle") is None:
                options = dict(options, trust_pickle=False)
            src = read_torch_checkpoint(in_path, trust_pickle=bool(options["trust_pickle"]))
            fc = src.arrays.get("fc.weight")
            if fc is None or fc.ndim != 2:
                raise ConvertError(f"{in_path}: no 2-D 'fc.weight' (not a torchvision inception_v3 state_dict?)")
            k = int(fc.shape[0])
            expected = inception.expected_shapes(d, k)
            mapped = map_inception_v3_torchvision(src, expected)
            _check_first_conv(src, mapped, d)
            transform = options.get("transform_input")
            transform = True if transform is None else transform
            h = w = int(options.get("input_size") or 299)
            shorter = int(options.get("resize_shorter") or round(h * 342 / 299))
            if shorter < h:
                raise ConvertError(f"--resize-shorter {shorter} is smaller than the crop {h}")
            pre = preprocess_json(TORCHVISION_MEAN, TORCHVISION_STD, height=h, width=w, resize="shorter_crop",
                                  interpolation="bilinear", resize_shorter=shorter, divisor=255.0)
            extra = OrderedDict([("variant", "torchvision"), ("width_divisor", str(d)),
                                 ("transform_input", "true" if transform else "false")])
        else:
            for opt in ("transform_input", "resize_shorter", "trust_pickle"):
                if options.get(opt) is not None:
                    raise ConvertError(f"--{opt.replace('_', '-')} does not apply to {self.name}")
            src = read_keras_h5(in_path, require_config=False)
            found = keras_inception_units(src, d)
            input_hw = found[2]
            mapped = map_inception_v3_keras(src, None, d, found)
            _check_first_conv(src, mapped, d)
            k = int(mapped["fc.weight"].shape[0])
            expected = inception.expected_shapes(d, k)
            size = options.get("input_size")
            if size and input_hw and tuple(input_hw) != (int(size), int(size)):
                raise ConvertError(f"{in_path}: the model's input is {input_hw[0]}x{input_hw[1]}, "
                                   f"not --input-size {size}")
            h, w = input_hw if input_hw else (int(size or 299),) * 2
            # keras.utils.load_img(target_size=(h, w)) (nearest, aspect not kept) then
            # keras.applications.inception_v3.preprocess_input: x / 127.5 - 1
            pre = preprocess_json([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], height=h, width=w, resize="stretch",
                                  interpolation="nearest", resize_shorter=0, divisor=127.5)
            extra = OrderedDict([("variant", "keras"), ("width_divisor", str(d))])
        if min(h, w) < INCEPTION_MIN_SIZE:
            raise ConvertError(f"input size {h}x{w}: InceptionV3 needs at least {INCEPTION_MIN_SIZE}x{INCEPTION_MIN_SIZE}")
        parts = dict(preprocess=pre, classes=inception_classes(options, k), extra=extra)
        return src, mapped, expected, parts


_AKAMASTER_PRE = preprocess_json(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
_KERAS_PRE = preprocess_json(mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])

ARCHS = OrderedDict()
for _depth in (20, 32, 44, 56):
    ARCHS[f"resnet{_depth}"] = Arch(
        f"resnet{_depth}", read_torch_checkpoint, map_identity, cifar_resnet_expected(_depth),
        _AKAMASTER_PRE, CIFAR10_CLASSES, _AKAMASTER_LICENSE)
ARCHS["keras_resnet20v1"] = Arch(
    "keras_resnet20v1", read_keras_h5,
    lambda src, exp: map_keras_resnet_v1(src, exp, 20)[0],
    cifar_resnet_expected(20, conv_bias=True, projection_shortcut=True),
    _KERAS_PRE, CIFAR10_CLASSES, "none stated by the source repository")
ARCHS["inception_v3_torchvision"] = InceptionV3Arch("inception_v3_torchvision", "torchvision")
ARCHS["inception_v3_keras"] = InceptionV3Arch("inception_v3_keras", "keras")


# ---------------------------------------------------------------------------
# Checks, metadata, driver
# ---------------------------------------------------------------------------

def finish(src, mapped, expected):
    """Strict check of the mapped tensors; returns them as contiguous float32."""
    missing = [n for n in expected if n not in mapped]
    if missing:
        raise ConvertError(f"{src.path}: expected tensor(s) missing: "
                           + ", ".join(f"{n} {expected[n]}" for n in missing))
    unexpected = [n for n in mapped if n not in expected]
    if unexpected:
        raise ConvertError(f"{src.path}: unexpected tensor(s): {', '.join(unexpected)}")
    left = src.leftovers()
    if left:
        more = f" ... ({len(left)} in all)" if len(left) > 12 else ""
        raise ConvertError(f"{src.path}: source tensor(s) not used by the mapping: {', '.join(left[:12])}{more}")
    out = OrderedDict()
    for name, shape in expected.items():
        a = mapped[name]
        if tuple(a.shape) != tuple(shape):
            raise ConvertError(f"{src.path}: tensor '{name}' has shape {tuple(a.shape)}, expected {tuple(shape)}")
        if a.dtype != np.float32:
            raise ConvertError(f"{src.path}: tensor '{name}' has dtype {a.dtype}, expected float32")
        bad = int(np.count_nonzero(~np.isfinite(a)))
        if bad:
            raise ConvertError(f"{src.path}: tensor '{name}' has {bad} NaN/Inf value(s)")
        out[name] = np.ascontiguousarray(a, dtype="<f4")
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def md5_file(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def known_source(in_path, sha):
    """The known-release entry for this file (by sha256, sha256 prefix or md5), or None."""
    known = KNOWN_SOURCES.get(sha) or KNOWN_SHA256_PREFIXES.get(sha[:8])
    if known is None and in_path.lower().endswith((".h5", ".hdf5")):
        known = KNOWN_MD5.get(md5_file(in_path))
    return known


def build_metadata(arch, in_path, sha, upstream=None, license_text=None, parts=None):
    known = known_source(in_path, sha)
    if known and known["arch"] != arch.name:
        raise ConvertError(f"{in_path}: this file is the known {known['arch']} release, not {arch.name}")
    if parts is None:
        parts = dict(preprocess=arch.preprocess, classes=arch.classes, extra=OrderedDict())
    if upstream is None:
        if known:
            upstream = (f"{known['repo']} @ {known['commit']} ({known['path']})" if known["commit"]
                        else f"{known['repo']} ({known['path']})")
        else:
            upstream = "unknown upstream (not a known release file)"
    if license_text is None:
        license_text = known["license"] if known else arch.default_license
    provenance = (f"{os.path.basename(in_path)} sha256 {sha} from {upstream}; "
                  "converted by weights_tools/convert.py")
    for k, v in (("provenance", provenance), ("license", license_text)):
        if "\n" in v:
            raise ConvertError(f"{k} must be one line")
    return OrderedDict([("format", FORMAT), ("arch", arch.meta_arch)] + list(parts["extra"].items()) + [
        ("preprocess", parts["preprocess"]),
        ("classes", json.dumps(parts["classes"], separators=(",", ":"))),
        ("provenance", provenance),
        ("license", license_text),
        ("source_sha256", sha),
    ])


def convert(arch_name, in_path, out_path, upstream=None, license_text=None, options=None):
    """Convert `in_path` to `out_path`. `options` (InceptionV3 archs only): transform_input
    (bool), classes (path), input_size, resize_shorter, width_divisor, trust_pickle."""
    if arch_name not in ARCHS:
        raise ConvertError(f"unknown arch {arch_name!r}; known: {', '.join(ARCHS)}")
    arch = ARCHS[arch_name]
    options = {k: v for k, v in (options or {}).items() if v is not None}
    bad = sorted(set(options) - set(arch.options))
    if bad:
        raise ConvertError(f"option(s) {', '.join('--' + b.replace('_', '-') for b in bad)} do not apply to {arch_name}")
    if not os.path.isfile(in_path):
        raise ConvertError(f"{in_path}: no such file")
    sha = sha256_file(in_path)
    known = known_source(in_path, sha)
    if known and known["arch"] != arch.name:
        raise ConvertError(f"{in_path}: this file is the known {known['arch']} release, not {arch.name}")
    src, mapped, expected, parts = arch.load(in_path, options)
    tensors = finish(src, mapped, expected)
    metadata = build_metadata(arch, in_path, sha, upstream, license_text, parts)
    safetensors_io.write(out_path, tensors, metadata)
    # read back what was written and compare
    back, back_meta = safetensors_io.read(out_path)
    if back_meta != dict(metadata) or sorted(back) != sorted(tensors) or not all(
            np.array_equal(back[n], tensors[n]) for n in tensors):
        raise ConvertError(f"{out_path}: read-back differs from what was written")
    return tensors, metadata


def _bool_arg(text):
    t = text.strip().lower()
    if t in ("true", "1", "yes"):
        return True
    if t in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", required=True, choices=list(ARCHS))
    ap.add_argument("--upstream", help="override the upstream part of `provenance` "
                    "(for files not in the known-release table, e.g. generated fixtures)")
    ap.add_argument("--license", dest="license_text", help="override the `license` metadata value")
    inc = ap.add_argument_group("InceptionV3 (inception_v3_torchvision, inception_v3_keras)")
    inc.add_argument("--transform-input", type=_bool_arg, metavar="true|false",
                     help="torchvision only: the model's transform_input flag (default true, as in "
                          "torchvision's pretrained model)")
    inc.add_argument("--classes", metavar="FILE",
                     help="class names, one per line ('synset name' lines give the name); "
                          "default: the ImageNet list when the model has 1000 classes")
    inc.add_argument("--input-size", type=int, metavar="N",
                     help="input height = width (default 299, or the Keras model's own input shape)")
    inc.add_argument("--resize-shorter", type=int, metavar="N",
                     help="torchvision only: Resize() of the shorter side before the center crop "
                          "(default round(N * 342 / 299): 342 for 299)")
    inc.add_argument("--width-divisor", type=int, metavar="D",
                     help="every conv width divided by D (reduced test fixtures only; default 1)")
    inc.add_argument("--trust-pickle", action="store_true", default=None,
                     help="torchvision only: allow a whole pickled model (torch.save(model)); "
                          "loading it runs code stored in the file")
    ap.add_argument("input")
    ap.add_argument("output")
    args = ap.parse_args(argv)
    try:
        options = dict(transform_input=args.transform_input, classes=args.classes, input_size=args.input_size,
                       resize_shorter=args.resize_shorter, width_divisor=args.width_divisor,
                       trust_pickle=args.trust_pickle)
        tensors, meta = convert(args.arch, args.input, args.output, args.upstream, args.license_text, options)
    except ConvertError as e:
        print(f"convert.py: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"convert.py: error: {e}", file=sys.stderr)
        return 1
    n = sum(int(t.size) for t in tensors.values())
    print(f"{args.output}: {args.arch}, {len(tensors)} tensors, {n} parameters, "
          f"source sha256 {meta['source_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
