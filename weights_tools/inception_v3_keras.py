"""keras.applications' InceptionV3 with a width divisor, in tf.keras, plus Keras preprocessing.

    .venv/bin/python weights_tools/inception_v3_keras.py        # self-test (from the repo root)

A parametrized copy of keras/src/applications/inception_v3.py (Keras 3.15; the same code
as Keras 2's keras_applications): conv2d_bn = Conv2D(no bias, 'same' unless given
'valid') -> BatchNormalization(axis 3, scale=False, eps 1e-3) -> Activation('relu');
branch_pool = AveragePooling2D(3, strides 1, padding 'same') (TensorFlow averages over
the valid cells only); MaxPooling2D(3, strides 2) 'valid'; the same concatenation order;
head GlobalAveragePooling2D + Dense. `width_divisor` d divides every conv's filter count.

Layers get the names Keras 2 auto-assigns in a fresh session (conv2d_1..,
batch_normalization_1.., activation_1.., max_pooling2d_1.., average_pooling2d_1..,
mixed0..mixed10, mixed9_0, concatenate_1, ...; heads: avg_pool + predictions, or
global_average_pooling2d_1 + dense_1), so Keras-2 .h5 files load by layer name
(`load_keras2_h5`, independent of convert.py). The model's output is the pre-softmax
logits.

Self-test (needs the venv's TensorFlow; calls convert.py through /usr/bin/python3):
  1. keras.applications.InceptionV3(weights=None) built in a fresh session: its Conv2D
     creation order (Keras 3 auto names conv2d, conv2d_1, ...) equals the layout's conv
     order, i.e. conv2d_i / batch_normalization_i (Keras 2 names) <-> torchvision names;
     convert.py's graph walk of its model_config gives the same mapping;
  2. with the same random weights, this copy (d = 1) and keras.applications give
     bit-identical logits; also for InceptionV3(include_top=False) + GAP + Dense(50) at 139;
  3. keras.applications' model saved by Keras 3 as .h5 converts (convert.py) to exactly
     those weights;
  4. a weights-only Keras-2-layout file (inception_v3_keras2_h5.py) loads into
     keras.applications.InceptionV3(weights=path) through Keras's own loader and gives
     the same logits.
"""

import os
import re
import subprocess
import sys
import tempfile
from collections import OrderedDict

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import inception_v3_keras2_h5 as k2h5  # noqa: E402
import inception_v3_layout as layout  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"


