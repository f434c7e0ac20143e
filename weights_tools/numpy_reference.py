"""A plain numpy forward pass over a *converted* veto model file.

Purpose: close the loop on convert.py before veto is involved. The golden logits
come from PyTorch (from the upstream .th) and TensorFlow (from the .h5, loaded by
layer name); running this forward on the converter's output and getting the same
logits shows the names, transposes and shortcut mapping in the .safetensors are
right. It reads only the tensor names veto reads and follows the same
architecture rules veto's builders do:
  resnet20/32/44/56   pad 1 on every side, option-A shortcut, BN eps 1e-5
  keras_resnet20v1    conv bias, TensorFlow 'same' padding (odd pad after, so a
                      3x3 stride-2 conv on 32x32 pads 0 before and 1 after),
                      1x1 stride-2 projection shortcut, BN eps 1e-3
Works with numpy 1.x (Debian) and 2.x (the TF venv); float32 throughout.
"""

import json

import numpy as np


def _pad_same(size, kernel, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d(x, w, b, stride, pads):
    """x (N,C,H,W), w (O,C,kh,kw), pads (top, bottom, left, right)."""
    t, bo, le, r = pads
    x = np.pad(x, ((0, 0), (0, 0), (t, bo), (le, r)))
    kh, kw = w.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    if b is not None:
        y = y + b[None, :, None, None]
    return np.ascontiguousarray(y, dtype=np.float32)


def batchnorm(x, t, prefix, eps):
    g, be = t[prefix + ".weight"], t[prefix + ".bias"]
    m, v = t[prefix + ".running_mean"], t[prefix + ".running_var"]
    scale = (g / np.sqrt(v + np.float32(eps))).astype(np.float32)
    return ((x - m[None, :, None, None]) * scale[None, :, None, None] + be[None, :, None, None]).astype(np.float32)


def relu(x):
    return np.maximum(x, 0, dtype=np.float32)


def forward(tensors, arch, x):
    """x: preprocessed float32 NCHW (N,3,32,32). Returns logits (N,10) float32."""
    keras = arch == "keras_resnet20v1"
    depth = 20 if keras else int(arch[len("resnet"):])
    n = (depth - 2) // 6
    eps = 1e-3 if keras else 1e-5
    t = tensors

    def conv(x, prefix, stride):
        w = t[prefix + ".weight"]
        k = w.shape[2]
        if keras:
            pads = _pad_same(x.shape[2], k, stride) + _pad_same(x.shape[3], k, stride)
        else:
            pads = (k // 2,) * 4
        return conv2d(x, w, t.get(prefix + ".bias"), stride, pads)

    x = relu(batchnorm(conv(x, "conv1", 1), t, "bn1", eps))
    in_planes = 16
    for s, planes in enumerate((16, 32, 64), start=1):
        for b in range(n):
            p = f"layer{s}.{b}"
            stride = 2 if (s > 1 and b == 0) else 1
            y = relu(batchnorm(conv(x, p + ".conv1", stride), t, p + ".bn1", eps))
            y = batchnorm(conv(y, p + ".conv2", 1), t, p + ".bn2", eps)
            if in_planes != planes:
                if keras:
                    sc = conv(x, p + ".shortcut", stride)
                else:
                    pad = planes // 4
                    sc = np.pad(x[:, :, ::2, ::2], ((0, 0), (pad, pad), (0, 0), (0, 0)))
            else:
                sc = x
            x = relu(sc + y)
            in_planes = planes
    pooled = x.mean(axis=(2, 3), dtype=np.float32)
    return (pooled @ t["linear.weight"].T + t["linear.bias"]).astype(np.float32)


def preprocess(images_u8, metadata):
    """uint8 NCHW -> float32 NCHW using the model file's `preprocess` metadata
    (resize 'none' only): (p / divisor - mean) / std, float32 true division."""
    pre = json.loads(metadata["preprocess"])
    if pre["resize"] != "none":
        raise ValueError("numpy_reference only handles resize 'none'")
    mean = np.array(pre["mean"], np.float32)[None, :, None, None]
    std = np.array(pre["std"], np.float32)[None, :, None, None]
    return ((images_u8.astype(np.float32) / np.float32(pre["divisor"]) - mean) / std).astype(np.float32)
