"""InceptionV3 as data: the conv table, block structure, tensor names and random weights.

Pure Python + numpy (works with Debian's numpy 1.24 and the venv's numpy 2.x); no torch,
no TensorFlow. One description serves convert.py (expected names and shapes, the Keras
graph templates, the canonical Keras-2 layer names), the PyTorch and tf.keras model copies
(as a cross-check of their structure), numpy_reference.py and the fixture generators.

Names are torchvision 0.14's `inception_v3` state_dict keys (no AuxLogits, no
num_batches_tracked): `<conv>.conv.weight` (OIHW, no bias), `<conv>.bn.{weight,bias,
running_mean,running_var}`, `fc.weight` (K, 2048/d), `fc.bias` (K).

Every conv is listed in *creation order*: torchvision's module registration order, which
is also the order in which keras.applications.inception_v3 calls conv2d_bn(). So the i-th
conv (1-based) is `conv2d_i` / `batch_normalization_i` in a Keras 2 model built in a
fresh session (the names inside keras' inception_v3_weights_tf_dim_ordering_tf_kernels.h5).

Width divisor d (1, 2, 4, 8 or 16): every conv's output channel count is divided by d;
input channels and the concat widths follow. Spatial sizes do not depend on d.

Padding: torchvision pads explicitly and symmetrically (the `pad` of each conv below);
Keras uses 'same' exactly where pad = (kh//2, kw//2) > 0 and 'valid' for every stride-2
conv and every pool except the 3x3/1 average pools of the branch_pool branches ('same').
For stride 1 and odd kernels 'same' is the same symmetric padding. The 1x1 convs are
'valid' or 'same' in Keras (no padding either way).
"""

from collections import OrderedDict, namedtuple

import numpy as np

Conv = namedtuple("Conv", "name out kernel stride pad")   # name: torchvision module path
Pool = namedtuple("Pool", "kind")                         # "avg" (3x3/1, pad 1) or "max" (3x3/2, no pad)
Fork = namedtuple("Fork", "convs")                        # two convs on the same input, outputs concatenated

WIDTH_DIVISORS = (1, 2, 4, 8, 16)
FEATURES = 2048  # at d = 1


def _c(name, out, kernel=(1, 1), stride=1, pad=(0, 0)):
    if isinstance(kernel, int):
        kernel = (kernel, kernel)
    if isinstance(pad, int):
        pad = (pad, pad)
    return Conv(name, out, tuple(kernel), stride, tuple(pad))


# Stem: a chain of convs and max pools (torchvision Inception3.__init__ / keras InceptionV3).
STEM = (
    _c("Conv2d_1a_3x3", 32, 3, stride=2),
    _c("Conv2d_2a_3x3", 32, 3),
    _c("Conv2d_2b_3x3", 64, 3, pad=1),
    Pool("max"),
    _c("Conv2d_3b_1x1", 80, 1),
    _c("Conv2d_4a_3x3", 192, 3),
    Pool("max"),
)

# (torchvision module, Keras concat name, block type, parameter)
BLOCKS = (
    ("Mixed_5b", "mixed0", "A", 32),    # InceptionA(pool_features)
    ("Mixed_5c", "mixed1", "A", 64),
    ("Mixed_5d", "mixed2", "A", 64),
    ("Mixed_6a", "mixed3", "B", None),  # InceptionB
    ("Mixed_6b", "mixed4", "C", 128),   # InceptionC(channels_7x7)
    ("Mixed_6c", "mixed5", "C", 160),
    ("Mixed_6d", "mixed6", "C", 160),
    ("Mixed_6e", "mixed7", "C", 192),
    ("Mixed_7a", "mixed8", "D", None),  # InceptionD
    ("Mixed_7b", "mixed9", "E", None),  # InceptionE
    ("Mixed_7c", "mixed10", "E", None),
)