def build(width_divisor=1, input_size=299, classes=1000, head="predictions"):
    """The Keras InceptionV3 (widths / d) with Keras-2 layer names; output = logits."""
    import keras
    from keras import layers
    layout.check_divisor(width_divisor)
    d = width_divisor
    count = {}

    def auto(kind):
        count[kind] = count.get(kind, 0) + 1
        return f"{kind}_{count[kind]}"

    def w(n):
        return n // d

    def conv2d_bn(x, filters, num_row, num_col, padding="same", strides=(1, 1)):
        x = layers.Conv2D(filters, (num_row, num_col), strides=strides, padding=padding, use_bias=False,
                          name=auto("conv2d"))(x)
        x = layers.BatchNormalization(axis=3, scale=False, name=auto("batch_normalization"))(x)
        return layers.Activation("relu", name=auto("activation"))(x)

    def avg_pool(x):
        return layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same", name=auto("average_pooling2d"))(x)

    def max_pool(x):
        return layers.MaxPooling2D((3, 3), strides=(2, 2), name=auto("max_pooling2d"))(x)

    shape = (input_size, input_size, 3) if input_size else (None, None, 3)
    img_input = keras.Input(shape=shape, name="input_1")
    x = conv2d_bn(img_input, w(32), 3, 3, strides=(2, 2), padding="valid")
    x = conv2d_bn(x, w(32), 3, 3, padding="valid")
    x = conv2d_bn(x, w(64), 3, 3)
    x = max_pool(x)
    x = conv2d_bn(x, w(80), 1, 1, padding="valid")
    x = conv2d_bn(x, w(192), 3, 3, padding="valid")
    x = max_pool(x)

    # mixed 0, 1, 2: 35 x 35 x 256, 288, 288
    for i, pool_features in enumerate((32, 64, 64)):
        branch1x1 = conv2d_bn(x, w(64), 1, 1)
        branch5x5 = conv2d_bn(x, w(48), 1, 1)
        branch5x5 = conv2d_bn(branch5x5, w(64), 5, 5)
        branch3x3dbl = conv2d_bn(x, w(64), 1, 1)
        branch3x3dbl = conv2d_bn(branch3x3dbl, w(96), 3, 3)
        branch3x3dbl = conv2d_bn(branch3x3dbl, w(96), 3, 3)
        branch_pool = conv2d_bn(avg_pool(x), w(pool_features), 1, 1)
        x = layers.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=3, name=f"mixed{i}")

    # mixed 3: 17 x 17 x 768
    branch3x3 = conv2d_bn(x, w(384), 3, 3, strides=(2, 2), padding="valid")
    branch3x3dbl = conv2d_bn(x, w(64), 1, 1)
    branch3x3dbl = conv2d_bn(branch3x3dbl, w(96), 3, 3)
    branch3x3dbl = conv2d_bn(branch3x3dbl, w(96), 3, 3, strides=(2, 2), padding="valid")
    branch_pool = max_pool(x)
    x = layers.concatenate([branch3x3, branch3x3dbl, branch_pool], axis=3, name="mixed3")

    # mixed 4, 5, 6, 7: 17 x 17 x 768
    for i, c7 in zip((4, 5, 6, 7), (128, 160, 160, 192)):
        branch1x1 = conv2d_bn(x, w(192), 1, 1)
        branch7x7 = conv2d_bn(x, w(c7), 1, 1)
        branch7x7 = conv2d_bn(branch7x7, w(c7), 1, 7)
        branch7x7 = conv2d_bn(branch7x7, w(192), 7, 1)
        branch7x7dbl = conv2d_bn(x, w(c7), 1, 1)
        branch7x7dbl = conv2d_bn(branch7x7dbl, w(c7), 7, 1)
        branch7x7dbl = conv2d_bn(branch7x7dbl, w(c7), 1, 7)
        branch7x7dbl = conv2d_bn(branch7x7dbl, w(c7), 7, 1)
        branch7x7dbl = conv2d_bn(branch7x7dbl, w(192), 1, 7)
        branch_pool = conv2d_bn(avg_pool(x), w(192), 1, 1)
        x = layers.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=3, name=f"mixed{i}")

    # mixed 8: 8 x 8 x 1280
    branch3x3 = conv2d_bn(x, w(192), 1, 1)
    branch3x3 = conv2d_bn(branch3x3, w(320), 3, 3, strides=(2, 2), padding="valid")
    branch7x7x3 = conv2d_bn(x, w(192), 1, 1)
    branch7x7x3 = conv2d_bn(branch7x7x3, w(192), 1, 7)
    branch7x7x3 = conv2d_bn(branch7x7x3, w(192), 7, 1)
    branch7x7x3 = conv2d_bn(branch7x7x3, w(192), 3, 3, strides=(2, 2), padding="valid")
    branch_pool = max_pool(x)
    x = layers.concatenate([branch3x3, branch7x7x3, branch_pool], axis=3, name="mixed8")

    # mixed 9, 10: 8 x 8 x 2048
    for i in range(2):
        branch1x1 = conv2d_bn(x, w(320), 1, 1)
        branch3x3 = conv2d_bn(x, w(384), 1, 1)
        branch3x3_1 = conv2d_bn(branch3x3, w(384), 1, 3)
        branch3x3_2 = conv2d_bn(branch3x3, w(384), 3, 1)
        branch3x3 = layers.concatenate([branch3x3_1, branch3x3_2], axis=3, name=f"mixed9_{i}")
        branch3x3dbl = conv2d_bn(x, w(448), 1, 1)
        branch3x3dbl = conv2d_bn(branch3x3dbl, w(384), 3, 3)
        branch3x3dbl_1 = conv2d_bn(branch3x3dbl, w(384), 1, 3)
        branch3x3dbl_2 = conv2d_bn(branch3x3dbl, w(384), 3, 1)
        branch3x3dbl = layers.concatenate([branch3x3dbl_1, branch3x3dbl_2], axis=3, name=auto("concatenate"))
        branch_pool = conv2d_bn(avg_pool(x), w(192), 1, 1)
        x = layers.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=3, name=f"mixed{9 + i}")

    if head == "predictions":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation=None, name="predictions")(x)
    elif head == "gap_dense":
        x = layers.GlobalAveragePooling2D(name=auto("global_average_pooling2d"))(x)
        x = layers.Dense(classes, activation=None, name=auto("dense"))(x)
    else:
        raise ValueError(head)
    return keras.Model(img_input, x, name="inception_v3")


def weighted_layers(model):
    return [layer for layer in model.layers if layer.get_weights()]


