#!/usr/bin/python3
"""Convert pretrained CNN weights into a veto model file (safetensors).

    /usr/bin/python3 weights_tools/convert.py --arch ARCH IN OUT.safetensors

ARCH  source                                   reader
resnet20/32/44/56  akamaster .th (legacy torch.save)  read_torch_checkpoint
keras_resnet20v1   Keras 2.x HDF5 (.h5)                read_keras_h5

Structure (so new architectures plug in): one reader per source format turns a
file into a `Source` (a flat name -> array dict, plus the Keras graph where
there is one); one mapper per architecture turns a Source into veto tensor
names, recording every source tensor it consumes; `finish()` checks the result
against the architecture's expected name -> shape table (missing, wrong shape,
unexpected, leftovers never consumed, non-float32, NaN/Inf) and the metadata is
assembled from the arch's preprocessing/classes plus the file's provenance.
Any problem: a message naming the tensor/layer on stderr and exit status 1.

Output: F32 tensors in PyTorch naming (conv weights OIHW, linear (out,in)),
`__metadata__` = format, arch, preprocess, classes, provenance, license,
source_sha256. Written atomically (temp file + rename), then read back and
compared.
"""

import argparse
import hashlib
import json
import os
import sys
from collections import OrderedDict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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


def read_torch_checkpoint(path):
    """A PyTorch checkpoint: legacy torch.save (read without torch, no code
    execution) or zip format (torch.load(weights_only=True)). Accepts a plain
    state_dict or {'state_dict': ...}; strips a DataParallel 'module.' prefix
    and drops BN 'num_batches_tracked' counters (not used at inference)."""
    with open(path, "rb") as f:
        is_zip = f.read(2) == b"PK"
    if is_zip:
        try:
            import torch
        except ImportError:
            raise ConvertError(f"{path}: zip-format torch file needs torch (use /usr/bin/python3)")
        obj = torch.load(path, map_location="cpu", weights_only=True)
    else:
        import torch_legacy_io
        try:
            obj = torch_legacy_io.load(path)
        except torch_legacy_io.LegacyFormatError as e:
            raise ConvertError(str(e))
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


class KerasGraph:
    """The layer graph from a Keras 2 functional `model_config` JSON."""

    def __init__(self, config, where):
        self.where = where
        if config.get("class_name") not in ("Model", "Functional"):
            raise ConvertError(f"{where}: model_config is a {config.get('class_name')}, "
                               "expected a functional Model")
        cfg = config["config"]
        self.layers = OrderedDict()
        self.inbound = {}
        for layer in cfg["layers"]:
            name = layer["name"]
            nodes = layer.get("inbound_nodes", [])
            if len(nodes) > 1:
                raise ConvertError(f"{where}: layer {name} is called {len(nodes)} times (shared layers unsupported)")
            inputs = [entry[0] for entry in nodes[0]] if nodes else []
            self.layers[name] = layer
            self.inbound[name] = inputs
        self.consumers = {n: [] for n in self.layers}
        for name, inputs in self.inbound.items():
            for src in inputs:
                if src not in self.layers:
                    raise ConvertError(f"{where}: layer {name} reads unknown layer {src}")
                self.consumers[src].append(name)
        self.input_layers = [e[0] for e in cfg.get("input_layers", [])]
        self.output_layers = [e[0] for e in cfg.get("output_layers", [])]

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


def read_keras_h5(path):
    """A Keras 2.x HDF5 file (full model or save_weights). Arrays are named
    '<layer>/<weight>' with the weight's short name, e.g. 'conv2d_1/kernel:0'."""
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ConvertError(f"{path}: not an HDF5 file ({e})")
    with f:
        def text(v):
            return v.decode("utf-8") if isinstance(v, bytes) else str(v)
        if "model_config" not in f.attrs:
            raise ConvertError(f"{path}: no model_config attribute (a weights-only file cannot be mapped by topology)")
        graph = KerasGraph(json.loads(text(f.attrs["model_config"])), path)
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise ConvertError(f"{path}: no layer_names attribute in the weights group")
        arrays = OrderedDict()
        for lname in (text(n) for n in root.attrs["layer_names"]):
            if lname not in root:
                raise ConvertError(f"{path}: layer group '{lname}' is missing")
            g = root[lname]
            wnames = [text(w) for w in g.attrs.get("weight_names", [])]
            if wnames and lname not in graph.layers:
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
# Architecture registry
# ---------------------------------------------------------------------------

