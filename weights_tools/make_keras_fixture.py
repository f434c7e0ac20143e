"""Random-weight Keras ResNet20v1 fixture + TensorFlow golden logits.

    .venv/bin/python weights_tools/make_keras_fixture.py            # from the repo root

Makes (committed):
  tests/data/keras_resnet20v1_random.safetensors            via convert.py
  tests/data/golden/keras_resnet20v1_random_logits_0-15.npy  TF/Keras logits, (16,10) float32
Keeps the generated .h5 outside the repo (--h5, default /tmp/veto_fixture/...): only
the converted file is committed.

1. Writes an HDF5 file in the Keras 2.2.4 layout of the real
   keras_cifar10_ResNet20v1_model.h5: root attrs backend/keras_version/model_config,
   group model_weights (attrs backend, keras_version, layer_names) with
   <layer>/<layer>/{kernel:0,bias:0,gamma:0,beta:0,moving_mean:0,moving_variance:0}
   and per-layer weight_names. model_config is generated here (not copied) and is
   compared against the real file's when that is present (it is identical).
   Weights are seeded random: he-normal conv/dense kernels, N(0,0.1) biases, and
   BN statistics that make BN far from an identity: gamma ~ U(0.5,1.5),
   beta ~ N(0,0.1), moving_mean ~ N(0,0.1), moving_variance ~ U(0.5,1.5).
   (training_config and optimizer_weights are not written; the converter ignores them.)
   With random weights every record would predict the same class (the pooled
   features share a large image-independent part), so the dense bias is then shifted
   by minus the mean TF logit over the golden records, rounded to 0.01: the logits
   become image-dependent in argmax too, and the rounding keeps the file reproducible.
2. Converts it with `/usr/bin/python3 weights_tools/convert.py --arch keras_resnet20v1`
   (the same code path as the real file).
3. Golden logits: tf.keras model from keras_resnet20v1_tf.py, weights loaded from the
   .h5 by layer name (not through convert.py), records 0-15 of
   data/cifar10_test_0-999.bin, x/255, NHWC, pre-softmax Dense output.
4. Self-checks: names are the akamaster ResNet20 names plus conv biases and
   layer{2,3}.0.shortcut.*; numpy_reference.py on the converted file reproduces the
   TF logits; the stride-2 'same' padding matters (symmetric padding would not pass).
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import cifar_io  # noqa: E402
import numpy_reference  # noqa: E402
import safetensors_io  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"
REAL_H5 = os.path.join(REPO, "..", "shared", "data", "models", "keras_cifar10_ResNet20v1_model.h5")
L2 = 9.999999747378752e-05  # float32(1e-4) as Keras 2.2.4 wrote it
HE_NORMAL = {"class_name": "VarianceScaling",
             "config": {"distribution": "normal", "mode": "fan_in", "scale": 2.0, "seed": None}}


# ---------------------------------------------------------------------------
# Keras 2.2.4 model_config for the example's resnet_v1
# ---------------------------------------------------------------------------

def keras224_resnet_v1_config(depth=20):
    """Layers (with Keras 2.2.4 configs and auto names) in the order Keras lists them,
    plus per weighted layer the weight shapes. Returns (model_config, weights_spec)."""
    layers, spec, count = [], {}, {}

    def name(kind):
        count[kind] = count.get(kind, 0) + 1
        return f"{kind}_{count[kind]}"

    def node(*inputs):
        return [[[i, 0, 0, {}] for i in inputs]]

    def conv(x, cin, filters, k=3, s=1):
        n = name("conv2d")
        layers.append({"name": n, "class_name": "Conv2D", "inbound_nodes": node(x), "config": {
            "name": n, "trainable": True, "filters": filters, "kernel_size": [k, k], "strides": [s, s],
            "padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1],
            "activation": "linear", "use_bias": True, "kernel_initializer": HE_NORMAL,
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": {"class_name": "L1L2", "config": {"l1": 0.0, "l2": L2}},
            "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None}})
        spec[n] = [("kernel:0", (k, k, cin, filters)), ("bias:0", (filters,))]
        return n

    def bn(x, c):
        n = name("batch_normalization")
        layers.append({"name": n, "class_name": "BatchNormalization", "inbound_nodes": node(x), "config": {
            "name": n, "trainable": True, "axis": -1, "momentum": 0.99, "epsilon": 0.001,
            "center": True, "scale": True,
            "beta_initializer": {"class_name": "Zeros", "config": {}},
            "gamma_initializer": {"class_name": "Ones", "config": {}},
            "moving_mean_initializer": {"class_name": "Zeros", "config": {}},
            "moving_variance_initializer": {"class_name": "Ones", "config": {}},
            "beta_regularizer": None, "gamma_regularizer": None,
            "beta_constraint": None, "gamma_constraint": None}})
        spec[n] = [(w, (c,)) for w in ("gamma:0", "beta:0", "moving_mean:0", "moving_variance:0")]
        return n

    def act(x, fn="relu"):
        n = name("activation")
        layers.append({"name": n, "class_name": "Activation", "inbound_nodes": node(x),
                       "config": {"name": n, "trainable": True, "activation": fn}})
        return n

    def add(a, b):
        n = name("add")
        layers.append({"name": n, "class_name": "Add", "inbound_nodes": node(a, b),
                       "config": {"name": n, "trainable": True}})
        return n

    layers.append({"name": "input_1", "class_name": "InputLayer", "inbound_nodes": [], "config": {
        "batch_input_shape": [None, 32, 32, 3], "dtype": "float32", "sparse": False, "name": "input_1"}})
    x = act(bn(conv("input_1", 3, 16), 16))
    n = (depth - 2) // 6
    cin, filters = 16, 16
    for stack in range(3):
        for block in range(n):
            s = 2 if stack > 0 and block == 0 else 1
            y = act(bn(conv(x, cin, filters, 3, s), filters))
            y = conv(y, filters, filters)
            if s == 2:
                # Keras lists the shortcut conv right after the block's second conv
                x = conv(x, cin, filters, 1, s)
            y = bn(y, filters)
            x = act(add(x, y))
            cin = filters
        filters *= 2
    layers.append({"name": "average_pooling2d_1", "class_name": "AveragePooling2D", "inbound_nodes": node(x),
                   "config": {"name": "average_pooling2d_1", "trainable": True, "pool_size": [8, 8],
                              "padding": "valid", "strides": [8, 8], "data_format": "channels_last"}})
    layers.append({"name": "flatten_1", "class_name": "Flatten", "inbound_nodes": node("average_pooling2d_1"),
                   "config": {"name": "flatten_1", "trainable": True, "data_format": "channels_last"}})
    layers.append({"name": "dense_1", "class_name": "Dense", "inbound_nodes": node("flatten_1"), "config": {
        "name": "dense_1", "trainable": True, "units": 10, "activation": "linear", "use_bias": True,
        "kernel_initializer": HE_NORMAL, "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
        "kernel_constraint": None, "bias_constraint": None}})
    spec["dense_1"] = [("kernel:0", (64, 10)), ("bias:0", (10,))]
    out = act("dense_1", "softmax")
    config = {"class_name": "Model", "config": {
        "name": "model_1", "layers": layers,
        "input_layers": [["input_1", 0, 0]], "output_layers": [[out, 0, 0]]}}
    return config, spec


def random_weights(spec, seed):
    rng = np.random.default_rng(seed)
    weights = {}
    for layer, ws in spec.items():
        arrays = {}
        for w, shape in ws:
            if w == "kernel:0":  # he_normal: std sqrt(2 / fan_in)
                fan_in = int(np.prod(shape[:-1]))
                a = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
            elif w in ("bias:0", "beta:0", "moving_mean:0"):
                a = rng.normal(0.0, 0.1, shape)
            elif w in ("gamma:0", "moving_variance:0"):
                a = rng.uniform(0.5, 1.5, shape)
            else:
                raise ValueError(w)
            arrays[w] = a.astype(np.float32)
        weights[layer] = arrays
    return weights


def write_keras224_h5(path, config, spec, weights):
    import h5py
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    names = [layer["name"] for layer in config["config"]["layers"]]
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.2.4"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([n.encode() for n in names])
        mw.attrs["backend"] = "tensorflow"
        mw.attrs["keras_version"] = "2.2.4"
        for n in names:
            g = mw.create_group(n)
            if n not in spec:
                g.attrs["weight_names"] = np.array([], dtype=np.float64)
                continue
            g.attrs["weight_names"] = np.array([f"{n}/{w}".encode() for w, _ in spec[n]])
            sub = g.create_group(n)
            for w, shape in spec[n]:
                sub.create_dataset(w, data=weights[n][w])


def compare_with_real(config, spec):
    """The generated config and weight layout against the real .h5, when present."""
    if not os.path.exists(REAL_H5):
        return "real file not present; comparison skipped"
    import h5py
    with h5py.File(REAL_H5, "r") as f:
        real = json.loads(f.attrs["model_config"])
        mw = f["model_weights"]
        real_names = [n.decode() for n in mw.attrs["layer_names"]]
        real_spec = {}
        for n in real_names:
            for w in mw[n].attrs["weight_names"]:
                w = w.decode()
                real_spec.setdefault(n, []).append((w.split("/")[-1], tuple(mw[n][w].shape)))
    if real != config:
        return "DIFFERENT model_config from the real file"
    if real_spec != spec:
        return "DIFFERENT weight layout from the real file"
    return "model_config and weight layout identical to the real file"


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description="random-weight Keras ResNet20v1 fixture + TF golden logits")
    ap.add_argument("--seed", type=int, default=20200101)
    ap.add_argument("--h5", default="/tmp/veto_fixture/keras_resnet20v1_random.h5")
    ap.add_argument("--out", default=os.path.join(REPO, "tests/data/keras_resnet20v1_random.safetensors"))
    ap.add_argument("--golden", default=os.path.join(REPO, "tests/data/golden/keras_resnet20v1_random_logits_0-15.npy"))
    ap.add_argument("--data", default=os.path.join(REPO, "data/cifar10_test_0-999.bin"))
    ap.add_argument("--count", type=int, default=16)
    args = ap.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras_resnet20v1_tf as ktf
    images, labels = cifar_io.read_cifar_bin(args.data, 0, args.count)

    config, spec = keras224_resnet_v1_config(20)
    weights = random_weights(spec, args.seed)
    write_keras224_h5(args.h5, config, spec, weights)
    model = ktf.build_model()
    ktf.load_weights_h5(model, args.h5)
    mean = ktf.logits(model, ktf.cifar_to_nhwc(images)).astype(np.float64).mean(axis=0)
    weights["dense_1"]["bias:0"] = (weights["dense_1"]["bias:0"] - np.round(mean, 2)).astype(np.float32)
    write_keras224_h5(args.h5, config, spec, weights)
    print(f"wrote {args.h5} ({sum(a.size for l in weights.values() for a in l.values())} weights, seed {args.seed})")
    print("layout check:", compare_with_real(config, spec))

    cmd = [SYSTEM_PYTHON, os.path.join(HERE, "convert.py"), "--arch", "keras_resnet20v1",
           "--upstream", f"random weights generated by weights_tools/make_keras_fixture.py --seed {args.seed} "
                         "(a test fixture, not a trained model)",
           "--license", "test fixture generated by the veto project (random weights, no upstream)",
           args.h5, args.out]
    subprocess.run(cmd, check=True)

    # TensorFlow golden, weights loaded from the .h5 by layer name (fresh model)
    model = ktf.build_model()
    ktf.load_weights_h5(model, args.h5)
    golden = ktf.logits(model, ktf.cifar_to_nhwc(images))
    if not np.all(np.isfinite(golden)):
        raise SystemExit("non-finite TF logits")
    os.makedirs(os.path.dirname(args.golden), exist_ok=True)
    tmp = args.golden + ".tmp.npy"
    np.save(tmp, golden)
    os.replace(tmp, args.golden)
    print(f"wrote {args.golden} {golden.shape} float32; |logit| max {np.abs(golden).max():.3g}, "
          f"predicted classes {golden.argmax(1).tolist()}")

    # self-checks on the converted file
    tensors, meta = safetensors_io.read(args.out)
    import convert  # only for the expected-name table
    aka = set(convert.cifar_resnet_expected(20))
    extra = set(tensors) - aka
    want_extra = {n[:-len("weight")] + "bias" for n in aka if n.endswith(".weight") and "conv" in n} | {
        f"layer{s}.0.shortcut.{w}" for s in (2, 3) for w in ("weight", "bias")}
    if not aka <= set(tensors) or extra != want_extra:
        raise SystemExit(f"naming mismatch: missing {sorted(aka - set(tensors))}, extra {sorted(extra ^ want_extra)}")
    print(f"naming: all {len(aka)} akamaster resnet20 names present, plus {len(extra)} "
          "(conv biases, layer2.0/layer3.0 shortcut)")
    x = numpy_reference.preprocess(images, meta)
    ref = numpy_reference.forward(tensors, meta["arch"], x)

    def rel_l2(a, b):
        return float(np.max(np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)))
    err = rel_l2(ref, golden)
    print(f"numpy_reference(converted file) vs TF: worst row relative L2 {err:.2e}, "
          f"max abs {np.abs(ref - golden).max():.2e}")
    if err > 1e-4:  # the tolerance tests/test_models.cpp uses for veto vs TF
        raise SystemExit("converted file does not reproduce the TF logits")
    saved = numpy_reference._pad_same
    numpy_reference._pad_same = lambda size, k, s: (k // 2, k // 2)  # PyTorch-style padding
    try:
        sym = numpy_reference.forward(tensors, meta["arch"], x)
    finally:
        numpy_reference._pad_same = saved
    print(f"sensitivity: symmetric padding would be off by relative L2 {rel_l2(sym, golden):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