def load_keras2_h5(model, path):
    """Copy weights from a Keras-2-layout .h5 (full or weights-only) by layer name. Every
    weighted layer of the model must be in the file with the right shapes, and every
    weighted layer of the file must be used."""
    arrays = k2h5.read_arrays(path)
    used = set()
    for layer in weighted_layers(model):
        if layer.name not in arrays:
            raise KeyError(f"{path}: no weights for layer {layer.name}")
        got = list(arrays[layer.name].values())
        want = [v.shape for v in layer.get_weights()]
        if [a.shape for a in got] != want:
            raise ValueError(f"{path}: layer {layer.name}: shapes {[a.shape for a in got]}, model wants {want}")
        layer.set_weights(got)
        used.add(layer.name)
    if set(arrays) != used:
        raise ValueError(f"{path}: weighted layers not used: {sorted(set(arrays) - used)}")


def set_veto_weights(model, weights, units, dense):
    """Set veto-named weights into a model whose layers are named as in `units`/`dense`."""
    for layer, arrs in k2h5.keras2_arrays(weights, units, dense).items():
        model.get_layer(layer).set_weights(list(arrs.values()))


def logits(model, x_nhwc, batch=8):
    outs = [np.asarray(model(x_nhwc[i:i + batch], training=False)) for i in range(0, len(x_nhwc), batch)]
    return np.concatenate(outs).astype(np.float32)


def taps(model, x_nhwc, names=("mixed0", "mixed10")):
    """Block outputs, NCHW float32."""
    import keras
    sub = keras.Model(model.input, [model.get_layer(n).output for n in names])
    outs = sub(x_nhwc, training=False)
    if len(names) == 1:
        outs = [outs]
    return {n: np.ascontiguousarray(np.asarray(o).transpose(0, 3, 1, 2), dtype=np.float32)
            for n, o in zip(names, outs)}


# ---------------------------------------------------------------------------
# Keras preprocessing
# ---------------------------------------------------------------------------

def preprocess(paths, size=299):
    """keras.utils.load_img(path, target_size=(size, size)) (PIL, RGB, nearest, aspect
    ratio not kept) -> img_to_array -> keras.applications.inception_v3.preprocess_input
    (x / 127.5 - 1). Returns float32 NHWC."""
    import keras
    out = []
    for p in paths:
        img = keras.utils.load_img(p, target_size=(size, size))
        out.append(keras.utils.img_to_array(img))
    x = np.stack(out).astype(np.float32)
    return keras.applications.inception_v3.preprocess_input(x).astype(np.float32)


# ---------------------------------------------------------------------------
# self-test
# ---------------------------------------------------------------------------

def _creation_index(name, kind):
    """Keras 3 auto names: 'conv2d' -> 0, 'conv2d_7' -> 7."""
    if name == kind:
        return 0
    m = re.fullmatch(re.escape(kind) + r"_(\d+)", name)
    return int(m.group(1)) if m else None


def applications_units(model):
    """{torch conv name: (conv, bn)} for a keras.applications InceptionV3 built in a fresh
    session, from the creation order of its auto-named layers (= Keras 2 conv2d_i)."""
    convs = sorted((_creation_index(layer.name, "conv2d"), layer.name) for layer in model.layers
                   if type(layer).__name__ == "Conv2D")
    bns = sorted((_creation_index(layer.name, "batch_normalization"), layer.name) for layer in model.layers
                 if type(layer).__name__ == "BatchNormalization")
    specs = layout.convs(1)
    if [i for i, _ in convs] != list(range(len(specs))) or [i for i, _ in bns] != list(range(len(specs))):
        raise AssertionError("keras.applications layers are not auto-named 0..93 (not a fresh session?)")
    units = OrderedDict()
    for spec, (_, c), (_, b) in zip(specs, convs, bns):
        kshape = tuple(model.get_layer(c).get_weights()[0].shape)
        if kshape != spec.kernel + (spec.cin, spec.out):
            raise AssertionError(f"creation order differs from the layout at {spec.name}: {c} kernel {kshape}")
        units[spec.name] = (c, b)
    return units


def _convert(arch, src, out, *extra):
    subprocess.run([SYSTEM_PYTHON, os.path.join(HERE, "convert.py"), "--arch", arch, *extra, src, out],
                   check=True, stdout=subprocess.DEVNULL)
    import safetensors_io
    return safetensors_io.read(out)