def block_branches(block, kind, param):
    """The branches of one block in concatenation order; each branch is a list of steps
    (Conv / Pool / Fork) from the block input to the branch output. Widths at d = 1."""
    p = block + "."
    if kind == "A":
        return [
            [_c(p + "branch1x1", 64)],
            [_c(p + "branch5x5_1", 48), _c(p + "branch5x5_2", 64, 5, pad=2)],
            [_c(p + "branch3x3dbl_1", 64), _c(p + "branch3x3dbl_2", 96, 3, pad=1),
             _c(p + "branch3x3dbl_3", 96, 3, pad=1)],
            [Pool("avg"), _c(p + "branch_pool", param)],
        ]
    if kind == "B":
        return [
            [_c(p + "branch3x3", 384, 3, stride=2)],
            [_c(p + "branch3x3dbl_1", 64), _c(p + "branch3x3dbl_2", 96, 3, pad=1),
             _c(p + "branch3x3dbl_3", 96, 3, stride=2)],
            [Pool("max")],
        ]
    if kind == "C":
        c7 = param
        return [
            [_c(p + "branch1x1", 192)],
            [_c(p + "branch7x7_1", c7), _c(p + "branch7x7_2", c7, (1, 7), pad=(0, 3)),
             _c(p + "branch7x7_3", 192, (7, 1), pad=(3, 0))],
            [_c(p + "branch7x7dbl_1", c7), _c(p + "branch7x7dbl_2", c7, (7, 1), pad=(3, 0)),
             _c(p + "branch7x7dbl_3", c7, (1, 7), pad=(0, 3)),
             _c(p + "branch7x7dbl_4", c7, (7, 1), pad=(3, 0)),
             _c(p + "branch7x7dbl_5", 192, (1, 7), pad=(0, 3))],
            [Pool("avg"), _c(p + "branch_pool", 192)],
        ]
    if kind == "D":
        return [
            [_c(p + "branch3x3_1", 192), _c(p + "branch3x3_2", 320, 3, stride=2)],
            [_c(p + "branch7x7x3_1", 192), _c(p + "branch7x7x3_2", 192, (1, 7), pad=(0, 3)),
             _c(p + "branch7x7x3_3", 192, (7, 1), pad=(3, 0)),
             _c(p + "branch7x7x3_4", 192, 3, stride=2)],
            [Pool("max")],
        ]
    if kind == "E":
        return [
            [_c(p + "branch1x1", 320)],
            [_c(p + "branch3x3_1", 384),
             Fork((_c(p + "branch3x3_2a", 384, (1, 3), pad=(0, 1)),
                   _c(p + "branch3x3_2b", 384, (3, 1), pad=(1, 0))))],
            [_c(p + "branch3x3dbl_1", 448), _c(p + "branch3x3dbl_2", 384, 3, pad=1),
             Fork((_c(p + "branch3x3dbl_3a", 384, (1, 3), pad=(0, 1)),
                   _c(p + "branch3x3dbl_3b", 384, (3, 1), pad=(1, 0))))],
            [Pool("avg"), _c(p + "branch_pool", 192)],
        ]
    raise ValueError(kind)


def check_divisor(d):
    if d not in WIDTH_DIVISORS:
        raise ValueError(f"width divisor {d} not supported (one of {WIDTH_DIVISORS}: every "
                         "InceptionV3 width must stay an integer)")


