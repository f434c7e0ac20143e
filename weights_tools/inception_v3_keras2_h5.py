"""Keras-2-layout HDF5 files for InceptionV3 (keras.applications), written without TensorFlow.

Used to make converter inputs laid out like the real files (h5py + numpy only; Debian's
/usr/bin/python3 or the venv):

* a full model, as Keras 2.2.4's model.save() writes it: root attrs keras_version,
  backend, model_config (the Keras 2 functional config: inbound nodes
  [[name, 0, 0, {}], ...]); group model_weights with attr layer_names and per layer a
  group with attr weight_names and datasets <layer>/<layer>/<weight>:0;
* a weights-only file, like keras' inception_v3_weights_tf_dim_ordering_tf_kernels.h5
  (save_weights): the same layer groups at the root, root attrs layer_names, backend,
  keras_version, and no model_config.

Layer names are the ones Keras 2 auto-assigns in a fresh session, in creation order:
input_1, conv2d_1.., batch_normalization_1.., activation_1.., max_pooling2d_1..4,
average_pooling2d_1..9, mixed0..mixed10, mixed9_0/mixed9_1 and concatenate_1/2 (the
1x3/3x1 joins of mixed9/10), then either the ImageNet head `avg_pool`
(GlobalAveragePooling2D) + `predictions` (Dense, softmax) or the transfer-learning head of
the original project, InceptionV3(include_top=False) + GlobalAveragePooling2D() + Dense(K):
`global_average_pooling2d_1` + `dense_1`. BatchNormalization has scale=False (weights
beta, moving_mean, moving_variance); convs have no bias.
"""

import json
import os
import sys
from collections import OrderedDict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import inception_v3_layout as layout  # noqa: E402