class Arch:
    def __init__(self, name, reader, mapper, expected, preprocess, classes, default_license):
        self.name = name
        self.reader = reader
        self.mapper = mapper          # (source, expected) -> OrderedDict (or (dict, info))
        self.expected = expected      # OrderedDict name -> shape
        self.preprocess = preprocess  # JSON string
        self.classes = classes
        self.default_license = default_license


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


def build_metadata(arch, in_path, sha, upstream=None, license_text=None):
    known = KNOWN_SOURCES.get(sha)
    if known and known["arch"] != arch.name:
        raise ConvertError(f"{in_path}: this file is the known {known['arch']} release, not {arch.name}")
    if upstream is None:
        upstream = (f"{known['repo']} @ {known['commit']} ({known['path']})" if known
                    else "unknown upstream (not a known release file)")
    if license_text is None:
        license_text = known["license"] if known else arch.default_license
    provenance = (f"{os.path.basename(in_path)} sha256 {sha} from {upstream}; "
                  "converted by weights_tools/convert.py")
    for k, v in (("provenance", provenance), ("license", license_text)):
        if "\n" in v:
            raise ConvertError(f"{k} must be one line")
    return OrderedDict([
        ("format", FORMAT),
        ("arch", arch.name),
        ("preprocess", arch.preprocess),
        ("classes", json.dumps(arch.classes, separators=(",", ":"))),
        ("provenance", provenance),
        ("license", license_text),
        ("source_sha256", sha),
    ])


def convert(arch_name, in_path, out_path, upstream=None, license_text=None):
    if arch_name not in ARCHS:
        raise ConvertError(f"unknown arch {arch_name!r}; known: {', '.join(ARCHS)}")
    arch = ARCHS[arch_name]
    if not os.path.isfile(in_path):
        raise ConvertError(f"{in_path}: no such file")
    sha = sha256_file(in_path)
    known = KNOWN_SOURCES.get(sha)
    if known and known["arch"] != arch.name:
        raise ConvertError(f"{in_path}: this file is the known {known['arch']} release, not {arch.name}")
    src = arch.reader(in_path)
    tensors = finish(src, arch.mapper(src, arch.expected), arch.expected)
    metadata = build_metadata(arch, in_path, sha, upstream, license_text)
    safetensors_io.write(out_path, tensors, metadata)
    # read back what was written and compare
    back, back_meta = safetensors_io.read(out_path)
    if back_meta != dict(metadata) or sorted(back) != sorted(tensors) or not all(
            np.array_equal(back[n], tensors[n]) for n in tensors):
        raise ConvertError(f"{out_path}: read-back differs from what was written")
    return tensors, metadata


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", required=True, choices=list(ARCHS))
    ap.add_argument("--upstream", help="override the upstream part of `provenance` "
                    "(for files not in the known-release table, e.g. generated fixtures)")
    ap.add_argument("--license", dest="license_text", help="override the `license` metadata value")
    ap.add_argument("input")
    ap.add_argument("output")
    args = ap.parse_args(argv)
    try:
        tensors, meta = convert(args.arch, args.input, args.output, args.upstream, args.license_text)
    except ConvertError as e:
        print(f"convert.py: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"convert.py: error: {e}", file=sys.stderr)
        return 1
    n = sum(int(t.size) for t in tensors.values())
    print(f"{args.output}: {meta['arch']}, {len(tensors)} tensors, {n} parameters, "
          f"source sha256 {meta['source_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
