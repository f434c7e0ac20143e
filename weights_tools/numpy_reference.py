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
  inception_v3        `forward_inception_v3` (metadata variant torchvision/keras,
                      width_divisor, transform_input): explicit symmetric padding per
                      conv (= Keras 'same' at stride 1), BN eps 1e-3, 3x3/2 valid max
                      pools, branch_pool 3x3/1 pad-1 average that divides by 9
                      (torchvision count_include_pad=True) or by the number of
                      in-image cells (Keras 'same'), concat in layout order,
                      global average pool + fc
Works with numpy 1.x (Debian) and 2.x (the TF venv); float32 throughout.
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import inception_v3_layout as inception  # noqa: E402


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


# ---------------------------------------------------------------------------
# InceptionV3
# ---------------------------------------------------------------------------

def max_pool_3x3_s2(x):
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    return np.ascontiguousarray(win.max(axis=(4, 5)))


def avg_pool_3x3_s1_pad1(x, count_include_pad):
    """3x3 stride-1 average with one cell of zero padding: divide by 9 (torchvision
    count_include_pad=True) or by the number of cells inside the image (TensorFlow 'same')."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    total = np.zeros_like(x)
    for dy in range(3):
        for dx in range(3):
            total += xp[:, :, dy:dy + h, dx:dx + w]
    if count_include_pad:
        return (total / np.float32(9)).astype(np.float32)
    ones = np.pad(np.ones((h, w), np.float32), 1)
    count = sum(ones[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3))
    return (total / count[None, None]).astype(np.float32)


def forward_inception_v3(tensors, metadata, x, taps=(), count_include_pad=None):
    """x: preprocessed float32 NCHW. Returns logits (N, K) float32, or (logits, {block: output})
    when `taps` names blocks (torchvision Mixed_5b.. or Keras mixed0..). count_include_pad
    overrides the variant's pooling rule (used to show the fixtures are sensitive to it)."""
    t = tensors
    variant = metadata["variant"]
    d = int(metadata.get("width_divisor", "1"))
    if count_include_pad is None:
        count_include_pad = variant == "torchvision"
    if variant == "torchvision" and metadata.get("transform_input") == "true":
        x = np.concatenate([
            x[:, 0:1] * np.float32(0.229 / 0.5) + np.float32((0.485 - 0.5) / 0.5),
            x[:, 1:2] * np.float32(0.224 / 0.5) + np.float32((0.456 - 0.5) / 0.5),
            x[:, 2:3] * np.float32(0.225 / 0.5) + np.float32((0.406 - 0.5) / 0.5)], axis=1).astype(np.float32)

    def unit(x, conv):
        w = t[conv.name + ".conv.weight"]
        ph, pw = conv.pad
        y = conv2d(x, w, None, conv.stride, (ph, ph, pw, pw))
        return relu(batchnorm(y, t, conv.name + ".bn", 1e-3))

    def step(x, s):
        if isinstance(s, inception.Conv):
            return unit(x, s)
        if isinstance(s, inception.Fork):
            return np.concatenate([unit(x, c) for c in s.convs], axis=1)
        if s.kind == "max":
            return max_pool_3x3_s2(x)
        return avg_pool_3x3_s1_pad1(x, count_include_pad)

    for s in inception.stem(d):
        x = step(x, s)
    got = {}
    for tblock, kname, _, branches in inception.blocks(d):
        outs = []
        for br in branches:
            y = x
            for s in br:
                y = step(y, s)
            outs.append(y)
        x = np.concatenate(outs, axis=1)
        for name in (tblock, kname):
            if name in taps:
                got[name] = x
    pooled = x.mean(axis=(2, 3), dtype=np.float32)
    logits = (pooled @ t["fc.weight"].T + t["fc.bias"]).astype(np.float32)
    return (logits, got) if taps else logits