def scaled(step, d):
    """A step with its widths divided by d."""
    if isinstance(step, Conv):
        return step._replace(out=step.out // d)
    if isinstance(step, Fork):
        return Fork(tuple(scaled(c, d) for c in step.convs))
    return step


def stem(d=1):
    check_divisor(d)
    return [scaled(s, d) for s in STEM]


def blocks(d=1):
    """[(torch block, keras name, kind, branches scaled by d)] in network order."""
    check_divisor(d)
    return [(b, k, kind, [[scaled(s, d) for s in br] for br in block_branches(b, kind, param)])
            for b, k, kind, param in BLOCKS]


def step_out_channels(step, cin):
    if isinstance(step, Conv):
        return step.out
    if isinstance(step, Fork):
        return sum(c.out for c in step.convs)
    return cin  # pools keep the channel count


def branch_out_channels(branch, cin):
    c = cin
    for s in branch:
        c = step_out_channels(s, c)
    return c


# ConvSpec: one conv with its input channel count, in creation order
ConvSpec = namedtuple("ConvSpec", "name cin out kernel stride pad")


def convs(d=1):
    """Every conv in creation order (torchvision registration order = Keras conv2d_bn order)."""
    out = []
    c = 3
    for s in stem(d):
        if isinstance(s, Conv):
            out.append(ConvSpec(s.name, c, s.out, s.kernel, s.stride, s.pad))
        c = step_out_channels(s, c)
    for _, _, _, branches in blocks(d):
        cin = c
        for br in branches:
            cb = cin
            for s in br:
                for conv in (s.convs if isinstance(s, Fork) else (s,) if isinstance(s, Conv) else ()):
                    out.append(ConvSpec(conv.name, cb, conv.out, conv.kernel, conv.stride, conv.pad))
                cb = step_out_channels(s, cb) if not isinstance(s, Fork) else cb
        c = sum(branch_out_channels(br, cin) for br in branches)
    return out


def feature_channels(d=1):
    check_divisor(d)
    return FEATURES // d


def block_out_channels(d=1):
    """{torch block name: output channels} (mixed0..mixed10 = 256, 288, 288, 768 x5, 1280, 2048, 2048 at d=1)."""
    res = OrderedDict()
    c = 192 // d
    for b, _, _, branches in blocks(d):
        c = sum(branch_out_channels(br, c) for br in branches)
        res[b] = c
    return res


def spatial_sizes(size):
    """Feature-map side after the stem, mixed0-2, mixed3-7, mixed8-10 for a square input."""
    def conv_valid(n, k, s):
        return (n - k) // s + 1
    n = conv_valid(size, 3, 2)
    n = conv_valid(n, 3, 1)
    n = conv_valid(n, 3, 2)   # maxpool1 (Conv2d_2b keeps the size)
    n = conv_valid(n, 3, 1)   # Conv2d_4a
    n35 = conv_valid(n, 3, 2)  # maxpool2
    n17 = conv_valid(n35, 3, 2)
    n8 = conv_valid(n17, 3, 2)
    return n35, n17, n8


def expected_shapes(d=1, classes=1000):
    """veto tensor name -> shape, in creation order (the order of torchvision's state_dict)."""
    exp = OrderedDict()
    for cs in convs(d):
        exp[f"{cs.name}.conv.weight"] = (cs.out, cs.cin) + cs.kernel
        for p in ("weight", "bias", "running_mean", "running_var"):
            exp[f"{cs.name}.bn.{p}"] = (cs.out,)
    exp["fc.weight"] = (classes, feature_channels(d))
    exp["fc.bias"] = (classes,)
    return exp


def keras2_names(d=1):
    """[(torch conv name, 'conv2d_i', 'batch_normalization_i')] for i = 1..94: the layer
    names of a Keras 2 keras.applications InceptionV3 built in a fresh session (creation
    order), as in keras' inception_v3_weights_tf_dim_ordering_tf_kernels.h5."""
    return [(cs.name, f"conv2d_{i}", f"batch_normalization_{i}") for i, cs in enumerate(convs(d), start=1)]


# ---------------------------------------------------------------------------
# Random weights
# ---------------------------------------------------------------------------

# Conv init. The BN layers use random running statistics, so they do not renormalise, and a
# deep random ReLU net tends to map every image to nearly the same features (the positive
# mean of the ReLU outputs propagates and swamps the image-dependent part). Two measures:
#  * every filter is centred (its weights sum to 0), so a conv passes on only the
#    variation of its input, not its mean;
#  * the std is CONV_GAIN * sqrt(2 / fan_in) / sqrt(E[gamma^2] E[1/var]), the last factor
#    compensating for the random BN scale (E[gamma^2] = 13/12 for torchvision, 1 for Keras;
#    E[1/var] = ln 3 for var ~ U(0.5, 1.5)).
# CONV_GAIN = 1.3 was picked by measurement (see weights_tools/README.md): below about 1.2 the
# image signal dies out against the BN offsets (every image gets the same logits), above
# about 1.4 it grows without bound; at 1.3 the block-output RMS grows about 1.5-6x from
# mixed0 to mixed10 and the logits differ between images.
CONV_GAIN = 1.3
BN_VAR_RANGE = (0.5, 1.5)
BN_GAMMA_RANGE = (0.5, 1.5)
E_INV_VAR = float(np.log(BN_VAR_RANGE[1] / BN_VAR_RANGE[0]) / (BN_VAR_RANGE[1] - BN_VAR_RANGE[0]))
E_GAMMA2 = float((BN_GAMMA_RANGE[1] ** 3 - BN_GAMMA_RANGE[0] ** 3) / 3 / (BN_GAMMA_RANGE[1] - BN_GAMMA_RANGE[0]))


def conv_std_factor(variant):
    """Multiplier of sqrt(2 / fan_in) for the conv weights of `variant`."""
    return float(CONV_GAIN / np.sqrt(E_INV_VAR * (E_GAMMA2 if variant == "torchvision" else 1.0)))


def random_weights(d=1, classes=1000, seed=0, variant="torchvision"):
    """Seeded random weights under the veto names, float32.

    conv: N(0, (conv_std_factor * sqrt(2/fan_in))^2), then each filter centred; BN running_mean ~ N(0, 0.1),
    running_var ~ U(0.5, 1.5), beta ~ N(0, 0.1), gamma ~ U(0.5, 1.5) for torchvision and
    exactly 1 for Keras (InceptionV3's BatchNormalization has scale=False); fc weight
    N(0, 1/fan_in), fc bias N(0, 0.1) (the fixture makers later shift it, see
    inception_golden.py)."""
    if variant not in ("torchvision", "keras"):
        raise ValueError(variant)
    rng = np.random.default_rng(seed)
    factor = conv_std_factor(variant)
    out = OrderedDict()
    for name, shape in expected_shapes(d, classes).items():
        if name.endswith(".conv.weight"):
            fan_in = int(np.prod(shape[1:]))
            a = rng.normal(0.0, factor * np.sqrt(2.0 / fan_in), shape)
            a = a - a.mean(axis=(1, 2, 3), keepdims=True)
        elif name.endswith(".bn.weight"):
            a = rng.uniform(*BN_GAMMA_RANGE, shape) if variant == "torchvision" else np.ones(shape)
        elif name.endswith((".bn.bias", ".bn.running_mean")):
            a = rng.normal(0.0, 0.1, shape)
        elif name.endswith(".bn.running_var"):
            a = rng.uniform(*BN_VAR_RANGE, shape)
        elif name == "fc.weight":
            a = rng.normal(0.0, np.sqrt(1.0 / shape[1]), shape)
        elif name == "fc.bias":
            a = rng.normal(0.0, 0.1, shape)
        else:
            raise AssertionError(name)
        out[name] = np.asarray(a, dtype=np.float32)
    return out


def parameter_count(d=1, classes=1000, variant="torchvision"):
    """Learned parameters (torchvision counts gamma; Keras has none)."""
    n = 0
    for name, shape in expected_shapes(d, classes).items():
        if name.endswith((".running_mean", ".running_var")):
            continue
        if variant == "keras" and name.endswith(".bn.weight"):
            continue
        n += int(np.prod(shape))
    return n


if __name__ == "__main__":
    cs = convs(1)
    print(f"{len(cs)} convs, {sum(c.out for c in cs)} filters at d=1; blocks {dict(block_out_channels(1))}")
    print("spatial 299:", spatial_sizes(299), " 139:", spatial_sizes(139))
    print("params torchvision (no aux) K=1000:", parameter_count(1, 1000), " keras:", parameter_count(1, 1000, "keras"))