GLOROT = {"class_name": "VarianceScaling",
          "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}}
ZEROS = {"class_name": "Zeros", "config": {}}
ONES = {"class_name": "Ones", "config": {}}
HEADS = ("predictions", "gap_dense")


def keras2_model(d=1, input_size=299, classes=1000, head="predictions"):
    """The Keras 2.2.4 model_config of keras.applications InceptionV3 (widths / d) with
    `head`, plus the weight layout. input_size None gives an unknown spatial size (as
    InceptionV3(include_top=False) without input_shape).

    Returns (config, spec, units, dense): spec = {layer: [(weight, shape)]} in weight order,
    units = {torch conv name: (conv layer, bn layer)}, dense = the classifier layer."""
    if head not in HEADS:
        raise ValueError(head)
    layers, spec, units = [], OrderedDict(), OrderedDict()
    count = {}

    def auto(kind):
        count[kind] = count.get(kind, 0) + 1
        return f"{kind}_{count[kind]}"

    def node(*inputs):
        return [[[i, 0, 0, {}] for i in inputs]]

    def add(name, cls, inputs, config):
        layers.append({"name": name, "class_name": cls, "config": dict({"name": name, "trainable": True}, **config),
                       "inbound_nodes": node(*inputs) if inputs else []})
        return name

    channels = {}

    def conv_bn(x, conv):
        cin = channels[x]
        kh, kw = conv.kernel
        # conv2d_bn's default padding is 'same'; keras passes 'valid' for the stride-2 convs
        # and for the stem's 3x3/1 and 1x1 convs without padding
        in_block = conv.name.startswith("Mixed_")
        padding = "same" if conv.pad != (0, 0) or (in_block and conv.stride == 1) else "valid"
        c = add(auto("conv2d"), "Conv2D", [x], {
            "filters": conv.out, "kernel_size": [kh, kw], "strides": [conv.stride, conv.stride],
            "padding": padding, "data_format": "channels_last", "dilation_rate": [1, 1],
            "activation": "linear", "use_bias": False, "kernel_initializer": GLOROT,
            "bias_initializer": ZEROS, "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None})
        spec[c] = [("kernel:0", (kh, kw, cin, conv.out))]
        b = add(auto("batch_normalization"), "BatchNormalization", [c], {
            "axis": 3, "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": False,
            "beta_initializer": ZEROS, "gamma_initializer": ONES, "moving_mean_initializer": ZEROS,
            "moving_variance_initializer": ONES, "beta_regularizer": None, "gamma_regularizer": None,
            "beta_constraint": None, "gamma_constraint": None})
        spec[b] = [(w, (conv.out,)) for w in ("beta:0", "moving_mean:0", "moving_variance:0")]
        a = add(auto("activation"), "Activation", [b], {"activation": "relu"})
        units[conv.name] = (c, b)
        channels[a] = conv.out
        return a

    def pool(x, kind):
        if kind == "max":
            p = add(auto("max_pooling2d"), "MaxPooling2D", [x], {
                "pool_size": [3, 3], "padding": "valid", "strides": [2, 2], "data_format": "channels_last"})
        else:
            p = add(auto("average_pooling2d"), "AveragePooling2D", [x], {
                "pool_size": [3, 3], "padding": "same", "strides": [1, 1], "data_format": "channels_last"})
        channels[p] = channels[x]
        return p

    def concat(name, inputs):
        n = add(name or auto("concatenate"), "Concatenate", inputs, {"axis": 3})
        channels[n] = sum(channels[i] for i in inputs)
        return n

    shape = [None, input_size, input_size, 3] if input_size else [None, None, None, 3]
    x = add("input_1", "InputLayer", [], {"batch_input_shape": shape, "dtype": "float32", "sparse": False})
    layers[-1]["config"].pop("trainable")
    channels[x] = 3
    for step in layout.stem(d):
        x = conv_bn(x, step) if isinstance(step, layout.Conv) else pool(x, step.kind)
    mixed9 = 0
    for _, kname, _, branches in layout.blocks(d):
        outs = []
        for br in branches:
            y = x
            for step in br:
                if isinstance(step, layout.Conv):
                    y = conv_bn(y, step)
                elif isinstance(step, layout.Pool):
                    y = pool(y, step.kind)
                else:  # Fork: mixed9_<i> for the 3x3 branch, an unnamed concatenate for 3x3dbl
                    parts = [conv_bn(y, c) for c in step.convs]
                    first = len(outs) == 1
                    y = concat(f"mixed9_{mixed9}" if first else None, parts)
            outs.append(y)
        if kname in ("mixed9", "mixed10"):
            mixed9 += 1
        x = concat(kname, outs)
    if head == "predictions":
        g = add("avg_pool", "GlobalAveragePooling2D", [x], {"data_format": "channels_last"})
        dense = "predictions"
    else:
        g = add(auto("global_average_pooling2d"), "GlobalAveragePooling2D", [x], {"data_format": "channels_last"})
        dense = auto("dense")
    add(dense, "Dense", [g], {
        "units": classes, "activation": "softmax", "use_bias": True, "kernel_initializer": GLOROT,
        "bias_initializer": ZEROS, "kernel_regularizer": None, "bias_regularizer": None,
        "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None})
    spec[dense] = [("kernel:0", (layout.feature_channels(d), classes)), ("bias:0", (classes,))]
    config = {"class_name": "Model", "config": {
        "name": "model_1" if head == "gap_dense" else "inception_v3", "layers": layers,
        "input_layers": [["input_1", 0, 0]], "output_layers": [[dense, 0, 0]]}}
    return config, spec, units, dense


def keras2_arrays(weights, units, dense):
    """veto-named weights -> {layer: {weight: array}} (OIHW -> HWIO, fc (K,F) -> (F,K));
    bn.weight (gamma) must be all ones: keras.applications has no BN scale."""
    out = OrderedDict()
    for tname, (conv, bn) in units.items():
        out[conv] = {"kernel:0": np.ascontiguousarray(weights[f"{tname}.conv.weight"].transpose(2, 3, 1, 0))}
        if not np.all(weights[f"{tname}.bn.weight"] == 1):
            raise ValueError(f"{tname}.bn.weight is not 1: Keras InceptionV3 BN has no gamma")
        out[bn] = {"beta:0": weights[f"{tname}.bn.bias"],
                   "moving_mean:0": weights[f"{tname}.bn.running_mean"],
                   "moving_variance:0": weights[f"{tname}.bn.running_var"]}
    out[dense] = {"kernel:0": np.ascontiguousarray(weights["fc.weight"].T), "bias:0": weights["fc.bias"]}
    return out


def _layer_group(parent, name, spec, arrays):
    g = parent.create_group(name)
    if name not in spec:
        g.attrs["weight_names"] = np.array([], dtype=np.float64)  # what Keras 2 writes for no weights
        return
    g.attrs["weight_names"] = np.array([f"{name}/{w}".encode() for w, _ in spec[name]])
    sub = g.create_group(name)
    for w, shape in spec[name]:
        a = np.asarray(arrays[name][w], dtype=np.float32)
        if a.shape != tuple(shape):
            raise ValueError(f"{name}/{w}: shape {a.shape}, layout says {shape}")
        sub.create_dataset(w, data=a)


def write_full(path, config, spec, arrays, layer_order=None):
    """model.save() layout (Keras 2.2.4)."""
    import h5py
    names = layer_order or [layer["name"] for layer in config["config"]["layers"]]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.2.4"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([n.encode() for n in names])
        mw.attrs["backend"] = "tensorflow"
        mw.attrs["keras_version"] = "2.2.4"
        for n in names:
            _layer_group(mw, n, spec, arrays)


def write_weights_only(path, config, spec, arrays, layer_order=None):
    """save_weights() layout: layer groups at the root, no model_config."""
    import h5py
    names = layer_order or [layer["name"] for layer in config["config"]["layers"]]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.2.4"
        for n in names:
            _layer_group(f, n, spec, arrays)


def read_arrays(path):
    """{layer: {weight short name: array}} from a Keras 2 HDF5 file (full or weights-only)."""
    import h5py
    out = OrderedDict()
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for n in root.attrs["layer_names"]:
            n = n.decode() if isinstance(n, bytes) else str(n)
            ws = root[n].attrs.get("weight_names", [])
            if len(ws):
                out[n] = OrderedDict((w.decode().split("/")[-1], np.array(root[n][w.decode()])) for w in ws)
    return out