def self_test(seed=11):
    import keras
    import convert
    ok = True
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32)
    weights = layout.random_weights(1, 1000, seed, "keras")

    keras.backend.clear_session()
    ka = keras.applications.InceptionV3(weights=None, classifier_activation=None)
    units_order = applications_units(ka)
    walked = convert.walk_keras_inception_v3(convert.KerasGraph(
        {"class_name": "Functional", "config": ka.get_config()}, "keras.applications model"), 1)
    same_map = OrderedDict((k, v[:2]) for k, v in walked["units"].items()) == units_order
    keras2 = [(t, f"conv2d_{_creation_index(c, 'conv2d') + 1}", f"batch_normalization_{_creation_index(b, 'batch_normalization') + 1}")
              for t, (c, b) in units_order.items()]
    same_keras2 = keras2 == layout.keras2_names(1)
    print(f"keras.applications creation order == layout conv order (conv2d_i <-> torchvision names): {same_keras2}; "
          f"convert.py graph walk gives the same mapping: {same_map}; head {walked['head']['dense']}")
    ok &= same_map and same_keras2

    set_veto_weights(ka, weights, units_order, "predictions")
    ours = build(1, 299, 1000, "predictions")
    set_veto_weights(ours, weights, OrderedDict((t, (c, b)) for t, c, b in layout.keras2_names(1)), "predictions")
    a, b = logits(ka, x), logits(ours, x)
    same = np.array_equal(a, b)
    ok &= same
    print(f"d=1, 299, K=1000: logits bit-identical to keras.applications.InceptionV3: {same} "
          f"(max |diff| {np.abs(a - b).max():.3g}; logits std {a.std():.3f})")

    with tempfile.TemporaryDirectory(prefix="veto_inc_keras_") as tmp:
        # Keras 3's own .h5 of keras.applications (Keras 3 config + weight names) -> convert.py
        h5 = os.path.join(tmp, "keras3_model.h5")
        ka.save(h5)
        t, meta = _convert("inception_v3_keras", h5, os.path.join(tmp, "k3.safetensors"))
        exact = all(np.array_equal(t[k], weights[k]) for k in weights) and len(t) == len(weights)
        ok &= exact
        print(f"Keras 3 model.save(.h5) of keras.applications -> convert.py: all {len(t)} tensors exact: {exact}")

        # a weights-only Keras-2-layout file, layer order = keras.applications' layer order
        cfg, spec, units, dense = k2h5.keras2_model(1, 299, 1000, "predictions")
        to_k2 = {}
        for tname, (c, bn) in units_order.items():
            to_k2[c], to_k2[bn] = units[tname]
        order = [to_k2.get(layer.name, layer.name) for layer in ka.layers if layer.get_weights()]
        wo = os.path.join(tmp, "weights_only.h5")
        k2h5.write_weights_only(wo, cfg, spec, k2h5.keras2_arrays(weights, units, dense), order)
        keras.backend.clear_session()
        kb = keras.applications.InceptionV3(weights=wo, classifier_activation=None)
        c = logits(kb, x)
        same = np.array_equal(a, c)
        ok &= same
        print(f"Keras-2 weights-only layout loads into keras.applications.InceptionV3(weights=file) with "
              f"Keras's own loader: logits identical: {same}")
        t, _ = _convert("inception_v3_keras", wo, os.path.join(tmp, "wo.safetensors"))
        exact = all(np.array_equal(t[k], weights[k]) for k in weights)
        ok &= exact
        print(f"  and convert.py maps it by the canonical names: all tensors exact: {exact}")

    # the original project's head: InceptionV3(include_top=False) + GAP + Dense(50), input 139
    keras.backend.clear_session()
    base = keras.applications.InceptionV3(weights=None, include_top=False, input_shape=(139, 139, 3))
    y = keras.layers.GlobalAveragePooling2D()(base.output)
    y = keras.layers.Dense(50, activation=None)(y)
    kp = keras.Model(base.input, y)
    w50 = layout.random_weights(1, 50, seed + 1, "keras")
    walked = convert.walk_keras_inception_v3(convert.KerasGraph(
        {"class_name": "Functional", "config": kp.get_config()}, "include_top=False + GAP + Dense"), 1)
    set_veto_weights(kp, w50, OrderedDict((k, v[:2]) for k, v in walked["units"].items()), walked["head"]["dense"])
    ours = build(1, 139, 50, "gap_dense")
    set_veto_weights(ours, w50, OrderedDict((t, (c, b)) for t, c, b in layout.keras2_names(1)), "dense_1")
    x139 = x[:, :139, :139]
    a, b = logits(kp, x139), logits(ours, x139)
    same = np.array_equal(a, b)
    ok &= same
    print(f"include_top=False + GAP + Dense(50) at 139: walk finds head {walked['head']['dense']}, "
          f"input {walked['input_hw']}; logits bit-identical: {same}")
    return ok


if __name__ == "__main__":
    sys.exit(0 if self_test() else 1)
