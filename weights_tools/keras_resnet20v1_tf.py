"""The Keras-example `resnet_v1` (depth 20) for CIFAR-10, built in tf.keras.

Run inside the git-ignored venv that has tensorflow-cpu (see weights_tools/README.md):
    .venv/bin/python ...

Architecture (keras-team/keras examples/cifar10_resnet.py, resnet_v1):
  resnet_layer = Conv2D(k, stride, padding='same', bias, he_normal) -> BN(eps 1e-3) -> [relu]
  stem: resnet_layer(16)
  3 stages x n blocks (n = (depth-2)/6 = 3), 16/32/64 filters:
     y = resnet_layer(x, stride)            (stride 2 on the first block of stages 2, 3)
     y = resnet_layer(y, activation=None)
     x = Conv2D 1x1 stride 2 (no BN, no activation) on x   [first block of stages 2, 3]
     x = relu(add([x, y]))
  AveragePooling2D(8) -> Flatten -> Dense(10) -> softmax

Layers are created in the same order as the Keras example and given the names Keras
2.2.4 auto-assigned (conv2d_1.., batch_normalization_1.., activation_1.., add_1..,
average_pooling2d_1, flatten_1, dense_1), so an .h5 saved by that example loads by
layer name with `load_weights_h5` below. This loader is independent of convert.py
(which maps by walking the graph): that independence is what makes the TF golden
logits a check of the converter and of veto.

`build_model()` returns a model whose output is the pre-softmax logits (Dense output).
"""

import numpy as np

DEPTH = 20


def build_model(depth=DEPTH):
    from tensorflow import keras
    L = keras.layers
    counters = {}

    def name(kind):
        counters[kind] = counters.get(kind, 0) + 1
        return f"{kind}_{counters[kind]}"

    def resnet_layer(x, filters=16, kernel_size=3, strides=1, activation=True, batch_norm=True):
        x = L.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=True,
                     kernel_initializer="he_normal", name=name("conv2d"))(x)
        if batch_norm:
            x = L.BatchNormalization(epsilon=1e-3, momentum=0.99, name=name("batch_normalization"))(x)
        if activation:
            x = L.Activation("relu", name=name("activation"))(x)
        return x

    if (depth - 2) % 6:
        raise ValueError("depth must be 6n+2")
    n = (depth - 2) // 6
    inputs = keras.Input(shape=(32, 32, 3), name="input_1")
    x = resnet_layer(inputs)
    filters = 16
    for stack in range(3):
        for block in range(n):
            strides = 2 if stack > 0 and block == 0 else 1
            y = resnet_layer(x, filters, strides=strides)
            y = resnet_layer(y, filters, activation=False)
            if stack > 0 and block == 0:
                x = resnet_layer(x, filters, kernel_size=1, strides=strides, activation=False, batch_norm=False)
            x = L.Add(name=name("add"))([x, y])
            x = L.Activation("relu", name=name("activation"))(x)
        filters *= 2
    x = L.AveragePooling2D(pool_size=8, name="average_pooling2d_1")(x)
    x = L.Flatten(name="flatten_1")(x)
    logits = L.Dense(10, kernel_initializer="he_normal", name="dense_1")(x)
    return keras.Model(inputs, logits, name="model_1")


def weight_layers(model):
    """(layer, [h5 weight short names]) for every layer with weights, in model order."""
    out = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "Dense"):
            out.append((layer, ["kernel:0", "bias:0"]))
        elif kind == "BatchNormalization":
            out.append((layer, ["gamma:0", "beta:0", "moving_mean:0", "moving_variance:0"]))
    return out


def load_weights_h5(model, path):
    """Copy weights from a Keras 2.2.4 HDF5 file, matching layers by name:
    model_weights/<layer>/<layer>/<weight>:0 (or <layer>/<layer>/... in a weights-only file).
    Every model layer must be found with the right shapes, and every weighted layer
    of the file must be used."""
    import h5py
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        file_layers = {n for n in root if len(root[n].attrs.get("weight_names", [])) > 0}
        used = set()
        for layer, wnames in weight_layers(model):
            if layer.name not in root:
                raise KeyError(f"{path}: no weights for layer {layer.name}")
            g = root[layer.name][layer.name]
            arrays = [np.array(g[w], dtype=np.float32) for w in wnames]
            want = [tuple(v.shape) for v in layer.get_weights()]
            got = [a.shape for a in arrays]
            if want != got:
                raise ValueError(f"{path}: layer {layer.name}: shapes {got}, model wants {want}")
            layer.set_weights(arrays)
            used.add(layer.name)
        if file_layers != used:
            raise ValueError(f"{path}: weighted layers not used: {sorted(file_layers - used)}")


def logits(model, x_nhwc, batch=250):
    """Pre-softmax logits, float32 (N,10), inference mode (BN uses moving statistics)."""
    outs = [model(x_nhwc[i:i + batch], training=False).numpy() for i in range(0, len(x_nhwc), batch)]
    return np.concatenate(outs).astype(np.float32)


def cifar_to_nhwc(images_u8):
    """Keras ResNet20v1 preprocessing: x / 255 in float32, NCHW uint8 -> NHWC."""
    return (images_u8.astype(np.float32) / np.float32(255.0)).transpose(0, 2, 3, 1).copy()
